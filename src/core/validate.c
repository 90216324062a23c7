/* validate.c -- the heap validator: internal.h's invariants, checked.
 *
 *   _neap_heap_validate(h)       h's own thread, in a slow path
 *     arenas   h->arenas (hnext/hprev, narenas, empty_arenas, alloc_arena)
 *              each: map byte ARENA, owner h, page maps, kind[] walk
 *     kind[]   page 0 META; then run by run:
 *                FREE  not in used_map
 *                POOL/FULL --> the pool header (class table, counts, free
 *                      lists block by block, state against lists)
 *                LARGE/BLOCK/SPARE --> run length, class
 *                each run's later pages CONT, counting back to its head
 *     lists    direct[] (kind POOL, class, not linked, count 1 more),
 *              partial[] (linked, prev/next, tail), the empty list (no
 *              block out, oldest first, empty_pages), spare[] (kind
 *              SPARE), the dirty queue
 *              (in_dirty, tail, dirty_pages = sum of pages_dirty)
 *     remote   each block waiting in arena.remote lies in a run in use
 *   _neap_orphans_validate()     under the orphan lock: every orphan arena
 *   _neap_huge_cache_validate()  (arena.c) under the huge lock
 *   _neap_validate_all()         all of them; the caller's heap, and other
 *                                heaps only when their threads are quiet
 *
 * A violation ends the process through _neap_invariant_fail: one line on
 * fd 2 naming the invariant, where it was found (heap, arena, page, pool or
 * block) and the values read, then abort.  Nothing here allocates or writes
 * to the structures it reads: the owner's thread may validate at any slow
 * path; other threads only push on arena.remote (read as a snapshot, whose
 * chain no pusher changes) and read kind[] and bumped.
 *
 * What is validated and when (heap.c, neap_heap_check): NEAP_DEBUG >= 3,
 * after every slow path; NEAP_DEBUG == 2, every NEAP_VALIDATE_DEBUG_EVERY
 * slow paths of a heap, or more apart for a large heap: a validation
 * reports its work (pages, pools, blocks looked at) and the next one waits
 * for work / NEAP_VALIDATE_DEBUG_SHARE slow paths, so that a slow path
 * pays a bounded share of validation whatever the heap's size; any level,
 * every NEAP_VALIDATE slow paths if that option is set; and at levels >= 2
 * after trim, before a thread's arenas are handed over, after orphans are
 * collected and in a fork's child.
 *
 * Invariants: none of its own; it holds the others to theirs.  A check
 * that reads state another thread may be changing is not made (pool state
 * of other heaps, remote_pending, the tracing fields of pool headers).
 */
#include "core/internal.h"

extern NEAP_INTERNAL neap_arena_t *_neap_orphans;
extern NEAP_INTERNAL pthread_mutex_t _neap_orphan_lock;
extern NEAP_INTERNAL neap_heap_t *_neap_all_heaps;

/* ---------------------------------------------------------------------------
 * The report
 * ------------------------------------------------------------------------- */
void _neap_invariant_fail(const char *what, const neap_vwhere_t *w, const char *n1,
                          unsigned long long v1, const char *n2, unsigned long long v2,
                          const char *n3, unsigned long long v3) {
    char msg[512];
    neap_buf_t b = {msg, 0, sizeof msg};
    _neap_buf_str(&b, "neap: invariant violated: ");
    _neap_buf_str(&b, what);
    const char *names[] = {"heap", "arena", "pool", "block"};
    uintptr_t vals[] = {(uintptr_t)w->heap, (uintptr_t)w->arena, (uintptr_t)w->pool, (uintptr_t)w->block};
    const char *sep = " [";
    for (size_t i = 0; i < 4; i++) {
        if (vals[i] == 0) continue;
        _neap_buf_str(&b, sep);
        _neap_buf_str(&b, names[i]);
        _neap_buf_str(&b, " ");
        _neap_buf_hex(&b, vals[i]);
        sep = " ";
        if (i == 1 && w->page >= 0) {
            _neap_buf_str(&b, " page ");
            _neap_buf_u(&b, (unsigned long long)w->page, 0);
        }
    }
    if (sep[0] == ' ' && sep[1] == 0) _neap_buf_str(&b, "]");
    const char *ns[] = {n1, n2, n3};
    unsigned long long vs[] = {v1, v2, v3};
    for (size_t i = 0; i < 3; i++) {
        if (ns[i] == NULL) continue;
        _neap_buf_str(&b, " ");
        _neap_buf_str(&b, ns[i]);
        _neap_buf_str(&b, "=");
        _neap_buf_u(&b, vs[i], 0);
    }
    _neap_buf_str(&b, "\n");
    _neap_os_write(2, msg, b.len);
    _neap_os_abort();
}

#define FAIL(w, what) _neap_invariant_fail((what), (w), NULL, 0, NULL, 0, NULL, 0)
#define FAIL1(w, what, a, va) _neap_invariant_fail((what), (w), (a), (va), NULL, 0, NULL, 0)
#define FAIL2(w, what, a, va, b, vb) _neap_invariant_fail((what), (w), (a), (va), (b), (vb), NULL, 0)
#define FAIL3(w, what, a, va, b, vb, c, vc) _neap_invariant_fail((what), (w), (a), (va), (b), (vb), (c), (vc))
#define CHECK(w, cond, what)                                                 \
    do {                                                                     \
        if (neap_unlikely(!(cond))) FAIL((w), (what));                       \
    } while (0)

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */
static inline bool neap_vbit(const uint64_t *m, size_t i) { return (m[i / 64] >> (i % 64)) & 1; }

static size_t neap_vpopcount(const uint64_t *m) {
    size_t n = 0;
    for (size_t w = 0; w < NEAP_MAP_WORDS; w++) n += (size_t)__builtin_popcountll(m[w]);
    return n;
}

/* Blocks a pool can hold at most (the largest capacity of any class). */
#define NEAP_VMAX_BLOCKS 1024

/* What the heap-level checks need from the arena walk. */
typedef struct neap_vcount_s {
    size_t linked[NEAP_CLASS_MAX + 1];   /* pools on a partial list (by linked), per class */
    size_t empty, empty_pages;           /* pools saying they are on the empty list, their pages */
    size_t spares[NEAP_CLASS_MAX + 1];   /* SPARE runs, per class */
    size_t work;                         /* pages, pools and blocks looked at */
} neap_vcount_t;

/* Walks a free list of pool, marking its blocks in seen; returns its
 * length.  Every block must be a carved block of the pool, seen once. */
static size_t neap_vwalk_list(const neap_pool_t *pool, const neap_block_t *b, uint64_t *seen,
                              const char *list, neap_vwhere_t *w) {
    uintptr_t start = (uintptr_t)pool + pool->first;
    size_t size = pool->block_size, n = 0;
    for (; b != NULL; b = _neap_link_get(b)) {
        w->block = b;
        uintptr_t p = (uintptr_t)b;
        if (p < start || (p - start) % size != 0 || (p - start) / size >= pool->bumped)
            FAIL3(w, list[0] == 'f' ? "free-list block is not a carved block of its pool"
                                    : "local_free block is not a carved block of its pool",
                  "offset", p - (uintptr_t)pool, "block_size", size, "bumped", pool->bumped);
        size_t idx = (p - start) / size;
        if (neap_vbit(seen, idx))
            FAIL2(w, "block twice on the pool's free lists (cycle or duplicate)", "index", idx, "listed", n);
        seen[idx / 64] |= 1ull << (idx % 64);
        n++;
    }
    w->block = NULL;
    return n;
}

/* The pool at page idx of arena a (kind POOL or FULL).  h: the owner heap,
 * or NULL for an orphan (its list fields are stale). */
static void neap_vpool(const neap_heap_t *h, const neap_arena_t *a, size_t idx, unsigned state,
                       neap_vcount_t *cnt, neap_vwhere_t *w) {
    const neap_pool_t *pool = (const neap_pool_t *)_neap_page_addr(a, idx);
    w->pool = pool;
    size_t cls = pool->cls;
    if (cls < 1 || cls > NEAP_CLASS_MAX || _neap_class[cls].run)
        FAIL1(w, "pool header: class out of range or a run class", "cls", cls);
    const neap_class_t *k = &_neap_class[cls];
    if (k->capacity > NEAP_VMAX_BLOCKS) FAIL1(w, "the validator knows pools this large", "capacity", k->capacity);
    if (pool->block_size != k->size || pool->npages != k->pages || pool->first != k->first ||
        pool->recip != k->recip)
        FAIL3(w, "pool header does not match its class (block_size, npages, first, recip)", "cls", cls,
              "block_size", pool->block_size, "npages", pool->npages);
    if (idx + pool->npages > NEAP_ARENA_PAGES)
        FAIL1(w, "pool runs past the arena's end", "npages", pool->npages);
    /* the direct pool's count carries 1 more than its blocks out */
    bool is_direct = h != NULL && h->direct[cls] == pool;
    if (is_direct && pool->used == 0) FAIL(w, "a direct pool's count is its blocks out + 1");
    size_t out = (size_t)pool->used - is_direct;
    if (pool->bumped > k->capacity || out > pool->bumped)
        FAIL3(w, "pool counts: used <= bumped <= capacity", "used", out, "bumped", pool->bumped,
              "capacity", k->capacity);
    if (pool->linked > NEAP_POOL_ON_EMPTY) FAIL1(w, "pool header: linked is 0, 1 or 2", "linked", pool->linked);
    uint64_t seen[NEAP_VMAX_BLOCKS / 64];
    memset(seen, 0, (k->capacity + 63) / 64 * sizeof seen[0]);   /* the words the pool's blocks use */
    size_t nfree = neap_vwalk_list(pool, pool->free, seen, "free", w);
    size_t nlocal = neap_vwalk_list(pool, pool->local_free, seen, "local_free", w);
    cnt->work += 8 + nfree + nlocal;
    if (out + nfree + nlocal != pool->bumped)
        FAIL3(w, "pool counts: bumped = used + |free| + |local_free| (remote frees count as used)", "used",
              out, "free+local_free", nfree + nlocal, "bumped", pool->bumped);
    /* the last block back puts a pool on its heap's empty list (an orphan's
     * is retired at once), unless it is the direct pool (kept for churn
     * until trim or thread exit); one taken off the empty list has a block
     * out or is direct */
    if (out == 0 && (h == NULL || !(is_direct || pool->linked == NEAP_POOL_ON_EMPTY)))
        FAIL2(w, "a pool with no block out is direct, on the empty list or retired", "cls", cls, "linked",
              pool->linked);
    if (h != NULL && pool->linked == NEAP_POOL_ON_EMPTY && out != 0)
        FAIL1(w, "a pool on the empty list has no block out", "used", out);
    if (state == NEAP_PS_FULL) {
        if (nfree + nlocal != 0 || pool->bumped != k->capacity)
            FAIL3(w, "a FULL pool has no free block", "free+local_free", nfree + nlocal, "bumped",
                  pool->bumped, "capacity", k->capacity);
    }
    if (h != NULL) {
        bool direct = h->direct[cls] == pool;
        if (state == NEAP_PS_FULL && (direct || pool->linked))
            FAIL2(w, "a FULL pool is neither direct nor on a partial list", "direct", direct, "linked",
                  pool->linked);
        if (state == NEAP_PS_POOL && direct == (pool->linked != 0))
            FAIL2(w, "a POOL pool is in exactly one place: direct or its partial list", "direct", direct,
                  "linked", pool->linked);
        if (state == NEAP_PS_COLD && (direct || pool->linked != NEAP_POOL_ON_PARTIAL || pool->npages != 1))
            FAIL2(w, "a COLD pool is a one-page pool on its partial list, never direct", "direct", direct,
                  "linked", pool->linked);
        if (pool->linked) {
            if (nfree + nlocal == 0 && pool->bumped == k->capacity)
                FAIL1(w, "a pool on a partial list has a free block", "used", out);
            if (pool->linked == NEAP_POOL_ON_PARTIAL) cnt->linked[cls]++;
            else {
                cnt->empty++;
                cnt->empty_pages += pool->npages;
            }
        }
    }
    w->pool = NULL;
}

/* Checks the later pages of the run at [head, head + n). */
static void neap_vcont(const neap_arena_t *a, size_t head, size_t n, neap_vwhere_t *w) {
    for (size_t j = 1; j < n; j++) {
        uint16_t v = _neap_kind_get(a, head + j);
        if (v != NEAP_PK(NEAP_PS_CONT, j)) {
            w->page = (long)(head + j);
            FAIL3(w, "a run's later page is CONT with the distance back to its head", "kind", NEAP_PK_KIND(v),
                  "count", NEAP_PK_COUNT(v), "expected", j);
        }
    }
}

/* A block waiting in a->remote: the start of a block in a run in use. */
static void neap_vremote_block(const neap_arena_t *a, const neap_block_t *b, neap_vwhere_t *w) {
    w->block = b;
    uintptr_t p = (uintptr_t)b;
    if (_neap_map_kind(p) != NEAP_MAP_ARENA || _neap_arena_of(p) != a)
        FAIL(w, "a remote-freed block lies in the arena it was pushed on");
    size_t i = _neap_page_index(p);
    uint16_t v = _neap_kind_get(a, i);
    if (NEAP_PK_KIND(v) == NEAP_PS_CONT) {
        i -= NEAP_PK_COUNT(v);
        v = _neap_kind_get(a, i);
    }
    if (NEAP_PK_KIND(v) == NEAP_PS_ALIAS) {   /* meshing: the block is its pool's, at the same offset */
        p = _neap_page_addr(a, NEAP_PK_COUNT(v)) + (p & NEAP_PAGE_MASK);
        i = NEAP_PK_COUNT(v);
        v = _neap_kind_get(a, i);
    }
    w->page = (long)i;
    unsigned state = NEAP_PK_KIND(v);
    if (state == NEAP_PS_POOL || state == NEAP_PS_FULL || state == NEAP_PS_COLD) {
        const neap_pool_t *pool = (const neap_pool_t *)_neap_page_addr(a, i);
        uintptr_t start = (uintptr_t)pool + pool->first;
        if (p < start || (p - start) % pool->block_size != 0 || (p - start) / pool->block_size >= pool->bumped)
            FAIL1(w, "a remote-freed block is a carved block of its pool", "offset", p - (uintptr_t)pool);
        if (pool->used == 0)
            FAIL(w, "a pool with remote-freed blocks counts them as used");
    } else if (state == NEAP_PS_LARGE || state == NEAP_PS_BLOCK) {
        if (p != _neap_page_addr(a, i)) FAIL(w, "a remote-freed large block starts its run");
    } else {
        FAIL1(w, "a remote-freed block lies in a run in use", "kind", state);
    }
    w->block = NULL;
    w->page = -1;
}

/* One arena: maps, kind[], pools, remote stack.  h: its owner, or NULL for
 * an orphan. */
static void neap_varena(const neap_heap_t *h, const neap_arena_t *a, neap_vcount_t *cnt, neap_vwhere_t *w) {
    w->arena = a;
    w->page = -1;
    if (((uintptr_t)a & NEAP_ARENA_MASK) != 0) FAIL(w, "an arena is aligned to its size");
    uint8_t mk = _neap_map_kind((uintptr_t)a);
    if (mk != NEAP_MAP_ARENA) FAIL1(w, "the address map says ARENA for every arena", "map", mk);
    neap_heap_t *owner = atomic_load(&a->owner);
    if (owner != h) FAIL1(w, "an arena's owner is the heap whose list holds it", "owner", (uintptr_t)owner);
    if (a->zombie) FAIL(w, "a zombie arena is on no heap's list");
    for (size_t i = 0; i < NEAP_MAP_WORDS; i++) {
        if (a->used_map[i] & a->dirty_map[i])
            FAIL2(w, "used_map and dirty_map are disjoint", "word", i, "both", a->used_map[i] & a->dirty_map[i]);
        if (a->young_map[i] & ~a->dirty_map[i])
            FAIL2(w, "young_map is a subset of dirty_map", "word", i, "young_not_dirty",
                  a->young_map[i] & ~a->dirty_map[i]);
    }
    size_t used_bits = neap_vpopcount(a->used_map), dirty_bits = neap_vpopcount(a->dirty_map);
    if (a->pages_dirty != dirty_bits)
        FAIL2(w, "pages_dirty is the number of bits in dirty_map", "pages_dirty", a->pages_dirty, "bits", dirty_bits);
    if (a->pages_used + NEAP_META_PAGES != used_bits)
        FAIL2(w, "pages_used counts the data pages in used_map", "pages_used", a->pages_used, "bits", used_bits);
    if (h != NULL && !a->in_dirty) {
        if (a->pages_dirty != 0)
            FAIL1(w, "an arena with dirty pages is on its heap's dirty queue", "pages_dirty", a->pages_dirty);
        if (neap_vpopcount(a->young_map) != 0) FAIL(w, "an arena off the dirty queue has no young page");
    }
    for (size_t i = 0; i < NEAP_META_PAGES; i++) {
        w->page = (long)i;
        if (_neap_kind_get(a, i) != NEAP_PK(NEAP_PS_META, 0) || !neap_vbit(a->used_map, i))
            FAIL1(w, "the header page is META and in used_map", "kind", _neap_kind_get(a, i));
    }
    size_t in_runs = 0, aliases = 0;
    uint16_t named[NEAP_ARENA_PAGES];   /* ALIAS pages naming each page */
    memset(named, 0, sizeof named);
    for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES;) {
        uint16_t v = _neap_kind_get(a, i);
        unsigned state = NEAP_PK_KIND(v);
        size_t count = NEAP_PK_COUNT(v), n = 0;
        w->page = (long)i;
        switch (state) {
        case NEAP_PS_FREE:
            if (count != 0) FAIL1(w, "a FREE page has count 0", "count", count);
            if (neap_vbit(a->used_map, i)) FAIL(w, "a FREE page is not in used_map");
            i++;
            continue;
        case NEAP_PS_ALIAS: {
            /* meshing: its canonical page heads a one-page pool of a small
             * class, in this arena, itself no alias */
            uint16_t cv = count < NEAP_ARENA_PAGES ? _neap_kind_get(a, count) : 0;
            unsigned cs = NEAP_PK_KIND(cv);
            if (neap_arena_backing(a) == NEAP_BACK_ANON || count < NEAP_META_PAGES || count >= NEAP_ARENA_PAGES || count == i ||
                NEAP_PK_COUNT(cv) != 0 || (cs != NEAP_PS_POOL && cs != NEAP_PS_FULL && cs != NEAP_PS_COLD) ||
                ((const neap_pool_t *)_neap_page_addr(a, count))->npages != 1)
                FAIL2(w, "an ALIAS page names a one-page pool of its arena", "canon", count, "canon_kind", cs);
            if (a->nalias[i] != 0) FAIL1(w, "an ALIAS page has no alias of its own", "nalias", a->nalias[i]);
            named[count]++;
            aliases++;
            n = 1;
            break;
        }
        case NEAP_PS_POOL:
        case NEAP_PS_FULL:
        case NEAP_PS_COLD:
            if (count != 0) FAIL1(w, "a pool head's kind has count 0", "count", count);
            neap_vpool(h, a, i, state, cnt, w);
            n = ((const neap_pool_t *)_neap_page_addr(a, i))->npages;
            break;
        case NEAP_PS_LARGE:
            if (count < 1 || count > (NEAP_LARGE_MAX >> NEAP_PAGE_SHIFT) || i + count > NEAP_ARENA_PAGES)
                FAIL1(w, "a LARGE run's length is 1..256 pages, inside the arena", "pages", count);
            n = count;
            break;
        case NEAP_PS_BLOCK:
        case NEAP_PS_SPARE:
            if (count < 1 || count > NEAP_CLASS_MAX || !_neap_class[count].run)
                FAIL1(w, "a BLOCK or SPARE run's class is a run class", "cls", count);
            n = _neap_class[count].pages;
            if (i + n > NEAP_ARENA_PAGES) FAIL1(w, "a run ends inside its arena", "pages", n);
            if (h != NULL) {
                bool is_spare = h->spare[count] == _neap_page_addr(a, i);
                if (is_spare != (state == NEAP_PS_SPARE))
                    FAIL2(w, "a run is SPARE exactly when it is its heap's spare of its class", "cls", count,
                          "spare", state == NEAP_PS_SPARE);
                if (is_spare) cnt->spares[count]++;
            }
            break;
        case NEAP_PS_CONT:
            FAIL1(w, "a CONT page follows its run's head", "count", count);
        default:
            FAIL1(w, "a data page's kind is FREE, POOL, FULL, COLD, LARGE, CONT, BLOCK, SPARE or ALIAS", "kind", state);
        }
        for (size_t j = 0; j < n; j++) {
            if (!neap_vbit(a->used_map, i + j)) {
                w->page = (long)(i + j);
                FAIL2(w, "every page of a run is in used_map", "head", i, "pages", n);
            }
        }
        neap_vcont(a, i, n, w);
        in_runs += n;
        i += n;
    }
    w->page = -1;
    if (aliases != a->aliases) FAIL2(w, "arena.aliases counts its ALIAS pages", "aliases", a->aliases, "counted", aliases);
    for (size_t i = 0; i < NEAP_ARENA_PAGES; i++) {
        if (named[i] != a->nalias[i]) {
            w->page = (long)i;
            FAIL2(w, "nalias[] counts the ALIAS pages naming each pool", "nalias", a->nalias[i], "counted", named[i]);
        }
    }
    if (in_runs != a->pages_used)
        FAIL2(w, "pages_used equals the pages in runs", "pages_used", a->pages_used, "in_runs", in_runs);
    /* the owner (or the orphan lock's holder) alone takes the stack: the
     * chain from a snapshot of its head does not change under us */
    const neap_block_t *b = atomic_load(&a->remote);
    for (size_t n = 0; b != NULL; b = _neap_link_get(b), n++) {
        if (n > (size_t)NEAP_ARENA_PAGES * NEAP_PAGE_SIZE / 16)
            FAIL1(w, "the remote stack has no cycle", "length", n);
        neap_vremote_block(a, b, w);
        cnt->work++;
    }
    cnt->work += NEAP_ARENA_PAGES;
    w->arena = NULL;
}

/* ---------------------------------------------------------------------------
 * Heaps
 * ------------------------------------------------------------------------- */
size_t _neap_heap_validate(neap_heap_t *h) {
    if (h == NULL || h == &_neap_heap_empty) return 0;
    neap_vwhere_t where = {.heap = h, .page = -1}, *w = &where;
    neap_vcount_t cnt;
    memset(&cnt, 0, sizeof cnt);
    if (_neap_pool_empty.free != NULL || _neap_pool_empty.local_free != NULL)
        FAIL(w, "the empty pool stays empty (it sends the fast path to the slow one)");
    if (h->direct[0] != h->direct[1]) FAIL(w, "direct[0] aliases direct[1]");
    if (h->partial[0] != NULL || h->partial_tail[0] != NULL || h->spare[0] != 0)
        FAIL(w, "class 0 has no partial list and no spare");

    /* the arena list */
    size_t n = 0, empty = 0;
    bool alloc_found = h->alloc_arena == NULL;
    const neap_arena_t *prev = NULL;
    for (const neap_arena_t *a = h->arenas; a != NULL; prev = a, a = a->hnext) {
        w->arena = a;
        if (++n > h->narenas) FAIL1(w, "the heap's arena list holds narenas arenas (no cycle)", "narenas", h->narenas);
        if (a->hprev != prev) FAIL1(w, "the heap's arena list: hprev is the previous arena", "hprev", (uintptr_t)a->hprev);
        if (a->pages_used == 0) empty++;
        if (a == h->alloc_arena) alloc_found = true;
        neap_varena(h, a, &cnt, w);
    }
    w->arena = NULL;
    if (n != h->narenas) FAIL2(w, "narenas counts the heap's arena list", "narenas", h->narenas, "listed", n);
    if (empty != h->empty_arenas)
        FAIL2(w, "empty_arenas counts the owned arenas with pages_used 0", "empty_arenas", h->empty_arenas, "found", empty);
    if (!alloc_found) FAIL1(w, "alloc_arena is one of the heap's arenas", "alloc_arena", (uintptr_t)h->alloc_arena);

    /* the dirty queue: owned arenas with in_dirty, oldest first */
    size_t queued = 0, dirty = 0;
    const neap_arena_t *last = NULL;
    for (const neap_arena_t *a = h->dirty_head; a != NULL; last = a, a = a->dnext) {
        w->arena = a;
        if (++queued > h->narenas) FAIL1(w, "the dirty queue holds owned arenas, once each", "queued", queued);
        if (atomic_load(&a->owner) != h || !a->in_dirty)
            FAIL1(w, "an arena on the dirty queue is the heap's own and says in_dirty", "in_dirty", a->in_dirty);
        dirty += a->pages_dirty;
    }
    w->arena = last;
    if (h->dirty_tail != last) FAIL1(w, "dirty_tail is the dirty queue's last arena", "dirty_tail", (uintptr_t)h->dirty_tail);
    w->arena = NULL;
    size_t in_dirty = 0;
    for (const neap_arena_t *a = h->arenas; a != NULL; a = a->hnext) in_dirty += a->in_dirty;
    if (in_dirty != queued)
        FAIL2(w, "the arenas saying in_dirty are those on the dirty queue", "in_dirty", in_dirty, "queued", queued);
    if (dirty != h->dirty_pages)
        FAIL2(w, "dirty_pages is the sum of pages_dirty over the dirty queue", "dirty_pages", h->dirty_pages, "sum", dirty);

    /* direct pools */
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        const neap_pool_t *pool = h->direct[c];
        if (pool == &_neap_pool_empty) continue;
        w->pool = pool;
        uintptr_t p = (uintptr_t)pool;
        if (_neap_class[c].run || (p & NEAP_PAGE_MASK) != 0 || _neap_map_kind(p) != NEAP_MAP_ARENA ||
            atomic_load(&_neap_arena_of(p)->owner) != h)
            FAIL1(w, "a direct pool is a page of one of the heap's arenas, of a pool class", "cls", c);
        uint16_t v = _neap_kind_get(_neap_arena_of(p), _neap_page_index(p));
        if (v != NEAP_PK(NEAP_PS_POOL, 0))   /* before its header is read */
            FAIL2(w, "a direct pool's page says POOL", "cls", c, "kind", NEAP_PK_KIND(v));
        if (pool->cls != c || pool->linked)
            FAIL3(w, "a direct pool is of its class and on no partial list", "cls", c, "pool_cls", pool->cls,
                  "linked", pool->linked);
    }
    w->pool = NULL;

    /* partial lists: the pools saying linked, and only those */
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        size_t listed = 0;
        const neap_pool_t *pprev = NULL;
        for (const neap_pool_t *pool = h->partial[c]; pool != NULL; pprev = pool, pool = pool->next) {
            w->pool = pool;
            uintptr_t p = (uintptr_t)pool;
            if ((p & NEAP_PAGE_MASK) != 0 || _neap_map_kind(p) != NEAP_MAP_ARENA ||
                atomic_load(&_neap_arena_of(p)->owner) != h)
                FAIL1(w, "a partial list holds pools of the heap's arenas", "cls", c);
            uint16_t v = _neap_kind_get(_neap_arena_of(p), _neap_page_index(p));
            if (v != NEAP_PK(NEAP_PS_POOL, 0) && v != NEAP_PK(NEAP_PS_COLD, 0))
                FAIL2(w, "a pool on a partial list says POOL or COLD", "cls", c, "kind", NEAP_PK_KIND(v));
            if (++listed > cnt.linked[c])
                FAIL2(w, "a partial list holds the pools saying linked, once each", "cls", c, "linked", cnt.linked[c]);
            if (pool->cls != c || pool->linked != NEAP_POOL_ON_PARTIAL || (pprev != NULL && pool->prev != pprev))
                FAIL3(w, "a partial list's pool: its class, linked, prev the previous pool (the head's is stale)",
                      "cls", c, "pool_cls",
                      pool->cls, "linked", pool->linked);
        }
        w->pool = pprev;
        if (h->partial_tail[c] != pprev)
            FAIL1(w, "partial_tail is the partial list's last pool", "cls", c);
        w->pool = NULL;
        if (listed != cnt.linked[c])
            FAIL3(w, "a partial list holds every pool of its class saying linked", "cls", c, "listed", listed,
                  "linked", cnt.linked[c]);
    }

    /* the empty list: the pools saying so, once each, oldest first */
    {
        size_t listed = 0, pages = 0;
        const neap_pool_t *pprev = NULL;
        for (const neap_pool_t *pool = h->empty_head; pool != NULL; pprev = pool, pool = pool->next) {
            w->pool = pool;
            uintptr_t p = (uintptr_t)pool;
            if ((p & NEAP_PAGE_MASK) != 0 || _neap_map_kind(p) != NEAP_MAP_ARENA ||
                atomic_load(&_neap_arena_of(p)->owner) != h)
                FAIL(w, "the empty list holds pools of the heap's arenas");
            uint16_t v = _neap_kind_get(_neap_arena_of(p), _neap_page_index(p));
            if (v != NEAP_PK(NEAP_PS_POOL, 0))
                FAIL1(w, "a pool on the empty list says POOL", "kind", NEAP_PK_KIND(v));
            if (++listed > cnt.empty)
                FAIL1(w, "the empty list holds the pools saying so, once each", "saying", cnt.empty);
            if (pool->linked != NEAP_POOL_ON_EMPTY || pool->prev != pprev)
                FAIL1(w, "an empty list's pool: linked, prev the previous pool", "linked", pool->linked);
            if (pprev != NULL && (uint32_t)(pool->empty_since - pprev->empty_since) > UINT32_MAX / 2)
                FAIL2(w, "the empty list is oldest first", "since", pool->empty_since, "before", pprev->empty_since);
            pages += pool->npages;
        }
        w->pool = pprev;
        if (h->empty_tail != pprev) FAIL(w, "empty_tail is the empty list's last pool");
        w->pool = NULL;
        if (listed != cnt.empty || pages != h->empty_pages || pages != cnt.empty_pages)
            FAIL3(w, "the empty list holds every pool saying so, empty_pages their pages", "listed", listed,
                  "saying", cnt.empty, "empty_pages", h->empty_pages);
    }

    /* spare runs */
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        if (h->spare[c] == 0) continue;
        w->block = (const void *)h->spare[c];
        if (!_neap_class[c].run || cnt.spares[c] != 1)
            FAIL2(w, "a spare is the SPARE run of its run class in the heap's arenas", "cls", c, "found",
                  cnt.spares[c]);
    }
    return cnt.work;
}

/* ---------------------------------------------------------------------------
 * Orphans, and everything
 * ------------------------------------------------------------------------- */
void _neap_orphans_validate(void) {
    neap_vwhere_t where = {.page = -1}, *w = &where;
    neap_vcount_t cnt;
    memset(&cnt, 0, sizeof cnt);
    pthread_mutex_lock(&_neap_orphan_lock);
    const neap_arena_t *prev = NULL;
    size_t n = 0;
    for (const neap_arena_t *a = _neap_orphans; a != NULL; prev = a, a = a->hnext) {
        w->arena = a;
        if (++n > atomic_load(&_neap_gstats.arenas_current))
            FAIL1(w, "the orphan list has no cycle", "listed", n);
        if (a->hprev != prev) FAIL(w, "the orphan list: hprev is the previous arena");
        neap_varena(NULL, a, &cnt, w);
    }
    pthread_mutex_unlock(&_neap_orphan_lock);
}

void _neap_validate_all(void) {
    neap_heap_t *heaps[256];
    size_t n = 0;
    pthread_mutex_lock(&_neap_lock);
    for (neap_heap_t *h = _neap_all_heaps; h != NULL && n < sizeof heaps / sizeof heaps[0]; h = h->gnext)
        heaps[n++] = h;
    pthread_mutex_unlock(&_neap_lock);
    for (size_t i = 0; i < n; i++) {
        _neap_heap_hold(heaps[i]);   /* the background purge keeps off */
        if (heaps[i]->alive) _neap_heap_validate(heaps[i]);
        _neap_heap_unhold(heaps[i]);
    }
    _neap_orphans_validate();
    _neap_huge_cache_validate();
}

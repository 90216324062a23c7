/* arena.c -- 4 MiB arenas, their page runs, purging, the address map, and
 * huge blocks mapped on their own.
 *
 *   arena:  [ META | data pages ...........................................]
 *   used_map  1      0 0 1 1 1 0 0 0 1 ...      (page in a run)
 *   dirty_map 0      1 0 0 0 0 1 1 0 0 ...      (free, contents stale)
 *   young_map 0      0 0 0 0 0 1 0 0 0 ...      (dirty, emptied lately)
 *   kind      M      F F P C C F F F L ...      (FREE, POOL/FULL, LARGE with
 *                                                its length, CONT with the
 *                                                distance back to the head)
 *
 *   The META page holds the arena header and kind[]; nothing else of an
 *   arena is metadata.  A run is n contiguous pages; take_run marks its
 *   later pages CONT, and the caller marks the head (a pool writes its
 *   header into the head page; a large run keeps its length in kind[]).
 *   find_run is first-fit in address order (low pages fill first, so high
 *   pages drain), optionally trying warm dirty pages first for one-page runs.
 *   release_run marks the pages FREE and dirty; purge adds every dirty
 *   page to the caller's batch of ranges (os.c gives a batch back in one
 *   system call), and purge_old every dirty page but the young ones, which
 *   become old: the heap marks pages young when they empty in an arena
 *   already waiting in its dirty queue, so a page goes back
 *   NEAP_PURGE_DELAY to twice that after it emptied, never moments after
 *   (heap.c).  A range is a stretch of free pages holding no young one,
 *   trimmed to dirty ends: pages given back before bridge the dirty ones
 *   around them, so scattered empty pages do not cost a range each.
 *
 *   used_map  1 0 0 0 0 0 1 0      D dirty, . free and clean, Y young
 *   pages     P D . D D . P Y      one range [D . D D]; Y waits
 *
 *   The batch is flushed before any page in it can be taken again or its
 *   arena unmapped: the heap flushes at the end of every purge and only
 *   then unmaps the arenas the purge found empty.
 *
 * Everything here about one arena runs on its owner's thread (or under the
 * orphan lock); creating and destroying arenas takes _neap_lock, which also
 * guards the list of all arenas and the arenas' bytes in the address map.
 *
 * Huge blocks (> 1 MiB) have a mapping each, aligned to 4 MiB.  A freed one
 * is not unmapped at once but kept in a process-wide cache, so that a huge
 * request soon after a huge free costs no system call and no page fault
 * (the faults are the cost: a mapping's pages, once given back, are each
 * trapped and zeroed again on first touch):
 *
 *   free(huge) ---> cache[8], oldest first: {base, size, freed at}
 *                   (header says CACHED, its map bytes stay: a second free
 *                   of the pointer is reported as a double free)
 *                      |  at most 8 mappings, and at most NEAP_PURGE_MAX
 *                      |  bytes or, if more, as many bytes as the live huge
 *                      |  blocks have (so a program that works on big
 *                      |  buffers keeps at most twice its live huge bytes,
 *                      |  and one that has freed them NEAP_PURGE_MAX): the
 *                      |  oldest make room, a mapping over the bound is
 *                      |  unmapped at once; nothing is cached if
 *                      |  NEAP_PURGE_DELAY is 0
 *   malloc(huge) <-----+  best fit: the smallest mapping that holds the
 *                      |  request (and is aligned enough); of a larger one,
 *                      |  the whole 4 MiB units past the request go back to
 *                      |  the cache (a mapping of their own, warm too) and
 *                      |  the rest of the request's last unit is unmapped if
 *                      |  more than an eighth of the request.  None holds
 *                      |  it: the largest is grown with mremap (its pages
 *                      |  kept, only the growth new; not for an aligned
 *                      |  request)
 *   realloc(huge) <----+  growing: a cached mapping that holds the new size
 *                      |  takes the contents (a copy of warm pages costs a
 *                      |  fraction of faulting fresh ones), else mremap
 *   unmapped  <--------+  once huge blocks have been quiet (no huge malloc,
 *                         free or realloc) for NEAP_PURGE_DELAY ms; a
 *                         mapping freed that long ago while the cache holds
 *                         more than the live huge blocks (NEAP_PURGE_MAX
 *                         covers only newer ones); and any mapping after
 *                         100 delays.  Checked at every huge malloc, free
 *                         and realloc and at the heaps' purge checks
 *                         (_neap_huge_cache_expire), so the memory goes back
 *                         even when no huge block comes any more;
 *                         neap_trim empties the cache
 *
 *   A freed block's mapping that is unmapped (at once, or out of the cache)
 *   leaves its user address in a ring of the last 16 (gone[16], addresses
 *   only): a second free finds its map bytes cleared, and the ring tells it
 *   from a foreign pointer, a double free, without reading the address.
 *
 *   Why the bounds: expiry needs some allocator activity, so the bound
 *   after the last huge free is what a program that goes idle then keeps,
 *   NEAP_PURGE_MAX, the same promise a heap makes for its empty pages.
 *   While huge blocks are live the cache may hold as much again: a program
 *   that replaces big buffers (temporary arrays, a server's large
 *   responses) reuses warm pages, as the peers do, where a fixed bound of
 *   NEAP_PURGE_MAX could not even hold one of them.  Eight slots keep the
 *   best-fit scan trivial.
 *
 *   realloc(huge, n) -> mremap: shrink or grow in place, or move the pages
 *   onto a new 4 MiB-aligned reservation (never copy unless that fails),
 *   when the cache has no mapping to grow into.
 *
 * The cache, the huge headers read through callers' pointers and the huge
 * mappings' map bytes are guarded by _neap_huge_lock, a leaf lock: mmap and
 * munmap happen outside it, after the map bytes are cleared under it.
 */
#include "core/internal.h"

#include <errno.h>

uint8_t _neap_map[NEAP_MAP_SIZE];
neap_gstats_t _neap_gstats;
NEAP_INTERNAL neap_arena_t *_neap_all_arenas;   /* guarded by _neap_lock */

static void neap_map_set(uintptr_t base, size_t size, bool huge) {
    size_t first = base >> NEAP_ARENA_SHIFT;
    size_t units = (size + NEAP_ARENA_MASK) >> NEAP_ARENA_SHIFT;
    for (size_t i = 0; i < units; i++) {
        uint8_t v = NEAP_MAP_ARENA;
        if (huge) v = (uint8_t)(i + NEAP_MAP_HUGE < NEAP_MAP_FAR ? i + NEAP_MAP_HUGE : NEAP_MAP_FAR);
        __atomic_store_n(&_neap_map[first + i], v, __ATOMIC_RELEASE);
    }
}

static void neap_map_clear(uintptr_t base, size_t size) {
    size_t first = base >> NEAP_ARENA_SHIFT;
    size_t units = (size + NEAP_ARENA_MASK) >> NEAP_ARENA_SHIFT;
    for (size_t i = 0; i < units; i++) __atomic_store_n(&_neap_map[first + i], 0, __ATOMIC_RELEASE);
}

static void neap_gstat_arena_up(void) {
    atomic_fetch_add_explicit(&_neap_gstats.arenas_allocated, 1, memory_order_relaxed);
    size_t cur = atomic_fetch_add_explicit(&_neap_gstats.arenas_current, 1, memory_order_relaxed) + 1;
    size_t hw = atomic_load_explicit(&_neap_gstats.arenas_highwater, memory_order_relaxed);
    while (cur > hw && !atomic_compare_exchange_weak(&_neap_gstats.arenas_highwater, &hw, cur)) {
    }
}

/* With meshing on, an arena is a shared mapping of a 4 MiB slot of the
 * memory file (mesh.c hands out the slots), so that one of its virtual
 * pages can be pointed at another's physical page; otherwise anonymous
 * memory.  A file that cannot be used leaves the arena anonymous (never
 * meshed). */
neap_arena_t *_neap_arena_create(void) {
    int fd = -1;
    uint64_t off = 0;
    bool file = false;
    if (neap_mesh_on()) {
        pthread_mutex_lock(&_neap_lock);
        file = _neap_mesh_file_slot(&fd, &off);
        pthread_mutex_unlock(&_neap_lock);
    }
    neap_arena_t *a = file ? _neap_os_map_file_aligned(fd, off, NEAP_ARENA_SIZE, NEAP_ARENA_SIZE)
                           : _neap_os_map_aligned(NEAP_ARENA_SIZE, NEAP_ARENA_SIZE);
    if (a == NULL || ((uintptr_t)a >> NEAP_ADDR_BITS) != 0) {  /* beyond the map: not usable */
        if (a != NULL) _neap_os_unmap(a, NEAP_ARENA_SIZE);
        if (file) {
            pthread_mutex_lock(&_neap_lock);
            _neap_mesh_file_release(fd, off);
            pthread_mutex_unlock(&_neap_lock);
        }
        errno = ENOMEM;
        return NULL;
    }
    /* Fresh mapping: everything is zero, so only the non-zero fields. */
    if (file) {
        neap_arena_set_backing(a, NEAP_BACK_FILE);
        a->file_fd = fd;
        a->file_off = off;
    }
    for (size_t i = 0; i < NEAP_META_PAGES; i++) {
        a->used_map[i / 64] |= 1ull << (i % 64);
        _neap_kind_set(a, i, NEAP_PK(NEAP_PS_META, 0));
    }
    pthread_mutex_lock(&_neap_lock);
    a->gnext = _neap_all_arenas;
    if (_neap_all_arenas) _neap_all_arenas->gprev = a;
    _neap_all_arenas = a;
    neap_map_set((uintptr_t)a, NEAP_ARENA_SIZE, false);
    pthread_mutex_unlock(&_neap_lock);
    neap_gstat_arena_up();
    return a;
}

void _neap_arena_destroy(neap_arena_t *a) {
    neap_assert(a->pages_used == 0 && a->aliases == 0);
    unsigned backing = neap_arena_backing(a);
    int fd = a->file_fd;
    uint64_t off = a->file_off;
    pthread_mutex_lock(&_neap_lock);
    if (a->gprev) a->gprev->gnext = a->gnext;
    else _neap_all_arenas = a->gnext;
    if (a->gnext) a->gnext->gprev = a->gprev;
    neap_map_clear((uintptr_t)a, NEAP_ARENA_SIZE);
    pthread_mutex_unlock(&_neap_lock);
    _neap_os_unmap(a, NEAP_ARENA_SIZE);
    if (backing == NEAP_BACK_FILE) {
        /* the file's pages go with the slot, which a new arena may take */
        _neap_os_punch(fd, off, NEAP_ARENA_SIZE);
        pthread_mutex_lock(&_neap_lock);
        _neap_mesh_file_release(fd, off);
        pthread_mutex_unlock(&_neap_lock);
    }
    atomic_fetch_add_explicit(&_neap_gstats.arenas_freed, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&_neap_gstats.arenas_current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.bytes_unmapped, NEAP_ARENA_SIZE, memory_order_relaxed);
}

/* [p, p+size) of arena a's free pages given back: into the batch (whose
 * advice fits anonymous or FILE arenas: _neap_purge_batch_init), or at
 * once for a PRIVATE arena, whose copies are dropped. */
void _neap_arena_purge_add(neap_arena_t *a, neap_purge_batch_t *b, void *p, size_t size) {
    bool file = neap_arena_backing(a) == NEAP_BACK_FILE;
    if (neap_likely(!file && !b->remove)) {
        _neap_os_purge_add(b, p, size);
    } else if (file && b->remove && a->file_fd == b->fd) {
        _neap_os_purge_add_file(b, p, size, a->file_off + ((uintptr_t)p - (uintptr_t)a));
    } else {
        _neap_os_drop(p, size);   /* a PRIVATE arena, or an anonymous one beside FILE arenas */
        if (file) _neap_os_punch(a->file_fd, a->file_off + ((uintptr_t)p - (uintptr_t)a), size);
    }
}

/* ---------------------------------------------------------------------------
 * Page runs
 * ------------------------------------------------------------------------- */
static inline bool neap_bit(const uint64_t *m, size_t i) { return (m[i / 64] >> (i % 64)) & 1; }

/* Sets or clears bits [first, first+n). */
static void neap_bits(uint64_t *m, size_t first, size_t n, bool on) {
    while (n > 0) {
        size_t w = first / 64, b = first % 64;
        size_t k = 64 - b < n ? 64 - b : n;
        uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << b;
        if (on) m[w] |= mask;
        else m[w] &= ~mask;
        first += k;
        n -= k;
    }
}

static size_t neap_count_bits(const uint64_t *m, size_t first, size_t n) {
    size_t c = 0;
    for (size_t i = first; i < first + n; i++) c += neap_bit(m, i);
    return c;
}

long _neap_arena_find_run(neap_arena_t *a, size_t n, size_t align, bool prefer_dirty) {
    if (n == 1 && prefer_dirty && a->pages_dirty > 0) {
        for (size_t w = 0; w < NEAP_MAP_WORDS; w++) {
            uint64_t d = a->dirty_map[w] & ~a->used_map[w];
            if (d) return (long)(w * 64 + (size_t)__builtin_ctzll(d));
        }
    }
    if (align == 0) align = 1;
    size_t i = NEAP_META_PAGES;
    while (i + n <= NEAP_ARENA_PAGES) {
        if (i % align) {
            i += align - i % align;
            continue;
        }
        if (neap_bit(a->used_map, i)) {
            /* skip the stretch of used pages within this word at once */
            uint64_t u = a->used_map[i / 64] >> (i % 64);
            i += ~u ? (size_t)__builtin_ctzll(~u) : 64;
            continue;
        }
        size_t j = i;
        while (j < i + n && !neap_bit(a->used_map, j)) j++;
        if (j == i + n) return (long)i;
        i = j;
    }
    return -1;
}

bool _neap_arena_run_is_free(const neap_arena_t *a, size_t first, size_t n) {
    for (size_t i = first; i < first + n; i++)
        if (neap_bit(a->used_map, i)) return false;
    return true;
}

bool _neap_arena_run_is_clean(const neap_arena_t *a, size_t first, size_t n) {
    /* a PRIVATE arena's purged page reads its file's page again */
    return neap_arena_backing(a) != NEAP_BACK_PRIVATE && neap_count_bits(a->dirty_map, first, n) == 0;
}

size_t _neap_arena_take_run(neap_arena_t *a, size_t first, size_t n) {
    neap_assert(n >= 1 && first >= NEAP_META_PAGES && first + n <= NEAP_ARENA_PAGES);
    neap_assert_internal(_neap_arena_run_is_free(a, first, n));
    size_t dirty = a->pages_dirty ? neap_count_bits(a->dirty_map, first, n) : 0;
    neap_bits(a->used_map, first, n, true);
    if (dirty) {
        neap_bits(a->dirty_map, first, n, false);
        neap_bits(a->young_map, first, n, false);
    }
    neap_assert(a->pages_dirty >= dirty);
    a->pages_dirty -= (uint32_t)dirty;
    a->pages_used += (uint32_t)n;
    neap_assert(a->pages_used <= NEAP_ARENA_PAGES - NEAP_META_PAGES);
    for (size_t i = 1; i < n; i++) _neap_kind_set(a, first + i, NEAP_PK(NEAP_PS_CONT, i));
    return dirty;
}

void _neap_arena_release_run(neap_arena_t *a, size_t first, size_t n) {
    neap_assert(n >= 1 && first >= NEAP_META_PAGES && first + n <= NEAP_ARENA_PAGES && a->pages_used >= n);
    /* a whole run in use: every page in used_map, none dirty, its later pages
     * CONT counting back to first */
    neap_assert_internal(neap_count_bits(a->used_map, first, n) == n &&
                         neap_count_bits(a->dirty_map, first, n) == 0);
    neap_assert_internal(n == 1 || _neap_kind_get(a, first + n - 1) == NEAP_PK(NEAP_PS_CONT, n - 1));
    neap_bits(a->used_map, first, n, false);
    neap_bits(a->dirty_map, first, n, true);
    for (size_t i = 0; i < n; i++) _neap_kind_set(a, first + i, NEAP_PK(NEAP_PS_FREE, 0));
    a->pages_used -= (uint32_t)n;
    a->pages_dirty += (uint32_t)n;
}

void _neap_arena_mark_young(neap_arena_t *a, size_t first, size_t n) {
    neap_assert_internal(neap_count_bits(a->dirty_map, first, n) == n);   /* young pages are dirty */
    neap_bits(a->young_map, first, n, true);
}

/* Adds the dirty pages that are not in keep to the batch b and marks them
 * clean; returns how many.  A range runs from a purgeable page over every
 * page that is purgeable or free and clean (given back already, or never
 * touched: the kernel has nothing to drop there) to the last purgeable page
 * before a page in use or kept. */
static size_t neap_arena_purge_except(neap_arena_t *a, const uint64_t *keep, neap_purge_batch_t *b) {
    size_t purged = 0;
    size_t i = NEAP_META_PAGES;
    while (i < NEAP_ARENA_PAGES) {
        uint64_t d = (a->dirty_map[i / 64] & ~keep[i / 64]) >> (i % 64);
        if (d == 0) {
            i = (i / 64 + 1) * 64;
            continue;
        }
        i += (size_t)__builtin_ctzll(d);
        size_t j = i, end = i;   /* end: one past the range's last purgeable page */
        while (j < NEAP_ARENA_PAGES) {
            bool dirty = neap_bit(a->dirty_map, j);
            if (dirty && !neap_bit(keep, j)) {
                purged++;
                end = ++j;
            } else if (!dirty && !neap_bit(a->used_map, j)) {
                j++;   /* free and clean: bridged */
            } else {
                break;
            }
        }
        neap_bits(a->dirty_map, i, end - i, false);   /* its clean pages are clear already */
        _neap_arena_purge_add(a, b, (void *)_neap_page_addr(a, i), (end - i) << NEAP_PAGE_SHIFT);
        i = j;
    }
    neap_assert(a->pages_dirty >= purged);
    a->pages_dirty -= (uint32_t)purged;
    atomic_fetch_add_explicit(&_neap_gstats.bytes_purged, purged << NEAP_PAGE_SHIFT, memory_order_relaxed);
    return purged;
}

size_t _neap_arena_purge(neap_arena_t *a, neap_purge_batch_t *b) {
    static const uint64_t none[NEAP_MAP_WORDS];
    memset(a->young_map, 0, sizeof a->young_map);
    if (a->pages_dirty == 0) return 0;
    return neap_arena_purge_except(a, none, b);
}

size_t _neap_arena_purge_old(neap_arena_t *a, neap_purge_batch_t *b) {
    uint64_t young[NEAP_MAP_WORDS];
    memcpy(young, a->young_map, sizeof young);
    memset(a->young_map, 0, sizeof a->young_map);
    if (a->pages_dirty == 0) return 0;
    return neap_arena_purge_except(a, young, b);
}

void _neap_purge_batch_init(neap_purge_batch_t *b) {
    b->n = b->bytes = b->calls = 0;
    b->plain = neap_opt(NEAP_OPTION_PURGE_BATCH) == 0;
    /* with meshing, arenas are shared mappings of the memory file, whose
     * pages only MADV_REMOVE frees (DONTNEED would only unmap them) */
    b->remove = neap_mesh_on();
    b->fd = _neap_mesh_file_fd();
}

/* ---------------------------------------------------------------------------
 * Huge blocks: their own mapping, aligned to the arena size so the address
 * map can tell them apart from everything else.
 *
 *   live    header magic LIVE, map bytes set
 *   cached  freed, kept mapped for reuse: magic CACHED, map bytes still set
 *           (so a second free of the pointer reads the header and is told
 *           apart as a double free), in neap_huge_cache
 *   gone    map bytes cleared under the lock, then unmapped outside it;
 *           a freed block's user address kept in neap_huge_gone
 *
 * Every header read through a pointer a caller passed (free, usable size,
 * realloc) happens under _neap_huge_lock after re-reading the map byte: a
 * mapping leaves the map under the lock before it is unmapped, so a stale
 * pointer never reads an unmapped header, even while another thread expires
 * the cache.
 * ------------------------------------------------------------------------- */
typedef struct neap_huge_s {
    size_t map_size;     /* bytes mapped */
    uintptr_t user;      /* the pointer handed out */
    size_t usable;       /* bytes usable from user */
    uint64_t magic;      /* NEAP_HUGE_MAGIC live, NEAP_HUGE_CACHED in the cache */
} neap_huge_t;

#define NEAP_HUGE_MAGIC 0x6e6561702d687567ull   /* "neap-hug" */
#define NEAP_HUGE_CACHED 0x6e6561702d636163ull  /* "neap-cac" */
#define NEAP_HUGE_MAX_ALIGN ((size_t)64 << 20)
#define NEAP_HUGE_CACHE_SLOTS 8

typedef struct neap_huge_span_s {
    uintptr_t base;
    size_t size;
    uint64_t since;      /* ms clock when it was freed (cache entries) */
} neap_huge_span_t;

/* Mappings to unmap once the lock is dropped: at most every cache entry,
 * plus the block being freed or the tail cut off a reused mapping. */
typedef struct neap_huge_drop_s {
    neap_huge_span_t span[NEAP_HUGE_CACHE_SLOTS + 2];
    size_t n;
} neap_huge_drop_t;

NEAP_INTERNAL pthread_mutex_t _neap_huge_lock = PTHREAD_MUTEX_INITIALIZER;
static neap_huge_span_t neap_huge_cache[NEAP_HUGE_CACHE_SLOTS];  /* oldest first (lock) */
static size_t neap_huge_ncached;                                 /* (lock) */
/* since of the oldest entry, for a check without the lock; the cached bytes
 * are _neap_gstats.huge_cached (written under the lock) */
static _Atomic uint64_t neap_huge_oldest;
/* ms clock of the last huge malloc, free or realloc (written under the lock) */
static _Atomic uint64_t neap_huge_last;

/* The user addresses of the last NEAP_HUGE_GONE_SLOTS huge blocks whose
 * mappings were unmapped after their free (at once, or out of the cache),
 * newest at gone_next - 1 (lock).  A second free of one finds its map bytes
 * cleared, as a foreign pointer does: this ring tells it a double free,
 * from the address alone (nothing is read there).  Its limits: a block
 * whose mapping went before the last 16 others' is reported as not neap's;
 * an address neap maps a huge block at again leaves the ring; and a
 * pointer equal to an address in it is taken as foreign if a page is
 * mapped there now (something else's, mapped since). */
#define NEAP_HUGE_GONE_SLOTS 16
static uintptr_t neap_huge_gone[NEAP_HUGE_GONE_SLOTS];
static size_t neap_huge_gone_next;

/* The block at user went, its mapping is about to be unmapped (lock held). */
static void neap_huge_gone_note(uintptr_t user) {
    neap_huge_gone[neap_huge_gone_next] = user;
    neap_huge_gone_next = (neap_huge_gone_next + 1) % NEAP_HUGE_GONE_SLOTS;
}

/* A new huge mapping at [base, base + size): addresses in it are live
 * again, or will be (lock held). */
static void neap_huge_gone_forget(uintptr_t base, size_t size) {
    for (size_t i = 0; i < NEAP_HUGE_GONE_SLOTS; i++)
        if (neap_huge_gone[i] - base < size) neap_huge_gone[i] = 0;
}

static bool neap_huge_gone_has(uintptr_t p) {
    for (size_t i = 0; i < NEAP_HUGE_GONE_SLOTS; i++)
        if (neap_huge_gone[i] == p) return true;
    return false;
}

/* Clears the map bytes of the units a mapping no longer reaches when it
 * shrinks from old_size to new_size bytes. */
static void neap_map_trim(uintptr_t base, size_t old_size, size_t new_size) {
    size_t keep = (new_size + NEAP_ARENA_MASK) & ~NEAP_ARENA_MASK;
    if (old_size > keep) neap_map_clear(base + keep, old_size - keep);
}

static void neap_huge_drop(neap_huge_drop_t *d, uintptr_t base, size_t size) {
    d->span[d->n].base = base;
    d->span[d->n].size = size;
    d->n++;
}

static void neap_huge_unmap(const neap_huge_drop_t *d) {
    for (size_t i = 0; i < d->n; i++) {
        _neap_os_unmap((void *)d->span[i].base, d->span[i].size);
        atomic_fetch_add_explicit(&_neap_gstats.bytes_unmapped, d->span[i].size, memory_order_relaxed);
    }
}

/* Takes entry i out of the cache (lock held). */
static neap_huge_span_t neap_huge_cache_take(size_t i) {
    neap_huge_span_t s = neap_huge_cache[i];
    memmove(&neap_huge_cache[i], &neap_huge_cache[i + 1], (neap_huge_ncached - i - 1) * sizeof s);
    neap_huge_ncached--;
    atomic_fetch_sub_explicit(&_neap_gstats.huge_cached, s.size, memory_order_relaxed);
    atomic_store_explicit(&neap_huge_oldest, neap_huge_ncached ? neap_huge_cache[0].since : 0,
                          memory_order_relaxed);
    return s;
}

/* Puts s into the cache in its place by free time, oldest first (lock
 * held, a slot free). */
static void neap_huge_cache_put(neap_huge_span_t s) {
    neap_assert(neap_huge_ncached < NEAP_HUGE_CACHE_SLOTS);
    size_t i = neap_huge_ncached;
    while (i > 0 && neap_huge_cache[i - 1].since > s.since) i--;
    memmove(&neap_huge_cache[i + 1], &neap_huge_cache[i], (neap_huge_ncached - i) * sizeof s);
    neap_huge_cache[i] = s;
    neap_huge_ncached++;
    atomic_fetch_add_explicit(&_neap_gstats.huge_cached, s.size, memory_order_relaxed);
    atomic_store_explicit(&neap_huge_oldest, neap_huge_cache[0].since, memory_order_relaxed);
}

/* Moves the oldest entry out of the cache and out of the map, to be unmapped
 * by the caller (lock held). */
static void neap_huge_cache_evict(neap_huge_drop_t *d) {
    neap_huge_span_t s = neap_huge_cache_take(0);
    uintptr_t user = ((const neap_huge_t *)s.base)->user;   /* still mapped */
    if (user != 0) neap_huge_gone_note(user);   /* 0: the tail of a reused mapping */
    neap_map_clear(s.base, s.size);
    neap_huge_drop(d, s.base, s.size);
}

/* Evicts, oldest first, what the cache may no longer keep: everything once
 * huge blocks have been quiet (no huge malloc, free or realloc) for
 * NEAP_PURGE_DELAY ms; a mapping freed NEAP_PURGE_DELAY ms ago or more
 * while the cache holds more than the live huge blocks (NEAP_PURGE_MAX
 * covers only the newer ones), or NEAP_HUGE_CACHE_AGE delays ago; all of
 * them if all (lock held). */
#define NEAP_HUGE_CACHE_AGE 100
static void neap_huge_cache_expire_locked(uint64_t now, bool all, neap_huge_drop_t *d) {
    uint64_t delay = (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    bool quiet = atomic_load_explicit(&neap_huge_last, memory_order_relaxed) + delay <= now;
    size_t live = atomic_load_explicit(&_neap_gstats.huge_bytes, memory_order_relaxed);
    while (neap_huge_ncached > 0) {
        uint64_t since = neap_huge_cache[0].since;
        bool old = since + delay <= now &&
                   atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) > live;
        if (!(all || quiet || old || since + delay * NEAP_HUGE_CACHE_AGE <= now)) break;
        neap_huge_cache_evict(d);
    }
}

/* Huge blocks are in use now: the cache stays warm (lock held). */
static void neap_huge_active(uint64_t now) {
    atomic_store_explicit(&neap_huge_last, now, memory_order_relaxed);
}

void _neap_huge_cache_expire(uint64_t now) {
    if (atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) == 0) return;
    uint64_t delay = (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    uint64_t oldest = atomic_load_explicit(&neap_huge_oldest, memory_order_relaxed);
    if (atomic_load_explicit(&neap_huge_last, memory_order_relaxed) + delay > now &&
        oldest + delay * NEAP_HUGE_CACHE_AGE > now &&
        (oldest + delay > now || atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) <=
                                     atomic_load_explicit(&_neap_gstats.huge_bytes, memory_order_relaxed)))
        return;
    /* a thread holding the lock is in a huge alloc or free, which expires too */
    if (pthread_mutex_trylock(&_neap_huge_lock) != 0) return;
    neap_huge_drop_t d = {.n = 0};
    neap_huge_cache_expire_locked(now, false, &d);
    pthread_mutex_unlock(&_neap_huge_lock);
    neap_huge_unmap(&d);
}

int _neap_huge_cache_flush(void) {
    if (atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) == 0) return 0;
    neap_huge_drop_t d = {.n = 0};
    pthread_mutex_lock(&_neap_huge_lock);
    neap_huge_cache_expire_locked(0, true, &d);
    pthread_mutex_unlock(&_neap_huge_lock);
    neap_huge_unmap(&d);
    return d.n > 0;
}

/* A cached mapping of at least need bytes whose base is a multiple of
 * base_align, made the live block with its data at base + offset; NULL if
 * the cache has none.  Best fit; a mapping more than an eighth larger than
 * need has its tail unmapped at once, so reuse never keeps more memory than
 * a fresh mapping would. */
static char *neap_huge_cache_get(size_t need, size_t base_align, size_t offset, bool smaller) {
    if (atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) == 0) return NULL;
    neap_huge_drop_t d = {.n = 0};
    neap_huge_t *h = NULL;
    pthread_mutex_lock(&_neap_huge_lock);
    uint64_t now = _neap_os_clock_ms();
    neap_huge_active(now);
    neap_huge_cache_expire_locked(now, false, &d);
    size_t best = NEAP_HUGE_CACHE_SLOTS;
    for (size_t i = 0; i < neap_huge_ncached; i++) {
        const neap_huge_span_t *s = &neap_huge_cache[i];
        if (s->size < need || (s->base & (base_align - 1)) != 0) continue;
        if (best == NEAP_HUGE_CACHE_SLOTS || s->size < neap_huge_cache[best].size) best = i;
    }
    if (best == NEAP_HUGE_CACHE_SLOTS && smaller) {
        /* none holds need: the largest, for the caller to grow */
        for (size_t i = 0; i < neap_huge_ncached; i++)
            if ((neap_huge_cache[i].base & (base_align - 1)) == 0 &&
                (best == NEAP_HUGE_CACHE_SLOTS || neap_huge_cache[i].size > neap_huge_cache[best].size))
                best = i;
    }
    if (best < NEAP_HUGE_CACHE_SLOTS) {
        neap_huge_span_t s = neap_huge_cache_take(best);
        if (s.size > need && s.size - need > need / 8) {
            /* the whole 4 MiB units past need stay in the cache, a mapping
             * of their own (they are warm too); the rest of need's last
             * unit is unmapped if more than an eighth of need */
            size_t cut = (need + NEAP_ARENA_MASK) & ~NEAP_ARENA_MASK;
            if (cut < s.size) {
                neap_huge_t *t = (neap_huge_t *)(s.base + cut);
                t->map_size = s.size - cut;
                t->user = 0;
                t->usable = 0;
                t->magic = NEAP_HUGE_CACHED;
                neap_map_set(s.base + cut, s.size - cut, true);
                neap_huge_cache_put((neap_huge_span_t){s.base + cut, s.size - cut, s.since});
                s.size = cut;
            }
            if (s.size - need > need / 8) {
                neap_huge_drop(&d, s.base + need, s.size - need);
                s.size = need;
            }
        }
        h = (neap_huge_t *)s.base;
        h->map_size = s.size;
        h->user = s.base + offset;
        h->usable = s.size - offset;
        h->magic = NEAP_HUGE_MAGIC;
    }
    pthread_mutex_unlock(&_neap_huge_lock);
    neap_huge_unmap(&d);
    return (char *)h;
}

void *_neap_huge_alloc(size_t size, size_t align, bool zero, size_t *usable) {
    if (align < NEAP_PAGE_SIZE) align = NEAP_PAGE_SIZE;
    if (align > NEAP_HUGE_MAX_ALIGN) {   /* a valid alignment neap cannot satisfy */
        errno = ENOMEM;
        return NULL;
    }
    /* header in the first page, user data after; a block of size 0 still
     * gets a byte, so that its address lies inside its own mapping (at an
     * alignment of a whole mapping, offset + 0 would be its end) */
    size_t offset = align;
    if (size == 0) size = 1;
    if (size > ((size_t)1 << NEAP_ADDR_BITS) - offset - NEAP_ARENA_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t map_size = (offset + size + NEAP_PAGE_MASK) & ~NEAP_PAGE_MASK;
    size_t base_align = NEAP_ARENA_SIZE > align ? NEAP_ARENA_SIZE : align;
    /* a cached mapping that holds the request, or else the largest one,
     * grown with mremap: its pages are warm, and only the growth is new
     * (not for an aligned block: a mapping moves at 4 MiB alignment) */
    neap_huge_t *h = (neap_huge_t *)neap_huge_cache_get(map_size, base_align, offset, offset == NEAP_PAGE_SIZE);
    if (h != NULL) {
        size_t warm = h->usable < size ? h->usable : size;
        atomic_fetch_add_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&_neap_gstats.huge_bytes, h->map_size, memory_order_relaxed);
        if (h->map_size < map_size) {
            void *q = _neap_huge_realloc((void *)h->user, size, true, "malloc");
            if (q == NULL) {
                _neap_huge_free((uintptr_t)h, (void *)h->user, "malloc");   /* back to the cache */
                h = NULL;
            } else {
                h = (neap_huge_t *)((uintptr_t)q - offset);
            }
        }
        if (h != NULL) {
            if (zero) memset((void *)h->user, 0, warm);   /* reused pages are dirty; grown ones zero */
            neap_assert(h->user > (uintptr_t)h && h->user + size <= (uintptr_t)h + h->map_size);
            if (usable) *usable = h->usable;
            return (void *)h->user;
        }
    }
    {
        char *base = _neap_os_map_aligned(map_size, base_align);
        if (base == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        h = (neap_huge_t *)base;   /* fresh mapping: zero */
        h->map_size = map_size;
        h->user = (uintptr_t)base + offset;
        h->usable = map_size - offset;
        h->magic = NEAP_HUGE_MAGIC;
        pthread_mutex_lock(&_neap_huge_lock);
        neap_huge_active(_neap_os_clock_ms());
        neap_map_set((uintptr_t)base, map_size, true);
        neap_huge_gone_forget((uintptr_t)base, map_size);
        pthread_mutex_unlock(&_neap_huge_lock);
    }
    neap_assert(h->user > (uintptr_t)h && h->user + size <= (uintptr_t)h + h->map_size);
    atomic_fetch_add_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.huge_bytes, h->map_size, memory_order_relaxed);
    if (usable) *usable = h->usable;
    return (void *)h->user;
}

uintptr_t _neap_huge_base(uintptr_t p, uint8_t kind) {
    if (kind < NEAP_MAP_HUGE || kind == NEAP_MAP_FAR) return 0;
    return (p & ~NEAP_ARENA_MASK) - ((uintptr_t)(kind - NEAP_MAP_HUGE) << NEAP_ARENA_SHIFT);
}

/* What a pointer given to free or realloc turned out to be. */
enum { NEAP_HUGE_NOT_NEAP, NEAP_HUGE_FAR, NEAP_HUGE_INSIDE, NEAP_HUGE_DOUBLE };

/* The header of the live huge block that starts at p, or NULL with *why
 * saying what p is instead (lock held: the map byte is re-read, so the
 * header read is of a mapping that is still there). */
static neap_huge_t *neap_huge_lookup_locked(uintptr_t p, int *why) {
    uint8_t kind = _neap_map_kind(p);
    if (kind < NEAP_MAP_HUGE) {
        *why = NEAP_HUGE_NOT_NEAP;
        return NULL;
    }
    uintptr_t base = _neap_huge_base(p, kind);
    if (base == 0) {
        *why = NEAP_HUGE_FAR;
        return NULL;
    }
    neap_huge_t *h = (neap_huge_t *)base;
    if (h->user == p && h->magic == NEAP_HUGE_MAGIC) return h;
    *why = h->user == p && h->magic == NEAP_HUGE_CACHED ? NEAP_HUGE_DOUBLE : NEAP_HUGE_INSIDE;
    return NULL;
}

/* p's map byte says not neap's: a huge block whose mapping is gone (in
 * neap_huge_gone, nothing mapped there now) or a foreign pointer. */
static __attribute__((noreturn, cold)) void neap_fatal_unmapped(const char *func, const void *p, bool gone) {
    if (gone && !_neap_os_is_mapped(p))
        _neap_fatal_pointer(func, p, "double free of huge block (already unmapped)");
    _neap_fatal_pointer(func, p, "invalid pointer (not allocated by neap)");
}

void _neap_fatal_not_neap(const char *func, const void *p) {
    pthread_mutex_lock(&_neap_huge_lock);
    bool gone = neap_huge_gone_has((uintptr_t)p);
    pthread_mutex_unlock(&_neap_huge_lock);
    neap_fatal_unmapped(func, p, gone);
}

static __attribute__((noreturn, cold)) void neap_huge_bad(const char *func, const void *p, int why) {
    /* the map bytes were cleared since the caller read them: a free racing
     * with this one, or the cache's expiry */
    bool gone = why == NEAP_HUGE_NOT_NEAP && neap_huge_gone_has((uintptr_t)p);
    pthread_mutex_unlock(&_neap_huge_lock);
    switch (why) {
    case NEAP_HUGE_NOT_NEAP:
        neap_fatal_unmapped(func, p, gone);
    case NEAP_HUGE_FAR:
        _neap_fatal_pointer(func, p, "invalid pointer (inside a huge block)");
    case NEAP_HUGE_DOUBLE:
        _neap_fatal_pointer(func, p, "double free of huge block");
    default:
        _neap_fatal_pointer(func, p, "invalid pointer (inside a huge block, not its start)");
    }
}

size_t _neap_huge_usable(uintptr_t base, const void *p) {
    (void)base;   /* looked up again under the lock */
    int why;
    pthread_mutex_lock(&_neap_huge_lock);
    const neap_huge_t *h = neap_huge_lookup_locked((uintptr_t)p, &why);
    size_t usable = h ? h->usable : 0;
    pthread_mutex_unlock(&_neap_huge_lock);
    return usable;
}

/* The bytes the cache may hold: NEAP_PURGE_MAX, or the bytes of the live
 * huge blocks if that is more (lock held, the block being freed no
 * longer counted as live). */
static size_t neap_huge_cache_max(void) {
    size_t max = (size_t)neap_opt(NEAP_OPTION_PURGE_MAX);
    size_t live = atomic_load_explicit(&_neap_gstats.huge_bytes, memory_order_relaxed);
    return live > max ? live : max;
}

/* Evicts the oldest entries until the cache is within its bound with room
 * bytes more, and, if room is not 0, a free slot for them (lock held). */
static void neap_huge_cache_fit(neap_huge_drop_t *d, size_t room) {
    size_t max = neap_huge_cache_max();
    while (neap_huge_ncached > 0 &&
           ((room > 0 && neap_huge_ncached == NEAP_HUGE_CACHE_SLOTS) ||
            atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) + room > max))
        neap_huge_cache_evict(d);
}

/* A freed mapping goes to the cache if NEAP_PURGE_DELAY is not 0 and it fits
 * in NEAP_PURGE_MAX bytes (the oldest entries make room: at most
 * NEAP_HUGE_CACHE_SLOTS mappings and NEAP_PURGE_MAX bytes are cached);
 * otherwise it is unmapped at once. */
void _neap_huge_free(uintptr_t base, void *p, const char *func) {
    (void)base;   /* looked up again under the lock */
    neap_huge_drop_t d = {.n = 0};
    int why;
    pthread_mutex_lock(&_neap_huge_lock);
    neap_huge_t *h = neap_huge_lookup_locked((uintptr_t)p, &why);
    if (h == NULL) neap_huge_bad(func, p, why);
    size_t size = h->map_size;
    atomic_fetch_sub_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&_neap_gstats.huge_bytes, size, memory_order_relaxed);
    uint64_t now = _neap_os_clock_ms();
    neap_huge_active(now);
    neap_huge_cache_expire_locked(now, false, &d);
    bool keep = neap_opt(NEAP_OPTION_PURGE_DELAY) > 0 && size <= neap_huge_cache_max();
    neap_huge_cache_fit(&d, keep ? size : 0);
    if (keep) {
        h->magic = NEAP_HUGE_CACHED;
        neap_huge_cache_put((neap_huge_span_t){(uintptr_t)h, size, now});
    } else {
        h->magic = 0;
        neap_huge_gone_note(h->user);
        neap_map_clear((uintptr_t)h, size);
        neap_huge_drop(&d, (uintptr_t)h, size);
    }
    pthread_mutex_unlock(&_neap_huge_lock);
    neap_huge_unmap(&d);
}

/* Resizes the huge block p to size bytes without copying: the mapping
 * shrinks (its tail unmapped, unless that is an eighth of it or less) or
 * grows in place, or else its pages move (mremap) onto a fresh 4 MiB-aligned
 * reservation (unless !move).  Returns the block, at p
 * or at its new address, or NULL if the mapping could not be resized; p is
 * then untouched and the caller copies. */
void *_neap_huge_realloc(void *p, size_t size, bool move, const char *func) {
    int why;
    pthread_mutex_lock(&_neap_huge_lock);
    neap_huge_t *h = neap_huge_lookup_locked((uintptr_t)p, &why);
    if (h == NULL) neap_huge_bad(func, p, why);
    uintptr_t base = (uintptr_t)h;
    size_t old_size = h->map_size, offset = h->user - base;
    neap_huge_active(_neap_os_clock_ms());
    pthread_mutex_unlock(&_neap_huge_lock);
    if (size > ((size_t)1 << NEAP_ADDR_BITS) - offset - NEAP_ARENA_SIZE) return NULL;
    size_t new_size = (offset + size + NEAP_PAGE_MASK) & ~NEAP_PAGE_MASK;
    /* an eighth of slack is kept, as when a cached mapping is reused */
    if (new_size <= old_size && old_size - new_size <= new_size / 8) return p;
    if (new_size < old_size) {
        neap_huge_drop_t d = {.n = 0};
        pthread_mutex_lock(&_neap_huge_lock);
        neap_map_trim(base, old_size, new_size);
        h->map_size = new_size;
        h->usable = new_size - offset;
        atomic_fetch_sub_explicit(&_neap_gstats.huge_bytes, old_size - new_size, memory_order_relaxed);
        neap_huge_cache_fit(&d, 0);   /* fewer live huge bytes: the bound may be lower */
        neap_huge_drop(&d, base + new_size, old_size - new_size);
        pthread_mutex_unlock(&_neap_huge_lock);
        neap_huge_unmap(&d);
        return p;
    }
    if (move) {
        /* a freed mapping waiting in the cache is warm: copying into it
         * costs a fraction of the page faults that growing into fresh
         * pages would take (each a trap, and a page zeroed) */
        neap_huge_t *w = (neap_huge_t *)neap_huge_cache_get(new_size, NEAP_ARENA_SIZE, offset, false);
        if (w != NULL) {
            atomic_fetch_add_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&_neap_gstats.huge_bytes, w->map_size, memory_order_relaxed);
            memcpy((void *)w->user, p, old_size - offset);
            _neap_huge_free(base, p, func);
            return (void *)w->user;
        }
    }
    char *q = _neap_os_remap((void *)base, old_size, new_size, NULL);
    if (q == NULL) {
        if (!move) return NULL;
        /* the pages after it are taken: move it, to an aligned address the
         * map can describe (mremap alone would pick any address) */
        char *dest = _neap_os_map_aligned(new_size, NEAP_ARENA_SIZE);
        if (dest == NULL) return NULL;
        pthread_mutex_lock(&_neap_huge_lock);
        neap_map_clear(base, old_size);   /* out of the map before it is gone */
        pthread_mutex_unlock(&_neap_huge_lock);
        q = _neap_os_remap((void *)base, old_size, new_size, dest);
        if (q == NULL) {
            pthread_mutex_lock(&_neap_huge_lock);
            neap_map_set(base, old_size, true);
            pthread_mutex_unlock(&_neap_huge_lock);
            _neap_os_unmap(dest, new_size);
            return NULL;
        }
    }
    h = (neap_huge_t *)q;
    pthread_mutex_lock(&_neap_huge_lock);
    h->map_size = new_size;
    h->user = (uintptr_t)q + offset;
    h->usable = new_size - offset;
    neap_map_set((uintptr_t)q, new_size, true);
    neap_huge_gone_forget((uintptr_t)q, new_size);
    pthread_mutex_unlock(&_neap_huge_lock);
    atomic_fetch_add_explicit(&_neap_gstats.huge_bytes, new_size - old_size, memory_order_relaxed);
    return (void *)h->user;
}

/* The huge cache against its invariants (validate.c): at most
 * NEAP_HUGE_CACHE_SLOTS mappings, oldest first, their bytes counted in
 * huge_cached, each a 4 MiB-aligned mapping whose header says CACHED with
 * its size and whose map bytes are still set.  NEAP_PURGE_MAX is not held
 * against the total: neap_option_set may lower it, and the cache shrinks
 * to it only at the next huge free. */
void _neap_huge_cache_validate(void) {
    neap_vwhere_t w = {.page = -1};
    pthread_mutex_lock(&_neap_huge_lock);
    size_t bytes = 0;
    if (neap_huge_ncached > NEAP_HUGE_CACHE_SLOTS)
        _neap_invariant_fail("the huge cache holds at most 8 mappings", &w, "cached", neap_huge_ncached, NULL, 0,
                             NULL, 0);
    for (size_t i = 0; i < neap_huge_ncached; i++) {
        const neap_huge_span_t *s = &neap_huge_cache[i];
        const neap_huge_t *h = (const neap_huge_t *)s->base;
        w.block = h;
        if ((s->base & NEAP_ARENA_MASK) != 0 || s->size == 0 || (s->size & NEAP_PAGE_MASK) != 0)
            _neap_invariant_fail("a cached huge mapping is 4 MiB-aligned, whole pages", &w, "size", s->size, NULL, 0,
                                 NULL, 0);
        size_t units = (s->size + NEAP_ARENA_MASK) >> NEAP_ARENA_SHIFT;
        for (size_t u = 0; u < units; u++) {
            uint8_t want = (uint8_t)(u + NEAP_MAP_HUGE < NEAP_MAP_FAR ? u + NEAP_MAP_HUGE : NEAP_MAP_FAR);
            uint8_t got = _neap_map_kind(s->base + (u << NEAP_ARENA_SHIFT));
            if (got != want)
                _neap_invariant_fail("a cached huge mapping keeps its map bytes", &w, "unit", u, "map", got, "expected",
                                     want);
        }
        if (h->magic != NEAP_HUGE_CACHED || h->map_size != s->size)
            _neap_invariant_fail("a cached huge mapping's header says CACHED, with its size", &w, "magic_ok",
                                 h->magic == NEAP_HUGE_CACHED, "map_size", h->map_size, "size", s->size);
        if (i > 0 && s->since < neap_huge_cache[i - 1].since)
            _neap_invariant_fail("the huge cache is oldest first", &w, "since", s->since, "previous",
                                 neap_huge_cache[i - 1].since, NULL, 0);
        bytes += s->size;
    }
    w.block = NULL;
    size_t counted = atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed);
    if (bytes != counted)
        _neap_invariant_fail("huge_cached counts the cached mappings' bytes", &w, "huge_cached", counted, "sum", bytes,
                             NULL, 0);
    uint64_t oldest = atomic_load_explicit(&neap_huge_oldest, memory_order_relaxed);
    if (oldest != (neap_huge_ncached ? neap_huge_cache[0].since : 0))
        _neap_invariant_fail("neap_huge_oldest is the oldest entry's free time", &w, "oldest", oldest, "entries",
                             neap_huge_ncached, NULL, 0);
    pthread_mutex_unlock(&_neap_huge_lock);
}

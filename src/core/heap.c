/* heap.c -- per-thread heaps: size classes, pools, remote frees, purging,
 * and arenas handed over when threads exit.
 *
 *   heap (one per thread, no lock)
 *   +-------------+
 *   | direct[cls] |---> current pool of the class: malloc pops pool->free
 *   | partial[cls]|---> pool <-> pool <-> pool   (free blocks left; a full
 *   |             |     pool that gets a block back joins the tail)
 *   | empty list  |---> pool <-> pool            (no block out, any class,
 *   |             |     oldest first; at most NEAP_EMPTY_KEEP_PAGES pages)
 *   | arenas      |---> arena -> arena -> ...    (owned, any order)
 *   | dirty queue |---> arena -> arena           (have empty pages, oldest first)
 *   +-------------+
 *
 *   a pool pointer is the address of its head page, where its header is:
 *   +------------------------------------+-----+-------+-- ... --+-------+
 *   | free local_free used bumped first  | gap | block |         | block |
 *   | block_size recip npages cls linked |     |   0   |         | cap-1 |
 *   | next prev                          |     |       |         |       |
 *   +------------------------------------+-----+-------+-- ... --+-------+
 *   and arena.kind[] of that page says POOL or FULL (the state lives there,
 *   not in the header, so a free validates the page before reading it).
 *
 * A pool's life:  new (from the arena's lowest free pages, in the fullest
 * arena; its header written into its head page), or an empty pool taken
 * back -> direct (its count carries 1 more) -> FULL when exhausted -> POOL
 * on the partial list when a block comes back -> on the heap's empty list
 * when its last block comes back (lazy retirement: taken back before any
 * new page, as it is or made over for another class of its page count) ->
 * retired: when the empty list holds more than NEAP_EMPTY_KEEP_PAGES (the
 * oldest first; its pages then wait out the purge delay below), or at a
 * purge check once it has been empty NEAP_PURGE_DELAY ms (its pages go
 * back at once), or at trim and thread exit.  A retired pool's pages turn
 * FREE (the header becomes garbage) and dirty, join the dirty queue and go
 * back to the OS after NEAP_PURGE_DELAY ms (to twice that: the queue holds
 * arenas, and pages that empty in an arena already queued wait for the
 * next round), or sooner once the heap holds more than NEAP_PURGE_MAX dirty
 * bytes.  An orphan's pool whose last block comes back retires at once.
 * A heap over NEAP_PURGE_MAX gives back all its dirty pages at once, so a
 * burst of frees purges in a few large rounds, not a page or two at every
 * release.  A purge round collects its ranges in one batch on its stack,
 * given back by one system call per 256 ranges (arena.c, os.c).
 * An arena left empty is unmapped at that moment too, beyond the
 * NEAP_ARENA_RESERVE empty arenas a heap keeps.
 * The direct pool is never retired while it is direct (churn on one object
 * would thrash); neap_trim and thread exit retire it.
 *
 * Remote frees: a block freed by a thread that does not own its arena is
 * pushed on the arena's atomic `remote` stack; the push that makes the stack
 * non-empty raises the owner's `remote_pending` flag (or the global orphan
 * flag), and the owner drains its arenas at its next slow path.  Remote
 * blocks count as used until drained.
 *
 * Thread exit: remote frees drained, empty pools retired, spare runs
 * released; each arena is orphaned (owner = NULL) on the orphan list, newest
 * first, its dirty pages kept (a clean empty arena is unmapped at once).  A
 * heap that needs an arena adopts an orphan before mapping a new one, so a
 * thread that starts soon after another ended reuses its warm pages instead
 * of faulting in fresh ones.  Pages are kept warm only while threads come
 * and go: unless a heap was made, after some thread had ended, within
 * NEAP_CHURN_WINDOW_MS of this exit (or 100 purge delays if that is
 * longer), the exiting heap first gives back every dirty page: a pool of
 * workers joined at the end of a job, or a program winding down, keeps
 * nothing for threads that will not come.  Orphans wait like a heap's
 * dirty arenas: once NEAP_PURGE_DELAY ms have passed since an arena was
 * orphaned, the next orphan collection gives its dirty pages back (pages
 * that emptied later, through frees into the orphan, go with them) and
 * unmaps it if it is empty; and whenever the orphans' dirty pages exceed
 * NEAP_PURGE_MAX, the oldest orphans give theirs back at once.  Collections run at slow paths
 * that see the orphan flag (set by a thread's exit and by frees into an
 * orphan), at every 16th slow path of a heap while an orphan still waits,
 * in the background thread's rounds while one waits, and at neap_trim
 * (everything, at once).  Frees into orphans are applied by whichever
 * thread collects next.  Without the background thread an orphan's wait
 * needs some allocation activity to end, like a heap's: what an idle
 * process keeps is then bounded by NEAP_PURGE_MAX.
 *
 * Memory order: arena.owner and the remote stack are seq_cst.  A pusher does
 * CAS(remote) then load(owner); the exiting owner does store(owner = NULL)
 * then exchange(remote).  Either the exchange sees the block, or the pusher
 * sees owner == NULL and raises the orphan flag.
 *
 * The owner's slow paths and the background purge.  The slow paths take no
 * lock: a heap's dirty queue, arena lists and page maps are its owner's, and
 * only the optional background thread (NEAP_BACKGROUND) ever works on them
 * from outside, to give back the pages of a heap whose owner sits idle (an
 * active owner purges its own heap every 16 slow paths).  Two words:
 *
 *   busy     the owner is in a slow path: 1 on entry, 0 (release) on leaving
 *   claimed  the purger holds the heap: CAS 0 -> 1, store 0 (release)
 *
 *   owner (_neap_heap_enter)              purger (_neap_heaps_purge_expired)
 *   busy = 1             (relaxed)        CAS claimed 0 -> 1
 *   compiler barrier                      membarrier(PRIVATE_EXPEDITED)
 *   if claimed (acquire):                 if busy (acquire): claimed = 0, skip
 *       wait until claimed == 0           purge the heap
 *   ... slow path ...                     dirty_pub = dirty_pages
 *   dirty_pub = dirty_pages, busy = 0     claimed = 0    (release)
 *
 * Why it is safe: membarrier makes every running thread of the process
 * execute a full memory barrier (a thread not running passes one when it is
 * switched out) before it returns.  Take the owner's barrier point relative
 * to its two steps.  If it came after the store of busy, the store is
 * globally visible before the membarrier returns, so the purger's load sees
 * busy = 1 and backs off.  If it came before (or inside the window before
 * the store), the owner's load of claimed runs after the barrier, which
 * came after the purger's CAS: it sees claimed = 1 and waits.  (The
 * compiler barrier keeps the compiler from swapping the owner's store and
 * load; the hardware may, and the membarrier is what orders them.)  So the
 * purger never works on a heap while its owner is inside a slow path.  The
 * data: the purger's acquire load of busy reads the owner's release store of
 * 0, so the owner's last slow path happens before the purge; the owner's
 * acquire load of claimed reads the purger's release store of 0, so the
 * purge happens before the owner's next slow path.  The owner pays a store,
 * a load and a branch on entry and two stores on leaving (dirty_pub and
 * busy): no atomic read-modify-write, no fence.
 * The fast paths take no part: they touch pool headers and read kind[],
 * which the purge never writes (it only works on free pages and on arenas
 * with no page in use).
 *
 * An owner that finds its heap claimed keeps busy = 1 and yields until the
 * claim ends: a purger that has not looked yet lets go at once, one that
 * has finishes a batch of at most NEAP_CLAIM_BATCH heaps first.  Rare and
 * short.  The purger waits for nothing but _neap_lock (to unmap an arena)
 * and the huge cache's lock while it holds claims; an owner never waits
 * for a claim while it holds either, except a thread recycling a dead heap
 * under _neap_lock, and the purger lets every dead or busy heap of a batch
 * go before it purges any (a live heap it keeps cannot die meanwhile: its
 * owner's exit enters the heap first), so they cannot deadlock.
 *
 * Where membarrier(2) is missing (or refuses to register), the purger
 * claims no heap at all: owners give back their own pages on their slow
 * paths, at thread exit and on neap_trim, and the background thread keeps
 * to orphan arenas and the huge cache.  Owners do the same either way.
 *
 * Fork: the forking thread enters its heap (so no purge is under way in it)
 * before taking the global locks; the child, whose background thread does
 * not exist, clears the claims of the survivor (a purger may have taken it
 * to find the heap busy, in the instant of the fork) and of the heaps
 * waiting for reuse, and registers membarrier anew when its own background
 * thread starts.
 *
 * Statistics readers of other threads (stats.c) read no heap field of an
 * owner but the atomics below the line in neap_heap_t: dirty_pub, and the
 * tally the owner counts on its next slow path after a reader asked
 * (NEAP_REQ_TALLY in requests), and the pools it made (pools_made),
 * relaxed; the tally under a sequence lock (stats.c).
 */
#include "core/fastpath.h"

#include <errno.h>

/* ---------------------------------------------------------------------------
 * Globals
 * ------------------------------------------------------------------------- */
neap_class_t _neap_class[NEAP_CLASS_MAX + 1];
neap_pool_t _neap_pool_empty;   /* free == NULL: sends the fast path to the slow one */

/* Memory other threads may have freed a moment ago comes to this thread
 * (hooks.h: handover); slow paths only. */
static inline void neap_handover(void) {
    const neap_alloc_hooks_t *hooks = _neap_hooks_get();
    if (neap_unlikely(hooks != NULL)) hooks->handover();
}

#define NEAP_E8 &_neap_pool_empty, &_neap_pool_empty, &_neap_pool_empty, &_neap_pool_empty, \
                &_neap_pool_empty, &_neap_pool_empty, &_neap_pool_empty, &_neap_pool_empty
neap_heap_t _neap_heap_empty = {
    .direct = {NEAP_E8, NEAP_E8, NEAP_E8, NEAP_E8, NEAP_E8, NEAP_E8, NEAP_E8, &_neap_pool_empty},
};
/* Owner of the arenas of threads that did not survive a fork. */
static neap_heap_t neap_heap_zombie;

__thread neap_heap_t *_neap_tl_heap = &_neap_heap_empty;

NEAP_INTERNAL neap_heap_t *_neap_all_heaps;        /* live heaps (global lock) */
static neap_heap_t *neap_free_heaps;               /* reusable heaps (global lock) */

NEAP_INTERNAL pthread_mutex_t _neap_orphan_lock = PTHREAD_MUTEX_INITIALIZER;
NEAP_INTERNAL neap_arena_t *_neap_orphans;         /* via hnext/hprev (orphan lock) */
static _Atomic int neap_orphans_pending;           /* frees wait in an orphan */
static _Atomic int neap_orphans_waiting;           /* an orphan has dirty pages or is empty */
static _Atomic size_t neap_orphans_count;
static _Atomic bool neap_thread_ended;             /* some thread has ended */
static _Atomic uint64_t neap_thread_churn_ms;      /* when a heap was last made after one ended */
/* A thread's exit keeps its warm pages for the next thread only while
 * threads come and go: a heap made, after some thread had ended, within
 * this many ms before the exit, or 100 purge delays if that is longer. */
#define NEAP_CHURN_WINDOW_MS 1000

_Static_assert(sizeof(_neap_heap_empty.direct) / sizeof(void *) == NEAP_CLASS_MAX + 1,
               "the empty heap must fill every direct slot");
_Static_assert((NEAP_VALIDATE_DEBUG_EVERY & (NEAP_VALIDATE_DEBUG_EVERY - 1)) == 0,
               "the debug build's validation interval is a power of two");

/* ---------------------------------------------------------------------------
 * Validation (validate.c): at the end of a slow path (h entered), every
 * NEAP_VALIDATE slow paths of the heap if that option is set, else every
 * one at NEAP_DEBUG 3, and at 2 every NEAP_VALIDATE_DEBUG_EVERY, or every
 * work / NEAP_VALIDATE_DEBUG_SHARE for a heap whose last validation did
 * more work than that (so a slow path pays a bounded share, whatever the
 * heap's size).  A release build without the option pays a load and a
 * test per slow path; the fast paths never validate.  neap_check_rare: the
 * points that come seldom (trim, thread exit, orphans collected, fork's
 * child) validate every time at levels >= 2 or with the option.
 * ------------------------------------------------------------------------- */
static inline void neap_heap_check(neap_heap_t *h) {
    long every = neap_opt(NEAP_OPTION_VALIDATE);
    bool scaled = false;
    if (neap_likely(every == 0)) {
        if (NEAP_DEBUG >= 3) every = 1;
        else if (NEAP_DEBUG == 2) {
            every = h->validate_every > NEAP_VALIDATE_DEBUG_EVERY ? h->validate_every : NEAP_VALIDATE_DEBUG_EVERY;
            scaled = true;
        } else return;
    }
    if (++h->validate_count < (unsigned long)every) return;
    h->validate_count = 0;
    size_t work = _neap_heap_validate(h);
    if (scaled) h->validate_every = (unsigned)(work / NEAP_VALIDATE_DEBUG_SHARE);
}

static inline bool neap_check_rare(void) {
    return NEAP_DEBUG >= 2 || neap_opt(NEAP_OPTION_VALIDATE) > 0;
}

/* Whether h's owner is in a slow path, or someone holds h (checked where
 * the caller must be one of them). */
static inline bool neap_heap_held(neap_heap_t *h) {
    return atomic_load_explicit(&h->busy, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&h->claimed, memory_order_relaxed) != 0;
}

/* Heaps the background purge claims with one membarrier (heap.c's opening
 * comment): an owner that enters meanwhile waits for this many purges at
 * most. */
#define NEAP_CLAIM_BATCH 4

void _neap_heap_enter_wait(neap_heap_t *h) {
    /* busy stays 1: a purger that has not looked yet lets go at once */
    while (atomic_load_explicit(&h->claimed, memory_order_acquire)) _neap_os_yield();
}

void _neap_heap_hold(neap_heap_t *h) {
    int zero = 0;
    while (!atomic_compare_exchange_weak(&h->claimed, &zero, 1)) {
        zero = 0;
        _neap_os_yield();
    }
    /* the owner is quiet (the caller's word): its last slow path is done */
    (void)atomic_load_explicit(&h->busy, memory_order_acquire);
}

void _neap_heap_unhold(neap_heap_t *h) {
    atomic_store_explicit(&h->claimed, 0, memory_order_release);
}

/* ---------------------------------------------------------------------------
 * Size classes
 *   1..32   16..512 in 16-byte steps, one-page pools
 *   33..56  640..32768, four steps per doubling; pools of 1..16 pages chosen
 *           so that at most 1/8 of the pool is left over, header included
 *   Every pool starts with its header (NEAP_POOL_HEADER_SPACE bytes); the
 *   blocks fill the rest and end at the pool's end, the leftover (a gap of
 *   less than a block) sits between the header and block 0.
 *   Run classes: a class whose size is a multiple of the page (4 KiB, 8 KiB,
 *   12 KiB, 16 KiB, ... 32 KiB) would need a page for the header alone, so
 *   its blocks are one-block runs without header (kind BLOCK); the heap
 *   keeps the last one freed per class (SPARE), so that a block allocated
 *   and freed over and over does not take and release pages each time.
 * ------------------------------------------------------------------------- */
#if NEAP_HARDENED
uintptr_t _neap_keys[2];

/* The hardened build's keys, from the kernel's random source; should it
 * fail, from the clock and addresses that ASLR places (weaker, not fixed). */
static void neap_keys_init(void) {
    uintptr_t k[2];
    if (!_neap_os_random(k, sizeof k)) {
        uint64_t t = _neap_os_clock_ns();
        k[0] = (uintptr_t)t * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&k ^ (uintptr_t)&_neap_keys;
        k[1] = (k[0] ^ (uintptr_t)_neap_os_getpid() << 32 ^ (uintptr_t)_neap_os_realtime_ms()) *
               0xBF58476D1CE4E5B9ull;
    }
    _neap_keys[0] = k[0];
    _neap_keys[1] = k[1] | 1;   /* odd: a tag is never 0 (internal.h) */
}
#endif

#if NEAP_HARDENED
void _neap_fatal_link(const void *where, const void *block, uintptr_t next, bool remote) {
    char msg[320];
    neap_buf_t b = {msg, 0, sizeof msg};
    _neap_buf_str(&b, remote ? "neap: remote free list corrupted: block " : "neap: free list corrupted: block ");
    _neap_buf_hex(&b, (uintptr_t)block);
    _neap_buf_str(&b, remote ? " of arena " : " of pool ");
    _neap_buf_hex(&b, (uintptr_t)where);
    _neap_buf_str(&b, " links to ");
    _neap_buf_hex(&b, next);
    _neap_buf_str(&b, " (a freed block was overwritten: use after free or a buffer overflow)\n");
    _neap_os_write(2, msg, b.len);
    _neap_os_abort();
}

void *_neap_pool_link_fail(const neap_pool_t *pool, const neap_block_t *b) {
    _neap_fatal_link(pool, b, (uintptr_t)_neap_link_get(b), false);
}

void _neap_fatal_double_free(const char *func, const void *p) {
    _neap_fatal_pointer(func, p, "double free detected on");
}
#endif

int neap_hardened(void) {
    return NEAP_HARDENED;
}

void _neap_classes_init(void) {
#if NEAP_HARDENED
    neap_keys_init();   /* before any block is handed out: process start, once */
#endif
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        size_t size;
        if (c <= NEAP_SMALL_CLASSES) size = c * 16;
        else {
            size_t g = (c - NEAP_SMALL_CLASSES - 1) / 4, k = (c - NEAP_SMALL_CLASSES - 1) % 4 + 1;
            size = ((size_t)512 << g) + k * ((size_t)128 << g);
        }
        size_t pages = 1, bytes, capacity;
        bool run = size % NEAP_PAGE_SIZE == 0;
        for (;;) {
            if (run) {
                pages = size / NEAP_PAGE_SIZE;
                bytes = size;
                capacity = 1;
                break;
            }
            bytes = pages * NEAP_PAGE_SIZE;
            capacity = (bytes - NEAP_POOL_HEADER_SPACE) / size;
            if (c <= NEAP_SMALL_CLASSES || pages == NEAP_POOL_MAX_PAGES) break;
            if (capacity > 0 && (bytes - capacity * size) * 8 <= bytes) break;
            pages++;
        }
        neap_class_t *k = &_neap_class[c];
        k->size = (uint32_t)size;
        k->recip = (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
        k->pages = (uint16_t)pages;
        k->capacity = (uint16_t)capacity;
        k->first = (uint16_t)(bytes - capacity * size);
        k->run = run;
        neap_assert(run || (capacity > 0 && k->first >= NEAP_POOL_HEADER_SPACE && k->first % 16 == 0));
    }
    _neap_class[0] = _neap_class[1];
}

size_t neap_good_size(size_t size) {
    if (!atomic_load_explicit(&_neap_initialized, memory_order_acquire)) _neap_process_init();
    if (neap_unlikely(neap_debug_mode())) return size;   /* usable is what was asked (debug.c) */
    if (size <= NEAP_MEDIUM_MAX) return _neap_class[_neap_class_of(size)].size;
    if (size <= NEAP_LARGE_MAX) return (size + NEAP_PAGE_MASK) & ~NEAP_PAGE_MASK;
    if (size > SIZE_MAX - 2 * NEAP_PAGE_SIZE) return size;
    return (size + NEAP_PAGE_MASK) & ~NEAP_PAGE_MASK;
}

/* ---------------------------------------------------------------------------
 * Heap structures come from their own pages, never from the allocator.
 * ------------------------------------------------------------------------- */
static neap_heap_t *neap_heap_new_locked(void) {
    static char *chunk;
    static size_t left;
    neap_heap_t *h = neap_free_heaps;
    if (h) {
        neap_free_heaps = h->gnext;
        /* the background purge may still be looking at it (and finding it
         * dead): entered, it keeps off; the memset below spares the
         * handshake's two words (the statistics readers' fields it clears
         * under _neap_lock, which those readers hold) */
        _neap_heap_enter(h);
    } else {
        size_t sz = (sizeof(neap_heap_t) + 63) & ~(size_t)63;
        if (left < sz) {
            chunk = _neap_os_map(64 * 1024);
            if (chunk == NULL) return NULL;
            left = 64 * 1024;
        }
        h = (neap_heap_t *)chunk;
        chunk += sz;
        left -= sz;
    }
    memset(h, 0, offsetof(neap_heap_t, busy));
    for (size_t c = 0; c <= NEAP_CLASS_MAX; c++) h->direct[c] = &_neap_pool_empty;
    h->alive = 1;
    h->gnext = _neap_all_heaps;
    if (_neap_all_heaps) _neap_all_heaps->gprev = h;
    _neap_all_heaps = h;
    _neap_heap_leave(h);
    atomic_fetch_add_explicit(&_neap_gstats.heaps_current, 1, memory_order_relaxed);
    return h;
}

/* h's count of pools made goes to the process-wide one; under _neap_lock,
 * with h leaving the list of live heaps. */
static void neap_pools_made_fold(neap_heap_t *h) {
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++)
        if (h->pools_made[c])
            atomic_fetch_add_explicit(&_neap_gstats.pools_made[c], h->pools_made[c], memory_order_relaxed);
}

static bool neap_adopt(neap_heap_t *h, neap_arena_t *a);
static neap_arena_t *neap_orphan_take(void);

/* A new heap takes over the newest orphan before its first allocation, so
 * that the orphan's pools with free blocks serve it (taken only when a pool
 * is needed, an orphan's partial pools would wait while a new pool is made
 * in it for that first allocation: a thread that allocates a block and ends,
 * over and over, would leave a pool per block). */
static void neap_heap_adopt_first(neap_heap_t *h) {
    neap_arena_t *a = neap_orphan_take();
    if (a == NULL) return;
    _neap_heap_enter(h);
    if (neap_adopt(h, a)) h->alloc_arena = a;
    _neap_heap_leave(h);
}

neap_heap_t *_neap_heap_get(void) {
    neap_heap_t *h = _neap_tl_heap;
    if (h != &_neap_heap_empty) return h;
    _neap_process_init();
    pthread_mutex_lock(&_neap_lock);
    h = neap_heap_new_locked();
    pthread_mutex_unlock(&_neap_lock);
    if (h == NULL) return NULL;
    _neap_tl_heap = h;
    if (atomic_load_explicit(&neap_thread_ended, memory_order_relaxed))
        atomic_store_explicit(&neap_thread_churn_ms, _neap_os_clock_ms(), memory_order_relaxed);
    neap_heap_adopt_first(h);
    _neap_thread_register(h);   /* may allocate: the heap is in place */
    return h;
}

/* ---------------------------------------------------------------------------
 * Lists
 * ------------------------------------------------------------------------- */
/* The direct pool's count carries 1 more than its blocks out, so that the
 * free fast path's one test (neap_pool_tag) lets its last block through:
 * the direct pool is not retired while it is direct. */
static void neap_set_direct(neap_heap_t *h, size_t cls, neap_pool_t *pool) {
    neap_assert_internal(cls >= 1 && (pool == &_neap_pool_empty || (pool->cls == cls && !pool->linked)));
    neap_pool_t *old = h->direct[cls];
    if (old == pool) return;
    if (old != &_neap_pool_empty) {
        neap_assert_internal(old->used >= 1);
        old->used--;
    }
    if (pool != &_neap_pool_empty) pool->used++;
    /* relaxed atomic stores: stats.c reads other heaps' direct[] */
    __atomic_store_n(&h->direct[cls], pool, __ATOMIC_RELAXED);
    if (cls == 1) __atomic_store_n(&h->direct[0], pool, __ATOMIC_RELAXED);
}

/* Blocks of pool out (its count without the direct pool's 1 more); h: the
 * owner heap, NULL for an orphan's pool (never direct). */
static inline size_t neap_pool_out(const neap_heap_t *h, const neap_pool_t *pool) {
    return (size_t)pool->used - (h != NULL && h->direct[pool->cls] == pool);
}

/* A pool that got a block back joins the tail: by the time allocation
 * reaches it, more of its blocks have come back, so the allocator switches
 * pools less often.
 * The head's prev is stale (whatever it was when the pool reached the
 * head): taking the head, the allocator's common case, then writes no
 * other pool's header (the next pool's is often cold: headers all sit at
 * page offset 0, in few cache sets).  Whether a pool is the head is read
 * from h->partial, never from prev. */
/* Meshing: how busy the owner is, a count the background thread reads
 * (pools turned partial, frees into COLD pools); the owner's store, relaxed,
 * with no read-modify-write. */
static inline void neap_mesh_busy(neap_heap_t *h) {
    atomic_store_explicit(&h->mesh_activity, atomic_load_explicit(&h->mesh_activity, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
/* Meshing: a block freed into a COLD pool of arena a: with fewer blocks the
 * pool may mesh where it could not, so the mesher goes through a again. */
static inline void neap_mesh_cold_freed(neap_heap_t *h, neap_arena_t *a) {
    a->mesh_todo = 1;
    atomic_store_explicit(&h->mesh_pub, 1, memory_order_relaxed);
    neap_mesh_busy(h);
}

static void neap_partial_push(neap_heap_t *h, neap_pool_t *pool) {
    size_t c = pool->cls;
    neap_assert_internal(!pool->linked && h->direct[c] != pool);   /* in one place at most */
    neap_pool_t *tail = h->partial_tail[c];
    pool->next = NULL;
    pool->prev = tail;
    if (tail) tail->next = pool;
    else h->partial[c] = pool;
    h->partial_tail[c] = pool;
    pool->linked = NEAP_POOL_ON_PARTIAL;
    h->cool_pending++;   /* meshing: pools the next cooling has to look at */
    neap_mesh_busy(h);
}

static void neap_partial_unlink(neap_heap_t *h, neap_pool_t *pool) {
    size_t c = pool->cls;
    neap_assert_internal(pool->linked == NEAP_POOL_ON_PARTIAL);
    bool head = h->partial[c] == pool;
    neap_pool_t *prev = head ? NULL : pool->prev;
    if (head) h->partial[c] = pool->next;
    else prev->next = pool->next;
    if (pool->next) {
        if (!head) pool->next->prev = prev;   /* a new head's prev may stay stale */
    } else {
        h->partial_tail[c] = prev;
    }
    pool->next = pool->prev = NULL;
    pool->linked = NEAP_POOL_ON_NONE;
}

/* The empty list: pools with no block out, oldest at the head. */
static void neap_empty_push(neap_heap_t *h, neap_pool_t *pool) {
    neap_assert_internal(pool->linked == NEAP_POOL_ON_NONE && pool->used == 0 && h->direct[pool->cls] != pool);
    pool->next = NULL;
    pool->prev = h->empty_tail;
    if (pool->prev) pool->prev->next = pool;
    else h->empty_head = pool;
    h->empty_tail = pool;
    pool->linked = NEAP_POOL_ON_EMPTY;
    h->empty_pages += pool->npages;
}

static void neap_empty_unlink(neap_heap_t *h, neap_pool_t *pool) {
    neap_assert_internal(pool->linked == NEAP_POOL_ON_EMPTY && (pool->prev != NULL || h->empty_head == pool));
    if (pool->prev) pool->prev->next = pool->next;
    else h->empty_head = pool->next;
    if (pool->next) pool->next->prev = pool->prev;
    else h->empty_tail = pool->prev;
    pool->next = pool->prev = NULL;
    pool->linked = NEAP_POOL_ON_NONE;
    neap_assert(h->empty_pages >= pool->npages);
    h->empty_pages -= pool->npages;
}

static void neap_heap_link_arena(neap_heap_t *h, neap_arena_t *a) {
    a->hprev = NULL;
    a->hnext = h->arenas;
    if (h->arenas) h->arenas->hprev = a;
    h->arenas = a;
    h->narenas++;
}

static void neap_heap_unlink_arena(neap_heap_t *h, neap_arena_t *a) {
    neap_assert(h->narenas > 0);
    neap_assert_internal(a->hprev != NULL || h->arenas == a);
    if (a->hprev) a->hprev->hnext = a->hnext;
    else h->arenas = a->hnext;
    if (a->hnext) a->hnext->hprev = a->hprev;
    a->hnext = a->hprev = NULL;
    h->narenas--;
    if (h->alloc_arena == a) h->alloc_arena = NULL;
    if (a->in_dirty) {
        neap_arena_t **pp = &h->dirty_head, *prev = NULL;
        while (*pp && *pp != a) {
            prev = *pp;
            pp = &(*pp)->dnext;
        }
        if (*pp) *pp = a->dnext;
        if (h->dirty_tail == a) h->dirty_tail = prev;
        a->in_dirty = 0;
        a->dnext = NULL;
        neap_assert(h->dirty_pages >= a->pages_dirty);
        h->dirty_pages -= a->pages_dirty;
    }
    if (a->pages_used == 0) {
        neap_assert(h->empty_arenas > 0);
        h->empty_arenas--;
    }
}

/* A pool's header is at the start of its head page. */
static inline neap_arena_t *neap_pool_arena(const neap_pool_t *pool) {
    return _neap_arena_of((uintptr_t)pool);
}
static inline size_t neap_pool_index(const neap_pool_t *pool) {
    return _neap_page_index((uintptr_t)pool);
}
static inline neap_pool_t *neap_pool_at(const neap_arena_t *a, size_t idx) {
    return (neap_pool_t *)_neap_page_addr(a, idx);
}
/* A pool's state (POOL or FULL) is its head page's kind[]. */
static inline void neap_pool_set_state(neap_pool_t *pool, unsigned state) {
    _neap_kind_set(neap_pool_arena(pool), neap_pool_index(pool), NEAP_PK(state, 0));
}

/* The kinds of a small or medium pool's head page. */
static inline bool neap_state_pool(unsigned state) {
    return state == NEAP_PS_POOL || state == NEAP_PS_FULL || state == NEAP_PS_COLD;
}
/* A COLD pool (meshing: left for the mesher) made POOL again: it is to be
 * direct, or it emptied. */
static inline void neap_pool_warm(neap_pool_t *pool) {
    if (neap_unlikely(_neap_kind_get(neap_pool_arena(pool), neap_pool_index(pool)) == NEAP_PK(NEAP_PS_COLD, 0)))
        neap_pool_set_state(pool, NEAP_PS_POOL);
}
static void neap_pool_unmesh_slow(neap_heap_t *h, neap_pool_t *pool);
/* An emptied pool's alias pages (meshing) get their own pages back. */
static inline void neap_pool_unmesh(neap_heap_t *h, neap_pool_t *pool) {
    neap_arena_t *a = neap_pool_arena(pool);
    if (neap_unlikely(a->aliases != 0) && a->nalias[neap_pool_index(pool)] != 0) neap_pool_unmesh_slow(h, pool);
}

/* ---------------------------------------------------------------------------
 * Purging
 * ------------------------------------------------------------------------- */
static void neap_dirty_enqueue(neap_heap_t *h, neap_arena_t *a) {
    neap_assert_internal(!a->in_dirty);
    a->in_dirty = 1;
    a->dnext = NULL;
    a->dirty_since = h->now;
    if (h->dirty_tail) h->dirty_tail->dnext = a;
    else h->dirty_head = a;
    h->dirty_tail = a;
}

static neap_arena_t *neap_dirty_pop(neap_heap_t *h) {
    neap_arena_t *a = h->dirty_head;
    h->dirty_head = a->dnext;
    if (h->dirty_head == NULL) h->dirty_tail = NULL;
    a->dnext = NULL;
    a->in_dirty = 0;
    return a;
}

static void neap_heap_drop_arena(neap_heap_t *h, neap_arena_t *a);

/* Gives back the pages of arenas that have waited long enough, or all of
 * them when forced; returns pages purged.  A heap over NEAP_PURGE_MAX dirty
 * bytes gives back every dirty page it holds, not just enough to get below
 * the bound: a burst of frees would otherwise purge an arena's page or two
 * at every release, and a program that goes quiet after the burst keeps
 * only what emptied since the last round (none to the bound, not always
 * nearly all of it).
 * Every range goes into one batch on this stack, given back by one system
 * call per NEAP_PURGE_BATCH ranges (os.c); the empty arenas to unmap wait
 * until it has been flushed. */
/* Meshing: whether the background thread purges heaps (it runs, and can
 * claim them); and whether the calling thread is it. */
static _Atomic int neap_bg_purges;
static __thread int neap_in_background;

static size_t neap_heap_purge(neap_heap_t *h, bool force) {
    size_t purged = 0;
    uint64_t delay = (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    size_t max_pages = (size_t)neap_opt(NEAP_OPTION_PURGE_MAX) >> NEAP_PAGE_SHIFT;
    bool over = h->dirty_pages > max_pages;
    /* With meshing, giving back a page of the memory file costs the thread
     * that does it several times an anonymous page's (here: the page
     * table's entries of a shared file, cleared with the other CPUs'
     * TLBs), so the owner leaves its pages to the background thread, which
     * comes within a purge delay, unless they pass 8 times NEAP_PURGE_MAX */
    if (neap_mesh_on() && !force && !neap_in_background && h->dirty_pages <= 8 * max_pages &&
        atomic_load_explicit(&neap_bg_purges, memory_order_relaxed)) {
        h->now = _neap_os_clock_ms();
        _neap_huge_cache_expire(h->now);
        return 0;
    }
    neap_arena_t *drop = NULL;   /* empty arenas to unmap, through dnext */
    size_t dropping = 0;
    neap_purge_batch_t batch;
    _neap_purge_batch_init(&batch);
    h->now = _neap_os_clock_ms();
    _neap_huge_cache_expire(h->now);
    while (h->dirty_head != NULL) {
        neap_arena_t *a = h->dirty_head;
        if (a->pages_dirty != 0 && !force && !over && h->now - a->dirty_since < delay) break;
        neap_dirty_pop(h);
        /* on time, the pages that emptied after the arena joined the queue
         * (young) stay for one more delay: a page goes back between
         * NEAP_PURGE_DELAY and twice that after it emptied, not moments
         * after, when churn is likely to want it again */
        size_t n = force || over ? _neap_arena_purge(a, &batch) : _neap_arena_purge_old(a, &batch);
        neap_assert(h->dirty_pages >= n);
        h->dirty_pages -= n;
        purged += n;
        if (a->pages_dirty != 0) {
            neap_dirty_enqueue(h, a);   /* its young pages, old now */
            continue;
        }
        /* an empty arena waits out the same delay as its pages, so churn that
         * empties and refills arenas does not unmap and map them each time;
         * it is unmapped after the batch, which holds its ranges */
        if (a->pages_used == 0 && h->empty_arenas - dropping > (size_t)neap_opt(NEAP_OPTION_ARENA_RESERVE)) {
            a->dnext = drop;
            drop = a;
            dropping++;
        }
    }
    _neap_os_purge_flush(&batch);
    while (drop != NULL) {
        neap_arena_t *a = drop;
        drop = a->dnext;
        a->dnext = NULL;
        neap_heap_drop_arena(h, a);
    }
    return purged;
}

/* ---------------------------------------------------------------------------
 * Runs of pages for a heap
 * ------------------------------------------------------------------------- */
static void neap_heap_drop_arena(neap_heap_t *h, neap_arena_t *a) {
    neap_heap_unlink_arena(h, a);
    _neap_arena_destroy(a);
}

static void neap_empty_expire(neap_heap_t *h, bool force);

/* A run released by heap h (NULL: an orphan, under the orphan lock). */
static void neap_heap_release_run(neap_heap_t *h, neap_arena_t *a, size_t first, size_t n) {
    _neap_arena_release_run(a, first, n);
    if (h == NULL) return;   /* the orphan collector purges after draining */
    h->dirty_pages += n;
    if (!a->in_dirty) {
        h->now = _neap_os_clock_ms();
        neap_dirty_enqueue(h, a);
    } else {
        _neap_arena_mark_young(a, first, n);   /* emptied after the arena's clock started */
    }
    if (a->pages_used == 0) h->empty_arenas++;   /* unmapped when its purge time comes */
    if (!h->draining) {
        neap_heap_purge(h, false);
        if (h->empty_head) neap_empty_expire(h, false);   /* the clock was just read */
    }
}

static bool neap_adopt(neap_heap_t *h, neap_arena_t *a);
static int neap_orphans_tidy(uint64_t now, bool force);

/* The orphan list (orphan lock): newest first, so the tail is the oldest. */
static void neap_orphan_push(neap_arena_t *a) {
    a->hprev = NULL;
    a->hnext = _neap_orphans;
    if (_neap_orphans) _neap_orphans->hprev = a;
    _neap_orphans = a;
    atomic_fetch_add_explicit(&neap_orphans_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.arenas_orphaned, 1, memory_order_relaxed);
}

static void neap_orphan_unlink(neap_arena_t *a) {
    if (a->hprev) a->hprev->hnext = a->hnext;
    else _neap_orphans = a->hnext;
    if (a->hnext) a->hnext->hprev = a->hprev;
    a->hnext = a->hprev = NULL;
    atomic_fetch_sub_explicit(&neap_orphans_count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&_neap_gstats.arenas_orphaned, 1, memory_order_relaxed);
}

/* The newest orphan, off the list (its pages are the likeliest still warm). */
static neap_arena_t *neap_orphan_take(void) {
    if (atomic_load_explicit(&neap_orphans_count, memory_order_relaxed) == 0) return NULL;
    pthread_mutex_lock(&_neap_orphan_lock);
    neap_arena_t *a = _neap_orphans;
    if (a) neap_orphan_unlink(a);
    pthread_mutex_unlock(&_neap_orphan_lock);
    return a;
}

/* Finds and takes n free pages (first page index a multiple of align):
 * first the current arena, then the fullest owned arena that has room, then
 * an orphan, then a new arena.  Returns the first page, or -1 (ENOMEM). */
static long neap_heap_take_run(neap_heap_t *h, size_t n, size_t align, bool prefer_dirty, neap_arena_t **out) {
    neap_arena_t *a = h->alloc_arena;
    long first = a ? _neap_arena_find_run(a, n, align, prefer_dirty) : -1;
    if (first < 0) {
        neap_arena_t *best = NULL;
        long best_first = -1;
        for (neap_arena_t *x = h->arenas; x; x = x->hnext) {
            if (x == a || NEAP_ARENA_PAGES - NEAP_META_PAGES - x->pages_used < n) continue;
            if (best && x->pages_used <= best->pages_used) continue;
            long f = _neap_arena_find_run(x, n, align, prefer_dirty);
            if (f >= 0) {
                best = x;
                best_first = f;
            }
        }
        a = best;
        first = best_first;
    }
    while (first < 0) {
        a = neap_orphan_take();
        if (a) {
            if (!neap_adopt(h, a)) continue;
        } else {
            a = _neap_arena_create();
            if (a == NULL) return -1;
            neap_handover();   /* another thread's arena may have been here */
            atomic_store(&a->owner, h);
            neap_heap_link_arena(h, a);
            h->empty_arenas++;
        }
        first = _neap_arena_find_run(a, n, align, prefer_dirty);
    }
    h->alloc_arena = a;
    if (a->pages_used == 0) {
        neap_assert(h->empty_arenas > 0);
        h->empty_arenas--;
    }
    size_t dirty = _neap_arena_take_run(a, (size_t)first, n);
    neap_assert(h->dirty_pages >= dirty);
    h->dirty_pages -= dirty;
    *out = a;
    return first;
}

/* ---------------------------------------------------------------------------
 * Pools
 * ------------------------------------------------------------------------- */
/* Writes the header of a pool of class cls at pool, the head page of a run
 * of the class's page count: a new pool, or an empty one made over. */
static void neap_pool_init(neap_pool_t *pool, size_t cls) {
    const neap_class_t *k = &_neap_class[cls];
    pool->free = pool->local_free = NULL;
    pool->used = 0;
    pool->first = k->first;
    pool->block_size = (uint16_t)k->size;
    pool->recip = k->recip;
    neap_store_relaxed(pool->bumped, 0);
    pool->npages = k->pages;
    pool->cls = (uint8_t)cls;
    pool->linked = 0;
    pool->next = pool->prev = NULL;
    __atomic_store_n(&pool->flags, 0, __ATOMIC_RELAXED);
    atomic_store_explicit(&pool->watch_off, 0, memory_order_relaxed);
    neap_pool_set_state(pool, NEAP_PS_POOL);
}

static neap_pool_t *neap_pool_new(neap_heap_t *h, size_t cls) {
    neap_arena_t *a;
    long first = neap_heap_take_run(h, _neap_class[cls].pages, 1, true, &a);
    if (first < 0) return NULL;
    neap_pool_t *pool = neap_pool_at(a, (size_t)first);   /* the header goes in the head page */
    neap_pool_init(pool, cls);
    neap_store_relaxed(h->pools_made[cls], h->pools_made[cls] + 1);
    return pool;
}

/* Meshing: a one-page pool's blocks are handed out from a random slot on,
 * wrapping around (a rotation, not a shuffle: allocation order stays
 * sequential but for one jump), so that survivors of regular patterns
 * (every nth object kept) sit at different offsets in different pages and
 * the pages can mesh (docs/design/meshing.md measures both). */
/* xorshift64: meshing's cheap randomness (placement, the search's order) */
static inline uint64_t neap_xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static __thread uint64_t neap_carve_rng;
static __attribute__((noinline)) neap_block_t *neap_pool_extend_rotated(neap_pool_t *pool, char *start, size_t n) {
    const neap_class_t *k = &_neap_class[pool->cls];
    if (neap_carve_rng == 0) neap_carve_rng = (uintptr_t)pool ^ _neap_os_clock_ns() ^ 0x9E3779B97F4A7C15ull;
    size_t r = (size_t)(neap_xorshift(&neap_carve_rng) % n);
    for (size_t j = 0; j + 1 < n; j++)
        _neap_link_set((neap_block_t *)(start + ((r + j) % n) * k->size),
                       (neap_block_t *)(start + ((r + j + 1) % n) * k->size));
    _neap_link_set((neap_block_t *)(start + ((r + n - 1) % n) * k->size), NULL);
    pool->free = (neap_block_t *)(start + r * k->size);
    neap_store_relaxed(pool->bumped, (uint16_t)(pool->bumped + n));
    return pool->free;
}

/* Carves the next page's worth of never-used blocks into the free list,
 * and returns its first: memory is touched only when it is about to be
 * handed out. */
static neap_block_t *neap_pool_extend(neap_pool_t *pool) {
    const neap_class_t *k = &_neap_class[pool->cls];
    neap_assert(pool->free == NULL && pool->bumped < k->capacity);
    size_t n = NEAP_PAGE_SIZE / k->size;
    if (n == 0) n = 1;
    size_t left = (size_t)(k->capacity - pool->bumped);
    if (n > left) n = left;
    char *start = (char *)pool + k->first + (size_t)pool->bumped * k->size;
    /* the debug mode marks the blocks it frees (debug.c): none of an older
     * carving of these pages, at other addresses, may outlive this one */
    if (neap_unlikely(atomic_load_explicit(&_neap_debug_state, memory_order_relaxed) == 2))
        memset(start, 0, n * k->size);
    if (neap_mesh_on() && n == k->capacity) return neap_pool_extend_rotated(pool, start, n);
    for (size_t i = 0; i + 1 < n; i++)
        _neap_link_set((neap_block_t *)(start + i * k->size), (neap_block_t *)(start + (i + 1) * k->size));
    _neap_link_set((neap_block_t *)(start + (n - 1) * k->size), NULL);
    pool->free = (neap_block_t *)start;
    neap_store_relaxed(pool->bumped, (uint16_t)(pool->bumped + n));
    return pool->free;
}

/* The pool's pages turn FREE; from then on its header is garbage. */
static void neap_pool_retire(neap_heap_t *h, neap_pool_t *pool) {
    neap_assert(pool->used == 0);
    neap_assert_internal(_neap_kind_get(neap_pool_arena(pool), neap_pool_index(pool)) == NEAP_PK(NEAP_PS_POOL, 0));
    neap_assert_internal(h == NULL || h->direct[pool->cls] != pool);
    if (h && pool->linked == NEAP_POOL_ON_PARTIAL) neap_partial_unlink(h, pool);
    if (h && pool->linked == NEAP_POOL_ON_EMPTY) neap_empty_unlink(h, pool);
    neap_pool_unmesh(h, pool);   /* a direct pool emptied with aliases (meshing) */
    neap_heap_release_run(h, neap_pool_arena(pool), neap_pool_index(pool), pool->npages);
}

/* ---------------------------------------------------------------------------
 * Meshing (mesh.c has the drawing): the owner marks its partial small pools
 * COLD; the mesher meshes COLD pools of one class and arena.
 * ------------------------------------------------------------------------- */
static void neap_pool_unmesh_slow(neap_heap_t *h, neap_pool_t *pool) {
    neap_arena_t *a = neap_pool_arena(pool);
    size_t di = neap_pool_index(pool);
    int was = h ? h->draining : 0;   /* no purge between the releases */
    if (h) h->draining = 1;
    for (size_t j = NEAP_META_PAGES; j < NEAP_ARENA_PAGES && a->nalias[di] != 0; j++) {
        if (_neap_kind_get(a, j) != NEAP_PK(NEAP_PS_ALIAS, di)) continue;
        _neap_mesh_unmesh_page(a, j);
        neap_heap_release_run(h, a, j, 1);
    }
    if (h) h->draining = was;
}

/* The owner leaves its partial small pools to the mesher: their frees take
 * the slow path from now on, until one is taken as direct again or empties.
 * A pool joins its partial list at the tail, so a cooling walks each list
 * back from the tail and stops after a few pools that are COLD already
 * (what lies before them was cooled by an earlier cooling): each pool is
 * looked at about once, however long the lists; all: every pool. */
#define NEAP_COOL_STOP 8
static void neap_heap_cool(neap_heap_t *h, bool all) {
    bool any = false;
    for (size_t c = 1; c <= NEAP_SMALL_CLASSES; c++) {
        unsigned cold_run = 0;
        for (neap_pool_t *pool = h->partial_tail[c]; pool && (all || cold_run < NEAP_COOL_STOP);
             pool = pool == h->partial[c] ? NULL : pool->prev) {   /* the head's prev is stale */
            neap_arena_t *a = neap_pool_arena(pool);
            size_t i = neap_pool_index(pool);
            uint16_t v = _neap_kind_get(a, i);
            if (v == NEAP_PK(NEAP_PS_COLD, 0)) {
                cold_run++;
                continue;
            }
            cold_run = 0;
            if (v == NEAP_PK(NEAP_PS_POOL, 0) && neap_arena_backing(a) == NEAP_BACK_FILE &&
                (__atomic_load_n(&pool->flags, __ATOMIC_RELAXED) & ~NEAP_POOL_REPORT_ALL) == 0) {
                neap_pool_set_state(pool, NEAP_PS_COLD);
                a->mesh_todo = 1;
                any = true;
            }
        }
    }
    if (any) atomic_store_explicit(&h->mesh_pub, 1, memory_order_relaxed);
}

/* At the owner's slow paths, frees' too (a program that only frees for a
 * while takes no allocation slow path): a cooling every NEAP_PURGE_DELAY
 * ms, the time after which an empty page is thought unlikely to be wanted
 * again, or once 1024 pools have joined the partial lists since the last
 * (a burst of frees shorter than the delay, after which the program may
 * take no slow path for long, leaves at most 1023 pools warm; a lower
 * bound cools churning pools too often: bench/instr's churn step costs
 * 243 instructions with meshing at 64, 177 without the bound). */
#define NEAP_COOL_BATCH 1024
static __attribute__((noinline)) void neap_heap_cool_due(neap_heap_t *h) {
    h->cool_countdown = 16;   /* the clock read at most every 16 slow paths */
    uint64_t now = _neap_os_clock_ms();
    if (now - atomic_load_explicit(&h->cooled_at, memory_order_relaxed) < (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY) &&
        h->cool_pending < NEAP_COOL_BATCH)
        return;
    h->cool_pending = 0;
    atomic_store_explicit(&h->cooled_at, now, memory_order_relaxed);
    neap_heap_cool(h, false);
}
static inline void neap_heap_cool_check(neap_heap_t *h) {
    if (neap_mesh_on() && (h->cool_countdown-- == 0 || h->cool_pending >= NEAP_COOL_BATCH)) neap_heap_cool_due(h);
}

/* The mesher's buffers (under the mesh lock): one arena's COLD pools, by
 * class, with their live blocks. */
static neap_pool_t *neap_mcand[NEAP_ARENA_PAGES];
static uint64_t neap_mbits[NEAP_ARENA_PAGES][4];
static uint16_t neap_morder[NEAP_ARENA_PAGES];
static uint8_t neap_mtaken[NEAP_ARENA_PAGES];
static uint64_t neap_mrng = 0x9E3779B97F4A7C15ull;
#define NEAP_MESH_PROBES 64
#define NEAP_MESH_ROUNDS 8

/* One class's candidates [lo, hi) of neap_mcand: split-and-match in rounds
 * (shuffle, halves L and R, each pool of L probes up to 64 of R and meshes
 * with the first whose blocks are disjoint from its own), until a round
 * meshes nothing.  false: the deadline came first. */
static bool neap_mesh_class(neap_heap_t *h, size_t lo, size_t hi, uint64_t deadline) {
    for (size_t k = lo; k < hi; k++) {
        _neap_mesh_live(neap_mcand[k], neap_mbits[k]);
        neap_mtaken[k] = 0;
    }
    for (int round = 0; round < NEAP_MESH_ROUNDS; round++) {
        size_t m = 0;
        for (size_t k = lo; k < hi; k++)
            if (!neap_mtaken[k]) neap_morder[m++] = (uint16_t)k;
        if (m < 2) return true;
        for (size_t k = m - 1; k > 0; k--) {
            size_t r = (size_t)(neap_xorshift(&neap_mrng) % (k + 1));
            uint16_t t = neap_morder[k];
            neap_morder[k] = neap_morder[r];
            neap_morder[r] = t;
        }
        size_t half = m / 2, nr = m - half;
        size_t meshed = 0;
        for (size_t i = 0; i < half; i++) {
            size_t x = neap_morder[i];
            if (neap_mtaken[x]) continue;
            size_t probes = nr < NEAP_MESH_PROBES ? nr : NEAP_MESH_PROBES;
            for (size_t p = 0; p < probes; p++) {
                size_t y = neap_morder[half + (i + p) % nr];
                if (neap_mtaken[y]) continue;
                const uint64_t *bx = neap_mbits[x], *by = neap_mbits[y];
                if ((bx[0] & by[0]) | (bx[1] & by[1]) | (bx[2] & by[2]) | (bx[3] & by[3])) continue;
                neap_pool_t *px = neap_mcand[x], *py = neap_mcand[y];
                neap_arena_t *a = neap_pool_arena(px);
                size_t ax = a->nalias[neap_pool_index(px)], ay = a->nalias[neap_pool_index(py)];
                if (ax + ay + 1 > 255) continue;
                /* the source: the fewer views to map, then the fewer blocks to copy */
                bool x_src = ax < ay || (ax == ay && px->used <= py->used);
                size_t s = x_src ? x : y, d = x_src ? y : x;
                neap_pool_t *src = neap_mcand[s], *dst = neap_mcand[d];
                neap_partial_unlink(h, src);   /* its header: before it is protected */
                if (_neap_mesh_pair(dst, src)) {
                    neap_mtaken[s] = 1;
                    for (int w = 0; w < 4; w++) neap_mbits[d][w] |= neap_mbits[s][w];
                    meshed++;
                    if (dst->used == _neap_class[dst->cls].capacity) {   /* no free block left */
                        neap_partial_unlink(h, dst);
                        neap_pool_set_state(dst, NEAP_PS_FULL);
                        neap_mtaken[d] = 1;
                    }
                } else {
                    neap_partial_push(h, src);
                }
                break;
            }
            if (_neap_os_clock_ns() > deadline) return false;
        }
        if (meshed == 0) return true;
    }
    return true;
}

/* Meshes the COLD pools of h's FILE arenas, arena by arena, until done or
 * the deadline (ns of the fine clock) passes; h held (its owner in a slow
 * path, or claimed), the mesh lock held.  true: done. */
static bool neap_heap_mesh(neap_heap_t *h, uint64_t deadline) {
    for (neap_arena_t *a = h->arenas; a; a = a->hnext) {
        if (neap_arena_backing(a) != NEAP_BACK_FILE || !a->mesh_todo) continue;
        /* by class: a counting sort of the arena's COLD heads */
        size_t count[NEAP_SMALL_CLASSES + 2] = {0};
        size_t n = 0;
        for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES; i++) {
            if (_neap_kind_get(a, i) != NEAP_PK(NEAP_PS_COLD, 0)) continue;
            count[neap_pool_at(a, i)->cls + 1]++;
            n++;
        }
        if (n < 2) {
            a->mesh_todo = 0;
            continue;
        }
        for (size_t c = 1; c <= NEAP_SMALL_CLASSES + 1; c++) count[c] += count[c - 1];
        size_t start[NEAP_SMALL_CLASSES + 2];
        memcpy(start, count, sizeof start);
        for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES; i++) {
            if (_neap_kind_get(a, i) != NEAP_PK(NEAP_PS_COLD, 0)) continue;
            neap_pool_t *pool = neap_pool_at(a, i);
            neap_mcand[count[pool->cls]++] = pool;
        }
        for (size_t c = 1; c <= NEAP_SMALL_CLASSES; c++) {
            if (start[c + 1] - start[c] < 2) continue;
            if (!neap_mesh_class(h, start[c], start[c + 1], deadline)) return false;
        }
        a->mesh_todo = 0;   /* done with what it holds */
    }
    return true;
}

/* Lazy retirement.  A pool whose last block came back (not the direct
 * pool) leaves its partial list for the heap's empty list; the oldest go
 * when the list holds more than NEAP_EMPTY_KEEP_PAGES pages, the others at
 * the first purge check NEAP_PURGE_DELAY ms after they emptied, and all of
 * them at trim and thread exit.  Meanwhile the allocator takes them back
 * before it takes new pages (neap_empty_take): churn that empties and
 * refills pools does not give pages back and take them again each time. */
/* 16 pages: under callgrind, bench/run's scaling-1 and churn-fifo
 * workloads ran 3% and 1% fewer instructions than with pools retired at
 * once (0), 0.6% and 0.2% fewer than with 4; 64 was no better. */
#define NEAP_EMPTY_KEEP_PAGES 16

static void neap_pool_emptied(neap_heap_t *h, neap_pool_t *pool) {
    neap_assert_internal(pool->used == 0 && pool->linked == NEAP_POOL_ON_PARTIAL);
    neap_partial_unlink(h, pool);
    neap_pool_warm(pool);
    neap_pool_unmesh(h, pool);
    h->now = _neap_os_clock_ms();
    pool->empty_since = (uint32_t)h->now;
    neap_empty_push(h, pool);
    if (h->empty_pages <= NEAP_EMPTY_KEEP_PAGES) return;
    /* the retirements first, then one purge check: a purge between two of
     * them would leave the later ones' pages dirty just after it */
    int was = h->draining;
    h->draining = 1;
    while (h->empty_pages > NEAP_EMPTY_KEEP_PAGES) neap_pool_retire(h, h->empty_head);
    h->draining = was;
    if (!was) {
        neap_heap_purge(h, false);
        neap_empty_expire(h, false);   /* the clock was just read */
    }
}

/* Retires the empty pools that have waited NEAP_PURGE_DELAY ms since they
 * emptied (h->now: the clock, just read), or all of them when forced.  An
 * expired pool's pages have been unused for the delay already, the purge
 * policy's own condition: they go back to the OS at once (the arena still
 * counts them dirty until its purge, which gives them back once more,
 * harmlessly), rather than waiting out the delay a second time. */
static void neap_empty_expire(neap_heap_t *h, bool force) {
    if (h->empty_expiring) return;   /* a retirement's own purge check */
    h->empty_expiring = 1;
    uint32_t delay = (uint32_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    /* in rounds: the headers read, the pages given back in one batch, then
     * the runs released (a release may purge and unmap an empty arena, so
     * no range of this batch may still wait by then) */
    enum { ROUND = 32 };
    struct { neap_arena_t *arena; size_t idx, n; } run[ROUND];
    neap_purge_batch_t batch;
    _neap_purge_batch_init(&batch);
    for (;;) {
        size_t k = 0;
        while (k < ROUND && h->empty_head != NULL &&
               (force || (uint32_t)h->now - h->empty_head->empty_since >= delay)) {
            neap_pool_t *pool = h->empty_head;
            neap_assert(pool->used == 0);
            run[k].arena = neap_pool_arena(pool);
            run[k].idx = neap_pool_index(pool);
            run[k].n = pool->npages;
            neap_empty_unlink(h, pool);
            if (!force) _neap_arena_purge_add(run[k].arena, &batch, pool, run[k].n << NEAP_PAGE_SHIFT);
            k++;
        }
        if (k == 0) break;
        _neap_os_purge_flush(&batch);
        int was = h->draining;   /* one purge check after the round, as above */
        h->draining = 1;
        for (size_t i = 0; i < k; i++) neap_heap_release_run(h, run[i].arena, run[i].idx, run[i].n);
        h->draining = was;
        if (!was) neap_heap_purge(h, false);
    }
    h->empty_expiring = 0;
}

/* An empty pool for class cls, off the empty list: one of the class as it
 * is (its free lists hold every block it carved), else the newest of the
 * same page count made over for cls; NULL if none. */
static neap_pool_t *neap_empty_take(neap_heap_t *h, size_t cls) {
    neap_pool_t *other = NULL;
    for (neap_pool_t *pool = h->empty_tail; pool != NULL; pool = pool->prev) {
        if (pool->cls == cls) {
            neap_empty_unlink(h, pool);
            return pool;
        }
        if (other == NULL && pool->npages == _neap_class[cls].pages) other = pool;
    }
    if (other == NULL) return NULL;
    neap_empty_unlink(h, other);
    neap_pool_init(other, cls);
    neap_store_relaxed(h->pools_made[cls], h->pools_made[cls] + 1);
    return other;
}

/* A pool for class cls when its partial list is empty: an empty pool
 * taken back, or a new one; NULL if there is no memory (out of line: rarer
 * than a switch to a partial pool, and heavier). */
static __attribute__((noinline)) neap_pool_t *neap_pool_fresh(neap_heap_t *h, size_t cls) {
    neap_pool_t *pool = neap_empty_take(h, cls);
    return pool ? pool : neap_pool_new(h, cls);
}

/* A block of the given class from heap h, or NULL (ENOMEM).  The common
 * case after the fast path failed: the direct pool's local frees become its
 * free list, or the direct pool is exhausted and the partial list's head
 * (which got blocks back) takes its place. */
/* The hardened build inlines it, as the plain build's compiler chooses to:
 * its checks tipped GCC 12 into a call, 12 instructions more per churn step
 * on bench/instr. */
#if NEAP_HARDENED
#define NEAP_POOL_ALLOC_INLINE inline __attribute__((always_inline))
#else
#define NEAP_POOL_ALLOC_INLINE
#endif
static NEAP_POOL_ALLOC_INLINE void *neap_pool_alloc(neap_heap_t *h, size_t cls) {
    neap_pool_t *pool = h->direct[cls];
    for (;;) {
        if (pool != &_neap_pool_empty) {
            neap_block_t *b = pool->free;
            if (b == NULL) {
                b = pool->local_free;
                if (b != NULL) pool->local_free = NULL;
                else if (pool->bumped < _neap_class[pool->cls].capacity) b = neap_pool_extend(pool);
            }
            if (neap_likely(b != NULL)) {
                neap_assert(neap_pool_out(h, pool) < _neap_class[pool->cls].capacity);
                pool->free = _neap_pool_link(pool, b);
#if NEAP_HARDENED
                b->freed = 0;   /* handed out */
#endif
                pool->used++;
                return b;
            }
            /* exhausted: nothing to hand out, nothing waiting locally */
            neap_assert_internal(pool->local_free == NULL && neap_pool_out(h, pool) == pool->bumped &&
                                 pool->bumped == _neap_class[pool->cls].capacity);
            neap_pool_set_state(pool, NEAP_PS_FULL);
        }
        pool = h->partial[cls];
        /* a page's kind before its header (a partial pool says POOL) */
        neap_assert_internal(pool == NULL || _neap_kind_get(neap_pool_arena(pool), neap_pool_index(pool)) ==
                                                 NEAP_PK(NEAP_PS_POOL, 0) ||
                             _neap_kind_get(neap_pool_arena(pool), neap_pool_index(pool)) == NEAP_PK(NEAP_PS_COLD, 0));
        if (neap_likely(pool != NULL)) {
            neap_partial_unlink(h, pool);
            neap_pool_warm(pool);   /* direct now: the fast paths' own again */
        }
        else if ((pool = neap_pool_fresh(h, cls)) == NULL) {
            neap_set_direct(h, cls, &_neap_pool_empty);
            return NULL;
        }
        neap_set_direct(h, cls, pool);
    }
}

/* A block of a run class: the heap's spare run of the class, or a new run. */
static void *neap_run_class_alloc(neap_heap_t *h, size_t cls) {
    neap_arena_t *a;
    size_t idx;
    uintptr_t p = h->spare[cls];
    if (p != 0) {
        h->spare[cls] = 0;
        a = _neap_arena_of(p);
        idx = _neap_page_index(p);
        neap_assert_internal(_neap_kind_get(a, idx) == NEAP_PK(NEAP_PS_SPARE, cls));
    } else {
        long first = neap_heap_take_run(h, _neap_class[cls].pages, 1, true, &a);
        if (first < 0) return NULL;
        idx = (size_t)first;
        p = _neap_page_addr(a, idx);
        neap_store_relaxed(h->pools_made[cls], h->pools_made[cls] + 1);
    }
    _neap_kind_set(a, idx, NEAP_PK(NEAP_PS_BLOCK, cls));
    return (void *)p;
}

/* A block of class cls from heap h, or NULL (ENOMEM). */
static void *neap_class_alloc(neap_heap_t *h, size_t cls) {
    if (_neap_class[cls].run) return neap_run_class_alloc(h, cls);
    return neap_pool_alloc(h, cls);
}

/* ---------------------------------------------------------------------------
 * Large blocks: a run of whole pages holding one block from its first byte;
 * kind[] of its head page holds its length, there is no header.
 * ------------------------------------------------------------------------- */
static void *neap_large_alloc(neap_heap_t *h, size_t size, size_t align, bool zero) {
    size_t n = (size + NEAP_PAGE_MASK) >> NEAP_PAGE_SHIFT;
    size_t align_pages = align > NEAP_PAGE_SIZE ? align >> NEAP_PAGE_SHIFT : 1;
    neap_arena_t *a;
    neap_assert(n >= 1 && n <= (NEAP_LARGE_MAX >> NEAP_PAGE_SHIFT));
    long first = neap_heap_take_run(h, n, align_pages, false, &a);
    if (first < 0) return NULL;
    _neap_kind_set(a, (size_t)first, NEAP_PK(NEAP_PS_LARGE, n));
    void *p = (void *)_neap_page_addr(a, (size_t)first);
    if (zero) memset(p, 0, size);
    return p;
}

/* Grows the calling thread's large block p in place to hold size bytes
 * (at most NEAP_LARGE_MAX), taking the free pages right after its run; false
 * when p is not such a block or those pages are in use.  realloc's way to
 * avoid a copy. */
bool _neap_large_grow(void *p, size_t size) {
    uintptr_t addr = (uintptr_t)p;
    if (size > NEAP_LARGE_MAX || _neap_map_kind(addr) != NEAP_MAP_ARENA) return false;
    neap_heap_t *h = _neap_tl_heap;
    neap_arena_t *a = _neap_arena_of(addr);
    if (h == &_neap_heap_empty || atomic_load_explicit(&a->owner, memory_order_relaxed) != h) return false;
    size_t head = _neap_page_index(addr);
    if (addr != _neap_page_addr(a, head)) return false;
    bool grown = false;
    _neap_heap_enter(h);
    uint16_t v = _neap_kind_get(a, head);
    size_t have = NEAP_PK_COUNT(v), want = (size + NEAP_PAGE_MASK) >> NEAP_PAGE_SHIFT;
    if (NEAP_PK_KIND(v) == NEAP_PS_LARGE && want > have && head + want <= NEAP_ARENA_PAGES &&
        _neap_arena_run_is_free(a, head + have, want - have)) {
        h->dirty_pages -= _neap_arena_take_run(a, head + have, want - have);
        for (size_t i = have; i < want; i++) _neap_kind_set(a, head + i, NEAP_PK(NEAP_PS_CONT, i));
        _neap_kind_set(a, head, NEAP_PK(NEAP_PS_LARGE, want));
        grown = true;
        neap_heap_check(h);
    }
    _neap_heap_leave(h);
    return grown;
}

/* ---------------------------------------------------------------------------
 * Freeing
 * ------------------------------------------------------------------------- */

/* The head page of the run whose pages hold address p; *v is its kind[]. */
static inline size_t neap_run_head(const neap_arena_t *a, uintptr_t p, uint16_t *v) {
    size_t i = _neap_page_index(p);
    uint16_t k = _neap_kind_get(a, i);
    if (NEAP_PK_KIND(k) == NEAP_PS_CONT) {
        i -= NEAP_PK_COUNT(k);
        k = _neap_kind_get(a, i);
    }
    *v = k;
    return i;
}

/* p is the start of a block already carved from the small/medium pool (an
 * address in the header, before block 0, wraps around and fails). */
static inline bool neap_pool_block_ok(const neap_pool_t *pool, uintptr_t p) {
    uint32_t off = (uint32_t)(p - (uintptr_t)pool) - pool->first;
    uint32_t idx = _neap_pool_block_index(pool, off);
    return idx < neap_load_relaxed(pool->bumped) && idx * pool->block_size == off;
}

/* The head page of the run holding p, after checking that p is the start
 * of a block in use there (in a pool, only if block: the check reads the
 * pool's header); aborts with a message otherwise.  *v: the head's kind[]. */
static size_t neap_block_lookup(neap_arena_t *a, uintptr_t p, uint16_t *v, const char *func, bool block) {
    size_t head = neap_run_head(a, p, v);
    switch (NEAP_PK_KIND(*v)) {
    case NEAP_PS_POOL:
    case NEAP_PS_FULL:
    case NEAP_PS_COLD:
        if (block && !neap_pool_block_ok(neap_pool_at(a, head), p))
            _neap_fatal_pointer(func, (void *)p, "invalid pointer (not the start of a block)");
        return head;
    case NEAP_PS_LARGE:
    case NEAP_PS_BLOCK:
        if (p != _neap_page_addr(a, head))
            _neap_fatal_pointer(func, (void *)p, "invalid pointer (inside a large block, not its start)");
        return head;
    case NEAP_PS_SPARE:
        _neap_fatal_pointer(func, (void *)p, "double free detected on");
    case NEAP_PS_FREE:
        _neap_fatal_pointer(func, (void *)p, "invalid pointer (in a free page: double free or never allocated)");
    default:
        _neap_fatal_pointer(func, (void *)p, "invalid pointer (neap metadata)");
    }
}

/* Frees b, a block of the run at page head of arena a whose kind[] is v; h
 * is the owner heap, or NULL for an orphan arena under the orphan lock. */
static void neap_free_local(neap_heap_t *h, neap_arena_t *a, size_t head, uint16_t v, neap_block_t *b,
                            const char *func) {
    unsigned state = NEAP_PK_KIND(v);
    /* the owner in a slow path; NULL: an orphan, or an arena being adopted
     * or handed over, under the orphan lock or off every list */
    neap_assert_internal(h == NULL || (atomic_load(&a->owner) == h && neap_heap_held(h)));
    if (state == NEAP_PS_LARGE) {
        neap_heap_release_run(h, a, head, NEAP_PK_COUNT(v));
        return;
    }
    if (state == NEAP_PS_BLOCK) {
        size_t cls = NEAP_PK_COUNT(v);
        neap_assert(cls >= 1 && cls <= NEAP_CLASS_MAX && _neap_class[cls].run);
        if (h && h->spare[cls] == 0) {
            _neap_kind_set(a, head, NEAP_PK(NEAP_PS_SPARE, cls));
            h->spare[cls] = _neap_page_addr(a, head);
        } else {
            neap_heap_release_run(h, a, head, _neap_class[cls].pages);
        }
        return;
    }
    /* a block freed twice by other threads: the run may have gone meanwhile */
    if (neap_unlikely(!neap_state_pool(state))) _neap_fatal_pointer(func, b, "double free detected on");
    neap_pool_t *pool = neap_pool_at(a, head);
    if (neap_unlikely(neap_pool_out(h, pool) == 0 || b == pool->local_free || b == pool->free))
        _neap_fatal_pointer(func, b, "double free detected on");
    neap_assert_internal(neap_pool_out(h, pool) <= pool->bumped && pool->bumped <= _neap_class[pool->cls].capacity);
#if NEAP_HARDENED
    _neap_freed_mark(b, func);   /* a double free further down the lists, or on a remote stack */
#endif
    _neap_link_set(b, pool->local_free);
    pool->local_free = b;
    pool->used--;
    if (state == NEAP_PS_COLD && h) neap_mesh_cold_freed(h, a);
    if (state == NEAP_PS_FULL) {
        neap_assert_internal(!pool->linked && pool->free == NULL);
        neap_pool_set_state(pool, NEAP_PS_POOL);
        if (h) neap_partial_push(h, pool);
    }
    if (pool->used == 0) {   /* not direct: its count would be 1 */
        if (h) {
            neap_pool_emptied(h, pool);
        } else {
            neap_pool_warm(pool);
            neap_pool_unmesh(NULL, pool);
            neap_pool_retire(NULL, pool);
        }
    }
}

static void neap_free_remote(neap_arena_t *a, neap_block_t *b) {
    neap_block_t *head = atomic_load_explicit(&a->remote, memory_order_relaxed);
    do {
        _neap_link_set(b, head);
    } while (!atomic_compare_exchange_weak(&a->remote, &head, b));
    if (head == NULL) {
        neap_heap_t *owner = atomic_load(&a->owner);
        if (owner) atomic_store(&owner->remote_pending, 1);
        else atomic_store(&neap_orphans_pending, 1);
    }
}

/* The link of block b on arena a's remote stack: in the hardened build
 * decoded, and NULL or inside the arena, else the process ends. */
static inline neap_block_t *neap_remote_link(const neap_arena_t *a, const neap_block_t *b) {
    neap_block_t *next = _neap_link_get(b);
#if NEAP_HARDENED
    if (neap_unlikely(_neap_arena_of((uintptr_t)next) != a) && next != NULL)
        _neap_fatal_link(a, b, (uintptr_t)next, true);
#else
    (void)a;
#endif
    return next;
}

/* Applies the frees other threads left in arena a. */
static void neap_arena_drain(neap_heap_t *h, neap_arena_t *a) {
    neap_block_t *b = atomic_exchange(&a->remote, NULL);
    if (b) neap_handover();   /* these blocks' frees come before their reuse */
    while (b) {
        neap_block_t *next = neap_remote_link(a, b);
        /* each block's link is a cache miss (another thread wrote it last):
         * the next one's is fetched while this one is freed */
        if (next) __builtin_prefetch(next);
#if NEAP_HARDENED
        b->freed = 0;   /* the pusher's tag: neap_free_local checks and marks it anew */
#endif
        b = (neap_block_t *)_neap_mesh_canon((uintptr_t)b);   /* a block of an ALIAS page: its pool's */
        uint16_t v;
        size_t head = neap_run_head(a, (uintptr_t)b, &v);
        neap_free_local(h, a, head, v, b, "free");
        b = next;
    }
}

/* The fast path's free, for a block of a pool of this thread's (kind POOL,
 * validated) that the slow path was sent to by its pool's flags: true if p
 * went on the pool's local free list, as neap_free_try would have done. */
static inline bool neap_free_push(neap_arena_t *a, size_t head, void *p) {
    neap_pool_t *pool = neap_pool_at(a, head);
    neap_block_t *b = p, *next = pool->local_free;
    uint32_t used = pool->used;
    if (b == next || b == pool->free || used <= 1) return false;
#if NEAP_HARDENED
    _neap_freed_mark(b, "free");   /* only when pushed: else neap_free_local marks it */
#endif
    _neap_link_set(b, next);
    pool->local_free = b;
    pool->used = (uint16_t)(used - 1);
    return true;
}

/* hooks (installed, or NULL): a free to report is reported before the
 * block can be handed out again */
static void neap_free_slow(void *p, const char *func, const neap_alloc_hooks_t *hooks) {
    uintptr_t addr = (uintptr_t)p;
    uint8_t kind = _neap_map_kind(addr);
    if (kind == NEAP_MAP_NONE) _neap_fatal_not_neap(func, p);
    if (kind != NEAP_MAP_ARENA) {
        uintptr_t base = _neap_huge_base(addr, kind);
        if (base == 0) _neap_fatal_pointer(func, p, "invalid pointer (inside a huge block)");
        if (neap_unlikely(hooks != NULL)) hooks->free(p, false);
        _neap_huge_free(base, p, func);
        return;
    }
    neap_arena_t *a = _neap_arena_of(addr);
    uint16_t v;
    neap_heap_t *h = _neap_tl_heap;
    bool mine = atomic_load_explicit(&a->owner, memory_order_relaxed) == h;
    /* a block of an ALIAS page is freed at its pool's address; the hooks
     * hear of the address the program holds */
    void *held = p;
    addr = _neap_mesh_canon(addr);
    p = (void *)addr;
    /* whether p starts a block of its pool: the pool's header is read for
     * it, which for another thread's pool is a cache line its owner keeps
     * writing; like the free fast path, that check of a remote free is the
     * debug build's (a pointer into neap's pages is still told from a
     * foreign one, and a free page or metadata from a block) */
    size_t head = neap_block_lookup(a, addr, &v, func, mine || NEAP_DEBUG >= 1);
    if (neap_unlikely(hooks != NULL)) {
        /* a pool block is reported only if its pool's flags say so (the
         * lookup above has read its header already) */
        unsigned state = NEAP_PK_KIND(v);
        if (!neap_state_pool(state) || _neap_pool_watches(neap_pool_at(a, head), p)) {
            hooks->free(held, neap_state_pool(state));
            /* reported: what the fast path does, it may do now (no lock) */
            if (mine && state == NEAP_PS_POOL && neap_free_push(a, head, p)) return;
        }
    }
    if (mine) {
        _neap_heap_enter(h);
        neap_free_local(h, a, head, v, p, func);
        neap_heap_cool_check(h);
        neap_heap_check(h);
        _neap_heap_leave(h);
    } else {
        /* pushed at the address the program held: the owner's drain finds
         * the pool (the same memory either way), and this thread writes
         * only where it has written before */
#if NEAP_HARDENED
        if (neap_state_pool(NEAP_PK_KIND(v))) _neap_freed_mark(held, func);
#endif
        neap_free_remote(a, held);
    }
}

void _neap_free_full(void *p) {
    uintptr_t addr = (uintptr_t)p;
    neap_pool_t *pool = (neap_pool_t *)(addr & ~NEAP_PAGE_MASK);
    /* acquire: see hooks.h's memory order; the start of a block is checked
     * only where the fast path checks it (NEAP_DEBUG >= 1) */
    if (__atomic_load_n(&pool->flags, __ATOMIC_ACQUIRE) != 0 ||
        (NEAP_DEBUG >= 1 && !neap_pool_block_ok(pool, addr))) {
        _neap_free_generic(p, "free");
        return;
    }
    neap_heap_t *h = _neap_tl_heap;
    _neap_heap_enter(h);
    /* neap_free_local's work for a FULL pool, whose state says more than
     * the general case knows: it is neither direct nor linked, and has no
     * free block (it turned FULL when its last one went out), and the
     * count is the blocks out; a double free can land here only after a
     * free by another thread (waiting on the remote stack), which the
     * hardened build's tag catches */
    neap_block_t *b = p;
#if NEAP_HARDENED
    _neap_freed_mark(b, "free");
#endif
    neap_assert_internal(!pool->linked && pool->free == NULL && pool->local_free == NULL && pool->used >= 1 &&
                         h->direct[pool->cls] != pool);
    _neap_link_set(b, NULL);
    pool->local_free = b;
    pool->used--;
    neap_pool_set_state(pool, NEAP_PS_POOL);
    neap_partial_push(h, pool);
    if (neap_unlikely(pool->used == 0)) neap_pool_emptied(h, pool);   /* a pool of one block */
    neap_heap_cool_check(h);
    neap_heap_check(h);
    _neap_heap_leave(h);
}

void _neap_free_cold(void *p) {
    uintptr_t addr = (uintptr_t)p;
    neap_pool_t *pool = (neap_pool_t *)(addr & ~NEAP_PAGE_MASK);
    neap_heap_t *h = _neap_tl_heap;
    _neap_heap_enter(h);   /* the mesher, if it holds the heap, is done first */
    neap_arena_t *a = neap_pool_arena(pool);
    /* still COLD (not meshed away meanwhile: its page would say ALIAS now),
     * no flag, not the last block, not an immediate double free */
    uint32_t t = neap_pool_tag(pool);
    if (neap_unlikely(_neap_kind_get(a, neap_pool_index(pool)) != NEAP_PK(NEAP_PS_COLD, 0) ||
                      NEAP_POOL_TAG_UNUSUAL(t) || (neap_block_t *)p == pool->local_free ||
                      (NEAP_DEBUG >= 1 && !neap_pool_block_ok(pool, addr)))) {
        _neap_heap_leave(h);
        _neap_free_generic(p, "free");
        return;
    }
    neap_block_t *b = p;
#if NEAP_HARDENED
    _neap_freed_mark(b, "free");
#endif
    _neap_link_set(b, pool->local_free);
    pool->local_free = b;
    pool->used = (uint16_t)(t - 1);
    neap_mesh_cold_freed(h, a);
    neap_heap_cool_check(h);
    neap_heap_check(h);
    _neap_heap_leave(h);
}

void _neap_free_generic(void *p, const char *func) {
    if (p == NULL) return;
    if (neap_unlikely(neap_debug_mode())) {   /* p is a guarded block (debug.c) */
        _neap_debug_free(p, func);
        return;
    }
    /* acquire: see hooks.h's memory order */
    neap_free_slow(p, func, _neap_hooks_get());
}

void _neap_free_unchecked(void *p, const char *func) {
    neap_free_slow(p, func, _neap_hooks_get());
}

neap_pool_t *_neap_block_pool(const void *p) {
    uintptr_t addr = (uintptr_t)p;
    if (_neap_map_kind(addr) != NEAP_MAP_ARENA) return NULL;
    neap_arena_t *a = _neap_arena_of(addr);
    addr = _neap_mesh_canon(addr);
    uint16_t v;
    size_t head = neap_run_head(a, addr, &v);
    if (!neap_state_pool(NEAP_PK_KIND(v))) return NULL;
    return neap_pool_at(a, head);
}

size_t _neap_usable_generic(const void *p) {
    uintptr_t addr = (uintptr_t)p;
    uint8_t kind = _neap_map_kind(addr);
    if (kind == NEAP_MAP_NONE) return 0;
    if (kind != NEAP_MAP_ARENA) {
        uintptr_t base = _neap_huge_base(addr, kind);
        return base ? _neap_huge_usable(base, p) : 0;
    }
    neap_arena_t *a = _neap_arena_of(addr);
    addr = _neap_mesh_canon(addr);
    uint16_t v;
    size_t head = neap_run_head(a, addr, &v);
    unsigned state = NEAP_PK_KIND(v);
    if (state == NEAP_PS_LARGE)
        return addr == _neap_page_addr(a, head) ? NEAP_PK_COUNT(v) << NEAP_PAGE_SHIFT : 0;
    if (state == NEAP_PS_BLOCK)
        return addr == _neap_page_addr(a, head) ? _neap_class[NEAP_PK_COUNT(v)].size : 0;
    if (!neap_state_pool(state)) return 0;
    const neap_pool_t *pool = neap_pool_at(a, head);
    return neap_pool_block_ok(pool, addr) ? pool->block_size : 0;
}

/* Whether p is on one of pool's free lists (the owner's thread). */
static bool neap_pool_lists_hold(const neap_pool_t *pool, const void *p) {
    for (const neap_block_t *b = pool->free; b; b = _neap_pool_link(pool, b))
        if (b == p) return true;
    for (const neap_block_t *b = pool->local_free; b; b = _neap_pool_link(pool, b))
        if (b == p) return true;
    return false;
}

/* The pool of the calling thread's heap that holds p, or NULL (not an
 * arena's, another thread's arena, or no small or medium pool there). */
static neap_pool_t *neap_pool_local(const void *p) {
    uintptr_t addr = (uintptr_t)p;
    if (_neap_map_kind(addr) != NEAP_MAP_ARENA) return NULL;
    neap_arena_t *a = _neap_arena_of(addr);
    if (atomic_load_explicit(&a->owner, memory_order_relaxed) != _neap_tl_heap) return NULL;
    addr = _neap_mesh_canon(addr);
    uint16_t v;
    size_t head = neap_run_head(a, addr, &v);
    if (!neap_state_pool(NEAP_PK_KIND(v))) return NULL;
    return neap_pool_at(a, head);
}

bool _neap_is_free_local(const void *p) {
    const neap_pool_t *pool = neap_pool_local(p);
    return pool != NULL && neap_pool_lists_hold(pool, (const void *)_neap_mesh_canon((uintptr_t)p));
}

/* Whether b, the start of a block carved from pool, one of the calling
 * thread's pools, is free there: none of the pool's blocks out, or b at the
 * head of a free list (what free's slow path tests), or b further down one.
 * A free block's first word is its list's link: NULL or another block of
 * the pool.  A live block's data rarely looks like that, so the lists are
 * walked (at most the pool's capacity) only for one whose first word does:
 * realloc of a live block mostly pays a load and a test more. */
static bool neap_pool_block_free(const neap_pool_t *pool, const neap_block_t *b) {
    neap_heap_t *h = _neap_tl_heap;
    if (neap_pool_out(h, pool) == 0 || b == pool->local_free || b == pool->free) return true;
#if NEAP_HARDENED
    if (b->freed == _neap_freed_tag(b)) return true;   /* freed here, or by another thread */
#endif
    uintptr_t link = (uintptr_t)_neap_link_get(b);
    if (link != 0 && !neap_pool_block_ok(pool, link)) return false;
    return neap_pool_lists_hold(pool, b);
}

size_t _neap_realloc_usable(void *p, const char *func) {
    /* a block of this thread's pools is looked up once, for its usable
     * size (as _neap_usable_generic gives it) and for the test below */
    const neap_pool_t *pool = neap_pool_local(p);
    uintptr_t canon = _neap_mesh_canon((uintptr_t)p);   /* where the pool's lists have it */
    size_t usable = pool == NULL                          ? _neap_usable_generic(p)
                    : neap_pool_block_ok(pool, canon) ? pool->block_size
                                                      : 0;
    if (neap_unlikely(usable == 0)) {
        _neap_free_generic(p, func);   /* reports the bad pointer */
        return 0;
    }
    /* a large or page-sized block, or a huge one, is live if usable says
     * so (its run in use, its header LIVE); a pool's block only if it is
     * on none of the pool's lists, which only its owner may read */
    if (pool != NULL && neap_unlikely(neap_pool_block_free(pool, (const neap_block_t *)canon)))
        _neap_fatal_pointer(func, p, "double free detected on");
    return usable;
}

/* ---------------------------------------------------------------------------
 * Housekeeping at every allocation slow path: cheap flag checks, then the
 * work they ask for.
 * ------------------------------------------------------------------------- */
static void neap_heap_drain_all(neap_heap_t *h) {
    atomic_store(&h->remote_pending, 0);
    h->draining = 1;
    for (neap_arena_t *a = h->arenas; a; a = a->hnext)
        if (atomic_load_explicit(&a->remote, memory_order_relaxed)) neap_arena_drain(h, a);
    h->draining = 0;
    neap_heap_purge(h, false);
}

/* What other threads asked of h (out of line: its register would cost
 * every slow path a save and a restore). */
static __attribute__((noinline, cold)) void neap_heap_requests(neap_heap_t *h) {
    unsigned req = (unsigned)atomic_exchange_explicit(&h->requests, 0, memory_order_relaxed);
    if (req & NEAP_REQ_TRIM) _neap_heap_trim(h);
    if (req & NEAP_REQ_TALLY) _neap_tally_publish(h);
}

/* Every 16th slow path: the purge checks, if anything waits for one (out
 * of line, so that the other 15 pay a decrement and a branch). */
static __attribute__((noinline)) void neap_heap_purge_check(neap_heap_t *h) {
    h->purge_countdown = 16;   /* the clock is read at most every 16 slow paths */
    if (neap_mesh_on()) neap_heap_cool_due(h);
    bool orphans_wait = atomic_load_explicit(&neap_orphans_waiting, memory_order_relaxed);
    if (h->dirty_head || h->empty_head || orphans_wait ||
        atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed)) {
        neap_heap_purge(h, false);
        neap_empty_expire(h, false);   /* after the purge: it read the clock */
        if (orphans_wait) _neap_orphans_collect(false);
    }
}

static inline void neap_heap_collect(neap_heap_t *h) {
    if (atomic_load_explicit(&h->remote_pending, memory_order_relaxed)) neap_heap_drain_all(h);
    if (neap_unlikely(atomic_load_explicit(&h->requests, memory_order_relaxed))) neap_heap_requests(h);
    if (atomic_load_explicit(&neap_orphans_pending, memory_order_relaxed)) _neap_orphans_collect(false);
    if (neap_unlikely(h->purge_countdown-- == 0)) neap_heap_purge_check(h);
}

/* A large or huge block made: the hooks hear of it (hooks.h). */
static inline void *neap_made_large(void *p, size_t size) {
    if (p != NULL) {
        const neap_alloc_hooks_t *hooks = _neap_hooks_get();
        if (neap_unlikely(hooks != NULL)) hooks->made_large(p, size);
    }
    return p;
}

void *_neap_malloc_generic(size_t size, bool zero) {
    if (size > NEAP_LARGE_MAX) {
        void *p = _neap_huge_alloc(size, NEAP_PAGE_SIZE, zero, NULL);
        if (p == NULL) _neap_tl_countdown = -1;   /* an absurd size may have wrapped it */
        return neap_made_large(p, size);
    }
    neap_heap_t *h = _neap_tl_heap;
    if (neap_unlikely(h == &_neap_heap_empty)) {
        h = _neap_heap_get();
        if (h == NULL) {
            errno = ENOMEM;
            return NULL;
        }
    }
    _neap_heap_enter(h);
    neap_heap_collect(h);
    void *p;
    if (size <= NEAP_SMALL_MAX) {   /* the common case: a one-page pool's class */
        p = neap_pool_alloc(h, size ? _neap_small_class(size) : 1);
        if (p && zero) memset(p, 0, size);
    } else if (size <= NEAP_MEDIUM_MAX) {
        size_t cls = _neap_class_of(size);
        p = neap_class_alloc(h, cls);
        if (p && zero) memset(p, 0, size);
    } else {
        p = neap_large_alloc(h, size, NEAP_PAGE_SIZE, zero);
    }
    neap_heap_check(h);
    _neap_heap_leave(h);
    if (p == NULL) errno = ENOMEM;
    return size > NEAP_MEDIUM_MAX ? neap_made_large(p, size) : p;
}

/* alignment: a power of two above 16. */
void *_neap_malloc_aligned(size_t size, size_t align, bool zero) {
    bool small = size <= NEAP_MEDIUM_MAX && align <= NEAP_PAGE_SIZE;
    if (!small && !(size <= NEAP_LARGE_MAX && align <= NEAP_LARGE_MAX))
        return _neap_huge_alloc(size, align, zero, NULL);
    neap_heap_t *h = _neap_heap_get();
    if (h == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    _neap_heap_enter(h);
    neap_heap_collect(h);
    void *p = NULL;
    bool done = false;
    if (small) {
        /* blocks end at the pool's end, a page boundary (a run class's
         * block is a whole run), so a class whose size is a multiple of the
         * alignment gives aligned blocks */
        size_t need = size < align ? align : size;
        for (size_t c = _neap_class_of(need); c <= NEAP_CLASS_MAX; c++) {
            if (_neap_class[c].size % align == 0) {
                p = neap_class_alloc(h, c);
                if (p && zero) memset(p, 0, size);
                done = true;
                break;
            }
        }
    }
    if (!done) p = neap_large_alloc(h, size ? size : 1, align, zero);
    neap_heap_check(h);
    _neap_heap_leave(h);
    if (p == NULL) errno = ENOMEM;
    return p;
}

/* ---------------------------------------------------------------------------
 * Trim, thread exit, orphans, fork
 * ------------------------------------------------------------------------- */

/* Applies the frees waiting for h, retires its empty pools (direct ones
 * too) and releases its spare runs (their pages turn dirty). */
static void neap_heap_idle(neap_heap_t *h) {
    neap_heap_drain_all(h);
    neap_empty_expire(h, true);
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        neap_pool_t *pool = h->direct[c];
        if (pool != &_neap_pool_empty && neap_pool_out(h, pool) == 0) {
            neap_set_direct(h, c, &_neap_pool_empty);
            neap_pool_retire(h, pool);
        }
        if (h->spare[c] != 0) {
            neap_arena_t *a = _neap_arena_of(h->spare[c]);
            size_t idx = _neap_page_index(h->spare[c]);
            h->spare[c] = 0;
            neap_heap_release_run(h, a, idx, _neap_class[c].pages);
        }
    }
}

/* neap_heap_idle, then every dirty page purged and every empty arena
 * unmapped.  Returns 1 if anything went back to the OS. */
int _neap_heap_trim(neap_heap_t *h) {
    neap_assert_internal(neap_heap_held(h));
    size_t before = atomic_load(&_neap_gstats.bytes_purged) + atomic_load(&_neap_gstats.bytes_unmapped);
    neap_heap_idle(h);
    if (neap_mesh_on()) {   /* every partial pool the mesher may take, at once */
        neap_heap_cool(h, true);
        _neap_mesh_lock();
        _neap_mesh_budget();
        neap_heap_mesh(h, UINT64_MAX);
        _neap_mesh_unlock();
    }
    neap_heap_purge(h, true);
    for (neap_arena_t *a = h->arenas, *next; a; a = next) {
        next = a->hnext;
        if (a->pages_used == 0) neap_heap_drop_arena(h, a);
    }
    /* nothing dirty is left, and every arena holds a run */
    neap_assert(h->dirty_pages == 0 && h->dirty_head == NULL && h->empty_arenas == 0);
    if (neap_check_rare()) _neap_heap_validate(h);
    size_t after = atomic_load(&_neap_gstats.bytes_purged) + atomic_load(&_neap_gstats.bytes_unmapped);
    return after > before;
}

void _neap_heap_done(neap_heap_t *h) {
    if (h == NULL || h == &_neap_heap_empty) return;
    _neap_heap_enter(h);
    neap_heap_idle(h);
    if (neap_check_rare()) _neap_heap_validate(h);
    for (size_t c = 0; c <= NEAP_CLASS_MAX; c++) {
        if (c > 0) neap_set_direct(h, c, &_neap_pool_empty);   /* its count loses the 1 more */
        h->partial[c] = h->partial_tail[c] = NULL;
    }
    uint64_t now = _neap_os_clock_ms();
    atomic_store_explicit(&neap_thread_ended, true, memory_order_relaxed);
    /* no thread started after another ended, lately: nobody is likely to
     * adopt warm pages soon, and the process may be winding down (the
     * workers of a pool joined before the program reports, say) */
    uint64_t churn = atomic_load_explicit(&neap_thread_churn_ms, memory_order_relaxed);
    uint64_t window = 100 * (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    if (window < NEAP_CHURN_WINDOW_MS) window = NEAP_CHURN_WINDOW_MS;
    if (churn == 0 || now - churn > window) neap_heap_purge(h, true);
    size_t orphaned = 0;
    pthread_mutex_lock(&_neap_orphan_lock);
    for (neap_arena_t *a = h->arenas, *next; a; a = next) {
        next = a->hnext;
        neap_heap_unlink_arena(h, a);
        atomic_store(&a->owner, NULL);
        neap_arena_drain(NULL, a);    /* frees that raced with the handover */
        a->dirty_since = now;
        if (a->pages_used == 0 && a->pages_dirty == 0) {   /* nothing warm to keep */
            _neap_arena_destroy(a);
            continue;
        }
        neap_orphan_push(a);
        orphaned++;
    }
    if (orphaned) neap_orphans_tidy(now, false);   /* within NEAP_PURGE_MAX */
    pthread_mutex_unlock(&_neap_orphan_lock);
    if (orphaned) atomic_store(&neap_orphans_pending, 1);
    _neap_tl_heap = &_neap_heap_empty;
    pthread_mutex_lock(&_neap_lock);
    if (h->gprev) h->gprev->gnext = h->gnext;
    else _neap_all_heaps = h->gnext;
    if (h->gnext) h->gnext->gprev = h->gprev;
    neap_pools_made_fold(h);   /* off the list and folded under one hold of the lock */
    h->alive = 0;
    h->gnext = neap_free_heaps;
    neap_free_heaps = h;
    _neap_heap_leave(h);
    pthread_mutex_unlock(&_neap_lock);
    atomic_fetch_sub_explicit(&_neap_gstats.heaps_current, 1, memory_order_relaxed);
}

/* Makes an orphan arena h's own: the frees waiting in it applied, its pools
 * back on h's lists.  Returns false if the arena turned out empty and was
 * unmapped instead. */
static bool neap_adopt(neap_heap_t *h, neap_arena_t *a) {
    atomic_store(&a->owner, h);
    neap_handover();
    /* still off every heap list: drain it as an orphan, so an emptied pool is
     * only released, never unlinked from lists it is not on */
    neap_arena_drain(NULL, a);
    neap_heap_link_arena(h, a);
    a->in_dirty = 0;
    a->dnext = NULL;
    for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES; i++) {
        unsigned state = NEAP_PK_KIND(_neap_kind_get(a, i));
        if (!neap_state_pool(state)) continue;
        neap_pool_t *pool = neap_pool_at(a, i);
        pool->linked = 0;
        pool->next = pool->prev = NULL;
        if (pool->free || pool->local_free || pool->bumped < _neap_class[pool->cls].capacity) {
            neap_pool_set_state(pool, NEAP_PS_POOL);
            neap_partial_push(h, pool);
        } else {
            neap_pool_set_state(pool, NEAP_PS_FULL);
        }
    }
    if (a->pages_dirty) {
        h->dirty_pages += a->pages_dirty;
        h->now = _neap_os_clock_ms();
        neap_dirty_enqueue(h, a);
    }
    if (a->pages_used == 0) {
        h->empty_arenas++;
        if (h->empty_arenas > (size_t)neap_opt(NEAP_OPTION_ARENA_RESERVE)) {
            neap_heap_drop_arena(h, a);
            return false;
        }
    }
    return true;
}

/* An orphan gives back what it holds: unmapped if empty (and off the
 * list), else its dirty pages purged.  Orphan lock. */
static void neap_orphan_release(neap_arena_t *a, neap_purge_batch_t *batch) {
    if (a->pages_used == 0) {
        neap_orphan_unlink(a);
        _neap_arena_destroy(a);   /* none of its ranges is in the batch: it is released once */
    } else {
        _neap_arena_purge(a, batch);
    }
}

/* Under the orphan lock: the frees waiting in every orphan applied; an
 * orphan whose wait is over (all of them if force) gives back what it
 * holds; then, oldest first, orphans give back theirs until their dirty
 * pages are within NEAP_PURGE_MAX.  Returns 1 if anything went back. */
static int neap_orphans_tidy(uint64_t now, bool force) {
    uint64_t delay = (uint64_t)neap_opt(NEAP_OPTION_PURGE_DELAY);
    size_t max_pages = (size_t)neap_opt(NEAP_OPTION_PURGE_MAX) >> NEAP_PAGE_SHIFT;
    size_t dirty = 0;
    int released = 0;
    neap_arena_t *oldest = NULL;
    /* flushed before the orphan lock goes: an orphan adopted after it
     * would reuse pages whose ranges still wait in the batch */
    neap_purge_batch_t batch;
    _neap_purge_batch_init(&batch);
    for (neap_arena_t *a = _neap_orphans, *next; a; a = next) {
        next = a->hnext;
        neap_arena_drain(NULL, a);
        bool holds = a->pages_dirty != 0 || a->pages_used == 0;
        if (holds && (force || now - a->dirty_since >= delay)) {
            bool unmapped = a->pages_used == 0;
            neap_orphan_release(a, &batch);
            released = 1;
            if (unmapped) continue;
        }
        dirty += a->pages_dirty;
        oldest = a;
    }
    for (neap_arena_t *a = oldest, *prev; a && dirty > max_pages; a = prev) {
        prev = a->hprev;
        if (a->pages_dirty == 0) continue;
        dirty -= a->pages_dirty;
        neap_orphan_release(a, &batch);
        released = 1;
    }
    _neap_os_purge_flush(&batch);
    bool waiting = false;
    for (neap_arena_t *a = _neap_orphans; a && !waiting; a = a->hnext)
        waiting = a->pages_dirty != 0 || a->pages_used == 0;
    atomic_store_explicit(&neap_orphans_waiting, waiting, memory_order_relaxed);
    return released;
}

/* Applies frees waiting in orphan arenas; those that have waited
 * NEAP_PURGE_DELAY since they were orphaned (all of them if force) give
 * their dirty pages back, or are unmapped if empty (neap_orphans_tidy).
 * Without force, skips if another thread is at it. */
int _neap_orphans_collect(bool force) {
    if (force) pthread_mutex_lock(&_neap_orphan_lock);
    else if (pthread_mutex_trylock(&_neap_orphan_lock) != 0) return 0;
    atomic_store(&neap_orphans_pending, 0);
    int released = neap_orphans_tidy(_neap_os_clock_ms(), force);
    pthread_mutex_unlock(&_neap_orphan_lock);
    if (neap_check_rare()) _neap_orphans_validate();
    return released;
}

/* The background thread's meshing of h (claimed), once h is quiet: within a quarter of the time since its last pass (2..50 ms
 * a pass), so that it takes at most about a quarter of one CPU however
 * much waits.  false: more to do (the next tick comes soon). */
static uint64_t neap_bg_mesh_end;
#define NEAP_MESH_QUIET 2000
static bool neap_heap_mesh_bg(neap_heap_t *h) {
    /* only a heap whose owner is quiet: fewer than NEAP_MESH_QUIET pools
     * a second turned partial or freed into while cold, since the last
     * look (an owner busy churning would undo the meshes soon, and pays
     * for the mesher's protections; one that wakes now and then to do a
     * little, a timer's work, is quiet enough) */
    uint64_t now_ms = _neap_os_clock_ms();
    unsigned long act = atomic_load_explicit(&h->mesh_activity, memory_order_relaxed);
    unsigned long busy = act - h->mesh_seen;
    uint64_t dt = now_ms - h->mesh_seen_ms;
    h->mesh_seen = act;
    h->mesh_seen_ms = now_ms;
    if (dt == 0 || busy * 1000 > NEAP_MESH_QUIET * dt)
        return true;   /* nothing to do until it is quiet: no hurry for the next tick */
    if (!_neap_mesh_trylock()) return false;   /* a trim meshes: next time */
    if (neap_bg_mesh_end == 0) _neap_mesh_budget();
    uint64_t now = _neap_os_clock_ns();
    uint64_t budget = (now - neap_bg_mesh_end) / 4;
    if (budget < 2000000) budget = 2000000;
    if (budget > 50000000) budget = 50000000;
    bool done = neap_heap_mesh(h, now + budget);
    neap_bg_mesh_end = _neap_os_clock_ns();
    _neap_mesh_unlock();
    if (done) atomic_store_explicit(&h->mesh_pub, 0, memory_order_relaxed);
    return done;
}

/* Whether the background purge may claim heaps: membarrier registered
 * (only the background thread reads and writes it; a forked child starts
 * over, unknown). */
enum { NEAP_BARRIER_UNKNOWN, NEAP_BARRIER_YES, NEAP_BARRIER_NO };
static int neap_purge_barrier;

/* The background thread's purge (background.c).  The heaps with dirty pages
 * (dirty_pub) are listed under the global lock (heaps are never unmapped,
 * only recycled), then claimed in batches, NEAP_CLAIM_BATCH heaps per
 * membarrier (heap.c's opening comment): a heap whose owner is in a slow
 * path is let go at once (the owner purges it anyway), a dead one too; the
 * rest have their expired pages purged.  Never waits for an owner. */
size_t _neap_heaps_purge_expired(void) {
    neap_heap_t *heaps[256];
    size_t n = 0, left = 0;
    if (neap_purge_barrier == NEAP_BARRIER_UNKNOWN) {
        neap_purge_barrier = _neap_os_barrier_register() == 0 ? NEAP_BARRIER_YES : NEAP_BARRIER_NO;
        neap_in_background = 1;
        atomic_store_explicit(&neap_bg_purges, neap_purge_barrier == NEAP_BARRIER_YES, memory_order_relaxed);
    }
    pthread_mutex_lock(&_neap_lock);
    for (neap_heap_t *h = _neap_all_heaps; h; h = h->gnext) {
        size_t dirty = atomic_load_explicit(&h->dirty_pub, memory_order_relaxed);
        if (dirty == 0 && !(neap_mesh_on() && atomic_load_explicit(&h->mesh_pub, memory_order_relaxed))) continue;
        left += dirty;
        if (neap_purge_barrier == NEAP_BARRIER_YES && n < sizeof heaps / sizeof heaps[0]) heaps[n++] = h;
    }
    pthread_mutex_unlock(&_neap_lock);
    for (size_t i = 0; i < n; i += NEAP_CLAIM_BATCH) {
        size_t m = n - i < NEAP_CLAIM_BATCH ? n - i : NEAP_CLAIM_BATCH;
        bool mine[NEAP_CLAIM_BATCH];
        for (size_t k = 0; k < m; k++) {
            int zero = 0;   /* another holder (validate.c): skip the heap this time */
            mine[k] = atomic_compare_exchange_strong(&heaps[i + k]->claimed, &zero, 1);
        }
        _neap_os_barrier();
        /* busy and dead heaps first, all let go before any purge: a purge
         * may wait for _neap_lock, which a thread recycling a dead heap
         * holds while it waits for the heap's claim to end */
        for (size_t k = 0; k < m; k++) {
            neap_heap_t *h = heaps[i + k];
            if (mine[k] && (atomic_load_explicit(&h->busy, memory_order_acquire) || !h->alive)) {
                atomic_store_explicit(&h->claimed, 0, memory_order_release);
                mine[k] = false;
            }
        }
        for (size_t k = 0; k < m; k++) {
            if (!mine[k]) continue;
            neap_heap_t *h = heaps[i + k];
            neap_assert_internal(!h->draining);
            if (h->dirty_head != NULL) {
                size_t before = h->dirty_pages;
                neap_heap_purge(h, false);
                size_t purged = before > h->dirty_pages ? before - h->dirty_pages : 0;
                left -= purged < left ? purged : left;
            }
            if (neap_mesh_on() && atomic_load_explicit(&h->mesh_pub, memory_order_relaxed) && !neap_heap_mesh_bg(h))
                left++;   /* more to mesh: the next tick comes soon */
            atomic_store_explicit(&h->dirty_pub, h->dirty_pages, memory_order_relaxed);
            atomic_store_explicit(&h->claimed, 0, memory_order_release);
        }
    }
    /* exited threads' arenas: frees into them applied, and their warm pages
     * given back once their delay is up (no thread's slow path may come) */
    if (atomic_load_explicit(&neap_orphans_pending, memory_order_relaxed) ||
        atomic_load_explicit(&neap_orphans_waiting, memory_order_relaxed))
        _neap_orphans_collect(false);
    if (atomic_load_explicit(&neap_orphans_waiting, memory_order_relaxed)) left++;
    /* freed huge mappings wait out the same delay, whether or not a heap has
     * dirty pages */
    _neap_huge_cache_expire(_neap_os_clock_ms());
    if (atomic_load_explicit(&_neap_gstats.huge_cached, memory_order_relaxed) != 0) left++;
    return left;
}

void _neap_trim_all(void) {
    pthread_mutex_lock(&_neap_lock);
    for (neap_heap_t *h = _neap_all_heaps; h; h = h->gnext)
        if (h != _neap_tl_heap) atomic_fetch_or_explicit(&h->requests, (int)NEAP_REQ_TRIM, memory_order_relaxed);
    pthread_mutex_unlock(&_neap_lock);
}

/* In the child after fork: only the forking thread lives on.  The arenas of
 * the other threads may have been mid-update, so they are never reused: their
 * blocks stay valid and frees into them are accepted and dropped. */
void _neap_fork_child(neap_heap_t *survivor) {
    pthread_mutex_unlock(&_neap_lock);          /* taken in prepare (init.c) */
    pthread_mutex_unlock(&_neap_orphan_lock);
    neap_heap_t *keep = NULL;
    for (neap_heap_t *h = _neap_all_heaps, *next; h; h = next) {
        next = h->gnext;
        if (h == survivor) {
            keep = h;
            continue;
        }
        for (neap_arena_t *a = h->arenas; a; a = a->hnext) {
            a->zombie = 1;
            atomic_store(&a->owner, &neap_heap_zombie);
        }
        neap_pools_made_fold(h);
        atomic_fetch_sub_explicit(&_neap_gstats.heaps_current, 1, memory_order_relaxed);
    }
    _neap_all_heaps = keep;
    if (keep) {
        keep->gnext = keep->gprev = NULL;
        /* no purger lives here: a claim taken in the instant of the fork
         * (to find the heap busy) is void */
        atomic_store_explicit(&keep->claimed, 0, memory_order_relaxed);
    }
    /* nor on the heaps waiting for reuse (dead ones are claimed too) */
    for (neap_heap_t *h = neap_free_heaps; h; h = h->gnext)
        atomic_store_explicit(&h->claimed, 0, memory_order_relaxed);
    /* the child's background thread registers membarrier for itself */
    neap_purge_barrier = NEAP_BARRIER_UNKNOWN;
    atomic_store_explicit(&neap_bg_purges, 0, memory_order_relaxed);   /* until its thread claims */
    if (neap_check_rare()) {   /* the survivor's heap, the orphans and the huge cache came through whole */
        if (keep) _neap_heap_validate(keep);
        _neap_orphans_validate();
        _neap_huge_cache_validate();
    }
}


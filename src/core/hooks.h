/* hooks.h -- the one narrow interface through which a layer above the core
 * watches allocations: a byte countdown on the allocation paths, a flag
 * per pool for frees that must be reported, and a table of functions the
 * core calls on its slow paths.  The core knows nothing of what the layer
 * does with them (src/trace records allocations with them).
 *
 *   allocation paths (fastpath.h, alloc.c)       free paths (fastpath.h, heap.c)
 *   _neap_tl_countdown -= size                    pool->flags == 0: fast, unseen
 *   below zero? --> _neap_countdown_out:          REPORT_ALL: slow path, hooks->free,
 *     hooks installed: hooks->alloc(p, ...)         then finished without the
 *     (malloc: hooks->malloc(size, ...))            heap's lock
 *     none: countdown = NEAP_COUNTDOWN_IDLE       WATCH (the block at watch_off,
 *                                                   or any if 0): slow path;
 *   realloc: hooks installed -> hooks->realloc    hooks installed: the slow path
 *   large/huge block made by malloc's slow         reports large and huge blocks
 *     path -> hooks->made_large                    and watched pool blocks to
 *   memory passes between threads (remote          hooks->free before freeing
 *     frees drained, an orphan adopted, a
 *     new arena) -> hooks->handover
 *
 *   _neap_hooks: NULL, or the installed neap_alloc_hooks_t (static storage)
 *
 * Invariants
 *   - Hooks run only on slow paths: the countdown running out, realloc and
 *     frees of large or huge blocks while hooks are installed, frees of
 *     flagged pools, and the heap's slow paths for handovers.
 *   - A free reaches hooks->free before its block can be handed out again
 *     or moved: for a pool block only while its pool says WATCH (for that
 *     block) or REPORT_ALL; for a large or huge block while hooks are
 *     installed.  The layer sets a pool's WATCH while any of the pool's
 *     blocks matters to it, and clears it only once none does.
 *   - Memory order: _neap_hooks is read with acquire on the free paths,
 *     and pool->flags too (in neap_pool_tag): a layer that uninstalls its hooks (or clears a
 *     pool's WATCH) after going through pool headers does so with release,
 *     so a free that then finds nothing to report, and may retire the pool
 *     and hand its pages on, comes after the layer's last access to them.
 *
 * Fork and thread exit reach the layers through neap_core_hooks_t (below,
 * init.c), a list every layer may join.
 */
#ifndef NEAP_HOOKS_H
#define NEAP_HOOKS_H

#include "core/internal.h"

/* ---------------------------------------------------------------------------
 * The countdown.  Every allocation subtracts its size from the thread's
 * countdown; when it goes below zero the allocation goes to
 * _neap_countdown_out, which hands the block to hooks->alloc (which sets
 * the countdown again as it pleases: it may leave it negative to see every
 * allocation), or with no hooks resets it to NEAP_COUNTDOWN_IDLE: hooks
 * installed by one thread are seen by the others within that many bytes.
 * A new thread's countdown starts at NEAP_COUNTDOWN_START, below zero, so
 * that its first allocation goes there too: a thread started while the
 * hooks are installed is seen from its first allocation (a layer that
 * looks at each one misses none), at the cost of one slow path per thread.
 * It is far below zero, where a countdown that just ran out never is: a
 * hook finding it at NEAP_COUNTDOWN_START / 2 or below knows the thread has
 * not counted yet (unless the layer itself left it that low).
 * ------------------------------------------------------------------------- */
#define NEAP_COUNTDOWN_IDLE ((int64_t)256 * 1024)
#define NEAP_COUNTDOWN_START (-((int64_t)1 << 62))
extern NEAP_INTERNAL __thread int64_t _neap_tl_countdown;

/* The caller's frame pointer, where the ABI keeps one; garbage (checked by
 * whoever walks the stack) in code built without frame pointers. */
#if defined(__x86_64__)
#define NEAP_CALLER_FP()                                                     \
    __extension__({                                                          \
        uintptr_t fp_;                                                       \
        __asm__("mov %%rbp, %0" : "=r"(fp_));                                \
        fp_;                                                                 \
    })
#elif defined(__aarch64__)
#define NEAP_CALLER_FP()                                                     \
    __extension__({                                                          \
        uintptr_t fp_;                                                       \
        __asm__("mov %0, x29" : "=r"(fp_));                                  \
        fp_;                                                                 \
    })
#else
#define NEAP_CALLER_FP() ((uintptr_t)0)
#endif

/* Subtracts size from the countdown; true when it went below zero.  In
 * unsigned arithmetic (no overflow): a request of 2^62 bytes or more wraps
 * it to a large positive value, and the failure of that request sets it to
 * -1 again (heap.c), so that the next allocation is looked at. */
#define NEAP_COUNTDOWN(size)                                                 \
    ((_neap_tl_countdown =                                                   \
          (int64_t)((uint64_t)_neap_tl_countdown - (uint64_t)(size))) < 0)

/* In an allocation function: count size against the countdown, and hand
 * the new block p on when it runs out.  ret and the frame pointer are those
 * of the function's caller (the fast paths are inlined into malloc and
 * neap_malloc).  A failed allocation (p NULL) counts nothing. */
#define NEAP_COUNTED(p, size)                                                \
    do {                                                                     \
        if ((p) != NULL && neap_unlikely(NEAP_COUNTDOWN(size)))              \
            (p) = _neap_countdown_out((p), (size),                           \
                                      (uintptr_t)__builtin_return_address(0), \
                                      NEAP_CALLER_FP());                     \
    } while (0)

/* The countdown ran out on p (size bytes, NULL if the allocation failed):
 * hooks->alloc(p, ...), or the countdown reset.  Returns what the hook
 * returns (p). */
NEAP_INTERNAL void *_neap_countdown_out(void *p, size_t size, uintptr_t ret, uintptr_t fp);
/* malloc's slow path when the countdown ran out: hooks->malloc, or the
 * countdown reset and the block allocated */
NEAP_INTERNAL void *_neap_malloc_counted(size_t size, uintptr_t ret, uintptr_t fp);

/* ---------------------------------------------------------------------------
 * The hooks.  All fields must be set.
 * ------------------------------------------------------------------------- */
typedef struct neap_alloc_hooks_s {
    /* The countdown ran out on block p of size bytes (NULL: the allocation
     * failed); returns p.  Sets the countdown. */
    void *(*alloc)(void *p, size_t size, uintptr_t ret, uintptr_t fp);
    /* The same in malloc, the block not made yet: makes it with
     * neap_malloc_plain (fastpath.h), then goes on as alloc.  (One call
     * from malloc's countdown test to the hook: every allocation comes
     * here when the layer looks at each.) */
    void *(*malloc)(size_t size, uintptr_t ret, uintptr_t fp);
    /* p is about to be freed (or its pages moved): a large or huge block,
     * or a pool block (pooled) of a pool flagged WATCH or REPORT_ALL.
     * From any thread; p is still allocated. */
    void (*free)(const void *p, bool pooled);
    /* realloc(p, size), p != NULL and size != 0, done by the hook with the
     * core's primitives (below); ret, fp: realloc's caller. */
    void *(*realloc)(void *p, size_t size, uintptr_t ret, uintptr_t fp);
    /* malloc's slow path made p, a large or huge block of size bytes
     * (before the countdown counts it). */
    void (*made_large)(const void *p, size_t size);
    /* This thread is about to take in memory that other threads may have
     * freed a moment ago (remote frees drained, an orphan arena adopted, a
     * new arena mapped where another may have been): what the layer records
     * after this comes after what they recorded before. */
    void (*handover)(void);
} neap_alloc_hooks_t;

/* NULL, or the hooks installed (static storage, never freed). */
extern NEAP_INTERNAL _Atomic(const neap_alloc_hooks_t *) _neap_hooks;

/* Installs h, or uninstalls with NULL (release: see the memory order in the
 * drawing).  A thread may still be inside a hook of the previous table for
 * a moment: hooks must stay callable for good. */
neap_inline void _neap_hooks_install(const neap_alloc_hooks_t *h) {
    atomic_store_explicit(&_neap_hooks, h, memory_order_release);
}
neap_inline const neap_alloc_hooks_t *_neap_hooks_get(void) {
    return atomic_load_explicit(&_neap_hooks, memory_order_acquire);
}

/* ---------------------------------------------------------------------------
 * Pool flags (neap_pool_t.flags, internal.h).  Written only through these
 * functions (atomic read-modify-writes of the 16-bit flags alone: a layer
 * sets them from any thread, while the owner thread writes the count beside
 * them and its free fast path reads both as one word, neap_pool_tag).
 * ------------------------------------------------------------------------- */
/* Frees of the pool's blocks are reported from now on: of every block if
 * off is 0, else only of the block at offset off from the pool's start
 * (the layer knows it cares about that one block alone).  Setting it again
 * changes off. */
neap_inline void _neap_pool_watch(neap_pool_t *pool, uint16_t off) {
    atomic_store_explicit(&pool->watch_off, off, memory_order_relaxed);
    /* release: a free that sees WATCH sees this watch_off or a later one */
    __atomic_fetch_or(&pool->flags, (uint16_t)NEAP_POOL_WATCH, __ATOMIC_RELEASE);
}
/* No more WATCH (release: the caller has finished with the pool's blocks). */
neap_inline void _neap_pool_unwatch(neap_pool_t *pool) {
    atomic_store_explicit(&pool->watch_off, 0, memory_order_relaxed);
    __atomic_fetch_and(&pool->flags, (uint16_t)~NEAP_POOL_WATCH, __ATOMIC_RELEASE);
}
/* Every free of the pool, for the pool's life, is reported to hooks->free
 * and then finished by the slow path without the heap's lock: for a layer
 * that wants every free of the pools it saw and keeps no per-pool state. */
neap_inline void _neap_pool_report_all(neap_pool_t *pool) {
    if (!(__atomic_load_n(&pool->flags, __ATOMIC_RELAXED) & NEAP_POOL_REPORT_ALL))
        __atomic_fetch_or(&pool->flags, (uint16_t)NEAP_POOL_REPORT_ALL, __ATOMIC_RELAXED);
}

/* The pool of a block p just handed out by this thread for a request of
 * size bytes: most often the thread's current pool for its class; NULL for
 * a large or huge block. */
neap_inline neap_pool_t *_neap_pool_of_new(const void *p, size_t size) {
    if (size <= NEAP_SMALL_MAX) {
        neap_pool_t *d = _neap_tl_heap->direct[_neap_small_class(size)];
        if ((uintptr_t)p - (uintptr_t)d < ((uintptr_t)d->npages << NEAP_PAGE_SHIFT)) return d;
    }
    return _neap_block_pool(p);
}

/* ---------------------------------------------------------------------------
 * The core's primitives for a realloc hook (alloc.c).
 * ------------------------------------------------------------------------- */
/* realloc as the core does it, nothing reported, nothing counted */
NEAP_INTERNAL void *_neap_realloc_plain(void *p, size_t size);
/* realloc without copying: p resized where it is (or a huge block's pages
 * moved, if `move`), or NULL when a copy is needed; usable is p's. */
NEAP_INTERNAL void *_neap_realloc_inplace(void *p, size_t size, size_t usable, bool move);

/* ---------------------------------------------------------------------------
 * Fork and thread exit (init.c).
 * ------------------------------------------------------------------------- */
/* What a layer above the core wants to hear of.  Any field may be NULL.
 * fork_prepare hooks run in the order they were added, before the core
 * takes its locks (a layer's locks taken on free paths come first);
 * fork_parent and fork_child in the reverse order, after the core is whole
 * again.  thread_exit runs in a thread's key destructor, before its heap is
 * handed over. */
typedef struct neap_core_hooks_s {
    void (*fork_prepare)(void);
    void (*fork_parent)(void);
    void (*fork_child)(void);
    void (*thread_exit)(void);
} neap_core_hooks_t;
#define NEAP_CORE_HOOKS_MAX 4
/* Adds h (static storage; not copied) to the hooks; from the library
 * constructor, before any thread but the first exists.  false: no room. */
NEAP_INTERNAL bool _neap_core_add_hooks(const neap_core_hooks_t *h);

#endif /* NEAP_HOOKS_H */

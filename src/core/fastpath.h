/* fastpath.h -- malloc and free fast paths, inlined into alloc.c (neap_*)
 * and override.c (malloc, free).
 *
 * malloc fast path (small request, current pool has a free block):
 *   heap = thread-local; pool = heap->direct[(size+15)/16]; pop pool->free;
 *   used++; subtract size from the thread-local countdown (hooks.h).  One test
 *   for "small", one unlikely test for "list empty", one for "countdown
 *   below zero".  Budget: 16 instructions (measured with callgrind on a
 *   malloc/free loop of 48-byte blocks, static library, GCC 12 -O2), no
 *   atomics, no locks.
 *
 * free fast path (block of a small/medium pool owned by this thread, pool
 * neither full nor about to become empty):
 *   map byte says "arena" -> owner check -> kind[] of the page says "pool
 *   head, not full" (or, out of line, "n pages after the head" and the
 *   head's says so) -> the pool header is at the head page's start -> block
 *   pool flags say nothing unusual (hooks.h) -> boundary check (multiply, no division) ->
 *   cheap double free check ->
 *   push on pool->local_free; used--.
 *   Cost today: 54 instructions (measured as above; the separate boundary,
 *   double-free, last-block and flags tests), no atomics, no locks.
 *   Everything else
 *   (other threads' blocks, large and huge blocks, full pools, the last block
 *   of a pool, bad pointers) goes to _neap_free_generic.
 */
#ifndef NEAP_FASTPATH_H
#define NEAP_FASTPATH_H

#include "core/hooks.h"

/* malloc without the countdown (realloc's inner allocations) */
neap_inline void *neap_malloc_plain(size_t size) {
    neap_heap_t *h = _neap_tl_heap;
    if (neap_likely(size <= NEAP_SMALL_MAX)) {
        neap_pool_t *pool = h->direct[_neap_small_class(size)];
        neap_block_t *b = pool->free;
        if (neap_likely(b != NULL)) {
            pool->free = b->next;
            pool->used++;
            return b;
        }
    }
    return _neap_malloc_generic(size, false);
}

/* The countdown is checked first, so that the fast path keeps nothing
 * across it (no register saved, no frame). */
neap_inline void *neap_malloc_inline(size_t size) {
    if (neap_unlikely(NEAP_COUNTDOWN(size)))
        return _neap_malloc_counted(size, (uintptr_t)__builtin_return_address(0), NEAP_CALLER_FP());
    return neap_malloc_plain(size);
}

/* The fast path's last step, for p, a valid block of pool, this thread's. */
neap_inline bool neap_free_push_local(neap_heap_t *h, neap_pool_t *pool, void *p) {
    neap_block_t *next = pool->local_free;
    uint32_t used = pool->used;
    /* a cheap double-free check; and the last block of a pool may come back
     * here only to the direct pool, which is never retired while direct */
    if (neap_unlikely((neap_block_t *)p == next || (used <= 1 && (used == 0 || h->direct[pool->cls] != pool))))
        return false;
    pool->local_free = (neap_block_t *)p;
    pool->used = (uint16_t)(used - 1);
    ((neap_block_t *)p)->next = next;
    return true;
}

/* true if p was freed here; false sends it to _neap_free_generic.  Written
 * to keep few values live, so that no register has to be saved. */
neap_inline bool neap_free_try(void *p) {
    uintptr_t a = (uintptr_t)p;
    if (neap_unlikely(_neap_map_kind(a) != NEAP_MAP_ARENA)) return false;
    neap_heap_t *h = _neap_tl_heap;
    neap_arena_t *arena = _neap_arena_of(a);
    if (neap_unlikely(atomic_load_explicit(&arena->owner, memory_order_relaxed) != h)) return false;
    /* only this thread writes its arenas' kind[]: plain reads */
    size_t i = _neap_page_index(a);
    uint16_t k = arena->kind[i];
    uintptr_t head = a & ~NEAP_PAGE_MASK;
    if (neap_unlikely(k != NEAP_PK(NEAP_PS_POOL, 0))) {
        /* a later page of a medium pool: its head is count pages back */
        if (NEAP_PK_KIND(k) != NEAP_PS_CONT || arena->kind[i - NEAP_PK_COUNT(k)] != NEAP_PK(NEAP_PS_POOL, 0))
            return false;
        head -= NEAP_PK_COUNT(k) << NEAP_PAGE_SHIFT;
    }
    neap_pool_t *pool = (neap_pool_t *)head;
    /* in the header, before block 0: wraps around, fails the bumped test */
    uint32_t off = (uint32_t)(a - head) - pool->first;
    uint32_t idx = (uint32_t)(((uint64_t)off * pool->recip) >> 32);
    if (neap_unlikely(idx * pool->block_size != off || idx >= pool->bumped)) return false;
    /* unusual pool states: this block's free is to be reported (the slow
     * path does it), or every free of the pool is (then tail-called).
     * Acquire: see _neap_pool_watches */
    uint32_t flags = atomic_load_explicit(&pool->flags, memory_order_acquire);
    if (neap_unlikely(flags != 0)) {
        if (flags & NEAP_POOL_REPORT_ALL) {
            _neap_free_reported(p, pool);
            return true;
        }
        if (_neap_pool_watches(pool, p)) return false;
    }
    return neap_free_push_local(h, pool, p);
}

neap_inline void neap_free_inline(void *p) {
    if (neap_unlikely(!neap_free_try(p))) _neap_free_generic(p, "free");
}

#endif /* NEAP_FASTPATH_H */

/* fastpath.h -- malloc and free fast paths, inlined into alloc.c (neap_*)
 * and override.c (malloc, free).
 *
 * malloc fast path (small request, current pool has a free block):
 *   heap = thread-local; pool = heap->direct[(size+15)/16]; pop pool->free;
 *   used++.  One test for "small", one unlikely test for "list empty".
 *   Budget: about 10 instructions, no atomics, no locks.
 *
 * free fast path (block of a small/medium pool's first page, owned by this
 * thread, pool neither full nor about to become empty):
 *   map byte says "arena" -> pool header of the page -> owner and state
 *   checks -> block boundary check (multiply, no division) -> cheap double
 *   free check -> push on pool->local_free; used--.
 *   Budget: about 25 instructions, no atomics, no locks.  Everything else
 *   (other threads' blocks, large and huge blocks, full pools, the last block
 *   of a pool, bad pointers) goes to _neap_free_generic.
 */
#ifndef NEAP_FASTPATH_H
#define NEAP_FASTPATH_H

#include "internal.h"

neap_inline void *neap_malloc_inline(size_t size) {
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
    return _neap_malloc_generic(h, size, false);
}

neap_inline void neap_free_inline(void *p) {
    uintptr_t a = (uintptr_t)p;
    if (neap_likely(_neap_map_kind(a) == NEAP_MAP_ARENA)) {
        neap_arena_t *ar = _neap_arena_of(a);
        neap_pool_t *pool = &ar->pools[_neap_page_index(a)];
        if (neap_likely(atomic_load_explicit(&ar->owner, memory_order_relaxed) == _neap_tl_heap &&
                        pool->state == NEAP_PS_POOL)) {
            const neap_class_t *k = &_neap_class[pool->cls];
            uint32_t off = (uint32_t)(a & NEAP_PAGE_MASK);
            uint32_t idx = (uint32_t)(((uint64_t)off * k->recip) >> 32);
            uint32_t used = pool->used;
            neap_block_t *b = (neap_block_t *)p;
            if (neap_likely(idx * k->size == off && idx < pool->bumped && used > 1 && b != pool->local_free)) {
                b->next = pool->local_free;
                pool->local_free = b;
                pool->used = used - 1;
                return;
            }
        }
    }
    _neap_free_generic(p, "free");
}

#endif /* NEAP_FASTPATH_H */

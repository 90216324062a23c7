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
 * free fast path (block of a small/medium pool owned by this thread):
 *   map byte says "arena" (a foreign pointer stops here, before any read of
 *   memory neap does not own) -> owner is this thread's heap -> kind[] of
 *   the page says "pool head, not full" (or, out of line, "n pages after
 *   the head" and the head's says so) -> the pool header is at the head
 *   page's start -> ONE test of the pool's tag (internal.h, neap_pool_tag):
 *   flags for the layers above, the last block of a pool that is not
 *   direct, a double free into a pool with none out; and whether p heads
 *   local_free already (an immediate double free) -> push on
 *   pool->local_free; used--.
 *   Whether p is the start of a block is checked here only at NEAP_DEBUG
 *   >= 1; in a release build a pointer inside neap's pool memory that is
 *   not a block start corrupts the pool (the slow paths and
 *   neap_usable_size still check it).
 *   Cost: 38 instructions with the return, 6 conditional branches (free in
 *   libneap.so, x86-64, GCC 12 -O3 Release: objdump), and bench/instr
 *   counts 56.0 instructions per malloc(32)+free pair (mimalloc: 104.1);
 *   no atomic read-modify-write, no lock.  The tag is read as two 16-bit
 *   loads (neap_pool_tag): three instructions more than one 32-bit load,
 *   which stalled on the store to used just before.  A block in a pool's
 *   head page that says FULL goes to _neap_free_full (a tail call: the
 *   pool made partial again, with no search and none of the general slow
 *   path's tests, which a FULL pool's state makes moot; the start of the
 *   block is checked there only at NEAP_DEBUG >= 1, as here);
 *   A block of a pool left to the mesher (COLD, meshing only) goes to
 *   _neap_free_cold the same way: the push under the slow paths'
 *   handshake, which keeps the mesher off.
 *   everything else (other threads' blocks, large and huge blocks, FULL
 *   medium pools, flagged pools, the last block of a pool that is not
 *   direct, bad pointers) goes to _neap_free_generic.
 *
 * The hardened build (NEAP_HARDENED; internal.h's opening comment has the
 * invariants) adds, and the plain build's code is the same without it:
 *   malloc: the popped block's link decoded (next ^ address >> 12 ^ key 0)
 *   and required to be NULL or inside the pool past its header (else a tail
 *   call to the "free list corrupted" report), and the block's word 1 (its
 *   freed tag) cleared;
 *   free: word 1 compared with the block's tag (address * odd constant ^
 *   key 1; equal: "double free detected", out of line), then the tag
 *   written and the link stored encoded.
 *   One unlikely branch each to a cold function; bench/instr counts 79.6
 *   instructions per malloc(32)+free pair against the plain build's 55.6.
 */
#ifndef NEAP_FASTPATH_H
#define NEAP_FASTPATH_H

#include "core/hooks.h"

#if defined(__SANITIZE_THREAD__)
#define NEAP_KIND_FAST(arena, i) _neap_kind_get((arena), (i))
#else
#define NEAP_KIND_FAST(arena, i) ((arena)->kind[(i)])
#endif

/* malloc without the countdown (realloc's inner allocations) */
neap_inline void *neap_malloc_plain(size_t size) {
    neap_heap_t *h = _neap_tl_heap;
    if (neap_likely(size <= NEAP_SMALL_MAX)) {
        neap_pool_t *pool = h->direct[_neap_small_class(size)];
        neap_block_t *b = pool->free;
        if (neap_likely(b != NULL)) {
#if NEAP_HARDENED
            neap_block_t *next = _neap_link_get(b);
            if (neap_unlikely(!_neap_pool_link_ok(pool, next))) return _neap_pool_link_fail(pool, b);
            pool->free = next;
            b->freed = 0;   /* handed out: a stale tag can never be taken for a free */
#else
            pool->free = _neap_pool_link(pool, b);
#endif
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

/* true if p was freed here; false sends it to _neap_free_generic.  Written
 * to keep few values live, so that no register has to be saved. */
neap_inline bool neap_free_try(void *p) {
    uintptr_t a = (uintptr_t)p;
    if (neap_unlikely(_neap_map_kind(a) != NEAP_MAP_ARENA)) return false;
    neap_heap_t *h = _neap_tl_heap;
    neap_arena_t *arena = _neap_arena_of(a);
    if (neap_unlikely(atomic_load_explicit(&arena->owner, memory_order_relaxed) != h)) return false;
    /* kind[] is written by this thread, and (meshing) by the mesher holding
     * this heap, but only on pages that say COLD, which send a free out of
     * here whatever their next value: plain 16-bit loads (an atomic load
     * costs GCC 12 an instruction here), relaxed atomics where a race
     * detector watches */
    size_t i = _neap_page_index(a);
    uint16_t k = NEAP_KIND_FAST(arena, i);
    uintptr_t head = a & ~NEAP_PAGE_MASK;
    if (neap_unlikely(k != NEAP_PK(NEAP_PS_POOL, 0))) {
        /* a FULL small pool: the slow path's work, without the search */
        if (k == NEAP_PK(NEAP_PS_FULL, 0)) {
            _neap_free_full(p);   /* a tail call: free keeps no frame */
            return true;
        }
        /* a pool left to the mesher (meshing): its own short way */
        if (k == NEAP_PK(NEAP_PS_COLD, 0)) {
            _neap_free_cold(p);
            return true;
        }
        /* a later page of a medium pool: its head is count pages back */
        if (NEAP_PK_KIND(k) != NEAP_PS_CONT || NEAP_KIND_FAST(arena, i - NEAP_PK_COUNT(k)) != NEAP_PK(NEAP_PS_POOL, 0))
            return false;
        head -= NEAP_PK_COUNT(k) << NEAP_PAGE_SHIFT;
    }
    neap_pool_t *pool = (neap_pool_t *)head;
#if NEAP_DEBUG >= 1
    {
        /* in the header, before block 0: wraps around, fails the bumped test */
        uint32_t off = (uint32_t)(a - head) - pool->first;
        uint32_t idx = _neap_pool_block_index(pool, off);
        if (idx * pool->block_size != off || idx >= pool->bumped) return false;
    }
#endif
    /* the one test of the pool: flags set, the last block of a pool that
     * is not direct, or none out; and p at the head of local_free already
     * (an immediate double free: two instructions, kept in every build) */
    uint32_t t = neap_pool_tag(pool);
    neap_block_t *next = pool->local_free;
    if (neap_unlikely(NEAP_POOL_TAG_UNUSUAL(t) || (neap_block_t *)p == next)) return false;
#if NEAP_HARDENED
    _neap_freed_mark((neap_block_t *)p, "free");   /* any double free, not only p == next */
#endif
    _neap_link_set((neap_block_t *)p, next);
    pool->local_free = (neap_block_t *)p;
    pool->used = (uint16_t)(t - 1);
    return true;
}

neap_inline void neap_free_inline(void *p) {
    if (neap_unlikely(!neap_free_try(p))) _neap_free_generic(p, "free");
}

#endif /* NEAP_FASTPATH_H */

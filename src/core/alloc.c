/* alloc.c -- the public allocation API (neap_malloc and the rest); the fast
 * paths are in fastpath.h. */
#include "core/fastpath.h"

#include <errno.h>

void *neap_malloc(size_t size) {
    return neap_malloc_inline(size);
}

void neap_free(void *p) {
    neap_free_inline(p);
}

void *neap_calloc(size_t n, size_t size) {
    size_t total;
    if (neap_unlikely(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    void *p;
    if (total <= NEAP_SMALL_MAX) {
        p = neap_malloc_plain(total);
        if (p) memset(p, 0, total);
    } else {
        p = _neap_malloc_generic(total, true);
    }
    NEAP_TRACE_HOOK(p, total);
    return p;
}

/* realloc without copying: p resized where it is (or a huge block's pages
 * moved, if `move`), or NULL when a copy is needed; usable is p's. */
static inline void *neap_realloc_inplace(void *p, size_t size, size_t usable, bool move) {
    /* a huge block is resized in place, or its pages moved, with mremap: no
     * copy.  Only one shrinking to less than half of itself and to at most
     * 1 MiB is copied, into a large or small block (below) */
    if (_neap_map_kind((uintptr_t)p) >= NEAP_MAP_HUGE && (size > NEAP_LARGE_MAX || size >= usable / 2))
        return _neap_huge_realloc(p, size, move, "realloc");
    /* keep the block when the new size fits and wastes less than half */
    if (size <= usable && (size >= usable / 2 || usable <= 16)) return p;
    /* a large block grows into the free pages after it */
    if (size > usable && usable > NEAP_MEDIUM_MAX && _neap_large_grow(p, size)) return p;
    return NULL;
}

/* realloc itself; the traced neap_realloc below wraps it. */
static inline void *neap_realloc_plain(void *p, size_t size) {
    if (p == NULL) return neap_malloc_plain(size);
    size_t usable = _neap_usable_generic(p);
    if (usable == 0) _neap_free_generic(p, "realloc");   /* reports the bad pointer */
    if (size == 0) {
        void *q = neap_malloc_plain(0);
        if (q == NULL) return NULL;   /* p untouched */
        neap_free_inline(p);
        return q;
    }
    void *q = neap_realloc_inplace(p, size, usable, true);
    if (q != NULL) return q;
    q = neap_malloc_plain(size);
    if (q == NULL) return NULL;   /* p untouched, errno ENOMEM */
    memcpy(q, p, size < usable ? size : usable);
    neap_free_inline(p);
    return q;
}

void *_neap_array_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first) {
    if (v != NULL && need <= *cap) return v;
    size_t c = *cap ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2) return NULL;
        c *= 2;
    }
    if (c > SIZE_MAX / elem) return NULL;
    void *p = neap_realloc(v, c * elem);
    if (p != NULL) *cap = c;
    return p;
}

/* Tracing: as tracemalloc records a realloc, the old block's trace goes and
 * the result is a new allocation of the new size, counted in full against
 * the sampling countdown (so that a block's chance of being sampled depends
 * on its size alone, and the estimates stay unbiased).  If the realloc
 * fails, p keeps its trace.  Except when sampling grows a large or huge
 * block whose size tracing knows: then only the growth counts, and p's
 * traces stay with the block (trace.c, "Sampled realloc"). */
static __attribute__((noinline)) void *neap_realloc_traced(void *p, size_t size, uintptr_t ret,
                                                          uintptr_t fp) {
    size_t old = 0;
    int grow = _neap_trace_grow_begin(p, size, &old);
    if (grow == 0) {
        size_t traced_size = 0;
        int traced = _neap_trace_forget(p, &traced_size);
        void *q = neap_realloc_plain(p, size);
        if (neap_unlikely(q == NULL)) {
            if (traced) _neap_trace_keep(p, traced_size, ret, fp);
            return NULL;
        }
        int sampled = NEAP_TRACE_COUNT(size);
        if (sampled) q = _neap_trace_alloc(q, size, ret, fp);
        _neap_trace_sized(q, size, sampled);
        return q;
    }
    /* growing: p's traces, if any, stay with the block; while they are
     * in the table under p, a huge block's pages may not move by themselves */
    size_t usable = _neap_usable_generic(p);
    void *q = neap_realloc_inplace(p, size, usable, grow == 1);
    if (q == NULL) {
        _neap_trace_parts_t parts;
        if (grow == 2 && _neap_trace_take(p, &parts) && _neap_map_kind((uintptr_t)p) >= NEAP_MAP_HUGE)
            q = _neap_huge_realloc(p, size, true, "realloc");
        bool copy = q == NULL;
        if (copy) {
            q = neap_malloc_plain(size);
            if (q != NULL) memcpy(q, p, size < usable ? size : usable);
        }
        if (grow == 2) _neap_trace_put(p, q, &parts);
        if (copy && q != NULL) neap_free_inline(p);
    }
    return _neap_trace_grow_end(p, q, old, size, grow == 2, ret, fp);
}

void *neap_realloc(void *p, size_t size) {
    if (neap_unlikely(_neap_tracing()) && p != NULL && size != 0)
        return neap_realloc_traced(p, size, (uintptr_t)__builtin_return_address(0), NEAP_CALLER_FP());
    void *q = neap_realloc_plain(p, size);
    NEAP_TRACE_HOOK(q, size);
    return q;
}

void *neap_reallocarray(void *p, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return neap_realloc(p, total);
}

static inline bool neap_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

void *neap_aligned_alloc(size_t alignment, size_t size) {
    if (!neap_is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    void *p = alignment <= 16 ? neap_malloc_plain(size) : _neap_malloc_aligned(size, alignment, false);
    NEAP_TRACE_HOOK(p, size);
    return p;
}

int neap_posix_memalign(void **out, size_t alignment, size_t size) {
    if (!neap_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = alignment <= 16 ? neap_malloc_plain(size) : _neap_malloc_aligned(size, alignment, false);
    if (p == NULL) {
        errno = saved;
        return ENOMEM;
    }
    NEAP_TRACE_HOOK(p, size);
    *out = p;
    return 0;
}

size_t neap_usable_size(const void *p) {
    if (p == NULL) return 0;
    return _neap_usable_generic(p);
}

int neap_owns(const void *p) {
    return p != NULL && _neap_usable_generic(p) != 0 && !_neap_is_free_local(p);
}

int neap_trim(void) {
    int released = 0;
    neap_heap_t *h = _neap_tl_heap;
    if (h != &_neap_heap_empty) {
        _neap_heap_lock(h);
        released |= _neap_heap_trim(h);
        _neap_heap_unlock(h);
    }
    released |= _neap_orphans_collect(true);
    released |= _neap_huge_cache_flush();
    _neap_trim_all();
    return released;
}

/* alloc.c -- the public allocation API (neap_malloc and the rest); the fast
 * paths are in fastpath.h.  Also the countdown and the hooks of hooks.h:
 * where the countdown runs out, and realloc while hooks are installed. */
#include "core/fastpath.h"

#include <errno.h>

__thread int64_t _neap_tl_countdown = NEAP_COUNTDOWN_START;
_Atomic(const neap_alloc_hooks_t *) _neap_hooks;

void *_neap_countdown_out(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    const neap_alloc_hooks_t *h = _neap_hooks_get();
    if (neap_unlikely(neap_debug_mode())) {   /* every malloc keeps coming to debug.c */
        _neap_tl_countdown = NEAP_COUNTDOWN_START;
        return p;
    }
    if (h != NULL) return h->alloc(p, size, ret, fp);
    _neap_tl_countdown = NEAP_COUNTDOWN_IDLE;
    return p;
}

void *_neap_malloc_counted(size_t size, uintptr_t ret, uintptr_t fp) {
    if (neap_unlikely(neap_debug_mode())) {
        /* far below zero: every malloc leaves the fast path for this one */
        _neap_tl_countdown = NEAP_COUNTDOWN_START;
        return _neap_debug_malloc(size, false, 0, ret);
    }
    const neap_alloc_hooks_t *h = _neap_hooks_get();
    if (h != NULL) return h->malloc(size, ret, fp);
    _neap_tl_countdown = NEAP_COUNTDOWN_IDLE;
    return neap_malloc_plain(size);
}

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
    if (neap_unlikely(neap_debug_mode())) return _neap_debug_malloc(total, true, 0, (uintptr_t)__builtin_return_address(0));
    void *p;
    if (total <= NEAP_SMALL_MAX) {
        p = neap_malloc_plain(total);
        if (p) memset(p, 0, total);
    } else {
        p = _neap_malloc_generic(total, true);
    }
    NEAP_COUNTED(p, total);
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

/* realloc itself, nothing reported, nothing counted. */
static inline void *neap_realloc_plain(void *p, size_t size) {
    if (p == NULL) return neap_malloc_plain(size);
    /* a freed block is reported here, before anything takes it as p's:
     * even one that would fit in place (returned as it is, it would have
     * two owners) */
    size_t usable = _neap_realloc_usable(p, "realloc");
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

void *_neap_realloc_plain(void *p, size_t size) {
    return neap_realloc_plain(p, size);
}

void *_neap_realloc_inplace(void *p, size_t size, size_t usable, bool move) {
    return neap_realloc_inplace(p, size, usable, move);
}

/* With hooks installed, the hook does the whole realloc (on the
 * primitives above): it may want to see the old block go and the new one
 * come, or neither. */
void *neap_realloc(void *p, size_t size) {
    if (neap_unlikely(neap_debug_mode())) return _neap_debug_realloc(p, size, (uintptr_t)__builtin_return_address(0));
    const neap_alloc_hooks_t *h = _neap_hooks_get();
    if (neap_unlikely(h != NULL) && p != NULL && size != 0)
        return h->realloc(p, size, (uintptr_t)__builtin_return_address(0), NEAP_CALLER_FP());
    void *q = neap_realloc_plain(p, size);
    NEAP_COUNTED(q, size);
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
    if (neap_unlikely(neap_debug_mode()))
        return _neap_debug_malloc(size, false, alignment, (uintptr_t)__builtin_return_address(0));
    void *p = alignment <= 16 ? neap_malloc_plain(size) : _neap_malloc_aligned(size, alignment, false);
    NEAP_COUNTED(p, size);
    return p;
}

int neap_posix_memalign(void **out, size_t alignment, size_t size) {
    if (!neap_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = neap_unlikely(neap_debug_mode())
                  ? _neap_debug_malloc(size, false, alignment, (uintptr_t)__builtin_return_address(0))
              : alignment <= 16 ? neap_malloc_plain(size)
                                : _neap_malloc_aligned(size, alignment, false);
    if (p == NULL) {
        errno = saved;
        return ENOMEM;
    }
    if (!neap_debug_mode()) NEAP_COUNTED(p, size);
    *out = p;
    return 0;
}

size_t neap_usable_size(const void *p) {
    if (p == NULL) return 0;
    if (neap_unlikely(neap_debug_mode())) return _neap_debug_usable(p);
    return _neap_usable_generic(p);
}

int neap_owns(const void *p) {
    if (p != NULL && neap_unlikely(neap_debug_mode())) return _neap_debug_owns(p);
    return p != NULL && _neap_usable_generic(p) != 0 && !_neap_is_free_local(p);
}

int neap_trim(void) {
    int released = 0;
    neap_heap_t *h = _neap_tl_heap;
    if (h != &_neap_heap_empty) {
        _neap_heap_enter(h);
        released |= _neap_heap_trim(h);
        _neap_heap_leave(h);
    }
    released |= _neap_orphans_collect(true);
    released |= _neap_huge_cache_flush();
    _neap_trim_all();
    return released;
}

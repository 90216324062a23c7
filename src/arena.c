/* arena.c -- 4 MiB arenas, their page runs, purging, the address map, and
 * huge blocks mapped on their own.
 *
 *   arena:  [ META | data pages ...........................................]
 *   used_map  1      0 0 1 1 1 0 0 0 1 ...      (page in a run)
 *   dirty_map 0      1 0 0 0 0 1 1 0 0 ...      (free, contents stale)
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
 *   release_run marks the pages FREE and dirty; purge gives every dirty page
 *   back to the OS with one madvise per maximal dirty stretch.
 *
 * Everything here about one arena runs on its owner's thread (or under the
 * orphan lock); creating and destroying arenas takes _neap_lock, which also
 * guards the list of all arenas and the address map's writes.
 */
#include "internal.h"

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

neap_arena_t *_neap_arena_create(void) {
    neap_arena_t *a = _neap_os_map_aligned(NEAP_ARENA_SIZE, NEAP_ARENA_SIZE);
    if (a == NULL) return NULL;
    if (((uintptr_t)a >> NEAP_ADDR_BITS) != 0) {  /* beyond the map: not usable */
        _neap_os_unmap(a, NEAP_ARENA_SIZE);
        errno = ENOMEM;
        return NULL;
    }
    /* Fresh mapping: everything is zero, so only the non-zero fields. */
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
    pthread_mutex_lock(&_neap_lock);
    if (a->gprev) a->gprev->gnext = a->gnext;
    else _neap_all_arenas = a->gnext;
    if (a->gnext) a->gnext->gprev = a->gprev;
    neap_map_clear((uintptr_t)a, NEAP_ARENA_SIZE);
    pthread_mutex_unlock(&_neap_lock);
    _neap_os_unmap(a, NEAP_ARENA_SIZE);
    atomic_fetch_add_explicit(&_neap_gstats.arenas_freed, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&_neap_gstats.arenas_current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.bytes_unmapped, NEAP_ARENA_SIZE, memory_order_relaxed);
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

bool _neap_arena_run_is_clean(const neap_arena_t *a, size_t first, size_t n) {
    return neap_count_bits(a->dirty_map, first, n) == 0;
}

size_t _neap_arena_take_run(neap_arena_t *a, size_t first, size_t n) {
    size_t dirty = a->pages_dirty ? neap_count_bits(a->dirty_map, first, n) : 0;
    neap_bits(a->used_map, first, n, true);
    if (dirty) neap_bits(a->dirty_map, first, n, false);
    a->pages_dirty -= (uint32_t)dirty;
    a->pages_used += (uint32_t)n;
    for (size_t i = 1; i < n; i++) _neap_kind_set(a, first + i, NEAP_PK(NEAP_PS_CONT, i));
    return dirty;
}

void _neap_arena_release_run(neap_arena_t *a, size_t first, size_t n) {
    neap_bits(a->used_map, first, n, false);
    neap_bits(a->dirty_map, first, n, true);
    for (size_t i = 0; i < n; i++) _neap_kind_set(a, first + i, NEAP_PK(NEAP_PS_FREE, 0));
    a->pages_used -= (uint32_t)n;
    a->pages_dirty += (uint32_t)n;
}

size_t _neap_arena_purge(neap_arena_t *a) {
    if (a->pages_dirty == 0) return 0;
    size_t purged = 0;
    size_t i = NEAP_META_PAGES;
    while (i < NEAP_ARENA_PAGES) {
        uint64_t d = a->dirty_map[i / 64] >> (i % 64);
        if (d == 0) {
            i = (i / 64 + 1) * 64;
            continue;
        }
        i += (size_t)__builtin_ctzll(d);
        size_t j = i;
        while (j < NEAP_ARENA_PAGES && neap_bit(a->dirty_map, j)) j++;
        _neap_os_purge((void *)_neap_page_addr(a, i), (j - i) << NEAP_PAGE_SHIFT);
        neap_bits(a->dirty_map, i, j - i, false);
        purged += j - i;
        i = j;
    }
    a->pages_dirty = 0;
    atomic_fetch_add_explicit(&_neap_gstats.bytes_purged, purged << NEAP_PAGE_SHIFT, memory_order_relaxed);
    return purged;
}

/* ---------------------------------------------------------------------------
 * Huge blocks: their own mapping, aligned to the arena size so the address
 * map can tell them apart from everything else.
 * ------------------------------------------------------------------------- */
typedef struct neap_huge_s {
    size_t map_size;     /* bytes mapped */
    uintptr_t user;      /* the pointer handed out */
    size_t usable;       /* bytes usable from user */
    uint64_t magic;      /* NEAP_HUGE_MAGIC while live */
} neap_huge_t;

#define NEAP_HUGE_MAGIC 0x6e6561702d687567ull  /* "neap-hug" */
#define NEAP_HUGE_MAX_ALIGN ((size_t)64 << 20)

void *_neap_huge_alloc(size_t size, size_t align, size_t *usable) {
    if (align < NEAP_PAGE_SIZE) align = NEAP_PAGE_SIZE;
    if (align > NEAP_HUGE_MAX_ALIGN) {   /* a valid alignment neap cannot satisfy */
        errno = ENOMEM;
        return NULL;
    }
    size_t offset = align;   /* header in the first page, user data after */
    if (size > ((size_t)1 << NEAP_ADDR_BITS) - offset - NEAP_ARENA_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t map_size = (offset + size + NEAP_PAGE_MASK) & ~NEAP_PAGE_MASK;
    char *base = _neap_os_map_aligned(map_size, NEAP_ARENA_SIZE > align ? NEAP_ARENA_SIZE : align);
    if (base == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    neap_huge_t *h = (neap_huge_t *)base;
    h->map_size = map_size;
    h->user = (uintptr_t)base + offset;
    h->usable = map_size - offset;
    h->magic = NEAP_HUGE_MAGIC;
    pthread_mutex_lock(&_neap_lock);
    neap_map_set((uintptr_t)base, map_size, true);
    pthread_mutex_unlock(&_neap_lock);
    atomic_fetch_add_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.huge_bytes, map_size, memory_order_relaxed);
    if (usable) *usable = h->usable;
    return (void *)h->user;
}

uintptr_t _neap_huge_base(uintptr_t p, uint8_t kind) {
    if (kind < NEAP_MAP_HUGE || kind == NEAP_MAP_FAR) return 0;
    return (p & ~NEAP_ARENA_MASK) - ((uintptr_t)(kind - NEAP_MAP_HUGE) << NEAP_ARENA_SHIFT);
}

size_t _neap_huge_usable(uintptr_t base, const void *p) {
    const neap_huge_t *h = (const neap_huge_t *)base;
    if (h->magic != NEAP_HUGE_MAGIC || h->user != (uintptr_t)p) return 0;
    return h->usable;
}

void _neap_huge_free(uintptr_t base, void *p, const char *func) {
    neap_huge_t *h = (neap_huge_t *)base;
    if (h->magic != NEAP_HUGE_MAGIC || h->user != (uintptr_t)p)
        _neap_fatal_pointer(func, p, "invalid pointer (inside a huge block, not its start)");
    size_t map_size = h->map_size;
    pthread_mutex_lock(&_neap_lock);
    /* A second free of the same block finds the map cleared (checked by the
     * caller before reaching here) or, racing, the magic gone. */
    if (h->magic != NEAP_HUGE_MAGIC) {
        pthread_mutex_unlock(&_neap_lock);
        _neap_fatal_pointer(func, p, "double free of huge block");
    }
    h->magic = 0;
    neap_map_clear(base, map_size);
    pthread_mutex_unlock(&_neap_lock);
    _neap_os_unmap((void *)base, map_size);
    atomic_fetch_sub_explicit(&_neap_gstats.huge_current, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&_neap_gstats.huge_bytes, map_size, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_gstats.bytes_unmapped, map_size, memory_order_relaxed);
}

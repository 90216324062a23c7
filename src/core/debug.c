/* debug.c -- the debug mode, switched on at run time (NEAP_DEBUG_MALLOC=1,
 * or `neap run --debug-malloc`): every block is wrapped in guards and
 * fills that free and realloc check, as PYTHONMALLOC=debug does.
 *
 *   the block the core hands out (a pool block, a large run or a huge
 *   mapping: the "raw" block b), and what the program gets (u):
 *
 *   b                                   u = b + lead
 *   +-- pad --+------+------+--------+-------+----------------+----------+
 *   | 0xFD .. | lead | size | caller | state | user data      | 0xFD x16 |
 *   |         | 4 +4 | 8    | 8      | 8     | size bytes     | guard    |
 *   +---------+------+------+--------+-------+----------------+----------+
 *             u-32   u-24   u-16     u-8     (0xCD when new,  u+size
 *                                            0 from calloc)
 *   lead = 32, or the alignment asked for if larger (b is aligned to it,
 *   so u is); the 4 bytes after lead are 0xFD; caller is the return address
 *   of the allocating call; state is a keyed tag of u: LIVE, or FREED once
 *   the block has been freed.
 *
 *   free(u) / realloc(u): u must be neap's, its state LIVE (FREED: a double
 *   free; anything else: not a block of the debug mode, or the bytes before
 *   it overwritten -- an underflow), the pad and the 16 guard bytes after
 *   the data intact (else an overflow: how many bytes, and where).  Then,
 *   for a block of a small or medium pool, the raw block from b + 32 to its
 *   end is filled with 0xDD, and b + 8 (16 in a hardened build) takes a keyed mark of (b, raw usable
 *   size); state says FREED (for lead 32 it lies before the fill, with the
 *   caller: a second free is told as one), and the raw block goes back to
 *   the core (_neap_free_unchecked).  The core writes b's first 8 bytes (its
 *   free-list link; a hardened build also the next 8, its tag: the mark
 *   then goes at b + 16, over the caller).
 *
 *   malloc: a raw block whose b + 8 (16) holds the mark for its address and
 *   usable size was freed here at that size: its fill must be intact, else
 *   it was written after its free (a use after free: how many bytes, the
 *   first offset).  A mark must live only in a block freed here, never be
 *   one left from an older use of the pages at another address or size:
 *   malloc writes every byte of a raw block of at most NEAP_LARGE_MAX
 *   (header, data, guard, and the slack after it), and a pool's blocks
 *   are cleared as they are carved (heap.c, neap_pool_extend), so that
 *   whatever a page held before is gone by the time a pool block there is
 *   handed out.  Large runs, page-sized blocks and huge blocks are not
 *   filled at free nor checked at reuse: their pages may be split among
 *   other runs meanwhile and come together again at the same address and
 *   size, with a stale mark; their guards are checked as any block's.
 *
 *   The pool of every raw block carries NEAP_POOL_CHECKED, so that free's
 *   fast path sends each free to _neap_free_generic, which comes here.  The
 *   allocation paths come here from the API functions (alloc.c) and from
 *   the countdown, which stays below zero (every malloc leaves the fast
 *   path).  The heap validator runs on a share of the mode's allocations
 *   (neap_dbg_validate), as the sanitizer build runs it on a share of its
 *   slow paths.
 *
 * Errors abort with one line naming the call, the block, what was found
 * (how many bytes, at which offset) and the call that allocated the block.
 * The mode is fixed when the process starts: blocks allocated without
 * guards could not be told from corrupted ones.  Tracing is not available
 * with it (neap.c refuses, and says so): the trace would record the raw
 * blocks, guards included.
 */
#include "core/fastpath.h"

#include <errno.h>

/* _neap_debug_state: 0 not known yet (options not read), 1 off, 2 on */
_Atomic int _neap_debug_state;

#define NEAP_DBG_LEAD 32
#define NEAP_DBG_GUARD 16
#define NEAP_DBG_PAD 0xFD
#define NEAP_DBG_NEW 0xCD
#define NEAP_DBG_DEAD 0xDD
/* where a freed pool block's mark goes: past the core's words (its link;
 * a hardened build's tag at b + 8 too, where the mark then takes the
 * caller's place, and a double free's message does without it) */
#if NEAP_HARDENED
#define NEAP_DBG_MARK 16
#else
#define NEAP_DBG_MARK 8
#endif

typedef struct neap_dbg_head_s {
    uint32_t lead;      /* u - b */
    uint8_t pad[4];     /* NEAP_DBG_PAD */
    size_t size;        /* bytes asked for */
    uintptr_t caller;   /* return address of the allocating call */
    uint64_t state;     /* neap_dbg_tag(u, LIVE or FREED) */
} neap_dbg_head_t;
_Static_assert(sizeof(neap_dbg_head_t) == NEAP_DBG_LEAD, "the header fills the lead");

static uint64_t neap_dbg_key;

static uint64_t neap_dbg_tag(uintptr_t u, bool live) {
    uint64_t x = ((uint64_t)u ^ neap_dbg_key) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return x ^ (live ? 0x4c495645ull : 0x46524545ull);
}

void _neap_debug_init(bool on) {
    if (on) neap_dbg_key = _neap_os_clock_ns() * 0xD6E8FEB86659FD93ull ^ (uint64_t)(uintptr_t)&neap_dbg_key;
    atomic_store_explicit(&_neap_debug_state, on ? 2 : 1, memory_order_release);
}

static neap_dbg_head_t *neap_dbg_head(uintptr_t u) {
    return (neap_dbg_head_t *)(u - NEAP_DBG_LEAD);
}

/* ---------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------- */
static void neap_dbg_caller(neap_buf_t *b, uintptr_t caller) {
    _neap_buf_str(b, "; allocated by the call at ");
    _neap_buf_hex(b, caller);
    char name[160];
    if (_neap_os_addr_name(caller, name, sizeof name)) {
        _neap_buf_str(b, " (");
        _neap_buf_str(b, name);
        _neap_buf_str(b, ")");
    }
}

enum { NEAP_DBG_SIZE = 1, NEAP_DBG_CALLER = 2, NEAP_DBG_ALL = 3 };

/* "neap: FUNC(): WHAT: COUNT byte(s) DETAIL (first at offset OFF) of the
 * SIZE-byte block U; allocated by the call at ..." and abort */
static __attribute__((noreturn, cold)) void neap_dbg_fatal(const char *func, const char *what, uintptr_t u,
                                                           const neap_dbg_head_t *h, unsigned show, size_t count,
                                                           const char *detail, long off) {
    char msg[512];
    neap_buf_t b = {msg, 0, sizeof msg};
    _neap_buf_str(&b, "neap: ");
    _neap_buf_str(&b, func);
    _neap_buf_str(&b, "(): ");
    _neap_buf_str(&b, what);
    if (count > 0) {
        _neap_buf_str(&b, ": ");
        _neap_buf_u(&b, count, 0);
        _neap_buf_str(&b, count == 1 ? " byte " : " bytes ");
        _neap_buf_str(&b, detail);
        _neap_buf_str(&b, " (the first at offset ");
        if (off < 0) {
            _neap_buf_str(&b, "-");
            _neap_buf_u(&b, (unsigned long long)-off, 0);
        } else {
            _neap_buf_u(&b, (unsigned long long)off, 0);
        }
        _neap_buf_str(&b, ")");
    }
    _neap_buf_str(&b, count > 0 ? " of the " : ": the ");
    if (h != NULL && (show & NEAP_DBG_SIZE)) {
        _neap_buf_u(&b, h->size, 0);
        _neap_buf_str(&b, "-byte ");
    }
    _neap_buf_str(&b, "block ");
    _neap_buf_hex(&b, u);
    if (h != NULL && (show & NEAP_DBG_CALLER)) neap_dbg_caller(&b, h->caller);
    _neap_buf_str(&b, "\n");
    _neap_os_write(2, msg, b.len);
    _neap_os_abort();
}

/* Bytes of [p, p + n) that are not c; *first: the offset of the first. */
static size_t neap_dbg_count(const unsigned char *p, size_t n, unsigned char c, size_t *first) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == c) continue;
        if (bad++ == 0) *first = i;
    }
    return bad;
}

/* Whether u may be a block of the mode: aligned, with neap's memory on
 * both sides of its header, so that the header can be read. */
static bool neap_dbg_readable(uintptr_t u) {
    return (u & 15) == 0 && u >= NEAP_DBG_LEAD && _neap_map_kind(u) != NEAP_MAP_NONE &&
           _neap_map_kind(u - NEAP_DBG_LEAD) != NEAP_MAP_NONE;
}

/* The header of the live block u, checked; aborts (naming func) if u is
 * not one, or its header or guards were overwritten. */
static neap_dbg_head_t *neap_dbg_check(uintptr_t u, const char *func) {
    if (!neap_dbg_readable(u)) _neap_fatal_pointer(func, (void *)u, "invalid pointer (not allocated by neap)");
    neap_dbg_head_t *h = neap_dbg_head(u);
    if (h->state == neap_dbg_tag(u, false)) neap_dbg_fatal(func, "double free detected", u, h, NEAP_DBG_MARK == 8 ? NEAP_DBG_CALLER : 0, 0, NULL, 0);   /* its size went with the fill */
    if (h->state != neap_dbg_tag(u, true)) {
        /* an underflow that reached the state word, or not a block of ours */
        uint64_t want = neap_dbg_tag(u, true);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < 8; i++)
            if (((const unsigned char *)&h->state)[i] != ((const unsigned char *)&want)[i] && bad++ == 0) first = i;
        if (bad < 8)   /* the fields before the state are still the block's */
            neap_dbg_fatal(func, "buffer underflow detected", u, h, NEAP_DBG_ALL, bad, "before the block overwritten",
                           (long)first - 8);
        neap_dbg_fatal(func, "invalid pointer, double free or buffer underflow", u, NULL, 0, 0, NULL, 0);
    }
    size_t first = 0, bad = neap_dbg_count(h->pad, sizeof h->pad, NEAP_DBG_PAD, &first);
    if (h->lead < NEAP_DBG_LEAD || (h->lead & 15) != 0 || h->size > (size_t)1 << NEAP_ADDR_BITS)
        neap_dbg_fatal(func, "buffer underflow detected (header overwritten)", u, NULL, 0, 0, NULL, 0);
    if (bad > 0)
        neap_dbg_fatal(func, "buffer underflow detected", u, h, NEAP_DBG_ALL, bad, "before the block overwritten",
                       (long)first - 28);
    uintptr_t b = u - h->lead;
    bad = neap_dbg_count((const unsigned char *)b, h->lead - NEAP_DBG_LEAD, NEAP_DBG_PAD, &first);
    if (bad > 0)
        neap_dbg_fatal(func, "buffer underflow detected", u, h, NEAP_DBG_ALL, bad, "of the padding before the block overwritten",
                       (long)first - (long)h->lead);
    bad = neap_dbg_count((const unsigned char *)u + h->size, NEAP_DBG_GUARD, NEAP_DBG_PAD, &first);
    if (bad > 0)
        neap_dbg_fatal(func, "buffer overflow detected", u, h, NEAP_DBG_ALL, bad, "after the end of the block overwritten",
                       (long)(h->size + first));
    return h;
}

/* ---------------------------------------------------------------------------
 * malloc, free, realloc, usable size
 * ------------------------------------------------------------------------- */
/* The heap validator on a share of the mode's allocations, as the
 * sanitizer build runs it on its slow paths: every NEAP_VALIDATE_DEBUG_EVERY,
 * or every work / NEAP_VALIDATE_DEBUG_SHARE for a heap whose last
 * validation did more work than that (here, not in the slow paths, so that
 * the plain mode's slow paths do not even test for the mode). */
static __thread size_t neap_dbg_allocs, neap_dbg_every = NEAP_VALIDATE_DEBUG_EVERY;

static void neap_dbg_validate(void) {
    if (++neap_dbg_allocs < neap_dbg_every) return;
    neap_dbg_allocs = 0;
    neap_heap_t *h = _neap_tl_heap;
    if (h == &_neap_heap_empty) return;
    _neap_heap_enter(h);
    size_t work = _neap_heap_validate(h) / NEAP_VALIDATE_DEBUG_SHARE;
    _neap_heap_leave(h);
    neap_dbg_every = work > NEAP_VALIDATE_DEBUG_EVERY ? work : NEAP_VALIDATE_DEBUG_EVERY;
}

void *_neap_debug_malloc(size_t size, bool zero, size_t align, uintptr_t caller) {
    neap_dbg_validate();
    size_t lead = align > NEAP_DBG_LEAD ? align : NEAP_DBG_LEAD;
    if (size > ((size_t)1 << NEAP_ADDR_BITS) - lead - NEAP_DBG_GUARD) {
        errno = ENOMEM;
        return NULL;
    }
    size_t raw = lead + size + NEAP_DBG_GUARD;
    void *p = align <= 16 ? neap_malloc_plain(raw) : _neap_malloc_aligned(raw, align, false);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t b = (uintptr_t)p, u = b + lead;
    size_t usable = _neap_usable_generic(p);
    neap_assert(usable >= raw);
    neap_pool_t *pool = _neap_block_pool(p);
    if (pool != NULL && *(const uint64_t *)(b + NEAP_DBG_MARK) == neap_dbg_tag(b + usable, false)) {
        /* freed here, as a block of this size: its fill must be whole;
         * offsets from the block the program had (at lead 32) */
        size_t first = 0;
        size_t bad = neap_dbg_count((const unsigned char *)b + 32, usable - 32, NEAP_DBG_DEAD, &first);
        if (bad > 0)
            neap_dbg_fatal("malloc", "use after free detected", b + NEAP_DBG_LEAD, NULL, 0, bad,
                           "written after its free", (long)first);
    }
    if (pool != NULL && !(__atomic_load_n(&pool->flags, __ATOMIC_RELAXED) & NEAP_POOL_CHECKED))
        __atomic_fetch_or(&pool->flags, (uint16_t)NEAP_POOL_CHECKED, __ATOMIC_RELAXED);
    memset((void *)b, NEAP_DBG_PAD, lead - NEAP_DBG_LEAD);
    neap_dbg_head_t *h = neap_dbg_head(u);
    h->caller = caller;
    h->size = size;
    h->lead = (uint32_t)lead;
    memset(h->pad, NEAP_DBG_PAD, sizeof h->pad);
    h->state = neap_dbg_tag(u, true);
    memset((void *)u, zero ? 0 : NEAP_DBG_NEW, size);
    /* the guard, and the rest of the raw block too: every byte of a live
     * block is written, so that no mark of an older block at another
     * address and size (from before the pages were carved anew) outlives
     * it to be taken for this one's later */
    memset((void *)(u + size), NEAP_DBG_PAD, usable <= NEAP_LARGE_MAX ? usable - lead - size : NEAP_DBG_GUARD);
    return (void *)u;
}

void _neap_debug_free(void *p, const char *func) {
    if (p == NULL) return;
    uintptr_t u = (uintptr_t)p;
    neap_dbg_head_t *h = neap_dbg_check(u, func);
    uintptr_t b = u - h->lead;
    size_t usable = _neap_usable_generic((void *)b);
    if (usable == 0)   /* the header says LIVE, the core disagrees: a forged header */
        neap_dbg_fatal(func, "invalid pointer (its block is not allocated)", u, h, NEAP_DBG_ALL, 0, NULL, 0);
    bool pooled = _neap_block_pool((void *)b) != NULL;
    if (pooled) {
        /* the fill, and the mark of a block freed here at this size (a
         * block of another size at b later, or a fresh one, has no such
         * mark, and no fill to check) */
        memset((void *)(b + 32), NEAP_DBG_DEAD, usable - 32);
        *(uint64_t *)(b + NEAP_DBG_MARK) = neap_dbg_tag(b + usable, false);
    }
    /* a second free of u finds FREED; a lead larger than 32 puts the state
     * in a pool block's fill, and a second free is then told as not LIVE */
    if (h->lead == NEAP_DBG_LEAD || !pooled) h->state = neap_dbg_tag(u, false);
    _neap_free_unchecked((void *)b, func);
}

void *_neap_debug_realloc(void *p, size_t size, uintptr_t caller) {
    if (p == NULL) return _neap_debug_malloc(size, false, 0, caller);
    neap_dbg_head_t *h = neap_dbg_check((uintptr_t)p, "realloc");
    uintptr_t u = (uintptr_t)p, b = u - h->lead;
    size_t usable = _neap_usable_generic((void *)b);
    if (size <= ((size_t)1 << NEAP_ADDR_BITS) && h->lead + size + NEAP_DBG_GUARD <= usable && size >= h->size / 2) {
        /* in place, as the core would: the growth filled as new, the guard
         * (and the slack, as malloc does) moved to the new end */
        if (size > h->size) memset((void *)(u + h->size), NEAP_DBG_NEW, size - h->size);
        h->size = size;
        memset((void *)(u + size), NEAP_DBG_PAD, usable <= NEAP_LARGE_MAX ? usable - h->lead - size : NEAP_DBG_GUARD);
        return p;
    }
    void *q = _neap_debug_malloc(size, false, 0, caller);
    if (q == NULL) return NULL;   /* p untouched, errno ENOMEM */
    memcpy(q, p, size < h->size ? size : h->size);
    _neap_debug_free(p, "realloc");
    return q;
}

/* The header of p if p is a live block of the debug mode, else NULL;
 * reads only neap's memory (what free's checks ask first). */
static const neap_dbg_head_t *neap_dbg_live(const void *p) {
    uintptr_t u = (uintptr_t)p;
    if (p == NULL || !neap_dbg_readable(u)) return NULL;
    const neap_dbg_head_t *h = neap_dbg_head(u);
    return h->state == neap_dbg_tag(u, true) ? h : NULL;
}

size_t _neap_debug_usable(const void *p) {
    const neap_dbg_head_t *h = neap_dbg_live(p);
    return h ? h->size : 0;
}

bool _neap_debug_owns(const void *p) {
    return neap_dbg_live(p) != NULL;
}

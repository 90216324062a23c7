/* internal.h -- neap's central types, constants and invariants.
 *
 * The allocator core (src/core), one file per layer; calls go down only:
 *
 *   alloc.c      neap_malloc/free/realloc/... (fast paths inline: fastpath.h)
 *   heap.c       per-thread heaps: pools, lists, remote frees, purge policy
 *   arena.c      4 MiB arenas: page runs, purge, the address map, huge maps
 *                and the cache of freed huge mappings
 *   options.c    the NEAP_* option table (read by every layer)
 *   stats.c      statistics, walked on demand
 *   init.c       process start, thread exit, fork; the hooks of the layers
 *                above (neap_core_hooks_t)
 *   hooks.h      how a layer above watches allocations (countdown, pool
 *                flags, hooks called on slow paths only)
 *
 * Below it, src/os (os.h: every system call, formatting, diagnostics).
 * Above it, on this header and the public API: src/trace, src/obj,
 * src/services and src/override, which never call each other except
 * through src/neap.c, the library's assembly (its comment draws them).
 *
 * Address space:
 *
 *   arena (4 MiB, aligned to 4 MiB, owned by one heap)
 *   +-------------------+------+------+------+------+-- ... --+------+
 *   | arena header      | pool | cont | pool | run  |         | free |
 *   | + kind[1024]      |      |      |      |      |         |      |
 *   | (page 0: META)    |  1   |  2   |  3   |  4   |         | 1023 |
 *   +-------------------+------+------+------+------+-- ... --+------+
 *          |               ^ small pool: one page, blocks of one class
 *          |               ^ medium pool: 1..16 pages; large run: 1..256 pages
 *          +-- kind[i] (16 bits) says what page i is, and for a run's later
 *              pages how far back its head is: the only metadata page of an
 *              arena, and the truth about every page (a free page's contents
 *              are stale, a large run's pages hold user data)
 *
 *   small or medium pool (npages pages; the header is in the head page)
 *   +--------+-----+-------+-------+-- ... --+-------+
 *   | header | gap | block | block |         | block |   blocks end at the
 *   | 48 B   |     |   0   |   1   |         | cap-1 |   pool's end
 *   +--------+-----+-------+-------+-- ... --+-------+
 *   ^ pool start   ^ pool start + first (>= NEAP_POOL_HEADER_SPACE)
 *   capacity = (npages * 4096 - 64) / size; first = npages * 4096 - capacity
 *   * size, so every block is 16-aligned, and aligned to any power of two
 *   (up to a page) that divides the block size.  A survivor pins its own
 *   pool's pages and no metadata page.
 *
 *   large run: n whole pages of user data from its first byte; no header,
 *   its page count is in kind[head].  A block of a class whose size is a
 *   multiple of the page size (4, 8, 12, ... 32 KiB) is a run of its own
 *   the same way (BLOCK, with its class in kind[head]): an in-page header
 *   would cost such a pool a whole page.
 *
 *   huge block: its own mapping, aligned to 4 MiB:
 *   +--------+--------------------------- ... ---+
 *   | header | user data (at base + max(page, alignment))
 *   +--------+--------------------------- ... ---+
 *   once freed it waits in the huge cache (arena.c: at most 8 mappings and
 *   NEAP_PURGE_MAX bytes, for NEAP_PURGE_DELAY ms; its map bytes stay and its
 *   header says CACHED) for reuse, then it is unmapped (its user address
 *   kept in a ring of the last 16, so that a second free is still a double
 *   free); realloc moves or resizes it with mremap.
 *
 *   _neap_map: one byte per 4 MiB of the 47-bit address space (32 MiB of
 *   zero-filled, lazily touched bss): 0 not neap's, 1 arena, 2 huge mapping
 *   base, 3..254 huge continuation (value-2 units back to the base), 255 far
 *   inside a huge mapping.  free() consults it before touching any header,
 *   so a foreign pointer is recognised without reading memory neap does not
 *   own.  A huge mapping's bytes are cleared (under _neap_huge_lock) before
 *   it is unmapped or moved, and its header is read under that lock.
 *
 * Page kinds (kind[i] >> 12; the low 12 bits: LARGE the run's pages, CONT
 * the distance back to the head, BLOCK and SPARE the class, otherwise 0):
 *
 *   FREE --alloc run--> POOL <--> FULL       (small/medium pool heads)
 *     ^                  |
 *     +----- retire -----+   (from the heap's empty list: no block out, not
 *                             direct; the kind stays POOL while it waits there)
 *   FREE --alloc run--> LARGE --free--> FREE
 *   FREE --alloc run--> BLOCK <--> SPARE --release--> FREE  (one SPARE per
 *                                            page-multiple class and heap)
 *   pages after the head of a run: CONT;  the arena header page: META
 *   A FREE page is either dirty (committed, contents stale) or clean (never
 *   touched or purged with MADV_DONTNEED, reads as zero): dirty_map.
 *   A pool header is read only after kind[] says POOL or FULL; once a pool
 *   is retired its header is garbage.
 *
 * Invariants:
 *   - pool.used = blocks handed out - blocks freed by the owner (blocks freed
 *     by other threads count as used until the owner drains arena.remote),
 *     + 1 while the pool is its heap's direct pool (so the free fast path's
 *     one test on the tag lets the direct pool's last block through).
 *   - capacity = used + |free| + |local_free| + (capacity - bumped), used
 *     without the direct pool's 1 (remote-freed blocks are in no list until
 *     drained).
 *   - A pool is in at most one place: heap.direct[cls] (the current pool),
 *     the class's partial list (linked = ON_PARTIAL, blocks out), the heap's
 *     empty list (linked = ON_EMPTY, no block out), or nowhere (FULL, or
 *     orphaned).  A pool with no block out is direct or on the empty list
 *     (an orphan's is retired when its last block comes back).
 *   - An arena's page maps, kind[], pool headers and lists are written only
 *     by its owner heap's thread, or, for an orphan, under the orphan lock;
 *     its page maps and dirty counts also by the background purge while it
 *     holds the owner heap (claimed, the owner out of its slow paths:
 *     heap.c).
 *   - arena.pages_used counts data pages in runs; 0 means the arena is empty.
 *   - used_map has a bit per page in a run (and the META page); dirty_map a
 *     bit per free page with stale contents; no page has both.  young_map is
 *     a subset of dirty_map: pages emptied after the arena joined its heap's
 *     dirty queue, given back one purge round later.
 *   - validate.c checks these, and the lists' and maps' own, at the slow
 *     paths the debug level or NEAP_VALIDATE ask for.
 *
 * The hardened build (-DNEAP_HARDENED=ON; the plain build's code is not
 * changed by any of it):
 *   - Two per-process random keys (_neap_keys), set at process start before
 *     any block is handed out, never changed.
 *   - Every link stored in a free block (pool.free and pool.local_free
 *     lists, the carving of fresh blocks, arena.remote's stack) is
 *     next ^ (the link's own address >> 12) ^ key 0; the list heads in the
 *     pool header and the arena are plain pointers.  All reads decode
 *     (_neap_link_get); a pop (_neap_pool_link) requires the decoded link
 *     to be NULL or inside the same pool past its header, and a drain of
 *     the remote stack NULL or inside the same arena, else the process ends
 *     with "free list corrupted" (an overwritten link is never followed).
 *   - Word 1 of a pool block (neap_block_t.freed) holds its freed tag,
 *     address * odd constant ^ key 1 (odd, never 0), while it is on any
 *     list, and 0 from the moment it is handed out: every free that puts a
 *     pool block on a list checks the word first (equal to the tag: a
 *     double free, reported) and writes the tag; every pop clears it, so a
 *     tag left in dirty memory is never taken for a free.  A use after free
 *     may overwrite the tag: that double free then goes uncaught, never a
 *     false report.  Large runs and huge blocks keep their own checks
 *     (kind[], the huge cache).
 */
#ifndef NEAP_INTERNAL_H
#define NEAP_INTERNAL_H

#include "neap.h"
#include "os/os.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Tunables.  Fixed by the design; checked below.
 * ------------------------------------------------------------------------- */
#define NEAP_PAGE_SHIFT 12
#define NEAP_ARENA_SHIFT 22
#define NEAP_ARENA_MASK ((uintptr_t)NEAP_ARENA_SIZE - 1)
#define NEAP_PAGE_MASK ((uintptr_t)NEAP_PAGE_SIZE - 1)
#define NEAP_ARENA_PAGES (NEAP_ARENA_SIZE / NEAP_PAGE_SIZE)   /* 1024 */
#define NEAP_MAP_WORDS (NEAP_ARENA_PAGES / 64)                 /* 16 */
#define NEAP_ADDR_BITS 47
#define NEAP_MAP_SIZE ((size_t)1 << (NEAP_ADDR_BITS - NEAP_ARENA_SHIFT))

#define NEAP_SMALL_CLASSES 32                  /* 16..512 in 16-byte steps */
#define NEAP_MEDIUM_MAX 32768                  /* largest medium class */
#define NEAP_LARGE_MAX ((size_t)1 << 20)       /* larger than this: huge */
#define NEAP_POOL_MAX_PAGES 16                 /* largest medium pool */

#if (1u << NEAP_PAGE_SHIFT) != NEAP_PAGE_SIZE || (1u << NEAP_ARENA_SHIFT) != NEAP_ARENA_SIZE
#error "page or arena shift does not match its size"
#endif
#if NEAP_ARENA_PAGES % 64 != 0
#error "the page maps need a whole number of 64-bit words"
#endif
#if (1 << 20) >= NEAP_ARENA_SIZE / 2  /* NEAP_LARGE_MAX */
#error "large runs must fit an arena several times over"
#endif

/* Map byte values. */
#define NEAP_MAP_NONE 0
#define NEAP_MAP_ARENA 1
#define NEAP_MAP_HUGE 2
#define NEAP_MAP_FAR 255

/* Page kinds: arena.kind[i] >> NEAP_PK_SHIFT. */
enum {
    NEAP_PS_FREE = 0,  /* not in a run */
    NEAP_PS_POOL,      /* head of a pool with free blocks (or the direct pool) */
    NEAP_PS_FULL,      /* head of a pool with no free block left */
    NEAP_PS_LARGE,     /* head of a run holding one large block; low bits: pages */
    NEAP_PS_CONT,      /* a later page of a run; low bits: pages back to the head */
    NEAP_PS_META,      /* the arena header */
    NEAP_PS_BLOCK,     /* head of a run holding one block of a page-multiple class; low bits: class */
    NEAP_PS_SPARE,     /* the same, its block free, kept by the owner heap for the next one */
    NEAP_PS_COLD,      /* meshing: head of a one-page small pool on its partial list that the
                          owner left for the mesher; its frees take the slow path */
    NEAP_PS_ALIAS      /* meshing: a page whose virtual page maps the physical page of the
                          pool at the page in the low bits (same arena); its blocks are that
                          pool's, at the same offsets */
};
#define NEAP_PK_SHIFT 12
#define NEAP_PK_COUNT_MASK ((1u << NEAP_PK_SHIFT) - 1)
/* The kind[] value of a page of kind k with count n. */
#define NEAP_PK(k, n) ((uint16_t)(((unsigned)(k) << NEAP_PK_SHIFT) | (unsigned)(n)))
#define NEAP_PK_KIND(v) ((unsigned)(v) >> NEAP_PK_SHIFT)
#define NEAP_PK_COUNT(v) ((size_t)((v) & NEAP_PK_COUNT_MASK))

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------- */
typedef struct neap_block_s {
    struct neap_block_s *next;   /* next free block (hardened: encoded) */
#if NEAP_HARDENED
    uintptr_t freed;             /* pool blocks: the freed tag while free, 0 once
                                    handed out (every block is >= 16 bytes) */
#endif
} neap_block_t;

/* The hardened build (-DNEAP_HARDENED=ON; internal.h's opening comment). */
#ifndef NEAP_HARDENED
#define NEAP_HARDENED 0
#endif
#if NEAP_HARDENED
/* Per-process random keys, set once at process start (heap.c,
 * _neap_classes_init) before any block is handed out, never changed:
 * [0] for free-list links, [1] for freed tags (odd). */
extern NEAP_INTERNAL uintptr_t _neap_keys[2];
#endif

/* A free block's link as stored: in the hardened build, next ^ (the slot's
 * address >> 12) ^ key 0 (NULL too is stored so); in the plain build, next
 * itself.  Every write of neap_block_t.next goes through _neap_link_set and
 * every read through _neap_link_get, or through the checked readers below
 * where a list is popped. */
neap_inline void _neap_link_set(neap_block_t *slot, neap_block_t *next) {
#if NEAP_HARDENED
    slot->next = (neap_block_t *)((uintptr_t)next ^ ((uintptr_t)slot >> NEAP_PAGE_SHIFT) ^ _neap_keys[0]);
#else
    slot->next = next;
#endif
}
neap_inline neap_block_t *_neap_link_get(const neap_block_t *slot) {
#if NEAP_HARDENED
    return (neap_block_t *)((uintptr_t)slot->next ^ ((uintptr_t)slot >> NEAP_PAGE_SHIFT) ^ _neap_keys[0]);
#else
    return slot->next;
#endif
}
#if NEAP_HARDENED
/* The freed tag of block b: its address times an odd constant, xor key 1
 * (odd, and b a multiple of 16: never 0).  Word 1 of a pool block holds it
 * from the moment the block goes on any list (a pool's free lists, an
 * arena's remote stack) until it is handed out again, when it is cleared;
 * a free that finds it there is a double free. */
#define NEAP_FREED_MULT ((uintptr_t)0x9E3779B97F4A7C15ull)
neap_inline uintptr_t _neap_freed_tag(const void *b) {
    return (uintptr_t)b * NEAP_FREED_MULT ^ _neap_keys[1];
}
/* "double free detected on p" from func (heap.c). */
NEAP_INTERNAL __attribute__((noreturn, cold)) void _neap_fatal_double_free(const char *func, const void *p);
/* Marks pool block b freed, or ends the process if it is already. */
neap_inline void _neap_freed_mark(neap_block_t *b, const char *func) {
    uintptr_t tag = _neap_freed_tag(b);
    if (neap_unlikely(b->freed == tag)) _neap_fatal_double_free(func, b);
    b->freed = tag;
}
/* A decoded link that leads out of its list's pool (or arena, for the
 * remote stack): the process ends with "free list corrupted" (heap.c). */
NEAP_INTERNAL __attribute__((noreturn, cold)) void _neap_fatal_link(const void *where, const void *block,
                                                                    uintptr_t next, bool remote);
#endif

typedef struct neap_heap_s neap_heap_t;
typedef struct neap_arena_s neap_arena_t;

/* The header of a small or medium pool, at the start of its head page (the
 * pool's address is its header's).  The fields the free fast path reads
 * come first; the header has its cache line to itself.  All headers sit at
 * page offset 0, so they share one L1 set: more than about 12 pools in use
 * at once in a tight loop evict each other's headers from L1 (to L2). */
typedef struct neap_pool_s {
    neap_block_t *free;          /* blocks ready to hand out (owner only) */
    neap_block_t *local_free;    /* blocks the owner freed since the last swap */
    /* The two halves of the word the free fast path tests once
     * (neap_pool_tag); each is written on its own (used: plain 16-bit
     * stores by the owner; flags: atomic read-modify-writes, hooks.h), so
     * neither writer can undo the other's change. */
    uint16_t used;               /* blocks out, + 1 while the pool is its heap's
                                    direct pool (owner only) */
    uint16_t flags;              /* NEAP_POOL_*: set by the layers above from any
                                    thread (atomic builtins only; hooks.h) */
    uint16_t bumped;             /* blocks carved from fresh memory so far */
    uint16_t first;              /* offset of block 0 from the pool start */
    uint16_t block_size;         /* bytes per block (copies of the class's) */
    uint32_t recip;              /* ceil(2^32 / block_size): offset/size without a division */
    uint16_t npages;             /* pages in the pool */
    uint8_t cls;                 /* size class (1..NEAP_CLASS_MAX) */
    uint8_t linked;              /* NEAP_POOL_ON_*: which list of the heap it is on */
    struct neap_pool_s *next;    /* partial or empty list links (owner only) */
    struct neap_pool_s *prev;
    _Atomic uint16_t watch_off;  /* with NEAP_POOL_WATCH: the only block whose
                                    frees are reported (its offset), or 0: all */
    uint32_t empty_since;        /* on the empty list: the heap's clock (ms, low
                                    32 bits) when it got there */
} neap_pool_t;

/* The link of block b, popped from (or walked on) a free list of pool:
 * in the hardened build decoded, and NULL or inside the pool past its
 * header, else the process ends (an overwritten link is reported, never
 * followed). */
#if NEAP_HARDENED
neap_inline bool _neap_pool_link_ok(const neap_pool_t *pool, const neap_block_t *next) {
    uintptr_t off = (uintptr_t)next - (uintptr_t)pool - pool->first;
    return neap_likely(off < ((uintptr_t)pool->npages << NEAP_PAGE_SHIFT) - pool->first) || next == NULL;
}
/* _neap_fatal_link for b's link; returns nothing ever, but is declared to
 * return a block so that the malloc fast path reaches it by a tail call
 * and keeps no stack frame (fastpath.h). */
NEAP_INTERNAL __attribute__((cold)) void *_neap_pool_link_fail(const neap_pool_t *pool, const neap_block_t *b);
#endif
neap_inline neap_block_t *_neap_pool_link(const neap_pool_t *pool, const neap_block_t *b) {
    neap_block_t *next = _neap_link_get(b);
#if NEAP_HARDENED
    if (neap_unlikely(!_neap_pool_link_ok(pool, next))) _neap_fatal_link(pool, b, (uintptr_t)next, false);
#else
    (void)pool;
#endif
    return next;
}

/* The index of the block at offset off of pool's blocks (off counted from
 * block 0; an offset before it wraps around to a huge index). */
neap_inline uint32_t _neap_pool_block_index(const neap_pool_t *pool, uint32_t off) {
    return (uint32_t)(((uint64_t)off * pool->recip) >> 32);
}

/* neap_pool_t.linked */
#define NEAP_POOL_ON_NONE 0      /* direct, FULL, or an orphan's */
#define NEAP_POOL_ON_PARTIAL 1   /* the partial list of its class */
#define NEAP_POOL_ON_EMPTY 2     /* the heap's empty list (no block out) */

/* neap_pool_t.flags (set and cleared through hooks.h):
 *   WATCH       frees of the pool's blocks (of the block at watch_off, if
 *               not 0) go to the slow path, which reports them to the hooks
 *   REPORT_ALL  every free of the pool is reported to the hooks by the slow
 *               path, which then finishes it without the heap's lock (for
 *               the pool's life) */
#define NEAP_POOL_WATCH 1u
#define NEAP_POOL_REPORT_ALL 2u
/* the debug mode's (debug.c): every free of the pool goes to the slow path,
 * which checks the block's guards */
#define NEAP_POOL_CHECKED 4u

/* The pool's count in the low 16 bits and its flags in the high 16 (the
 * flags read with acquire: see hooks.h's memory order).  The free fast path's one
 * test for the unusual is tag - 2 > 0xFFFD: a flag set (tag >= 2^16), or
 * used <= 1 -- the last block of a pool that is not direct (the direct
 * pool's count carries 1 more, so its last block passes), or a block freed
 * into a pool with none out (a double free). */
neap_inline uint32_t neap_pool_tag(const neap_pool_t *pool) {
    /* two 16-bit loads joined in a register, not one 32-bit load: the
     * owner's last 16-bit store to used (the malloc or free just before)
     * may still wait in the store buffer, and a wider load that covers it
     * cannot be served from it; the load then waits for the store to
     * reach the cache, and a loop of mallocs and frees on one pool paid
     * that stall at every free (glibc-bench's simple loop: 62% of free's
     * samples on the instruction after the load) */
    uint32_t flags = __atomic_load_n(&pool->flags, __ATOMIC_ACQUIRE);
    return (uint32_t)pool->used | flags << 16;
}
#define NEAP_POOL_TAG_UNUSUAL(t) ((uint32_t)((t) - 2) > 0xFFFDu)

/* Bytes reserved for the header at the start of a pool: a cache line, so no
 * block shares the header's line. */
#define NEAP_POOL_HEADER_SPACE 64

_Static_assert(sizeof(neap_pool_t) <= NEAP_POOL_HEADER_SPACE, "the pool header fits its space");
_Static_assert(NEAP_MEDIUM_MAX <= UINT16_MAX, "block sizes must fit the pool header");
_Static_assert(NEAP_POOL_MAX_PAGES * NEAP_PAGE_SIZE <= UINT16_MAX + 1, "pool offsets must fit the pool header");
_Static_assert((NEAP_LARGE_MAX >> NEAP_PAGE_SHIFT) <= NEAP_PK_COUNT_MASK, "run lengths must fit kind[]");

typedef struct neap_class_s {
    uint32_t size;               /* block size */
    uint32_t recip;              /* ceil(2^32 / size): offset/size without a division */
    uint16_t pages;              /* pages per pool */
    uint16_t capacity;           /* blocks per pool */
    uint16_t first;              /* offset of block 0: pages * page - capacity * size */
    uint8_t run;                 /* size a multiple of the page: one-block runs, no header */
} neap_class_t;

struct neap_arena_s {
    _Atomic(neap_heap_t *) owner;   /* owning heap; NULL orphan (atomic, seq_cst) */
    _Atomic(neap_block_t *) remote; /* blocks freed by other threads (atomic stack) */
    /* owner and remote have the first cache line to themselves: the owner's
     * writes below would otherwise take the line from every remote push */
    char remote_pad[64 - sizeof(void *) * 2];
    uint64_t used_map[NEAP_MAP_WORDS];  /* pages in runs (owner only) */
    uint64_t dirty_map[NEAP_MAP_WORDS]; /* free pages with stale contents (owner only) */
    uint64_t young_map[NEAP_MAP_WORDS]; /* dirty pages emptied after dirty_since (owner only) */
    uint32_t pages_used;         /* data pages in runs (owner only) */
    uint32_t pages_dirty;        /* bits set in dirty_map (owner only) */
    uint64_t dirty_since;        /* ms clock when it joined the heap's dirty queue,
                                    or, for an orphan, when it was orphaned */
    neap_arena_t *hnext, *hprev; /* the owner heap's arena list (owner only) */
    neap_arena_t *dnext;         /* the owner heap's dirty queue (owner only) */
    uint8_t in_dirty;            /* on the dirty queue */
    uint8_t zombie;              /* owned by a thread that did not survive fork */
    uint8_t backing;             /* NEAP_BACK_*: what the arena is a mapping of */
    uint16_t aliases;            /* ALIAS pages (owner only) */
    uint8_t mesh_todo;           /* meshing: COLD pools changed since the mesher last went
                                    through the arena (owner, or the mesher holding it) */
    int file_fd;                 /* NEAP_BACK_FILE: the memory file */
    uint64_t file_off;           /* NEAP_BACK_FILE, _PRIVATE: the arena's offset in its file */
    neap_arena_t *gnext, *gprev; /* all arenas, or the orphan list (global lock) */
    /* per page: NEAP_PK(kind, count) (owner writes; other threads read it,
     * relaxed, to validate their frees) */
    uint16_t kind[NEAP_ARENA_PAGES];
    /* meshing: per pool head page, the ALIAS pages that map it (owner only) */
    uint8_t nalias[NEAP_ARENA_PAGES];
};

/* neap_arena_t.backing: written once by the arena's creator, and by a fork
 * (in any thread) turning FILE into PRIVATE; read by the owner: relaxed */
neap_inline unsigned neap_arena_backing(const neap_arena_t *a) { return __atomic_load_n(&a->backing, __ATOMIC_RELAXED); }
neap_inline void neap_arena_set_backing(neap_arena_t *a, unsigned v) {
    __atomic_store_n(&a->backing, (uint8_t)v, __ATOMIC_RELAXED);
}
/* neap_arena_t.backing */
#define NEAP_BACK_ANON 0      /* anonymous private memory (meshing off) */
#define NEAP_BACK_FILE 1      /* a shared mapping of the memory file: pages can be meshed */
#define NEAP_BACK_PRIVATE 2   /* a private mapping of a memory file (switched at a fork): never
                                 meshed again; a purged page reads the file's page again, so no
                                 free page of it counts as clean (reads as zero) */

#define NEAP_META_PAGES \
    ((sizeof(neap_arena_t) + NEAP_PAGE_SIZE - 1) / NEAP_PAGE_SIZE)
_Static_assert(NEAP_META_PAGES == 1, "an arena's header fits its first page");

/* A count of the pools and runs of some arenas (stats.c): what a heap
 * publishes for statistics readers of other threads. */
typedef struct neap_tally_s {
    size_t pages_used, pools, large, bytes_live;
    uint32_t cls_pools[NEAP_CLASS_MAX + 1], cls_used[NEAP_CLASS_MAX + 1], cls_free[NEAP_CLASS_MAX + 1];
} neap_tally_t;

/* neap_heap_t.requests */
#define NEAP_REQ_TRIM 1u    /* neap_trim in another thread: a full trim */
#define NEAP_REQ_TALLY 2u   /* a statistics reader: publish a fresh tally */

struct neap_heap_s {
    neap_pool_t *direct[NEAP_CLASS_MAX + 1];  /* current pool per class; [0] aliases [1] */
    neap_pool_t *partial[NEAP_CLASS_MAX + 1]; /* other pools with free blocks, oldest first */
    neap_pool_t *partial_tail[NEAP_CLASS_MAX + 1];
    neap_pool_t *empty_head;     /* pools with no block out, kept for reuse: the */
    neap_pool_t *empty_tail;     /* oldest first (heap.c, lazy retirement) */
    size_t empty_pages;          /* pages of the pools on the empty list */
    int empty_expiring;          /* in neap_empty_expire (heap.c) */
    uintptr_t spare[NEAP_CLASS_MAX + 1];     /* run classes: a SPARE run, or 0 */
    neap_arena_t *arenas;        /* arenas this heap owns */
    neap_arena_t *alloc_arena;   /* where new runs come from first */
    neap_arena_t *dirty_head;    /* arenas with dirty pages, oldest first */
    neap_arena_t *dirty_tail;
    size_t dirty_pages;          /* sum of pages_dirty over the dirty queue */
    size_t empty_arenas;         /* owned arenas with pages_used == 0 */
    size_t narenas;              /* owned arenas */
    _Atomic int remote_pending;  /* some owned arena got remote frees (atomic) */
    _Atomic int requests;        /* NEAP_REQ_*: work other threads ask of the owner at
                                    its next allocation slow path (set by fetch_or) */
    neap_heap_t *gnext, *gprev;  /* all live heaps (global lock) */
    uint64_t now;                /* last clock reading, ms */
    unsigned purge_countdown;    /* slow paths until the next purge check */
    int draining;                /* walking the arena list: no purge, it may unmap arenas */
    int alive;                   /* 1 while a thread uses it */
    unsigned validate_count;     /* slow paths since the last validation (validate.c) */
    unsigned validate_every;     /* NEAP_DEBUG 2: slow paths between validations (0: the minimum) */
    _Atomic uint64_t cooled_at;  /* meshing: ms clock of the last cooling (heap.c; the owner
                                    stores, the background thread reads, relaxed) */
    unsigned cool_countdown;     /* meshing: slow paths until the clock is read for it */
    unsigned cool_pending;       /* meshing: pools pushed on partial lists since the last cooling */
    _Atomic int mesh_pub;        /* meshing: the owner left pools for the mesher (owner stores,
                                    the background thread reads and clears, relaxed) */
    _Atomic unsigned long mesh_activity;   /* meshing: pools turned partial, and frees into COLD
                                    pools (owner stores, the background thread reads) */
    unsigned long mesh_seen;     /* meshing, the background thread's: mesh_activity and the */
    uint64_t mesh_seen_ms;       /* ms clock at its last look */
    /* What other threads read (atomics; heap.c's opening comment) */
    _Atomic size_t dirty_pub;    /* dirty_pages, as the owner or the purge last left them */
    size_t pools_made[NEAP_CLASS_MAX + 1];  /* per class, made by this heap (owner stores,
                                    readers load, relaxed; added to _neap_gstats at exit) */
    neap_tally_t tally;          /* the owner's pools, counted when a reader asked (fields
                                    written and read with atomics: stats.c) */
    _Atomic unsigned tally_seq;  /* odd while the owner writes tally (a sequence lock) */
    /* the slow-path handshake: a recycled heap keeps these two, every field
     * above is cleared (under _neap_lock, which tally readers hold) */
    _Atomic int busy;            /* the owner is in a slow path (owner writes) */
    _Atomic int claimed;         /* the background purge holds the heap (claimers CAS; the owner reads) */
};

/* ---------------------------------------------------------------------------
 * Globals
 * ------------------------------------------------------------------------- */
extern NEAP_INTERNAL uint8_t _neap_map[NEAP_MAP_SIZE];
extern NEAP_INTERNAL neap_class_t _neap_class[NEAP_CLASS_MAX + 1];
extern NEAP_INTERNAL neap_heap_t _neap_heap_empty;
extern NEAP_INTERNAL neap_pool_t _neap_pool_empty;
extern NEAP_INTERNAL __thread neap_heap_t *_neap_tl_heap;
extern NEAP_INTERNAL pthread_mutex_t _neap_lock;   /* arenas list, heaps list, orphans */

/* Process-wide counters (atomic, relaxed). */
typedef struct neap_gstats_s {
    _Atomic size_t arenas_allocated, arenas_freed, arenas_current, arenas_highwater;
    _Atomic size_t bytes_purged, bytes_unmapped;
    _Atomic size_t huge_current, huge_bytes, huge_cached;  /* cached: freed huge mappings kept */
    _Atomic size_t heaps_current, arenas_orphaned;
    _Atomic size_t pools_made[NEAP_CLASS_MAX + 1];   /* per class, by heaps gone (live ones count their own) */
} neap_gstats_t;
extern NEAP_INTERNAL neap_gstats_t _neap_gstats;

/* The owner's side of the slow-path handshake with the background purge
 * (heap.c's opening comment): the owner says it is in a slow path with a
 * plain store, a compiler barrier, then a plain (acquire) load; no atomic
 * read-modify-write, no fence.  Fast paths take no part. */
NEAP_INTERNAL void _neap_heap_enter_wait(neap_heap_t *h);
static inline void _neap_heap_enter(neap_heap_t *h) {
    atomic_store_explicit(&h->busy, 1, memory_order_relaxed);
    /* the purger's membarrier orders the store above before the load below */
    atomic_signal_fence(memory_order_seq_cst);
    if (neap_unlikely(atomic_load_explicit(&h->claimed, memory_order_acquire))) _neap_heap_enter_wait(h);
}
static inline void _neap_heap_leave(neap_heap_t *h) {
    atomic_store_explicit(&h->dirty_pub, h->dirty_pages, memory_order_relaxed);
    atomic_store_explicit(&h->busy, 0, memory_order_release);
}
/* For a thread that is not h's owner and needs h's slow-path state still
 * (validate.c, with every owner quiet): waits for the background purge to
 * let go of h, then keeps it off. */
NEAP_INTERNAL void _neap_heap_hold(neap_heap_t *h);
NEAP_INTERNAL void _neap_heap_unhold(neap_heap_t *h);
/* Background purge: expired dirty pages of every live heap.  Returns the
 * dirty pages left waiting (heap.c). */
NEAP_INTERNAL size_t _neap_heaps_purge_expired(void);
NEAP_INTERNAL bool _neap_large_grow(void *p, size_t size);   /* realloc in place (heap.c) */


/* ---------------------------------------------------------------------------
 * mesh.c: meshing (NEAP_MESH), fixed at process start.  Counters for
 * statistics (atomic, relaxed).
 * ------------------------------------------------------------------------- */
typedef struct neap_mstats_s {
    _Atomic size_t meshes;     /* meshes made since start */
    _Atomic size_t unmeshes;   /* alias pages given their own page back */
    _Atomic size_t pages;      /* alias pages now */
    _Atomic size_t ns;         /* time spent meshing */
} neap_mstats_t;
extern NEAP_INTERNAL neap_mstats_t _neap_mstats;
extern NEAP_INTERNAL bool _neap_mesh_enabled;   /* set once at process start */
neap_inline bool neap_mesh_on(void) { return neap_unlikely(_neap_mesh_enabled); }
NEAP_INTERNAL void _neap_mesh_init(bool on);    /* process start (init.c) */
/* The memory file for new arenas (arena.c asks, under _neap_lock): its fd
 * and a fresh or reused 4 MiB slot of it; false: none (anonymous arena). */
NEAP_INTERNAL bool _neap_mesh_file_slot(int *fd, uint64_t *off);
NEAP_INTERNAL void _neap_mesh_file_release(int fd, uint64_t off);   /* under _neap_lock */
NEAP_INTERNAL int _neap_mesh_file_fd(void);   /* the memory file of new arenas, or -1 */
/* Meshes src into dst: two COLD one-page pools of one class in one arena
 * of the caller's (the owner in a slow path, or the background thread
 * holding the owner's claim); src has no alias and is on no list.  true:
 * src's page is now an ALIAS of dst, dst holds both pools' blocks. */
NEAP_INTERNAL bool _neap_mesh_pair(neap_pool_t *dst, neap_pool_t *src);
/* The live blocks of a one-page pool as a bitmap (mesh.c); its count. */
NEAP_INTERNAL size_t _neap_mesh_live(const neap_pool_t *pool, uint64_t live[4]);
/* Gives every ALIAS page of the pool at page idx its own (zero) page back;
 * the pages' kinds are left to the caller, which releases them. */
NEAP_INTERNAL void _neap_mesh_unmesh_page(neap_arena_t *a, size_t alias);
/* The mesh lock: one mesher at a time in the process (fork takes it). */
/* The mapping budget counted again (the process's mappings read). */
NEAP_INTERNAL void _neap_mesh_budget(void);
NEAP_INTERNAL void _neap_mesh_lock(void);
NEAP_INTERNAL bool _neap_mesh_trylock(void);
NEAP_INTERNAL void _neap_mesh_unlock(void);
/* fork: every FILE arena becomes a private mapping of its file (prepare,
 * under _neap_lock, every thread's meshing stopped), and new arenas use a
 * new file (parent and child, after). */
NEAP_INTERNAL void _neap_mesh_fork_prepare(void);
NEAP_INTERNAL void _neap_mesh_fork_after(bool child);
/* The address of block p as its pool's head page holds it: p itself, or,
 * in an ALIAS page, the same offset in the pool's page. */
neap_inline uintptr_t _neap_mesh_canon(uintptr_t p) {
    if (neap_likely(!neap_mesh_on())) return p;
    neap_arena_t *a = (neap_arena_t *)(p & ~((uintptr_t)NEAP_ARENA_SIZE - 1));
    uint16_t v = __atomic_load_n(&a->kind[(p & ((uintptr_t)NEAP_ARENA_SIZE - 1)) >> NEAP_PAGE_SHIFT],
                                 __ATOMIC_RELAXED);
    if (neap_likely((v >> NEAP_PK_SHIFT) != NEAP_PS_ALIAS)) return p;
    return (uintptr_t)a + ((uintptr_t)(v & NEAP_PK_COUNT_MASK) << NEAP_PAGE_SHIFT) + (p & NEAP_PAGE_MASK);
}

/* ---------------------------------------------------------------------------
 * options.c
 * ------------------------------------------------------------------------- */
extern NEAP_INTERNAL long _neap_options[NEAP_OPTION_COUNT];
NEAP_INTERNAL void _neap_options_init(void);   /* reads once, when the environment is there */
/* relaxed atomics: neap_option_set may change a value while another thread
 * (the background thread, say) reads it; plain moves on x86-64 */
#define neap_opt(o) __atomic_load_n(&_neap_options[(o)], __ATOMIC_RELAXED)

/* ---------------------------------------------------------------------------
 * debug.c: the debug mode (NEAP_DEBUG_MALLOC), fixed at process start.
 * The API functions and the slow paths ask neap_debug_mode() first; the
 * fast paths never do (the countdown and NEAP_POOL_CHECKED send them out).
 * ------------------------------------------------------------------------- */
extern NEAP_INTERNAL _Atomic int _neap_debug_state;   /* 0 unknown, 1 off, 2 on */
NEAP_INTERNAL void _neap_debug_init(bool on);
NEAP_INTERNAL void _neap_process_init(void);   /* init.c: classes and options, once */
neap_inline bool neap_debug_mode(void) {
    int s = atomic_load_explicit(&_neap_debug_state, memory_order_relaxed);
    if (neap_likely(s == 1)) return false;
    if (s == 0) {   /* before the first allocation: the options are read now */
        _neap_process_init();
        s = atomic_load_explicit(&_neap_debug_state, memory_order_acquire);
    }
    return s == 2;
}
NEAP_INTERNAL void *_neap_debug_malloc(size_t size, bool zero, size_t align, uintptr_t caller);
NEAP_INTERNAL void _neap_debug_free(void *p, const char *func);
NEAP_INTERNAL void *_neap_debug_realloc(void *p, size_t size, uintptr_t caller);
NEAP_INTERNAL size_t _neap_debug_usable(const void *p);   /* the size asked for; 0: not a live block */
NEAP_INTERNAL bool _neap_debug_owns(const void *p);

/* ---------------------------------------------------------------------------
 * arena.c
 * ------------------------------------------------------------------------- */
NEAP_INTERNAL neap_arena_t *_neap_arena_create(void);     /* NULL on OOM */
NEAP_INTERNAL void _neap_arena_destroy(neap_arena_t *a);  /* caller: not on any heap list */
/* First page of a free run of n pages whose index is a multiple of align
 * (pages); -1 if none.  prefer_dirty: a warm dirty page first (n == 1). */
NEAP_INTERNAL long _neap_arena_find_run(neap_arena_t *a, size_t n, size_t align, bool prefer_dirty);
NEAP_INTERNAL bool _neap_arena_run_is_clean(const neap_arena_t *a, size_t first, size_t n);
NEAP_INTERNAL bool _neap_arena_run_is_free(const neap_arena_t *a, size_t first, size_t n);
NEAP_INTERNAL size_t _neap_arena_take_run(neap_arena_t *a, size_t first, size_t n); /* returns dirty pages taken */
NEAP_INTERNAL void _neap_arena_release_run(neap_arena_t *a, size_t first, size_t n);
/* Purging adds the arena's dirty pages to the batch b (flushed by the
 * caller: _neap_os_purge_flush) and returns how many. */
NEAP_INTERNAL size_t _neap_arena_purge(neap_arena_t *a, neap_purge_batch_t *b);
/* The same for the dirty pages that are not young; the young ones become old. */
NEAP_INTERNAL size_t _neap_arena_purge_old(neap_arena_t *a, neap_purge_batch_t *b);
/* An empty batch, madvise per range if NEAP_PURGE_BATCH is 0. */
NEAP_INTERNAL void _neap_purge_batch_init(neap_purge_batch_t *b);
/* One range of arena a's free pages into the batch (or, for a PRIVATE
 * arena, given back at once). */
NEAP_INTERNAL void _neap_arena_purge_add(neap_arena_t *a, neap_purge_batch_t *b, void *p, size_t size);
NEAP_INTERNAL void _neap_arena_mark_young(neap_arena_t *a, size_t first, size_t n);
/* zero: the data must read as zero (a fresh mapping does; a cached one is cleared) */
NEAP_INTERNAL void *_neap_huge_alloc(size_t size, size_t align, bool zero, size_t *usable);
NEAP_INTERNAL void _neap_huge_free(uintptr_t base, void *p, const char *func);
NEAP_INTERNAL uintptr_t _neap_huge_base(uintptr_t p, uint8_t kind); /* 0 if none */
NEAP_INTERNAL size_t _neap_huge_usable(uintptr_t base, const void *p);
/* Aborts for p, whose map byte says not neap's: "double free of huge block"
 * if p was one of the last 16 huge blocks freed whose mappings are gone
 * (and nothing is mapped there now), else "not allocated by neap". */
NEAP_INTERNAL __attribute__((noreturn, cold)) void _neap_fatal_not_neap(const char *func, const void *p);
/* p (a huge block) resized without copying; NULL: could not, p untouched */
NEAP_INTERNAL void *_neap_huge_realloc(void *p, size_t size, bool move, const char *func);
/* Unmaps cached huge mappings freed NEAP_PURGE_DELAY ms before now (cheap
 * when there are none); flush unmaps them all, returns 1 if there were any. */
NEAP_INTERNAL void _neap_huge_cache_expire(uint64_t now);
NEAP_INTERNAL int _neap_huge_cache_flush(void);

neap_inline uint8_t _neap_map_kind(uintptr_t a) {
    if (neap_unlikely((a >> NEAP_ADDR_BITS) != 0)) return NEAP_MAP_NONE;
    return __atomic_load_n(&_neap_map[a >> NEAP_ARENA_SHIFT], __ATOMIC_RELAXED);
}
neap_inline neap_arena_t *_neap_arena_of(uintptr_t a) {
    return (neap_arena_t *)(a & ~NEAP_ARENA_MASK);
}
neap_inline size_t _neap_page_index(uintptr_t a) {
    return (a & NEAP_ARENA_MASK) >> NEAP_PAGE_SHIFT;
}
neap_inline uintptr_t _neap_page_addr(const neap_arena_t *a, size_t idx) {
    return (uintptr_t)a + (idx << NEAP_PAGE_SHIFT);
}
neap_inline uint16_t _neap_kind_get(const neap_arena_t *a, size_t idx) {
    return __atomic_load_n(&a->kind[idx], __ATOMIC_RELAXED);
}
neap_inline void _neap_kind_set(neap_arena_t *a, size_t idx, uint16_t v) {
    __atomic_store_n(&a->kind[idx], v, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------------
 * heap.c
 * ------------------------------------------------------------------------- */
NEAP_INTERNAL void _neap_classes_init(void);
NEAP_INTERNAL neap_heap_t *_neap_heap_get(void);           /* creates on first use */
NEAP_INTERNAL void *_neap_malloc_generic(size_t size, bool zero);  /* re-reads the heap */
NEAP_INTERNAL void *_neap_malloc_aligned(size_t size, size_t align, bool zero);
NEAP_INTERNAL __attribute__((cold)) void _neap_free_generic(void *p, const char *func);
/* _neap_free_generic without the debug mode: a raw block (debug.c) */
NEAP_INTERNAL void _neap_free_unchecked(void *p, const char *func);
/* The free fast path's way out for p, in this thread's one-page pool whose
 * head page says FULL: freed as the slow path would, without looking the
 * pool up again (or by _neap_free_generic when the pool's flags ask for a
 * report, or p is not the start of a block). */
NEAP_INTERNAL void _neap_free_full(void *p);
/* The same for p in this thread's one-page pool whose head page says COLD
 * (meshing): pushed as the fast path would, inside the slow paths'
 * handshake (the mesher may hold the heap); or _neap_free_generic for
 * anything unusual (flags, the pool's last block, a double free). */
NEAP_INTERNAL void _neap_free_cold(void *p);
/* Whether the free of block p of pool must be reported: the pool says
 * REPORT_ALL, or WATCH for every block or for p's offset. */
neap_inline bool _neap_pool_watches(neap_pool_t *pool, const void *p) {
    /* acquire: a free that finds its block unwatched may hand the pool's
     * pages on; the flags' last writer (a layer clearing WATCH after going
     * through the pool's blocks) must have finished with them */
    uint32_t f = __atomic_load_n(&pool->flags, __ATOMIC_ACQUIRE);
    if (neap_likely(f == 0)) return false;
    if (f & NEAP_POOL_REPORT_ALL) return true;
    uint16_t one = atomic_load_explicit(&pool->watch_off, memory_order_relaxed);
    return one == 0 || one == (uint16_t)((uintptr_t)p - (uintptr_t)pool);
}

/* The pool holding the live block p, or NULL for a large, huge or unknown
 * block. */
NEAP_INTERNAL neap_pool_t *_neap_block_pool(const void *p);
NEAP_INTERNAL size_t _neap_usable_generic(const void *p);  /* 0 if p is no block of neap */
/* realloc's look at p: its usable size if it is a live block of neap, else
 * an abort with free's message (named after func).  Beyond
 * _neap_usable_generic, a block of one of the calling thread's pools must
 * not be on the pool's free lists (heap.c); a block of another thread's
 * pool, whose lists only its owner reads, or one freed by another thread
 * and not yet drained, is taken as live. */
NEAP_INTERNAL size_t _neap_realloc_usable(void *p, const char *func);
/* For the layers above: v (an array from neap_malloc, or
 * NULL) of *cap elements of elem bytes, with room for `need` of them: v
 * itself, or v moved to a bigger array (capacity doubled from *cap, or from
 * `first`, until it holds need; *cap updated), or NULL when memory ran out
 * (v untouched).  Defined in alloc.c. */
NEAP_INTERNAL void *_neap_array_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first);
/* p (a block boundary in a pool in use) sits on a free list of a pool of
 * the calling thread's heap. */
NEAP_INTERNAL bool _neap_is_free_local(const void *p);
NEAP_INTERNAL void _neap_heap_done(neap_heap_t *h);        /* thread exit */
NEAP_INTERNAL int _neap_heap_trim(neap_heap_t *h);
NEAP_INTERNAL int _neap_orphans_collect(bool force);
NEAP_INTERNAL void _neap_fork_child(neap_heap_t *survivor);
NEAP_INTERNAL void _neap_trim_all(void);

/* Small size class of a request of at most NEAP_SMALL_MAX bytes. */
neap_inline size_t _neap_small_class(size_t size) { return (size + 15) >> 4; }

/* Size class of a small or medium request (<= NEAP_MEDIUM_MAX). */
neap_inline size_t _neap_class_of(size_t size) {
    if (size <= NEAP_SMALL_MAX) {
        size_t c = _neap_small_class(size);
        return c ? c : 1;
    }
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll(s);    /* 2^b <= s < 2^(b+1) */
    size_t k = ((s - ((size_t)1 << b)) >> (b - 2)) + 1;  /* 1..4 */
    return NEAP_SMALL_CLASSES + (b - 9) * 4 + k;
}

/* ---------------------------------------------------------------------------
 * init.c -- process start, thread exit, fork; and the hooks through which
 * the layers above the core hear of thread exits and forks without the core
 * calling up into them (hooks.h).
 * ------------------------------------------------------------------------- */
/* _neap_process_init is declared with the debug mode, above */
NEAP_INTERNAL void _neap_thread_register(neap_heap_t *h);
extern NEAP_INTERNAL _Atomic int _neap_initialized;
/* The library constructor's part in the core: options read (the first
 * allocation may have come before the environment was there), the
 * thread-exit key and fork handlers registered. */
NEAP_INTERNAL void _neap_core_start(void);

/* neap_core_hooks_t, _neap_core_add_hooks: hooks.h */

/* stats.c */
NEAP_INTERNAL void _neap_stats_collect(neap_stats_t *out);
/* Counts the pools and runs of arena a into t (plain reads: a's owner, or
 * a thread that keeps a's writers off). */
NEAP_INTERNAL void _neap_tally_arena(const neap_arena_t *a, neap_tally_t *t);
/* Publishes h's tally for other threads' statistics (h's owner, in a slow
 * path, when h->requests says NEAP_REQ_TALLY). */
NEAP_INTERNAL void _neap_tally_publish(neap_heap_t *h);

/* ---------------------------------------------------------------------------
 * validate.c -- the invariants above, checked (see validate.c's drawing)
 * ------------------------------------------------------------------------- */
/* Where a violation was found (NULL / -1: not known). */
typedef struct neap_vwhere_s {
    const neap_heap_t *heap;
    const neap_arena_t *arena;
    long page;
    const void *pool;
    const void *block;
} neap_vwhere_t;
/* Writes "neap: invariant violated: WHAT [heap .. arena .. page .. pool ..
 * block ..] n1=v1 n2=v2 n3=v3" to fd 2 (names NULL: left out) and aborts. */
NEAP_INTERNAL __attribute__((noreturn, cold)) void
_neap_invariant_fail(const char *what, const neap_vwhere_t *w, const char *n1, unsigned long long v1,
                     const char *n2, unsigned long long v2, const char *n3, unsigned long long v3);
/* h, by its own thread in a slow path (or with its thread quiet); returns
 * the work done (pages, pools and blocks looked at). */
NEAP_INTERNAL size_t _neap_heap_validate(neap_heap_t *h);
NEAP_INTERNAL void _neap_orphans_validate(void);       /* takes the orphan lock */
NEAP_INTERNAL void _neap_huge_cache_validate(void);    /* takes the huge lock (arena.c) */
/* Every live heap, the orphans and the huge cache: only while no thread but
 * the caller allocates or frees (their heaps change without a lock). */
NEAP_INTERNAL void _neap_validate_all(void);
/* Slow paths between validations at NEAP_DEBUG 2 (a power of two), at
 * least; for a heap whose validation does more work (pages, pools, blocks
 * looked at) than EVERY * SHARE, work / SHARE: a slow path pays about SHARE
 * units of validation, whatever the heap's size.  Every slow path at 3.
 * NEAP_VALIDATE overrides both in any build. */
#define NEAP_VALIDATE_DEBUG_EVERY 64
#define NEAP_VALIDATE_DEBUG_SHARE 8

#endif /* NEAP_INTERNAL_H */

/* trace.c -- tracing allocations (neap_trace.h) through the core's hooks
 * (core/hooks.h): stack capture, interned stacks, the table of live traced
 * blocks, the count of traced blocks per pool, and the stream.
 *
 *   allocation paths (the core)                free paths (the core)
 *   countdown -= size (a new thread's           pool flags 0: fast, unseen
 *     starts at NEAP_COUNTDOWN_START, < 0)
 *   countdown < 0 ? --> hook_alloc(p, ...)      WATCH (set here while a pool
 *                        |                        holds traced blocks) or any
 *          exact: countdown = EXACT_LEFT          large/huge block, hooks on:
 *                 (stays < 0)                     --> hook_free --> forget
 *          sampled: countdown += Exp(interval)  REPORT_ALL (stream_only):
 *                   until >= 0 (a new thread,     --> hook_free --> stream_free
 *                   or exact until then: a      realloc, hooks on: hook_realloc
 *                   fresh Exp(interval) - size  (this file, on the core's
 *                   < 0 makes it a sample)       realloc primitives)
 *          off: countdown = NEAP_TRACE_LATENCY
 *                        |
 *                        v
 *          capture: frame[0] = the caller's return address, then the
 *                   frame-pointer chain from the caller's frame pointer,
 *                   each frame checked to lie in the thread's stack (not
 *                   known yet: frame[0] alone, see "Stack capture"); or
 *                   the DWARF unwinder (NEAP_TRACE_UNWIND; auto: for
 *                   samples whose frame-pointer chain stops at once)
 *                        |
 *                        v
 *          exact tracing started by NEAP_TRACE (stream_only): no table, the
 *          record goes to the stream and the pool is marked REPORT_ALL;
 *          otherwise:
 *   stacks (interned; never freed)          traces: SHARDS shards by address
 *   +-------------------------------+       +-------------------------------+
 *   | lock; slot[cap] -> tstack_t    |       | lock; slot[cap] = {addr, size, |
 *   | tstack_t: hash, nframe, frames |<------|   stack}; open addressing      |
 *   | in chunks mapped from the OS   |       | (linear probing, backward-     |
 *   +-------------------------------+       |  shift deletion)               |
 *     ^ per-thread cache of the last         +-------------------------------+
 *       stack per hash bucket (no lock)        pcounts: traced blocks per pool
 *   Both tables are util/hashtab.h's, their memory from table_map.
 *
 * The hooks are installed while tracing is on or traces are left
 * (hooks_update_locked); otherwise the core runs as if this file were not
 * there.
 *
 * Invariants
 *   - A block is in at most one shard, under its address (with its parts,
 *     if any).  While it is there, if it is a pool block, its pool's count
 *     (pcounts) counts it and the pool is watched; so an unwatched pool
 *     has no traced block and its frees stay fast.
 *   - trace_live is the number of traces in all shards.
 *   - traced_current is the sum of the traces' weights (their size, or in
 *     sampled mode the unbiased estimate size / p(size)).
 *   - The tables' memory comes from the OS (os.c), never from neap_malloc:
 *     recording an allocation allocates nothing.  The one exception, a
 *     capture asking the C library for its thread's stack bounds (the
 *     first, and after a failure every BOUNDS_RETRY-th until one works),
 *     runs with tl_in_trace set, so what it allocates is not traced.
 *
 * A sampled realloc that grows a large or huge block counts only its growth
 * and adds a part to the block's traces: a block may then have several
 * traces under its address (section "Sampled realloc").
 *
 * Locks (spin locks, tlock_t): one for the stacks, one per shard; the order
 * is stacks, shards in index order, then the stream's.  start/stop/clear/
 * fork take every lock.  The stream (at the end of this file) has its own
 * drawing: it takes no shared lock per record.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unwind.h>

#include "core/fastpath.h"
#include "neap_trace.h"
#include "trace/pyframes.h"
#include "trace/tlock.h"
#include "trace/traceimpl.h"
#include "trace/tracefmt.h"
#include "util/hashtab.h"

#define SHARDS 32

#define EXACT_LEFT (-((int64_t)1 << 62))
_Static_assert(NEAP_COUNTDOWN_START <= EXACT_LEFT / 2,
               "a new thread's countdown is told from a sampling one as an exact one is");
#define CHUNK_SIZE ((size_t)1 << 20)

enum { MODE_OFF, MODE_EXACT, MODE_SAMPLED };

_Static_assert(NEAP_COUNTDOWN_IDLE == NEAP_TRACE_LATENCY,
               "other threads see tracing start within NEAP_TRACE_LATENCY bytes");

static _Atomic size_t trace_live;       /* traces in the table */
static _Atomic int trace_grow;          /* sampling: reallocs growing large blocks (below) */
/* The stream to NEAP_TRACE=FILE is open (section "The stream"), and its
 * clock: each thread writes its own chunks, and the reader merges them by
 * clock.  A block freed by one thread and allocated again by another must
 * replay in that order, so a thread that takes in memory other threads may
 * have freed (the core's handover hook) moves the clock on first: its
 * records after that come after theirs. */
static _Atomic int trace_streaming;
static _Alignas(64) _Atomic uint64_t trace_clock;

static _Atomic int trace_mode;           /* MODE_* */
static _Atomic int trace_nframe = 1;     /* frames kept */
static _Atomic size_t trace_interval;    /* sampling mean, bytes; 0 exact */
static _Atomic size_t traced_current;    /* bytes (weights) of the traces */
static _Atomic size_t traced_peak;
static _Atomic size_t trace_memory;      /* bytes mapped for the tables */

static __thread int tl_in_trace;         /* inside this file: allocations untraced */
static __thread uint64_t tl_rng;         /* sampling; 0 until seeded */
static __thread uintptr_t tl_stack_lo, tl_stack_hi; /* this thread's stack; hi 0: unknown */

/* ---------------------------------------------------------------------------
 * Memory for the tables, straight from the OS.
 * ------------------------------------------------------------------------- */
static void *table_map(size_t bytes) {
    void *p = _neap_os_map(bytes);
    if (p != NULL)
        atomic_fetch_add_explicit(&trace_memory, bytes, memory_order_relaxed);
    return p;
}

static void table_unmap(void *p, size_t bytes) {
    if (p == NULL)
        return;
    _neap_os_unmap(p, bytes);
    atomic_fetch_sub_explicit(&trace_memory, bytes, memory_order_relaxed);
}

/* the hash tables' allocator (zeroed: fresh mappings are) */
static void *table_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return table_map(bytes);
}

static void table_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    table_unmap(p, bytes);
}

static const neap_hashtab_alloc_t table_allocator = {table_alloc, table_free, NULL};

/* ---------------------------------------------------------------------------
 * Interned stacks.
 * ------------------------------------------------------------------------- */
typedef struct tstack {
    uint64_t hash;
    uint32_t nframe;
    uint32_t id;             /* 1, 2, ... in order of first use */
    _Atomic uint32_t streamed; /* STACK_*: its 'S' record in the stream */
    uint32_t pad;
    uintptr_t frame[];
} tstack_t;

enum { STACK_NEW, STACK_WRITING, STACK_STREAMED };

/* the set of interned stacks: entries are pointers, keyed by their frames;
 * at most half full */
#define STACK_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define STACK_HASH(e) ((*(e))->hash)
NEAP_HASHTAB_DEFINE(stacktab, tstack_t *, STACK_KEY, STACK_HASH, 4096, 2);

static struct {
    tlock_t lock;
    stacktab_t tab;          /* count: the stacks interned */
    char *chunk;             /* bump allocation of tstack_t */
    size_t chunk_used;
} stacks = {.lock = TLOCK_INIT, .tab = NEAP_HASHTAB_INIT(&table_allocator)};

#define TL_CACHE 64
static __thread tstack_t *tl_cache[TL_CACHE];

static uint64_t hash_frames(const uintptr_t *f, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return h;
}

/* (a loop, not memcmp: the stacks are short, and a call costs more) */
static inline int stack_equal(const tstack_t *s, uint64_t h, const uintptr_t *f, size_t n) {
    if (s->hash != h || s->nframe != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s->frame[i] != f[i])
            return 0;
    }
    return 1;
}

typedef struct stack_key {
    uint64_t hash;
    const uintptr_t *frame;
    size_t nframe;
} stack_key_t;

static inline int stack_match(tstack_t *const *e, const void *key) {
    const stack_key_t *k = key;
    return stack_equal(*e, k->hash, k->frame, k->nframe);
}

/* The interned copy of f[0..n), or NULL when memory ran out. */
static tstack_t *stack_intern(const uintptr_t *f, size_t n) {
    uint64_t h = hash_frames(f, n);
    tstack_t **c = &tl_cache[h & (TL_CACHE - 1)];
    if (*c != NULL && stack_equal(*c, h, f, n))
        return *c;
    tlock_lock(&stacks.lock);
    tstack_t *s = NULL;
    if (stacktab_reserve(&stacks.tab, 1) != 0)
        goto out;
    stack_key_t key = {h, f, n};
    tstack_t **slot = stacktab_probe(&stacks.tab, h, stack_match, &key);
    if (*slot != NULL) {
        s = *slot;
        goto out;
    }
    size_t bytes = sizeof(tstack_t) + n * sizeof(uintptr_t);
    if (stacks.chunk == NULL || stacks.chunk_used + bytes > CHUNK_SIZE) {
        stacks.chunk = table_map(CHUNK_SIZE); /* the old chunk stays: stacks are never freed */
        stacks.chunk_used = 0;
        if (stacks.chunk == NULL)
            goto out;
    }
    s = (tstack_t *)(stacks.chunk + stacks.chunk_used);
    stacks.chunk_used += bytes;
    s->hash = h;
    s->nframe = (uint32_t)n;
    s->id = (uint32_t)(stacks.tab.count + 1);
    atomic_store_explicit(&s->streamed, STACK_NEW, memory_order_relaxed);
    memcpy(s->frame, f, n * sizeof *f);
    stacktab_put(&stacks.tab, slot, &s);
out:
    tlock_unlock(&stacks.lock);
    if (s != NULL)
        *c = s;
    return s;
}

/* ---------------------------------------------------------------------------
 * Stack capture.
 *
 * Every word read from the stack lies within the thread's stack bounds,
 * read at its first capture: from the C library (pthread_getattr_np, the
 * exact bounds; but it allocates, and fails near a memory limit), else
 * the mapping that holds the capture's own frame (/proc/self/maps, read
 * without allocating: the stack's mapping, or a little more where the
 * kernel merged it with a neighbour of the same protection; mapped all
 * the same; a first capture on a signal stack would take that one, and
 * the thread's walks elsewhere would stop at their first frame).  Until the bounds are known nothing is read from the stack: a
 * capture records its first frame only, the caller's return address.  A
 * read that failed is tried again BOUNDS_RETRY captures later: the
 * failure passes when memory comes back, and each try costs system calls.
 * ------------------------------------------------------------------------- */
#define BOUNDS_RETRY 64

static __thread uint32_t tl_stack_wait; /* captures until the next try */

/* Tests (traceimpl.h): how the reads of the bounds fail; 0 they do not. */
static _Atomic int bounds_fail;

void _neap_trace_fail_bounds(int how) {
    atomic_store_explicit(&bounds_fail, how, memory_order_relaxed);
}

/* Reads this thread's stack bounds, unless a failed read is still
 * waiting its turn; 1 when they are known. */
static neap_noinline int stack_bounds_read(void) {
    if (tl_stack_wait > 0) {
        tl_stack_wait--;
        return 0;
    }
    int how = atomic_load_explicit(&bounds_fail, memory_order_relaxed);
    uintptr_t lo = 0, hi = 0;
    pthread_attr_t attr;
    if (how == 0 && pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            lo = (uintptr_t)addr;
            hi = lo + size;
        }
        pthread_attr_destroy(&attr);
    }
    if (lo >= hi && (how == 2 || _neap_os_mapping_of((uintptr_t)__builtin_frame_address(0),
                                                     &lo, &hi) != 0))
        lo = hi = 0;
    if (lo >= hi) {
        tl_stack_wait = BOUNDS_RETRY;
        return 0;
    }
    tl_stack_lo = lo;
    tl_stack_hi = hi;
    return 1;
}

/* 1: this thread's stack bounds are known, [tl_stack_lo, tl_stack_hi). */
static inline int stack_bounds_known(void) {
    return neap_likely(tl_stack_hi != 0) || stack_bounds_read();
}

/* The DWARF unwinder (libgcc's), for code built without frame pointers
 * (NEAP_TRACE_UNWIND=1, or auto when sampling).  It costs microseconds a
 * stack, most of them on neap's own frames, so each thread keeps the last
 * stacks it unwound, with the stack slots their return addresses were read
 * from: a capture from the same caller at the same depth of the stack,
 * whose slots still hold the same return addresses, has that stack.  (The
 * unwinder finds each frame from the pc and the stack pointer in code that
 * keeps no frame pointer; a frame found from a frame pointer or after an
 * alloca could in principle differ behind identical slots.) */
#define MEMO_WAYS 8
typedef struct memo {
    uintptr_t ret, sp;       /* the key: the caller, this thread's depth */
    uint32_t n, max;         /* frames, and the limit they were taken at */
    uintptr_t frame[NEAP_TRACE_MAX_FRAMES];
    uintptr_t slot[NEAP_TRACE_MAX_FRAMES]; /* where frame[i] was (i >= 1) */
} memo_t;
static __thread memo_t *tl_memo; /* MEMO_WAYS, mapped at the first use */

typedef struct unwound {
    size_t n, max;
    uintptr_t ip[NEAP_TRACE_MAX_FRAMES + 16], cfa[NEAP_TRACE_MAX_FRAMES + 16];
} unwound_t;

static _Unwind_Reason_Code unwind_step(struct _Unwind_Context *ctx, void *arg) {
    unwound_t *u = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (u->n >= u->max || ip == 0) /* 0: the outermost frame's caller */
        return _URC_END_OF_STACK;
    u->ip[u->n] = ip;
    u->cfa[u->n] = (uintptr_t)_Unwind_GetCFA(ctx); /* the previous frame's */
    u->n++;
    return _URC_NO_REASON;
}

static inline memo_t *memo_at(uintptr_t ret, uintptr_t sp) {
    return &tl_memo[((ret ^ sp) * 0x9e3779b97f4a7c15ULL) >> 61];
}
_Static_assert(MEMO_WAYS == 8, "memo_at takes 3 bits");

/* The stack from ret, the allocation's caller, at most max frames. */
static size_t capture_dwarf(uintptr_t *f, size_t max, uintptr_t ret) {
    unwound_t u;
    uintptr_t sp = (uintptr_t)&u;
    int memo_ok = stack_bounds_known() && sp >= tl_stack_lo && sp < tl_stack_hi;
    uintptr_t hi = tl_stack_hi;
    memo_t *m = NULL;
    if (memo_ok && tl_memo != NULL) {
        m = memo_at(ret, sp);
        if (m->ret == ret && m->sp == sp && m->max == max) {
            size_t i = 1;
            for (; i < m->n; i++) {
                uintptr_t s = m->slot[i];
                if (s < sp || s >= hi || hi - s < sizeof(uintptr_t) ||
                    *(const uintptr_t *)s != m->frame[i])
                    break;
            }
            if (i == m->n) {
                memcpy(f, m->frame, m->n * sizeof *f);
                return m->n;
            }
        }
    }
    u.n = 0;
    u.max = max + 16;
    _Unwind_Backtrace(unwind_step, &u);
    size_t start = 0;
    while (start < u.n && u.ip[start] != ret)
        start++;
    if (start == u.n) {
        f[0] = ret; /* not found: at least the caller */
        return 1;
    }
    size_t n = 0;
    for (size_t i = start; i < u.n && n < max; i++)
        f[n++] = u.ip[i];
    if (!memo_ok)
        return n;
    if (tl_memo == NULL) {
        tl_memo = table_map(MEMO_WAYS * sizeof(memo_t));
        if (tl_memo == NULL)
            return n;
        m = memo_at(ret, sp);
    }
    m->ret = ret;
    m->sp = sp;
    m->n = (uint32_t)n;
    m->max = (uint32_t)max;
    for (size_t i = 0; i < n; i++) {
        m->frame[i] = f[i];
        /* frame i's return address is just below the CFA of frame i - 1,
         * which the unwinder gives with frame i (it has not stepped yet) */
        m->slot[i] = i > 0 ? u.cfa[start + i] - sizeof(uintptr_t) : 0;
    }
    return n;
}

/* Fills f with ret and the return addresses up the frame-pointer chain
 * from fp; returns how many, at most max. */
static size_t capture_fp(uintptr_t *f, size_t max, uintptr_t ret, uintptr_t fp) {
    size_t n = 0;
    f[n++] = ret;
    if (n >= max || !stack_bounds_known())
        return n;
    /* the program's frames are all above this one; below it, the bounds
     * the C library gives the main thread hold pages the stack has not
     * grown into */
    uintptr_t lo = (uintptr_t)__builtin_frame_address(0), hi = tl_stack_hi;
    if (lo < tl_stack_lo)
        lo = tl_stack_lo;
    int first = 1;
    while (n < max) {
        /* a frame record is two words: the caller's frame pointer, then the
         * return address; it must lie inside this thread's stack, aligned,
         * and the chain must go up */
        if (fp < lo || fp >= hi || hi - fp < 2 * sizeof(uintptr_t) ||
            (fp & (sizeof(uintptr_t) - 1)))
            break;
        const uintptr_t *rec = (const uintptr_t *)fp;
        uintptr_t next = rec[0], r = rec[1];
        /* not a code address: a register that was not a frame pointer (code
         * built without them) led here */
        if (r < 4096 || (r >= tl_stack_lo && r < hi))
            break;
        /* an allocation function with a frame of its own: its record holds
         * the return address we have already */
        if (!(first && r == ret))
            f[n++] = r;
        first = 0;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

/* The stack of an allocation made by ret's function, whose frame pointer
 * is fp (NEAP_OPTION_TRACE_UNWIND: 0 auto, 1 DWARF, 2 frame pointers).
 * Auto uses the DWARF unwinder only when sampling, whose few stacks can
 * afford it, and only where the frame-pointer chain stops at once.  In a
 * Python process (pyframes.c, NEAP_OPTION_TRACE_PYTHON), the Python frames
 * instead when the thread runs Python code, or merged into the native
 * stack the DWARF unwinder gives. */
static size_t capture(uintptr_t *f, size_t max, uintptr_t ret, uintptr_t fp) {
    int py = _neap_py_mode();
    if (py == 1) {
        size_t n = _neap_py_stack(f, max, NULL, 0);
        if (n > 0)
            return n;
    } else if (py == 2 && max > 1) {
        uintptr_t native[NEAP_TRACE_MAX_FRAMES];
        return _neap_py_stack(f, max, native, capture_dwarf(native, max, ret));
    }
    long how = neap_opt(NEAP_OPTION_TRACE_UNWIND);
    if (neap_unlikely(how == 1) && max > 1)
        return capture_dwarf(f, max, ret);
    size_t n = capture_fp(f, max, ret, fp);
    if (n == 1 && max > 1 && how == 0 &&
        atomic_load_explicit(&trace_mode, memory_order_relaxed) == MODE_SAMPLED)
        n = capture_dwarf(f, max, ret);
    return n;
}

/* The stream to NEAP_TRACE=FILE (below): trace_streaming. */
/* Exact tracing started by NEAP_TRACE, untouched by the program's own
 * neap_trace_* calls: the stream is the only record, there is no table.
 * Each pool that hands out a traced block is marked REPORT_ALL for good,
 * so each of its frees is streamed by hook_free, and so is every free of
 * a large or huge block (a free of a block from before tracing started is streamed
 * too: the reader counts those).  trace_live stays 1. */
static _Atomic int stream_only;
/* inlined into record: its call and frame cost as much as it does */
static inline __attribute__((always_inline)) void stream_alloc(tstack_t *st, size_t size,
                                                               size_t off, uintptr_t a, int huge);
static void stream_free(uintptr_t a);
static void stream_move(uintptr_t from, uintptr_t to, uint64_t now);

/* ---------------------------------------------------------------------------
 * Traces.
 * ------------------------------------------------------------------------- */
typedef struct trace {
    uintptr_t addr;          /* the block's; 0: empty slot */
    size_t size;             /* bytes asked for */
    tstack_t *stack;
    size_t off;              /* 0; a part (sampled growth): where its bytes start */
} trace_t;

static inline uint64_t addr_hash(uintptr_t a);

/* a shard's traces, keyed by address (a block with parts has several); at
 * most three quarters full */
#define TRACE_KEY(e) ((uint64_t)(e)->addr)
#define TRACE_HASH(e) addr_hash((e)->addr)
NEAP_HASHTAB_DEFINE(tracetab, trace_t, TRACE_KEY, TRACE_HASH, 1024, 3);

/* The traces of a block a realloc moves, on their way to the new block:
 * at most PARTS_MAX at a time, and the clock they were taken at. */
#define PARTS_MAX 32
typedef struct parts {
    size_t n;
    uint64_t clock;
    trace_t v[PARTS_MAX];
} parts_t;

typedef struct shard {
    _Alignas(64) tlock_t lock; /* a cache line per shard */
    tracetab_t tab;
} shard_t;

#define SHARD_INIT {.lock = TLOCK_INIT, .tab = NEAP_HASHTAB_INIT(&table_allocator)}
#define SHARD_INIT4 SHARD_INIT, SHARD_INIT, SHARD_INIT, SHARD_INIT
#define SHARD_INIT16 SHARD_INIT4, SHARD_INIT4, SHARD_INIT4, SHARD_INIT4
static shard_t shards[SHARDS] = {SHARD_INIT16, SHARD_INIT16};
_Static_assert(SHARDS == 32, "the initializer above has 32 entries");

static inline uint64_t addr_hash(uintptr_t a) {
    uint64_t x = (uint64_t)a >> 4;
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return x;
}

static inline shard_t *shard_of(uintptr_t a) { return &shards[addr_hash(a) >> 59]; }

double _neap_trace_weight(size_t size, size_t interval) {
    if (interval == 0 || size == 0)
        return (double)size;
    return (double)size / -expm1(-(double)size / (double)interval);
}

/* The bytes a trace stands for: its size, or when sampling, size / p. */
static size_t trace_weight(size_t size) {
    size_t interval = atomic_load_explicit(&trace_interval, memory_order_relaxed);
    return (size_t)(_neap_trace_weight(size, interval) + 0.5);
}

static void traced_add(size_t w) {
    size_t cur = atomic_fetch_add_explicit(&traced_current, w, memory_order_relaxed) + w;
    size_t peak = atomic_load_explicit(&traced_peak, memory_order_relaxed);
    while (cur > peak &&
           !atomic_compare_exchange_weak_explicit(&traced_peak, &peak, cur, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* ---------------------------------------------------------------------------
 * Traced blocks per pool.  While a pool holds traced blocks, its WATCH
 * flag (core/hooks.h) sends their frees to the core's slow path and on to
 * hook_free; how many it holds is counted here, per arena and pool head
 * page, in memory from the OS:
 *
 *   pcounts[hash(arena) & (PC_SLOTS - 1)] (linear probing; an entry is
 *   |                                      never removed: an arena mapped
 *   v                                      again at its address reuses it)
 *   +-------+------+---------------------------+
 *   | arena | lock | n[page]: traced blocks of |  one page per arena that
 *   |       |      | the pool headed there     |  ever held a traced block
 *   +-------+------+---------------------------+
 *
 * A count and its pool's flag change together, under the entry's lock
 * (taken under a shard lock; nothing else is taken under it): the pool is
 * watched exactly while its count is not 0, for the block at watch_off
 * while the count is 1 and went there from 0, else for every block.  A
 * pool whose arena has no entry (all PC_SLOTS taken, or no memory) stays
 * watched for every block until clear_locked.  The counts go to 0 only as
 * blocks are forgotten, before they are freed, so a retired pool's count
 * is 0 and the next pool headed at that page starts from 0.
 * ------------------------------------------------------------------------- */
#define PC_SLOTS 4096
typedef struct pcount {
    uintptr_t arena;
    tlock_t lock;
    uint16_t n[NEAP_ARENA_PAGES];
} pcount_t;
_Static_assert(sizeof(pcount_t) <= NEAP_PAGE_SIZE, "a pool count entry fits a page");
_Static_assert(NEAP_POOL_MAX_PAGES * NEAP_PAGE_SIZE / 16 <= UINT16_MAX, "a pool's count fits 16 bits");
static _Atomic(pcount_t *) pcounts[PC_SLOTS];

/* The entry of arena (made if `make`), or NULL. */
static pcount_t *pcount_get(uintptr_t arena, int make) {
    size_t i = (size_t)(addr_hash(arena) >> 40) & (PC_SLOTS - 1);
    pcount_t *mine = NULL;
    for (size_t k = 0; k < PC_SLOTS; k++, i = (i + 1) & (PC_SLOTS - 1)) {
        pcount_t *pc = atomic_load_explicit(&pcounts[i], memory_order_acquire);
        if (pc == NULL) {
            if (!make)
                return NULL;
            if (mine == NULL) {
                mine = table_map(NEAP_PAGE_SIZE);
                if (mine == NULL)
                    return NULL;
                mine->arena = arena;
            }
            if (atomic_compare_exchange_strong_explicit(&pcounts[i], &pc, mine, memory_order_release,
                                                        memory_order_acquire))
                return mine;
            /* another thread filled the slot first: pc is its entry */
        }
        if (pc->arena == arena) {
            table_unmap(mine, NEAP_PAGE_SIZE);
            return pc;
        }
    }
    table_unmap(mine, NEAP_PAGE_SIZE);
    return NULL;
}

/* Block p (traced, still allocated) gained (delta 1) or lost (-1) a trace;
 * clearing: every trace is being dropped (clear_locked). */
static void pool_count(const void *p, int delta, int clearing) {
    neap_pool_t *pool = _neap_block_pool(p);
    if (pool == NULL)
        return;
    uintptr_t a = (uintptr_t)pool;
    pcount_t *pc = pcount_get(a & ~NEAP_ARENA_MASK, delta > 0);
    if (pc == NULL) {
        if (delta > 0)
            _neap_pool_watch(pool, 0);
        else if (clearing)
            _neap_pool_unwatch(pool);
        return;
    }
    uint16_t *n = &pc->n[_neap_page_index(a)];
    tlock_lock(&pc->lock);
    if (delta > 0) {
        if ((*n)++ == 0)
            _neap_pool_watch(pool, (uint16_t)((uintptr_t)p - a));
        else if (*n == 2)
            _neap_pool_watch(pool, 0);
    } else if (*n > 0 && --*n == 0) {
        _neap_pool_unwatch(pool); /* release: see core/hooks.h */
    }
    tlock_unlock(&pc->lock);
}

/* ---------------------------------------------------------------------------
 * Sampled realloc.  A realloc that grows a large or huge block by d bytes
 * counts d against the countdown, not its whole size: a sample then adds
 * a part of d bytes at the old size's offset, by the realloc's stack, to
 * the block's traces (which stay).  A block's expected weight stays its
 * size, and each site is credited with the bytes it asked for; a string
 * grown by appends costs a sample per `interval` bytes appended, not one
 * per append.  The old size must be known exactly: `sizes` keeps, for the
 * blocks a realloc made while sampling, their size and whether they have
 * traces, in a table of single words, 4-way set-associative (a lost entry
 * only means the next realloc of that block is sampled by its whole size,
 * as before).
 *
 *   sizes[hash(addr) >> 54][0..3] = tag(20 bits of hash) | has_traces | size
 *                                    63                 44          43   0
 *
 * An entry is written when a large or huge block is made (malloc's slow
 * path, or the realloc that made it, which is the block's owner) and
 * dropped by the block's free (forget, which every free of a large or huge
 * block reaches while sampling).  A fifth block in a set evicts one; only
 * a block with the same 30 bits of hash could be mistaken for another.
 * ------------------------------------------------------------------------- */
#define SIZE_SETS 1024
#define SIZE_WAYS 4
#define SIZE_BITS 43
#define SIZE_TRACED ((uint64_t)1 << SIZE_BITS)
static _Atomic uint64_t sizes[SIZE_SETS][SIZE_WAYS];
_Static_assert(SIZE_SETS == 1 << 10, "sets are indexed by the hash's top 10 bits");

/* a's set, and in *tag the bits of its entry's tag; *way: a's entry in
 * the set, or -1 */
static inline _Atomic uint64_t *sizes_find(uintptr_t a, uint64_t *tag, int *way, uint64_t *w) {
    uint64_t h = addr_hash(a);
    _Atomic uint64_t *set = sizes[h >> 54];
    *tag = ((h >> 32) & 0xfffff) << (SIZE_BITS + 1);
    *way = -1;
    for (int i = 0; i < SIZE_WAYS; i++) {
        *w = atomic_load_explicit(&set[i], memory_order_relaxed);
        if (*w != 0 && (*w & ~((SIZE_TRACED << 1) - 1)) == *tag) {
            *way = i;
            break;
        }
    }
    return set;
}

static void sizes_forget(uintptr_t a) {
    uint64_t tag, w;
    int way;
    _Atomic uint64_t *set = sizes_find(a, &tag, &way, &w);
    if (way >= 0)
        atomic_compare_exchange_strong_explicit(&set[way], &w, 0, memory_order_relaxed,
                                                memory_order_relaxed);
}

static void sizes_clear(void) {
    for (size_t i = 0; i < SIZE_SETS; i++)
        for (int j = 0; j < SIZE_WAYS; j++)
            atomic_store_explicit(&sizes[i][j], 0, memory_order_relaxed);
}

static int grow_begin(const void *p, size_t size, size_t *old) {
    if (!atomic_load_explicit(&trace_grow, memory_order_relaxed))
        return 0;
    uint64_t tag, w;
    int way;
    (void)sizes_find((uintptr_t)p, &tag, &way, &w);
    if (way < 0)
        return 0;
    *old = (size_t)(w & (SIZE_TRACED - 1));
    if (size < *old)
        return 0; /* shrinking: sampled by its whole size */
    return (w & SIZE_TRACED) ? 2 : 1;
}

static void sizes_note(const void *q, size_t size, int traced) {
    if (size <= NEAP_MEDIUM_MAX || size >= SIZE_TRACED ||
        !atomic_load_explicit(&trace_grow, memory_order_relaxed))
        return;
    uint64_t tag, w;
    int way;
    _Atomic uint64_t *set = sizes_find((uintptr_t)q, &tag, &way, &w);
    if (way < 0) {
        /* an empty way, else one picked by the tag's low bits */
        way = (int)(tag >> (SIZE_BITS + 1)) & (SIZE_WAYS - 1);
        for (int i = 0; i < SIZE_WAYS; i++) {
            if (atomic_load_explicit(&set[i], memory_order_relaxed) == 0) {
                way = i;
                break;
            }
        }
    }
    atomic_store_explicit(&set[way], tag | (traced ? SIZE_TRACED : 0) | size,
                          memory_order_relaxed);
}

static size_t shard_take_locked(shard_t *sh, uintptr_t a, trace_t *out, size_t max);

static int parts_take(const void *p, parts_t *parts) {
    uintptr_t a = (uintptr_t)p;
    shard_t *sh = shard_of(a);
    trace_t *t = parts->v;
    tlock_lock(&sh->lock);
    parts->n = shard_take_locked(sh, a, t, PARTS_MAX);
    int all = tracetab_find(&sh->tab, a, addr_hash(a)) == NULL;
    tlock_unlock(&sh->lock);
    parts->clock = 0;
    if (parts->n > 0 && atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        parts->clock = atomic_fetch_add_explicit(&trace_clock, 1, memory_order_relaxed) + 1;
    return all;
}

/* Puts t in sh (locked); -1 when the table cannot grow. */
static int shard_add_locked(shard_t *sh, const trace_t *t) {
    if (tracetab_add(&sh->tab, t) == NULL)
        return -1;
    atomic_fetch_add_explicit(&trace_live, 1, memory_order_relaxed);
    traced_add(trace_weight(t->size));
    return 0;
}

/* Takes the traces of block a out of sh (locked), at most max of them into
 * out; returns how many. */
static size_t shard_take_locked(shard_t *sh, uintptr_t a, trace_t *out, size_t max) {
    size_t n = 0;
    uint64_t h = addr_hash(a);
    while (n < max) {
        trace_t *t = tracetab_find(&sh->tab, a, h);
        if (t == NULL)
            break;
        out[n++] = *t;
        tracetab_remove(&sh->tab, t);
        atomic_fetch_sub_explicit(&trace_live, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&traced_current, trace_weight(out[n - 1].size),
                                  memory_order_relaxed);
    }
    return n;
}

/* Records p (size bytes from offset off: a part when `part`, the block's
 * growth by a realloc, which adds to the block's other traces; else the
 * block, which replaces them).  On a failure to get memory it stays
 * untraced. */
static void record(void *p, size_t size, size_t off, int part, uintptr_t ret, uintptr_t fp) {
    uintptr_t f[NEAP_TRACE_MAX_FRAMES];
    size_t n = capture(f, (size_t)atomic_load_explicit(&trace_nframe, memory_order_relaxed),
                       ret, fp);
    tstack_t *st = stack_intern(f, n);
    if (st == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    if (atomic_load_explicit(&stream_only, memory_order_relaxed)) {
        /* every free of the block's pool is streamed from now on */
        neap_pool_t *pool = _neap_pool_of_new(p, size);
        if (pool != NULL)
            _neap_pool_report_all(pool);
        stream_alloc(st, size, 0, a, pool == NULL && _neap_map_kind(a) != NEAP_MAP_ARENA);
        return;
    }
    shard_t *sh = shard_of(a);
    tlock_lock(&sh->lock);
    if (atomic_load_explicit(&trace_mode, memory_order_relaxed) == MODE_OFF) {
        tlock_unlock(&sh->lock);
        return;
    }
    if (!part) {
        /* a stale trace of a block freed behind tracing's back cannot be:
         * every free path forgets first; replace it anyway */
        trace_t stale;
        while (shard_take_locked(sh, a, &stale, 1) == 1)
            pool_count(p, -1, 0);
    }
    trace_t t = {a, size, st, off};
    if (shard_add_locked(sh, &t) == 0) {
        pool_count(p, +1, 0);
        if (atomic_load_explicit(&trace_streaming, memory_order_relaxed))
            stream_alloc(st, size, off, a, _neap_map_kind(a) != NEAP_MAP_ARENA);
    }
    tlock_unlock(&sh->lock);
}

/* The traces in parts, at a: in the table (dropped if tracing stopped
 * meanwhile or the table cannot grow). */
static void parts_put(uintptr_t a, parts_t *parts) {
    trace_t *t = parts->v;
    shard_t *sh = shard_of(a);
    tlock_lock(&sh->lock);
    for (size_t i = 0; i < parts->n; i++) {
        t[i].addr = a;
        if (atomic_load_explicit(&trace_mode, memory_order_relaxed) != MODE_OFF)
            shard_add_locked(sh, &t[i]);
    }
    tlock_unlock(&sh->lock);
}

static void parts_move(const void *p, const void *q, parts_t *parts) {
    uintptr_t a = (uintptr_t)p, b = q != NULL ? (uintptr_t)q : a;
    int moved = parts->n > 0;
    uint64_t clock = parts->clock;
    parts_put(b, parts);
    if (b == a)
        return;
    /* traces beyond what parts holds are still at p, which is still the
     * caller's: they follow in batches */
    while (parts_take(p, parts), parts->n > 0) {
        parts_put(b, parts);
        moved = 1;
    }
    if (moved)
        stream_move(a, b, clock);
}

/* An exponential draw with the given mean, at least 1. *//* An exponential draw with the given mean, at least 1. */
static int64_t next_interval(size_t mean) {
    if (tl_rng == 0)
        tl_rng = ((uint64_t)(uintptr_t)&tl_rng * 0x9e3779b97f4a7c15ULL) ^ _neap_os_clock_ns() ^ 1;
    uint64_t x = tl_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl_rng = x;
    double u = (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53; /* [0, 1) */
    double d = -log1p(-u) * (double)mean;
    return d < 1.0 ? 1 : d > 4e18 ? (int64_t)4e18 : (int64_t)d;
}

/* Sampling: the countdown ran out on an allocation of size bytes.  1: it
 * is a sample, and the countdown is the distance to the next one; 0: it is
 * not (the thread was not sampling until now). */
static int countdown_sample(size_t size) {
    size_t mean = atomic_load_explicit(&trace_interval, memory_order_relaxed);
    if (_neap_tl_countdown < EXACT_LEFT / 2) {
        /* a new thread's first allocation (NEAP_COUNTDOWN_START), or one
         * traced exactly until now: a fresh draw says whether this
         * allocation is a sample, as likely as any other's */
        _neap_tl_countdown = next_interval(mean);
        if (!NEAP_COUNTDOWN(size))
            return 0;
    }
    while (_neap_tl_countdown < 0)
        _neap_tl_countdown += next_interval(mean);
    return 1;
}

/* Records p, unless it is NULL or made by tracing's own work; what
 * recording allocates is not traced, and errno is kept. */
static void *record_untraced(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    if (p == NULL || tl_in_trace)
        return p;
    int saved = errno;
    tl_in_trace++;
    record(p, size, 0, 0, ret, fp);
    tl_in_trace--;
    errno = saved;
    return p;
}

/* The core's alloc hook: the countdown ran out on p (inlined there: every
 * exactly traced malloc passes here). */
static inline __attribute__((always_inline)) void *trace_alloc(void *p, size_t size, uintptr_t ret,
                                                               uintptr_t fp) {
    int mode = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    if (mode == MODE_OFF) {
        _neap_tl_countdown = NEAP_TRACE_LATENCY;
        return p;
    }
    if (mode == MODE_EXACT)
        _neap_tl_countdown = EXACT_LEFT;
    else if (!countdown_sample(size))
        return p;
    return record_untraced(p, size, ret, fp);
}

static void *grow_end(const void *p, void *q, size_t old, size_t size, int traced,
                           uintptr_t ret, uintptr_t fp) {
    if (q == NULL)
        return NULL; /* failed: p keeps its traces and its entry */
    if (q != p)
        sizes_forget((uintptr_t)p); /* a huge block's pages moved: no free */
    size_t d = size - old;
    if (d != 0 && NEAP_COUNTDOWN(d)) {
        if (atomic_load_explicit(&trace_mode, memory_order_relaxed) != MODE_SAMPLED)
            return trace_alloc(q, size, ret, fp); /* stopped meanwhile */
        if (countdown_sample(d) && !tl_in_trace) {
            int saved = errno;
            tl_in_trace++;
            record(q, d, old, 1, ret, fp);
            tl_in_trace--;
            errno = saved;
            traced = 1;
        }
    }
    sizes_note(q, size, traced);
    return q;
}

static void *hook_alloc(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    return trace_alloc(p, size, ret, fp);
}

static void *hook_malloc(size_t size, uintptr_t ret, uintptr_t fp) {
    return trace_alloc(neap_malloc_plain(size), size, ret, fp);
}

static int forget(const void *p, size_t *size, bool pooled);

static int forget_any(const void *p, size_t *size) {
    /* a pool block is traced only if its pool is watched (it has traced
     * blocks): most slow-path frees end here without a lock */
    neap_pool_t *pool = _neap_block_pool(p);
    if (pool != NULL && !_neap_pool_watches(pool, p))
        return 0;
    return forget(p, size, pool != NULL);
}

/* The block a realloc on this thread has forgotten before doing its work
 * (hook_realloc), or NULL: the free of it inside the realloc, when the
 * block moves, is forgotten already.  (With no table, stream_only, forget
 * cannot tell: it would stream the block's free a second time.) */
static __thread const void *tl_realloc_from;

/* The core's free hook: p, a large or huge block, or a block of a watched
 * pool (pooled), is about to be freed or moved. */
static void hook_free(const void *p, bool pooled) {
    if (neap_unlikely(p == tl_realloc_from))
        return;
    /* a pool block streamed from the environment (every free of a pool
     * marked REPORT_ALL, from the free's slow path) is what forget does first,
     * without its frame: a pool block has no sampled size to drop */
    if (pooled && atomic_load_explicit(&stream_only, memory_order_relaxed))
        stream_free((uintptr_t)p);
    else
        (void)forget(p, NULL, pooled);
}

/* pooled: p is a pool block (only large and huge blocks have sizes) */
static int forget(const void *p, size_t *size, bool pooled) {
    uintptr_t a = (uintptr_t)p;
    if (!pooled && atomic_load_explicit(&trace_grow, memory_order_relaxed))
        sizes_forget(a);
    if (atomic_load_explicit(&stream_only, memory_order_relaxed)) {
        stream_free(a);
        if (size != NULL)
            *size = neap_usable_size(p); /* no table: the best there is */
        return 1;
    }
    size_t found = 0, total = 0;
    shard_t *sh = shard_of(a);
    tlock_lock(&sh->lock);
    trace_t t;
    while (shard_take_locked(sh, a, &t, 1) == 1) {
        total += t.size;
        pool_count(p, -1, 0);
        found++;
    }
    if (found && atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        stream_free(a); /* before the block can be handed out again */
    tlock_unlock(&sh->lock);
    if (size != NULL)
        *size = total;
    return found != 0;
}

static void *keep(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    if (atomic_load_explicit(&trace_mode, memory_order_relaxed) == MODE_OFF)
        return p;
    return record_untraced(p, size, ret, fp);
}

/* The core's realloc hook.  As tracemalloc records a realloc, the old
 * block's trace goes and the result is a new allocation of the new size,
 * counted in full against the sampling countdown (so that a block's chance
 * of being sampled depends on its size alone, and the estimates stay
 * unbiased).  If the realloc fails, p keeps its trace.  Except when
 * sampling grows a large or huge block whose size is known: then only the
 * growth counts, and p's traces stay with the block ("Sampled realloc"). */
static void *hook_realloc(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    size_t old = 0;
    int grow = grow_begin(p, size, &old);
    if (grow == 0) {
        size_t traced_size = 0;
        int traced = forget_any(p, &traced_size);
        const void *outer = tl_realloc_from; /* a realloc in a signal handler */
        tl_realloc_from = p;
        void *q = _neap_realloc_plain(p, size);
        tl_realloc_from = outer;
        if (neap_unlikely(q == NULL)) {
            if (traced)
                keep(p, traced_size, ret, fp);
            return NULL;
        }
        int sampled = NEAP_COUNTDOWN(size);
        if (sampled)
            q = trace_alloc(q, size, ret, fp);
        sizes_note(q, size, sampled);
        return q;
    }
    /* growing: p's traces, if any, stay with the block; while they are
     * in the table under p, a huge block's pages may not move by themselves */
    size_t usable = _neap_usable_generic(p);
    void *q = _neap_realloc_inplace(p, size, usable, grow == 1);
    if (q == NULL) {
        parts_t parts;
        if (grow == 2 && parts_take(p, &parts) && _neap_map_kind((uintptr_t)p) >= NEAP_MAP_HUGE)
            q = _neap_huge_realloc(p, size, true, "realloc");
        bool copy = q == NULL;
        if (copy) {
            q = neap_malloc_plain(size);
            if (q != NULL)
                memcpy(q, p, size < usable ? size : usable);
        }
        if (grow == 2)
            parts_move(p, q, &parts);
        if (copy && q != NULL)
            neap_free_inline(p);
    }
    return grow_end(p, q, old, size, grow == 2, ret, fp);
}

/* The core's hook for a large or huge block made by malloc: while
 * sampling, its size is kept ("Sampled realloc"); it may be sampled. */
static void hook_made_large(const void *p, size_t size) {
    sizes_note(p, size, 1);
}

/* The core's handover hook: see trace_streaming. */
static void hook_handover(void) {
    if (neap_unlikely(atomic_load_explicit(&trace_streaming, memory_order_relaxed)))
        atomic_fetch_add_explicit(&trace_clock, 1, memory_order_relaxed);
}

static const neap_alloc_hooks_t trace_hooks = {
    .alloc = hook_alloc,
    .malloc = hook_malloc,
    .free = hook_free,
    .realloc = hook_realloc,
    .made_large = hook_made_large,
    .handover = hook_handover,
};

/* The hooks are installed while tracing is on or traces are left (all
 * locks held, or at start before any thread traces): a free that finds
 * them uninstalled (acquire) comes after the last pool header clear_locked
 * went through (release). */
static void hooks_update_locked(void) {
    int on = atomic_load_explicit(&trace_mode, memory_order_relaxed) != MODE_OFF ||
             atomic_load_explicit(&trace_live, memory_order_relaxed) != 0;
    _neap_hooks_install(on ? &trace_hooks : NULL);
}

/* ---------------------------------------------------------------------------
 * The API.
 * ------------------------------------------------------------------------- */
static void lock_all(void) {
    tlock_lock(&stacks.lock);
    for (int i = 0; i < SHARDS; i++)
        tlock_lock(&shards[i].lock);
}

static void unlock_all(void) {
    for (int i = SHARDS - 1; i >= 0; i--)
        tlock_unlock(&shards[i].lock);
    tlock_unlock(&stacks.lock);
}

/* The program calls neap_trace_* itself: from now on the table keeps the
 * traces (blocks streamed before are not in it).  All locks held. */
static void stream_only_end(void) {
    if (atomic_exchange_explicit(&stream_only, 0, memory_order_relaxed))
        atomic_store_explicit(&trace_live, 0, memory_order_relaxed);
}

/* Drops every trace; all locks held. */
static void clear_locked(void) {
    for (int s = 0; s < SHARDS; s++) {
        shard_t *sh = &shards[s];
        const trace_t *t;
        for (size_t pos = 0; (t = tracetab_next(&sh->tab, &pos)) != NULL;)
            pool_count((void *)t->addr, -1, 1);
        tracetab_destroy(&sh->tab);
    }
    /* the hooks go, if tracing is off, once every pool is unwatched
     * (hooks_update_locked, after this) */
    atomic_store_explicit(&trace_live, 0, memory_order_relaxed);
    atomic_store_explicit(&traced_current, 0, memory_order_relaxed);
    atomic_store_explicit(&traced_peak, 0, memory_order_relaxed);
}

static int start(int nframe, size_t interval, int mode) {
    if (nframe < 1 || nframe > NEAP_TRACE_MAX_FRAMES) {
        errno = EINVAL;
        return -1;
    }
    /* the debug mode's blocks carry guards the trace would count as data,
     * and its allocations never reach the hooks (core/debug.c) */
    if (neap_debug_mode()) {
        errno = EBUSY;
        return -1;
    }
    lock_all();
    stream_only_end();
    int old = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    size_t old_interval = atomic_load_explicit(&trace_interval, memory_order_relaxed);
    if (old != MODE_OFF && old_interval != interval)
        clear_locked(); /* the weights of the traces would change meaning */
    atomic_store_explicit(&trace_nframe, nframe, memory_order_relaxed);
    atomic_store_explicit(&trace_interval, interval, memory_order_relaxed);
    atomic_store_explicit(&trace_mode, mode, memory_order_relaxed);
    /* the flag first: the frees that follow drop their entries */
    atomic_store_explicit(&trace_grow, mode == MODE_SAMPLED, memory_order_relaxed);
    sizes_clear();
    hooks_update_locked();
    unlock_all();
    if (neap_opt(NEAP_OPTION_TRACE_PYTHON) != 0) {
        tl_in_trace++; /* the dynamic linker may allocate */
        _neap_py_probe();
        tl_in_trace--;
    }
    /* this thread is traced from its next allocation on */
    _neap_tl_countdown = mode == MODE_EXACT ? EXACT_LEFT : next_interval(interval);
    return 0;
}

int neap_trace_start(int nframe) { return start(nframe, 0, MODE_EXACT); }

int neap_trace_start_sampled(int nframe, size_t interval) {
    return start(nframe, interval ? interval : NEAP_TRACE_DEFAULT_INTERVAL, MODE_SAMPLED);
}

void neap_trace_stop(void) {
    lock_all();
    stream_only_end();
    atomic_store_explicit(&trace_mode, MODE_OFF, memory_order_relaxed);
    atomic_store_explicit(&trace_grow, 0, memory_order_relaxed);
    atomic_store_explicit(&trace_interval, 0, memory_order_relaxed);
    clear_locked();
    hooks_update_locked();
    unlock_all();
    _neap_tl_countdown = NEAP_TRACE_LATENCY;
}

int neap_trace_is_tracing(void) {
    return atomic_load_explicit(&trace_mode, memory_order_relaxed) != MODE_OFF;
}

size_t neap_trace_get_sample_interval(void) {
    return atomic_load_explicit(&trace_interval, memory_order_relaxed);
}

void neap_trace_clear_traces(void) {
    lock_all();
    stream_only_end();
    clear_locked();
    hooks_update_locked();
    unlock_all();
}

int neap_trace_get_traceback_limit(void) {
    return atomic_load_explicit(&trace_nframe, memory_order_relaxed);
}

void neap_trace_get_traced_memory(size_t *current, size_t *peak) {
    size_t c = atomic_load_explicit(&traced_current, memory_order_relaxed);
    size_t p = atomic_load_explicit(&traced_peak, memory_order_relaxed);
    if (current != NULL)
        *current = c;
    if (peak != NULL)
        *peak = p > c ? p : c;
}

void neap_trace_reset_peak(void) {
    atomic_store_explicit(&traced_peak, atomic_load_explicit(&traced_current, memory_order_relaxed),
                          memory_order_relaxed);
}

size_t neap_trace_get_tracemalloc_memory(void) {
    return atomic_load_explicit(&trace_memory, memory_order_relaxed) + sizeof shards +
           _neap_py_memory();
}

void _neap_trace_pause(void) { tl_in_trace++; }
void _neap_trace_resume(void) { tl_in_trace--; }

long _neap_trace_copy(_neap_rawtrace_t **out, size_t *interval, int *nframe) {
    if (atomic_load_explicit(&stream_only, memory_order_relaxed)) {
        errno = ENOTSUP;
        return -1;
    }
    size_t cap = atomic_load_explicit(&trace_live, memory_order_relaxed) + 64;
    _neap_trace_pause();
    for (;;) {
        /* allocate with no lock held: a free under a shard lock would
         * deadlock on it */
        _neap_rawtrace_t *v = neap_malloc(cap * sizeof *v);
        if (v == NULL) {
            _neap_trace_resume();
            errno = ENOMEM;
            return -1;
        }
        lock_all();
        size_t n = 0;
        for (int s = 0; s < SHARDS; s++)
            n += tracetab_size(&shards[s].tab);
        if (n > cap) {
            unlock_all();
            neap_free(v);
            cap = n + n / 8 + 64;
            continue;
        }
        n = 0;
        for (int s = 0; s < SHARDS; s++) {
            const trace_t *t;
            for (size_t pos = 0; (t = tracetab_next(&shards[s].tab, &pos)) != NULL;)
                v[n++] = (_neap_rawtrace_t){t->addr + t->off, t->size, t->stack->frame,
                                            t->stack->nframe, t->stack->id};
        }
        *interval = atomic_load_explicit(&trace_interval, memory_order_relaxed);
        *nframe = atomic_load_explicit(&trace_nframe, memory_order_relaxed);
        unlock_all();
        _neap_trace_resume();
        *out = v;
        return (long)n;
    }
}

/* Looks p up and copies its first trace; 0 if it has none.  *total: the
 * sizes of all its traces (a block grown by sampled reallocs has parts). */
static int lookup(const void *p, trace_t *out, size_t *total) {
    uintptr_t a = (uintptr_t)p;
    shard_t *sh = shard_of(a);
    int found = 0;
    *total = 0;
    tlock_lock(&sh->lock);
    for (const trace_t *t = tracetab_find(&sh->tab, a, addr_hash(a)); t != NULL;
         t = tracetab_find_next(&sh->tab, t)) {
        if (!found || t->off < out->off)
            *out = *t;
        *total += t->size;
        found = 1;
    }
    tlock_unlock(&sh->lock);
    return found;
}

int neap_trace_get_object_traceback(const void *p, neap_traceback_t *out) {
    trace_t t;
    size_t total;
    if (p == NULL || !lookup(p, &t, &total))
        return 0;
    out->nframe = t.stack->nframe;
    memcpy(out->frame, t.stack->frame, t.stack->nframe * sizeof(uintptr_t));
    return 1;
}

size_t neap_trace_get_object_size(const void *p) {
    trace_t t;
    size_t total;
    return p != NULL && lookup(p, &t, &total) ? total : 0;
}

/* ---------------------------------------------------------------------------
 * The stream: NEAP_TRACE=FILE (set by `neap run --trace FILE`).
 *
 *   each thread: tbuf (no lock)            writer thread
 *   +--------------------------+           (woken by a sealed chunk, and
 *   | busy, steal | clock       |            every TICK_MS for a tick)
 *   | cur -> sbuf: the chunk    |--full:        |
 *   |        being filled       |  sealed -->  queue (FIFO) --CRC, write(fd)-->
 *   +--------------------------+   (qlock)      |
 *     registry: every tbuf, never freed;  empty sbufs back to `spare`
 *     a thread's tbuf is free again when it exits
 *
 * Records need no shared lock: a thread appends to the chunk of its own
 * tbuf, and puts a 'C' record before any record whose clock
 * (trace_clock) differs from the last one it wrote.  The clock moves
 * on (see trace_streaming) where memory passes between threads, and when a
 * stack is defined (so a stack is defined before, in the reader's merged
 * order, any other thread uses it), and for each huge block (huge blocks
 * go back to the OS or to a cache every thread takes from).  A thread's
 * chunks reach the file in the order it sealed them (one queue, written in
 * order under flock).
 *
 * Flushing other threads' chunks (every tick, and at exit: a blocked thread
 * would keep its records forever): the flusher sets `steal` on every tbuf,
 * makes every thread pass a full barrier (membarrier), then waits until
 * each one's `busy` is 0 and seals its chunk.  An owner sets `busy`, then
 * (a compiler barrier; the flusher's membarrier is the other half) reads
 * `steal`, and if it is set steps out until the flush is over.  Without
 * membarrier (and until the writer thread has registered for it) both
 * sides use a full fence.
 *
 * The file is the format of tracefmt.h: a header, then chunks.  Every
 * chunk is written whole with one write, so a killed program leaves a
 * trace readable up to its last chunks.  'M' records describe the mapped
 * executable files, read from /proc/self/maps at start and again when a new
 * stack has a frame outside every known file (a library loaded later).
 * One process writes FILE: under `neap run`, the one named by NEAP_RUN_PID;
 * with NEAP_TRACE set by hand, the first one, which names itself in
 * NEAP_TRACE_PID in the environment its children inherit.  Every other
 * process of the tree (children that exec with that environment) writes
 * FILE.<pid>: none truncates FILE or writes into it.  The 'E' record of
 * FILE is neap run's to write, with the exit status it gets from wait; the
 * others write it at exit.  A forked child stops streaming (its records
 * would interleave with its parent's).
 *
 * Marks ('K'): neap_trace_mark writes one from the calling thread, at a
 * clock of its own (the counter moved on: after every record written
 * before).  Another process asks for one through the per-user records
 * directory of `neap stats` (/tmp/neap-<uid>, publish.c):
 *
 *   the stream opening:       a <dir>/<pid>.trace left by the image this
 *                             process exec'd from removed
 *   writer thread, at start:  <dir>/<pid>.trace  "neap-trace 1", pid, file:
 *                             this process streams a trace (removed at the
 *                             end; `neap mark` refuses a pid without it, and
 *                             `neap stats` removes one of a dead process)
 *   `neap mark PID LABEL`:    <dir>/<pid>.mark   the label, one line (made
 *                             whole by a link: one request at a time)
 *   each tick (stream_tick):  a request there --> 'K' before the 'T', every
 *                             chunk written, then the request removed:
 *                             `neap mark` waits for that, so when it returns
 *                             the mark is in the file
 *
 * Requests are served under mark_lock, which the last tick takes too: a
 * mark being served at exit reaches the file before it is closed.  No
 * signal handler is installed.
 *
 * Locks: mark_lock > steal_lock (one flusher at a time) > a tbuf's busy >
 * modlock, qlock, flock.  Nothing that holds qlock, flock or modlock waits
 * for a busy tbuf.
 * ------------------------------------------------------------------------- */
#define SBUF_SIZE ((size_t)64 << 10)
#define SBUF_MAX 64                  /* sbufs beyond one per thread */
#define TICK_MS 100
#define MODULES_MAX 4096
#define MAPS_BUF ((size_t)4 << 20)


typedef struct sbuf {
    struct sbuf *next;       /* in the queue or among the spares */
    size_t n;                /* bytes of the sealed chunk */
    _Alignas(16) uint8_t data[]; /* SBUF_SIZE */
} sbuf_t;

typedef struct tbuf {
    _Atomic int busy;        /* the owner is appending */
    _Atomic int steal;       /* a flusher wants the chunk: the owner waits */
    _Atomic int owned;       /* a thread appends to it */
    uint64_t clock;          /* of the records since the chunk's last 'C' */
    size_t base;             /* enc.len with only the leading 'C' */
    sbuf_t *cur;             /* the chunk being filled */
    _neap_trace_enc_t enc;
    struct tbuf *next;       /* the registry */
} tbuf_t;

static struct {
    int fd;                     /* -1: not streaming */
    int writer;                 /* the writer thread runs */
    _Atomic int barrier;        /* membarrier registered (set under steal_lock) */
    pthread_mutex_t qlock;      /* queue, spares, nbuf */
    pthread_cond_t qcond;       /* the writer's wake-up */
    sbuf_t *qhead, *qtail;      /* sealed chunks, oldest first */
    sbuf_t *spare;
    size_t nbuf, ntbuf;         /* sbufs mapped, tbufs registered */
    pthread_mutex_t flock;      /* writes to fd, in queue order */
    pthread_mutex_t steal_lock; /* one flusher of other threads' chunks */
    _Atomic(tbuf_t *) tbufs;    /* the registry */
    tlock_t modlock;            /* mod, nmod, maps_read_at */
    uint64_t t0;                /* monotonic ms at start */
    uint64_t maps_read_at;      /* monotonic ms of the last /proc/self/maps read */
    size_t nmod;
    struct { uintptr_t start, end; } mod[MODULES_MAX]; /* executable files streamed */
} stream = {.fd = -1,
            .qlock = PTHREAD_MUTEX_INITIALIZER,
            .qcond = PTHREAD_COND_INITIALIZER,
            .flock = PTHREAD_MUTEX_INITIALIZER,
            .steal_lock = PTHREAD_MUTEX_INITIALIZER,
            .modlock = TLOCK_INIT};

static __thread tbuf_t *tl_tbuf;

/* Writes the queued chunks, in order, then returns their buffers. */
static void stream_drain(void) {
    pthread_mutex_lock(&stream.flock);
    for (;;) {
        pthread_mutex_lock(&stream.qlock);
        sbuf_t *b = stream.qhead;
        if (b != NULL && (stream.qhead = b->next) == NULL)
            stream.qtail = NULL;
        pthread_mutex_unlock(&stream.qlock);
        if (b == NULL)
            break;
        _neap_trace_chunk_sign(b->data, b->n);
        if (stream.fd >= 0)
            _neap_os_write(stream.fd, (const char *)b->data, b->n);
        pthread_mutex_lock(&stream.qlock);
        b->next = stream.spare;
        stream.spare = b;
        pthread_mutex_unlock(&stream.qlock);
    }
    pthread_mutex_unlock(&stream.flock);
}

/* An empty sbuf: a spare, a new one, or (SBUF_MAX beyond the threads
 * mapped, the writer behind) one freed by writing the queue here. */
static sbuf_t *sbuf_get(void) {
    for (int tries = 0; tries < 2; tries++) {
        pthread_mutex_lock(&stream.qlock);
        sbuf_t *b = stream.spare;
        if (b != NULL) {
            stream.spare = b->next;
        } else if (stream.nbuf < stream.ntbuf + SBUF_MAX || tries > 0) {
            stream.nbuf++;
            pthread_mutex_unlock(&stream.qlock);
            b = table_map(sizeof(sbuf_t) + SBUF_SIZE);
            if (b == NULL) {
                pthread_mutex_lock(&stream.qlock);
                stream.nbuf--;
                pthread_mutex_unlock(&stream.qlock);
            }
            return b;
        }
        pthread_mutex_unlock(&stream.qlock);
        if (b != NULL)
            return b;
        stream_drain();
    }
    return NULL;
}

/* Starts tb's next chunk in tb->cur: its leading 'C'. */
static void tb_start(tbuf_t *tb) {
    _neap_trace_enc_init(&tb->enc, tb->cur->data, SBUF_SIZE);
    (void)_neap_trace_enc_clock(&tb->enc, tb->clock);
    tb->base = tb->enc.len;
}

/* Seals tb's chunk, if it has records, and queues it for the writer (tb's
 * owner, or a flusher while the owner waits).  0, or -1: no memory for the
 * next chunk (the records of this one are dropped). */
static int tb_seal(tbuf_t *tb) {
    if (tb->enc.len <= tb->base)
        return 0;
    sbuf_t *next = sbuf_get();
    if (next == NULL) {
        tb_start(tb);
        return -1;
    }
    sbuf_t *b = tb->cur;
    b->n = _neap_trace_enc_seal(&tb->enc);
    b->next = NULL;
    pthread_mutex_lock(&stream.qlock);
    if (stream.qtail != NULL)
        stream.qtail->next = b;
    else
        stream.qhead = b;
    stream.qtail = b;
    pthread_cond_signal(&stream.qcond);
    pthread_mutex_unlock(&stream.qlock);
    tb->cur = next;
    tb_start(tb);
    if (!stream.writer)
        stream_drain();
    return 0;
}

/* The owner's half of the steal handshake: busy = 1, then read steal.
 * With membarrier a compiler barrier between the two is enough; without,
 * both sides use sequentially consistent operations. */
static inline int tb_busy_then_steal(tbuf_t *tb) {
    if (atomic_load_explicit(&stream.barrier, memory_order_relaxed)) {
        atomic_store_explicit(&tb->busy, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        return atomic_load_explicit(&tb->steal, memory_order_acquire);
    }
    (void)atomic_exchange_explicit(&tb->busy, 1, memory_order_seq_cst);
    return atomic_load_explicit(&tb->steal, memory_order_seq_cst);
}

static __attribute__((noinline)) void tb_wait_steal(tbuf_t *tb) {
    do {
        atomic_store_explicit(&tb->busy, 0, memory_order_release);
        while (atomic_load_explicit(&tb->steal, memory_order_acquire))
            _neap_os_yield();
    } while (tb_busy_then_steal(tb));
}

/* This thread's tbuf: a free one of the registry, or a new one. */
static __attribute__((noinline)) tbuf_t *tb_claim(void) {
    for (tbuf_t *tb = atomic_load_explicit(&stream.tbufs, memory_order_acquire); tb; tb = tb->next) {
        int free = 0;
        if (atomic_load_explicit(&tb->owned, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&tb->owned, &free, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            return tl_tbuf = tb;
    }
    tbuf_t *tb = table_map(sizeof *tb);
    if (tb == NULL)
        return NULL;
    pthread_mutex_lock(&stream.qlock);
    stream.ntbuf++;
    pthread_mutex_unlock(&stream.qlock);
    if ((tb->cur = sbuf_get()) == NULL) {
        table_unmap(tb, sizeof *tb);
        return NULL;
    }
    tb->clock = atomic_load_explicit(&trace_clock, memory_order_relaxed);
    tb_start(tb);
    atomic_store_explicit(&tb->owned, 1, memory_order_relaxed);
    tb->next = atomic_load_explicit(&stream.tbufs, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&stream.tbufs, &tb->next, tb,
                                                  memory_order_release, memory_order_relaxed)) {
    }
    return tl_tbuf = tb;
}

/* Begins appending to this thread's chunk; NULL when there is none, or
 * when this thread is appending already (a signal handler's free). */
static inline tbuf_t *tb_enter(void) {
    tbuf_t *tb = tl_tbuf;
    if (neap_unlikely(tb == NULL) && (tb = tb_claim()) == NULL)
        return NULL;
    if (neap_unlikely(atomic_load_explicit(&tb->busy, memory_order_relaxed)))
        return NULL;
    if (neap_unlikely(tb_busy_then_steal(tb)))
        tb_wait_steal(tb);
    return tb;
}

static inline void tb_leave(tbuf_t *tb) {
    atomic_store_explicit(&tb->busy, 0, memory_order_release);
}

/* Appends one record, sealing the chunk first when it is full. */
#define TB_PUT(tb, call)                                                       \
    do {                                                                       \
        if ((call) != 0 && tb_seal(tb) == 0)                                   \
            (void)(call);                                                      \
    } while (0)

/* The records after this have clock `now`. */
static inline void tb_clock(tbuf_t *tb, uint64_t now) {
    if (now != tb->clock) {
        tb->clock = now;
        TB_PUT(tb, _neap_trace_enc_clock(&tb->enc, now));
    }
}

/* Seals the chunk of every tbuf, the busy ones once their owner steps out. */
static void stream_steal_all(void) {
    pthread_mutex_lock(&stream.steal_lock);
    tbuf_t *all = atomic_load_explicit(&stream.tbufs, memory_order_acquire);
    int barrier = atomic_load_explicit(&stream.barrier, memory_order_relaxed);
    for (tbuf_t *tb = all; tb; tb = tb->next) {
        if (barrier)
            atomic_store_explicit(&tb->steal, 1, memory_order_relaxed);
        else
            (void)atomic_exchange_explicit(&tb->steal, 1, memory_order_seq_cst);
    }
    if (barrier)
        _neap_os_barrier();
    for (tbuf_t *tb = all; tb; tb = tb->next) {
        while (atomic_load_explicit(&tb->busy, memory_order_seq_cst))
            _neap_os_yield();
        (void)tb_seal(tb);
        atomic_store_explicit(&tb->steal, 0, memory_order_release);
    }
    pthread_mutex_unlock(&stream.steal_lock);
}

static int module_known(uintptr_t pc) {
    for (size_t i = 0; i < stream.nmod; i++) {
        if (pc >= stream.mod[i].start && pc < stream.mod[i].end)
            return 1;
    }
    return 0;
}

/* Appends 'M' records for the executable file mappings not streamed yet
 * (modlock held). */
static void stream_maps_locked(tbuf_t *tb) {
    stream.maps_read_at = _neap_os_clock_ms();
    char *buf = table_map(MAPS_BUF);
    if (buf == NULL)
        return;
    int n = _neap_os_read_file("/proc/self/maps", buf, MAPS_BUF);
    for (char *line = buf; n > 0 && *line;) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = 0;
        unsigned long start, stop, off;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &start, &stop, perms, &off, &path_at) == 4 &&
            path_at > 0 && perms[2] == 'x' && line[path_at] == '/' && !module_known(start) &&
            stream.nmod < MODULES_MAX) {
            const char *path = line + path_at;
            TB_PUT(tb, _neap_trace_enc_module(&tb->enc, start, stop, off, path, strlen(path)));
            stream.mod[stream.nmod].start = start;
            stream.mod[stream.nmod].end = stop;
            stream.nmod++;
        }
        if (end == NULL)
            break;
        line = end + 1;
    }
    table_unmap(buf, MAPS_BUF);
}

/* Whether this thread writes the record of something defined once in the
 * stream (a stack, a Python frame; state STACK_*): 1, it is now WRITING it
 * and sets it STREAMED after (or back to NEW if it could not); 0, another
 * thread did or does, and it is STREAMED (or NEW again) on return.  No
 * cycle of waits: a stack's writer may wait for its Python frames, whose
 * writers wait for nothing while they hold one. */
static int stream_claim(_Atomic uint32_t *state) {
    uint32_t none = STACK_NEW;
    if (atomic_compare_exchange_strong_explicit(state, &none, STACK_WRITING, memory_order_relaxed,
                                                memory_order_relaxed))
        return 1;
    while (atomic_load_explicit(state, memory_order_acquire) == STACK_WRITING)
        _neap_os_yield();
    return 0;
}

/* Defines the Python frame w (if it is one) before a stack that uses it:
 * the first thread to get here writes its 'P' record (in tb, after the
 * clock of the stack's definition, so after it in the merged order), the
 * others wait for that. */
static void stream_pyframe(tbuf_t *tb, uintptr_t w) {
    _neap_pyframe_t *pf = _neap_py_frame(w);
    if (pf == NULL)
        return;
    if (!stream_claim(&pf->streamed))
        return;
    TB_PUT(tb, _neap_trace_enc_pyframe(&tb->enc, pf->id, pf->line, pf->file, pf->file_len,
                                       pf->func, pf->func_len));
    atomic_store_explicit(&pf->streamed, STACK_STREAMED, memory_order_release);
}

/* Defines stack st in the stream: the first thread to get here writes its
 * 'S' record (and the 'M' records of new libraries it needs), the others
 * wait for that. */
static void stream_stack(tstack_t *st) {
    if (!stream_claim(&st->streamed))
        return;
    tbuf_t *tb = tb_enter();
    if (tb == NULL) {
        atomic_store_explicit(&st->streamed, STACK_NEW, memory_order_release);
        return;
    }
    tlock_lock(&stream.modlock);
    for (uint32_t i = 0; i < st->nframe; i++) {
        if (!module_known(st->frame[i]) && _neap_os_clock_ms() - stream.maps_read_at >= 50) {
            stream_maps_locked(tb);
            break;
        }
    }
    tlock_unlock(&stream.modlock);
    uint64_t f[NEAP_TRACE_MAX_FRAMES];
    for (uint32_t i = 0; i < st->nframe; i++)
        f[i] = st->frame[i];
    /* a clock of its own: whoever uses the stack after this is later */
    tb_clock(tb, atomic_fetch_add_explicit(&trace_clock, 1, memory_order_relaxed));
    for (uint32_t i = 0; i < st->nframe; i++)
        stream_pyframe(tb, st->frame[i]);
    TB_PUT(tb, _neap_trace_enc_stack(&tb->enc, st->id, f, st->nframe));
    tb_leave(tb);
    atomic_store_explicit(&st->streamed, STACK_STREAMED, memory_order_release);
}

/* The record of an allocation ('A'), or of a part of one ('G', off > 0);
 * `huge`: a block of its own mapping. */
static inline __attribute__((always_inline)) void stream_alloc(tstack_t *st, size_t size,
                                                               size_t off, uintptr_t a, int huge) {
    if (!atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        return;
    if (atomic_load_explicit(&st->streamed, memory_order_acquire) != STACK_STREAMED)
        stream_stack(st);
    tbuf_t *tb = tb_enter();
    if (tb == NULL)
        return;
    /* a huge block may have been another thread's a moment ago */
    uint64_t now = !huge ? atomic_load_explicit(&trace_clock, memory_order_relaxed)
                         : atomic_fetch_add_explicit(&trace_clock, 1, memory_order_relaxed) + 1;
    tb_clock(tb, now);
    if (off == 0)
        TB_PUT(tb, _neap_trace_enc_alloc(&tb->enc, st->id, size, a));
    else
        TB_PUT(tb, _neap_trace_enc_grow(&tb->enc, st->id, size, off, a));
    tb_leave(tb);
}

static void stream_free(uintptr_t a) {
    if (!atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        return;
    tbuf_t *tb = tb_enter();
    if (tb == NULL)
        return;
    tb_clock(tb, atomic_load_explicit(&trace_clock, memory_order_relaxed));
    TB_PUT(tb, _neap_trace_enc_free(&tb->enc, a));
    tb_leave(tb);
}

/* A sampled block's traces moved from `from` to `to`, at clock `now` (taken
 * before `from` could be another block's; 0 when not streaming then). */
static void stream_move(uintptr_t from, uintptr_t to, uint64_t now) {
    if (!atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        return;
    tbuf_t *tb = tb_enter();
    if (tb == NULL)
        return;
    if (now == 0)
        now = atomic_load_explicit(&trace_clock, memory_order_relaxed);
    tb_clock(tb, now);
    TB_PUT(tb, _neap_trace_enc_move(&tb->enc, from, to));
    tb_leave(tb);
}

/* --- marks (see the drawing above) --- */
static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
static int mark_ready;                 /* mark_info written: requests are served */
static char mark_info[96], mark_req[96], mark_tmp[104];
static char stream_path[4096];         /* the trace file, for mark_info */

/* Appends a 'K' record to tb: ms since the start, and len bytes of label. */
static void stream_mark_put(tbuf_t *tb, const char *label, size_t len) {
    tb_clock(tb, atomic_fetch_add_explicit(&trace_clock, 1, memory_order_relaxed) + 1);
    TB_PUT(tb, _neap_trace_enc_mark(&tb->enc, _neap_os_clock_ms() - stream.t0, label, len));
}

int neap_trace_mark(const char *label) {
    if (!atomic_load_explicit(&trace_streaming, memory_order_relaxed)) {
        errno = ENOENT;
        return -1;
    }
    size_t len = label != NULL ? strnlen(label, NEAP_TRACE_LABEL_MAX) : 0;
    int saved = tl_in_trace;
    tl_in_trace = 1;
    tbuf_t *tb = tb_enter();
    if (tb == NULL) {
        tl_in_trace = saved;
        errno = tl_tbuf != NULL ? EAGAIN : ENOMEM;
        return -1;
    }
    stream_mark_put(tb, label, len);
    tb_leave(tb);
    tl_in_trace = saved;
    return 0;
}

/* When the stream opens: the paths of the mark files (mark_info[0] stays
 * 0 without a usable directory: no marks from other processes), and a
 * note of this pid removed: it is the one of the image this process
 * exec'd from (an exec runs no exit code), or of a dead process whose pid
 * this one got.  A pending request is left for this image to serve. */
static void stream_marks_paths(void) {
    char dir[64];
    if (_neap_os_stats_dir(dir, sizeof dir) != 0)
        return;
    unsigned long long pid = (unsigned long long)_neap_os_getpid();
    neap_buf_t i = {mark_info, 0, sizeof mark_info}, r = {mark_req, 0, sizeof mark_req},
               t = {mark_tmp, 0, sizeof mark_tmp};
    _neap_buf_str(&i, dir);
    _neap_buf_str(&i, "/");
    _neap_buf_u(&i, pid, 0);
    _neap_buf_str(&r, mark_info);
    _neap_buf_str(&i, ".trace");
    _neap_buf_str(&r, ".mark");
    _neap_buf_str(&t, mark_info);
    _neap_buf_str(&t, ".tmp");
    _neap_os_unlink(mark_info);
}

/* The writer thread, once: mark_info written, so that `neap mark` finds
 * this process. */
static void stream_marks_start(void) {
    if (mark_info[0] == 0)
        return;
    unsigned long long pid = (unsigned long long)_neap_os_getpid();
    char text[4096 + 96];
    neap_buf_t b = {text, 0, sizeof text};
    _neap_buf_str(&b, "neap-trace 1\npid ");
    _neap_buf_u(&b, pid, 0);
    _neap_buf_str(&b, "\nfile ");
    _neap_buf_str(&b, stream_path);
    _neap_buf_str(&b, "\n");
    pthread_mutex_lock(&mark_lock);
    if (atomic_load_explicit(&trace_streaming, memory_order_relaxed) &&
        _neap_os_replace_file(mark_info, mark_tmp, text, b.len) == 0)
        mark_ready = 1;
    pthread_mutex_unlock(&mark_lock);
}

/* A request of `neap mark` (mark_lock held): its 'K' appended to tb; 1 if
 * there was one (removed once the chunks are written), else 0. */
static int stream_marks_serve(tbuf_t *tb) {
    if (!mark_ready)
        return 0;
    char buf[NEAP_TRACE_LABEL_MAX + 2];
    int n = _neap_os_read_file(mark_req, buf, sizeof buf);
    if (n < 0)
        return 0;
    size_t len = 0;
    while (len < (size_t)n && buf[len] != '\n')
        len++;
    stream_mark_put(tb, buf, len);
    return 1;
}

/* A tick (time, RSS, live bytes), after the mark another process asked for
 * if any; then every thread's chunk to the file.  end: the last one, and
 * the file closed. */
static void stream_tick(int end) {
    neap_process_memory_t pm;
    uint64_t rss = neap_process_memory(&pm) == 0 ? pm.rss : 0;
    size_t cur = 0;
    if (atomic_load_explicit(&stream_only, memory_order_relaxed)) {
        neap_stats_t st; /* no table: the allocator's count of live bytes */
        neap_stats_get(&st);
        cur = st.bytes_live;
    } else {
        neap_trace_get_traced_memory(&cur, NULL);
    }
    int saved = tl_in_trace, marked = 0;
    tl_in_trace = 1; /* what this allocates is not the program's */
    pthread_mutex_lock(&mark_lock);
    tbuf_t *tb = tb_enter();
    if (tb != NULL) {
        marked = stream_marks_serve(tb);
        tb_clock(tb, atomic_load_explicit(&trace_clock, memory_order_relaxed));
        TB_PUT(tb, _neap_trace_enc_tick(&tb->enc, _neap_os_clock_ms() - stream.t0, rss, cur));
        /* under `neap run`, its main process leaves the 'E' record to neap
         * run, which knows the exit status */
        if (end && neap_opt(NEAP_OPTION_RUN_PID) != _neap_os_getpid())
            TB_PUT(tb, _neap_trace_enc_end(&tb->enc, NEAP_TRACE_EXIT_UNKNOWN, 0));
        tb_leave(tb);
    }
    stream_steal_all();
    stream_drain();
    if (marked)
        _neap_os_unlink(mark_req); /* the mark is in the file: `neap mark` may return */
    if (end) {
        atomic_store_explicit(&trace_streaming, 0, memory_order_relaxed);
        pthread_mutex_lock(&stream.flock);
        _neap_os_close(stream.fd);
        stream.fd = -1;
        pthread_mutex_unlock(&stream.flock);
        if (mark_ready)
            _neap_os_unlink(mark_info);
        mark_ready = 0;
    }
    pthread_mutex_unlock(&mark_lock);
    tl_in_trace = saved;
}

/* The writer thread: writes the chunks queued, and every TICK_MS a tick
 * (and the mark another process asked for) and every thread's chunk. */
static void *stream_main(void *arg) {
    (void)arg;
    tl_in_trace = 1; /* the thread's own allocations are not the program's */
    /* Registering takes the kernel about 10 ms: here, not in the program's
     * way.  Until it is done, owners and flushers both use full fences;
     * the switch happens under steal_lock, so no flush straddles it. */
    if (_neap_os_barrier_register() == 0) {
        pthread_mutex_lock(&stream.steal_lock);
        atomic_store_explicit(&stream.barrier, 1, memory_order_relaxed);
        pthread_mutex_unlock(&stream.steal_lock);
    }
    stream_marks_start();
    uint64_t next_tick = _neap_os_clock_ms() + TICK_MS;
    while (atomic_load_explicit(&trace_streaming, memory_order_relaxed)) {
        pthread_mutex_lock(&stream.qlock);
        if (stream.qhead == NULL) {
            /* asleep until a chunk is queued or the next tick is due: a
             * traced program that allocates little is not woken up more */
            uint64_t now = _neap_os_clock_ms();
            long wait_ms = next_tick > now ? (long)(next_tick - now) : 0;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += wait_ms / 1000;
            until.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (wait_ms > 0)
                pthread_cond_timedwait(&stream.qcond, &stream.qlock, &until);
        }
        pthread_mutex_unlock(&stream.qlock);
        stream_drain();
        if (_neap_os_clock_ms() >= next_tick &&
            atomic_load_explicit(&trace_streaming, memory_order_relaxed)) {
            next_tick = _neap_os_clock_ms() + TICK_MS;
            stream_tick(0);
        }
    }
    return NULL;
}

void _neap_trace_thread_exit(void) {
    _neap_py_thread_exit();
    if (tl_memo != NULL) {
        table_unmap(tl_memo, MEMO_WAYS * sizeof(memo_t));
        tl_memo = NULL;
    }
    tbuf_t *tb = tl_tbuf;
    if (tb == NULL || !atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        return;
    if (tb_enter() != tb)
        return;
    (void)tb_seal(tb);
    tb_leave(tb);
    tl_tbuf = NULL;
    atomic_store_explicit(&tb->owned, 0, memory_order_release);
}

/* The pid of the process that writes FILE itself (the others write
 * FILE.<pid>): neap run's main process, else the one NEAP_TRACE_PID names,
 * else this one, pid. */
static long stream_owner(long pid) {
    long owner = neap_opt(NEAP_OPTION_RUN_PID);
    if (owner != 0)
        return owner;
    const char *v = _neap_os_getenv("NEAP_TRACE_PID");
    if (v != NULL && *v != 0) {
        char *end;
        errno = 0;
        owner = strtol(v, &end, 10);
        if (errno == 0 && *end == 0 && owner > 0)
            return owner;
    }
    /* NEAP_TRACE set by hand, and this the first process to trace: its
     * children inherit NEAP_TRACE, and must not truncate FILE and write
     * into it (from the library's constructor: no other thread reads the
     * environment yet).  Set here, before the program's main, it is in
     * what the program passes on to the processes it starts. */
    char digits[24];
    snprintf(digits, sizeof digits, "%ld", pid);
    if (setenv("NEAP_TRACE_PID", digits, 1) != 0) {
        /* no memory for it: the children are not traced (unsetenv
         * allocates nothing) rather than trace over this one */
        unsetenv("NEAP_TRACE");
        _neap_warning("NEAP_TRACE: no memory to set NEAP_TRACE_PID",
                      "the processes this one starts are not traced");
    }
    return pid;
}

void _neap_trace_env_start(void) {
    const char *path = _neap_os_getenv("NEAP_TRACE");
    if (path == NULL || *path == 0 || stream.fd >= 0)
        return;
    long pid = _neap_os_getpid();
    char name[4096];
    size_t plen = strlen(path);
    if (plen + 24 > sizeof name) { /* room for ".<pid>" */
        _neap_warning("NEAP_TRACE ignored", "the path is too long");
        return;
    }
    memcpy(name, path, plen + 1); /* path may go from the environment below */
    if (stream_owner(pid) != pid)
        snprintf(name + plen, sizeof name - plen, ".%ld", pid);
    memcpy(stream_path, name, strlen(name) + 1); /* for `neap mark` (stream_marks_start) */
    stream_marks_paths();
    int fd = _neap_os_create(name);
    if (fd < 0) {
        char shown[320];
        neap_buf_t b = {shown, 0, sizeof shown};
        _neap_buf_str_escaped(&b, name, 256);   /* the environment's bytes, escaped */
        _neap_warning("NEAP_TRACE ignored: cannot create the trace file", shown);
        return;
    }
    size_t interval = (size_t)neap_opt(NEAP_OPTION_TRACE_SAMPLE);
    int nframe = (int)neap_opt(NEAP_OPTION_TRACE_FRAMES);
    char cmd[8192];
    int clen = _neap_os_read_file("/proc/self/cmdline", cmd, sizeof cmd);
    _neap_trace_header_t h = {
        .flags = interval ? NEAP_TRACE_FLAG_SAMPLED : 0,
        .sample_interval = interval,
        .start_ns = _neap_os_realtime_ms() * 1000000u,
        .pid = (uint32_t)pid,
        .max_frames = (uint32_t)nframe,
        .cmdline_len = clen > 0 ? (uint32_t)clen : 0,
        .cmdline = cmd,
    };
    uint8_t hbuf[NEAP_TRACE_HEADER_FIXED + sizeof cmd];
    size_t hn = _neap_trace_header_encode(hbuf, sizeof hbuf, &h);
    _neap_os_write(fd, (const char *)hbuf, hn);
    stream.fd = fd;
    stream.t0 = _neap_os_clock_ms();
    tl_in_trace++;
    tbuf_t *tb = tb_enter();
    if (tb == NULL) {
        tl_in_trace--;
        _neap_os_close(fd);
        stream.fd = -1;
        _neap_warning("NEAP_TRACE ignored", "no memory for the trace buffer");
        return;
    }
    tlock_lock(&stream.modlock);
    stream_maps_locked(tb);
    tlock_unlock(&stream.modlock);
    tb_leave(tb);
    tl_in_trace--;
    atomic_store_explicit(&trace_streaming, 1, memory_order_relaxed);
    if (interval) {
        neap_trace_start_sampled(nframe, interval);
    } else {
        neap_trace_start(nframe);
        atomic_store_explicit(&trace_live, 1, memory_order_relaxed);
        atomic_store_explicit(&stream_only, 1, memory_order_relaxed);
    }
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int writer = pthread_create(&tid, &attr, stream_main, NULL) == 0;
    pthread_mutex_lock(&stream.qlock);
    stream.writer = writer; /* until now every seal wrote its chunk itself */
    pthread_mutex_unlock(&stream.qlock);
    if (!writer)
        _neap_warning("trace stream", "no writer thread: chunks are written by the threads that fill them");
    pthread_attr_destroy(&attr);
}

void _neap_trace_env_exit(void) {
    if (atomic_load_explicit(&trace_streaming, memory_order_relaxed))
        stream_tick(1);
}

/* A forked child does not stream: its records would interleave with its
 * parent's, and the writer thread is not in it. */
static void stream_fork_child(void) {
    stream.writer = 0;
    if (stream.fd >= 0) {
        atomic_store_explicit(&trace_streaming, 0, memory_order_relaxed);
        _neap_os_close(stream.fd);
        stream.fd = -1;
        atomic_store_explicit(&trace_mode, MODE_OFF, memory_order_relaxed);
    }
}

/* ---------------------------------------------------------------------------
 * Fork: the child gets consistent tables and unlocked locks.
 * ------------------------------------------------------------------------- */
void _neap_trace_fork_prepare(void) {
    lock_all();
    _neap_py_fork_prepare();
}
void _neap_trace_fork_parent(void) {
    _neap_py_fork_parent();
    unlock_all();
}

void _neap_trace_fork_child(void) {
    for (int i = 0; i < SHARDS; i++)
        atomic_store_explicit(&shards[i].lock.held, 0, memory_order_relaxed);
    atomic_store_explicit(&stacks.lock.held, 0, memory_order_relaxed);
    _neap_py_fork_child();
    stream_fork_child();
    hooks_update_locked();
}

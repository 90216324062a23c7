/* trace.c -- tracing allocations (neap_trace.h): the countdown every
 * allocation path decrements, stack capture, interned stacks, and the table
 * of live traced blocks.
 *
 *   allocation path (fastpath.h, alloc.c)          free path (heap.c)
 *   p = alloc(size)                                 free_try: pool->traced != 0
 *   tl_left -= size                                   -> slow path
 *   tl_left < 0 ? --> _neap_trace_alloc(p, ...)     _neap_free_generic:
 *                        |                            _neap_trace_live != 0
 *          off: tl_left = LATENCY, return p             -> _neap_trace_forget(p)
 *          exact: tl_left = EXACT_LEFT (stays < 0)
 *          sampled: tl_left += Exp(interval) until >= 0
 *                        |
 *                        v
 *          capture: frame[0] = the caller's return address, then the
 *                   frame-pointer chain from the caller's frame pointer,
 *                   each frame checked to lie in the thread's stack
 *                        |
 *                        v
 *   stacks (interned; never freed)          traces: SHARDS shards by address
 *   +-------------------------------+       +-------------------------------+
 *   | lock; slot[cap] -> tstack_t    |       | lock; slot[cap] = {addr, size, |
 *   | tstack_t: hash, nframe, frames |<------|   stack}; open addressing      |
 *   | in chunks mapped from the OS   |       | (linear probing, backward-     |
 *   +-------------------------------+       |  shift deletion)               |
 *     ^ per-thread cache of the last         +-------------------------------+
 *       stack per hash bucket (no lock)
 *
 * Invariants
 *   - A block is in at most one shard, under its address.  While it is
 *     there, if it is a pool block, its pool's `traced` counts it; so a pool
 *     with traced == 0 has no traced block and its frees stay fast.
 *   - _neap_trace_live is the number of traces in all shards.
 *   - traced_current is the sum of the traces' weights (their size, or in
 *     sampled mode the unbiased estimate size / p(size)).
 *   - The tables' memory comes from the OS (os.c), never from neap_malloc:
 *     recording an allocation allocates nothing.  The one exception, the
 *     first capture in a thread asking the C library for its stack bounds,
 *     runs with tl_in_trace set, so what it allocates is not traced.
 *
 * Locks: one for the stacks, one per shard; the stack lock is never taken
 * while holding a shard lock.  start/stop/clear take every lock.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "fastpath.h"
#include "neap_trace.h"

#define SHARDS 64
#define EXACT_LEFT (-((int64_t)1 << 62))
#define CHUNK_SIZE ((size_t)1 << 20)

enum { MODE_OFF, MODE_EXACT, MODE_SAMPLED };

__thread int64_t _neap_tl_trace_left = NEAP_TRACE_LATENCY;
_Atomic size_t _neap_trace_live;

static _Atomic int trace_mode;           /* MODE_* */
static _Atomic int trace_nframe = 1;     /* frames kept */
static _Atomic size_t trace_interval;    /* sampling mean, bytes; 0 exact */
static _Atomic size_t traced_current;    /* bytes (weights) of the traces */
static _Atomic size_t traced_peak;
static _Atomic size_t trace_memory;      /* bytes mapped for the tables */

static __thread int tl_in_trace;         /* inside this file: allocations untraced */
static __thread uint64_t tl_rng;         /* sampling; 0 until seeded */
static __thread uintptr_t tl_stack_lo, tl_stack_hi; /* this thread's stack */

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

/* ---------------------------------------------------------------------------
 * Interned stacks.
 * ------------------------------------------------------------------------- */
typedef struct tstack {
    uint64_t hash;
    uint32_t nframe;
    uint32_t id;             /* 1, 2, ... in order of first use */
    uintptr_t frame[];
} tstack_t;

static struct {
    pthread_mutex_t lock;
    tstack_t **slot;         /* open addressing; cap a power of two */
    size_t cap, count;
    char *chunk;             /* bump allocation of tstack_t */
    size_t chunk_used;
} stacks = {.lock = PTHREAD_MUTEX_INITIALIZER};

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

static int stack_equal(const tstack_t *s, uint64_t h, const uintptr_t *f, size_t n) {
    return s->hash == h && s->nframe == n && memcmp(s->frame, f, n * sizeof *f) == 0;
}

static int stacks_grow_locked(void) {
    size_t cap = stacks.cap ? stacks.cap * 2 : 4096;
    tstack_t **slot = table_map(cap * sizeof *slot);
    if (slot == NULL)
        return -1;
    for (size_t i = 0; i < stacks.cap; i++) {
        tstack_t *s = stacks.slot[i];
        if (s == NULL)
            continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (slot[j] != NULL)
            j = (j + 1) & (cap - 1);
        slot[j] = s;
    }
    table_unmap(stacks.slot, stacks.cap * sizeof *slot);
    stacks.slot = slot;
    stacks.cap = cap;
    return 0;
}

/* The interned copy of f[0..n), or NULL when memory ran out. */
static tstack_t *stack_intern(const uintptr_t *f, size_t n) {
    uint64_t h = hash_frames(f, n);
    tstack_t **c = &tl_cache[h & (TL_CACHE - 1)];
    if (*c != NULL && stack_equal(*c, h, f, n))
        return *c;
    pthread_mutex_lock(&stacks.lock);
    tstack_t *s = NULL;
    if ((stacks.count + 1) * 2 > stacks.cap && stacks_grow_locked() != 0)
        goto out;
    size_t mask = stacks.cap - 1, i = (size_t)h & mask;
    for (; stacks.slot[i] != NULL; i = (i + 1) & mask) {
        if (stack_equal(stacks.slot[i], h, f, n)) {
            s = stacks.slot[i];
            goto out;
        }
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
    s->id = (uint32_t)(stacks.count + 1);
    memcpy(s->frame, f, n * sizeof *f);
    stacks.slot[i] = s;
    stacks.count++;
out:
    pthread_mutex_unlock(&stacks.lock);
    if (s != NULL)
        *c = s;
    return s;
}

/* ---------------------------------------------------------------------------
 * Stack capture.
 * ------------------------------------------------------------------------- */
static void stack_bounds_init(void) {
    pthread_attr_t attr;
    void *addr;
    size_t size;
    tl_stack_lo = tl_stack_hi = 1; /* tried: nonzero, empty */
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        tl_stack_lo = (uintptr_t)addr;
        tl_stack_hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&attr);
}

/* Fills f with ret and the return addresses up the frame-pointer chain
 * from fp; returns how many, at most max. */
static size_t capture(uintptr_t *f, size_t max, uintptr_t ret, uintptr_t fp) {
    size_t n = 0;
    f[n++] = ret;
    if (tl_stack_hi == 0)
        stack_bounds_init();
    uintptr_t lo = tl_stack_lo, hi = tl_stack_hi;
    while (n < max) {
        /* a frame record is two words: the caller's frame pointer, then the
         * return address; it must lie inside this thread's stack, aligned,
         * and the chain must go up */
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1)))
            break;
        const uintptr_t *rec = (const uintptr_t *)fp;
        uintptr_t next = rec[0], r = rec[1];
        if (r < 4096)
            break;
        f[n++] = r;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

/* ---------------------------------------------------------------------------
 * Traces.
 * ------------------------------------------------------------------------- */
typedef struct trace {
    uintptr_t addr;          /* 0: empty slot */
    size_t size;             /* bytes asked for */
    tstack_t *stack;
} trace_t;

typedef struct shard {
    pthread_mutex_t lock;
    trace_t *slot;
    size_t cap, count;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} shard_t;

static shard_t shards[SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;

static void shards_init(void) {
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
}

static inline uint64_t addr_hash(uintptr_t a) {
    uint64_t x = (uint64_t)a >> 4;
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return x;
}

static inline shard_t *shard_of(uintptr_t a) { return &shards[addr_hash(a) >> 58]; }

/* The bytes a trace stands for: its size, or when sampling, size / p. */
static size_t trace_weight(size_t size) {
    size_t interval = atomic_load_explicit(&trace_interval, memory_order_relaxed);
    if (interval == 0 || size == 0)
        return size;
    double p = -expm1(-(double)size / (double)interval);
    return (size_t)((double)size / p + 0.5);
}

static int shard_grow_locked(shard_t *sh) {
    size_t cap = sh->cap ? sh->cap * 2 : 1024;
    trace_t *slot = table_map(cap * sizeof *slot);
    if (slot == NULL)
        return -1;
    for (size_t i = 0; i < sh->cap; i++) {
        trace_t *t = &sh->slot[i];
        if (t->addr == 0)
            continue;
        size_t j = (size_t)addr_hash(t->addr) & (cap - 1);
        while (slot[j].addr != 0)
            j = (j + 1) & (cap - 1);
        slot[j] = *t;
    }
    table_unmap(sh->slot, sh->cap * sizeof *slot);
    sh->slot = slot;
    sh->cap = cap;
    return 0;
}

/* The slot of a, or of the empty slot where it would go (cap > 0). */
static size_t shard_find(const shard_t *sh, uintptr_t a) {
    size_t mask = sh->cap - 1, i = (size_t)addr_hash(a) & mask;
    while (sh->slot[i].addr != 0 && sh->slot[i].addr != a)
        i = (i + 1) & mask;
    return i;
}

static void shard_remove_at(shard_t *sh, size_t i) {
    size_t mask = sh->cap - 1;
    sh->slot[i].addr = 0;
    sh->count--;
    for (size_t j = (i + 1) & mask; sh->slot[j].addr != 0; j = (j + 1) & mask) {
        size_t home = (size_t)addr_hash(sh->slot[j].addr) & mask;
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            sh->slot[i] = sh->slot[j];
            sh->slot[j].addr = 0;
            i = j;
        }
    }
}

static void traced_add(size_t w) {
    size_t cur = atomic_fetch_add_explicit(&traced_current, w, memory_order_relaxed) + w;
    size_t peak = atomic_load_explicit(&traced_peak, memory_order_relaxed);
    while (cur > peak &&
           !atomic_compare_exchange_weak_explicit(&traced_peak, &peak, cur, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void pool_traced(const void *p, int delta) {
    neap_pool_t *pool = _neap_block_pool(p);
    if (pool == NULL)
        return;
    if (delta > 0)
        atomic_fetch_add_explicit(&pool->traced, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&pool->traced, 1, memory_order_relaxed);
}

/* Records p; on a failure to get memory the block just stays untraced. */
static void record(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    uintptr_t f[NEAP_TRACE_MAX_FRAMES];
    size_t n = capture(f, (size_t)atomic_load_explicit(&trace_nframe, memory_order_relaxed),
                       ret, fp);
    tstack_t *st = stack_intern(f, n);
    if (st == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    shard_t *sh = shard_of(a);
    pthread_mutex_lock(&sh->lock);
    if (atomic_load_explicit(&trace_mode, memory_order_relaxed) == MODE_OFF ||
        ((sh->count + 1) * 4 > sh->cap * 3 && shard_grow_locked(sh) != 0)) {
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    size_t i = shard_find(sh, a);
    if (sh->slot[i].addr == a) {
        /* a stale trace of a block freed behind tracing's back cannot be:
         * every free path forgets first; replace it anyway */
        atomic_fetch_sub_explicit(&traced_current, trace_weight(sh->slot[i].size),
                                  memory_order_relaxed);
        pool_traced(p, -1);
    } else {
        sh->count++;
        atomic_fetch_add_explicit(&_neap_trace_live, 1, memory_order_relaxed);
    }
    sh->slot[i] = (trace_t){a, size, st};
    pool_traced(p, +1);
    traced_add(trace_weight(size));
    pthread_mutex_unlock(&sh->lock);
}

/* An exponential draw with the given mean, at least 1. */
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

void *_neap_trace_alloc(void *p, size_t size, uintptr_t ret, uintptr_t fp) {
    int mode = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    if (mode == MODE_OFF) {
        _neap_tl_trace_left = NEAP_TRACE_LATENCY;
        return p;
    }
    if (mode == MODE_EXACT) {
        _neap_tl_trace_left = EXACT_LEFT;
    } else {
        size_t mean = atomic_load_explicit(&trace_interval, memory_order_relaxed);
        if (_neap_tl_trace_left < EXACT_LEFT / 2)
            _neap_tl_trace_left = 0; /* was exact until now: start a fresh draw */
        while (_neap_tl_trace_left < 0)
            _neap_tl_trace_left += next_interval(mean);
    }
    if (p == NULL || tl_in_trace)
        return p;
    int saved = errno;
    tl_in_trace = 1;
    record(p, size, ret, fp);
    tl_in_trace = 0;
    errno = saved;
    return p;
}

void *_neap_trace_malloc(size_t size, uintptr_t ret, uintptr_t fp) {
    return _neap_trace_alloc(neap_malloc_plain(size), size, ret, fp);
}

void _neap_trace_forget(const void *p) {
    uintptr_t a = (uintptr_t)p;
    shard_t *sh = shard_of(a);
    pthread_mutex_lock(&sh->lock);
    if (sh->cap > 0) {
        size_t i = shard_find(sh, a);
        if (sh->slot[i].addr == a) {
            atomic_fetch_sub_explicit(&traced_current, trace_weight(sh->slot[i].size),
                                      memory_order_relaxed);
            shard_remove_at(sh, i);
            atomic_fetch_sub_explicit(&_neap_trace_live, 1, memory_order_relaxed);
            pool_traced(p, -1);
        }
    }
    pthread_mutex_unlock(&sh->lock);
}

/* ---------------------------------------------------------------------------
 * The API.
 * ------------------------------------------------------------------------- */
static void lock_all(void) {
    pthread_once(&shards_once, shards_init);
    pthread_mutex_lock(&stacks.lock);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

static void unlock_all(void) {
    for (int i = SHARDS - 1; i >= 0; i--)
        pthread_mutex_unlock(&shards[i].lock);
    pthread_mutex_unlock(&stacks.lock);
}

/* Drops every trace; all locks held. */
static void clear_locked(void) {
    for (int s = 0; s < SHARDS; s++) {
        shard_t *sh = &shards[s];
        for (size_t i = 0; i < sh->cap; i++) {
            if (sh->slot[i].addr != 0)
                pool_traced((void *)sh->slot[i].addr, -1);
        }
        table_unmap(sh->slot, sh->cap * sizeof(trace_t));
        sh->slot = NULL;
        sh->cap = sh->count = 0;
    }
    atomic_store_explicit(&_neap_trace_live, 0, memory_order_relaxed);
    atomic_store_explicit(&traced_current, 0, memory_order_relaxed);
    atomic_store_explicit(&traced_peak, 0, memory_order_relaxed);
}

static int start(int nframe, size_t interval, int mode) {
    if (nframe < 1 || nframe > NEAP_TRACE_MAX_FRAMES) {
        errno = EINVAL;
        return -1;
    }
    lock_all();
    int old = atomic_load_explicit(&trace_mode, memory_order_relaxed);
    size_t old_interval = atomic_load_explicit(&trace_interval, memory_order_relaxed);
    if (old != MODE_OFF && old_interval != interval)
        clear_locked(); /* the weights of the traces would change meaning */
    atomic_store_explicit(&trace_nframe, nframe, memory_order_relaxed);
    atomic_store_explicit(&trace_interval, interval, memory_order_relaxed);
    atomic_store_explicit(&trace_mode, mode, memory_order_relaxed);
    unlock_all();
    /* this thread is traced from its next allocation on */
    _neap_tl_trace_left = mode == MODE_EXACT ? EXACT_LEFT : next_interval(interval);
    return 0;
}

int neap_trace_start(int nframe) { return start(nframe, 0, MODE_EXACT); }

int neap_trace_start_sampled(int nframe, size_t interval) {
    return start(nframe, interval ? interval : NEAP_TRACE_DEFAULT_INTERVAL, MODE_SAMPLED);
}

void neap_trace_stop(void) {
    lock_all();
    atomic_store_explicit(&trace_mode, MODE_OFF, memory_order_relaxed);
    atomic_store_explicit(&trace_interval, 0, memory_order_relaxed);
    clear_locked();
    unlock_all();
    _neap_tl_trace_left = NEAP_TRACE_LATENCY;
}

int neap_trace_is_tracing(void) {
    return atomic_load_explicit(&trace_mode, memory_order_relaxed) != MODE_OFF;
}

size_t neap_trace_get_sample_interval(void) {
    return atomic_load_explicit(&trace_interval, memory_order_relaxed);
}

void neap_trace_clear_traces(void) {
    lock_all();
    clear_locked();
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
    return atomic_load_explicit(&trace_memory, memory_order_relaxed) + sizeof shards;
}

/* Looks p up and copies its trace; 0 if it has none. */
static int lookup(const void *p, trace_t *out) {
    uintptr_t a = (uintptr_t)p;
    pthread_once(&shards_once, shards_init);
    shard_t *sh = shard_of(a);
    int found = 0;
    pthread_mutex_lock(&sh->lock);
    if (sh->cap > 0) {
        size_t i = shard_find(sh, a);
        if (sh->slot[i].addr == a) {
            *out = sh->slot[i];
            found = 1;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return found;
}

int neap_trace_get_object_traceback(const void *p, neap_traceback_t *out) {
    trace_t t;
    if (p == NULL || !lookup(p, &t))
        return 0;
    out->nframe = t.stack->nframe;
    memcpy(out->frame, t.stack->frame, t.stack->nframe * sizeof(uintptr_t));
    return 1;
}

size_t neap_trace_get_object_size(const void *p) {
    trace_t t;
    return p != NULL && lookup(p, &t) ? t.size : 0;
}

/* ---------------------------------------------------------------------------
 * Fork: the child gets consistent tables and unlocked locks.
 * ------------------------------------------------------------------------- */
void _neap_trace_fork_prepare(void) { lock_all(); }
void _neap_trace_fork_parent(void) { unlock_all(); }

void _neap_trace_fork_child(void) {
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    pthread_mutex_init(&stacks.lock, NULL);
}

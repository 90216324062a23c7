/*
 * common.h: what every neapwork workload shares.
 *
 * neapwork is one allocator-agnostic program: it calls only malloc, calloc,
 * realloc, free and posix_memalign, and the benchmark runner runs it under
 * each allocator with LD_PRELOAD.  This header gives the workloads
 *
 *   - their options (opts_t) and the table entry type (workload_t);
 *   - a fixed-seed PRNG (splitmix64) and size generators, so that every
 *     allocator sees exactly the same sequence of requests;
 *   - fill_block / check_block: a pattern derived from a 64-bit tag written
 *     into a block after allocation and verified before it is freed.  Blocks
 *     up to FILL_FULL_MAX bytes are written and verified entirely; larger
 *     ones at their first and last 8 bytes and at one word per 4 KiB (which
 *     also makes every page of the block resident, as a real program's would
 *     be).  check_block returns a value folded into the workload's checksum;
 *     a mismatch ends the program with "check failed" and exit status 1;
 *   - the clock, the RSS sampler and the one-line JSON report (common.c).
 *
 * Bookkeeping arrays (pointer tables and the like) come from mmap through
 * book_alloc/book_free, not from the allocator under test, and are unmapped
 * before "after_free" is read, so that they neither perturb the allocator
 * nor hide what it gives back.
 */
#ifndef NEAPWORK_COMMON_H
#define NEAPWORK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- options and the workload table ------------------------------------ */

enum {
    OPT_THREADS = 1u << 0,
    OPT_KEEP    = 1u << 1,
    OPT_ORDER   = 1u << 2,
    OPT_SECONDS = 1u << 3,
};

typedef enum { ORDER_LIFO, ORDER_FIFO, ORDER_RANDOM } order_t;

typedef struct {
    double scale;      /* multiplies object counts and iterations */
    int threads;       /* server, scaling, frees */
    long keep;         /* survivors: every keep-th object survives */
    order_t order;     /* churn */
    double seconds;    /* mixed: run time */
} opts_t;

typedef struct {
    const char *name;
    const char *desc;        /* one line, for --list */
    unsigned accepts;        /* OPT_* the workload takes besides --scale */
    int default_threads;
    void (*run)(const opts_t *o);
} workload_t;

void run_seed(const opts_t *o);
void run_survivors(const opts_t *o);
void run_churn(const opts_t *o);
void run_prodcons(const opts_t *o);
void run_server(const opts_t *o);
void run_realloc(const opts_t *o);
void run_mixed(const opts_t *o);
void run_scaling(const opts_t *o);
void run_frees(const opts_t *o);
void run_redis(const opts_t *o);

extern const char *g_workload;   /* name, for messages */

/* base * scale rounded, at least min */
size_t scaled(const opts_t *o, double base, size_t min);
const char *order_name(order_t ord);

/* ---- failures ---------------------------------------------------------- */

/* "neapwork NAME: check failed: ..." on stderr, exit 1 */
__attribute__((noreturn, format(printf, 1, 2))) void check_failed(const char *fmt, ...);
/* any other fatal error of a run (out of memory, thread creation): exit 1 */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

/* malloc & co. that treat NULL as fatal and check the 16-byte alignment
 * every block of 16 bytes or more must have on x86-64 */
void *xmalloc(size_t n);
void *xcalloc(size_t n);
void *xrealloc(void *p, size_t n);
void *xmemalign(size_t align, size_t n);

/* bookkeeping memory from mmap (zeroed), outside the allocator under test */
void *book_alloc(size_t bytes);
void book_free(void *p, size_t bytes);

/* ---- PRNG: splitmix64 ---------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_seed(uint64_t seed) { rng_t r = { mix64(seed) }; return r; }

static inline uint64_t rng_next(rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) */
static inline uint64_t below(uint64_t x, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return below(rng_next(r), n); }

/* uniform in [lo, hi] */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)rng_below(r, hi - lo + 1);
}

/* log-uniform-ish in [2^lo_bits, 2^hi_bits): a uniform power of two, then
 * uniform within it; small sizes are as frequent per doubling as large */
static inline size_t rng_logsize(rng_t *r, unsigned lo_bits, unsigned hi_bits)
{
    uint64_t x = rng_next(r);
    unsigned e = lo_bits + (unsigned)below(x, hi_bits - lo_bits);
    size_t base = (size_t)1 << e;
    return base + (size_t)((x & 0xffffffffu) * base >> 32);
}

/* ---- block pattern ------------------------------------------------------- */

#define FILL_FULL_MAX 512      /* blocks up to this size are written whole */
#define PATTERN_STEP 0x2545f4914f6cdd1dull

__attribute__((noreturn)) void block_mismatch(const void *p, size_t n, size_t off);

static inline void put64(void *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static inline void fill_block(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    if (n <= FILL_FULL_MAX) {
        size_t k = 0;
        uint64_t w = tag;
        for (; k + 8 <= n; k += 8, w += PATTERN_STEP)
            put64(b + k, w);
        for (; k < n; k++, w >>= 8)
            b[k] = (unsigned char)w;
    } else {
        put64(b, tag);
        for (size_t off = 4096; off + 16 <= n; off += 4096)
            put64(b + off, tag + off);
        put64(b + n - 8, ~tag ^ n);
    }
}

/* verifies the pattern of fill_block; returns the fold for the checksum */
static inline uint64_t check_block(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    if (n <= FILL_FULL_MAX) {
        size_t k = 0;
        uint64_t w = tag;
        for (; k + 8 <= n; k += 8, w += PATTERN_STEP)
            if (get64(b + k) != w)
                block_mismatch(p, n, k);
        for (; k < n; k++, w >>= 8)
            if (b[k] != (unsigned char)w)
                block_mismatch(p, n, k);
        return (n >= 8 ? get64(b) : (uint64_t)b[0]) + n;
    }
    if (get64(b) != tag)
        block_mismatch(p, n, 0);
    for (size_t off = 4096; off + 16 <= n; off += 4096)
        if (get64(b + off) != tag + off)
            block_mismatch(p, n, off);
    if (get64(b + n - 8) != (~tag ^ n))
        block_mismatch(p, n, n - 8);
    return get64(b) + n;
}

/* calloc'd memory must read zero where fill_block will write */
void check_zero(const void *p, size_t n);

/* ---- time, RSS, report (common.c) ------------------------------------------ */

double now(void);                  /* CLOCK_MONOTONIC seconds */
void sleep_seconds(double s);

/*
 * The RSS sampler runs in the calling thread (a sampler thread would make
 * single-threaded workloads multi-threaded, which changes how some
 * allocators behave).  Only the main thread calls these.
 *
 * rss_begin: start the clock and record "base".  rss_poll: cheap, call it
 * often; it looks at the clock every 256 calls and reads RSS every 10 ms
 * (for "peak") and appends to "series" every 50 ms.  rss_sample: read now.
 */
void rss_begin(void);
long rss_sample(void);
void rss_poll_clock(void);
extern unsigned g_poll_count;
static inline void rss_poll(void)
{
    if ((++g_poll_count & 255) == 0)
        rss_poll_clock();
}
void rss_after_free(void);         /* record "after_free" */
void rss_idle(double seconds);     /* sleep, sampling; record "after_idle" */
/*
 * Pss (proportional set size, /proc/self/smaps_rollup) is read at the
 * explicit samples above (rss_begin, rss_sample, rss_after_free, the end of
 * rss_idle) and reported as "pss" beside "rss"; rss_sample also marks the
 * Pss peak as sampled ("pss_peak_sampled"), so workloads call it at their
 * peak.  A meshing allocator maps one physical page at several virtual
 * pages: RSS counts it at each, Pss once.
 *
 * rss_settle: idle on, reading Pss every `interval` seconds, until three
 * reads in a row agree within 0.5% of the peak's growth (at least 256 KiB)
 * or max_seconds have passed; returns the seconds waited (counted as idle).
 * rss_mark: an extra named sample, RSS and Pss, into "marks".
 * pss_sample: Pss now, bytes (-1 if unreadable).
 * report_untimed: seconds of measuring, not the allocator's work, that the
 * runner subtracts from the time ("untimed_seconds").
 */
#define SETTLE_MAX 8.0          /* the workloads' rss_settle: at most 8 s more, */
#define SETTLE_INTERVAL 0.5     /* Pss read every 0.5 s */
double rss_settle(double max_seconds, double interval);
void rss_mark(const char *name);
long pss_sample(void);
void report_untimed(double seconds);
/* the bytes of the distinct FLOOR_PAGE pages among pages[0..m) (page
 * numbers, sorted in place) */
#define FLOOR_PAGE 4096
size_t distinct_pages(uintptr_t *pages, size_t m);
/* sleep-and-sample until *counter reaches target (threads finishing) */
void rss_wait_for(_Atomic int *counter, int target);

/* the report, printed by main as one JSON line */
void report_param_int(const char *key, long v);
void report_param_num(const char *key, double v);
void report_param_str(const char *key, const char *v);
void report_phase(const char *name, double seconds);
void report_ops(uint64_t ops);
__attribute__((format(printf, 1, 2))) void report_check(const char *fmt, ...);
/* an extra top-level key: report_extra("rounds", "%lu", r) */
__attribute__((format(printf, 2, 3))) void report_extra(const char *key, const char *fmt, ...);
void report_print(void);

#endif

/*
 * frees.c: the workload "frees [--threads N]": heavy random frees.
 *
 * Allocates 2.5*10^5 * scale blocks of 1-4 KiB and 10^6 * scale blocks of
 * 16-512 B (interleaved: block i's kind, size and tag are pure functions of
 * i), writes them, then frees 99.9% of them in a random order (a fixed-seed
 * shuffle) and keeps every 1000th block of the allocation order.  What it
 * measures is what giving memory back costs and achieves:
 *
 *   phases.free          wall time of the free phase
 *   free_cpu             CPU seconds (user + system, getrusage of the whole
 *                        process) of the free phase; free_user, free_sys
 *   rss.after_free       RSS right after the frees, rss.after_idle 1 s later
 *                        (and the same in Pss: pss.after_free, ...)
 *   marks.settled        RSS and Pss once Pss stops moving (read every
 *                        0.5 s, at most 8 s more): a meshing allocator's
 *                        background work goes on after the first second
 *   floor                the bytes of the distinct 4 KiB pages the
 *                        survivors occupy (each survivor spans [p, p+size)):
 *                        what an allocator that kept nothing else would
 *                        keep; compare after_idle - base with it
 *
 * --threads N (default 1): a server-like variant.  N threads allocate their
 * share of the blocks (block i belongs to thread i mod N), then the shuffled
 * free order is cut into N slices, one per thread, so most frees are of
 * blocks another thread allocated.  The threads stay alive (parked at a
 * barrier, as a server's idle workers) while after_free and after_idle are
 * read, and end only after the survivors are checked.  The free phase runs
 * from the barrier that starts it to the one that ends it; free_cpu is the
 * process's CPU time between the two.
 *
 * Self-check: every block's pattern is verified before the free phase (so
 * that the phase times the frees alone; phase "verify"), the survivors' again
 * at the end, the verified values summed into "sum"; the same
 * parameters give the same check string under every allocator and any N.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#define FREES_LARGE 2.5e5
#define FREES_SMALL 1e6
#define FREES_KEEP 1000
#define FREES_SALT 0xf4eef4eeull

static struct {
    size_t n, nlarge;
    int nthreads;
    void **ptr;                   /* block i (bookkeeping memory) */
    uint32_t *order;              /* the indices to free, shuffled */
    size_t nfree;
    pthread_barrier_t phase;      /* the threads and the main thread */
} G;

static inline uint64_t blk_hash(size_t i) { return mix64(FREES_SALT + i); }

/* Block i is large when it is where the large blocks' share of 0..i steps
 * up: exactly nlarge of the n blocks, spread evenly. */
static inline bool blk_large(size_t i)
{
    return (i + 1) * G.nlarge / G.n > i * G.nlarge / G.n;
}

static inline size_t blk_size(size_t i)
{
    uint64_t h = blk_hash(i);
    return blk_large(i) ? 1024 + (size_t)below(h, 3073) : 16 + (size_t)below(h, 497);
}

static inline bool blk_kept(size_t i) { return i % FREES_KEEP == 0; }

static void alloc_share(int t)
{
    for (size_t i = (size_t)t; i < G.n; i += (size_t)G.nthreads) {
        size_t sz = blk_size(i);
        void *p = xmalloc(sz);
        fill_block(p, sz, blk_hash(i));
        G.ptr[i] = p;
    }
}

static void free_slice(int t)
{
    size_t lo = G.nfree * (size_t)t / (size_t)G.nthreads;
    size_t hi = G.nfree * (size_t)(t + 1) / (size_t)G.nthreads;
    for (size_t k = lo; k < hi; k++)
        free(G.ptr[G.order[k]]);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    alloc_share(t);
    pthread_barrier_wait(&G.phase);     /* allocated */
    pthread_barrier_wait(&G.phase);     /* free phase starts */
    free_slice(t);
    pthread_barrier_wait(&G.phase);     /* free phase ends */
    pthread_barrier_wait(&G.phase);     /* measured: exit */
    return NULL;
}

static double cpu_seconds(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return *user + *sys;
}

/* The bytes of the distinct pages [p, p+size) of the survivors touch. */
static size_t survivor_floor(void)
{
    size_t nkeep = (G.n + FREES_KEEP - 1) / FREES_KEEP, m = 0;
    size_t cap = nkeep * (4096 / FLOOR_PAGE + 2);
    uintptr_t *pages = book_alloc(cap * sizeof *pages);
    for (size_t i = 0; i < G.n; i += FREES_KEEP) {
        uintptr_t p = (uintptr_t)G.ptr[i];
        for (uintptr_t q = p / FLOOR_PAGE; q <= (p + blk_size(i) - 1) / FLOOR_PAGE; q++)
            pages[m++] = q;
    }
    size_t bytes = distinct_pages(pages, m);
    book_free(pages, cap * sizeof *pages);
    return bytes;
}

void run_frees(const opts_t *o)
{
    G.nlarge = scaled(o, FREES_LARGE, 1000);
    G.n = G.nlarge + scaled(o, FREES_SMALL, 4000);
    G.nthreads = o->threads;
    if (G.n > UINT32_MAX)
        die("too many blocks (%zu): lower --scale", G.n);
    size_t nkeep = (G.n + FREES_KEEP - 1) / FREES_KEEP;
    G.nfree = G.n - nkeep;

    rss_begin();
    G.ptr = book_alloc(G.n * sizeof *G.ptr);
    G.order = book_alloc(G.nfree * sizeof *G.order);
    /* the free order: every block but the kept ones, shuffled (Fisher-Yates) */
    size_t m = 0;
    for (size_t i = 0; i < G.n; i++)
        if (!blk_kept(i))
            G.order[m++] = (uint32_t)i;
    rng_t rng = rng_seed(FREES_SALT);
    for (size_t k = G.nfree; k > 1; k--) {
        size_t j = (size_t)rng_below(&rng, k);
        uint32_t x = G.order[k - 1];
        G.order[k - 1] = G.order[j];
        G.order[j] = x;
    }

    pthread_t *tid = NULL;
    double t = now();
    if (G.nthreads == 1) {
        alloc_share(0);
    } else {
        if (pthread_barrier_init(&G.phase, NULL, (unsigned)G.nthreads + 1))
            die("pthread_barrier_init failed");
        tid = book_alloc((size_t)G.nthreads * sizeof *tid);
        for (int i = 0; i < G.nthreads; i++)
            if (pthread_create(&tid[i], NULL, worker, (void *)(intptr_t)i))
                die("pthread_create failed");
        pthread_barrier_wait(&G.phase);
    }
    report_phase("alloc", now() - t);
    rss_sample();
    size_t floor = survivor_floor();
    /* verified before the free phase, so that it times the frees alone */
    uint64_t sum = 0;
    t = now();
    for (size_t k = 0; k < G.nfree; k++) {
        size_t i = G.order[k];
        sum += check_block(G.ptr[i], blk_size(i), blk_hash(i));
    }
    report_phase("verify", now() - t);

    double u0, s0, u1, s1;
    double c0 = cpu_seconds(&u0, &s0);
    t = now();
    if (G.nthreads == 1) {
        free_slice(0);
    } else {
        pthread_barrier_wait(&G.phase);
        pthread_barrier_wait(&G.phase);
    }
    double wall = now() - t;
    double c1 = cpu_seconds(&u1, &s1);
    report_phase("free", wall);
    book_free(G.order, G.nfree * sizeof *G.order);
    rss_after_free();
    rss_idle(1.0);
    /* then on until Pss settles (a meshing allocator's background work) */
    rss_settle(SETTLE_MAX, SETTLE_INTERVAL);
    rss_mark("settled");

    if (G.nthreads > 1) {
        pthread_barrier_wait(&G.phase);
        for (int i = 0; i < G.nthreads; i++) {
            pthread_join(tid[i], NULL);
        }
        book_free(tid, (size_t)G.nthreads * sizeof *tid);
        pthread_barrier_destroy(&G.phase);
    }
    t = now();
    for (size_t i = 0; i < G.n; i += FREES_KEEP) {
        sum += check_block(G.ptr[i], blk_size(i), blk_hash(i));
        free(G.ptr[i]);
    }
    report_phase("check", now() - t);
    book_free(G.ptr, G.n * sizeof *G.ptr);

    report_extra("free_cpu", "%.6f", c1 - c0);
    report_extra("free_user", "%.6f", u1 - u0);
    report_extra("free_sys", "%.6f", s1 - s0);
    report_extra("floor", "%zu", floor);
    report_check("sum=%016llx n=%zu large=%zu live=%zu", (unsigned long long)sum, G.n, G.nlarge, nkeep);
    report_ops(G.n + G.nfree);
}

/* test_trace.c -- the in-process tracing API (neap_trace.h), one section
 * per argv[1]:
 *
 *   api        start/stop/is_tracing/limits, traced memory and its peak,
 *              reset_peak, clear_traces, get_object_traceback and size, every
 *              allocation function (malloc, calloc, realloc, aligned, posix
 *              memalign), frees forgetting traces, errors (a mark
 *              without a NEAP_TRACE stream)
 *   traceback  the stack recorded names the allocating function and its
 *              callers (frame pointers: this file is built with them)
 *   sampled    Poisson sampling by bytes: the estimates of traced memory are
 *              unbiased, for small and for large allocations
 *   grow       sampled reallocs growing large and huge blocks: only the
 *              growth is sampled, the estimates stay unbiased, each site
 *              is credited with the bytes it asked for, and the traces
 *              follow the blocks that move
 *   unwind     (run with NEAP_TRACE_UNWIND=1) the DWARF unwinder's stacks,
 *              and its cache of them: two callers at the same depth of the
 *              stack, taking turns, each get their own stack
 *   threads    4 threads allocating, growing and freeing each other's blocks while
 *              tracing starts, stops and clears: the traced memory comes back
 *              to what is live (run under TSan too)
 *   newthread  threads started while tracing is on: exact tracing records
 *              each one's allocations from its first; sampling samples a
 *              new thread's first allocations no more than any others
 *   fork       a child forked while other threads trace keeps working
 *   stream     (run with NEAP_TRACE=FILE) the stream: marks from 4 threads
 *              at once and one asked for through a request file, as
 *              `neap mark` does (taken and removed by the trace's thread);
 *              snapshots need a table (neap_trace_start makes one)
 *   bounds     a thread's stack bounds cannot be read (the C library's
 *              read allocates, and fails near a memory limit): no frame
 *              walk leaves the stack, even up a frame record that points
 *              out of it, allocations are still traced, and the bounds are
 *              read again later (each case in a child, from main and from
 *              a thread)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "neap_test.h"
#include "neap_trace.h"

static size_t traced_now(void) {
    size_t cur, peak;
    neap_trace_get_traced_memory(&cur, &peak);
    return cur;
}

static void *volatile sink;

static void test_api(void) {
    CHECK(!neap_trace_is_tracing());
    /* a mark needs a NEAP_TRACE stream, which this process has not */
    errno = 0;
    CHECK(neap_trace_mark("nothing to mark") == -1 && errno == ENOENT);
    CHECK(neap_trace_start(0) == -1 && errno == EINVAL);
    CHECK(neap_trace_start(NEAP_TRACE_MAX_FRAMES + 1) == -1 && errno == EINVAL);
    void *before = malloc(100);
    CHECK(neap_trace_start(5) == 0);
    CHECK(neap_trace_is_tracing());
    CHECK(neap_trace_get_traceback_limit() == 5);
    CHECK(neap_trace_get_sample_interval() == 0);
    CHECK(traced_now() == 0);
    CHECK(neap_trace_get_object_size(before) == 0);

    void *a = malloc(100);
    void *b = calloc(10, 30);
    void *c = aligned_alloc(256, 1000);
    void *d = NULL;
    CHECK(posix_memalign(&d, 64, 5000) == 0);
    void *e = malloc(3 << 20); /* huge */
    CHECK(neap_trace_get_object_size(a) == 100);
    CHECK(neap_trace_get_object_size(b) == 300);
    CHECK(neap_trace_get_object_size(c) == 1000);
    CHECK(neap_trace_get_object_size(d) == 5000);
    CHECK(neap_trace_get_object_size(e) == (size_t)3 << 20);
    size_t total = 100 + 300 + 1000 + 5000 + ((size_t)3 << 20);
    CHECKF(traced_now() == total, "%zu != %zu", traced_now(), total);

    /* realloc: the old trace goes, the new size is traced (moved or not) */
    a = realloc(a, 50);
    CHECK(neap_trace_get_object_size(a) == 50);
    a = realloc(a, 20000);
    CHECK(neap_trace_get_object_size(a) == 20000);
    total += 20000 - 100;
    CHECK(traced_now() == total);

    size_t cur, peak;
    neap_trace_get_traced_memory(&cur, &peak);
    CHECK(peak >= cur && cur == total);
    free(e);
    total -= (size_t)3 << 20;
    neap_trace_get_traced_memory(&cur, &peak);
    CHECK(cur == total && peak >= total + ((size_t)3 << 20));
    neap_trace_reset_peak();
    neap_trace_get_traced_memory(&cur, &peak);
    CHECK(peak == cur);
    CHECK(neap_trace_get_tracemalloc_memory() > 0);

    /* frees of traced blocks of every kind forget them */
    free(a);
    free(b);
    free(c);
    free(d);
    CHECK(traced_now() == 0);
    CHECK(neap_trace_get_object_size(a) == 0);

    /* many small blocks in a few pools: their frees leave nothing behind */
    void *v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = malloc(16 + (size_t)(i % 7) * 16);
    for (int i = 0; i < 1000; i += 2)
        free(v[i]);
    size_t want = 0;
    for (int i = 1; i < 1000; i += 2)
        want += 16 + (size_t)(i % 7) * 16;
    CHECK(traced_now() == want);

    /* clear_traces forgets them but keeps tracing */
    neap_trace_clear_traces();
    CHECK(traced_now() == 0 && neap_trace_is_tracing());
    CHECK(neap_trace_get_object_size(v[1]) == 0);
    for (int i = 1; i < 1000; i += 2)
        free(v[i]);
    CHECK(traced_now() == 0);
    void *f = malloc(77);
    CHECK(neap_trace_get_object_size(f) == 77);

    /* stop forgets everything; frees after it are plain */
    neap_trace_stop();
    CHECK(!neap_trace_is_tracing());
    CHECK(neap_trace_get_object_size(f) == 0);
    free(f);
    void *g = malloc(10);
    CHECK(neap_trace_get_object_size(g) == 0);
    free(g);
    free(before);

    /* a failed allocation traces nothing */
    CHECK(neap_trace_start(1) == 0);
    void *h = malloc(test_launder_size(SIZE_MAX / 2));
    CHECK(h == NULL);
    CHECK(traced_now() == 0);
    /* and the allocations after it are traced still */
    void *k = malloc(10);
    CHECK(neap_trace_get_object_size(k) == 10);
    free(k);
    h = calloc(test_launder_size(SIZE_MAX / 4), 2);
    CHECK(h == NULL);
    k = malloc(12);
    CHECK(neap_trace_get_object_size(k) == 12);
    free(k);
    neap_trace_stop();
}

/* The allocation sites: not inlined, not tail-calling malloc. */
void *site_inner(size_t n);
void *site_outer(size_t n);

__attribute__((noinline)) void *site_inner(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
__attribute__((noinline)) void *site_outer(size_t n) {
    void *p = site_inner(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

static int frame_in(uintptr_t pc, void *fn) {
    Dl_info a, b;
    if (!dladdr((void *)pc, &a) || !dladdr(fn, &b))
        return 0;
    return a.dli_saddr == b.dli_saddr && a.dli_saddr != NULL;
}

void test_traceback(void);

void test_traceback(void) {
    CHECK(neap_trace_start(10) == 0);
    void *p = site_outer(123);
    neap_traceback_t tb;
    CHECK(neap_trace_get_object_traceback(p, &tb) == 1);
    CHECKF(tb.nframe >= 3, "%zu frames", tb.nframe);
    CHECK(frame_in(tb.frame[0], (void *)site_inner));
    CHECK(frame_in(tb.frame[1], (void *)site_outer));
    CHECK(frame_in(tb.frame[2], (void *)test_traceback));
    /* the same site gives the same (interned) stack */
    void *q = site_outer(5);
    neap_traceback_t tb2;
    CHECK(neap_trace_get_object_traceback(q, &tb2) == 1);
    CHECK(tb2.nframe == tb.nframe && tb2.frame[0] == tb.frame[0] && tb2.frame[1] == tb.frame[1]);
    free(p);
    free(q);
    CHECK(neap_trace_get_object_traceback(p, &tb) == 0);
    /* the limit holds */
    CHECK(neap_trace_start(1) == 0);
    p = site_outer(9);
    CHECK(neap_trace_get_object_traceback(p, &tb) == 1 && tb.nframe == 1);
    CHECK(frame_in(tb.frame[0], (void *)site_inner));
    free(p);
    neap_trace_stop();
}

/* Sampling: the estimate of live bytes must be close to the truth, for a
 * mix of sizes below and above the interval. */
static void test_sampled(void) {
    size_t interval = 8192;
    CHECK(neap_trace_start_sampled(1, interval) == 0);
    CHECK(neap_trace_get_sample_interval() == interval);
    size_t n = (size_t)(200000 * test_scale());
    void **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    neap_trace_clear_traces(); /* v itself may be sampled */
    size_t truth = 0;
    uint64_t rng = xs_seed(7);
    for (size_t i = 0; i < n; i++) {
        size_t s = (xs_next(&rng) % 8 == 0) ? xs_range(&rng, 4096, 65536) : xs_range(&rng, 16, 256);
        v[i] = malloc(s);
        CHECK(v[i] != NULL);
        truth += s;
    }
    double est = (double)traced_now();
    CHECKF(est > 0.93 * (double)truth && est < 1.07 * (double)truth, "estimate %.0f, truth %zu",
           est, truth);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    CHECKF(traced_now() == 0, "%zu left", traced_now());

    /* blocks grown by realloc, 64 bytes at a time up to 4 KiB: each realloc
     * a new allocation, sampled by its size: the estimate of what is live
     * stays unbiased */
    size_t m = (size_t)(20000 * test_scale());
    for (size_t i = 0; i < m; i++)
        v[i] = NULL;
    for (size_t step = 1; step <= 64; step++) {
        for (size_t i = 0; i < m; i++) {
            v[i] = realloc(v[i], step * 64);
            CHECK(v[i] != NULL);
        }
    }
    est = (double)traced_now();
    truth = m * 4096;
    CHECKF(est > 0.9 * (double)truth && est < 1.1 * (double)truth, "realloc: estimate %.0f, truth %zu",
           est, truth);
    size_t sampled = 0;
    for (size_t i = 0; i < m; i++)
        sampled += neap_trace_get_object_size(v[i]) != 0;
    /* p(4096 bytes at 8192) = 0.39: far from every block */
    CHECKF(sampled < m / 2, "%zu of %zu grown blocks sampled", sampled, m);
    for (size_t i = 0; i < m; i++)
        free(v[i]);
    CHECKF(traced_now() == 0, "%zu left after the reallocs", traced_now());
    free(v);
    neap_trace_stop();
    CHECK(neap_trace_get_sample_interval() == 0);
}

/* Sampled reallocs that grow large and huge blocks a little at a time. */
void *grow_first(size_t n);
void *grow_more(void *p, size_t n);
__attribute__((noinline)) void *grow_first(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}
__attribute__((noinline)) void *grow_more(void *p, size_t n) {
    void *q = realloc(p, n);
    __asm__ volatile("" ::: "memory");
    return q;
}

static void test_grow(void) {
    size_t interval = 32768, first = 64 * 1024;
    size_t m = (size_t)(48 * test_scale()) + 16;
    void **v = calloc(m, sizeof *v);
    size_t *len = calloc(m, sizeof *len), *goal = calloc(m, sizeof *goal);
    CHECK(v != NULL && len != NULL && goal != NULL);
    CHECK(neap_trace_start_sampled(4, interval) == 0);
    uint64_t rng = xs_seed(11);
    size_t reallocs = 0, truth_first = 0, truth_grown = 0;
    for (size_t i = 0; i < m; i++) {
        v[i] = grow_first(first);
        CHECK(v[i] != NULL);
        memset(v[i], (int)i, 16);
        len[i] = first;
        /* half stay large (up to 1 MiB), half become huge */
        goal[i] = i % 2 ? xs_range(&rng, 256 * 1024, 1000 * 1024) : xs_range(&rng, 1100 * 1024, 3 << 20);
        truth_first += first;
    }
    /* round-robin, so that blocks get in each other's way and move */
    for (int more = 1; more;) {
        more = 0;
        for (size_t i = 0; i < m; i++) {
            if (len[i] >= goal[i])
                continue;
            size_t n = len[i] + xs_range(&rng, 64, 1024);
            if (n > goal[i])
                n = goal[i];
            v[i] = grow_more(v[i], n);
            CHECK(v[i] != NULL);
            CHECKF(((unsigned char *)v[i])[15] == (unsigned char)i, "block %zu lost its bytes", i);
            len[i] = n;
            reallocs++;
            more = 1;
        }
    }
    for (size_t i = 0; i < m; i++)
        truth_grown += len[i] - first;
    double truth = (double)(truth_first + truth_grown), est = (double)traced_now();
    CHECKF(est > 0.85 * truth && est < 1.15 * truth, "estimate %.0f, truth %.0f", est, truth);
    /* each site gets its bytes: the first malloc, then the growth */
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECK(s != NULL);
    size_t traces = neap_snapshot_count(s);
    double by_first = 0, by_more = 0;
    const neap_statistic_t *st;
    size_t n;
    CHECK(neap_snapshot_statistics(s, NEAP_KEY_TRACEBACK, 0, &st, &n) == 0);
    for (size_t i = 0; i < n; i++) {
        if (frame_in(st[i].frame[0].pc, (void *)grow_first))
            by_first += (double)st[i].size;
        else if (frame_in(st[i].frame[0].pc, (void *)grow_more))
            by_more += (double)st[i].size;
    }
    CHECKF(by_first > 0.7 * (double)truth_first && by_first < 1.3 * (double)truth_first,
           "malloc's site: %.0f, truth %zu", by_first, truth_first);
    CHECKF(by_more > 0.85 * (double)truth_grown && by_more < 1.15 * (double)truth_grown,
           "realloc's site: %.0f, truth %zu", by_more, truth_grown);
    /* about a sample per interval of growth, not one per realloc (the
     * reallocs of blocks this size would be sampled nearly every time) */
    CHECKF(traces < (size_t)(truth / (double)interval) * 2 + m, "%zu traces for %zu reallocs",
           traces, reallocs);
    CHECKF(reallocs > 10 * traces, "%zu traces for %zu reallocs", traces, reallocs);
    neap_snapshot_free(s);
    for (size_t i = 0; i < m; i++)
        free(v[i]);
    CHECKF(traced_now() == 0, "%zu left", traced_now());
    neap_trace_stop();
    free(v);
    free(len);
    free(goal);
}

/* Two callers of one allocating function, alike to the byte: the same
 * return address into unwind_common, at the same depth of the stack. */
void *unwind_common(size_t n);
void *unwind_left(size_t n);
void *unwind_right(size_t n);
__attribute__((noinline)) void *unwind_common(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}
__attribute__((noinline)) void *unwind_left(size_t n) {
    void *p = unwind_common(n);
    __asm__ volatile("" ::: "memory");
    return p;
}
__attribute__((noinline)) void *unwind_right(size_t n) {
    void *p = unwind_common(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

void test_unwind(void);

void test_unwind(void) {
    CHECK(neap_trace_start(8) == 0);
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = (i % 2 ? unwind_right : unwind_left)(100 + (size_t)i);
    for (int i = 0; i < N; i++) {
        neap_traceback_t tb;
        CHECK(neap_trace_get_object_traceback(p[i], &tb) == 1);
        CHECKF(tb.nframe >= 3, "block %d: %zu frames", i, tb.nframe);
        CHECK(frame_in(tb.frame[0], (void *)unwind_common));
        CHECKF(frame_in(tb.frame[1], (void *)(i % 2 ? unwind_right : unwind_left)),
               "block %d: the stack of the other caller", i);
        CHECK(frame_in(tb.frame[2], (void *)test_unwind));
        free(p[i]);
    }
    neap_trace_stop();
}

/* --- threads -------------------------------------------------------------- */
#define NT 4
#define SLOTS 256

static _Atomic(void *) slots[SLOTS];
static _Atomic int stop_flag;

static void *thread_main(void *arg) {
    uint64_t rng = xs_seed((uint64_t)(uintptr_t)arg);
    size_t rounds = (size_t)(300000 * test_scale());
    for (size_t r = 0; r < rounds; r++) {
        size_t i = (size_t)(xs_next(&rng) % SLOTS);
        void *p = malloc(xs_range(&rng, 8, (xs_next(&rng) % 64) ? 512 : 70000));
        CHECK(p != NULL);
        void *old = atomic_exchange(&slots[i], p);
        /* another thread's block, grown (sampled reallocs keep its traces) */
        if (old != NULL && xs_next(&rng) % 8 == 0) {
            old = realloc(old, xs_range(&rng, 40000, 300000));
            CHECK(old != NULL);
        }
        free(old);
    }
    return NULL;
}

static void *controller(void *arg) {
    (void)arg;
    uint64_t rng = xs_seed(99);
    while (!atomic_load(&stop_flag)) {
        switch (xs_next(&rng) % 4) {
        case 0: CHECK(neap_trace_start(4) == 0); break;
        case 1: CHECK(neap_trace_start_sampled(2, 4096) == 0); break;
        case 2: neap_trace_clear_traces(); break;
        default: neap_trace_stop(); break;
        }
        usleep(2000);
    }
    return NULL;
}

static void test_threads(void) {
    pthread_t t[NT], ctl;
    CHECK(pthread_create(&ctl, NULL, controller, NULL) == 0);
    for (int i = 0; i < NT; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)(i + 1)) == 0);
    for (int i = 0; i < NT; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stop_flag, 1);
    pthread_join(ctl, NULL);
    /* exact tracing from a clean start: then free everything */
    CHECK(neap_trace_start(1) == 0);
    neap_trace_clear_traces();
    for (int i = 0; i < SLOTS; i++) {
        free(atomic_exchange(&slots[i], NULL));
    }
    CHECK(traced_now() == 0);
    pthread_create(&t[0], NULL, thread_main, (void *)(uintptr_t)42);
    pthread_join(t[0], NULL);
    size_t live = 0;
    for (int i = 0; i < SLOTS; i++) {
        void *p = atomic_load(&slots[i]);
        live += neap_trace_get_object_size(p);
    }
    CHECKF(traced_now() == live, "traced %zu, live traced blocks %zu", traced_now(), live);
    for (int i = 0; i < SLOTS; i++)
        free(atomic_exchange(&slots[i], NULL));
    CHECK(traced_now() == 0);
    neap_trace_stop();
}

/* --- newthread ------------------------------------------------------------ */
#define NEWT 8
#define NEWT_BLOCKS 100 /* of 1000 bytes: a new thread's first 100 KB */

static void *newthread_main(void *arg) {
    void **v = arg;
    for (int i = 0; i < NEWT_BLOCKS; i++)
        v[i] = malloc(1000);
    return NULL;
}

/* Starts NEWT threads, each making the NEWT_BLOCKS blocks of v[its index],
 * one after another; returns how many of the blocks are traced. */
static size_t newthread_run(void *v[NEWT][NEWT_BLOCKS]) {
    for (int i = 0; i < NEWT; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, newthread_main, v[i]) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    size_t traced = 0;
    for (int i = 0; i < NEWT; i++) {
        for (int j = 0; j < NEWT_BLOCKS; j++) {
            CHECK(v[i][j] != NULL);
            traced += neap_trace_get_object_size(v[i][j]) != 0;
        }
    }
    return traced;
}

static void newthread_free(void *v[NEWT][NEWT_BLOCKS]) {
    for (int i = 0; i < NEWT; i++)
        for (int j = 0; j < NEWT_BLOCKS; j++)
            free(v[i][j]);
}

static void test_newthread(void) {
    static void *v[NEWT][NEWT_BLOCKS];
    /* exact: every block, though each thread allocates less than
     * NEAP_TRACE_LATENCY bytes in all */
    CHECK(neap_trace_start(1) == 0);
    size_t traced = newthread_run(v);
    CHECKF(traced == NEWT * NEWT_BLOCKS, "%zu of %d blocks of new threads traced", traced,
           NEWT * NEWT_BLOCKS);
    for (int i = 0; i < NEWT; i++)
        for (int j = 0; j < NEWT_BLOCKS; j++)
            CHECK(neap_trace_get_object_size(v[i][j]) == 1000);
    newthread_free(v);
    neap_trace_stop();
    /* sampled, one sample per 1 TiB: a block of 1000 bytes is sampled with
     * p = 1e-9, a new thread's first one too (800 blocks: none, but for
     * odds of 1 in a million) */
    CHECK(neap_trace_start_sampled(1, (size_t)1 << 40) == 0);
    traced = newthread_run(v);
    CHECKF(traced == 0, "%zu of %d blocks of new threads sampled", traced, NEWT * NEWT_BLOCKS);
    newthread_free(v);
    neap_trace_stop();
}

static void *fork_worker(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        void *p = malloc(64);
        sink = p;
        free(p);
    }
    return NULL;
}

static void test_fork(void) {
    CHECK(neap_trace_start(3) == 0);
    pthread_t t;
    atomic_store(&stop_flag, 0);
    CHECK(pthread_create(&t, NULL, fork_worker, NULL) == 0);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            void *p = malloc(1000);
            int ok = p != NULL && neap_trace_get_object_size(p) == 1000;
            free(p);
            _exit(ok ? 0 : 1);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    atomic_store(&stop_flag, 1);
    pthread_join(t, NULL);
    neap_trace_stop();
}

/* trace.c's test hook (traceimpl.h): how the stack-bound reads fail from
 * now on: 0 none, 1 the C library's, 2 every way of reading them. */
void _neap_trace_fail_bounds(int how);

void *site_wild(size_t n);

/* An allocation whose caller's frame record lies: its saved frame pointer
 * points above every stack, out of the address space, as a register that
 * holds anything but a frame pointer does in code built without them.  A
 * walk that keeps to the thread's stack stops there; one that follows it
 * dies. */
__attribute__((noinline)) void *site_wild(size_t n) {
    /* volatile: the compiler would drop the restoring store, the frame
     * being about to go */
    volatile uintptr_t *rec = __builtin_frame_address(0);
    uintptr_t saved = rec[0];
    rec[0] = (uintptr_t)1 << 62;
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    rec[0] = saved;
    return p;
}

/* The frames recorded for an allocation by site_outer, checked as far as
 * they go. */
static size_t outer_frames(void) {
    void *p = site_outer(50);
    neap_traceback_t tb;
    CHECK(p != NULL && neap_trace_get_object_traceback(p, &tb) == 1);
    CHECKF(tb.nframe >= 1 && frame_in(tb.frame[0], (void *)site_inner), "%zu frames", tb.nframe);
    if (tb.nframe >= 2)
        CHECK(frame_in(tb.frame[1], (void *)site_outer));
    free(p);
    return tb.nframe;
}

/* In a thread whose stack bounds were not read before the reads began to
 * fail as `how` says (_neap_trace_fail_bounds). */
static void bounds_case(int how) {
    _neap_trace_fail_bounds(how);
    void *p = site_wild(40);
    neap_traceback_t tb;
    CHECK(p != NULL && neap_trace_get_object_traceback(p, &tb) == 1);
    CHECKF(tb.nframe >= 1 && frame_in(tb.frame[0], (void *)site_wild), "%zu frames", tb.nframe);
    free(p);
    if (how == 1) {
        /* the bounds come another way: the whole stack */
        size_t n = outer_frames();
        CHECKF(n >= 3, "%zu frames", n);
        return;
    }
    /* no bounds, no walk: the first frame only */
    size_t n = outer_frames();
    CHECKF(n == 1, "%zu frames", n);
    /* the failure passes (memory comes back): the bounds are read again,
     * and the stacks are whole again */
    _neap_trace_fail_bounds(0);
    int i = 0;
    while (i < 1000 && outer_frames() < 3)
        i++;
    CHECKF(i < 1000, "still %zu frames", outer_frames());
    _neap_trace_fail_bounds(how);
}

static void *bounds_thread(void *arg) {
    int how = (int)(intptr_t)arg;
    _neap_trace_fail_bounds(how);
    /* a new thread is traced from its first allocation (this block is its
     * first capture) */
    free(malloc(NEAP_TRACE_LATENCY + 1));
    bounds_case(how);
    return NULL;
}

static void test_bounds(void) {
    for (int how = 1; how <= 2; how++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            test_failures = 0; /* its status: its own checks' */
            CHECK(neap_trace_start(10) == 0);
            bounds_case(how); /* main's bounds are not read before this */
            pthread_t t;
            CHECK(pthread_create(&t, NULL, bounds_thread, (void *)(intptr_t)how) == 0);
            CHECK(pthread_join(t, NULL) == 0);
            neap_trace_stop();
            _exit(test_status());
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "how %d: the child %s %d", how,
               WIFSIGNALED(st) ? "died of signal" : "exited with",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
}

/* Run with NEAP_TRACE=FILE (CMake's trace_stream test): exact tracing from
 * the start, into the file only; the program's own neap_trace_start turns
 * the table on. */
static void *marker(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        free(site_outer(64));
        CHECK(neap_trace_mark(i % 2 ? "thread mark" : NULL) == 0);
    }
    return NULL;
}

/* Marks: from 4 threads at once, and one asked for by another process
 * (as `neap mark` does: a request beside this process's note, taken by
 * the trace's thread at a tick, removed once written). */
static void stream_marks(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, marker, NULL) == 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    char note[128], req[128], tmp[140];
    snprintf(note, sizeof note, "/tmp/neap-%lu/%ld.trace", (unsigned long)getuid(), (long)getpid());
    snprintf(req, sizeof req, "/tmp/neap-%lu/%ld.mark", (unsigned long)getuid(), (long)getpid());
    snprintf(tmp, sizeof tmp, "%s.test", req);
    /* the note, written by the trace's thread when it starts (60 s at most) */
    int waited = 0;
    while (access(note, F_OK) != 0 && waited++ < 6000) usleep(10000);
    CHECKF(access(note, F_OK) == 0, "no %s", note);
    FILE *f = fopen(tmp, "w");
    CHECK(f != NULL && fputs("asked from outside\n", f) >= 0 && fclose(f) == 0);
    CHECK(rename(tmp, req) == 0);
    waited = 0;
    while (access(req, F_OK) == 0 && waited++ < 6000) usleep(10000);
    CHECKF(access(req, F_OK) != 0, "the request %s was not taken", req);
}

static void test_stream(void) {
    const char *path = getenv("NEAP_TRACE");
    CHECK(path != NULL);
    CHECK(neap_trace_is_tracing());
    stream_marks();
    for (int i = 0; i < 1000; i++)
        free(site_outer(100));
    errno = 0;
    CHECK(neap_trace_take_snapshot() == NULL && errno == ENOTSUP);
    CHECK(strstr(neap_snapshot_error(), "NEAP_TRACE") != NULL);
    CHECK(neap_trace_start(4) == 0);
    void *p = site_outer(77);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECK(s != NULL && neap_snapshot_count(s) >= 1);
    neap_snapshot_free(s);
    CHECK(neap_trace_get_object_size(p) == 77);
    free(p);
    FILE *f = fopen(path, "rb");
    char magic[8] = "";
    CHECK(f != NULL && fread(magic, 1, 8, f) == 8 && memcmp(magic, "NEAPTRC", 8) == 0);
    fclose(f);
}

int main(int argc, char **argv) {
    const char *s = argc > 1 ? argv[1] : "api";
    if (!strcmp(s, "api"))
        test_api();
    else if (!strcmp(s, "traceback"))
        test_traceback();
    else if (!strcmp(s, "sampled"))
        test_sampled();
    else if (!strcmp(s, "grow"))
        test_grow();
    else if (!strcmp(s, "unwind"))
        test_unwind();
    else if (!strcmp(s, "threads"))
        test_threads();
    else if (!strcmp(s, "newthread"))
        test_newthread();
    else if (!strcmp(s, "fork"))
        test_fork();
    else if (!strcmp(s, "stream"))
        test_stream();
    else if (!strcmp(s, "bounds"))
        test_bounds();
    else {
        fprintf(stderr, "unknown section %s\n", s);
        return 2;
    }
    return test_status();
}

/* test_oom.c -- out of memory at every mapping the library makes (label: api).
 *
 * Linked against neap_static (neap_nooverride in sanitizer builds).  Every
 * system call of neap that maps memory goes through src/os/os.c, whose test
 * hook _neap_os_fail_maps(n, every) makes the nth mapping call from then on
 * fail as the kernel refuses one (ENOMEM), and with `every` each one after
 * it too.  A scenario (below: small, medium, large and huge blocks, calloc,
 * realloc growing and shrinking through every tier, aligned blocks, three
 * threads whose blocks the main thread frees, a burst of threads that needs
 * a new chunk of heap structures (untraced only), neap_run_isolated,
 * neap_trim) runs first with the
 * hook only counting, which gives M, the mapping calls it makes; then, for
 * N = 1, 2, ... until N passes every mapping call the scenario makes, twice:
 * with the Nth call failing alone, and with every call from the Nth on
 * failing.  Each run is a forked child, so each starts from the same state.
 * The child checks:
 *   - an allocation that fails returns NULL with errno ENOMEM
 *     (posix_memalign: ENOMEM), a failed realloc leaves its block as it was;
 *     with one mapping failing, at most one call fails;
 *   - every block keeps its fill pattern until freed (no overlap, no
 *     corruption), calloc's blocks are zero, alignments hold;
 *   - once mappings succeed again, every tier allocates again, in this
 *     thread and in a new one;
 *   - after everything is freed and neap_trim: the live bytes, large and
 *     huge blocks and pools are as at the start, nothing huge is cached,
 *     and the bytes mapped less the bytes unmapped through os.c since the
 *     hook was armed equal the change in the library's own account of its
 *     mappings (bytes_mapped, and the tracing tables') but for the heap
 *     structures' 64 KiB chunks, which are never given back: a mapping lost
 *     on a failure path shows there;
 *   - it exits 0: a crash, an abort or a failed check ends it otherwise,
 *     and a hang is ended by SIGALRM (a watchdog of seconds, far above the
 *     run's time, plus a CPU limit) and reported as such.
 * Section `plain` runs the sweep untraced; section `traced` (builds with
 * tracing) starts, in each child after the hook is armed, exact tracing to
 * a file in a temporary directory as NEAP_TRACE=FILE does at start-up, so
 * that the trace stream's own mappings (its buffers, tables, the read of
 * /proc/self/maps) fail too, and ends the stream as the process's exit
 * would.  A child's output goes to a file, shown when it fails.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap.h"
#if NEAP_TEST_TRACING
#include "neap_trace.h"
#endif
#include "neap_test.h"

/* the library's test hooks (src/os/os.h, src/trace/traceimpl.h) */
void _neap_os_fail_maps(uint64_t n, bool every);
void _neap_os_fail_maps_stop(void);
void _neap_os_fail_maps_off(void);
void _neap_os_fail_maps_count(uint64_t *calls, uint64_t *failed, int64_t *net_bytes);
#if NEAP_TEST_TRACING
void _neap_trace_env_start(void);
void _neap_trace_env_exit(void);
#endif

#define NTHREADS 3
#define HEAP_CHUNK (64 * KiB) /* heap.c: heap structures come in chunks of this */
#define MAXBLK 16384

/* What a child reports to the parent (a shared mapping). */
struct report {
    uint64_t calls;  /* mapping calls the scenario made before mappings succeed again */
    uint64_t failed; /* of them failed */
    uint64_t nulls;  /* allocation calls that failed */
    int done;        /* the child got to its end */
};
static struct report *rep;

static bool traced;             /* the child streams a trace */
static char trace_dir[256];     /* the temporary directory */

/* ---------------------------------------------------------------------------
 * The child's blocks: each with its size and fill tag.
 * ------------------------------------------------------------------------- */
struct blk {
    void *p;
    size_t size;
    uint64_t tag;
};
static struct blk blks[MAXBLK];
static size_t nblk;
static uint64_t next_tag = 1;
static pthread_mutex_t blk_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t nulls;

/* An allocation call's result: true when p is a block; a NULL must come
 * with errno ENOMEM. */
static bool
got(void *p, int err, const char *what, size_t size)
{
    if (p != NULL)
        return true;
    CHECKF(err == ENOMEM, "%s(%zu) = NULL with errno %d, expected ENOMEM", what, size, err);
    nulls++;
    return false;
}

/* Blocks above SPARSE_MIN are filled and checked in samples: 4 KiB every
 * SPARSE_STRIDE bytes, each at its own place in the block's pattern (so
 * that a prefix of a block is checked as the block is); a whole fill of
 * every one would make each run many times slower. */
#define SPARSE_MIN (64 * KiB)
#define SPARSE_STRIDE (256 * KiB)

static void
fill(void *p, size_t size, uint64_t tag)
{
    if (size <= SPARSE_MIN) {
        pat_fill(p, size, tag);
        return;
    }
    for (size_t o = 0; o < size; o += SPARSE_STRIDE)
        pat_fill((char *)p + o, size - o < 4 * KiB ? size - o : 4 * KiB, tag ^ o);
}

/* The first wrong byte among the first n of a block filled with
 * fill(p, filled, tag) (n <= filled), or (size_t)-1. */
static size_t
fill_bad(const void *p, size_t filled, size_t n, uint64_t tag)
{
    if (filled <= SPARSE_MIN)
        return pat_check(p, n, tag);
    for (size_t o = 0; o < n; o += SPARSE_STRIDE) {
        size_t len = filled - o < 4 * KiB ? filled - o : 4 * KiB;
        size_t bad = pat_check((const char *)p + o, len < n - o ? len : n - o, tag ^ o);
        if (bad != (size_t)-1)
            return o + bad;
    }
    return (size_t)-1;
}
#define CHECK_PREFIX(p, filled, n, tag)                                                            \
    do {                                                                                           \
        size_t bad_ = fill_bad((p), (filled), (n), (tag));                                         \
        CHECKF(bad_ == (size_t)-1, "block %p (%zu bytes, tag %llx) corrupt at offset %zu",         \
               (void *)(p), (size_t)(n), (unsigned long long)(tag), bad_);                         \
    } while (0)
#define CHECK_FILL(p, size, tag) CHECK_PREFIX(p, size, size, tag)

/* Fills p and records it (under the lock: threads hand blocks over). */
static void
keep(void *p, size_t size)
{
    CHECKF(test_aligned(p, 16), "block %p of %zu bytes", p, size);
    CHECKF(neap_usable_size(p) >= size, "usable %zu < %zu", neap_usable_size(p), size);
    pthread_mutex_lock(&blk_lock);
    uint64_t tag = next_tag++;
    CHECK(nblk < MAXBLK);
    blks[nblk].p = p;
    blks[nblk].size = size;
    blks[nblk].tag = tag;
    nblk++;
    pthread_mutex_unlock(&blk_lock);
    fill(p, size, tag);
}

static void
alloc_keep(size_t size)
{
    errno = 0;
    void *p = malloc(size);
    if (got(p, errno, "malloc", size))
        keep(p, size);
}

/* Checks and frees block i (the last one takes its place). */
static void
drop(size_t i)
{
    CHECK_FILL(blks[i].p, blks[i].size, blks[i].tag);
    free(blks[i].p);
    blks[i] = blks[--nblk];
}

static void
check_all(void)
{
    for (size_t i = 0; i < nblk; i++)
        CHECK_FILL(blks[i].p, blks[i].size, blks[i].tag);
}

/* ---------------------------------------------------------------------------
 * The scenario's parts.
 * ------------------------------------------------------------------------- */
/* Blocks of every tier: large first, so that the small and medium ones
 * need an arena of their own beyond the one the child inherited. */
static void
tiers(uint64_t *s, size_t nmedium, size_t nsmall)
{
    for (size_t i = 0; i < 4; i++)
        alloc_keep(xs_range(s, 768 * KiB, MiB));
    for (size_t i = 0; i < nmedium; i++)
        alloc_keep(xs_range(s, 513, 32 * KiB));
    for (size_t i = 0; i < nsmall; i++)
        alloc_keep(xs_range(s, 1, 512));
    alloc_keep(2 * MiB + 100);
    alloc_keep(5 * MiB);
}

static void
callocs(void)
{
    static const size_t sizes[] = {16, 700, 40000, 300000, 5 * MiB / 4};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i] / 8;
        errno = 0;
        unsigned char *p = calloc(n, 8);
        if (!got(p, errno, "calloc", n * 8))
            continue;
        for (size_t k = 0; k < n * 8; k += k < 4096 ? 1 : 64 * KiB + 61)
            CHECKF(p[k] == 0, "calloc(%zu, 8) byte %zu is %d", n, k, p[k]);
        CHECK(p[n * 8 - 1] == 0);
        keep(p, n * 8);
    }
}

/* One block grown from 24 bytes to 1.5 MiB (x4 a step) and shrunk back, its contents
 * checked at every step; a failed step leaves the block as it was. */
static void
realloc_chain(void)
{
    size_t size = 24;
    uint64_t tag = 0xabcdef;
    errno = 0;
    char *p = malloc(size);
    if (!got(p, errno, "malloc", size))
        return;
    fill(p, size, tag);
    for (int dir = 0; dir < 2; dir++) {
        for (;;) {
            size_t want = dir == 0 ? size * 4 : size / 4;
            if (dir == 0 && want > 3 * MiB)
                break;
            if (dir == 1 && want < 100)
                break;
            errno = 0;
            char *q = realloc(p, want);
            if (!got(q, errno, "realloc", want)) {
                CHECK(neap_owns(p));
                CHECK_FILL(p, size, tag);
                break; /* this direction ends here */
            }
            CHECK_PREFIX(q, size, want < size ? want : size, tag);
            p = q;
            size = want;
            fill(p, size, tag);
        }
    }
    keep(p, size);
}

static void
aligned(uint64_t *s)
{
    static const size_t aligns[] = {32, 256, 4096, 64 * KiB, MiB, 8 * MiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = aligns[i] <= 4096 ? xs_range(s, 1, 3000) : aligns[i] + 4096;
        errno = 0;
        void *p = aligned_alloc(aligns[i], size);
        if (got(p, errno, "aligned_alloc", size)) {
            CHECKF(test_aligned(p, aligns[i]), "aligned_alloc(%zu) = %p", aligns[i], p);
            keep(p, size);
        }
    }
    void *p = NULL;
    int err = posix_memalign(&p, 2 * MiB, 3 * MiB);
    if (got(err == 0 ? p : NULL, err, "posix_memalign", 3 * MiB)) {
        CHECK(test_aligned(p, 2 * MiB));
        keep(p, 3 * MiB);
    } else {
        CHECK(p == NULL); /* untouched on error */
    }
}

/* Huge blocks freed into the cache and taken again, one grown in place. */
static void
huge(void)
{
    errno = 0;
    void *a = malloc(6 * MiB);
    if (got(a, errno, "malloc", 6 * MiB)) {
        fill(a, 6 * MiB, 77);
        CHECK_FILL(a, 6 * MiB, 77);
        free(a);
    }
    alloc_keep(9 * MiB); /* a cached mapping grown, or a new one */
    errno = 0;
    void *b = malloc(3 * MiB / 2);
    if (got(b, errno, "malloc", 3 * MiB / 2)) {
        fill(b, 3 * MiB / 2, 78);
        errno = 0;
        void *c = realloc(b, 3 * MiB);
        if (got(c, errno, "realloc", 3 * MiB)) {
            CHECK_FILL(c, 3 * MiB / 2, 78);
            b = c;
        } else {
            CHECK_FILL(b, 3 * MiB / 2, 78);
        }
        free(b);
    }
}

static pthread_barrier_t start_line;

/* A thread: blocks of every tier, half freed here, the rest left to the
 * main thread (freed after this thread has ended). */
static void *
worker(void *arg)
{
    uint64_t s = xs_seed((uint64_t)(uintptr_t)arg);
    pthread_barrier_wait(&start_line);
    void *mine[64];
    size_t nmine = 0;
    for (size_t i = 0; i < 160; i++) {
        size_t size = i % 40 == 0 ? xs_range(&s, 33 * KiB, 600 * KiB)
                      : i % 10 == 0 ? xs_range(&s, 513, 32 * KiB)
                                    : xs_range(&s, 1, 512);
        if (i == 90)
            size = 3 * MiB;
        errno = 0;
        void *p = malloc(size);
        if (!got(p, errno, "malloc", size))
            continue;
        if (i % 2 == 0 && nmine < 64) {
            fill(p, size, 1000 + i);
            mine[nmine++] = p;
            CHECK_FILL(p, size, 1000 + i);
        } else {
            keep(p, size);
        }
    }
    for (size_t i = 0; i < nmine; i++)
        free(mine[i]);
    return NULL;
}

static void
threads(void)
{
    pthread_t t[NTHREADS];
    bool ok[NTHREADS];
    pthread_barrier_init(&start_line, NULL, NTHREADS + 1);
    for (size_t i = 0; i < NTHREADS; i++) {
        ok[i] = pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0;
        CHECK(ok[i]); /* the C library maps thread stacks itself: not failed */
    }
    pthread_barrier_wait(&start_line);
    for (size_t i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&start_line);
}

/* A burst of threads alive at once, each allocating a block: more heaps
 * than one chunk of heap structures holds (heap.c maps them 64 KiB at a
 * time, 3 KiB each), so that a new thread's heap needs a mapping.  Small
 * stacks: the C library keeps them all for the next child (see
 * warm_thread_stacks). */
#define NBURST 24
#define BURST_STACK (64 * KiB)
static pthread_barrier_t burst_line;

static void *
burst_one(void *arg)
{
    pthread_barrier_wait(&burst_line);
    errno = 0;
    void *p = malloc(100);
    if (got(p, errno, "malloc", 100))
        keep(p, 100);
    pthread_barrier_wait(&burst_line); /* all alive until each has allocated */
    return arg;
}

static void
burst(void)
{
    pthread_t t[NBURST];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, BURST_STACK);
    pthread_barrier_init(&burst_line, NULL, NBURST);
    for (size_t i = 0; i < NBURST; i++)
        CHECK(pthread_create(&t[i], &attr, burst_one, NULL) == 0);
    for (size_t i = 0; i < NBURST; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&burst_line);
    pthread_attr_destroy(&attr);
}

static long
isolated_fn(void *arg, void *buf, size_t out_size)
{
    (void)arg;
    void *p = malloc(1000);
    if (p == NULL)
        return -1;
    free(p);
    memcpy(buf, "ok", out_size < 2 ? out_size : 2);
    return 2;
}

/* neap_run_isolated: its shared result buffer is a mapping too. */
static void
isolated(void)
{
    char out[8];
    errno = 0;
    long r = neap_run_isolated(isolated_fn, NULL, out, sizeof out);
    if (r == NEAP_ISOLATED_ERROR) {
        CHECKF(errno == ENOMEM, "neap_run_isolated: error with errno %d", errno);
        nulls++;
        return;
    }
    CHECKF(r == 2 && memcmp(out, "ok", 2) == 0, "neap_run_isolated: %s",
           neap_isolated_strerror(r));
}

/* Every tier allocates again: mappings succeed now. */
static void *
again(void *arg)
{
    static const size_t sizes[] = {8, 200, 512, 4000, 32 * KiB, 100 * KiB, MiB, 3 * MiB, 11 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        CHECKF(p != NULL, "malloc(%zu) after the failures", sizes[i]);
        fill(p, sizes[i], 500 + i);
        CHECK_FILL(p, sizes[i], 500 + i);
        free(p);
    }
    void *p = calloc(1, 200 * KiB);
    CHECK(p != NULL);
    free(p);
    p = aligned_alloc(4 * MiB, 5 * MiB);
    CHECK(p != NULL && test_aligned(p, 4 * MiB));
    free(p);
    return arg;
}

/* ---------------------------------------------------------------------------
 * The child.
 * ------------------------------------------------------------------------- */
#if NEAP_TEST_TRACING
static size_t
trace_memory(void)
{
    return neap_trace_get_tracemalloc_memory();
}
#else
static size_t
trace_memory(void)
{
    return 0;
}
#endif

static void
child(uint64_t n, bool every)
{
    uint64_t s = xs_seed(12345);

#if NEAP_TEST_TRACING
    if (traced) {
        /* as the first traced process of a tree names itself (trace.c),
         * before the count starts: the environment's blocks stay */
        char path[320], pid[24];
        snprintf(path, sizeof path, "%s/trace", trace_dir);
        snprintf(pid, sizeof pid, "%ld", (long)getpid());
        CHECK(setenv("NEAP_TRACE", path, 1) == 0 && setenv("NEAP_TRACE_PID", pid, 1) == 0);
        /* tracing looks for a Python interpreter by name; the C library
         * keeps a per-thread buffer once a lookup fails (not the message:
         * the library frees that): made before the count, as the
         * environment's blocks */
        (void)dlsym(RTLD_DEFAULT, "neap_test_no_such_symbol");
        (void)dlerror();
        (void)dlerror();
    }
#endif
    neap_trim();
    neap_stats_t s0, s1;
    neap_stats_get(&s0);
    size_t tm0 = trace_memory();

    _neap_os_fail_maps(n, every);
#if NEAP_TEST_TRACING
    if (traced)
        _neap_trace_env_start();
#endif
    tiers(&s, 20, 800);
    callocs();
    realloc_chain();
    aligned(&s);
    huge();
    threads();
    if (!traced)
        burst(); /* traced, each thread maps its trace buffers: twice the runs */
    isolated();
    check_all();
    /* half the blocks go (the threads' among them), the rest are checked */
    for (size_t i = 0; i < nblk; i++)
        if (xs_next(&s) % 2 == 0)
            drop(i);
    neap_trim();
    tiers(&s, 10, 200);
    check_all();

    /* mappings succeed from here on: the calls made so far are the
     * scenario's injection points */
    uint64_t points;
    _neap_os_fail_maps_count(&points, NULL, NULL);
    _neap_os_fail_maps_stop();
    again(NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, again, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);

    while (nblk > 0)
        drop(nblk - 1);
#if NEAP_TEST_TRACING
    if (traced) {
        _neap_trace_env_exit();
        neap_trace_stop();
    }
#endif
    neap_trim();
    neap_stats_get(&s1);
    size_t tm1 = trace_memory();
    uint64_t failed;
    int64_t net;
    _neap_os_fail_maps_count(NULL, &failed, &net);
    _neap_os_fail_maps_off();
    rep->calls = points;
    rep->failed = failed;
    rep->nulls = nulls;

    CHECKF(every || n == 0 || nulls <= 1, "one mapping failed, %llu allocation calls did",
           (unsigned long long)nulls);
    CHECKF(s1.bytes_live == s0.bytes_live, "live bytes %zu, %zu at the start", s1.bytes_live,
           s0.bytes_live);
    CHECKF(s1.huge_current == s0.huge_current && s1.large_current == s0.large_current,
           "huge blocks %zu (%zu at the start), large %zu (%zu)", s1.huge_current, s0.huge_current,
           s1.large_current, s0.large_current);
    CHECKF(s1.pools_current == s0.pools_current, "pools %zu, %zu at the start", s1.pools_current,
           s0.pools_current);
    CHECKF(s1.bytes_huge_cached == 0, "%zu bytes of huge mappings cached after neap_trim",
           s1.bytes_huge_cached);
    int64_t accounted = (int64_t)(s1.bytes_mapped - s0.bytes_mapped) + (int64_t)(tm1 - tm0);
    int64_t rest = net - accounted;
    CHECKF(rest >= 0 && rest % (int64_t)HEAP_CHUNK == 0 &&
               rest <= (int64_t)((NTHREADS + 2) * HEAP_CHUNK),
           "mapped %lld bytes net, the library accounts for %lld (arenas %zu -> %zu, huge %zu -> "
           "%zu, trace %zu -> %zu)",
           (long long)net, (long long)accounted, s0.arenas_current, s1.arenas_current,
           s0.bytes_huge, s1.bytes_huge, tm0, tm1);
    rep->done = 1;
}

/* ---------------------------------------------------------------------------
 * The parent: one child per injection.
 * ------------------------------------------------------------------------- */
static double
watchdog_scale(void)
{
#ifdef NEAP_TEST_NO_OVERRIDE
    return 6.0; /* sanitizer builds */
#else
    return 1.0;
#endif
}

static void
show_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL && n++ < 60)
        fputs(line, stderr);
    fclose(f);
}

/* Runs the scenario in a child with mapping call n failing (n = 0: none),
 * and every one after it if `every`; fails the test unless it exits 0. */
static void
run_child(uint64_t n, bool every)
{
    char out[320];
    snprintf(out, sizeof out, "%s/child.out", trace_dir);
    memset(rep, 0, sizeof *rep);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsigned secs = (unsigned)(20 * watchdog_scale());
        struct rlimit cpu = {secs, secs + 5};
        setrlimit(RLIMIT_CPU, &cpu);
        alarm(secs);
        child(n, every);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (getenv("NEAP_OOM_VERBOSE") != NULL)
        fprintf(stderr, "n %llu%s: calls %llu failed %llu nulls %llu\n", (unsigned long long)n,
                every ? " on" : "", (unsigned long long)rep->calls,
                (unsigned long long)rep->failed, (unsigned long long)rep->nulls);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rep->done)
        return;
    fprintf(stderr, "test_oom: %s, mapping call %llu failing%s: ", traced ? "traced" : "plain",
            (unsigned long long)n, every ? " and every one after it" : " alone");
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        fprintf(stderr, "the child hung (no end in %u s)\n", (unsigned)(20 * watchdog_scale()));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "the child died of signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    else
        fprintf(stderr, "the child exited with status %d\n", WEXITSTATUS(status));
    fprintf(stderr, "--- the child's output ---\n");
    show_file(out);
    CHECK(0);
}

static void *
idle(void *arg)
{
    pthread_barrier_wait(&start_line);
    return arg;
}

/* The C library keeps the stacks of ended threads for new ones, with
 * blocks it allocated for them (thread-local storage): as many threads as
 * the scenario runs at once are started and joined here, so that the
 * children's threads find their stacks cached and leave no block behind. */
static void
warm_thread_stacks(void)
{
    enum { N = NTHREADS + 2 + NBURST };
    pthread_t t[N];
    pthread_attr_t writer, small; /* the trace stream's writer thread: a 256 KiB stack */
    pthread_attr_init(&writer);
    pthread_attr_setstacksize(&writer, 256 * KiB);
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, BURST_STACK);
    pthread_barrier_init(&start_line, NULL, N);
    for (size_t i = 0; i < N; i++)
        CHECK(pthread_create(&t[i], i == 0 ? &writer : i > NTHREADS + 1 ? &small : NULL, idle,
                             NULL) == 0);
    for (size_t i = 0; i < N; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&start_line);
    pthread_attr_destroy(&writer);
    pthread_attr_destroy(&small);
}

static void
sweep(bool with_trace)
{
    traced = with_trace;
    snprintf(trace_dir, sizeof trace_dir, "%s/neap-oom.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(trace_dir) != NULL);
    rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(rep != MAP_FAILED);
    warm_thread_stacks();

    run_child(0, false);
    uint64_t counted = rep->calls, most = counted;
    CHECKF(counted > 20 && rep->failed == 0, "the scenario made %llu mapping calls",
           (unsigned long long)counted);
    uint64_t nulls_once = 0, nulls_every = 0, n;
    /* up to one past the most calls a run has made (the threads' order
     * makes the count vary a little from run to run); a run with every
     * call failing from n on makes more calls (each failed allocation
     * tries again), not counted */
    for (n = 1; n <= most + 1 && n < 4 * counted; n++) {
        run_child(n, false);
        nulls_once += rep->nulls;
        most = rep->calls > most ? rep->calls : most;
        run_child(n, true);
        nulls_every += rep->nulls;
    }
    printf("test_oom: %s: %llu mapping calls in the scenario (at most %llu seen); injection "
           "points 1..%llu tried, each alone and from it on; allocation calls that failed: "
           "%llu and %llu\n",
           with_trace ? "traced" : "plain", (unsigned long long)counted, (unsigned long long)most,
           (unsigned long long)(n - 1), (unsigned long long)nulls_once,
           (unsigned long long)nulls_every);
    CHECKF(n > most + 1, "stopped at %llu of %llu calls", (unsigned long long)n,
           (unsigned long long)most);

    char path[320];
    snprintf(path, sizeof path, "%s/trace", trace_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/child.out", trace_dir);
    unlink(path);
    CHECK(rmdir(trace_dir) == 0);
    munmap(rep, sizeof *rep);
}

static void
section_plain(void)
{
    sweep(false);
}

#if NEAP_TEST_TRACING
static void
section_traced(void)
{
    sweep(true);
}
#endif

int
main(int argc, char **argv)
{
    static const struct test_section sections[] = {
        {"plain", section_plain},
#if NEAP_TEST_TRACING
        {"traced", section_traced},
#endif
    };
    return test_sections_main(argc, argv, "test_oom", sections, sizeof sections / sizeof sections[0],
                              NULL);
}

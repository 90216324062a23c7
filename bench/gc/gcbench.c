/*
 * gcbench.c -- neap's objects and cycle collector (neap_object.h) on the
 * graph shapes that bench/gc/gcbench.py builds in CPython.  bench/gc/run
 * runs both and compares them.
 *
 *   gcbench cycles [--objects N] [--cycle K]
 *   gcbench young  [--objects N] [--iterations M] [--ring R] [--threshold T]
 *
 * Every object is a `node`: a tracked object with two reference slots, the
 * counterpart of a small CPython list (a node with slots a, b is the list
 * [a, b]; an empty slot is None on the Python side, NULL here).
 *
 *   cycles  N objects (default 10^6) as N/K garbage rings of K nodes
 *           (default 2: a = []; b = [a]; a.append(b)), built with automatic
 *           collection off and every outside reference dropped; then one
 *           timed neap_gc_collect(2), which must find all N.  RSS before the
 *           build, after it, after the collection and after neap_trim().
 *
 *   young   a complete binary tree of N nodes (default 10^6), built with
 *           automatic collection off and moved to the oldest generation by
 *           neap_gc_collect(2).  Then, collection on (thresholds T, 10, 10),
 *           M iterations (default 4*10^6) of:  a = []; b = [a]; every other
 *           iteration also a.append(b) (a garbage cycle once dropped);
 *           ring[i % R] = b, which keeps the last R pairs alive a little
 *           while.  gc callbacks time every collection (CLOCK_MONOTONIC,
 *           "start" to "stop"); the pauses are summarised per generation.
 *           Self-check: the collections found exactly the objects of the
 *           cycles, and the tree is whole.
 *
 * Output: one JSON line on stdout, exit 0.  A failed self-check prints
 * "gcbench: check failed: ..." on stderr and exits 1; a bad command line
 * exits 2.  Pause statistics (the same definitions as gcbench.py): median
 * (mean of the two middle values for an even count), p99 by nearest rank
 * (the ceil(0.99 n)-th smallest), max, mean, total.
 *
 * The bookkeeping (the ring, the pause log) comes from mmap, not from the
 * allocator under test; RSS is read from /proc/self/statm with read(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "neap.h"
#include "neap_object.h"

/* ---- the node type ------------------------------------------------------- */

typedef struct node {
    void *ref[2]; /* references (nodes) or NULL */
} node_t;

static int
node_traverse(void *self, neap_visit_fn visit, void *arg)
{
    node_t *n = self;
    NEAP_VISIT(n->ref[0]);
    NEAP_VISIT(n->ref[1]);
    return 0;
}

static void
node_clear(void *self)
{
    node_t *n = self;
    NEAP_CLEAR(n->ref[0]);
    NEAP_CLEAR(n->ref[1]);
}

/* Bytes of an object of node_type: the gc links of a tracked object (16,
 * neap_object.h's drawing), neap's header and the node (cf. CPython's
 * sys.getsizeof of a list: GC header, object and item array). */
#define NODE_BYTES (16 + sizeof(neap_objhead_t) + sizeof(node_t))

/* No free list: CPython keeps 80 free lists, a full collection empties
 * both, and a list of 80 would not change these figures. */
static neap_type_t node_type = {
    .name = "node",
    .size = sizeof(node_t),
    .traverse = node_traverse,
    .clear = node_clear,
};

/* ---- failures, time, RSS, bookkeeping memory ---------------------------- */

__attribute__((noreturn, format(printf, 1, 2))) static void
check_failed(const char *fmt, ...)
{
    va_list ap;
    fputs("gcbench: check failed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static node_t *
node_new(void)
{
    node_t *n = neap_obj_new(&node_type);
    if (n == NULL)
        check_failed("neap_obj_new: %s", strerror(errno));
    return n;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident bytes, from /proc/self/statm (its second field), or 0. */
static size_t
rss_bytes(void)
{
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void *
book_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        check_failed("mmap of %zu bytes: %s", bytes, strerror(errno));
    return p;
}

static void
book_free(void *p, size_t bytes)
{
    munmap(p, bytes);
}

/* ---- cycles: one full collection of N objects in garbage rings ---------- */

/* A ring of k nodes, each referring to the one made before it, the first to
 * the last (k = 2: a = []; b = [a]; a.append(b)).  Nothing outside the ring
 * refers to it when this returns. */
static void
make_ring(size_t k)
{
    node_t *first = node_new();
    node_t *prev = first;
    neap_incref(first); /* one reference for `first`, one handed on as `prev` */
    for (size_t j = 1; j < k; j++) {
        node_t *x = node_new();
        x->ref[0] = prev; /* takes prev's reference */
        prev = x;
    }
    first->ref[0] = prev; /* closes the ring; takes the last one's reference */
    neap_decref(first);
}

static void
run_cycles(size_t objects, size_t k)
{
    if (k == 0 || objects % k != 0)
        check_failed("--objects %zu is not a multiple of --cycle %zu", objects, k);
    neap_gc_disable();
    neap_gc_collect(2);
    size_t rss_base = rss_bytes();

    double t0 = now();
    for (size_t i = 0; i < objects / k; i++)
        make_ring(k);
    double t_build = now() - t0;
    size_t rss_built = rss_bytes();
    if (neap_type_live(&node_type) != objects)
        check_failed("%zu nodes alive after the build, expected %zu",
                     neap_type_live(&node_type), objects);

    t0 = now();
    intptr_t found = neap_gc_collect(2);
    double t_collect = now() - t0;
    size_t rss_collected = rss_bytes();

    t0 = now();
    int trimmed = neap_trim();
    double t_trim = now() - t0;
    size_t rss_trimmed = rss_bytes();

    if (found != (intptr_t)objects)
        check_failed("neap_gc_collect(2) found %jd objects, expected %zu", (intmax_t)found,
                     objects);
    if (neap_type_live(&node_type) != 0)
        check_failed("%zu nodes alive after the collection", neap_type_live(&node_type));

    printf("{\"bench\":\"cycles\",\"side\":\"neap\",\"params\":{\"objects\":%zu,\"cycle\":%zu},"
           "\"ok\":true,\"found\":%jd,\"bytes_per_object\":%zu,"
           "\"times\":{\"build\":%.6f,\"collect\":%.6f,\"trim\":%.6f},\"trim_returned\":%d,"
           "\"rss\":{\"base\":%zu,\"built\":%zu,\"collected\":%zu,\"trimmed\":%zu}}\n",
           objects, k, (intmax_t)found, NODE_BYTES, t_build, t_collect, t_trim, trimmed, rss_base, rss_built,
           rss_collected, rss_trimmed);
}

/* ---- young: generation-0 pauses beside 10^6 long-lived objects ---------- */

typedef struct pause {
    double seconds;   /* "start" to "stop" */
    int generation;   /* the oldest generation collected */
} pause_t;

typedef struct pause_log {
    pause_t *items;   /* book_alloc'd, cap entries */
    size_t count;
    size_t cap;
    size_t overflow;  /* collections not logged: cap was too small */
    double started;   /* now() at the last "start" */
    size_t collected; /* sum of info->collected at "stop" */
    size_t uncollectable;
} pause_log_t;

static void
on_gc(const char *phase, const neap_gc_info_t *info, void *arg)
{
    pause_log_t *log = arg;
    if (strcmp(phase, "start") == 0) {
        log->started = now();
        return;
    }
    double t = now() - log->started;
    log->collected += info->collected;
    log->uncollectable += info->uncollectable;
    if (log->count == log->cap) {
        log->overflow++;
        return;
    }
    log->items[log->count++] = (pause_t){ t, info->generation };
}

/* A complete-as-can-be binary tree of n nodes (left subtree (n-1)/2). */
static node_t *
build_tree(size_t n)
{
    if (n == 0)
        return NULL;
    node_t *t = node_new();
    size_t left = (n - 1) / 2;
    t->ref[0] = build_tree(left);
    t->ref[1] = build_tree(n - 1 - left);
    return t;
}

static size_t
count_tree(const node_t *t)
{
    return t == NULL ? 0 : 1 + count_tree(t->ref[0]) + count_tree(t->ref[1]);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* {"count":..,"median_ms":..,"p99_ms":..,"max_ms":..,"mean_ms":..,"total_ms":..}
 * of the pauses of one generation; v is scratch of log->count doubles. */
static void
print_pauses(const pause_log_t *log, int generation, double *v)
{
    size_t n = 0;
    double total = 0;
    for (size_t i = 0; i < log->count; i++)
        if (log->items[i].generation == generation) {
            v[n++] = log->items[i].seconds * 1e3;
            total += log->items[i].seconds * 1e3;
        }
    printf("\"gen%d\":{\"count\":%zu", generation, n);
    if (n > 0) {
        qsort(v, n, sizeof *v, cmp_double);
        double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        size_t r99 = (size_t)ceil(0.99 * (double)n);
        printf(",\"median_ms\":%.6f,\"p99_ms\":%.6f,\"max_ms\":%.6f,\"mean_ms\":%.6f,"
               "\"total_ms\":%.6f",
               med, v[(r99 ? r99 : 1) - 1], v[n - 1], total / (double)n, total);
    }
    putchar('}');
}

static void
run_young(size_t objects, size_t iterations, size_t ring_len, long threshold)
{
    if (ring_len == 0)
        check_failed("--ring must be at least 1");
    neap_gc_disable();
    if (neap_gc_set_threshold(threshold, 10, 10) != 0)
        check_failed("neap_gc_set_threshold(%ld, 10, 10): %s", threshold, strerror(errno));
    neap_gc_collect(2);

    double t0 = now();
    node_t *root = build_tree(objects);
    double t_build = now() - t0;
    t0 = now();
    intptr_t found = neap_gc_collect(2); /* the tree goes to the oldest generation */
    double t_promote = now() - t0;
    if (found != 0)
        check_failed("the collection after the build found %jd objects, expected 0",
                     (intmax_t)found);

    /* a collection comes after `threshold` net allocations, and an
     * iteration makes at most 2 net: room for twice that many */
    pause_log_t log = { 0 };
    log.cap = 4 * iterations / (size_t)threshold + 64;
    size_t log_bytes = log.cap * sizeof(pause_t);
    log.items = book_alloc(log_bytes);
    size_t ring_bytes = ring_len * sizeof(node_t *);
    node_t **ring = book_alloc(ring_bytes);
    if (neap_gc_callbacks_add(on_gc, &log) != 0)
        check_failed("neap_gc_callbacks_add: %s", strerror(errno));

    neap_gc_enable();
    t0 = now();
    for (size_t i = 0; i < iterations; i++) {
        node_t *a = node_new();
        node_t *b = node_new();
        b->ref[0] = a; /* takes our reference to a */
        if ((i & 1) == 0) {
            neap_incref(b);
            a->ref[0] = b;
        }
        node_t **slot = &ring[i % ring_len];
        node_t *old = *slot;
        *slot = b; /* takes our reference to b */
        if (old != NULL)
            neap_decref(old);
    }
    double t_churn = now() - t0;
    size_t during = log.count + log.overflow;

    /* the end: the ring goes, and a full collection takes the last cycles */
    for (size_t i = 0; i < ring_len; i++)
        if (ring[i] != NULL)
            NEAP_CLEAR(ring[i]);
    t0 = now();
    neap_gc_collect(2);
    double t_final = now() - t0;
    neap_gc_disable();
    neap_gc_callbacks_remove(on_gc, &log);

    size_t expected = 2 * ((iterations + 1) / 2);
    if (log.collected != expected || log.uncollectable != 0)
        check_failed("the collections found %zu objects (%zu uncollectable), expected %zu",
                     log.collected, log.uncollectable, expected);
    if (log.overflow)
        check_failed("%zu collections not logged (the log holds %zu)", log.overflow, log.cap);
    size_t intact = count_tree(root);
    if (intact != objects || neap_type_live(&node_type) != objects)
        check_failed("the tree has %zu nodes and %zu nodes are alive, expected %zu", intact,
                     neap_type_live(&node_type), objects);
    neap_decref(root);
    if (neap_type_live(&node_type) != 0)
        check_failed("%zu nodes alive after the tree was dropped", neap_type_live(&node_type));

    long count[NEAP_GC_GENERATIONS] = { 0 };
    for (size_t i = 0; i < during; i++)
        count[log.items[i].generation]++;
    printf("{\"bench\":\"young\",\"side\":\"neap\",\"params\":{\"objects\":%zu,"
           "\"iterations\":%zu,\"ring\":%zu,\"threshold\":[%ld,10,10]},\"ok\":true,"
           "\"times\":{\"build\":%.6f,\"promote\":%.6f,\"churn\":%.6f,\"final\":%.6f},"
           "\"collections\":[%ld,%ld,%ld],\"collected\":%zu,\"pauses\":{",
           objects, iterations, ring_len, threshold, t_build, t_promote, t_churn, t_final,
           count[0], count[1], count[2], log.collected);
    log.count = during; /* the churn's collections only, not the final one */
    double *scratch = book_alloc(log.cap * sizeof(double));
    for (int g = 0; g < NEAP_GC_GENERATIONS; g++) {
        if (g)
            putchar(',');
        print_pauses(&log, g, scratch);
    }
    printf("}}\n");
    book_free(scratch, log.cap * sizeof(double));
    book_free(ring, ring_bytes);
    book_free(log.items, log_bytes);
}

/* ---- the command line ----------------------------------------------------- */

static void
usage(FILE *f)
{
    fputs("usage: gcbench cycles [--objects N] [--cycle K]\n"
          "       gcbench young  [--objects N] [--iterations M] [--ring R] [--threshold T]\n"
          "\n"
          "cycles: N objects (default 1000000) in garbage rings of K (default 2), one timed\n"
          "        full collection, RSS before, after the build, the collection, neap_trim.\n"
          "young:  a tree of N long-lived objects, then M iterations (default 4000000) of\n"
          "        short-lived pairs, every other one a cycle, the last R (default 100) kept;\n"
          "        the pause of every collection (thresholds T, 10, 10; default T 2000).\n"
          "Prints one JSON line.\n",
          f);
}

static size_t
parse_size(const char *opt, const char *s, size_t min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end); /* 1e6 is accepted */
    if (errno || end == s || *end || v < (double)min || v > 1e12 || v != floor(v)) {
        fprintf(stderr, "gcbench: %s: bad value %s (a whole number, at least %zu)\n", opt, s,
                min);
        exit(2);
    }
    return (size_t)v;
}

int
main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *bench = argv[1];
    int young = strcmp(bench, "young") == 0;
    if (!young && strcmp(bench, "cycles") != 0) {
        fprintf(stderr, "gcbench: unknown benchmark %s\n", bench);
        usage(stderr);
        return 2;
    }
    size_t objects = 1000000, cycle = 2, iterations = 4000000, ring = 100, threshold = 2000;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t *dst = strcmp(o, "--objects") == 0                 ? &objects
                      : !young && strcmp(o, "--cycle") == 0       ? &cycle
                      : young && strcmp(o, "--iterations") == 0   ? &iterations
                      : young && strcmp(o, "--ring") == 0         ? &ring
                      : young && strcmp(o, "--threshold") == 0    ? &threshold
                                                                  : NULL;
        if (dst == NULL || v == NULL) {
            fprintf(stderr, "gcbench %s: %s %s\n", bench,
                    dst == NULL ? "unknown option" : "missing value after", o);
            return 2;
        }
        *dst = parse_size(o, v, 1);
        i++;
    }
    if (young)
        run_young(objects, iterations, ring, (long)threshold);
    else
        run_cycles(objects, cycle);
    return fflush(stdout) == 0 ? 0 : 1;
}

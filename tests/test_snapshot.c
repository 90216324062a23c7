/* test_snapshot.c -- snapshots of the traces (neap_trace.h, src/snapshot.c),
 * one section per argv[1]:
 *
 *   lineno      two sites with known blocks: the top two NEAP_KEY_LINENO
 *               statistics name this file, their lines, exact sizes and counts
 *   filename    NEAP_KEY_FILENAME: this file's total; a block allocated
 *               inside neap (a string object) is another file's
 *   traceback   one line reached from two callers: two tracebacks, one line
 *   cumulative  a caller's call line gets its callee's bytes; a trace counts
 *               once per site even through recursion
 *   compare     compare_to after frees and new allocations, a site only in
 *               the old snapshot, a snapshot against itself
 *   filter      filter_traces: inclusive and exclusive, lineno, all_frames
 *   dump        dump and load: the same statistics, pinning and bytes; load
 *               of a missing, foreign, truncated or corrupted file fails with
 *               EINVAL (or ENOENT) and a message naming the byte
 *   sampled     a sampled snapshot's estimates are within 7% of the truth
 *   pinning     the pages and arenas each site keeps: lone survivors pin a
 *               page each, full pages about their size, huge blocks their
 *               own pages, two sites sharing pages split them
 *   errors      no tracing, bad arguments, an empty snapshot
 *   threads     snapshots taken while threads allocate; threads sharing two
 *               snapshots (statistics, compare_to both ways, filter,
 *               pinning, dump) get the answers one thread gets
 *   nodwarf     without libdw (NEAP_SYMBOLS_NO_LIBDW=1): frames name the
 *               program and its exported functions, lines unknown; sites
 *               stay apart by function; dump, load, compare, pinning.  In
 *               ASan builds the sections that load libdw run without the
 *               leak check (LeakSanitizer's tracer crashes after libdw is
 *               loaded; see test_symbols); this one and errors keep it.
 *
 * Built with frame pointers, -g and its functions exported, so that the
 * allocation sites resolve to this file's lines.  Expected lines come from
 * __LINE__ on the allocating line itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include "neap_test.h"
#include "neap_object.h"
#include "neap_trace.h"

/* ---------------------------------------------------------------------------
 * Allocation sites: not inlined, not tail-calling malloc; each records the
 * line of its malloc call.
 * ------------------------------------------------------------------------- */
/* atomic: the threads section's threads all write them */
static _Atomic int line_a, line_b, line_c, line_callee, line_caller_own, line_leaf;
static _Atomic int line_x_call, line_y_call, line_caller_call, line_recurse_call;

void *site_a(size_t n);
void *site_b(size_t n);
void *site_c(size_t n);
void *outer_x(size_t n);
void *outer_y(size_t n);
void *callee(size_t n);
void caller(void **v, size_t ncall, size_t nown);
void *recurse(int depth);

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
/* one function each: not inlined, not cloned (a clone has another name) */
#if defined(__clang__)
#define SITE __attribute__((noinline))
#else
#define SITE __attribute__((noinline, noclone))
#endif

SITE void *site_a(size_t n) {
    void *p = malloc(n); line_a = __LINE__;
    KEEP(p);
    return p;
}
SITE void *site_b(size_t n) {
    void *p = malloc(n); line_b = __LINE__;
    KEEP(p);
    return p;
}
SITE void *site_c(size_t n) {
    void *p = malloc(n); line_c = __LINE__;
    KEEP(p);
    return p;
}
SITE void *outer_x(size_t n) {
    void *p = site_a(n); line_x_call = __LINE__;
    KEEP(p);
    return p;
}
SITE void *outer_y(size_t n) {
    void *p = site_a(n); line_y_call = __LINE__;
    KEEP(p);
    return p;
}
SITE void *callee(size_t n) {
    void *p = malloc(n); line_callee = __LINE__;
    KEEP(p);
    return p;
}
/* v gets ncall blocks of 1000 bytes through callee, then nown of 500 of its own */
SITE void caller(void **v, size_t ncall, size_t nown) {
    for (size_t i = 0; i < ncall; i++) {
        v[i] = callee(1000); line_caller_call = __LINE__;
        KEEP(v[i]);
    }
    for (size_t i = 0; i < nown; i++) {
        v[ncall + i] = malloc(500); line_caller_own = __LINE__;
        KEEP(v[ncall + i]);
    }
}
SITE void *recurse(int depth) {
    void *p;
    if (depth == 0) {
        p = malloc(700); line_leaf = __LINE__;
    } else {
        p = recurse(depth - 1); line_recurse_call = __LINE__;
    }
    KEEP(p);
    return p;
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int here(const neap_frame_t *f) {
    return ends_with(f->filename, "/test_snapshot.c") ||
           strcmp(f->filename, "test_snapshot.c") == 0;
}

static void stats(neap_snapshot_t *s, neap_key_t key, int cumulative, const neap_statistic_t **v,
                  size_t *n) {
    int r = neap_snapshot_statistics(s, key, cumulative, v, n);
    CHECKF(r == 0, "statistics: %s", neap_snapshot_error());
}

/* The statistic whose most recent frame is this file's line `line`. */
static const neap_statistic_t *at_line(const neap_statistic_t *v, size_t n, int line) {
    for (size_t i = 0; i < n; i++)
        if (here(&v[i].frame[0]) && v[i].frame[0].lineno == line)
            return &v[i];
    return NULL;
}

static const neap_statistic_diff_t *diff_at_line(const neap_statistic_diff_t *v, size_t n,
                                                 int line) {
    for (size_t i = 0; i < n; i++)
        if (here(&v[i].frame[0]) && v[i].frame[0].lineno == line)
            return &v[i];
    return NULL;
}

static const neap_pinning_t *pin_at_line(const neap_pinning_t *v, size_t n, int line) {
    for (size_t i = 0; i < n; i++)
        if (here(&v[i].frame[0]) && v[i].frame[0].lineno == line)
            return &v[i];
    return NULL;
}

static size_t total_size(const neap_statistic_t *v, size_t n) {
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += v[i].size;
    return t;
}

static void print_stats(const char *title, const neap_statistic_t *v, size_t n) {
    printf("%s: %zu\n", title, n);
    for (size_t i = 0; i < n && i < 12; i++)
        printf("  %8zu B %6zu  %s:%d %s (%zu frames)\n", v[i].size, v[i].count,
               v[i].frame[0].filename, v[i].frame[0].lineno,
               v[i].frame[0].function ? v[i].frame[0].function : "?", v[i].nframe);
}

static void free_all(void **v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
        v[i] = NULL;
    }
}

static void *va[200], *vb[100], *vc[100];

/* ---------------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------------- */
static void test_lineno(void) {
    CHECK(neap_trace_start(16) == 0);
    for (int i = 0; i < 100; i++)
        va[i] = site_a(1000);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    CHECKF(neap_snapshot_count(s) >= 150, "%zu traces", neap_snapshot_count(s));
    CHECK(neap_snapshot_traceback_limit(s) == 16);
    CHECK(neap_snapshot_sample_interval(s) == 0);

    const neap_statistic_t *v;
    size_t n;
    stats(s, NEAP_KEY_LINENO, 0, &v, &n);
    print_stats("lineno", v, n);
    CHECK(n >= 2);
    CHECKF(here(&v[0].frame[0]) && v[0].frame[0].lineno == line_b, "top: %s:%d, want line %d",
           v[0].frame[0].filename, v[0].frame[0].lineno, line_b);
    CHECK(v[0].size == 150000 && v[0].count == 50 && v[0].nframe == 1);
    CHECKF(here(&v[1].frame[0]) && v[1].frame[0].lineno == line_a, "second: %s:%d, want line %d",
           v[1].frame[0].filename, v[1].frame[0].lineno, line_a);
    CHECK(v[1].size == 100000 && v[1].count == 100 && v[1].nframe == 1);
    CHECK(v[0].frame[0].function != NULL && strcmp(v[0].frame[0].function, "site_b") == 0);
    CHECK(v[1].frame[0].function != NULL && strcmp(v[1].frame[0].function, "site_a") == 0);
    CHECK(v[0].frame[0].pc != 0 && v[0].frame[0].module != NULL && v[0].frame[0].offset != 0);
    for (size_t i = 1; i < n; i++)
        CHECK(v[i - 1].size > v[i].size ||
              (v[i - 1].size == v[i].size && v[i - 1].count >= v[i].count));
    /* the same question gives the same array */
    const neap_statistic_t *again;
    size_t n2;
    stats(s, NEAP_KEY_LINENO, 0, &again, &n2);
    CHECK(again == v && n2 == n);

    neap_snapshot_free(s);
    free_all(va, 100);
    free_all(vb, 50);
    neap_trace_stop();
}

static void test_filename(void) {
    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 100; i++)
        va[i] = site_a(1000);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    void *str = neap_str_new("a string allocated inside neap", 30);
    CHECK(str != NULL);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_statistic_t *v;
    size_t n;
    stats(s, NEAP_KEY_FILENAME, 0, &v, &n);
    print_stats("filename", v, n);
    const neap_statistic_t *mine = NULL, *neap = NULL;
    for (size_t i = 0; i < n; i++) {
        CHECK(v[i].nframe == 1 && v[i].frame[0].lineno == 0 && v[i].frame[0].function == NULL);
        if (here(&v[i].frame[0]))
            mine = &v[i];
        else if (ends_with(v[i].frame[0].filename, "object.c"))
            neap = &v[i];
    }
    CHECK(mine != NULL && mine->size == 250000 && mine->count == 150);
    CHECK(neap != NULL && neap->count >= 1 && neap->size >= 30);
    /* the filenames are distinct */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(strcmp(v[i].frame[0].filename, v[j].frame[0].filename) != 0);
    neap_snapshot_free(s);
    neap_decref(str);
    free_all(va, 100);
    free_all(vb, 50);
    neap_trace_stop();
}

static void test_traceback(void) {
    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 10; i++)
        va[i] = outer_x(800);
    for (int i = 10; i < 30; i++)
        va[i] = outer_y(800);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_statistic_t *v;
    size_t n;
    stats(s, NEAP_KEY_TRACEBACK, 0, &v, &n);
    print_stats("traceback", v, n);
    CHECK(n >= 2);
    /* outer_y's 20 blocks, then outer_x's 10: same line, two stacks */
    CHECK(v[0].size == 16000 && v[0].count == 20 && v[1].size == 8000 && v[1].count == 10);
    for (int k = 0; k < 2; k++) {
        CHECKF(v[k].nframe >= 3 && v[k].nframe <= 8, "%zu frames", v[k].nframe);
        CHECK(here(&v[k].frame[0]) && v[k].frame[0].lineno == line_a);
        CHECK(here(&v[k].frame[1]));
        CHECK(v[k].frame[2].function != NULL &&
              strcmp(v[k].frame[2].function, "test_traceback") == 0);
    }
    CHECK(v[0].frame[1].lineno == line_y_call && v[1].frame[1].lineno == line_x_call);
    CHECK(strcmp(v[0].frame[1].function, "outer_y") == 0);
    CHECK(strcmp(v[1].frame[1].function, "outer_x") == 0);
    /* by line, the two are one */
    stats(s, NEAP_KEY_LINENO, 0, &v, &n);
    const neap_statistic_t *a = at_line(v, n, line_a);
    CHECK(a != NULL && a->size == 24000 && a->count == 30);
    neap_snapshot_free(s);
    free_all(va, 30);
    neap_trace_stop();
}

static void test_cumulative(void) {
    void *v[20];
    CHECK(neap_trace_start(16) == 0);
    caller(v, 10, 5); int line_test_call = __LINE__;
    void *deep = recurse(5);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_statistic_t *st, *a;
    size_t n;

    stats(s, NEAP_KEY_LINENO, 0, &st, &n);
    print_stats("lineno", st, n);
    CHECK((a = at_line(st, n, line_callee)) != NULL && a->size == 10000 && a->count == 10);
    CHECK((a = at_line(st, n, line_caller_own)) != NULL && a->size == 2500 && a->count == 5);
    CHECK(at_line(st, n, line_caller_call) == NULL);
    CHECK(at_line(st, n, line_test_call) == NULL);

    stats(s, NEAP_KEY_LINENO, 1, &st, &n);
    print_stats("lineno, cumulative", st, n);
    CHECK((a = at_line(st, n, line_callee)) != NULL && a->size == 10000 && a->count == 10);
    CHECK((a = at_line(st, n, line_caller_call)) != NULL && a->size == 10000 && a->count == 10);
    CHECK((a = at_line(st, n, line_caller_own)) != NULL && a->size == 2500 && a->count == 5);
    CHECK((a = at_line(st, n, line_test_call)) != NULL && a->size == 12500 && a->count == 15);
    /* recursion: the recursive call's line is in 5 frames of one trace,
     * which counts once */
    CHECK((a = at_line(st, n, line_leaf)) != NULL && a->size == 700 && a->count == 1);
    CHECK((a = at_line(st, n, line_recurse_call)) != NULL && a->size == 700 && a->count == 1);

    stats(s, NEAP_KEY_FILENAME, 1, &st, &n);
    print_stats("filename, cumulative", st, n);
    const neap_statistic_t *mine = NULL;
    for (size_t i = 0; i < n; i++)
        if (here(&st[i].frame[0]))
            mine = &st[i];
    CHECK(mine != NULL && mine->size == 13200 && mine->count == 16);

    /* Python: cumulative applies to filename and lineno only */
    errno = 0;
    CHECK(neap_snapshot_statistics(s, NEAP_KEY_TRACEBACK, 1, &st, &n) == -1 && errno == EINVAL);
    CHECK(strstr(neap_snapshot_error(), "cumulative") != NULL);
    neap_snapshot_free(s);
    free_all(v, 15);
    free(deep);
    neap_trace_stop();
}

static void test_compare(void) {
    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 100; i++)
        va[i] = site_a(1000);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    neap_snapshot_t *s1 = neap_trace_take_snapshot();
    CHECKF(s1 != NULL, "%s", neap_snapshot_error());
    free_all(va, 40);
    for (int i = 0; i < 30; i++)
        vc[i] = site_c(2000);
    neap_snapshot_t *s2 = neap_trace_take_snapshot();
    CHECKF(s2 != NULL, "%s", neap_snapshot_error());

    const neap_statistic_diff_t *d, *e;
    size_t n;
    CHECKF(neap_snapshot_compare_to(s2, s1, NEAP_KEY_LINENO, 0, &d, &n) == 0, "%s",
           neap_snapshot_error());
    for (size_t i = 0; i < n && i < 8; i++)
        printf("  %8zu B %+9lld %5zu %+5lld  %s:%d\n", d[i].size, d[i].size_diff, d[i].count,
               d[i].count_diff, d[i].frame[0].filename, d[i].frame[0].lineno);
    CHECK(n >= 3);
    CHECK(here(&d[0].frame[0]) && d[0].frame[0].lineno == line_c);
    CHECK(d[0].size == 60000 && d[0].size_diff == 60000 && d[0].count == 30 &&
          d[0].count_diff == 30);
    CHECK(here(&d[1].frame[0]) && d[1].frame[0].lineno == line_a);
    CHECK(d[1].size == 60000 && d[1].size_diff == -40000 && d[1].count == 60 &&
          d[1].count_diff == -40);
    CHECK((e = diff_at_line(d, n, line_b)) != NULL && e->size == 150000 && e->size_diff == 0 &&
          e->count == 50 && e->count_diff == 0);
    for (size_t i = 1; i < n; i++)
        CHECK(llabs(d[i - 1].size_diff) >= llabs(d[i].size_diff));

    /* a site only in the old snapshot: size 0, negative differences */
    free_all(vb, 50);
    neap_snapshot_t *s3 = neap_trace_take_snapshot();
    CHECKF(s3 != NULL, "%s", neap_snapshot_error());
    CHECK(neap_snapshot_compare_to(s3, s1, NEAP_KEY_LINENO, 0, &d, &n) == 0);
    CHECK((e = diff_at_line(d, n, line_b)) != NULL && e->size == 0 && e->size_diff == -150000 &&
          e->count == 0 && e->count_diff == -50);
    CHECK(here(&d[0].frame[0]) && d[0].frame[0].lineno == line_b);
    /* the old snapshot may go: the differences stay readable */
    neap_snapshot_free(s1);
    CHECK(strcmp(e->frame[0].function, "site_b") == 0 && here(&e->frame[0]));

    /* against itself: all zero; by traceback and cumulative too */
    CHECK(neap_snapshot_compare_to(s2, s2, NEAP_KEY_TRACEBACK, 0, &d, &n) == 0 && n >= 3);
    for (size_t i = 0; i < n; i++)
        CHECK(d[i].size_diff == 0 && d[i].count_diff == 0);
    CHECK(neap_snapshot_compare_to(s3, s2, NEAP_KEY_FILENAME, 1, &d, &n) == 0);
    const neap_statistic_diff_t *mine = NULL;
    for (size_t i = 0; i < n; i++)
        if (here(&d[i].frame[0]))
            mine = &d[i];
    CHECK(mine != NULL && mine->size == 120000 && mine->size_diff == -150000);
    neap_snapshot_free(s2);
    neap_snapshot_free(s3);
    free_all(va, 100);
    free_all(vc, 30);
    neap_trace_stop();
}

/* The sites of a filtered snapshot by line. */
static void filtered(neap_snapshot_t *s, const neap_filter_t *f, size_t nf,
                     const neap_statistic_t **v, size_t *n, neap_snapshot_t **out) {
    neap_snapshot_t *d = neap_snapshot_filter_traces(s, f, nf);
    CHECKF(d != NULL, "%s", neap_snapshot_error());
    stats(d, NEAP_KEY_LINENO, 0, v, n);
    *out = d;
}

static void test_filter(void) {
    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 10; i++)
        va[i] = outer_x(800);
    for (int i = 10; i < 30; i++)
        va[i] = outer_y(800);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    void *str = neap_str_new("a string allocated inside neap", 30);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_statistic_t *v, *a;
    size_t n;
    neap_snapshot_t *d;

    /* the string's stack reaches this file only if it could be walked
     * through neap's own frames (frame pointers, or NEAP_TRACE_UNWIND=1) */
    int str_here = 0, str_found = 0;
    stats(s, NEAP_KEY_TRACEBACK, 0, &v, &n);
    for (size_t i = 0; i < n; i++) {
        if (here(&v[i].frame[0]))
            continue;
        str_found = 1;
        for (size_t k = 0; k < v[i].nframe; k++) {
            printf("  string %zu: %s:%d %s\n", k, v[i].frame[k].filename, v[i].frame[k].lineno,
                   v[i].frame[k].function ? v[i].frame[k].function : "?");
            str_here |= here(&v[i].frame[k]);
        }
    }
    CHECK(str_found);

    /* include this file (most recent frame): the string's trace goes */
    neap_filter_t mine = {1, "*test_snapshot.c", 0, 0};
    filtered(s, &mine, 1, &v, &n, &d);
    print_stats("include *test_snapshot.c", v, n);
    CHECK(n == 2 && total_size(v, n) == 24000 + 150000);
    CHECK(neap_snapshot_count(d) == 80);
    neap_snapshot_free(d);

    /* the same with all_frames: the string too, if its stack shows this file */
    neap_filter_t mine_all = {1, "*test_snapshot.c", 0, 1};
    filtered(s, &mine_all, 1, &v, &n, &d);
    if (str_here)
        CHECK(n == 3 && total_size(v, n) > 24000 + 150000);
    else
        CHECK(n == 2 && total_size(v, n) == 24000 + 150000);
    neap_snapshot_free(d);
    /* excluding neap's files with all_frames drops the string only */
    neap_filter_t not_neap = {0, "*/object.c", 0, 1};
    filtered(s, &not_neap, 1, &v, &n, &d);
    CHECK(n == 2 && total_size(v, n) == 24000 + 150000);
    neap_snapshot_free(d);

    /* exclude one line */
    neap_filter_t not_a = {0, "*test_snapshot.c", line_a, 0};
    filtered(s, &not_a, 1, &v, &n, &d);
    CHECK(at_line(v, n, line_a) == NULL);
    CHECK((a = at_line(v, n, line_b)) != NULL && a->count == 50);
    neap_snapshot_free(d);

    /* all_frames with a line: the traces through outer_x's call */
    neap_filter_t via_x = {1, "*test_snapshot.c", line_x_call, 1};
    filtered(s, &via_x, 1, &v, &n, &d);
    CHECK(n == 1 && (a = at_line(v, n, line_a)) != NULL && a->count == 10 && a->size == 8000);
    neap_snapshot_free(d);
    /* ... without all_frames nothing matches: no most recent frame is there */
    via_x.all_frames = 0;
    filtered(s, &via_x, 1, &v, &n, &d);
    CHECK(n == 0 && neap_snapshot_count(d) == 0);
    neap_snapshot_free(d);
    /* exclusive, all_frames: everything but those */
    neap_filter_t not_x = {0, "*test_snapshot.c", line_x_call, 1};
    filtered(s, &not_x, 1, &v, &n, &d);
    CHECK((a = at_line(v, n, line_a)) != NULL && a->count == 20);
    CHECK(at_line(v, n, line_b) != NULL);
    neap_snapshot_free(d);

    /* inclusive filters: any of them; exclusive: none of them */
    neap_filter_t two[3] = {{1, "*test_snapshot.c", line_a, 0},
                            {1, "*test_snapshot.c", line_b, 0},
                            {0, "*test_snapshot.c", line_y_call, 1}};
    filtered(s, two, 2, &v, &n, &d);
    CHECK(n == 2 && total_size(v, n) == 24000 + 150000);
    neap_snapshot_free(d);
    filtered(s, two, 3, &v, &n, &d);
    CHECK(n == 2 && (a = at_line(v, n, line_a)) != NULL && a->count == 10);
    /* a filtered snapshot filters again */
    neap_snapshot_t *d2;
    neap_filter_t only_b = {1, "*test_snapshot.c", line_b, 0};
    filtered(d, &only_b, 1, &v, &n, &d2);
    CHECK(n == 1 && v[0].count == 50);
    neap_snapshot_free(d2);
    neap_snapshot_free(d);
    /* a pattern that matches nothing */
    neap_filter_t none = {1, "*no-such-file.c", 0, 1};
    filtered(s, &none, 1, &v, &n, &d);
    CHECK(n == 0);
    neap_snapshot_free(d);
    /* no filters: a copy */
    filtered(s, NULL, 0, &v, &n, &d);
    CHECK(neap_snapshot_count(d) == neap_snapshot_count(s));
    neap_snapshot_free(d);

    /* bad filters */
    neap_filter_t bad = {1, NULL, 0, 0};
    errno = 0;
    CHECK(neap_snapshot_filter_traces(s, &bad, 1) == NULL && errno == EINVAL);
    CHECK(strstr(neap_snapshot_error(), "filter 0") != NULL);
    bad.filename_pattern = "*";
    bad.lineno = -2;
    errno = 0;
    CHECK(neap_snapshot_filter_traces(s, &bad, 1) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_filter_traces(s, NULL, 1) == NULL && errno == EINVAL);

    neap_snapshot_free(s);
    neap_decref(str);
    free_all(va, 30);
    free_all(vb, 50);
    neap_trace_stop();
}

/* --- dump / load ----------------------------------------------------------- */
static char tmpdir[256];

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void *read_file(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    CHECK(b != NULL);
    CHECK(read(fd, b, (size_t)st.st_size) == st.st_size);
    close(fd);
    *size = (size_t)st.st_size;
    return b;
}

static void write_file(const char *path, const void *b, size_t size);
static void load_fails(const char *path, int err, const char *want);
static int names_offset(const char *msg, size_t at);

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* CRC-32 (IEEE), bit by bit: the test's own, to forge valid checksums */
static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* Recomputes the checksums of a file whose sections start at sec[0..4]. */
static void reseal(unsigned char *b, const size_t sec[5]) {
    for (int i = 0; i < 4; i++)
        put_le32(b + 88 + 4 * i, crc32_of(b + sec[i], sec[i + 1] - sec[i]));
    put_le32(b + 104, crc32_of(b, 104));
}

/* b with one 32-bit field at `at` set to v, resealed, fails to load with a
 * message naming byte `named`. */
static void forged_fails(const char *bad, unsigned char *b, size_t size, const size_t sec[5],
                         size_t at, uint32_t v, size_t named) {
    unsigned char *c = malloc(size);
    CHECK(c != NULL);
    memcpy(c, b, size);
    put_le32(c + at, v);
    reseal(c, sec);
    write_file(bad, c, size);
    load_fails(bad, EINVAL, NULL);
    CHECKF(names_offset(neap_snapshot_error(), named), "byte %zu: %s", named,
           neap_snapshot_error());
    printf("  forged at %zu: %s\n", at, neap_snapshot_error());
    free(c);
}

static void write_file(const char *path, const void *b, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, b, size) == (ssize_t)size);
    close(fd);
}

static int frame_equal(const neap_frame_t *a, const neap_frame_t *b) {
    return strcmp(a->filename, b->filename) == 0 && a->lineno == b->lineno && a->pc == b->pc &&
           a->offset == b->offset && (a->function == NULL) == (b->function == NULL) &&
           (a->function == NULL || strcmp(a->function, b->function) == 0) &&
           (a->module == NULL) == (b->module == NULL) &&
           (a->module == NULL || strcmp(a->module, b->module) == 0);
}

static void same_stats(neap_snapshot_t *x, neap_snapshot_t *y, neap_key_t key, int cumulative) {
    const neap_statistic_t *a, *b;
    size_t na, nb;
    stats(x, key, cumulative, &a, &na);
    stats(y, key, cumulative, &b, &nb);
    CHECKF(na == nb, "key %d: %zu and %zu sites", (int)key, na, nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(a[i].size == b[i].size && a[i].count == b[i].count && a[i].nframe == b[i].nframe);
        for (size_t k = 0; k < a[i].nframe; k++)
            CHECK(frame_equal(&a[i].frame[k], &b[i].frame[k]));
    }
}

/* Loading path fails with err and a message holding `want` (NULL: any). */
static void load_fails(const char *path, int err, const char *want) {
    errno = 0;
    neap_snapshot_t *l = neap_snapshot_load(path);
    int e = errno;
    CHECKF(l == NULL, "%s loaded", path);
    CHECKF(e == err, "errno %d, want %d (%s)", e, err, neap_snapshot_error());
    CHECKF(strstr(neap_snapshot_error(), path) != NULL, "%s", neap_snapshot_error());
    CHECKF(want == NULL || strstr(neap_snapshot_error(), want) != NULL, "want \"%s\" in: %s", want,
           neap_snapshot_error());
}

/* A message "... bytes A..B ..." holds offset `at` in that range. */
static int names_offset(const char *msg, size_t at) {
    const char *p = strstr(msg, "bytes ");
    unsigned long long lo, hi;
    if (p != NULL && sscanf(p, "bytes %llu..%llu", &lo, &hi) == 2)
        return lo <= at && at <= hi;
    p = strstr(msg, "byte ");
    return p != NULL && sscanf(p, "byte %llu", &lo) == 1 && lo == at;
}

static void test_dump(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/neap-snapshot-XXXXXX", t && *t ? t : "/tmp");
    CHECK(mkdtemp(tmpdir) != NULL);
    char path[512], bad[512], again[512];
    tmp_path(path, sizeof path, "snap.bin");
    tmp_path(bad, sizeof bad, "bad.bin");
    tmp_path(again, sizeof again, "again.bin");

    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 10; i++)
        va[i] = outer_x(800);
    for (int i = 10; i < 30; i++)
        va[i] = outer_y(800);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    vc[0] = site_c(3u << 20); /* a huge block */
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    CHECKF(neap_snapshot_dump(s, path) == 0, "%s", neap_snapshot_error());
    neap_snapshot_t *l = neap_snapshot_load(path);
    CHECKF(l != NULL, "%s", neap_snapshot_error());
    CHECK(neap_snapshot_count(l) == neap_snapshot_count(s));
    CHECK(neap_snapshot_traceback_limit(l) == 8 && neap_snapshot_sample_interval(l) == 0);
    same_stats(s, l, NEAP_KEY_LINENO, 0);
    same_stats(s, l, NEAP_KEY_FILENAME, 0);
    same_stats(s, l, NEAP_KEY_TRACEBACK, 0);
    same_stats(s, l, NEAP_KEY_LINENO, 1);
    same_stats(s, l, NEAP_KEY_FILENAME, 1);
    const neap_pinning_t *pa, *pb;
    size_t na, nb;
    CHECK(neap_snapshot_pinning(s, NEAP_KEY_LINENO, &pa, &na) == 0);
    CHECK(neap_snapshot_pinning(l, NEAP_KEY_LINENO, &pb, &nb) == 0);
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++)
        CHECK(pa[i].live == pb[i].live && pa[i].pinned == pb[i].pinned &&
              pa[i].pages == pb[i].pages && pa[i].arenas == pb[i].arenas &&
              frame_equal(pa[i].frame, pb[i].frame));
    const neap_statistic_diff_t *d;
    size_t nd;
    CHECK(neap_snapshot_compare_to(l, s, NEAP_KEY_TRACEBACK, 0, &d, &nd) == 0);
    for (size_t i = 0; i < nd; i++)
        CHECK(d[i].size_diff == 0 && d[i].count_diff == 0);
    /* the loaded one filters on its own frames, and dumps to the same bytes */
    neap_filter_t only_a = {1, "*test_snapshot.c", line_a, 0};
    neap_snapshot_t *f = neap_snapshot_filter_traces(l, &only_a, 1);
    CHECK(f != NULL && neap_snapshot_count(f) == 30);
    neap_snapshot_free(f);
    CHECKF(neap_snapshot_dump(l, again) == 0, "%s", neap_snapshot_error());
    size_t size, size2;
    unsigned char *b = read_file(path, &size), *b2 = read_file(again, &size2);
    CHECK(size == size2 && memcmp(b, b2, size) == 0);
    free(b2);
    neap_snapshot_free(l);
    printf("dump: %zu bytes\n", size);

    /* a missing file, a file that is not a snapshot, an empty one */
    char missing[512];
    tmp_path(missing, sizeof missing, "no-such-file");
    load_fails(missing, ENOENT, "no-such-file");
    write_file(bad, "hello, not a snapshot\n", 22);
    load_fails(bad, EINVAL, "not a neap snapshot");
    /* where the sections start (the layout in src/snapshot.c) */
    size_t sec[5] = {112, 0, 0, 0, size};
    sec[1] = sec[0] + (size_t)le64(b + 48);             /* strings' bytes */
    sec[2] = sec[1] + 32 * (size_t)le64(b + 56);        /* frames */
    sec[3] = sec[2] + 4 * (size_t)le64(b + 64) + 8 * (size_t)le64(b + 72); /* stacks */
    CHECK(sec[3] + 24 * (size_t)le64(b + 80) == size); /* traces */
    static const char *const expect[4] = {"strings", "resolved frames", "stack frames", "traces"};
    /* truncated at several lengths, and in the middle of each section */
    size_t cuts[] = {0, 5, 8, 11, 60, 111, 112, 113, size / 3, size / 2, size - 25, size - 1,
                     (sec[0] + sec[1]) / 2, (sec[1] + sec[2]) / 2, (sec[2] + sec[3]) / 2,
                     (sec[3] + sec[4]) / 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char want[64];
        write_file(bad, b, cuts[i]);
        snprintf(want, sizeof want, "truncated at byte %zu", cuts[i]);
        load_fails(bad, EINVAL, want);
        for (int k = 0; k < 4 && cuts[i] >= 112; k++)
            if (sec[k] <= cuts[i] && cuts[i] < sec[k + 1])
                CHECKF(strstr(neap_snapshot_error(), expect[k]) != NULL, "%s",
                       neap_snapshot_error());
        printf("  cut at %zu: %s\n", cuts[i], neap_snapshot_error());
    }
    /* trailing bytes */
    b[size] = 0;
    write_file(bad, b, size + 1);
    load_fails(bad, EINVAL, "data after byte");
    /* another version */
    b[8] ^= 3;
    write_file(bad, b, size);
    load_fails(bad, EINVAL, "version");
    b[8] ^= 3;
    /* one corrupted byte anywhere: the message names the bytes it is in */
    size_t spots[] = {20, 50, 100, 112, 120, size / 4, size / 2, 3 * size / 4, size - 30, size - 1,
                      (sec[0] + sec[1]) / 2, (sec[1] + sec[2]) / 2, (sec[2] + sec[3]) / 2,
                      (sec[3] + sec[4]) / 2, sec[2], sec[3]};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        size_t at = spots[i];
        b[at] ^= 0x40;
        write_file(bad, b, size);
        load_fails(bad, EINVAL, NULL);
        CHECKF(names_offset(neap_snapshot_error(), at), "byte %zu: %s", at, neap_snapshot_error());
        printf("  byte %zu: %s\n", at, neap_snapshot_error());
        b[at] ^= 0x40;
    }
    write_file(bad, b, size);
    l = neap_snapshot_load(bad);
    CHECK(l != NULL);
    neap_snapshot_free(l);

    /* forged files with valid checksums: the parser's own checks */
    reseal(b, sec); /* a no-op on a good file */
    write_file(bad, b, size);
    CHECK((l = neap_snapshot_load(bad)) != NULL);
    neap_snapshot_free(l);
    forged_fails(bad, b, size, sec, 32, 0, 32);                     /* traceback limit 0 */
    forged_fails(bad, b, size, sec, 16, (uint32_t)size + 8, 16);    /* file size */
    forged_fails(bad, b, size, sec, sec[0], 100000, sec[0]);        /* string length */
    forged_fails(bad, b, size, sec, sec[1] + 8, 5000, sec[1]);      /* frame's filename */
    forged_fails(bad, b, size, sec, sec[1] + 12, 0x80000000u, sec[1]); /* negative line */
    forged_fails(bad, b, size, sec, sec[2], 0, sec[2]);             /* a stack of 0 frames */
    forged_fails(bad, b, size, sec, sec[2], 100000, sec[2]);        /* too many */
    forged_fails(bad, b, size, sec, sec[3] + 16, 99, sec[3]);       /* trace's stack */
    forged_fails(bad, b, size, sec, sec[3] + 20, 6, sec[3]);        /* trace's flags */
    /* random damage behind valid checksums: loads or fails cleanly, never crashes */
    uint64_t rng = xs_seed(5);
    size_t fuzz = test_scaled(3000), loaded = 0;
    unsigned char *c = malloc(size);
    CHECK(c != NULL);
    for (size_t i = 0; i < fuzz; i++) {
        memcpy(c, b, size);
        for (int k = (int)xs_range(&rng, 1, 4); k > 0; k--)
            c[xs_range(&rng, 112, size - 1)] ^= (unsigned char)xs_range(&rng, 1, 255);
        reseal(c, sec);
        write_file(bad, c, size);
        errno = 0;
        l = neap_snapshot_load(bad);
        CHECKF(l != NULL || errno == EINVAL, "errno %d: %s", errno, neap_snapshot_error());
        if (l != NULL) {
            const neap_statistic_t *fv;
            const neap_pinning_t *fp;
            size_t fn;
            CHECK(neap_snapshot_statistics(l, NEAP_KEY_TRACEBACK, 0, &fv, &fn) == 0);
            CHECK(neap_snapshot_statistics(l, NEAP_KEY_FILENAME, 1, &fv, &fn) == 0);
            CHECK(neap_snapshot_pinning(l, NEAP_KEY_LINENO, &fp, &fn) == 0);
            loaded++;
        }
        neap_snapshot_free(l);
    }
    printf("  random damage: %zu of %zu loaded\n", loaded, fuzz);
    free(c);
    free(b);

    /* dump where it cannot be written */
    errno = 0;
    CHECK(neap_snapshot_dump(s, "/nonexistent-dir/x/snap.bin") == -1);
    CHECK(errno == ENOENT && strstr(neap_snapshot_error(), "/nonexistent-dir/x/snap.bin") != NULL);

    neap_snapshot_free(s);
    free_all(va, 30);
    free_all(vb, 50);
    free(vc[0]);
    neap_trace_stop();
    unlink(path);
    unlink(bad);
    unlink(again);
    rmdir(tmpdir);
}

/* --- sampled ------------------------------------------------------------ */
static int line_sampled;
void *sampled_site(size_t n);
SITE void *sampled_site(size_t n) {
    void *p = malloc(n); line_sampled = __LINE__;
    KEEP(p);
    return p;
}

static void test_sampled(void) {
    size_t interval = 4096, n = 200000, nbig = 500;
    void **v = malloc((n + nbig) * sizeof *v);
    CHECK(v != NULL);
    CHECK(neap_trace_start_sampled(4, interval) == 0);
    uint64_t rng = xs_seed(11);
    size_t truth = 0;
    for (size_t i = 0; i < n + nbig; i++) {
        size_t s = i < n ? xs_range(&rng, 16, 256) : xs_range(&rng, 4096, 65536);
        v[i] = sampled_site(s);
        CHECK(v[i] != NULL);
        truth += s;
    }
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    CHECK(neap_snapshot_sample_interval(s) == interval);
    CHECKF(neap_snapshot_count(s) < (n + nbig) / 4, "%zu traces of %zu", neap_snapshot_count(s),
           n + nbig);
    const neap_statistic_t *st, *a;
    size_t ns;
    stats(s, NEAP_KEY_LINENO, 0, &st, &ns);
    print_stats("sampled", st, ns);
    CHECK((a = at_line(st, ns, line_sampled)) != NULL);
    double size = (double)a->size, count = (double)a->count;
    printf("estimate %zu bytes in %zu blocks (%zu traces); truth %zu bytes in %zu\n", a->size,
           a->count, neap_snapshot_count(s), truth, n + nbig);
    CHECKF(size > 0.93 * (double)truth && size < 1.07 * (double)truth, "size %.0f, truth %zu", size,
           truth);
    CHECKF(count > 0.93 * (double)(n + nbig) && count < 1.07 * (double)(n + nbig), "count %.0f",
           count);
    size_t all = total_size(st, ns);
    CHECK(all >= a->size && (double)all < 1.07 * (double)truth);
    neap_snapshot_free(s);
    for (size_t i = 0; i < n + nbig; i++)
        free(v[i]);
    free(v);
    neap_trace_stop();
}

/* --- pinning --------------------------------------------------------------- */
static int line_pin_a, line_pin_b, line_pin_c, line_pin_d, line_pin_e;
void *pin_a(void);
void *pin_b(void);
void *pin_c(void);
void *pin_d(void);
void *pin_e(void);
SITE void *pin_a(void) {
    void *p = malloc(64); line_pin_a = __LINE__;
    KEEP(p);
    return p;
}
SITE void *pin_b(void) {
    void *p = malloc(4000); line_pin_b = __LINE__;
    KEEP(p);
    return p;
}
SITE void *pin_c(void) {
    void *p = malloc(3u << 20); line_pin_c = __LINE__;
    KEEP(p);
    return p;
}
SITE void *pin_d(void) {
    void *p = malloc(464); line_pin_d = __LINE__;
    KEEP(p);
    return p;
}
SITE void *pin_e(void) {
    void *p = malloc(464); line_pin_e = __LINE__;
    KEEP(p);
    return p;
}

static void *pa[1000], *pb[100], *pd[32];

static void print_pins(const neap_pinning_t *v, size_t n) {
    printf("%10s %10s %6s %6s %6s %6s %7s  site\n", "live", "pinned", "pages", "shared", "arenas",
           "count", "ratio");
    for (size_t i = 0; i < n; i++)
        printf("%10zu %10zu %6zu %6zu %6zu %6zu %7.2f  %s:%d\n", v[i].live, v[i].pinned, v[i].pages,
               v[i].shared_pages, v[i].arenas, v[i].count,
               v[i].live ? (double)v[i].pinned / (double)v[i].live : 0.0, v[i].frame[0].filename,
               v[i].frame[0].lineno);
}

static void test_pinning(void) {
    CHECK(neap_trace_start(4) == 0);
    for (int i = 0; i < 1000; i++)
        pa[i] = pin_a();
    for (int i = 0; i < 1000; i++)
        if (i % 100 != 0)
            free(pa[i]);
    for (int i = 0; i < 100; i++)
        pb[i] = pin_b();
    void *huge = pin_c();
    for (int i = 0; i < 32; i++)
        pd[i] = i % 2 ? pin_d() : pin_e();
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_pinning_t *v, *a, *b, *c, *d, *e;
    size_t n;
    CHECKF(neap_snapshot_pinning(s, NEAP_KEY_LINENO, &v, &n) == 0, "%s", neap_snapshot_error());
    print_pins(v, n);
    for (size_t i = 1; i < n; i++)
        CHECK(v[i - 1].pinned >= v[i].pinned);

    /* A: 10 survivors of 64 bytes, 100 blocks apart (63 to a page): a page each */
    CHECK((a = pin_at_line(v, n, line_pin_a)) != NULL);
    CHECK(a->live == 640 && a->count == 10 && a->pages == 10 && a->shared_pages == 0);
    CHECK(a->pinned == 10 * 4096 && a->arenas >= 1 && a->arenas <= 2);
    /* B: 100 blocks of 4000 bytes kept: about one page each, ratio about 1 */
    CHECK((b = pin_at_line(v, n, line_pin_b)) != NULL);
    double ratio = (double)b->pinned / (double)b->live;
    CHECK(b->live == 400000 && b->count == 100 && b->shared_pages == 0);
    CHECKF(ratio >= 1.0 && ratio < 1.1 && b->pages >= 98 && b->pages <= 110,
           "ratio %.3f, %zu pages", ratio, b->pages);
    CHECK(b->pinned == b->pages * 4096);
    /* C: a huge block pins exactly its pages, no arena */
    CHECK((c = pin_at_line(v, n, line_pin_c)) != NULL);
    CHECK(c->live == 3u << 20 && c->count == 1 && c->arenas == 0 && c->shared_pages == 0);
    CHECKF(c->pages == 768 && c->pinned == 768 * 4096, "%zu pages", c->pages);
    CHECK(v[0].frame[0].lineno == line_pin_c);
    /* D and E: 16 blocks of 464 bytes each, interleaved, 8 to a page (a size
     * class nothing else uses): 4 pages, all shared, split evenly */
    CHECK((d = pin_at_line(v, n, line_pin_d)) != NULL);
    CHECK((e = pin_at_line(v, n, line_pin_e)) != NULL);
    CHECK(d->live == 16 * 464 && e->live == 16 * 464);
    CHECKF(d->pages == 4 && e->pages == 4 && d->shared_pages == 4 && e->shared_pages == 4,
           "%zu and %zu pages", d->pages, e->pages);
    CHECKF(d->pinned == 2 * 4096 && e->pinned == 2 * 4096, "%zu and %zu", d->pinned, e->pinned);

    /* by file: every site here is one */
    CHECK(neap_snapshot_pinning(s, NEAP_KEY_FILENAME, &v, &n) == 0);
    CHECK(n >= 1 && here(&v[0].frame[0]));
    CHECK(v[0].live == 640 + 400000 + (3u << 20) + 32 * 464);

    neap_snapshot_free(s);
    for (int i = 0; i < 1000; i += 100)
        free(pa[i]);
    free_all(pb, 100);
    free_all(pd, 32);
    free(huge);
    neap_trace_stop();
}

/* --- errors --------------------------------------------------------------- */
static void test_errors(void) {
    CHECK(!neap_trace_is_tracing());
    errno = 0;
    CHECK(neap_trace_take_snapshot() == NULL && errno == EINVAL);
    CHECK(strstr(neap_snapshot_error(), "not tracing") != NULL);

    const neap_statistic_t *v;
    const neap_statistic_diff_t *d;
    const neap_pinning_t *p;
    size_t n;
    errno = 0;
    CHECK(neap_snapshot_statistics(NULL, NEAP_KEY_LINENO, 0, &v, &n) == -1 && errno == EINVAL);
    CHECK(neap_snapshot_count(NULL) == 0);
    neap_snapshot_free(NULL);
    errno = 0;
    CHECK(neap_snapshot_load(NULL) == NULL && errno == EINVAL);

    CHECK(neap_trace_start(4) == 0);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    errno = 0;
    CHECK(neap_snapshot_statistics(s, (neap_key_t)7, 0, &v, &n) == -1 && errno == EINVAL);
    CHECK(strstr(neap_snapshot_error(), "key 7") != NULL);
    errno = 0;
    CHECK(neap_snapshot_statistics(s, NEAP_KEY_LINENO, 0, NULL, &n) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_compare_to(s, NULL, NEAP_KEY_LINENO, 0, &d, &n) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_compare_to(s, s, NEAP_KEY_TRACEBACK, 1, &d, &n) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_pinning(s, (neap_key_t)-1, &p, &n) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_dump(s, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_snapshot_dump(NULL, "x") == -1 && errno == EINVAL);
    CHECK(neap_snapshot_filter_traces(NULL, NULL, 0) == NULL && errno == EINVAL);
    neap_snapshot_free(s);

    /* an empty snapshot: nothing traced since clear */
    neap_trace_clear_traces();
    s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    CHECK(neap_snapshot_count(s) == 0);
    CHECK(neap_snapshot_statistics(s, NEAP_KEY_TRACEBACK, 0, &v, &n) == 0 && n == 0);
    CHECK(neap_snapshot_pinning(s, NEAP_KEY_LINENO, &p, &n) == 0 && n == 0);
    CHECK(neap_snapshot_compare_to(s, s, NEAP_KEY_LINENO, 1, &d, &n) == 0 && n == 0);
    neap_snapshot_free(s);
    neap_trace_stop();
    errno = 0;
    CHECK(neap_trace_take_snapshot() == NULL && errno == EINVAL);
}

/* --- threads -------------------------------------------------------------- */
static _Atomic int churn_stop;
static neap_snapshot_t *shared[2];
static const neap_statistic_t *want_stats[2][3];
static size_t want_n[2][3];

static void *churn(void *arg) {
    uint64_t rng = xs_seed((uint64_t)(uintptr_t)arg);
    void *slot[64] = {0};
    while (!atomic_load(&churn_stop)) {
        size_t i = (size_t)(xs_next(&rng) % 64);
        free(slot[i]);
        size_t size = xs_range(&rng, 16, 9000);
        slot[i] = xs_next(&rng) % 2 ? site_a(size) : site_b(size);
    }
    for (int i = 0; i < 64; i++)
        free(slot[i]);
    return NULL;
}

static void *reader(void *arg) {
    uint64_t rng = xs_seed((uint64_t)(uintptr_t)arg + 100);
    char path[512];
    snprintf(path, sizeof path, "%s/t%u.bin", tmpdir, (unsigned)(uintptr_t)arg);
    for (int r = 0; r < 200; r++) {
        int w = (int)(xs_next(&rng) % 2), k = (int)(xs_next(&rng) % 3);
        const neap_statistic_t *v;
        const neap_statistic_diff_t *d;
        const neap_pinning_t *p;
        size_t n;
        switch (xs_next(&rng) % 5) {
        case 0:
            stats(shared[w], (neap_key_t)k, 0, &v, &n);
            CHECK(v == want_stats[w][k] && n == want_n[w][k]);
            break;
        case 1:
            CHECK(neap_snapshot_compare_to(shared[w], shared[1 - w], (neap_key_t)k, 0, &d, &n) ==
                  0);
            CHECK(n >= want_n[w][k]);
            break;
        case 2: {
            neap_filter_t f = {1, "*test_snapshot.c", line_b, (int)(xs_next(&rng) % 2)};
            neap_snapshot_t *x = neap_snapshot_filter_traces(shared[w], &f, 1);
            CHECK(x != NULL);
            stats(x, NEAP_KEY_LINENO, 0, &v, &n);
            CHECK(n <= 1);
            neap_snapshot_free(x);
            break;
        }
        case 3:
            CHECK(neap_snapshot_pinning(shared[w], (neap_key_t)k, &p, &n) == 0);
            CHECK(n == want_n[w][k]);
            break;
        default:
            CHECKF(neap_snapshot_dump(shared[w], path) == 0, "%s", neap_snapshot_error());
            break;
        }
    }
    unlink(path);
    return NULL;
}

static void test_threads(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/neap-snapshot-XXXXXX", t && *t ? t : "/tmp");
    CHECK(mkdtemp(tmpdir) != NULL);
    CHECK(neap_trace_start(8) == 0);
    pthread_t th[4];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
    /* snapshots of a moving target: each is consistent in itself */
    for (int r = 0; r < 20; r++) {
        neap_snapshot_t *s = neap_trace_take_snapshot();
        CHECKF(s != NULL, "%s", neap_snapshot_error());
        const neap_statistic_t *v;
        size_t n, blocks = 0;
        stats(s, NEAP_KEY_LINENO, 0, &v, &n);
        for (size_t i = 0; i < n; i++)
            blocks += v[i].count;
        CHECK(blocks == neap_snapshot_count(s));
        if (r < 2)
            shared[r] = s;
        else
            neap_snapshot_free(s);
        usleep(1000);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 3; k++)
            stats(shared[w], (neap_key_t)k, 0, &want_stats[w][k], &want_n[w][k]);
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    neap_snapshot_free(shared[0]);
    neap_snapshot_free(shared[1]);
    neap_trace_stop();
    rmdir(tmpdir);
}

/* --- without DWARF ---------------------------------------------------------- */
static void test_nodwarf(void) {
    setenv("NEAP_SYMBOLS_NO_LIBDW", "1", 1); /* read when symbols.c first resolves */
    CHECK(neap_trace_start(8) == 0);
    for (int i = 0; i < 100; i++)
        va[i] = site_a(1000);
    for (int i = 0; i < 50; i++)
        vb[i] = site_b(3000);
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const neap_statistic_t *v;
    size_t n;
    stats(s, NEAP_KEY_LINENO, 0, &v, &n);
    print_stats("lineno without DWARF", v, n);
    /* no lines: the program's path, and the functions keep the sites apart */
    CHECK(n >= 2 && v[0].size == 150000 && v[0].count == 50 && v[1].size == 100000 &&
          v[1].count == 100);
    CHECK(v[0].frame[0].lineno == 0 && v[1].frame[0].lineno == 0);
    CHECK(ends_with(v[0].frame[0].filename, "test_snapshot") && v[0].frame[0].module != NULL &&
          strcmp(v[0].frame[0].filename, v[0].frame[0].module) == 0);
    CHECK(v[0].frame[0].function && strcmp(v[0].frame[0].function, "site_b") == 0);
    CHECK(v[1].frame[0].function && strcmp(v[1].frame[0].function, "site_a") == 0);
    stats(s, NEAP_KEY_FILENAME, 0, &v, &n);
    CHECK(n >= 1 && ends_with(v[0].frame[0].filename, "test_snapshot") && v[0].size == 250000);

    /* dump and load, compare with the loaded one, pinning */
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/neap-snapshot-XXXXXX", t && *t ? t : "/tmp");
    CHECK(mkdtemp(tmpdir) != NULL);
    char path[512];
    tmp_path(path, sizeof path, "snap.bin");
    CHECKF(neap_snapshot_dump(s, path) == 0, "%s", neap_snapshot_error());
    neap_snapshot_t *l = neap_snapshot_load(path);
    CHECKF(l != NULL, "%s", neap_snapshot_error());
    same_stats(s, l, NEAP_KEY_LINENO, 0);
    same_stats(s, l, NEAP_KEY_TRACEBACK, 0);
    same_stats(s, l, NEAP_KEY_FILENAME, 1);
    free_all(va, 40);
    neap_snapshot_t *s2 = neap_trace_take_snapshot();
    CHECKF(s2 != NULL, "%s", neap_snapshot_error());
    const neap_statistic_diff_t *d;
    CHECK(neap_snapshot_compare_to(s2, l, NEAP_KEY_LINENO, 0, &d, &n) == 0 && n >= 2);
    CHECK(strcmp(d[0].frame[0].function, "site_a") == 0 && d[0].size_diff == -40000 &&
          d[0].count_diff == -40);
    const neap_pinning_t *p;
    CHECK(neap_snapshot_pinning(l, NEAP_KEY_LINENO, &p, &n) == 0 && n >= 2);
    CHECK(p[0].live == 150000 && p[0].pinned >= 150000);
    neap_snapshot_free(s);
    neap_snapshot_free(s2);
    neap_snapshot_free(l);
    unlink(path);
    rmdir(tmpdir);
    free_all(va + 40, 60);
    free_all(vb, 50);
    neap_trace_stop();
}

int main(int argc, char **argv) {
    const char *s = argc > 1 ? argv[1] : "lineno";
    setvbuf(stdout, NULL, _IONBF, 0); /* no stdio buffer allocated while tracing */
    if (!strcmp(s, "lineno"))
        test_lineno();
    else if (!strcmp(s, "filename"))
        test_filename();
    else if (!strcmp(s, "traceback"))
        test_traceback();
    else if (!strcmp(s, "cumulative"))
        test_cumulative();
    else if (!strcmp(s, "compare"))
        test_compare();
    else if (!strcmp(s, "filter"))
        test_filter();
    else if (!strcmp(s, "dump"))
        test_dump();
    else if (!strcmp(s, "sampled"))
        test_sampled();
    else if (!strcmp(s, "pinning"))
        test_pinning();
    else if (!strcmp(s, "errors"))
        test_errors();
    else if (!strcmp(s, "nodwarf"))
        test_nodwarf();
    else if (!strcmp(s, "threads"))
        test_threads();
    else {
        fprintf(stderr, "unknown section %s\n", s);
        return 2;
    }
    return test_status();
}

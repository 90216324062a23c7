/*
 * common.c: clock, RSS sampling, failures, checked allocation wrappers and
 * the one-line JSON report shared by all neapwork workloads.
 *
 * RSS is read from /proc/self/statm (resident pages * page size), often
 * (every 10 ms, for the peak).  Pss is read from /proc/self/smaps_rollup at
 * the explicit samples only (rss_begin, rss_sample, rss_after_free,
 * rss_idle, rss_settle, rss_mark): it walks the page tables (about 6 ms per
 * GiB), and the time it takes is reported as untimed_seconds, which the
 * runner subtracts like the idle pause.  Why Pss: an allocator that meshes
 * (neap with NEAP_MESH=1) maps one physical page at several virtual pages,
 * and RSS counts it once per virtual page, Pss once; for private anonymous
 * memory (every other allocator) Pss equals RSS.  The report is assembled
 * in a static buffer and written with write(2), so that printing it does
 * not allocate through the allocator under test.
 */
#define _GNU_SOURCE
#include "common.h"

#include "../../include/neap.h"     /* neap_stats_t, looked up with dlsym */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

const char *g_workload = "neapwork";

size_t scaled(const opts_t *o, double base, size_t min)
{
    double v = base * o->scale + 0.5;
    size_t n = v >= 1.0 ? (size_t)v : 0;
    return n < min ? min : n;
}

const char *order_name(order_t ord)
{
    switch (ord) {
    case ORDER_LIFO: return "lifo";
    case ORDER_FIFO: return "fifo";
    default:         return "random";
    }
}

/* ---- failures ------------------------------------------------------------ */

/* "neapwork NAME: <what><message>" on stderr, then exit status 1. */
__attribute__((noreturn)) static void fail_exit(const char *what, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "neapwork %s: %s%s\n", g_workload, what, msg);
    _exit(1);
}

void check_failed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_exit("check failed: ", fmt, ap);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_exit("", fmt, ap);
}

void block_mismatch(const void *p, size_t n, size_t off)
{
    check_failed("block %p of %zu bytes: pattern differs at byte %zu", p, n, off);
}

void check_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    if (n <= FILL_FULL_MAX) {
        for (size_t k = 0; k < n; k++)
            if (b[k])
                check_failed("calloc block %p of %zu bytes: byte %zu not zero", p, n, k);
        return;
    }
    for (size_t off = 0; off + 16 <= n; off += 4096)
        if (get64(b + off))
            check_failed("calloc block %p of %zu bytes: byte %zu not zero", p, n, off);
    if (get64(b + n - 8))
        check_failed("calloc block %p of %zu bytes: byte %zu not zero", p, n, n - 8);
}

static void *checked(void *p, size_t n, size_t align, const char *what)
{
    if (!p)
        die("%s(%zu) returned NULL", what, n);
    if (n >= align && ((uintptr_t)p & (align - 1)))
        check_failed("%s(%zu) returned %p, not %zu-byte aligned", what, n, p, align);
    return p;
}

void *xmalloc(size_t n) { return checked(malloc(n), n, 16, "malloc"); }
void *xcalloc(size_t n) { return checked(calloc(1, n), n, 16, "calloc"); }
void *xrealloc(void *p, size_t n) { return checked(realloc(p, n), n, 16, "realloc"); }

void *xmemalign(size_t align, size_t n)
{
    void *p = NULL;
    int err = posix_memalign(&p, align, n);
    if (err)
        die("posix_memalign(%zu, %zu) failed: %s", align, n, strerror(err));
    if ((uintptr_t)p & (align - 1))
        check_failed("posix_memalign(%zu, %zu) returned %p", align, n, p);
    return p;
}

void *book_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap(%zu) for bookkeeping failed: %s", bytes, strerror(errno));
    return p;
}

void book_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes ? bytes : 1);
}

/* ---- time ------------------------------------------------------------------ */

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sleep_seconds(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---- RSS sampler -------------------------------------------------------------- */

#define PEAK_INTERVAL 0.010
#define SERIES_INTERVAL 0.050
#define SERIES_CAP 4096

static struct {
    int fd;
    long page;
    double t0;
    double next_peak, next_series, series_interval;
    long base, peak, after_free, after_idle;
    double idle_seconds;   /* time spent in rss_idle: not the allocator's */
    /* Pss, bytes, at the explicit samples; -1 when not read (or no
     * smaps_rollup: pss_ok false) */
    bool pss_ok, pss_peak_sampled;
    int pss_fd;
    long pss_base, pss_peak, pss_after_free, pss_after_idle;
    double untimed_seconds;    /* reading Pss and other measuring: not the allocator's */
    int nmarks;
    struct { char name[32]; long rss, pss; double t; char neap[256]; } mark[16];
    int n;
    double t[SERIES_CAP];
    long rss[SERIES_CAP];
} S = { .fd = -1, .after_free = -1, .after_idle = -1, .pss_fd = -1, .pss_base = -1,
        .pss_peak = -1, .pss_after_free = -1, .pss_after_idle = -1 };

unsigned g_poll_count;

static long rss_read(void)
{
    char buf[128];
    ssize_t len = S.fd >= 0 ? pread(S.fd, buf, sizeof buf - 1, 0) : -1;
    if (len <= 0) {
        if (S.fd >= 0)
            close(S.fd);
        S.fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (S.fd < 0)
            die("cannot open /proc/self/statm: %s", strerror(errno));
        len = pread(S.fd, buf, sizeof buf - 1, 0);
        if (len <= 0)
            die("cannot read /proc/self/statm");
    }
    buf[len] = 0;
    /* "size resident shared ..." in pages */
    char *q = buf;
    strtol(q, &q, 10);
    long resident = strtol(q, NULL, 10);
    return resident * S.page;
}

/* Pss in bytes from /proc/self/smaps_rollup ("Pss:  N kB"), -1 if it cannot
 * be read (kernels before 4.14); never allocates.  Its time is untimed. */
static char pss_buf[8192];

static long pss_read(void)
{
    double t0 = now();
    long pss = -1;
    if (S.pss_fd < 0)
        S.pss_fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
    if (S.pss_fd >= 0) {
        ssize_t len = pread(S.pss_fd, pss_buf, sizeof pss_buf - 1, 0);
        if (len > 0) {
            pss_buf[len] = 0;
            char *q = strstr(pss_buf, "\nPss:");
            if (q)
                pss = strtol(q + 5, NULL, 10) * 1024;
        }
    }
    S.pss_ok = pss >= 0;
    if (pss > S.pss_peak)
        S.pss_peak = pss;
    S.untimed_seconds += now() - t0;
    return pss;
}

static void series_add(double t, long rss)
{
    if (S.n == SERIES_CAP) {
        /* full: keep every other point and sample half as often */
        int j = 0;
        for (int i = 0; i < S.n; i += 2, j++) {
            S.t[j] = S.t[i];
            S.rss[j] = S.rss[i];
        }
        S.n = j;
        S.series_interval *= 2;
    }
    S.t[S.n] = t;
    S.rss[S.n] = rss;
    S.n++;
    S.next_series = t + S.series_interval;
}

static long sample_at(double t, bool force_series)
{
    long r = rss_read();
    if (r > S.peak)
        S.peak = r;
    S.next_peak = t + PEAK_INTERVAL;
    if (force_series || t >= S.next_series)
        series_add(t, r);
    return r;
}

void rss_begin(void)
{
    S.page = sysconf(_SC_PAGESIZE);
    S.t0 = now();
    S.series_interval = SERIES_INTERVAL;
    S.peak = 0;
    S.base = sample_at(0.0, true);
    S.pss_base = pss_read();
}

long rss_sample(void)
{
    long r = sample_at(now() - S.t0, true);
    pss_read();
    S.pss_peak_sampled = true;
    return r;
}

long pss_sample(void) { return pss_read(); }

void rss_poll_clock(void)
{
    double t = now() - S.t0;
    if (t >= S.next_peak)
        sample_at(t, false);
}

void rss_after_free(void)
{
    S.after_free = sample_at(now() - S.t0, true);
    S.pss_after_free = pss_read();
}

void rss_idle(double seconds)
{
    double start = now(), end = start + seconds;
    for (;;) {
        double left = end - now();
        if (left <= 0)
            break;
        sleep_seconds(left < PEAK_INTERVAL ? left : PEAK_INTERVAL);
        rss_poll_clock();
    }
    S.after_idle = sample_at(now() - S.t0, true);
    S.pss_after_idle = pss_read();
    S.idle_seconds += now() - start;
}

/* Under neap (neap_stats_get found by dlsym): its meshing counters as a JSON
 * object into buf, else "".  Never allocates through the allocator. */
static void neap_mesh_stats(char *buf, size_t cap)
{
    static neap_stats_t st;
    void (*get)(neap_stats_t *) = (void (*)(neap_stats_t *))dlsym(RTLD_DEFAULT, "neap_stats_get");
    long (*opt)(neap_option_t) = (long (*)(neap_option_t))dlsym(RTLD_DEFAULT, "neap_option_get");
    buf[0] = 0;
    if (!get || !opt)
        return;
    long mesh = opt(NEAP_OPTION_MESH);
    if (mesh != 0 && mesh != 1)
        return;         /* a neap from before meshing: no such option, no such counters */
    double t0 = now();
    get(&st);
    snprintf(buf, cap, "{\"mesh\":%ld,\"meshes\":%zu,\"mesh_pages\":%zu,\"unmeshes\":%zu,"
             "\"mesh_ns\":%zu,\"pages_used\":%zu}", mesh, st.meshes,
             st.mesh_pages, st.unmeshes, st.mesh_ns, st.pages_used);
    S.untimed_seconds += now() - t0;
}

void rss_mark(const char *name)
{
    if (S.nmarks == (int)(sizeof S.mark / sizeof S.mark[0]))
        return;
    double t = now() - S.t0;
    long r = sample_at(t, true);
    snprintf(S.mark[S.nmarks].name, sizeof S.mark[0].name, "%s", name);
    S.mark[S.nmarks].rss = r;
    S.mark[S.nmarks].pss = pss_read();
    S.mark[S.nmarks].t = t;
    neap_mesh_stats(S.mark[S.nmarks].neap, sizeof S.mark[0].neap);
    S.nmarks++;
}

double rss_settle(double max_seconds, double interval)
{
    double start = now(), end = start + max_seconds;
    long prev[3] = { pss_read(), -1, -1 };
    long growth = (S.pss_peak_sampled ? S.pss_peak : S.peak) - (S.pss_base >= 0 ? S.pss_base : S.base);
    long tol = growth / 200 > (256L << 10) ? growth / 200 : (256L << 10);
    for (;;) {
        double stop = now() + interval;
        if (stop > end)
            stop = end;
        for (double left; (left = stop - now()) > 0;) {
            sleep_seconds(left < PEAK_INTERVAL ? left : PEAK_INTERVAL);
            rss_poll_clock();
        }
        long p = pss_read();
        if (p < 0)
            break;          /* no Pss: nothing to wait for */
        prev[2] = prev[1];
        prev[1] = prev[0];
        prev[0] = p;
        /* stable: three polls in a row (two intervals) within the tolerance */
        if (prev[2] >= 0 && labs(prev[0] - prev[2]) <= tol && labs(prev[0] - prev[1]) <= tol)
            break;
        if (now() >= end - 1e-3)
            break;
    }
    double took = now() - start;
    S.idle_seconds += took;
    return took;
}

void report_untimed(double seconds) { S.untimed_seconds += seconds; }

void rss_wait_for(_Atomic int *counter, int target)
{
    while (atomic_load(counter) < target) {
        sleep_seconds(0.002);
        rss_poll_clock();
    }
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

size_t distinct_pages(uintptr_t *pages, size_t m)
{
    qsort(pages, m, sizeof *pages, cmp_uptr);
    size_t distinct = 0;
    for (size_t k = 0; k < m; k++)
        if (k == 0 || pages[k] != pages[k - 1])
            distinct++;
    return distinct * FLOOR_PAGE;
}

/* ---- report ------------------------------------------------------------------- */

#define PHASES_MAX 16

static struct {
    char params[512];
    char check[512];
    char extra[4096];
    struct { char name[32]; double sec; } phase[PHASES_MAX];
    int nphases;
    uint64_t ops;
} R;

static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* JSON-escaped copy of s (our strings are plain ASCII; this is a safety net) */
static void append_str(char *buf, size_t cap, const char *s)
{
    append(buf, cap, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            append(buf, cap, "\\%c", c);
        else if (c < 0x20)
            append(buf, cap, "\\u%04x", c);
        else
            append(buf, cap, "%c", c);
    }
    append(buf, cap, "\"");
}

static void param_key(const char *key)
{
    if (R.params[0])
        append(R.params, sizeof R.params, ",");
    append_str(R.params, sizeof R.params, key);
    append(R.params, sizeof R.params, ":");
}

void report_param_int(const char *key, long v)
{
    param_key(key);
    append(R.params, sizeof R.params, "%ld", v);
}

void report_param_num(const char *key, double v)
{
    param_key(key);
    append(R.params, sizeof R.params, "%.10g", v);
}

void report_param_str(const char *key, const char *v)
{
    param_key(key);
    append_str(R.params, sizeof R.params, v);
}

void report_phase(const char *name, double seconds)
{
    if (R.nphases == PHASES_MAX)
        return;
    snprintf(R.phase[R.nphases].name, sizeof R.phase[0].name, "%s", name);
    R.phase[R.nphases].sec = seconds;
    R.nphases++;
}

void report_ops(uint64_t ops) { R.ops = ops; }

void report_check(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.check, sizeof R.check, fmt, ap);
    va_end(ap);
}

void report_extra(const char *key, const char *fmt, ...)
{
    char val[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    append(R.extra, sizeof R.extra, ",");
    append_str(R.extra, sizeof R.extra, key);
    append(R.extra, sizeof R.extra, ":%s", val);
}

static char out[SERIES_CAP * 40 + 16384];

void report_print(void)
{
    char neap[256];
    neap_mesh_stats(neap, sizeof neap);
    if (neap[0])
        report_extra("neap", "%s", neap);
    out[0] = 0;
    append(out, sizeof out, "{\"workload\":");
    append_str(out, sizeof out, g_workload);
    append(out, sizeof out, ",\"params\":{%s},\"ok\":true,\"check\":", R.params);
    append_str(out, sizeof out, R.check);
    append(out, sizeof out, ",\"phases\":{");
    for (int i = 0; i < R.nphases; i++) {
        append(out, sizeof out, i ? "," : "");
        append_str(out, sizeof out, R.phase[i].name);
        append(out, sizeof out, ":%.6f", R.phase[i].sec);
    }
    append(out, sizeof out, "},\"ops\":%llu,\"rss\":{\"base\":%ld,\"peak\":%ld",
           (unsigned long long)R.ops, S.base, S.peak);
    if (S.after_free >= 0)
        append(out, sizeof out, ",\"after_free\":%ld", S.after_free);
    if (S.after_idle >= 0)
        append(out, sizeof out, ",\"after_idle\":%ld", S.after_idle);
    append(out, sizeof out, "}");
    if (S.pss_ok || S.pss_base >= 0) {
        append(out, sizeof out, ",\"pss\":{\"base\":%ld,\"peak\":%ld", S.pss_base, S.pss_peak);
        if (S.pss_after_free >= 0)
            append(out, sizeof out, ",\"after_free\":%ld", S.pss_after_free);
        if (S.pss_after_idle >= 0)
            append(out, sizeof out, ",\"after_idle\":%ld", S.pss_after_idle);
        append(out, sizeof out, "},\"pss_peak_sampled\":%s", S.pss_peak_sampled ? "true" : "false");
    }
    if (S.nmarks) {
        append(out, sizeof out, ",\"marks\":{");
        for (int i = 0; i < S.nmarks; i++) {
            append(out, sizeof out, i ? "," : "");
            append_str(out, sizeof out, S.mark[i].name);
            append(out, sizeof out, ":{\"t\":%.3f,\"rss\":%ld,\"pss\":%ld", S.mark[i].t,
                   S.mark[i].rss, S.mark[i].pss);
            if (S.mark[i].neap[0])
                append(out, sizeof out, ",\"neap\":%s", S.mark[i].neap);
            append(out, sizeof out, "}");
        }
        append(out, sizeof out, "}");
    }
    append(out, sizeof out, ",\"idle_seconds\":%.6f,\"untimed_seconds\":%.6f", S.idle_seconds,
           S.untimed_seconds);
    append(out, sizeof out, ",\"series_interval\":%.3f,\"series\":[", S.series_interval);
    for (int i = 0; i < S.n; i++)
        append(out, sizeof out, "%s[%.3f,%ld]", i ? "," : "", S.t[i], S.rss[i]);
    append(out, sizeof out, "]%s}\n", R.extra);

    size_t len = strlen(out), done = 0;
    while (done < len) {
        ssize_t w = write(1, out + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("writing the report: %s", strerror(errno));
        }
        done += (size_t)w;
    }
}

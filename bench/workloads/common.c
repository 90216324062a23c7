/*
 * common.c: clock, RSS sampling, failures, checked allocation wrappers and
 * the one-line JSON report shared by all neapwork workloads.
 *
 * RSS is read from /proc/self/statm (resident pages * page size).  The
 * report is assembled in a static buffer and written with write(2), so that
 * printing it does not allocate through the allocator under test.
 */
#define _GNU_SOURCE
#include "common.h"

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
    int n;
    double t[SERIES_CAP];
    long rss[SERIES_CAP];
} S = { .fd = -1, .after_free = -1, .after_idle = -1 };

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
}

long rss_sample(void) { return sample_at(now() - S.t0, true); }

void rss_poll_clock(void)
{
    double t = now() - S.t0;
    if (t >= S.next_peak)
        sample_at(t, false);
}

void rss_after_free(void) { S.after_free = rss_sample(); }

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
    S.after_idle = rss_sample();
    S.idle_seconds += now() - start;
}

void rss_wait_for(_Atomic int *counter, int target)
{
    while (atomic_load(counter) < target) {
        sleep_seconds(0.002);
        rss_poll_clock();
    }
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
    append(out, sizeof out, "},\"idle_seconds\":%.6f", S.idle_seconds);
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

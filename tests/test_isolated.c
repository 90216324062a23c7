/* test_isolated.c -- neap_run_isolated: a function run in a forked child.
 *
 * Each case checks one promise of include/neap.h:
 *   result     the child's result comes back whole, and its length
 *   empty      a zero-length result, and out_size 0
 *   too-large  a result longer than out is an error (ERANGE), not cut short
 *              silently; out still holds its first out_size bytes
 *   failed     fn's negative return is NEAP_ISOLATED_FAILED
 *   crash      a child killed by SIGSEGV, SIGKILL or abort() gives
 *              NEAP_ISOLATED_SIGNAL(signal)
 *   exited     a child that calls exit() before fn returns
 *   hungry     300 MB allocated and touched in the child leave the parent's
 *              RSS where it was (the point of isolation)
 *   args       bad arguments give NEAP_ISOLATED_ERROR and EINVAL
 */
#include <errno.h>
#include <signal.h>

#include "neap.h"
#include "neap_test.h"

static long fn_text(void *arg, void *buf, size_t cap) {
    const char *text = arg;
    size_t n = strlen(text);
    memcpy(buf, text, n < cap ? n : cap);
    return (long)n;
}

static long fn_negative(void *arg, void *buf, size_t cap) {
    (void)arg, (void)buf, (void)cap;
    return -5;
}

static long fn_crash(void *arg, void *buf, size_t cap) {
    (void)buf, (void)cap;
    int sig = *(int *)arg;
    if (sig == SIGABRT) abort();
    raise(sig);
    return 0;
}

static long fn_exit(void *arg, void *buf, size_t cap) {
    (void)arg, (void)buf, (void)cap;
    exit(0);
}

/* Allocates and touches `mb` MB in small and large blocks, sums a pattern,
 * and returns the sum as text. */
static long fn_hungry(void *arg, void *buf, size_t cap) {
    size_t mb = *(size_t *)arg;
    size_t n = mb * MiB / 100;
    char **v = neap_malloc(n * sizeof *v);
    if (v == NULL) return -1;
    unsigned long long sum = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = neap_malloc(100);
        if (v[i] == NULL) return -1;
        memset(v[i], (int)(i & 0xff), 100);
    }
    for (size_t i = 0; i < n; i++) sum += (unsigned char)v[i][i % 100];
    return snprintf(buf, cap, "%llu", sum);
}

static size_t rss_now(void) {
    neap_process_memory_t pm;
    CHECK(neap_process_memory(&pm) == 0);
    return pm.rss;
}

static void case_result(void) {
    char out[64];
    memset(out, 'z', sizeof out);
    long r = neap_run_isolated(fn_text, (void *)"hello from the child", out, sizeof out);
    CHECKF(r == 20, "r = %ld (%s)", r, neap_isolated_strerror(r));
    CHECK(memcmp(out, "hello from the child", 20) == 0);
    CHECK(out[20] == 'z');   /* nothing written past the result */
}

static void case_empty(void) {
    char out[4] = "abc";
    long r = neap_run_isolated(fn_text, (void *)"", out, sizeof out);
    CHECKF(r == 0, "r = %ld", r);
    CHECK(strcmp(out, "abc") == 0);
    r = neap_run_isolated(fn_text, (void *)"", NULL, 0);
    CHECKF(r == 0, "r = %ld", r);
}

static void case_too_large(void) {
    char out[8];
    errno = 0;
    long r = neap_run_isolated(fn_text, (void *)"0123456789abcdef", out, sizeof out);
    CHECKF(r == NEAP_ISOLATED_TOO_LARGE, "r = %ld", r);
    CHECK(errno == ERANGE);
    CHECK(memcmp(out, "01234567", 8) == 0);
    CHECK(strstr(neap_isolated_strerror(r), "larger") != NULL);
    r = neap_run_isolated(fn_text, (void *)"x", NULL, 0);
    CHECKF(r == NEAP_ISOLATED_TOO_LARGE, "r = %ld", r);
}

static void case_failed(void) {
    char out[8];
    long r = neap_run_isolated(fn_negative, NULL, out, sizeof out);
    CHECKF(r == NEAP_ISOLATED_FAILED, "r = %ld", r);
}

static void case_crash(void) {
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer's own handler takes a SIGSEGV the function raises and
     * ends the child with its report, before the signal can end it */
    int sigs[] = {SIGKILL, SIGABRT};
#else
    int sigs[] = {SIGSEGV, SIGKILL, SIGABRT};
#endif
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        char out[8];
        long r = neap_run_isolated(fn_crash, &sigs[i], out, sizeof out);
        CHECKF(NEAP_ISOLATED_IS_SIGNAL(r) && NEAP_ISOLATED_SIGNO(r) == sigs[i],
               "signal %d: r = %ld (%s)", sigs[i], r, neap_isolated_strerror(r));
        CHECK(r == NEAP_ISOLATED_SIGNAL(sigs[i]));
        CHECK(strstr(neap_isolated_strerror(r), "signal") != NULL);
    }
}

static void case_exited(void) {
    char out[8];
    long r = neap_run_isolated(fn_exit, NULL, out, sizeof out);
    CHECKF(r == NEAP_ISOLATED_EXITED, "r = %ld", r);
}

static void case_hungry(void) {
    size_t mb = (size_t)(300 * test_scale());
    if (mb < 20) mb = 20;
    char expect[32], out[32];
    /* the same sum, computed here in a small way */
    unsigned long long sum = 0;
    size_t n = mb * MiB / 100;
    for (size_t i = 0; i < n; i++) sum += (unsigned char)(i & 0xff);
    int len = snprintf(expect, sizeof expect, "%llu", sum);
    size_t before = rss_now();
    long r = neap_run_isolated(fn_hungry, &mb, out, sizeof out);
    size_t after = rss_now();
    CHECKF(r == len, "r = %ld (%s)", r, neap_isolated_strerror(r));
    CHECK(memcmp(out, expect, (size_t)len) == 0);
    CHECKF(after < before + 16 * MiB, "parent RSS grew from %zu to %zu KiB", before >> 10, after >> 10);
    printf("isolated: %zu MB used in the child; parent RSS %zu -> %zu KiB\n", mb, before >> 10,
           after >> 10);
}

static void case_args(void) {
    char out[8];
    errno = 0;
    CHECK(neap_run_isolated(NULL, NULL, out, sizeof out) == NEAP_ISOLATED_ERROR && errno == EINVAL);
    errno = 0;
    CHECK(neap_run_isolated(fn_text, (void *)"x", NULL, 8) == NEAP_ISOLATED_ERROR && errno == EINVAL);
    errno = 0;
    CHECK(neap_run_isolated(fn_text, (void *)"x", out, (size_t)-1) == NEAP_ISOLATED_ERROR &&
          errno == EINVAL);
}

int main(void) {
    case_result();
    case_empty();
    case_too_large();
    case_failed();
    case_crash();
    case_exited();
    case_hungry();
    case_args();
    printf("isolated: all cases passed\n");
    return test_status();
}

/*
 * main.c: the neapwork command line.
 *
 *   neapwork NAME [--scale F] [--threads N] [--keep K] [--order lifo|fifo|random]
 *                 [--seconds S]
 *   neapwork --list | --help
 *
 * Runs one workload and prints its report as exactly one JSON line on
 * stdout (exit 0).  A failed self-check prints "neapwork NAME: check failed:
 * ..." on stderr and exits 1; a bad command line exits 2.  An option a
 * workload does not take is an error too, so that a typo in the runner
 * cannot silently measure the wrong thing.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const workload_t workloads[] = {
    { "seed", "10^7 small objects (16-128 B) allocated then all freed; RSS after free and after 1 s idle",
      0, 0, run_seed },
    { "survivors", "as seed, but every K-th object (--keep, default 1000) survives the frees",
      OPT_KEEP, 0, run_survivors },
    { "churn", "single-threaded small-object churn (8-512 B) over ~4096 slots, --order lifo|fifo|random",
      OPT_ORDER, 0, run_churn },
    { "prodcons", "one producer thread allocates (16-1024 B), one consumer thread verifies and frees",
      0, 0, run_prodcons },
    { "server", "--threads N (default 4) request loops; objects 16 B-8 KiB, many freed by another thread",
      OPT_THREADS, 4, run_server },
    { "realloc", "strings grown by 1-64 B appends to 64 KiB-1 MiB, vectors grown 2x/1.5x to 4-16 MiB",
      0, 0, run_realloc },
    { "mixed", "sizes 16 B-4 MiB, ~250 MB live set replaced at random for --seconds S; RSS series",
      OPT_SECONDS, 0, run_mixed },
    { "scaling", "--threads N each doing the same thread-local small/medium churn; compare wall time",
      OPT_THREADS, 1, run_scaling },
    { "frees", "2.5*10^5 blocks of 1-4 KiB and 10^6 of 16-512 B, 99.9% freed at random (--threads N); free CPU, RSS vs floor",
      OPT_THREADS, 1, run_frees },
    { "redis", "a store of Redis's shape: 10^6 keys (4 blocks each, values 16-512 B), 90% deleted; Pss after, idle, settled (--seconds S, default 12), trimmed",
      OPT_SECONDS, 0, run_redis },
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static void usage(FILE *f)
{
    fprintf(f,
        "usage: neapwork NAME [--scale F] [--threads N] [--keep K]\n"
        "                     [--order lifo|fifo|random] [--seconds S]\n"
        "       neapwork --list | --help\n"
        "\n"
        "Runs one allocator workload and prints one JSON line on stdout.\n"
        "  --scale F    multiply object counts and iterations (default 1.0)\n"
        "  --threads N  threads (server: default 4; scaling, frees: default 1)\n"
        "  --keep K     survivors: every K-th object survives (default 1000)\n"
        "  --order O    churn: replacement order lifo, fifo or random (default random)\n"
        "  --seconds S  mixed: run time (default 10 * scale); redis: the longest wait\n"
        "               for Pss to settle after the first idle second (default 12)\n"
        "Exit status: 0 ok, 1 the workload's check failed, 2 bad command line.\n"
        "\nWorkloads:\n");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(f, "  %-10s %s\n", workloads[i].name, workloads[i].desc);
}

__attribute__((noreturn, format(printf, 1, 2))) static void bad_usage(const char *fmt, ...);
static void bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("neapwork: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(neapwork --help for usage)\n", stderr);
    exit(2);
}

static double parse_num(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        bad_usage("%s: bad value '%s' (expected a number in [%g, %g])", opt, s, lo, hi);
    return v;
}

static long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        bad_usage("%s: bad value '%s' (expected an integer in [%ld, %ld])", opt, s, lo, hi);
    return v;
}

int main(int argc, char **argv)
{
    opts_t o = { .scale = 1.0, .threads = 0, .keep = 1000, .order = ORDER_RANDOM, .seconds = 0 };
    unsigned given = 0;
    const char *name = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            for (size_t w = 0; w < NWORKLOADS; w++)
                printf("%s\t%s\n", workloads[w].name, workloads[w].desc);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (name)
                bad_usage("unexpected argument '%s' (one workload at a time)", a);
            name = a;
            continue;
        }
        /* --opt VALUE or --opt=VALUE */
        char opt[32];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(opt, sizeof opt, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(opt, sizeof opt, "%s", a);
            if (i + 1 >= argc)
                bad_usage("%s needs a value", a);
            val = argv[++i];
        }
        if (!strcmp(opt, "--scale")) {
            o.scale = parse_num(opt, val, 1e-6, 1000);
        } else if (!strcmp(opt, "--threads")) {
            o.threads = (int)parse_int(opt, val, 1, 1024);
            given |= OPT_THREADS;
        } else if (!strcmp(opt, "--keep")) {
            o.keep = parse_int(opt, val, 1, 1000000000L);
            given |= OPT_KEEP;
        } else if (!strcmp(opt, "--order")) {
            if (!strcmp(val, "lifo"))        o.order = ORDER_LIFO;
            else if (!strcmp(val, "fifo"))   o.order = ORDER_FIFO;
            else if (!strcmp(val, "random")) o.order = ORDER_RANDOM;
            else bad_usage("--order: bad value '%s' (expected lifo, fifo or random)", val);
            given |= OPT_ORDER;
        } else if (!strcmp(opt, "--seconds")) {
            o.seconds = parse_num(opt, val, 0.001, 86400);
            given |= OPT_SECONDS;
        } else {
            bad_usage("unknown option '%s'", a);
        }
    }
    if (!name)
        bad_usage("no workload named (neapwork --list shows them)");

    const workload_t *w = NULL;
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (!strcmp(workloads[i].name, name))
            w = &workloads[i];
    if (!w)
        bad_usage("unknown workload '%s' (neapwork --list shows them)", name);

    static const struct { unsigned bit; const char *opt; } names[] = {
        { OPT_THREADS, "--threads" }, { OPT_KEEP, "--keep" },
        { OPT_ORDER, "--order" }, { OPT_SECONDS, "--seconds" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((given & names[i].bit) && !(w->accepts & names[i].bit))
            bad_usage("workload '%s' takes no %s option", name, names[i].opt);

    if (!(given & OPT_THREADS))
        o.threads = w->default_threads;
    if (!(given & OPT_SECONDS))
        o.seconds = w->run == run_mixed ? 10.0 * o.scale : 0;   /* 0: the workload's default */

    g_workload = w->name;
    report_param_num("scale", o.scale);
    if (w->accepts & OPT_THREADS) report_param_int("threads", o.threads);
    if (w->accepts & OPT_KEEP)    report_param_int("keep", o.keep);
    if (w->accepts & OPT_ORDER)   report_param_str("order", order_name(o.order));
    if (w->accepts & OPT_SECONDS) report_param_num("seconds", o.seconds);

    w->run(&o);
    report_print();
    return 0;
}

/* test_release.c -- memory goes back to the OS (label: release).
 *
 * The problem neap exists for: a program allocates a lot of small objects,
 * frees them (all, or all but a few scattered survivors) and the process
 * should shrink.  RSS is read with neap_process_memory().
 *
 * Each scenario runs in a child process of its own (fork before any neap
 * call), so its RSS baseline is clean; the parent checks the exit status.
 * Linked against neap_nooverride and calling neap_malloc/neap_free
 * explicitly, so the C library's own allocations (stdio) stay out of neap.
 *
 *   A  ~200 MB of blocks of 16..512 bytes, free all, one malloc/free pair,
 *      sleep 50 ms (past the purge delay), one more small malloc/free:
 *      retained growth <= 10% of the peak growth (target 2%)
 *   B  the same, but every 1000th block (allocation order) survives:
 *      retained growth <= 12% of the peak growth (target 6%)
 *   C  A and B with NEAP_OPTION_PURGE_DELAY 0 set before, measured right
 *      after the frees and one malloc/free pair, no sleep
 *   D  A and B ending in neap_trim() instead of the sleep
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "neap.h"
#include "neap_test.h"

#define TOTAL_BYTES (200 * MiB)
#define MAX_BLOCKS ((size_t)2 << 20) /* the seed's sequence needs ~800000 */

enum end { END_SLEEP, END_NOW, END_TRIM };

struct scenario {
    const char *name;
    size_t keep_every;    /* 0: free all; k: keep every k-th block */
    long purge_delay;     /* < 0: leave the option alone */
    enum end end;
    double limit_percent; /* retained growth / peak growth, at most */
    double target_percent;
};

static size_t
rss_now(void)
{
    neap_process_memory_t m;
    CHECK(neap_process_memory(&m) == 0);
    return m.rss;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void
nudge(void)
{
    void *p = neap_malloc(32);
    CHECK(p != NULL);
    *(volatile char *)p = 1;
    neap_free(p);
}

static int
run(const struct scenario *sc)
{
    uint64_t seed = xs_seed(20240601);
    /* the pointer array comes straight from the kernel and is touched
     * before the baseline, so it is part of it */
    void **blk = mmap(NULL, MAX_BLOCKS * sizeof *blk, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t n = 0, total = 0, kept = 0, kept_bytes = 0, i;
    size_t rss0, rss_peak, rss_end;
    double peak_growth, left, percent;
    neap_stats_t st;

    CHECK(blk != MAP_FAILED);
    memset(blk, 0, MAX_BLOCKS * sizeof *blk);
    if (sc->purge_delay >= 0)
        CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, sc->purge_delay) == 0);
    nudge(); /* neap initialised before the baseline */
    rss0 = rss_now();

    while (total < TOTAL_BYTES) {
        size_t sz = xs_range(&seed, 16, 512);
        char *p = neap_malloc(sz);
        CHECK(p != NULL);
        CHECK(n < MAX_BLOCKS);
        memset(p, (int)(n & 0xff), sz);
        blk[n++] = p;
        total += sz;
    }
    rss_peak = rss_now();
    neap_stats_get(&st);

    for (i = 0; i < n; i++) {
        if (sc->keep_every != 0 && i % sc->keep_every == 0) {
            kept++;
            kept_bytes += neap_usable_size(blk[i]);
            continue;
        }
        neap_free(blk[i]);
    }
    nudge();
    switch (sc->end) {
    case END_SLEEP:
        sleep_ms(50);
        nudge();
        break;
    case END_TRIM:
        neap_trim();
        break;
    case END_NOW:
        break;
    }
    rss_end = rss_now();

    peak_growth = (double)rss_peak - (double)rss0;
    left = (double)rss_end - (double)rss0;
    percent = 100.0 * left / peak_growth;
    printf("%-28s blocks %zu (%.1f MB asked), kept %zu (%.2f MB): rss base %.1f MB, "
           "peak +%.1f MB, after +%.1f MB = %.2f%% of the peak growth "
           "(target %.0f%%, limit %.0f%%); arenas at the peak %zu\n",
           sc->name, n, total / 1e6, kept, kept_bytes / 1e6, rss0 / 1e6, peak_growth / 1e6,
           left / 1e6, percent, sc->target_percent, sc->limit_percent, st.arenas_current);
    neap_stats_get(&st);
    printf("%-28s after: arenas %zu, pages used %zu, dirty %zu, purged %.1f MB, unmapped "
           "%.1f MB, live %.2f MB\n",
           "", st.arenas_current, st.pages_used, st.pages_dirty, st.bytes_purged / 1e6,
           st.bytes_unmapped / 1e6, st.bytes_live / 1e6);
    fflush(stdout);

    if (percent > sc->target_percent)
        printf("%-28s NOTE: above the %.0f%% target (within the %.0f%% limit)\n", sc->name,
               sc->target_percent, sc->limit_percent);
    CHECKF(peak_growth > 0.8 * TOTAL_BYTES, "peak growth only %.1f MB", peak_growth / 1e6);
    CHECKF(percent <= sc->limit_percent, "%s: %.2f%% of the peak growth retained, limit %.0f%%",
           sc->name, percent, sc->limit_percent);

    /* the survivors are intact */
    for (i = 0; sc->keep_every != 0 && i < n; i += sc->keep_every) {
        size_t j, sz = neap_usable_size(blk[i]);
        const unsigned char *b = blk[i];
        CHECK(neap_owns(blk[i]));
        (void)sz;
        for (j = 0; j < 16; j++)
            CHECK(b[j] == (unsigned char)(i & 0xff));
        neap_free(blk[i]);
    }
    return 0;
}

static const struct scenario scenarios[] = {
    {"A free all", 0, -1, END_SLEEP, 10, 2},
    {"B keep 1/1000", 1000, -1, END_SLEEP, 12, 6},
    {"C free all, delay 0", 0, 0, END_NOW, 10, 2},
    {"C keep 1/1000, delay 0", 1000, 0, END_NOW, 12, 6},
    {"D free all, trim", 0, -1, END_TRIM, 10, 2},
    {"D keep 1/1000, trim", 1000, -1, END_TRIM, 12, 6},
};

int
main(int argc, char **argv)
{
    size_t i, failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        pid_t pid;
        int status;
        if (argc > 1 && strncmp(scenarios[i].name, argv[1], strlen(argv[1])) != 0)
            continue;
        fflush(stdout);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(run(&scenarios[i]));
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                printf("scenario %s: killed by signal %d\n", scenarios[i].name, WTERMSIG(status));
            else
                printf("scenario %s: failed (exit %d)\n", scenarios[i].name, WEXITSTATUS(status));
            failed++;
        }
    }
    if (failed) {
        printf("test_release: %zu scenario(s) failed\n", failed);
        return 1;
    }
    printf("test_release: ok\n");
    return 0;
}

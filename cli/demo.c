/* demo.c -- `neap demo`: neap side by side with the C library's malloc.
 *
 * The seed experiment of the project, in C.  A program allocates many small
 * objects (sizes like small Python objects), frees them, with or without a
 * few scattered survivors, and asks its allocator to give memory back.  How
 * much of what it grew does the process still hold?
 *
 *   parent                               child (one per scenario x allocator)
 *   ------                               -----------------------------------
 *   for each scenario:                   map the pointer array (mmap), touch it
 *     for each allocator:                read RSS ..................... before
 *       fork ------------------------->  allocate N objects ........... alloc
 *       read demo_result_t <--- pipe --  free all but every K-th,
 *       waitpid                            settle (sleep, tiny alloc) .. unref
 *                                        trim; count the survivors' pages;
 *                                          unmap the pointer array ..... collect
 *                                        write demo_result_t; _exit
 *   print the tables and a summary (or JSON)
 *
 * Fairness: every run is a fresh child forked from the same parent, so each
 * allocator starts from the same state; both run the same code through three
 * function pointers (malloc, free, trim); the object sizes come from the same
 * deterministic sequence; the pointer array lives outside both allocators
 * and its resident pages are subtracted from the readings.  This program
 * links neap_nooverride, so its malloc is the C library's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "neap.h"
#include "cli.h"

/* --- the workload --------------------------------------------------------- */

#define DEMO_DEFAULT_OBJECTS 10000000ULL /* 10^7 */
#define DEMO_DEFAULT_KEEP 1000ULL
#define DEMO_MAX_OBJECTS 1000000000ULL   /* 10^9: about 80 GB of objects */
#define DEMO_MIN_SIZE 16                 /* object sizes: DEMO_MIN_SIZE..DEMO_MAX_SIZE */
#define DEMO_MAX_SIZE 128
#define DEMO_SEED 42                     /* xorshift64 seed of the size sequence */
#define DEMO_SETTLE_MS 100               /* sleep before the "unref" reading, or
                                            2 * NEAP_PURGE_DELAY + 50 ms (an empty page
                                            waits up to twice the delay) if longer */
#define DEMO_SCENARIOS 2

#define DEMO_MB (1024.0 * 1024.0)
#define DEMO_MIN_GROWTH (1024.0 * 1024.0) /* less growth than this: no percentages */

/* xorshift64: the next value of the size sequence. */
static inline uint64_t demo_xorshift(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static inline size_t demo_next_size(uint64_t *state) {
    return DEMO_MIN_SIZE + (size_t)(demo_xorshift(state) % (DEMO_MAX_SIZE - DEMO_MIN_SIZE + 1));
}

/* --- the allocators under test -------------------------------------------- */

static int demo_libc_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

typedef struct demo_allocator_s {
    const char *name;       /* for people: "glibc malloc", "neap" */
    const char *key;        /* for JSON: "libc", "neap" */
    const char *trim_name;  /* the explicit give-back call, for people */
    void *(*malloc_fn)(size_t size);
    void (*free_fn)(void *p);
    int (*trim_fn)(void);   /* 1 if memory was given back */
} demo_allocator_t;

#define DEMO_ALLOCATORS 2
static const demo_allocator_t demo_allocators[DEMO_ALLOCATORS] = {
#if defined(__GLIBC__)
    {"glibc malloc", "libc", "malloc_trim(0)", malloc, free, demo_libc_trim},
#else
    {"libc malloc", "libc", "a no-op (no malloc_trim here)", malloc, free, demo_libc_trim},
#endif
    {"neap", "neap", "neap_trim()", neap_malloc, neap_free, neap_trim},
};

/* --- what a child measures ------------------------------------------------ */

/* The RSS readings, in order. */
enum { DEMO_BEFORE, DEMO_ALLOC, DEMO_UNREF, DEMO_COLLECT, DEMO_READINGS };
/* The timed phases: the allocations, the frees, the trim. */
enum { DEMO_T_ALLOC, DEMO_T_UNREF, DEMO_T_COLLECT, DEMO_TIMES };

/* Sent from the child to the parent through a pipe, as is (same program). */
typedef struct demo_result_s {
    int ok;                        /* 1 if the run completed, else see error */
    char error[200];               /* what went wrong, when ok == 0 */
    size_t rss[DEMO_READINGS];     /* bytes resident, the pointer array excluded */
    double seconds[DEMO_TIMES];    /* wall time of each phase */
    size_t peak_rss;               /* kernel high-water mark, pointer array included */
    size_t requested_bytes;        /* sum of the sizes asked for */
    size_t survivors;              /* objects left alive */
    size_t live_bytes;             /* sum of the survivors' sizes */
    size_t survivor_pages;         /* distinct pages holding a survivor's first byte */
    size_t array_bytes;            /* resident bytes of the pointer array */
    int trim_returned;             /* the trim call's return value */
    long purge_delay_ms;           /* neap's NEAP_PURGE_DELAY */
    long settle_ms;                /* how long the child slept before "unref" */
} demo_result_t;

typedef struct demo_config_s {
    unsigned long long objects;  /* objects allocated per run */
    unsigned long long keep;     /* scenario 2 keeps every keep-th object */
    int json;                    /* print JSON instead of tables */
} demo_config_t;

typedef struct demo_scenario_s {
    const char *key;          /* for JSON */
    unsigned long long keep;  /* keep every keep-th object; 0 keeps none */
} demo_scenario_t;

static double demo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void demo_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- the child ------------------------------------------------------------ */

/* Reads the RSS into *out, less `exclude` bytes; 0, or -1 with r->error set. */
static int demo_read_rss(demo_result_t *r, size_t exclude, size_t *out) {
    neap_process_memory_t pm;
    if (neap_process_memory(&pm) != 0) {
        snprintf(r->error, sizeof r->error, "cannot read /proc/self/status: %s",
                 strerror(errno));
        return -1;
    }
    *out = pm.rss > exclude ? pm.rss - exclude : 0;
    r->peak_rss = pm.peak_rss;
    return 0;
}

/* Sorts v[0..n) in place; heapsort, because it needs no memory (qsort may
 * call malloc, which would disturb the C library's heap under test). */
static void demo_sort(uintptr_t *v, size_t n) {
    for (size_t end = n, start = n / 2;;) {
        size_t root;
        if (start > 0) {
            root = --start;
        } else {
            if (end <= 1) return;
            end--;
            uintptr_t t = v[0];
            v[0] = v[end];
            v[end] = t;
            root = 0;
        }
        for (size_t child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && v[child + 1] > v[child]) child++;
            if (v[root] >= v[child]) break;
            uintptr_t t = v[root];
            v[root] = v[child];
            v[child] = t;
        }
    }
}

/* How many distinct pages hold the first byte of a survivor: no allocator
 * that gives memory back page by page can hold less than that many pages.
 * Overwrites objs[] with page numbers, so the survivors are lost. */
static size_t demo_count_survivor_pages(void **objs, size_t n, unsigned long long keep) {
    uintptr_t *pages = (uintptr_t *)objs;
    size_t m = 0;
    if (keep == 0) return 0;
    for (size_t i = 0; i < n; i += (size_t)keep) {
        uintptr_t page = (uintptr_t)objs[i] / NEAP_PAGE_SIZE;
        pages[m++] = page;
    }
    demo_sort(pages, m);
    size_t distinct = 0;
    for (size_t i = 0; i < m; i++) {
        if (i == 0 || pages[i] != pages[i - 1]) distinct++;
    }
    return distinct;
}

/* One run: the workload of `sc` on allocator `a`, measured into *r. */
static void demo_child_run(const demo_config_t *cfg, const demo_scenario_t *sc,
                           const demo_allocator_t *a, demo_result_t *r) {
    size_t n = (size_t)cfg->objects;
    long page = sysconf(_SC_PAGESIZE);
    size_t len = n * sizeof(void *);
    len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;

    r->purge_delay_ms = neap_option_get(NEAP_OPTION_PURGE_DELAY);
    r->settle_ms = DEMO_SETTLE_MS;
    if (2 * r->purge_delay_ms + 50 > DEMO_SETTLE_MS) r->settle_ms = 2 * r->purge_delay_ms + 50;

    /* The pointer array: straight from the kernel, every page touched now so
     * that its resident size is exactly `len` at every reading below. */
    void **objs = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (objs == MAP_FAILED) {
        snprintf(r->error, sizeof r->error, "cannot map the array of %zu pointers: %s", n,
                 strerror(errno));
        return;
    }
    memset(objs, 0, len);
    r->array_bytes = len;

    if (demo_read_rss(r, len, &r->rss[DEMO_BEFORE]) != 0) return;

    /* Allocation: write a few bytes at both ends of each object, as an
     * object header and its last field would be, so its pages are touched. */
    uint64_t rng = DEMO_SEED;
    double t0 = demo_now();
    for (size_t i = 0; i < n; i++) {
        size_t size = demo_next_size(&rng);
        unsigned char *p = a->malloc_fn(size);
        if (p == NULL) {
            snprintf(r->error, sizeof r->error,
                     "%s returned NULL for object %zu of %zu (%zu bytes)%s", a->name, i + 1,
                     n, size, errno == ENOMEM ? ": out of memory" : "");
            return;
        }
        uint64_t tag = (uint64_t)i;
        memcpy(p, &tag, sizeof tag);
        p[size - 1] = (unsigned char)i;
        objs[i] = p;
        r->requested_bytes += size;
    }
    r->seconds[DEMO_T_ALLOC] = demo_now() - t0;
    if (demo_read_rss(r, len, &r->rss[DEMO_ALLOC]) != 0) return;

    /* Unreference: free all but every keep-th object, in allocation order.
     * The size sequence is replayed to count the survivors' bytes. */
    rng = DEMO_SEED;
    t0 = demo_now();
    for (size_t i = 0; i < n; i++) {
        size_t size = demo_next_size(&rng);
        if (sc->keep != 0 && i % sc->keep == 0) {
            r->survivors++;
            r->live_bytes += size;
        } else {
            a->free_fn(objs[i]);
        }
    }
    r->seconds[DEMO_T_UNREF] = demo_now() - t0;

    /* Settle, the same for both allocators: neap gives empty pages back after
     * NEAP_PURGE_DELAY, checked on its allocation paths. */
    demo_sleep_ms(r->settle_ms);
    volatile unsigned char *tiny = a->malloc_fn(16);
    if (tiny != NULL) {
        tiny[0] = 1;
        a->free_fn((void *)tiny);
    }
    if (demo_read_rss(r, len, &r->rss[DEMO_UNREF]) != 0) return;

    /* Collect: the allocator's explicit give-back call.  The survivors stay
     * alive; only the array that pointed at them goes. */
    t0 = demo_now();
    r->trim_returned = a->trim_fn();
    r->seconds[DEMO_T_COLLECT] = demo_now() - t0;
    r->survivor_pages = demo_count_survivor_pages(objs, n, sc->keep);
    munmap(objs, len);
    if (demo_read_rss(r, 0, &r->rss[DEMO_COLLECT]) != 0) return;

    r->ok = 1;
}

static int demo_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads up to len bytes; returns how many were read before end of file. */
static size_t demo_read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    return got;
}

/* --- the parent ----------------------------------------------------------- */

/* Runs one child and fills *r; returns 0, or -1 with r->error set. */
static int demo_run_child(const demo_config_t *cfg, const demo_scenario_t *sc,
                          const demo_allocator_t *a, demo_result_t *r) {
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(r->error, sizeof r->error, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->error, sizeof r->error, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        demo_child_run(cfg, sc, a, r);
        _exit(demo_write_all(fds[1], r, sizeof *r) == 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t got = demo_read_all(fds[0], r, sizeof *r);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        memset(r, 0, sizeof *r);
        snprintf(r->error, sizeof r->error, "the %s child was killed by signal %d (%s)%s",
                 a->name, sig, strsignal(sig),
                 sig == SIGKILL ? "; out of memory? try a smaller --objects" : "");
        return -1;
    }
    if (got != sizeof *r) {
        memset(r, 0, sizeof *r);
        snprintf(r->error, sizeof r->error,
                 "the %s child exited with status %d without sending its results", a->name,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    r->error[sizeof r->error - 1] = '\0';
    return r->ok ? 0 : -1;
}

/* --- derived figures -------------------------------------------------------- */

typedef struct demo_figures_s {
    double growth;      /* bytes grown by the allocation phase (peak growth) */
    double held_unref;  /* bytes of that growth still held after the frees */
    double held_final;  /* bytes of that growth still held after the trim */
    double unref_pct;   /* % of growth given back by the frees alone */
    double collect_pct; /* % of growth given back after the trim */
    double final_pct;   /* % of growth still held at the end */
} demo_figures_t;

static demo_figures_t demo_figures(const demo_result_t *r) {
    demo_figures_t f;
    double before = (double)r->rss[DEMO_BEFORE];
    f.growth = (double)r->rss[DEMO_ALLOC] - before;
    f.held_unref = (double)r->rss[DEMO_UNREF] - before;
    f.held_final = (double)r->rss[DEMO_COLLECT] - before;
    if (f.growth >= DEMO_MIN_GROWTH) {
        f.unref_pct = 100.0 * (f.growth - f.held_unref) / f.growth;
        f.collect_pct = 100.0 * (f.growth - f.held_final) / f.growth;
        f.final_pct = 100.0 * f.held_final / f.growth;
    } else { /* too little grew to tell the allocator from the noise */
        f.unref_pct = f.collect_pct = f.final_pct = (double)NAN;
    }
    return f;
}

/* "12,345,678" */
static const char *demo_count(unsigned long long v, char *buf, size_t size) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* A percentage for people: "97%", "<1%", ">99%", "0%" (never "-0%"), or "-"
 * if undefined. */
static const char *demo_pct(double pct, char *buf, size_t size) {
    if (isnan(pct)) {
        snprintf(buf, size, "-");
    } else if (pct > 0.0 && pct < 0.5) {
        snprintf(buf, size, "<1%%");
    } else if (pct >= 99.5 && pct < 100.0) {
        snprintf(buf, size, ">99%%");
    } else {
        double rounded = floor(pct + 0.5);
        snprintf(buf, size, "%.0f%%", rounded == 0.0 ? 0.0 : rounded);
    }
    return buf;
}

/* Megabytes for people: "812 MB", "23 MB", "0.7 MB"; "43 KiB" below 0.1 MB,
 * "96 bytes" below 1 KiB. */
static const char *demo_mb(double bytes, char *buf, size_t size) {
    double mb = bytes / DEMO_MB;
    if (fabs(bytes) < 1024.0) {
        snprintf(buf, size, "%.0f bytes", bytes);
    } else if (fabs(mb) < 0.095) {
        snprintf(buf, size, "%.0f KiB", bytes / 1024.0);
    } else if (fabs(mb) < 9.95) {
        snprintf(buf, size, "%.1f MB", mb == 0.0 ? 0.0 : mb);
    } else {
        snprintf(buf, size, "%.0f MB", mb);
    }
    return buf;
}

/* The scenario's title: "all freed", "1 in 1000 objects survive". */
static const char *demo_title(const demo_scenario_t *sc, char *buf, size_t size) {
    if (sc->keep == 0) {
        snprintf(buf, size, "all freed");
    } else if (sc->keep == 1) {
        snprintf(buf, size, "all survive");
    } else {
        snprintf(buf, size, "1 in %llu objects survive", sc->keep);
    }
    return buf;
}


/* --- output for people ------------------------------------------------------ */

static void demo_print_table(const demo_scenario_t *sc, int number,
                             const demo_result_t res[DEMO_ALLOCATORS]) {
    char title[64], buf[4][32];
    printf("Scenario %d: %s", number, demo_title(sc, title, sizeof title));
    if (sc->keep == 0) {
        printf("\n\n");
    } else {
        const demo_result_t *r = res[0].ok ? &res[0] : &res[1];
        printf(" (%s survivor%s, %s of live data)\n\n",
               demo_count(r->survivors, buf[0], sizeof buf[0]), r->survivors == 1 ? "" : "s",
               demo_mb((double)r->live_bytes, buf[1], sizeof buf[1]));
    }
    /* Column groups: allocator | RSS readings | Allocation | Unreference |
     * Collect | Overall, each group as wide as its fields below. */
    static const struct { const char *label; int width; } groups[] = {
        {"", 12}, {"RSS in MB", 32}, {"Allocation", 17}, {"Unreference", 15},
        {"Collect (trim)", 15}, {"Overall", 10},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        int len = (int)strlen(groups[g].label);
        int pad = groups[g].width - len, left = pad - pad / 2;
        if (g == 1) { /* the RSS group: dashes, so it reads as a span */
            printf(" %.*s %s %.*s", left - 2, "--------------------", groups[g].label,
                   pad - left - 1, "--------------------");
        } else if (g + 1 == sizeof groups / sizeof groups[0]) { /* last: flush right */
            printf("%*s", groups[g].width, groups[g].label);
        } else {
            printf("%*s%s%*s", left, "", groups[g].label, pad / 2, "");
        }
    }
    printf("\n%-12s %7s %7s %7s %7s  %8s %6s  %6s %6s  %6s %6s  %8s\n", "allocator", "before",
           "alloc", "unref", "collect", "MB", "time", "back", "time", "back", "time",
           "held");
    for (int k = 0; k < DEMO_ALLOCATORS; k++) {
        const demo_result_t *r = &res[k];
        if (!r->ok) {
            printf("%-12s failed: %s\n", demo_allocators[k].name, r->error);
            continue;
        }
        demo_figures_t f = demo_figures(r);
        printf("%-12s %7.1f %7.1f %7.1f %7.1f  %+8.1f %5.2fs  %6s %5.2fs  %6s %5.2fs  %8s\n",
               demo_allocators[k].name, (double)r->rss[DEMO_BEFORE] / DEMO_MB,
               (double)r->rss[DEMO_ALLOC] / DEMO_MB, (double)r->rss[DEMO_UNREF] / DEMO_MB,
               (double)r->rss[DEMO_COLLECT] / DEMO_MB, f.growth / DEMO_MB,
               r->seconds[DEMO_T_ALLOC], demo_pct(f.unref_pct, buf[0], sizeof buf[0]),
               r->seconds[DEMO_T_UNREF], demo_pct(f.collect_pct, buf[1], sizeof buf[1]),
               r->seconds[DEMO_T_COLLECT], demo_pct(f.final_pct, buf[2], sizeof buf[2]));
    }
    printf("\n");
}

/* Appends to buf what allocator k did with its growth in one scenario:
 * "glibc malloc still holds 811 MB (100% of what it grew) after the frees,
 * and malloc_trim(0) brings it down to 12 MB (1%)". */
static void demo_say_allocator(char *buf, size_t size, int k, const demo_result_t *r) {
    const demo_allocator_t *a = &demo_allocators[k];
    demo_figures_t f = demo_figures(r);
    char mb1[32], mb2[32], p1[16], p2[16];
    size_t used = strlen(buf);
    double unref_held_pct = isnan(f.unref_pct) ? (double)NAN : 100.0 - f.unref_pct;
    used += (size_t)snprintf(buf + used, size - used,
                             "%s still holds %s (%s%s) after the frees", a->name,
                             demo_mb(f.held_unref, mb1, sizeof mb1),
                             demo_pct(unref_held_pct, p1, sizeof p1),
                             k == 0 ? " of what it grew" : "");
    if (used >= size) return;
    double change = f.held_unref - f.held_final;
    double threshold = fmax(1.0 * DEMO_MB, 0.01 * f.growth);
    if (fabs(change) < 0.5 * DEMO_MB) {
        snprintf(buf + used, size - used, ", and %s changes nothing", a->trim_name);
    } else if (change > 0 && change < threshold) {
        snprintf(buf + used, size - used, ", and %s gives back only %s more", a->trim_name,
                 demo_mb(change, mb1, sizeof mb1));
    } else if (change > 0) {
        snprintf(buf + used, size - used, ", and %s brings it down to %s (%s)", a->trim_name,
                 demo_mb(f.held_final, mb1, sizeof mb1),
                 demo_pct(f.final_pct, p2, sizeof p2));
    } else {
        snprintf(buf + used, size - used, ", and after %s it holds %s (%s)", a->trim_name,
                 demo_mb(f.held_final, mb2, sizeof mb2),
                 demo_pct(f.final_pct, p2, sizeof p2));
    }
}

/* Prints text wrapped at 78 columns: the first line starts at column
 * `first_indent` (the caller has printed what comes before it), the next
 * ones are indented by `indent`. */
static void demo_print_wrapped(const char *text, int indent, int first_indent) {
    const int width = 78;
    int col = first_indent, line_start = 1;
    while (*text != '\0') {
        while (*text == ' ') text++;
        size_t word = strcspn(text, " ");
        if (word == 0) break;
        /* keep a number with its unit: "0.7 MB", "4 KiB" */
        const char *next = text + word + 1;
        if (text[word] == ' ' && (strncmp(next, "MB", 2) == 0 || strncmp(next, "KiB", 3) == 0 ||
                                 strncmp(next, "bytes", 5) == 0)) {
            word += 1 + strcspn(next, " ");
        }
        if (!line_start && col + 1 + (int)word > width) {
            printf("\n%*s", indent, "");
            col = indent;
            line_start = 1;
        }
        if (!line_start) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)word, text);
        col += (int)word;
        text += word;
        line_start = 0;
    }
    putchar('\n');
}

static void demo_print_summary(const demo_scenario_t *sc,
                               const demo_result_t res[DEMO_ALLOCATORS]) {
    char text[2048], buf[3][32], title[64];
    for (int k = 0; k < DEMO_ALLOCATORS; k++) {
        if (!res[k].ok) {
            printf("%s: no comparison, the %s run failed (see the table).\n",
                   demo_title(sc, title, sizeof title), demo_allocators[k].name);
            return;
        }
    }
    if (sc->keep == 0) {
        snprintf(text, sizeof text, "With every object freed, ");
    } else if (sc->keep == 1) {
        snprintf(text, sizeof text, "With every object surviving (%s of live data), ",
                 demo_mb((double)res[0].live_bytes, buf[0], sizeof buf[0]));
    } else {
        snprintf(text, sizeof text, "With 1 in %llu objects surviving (%s of live data), ",
                 sc->keep, demo_mb((double)res[0].live_bytes, buf[0], sizeof buf[0]));
    }
    demo_figures_t f[DEMO_ALLOCATORS];
    for (int k = 0; k < DEMO_ALLOCATORS; k++) {
        f[k] = demo_figures(&res[k]);
        if (isnan(f[k].final_pct)) {
            size_t used = strlen(text);
            snprintf(text + used, sizeof text - used,
                     "%s grew the process by only %s, too little to tell the allocator "
                     "from the noise; try --objects 1000000 or more.",
                     demo_allocators[k].name, demo_mb(f[k].growth, buf[1], sizeof buf[1]));
            demo_print_wrapped(text, 2, 2);
            return;
        }
    }
    for (int k = 0; k < DEMO_ALLOCATORS; k++) {
        if (k > 0) strncat(text, "; ", sizeof text - strlen(text) - 1);
        demo_say_allocator(text, sizeof text, k, &res[k]);
    }
    size_t used = strlen(text);
    /* demo_allocators[0] is the C library's, [1] is neap */
    double diff = f[0].held_final - f[1].held_final;
    double larger = fmax(f[0].held_final, f[1].held_final);
    if (fabs(diff) < fmax(0.5 * DEMO_MB, 0.05 * larger)) {
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 ". In the end both hold about the same: %s for %s, %s for %s.",
                                 demo_mb(f[1].held_final, buf[0], sizeof buf[0]),
                                 demo_allocators[1].name,
                                 demo_mb(f[0].held_final, buf[1], sizeof buf[1]),
                                 demo_allocators[0].name);
    } else {
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 ". In the end %s holds %s %s than %s (%s against %s).",
                                 demo_allocators[1].name,
                                 demo_mb(fabs(diff), buf[0], sizeof buf[0]),
                                 diff > 0 ? "less" : "more", demo_allocators[0].name,
                                 demo_mb(f[1].held_final, buf[1], sizeof buf[1]),
                                 demo_mb(f[0].held_final, buf[2], sizeof buf[2]));
    }
    if (sc->keep != 0 && used < sizeof text) {
        /* The floor: pages that hold a survivor cannot be given back. */
        char pages[2][32];
        size_t p0 = res[0].survivor_pages, p1 = res[1].survivor_pages;
        if (p0 == p1) {
            snprintf(text + used, sizeof text - used,
                     " With either allocator the survivors sit on %s different %d KiB page%s "
                     "(%s), the least an allocator that gives memory back page by page "
                     "can hold.",
                     demo_count(p0, pages[0], sizeof pages[0]), NEAP_PAGE_SIZE / 1024,
                     p0 == 1 ? "" : "s",
                     demo_mb((double)p0 * NEAP_PAGE_SIZE, buf[0], sizeof buf[0]));
        } else {
            snprintf(text + used, sizeof text - used,
                     " The survivors sit on %s different %d KiB pages (%s) with %s and on %s "
                     "(%s) with %s, the least an allocator that gives memory back page by "
                     "page can hold.",
                     demo_count(p0, pages[0], sizeof pages[0]), NEAP_PAGE_SIZE / 1024,
                     demo_mb((double)p0 * NEAP_PAGE_SIZE, buf[0], sizeof buf[0]),
                     demo_allocators[0].name, demo_count(p1, pages[1], sizeof pages[1]),
                     demo_mb((double)p1 * NEAP_PAGE_SIZE, buf[1], sizeof buf[1]),
                     demo_allocators[1].name);
        }
        used = strlen(text);
        /* What each holds beyond its own floor: the allocator's overhead. */
        double over0 = f[0].held_final - (double)p0 * NEAP_PAGE_SIZE;
        double over1 = f[1].held_final - (double)p1 * NEAP_PAGE_SIZE;
        if (used < sizeof text) {
            snprintf(text + used, sizeof text - used,
                     " Beyond those pages %s holds %s and %s %s.", demo_allocators[0].name,
                     demo_mb(fmax(over0, 0.0), buf[0], sizeof buf[0]), demo_allocators[1].name,
                     demo_mb(fmax(over1, 0.0), buf[1], sizeof buf[1]));
        }
    }
    demo_print_wrapped(text, 2, 2);
}

static void demo_print_human(const demo_config_t *cfg, const demo_scenario_t sc[DEMO_SCENARIOS],
                             demo_result_t res[DEMO_SCENARIOS][DEMO_ALLOCATORS]) {
    char buf[3][32], text[1024];
    const demo_result_t *any = NULL;
    for (int s = 0; s < DEMO_SCENARIOS && any == NULL; s++) {
        for (int k = 0; k < DEMO_ALLOCATORS && any == NULL; k++) {
            if (res[s][k].ok) any = &res[s][k];
        }
    }
    printf("neap %s demo: %s small objects of %d to %d bytes (%s asked for in all),\n"
           "allocated, then freed; each allocator runs each scenario in a fresh child process.\n\n",
           NEAP_VERSION, demo_count(cfg->objects, buf[0], sizeof buf[0]), DEMO_MIN_SIZE,
           DEMO_MAX_SIZE,
           any ? demo_mb((double)any->requested_bytes, buf[1], sizeof buf[1]) : "? MB");

    for (int s = 0; s < DEMO_SCENARIOS; s++) demo_print_table(&sc[s], s + 1, res[s]);

    printf("In plain words:\n");
    for (int s = 0; s < DEMO_SCENARIOS; s++) {
        printf("- ");
        demo_print_summary(&sc[s], res[s]);
    }
    printf("\n");

    long settle = any ? any->settle_ms : DEMO_SETTLE_MS;
    long delay = any ? any->purge_delay_ms : -1;
    snprintf(text, sizeof text,
             "RSS is the resident set size from /proc/self/status (1 MB = 2^20 bytes), "
             "less the demo's own array of %s pointers, which is mapped with mmap outside "
             "both allocators and unmapped before the \"collect\" reading.",
             demo_count(cfg->objects, buf[0], sizeof buf[0]));
    printf("Notes:\n- ");
    demo_print_wrapped(text, 2, 2);
    snprintf(text, sizeof text,
             "\"unref\" is read after the frees, %ld ms of sleep and one 16-byte allocation "
             "and free through the allocator under test, so that neap's delayed purge "
             "(NEAP_PURGE_DELAY = %ld ms) has run. %s gets exactly the same treatment, "
             "so the comparison is fair.",
             settle, delay, demo_allocators[0].name);
    printf("- ");
    demo_print_wrapped(text, 2, 2);
    snprintf(text, sizeof text,
             "\"Collect (trim)\" is %s for %s and %s for %s; survivors stay alive. "
             "Percentages are of each allocator's own growth during allocation: \"back\" "
             "is how much of it the process has given back to the system, \"held\" how "
             "much it still holds at the end.",
             demo_allocators[0].trim_name, demo_allocators[0].name,
             demo_allocators[1].trim_name, demo_allocators[1].name);
    printf("- ");
    demo_print_wrapped(text, 2, 2);
}

/* --- output for programs ---------------------------------------------------- */

static void demo_json_number(const char *name, double v, const char *after) {
    if (isnan(v)) {
        printf("\"%s\": null%s", name, after);
    } else {
        printf("\"%s\": %.2f%s", name, v, after);
    }
}

static void demo_print_json(const demo_config_t *cfg, const demo_scenario_t sc[DEMO_SCENARIOS],
                            demo_result_t res[DEMO_SCENARIOS][DEMO_ALLOCATORS]) {
    static const char *const reading[DEMO_READINGS] = {"before", "alloc", "unref", "collect"};
    printf("{\n  \"neap_version\": \"%s\",\n", NEAP_VERSION);
    printf("  \"objects\": %llu,\n  \"keep\": %llu,\n", cfg->objects, cfg->keep);
    printf("  \"min_size\": %d,\n  \"max_size\": %d,\n  \"seed\": %d,\n", DEMO_MIN_SIZE,
           DEMO_MAX_SIZE, DEMO_SEED);
    printf("  \"scenarios\": [\n");
    for (int s = 0; s < DEMO_SCENARIOS; s++) {
        char title[64];
        printf("    {\n      \"name\": \"%s\",\n      \"title\": \"%s\",\n      \"keep\": %llu,\n",
               sc[s].key, demo_title(&sc[s], title, sizeof title), sc[s].keep);
        printf("      \"runs\": [\n");
        for (int k = 0; k < DEMO_ALLOCATORS; k++) {
            const demo_result_t *r = &res[s][k];
            const demo_allocator_t *a = &demo_allocators[k];
            printf("        {\n          \"allocator\": \"%s\",\n          \"name\": \"%s\",\n"
                   "          \"collect_call\": \"%s\",\n          \"ok\": %s,\n",
                   a->key, a->name, a->trim_name, r->ok ? "true" : "false");
            if (!r->ok) {
                printf("          \"error\": \"");
                for (const char *c = r->error; *c; c++) {
                    if (*c == '"' || *c == '\\') putchar('\\');
                    if ((unsigned char)*c >= 0x20) putchar(*c);
                }
                printf("\"\n        }%s\n", k + 1 < DEMO_ALLOCATORS ? "," : "");
                continue;
            }
            demo_figures_t f = demo_figures(r);
            printf("          \"rss_bytes\": {");
            for (int i = 0; i < DEMO_READINGS; i++) {
                printf("\"%s\": %zu%s", reading[i], r->rss[i], i + 1 < DEMO_READINGS ? ", " : "");
            }
            printf("},\n          \"seconds\": {\"alloc\": %.4f, \"unref\": %.4f, "
                   "\"collect\": %.4f},\n",
                   r->seconds[DEMO_T_ALLOC], r->seconds[DEMO_T_UNREF],
                   r->seconds[DEMO_T_COLLECT]);
            printf("          \"peak_rss_bytes\": %zu,\n          \"pointer_array_bytes\": %zu,\n"
                   "          \"requested_bytes\": %zu,\n          \"survivors\": %zu,\n"
                   "          \"live_bytes\": %zu,\n          \"survivor_pages\": %zu,\n"
                   "          \"growth_bytes\": %.0f,\n"
                   "          \"held_after_unref_bytes\": %.0f,\n"
                   "          \"held_after_collect_bytes\": %.0f,\n",
                   r->peak_rss, r->array_bytes, r->requested_bytes, r->survivors, r->live_bytes,
                   r->survivor_pages, f.growth, f.held_unref, f.held_final);
            printf("          ");
            demo_json_number("unref_given_back_pct", f.unref_pct, ",\n          ");
            demo_json_number("collect_given_back_pct", f.collect_pct, ",\n          ");
            demo_json_number("overall_held_pct", f.final_pct, ",\n");
            printf("          \"trim_returned\": %d,\n          \"settle_ms\": %ld,\n"
                   "          \"purge_delay_ms\": %ld\n        }%s\n",
                   r->trim_returned, r->settle_ms, r->purge_delay_ms,
                   k + 1 < DEMO_ALLOCATORS ? "," : "");
        }
        printf("      ]\n    }%s\n", s + 1 < DEMO_SCENARIOS ? "," : "");
    }
    printf("  ]\n}\n");
}

/* --- command line ----------------------------------------------------------- */

static void demo_usage(FILE *out) {
    fprintf(out,
            "usage: neap demo [--objects N] [--keep K] [--json]\n"
            "\n"
            "Compares neap with the C library's malloc on a built-in workload: allocate N\n"
            "small objects (16 to 128 bytes, like small Python objects), free them, then\n"
            "ask the allocator to give memory back, and show how much memory the process\n"
            "still holds after each step.  Two scenarios: every object freed, and 1 in K\n"
            "objects surviving (scattered survivors).  Each allocator runs each scenario\n"
            "in its own fresh child process.\n"
            "\n"
            "options:\n"
            "  --objects N  objects to allocate, 1 to %llu (default %llu; 1e6 style\n"
            "               accepted)\n"
            "  --keep K     in the second scenario, keep every K-th object alive\n"
            "               (default %llu)\n"
            "  --json       print the results as JSON on stdout\n"
            "  --help       show this help\n"
            "\n"
            "Progress goes to stderr.  Exit status: 0 done, 1 a run failed, 2 bad usage.\n",
            DEMO_MAX_OBJECTS, DEMO_DEFAULT_OBJECTS, DEMO_DEFAULT_KEEP);
}

/* Parses the command line into *cfg; returns -1 after printing an error, 1
 * after printing the help, 0 to go on. */
static int demo_parse(int argc, char **argv, demo_config_t *cfg) {
    enum { OPT_OBJECTS = 256, OPT_KEEP, OPT_JSON };
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"objects", required_argument, NULL, OPT_OBJECTS},
                                             {"keep", required_argument, NULL, OPT_KEEP},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {NULL, 0, NULL, 0}};
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("demo", argc, argv, "h", longopts, 0)) != -1) {
        switch (c) {
        case 'h':
            demo_usage(stdout);
            return 1;
        case OPT_JSON:
            cfg->json = 1;
            break;
        case OPT_OBJECTS:
            if (neap_cli_number("demo", "--objects", optarg, NEAP_CLI_WHOLE, 1, DEMO_MAX_OBJECTS,
                                &cfg->objects) != 0)
                return -1;
            break;
        case OPT_KEEP:
            /* keep every K-th object */
            if (neap_cli_number("demo", "--keep", optarg, NEAP_CLI_WHOLE, 1, DEMO_MAX_OBJECTS,
                                &cfg->keep) != 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "neap demo: unexpected argument '%s'; see 'neap demo --help'\n",
                argv[optind]);
        return -1;
    }
    if ((unsigned long long)SIZE_MAX / sizeof(void *) < cfg->objects) {
        fprintf(stderr, "neap demo: --objects %llu is too many for this machine\n",
                cfg->objects);
        return -1;
    }
    return 0;
}

int neap_cli_demo(int argc, char **argv) {
    demo_config_t cfg = {DEMO_DEFAULT_OBJECTS, DEMO_DEFAULT_KEEP, 0};
    int parsed = demo_parse(argc, argv, &cfg);
    if (parsed != 0) return parsed > 0 ? NEAP_CLI_OK : NEAP_CLI_USAGE;

    const demo_scenario_t sc[DEMO_SCENARIOS] = {{"all_freed", 0}, {"survivors", cfg.keep}};
    static demo_result_t res[DEMO_SCENARIOS][DEMO_ALLOCATORS];
    int failed = 0, run = 0;
    double start = demo_now();
    for (int s = 0; s < DEMO_SCENARIOS; s++) {
        char title[64];
        demo_title(&sc[s], title, sizeof title);
        for (int k = 0; k < DEMO_ALLOCATORS; k++) {
            run++;
            fprintf(stderr, "neap demo: [%d/%d] %s, %s ...", run, DEMO_SCENARIOS * DEMO_ALLOCATORS,
                    title, demo_allocators[k].name);
            double t0 = demo_now();
            if (demo_run_child(&cfg, &sc[s], &demo_allocators[k], &res[s][k]) != 0) {
                fprintf(stderr, " failed: %s\n", res[s][k].error);
                failed = 1;
            } else {
                fprintf(stderr, " %.1f s\n", demo_now() - t0);
            }
        }
    }
    fprintf(stderr, "neap demo: done in %.1f s\n", demo_now() - start);

    if (cfg.json) {
        demo_print_json(&cfg, sc, res);
    } else {
        demo_print_human(&cfg, sc, res);
    }
    return failed ? NEAP_CLI_FAILED : NEAP_CLI_OK;
}

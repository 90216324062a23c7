/* neap_fuzz.h -- what the fuzz tests (test_*_fuzz.c) share: a work
 * directory, seeded choices, inputs checked in forked children whose CPU
 * time is limited, the failing ones kept, and a tally of the work done.
 *
 *   parent: mutants --batch of up to FUZZ_BATCH--> fork
 *   child:  RLIMIT_CPU = NEAP_FUZZ_CPU s (default 20); check(input) for
 *           each; exit 0, or 3 after the first failed check
 *   parent: the child ended by a signal (a crash; SIGXCPU: unbounded work,
 *           a hang) or failed a check -> each input again in a child of its
 *           own; each failing one kept as fail-N.<ext> in the work
 *           directory, which is then left in place, and named
 *
 * The limit is on CPU time, not on the wall clock: a busy machine does not
 * make it fire.  The children count what they did in a shared tally (runs:
 * inputs checked, rejected: inputs the code under test refused with an
 * error), which fuzz_finish prints; a run that checked nothing fails.
 * Choices come from xorshift64* (neap_test.h) seeded by the test, or by
 * NEAP_FUZZ_SEED when set: a seed and a count name a run exactly.
 */
#ifndef NEAP_FUZZ_H
#define NEAP_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap_test.h"

/* Each test uses the helpers it needs of this header. */
#define FUZZ_FN static __attribute__((unused))

enum { FUZZ_BATCH = 100 };

static char fuzz_dir[256];
static unsigned fuzz_cpu = 20;
static uint64_t fuzz_rng, fuzz_seed;
static int fuzz_failures;

/* Shared with the children: what they did. */
typedef struct {
    unsigned long long runs;     /* inputs checked */
    unsigned long long rejected; /* inputs refused with an error */
    unsigned long long extra;    /* a test's own count (e.g. commands run) */
} fuzz_tally_t;
static fuzz_tally_t *fuzz_tally;

FUZZ_FN size_t fuzz_pick(size_t n) { return n ? (size_t)(xs_next(&fuzz_rng) % n) : 0; }

/* The work directory (under TMPDIR or /tmp), the seed, the CPU limit. */
FUZZ_FN void fuzz_setup(const char *name, uint64_t default_seed) {
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/neap-%s.XXXXXX", t && *t ? t : "/tmp", name);
    CHECKF(mkdtemp(fuzz_dir) != NULL, "%s: %s", fuzz_dir, strerror(errno));
    const char *cpu = getenv("NEAP_FUZZ_CPU");
    if (cpu && atoi(cpu) > 0) fuzz_cpu = (unsigned)atoi(cpu);
    const char *seed = getenv("NEAP_FUZZ_SEED");
    fuzz_seed = seed ? strtoull(seed, NULL, 0) : default_seed;
    fuzz_rng = xs_seed(fuzz_seed);
    fuzz_tally = mmap(NULL, sizeof *fuzz_tally, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    CHECK(fuzz_tally != MAP_FAILED);
    memset(fuzz_tally, 0, sizeof *fuzz_tally);
}

/* dir/name */
FUZZ_FN const char *fuzz_path(const char *name) {
    static char buf[4][512];
    static int which;
    which = (which + 1) & 3;
    snprintf(buf[which], sizeof buf[which], "%s/%s", fuzz_dir, name);
    return buf[which];
}

/* A new file at path (one there is removed first: a file truncated and
 * written again may be flushed to the disk when closed). */
FUZZ_FN void fuzz_write(const char *path, const void *data, size_t n) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECKF(fd >= 0, "%s: %s", path, strerror(errno));
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        CHECKF(w > 0, "%s: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    CHECK(close(fd) == 0);
}

/* The whole file, malloc'd and NUL-terminated; *n its length. */
FUZZ_FN char *fuzz_read(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    CHECKF(fd >= 0, "%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    for (;;) {
        if (cap - len < 2) {
            buf = realloc(buf, cap *= 2);
            CHECK(buf != NULL);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        CHECK(r >= 0);
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *n = len;
    return buf;
}

/* An input: its bytes and a label for messages. */
typedef struct {
    uint8_t *p;
    size_t len;
    char label[160];
} fuzz_input_t;

/* Checks one input in a child: 0, or -1 with why. */
typedef int (*fuzz_check_fn)(const fuzz_input_t *in, char *why, size_t cap);

/* Waits for the checking child pid: 0 when it exited 0, else -1 with why
 * (a failed check: exit status not 0; a crash: a signal; unbounded work:
 * SIGXCPU or SIGKILL from its CPU limit). */
FUZZ_FN int fuzz_wait(pid_t pid, char *why, size_t cap) {
    int status;
    while (waitpid(pid, &status, 0) < 0) CHECK(errno == EINTR);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, cap, "killed by signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGXCPU || sig == SIGKILL ? ": its work is unbounded (a hang)" : "");
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, cap, "a check failed (exit %d)", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

/* in[0..n) checked in a forked child with its CPU time limited: 0 when each
 * passed, else -1 with why. */
FUZZ_FN int fuzz_child(fuzz_check_fn check, const fuzz_input_t *in, size_t n, char *why,
                      size_t cap) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {fuzz_cpu, fuzz_cpu + 5};
        setrlimit(RLIMIT_CPU, &rl);
        for (size_t i = 0; i < n; i++) {
            char w[512];
            w[0] = 0;
            if (check(&in[i], w, sizeof w) != 0) {
                fprintf(stderr, "%s: %s\n", in[i].label, w);
                fflush(stderr);
                _exit(3);
            }
        }
        _exit(0);
    }
    return fuzz_wait(pid, why, cap);
}

/* Checks in[0..n): one child for them all, and when it fails one per input,
 * to name each failing one; each is kept as fail-N.ext.  The tally counts
 * each input once: what the first child counted is dropped when it fails. */
FUZZ_FN void fuzz_inputs(fuzz_check_fn check, const fuzz_input_t *in, size_t n, const char *ext) {
    char why[256];
    fuzz_tally_t before = *fuzz_tally;
    if (fuzz_child(check, in, n, why, sizeof why) == 0) return;
    if (n > 1) *fuzz_tally = before; /* counted again below, once each */
    for (size_t i = 0; i < n; i++) {
        if (n > 1 && fuzz_child(check, &in[i], 1, why, sizeof why) == 0) continue;
        char name[64];
        snprintf(name, sizeof name, "fail-%d.%s", fuzz_failures++, ext);
        fuzz_write(fuzz_path(name), in[i].p, in[i].len);
        fprintf(stderr, "%s: %s (kept as %s)\n", in[i].label, why, fuzz_path(name));
    }
}

/* The inputs kept in dir (files whose names end in .ext), checked each in a
 * child of its own; fails when there is none. */
FUZZ_FN void fuzz_regress(fuzz_check_fn check, const char *dir, const char *ext) {
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    size_t n = 0, elen = strlen(ext);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= elen + 1 || e->d_name[len - elen - 1] != '.' ||
            strcmp(e->d_name + len - elen, ext) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fuzz_input_t in;
        in.p = (uint8_t *)fuzz_read(path, &in.len);
        snprintf(in.label, sizeof in.label, "%.150s", e->d_name);
        fuzz_inputs(check, &in, 1, ext);
        free(in.p);
        n++;
    }
    closedir(d);
    CHECKF(n > 0, "%s: no .%s inputs", dir, ext);
}

/* The summary line; fails when nothing was checked, and leaves the work
 * directory (with the failing inputs) in place when something failed. */
FUZZ_FN int fuzz_finish(const char *test, const char *what, const char *extra) {
    printf("%s: %s: %llu executions, %llu rejected, %llu accepted", test, what,
           fuzz_tally->runs, fuzz_tally->rejected, fuzz_tally->runs - fuzz_tally->rejected);
    if (extra != NULL) printf(", %llu %s", fuzz_tally->extra, extra);
    printf(" (seed %llu), %d failed\n", (unsigned long long)fuzz_seed, fuzz_failures);
    fflush(stdout);
    if (fuzz_tally->runs == 0) {
        fprintf(stderr, "%s: nothing was executed\n", test);
        return 1;
    }
    if (fuzz_failures) {
        fprintf(stderr, "%s: %d input(s) failed; kept in %s\n", test, fuzz_failures, fuzz_dir);
        return 1;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fuzz_dir);
    return test_status();
}

/* --- byte buffers ---------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len;
} fuzz_buf_t;

FUZZ_FN fuzz_buf_t fuzz_buf_of(const void *p, size_t len) {
    fuzz_buf_t b = {malloc(len ? len : 1), len};
    CHECK(b.p != NULL);
    if (len) memcpy(b.p, p, len);
    return b;
}

/* Replaces b[at, at + drop) with n bytes from p. */
FUZZ_FN void fuzz_splice(fuzz_buf_t *b, size_t at, size_t drop, const void *p, size_t n) {
    size_t len = b->len - drop + n;
    uint8_t *q = malloc(len ? len : 1);
    CHECK(q != NULL);
    memcpy(q, b->p, at);
    if (n) memcpy(q + at, p, n);
    memcpy(q + at + n, b->p + at + drop, b->len - at - drop);
    free(b->p);
    b->p = q;
    b->len = len;
}

/* One byte-level change anywhere in b: a bit flipped, a byte set to 0x00,
 * 0xff or anything, a range of up to 24 bytes duplicated or dropped, a byte
 * inserted. */
FUZZ_FN void fuzz_bytes(fuzz_buf_t *b) {
    size_t at = fuzz_pick(b->len), left = b->len - at;
    switch (fuzz_pick(8)) {
    case 0: case 1:
        if (b->len) b->p[at] ^= (uint8_t)(1u << fuzz_pick(8));
        break;
    case 2: if (b->len) b->p[at] = 0; break;
    case 3: if (b->len) b->p[at] = 0xff; break;
    case 4: if (b->len) b->p[at] = (uint8_t)xs_next(&fuzz_rng); break;
    case 5: { /* a range duplicated elsewhere */
        if (left == 0) break;
        size_t n = 1 + fuzz_pick(left < 24 ? left : 24);
        uint8_t tmp[24];
        memcpy(tmp, b->p + at, n);
        fuzz_splice(b, fuzz_pick(b->len + 1), 0, tmp, n);
        break;
    }
    case 6:
        if (left) fuzz_splice(b, at, 1 + fuzz_pick(left < 24 ? left : 24), NULL, 0);
        break;
    default: {
        uint8_t c = (uint8_t)xs_next(&fuzz_rng);
        fuzz_splice(b, fuzz_pick(b->len + 1), 0, &c, 1);
        break;
    }
    }
}

#endif /* NEAP_FUZZ_H */

/* test_debugmode.c -- the debug mode (NEAP_DEBUG_MALLOC=1) catches the
 * misuse it promises, says what and where, and lets correct programs run
 * (label: abort).
 *
 * Usage: test_debugmode.  The program re-executes itself with
 * NEAP_DEBUG_MALLOC=1 in the environment (the mode is fixed when the
 * process starts), once per case, the child's stderr going into a pipe.
 * A bad case must die of SIGABRT with every expected piece of text in its
 * stderr: the kind of error, the byte count and offset, the block's size
 * and the allocating function (the program is linked with -rdynamic, so
 * the call site's name is known).  A good case must exit 0 with stderr
 * empty.  It calls neap_malloc and the rest (the sanitizer builds' malloc
 * is not neap's).
 *
 * Cases: overflow by 1 and by 5 bytes (small, a 100000-byte large block,
 * a 3 MiB huge block, an aligned one), underflow of 1 byte, a double free,
 * a write after free caught when the block is handed out again, realloc
 * of an overflowed block; and good programs: every allocation call
 * (neap_malloc, neap_calloc, neap_realloc growing and shrinking,
 * neap_aligned_alloc, neap_posix_memalign) with fills checked (0xCD new, zero
 * from calloc, contents kept by realloc), usable size equal to the size
 * asked for, blocks handed between threads and freed there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap.h"

static const char *self;

#define NOINLINE __attribute__((noinline, noipa))

static void die(const char *msg) {
    fprintf(stderr, "test_debugmode: %s\n", msg);
    exit(2);
}

/* Each bad case allocates in a function of its own name, which the
 * message must name as the allocating call's (global: -rdynamic exports
 * it to the dynamic symbol table). */
NOINLINE char *alloc_overflow(size_t n);
NOINLINE char *alloc_aligned(void);
NOINLINE char *alloc_underflow(size_t n);
NOINLINE char *alloc_double(size_t n);
NOINLINE char *alloc_realloc(size_t n);
/* (each writes to the block after the call: no tail call, so the return
 * address is in the function itself) */
NOINLINE char *alloc_overflow(size_t n) {
    char *p = neap_malloc(n);
    p[0] = 1;
    return p;
}

static void case_overflow1(void) {
    char *p = alloc_overflow(24);
    p[24] = 1;
    neap_free(p);
}
static void case_overflow5(void) {
    char *p = alloc_overflow(100);
    memset(p + 100, 0, 5);
    neap_free(p);
}
static void case_overflow_large(void) {
    char *p = alloc_overflow(100000);
    p[100000 + 3] = 1;
    neap_free(p);
}
static void case_overflow_huge(void) {
    char *p = alloc_overflow(3 << 20);
    p[3 << 20] = 1;
    neap_free(p);
}
NOINLINE char *alloc_aligned(void) {
    char *p = neap_aligned_alloc(4096, 200);
    p[0] = 1;
    return p;
}
static void case_overflow_aligned(void) {
    char *p = alloc_aligned();
    if (((uintptr_t)p & 4095) != 0) die("neap_aligned_alloc(4096) not aligned in the debug mode");
    p[200] = 1;
    neap_free(p);
}
NOINLINE char *alloc_underflow(size_t n) {
    char *p = neap_malloc(n);
    p[0] = 1;
    return p;
}
static void case_underflow(void) {
    char *p = alloc_underflow(40);
    p[-1] = 1;
    neap_free(p);
}
NOINLINE char *alloc_double(size_t n) {
    char *p = neap_malloc(n);
    p[0] = 1;
    return p;
}
static void case_double(void) {
    char *p = alloc_double(40);
    neap_free(p);
    neap_free(p);
}
static void case_after_free(void) {
    char *p = neap_malloc(40);
    neap_free(p);
    p[7] = 1;
    /* the block comes back sooner or later: then the write is found */
    for (int i = 0; i < 100000; i++)
        if (neap_malloc(40) == p) die("the written freed block was handed out again unnoticed");
    die("the freed block never came back");
}
NOINLINE char *alloc_realloc(size_t n) {
    char *p = neap_malloc(n);
    p[0] = 1;
    return p;
}
static void case_realloc(void) {
    char *p = alloc_realloc(64);
    p[64 + 15] = 1;
    p = neap_realloc(p, 1000);
    neap_free(p);
}

static void check_fill(const unsigned char *p, size_t n, unsigned char c, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) {
            fprintf(stderr, "%s: byte %zu is 0x%02x, not 0x%02x\n", what, i, p[i], c);
            exit(3);
        }
}

#define THREADS 4
#define HANDED 2000
static void *volatile handed[THREADS][HANDED];

static void *thread_main(void *arg) {
    size_t t = (size_t)arg;
    /* free what the previous thread made, after making our own */
    for (size_t i = 0; i < HANDED; i++) {
        handed[t][i] = neap_malloc(16 + (i * 37) % 3000);
        memset(handed[t][i], (int)t, 16 + (i * 37) % 3000);
    }
    return NULL;
}

static void case_good(void) {
    /* new blocks are filled, calloc's are zero, usable size is what was
     * asked for, realloc keeps the contents */
    size_t sizes[] = {0, 1, 15, 16, 17, 100, 512, 513, 4000, 4096, 40000, 100000, 2 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = neap_malloc(n);
        if (p == NULL) die("malloc failed");
        check_fill(p, n, 0xCD, "malloc");
        if (neap_usable_size(p) != n) die("usable size is not the size asked for");
        if (!neap_owns(p)) die("neap_owns is false for a live block");
        memset(p, 0x5A, n);
        unsigned char *q = neap_realloc(p, n * 2 + 1);
        check_fill(q, n, 0x5A, "realloc (grown)");
        check_fill(q + n, n + 1, 0xCD, "realloc (the growth)");
        q = neap_realloc(q, n / 2);
        check_fill(q, n / 2, 0x5A, "realloc (shrunk)");
        neap_free(q);
        p = neap_calloc(1, n);
        check_fill(p, n, 0, "calloc");
        neap_free(p);
    }
    for (size_t al = 16; al <= ((size_t)4 << 20); al *= 4) {
        void *a = neap_aligned_alloc(al, 100), *b = NULL, *c = neap_aligned_alloc(al, 5000);
        if (neap_posix_memalign(&b, al, 3) != 0) die("posix_memalign failed");
        if (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & (al - 1)) die("aligned allocation not aligned");
        if (neap_usable_size(a) != 100 || neap_usable_size(b) != 3) die("aligned: usable size");
        neap_free(a);
        neap_free(b);
        neap_free(c);
    }
    neap_free(neap_aligned_alloc(4096, 10));
    /* blocks freed by other threads than their own */
    pthread_t th[THREADS];
    for (size_t t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], NULL, thread_main, (void *)t) != 0) die("pthread_create");
    for (size_t t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (size_t t = 0; t < THREADS; t++)
        for (size_t i = 0; i < HANDED; i++) {
            check_fill(handed[t][i], 16 + (i * 37) % 3000, (unsigned char)t, "a block made by another thread");
            neap_free(handed[t][i]);
        }
    /* an option fixed at start: the mode cannot be switched off now */
    if (neap_option_set(NEAP_OPTION_DEBUG_MALLOC, 0) != -1 || errno != EBUSY)
        die("neap_option_set changed the debug mode after start");
}

typedef struct {
    const char *name;
    void (*run)(void);
    const char *expect[4]; /* each must be in stderr; none: a good case */
} dm_case_t;

static const dm_case_t cases[] = {
    {"overflow1", case_overflow1,
     {"free(): buffer overflow detected: 1 byte after the end", "offset 24", "24-byte block", "alloc_overflow"}},
    {"overflow5", case_overflow5, {"buffer overflow detected: 5 bytes after the end", "offset 100", "100-byte", "alloc_overflow"}},
    {"overflow-large", case_overflow_large, {"buffer overflow detected: 1 byte", "offset 100003", "100000-byte", "alloc_overflow"}},
    {"overflow-huge", case_overflow_huge, {"buffer overflow detected: 1 byte", "offset 3145728", "3145728-byte", "alloc_overflow"}},
    {"overflow-aligned", case_overflow_aligned, {"buffer overflow detected: 1 byte", "offset 200", "200-byte", "alloc_aligned"}},
    {"underflow", case_underflow, {"buffer underflow detected: 1 byte before", "offset -1", "40-byte", "alloc_underflow"}},
    {"double", case_double, {"free(): double free detected", NULL, NULL, NULL}},
    {"after-free", case_after_free, {"malloc(): use after free detected: 1 byte", "offset 7", NULL, NULL}},
    {"realloc", case_realloc, {"realloc(): buffer overflow detected: 1 byte", "offset 79", "64-byte", "alloc_realloc"}},
    {"good", case_good, {NULL, NULL, NULL, NULL}},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Runs case i in a re-executed child with the debug mode on; 0 if it did
 * what it should. */
static int run_case(size_t i) {
    const dm_case_t *c = &cases[i];
    int fds[2];
    if (pipe(fds) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("NEAP_DEBUG_MALLOC", "1", 1);
        execl(self, self, c->name, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char err[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], err + n, sizeof err - 1 - n)) > 0) n += (size_t)r;
    err[n] = 0;
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    bool good = c->expect[0] == NULL;
    if (good) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != 0) {
            printf("FAIL %s: status %d, stderr: %s\n", c->name, status, err);
            return 1;
        }
        printf("ok   %s: exit 0, stderr empty\n", c->name);
        return 0;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        printf("FAIL %s: not killed by SIGABRT (status %d), stderr: %s\n", c->name, status, err);
        return 1;
    }
    for (size_t k = 0; k < 4 && c->expect[k]; k++)
        if (strstr(err, c->expect[k]) == NULL) {
            printf("FAIL %s: stderr lacks \"%s\": %s\n", c->name, c->expect[k], err);
            return 1;
        }
    /* a hardened build keeps its tag where the caller was kept after the
     * free: only the plain build names it for a double free */
    if (strcmp(c->name, "double") == 0 && !neap_hardened() && strstr(err, "alloc_double") == NULL) {
        printf("FAIL %s: stderr lacks \"alloc_double\": %s\n", c->name, err);
        return 1;
    }
    printf("ok   %s: %s", c->name, err);
    return 0;
}

int main(int argc, char **argv) {
    self = argv[0];
    if (argc == 2) {   /* a child: one case, the debug mode on */
        for (size_t i = 0; i < NCASES; i++)
            if (strcmp(argv[1], cases[i].name) == 0) {
                cases[i].run();
                return 0;
            }
        die("no such case");
    }
    int failed = 0;
    for (size_t i = 0; i < NCASES; i++) failed += run_case(i);
    printf("%zu cases, %d failed\n", NCASES, failed);
    return failed ? 1 : 0;
}

/* test_abort.c -- bad frees are caught (label: abort).
 *
 * Usage: test_abort MODE.  The parent forks a child that makes the bad call
 * with its stderr going into a pipe; the child first reports the pointer it
 * is about to pass, formatted with %p, through a second pipe.  The parent
 * then requires that the child died of SIGABRT and that its stderr names the
 * error (expected_error: "invalid pointer" or "double free", or more
 * precisely) and the pointer exactly as %p prints it.  Linked against
 * neap_static, so free() is neap's.
 *
 * Modes:
 *   stack          free of a stack address
 *   interior       free(p + 8) of a 64-byte block (NEAP_DEBUG >= 1 only: a
 *                  release build's free fast path does not check pool blocks'
 *                  boundaries)
 *   interior-medium free(p + 16) of a 3000-byte block starting a page (not
 *                  its pool's first page; NEAP_DEBUG >= 1 only)
 *   interior-large free(p + 4096) of a 100000-byte block
 *   interior-huge  free(p + 4096) of a 3 MiB block
 *   mmap           free of an address in a private mapping (RW, garbage)
 *   mmap-aligned   free of an address in a 4 MiB-aligned PROT_NONE mapping
 *   global         free of a global variable
 *   free-page      free of a pointer into a page whose blocks were all
 *                  freed and purged
 *   header         free of the start of a small block's page: the pool's
 *                  header, never a block (NEAP_DEBUG >= 1 only)
 *   double         free(p); free(p)
 *   double-busy    the same with another block of p's pool still out (the
 *                  free fast path's own check, in every build)
 *   double-large   the same with a 100000-byte block
 *   double-page    the same with an 8 KiB block (a class served as a run of
 *                  its own pages)
 *   double-huge    the same with a 3 MiB block: the second free finds the
 *                  mapping in the cache of freed huge mappings
 *   double-huge-realloc  realloc of a freed (cached) 3 MiB block
 *   double-realloc-small realloc to a smaller size, one it still holds, of
 *                  a freed 64-byte block that is not the head of its pool's
 *                  list of freed blocks (another block of the pool out)
 *   double-realloc-medium the same with a 3000-byte block at the head of
 *                  the list
 *   double-realloc-large the same with a 100000-byte block (its run freed)
 *   double-huge-unmapped  free(p); free(p) of an 8 MiB block, more than
 *                  the cache of freed huge mappings keeps: its mapping is
 *                  unmapped at the first free, and the second finds its map
 *                  bytes cleared (as for a foreign pointer), yet is told a
 *                  double free of a huge block
 *   stale-huge     free of a 3 MiB block whose mapping neap_trim has given
 *                  back out of the cache: a double free of a huge block too
 *   foreign-huge-reused  free of an unmapped 8 MiB block's address after
 *                  another mapping took its page: not neap's
 *   moved-huge     free of a 3 MiB block's old address after realloc moved
 *                  its pages elsewhere (mremap)
 *   valid          legitimate frees of every kind: must exit 0, stderr empty
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap.h"
#include "neap_misuse.h"
#include "neap_test.h"

static char a_global[64];

/* free() of a pointer the compiler cannot see through */
static __attribute__((noinline)) void
do_free(void *p)
{
    free(test_launder(p));
}

static void
mode_valid(void)
{
    void *p[32];
    size_t i, align;
    int k = 0;

    free(NULL);
    neap_free(NULL);
    p[k++] = malloc(0);
    p[k++] = malloc(64);
    p[k++] = malloc(700);
    p[k++] = malloc(40000);
    p[k++] = malloc(3 * MiB);
    p[k++] = calloc(10, 10);
    p[k++] = realloc(NULL, 10);
    p[k++] = realloc(malloc(100), 100000);
    p[k++] = realloc(malloc(3 * MiB), 10);
    p[k++] = realloc(malloc(3 * MiB), 9 * MiB);
    p[k++] = realloc(malloc(9 * MiB), 2 * MiB);
    p[k++] = valloc(100);
    p[k++] = pvalloc(100);
    p[k++] = memalign(4096, 10);
    for (align = 16; align <= 4 * MiB; align *= 8)
        p[k++] = aligned_alloc(align, 100);
    p[k++] = aligned_alloc(2 * MiB, 3 * MiB);
    CHECK(posix_memalign(&p[k++], 65536, 70000) == 0);
    p[k++] = neap_malloc(5);
#ifndef NEAP_TEST_NO_OVERRIDE
    p[k++] = strdup("hello"); /* the C library's own malloc call */
#endif
    for (i = 0; i < (size_t)k; i++) {
        CHECK(p[i] != NULL);
        do_free(p[i]);
    }
    /* free the same address again after it was handed out again */
    p[0] = malloc(64);
    do_free(p[0]);
    p[1] = malloc(64);
    do_free(p[1]);
    p[0] = realloc(malloc(64), 0);
    do_free(p[0]);
    /* realloc in place of live blocks whose first word looks like a link
     * of their pool's list of freed blocks: NULL, and a freed block */
    p[0] = malloc(64);
    p[1] = malloc(64);
    p[2] = malloc(64);
    do_free(p[1]);
    memset(p[0], 0, 64);
    memcpy(p[2], &p[1], sizeof p[1]);
    CHECK(realloc(test_launder(p[0]), 48) == p[0]);
    CHECK(realloc(test_launder(p[2]), 40) == p[2]);
    do_free(p[0]);
    do_free(p[2]);
    /* and a huge block handed out again from the cache of freed mappings */
    p[0] = malloc(3 * MiB);
    do_free(p[0]);
    p[1] = malloc(3 * MiB);
    do_free(p[1]);
}

static void
run_mode(const char *mode)
{
    if (strcmp(mode, "stack") == 0) {
        char buf[64];
        memset(buf, 0, sizeof buf);
        misuse_report(buf + 16);
        do_free(buf + 16);
    } else if (strcmp(mode, "interior") == 0) {
        char *p = malloc(64);
        misuse_report(p + 8);
        do_free(p + 8);
    } else if (strcmp(mode, "interior-medium") == 0) {
        char *p = NULL;
        int i;
        for (i = 0; i < 64 && (p == NULL || (uintptr_t)p % NEAP_PAGE_SIZE != 0); i++)
            p = malloc(3000);
        CHECKF((uintptr_t)p % NEAP_PAGE_SIZE == 0, "no page-aligned 3000-byte block in %d", i);
        misuse_report(p + 16);
        do_free(p + 16);
    } else if (strcmp(mode, "interior-large") == 0) {
        char *p = malloc(100000);
        misuse_report(p + 4096);
        do_free(p + 4096);
    } else if (strcmp(mode, "interior-huge") == 0) {
        char *p = malloc(3 * MiB);
        misuse_report(p + 4096);
        do_free(p + 4096);
    } else if (strcmp(mode, "mmap") == 0) {
        char *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(m != MAP_FAILED);
        memset(m, 0xA7, 65536);
        misuse_report(m + 4096 + 64);
        do_free(m + 4096 + 64);
    } else if (strcmp(mode, "mmap-aligned") == 0) {
        char *m = map_aligned(NEAP_ARENA_SIZE, NEAP_ARENA_SIZE, PROT_NONE);
        misuse_report(m + 17 * 4096);
        do_free(m + 17 * 4096);
    } else if (strcmp(mode, "global") == 0) {
        misuse_report(a_global + 16);
        do_free(a_global + 16);
    } else if (strcmp(mode, "free-page") == 0) {
        enum { N = 512 };
        static char *p[N];
        char *victim;
        int i;
        char *keeper;
        neap_option_set(NEAP_OPTION_PURGE_DELAY, 0);
        keeper = malloc(1000); /* keeps the arena mapped: the page is free, not gone */
        for (i = 0; i < N; i++)
            p[i] = malloc(64);
        CHECK(((uintptr_t)keeper ^ (uintptr_t)p[N / 2]) < NEAP_ARENA_SIZE);
        /* a block in the middle of the run: its page holds only these */
        victim = p[N / 2];
        for (i = 0; i < N; i++)
            free(p[i]);
        neap_trim();
        misuse_report(victim);
        do_free(victim);
    } else if (strcmp(mode, "header") == 0) {
        char *p = malloc(64);
        char *page = (char *)((uintptr_t)p & ~(uintptr_t)(NEAP_PAGE_SIZE - 1));
        misuse_report(page);
        do_free(page);
    } else if (strcmp(mode, "double") == 0) {
        char *p = malloc(64);
        misuse_report(p);
        do_free(p);
        do_free(p);
    } else if (strcmp(mode, "double-busy") == 0) {
        char *q = malloc(64), *p = malloc(64);
        misuse_report(p);
        do_free(p);
        do_free(p);
        free(q);
    } else if (strcmp(mode, "double-page") == 0) {
        char *p = malloc(8192);
        misuse_report(p);
        do_free(p);
        do_free(p);
    } else if (strcmp(mode, "double-large") == 0) {
        char *p = malloc(100000);
        misuse_report(p);
        do_free(p);
        do_free(p);
    } else if (strcmp(mode, "double-huge") == 0) {
        char *p = malloc(3 * MiB);
        neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000); /* stays cached */
        neap_option_set(NEAP_OPTION_PURGE_MAX, 64L << 20);
        misuse_report(p);
        do_free(p);
        do_free(p);
    } else if (strcmp(mode, "double-huge-realloc") == 0) {
        char *p = malloc(3 * MiB);
        neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000);
        neap_option_set(NEAP_OPTION_PURGE_MAX, 64L << 20);
        misuse_report(p);
        do_free(p);
        p = realloc(test_launder(p), 5 * MiB);
    } else if (strcmp(mode, "double-realloc-small") == 0) {
        char *p = malloc(64), *q = malloc(64), *r = malloc(64);
        misuse_report(p);
        do_free(p);
        do_free(r); /* heads the list now; p's link is NULL */
        p = realloc(test_launder(p), 48);
        free(q);
    } else if (strcmp(mode, "double-realloc-medium") == 0) {
        char *p = malloc(3000), *q = malloc(3000);
        misuse_report(p);
        do_free(p);
        p = realloc(test_launder(p), 2000);
        free(q);
    } else if (strcmp(mode, "double-realloc-large") == 0) {
        char *p = malloc(100000);
        misuse_report(p);
        do_free(p);
        p = realloc(test_launder(p), 90000);
    } else if (strcmp(mode, "double-huge-unmapped") == 0) {
        char *p = malloc(8 * MiB);
        neap_option_set(NEAP_OPTION_PURGE_MAX, 8L << 20); /* the mapping is larger */
        misuse_report(p);
        do_free(p);
        do_free(p);
    } else if (strcmp(mode, "foreign-huge-reused") == 0) {
        char *p = malloc(8 * MiB), *m;
        char *page = (char *)((uintptr_t)p & ~(uintptr_t)(NEAP_PAGE_SIZE - 1));
        neap_option_set(NEAP_OPTION_PURGE_MAX, 8L << 20);
        do_free(p);
        /* something else maps the page of the unmapped block's address */
        m = mmap(page, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        CHECKF(m == page, "mmap at %p gave %p: %s", (void *)page, (void *)m, strerror(errno));
        misuse_report(p);
        do_free(p);
    } else if (strcmp(mode, "stale-huge") == 0) {
        char *p = malloc(3 * MiB);
        misuse_report(p);
        do_free(p);
        neap_trim();
        do_free(p);
    } else if (strcmp(mode, "moved-huge") == 0) {
        char *p = malloc(3 * MiB), *q;
        /* a page taken right after the mapping: growth has to move it */
        void *guard = mmap(p + neap_usable_size(p), 4096, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        (void)guard;
        q = realloc(p, 9 * MiB);
        CHECK(q != NULL && q != p);
        misuse_report(p);
        do_free(p);
    } else if (strcmp(mode, "valid") == 0) {
        mode_valid();
        misuse_report(NULL);
        exit(0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        _exit(2);
    }
    /* still alive: the bad free went unnoticed */
    _exit(3);
}

/* What the child's message must say for mode. */
static const char *
expected_error(const char *mode)
{
    static const char *const foreign[] = {"stack", "mmap", "mmap-aligned", "global",
                                          "foreign-huge-reused"};
    size_t i;

    for (i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
        if (strcmp(mode, foreign[i]) == 0)
            return "invalid pointer (not allocated by neap)";
    if (strcmp(mode, "double-huge-unmapped") == 0 || strcmp(mode, "stale-huge") == 0)
        return "double free of huge block";
    return strncmp(mode, "double", 6) == 0 ? "double free" : "invalid pointer";
}

int
main(int argc, char **argv)
{
    const char *mode;
    int status;
    char err[8192], addr[64];
    int expect_abort;
    const char *want;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODE\n", argv[0]);
        return 2;
    }
    mode = argv[1];
    expect_abort = strcmp(mode, "valid") != 0;
    want = expected_error(mode);

    status = misuse_run(run_mode, mode, addr, sizeof addr, err, sizeof err);

    printf("mode %s: pointer %s, child stderr:\n%s\n", mode, addr, err);
    if (!expect_abort) {
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "valid frees: status %#x", status);
        CHECKF(err[0] == '\0', "valid frees printed: %s", err);
        printf("test_abort %s: ok\n", mode);
        return 0;
    }
    CHECKF(addr[0] != '\0', "mode %s: the child did not get as far as the bad free", mode);
    if (WIFEXITED(status))
        CHECKF(0, "mode %s: the child exited with status %d instead of aborting%s", mode,
               WEXITSTATUS(status),
               WEXITSTATUS(status) == 3 ? " (the bad free returned)" : "");
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
           "mode %s: the child died of signal %d, not SIGABRT (%d)", mode, WTERMSIG(status),
           SIGABRT);
    CHECKF(strstr(err, want) != NULL, "mode %s: stderr lacks \"%s\"", mode, want);
    CHECKF(strstr(err, addr) != NULL, "mode %s: stderr lacks the pointer %s", mode, addr);
    CHECKF(strstr(err, "neap") != NULL, "mode %s: stderr does not say it is neap", mode);
    printf("test_abort %s: ok\n", mode);
    return 0;
}

/* test_hardened.c -- the hardened build's checks (label: hardened; built
 * only with -DNEAP_HARDENED=ON).
 *
 * Usage: test_hardened MODE.  As in test_abort.c, the parent forks a child
 * that runs the mode with its stderr going into a pipe; the child reports
 * the pointer it is about to misuse (%p) through a second pipe.  A mode that
 * must be caught requires the child to die of SIGABRT with a message that
 * names the error and that pointer; a mode that must not be caught requires
 * it to exit 0 with nothing on stderr.  Linked against neap_static.
 *
 * Caught (none of the first six is caught by the plain build, whose free
 * fast path sees only p heading its pool's list of freed blocks):
 *   nonimmediate   free(p); free(q); free(p), other blocks of the pool live
 *   full-local     the same in a pool that was FULL (every block out, not
 *                  the current pool) before the first free
 *   full-remote    p of a FULL pool freed by another thread (waiting on the
 *                  arena's remote stack; the pool stays FULL), then by its
 *                  owner
 *   remote         p freed by its owner, then by another thread
 *   remote-twice   p freed twice by another thread
 *   realloc        realloc moves p (freeing it), another block is freed,
 *                  then free(p)
 *   link           a freed block's link overwritten with garbage, then
 *                  malloc until the block is popped: "free list corrupted",
 *                  the garbage never followed
 *   remote-link    the same for a block on the remote stack, found when
 *                  the owner drains it
 * Not caught (exit 0, stderr empty):
 *   uaf-word1      a freed block's second word (its freed tag) overwritten
 *                  by a use after free: the block comes back and is freed
 *                  again normally
 *   dirty          blocks carved from dirty pages whose earlier blocks were
 *                  freed (their tags still there), handed out and freed
 *                  without ever being written; a block freed, handed out
 *                  again unwritten and freed again
 *   stress         threads: malloc, free, realloc, blocks freed by other
 *                  threads (NEAP_TEST_SCALE scales it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap.h"
#include "neap_misuse.h"
#include "neap_test.h"


/* free() of a pointer the compiler cannot see through */
static __attribute__((noinline)) void
do_free(void *p)
{
    free(test_launder(p));
}

static int
same_page(const void *a, const void *b)
{
    return ((uintptr_t)a ^ (uintptr_t)b) < NEAP_PAGE_SIZE;
}

/* Runs fn(arg) in a thread of its own, to the end. */
static void
in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, arg) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

static void *
free_once(void *p)
{
    do_free(p);
    return NULL;
}

static void *
free_twice(void *p)
{
    do_free(p);
    do_free(p);
    return NULL;
}

/* blocks of 208 bytes (a class nothing else here uses, 19 to a one-page
 * pool): the pool of blk[0] is FULL once the allocator has moved on */
enum { NFULL = 60 };
static char *blk[NFULL];

static void
fill_pools(void)
{
    int i;
    for (i = 0; i < NFULL; i++)
        blk[i] = malloc(208);
    CHECK(same_page(blk[0], blk[1]) && !same_page(blk[0], blk[NFULL - 1]));
}

static void
mode_uaf_word1(void)
{
    char *keep = malloc(64), *p = malloc(64), *q[256];
    int i, back = -1;
    misuse_report(NULL);
    do_free(p);
    /* the use after free: the block's second word */
    memset(test_launder(p) + 8, 0x5A, 8);
    for (i = 0; i < 256; i++) {
        q[i] = malloc(64);
        CHECK(q[i] != NULL);
        if (q[i] == p)
            back = i;
        memset(q[i], i, 64);
    }
    CHECKF(back >= 0, "the freed block %p did not come back", (void *)p);
    for (i = 0; i < 256; i++)
        do_free(q[i]);
    do_free(keep);
}

static void
mode_dirty(void)
{
    enum { N = 2000 };
    static char *p[N];
    size_t sizes[] = {48, 16, 32, 80, 64, 208, 512};
    size_t s, i;
    char *a, *b;

    /* freed pages stay dirty (not purged) for the whole run */
    neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000);
    neap_option_set(NEAP_OPTION_PURGE_MAX, 1L << 30);
    misuse_report(NULL);
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        /* blocks of this size over the pages the last size's blocks left,
         * freed tags and all; never written */
        for (i = 0; i < N; i++)
            CHECK((p[i] = malloc(sizes[s])) != NULL);
        for (i = 0; i < N; i++)
            do_free(p[i]);
    }
    /* freed, handed out again unwritten, freed again */
    a = malloc(64);
    b = malloc(64);
    do_free(a);
    a = malloc(64);
    do_free(a);
    do_free(b);
    /* and through realloc: the old block freed by the move */
    a = malloc(32);
    b = realloc(test_launder(a), 4000);
    CHECK(b != NULL);
    a = malloc(32);
    do_free(a);
    do_free(b);
}

/* --- stress: threads, blocks handed between them through a shared table */
enum { STHREADS = 4, SLOTS = 512, SHARED = 256 };
static _Atomic(struct item *) shared[SHARED];
static unsigned long stress_steps;

static size_t
stress_size(uint64_t *rng)
{
    unsigned r = (unsigned)xs_range(rng, 0, 99);
    if (r < 80)
        return xs_range(rng, 1, 512);
    if (r < 97)
        return xs_range(rng, 513, 32768);
    return xs_range(rng, 32769, 300000);
}

static void *
stress_thread(void *arg)
{
    uint64_t rng = xs_seed((uint64_t)(uintptr_t)arg);
    struct item *own = calloc(SLOTS, sizeof *own);
    unsigned long step;
    size_t i;
    CHECK(own != NULL);
    for (step = 0; step < stress_steps; step++) {
        struct item *it = &own[xs_range(&rng, 0, SLOTS - 1)];
        unsigned op = (unsigned)xs_range(&rng, 0, 9);
        if (it->p == NULL) {
            item_new(it, stress_size(&rng), xs_next(&rng));
        } else if (op < 5) {
            item_free(it);
        } else if (op < 7) {
            /* realloc: contents kept up to the smaller size */
            size_t n = stress_size(&rng), keep = n < it->size ? n : it->size;
            char *q;
            CHECK_PATTERN(it->p, keep, it->tag);
            q = realloc(it->p, n);
            CHECKF(q != NULL, "realloc(%zu)", n);
            CHECK_PATTERN(q, keep, it->tag);
            it->p = q;
            it->size = n;
            pat_fill(q, n, it->tag);
        } else {
            /* hand the block to whichever thread takes the slot next; free
             * what was there (often another thread's block) */
            struct item *box = malloc(sizeof *box), *old;
            CHECK(box != NULL);
            *box = *it;
            it->p = NULL;
            old = atomic_exchange(&shared[xs_range(&rng, 0, SHARED - 1)], box);
            if (old != NULL) {
                item_free(old);
                free(old);
            }
        }
    }
    for (i = 0; i < SLOTS; i++)
        if (own[i].p != NULL)
            item_free(&own[i]);
    free(own);
    return NULL;
}

static void
mode_stress(void)
{
    pthread_t t[STHREADS];
    size_t i;
    stress_steps = (unsigned long)test_scaled(300000);
    misuse_report(NULL);
    for (i = 0; i < STHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, stress_thread, (void *)(i + 1)) == 0);
    for (i = 0; i < STHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    for (i = 0; i < SHARED; i++) {
        struct item *box = atomic_load(&shared[i]);
        if (box != NULL) {
            item_free(box);
            free(box);
        }
    }
}

static void
run_mode(const char *mode)
{
    if (strcmp(mode, "nonimmediate") == 0) {
        char *keep = malloc(64), *p = malloc(64), *q = malloc(64);
        misuse_report(p);
        do_free(p);
        do_free(q);
        do_free(p);
        /* the plain build: the block is now on its pool's list twice */
        free(keep);
    } else if (strcmp(mode, "full-local") == 0) {
        fill_pools();
        misuse_report(blk[0]);
        do_free(blk[0]);
        do_free(blk[1]);
        do_free(blk[0]);
    } else if (strcmp(mode, "full-remote") == 0) {
        fill_pools();
        misuse_report(blk[0]);
        in_thread(free_once, blk[0]);
        do_free(blk[0]);
    } else if (strcmp(mode, "remote") == 0) {
        char *keep = malloc(64), *p = malloc(64);
        misuse_report(p);
        do_free(p);
        in_thread(free_once, p);
        free(keep);
    } else if (strcmp(mode, "remote-twice") == 0) {
        char *keep = malloc(64), *p = malloc(64);
        misuse_report(p);
        in_thread(free_twice, p);
        free(keep);
    } else if (strcmp(mode, "realloc") == 0) {
        char *keep = malloc(64), *p = malloc(64), *q = malloc(64), *r;
        misuse_report(p);
        r = realloc(test_launder(p), 4000); /* moved: p freed */
        CHECK(r != NULL && r != p);
        do_free(q);
        do_free(p);
        free(r);
        free(keep);
    } else if (strcmp(mode, "link") == 0) {
        char *keep = malloc(96), *p = malloc(96);
        int i;
        misuse_report(p);
        do_free(p);
        memset(test_launder(p), 0x41, 8); /* the use after free: the link */
        for (i = 0; i < 10000; i++)
            (void)test_launder(malloc(96));
        free(keep);
    } else if (strcmp(mode, "remote-link") == 0) {
        char *keep = malloc(96), *p = malloc(96);
        misuse_report(p);
        in_thread(free_once, p);
        memset(test_launder(p), 0x41, 8);
        /* a slow path of a class not used yet drains the remote stack */
        (void)test_launder(malloc(3000));
        free(keep);
    } else if (strcmp(mode, "uaf-word1") == 0) {
        mode_uaf_word1();
        exit(0);
    } else if (strcmp(mode, "dirty") == 0) {
        mode_dirty();
        exit(0);
    } else if (strcmp(mode, "stress") == 0) {
        mode_stress();
        exit(0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        _exit(2);
    }
    /* still alive: the bad free went unnoticed */
    _exit(3);
}

/* What the child's message must say for mode, just before the pointer;
 * NULL: the child must exit 0 with nothing on stderr. */
static const char *
expected_error(const char *mode)
{
    if (strcmp(mode, "uaf-word1") == 0 || strcmp(mode, "dirty") == 0 || strcmp(mode, "stress") == 0)
        return NULL;
    if (strcmp(mode, "link") == 0)
        return "neap: free list corrupted: block ";
    if (strcmp(mode, "remote-link") == 0)
        return "neap: remote free list corrupted: block ";
    return "double free detected on ";
}

int
main(int argc, char **argv)
{
    const char *mode, *want;
    int status;
    char err[8192], addr[64], line[256];

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODE\n", argv[0]);
        return 2;
    }
    mode = argv[1];
    want = expected_error(mode);
    CHECKF(neap_hardened() == 1, "neap_hardened() says %d: not a hardened build", neap_hardened());

    status = misuse_run(run_mode, mode, addr, sizeof addr, err, sizeof err);

    printf("mode %s: pointer %s, child stderr:\n%s\n", mode, addr, err);
    if (want == NULL) {
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "mode %s: status %#x", mode, status);
        CHECKF(err[0] == '\0', "mode %s printed: %s", mode, err);
        printf("test_hardened %s: ok\n", mode);
        return 0;
    }
    CHECKF(addr[0] != '\0', "mode %s: the child did not get as far as the bad call", mode);
    if (WIFEXITED(status))
        CHECKF(0, "mode %s: the child exited with status %d instead of aborting%s", mode,
               WEXITSTATUS(status), WEXITSTATUS(status) == 3 ? " (the bad call went unnoticed)" : "");
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
           "mode %s: the child died of signal %d, not SIGABRT (%d)", mode, WTERMSIG(status), SIGABRT);
    snprintf(line, sizeof line, "%s%s", want, addr);
    CHECKF(strstr(err, line) != NULL, "mode %s: stderr lacks \"%s\"", mode, line);
    printf("test_hardened %s: ok\n", mode);
    return 0;
}

/* test_fork.c -- fork while other threads allocate (label: fork).
 *
 * Linked against neap_static.  Background threads allocate and free and
 * drop some of their blocks into a mailbox.  The main thread forks
 * repeatedly, each time while they are in full swing; each child (where only
 * the forking thread survives):
 *   - checks and frees the blocks the parent allocated before the fork, in
 *     every tier, and blocks the background threads made (their heaps have
 *     no thread in the child);
 *   - allocates and frees a lot, in the main thread and in a new thread
 *     (not in sanitizer builds, whose runtimes cannot take that);
 *   - forks once more (a grandchild does the same on a smaller scale);
 *   - exits 0.
 * A child stuck on a lock neap held at fork time is killed by SIGALRM when
 * it has made no progress in 30 s (a watchdog, not a time limit: a child
 * slowed down by a busy machine goes on).
 * Also fork + exec of /bin/true, and system("/bin/true"), while the
 * background threads run.  The parent's own blocks must be intact after
 * all of it.
 *
 * The background threads run only around the forks: once the forks of a
 * round are done and they have allocated a little more in the parent, they
 * park until the next round, so that they do not take the CPU from the
 * child the parent waits for (on a busy machine three threads allocating
 * without pause made the test several times slower, and told nothing more:
 * the child does not see them).
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
#include <sys/wait.h>
#include <unistd.h>

#include "neap.h"
#include "neap_test.h"

/* Frees it after checking neap still counts it live. */
static void
item_free_owned(struct item *it)
{
    CHECK(neap_owns(it->p));
    item_free(it);
}

static size_t
any_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 1000;
    if (r == 0)
        return xs_range(s, MiB + 1, 3 * MiB);
    if (r < 20)
        return xs_range(s, 32 * KiB + 1, MiB);
    if (r < 200)
        return xs_range(s, 513, 32 * KiB);
    return xs_range(s, 0, 512);
}

/* ------------------------------------------------------------------------ */

#define BG_THREADS 3
#define BG_SLOTS 512
#define BG_MARK_OPS 256 /* a background thread's operations after a mark */
#define MAILBOX 256

static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mailbox_full = PTHREAD_COND_INITIALIZER;
static struct item mailbox[MAILBOX];
static size_t mailbox_n;

/* The gate the main thread starts and parks the background threads with.
 * It waits for them by blocking, not by time: bg_mark() returns once each
 * has made BG_MARK_OPS operations since, however slowly they run. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int run;    /* 1: the threads allocate; 0: they park */
    atomic_uint mark;  /* bumped (under lock) by bg_mark() */
    unsigned reached;  /* threads done with BG_MARK_OPS since the mark */
    unsigned parked;   /* threads parked */
    int quit;
} bg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

/* Runs the threads (run: 1) until each has made BG_MARK_OPS operations more. */
static void
bg_mark(void)
{
    pthread_mutex_lock(&bg.lock);
    bg.reached = 0;
    atomic_fetch_add(&bg.mark, 1);
    atomic_store(&bg.run, 1);
    pthread_cond_broadcast(&bg.cond);
    while (bg.reached < BG_THREADS)
        pthread_cond_wait(&bg.cond, &bg.lock);
    pthread_mutex_unlock(&bg.lock);
}

/* Parks them (quit: for good) and waits until they are. */
static void
bg_park(int quit)
{
    pthread_mutex_lock(&bg.lock);
    atomic_store(&bg.run, 0);
    bg.quit = quit;
    pthread_cond_broadcast(&bg.cond);
    while (!quit && bg.parked < BG_THREADS)
        pthread_cond_wait(&bg.cond, &bg.lock);
    pthread_mutex_unlock(&bg.lock);
}

static void *
background(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg, seen = 0;
    uint64_t s = xs_seed(77 + id), seq = 0;
    struct item *slot = calloc(BG_SLOTS, sizeof *slot);
    size_t i, since = 0;
    int quit = 0;

    CHECK(slot != NULL);
    for (;;) {
        struct item *it;
        unsigned m;
        if (!atomic_load_explicit(&bg.run, memory_order_relaxed)) {
            pthread_mutex_lock(&bg.lock);
            bg.parked++;
            pthread_cond_broadcast(&bg.cond);
            while (!atomic_load(&bg.run) && !bg.quit)
                pthread_cond_wait(&bg.cond, &bg.lock);
            bg.parked--;
            quit = bg.quit;
            pthread_mutex_unlock(&bg.lock);
            if (quit)
                break;
        }
        m = atomic_load_explicit(&bg.mark, memory_order_relaxed);
        if (m != seen) {
            seen = m;
            since = 0;
        } else if (++since == BG_MARK_OPS) {
            pthread_mutex_lock(&bg.lock);
            if (atomic_load(&bg.mark) == seen) /* not a mark gone by */
                bg.reached++;
            pthread_cond_broadcast(&bg.cond);
            pthread_mutex_unlock(&bg.lock);
        }

        it = &slot[xs_next(&s) % BG_SLOTS];
        if (it->p != NULL) {
            if (xs_next(&s) % 4 == 0) {
                /* post it for a forked child to free (one free in 4: the
                 * mailbox fills in some 2000 operations of the three) */
                pthread_mutex_lock(&mailbox_lock);
                if (mailbox_n < MAILBOX) {
                    mailbox[mailbox_n++] = *it;
                    it->p = NULL;
                    if (mailbox_n == MAILBOX)
                        pthread_cond_signal(&mailbox_full);
                }
                pthread_mutex_unlock(&mailbox_lock);
            }
            if (it->p != NULL)
                item_free_owned(it);
        } else {
            item_new(it, any_size(&s), ((uint64_t)id << 48) | seq++);
        }
    }
    for (i = 0; i < BG_SLOTS; i++)
        if (slot[i].p != NULL)
            item_free_owned(&slot[i]);
    free(slot);
    return NULL;
}

/* ------------------------------------------------------------------------ */

#define PARENT_BLOCKS 64
static struct item parent_blocks[PARENT_BLOCKS];

/* A child's churn: operations of its main thread (its new thread and a
 * grandchild make half as many).  Some 40 operations on each of churn's 256
 * slots, in every tier (some 20 blocks of 1-3 MiB a child), beside the
 * parent's blocks still live: the allocator works after the fork.  The
 * forks, not the churn, are what the test is about; 4 times as many
 * operations covered nothing more and made the test take minutes on a busy
 * machine. */
#define CHILD_OPS 10000

/* The watchdog of a child: every WATCH_S seconds SIGALRM looks whether
 * churn has made an operation since the last look, and if not, dies of it
 * (wait_child says "deadlocked after fork?").  A child that is only slow
 * never stops making operations, so the test does not race the clock. */
#define WATCH_S 30
static atomic_ulong progress;
static unsigned long watch_seen;

static void
watchdog(int sig)
{
    unsigned long p = atomic_load_explicit(&progress, memory_order_relaxed);
    int saved = errno;
    if (p == watch_seen) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        watch_seen = p;
        alarm(WATCH_S);
    }
    errno = saved;
}

/* on: arms the watchdog (in a new child: no alarm comes through fork);
 * off: disarms it while the child waits for a grandchild, which has its own */
static void
watch(int on)
{
    if (!on) {
        alarm(0);
        return;
    }
    watch_seen = atomic_load_explicit(&progress, memory_order_relaxed);
    signal(SIGALRM, watchdog);
    alarm(WATCH_S);
}

static void
churn(uint64_t seed, size_t ops)
{
    enum { N = 256 };
    struct item slot[N];
    uint64_t s = xs_seed(seed);
    size_t i;
    memset(slot, 0, sizeof slot);
    for (i = 0; i < ops; i++) {
        struct item *it = &slot[xs_next(&s) % N];
        atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
        if (it->p != NULL)
            item_free_owned(it);
        else
            item_new(it, any_size(&s), seed * 1000003 + i);
    }
    for (i = 0; i < N; i++)
        if (slot[i].p != NULL)
            item_free_owned(&slot[i]);
}

static void *
child_thread(void *arg)
{
    churn((uint64_t)(uintptr_t)arg, test_scaled(CHILD_OPS / 2));
    return NULL;
}

static int
wait_child(pid_t pid, const char *what)
{
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    CHECK(r == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: killed by signal %d%s\n", what, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (deadlocked after fork?)" : "");
    else
        fprintf(stderr, "%s: exit status %d\n", what, WEXITSTATUS(status));
    return 1;
}

/* What a forked child does.  `mail` is the mailbox as it was at the fork. */
static void
in_child(unsigned round, struct item *mail, size_t nmail)
{
    size_t i;
    pthread_t t;
    void *p;

    watch(1);
    /* the parent's blocks: intact, and freeable (every other one) */
    for (i = 0; i < PARENT_BLOCKS; i++) {
        CHECK_PATTERN(parent_blocks[i].p, parent_blocks[i].size, parent_blocks[i].tag);
        if (i % 2 == round % 2)
            item_free_owned(&parent_blocks[i]);
    }
    /* blocks of threads that do not exist here */
    for (i = 0; i < nmail; i++)
        item_free_owned(&mail[i]);

    churn(100 + round, test_scaled(CHILD_OPS));
    p = malloc(5 * MiB);
    CHECK(p != NULL);
    memset(p, 1, 5 * MiB);
    free(p);

#if !defined(NEAP_TEST_NO_OVERRIDE) && !defined(__SANITIZE_THREAD__) &&                      \
    !defined(__SANITIZE_ADDRESS__)
    /* Not in sanitizer builds: the sanitizers' runtimes are not fork-safe
     * there.  ThreadSanitizer finds the new thread's id still in use; a new
     * thread under AddressSanitizer can block for good on a lock of ASan's
     * own allocator that another thread of the parent held at the fork. */
    CHECK(pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(200 + round)) == 0);
    churn(300 + round, test_scaled(CHILD_OPS / 2));
    CHECK(pthread_join(t, NULL) == 0);
#else
    (void)t;
    (void)child_thread;
#endif

    if (round % 4 == 0) {
        pid_t g;
        fflush(stdout);
        g = fork();
        CHECK(g >= 0);
        if (g == 0) {
            watch(1);
            churn(400 + round, test_scaled(CHILD_OPS / 2));
            for (i = 0; i < PARENT_BLOCKS; i++)
                if (parent_blocks[i].p != NULL)
                    item_free_owned(&parent_blocks[i]);
            _exit(0);
        }
        watch(0);
        CHECK(wait_child(g, "grandchild") == 0);
        watch(1);
    }
    for (i = 0; i < PARENT_BLOCKS; i++)
        if (parent_blocks[i].p != NULL)
            item_free_owned(&parent_blocks[i]);
    neap_trim();
    exit(0); /* atexit handlers and neap's exit path run too */
}

int
main(void)
{
    pthread_t bgt[BG_THREADS];
    uint64_t s = xs_seed(1);
    unsigned round, rounds = (unsigned)test_scaled(24);
    size_t i;
    int failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < PARENT_BLOCKS; i++)
        item_new(&parent_blocks[i], i < 8 ? (size_t)(1 + i) * 700 * KiB : any_size(&s), 500 + i);
    for (i = 0; i < BG_THREADS; i++)
        CHECK(pthread_create(&bgt[i], NULL, background, (void *)(uintptr_t)i) == 0);

    for (round = 0; round < rounds; round++) {
        struct item mail[MAILBOX];
        size_t nmail;
        pid_t pid, child;

        /* the background threads in full swing: forks come while they
         * allocate and free */
        bg_mark();
        /* hold the mailbox lock across the fork so the child gets it
         * consistent; neap's own locks are neap's business.  The child
         * gets it full: blocks of every tier from three heaps. */
        pthread_mutex_lock(&mailbox_lock);
        while (mailbox_n < MAILBOX)
            pthread_cond_wait(&mailbox_full, &mailbox_lock);
        fflush(stdout);
        pid = fork();
        CHECK(pid >= 0);
        nmail = mailbox_n;
        memcpy(mail, mailbox, nmail * sizeof *mail);
        if (pid == 0) {
            mailbox_n = 0;
            pthread_mutex_unlock(&mailbox_lock);
            in_child(round, mail, nmail);
        }
        pthread_mutex_unlock(&mailbox_lock);
        child = pid;
        /* in the parent the mailbox blocks are still live; free them here */
        pthread_mutex_lock(&mailbox_lock);
        nmail = mailbox_n;
        memcpy(mail, mailbox, nmail * sizeof *mail);
        mailbox_n = 0;
        pthread_mutex_unlock(&mailbox_lock);
        for (i = 0; i < nmail; i++)
            item_free_owned(&mail[i]);

        /* fork + exec, and system(), with the threads still running */
        if (round % 3 == 0) {
            char *const argv[] = {"/bin/true", NULL};
            fflush(stdout);
            pid = fork();
            CHECK(pid >= 0);
            if (pid == 0) {
                execv("/bin/true", argv);
                _exit(127);
            }
            failed |= wait_child(pid, "fork+exec /bin/true");
            CHECK(system("/bin/true") == 0);
        }
        /* they go on in the parent after the forks, then leave the CPU to
         * the child */
        bg_mark();
        bg_park(0);
        failed |= wait_child(child, "child");
    }

    bg_park(1);
    for (i = 0; i < BG_THREADS; i++)
        CHECK(pthread_join(bgt[i], NULL) == 0);
    for (i = 0; i < PARENT_BLOCKS; i++)
        item_free_owned(&parent_blocks[i]);
    CHECK(failed == 0);
    printf("test_fork: %u forks ok\n", rounds);
    return 0;
}

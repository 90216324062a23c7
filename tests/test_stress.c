/* test_stress.c -- threads (label: stress).
 *
 * Linked against neap_static: the test's malloc/free are neap's.  Every
 * block carries a position-dependent pattern (neap_test.h) written after
 * allocation and verified before it is freed, so a block handed out twice,
 * overlapping blocks or a block reused while live show up as corruption.
 * Seeds are fixed; iteration counts scale with NEAP_TEST_SCALE (default 1).
 *
 *   random   4 threads, each 2M random malloc/free of 1..2048 bytes, with
 *            occasional 64 KiB and 2 MiB blocks
 *   xthread  producers hand blocks through a mutex-protected ring buffer to
 *            consumers, which verify and free them (cross-thread frees; the
 *            producers exit while their blocks are still being freed)
 *   churn    200 short-lived threads: each frees some of its blocks, hands
 *            some to the main thread (freed after it exited) and leaks some
 *            into a global list that later threads free
 *   realloc  blocks bounce between two threads, each realloc'ing what it
 *            receives to a new size across all tiers
 *   purge    threads churn (random frees, then mallocs, of 16 B..64 KiB,
 *            now and then most of their blocks at once so pools empty)
 *            while others sit idle holding emptied pages and a thread reads
 *            the statistics without pause; meant to run with the background
 *            thread purging (NEAP_BACKGROUND=1, a short NEAP_PURGE_DELAY,
 *            NEAP_PUBLISH on: ctest's stress_purge), where it also checks
 *            that the idle threads' heaps are purged from outside
 *
 *   forkexit threads start and end (arenas orphaned or unmapped) while the
 *            main thread forks: the core's lock order at fork and at exit
 *
 * Usage: test_stress [random|xthread|churn|realloc|purge|forkexit]...  (none: all)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "neap.h"
#include "neap_test.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The tag of a block: who made it and its sequence number. */
static uint64_t
make_tag(unsigned who, uint64_t seq)
{
    return ((uint64_t)who << 40) ^ seq ^ 0xA5A5000000000000ULL;
}


/* ------------------------------------------------------------------------
 * random: each thread keeps SLOTS blocks and replaces a random one each step
 * ---------------------------------------------------------------------- */
#define RANDOM_THREADS 4
#define SLOTS 2048

static size_t
random_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 100000;
    if (r == 0)
        return 2 * MiB - xs_range(s, 0, 100);
    if (r < 100)
        return 64 * KiB + xs_range(s, 0, 16);
    return xs_range(s, 1, 2048);
}

static void *
random_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(1000 + id), seq = 0;
    size_t iters = test_scaled(2000000), i;
    struct item *slot = calloc(SLOTS, sizeof *slot);

    CHECK(slot != NULL);
    for (i = 0; i < iters; i++) {
        struct item *it = &slot[xs_next(&s) % SLOTS];
        if (it->p != NULL)
            item_free(it);
        else
            item_new(it, random_size(&s), make_tag(id, seq++));
        /* now and then a calloc or a realloc in place of malloc */
        if ((i & 1023) == 0) {
            struct item *r = &slot[xs_next(&s) % SLOTS];
            if (r->p != NULL) {
                size_t n = xs_range(&s, 1, 5000);
                void *q = realloc(r->p, n);
                CHECK(q != NULL);
                CHECK_PATTERN(q, r->size < n ? r->size : n, r->tag);
                r->p = q;
                r->size = n;
                pat_fill(q, n, r->tag);
            } else {
                size_t n = xs_range(&s, 1, 3000), k;
                unsigned char *z = calloc(1, n);
                CHECK(z != NULL);
                for (k = 0; k < n; k++)
                    CHECK(z[k] == 0);
                free(z);
            }
        }
    }
    for (i = 0; i < SLOTS; i++)
        if (slot[i].p != NULL)
            item_free(&slot[i]);
    free(slot);
    return NULL;
}

static void
stress_random(void)
{
    pthread_t t[RANDOM_THREADS];
    uintptr_t i;
    for (i = 0; i < RANDOM_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, random_thread, (void *)i) == 0);
    for (i = 0; i < RANDOM_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
}

/* ------------------------------------------------------------------------
 * xthread: producers -> ring buffer -> consumers
 * ---------------------------------------------------------------------- */
#define RING 512
#define PRODUCERS 3
#define CONSUMERS 2

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct item buf[RING];
    size_t head, count;
    unsigned producers_left;
} ring = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          {{0}}, 0, 0, PRODUCERS};

static size_t consumed[CONSUMERS];

static void
ring_put(const struct item *it)
{
    pthread_mutex_lock(&ring.lock);
    while (ring.count == RING)
        pthread_cond_wait(&ring.not_full, &ring.lock);
    ring.buf[(ring.head + ring.count) % RING] = *it;
    ring.count++;
    pthread_cond_signal(&ring.not_empty);
    pthread_mutex_unlock(&ring.lock);
}

/* 0 when the producers are done and the ring is empty */
static int
ring_get(struct item *it)
{
    pthread_mutex_lock(&ring.lock);
    while (ring.count == 0 && ring.producers_left > 0)
        pthread_cond_wait(&ring.not_empty, &ring.lock);
    if (ring.count == 0) {
        pthread_mutex_unlock(&ring.lock);
        return 0;
    }
    *it = ring.buf[ring.head];
    ring.head = (ring.head + 1) % RING;
    ring.count--;
    pthread_cond_signal(&ring.not_full);
    pthread_mutex_unlock(&ring.lock);
    return 1;
}

static void *
producer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(2000 + id);
    size_t n = test_scaled(400000), i;
    for (i = 0; i < n; i++) {
        struct item it;
        size_t r = xs_next(&s) % 1000, size;
        if (r == 0)
            size = xs_range(&s, 32 * KiB, 300 * KiB);
        else if (r < 50)
            size = xs_range(&s, 513, 32 * KiB);
        else
            size = xs_range(&s, 1, 512);
        item_new(&it, size, make_tag(100 + id, i));
        ring_put(&it);
        /* and some traffic of its own */
        if ((i & 7) == 0) {
            void *p = malloc(size);
            CHECK(p != NULL);
            free(p);
        }
    }
    pthread_mutex_lock(&ring.lock);
    ring.producers_left--;
    pthread_cond_broadcast(&ring.not_empty);
    pthread_mutex_unlock(&ring.lock);
    return NULL;
}

static void *
consumer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct item it;
    uint64_t s = xs_seed(3000 + id);
    while (ring_get(&it)) {
        /* consumers allocate too, so freed remote blocks meet local ones */
        if (xs_next(&s) % 4 == 0) {
            void *p = malloc(it.size);
            CHECK(p != NULL);
            memset(p, 0x5A, it.size);
            free(p);
        }
        item_free(&it);
        consumed[id]++;
    }
    return NULL;
}

static void
stress_xthread(void)
{
    pthread_t p[PRODUCERS], c[CONSUMERS];
    uintptr_t i;
    size_t total = 0;
    for (i = 0; i < CONSUMERS; i++)
        CHECK(pthread_create(&c[i], NULL, consumer, (void *)i) == 0);
    for (i = 0; i < PRODUCERS; i++)
        CHECK(pthread_create(&p[i], NULL, producer, (void *)i) == 0);
    for (i = 0; i < PRODUCERS; i++)
        CHECK(pthread_join(p[i], NULL) == 0);
    for (i = 0; i < CONSUMERS; i++) {
        CHECK(pthread_join(c[i], NULL) == 0);
        total += consumed[i];
    }
    CHECKF(total == PRODUCERS * test_scaled(400000), "%zu blocks consumed", total);
}

/* ------------------------------------------------------------------------
 * churn: short-lived threads; blocks outlive them
 * ---------------------------------------------------------------------- */
#define CHURN_THREADS 200
#define CHURN_BATCH 8

static struct {
    pthread_mutex_t lock;
    struct item *to_main;   /* freed by main after the threads exited */
    size_t n_main, cap_main;
    struct item *leaked;    /* freed by later threads */
    size_t n_leaked, cap_leaked;
} churn = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, 0, 0};

static void
push(struct item **v, size_t *n, size_t *cap, const struct item *it)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        struct item *nv = realloc(*v, c * sizeof *nv);
        CHECK(nv != NULL);
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = *it;
}

static void *
churn_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(4000 + id);
    size_t n = test_scaled(400) + 8, i;
    struct item *mine = malloc(n * sizeof *mine);

    CHECK(mine != NULL);
    for (i = 0; i < n; i++) {
        size_t size = xs_next(&s) % 50 == 0 ? xs_range(&s, 33 * KiB, 200 * KiB)
                                            : xs_range(&s, 1, 3000);
        item_new(&mine[i], size, make_tag(1000 + id, i));
    }
    /* free some of the blocks leaked by earlier threads */
    pthread_mutex_lock(&churn.lock);
    for (i = 0; i < 50 && churn.n_leaked > 0; i++) {
        struct item it = churn.leaked[--churn.n_leaked];
        pthread_mutex_unlock(&churn.lock);
        item_free(&it);
        pthread_mutex_lock(&churn.lock);
    }
    pthread_mutex_unlock(&churn.lock);

    for (i = 0; i < n; i++) {
        switch (xs_next(&s) % 4) {
        case 0:
            pthread_mutex_lock(&churn.lock);
            push(&churn.to_main, &churn.n_main, &churn.cap_main, &mine[i]);
            pthread_mutex_unlock(&churn.lock);
            break;
        case 1:
            pthread_mutex_lock(&churn.lock);
            push(&churn.leaked, &churn.n_leaked, &churn.cap_leaked, &mine[i]);
            pthread_mutex_unlock(&churn.lock);
            break;
        default:
            item_free(&mine[i]);
        }
    }
    free(mine);
    return NULL;
}

static void
stress_churn(void)
{
    pthread_t t[CHURN_BATCH];
    unsigned started = 0;
    size_t i;
    neap_stats_t st;

    while (started < CHURN_THREADS) {
        unsigned k, batch = CHURN_THREADS - started < CHURN_BATCH ? CHURN_THREADS - started
                                                                  : CHURN_BATCH;
        for (k = 0; k < batch; k++)
            CHECK(pthread_create(&t[k], NULL, churn_thread, (void *)(uintptr_t)(started + k)) == 0);
        for (k = 0; k < batch; k++)
            CHECK(pthread_join(t[k], NULL) == 0);
        started += batch;
    }
    /* every thread has exited; its heap must be gone */
    neap_stats_get(&st);
    CHECKF(st.heaps_current <= 2, "%zu heaps alive after 200 threads exited", st.heaps_current);

    for (i = 0; i < churn.n_main; i++)
        item_free(&churn.to_main[i]);
    for (i = 0; i < churn.n_leaked; i++)
        item_free(&churn.leaked[i]);
    free(churn.to_main);
    free(churn.leaked);
    churn.to_main = churn.leaked = NULL;
    churn.n_main = churn.n_leaked = 0;

    /* the 200 threads' arenas were handed over, not kept one per thread */
    neap_trim();
    neap_stats_get(&st);
    CHECKF(st.arenas_current < 32, "%zu arenas mapped after the churn, all freed and trimmed",
           st.arenas_current);
    CHECKF(st.huge_current == 0 && st.large_current < 8, "huge %zu large %zu left",
           st.huge_current, st.large_current);
}

/* ------------------------------------------------------------------------
 * realloc ping-pong: blocks bounce between two threads
 * ---------------------------------------------------------------------- */
#define PP_BLOCKS 64
/* Hops a block makes before it retires: 64000 reallocs in all, each by the
 * thread that did not make the block's last move, across every pair of
 * tiers (the rarest, 1-3 MiB to 1-3 MiB, some 6 times).  The test made 4
 * times as many, mostly copying and checking large and huge blocks, and
 * took minutes on a busy machine for no more coverage. */
#define PP_HOPS 1000

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct item q[2][PP_BLOCKS]; /* q[i]: blocks waiting for thread i */
    unsigned hops[2][PP_BLOCKS];
    size_t n[2];
    size_t live; /* blocks not yet retired */
} pp = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{{0}}}, {{0}}, {0}, 0};

static size_t
pp_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 100;
    if (r == 0)
        return xs_range(s, MiB + 1, 3 * MiB);
    if (r < 10)
        return xs_range(s, 32 * KiB + 1, MiB);
    if (r < 40)
        return xs_range(s, 513, 32 * KiB);
    return xs_range(s, 1, 512); /* realloc(p, 0) is test_api's */
}

static void *
pp_thread(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg, other = 1 - me;
    uint64_t s = xs_seed(5000 + me);
    unsigned max_hops = (unsigned)test_scaled(PP_HOPS);

    pthread_mutex_lock(&pp.lock);
    for (;;) {
        struct item it;
        unsigned hops;
        size_t n;
        void *q;
        while (pp.n[me] == 0 && pp.live > 0)
            pthread_cond_wait(&pp.cond, &pp.lock);
        if (pp.n[me] == 0)
            break;
        pp.n[me]--;
        it = pp.q[me][pp.n[me]];
        hops = pp.hops[me][pp.n[me]];
        pthread_mutex_unlock(&pp.lock);

        CHECK_PATTERN(it.p, it.size, it.tag);
        if (hops >= max_hops) {
            free(it.p);
            pthread_mutex_lock(&pp.lock);
            pp.live--;
            pthread_cond_broadcast(&pp.cond);
            continue;
        }
        n = pp_size(&s);
        q = realloc(it.p, n);
        CHECKF(q != NULL, "realloc(%zu -> %zu)", it.size, n);
        CHECKF(test_aligned(q, 16), "realloc to %zu = %p", n, q);
        CHECK(neap_usable_size(q) >= n);
        CHECK_PATTERN(q, it.size < n ? it.size : n, it.tag);
        it.p = q;
        it.size = n;
        pat_fill(q, n, it.tag);

        pthread_mutex_lock(&pp.lock);
        pp.q[other][pp.n[other]] = it;
        pp.hops[other][pp.n[other]] = hops + 1;
        pp.n[other]++;
        pthread_cond_broadcast(&pp.cond);
    }
    pthread_mutex_unlock(&pp.lock);
    return NULL;
}

static void
stress_realloc(void)
{
    pthread_t t[2];
    uint64_t s = xs_seed(6000);
    uintptr_t i;

    for (i = 0; i < PP_BLOCKS; i++) {
        struct item it;
        item_new(&it, pp_size(&s), make_tag(9000, i));
        pp.q[i % 2][pp.n[i % 2]] = it;
        pp.hops[i % 2][pp.n[i % 2]] = 0;
        pp.n[i % 2]++;
    }
    pp.live = PP_BLOCKS;
    for (i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, pp_thread, (void *)i) == 0);
    for (i = 0; i < 2; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(pp.live == 0 && pp.n[0] == 0 && pp.n[1] == 0);
}


/* ------------------------------------------------------------------------
 * purge: churn beside idle heaps and a statistics reader, with the
 * background thread claiming heaps to purge them
 * ---------------------------------------------------------------------- */
#define PURGE_CHURNERS 3
#define PURGE_IDLERS 2
#define PURGE_SLOTS 1024

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned idle;          /* idlers that have emptied their pools */
    int release;            /* main lets the idlers finish */
    _Atomic int churning;   /* churners still at work */
    _Atomic int started;    /* churners that have a heap (made their first block) */
    _Atomic size_t reads;   /* statistics read */
} pg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

static size_t
purge_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 1000;
    if (r == 0)
        return 64 * KiB + xs_range(s, 0, 4096);   /* a large run */
    if (r < 100)
        return xs_range(s, 513, 16 * KiB);        /* medium pools, run classes */
    return xs_range(s, 1, 512);
}

static void *
purge_churner(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(3000 + id), seq = 0;
    size_t iters = test_scaled(600000), i, k;
    struct item *slot = calloc(PURGE_SLOTS, sizeof *slot);

    CHECK(slot != NULL);
    for (i = 0; i < iters; i++) {
        /* a random free, then a malloc in its place */
        struct item *it = &slot[xs_next(&s) % PURGE_SLOTS];
        if (it->p != NULL)
            item_free(it);
        item_new(it, purge_size(&s), make_tag(100 + id, seq++));
        if (i == 0)
            atomic_fetch_add(&pg.started, 1);   /* a heap of neap's lives from here on */
        /* now and then most blocks go at once: pools empty, pages turn
         * dirty, the purges (the owner's and the background's) have work */
        if (i % 50000 == 49999)
            for (k = 0; k < PURGE_SLOTS; k++)
                if (slot[k].p != NULL && k % 8 != 0)
                    item_free(&slot[k]);
    }
    for (k = 0; k < PURGE_SLOTS; k++)
        if (slot[k].p != NULL)
            item_free(&slot[k]);
    free(slot);
    atomic_fetch_sub(&pg.churning, 1);
    return NULL;
}

static void *
purge_idler(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(4000 + id), seq = 0;
    size_t n = test_scaled(8000) + 64, i;
    struct item *blk = calloc(n, sizeof *blk);

    CHECK(blk != NULL);
    for (i = 0; i < n; i++)
        item_new(&blk[i], xs_range(&s, 256, 2048), make_tag(200 + id, seq++));
    /* keep one in 64: most pools empty, their pages dirty in this heap */
    for (i = 0; i < n; i++)
        if (i % 64 != 0)
            item_free(&blk[i]);
    /* idle: no allocation, no free, until main has seen the pages go */
    pthread_mutex_lock(&pg.lock);
    pg.idle++;
    pthread_cond_broadcast(&pg.cond);
    while (!pg.release)
        pthread_cond_wait(&pg.cond, &pg.lock);
    pthread_mutex_unlock(&pg.lock);
    for (i = 0; i < n; i += 64)
        item_free(&blk[i]);
    free(blk);
    return NULL;
}

/* the counts of one snapshot agree with each other */
static void
purge_check_stats(const neap_stats_t *st)
{
    size_t pools = 0, c;
    for (c = 0; c < NEAP_CLASS_MAX; c++) {
        pools += st->classes[c].pools;
        CHECKF(st->classes[c].pools == 0 || st->classes[c].blocks_used + st->classes[c].blocks_free > 0,
               "class %zu: %zu pools without blocks", c + 1, st->classes[c].pools);
    }
    CHECKF(pools + st->large_current == st->pools_current, "pools %zu + large %zu != %zu", pools,
           st->large_current, st->pools_current);
    CHECKF(st->bytes_in_pools == st->pages_used * NEAP_PAGE_SIZE, "bytes in pools %zu, pages %zu",
           st->bytes_in_pools, st->pages_used);
    CHECK(st->heaps_current >= 1);
}

static void *
purge_reader(void *arg)
{
    neap_stats_t st;
    (void)arg;
    /* no heap may exist before a churner's first block (in a sanitizer
     * build the main thread's and the idlers' malloc is the runtime's) */
    while (atomic_load(&pg.started) == 0 && atomic_load(&pg.churning) > 0)
        sched_yield();
    while (atomic_load(&pg.churning) > 0) {
        neap_stats_get(&st);
        purge_check_stats(&st);
        atomic_fetch_add(&pg.reads, 1);
    }
    return NULL;
}

/* whether membarrier(2) can be used here: without it the background thread
 * leaves owned heaps to their owners */
static int
purge_membarrier_ok(void)
{
#ifdef SYS_membarrier
    long cmds = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0);
    return cmds > 0 && (cmds & (1 << 3)) != 0;   /* MEMBARRIER_CMD_PRIVATE_EXPEDITED */
#else
    return 0;
#endif
}

static void
stress_purge(void)
{
    pthread_t churner[PURGE_CHURNERS], idler[PURGE_IDLERS], reader;
    neap_stats_t st;
    uintptr_t i;
    int background = neap_option_get(NEAP_OPTION_BACKGROUND) != 0;

    atomic_store(&pg.churning, PURGE_CHURNERS);
    for (i = 0; i < PURGE_IDLERS; i++)
        CHECK(pthread_create(&idler[i], NULL, purge_idler, (void *)i) == 0);
    CHECK(pthread_create(&reader, NULL, purge_reader, NULL) == 0);
    for (i = 0; i < PURGE_CHURNERS; i++)
        CHECK(pthread_create(&churner[i], NULL, purge_churner, (void *)i) == 0);
    for (i = 0; i < PURGE_CHURNERS; i++)
        CHECK(pthread_join(churner[i], NULL) == 0);
    CHECK(pthread_join(reader, NULL) == 0);
    CHECK(atomic_load(&pg.reads) > 0);

    pthread_mutex_lock(&pg.lock);
    while (pg.idle < PURGE_IDLERS)
        pthread_cond_wait(&pg.cond, &pg.lock);
    pthread_mutex_unlock(&pg.lock);
    if (background && purge_membarrier_ok()) {
        /* the idlers take no slow path now, and neither does this thread:
         * only the background thread can give their pages back.  Waits
         * for it (a liveness check: the bound is far beyond any delay) */
        size_t tries;
        for (tries = 0; tries < 6000; tries++) {
            neap_stats_get(&st);
            if (st.pages_dirty == 0)
                break;
            usleep(10000);
        }
        CHECKF(st.pages_dirty == 0, "%zu dirty pages left in idle heaps", st.pages_dirty);
        printf("stress purge: idle heaps purged from outside after %zu looks\n", tries + 1);
    }
    neap_stats_get(&st);
    purge_check_stats(&st);
    pthread_mutex_lock(&pg.lock);
    pg.release = 1;
    pthread_cond_broadcast(&pg.cond);
    pthread_mutex_unlock(&pg.lock);
    for (i = 0; i < PURGE_IDLERS; i++)
        CHECK(pthread_join(idler[i], NULL) == 0);
}

/* ------------------------------------------------------------------------
 * forkexit: threads end (their arenas orphaned, or unmapped under the
 * orphan lock) while another thread forks (which takes the core's locks
 * in its prepare handler).  Two lock orders here once deadlocked a thread
 * exit against a fork; TSan (the stress tier) reports the inversion even
 * when the timing does not hang, and a hang fails by the test's timeout.
 * ---------------------------------------------------------------------- */
#define FORKEXIT_FORKS 40
#define FORKEXIT_BLOCKS 64

static atomic_int forkexit_done;
static atomic_size_t forkexit_threads;

static void *
forkexit_worker(void *arg)
{
    void *b[FORKEXIT_BLOCKS];
    uint64_t x = xs_seed((uintptr_t)arg);
    size_t i;
    for (i = 0; i < FORKEXIT_BLOCKS; i++) {
        size_t n = xs_range(&x, 16, 8192);
        b[i] = malloc(n);
        CHECK(b[i] != NULL);
        pat_fill(b[i], n, (uintptr_t)b[i]);
        CHECK(pat_check(b[i], n, (uintptr_t)b[i]));
    }
    for (i = 0; i < FORKEXIT_BLOCKS; i++)   /* all of them: the arena may empty at the exit */
        free(b[i]);
    return NULL;
}

static void *
forkexit_spawner(void *arg)
{
    uintptr_t k = 0;
    (void)arg;
    while (!atomic_load(&forkexit_done)) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, forkexit_worker, (void *)++k) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        atomic_fetch_add(&forkexit_threads, 1);
    }
    return NULL;
}

static void
stress_forkexit(void)
{
    pthread_t spawner[2];
    size_t i, forks = (size_t)test_scaled(FORKEXIT_FORKS);
    if (forks < 4)
        forks = 4;
    for (i = 0; i < 2; i++)
        CHECK(pthread_create(&spawner[i], NULL, forkexit_spawner, NULL) == 0);
    for (i = 0; i < forks; i++) {
        pid_t pid;
        int status;
        /* let some threads come and go between two forks (a yield loop on
         * a count, not a clock: threads ending is the point) */
        size_t seen = atomic_load(&forkexit_threads);
        while (atomic_load(&forkexit_threads) < seen + 2)
            sched_yield();
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            void *p = malloc(100);   /* the child's allocator works */
            free(p);
            _exit(p != NULL ? 0 : 1);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %zu: status %d", i, status);
    }
    atomic_store(&forkexit_done, 1);
    for (i = 0; i < 2; i++)
        CHECK(pthread_join(spawner[i], NULL) == 0);
    printf("stress forkexit: %zu forks beside %zu thread exits\n", forks, atomic_load(&forkexit_threads));
}

/* ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
} parts[] = {
    {"random", stress_random},
    {"xthread", stress_xthread},
    {"churn", stress_churn},
    {"realloc", stress_realloc},
    {"purge", stress_purge},
    {"forkexit", stress_forkexit},
};

int
main(int argc, char **argv)
{
    size_t i;
    int a;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("NEAP_TEST_SCALE %g\n", test_scale());
    for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        double t0;
        int wanted = argc < 2;
        for (a = 1; a < argc; a++)
            if (strcmp(argv[a], parts[i].name) == 0)
                wanted = 1;
        if (!wanted)
            continue;
        t0 = now_s();
        parts[i].run();
        printf("stress %-8s ok  %.2f s\n", parts[i].name, now_s() - t0);
    }
    for (a = 1; a < argc; a++) {
        int known = 0;
        for (i = 0; i < sizeof parts / sizeof parts[0]; i++)
            known |= strcmp(argv[a], parts[i].name) == 0;
        CHECKF(known, "unknown part %s", argv[a]);
    }
    return 0;
}

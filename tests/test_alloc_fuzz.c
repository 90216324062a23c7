/* test_alloc_fuzz.c -- random allocator operations across threads (label:
 * stress).
 *
 * FUZZ_THREADS threads each keep a table of slots and, step by step, pick an
 * operation with a seeded generator: malloc, calloc, realloc (to and from
 * every tier, growing, shrinking, the same size, realloc(NULL, n) and
 * reallocarray), an aligned allocation (16 B..2 MiB alignments, size 0
 * included, through every aligned entry point), free, a check of a live
 * block, neap_trim now and then, and blocks posted to the next thread's
 * mailbox, which frees, reallocs or keeps them (cross-thread frees).
 * Sizes come from a mix: tiny, small, medium, large, rarely huge, and the
 * size classes' edges (each block size, one less, one more).
 *
 * What is checked:
 *   - every allocation returns a pointer aligned as asked (16 at least),
 *     owned by neap, with usable size >= the size asked (== good_size for
 *     malloc and calloc of small and medium sizes), stable while it lives;
 *   - calloc's memory is zero;
 *   - every live block carries a pattern keyed by its address and a tag of
 *     its own over the size asked and the slack after it up to its usable
 *     size (both ends of a long slack: see blk_parts), checked before it is
 *     freed or realloc'd, at random steps, and of every live block at each
 *     round's end: a block written by another allocation (an overlap, a
 *     block handed out twice, a write past a neighbour's usable size) shows
 *     up as corruption;
 *   - realloc keeps the prefix (the smaller of the two sizes asked);
 *   - at each round's end, with every thread stopped at a barrier, the live
 *     blocks of all threads and mailboxes, sorted by address, do not overlap
 *     (each taken as its whole usable size).
 *
 * The work is bounded by steps, not time: NEAP_FUZZ_STEPS steps per thread
 * and seed (default 24000, scaled by NEAP_TEST_SCALE), for each seed of
 * fuzz_seeds[] or only NEAP_FUZZ_SEED.  A thread's operations depend only on
 * the seed and its id: what a thread receives in its mailbox in round r is
 * what the previous thread posted in round r - 1 (the rounds are separated
 * by barriers), so a failure names the seed, thread and step that met it.
 * The addresses the allocator hands out, and so the patterns, differ from run
 * to run.
 *
 * Usage: test_alloc_fuzz   (NEAP_FUZZ_SEED=n, NEAP_FUZZ_STEPS=n to override)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap.h"
#include "neap_test.h"

#define FUZZ_THREADS 4
#define FUZZ_SLOTS 512
#define FUZZ_ROUNDS 8
#define FUZZ_MAIL 256            /* blocks a thread may post to the next in a round */
#define FUZZ_STEPS 24000         /* per thread and seed, before NEAP_TEST_SCALE */
#define FUZZ_LIVE_MAX (48 * MiB) /* past this a thread's live blocks are freed first */
#define FUZZ_MEDIUM_MAX (32 * KiB) /* the largest medium class (core/internal.h) */

/* The seeds a default run goes through; a failure names one, and
 * NEAP_FUZZ_SEED=<it> runs it alone. */
static const uint64_t fuzz_seeds[] = {1, 2, 3, 0x5eed};

/* A live block: what it was asked for, what it got, and who made it when
 * (named by the failure messages). */
struct blk {
    unsigned char *p;
    size_t size;   /* bytes asked for */
    size_t usable; /* neap_usable_size(p) when it was made */
    size_t align;  /* alignment asked for (16 for the plain calls) */
    uint64_t tag;  /* the pattern's key: the block's own tag ^ its address */
    unsigned who;  /* thread that made it (or last realloc'd it) */
    size_t step;   /* at that step */
};

/* mailbox[i]: blocks thread i - 1 posted for thread i.  Posts of round r go
 * to set r % 2; thread i takes from set (r + 1) % 2, complete since the
 * barrier that ended round r - 1, and empties it before round r ends. */
static struct mailbox {
    pthread_mutex_t lock;
    struct blk item[2][FUZZ_MAIL];
    size_t n[2];
} mailbox[FUZZ_THREADS];

struct fuzz_thread {
    pthread_t thread;
    unsigned id;
    uint64_t seed; /* the run's seed */
    uint64_t rng;
    size_t steps; /* per round */
    size_t step;  /* the current step, counted over all rounds */
    unsigned round;
    const char *op; /* the current operation, for messages */
    size_t live;    /* bytes asked for by the blocks in slot[] */
    size_t posted;  /* blocks posted this round */
    struct blk slot[FUZZ_SLOTS];
};

static struct fuzz_thread fuzz[FUZZ_THREADS];
static pthread_barrier_t fuzz_barrier;

/* Sizes at the edges of the size classes and tiers: each small and medium
 * block size, one less and one more, the large tier's page multiples around
 * a few run lengths, and the edge between large and huge. */
static size_t edge_size[3 * (NEAP_CLASS_MAX + 16)];
static size_t n_edge_sizes;
static size_t n_class_edges; /* the first ones: small and medium classes */

/* CHECKF naming where the fuzzer is: the seed, thread, step and operation */
#define FCHECK(t, expr, fmt, ...)                                                                  \
    CHECKF(expr,                                                                                   \
           "seed %llu thread %u step %zu (%s): " fmt                                               \
           " [again: NEAP_FUZZ_SEED=%llu NEAP_FUZZ_STEPS=%zu]",                                    \
           (unsigned long long)(t)->seed, (t)->id, (t)->step, (t)->op, ##__VA_ARGS__,              \
           (unsigned long long)(t)->seed, (t)->steps * FUZZ_ROUNDS)

static void
edges_init(void)
{
    size_t b = neap_good_size(1), k;
    static const size_t pages[] = {9, 16, 17, 64, 128, 255, 256};

    n_edge_sizes = 0;
    /* the block sizes in increasing order: good_size of one past each */
    while (b <= FUZZ_MEDIUM_MAX && n_edge_sizes + 3 <= 3 * NEAP_CLASS_MAX) {
        edge_size[n_edge_sizes++] = b - 1;
        edge_size[n_edge_sizes++] = b;
        edge_size[n_edge_sizes++] = b + 1;
        if (neap_good_size(b + 1) <= b)
            break;
        b = neap_good_size(b + 1);
    }
    n_class_edges = n_edge_sizes;
    for (k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        edge_size[n_edge_sizes++] = pages[k] * NEAP_PAGE_SIZE - 1;
        edge_size[n_edge_sizes++] = pages[k] * NEAP_PAGE_SIZE + 1;
    }
    edge_size[n_edge_sizes++] = MiB - 1;
    edge_size[n_edge_sizes++] = MiB;
    edge_size[n_edge_sizes++] = MiB + 1;
    CHECK(n_edge_sizes <= sizeof edge_size / sizeof edge_size[0]);
}

/* The mix of sizes: mostly small, a few large, huge ones rarely (they cost
 * an mmap, page faults and megabytes of pattern each: they are most of the
 * test's time even so). */
static size_t
fuzz_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 100000;
    if (r < 35000)
        return xs_range(s, 0, 64);
    if (r < 65000)
        return xs_range(s, 65, 512);
    if (r < 79000)
        return edge_size[xs_next(s) % n_class_edges];
    if (r < 80000)
        return edge_size[xs_range(s, n_class_edges, n_edge_sizes - 1)];
    if (r < 89000)
        return xs_range(s, 513, 4 * KiB);
    if (r < 99660)
        return xs_range(s, 4 * KiB + 1, 32 * KiB);
    if (r < 99810)
        return xs_range(s, 32 * KiB + 1, 128 * KiB);
    if (r < 99960)
        return xs_range(s, 128 * KiB + 1, MiB);
    return xs_range(s, MiB + 1, 8 * MiB);
}

/* Alignments 16 B..2 MiB, the small ones more often. */
static size_t
fuzz_align(uint64_t *s)
{
    unsigned shift = 4 + (unsigned)(xs_next(s) % 18);
    if (shift > 13 && xs_next(s) % 4 != 0)
        shift = 4 + (unsigned)(xs_next(s) % 10);
    return (size_t)1 << shift;
}

static uint64_t
block_tag(struct fuzz_thread *t, const void *p)
{
    return xs_seed(t->seed * 1000003 + t->id * 7919 + t->step) ^ (uint64_t)(uintptr_t)p;
}

/* The bytes of a block that carry its pattern: the size asked for, then of
 * the slack after it the first and the last FUZZ_SLACK bytes, each part
 * under a tag of its own.  A write past the block's usable end or into it
 * from a neighbour meets those; the middle of a long slack (a large block
 * realloc'd small in place keeps its pages) would only cost time, and the
 * rounds' overlap check covers it.  Returns the number of parts. */
#define FUZZ_SLACK 4096
static unsigned
blk_parts(const struct blk *b, size_t off[3], size_t len[3], uint64_t tag[3])
{
    size_t slack = b->usable - b->size, head = slack < FUZZ_SLACK ? slack : FUZZ_SLACK;
    unsigned n = 0;

    off[n] = 0, len[n] = b->size, tag[n++] = b->tag;
    if (head > 0)
        off[n] = b->size, len[n] = head, tag[n++] = b->tag ^ 0x5AC4000000000001ULL;
    if (slack > head) {
        size_t tail = slack - head < FUZZ_SLACK ? slack - head : FUZZ_SLACK;
        off[n] = b->usable - tail, len[n] = tail, tag[n++] = b->tag ^ 0x5AC4000000000002ULL;
    }
    return n;
}

static void
blk_fill(const struct blk *b)
{
    size_t off[3], len[3];
    uint64_t tag[3];
    unsigned i, n = blk_parts(b, off, len, tag);
    for (i = 0; i < n; i++)
        pat_fill(b->p + off[i], len[i], tag[i]);
}

/* The pattern of b (the size asked for and the slack's ends), and its usable
 * size unchanged. */
static void
blk_verify(struct fuzz_thread *t, const struct blk *b)
{
    size_t off[3], len[3];
    uint64_t tag[3];
    unsigned i, n = blk_parts(b, off, len, tag);

    for (i = 0; i < n; i++) {
        size_t bad = pat_check(b->p + off[i], len[i], tag[i]);
        FCHECK(t, bad == (size_t)-1,
               "block %p (size %zu, usable %zu, align %zu, made by thread %u at step %zu) "
               "corrupt at offset %zu (%s)",
               (void *)b->p, b->size, b->usable, b->align, b->who, b->step, off[i] + bad,
               i == 0 ? "inside the size asked" : "in the slack");
    }
    FCHECK(t, neap_usable_size(b->p) == b->usable,
           "block %p (size %zu, made by thread %u at step %zu): usable size %zu, was %zu",
           (void *)b->p, b->size, b->who, b->step, neap_usable_size(b->p), b->usable);
}

/* A block fresh from an allocation call: check what the call promised and
 * fill it. */
static void
blk_made(struct fuzz_thread *t, struct blk *b, void *p, size_t size, size_t align, int exact)
{
    size_t u;
    FCHECK(t, p != NULL, "size %zu align %zu: NULL, errno %d", size, align, errno);
    FCHECK(t, test_aligned(p, align) && test_aligned(p, 16), "size %zu align %zu: %p", size,
           align, p);
    FCHECK(t, neap_owns(p), "size %zu align %zu: %p not owned", size, align, p);
    u = neap_usable_size(p);
    FCHECK(t, u >= size, "size %zu align %zu: usable %zu", size, align, u);
    if (exact && size <= FUZZ_MEDIUM_MAX)
        FCHECK(t, u == neap_good_size(size), "size %zu: usable %zu, good_size %zu", size, u,
               neap_good_size(size));
    b->p = p;
    b->size = size;
    b->usable = u;
    b->align = align;
    b->who = t->id;
    b->step = t->step;
    b->tag = block_tag(t, p);
    blk_fill(b);
}

static void
blk_free(struct fuzz_thread *t, struct blk *b)
{
    blk_verify(t, b);
    free(b->p);
    b->p = NULL;
}

/* realloc (or reallocarray) of b to a new size: the prefix is kept, under
 * the old address's tag, and checked before blk_made fills the block anew */
static void
blk_realloc(struct fuzz_thread *t, struct blk *b, size_t n)
{
    struct blk old = *b;
    /* the old address, for the messages: the pointer itself is dead after
     * the call */
    void *was = (void *)(uintptr_t)test_launder(old.p);
    size_t keep = old.size < n ? old.size : n, bad;
    void *q;

    blk_verify(t, &old);
    if (n >= 2 && n % 2 == 0 && xs_next(&t->rng) % 4 == 0) {
        t->op = "reallocarray";
        q = reallocarray(old.p, 2, n / 2);
    } else {
        t->op = "realloc";
        q = realloc(old.p, n);
    }
    FCHECK(t, q != NULL, "%p (size %zu) to %zu: NULL, errno %d", was, old.size, n, errno);
    bad = pat_check(q, keep, old.tag);
    FCHECK(t, bad == (size_t)-1,
           "%p (size %zu, made by thread %u at step %zu) to %zu at %p: prefix of %zu bytes "
           "differs at offset %zu",
           was, old.size, old.who, old.step, n, q, keep, bad);
    blk_made(t, b, q, n, 16, 0);
}

/* ------------------------------------------------------------------------
 * the operations
 * ---------------------------------------------------------------------- */

/* aligned allocation through one of the entry points, chosen at random */
static void *
aligned_call(struct fuzz_thread *t, size_t align, size_t n)
{
    void *p = NULL;
    int r;
    switch (xs_next(&t->rng) % 5) {
    case 0:
        t->op = "aligned_alloc";
        return aligned_alloc(align, n);
    case 1:
        t->op = "memalign";
        return memalign(align, n);
    case 2:
        t->op = "neap_aligned_alloc";
        return neap_aligned_alloc(align, n);
    case 3:
        t->op = "posix_memalign";
        r = posix_memalign(&p, align, n);
        FCHECK(t, r == 0 && p != NULL, "(%zu, %zu) = %d", align, n, r);
        return p;
    default:
        t->op = "neap_posix_memalign";
        r = neap_posix_memalign(&p, align, n);
        FCHECK(t, r == 0 && p != NULL, "(%zu, %zu) = %d", align, n, r);
        return p;
    }
}

static void
op_alloc(struct fuzz_thread *t, struct blk *b)
{
    uint64_t r = xs_next(&t->rng) % 100;
    size_t n = fuzz_size(&t->rng), align = 16;
    void *p;

    if (r < 55) {
        t->op = "malloc";
        p = malloc(n);
        blk_made(t, b, p, n, 16, 1);
    } else if (r < 75) {
        size_t count = 1 + xs_next(&t->rng) % 8, each = n / count, bad;
        t->op = "calloc";
        n = count * each;
        p = calloc(count, each);
        FCHECK(t, p != NULL, "(%zu, %zu): NULL", count, each);
        /* zero over the size asked for; the slack is not promised */
        for (bad = 0; bad < n && ((const unsigned char *)p)[bad] == 0; bad++)
            ;
        FCHECK(t, bad == n, "(%zu, %zu) = %p: byte %zu is %#x, not zero", count, each, p, bad,
               ((const unsigned char *)p)[bad]);
        blk_made(t, b, p, n, 16, 1);
    } else if (r < 80) {
        t->op = "realloc(NULL)";
        p = realloc(NULL, n);
        blk_made(t, b, p, n, 16, 1);
    } else {
        align = fuzz_align(&t->rng);
        /* a size 0 now and then: a valid block all the same */
        if (xs_next(&t->rng) % 16 == 0)
            n = 0;
        p = aligned_call(t, align, n);
        blk_made(t, b, p, n, align, 0);
    }
    t->live += n;
}

/* a new size for a realloc: the same, a step up or down, or any */
static size_t
realloc_size(struct fuzz_thread *t, size_t old)
{
    uint64_t r = xs_next(&t->rng) % 8;
    if (r == 0)
        return old;
    if (r == 1)
        return old + xs_range(&t->rng, 1, 16);
    if (r == 2)
        return old > 16 ? old - xs_range(&t->rng, 1, 16) : old / 2;
    return fuzz_size(&t->rng);
}

/* post b to the next thread's mailbox; 0 if this round's quota is used */
static int
mail_post(struct fuzz_thread *t, const struct blk *b)
{
    struct mailbox *m = &mailbox[(t->id + 1) % FUZZ_THREADS];
    unsigned set = t->round % 2;

    if (t->posted == FUZZ_MAIL)
        return 0;
    pthread_mutex_lock(&m->lock);
    FCHECK(t, m->n[set] < FUZZ_MAIL, "mailbox of thread %u full", (t->id + 1) % FUZZ_THREADS);
    m->item[set][m->n[set]++] = *b;
    pthread_mutex_unlock(&m->lock);
    t->posted++;
    return 1;
}

/* take a block the previous thread posted in the previous round; 0 if none */
static int
mail_take(struct fuzz_thread *t, struct blk *out)
{
    struct mailbox *m = &mailbox[t->id];
    unsigned set = (t->round + 1) % 2;
    int got = 0;

    pthread_mutex_lock(&m->lock);
    if (m->n[set] > 0) {
        *out = m->item[set][--m->n[set]];
        got = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return got;
}

/* a block from the mailbox: freed here, realloc'd here and kept, or kept as
 * it is (freed later by this thread) */
static void
op_receive(struct fuzz_thread *t, struct blk *in, struct blk *empty)
{
    uint64_t r = xs_next(&t->rng) % 100;

    t->op = "received";
    blk_verify(t, in);
    if (empty == NULL || r < 50) {
        t->op = "free (received)";
        blk_free(t, in);
        return;
    }
    *empty = *in;
    if (r < 85)
        blk_realloc(t, empty, realloc_size(t, empty->size));
    t->live += empty->size;
}

static void
fuzz_step(struct fuzz_thread *t)
{
    struct blk *b = &t->slot[xs_next(&t->rng) % FUZZ_SLOTS];
    uint64_t r = xs_next(&t->rng) % 1000;

    if (r < 120) {
        struct blk in;
        if (mail_take(t, &in)) {
            op_receive(t, &in, b->p == NULL ? b : NULL);
            return;
        }
    }
    if (r == 999 && xs_next(&t->rng) % 8 == 0) {
        t->op = "neap_trim";
        (void)neap_trim();
        return;
    }
    if (b->p == NULL) {
        if (t->live > FUZZ_LIVE_MAX)
            return;
        op_alloc(t, b);
        return;
    }
    r = xs_next(&t->rng) % 100;
    if (t->live > FUZZ_LIVE_MAX || r < 45) {
        t->op = "free";
        t->live -= b->size;
        blk_free(t, b);
    } else if (r < 75) {
        t->live -= b->size;
        blk_realloc(t, b, realloc_size(t, b->size));
        t->live += b->size;
    } else if (r < 88) {
        t->op = "post";
        if (mail_post(t, b)) {
            t->live -= b->size;
            b->p = NULL;
        }
    } else {
        t->op = "check";
        blk_verify(t, b);
    }
}

/* ------------------------------------------------------------------------
 * the rounds' end: every live block of every thread, at a barrier
 * ---------------------------------------------------------------------- */
struct live_ref {
    const struct blk *b;
    unsigned holder; /* the thread whose table or mailbox has it */
};

static int
live_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct live_ref *)a)->b->p;
    uintptr_t y = (uintptr_t)((const struct live_ref *)b)->b->p;
    return x < y ? -1 : x > y;
}

/* Run by thread 0 while the others wait at the barrier: every live block's
 * pattern, and no two overlap. */
static void
check_all(struct fuzz_thread *t, struct live_ref *ref)
{
    size_t n = 0, i, k;
    unsigned id, set;

    t->op = "round's end";
    for (id = 0; id < FUZZ_THREADS; id++) {
        for (k = 0; k < FUZZ_SLOTS; k++)
            if (fuzz[id].slot[k].p != NULL)
                ref[n++] = (struct live_ref){&fuzz[id].slot[k], id};
        /* nobody posts or takes between the barriers; locked all the same */
        pthread_mutex_lock(&mailbox[id].lock);
        for (set = 0; set < 2; set++)
            for (k = 0; k < mailbox[id].n[set]; k++)
                ref[n++] = (struct live_ref){&mailbox[id].item[set][k], id};
        pthread_mutex_unlock(&mailbox[id].lock);
    }
    qsort(ref, n, sizeof ref[0], live_cmp);
    for (i = 0; i < n; i++) {
        const struct blk *b = ref[i].b;
        blk_verify(t, b);
        if (i + 1 < n) {
            const struct blk *c = ref[i + 1].b;
            FCHECK(t, b->p + b->usable <= c->p,
                   "round %u: blocks overlap: %p (usable %zu, made by thread %u at step %zu, "
                   "held by %u) and %p (usable %zu, made by thread %u at step %zu, held by %u)",
                   t->round, (void *)b->p, b->usable, b->who, b->step, ref[i].holder,
                   (void *)c->p, c->usable, c->who, c->step, ref[i + 1].holder);
        }
    }
}

static void *
fuzz_thread_main(void *arg)
{
    struct fuzz_thread *t = arg;
    struct live_ref *ref = NULL;
    size_t k;
    struct blk in;

    if (t->id == 0) {
        ref = malloc(sizeof *ref * FUZZ_THREADS * (FUZZ_SLOTS + 2 * FUZZ_MAIL));
        CHECK(ref != NULL);
    }
    for (t->round = 0; t->round < FUZZ_ROUNDS; t->round++) {
        size_t end = t->step + t->steps;
        t->posted = 0;
        for (; t->step < end; t->step++)
            fuzz_step(t);
        /* what the previous thread posted last round and is still there */
        while (mail_take(t, &in)) {
            struct blk *e = NULL;
            for (k = 0; k < FUZZ_SLOTS && e == NULL; k++)
                if (t->slot[k].p == NULL)
                    e = &t->slot[k];
            op_receive(t, &in, e);
        }
        pthread_barrier_wait(&fuzz_barrier);
        if (t->id == 0)
            check_all(t, ref);
        pthread_barrier_wait(&fuzz_barrier);
    }
    /* the last round's posts are freed by their receivers (round is
     * FUZZ_ROUNDS now: mail_take reads the last round's set), then the rest */
    t->op = "free (end)";
    while (mail_take(t, &in))
        blk_free(t, &in);
    for (k = 0; k < FUZZ_SLOTS; k++)
        if (t->slot[k].p != NULL)
            blk_free(t, &t->slot[k]);
    free(ref);
    return NULL;
}

static void
fuzz_run(uint64_t seed, size_t steps)
{
    unsigned i;

    size_t per_round = steps / FUZZ_ROUNDS > 0 ? steps / FUZZ_ROUNDS : 1;

    printf("alloc_fuzz: seed %llu, %d threads x %zu steps\n", (unsigned long long)seed,
           FUZZ_THREADS, per_round * FUZZ_ROUNDS);
    CHECK(pthread_barrier_init(&fuzz_barrier, NULL, FUZZ_THREADS) == 0);
    for (i = 0; i < FUZZ_THREADS; i++) {
        struct fuzz_thread *t = &fuzz[i];
        memset(t, 0, sizeof *t);
        t->id = i;
        t->seed = seed;
        t->rng = xs_seed(seed * FUZZ_THREADS + i);
        t->steps = per_round;
        t->op = "start";
        mailbox[i].n[0] = mailbox[i].n[1] = 0;
    }
    for (i = 0; i < FUZZ_THREADS; i++)
        CHECK(pthread_create(&fuzz[i].thread, NULL, fuzz_thread_main, &fuzz[i]) == 0);
    for (i = 0; i < FUZZ_THREADS; i++)
        CHECK(pthread_join(fuzz[i].thread, NULL) == 0);
    CHECK(pthread_barrier_destroy(&fuzz_barrier) == 0);
}

int
main(void)
{
    const char *env_seed = getenv("NEAP_FUZZ_SEED"), *env_steps = getenv("NEAP_FUZZ_STEPS");
    size_t steps = test_scaled(FUZZ_STEPS), i;
    unsigned k;

    setvbuf(stdout, NULL, _IONBF, 0);
    for (k = 0; k < FUZZ_THREADS; k++)
        CHECK(pthread_mutex_init(&mailbox[k].lock, NULL) == 0);
    edges_init();
    if (env_steps != NULL)
        steps = (size_t)strtoull(env_steps, NULL, 0);
    if (env_seed != NULL)
        fuzz_run(strtoull(env_seed, NULL, 0), steps);
    else
        for (i = 0; i < sizeof fuzz_seeds / sizeof fuzz_seeds[0]; i++)
            fuzz_run(fuzz_seeds[i], steps);
    printf("alloc_fuzz ok\n");
    return test_status();
}

/* test_gc_threads.c -- objects shared by threads under neap_obj_lock
 * (label: stress; TSan runs it).
 *
 * NEAP_THREADS threads share one object graph the way CPython's threads
 * share the interpreter under the GIL: every use of an object, and every
 * call of neap_object.h, happens with neap_obj_lock() held.  Each thread, in
 * short locked steps chosen by a seeded generator, builds cycles of nodes
 * (some with a finalizer, some of which resurrect their object into the
 * shared slots), passes references to other threads through NEAP_SLOTS
 * shared slots, links the nodes it holds to each other (so cycles span
 * objects made by different threads), gives nodes weak references to other
 * nodes, reads them, drops references, and runs collections of every
 * generation; automatic collections run too (low thresholds), in whichever
 * thread allocates.  The lock is released between steps, so the objects
 * move between threads all the time.
 *
 * At the end the main thread empties the slots and runs a full collection:
 * every node made must have been freed exactly once (dealloc hook count and
 * neap_type_live), every finalizer must have run exactly once, and no weak
 * reference may be left.  Counters are only touched under the lock, so a
 * TSan report means the library itself races.  Iterations scale with
 * NEAP_TEST_SCALE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap_object.h"
#include "neap_test.h"

#define NEAP_THREADS 4
#define NEAP_SLOTS 16
#define NODE_REFS 4
#define HELD_MAX 48 /* references a thread holds at most */
/* Locked steps a thread makes: 80000 in all, with some 4000 collections by
 * hand, 1700 resurrections and 900 weak reference callbacks.  What the held
 * nodes link to stays alive, so the graph every collection looks at grows
 * as the test goes on: twice as many steps took 4 to 9 times as long, all
 * of it under the one lock (one core's work), and timed out beside fork and
 * stress_realloc on a busy 2-core machine. */
#define STEPS 20000

typedef struct tnode {
    unsigned flags;       /* TN_* */
    int fin_runs;         /* finalizer calls on this object */
    int owner;            /* thread that made it */
    void *ref[NODE_REFS]; /* strong references (traverse, clear) */
    void *wr;             /* a weak reference object it owns (traverse, clear) */
} tnode_t;

#define TN_FIN 0x1u       /* the finalizer counts */
#define TN_RESURRECT 0x2u /* the finalizer puts the object in an empty slot */

/* All of these only under neap_obj_lock. */
static void *g_slot[NEAP_SLOTS];   /* a reference in transit, or NULL */
static size_t g_made, g_freed;     /* nodes */
static size_t g_fin_made, g_fin_runs;
static size_t g_resurrected;
static size_t g_wr_calls;
static size_t g_collections;

static int
tnode_traverse(void *self, neap_visit_fn visit, void *arg)
{
    tnode_t *n = self;
    int i;
    for (i = 0; i < NODE_REFS; i++)
        NEAP_VISIT(n->ref[i]);
    NEAP_VISIT(n->wr);
    return 0;
}

static void
tnode_clear(void *self)
{
    tnode_t *n = self;
    int i;
    for (i = 0; i < NODE_REFS; i++)
        NEAP_CLEAR(n->ref[i]);
    NEAP_CLEAR(n->wr);
}

static void
tnode_finalize(void *self)
{
    tnode_t *n = self;
    n->fin_runs++;
    CHECKF(n->fin_runs == 1, "finalizer ran %d times", n->fin_runs);
    if (!(n->flags & TN_FIN))
        return;
    g_fin_runs++;
    if (n->flags & TN_RESURRECT) {
        size_t j = ((uintptr_t)self >> 4) % NEAP_SLOTS;
        if (g_slot[j] == NULL) {
            neap_incref(n);
            g_slot[j] = n;
            g_resurrected++;
        }
    }
}

static void
tnode_dealloc(void *self)
{
    tnode_t *n = self;
    CHECK(n->fin_runs == 1);
    g_freed++;
}

static neap_type_t tnode_type = {
    .name = "test_tnode",
    .size = sizeof(tnode_t),
    .traverse = tnode_traverse,
    .clear = tnode_clear,
    .finalize = tnode_finalize,
    .dealloc = tnode_dealloc,
};

static void
wr_cb(void *wr, void *data)
{
    CHECK(neap_weakref_get(wr) == NULL);
    g_wr_calls++;
}

static tnode_t *
tnode_new(uint64_t *s, int owner)
{
    tnode_t *n = neap_obj_new(&tnode_type);
    CHECK(n != NULL);
    n->owner = owner;
    if (xs_next(s) % 4 == 0) {
        n->flags = TN_FIN;
        g_fin_made++;
        if (xs_next(s) % 4 == 0)
            n->flags |= TN_RESURRECT;
    }
    g_made++;
    return n;
}

static void
tnode_link(tnode_t *from, int slot, void *to)
{
    void *old = from->ref[slot];
    neap_xincref(to);
    from->ref[slot] = to;
    neap_xdecref(old);
}

typedef struct worker {
    int idx;              /* thread number */
    uint64_t seed;        /* its generator's state */
    void *held[HELD_MAX]; /* references it holds */
    size_t nheld;
} worker_t;

/* keeps o (a reference) if there is room, else drops it */
static void
keep(worker_t *w, void *o)
{
    if (w->nheld < HELD_MAX)
        w->held[w->nheld++] = o;
    else
        neap_decref(o);
}

/* takes a held reference out, at random; NULL if none */
static void *
take(worker_t *w)
{
    size_t i;
    void *o;
    if (w->nheld == 0)
        return NULL;
    i = (size_t)xs_range(&w->seed, 0, w->nheld - 1);
    o = w->held[i];
    w->held[i] = w->held[--w->nheld];
    return o;
}

static void *
pick(worker_t *w)
{
    return w->nheld ? w->held[xs_range(&w->seed, 0, w->nheld - 1)] : NULL;
}

static void
step(worker_t *w)
{
    uint64_t *s = &w->seed;
    unsigned op = (unsigned)xs_range(s, 0, 99);

    if (op < 30) {
        /* a cycle of 1..12 nodes, maybe hanging off a held node or holding
         * one; we keep one of its members or none */
        size_t k = (size_t)xs_range(s, 1, 12), i;
        tnode_t *first = tnode_new(s, w->idx), *prev = first;
        for (i = 1; i < k; i++) {
            tnode_t *x = tnode_new(s, w->idx); /* may collect: all is held */
            tnode_link(prev, 0, x);
            if (prev != first)
                neap_decref(prev); /* its predecessor holds it */
            prev = x;
        }
        tnode_link(prev, 0, first);
        if (prev != first)
            neap_decref(prev);
        if (xs_next(s) % 2 == 0)
            tnode_link(first, 1, pick(w));
        if (xs_next(s) % 3 == 0 && w->nheld > 0)
            tnode_link(pick(w), 2, first);
        if (xs_next(s) % 2 == 0)
            keep(w, first);
        else
            neap_decref(first);
    } else if (op < 50) {
        /* swap with a slot: what we put there another thread may take */
        size_t j = (size_t)xs_range(s, 0, NEAP_SLOTS - 1);
        void *got = g_slot[j];
        g_slot[j] = xs_next(s) % 3 == 0 ? NULL : take(w);
        if (got != NULL)
            keep(w, got);
    } else if (op < 70) {
        /* link two held nodes (possibly the same one, possibly made by
         * different threads), or unlink */
        tnode_t *a = pick(w);
        if (a != NULL)
            tnode_link(a, (int)xs_range(s, 0, NODE_REFS - 1),
                       xs_next(s) % 6 == 0 ? NULL : pick(w));
    } else if (op < 85) {
        void *o = take(w);
        neap_xdecref(o);
    } else if (op < 90) {
        /* a weak reference from a held node to another */
        tnode_t *a = pick(w), *b = pick(w);
        if (a != NULL && b != NULL) {
            void *wr = neap_weakref_new(b, wr_cb, NULL), *old = a->wr;
            CHECK(wr != NULL);
            a->wr = wr;
            neap_xdecref(old);
        }
    } else if (op < 95) {
        tnode_t *a = pick(w);
        if (a != NULL && a->wr != NULL) {
            void *o = neap_weakref_get(a->wr);
            if (o != NULL)
                CHECK(neap_obj_type(o) == &tnode_type && neap_refcnt(o) >= 2);
            neap_xdecref(o);
        }
    } else {
        intptr_t r = neap_gc_collect((int)xs_range(s, 0, 2));
        CHECKF(r >= 0, "collect: %jd, errno %d", (intmax_t)r, errno);
        g_collections++;
    }
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    size_t iters = test_scaled(STEPS), i;

    for (i = 0; i < iters; i++) {
        neap_obj_lock();
        step(w);
        neap_obj_unlock();
    }
    neap_obj_lock();
    while (w->nheld > 0)
        neap_decref(w->held[--w->nheld]);
    neap_obj_unlock();
    return NULL;
}

int
main(void)
{
    pthread_t t[NEAP_THREADS];
    worker_t *w;
    size_t i, wr_live;

    setvbuf(stdout, NULL, _IONBF, 0);
    w = calloc(NEAP_THREADS, sizeof *w);
    CHECK(w != NULL);
    neap_obj_lock();
    wr_live = neap_type_live(&neap_weakref_type);
    CHECK(neap_gc_set_threshold(300, 5, 5) == 0);
    neap_gc_enable();
    neap_obj_unlock();

    for (i = 0; i < NEAP_THREADS; i++) {
        w[i].idx = (int)i;
        w[i].seed = xs_seed(77 + i);
        CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
    }
    for (i = 0; i < NEAP_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);

    neap_obj_lock();
    /* slots may be refilled by finalizers run by the collections */
    for (;;) {
        int any = 0;
        for (i = 0; i < NEAP_SLOTS; i++) {
            void *o = g_slot[i];
            if (o != NULL) {
                g_slot[i] = NULL;
                neap_decref(o);
                any = 1;
            }
        }
        CHECK(neap_gc_collect(2) >= 0);
        if (!any)
            break;
    }
    CHECKF(neap_type_live(&tnode_type) == 0, "%zu nodes alive", neap_type_live(&tnode_type));
    CHECKF(g_freed == g_made, "%zu nodes made, %zu freed", g_made, g_freed);
    CHECKF(g_fin_runs == g_fin_made, "%zu finalizers, %zu ran", g_fin_made, g_fin_runs);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live);
    printf("gc threads: %zu nodes, %zu collections by hand, %zu resurrected, %zu weakref "
           "callbacks\n",
           g_made, g_collections, g_resurrected, g_wr_calls);
    neap_obj_unlock();
    free(w);
    return test_status();
}

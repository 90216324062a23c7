/* test_gc.c -- reference-counted objects and the cycle collector (label: gc).
 *
 * The scenarios of CPython's test_gc, written in C against the contract of
 * include/neap_object.h.  The file defines a few object types of its own:
 *
 *   test_node       NODE_REFS references and an owned weak reference;
 *                   traverse, clear, a dealloc hook that counts
 *   test_fin        the same layout with a finalizer whose behaviour the
 *                   node's flags choose (count, resurrect itself or a
 *                   referent, take a temporary reference, run a collection,
 *                   read weak references)
 *   test_noclear    the same layout, traverse but no clear
 *   test_container  a growable array of references; its dealloc hook frees
 *                   the array
 *   test_leaf       untracked (no traverse)
 *   test_pooled     untracked, freelist_max 4; test_pooled_gc tracked, 4
 *   test_var        variable size
 *
 * Every dealloc hook counts, so "freed" is observed directly; the property
 * test also gives nodes an id and keeps its own record of liveness and of
 * the edges, independent of the library.  Automatic collection is off in
 * each section unless the section is about it (gc_begin), and every section
 * ends by checking that none of its objects is left (gc_end).
 *
 *   refcount          new/incref/decref, release of references at zero and
 *                     its order, variable-size objects, a 10^6-long chain
 *                     freed by one decref on a 512 KiB thread stack
 *                     (trashcan), a 10^5-long chain of containers
 *   self_cycle        a node and a container referring to themselves
 *   two_cycle         two-node cycles: garbage, held, held from outside,
 *                     referring to reachable objects; untracked objects are
 *                     freed with the garbage but never counted
 *   long_chain_cycle  rings of 10^5 nodes (with chords), a ring with a
 *                     10^5-long tail
 *   container_cycles  cycles through growable containers
 *   generations       a young cycle referred to from an old object, old
 *                     garbage left alone by young collections
 *   finalizer         PEP 442: once per object, resurrection by the
 *                     collector (of itself, of another member of its cycle,
 *                     out of a cycle it hung off) and on the refcount path,
 *                     temporary references, weak references read from a
 *                     finalizer, collections run from finalizers, finalizers
 *                     that break their own cycle or allocate during a
 *                     collection, 10^5-long chains of finalizers (one
 *                     resurrecting in the middle)
 *   finalizer_chain   10^6-long chains whose finalizers each drop the next link
 *                     (trashcan), on a small stack: by refcount (a stretch
 *                     resurrecting, a stretch with weak references read from
 *                     callbacks) and hanging off a garbage cycle
 *   weakref           clearing and callbacks on refcount death; in a garbage
 *                     cycle cleared before any finalizer, callbacks only for
 *                     reachable weak references; data objects (traversed);
 *                     callbacks that drop weak references or collect; the
 *                     referent table against a model (4000 objects, random
 *                     order)
 *   weakref_trashcan  weak references waiting in the trashcan when their
 *                     referent goes, by refcount or by the collector: no
 *                     callback, freed once
 *   weakref_order     callbacks run from the most recently made weak
 *                     reference back to the oldest, by refcount (also after
 *                     some went first) and in a collection
 *   saveall           NEAP_GC_DEBUG_SAVEALL; cycles without clear are
 *                     uncollectable (gc.garbage, stats), mixed ones are not
 *   freeze            freeze/unfreeze/get_freeze_count over all generations;
 *                     frozen referrers are not searched
 *   thresholds        defaults, set/get, counters, automatic collection and
 *                     its generations, promotion, disable/enable, the 25 %
 *                     long-lived rule for generation 2
 *   count_untracked   generation 0's count drops when an object of a tracked
 *                     type is freed, tracked or not, and so automatic
 *                     collection comes when CPython's would
 *   callbacks         start/stop with the generation and the counts, order,
 *                     removal; get_stats
 *   collect_count     what a collection counts (CPython 3.9 on), the same in
 *                     its result, get_stats, the callbacks and DEBUG_STATS:
 *                     not the resurrected, nor what went by refcount while
 *                     finalizers ran; reachable weak references freed after
 *                     their own callbacks, yes
 *   introspection     get_objects, get_referrers, get_referents, is_tracked,
 *                     track/untrack, count_by_type, show_backrefs
 *   freelist          reuse, zeroing, the cap, clearing
 *   intern            one object per value, embedded NULs, the table does not
 *                     keep strings alive; 2*10^5 random interns and releases
 *                     against a model
 *   errors            EINVAL, EBUSY (collect from a finalizer or a callback),
 *                     ENOMEM (overflowing nitems; a failed tracked allocation
 *                     makes and counts nothing)
 *   property          random graphs (seeds scaled by NEAP_TEST_SCALE): after
 *                     collect(2), exactly the nodes an independent marking
 *                     from the external references reaches are alive, and
 *                     collect counted exactly the garbage refcounting left;
 *                     edges mutate over several rounds, with automatic
 *                     collection on for some seeds
 *   property_fin      the same with finalizers, weak references (held by the
 *                     test and owned by nodes) and, for half the seeds,
 *                     finalizers that resurrect (collect then counts exactly
 *                     what it freed, not the resurrected)
 *
 * Usage: test_gc [section]...  (none: all)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap_object.h"
#include "neap_test.h"

/* ---------------------------------------------------------------------------
 * Lists of references the test holds.
 * ------------------------------------------------------------------------- */
typedef struct hold {
    void **v;   /* each a reference the list owns */
    size_t n;   /* entries */
    size_t cap; /* room */
} hold_t;

/* Appends o, taking over one reference to it. */
static void
hold_push(hold_t *h, void *o)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        void **v = realloc(h->v, cap * sizeof *v);
        CHECK(v != NULL);
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = o;
}

/* Drops every reference, last first, and empties the list. */
static void
hold_release(hold_t *h)
{
    while (h->n > 0) {
        void *o = h->v[--h->n];
        neap_decref(o);
    }
    free(h->v);
    h->v = NULL;
    h->cap = 0;
}

/* ---------------------------------------------------------------------------
 * Test types and what their hooks observe.
 * ------------------------------------------------------------------------- */
#define NODE_REFS 4

typedef struct node {
    int id;               /* property test: index into g_alive/g_fin_count (1-based); 0: none */
    unsigned flags;       /* FIN_*: what the finalizer does (test_fin) */
    int fin_runs;         /* times the finalizer ran on this object */
    void *ref[NODE_REFS]; /* strong references (traverse, clear) */
    void *wr;             /* a weak reference object the node owns (traverse, clear) */
} node_t;

typedef struct leaf {
    int id;       /* free for the test */
    int tag;      /* free for the test */
    char pad[24]; /* makes it a little bigger than a header */
} leaf_t;

typedef struct cont {
    void **items; /* references, items[0..n); entries may be NULL after clear */
    size_t n;     /* entries used */
    size_t cap;   /* room in items */
} cont_t;

typedef struct pooled {
    uint64_t w[6]; /* payload */
} pooled_t;

typedef struct pair {
    uint64_t a, b;
} pair_t;

typedef struct var {
    uint64_t head;   /* fixed part */
    pair_t items[];  /* nitems of them */
} var_t;

#define FIN_RESURRECT 0x1u      /* store a new reference to itself in g_res */
#define FIN_RESURRECT_REF0 0x2u /* store a new reference to ref[0] in g_res */
#define FIN_TEMPREF 0x4u        /* take a reference to itself and drop it */
#define FIN_COLLECT 0x8u        /* run neap_gc_collect(0) and record what it gave */
#define FIN_WATCH 0x10u         /* read every weak reference of g_watch */
#define FIN_CLEARSELF 0x20u     /* drop its own references (breaks its cycle) */
#define FIN_ALLOC 0x40u         /* make a new node and store it in g_res */

static long g_seq; /* order of observed events */

static long g_dealloc_node, g_dealloc_fin, g_dealloc_noclear, g_dealloc_leaf, g_dealloc_cont,
    g_dealloc_pooled;
static long g_fin_calls;     /* finalizer calls */
static long g_fin_first_seq; /* g_seq of the first finalizer call since reset; 0: none yet */
static hold_t g_res;         /* references stored by resurrecting finalizers */
static hold_t g_watch;       /* weak references FIN_WATCH reads */
static long g_watch_self;    /* ... and found pointing at the finalized object */
static long g_watch_other;   /* ... and found pointing at another object */
static intptr_t g_nested_ret = -2; /* neap_gc_collect from a finalizer or callback */
static int g_nested_errno;
static void (*g_fin_hook)(node_t *n); /* property test: more checks in finalizers */

/* refcount section: the order of release and dealloc */
static node_t *g_probe;      /* node whose dealloc hook records */
static uintptr_t g_probe_ref0;
static long g_probe_seq, g_leaf_seq;

/* property test: per id, 1..g_nids */
static size_t g_nids;
static unsigned char *g_alive;
static int *g_fin_count;

static void
node_gone(node_t *n)
{
    if (n->id > 0 && (size_t)n->id <= g_nids) {
        CHECKF(g_alive[n->id], "node %d freed twice", n->id);
        g_alive[n->id] = 0;
    }
}

static int
node_traverse(void *self, neap_visit_fn visit, void *arg)
{
    node_t *n = self;
    int i;
    for (i = 0; i < NODE_REFS; i++)
        NEAP_VISIT(n->ref[i]);
    NEAP_VISIT(n->wr);
    return 0;
}

static void
node_clear(void *self)
{
    node_t *n = self;
    int i;
    for (i = 0; i < NODE_REFS; i++)
        NEAP_CLEAR(n->ref[i]);
    NEAP_CLEAR(n->wr);
}

static void
node_repr(const void *self, char *buf, size_t size)
{
    const node_t *n = self;
    snprintf(buf, size, "node %d", n->id);
}

static void
node_dealloc(void *self)
{
    node_t *n = self;
    if (n == g_probe) {
        g_probe_ref0 = (uintptr_t)n->ref[0];
        g_probe_seq = ++g_seq;
    }
    node_gone(n);
    g_dealloc_node++;
}

static neap_type_t node_type; /* defined below */

static void
fin_finalize(void *self)
{
    node_t *n = self;
    long seq = ++g_seq;
    size_t i;

    g_fin_calls++;
    n->fin_runs++;
    CHECKF(n->fin_runs == 1, "finalizer ran %d times on %p", n->fin_runs, self);
    if (g_fin_first_seq == 0)
        g_fin_first_seq = seq;
    if (n->id > 0 && (size_t)n->id <= g_nids)
        g_fin_count[n->id]++;
    if (n->flags & FIN_TEMPREF) {
        neap_incref(n);
        neap_decref(n);
    }
    if (n->flags & FIN_WATCH) {
        for (i = 0; i < g_watch.n; i++) {
            void *o = neap_weakref_get(g_watch.v[i]);
            if (o == n)
                g_watch_self++;
            else if (o != NULL)
                g_watch_other++;
            neap_xdecref(o);
        }
    }
    if (n->flags & FIN_COLLECT) {
        errno = 0;
        g_nested_ret = neap_gc_collect(0);
        g_nested_errno = errno;
    }
    if (n->flags & FIN_ALLOC) {
        void *o = neap_obj_new(&node_type);
        CHECK(o != NULL);
        hold_push(&g_res, o);
    }
    if (n->flags & FIN_RESURRECT) {
        neap_incref(n);
        hold_push(&g_res, n);
    }
    if ((n->flags & FIN_RESURRECT_REF0) && n->ref[0] != NULL) {
        neap_incref(n->ref[0]);
        hold_push(&g_res, n->ref[0]);
    }
    if (n->flags & FIN_CLEARSELF)
        node_clear(n);
    if (g_fin_hook != NULL)
        g_fin_hook(n);
}

static void
fin_dealloc(void *self)
{
    node_t *n = self;
    /* PEP 442: the finalizer ran, once, before the object goes */
    CHECKF(n->fin_runs == 1, "test_fin %p (id %d) freed after %d finalizer runs", self, n->id,
           n->fin_runs);
    node_gone(n);
    g_dealloc_fin++;
}

static void
noclear_dealloc(void *self)
{
    node_gone(self);
    g_dealloc_noclear++;
}

static void
leaf_dealloc(void *self)
{
    g_leaf_seq = ++g_seq;
    g_dealloc_leaf++;
}

static int
cont_traverse(void *self, neap_visit_fn visit, void *arg)
{
    cont_t *c = self;
    size_t i;
    for (i = 0; i < c->n; i++)
        NEAP_VISIT(c->items[i]);
    return 0;
}

static void
cont_clear(void *self)
{
    cont_t *c = self;
    size_t i;
    for (i = 0; i < c->n; i++)
        NEAP_CLEAR(c->items[i]);
}

static void
cont_dealloc(void *self)
{
    cont_t *c = self;
    free(c->items);
    g_dealloc_cont++;
}

static void
pooled_dealloc(void *self)
{
    g_dealloc_pooled++;
}

static neap_type_t node_type = {
    .name = "test_node",
    .size = sizeof(node_t),
    .traverse = node_traverse,
    .clear = node_clear,
    .dealloc = node_dealloc,
    .repr = node_repr,
};
static neap_type_t fin_type = {
    .name = "test_fin",
    .size = sizeof(node_t),
    .traverse = node_traverse,
    .clear = node_clear,
    .finalize = fin_finalize,
    .dealloc = fin_dealloc,
    .repr = node_repr,
};
static neap_type_t noclear_type = {
    .name = "test_noclear",
    .size = sizeof(node_t),
    .traverse = node_traverse,
    .dealloc = noclear_dealloc,
};
static neap_type_t cont_type = {
    .name = "test_container",
    .size = sizeof(cont_t),
    .traverse = cont_traverse,
    .clear = cont_clear,
    .dealloc = cont_dealloc,
};
static neap_type_t leaf_type = {
    .name = "test_leaf",
    .size = sizeof(leaf_t),
    .dealloc = leaf_dealloc,
};
static neap_type_t pooled_type = {
    .name = "test_pooled",
    .size = sizeof(pooled_t),
    .dealloc = pooled_dealloc,
    .freelist_max = 4,
};
static neap_type_t pooled_gc_type = {
    .name = "test_pooled_gc",
    .size = sizeof(node_t),
    .traverse = node_traverse,
    .clear = node_clear,
    .dealloc = pooled_dealloc,
    .freelist_max = 4,
};
static neap_type_t var_type = {
    .name = "test_var",
    .size = sizeof(var_t),
    .itemsize = sizeof(pair_t),
};

static int
var_gc_traverse(void *self, neap_visit_fn visit, void *arg)
{
    return 0; /* items are not references */
}

static neap_type_t var_gc_type = {
    .name = "test_var_gc",
    .size = sizeof(var_t),
    .itemsize = sizeof(pair_t),
    .traverse = var_gc_traverse,
};

/* ---------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------- */
static void *
obj_new(neap_type_t *t)
{
    void *o;
    errno = 0;
    o = neap_obj_new(t);
    CHECKF(o != NULL, "neap_obj_new(%s): errno %d", t->name, errno);
    return o;
}

static node_t *
node_new(neap_type_t *t)
{
    return obj_new(t);
}

static node_t *
fin_new(unsigned flags)
{
    node_t *n = obj_new(&fin_type);
    n->flags = flags;
    return n;
}

/* from->ref[slot] = to, with a new reference to `to`; the old one dropped */
static void
node_link(node_t *from, int slot, void *to)
{
    void *old = from->ref[slot];
    neap_xincref(to);
    from->ref[slot] = to;
    neap_xdecref(old);
}

/* from->wr = wr, taking over the caller's reference to wr */
static void
node_own_wr(node_t *from, void *wr)
{
    void *old = from->wr;
    from->wr = wr;
    neap_xdecref(old);
}

static void
cont_append(cont_t *c, void *o)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        void **items = realloc(c->items, cap * sizeof *items);
        CHECK(items != NULL);
        c->items = items;
        c->cap = cap;
    }
    neap_incref(o);
    c->items[c->n++] = o;
}

static void *
weakref_new(void *obj, neap_weakref_cb cb, void *data)
{
    void *wr;
    errno = 0;
    wr = neap_weakref_new(obj, cb, data);
    CHECKF(wr != NULL, "neap_weakref_new: errno %d", errno);
    return wr;
}

static intptr_t
collect(int generation)
{
    intptr_t r;
    errno = 0;
    r = neap_gc_collect(generation);
    CHECKF(r >= 0, "neap_gc_collect(%d) = %jd, errno %d", generation, (intmax_t)r, errno);
    return r;
}

static int
arr_has(const neap_objarray_t *a, const void *o)
{
    size_t i;
    for (i = 0; i < a->count; i++)
        if (a->items[i] == o)
            return 1;
    return 0;
}

/* 1 if o is among neap_gc_get_objects(generation) */
static int
gen_has(int generation, const void *o)
{
    neap_objarray_t a = {0};
    int found;
    CHECK(neap_gc_get_objects(generation, &a) == 0);
    found = arr_has(&a, o);
    neap_objarray_release(&a);
    CHECK(a.items == NULL && a.count == 0);
    return found;
}

static size_t
gen_size(int generation)
{
    neap_objarray_t a = {0};
    size_t n;
    CHECK(neap_gc_get_objects(generation, &a) == 0);
    n = a.count;
    neap_objarray_release(&a);
    return n;
}

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static size_t
live_test_objects(void)
{
    return neap_type_live(&node_type) + neap_type_live(&fin_type) +
           neap_type_live(&noclear_type) + neap_type_live(&cont_type) +
           neap_type_live(&leaf_type) + neap_type_live(&pooled_type) +
           neap_type_live(&pooled_gc_type) + neap_type_live(&var_type) +
           neap_type_live(&var_gc_type);
}

static void
counters_reset(void)
{
    g_dealloc_node = g_dealloc_fin = g_dealloc_noclear = g_dealloc_leaf = g_dealloc_cont = 0;
    g_dealloc_pooled = 0;
    g_fin_calls = 0;
    g_fin_first_seq = 0;
    g_watch_self = g_watch_other = 0;
    g_nested_ret = -2;
    g_nested_errno = 0;
}

/* A section starts with the collector in its default state, automatic
 * collection off, nothing of the test's alive and the counters at 0. */
static void
gc_begin(void)
{
    neap_gc_set_debug(0);
    CHECK(neap_gc_set_threshold(2000, 10, 10) == 0);
    neap_gc_disable();
    collect(2);
    CHECKF(live_test_objects() == 0, "%zu test objects alive", live_test_objects());
    counters_reset();
}

/* ... and ends with none of them left (after a full collection), and the
 * collector back to its defaults. */
static void
gc_end(void)
{
    hold_release(&g_res);
    hold_release(&g_watch);
    collect(2);
    CHECKF(neap_type_live(&node_type) == 0, "%zu test_node alive", neap_type_live(&node_type));
    CHECKF(neap_type_live(&fin_type) == 0, "%zu test_fin alive", neap_type_live(&fin_type));
    CHECKF(neap_type_live(&noclear_type) == 0, "%zu test_noclear alive",
           neap_type_live(&noclear_type));
    CHECKF(neap_type_live(&cont_type) == 0, "%zu test_container alive",
           neap_type_live(&cont_type));
    CHECKF(neap_type_live(&leaf_type) == 0, "%zu test_leaf alive", neap_type_live(&leaf_type));
    CHECKF(live_test_objects() == 0, "%zu test objects alive", live_test_objects());
    neap_gc_set_debug(0);
    CHECK(neap_gc_set_threshold(2000, 10, 10) == 0);
    neap_gc_enable();
}

static size_t
stats_sum(const neap_gc_stats_t st[NEAP_GC_GENERATIONS], int what)
{
    size_t s = 0;
    int g;
    for (g = 0; g < NEAP_GC_GENERATIONS; g++)
        s += what == 0 ? st[g].collections : what == 1 ? st[g].collected : st[g].uncollectable;
    return s;
}

/* ---------------------------------------------------------------------------
 * refcount
 * ------------------------------------------------------------------------- */
#define CHAIN_LEN 1000000
#ifdef NEAP_TEST_NO_OVERRIDE
#define CHAIN_STACK (4 * MiB) /* sanitizer frames are several times bigger */
#else
#define CHAIN_STACK (512 * KiB)
#endif

static void *
chain_release_thread(void *head)
{
    neap_obj_lock();
    neap_decref(head);
    neap_obj_unlock();
    return NULL;
}

static void
test_refcount(void)
{
    node_t *a, *p, *c, *head;
    leaf_t *l;
    var_t *v;
    size_t i;
    pthread_t t;
    pthread_attr_t at;

    gc_begin();
    a = node_new(&node_type);
    CHECK(neap_refcnt(a) == 1);
    CHECK(neap_obj_type(a) == &node_type);
    CHECK(all_zero(a, sizeof *a));
    CHECK(neap_gc_is_tracked(a));
    CHECK(neap_type_live(&node_type) == 1);
    neap_incref(a);
    CHECK(neap_refcnt(a) == 2);
    neap_decref(a);
    CHECK(neap_refcnt(a) == 1);
    CHECK(g_dealloc_node == 0);
    neap_xincref(NULL);
    neap_xdecref(NULL);
    neap_decref(a);
    CHECK(g_dealloc_node == 1);
    CHECK(neap_type_live(&node_type) == 0);

    /* the references an object holds are released when it goes */
    p = node_new(&node_type);
    c = node_new(&node_type);
    l = obj_new(&leaf_type);
    CHECK(!neap_gc_is_tracked(l));
    CHECK(all_zero(l, sizeof *l));
    node_link(p, 0, c);
    node_link(p, 1, l);
    node_link(p, 2, c);
    CHECK(neap_refcnt(c) == 3);
    CHECK(neap_refcnt(l) == 2);
    neap_decref(p);
    CHECK(g_dealloc_node == 2);
    CHECK(neap_refcnt(c) == 1);
    CHECK(neap_refcnt(l) == 1);
    neap_decref(c);
    neap_decref(l);
    CHECK(g_dealloc_node == 3 && g_dealloc_leaf == 1);

    /* order: references released (step 3) before the dealloc hook (step
     * 4), which still sees the old pointers */
    p = node_new(&node_type);
    l = obj_new(&leaf_type);
    p->ref[0] = l; /* takes over our reference */
    g_probe = p;
    neap_decref(p);
    g_probe = NULL;
    CHECK(g_dealloc_leaf == 2);
    CHECKF(g_leaf_seq < g_probe_seq, "leaf freed at %ld, its holder's dealloc at %ld", g_leaf_seq,
           g_probe_seq);
    CHECK(g_probe_ref0 == (uintptr_t)l);

    /* variable size */
    v = neap_obj_new_var(&var_type, 100);
    CHECK(v != NULL);
    CHECK(neap_refcnt(v) == 1);
    CHECK(NEAP_HEAD(v)->nitems == 100);
    CHECK(all_zero(v, sizeof *v + 100 * sizeof(pair_t)));
    CHECK(!neap_gc_is_tracked(v));
    for (i = 0; i < 100; i++)
        v->items[i].a = v->items[i].b = i;
    CHECK(neap_type_live(&var_type) == 1);
    neap_decref(v);
    CHECK(neap_type_live(&var_type) == 0);
    v = neap_obj_new_var(&var_type, 0);
    CHECK(v != NULL);
    neap_decref(v);

    /* a chain of 10^6 released by one decref, on a small stack */
    head = NULL;
    for (i = 0; i < CHAIN_LEN; i++) {
        node_t *x = node_new(&node_type);
        x->ref[0] = head; /* takes over the reference to the rest */
        head = x;
    }
    CHECK(neap_type_live(&node_type) == CHAIN_LEN);
    g_dealloc_node = 0;
    CHECK(pthread_attr_init(&at) == 0);
    CHECK(pthread_attr_setstacksize(&at, CHAIN_STACK) == 0);
    CHECK(pthread_create(&t, &at, chain_release_thread, head) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    pthread_attr_destroy(&at);
    CHECKF(g_dealloc_node == CHAIN_LEN, "%ld of the chain freed", g_dealloc_node);
    CHECK(neap_type_live(&node_type) == 0);

    /* the same through containers, on this thread */
    {
        cont_t *top = NULL;
        for (i = 0; i < CHAIN_LEN / 10; i++) {
            cont_t *x = obj_new(&cont_type);
            if (top != NULL) {
                cont_append(x, top);
                neap_decref(top);
            }
            top = x;
        }
        neap_decref(top);
        CHECK(g_dealloc_cont == CHAIN_LEN / 10);
    }
    gc_end();
}

/* ---------------------------------------------------------------------------
 * self_cycle
 * ------------------------------------------------------------------------- */
static void
test_self_cycle(void)
{
    node_t *a, *b, *child;
    cont_t *c;
    leaf_t *l;

    gc_begin();
    a = node_new(&node_type);
    node_link(a, 0, a);
    CHECK(neap_refcnt(a) == 2);
    neap_decref(a);
    CHECK(g_dealloc_node == 0);
    CHECK(neap_type_live(&node_type) == 1);
    CHECK(collect(2) == 1);
    CHECK(g_dealloc_node == 1);
    CHECK(neap_type_live(&node_type) == 0);
    CHECK(collect(2) == 0);

    /* held: survives, its count intact */
    b = node_new(&node_type);
    node_link(b, 0, b);
    CHECK(collect(2) == 0);
    CHECK(collect(0) == 0);
    CHECK(g_dealloc_node == 1);
    CHECK(neap_refcnt(b) == 2);
    CHECK(b->ref[0] == b);
    neap_decref(b);
    CHECK(collect(2) == 1);
    CHECK(g_dealloc_node == 2);

    /* what the cycle alone holds goes with it; untracked objects are not
     * counted */
    a = node_new(&node_type);
    node_link(a, 0, a);
    child = node_new(&node_type);
    a->ref[1] = child;
    l = obj_new(&leaf_type);
    a->ref[2] = l;
    neap_decref(a);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 4);
    CHECK(g_dealloc_leaf == 1);

    /* a container holding itself */
    c = obj_new(&cont_type);
    cont_append(c, c);
    cont_append(c, c);
    CHECK(neap_refcnt(c) == 3);
    neap_decref(c);
    CHECK(collect(2) == 1);
    CHECK(g_dealloc_cont == 1);

    /* young: collect(0) finds it too */
    a = node_new(&node_type);
    node_link(a, 3, a);
    neap_decref(a);
    CHECK(collect(0) == 1);
    CHECK(g_dealloc_node == 5);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * two_cycle
 * ------------------------------------------------------------------------- */
static void
make_pair(node_t **pa, node_t **pb)
{
    node_t *a = node_new(&node_type), *b = node_new(&node_type);
    node_link(a, 0, b);
    node_link(b, 0, a);
    *pa = a;
    *pb = b;
}

static void
test_two_cycle(void)
{
    node_t *a, *b, *e, *x;
    leaf_t *l;
    int i;

    gc_begin();
    make_pair(&a, &b);
    neap_decref(a);
    neap_decref(b);
    CHECK(g_dealloc_node == 0);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 2);

    /* one of them held */
    make_pair(&a, &b);
    neap_decref(b);
    CHECK(collect(2) == 0);
    CHECK(neap_refcnt(a) == 2 && neap_refcnt(b) == 1);
    neap_decref(a);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 4);

    /* held through an object outside the cycle */
    make_pair(&a, &b);
    e = node_new(&node_type);
    node_link(e, 0, a);
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 0);
    CHECK(g_dealloc_node == 4);
    CHECK(neap_refcnt(a) == 2 && neap_refcnt(b) == 1);
    neap_decref(e); /* e goes by refcount, the cycle stays */
    CHECK(g_dealloc_node == 5);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 7);

    /* garbage referring to reachable objects, tracked or not */
    make_pair(&a, &b);
    x = node_new(&node_type);
    l = obj_new(&leaf_type);
    node_link(a, 1, x);
    node_link(b, 1, x);
    node_link(b, 2, l);
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 9);
    CHECK(neap_refcnt(x) == 1 && neap_refcnt(l) == 1);
    CHECK(g_dealloc_leaf == 0);
    neap_decref(x);
    neap_decref(l);
    CHECK(g_dealloc_node == 10 && g_dealloc_leaf == 1);

    /* many disjoint cycles; untracked leaves hanging off them are freed but
     * not counted */
    for (i = 0; i < 100; i++) {
        make_pair(&a, &b);
        l = obj_new(&leaf_type);
        a->ref[1] = l;
        neap_decref(a);
        neap_decref(b);
    }
    CHECK(collect(2) == 200);
    CHECK(g_dealloc_node == 210);
    CHECK(g_dealloc_leaf == 101);

    /* a cycle of two types */
    {
        cont_t *c = obj_new(&cont_type);
        a = node_new(&node_type);
        cont_append(c, a);
        node_link(a, 0, c);
        neap_decref(a);
        neap_decref(c);
        CHECK(collect(2) == 2);
        CHECK(g_dealloc_cont == 1 && g_dealloc_node == 211);
    }
    gc_end();
}

/* ---------------------------------------------------------------------------
 * long_chain_cycle
 * ------------------------------------------------------------------------- */
#define RING_LEN 100000

/* A ring of n nodes (node i refers to i+1) with random chords in ref[1];
 * returns the first node, the only reference the caller holds. */
static node_t *
make_ring(size_t n, uint64_t *s)
{
    node_t **v = malloc(n * sizeof *v);
    node_t *first;
    size_t i;
    CHECK(v != NULL);
    for (i = 0; i < n; i++)
        v[i] = node_new(&node_type);
    for (i = 0; i < n; i++) {
        node_link(v[i], 0, v[(i + 1) % n]);
        if (xs_next(s) % 4 == 0)
            node_link(v[i], 1, v[xs_range(s, 0, n - 1)]);
    }
    first = v[0];
    for (i = 1; i < n; i++)
        neap_decref(v[i]);
    free(v);
    return first;
}

static void
test_long_chain_cycle(void)
{
    uint64_t s = xs_seed(7);
    node_t *first;
    intptr_t r;

    gc_begin();
    first = make_ring(RING_LEN, &s);
    CHECK(collect(2) == 0);
    CHECK(g_dealloc_node == 0);
    neap_decref(first);
    r = collect(2);
    CHECKF(r == RING_LEN, "collect found %jd of a ring of %d", (intmax_t)r, RING_LEN);
    CHECK(g_dealloc_node == RING_LEN);
    CHECK(neap_type_live(&node_type) == 0);

    /* the same in generation 0, collected by a young collection */
    first = make_ring(RING_LEN, &s);
    neap_decref(first);
    r = collect(0);
    CHECKF(r == RING_LEN, "collect(0) found %jd of a ring of %d", (intmax_t)r, RING_LEN);
    CHECK(g_dealloc_node == 2 * RING_LEN);

    /* a ring with a 10^5-long tail hanging off it, all garbage */
    {
        node_t *tail = NULL, *x;
        size_t i;
        first = make_ring(1000, &s);
        for (i = 0; i < RING_LEN; i++) {
            x = node_new(&node_type);
            x->ref[0] = tail;
            tail = x;
        }
        first->ref[2] = tail;
        neap_decref(first);
        r = collect(2);
        CHECKF(r == 1000 + RING_LEN, "collect found %jd", (intmax_t)r);
        CHECK(neap_type_live(&node_type) == 0);
    }
    gc_end();
}

/* ---------------------------------------------------------------------------
 * container_cycles
 * ------------------------------------------------------------------------- */
static void
test_container_cycles(void)
{
    cont_t *c, *c2, *c3;
    node_t *n1, *x;
    size_t i;
    intptr_t r;

    gc_begin();
    /* c -> n1 -> c, and c holds 1000 nodes, 1000 leaves and one node held
     * from outside */
    c = obj_new(&cont_type);
    n1 = node_new(&node_type);
    cont_append(c, n1);
    node_link(n1, 0, c);
    for (i = 0; i < 1000; i++) {
        node_t *k = node_new(&node_type);
        leaf_t *l = obj_new(&leaf_type);
        cont_append(c, k);
        cont_append(c, l);
        neap_decref(k);
        neap_decref(l);
    }
    x = node_new(&node_type);
    cont_append(c, x);
    neap_decref(n1);
    neap_decref(c);
    r = collect(2);
    CHECKF(r == 1002, "collect found %jd, expected the container, the node and 1000 nodes",
           (intmax_t)r);
    CHECK(g_dealloc_cont == 1 && g_dealloc_node == 1001 && g_dealloc_leaf == 1000);
    CHECK(neap_refcnt(x) == 1);

    /* a container that grew to 10^4 entries, holding itself among them */
    c = obj_new(&cont_type);
    for (i = 0; i < 10000; i++) {
        if (i % 1000 == 0) {
            cont_append(c, c);
        } else {
            node_t *k = node_new(&node_type);
            cont_append(c, k);
            neap_decref(k);
        }
    }
    neap_decref(c);
    r = collect(2);
    CHECKF(r == 1 + 9990, "collect found %jd", (intmax_t)r);
    CHECK(g_dealloc_cont == 2);

    /* containers in a cycle with each other, one held from outside */
    c = obj_new(&cont_type);
    c2 = obj_new(&cont_type);
    c3 = obj_new(&cont_type);
    cont_append(c, c2);
    cont_append(c2, c3);
    cont_append(c3, c);
    cont_append(c3, x);
    neap_decref(c2);
    neap_decref(c3);
    CHECK(collect(2) == 0);
    neap_decref(c);
    CHECK(collect(2) == 3);
    CHECK(g_dealloc_cont == 5);
    CHECK(neap_refcnt(x) == 1);
    neap_decref(x);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * generations
 * ------------------------------------------------------------------------- */
static void
test_generations(void)
{
    node_t *o, *y, *z, *a, *b;

    gc_begin();
    /* a young cycle referred to from an old object is not garbage to a
     * young collection */
    o = node_new(&node_type);
    collect(2);
    CHECK(gen_has(2, o));
    make_pair(&y, &z);
    node_link(o, 0, y);
    neap_decref(y);
    neap_decref(z);
    CHECK(collect(0) == 0); /* y, z survive into generation 1 */
    CHECK(g_dealloc_node == 0);
    CHECK(gen_has(1, y) && gen_has(1, z));
    neap_decref(o);
    CHECK(g_dealloc_node == 1);
    CHECK(collect(0) == 0);
    CHECK(collect(1) == 2);
    CHECK(g_dealloc_node == 3);

    /* old garbage is left to the collection of its generation */
    make_pair(&a, &b);
    collect(0);
    collect(1);
    CHECK(gen_has(2, a) && gen_has(2, b));
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(0) == 0);
    CHECK(collect(1) == 0);
    CHECK(g_dealloc_node == 3);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 5);

    /* garbage of generation 1 is collected by collect(1) */
    make_pair(&a, &b);
    collect(0);
    CHECK(gen_has(1, a));
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(0) == 0);
    CHECK(collect(1) == 2);
    CHECK(g_dealloc_node == 7);

    /* a cycle spanning generations (old -> young -> old) */
    make_pair(&a, &b);
    collect(2); /* a, b old */
    y = node_new(&node_type);
    node_link(a, 1, y);
    node_link(y, 0, b);
    neap_decref(y);
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(0) == 0); /* y is held by old a */
    CHECK(collect(2) == 3);
    CHECK(g_dealloc_node == 10);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * finalizer
 * ------------------------------------------------------------------------- */
static long g_count_starts; /* collections started, seen by count_cb */

static void
count_cb(const char *phase, const neap_gc_info_t *info, void *arg)
{
    if (strcmp(phase, "start") == 0)
        g_count_starts++;
}

static void
test_finalizer(void)
{
    node_t *a, *b, *c, *head;
    intptr_t r;
    size_t i;

    gc_begin();
    /* a garbage self-cycle: finalized once, then freed */
    a = fin_new(0);
    node_link(a, 0, a);
    CHECK(!neap_gc_is_finalized(a));
    neap_decref(a);
    CHECK(collect(2) == 1);
    CHECK(g_fin_calls == 1 && g_dealloc_fin == 1);

    /* resurrected by its finalizer during a collection: it and what it
     * reaches stay, uncleared; collected again later without a second
     * finalizer call */
    a = fin_new(FIN_RESURRECT);
    node_link(a, 0, a);
    c = node_new(&node_type);
    a->ref[1] = c;
    neap_decref(a);
    r = collect(2);
    CHECK(g_fin_calls == 2);
    CHECK(g_res.n == 1 && g_res.v[0] == a);
    CHECK(g_dealloc_fin == 1 && g_dealloc_node == 0);
    CHECK(neap_gc_is_finalized(a));
    CHECK(a->ref[0] == a && a->ref[1] == c);
    CHECK(neap_refcnt(a) == 2 && neap_refcnt(c) == 1);
    /* resurrected objects are not counted (CPython 3.9 on) */
    CHECKF(r == 0, "collect with a resurrection gave %jd", (intmax_t)r);
    CHECK(collect(2) == 0); /* g_res holds it */
    hold_release(&g_res);
    CHECK(neap_refcnt(a) == 1);
    CHECK(collect(2) == 2);
    CHECK(g_fin_calls == 2);
    CHECK(g_dealloc_fin == 2 && g_dealloc_node == 1);

    /* a finalizer resurrecting another member of its cycle keeps the cycle */
    a = fin_new(FIN_RESURRECT_REF0);
    b = fin_new(0);
    node_link(a, 0, b);
    node_link(b, 0, a);
    neap_decref(a);
    neap_decref(b);
    collect(2);
    CHECK(g_fin_calls == 4);
    CHECK(g_dealloc_fin == 2);
    CHECK(neap_gc_is_finalized(a) && neap_gc_is_finalized(b));
    CHECK(a->ref[0] == b && b->ref[0] == a);
    hold_release(&g_res);
    CHECK(collect(2) == 2);
    CHECK(g_fin_calls == 4 && g_dealloc_fin == 4);

    /* refcount path: finalized, then freed */
    a = fin_new(0);
    neap_decref(a);
    CHECK(g_fin_calls == 5 && g_dealloc_fin == 5);

    /* refcount path, resurrecting: kept with what it holds; the next
     * release frees it without a second finalizer call */
    a = fin_new(FIN_RESURRECT);
    c = node_new(&node_type);
    a->ref[0] = c;
    neap_decref(a);
    CHECK(g_fin_calls == 6 && g_dealloc_fin == 5);
    CHECK(g_res.n == 1 && g_res.v[0] == a);
    CHECK(neap_refcnt(a) == 1);
    CHECK(neap_gc_is_finalized(a));
    CHECK(a->ref[0] == c && neap_refcnt(c) == 1);
    CHECK(g_dealloc_node == 1);
    hold_release(&g_res);
    CHECK(g_fin_calls == 6 && g_dealloc_fin == 6 && g_dealloc_node == 2);

    /* a finalizer that takes and drops a reference to its object (any call
     * made with the object does) */
    a = fin_new(FIN_TEMPREF);
    neap_decref(a);
    CHECK(g_fin_calls == 7 && g_dealloc_fin == 7);
    a = fin_new(FIN_TEMPREF | FIN_RESURRECT);
    neap_decref(a);
    CHECK(g_fin_calls == 8 && g_dealloc_fin == 7);
    hold_release(&g_res);
    CHECK(g_fin_calls == 8 && g_dealloc_fin == 8);
    a = fin_new(FIN_TEMPREF);
    node_link(a, 0, a);
    neap_decref(a);
    CHECK(collect(2) == 1);
    CHECK(g_fin_calls == 9 && g_dealloc_fin == 9);

    /* refcount path: weak references are cleared after the finalizer
     * (steps 1, 2), so it still reads its object through them */
    a = fin_new(FIN_WATCH);
    hold_push(&g_watch, weakref_new(a, NULL, NULL));
    neap_decref(a);
    CHECK(g_fin_calls == 10 && g_dealloc_fin == 10);
    CHECK(g_watch_self == 1 && g_watch_other == 0);
    CHECK(neap_weakref_get(g_watch.v[0]) == NULL);
    hold_release(&g_watch);
    /* ... and a resurrected object's weak references are left alone */
    a = fin_new(FIN_RESURRECT);
    hold_push(&g_watch, weakref_new(a, NULL, NULL));
    neap_decref(a);
    CHECK(g_dealloc_fin == 10);
    b = neap_weakref_get(g_watch.v[0]);
    CHECK(b == a);
    neap_xdecref(b);
    hold_release(&g_res);
    CHECK(g_dealloc_fin == 11);
    CHECK(neap_weakref_get(g_watch.v[0]) == NULL);
    hold_release(&g_watch);

    /* a finalizer on the refcount path may run a collection (none is
     * running); its object must come out of it intact and go once */
    a = fin_new(FIN_COLLECT);
    c = node_new(&node_type);
    node_link(a, 0, c);
    node_link(c, 0, a); /* a cycle: a goes through the collector... */
    neap_decref(c);
    neap_decref(a);
    CHECK(collect(2) == 2);
    CHECK(g_nested_ret == -1 && g_nested_errno == EBUSY);
    g_nested_ret = -2;
    a = fin_new(FIN_COLLECT); /* ...this one by refcount */
    c = node_new(&node_type);
    node_link(c, 0, c);
    a->ref[0] = c;
    neap_decref(a);
    CHECKF(g_nested_ret >= 0, "collect from a finalizer on the refcount path: %jd, errno %d",
           (intmax_t)g_nested_ret, g_nested_errno);
    CHECKF(g_fin_calls == 13 && g_dealloc_fin == 13, "%ld finalizer calls, %ld freed",
           g_fin_calls, g_dealloc_fin);
    CHECK(collect(2) == 1); /* c, which a released */

    /* a 10^5-long chain of finalizers, by refcount and by the collector */
    head = NULL;
    for (i = 0; i < RING_LEN; i++) {
        node_t *x = fin_new(0);
        x->ref[0] = head;
        head = x;
    }
    neap_decref(head);
    CHECK(g_fin_calls == 13 + RING_LEN && g_dealloc_fin == 13 + RING_LEN);
    head = NULL;
    for (i = 0; i < RING_LEN; i++) {
        node_t *x = fin_new(0);
        x->ref[0] = head;
        head = x;
    }
    node_link(head, 1, head);
    neap_decref(head);
    CHECK(g_dealloc_fin == 13 + RING_LEN);
    CHECK(collect(2) == RING_LEN);
    CHECK(g_fin_calls == 13 + 2 * RING_LEN && g_dealloc_fin == 13 + 2 * RING_LEN);

    counters_reset();
    /* finalizers that break their own cycle: the garbage goes while the
     * finalizers run, by refcount, each finalized once; the collection
     * counts none of it (nothing was left for it to clear) */
    a = fin_new(FIN_CLEARSELF);
    b = fin_new(FIN_CLEARSELF);
    c = fin_new(FIN_CLEARSELF);
    node_link(a, 0, b);
    node_link(b, 0, c);
    node_link(c, 0, a);
    node_link(a, 1, c);
    neap_decref(a);
    neap_decref(b);
    neap_decref(c);
    CHECK(collect(2) == 0);
    CHECK(g_fin_calls == 3 && g_dealloc_fin == 3);

    /* finalizers that allocate during a collection, with automatic
     * collection on and a tiny threshold: no collection inside the
     * collection */
    {
        node_t *ring[100];
        long calls0 = g_fin_calls;
        for (i = 0; i < 100; i++)
            ring[i] = fin_new(FIN_ALLOC);
        for (i = 0; i < 100; i++)
            node_link(ring[i], 0, ring[(i + 1) % 100]);
        for (i = 0; i < 100; i++)
            neap_decref(ring[i]);
        CHECK(neap_gc_set_threshold(5, 1, 1) == 0);
        neap_gc_enable();
        g_count_starts = 0;
        CHECK(neap_gc_callbacks_add(count_cb, NULL) == 0);
        r = collect(2);
        CHECK(neap_gc_callbacks_remove(count_cb, NULL) == 0);
        neap_gc_disable();
        CHECK(neap_gc_set_threshold(2000, 10, 10) == 0);
        CHECKF(g_count_starts == 1, "%ld collections started during one", g_count_starts);
        CHECK(r == 100);
        CHECK(g_fin_calls == calls0 + 100 && g_dealloc_fin == 103);
        CHECK(g_res.n == 100 && neap_type_live(&node_type) == 100);
        hold_release(&g_res);
        CHECK(neap_type_live(&node_type) == 0);
    }

    /* resurrected by the collector: the weak references it had are
     * cleared (before the finalizer ran); new ones work */
    {
        void *w1, *w2, *o;
        a = fin_new(FIN_RESURRECT);
        node_link(a, 0, a);
        w1 = weakref_new(a, NULL, NULL);
        neap_decref(a);
        collect(2);
        CHECK(g_res.n == 1 && g_res.v[0] == a);
        CHECK(neap_weakref_get(w1) == NULL);
        CHECK(neap_weakref_count(a) == 0);
        w2 = weakref_new(a, NULL, NULL);
        o = neap_weakref_get(w2);
        CHECK(o == a);
        neap_decref(o);
        NEAP_CLEAR(a->ref[0]); /* no cycle any more: the next release frees it */
        hold_release(&g_res);
        CHECK(g_dealloc_fin == 104 && g_fin_calls == 104);
        CHECK(neap_weakref_get(w2) == NULL);
        neap_decref(w1);
        neap_decref(w2);
    }

    /* resurrected out of a cycle it hung off: the cycle goes, and the
     * object goes by refcount later, not finalized again */
    a = fin_new(FIN_RESURRECT);
    make_pair(&b, &c);
    node_link(b, 1, a);
    neap_decref(a);
    neap_decref(b);
    neap_decref(c);
    collect(2);
    CHECK(g_fin_calls == 105 && g_dealloc_fin == 104);
    CHECK(g_res.n == 1 && g_res.v[0] == a && neap_refcnt(a) == 1);
    CHECK(neap_type_live(&node_type) == 0); /* b and c went */
    hold_release(&g_res);
    CHECK(g_fin_calls == 105 && g_dealloc_fin == 105);

    /* a long chain released by refcount with a resurrecting node in the
     * middle: what it holds stays, the rest goes */
    head = NULL;
    for (i = 0; i < RING_LEN; i++) {
        node_t *x = fin_new(i == RING_LEN / 2 ? FIN_RESURRECT : 0);
        x->ref[0] = head;
        head = x;
    }
    neap_decref(head);
    CHECK(g_res.n == 1);
    CHECKF(g_dealloc_fin == 105 + RING_LEN / 2 - 1, "%ld freed",
           g_dealloc_fin - 105);
    CHECK(neap_type_live(&fin_type) == RING_LEN / 2 + 1);
    hold_release(&g_res);
    CHECK(neap_type_live(&fin_type) == 0);
    CHECK(g_fin_calls == 105 + RING_LEN && g_dealloc_fin == 105 + RING_LEN);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * finalizer_chain
 * ------------------------------------------------------------------------- */
#define FC_STRETCH 128 /* nodes given a role in the chain: more than the trashcan's depth */

static intptr_t g_fc_collected; /* what chain_collect_thread's collection counted */
static long g_fc_wr_calls;      /* calls of chain_wr_cb */

static void *
chain_collect_thread(void *arg)
{
    neap_obj_lock();
    g_fc_collected = collect(2);
    neap_obj_unlock();
    return NULL;
}

/* Runs fn on a thread with a CHAIN_STACK stack, and waits for it. */
static void
on_small_stack(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t at;
    CHECK(pthread_attr_init(&at) == 0);
    CHECK(pthread_attr_setstacksize(&at, CHAIN_STACK) == 0);
    CHECK(pthread_create(&t, &at, fn, arg) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    pthread_attr_destroy(&at);
}

/* Weak reference callback of a chain node: data is the weak reference to
 * the next node, whose last reference that node's finalizer dropped.  The
 * next node is gone, or waiting in the trashcan: either way dead. */
static void
chain_wr_cb(void *wr, void *data)
{
    void *o = data != NULL ? neap_weakref_get(data) : NULL; /* the last has no next */
    g_fc_wr_calls++;
    /* (a reference given back here is not dropped: its count would reach
     * zero a second time) */
    CHECKF(o == NULL, "a weak reference gave back %p, whose count had reached zero", o);
}

static void
test_finalizer_chain(void)
{
    hold_t wrs = {0};
    node_t *head, *tail, *x, *a, *b;
    neap_gc_stats_t st0[NEAP_GC_GENERATIONS], st1[NEAP_GC_GENERATIONS];
    size_t i;
    long count[NEAP_GC_GENERATIONS];
    size_t res_at = CHAIN_LEN / 4, wr_at = CHAIN_LEN / 2; /* positions from the head */

    gc_begin();
    /* Refcount path: each finalizer drops the next link, so the chain goes
     * through finalizers calling finalizers, which the trashcan must bound
     * as it bounds the release of references (10^6 links overflow an 8 MiB
     * stack without it).  A stretch of the nodes resurrect themselves (and
     * still drop their next link); another stretch have weak references
     * whose callbacks read the next node's. */
    head = NULL;
    for (i = CHAIN_LEN; i-- > 0;) {
        unsigned flags = FIN_CLEARSELF;
        if (i >= res_at && i < res_at + FC_STRETCH)
            flags |= FIN_RESURRECT;
        x = fin_new(flags);
        x->ref[0] = head; /* takes over the reference to the rest */
        head = x;
        if (i >= wr_at && i < wr_at + FC_STRETCH) {
            void *next_wr = wrs.n > 0 ? wrs.v[wrs.n - 1] : NULL;
            hold_push(&wrs, weakref_new(x, chain_wr_cb, next_wr));
        }
    }
    CHECK(neap_type_live(&fin_type) == CHAIN_LEN);
    on_small_stack(chain_release_thread, head);
    CHECKF(g_fin_calls == CHAIN_LEN, "%ld finalizer calls for %d links", g_fin_calls, CHAIN_LEN);
    CHECKF(g_dealloc_fin == CHAIN_LEN - FC_STRETCH, "%ld of the chain freed", g_dealloc_fin);
    CHECK(neap_type_live(&fin_type) == FC_STRETCH);
    CHECKF(g_fc_wr_calls == FC_STRETCH, "%ld weak reference callbacks", g_fc_wr_calls);
    /* the resurrected ones are alive, tracked (those whose finalizer ran
     * out of the trashcan too), finalized, and let go of the rest */
    CHECK(g_res.n == FC_STRETCH);
    for (i = 0; i < g_res.n; i++) {
        x = g_res.v[i];
        CHECK(neap_refcnt(x) == 1);
        CHECKF(neap_gc_is_tracked(x), "resurrected node %zu of %d is untracked", i, FC_STRETCH);
        CHECK(neap_gc_is_finalized(x));
        CHECK(x->ref[0] == NULL);
    }
    CHECK(gen_size(0) == FC_STRETCH + FC_STRETCH); /* and the weak references */
    /* a wait in the trashcan is not a deallocation: generation 0 counts
     * the objects made since the last collection, less those freed */
    neap_gc_get_count(count);
    CHECKF(count[0] == FC_STRETCH + FC_STRETCH, "generation 0 count %ld", count[0]);
    hold_release(&g_res); /* freed now, not finalized again */
    CHECK(g_fin_calls == CHAIN_LEN && g_dealloc_fin == CHAIN_LEN);
    hold_release(&wrs);
    CHECK(live_test_objects() == 0);

    /* Collector path: the same chain hanging off a garbage cycle.  Made
     * head first, it sits in the collector's list in that order: the first
     * finalizer the collection runs releases the whole chain by refcount. */
    counters_reset();
    make_pair(&a, &b);
    tail = NULL;
    for (i = 0; i < CHAIN_LEN; i++) {
        x = fin_new(FIN_CLEARSELF);
        if (tail == NULL) {
            node_link(a, 1, x);
            neap_decref(x); /* a holds the head */
        } else {
            tail->ref[0] = x; /* takes over the reference */
        }
        tail = x;
    }
    neap_decref(a);
    neap_decref(b);
    neap_gc_get_stats(st0);
    g_fc_collected = -1;
    on_small_stack(chain_collect_thread, NULL);
    neap_gc_get_stats(st1);
    /* the links past the head went by refcount while the finalizers ran:
     * counted are the cycle and the head it holds, which the clears free */
    CHECKF(g_fc_collected == 3, "collect counted %jd", (intmax_t)g_fc_collected);
    CHECKF(g_fin_calls == CHAIN_LEN, "%ld finalizer calls for %d links", g_fin_calls, CHAIN_LEN);
    CHECKF(g_dealloc_fin == CHAIN_LEN && g_dealloc_node == 2,
           "%ld of the chain freed, %ld of the cycle", g_dealloc_fin, g_dealloc_node);
    CHECK(stats_sum(st1, 1) - stats_sum(st0, 1) == 3);
    CHECK(stats_sum(st1, 2) == stats_sum(st0, 2));
    CHECK(live_test_objects() == 0);
    CHECK(gen_size(-1) == 0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * weakref
 * ------------------------------------------------------------------------- */
#define WR_MAX 64
static struct wrcall {
    void *wr;        /* the weak reference passed */
    void *data;      /* the data passed */
    int cleared;     /* neap_weakref_get(wr) was NULL in the callback */
    long seq;        /* g_seq */
} g_wrcalls[WR_MAX];
static size_t g_nwrcalls;

static void
wr_cb(void *wr, void *data)
{
    void *o = neap_weakref_get(wr);
    struct wrcall *w = &g_wrcalls[g_nwrcalls < WR_MAX ? g_nwrcalls : WR_MAX - 1];
    w->wr = wr;
    w->data = data;
    w->cleared = o == NULL;
    w->seq = ++g_seq;
    neap_xdecref(o);
    g_nwrcalls++;
}

static long g_cb_in_calls; /* calls of wr_cb_in */

static void
wr_cb_in(void *wr, void *data)
{
    g_cb_in_calls++;
}

static void *g_drop_wr; /* a weak reference drop_cb releases */

static void
drop_cb(void *wr, void *data)
{
    void *w = g_drop_wr;
    g_drop_wr = NULL;
    neap_xdecref(w);
}

static void
collect_cb(void *wr, void *data)
{
    errno = 0;
    g_nested_ret = neap_gc_collect(2);
    g_nested_errno = errno;
}

/* Many objects with 0..3 weak references each, made and dropped in a
 * random order, against a model: the referent table grows, shrinks and
 * shifts entries around as it goes. */
#define WT_OBJS 4000
static void
weakref_table_stress(void)
{
    uint64_t s = xs_seed(99);
    static leaf_t *obj[WT_OBJS];
    static void *wrs[WT_OBJS][3];
    static unsigned char nwr[WT_OBJS];
    size_t round, i, k;

    memset(obj, 0, sizeof obj);
    memset(wrs, 0, sizeof wrs);
    memset(nwr, 0, sizeof nwr);
    g_nwrcalls = 0;
    for (round = 0; round < 20; round++) {
        for (i = 0; i < WT_OBJS; i++) {
            unsigned op = (unsigned)xs_range(&s, 0, 5);
            if (obj[i] == NULL && op < 3) {
                obj[i] = obj_new(&leaf_type);
            } else if (obj[i] != NULL && op == 0) {
                /* the referent goes: every weak reference to it is cleared */
                neap_decref(obj[i]);
                obj[i] = NULL;
                for (k = 0; k < nwr[i]; k++) {
                    CHECK(neap_weakref_get(wrs[i][k]) == NULL);
                    neap_decref(wrs[i][k]);
                }
                nwr[i] = 0;
            } else if (obj[i] != NULL && op <= 2 && nwr[i] < 3) {
                wrs[i][nwr[i]++] = weakref_new(obj[i], NULL, NULL);
            } else if (obj[i] != NULL && op == 3 && nwr[i] > 0) {
                /* a weak reference goes first, from anywhere in the list */
                size_t j = (size_t)xs_range(&s, 0, nwr[i] - 1);
                neap_decref(wrs[i][j]);
                wrs[i][j] = wrs[i][--nwr[i]];
            }
        }
        for (i = 0; i < WT_OBJS; i++) {
            if (obj[i] == NULL)
                continue;
            CHECKF(neap_weakref_count(obj[i]) == nwr[i], "object %zu: %zu weak references, %d made",
                   i, neap_weakref_count(obj[i]), nwr[i]);
            for (k = 0; k < nwr[i]; k++) {
                void *o = neap_weakref_get(wrs[i][k]);
                CHECK(o == obj[i]);
                neap_xdecref(o);
            }
        }
    }
    for (i = 0; i < WT_OBJS; i++) {
        for (k = 0; k < nwr[i]; k++)
            neap_decref(wrs[i][k]);
        nwr[i] = 0;
        if (obj[i] != NULL) {
            CHECK(neap_weakref_count(obj[i]) == 0);
            neap_decref(obj[i]);
        }
    }
    CHECK(g_nwrcalls == 0);
}

static void
test_weakref(void)
{
    node_t *x, *a, *b, *d2;
    leaf_t *d, *l;
    void *wr, *wr2, *wo;
    size_t wr_live0;
    long dealloc0;

    gc_begin();
    g_nwrcalls = 0;
    wr_live0 = neap_type_live(&neap_weakref_type);

    /* the referent dies by refcount */
    x = node_new(&node_type);
    wr = weakref_new(x, wr_cb, NULL);
    CHECK(neap_obj_type(wr) == &neap_weakref_type);
    CHECK(neap_gc_is_tracked(wr));
    CHECK(neap_weakref_count(x) == 1);
    CHECK(neap_refcnt(x) == 1);
    a = neap_weakref_get(wr);
    CHECK(a == x);
    CHECK(neap_refcnt(x) == 2);
    neap_decref(a);
    d = obj_new(&leaf_type);
    wr2 = weakref_new(x, wr_cb, d);
    CHECK(neap_refcnt(d) == 2);
    CHECK(neap_weakref_count(x) == 2);
    neap_decref(x);
    CHECK(g_dealloc_node == 1);
    CHECKF(g_nwrcalls == 2, "%zu callbacks", g_nwrcalls);
    /* each called once, with its own weak reference and data, cleared */
    CHECK((g_wrcalls[0].wr == wr && g_wrcalls[1].wr == wr2) ||
          (g_wrcalls[0].wr == wr2 && g_wrcalls[1].wr == wr));
    CHECK(g_wrcalls[g_wrcalls[0].wr == wr ? 0 : 1].data == NULL);
    CHECK(g_wrcalls[g_wrcalls[0].wr == wr2 ? 0 : 1].data == d);
    CHECK(g_wrcalls[0].cleared && g_wrcalls[1].cleared);
    CHECK(neap_weakref_get(wr) == NULL && neap_weakref_get(wr2) == NULL);
    neap_decref(wr2);
    CHECK(neap_refcnt(d) == 1);
    neap_decref(wr);
    neap_decref(d);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);

    /* no callback; a weak reference that goes first gets none later */
    g_nwrcalls = 0;
    x = node_new(&node_type);
    wr = weakref_new(x, NULL, NULL);
    wr2 = weakref_new(x, wr_cb, NULL);
    CHECK(neap_weakref_count(x) == 2);
    neap_decref(wr2);
    CHECK(neap_weakref_count(x) == 1);
    neap_decref(x);
    CHECK(g_nwrcalls == 0);
    CHECK(neap_weakref_get(wr) == NULL);
    neap_decref(wr);

    /* to an untracked object */
    l = obj_new(&leaf_type);
    wr = weakref_new(l, wr_cb, NULL);
    CHECK(neap_weakref_count(l) == 1);
    neap_decref(l);
    CHECK(g_nwrcalls == 1 && g_wrcalls[0].wr == wr && g_wrcalls[0].cleared);
    neap_decref(wr);

    /* a garbage cycle: every weak reference to it is cleared before any
     * finalizer runs, and the (reachable) weak references' callbacks run
     * before the finalizers */
    g_nwrcalls = 0;
    a = fin_new(FIN_WATCH);
    b = fin_new(FIN_WATCH);
    node_link(a, 0, b);
    node_link(b, 0, a);
    hold_push(&g_watch, weakref_new(a, wr_cb, NULL));
    hold_push(&g_watch, weakref_new(b, wr_cb, NULL));
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 2);
    CHECK(g_fin_calls == 2 && g_dealloc_fin == 2);
    CHECKF(g_watch_self == 0 && g_watch_other == 0,
           "finalizers read %ld/%ld live weak references to garbage", g_watch_self,
           g_watch_other);
    CHECK(g_nwrcalls == 2 && g_wrcalls[0].cleared && g_wrcalls[1].cleared);
    CHECKF(g_wrcalls[0].seq < g_fin_first_seq && g_wrcalls[1].seq < g_fin_first_seq,
           "callbacks at %ld, %ld, first finalizer at %ld", g_wrcalls[0].seq, g_wrcalls[1].seq,
           g_fin_first_seq);
    hold_release(&g_watch);

    /* a weak reference that is itself garbage gets no callback; one held
     * from outside does */
    g_nwrcalls = 0;
    g_cb_in_calls = 0;
    make_pair(&a, &b);
    node_own_wr(a, weakref_new(b, wr_cb_in, NULL));
    wo = weakref_new(a, wr_cb, NULL);
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 3); /* a, b and a's weak reference */
    CHECK(g_cb_in_calls == 0);
    CHECK(g_nwrcalls == 1 && g_wrcalls[0].wr == wo && g_wrcalls[0].cleared);
    CHECK(neap_weakref_get(wo) == NULL);
    neap_decref(wo);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);

    /* garbage holding a weak reference to a live object: the weak
     * reference goes with the garbage, the object is untouched */
    x = node_new(&node_type);
    a = node_new(&node_type);
    node_link(a, 0, a);
    node_own_wr(a, weakref_new(x, wr_cb_in, NULL));
    CHECK(neap_weakref_count(x) == 1);
    neap_decref(a);
    CHECK(collect(2) == 2);
    CHECK(neap_weakref_count(x) == 0);
    CHECK(g_cb_in_calls == 0);
    CHECK(neap_refcnt(x) == 1);

    /* the data object is reported to the collector: garbage a -> wr -> d2 */
    a = node_new(&node_type);
    node_link(a, 0, a);
    d2 = node_new(&node_type);
    node_own_wr(a, weakref_new(x, wr_cb_in, d2));
    neap_decref(d2);
    neap_decref(a);
    CHECK(collect(2) == 3);
    CHECK(g_cb_in_calls == 0);

    /* a cycle through the data: wr -> d2 -> wr */
    d2 = node_new(&node_type);
    wr = weakref_new(x, wr_cb_in, d2);
    node_own_wr(d2, wr);
    neap_decref(d2);
    CHECK(neap_weakref_count(x) == 1);
    CHECK(collect(2) == 2);
    CHECK(neap_weakref_count(x) == 0);
    CHECK(g_cb_in_calls == 0);

    /* x dies in a cycle with a weak reference held outside whose data is
     * the other member */
    g_nwrcalls = 0;
    make_pair(&a, &b);
    wo = weakref_new(a, wr_cb, b);
    neap_decref(b);
    neap_decref(a);
    CHECK(collect(2) == 0); /* wo keeps b, b keeps a */
    neap_decref(wo);
    CHECK(collect(2) == 2);
    CHECK(g_nwrcalls == 0);

    neap_decref(x);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);

    /* a callback dropping the last reference to another weak reference of
     * the same referent, and one running a collection (none is running) */
    x = node_new(&node_type);
    g_drop_wr = weakref_new(x, wr_cb, NULL);
    wr = weakref_new(x, drop_cb, NULL);
    wr2 = weakref_new(x, collect_cb, NULL);
    g_nwrcalls = 0;
    g_nested_ret = -2;
    dealloc0 = g_dealloc_node;
    neap_decref(x);
    CHECK(g_dealloc_node == dealloc0 + 1);
    CHECK(g_drop_wr == NULL);
    CHECKF(g_nested_ret >= 0, "collect from a weakref callback: %jd", (intmax_t)g_nested_ret);
    CHECK(g_nwrcalls <= 1);
    neap_decref(wr);
    neap_decref(wr2);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);

    weakref_table_stress();
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * weakref_trashcan
 * ------------------------------------------------------------------------- */
#define WT_CHAIN 1000 /* links: far past the trashcan's depth */

static long g_wt_calls; /* calls of wt_cb */

/* Callback of a weak reference that dies with its referent's holder.  The
 * weak reference being called holds a reference of its own besides the
 * one the caller took: a count of 1 means it was already dying. */
static void
wt_cb(void *wr, void *data)
{
    g_wt_calls++;
    CHECKF(neap_refcnt(wr) >= 2, "callback of a dying weak reference (count %jd)",
           (intmax_t)neap_refcnt(wr));
}

/* g_fin_hook: a collection from each finalizer */
static void
wt_collect_hook(node_t *n)
{
    collect(2);
}

static void
test_weakref_trashcan(void)
{
    node_t *head, *x, *r1, *r2;
    size_t i, wr_live0;

    gc_begin();
    wr_live0 = neap_type_live(&neap_weakref_type);
    /* Refcount path.  Each link holds the next, then a weak reference to
     * a leaf, then the leaf, released in that order.  Where the chain
     * passes the trashcan's depth, the next link and the weak reference
     * wait in the trashcan while the leaf goes: the weak reference, count
     * 0, must be cleared without being revived for a callback (it would be
     * freed twice). */
    g_wt_calls = 0;
    head = NULL;
    for (i = 0; i < WT_CHAIN; i++) {
        leaf_t *l = obj_new(&leaf_type);
        x = node_new(&node_type);
        x->ref[0] = head; /* each takes over the reference */
        x->ref[1] = weakref_new(l, wt_cb, NULL);
        x->ref[2] = l;
        head = x;
    }
    neap_decref(head);
    CHECKF(g_wt_calls == 0, "%ld callbacks", g_wt_calls);
    CHECK(g_dealloc_node == WT_CHAIN && g_dealloc_leaf == WT_CHAIN);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);

    /* Collector path.  Each link holds a weak reference to a pair cycle,
     * a finalizer object that runs a collection, the next link and the
     * cycle, released in that order: where the chain passes the
     * trashcan's depth, the weak reference waits in the trashcan while the
     * cycle becomes garbage, and the collection run by a later finalizer
     * finds the cycle with the weak reference still attached. */
    counters_reset();
    g_wt_calls = 0;
    g_fin_hook = wt_collect_hook;
    head = NULL;
    for (i = 0; i < WT_CHAIN; i++) {
        make_pair(&r1, &r2);
        x = node_new(&node_type);
        x->ref[0] = weakref_new(r1, wt_cb, NULL);
        x->ref[1] = fin_new(0);
        x->ref[2] = head;
        x->ref[3] = r1;
        neap_decref(r2);
        head = x;
    }
    neap_decref(head);
    g_fin_hook = NULL;
    collect(2); /* the cycles dropped after the last finalizer */
    CHECKF(g_wt_calls == 0, "%ld callbacks", g_wt_calls);
    CHECK(g_fin_calls == WT_CHAIN && g_dealloc_fin == WT_CHAIN);
    CHECK(g_dealloc_node == 3 * WT_CHAIN);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * weakref_order
 * ------------------------------------------------------------------------- */
/* The callbacks recorded by wr_cb were those of want[0..n), in that order. */
static void
check_wrcalls(const char *what, void *const *want, size_t n)
{
    size_t i;
    CHECKF(g_nwrcalls == n, "%s: %zu callbacks, expected %zu", what, g_nwrcalls, n);
    for (i = 0; i < n && i < g_nwrcalls; i++)
        CHECKF(g_wrcalls[i].wr == want[i] && g_wrcalls[i].cleared,
               "%s: callback %zu was weak reference %p (cleared %d), expected %p", what, i,
               g_wrcalls[i].wr, g_wrcalls[i].cleared, want[i]);
}

static void
test_weakref_order(void)
{
    node_t *x, *a;
    leaf_t *l;
    void *w[5], *want[5];
    size_t i, wr_live0;

    gc_begin();
    wr_live0 = neap_type_live(&neap_weakref_type);

    /* by refcount: the most recently made weak reference's callback first */
    x = node_new(&node_type);
    for (i = 0; i < 4; i++)
        w[i] = weakref_new(x, wr_cb, NULL);
    g_nwrcalls = 0;
    neap_decref(x);
    for (i = 0; i < 4; i++)
        want[i] = w[3 - i];
    check_wrcalls("by refcount", want, 4);
    for (i = 0; i < 4; i++)
        neap_decref(w[i]);

    /* weak references that went first (the newest, one in the middle), one
     * without a callback, and one made after: still newest to oldest */
    l = obj_new(&leaf_type);
    for (i = 0; i < 4; i++)
        w[i] = weakref_new(l, i == 1 ? NULL : wr_cb, NULL);
    neap_decref(w[3]);
    neap_decref(w[2]);
    w[2] = weakref_new(l, wr_cb, NULL);
    w[3] = weakref_new(l, wr_cb, NULL);
    CHECK(neap_weakref_count(l) == 4);
    g_nwrcalls = 0;
    neap_decref(l);
    want[0] = w[3];
    want[1] = w[2];
    want[2] = w[0];
    check_wrcalls("after removals", want, 3);
    for (i = 0; i < 4; i++) {
        CHECK(neap_weakref_get(w[i]) == NULL);
        neap_decref(w[i]);
    }

    /* in a collection: the reachable weak references to a garbage cycle,
     * newest first */
    a = node_new(&node_type);
    node_link(a, 0, a);
    for (i = 0; i < 5; i++)
        w[i] = weakref_new(a, wr_cb, NULL);
    neap_decref(a);
    g_nwrcalls = 0;
    CHECK(collect(2) == 1);
    for (i = 0; i < 5; i++)
        want[i] = w[4 - i];
    check_wrcalls("in a collection", want, 5);
    CHECK(g_dealloc_node == 2 && g_dealloc_leaf == 1);
    for (i = 0; i < 5; i++)
        neap_decref(w[i]);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * saveall
 * ------------------------------------------------------------------------- */
static void
test_saveall(void)
{
    node_t *a, *b, *p, *q;
    neap_objarray_t g = {0};
    neap_gc_stats_t st0[NEAP_GC_GENERATIONS], st1[NEAP_GC_GENERATIONS];
    intptr_t r;
    size_t coll, uncoll;

    gc_begin();
    CHECK(neap_gc_clear_garbage() == 0);
    neap_gc_set_debug(NEAP_GC_DEBUG_SAVEALL);
    CHECK(neap_gc_get_debug() == NEAP_GC_DEBUG_SAVEALL);
    make_pair(&a, &b);
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 0);
    CHECK(neap_type_live(&node_type) == 2);
    CHECK(neap_gc_get_garbage(&g) == 0);
    CHECK(g.count == 2 && arr_has(&g, a) && arr_has(&g, b));
    neap_objarray_release(&g);
    CHECK(a->ref[0] == b && b->ref[0] == a); /* not cleared */
    CHECK(collect(2) == 0);                 /* the garbage list holds them */
    neap_gc_set_debug(0);
    CHECK(neap_gc_clear_garbage() == 2);
    CHECK(neap_gc_get_garbage(&g) == 0 && g.count == 0);
    neap_objarray_release(&g);
    CHECK(collect(2) == 2);
    CHECK(g_dealloc_node == 2);
    CHECK(neap_gc_clear_garbage() == 0);

    /* DEBUG_LEAK includes SAVEALL (and prints what it finds) */
    neap_gc_set_debug(NEAP_GC_DEBUG_LEAK);
    CHECK(neap_gc_get_debug() == NEAP_GC_DEBUG_LEAK);
    a = node_new(&node_type);
    node_link(a, 0, a);
    neap_decref(a);
    CHECK(collect(2) == 1);
    CHECK(g_dealloc_node == 2);
    neap_gc_set_debug(0);
    CHECK(neap_gc_clear_garbage() == 1);
    CHECK(collect(2) == 1);
    CHECK(g_dealloc_node == 3);

    /* a cycle without clear: uncollectable, kept in gc.garbage */
    p = node_new(&noclear_type);
    q = node_new(&noclear_type);
    node_link(p, 0, q);
    node_link(q, 0, p);
    neap_decref(p);
    neap_decref(q);
    neap_gc_get_stats(st0);
    r = collect(2);
    neap_gc_get_stats(st1);
    CHECK(r == 2);
    CHECK(g_dealloc_noclear == 0);
    coll = stats_sum(st1, 1) - stats_sum(st0, 1);
    uncoll = stats_sum(st1, 2) - stats_sum(st0, 2);
    CHECKF(uncoll == 2 && st1[2].uncollectable - st0[2].uncollectable == 2,
           "uncollectable +%zu", uncoll);
    /* collected: the unreachable found (the header), or those freed
     * (CPython's stats): either way consistent with the result */
    CHECKF(coll == (size_t)r || coll + uncoll == (size_t)r, "collected +%zu, uncollectable +%zu",
           coll, uncoll);
    CHECK(neap_gc_get_garbage(&g) == 0);
    CHECK(g.count == 2 && arr_has(&g, p) && arr_has(&g, q));
    CHECK(collect(2) == 0); /* held by the garbage list */
    CHECK(neap_gc_clear_garbage() == 2);
    /* break it by hand with the references get_garbage gave */
    NEAP_CLEAR(p->ref[0]);
    NEAP_CLEAR(q->ref[0]);
    neap_objarray_release(&g);
    CHECK(g_dealloc_noclear == 2);

    /* a cycle mixing a type without clear and one with: the clear breaks it
     * and nothing is uncollectable */
    p = node_new(&noclear_type);
    a = node_new(&node_type);
    node_link(p, 0, a);
    node_link(a, 0, p);
    neap_decref(p);
    neap_decref(a);
    neap_gc_get_stats(st0);
    CHECK(collect(2) == 2);
    neap_gc_get_stats(st1);
    CHECK(g_dealloc_noclear == 3 && g_dealloc_node == 4);
    CHECK(stats_sum(st1, 2) == stats_sum(st0, 2));
    CHECK(neap_gc_get_garbage(&g) == 0 && g.count == 0);
    neap_objarray_release(&g);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * freeze
 * ------------------------------------------------------------------------- */
static void
test_freeze(void)
{
    node_t *a, *b, *k, *y;
    size_t tracked;

    gc_begin();
    CHECK(neap_gc_get_freeze_count() == 0);
    make_pair(&a, &b);
    k = node_new(&node_type);
    collect(0); /* one of each generation: a, b in 2, k in 1, y in 0 */
    collect(1);
    node_link(k, 0, k);
    neap_decref(k);
    k = node_new(&node_type);
    collect(0);
    y = node_new(&node_type);
    node_link(y, 0, y);
    neap_decref(y);
    CHECK(gen_has(2, a) && gen_has(1, k) && gen_has(0, y));
    tracked = gen_size(-1);
    CHECK(tracked >= 3);
    neap_gc_freeze();
    CHECKF(neap_gc_get_freeze_count() == tracked, "freeze count %zu, %zu tracked",
           neap_gc_get_freeze_count(), tracked);
    CHECK(!gen_has(0, a) && !gen_has(1, a) && !gen_has(2, a));
    CHECK(neap_gc_is_tracked(a));
    {
        neap_objarray_t arr = {0};
        void *objs[1] = {b};
        CHECK(neap_gc_get_referrers(objs, 1, &arr) == 0);
        CHECK(arr.count == 0); /* a refers to b, but is frozen */
        neap_objarray_release(&arr);
    }
    neap_decref(a);
    neap_decref(b);
    CHECK(collect(2) == 0);
    CHECK(g_dealloc_node == 0);
    CHECK(neap_type_live(&node_type) == 5);

    /* objects made after the freeze are collected as usual */
    y = node_new(&node_type);
    node_link(y, 0, y);
    CHECK(gen_has(0, y));
    neap_decref(y);
    CHECK(collect(2) == 1);
    CHECK(neap_gc_get_freeze_count() == tracked);

    neap_gc_unfreeze();
    CHECK(neap_gc_get_freeze_count() == 0);
    CHECK(gen_has(2, a) && gen_has(2, b) && gen_has(2, k));
    CHECK(collect(0) == 0);
    CHECK(collect(2) == 4); /* a, b and the two self-cycles frozen with them */
    CHECK(g_dealloc_node == 5);
    neap_decref(k);

    /* freezing twice, unfreezing with nothing frozen */
    a = node_new(&node_type);
    neap_gc_freeze();
    b = node_new(&node_type);
    neap_gc_freeze();
    CHECK(neap_gc_get_freeze_count() >= 2);
    neap_gc_unfreeze();
    neap_gc_unfreeze();
    CHECK(neap_gc_get_freeze_count() == 0);
    neap_decref(a);
    neap_decref(b);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * thresholds
 * ------------------------------------------------------------------------- */
#define LOG_MAX 4096
static int g_log_gen[LOG_MAX]; /* generation of each collection started */
static size_t g_log_n;         /* collections started */
static size_t g_log_stops;     /* ... and stopped */

static void
log_cb(const char *phase, const neap_gc_info_t *info, void *arg)
{
    if (strcmp(phase, "start") == 0) {
        if (g_log_n < LOG_MAX)
            g_log_gen[g_log_n] = info->generation;
        g_log_n++;
    } else {
        CHECK(strcmp(phase, "stop") == 0);
        g_log_stops++;
    }
}

static void
log_reset(void)
{
    g_log_n = g_log_stops = 0;
}

static void
test_thresholds(void)
{
    long th[3], cnt[3];
    hold_t h = {0};
    node_t *x;
    leaf_t *l;
    void *s;
    size_t i, first, n, first_gen1, first_gen2;
    int ok;

    /* the defaults, before anything touched them */
    neap_gc_get_threshold(th);
    CHECKF(th[0] == 2000 && th[1] == 10 && th[2] == 10, "thresholds %ld %ld %ld", th[0], th[1],
           th[2]);
    CHECK(neap_gc_isenabled());
    gc_begin();
    CHECK(neap_gc_set_threshold(700, -1, 5) == 0);
    neap_gc_get_threshold(th);
    CHECK(th[0] == 700 && th[1] == 10 && th[2] == 5);
    CHECK(neap_gc_set_threshold(-1, -1, -1) == 0);
    neap_gc_get_threshold(th);
    CHECK(th[0] == 700 && th[1] == 10 && th[2] == 5);
    /* "too large" is the implementation's choice; either it refuses with
     * EINVAL and keeps the old values, or it takes the value */
    errno = 0;
    ok = neap_gc_set_threshold(LONG_MAX, -1, -1);
    neap_gc_get_threshold(th);
    CHECKF((ok == -1 && errno == EINVAL && th[0] == 700) || (ok == 0 && th[0] == LONG_MAX),
           "set_threshold(LONG_MAX) = %d errno %d, threshold0 now %ld", ok, errno, th[0]);
    CHECK(neap_gc_set_threshold(2000, 10, 10) == 0);

    /* the counters */
    collect(2);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 0 && cnt[1] == 0 && cnt[2] == 0);
    for (i = 0; i < 5; i++)
        hold_push(&h, node_new(&node_type));
    neap_gc_get_count(cnt);
    CHECKF(cnt[0] == 5, "count0 %ld after 5 allocations", cnt[0]);
    neap_decref(h.v[--h.n]);
    neap_decref(h.v[--h.n]);
    neap_gc_get_count(cnt);
    CHECKF(cnt[0] == 3, "count0 %ld after 5 allocations and 2 deallocations", cnt[0]);
    l = obj_new(&leaf_type);
    s = neap_str_new("abc", 3);
    CHECK(s != NULL);
    neap_gc_get_count(cnt);
    CHECKF(cnt[0] == 3, "count0 %ld: untracked allocations counted", cnt[0]);
    neap_decref(l);
    neap_decref(s);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 3);
    hold_release(&h);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 0);
    collect(0);
    neap_gc_get_count(cnt);
    CHECKF(cnt[0] == 0 && cnt[1] == 1 && cnt[2] == 0, "counts %ld %ld %ld", cnt[0], cnt[1],
           cnt[2]);
    collect(0);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 0 && cnt[1] == 2 && cnt[2] == 0);
    collect(1);
    neap_gc_get_count(cnt);
    CHECKF(cnt[0] == 0 && cnt[1] == 0 && cnt[2] == 1, "counts %ld %ld %ld", cnt[0], cnt[1],
           cnt[2]);
    collect(2);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 0 && cnt[1] == 0 && cnt[2] == 0);

    /* promotion through the generations */
    x = node_new(&node_type);
    CHECK(gen_has(0, x) && !gen_has(1, x) && !gen_has(2, x) && gen_has(-1, x));
    CHECK(gen_size(0) == 1);
    collect(0);
    CHECK(!gen_has(0, x) && gen_has(1, x) && !gen_has(2, x));
    collect(1);
    CHECK(!gen_has(0, x) && !gen_has(1, x) && gen_has(2, x));
    collect(2);
    CHECK(gen_has(2, x) && gen_has(-1, x));
    neap_decref(x);

    /* automatic collection: after threshold0 allocations, generation 1
     * every threshold1+1 collections, and generation 2 in time (no long-lived
     * objects yet, so the 25% rule does not hold it back) */
    CHECK(neap_gc_set_threshold(50, 10, 10) == 0);
    collect(2);
    CHECK(neap_gc_callbacks_add(log_cb, NULL) == 0);
    log_reset();
    neap_gc_enable();
    first = 0;
    for (i = 1; i <= 8000; i++) {
        hold_push(&h, node_new(&node_type));
        if (first == 0 && g_log_n > 0)
            first = i;
    }
    CHECKF(first == 50 || first == 51, "first automatic collection in allocation %zu", first);
    n = g_log_n;
    CHECK(g_log_stops == n && n < LOG_MAX);
    CHECKF(n >= 8000 / 52 && n <= 8000 / 49 + 1, "%zu automatic collections in 8000 allocations",
           n);
    first_gen1 = first_gen2 = 0;
    for (i = 0; i < n; i++) {
        CHECK(g_log_gen[i] >= 0 && g_log_gen[i] <= 2);
        if (g_log_gen[i] >= 1 && first_gen1 == 0)
            first_gen1 = i + 1;
        if (g_log_gen[i] == 2 && first_gen2 == 0)
            first_gen2 = i + 1;
    }
    CHECKF(first_gen1 == 11 || first_gen1 == 12, "first generation-1 collection is number %zu",
           first_gen1);
    CHECKF(first_gen2 >= 110 && first_gen2 <= 160, "first generation-2 collection is number %zu",
           first_gen2);
    neap_gc_disable();
    hold_release(&h);
    collect(2);

    /* disable/enable, threshold0 = 0 */
    log_reset();
    CHECK(!neap_gc_isenabled());
    for (i = 0; i < 500; i++)
        hold_push(&h, node_new(&node_type));
    CHECK(g_log_n == 0);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 500);
    neap_gc_enable();
    CHECK(neap_gc_isenabled());
    for (i = 0; i < 2 && g_log_n == 0; i++)
        hold_push(&h, node_new(&node_type));
    CHECKF(g_log_n >= 1, "no collection after enabling with count0 above threshold0");
    CHECK(neap_gc_set_threshold(0, -1, -1) == 0);
    log_reset();
    for (i = 0; i < 500; i++)
        hold_push(&h, node_new(&node_type));
    CHECK(g_log_n == 0);
    neap_gc_disable();
    hold_release(&h);

    /* the long-lived rule: with L objects in generation 2 after a full
     * collection, generation 2 is not collected until the objects promoted
     * into it since reach L/4 */
    for (i = 0; i < 4000; i++)
        hold_push(&h, node_new(&node_type));
    collect(2);
    {
        size_t total = gen_size(2), made = 0;
        neap_gc_stats_t st0[NEAP_GC_GENERATIONS], st1[NEAP_GC_GENERATIONS];
        int gen1_seen = 0;
        CHECK(total >= 4000);
        CHECK(neap_gc_set_threshold(10, 2, 1) == 0);
        log_reset();
        neap_gc_get_stats(st0);
        neap_gc_enable();
        first_gen2 = 0;
        while (made < total / 4 + 400 && first_gen2 == 0) {
            size_t before = g_log_n;
            hold_push(&h, node_new(&node_type));
            made++;
            for (i = before; i < g_log_n && i < LOG_MAX; i++) {
                if (g_log_gen[i] == 1)
                    gen1_seen = 1;
                if (g_log_gen[i] == 2 && first_gen2 == 0)
                    first_gen2 = made;
            }
        }
        neap_gc_disable();
        neap_gc_get_stats(st1);
        CHECK(gen1_seen);
        CHECKF(first_gen2 >= total / 4,
               "generation 2 collected after %zu promotions-to-be, %zu long-lived", first_gen2,
               total);
        CHECKF(first_gen2 != 0, "generation 2 not collected after %zu allocations, %zu long-lived",
               made, total);
        CHECK(st1[2].collections - st0[2].collections == 1);
    }
    neap_gc_callbacks_remove(log_cb, NULL);
    hold_release(&h);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * count_untracked
 * ------------------------------------------------------------------------- */
static long
count0(void)
{
    long cnt[NEAP_GC_GENERATIONS];
    neap_gc_get_count(cnt);
    return cnt[0];
}

static void
test_count_untracked(void)
{
    hold_t h = {0};
    node_t *a, *b, *v[6];
    size_t i, first;

    gc_begin();
    collect(2);
    CHECK(count0() == 0);

    /* untracking and tracking again leave the count alone; freeing an
     * object of a tracked type lowers it, tracked or not (CPython's
     * PyObject_GC_Del) */
    a = node_new(&node_type);
    b = node_new(&node_type);
    CHECK(count0() == 2);
    neap_gc_untrack(a);
    CHECK(!neap_gc_is_tracked(a) && count0() == 2);
    neap_gc_track(a);
    neap_gc_untrack(a);
    CHECK(count0() == 2);
    neap_decref(a);
    CHECKF(count0() == 1, "count0 %ld after an untracked object was freed", count0());
    neap_decref(b);
    CHECK(count0() == 0);
    CHECK(g_dealloc_node == 2);
    /* ... through its type's free list too, which counts it again when it
     * hands it out */
    neap_type_freelist_clear(&pooled_gc_type);
    a = obj_new(&pooled_gc_type);
    neap_gc_untrack(a);
    neap_decref(a);
    CHECK(count0() == 0 && g_dealloc_pooled == 1);
    a = obj_new(&pooled_gc_type);
    CHECK(count0() == 1 && neap_gc_is_tracked(a));
    neap_decref(a);
    CHECK(count0() == 0);
    neap_type_freelist_clear(&pooled_gc_type);

    /* never below 0: objects made before a collection, freed after it */
    for (i = 0; i < 6; i++) {
        v[i] = node_new(&node_type);
        neap_gc_untrack(v[i]);
    }
    CHECK(count0() == 6);
    collect(0);
    CHECK(count0() == 0);
    for (i = 0; i < 3; i++)
        neap_decref(v[i]);
    CHECK(count0() == 0);

    /* so an automatic collection comes when CPython's would: with 3 more
     * objects made and untracked, then freed, the count is back to 0 and
     * the first collection comes in the allocation that takes it past
     * threshold0, the 11th (CPython counts, then collects before the new
     * object is tracked) */
    for (i = 3; i < 6; i++)
        neap_decref(v[i]);
    for (i = 0; i < 3; i++) {
        v[i] = node_new(&node_type);
        neap_gc_untrack(v[i]);
    }
    CHECK(count0() == 3);
    for (i = 0; i < 3; i++)
        neap_decref(v[i]);
    CHECKF(count0() == 0, "count0 %ld with none of the objects made since alive", count0());
    CHECK(neap_gc_set_threshold(10, -1, -1) == 0);
    CHECK(neap_gc_callbacks_add(log_cb, NULL) == 0);
    log_reset();
    neap_gc_enable();
    first = 0;
    for (i = 1; i <= 30 && first == 0; i++) {
        hold_push(&h, node_new(&node_type));
        if (g_log_n > 0)
            first = i;
    }
    neap_gc_disable();
    CHECK(neap_gc_callbacks_remove(log_cb, NULL) == 0);
    CHECKF(first == 11, "first automatic collection in allocation %zu, expected 11", first);
    CHECK(g_log_n == 1 && g_log_gen[0] == 0);
    /* the 11th object was counted before the collection, which reset the
     * count: none counts now (as in CPython) */
    CHECK(count0() == 0);
    hold_release(&h);
    CHECK(count0() == 0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * callbacks
 * ------------------------------------------------------------------------- */
#define CBREC_MAX 64
static struct cbrec {
    char phase[8];          /* "start" or "stop" */
    neap_gc_info_t info;    /* as passed */
    void *arg;              /* as passed */
} g_cbrec[CBREC_MAX];
static size_t g_ncbrec;

static void
rec_cb(const char *phase, const neap_gc_info_t *info, void *arg)
{
    if (g_ncbrec < CBREC_MAX) {
        struct cbrec *c = &g_cbrec[g_ncbrec];
        snprintf(c->phase, sizeof c->phase, "%s", phase);
        c->info = *info;
        c->arg = arg;
    }
    g_ncbrec++;
}

static int
rec_is(size_t i, const char *phase, void *arg, int generation)
{
    return i < g_ncbrec && strcmp(g_cbrec[i].phase, phase) == 0 && g_cbrec[i].arg == arg &&
           g_cbrec[i].info.generation == generation;
}

static void
test_callbacks(void)
{
    static int argA, argB;
    node_t *a, *p, *q;
    neap_gc_stats_t st0[NEAP_GC_GENERATIONS], st1[NEAP_GC_GENERATIONS];
    neap_objarray_t g = {0};
    intptr_t r;
    int g_, i;

    gc_begin();
    CHECK(neap_gc_callbacks_add(rec_cb, &argA) == 0);
    CHECK(neap_gc_callbacks_add(rec_cb, &argB) == 0);
    g_ncbrec = 0;
    a = node_new(&node_type);
    node_link(a, 0, a);
    neap_decref(a);
    r = collect(1);
    CHECK(r == 1);
    CHECKF(g_ncbrec == 4, "%zu callback calls", g_ncbrec);
    CHECK(rec_is(0, "start", &argA, 1) && rec_is(1, "start", &argB, 1));
    CHECK(rec_is(2, "stop", &argA, 1) && rec_is(3, "stop", &argB, 1));
    CHECK(g_cbrec[0].info.collected == 0 && g_cbrec[0].info.uncollectable == 0);
    CHECK(g_cbrec[1].info.collected == 0 && g_cbrec[1].info.uncollectable == 0);
    CHECK(g_cbrec[2].info.collected == 1 && g_cbrec[2].info.uncollectable == 0);
    CHECK(g_cbrec[3].info.collected == 1 && g_cbrec[3].info.uncollectable == 0);

    /* removal */
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == 0);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == -1);
    g_ncbrec = 0;
    CHECK(collect(0) == 0);
    CHECK(g_ncbrec == 2 && rec_is(0, "start", &argB, 0) && rec_is(1, "stop", &argB, 0));
    CHECK(g_cbrec[1].info.collected == 0);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argB) == 0);
    g_ncbrec = 0;
    CHECK(collect(2) == 0);
    CHECK(g_ncbrec == 0);

    /* the same callback twice: remove takes the first only */
    CHECK(neap_gc_callbacks_add(rec_cb, &argA) == 0);
    CHECK(neap_gc_callbacks_add(rec_cb, &argA) == 0);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == 0);
    g_ncbrec = 0;
    collect(2);
    CHECK(g_ncbrec == 2);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == 0);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == -1);

    /* uncollectable objects in the stop phase */
    CHECK(neap_gc_callbacks_add(rec_cb, &argA) == 0);
    p = node_new(&noclear_type);
    q = node_new(&noclear_type);
    node_link(p, 0, q);
    node_link(q, 0, p);
    neap_decref(p);
    neap_decref(q);
    g_ncbrec = 0;
    neap_gc_get_stats(st0);
    r = collect(2);
    neap_gc_get_stats(st1);
    CHECK(r == 2);
    CHECK(g_ncbrec == 2 && rec_is(1, "stop", &argA, 2));
    CHECK(g_cbrec[1].info.uncollectable == 2);
    /* collected: all found (the header's words) or those freed (CPython's
     * gc.callbacks); the same figure as get_stats either way */
    CHECKF(g_cbrec[1].info.collected == 2 || g_cbrec[1].info.collected == 0,
           "stop: collected %zu, uncollectable 2", g_cbrec[1].info.collected);
    CHECKF(g_cbrec[1].info.collected == st1[2].collected - st0[2].collected,
           "stop: collected %zu, stats +%zu", g_cbrec[1].info.collected,
           st1[2].collected - st0[2].collected);
    CHECK(st1[2].uncollectable - st0[2].uncollectable == 2);
    CHECK(neap_gc_get_garbage(&g) == 0 && g.count == 2);
    neap_gc_clear_garbage();
    NEAP_CLEAR(p->ref[0]);
    NEAP_CLEAR(q->ref[0]);
    neap_objarray_release(&g);
    CHECK(g_dealloc_noclear == 2);
    CHECK(neap_gc_callbacks_remove(rec_cb, &argA) == 0);

    /* many callbacks: each add succeeds or says ENOMEM */
    for (i = 0; i < 1000; i++) {
        errno = 0;
        if (neap_gc_callbacks_add(rec_cb, (char *)&argA + i) != 0) {
            CHECK(errno == ENOMEM);
            break;
        }
    }
    g_ncbrec = 0;
    collect(0);
    CHECK(g_ncbrec == 2 * (size_t)i);
    while (i-- > 0)
        CHECK(neap_gc_callbacks_remove(rec_cb, (char *)&argA + i) == 0);

    /* statistics */
    neap_gc_get_stats(st0);
    for (g_ = 0; g_ < NEAP_GC_GENERATIONS; g_++)
        CHECK(st0[g_].duration >= 0);
    for (g_ = 0; g_ < NEAP_GC_GENERATIONS; g_++) {
        for (i = 0; i <= g_; i++) {
            a = node_new(&node_type);
            node_link(a, 0, a);
            neap_decref(a);
        }
        CHECK(collect(g_) == g_ + 1);
    }
    neap_gc_get_stats(st1);
    for (g_ = 0; g_ < NEAP_GC_GENERATIONS; g_++) {
        CHECKF(st1[g_].collections - st0[g_].collections == 1, "generation %d: %zu collections",
               g_, st1[g_].collections - st0[g_].collections);
        CHECKF(st1[g_].collected - st0[g_].collected == (size_t)g_ + 1,
               "generation %d: %zu collected", g_, st1[g_].collected - st0[g_].collected);
        CHECK(st1[g_].uncollectable == st0[g_].uncollectable);
        CHECK(st1[g_].duration >= st0[g_].duration);
    }
    CHECK(stats_sum(st1, 0) == stats_sum(st0, 0) + 3);
    CHECK(stats_sum(st1, 1) == stats_sum(st0, 1) + 6);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * collect_count: what a collection counts, in each place it reports it
 * ------------------------------------------------------------------------- */
/* One collection's count, as each channel gave it. */
typedef struct counted {
    intptr_t ret;           /* neap_gc_collect(2) */
    size_t collected;       /* get_stats: collected added, all generations */
    size_t uncollectable;   /* ... uncollectable added */
    neap_gc_info_t stop;    /* the gc callbacks' "stop" */
    int dbg_lines;          /* DEBUG_STATS "gc: done" lines printed */
    long dbg_unreachable;   /* ... and what the last one said */
    long dbg_uncollectable;
} counted_t;

static neap_gc_info_t g_stop_info;

static void
stop_cb(const char *phase, const neap_gc_info_t *info, void *arg)
{
    if (strcmp(phase, "stop") == 0)
        g_stop_info = *info;
}

/* Runs neap_gc_collect(2) with a gc callback and DEBUG_STATS on, stderr
 * going to a file, and fills *c.  No check runs while stderr is away (a
 * hook's failure message printed meanwhile is passed on afterwards). */
static void
collect_counted(counted_t *c)
{
    neap_gc_stats_t st0[NEAP_GC_GENERATIONS], st1[NEAP_GC_GENERATIONS];
    FILE *f = tmpfile();
    char line[256];
    int saved, err;

    CHECK(f != NULL);
    memset(c, 0, sizeof *c);
    c->dbg_unreachable = c->dbg_uncollectable = -1;
    memset(&g_stop_info, 0, sizeof g_stop_info);
    g_stop_info.generation = -1;
    CHECK(neap_gc_callbacks_add(stop_cb, NULL) == 0);
    neap_gc_get_stats(st0);
    fflush(stderr);
    saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fileno(f), 2) == 2);
    neap_gc_set_debug(NEAP_GC_DEBUG_STATS);
    errno = 0;
    c->ret = neap_gc_collect(2);
    err = errno;
    neap_gc_set_debug(0);
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    neap_gc_get_stats(st1);
    CHECK(neap_gc_callbacks_remove(stop_cb, NULL) == 0);
    CHECKF(c->ret >= 0, "neap_gc_collect(2) = %jd, errno %d", (intmax_t)c->ret, err);
    c->collected = stats_sum(st1, 1) - stats_sum(st0, 1);
    c->uncollectable = stats_sum(st1, 2) - stats_sum(st0, 2);
    c->stop = g_stop_info;
    rewind(f);
    while (fgets(line, sizeof line, f) != NULL) {
        long u, n;
        if (sscanf(line, "gc: done, %ld unreachable, %ld uncollectable", &u, &n) == 2) {
            c->dbg_lines++;
            c->dbg_unreachable = u;
            c->dbg_uncollectable = n;
        } else if (strncmp(line, "gc: ", 4) != 0) {
            fputs(line, stderr);
        }
    }
    fclose(f);
}

/* The collection counted `total` objects, `uncollectable` of them left
 * alive: its result, get_stats, the callbacks and DEBUG_STATS all say so
 * (CPython: collect returns collected + uncollectable, and "gc: done"
 * prints that sum as unreachable). */
static void
check_counted(const counted_t *c, const char *what, size_t total, size_t uncollectable)
{
    CHECKF(c->ret == (intptr_t)total, "%s: collect gave %jd, expected %zu", what,
           (intmax_t)c->ret, total);
    CHECKF(c->collected == total - uncollectable && c->uncollectable == uncollectable,
           "%s: get_stats +%zu collected, +%zu uncollectable, expected %zu, %zu", what,
           c->collected, c->uncollectable, total - uncollectable, uncollectable);
    CHECKF(c->stop.generation == 2 && c->stop.collected == total - uncollectable &&
               c->stop.uncollectable == uncollectable,
           "%s: callback stop (generation %d) collected %zu, uncollectable %zu, expected %zu, %zu",
           what, c->stop.generation, c->stop.collected, c->stop.uncollectable,
           total - uncollectable, uncollectable);
    CHECKF(c->dbg_lines == 1 && c->dbg_unreachable == (long)total &&
               c->dbg_uncollectable == (long)uncollectable,
           "%s: %d DEBUG_STATS lines, the last %ld unreachable, %ld uncollectable, expected "
           "%zu, %zu",
           what, c->dbg_lines, c->dbg_unreachable, c->dbg_uncollectable, total, uncollectable);
}

static void
test_collect_count(void)
{
    node_t *a, *c, *p, *q, *u, *v, *x, *y, *z;
    neap_objarray_t g = {0};
    counted_t k;
    void *w, *w2, *w3;
    size_t wr_live0;

    gc_begin();
    wr_live0 = neap_type_live(&neap_weakref_type);

    /* nothing to find, and plain garbage: every channel agrees */
    collect_counted(&k);
    check_counted(&k, "nothing", 0, 0);
    make_pair(&p, &q);
    neap_decref(p);
    neap_decref(q);
    collect_counted(&k);
    check_counted(&k, "a pair", 2, 0);
    CHECK(g_dealloc_node == 2);

    /* Resurrection: a finalizer stores a reference to its self-cycle,
     * which holds another node; both are found, both live on, neither is
     * counted.  Beside them a garbage pair (counted, freed) and a pair
     * without clear (counted, uncollectable). */
    counters_reset();
    a = fin_new(FIN_RESURRECT);
    node_link(a, 0, a);
    c = node_new(&node_type);
    node_link(a, 1, c);
    neap_decref(c);
    neap_decref(a);
    make_pair(&p, &q);
    neap_decref(p);
    neap_decref(q);
    u = node_new(&noclear_type);
    v = node_new(&noclear_type);
    node_link(u, 0, v);
    node_link(v, 0, u);
    neap_decref(u);
    neap_decref(v);
    collect_counted(&k);
    check_counted(&k, "resurrection", 4, 2);
    CHECK(g_fin_calls == 1 && g_res.n == 1 && g_res.v[0] == a);
    CHECK(g_dealloc_node == 2 && neap_refcnt(c) == 1 && g_dealloc_noclear == 0);
    /* released, the resurrected cycle is found and counted once more (its
     * finalizer does not run again) */
    hold_release(&g_res);
    collect_counted(&k);
    check_counted(&k, "the resurrected, released", 2, 0);
    CHECK(g_fin_calls == 1 && g_dealloc_fin == 1 && g_dealloc_node == 3);
    CHECK(neap_gc_get_garbage(&g) == 0 && g.count == 2);
    CHECK(neap_gc_clear_garbage() == 2);
    NEAP_CLEAR(u->ref[0]);
    NEAP_CLEAR(v->ref[0]);
    neap_objarray_release(&g);
    CHECK(g_dealloc_noclear == 2);

    /* Freed by refcount while the finalizers run: a pair holds x, whose
     * finalizer drops x's references; y (finalized, whichever runs first)
     * and the z it holds then go by refcount, before any clear.  Counted:
     * the pair and x, which the clears free. */
    counters_reset();
    make_pair(&p, &q);
    x = fin_new(FIN_CLEARSELF);
    y = fin_new(0);
    z = node_new(&node_type);
    node_link(p, 1, x);
    node_link(x, 0, y);
    node_link(y, 0, z);
    neap_decref(z);
    neap_decref(y);
    neap_decref(x);
    neap_decref(p);
    neap_decref(q);
    collect_counted(&k);
    check_counted(&k, "freed while finalizers ran", 3, 0);
    CHECK(g_fin_calls == 2 && g_dealloc_fin == 2 && g_dealloc_node == 3);
    /* a cycle whose finalizers break it: all of it goes by refcount */
    counters_reset();
    x = fin_new(FIN_CLEARSELF);
    y = fin_new(FIN_CLEARSELF);
    node_link(x, 0, y);
    node_link(y, 0, x);
    neap_decref(x);
    neap_decref(y);
    collect_counted(&k);
    check_counted(&k, "a cycle broken by its finalizers", 0, 0);
    CHECK(g_fin_calls == 2 && g_dealloc_fin == 2);

    /* A reachable weak reference freed by its own callback: its callback
     * drops the only other reference (the test's), so it goes when the
     * collector lets go of it, and is counted with the pair.  A reachable
     * weak reference that survives its callback is not counted. */
    counters_reset();
    g_nwrcalls = 0;
    make_pair(&p, &q);
    w = weakref_new(p, drop_cb, NULL);
    g_drop_wr = w;
    w2 = weakref_new(q, wr_cb, NULL);
    neap_decref(p);
    neap_decref(q);
    collect_counted(&k);
    check_counted(&k, "a weak reference freed by its callback", 3, 0);
    CHECK(g_drop_wr == NULL && g_dealloc_node == 2);
    CHECK(g_nwrcalls == 1 && g_wrcalls[0].wr == w2 && g_wrcalls[0].cleared);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0 + 1);
    neap_decref(w2);
    /* one that a callback frees but whose own callback does not run (it
     * has none) goes by refcount while callbacks run: not counted */
    make_pair(&p, &q);
    w = weakref_new(p, drop_cb, NULL);
    w3 = weakref_new(q, NULL, NULL);
    g_drop_wr = w3;
    neap_decref(p);
    neap_decref(q);
    collect_counted(&k);
    check_counted(&k, "a weak reference freed by another's callback", 2, 0);
    CHECK(g_drop_wr == NULL && g_dealloc_node == 4);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0 + 1);
    neap_decref(w);
    CHECK(neap_type_live(&neap_weakref_type) == wr_live0);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * introspection
 * ------------------------------------------------------------------------- */
static size_t
typecount(const neap_typecount_t *tc, size_t n, const char *name)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(tc[i].name, name) == 0)
            return tc[i].count;
    return 0;
}

static void
test_introspection(void)
{
    node_t *a, *b, *h, *u, *v;
    cont_t *c;
    leaf_t *l;
    neap_objarray_t arr = {0};
    void *objs[2];
    neap_typecount_t tc[64];
    size_t ntypes, i;
    FILE *f;
    char buf[65536];
    size_t len;

    gc_begin();
    a = node_new(&node_type);
    b = node_new(&node_type);
    l = obj_new(&leaf_type);
    c = obj_new(&cont_type);
    h = node_new(&node_type);
    node_link(a, 0, b);
    node_link(a, 1, l);
    cont_append(c, b);
    node_link(h, 0, c);

    /* get_objects */
    CHECK(gen_has(-1, a) && gen_has(-1, b) && gen_has(-1, c) && gen_has(-1, h));
    CHECK(!gen_has(-1, l));
    CHECK(gen_has(0, a) && !gen_has(1, a) && !gen_has(2, a));
    CHECK(gen_size(0) == 4);
    CHECK(gen_size(1) == 0 && gen_size(2) == 0);
    CHECK(neap_refcnt(a) == 1); /* the arrays' references were dropped */
    collect(0);
    CHECK(gen_size(0) == 0 && gen_size(1) == 4);

    /* get_referrers */
    objs[0] = b;
    CHECK(neap_gc_get_referrers(objs, 1, &arr) == 0);
    CHECK(arr.count == 2 && arr_has(&arr, a) && arr_has(&arr, c));
    neap_objarray_release(&arr);
    objs[0] = l;
    CHECK(neap_gc_get_referrers(objs, 1, &arr) == 0);
    CHECK(arr.count == 1 && arr_has(&arr, a));
    neap_objarray_release(&arr);
    objs[0] = c;
    objs[1] = l;
    CHECK(neap_gc_get_referrers(objs, 2, &arr) == 0);
    CHECK(arr.count == 2 && arr_has(&arr, h) && arr_has(&arr, a));
    neap_objarray_release(&arr);
    objs[0] = h;
    CHECK(neap_gc_get_referrers(objs, 1, &arr) == 0);
    CHECK(arr.count == 0);
    neap_objarray_release(&arr);

    /* get_referents */
    objs[0] = a;
    CHECK(neap_gc_get_referents(objs, 1, &arr) == 0);
    CHECK(arr.count == 2 && arr_has(&arr, b) && arr_has(&arr, l));
    CHECKF(neap_refcnt(b) == 4, "refcnt %jd", (intmax_t)neap_refcnt(b)); /* ours, a, c, the array */
    neap_objarray_release(&arr);
    CHECK(neap_refcnt(b) == 3);
    objs[0] = a;
    objs[1] = h;
    CHECK(neap_gc_get_referents(objs, 2, &arr) == 0);
    CHECK(arr.count >= 3 && arr_has(&arr, b) && arr_has(&arr, l) && arr_has(&arr, c));
    neap_objarray_release(&arr);
    objs[0] = l;
    CHECK(neap_gc_get_referents(objs, 1, &arr) == 0);
    CHECK(arr.count == 0);
    neap_objarray_release(&arr);

    /* is_tracked, untrack/track: an untracked cycle is invisible */
    CHECK(neap_gc_is_tracked(a) && !neap_gc_is_tracked(l));
    make_pair(&u, &v);
    neap_gc_untrack(u);
    neap_gc_untrack(v);
    neap_gc_untrack(v); /* twice is harmless */
    CHECK(!neap_gc_is_tracked(u) && !neap_gc_is_tracked(v));
    CHECK(!gen_has(-1, u));
    neap_decref(u);
    neap_decref(v);
    CHECK(collect(2) == 0);
    CHECK(neap_type_live(&node_type) == 5);
    neap_gc_track(u);
    neap_gc_track(v);
    neap_gc_track(v);
    CHECK(neap_gc_is_tracked(u) && neap_gc_is_tracked(v));
    CHECK(gen_has(-1, u));
    CHECK(collect(2) == 2);
    CHECK(neap_type_live(&node_type) == 3);
    /* an untracked object still goes by refcount */
    u = node_new(&node_type);
    neap_gc_untrack(u);
    neap_decref(u);
    CHECK(neap_type_live(&node_type) == 3);

    /* count_by_type */
    ntypes = neap_gc_count_by_type(tc, 64);
    CHECK(ntypes >= 3 && ntypes <= 64);
    CHECK(typecount(tc, ntypes, "test_node") == 3);
    CHECK(typecount(tc, ntypes, "test_leaf") == 1);
    CHECK(typecount(tc, ntypes, "test_container") == 1);
    for (i = 1; i < ntypes; i++)
        CHECK(tc[i - 1].count >= tc[i].count);
    for (i = 0; i < ntypes; i++)
        CHECK(tc[i].count > 0);
    CHECK(neap_gc_count_by_type(tc, 1) == ntypes);
    CHECK(neap_gc_count_by_type(NULL, 0) == ntypes);

    /* show_backrefs: b <- a, b <- c <- h */
    f = tmpfile();
    CHECK(f != NULL);
    CHECK(neap_gc_show_backrefs(b, 3, f) == 0);
    fflush(f);
    rewind(f);
    len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    fclose(f);
    CHECKF(strncmp(buf, "digraph", 7) == 0, "DOT output starts with \"%.20s\"", buf);
    CHECK(strstr(buf, "test_node") != NULL);
    CHECK(strstr(buf, "test_container") != NULL);
    CHECK(strchr(buf, '}') != NULL);
    f = tmpfile();
    CHECK(f != NULL);
    CHECK(neap_gc_show_backrefs(b, 0, f) == 0);
    rewind(f);
    len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    fclose(f);
    CHECK(strncmp(buf, "digraph", 7) == 0);
    CHECK(strstr(buf, "test_container") == NULL && strstr(buf, "->") == NULL);

    /* debug output of collectable objects does not disturb anything */
    neap_gc_set_debug(NEAP_GC_DEBUG_STATS | NEAP_GC_DEBUG_COLLECTABLE);
    u = node_new(&node_type);
    node_link(u, 0, u);
    neap_decref(u);
    CHECK(collect(2) == 1);
    neap_gc_set_debug(0);

    neap_decref(a);
    neap_decref(b);
    neap_decref(l);
    neap_decref(c);
    neap_decref(h);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * freelist
 * ------------------------------------------------------------------------- */
static void
test_freelist(void)
{
    pooled_t *p, *q, *v[10];
    node_t *n, *m;
    size_t i;
    long cnt[3];

    gc_begin();
    neap_type_freelist_clear(&pooled_type);
    neap_type_freelist_clear(&pooled_gc_type);
    p = obj_new(&pooled_type);
    memset(p, 0xAB, sizeof *p);
    neap_decref(p);
    CHECK(g_dealloc_pooled == 1);
    CHECK(neap_type_live(&pooled_type) == 0);
    q = obj_new(&pooled_type);
    CHECK(q == p);
    CHECK(all_zero(q, sizeof *q));
    CHECK(neap_refcnt(q) == 1 && neap_obj_type(q) == &pooled_type);
    CHECK(neap_type_live(&pooled_type) == 1);
    neap_decref(q);

    /* the cap */
    CHECK(neap_type_freelist_clear(&pooled_type) == 1);
    CHECK(neap_type_freelist_clear(&pooled_type) == 0);
    for (i = 0; i < 10; i++)
        v[i] = obj_new(&pooled_type);
    for (i = 0; i < 10; i++)
        neap_decref(v[i]);
    CHECK(neap_type_live(&pooled_type) == 0);
    CHECK(neap_type_freelist_clear(&pooled_type) == 4);
    CHECK(neap_type_freelist_clear(&pooled_type) == 0);

    /* all types at once */
    for (i = 0; i < 3; i++)
        v[i] = obj_new(&pooled_type);
    for (i = 0; i < 3; i++)
        neap_decref(v[i]);
    CHECK(neap_freelists_clear() >= 3);
    CHECK(neap_type_freelist_clear(&pooled_type) == 0);

    /* a full collection empties them */
    for (i = 0; i < 4; i++)
        v[i] = obj_new(&pooled_type);
    for (i = 0; i < 4; i++)
        neap_decref(v[i]);
    collect(2);
    CHECK(neap_type_freelist_clear(&pooled_type) == 0);

    /* a tracked type: reused, tracked again, counted again */
    n = obj_new(&pooled_gc_type);
    node_link(n, 0, n);
    neap_decref(n);
    CHECK(collect(0) == 1);
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 0);
    m = obj_new(&pooled_gc_type);
    CHECK(m == n);
    CHECK(all_zero(m, sizeof *m));
    CHECK(neap_gc_is_tracked(m) && gen_has(0, m));
    neap_gc_get_count(cnt);
    CHECK(cnt[0] == 1);
    neap_decref(m);
    CHECK(neap_type_live(&pooled_gc_type) == 0);
    CHECK(neap_type_freelist_clear(&pooled_gc_type) == 1);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * intern
 * ------------------------------------------------------------------------- */
#define NINTERN 10000

static void
test_intern(void)
{
    size_t base, live0, i;
    void *a, *b, *c, *d, *s, *t, *u, *w, *x;
    void *e1, *e2, *e3, *e4, *e5, *z1, *z2;
    void **many;
    char name[32];
    long cnt0[3], cnt1[3];

    gc_begin();
    base = neap_intern_count();
    live0 = neap_type_live(&neap_str_type);
    neap_gc_get_count(cnt0);

    a = neap_intern("hello", 5);
    b = neap_intern("hello", 5);
    CHECK(a != NULL && a == b);
    CHECK(neap_refcnt(a) == 2);
    CHECK(neap_str_is_interned(a));
    CHECK(!neap_gc_is_tracked(a));
    CHECK(neap_obj_type(a) == &neap_str_type);
    CHECK(neap_intern_count() == base + 1);
    c = neap_intern_cstr("hello");
    CHECK(c == a);
    d = neap_intern("world", 5);
    CHECK(d != NULL && d != a);
    CHECK(neap_intern_count() == base + 2);
    CHECK(neap_str_len(a) == 5 && memcmp(neap_str_data(a), "hello", 6) == 0);

    /* neap_intern_str: the interned equal string if there is one */
    s = neap_str_new("hello", 5);
    CHECK(s != NULL && s != a);
    CHECK(!neap_str_is_interned(s));
    CHECK(neap_str_hash(s) == neap_str_hash(a));
    CHECK(neap_str_hash(d) != neap_str_hash(a)); /* not required, but 64 bits */
    t = neap_intern_str(s);
    CHECK(t == a);
    CHECK(neap_refcnt(s) == 1 && neap_refcnt(a) == 4);
    CHECK(!neap_str_is_interned(s));
    neap_decref(t);
    neap_decref(s);
    /* ... else the string itself becomes the interned one */
    u = neap_str_new("fresh", 5);
    w = neap_intern_str(u);
    CHECK(w == u);
    CHECK(neap_str_is_interned(u));
    CHECK(neap_refcnt(u) == 2);
    x = neap_intern("fresh", 5);
    CHECK(x == u);
    CHECK(neap_intern_count() == base + 3);
    neap_decref(x);
    neap_decref(w);
    neap_decref(u);
    CHECK(neap_intern_count() == base + 2);

    /* the table does not keep strings alive; a value interned again is a
     * new object */
    neap_decref(a);
    neap_decref(b);
    CHECK(neap_intern_count() == base + 2);
    neap_decref(c);
    CHECK(neap_intern_count() == base + 1);
    CHECK(neap_type_live(&neap_str_type) == live0 + 1);
    a = neap_intern("hello", 5);
    CHECK(neap_refcnt(a) == 1);
    CHECK(neap_type_live(&neap_str_type) == live0 + 2);
    CHECK(neap_intern_count() == base + 2);
    CHECK(neap_str_len(a) == 5 && memcmp(neap_str_data(a), "hello", 6) == 0);
    neap_decref(a);
    neap_decref(d);
    CHECK(neap_intern_count() == base);

    /* embedded NULs and the empty string */
    e1 = neap_intern("a\0b", 3);
    e2 = neap_intern("a\0c", 3);
    e3 = neap_intern("a", 1);
    e4 = neap_intern("a\0b", 3);
    e5 = neap_intern_cstr("a");
    CHECK(e1 == e4 && e1 != e2 && e1 != e3 && e2 != e3 && e5 == e3);
    CHECK(neap_str_len(e1) == 3 && memcmp(neap_str_data(e1), "a\0b", 4) == 0);
    CHECK(neap_str_len(e3) == 1);
    CHECK(neap_intern_count() == base + 3);
    z1 = neap_intern("", 0);
    z2 = neap_intern_cstr("");
    CHECK(z1 == z2 && neap_str_len(z1) == 0 && neap_str_data(z1)[0] == '\0');
    neap_decref(e1);
    neap_decref(e2);
    neap_decref(e3);
    neap_decref(e4);
    neap_decref(e5);
    neap_decref(z1);
    neap_decref(z2);
    CHECK(neap_intern_count() == base);

    /* many */
    many = malloc(NINTERN * sizeof *many);
    CHECK(many != NULL);
    for (i = 0; i < NINTERN; i++) {
        snprintf(name, sizeof name, "name-%zu", i);
        many[i] = neap_intern_cstr(name);
        CHECK(many[i] != NULL);
    }
    CHECK(neap_intern_count() == base + NINTERN);
    for (i = 0; i < NINTERN; i += 7) {
        snprintf(name, sizeof name, "name-%zu", i);
        t = neap_intern(name, strlen(name));
        CHECK(t == many[i]);
        neap_decref(t);
    }
    for (i = 0; i < NINTERN; i++)
        neap_decref(many[i]);
    free(many);
    CHECK(neap_intern_count() == base);
    CHECK(neap_type_live(&neap_str_type) == live0);

    /* random interning and releasing against a model: per value, the
     * references held and the object they are to */
    {
        uint64_t rs = xs_seed(4242);
        static void *obj[2000];
        static int refs[2000];
        size_t distinct = 0, step;
        memset(obj, 0, sizeof obj);
        memset(refs, 0, sizeof refs);
        for (step = 0; step < 200000; step++) {
            size_t v = (size_t)xs_range(&rs, 0, 1999);
            snprintf(name, sizeof name, "v%zu%s", v, v % 3 ? "" : "-longer-value");
            if (refs[v] == 0 || xs_next(&rs) % 2 == 0) {
                void *o;
                if (xs_next(&rs) % 4 == 0) {
                    void *fresh = neap_str_new(name, strlen(name));
                    CHECK(fresh != NULL);
                    o = neap_intern_str(fresh);
                    CHECK(refs[v] > 0 || o == fresh); /* it becomes the interned one */
                    neap_decref(fresh);
                } else {
                    o = neap_intern_cstr(name);
                }
                CHECK(o != NULL);
                if (refs[v] > 0)
                    CHECKF(o == obj[v], "value %s interned twice", name);
                else
                    distinct++;
                obj[v] = o;
                refs[v]++;
            } else {
                neap_decref(obj[v]);
                if (--refs[v] == 0) {
                    obj[v] = NULL;
                    distinct--;
                }
            }
            CHECK(neap_intern_count() == base + distinct);
        }
        for (step = 0; step < 2000; step++)
            while (refs[step] > 0) {
                neap_decref(obj[step]);
                refs[step]--;
            }
    }
    CHECK(neap_intern_count() == base);
    neap_gc_get_count(cnt1);
    CHECK(cnt1[0] == cnt0[0]); /* strings are not tracked */
    gc_end();
}

/* ---------------------------------------------------------------------------
 * errors
 * ------------------------------------------------------------------------- */
static intptr_t g_cb_nested_ret[2];
static int g_cb_nested_errno[2];

static void
collecting_cb(const char *phase, const neap_gc_info_t *info, void *arg)
{
    int k = strcmp(phase, "start") == 0 ? 0 : 1;
    errno = 0;
    g_cb_nested_ret[k] = neap_gc_collect(2);
    g_cb_nested_errno[k] = errno;
}

static void
test_errors(void)
{
    node_t *a;
    neap_objarray_t arr = {0};
    long cnt0[3], cnt1[3];
    size_t live0;
    void *v;

    gc_begin();
    errno = 0;
    CHECK(neap_gc_collect(3) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_gc_collect(-1) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_gc_collect(INT_MAX) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_gc_collect(INT_MIN) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_gc_get_objects(3, &arr) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(neap_gc_get_objects(-2, &arr) == -1 && errno == EINVAL);
    CHECK(neap_gc_callbacks_remove(collecting_cb, NULL) == -1);

    /* a collection from a finalizer run by a collection */
    a = fin_new(FIN_COLLECT);
    node_link(a, 0, a);
    neap_decref(a);
    CHECK(collect(2) == 1);
    CHECKF(g_nested_ret == -1 && g_nested_errno == EBUSY, "nested collect gave %jd, errno %d",
           (intmax_t)g_nested_ret, g_nested_errno);
    CHECK(g_dealloc_fin == 1);

    /* ... and from a gc callback, in both phases */
    CHECK(neap_gc_callbacks_add(collecting_cb, NULL) == 0);
    g_cb_nested_ret[0] = g_cb_nested_ret[1] = -2;
    a = node_new(&node_type);
    node_link(a, 0, a);
    neap_decref(a);
    CHECK(collect(1) == 1);
    CHECKF(g_cb_nested_ret[0] == -1 && g_cb_nested_errno[0] == EBUSY,
           "collect at start gave %jd, errno %d", (intmax_t)g_cb_nested_ret[0],
           g_cb_nested_errno[0]);
    CHECKF(g_cb_nested_ret[1] == -1 && g_cb_nested_errno[1] == EBUSY,
           "collect at stop gave %jd, errno %d", (intmax_t)g_cb_nested_ret[1],
           g_cb_nested_errno[1]);
    /* an automatic collection too */
    g_cb_nested_ret[0] = g_cb_nested_ret[1] = -2;
    CHECK(neap_gc_set_threshold(10, -1, -1) == 0);
    neap_gc_enable();
    {
        hold_t h = {0};
        int i;
        for (i = 0; i < 30; i++)
            hold_push(&h, node_new(&node_type));
        hold_release(&h);
    }
    neap_gc_disable();
    CHECK(g_cb_nested_ret[0] == -1 && g_cb_nested_errno[0] == EBUSY);
    CHECK(g_cb_nested_ret[1] == -1 && g_cb_nested_errno[1] == EBUSY);
    CHECK(neap_gc_callbacks_remove(collecting_cb, NULL) == 0);
    CHECK(collect(2) == 0); /* and collections work afterwards */

    /* overflowing sizes */
    live0 = neap_type_live(&var_type);
    neap_gc_get_count(cnt0);
    errno = 0;
    v = neap_obj_new_var(&var_type, SIZE_MAX / sizeof(pair_t) + 1);
    CHECK(v == NULL && errno == ENOMEM);
    errno = 0;
    v = neap_obj_new_var(&var_type, SIZE_MAX);
    CHECK(v == NULL && errno == ENOMEM);
    errno = 0;
    v = neap_obj_new_var(&var_type, (SIZE_MAX - sizeof(var_t)) / sizeof(pair_t));
    CHECK(v == NULL && errno == ENOMEM); /* fits size_t, not with the header */
    errno = 0;
    v = neap_obj_new_var(&var_type, test_launder_size((size_t)1 << 60));
    CHECK(v == NULL && errno == ENOMEM);
    CHECK(neap_type_live(&var_type) == live0);
    neap_gc_get_count(cnt1);
    CHECK(cnt1[0] == cnt0[0]);

    /* a tracked object that cannot be had: nothing made, nothing counted
     * (CPython counts an object when it links it, after the allocation
     * succeeded) */
    v = neap_obj_new_var(&var_gc_type, 3);
    CHECK(v != NULL && neap_gc_is_tracked(v));
    neap_decref(v);
    neap_gc_get_count(cnt0);
    live0 = neap_type_live(&var_gc_type);
    errno = 0;
    v = neap_obj_new_var(&var_gc_type, SIZE_MAX / 2);
    CHECK(v == NULL && errno == ENOMEM);
    errno = 0;
    v = neap_obj_new_var(&var_gc_type, test_launder_size((size_t)1 << 59));
    CHECK(v == NULL && errno == ENOMEM);
    CHECK(neap_type_live(&var_gc_type) == live0);
    neap_gc_get_count(cnt1);
    CHECKF(cnt1[0] == cnt0[0], "count0 %ld after failed tracked allocations, %ld before", cnt1[0],
           cnt0[0]);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * property: random graphs against an independent model
 * ------------------------------------------------------------------------- */
/* A weak reference the test holds (variant 1 and 2). */
typedef struct wrec {
    void *wr;   /* the weak reference (a reference the test holds) */
    int target; /* id of its referent */
    int calls;  /* its callback's calls */
} wrec_t;

typedef struct prop {
    int variant;              /* 0 plain, 1 + finalizers and weak refs, 2 + resurrection */
    size_t cap;               /* ids 1..cap */
    size_t nids;              /* ids given out */
    node_t **obj;             /* obj[id], valid while g_alive[id] */
    int (*edge)[NODE_REFS];   /* edge[id][slot]: the model's target id, 0 none */
    unsigned char *ext;       /* the test holds a reference to obj[id] */
    unsigned char *reach;     /* model: reachable from the external references */
    unsigned char *isfin;     /* obj[id] is a test_fin */
    int *wtarget;             /* target of the weak reference obj[id] owns, 0 none */
    int *owned_calls;         /* its callback's calls */
    int *stack;               /* marking scratch */
    int *pool;                /* ids alive at the start of a round and made in it */
    size_t npool;
    wrec_t *wrecs;            /* weak references the test holds */
    size_t nwrecs, capwrecs;
    int checking;             /* in the main collection of variant 1 */
    int checked;              /* a finalizer did the weak-reference check of it */
} prop_t;

static prop_t *g_prop;
static size_t g_prop_nodes, g_prop_found, g_prop_rounds; /* totals, for the summary */
static size_t g_prop_wrchecks; /* weak references checked from inside finalizers */

static void
prop_wr_cb(void *wr, void *data)
{
    leaf_t *d = data;
    wrec_t *w;
    CHECK(d != NULL && (size_t)d->tag < g_prop->nwrecs);
    w = &g_prop->wrecs[d->tag];
    CHECK(w->wr == wr);
    CHECK(neap_weakref_get(wr) == NULL);
    w->calls++;
    CHECKF(w->calls == 1, "callback of a weak reference to %d ran %d times", w->target, w->calls);
}

static void
prop_owned_cb(void *wr, void *data)
{
    leaf_t *d = data;
    CHECK(d != NULL && d->id > 0 && (size_t)d->id <= g_prop->nids);
    CHECK(neap_weakref_get(wr) == NULL);
    g_prop->owned_calls[d->id]++;
    CHECK(g_prop->owned_calls[d->id] == 1);
}

/* finalizer hook: in variant 1's main collection, the finalized node is
 * garbage by the model, and every weak reference to garbage is already
 * cleared when the first finalizer runs */
static void
prop_fin_hook(node_t *n)
{
    prop_t *P = g_prop;
    size_t i;
    if (!P->checking)
        return;
    CHECKF(!P->reach[n->id], "finalizer of reachable node %d", n->id);
    if (P->checked)
        return;
    P->checked = 1;
    for (i = 0; i < P->nwrecs; i++) {
        int t = P->wrecs[i].target;
        if (g_alive[t] && !P->reach[t]) {
            void *o = neap_weakref_get(P->wrecs[i].wr);
            CHECKF(o == NULL, "weak reference to garbage node %d live during finalizers", t);
            neap_xdecref(o);
            g_prop_wrchecks++;
        }
    }
}

static leaf_t *
prop_data(int id, int tag)
{
    leaf_t *d = obj_new(&leaf_type);
    d->id = id;
    d->tag = tag;
    return d;
}

/* model: marks P->reach from the external references and from extra[] */
static size_t
prop_mark(prop_t *P, const hold_t *extra)
{
    size_t i, sp = 0, nreach = 0;
    memset(P->reach, 0, P->cap + 1);
    for (i = 0; i < P->npool; i++) {
        int id = P->pool[i];
        if (P->ext[id] && !P->reach[id]) {
            P->reach[id] = 1;
            P->stack[sp++] = id;
        }
    }
    if (extra != NULL) {
        for (i = 0; i < extra->n; i++) {
            int id = ((node_t *)extra->v[i])->id;
            if (!P->reach[id]) {
                P->reach[id] = 1;
                P->stack[sp++] = id;
            }
        }
    }
    while (sp > 0) {
        int id = P->stack[--sp], k;
        nreach++;
        for (k = 0; k < NODE_REFS; k++) {
            int t = P->edge[id][k];
            if (t != 0 && !P->reach[t]) {
                P->reach[t] = 1;
                P->stack[sp++] = t;
            }
        }
    }
    return nreach;
}

static int
prop_pick(prop_t *P, uint64_t *s)
{
    return P->pool[xs_range(s, 0, P->npool - 1)];
}

static void
prop_check_weakrefs(prop_t *P)
{
    size_t i;
    for (i = 0; i < P->nwrecs; i++) {
        wrec_t *w = &P->wrecs[i];
        void *o = neap_weakref_get(w->wr);
        if (g_alive[w->target]) {
            CHECKF(o == P->obj[w->target], "weak reference to live node %d gives %p", w->target,
                   o);
            CHECK(w->calls == 0);
        } else {
            CHECKF(o == NULL, "weak reference to dead node %d gives %p", w->target, o);
            CHECKF(w->calls == 1, "callback of a weak reference to dead node %d: %d calls",
                   w->target, w->calls);
        }
        neap_xdecref(o);
    }
    for (i = 0; i < P->npool; i++) {
        int id = P->pool[i], t = P->wtarget[id];
        void *o;
        if (t == 0 || !g_alive[id])
            continue;
        o = neap_weakref_get(P->obj[id]->wr);
        if (g_alive[t]) {
            CHECK(o == P->obj[t]);
            CHECK(P->owned_calls[id] == 0);
        } else {
            CHECK(o == NULL);
            CHECKF(P->owned_calls[id] == 1,
                   "live node %d's weak reference to dead %d: %d callback calls", id, t,
                   P->owned_calls[id]);
        }
        neap_xdecref(o);
    }
}

static void
prop_seed(uint64_t seed, int variant)
{
    static const long t0s[3] = {0, 50, 700};
    static const unsigned ext_permille[4] = {0, 10, 50, 200};
    prop_t P;
    uint64_t s = xs_seed(seed);
    size_t rounds = (size_t)xs_range(&s, 1, 4), n0 = (size_t)xs_range(&s, 1, 2000);
    size_t r, i, k, nreach, nreach_before, garbage_alive, wr_before, wr_after, live;
    long t0 = t0s[xs_range(&s, 0, 2)];
    intptr_t ret;

    memset(&P, 0, sizeof P);
    P.variant = variant;
    P.cap = n0 + (rounds - 1) * 1000;
    P.obj = calloc(P.cap + 1, sizeof *P.obj);
    P.edge = calloc(P.cap + 1, sizeof *P.edge);
    P.ext = calloc(P.cap + 1, 1);
    P.reach = calloc(P.cap + 1, 1);
    P.isfin = calloc(P.cap + 1, 1);
    P.wtarget = calloc(P.cap + 1, sizeof *P.wtarget);
    P.owned_calls = calloc(P.cap + 1, sizeof *P.owned_calls);
    P.stack = calloc(P.cap + 1, sizeof *P.stack);
    P.pool = calloc(P.cap + 1, sizeof *P.pool);
    g_alive = calloc(P.cap + 1, 1);
    g_fin_count = calloc(P.cap + 1, sizeof *g_fin_count);
    CHECK(P.obj && P.edge && P.ext && P.reach && P.isfin && P.wtarget && P.owned_calls &&
          P.stack && P.pool && g_alive && g_fin_count);
    g_nids = P.cap;
    g_prop = &P;
    g_fin_hook = prop_fin_hook;
    if (t0 > 0) {
        CHECK(neap_gc_set_threshold(t0, 2, 2) == 0);
        neap_gc_enable();
    } else {
        neap_gc_disable();
    }

    for (r = 0; r < rounds; r++) {
        size_t nold = P.npool, nnew = r == 0 ? n0 : (size_t)xs_range(&s, 0, 1000);
        unsigned permille = ext_permille[xs_range(&s, 0, 3)];

        /* hold every node of the pool for the round's changes; the old
         * external references go */
        for (i = 0; i < nold; i++)
            neap_incref(P.obj[P.pool[i]]);
        for (i = 0; i < nold; i++) {
            int id = P.pool[i];
            if (P.ext[id]) {
                P.ext[id] = 0;
                neap_decref(P.obj[id]);
            }
        }
        /* new nodes (our reference is the temporary one) */
        for (k = 0; k < nnew; k++) {
            int id = (int)++P.nids;
            int fin = variant > 0 && xs_next(&s) % 4 == 0;
            node_t *n = node_new(fin ? &fin_type : &node_type);
            n->id = id;
            if (fin && variant == 2 && xs_next(&s) % 2 == 0)
                n->flags = FIN_RESURRECT;
            P.obj[id] = n;
            P.isfin[id] = (unsigned char)fin;
            g_alive[id] = 1;
            P.pool[P.npool++] = id;
        }
        /* edges: new nodes get 0..4, old ones change now and then */
        for (i = nold; i < P.npool; i++) {
            int id = P.pool[i];
            size_t deg = (size_t)xs_range(&s, 0, NODE_REFS);
            for (k = 0; k < deg; k++) {
                int t = prop_pick(&P, &s);
                node_link(P.obj[id], (int)k, P.obj[t]);
                P.edge[id][k] = t;
            }
        }
        for (i = 0; i < nold; i++) {
            int id = P.pool[i];
            if (xs_next(&s) % 3 == 0) {
                int slot = (int)xs_range(&s, 0, NODE_REFS - 1);
                int t = xs_next(&s) % 5 == 0 ? 0 : prop_pick(&P, &s);
                node_link(P.obj[id], slot, t ? P.obj[t] : NULL);
                P.edge[id][slot] = t;
            }
        }
        /* weak references: held by the test, and owned by new nodes */
        if (variant > 0) {
            for (i = 0; i < P.npool; i++) {
                int id = P.pool[i];
                if (xs_next(&s) % 10 == 0) {
                    leaf_t *d;
                    if (P.nwrecs == P.capwrecs) {
                        P.capwrecs = P.capwrecs ? 2 * P.capwrecs : 64;
                        P.wrecs = realloc(P.wrecs, P.capwrecs * sizeof *P.wrecs);
                        CHECK(P.wrecs != NULL);
                    }
                    d = prop_data(id, (int)P.nwrecs);
                    P.wrecs[P.nwrecs].wr = weakref_new(P.obj[id], prop_wr_cb, d);
                    P.wrecs[P.nwrecs].target = id;
                    P.wrecs[P.nwrecs].calls = 0;
                    P.nwrecs++;
                    neap_decref(d);
                }
            }
            for (i = nold; i < P.npool; i++) {
                int id = P.pool[i];
                if (xs_next(&s) % 8 == 0) {
                    int t = prop_pick(&P, &s);
                    leaf_t *d = prop_data(id, 0);
                    node_own_wr(P.obj[id], weakref_new(P.obj[t], prop_owned_cb, d));
                    P.wtarget[id] = t;
                    neap_decref(d);
                }
            }
        }
        /* the new external references */
        for (i = 0; i < P.npool; i++) {
            int id = P.pool[i];
            if (xs_next(&s) % 1000 < permille) {
                P.ext[id] = 1;
                neap_incref(P.obj[id]);
            }
        }
        /* drop the temporary references: refcounting frees what is not in
         * a cycle (finalizers may resurrect some in variant 2) */
        for (i = 0; i < P.npool; i++)
            neap_decref(P.obj[P.pool[i]]);

        /* the model */
        nreach = nreach_before = prop_mark(&P, NULL);
        garbage_alive = 0;
        for (i = 0; i < P.npool; i++) {
            int id = P.pool[i];
            if (P.reach[id])
                CHECKF(g_alive[id], "reachable node %d freed by refcounting", id);
            else if (g_alive[id])
                garbage_alive++;
        }
        wr_before = neap_type_live(&neap_weakref_type);

        P.checking = variant == 1;
        P.checked = 0;
        ret = collect(2);
        P.checking = 0;
        g_prop_found += (size_t)ret;
        g_prop_rounds++;
        wr_after = neap_type_live(&neap_weakref_type);
        CHECK(wr_after <= wr_before);

        if (variant == 2) {
            /* alive: what the external references and the resurrected
             * reach; then, resurrected released until none is left,
             * exactly the model's */
            size_t alive_after = 0, loops = 0;
            nreach = prop_mark(&P, &g_res);
            for (i = 0; i < P.npool; i++) {
                int id = P.pool[i];
                CHECKF(g_alive[id] == P.reach[id],
                       "seed %llu round %zu: node %d alive %d, reachable with the resurrected %d",
                       (unsigned long long)seed, r, id, g_alive[id], P.reach[id]);
                alive_after += g_alive[id];
            }
            /* counted: exactly what the collection freed (the resurrected
             * are not counted; nothing here goes by refcount while the
             * finalizers run) */
            CHECKF(ret == (intptr_t)(nreach_before + garbage_alive - alive_after +
                                     (wr_before - wr_after)),
                   "seed %llu round %zu: collect gave %jd, freed %zu nodes and %zu weak "
                   "references",
                   (unsigned long long)seed, r, (intmax_t)ret,
                   nreach_before + garbage_alive - alive_after, wr_before - wr_after);
            while (g_res.n > 0) {
                CHECK(++loops < 1000);
                hold_release(&g_res);
                collect(2);
            }
            nreach = prop_mark(&P, NULL);
        } else {
            CHECKF(ret == (intptr_t)(garbage_alive + (wr_before - wr_after)),
                   "seed %llu round %zu: collect gave %jd, %zu garbage nodes and %zu weak "
                   "references left by refcounting",
                   (unsigned long long)seed, r, (intmax_t)ret, garbage_alive,
                   wr_before - wr_after);
        }
        live = neap_type_live(&node_type) + neap_type_live(&fin_type);
        CHECKF(live == nreach, "seed %llu round %zu: %zu nodes live, %zu reachable",
               (unsigned long long)seed, r, live, nreach);
        k = 0;
        for (i = 0; i < P.npool; i++) {
            int id = P.pool[i];
            CHECKF(g_alive[id] == P.reach[id],
                   "seed %llu round %zu: node %d alive %d, reachable %d",
                   (unsigned long long)seed, r, id, g_alive[id], P.reach[id]);
            if (P.isfin[id])
                CHECKF(g_fin_count[id] == (g_alive[id] ? 0 : 1),
                       "node %d (alive %d) finalized %d times", id, g_alive[id], g_fin_count[id]);
            if (P.reach[id])
                P.pool[k++] = id;
        }
        if (variant > 0)
            prop_check_weakrefs(&P);
        P.npool = k;
    }

    /* the end: every node goes */
    for (i = 0; i < P.npool; i++) {
        int id = P.pool[i];
        if (P.ext[id]) {
            P.ext[id] = 0;
            neap_decref(P.obj[id]);
        }
    }
    collect(2);
    while (g_res.n > 0) {
        hold_release(&g_res);
        collect(2);
    }
    CHECK(neap_type_live(&node_type) + neap_type_live(&fin_type) == 0);
    g_prop_nodes += P.nids;
    for (i = 1; i <= P.nids; i++) {
        CHECK(!g_alive[i]);
        if (P.isfin[i])
            CHECK(g_fin_count[i] == 1);
    }
    if (variant > 0)
        prop_check_weakrefs(&P);
    for (i = 0; i < P.nwrecs; i++)
        neap_decref(P.wrecs[i].wr);
    CHECK(neap_type_live(&leaf_type) == 0);

    neap_gc_disable();
    g_fin_hook = NULL;
    g_prop = NULL;
    g_nids = 0;
    free(g_alive);
    free(g_fin_count);
    g_alive = NULL;
    g_fin_count = NULL;
    free(P.obj);
    free(P.edge);
    free(P.ext);
    free(P.reach);
    free(P.isfin);
    free(P.wtarget);
    free(P.owned_calls);
    free(P.stack);
    free(P.pool);
    free(P.wrecs);
}

static void
test_property(void)
{
    size_t n = test_scaled(2000), i;
    gc_begin();
    g_prop_nodes = g_prop_found = g_prop_rounds = 0;
    for (i = 0; i < n; i++)
        prop_seed(1000 + i, 0);
    printf("property: %zu seeds, %zu rounds, %zu nodes, collect found %zu\n", n, g_prop_rounds,
           g_prop_nodes, g_prop_found);
    gc_end();
}

static void
test_property_fin(void)
{
    size_t n = test_scaled(2000), i;
    gc_begin();
    g_prop_nodes = g_prop_found = g_prop_rounds = g_prop_wrchecks = 0;
    for (i = 0; i < n; i++)
        prop_seed(500000 + i, 1 + (int)(i % 2));
    printf("property_fin: %zu seeds, %zu rounds, %zu nodes, collect found %zu, %ld finalizers, "
           "%zu weak references checked inside finalizers\n",
           n, g_prop_rounds, g_prop_nodes, g_prop_found, g_fin_calls, g_prop_wrchecks);
    gc_end();
}

/* ---------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------- */
static const struct test_section sections[] = {
    {"refcount", test_refcount},
    {"self_cycle", test_self_cycle},
    {"two_cycle", test_two_cycle},
    {"long_chain_cycle", test_long_chain_cycle},
    {"container_cycles", test_container_cycles},
    {"generations", test_generations},
    {"finalizer", test_finalizer},
    {"finalizer_chain", test_finalizer_chain},
    {"weakref", test_weakref},
    {"weakref_trashcan", test_weakref_trashcan},
    {"weakref_order", test_weakref_order},
    {"saveall", test_saveall},
    {"freeze", test_freeze},
    {"thresholds", test_thresholds},
    {"count_untracked", test_count_untracked},
    {"callbacks", test_callbacks},
    {"collect_count", test_collect_count},
    {"introspection", test_introspection},
    {"freelist", test_freelist},
    {"intern", test_intern},
    {"errors", test_errors},
    {"property", test_property},
    {"property_fin", test_property_fin},
};

int
main(int argc, char **argv)
{
    return test_sections_main(argc, argv, "gc", sections, sizeof sections / sizeof sections[0], NULL);
}

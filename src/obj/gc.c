/* gc.c -- the cycle collector, and the gc module's functions around it.
 *
 * Reference counting frees an object when its last reference goes; a cycle
 * (a -> b -> a) never gets there.  The collector finds the tracked objects
 * that only the objects being collected refer to, and breaks them.  It is
 * CPython's algorithm, with CPython's semantics.
 *
 * Structures
 *
 *   gen[0] (young)      gen[1]            gen[2] (old)        permanent
 *   head <-> o <-> o    head <-> o        head <-> o <-> o    head <-> o
 *   threshold 2000      threshold 10      threshold 10        (frozen: never
 *   count: objects      count: gen-0      count: gen-1         collected)
 *   of tracked types    collections       collections
 *   made minus freed    since its last    since its last
 *
 * Every tracked object is on exactly one of these lists (or on a list
 * private to the collection running), linked through the _neap_gc_t in
 * front of its header (objimpl.h).
 *
 * When collections run.  Each allocation of a tracked type's object adds
 * one to gen[0].count, and each deallocation of one takes one off, whether
 * the object is tracked at the time or not (as CPython's gc_alloc and
 * PyObject_GC_Del do; tracking and untracking leave the count alone); past
 * threshold0 (when enabled and not already collecting), the oldest
 * generation whose count passed its threshold is collected, together with
 * every younger one.  Generation 2 is skipped unless the objects that
 * generation-1 collections promoted into it since the last full collection
 * (long_lived_pending) are at least a quarter of those a full collection
 * last found alive (long_lived_total): without that rule a program that
 * keeps making long-lived objects would spend quadratic time.
 *
 * A collection of generation g:
 *   1. merge gen[0..g] into gen[g] ("young"); the next older list is "old";
 *   2. update_refs: gc_refs := refcnt, mark GC_COLLECTING;
 *   3. subtract_refs: for each reference from a young object to a young
 *      object, gc_refs -= 1.  Now gc_refs > 0 means "referred to from
 *      outside young";
 *   4. move_unreachable: whatever is reachable from an object with
 *      gc_refs > 0 stays (GC_COLLECTING cleared); the rest moves to the
 *      "unreachable" list (GC_UNREACHABLE);
 *   5. the reachable objects move to old (promotion);
 *   6. weak references to unreachable objects are cleared, all of them
 *      before any callback; the callbacks of those that are not themselves
 *      unreachable then run, object by object, each object's newest weak
 *      reference first;
 *   7. the finalizers of unreachable objects run, each once in an object's
 *      life (NEAP_OBJ_FINALIZED);
 *   8. if step 6 or 7 ran any code, steps 2-4 run again on the unreachable
 *      list alone: what a finalizer or callback made reachable again
 *      (resurrected) moves to old, alive;
 *   9. each object left gets its type's clear (or, under DEBUG_SAVEALL,
 *      goes to the garbage list); objects still alive after all the clears
 *      are uncollectable: they go to the garbage list and to old.  The
 *      collection's count (its result, the statistics, the callbacks) is
 *      CPython's: the objects of this step, plus the reachable weak
 *      references that went in step 6 once their callbacks had run;
 *  10. a full collection also empties the free lists of every type, and,
 *      if it freed many objects, gives the free pages back to the OS.
 *
 * Invariant between collections: no object carries GC_COLLECTING or
 * GC_UNREACHABLE (objimpl.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obj/objimpl.h"

/* A full collection that found at least this many unreachable objects
 * ends by giving free pages back to the OS (neap_trim). */
#define GC_TRIM_AFTER 4096

typedef struct gen {
    _neap_gc_t head; /* sentinel of the circular list */
    long threshold;  /* collect when count passes it */
    long count;      /* see the drawing */
} gen_t;

typedef struct gc_callback {
    neap_gc_callback_fn fn;
    void *arg;
} gc_callback_t;

static struct gc_state {
    gen_t gen[NEAP_GC_GENERATIONS];
    _neap_gc_t permanent;        /* frozen objects */
    int enabled;                 /* automatic collection on */
    int collecting;              /* a collection is running */
    unsigned debug;              /* NEAP_GC_DEBUG_* */
    size_t long_lived_total;     /* alive after the last full collection */
    size_t long_lived_pending;   /* promoted into gen 2 since */
    neap_gc_stats_t stats[NEAP_GC_GENERATIONS];
    void **garbage;              /* gc.garbage: references */
    size_t ngarbage, garbage_cap;
    gc_callback_t *callbacks;    /* gc.callbacks */
    size_t ncallbacks, callbacks_cap;
} gc = {
    .gen = {{{&gc.gen[0].head, &gc.gen[0].head}, 2000, 0},
            {{&gc.gen[1].head, &gc.gen[1].head}, 10, 0},
            {{&gc.gen[2].head, &gc.gen[2].head}, 10, 0}},
    .permanent = {&gc.permanent, &gc.permanent},
    .enabled = 1,
};

/* ---------------------------------------------------------------------------
 * Lists.
 * ------------------------------------------------------------------------- */
static inline void list_init(_neap_gc_t *l) { l->next = l->prev = l; }
static inline int list_empty(const _neap_gc_t *l) { return l->next == l; }

static inline void list_append(_neap_gc_t *node, _neap_gc_t *list) {
    _neap_gc_t *last = list->prev;
    node->prev = last;
    node->next = list;
    last->next = node;
    list->prev = node;
}

static inline void list_remove(_neap_gc_t *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
}

static inline void list_move(_neap_gc_t *node, _neap_gc_t *list) {
    list_remove(node);
    list_append(node, list);
}

/* Appends all of from to to; from becomes empty. */
static void list_merge(_neap_gc_t *from, _neap_gc_t *to) {
    if (list_empty(from))
        return;
    _neap_gc_t *last = to->prev;
    last->next = from->next;
    from->next->prev = last;
    to->prev = from->prev;
    to->prev->next = to;
    list_init(from);
}

static size_t list_size(const _neap_gc_t *l) {
    size_t n = 0;
    for (const _neap_gc_t *g = l->next; g != l; g = g->next)
        n++;
    return n;
}

/* ---------------------------------------------------------------------------
 * Tracking (object.c calls these).
 * ------------------------------------------------------------------------- */
static void collect_generations(void);

void _neap_gc_on_alloc(void) {
    gc.gen[0].count++;
    if (neap_unlikely(gc.gen[0].count > gc.gen[0].threshold) && gc.gen[0].threshold > 0 &&
        gc.enabled && !gc.collecting)
        collect_generations();
}

void _neap_gc_uncount(void) {
    if (gc.gen[0].count > 0)
        gc.gen[0].count--;
}

void _neap_gc_link(void *o) {
    NEAP_HEAD(o)->flags |= NEAP_OBJ_TRACKED;
    list_append(AS_GC(o), &gc.gen[0].head);
}

/* Takes o off whatever list it is on. */
static void gc_untrack(neap_objhead_t *h, void *o) {
    list_remove(AS_GC(o));
    h->flags &= ~(NEAP_OBJ_TRACKED | GC_COLLECTING | GC_UNREACHABLE);
}

void neap_gc_track(void *o) {
    neap_objhead_t *h = NEAP_HEAD(o);
    if ((h->flags & NEAP_OBJ_GCTYPE) && !(h->flags & NEAP_OBJ_TRACKED))
        _neap_gc_link(o);
}

void neap_gc_untrack(void *o) {
    neap_objhead_t *h = NEAP_HEAD(o);
    if (h->flags & NEAP_OBJ_TRACKED)
        gc_untrack(h, o);
}

int neap_gc_is_tracked(const void *o) { return (NEAP_HEAD(o)->flags & NEAP_OBJ_TRACKED) != 0; }
int neap_gc_is_finalized(const void *o) {
    return (NEAP_HEAD(o)->flags & NEAP_OBJ_FINALIZED) != 0;
}

/* ---------------------------------------------------------------------------
 * The collection: steps 2-4.
 * ------------------------------------------------------------------------- */
/* Step 2; returns the objects on the list. */
static size_t update_refs(_neap_gc_t *list) {
    size_t n = 0;
    for (_neap_gc_t *g = list->next; g != list; g = g->next) {
        neap_objhead_t *h = GC_HEAD(g);
        h->gc_refs = h->refcnt;
        h->flags |= GC_COLLECTING;
        n++;
    }
    return n;
}

static int visit_decref(void *o, void *arg) {
    (void)arg;
    neap_objhead_t *h = NEAP_HEAD(o);
    if (h->flags & GC_COLLECTING)
        h->gc_refs--;
    return 0;
}

/* Step 3. */
static void subtract_refs(_neap_gc_t *list) {
    for (_neap_gc_t *g = list->next; g != list; g = g->next) {
        neap_objhead_t *h = GC_HEAD(g);
        h->type->traverse(FROM_GC(g), visit_decref, NULL);
    }
}

/* Objects on the unreachable list that will make the collection run code:
 * they have weak references, or a finalizer yet to run. */
static inline int runs_code(const neap_objhead_t *h) {
    return (h->flags & NEAP_OBJ_WEAKREFS) ||
           (h->type->finalize != NULL && !(h->flags & NEAP_OBJ_FINALIZED));
}

typedef struct moved {
    _neap_gc_t *young; /* the list reachable objects go back to */
    size_t count;     /* on the unreachable list */
    size_t run_code;  /* of them, those for which runs_code() holds */
} moved_t;

/* A reachable object refers to o.  If o is in the set being examined: when
 * it was moved to unreachable already, it comes back to the end of young
 * (and will be scanned there); when it is still ahead in young with
 * gc_refs 0, gc_refs 1 tells the scan it is reachable. */
static int visit_reachable(void *o, void *arg) {
    neap_objhead_t *h = NEAP_HEAD(o);
    if (!(h->flags & GC_COLLECTING))
        return 0; /* outside the set, or known reachable already */
    if (h->flags & GC_UNREACHABLE) {
        moved_t *mv = arg;
        h->flags &= ~GC_UNREACHABLE;
        h->gc_refs = 1;
        mv->count--;
        mv->run_code -= runs_code(h);
        list_move(AS_GC(o), mv->young);
    } else if (h->gc_refs == 0) {
        h->gc_refs = 1;
    }
    return 0;
}

/* Step 4: one pass over young, which grows at its end as objects come back
 * from unreachable.  Counts what is left on unreachable in *mv. */
static void move_unreachable(_neap_gc_t *young, _neap_gc_t *unreachable, moved_t *mv) {
    _neap_gc_t *g = young->next;
    mv->young = young;
    mv->count = mv->run_code = 0;
    while (g != young) {
        neap_objhead_t *h = GC_HEAD(g);
        if (h->gc_refs > 0) {
            h->flags &= ~GC_COLLECTING;
            h->type->traverse(FROM_GC(g), visit_reachable, mv);
            g = g->next;
        } else {
            _neap_gc_t *next = g->next;
            h->flags |= GC_UNREACHABLE;
            mv->count++;
            mv->run_code += runs_code(h);
            list_move(g, unreachable);
            g = next;
        }
    }
}

static void clear_collect_flags(_neap_gc_t *list) {
    for (_neap_gc_t *g = list->next; g != list; g = g->next)
        GC_HEAD(g)->flags &= ~(GC_COLLECTING | GC_UNREACHABLE);
}

/* ---------------------------------------------------------------------------
 * Garbage list and debug output.
 * ------------------------------------------------------------------------- */
static int garbage_append(void *o) {
    void **g = _neap_array_grow(gc.garbage, &gc.garbage_cap, gc.ngarbage + 1, sizeof *g, 64);
    if (g == NULL)
        return -1;
    gc.garbage = g;
    neap_incref(o);
    gc.garbage[gc.ngarbage++] = o;
    return 0;
}

static void describe(const void *o, char *buf, size_t size) {
    neap_type_t *t = neap_obj_type(o);
    char r[96] = "";
    if (t->repr != NULL)
        t->repr(o, r, sizeof r);
    snprintf(buf, size, "<%s %p%s%s>", t->name, o, r[0] ? " " : "", r);
}

static void debug_object(const char *what, const void *o) {
    char buf[160];
    describe(o, buf, sizeof buf);
    fprintf(stderr, "gc: %s %s\n", what, buf);
}

/* ---------------------------------------------------------------------------
 * Steps 6-9.
 * ------------------------------------------------------------------------- */
/* Step 6; returns 1 if a callback ran.  *freed counts the weak references
 * (reachable ones, not on the unreachable list) that went when the
 * collector let go of them after their callback: something, often the
 * callback itself (a weak-valued table dropping its entry), released every
 * other reference meanwhile.  They count as collected, as in CPython. */
static int handle_weakrefs(_neap_gc_t *unreachable, size_t *freed) {
    void **todo = NULL;
    size_t n = 0, cap = 0;
    *freed = 0;
    for (_neap_gc_t *g = unreachable->next; g != unreachable; g = g->next) {
        if (GC_HEAD(g)->flags & NEAP_OBJ_WEAKREFS)
            (void)_neap_weakrefs_clear_for_gc(FROM_GC(g), &todo, &n, &cap);
    }
    for (size_t i = 0; i < n; i++) {
        _neap_weakref_call(todo[i]);
        /* ours the last reference: the decref frees it (a weak reference
         * has no finalizer that could keep it) */
        *freed += neap_refcnt(todo[i]) == 1;
        neap_decref(todo[i]);
    }
    neap_free(todo);
    return n > 0;
}

/* Step 7; returns 1 if a finalizer ran. */
static int finalize_garbage(_neap_gc_t *unreachable) {
    _neap_gc_t seen;
    int ran = 0;
    list_init(&seen);
    while (!list_empty(unreachable)) {
        _neap_gc_t *g = unreachable->next;
        neap_objhead_t *h = GC_HEAD(g);
        list_move(g, &seen);
        if (h->type->finalize != NULL && !(h->flags & NEAP_OBJ_FINALIZED)) {
            void *o = FROM_GC(g);
            h->flags |= NEAP_OBJ_FINALIZED;
            neap_incref(o);
            h->type->finalize(o);
            neap_decref(o); /* may free it: it leaves `seen` then */
            ran = 1;
        }
    }
    list_merge(&seen, unreachable);
    return ran;
}

/* Step 8: what is reachable again from outside the unreachable list moves
 * to old; the rest moves to still.  Returns the objects on still. */
static size_t handle_resurrected(_neap_gc_t *unreachable, _neap_gc_t *still, _neap_gc_t *old) {
    for (_neap_gc_t *g = unreachable->next; g != unreachable; g = g->next)
        GC_HEAD(g)->flags &= ~GC_UNREACHABLE;
    moved_t mv;
    update_refs(unreachable);
    subtract_refs(unreachable);
    move_unreachable(unreachable, still, &mv);
    clear_collect_flags(unreachable);
    list_merge(unreachable, old);
    return mv.count;
}

/* Step 9; returns the uncollectable objects. */
static size_t delete_garbage(_neap_gc_t *collectable, _neap_gc_t *old) {
    _neap_gc_t survivors;
    size_t n = 0;
    int saveall = (gc.debug & NEAP_GC_DEBUG_SAVEALL) != 0;
    list_init(&survivors);
    while (!list_empty(collectable)) {
        _neap_gc_t *g = collectable->next;
        neap_objhead_t *h = GC_HEAD(g);
        void *o = FROM_GC(g);
        if (saveall) {
            (void)garbage_append(o); /* without memory, it just survives */
        } else if (h->type->clear != NULL) {
            neap_incref(o);
            h->type->clear(o);
            neap_decref(o);
        }
        if (collectable->next == g)
            list_move(g, &survivors); /* still alive */
    }
    /* what no clear broke */
    for (_neap_gc_t *g = survivors.next; g != &survivors; g = g->next) {
        GC_HEAD(g)->flags &= ~(GC_COLLECTING | GC_UNREACHABLE);
        if (saveall)
            continue;
        n++;
        if (gc.debug & NEAP_GC_DEBUG_UNCOLLECTABLE)
            debug_object("uncollectable", FROM_GC(g));
        (void)garbage_append(FROM_GC(g));
    }
    list_merge(&survivors, old);
    return n;
}

/* ---------------------------------------------------------------------------
 * One collection.
 * ------------------------------------------------------------------------- */
/* Collects generations 0..generation; returns the unreachable objects, as
 * CPython counts them since 3.9: those still unreachable once the weak
 * reference callbacks and the finalizers have run, which the clears then
 * take on, plus the reachable weak references freed after their
 * callbacks.  Objects a finalizer or a callback resurrected, and objects
 * freed by refcount while they ran, are not counted: the first are alive,
 * the second went the ordinary way.  *uncollectable: those of the counted
 * left alive after the clears. */
static size_t collect(int generation, size_t *uncollectable) {
    uint64_t t0 = _neap_os_clock_ns();
    if (gc.debug & NEAP_GC_DEBUG_STATS) {
        fprintf(stderr, "gc: collecting generation %d...\n", generation);
        fprintf(stderr, "gc: objects in each generation: %zu %zu %zu\n",
                list_size(&gc.gen[0].head), list_size(&gc.gen[1].head),
                list_size(&gc.gen[2].head));
        fprintf(stderr, "gc: objects in permanent generation: %zu\n", list_size(&gc.permanent));
    }
    if (generation + 1 < NEAP_GC_GENERATIONS)
        gc.gen[generation + 1].count++;
    for (int i = 0; i <= generation; i++)
        gc.gen[i].count = 0;
    for (int i = 0; i < generation; i++)
        list_merge(&gc.gen[i].head, &gc.gen[generation].head);
    _neap_gc_t *young = &gc.gen[generation].head;
    _neap_gc_t *old =
        generation + 1 < NEAP_GC_GENERATIONS ? &gc.gen[generation + 1].head : young;

    _neap_gc_t unreachable;
    list_init(&unreachable);
    moved_t mv;
    size_t nyoung = update_refs(young);
    subtract_refs(young);
    move_unreachable(young, &unreachable, &mv);
    size_t m = mv.count;

    /* step 5: promotion (young's objects all have GC_COLLECTING cleared) */
    if (young != old) {
        if (generation == NEAP_GC_GENERATIONS - 2)
            gc.long_lived_pending += nyoung - m;
        list_merge(young, old);
    } else {
        gc.long_lived_pending = 0;
        gc.long_lived_total = nyoung - m;
    }

    if (gc.debug & NEAP_GC_DEBUG_COLLECTABLE) {
        for (_neap_gc_t *g = unreachable.next; g != &unreachable; g = g->next)
            debug_object("collectable", FROM_GC(g));
    }

    /* total: see above; m stays the number found, which the generations'
     * bookkeeping (step 5) and the trim below go by */
    size_t n = 0, total = m;
    if (m > 0 && mv.run_code == 0) {
        /* no weak reference and no finalizer: nothing can come back */
        n = delete_garbage(&unreachable, old);
    } else if (m > 0) {
        size_t wr_freed;
        int ran = handle_weakrefs(&unreachable, &wr_freed);
        ran |= finalize_garbage(&unreachable);
        if (ran) {
            _neap_gc_t still;
            list_init(&still);
            total = handle_resurrected(&unreachable, &still, old) + wr_freed;
            n = delete_garbage(&still, old);
        } else {
            /* no code ran: the list is as found */
            n = delete_garbage(&unreachable, old);
        }
    }

    if (generation == NEAP_GC_GENERATIONS - 1) {
        neap_freelists_clear();
        if (m >= GC_TRIM_AFTER)
            neap_trim();
    }

    double dt = (double)(_neap_os_clock_ns() - t0) / 1e9;
    neap_gc_stats_t *st = &gc.stats[generation];
    st->collections++;
    st->collected += total - n;
    st->uncollectable += n;
    st->duration += dt;
    if (gc.debug & NEAP_GC_DEBUG_STATS)
        fprintf(stderr, "gc: done, %zu unreachable, %zu uncollectable, %.4fs elapsed\n", total,
                n, dt);
    *uncollectable = n;
    return total;
}

static void invoke_callbacks(const char *phase, int generation, size_t collected,
                             size_t uncollectable) {
    neap_gc_info_t info = {generation, collected, uncollectable};
    /* by index: a callback may remove itself or add another */
    for (size_t i = 0; i < gc.ncallbacks; i++)
        gc.callbacks[i].fn(phase, &info, gc.callbacks[i].arg);
}

/* The caller has set gc.collecting. */
static size_t collect_with_callback(int generation) {
    size_t n = 0;
    invoke_callbacks("start", generation, 0, 0);
    size_t m = collect(generation, &n);
    invoke_callbacks("stop", generation, m - n, n);
    return m;
}

static void collect_generations(void) {
    for (int i = NEAP_GC_GENERATIONS - 1; i >= 0; i--) {
        if (gc.gen[i].count > gc.gen[i].threshold) {
            if (i == NEAP_GC_GENERATIONS - 1 &&
                gc.long_lived_pending < gc.long_lived_total / 4)
                continue;
            gc.collecting = 1;
            collect_with_callback(i);
            gc.collecting = 0;
            return;
        }
    }
}

/* ---------------------------------------------------------------------------
 * The gc module.
 * ------------------------------------------------------------------------- */
intptr_t neap_gc_collect(int generation) {
    if (generation < 0 || generation >= NEAP_GC_GENERATIONS) {
        errno = EINVAL;
        return -1;
    }
    if (gc.collecting) {
        errno = EBUSY;
        return -1;
    }
    gc.collecting = 1;
    size_t m = collect_with_callback(generation);
    gc.collecting = 0;
    return (intptr_t)m;
}

void neap_gc_enable(void) { gc.enabled = 1; }
void neap_gc_disable(void) { gc.enabled = 0; }
int neap_gc_isenabled(void) { return gc.enabled; }

void neap_gc_get_count(long out[NEAP_GC_GENERATIONS]) {
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++)
        out[i] = gc.gen[i].count;
}

void neap_gc_get_threshold(long out[NEAP_GC_GENERATIONS]) {
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++)
        out[i] = gc.gen[i].threshold;
}

int neap_gc_set_threshold(long threshold0, long threshold1, long threshold2) {
    long t[NEAP_GC_GENERATIONS] = {threshold0, threshold1, threshold2};
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++) {
        if (t[i] > INT_MAX) {
            errno = EINVAL;
            return -1;
        }
    }
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++) {
        if (t[i] >= 0)
            gc.gen[i].threshold = t[i];
    }
    return 0;
}

void neap_gc_freeze(void) {
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++) {
        list_merge(&gc.gen[i].head, &gc.permanent);
        gc.gen[i].count = 0;
    }
}

void neap_gc_unfreeze(void) {
    list_merge(&gc.permanent, &gc.gen[NEAP_GC_GENERATIONS - 1].head);
}

size_t neap_gc_get_freeze_count(void) { return list_size(&gc.permanent); }

void neap_gc_get_stats(neap_gc_stats_t out[NEAP_GC_GENERATIONS]) {
    memcpy(out, gc.stats, sizeof gc.stats);
}

void neap_gc_set_debug(unsigned flags) { gc.debug = flags; }
unsigned neap_gc_get_debug(void) { return gc.debug; }

int neap_gc_callbacks_add(neap_gc_callback_fn fn, void *arg) {
    gc_callback_t *c =
        _neap_array_grow(gc.callbacks, &gc.callbacks_cap, gc.ncallbacks + 1, sizeof *c, 4);
    if (c == NULL)
        return -1; /* errno is ENOMEM */
    gc.callbacks = c;
    gc.callbacks[gc.ncallbacks].fn = fn;
    gc.callbacks[gc.ncallbacks].arg = arg;
    gc.ncallbacks++;
    return 0;
}

int neap_gc_callbacks_remove(neap_gc_callback_fn fn, void *arg) {
    for (size_t i = 0; i < gc.ncallbacks; i++) {
        if (gc.callbacks[i].fn == fn && gc.callbacks[i].arg == arg) {
            memmove(&gc.callbacks[i], &gc.callbacks[i + 1],
                    (gc.ncallbacks - i - 1) * sizeof gc.callbacks[0]);
            gc.ncallbacks--;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Object arrays handed to the caller.
 * ------------------------------------------------------------------------- */
typedef struct builder {
    neap_objarray_t *a;
    size_t cap;
} builder_t;

static int builder_push(builder_t *b, void *o) {
    neap_objarray_t *a = b->a;
    void **items = _neap_array_grow(a->items, &b->cap, a->count + 1, sizeof *items, 16);
    if (items == NULL)
        return -1;
    a->items = items;
    neap_incref(o);
    a->items[a->count++] = o;
    return 0;
}

static void builder_start(builder_t *b, neap_objarray_t *out) {
    out->items = NULL;
    out->count = 0;
    b->a = out;
    b->cap = 0;
}

static int builder_fail(neap_objarray_t *out) {
    neap_objarray_release(out);
    errno = ENOMEM;
    return -1;
}

void neap_objarray_release(neap_objarray_t *a) {
    void **items = a->items;
    size_t n = a->count;
    a->items = NULL;
    a->count = 0;
    for (size_t i = 0; i < n; i++)
        neap_decref(items[i]);
    neap_free(items);
}

int neap_gc_get_garbage(neap_objarray_t *out) {
    builder_t b;
    builder_start(&b, out);
    for (size_t i = 0; i < gc.ngarbage; i++) {
        if (builder_push(&b, gc.garbage[i]) != 0)
            return builder_fail(out);
    }
    return 0;
}

size_t neap_gc_clear_garbage(void) {
    void **items = gc.garbage;
    size_t n = gc.ngarbage;
    gc.garbage = NULL;
    gc.ngarbage = gc.garbage_cap = 0;
    for (size_t i = 0; i < n; i++)
        neap_decref(items[i]);
    neap_free(items);
    return n;
}

static int push_list(builder_t *b, const _neap_gc_t *list) {
    for (const _neap_gc_t *g = list->next; g != list; g = g->next) {
        if (builder_push(b, FROM_GC(g)) != 0)
            return -1;
    }
    return 0;
}

int neap_gc_get_objects(int generation, neap_objarray_t *out) {
    if (generation < -1 || generation >= NEAP_GC_GENERATIONS) {
        out->items = NULL;
        out->count = 0;
        errno = EINVAL;
        return -1;
    }
    builder_t b;
    builder_start(&b, out);
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++) {
        if ((generation == -1 || generation == i) && push_list(&b, &gc.gen[i].head) != 0)
            return builder_fail(out);
    }
    return 0;
}

/* A set of objects to look for: sorted addresses. */
typedef struct targets {
    const void **p;
    size_t n;
} targets_t;

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(const void *const *)a, y = (uintptr_t)*(const void *const *)b;
    return x < y ? -1 : x > y;
}

static int targets_has(const targets_t *t, const void *o) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)t->p[mid] < (uintptr_t)o)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && t->p[lo] == o;
}

static int targets_make(targets_t *t, void *const *objs, size_t n) {
    t->n = n;
    t->p = neap_malloc((n ? n : 1) * sizeof(void *));
    if (t->p == NULL)
        return -1;
    if (n > 0)
        memcpy(t->p, objs, n * sizeof(void *));
    qsort(t->p, n, sizeof(void *), cmp_ptr);
    return 0;
}

static int visit_find(void *o, void *arg) { return targets_has(arg, o); }

int neap_gc_get_referrers(void *const *objs, size_t n, neap_objarray_t *out) {
    builder_t b;
    targets_t t;
    builder_start(&b, out);
    if (targets_make(&t, objs, n) != 0)
        return builder_fail(out);
    for (int i = 0; i < NEAP_GC_GENERATIONS; i++) {
        const _neap_gc_t *list = &gc.gen[i].head;
        for (const _neap_gc_t *g = list->next; g != list; g = g->next) {
            void *o = FROM_GC(g);
            if (GC_HEAD(g)->type->traverse(o, visit_find, &t) != 0 && builder_push(&b, o) != 0) {
                neap_free(t.p);
                return builder_fail(out);
            }
        }
    }
    neap_free(t.p);
    return 0;
}

static int visit_push(void *o, void *arg) { return builder_push(arg, o) != 0 ? -1 : 0; }

int neap_gc_get_referents(void *const *objs, size_t n, neap_objarray_t *out) {
    builder_t b;
    builder_start(&b, out);
    for (size_t i = 0; i < n; i++) {
        neap_type_t *t = neap_obj_type(objs[i]);
        if (t->traverse != NULL && t->traverse(objs[i], visit_push, &b) != 0)
            return builder_fail(out);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * objgraph-style help.
 * ------------------------------------------------------------------------- */
static int cmp_count_desc(const void *a, const void *b) {
    const neap_typecount_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}

size_t neap_gc_count_by_type(neap_typecount_t *out, size_t max) {
    size_t n = 0;
    for (neap_type_t *t = _neap_types_next(NULL); t != NULL; t = _neap_types_next(t))
        n += t->state.live > 0;
    neap_typecount_t *all = neap_malloc((n ? n : 1) * sizeof *all);
    if (all == NULL) {
        /* no room to sort: unsorted, first come */
        size_t k = 0;
        for (neap_type_t *t = _neap_types_next(NULL); t != NULL && k < max;
             t = _neap_types_next(t)) {
            if (t->state.live > 0)
                out[k++] = (neap_typecount_t){t->name, t->state.live};
        }
        return n;
    }
    size_t k = 0;
    for (neap_type_t *t = _neap_types_next(NULL); t != NULL; t = _neap_types_next(t)) {
        if (t->state.live > 0)
            all[k++] = (neap_typecount_t){t->name, t->state.live};
    }
    qsort(all, n, sizeof *all, cmp_count_desc);
    if (n > 0 && max > 0)
        memcpy(out, all, (n < max ? n : max) * sizeof *all);
    neap_free(all);
    return n;
}

/* show_backrefs: breadth-first over referrers, one scan of every tracked
 * object per level. */
#define BACKREFS_MAX_NODES 400

typedef struct backrefs {
    FILE *out;
    targets_t frontier;   /* this level's objects */
    const void **seen;    /* every node drawn, unsorted */
    size_t nseen, seen_cap;
    const void **next;    /* the next level */
    size_t nnext, next_cap;
    void *referrer;       /* the object whose references are being visited */
    int failed;
} backrefs_t;

static int ptrs_push(const void ***v, size_t *n, size_t *cap, const void *o) {
    const void **p = _neap_array_grow(*v, cap, *n + 1, sizeof *p, 32);
    if (p == NULL)
        return -1;
    *v = p;
    (*v)[(*n)++] = o;
    return 0;
}

static int seen_has(const backrefs_t *br, const void *o) {
    for (size_t i = 0; i < br->nseen; i++) {
        if (br->seen[i] == o)
            return 1;
    }
    return 0;
}

static void dot_node(FILE *out, const void *o, int root) {
    neap_type_t *t = neap_obj_type(o);
    char r[96] = "";
    if (t->repr != NULL)
        t->repr(o, r, sizeof r);
    fprintf(out, "  o%lx [label=\"%s\\n", (unsigned long)(uintptr_t)o, t->name);
    for (const char *c = r; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', out);
        if ((unsigned char)*c >= 0x20)
            fputc(*c, out);
    }
    fprintf(out, "\\nrefcnt %ld\"%s];\n", (long)neap_refcnt(o),
            root ? ", fillcolor=\"#f4b183\"" : "");
}

static int visit_backref(void *o, void *arg) {
    backrefs_t *br = arg;
    if (!targets_has(&br->frontier, o))
        return 0;
    void *x = br->referrer;
    if (!seen_has(br, x)) {
        if (br->nseen >= BACKREFS_MAX_NODES)
            return 0;
        if (ptrs_push(&br->seen, &br->nseen, &br->seen_cap, x) != 0 ||
            ptrs_push(&br->next, &br->nnext, &br->next_cap, x) != 0) {
            br->failed = 1;
            return 1;
        }
        dot_node(br->out, x, 0);
    }
    fprintf(br->out, "  o%lx -> o%lx;\n", (unsigned long)(uintptr_t)x,
            (unsigned long)(uintptr_t)o);
    return 0;
}

int neap_gc_show_backrefs(void *obj, int max_depth, FILE *out) {
    if (out == NULL || max_depth < 0) {
        errno = EINVAL;
        return -1;
    }
    backrefs_t br = {.out = out};
    if (ptrs_push(&br.seen, &br.nseen, &br.seen_cap, obj) != 0 ||
        targets_make(&br.frontier, &obj, 1) != 0) {
        neap_free(br.seen);
        errno = ENOMEM;
        return -1;
    }
    fprintf(out, "digraph backrefs {\n  rankdir=BT;\n"
                 "  node [shape=box, style=\"filled,rounded\", fillcolor=\"#dde8f4\", "
                 "fontname=\"Helvetica\", fontsize=10];\n");
    dot_node(out, obj, 1);
    _neap_gc_t *lists[NEAP_GC_GENERATIONS + 1] = {&gc.gen[0].head, &gc.gen[1].head,
                                                   &gc.gen[2].head, &gc.permanent};
    for (int depth = 0; depth < max_depth && br.frontier.n > 0 && !br.failed; depth++) {
        br.nnext = 0;
        for (int l = 0; l < NEAP_GC_GENERATIONS + 1 && !br.failed; l++) {
            for (_neap_gc_t *g = lists[l]->next; g != lists[l] && !br.failed; g = g->next) {
                br.referrer = FROM_GC(g);
                GC_HEAD(g)->type->traverse(br.referrer, visit_backref, &br);
            }
        }
        neap_free(br.frontier.p);
        br.frontier.p = NULL;
        br.frontier.n = 0;
        if (!br.failed && targets_make(&br.frontier, (void *const *)br.next, br.nnext) != 0)
            br.failed = 1;
    }
    fprintf(out, "}\n");
    neap_free(br.frontier.p);
    neap_free(br.seen);
    neap_free(br.next);
    if (br.failed) {
        errno = ENOMEM;
        return -1;
    }
    return fflush(out) == 0 ? 0 : -1;
}

/* neap_object.h -- reference-counted objects and a generational cycle
 * collector, with the meaning of CPython's objects and of its `gc` module.
 *
 * An object is a struct of the user's, preceded by a header neap keeps:
 *
 *      tracked types only
 *    +--------------------+------------------------------+------------------+
 *    | gc links (16 B)    | neap_objhead_t (32 B)        | the user's struct|
 *    | next, prev in its  | refcnt, type, gc_refs, flags |  <- the pointer  |
 *    | generation's list  |                              |     neap returns |
 *    +--------------------+------------------------------+------------------+
 *
 * A type (neap_type_t, usually a static struct) gives a name and a size, and
 * optionally the hooks below.  A type with `traverse` is *tracked*: its
 * objects sit in the collector's generation lists and can be found in
 * cycles.
 *
 *   neap_obj_new(type)      a zeroed struct with a reference count of 1
 *   neap_incref(o)          inline, one add
 *   neap_decref(o)          inline; at zero the object goes at once:
 *                             1. finalize, if the type has one and it has not
 *                                run yet (it may resurrect the object: then
 *                                nothing below happens);
 *                             2. weak references to it are cleared and their
 *                                callbacks run;
 *                             3. the references `traverse` reports are
 *                                released (decref'd);
 *                             4. the type's `dealloc` hook runs, for what is
 *                                not a reference (buffers, descriptors);
 *                             5. the memory goes to the type's free list or
 *                                back to neap_free.
 *
 * Deep chains are released without deep recursion, whether each link goes
 * in step 3 or from a hook (a finalizer that drops the next link): past a
 * fixed depth, a tracked object whose count reached zero is queued before
 * step 1, and the outermost call takes it through steps 1-5 (CPython's
 * "trashcan").
 *
 * The collector (CPython's algorithm): three generations, collected when
 * counters pass thresholds (default 2000, 10, 10, CPython 3.13's); a
 * collection finds the objects of the generations collected that nothing
 * outside them refers to, clears the weak references to them (running the
 * callbacks of weak references that are themselves reachable), runs each
 * finalizer once (PEP 442), keeps whatever a finalizer resurrected, and
 * breaks what is left with the types' `clear`.
 *
 * THREAD MODEL.  One object graph and one collector per process, with no
 * lock of their own.  Every call in this header, the inline ones included,
 * must be made by one thread at a time: either a program uses objects from
 * one thread, or its threads take neap_obj_lock() around every use, the way
 * CPython's threads hold the GIL.  Objects may move between threads; a
 * collection runs in the thread whose allocation triggered it, and runs the
 * finalizers and callbacks there, with the lock still held.  The memory
 * underneath comes from neap_malloc, which is thread-safe on its own.
 *
 * Errors: functions that can fail return NULL or -1 and set errno (ENOMEM
 * when memory ran out, EINVAL for an argument out of range, EBUSY when a
 * collection is already running); nothing aborts on a failed allocation.
 */
#ifndef NEAP_OBJECT_H
#define NEAP_OBJECT_H

#include "neap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------- */
typedef struct neap_type neap_type_t;

/* Called by traverse for each reference held.  A non-zero result stops the
 * walk, and traverse returns it. */
typedef int (*neap_visit_fn)(void *obj, void *arg);

/* Inside a traverse function: visit p if it is not NULL, and return what
 * the visitor returned if that is not 0. */
#define NEAP_VISIT(p)                                                          \
    do {                                                                       \
        if ((p) != NULL) {                                                     \
            int neap_visit_r_ = visit((void *)(p), arg);                       \
            if (neap_visit_r_ != 0)                                            \
                return neap_visit_r_;                                          \
        }                                                                      \
    } while (0)

/* neap's bookkeeping inside a type; zero-initialise it (a static type does
 * that by itself) and never touch it. */
typedef struct neap_type_state {
    neap_type_t *next;  /* the registry of types that have made objects */
    void *freelist;     /* freed objects kept for reuse, linked through their first word */
    size_t nfree;       /* objects on freelist */
    size_t live;        /* objects made and not yet freed */
    size_t made;        /* objects made since the start */
    int registered;     /* 1 once on the registry */
} neap_type_state_t;

struct neap_type {
    const char *name;   /* for reports and the DOT graph */
    size_t size;        /* bytes of the user's struct (its fixed part) */
    size_t itemsize;    /* bytes per item of a variable-size object; 0 if fixed */
    /* Visits every object reference the object holds (NEAP_VISIT each
     * field).  Given, the type is tracked by the collector.  Called on
     * objects that are alive, and on objects whose `clear` has run. */
    int (*traverse)(void *self, neap_visit_fn visit, void *arg);
    /* Breaks the references the object holds: set each field to NULL, then
     * decref what it held (NEAP_CLEAR does both).  The collector calls it on
     * garbage cycles; a tracked type without one leaves its cycles alive
     * (they count as uncollectable). */
    void (*clear)(void *self);
    /* PEP 442 finalizer: runs at most once per object, before the object
     * goes (from neap_decref or from the collector).  It may store a new
     * reference to the object somewhere; the object then survives. */
    void (*finalize)(void *self);
    /* Releases what the object owns that is not a reference traverse
     * reports; runs just before the memory is freed, after those references
     * have been released (the fields still hold the old pointers). */
    void (*dealloc)(void *self);
    /* Writes a short description of the object (for the DOT graph and the
     * debug output) into buf; optional. */
    void (*repr)(const void *self, char *buf, size_t size);
    /* Freed objects kept for reuse, at most this many; fixed-size types
     * only.  A full collection empties the free lists. */
    size_t freelist_max;
    neap_type_state_t state; /* neap's; zero */
};

/* ---------------------------------------------------------------------------
 * Objects and reference counts.
 * ------------------------------------------------------------------------- */
/* The header before every object.  Read through the functions below. */
typedef struct neap_objhead {
    intptr_t refcnt;          /* references; the object goes at 0 */
    neap_type_t *type;        /* its type */
    intptr_t gc_refs;         /* collector scratch, valid during a collection */
    uint32_t flags;           /* NEAP_OBJ_* below */
    uint32_t nitems;          /* items of a variable-size object, saturated */
} neap_objhead_t;

#define NEAP_OBJ_TRACKED 0x1u     /* in a generation list */
#define NEAP_OBJ_FINALIZED 0x2u   /* finalize has run */
#define NEAP_OBJ_WEAKREFS 0x4u    /* weak references point at it */
#define NEAP_OBJ_INTERNED 0x8u    /* the interned string of its value */
#define NEAP_OBJ_GCTYPE 0x10u     /* allocated with gc links (type has traverse) */

#define NEAP_HEAD(o) ((neap_objhead_t *)(o) - 1)

/* A new object of `type`: zeroed, reference count 1, tracked if the type
 * has traverse.  May run a collection first (an allocation counts towards
 * generation 0).  NULL and ENOMEM when memory ran out. */
NEAP_EXPORT void *neap_obj_new(neap_type_t *type);
/* The same, with room for nitems items of type->itemsize after the fixed
 * part.  NULL and ENOMEM on overflow or when memory ran out. */
NEAP_EXPORT void *neap_obj_new_var(neap_type_t *type, size_t nitems);
/* Releases an object whose count reached zero; neap_decref calls it. */
NEAP_EXPORT void neap_obj_dealloc(void *o);

static inline void
neap_incref(void *o)
{
    NEAP_HEAD(o)->refcnt++;
}

static inline void
neap_decref(void *o)
{
    if (--NEAP_HEAD(o)->refcnt == 0)
        neap_obj_dealloc(o);
}

static inline void
neap_xincref(void *o)
{
    if (o != NULL)
        neap_incref(o);
}

static inline void
neap_xdecref(void *o)
{
    if (o != NULL)
        neap_decref(o);
}

static inline intptr_t
neap_refcnt(const void *o)
{
    return NEAP_HEAD(o)->refcnt;
}

static inline neap_type_t *
neap_obj_type(const void *o)
{
    return NEAP_HEAD(o)->type;
}

/* Set a field to NULL, then drop the reference it held (in that order, so
 * code the decref runs never sees a dangling field). */
#define NEAP_CLEAR(field)                                                      \
    do {                                                                       \
        void *neap_clear_tmp_ = (void *)(field);                               \
        (field) = NULL;                                                        \
        neap_xdecref(neap_clear_tmp_);                                         \
    } while (0)

/* The process-wide lock that plays CPython's GIL (see THREAD MODEL). */
NEAP_EXPORT void neap_obj_lock(void);
NEAP_EXPORT void neap_obj_unlock(void);

/* ---------------------------------------------------------------------------
 * Free lists per type.
 * ------------------------------------------------------------------------- */
/* Frees the objects on the type's free list; returns how many. */
NEAP_EXPORT size_t neap_type_freelist_clear(neap_type_t *type);
/* Empties the free lists of every type; returns how many objects went. */
NEAP_EXPORT size_t neap_freelists_clear(void);
/* Objects of the type alive now (made and not freed). */
NEAP_EXPORT size_t neap_type_live(const neap_type_t *type);

/* ---------------------------------------------------------------------------
 * Strings and interning.  Strings are immutable objects of neap_str_type
 * (untracked: they hold no references).  neap_intern gives one shared object
 * per distinct value; the table does not keep it alive, the last decref
 * removes it.
 * ------------------------------------------------------------------------- */
NEAP_EXPORT extern neap_type_t neap_str_type;

/* A new string object holding a copy of s[0..len) and a NUL after it. */
NEAP_EXPORT void *neap_str_new(const char *s, size_t len);
/* A new reference to the one interned string of value s[0..len). */
NEAP_EXPORT void *neap_intern(const char *s, size_t len);
NEAP_EXPORT void *neap_intern_cstr(const char *s);
/* sys.intern(str): a new reference to the interned string equal to str
 * (str itself, if it becomes the interned one). */
NEAP_EXPORT void *neap_intern_str(void *str);
NEAP_EXPORT const char *neap_str_data(const void *str);
NEAP_EXPORT size_t neap_str_len(const void *str);
NEAP_EXPORT uint64_t neap_str_hash(const void *str);
NEAP_EXPORT int neap_str_is_interned(const void *str);
/* Distinct interned strings alive now. */
NEAP_EXPORT size_t neap_intern_count(void);

/* ---------------------------------------------------------------------------
 * Weak references.  A weak reference is itself an object (tracked): it does
 * not keep its referent alive.  When the referent goes (by refcount or by
 * the collector) the weak reference is cleared, then its callback, if any,
 * runs with the weak reference and `data`; the callbacks of an object's
 * weak references run newest first, as Python's.  The collector runs a
 * callback only if the weak reference itself is still reachable, and
 * clears every weak reference to garbage before any finalizer runs.
 * ------------------------------------------------------------------------- */
NEAP_EXPORT extern neap_type_t neap_weakref_type;

typedef void (*neap_weakref_cb)(void *wr, void *data);

/* A new weak reference to obj.  data, if not NULL, must be an object: the
 * weak reference holds a strong reference to it (and reports it to the
 * collector).  NULL and ENOMEM when memory ran out. */
NEAP_EXPORT void *neap_weakref_new(void *obj, neap_weakref_cb callback, void *data);
/* A new reference to the referent, or NULL once it is gone (or queued to
 * go: its count reached zero). */
NEAP_EXPORT void *neap_weakref_get(void *wr);
/* Weak references pointing at obj. */
NEAP_EXPORT size_t neap_weakref_count(const void *obj);

/* ---------------------------------------------------------------------------
 * The gc module.  neap_gc_<name> has the meaning of Python's gc.<name>.
 * ------------------------------------------------------------------------- */
#define NEAP_GC_GENERATIONS 3

#define NEAP_GC_DEBUG_STATS 1u          /* print statistics of each collection on stderr */
#define NEAP_GC_DEBUG_COLLECTABLE 2u    /* print the collectable objects found */
#define NEAP_GC_DEBUG_UNCOLLECTABLE 4u  /* print the uncollectable objects found */
#define NEAP_GC_DEBUG_SAVEALL 32u       /* keep all garbage in the garbage list, free nothing */
#define NEAP_GC_DEBUG_LEAK                                                     \
    (NEAP_GC_DEBUG_COLLECTABLE | NEAP_GC_DEBUG_UNCOLLECTABLE | NEAP_GC_DEBUG_SAVEALL)

/* A list of objects handed to the caller, each a new reference. */
typedef struct neap_objarray {
    void **items;
    size_t count;
} neap_objarray_t;

/* Drops the references and frees the array; leaves it empty. */
NEAP_EXPORT void neap_objarray_release(neap_objarray_t *a);

/* gc.collect(generation): collects generations 0..generation and returns
 * the number of unreachable objects, counted as CPython (3.9 on) counts
 * them: those still unreachable after the weak reference callbacks and the
 * finalizers ran, collectable or not, plus the weak references (themselves
 * reachable) freed once their callbacks ran.  Objects a finalizer or a
 * callback resurrected are not counted, nor those freed by refcount while
 * they ran.  -1 and EINVAL for a generation outside 0..2, -1 and EBUSY if a
 * collection is running. */
NEAP_EXPORT intptr_t neap_gc_collect(int generation);
NEAP_EXPORT void neap_gc_enable(void);
NEAP_EXPORT void neap_gc_disable(void);
NEAP_EXPORT int neap_gc_isenabled(void);
/* The counters: allocations minus deallocations of tracked types' objects
 * (whether tracked at the time or not, as in CPython) since the last
 * generation-0 collection, then collections of the younger generation since
 * the last collection of generations 1 and 2. */
NEAP_EXPORT void neap_gc_get_count(long out[NEAP_GC_GENERATIONS]);
NEAP_EXPORT void neap_gc_get_threshold(long out[NEAP_GC_GENERATIONS]);
/* Thresholds of the three generations; 0 for threshold0 disables automatic
 * collection, a negative value keeps the current one.  -1 and EINVAL for a
 * value too large. */
NEAP_EXPORT int neap_gc_set_threshold(long threshold0, long threshold1, long threshold2);
/* Moves every tracked object to a permanent generation no collection
 * looks at; unfreeze moves them back into the oldest generation. */
NEAP_EXPORT void neap_gc_freeze(void);
NEAP_EXPORT void neap_gc_unfreeze(void);
NEAP_EXPORT size_t neap_gc_get_freeze_count(void);
/* Tracked objects of one generation (0..2), or of all of them (-1). */
NEAP_EXPORT int neap_gc_get_objects(int generation, neap_objarray_t *out);
/* Tracked objects that refer to any of objs[0..n); frozen objects are not
 * searched (as in CPython). */
NEAP_EXPORT int neap_gc_get_referrers(void *const *objs, size_t n, neap_objarray_t *out);
/* Objects that any of objs[0..n) refer to (by their types' traverse). */
NEAP_EXPORT int neap_gc_get_referents(void *const *objs, size_t n, neap_objarray_t *out);
NEAP_EXPORT int neap_gc_is_tracked(const void *o);
NEAP_EXPORT int neap_gc_is_finalized(const void *o);
/* Starts or stops tracking an object of a tracked type (CPython untracks
 * containers that cannot be in a cycle). */
NEAP_EXPORT void neap_gc_track(void *o);
NEAP_EXPORT void neap_gc_untrack(void *o);

typedef struct neap_gc_stats {
    size_t collections;   /* collections of this generation */
    size_t collected;     /* objects they counted (see neap_gc_collect) and
                             freed (or, under DEBUG_SAVEALL, moved to the
                             garbage list) */
    size_t uncollectable; /* objects they counted and could not free */
    double duration;      /* seconds spent in them, in total */
} neap_gc_stats_t;

NEAP_EXPORT void neap_gc_get_stats(neap_gc_stats_t out[NEAP_GC_GENERATIONS]);
NEAP_EXPORT void neap_gc_set_debug(unsigned flags);
NEAP_EXPORT unsigned neap_gc_get_debug(void);

/* gc.garbage: objects found unreachable that were not freed (all of them
 * under NEAP_GC_DEBUG_SAVEALL, else those no `clear` could break).  The list
 * holds a reference to each. */
NEAP_EXPORT int neap_gc_get_garbage(neap_objarray_t *out);
/* Empties gc.garbage (del gc.garbage[:]); returns how many it held. */
NEAP_EXPORT size_t neap_gc_clear_garbage(void);

/* gc.callbacks: called with phase "start" and "stop" around every
 * collection.  At "start", collected and uncollectable are 0; at "stop"
 * they are as in neap_gc_stats_t. */
typedef struct neap_gc_info {
    int generation;
    size_t collected;
    size_t uncollectable;
} neap_gc_info_t;

typedef void (*neap_gc_callback_fn)(const char *phase, const neap_gc_info_t *info, void *arg);

/* Appends a callback; -1 and ENOMEM if there is no room. */
NEAP_EXPORT int neap_gc_callbacks_add(neap_gc_callback_fn fn, void *arg);
/* Removes the first callback with this fn and arg; -1 if there is none. */
NEAP_EXPORT int neap_gc_callbacks_remove(neap_gc_callback_fn fn, void *arg);

/* ---------------------------------------------------------------------------
 * objgraph-style help.
 * ------------------------------------------------------------------------- */
typedef struct neap_typecount {
    const char *name; /* the type's name */
    size_t count;     /* its objects alive */
} neap_typecount_t;

/* Live objects per type, most numerous first; fills at most max entries
 * and returns the number of types with live objects. */
NEAP_EXPORT size_t neap_gc_count_by_type(neap_typecount_t *out, size_t max);
/* Writes a DOT graph of what refers to obj, up to max_depth levels of
 * referrers back (objgraph.show_backrefs).  -1 and errno on error. */
NEAP_EXPORT int neap_gc_show_backrefs(void *obj, int max_depth, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* NEAP_OBJECT_H */

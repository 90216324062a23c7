/* object.c -- objects: creation, reference counts reaching zero, free lists
 * per type, strings and their interning, weak references.
 *
 * The layer above the allocator: memory comes from neap_malloc and goes
 * back through neap_free.  The collector (gc.c) is told about every object
 * of a tracked type made or freed, tracked at the time or not.
 *
 * Life of an object
 *
 *   neap_obj_new ----> alive (refcnt >= 1) --decref to 0--> neap_obj_dealloc
 *                        ^                                      |
 *                        |                                      | 0. nested too deep (a
 *                        |                                      |    tracked type): waits
 *                        |                                      |    in the trashcan
 *                        |  finalize stored a reference         | 1. finalize (once)
 *                        +--------------------------------------+ 2. weak refs cleared,
 *                                                               |    callbacks
 *                                                               | 3. untracked
 *                                                               | 4. references released
 *                                                               |    (traverse + decref)
 *                                                               | 5. dealloc hook
 *                                                               v
 *                                         type free list (if room) or neap_free
 *                                         (a tracked type's object, tracked or
 *                                         not: generation 0's count - 1)
 *
 * The trashcan: a long chain would recurse once per link, through step 4
 * (releasing the next link) or through any code steps 1, 2 and 5 run
 * (a finalizer that drops the next link).  Past DEALLOC_DEPTH nested
 * neap_obj_dealloc calls, a tracked type's object whose count reached zero
 * is pushed on the `deferred` stack before step 1, with its count still 0,
 * linked through its gc links (it is untracked first; OBJ_TRASHED_TRACKED
 * remembers it was tracked), and the outermost neap_obj_dealloc runs steps
 * 1-5 for each object of the stack before it returns, tracked again as it
 * was.  While it waits no collection sees it (it is on no list), and a weak
 * reference to it reads as dead (neap_weakref_get: its count is 0).
 *
 * Free lists: a type with freelist_max > 0 (and no itemsize) keeps up to
 * that many freed blocks, linked through their first word; neap_obj_new of
 * the type takes one back before asking neap_malloc.
 *
 * Weak references: a weakref object holds its referent without a count.
 * The referents with weak references are in a hash table (util/hashtab.h:
 * open addressing, linear probing, deletion by backward shift; memory from
 * neap_calloc) mapping the object to the first weakref of a doubly linked
 * list, newest first (the order Python runs their callbacks in, by refcount
 * and in a collection); the object carries NEAP_OBJ_WEAKREFS while it has
 * an entry.
 *
 * Interning: a hash set of the interned string objects (the same table).  The set holds no reference: a string's dealloc removes
 * it.  Invariant: a string has NEAP_OBJ_INTERNED iff it is in the set, and
 * no two strings in the set have the same value.
 *
 * Thread model: see neap_object.h.  Nothing here locks; neap_obj_lock is a
 * plain mutex offered to callers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "obj/objimpl.h"
#include "util/hashtab.h"

/* ---------------------------------------------------------------------------
 * The caller's lock.
 * ------------------------------------------------------------------------- */
static pthread_mutex_t obj_mutex = PTHREAD_MUTEX_INITIALIZER;

void neap_obj_lock(void) { pthread_mutex_lock(&obj_mutex); }
void neap_obj_unlock(void) { pthread_mutex_unlock(&obj_mutex); }

/* ---------------------------------------------------------------------------
 * The registry of types (for free-list clearing and counts by type).
 * ------------------------------------------------------------------------- */
static neap_type_t *types_first;

static void type_register(neap_type_t *type) {
    type->state.registered = 1;
    type->state.next = types_first;
    types_first = type;
}

neap_type_t *_neap_types_next(neap_type_t *t) {
    return t == NULL ? types_first : t->state.next;
}

/* ---------------------------------------------------------------------------
 * Creation.
 * ------------------------------------------------------------------------- */
static size_t head_bytes(const neap_type_t *type) {
    return sizeof(neap_objhead_t) + (type->traverse != NULL ? sizeof(_neap_gc_t) : 0);
}

static void *obj_make(neap_type_t *type, size_t body, size_t nitems) {
    size_t head = head_bytes(type);
    if (body > SIZE_MAX - head) {
        errno = ENOMEM;
        return NULL;
    }
    if (type->traverse != NULL)
        _neap_gc_on_alloc(); /* may collect; before the new object exists */
    char *block;
    if (type->state.freelist != NULL && nitems == 0) {
        block = type->state.freelist;
        type->state.freelist = *(void **)block;
        type->state.nfree--;
    } else {
        block = neap_malloc(head + body);
        if (block == NULL) {
            if (type->traverse != NULL)
                _neap_gc_uncount();
            return NULL; /* errno is ENOMEM */
        }
    }
    memset(block, 0, head + body);
    neap_objhead_t *h = (neap_objhead_t *)(block + head - sizeof(neap_objhead_t));
    h->refcnt = 1;
    h->type = type;
    h->nitems = nitems > UINT32_MAX ? UINT32_MAX : (uint32_t)nitems;
    if (!type->state.registered)
        type_register(type);
    type->state.live++;
    type->state.made++;
    void *o = FROM_HEAD(h);
    if (type->traverse != NULL) {
        h->flags = NEAP_OBJ_GCTYPE;
        _neap_gc_link(o);
    }
    return o;
}

void *neap_obj_new(neap_type_t *type) {
    return obj_make(type, type->size, 0);
}

void *neap_obj_new_var(neap_type_t *type, size_t nitems) {
    if (type->itemsize != 0 && nitems > (SIZE_MAX - type->size) / type->itemsize) {
        errno = ENOMEM;
        return NULL;
    }
    return obj_make(type, type->size + nitems * type->itemsize, nitems);
}

/* ---------------------------------------------------------------------------
 * Deallocation.
 * ------------------------------------------------------------------------- */
#define DEALLOC_DEPTH 64

static int dealloc_depth;        /* nested neap_obj_dealloc calls */
static _neap_gc_t *deferred;     /* objects in the trashcan, linked by next */

static void weakrefs_clear(void *o);
static void weakref_unlink(void *w);

static int visit_release(void *child, void *arg) {
    (void)arg;
    neap_decref(child);
    return 0;
}

/* Steps 4 and 5: release what o holds, and its memory. */
static void object_release(void *o) {
    neap_objhead_t *h = NEAP_HEAD(o);
    neap_type_t *type = h->type;
    if (type == &neap_weakref_type)
        weakref_unlink(o); /* before anything can run that might clear its referent */
    if (type->traverse != NULL)
        type->traverse(o, visit_release, NULL);
    if (type->dealloc != NULL)
        type->dealloc(o);
    void *block = type->traverse != NULL ? (void *)AS_GC(o) : (void *)h;
    type->state.live--;
    if (type->traverse != NULL)
        _neap_gc_uncount(); /* tracked or not, as it was counted when made */
    if (type->state.nfree < type->freelist_max && type->itemsize == 0) {
        *(void **)block = type->state.freelist;
        type->state.freelist = block;
        type->state.nfree++;
    } else {
        neap_free(block);
    }
}

/* Steps 1 to 5 for o, whose count reached zero. */
static void object_dealloc(void *o) {
    neap_objhead_t *h = NEAP_HEAD(o);
    neap_type_t *type = h->type;
    if (type->finalize != NULL && !(h->flags & NEAP_OBJ_FINALIZED)) {
        h->flags |= NEAP_OBJ_FINALIZED;
        h->refcnt = 1; /* alive while its finalizer runs */
        type->finalize(o);
        if (--h->refcnt != 0)
            return; /* resurrected */
    }
    if (h->flags & NEAP_OBJ_WEAKREFS) {
        h->refcnt = 1; /* the callbacks may look at the world; o stays valid */
        weakrefs_clear(o);
        if (--h->refcnt != 0)
            return;
    }
    if (h->flags & NEAP_OBJ_TRACKED)
        neap_gc_untrack(o); /* generation 0's count drops when the memory goes */
    object_release(o);
}

/* Puts o, a tracked type's object whose count reached zero, in the
 * trashcan.  Its gc links chain the stack, so it leaves its generation (or
 * the collection's list) first; it remembers whether it was tracked. */
static void trashcan_push(void *o) {
    neap_objhead_t *h = NEAP_HEAD(o);
    if (h->flags & NEAP_OBJ_TRACKED) {
        neap_gc_untrack(o); /* not a deallocation yet: gen 0's count stays */
        h->flags |= OBJ_TRASHED_TRACKED;
    }
    _neap_gc_t *g = AS_GC(o);
    g->next = deferred;
    deferred = g;
}

/* Takes the last object out of the trashcan, tracked again if it was: its
 * finalizer and weak reference callbacks have yet to run, and see it as
 * they would have, and if they resurrect it the collector must see it. */
static void *trashcan_pop(void) {
    _neap_gc_t *g = deferred;
    deferred = g->next;
    void *o = FROM_GC(g);
    neap_objhead_t *h = NEAP_HEAD(o);
    if (h->flags & OBJ_TRASHED_TRACKED) {
        h->flags &= ~OBJ_TRASHED_TRACKED;
        _neap_gc_link(o);
    }
    return o;
}

void neap_obj_dealloc(void *o) {
    /* The guard covers all five steps: a finalizer, a weak reference
     * callback or a dealloc hook that drops the next link of a chain
     * recurses just as step 4 does.  An untracked type's object has no
     * links to wait with; it goes now, but counts as a level. */
    if (dealloc_depth >= DEALLOC_DEPTH && (NEAP_HEAD(o)->flags & NEAP_OBJ_GCTYPE)) {
        trashcan_push(o);
        return;
    }
    dealloc_depth++;
    object_dealloc(o);
    if (dealloc_depth == 1) {
        while (deferred != NULL)
            object_dealloc(trashcan_pop());
    }
    dealloc_depth--;
}

/* ---------------------------------------------------------------------------
 * Free lists.
 * ------------------------------------------------------------------------- */
size_t neap_type_freelist_clear(neap_type_t *type) {
    size_t n = 0;
    while (type->state.freelist != NULL) {
        void *block = type->state.freelist;
        type->state.freelist = *(void **)block;
        neap_free(block);
        n++;
    }
    type->state.nfree = 0;
    return n;
}

size_t neap_freelists_clear(void) {
    size_t n = 0;
    for (neap_type_t *t = types_first; t != NULL; t = t->state.next)
        n += neap_type_freelist_clear(t);
    return n;
}

size_t neap_type_live(const neap_type_t *type) { return type->state.live; }

/* ---------------------------------------------------------------------------
 * The two hash tables (util/hashtab.h): the hash of a pointer, the memory.
 * ------------------------------------------------------------------------- */
static uint64_t hash_ptr(const void *p) { return neap_hash_mix((uint64_t)(uintptr_t)p); }

/* Both tables' memory: neap_calloc (zeroed), back by neap_free. */
static void *obj_table_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return neap_calloc(1, bytes);
}

static void obj_table_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    (void)bytes;
    neap_free(p);
}

static const neap_hashtab_alloc_t obj_tables = {obj_table_alloc, obj_table_free, NULL};

/* ---------------------------------------------------------------------------
 * Strings and interning.
 * ------------------------------------------------------------------------- */
typedef struct str {
    uint64_t hash; /* of the bytes, computed once */
    size_t len;    /* bytes, not counting the NUL after them */
    char data[];   /* len bytes and a NUL */
} str_t;

/* the interned strings: entries are the objects, looked up by value; at
 * most 3/4 full */
#define INTERN_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define INTERN_HASH(e) ((*(e))->hash)
NEAP_HASHTAB_DEFINE(interntab, str_t *, INTERN_KEY, INTERN_HASH, 64, 3);
static interntab_t interned = NEAP_HASHTAB_INIT(&obj_tables);

static uint64_t hash_bytes(const char *s, size_t n) {
    /* FNV-1a, then a final mix so that the low bits index well */
    uint64_t x = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= (unsigned char)s[i];
        x *= 0x100000001b3ULL;
    }
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static void str_dealloc(void *self) {
    if (!(NEAP_HEAD(self)->flags & NEAP_OBJ_INTERNED))
        return;
    str_t *s = self;
    interntab_remove(&interned, interntab_find(&interned, (uint64_t)(uintptr_t)s, s->hash));
}

static void str_repr(const void *self, char *buf, size_t size) {
    const str_t *s = self;
    snprintf(buf, size, "'%.*s'%s", s->len > 40 ? 40 : (int)s->len, s->data,
             s->len > 40 ? "..." : "");
}

neap_type_t neap_str_type = {
    .name = "str",
    .size = sizeof(str_t),
    .itemsize = 1,
    .dealloc = str_dealloc,
    .repr = str_repr,
};

void *neap_str_new(const char *s, size_t len) {
    if (len == SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    str_t *o = neap_obj_new_var(&neap_str_type, len + 1);
    if (o == NULL)
        return NULL;
    if (len > 0)
        memcpy(o->data, s, len);
    o->data[len] = '\0';
    o->len = len;
    o->hash = hash_bytes(s, len);
    return o;
}

typedef struct str_key {
    const char *data;
    size_t len;
    uint64_t hash;
} str_key_t;

static inline int intern_match(str_t *const *e, const void *key) {
    const str_key_t *k = key;
    return (*e)->hash == k->hash && (*e)->len == k->len && memcmp((*e)->data, k->data, k->len) == 0;
}

/* The slot holding the interned string of value s, or the empty slot where
 * it would go; NULL and ENOMEM when the table cannot make room. */
static str_t **intern_find(const char *s, size_t len, uint64_t hash) {
    if (interntab_reserve(&interned, 1) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    str_key_t key = {s, len, hash};
    return interntab_probe(&interned, hash, intern_match, &key);
}

void *neap_intern(const char *s, size_t len) {
    str_t **slot = intern_find(s, len, hash_bytes(s, len));
    if (slot == NULL)
        return NULL;
    if (*slot != NULL) {
        neap_incref(*slot);
        return *slot;
    }
    str_t *o = neap_str_new(s, len);
    if (o == NULL)
        return NULL;
    NEAP_HEAD(o)->flags |= NEAP_OBJ_INTERNED;
    interntab_put(&interned, slot, &o);
    return o;
}

void *neap_intern_cstr(const char *s) { return neap_intern(s, strlen(s)); }

void *neap_intern_str(void *str) {
    str_t *s = str;
    if (NEAP_HEAD(s)->flags & NEAP_OBJ_INTERNED) {
        neap_incref(s);
        return s;
    }
    str_t **slot = intern_find(s->data, s->len, s->hash);
    if (slot == NULL)
        return NULL;
    if (*slot == NULL) {
        NEAP_HEAD(s)->flags |= NEAP_OBJ_INTERNED;
        interntab_put(&interned, slot, &s);
    }
    neap_incref(*slot);
    return *slot;
}

const char *neap_str_data(const void *str) { return ((const str_t *)str)->data; }
size_t neap_str_len(const void *str) { return ((const str_t *)str)->len; }
uint64_t neap_str_hash(const void *str) { return ((const str_t *)str)->hash; }
int neap_str_is_interned(const void *str) {
    return (NEAP_HEAD(str)->flags & NEAP_OBJ_INTERNED) != 0;
}
size_t neap_intern_count(void) { return interntab_size(&interned); }

/* ---------------------------------------------------------------------------
 * Weak references.
 * ------------------------------------------------------------------------- */
typedef struct weakref {
    void *referent;          /* NULL once cleared; no reference held */
    neap_weakref_cb callback; /* may be NULL */
    void *data;              /* a reference, or NULL */
    struct weakref *next;    /* the referent's list */
    struct weakref *prev;
} weakref_t;

/* The referents: slot -> first weakref of the referent's list.  The table
 * stores weakref_t pointers, looked up by their referent (its hash is the
 * entry's: an entry may be replaced by another weakref of the same
 * referent in place); at most 3/4 full. */
#define WREF_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define WREF_HASH(e) hash_ptr((*(e))->referent)
NEAP_HASHTAB_DEFINE(wreftab, weakref_t *, WREF_KEY, WREF_HASH, 64, 3);
static wreftab_t wtable = NEAP_HASHTAB_INIT(&obj_tables);

static inline int wref_match(weakref_t *const *e, const void *referent) {
    return (*e)->referent == referent;
}

/* The slot of o's list, or the empty slot where it would go (the table has
 * room: an entry of o, or a reserve since). */
static weakref_t **wtable_find(const void *o) {
    return wreftab_probe(&wtable, hash_ptr(o), wref_match, o);
}

/* Unlinks wr from its referent's list (and the table, if it was the last). */
static void weakref_unlink(void *w) {
    weakref_t *wr = w;
    void *o = wr->referent;
    if (o == NULL)
        return;
    weakref_t **slot = wtable_find(o);
    if (*slot == wr) {
        if (wr->next != NULL) {
            *slot = wr->next; /* same referent, same home */
            wr->next->prev = NULL;
        } else {
            wreftab_remove(&wtable, slot);
            NEAP_HEAD(o)->flags &= ~NEAP_OBJ_WEAKREFS;
        }
    } else {
        wr->prev->next = wr->next;
        if (wr->next != NULL)
            wr->next->prev = wr->prev;
    }
    wr->referent = NULL;
    wr->next = wr->prev = NULL;
}

static int weakref_traverse(void *self, neap_visit_fn visit, void *arg) {
    weakref_t *wr = self;
    NEAP_VISIT(wr->data);
    return 0;
}

static void weakref_clear(void *self) {
    weakref_t *wr = self;
    weakref_unlink(wr);
    wr->callback = NULL;
    NEAP_CLEAR(wr->data);
}

static void weakref_dealloc(void *self) {
    weakref_t *wr = self;
    weakref_unlink(wr); /* data was released by traverse */
}

static void weakref_repr(const void *self, char *buf, size_t size) {
    const weakref_t *wr = self;
    if (wr->referent == NULL)
        snprintf(buf, size, "dead");
    else
        snprintf(buf, size, "to %s at %p", neap_obj_type(wr->referent)->name, wr->referent);
}

neap_type_t neap_weakref_type = {
    .name = "weakref",
    .size = sizeof(weakref_t),
    .traverse = weakref_traverse,
    .clear = weakref_clear,
    .dealloc = weakref_dealloc,
    .repr = weakref_repr,
};

void *neap_weakref_new(void *obj, neap_weakref_cb callback, void *data) {
    weakref_t *wr = neap_obj_new(&neap_weakref_type);
    if (wr == NULL)
        return NULL;
    /* the allocation may have collected (and run callbacks that made or
     * dropped weak references); obj is held by the caller */
    if (wreftab_reserve(&wtable, 1) != 0) {
        neap_decref(wr);
        errno = ENOMEM;
        return NULL;
    }
    wr->callback = callback;
    wr->data = data;
    neap_xincref(data);
    weakref_t **slot = wtable_find(obj);
    weakref_t *first = *slot;
    wr->referent = obj;
    if (first != NULL) {
        /* the newest goes first: callbacks run in list order, and Python
         * runs them from the most recently made weak reference back */
        wr->next = first;
        first->prev = wr;
        *slot = wr; /* same referent, same home */
    } else {
        wreftab_put(&wtable, slot, &wr);
        NEAP_HEAD(obj)->flags |= NEAP_OBJ_WEAKREFS;
    }
    return wr;
}

void *neap_weakref_get(void *w) {
    weakref_t *wr = w;
    /* a referent whose count is 0 waits in the trashcan to go: a reference
     * handed out now would outlive it */
    if (wr->referent == NULL || NEAP_HEAD(wr->referent)->refcnt == 0)
        return NULL;
    neap_incref(wr->referent);
    return wr->referent;
}

size_t neap_weakref_count(const void *obj) {
    if (!(NEAP_HEAD(obj)->flags & NEAP_OBJ_WEAKREFS))
        return 0;
    size_t n = 0;
    for (weakref_t *wr = *wtable_find(obj); wr != NULL; wr = wr->next)
        n++;
    return n;
}

/* Detaches o's whole list from the table: each weakref's referent becomes
 * NULL.  Returns the first weakref (the list stays linked by next). */
static weakref_t *weakrefs_detach(void *o) {
    weakref_t **slot = wtable_find(o);
    weakref_t *first = *slot;
    wreftab_remove(&wtable, slot);
    NEAP_HEAD(o)->flags &= ~NEAP_OBJ_WEAKREFS;
    for (weakref_t *wr = first; wr != NULL; wr = wr->next)
        wr->referent = NULL;
    return first;
}

void _neap_weakref_call(void *w) {
    weakref_t *wr = w;
    if (wr->callback != NULL)
        wr->callback(wr, wr->data);
}

/* o is dying by its count: every weak reference to it is cleared first,
 * then the callbacks run, newest weak reference first (list order). */
static void weakrefs_clear(void *o) {
    weakref_t *wr = weakrefs_detach(o);
    /* keep every weakref alive while callbacks run: a callback may drop the
     * last reference to another weakref of the list.  A weakref whose count
     * is 0 already waits in the trashcan: a reference to it would free it
     * a second time; it only loses its referent (its own deallocation then
     * finds it detached), and gets no callback, being on its way out
     * (nothing else can reach it, so its count stays 0 meanwhile) */
    for (weakref_t *w = wr; w != NULL; w = w->next) {
        if (NEAP_HEAD(w)->refcnt > 0)
            neap_incref(w);
    }
    while (wr != NULL) {
        weakref_t *next = wr->next;
        wr->next = wr->prev = NULL;
        if (NEAP_HEAD(wr)->refcnt > 0) {
            _neap_weakref_call(wr);
            neap_decref(wr);
        }
        wr = next;
    }
}

int _neap_weakrefs_clear_for_gc(void *o, void ***todo, size_t *n, size_t *cap) {
    int rc = 0;
    weakref_t *wr = weakrefs_detach(o);
    while (wr != NULL) {
        weakref_t *next = wr->next;
        wr->next = wr->prev = NULL;
        /* (a count of 0: in the trashcan; see weakrefs_clear) */
        if (wr->callback != NULL && !(NEAP_HEAD(wr)->flags & GC_UNREACHABLE) &&
            NEAP_HEAD(wr)->refcnt > 0) {
            void **t = _neap_array_grow(*todo, cap, *n + 1, sizeof *t, 16);
            if (t == NULL) {
                rc = -1;
                wr = next;
                continue;
            }
            *todo = t;
            neap_incref(wr);
            (*todo)[(*n)++] = wr;
        }
        wr = next;
    }
    return rc;
}

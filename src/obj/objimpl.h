/* objimpl.h -- what object.c and gc.c share (the layer above the allocator;
 * see neap_object.h for the public side and the thread model).
 *
 * A tracked object's memory block:
 *
 *   block (neap_malloc)
 *   +------------------+-----------------------------+--------------------+
 *   | _neap_gc_t       | neap_objhead_t              | user struct        |
 *   | next | prev      | refcnt type gc_refs flags n | ...                |
 *   +------------------+-----------------------------+--------------------+
 *   ^ AS_GC(o)         ^ NEAP_HEAD(o)                ^ o
 *
 * An untracked type's block starts at the neap_objhead_t.
 *
 * Invariants
 *   - NEAP_OBJ_GCTYPE set  <=>  type->traverse != NULL  <=>  the block has
 *     gc links.
 *   - NEAP_OBJ_TRACKED set  <=>  the object is on exactly one list: a
 *     generation's, the permanent generation's, or a list private to the
 *     collection running.
 *   - An object in object.c's trashcan (count 0, deallocation deferred) is
 *     untracked: its gc links chain the trashcan's stack.
 *   - Outside a collection no object carries GC_COLLECTING or
 *     GC_UNREACHABLE, and gc_refs is meaningless.
 *   - During a collection GC_COLLECTING marks the objects of the
 *     generations being collected that are not yet known reachable, and
 *     GC_UNREACHABLE those moved (perhaps tentatively) to the unreachable
 *     list.
 */
#ifndef NEAP_OBJIMPL_H
#define NEAP_OBJIMPL_H

#include "neap_object.h"
#include "core/internal.h"

typedef struct _neap_gc {
    struct _neap_gc *next; /* circular list of a generation, or a collection's private list */
    struct _neap_gc *prev;
} _neap_gc_t;

/* flags private to the collector and object.c, next to the public
 * NEAP_OBJ_* ones */
#define GC_COLLECTING 0x100u /* in the generations being collected, not yet known reachable */
#define GC_UNREACHABLE 0x200u /* on the collection's unreachable list */
#define OBJ_TRASHED_TRACKED 0x400u /* in object.c's trashcan, and was tracked before */

#define AS_GC(o) ((_neap_gc_t *)NEAP_HEAD(o) - 1)
#define GC_HEAD(g) ((neap_objhead_t *)((_neap_gc_t *)(g) + 1))
#define FROM_GC(g) ((void *)(GC_HEAD(g) + 1))
#define FROM_HEAD(h) ((void *)((neap_objhead_t *)(h) + 1))

/* --- gc.c: called by object.c ------------------------------------------ */
/* A tracked type's object is about to be made: counts it towards
 * generation 0 and may run a collection. */
NEAP_INTERNAL void _neap_gc_on_alloc(void);
/* ... could not be made after all, or is freed (tracked or not: the count
 * is of objects made, less those freed): uncounts it. */
NEAP_INTERNAL void _neap_gc_uncount(void);
/* Puts o on generation 0 (it counts already). */
NEAP_INTERNAL void _neap_gc_link(void *o);

/* --- object.c: called by gc.c ------------------------------------------ */
/* Clears the weak references to o, which the collector found unreachable:
 * each is removed from o's list and its referent set to NULL; those with a
 * callback that are not themselves GC_UNREACHABLE (nor in the trashcan:
 * count 0) get an extra reference and are appended to *todo, newest first
 * (grown with neap_realloc; on failure the callback is dropped, the
 * reference too).
 * Returns -1 if some callback was dropped for lack of memory. */
NEAP_INTERNAL int _neap_weakrefs_clear_for_gc(void *o, void ***todo, size_t *n, size_t *cap);
/* Runs the callback of wr (referent already cleared). */
NEAP_INTERNAL void _neap_weakref_call(void *wr);
/* Iterates over the registry of types: returns the next type after t
 * (NULL: the first). */
NEAP_INTERNAL neap_type_t *_neap_types_next(neap_type_t *t);

#endif /* NEAP_OBJIMPL_H */

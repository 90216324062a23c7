/* minipy.h -- a tiny object system in the spirit of CPython's, built on
 * neap's objects (neap_object.h).
 *
 * Four types.  `str` is neap's own (neap_str_type, interned through
 * neap_intern); the other three are defined here:
 *
 *   int   untracked (holds no references); values -5..256 come from a cache
 *         of shared objects, like CPython's small ints
 *   list  tracked; a growable array of references
 *   dict  tracked; an open-addressing hash table, str keys -> any values
 *
 * Object layouts (the struct is what neap_obj_new returns; neap's header and,
 * for tracked types, the collector's links sit in front of it):
 *
 *   mp_list_t                         neap_malloc'd array, cap slots
 *   +-------+-----+-----+            +------+------+------+- - - - - -+
 *   | items | len | cap |  items --> | ref0 | ref1 | ref2 |  (unused)  |
 *   +-------+-----+-----+            +------+------+------+- - - - - -+
 *                                     <------ len ------->
 *                                     <------------- cap ------------>
 *
 *   mp_dict_t                                neap_calloc'd table, mask+1 slots
 *   +-------+------+------+--------+         +-----------+-----------+-----+
 *   | table | mask | used | filled |  -----> | hash      | hash      |     |
 *   +-------+------+------+--------+         | key (str) | DUMMY     | ... |
 *                                            | value     | NULL      |     |
 *                                            +-----------+-----------+-----+
 *                                              live slot   tombstone
 *
 *   A slot is empty (key NULL), live (key a str, value an object) or a
 *   tombstone (key MP_DICT_DUMMY, value NULL: a deleted entry that probe
 *   sequences walk past).  A key's probe sequence starts at hash & mask and
 *   steps by 1, 2, 3, ... (triangular numbers), which visits every slot of a
 *   power-of-two table once.
 *
 * Invariants
 *   list:  0 <= len <= cap; items[0..len) are references, never NULL;
 *          items == NULL if and only if cap == 0.
 *   dict:  the table has mask+1 slots, a power of two >= MP_DICT_MINSIZE, or
 *          is NULL with mask == used == filled == 0;
 *          used = live slots, filled = live + tombstones;
 *          filled * 3 < (mask + 1) * 2, so every probe meets an empty slot;
 *          a key appears in at most one live slot.
 *   both:  traverse reports exactly the references the object holds (the
 *          list's items, the dict's keys and values), because neap releases
 *          those when the object goes; `dealloc` then frees only the array.
 *          `clear` detaches the array first, leaving a valid empty object,
 *          and only then drops the references.
 *
 * Reference conventions (CPython's): *_new return a new reference or NULL
 * with errno set; setters take their own references to what they store (the
 * caller keeps its own); getters return borrowed references.
 */
#ifndef MINIPY_H
#define MINIPY_H

#include <stdint.h>
#include <stdio.h>

#include "neap_object.h"

/* --- int ------------------------------------------------------------------ */
typedef struct mp_int {
    long value;             /* the value; never changes */
} mp_int_t;

#define MP_SMALLINT_MIN (-5) /* the cached range, as in CPython */
#define MP_SMALLINT_MAX 256

extern neap_type_t mp_int_type;

/* An int object of value v (a shared one if v is in the cached range). */
void *mp_int_new(long v);
long mp_int_value(const void *o);

/* --- list ----------------------------------------------------------------- */
typedef struct mp_list {
    void **items;           /* cap slots; items[0..len) hold references */
    size_t len;             /* items in use */
    size_t cap;             /* slots allocated */
} mp_list_t;

extern neap_type_t mp_list_type;

void *mp_list_new(void);
/* Appends a new reference to item; -1 and ENOMEM if the array cannot grow. */
int mp_list_append(void *list, void *item);
/* Borrowed reference to item i, or NULL and EINVAL if i >= len. */
void *mp_list_get(const void *list, size_t i);
/* Replaces item i with a new reference to item; -1 and EINVAL if i >= len. */
int mp_list_set(void *list, size_t i, void *item);
size_t mp_list_len(const void *list);

/* --- dict ----------------------------------------------------------------- */
typedef struct mp_dict_entry {
    uint64_t hash;          /* neap_str_hash of key, valid in a live slot */
    void *key;              /* NULL (empty), MP_DICT_DUMMY (deleted) or a str */
    void *value;            /* the value of a live slot, else NULL */
} mp_dict_entry_t;

typedef struct mp_dict {
    mp_dict_entry_t *table; /* mask + 1 slots, or NULL */
    size_t mask;            /* slots - 1 (0 without a table) */
    size_t used;            /* live slots */
    size_t filled;          /* live slots + tombstones */
} mp_dict_t;

#define MP_DICT_MINSIZE 8

extern neap_type_t mp_dict_type;

void *mp_dict_new(void);
/* d[key] = value; key must be a str (else -1 and EINVAL); -1 and ENOMEM if
 * the table cannot grow. */
int mp_dict_set(void *dict, void *key, void *value);
/* The same with a C string key, interned first. */
int mp_dict_set_cstr(void *dict, const char *key, void *value);
/* Borrowed reference to d[key], or NULL and ENOENT. */
void *mp_dict_get(const void *dict, const void *key);
void *mp_dict_get_cstr(const void *dict, const char *key);
/* del d[key]; -1 and ENOENT if key is absent. */
int mp_dict_del(void *dict, const void *key);
size_t mp_dict_len(const void *dict);
/* Iteration: start with *pos = 0; each call gives the next live entry
 * (borrowed) and returns 1, or returns 0 at the end. */
int mp_dict_next(const void *dict, size_t *pos, void **key, void **value);

/* --- the rest ------------------------------------------------------------- */
/* Writes Python's repr of o: 42, 'abc', [1, [...]], {'k': {...}}; a
 * container already being printed shows as [...] or {...}. */
void mp_print(FILE *out, const void *o);
/* One line: the type's repr hook, or "<name at address>". */
void mp_describe(const void *o, char *buf, size_t size);
/* Drops the small-int cache (call before checking that every int is gone). */
void mp_fini(void);

#endif /* MINIPY_H */

/* objects.c -- minipy's types: int, list, dict, and the printer.
 *
 * The layouts and invariants are drawn in minipy.h.  What neap does for us
 * when an object's count reaches zero (neap_object.h): it releases every
 * reference the type's traverse reports, then calls the type's dealloc.  So
 * traverse must report all of them (str keys and ints too, though they are
 * untracked), and dealloc frees only the arrays.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "minipy.h"

/* ===========================================================================
 * int
 * ======================================================================== */

/* The shared small ints; each slot holds one reference of the cache's own,
 * made on first use and dropped by mp_fini. */
static mp_int_t *mp_small_ints[MP_SMALLINT_MAX - MP_SMALLINT_MIN + 1];

static void int_repr(const void *self, char *buf, size_t size) {
    snprintf(buf, size, "int %ld", ((const mp_int_t *)self)->value);
}

neap_type_t mp_int_type = {
    .name = "int",
    .size = sizeof(mp_int_t),
    .repr = int_repr,
    .freelist_max = 32,
};

void *mp_int_new(long v) {
    int cached = v >= MP_SMALLINT_MIN && v <= MP_SMALLINT_MAX;
    mp_int_t *o;

    if (cached && mp_small_ints[v - MP_SMALLINT_MIN] != NULL) {
        o = mp_small_ints[v - MP_SMALLINT_MIN];
        neap_incref(o);
        return o;
    }
    o = neap_obj_new(&mp_int_type);
    if (o == NULL)
        return NULL;
    o->value = v;
    if (cached) {
        neap_incref(o); /* the cache's reference */
        mp_small_ints[v - MP_SMALLINT_MIN] = o;
    }
    return o;
}

long mp_int_value(const void *o) {
    assert(neap_obj_type(o) == &mp_int_type);
    return ((const mp_int_t *)o)->value;
}

void mp_fini(void) {
    for (size_t i = 0; i < sizeof mp_small_ints / sizeof mp_small_ints[0]; i++)
        NEAP_CLEAR(mp_small_ints[i]);
}

/* ===========================================================================
 * list
 * ======================================================================== */

static int list_traverse(void *self, neap_visit_fn visit, void *arg) {
    mp_list_t *l = self;
    for (size_t i = 0; i < l->len; i++)
        NEAP_VISIT(l->items[i]);
    return 0;
}

/* Detach the array, leaving a valid empty list, then drop the items: code a
 * decref runs (a finalizer, a weak reference callback) may look at the list
 * and must find it consistent. */
static void list_clear(void *self) {
    mp_list_t *l = self;
    void **items = l->items;
    size_t n = l->len;

    l->items = NULL;
    l->len = 0;
    l->cap = 0;
    for (size_t i = 0; i < n; i++)
        neap_decref(items[i]);
    neap_free(items);
}

/* neap has already released the items (through traverse). */
static void list_dealloc(void *self) {
    neap_free(((mp_list_t *)self)->items);
}

static void list_repr(const void *self, char *buf, size_t size) {
    snprintf(buf, size, "list len=%zu", ((const mp_list_t *)self)->len);
}

neap_type_t mp_list_type = {
    .name = "list",
    .size = sizeof(mp_list_t),
    .traverse = list_traverse,
    .clear = list_clear,
    .dealloc = list_dealloc,
    .repr = list_repr,
    .freelist_max = 8,
};

void *mp_list_new(void) {
    return neap_obj_new(&mp_list_type);
}

int mp_list_append(void *list, void *item) {
    mp_list_t *l = list;

    assert(neap_obj_type(list) == &mp_list_type && item != NULL);
    if (l->len == l->cap) {
        size_t ncap = l->cap != 0 ? l->cap * 2 : 4;
        void **items = neap_reallocarray(l->items, ncap, sizeof *items);
        if (items == NULL) {
            errno = ENOMEM;
            return -1;
        }
        l->items = items;
        l->cap = ncap;
    }
    neap_incref(item);
    l->items[l->len++] = item;
    return 0;
}

void *mp_list_get(const void *list, size_t i) {
    const mp_list_t *l = list;

    assert(neap_obj_type(list) == &mp_list_type);
    if (i >= l->len) {
        errno = EINVAL;
        return NULL;
    }
    return l->items[i];
}

int mp_list_set(void *list, size_t i, void *item) {
    mp_list_t *l = list;
    void *old;

    assert(neap_obj_type(list) == &mp_list_type && item != NULL);
    if (i >= l->len) {
        errno = EINVAL;
        return -1;
    }
    old = l->items[i];
    neap_incref(item);
    l->items[i] = item; /* store first: the decref may run code */
    neap_decref(old);
    return 0;
}

size_t mp_list_len(const void *list) {
    assert(neap_obj_type(list) == &mp_list_type);
    return ((const mp_list_t *)list)->len;
}

/* ===========================================================================
 * dict
 * ======================================================================== */

static char mp_dict_dummy_mark;
#define MP_DICT_DUMMY ((void *)&mp_dict_dummy_mark) /* a tombstone's key */

#define MP_DICT_LIVE(e) ((e)->key != NULL && (e)->key != MP_DICT_DUMMY)

static int dict_traverse(void *self, neap_visit_fn visit, void *arg) {
    mp_dict_t *d = self;
    if (d->table == NULL)
        return 0;
    for (size_t i = 0; i <= d->mask; i++) {
        mp_dict_entry_t *e = &d->table[i];
        if (MP_DICT_LIVE(e)) {
            NEAP_VISIT(e->key);
            NEAP_VISIT(e->value);
        }
    }
    return 0;
}

/* Same order as list_clear: detach, then drop. */
static void dict_clear(void *self) {
    mp_dict_t *d = self;
    mp_dict_entry_t *table = d->table;
    size_t size = table != NULL ? d->mask + 1 : 0;

    d->table = NULL;
    d->mask = 0;
    d->used = 0;
    d->filled = 0;
    for (size_t i = 0; i < size; i++) {
        if (MP_DICT_LIVE(&table[i])) {
            neap_decref(table[i].key);
            neap_decref(table[i].value);
        }
    }
    neap_free(table);
}

static void dict_dealloc(void *self) {
    neap_free(((mp_dict_t *)self)->table);
}

/* "dict name='root' len=3" when the dict has a str under 'name'.  Looks the
 * key up by its bytes: a repr hook must not allocate. */
static void dict_repr(const void *self, char *buf, size_t size) {
    const mp_dict_t *d = self;
    const void *name = NULL;

    for (size_t i = 0; d->table != NULL && i <= d->mask; i++) {
        const mp_dict_entry_t *e = &d->table[i];
        if (MP_DICT_LIVE(e) && neap_str_len(e->key) == 4 &&
            memcmp(neap_str_data(e->key), "name", 4) == 0 &&
            neap_obj_type(e->value) == &neap_str_type) {
            name = e->value;
            break;
        }
    }
    if (name != NULL) {
        int n = neap_str_len(name) < 32 ? (int)neap_str_len(name) : 32;
        snprintf(buf, size, "dict name='%.*s' len=%zu", n, neap_str_data(name), d->used);
    } else {
        snprintf(buf, size, "dict len=%zu", d->used);
    }
}

neap_type_t mp_dict_type = {
    .name = "dict",
    .size = sizeof(mp_dict_t),
    .traverse = dict_traverse,
    .clear = dict_clear,
    .dealloc = dict_dealloc,
    .repr = dict_repr,
    .freelist_max = 8,
};

void *mp_dict_new(void) {
    return neap_obj_new(&mp_dict_type);
}

static int key_equal(const mp_dict_entry_t *e, const void *key, uint64_t hash) {
    size_t len;

    if (e->key == key)
        return 1; /* interned keys end here */
    if (e->hash != hash)
        return 0;
    len = neap_str_len(key);
    return neap_str_len(e->key) == len &&
           memcmp(neap_str_data(e->key), neap_str_data(key), len) == 0;
}

/* The slot holding key (*found = 1), or else the slot an insertion of key
 * should use: the first tombstone on its probe sequence, or the empty slot
 * that ends it.  The table must exist. */
static size_t dict_lookup(const mp_dict_t *d, const void *key, uint64_t hash, int *found) {
    size_t i = (size_t)hash & d->mask;
    size_t tomb = SIZE_MAX;

    for (size_t step = 1;; step++) {
        const mp_dict_entry_t *e = &d->table[i];
        if (e->key == NULL) {
            *found = 0;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (e->key == MP_DICT_DUMMY) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (key_equal(e, key, hash)) {
            *found = 1;
            return i;
        }
        i = (i + step) & d->mask;
    }
}

/* A new table with room for at least `room` live slots under the load
 * limit; the live entries move over, the tombstones go. */
static int dict_resize(mp_dict_t *d, size_t room) {
    size_t size = MP_DICT_MINSIZE;
    mp_dict_entry_t *table;

    while (size * 2 <= room * 3) {
        if (size > SIZE_MAX / 4) {
            errno = ENOMEM;
            return -1;
        }
        size <<= 1;
    }
    table = neap_calloc(size, sizeof *table);
    if (table == NULL)
        return -1;
    for (size_t i = 0; d->table != NULL && i <= d->mask; i++) {
        const mp_dict_entry_t *e = &d->table[i];
        if (MP_DICT_LIVE(e)) {
            size_t j = (size_t)e->hash & (size - 1);
            for (size_t step = 1; table[j].key != NULL; step++)
                j = (j + step) & (size - 1);
            table[j] = *e;
        }
    }
    neap_free(d->table);
    d->table = table;
    d->mask = size - 1;
    d->filled = d->used;
    return 0;
}

int mp_dict_set(void *dict, void *key, void *value) {
    mp_dict_t *d = dict;
    uint64_t hash;
    mp_dict_entry_t *e;
    size_t i = 0;
    int found = 0;

    assert(neap_obj_type(dict) == &mp_dict_type && value != NULL);
    if (key == NULL || neap_obj_type(key) != &neap_str_type) {
        errno = EINVAL;
        return -1;
    }
    hash = neap_str_hash(key);
    if (d->table != NULL)
        i = dict_lookup(d, key, hash, &found);
    if (found) {
        void *old = d->table[i].value;
        neap_incref(value);
        d->table[i].value = value; /* store first: the decref may run code */
        neap_decref(old);
        return 0;
    }
    /* A new key.  Reusing a tombstone does not add to `filled`; taking an
     * empty slot must keep filled * 3 < size * 2. */
    if (d->table == NULL || (d->table[i].key == NULL && (d->filled + 1) * 3 >= (d->mask + 1) * 2)) {
        if (dict_resize(d, (d->used + 1) * 2) < 0)
            return -1;
        i = dict_lookup(d, key, hash, &found);
    }
    e = &d->table[i];
    if (e->key == NULL)
        d->filled++;
    neap_incref(key);
    neap_incref(value);
    e->hash = hash;
    e->key = key;
    e->value = value;
    d->used++;
    return 0;
}

int mp_dict_set_cstr(void *dict, const char *key, void *value) {
    void *k = neap_intern_cstr(key);
    int r;

    if (k == NULL)
        return -1;
    r = mp_dict_set(dict, k, value);
    neap_decref(k);
    return r;
}

void *mp_dict_get(const void *dict, const void *key) {
    const mp_dict_t *d = dict;
    size_t i;
    int found;

    assert(neap_obj_type(dict) == &mp_dict_type);
    if (d->table == NULL || key == NULL || neap_obj_type(key) != &neap_str_type) {
        errno = ENOENT;
        return NULL;
    }
    i = dict_lookup(d, key, neap_str_hash(key), &found);
    if (!found) {
        errno = ENOENT;
        return NULL;
    }
    return d->table[i].value;
}

void *mp_dict_get_cstr(const void *dict, const char *key) {
    void *k = neap_intern_cstr(key);
    void *v;

    if (k == NULL)
        return NULL;
    v = mp_dict_get(dict, k);
    neap_decref(k); /* v stays: the dict holds it */
    return v;
}

int mp_dict_del(void *dict, const void *key) {
    mp_dict_t *d = dict;
    mp_dict_entry_t *e;
    void *old_key, *old_value;
    size_t i;
    int found;

    assert(neap_obj_type(dict) == &mp_dict_type);
    if (d->table == NULL || key == NULL || neap_obj_type(key) != &neap_str_type) {
        errno = ENOENT;
        return -1;
    }
    i = dict_lookup(d, key, neap_str_hash(key), &found);
    if (!found) {
        errno = ENOENT;
        return -1;
    }
    e = &d->table[i];
    old_key = e->key;
    old_value = e->value;
    e->key = MP_DICT_DUMMY;
    e->value = NULL;
    d->used--;
    neap_decref(old_key);
    neap_decref(old_value);
    return 0;
}

size_t mp_dict_len(const void *dict) {
    assert(neap_obj_type(dict) == &mp_dict_type);
    return ((const mp_dict_t *)dict)->used;
}

int mp_dict_next(const void *dict, size_t *pos, void **key, void **value) {
    const mp_dict_t *d = dict;

    while (d->table != NULL && *pos <= d->mask) {
        const mp_dict_entry_t *e = &d->table[(*pos)++];
        if (MP_DICT_LIVE(e)) {
            *key = e->key;
            *value = e->value;
            return 1;
        }
    }
    return 0;
}

/* ===========================================================================
 * The printer
 * ======================================================================== */

#define MP_PRINT_DEPTH 32

/* The containers being printed, outermost first (CPython's Py_ReprEnter). */
typedef struct mp_printer {
    FILE *out;
    const void *open[MP_PRINT_DEPTH];
    size_t depth;
} mp_printer_t;

void mp_describe(const void *o, char *buf, size_t size) {
    neap_type_t *t = neap_obj_type(o);

    if (t->repr != NULL)
        t->repr(o, buf, size);
    else
        snprintf(buf, size, "<%s at %p>", t->name, o);
}

static void print_str(FILE *out, const void *s) {
    const unsigned char *p = (const unsigned char *)neap_str_data(s);
    size_t n = neap_str_len(s);

    fputc('\'', out);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\'' || p[i] == '\\')
            fprintf(out, "\\%c", p[i]);
        else if (isprint(p[i]))
            fputc(p[i], out);
        else
            fprintf(out, "\\x%02x", p[i]);
    }
    fputc('\'', out);
}

static void print_obj(mp_printer_t *pr, const void *o) {
    neap_type_t *t = neap_obj_type(o);
    int is_list = t == &mp_list_type;

    if (t == &mp_int_type) {
        fprintf(pr->out, "%ld", mp_int_value(o));
        return;
    }
    if (t == &neap_str_type) {
        print_str(pr->out, o);
        return;
    }
    if (!is_list && t != &mp_dict_type) {
        char buf[96];
        mp_describe(o, buf, sizeof buf);
        fprintf(pr->out, "<%s>", buf);
        return;
    }
    for (size_t i = 0; i < pr->depth; i++) {
        if (pr->open[i] == o) {
            fputs(is_list ? "[...]" : "{...}", pr->out);
            return;
        }
    }
    if (pr->depth == MP_PRINT_DEPTH) {
        fputs("...", pr->out);
        return;
    }
    pr->open[pr->depth++] = o;
    if (is_list) {
        fputc('[', pr->out);
        for (size_t i = 0; i < mp_list_len(o); i++) {
            if (i > 0)
                fputs(", ", pr->out);
            print_obj(pr, mp_list_get(o, i));
        }
        fputc(']', pr->out);
    } else {
        void *k, *v;
        size_t pos = 0;
        int first = 1;
        fputc('{', pr->out);
        while (mp_dict_next(o, &pos, &k, &v)) {
            if (!first)
                fputs(", ", pr->out);
            first = 0;
            print_str(pr->out, k);
            fputs(": ", pr->out);
            print_obj(pr, v);
        }
        fputc('}', pr->out);
    }
    pr->depth--;
}

void mp_print(FILE *out, const void *o) {
    mp_printer_t pr = {.out = out, .depth = 0};
    print_obj(&pr, o);
}

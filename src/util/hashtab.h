/* hashtab.h -- the one hash table of neap: open addressing, linear probing,
 * deletion by backward shift, memory from an allocator its owner injects.
 *
 * src/util is the bottom-level folder of data structures: no system calls;
 * it includes only the public headers, os/os.h and the C library.  This
 * header holds everything (no .c file): a table is a set of static inline
 * functions generated for one entry type by
 *
 *   NEAP_HASHTAB_DEFINE(name, E, KEY, HASH, MIN_CAP, LOAD_QUARTERS)
 *
 *   E              the entry: any fixed-size type (a struct, a pointer),
 *                  copied by assignment
 *   KEY(const E *) the entry's key word (uint64_t).  0 marks an empty slot:
 *                  the slot arrays come zeroed from the allocator, so an
 *                  all-zero E must have key word 0 (a NULL pointer, a zero
 *                  address, a zero item number)
 *   HASH(const E *) the entry's hash (uint64_t); the low bits pick its home
 *                  slot, so they must be mixed
 *   MIN_CAP        the first capacity, a power of two
 *   LOAD_QUARTERS  the largest load, in quarters: the table doubles before
 *                  an insertion would make count * 4 > cap * LOAD_QUARTERS
 *                  (2: half full, 3: three quarters full; never 4)
 *
 * and gives, for a table `name_t *t`:
 *
 *   name_t t = NEAP_HASHTAB_INIT(&alloc)   or  name_init(t, &alloc)
 *   name_destroy(t)                   frees its memory; empty and usable
 *   name_clear(t)                     empties it, keeping its memory
 *   name_reserve(t, n)                room for n more entries: 0, or -1 when
 *                                     the allocator failed (t unchanged)
 *   name_size(t)                      entries stored
 *   -- by key word (h: the hash HASH gives an entry of that key) --
 *   name_find(t, key, h)              the first entry of key, or NULL
 *   name_find_next(t, e)              the next entry of e's key, or NULL
 *   name_add(t, &e)                   stores e, even when its key is there
 *                                     already: its slot, or NULL (no memory)
 *   name_insert(t, &e, h, &added)     the entry of e's key, stored from e if
 *                                     absent (*added 1); or NULL (no memory:
 *                                     it makes room first, so it fails even
 *                                     when the key is there)
 *   name_remove(t, slot)              removes the entry at slot
 *   -- by the caller's predicate, for keys that are not the key word (a
 *   pointer's pointee: interned stacks, strings) --
 *   name_lookup(t, h, match, ctx)     the first entry with match(e, ctx), or
 *                                     NULL
 *   name_probe(t, h, match, ctx)      the same, or else the empty slot where
 *                                     such an entry goes (after reserve)
 *   name_put(t, slot, &e)             stores e in the empty slot from probe
 *   -- everything --
 *   for (size_t pos = 0; (e = name_next(t, &pos)) != NULL;)
 *
 *   name_t:  slot[cap] (cap a power of two, or 0 before the first insertion)
 *   +----+----+----+----+----+----+----+----+
 *   | k7 | 0  | k2 | k2'| k3 | 0  | 0  | k6 |    k2' went past its home 2
 *   +----+----+----+----+----+----+----+----+    (linear probing, wrapping
 *   spare[nspare]: the entries whose key word is 0     around the end)
 *
 * Invariants
 *   - cap is 0 or a power of two >= MIN_CAP, and count * 4 <= cap *
 *     LOAD_QUARTERS < cap * 4: a slot is always empty, so every probe ends.
 *   - An entry with key word k != 0 lies in slot[], in the run of full
 *     slots that starts at its home HASH(e) & (cap - 1): no slot between
 *     its home and it is empty.  Deletion keeps this without tombstones: it
 *     shifts back each later entry of the run whose home is not in the
 *     cyclic range (hole, its slot].
 *   - The reserved key 0 is never looked up in slot[] (it would match every
 *     empty slot): the entries whose key word is 0 live in spare[], a small
 *     array searched in order, so a key taken from user data (a stack id, an
 *     address read from a file) can be any 64-bit value.  Tables whose keys
 *     are pointers to entries never reach spare[].
 *   - The same key may be stored several times (name_add); its entries are
 *     all in the run from its home, and find/find_next visit each once.
 *   - A pointer to an entry stays valid until the next insertion (which may
 *     grow the table) or removal (which may shift it).
 *
 * The injected allocator: `alloc(ctx, bytes)` returns zeroed memory or
 * NULL, `free(ctx, p, bytes)` gets the size back (munmap needs it).  Each
 * owner passes its own: tracing maps straight from the OS and counts the
 * bytes, the symbol tables map whole pages, objects and snapshots use
 * neap_calloc, the command line the C library.  A failed allocation fails
 * the call that needed it (reserve -1, add/insert NULL) and leaves the
 * table as it was.  The table takes no lock: its owner
 * does, if it shares it.
 *
 * Costs.  Every function is generated for its entry type, and the hot ones
 * are forced inline with KEY, HASH and the match predicate inlined into
 * them: a probe is a load, a compare and an increment-and-mask, with no
 * indirect call (match is passed as a function pointer but always_inline
 * makes it a constant, which the compiler inlines; only an unoptimised
 * build calls through it).  Lookups and insertions take expected
 * 1/2 (1 + 1/(1 - a)) probes when found and 1/2 (1 + 1/(1 - a)^2) when
 * not, at load a <= LOAD_QUARTERS / 4 (at 3/4: 2.5 and 8.5; at 1/2: 1.5
 * and 2.5).  Growth (cold, out of line) doubles and reinserts every entry:
 * amortised O(1) per insertion, but one insertion in a while pays O(cap)
 * -- with its owner's lock held, if any.  Memory: cap * sizeof(E), between
 * 1/LOAD and 2/LOAD times the entries' size, plus the small spare array.
 */
#ifndef NEAP_UTIL_HASHTAB_H
#define NEAP_UTIL_HASHTAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "os/os.h"

typedef struct neap_hashtab_alloc {
    void *(*alloc)(void *ctx, size_t bytes);       /* zeroed, or NULL */
    void (*free)(void *ctx, void *p, size_t bytes); /* p may not be NULL */
    void *ctx;
} neap_hashtab_alloc_t;

#define NEAP_HASHTAB_INIT(alloc_ptr) {.alloc = (alloc_ptr)}

/* A hash for a key word whose low bits alone would crowd (an address, an
 * id): its high bits folded down, multiplied, folded again (the first half
 * of MurmurHash3's finalizer), so that every bit moves the home slot. */
static inline __attribute__((unused)) uint64_t neap_hash_mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

/* hot: forced inline (the predicate passed to it is inlined as well);
 * cold: out of line, once per table type */
#define NEAP_HASHTAB_HOT static inline __attribute__((always_inline, unused))
#define NEAP_HASHTAB_COLD static __attribute__((noinline, cold, unused))

#define NEAP_HASHTAB_DEFINE(NAME, E, KEY, HASH, MIN_CAP, LOAD_QUARTERS)                             \
    _Static_assert(((MIN_CAP) & ((MIN_CAP) - 1)) == 0 && (MIN_CAP) >= 2,                            \
                   #NAME ": MIN_CAP is a power of two");                                            \
    _Static_assert((LOAD_QUARTERS) >= 1 && (LOAD_QUARTERS) <= 3,                                    \
                   #NAME ": a load of 1 to 3 quarters");                                            \
                                                                                                    \
    typedef E NAME##_entry_t;                                                                       \
    typedef struct NAME {                                                                           \
        NAME##_entry_t *slot;                 /* cap entries; key word 0: empty */                  \
        size_t cap, count;       /* count: the full slots */                                        \
        NAME##_entry_t *spare;                /* the entries of key word 0 */                       \
        size_t nspare, spare_cap;                                                                   \
        const neap_hashtab_alloc_t *alloc;                                                          \
    } NAME##_t;                                                                                     \
                                                                                                    \
    static inline __attribute__((unused)) void NAME##_init(NAME##_t *t,                             \
                                                           const neap_hashtab_alloc_t *a) {         \
        memset(t, 0, sizeof *t);                                                                    \
        t->alloc = a;                                                                               \
    }                                                                                               \
                                                                                                    \
    static inline __attribute__((unused)) void NAME##_destroy(NAME##_t *t) {                        \
        if (t->slot != NULL)                                                                        \
            t->alloc->free(t->alloc->ctx, t->slot, t->cap * sizeof(NAME##_entry_t));                \
        if (t->spare != NULL)                                                                       \
            t->alloc->free(t->alloc->ctx, t->spare, t->spare_cap * sizeof(NAME##_entry_t));         \
        NAME##_init(t, t->alloc);                                                                   \
    }                                                                                               \
                                                                                                    \
    static inline __attribute__((unused)) void NAME##_clear(NAME##_t *t) {                          \
        if (t->slot != NULL)                                                                        \
            memset(t->slot, 0, t->cap * sizeof(NAME##_entry_t));                                    \
        t->count = 0;                                                                               \
        t->nspare = 0;                                                                              \
    }                                                                                               \
                                                                                                    \
    static inline __attribute__((unused)) size_t NAME##_size(const NAME##_t *t) {                   \
        return t->count + t->nspare;                                                                \
    }                                                                                               \
                                                                                                    \
    /* doubles (from MIN_CAP) until count + n fit, and reinserts */                                 \
    NEAP_HASHTAB_COLD int NAME##_grow_(NAME##_t *t, size_t n) {                                     \
        if (n > SIZE_MAX / 8 - t->count)                                                            \
            return -1;                                                                              \
        size_t cap = t->cap ? t->cap : (size_t)(MIN_CAP);                                           \
        while ((t->count + n) * 4 > cap * (LOAD_QUARTERS)) {                                        \
            if (cap > SIZE_MAX / 4 / sizeof(NAME##_entry_t))                                        \
                return -1;                                                                          \
            cap *= 2;                                                                               \
        }                                                                                           \
        if (cap > SIZE_MAX / 2 / sizeof(NAME##_entry_t))                                            \
            return -1;                                                                              \
        NAME##_entry_t *slot = t->alloc->alloc(t->alloc->ctx, cap * sizeof(NAME##_entry_t));        \
        if (slot == NULL)                                                                           \
            return -1;                                                                              \
        size_t mask = cap - 1;                                                                      \
        for (size_t i = 0; i < t->cap; i++) {                                                       \
            const NAME##_entry_t *e = &t->slot[i];                                                  \
            if (KEY(e) == 0)                                                                        \
                continue;                                                                           \
            size_t j = (size_t)HASH(e) & mask;                                                      \
            while (KEY(&slot[j]) != 0)                                                              \
                j = (j + 1) & mask;                                                                 \
            slot[j] = *e;                                                                           \
        }                                                                                           \
        if (t->slot != NULL)                                                                        \
            t->alloc->free(t->alloc->ctx, t->slot, t->cap * sizeof(NAME##_entry_t));                \
        t->slot = slot;                                                                             \
        t->cap = cap;                                                                               \
        return 0;                                                                                   \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT int NAME##_reserve(NAME##_t *t, size_t n) {                                    \
        if (neap_unlikely((t->count + n) * 4 > t->cap * (LOAD_QUARTERS)))                           \
            return NAME##_grow_(t, n);                                                              \
        return 0;                                                                                   \
    }                                                                                               \
                                                                                                    \
    /* --- the reserved key word 0: the spare array --- */                                          \
    NEAP_HASHTAB_COLD NAME##_entry_t *NAME##_spare_add_(NAME##_t *t, const NAME##_entry_t *e) {     \
        if (t->nspare == t->spare_cap) {                                                            \
            size_t cap = t->spare_cap ? t->spare_cap * 2 : 4;                                       \
            if (cap > SIZE_MAX / 2 / sizeof(NAME##_entry_t))                                        \
                return NULL;                                                                        \
            NAME##_entry_t *v = t->alloc->alloc(t->alloc->ctx, cap * sizeof(NAME##_entry_t));       \
            if (v == NULL)                                                                          \
                return NULL;                                                                        \
            if (t->spare != NULL) {                                                                 \
                memcpy(v, t->spare, t->nspare * sizeof(NAME##_entry_t));                            \
                t->alloc->free(t->alloc->ctx, t->spare, t->spare_cap * sizeof(NAME##_entry_t));     \
            }                                                                                       \
            t->spare = v;                                                                           \
            t->spare_cap = cap;                                                                     \
        }                                                                                           \
        t->spare[t->nspare] = *e;                                                                   \
        return &t->spare[t->nspare++];                                                              \
    }                                                                                               \
                                                                                                    \
    /* --- by key word --- */                                                                       \
    NEAP_HASHTAB_HOT NAME##_entry_t *NAME##_find(const NAME##_t *t, uint64_t key, uint64_t h) {     \
        if (neap_unlikely(key == 0))                                                                \
            return t->nspare > 0 ? &t->spare[0] : NULL;                                             \
        if (t->cap == 0)                                                                            \
            return NULL;                                                                            \
        size_t mask = t->cap - 1;                                                                   \
        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {                                    \
            NAME##_entry_t *e = &t->slot[i];                                                        \
            uint64_t k = KEY(e);                                                                    \
            if (k == key)                                                                           \
                return e;                                                                           \
            if (k == 0)                                                                             \
                return NULL;                                                                        \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    static inline __attribute__((unused)) NAME##_entry_t *NAME##_find_next(const NAME##_t *t,       \
                                                              const NAME##_entry_t *e) {            \
        if (KEY(e) == 0) { /* in spare[] */                                                         \
            size_t i = (size_t)(e - t->spare) + 1;                                                  \
            return i < t->nspare ? &t->spare[i] : NULL;                                             \
        }                                                                                           \
        uint64_t key = KEY(e);                                                                      \
        size_t mask = t->cap - 1;                                                                   \
        for (size_t i = ((size_t)(e - t->slot) + 1) & mask;; i = (i + 1) & mask) {                  \
            NAME##_entry_t *x = &t->slot[i];                                                        \
            uint64_t k = KEY(x);                                                                    \
            if (k == key)                                                                           \
                return x;                                                                           \
            if (k == 0)                                                                             \
                return NULL;                                                                        \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT NAME##_entry_t *NAME##_add(NAME##_t *t, const NAME##_entry_t *e) {             \
        if (neap_unlikely(KEY(e) == 0))                                                             \
            return NAME##_spare_add_(t, e);                                                         \
        if (NAME##_reserve(t, 1) != 0)                                                              \
            return NULL;                                                                            \
        size_t mask = t->cap - 1, i = (size_t)HASH(e) & mask;                                       \
        while (KEY(&t->slot[i]) != 0)                                                               \
            i = (i + 1) & mask;                                                                     \
        t->slot[i] = *e;                                                                            \
        t->count++;                                                                                 \
        return &t->slot[i];                                                                         \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT NAME##_entry_t *NAME##_insert(NAME##_t *t, const NAME##_entry_t *e,            \
                                                   uint64_t h, int *added) {                        \
        uint64_t key = KEY(e);                                                                      \
        *added = 0;                                                                                 \
        if (neap_unlikely(key == 0)) {                                                              \
            if (t->nspare > 0)                                                                      \
                return &t->spare[0];                                                                \
            NAME##_entry_t *s = NAME##_spare_add_(t, e);                                            \
            *added = s != NULL;                                                                     \
            return s;                                                                               \
        }                                                                                           \
        if (NAME##_reserve(t, 1) != 0)                                                              \
            return NULL;                                                                            \
        size_t mask = t->cap - 1;                                                                   \
        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {                                    \
            NAME##_entry_t *x = &t->slot[i];                                                        \
            uint64_t k = KEY(x);                                                                    \
            if (k == key)                                                                           \
                return x;                                                                           \
            if (k == 0) {                                                                           \
                *x = *e;                                                                            \
                t->count++;                                                                         \
                *added = 1;                                                                         \
                return x;                                                                           \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT void NAME##_remove(NAME##_t *t, NAME##_entry_t *e) {                           \
        if (neap_unlikely(KEY(e) == 0)) { /* in spare[] */                                          \
            *e = t->spare[--t->nspare];                                                             \
            return;                                                                                 \
        }                                                                                           \
        neap_assert_internal(KEY(e) != 0 && (size_t)(e - t->slot) < t->cap);                        \
        size_t mask = t->cap - 1, hole = (size_t)(e - t->slot);                                     \
        for (size_t i = (hole + 1) & mask; KEY(&t->slot[i]) != 0; i = (i + 1) & mask) {             \
            size_t home = (size_t)HASH(&t->slot[i]) & mask;                                         \
            /* slot i moves into the hole unless its home is in (hole, i] */                        \
            if (((i - home) & mask) >= ((i - hole) & mask)) {                                       \
                t->slot[hole] = t->slot[i];                                                         \
                hole = i;                                                                           \
            }                                                                                       \
        }                                                                                           \
        memset(&t->slot[hole], 0, sizeof(NAME##_entry_t));                                          \
        t->count--;                                                                                 \
    }                                                                                               \
                                                                                                    \
    /* --- by predicate --- */                                                                      \
    NEAP_HASHTAB_HOT NAME##_entry_t *NAME##_lookup(const NAME##_t *t, uint64_t h,                   \
                                      int (*match)(const NAME##_entry_t *, const void *),           \
                                      const void *ctx) {                                            \
        if (t->cap == 0)                                                                            \
            return NULL;                                                                            \
        size_t mask = t->cap - 1;                                                                   \
        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {                                    \
            NAME##_entry_t *e = &t->slot[i];                                                        \
            if (KEY(e) == 0)                                                                        \
                return NULL;                                                                        \
            if (match(e, ctx))                                                                      \
                return e;                                                                           \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT NAME##_entry_t *NAME##_probe(NAME##_t *t, uint64_t h,                          \
                                     int (*match)(const NAME##_entry_t *, const void *),            \
                                     const void *ctx) {                                             \
        neap_assert_internal(t->cap > t->count);                                                    \
        size_t mask = t->cap - 1;                                                                   \
        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {                                    \
            NAME##_entry_t *e = &t->slot[i];                                                        \
            if (KEY(e) == 0 || match(e, ctx))                                                       \
                return e;                                                                           \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    NEAP_HASHTAB_HOT void NAME##_put(NAME##_t *t, NAME##_entry_t *slot, const NAME##_entry_t *e) {  \
        neap_assert_internal(KEY(slot) == 0 && KEY(e) != 0);                                        \
        *slot = *e;                                                                                 \
        t->count++;                                                                                 \
    }                                                                                               \
                                                                                                    \
    /* --- everything: slots in order, then the spare entries --- */                                \
    static inline __attribute__((unused)) NAME##_entry_t *NAME##_next(const NAME##_t *t, size_t *pos) { \
        for (; *pos < t->cap; (*pos)++) {                                                           \
            if (KEY(&t->slot[*pos]) != 0)                                                           \
                return &t->slot[(*pos)++];                                                          \
        }                                                                                           \
        if (*pos - t->cap < t->nspare)                                                              \
            return &t->spare[(*pos)++ - t->cap];                                                    \
        return NULL;                                                                                \
    }                                                                                               \
    _Static_assert(1, "")

#endif

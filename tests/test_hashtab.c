/* test_hashtab.c -- the one hash table (src/util/hashtab.h) (label: unit).
 *
 * Built from the header alone, with a counting allocator over the C
 * library's calloc that can be told to fail.
 *
 *   random    random add / insert / remove / find against a plain array of
 *             entries, with keys drawn from a small range so that keys
 *             repeat and clusters form, the reserved key 0 and 2^64-1
 *             among them; twice: with a mixing hash and with a hash that
 *             sends every key to 8 homes; after each step the table's
 *             invariants are checked (every entry reachable from its home,
 *             counts, load)
 *   growth    100000 distinct keys: capacity a power of two, never more
 *             than 3/4 full, every key found, all memory given back
 *   wrap      entries homed at the last slots run past the end of the
 *             table and wrap to slot 0; removing each one in turn (the
 *             first, a middle one, the last) leaves the others found
 *   reserved  key 0 stored several times lives beside the slots: found,
 *             found again with find_next, iterated, removed; 2^64-1 is a
 *             key like the others; clear empties both and keeps the
 *             memory
 *   predicate strings by value through lookup/probe/put, entries being
 *             pointers (the interning pattern)
 *   nomem     the allocator fails: reserve gives -1, add and insert NULL,
 *             for the slots and for the spare array; the table keeps its
 *             entries and works once memory comes back
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap_test.h"
#include "util/hashtab.h"

/* ---------------------------------------------------------------------------
 * The allocator: counts what is out, fails when `fail_after` reaches 0.
 * ------------------------------------------------------------------------- */
typedef struct counting {
    size_t bytes_out, blocks_out;
    long fail_after; /* < 0: never */
} counting_t;

static void *counting_alloc(void *ctx, size_t bytes) {
    counting_t *c = ctx;
    if (c->fail_after == 0)
        return NULL;
    if (c->fail_after > 0)
        c->fail_after--;
    void *p = calloc(1, bytes);
    if (p != NULL) {
        c->bytes_out += bytes;
        c->blocks_out++;
    }
    return p;
}

static void counting_free(void *ctx, void *p, size_t bytes) {
    counting_t *c = ctx;
    CHECK(p != NULL);
    CHECK(c->bytes_out >= bytes && c->blocks_out > 0);
    c->bytes_out -= bytes;
    c->blocks_out--;
    free(p);
}

static counting_t counts = {0, 0, -1};
static const neap_hashtab_alloc_t counting = {counting_alloc, counting_free, &counts};

/* ---------------------------------------------------------------------------
 * Two tables of the same entries: one with a mixing hash, one whose hash
 * has 8 values (long clusters, many wrapping around).
 * ------------------------------------------------------------------------- */
typedef struct ent {
    uint64_t key;
    uint64_t val;
} ent_t;

static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}
static uint64_t clump(uint64_t k) { return mix(k) & 7; }

#define ENT_KEY(e) ((e)->key)
#define ENT_MIX(e) mix((e)->key)
#define ENT_CLUMP(e) clump((e)->key)
NEAP_HASHTAB_DEFINE(mixtab, ent_t, ENT_KEY, ENT_MIX, 16, 3);
NEAP_HASHTAB_DEFINE(clumptab, ent_t, ENT_KEY, ENT_CLUMP, 16, 3);

/* homes set by hand: the key's top byte is its hash */
static uint64_t by_hand(uint64_t k) { return k >> 56; }
#define ENT_HAND(e) by_hand((e)->key)
NEAP_HASHTAB_DEFINE(handtab, ent_t, ENT_KEY, ENT_HAND, 16, 3);

/* The invariants, for any of the three (same layout): every full slot
 * lies in the run from its home; count is the full slots; the load. */
#define CHECK_INVARIANTS(t, hashfn)                                                       \
    do {                                                                                  \
        size_t full_ = 0;                                                                 \
        CHECK((t)->cap == 0 || ((t)->cap & ((t)->cap - 1)) == 0);                         \
        for (size_t i_ = 0; i_ < (t)->cap; i_++) {                                        \
            if ((t)->slot[i_].key == 0)                                                   \
                continue;                                                                 \
            full_++;                                                                      \
            size_t m_ = (t)->cap - 1;                                                     \
            for (size_t j_ = (size_t)hashfn((t)->slot[i_].key) & m_; j_ != i_;            \
                 j_ = (j_ + 1) & m_)                                                      \
                CHECKF((t)->slot[j_].key != 0, "slot %zu unreachable from its home", i_); \
        }                                                                                 \
        CHECK(full_ == (t)->count);                                                       \
        CHECK((t)->count * 4 <= (t)->cap * 3);                                            \
        for (size_t k_ = 0; k_ < (t)->nspare; k_++)                                       \
            CHECK((t)->spare[k_].key == 0);                                               \
    } while (0)

/* ---------------------------------------------------------------------------
 * random
 * ------------------------------------------------------------------------- */
#define REF_MAX 4096
static ent_t ref[REF_MAX];
static size_t nref;

static uint64_t rng_state = 0x243f6a8885a308d3ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* a key among 300, 0 and 2^64-1 among them */
static uint64_t random_key(void) {
    uint64_t r = rnd() % 302;
    return r == 300 ? 0 : r == 301 ? UINT64_MAX : r * 0x9e3779b97f4a7c15ULL + 1;
}

static size_t ref_count(uint64_t key) {
    size_t n = 0;
    for (size_t i = 0; i < nref; i++)
        n += ref[i].key == key;
    return n;
}

static int ref_has(uint64_t key, uint64_t val) {
    for (size_t i = 0; i < nref; i++)
        if (ref[i].key == key && ref[i].val == val)
            return 1;
    return 0;
}

static void ref_drop(uint64_t key, uint64_t val) {
    for (size_t i = 0; i < nref; i++) {
        if (ref[i].key == key && ref[i].val == val) {
            ref[i] = ref[--nref];
            return;
        }
    }
    CHECKF(0, "no reference entry %llx/%llu", (unsigned long long)key, (unsigned long long)val);
}

/* the same random walk on either table type */
#define RANDOM_WALK(NAME, hashfn)                                                           \
    do {                                                                                    \
        NAME##_t t;                                                                         \
        NAME##_init(&t, &counting);                                                         \
        nref = 0;                                                                           \
        uint64_t serial = 0;                                                                \
        for (int step = 0; step < 60000; step++) {                                          \
            uint64_t key = random_key(), h = hashfn(key);                                   \
            unsigned op = (unsigned)(rnd() % 8);                                            \
            if (nref > REF_MAX - 8)                                                         \
                op = 6; /* full reference: remove */                                        \
            if (op < 2) { /* add, a duplicate if the key is there */                       \
                ent_t e = {key, ++serial};                                                  \
                ent_t *s = NAME##_add(&t, &e);                                              \
                CHECK(s != NULL && s->key == key && s->val == serial);                      \
                ref[nref++] = e;                                                            \
            } else if (op < 4) { /* insert: the key's entry, made if absent */             \
                ent_t e = {key, ++serial};                                                  \
                int added;                                                                  \
                size_t before = ref_count(key);                                             \
                ent_t *s = NAME##_insert(&t, &e, h, &added);                                \
                CHECK(s != NULL && s->key == key);                                          \
                CHECK(added == (before == 0));                                              \
                if (added)                                                                  \
                    ref[nref++] = e;                                                        \
                else                                                                        \
                    CHECK(ref_has(key, s->val));                                            \
            } else if (op < 6) { /* find: every entry of the key, once */                  \
                size_t n = 0;                                                               \
                for (ent_t *s = NAME##_find(&t, key, h); s != NULL;                         \
                     s = NAME##_find_next(&t, s)) {                                         \
                    CHECK(s->key == key && ref_has(key, s->val));                           \
                    n++;                                                                    \
                }                                                                           \
                CHECK(n == ref_count(key));                                                 \
            } else { /* remove one entry of a key the reference holds */                   \
                if (nref == 0)                                                              \
                    continue;                                                               \
                ent_t want = ref[rnd() % nref];                                             \
                ent_t *s = NAME##_find(&t, want.key, hashfn(want.key));                     \
                while (s != NULL && s->val != want.val)                                     \
                    s = NAME##_find_next(&t, s);                                            \
                CHECK(s != NULL);                                                           \
                NAME##_remove(&t, s);                                                       \
                ref_drop(want.key, want.val);                                               \
            }                                                                               \
            CHECK(NAME##_size(&t) == nref);                                                 \
            if (step % 64 == 0 || nref < 64)                                                \
                CHECK_INVARIANTS(&t, hashfn);                                               \
        }                                                                                   \
        /* iteration visits the reference's entries, each once */                          \
        size_t n = 0, pos = 0;                                                              \
        for (ent_t *e; (e = NAME##_next(&t, &pos)) != NULL; n++)                            \
            CHECK(ref_has(e->key, e->val));                                                 \
        CHECK(n == nref);                                                                   \
        NAME##_destroy(&t);                                                                 \
        CHECK(NAME##_size(&t) == 0 && NAME##_find(&t, 1, hashfn(1)) == NULL);               \
        CHECK(counts.bytes_out == 0 && counts.blocks_out == 0);                             \
    } while (0)

static void test_random(void) {
    RANDOM_WALK(mixtab, mix);
    RANDOM_WALK(clumptab, clump);
}

/* ---------------------------------------------------------------------------
 * growth
 * ------------------------------------------------------------------------- */
static void test_growth(void) {
    mixtab_t t = NEAP_HASHTAB_INIT(&counting);
    size_t last_cap = 0, grew = 0;
    for (uint64_t k = 1; k <= 100000; k++) {
        ent_t e = {k, k * 3};
        CHECK(mixtab_add(&t, &e) != NULL);
        if (t.cap != last_cap) {
            CHECK(last_cap == 0 ? t.cap == 16 : t.cap == last_cap * 2);
            last_cap = t.cap;
            grew++;
        }
        CHECK(t.count * 4 <= t.cap * 3);
    }
    CHECK(grew >= 14);
    CHECK(counts.bytes_out == t.cap * sizeof(ent_t));
    for (uint64_t k = 1; k <= 100000; k++) {
        ent_t *e = mixtab_find(&t, k, mix(k));
        CHECK(e != NULL && e->val == k * 3 && mixtab_find_next(&t, e) == NULL);
    }
    CHECK(mixtab_find(&t, 100001, mix(100001)) == NULL);
    CHECK_INVARIANTS(&t, mix);
    /* reserve ahead: one growth to fit them all */
    mixtab_t u = NEAP_HASHTAB_INIT(&counting);
    CHECK(mixtab_reserve(&u, 1000) == 0);
    CHECK(u.cap == 2048);
    mixtab_destroy(&u);
    mixtab_destroy(&t);
    CHECK(counts.bytes_out == 0);
}

/* ---------------------------------------------------------------------------
 * wrap: homes at the table's end
 * ------------------------------------------------------------------------- */
static uint64_t hand_key(unsigned home, unsigned n) { return (uint64_t)home << 56 | (n + 1); }

static void test_wrap(void) {
    for (int victim = 0; victim < 7; victim++) {
        handtab_t t = NEAP_HASHTAB_INIT(&counting);
        CHECK(handtab_reserve(&t, 1) == 0 && t.cap == 16);
        /* slots 13..15 and 0..3: homes 13, 13, 14, 15, 15, 0, 2 */
        static const unsigned homes[7] = {13, 13, 14, 15, 15, 0, 2};
        uint64_t keys[7];
        for (int i = 0; i < 7; i++) {
            keys[i] = hand_key(homes[i], (unsigned)i);
            ent_t e = {keys[i], (uint64_t)i};
            CHECK(handtab_add(&t, &e) != NULL);
        }
        CHECK(t.cap == 16);
        for (int i = 0; i < 7; i++)
            CHECKF(t.slot[(13 + i) % 16].key == keys[i], "entry %d at slot %d", i, (13 + i) % 16);
        CHECK_INVARIANTS(&t, by_hand);
        ent_t *v = handtab_find(&t, keys[victim], by_hand(keys[victim]));
        CHECK(v != NULL && v->val == (uint64_t)victim);
        handtab_remove(&t, v);
        CHECK_INVARIANTS(&t, by_hand);
        CHECK(t.count == 6);
        for (int i = 0; i < 7; i++) {
            ent_t *e = handtab_find(&t, keys[i], by_hand(keys[i]));
            if (i == victim)
                CHECK(e == NULL);
            else
                CHECKF(e != NULL && e->val == (uint64_t)i, "victim %d, entry %d", victim, i);
        }
        /* the run is now one shorter: slot 3 (the last) is empty */
        CHECK(t.slot[3].key == 0);
        /* empty the rest, in an order that walks around the end */
        for (int i = 6; i >= 0; i--) {
            if (i == victim)
                continue;
            ent_t *e = handtab_find(&t, keys[i], by_hand(keys[i]));
            CHECK(e != NULL);
            handtab_remove(&t, e);
            CHECK_INVARIANTS(&t, by_hand);
        }
        CHECK(t.count == 0);
        for (size_t i = 0; i < t.cap; i++)
            CHECK(t.slot[i].key == 0 && t.slot[i].val == 0);
        handtab_destroy(&t);
    }
    CHECK(counts.bytes_out == 0);
}

/* ---------------------------------------------------------------------------
 * reserved: the key 0
 * ------------------------------------------------------------------------- */
static void test_reserved(void) {
    mixtab_t t = NEAP_HASHTAB_INIT(&counting);
    CHECK(mixtab_find(&t, 0, mix(0)) == NULL);
    for (uint64_t v = 1; v <= 10; v++) {
        ent_t e = {0, v};
        ent_t *s = mixtab_add(&t, &e);
        CHECK(s != NULL && s->key == 0 && s->val == v);
    }
    ent_t top = {UINT64_MAX, 99};
    CHECK(mixtab_add(&t, &top) != NULL);
    CHECK(t.count == 1 && mixtab_size(&t) == 11);
    /* the slots hold no entry of key 0 */
    for (size_t i = 0; i < t.cap; i++)
        CHECK(t.slot[i].key == 0 ? t.slot[i].val == 0 : t.slot[i].key == UINT64_MAX);
    uint64_t seen = 0;
    size_t n = 0;
    for (ent_t *s = mixtab_find(&t, 0, 12345); s != NULL; s = mixtab_find_next(&t, s)) {
        CHECK(s->key == 0 && s->val >= 1 && s->val <= 10);
        seen |= 1u << s->val;
        n++;
    }
    CHECK(n == 10 && seen == 0x7fe);
    int added = -1;
    ent_t e0 = {0, 500};
    ent_t *s = mixtab_insert(&t, &e0, 0, &added);
    CHECK(s != NULL && added == 0 && s->key == 0 && s->val <= 10);
    ent_t *m = mixtab_find(&t, UINT64_MAX, mix(UINT64_MAX));
    CHECK(m != NULL && m->val == 99);
    size_t pos = 0;
    n = 0;
    for (ent_t *e; (e = mixtab_next(&t, &pos)) != NULL;)
        n++;
    CHECK(n == 11);
    /* remove the key-0 entries one by one: the first, then the last */
    for (int i = 0; i < 10; i++) {
        ent_t *x = mixtab_find(&t, 0, 0);
        CHECK(x != NULL);
        if (i % 2) {
            while (mixtab_find_next(&t, x) != NULL)
                x = mixtab_find_next(&t, x);
        }
        mixtab_remove(&t, x);
        CHECK(mixtab_size(&t) == (size_t)(10 - i));
    }
    CHECK(mixtab_find(&t, 0, 0) == NULL);
    CHECK(mixtab_insert(&t, &e0, 0, &added) != NULL && added == 1);
    CHECK(mixtab_find(&t, 0, 0)->val == 500);
    CHECK(mixtab_find(&t, UINT64_MAX, mix(UINT64_MAX))->val == 99);
    /* clear: nothing left, in the slots or beside them; the memory kept
     * and used again */
    size_t cap = t.cap, bytes = counts.bytes_out;
    mixtab_clear(&t);
    CHECK(mixtab_size(&t) == 0 && t.cap == cap && counts.bytes_out == bytes);
    CHECK(mixtab_find(&t, 0, 0) == NULL);
    CHECK(mixtab_find(&t, UINT64_MAX, mix(UINT64_MAX)) == NULL);
    pos = 0;
    CHECK(mixtab_next(&t, &pos) == NULL);
    CHECK(mixtab_insert(&t, &top, mix(UINT64_MAX), &added) != NULL && added == 1);
    CHECK(mixtab_insert(&t, &e0, 0, &added) != NULL && added == 1);
    CHECK(mixtab_size(&t) == 2 && counts.bytes_out == bytes);
    mixtab_destroy(&t);
    CHECK(counts.bytes_out == 0);
}

/* ---------------------------------------------------------------------------
 * predicate: entries that are pointers, looked up by their pointee
 * ------------------------------------------------------------------------- */
typedef struct str {
    uint64_t hash;
    const char *text;
} str_t;

static uint64_t str_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return mix(h);
}
#define STR_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define STR_HASH(e) ((*(e))->hash)
NEAP_HASHTAB_DEFINE(strtab, str_t *, STR_KEY, STR_HASH, 4, 2);

static int str_match(str_t *const *e, const void *ctx) {
    return strcmp((*e)->text, ctx) == 0;
}

static void test_predicate(void) {
    strtab_t t = NEAP_HASHTAB_INIT(&counting);
    static const char *words[] = {"arena", "pool", "block", "heap", "trace", "stack",
                                  "shard", "intern", "weak", "spare", "probe", "shift"};
    enum { NW = sizeof words / sizeof *words };
    str_t objs[NW];
    CHECK(strtab_lookup(&t, str_hash("arena"), str_match, "arena") == NULL);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NW; i++) {
            uint64_t h = str_hash(words[i]);
            CHECK(strtab_reserve(&t, 1) == 0);
            str_t **s = strtab_probe(&t, h, str_match, words[i]);
            if (round == 0) {
                CHECK(*s == NULL);
                objs[i] = (str_t){h, words[i]};
                str_t *p = &objs[i];
                strtab_put(&t, s, &p);
            } else {
                CHECK(*s == &objs[i]); /* found, not stored again */
            }
            CHECK(t.count * 2 <= t.cap);
        }
    }
    CHECK(t.count == NW);
    for (int i = 0; i < NW; i++) {
        str_t **s = strtab_lookup(&t, str_hash(words[i]), str_match, words[i]);
        CHECK(s != NULL && *s == &objs[i]);
    }
    CHECK(strtab_lookup(&t, str_hash("nothing"), str_match, "nothing") == NULL);
    /* removal by identity: find the pointer's own slot */
    str_t **s = strtab_find(&t, (uint64_t)(uintptr_t)&objs[3], objs[3].hash);
    CHECK(s != NULL && *s == &objs[3]);
    strtab_remove(&t, s);
    CHECK(strtab_lookup(&t, objs[3].hash, str_match, "heap") == NULL);
    for (int i = 0; i < NW; i++)
        if (i != 3)
            CHECK(strtab_lookup(&t, objs[i].hash, str_match, words[i]) != NULL);
    strtab_destroy(&t);
    CHECK(counts.bytes_out == 0);
}

/* ---------------------------------------------------------------------------
 * nomem
 * ------------------------------------------------------------------------- */
static void test_nomem(void) {
    mixtab_t t = NEAP_HASHTAB_INIT(&counting);
    /* the very first allocation fails */
    counts.fail_after = 0;
    ent_t e1 = {7, 70};
    int added = -1;
    CHECK(mixtab_add(&t, &e1) == NULL);
    CHECK(mixtab_insert(&t, &e1, mix(7), &added) == NULL && added == 0);
    CHECK(mixtab_reserve(&t, 1) == -1);
    CHECK(t.cap == 0 && mixtab_size(&t) == 0 && mixtab_find(&t, 7, mix(7)) == NULL);
    ent_t z = {0, 1};
    CHECK(mixtab_add(&t, &z) == NULL && mixtab_find(&t, 0, 0) == NULL);
    /* fill to the load limit, then fail the growth */
    counts.fail_after = -1;
    uint64_t k = 1;
    while (t.cap == 0 || (t.count + 1) * 4 <= t.cap * 3) {
        ent_t e = {k, k + 1000};
        CHECK(mixtab_add(&t, &e) != NULL);
        k++;
    }
    size_t cap = t.cap, count = t.count, bytes = counts.bytes_out;
    counts.fail_after = 0;
    ent_t more = {k, k + 1000};
    CHECK(mixtab_add(&t, &more) == NULL);
    CHECK(mixtab_insert(&t, &more, mix(k), &added) == NULL);
    CHECK(mixtab_reserve(&t, 1) == -1);
    CHECK(t.cap == cap && t.count == count && counts.bytes_out == bytes);
    /* insert makes room first: it fails even for a key already there */
    ent_t again = {1, 0};
    CHECK(mixtab_insert(&t, &again, mix(1), &added) == NULL && added == 0);
    CHECK(mixtab_find(&t, 1, mix(1))->val == 1001);
    for (uint64_t i = 1; i < k; i++)
        CHECK(mixtab_find(&t, i, mix(i)) != NULL);
    /* a removal makes room without memory */
    mixtab_remove(&t, mixtab_find(&t, 1, mix(1)));
    CHECK(mixtab_add(&t, &more) != NULL);
    CHECK_INVARIANTS(&t, mix);
    /* the spare array's growth fails too */
    counts.fail_after = -1;
    for (uint64_t v = 0; v < 4; v++) {
        ent_t e = {0, v};
        CHECK(mixtab_add(&t, &e) != NULL);
    }
    counts.fail_after = 0;
    ent_t z5 = {0, 4};
    CHECK(mixtab_add(&t, &z5) == NULL);
    CHECK(t.nspare == 4);
    /* memory back: everything works, nothing was lost */
    counts.fail_after = -1;
    CHECK(mixtab_add(&t, &z5) != NULL && t.nspare == 5);
    ent_t after = {k + 1, 5};
    CHECK(mixtab_add(&t, &after) != NULL && t.cap == cap * 2);
    for (uint64_t i = 2; i <= k + 1; i++)
        CHECK(mixtab_find(&t, i, mix(i)) != NULL);
    size_t n = 0;
    for (ent_t *x = mixtab_find(&t, 0, 0); x != NULL; x = mixtab_find_next(&t, x))
        n++;
    CHECK(n == 5);
    CHECK_INVARIANTS(&t, mix);
    mixtab_destroy(&t);
    CHECK(counts.bytes_out == 0 && counts.blocks_out == 0);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } sections[] = {{"random", test_random},       {"growth", test_growth},
                    {"wrap", test_wrap},           {"reserved", test_reserved},
                    {"predicate", test_predicate}, {"nomem", test_nomem}};
    int ran = 0;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        if (argc > 1 && strcmp(argv[1], sections[i].name) != 0)
            continue;
        sections[i].fn();
        printf("hashtab %s: ok\n", sections[i].name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "test_hashtab: no section %s\n", argv[1]);
        return 2;
    }
    return test_status();
}

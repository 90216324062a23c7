/*
 * redis.c: the workload "redis": a key-value store of Redis's shape, most of
 * its keys deleted, and what the allocator gives back, at once and over time.
 *
 * 10^6 * scale keys are SET into a chained hash table, as Redis stores them:
 * per key four allocations,
 *
 *   entry   the table's entry (next, key, value; 24 B, Redis's dictEntry)
 *   key     the key string with a small length header, as an sds:
 *           "key:<i>" (3 + 5..11 + 1 B)
 *   object  the value's object header (16 B, Redis's robj: type, encoding,
 *           reference count, pointer)
 *   value   the value's bytes: 16..512 B, uniform (a string value's sds)
 *
 * and the bucket array, grown by doubling (all at once; Redis rehashes
 * incrementally) when the keys outnumber the buckets.  Then a random 90% of
 * the keys (a fixed-seed shuffle) are DELeted, each looked up by its key
 * string, verified and its four blocks freed; the table is not shrunk.
 *
 * Measured (bytes; "pss" beside "rss", the runner uses Pss, see common.c):
 *
 *   peak            right after the inserts (rss_sample)
 *   after_free      right after the deletes
 *   after_idle      1 s later
 *   marks.settled   once Pss stops moving (read every 0.5 s, at most 8 s
 *                   more; --seconds S changes the 12): a meshing allocator's
 *                   background work
 *   marks.trim      right after malloc_trim(0) (neap: neap_trim, which also
 *                   meshes the calling thread's heap at once)
 *   floor           the bytes of the distinct 4 KiB pages the survivors'
 *                   blocks occupy (entries, keys, objects and values)
 *
 * Self-check: every deleted key's string and value are verified before its
 * blocks are freed, every survivor's at the end; the verified values are
 * summed into "sum".  The same parameters give the same check string under
 * every allocator.
 *
 * Phases: insert, delete, trim, check.
 */
#define _GNU_SOURCE
#include "common.h"

#include <malloc.h>
#include <stdio.h>

#define REDIS_KEYS 1e6
#define REDIS_DELETE_PERMILLE 900
#define REDIS_SALT 0x7ed157ed15ull
#define REDIS_SETTLE_MAX 12.0      /* more than SETTLE_MAX: meshing 10^6 keys takes about 9 s here */

typedef struct {            /* Redis's robj: 16 bytes */
    uint32_t type_encoding;
    uint32_t refcount;
    void *ptr;
} robj_t;

typedef struct entry_s {    /* Redis's dictEntry: 24 bytes */
    struct entry_s *next;
    char *key;              /* sds: the string; its header just before */
    robj_t *val;
} entry_t;

static struct {
    entry_t **bucket;
    size_t nbuckets, count;
} T;

static inline uint64_t val_hash(size_t i) { return mix64(REDIS_SALT + i); }
static inline size_t val_size(size_t i) { return 16 + (size_t)below(val_hash(i), 497); }

static size_t key_format(char *buf, size_t i)
{
    return (size_t)snprintf(buf, 32, "key:%zu", i);
}

static uint64_t key_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;        /* FNV-1a, then a mix */
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)s[k]) * 0x100000001b3ull;
    return mix64(h);
}

/* an sds of type 8: len, alloc, flags, then the bytes and a NUL */
static char *sds_new(const char *s, size_t len)
{
    unsigned char *b = xmalloc(3 + len + 1);
    b[0] = (unsigned char)len;
    b[1] = (unsigned char)len;
    b[2] = 1;
    memcpy(b + 3, s, len);
    b[3 + len] = 0;
    return (char *)b + 3;
}

static inline size_t sds_len(const char *s) { return ((const unsigned char *)s)[-3]; }
static inline void *sds_block(char *s) { return s - 3; }

static void table_grow(void)
{
    size_t n = T.nbuckets ? T.nbuckets * 2 : 4;
    entry_t **b = xcalloc(n * sizeof *b);
    for (size_t k = 0; k < T.nbuckets; k++)
        for (entry_t *e = T.bucket[k], *next; e; e = next) {
            next = e->next;
            size_t slot = key_hash(e->key, sds_len(e->key)) & (n - 1);
            e->next = b[slot];
            b[slot] = e;
        }
    free(T.bucket);
    T.bucket = b;
    T.nbuckets = n;
}

static void set_key(size_t i)
{
    char kb[32];
    size_t klen = key_format(kb, i);
    if (T.count >= T.nbuckets)
        table_grow();
    size_t vsz = val_size(i);
    entry_t *e = xmalloc(sizeof *e);
    e->key = sds_new(kb, klen);
    e->val = xmalloc(sizeof *e->val);
    e->val->type_encoding = 0;      /* string, raw */
    e->val->refcount = 1;
    e->val->ptr = xmalloc(vsz);
    fill_block(e->val->ptr, vsz, val_hash(i));
    size_t slot = key_hash(kb, klen) & (T.nbuckets - 1);
    e->next = T.bucket[slot];
    T.bucket[slot] = e;
    T.count++;
}

static uint64_t check_entry(const entry_t *e, size_t i)
{
    char kb[32];
    size_t klen = key_format(kb, i);
    if (sds_len(e->key) != klen || memcmp(e->key, kb, klen + 1) != 0)
        check_failed("key %zu: the key string is %.20s", i, e->key);
    if (e->val->refcount != 1)
        check_failed("key %zu: the value object's reference count is %u", i, e->val->refcount);
    return check_block(e->val->ptr, val_size(i), val_hash(i)) + klen;
}

static uint64_t del_key(size_t i)
{
    char kb[32];
    size_t klen = key_format(kb, i);
    entry_t **pp = &T.bucket[key_hash(kb, klen) & (T.nbuckets - 1)];
    for (entry_t *e = *pp; e; pp = &e->next, e = e->next) {
        if (sds_len(e->key) != klen || memcmp(e->key, kb, klen) != 0)
            continue;
        uint64_t v = check_entry(e, i);
        *pp = e->next;
        free(e->val->ptr);
        free(e->val);
        free(sds_block(e->key));
        free(e);
        T.count--;
        return v;
    }
    check_failed("key %zu not found", i);
}

static size_t parse_index(const char *key)
{
    return (size_t)strtoull(key + 4, NULL, 10);
}

/* the survivors' pages: every block of every entry still in the table */
static size_t survivors_floor(void)
{
    size_t cap = T.count * 6 + 1, m = 0;
    uintptr_t *pages = book_alloc(cap * sizeof *pages);
    for (size_t k = 0; k < T.nbuckets; k++)
        for (entry_t *e = T.bucket[k]; e; e = e->next) {
            const struct { uintptr_t p; size_t n; } blk[4] = {
                { (uintptr_t)e, sizeof *e },
                { (uintptr_t)sds_block(e->key), 3 + sds_len(e->key) + 1 },
                { (uintptr_t)e->val, sizeof *e->val },
                { (uintptr_t)e->val->ptr, val_size(parse_index(e->key)) },
            };
            for (int b = 0; b < 4; b++) {
                uintptr_t lo = blk[b].p / FLOOR_PAGE, hi = (blk[b].p + blk[b].n - 1) / FLOOR_PAGE;
                for (uintptr_t q = lo; q <= hi && m < cap; q++)
                    pages[m++] = q;
            }
        }
    size_t bytes = distinct_pages(pages, m);
    book_free(pages, cap * sizeof *pages);
    return bytes;
}

void run_redis(const opts_t *o)
{
    size_t n = scaled(o, REDIS_KEYS, 1000);
    size_t ndel = n * REDIS_DELETE_PERMILLE / 1000;
    if (n > UINT32_MAX)
        die("too many keys (%zu): lower --scale", n);
    double settle = o->seconds > 0 ? o->seconds : REDIS_SETTLE_MAX;

    rss_begin();
    /* the delete order: a fixed-seed shuffle (Fisher-Yates); the first ndel go */
    uint32_t *order = book_alloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    rng_t rng = rng_seed(REDIS_SALT);
    for (size_t k = n; k > 1; k--) {
        size_t j = (size_t)rng_below(&rng, k);
        uint32_t x = order[k - 1];
        order[k - 1] = order[j];
        order[j] = x;
    }

    double t = now();
    for (size_t i = 0; i < n; i++) {
        set_key(i);
        rss_poll();
    }
    report_phase("insert", now() - t);
    rss_sample();

    uint64_t sum = 0;
    t = now();
    for (size_t k = 0; k < ndel; k++) {
        sum += del_key(order[k]);
        rss_poll();
    }
    report_phase("delete", now() - t);
    book_free(order, n * sizeof *order);
    if (T.count != n - ndel)
        check_failed("%zu keys left, expected %zu", T.count, n - ndel);
    rss_after_free();
    rss_idle(1.0);
    double waited = rss_settle(settle, SETTLE_INTERVAL);
    rss_mark("settled");
    report_extra("settle_seconds", "%.3f", waited);

    t = now();
    malloc_trim(0);
    report_phase("trim", now() - t);
    rss_mark("trim");

    t = now();
    report_extra("floor", "%zu", survivors_floor());
    report_untimed(now() - t);

    t = now();
    size_t live = T.count;
    for (size_t k = 0; k < T.nbuckets; k++)
        for (entry_t *e = T.bucket[k], *next; e; e = next) {
            next = e->next;
            sum += check_entry(e, parse_index(e->key));
            free(e->val->ptr);
            free(e->val);
            free(sds_block(e->key));
            free(e);
        }
    free(T.bucket);
    report_phase("check", now() - t);
    report_check("sum=%016llx n=%zu live=%zu", (unsigned long long)sum, n, live);
    report_ops(4 * (n + ndel));
}

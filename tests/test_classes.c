/* test_classes.c -- size classes and pool layout (label: unit).
 *
 * Linked against neap_nooverride: the C library keeps its own malloc, so the
 * only neap allocations are the ones made here and the statistics count
 * exactly them.
 *
 *   table     neap_good_size: 16-byte steps up to 512, then 4 classes per
 *             doubling up to 32 KiB (never more than 25% over the request),
 *             the NEAP_CLASS_MAX block sizes the statistics report
 *   layout    in a fresh thread (a fresh heap), for every class: blocks are
 *             16-aligned, disjoint, a small block never crosses its page
 *             nor starts in the page's first 64 bytes (the pool header's),
 *             blocks sharing a page are block_size apart
 *   stats     per class: blocks_used and pools follow the allocations,
 *             blocks_used + blocks_free = pools * blocks per pool (small)
 *   tiers     32 KiB is medium, 32 KiB + 1 large, 1 MiB large, 1 MiB + 1 huge
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap.h"
#include "neap_test.h"

static size_t expected[NEAP_CLASS_MAX];

static void
build_expected(void)
{
    size_t n = 0, s, base, k;
    for (s = 16; s <= NEAP_SMALL_MAX; s += 16)
        expected[n++] = s;
    for (base = NEAP_SMALL_MAX; base < 32 * KiB; base *= 2)
        for (k = 1; k <= 4; k++) {
            CHECK(n < NEAP_CLASS_MAX);
            expected[n++] = base + k * base / 4;
        }
    CHECKF(n == NEAP_CLASS_MAX, "%zu classes expected, NEAP_CLASS_MAX is %d", n, NEAP_CLASS_MAX);
    CHECK(expected[NEAP_CLASS_MAX - 1] == 32 * KiB);
}

static size_t
expected_good(size_t n)
{
    size_t i;
    for (i = 0; i < NEAP_CLASS_MAX; i++)
        if (expected[i] >= n)
            return expected[i];
    return 0;
}

static void
test_table(void)
{
    size_t n, distinct = 0, prev = 0;
    neap_stats_t st;
    int c;

    CHECK(neap_good_size(0) == 16);
    for (n = 0; n <= NEAP_SMALL_MAX; n++) {
        size_t want = n == 0 ? 16 : (n + 15) / 16 * 16;
        CHECKF(neap_good_size(n) == want, "good_size(%zu) = %zu, want %zu", n, neap_good_size(n),
               want);
    }
    for (n = NEAP_SMALL_MAX + 1; n <= 32 * KiB; n++) {
        size_t g = neap_good_size(n);
        CHECKF(g >= n && 4 * g <= 5 * n, "good_size(%zu) = %zu: more than 25%% over", n, g);
        CHECKF(g == expected_good(n), "good_size(%zu) = %zu, want %zu", n, g, expected_good(n));
    }
    for (n = 1; n <= 32 * KiB; n++) {
        size_t g = neap_good_size(n);
        if (g != prev)
            distinct++;
        prev = g;
    }
    CHECKF(distinct == NEAP_CLASS_MAX, "%zu distinct classes up to 32 KiB", distinct);

    /* above medium: page granularity */
    for (n = 32 * KiB + 1; n <= 4 * MiB; n += 509) {
        size_t g = neap_good_size(n);
        CHECKF(g >= n && g % NEAP_PAGE_SIZE == 0, "good_size(%zu) = %zu", n, g);
        CHECKF(g <= n + n / 4 + NEAP_PAGE_SIZE, "good_size(%zu) = %zu", n, g);
    }

    neap_stats_get(&st);
    for (c = 0; c < NEAP_CLASS_MAX; c++)
        CHECKF(st.classes[c].block_size == expected[c], "class %d: block_size %zu, want %zu", c,
               st.classes[c].block_size, expected[c]);
}

/* ------------------------------------------------------------------------ */

static int
addr_cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void
layout_class(int c)
{
    size_t bs = expected[c], small = bs <= NEAP_SMALL_MAX;
    size_t per_page = NEAP_PAGE_SIZE / bs;
    size_t n = small ? 3 * per_page + 5 : 24, i, pages = 0, max_in_page = 0, run = 0;
    uintptr_t *a = calloc(n, sizeof *a);
    neap_stats_t s0, s1, s2, s3;
    const neap_class_stats_t *k0 = &s0.classes[c], *k1 = &s1.classes[c];

    CHECK(a != NULL);
    neap_stats_get(&s0);
    for (i = 0; i < n; i++) {
        /* any request that maps to the class: from one above the class
         * below up to the block size */
        size_t lo = c == 0 ? 0 : expected[c - 1] + 1, req = lo + (i * 7919) % (bs - lo + 1);
        void *p = neap_malloc(req);
        CHECKF(p != NULL, "class %zu, request %zu", bs, req);
        CHECKF(test_aligned(p, 16), "class %zu: %p", bs, p);
        CHECKF(neap_usable_size(p) == bs, "class %zu, request %zu: usable %zu", bs, req,
               neap_usable_size(p));
        memset(p, (int)i, bs);
        a[i] = (uintptr_t)p;
    }
    neap_stats_get(&s1);
    CHECKF(k1->blocks_used == k0->blocks_used + n, "class %zu: blocks_used %zu -> %zu, %zu allocated",
           bs, k0->blocks_used, k1->blocks_used, n);

    qsort(a, n, sizeof *a, addr_cmp);
    for (i = 0; i < n; i++) {
        int new_page = i == 0 || a[i] / NEAP_PAGE_SIZE != a[i - 1] / NEAP_PAGE_SIZE;
        if (i > 0)
            CHECKF(a[i] - a[i - 1] >= bs, "class %zu: blocks %#lx and %#lx overlap", bs,
                   (unsigned long)a[i - 1], (unsigned long)a[i]);
        if (!small)
            continue;
        CHECKF(a[i] % NEAP_PAGE_SIZE + bs <= NEAP_PAGE_SIZE,
               "class %zu: block %#lx crosses a page boundary", bs, (unsigned long)a[i]);
        CHECKF(a[i] % NEAP_PAGE_SIZE >= 64,
               "class %zu: block %#lx overlaps its pool's header", bs, (unsigned long)a[i]);
        if (new_page) {
            pages++;
            run = 0;
        } else {
            CHECKF(a[i] - a[i - 1] == bs,
                   "class %zu, fresh heap: blocks %#lx and %#lx share a page but are %lu apart",
                   bs, (unsigned long)a[i - 1], (unsigned long)a[i],
                   (unsigned long)(a[i] - a[i - 1]));
        }
        if (++run > max_in_page)
            max_in_page = run;
    }
    if (small) {
        CHECKF(max_in_page <= per_page && max_in_page >= 1, "class %zu: %zu blocks in a page",
               bs, max_in_page);
        CHECKF(k1->pools == k0->pools + pages, "class %zu: pools %zu -> %zu, blocks on %zu pages",
               bs, k0->pools, k1->pools, pages);
        CHECKF(k1->blocks_used + k1->blocks_free == k1->pools * max_in_page,
               "class %zu: used %zu + free %zu != %zu pools * %zu", bs, k1->blocks_used,
               k1->blocks_free, k1->pools, max_in_page);
    } else {
        CHECKF(k1->pools > k0->pools, "class %zu: pools %zu -> %zu", bs, k0->pools, k1->pools);
        CHECK(k1->blocks_used + k1->blocks_free >= n);
    }

    /* free all but the first block of each page (small) or every other
     * block (medium): no small pool empties */
    {
        size_t freed = 0;
        uintptr_t prev = 0;
        for (i = 0; i < n; i++) {
            int first = i == 0 || a[i] / NEAP_PAGE_SIZE != prev / NEAP_PAGE_SIZE;
            prev = a[i];
            if (small ? !first : i % 2 == 1) {
                neap_free((void *)a[i]);
                a[i] = 0;
                freed++;
            }
        }
        neap_stats_get(&s2);
        CHECKF(s2.classes[c].blocks_used == k0->blocks_used + n - freed,
               "class %zu: blocks_used %zu after freeing %zu of %zu", bs,
               s2.classes[c].blocks_used, freed, n);
        if (small) {
            CHECKF(s2.classes[c].blocks_free == k1->blocks_free + freed,
                   "class %zu: blocks_free %zu -> %zu after freeing %zu", bs, k1->blocks_free,
                   s2.classes[c].blocks_free, freed);
            CHECKF(s2.classes[c].pools == k1->pools, "class %zu: pools %zu -> %zu, no page emptied",
                   bs, k1->pools, s2.classes[c].pools);
        } else {
            /* a medium pool may hold a single block and empty */
            CHECK(s2.classes[c].pools <= k1->pools);
            CHECK(s2.classes[c].blocks_free <= k1->blocks_free + freed);
        }
    }
    for (i = 0; i < n; i++)
        if (a[i] != 0)
            neap_free((void *)a[i]);
    neap_trim();
    neap_stats_get(&s3);
    CHECKF(s3.classes[c].blocks_used == k0->blocks_used, "class %zu: blocks_used %zu -> %zu", bs,
           k0->blocks_used, s3.classes[c].blocks_used);
    CHECKF(s3.classes[c].pools == k0->pools, "class %zu: pools %zu -> %zu after free and trim",
           bs, k0->pools, s3.classes[c].pools);
    free(a);
}

static void
test_tiers(void)
{
    static const struct {
        size_t size;
        int tier; /* 0 medium, 1 large, 2 huge */
    } t[] = {
        {32 * KiB, 0}, {32 * KiB + 1, 1}, {40000, 1}, {65536, 1}, {100000, 1}, {500000, 1},
        {MiB - 1, 1}, {MiB, 1}, {MiB + 1, 2}, {2 * MiB, 2}, {5 * MiB + 3, 2},
    };
    size_t i;

    for (i = 0; i < sizeof t / sizeof t[0]; i++) {
        neap_stats_t a, b, c;
        size_t n = t[i].size;
        void *p[3];
        int j;
        neap_stats_get(&a);
        for (j = 0; j < 3; j++) {
            p[j] = neap_malloc(n);
            CHECK(p[j] != NULL);
            memset(p[j], j, n);
            CHECKF(neap_usable_size(p[j]) >= n, "size %zu", n);
            if (t[i].tier > 0)
                CHECKF(test_aligned(p[j], NEAP_PAGE_SIZE), "size %zu at %p", n, p[j]);
        }
        CHECK((uintptr_t)p[1] >= (uintptr_t)p[0] + n || (uintptr_t)p[0] >= (uintptr_t)p[1] + n);
        neap_stats_get(&b);
        switch (t[i].tier) {
        case 0:
            CHECK(b.large_current == a.large_current && b.huge_current == a.huge_current);
            CHECK(b.classes[NEAP_CLASS_MAX - 1].blocks_used ==
                  a.classes[NEAP_CLASS_MAX - 1].blocks_used + 3);
            break;
        case 1:
            CHECKF(b.large_current == a.large_current + 3, "size %zu: large %zu -> %zu", n,
                   a.large_current, b.large_current);
            CHECK(b.huge_current == a.huge_current);
            CHECKF(b.pools_current == a.pools_current + 3, "size %zu: pools %zu -> %zu", n,
                   a.pools_current, b.pools_current);
            CHECK(b.pages_used >= a.pages_used + 3 * ((n + NEAP_PAGE_SIZE - 1) / NEAP_PAGE_SIZE));
            break;
        default:
            CHECKF(b.huge_current == a.huge_current + 3, "size %zu: huge %zu -> %zu", n,
                   a.huge_current, b.huge_current);
            CHECK(b.large_current == a.large_current);
            CHECK(b.bytes_huge >= a.bytes_huge + 3 * n);
            CHECK(b.pools_current == a.pools_current);
            break;
        }
        for (j = 0; j < 3; j++)
            neap_free(p[j]);
        neap_stats_get(&c);
        CHECK(c.large_current == a.large_current && c.huge_current == a.huge_current);
        CHECK(c.bytes_live == a.bytes_live);
        if (t[i].tier == 2) {
            /* each freed mapping is unmapped or cached for reuse: not live */
            CHECK(c.bytes_huge == a.bytes_huge);
            CHECKF(c.bytes_unmapped - a.bytes_unmapped + c.bytes_huge_cached >= 3 * n,
                   "size %zu: unmapped %zu -> %zu, cached %zu", n, a.bytes_unmapped,
                   c.bytes_unmapped, c.bytes_huge_cached);
            CHECK(c.bytes_mapped >= c.arenas_current * (size_t)NEAP_ARENA_SIZE + c.bytes_huge_cached);
        }
    }
}

static void *
fresh_heap_thread(void *arg)
{
    int c;
    neap_stats_t s;
    (void)arg;
    for (c = 0; c < NEAP_CLASS_MAX; c++)
        layout_class(c);
    test_tiers();
    neap_stats_get(&s);
    CHECK(s.heaps_current >= 1);
    return NULL;
}

int
main(void)
{
    pthread_t t;

    build_expected();
    test_table();
    /* a new thread starts with a heap of its own */
    CHECK(pthread_create(&t, NULL, fresh_heap_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    if (test_status() != 0)
        return 1;
    printf("test_classes: ok\n");
    return 0;
}

/* test_core.c -- the allocator core from the inside (label: unit).
 *
 * Linked against neap_nooverride with src/ on its include path, so it reads
 * the core's own structures (core/internal.h): pool headers, kind[], the
 * page maps, the heap's lists.  Allocations go through the neap_* names; the
 * C library keeps its malloc, so the only blocks in the heaps are these.
 * NEAP_PURGE_DELAY is set to an hour first, so that no dirty page is given
 * back behind a check's back (a busy machine may stall for more than the
 * default 10 ms between two lines).
 *
 *   pool      a class's pool: header against the class table, used and
 *             bumped, POOL -> (direct, exhausted) -> FULL when the next
 *             pool starts -> POOL on the partial list when a block comes
 *             back -> on the heap's empty list when the last does, taken
 *             back as it is before a new page, retired by trim; the
 *             direct pool's count carries 1 more; a medium pool's later
 *             pages CONT
 *   empty     many pools emptied at once: the empty list keeps a bounded
 *             number of pages; another class of the same page count takes
 *             one, made over
 *   large     a large run: LARGE head with its length, CONT pages, grown
 *             in place by realloc; freed: FREE and dirty; a run class's
 *             block: BLOCK, SPARE when freed, the same run again
 *   remote    blocks freed by another thread wait on their arena's remote
 *             stack (still counted used), the owner's next slow path drains
 *             them
 *   purge     a batch of ranges: adjacent ones joined, given back by one
 *             system call per batch (per range with NEAP_PURGE_BATCH=0),
 *             the pages zero and out of RSS, their neighbours intact; the
 *             heap's random frees under a small NEAP_PURGE_MAX: never more
 *             dirty than that, each purge gives back every dirty page,
 *             bytes_purged exact, RSS falls
 *   trim      after neap_trim: no dirty page, no empty arena, empty
 *             direct pools retired
 *   validate  a random workload with a second thread freeing some blocks:
 *             the validator passes on the heap all along, on everything at
 *             the end (also run with NEAP_VALIDATE=1: at every slow path)
 *   corrupt   each case in a forked child: a state corrupted on purpose
 *             (a free-list link into another pool, a cycle, a used count,
 *             kind[] bytes, page maps, lists, the spare, the huge cache),
 *             then the validator: the child must die of SIGABRT with the
 *             message naming that invariant; and an uncorrupted child must
 *             pass.  Also through the slow paths: with NEAP_VALIDATE set,
 *             and in a build at NEAP_DEBUG >= 2 without it (a release build
 *             must not validate on its own: the child lives)
 *
 * Built with the library's NEAP_DEBUG, so it knows what the build checks.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "neap_test.h"

static neap_heap_t *
heap(void)
{
    return _neap_tl_heap;
}

/* A pool's blocks out: its count, less the 1 more a direct pool carries. */
static unsigned
out_of(const neap_pool_t *pool)
{
    return pool->used - (heap()->direct[pool->cls] == pool);
}

static unsigned
kind_of(const void *p)
{
    neap_arena_t *a = _neap_arena_of((uintptr_t)p);
    return NEAP_PK_KIND(_neap_kind_get(a, _neap_page_index((uintptr_t)p)));
}

static size_t
count_of(const void *p)
{
    neap_arena_t *a = _neap_arena_of((uintptr_t)p);
    return NEAP_PK_COUNT(_neap_kind_get(a, _neap_page_index((uintptr_t)p)));
}

static int
map_bit(const uint64_t *m, size_t i)
{
    return (int)((m[i / 64] >> (i % 64)) & 1);
}

static size_t
list_len(const neap_block_t *b)
{
    size_t n = 0;
    for (; b != NULL; b = _neap_link_get(b))   /* decoded in the hardened build */
        n++;
    return n;
}

/* A pool class (not a run class) with the given page count, or 0. */
static size_t
pool_class_with_pages(int medium)
{
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        const neap_class_t *k = &_neap_class[c];
        if (!k->run && (medium ? k->pages > 1 : k->pages == 1))
            return c;
    }
    return 0;
}

static size_t
run_class(void)
{
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++)
        if (_neap_class[c].run)
            return c;
    return 0;
}

/* ---------------------------------------------------------------------------
 * pool
 * ------------------------------------------------------------------------- */
static void
check_pool_header(const neap_pool_t *pool, size_t cls)
{
    const neap_class_t *k = &_neap_class[cls];
    CHECK(pool->cls == cls);
    CHECK(pool->block_size == k->size);
    CHECK(pool->npages == k->pages);
    CHECK(pool->first == k->first);
    CHECK(pool->recip == k->recip);
    CHECK(pool->bumped <= k->capacity);
    CHECKF(out_of(pool) + list_len(pool->free) + list_len(pool->local_free) == pool->bumped,
           "out %u free %zu local %zu bumped %u", out_of(pool), list_len(pool->free),
           list_len(pool->local_free), pool->bumped);
}

static void
pool_class(size_t cls)
{
    const neap_class_t *k = &_neap_class[cls];
    size_t cap = k->capacity, size = k->size;
    neap_heap_t *h;
    void **blocks = neap_malloc((cap + 1) * sizeof *blocks);
    CHECK(blocks != NULL);
    blocks[0] = neap_malloc(size);
    CHECK(blocks[0] != NULL);
    h = heap();
    neap_pool_t *pool = _neap_block_pool(blocks[0]);
    CHECK(pool != NULL);
    CHECK(kind_of(pool) == NEAP_PS_POOL && count_of(pool) == 0);
    CHECK(h->direct[cls] == pool && !pool->linked);
    check_pool_header(pool, cls);
    CHECK(out_of(pool) == 1 && pool->used == 2);   /* direct: 1 more */
    /* blocks are carved a page's worth at a time */
    size_t per_page = NEAP_PAGE_SIZE / size ? NEAP_PAGE_SIZE / size : 1;
    CHECKF(pool->bumped == (per_page < cap ? per_page : cap), "bumped %u", pool->bumped);
    /* a medium pool's later pages count back to its head */
    neap_arena_t *a = _neap_arena_of((uintptr_t)pool);
    size_t head = _neap_page_index((uintptr_t)pool);
    for (size_t j = 1; j < k->pages; j++)
        CHECK(_neap_kind_get(a, head + j) == NEAP_PK(NEAP_PS_CONT, j));
    for (size_t j = 0; j < k->pages; j++)
        CHECK(map_bit(a->used_map, head + j) && !map_bit(a->dirty_map, head + j));
    _neap_heap_validate(h);

    /* fill it: still direct and POOL while exhausted */
    for (size_t i = 1; i < cap; i++) {
        blocks[i] = neap_malloc(size);
        CHECK(_neap_block_pool(blocks[i]) == pool);
    }
    CHECK(out_of(pool) == cap && pool->bumped == cap && pool->free == NULL);
    CHECK(kind_of(pool) == NEAP_PS_POOL && h->direct[cls] == pool);
    _neap_heap_validate(h);

    /* the next block starts another pool; this one turns FULL */
    blocks[cap] = neap_malloc(size);
    neap_pool_t *next = _neap_block_pool(blocks[cap]);
    CHECK(next != pool && h->direct[cls] == next);
    CHECK(kind_of(pool) == NEAP_PS_FULL && !pool->linked && pool->used == cap);
    _neap_heap_validate(h);

    /* a block back: POOL again, on the partial list */
    neap_free(blocks[0]);
    CHECK(kind_of(pool) == NEAP_PS_POOL && pool->linked && h->partial[cls] == pool);
    CHECK(pool->used == cap - 1 && pool->local_free == blocks[0]);
    _neap_heap_validate(h);

    /* the last block back: kept, on the empty list (POOL, nothing out) */
    for (size_t i = 1; i < cap; i++)
        neap_free(blocks[i]);
    CHECK(h->partial[cls] == NULL);
    CHECK(kind_of(pool) == NEAP_PS_POOL && pool->used == 0 && pool->linked == NEAP_POOL_ON_EMPTY);
    CHECK(h->empty_tail == pool && h->empty_pages >= k->pages);
    for (size_t j = 0; j < k->pages; j++)
        CHECK(map_bit(a->used_map, head + j));
    _neap_heap_validate(h);

    /* the direct pool's last block: kept (POOL, nothing out, count 1) */
    neap_free(blocks[cap]);
    CHECK(h->direct[cls] == next && next->used == 1 && out_of(next) == 0 && kind_of(next) == NEAP_PS_POOL);
    _neap_heap_validate(h);

    /* the direct pool exhausted again: the next pool is the empty one, as it
     * was (its free lists hold every block), before any new page */
    size_t pools_made = atomic_load(&_neap_gstats.pools_made[cls]);
    for (size_t i = 0; i < cap; i++)
        blocks[i] = neap_malloc(size);
    CHECK(_neap_block_pool(blocks[0]) == next && h->direct[cls] == next);
    blocks[cap] = neap_malloc(size);
    CHECK(h->direct[cls] == pool && _neap_block_pool(blocks[cap]) == pool && out_of(pool) == 1);
    CHECK(pool->linked == NEAP_POOL_ON_NONE && atomic_load(&_neap_gstats.pools_made[cls]) == pools_made);
    _neap_heap_validate(h);
    for (size_t i = 0; i <= cap; i++)
        neap_free(blocks[i]);
    /* next, FULL, emptied: on the empty list; pool is direct, kept */
    CHECK(next->linked == NEAP_POOL_ON_EMPTY && h->direct[cls] == pool && out_of(pool) == 0);
    _neap_heap_validate(h);

    /* trim retires them all: their pages FREE (and given back) */
    neap_trim();
    CHECK(h->empty_head == NULL && h->empty_pages == 0 && h->direct[cls] == &_neap_pool_empty);
    for (size_t j = 0; j < k->pages; j++) {
        CHECK(NEAP_PK_KIND(_neap_kind_get(a, head + j)) == NEAP_PS_FREE);
        CHECK(!map_bit(a->used_map, head + j));
    }
    _neap_heap_validate(h);
    neap_free(blocks);
}

/* The empty list keeps at most NEAP_EMPTY_KEEP_PAGES pages (heap.c): more
 * pools emptied at once retire the oldest, and a page reused for another
 * class of the same page count is made over, not taken anew. */
static void
test_empty_list(void)
{
    enum { N = 64 };
    size_t cls = _neap_class_of(256), other = 0;
    size_t cap = _neap_class[cls].capacity;
    static void *b[N][32];
    CHECK(cap <= 32 && _neap_class[cls].pages == 1);
    /* N full pools of the class, then every block back */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < cap; j++)
            b[i][j] = neap_malloc(256);
    neap_heap_t *h = heap();   /* made by the first allocation */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < cap; j++)
            neap_free(b[i][j]);
    _neap_heap_validate(h);
    /* a bounded number kept (the direct one is not on the list) */
    CHECKF(h->empty_pages > 0 && h->empty_pages <= 16, "empty_pages %zu", h->empty_pages);
    size_t kept = 0;
    for (neap_pool_t *pool = h->empty_head; pool != NULL; pool = pool->next)
        kept++;
    CHECK(kept == h->empty_pages);
    /* another class of one page (with no pool of its own yet) takes the
     * newest empty pool, made over: no new page */
    for (size_t c = 1; c <= NEAP_SMALL_CLASSES && other == 0; c++)
        if (c != cls && h->direct[c] == &_neap_pool_empty && h->partial[c] == NULL && _neap_class[c].pages == 1)
            other = c;
    CHECK(other != 0);
    neap_pool_t *last = h->empty_tail;
    size_t made = h->pools_made[other], pages = h->empty_pages;
    uint32_t in_use = _neap_arena_of((uintptr_t)last)->pages_used;
    CHECK(h->direct[other] == &_neap_pool_empty && h->partial[other] == NULL);
    void *q = neap_malloc(_neap_class[other].size);
    CHECK(_neap_block_pool(q) == last && h->direct[other] == last && last->cls == other);
    CHECK(last->linked == NEAP_POOL_ON_NONE && out_of(last) == 1 && h->empty_pages == pages - 1);
    CHECK(h->pools_made[other] == made + 1);   /* made over: counted as made */
    CHECK(_neap_arena_of((uintptr_t)last)->pages_used == in_use);
    check_pool_header(last, other);
    _neap_heap_validate(h);
    neap_free(q);
    neap_trim();
    CHECK(h->empty_head == NULL && h->empty_pages == 0);
    _neap_heap_validate(h);
}

static void
test_pool(void)
{
    size_t small = pool_class_with_pages(0), medium = pool_class_with_pages(1);
    CHECK(small != 0 && medium != 0);
    pool_class(small);
    pool_class(medium);
    pool_class(NEAP_SMALL_CLASSES);   /* 512 B */
}

/* ---------------------------------------------------------------------------
 * large
 * ------------------------------------------------------------------------- */
static void
test_large(void)
{
    size_t n = 10;
    char *p = neap_malloc(n * NEAP_PAGE_SIZE - 100);
    CHECK(p != NULL && ((uintptr_t)p & NEAP_PAGE_MASK) == 0);
    neap_heap_t *h = heap();
    neap_arena_t *a = _neap_arena_of((uintptr_t)p);
    size_t head = _neap_page_index((uintptr_t)p);
    CHECK(kind_of(p) == NEAP_PS_LARGE && count_of(p) == n);
    for (size_t j = 1; j < n; j++)
        CHECK(_neap_kind_get(a, head + j) == NEAP_PK(NEAP_PS_CONT, j));
    CHECK(_neap_block_pool(p) == NULL);
    _neap_heap_validate(h);

    /* grown in place when the pages after it are free (a fresh arena's are) */
    if (_neap_arena_run_is_free(a, head + n, 5)) {
        char *q = neap_realloc(p, (n + 5) * NEAP_PAGE_SIZE);
        CHECK(q == p);
        CHECK(kind_of(p) == NEAP_PS_LARGE && count_of(p) == n + 5);
        CHECK(_neap_kind_get(a, head + n + 4) == NEAP_PK(NEAP_PS_CONT, n + 4));
        n += 5;
        _neap_heap_validate(h);
    }
    uint32_t used = a->pages_used;
    neap_free(p);
    CHECK(a->pages_used == used - n);
    for (size_t j = 0; j < n; j++) {
        CHECK(NEAP_PK_KIND(_neap_kind_get(a, head + j)) == NEAP_PS_FREE);
        CHECK(!map_bit(a->used_map, head + j) && map_bit(a->dirty_map, head + j));
    }
    _neap_heap_validate(h);

    /* a run class: its block is a run of its own, kept as the spare */
    size_t cls = run_class();
    CHECK(cls != 0);
    void *b = neap_malloc(_neap_class[cls].size);
    CHECK(kind_of(b) == NEAP_PS_BLOCK && count_of(b) == cls);
    neap_free(b);
    CHECK(kind_of(b) == NEAP_PS_SPARE && h->spare[cls] == (uintptr_t)b);
    _neap_heap_validate(h);
    void *c = neap_malloc(_neap_class[cls].size);
    CHECK(c == b && kind_of(c) == NEAP_PS_BLOCK && h->spare[cls] == 0);
    _neap_heap_validate(h);
    neap_free(c);
}

/* ---------------------------------------------------------------------------
 * remote
 * ------------------------------------------------------------------------- */
#define REMOTE_N 40
static void *remote_blocks[REMOTE_N];

static void *
remote_free_thread(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < REMOTE_N; i++)
        neap_free(remote_blocks[i]);
    return NULL;
}

static void
test_remote(void)
{
    size_t size = 48, cls = _neap_class_of(size);
    for (size_t i = 0; i < REMOTE_N; i++)
        remote_blocks[i] = neap_malloc(size);
    neap_heap_t *h = heap();
    neap_pool_t *pool = _neap_block_pool(remote_blocks[0]);
    neap_arena_t *a = _neap_arena_of((uintptr_t)pool);
    CHECK(_neap_block_pool(remote_blocks[REMOTE_N - 1]) == pool);
    uint16_t used = pool->used;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, remote_free_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    /* waiting on the arena's stack, counted as used */
    CHECK(list_len(atomic_load(&a->remote)) == REMOTE_N);
    CHECK(atomic_load(&h->remote_pending) == 1);
    CHECK(pool->used == used);
    _neap_heap_validate(h);
    /* the next slow path drains them (a class never used here takes one) */
    void *p = neap_malloc(_neap_class[cls + 3].size);
    CHECK(atomic_load(&a->remote) == NULL && atomic_load(&h->remote_pending) == 0);
    CHECK(pool->used == used - REMOTE_N);
    _neap_heap_validate(h);
    neap_free(p);
}

/* ---------------------------------------------------------------------------
 * purge: the batch of ranges (os.c) and the heap's purge of everything
 * once over NEAP_PURGE_MAX
 * ------------------------------------------------------------------------- */
#define PG ((size_t)NEAP_PAGE_SIZE)

/* Whether page i of the mapping at m is resident. */
static bool
resident(const char *m, size_t i)
{
    unsigned char v = 0;
    CHECK(mincore((void *)(m + i * PG), PG, &v) == 0);
    return v & 1;
}

/* The kernel takes MADV_DONTNEED through process_madvise with the
 * PIDFD_SELF sentinel from Linux 6.14 on. */
static bool
kernel_batches(void)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
        return false;
    return major > 6 || (major == 6 && minor >= 14);
}

/* Every other page of a fresh mapping of 2n pages into a batch, flushed:
 * those pages read zero and leave RSS, the others keep their bytes.
 * Returns the system calls the flush made. */
static size_t
purge_every_other(size_t n, bool plain)
{
    char *m = _neap_os_map(2 * n * PG);
    CHECK(m != NULL);
    for (size_t i = 0; i < 2 * n; i++)
        memset(m + i * PG, (int)(i % 251) + 1, PG);
    neap_purge_batch_t b;
    _neap_purge_batch_init(&b);
    CHECK(b.plain == plain);
    for (size_t i = 0; i < n; i++)
        _neap_os_purge_add(&b, m + 2 * i * PG, PG);
    _neap_os_purge_flush(&b);
    CHECK(b.n == 0 && b.bytes == 0);
    for (size_t i = 0; i < 2 * n; i++) {
        bool gone = i % 2 == 0;
        CHECKF(resident(m, i) != gone, "page %zu of %zu resident %d", i, 2 * n, resident(m, i));
        CHECKF(m[i * PG] == (gone ? 0 : (char)(i % 251 + 1)) &&
                   m[i * PG + PG - 1] == (gone ? 0 : (char)(i % 251 + 1)),
               "page %zu reads %d", i, m[i * PG]);
    }
    _neap_os_unmap(m, 2 * n * PG);
    return b.calls;
}

static long
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    CHECK(f != NULL && fscanf(f, "%ld %ld", &size, &res) == 2);
    fclose(f);
    return res * (long)sysconf(_SC_PAGESIZE);
}

static void
test_purge(void)
{
    /* adjacent ranges join; a gap starts a new range */
    char *m = _neap_os_map(8 * PG);
    CHECK(m != NULL);
    memset(m, 1, 8 * PG);
    neap_purge_batch_t b;
    _neap_purge_batch_init(&b);
    _neap_os_purge_add(&b, m, PG);
    _neap_os_purge_add(&b, m + PG, 2 * PG);
    _neap_os_purge_add(&b, m + 4 * PG, PG);
    _neap_os_purge_add(&b, m + 5 * PG, PG);
    CHECK(b.n == 2 && b.bytes == 5 * PG);
    CHECK(b.range[0].base == m && b.range[0].len == 3 * PG);
    CHECK(b.range[1].base == m + 4 * PG && b.range[1].len == 2 * PG);
    _neap_os_purge_flush(&b);
    for (size_t i = 0; i < 8; i++)
        CHECKF(resident(m, i) == (i == 3 || i >= 6), "page %zu", i);
    _neap_os_unmap(m, 8 * PG);

    /* more ranges than a batch holds: flushed when full, then at the end;
     * one call per batch where the kernel takes it, else one per range */
    size_t n = NEAP_PURGE_BATCH + 44;
    size_t calls = purge_every_other(n, false);
    if (kernel_batches())
        CHECKF(calls == 2, "%zu ranges in %zu calls", n, calls);
    else
        CHECKF(calls >= 2 && calls <= n + 2, "%zu ranges in %zu calls", n, calls);
    /* NEAP_PURGE_BATCH=0: madvise per range */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_BATCH, 0) == 0);
    calls = purge_every_other(n, true);
    CHECKF(calls == n, "%zu ranges in %zu calls", n, calls);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_BATCH, 1) == 0);

    /* through the heap: 1-3 KiB blocks and 16-512 B ones, all but every
     * 100th freed in a random order, with NEAP_PURGE_MAX at 256 KiB (the
     * delay is an hour): the heap never holds more dirty pages than that,
     * a purge gives back every dirty page, every page that emptied is dirty or was purged (bytes_purged exact),
     * and RSS falls by most of what was purged */
    enum { N = 12000 };
    size_t max = 256 * KiB;
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, (long)max) == 0);
    static void *blk[N];
    static unsigned order[N];
    uint64_t seed = xs_seed(14);
    for (size_t i = 0; i < N; i++) {
        blk[i] = neap_malloc(i % 5 == 0 ? xs_range(&seed, 1024, 3072) : xs_range(&seed, 16, 512));
        CHECK(blk[i] != NULL);
        memset(blk[i], 7, 16);
        order[i] = (unsigned)i;
    }
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = xs_range(&seed, 0, i);
        unsigned t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    neap_heap_t *h = heap();
    neap_stats_t before, after;
    neap_stats_get(&before);
    long rss0 = rss_bytes();
    size_t dirty = h->dirty_pages, purges = 0;
    for (size_t k = 0; k < N; k++) {
        if (order[k] % 100 == 0)
            continue;
        neap_free(blk[order[k]]);
        CHECKF(h->dirty_pages <= max / PG, "after %zu frees: %zu dirty pages", k, h->dirty_pages);
        if (h->dirty_pages < dirty) {   /* a purge: all of them, not just enough to get below */
            CHECKF(h->dirty_pages == 0, "after %zu frees: purged down to %zu pages", k, h->dirty_pages);
            purges++;
        }
        dirty = h->dirty_pages;
    }
    CHECK(purges > 0);
    neap_stats_get(&after);
    long rss1 = rss_bytes();
    size_t emptied = before.pages_used - after.pages_used;
    size_t purged = after.bytes_purged - before.bytes_purged;
    CHECKF(purged % PG == 0 && purged / PG + (after.pages_dirty - before.pages_dirty) == emptied,
           "pages emptied %zu, purged %zu, dirty %zu -> %zu", emptied, purged / PG, before.pages_dirty,
           after.pages_dirty);
    CHECK(purged > 2 * MiB);
#ifndef __SANITIZE_THREAD__
    /* (under ThreadSanitizer the shadow of the purged pages stays, and RSS
     * tells little) */
    CHECKF(rss0 - rss1 >= (long)purged / 2, "purged %zu bytes, RSS %ld -> %ld", purged, rss0, rss1);
#else
    (void)rss0;
    (void)rss1;
#endif
    _neap_heap_validate(h);
    for (size_t i = 0; i < N; i += 100)
        neap_free(blk[i]);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 8 << 20) == 0);
    _neap_validate_all();
}

/* ---------------------------------------------------------------------------
 * trim
 * ------------------------------------------------------------------------- */
static void
test_trim(void)
{
    uint64_t seed = xs_seed(7);
    void *keep[200];
    for (size_t i = 0; i < 200; i++) {
        size_t size = xs_range(&seed, 1, 64 * KiB);
        void *junk = neap_malloc(size);
        keep[i] = neap_malloc(xs_range(&seed, 1, 2 * KiB));
        neap_free(junk);
    }
    for (size_t i = 0; i < 200; i += 2)
        neap_free(keep[i]);
    neap_heap_t *h = heap();
    CHECK(h->dirty_pages > 0);
    neap_trim();
    CHECK(h->dirty_pages == 0 && h->dirty_head == NULL && h->empty_arenas == 0);
    for (neap_arena_t *a = h->arenas; a != NULL; a = a->hnext) {
        CHECK(a->pages_dirty == 0 && !a->in_dirty && a->pages_used > 0);
        for (size_t w = 0; w < NEAP_MAP_WORDS; w++)
            CHECK(a->dirty_map[w] == 0 && a->young_map[w] == 0);
    }
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        CHECK(h->spare[c] == 0);
        CHECK(h->direct[c] == &_neap_pool_empty || out_of(h->direct[c]) > 0);
    }
    _neap_heap_validate(h);
    for (size_t i = 1; i < 200; i += 2)
        neap_free(keep[i]);
    _neap_validate_all();
}

/* ---------------------------------------------------------------------------
 * validate
 * ------------------------------------------------------------------------- */
#define SLOTS 2048
static void *slots[SLOTS];
static void *handoff[SLOTS];
static size_t nhandoff;

static void *
handoff_thread(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nhandoff; i++)
        neap_free(handoff[i]);
    return NULL;
}

static void
test_validate(void)
{
    uint64_t seed = xs_seed(42);
    size_t rounds = (size_t)(20000 * test_scale());
    for (size_t r = 0; r < rounds; r++) {
        size_t i = xs_range(&seed, 0, SLOTS - 1);
        if (slots[i] != NULL) {
            if (nhandoff < SLOTS && xs_range(&seed, 0, 3) == 0)
                handoff[nhandoff++] = slots[i];
            else
                neap_free(slots[i]);
            slots[i] = NULL;
            continue;
        }
        size_t pick = xs_range(&seed, 0, 99), size;
        if (pick < 70)
            size = xs_range(&seed, 1, NEAP_SMALL_MAX);
        else if (pick < 95)
            size = xs_range(&seed, NEAP_SMALL_MAX, NEAP_MEDIUM_MAX);
        else if (pick < 99)
            size = xs_range(&seed, NEAP_MEDIUM_MAX, NEAP_LARGE_MAX);
        else
            size = xs_range(&seed, NEAP_LARGE_MAX + 1, 3 * NEAP_LARGE_MAX);
        slots[i] = neap_malloc(size);
        CHECK(slots[i] != NULL);
        memset(slots[i], (int)i, size < 64 ? size : 64);
        if (r % 1024 == 0) {
            _neap_heap_validate(heap());
            if (nhandoff > 0) {   /* another thread frees some: remote frees */
                pthread_t t;
                CHECK(pthread_create(&t, NULL, handoff_thread, NULL) == 0);
                CHECK(pthread_join(t, NULL) == 0);
                nhandoff = 0;
                _neap_heap_validate(heap());   /* before the drain */
            }
        }
    }
    _neap_validate_all();
    for (size_t i = 0; i < SLOTS; i++)
        neap_free(slots[i]);
    for (size_t i = 0; i < nhandoff; i++)
        neap_free(handoff[i]);
    _neap_validate_all();
    neap_trim();
    _neap_validate_all();
}

/* ---------------------------------------------------------------------------
 * corrupt: each case corrupts the state of a child, which must then die in
 * the validator with the message naming the invariant
 * ------------------------------------------------------------------------- */
typedef struct corrupt_s {
    const char *name;
    const char *expect;   /* NULL: the child must pass */
    void (*run)(void);
} corrupt_t;

static size_t cls80;
static void *blk[8];           /* blocks of class cls80, one pool */
static void *other;            /* a block of another class's pool */

/* blk[0..7] from one pool, blk[1] and blk[2] back on its local_free */
static void
setup_pool(void)
{
    cls80 = _neap_class_of(80);
    for (size_t i = 0; i < 8; i++)
        blk[i] = neap_malloc(80);
    other = neap_malloc(200);
    neap_free(blk[1]);
    neap_free(blk[2]);
}

static neap_pool_t *
pool80(void)
{
    return _neap_block_pool(blk[0]);
}

static void
c_clean(void)
{
    setup_pool();
    _neap_heap_validate(heap());
}

static void
c_link_other_pool(void)
{
    setup_pool();
    /* blk[2] is local_free's head; its link now leads into another pool */
    _neap_link_set((neap_block_t *)blk[2], (neap_block_t *)other);
    _neap_heap_validate(heap());
}

static void
c_cycle(void)
{
    setup_pool();
    _neap_link_set((neap_block_t *)blk[1], (neap_block_t *)blk[2]);
    _neap_heap_validate(heap());
}

static void
c_used(void)
{
    setup_pool();
    pool80()->used++;
    _neap_heap_validate(heap());
}

static void
c_header(void)
{
    setup_pool();
    pool80()->block_size = 96;
    _neap_heap_validate(heap());
}

static void
c_kind_cont(void)
{
    void *p = neap_malloc(12 * NEAP_PAGE_SIZE);   /* a large run */
    neap_arena_t *a = _neap_arena_of((uintptr_t)p);
    size_t head = _neap_page_index((uintptr_t)p);
    _neap_kind_set(a, head + 3, NEAP_PK(NEAP_PS_CONT, 2));
    _neap_heap_validate(heap());
}

static void
c_kind_full(void)
{
    setup_pool();
    /* the direct pool, with free blocks, said to be FULL */
    neap_pool_t *pool = pool80();
    _neap_kind_set(_neap_arena_of((uintptr_t)pool), _neap_page_index((uintptr_t)pool),
                   NEAP_PK(NEAP_PS_FULL, 0));
    _neap_heap_validate(heap());
}

static void
c_kind_stray_cont(void)
{
    setup_pool();
    neap_arena_t *a = _neap_arena_of((uintptr_t)blk[0]);
    size_t i = NEAP_ARENA_PAGES - 1;   /* a free page at the arena's end */
    CHECK(!map_bit(a->used_map, i));
    _neap_kind_set(a, i, NEAP_PK(NEAP_PS_CONT, 1));
    _neap_heap_validate(heap());
}

static void
c_dirty_used(void)
{
    setup_pool();
    neap_arena_t *a = _neap_arena_of((uintptr_t)blk[0]);
    size_t i = _neap_page_index((uintptr_t)blk[0]);
    a->dirty_map[i / 64] |= 1ull << (i % 64);
    a->pages_dirty++;
    _neap_heap_validate(heap());
}

static void
c_pages_dirty(void)
{
    setup_pool();
    neap_free(neap_malloc(10 * NEAP_PAGE_SIZE));   /* a large run freed: dirty pages */
    neap_arena_t *a = _neap_arena_of((uintptr_t)blk[0]);
    CHECK(a->pages_dirty > 0);
    a->pages_dirty--;
    heap()->dirty_pages--;
    _neap_heap_validate(heap());
}

static void
c_young(void)
{
    setup_pool();
    neap_arena_t *a = _neap_arena_of((uintptr_t)blk[0]);
    size_t i = NEAP_ARENA_PAGES - 1;
    a->young_map[i / 64] |= 1ull << (i % 64);
    _neap_heap_validate(heap());
}

static void
c_dirty_sum(void)
{
    setup_pool();
    neap_free(neap_malloc(10 * NEAP_PAGE_SIZE));
    heap()->dirty_pages += 3;
    _neap_heap_validate(heap());
}

static void
c_unlinked(void)
{
    /* a pool on the partial list that no longer says linked */
    size_t cap = _neap_class[_neap_class_of(80)].capacity;
    void **v = neap_malloc((cap + 1) * sizeof *v);
    for (size_t i = 0; i <= cap; i++)
        v[i] = neap_malloc(80);
    neap_free(v[0]);
    neap_pool_t *pool = _neap_block_pool(v[1]);
    CHECK(pool->linked);
    pool->linked = 0;
    _neap_heap_validate(heap());
}

static void
c_spare(void)
{
    size_t cls = run_class();
    void *b = neap_malloc(_neap_class[cls].size);
    neap_free(b);
    CHECK(heap()->spare[cls] == (uintptr_t)b);
    heap()->spare[cls] = 0;
    _neap_heap_validate(heap());
}

static void
c_narenas(void)
{
    setup_pool();
    heap()->narenas++;
    _neap_heap_validate(heap());
}

static void
c_remote(void)
{
    /* a block on the remote stack that is no block: the gap between its
     * pool's header and block 0 */
    setup_pool();
    neap_arena_t *a = _neap_arena_of((uintptr_t)blk[0]);
    CHECK(pool80()->first > NEAP_POOL_HEADER_SPACE);
    neap_block_t *fake = (neap_block_t *)((char *)pool80() + NEAP_POOL_HEADER_SPACE);
    _neap_link_set(fake, NULL);
    atomic_store(&a->remote, fake);
    _neap_heap_validate(heap());
}

static void
c_huge(void)
{
    void *p = neap_malloc(3 * NEAP_LARGE_MAX);
    uintptr_t base = _neap_huge_base((uintptr_t)p, _neap_map_kind((uintptr_t)p));
    CHECK(base != 0);
    neap_free(p);   /* cached: NEAP_PURGE_DELAY is an hour */
    CHECK(atomic_load(&_neap_gstats.huge_cached) > 0);
    _neap_huge_cache_validate();
    ((uint64_t *)base)[3] = 0;   /* the header's magic (map_size, user, usable, magic) */
    _neap_huge_cache_validate();
}

static void
c_option(void)
{
    /* NEAP_VALIDATE at a slow path, in any build */
    setup_pool();
    CHECK(neap_option_set(NEAP_OPTION_VALIDATE, 1) == 0);
    pool80()->used--;
    void *p = neap_malloc(20000);   /* a class not used yet: a slow path */
    neap_free(p);
}

static void
c_level(void)
{
    /* the debug build's own validation: every NEAP_VALIDATE_DEBUG_EVERY
     * slow paths at level 2 (every one at 3); none in a release build */
    setup_pool();
    pool80()->used--;
    for (size_t i = 0; i < 4 * NEAP_VALIDATE_DEBUG_EVERY; i++)
        neap_free(neap_malloc(64 * KiB));   /* large: two slow paths */
}

static const corrupt_t corrupt_cases[] = {
    {"clean", NULL, c_clean},
    {"link-other-pool", "local_free block is not a carved block of its pool", c_link_other_pool},
    {"cycle", "block twice on the pool's free lists", c_cycle},
    {"used", "pool counts: bumped = used + |free| + |local_free|", c_used},
    {"header", "pool header does not match its class", c_header},
    {"kind-cont", "a run's later page is CONT with the distance back to its head", c_kind_cont},
    {"kind-full", "a FULL pool has no free block", c_kind_full},
    {"kind-stray-cont", "a CONT page follows its run's head", c_kind_stray_cont},
    {"dirty-used", "used_map and dirty_map are disjoint", c_dirty_used},
    {"pages-dirty", "pages_dirty is the number of bits in dirty_map", c_pages_dirty},
    {"young", "young_map is a subset of dirty_map", c_young},
    {"dirty-sum", "dirty_pages is the sum of pages_dirty over the dirty queue", c_dirty_sum},
    {"unlinked", "a POOL pool is in exactly one place", c_unlinked},
    {"spare", "a run is SPARE exactly when it is its heap's spare of its class", c_spare},
    {"narenas", "narenas counts the heap's arena list", c_narenas},
    {"remote", "a remote-freed block is a carved block of its pool", c_remote},
    {"huge", "a cached huge mapping's header says CACHED", c_huge},
    {"option", "pool counts: bumped = used + |free| + |local_free|", c_option},
#if NEAP_DEBUG >= 2
    {"level", "pool counts: bumped = used + |free| + |local_free|", c_level},
#else
    {"level", NULL, c_level},
#endif
};

static void
corrupt_one(const corrupt_t *c)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        c->run();
        _exit(0);
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fds[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (c->expect == NULL) {
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "case %s: status %#x, output: %s", c->name,
               status, out);
        return;
    }
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "case %s: status %#x, output: %s", c->name,
           status, out);
    CHECKF(strstr(out, "neap: invariant violated: ") != NULL && strstr(out, c->expect) != NULL,
           "case %s: expected \"%s\", got: %s", c->name, c->expect, out);
    printf("%-16s %s", c->name, out);
}

static void
test_corrupt(void)
{
    for (size_t i = 0; i < sizeof corrupt_cases / sizeof corrupt_cases[0]; i++)
        corrupt_one(&corrupt_cases[i]);
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } sections[] = {
        {"pool", test_pool},     {"large", test_large},       {"remote", test_remote},
        {"trim", test_trim},     {"validate", test_validate}, {"corrupt", test_corrupt},
        {"empty", test_empty_list}, {"purge", test_purge},
    };
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 3600000) == 0);
    int ran = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (argc > 1 && strcmp(argv[1], sections[i].name) != 0)
            continue;
        sections[i].fn();
        ran++;
    }
    CHECKF(ran > 0, "unknown section %s", argc > 1 ? argv[1] : "");
    return test_status();
}

/* test_api.c -- behaviour of every public call (label: api).
 *
 * Linked against neap_static, so malloc and friends are neap as well; both
 * the neap_* names and the C library names are exercised.  Each section
 * checks one call's contract from include/neap.h:
 *
 *   sizes        0 .. 8 MiB across the small/medium/large/huge tiers:
 *                non-NULL, 16-aligned, owned, usable >= size, usable ==
 *                good_size for small/medium, page alignment above 32 KiB,
 *                no two live blocks overlap
 *   aligned      aligned_alloc / posix_memalign / memalign / valloc / pvalloc
 *                for alignments 1 .. 2 MiB, bad alignments, *out untouched
 *   realloc      contents kept across every tier transition and back,
 *                realloc(NULL, n), realloc(p, 0), failure keeps the block
 *   calloc       zeroing, including reuse of a dirty freed block, overflow
 *   reallocarray overflow
 *   good_size    monotonic, >= size, idempotent, equals usable size
 *   owns         live blocks vs stack, globals, libc data, interior
 *                pointers, freed blocks, foreign (even PROT_NONE) mappings
 *   options      get/set round trip, names, bad ids
 *   env          options from NEAP_* environment variables (run by CMake
 *                with a prepared environment)
 *   trim         1 when free pages are given back, then 0
 *   purge        an empty page goes back once empty for NEAP_PURGE_DELAY
 *                (one that empties just before its arena's turn waits a
 *                round; mincore tells)
 *   huge         the cache of freed huge mappings (reuse at the same address
 *                without a system call, calloc zero, best fit with the tail
 *                given back, the NEAP_PURGE_MAX and slot bounds, no cache at
 *                NEAP_PURGE_DELAY 0, expiry while only small blocks are
 *                allocated, neap_trim empties it, another thread's free,
 *                alignment); realloc of huge blocks with mremap (contents
 *                and statistics through growth and shrinking, a forced move
 *                to a new aligned address, large <-> huge)
 *   stats        bytes_live / class counters / huge and large counters
 *   process      neap_process_memory sane and follows a big block
 *   libc         malloc/strdup/getline etc. really are neap
 *
 * In sanitizer builds (NEAP_TEST_NO_OVERRIDE, see neap_test.h) the C library
 * names are macros for the neap_* calls and the libc section does nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "neap.h"
#include "neap_test.h"

#define SMALL_MAX 512
#define MEDIUM_MAX (32 * KiB)
#define LARGE_MAX MiB

static int a_global = 42;

static const size_t size_list[] = {
    0, 1, 2, 7, 8, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128,
    255, 256, 257, 500, 511, 512, 513, 600, 640, 641, 700, 1000, 1023, 1024,
    1025, 2000, 4095, 4096, 4097, 8000, 16384, 20000, 32767, 32768, 32769,
    40000, 65536, 100000, 262144, 500000, MiB - 1, MiB, MiB + 1, 3 * MiB / 2,
    2 * MiB, 3 * MiB + 5, 8 * MiB,
};
#define N_SIZES (sizeof size_list / sizeof size_list[0])

/* Memory that is certainly not neap's: a fresh mapping whose start is 4 MiB
 * aligned (an arena's alignment), so a check that looks for an arena header
 * at p & ~(4 MiB - 1) looks at memory neap never wrote. */
struct iv {
    uintptr_t lo, hi;
};
static int
iv_cmp(const void *a, const void *b)
{
    const struct iv *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}
/* The blocks [p[i], p[i] + usable(p[i])) must not overlap. */
static void
check_disjoint(void **p, size_t n)
{
    struct iv *v = calloc(n, sizeof *v);
    size_t i;
    CHECK(v != NULL);
    for (i = 0; i < n; i++) {
        v[i].lo = (uintptr_t)p[i];
        v[i].hi = v[i].lo + neap_usable_size(p[i]);
    }
    qsort(v, n, sizeof *v, iv_cmp);
    for (i = 1; i < n; i++)
        CHECKF(v[i - 1].hi <= v[i].lo, "blocks %#lx..%#lx and %#lx..%#lx overlap",
               (unsigned long)v[i - 1].lo, (unsigned long)v[i - 1].hi,
               (unsigned long)v[i].lo, (unsigned long)v[i].hi);
    free(v);
}

/* ------------------------------------------------------------------------ */

/* A block fresh from an allocation call of n bytes.  `exact`: the usable
 * size must be good_size(n) for small and medium requests (not so for
 * realloc, which may keep a block that still fits). */
static void
check_block_ex(void *p, size_t n, int exact)
{
    size_t u;
    CHECKF(p != NULL, "size %zu", n);
    CHECKF(test_aligned(p, 16), "size %zu at %p", n, p);
    CHECKF(neap_owns(p), "size %zu at %p", n, p);
    u = neap_usable_size(p);
    CHECKF(u >= n, "size %zu usable %zu", n, u);
    CHECKF(u >= 16, "size %zu usable %zu", n, u);
    if (n <= MEDIUM_MAX) {
        if (exact)
            CHECKF(u == neap_good_size(n), "size %zu usable %zu good_size %zu", n, u,
                   neap_good_size(n));
    } else
        CHECKF(test_aligned(p, NEAP_PAGE_SIZE), "size %zu at %p not page aligned", n, p);
    CHECKF(malloc_usable_size(p) == u, "size %zu", n);
}

static void
check_block(void *p, size_t n)
{
    check_block_ex(p, n, 1);
}

static void
test_sizes_with(void *(*alloc)(size_t), void (*release)(void *), int check_freed)
{
    void *p[N_SIZES];
    size_t i;

    for (i = 0; i < N_SIZES; i++) {
        size_t n = test_launder_size(size_list[i]);
        p[i] = alloc(n);
        check_block(p[i], n);
        /* every usable byte is really usable */
        memset(p[i], 0xA5, neap_usable_size(p[i]));
        pat_fill(p[i], size_list[i], 1000 + i);
    }
    check_disjoint(p, N_SIZES);
    for (i = 0; i < N_SIZES; i++)
        CHECK_PATTERN(p[i], size_list[i], 1000 + i);
    for (i = 0; i < N_SIZES; i++)
        release(p[i]);
    /* nothing allocated since: none of them is live any more */
    for (i = 0; check_freed && i < N_SIZES; i++)
        CHECKF(!neap_owns(p[i]), "freed block of %zu bytes at %p still owned", size_list[i],
               p[i]);
}

static void *
libc_malloc(size_t n)
{
    return malloc(n);
}
static void
libc_free(void *p)
{
    free(p);
}

static void
test_sizes(void)
{
    void *a, *b;

    CHECK(neap_good_size(0) == 16);
    a = neap_malloc(0);
    b = neap_malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK(neap_usable_size(a) == 16);
    neap_free(a);
    neap_free(b);
    CHECK(neap_usable_size(NULL) == 0);
    neap_free(NULL);
    free(NULL);

    test_sizes_with(neap_malloc, neap_free, 0);
    test_sizes_with(libc_malloc, libc_free, 0);
    /* cross: neap_malloc then free, malloc then neap_free */
    a = neap_malloc(100);
    b = malloc(100);
    CHECK(a && b);
    free(a);
    neap_free(b);
    /* last, so that a failure here hides nothing else */
    test_sizes_with(neap_malloc, neap_free, 1);
}

/* ------------------------------------------------------------------------ */

enum { ALLOC_ALIGNED, ALLOC_POSIX, ALLOC_MEMALIGN, ALLOC_NEAP_ALIGNED, ALLOC_NEAP_POSIX };

static void *
aligned_with(int how, size_t align, size_t n)
{
    void *p = NULL;
    int r;
    switch (how) {
    case ALLOC_ALIGNED:
        return aligned_alloc(align, n);
    case ALLOC_MEMALIGN:
        return memalign(align, n);
    case ALLOC_NEAP_ALIGNED:
        return neap_aligned_alloc(align, n);
    case ALLOC_POSIX:
        r = posix_memalign(&p, align, n);
        CHECKF(r == 0, "posix_memalign(%zu, %zu) = %d", align, n, r);
        return p;
    default:
        r = neap_posix_memalign(&p, align, n);
        CHECKF(r == 0, "neap_posix_memalign(%zu, %zu) = %d", align, n, r);
        return p;
    }
}

static void
test_aligned_alloc(void)
{
    static const char *names[] = {"aligned_alloc", "posix_memalign", "memalign",
                                  "neap_aligned_alloc", "neap_posix_memalign"};
    int how;
    size_t align;

    for (how = ALLOC_ALIGNED; how <= ALLOC_NEAP_POSIX; how++) {
        size_t first = (how == ALLOC_POSIX || how == ALLOC_NEAP_POSIX) ? sizeof(void *) : 1;
        for (align = first; align <= 2 * MiB; align *= 2) {
            size_t sizes[] = {1, 16, align > 1 ? align - 1 : 1, align, align + 1,
                              3 * align / 2 + 1, 5000, 40000, 3 * MiB / 2};
            void *p[sizeof sizes / sizeof sizes[0]];
            size_t i, ns = sizeof sizes / sizeof sizes[0];
            for (i = 0; i < ns; i++) {
                size_t n = sizes[i];
                p[i] = aligned_with(how, align, n);
                CHECKF(p[i] != NULL, "%s(%zu, %zu)", names[how], align, n);
                CHECKF(test_aligned(p[i], align), "%s(%zu, %zu) = %p", names[how], align, n,
                       p[i]);
                CHECKF(test_aligned(p[i], 16), "%s(%zu, %zu) = %p", names[how], align, n, p[i]);
                CHECKF(neap_owns(p[i]), "%s(%zu, %zu) = %p", names[how], align, n, p[i]);
                CHECKF(neap_usable_size(p[i]) >= n, "%s(%zu, %zu) usable %zu", names[how], align,
                       n, neap_usable_size(p[i]));
                pat_fill(p[i], n, align * 31 + i);
            }
            check_disjoint(p, ns);
            for (i = 0; i < ns; i++) {
                CHECK_PATTERN(p[i], sizes[i], align * 31 + i);
                if (i % 2)
                    neap_free(p[i]);
                else
                    free(p[i]);
            }
        }
    }

    /* bad alignments */
    {
        static const size_t bad[] = {0, 3, 5, 12, 24, 48, 100, 4097, ((size_t)1 << 20) + 16};
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            void *p;
            errno = 0;
            p = aligned_alloc(bad[i], 64);
            CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d", bad[i],
                   p, errno);
            errno = 0;
            p = neap_aligned_alloc(bad[i], 64);
            CHECKF(p == NULL && errno == EINVAL, "neap_aligned_alloc(%zu, 64) = %p errno %d",
                   bad[i], p, errno);
        }
    }
    {
        static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 48, 100, 4097};
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            void *p = &a_global;
            int r = posix_memalign(&p, bad[i], 64);
            CHECKF(r == EINVAL, "posix_memalign(%zu) = %d", bad[i], r);
            CHECK(p == &a_global); /* *out untouched on error */
            r = neap_posix_memalign(&p, bad[i], 64);
            CHECKF(r == EINVAL, "neap_posix_memalign(%zu) = %d", bad[i], r);
            CHECK(p == &a_global);
        }
    }
    /* size 0 */
    {
        void *p = &a_global;
        CHECK(posix_memalign(&p, 64, 0) == 0);
        CHECK(p != &a_global);
        if (p != NULL) {
            CHECK(test_aligned(p, 64) && neap_owns(p));
            free(p);
        }
        p = neap_aligned_alloc(256, 0);
        if (p != NULL) {
            CHECK(test_aligned(p, 256) && neap_owns(p));
            neap_free(p);
        }
    }
    /* size 0 at every alignment, the huge ones (2 MiB and more) included: a
     * live block of neap that free, realloc and usable_size accept */
    for (how = ALLOC_ALIGNED; how <= ALLOC_NEAP_POSIX; how++) {
        for (align = 16; align <= 64 * MiB; align *= 2) {
            char *p = aligned_with(how, align, 0), *q;
            CHECKF(p != NULL, "%s(%zu, 0)", names[how], align);
            if (p == NULL)
                continue;
            CHECKF(test_aligned(p, align), "%s(%zu, 0) = %p", names[how], align, p);
            CHECKF(neap_owns(p), "%s(%zu, 0) = %p not owned", names[how], align, p);
            CHECKF(neap_usable_size(p) >= 1, "%s(%zu, 0) usable %zu", names[how], align,
                   neap_usable_size(p));
            p[0] = 7; /* inside its own mapping */
            if (how % 2) {
                neap_free(p);
                continue;
            }
            q = realloc(p, 100);
            CHECKF(q != NULL && q[0] == 7, "realloc of %s(%zu, 0)", names[how], align);
            free(q);
        }
    }
    /* valloc / pvalloc */
    {
        static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 40000, 2 * MiB + 1};
        size_t i;
        for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i], rounded = (n + 4095) & ~(size_t)4095;
            void *p = valloc(n), *q = pvalloc(n);
            CHECKF(p && test_aligned(p, 4096) && neap_owns(p), "valloc(%zu) = %p", n, p);
            CHECKF(neap_usable_size(p) >= n, "valloc(%zu)", n);
            CHECKF(q && test_aligned(q, 4096) && neap_owns(q), "pvalloc(%zu) = %p", n, q);
            CHECKF(neap_usable_size(q) >= rounded, "pvalloc(%zu) usable %zu", n,
                   neap_usable_size(q));
            memset(p, 1, n);
            memset(q, 2, rounded);
            free(p);
            free(q);
        }
    }
    /* impossible requests: ENOMEM, *out untouched, no crash */
    {
        void *p = &a_global;
        size_t huge = test_launder_size(SIZE_MAX / 2);
        int r = posix_memalign(&p, 64, huge);
        CHECKF(r == ENOMEM, "posix_memalign(64, SIZE_MAX/2) = %d", r);
        CHECK(p == &a_global);
        r = neap_posix_memalign(&p, 4096, huge);
        CHECKF(r == ENOMEM, "neap_posix_memalign(4096, SIZE_MAX/2) = %d", r);
        CHECK(p == &a_global);
        errno = 0;
        p = neap_aligned_alloc(4096, huge);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = neap_aligned_alloc(test_launder_size((size_t)1 << 62), 16);
        CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(2^62, 16) = %p errno %d", p, errno);
    }
}

/* ------------------------------------------------------------------------ */

/* Walk a block through `steps`, checking at each step that the common
 * prefix survived and that the block is sane. */
static void
realloc_chain(void *(*re)(void *, size_t), const size_t *steps, size_t nsteps, uint64_t tag)
{
    void *p = NULL;
    size_t old = 0, i;
    for (i = 0; i < nsteps; i++) {
        size_t n = steps[i];
        void *q = re(p, n);
        CHECKF(q != NULL, "realloc(%p, %zu) from %zu", p, n, old);
        check_block_ex(q, n, 0);
        CHECK_PATTERN(q, old < n ? old : n, tag);
        pat_fill(q, n, tag);
        p = q;
        old = n;
    }
    neap_free(p);
}

static void *
libc_realloc(void *p, size_t n)
{
    return realloc(p, n);
}

static void
test_realloc(void)
{
    static const size_t up_down[] = {
        1, 10, 16, 17, 100, 500, 512, 513, 600, 1000, 5000, 32768, 32769, 40000, 500000,
        MiB, MiB + 1, 2 * MiB, 9 * MiB, 9 * MiB + 4096, 2 * MiB, MiB + 1, MiB, 500000, 40000,
        32769, 32768, 5000, 1000, 513, 512, 100, 17, 16, 10, 1, 3 * MiB, 7, 65536, 12,
    };
    size_t nsteps = sizeof up_down / sizeof up_down[0];
    realloc_chain(neap_realloc, up_down, nsteps, 0x1111);
    realloc_chain(libc_realloc, up_down, nsteps, 0x2222);

    /* a long random walk with sizes spread over all tiers (log-uniform) */
    {
        size_t steps[3000], i;
        uint64_t s = xs_seed(7);
        for (i = 0; i < 3000; i++) {
            unsigned bits = (unsigned)xs_range(&s, 0, 22); /* up to 4 MiB */
            steps[i] = xs_range(&s, 1, ((size_t)1 << bits)); /* 0: see below */
        }
        realloc_chain(neap_realloc, steps, 3000, 0x3333);
    }

    /* a large block grows in place into the free pages after it, and moves
     * (contents kept) when the page after it is taken */
    {
        void *p = neap_malloc(100000), *q, *r, *wall;
        CHECK(p != NULL);
        pat_fill(p, 100000, 41);
        /* the run after p is free unless something was placed there: put
         * nothing there, grow by a page at a time */
        q = neap_realloc(p, 100000 + 4096);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 100000, 41);
        r = neap_realloc(q, 200000);
        CHECK(r != NULL);
        CHECK_PATTERN(r, 100000, 41);
        CHECK(neap_usable_size(r) >= 200000);
        /* a block right after it: growing must move, and keep the contents */
        wall = neap_malloc(300000);
        CHECK(wall != NULL);
        if ((char *)wall == (char *)r + neap_usable_size(r)) {
            q = neap_realloc(r, 400000);
            CHECK(q != NULL && q != r);
            CHECK_PATTERN(q, 100000, 41);
            r = q;
        }
        neap_free(wall);
        /* the block after it freed: it grows where it is */
        {
            char *a = neap_malloc(150000), *b = neap_malloc(150000), *g;
            int adjacent;
            CHECK(a != NULL && b != NULL);
            adjacent = b == a + neap_usable_size(a);
            pat_fill(a, 150000, 43);
            neap_free(b);
            g = neap_realloc(a, 150000 + 8192);
            CHECK(g != NULL);
            CHECK_PATTERN(g, 150000, 43);
            if (adjacent) CHECKF(g == a, "realloc moved a large block with free pages after it");
            neap_free(g);
        }
        neap_free(r);
    }

    /* realloc(NULL, n) is malloc(n) */
    {
        void *p = neap_realloc(NULL, 300), *q = realloc(NULL, 70000);
        check_block(p, 300);
        check_block(q, 70000);
        neap_free(p);
        free(q);
    }
    /* a failing realloc leaves the block as it was */
    {
        static const size_t from[] = {100, 5000, 100000, 3 * MiB};
        size_t i;
        for (i = 0; i < sizeof from / sizeof from[0]; i++) {
            void *p = neap_malloc(from[i]), *q;
            CHECK(p != NULL);
            pat_fill(p, from[i], 99 + i);
            errno = 0;
            q = neap_realloc(p, test_launder_size(SIZE_MAX / 2));
            CHECKF(q == NULL && errno == ENOMEM, "realloc(%zu -> SIZE_MAX/2) = %p errno %d",
                   from[i], q, errno);
            errno = 0;
            q = realloc(test_launder(p), test_launder_size(SIZE_MAX - 64));
            CHECKF(q == NULL && errno == ENOMEM, "realloc(%zu -> SIZE_MAX-64) = %p errno %d",
                   from[i], q, errno);
            CHECK(neap_owns(p));
            CHECK_PATTERN(p, from[i], 99 + i);
            neap_free(p);
        }
    }
    /* realloc of over-aligned blocks keeps the contents */
    {
        size_t align;
        for (align = 32; align <= 2 * MiB; align *= 4) {
            void *p = neap_aligned_alloc(align, 3000), *q;
            CHECK(p != NULL);
            pat_fill(p, 3000, align);
            q = neap_realloc(p, 200000);
            CHECK(q != NULL);
            CHECK_PATTERN(q, 3000, align);
            q = neap_realloc(q, 100);
            CHECK(q != NULL);
            CHECK_PATTERN(q, 100, align);
            neap_free(q);
        }
    }
    /* realloc(p, 0) frees p and returns a fresh minimal block (neap.h) */
    {
        static const size_t from[] = {1, 100, 5000, 100000, 3 * MiB};
        size_t i;
        void *q;
        for (i = 0; i < sizeof from / sizeof from[0]; i++) {
            void *p = neap_malloc(from[i]);
            CHECK(p != NULL);
            memset(p, 7, from[i]);
            q = neap_realloc(p, 0);
            CHECKF(q != NULL, "realloc(p of %zu, 0) returned NULL", from[i]);
            check_block_ex(q, 0, 0);
            if (q != p)
                CHECKF(!neap_owns(p), "realloc(p of %zu, 0) kept p alive", from[i]);
            neap_free(q);
        }
        q = realloc(malloc(10), 0); /* the C library name behaves the same */
        CHECKF(q != NULL, "realloc(p of 10, 0) returned NULL");
        free(q);
    }
}

/* ------------------------------------------------------------------------ */

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;
    for (i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static void
test_calloc(void)
{
    size_t i;

    for (i = 0; i < N_SIZES; i++) {
        size_t n = size_list[i];
        void *p = neap_calloc(1, n), *q = calloc(n, 1);
        check_block(p, n);
        check_block(q, n);
        CHECKF(all_zero(p, n), "calloc(1, %zu)", n);
        CHECKF(all_zero(q, n), "calloc(%zu, 1)", n);
        neap_free(p);
        free(q);
    }
    /* reuse of a freed, dirty block: write, free, calloc the same size */
    for (i = 0; i < N_SIZES; i++) {
        size_t n = size_list[i], round;
        for (round = 0; round < 3; round++) {
            void *p = malloc(n), *q;
            CHECK(p != NULL);
            memset(p, 0xCD, neap_usable_size(p));
            free(p);
            q = round == 1 ? neap_calloc(n, 1) : calloc(1, n);
            CHECK(q != NULL);
            CHECKF(all_zero(q, n), "calloc(%zu) after a dirty free (same address: %d)", n, p == q);
            free(q);
        }
    }
    /* many dirty blocks of a few classes, then as many callocs */
    {
        static const size_t cls[] = {16, 48, 512, 2048, 40000};
        size_t c;
        for (c = 0; c < sizeof cls / sizeof cls[0]; c++) {
            void *p[300];
            size_t k;
            for (k = 0; k < 300; k++) {
                p[k] = malloc(cls[c]);
                CHECK(p[k] != NULL);
                memset(p[k], 0xEE, cls[c]);
            }
            for (k = 0; k < 300; k++)
                free(p[k]);
            for (k = 0; k < 300; k++) {
                p[k] = calloc(cls[c] / 8, 8);
                CHECK(p[k] != NULL);
                CHECKF(all_zero(p[k], cls[c]), "calloc of class %zu, block %zu", cls[c], k);
            }
            for (k = 0; k < 300; k++)
                free(p[k]);
        }
    }
    /* zero-sized products */
    {
        void *p = calloc(0, test_launder_size(SIZE_MAX)), *q = neap_calloc(0, 0);
        CHECK(p != NULL && q != NULL);
        free(p);
        neap_free(q);
    }
    /* overflow of n * size */
    {
        static const size_t ov[][2] = {
            {SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX / 2 + 1, 2},
            {(size_t)1 << 32, (size_t)1 << 32}, {((size_t)1 << 33) + 1, (size_t)1 << 31},
            {SIZE_MAX / 16, 17},
        };
        for (i = 0; i < sizeof ov / sizeof ov[0]; i++) {
            size_t a = test_launder_size(ov[i][0]), b = test_launder_size(ov[i][1]);
            void *p;
            errno = 0;
            p = calloc(a, b);
            CHECKF(p == NULL && errno == ENOMEM, "calloc(%zu, %zu) = %p errno %d", a, b, p, errno);
            errno = 0;
            p = neap_calloc(a, b);
            CHECKF(p == NULL && errno == ENOMEM, "neap_calloc(%zu, %zu) = %p errno %d", a, b, p,
                   errno);
        }
    }
    /* no overflow, just too much */
    {
        void *p;
        errno = 0;
        p = neap_calloc(1, test_launder_size(SIZE_MAX / 2));
        CHECK(p == NULL && errno == ENOMEM);
    }
}

static void
test_reallocarray(void)
{
    void *p, *q;

    p = neap_reallocarray(NULL, 10, 8);
    check_block(p, 80);
    pat_fill(p, 80, 5);
    p = neap_reallocarray(p, 1000, 8);
    check_block_ex(p, 8000, 0);
    CHECK_PATTERN(p, 80, 5);
    pat_fill(p, 8000, 6);

    errno = 0;
    q = neap_reallocarray(p, test_launder_size(SIZE_MAX / 4), 8);
    CHECKF(q == NULL && errno == ENOMEM, "reallocarray overflow = %p errno %d", q, errno);
    CHECK(neap_owns(p));
    CHECK_PATTERN(p, 8000, 6);
    errno = 0;
    q = neap_reallocarray(NULL, test_launder_size(SIZE_MAX), test_launder_size(SIZE_MAX));
    CHECK(q == NULL && errno == ENOMEM);
    errno = 0;
    /* (laundered: the compiler takes p for freed after a realloc, failed or not) */
    q = reallocarray(test_launder(p), test_launder_size((size_t)1 << 40), (size_t)1 << 30);
    CHECK(q == NULL && errno == ENOMEM);
    CHECK_PATTERN(p, 8000, 6);

    p = reallocarray(p, 3, 7);
    check_block_ex(p, 21, 0);
    CHECK_PATTERN(p, 21, 6);
    free(p);
}

/* ------------------------------------------------------------------------ */

static void
test_good_size(void)
{
    size_t n, prev = 0;

    for (n = 0; n <= 70000; n++) {
        size_t g = neap_good_size(n);
        CHECKF(g >= n, "good_size(%zu) = %zu", n, g);
        CHECKF(g >= prev, "good_size(%zu) = %zu < good_size(%zu) = %zu", n, g, n - 1, prev);
        CHECKF(neap_good_size(g) == g, "good_size(good_size(%zu) = %zu) = %zu", n, g,
               neap_good_size(g));
        prev = g;
    }
    for (n = 70000; n <= 64 * MiB; n += 4099) {
        size_t g = neap_good_size(n);
        CHECKF(g >= n && g >= prev, "good_size(%zu) = %zu (previous %zu)", n, g, prev);
        prev = g;
    }
    /* the usable size of a real block is good_size for small and medium */
    for (n = 0; n <= MEDIUM_MAX; n += (n < 4096 ? 1 : 13)) {
        void *p = neap_malloc(n);
        CHECK(p != NULL);
        CHECKF(neap_usable_size(p) == neap_good_size(n), "size %zu usable %zu good %zu", n,
               neap_usable_size(p), neap_good_size(n));
        neap_free(p);
    }
    /* a request of exactly good_size(n) bytes fits the same class */
    for (n = 1; n <= MEDIUM_MAX; n += 37) {
        void *p = neap_malloc(neap_good_size(n));
        CHECK(neap_usable_size(p) == neap_good_size(n));
        neap_free(p);
    }
}

/* ------------------------------------------------------------------------ */

static void
test_owns(void)
{
    static const size_t sizes[] = {16, 64, 700, 32768, 40000, MiB, 3 * MiB};
    void *p[sizeof sizes / sizeof sizes[0]];
    size_t i;
    int local = 1;

    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = malloc(sizes[i]);
        CHECK(p[i] != NULL);
        CHECKF(neap_owns(p[i]), "live block of %zu", sizes[i]);
    }
    /* interior pointers are not the start of a block */
    CHECK(!neap_owns((char *)p[1] + 8));
    CHECK(!neap_owns((char *)p[1] + 16));
    CHECK(!neap_owns((char *)p[1] + 1));
    CHECK(!neap_owns((char *)p[2] + 16));
    CHECK(!neap_owns((char *)p[3] + 4096));
    CHECK(!neap_owns((char *)p[4] + 4096));
    CHECK(!neap_owns((char *)p[4] + 16));
    CHECK(!neap_owns((char *)p[5] + 4096));
    CHECK(!neap_owns((char *)p[6] + 4096));
    CHECK(!neap_owns((char *)p[6] + 2 * MiB));
    /* the start of a small pool's page is its header, never a block */
    {
        char *page = (char *)((uintptr_t)p[1] & ~(uintptr_t)(NEAP_PAGE_SIZE - 1));
        CHECK(!neap_owns(page));
        CHECK(!neap_owns(page + 16));
        CHECK(!neap_owns(page + 32));
        CHECK(neap_usable_size(page) == 0 && neap_usable_size(page + 16) == 0);
    }
    /* things neap never handed out */
    CHECK(!neap_owns(NULL));
    CHECK(!neap_owns((void *)16));
    CHECK(!neap_owns((void *)4096));
    CHECK(!neap_owns(test_launder(&local)));
    CHECK(!neap_owns(&a_global));
    CHECK(!neap_owns("a string literal"));
    CHECK(!neap_owns((void *)(uintptr_t)&test_owns));
    CHECK(!neap_owns(stdout));  /* glibc's static _IO_2_1_stdout_ */
    CHECK(!neap_owns(stderr));
    CHECK(!neap_owns(&errno));  /* glibc TLS */
    CHECK(!neap_owns(environ));
    CHECK(!neap_owns((void *)(uintptr_t)&malloc));
    CHECK(!neap_owns((void *)~(uintptr_t)15));
    CHECK(!neap_owns((void *)((uintptr_t)1 << 47)));
    /* foreign mappings, one of them unreadable: neap_owns must not read */
    {
        char *rw = map_aligned(NEAP_ARENA_SIZE, NEAP_ARENA_SIZE, PROT_READ | PROT_WRITE);
        char *none = map_aligned(NEAP_ARENA_SIZE, NEAP_ARENA_SIZE, PROT_NONE);
        memset(rw, 0xFF, NEAP_ARENA_SIZE / 2);
        memcpy(rw, p, sizeof p); /* pointers into neap memory, plausible looking */
        CHECK(!neap_owns(rw));
        CHECK(!neap_owns(rw + 64));
        CHECK(!neap_owns(rw + 4096));
        CHECK(!neap_owns(rw + 3 * NEAP_ARENA_SIZE / 4));
        CHECK(!neap_owns(none));
        CHECK(!neap_owns(none + 16));
        CHECK(!neap_owns(none + 5 * 4096 + 64));
        CHECK(!neap_owns(none + NEAP_ARENA_SIZE - 16));
        munmap(rw, NEAP_ARENA_SIZE);
        munmap(none, NEAP_ARENA_SIZE);
    }
    /* freed blocks are not live */
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(p[i]);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECKF(!neap_owns(p[i]), "freed block of %zu at %p still owned", sizes[i], p[i]);
}

/* ------------------------------------------------------------------------ */

static void
test_options(void)
{
    static const struct {
        neap_option_t opt;
        const char *name;
        long value;
    } opts[] = {
        {NEAP_OPTION_PURGE_DELAY, "PURGE_DELAY", 123},
        {NEAP_OPTION_PURGE_MAX, "PURGE_MAX", 3 << 20},
        {NEAP_OPTION_ARENA_RESERVE, "ARENA_RESERVE", 3},
        {NEAP_OPTION_SHOW_STATS, "SHOW_STATS", 0},
        {NEAP_OPTION_VERBOSE, "VERBOSE", 0},
        {NEAP_OPTION_STATS_FD, "STATS_FD", -1},
        {NEAP_OPTION_PUBLISH, "PUBLISH", 0},
        {NEAP_OPTION_RUN_PID, "RUN_PID", 0},
        {NEAP_OPTION_BACKGROUND, "BACKGROUND", 0},
        {NEAP_OPTION_TRACE_FRAMES, "TRACE_FRAMES", 7},
        {NEAP_OPTION_TRACE_SAMPLE, "TRACE_SAMPLE", 65536},
        {NEAP_OPTION_TRACE_UNWIND, "TRACE_UNWIND", 2},
        {NEAP_OPTION_VALIDATE, "VALIDATE", 1000},
        {NEAP_OPTION_PURGE_BATCH, "PURGE_BATCH", 0},
        {NEAP_OPTION_DEBUG_MALLOC, "DEBUG_MALLOC", 0},   /* fixed at start: set to what it is */
        {NEAP_OPTION_TRACE_PYTHON, "TRACE_PYTHON", 2},
        {NEAP_OPTION_MESH, "MESH", 0},                   /* fixed at start: set to what it is */
    };
    size_t i;

    /* the debug mode cannot be switched once blocks exist */
    errno = 0;
    CHECK(neap_option_set(NEAP_OPTION_DEBUG_MALLOC, 1) == -1 && errno == EBUSY);
    CHECK(neap_option_get(NEAP_OPTION_DEBUG_MALLOC) == 0);
    /* nor meshing, either way */
    {
        long mesh = neap_option_get(NEAP_OPTION_MESH);
        errno = 0;
        CHECK(neap_option_set(NEAP_OPTION_MESH, !mesh) == -1 && errno == EBUSY);
        CHECK(neap_option_get(NEAP_OPTION_MESH) == mesh);
    }

    CHECK(sizeof opts / sizeof opts[0] == NEAP_OPTION_COUNT);
    for (i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *name = neap_option_name(opts[i].opt);
        long old = neap_option_get(opts[i].opt);
        CHECKF(name != NULL && strstr(name, opts[i].name) != NULL, "option %d name %s",
               (int)opts[i].opt, name ? name : "(null)");
        CHECK(neap_option_set(opts[i].opt, opts[i].value) == 0);
        CHECKF(neap_option_get(opts[i].opt) == opts[i].value, "option %s: set %ld, get %ld",
               name, opts[i].value, neap_option_get(opts[i].opt));
        CHECK(neap_option_set(opts[i].opt, old) == 0);
        CHECK(neap_option_get(opts[i].opt) == old);
    }
    if (getenv("NEAP_PURGE_DELAY") == NULL) {
        long d = neap_option_get(NEAP_OPTION_PURGE_DELAY);
        CHECKF(d > 0 && d <= 10000, "default purge delay %ld ms", d);
    }
    /* unknown ids */
    {
        static const int bad[] = {NEAP_OPTION_COUNT, NEAP_OPTION_COUNT + 1, 1000, -1};
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            errno = 0;
            CHECKF(neap_option_set((neap_option_t)bad[i], 1) == -1 && errno == EINVAL,
                   "option_set(%d)", bad[i]);
            CHECKF(neap_option_name((neap_option_t)bad[i]) == NULL, "option_name(%d)", bad[i]);
        }
    }
}

/* Run with NEAP_PURGE_DELAY=7 NEAP_PURGE_MAX=3MiB NEAP_ARENA_RESERVE=bogus
 * (CMake's api_env test): the environment is read at start-up, sizes take
 * suffixes, a malformed value keeps the default and does not stop the
 * program. */
static void
test_env(void)
{
    const char *delay = getenv("NEAP_PURGE_DELAY"), *max = getenv("NEAP_PURGE_MAX");
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
    CHECKF(delay != NULL && strcmp(delay, "7") == 0, "run me with NEAP_PURGE_DELAY=7");
    CHECKF(max != NULL && strcmp(max, "3MiB") == 0, "run me with NEAP_PURGE_MAX=3MiB");
    CHECKF(neap_option_get(NEAP_OPTION_PURGE_DELAY) == 7, "PURGE_DELAY %ld from the environment",
           neap_option_get(NEAP_OPTION_PURGE_DELAY));
    CHECKF(neap_option_get(NEAP_OPTION_PURGE_MAX) == 3L << 20, "PURGE_MAX %ld from \"3MiB\"",
           neap_option_get(NEAP_OPTION_PURGE_MAX));
    CHECKF(neap_option_get(NEAP_OPTION_ARENA_RESERVE) >= 0, "ARENA_RESERVE %ld from \"bogus\"",
           neap_option_get(NEAP_OPTION_ARENA_RESERVE));
}

/* ------------------------------------------------------------------------ */

static void
test_trim(void)
{
    long old_delay = neap_option_get(NEAP_OPTION_PURGE_DELAY);
    long old_max = neap_option_get(NEAP_OPTION_PURGE_MAX);
    long old_reserve = neap_option_get(NEAP_OPTION_ARENA_RESERVE);
    enum { NSMALL = 40000, NLARGE = 20 };
    static void *small[NSMALL], *large[NLARGE];
    neap_stats_t s0, s1, s2;
    size_t i, peak_arenas;

    /* keep everything dirty until asked */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 1L << 40) == 0);
    CHECK(neap_option_set(NEAP_OPTION_ARENA_RESERVE, 0) == 0);
    neap_trim();

    for (i = 0; i < NSMALL; i++) { /* 40000 * 256 B = ~10 MB: several arenas */
        small[i] = malloc(256);
        CHECK(small[i] != NULL);
        memset(small[i], 1, 256);
    }
    for (i = 0; i < NLARGE; i++) {
        large[i] = malloc(100000);
        CHECK(large[i] != NULL);
        memset(large[i], 2, 100000);
    }
    neap_stats_get(&s0);
    peak_arenas = s0.arenas_current;
    for (i = 0; i < NSMALL; i++)
        free(small[i]);
    for (i = 0; i < NLARGE; i++)
        free(large[i]);
    neap_stats_get(&s1);
    CHECKF(s1.pages_dirty > 0, "pages_dirty %zu before trim with a 1000 s purge delay",
           s1.pages_dirty);

    CHECK(neap_trim() == 1);
    neap_stats_get(&s2);
    CHECKF(s2.pages_dirty == 0, "pages_dirty %zu after trim", s2.pages_dirty);
    CHECKF(s2.bytes_purged + s2.bytes_unmapped > s1.bytes_purged + s1.bytes_unmapped,
           "trim gave nothing back");
    CHECKF(s2.arenas_current < peak_arenas, "arenas %zu after trim, %zu at the peak",
           s2.arenas_current, peak_arenas);
    CHECK(neap_trim() == 0); /* nothing left to give */
    CHECK(malloc_trim(0) == 0);

    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, old_delay) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, old_max) == 0);
    CHECK(neap_option_set(NEAP_OPTION_ARENA_RESERVE, old_reserve) == 0);

    /* memory handed out after a trim is usable and calloc'd memory zero */
    for (i = 0; i < 1000; i++) {
        small[i] = calloc(1, 256);
        CHECK(small[i] != NULL && all_zero(small[i], 256));
    }
    for (i = 0; i < 1000; i++)
        free(small[i]);
}

/* ------------------------------------------------------------------------ */

/* In a thread of its own: n blocks of 256 bytes written, then all freed. */
static void *
orphan_churn_thread(void *arg)
{
    size_t n = *(const size_t *)arg, i;
    void **p = malloc(n * sizeof *p);

    CHECK(p != NULL);
    for (i = 0; i < n; i++) {
        p[i] = malloc(256);
        CHECK(p[i] != NULL);
        memset(p[i], 1, 256);
    }
    for (i = 0; i < n; i++)
        free(p[i]);
    free(p);
    return NULL;
}

/* In a thread of its own: one block of 128 bytes, kept past the exit. */
static void *
orphan_keep_thread(void *arg)
{
    void *p = malloc(128);

    (void)arg;
    CHECK(p != NULL);
    return p;
}

static void
orphan_churn(size_t n)
{
    pthread_t t;

    CHECK(pthread_create(&t, NULL, orphan_churn_thread, &n) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

/* The first thread to end gives its empty pages back at once: no thread
 * has started after another ended, so none is expected to take them.  Once
 * threads come and go, a thread's empty pages outlive it in its orphaned
 * arena: the next thread adopts the arena and reuses them; they go back
 * once NEAP_PURGE_DELAY has passed, and the orphans never keep more than
 * NEAP_PURGE_MAX of them. */
static void
test_orphans(void)
{
    long old_delay = neap_option_get(NEAP_OPTION_PURGE_DELAY);
    long old_max = neap_option_get(NEAP_OPTION_PURGE_MAX);
    enum { N = 4096, MAX_PAGES = 16 }; /* 1 MiB of blocks: 256 pages */
    neap_stats_t sp, s0, s1, s2, s3, s4;
    int i;
    /* this thread's heap keeps an arena with room throughout, so that its
     * own mallocs below never adopt the orphans watched */
    void *keep = malloc(100);

    CHECK(keep != NULL);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 3600000) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 1L << 40) == 0);
    neap_trim();
    neap_stats_get(&sp);
    orphan_churn(N);   /* the process's first thread to end */
    neap_stats_get(&s0);
    CHECKF(s0.bytes_purged + s0.bytes_unmapped > sp.bytes_purged + sp.bytes_unmapped,
           "nothing given back at the first thread's exit");
    CHECKF(s0.pages_dirty == 0, "%zu dirty pages after the first thread's exit", s0.pages_dirty);
    CHECKF(s0.arenas_orphaned == 0, "%zu arenas orphaned by the first thread", s0.arenas_orphaned);
    orphan_churn(N);   /* started after a thread ended: threads come and go */
    neap_stats_get(&s1);
    /* the thread's pages were not purged at its exit */
    CHECKF(s1.arenas_orphaned >= 1, "%zu arenas orphaned", s1.arenas_orphaned);
    CHECKF(s1.pages_dirty >= N * 256 / NEAP_PAGE_SIZE, "%zu dirty pages after the thread's exit",
           s1.pages_dirty);
    CHECKF(s1.bytes_purged == s0.bytes_purged, "%zu bytes purged at the second thread's exit",
           s1.bytes_purged - s0.bytes_purged);
    /* the next thread takes the orphan and its warm pages: no new arena */
    orphan_churn(N);
    neap_stats_get(&s2);
    CHECKF(s2.arenas_allocated == s1.arenas_allocated, "arenas allocated %zu -> %zu",
           s1.arenas_allocated, s2.arenas_allocated);
    CHECK(s2.bytes_purged == s1.bytes_purged);

    /* the orphans keep no more than NEAP_PURGE_MAX dirty */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, MAX_PAGES * NEAP_PAGE_SIZE) == 0);
    neap_trim();
    orphan_churn(N);
    neap_stats_get(&s3);
    CHECKF(s3.pages_dirty <= MAX_PAGES, "%zu dirty pages, at most %d wanted", s3.pages_dirty,
           MAX_PAGES);

    /* once NEAP_PURGE_DELAY has passed, a purge check gives them back and
     * unmaps the empty orphan (the wait below is a lower bound only) */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 1L << 40) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 20) == 0);
    orphan_churn(N);
    usleep(50 * 1000);
    for (i = 0; i < 40; i++) /* a purge check comes every 16 slow paths at most */
        free(malloc(100000));
    neap_stats_get(&s4);
    CHECKF(s4.arenas_orphaned == 0, "%zu arenas still orphaned", s4.arenas_orphaned);
    CHECKF(s4.bytes_unmapped > s3.bytes_unmapped, "nothing unmapped: %zu", s4.bytes_unmapped);

    /* a thread that ends keeping a block leaves a pool with free blocks; the
     * next thread's first block comes from it, not from a pool of its own */
    {
        pthread_t t;
        void *p1, *p2;

        CHECK(pthread_create(&t, NULL, orphan_keep_thread, NULL) == 0);
        CHECK(pthread_join(t, &p1) == 0);
        CHECK(pthread_create(&t, NULL, orphan_keep_thread, NULL) == 0);
        CHECK(pthread_join(t, &p2) == 0);
        CHECKF((uintptr_t)p1 / NEAP_PAGE_SIZE == (uintptr_t)p2 / NEAP_PAGE_SIZE,
               "blocks %p and %p of threads one after the other in different pools", p1, p2);
        free(p1);
        free(p2);
    }
    free(keep);

    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, old_delay) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, old_max) == 0);
}

/* ------------------------------------------------------------------------ */

static int
page_resident(const void *p)
{
    unsigned char v = 0;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(NEAP_PAGE_SIZE - 1));
    CHECK(mincore(page, NEAP_PAGE_SIZE, &v) == 0);
    return v & 1;
}

static void
sleep_ms(long ms)
{
    usleep((useconds_t)ms * 1000);
}

/* In a thread of its own: a fresh heap, whose dirty queue only this uses. */
static void *
purge_thread(void *arg)
{
    enum { PER_POOL = 8, DELAY = 100 }; /* 496-byte blocks: 8 to a one-page pool */
    void *b[3 * PER_POOL];
    size_t i;
    (void)arg;

    /* a page is given back once it has been empty for NEAP_PURGE_DELAY: one
     * that empties just before its arena's turn waits for the next round */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, DELAY) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 1L << 40) == 0);
    for (i = 0; i < 3 * PER_POOL; i++) {
        b[i] = malloc(496);
        CHECK(b[i] != NULL);
        memset(b[i], 1, 496);
    }
    CHECK((uintptr_t)b[0] >> 12 == (uintptr_t)b[PER_POOL - 1] >> 12);
    CHECK((uintptr_t)b[PER_POOL] >> 12 == (uintptr_t)b[2 * PER_POOL - 1] >> 12);
    CHECK((uintptr_t)b[0] >> 12 != (uintptr_t)b[PER_POOL] >> 12);
    neap_trim(); /* nothing dirty: the first pool to empty starts the clock */
    for (i = 0; i < PER_POOL; i++) /* pool 1 empties at t0 */
        free(b[i]);
    sleep_ms(DELAY / 2);
    for (i = PER_POOL; i < 2 * PER_POOL; i++) /* pool 2 at t0 + DELAY/2 */
        free(b[i]);
    sleep_ms(DELAY - DELAY / 2 + 30);
    free(malloc(100000)); /* a purge check, past t0 + DELAY */
    CHECKF(!page_resident(b[0]), "pool 1, empty for %d ms, still resident", DELAY + 30);
    CHECKF(page_resident(b[PER_POOL]), "pool 2, empty for %d ms, already given back",
           DELAY / 2 + 30);
    sleep_ms(DELAY + 30);
    free(malloc(100000));
    CHECKF(!page_resident(b[PER_POOL]), "pool 2 still resident after a second round");
    for (i = 2 * PER_POOL; i < 3 * PER_POOL; i++)
        free(b[i]);
    return NULL;
}

static void
test_purge(void)
{
    long old_delay = neap_option_get(NEAP_OPTION_PURGE_DELAY);
    long old_max = neap_option_get(NEAP_OPTION_PURGE_MAX);
    pthread_t t;

    CHECK(pthread_create(&t, NULL, purge_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, old_delay) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, old_max) == 0);
}

/* ------------------------------------------------------------------------ */

static int
class_of(const neap_stats_t *s, size_t block_size)
{
    int c;
    for (c = 0; c < NEAP_CLASS_MAX; c++)
        if (s->classes[c].block_size == block_size)
            return c;
    return -1;
}

static void
check_stats_consistent(const neap_stats_t *s)
{
    size_t c, live_classes = 0;
    CHECK(s->arenas_allocated >= s->arenas_freed);
    CHECKF(s->arenas_current == s->arenas_allocated - s->arenas_freed,
           "arenas current %zu allocated %zu freed %zu", s->arenas_current,
           s->arenas_allocated, s->arenas_freed);
    CHECK(s->arenas_highwater >= s->arenas_current);
    CHECKF(s->bytes_in_pools == s->pages_used * NEAP_PAGE_SIZE, "bytes_in_pools %zu pages %zu",
           s->bytes_in_pools, s->pages_used);
    CHECK(s->bytes_mapped >=
          s->arenas_current * (size_t)NEAP_ARENA_SIZE + s->bytes_huge + s->bytes_huge_cached);
    /* the cache holds at most NEAP_PURGE_MAX, or the live huge bytes if more */
    CHECKF(s->bytes_huge_cached <= (size_t)neap_option_get(NEAP_OPTION_PURGE_MAX) ||
               s->bytes_huge_cached <= s->bytes_huge,
           "huge cache holds %zu bytes, NEAP_PURGE_MAX %ld, live huge %zu", s->bytes_huge_cached,
           neap_option_get(NEAP_OPTION_PURGE_MAX), s->bytes_huge);
    CHECK(s->pages_used + s->pages_dirty <= s->arenas_current * (NEAP_ARENA_SIZE / NEAP_PAGE_SIZE));
    CHECK(s->heaps_current >= 1);
    for (c = 0; c < NEAP_CLASS_MAX; c++) {
        const neap_class_stats_t *k = &s->classes[c];
        CHECK(k->block_size > 0);
        if (c > 0)
            CHECK(k->block_size > s->classes[c - 1].block_size);
        if (k->blocks_used > 0)
            CHECKF(k->pools > 0, "class %zu: %zu blocks used in 0 pools", k->block_size,
                   k->blocks_used);
        if (k->block_size <= SMALL_MAX)
            CHECKF(k->blocks_used + k->blocks_free <= k->pools * (NEAP_PAGE_SIZE / k->block_size),
                   "class %zu: used %zu + free %zu in %zu one-page pools", k->block_size,
                   k->blocks_used, k->blocks_free, k->pools);
        live_classes += k->blocks_used * k->block_size;
    }
    CHECKF(s->bytes_live >= live_classes, "bytes_live %zu, small+medium blocks %zu",
           s->bytes_live, live_classes);
}

static void
test_stats(void)
{
    neap_stats_t a, b, c;
    int k;
    void *p, *many[1000];
    size_t i;

    free(malloc(1)); /* this thread has a heap now */
    neap_stats_get(&a);
    check_stats_consistent(&a);
    k = class_of(&a, 112);
    CHECK(k >= 0);
    CHECK(class_of(&a, 16) == 0);

    p = malloc(100);
    neap_stats_get(&b);
    check_stats_consistent(&b);
    CHECKF(b.bytes_live >= a.bytes_live + 112 && b.bytes_live <= a.bytes_live + 112 + 256,
           "bytes_live %zu -> %zu after malloc(100)", a.bytes_live, b.bytes_live);
    CHECKF(b.classes[k].blocks_used == a.classes[k].blocks_used + 1, "class 112 used %zu -> %zu",
           a.classes[k].blocks_used, b.classes[k].blocks_used);
    free(p);
    neap_stats_get(&c);
    CHECKF(c.bytes_live == a.bytes_live, "bytes_live %zu -> %zu after malloc+free",
           a.bytes_live, c.bytes_live);
    CHECK(c.classes[k].blocks_used == a.classes[k].blocks_used);

    for (i = 0; i < 1000; i++)
        many[i] = malloc(100);
    neap_stats_get(&b);
    check_stats_consistent(&b);
    CHECK(b.classes[k].blocks_used == a.classes[k].blocks_used + 1000);
    {
        /* 36 blocks of 112 bytes fit a 4 KiB pool; what the free blocks of
         * the existing pools could not take needs new pools */
        size_t fit = a.classes[k].blocks_free, need = fit < 1000 ? (1000 - fit) / 36 : 0;
        CHECKF(b.classes[k].pools >= a.classes[k].pools + need, "class 112 pools %zu -> %zu",
               a.classes[k].pools, b.classes[k].pools);
    }
    CHECK(b.bytes_live >= a.bytes_live + 112000);
    for (i = 0; i < 1000; i++)
        free(many[i]);
    neap_stats_get(&c);
    CHECK(c.classes[k].blocks_used == a.classes[k].blocks_used);
    CHECK(c.bytes_live == a.bytes_live);

    /* medium */
    k = class_of(&a, 1280);
    CHECK(k >= 0);
    p = malloc(1100);
    neap_stats_get(&b);
    CHECK(b.classes[k].blocks_used == a.classes[k].blocks_used + 1);
    CHECK(b.bytes_live >= a.bytes_live + 1280);
    free(p);

    /* large */
    neap_stats_get(&a);
    p = malloc(100000);
    neap_stats_get(&b);
    CHECK(b.large_current == a.large_current + 1);
    CHECK(b.huge_current == a.huge_current);
    CHECKF(b.bytes_live >= a.bytes_live + 100000, "bytes_live %zu -> %zu after malloc(100000)",
           a.bytes_live, b.bytes_live);
    CHECK(b.pages_used >= a.pages_used + 100000 / NEAP_PAGE_SIZE);
    free(p);
    neap_stats_get(&c);
    CHECK(c.large_current == a.large_current);
    CHECK(c.bytes_live == a.bytes_live);

    /* huge */
    neap_stats_get(&a);
    p = malloc(8 * MiB);
    neap_stats_get(&b);
    check_stats_consistent(&b);
    CHECK(b.huge_current == a.huge_current + 1);
    CHECK(b.large_current == a.large_current);
    CHECK(b.bytes_huge >= a.bytes_huge + 8 * MiB);
    CHECK(b.bytes_mapped >= a.bytes_mapped + 8 * MiB);
    CHECK(b.bytes_live >= a.bytes_live + 8 * MiB);
    free(p);
    neap_stats_get(&c);
    CHECK(c.huge_current == a.huge_current);
    CHECK(c.bytes_huge == a.bytes_huge);
    /* the mapping was unmapped or went to the cache of huge mappings */
    CHECKF(c.bytes_unmapped - a.bytes_unmapped + c.bytes_huge_cached >= 8 * MiB,
           "bytes_unmapped %zu -> %zu, cached %zu", a.bytes_unmapped, c.bytes_unmapped,
           c.bytes_huge_cached);
    CHECK(c.bytes_live == a.bytes_live);

    /* printing */
    {
        FILE *f = tmpfile();
        char buf[256];
        long len;
        CHECK(f != NULL);
        neap_stats_print(f);
        fflush(f);
        len = ftell(f);
        CHECKF(len > 0, "neap_stats_print wrote %ld bytes", len);
        rewind(f);
        CHECK(fgets(buf, sizeof buf, f) != NULL);
        fclose(f);
    }
}

/* ------------------------------------------------------------------------ */

/* The mapping behind a huge block of the default alignment starts one page
 * before the block (the header) and ends at the block's usable end. */
#define HUGE_HEADER NEAP_PAGE_SIZE

static void
huge_stats(neap_stats_t *s)
{
    neap_stats_get(s);
    check_stats_consistent(s);
}

static void *
huge_thread_alloc(void *arg)
{
    char *p = malloc(3 * MiB);
    CHECK(p != NULL);
    pat_fill(p, 3 * MiB, (uint64_t)(uintptr_t)arg);
    return p;
}

static void
test_huge_cache(void)
{
    neap_stats_t a, b, c;
    char *p, *q, *many[10];
    size_t i, u;

    /* a long delay and room for several mappings: only the bounds and
     * neap_trim give anything back */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 64L << 20) == 0);
    neap_trim();
    huge_stats(&a);
    CHECKF(a.bytes_huge_cached == 0, "cached %zu after neap_trim", a.bytes_huge_cached);

    /* freed, it is not live but cached; the same request gets it back, at
     * the same address, with nothing mapped or unmapped */
    p = malloc(3 * MiB);
    CHECK(p != NULL);
    pat_fill(p, 3 * MiB, 1);
    free(p);
    huge_stats(&b);
    CHECK(b.huge_current == a.huge_current && b.bytes_huge == a.bytes_huge);
    CHECK(b.bytes_live == a.bytes_live);
    CHECKF(b.bytes_huge_cached == 3 * MiB + HUGE_HEADER, "cached %zu", b.bytes_huge_cached);
    CHECK(b.bytes_unmapped == a.bytes_unmapped);
    CHECK(b.bytes_mapped == a.bytes_mapped + 3 * MiB + HUGE_HEADER);
    CHECK(!neap_owns(p));
    CHECK(neap_usable_size(p) == 0);
    q = malloc(3 * MiB - 100);
    CHECKF(q == p, "malloc after free: %p, the cached mapping %p", (void *)q, (void *)p);
    huge_stats(&c);
    CHECK(c.bytes_huge_cached == 0 && c.bytes_unmapped == a.bytes_unmapped);
    CHECK(c.huge_current == a.huge_current + 1);
    CHECK(c.bytes_huge == a.bytes_huge + 3 * MiB + HUGE_HEADER);
    CHECK(neap_owns(q) && neap_usable_size(q) == 3 * MiB);
    CHECK_PATTERN(q, 3 * MiB, 1); /* not cleared: malloc's memory is not */
    free(q);

    /* calloc of a cached (dirty) mapping is zero */
    q = calloc(3, MiB);
    CHECK(q == p);
    CHECK(all_zero(q, 3 * MiB));
    free(q);

    /* best fit: a request takes the smallest cached mapping that holds it;
     * a much larger one keeps its whole 4 MiB units past the request in the
     * cache, a mapping of their own, and gives back the rest of the
     * request's last unit */
    neap_trim();
    p = malloc(12 * MiB);
    q = malloc(5 * MiB);
    CHECK(p != NULL && q != NULL);
    memset(p, 1, 12 * MiB);
    memset(q, 2, 5 * MiB);
    free(p);
    free(q);
    huge_stats(&b);
    CHECK(b.bytes_huge_cached == 17 * MiB + 2 * HUGE_HEADER);
    many[0] = malloc(4 * MiB + 600 * KiB); /* less than an eighth of slack: kept */
    CHECKF(many[0] == q, "4.6 MiB from the 5 MiB mapping %p, got %p", (void *)q, (void *)many[0]);
    CHECKF(neap_usable_size(many[0]) == 5 * MiB, "usable %zu", neap_usable_size(many[0]));
    many[1] = malloc(2 * MiB);
    CHECKF(many[1] == p, "2 MiB from the 12 MiB mapping %p, got %p", (void *)p, (void *)many[1]);
    u = neap_usable_size(many[1]);
    CHECKF(u == 2 * MiB, "2 MiB from a 12 MiB mapping: usable %zu", u);
    huge_stats(&c);
    CHECKF(c.bytes_huge_cached == 8 * MiB + HUGE_HEADER, "the 12 MiB mapping's tail cached: %zu",
           c.bytes_huge_cached);
    CHECKF(c.bytes_unmapped == b.bytes_unmapped + 2 * MiB - HUGE_HEADER, "rest of the unit given back: %zu -> %zu",
           b.bytes_unmapped, c.bytes_unmapped);
    /* the tail serves the next request of its size, at its own address */
    q = malloc(8 * MiB);
    CHECKF(q == (char *)p + 4 * MiB, "8 MiB from the tail at %p, got %p", (void *)((char *)p + 4 * MiB), (void *)q);
    CHECK(neap_owns(q) && neap_usable_size(q) == 8 * MiB);
    memset(q, 3, 8 * MiB);
    for (i = 0; i < 2 * MiB; i += 4096) /* the head's block is untouched */
        CHECKF(((unsigned char *)many[1])[i] == 1, "byte %zu of the head's block", i);
    free(q);
    neap_trim();
    /* a smaller cached mapping is grown for a larger request: its pages are
     * kept (the growth is new and zero), whether it grows in place or moves */
    free(many[1]);
    huge_stats(&b);
    many[2] = calloc(1, 3 * MiB);
    CHECK(many[2] != NULL && all_zero(many[2], 3 * MiB));
    CHECK(neap_owns(many[2]) && neap_usable_size(many[2]) == 3 * MiB);
    huge_stats(&c);
    CHECKF(c.bytes_huge_cached == 0, "the 2 MiB mapping grown: %zu cached", c.bytes_huge_cached);
    CHECK(c.huge_current == b.huge_current + 1);
    CHECK(c.bytes_huge == b.bytes_huge + 3 * MiB + HUGE_HEADER);
    free(many[0]);
    free(many[2]);
    neap_trim();

    /* with huge blocks live, the cache may hold as many bytes as they have,
     * more than NEAP_PURGE_MAX; once they are freed, NEAP_PURGE_MAX again */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 4L << 20) == 0);
    p = malloc(20 * MiB);
    q = malloc(10 * MiB);
    CHECK(p != NULL && q != NULL);
    free(q);
    huge_stats(&b);
    CHECKF(b.bytes_huge_cached == 10 * MiB + HUGE_HEADER, "10 MiB freed beside 20 MiB live: %zu cached",
           b.bytes_huge_cached);
    free(p);
    huge_stats(&c);
    CHECKF(c.bytes_huge_cached <= 4 * MiB, "all freed: %zu cached, NEAP_PURGE_MAX 4 MiB", c.bytes_huge_cached);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 64L << 20) == 0);
    neap_trim();

    /* bounds: at most NEAP_PURGE_MAX bytes, at most 8 mappings; a mapping
     * larger than NEAP_PURGE_MAX is unmapped at once */
    for (i = 0; i < 10; i++)
        CHECK((many[i] = malloc(MiB + MiB / 2)) != NULL);
    for (i = 0; i < 10; i++)
        free(many[i]);
    huge_stats(&b);
    CHECKF(b.bytes_huge_cached == 8 * (MiB + MiB / 2 + HUGE_HEADER), "10 freed, %zu cached",
           b.bytes_huge_cached);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 4L << 20) == 0);
    p = malloc(3 * MiB);
    free(p);
    huge_stats(&c);
    CHECKF(c.bytes_huge_cached <= 4 * MiB, "cached %zu, NEAP_PURGE_MAX 4 MiB", c.bytes_huge_cached);
    p = malloc(5 * MiB);
    neap_stats_get(&b);
    free(p);
    huge_stats(&c);
    CHECKF(c.bytes_unmapped >= b.bytes_unmapped + 5 * MiB, "5 MiB over NEAP_PURGE_MAX: %zu -> %zu",
           b.bytes_unmapped, c.bytes_unmapped);
    CHECK(c.bytes_huge_cached == b.bytes_huge_cached);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 64L << 20) == 0);

    /* neap_trim empties the cache and says it gave memory back */
    neap_trim();
    p = malloc(3 * MiB);
    free(p);
    neap_stats_get(&b);
    CHECK(b.bytes_huge_cached > 0);
    CHECK(neap_trim() == 1);
    huge_stats(&c);
    CHECK(c.bytes_huge_cached == 0);
    CHECK(c.bytes_unmapped == b.bytes_unmapped + 3 * MiB + HUGE_HEADER);
    CHECK(!neap_owns(p));

    /* NEAP_PURGE_DELAY 0: nothing waits, nothing is cached */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 0) == 0);
    p = malloc(3 * MiB);
    neap_stats_get(&b);
    free(p);
    huge_stats(&c);
    CHECK(c.bytes_huge_cached == 0 && c.bytes_unmapped == b.bytes_unmapped + 3 * MiB + HUGE_HEADER);

    /* expiry: NEAP_PURGE_DELAY after the free the mapping goes back, while
     * the program allocates only smaller blocks, first large, then medium */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 20) == 0);
    for (i = 0; i < 2; i++) {
        size_t k;
        p = malloc(3 * MiB);
        free(p);
        neap_stats_get(&b);
        CHECK(b.bytes_huge_cached == 3 * MiB + HUGE_HEADER);
        usleep(60 * 1000);
        if (i == 0) {
            free(malloc(100000));
        } else {
            static void *blocks[300];
            for (k = 0; k < 300; k++) /* one block per pool: a slow path each */
                CHECK((blocks[k] = malloc(20000)) != NULL);
            for (k = 0; k < 300; k++)
                free(blocks[k]);
        }
        huge_stats(&c);
        CHECKF(c.bytes_huge_cached == 0, "round %zu: %zu cached 60 ms after the free", i,
               c.bytes_huge_cached);
        CHECK(c.bytes_unmapped >= b.bytes_unmapped + 3 * MiB);
    }
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 1000000) == 0);

    /* the cache is the process's: a block of another thread, freed here,
     * comes back here */
    {
        pthread_t t;
        void *r;
        neap_trim();
        CHECK(pthread_create(&t, NULL, huge_thread_alloc, (void *)(uintptr_t)77) == 0);
        CHECK(pthread_join(t, &r) == 0);
        p = r;
        CHECK_PATTERN(p, 3 * MiB, 77);
        free(p);
        q = malloc(3 * MiB);
        CHECK(q == p);
        free(q);
    }

    /* alignment: a cached mapping serves an aligned request only if its
     * address allows it */
    neap_trim();
    p = aligned_alloc(8 * MiB, 2 * MiB);
    CHECK(p != NULL && test_aligned(p, 8 * MiB));
    free(p);
    for (i = 0; i < 3; i++) {
        size_t al = (size_t)8 << (20 + i); /* 8, 16, 32 MiB */
        q = aligned_alloc(al, 2 * MiB);
        CHECKF(q != NULL && test_aligned(q, al), "aligned_alloc(%zu MiB) = %p", al >> 20, (void *)q);
        pat_fill(q, 2 * MiB, i);
        free(q);
    }

    neap_trim();
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 10) == 0);
    CHECK(neap_option_set(NEAP_OPTION_PURGE_MAX, 8L << 20) == 0);
}

static void
test_huge_realloc(void)
{
    static const size_t steps[] = {
        3 * MiB, 5 * MiB + 1, 17 * MiB, 33 * MiB - 5, 34 * MiB, 6 * MiB, 2 * MiB + 4095,
        MiB + 1, 64 * MiB, 3 * MiB,
    };
    neap_stats_t a, b, c;
    char *p, *q;
    size_t i, old;

    neap_trim();
    huge_stats(&a);
    /* growing and shrinking: contents kept, the mapping follows the size (an
     * eighth of slack at most), the block stays 4 MiB-aligned behind its
     * header, the statistics count the mapping */
    p = malloc(2 * MiB);
    CHECK(p != NULL);
    pat_fill(p, 2 * MiB, 500);
    old = 2 * MiB;
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i], u;
        q = realloc(p, n);
        CHECKF(q != NULL, "realloc(%zu -> %zu)", old, n);
        CHECK_PATTERN(q, old < n ? old : n, 500 + i);
        u = neap_usable_size(q);
        CHECKF(u >= n && u <= n + n / 8 + NEAP_PAGE_SIZE, "realloc(%zu -> %zu): usable %zu", old,
               n, u);
        CHECKF(test_aligned(q - HUGE_HEADER, NEAP_ARENA_SIZE), "realloc to %zu at %p", n,
               (void *)q);
        if (n < old)
            CHECKF(q == p, "shrinking %zu -> %zu moved the block", old, n);
        huge_stats(&b);
        CHECK(b.huge_current == a.huge_current + 1);
        CHECKF(b.bytes_huge == a.bytes_huge + u + HUGE_HEADER, "size %zu: bytes_huge %zu -> %zu", n,
               a.bytes_huge, b.bytes_huge);
        CHECK(neap_owns(q));
        if (q != p)
            CHECK(!neap_owns(p));
        pat_fill(q, n, 501 + i);
        p = q;
        old = n;
    }
    free(p);

    /* a taken page right after the mapping: growing must move the pages to
     * another (aligned) place, and the old address is no block any more */
    p = malloc(2 * MiB);
    CHECK(p != NULL);
    pat_fill(p, 2 * MiB, 600);
    {
        char *end = p + neap_usable_size(p);
        void *guard = mmap(end, NEAP_PAGE_SIZE, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        int placed = guard == (void *)end || (guard == MAP_FAILED && errno == EEXIST);
        if (guard != MAP_FAILED && guard != (void *)end) { /* a kernel without the flag */
            munmap(guard, NEAP_PAGE_SIZE);
            guard = MAP_FAILED;
        }
        q = realloc(p, 6 * MiB);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 2 * MiB, 600);
        CHECKF(test_aligned(q - HUGE_HEADER, NEAP_ARENA_SIZE), "moved to %p", (void *)q);
        if (placed) {
            CHECKF(q != p, "grew in place over a taken page");
            CHECK(!neap_owns(p));
        }
        CHECK(neap_owns(q) && neap_usable_size(q) == 6 * MiB);
        pat_fill(q, 6 * MiB, 601);
        CHECK_PATTERN(q, 6 * MiB, 601);
        if (guard != MAP_FAILED)
            munmap(guard, NEAP_PAGE_SIZE);
        free(q);
    }

    /* large <-> huge */
    neap_stats_get(&a);
    p = malloc(800 * KiB);
    pat_fill(p, 800 * KiB, 700);
    q = realloc(p, 3 * MiB);
    CHECK(q != NULL);
    CHECK_PATTERN(q, 800 * KiB, 700);
    huge_stats(&b);
    CHECK(b.large_current == a.large_current && b.huge_current == a.huge_current + 1);
    pat_fill(q, 3 * MiB, 701);
    p = realloc(q, 600 * KiB); /* less than half: a large block again */
    CHECK(p != NULL);
    CHECK_PATTERN(p, 600 * KiB, 701);
    huge_stats(&c);
    CHECK(c.large_current == a.large_current + 1 && c.huge_current == a.huge_current);
    /* huge shrinking by less than half, even below 1 MiB: cut in place */
    q = realloc(p, 3 * MiB);
    CHECK(q != NULL);
    pat_fill(q, 3 * MiB, 702);
    p = realloc(q, 2 * MiB);
    CHECK(p == q && neap_usable_size(p) == 2 * MiB);
    q = realloc(p, MiB);
    CHECK(q == p && neap_usable_size(q) == MiB);
    CHECK_PATTERN(q, MiB, 702);
    free(q);
    neap_trim();
}

static void
test_huge(void)
{
    free(malloc(1)); /* this thread has a heap now */
    test_huge_cache();
    test_huge_realloc();
}

/* ------------------------------------------------------------------------ */

static void
test_process_memory(void)
{
    neap_process_memory_t m0, m1, m2;
    char *p;

    CHECK(neap_process_memory(&m0) == 0);
    CHECKF(m0.rss > 0 && m0.rss < ((size_t)1 << 40), "rss %zu", m0.rss);
    CHECKF(m0.peak_rss >= m0.rss, "peak %zu rss %zu", m0.peak_rss, m0.rss);
    CHECKF(m0.vsize >= m0.rss, "vsize %zu rss %zu", m0.vsize, m0.rss);
    CHECK(m0.rss % 1024 == 0);

    p = malloc(64 * MiB);
    CHECK(p != NULL);
    memset(p, 3, 64 * MiB);
    CHECK(neap_process_memory(&m1) == 0);
    CHECKF(m1.rss >= m0.rss + 60 * MiB, "rss %zu -> %zu after touching 64 MiB", m0.rss, m1.rss);
    CHECK(m1.peak_rss >= m1.rss && m1.vsize >= m0.vsize + 64 * MiB);
    free(p);
    CHECK(neap_process_memory(&m2) == 0);
    CHECKF(m2.rss + 60 * MiB <= m1.rss, "rss %zu -> %zu after freeing 64 MiB", m1.rss, m2.rss);
    /* (VmHWM is not compared with the earlier VmRSS: the kernel's RSS
     * counters are per-CPU and read approximately) */
    CHECK(m2.peak_rss >= m2.rss);
}

/* ------------------------------------------------------------------------ */

static void
test_libc_names(void)
{
#ifdef NEAP_TEST_NO_OVERRIDE
    printf("(sanitizer build: malloc is the sanitizer's, not neap's; nothing to check)\n");
#else
    void *p = malloc(10);
    char *s, *line = NULL;
    size_t cap = 0;
    FILE *f;

    CHECK(p != NULL && neap_owns(p));
    free(p);
    p = calloc(3, 5);
    CHECK(neap_owns(p));
    p = realloc(p, 1000);
    CHECK(neap_owns(p));
    free(p);
    CHECK(posix_memalign(&p, 64, 10) == 0 && neap_owns(p));
    free(p);
    p = aligned_alloc(128, 256);
    CHECK(neap_owns(p) && test_aligned(p, 128));
    free(p);

    /* the C library's own allocations go through neap too */
    s = strdup("neap owns this");
    CHECK(s != NULL && neap_owns(s));
    free(s);
    CHECK(asprintf(&s, "%d %s", 42, "x") > 0 && neap_owns(s));
    free(s);
    f = tmpfile();
    CHECK(f != NULL);
    fputs("one line\n", f);
    rewind(f);
    CHECK(getline(&line, &cap, f) == 9);
    CHECK(neap_owns(line));
    free(line);
    fclose(f);
#endif
}

static const struct test_section sections[] = {
    {"sizes", test_sizes},
    {"aligned", test_aligned_alloc},
    {"realloc", test_realloc},
    {"calloc", test_calloc},
    {"reallocarray", test_reallocarray},
    {"good_size", test_good_size},
    {"owns", test_owns},
    {"options", test_options},
    {"stats", test_stats},
    {"trim", test_trim},
    {"purge", test_purge},
    {"orphans", test_orphans},
    {"huge", test_huge},
    {"process", test_process_memory},
    {"libc", test_libc_names},
    {"env", test_env}, /* only when asked for: needs its environment */
};

/* Usage: test_api [SECTION]...  (none: all, in order).  CMake registers one
 * test per section, so that one broken contract does not hide the others. */
int
main(int argc, char **argv)
{
    return test_sections_main(argc, argv, "api", sections, sizeof sections / sizeof sections[0], "env");
}

/* neap_test.h -- the little the C tests share: a CHECK macro, a seeded
 * generator, a position-dependent fill pattern and the NEAP_TEST_SCALE knob.
 *
 * No framework: a failed CHECK prints file:line and the expression to stderr
 * and ends the process with status 1 (_exit, so that a failure inside a
 * thread or a forked child is reported the same way and no atexit handler
 * runs in a half-broken state).  ctest counts the processes.
 */
#ifndef NEAP_TEST_H
#define NEAP_TEST_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Failed checks so far; only counts when NEAP_TEST_KEEP_GOING is set (for
 * looking at every failure of a run at once), otherwise the first failure
 * ends the process. */
static int test_failures;

static inline void
test_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: CHECK failed: %s", file, line, expr);
    if (fmt != NULL) {
        va_list ap;
        fputs(" -- ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    fflush(stderr);
    if (getenv("NEAP_TEST_KEEP_GOING") != NULL) {
        test_failures++;
        return;
    }
    _exit(1);
}

/* main's exit status: 1 if a check failed under NEAP_TEST_KEEP_GOING */
static inline int
test_status(void)
{
    if (test_failures)
        fprintf(stderr, "%d check(s) failed\n", test_failures);
    return test_failures ? 1 : 0;
}

/* CHECK(expr): fail unless expr holds.
 * CHECKF(expr, fmt, ...): the same, with a printf-style explanation. */
#define CHECK(expr)                                                           \
    do {                                                                      \
        if (!(expr))                                                          \
            test_fail(__FILE__, __LINE__, #expr, NULL);                       \
    } while (0)
#define CHECKF(expr, ...)                                                     \
    do {                                                                      \
        if (!(expr))                                                          \
            test_fail(__FILE__, __LINE__, #expr, __VA_ARGS__);                \
    } while (0)

/* Keeps the compiler from reasoning about a pointer (e.g. "this is a stack
 * address, free() of it is undefined") or a size (allocation size limits). */
static inline void *
test_launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}
static inline size_t
test_launder_size(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

static inline int
test_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* xorshift64*: deterministic, seeded per thread. */
static inline uint64_t
xs_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t
xs_seed(uint64_t seed)
{
    /* splitmix64 step so that small seeds give well-mixed states */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 1;
}
/* uniform in [lo, hi] */
static inline size_t
xs_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(xs_next(s) % (uint64_t)(hi - lo + 1));
}

/* The fill pattern: byte i of a block tagged `tag` is byte i%8 of word
 * pat_word(tag, i/8) (host order).  It depends on the position, so a prefix
 * check after realloc or an overlap between two blocks is caught. */
static inline uint64_t
pat_word(uint64_t tag, size_t k)
{
    return (tag ^ ((uint64_t)k * 0x9E3779B97F4A7C15ULL)) + 0x0123456789ABCDEFULL;
}
static inline void
pat_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    size_t nw = n / 8, k;
    for (k = 0; k < nw; k++) {
        uint64_t w = pat_word(tag, k);
        memcpy(b + 8 * k, &w, 8);
    }
    if (n % 8) {
        uint64_t w = pat_word(tag, nw);
        memcpy(b + 8 * nw, &w, n % 8);
    }
}
/* Returns the offset of the first wrong byte, or (size_t)-1 if all n match. */
static inline size_t
pat_check(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    size_t nw = n / 8, k, i;
    for (k = 0; k < nw; k++) {
        uint64_t w = pat_word(tag, k), v;
        memcpy(&v, b + 8 * k, 8);
        if (v != w)
            break;
    }
    if (k == nw && n % 8 == 0)
        return (size_t)-1;
    {
        uint64_t w = pat_word(tag, k);
        unsigned char e[8];
        memcpy(e, &w, 8);
        for (i = 0; i < 8 && 8 * k + i < n; i++)
            if (b[8 * k + i] != e[i])
                return 8 * k + i;
    }
    return k == nw ? (size_t)-1 : 8 * k; /* unreachable in practice */
}
#define CHECK_PATTERN(p, n, tag)                                              \
    do {                                                                      \
        size_t bad_ = pat_check((p), (n), (tag));                             \
        CHECKF(bad_ == (size_t)-1,                                            \
               "block %p (%zu bytes, tag %llx) corrupt at offset %zu",        \
               (void *)(p), (size_t)(n), (unsigned long long)(tag), bad_);    \
    } while (0)

/* NEAP_TEST_SCALE (default 1, may be fractional) multiplies iteration
 * counts; sanitizer builds set it lower. */
static inline double
test_scale(void)
{
    const char *s = getenv("NEAP_TEST_SCALE");
    double v = s != NULL ? strtod(s, NULL) : 1.0;
    return v > 0 ? v : 1.0;
}
static inline size_t
test_scaled(size_t n)
{
    double v = (double)n * test_scale();
    return v < 1 ? 1 : (size_t)v;
}

/* Sanitizer builds (CMake defines NEAP_TEST_NO_OVERRIDE and links
 * neap_nooverride): the sanitizer's runtime owns malloc and its interceptors
 * call its own allocator, so neap cannot be malloc there.  The tests then
 * reach neap through its own names; these macros turn the tests' calls of the
 * C library names into them.  Include this header after every system
 * header, and keep C library functions that allocate (strdup, getline...)
 * under #ifndef NEAP_TEST_NO_OVERRIDE. */
#ifdef NEAP_TEST_NO_OVERRIDE
#include "neap.h"
static inline void *
test_pvalloc(size_t n)
{
    size_t r = (n + NEAP_PAGE_SIZE - 1) & ~(size_t)(NEAP_PAGE_SIZE - 1);
    return neap_aligned_alloc(NEAP_PAGE_SIZE, r != 0 ? r : NEAP_PAGE_SIZE);
}
#define malloc(n) neap_malloc(n)
#define free(p) neap_free(p)
#define calloc(n, s) neap_calloc(n, s)
#define realloc(p, n) neap_realloc(p, n)
#define reallocarray(p, n, s) neap_reallocarray(p, n, s)
#define aligned_alloc(a, n) neap_aligned_alloc(a, n)
#define posix_memalign(o, a, n) neap_posix_memalign(o, a, n)
#define memalign(a, n) neap_aligned_alloc(a, n)
#define valloc(n) neap_aligned_alloc(NEAP_PAGE_SIZE, n)
#define pvalloc(n) test_pvalloc(n)
#define malloc_usable_size(p) neap_usable_size(p)
#define malloc_trim(pad) neap_trim()
#endif

/* A block and what it should contain (stress and fork tests). */
struct item {
    void *p;
    size_t size;
    uint64_t tag;
};

static inline void
item_new(struct item *it, size_t size, uint64_t tag)
{
    it->p = malloc(size);
    CHECKF(it->p != NULL, "malloc(%zu)", size);
    CHECKF(test_aligned(it->p, 16), "malloc(%zu) = %p", size, it->p);
    it->size = size;
    it->tag = tag;
    pat_fill(it->p, size, tag);
}

static inline void
item_free(struct item *it)
{
    CHECK_PATTERN(it->p, it->size, it->tag);
    free(it->p);
    it->p = NULL;
}

/* size bytes of fresh address space aligned to align, with protection prot:
 * memory neap does not own, for the foreign-pointer tests. */
static inline void *
map_aligned(size_t size, size_t align, int prot)
{
    size_t span = size + align;
    char *m = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    char *a = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + size < m + span)
        munmap(a + size, (size_t)(m + span - (a + size)));
    if (prot != PROT_NONE)
        CHECK(mprotect(a, size, prot) == 0);
    return a;
}

/* A test program of named sections: `prog [SECTION]...` runs those, in the
 * table's order (none named: every section but `asked_only`, which runs only
 * when named; NULL: none such); an unknown name is a usage error (2).  Each
 * section's end is printed as "<prog> <name> ok|FAILED". */
struct test_section {
    const char *name;
    void (*run)(void);
};

static inline int
test_sections_main(int argc, char **argv, const char *prog, const struct test_section *sections,
                   size_t n, const char *asked_only)
{
    size_t i;
    int a;

    setvbuf(stdout, NULL, _IONBF, 0);
    for (a = 1; a < argc; a++) {
        int known = 0;
        for (i = 0; i < n; i++)
            known |= strcmp(argv[a], sections[i].name) == 0;
        if (!known) {
            fprintf(stderr, "%s: unknown section %s\n", prog, argv[a]);
            return 2;
        }
    }
    for (i = 0; i < n; i++) {
        int wanted = argc < 2 && (asked_only == NULL || strcmp(sections[i].name, asked_only) != 0);
        for (a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], sections[i].name) == 0;
        if (!wanted)
            continue;
        sections[i].run();
        printf("%s %-17s %s\n", prog, sections[i].name, test_failures ? "FAILED" : "ok");
    }
    return test_status();
}

#endif /* NEAP_TEST_H */

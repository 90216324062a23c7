/* mallinfo_prog.c -- glibc's malloc introspection and tuning answered by
 * neap (src/override/override.c): mallinfo2, mallinfo, malloc_info,
 * malloc_stats, mallopt and malloc_trim.
 *
 * Built twice: plain, run by mallinfo.sh with LD_PRELOAD=libneap.so (neap's
 * own functions looked up with dlsym), and linked with libneap.a
 * (NEAP_TEST_LINKED: the same names must come from the archive).
 *
 *   mallinfo_prog XMLFILE
 *     known allocations: 1000 blocks of 1000 bytes move uordblks by their
 *     block sizes; a 64 MiB block is one hblks, hblkhd bytes; freed, both
 *     come back; arena = uordblks + fordblks throughout; mallinfo agrees
 *     with mallinfo2; mallopt maps M_TRIM_THRESHOLD to NEAP_PURGE_MAX and
 *     refuses what neap has no meaning for; malloc_info(1, ...) is EINVAL;
 *     malloc_info(0, XMLFILE) written while the huge block lives, and
 *     "hblks N hblkhd N uordblks N" of that moment printed on stdout for
 *     the script to compare; malloc_stats to stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap.h"

#define CHECK(expr, ...)                                                     \
    do {                                                                     \
        if (!(expr)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s -- ", __FILE__, __LINE__, #expr); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

static long (*option_get)(neap_option_t);
static size_t (*good_size)(size_t);

static void find_neap(void) {
#ifdef NEAP_TEST_LINKED
    option_get = neap_option_get;
    good_size = neap_good_size;
#else
    void *a = dlsym(RTLD_DEFAULT, "neap_option_get");
    void *b = dlsym(RTLD_DEFAULT, "neap_good_size");
    CHECK(a != NULL && b != NULL, "neap is not in this process (run with LD_PRELOAD=libneap.so)");
    memcpy(&option_get, &a, sizeof a);
    memcpy(&good_size, &b, sizeof b);
#endif
}

static void check_sums(const struct mallinfo2 *m) {
    CHECK(m->arena == m->uordblks + m->fordblks, "arena %zu != uordblks %zu + fordblks %zu",
          m->arena, m->uordblks, m->fordblks);
    CHECK(m->smblks == 0 && m->fsmblks == 0, "fast bins: %zu, %zu", m->smblks, m->fsmblks);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: mallinfo_prog XMLFILE");
    find_neap();
    /* the stream's buffer first, so that it allocates nothing later */
    static char xmlbuf[1 << 16];
    FILE *xml = fopen(argv[1], "w");
    CHECK(xml != NULL, "cannot write %s", argv[1]);
    setvbuf(xml, xmlbuf, _IOFBF, sizeof xmlbuf);
    setvbuf(stdout, NULL, _IOLBF, 0);
    free(malloc(1));

    enum { N = 1000, SIZE = 1000 };
    static void *blocks[N];
    struct mallinfo2 m0 = mallinfo2();
    check_sums(&m0);
    CHECK(m0.arena > 0, "neap answered with an empty arena");
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        CHECK(blocks[i] != NULL, "malloc");
        memset(blocks[i], i, SIZE);
    }
    struct mallinfo2 m1 = mallinfo2();
    check_sums(&m1);
    size_t want = (size_t)N * good_size(SIZE);
    size_t grew = m1.uordblks - m0.uordblks;
    CHECK(m1.uordblks >= m0.uordblks && grew >= want && grew <= want + 64 * 1024,
          "uordblks moved by %zu for %zu bytes of blocks", grew, want);
    CHECK(m1.arena >= m0.arena + want, "arena %zu -> %zu", m0.arena, m1.arena);
    CHECK(m1.usmblks >= NEAP_ARENA_SIZE, "usmblks %zu", m1.usmblks);

    /* mallinfo: the same figures as int */
    struct mallinfo mi;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    mi = mallinfo();
#pragma GCC diagnostic pop
    CHECK((size_t)mi.uordblks == m1.uordblks && (size_t)mi.arena == m1.arena &&
              (size_t)mi.hblks == m1.hblks,
          "mallinfo %d %d %d, mallinfo2 %zu %zu %zu", mi.uordblks, mi.arena, mi.hblks,
          m1.uordblks, m1.arena, m1.hblks);

    /* a huge block: its own mapping */
    size_t huge = (size_t)64 << 20;
    char *h = malloc(huge);
    CHECK(h != NULL, "malloc(64 MiB)");
    h[0] = h[huge - 1] = 1;
    struct mallinfo2 m2 = mallinfo2();
    check_sums(&m2);
    CHECK(m2.hblks == m1.hblks + 1, "hblks %zu -> %zu", m1.hblks, m2.hblks);
    CHECK(m2.hblkhd >= m1.hblkhd + huge && m2.hblkhd <= m1.hblkhd + huge + (2u << 20),
          "hblkhd %zu -> %zu for a block of %zu", m1.hblkhd, m2.hblkhd, huge);
    CHECK(m2.uordblks == m1.uordblks, "the huge block counted in uordblks: %zu -> %zu",
          m1.uordblks, m2.uordblks);

    /* malloc_info: options must be 0 */
    errno = 0;
    CHECK(malloc_info(1, xml) == -1 && errno == EINVAL, "malloc_info(1, ...) did not fail with EINVAL");
    CHECK(malloc_info(0, xml) == 0, "malloc_info failed");
    struct mallinfo2 m3 = mallinfo2();
    CHECK(fclose(xml) == 0, "writing %s", argv[1]);
    printf("hblks %zu hblkhd %zu uordblks %zu arena %zu\n", m3.hblks, m3.hblkhd, m3.uordblks,
           m3.arena);

    malloc_stats();

    free(h);
    struct mallinfo2 m4 = mallinfo2();
    CHECK(m4.hblks == m1.hblks && m4.hblkhd == m1.hblkhd, "after free: hblks %zu, hblkhd %zu",
          m4.hblks, m4.hblkhd);
    for (int i = 0; i < N; i++) free(blocks[i]);
    struct mallinfo2 m5 = mallinfo2();
    check_sums(&m5);
    CHECK(m5.uordblks + want <= m4.uordblks + 64 * 1024,
          "freeing %zu bytes moved uordblks only from %zu to %zu", want, m4.uordblks, m5.uordblks);

    /* malloc_trim: what keepcost said could go, goes */
    int trimmed = malloc_trim(0);
    struct mallinfo2 m6 = mallinfo2();
    CHECK(trimmed == 0 || trimmed == 1, "malloc_trim returned %d", trimmed);
    CHECK(m6.keepcost <= m5.keepcost, "keepcost %zu -> %zu after malloc_trim", m5.keepcost,
          m6.keepcost);
    CHECK(m5.keepcost == 0 || trimmed == 1, "keepcost %zu but malloc_trim gave nothing back",
          m5.keepcost);

    /* mallopt: M_TRIM_THRESHOLD is NEAP_PURGE_MAX; the rest means nothing */
    CHECK(mallopt(M_TRIM_THRESHOLD, 12345678) == 1, "mallopt(M_TRIM_THRESHOLD) refused");
    CHECK(option_get(NEAP_OPTION_PURGE_MAX) == 12345678, "NEAP_PURGE_MAX is %ld",
          option_get(NEAP_OPTION_PURGE_MAX));
    CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 0, "a negative M_TRIM_THRESHOLD accepted");
    CHECK(option_get(NEAP_OPTION_PURGE_MAX) == 12345678, "a refused value changed NEAP_PURGE_MAX");
    CHECK(mallopt(M_ARENA_MAX, 2) == 1, "M_ARENA_MAX refused");
    CHECK(mallopt(M_ARENA_MAX, 0) == 0, "M_ARENA_MAX 0 accepted");
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 0, "M_MMAP_THRESHOLD accepted");
    CHECK(mallopt(M_MXFAST, 0) == 0, "M_MXFAST accepted");
    CHECK(mallopt(M_PERTURB, 0xaa) == 0, "M_PERTURB accepted");
    CHECK(mallopt(12345, 1) == 0, "an unknown parameter accepted");
    return 0;
}

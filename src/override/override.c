/* override.c -- the C library's allocation functions, served by neap.
 *
 * Linked into libneap.so and libneap.a.  With LD_PRELOAD=libneap.so, or with
 * the library linked before the C library, every malloc in the process --
 * the program's, the C library's own, C++'s operator new through malloc --
 * is neap's.  This works from the first allocation of the process: the
 * thread-local heap pointer starts at a static empty heap whose every pool
 * is empty, so the first call takes the slow path and sets neap up.
 *
 * glibc's malloc introspection and tuning are answered here too, from neap's
 * statistics (neap_stats_get) and options (neap_option_set), so that a
 * program that asks the C library about its heap learns about neap's, not
 * about glibc's idle arena:
 *
 *   mallinfo2 field   neap's figure (neap_stats_t)
 *   arena             bytes of arena pages holding pools or large runs, and
 *                     empty pages not yet given back: (pages_used +
 *                     pages_dirty) * 4 KiB -- the memory held for small,
 *                     medium and large blocks (glibc: its heap's size)
 *   ordblks           free blocks inside pools, every class
 *   smblks, fsmblks   0: neap has no fast bins (its free blocks are all in
 *                     ordblks)
 *   hblks, hblkhd     huge blocks live (each its own mapping), their bytes
 *   usmblks           the most bytes of arenas mapped at once (arenas
 *                     high-water * 4 MiB); glibc always says 0 here
 *   uordblks          bytes in live small, medium and large blocks (huge
 *                     ones are in hblkhd, as glibc's mmapped chunks are)
 *   fordblks          arena - uordblks: free blocks, pool slack and empty
 *                     pages (glibc's invariant arena = uordblks + fordblks)
 *   keepcost          bytes malloc_trim would give back now: empty pages
 *                     not yet purged, and cached mappings of freed huge blocks
 *
 *   mallinfo          the same, each field saturated at INT_MAX (glibc's
 *                     truncates the size_t to int, which wraps past 2 GiB)
 *   malloc_stats      glibc's "Total (incl. mmap)" lines, then
 *                     neap_stats_print's figures, to stderr
 *   malloc_info       glibc's XML layout, <malloc version="neap-1">, one heap
 *                     (the whole process): free blocks by size class, "rest"
 *                     totals (ordblks), "mmap" (hblks, hblkhd), system
 *                     current and max (arena, usmblks: without huge blocks,
 *                     as glibc's), aspace (the arenas' address space); then
 *                     <neap type=NAME size=N/> for neap_stats_t's figures;
 *                     options != 0 is EINVAL, as in glibc
 *   malloc_trim       neap_trim (pad ignored: neap keeps no top chunk)
 *   mallopt           M_TRIM_THRESHOLD (>= 0) sets NEAP_PURGE_MAX: 1;
 *                     M_ARENA_MAX, M_ARENA_TEST (> 0) accepted, no effect
 *                     (neap gives empty pages back whatever the number of
 *                     heaps): 1; every other parameter (M_MMAP_THRESHOLD,
 *                     M_MMAP_MAX, M_TOP_PAD, M_MXFAST, M_PERTURB,
 *                     M_CHECK_ACTION, ...) has no meaning in neap: 0
 *
 * These functions take no lock of their own; malloc_info and malloc_stats
 * collect the statistics first and print after, so that the stream's own
 * allocations come back into neap with nothing held.
 */
#include "core/fastpath.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define NEAP_OVERRIDE __attribute__((visibility("default")))

NEAP_OVERRIDE void *malloc(size_t size) { return neap_malloc_inline(size); }
NEAP_OVERRIDE void free(void *p) { neap_free_inline(p); }
NEAP_OVERRIDE void *calloc(size_t n, size_t size) { return neap_calloc(n, size); }
NEAP_OVERRIDE void *realloc(void *p, size_t size) { return neap_realloc(p, size); }
NEAP_OVERRIDE void *reallocarray(void *p, size_t n, size_t size) { return neap_reallocarray(p, n, size); }
NEAP_OVERRIDE int posix_memalign(void **out, size_t alignment, size_t size) {
    return neap_posix_memalign(out, alignment, size);
}
NEAP_OVERRIDE void *aligned_alloc(size_t alignment, size_t size) { return neap_aligned_alloc(alignment, size); }
NEAP_OVERRIDE void *memalign(size_t alignment, size_t size) { return neap_aligned_alloc(alignment, size); }
NEAP_OVERRIDE void *valloc(size_t size) { return neap_aligned_alloc(NEAP_PAGE_SIZE, size); }
NEAP_OVERRIDE void *pvalloc(size_t size) {
    size_t rounded = (size + NEAP_PAGE_SIZE - 1) & ~(size_t)(NEAP_PAGE_SIZE - 1);
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return neap_aligned_alloc(NEAP_PAGE_SIZE, rounded ? rounded : NEAP_PAGE_SIZE);
}
NEAP_OVERRIDE size_t malloc_usable_size(void *p) { return neap_usable_size(p); }
NEAP_OVERRIDE int malloc_trim(size_t pad) {
    (void)pad;
    return neap_trim();
}
/* glibc's historical names, still called by some programs */
NEAP_OVERRIDE void cfree(void *p);  /* no longer declared by the headers */
NEAP_OVERRIDE void cfree(void *p) { neap_free(p); }

/* --- glibc's introspection and tuning (the table at the top) --------------- */

/* neap's statistics with the figures glibc's interfaces report. */
typedef struct {
    neap_stats_t st;
    struct mallinfo2 mi;
    size_t free_blocks, free_bytes;   /* free blocks inside pools, and their bytes */
} neap_mallinfo_t;

static void neap_mallinfo_collect(neap_mallinfo_t *m) {
    neap_stats_get(&m->st);
    const neap_stats_t *st = &m->st;
    m->free_blocks = m->free_bytes = 0;
    for (size_t c = 0; c < NEAP_CLASS_MAX; c++) {
        m->free_blocks += st->classes[c].blocks_free;
        m->free_bytes += st->classes[c].blocks_free * st->classes[c].block_size;
    }
    struct mallinfo2 *mi = &m->mi;
    memset(mi, 0, sizeof *mi);
    mi->arena = (st->pages_used + st->pages_dirty) * (size_t)NEAP_PAGE_SIZE;
    size_t live = st->bytes_live > st->bytes_huge ? st->bytes_live - st->bytes_huge : 0;
    /* the figures of other threads may lag (neap_stats_get): never more in
     * use than held */
    mi->uordblks = live < mi->arena ? live : mi->arena;
    mi->fordblks = mi->arena - mi->uordblks;
    mi->ordblks = m->free_blocks;
    mi->hblks = st->huge_current;
    mi->hblkhd = st->bytes_huge;
    mi->usmblks = st->arenas_highwater * (size_t)NEAP_ARENA_SIZE;
    mi->keepcost = st->pages_dirty * (size_t)NEAP_PAGE_SIZE + st->bytes_huge_cached;
}

NEAP_OVERRIDE struct mallinfo2 mallinfo2(void) {
    neap_mallinfo_t m;
    neap_mallinfo_collect(&m);
    return m.mi;
}

static int neap_int_sat(size_t v) { return v > (size_t)INT_MAX ? INT_MAX : (int)v; }

NEAP_OVERRIDE struct mallinfo mallinfo(void) {
    neap_mallinfo_t m;
    neap_mallinfo_collect(&m);
    struct mallinfo r;
    r.arena = neap_int_sat(m.mi.arena);
    r.ordblks = neap_int_sat(m.mi.ordblks);
    r.smblks = neap_int_sat(m.mi.smblks);
    r.hblks = neap_int_sat(m.mi.hblks);
    r.hblkhd = neap_int_sat(m.mi.hblkhd);
    r.usmblks = neap_int_sat(m.mi.usmblks);
    r.fsmblks = neap_int_sat(m.mi.fsmblks);
    r.uordblks = neap_int_sat(m.mi.uordblks);
    r.fordblks = neap_int_sat(m.mi.fordblks);
    r.keepcost = neap_int_sat(m.mi.keepcost);
    return r;
}

NEAP_OVERRIDE void malloc_stats(void) {
    neap_mallinfo_t m;
    neap_mallinfo_collect(&m);
    fprintf(stderr,
            "Total (incl. mmap):\n"
            "system bytes     = %10zu\n"
            "in use bytes     = %10zu\n"
            "max mmap regions = %10zu\n"
            "max mmap bytes   = %10zu\n",
            m.mi.arena + m.mi.hblkhd, m.mi.uordblks + m.mi.hblkhd, m.mi.hblks, m.mi.hblkhd);
    neap_stats_print(stderr);
}

NEAP_OVERRIDE int malloc_info(int options, FILE *fp) {
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    if (fp == NULL) {
        errno = EINVAL;
        return -1;
    }
    neap_mallinfo_t m;
    neap_mallinfo_collect(&m);
    const neap_stats_t *st = &m.st;
    const struct mallinfo2 *mi = &m.mi;
    size_t aspace = st->arenas_current * (size_t)NEAP_ARENA_SIZE;
    fputs("<malloc version=\"neap-1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
    size_t from = 1;
    for (size_t c = 0; c < NEAP_CLASS_MAX; c++) {
        const neap_class_stats_t *cs = &st->classes[c];
        /* glibc's attributes (the free blocks of the size range), then neap's */
        if (cs->pools != 0)
            fprintf(fp,
                    "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\" used=\"%zu\" "
                    "pools=\"%zu\"/>\n",
                    from, cs->block_size, cs->blocks_free * cs->block_size, cs->blocks_free,
                    cs->blocks_used, cs->pools);
        from = cs->block_size + 1;
    }
    fputs("</sizes>\n", fp);
    fprintf(fp,
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n",
            m.free_blocks, m.free_bytes, mi->arena, mi->usmblks, aspace, mi->arena);
    fprintf(fp,
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n",
            m.free_blocks, m.free_bytes, mi->hblks, mi->hblkhd, mi->arena, mi->usmblks, aspace,
            mi->arena);
    /* neap's own figures, named as neap_stats_t names them */
    const struct {
        const char *type;
        size_t size;
    } extra[] = {
        {"bytes_live", st->bytes_live},           {"bytes_in_pools", st->bytes_in_pools},
        {"bytes_huge", st->bytes_huge},           {"bytes_huge_cached", st->bytes_huge_cached},
        {"bytes_dirty", st->pages_dirty * (size_t)NEAP_PAGE_SIZE},
        {"bytes_mapped", st->bytes_mapped},       {"bytes_purged", st->bytes_purged},
        {"bytes_unmapped", st->bytes_unmapped},   {"arenas_current", st->arenas_current},
        {"arenas_highwater", st->arenas_highwater}, {"pools_current", st->pools_current},
        {"large_current", st->large_current},     {"huge_current", st->huge_current},
        {"heaps_current", st->heaps_current},
        {"mesh_pages", st->mesh_pages},           {"meshes", st->meshes},
        {"unmeshes", st->unmeshes},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        fprintf(fp, "<neap type=\"%s\" size=\"%zu\"/>\n", extra[i].type, extra[i].size);
    fputs("</malloc>\n", fp);
    return ferror(fp) ? -1 : 0;
}

NEAP_OVERRIDE int mallopt(int param, int value) {
    switch (param) {
    case M_TRIM_THRESHOLD:
        return value >= 0 && neap_option_set(NEAP_OPTION_PURGE_MAX, value) == 0;
    case M_ARENA_MAX:
    case M_ARENA_TEST:
        return value > 0;
    default:
        return 0;
    }
}

/* pinning.h -- which 4 KiB pages and 4 MiB arenas a set of live blocks keeps
 * from going back to the OS, per allocation site (pinning.c).
 *
 * Used by `neap report` (cli/report.c, the live blocks of a trace) and by
 * neap_snapshot_pinning (snapshot.c, the traces of a snapshot): the caller
 * groups its blocks into sites and says which are huge; this module places
 * them.  Self-contained (no internal.h): the CLI may compile it on its own.
 */
#ifndef NEAP_PINNING_H
#define NEAP_PINNING_H

#include <stddef.h>
#include <stdint.h>

/* neap's layout, as the placement sees it (snapshot.c checks they are
 * internal.h's NEAP_PAGE_SHIFT and NEAP_ARENA_SHIFT) */
#define NEAP_PIN_PAGE_SHIFT 12   /* a page: 4 KiB */
#define NEAP_PIN_ARENA_SHIFT 22  /* an arena: 4 MiB */
/* the longest block that is not huge (neap's blocks in arenas are at most
 * 1 MiB): a longer one is bogus, and placing it page by page unbounded work */
#define NEAP_PIN_NONHUGE_MAX ((uint64_t)1 << NEAP_PIN_ARENA_SHIFT)

/* One live block. */
typedef struct _neap_pin_block {
    uint64_t addr;   /* its first byte */
    uint64_t size;   /* bytes asked for; 0 is placed as 1 byte */
    uint32_t site;   /* index into the sites array, < nsites */
    int huge;        /* nonzero: a mapping of its own (exactly its pages, no
                        arena, no other block in them) */
} _neap_pin_block_t;

/* What one site's blocks pin.  pages_alone + pages_shared = the pages
 * holding some of its blocks. */
typedef struct _neap_pin_site {
    double pages;           /* pages pinned: whole pages for the ones only this
                               site is in, a shared page split between its sites
                               by their bytes in it */
    uint64_t pages_alone;   /* pages only this site's blocks are in (huge blocks'
                               pages too) */
    uint64_t pages_shared;  /* pages it shares with other sites */
    uint64_t arenas;        /* distinct arenas holding its non-huge blocks (an
                               arena several sites use counts for each) */
} _neap_pin_site_t;

/* Adds to sites[0..nsites) (zeroed by the caller) what blocks[0..n) pin.
 * Returns 0, or -1 with errno ENOMEM (memory ran out; sites partly filled)
 * or EINVAL (a block's site is not below nsites, or a block that is not
 * huge is longer than NEAP_PIN_NONHUGE_MAX; sites partly filled).  Its work
 * is O(n): at most 1025 pages and 2 arenas per block that is not huge.  Works in memory from
 * malloc/free, O(pages + arenas) of it: the C library's in the neap command,
 * in-process whatever malloc the program has (neap's when it overrides it,
 * so a traced caller pauses its tracing first).  No shared state. */
int _neap_pinning(const _neap_pin_block_t *blocks, size_t n, _neap_pin_site_t *sites,
                  size_t nsites);

#endif

/* pinning.c -- the pages and arenas live blocks keep from going back to the
 * OS, per allocation site (pinning.h).  One computation for `neap report`
 * (a trace's live blocks) and neap_snapshot_pinning (a snapshot's traces).
 *
 * A page stays mapped while any block is in it; an arena while any of its
 * pages does.  So for each site:
 *
 *   block (not huge)      page p          page p+1        page p+2
 *                     |....[AAAA|AAAAAAAAAAAAAAA|AAAA]..BB|
 *                          partial  whole page     partial, shared with B
 *
 *   whole page   (the block covers it: no other block can be in it)
 *                 -> pages += 1, pages_alone += 1, on the spot
 *   partial page -> an entry {page, site, bytes} in pages[]
 *   each arena the block touches -> an entry {arena, site} in arenas[]
 *   huge block   (a mapping of its own) -> pages += its page count,
 *                 pages_alone too, no entry, no arena
 *
 *   pages[], sorted by (page, site):
 *     | p:A:100 | p:A:60 | p:B:40 | q:A:8 | ...
 *       '--- page p: total 200 ---'   '-- page q: A alone
 *     per (page, site) run: pages += site's bytes / total (A: 160/200,
 *     B: 40/200), and pages_alone (one site in the page) or pages_shared
 *     (several) += 1
 *   arenas[], sorted the same way: arenas += 1 per distinct (arena, site)
 *
 * Invariants
 *   - Every page holding a block of a site counts once for it, in
 *     pages_alone or pages_shared; summed over sites, pages counts each
 *     page holding a block once (up to rounding).
 *   - A site's bytes in a page are summed as integers before the one
 *     division, so a page only one site is in counts exactly 1.
 *   - Whole pages are added before the split ones (the order the sums are
 *     taken in is part of the result, to the last bit).
 *   - An address range running past the end of the address space is cut at
 *     its end (a bogus block from a file): nothing overflows.
 *   - The work is bounded by the blocks, never by the sizes they claim: a
 *     huge block's pages are counted, not walked; a block that is not huge
 *     is at most an arena long (neap's are at most 1 MiB), so it touches at
 *     most 1025 pages and 2 arenas, and a longer one is refused (EINVAL)
 *     before anything is walked: a bogus size from a file (2^62 bytes) would
 *     otherwise mean 2^50 pages.
 */
#include "trace/pinning.h"

#include <errno.h>
#include <stdlib.h>

#define PAGE ((uint64_t)1 << NEAP_PIN_PAGE_SHIFT)

/* A site's share of one page, or (bytes 0) its presence in one arena. */
typedef struct pin_ent {
    uint64_t unit;   /* page or arena number */
    uint32_t site;   /* index into sites */
    uint32_t bytes;  /* the site's bytes in the page (< PAGE); 0 for an arena */
} pin_ent_t;

/* A growing array of entries. */
typedef struct pin_vec {
    pin_ent_t *v;
    size_t n, cap;
} pin_vec_t;

/* Appends e to vec, doubling it when full; 0, or -1 (no memory, vec kept). */
static int pin_push(pin_vec_t *vec, pin_ent_t e) {
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? 2 * vec->cap : 1024;
        if (cap > SIZE_MAX / 2 / sizeof *vec->v)
            return -1;
        pin_ent_t *v = realloc(vec->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        vec->v = v;
        vec->cap = cap;
    }
    vec->v[vec->n++] = e;
    return 0;
}

/* qsort order: by unit, then site. */
static int pin_ent_cmp(const void *a, const void *b) {
    const pin_ent_t *x = a, *y = b;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    return x->site < y->site ? -1 : x->site > y->site;
}

/* Splits each page of pages[0..n) (sorted) between the sites in it. */
static void pin_split_pages(const pin_ent_t *pages, size_t n, _neap_pin_site_t *sites) {
    for (size_t i = 0; i < n;) {
        size_t j = i, nsites = 0;
        uint64_t total = 0;
        for (; j < n && pages[j].unit == pages[i].unit; j++) {
            total += pages[j].bytes;
            nsites += j == i || pages[j].site != pages[j - 1].site;
        }
        for (size_t k = i; k < j;) {
            size_t m = k;
            uint64_t bytes = 0;
            for (; m < j && pages[m].site == pages[k].site; m++)
                bytes += pages[m].bytes;
            _neap_pin_site_t *s = &sites[pages[k].site];
            s->pages += (double)bytes / (double)total;
            if (nsites > 1)
                s->pages_shared++;
            else
                s->pages_alone++;
            k = m;
        }
        i = j;
    }
}

int _neap_pinning(const _neap_pin_block_t *blocks, size_t n, _neap_pin_site_t *sites,
                  size_t nsites) {
    pin_vec_t pages = {0}, arenas = {0};
    int err = ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const _neap_pin_block_t *b = &blocks[i];
        if (b->site >= nsites) {
            err = EINVAL;
            goto fail;
        }
        _neap_pin_site_t *s = &sites[b->site];
        uint64_t addr = b->addr, size = b->size ? b->size : 1;
        if (!b->huge && size > NEAP_PIN_NONHUGE_MAX) {
            err = EINVAL;
            goto fail;
        }
        uint64_t end = size - 1 > UINT64_MAX - addr ? UINT64_MAX : addr + (size - 1); /* last byte */
        uint64_t first = addr >> NEAP_PIN_PAGE_SHIFT, last = end >> NEAP_PIN_PAGE_SHIFT;
        if (b->huge) {
            s->pages += (double)(last - first + 1);
            s->pages_alone += last - first + 1;
            continue;
        }
        for (uint64_t p = first; p <= last; p++) {
            uint64_t lo = p << NEAP_PIN_PAGE_SHIFT, hi = lo + (PAGE - 1); /* first, last byte */
            uint64_t from = addr > lo ? addr : lo, to = end < hi ? end : hi;
            if (from == lo && to == hi) { /* a page of its own */
                s->pages += 1;
                s->pages_alone++;
            } else if (pin_push(&pages, (pin_ent_t){p, b->site, (uint32_t)(to - from + 1)}) != 0) {
                goto fail;
            }
        }
        for (uint64_t a = addr >> NEAP_PIN_ARENA_SHIFT; a <= end >> NEAP_PIN_ARENA_SHIFT; a++)
            if (pin_push(&arenas, (pin_ent_t){a, b->site, 0}) != 0)
                goto fail;
    }
    if (pages.n > 1)
        qsort(pages.v, pages.n, sizeof *pages.v, pin_ent_cmp);
    pin_split_pages(pages.v, pages.n, sites);
    if (arenas.n > 1)
        qsort(arenas.v, arenas.n, sizeof *arenas.v, pin_ent_cmp);
    for (size_t i = 0; i < arenas.n; i++) {
        const pin_ent_t *e = &arenas.v[i];
        if (i == 0 || e->unit != e[-1].unit || e->site != e[-1].site)
            sites[e->site].arenas++;
    }
    free(pages.v);
    free(arenas.v);
    return 0;
fail:
    free(pages.v);
    free(arenas.v);
    errno = err;
    return -1;
}

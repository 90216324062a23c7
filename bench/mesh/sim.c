/* sim.c -- how many pages meshing could give back, by simulation.
 *
 *   ./sim [pages] [probes] [keep%] [seed]      defaults: 100000 64 10 1
 *
 * Per size class, `pages` pages of 4096 / size blocks each (the pool header
 * out of line: meshing needs it so) are filled, then blocks are freed so
 * that keep% survive, in two patterns:
 *
 *   random   each block survives with probability keep% (a delete of a
 *            random 90% of keys); the pages were full, so where a block sat
 *            in its page does not matter: both placements are shown to make
 *            the point
 *   stride   the blocks survive by allocation order: every (100/keep)-th
 *            one (a program that keeps one object in ten of a sequence);
 *            with sequential (bump / address-ordered) placement every page's
 *            survivors sit at the same offsets, with random placement (each
 *            page hands its slots out in a random order) they do not;
 *            rot: sequential from a random slot of the page, wrapping (a
 *            random rotation per page: the walk stays a stream)
 *
 * Pages with no survivor are given back without meshing (what neap does
 * today).  Then Mesh's split-and-match, in rounds: the pages with survivors
 * are shuffled, split in two halves L and R, and page L[i] is compared with
 * R[(i + k) % |R|] for k < probes; the first whose occupancy bitmap is
 * disjoint from L[i]'s (and not yet meshed this round) takes L[i]'s blocks
 * and L[i]'s physical page is freed.  A meshed page (the OR of the bitmaps)
 * takes part in later rounds like any page.  Rounds go on until one frees
 * fewer than 0.5% of the pages, at most 20.
 *
 * Printed per class and pattern: pages at the peak; pages kept with no
 * meshing (neap today); after round 1; after the last round; the bound
 * (live blocks / blocks per page); the bitmap comparisons per page and the
 * time a round takes.
 *
 * Build: cc -O2 -o sim sim.c   (or make in this directory) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORDS 4 /* 256 bits: 4096 / 16 */

typedef struct {
    uint64_t b[WORDS];
} page_t;

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static uint32_t rnd_below(uint32_t n) {
    return (uint32_t)(((rnd() >> 32) * (uint64_t)n) >> 32);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int disjoint(const page_t *a, const page_t *b) {
    return ((a->b[0] & b->b[0]) | (a->b[1] & b->b[1]) | (a->b[2] & b->b[2]) | (a->b[3] & b->b[3])) == 0;
}
static int empty(const page_t *a) {
    return (a->b[0] | a->b[1] | a->b[2] | a->b[3]) == 0;
}

static void shuffle(page_t *p, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd_below((uint32_t)i);
        page_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* One round of split-and-match over p[0..n): returns the new count (the
 * meshed-away pages removed); *cmp counts bitmap comparisons. */
static size_t round_mesh(page_t *p, size_t n, int probes, uint64_t *cmp) {
    shuffle(p, n);
    size_t half = n / 2;
    page_t *L = p, *R = p + half;
    size_t nr = n - half;
    if (nr == 0) return n;
    unsigned char *taken = calloc(nr, 1), *gone = calloc(half, 1);
    for (size_t i = 0; i < half; i++) {
        for (int k = 0; k < probes && k < (int)nr; k++) {
            size_t j = (i + (size_t)k) % nr;
            if (taken[j]) continue;
            (*cmp)++;
            if (disjoint(&L[i], &R[j])) {
                for (int w = 0; w < WORDS; w++) R[j].b[w] |= L[i].b[w];
                taken[j] = 1;
                gone[i] = 1;
                break;
            }
        }
    }
    size_t out = 0;
    for (size_t i = 0; i < half; i++)
        if (!gone[i]) p[out++] = L[i];
    for (size_t j = 0; j < nr; j++) p[out++] = R[j];
    free(taken);
    free(gone);
    return out;
}

enum { RANDOM, STRIDE };
enum { SEQ, RAND, ROT };

/* pages of `cap` blocks; returns the pages with survivors in p, their count */
static size_t make(page_t *p, size_t pages, int cap, int pattern, int placement, int keep_pct, size_t *live) {
    int stride = 100 / keep_pct;
    int perm[256];
    size_t n = 0;
    *live = 0;
    for (size_t pg = 0; pg < pages; pg++) {
        uint32_t rot = placement == ROT ? rnd_below((uint32_t)cap) : 0;
        for (int s = 0; s < cap; s++) perm[s] = (s + (int)rot) % cap;
        if (placement == RAND)
            for (int s = cap; s > 1; s--) {
                int j = (int)rnd_below((uint32_t)s), t = perm[s - 1];
                perm[s - 1] = perm[j];
                perm[j] = t;
            }
        page_t pt;
        memset(&pt, 0, sizeof pt);
        for (int k = 0; k < cap; k++) {   /* the k-th block allocated in this page */
            size_t seq = pg * (size_t)cap + (size_t)k;
            int keep = pattern == RANDOM ? rnd_below(100) < (uint32_t)keep_pct : seq % (size_t)stride == 0;
            if (keep) {
                int slot = perm[k];
                pt.b[slot / 64] |= 1ULL << (slot % 64);
                (*live)++;
            }
        }
        if (!empty(&pt)) p[n++] = pt;
    }
    return n;
}

int main(int argc, char **argv) {
    size_t pages = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    int probes = argc > 2 ? atoi(argv[2]) : 64;
    int keep = argc > 3 ? atoi(argv[3]) : 10;
    rng_state = argc > 4 ? (uint64_t)atoll(argv[4]) * 0x9E3779B97F4A7C15ULL + 1 : 88172645463325252ULL;
    static const int sizes[] = {16, 32, 48, 64, 128, 256, 512};
    static const char *pat[] = {"random", "stride"}, *plc[] = {"seq", "rand", "rot"};
    page_t *p = malloc(pages * sizeof *p);
    printf("%zu pages per class, %d probes, %d%% of blocks kept; pages as %% of the peak\n", pages, probes, keep);
    printf("%5s %-6s %-5s %6s %9s %9s %9s %7s %6s %9s %9s\n", "size", "free", "place", "blocks", "no-mesh", "round1",
           "final", "rounds", "bound", "cmp/page", "ms/round1");
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int size = sizes[si], cap = 4096 / size;
        for (int pattern = RANDOM; pattern <= STRIDE; pattern++)
            for (int placement = SEQ; placement <= ROT; placement++) {
                size_t live, n = make(p, pages, cap, pattern, placement, keep, &live);
                double nomesh = 100.0 * n / pages;
                uint64_t cmp = 0;
                double t = now_ms();
                n = round_mesh(p, n, probes, &cmp);
                double t1 = now_ms() - t;
                double r1 = 100.0 * n / pages;
                uint64_t cmp1 = cmp;
                int rounds = 1;
                for (; rounds < 20; rounds++) {
                    size_t m = round_mesh(p, n, probes, &cmp);
                    size_t freed = n - m;
                    n = m;
                    if (freed * 200 < n) {
                        rounds++;
                        break;
                    }
                }
                double bound = 100.0 * ((live + cap - 1) / cap) / pages;
                printf("%5d %-6s %-5s %6d %8.1f%% %8.1f%% %8.1f%% %7d %5.1f%% %9.1f %9.1f\n", size, pat[pattern],
                       plc[placement], cap, nomesh, r1, 100.0 * n / pages, rounds, bound,
                       (double)cmp1 / pages, t1);
            }
    }
    /* The mix: neap's 32 small classes (16..512 B in 16-byte steps), the
     * same number of blocks in each (sizes uniform over 16..512 B), a random
     * keep% kept, random placement; pages summed over the classes. */
    size_t per_class = pages * 16;   /* blocks per class */
    size_t peak = 0, nomesh = 0, r1 = 0, fin = 0, bound = 0;
    for (int size = 16; size <= 512; size += 16) {
        int cap = 4096 / size;
        size_t cpages = (per_class + cap - 1) / cap, live;
        page_t *q = malloc(cpages * sizeof *q);
        size_t n = make(q, cpages, cap, RANDOM, RAND, keep, &live);
        uint64_t cmp = 0;
        peak += cpages, nomesh += n, bound += (live + cap - 1) / cap;
        n = round_mesh(q, n, probes, &cmp);
        r1 += n;
        for (int rounds = 1; rounds < 20; rounds++) {
            size_t m = round_mesh(q, n, probes, &cmp);
            size_t freed = n - m;
            n = m;
            if (freed * 200 < n) break;
        }
        fin += n;
        free(q);
    }
    printf("mix of the 32 classes 16..512 B (%zu blocks each, random %d%% kept, random placement): peak %zu pages; "
           "no mesh %.1f%%, round 1 %.1f%%, final %.1f%%, bound %.1f%%\n",
           per_class, keep, peak, 100.0 * nomesh / peak, 100.0 * r1 / peak, 100.0 * fin / peak, 100.0 * bound / peak);
    free(p);
    return 0;
}

/* redislike.c -- the workload under the allocator the program runs
 * with, and what meshing would do to its real survivors' pages.
 *
 *   LD_PRELOAD=libneap.so ./redislike [n] [keep%] [probes]
 *                                          defaults: 1000000 10 64
 *
 * n blocks of a random size in 16..512 B (uniform) are allocated and
 * written, then a random (100 - keep)% freed.  Printed: RSS growth at the
 * peak and after the frees (after neap_trim if the allocator has it, else
 * malloc_trim), as a share of the peak growth; then, from the survivors'
 * addresses, the pages they occupy (the floor of an allocator that returns
 * every page with no live block) and how far split-and-match meshing of
 * those very pages would go (pages grouped by size class, 16-byte units
 * of each page marked live where a survivor covers them; two pages of one
 * class mesh when no unit is live in both).  The blocks' places are the
 * allocator's own: sequential in neap today.  MESH_PER_ARENA=1 meshes only
 * pages of one 4 MiB arena together.
 *
 * Build: cc -O2 -o redislike redislike.c -ldl   (or make in this directory) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rs ^= rs >> 12, rs ^= rs << 25, rs ^= rs >> 27;
    return rs * 0x2545F4914F6CDD1DULL;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef struct {
    uintptr_t page;
    uint32_t cls;   /* rounded size */
    uint64_t b[4];  /* live 16-byte units */
} pg_t;

typedef struct {
    uintptr_t addr;
    uint32_t size;
} live_t;

static int by_addr(const void *x, const void *y) {
    const live_t *a = x, *b = y;
    return a->addr < b->addr ? -1 : a->addr > b->addr;
}
static int per_arena;   /* MESH_PER_ARENA=1: mesh only pages of one 4 MiB arena */
static uint64_t group(const pg_t *p) {
    return per_arena ? (uint64_t)(p->page >> 22) << 16 | p->cls : p->cls;
}
static int by_cls(const void *x, const void *y) {
    uint64_t a = group(x), b = group(y);
    return a < b ? -1 : a > b;
}

static int by_uptr(const void *x, const void *y) {
    uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
    return a < b ? -1 : a > b;
}

static int disjoint(const pg_t *a, const pg_t *b) {
    return ((a->b[0] & b->b[0]) | (a->b[1] & b->b[1]) | (a->b[2] & b->b[2]) | (a->b[3] & b->b[3])) == 0;
}

/* split-and-match rounds over p[0..n) (one class); the pages left */
static size_t mesh_class(pg_t *p, size_t n, int probes, int max_rounds) {
    for (int round = 0; round < max_rounds && n > 1; round++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd() % i;
            pg_t t = p[i - 1];
            p[i - 1] = p[j];
            p[j] = t;
        }
        size_t half = n / 2, nr = n - half, out = 0;
        pg_t *L = p, *R = p + half;
        unsigned char *taken = calloc(nr, 1), *gone = calloc(half, 1);
        for (size_t i = 0; i < half; i++)
            for (int k = 0; k < probes && k < (int)nr; k++) {
                size_t j = (i + (size_t)k) % nr;
                if (!taken[j] && disjoint(&L[i], &R[j])) {
                    for (int w = 0; w < 4; w++) R[j].b[w] |= L[i].b[w];
                    taken[j] = gone[i] = 1;
                    break;
                }
            }
        for (size_t i = 0; i < half; i++)
            if (!gone[i]) p[out++] = L[i];
        memmove(p + out, R, nr * sizeof *p);
        size_t freed = n - (out + nr);
        n = out + nr;
        free(taken);
        free(gone);
        if (freed * 200 < n) break;
    }
    return n;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    int keep = argc > 2 ? atoi(argv[2]) : 10, probes = argc > 3 ? atoi(argv[3]) : 64;
    /* bookkeeping allocated up front so that it is part of the baseline */
    void **ptr = malloc(n * sizeof *ptr);
    uint32_t *size = malloc(n * sizeof *size);
    live_t *live = malloc(n * sizeof *live);
    memset(ptr, 0, n * sizeof *ptr), memset(size, 0, n * sizeof *size), memset(live, 0, n * sizeof *live);
    per_arena = getenv("MESH_PER_ARENA") && atoi(getenv("MESH_PER_ARENA"));
    int (*trim)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "neap_trim");
    long base = rss_kb();
    for (size_t i = 0; i < n; i++) {
        size[i] = 16 + (uint32_t)(rnd() % 497);
        ptr[i] = malloc(size[i]);
        memset(ptr[i], (int)i, size[i]);
    }
    long peak = rss_kb();
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 100 < (uint64_t)keep) live[nl++] = (live_t){(uintptr_t)ptr[i], size[i]};
        else free(ptr[i]);
    }
    usleep(100000);   /* past neap's purge delay */
    if (trim) trim();
    else malloc_trim(0);
    long after = rss_kb();
    printf("%zu blocks of 16..512 B, %d%% kept (%s): RSS growth peak %ld kB, after frees %ld kB = %.1f%% of peak\n", n,
           keep, trim ? "neap_trim" : "malloc_trim", peak - base, after - base, 100.0 * (after - base) / (peak - base));
    /* the survivors' pages */
    qsort(live, nl, sizeof *live, by_addr);
    pg_t *pg = calloc(nl, sizeof *pg);
    size_t np = 0, cross = 0;
    for (size_t i = 0; i < nl; i++) {
        uintptr_t a = live[i].addr, page = a & ~(uintptr_t)4095;
        uint32_t cls = (live[i].size + 15) & ~15u;
        if ((a + cls - 1) >> 12 != a >> 12) cross++;   /* a block across two pages: not in a one-page pool */
        if (np == 0 || pg[np - 1].page != page) pg[np++] = (pg_t){.page = page, .cls = cls};
        pg_t *p = &pg[np - 1];
        if (p->cls != cls) p->cls = 0;   /* two classes in one page: not meshable this way */
        for (uintptr_t u = (a & 4095) >> 4; u < (((a & 4095) + cls + 15) >> 4) && u < 256; u++)
            p->b[u / 64] |= 1ULL << (u % 64);
    }
    size_t live_bytes = 0;
    for (size_t i = 0; i < nl; i++) live_bytes += (live[i].size + 15) & ~15u;
    uintptr_t *orig = malloc(np * sizeof *orig), *kept = malloc(np * sizeof *kept);
    for (size_t i = 0; i < np; i++) orig[i] = pg[i].page;   /* sorted by address */
    size_t nk = 0;
    qsort(pg, np, sizeof *pg, by_cls);
    size_t left = 0, r1 = 0;
    for (size_t i = 0; i < np;) {
        size_t j = i;
        while (j < np && group(&pg[j]) == group(&pg[i])) j++;
        if (pg[i].cls == 0) {
            left += j - i, r1 += j - i;
            for (size_t k = i; k < j; k++) kept[nk++] = pg[k].page;
        } else {
            pg_t *copy = malloc((j - i) * sizeof *copy);
            memcpy(copy, pg + i, (j - i) * sizeof *copy);
            r1 += mesh_class(copy, j - i, probes, 1);
            free(copy);
            size_t lc = mesh_class(pg + i, j - i, probes, 20);
            for (size_t k = i; k < i + lc; k++) kept[nk++] = pg[k].page;
            left += lc;
        }
        i = j;
    }
    long growth = peak - base;
    printf("survivors: %zu blocks, %zu kB (rounded to 16 B); on %zu pages = %zu kB = %.1f%% of peak growth "
           "(%zu blocks cross a page boundary)\n",
           nl, live_bytes / 1024, np, np * 4, 100.0 * np * 4 / growth, cross);
    printf("meshing those pages (%d probes%s): one round %zu pages = %.1f%% of peak growth; to convergence %zu pages = "
           "%.1f%%; bound (live bytes) %.1f%%\n",
           probes, per_arena ? ", within each 4 MiB arena" : "", r1, 100.0 * r1 * 4 / growth, left, 100.0 * left * 4 / growth, 100.0 * live_bytes / 1024 / growth);
    /* The mappings (VMAs) meshing would cost: a remapped virtual page maps
     * a file offset not its own, so it is a mapping of its own, and it cuts
     * its arena's identity mapping; count, per 4 MiB arena, the remapped
     * pages plus the identity stretches between and around them. */
    qsort(kept, nk, sizeof *kept, by_uptr);
    size_t remapped = 0, vmas = 0, arenas = 0;
    uintptr_t arena = 0, prev = 0;
    for (size_t i = 0, k = 0; i < np; i++) {
        while (k < nk && kept[k] < orig[i]) k++;
        if (k < nk && kept[k] == orig[i]) continue;   /* still its own page */
        remapped++;
        uintptr_t a = orig[i] >> 22;
        if (a != arena) {
            if (arena && prev != ((arena + 1) << 22) - 4096) vmas++;   /* the stretch after the last */
            arena = a, arenas++;
            if (orig[i] != a << 22) vmas++;   /* the stretch before the first */
        } else if (orig[i] != prev + 4096) vmas++;   /* the stretch between */
        vmas++;
        prev = orig[i];
    }
    if (arena && prev != ((arena + 1) << 22) - 4096) vmas++;
    printf("mappings: %zu virtual pages remapped in %zu arenas: %zu mappings where there were %zu "
           "(vm.max_map_count defaults to 65530)\n",
           remapped, arenas, vmas, arenas);
    return 0;
}

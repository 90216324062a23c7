/* place.c -- what random placement within a page costs a program that walks
 * its objects in allocation order (a list built by appending: the worst case
 * for shuffling, since sequential placement makes the walk a stream).
 *
 *   ./place [size] [KiB]        defaults: 64 65536
 *
 * Blocks of `size` bytes fill 4 KiB pages, 4096/size per page.  The k-th
 * block allocated goes to slot k % cap of page k / cap (sequential, as neap
 * bumps and carves today) or to slot perm[k % cap] of that page (a random
 * order chosen when the page is carved: the carve-time shuffle the design
 * note first considered), or to slot (k + r) % cap for a random r per page
 * (a rotation: sequential from a random start, wrapping).  A list is threaded through the blocks in allocation
 * order and walked; ns per block, best of 5.  Run it at a working set that
 * fits the caches and at one that does not.
 *
 * Build: cc -O2 -o place place.c   (or make in this directory) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t size = argc > 1 ? (size_t)atol(argv[1]) : 64;
    size_t kib = argc > 2 ? (size_t)atol(argv[2]) : 65536;
    size_t bytes = kib << 10, pages = bytes / 4096, cap = 4096 / size, n = pages * cap;
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return 1;
    memset(base, 0, bytes);
    uint64_t x = 88172645463325252ULL;
    size_t *perm = malloc(cap * sizeof *perm);
    double best[3] = {1e18, 1e18, 1e18};
    for (int mode = 0; mode < 3; mode++) {
        char *prev = NULL, *first = NULL;
        for (size_t pg = 0; pg < pages; pg++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            size_t rot = mode == 2 ? (size_t)((x * 0x2545F4914F6CDD1DULL) % cap) : 0;
            for (size_t s = 0; s < cap; s++) perm[s] = (s + rot) % cap;
            if (mode == 1)
                for (size_t s = cap; s > 1; s--) {
                    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
                    size_t j = (size_t)((x * 0x2545F4914F6CDD1DULL) % s), t = perm[s - 1];
                    perm[s - 1] = perm[j], perm[j] = t;
                }
            for (size_t k = 0; k < cap; k++) {
                char *b = base + pg * 4096 + perm[k] * size;
                if (prev) memcpy(prev, &b, sizeof b);
                else first = b;
                prev = b;
            }
        }
        char *nul = NULL;
        memcpy(prev, &nul, sizeof nul);
        for (int run = 0; run < 5; run++) {
            double t = now_ns();
            uint64_t sum = 0;
            for (char *b = first; b; b = *(char **)b) sum += ((uint64_t *)b)[1];
            double d = (now_ns() - t) / n;
            if (d < best[mode]) best[mode] = d;
            if (sum == 1) printf("-");
        }
    }
    printf("%zu-byte blocks, %zu KiB: walk in allocation order %.2f ns/block sequential, %.2f random within the "
           "page (%.2fx), %.2f rotated by a random slot (%.2fx)\n",
           size, kib, best[0], best[1], best[1] / best[0], best[2], best[2] / best[0]);
    return 0;
}

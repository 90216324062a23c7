/* trace_prog.c -- programs whose traces run.sh reads back with `neap report`
 * (its trace* cases), one per argv[1]:
 *
 *   trace_prog threads   100 threads, one after another, each leaks 100
 *                        blocks of 1000 bytes (10^7 bytes in all, each
 *                        thread's first allocations)
 *   trace_prog realloc   1000 blocks of 48 bytes, each moved by realloc to
 *                        2000 bytes (another size class), then to 100000
 *                        (a large block), then grown in place if it can
 *                        be, then freed
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 100
#define BLOCKS 100

static void *leaked[THREADS][BLOCKS];

static void *leaker(void *arg) {
    void **v = arg;
    for (int i = 0; i < BLOCKS; i++) {
        v[i] = malloc(1000);
        if (v[i] == NULL) exit(3);
        memset(v[i], 1, 1000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "threads") == 0) {
        for (int i = 0; i < THREADS; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, leaker, leaked[i]) != 0) return 3;
            pthread_join(t, NULL);
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "realloc") == 0) {
        for (int i = 0; i < 1000; i++) {
            char *p = malloc(48);
            if (p == NULL) return 3;
            memset(p, 7, 48);
            size_t sizes[] = {2000, 100000, 120000};
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                char *q = realloc(p, sizes[k]);
                if (q == NULL || q[47] != 7) return 3;
                p = q;
            }
            free(p);
        }
        return 0;
    }
    fprintf(stderr, "usage: trace_prog threads|realloc\n");
    return 2;
}

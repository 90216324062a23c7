/* trace_prog.c -- programs whose traces run.sh reads back with `neap report`
 * (its trace* cases), one per argv[1]:
 *
 *   trace_prog threads   100 threads, one after another, each leaks 100
 *                        blocks of 1000 bytes (10^7 bytes in all, each
 *                        thread's first allocations)
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
    fprintf(stderr, "usage: trace_prog threads\n");
    return 2;
}

/* mark_prog.c -- a program that marks moments of its trace, for run.sh's
 * tracemark and markcmd cases (run under `neap run --trace FILE`; linked
 * with libneap.so for neap_trace_mark).  One mode per argv[1]:
 *
 *   mark_prog phases     phase_one: 100 blocks of 10000 bytes; mark
 *                        "phase1"; 90 of them freed; mark "phase2"; then
 *                        huge_block: one block of 3 MiB (a mapping of its
 *                        own: 768 pages), freed; the 10 blocks stay live.
 *                        The live bytes of each site at each moment:
 *
 *                          moment         phase_one        huge_block
 *                          mark:phase1    1000000 in 100   -
 *                          mark:phase2     100000 in 10    -
 *                          peak            100000 in 10    3145728 in 1
 *                          end             100000 in 10    -
 *
 *   mark_prog wait READY GO   hold_remote: 50 blocks of 20000 bytes; its
 *                        pid written to READY (whole, by a rename); then
 *                        waits for a line on GO (a FIFO: no sleep, no
 *                        race), frees the 50 blocks and exits.  A `neap
 *                        mark` made while it waits sees the 50 blocks live
 *                        (1000000 bytes).
 *
 * Exit 0, or 3 when something fails (a mark refused: neap_trace_mark's
 * errno is printed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "neap_trace.h"

static void *volatile blocks[100];

static void mark(const char *label) {
    if (neap_trace_mark(label) != 0) {
        fprintf(stderr, "mark_prog: neap_trace_mark(\"%s\"): %s\n", label, strerror(errno));
        exit(3);
    }
}

static __attribute__((noinline)) void phase_one(void) {
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc(10000);
        if (blocks[i] == NULL) exit(3);
        memset(blocks[i], 1, 10000);
    }
}

static __attribute__((noinline)) void huge_block(void) {
    char *p = malloc((size_t)3 << 20);
    if (p == NULL) exit(3);
    p[0] = 1;
    blocks[99] = p;
    free(blocks[99]);
    blocks[99] = NULL;
}

static __attribute__((noinline)) void hold_remote(void) {
    for (int i = 0; i < 50; i++) {
        blocks[i] = malloc(20000);
        if (blocks[i] == NULL) exit(3);
        memset(blocks[i], 2, 20000);
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "phases") == 0) {
        phase_one();
        mark("phase1");
        for (int i = 10; i < 100; i++) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
        mark("phase2");
        huge_block();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "wait") == 0) {
        hold_remote();
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
            rename(tmp, argv[2]) != 0)
            return 3;
        FILE *go = fopen(argv[3], "r"); /* a FIFO: waits for the test to open it */
        char line[16];
        if (go == NULL || fgets(line, sizeof line, go) == NULL) return 3;
        fclose(go);
        for (int i = 0; i < 50; i++) free(blocks[i]);
        return 0;
    }
    fprintf(stderr, "usage: mark_prog phases | wait READY GO\n");
    return 2;
}

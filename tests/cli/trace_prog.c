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
 *   trace_prog spawn     allocates; forks a child that allocates and exits
 *                        by exit() (its exit handlers run), and waits for
 *                        it; forks a child that execs `trace_prog leaf`,
 *                        and waits for it; allocates again; prints its pid
 *                        and the pid of the child that exec'd
 *   trace_prog leaf      allocates, leaks some, exits 0
 *   trace_prog mesh      100000 blocks of 16..512 bytes, a random 90% freed,
 *                        malloc_trim (which meshes, under neap run --mesh),
 *                        then a third of the survivors freed and a third
 *                        moved by realloc, through the addresses malloc
 *                        gave (some in meshed pages); prints the bytes it
 *                        leaves live at exit, and checks every survivor's
 *                        contents
 */
#include <malloc.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 100
#define BLOCKS 100

static void *leaked[THREADS][BLOCKS];

/* the blocks churn leaves live (a global: not a leak to the compiler) */
void *volatile kept[4];

/* n blocks of size bytes made and freed, and one more left live */
static void churn(int n, size_t size) {
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        if (p == NULL) exit(3);
        p[0] = 1;
        free(p);
    }
    kept[size / 100 % 4] = malloc(size);
}

/* Waits for child pid; exits 3 unless it exited 0. */
static void wait_ok(pid_t pid) {
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "trace_prog: child %ld failed\n", (long)pid);
        exit(3);
    }
}

static void *leaker(void *arg) {
    void **v = arg;
    for (int i = 0; i < BLOCKS; i++) {
        v[i] = malloc(1000);
        if (v[i] == NULL) exit(3);
        memset(v[i], 1, 1000);
    }
    return NULL;
}

#define MESH_BLOCKS 100000
static char *mesh_block[MESH_BLOCKS];
static size_t mesh_size[MESH_BLOCKS];

static int mesh_check(size_t i) {
    for (size_t k = 0; k < mesh_size[i]; k++)
        if ((unsigned char)mesh_block[i][k] != (unsigned char)(i * 7 + k)) return 0;
    return 1;
}

static int mesh_main(void) {
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < MESH_BLOCKS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        mesh_size[i] = 16 + x % 497;
        if ((mesh_block[i] = malloc(mesh_size[i])) == NULL) return 3;
        for (size_t k = 0; k < mesh_size[i]; k++) mesh_block[i][k] = (char)(i * 7 + k);
    }
    for (size_t i = 0; i < MESH_BLOCKS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x % 10 != 0) {
            free(mesh_block[i]);
            mesh_block[i] = NULL;
        }
    }
    malloc_trim(0);
    size_t live = 0, n = 0;
    for (size_t i = 0; i < MESH_BLOCKS; i++) {
        if (mesh_block[i] == NULL) continue;
        if (!mesh_check(i)) return 4;
        if (n % 3 == 0) {
            free(mesh_block[i]);
            mesh_block[i] = NULL;
        } else if (n % 3 == 1) {
            char *q = realloc(mesh_block[i], mesh_size[i] + 40);
            if (q == NULL) return 3;
            mesh_block[i] = q;
            if (!mesh_check(i)) return 4;
            mesh_size[i] += 40;
            live += mesh_size[i];
        } else {
            live += mesh_size[i];
        }
        n++;
    }
    printf("%zu\n", live);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "mesh") == 0) return mesh_main();
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
    if (argc == 2 && strcmp(argv[1], "spawn") == 0) {
        churn(1000, 100);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            churn(1000, 200);
            exit(0);
        }
        wait_ok(pid);
        pid_t leaf = fork();
        if (leaf == 0) {
            execl("/proc/self/exe", argv[0], "leaf", (char *)NULL);
            _exit(127);
        }
        wait_ok(leaf);
        churn(1000, 300);
        printf("%ld %ld\n", (long)getpid(), (long)leaf);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "leaf") == 0) {
        churn(1000, 400);
        return 0;
    }
    fprintf(stderr, "usage: trace_prog threads|realloc|spawn|leaf|mesh\n");
    return 2;
}

/* last_thread.c -- programs whose last thread ends by pthread_exit, run by
 * run.sh (case lastthread) under `neap run`, whose background thread must not
 * keep them alive.  POSIX: the process then exits as if exit(0) were called.
 *
 *   last_thread main FILE   main registers an atexit handler that writes FILE,
 *                           then calls pthread_exit while a thread sleeps 50 ms
 *   last_thread fork FILE   a thread forks; in the child that thread returns
 *                           from its start routine, the child's only thread
 *                           (CPython's test_threading does this); the parent
 *                           waits for the child and writes FILE if it exited 0
 *   last_thread name        prints the names of the process's threads
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *done_file;

static void write_done(void) {
    FILE *f = fopen(done_file, "w");
    if (f) {
        fputs("done\n", f);
        fclose(f);
    }
}

static void *sleeper(void *arg) {
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    free(malloc(100));
    return NULL;
}

static void *forker(void *arg) {
    (void)arg;
    free(malloc(1000));
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(3);
    }
    if (pid == 0) {
        free(malloc(1000));
        return NULL;   /* the child's only thread ends here */
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        exit(3);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) write_done();
    else fprintf(stderr, "last_thread: the child ended with status 0x%x\n", status);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "name") == 0) {
        free(malloc(10));
        struct timespec ts = {0, 200 * 1000 * 1000};   /* the thread names itself once started */
        nanosleep(&ts, NULL);
        DIR *d = opendir("/proc/self/task");
        if (!d) return 3;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[300], name[64] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (f && fgets(name, sizeof name, f)) fputs(name, stdout);
            if (f) fclose(f);
        }
        closedir(d);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: last_thread main|fork FILE | last_thread name\n");
        return 2;
    }
    done_file = argv[2];
    pthread_t t;
    if (strcmp(argv[1], "main") == 0) {
        atexit(write_done);
        if (pthread_create(&t, NULL, sleeper, NULL) != 0) return 3;
        pthread_detach(t);
        pthread_exit(NULL);
    }
    if (strcmp(argv[1], "fork") == 0) {
        if (pthread_create(&t, NULL, forker, NULL) != 0) return 3;
        pthread_join(t, NULL);
        return 0;
    }
    return 2;
}

/* neap_misuse.h -- for the tests whose child process makes one misuse of
 * the allocator (a bad or double free, an overwritten link) that must stop
 * it with neap's message: test_abort.c, test_hardened.c.
 *
 *   parent                                  child (forked)
 *   misuse_run(run, mode, ...)  --fork-->   stderr -> err pipe; no core file;
 *     reads the address pipe, then            SIGABRT at its default
 *     the err pipe, to their ends;            run(mode): misuse_report(p) writes
 *     waits: the child's status               "%p" of the block about to be
 *                                             misused, then the misuse
 *
 * The address comes before the message: a child that got that far and
 * did not abort shows an address and a clean exit.  Each test checks the
 * status and the message against its own expectations.
 */
#ifndef NEAP_MISUSE_H
#define NEAP_MISUSE_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "neap_test.h"

static int misuse_addr_fd = -1; /* where the child reports the pointer */

/* The child: the block p is about to be misused. */
static void misuse_report(const void *p) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p", p);
    CHECK(n > 0 && write(misuse_addr_fd, buf, (size_t)n) == n);
    close(misuse_addr_fd);
}

/* fd read to its end (or cap - 1 bytes) into buf, NUL-terminated. */
static size_t misuse_read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    buf[n] = '\0';
    return n;
}

/* run(mode) in a child (exit 4 if it returns); addr gets the pointer it
 * reported ("" if none), err its stderr.  Returns the child's wait status. */
static int misuse_run(void (*run)(const char *mode), const char *mode, char *addr, size_t acap,
                      char *err, size_t ecap) {
    int err_pipe[2], addr_pipe[2], status;
    CHECK(pipe(err_pipe) == 0 && pipe(addr_pipe) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGABRT, SIG_DFL);
        close(err_pipe[0]);
        close(addr_pipe[0]);
        dup2(err_pipe[1], 2);
        close(err_pipe[1]);
        misuse_addr_fd = addr_pipe[1];
        run(mode);
        _exit(4);
    }
    close(err_pipe[1]);
    close(addr_pipe[1]);
    misuse_read_all(addr_pipe[0], addr, acap);
    misuse_read_all(err_pipe[0], err, ecap);
    close(addr_pipe[0]);
    close(err_pipe[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

#endif /* NEAP_MISUSE_H */

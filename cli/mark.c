/* mark.c -- `neap mark PID [LABEL]`: names the present moment in the trace
 * of a running program, without stopping it and without a signal.
 *
 * The traced process's stream thread serves the request (src/trace/trace.c,
 * its stream section); the two meet in the per-user records directory of
 * `neap stats` (/tmp/neap-<uid>, checked as record.c checks it):
 *
 *   <pid>.trace   written by the traced process while it streams a trace:
 *                 "neap-trace 1", "pid N", "file PATH".  No such file: the
 *                 pid is not traced by neap (exit 1, saying so)
 *   <pid>.mark    the request, the label on one line: written here under a
 *                 name of its own, then linked into place (a link never
 *                 replaces a file: a request pending from another `neap
 *                 mark` is waited for, not overwritten)
 *
 *   neap mark                       traced process (every 100 ms, a tick)
 *   check <pid>.trace, the pid alive
 *   <pid>.mark.<own pid>.tmp -link-> <pid>.mark
 *   wait until <pid>.mark is gone   reads it, writes 'K' (its clock after
 *     (or the process is, or the      every record before), every chunk to
 *     time is up: the request is      the file, then removes <pid>.mark
 *     removed, exit 1)
 *
 * So when this command returns 0, the mark is in the trace file.  Exit: 0,
 * 1 not traced / gone / no answer in time, 2 bad command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trace/tracefmt.h"

static void mark_usage(FILE *out) {
    fprintf(out,
            "usage: neap mark PID [LABEL] [--timeout SECONDS]\n"
            "\n"
            "Marks the present moment in the trace of a running program started with\n"
            "`neap run --trace FILE -- CMD` (or with NEAP_TRACE=FILE in its environment):\n"
            "the trace gets a mark named LABEL, and `neap report FILE` lists it;\n"
            "`neap report FILE --at mark:LABEL` shows the live set, the top sites and the\n"
            "pinning at that moment.  The program is not stopped and gets no signal: the\n"
            "trace's own thread takes the request at its next tick (every 100 ms).  This\n"
            "command returns once the mark is in the file.  A program marks moments itself\n"
            "with neap_trace_mark(\"label\") (neap_trace.h).\n"
            "\n"
            "  PID                the traced process: the program's pid (given neap run's\n"
            "                     own pid, what a shell's $! gives, the program it runs);\n"
            "                     the other processes of a run, which write FILE.<pid>,\n"
            "                     are marked by their own pids\n"
            "  LABEL              the mark's name, one line of at most %d bytes (default:\n"
            "                     the time of day, HH:MM:SS)\n"
            "  --timeout SECONDS  give up after SECONDS (1 to 3600, default 10): the\n"
            "                     request is withdrawn and the exit status is 1\n"
            "\n"
            "Exit status: 0 the mark is in the trace; 1 the process is not traced by neap,\n"
            "has exited, or did not take the mark in time; 2 bad command line.\n",
            NEAP_TRACE_LABEL_MAX);
}

static double mark_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void mark_nap(void) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
}

/* Whether dir holds an entry `name`. */
static int mark_exists(int dir, const char *name) {
    struct stat st;
    return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Writes the request under tmp and links it to req: 0, 1 when a request is
 * pending already (req exists), -1 after printing why. */
static int mark_request(int dir, const char *tmp, const char *req, const char *label) {
    (void)unlinkat(dir, tmp, 0); /* a left-over of a killed `neap mark` of this pid */
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "neap mark: cannot write the request: %s\n", strerror(errno));
        return -1;
    }
    size_t len = strlen(label);
    char line[NEAP_TRACE_LABEL_MAX + 2];
    memcpy(line, label, len);
    line[len++] = '\n';
    ssize_t w = write(fd, line, len);
    int ok = close(fd) == 0 && w == (ssize_t)len;
    if (!ok) {
        fprintf(stderr, "neap mark: cannot write the request: %s\n", strerror(errno));
        unlinkat(dir, tmp, 0);
        return -1;
    }
    int rc = 0;
    if (linkat(dir, tmp, dir, req, 0) != 0) {
        if (errno == EEXIST) {
            rc = 1;
        } else {
            fprintf(stderr, "neap mark: cannot place the request: %s\n", strerror(errno));
            rc = -1;
        }
    }
    unlinkat(dir, tmp, 0);
    return rc;
}

int neap_cli_mark(int argc, char **argv) {
    enum { OPT_TIMEOUT = 256 };
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                             {NULL, 0, NULL, 0}};
    unsigned long long timeout = 10, v;
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("mark", argc, argv, "h", longopts, 0)) != -1) {
        switch (c) {
        case 'h':
            mark_usage(stdout);
            return NEAP_CLI_OK;
        case OPT_TIMEOUT:
            if (neap_cli_number("mark", "--timeout", optarg, NEAP_CLI_WHOLE, 1, 3600, &timeout) != 0)
                return NEAP_CLI_USAGE;
            break;
        default:
            return NEAP_CLI_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "neap mark: which process? usage: neap mark PID [LABEL]\n");
        return NEAP_CLI_USAGE;
    }
    if (argc - optind > 2) {
        fprintf(stderr, "neap mark: unexpected argument '%s'; a label with spaces goes in quotes\n",
                argv[optind + 2]);
        return NEAP_CLI_USAGE;
    }
    if (neap_cli_number("mark", "PID", argv[optind], NEAP_CLI_WHOLE, 1, 0x7fffffff, &v) != 0)
        return NEAP_CLI_USAGE;
    long pid = (long)v;
    char label[NEAP_TRACE_LABEL_MAX + 1];
    if (argc - optind == 2) {
        const char *l = argv[optind + 1];
        if (strlen(l) > NEAP_TRACE_LABEL_MAX) {
            fprintf(stderr, "neap mark: the label has %zu bytes; at most %d\n", strlen(l),
                    NEAP_TRACE_LABEL_MAX);
            return NEAP_CLI_USAGE;
        }
        if (strchr(l, '\n') != NULL) {
            fprintf(stderr, "neap mark: the label must be one line\n");
            return NEAP_CLI_USAGE;
        }
        snprintf(label, sizeof label, "%s", l);
    } else {
        time_t t = time(NULL);
        struct tm tm;
        if (localtime_r(&t, &tm) == NULL || strftime(label, sizeof label, "%H:%M:%S", &tm) == 0)
            snprintf(label, sizeof label, "mark");
    }
    char shown[4 * NEAP_TRACE_LABEL_MAX + 1];
    neap_cli_escape(shown, sizeof shown, label, strlen(label));

    char err[512];
    int dir = neap_cli_stats_dir(err, sizeof err);
    if (dir == NEAP_CLI_DIR_REFUSED) {
        fprintf(stderr, "neap mark: %s: refused\n", err);
        return NEAP_CLI_FAILED;
    }
    char info[32], req[32], tmp[64], path[160], text[8192];
    snprintf(info, sizeof info, "%ld.trace", pid);
    if (dir >= 0 && !mark_exists(dir, info) && neap_cli_pid_alive(pid)) {
        /* neap run's own pid (a shell's $!): the program it runs */
        size_t others;
        long program = neap_cli_run_program(dir, pid, NULL, 0, &others);
        if (program != 0) {
            fprintf(stderr, "neap mark: %ld is neap run; marking the program it runs, pid %ld\n", pid,
                    program);
            pid = program;
            snprintf(info, sizeof info, "%ld.trace", pid);
        }
    }
    snprintf(req, sizeof req, "%ld.mark", pid);
    snprintf(tmp, sizeof tmp, "%ld.mark.%ld.tmp", pid, (long)getpid());
    neap_cli_record_path(pid, path, sizeof path);
    strncat(path, ".trace", sizeof path - strlen(path) - 1);
    size_t n = 0;
    int rc = dir >= 0 ? neap_cli_file_read(dir, info, path, text, sizeof text, &n, err, sizeof err) : 1;
    int alive = neap_cli_pid_alive(pid);
    if (rc == 1) {
        if (!alive)
            fprintf(stderr, "neap mark: there is no process %ld\n", pid);
        else
            fprintf(stderr,
                    "neap mark: process %ld is not traced by neap (no %s)\n"
                    "  start it with `neap run --trace FILE -- CMD`\n",
                    pid, path);
        if (dir >= 0) close(dir);
        return NEAP_CLI_FAILED;
    }
    if (rc < 0 || strncmp(text, "neap-trace 1\n", 13) != 0) {
        fprintf(stderr, "neap mark: %s\n", rc < 0 ? err : "not a trace note of neap");
        if (rc >= 0) fprintf(stderr, "  (%s does not start with \"neap-trace 1\")\n", path);
        close(dir);
        return NEAP_CLI_FAILED;
    }
    if (!alive) {
        /* killed while it traced: its note stays behind */
        neap_cli_file_remove(dir, info);
        fprintf(stderr, "neap mark: process %ld is gone; it left %s, now removed\n", pid, path);
        close(dir);
        return NEAP_CLI_FAILED;
    }
    char file[4200] = "?";
    const char *f = strstr(text, "\nfile ");
    if (f != NULL) {
        f += 6;
        size_t len = strcspn(f, "\n");
        neap_cli_escape(file, sizeof file, f, len);
    }

    double deadline = mark_now() + (double)timeout;
    int placed = 0, status = NEAP_CLI_FAILED;
    for (;;) {
        if (!placed) {
            int r = mark_request(dir, tmp, req, label);
            if (r < 0) break;
            placed = r == 0;
        } else if (!mark_exists(dir, req)) {
            printf("neap mark: marked '%s' in the trace of process %ld (%s)\n", shown, pid, file);
            status = NEAP_CLI_OK;
            break;
        }
        if (!neap_cli_pid_alive(pid)) {
            if (placed) neap_cli_file_remove(dir, req);
            fprintf(stderr, "neap mark: process %ld exited before it took the mark\n", pid);
            break;
        }
        if (mark_now() >= deadline) {
            if (placed) neap_cli_file_remove(dir, req);
            fprintf(stderr,
                    "neap mark: process %ld did not take the mark within %llu s (is it stopped? "
                    "its trace's thread takes requests every 100 ms); %s\n",
                    pid, timeout,
                    placed ? "the request is withdrawn" : "another request to it was pending all along");
            break;
        }
        mark_nap();
    }
    close(dir);
    return status;
}

/* stats.c -- `neap stats [PID] [--watch]`: the allocator statistics of a
 * running program, without stopping it.
 *
 * The program publishes them itself (src/services/publish.c): `neap run`
 * turns that on, and a program linked with neap turns it on with
 * NEAP_PUBLISH=<ms>.  This command only reads /tmp/neap-<uid>/<pid>, and
 * only when the directory is the user's own 0700 one, as the library
 * requires before it publishes there (record.c); any other is refused with
 * a message and exit status 1:
 *
 *   neap stats            every publishing process: pid, RSS, live bytes,
 *                         command (and removes records of dead processes,
 *                         and their notes for `neap mark`, <pid>.trace)
 *   neap stats PID        one process's statistics; given `neap run`'s own
 *                         pid (what a shell's $! gives), those of the
 *                         program it runs: the child whose environment's
 *                         NEAP_RUN_PID is its own pid, with the number of the
 *                         run's other processes (NEAP_RUN_PID naming it)
 *   neap stats PID --watch   the same, redrawn every second until it exits
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void stats_usage(FILE *out) {
    fprintf(out,
            "usage: neap stats [PID] [--watch] [--interval MS]\n"
            "\n"
            "Shows the allocator statistics of a running program started with `neap run`,\n"
            "or linked with neap and started with NEAP_PUBLISH=<ms> in its environment.\n"
            "The program is not stopped: it publishes its statistics every NEAP_PUBLISH ms\n"
            "(1000 under neap run) to /tmp/neap-<uid>/<pid>, and this command reads them.\n"
            "\n"
            "  neap stats              list the programs that publish statistics\n"
            "  neap stats PID          the statistics of one program (given the pid of\n"
            "                          `neap run` itself, those of the program it runs)\n"
            "  -w, --watch             redraw every second until the program exits or\n"
            "                          you press Ctrl-C\n"
            "  --interval MS           redraw every MS ms, 50 to 3600000 (implies --watch)\n");
}

static void stats_show(FILE *out, const neap_cli_record_t *r) {
    size_t now = neap_cli_wall_ms();
    double age = now > r->time_ms ? (double)(now - r->time_ms) / 1000.0 : 0.0;
    double up = r->time_ms > r->start_ms ? (double)(r->time_ms - r->start_ms) / 1000.0 : 0.0;
    fprintf(out, "neap %s statistics of pid %ld: %s\n", r->version, r->pid, r->command);
    fprintf(out, "  %s; publishing for %.1f s; this record is %.1f s old\n",
            strcmp(r->state, "exited") == 0 ? "exited" : "running", up, age);
    neap_cli_record_memory(out, r);
    neap_cli_record_classes(out, r, 12);
    if (strcmp(r->state, "running") == 0 && r->interval_ms > 0 && age * 1000.0 > 3.0 * (double)r->interval_ms + 2000.0)
        fprintf(out, "  note: the record is older than three publishing intervals; the program may be "
                     "stopped or stuck\n");
}

/* The number of bytes of s that hold its first `chars` characters: a cut
 * there splits no UTF-8 sequence. */
static int stats_cut(const char *s, int chars) {
    int n = 0;
    for (; s[n]; n++)
        if (((unsigned char)s[n] & 0xc0) != 0x80 && chars-- == 0) break;
    return n;
}

/* The directory refused (the library does not publish there either): the
 * reason, and exit status 1. */
static int stats_refused(const char *why) {
    fprintf(stderr, "neap stats: %s: ignored\n", why);
    return NEAP_CLI_FAILED;
}

static int stats_list(void) {
    char why[256];
    int dir = neap_cli_stats_dir(why, sizeof why);
    if (dir == NEAP_CLI_DIR_REFUSED) return stats_refused(why);
    int shown = 0;
    /* the listing from a descriptor of its own: closedir closes it */
    int listing = dir >= 0 ? openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = listing >= 0 ? fdopendir(listing) : NULL;
    if (d == NULL && listing >= 0) close(listing);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *dot = strchr(e->d_name, '.');
            if (dot != NULL && strcmp(dot, ".trace") == 0) {
                /* a traced process's note for `neap mark` (src/trace/trace.c):
                 * one of a process killed while it traced is removed */
                char digits[24];
                size_t n = (size_t)(dot - e->d_name);
                if (n > 0 && n < sizeof digits) {
                    memcpy(digits, e->d_name, n);
                    digits[n] = '\0';
                    long owner = neap_cli_entry_pid(digits);
                    if (owner != 0 && !neap_cli_pid_alive(owner)) neap_cli_file_remove(dir, e->d_name);
                }
                continue;
            }
            long pid = neap_cli_entry_pid(e->d_name);
            if (pid == 0) continue;
            neap_cli_record_t r;
            char err[512];
            int rc = neap_cli_record_read(dir, pid, &r, err, sizeof err);
            if (!neap_cli_pid_alive(pid)) {
                /* a process that died without removing its record (only a
                 * regular file of the user's is removed) */
                neap_cli_record_remove(dir, pid);
                continue;
            }
            if (shown++ == 0) printf("%8s %12s %12s  %s\n", "pid", "RSS", "live", "command");
            if (rc != 0) {
                printf("%8ld  (unreadable record: %s)\n", pid, err);
                continue;
            }
            char rss[32], live[32];
            neap_cli_format_size(rss, sizeof rss, (double)r.rss);
            neap_cli_format_size(live, sizeof live, (double)r.stats.bytes_live);
            printf("%8ld %12s %12s  %.*s\n", pid, rss, live, stats_cut(r.command, 60), r.command);
        }
        closedir(d);
    }
    if (dir >= 0) close(dir);
    if (shown == 0)
        printf("no running program publishes neap statistics (start one with `neap run -- CMD`)\n");
    return NEAP_CLI_OK;
}

int neap_cli_stats(int argc, char **argv) {
    enum { OPT_INTERVAL = 256 };
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"watch", no_argument, NULL, 'w'},
                                             {"interval", required_argument, NULL, OPT_INTERVAL},
                                             {NULL, 0, NULL, 0}};
    long pid = 0;
    int watch = 0;
    unsigned long long interval = 1000, v;
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("stats", argc, argv, "hw", longopts, 0)) != -1) {
        switch (c) {
        case 'h':
            stats_usage(stdout);
            return NEAP_CLI_OK;
        case 'w':
            watch = 1;
            break;
        case OPT_INTERVAL:
            if (neap_cli_number("stats", "--interval", optarg, NEAP_CLI_WHOLE, 50, 3600000,
                                &interval) != 0)
                return NEAP_CLI_USAGE;
            watch = 1;
            break;
        default:
            return NEAP_CLI_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "neap stats: unexpected argument '%s'; one PID at most\n", argv[optind + 1]);
        return NEAP_CLI_USAGE;
    }
    if (optind < argc) {
        if (neap_cli_number("stats", "PID", argv[optind], NEAP_CLI_WHOLE, 1, 0x7fffffff, &v) != 0)
            return NEAP_CLI_USAGE;
        pid = (long)v;
    }
    if (pid == 0) {
        if (watch) {
            fprintf(stderr, "neap stats: --watch needs a PID\n");
            return NEAP_CLI_USAGE;
        }
        return stats_list();
    }
    long asked = pid;          /* the pid given; pid: the one shown */
    long others_pid[8];
    size_t others = 0;
    for (int round = 0;; round++) {
        neap_cli_record_t r;
        char err[512];
        /* opened again each round: the library makes it anew if it goes */
        int dir = neap_cli_stats_dir(err, sizeof err);
        if (dir == NEAP_CLI_DIR_REFUSED) return stats_refused(err);
        int rc = dir >= 0 ? neap_cli_record_read(dir, pid, &r, err, sizeof err) : 1;
        int alive = neap_cli_pid_alive(pid);
        if (round == 0 && rc == 1 && alive) {
            /* `neap run`'s pid: its program publishes, under its own pid */
            long child = neap_cli_run_program(dir, pid, others_pid,
                                           sizeof others_pid / sizeof others_pid[0], &others);
            if (child != 0) {
                pid = child;
                rc = neap_cli_record_read(dir, pid, &r, err, sizeof err);
                alive = neap_cli_pid_alive(pid);
            }
        }
        if (!alive && rc == 0 && strcmp(r.state, "running") == 0) neap_cli_record_remove(dir, pid);
        if (dir >= 0) close(dir);
        if (rc == 1) {
            if (round > 0) {
                printf("process %ld has exited\n", pid);
                return NEAP_CLI_OK;
            }
            char path[128];
            neap_cli_record_path(pid, path, sizeof path);
            if (!alive)
                fprintf(stderr, "neap stats: there is no process %ld\n", pid);
            else
                fprintf(stderr, "neap stats: process %ld does not publish neap statistics (no %s)\n"
                                "  start it with `neap run -- CMD`, or set NEAP_PUBLISH=1000 in its "
                                "environment if it is linked with neap\n",
                        pid, path);
            return NEAP_CLI_FAILED;
        }
        if (rc < 0) {
            fprintf(stderr, "neap stats: %s\n", err);
            return NEAP_CLI_FAILED;
        }
        if (!alive && strcmp(r.state, "running") == 0) {
            /* removed above */
            if (round > 0) {
                printf("process %ld has exited\n", pid);
                return NEAP_CLI_OK;
            }
            fprintf(stderr, "neap stats: process %ld is gone; it left a record, now removed\n", pid);
            return NEAP_CLI_FAILED;
        }
        if (watch && isatty(STDOUT_FILENO)) printf("\033[H\033[2J");
        else if (round > 0) printf("\n");
        if (pid != asked) {
            printf("process %ld is `neap run`; showing the program it runs, pid %ld\n", asked, pid);
            if (others > 0) {
                printf("  the run has %zu other process%s on neap: pid", others, others == 1 ? "" : "es");
                for (size_t i = 0; i < others && i < sizeof others_pid / sizeof others_pid[0]; i++)
                    printf(" %ld", others_pid[i]);
                printf("%s (`neap stats PID` for each)\n",
                       others > sizeof others_pid / sizeof others_pid[0] ? " ..." : "");
            }
        }
        stats_show(stdout, &r);
        fflush(stdout);
        if (strcmp(r.state, "exited") == 0) {
            /* the last record, written at exit: said as a watch that found
             * the record gone says it */
            printf("process %ld has exited\n", pid);
            return NEAP_CLI_OK;
        }
        if (!watch) return NEAP_CLI_OK;
        struct timespec ts = {(time_t)(interval / 1000), (long)(interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

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

static int stats_alive(long pid) {
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
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

/* pid from a directory entry's name: digits only, as the library names
 * records (no sign, space or leading zero); 0 for any other name. */
static long stats_entry_pid(const char *name) {
    long pid = 0;
    if (name[0] < '1' || name[0] > '9') return 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9' || pid > (0x7fffffffL - (*p - '0')) / 10) return 0;
        pid = pid * 10 + (*p - '0');
    }
    return pid;
}

/* The parent of process pid from /proc/<pid>/stat ("pid (comm) state ppid
 * ..."; comm may hold spaces and parentheses: the last ')' ends it), or -1. */
static long stats_parent(long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    char state;
    long ppid;
    if (close == NULL || sscanf(close + 1, " %c %ld", &state, &ppid) != 2) return -1;
    return ppid;
}

/* NEAP_RUN_PID in the environment process pid was started with
 * (/proc/<pid>/environ: what `neap run` gave its program, inherited by
 * every process of the run), or 0. */
static long stats_run_pid(long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) return 0;
    static const char key[] = "NEAP_RUN_PID=";
    char var[64];
    size_t len = 0;
    long run = 0;
    int c;
    /* variable by variable; only the first bytes of each are kept */
    while ((c = getc(f)) != EOF) {
        if (c != 0) {
            if (len < sizeof var - 1) var[len++] = (char)c;
            continue;
        }
        var[len] = 0;
        if (strncmp(var, key, sizeof key - 1) == 0) {
            char *end;
            run = strtol(var + sizeof key - 1, &end, 10);
            if (*end != 0 || run < 0) run = 0;
        }
        len = 0;
    }
    fclose(f);
    return run;
}

/* The program `neap run` with pid `run` started (what a shell's $! gives
 * is neap run's pid, and neap run publishes nothing itself): the publishing
 * process whose parent is `run` and whose NEAP_RUN_PID is its own pid.
 * Returns its pid, or 0 when there is none; *others is the number of the
 * run's other publishing processes (NEAP_RUN_PID naming the program), their
 * pids (at most cap) in others_pid. */
static long stats_run_program(int dir, long run, long *others_pid, size_t cap, size_t *others) {
    *others = 0;
    int listing = dir >= 0 ? openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = listing >= 0 ? fdopendir(listing) : NULL;
    if (d == NULL) {
        if (listing >= 0) close(listing);
        return 0;
    }
    long program = 0;
    struct dirent *e;
    while (program == 0 && (e = readdir(d)) != NULL) {
        long p = stats_entry_pid(e->d_name);
        if (p != 0 && stats_parent(p) == run && stats_run_pid(p) == p) program = p;
    }
    if (program != 0) {
        rewinddir(d);
        while ((e = readdir(d)) != NULL) {
            long p = stats_entry_pid(e->d_name);
            if (p == 0 || p == program || !stats_alive(p) || stats_run_pid(p) != program) continue;
            if (*others < cap) others_pid[*others] = p;
            (*others)++;
        }
    }
    closedir(d);
    return program;
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
                    long owner = stats_entry_pid(digits);
                    if (owner != 0 && !stats_alive(owner)) neap_cli_file_remove(dir, e->d_name);
                }
                continue;
            }
            long pid = stats_entry_pid(e->d_name);
            if (pid == 0) continue;
            neap_cli_record_t r;
            char err[512];
            int rc = neap_cli_record_read(dir, pid, &r, err, sizeof err);
            if (!stats_alive(pid)) {
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
        int alive = stats_alive(pid);
        if (round == 0 && rc == 1 && alive) {
            /* `neap run`'s pid: its program publishes, under its own pid */
            long child = stats_run_program(dir, pid, others_pid,
                                           sizeof others_pid / sizeof others_pid[0], &others);
            if (child != 0) {
                pid = child;
                rc = neap_cli_record_read(dir, pid, &r, err, sizeof err);
                alive = stats_alive(pid);
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

/* cli.h -- shared declarations of the `neap` command-line tool.
 *
 * The tool is a table of subcommands (main.c).  Each subcommand is one
 * function with the signature of neap_cli_fn, usually in its own file:
 *
 *     neap <command> [options...]
 *        |
 *        main.c: look <command> up in the table, call run(argc, argv)
 *        with argv[0] == "<command>"
 *
 * To add a subcommand: write `int neap_cli_<name>(int argc, char **argv)`
 * in cli/<name>.c, declare it below, add one row to the table in main.c and
 * the file to cli/CMakeLists.txt.  Every subcommand accepts --help (usage on
 * stdout, exit 0) and follows the exit status convention below.
 *
 * The tool links neap_nooverride: its own malloc is the C library's, and it
 * reaches neap only through the neap_* API.
 */
#ifndef NEAP_CLI_H
#define NEAP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "neap.h"

/* Exit statuses of every subcommand. */
enum {
    NEAP_CLI_OK = 0,      /* success */
    NEAP_CLI_FAILED = 1,  /* the work itself failed (a child crashed, no memory, ...) */
    NEAP_CLI_USAGE = 2    /* bad command line: unknown option, bad value */
};

/* A subcommand: argv[0] is the subcommand's name; returns an exit status. */
typedef int (*neap_cli_fn)(int argc, char **argv);

/* One row of the subcommand table. */
typedef struct neap_cli_command_s {
    const char *name;  /* as typed on the command line */
    neap_cli_fn run;   /* the implementation */
    const char *help;  /* one line for `neap help`, no trailing period */
} neap_cli_command_t;

/* --- subcommands ---------------------------------------------------------- */

/* `neap demo`: neap side by side with the C library's malloc (demo.c). */
int neap_cli_demo(int argc, char **argv);
/* `neap run -- CMD`: a program on neap, with a summary at its exit (run.c). */
int neap_cli_run(int argc, char **argv);
/* `neap report FILE`: a trace's top sites, peak and pinning (report.c). */
int neap_cli_report(int argc, char **argv);
/* `neap stats [PID]`: a running program's statistics (stats.c). */
int neap_cli_stats(int argc, char **argv);
/* `neap mark PID [LABEL]`: a mark in a running program's trace (mark.c). */
int neap_cli_mark(int argc, char **argv);

/* --- statistics records published by processes on neap (record.c) -------- */

typedef struct neap_cli_record_s {
    long pid;
    char state[16];        /* "running" or "exited" */
    char version[32];
    char command[256];
    size_t time_ms;        /* wall clock of the record, ms since 1970 */
    size_t start_ms;       /* when the process started publishing */
    size_t interval_ms;    /* its publishing interval (0: exit record only) */
    size_t rss, peak_rss, vsize;
    size_t mesh;           /* the process's NEAP_MESH: 1 meshing (the mesh counters
                              of stats mean something), 0 not or not said */
    neap_stats_t stats;
} neap_cli_record_t;

/* The wall clock in ms since 1970, as records' time_ms. */
size_t neap_cli_wall_ms(void);
/* The record file of process pid, /tmp/neap-<uid>/<pid>, for messages: the
 * files themselves are reached through neap_cli_stats_dir's descriptor. */
void neap_cli_record_path(long pid, char *buf, size_t cap);

/* neap_cli_stats_dir's answers other than a descriptor. */
enum {
    NEAP_CLI_DIR_NONE = -1,     /* there is no /tmp/neap-<uid>: nothing publishes */
    NEAP_CLI_DIR_REFUSED = -2   /* it is not to be trusted, or cannot be opened */
};
/* The largest record read, in bytes (the library writes at most 8 KiB). */
#define NEAP_CLI_RECORD_MAX 16384

/* Opens /tmp/neap-<uid> after the checks the library makes before it
 * publishes there: a directory, not a symbolic link, owned by the user,
 * mode 0700.  Returns its descriptor (the caller closes it), or
 * NEAP_CLI_DIR_NONE or NEAP_CLI_DIR_REFUSED with the reason in err
 * ("/tmp/neap-1000 is owned by uid 1001, not you"). */
int neap_cli_stats_dir(char *err, size_t errlen);
/* Parses a record's text.  Returns 0, or -1 with a message in err (which
 * line is wrong, or that the record is truncated).  Its command line and
 * version are kept escaped (neap_cli_escape): fit for a terminal. */
int neap_cli_record_parse(const char *text, neap_cli_record_t *r, char *err, size_t errlen);
/* Reads pid's record in dir (neap_cli_stats_dir's): 0, 1 when there is
 * none (ENOENT), -1 on a bad record or read error (a symbolic link, a FIFO
 * or anything but the user's own regular file is one, and not opened if it
 * is seen for what it is before); err says what happened. */
int neap_cli_record_read(int dir, long pid, neap_cli_record_t *r, char *err, size_t errlen);
/* Removes pid's record from dir if it is the user's own regular file, never
 * anything a symbolic link points to.  0, or -1 when nothing was removed. */
int neap_cli_record_remove(int dir, long pid);
/* The same two for any file of dir: name read whole into buf (at most cap -
 * 1 bytes, NUL-terminated; *len its length) if it is the user's own regular
 * file, never through a link, and a FIFO never waited on: 0, 1 when there
 * is none, -1 with err saying what, naming path.  Removed the same way. */
int neap_cli_file_read(int dir, const char *name, const char *path, char *buf, size_t cap, size_t *len,
                       char *err, size_t errlen);
int neap_cli_file_remove(int dir, const char *name);
/* Whether process pid exists (it may be another user's). */
int neap_cli_pid_alive(long pid);
/* pid from a records directory entry's name (digits only, no sign, space or
 * leading zero), or 0. */
long neap_cli_entry_pid(const char *name);
/* The program `neap run` with pid run started (the publishing process of
 * dir, neap_cli_stats_dir's, whose parent is run and whose NEAP_RUN_PID is
 * its own pid), or 0; *others: the run's other publishing processes, their
 * pids (at most cap) in others_pid. */
long neap_cli_run_program(int dir, long run, long *others_pid, size_t cap, size_t *others);
/* Copies len bytes of src to dst (cap bytes, always terminated) with every
 * byte that is not printable ASCII or part of a well-formed UTF-8 printable
 * character written as \xHH: control characters (C0, DEL, C1) from a record
 * never reach the terminal raw.  Stops at a whole character or escape when
 * dst is full; returns the number of bytes of src taken. */
size_t neap_cli_escape(char *dst, size_t cap, const char *src, size_t len);
/* "12.3 MiB" */
void neap_cli_format_size(char *buf, size_t cap, double bytes);
/* The memory lines and the busiest size classes (at most limit) of a record. */
void neap_cli_record_memory(FILE *out, const neap_cli_record_t *r);
void neap_cli_record_classes(FILE *out, const neap_cli_record_t *r, int limit);

/* --- helpers for option parsing (main.c) ----------------------------------
 *
 * Every subcommand parses its options with getopt_long through
 * neap_cli_getopt, GNU style: "--opt VALUE", "--opt=VALUE", short options
 * where they exist ("-o FILE", "-q"), unique abbreviations of long options,
 * and "--" ends the options.  Numeric values go through neap_cli_number,
 * which checks the option's range: a value out of range is an error (exit
 * NEAP_CLI_USAGE), never silently replaced. */

struct option;

/* getopt_long for `neap <command>` (command NULL: the top level, `neap`).
 * shortopts as getopt's, without a leading '+' or ':'; in_order: stop at the
 * first operand (`neap run`, whose program's own arguments are never taken)
 * rather than collect options from anywhere on the line.  Returns what
 * getopt_long returns, except that an unknown option, a missing value, or a
 * value given to an option that takes none prints a message naming the
 * option to stderr and returns '?'.  Start every parse with optind = 0. */
int neap_cli_getopt(const char *command, int argc, char **argv, const char *shortopts,
                    const struct option *longopts, int in_order);

/* Parses a whole number written as digits ("10000000"), optionally with a
 * power-of-ten exponent ("1e7").  Returns 0 and sets *out if the text is such
 * a number within [min, max]; returns -1 otherwise, *out untouched. */
int neap_cli_parse_count(const char *text, unsigned long long min, unsigned long long max,
                         unsigned long long *out);

/* How neap_cli_number reads a value. */
typedef enum {
    NEAP_CLI_WHOLE,  /* digits, or "1e7" */
    NEAP_CLI_BYTES   /* digits with an optional K, M or G (also KiB, KB, k...):
                        powers of 1024 */
} neap_cli_unit_t;

/* The value of a numeric option: 0 with *out set when text is a number of
 * that unit within [min, max]; else -1 after printing, to stderr, that the
 * option (`option`: "--frames", or an operand's name, "PID") wants a number
 * from min to max, and whether text is malformed or out of range. */
int neap_cli_number(const char *command, const char *option, const char *text,
                    neap_cli_unit_t unit, unsigned long long min, unsigned long long max,
                    unsigned long long *out);

#endif /* NEAP_CLI_H */

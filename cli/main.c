/* main.c -- the `neap` command: subcommand dispatch, help and version.
 *
 *     neap [--help | --version]
 *     neap <command> [options...]      see the table below
 *
 * The helpers every subcommand parses its options with (neap_cli_getopt,
 * neap_cli_number) are in options.c.
 *
 * Exit status: 0 success, 1 the work failed, 2 bad command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap.h"
#include "cli.h"

static int cli_help(int argc, char **argv);
static int cli_version(int argc, char **argv);

/* The subcommands, in the order `neap help` lists them. */
static const neap_cli_command_t cli_commands[] = {
    {"run", neap_cli_run, "run a program on neap: neap run [options] -- CMD ARGS..."},
    {"stats", neap_cli_stats, "show the allocator statistics of a running program: neap stats PID"},
    {"report", neap_cli_report, "what a trace says: top sites, the peak, pinning, HTML: neap report FILE"},
    {"mark", neap_cli_mark, "mark the present moment in a running program's trace: neap mark PID LABEL"},
    {"demo", neap_cli_demo, "compare neap with the C library's malloc on built-in workloads"},
    {"help", cli_help, "list the commands, or show one command's help: neap help COMMAND"},
    {"version", cli_version, "print neap's version"},
};

#define CLI_COMMAND_COUNT (sizeof(cli_commands) / sizeof(cli_commands[0]))

/* The table row named `name`, or NULL. */
static const neap_cli_command_t *cli_find(const char *name) {
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++) {
        if (strcmp(cli_commands[i].name, name) == 0) return &cli_commands[i];
    }
    return NULL;
}

static void cli_usage(FILE *out) {
    fprintf(out,
            "neap %s -- a memory allocator that gives memory back to the operating system\n"
            "\n"
            "usage: neap <command> [options]\n"
            "       neap --help | --version\n"
            "\n"
            "commands:\n",
            NEAP_VERSION);
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++) {
        fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].help);
    }
    fprintf(out, "\nRun 'neap <command> --help' for a command's options.\n");
}

/* `neap help [COMMAND]` */
static int cli_help(int argc, char **argv) {
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("help", argc, argv, "h", longopts, 0)) != -1) {
        if (c != 'h') return NEAP_CLI_USAGE;
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    if (optind >= argc || strcmp(argv[optind], "help") == 0) {
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "neap help: expected at most one command name\n");
        return NEAP_CLI_USAGE;
    }
    const neap_cli_command_t *cmd = cli_find(argv[optind]);
    if (cmd == NULL) {
        fprintf(stderr, "neap help: unknown command '%s'; run 'neap help' for the list\n",
                argv[optind]);
        return NEAP_CLI_USAGE;
    }
    char *sub_argv[] = {(char *)cmd->name, (char *)"--help", NULL};
    return cmd->run(2, sub_argv);
}

/* `neap version` */
static int cli_version(int argc, char **argv) {
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("version", argc, argv, "h", longopts, 0)) != -1) {
        if (c != 'h') return NEAP_CLI_USAGE;
        printf("usage: neap version\n\nPrints neap's version.\n");
        return NEAP_CLI_OK;
    }
    if (optind < argc) {
        fprintf(stderr, "neap version: unexpected argument '%s'\n", argv[optind]);
        return NEAP_CLI_USAGE;
    }
    printf("neap %s\n", NEAP_VERSION);
    return NEAP_CLI_OK;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    if (argc < 2) {
        cli_usage(stderr);
        return NEAP_CLI_USAGE;
    }
    /* options before the command only; the command parses its own */
    optind = 0;
    int c = neap_cli_getopt(NULL, argc, argv, "hV", longopts, 1);
    if (c == 'h') {
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    if (c == 'V') {
        char *version_argv[] = {(char *)"version", NULL};
        return cli_version(1, version_argv);
    }
    if (c != -1) return NEAP_CLI_USAGE;
    if (optind >= argc) {
        cli_usage(stderr);
        return NEAP_CLI_USAGE;
    }
    const char *name = argv[optind];
    const neap_cli_command_t *cmd = cli_find(name);
    if (cmd == NULL) {
        fprintf(stderr, "neap: unknown command '%s'; run 'neap help' for the list of commands\n",
                name);
        return NEAP_CLI_USAGE;
    }
    int status = cmd->run(argc - optind, argv + optind);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "neap %s: error writing output: %s\n", cmd->name, strerror(errno));
        if (status == NEAP_CLI_OK) status = NEAP_CLI_FAILED;
    }
    return status;
}

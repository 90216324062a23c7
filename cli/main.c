/* main.c -- the `neap` command: subcommand dispatch, help and version.
 *
 *     neap [--help | --version]
 *     neap <command> [options...]      see the table below
 *
 * Exit status: 0 success, 1 the work failed, 2 bad command line.
 */
#define _GNU_SOURCE
#include <errno.h>
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
    if (argc <= 1) {
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "neap help: expected at most one command name\n");
        return NEAP_CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    const neap_cli_command_t *cmd = cli_find(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "neap help: unknown command '%s'; run 'neap help' for the list\n",
                argv[1]);
        return NEAP_CLI_USAGE;
    }
    char *sub_argv[] = {(char *)cmd->name, (char *)"--help", NULL};
    return cmd->run(2, sub_argv);
}

/* `neap version` */
static int cli_version(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: neap version\n\nPrints neap's version.\n");
        return NEAP_CLI_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "neap version: unexpected argument '%s'\n", argv[1]);
        return NEAP_CLI_USAGE;
    }
    printf("neap %s\n", NEAP_VERSION);
    return NEAP_CLI_OK;
}

int neap_cli_parse_count(const char *text, unsigned long long min, unsigned long long max,
                         unsigned long long *out) {
    const char *p = text;
    unsigned long long v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        unsigned exp = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            exp = exp * 10 + (unsigned)(*p - '0');
            if (exp > 30) return -1;
        }
        for (unsigned k = 0; k < exp && v != 0; k++) {
            if (v > ULLONG_MAX / 10) return -1;
            v *= 10;
        }
    }
    if (*p != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int neap_cli_option_value(const char *command, int argc, char **argv, int *i, const char *name,
                          const char **value) {
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0) return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0') return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "neap %s: option %s needs a value\n", command, name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cli_usage(stderr);
        return NEAP_CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        cli_usage(stdout);
        return NEAP_CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        return cli_version(1, argv + 1);
    }
    const neap_cli_command_t *cmd = cli_find(name);
    if (cmd == NULL) {
        fprintf(stderr, "neap: unknown %s '%s'; run 'neap help' for the list of commands\n",
                name[0] == '-' ? "option" : "command", name);
        return NEAP_CLI_USAGE;
    }
    int status = cmd->run(argc - 1, argv + 1);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "neap %s: error writing output: %s\n", cmd->name, strerror(errno));
        if (status == NEAP_CLI_OK) status = NEAP_CLI_FAILED;
    }
    return status;
}

/* run.c -- `neap run [options] -- CMD ARGS...`: any program on neap.
 *
 *   neap run                                   child
 *   find libneap.so next to this executable
 *   fork ----------------------------------->  LD_PRELOAD=libneap.so[:theirs]
 *   SIGINT, SIGQUIT ignored (the terminal      NEAP_PUBLISH, NEAP_BACKGROUND, NEAP_RUN_PID=<own pid>,
 *     sends them to the child too);            NEAP_<option>s asked for,
 *   SIGTERM, SIGHUP, SIGUSR1/2 forwarded       PYTHONMALLOC=malloc for a Python
 *   wait4: exit status, peak RSS                 interpreter (unless set)
 *   read /tmp/neap-<uid>/<pid>, remove it <--- execvp(CMD); at exit the library
 *   print the summary (stderr or -o FILE)        writes its final record
 *   exit with the child's status, or die of the child's signal
 *
 * Every process the program forks or execs inherits the preload, so the whole
 * process tree runs on neap; the summary describes the process started here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trace/tracefmt.h"

#ifndef NEAP_INSTALL_LIBDIR
#define NEAP_INSTALL_LIBDIR "lib"
#endif

static void run_usage(FILE *out) {
    fprintf(out,
            "usage: neap run [options] -- CMD [ARGS...]\n"
            "\n"
            "Runs CMD with neap as its memory allocator (LD_PRELOAD of libneap.so), and\n"
            "prints a summary of its memory when it exits.  Every process CMD starts runs on\n"
            "neap too.  A Python interpreter gets PYTHONMALLOC=malloc, so that its objects\n"
            "go through neap, unless PYTHONMALLOC is set already.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE      write the summary to FILE instead of standard error\n"
            "  -q, --quiet            no summary\n"
            "  --purge-delay MS       ms an empty page or a freed huge block waits before it goes\n"
            "                         back (NEAP_PURGE_DELAY)\n"
            "  --purge-max SIZE       empty bytes a thread may hold before an early purge\n"
            "                         (NEAP_PURGE_MAX; 4M, 512K, ...)\n"
            "  --arena-reserve N      empty arenas a thread keeps mapped (NEAP_ARENA_RESERVE)\n"
            "  --publish MS           how often the program publishes its statistics for\n"
            "                         `neap stats PID` (NEAP_PUBLISH; default 1000, 0: never)\n"
            "  --no-background        no background thread giving empty pages back on time\n"
            "                         (NEAP_BACKGROUND=1 is the default under neap run)\n"
            "  --show-stats           every process prints neap's full statistics at exit\n"
            "  --verbose              neap's warnings and notices (NEAP_VERBOSE)\n"
            "  --no-python            do not set PYTHONMALLOC=malloc for Python\n"
            "  --trace FILE           record every allocation with its stack into FILE as the\n"
            "                         program runs (read it with `neap report FILE`); other\n"
            "                         processes of the run write FILE.<pid>\n"
            "  --frames N             frames kept per stack with --trace (default 32, at most 128)\n"
            "  --unwind auto|fp|dwarf how --trace walks stacks: frame pointers (fp: fast;\n"
            "                         stacks stop at code built without them), the DWARF\n"
            "                         unwinder (dwarf: any code, much slower), or auto (the\n"
            "                         default): frame pointers, and with --sample the DWARF\n"
            "                         unwinder where they stop at the first frame\n"
            "  --sample SIZE          with --trace, a Poisson sample of the allocations, one per\n"
            "                         SIZE bytes on average (512K is the usual choice in\n"
            "                         production), instead of every one\n"
            "  --lib PATH             the libneap.so to preload (default: the one installed\n"
            "                         with this command)\n"
            "\n"
            "The exit status is CMD's; if a signal ended CMD, neap run ends with the same\n"
            "signal.  Status 127: CMD not found; 126: CMD cannot be run; 2: bad options.\n");
}

/* The libneap.so that belongs to this executable: next to it (the build
 * tree), or in ../lib of an installation. */
static int run_find_lib(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *dir = dirname(exe);
    const char *candidates[] = {"%s/libneap.so", "%s/../" NEAP_INSTALL_LIBDIR "/libneap.so",
                                "%s/../lib/libneap.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, candidates[i], dir);
        if (access(path, R_OK) == 0 && realpath(path, out) != NULL && strlen(out) < cap) return 0;
    }
    return -1;
}

/* CMD is a Python interpreter: python, python3, python3.11, ... */
static int run_is_python(const char *cmd) {
    const char *base = strrchr(cmd, '/');
    base = base ? base + 1 : cmd;
    if (strncmp(base, "python", 6) != 0) return 0;
    for (const char *p = base + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.')) return 0;
    return 1;
}

static volatile sig_atomic_t run_child_pid;

static void run_forward(int sig) {
    if (run_child_pid > 0) kill((pid_t)run_child_pid, sig);
}

static double run_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    const char *option;   /* --purge-delay */
    const char *env;      /* NEAP_PURGE_DELAY */
    const char *value;    /* as given, or NULL */
    int size;             /* takes a K/M/G suffix */
} run_setting_t;

/* A whole number, with a K, M or G suffix (and an optional "iB" or "B")
 * when `size`; the library checks the range and says so if it is wrong. */
static int run_value_ok(const char *v, int size) {
    if (*v < '0' || *v > '9') return 0;
    while (*v >= '0' && *v <= '9') v++;
    if (*v == 0) return 1;
    if (!size || strchr("kKmMgG", *v) == NULL) return 0;
    v++;
    return *v == 0 || strcmp(v, "B") == 0 || strcmp(v, "b") == 0 || strcmp(v, "iB") == 0 ||
           strcmp(v, "ib") == 0;
}

static void run_summary(FILE *out, char **cmd, int status, double seconds, const struct rusage *ru,
                        long pid) {
    fprintf(out, "neap run:");
    int i = 0;
    for (; cmd[i] && i < 8; i++) fprintf(out, " %s", cmd[i]);
    fprintf(out, "%s\n", cmd[i] ? " ..." : "");
    if (WIFEXITED(status))
        fprintf(out, "  exited with status %d after %.2f s\n", WEXITSTATUS(status), seconds);
    else if (WIFSIGNALED(status))
        fprintf(out, "  killed by signal %d (%s) after %.2f s\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)), seconds);
    char peak[32];
    neap_cli_format_size(peak, sizeof peak, (double)ru->ru_maxrss * 1024.0);
    neap_cli_record_t r;
    char err[512];
    int rc = neap_cli_record_read(pid, &r, err, sizeof err);
    if (rc != 0) {
        fprintf(out, "  peak RSS          %s\n", peak);
        if (rc == 1)
            fprintf(out, "  no statistics from the program: it ended without running exit handlers\n"
                         "  (a signal, _exit, or exec of a statically linked program)\n");
        else
            fprintf(out, "  its statistics record is unreadable: %s\n", err);
        return;
    }
    char path[128];
    neap_cli_record_path(pid, path, sizeof path);
    unlink(path);
    if (r.peak_rss < (size_t)ru->ru_maxrss * 1024) r.peak_rss = (size_t)ru->ru_maxrss * 1024;
    if (strcmp(r.state, "exited") == 0) {
        fprintf(out, "  at exit:\n");
    } else {
        size_t now_ms = neap_cli_wall_ms();
        fprintf(out, "  as last published, %.1f s before the end (the program ended without "
                     "running exit handlers):\n",
                now_ms > r.time_ms ? (double)(now_ms - r.time_ms) / 1000.0 : 0.0);
    }
    neap_cli_record_memory(out, &r);
    neap_cli_record_classes(out, &r, 6);
}

/* Appends the 'E' record, with how the program ended, to its trace: the
 * program wrote everything else (a killed one up to its last flush). */
static void run_trace_end(const char *path, int status) {
    uint8_t buf[64];
    _neap_trace_enc_t e;
    _neap_trace_enc_init(&e, buf, sizeof buf);
    if (WIFSIGNALED(status))
        _neap_trace_enc_end(&e, NEAP_TRACE_EXIT_SIGNAL, WTERMSIG(status));
    else
        _neap_trace_enc_end(&e, NEAP_TRACE_EXIT_STATUS, WEXITSTATUS(status));
    size_t n = _neap_trace_enc_finish(&e);
    FILE *f = fopen(path, "ab");
    if (f == NULL || fwrite(buf, 1, n, f) != n || fclose(f) != 0)
        fprintf(stderr, "neap run: cannot finish the trace %s: %s\n", path, strerror(errno));
}

int neap_cli_run(int argc, char **argv) {
    run_setting_t settings[] = {
        {"--purge-delay", "NEAP_PURGE_DELAY", NULL, 0},
        {"--purge-max", "NEAP_PURGE_MAX", NULL, 1},
        {"--arena-reserve", "NEAP_ARENA_RESERVE", NULL, 0},
        {"--publish", "NEAP_PUBLISH", "1000", 0},
        {"--frames", "NEAP_TRACE_FRAMES", NULL, 0},
        {"--sample", "NEAP_TRACE_SAMPLE", NULL, 1},
    };
    const size_t nsettings = sizeof settings / sizeof settings[0];
    const char *output = NULL, *lib_arg = NULL, *trace = NULL, *unwind = NULL;
    char trace_abs[4096];
    int quiet = 0, show_stats = 0, verbose = 0, python = 1, background = 1;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *value;
        int m;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-') break;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            run_usage(stdout);
            return NEAP_CLI_OK;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
        if (strcmp(a, "--show-stats") == 0) { show_stats = 1; continue; }
        if (strcmp(a, "--verbose") == 0) { verbose = 1; continue; }
        if (strcmp(a, "--no-python") == 0) { python = 0; continue; }
        if (strcmp(a, "--no-background") == 0) { background = 0; continue; }
        if (strcmp(a, "-o") == 0) a = "--output", argv[i] = (char *)"--output";
        if ((m = neap_cli_option_value("run", argc, argv, &i, "--output", &value)) != 0) {
            if (m < 0) return NEAP_CLI_USAGE;
            output = value;
            continue;
        }
        if ((m = neap_cli_option_value("run", argc, argv, &i, "--unwind", &value)) != 0) {
            if (m < 0) return NEAP_CLI_USAGE;
            if (strcmp(value, "fp") != 0 && strcmp(value, "dwarf") != 0 && strcmp(value, "auto") != 0) {
                fprintf(stderr, "neap run: --unwind: '%s' is not auto, fp or dwarf\n", value);
                return NEAP_CLI_USAGE;
            }
            unwind = value;
            continue;
        }
        if ((m = neap_cli_option_value("run", argc, argv, &i, "--trace", &value)) != 0) {
            if (m < 0) return NEAP_CLI_USAGE;
            trace = value;
            continue;
        }
        if ((m = neap_cli_option_value("run", argc, argv, &i, "--lib", &value)) != 0) {
            if (m < 0) return NEAP_CLI_USAGE;
            lib_arg = value;
            continue;
        }
        size_t k;
        for (k = 0; k < nsettings; k++) {
            m = neap_cli_option_value("run", argc, argv, &i, settings[k].option, &value);
            if (m < 0) return NEAP_CLI_USAGE;
            if (m > 0) {
                if (!run_value_ok(value, settings[k].size)) {
                    fprintf(stderr, "neap run: %s: bad value '%s'\n", settings[k].option, value);
                    return NEAP_CLI_USAGE;
                }
                settings[k].value = value;
                break;
            }
        }
        if (k < nsettings) continue;
        fprintf(stderr, "neap run: unknown option '%s'; see 'neap run --help'\n", a);
        return NEAP_CLI_USAGE;
    }
    if (i >= argc) {
        fprintf(stderr, "neap run: no command given; usage: neap run [options] -- CMD [ARGS...]\n");
        return NEAP_CLI_USAGE;
    }
    if (unwind != NULL && trace == NULL) {
        fprintf(stderr, "neap run: --unwind needs --trace FILE\n");
        return NEAP_CLI_USAGE;
    }
    for (size_t k = 0; k < nsettings; k++) {
        if (settings[k].value != NULL && trace == NULL &&
            strncmp(settings[k].env, "NEAP_TRACE_", 11) == 0) {
            fprintf(stderr, "neap run: %s needs --trace FILE\n", settings[k].option);
            return NEAP_CLI_USAGE;
        }
    }
#if !NEAP_TRACING
    if (trace != NULL) {
        fprintf(stderr, "neap run: --trace: this neap was built without tracing (NEAP_TRACING=OFF)\n");
        return NEAP_CLI_USAGE;
    }
#endif
    if (trace != NULL) {
        /* absolute, so that processes that change directory write beside it */
        char cwd[2048];
        int n = trace[0] == '/' || getcwd(cwd, sizeof cwd) == NULL
                    ? snprintf(trace_abs, sizeof trace_abs, "%s", trace)
                    : snprintf(trace_abs, sizeof trace_abs, "%s/%s", cwd, trace);
        if (n <= 0 || (size_t)n >= sizeof trace_abs) {
            fprintf(stderr, "neap run: --trace: path too long\n");
            return NEAP_CLI_USAGE;
        }
        /* the program would only warn; say it here, before it runs */
        FILE *f = fopen(trace_abs, "w");
        if (f == NULL) {
            fprintf(stderr, "neap run: --trace: cannot write %s: %s\n", trace_abs, strerror(errno));
            return NEAP_CLI_USAGE;
        }
        fclose(f);
        trace = trace_abs;
    }
    char **cmd = argv + i;

    char lib[PATH_MAX];
    if (lib_arg) {
        if (realpath(lib_arg, lib) == NULL) {
            fprintf(stderr, "neap run: --lib %s: %s\n", lib_arg, strerror(errno));
            return NEAP_CLI_USAGE;
        }
    } else if (run_find_lib(lib, sizeof lib) != 0) {
        fprintf(stderr, "neap run: libneap.so is not next to this program nor in ../%s; "
                        "give its path with --lib\n", NEAP_INSTALL_LIBDIR);
        return NEAP_CLI_FAILED;
    }

    FILE *out = stderr;
    if (!quiet && output) {
        out = fopen(output, "w");
        if (out == NULL) {
            fprintf(stderr, "neap run: cannot write the summary to %s: %s\n", output, strerror(errno));
            return NEAP_CLI_USAGE;
        }
    }

    /* the child's environment, made before fork so the child only execs */
    const char *old = getenv("LD_PRELOAD");
    size_t plen = strlen(lib) + (old ? strlen(old) + 1 : 0) + 1;
    char *preload = malloc(plen);
    if (preload == NULL) {
        fprintf(stderr, "neap run: out of memory\n");
        return NEAP_CLI_FAILED;
    }
    snprintf(preload, plen, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");

    struct sigaction ign = {0}, fwd = {0}, old_int, old_quit;
    ign.sa_handler = SIG_IGN;
    fwd.sa_handler = run_forward;
    sigemptyset(&fwd.sa_mask);
    fwd.sa_flags = SA_RESTART;
    int forwarded[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGCONT, SIGWINCH};
    fflush(NULL);
    double start = run_now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "neap run: fork: %s\n", strerror(errno));
        free(preload);
        return NEAP_CLI_FAILED;
    }
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        for (size_t k = 0; k < nsettings; k++)
            if (settings[k].value) setenv(settings[k].env, settings[k].value, 1);
        if (show_stats) setenv("NEAP_SHOW_STATS", "1", 1);
        if (background && getenv("NEAP_BACKGROUND") == NULL) setenv("NEAP_BACKGROUND", "1", 1);
        if (verbose) setenv("NEAP_VERBOSE", "1", 1);
        if (trace != NULL) setenv("NEAP_TRACE", trace, 1);
        if (unwind != NULL)
            setenv("NEAP_TRACE_UNWIND", !strcmp(unwind, "dwarf") ? "1" : !strcmp(unwind, "fp") ? "2" : "0", 1);
        char self[32];
        snprintf(self, sizeof self, "%ld", (long)getpid());
        setenv("NEAP_RUN_PID", self, 1);
        if (python && run_is_python(cmd[0]) && getenv("PYTHONMALLOC") == NULL)
            setenv("PYTHONMALLOC", "malloc", 1);
        execvp(cmd[0], cmd);
        int e = errno;
        fprintf(stderr, "neap run: %s: %s\n", cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    run_child_pid = pid;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
        sigaction(forwarded[k], &fwd, NULL);

    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "neap run: wait: %s\n", strerror(errno));
            free(preload);
            return NEAP_CLI_FAILED;
        }
    }
    double seconds = run_now() - start;
    free(preload);

    int not_run = WIFEXITED(status) && (WEXITSTATUS(status) == 127 || WEXITSTATUS(status) == 126);
    if (trace != NULL)
        run_trace_end(trace, status);
    char path[128];
    neap_cli_record_path(pid, path, sizeof path);
    if (!quiet && !(not_run && access(path, F_OK) != 0)) {
        run_summary(out, cmd, status, seconds, &ru, pid);
        if (trace != NULL)
            fprintf(out, "  trace: %s (read it with `neap report %s`)\n", trace, trace);
        if (out != stderr && fclose(out) != 0)
            fprintf(stderr, "neap run: error writing %s: %s\n", output, strerror(errno));
    } else {
        unlink(path);
        if (out != stderr) fclose(out);
    }

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* die the same way, without a core file of our own */
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        fflush(NULL);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return WEXITSTATUS(status);
}

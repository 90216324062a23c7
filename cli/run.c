/* run.c -- `neap run [options] -- CMD ARGS...`: any program on neap.
 *
 *   neap run                                    child
 *   run_parse: the options into run_options_t
 *   run_trace_create, run_lib (libneap.so
 *     next to this executable), run_output
 *   run_env_build: the child's environment,  -> LD_PRELOAD=libneap.so[:theirs],
 *     made before fork so the child only        NEAP_PUBLISH, NEAP_BACKGROUND,
 *     writes its pid into it and execs          NEAP_<option>s asked for
 *                                               (--mesh: NEAP_MESH=1 and
 *                                               NEAP_BACKGROUND=1),
 *                                               NEAP_RUN_PID=<own pid>,
 *                                               PYTHONMALLOC=malloc (unless set;
 *                                                 whatever CMD is)
 *   run_start: fork ------------------------->  parent-death signal SIGKILL (neap
 *                                               run killed: the program goes too);
 *                                               execvpe(CMD, that environment);
 *   run_wait: SIGINT, SIGQUIT ignored (the       at exit the library writes its
 *     terminal sends them to the child too);     final record
 *     SIGTERM, SIGHUP, SIGUSR1/2, ...            |
 *     forwarded; wait4: status, peak RSS         |
 *   run_trace_end: the trace's 'E' record        |
 *   run_report: read /tmp/neap-<uid>/<pid> <-----/
 *     and remove it, and the notes <pid>.python (Python processes on
 *     pymalloc), <pid>.traces (the run's other processes that wrote
 *     FILE.<pid>) and <pid>.trace (the trace's note for `neap mark`); the
 *     summary (stderr or -o FILE), naming those traces
 *   run_exit: the child's exit status, or die of the child's signal
 *
 * Every process the program forks or execs inherits the preload, so the whole
 * process tree runs on neap; the summary describes the process started here.
 * Numeric options are checked against the ranges the library accepts
 * (src/core/options.c): a value the library would ignore with a warning is
 * refused here, before the program runs, and the program gets it as digits.
 * A file name (--trace, -o, --lib) that starts with '-' is refused: it is
 * the next argument taken as the value ("--trace -- CMD").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trace/tracefmt.h"

#ifndef NEAP_INSTALL_LIBDIR
#define NEAP_INSTALL_LIBDIR "lib"
#endif

extern char **environ;

/* --- options ---------------------------------------------------------------- */

/* A numeric option handed to the program as a NEAP_ environment variable,
 * with the range the library accepts for it (src/core/options.c). */
typedef struct {
    const char *option;           /* "--purge-delay" */
    const char *env;              /* "NEAP_PURGE_DELAY" */
    neap_cli_unit_t unit;
    unsigned long long min, max;
    int needs_trace;              /* meaningful only with --trace */
} run_setting_t;

enum { RUN_PURGE_DELAY, RUN_PURGE_MAX, RUN_ARENA_RESERVE, RUN_PUBLISH, RUN_FRAMES, RUN_SAMPLE,
       RUN_NSETTINGS };

static const run_setting_t run_settings[RUN_NSETTINGS] = {
    [RUN_PURGE_DELAY] = {"--purge-delay", "NEAP_PURGE_DELAY", NEAP_CLI_WHOLE, 0, 3600000, 0},
    [RUN_PURGE_MAX] = {"--purge-max", "NEAP_PURGE_MAX", NEAP_CLI_BYTES, 0, 1ULL << 40, 0},
    [RUN_ARENA_RESERVE] = {"--arena-reserve", "NEAP_ARENA_RESERVE", NEAP_CLI_WHOLE, 0, 1024, 0},
    [RUN_PUBLISH] = {"--publish", "NEAP_PUBLISH", NEAP_CLI_WHOLE, 0, 3600000, 0},
    [RUN_FRAMES] = {"--frames", "NEAP_TRACE_FRAMES", NEAP_CLI_WHOLE, 1, 128, 1},
    [RUN_SAMPLE] = {"--sample", "NEAP_TRACE_SAMPLE", NEAP_CLI_BYTES, 0, 1ULL << 40, 1},
};

/* What the command line asks for. */
typedef struct {
    char **cmd;                        /* the program and its arguments, NULL-ended */
    const char *output;                /* -o FILE, or NULL: the summary goes to stderr */
    const char *lib;                   /* --lib PATH, or NULL: the one beside this command */
    const char *trace;                 /* --trace FILE (absolute after run_trace_create) */
    const char *unwind;                /* NEAP_TRACE_UNWIND's value ("0" auto, "1" dwarf,
                                          "2" fp), or NULL */
    const char *pyframes;              /* NEAP_TRACE_PYTHON's ("1" python, "2" native,
                                          "0" off), or NULL */
    int quiet, show_stats, verbose, python, background, debug_malloc, mesh;
    int given[RUN_NSETTINGS];          /* the setting is passed to the program */
    unsigned long long value[RUN_NSETTINGS];
    char trace_abs[4096];
} run_options_t;

static void run_usage(FILE *out) {
    fprintf(out,
            "usage: neap run [options] -- CMD [ARGS...]\n"
            "\n"
            "Runs CMD with neap as its memory allocator (LD_PRELOAD of libneap.so), and\n"
            "prints a summary of its memory when it exits.  Every process CMD starts runs on\n"
            "neap too.  Every process gets PYTHONMALLOC=malloc, so that a Python\n"
            "interpreter's objects go through neap, whatever starts it (a script, env, a\n"
            "shell, pytest), unless PYTHONMALLOC is set already; the summary names any\n"
            "Python process of the run that kept pymalloc all the same.\n"
            "\n"
            "options (a value either as \"--opt VALUE\" or \"--opt=VALUE\"):\n"
            "  -o, --output FILE      write the summary to FILE instead of standard error\n"
            "  -q, --quiet            no summary\n"
            "  --purge-delay MS       ms an empty page or a freed huge block waits before it goes\n"
            "                         back (NEAP_PURGE_DELAY; 0 to 3600000)\n"
            "  --purge-max SIZE       empty bytes a thread may hold before an early purge\n"
            "                         (NEAP_PURGE_MAX; 4M, 512K, ...; 0 to 1024G)\n"
            "  --arena-reserve N      empty arenas a thread keeps mapped (NEAP_ARENA_RESERVE;\n"
            "                         0 to 1024)\n"
            "  --publish MS           how often the program publishes its statistics for\n"
            "                         `neap stats PID` (NEAP_PUBLISH; default 1000, 0: never,\n"
            "                         at most 3600000)\n"
            "  --no-background        no background thread giving empty pages back on time\n"
            "                         (NEAP_BACKGROUND=1 is the default under neap run)\n"
            "  --show-stats           every process prints neap's full statistics at exit\n"
            "  --verbose              neap's warnings and notices (NEAP_VERBOSE)\n"
            "  --debug-malloc         the debug mode (NEAP_DEBUG_MALLOC=1): guard bytes around\n"
            "                         every block, fills, checks at free and realloc; a misuse\n"
            "                         stops the program with a message saying what and where\n"
            "  --mesh                 meshing (NEAP_MESH=1, and NEAP_BACKGROUND=1: the\n"
            "                         background thread meshes): one-page pools of a size\n"
            "                         class whose live blocks sit at different offsets come\n"
            "                         to share one physical page; no block moves.  Not with\n"
            "                         --debug-malloc nor --no-background\n"
            "  --no-python            do not set PYTHONMALLOC=malloc\n"
            "  --trace FILE           record every allocation with its stack into FILE as the\n"
            "                         program runs (read it with `neap report FILE`); other\n"
            "                         processes of the run write FILE.<pid>, named in the\n"
            "                         summary\n"
            "  --frames N             frames kept per stack with --trace (1 to 128, default 32)\n"
            "  --unwind auto|fp|dwarf how --trace walks stacks: frame pointers (fp: fast;\n"
            "                         stacks stop at code built without them), the DWARF\n"
            "                         unwinder (dwarf: any code, much slower), or auto (the\n"
            "                         default): frame pointers, and with --sample the DWARF\n"
            "                         unwinder where they stop at the first frame\n"
            "  --python-frames python|native|off\n"
            "                         what --trace records of a Python 3.11 program: its\n"
            "                         Python frames (python, the default: file, line and\n"
            "                         function, as tracemalloc shows them), the same merged in\n"
            "                         place with the interpreter's C frames (native), or the\n"
            "                         C frames only (off)\n"
            "  --native               the same as --python-frames native\n"
            "  --sample SIZE          with --trace, a Poisson sample of the allocations, one per\n"
            "                         SIZE bytes on average (512K is the usual choice in\n"
            "                         production), instead of every one (0: every one; at\n"
            "                         most 1024G)\n"
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

/* A file name given to a file-valued option (--trace, -o, --lib): one that
 * is "--" or starts with '-' is refused, since it is almost always the
 * next argument taken as the value ("--trace -- CMD" would write ./--).
 * 0, or -1 after saying so. */
static int run_file_value(const char *option, const char *value) {
    if (value[0] != '-') return 0;
    fprintf(stderr,
            "neap run: %s needs a file name, not '%s' (the next argument was taken as its value); "
            "name a file that starts with '-' as ./%s\n",
            option, value, value);
    return -1;
}

/* Parses the command line into *o.  Returns 0 to go on, 1 after printing
 * the help, -1 after printing what is wrong (a bad option or value, no
 * command, a tracing option without --trace). */
static int run_parse(int argc, char **argv, run_options_t *o) {
    enum { OPT_SHOW_STATS = 256, OPT_VERBOSE, OPT_NO_PYTHON, OPT_NO_BACKGROUND, OPT_TRACE,
           OPT_UNWIND, OPT_LIB, OPT_DEBUG_MALLOC, OPT_MESH, OPT_PYFRAMES, OPT_NATIVE,
           OPT_SETTING /* + RUN_* */ };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"show-stats", no_argument, NULL, OPT_SHOW_STATS},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"no-python", no_argument, NULL, OPT_NO_PYTHON},
        {"no-background", no_argument, NULL, OPT_NO_BACKGROUND},
        {"debug-malloc", no_argument, NULL, OPT_DEBUG_MALLOC},
        {"mesh", no_argument, NULL, OPT_MESH},
        {"trace", required_argument, NULL, OPT_TRACE},
        {"unwind", required_argument, NULL, OPT_UNWIND},
        {"python-frames", required_argument, NULL, OPT_PYFRAMES},
        {"native", no_argument, NULL, OPT_NATIVE},
        {"lib", required_argument, NULL, OPT_LIB},
        {"purge-delay", required_argument, NULL, OPT_SETTING + RUN_PURGE_DELAY},
        {"purge-max", required_argument, NULL, OPT_SETTING + RUN_PURGE_MAX},
        {"arena-reserve", required_argument, NULL, OPT_SETTING + RUN_ARENA_RESERVE},
        {"publish", required_argument, NULL, OPT_SETTING + RUN_PUBLISH},
        {"frames", required_argument, NULL, OPT_SETTING + RUN_FRAMES},
        {"sample", required_argument, NULL, OPT_SETTING + RUN_SAMPLE},
        {NULL, 0, NULL, 0}};
    int from_user[RUN_NSETTINGS] = {0};
    memset(o, 0, sizeof *o);
    o->python = o->background = 1;
    o->given[RUN_PUBLISH] = 1;  /* so that `neap stats PID` works on every run */
    o->value[RUN_PUBLISH] = 1000;
    optind = 0;
    int c;
    /* in order: the first operand is CMD, and everything after it is CMD's */
    while ((c = neap_cli_getopt("run", argc, argv, "ho:q", longopts, 1)) != -1) {
        switch (c) {
        case 'h':
            run_usage(stdout);
            return 1;
        case 'o':
            if (run_file_value("-o/--output", optarg) != 0) return -1;
            o->output = optarg;
            break;
        case 'q': o->quiet = 1; break;
        case OPT_SHOW_STATS: o->show_stats = 1; break;
        case OPT_VERBOSE: o->verbose = 1; break;
        case OPT_NO_PYTHON: o->python = 0; break;
        case OPT_NO_BACKGROUND: o->background = 0; break;
        case OPT_DEBUG_MALLOC: o->debug_malloc = 1; break;
        case OPT_MESH: o->mesh = 1; break;
        case OPT_TRACE:
            if (run_file_value("--trace", optarg) != 0) return -1;
            o->trace = optarg;
            break;
        case OPT_LIB:
            if (run_file_value("--lib", optarg) != 0) return -1;
            o->lib = optarg;
            break;
        case OPT_UNWIND:
            if (strcmp(optarg, "auto") == 0) o->unwind = "0";
            else if (strcmp(optarg, "dwarf") == 0) o->unwind = "1";
            else if (strcmp(optarg, "fp") == 0) o->unwind = "2";
            else {
                fprintf(stderr, "neap run: --unwind: '%s' is not auto, fp or dwarf\n", optarg);
                return -1;
            }
            break;
        case OPT_NATIVE: o->pyframes = "2"; break;
        case OPT_PYFRAMES:
            if (strcmp(optarg, "python") == 0) o->pyframes = "1";
            else if (strcmp(optarg, "native") == 0) o->pyframes = "2";
            else if (strcmp(optarg, "off") == 0) o->pyframes = "0";
            else {
                fprintf(stderr, "neap run: --python-frames: '%s' is not python, native or off\n",
                        optarg);
                return -1;
            }
            break;
        default:
            if (c >= OPT_SETTING && c < OPT_SETTING + RUN_NSETTINGS) {
                int k = c - OPT_SETTING;
                const run_setting_t *s = &run_settings[k];
                if (neap_cli_number("run", s->option, optarg, s->unit, s->min, s->max,
                                    &o->value[k]) != 0)
                    return -1;
                o->given[k] = from_user[k] = 1;
                break;
            }
            return -1;  /* '?': neap_cli_getopt said what is wrong */
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "neap run: no command given; usage: neap run [options] -- CMD [ARGS...]\n");
        return -1;
    }
    o->cmd = argv + optind;
    if (o->unwind != NULL && o->trace == NULL) {
        fprintf(stderr, "neap run: --unwind needs --trace FILE\n");
        return -1;
    }
    if (o->pyframes != NULL && o->trace == NULL) {
        fprintf(stderr, "neap run: --python-frames and --native need --trace FILE\n");
        return -1;
    }
    if (o->debug_malloc && o->trace != NULL) {
        fprintf(stderr, "neap run: --debug-malloc and --trace do not go together (the debug mode's guards "
                        "would be traced as data)\n");
        return -1;
    }
    if (o->mesh && o->debug_malloc) {
        fprintf(stderr, "neap run: --mesh and --debug-malloc do not go together (the debug mode "
                        "does not mesh)\n");
        return -1;
    }
    if (o->mesh && !o->background) {
        fprintf(stderr, "neap run: --mesh and --no-background do not go together (the background "
                        "thread is the one that meshes)\n");
        return -1;
    }
    for (int k = 0; k < RUN_NSETTINGS; k++) {
        if (from_user[k] && run_settings[k].needs_trace && o->trace == NULL) {
            fprintf(stderr, "neap run: %s needs --trace FILE\n", run_settings[k].option);
            return -1;
        }
    }
#if !NEAP_TRACING
    if (o->trace != NULL) {
        fprintf(stderr, "neap run: --trace: this neap was built without tracing (NEAP_TRACING=OFF)\n");
        return -1;
    }
#endif
    return 0;
}

/* Makes o->trace absolute, so that processes that change directory write
 * beside it, and creates the file empty: the program would only warn that
 * it cannot write it, so this says it before the program runs.  0, or -1
 * after printing why. */
static int run_trace_create(run_options_t *o) {
    char cwd[2048];
    int n = o->trace[0] == '/' || getcwd(cwd, sizeof cwd) == NULL
                ? snprintf(o->trace_abs, sizeof o->trace_abs, "%s", o->trace)
                : snprintf(o->trace_abs, sizeof o->trace_abs, "%s/%s", cwd, o->trace);
    if (n <= 0 || (size_t)n >= sizeof o->trace_abs) {
        fprintf(stderr, "neap run: --trace: path too long\n");
        return -1;
    }
    FILE *f = fopen(o->trace_abs, "w");
    if (f == NULL) {
        fprintf(stderr, "neap run: --trace: cannot write %s: %s\n", o->trace_abs, strerror(errno));
        return -1;
    }
    fclose(f);
    o->trace = o->trace_abs;
    return 0;
}

/* The absolute path of the libneap.so to preload, into lib[cap]: --lib's,
 * or the one that belongs to this command.  Returns NEAP_CLI_OK, or the
 * exit status after printing why there is none (USAGE: a bad --lib;
 * FAILED: none installed beside this command). */
static int run_lib(const run_options_t *o, char *lib, size_t cap) {
    if (o->lib != NULL) {
        char path[PATH_MAX];
        if (realpath(o->lib, path) == NULL) {
            fprintf(stderr, "neap run: --lib %s: %s\n", o->lib, strerror(errno));
            return NEAP_CLI_USAGE;
        }
        if (strlen(path) >= cap) {
            fprintf(stderr, "neap run: --lib %s: path too long\n", o->lib);
            return NEAP_CLI_USAGE;
        }
        memcpy(lib, path, strlen(path) + 1);
        return NEAP_CLI_OK;
    }
    if (run_find_lib(lib, cap) != 0) {
        fprintf(stderr, "neap run: libneap.so is not next to this program nor in ../%s; "
                        "give its path with --lib\n", NEAP_INSTALL_LIBDIR);
        return NEAP_CLI_FAILED;
    }
    return NEAP_CLI_OK;
}

/* Where the summary goes: stderr, or -o FILE, opened now (before the
 * program runs, so that a bad FILE is said at once).  0, or -1 after
 * printing why FILE cannot be written. */
static int run_output(const run_options_t *o, FILE **out) {
    *out = stderr;
    if (o->quiet || o->output == NULL) return 0;
    *out = fopen(o->output, "w");
    if (*out == NULL) {
        fprintf(stderr, "neap run: cannot write the summary to %s: %s\n", o->output,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* --- the child's environment ------------------------------------------------ */

/* A copy of the environment with the program's variables set.  Every entry
 * ("NAME=value") is malloc'd and unique by NAME; vars is NULL-ended.
 * pid_slot points into the NEAP_RUN_PID entry, after its '=', with room for
 * RUN_PID_DIGITS digits: the child writes its own pid there between fork
 * and exec. */
typedef struct {
    char **vars;
    size_t n, cap;
    char *pid_slot;
} run_env_t;

#define RUN_PID_DIGITS 20

static void run_env_free(run_env_t *e) {
    for (size_t i = 0; i < e->n; i++) free(e->vars[i]);
    free(e->vars);
    memset(e, 0, sizeof *e);
}

/* Puts entry (malloc'd "NAME=value"; e owns it from now) into e, in place
 * of the entry of the same NAME.  0, or -1 when memory ran out (entry is
 * freed; entry NULL counts as memory run out). */
static int run_env_put(run_env_t *e, char *entry) {
    if (entry == NULL) return -1;
    size_t nlen = strcspn(entry, "=");
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->vars[i], entry, nlen) == 0 && e->vars[i][nlen] == entry[nlen]) {
            free(e->vars[i]);
            e->vars[i] = entry;
            return 0;
        }
    }
    if (e->n + 1 >= e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 64;
        char **nv = realloc(e->vars, ncap * sizeof *nv);
        if (nv == NULL) {
            free(entry);
            return -1;
        }
        e->vars = nv;
        e->cap = ncap;
    }
    e->vars[e->n++] = entry;
    e->vars[e->n] = NULL;
    return 0;
}

/* name=value into e: the new entry, or NULL when memory ran out. */
static char *run_env_set(run_env_t *e, const char *name, const char *value) {
    size_t len = strlen(name) + 1 + strlen(value) + 1;
    char *entry = malloc(len);
    if (entry != NULL) snprintf(entry, len, "%s=%s", name, value);
    return run_env_put(e, entry) == 0 ? entry : NULL;
}

/* Builds in *e this process's environment and what the program needs on
 * top: the preload of lib (before any the user has), the settings, the
 * tracing variables, NEAP_RUN_PID's slot, and PYTHONMALLOC=malloc (for
 * whatever Python the run starts).  A NEAP_BACKGROUND (but with --mesh) or
 * PYTHONMALLOC the user set wins.  0, or -1 after saying memory ran out (e is then empty). */
static int run_env_build(const run_options_t *o, const char *lib, run_env_t *e) {
    memset(e, 0, sizeof *e);
    int ok = 1;
    for (char **v = environ; ok && *v != NULL; v++) ok = run_env_put(e, strdup(*v)) == 0;
    const char *old = getenv("LD_PRELOAD");
    size_t plen = strlen(lib) + (old ? strlen(old) + 1 : 0) + 1;
    char *preload = malloc(plen);
    if (ok && preload != NULL) {
        snprintf(preload, plen, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
        ok = run_env_set(e, "LD_PRELOAD", preload) != NULL;
    } else {
        ok = 0;
    }
    free(preload);
    for (int k = 0; ok && k < RUN_NSETTINGS; k++) {
        if (!o->given[k]) continue;
        char num[32];
        snprintf(num, sizeof num, "%llu", o->value[k]);
        ok = run_env_set(e, run_settings[k].env, num) != NULL;
    }
    if (ok && o->show_stats) ok = run_env_set(e, "NEAP_SHOW_STATS", "1") != NULL;
    /* with --mesh, whatever the user set: the background thread meshes */
    if (ok && o->background && (o->mesh || getenv("NEAP_BACKGROUND") == NULL))
        ok = run_env_set(e, "NEAP_BACKGROUND", "1") != NULL;
    if (ok && o->mesh) ok = run_env_set(e, "NEAP_MESH", "1") != NULL;
    if (ok && o->verbose) ok = run_env_set(e, "NEAP_VERBOSE", "1") != NULL;
    if (ok && o->debug_malloc) ok = run_env_set(e, "NEAP_DEBUG_MALLOC", "1") != NULL;
    if (ok && o->trace != NULL) ok = run_env_set(e, "NEAP_TRACE", o->trace) != NULL;
    if (ok && o->unwind != NULL) ok = run_env_set(e, "NEAP_TRACE_UNWIND", o->unwind) != NULL;
    if (ok && o->pyframes != NULL) ok = run_env_set(e, "NEAP_TRACE_PYTHON", o->pyframes) != NULL;
    /* every process: the command may be a shebang script, env, a shell, a
     * launcher (pytest, gunicorn) that starts Python later */
    if (ok && o->python && getenv("PYTHONMALLOC") == NULL)
        ok = run_env_set(e, "PYTHONMALLOC", "malloc") != NULL;
    if (ok) {
        char room[RUN_PID_DIGITS + 1];
        memset(room, '0', RUN_PID_DIGITS);
        room[RUN_PID_DIGITS] = '\0';
        char *entry = run_env_set(e, "NEAP_RUN_PID", room);
        ok = entry != NULL;
        if (ok) e->pid_slot = entry + strlen("NEAP_RUN_PID=");
    }
    if (!ok) {
        run_env_free(e);
        fprintf(stderr, "neap run: out of memory\n");
        return -1;
    }
    return 0;
}

/* --- the child ---------------------------------------------------------------- */

static volatile sig_atomic_t run_child_pid;

static void run_forward(int sig) {
    if (run_child_pid > 0) kill((pid_t)run_child_pid, sig);
}

static double run_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Forks the child, which writes its pid into env's NEAP_RUN_PID slot and
 * execs the program with env (or exits 127, not found, or 126, cannot be
 * run, after saying so).  Returns the child's pid, or -1 after printing
 * why fork failed. */
static pid_t run_start(const run_options_t *o, run_env_t *env) {
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "neap run: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* neap run gone (SIGKILL is the only way it dies while it waits:
         * the catchable signals are forwarded or ignored), the program goes
         * too, at once: SIGKILL, since a program may ignore SIGTERM, and
         * nobody is left to read a summary.  Kept across exec (but for a
         * set-user-ID program).  If neap run died before this call, the
         * child has a new parent already: it goes the same way. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) raise(SIGKILL);
        char digits[RUN_PID_DIGITS];
        int n = 0;
        unsigned long v = (unsigned long)getpid();
        do {
            digits[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0 && n < RUN_PID_DIGITS);
        for (int i = 0; i < n; i++) env->pid_slot[i] = digits[n - 1 - i];
        env->pid_slot[n] = '\0';
        execvpe(o->cmd[0], o->cmd, env->vars);
        int e = errno;
        fprintf(stderr, "neap run: %s: %s\n", o->cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    return pid;
}

/* What SIGINT and SIGQUIT did before run_wait ignored them. */
typedef struct {
    struct sigaction old_int, old_quit;
} run_signals_t;

/* Waits for the child pid to end, ignoring SIGINT and SIGQUIT (the terminal
 * sends them to the child too) and forwarding to the child the signals a
 * user or a supervisor sends neap run; both stay so until run_exit.
 * Returns 0 with the child's wait status and resource usage, or -1 after
 * printing why wait failed. */
static int run_wait(pid_t pid, run_signals_t *saved, int *status, struct rusage *ru) {
    static const int forwarded[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGCONT, SIGWINCH};
    struct sigaction ign, fwd;
    memset(&ign, 0, sizeof ign);
    memset(&fwd, 0, sizeof fwd);
    ign.sa_handler = SIG_IGN;
    fwd.sa_handler = run_forward;
    sigemptyset(&fwd.sa_mask);
    fwd.sa_flags = SA_RESTART;
    run_child_pid = pid;
    sigaction(SIGINT, &ign, &saved->old_int);
    sigaction(SIGQUIT, &ign, &saved->old_quit);
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
        sigaction(forwarded[k], &fwd, NULL);
    *status = 0;
    memset(ru, 0, sizeof *ru);
    while (wait4(pid, status, 0, ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "neap run: wait: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* --- after the child ---------------------------------------------------------- */

/* The summary's lines to out: the command, how it ended, and the memory
 * figures of the program's statistics record r (rc: what
 * neap_cli_record_read returned, or -2 when the directory was refused;
 * err: why there is no record). */
static void run_summary(FILE *out, char **cmd, int status, double seconds, const struct rusage *ru,
                        int rc, neap_cli_record_t *r, const char *err) {
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
    if (rc != 0) {
        fprintf(out, "  peak RSS          %s\n", peak);
        if (rc == 1)
            fprintf(out, "  no statistics from the program: it ended without running exit handlers\n"
                         "  (a signal, _exit, or exec of a statically linked program)\n");
        else if (rc == -2)
            fprintf(out, "  no statistics: %s: ignored\n", err);
        else
            fprintf(out, "  its statistics record is unreadable: %s\n", err);
        return;
    }
    if (r->peak_rss < (size_t)ru->ru_maxrss * 1024) r->peak_rss = (size_t)ru->ru_maxrss * 1024;
    if (strcmp(r->state, "exited") == 0) {
        fprintf(out, "  at exit:\n");
    } else {
        size_t now_ms = neap_cli_wall_ms();
        fprintf(out, "  as last published, %.1f s before the end (the program ended without "
                     "running exit handlers):\n",
                now_ms > r->time_ms ? (double)(now_ms - r->time_ms) / 1000.0 : 0.0);
    }
    neap_cli_record_memory(out, r);
    neap_cli_record_classes(out, r, 6);
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

/* The note of the run's Python processes that kept pymalloc (the library
 * appends "<pid> <allocator> <command>" lines to <pid>.python at their
 * exit: src/services/publish.c), printed to out and removed.  Read as the
 * records are: the user's own regular file, never through a link, never
 * a FIFO, at most NEAP_CLI_RECORD_MAX bytes. */
static void run_python_note(int dir, pid_t pid, FILE *out, int print) {
    char name[40], err[256];
    snprintf(name, sizeof name, "%ld.python", (long)pid);
    char text[NEAP_CLI_RECORD_MAX + 1];
    size_t n = 0;
    int rc = neap_cli_file_read(dir, name, name, text, sizeof text, &n, err, sizeof err);
    if (rc == 1) return;
    neap_cli_file_remove(dir, name);   /* not the user's own file: left alone */
    if (rc != 0) n = 0;
    if (!print || n == 0) return;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += text[i] == '\n';
    fprintf(out, "  note: %zu Python process%s of this run kept pymalloc, so %s objects were not neap's\n"
                 "        (PYTHONMALLOC set to pymalloc, or ignored by python -E or -I):\n",
            count, count == 1 ? "" : "es", count == 1 ? "its" : "their");
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL) break;
        char shown[600];
        neap_cli_escape(shown, sizeof shown, line, (size_t)(end - line));
        fprintf(out, "        pid %s\n", shown);
    }
}

/* The note of the run's other traced processes (each appends "<pid>
 * <command>" to <pid>.traces as its trace file FILE.<pid> opens:
 * src/services/publish.c), read as run_python_note reads its note and
 * removed.  Returns its text (malloc'd, the caller frees it), or NULL when
 * there is none. */
#define RUN_TRACES_NOTE_MAX (256 * 1024)
static char *run_traces_note(int dir, pid_t pid) {
    char name[40], err[256];
    snprintf(name, sizeof name, "%ld.traces", (long)pid);
    char *text = malloc(RUN_TRACES_NOTE_MAX + 1);
    size_t n = 0;
    int rc = text != NULL ? neap_cli_file_read(dir, name, name, text, RUN_TRACES_NOTE_MAX + 1, &n, err,
                                               sizeof err)
                          : -1;
    if (rc != 1) neap_cli_file_remove(dir, name);   /* not the user's own file: left alone */
    if (rc != 0 || n == 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The trace files of the run's other processes, FILE.<pid> for each pid of
 * the note (those that exist, each once), listed to out with `neap report`
 * hints: the first SHOWN_MAX, then how many more. */
static void run_traces_list(FILE *out, const char *trace, const char *note) {
    enum { SHOWN_MAX = 20 };
    size_t count = 0, shown = 0;
    char path[PATH_MAX + 32];
    for (const char *line = note, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        char *rest;
        long pid = strtol(line, &rest, 10);
        if (pid <= 0 || rest == line || rest > end) continue;
        /* a pid noted again (a process that exec'd another traced one) is
         * named by its last line: the one whose trace the file holds */
        size_t plen = (size_t)(rest - line);
        int later = 0;
        for (const char *l = end + 1, *e; !later && (e = strchr(l, '\n')) != NULL; l = e + 1)
            later = strncmp(l, line, plen) == 0 && l[plen] == ' ';
        if (later) continue;
        snprintf(path, sizeof path, "%s.%ld", trace, pid);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (count++ == 0)
            fprintf(out, "  traces of the run's other processes (read each with `neap report FILE`):\n");
        if (shown >= SHOWN_MAX) continue;
        shown++;
        char cmd[200];
        while (*rest == ' ') rest++;
        neap_cli_escape(cmd, sizeof cmd, rest, (size_t)(end - rest));
        fprintf(out, "    %s  (pid %ld: %s)\n", path, pid, cmd);
    }
    if (count > shown)
        fprintf(out, "    and %zu more: %s.<pid>\n", count - shown, trace);
}

/* The summary of the run to out (closed here unless it is stderr), and the
 * program's statistics record removed.  Nothing is printed with -q, nor when
 * CMD never ran (status 127 or 126 and no record: exec failed, and said so). */
static void run_report(const run_options_t *o, FILE *out, pid_t pid, int status,
                       double seconds, const struct rusage *ru) {
    int not_run = WIFEXITED(status) && (WEXITSTATUS(status) == 127 || WEXITSTATUS(status) == 126);
    /* the record is read and removed only in the user's own directory, as
     * neap stats does (a directory the library refused holds none) */
    neap_cli_record_t r;
    char err[512];
    int dir = neap_cli_stats_dir(err, sizeof err);
    int rc = dir >= 0 ? neap_cli_record_read(dir, pid, &r, err, sizeof err)
                      : dir == NEAP_CLI_DIR_NONE ? 1 : -2;
    int shown = !o->quiet && !(not_run && rc == 1);
    if (shown) run_summary(out, o->cmd, status, seconds, ru, rc, &r, err);
    char *traces = NULL;
    if (dir >= 0) {
        neap_cli_record_remove(dir, pid);
        run_python_note(dir, pid, out, shown);
        /* the trace's note for `neap mark` (src/trace/trace.c), left when the
         * program was killed or ended by _exit */
        char note[40];
        snprintf(note, sizeof note, "%ld.trace", (long)pid);
        neap_cli_file_remove(dir, note);
        traces = run_traces_note(dir, pid);
        close(dir);
    }
    if (shown) {
        if (o->trace != NULL)
            fprintf(out, "  trace: %s (read it with `neap report %s`)\n", o->trace, o->trace);
        if (o->trace != NULL && traces != NULL) run_traces_list(out, o->trace, traces);
        if (out != stderr && fclose(out) != 0)
            fprintf(stderr, "neap run: error writing %s: %s\n", o->output, strerror(errno));
    } else if (out != stderr) {
        fclose(out);
    }
    free(traces);
}

/* Ends neap run as the child ended: dies of the child's signal (without a
 * core file of its own), or, SIGINT and SIGQUIT restored, returns the
 * child's exit status for main to exit with. */
static int run_exit(int status, const run_signals_t *saved) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        fflush(NULL);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;  /* a signal whose default does not kill: the shell's status */
    }
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGQUIT, &saved->old_quit, NULL);
    return WEXITSTATUS(status);
}

int neap_cli_run(int argc, char **argv) {
    run_options_t o;
    int parsed = run_parse(argc, argv, &o);
    if (parsed != 0) return parsed > 0 ? NEAP_CLI_OK : NEAP_CLI_USAGE;
    if (o.trace != NULL && run_trace_create(&o) != 0) return NEAP_CLI_USAGE;
    char lib[PATH_MAX];
    int st = run_lib(&o, lib, sizeof lib);
    if (st != NEAP_CLI_OK) return st;
    FILE *out;
    if (run_output(&o, &out) != 0) return NEAP_CLI_USAGE;
    run_env_t env;
    if (run_env_build(&o, lib, &env) != 0) {
        if (out != stderr) fclose(out);
        return NEAP_CLI_FAILED;
    }

    double start = run_now();
    pid_t pid = run_start(&o, &env);
    run_env_free(&env);
    run_signals_t saved;
    int status;
    struct rusage ru;
    if (pid < 0 || run_wait(pid, &saved, &status, &ru) != 0) {
        if (out != stderr) fclose(out);
        return NEAP_CLI_FAILED;
    }
    double seconds = run_now() - start;

    if (o.trace != NULL) run_trace_end(o.trace, status);
    run_report(&o, out, pid, status, seconds, &ru);
    return run_exit(status, &saved);
}

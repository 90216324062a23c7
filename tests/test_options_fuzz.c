/* test_options_fuzz.c -- the NEAP_* environment options (src/core/options.c)
 * on malformed, extreme and damaged values (label: unit).
 *
 *   test_options_fuzz fuzz [N]      N runs (default 800, times
 *                                   NEAP_TEST_SCALE), each with every option
 *                                   set to a mutant: 14 values a run
 *   test_options_fuzz regress DIR   the settings kept in DIR (*.env: entries
 *                                   NAME=VALUE, NUL- or newline-separated)
 *
 * The options are read once, when the library starts, so each run is this
 * program executed again (in a child whose CPU time is limited, as in
 * neap_fuzz.h) with the values in its environment; it prints what
 * neap_option_get says of each option.  A value is a seed -- valid ones
 * ("8MiB", "4m", "1g", "on", "7ms", "-1"), each option's bounds and the
 * values just past them written in every unit, values whose digits or
 * whose unit overflow (2^34 GiB is 2^64 bytes), garbage ("0x10", "1e3",
 * " 1", "+1", "1kk", empty), a 5000-byte value -- with 0 to 2 byte-level
 * changes (seeded; NEAP_FUZZ_SEED picks another seed).
 *
 * Each run must exit 0, and for each option the value in effect must be
 * what a reading of the documented syntax here gives: the number, times
 * 1024^k for a K, M or G suffix (B or iB after it) of a byte size, an "ms"
 * suffix on a duration, the words of a boolean, when that is within the
 * option's range; else the default, with a warning naming the variable on
 * stderr (none for a value taken).  The ranges are the ones neap_option_set
 * accepts, found by asking it; the defaults are what a run without any
 * NEAP_* variable has.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>

#include "neap.h"
#include "neap_fuzz.h"

enum { NOPT = NEAP_OPTION_COUNT };
typedef enum { U_NUM, U_BYTES, U_MS, U_BOOL } unit_t;

typedef struct {
    const char *name;
    unit_t unit;
    long def, min, max;
} opt_t;
static opt_t opt[NOPT];

/* The units, as options.c documents them. */
static unit_t unit_of(const char *name) {
    static const char *const bytes[] = {"PURGE_MAX", "TRACE_SAMPLE"};
    static const char *const ms[] = {"PURGE_DELAY", "PUBLISH"};
    static const char *const bools[] = {"SHOW_STATS",  "VERBOSE",      "BACKGROUND",
                                        "PURGE_BATCH", "DEBUG_MALLOC", "MESH"};
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        if (strcmp(name, bytes[i]) == 0) return U_BYTES;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (strcmp(name, ms[i]) == 0) return U_MS;
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
        if (strcmp(name, bools[i]) == 0) return U_BOOL;
    return U_NUM;
}

/* --- the documented syntax ---------------------------------------------------------- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int word_is(const char *s, const char *w) {
    while (*s && *w && lower((unsigned char)*s) == *w) s++, w++;
    return *s == 0 && *w == 0;
}

/* 1 and *out set when s is a value of the unit (range not checked), with
 * the exact value in 128 bits; 0 when malformed. */
static int ref_value(const char *s, unit_t u, __int128 *out) {
    if (u == U_BOOL) {
        if (word_is(s, "1") || word_is(s, "on") || word_is(s, "true") || word_is(s, "yes")) {
            *out = 1;
            return 1;
        }
        if (word_is(s, "0") || word_is(s, "off") || word_is(s, "false") || word_is(s, "no")) {
            *out = 0;
            return 1;
        }
        return 0;
    }
    int neg = *s == '-';
    s += neg;
    if (*s < '0' || *s > '9') return 0;
    __int128 v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v > (__int128)1 << 80) v = (__int128)1 << 80; /* far past every range */
    }
    if (*s != 0) {
        if (u == U_MS && word_is(s, "ms")) {
            /* a duration's unit */
        } else if (u == U_BYTES) {
            int shift = lower((unsigned char)*s) == 'k' ? 10 : lower((unsigned char)*s) == 'm' ? 20
                      : lower((unsigned char)*s) == 'g' ? 30 : -1;
            if (shift < 0) return 0;
            s++;
            if (!(*s == 0 || word_is(s, "b") || word_is(s, "ib"))) return 0;
            v <<= shift;
        } else {
            return 0;
        }
    }
    *out = neg ? -v : v;
    return 1;
}

/* What option i is when its variable holds s (NULL: unset); *warn set when
 * a warning is due. */
static long expect(int i, const char *s, int *warn) {
    *warn = 0;
    if (s == NULL || *s == 0) return opt[i].def;
    __int128 v;
    if (ref_value(s, opt[i].unit, &v) && v >= opt[i].min && v <= opt[i].max) return (long)v;
    *warn = 1;
    return opt[i].def;
}

/* --- a run ---------------------------------------------------------------------------- */

/* A setting: a value per option (NULL: unset). */
typedef struct {
    char *val[NOPT];
} setting_t;

static char **base_env; /* this process's environment but its NEAP_* variables */

/* Runs this program's `child` section with setting s; 0, or -1 with why.
 * *out_text, *err_text: its stdout and stderr (malloc'd). */
static int run_child(const setting_t *s, char **out_text, char **err_text, char *why, size_t cap) {
    size_t nenv = 0;
    while (base_env[nenv]) nenv++;
    char **env = calloc(nenv + NOPT + 1, sizeof *env);
    CHECK(env != NULL);
    memcpy(env, base_env, nenv * sizeof *env);
    size_t k = nenv;
    for (int i = 0; i < NOPT; i++) {
        if (s->val[i] == NULL) continue;
        size_t n = strlen(opt[i].name) + strlen(s->val[i]) + 7;
        env[k] = malloc(n);
        CHECK(env[k] != NULL);
        snprintf(env[k++], n, "NEAP_%s=%s", opt[i].name, s->val[i]);
    }
    const char *outp = fuzz_path("out.txt"), *errp = fuzz_path("err.txt");
    unlink(outp);
    unlink(errp);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {fuzz_cpu, fuzz_cpu + 5};
        setrlimit(RLIMIT_CPU, &rl);
        int in = open("/dev/null", O_RDONLY); /* NEAP_STATS_FD=0 writes nowhere that matters */
        if (in < 0 || dup2(in, 0) != 0) _exit(126);
        int o = open(outp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) != 1 || dup2(e, 2) != 2) _exit(126);
        char *argv[] = {(char *)"test_options_fuzz", (char *)"child", NULL};
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    for (size_t j = nenv; j < k; j++) free(env[j]);
    free(env);
    int status;
    while (waitpid(pid, &status, 0) < 0) CHECK(errno == EINTR);
    size_t n;
    *out_text = fuzz_read(outp, &n);
    *err_text = fuzz_read(errp, &n);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, cap, "killed by signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGXCPU ? ": its work is unbounded (a hang)" : "");
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, cap, "exit status %d", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

/* The value a run printed for option i; 0 when it printed none. */
static int printed(const char *out, int i, long *v) {
    char key[64];
    int n = snprintf(key, sizeof key, "%s ", opt[i].name);
    for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, key, (size_t)n) == 0) return sscanf(l + n, "%ld", v) == 1;
    return 0;
}

/* Does err hold a warning about option i? */
static int warned(const char *err, int i) {
    char key[80];
    snprintf(key, sizeof key, "malformed or out-of-range option: NEAP_%s=", opt[i].name);
    return strstr(err, key) != NULL;
}

static int check_setting(const setting_t *s, char *why, size_t cap) {
    char *out, *err;
    int rc = run_child(s, &out, &err, why, cap);
    fuzz_tally->extra++;
    for (int i = 0; i < NOPT && rc == 0; i++) {
        int warn;
        long want = expect(i, s->val[i], &warn), got;
        if (s->val[i] != NULL && *s->val[i] != 0) {
            fuzz_tally->runs++;
            fuzz_tally->rejected += (unsigned)warn;
        }
        if (!printed(out, i, &got)) {
            snprintf(why, cap, "NEAP_%s: no value printed", opt[i].name);
            rc = -1;
        } else if (got != want) {
            snprintf(why, cap, "NEAP_%s=%.200s gives %ld, not %ld", opt[i].name, s->val[i], got, want);
            rc = -1;
        } else if (warned(err, i) != warn) {
            snprintf(why, cap, "NEAP_%s=%.200s: %s", opt[i].name, s->val[i],
                     warn ? "refused without a warning" : "taken, with a warning");
            rc = -1;
        } else if (strpbrk(err, "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f") != NULL) {
            snprintf(why, cap, "a control byte of a value reached stderr raw");
            rc = -1;
        } else if (strstr(err, "Sanitizer") != NULL || strstr(err, "runtime error") != NULL) {
            snprintf(why, cap, "a sanitizer reported an error");
            rc = -1;
        }
    }
    if (rc != 0) fprintf(stderr, "--- its stderr:\n%.2000s\n", err);
    free(out);
    free(err);
    return rc;
}

/* A setting as kept: NAME=VALUE entries, NUL-separated. */
static fuzz_buf_t setting_bytes(const setting_t *s) {
    fuzz_buf_t b = {NULL, 0};
    b = fuzz_buf_of("", 0);
    for (int i = 0; i < NOPT; i++) {
        if (s->val[i] == NULL) continue;
        fuzz_splice(&b, b.len, 0, opt[i].name, strlen(opt[i].name));
        fuzz_splice(&b, b.len, 0, "=", 1);
        fuzz_splice(&b, b.len, 0, s->val[i], strlen(s->val[i]) + 1);
    }
    return b;
}

/* The setting of kept bytes: entries separated by NUL or, when there is no
 * NUL, by newlines; NAME is an option's name, with or without NEAP_. */
static void setting_parse(setting_t *s, const uint8_t *p, size_t len) {
    memset(s, 0, sizeof *s);
    int sep = memchr(p, 0, len) ? 0 : '\n';
    for (size_t at = 0; at < len;) {
        const uint8_t *e = memchr(p + at, sep, len - at);
        size_t n = e ? (size_t)(e - p) - at : len - at;
        char *entry = malloc(n + 1);
        CHECK(entry != NULL);
        memcpy(entry, p + at, n);
        entry[n] = 0;
        at += n + 1;
        char *eq = strchr(entry, '=');
        const char *name = strncmp(entry, "NEAP_", 5) == 0 ? entry + 5 : entry;
        int found = 0;
        for (int i = 0; eq && i < NOPT; i++)
            if ((size_t)(eq - name) == strlen(opt[i].name) &&
                strncmp(name, opt[i].name, (size_t)(eq - name)) == 0) {
                free(s->val[i]);
                s->val[i] = malloc(strlen(eq + 1) + 1);
                CHECK(s->val[i] != NULL);
                strcpy(s->val[i], eq + 1);
                found = 1;
            }
        CHECKF(found || n == 0, "not an option setting: %s", entry);
        free(entry);
    }
}

static void setting_free(setting_t *s) {
    for (int i = 0; i < NOPT; i++) free(s->val[i]);
}

/* neap_fuzz.h's inputs are kept settings. */
static int check_input(const fuzz_input_t *in, char *why, size_t cap) {
    setting_t s;
    setting_parse(&s, in->p, in->len);
    int rc = check_setting(&s, why, cap);
    setting_free(&s);
    return rc;
}

/* --- mutants ----------------------------------------------------------------------------- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    char *s = malloc(strlen(buf) + 1);
    CHECK(s != NULL);
    strcpy(s, buf);
    return s;
}

/* A value for option i before any byte-level change. */
static char *seed_value(int i) {
    static const char *const any[] = {
        "10", "0", "1", "-1", "-0", "8MiB", "4m", "1g", "1G", "1024k", "3KB", "2kib", "7ms", "7MS",
        "on", "ON", "true", "yes", "off", "no", "False", "",
        /* garbage */
        " ", "abc", "1 ", " 1", "+1", "0x10", "1e3", "1.5", "--1", "-", "k", "1kk", "1 k", "1t",
        "1b", "1kibb", "1m s", "ms", "0ms", "1mss", "onn", "y", "\t1", "1\n", "1\r", "\xc2\xb9",
        /* overflow: digits, and a unit that takes the value past 2^64 */
        "17179869184g", "17179869184G", "34359738368g", "17592186044416m", "18014398509481984k",
        "1125899906842624", "1125899906842625", "1125899906842624g", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "18446744073709551616",
        "99999999999999999999999999", "-99999999999999999999", "8589934592g", "9007199254740992k",
    };
    enum { NANY = sizeof any / sizeof any[0] };
    const opt_t *o = &opt[i];
    switch (fuzz_pick(6)) {
    case 0: case 1: case 2: {
        const char *v = any[fuzz_pick(NANY)];
        char *s = malloc(strlen(v) + 1);
        CHECK(s != NULL);
        strcpy(s, v);
        return s;
    }
    case 3: { /* a bound, or just past it, in a unit */
        long b = fuzz_pick(2) ? o->min : o->max;
        long d = (long)fuzz_pick(3) - 1;
        long v = b + d;
        if (o->unit == U_BYTES && fuzz_pick(2)) {
            static const char *const suf[] = {"k", "m", "g", "KiB", "MB", "Gib"};
            int k = (int)fuzz_pick(3);
            return fmt("%ld%s", (b >> (10 * (k + 1))) + d, suf[k + 3 * (int)fuzz_pick(2)]);
        }
        if (o->unit == U_MS && fuzz_pick(2)) return fmt("%ldms", v);
        return fmt("%ld", v);
    }
    case 4: { /* a long value */
        size_t n = 5000;
        char *s = malloc(n + 1);
        CHECK(s != NULL);
        for (size_t k = 0; k < n; k++) s[k] = (char)(fuzz_pick(4) ? '0' + (int)fuzz_pick(10) : '9');
        s[0] = fuzz_pick(2) ? '0' : '1';
        s[n] = 0;
        return s;
    }
    default: /* an ordinary value in range */
        return fmt("%ld", o->min + (long)fuzz_pick((size_t)(o->max - o->min < 100000 ? o->max - o->min + 1 : 100000)));
    }
}

static void mutant(setting_t *s) {
    for (int i = 0; i < NOPT; i++) {
        s->val[i] = NULL;
        if (fuzz_pick(8) == 0) continue; /* unset */
        char *v = seed_value(i);
        fuzz_buf_t b = {(uint8_t *)v, strlen(v)};
        for (size_t k = fuzz_pick(3); k > 0; k--) fuzz_bytes(&b);
        for (size_t k = 0; k < b.len; k++)
            if (b.p[k] == 0) b.p[k] = 1; /* an environment cannot hold NUL */
        fuzz_splice(&b, b.len, 0, "", 1);
        s->val[i] = (char *)b.p;
    }
}

/* --- the options' table: names from the library, ranges asked of it ----------------- */

/* Whether neap_option_set takes v for option i as in its range: set, or
 * refused with EBUSY, an option fixed at start (NEAP_DEBUG_MALLOC,
 * NEAP_MESH) whose range check passed. */
static int in_range(int i, long v) {
    errno = 0;
    return neap_option_set((neap_option_t)i, v) == 0 || errno == EBUSY;
}

/* The smallest (dir -1) or largest (dir 1) value neap_option_set takes for
 * option i, from a value it takes. */
static long probe(int i, long from, int dir) {
    long ok = from, bad = dir < 0 ? LONG_MIN : LONG_MAX;
    if (in_range(i, bad)) return bad;
    while (dir < 0 ? (__int128)ok - bad > 1 : (__int128)bad - ok > 1) {
        long mid = (long)(((__int128)ok + bad) / 2);
        if (in_range(i, mid)) ok = mid;
        else bad = mid;
    }
    return ok;
}

static void table(void) {
    setting_t none;
    memset(&none, 0, sizeof none);
    for (int i = 0; i < NOPT; i++) {
        opt[i].name = neap_option_name((neap_option_t)i);
        CHECK(opt[i].name != NULL);
        opt[i].unit = unit_of(opt[i].name);
    }
    char *out, *err, why[256];
    CHECKF(run_child(&none, &out, &err, why, sizeof why) == 0, "%s", why);
    for (int i = 0; i < NOPT; i++) {
        CHECKF(printed(out, i, &opt[i].def), "NEAP_%s: no default printed", opt[i].name);
        opt[i].min = probe(i, opt[i].def, -1);
        opt[i].max = probe(i, opt[i].def, 1);
        CHECK(neap_option_set((neap_option_t)i, neap_option_get((neap_option_t)i)) == 0);
        CHECKF(opt[i].unit != U_BOOL || (opt[i].min == 0 && opt[i].max == 1), "NEAP_%s", opt[i].name);
    }
    free(out);
    free(err);
}

static void fuzz(size_t count) {
    fuzz_input_t *batch = calloc(FUZZ_BATCH, sizeof *batch);
    CHECK(batch != NULL);
    size_t nb = 0;
    for (size_t i = 0; i < count; i++) {
        setting_t s;
        mutant(&s);
        fuzz_buf_t b = setting_bytes(&s);
        setting_free(&s);
        fuzz_input_t *in = &batch[nb++];
        in->p = b.p;
        in->len = b.len;
        snprintf(in->label, sizeof in->label, "run %zu", i);
        if (nb == FUZZ_BATCH || i + 1 == count) {
            fuzz_inputs(check_input, batch, nb, "env");
            for (size_t j = 0; j < nb; j++) free(batch[j].p);
            nb = 0;
        }
    }
    free(batch);
}

static void usage(void) {
    fprintf(stderr, "usage: test_options_fuzz fuzz [N] | regress DIR\n");
    exit(2);
}

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "child") == 0) {
        neap_free(neap_malloc(1)); /* the library started, its options read */
        for (int i = 0; i < NOPT; i++)
            printf("%s %ld\n", neap_option_name((neap_option_t)i), neap_option_get((neap_option_t)i));
        fflush(stdout);
        return 0;
    }
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    base_env = calloc(n + 1, sizeof *base_env);
    CHECK(base_env != NULL);
    n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "NEAP_", 5) != 0) base_env[n++] = *e;
    fuzz_setup("options-fuzz", 20261206);
    table();
    const char *what;
    if (strcmp(argv[1], "fuzz") == 0 && argc <= 3) {
        fuzz(test_scaled(argc == 3 ? strtoul(argv[2], NULL, 10) : 800));
        what = "option values";
    } else if (strcmp(argv[1], "regress") == 0 && argc == 3) {
        fuzz_regress(check_input, argv[2], "env");
        what = "kept option values";
    } else {
        usage();
        return 2;
    }
    return fuzz_finish("test_options_fuzz", what, "processes run");
}

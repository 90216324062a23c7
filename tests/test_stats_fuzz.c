/* test_stats_fuzz.c -- statistics records (the files a process on neap
 * publishes in /tmp/neap-<uid>/, src/services/publish.c) read back by the
 * record parser and by `neap stats` (cli/record.c, cli/stats.c), on damaged
 * records (labels: cli, unit).  Built from the neap command's subcommands
 * (neap_cli_objs): both run in-process, in forked children (neap_fuzz.h).
 *
 *   test_stats_fuzz fuzz [N]        N mutants (default 8000, times
 *                                   NEAP_TEST_SCALE) of valid records
 *   test_stats_fuzz regress DIR     the same checks on the records kept in
 *                                   DIR (*.rec: inputs that once failed)
 *
 * The base records: one the library writes itself (this program run again
 * with NEAP_RUN_PID set to its own pid: its exit record), and records
 * written here in the same format (every key, extreme values, all size
 * classes, a command line with control characters and UTF-8).  A mutant is
 * a base with 1 to 4 seeded changes (xorshift64* from a fixed seed;
 * NEAP_FUZZ_SEED picks another): bytes flipped, set, inserted or dropped,
 * lines dropped, duplicated, swapped or cut, values replaced by boundary
 * values (2^64-1, 2^64, -1, " -5", "+7", "0x10", "1e3", empty, 600 digits),
 * class lines with fields out of range or missing, unknown keys, long lines,
 * CRLF endings, the first or "end" line changed, a NUL byte, lines of
 * another base spliced in.
 *
 * Each input must pass these checks:
 *   1. the parser (neap_cli_record_parse) accepts it exactly when a strict
 *      reading of the format here does (numbers are decimal digits that fit,
 *      pid 1..2^31-1, class 1..NEAP_CLASS_MAX with six numbers), and then
 *      holds each value that reading finds: nothing is lost, wrapped or
 *      made up.  A refusal comes with a message.  The command line and
 *      version it keeps, the messages and the memory and class tables it
 *      prints hold no control byte;
 *   2. written as the record of a live process (the child checking it),
 *      `neap stats PID` returns 0 exactly when the parser accepts it as
 *      that process's (and the file holds no NUL and is not too large),
 *      else 1 with a message
 *      naming the file; its output holds no control byte; every eighth
 *      input `neap stats` (the list) returns 0 and names the process.
 * Step 2 is left out, and said so, when /tmp/neap-<uid> is not the user's
 * own 0700 directory.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stddef.h>

#include "cli.h"
#include "neap_fuzz.h"

#define PID_MARK "4242424" /* the base records' pid: the checking child's own in step 2 */

/* --- a strict reading of a record ------------------------------------------------ */

/* The numeric keys, and where the parser keeps each. */
static const struct {
    const char *key;
    size_t offset;
} num_keys[] = {
#define STAT_KEY(k) {#k, offsetof(neap_cli_record_t, stats.k)}
    STAT_KEY(arenas_allocated), STAT_KEY(arenas_freed),      STAT_KEY(arenas_current),
    STAT_KEY(arenas_highwater), STAT_KEY(arenas_orphaned),   STAT_KEY(pools_current),
    STAT_KEY(pages_used),       STAT_KEY(pages_dirty),       STAT_KEY(bytes_live),
    STAT_KEY(bytes_in_pools),   STAT_KEY(bytes_huge),        STAT_KEY(bytes_huge_cached),
    STAT_KEY(bytes_mapped),     STAT_KEY(bytes_purged),      STAT_KEY(bytes_unmapped),
    STAT_KEY(huge_current),     STAT_KEY(large_current),     STAT_KEY(heaps_current),
    STAT_KEY(mesh_pages),       STAT_KEY(meshes),            STAT_KEY(unmeshes),
    STAT_KEY(mesh_ns),
#undef STAT_KEY
    {"mesh", offsetof(neap_cli_record_t, mesh)},
    {"rss", offsetof(neap_cli_record_t, rss)},
    {"peak_rss", offsetof(neap_cli_record_t, peak_rss)},
    {"vsize", offsetof(neap_cli_record_t, vsize)},
    {"time_ms", offsetof(neap_cli_record_t, time_ms)},
    {"start_ms", offsetof(neap_cli_record_t, start_ms)},
    {"interval_ms", offsetof(neap_cli_record_t, interval_ms)},
};
enum { NUM_KEYS = sizeof num_keys / sizeof num_keys[0] };

typedef struct {
    size_t num[NUM_KEYS];
    size_t cls[NEAP_CLASS_MAX][5];
    unsigned long long pid;
    int state; /* 0 none, 1 running, 2 exited */
} ref_record_t;

/* Decimal digits only, no sign or space, within SIZE_MAX. */
static int ref_number(const char *s, size_t len, size_t *out) {
    size_t v = 0;
    if (len == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (SIZE_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The record as the format says (publish.c): "neap-stats 1" first, "key
 * value" lines up to "end" (keys not known skipped), a pid and a state.
 * Lines are read as the parser reads them, up to their first 511 bytes.
 * 0, or -1 with why. */
static int ref_parse(const char *text, ref_record_t *r, char *why, size_t cap) {
    memset(r, 0, sizeof *r);
    int line_no = 0;
    for (const char *line = text;;) {
        const char *nl = strchr(line, '\n');
        if (nl == NULL) {
            snprintf(why, cap, "no \"end\" line");
            return -1;
        }
        size_t len = (size_t)(nl - line) < 511 ? (size_t)(nl - line) : 511;
        const char *l = line;
        line = nl + 1;
        if (++line_no == 1) {
            if (len != 12 || memcmp(l, "neap-stats 1", 12) != 0) {
                snprintf(why, cap, "line 1 is not \"neap-stats 1\"");
                return -1;
            }
            continue;
        }
        if (len == 3 && memcmp(l, "end", 3) == 0) break;
        const char *sp = memchr(l, ' ', len);
        if (sp == NULL) {
            snprintf(why, cap, "line %d has no value", line_no);
            return -1;
        }
        size_t klen = (size_t)(sp - l), vlen = len - klen - 1;
        const char *v = sp + 1;
#define KEY_IS(k) (klen == strlen(k) && memcmp(l, k, klen) == 0)
        if (KEY_IS("pid")) {
            size_t pid;
            if (ref_number(v, vlen, &pid) != 0 || pid == 0 || pid > 0x7fffffff) {
                snprintf(why, cap, "line %d: not a pid", line_no);
                return -1;
            }
            r->pid = pid;
        } else if (KEY_IS("state")) {
            if (vlen == 7 && memcmp(v, "running", 7) == 0) r->state = 1;
            else if (vlen == 6 && memcmp(v, "exited", 6) == 0) r->state = 2;
            else {
                snprintf(why, cap, "line %d: unknown state", line_no);
                return -1;
            }
        } else if (KEY_IS("class")) {
            /* six numbers, one space apart */
            size_t f[6];
            int n = 0;
            const char *p = v, *end = v + vlen;
            for (; n < 6; n++) {
                const char *q = memchr(p, ' ', (size_t)(end - p));
                size_t flen = q ? (size_t)(q - p) : (size_t)(end - p);
                if (ref_number(p, flen, &f[n]) != 0 || (q == NULL) != (n == 5)) break;
                p = q ? q + 1 : end;
            }
            if (n != 6 || f[0] < 1 || f[0] > NEAP_CLASS_MAX) {
                snprintf(why, cap, "line %d: malformed class line", line_no);
                return -1;
            }
            memcpy(r->cls[f[0] - 1], &f[1], sizeof r->cls[0]);
        } else {
            for (int i = 0; i < NUM_KEYS; i++) {
                if (!KEY_IS(num_keys[i].key)) continue;
                if (ref_number(v, vlen, &r->num[i]) != 0) {
                    snprintf(why, cap, "line %d: not a number", line_no);
                    return -1;
                }
                break;
            }
        }
#undef KEY_IS
    }
    if (r->pid == 0 || r->state == 0) {
        snprintf(why, cap, "no pid or state line");
        return -1;
    }
    return 0;
}

/* The first control byte of s[0..n) (C0 but for '\n' when nl_ok, DEL, C1 in
 * UTF-8, or a byte that is not well-formed UTF-8), or -1 when none. */
static long control_at(const unsigned char *s, size_t n, int nl_ok) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && !(nl_ok && c == '\n')) || c == 0x7f) return (long)i;
            i++;
            continue;
        }
        size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (k == 0 || i + k > n) return (long)i;
        unsigned long cp = c & (k == 2 ? 0x1fu : k == 3 ? 0x0fu : 0x07u);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return (long)i;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if (cp <= 0x9f || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return (long)i;
        i += k;
    }
    return -1;
}

/* --- the checks (in a child) ------------------------------------------------------- */

static int stats_dir_ok; /* /tmp/neap-<uid> usable: step 2 runs */

/* The text of an input with PID_MARK replaced by pid (malloc'd, NUL-terminated
 * after its bytes); *len its length. */
static char *with_pid(const fuzz_input_t *in, long pid, size_t *len) {
    char p[24];
    int pl = snprintf(p, sizeof p, "%ld", pid);
    size_t ml = strlen(PID_MARK), n = 0;
    char *out = malloc(in->len * ((size_t)pl > ml ? 2 : 1) + 1);
    CHECK(out != NULL);
    for (size_t i = 0; i < in->len;) {
        if (in->len - i >= ml && memcmp(in->p + i, PID_MARK, ml) == 0) {
            memcpy(out + n, p, (size_t)pl);
            n += (size_t)pl;
            i += ml;
        } else {
            out[n++] = (char)in->p[i++];
        }
    }
    out[n] = 0;
    *len = n;
    return out;
}

/* fd `fd` to a new file at path; returns the saved descriptor. */
static int redirect(int fd, const char *path) {
    fflush(NULL);
    unlink(path);
    int saved = dup(fd), f = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(saved >= 0 && f >= 0);
    CHECK(dup2(f, fd) == fd);
    close(f);
    return saved;
}
static void restore(int fd, int saved) {
    fflush(NULL);
    CHECK(dup2(saved, fd) == fd);
    close(saved);
}

static int check_record(const fuzz_input_t *in, char *why, size_t cap) {
    long pid = (long)getpid();
    size_t len;
    char *text = with_pid(in, pid, &len);
    int rc = -1;
    /* 1. the parser against the strict reading */
    neap_cli_record_t r;
    ref_record_t ref;
    char err[512], rwhy[128];
    err[0] = 0;
    int got = neap_cli_record_parse(text, &r, err, sizeof err);
    int want = ref_parse(text, &ref, rwhy, sizeof rwhy);
    fuzz_tally->runs++;
    if (got != 0 && got != -1) {
        snprintf(why, cap, "the parser returned %d", got);
        goto out;
    }
    if (got == 0 && want != 0) {
        snprintf(why, cap, "the parser accepted a record the format refuses (%s)", rwhy);
        goto out;
    }
    if (got != 0 && want == 0) {
        snprintf(why, cap, "the parser refused a valid record: %s", err);
        goto out;
    }
    if (got != 0) {
        fuzz_tally->rejected++;
        if (err[0] == 0) {
            snprintf(why, cap, "refused without a message");
            goto out;
        }
        if (control_at((const unsigned char *)err, strlen(err), 0) >= 0) {
            snprintf(why, cap, "a control byte in the message");
            goto out;
        }
    } else {
        if ((unsigned long long)r.pid != ref.pid ||
            strcmp(r.state, ref.state == 1 ? "running" : "exited") != 0) {
            snprintf(why, cap, "pid %ld state %s, the record says %llu, %d", r.pid, r.state, ref.pid,
                     ref.state);
            goto out;
        }
        for (int i = 0; i < NUM_KEYS; i++) {
            size_t v;
            memcpy(&v, (const char *)&r + num_keys[i].offset, sizeof v);
            if (v != ref.num[i]) {
                snprintf(why, cap, "%s is %zu, the record says %zu", num_keys[i].key, v, ref.num[i]);
                goto out;
            }
        }
        for (int c = 0; c < NEAP_CLASS_MAX; c++) {
            const neap_class_stats_t *cs = &r.stats.classes[c];
            size_t v[5] = {cs->block_size, cs->pools, cs->blocks_used, cs->blocks_free,
                           cs->pools_made};
            if (memcmp(v, ref.cls[c], sizeof v) != 0) {
                snprintf(why, cap, "class %d is not what the record says", c + 1);
                goto out;
            }
        }
        if (control_at((const unsigned char *)r.command, strnlen(r.command, sizeof r.command), 0) >= 0 ||
            control_at((const unsigned char *)r.version, strnlen(r.version, sizeof r.version), 0) >= 0 ||
            memchr(r.command, 0, sizeof r.command) == NULL || memchr(r.version, 0, sizeof r.version) == NULL) {
            snprintf(why, cap, "the command line or version holds a control byte, or no NUL");
            goto out;
        }
        /* the tables, shown */
        const char *shown = fuzz_path("shown.txt");
        unlink(shown);
        FILE *f = fopen(shown, "w");
        CHECK(f != NULL);
        neap_cli_record_memory(f, &r);
        neap_cli_record_classes(f, &r, 12);
        neap_cli_record_classes(f, &r, 0);
        CHECK(fclose(f) == 0);
        size_t n;
        char *out = fuzz_read(shown, &n);
        long at = control_at((const unsigned char *)out, n, 1);
        free(out);
        if (at >= 0) {
            snprintf(why, cap, "a control byte at %ld of the tables shown", at);
            goto out;
        }
    }
    /* 2. neap stats PID, on the same text as this process's record */
    if (stats_dir_ok) {
        char path[128];
        neap_cli_record_path(pid, path, sizeof path);
        fuzz_write(path, text, len);
        char spid[24];
        snprintf(spid, sizeof spid, "%ld", pid);
        char *argv[] = {(char *)"stats", spid, NULL};
        int list = fuzz_tally->runs % 8 == 0;
        const char *outp = fuzz_path("out.txt"), *errp = fuzz_path("err.txt");
        int so = redirect(1, outp), se = redirect(2, errp);
        int st = neap_cli_stats(2, argv);
        int st_list = list ? neap_cli_stats(1, argv) : 0;
        restore(1, so);
        restore(2, se);
        unlink(path);
        fuzz_tally->extra += 1 + (unsigned)list;
        size_t on, en;
        char *o = fuzz_read(outp, &on), *e = fuzz_read(errp, &en);
        int readable = strlen(text) == len && len <= NEAP_CLI_RECORD_MAX;
        long at;
        if (st != 0 && st != 1) snprintf(why, cap, "neap stats PID returned %d", st);
        else if (readable && (st == 0) != (got == 0 && r.pid == pid))
            snprintf(why, cap, "neap stats PID returned %d, the parser %s", st,
                     got != 0 ? "refuses the record" : r.pid == pid ? "accepts it" : "names another pid");
        else if (!readable && st == 0) snprintf(why, cap, "neap stats PID showed an unreadable record");
        else if (st == 1 && strstr(e, path) == NULL)
            snprintf(why, cap, "neap stats PID returned 1 without a message naming the file");
        else if (strstr(e, "Sanitizer") != NULL || strstr(e, "runtime error") != NULL)
            snprintf(why, cap, "a sanitizer reported an error");
        else if ((at = control_at((const unsigned char *)o, on, 1)) >= 0 ||
                 (at = control_at((const unsigned char *)e, en, 1)) >= 0)
            snprintf(why, cap, "a control byte in the output of neap stats");
        else if (list && (st_list != 0 || strstr(o, spid) == NULL))
            snprintf(why, cap, "neap stats (the list) returned %d%s", st_list,
                     st_list == 0 ? " without this process" : "");
        else rc = 0;
        if (rc != 0) fprintf(stderr, "--- its stdout:\n%.1500s\n--- its stderr:\n%.1500s\n", o, e);
        free(o);
        free(e);
        if (rc != 0) goto out;
    }
    rc = 0;
out:
    if (rc != 0 && why[0] == 0) snprintf(why, cap, "failed");
    free(text);
    return rc;
}

/* --- base records ----------------------------------------------------------------- */

typedef struct {
    char **line; /* each without its '\n' */
    size_t n;
    int final_nl; /* the last line ends with '\n' */
} lines_t;

static lines_t lines_of(const char *text, size_t len) {
    lines_t l = {NULL, 0, 1};
    size_t at = 0;
    l.line = malloc((len + 2) * sizeof *l.line);
    CHECK(l.line != NULL);
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t e = nl ? (size_t)(nl - text) : len;
        l.line[l.n] = malloc(e - at + 1);
        CHECK(l.line[l.n] != NULL);
        memcpy(l.line[l.n], text + at, e - at);
        l.line[l.n++][e - at] = 0;
        at = e + 1;
        if (!nl) l.final_nl = 0;
    }
    return l;
}

static fuzz_buf_t text_of(const lines_t *l) {
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += strlen(l->line[i]) + 1;
    fuzz_buf_t b = {malloc(n + 1), 0};
    CHECK(b.p != NULL);
    for (size_t i = 0; i < l->n; i++) {
        size_t k = strlen(l->line[i]);
        memcpy(b.p + b.len, l->line[i], k);
        b.len += k;
        if (i + 1 < l->n || l->final_nl) b.p[b.len++] = '\n';
    }
    return b;
}

static void lines_free(lines_t *l) {
    for (size_t i = 0; i < l->n; i++) free(l->line[i]);
    free(l->line);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    CHECK(d != NULL);
    memcpy(d, s, n + 1);
    return d;
}

/* Inserts a copy of s as line at. */
static void lines_insert(lines_t *l, size_t at, const char *s) {
    char **v = realloc(l->line, (l->n + 2) * sizeof *v);
    CHECK(v != NULL);
    l->line = v;
    memmove(&v[at + 1], &v[at], (l->n - at) * sizeof *v);
    v[at] = str_dup(s);
    l->n++;
}

static void lines_drop(lines_t *l, size_t at) {
    free(l->line[at]);
    memmove(&l->line[at], &l->line[at + 1], (l->n - at - 1) * sizeof *l->line);
    l->n--;
}

enum { NBASE_MAX = 8 };
static fuzz_buf_t base[NBASE_MAX];
static const char *base_name[NBASE_MAX];
static int nbase;

static void add_base(const char *name, const char *text, size_t len) {
    CHECK(nbase < NBASE_MAX);
    base_name[nbase] = name;
    base[nbase++] = fuzz_buf_of(text, len);
}

/* A record in the library's format, every key, the values from `v`
 * (0: zeros, 1: ordinary, 2: extremes), classes from 1 to nclass. */
static void synth(const char *name, int v, int nclass, const char *state, const char *command) {
    static char text[16384];
    size_t n = 0;
    const size_t ext = SIZE_MAX;
#define OUT(...) (n += (size_t)snprintf(text + n, sizeof text - n, __VA_ARGS__))
    OUT("neap-stats 1\nversion 0.1.0\npid %s\nstate %s\n", PID_MARK, state);
    OUT("time_ms %zu\nstart_ms %zu\ninterval_ms %zu\n", v == 2 ? ext : (size_t)v * 1733000000123u,
        v == 2 ? ext : (size_t)v * 1733000000000u, v == 2 ? ext : (size_t)v * 1000);
    OUT("command %s\n", command);
    for (int i = 0; i < NUM_KEYS; i++)
        if (strcmp(num_keys[i].key, "time_ms") != 0 && strcmp(num_keys[i].key, "start_ms") != 0 &&
            strcmp(num_keys[i].key, "interval_ms") != 0)
            OUT("%s %zu\n", num_keys[i].key, v == 2 ? ext - (size_t)i : (size_t)v * (4096u + (size_t)i * 977));
    for (int c = 1; c <= nclass; c++)
        OUT("class %d %zu %zu %zu %zu %zu\n", c, (size_t)c * 16, v == 2 ? ext : (size_t)c,
            v == 2 ? ext : (size_t)c * 100, v == 2 ? ext / 3 : (size_t)c * 7, v == 2 ? ext : (size_t)c * 3);
    OUT("end\n");
#undef OUT
    CHECK(n < sizeof text);
    add_base(name, text, n);
}

/* This program run again with NEAP_RUN_PID set to its own pid: the record
 * the library writes at its exit, its pid replaced by PID_MARK.  0 when
 * none was written. */
static int real_record(const char *self) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char v[24];
        snprintf(v, sizeof v, "%ld", (long)getpid());
        setenv("NEAP_RUN_PID", v, 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2);
        execl("/proc/self/exe", self, "publish", (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) CHECK(errno == EINTR);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s publish: status %d", self, status);
    char path[128];
    neap_cli_record_path((long)pid, path, sizeof path);
    if (access(path, F_OK) != 0) return 0;
    size_t n;
    char *text = fuzz_read(path, &n);
    unlink(path);
    char spid[24];
    snprintf(spid, sizeof spid, "\npid %ld\n", (long)pid);
    char *at = strstr(text, spid);
    CHECKF(at != NULL, "the library's record has no pid line: %s", text);
    fuzz_buf_t b = fuzz_buf_of(text, n);
    fuzz_splice(&b, (size_t)(at - text) + 5, strlen(spid) - 6, PID_MARK, strlen(PID_MARK));
    add_base("library", (const char *)b.p, b.len);
    free(b.p);
    free(text);
    return 1;
}

/* --- mutations -------------------------------------------------------------------- */

static const char *const boundary[] = {
    "0", "1", "18446744073709551615", "18446744073709551616", "99999999999999999999999999",
    "-1", "-0", " -5", "+7", "", " ", "2147483647", "2147483648", "4294967296", "1e3",
    "0x10", "007", "1.5", "5 ", " 5", "\xef\xbc\x91", "9223372036854775808", "12abc",
    "-18446744073709551615", "\t3", "3\r",
};
enum { NBOUNDARY = sizeof boundary / sizeof boundary[0] };

/* A line of `line` with its value (after the first space; for class lines
 * one of its fields) replaced by s. */
static void set_value(lines_t *l, size_t i, const char *s) {
    char *line = l->line[i], *sp = strchr(line, ' ');
    if (sp == NULL) return;
    size_t from = (size_t)(sp + 1 - line), to = strlen(line);
    if (strncmp(line, "class ", 6) == 0 && fuzz_pick(4) != 0) { /* one field */
        size_t k = fuzz_pick(6);
        for (size_t j = 0; j < k; j++) {
            char *q = strchr(line + from, ' ');
            if (q == NULL) break;
            from = (size_t)(q + 1 - line);
        }
        char *q = strchr(line + from, ' ');
        to = q ? (size_t)(q - line) : to;
    }
    size_t n = strlen(s);
    char *d = malloc(from + n + strlen(line + to) + 1);
    CHECK(d != NULL);
    memcpy(d, line, from);
    memcpy(d + from, s, n);
    strcpy(d + from + n, line + to);
    free(line);
    l->line[i] = d;
}

/* A long line: digits, letters, or anything but '\n'. */
static char *long_value(size_t n) {
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    int kind = (int)fuzz_pick(3);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)xs_next(&fuzz_rng);
        s[i] = kind == 0 ? (char)('0' + c % 10) : kind == 1 ? 'x' : c == '\n' || c == 0 ? '?' : (char)c;
    }
    s[n] = 0;
    return s;
}

static void mutate(lines_t *l, fuzz_buf_t *raw, int *use_raw) {
    size_t n = l->n;
    size_t i = fuzz_pick(n ? n : 1);
    switch (fuzz_pick(17)) {
    case 0: case 1: case 2: /* bytes: on the text from now on */
        if (!*use_raw) {
            free(raw->p);
            *raw = text_of(l);
            *use_raw = 1;
        }
        fuzz_bytes(raw);
        break;
    case 3: if (n) lines_drop(l, i); break;
    case 4: if (n) lines_insert(l, fuzz_pick(n + 1), l->line[i]); break;
    case 5:
        if (n) {
            size_t j = fuzz_pick(n);
            char *t = l->line[i];
            l->line[i] = l->line[j];
            l->line[j] = t;
        }
        break;
    case 6: case 7: case 8: /* a value: a boundary one */
        if (n) set_value(l, i, boundary[fuzz_pick(NBOUNDARY)]);
        break;
    case 9: { /* a class line: index or field count off */
        static const char *const bad[] = {"class 0 16 1 1 1 1", "class 57 16 1 1 1 1",
                                          "class 56 16 1 1 1 1", "class 1 16 1 1 1",
                                          "class 1 16 1 1 1 1 1", "class -1 16 1 1 1 1",
                                          "class 18446744073709551617 1 1 1 1 1",
                                          "class 1  16 1 1 1 1", "class 1 16 1 1 1 1 ",
                                          "class 1 18446744073709551615 0 18446744073709551615 1 1",
                                          "class 2 16 1 -3 1 1", "class"};
        lines_insert(l, n ? 1 + fuzz_pick(n) : 0, bad[fuzz_pick(sizeof bad / sizeof *bad)]);
        break;
    }
    case 10: { /* an unknown key, or a line that is not "key value" */
        static const char *const odd[] = {"future_key 12", "x", "", " ", " pid 1", "end ",
                                          "END", "pid", "state", "command", "state  running",
                                          "neap-stats 1", "bytes_live  7"};
        lines_insert(l, n ? 1 + fuzz_pick(n) : 0, odd[fuzz_pick(sizeof odd / sizeof *odd)]);
        break;
    }
    case 11: { /* a long value */
        static const size_t lens[] = {300, 506, 507, 508, 600, 5000, 17000};
        char *v = long_value(lens[fuzz_pick(7)]);
        if (n) set_value(l, i, v);
        free(v);
        break;
    }
    case 12: /* the text cut anywhere */
        if (!*use_raw) {
            free(raw->p);
            *raw = text_of(l);
            *use_raw = 1;
        }
        raw->len = fuzz_pick(raw->len + 1);
        break;
    case 13: /* no final newline, or CRLF endings */
        if (fuzz_pick(2)) l->final_nl = 0;
        else
            for (size_t k = 0; k < n; k++) {
                char *d = malloc(strlen(l->line[k]) + 2);
                CHECK(d != NULL);
                strcpy(d, l->line[k]);
                strcat(d, "\r");
                free(l->line[k]);
                l->line[k] = d;
            }
        break;
    case 14: { /* lines of another base spliced in */
        const fuzz_buf_t *o = &base[fuzz_pick((size_t)nbase)];
        lines_t m = lines_of((const char *)o->p, o->len);
        size_t from = fuzz_pick(m.n), k = 1 + fuzz_pick(8);
        for (size_t j = 0; j < k && from + j < m.n; j++) lines_insert(l, fuzz_pick(l->n + 1), m.line[from + j]);
        lines_free(&m);
        break;
    }
    case 15: { /* the first line or the end line */
        static const char *const first[] = {"neap-stats 2", "neap-stats 1 ", "NEAP-STATS 1",
                                            "neap-stats", "neap-stats 01", "\xef\xbb\xbfneap-stats 1"};
        if (n && fuzz_pick(2)) {
            free(l->line[0]);
            l->line[0] = str_dup(first[fuzz_pick(6)]);
        } else {
            for (size_t k = 0; k < l->n; k++)
                if (strcmp(l->line[k], "end") == 0) {
                    lines_drop(l, k);
                    if (fuzz_pick(2)) lines_insert(l, fuzz_pick(l->n + 1), "end");
                    break;
                }
        }
        break;
    }
    default: { /* the command line: control bytes, bad UTF-8 */
        static const char *const cmd[] = {"command \x1b[2J\x1b]0;x\x07", "command \xc2\x9b" "31m",
                                          "command \xff\xfe", "command caf\xc3\xa9 \xe2\x82",
                                          "command \xed\xa0\x80", "command \xf4\x90\x80\x80",
                                          "version \x1b[31mred", "command \x7f"};
        lines_insert(l, n ? 1 + fuzz_pick(n) : 0, cmd[fuzz_pick(sizeof cmd / sizeof *cmd)]);
        break;
    }
    }
}

static void fuzz(size_t count, const char *self) {
    if (!real_record(self)) printf("test_stats_fuzz: the library wrote no record (no usable /tmp/neap-<uid>)\n");
    synth("minimal", 0, 0, "running", "true");
    synth("ordinary", 1, 12, "running", "python3 -c print(1)");
    synth("extremes", 2, NEAP_CLASS_MAX, "exited", "caf\xc3\xa9 \x1b[2J \xc2\x9b tab\there");
    const char *min = "neap-stats 1\npid " PID_MARK "\nstate running\nend\n";
    add_base("bare", min, strlen(min));
    fuzz_input_t *batch = calloc(FUZZ_BATCH, sizeof *batch);
    CHECK(batch != NULL);
    size_t nb = 0;
    for (size_t i = 0; i < count; i++) {
        int k = (int)fuzz_pick((size_t)nbase), use_raw = 0;
        lines_t l = lines_of((const char *)base[k].p, base[k].len);
        fuzz_buf_t raw = {NULL, 0};
        for (size_t j = 1 + fuzz_pick(4); j > 0; j--) {
            if (use_raw) fuzz_bytes(&raw);
            else mutate(&l, &raw, &use_raw);
        }
        fuzz_input_t *in = &batch[nb++];
        if (use_raw) {
            in->p = raw.p;
            in->len = raw.len;
        } else {
            fuzz_buf_t b = text_of(&l);
            in->p = b.p;
            in->len = b.len;
        }
        lines_free(&l);
        snprintf(in->label, sizeof in->label, "mutant %zu of %s", i, base_name[k]);
        if (nb == FUZZ_BATCH || i + 1 == count) {
            fuzz_inputs(check_record, batch, nb, "rec");
            for (size_t j = 0; j < nb; j++) free(batch[j].p);
            nb = 0;
        }
    }
    free(batch);
    for (int k = 0; k < nbase; k++) free(base[k].p);
}

static void usage(void) {
    fprintf(stderr, "usage: test_stats_fuzz fuzz [N] | regress DIR\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "publish") == 0) { /* real_record's child: a few blocks, then exit */
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = neap_malloc((size_t)16 << (i % 12));
        for (int i = 0; i < 64; i += 2) neap_free(p[i]);
        return 0;
    }
    fuzz_setup("stats-fuzz", 20261205);
    char err[256];
    int dir = neap_cli_stats_dir(err, sizeof err);
    if (dir == NEAP_CLI_DIR_NONE) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/neap-%lu", (unsigned long)getuid());
        if (mkdir(path, 0700) == 0 || errno == EEXIST) dir = neap_cli_stats_dir(err, sizeof err);
    }
    stats_dir_ok = dir >= 0;
    if (dir >= 0) close(dir);
    else printf("test_stats_fuzz: neap stats is not run (%s)\n", err);
    const char *what;
    if (strcmp(argv[1], "fuzz") == 0 && argc <= 3) {
        fuzz(test_scaled(argc == 3 ? strtoul(argv[2], NULL, 10) : 8000), argv[0]);
        what = "mutants";
    } else if (strcmp(argv[1], "regress") == 0 && argc == 3) {
        fuzz_regress(check_record, argv[2], "rec");
        what = "kept records";
    } else {
        usage();
        return 2;
    }
    return fuzz_finish("test_stats_fuzz", what, stats_dir_ok ? "neap stats runs" : NULL);
}

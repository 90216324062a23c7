/* record.c -- reading the statistics records that processes on neap
 * publish (the library's publish.c writes them), and showing them.
 *
 *   /tmp/neap-<uid>/<pid>      "key value" lines, first "neap-stats 1",
 *                              last "end"; see src/services/publish.c
 *
 * Anyone may make /tmp/neap-<uid> before the user does, so nothing in it is
 * trusted until it has passed the checks the library makes before it
 * publishes there: the directory is the user's own, mode 0700, not a
 * symbolic link (neap_cli_stats_dir); it is opened once and every record
 * is reached relative to that descriptor, never through the path again.  A
 * record is read only if it is a regular file of the user's, of at most
 * NEAP_CLI_RECORD_MAX bytes; only such a file is removed.
 *
 * A record without its first or last line, or with a malformed number, is
 * refused with a message that says which line: it is never half-shown.
 * Its text (command line, version) is kept with control characters escaped
 * (neap_cli_escape), so that no record can send escape sequences to the
 * terminal, whichever way it is shown.
 *
 * The processes of a run: neap_cli_run_program finds the program `neap run`
 * started from neap run's own pid (/proc/<pid>/stat's parent and the
 * NEAP_RUN_PID its environment holds), for `neap stats` and `neap mark`
 * given the pid a shell's $! gives.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

size_t neap_cli_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (size_t)ts.tv_sec * 1000 + (size_t)ts.tv_nsec / 1000000;
}

void neap_cli_record_path(long pid, char *buf, size_t cap) {
    snprintf(buf, cap, "/tmp/neap-%lu/%ld", (unsigned long)getuid(), pid);
}

/* The checks mirror those of _neap_os_stats_dir (src/os/os.c), by which the
 * library refuses to publish in a directory; the command cannot call it (it
 * makes the directory, and checks a path, not a descriptor).  The owner is
 * compared with the effective uid: the one whose files are read and
 * removed (root's own directory is root's, as anyone's is theirs). */
int neap_cli_stats_dir(char *err, size_t errlen) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/neap-%lu", (unsigned long)getuid());
    struct stat ls, st;
    if (lstat(dir, &ls) != 0) {
        int none = errno == ENOENT;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return none ? NEAP_CLI_DIR_NONE : NEAP_CLI_DIR_REFUSED;
    }
    if (S_ISLNK(ls.st_mode)) {
        snprintf(err, errlen, "%s is a symbolic link, not a directory", dir);
        return NEAP_CLI_DIR_REFUSED;
    }
    if (!S_ISDIR(ls.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return NEAP_CLI_DIR_REFUSED;
    }
    /* O_NOFOLLOW: what was checked above may have been replaced since; the
     * descriptor's own status is the one that counts */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return NEAP_CLI_DIR_REFUSED;
    }
    if (fstat(fd, &st) != 0 || st.st_dev != ls.st_dev || st.st_ino != ls.st_ino)
        snprintf(err, errlen, "%s was replaced while it was opened", dir);
    else if (st.st_uid != geteuid())
        snprintf(err, errlen, "%s is owned by uid %lu, not you", dir, (unsigned long)st.st_uid);
    else if ((st.st_mode & 077) != 0)
        snprintf(err, errlen, "%s has mode %04o, not 0700", dir, (unsigned)(st.st_mode & 07777));
    else
        return fd;
    close(fd);
    return NEAP_CLI_DIR_REFUSED;
}

/* "\x1b" for byte c */
static void neap_escape_byte(char *dst, size_t *n, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    dst[(*n)++] = '\\';
    dst[(*n)++] = 'x';
    dst[(*n)++] = hex[c >> 4];
    dst[(*n)++] = hex[c & 15];
}

/* The length of the UTF-8 sequence at s (at most len bytes) if it is a
 * well-formed one of a printable character (not C1, U+0080 to U+009F);
 * else 0. */
static size_t neap_utf8_printable(const unsigned char *s, size_t len) {
    size_t n;
    unsigned long cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) n = 4, cp = s[0] & 0x07u;
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    /* overlong forms, UTF-16 surrogates, beyond U+10FFFF, C1 controls */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return n;
}

size_t neap_cli_escape(char *dst, size_t cap, const char *src, size_t len) {
    const unsigned char *s = (const unsigned char *)src;
    size_t n = 0, i = 0;
    if (cap == 0) return 0;
    while (i < len) {
        size_t u = s[i] >= 0x80 ? neap_utf8_printable(s + i, len - i) : 0;
        if (s[i] >= 0x20 && s[i] < 0x7f) u = 1;
        if (u > 0) {
            if (n + u >= cap) break;
            memcpy(dst + n, s + i, u);
            n += u;
            i += u;
        } else {
            if (n + 4 >= cap) break;
            neap_escape_byte(dst, &n, s[i++]);
        }
    }
    dst[n] = 0;
    return i;
}

/* The numeric fields of a record, by key. */
typedef struct {
    const char *key;
    size_t offset;   /* into neap_cli_record_t */
} neap_record_field_t;

#define NEAP_RF(k) {#k, offsetof(neap_cli_record_t, stats.k)}
static const neap_record_field_t neap_record_fields[] = {
    NEAP_RF(arenas_allocated), NEAP_RF(arenas_freed),     NEAP_RF(arenas_current),
    NEAP_RF(arenas_highwater), NEAP_RF(arenas_orphaned),  NEAP_RF(pools_current),
    NEAP_RF(pages_used),       NEAP_RF(pages_dirty),      NEAP_RF(bytes_live),
    NEAP_RF(bytes_in_pools),   NEAP_RF(bytes_huge),       NEAP_RF(bytes_mapped),
    NEAP_RF(bytes_purged),     NEAP_RF(bytes_unmapped),   NEAP_RF(huge_current),
    NEAP_RF(large_current),    NEAP_RF(heaps_current),    NEAP_RF(bytes_huge_cached),
    NEAP_RF(mesh_pages),       NEAP_RF(meshes),           NEAP_RF(unmeshes),
    NEAP_RF(mesh_ns),
    {"mesh", offsetof(neap_cli_record_t, mesh)},
    {"rss", offsetof(neap_cli_record_t, rss)},
    {"peak_rss", offsetof(neap_cli_record_t, peak_rss)},
    {"vsize", offsetof(neap_cli_record_t, vsize)},
    {"time_ms", offsetof(neap_cli_record_t, time_ms)},
    {"start_ms", offsetof(neap_cli_record_t, start_ms)},
    {"interval_ms", offsetof(neap_cli_record_t, interval_ms)},
};

/* line escaped for a message, cut to fit */
static const char *neap_quote(char *buf, size_t cap, const char *line) {
    neap_cli_escape(buf, cap, line, strlen(line));
    return buf;
}

/* A number as the library writes one: decimal digits only, nothing before
 * or after them (strtoull would take a sign and leading spaces, and turn
 * " -5" into 2^64 - 5), within SIZE_MAX. */
static int neap_parse_size(const char *s, size_t *out) {
    size_t v = 0;
    if (*s == '\0') return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (SIZE_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* n numbers one space apart (as the library writes a class line), nothing
 * else: sscanf's %llu would take signs ("-3" as 2^64 - 3), overflow (which
 * it leaves undefined) and anything after the last field. */
static int neap_parse_fields(const char *s, size_t *f, int n) {
    char field[32];
    for (int i = 0; i < n; i++) {
        const char *sp = strchr(s, ' ');
        size_t len = sp != NULL ? (size_t)(sp - s) : strlen(s);
        if ((sp == NULL) != (i == n - 1) || len >= sizeof field) return -1;
        memcpy(field, s, len);
        field[len] = '\0';
        if (neap_parse_size(field, &f[i]) != 0) return -1;
        s += len + (sp != NULL);
    }
    return 0;
}

int neap_cli_record_parse(const char *text, neap_cli_record_t *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    int line_no = 0, saw_end = 0;
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        if (nl == NULL) break;  /* an unterminated last line: cut short */
        size_t len = (size_t)(nl - line);
        char buf[512], q[256];
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = 0;
        line = nl + 1;
        line_no++;
        if (line_no == 1) {
            if (strcmp(buf, "neap-stats 1") != 0) {
                snprintf(err, errlen, "line 1 is not \"neap-stats 1\": not a neap statistics record");
                return -1;
            }
            continue;
        }
        if (strcmp(buf, "end") == 0) {
            saw_end = 1;
            break;
        }
        char *sp = strchr(buf, ' ');
        if (sp == NULL) {
            snprintf(err, errlen, "line %d has no value: \"%s\"", line_no, neap_quote(q, sizeof q, buf));
            return -1;
        }
        *sp = 0;
        const char *key = buf, *val = sp + 1;
        if (strcmp(key, "pid") == 0) {
            size_t pid;
            if (neap_parse_size(val, &pid) != 0 || pid == 0 || pid > 0x7fffffff) {
                snprintf(err, errlen, "line %d: \"%s\" is not a pid", line_no, neap_quote(q, sizeof q, val));
                return -1;
            }
            r->pid = (long)pid;
        } else if (strcmp(key, "state") == 0) {
            if (strcmp(val, "running") != 0 && strcmp(val, "exited") != 0) {
                snprintf(err, errlen, "line %d: unknown state \"%s\"", line_no, neap_quote(q, sizeof q, val));
                return -1;
            }
            snprintf(r->state, sizeof r->state, "%s", val);
        } else if (strcmp(key, "command") == 0) {
            neap_cli_escape(r->command, sizeof r->command, val, strlen(val));
        } else if (strcmp(key, "version") == 0) {
            neap_cli_escape(r->version, sizeof r->version, val, strlen(val));
        } else if (strcmp(key, "class") == 0) {
            size_t f[6];
            if (neap_parse_fields(val, f, 6) != 0 || f[0] < 1 || f[0] > NEAP_CLASS_MAX) {
                snprintf(err, errlen, "line %d: malformed class line \"%s\"", line_no,
                         neap_quote(q, sizeof q, val));
                return -1;
            }
            neap_class_stats_t *cs = &r->stats.classes[f[0] - 1];
            cs->block_size = (size_t)f[1];
            cs->pools = (size_t)f[2];
            cs->blocks_used = (size_t)f[3];
            cs->blocks_free = (size_t)f[4];
            cs->pools_made = (size_t)f[5];
        } else {
            for (size_t i = 0; i < sizeof neap_record_fields / sizeof neap_record_fields[0]; i++) {
                if (strcmp(key, neap_record_fields[i].key) != 0) continue;
                size_t *dst = (size_t *)((char *)r + neap_record_fields[i].offset);
                if (neap_parse_size(val, dst) != 0) {
                    snprintf(err, errlen, "line %d: \"%s\" is not a number", line_no,
                             neap_quote(q, sizeof q, val));
                    return -1;
                }
                break;
            }
        }
    }
    if (line_no == 0) {
        snprintf(err, errlen, "the record is empty");
        return -1;
    }
    if (!saw_end) {
        snprintf(err, errlen, "the record is truncated after line %d (no \"end\" line)", line_no);
        return -1;
    }
    if (r->pid <= 0 || r->state[0] == 0) {
        snprintf(err, errlen, "the record has no pid or state line");
        return -1;
    }
    return 0;
}

/* Checks that st is the user's own regular file, as a record must be.
 * NULL, or what it is instead. */
static const char *neap_file_refused(const struct stat *st) {
    if (S_ISLNK(st->st_mode)) return "a symbolic link, not a record";
    if (!S_ISREG(st->st_mode)) return "not a regular file";
    if (st->st_uid != geteuid()) return "owned by another user";
    return NULL;
}

int neap_cli_file_read(int dir, const char *name, const char *path, char *buf, size_t cap, size_t *len,
                       char *err, size_t errlen) {
    /* the entry's own status first: a FIFO or a device is never opened */
    struct stat ls, st;
    if (fstatat(dir, name, &ls, AT_SYMLINK_NOFOLLOW) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    const char *why = neap_file_refused(&ls);
    if (why != NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    /* O_NONBLOCK: should a FIFO have taken the file's place meanwhile, the
     * open does not wait for a writer; fstat then refuses it */
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    why = fstat(fd, &st) != 0 ? "cannot be examined" : neap_file_refused(&st);
    if (why != NULL) {
        close(fd);
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            close(fd);
            snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            return -1;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = 0;
    *len = n;
    return 0;
}

int neap_cli_file_remove(int dir, const char *name) {
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
    if (neap_file_refused(&st) != NULL) return -1;
    /* unlinkat never follows the name it removes */
    return unlinkat(dir, name, 0);
}

int neap_cli_record_read(int dir, long pid, neap_cli_record_t *r, char *err, size_t errlen) {
    char path[128], name[24];
    neap_cli_record_path(pid, path, sizeof path);
    snprintf(name, sizeof name, "%ld", pid);
    memset(r, 0, sizeof *r);
    /* one byte more than a record may have: a file that grew is refused too */
    char text[NEAP_CLI_RECORD_MAX + 2];
    size_t n;
    int rc = neap_cli_file_read(dir, name, path, text, sizeof text, &n, err, errlen);
    if (rc != 0) return rc;
    if (n > NEAP_CLI_RECORD_MAX) {
        snprintf(err, errlen, "%s: too large for a record", path);
        return -1;
    }
    if (strlen(text) != n) {
        snprintf(err, errlen, "%s: holds a NUL byte: not a record", path);
        return -1;
    }
    char why_parse[320];
    if (neap_cli_record_parse(text, r, why_parse, sizeof why_parse) != 0) {
        snprintf(err, errlen, "%s: %s", path, why_parse);
        return -1;
    }
    if (r->pid != pid) {
        snprintf(err, errlen, "%s: the record is of pid %ld", path, r->pid);
        return -1;
    }
    return 0;
}

int neap_cli_record_remove(int dir, long pid) {
    char name[24];
    snprintf(name, sizeof name, "%ld", pid);
    return neap_cli_file_remove(dir, name);
}

void neap_cli_format_size(char *buf, size_t cap, double bytes) {
    if (bytes < 1024) snprintf(buf, cap, "%.0f B", bytes);
    else if (bytes < 1024.0 * 1024) snprintf(buf, cap, "%.1f KiB", bytes / 1024);
    else if (bytes < 1024.0 * 1024 * 1024) snprintf(buf, cap, "%.1f MiB", bytes / (1024.0 * 1024));
    else snprintf(buf, cap, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
}

/* Order of class indexes: most pools made first, then most pools now. */
static const neap_cli_record_t *neap_sort_record;
static int neap_class_cmp(const void *a, const void *b) {
    const neap_class_stats_t *x = &neap_sort_record->stats.classes[*(const int *)a];
    const neap_class_stats_t *y = &neap_sort_record->stats.classes[*(const int *)b];
    if (x->pools_made != y->pools_made) return x->pools_made < y->pools_made ? 1 : -1;
    if (x->pools != y->pools) return x->pools < y->pools ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

void neap_cli_record_classes(FILE *out, const neap_cli_record_t *r, int limit) {
    int order[NEAP_CLASS_MAX], n = 0;
    for (int c = 0; c < NEAP_CLASS_MAX; c++)
        if (r->stats.classes[c].pools_made > 0 || r->stats.classes[c].pools > 0) order[n++] = c;
    if (n == 0) {
        fprintf(out, "  size classes: none used\n");
        return;
    }
    neap_sort_record = r;
    qsort(order, (size_t)n, sizeof order[0], neap_class_cmp);
    fprintf(out, "  busiest size classes (by pools set up):\n");
    fprintf(out, "    %5s %7s %11s %8s %12s %12s %6s\n", "class", "size", "pools made", "pools",
            "blocks used", "blocks free", "usage");
    if (limit > n || limit <= 0) limit = n;
    for (int i = 0; i < limit; i++) {
        const neap_class_stats_t *cs = &r->stats.classes[order[i]];
        /* in floating point: a forged record's counts may be near SIZE_MAX */
        double total = (double)cs->blocks_used + (double)cs->blocks_free;
        char usage[16] = "-";
        if (total > 0) snprintf(usage, sizeof usage, "%.0f%%", (double)cs->blocks_used * 100.0 / total);
        fprintf(out, "    %5d %7zu %11zu %8zu %12zu %12zu %6s\n", order[i] + 1, cs->block_size,
                cs->pools_made, cs->pools, cs->blocks_used, cs->blocks_free, usage);
    }
    if (limit < n) fprintf(out, "    (%d more classes)\n", n - limit);
}

void neap_cli_record_memory(FILE *out, const neap_cli_record_t *r) {
    char a[32], b[32], c[32], d[32];
    const neap_stats_t *st = &r->stats;
    neap_cli_format_size(a, sizeof a, (double)r->rss);
    neap_cli_format_size(b, sizeof b, (double)r->peak_rss);
    fprintf(out, "  RSS               %-12s (peak %s)\n", a, b);
    neap_cli_format_size(a, sizeof a, (double)st->bytes_live);
    neap_cli_format_size(b, sizeof b, (double)st->bytes_in_pools);
    neap_cli_format_size(c, sizeof c, (double)st->bytes_huge);
    fprintf(out, "  live in blocks    %-12s (pools hold %s, huge blocks %s)\n", a, b, c);
    neap_cli_format_size(a, sizeof a, (double)(st->bytes_purged + st->bytes_unmapped));
    neap_cli_format_size(b, sizeof b, (double)st->bytes_purged);
    neap_cli_format_size(c, sizeof c, (double)st->bytes_unmapped);
    /* empty but not yet given back: dirty pages and cached huge mappings */
    neap_cli_format_size(d, sizeof d,
                         (double)st->pages_dirty * NEAP_PAGE_SIZE + (double)st->bytes_huge_cached);
    fprintf(out, "  given back to OS  %-12s (in all: pages purged %s, unmapped %s); %s empty, not yet\n",
            a, b, c, d);
    fprintf(out, "  arenas            %zu now, %zu at most, %zu unmapped; pools %zu, large blocks %zu, "
                 "huge blocks %zu, thread heaps %zu\n",
            st->arenas_current, st->arenas_highwater, st->arenas_freed, st->pools_current,
            st->large_current, st->huge_current, st->heaps_current);
    if (r->mesh != 0) {
        /* in floating point: a forged record's counts may be near SIZE_MAX */
        neap_cli_format_size(a, sizeof a, (double)st->mesh_pages * NEAP_PAGE_SIZE);
        fprintf(out, "  meshing           %zu page%s a physical page (%s saved); %zu mesh%s, "
                     "%zu unmeshed, %.2f s spent\n",
                st->mesh_pages, st->mesh_pages == 1 ? " shares" : "s share", a, st->meshes,
                st->meshes == 1 ? "" : "es", st->unmeshes, (double)st->mesh_ns / 1e9);
    }
}

/* --- processes of a run ------------------------------------------------------ */

/* Whether process pid exists (it may be another user's). */
int neap_cli_pid_alive(long pid) {
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}


/* pid from a directory entry's name: digits only, as the library names
 * records (no sign, space or leading zero); 0 for any other name. */
long neap_cli_entry_pid(const char *name) {
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
static long record_parent(long pid) {
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
static long record_run_pid(long pid) {
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
long neap_cli_run_program(int dir, long run, long *others_pid, size_t cap, size_t *others) {
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
        long p = neap_cli_entry_pid(e->d_name);
        if (p != 0 && record_parent(p) == run && record_run_pid(p) == p) program = p;
    }
    if (program != 0) {
        rewinddir(d);
        while ((e = readdir(d)) != NULL) {
            long p = neap_cli_entry_pid(e->d_name);
            if (p == 0 || p == program || !neap_cli_pid_alive(p) || record_run_pid(p) != program) continue;
            if (*others < cap) others_pid[*others] = p;
            (*others)++;
        }
    }
    closedir(d);
    return program;
}

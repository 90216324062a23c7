/* record.c -- reading the statistics records that processes on neap
 * publish (the library's publish.c writes them), and showing them.
 *
 *   /tmp/neap-<uid>/<pid>      "key value" lines, first "neap-stats 1",
 *                              last "end"; see src/publish.c
 *
 * A record without its first or last line, or with a malformed number, is
 * refused with a message that says which line: it is never half-shown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    {"rss", offsetof(neap_cli_record_t, rss)},
    {"peak_rss", offsetof(neap_cli_record_t, peak_rss)},
    {"vsize", offsetof(neap_cli_record_t, vsize)},
    {"time_ms", offsetof(neap_cli_record_t, time_ms)},
    {"start_ms", offsetof(neap_cli_record_t, start_ms)},
    {"interval_ms", offsetof(neap_cli_record_t, interval_ms)},
};

static int neap_parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-') return -1;
    *out = (size_t)v;
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
        char buf[512];
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
            snprintf(err, errlen, "line %d has no value: \"%s\"", line_no, buf);
            return -1;
        }
        *sp = 0;
        const char *key = buf, *val = sp + 1;
        if (strcmp(key, "pid") == 0) {
            r->pid = strtol(val, NULL, 10);
        } else if (strcmp(key, "state") == 0) {
            snprintf(r->state, sizeof r->state, "%s", val);
        } else if (strcmp(key, "command") == 0) {
            snprintf(r->command, sizeof r->command, "%s", val);
        } else if (strcmp(key, "version") == 0) {
            snprintf(r->version, sizeof r->version, "%s", val);
        } else if (strcmp(key, "class") == 0) {
            unsigned long long f[6];
            if (sscanf(val, "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
                       &f[5]) != 6 || f[0] < 1 || f[0] > NEAP_CLASS_MAX) {
                snprintf(err, errlen, "line %d: malformed class line \"%s\"", line_no, val);
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
                    snprintf(err, errlen, "line %d: \"%s\" is not a number", line_no, val);
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

int neap_cli_record_read(long pid, neap_cli_record_t *r, char *err, size_t errlen) {
    char path[128];
    neap_cli_record_path(pid, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    text[n] = 0;
    char why[256];
    if (neap_cli_record_parse(text, r, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
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
        size_t total = cs->blocks_used + cs->blocks_free;
        char usage[16] = "-";
        if (total) snprintf(usage, sizeof usage, "%zu%%", cs->blocks_used * 100 / total);
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
}

/* report_json.c -- `neap report FILE --json OUT.json|-`: the report as one
 * JSON document, for other tools (the schema, neap-report/1, field by
 * field: docs/report-json.md).
 *
 *   {"schema": "neap-report/1", "generator", "estimates", "by", "top",
 *    "trace":      the header and how reading ended
 *    "totals", "peak", "end":  the whole trace's figures
 *    "moment":     what --at shows (the end, the peak, a time, a mark)
 *    "rss":        from the ticks (null without ticks)
 *    "marks":      [ every mark ]
 *    "series":     [ every tick: ms, rss, live, program_live, pinned ]
 *    "tables":     {"live", "peak", "total": {"title", "rows": [ site rows ]}}
 *    "pinning":    {"rows": [ site rows ], "all_sites"}
 *    "comparison": null, or B against the base trace, site by site
 *    "warnings":   [ {"level", "kind", "count", "message", "trace"} ]}
 *
 *   a site: {"label", "function", "file", "line", "module", "python"
 *            [, "traceback": [ frames, the site's first ]]}
 *
 * Written as it goes (js_t: a stack of "an element is already written at
 * this depth", so commas fall right), never built in memory.  Invariants
 * of what comes out, whatever the trace holds:
 *   - strings are valid UTF-8 JSON strings: '"' and '\' escaped, control
 *     characters (C0, DEL, C1) as \u00XX, every byte that is not part of a
 *     well-formed UTF-8 character (overlong, surrogate, past U+10FFFF, cut
 *     short) as \ufffd, U+FFFD;
 *   - numbers are finite: a figure that is not (none should be) is null;
 *     whole figures are written as integers (so every figure of an exact
 *     trace but an average or a ratio), others with at most 3 decimals;
 *     64-bit counters (ids, times, records) as the integers they are;
 *   - the document is whole even for a damaged trace: it covers the
 *     records before the damage, which "warnings" names.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "neap.h"
#include "cli.h"
#include "report.h"

/* --- the writer ------------------------------------------------------------ */

#define JS_DEPTH 16

typedef struct {
    FILE *f;
    int depth;
    int keyed;                       /* a key was written: its value needs no comma */
    int flat;                        /* depth from which nothing is indented (0: none) */
    unsigned char more[JS_DEPTH + 1]; /* an element is written at this depth */
} js_t;

/* Before an element: a comma after the one before, and the indentation. */
static void js_sep(js_t *j) {
    if (j->keyed) {
        j->keyed = 0;
        return;
    }
    int flat = j->flat && j->depth >= j->flat;
    if (j->more[j->depth]) fputs(flat ? ", " : ",", j->f);
    j->more[j->depth] = 1;
    if (j->depth > 0 && !flat) fprintf(j->f, "\n%*s", 2 * j->depth, "");
}

/* The length of the well-formed UTF-8 character at s (n bytes left), 0 if
 * there is none there; *cp its code point. */
static size_t js_utf8(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80, c &= 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800, c &= 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000, c &= 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

/* n bytes at s as a JSON string (see the invariants above). */
static void js_strn(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t len = js_utf8(p + i, n - i, &cp);
        if (len == 0) {
            fputs("\\ufffd", f);
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') fprintf(f, "\\%c", (int)cp);
        else if (cp == '\n') fputs("\\n", f);
        else if (cp == '\t') fputs("\\t", f);
        else if (cp == '\r') fputs("\\r", f);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) fprintf(f, "\\u%04x", cp);
        else fwrite(p + i, 1, len, f);
        i += len;
    }
    fputc('"', f);
}

static void js_key(js_t *j, const char *k) {
    js_sep(j);
    js_strn(j->f, k, strlen(k));
    fputs(": ", j->f);
    j->keyed = 1;
}

/* Opens an object ('{') or array ('['); flat: its contents on one line. */
static void js_open(js_t *j, char c, int flat) {
    js_sep(j);
    fputc(c, j->f);
    if (j->depth < JS_DEPTH) j->depth++;
    j->more[j->depth] = 0;
    if (flat && j->flat == 0) j->flat = j->depth;
}
static void js_close(js_t *j, char c) {
    int had = j->more[j->depth], flat = j->flat && j->depth >= j->flat;
    if (j->flat == j->depth) j->flat = 0;
    if (j->depth > 0) j->depth--;
    if (had && !flat) fprintf(j->f, "\n%*s", 2 * j->depth, "");
    fputc(c, j->f);
}

static void js_str(js_t *j, const char *s) {
    js_sep(j);
    if (s == NULL) fputs("null", j->f);
    else js_strn(j->f, s, strlen(s));
}
static void js_null(js_t *j) {
    js_sep(j);
    fputs("null", j->f);
}
static void js_bool(js_t *j, int v) {
    js_sep(j);
    fputs(v ? "true" : "false", j->f);
}
static void js_u64(js_t *j, uint64_t v) {
    js_sep(j);
    fprintf(j->f, "%llu", (unsigned long long)v);
}
static void js_i64(js_t *j, int64_t v) {
    js_sep(j);
    fprintf(j->f, "%lld", (long long)v);
}
/* A figure: an integer when whole, else at most 3 decimals; null when not finite. */
static void js_num(js_t *j, double v) {
    js_sep(j);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(j->f, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", v);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '0') buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
    fputs(strcmp(buf, "-0") == 0 ? "0" : buf, j->f);
}

/* "key": value, for the common types */
static void jk_str(js_t *j, const char *k, const char *v) { js_key(j, k); js_str(j, v); }
static void jk_num(js_t *j, const char *k, double v) { js_key(j, k); js_num(j, v); }
static void jk_u64(js_t *j, const char *k, uint64_t v) { js_key(j, k); js_u64(j, v); }
static void jk_bool(js_t *j, const char *k, int v) { js_key(j, k); js_bool(j, v); }

/* --- the parts ------------------------------------------------------------- */

/* A frame's fields (into the object open); fr NULL: a stack without one. */
static void js_frame_fields(js_t *j, const neap_report_frame_t *fr, int function, int line) {
    jk_str(j, "function", fr && fr->named && function ? fr->func : NULL);
    jk_str(j, "file", fr ? fr->src : NULL);
    js_key(j, "line");
    if (fr && fr->lineno && line) js_u64(j, fr->lineno);
    else js_null(j);
    jk_str(j, "module", fr ? fr->module : NULL);
    jk_bool(j, "python", fr ? fr->python : 0);
}

/* A site: its label, its first frame's names as --by keeps them (by
 * function: no line; by file: no function nor line), and by traceback its
 * frames from the site outwards. */
static void js_site(js_t *j, const neap_report_t *r, const neap_report_site_t *s) {
    const neap_report_stack_t *st = s->stack < r->nstacks ? &r->stacks[s->stack] : NULL;
    const neap_report_frame_t *fr =
        st && s->first < st->nframes ? neap_report_frame_of(r, st->frames[s->first]) : NULL;
    js_open(j, '{', 0);
    jk_str(j, "label", s->label);
    js_frame_fields(j, fr, r->by != NEAP_BY_FILE, r->by == NEAP_BY_LINE || r->by == NEAP_BY_TRACEBACK);
    if (r->by == NEAP_BY_TRACEBACK) {
        js_key(j, "traceback");
        js_open(j, '[', 0);
        for (size_t f = s->first; st && f < st->nframes; f++) {
            const neap_report_frame_t *ff = neap_report_frame_of(r, st->frames[f]);
            js_open(j, '{', 1);
            jk_str(j, "label", ff ? ff->line : NULL);
            js_frame_fields(j, ff, 1, 1);
            js_close(j, '}');
        }
        js_close(j, ']');
    }
    js_close(j, '}');
}

static void js_trace(js_t *j, const neap_report_t *r) {
    js_open(j, '{', 0);
    jk_str(j, "path", r->path);
    jk_u64(j, "format_version", r->hdr.version);
    jk_str(j, "command", r->cmdline);
    js_key(j, "argv");
    js_open(j, '[', 1);
    for (size_t i = 0; i < r->argv_len;) {
        size_t n = strnlen(r->argv + i, r->argv_len - i);
        js_sep(j);
        js_strn(j->f, r->argv + i, n);
        i += n + 1;
    }
    js_close(j, ']');
    jk_u64(j, "pid", r->hdr.pid);
    jk_u64(j, "start_ns", r->hdr.start_ns);
    char when[64] = "";
    time_t t = (time_t)(r->hdr.start_ns / 1000000000u);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    jk_str(j, "start", when[0] ? when : NULL);
    jk_str(j, "mode", r->sampled ? "sampled" : "exact");
    js_key(j, "sample_interval");
    if (r->sampled) js_num(j, r->interval);
    else js_null(j);
    jk_u64(j, "max_frames", r->hdr.max_frames);
    js_key(j, "end");
    if (!r->ended) {
        js_null(j);
    } else {
        js_open(j, '{', 1);
        if (r->end_how == NEAP_TRACE_EXIT_STATUS) {
            jk_str(j, "how", "exit");
            js_key(j, "status");
            js_i64(j, r->end_value);
        } else if (r->end_how == NEAP_TRACE_EXIT_SIGNAL) {
            jk_str(j, "how", "signal");
            js_key(j, "signal");
            js_i64(j, r->end_value);
        } else {
            jk_str(j, "how", "unknown");
        }
        js_close(j, '}');
    }
    const char *status = "clean";
    switch (r->status) {
    case NEAP_TRACE_EOF: status = "no_end"; break;
    case NEAP_TRACE_TRUNCATED: status = "truncated"; break;
    case NEAP_TRACE_CORRUPT: status = "corrupt"; break;
    case NEAP_TRACE_IOERROR: status = "read_error"; break;
    default: break;
    }
    jk_str(j, "status", status);
    jk_u64(j, "file_bytes", r->file_size);
    jk_u64(j, "bytes_read", r->bytes_read);
    jk_u64(j, "chunks", r->chunks);
    jk_u64(j, "records", r->records);
    jk_bool(j, "module_map", r->nmodules > 0);
    jk_bool(j, "symbolized", r->symbolized);
    js_close(j, '}');
}

/* The pinned bytes at the end of the trace (the pages map is the end's
 * whatever the moment shown). */
static uint64_t js_end_pinned(const neap_report_t *r) { return r->pinned_pages * 4096; }

static void js_moment(js_t *j, const neap_report_t *r, const neap_report_at_t *at) {
    static const char *const kinds[] = {"end", "peak", "time", "mark", "mark"};
    js_open(j, '{', 0);
    jk_str(j, "kind", kinds[at->kind]);
    jk_str(j, "when", at->text);
    jk_str(j, "name", r->at_name);
    jk_str(j, "description", r->at_set ? r->at_desc : NULL);
    js_key(j, "requested_ms");
    if (at->kind == NEAP_AT_TIME) js_u64(j, at->ms);
    else js_null(j);
    js_key(j, "record");
    if (r->at_set) js_u64(j, r->at_record);
    else js_u64(j, r->records);
    js_key(j, "ms");
    js_u64(j, r->at_set ? r->at_ms : r->time_ms);
    js_key(j, "mark");
    size_t k = 0;
    if (r->at_set && (at->kind == NEAP_AT_MARK_LABEL || at->kind == NEAP_AT_MARK_N)) {
        while (k + 1 < r->nmarks && r->marks[k].record != r->at_record) k++;
        js_u64(j, k + 1);
    } else {
        js_null(j);
    }
    jk_num(j, "live_bytes", r->live_bytes);
    jk_num(j, "live_blocks", r->live_count);
    jk_u64(j, "pinned_bytes", r->at_set ? r->at_pinned : js_end_pinned(r));
    js_close(j, '}');
}

static void js_marks(js_t *j, const neap_report_t *r) {
    js_open(j, '[', 0);
    for (size_t i = 0; i < r->nmarks; i++) {
        const neap_report_mark_t *m = &r->marks[i];
        js_open(j, '{', 1);
        jk_u64(j, "n", i + 1);
        jk_u64(j, "ms", m->ms);
        js_key(j, "label");
        js_sep(j);
        js_strn(j->f, m->raw, m->raw_len);
        jk_str(j, "label_escaped", m->label);
        jk_num(j, "live_bytes", m->live_bytes);
        jk_num(j, "live_blocks", m->live_count);
        jk_u64(j, "pinned_bytes", m->pinned);
        jk_u64(j, "record", m->record);
        jk_bool(j, "shown", r->at_set && r->at_kind != NEAP_AT_TIME && r->at_record == m->record);
        js_close(j, '}');
    }
    js_close(j, ']');
}

static void js_series(js_t *j, const neap_report_t *r) {
    js_open(j, '[', 0);
    for (size_t i = 0; i < r->nticks; i++) {
        const neap_report_tick_t *t = &r->ticks[i];
        js_open(j, '{', 1);
        jk_u64(j, "ms", t->ms);
        jk_u64(j, "rss", t->rss);
        jk_num(j, "live", t->replay_live);
        jk_u64(j, "program_live", t->live);
        jk_u64(j, "pinned", t->pinned);
        js_close(j, '}');
    }
    js_close(j, ']');
}

/* One top-N table: key picks the bytes, count_key the blocks. */
static void js_table(js_t *j, const neap_report_t *r, const char *name, const char *title, long key,
                     long count_key, int top) {
    size_t *order = neap_report_order(r, key), shown = 0, nonzero = 0;
    js_key(j, name);
    js_open(j, '{', 0);
    jk_str(j, "title", title);
    js_key(j, "rows");
    js_open(j, '[', 0);
    for (size_t i = 0; i < r->nsites; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        double bytes = *(const double *)((const char *)&s->fig + key);
        double n = *(const double *)((const char *)&s->fig + count_key);
        if (bytes <= 0 && n <= 0) break;
        nonzero++;
        if (shown >= (size_t)top) continue;
        js_open(j, '{', 1);
        jk_u64(j, "rank", ++shown);
        jk_num(j, "bytes", bytes);
        jk_num(j, "blocks", n);
        jk_num(j, "average", n > 0 ? bytes / n : 0);
        js_key(j, "site");
        js_site(j, r, s);
        js_close(j, '}');
    }
    js_close(j, ']');
    jk_u64(j, "omitted", nonzero - shown);
    js_close(j, '}');
    free(order);
}

static void js_pinning(js_t *j, const neap_report_t *r, int top) {
    size_t *order = neap_report_order(r, -1), shown = 0, nonzero = 0;
    double tl = 0, tp = 0;
    for (size_t i = 0; i < r->nsites; i++) {
        tl += r->sites[i].pin.live_bytes;
        tp += r->sites[i].pin.pages;
    }
    js_open(j, '{', 0);
    jk_str(j, "moment", r->at_name);
    jk_bool(j, "underestimated", r->sampled);
    js_key(j, "rows");
    js_open(j, '[', 0);
    for (size_t i = 0; i < r->nsites; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        if (s->pin.pages <= 0) break;
        nonzero++;
        if (shown >= (size_t)top) continue;
        char words[1024];
        neap_report_pin_words(words, sizeof words, s);
        js_open(j, '{', 1);
        jk_u64(j, "rank", ++shown);
        jk_num(j, "live_bytes", s->pin.live_bytes);
        jk_num(j, "pinned_bytes", s->pin.pages * 4096);
        jk_num(j, "ratio", s->pin.live_bytes > 0 ? s->pin.pages * 4096 / s->pin.live_bytes : 0);
        jk_num(j, "pages", s->pin.pages);
        jk_u64(j, "pages_alone", s->pin.pages_alone);
        jk_u64(j, "pages_shared", s->pin.pages_shared);
        jk_u64(j, "arenas", s->pin.arenas);
        jk_str(j, "sentence", words);
        js_key(j, "site");
        js_site(j, r, s);
        js_close(j, '}');
    }
    js_close(j, ']');
    jk_u64(j, "omitted", nonzero - shown);
    js_key(j, "all_sites");
    js_open(j, '{', 1);
    jk_num(j, "live_bytes", tl);
    jk_num(j, "pinned_bytes", tp * 4096);
    jk_num(j, "ratio", tl > 0 ? tp * 4096 / tl : 0);
    js_close(j, '}');
    js_close(j, '}');
    free(order);
}

static void js_comparison(js_t *j, const neap_report_t *base, const neap_report_t *now, int top) {
    size_t n, shown = 0, differ = 0;
    neap_report_diff_t *d = neap_report_compare_rows(base, now, &n);
    js_open(j, '{', 0);
    jk_str(j, "base", base->path);
    jk_str(j, "moment", now->at_name);
    jk_num(j, "live_bytes", now->live_bytes);
    jk_num(j, "base_live_bytes", base->live_bytes);
    jk_num(j, "diff_bytes", now->live_bytes - base->live_bytes);
    js_key(j, "rows");
    js_open(j, '[', 0);
    for (size_t i = 0; i < n; i++) {
        if (d[i].new_bytes == d[i].old_bytes && d[i].new_count == d[i].old_count) break;
        differ++;
        if (shown >= (size_t)top) continue;
        js_open(j, '{', 1);
        jk_u64(j, "rank", ++shown);
        jk_num(j, "bytes", d[i].new_bytes);
        jk_num(j, "bytes_diff", d[i].new_bytes - d[i].old_bytes);
        jk_num(j, "blocks", d[i].new_count);
        jk_num(j, "blocks_diff", d[i].new_count - d[i].old_count);
        jk_num(j, "base_bytes", d[i].old_bytes);
        jk_num(j, "base_blocks", d[i].old_count);
        js_key(j, "site");
        js_site(j, d[i].owner, d[i].site);
        js_close(j, '}');
    }
    js_close(j, ']');
    jk_u64(j, "omitted", differ - shown);
    js_key(j, "base_trace");
    js_trace(j, base);
    js_close(j, '}');
    free(d);
}

static void js_warning(void *ctx, const neap_report_t *r, int error, const char *kind, uint64_t count,
                       const char *text) {
    js_t *j = ctx;
    js_open(j, '{', 1);
    jk_str(j, "level", error ? "error" : "warning");
    jk_str(j, "kind", kind);
    js_key(j, "count");
    if (count) js_u64(j, count);
    else js_null(j);
    jk_str(j, "message", text);
    jk_str(j, "trace", r->path);
    js_close(j, '}');
}

/* --- the document ------------------------------------------------------------ */

int neap_report_json(FILE *f, const neap_report_t *r, const neap_report_t *base,
                     const neap_report_at_t *at, int top) {
    js_t jj = {.f = f}, *j = &jj;
    js_open(j, '{', 0);
    jk_str(j, "schema", "neap-report/1");
    jk_str(j, "generator", "neap " NEAP_VERSION);
    jk_bool(j, "estimates", r->sampled || (base && base->sampled));
    jk_str(j, "by", neap_report_by_name(r->by));
    js_key(j, "top");
    if (top == INT_MAX) js_null(j);
    else js_u64(j, (uint64_t)top);
    js_key(j, "trace");
    js_trace(j, r);

    js_key(j, "totals");
    js_open(j, '{', 0);
    jk_num(j, "allocated_bytes", r->total_bytes);
    jk_num(j, "allocated_blocks", r->total_count);
    jk_u64(j, "allocation_records", r->allocs);
    jk_u64(j, "frees", r->frees);
    jk_u64(j, "stacks", r->nstacks);
    jk_u64(j, "sites", r->nsites);
    js_close(j, '}');

    js_key(j, "peak");
    js_open(j, '{', 0);
    jk_num(j, "bytes", r->peak_bytes);
    jk_u64(j, "ms", r->peak_ms);
    jk_u64(j, "record", r->peak_record);
    js_close(j, '}');

    js_key(j, "end");
    js_open(j, '{', 0);
    jk_bool(j, "exit", r->ended);
    jk_num(j, "live_bytes", r->end_live_bytes);
    jk_num(j, "live_blocks", r->end_live_count);
    jk_u64(j, "pinned_bytes", js_end_pinned(r));
    jk_u64(j, "ms", r->time_ms);
    js_close(j, '}');

    js_key(j, "moment");
    js_moment(j, r, at);

    js_key(j, "rss");
    if (r->nticks == 0) {
        js_null(j);
    } else {
        uint64_t peak_rss = 0;
        for (size_t i = 0; i < r->nticks; i++)
            if (r->ticks[i].rss > peak_rss) peak_rss = r->ticks[i].rss;
        js_open(j, '{', 0);
        jk_u64(j, "peak", peak_rss);
        jk_u64(j, "last", r->ticks[r->nticks - 1].rss);
        jk_u64(j, "program_live_last", r->ticks[r->nticks - 1].live);
        js_close(j, '}');
    }
    js_key(j, "marks");
    js_marks(j, r);
    js_key(j, "series");
    js_series(j, r);

    js_key(j, "tables");
    js_open(j, '{', 0);
    char title[160];
    if (r->at_set) snprintf(title, sizeof title, "Top sites live at %s", r->at_name);
    else snprintf(title, sizeof title, "%s", r->ended ? "Top sites live at exit (leaks)"
                                                       : "Top sites live at the end (killed: not all leaks)");
    js_table(j, r, "live", title, (long)offsetof(neap_report_fig_t, live_bytes),
             (long)offsetof(neap_report_fig_t, live_count), top);
    js_table(j, r, "peak", "Top sites live at the peak", (long)offsetof(neap_report_fig_t, peak_bytes),
             (long)offsetof(neap_report_fig_t, peak_count), top);
    js_table(j, r, "total", "Top sites by total allocated", (long)offsetof(neap_report_fig_t, total_bytes),
             (long)offsetof(neap_report_fig_t, total_count), top);
    js_close(j, '}');

    js_key(j, "pinning");
    js_pinning(j, r, top);

    js_key(j, "comparison");
    if (base) js_comparison(j, base, r, top);
    else js_null(j);

    js_key(j, "warnings");
    js_open(j, '[', 0);
    neap_report_each_warning(r, js_warning, j);
    if (base) neap_report_each_warning(base, js_warning, j);
    js_close(j, ']');
    js_close(j, '}');
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}

/* report.c -- `neap report FILE [options]`: what a trace written by
 * `neap run --trace FILE` says about a program's memory.
 *
 *   neap report FILE             totals, the peak, the marks, top sites (live
 *                                at exit, live at the peak, total allocated),
 *                                pinning (its first sites in words)
 *   neap report A B              the same for B, compared with A
 *   neap report FILE --html OUT  also a self-contained HTML page
 *   neap report FILE --json OUT  also the report as one JSON document
 *                                (report_json.c; "-": on stdout, instead
 *                                of the text)
 *   neap report FILE --at WHEN   live sites and pinning at a moment: end,
 *                                peak, a time, mark:LABEL, mark:N
 *
 * Pipeline:
 *
 *   tracefmt reader --records--> replay (report_record): stacks[], live
 *                                blocks (addr -> size, stack), pages (page
 *                                -> live bytes: pinned pages), ticks[] and
 *                                marks[] with the live and pinned bytes there
 *                 --the moment-> snapshot (report_snap): per stack live,
 *                                the live blocks; after the replay they
 *                                replace the end's (report_use_snap)
 *                 --end--------> finish: symbolize frames (symbols.c when
 *                                built in, else module+offset from the 'M'
 *                                records), group stacks into sites, pinning
 *                                (placed by src/pinning.c)
 *                 --------------> text (here) / HTML (report_html.c) /
 *                                JSON (report_json.c)
 *
 * The output files (--html, --json OUT) are opened before the trace is
 * read (report_out_t): a path that cannot be written fails the command at
 * once, with nothing printed; a file the command made is removed when it
 * fails before writing it, one already there is left as it was.
 *
 * The reader checks each record on its own (trace_read.c: every block it
 * returns ends inside the address space, so addr + offset + size never
 * wraps here); the replay checks what needs the blocks before: an 'R' whose
 * block would end past the address space at its new address stops the
 * replay as a corrupt record, as the reader would.
 *
 * The peak: live bytes per stack are snapshotted lazily.  peak_id counts
 * new peaks; a stack's (snap, snap_id) is its value at peak snap_id.  Before
 * a stack changes, if snap_id != peak_id it has not changed since the last
 * peak, so its current value is its value there: snap := current.  At the
 * end, the value at the peak is snap when snap_id == peak_id, else current.
 * O(1) per record, whatever the number of stacks.
 *
 * The moment (--at, report_load_at): a mark's snapshot is taken at its 'K'
 * in one replay; the peak and a time take two, the first finding the
 * record (the one that reached the peak; the last 'T' or 'K' at or before
 * the time), the second snapshotting after it.  O(live blocks + stacks)
 * once.  A moment the trace has not is exit status 2, the marks listed.
 *
 * Exit status: 0 (also for a truncated trace, or one without an end record:
 * what a killed program leaves; what was read is reported, with a warning),
 * 1 a file cannot be read (a directory cannot), an output file cannot be
 * written, a header is bad, or a trace is corrupt (a bad chunk,
 * CRC or record: what was read before the damage is still reported, then
 * the error naming it), 2 bad command line, a file that is not a neap
 * trace, or a moment (--at) the trace has not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trace/pinning.h"
#include "util/hashtab.h"
#include "report.h"
#ifdef NEAP_HAVE_SYMBOLS
#include "trace/symbols.h"
#endif

#define HUGE_MIN (((uint64_t)1 << 20) + 1)  /* bigger than 1 MiB: a mapping of its own */
_Static_assert(HUGE_MIN - 1 <= NEAP_PIN_NONHUGE_MAX, "a block that is not huge is one pinning.c takes");

int neap_report_exact_bytes;

/* --- small helpers ------------------------------------------------------- */

/* malloc that ends the command on failure (a report has nothing to fall back on). */
static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "neap report: out of memory (%zu bytes)\n", n);
        exit(NEAP_CLI_FAILED);
    }
    return q;
}
/* Room for element n of the array v of *cap elements of elem bytes:
 * doubled (from `first`) when full. */
static void *xgrow(void *v, size_t *cap, size_t n, size_t elem, size_t first) {
    if (n < *cap) return v;
    *cap = *cap ? 2 * *cap : first;
    return xrealloc(v, *cap * elem);
}
static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

void neap_report_size(char *buf, size_t cap, double bytes) {
    if (neap_report_exact_bytes) snprintf(buf, cap, "%.0f", bytes);
    else neap_cli_format_size(buf, cap, bytes);
}
/* Signed size: "+1.2 MiB", "-300 B". */
static void report_delta(char *buf, size_t cap, double bytes) {
    char tmp[24];
    neap_report_size(tmp, sizeof tmp, fabs(bytes));
    snprintf(buf, cap, "%s%s", bytes < 0 ? "-" : "+", tmp);
}
/* A count: whole when exact, one decimal when an estimate. */
static void report_count(char *buf, size_t cap, double n, int sampled) {
    if (sampled && n != floor(n)) snprintf(buf, cap, "%.1f", n);
    else snprintf(buf, cap, "%.0f", n);
}

/* --- a hash map of 64-bit keys to three 64-bit values -------------------- */
/* util/hashtab.h's table over the C library's memory (out of memory ends
 * the command, as xrealloc does).  Any 64-bit key can be stored (0 and
 * 2^64-1 too: both come from trace files).  A key may be stored more than
 * once (map_add); map_find finds one of its entries, the first. */

typedef struct {
    uint64_t key, a, b, c;
} map_slot_t;

#define MAP_KEY(e) ((e)->key)
#define MAP_HASH(e) neap_hash_mix((e)->key)
NEAP_HASHTAB_DEFINE(maptab, map_slot_t, MAP_KEY, MAP_HASH, 1024, 3);
typedef maptab_t map_t;

static void *report_table_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    void *p = calloc(1, bytes);
    if (p == NULL) {
        fprintf(stderr, "neap report: out of memory (%zu bytes)\n", bytes);
        exit(NEAP_CLI_FAILED);
    }
    return p;
}
static void report_table_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    (void)bytes;
    free(p);
}
static const neap_hashtab_alloc_t report_tables = {report_table_alloc, report_table_free, NULL};

static map_t *map_new(void) {
    map_t *m = xrealloc(NULL, sizeof *m);
    maptab_init(m, &report_tables);
    return m;
}
static void map_free(map_t *m) {
    if (m) maptab_destroy(m);
    free(m);
}
/* The slot of key, or NULL. */
static map_slot_t *map_find(map_t *m, uint64_t key) { return maptab_find(m, key, neap_hash_mix(key)); }
/* The slot of key, made (values 0) if absent; *added says which. */
static map_slot_t *map_insert(map_t *m, uint64_t key, int *added) {
    map_slot_t e = {key, 0, 0, 0};
    return maptab_insert(m, &e, neap_hash_mix(key), added); /* never NULL: allocation failure exits */
}
/* A new slot for key (values 0), whether or not key has others. */
static map_slot_t *map_add(map_t *m, uint64_t key) {
    map_slot_t e = {key, 0, 0, 0};
    return maptab_add(m, &e);
}
/* Removes the entry in slot s (from map_find). */
static void map_remove(map_t *m, map_slot_t *s) { maptab_remove(m, s); }

/* --- replay ----------------------------------------------------------------- */

/* Weight of an allocation of size bytes: 1 when exact, 1/p when sampled. */
static double report_weight(const neap_report_t *r, uint64_t size) {
    if (!r->sampled) return 1.0;
    double p = -expm1(-(double)size / r->interval);
    return p > 0 ? 1.0 / p : 1.0;
}

/* The stack of a writer's id, made (undefined) if the trace never defined it. */
static neap_report_stack_t *report_stack(neap_report_t *r, uint64_t id, int *added) {
    map_slot_t *s = map_insert(r->stack_index, id, added);
    if (*added) {
        r->stacks = xgrow(r->stacks, &r->stacks_cap, r->nstacks, sizeof *r->stacks, 256);
        s->a = r->nstacks;
        neap_report_stack_t *st = &r->stacks[r->nstacks++];
        memset(st, 0, sizeof *st);
        st->id = id;
    }
    return &r->stacks[s->a];
}

/* Before a stack's live figures change: keep its value at the last peak. */
static void report_touch(neap_report_t *r, neap_report_stack_t *st) {
    if (st->snap_id != r->peak_id) {
        st->snap_bytes = st->fig.live_bytes;
        st->snap_count = st->fig.live_count;
        st->snap_id = r->peak_id;
    }
}

/* The pages of a part of a block, size bytes at addr (0 taken as 1): their
 * live bytes go up (add) or down, and pinned_pages counts the pages with
 * any.  A part that ends (its offset + size, `end_in_block`) past 1 MiB is
 * a huge block's: its pages are its own, counted without the map (so the
 * work per part is at most 257 pages).  Each part is counted the same way
 * when it goes as when it came, so the count never drifts. */
static void report_pages(neap_report_t *r, uint64_t addr, uint64_t size, uint64_t end_in_block,
                         int add) {
    uint64_t last = addr + (size ? size : 1) - 1; /* fits: the reader checked */
    uint64_t first_page = addr >> 12, last_page = last >> 12;
    if (end_in_block >= HUGE_MIN) {
        uint64_t n = last_page - first_page + 1;
        r->pinned_pages = add ? r->pinned_pages + n : r->pinned_pages - n;
        return;
    }
    map_t *pages = r->pages;
    for (uint64_t page = first_page;; page++) {
        uint64_t lo = page == first_page ? addr : page << 12;
        uint64_t hi = page == last_page ? last : (page << 12) + 4095;
        uint64_t bytes = hi - lo + 1;
        if (add) {
            int added;
            map_slot_t *pg = map_insert(pages, page, &added);
            if (pg->a == 0) r->pinned_pages++;
            pg->a += bytes;
        } else {
            map_slot_t *pg = map_find(pages, page);
            if (pg != NULL) {
                pg->a -= bytes < pg->a ? bytes : pg->a;
                if (pg->a == 0) {
                    map_remove(pages, pg);
                    r->pinned_pages--;
                }
            }
        }
        if (page == last_page) break;
    }
}

/* Replays one freed block: its stack's and the totals' live figures drop. */
static void report_unlive(neap_report_t *r, map_slot_t *blk) {
    neap_report_stack_t *st = &r->stacks[blk->b];
    double w = report_weight(r, blk->a);
    report_pages(r, blk->key + blk->c, blk->a, blk->c + blk->a, 0);
    report_touch(r, st);
    st->fig.live_bytes -= w * (double)blk->a;
    st->fig.live_count -= w;
    r->live_bytes -= w * (double)blk->a;
    r->live_count -= w;
    map_remove(r->blocks, blk);
}

/* Replays every part of the block at addr freed. */
static void report_unlive_all(neap_report_t *r, uint64_t addr) {
    map_slot_t *blk;
    while ((blk = map_find(r->blocks, addr)) != NULL) report_unlive(r, blk);
}

/* Replays size bytes at addr + offset allocated by stack id: a block ('A',
 * offset 0), or a part of one ('G', a sampled block's growth). */
static void report_live(neap_report_t *r, uint64_t id, uint64_t size, uint64_t addr,
                        uint64_t offset) {
    int added;
    neap_report_stack_t *st = report_stack(r, id, &added);
    if (added) {
        st->undefined = 1;
        r->undefined_stacks++;
    }
    double w = report_weight(r, size), bytes = w * (double)size;
    report_touch(r, st);
    st->fig.live_bytes += bytes;
    st->fig.live_count += w;
    st->fig.total_bytes += bytes;
    st->fig.total_count += w;
    map_slot_t *blk = map_add(r->blocks, addr);
    blk->a = size;
    blk->b = (size_t)(st - r->stacks);
    blk->c = offset;
    report_pages(r, addr + offset, size, offset + size, 1);
    r->allocs++;
    r->live_bytes += bytes;
    r->live_count += w;
    r->total_bytes += bytes;
    r->total_count += w;
    if (r->live_bytes > r->peak_bytes) {
        r->peak_bytes = r->live_bytes;
        r->peak_id++;
        r->peak_ms = r->last_ms;
        r->peak_record = r->records;
    }
}

/* Replays one record.  Returns 0, or -1 when the record is one no trace
 * can hold given the blocks before it (the reader checks each record on its
 * own, this what only the replay knows): r->message says what and where. */
static int report_record(neap_report_t *r, const _neap_trace_rec_t *rec) {
    int added;
    r->records++;
    switch (rec->tag) {
    case NEAP_TREC_MODULE: {
        r->modules = xgrow(r->modules, &r->modules_cap, r->nmodules, sizeof *r->modules, 16);
        neap_report_module_t *m = &r->modules[r->nmodules++];
        m->start = rec->module.start;
        m->end = rec->module.end;
        m->offset = rec->module.offset;
        m->path = xrealloc(NULL, rec->module.path_len + 1);
        memcpy(m->path, rec->module.path, rec->module.path_len);
        m->path[rec->module.path_len] = '\0';
        break;
    }
    case NEAP_TREC_PYFRAME: {
        if (r->pyframe_index == NULL) r->pyframe_index = map_new();
        map_slot_t *s = map_insert(r->pyframe_index, rec->pyframe.id, &added);
        if (!added) break;  /* defined once: a second definition is ignored */
        r->pyframes = xgrow(r->pyframes, &r->pyframes_cap, r->npyframes, sizeof *r->pyframes, 256);
        s->a = r->npyframes;
        neap_report_pyframe_t *pf = &r->pyframes[r->npyframes++];
        pf->id = rec->pyframe.id;
        pf->line = rec->pyframe.line;
        /* kept with control bytes and bytes that are not UTF-8 escaped
         * (\xNN, neap_cli_escape): fit for a terminal, whichever way shown */
        pf->file = xrealloc(NULL, 4 * rec->pyframe.file_len + 1);
        neap_cli_escape(pf->file, 4 * rec->pyframe.file_len + 1, rec->pyframe.file,
                        rec->pyframe.file_len);
        pf->func = xrealloc(NULL, 4 * rec->pyframe.func_len + 1);
        neap_cli_escape(pf->func, 4 * rec->pyframe.func_len + 1, rec->pyframe.func,
                        rec->pyframe.func_len);
        break;
    }
    case NEAP_TREC_STACK: {
        neap_report_stack_t *st = report_stack(r, rec->stack.id, &added);
        if (!added && !st->undefined) {
            r->redefined_stacks++;
            break;
        }
        st->undefined = 0;
        free(st->frames);
        st->nframes = rec->stack.nframes;
        st->frames = xrealloc(NULL, st->nframes * sizeof *st->frames);
        if (st->nframes) memcpy(st->frames, rec->stack.frames, st->nframes * sizeof *st->frames);
        break;
    }
    case NEAP_TREC_ALLOC: {
        map_slot_t *old = map_find(r->blocks, rec->alloc.addr);
        if (old) {
            r->realloc_over++;
            report_unlive_all(r, rec->alloc.addr);
        }
        report_live(r, rec->alloc.stack, rec->alloc.size, rec->alloc.addr, 0);
        break;
    }
    case NEAP_TREC_GROW:
        report_live(r, rec->grow.stack, rec->grow.size, rec->grow.addr, rec->grow.offset);
        break;
    case NEAP_TREC_MOVE: {
        /* every part of the block, now at its new address (where a block
         * still live is dropped first, as for 'A') */
        uint64_t from = rec->move.old_addr, to = rec->move.new_addr;
        if (from == to) break;
        /* the block's end, its parts' largest offset + size (each fits
         * above `from`: the reader checked), must fit above `to` as well,
         * or its parts' addresses would wrap; checked before anything moves */
        uint64_t end = 1;
        for (map_slot_t *p = map_find(r->blocks, from); p != NULL; p = maptab_find_next(r->blocks, p))
            if (p->c + (p->a ? p->a : 1) > end) end = p->c + (p->a ? p->a : 1);
        if (end > UINT64_MAX - to) {
            snprintf(r->message, sizeof r->message,
                     "corrupt record 'R' at byte %llu: the block of %llu bytes at 0x%llx, moved to "
                     "0x%llx, runs past the end of the address space",
                     (unsigned long long)rec->offset, (unsigned long long)end,
                     (unsigned long long)from, (unsigned long long)to);
            return -1;
        }
        if (map_find(r->blocks, to)) {
            r->realloc_over++;
            report_unlive_all(r, to);
        }
        map_slot_t *blk;
        while ((blk = map_find(r->blocks, from)) != NULL) {
            map_slot_t part = *blk;
            map_remove(r->blocks, blk);
            report_pages(r, from + part.c, part.a, part.c + part.a, 0);
            report_pages(r, to + part.c, part.a, part.c + part.a, 1);
            part.key = to;
            *map_add(r->blocks, to) = part;
        }
        break;
    }
    case NEAP_TREC_FREE:
        r->frees++;
        if (map_find(r->blocks, rec->free.addr)) report_unlive_all(r, rec->free.addr);
        else if (!r->sampled) r->unknown_frees++;
        break;
    case NEAP_TREC_TICK:
        r->ticks = xgrow(r->ticks, &r->ticks_cap, r->nticks, sizeof *r->ticks, 256);
        r->ticks[r->nticks++] = (neap_report_tick_t){rec->tick.ms, rec->tick.rss, rec->tick.live,
                                                     r->live_bytes > 0 ? r->live_bytes : 0,
                                                     r->pinned_pages * 4096};
        r->last_ms = rec->tick.ms;
        if (rec->tick.ms > r->time_ms) r->time_ms = rec->tick.ms;
        break;
    case NEAP_TREC_MARK: {
        r->marks = xgrow(r->marks, &r->marks_cap, r->nmarks, sizeof *r->marks, 16);
        neap_report_mark_t *m = &r->marks[r->nmarks++];
        m->ms = rec->mark.ms;
        /* escaped (\xHH for controls, C1 too, and bad UTF-8): never raw to a terminal */
        size_t cap = 4 * rec->mark.label_len + 1;
        m->label = xrealloc(NULL, cap);
        neap_cli_escape(m->label, cap, rec->mark.label, rec->mark.label_len);
        m->raw = xrealloc(NULL, rec->mark.label_len + 1);
        if (rec->mark.label_len) memcpy(m->raw, rec->mark.label, rec->mark.label_len);
        m->raw[rec->mark.label_len] = '\0';
        m->raw_len = rec->mark.label_len;
        m->live_bytes = r->live_bytes > 0 ? r->live_bytes : 0;
        m->live_count = r->live_count > 0 ? r->live_count : 0;
        m->pinned = r->pinned_pages * 4096;
        m->record = r->records;
        if (rec->mark.ms > r->time_ms) r->time_ms = rec->mark.ms;
        break;
    }
    case NEAP_TREC_END:
        r->ended = 1;
        r->end_how = rec->end.how;
        r->end_value = rec->end.value;
        break;
    }
    return 0;
}

/* --- progress bar ------------------------------------------------------------ */

typedef struct {
    int on;
    double last;   /* monotonic seconds of the last draw */
    int drawn;
} report_progress_t;

static double report_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Redraws the bar at most 10 times a second (and when final). */
static void report_progress(report_progress_t *p, const char *path, uint64_t done, uint64_t total,
                            int final) {
    if (!p->on) return;
    double now = report_now();
    if (!final && now - p->last < 0.1) return;
    p->last = now;
    if (final) {
        if (p->drawn) fprintf(stderr, "\r\033[K");
        return;
    }
    int width = 30;
    double frac = total ? (double)done / (double)total : 1.0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * width);
    char bar[64], a[32], b[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    neap_cli_format_size(a, sizeof a, (double)done);
    neap_cli_format_size(b, sizeof b, (double)total);
    fprintf(stderr, "\rneap report: reading %s [%s] %3.0f%% %s of %s", path, bar, frac * 100, a, b);
    fflush(stderr);
    p->drawn = 1;
}

/* --- the moment (--at) ------------------------------------------------------------ */

/* Where a replay takes its snapshot of the moment, and what it looks for.
 * The peak and a time need a first replay (the record of the peak, the
 * record of the last 'T' or 'K' at or before the time), a mark none: the
 * snapshot is taken at its 'K'. */
typedef struct {
    int snap;                 /* take a snapshot: ... */
    uint64_t record;          /* after this record (0: before the first), or */
    const char *mark_label;   /* at the first mark with this label, or */
    uint64_t mark_n;          /* at the nth mark (1-based); */
    int scan_time;            /* a first replay: the last time record <= scan_ms */
    uint64_t scan_ms;
    uint64_t scan_record;     /* its answer (0: none) */
} report_plan_t;

/* A copy of the live blocks map. */
static map_t *report_blocks_copy(const map_t *from) {
    map_t *to = map_new();
    const map_slot_t *b;
    for (size_t pos = 0; (b = maptab_next(from, &pos)) != NULL;) *map_add(to, b->key) = *b;
    return to;
}

/* The snapshot of the moment: every stack's live figures, the totals, the
 * pages and the blocks, as they are now. */
static void report_snap(neap_report_t *r) {
    for (size_t i = 0; i < r->nstacks; i++) {
        r->stacks[i].at_bytes = r->stacks[i].fig.live_bytes;
        r->stacks[i].at_count = r->stacks[i].fig.live_count;
    }
    r->at_set = 1;
    r->at_record = r->records;
    r->at_ms = r->time_ms;
    r->at_live_bytes = r->live_bytes;
    r->at_live_count = r->live_count;
    r->at_pinned = r->pinned_pages * 4096;
    r->at_blocks = report_blocks_copy(r->blocks);
}

/* After the replay: the moment's figures take the place of the end's. */
static void report_use_snap(neap_report_t *r) {
    r->end_live_bytes = r->live_bytes;
    r->end_live_count = r->live_count;
    if (!r->at_set) return;
    for (size_t i = 0; i < r->nstacks; i++) {
        r->stacks[i].fig.live_bytes = r->stacks[i].at_bytes;
        r->stacks[i].fig.live_count = r->stacks[i].at_count;
    }
    r->live_bytes = r->at_live_bytes;
    r->live_count = r->at_live_count;
    map_free(r->blocks);
    r->blocks = r->at_blocks;
    r->at_blocks = NULL;
}

/* --- load ---------------------------------------------------------------------- */

/* Reads path into r, with the snapshot plan asks for (NULL: none).
 * Returns NEAP_CLI_OK (also for a truncated or corrupt trace, r->status
 * says so), or an exit status after printing the error. */
static int report_load(neap_report_t *r, const char *path, int progress, report_plan_t *plan) {
    memset(r, 0, sizeof *r);
    r->path = path;
    _neap_trace_reader_t rd;
    if (_neap_trace_open(&rd, path) != 0) {
        fprintf(stderr, "neap report: %s: %s\n", path, rd.message);
        int st = rd.status == NEAP_TRACE_NOTTRACE ? NEAP_CLI_USAGE : NEAP_CLI_FAILED;
        _neap_trace_close(&rd);
        return st;
    }
    r->hdr = rd.hdr;
    r->hdr.cmdline = NULL;
    r->argv = xrealloc(NULL, (size_t)rd.hdr.cmdline_len + 1);
    if (rd.hdr.cmdline_len) memcpy(r->argv, rd.cmdline, rd.hdr.cmdline_len);
    r->argv[rd.hdr.cmdline_len] = '\0';
    r->argv_len = rd.hdr.cmdline_len;
    r->cmdline = xrealloc(NULL, (size_t)rd.hdr.cmdline_len + 1);
    for (uint32_t i = 0; i < rd.hdr.cmdline_len; i++)
        r->cmdline[i] = (unsigned char)rd.cmdline[i] < 0x20 ? ' ' : rd.cmdline[i];  /* NULs, newlines */
    r->cmdline[rd.hdr.cmdline_len] = '\0';
    while (rd.hdr.cmdline_len > 0 && r->cmdline[rd.hdr.cmdline_len - 1] == ' ')
        r->cmdline[--rd.hdr.cmdline_len] = '\0';
    r->sampled = (rd.hdr.flags & NEAP_TRACE_FLAG_SAMPLED) != 0;
    r->interval = (double)rd.hdr.sample_interval;
    r->file_size = rd.file_size;
    r->stack_index = map_new();
    r->blocks = map_new();
    r->pages = map_new();
    report_progress_t prog = {.on = progress};
    _neap_trace_rec_t rec;
    report_progress(&prog, path, rd.consumed, rd.file_size, 0);
    int replay_error = 0;
    int snap = plan != NULL && plan->snap;
    if (snap && plan->mark_label == NULL && plan->mark_n == 0 && plan->record == 0) {
        report_snap(r); /* before the first record */
        snap = 0;
    }
    while (_neap_trace_next(&rd, &rec)) {
        if (report_record(r, &rec) != 0) {
            replay_error = 1;  /* r->message says why: a stop as the reader's */
            r->records--;
            break;
        }
        if (plan != NULL && plan->scan_time && (rec.tag == NEAP_TREC_TICK || rec.tag == NEAP_TREC_MARK) &&
            (rec.tag == NEAP_TREC_TICK ? rec.tick.ms : rec.mark.ms) <= plan->scan_ms)
            plan->scan_record = r->records;
        if (snap) {
            int here;
            if (plan->mark_label != NULL)
                here = rec.tag == NEAP_TREC_MARK && strcmp(r->marks[r->nmarks - 1].label, plan->mark_label) == 0;
            else if (plan->mark_n != 0)
                here = rec.tag == NEAP_TREC_MARK && r->nmarks == plan->mark_n;
            else
                here = r->records == plan->record;
            if (here) {
                report_snap(r);
                snap = 0;
            }
        }
        if ((r->records & 4095) == 0) report_progress(&prog, path, rd.consumed, rd.file_size, 0);
    }
    report_progress(&prog, path, rd.consumed, rd.file_size, 1);
    if (replay_error) {
        r->status = NEAP_TRACE_CORRUPT;
    } else {
        r->status = rd.status;
        snprintf(r->message, sizeof r->message, "%s", rd.message);
    }
    r->bytes_read = rd.consumed;
    r->chunks = rd.chunks;
    _neap_trace_close(&rd);
    report_use_snap(r);
    /* the value of every stack at the peak; sampled weights leave rounding
     * residue where every block was freed (a real count is at least 1) */
    for (size_t i = 0; i < r->nstacks; i++) {
        neap_report_stack_t *st = &r->stacks[i];
        st->fig.peak_bytes = st->snap_id == r->peak_id ? st->snap_bytes : st->fig.live_bytes;
        st->fig.peak_count = st->snap_id == r->peak_id ? st->snap_count : st->fig.live_count;
        if (st->fig.live_count < 0.5) st->fig.live_bytes = st->fig.live_count = 0;
        if (st->fig.peak_count < 0.5) st->fig.peak_bytes = st->fig.peak_count = 0;
    }
    if (r->live_count < 0.5) r->live_bytes = r->live_count = 0;
    if (r->end_live_count < 0.5) r->end_live_bytes = r->end_live_count = 0;
    return NEAP_CLI_OK;
}

/* --- symbols and sites --------------------------------------------------------- */

/* One resolved frame, cached by pc: neap_report_frame_t (report.h). */
typedef neap_report_frame_t report_frame_t;

struct neap_report_syms {
#ifdef NEAP_HAVE_SYMBOLS
    _neap_symtab_t *tab;
#endif
    map_t *index;            /* pc -> index into frames */
    report_frame_t *frames;
    size_t nframes, cap;
};

static const char *report_basename(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is a function one of the allocator's own (skipped when finding a site)?
 * neap's, the C library's malloc family, C++'s operator new, and CPython's
 * allocator entry points (which only pass a request on to malloc). */
static int report_allocator_function(const char *f) {
    static const char *const names[] = {
        "malloc", "calloc", "realloc", "free", "reallocarray", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
        "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "_PyObject_Malloc",
        "_PyObject_Calloc", "_PyObject_Realloc", "pymalloc_alloc", "pymalloc_realloc"};
    if (strncmp(f, "PyMem_", 6) == 0 || strncmp(f, "_PyMem_", 7) == 0) return 1;
    if (strncmp(f, "neap_", 5) == 0 || strncmp(f, "_neap_", 6) == 0 ||
        strncmp(f, "__libc_", 7) == 0 || strncmp(f, "operator new", 12) == 0 ||
        strncmp(f, "operator delete", 15) == 0 || strncmp(f, "_Znw", 4) == 0 ||
        strncmp(f, "_Zna", 4) == 0)
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(f, names[i]) == 0) return 1;
    return 0;
}

/* A Python file as a report shows it: the standard library's and installed
 * packages' from their package down ("json/decoder.py"), the program's as
 * the interpreter was given it. */
static const char *report_pyfile(const char *f) {
    static const char *const roots[] = {"/site-packages/", "/dist-packages/"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        const char *p = strstr(f, roots[i]);
        if (p) return p + strlen(roots[i]);
    }
    const char *p = strstr(f, "/lib/python3");
    if (p && (p = strchr(p + 1, '/')) && (p = strchr(p + 1, '/'))) return p + 1;
    return f;
}

/* The label of a Python frame word (NEAP_TRACE_PYFRAME_TAG set). */
static void report_pyframe(const neap_report_t *r, uint64_t w, report_frame_t *fr) {
    char buf[2 * NEAP_TRACE_PYNAME_MAX + 64];
    uint64_t id = w & ~NEAP_TRACE_PYFRAME_TAG;
    map_slot_t *s = r->pyframe_index ? map_find(r->pyframe_index, id) : NULL;
    if (s == NULL) {
        snprintf(buf, sizeof buf, "<undefined Python frame %llu>", (unsigned long long)id);
        fr->func = xstrdup(buf);
        fr->line = xstrdup(buf);
        fr->file = xstrdup(buf);
        return;
    }
    const neap_report_pyframe_t *pf = &r->pyframes[s->a];
    fr->func = xstrdup(pf->func);
    fr->file = xstrdup(report_pyfile(pf->file));
    fr->src = xstrdup(fr->file);
    fr->lineno = pf->line;
    fr->named = 1;
    if (pf->line > 0)
        snprintf(buf, sizeof buf, "%s (%s:%u)", pf->func, fr->file, pf->line);
    else
        snprintf(buf, sizeof buf, "%s (%s)", pf->func, fr->file);
    fr->line = xstrdup(buf);
}

/* The resolved frame of pc (a return address, or a Python frame). */
static const report_frame_t *report_frame(neap_report_t *r, uint64_t pc) {
    struct neap_report_syms *sy = r->syms;
    int added;
    map_slot_t *s = map_insert(sy->index, pc, &added);
    if (!added) return &sy->frames[s->a];
    sy->frames = xgrow(sy->frames, &sy->cap, sy->nframes, sizeof *sy->frames, 256);
    s->a = sy->nframes;
    report_frame_t *fr = &sy->frames[sy->nframes++];
    memset(fr, 0, sizeof *fr);
    if (pc & NEAP_TRACE_PYFRAME_TAG) {
        fr->python = 1;
        report_pyframe(r, pc, fr);
        r->symbolized = 1;
        return fr;
    }
    char buf[1024];
    const char *module = NULL;
    uint64_t off = 0;
#ifdef NEAP_HAVE_SYMBOLS
    _neap_symbol_t sym;
    if (sy->tab && _neap_symtab_resolve(sy->tab, (uintptr_t)pc, NEAP_SYM_RETURN_ADDRESS, &sym) == 0) {
        if (sym.function) {
            r->symbolized = 1;
            fr->func = xstrdup(sym.function);
            fr->file = xstrdup(sym.file ? report_basename(sym.file)
                               : sym.module ? report_basename(sym.module) : sym.function);
            fr->named = 1;
            fr->src = sym.file ? xstrdup(report_basename(sym.file)) : NULL;
            fr->module = sym.module ? xstrdup(report_basename(sym.module)) : NULL;
            fr->lineno = sym.file && sym.line > 0 ? (uint32_t)sym.line : 0;
            if (sym.file && sym.line > 0)
                snprintf(buf, sizeof buf, "%s (%s:%d)", sym.function, report_basename(sym.file), sym.line);
            else if (sym.module)
                snprintf(buf, sizeof buf, "%s (%s+0x%llx)", sym.function, report_basename(sym.module),
                         (unsigned long long)sym.module_offset);
            else
                snprintf(buf, sizeof buf, "%s", sym.function);
            fr->line = xstrdup(buf);
            fr->allocator = report_allocator_function(sym.function) ||
                            (sym.module && strncmp(report_basename(sym.module), "libneap", 7) == 0);
            return fr;
        }
        if (sym.module) {
            module = sym.module;
            off = sym.module_offset;
        }
    }
#endif
    /* the fallback: module+offset from the 'M' records (file offset of pc - 1) */
    if (module == NULL) {
        for (size_t i = 0; i < r->nmodules; i++) {
            const neap_report_module_t *m = &r->modules[i];
            if (pc - 1 >= m->start && pc - 1 < m->end) {
                module = m->path;
                off = pc - 1 - m->start + m->offset;
                break;
            }
        }
    }
    if (module) {
        snprintf(buf, sizeof buf, "%s+0x%llx", report_basename(module), (unsigned long long)off);
        fr->allocator = strncmp(report_basename(module), "libneap", 7) == 0;
    } else {
        snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)pc);
    }
    fr->func = xstrdup(buf);
    fr->line = xstrdup(buf);
    fr->file = xstrdup(module ? report_basename(module) : buf);
    fr->module = module ? xstrdup(report_basename(module)) : NULL;
    return fr;
}

const neap_report_frame_t *neap_report_frame_of(const neap_report_t *r, uint64_t pc) {
    if (r->syms == NULL) return NULL;
    const map_slot_t *s = map_find(r->syms->index, pc);
    return s ? &r->syms->frames[s->a] : NULL;
}

/* A string -> site index table for grouping (util/hashtab.h: entries
 * keyed by their string's address, looked up by its bytes; at most half
 * full). */
typedef struct {
    char *key; /* owned */
    size_t val;
} strmap_slot_t;

static uint64_t report_strhash(const char *s) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}
#define STRMAP_KEY(e) ((uint64_t)(uintptr_t)(e)->key)
#define STRMAP_HASH(e) report_strhash((e)->key)
NEAP_HASHTAB_DEFINE(strmap, strmap_slot_t, STRMAP_KEY, STRMAP_HASH, 256, 2);

static int strmap_match(const strmap_slot_t *e, const void *key) { return strcmp(e->key, key) == 0; }

/* The site of key, made if absent (*added). */
static size_t strmap_get(strmap_t *m, const char *key, size_t next, int *added) {
    (void)strmap_reserve(m, 1); /* allocation failure exits */
    strmap_slot_t *e = strmap_probe(m, report_strhash(key), strmap_match, key);
    *added = e->key == NULL;
    if (*added) strmap_put(m, e, &(strmap_slot_t){xstrdup(key), next});
    return e->val;
}
static void strmap_free(strmap_t *m) {
    strmap_slot_t *e;
    for (size_t pos = 0; (e = strmap_next(m, &pos)) != NULL;) free(e->key);
    strmap_destroy(m);
}

/* The first frame of a stack that is not the allocator's (nframes if none). */
static size_t report_first_user(neap_report_t *r, const neap_report_stack_t *st) {
    for (size_t i = 0; i < st->nframes; i++)
        if (!report_frame(r, st->frames[i])->allocator) return i;
    return st->nframes;
}

static void report_add_fig(neap_report_fig_t *to, const neap_report_fig_t *f) {
    to->live_bytes += f->live_bytes;
    to->live_count += f->live_count;
    to->peak_bytes += f->peak_bytes;
    to->peak_count += f->peak_count;
    to->total_bytes += f->total_bytes;
    to->total_count += f->total_count;
}

/* The flame graph child of parent named name (made if absent). */
static neap_flame_t *report_flame_child(neap_flame_t *parent, const char *name) {
    for (neap_flame_t *c = parent->child; c; c = c->next)
        if (c->name == name) return c;
    neap_flame_t *c = xrealloc(NULL, sizeof *c);
    memset(c, 0, sizeof *c);
    c->name = name;
    c->next = parent->child;
    parent->child = c;
    return c;
}

/* Symbolizes every stack and groups the stacks into sites by `by`; builds
 * the flame graph (frames from the outermost, allocator frames left out). */
static void report_sites(neap_report_t *r, neap_report_by_t by) {
    r->by = by;
    r->syms = xrealloc(NULL, sizeof *r->syms);
    memset(r->syms, 0, sizeof *r->syms);
    r->syms->index = map_new();
#ifdef NEAP_HAVE_SYMBOLS
    if (r->nmodules) {
        _neap_module_t *mods = xrealloc(NULL, r->nmodules * sizeof *mods);
        for (size_t i = 0; i < r->nmodules; i++)
            mods[i] = (_neap_module_t){(uintptr_t)r->modules[i].start, (uintptr_t)r->modules[i].end,
                                       r->modules[i].offset, r->modules[i].path};
        r->syms->tab = _neap_symtab_new(mods, r->nmodules);
        free(mods);
    }
#endif
    strmap_t keys = NEAP_HASHTAB_INIT(&report_tables);
    size_t cap = 0;
    r->flame = xrealloc(NULL, sizeof *r->flame);
    memset(r->flame, 0, sizeof *r->flame);
    r->flame->name = "all";
    char *key = NULL, *trace = NULL;
    size_t keycap = 0, tracecap = 0;
    for (size_t i = 0; i < r->nstacks; i++) {
        neap_report_stack_t *st = &r->stacks[i];
        size_t first = report_first_user(r, st);
        const char *label;
        char undef[64];
        if (st->nframes == 0) {
            if (st->undefined)
                snprintf(undef, sizeof undef, "<undefined stack %llu>", (unsigned long long)st->id);
            else
                snprintf(undef, sizeof undef, "<no frames>");
            label = undef;
        } else {
            if (first == st->nframes) first = 0;  /* all the allocator's: keep the innermost */
            const report_frame_t *fr = report_frame(r, st->frames[first]);
            label = by == NEAP_BY_FUNCTION ? fr->func : by == NEAP_BY_FILE ? fr->file : fr->line;
        }
        /* the key: the label, or for a traceback every frame from the site outwards */
        size_t need = strlen(label) + 1;
        if (by == NEAP_BY_TRACEBACK)
            for (size_t f = first; f < st->nframes; f++)
                need += strlen(report_frame(r, st->frames[f])->line) + 1;
        if (need > keycap) key = xrealloc(key, keycap = need * 2);
        if (need > tracecap) trace = xrealloc(trace, tracecap = need * 2);
        strcpy(key, label);
        trace[0] = '\0';
        if (by == NEAP_BY_TRACEBACK && st->nframes) {
            size_t len = 0;
            for (size_t f = first; f < st->nframes; f++) {
                const char *l = report_frame(r, st->frames[f])->line;
                len += (size_t)sprintf(trace + len, "%s%s", len ? "\n" : "", l);
            }
            strcpy(key, trace);
        }
        int added;
        size_t site = strmap_get(&keys, key, r->nsites, &added);
        if (added) {
            r->sites = xgrow(r->sites, &cap, r->nsites, sizeof *r->sites, 64);
            neap_report_site_t *s = &r->sites[r->nsites++];
            memset(s, 0, sizeof *s);
            s->label = xstrdup(label);
            s->trace = by == NEAP_BY_TRACEBACK ? xstrdup(trace[0] ? trace : label) : NULL;
            s->stack = i;
            s->first = st->nframes ? first : 0;
        }
        st->site = site;
        report_add_fig(&r->sites[site].fig, &st->fig);
        /* flame graph: outermost frame first */
        neap_flame_t *node = r->flame;
        node->live += st->fig.live_bytes;
        node->total += st->fig.total_bytes;
        if (st->fig.total_bytes <= 0 && st->fig.live_bytes <= 0) continue;
        if (st->nframes == 0) {
            node = report_flame_child(node, r->sites[site].label);
            node->live += st->fig.live_bytes;
            node->total += st->fig.total_bytes;
        }
        for (size_t f = st->nframes; f-- > first;) {
            /* a C frame by its function; a Python one with its file and line,
             * as Python's tools show them */
            const report_frame_t *fr = report_frame(r, st->frames[f]);
            node = report_flame_child(node, fr->python ? fr->line : fr->func);
            node->live += st->fig.live_bytes;
            node->total += st->fig.total_bytes;
        }
    }
    free(key);
    free(trace);
    strmap_free(&keys);
}

/* --- pinning ---------------------------------------------------------------------- */

/* For every site: the pages and arenas its live blocks pin (see the
 * pinning section of `neap report --help`; the placement is pinning.c's),
 * and its live bytes. */
static void report_pinning(neap_report_t *r) {
    const map_t *blocks = r->blocks;
    if (r->nsites > UINT32_MAX) {
        fprintf(stderr, "neap report: %zu sites, too many to place\n", r->nsites);
        exit(NEAP_CLI_FAILED);
    }
    _neap_pin_block_t *v = xrealloc(NULL, maptab_size(blocks) * sizeof *v);
    size_t n = 0;
    /* a block is huge by its whole size: the end of its last part */
    map_t *ends = map_new();
    const map_slot_t *b;
    for (size_t pos = 0; (b = maptab_next(blocks, &pos)) != NULL;) {
        if (b->c == 0) continue;
        int added;
        map_slot_t *e = map_insert(ends, b->key, &added);
        if (b->c + b->a > e->a) e->a = b->c + b->a;
    }
    for (size_t pos = 0; (b = maptab_next(blocks, &pos)) != NULL;) {
        const map_slot_t *e = map_find(ends, b->key);
        uint64_t end = e != NULL && e->a > b->c + b->a ? e->a : b->c + b->a;
        size_t site = r->stacks[b->b].site;
        r->sites[site].pin.live_bytes += report_weight(r, b->a) * (double)b->a;
        /* a part of a block (offset c) places its own bytes */
        v[n++] = (_neap_pin_block_t){.addr = b->key + b->c, .size = b->a, .site = (uint32_t)site,
                                     .huge = end >= HUGE_MIN};
    }
    map_free(ends);
    _neap_pin_site_t *pin = xrealloc(NULL, r->nsites * sizeof *pin);
    memset(pin, 0, r->nsites * sizeof *pin);
    if (_neap_pinning(v, n, pin, r->nsites) != 0) {
        fprintf(stderr, "neap report: pinning: %s\n", strerror(errno));
        exit(NEAP_CLI_FAILED);
    }
    for (size_t i = 0; i < r->nsites; i++) {
        neap_report_pin_t *p = &r->sites[i].pin;
        p->pages = pin[i].pages;
        p->pages_alone = pin[i].pages_alone;
        p->pages_shared = pin[i].pages_shared;
        p->arenas = pin[i].arenas;
    }
    free(pin);
    free(v);
}

/* --- ordering ---------------------------------------------------------------------- */

static const neap_report_t *report_sort_r;
static long report_sort_key;

static double report_key_value(const neap_report_site_t *s, long key) {
    if (key < 0) return s->pin.pages;
    return *(const double *)((const char *)&s->fig + key);
}
static int report_order_cmp(const void *a, const void *b) {
    const neap_report_site_t *x = &report_sort_r->sites[*(const size_t *)a];
    const neap_report_site_t *y = &report_sort_r->sites[*(const size_t *)b];
    double vx = report_key_value(x, report_sort_key), vy = report_key_value(y, report_sort_key);
    if (vx != vy) return vx < vy ? 1 : -1;
    return strcmp(x->trace ? x->trace : x->label, y->trace ? y->trace : y->label);
}

size_t *neap_report_order(const neap_report_t *r, long key) {
    size_t *order = xrealloc(NULL, r->nsites * sizeof *order);
    for (size_t i = 0; i < r->nsites; i++) order[i] = i;
    report_sort_r = r;
    report_sort_key = key;
    qsort(order, r->nsites, sizeof *order, report_order_cmp);
    return order;
}

/* --- text output ---------------------------------------------------------------------- */

const char *neap_report_by_name(neap_report_by_t by) {
    return by == NEAP_BY_LINE       ? "line"
           : by == NEAP_BY_FUNCTION ? "function"
           : by == NEAP_BY_FILE     ? "file"
                                    : "traceback";
}

/* Prints a site's label; a traceback's further frames indented below. */
static void report_site_label(FILE *out, const neap_report_site_t *s, int indent) {
    if (s->trace == NULL) {
        fprintf(out, "%s\n", s->label);
        return;
    }
    const char *p = s->trace;
    int first = 1;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (!first) fprintf(out, "%*s", indent, "");
        fprintf(out, "%.*s\n", (int)len, p);
        first = 0;
        p += len + (nl ? 1 : 0);
    }
}

/* Is r's trace damaged (corrupt or unreadable past some point)?  Then the
 * command fails (after reporting what came before the damage). */
int neap_report_damaged(const neap_report_t *r) {
    return r->status == NEAP_TRACE_CORRUPT || r->status == NEAP_TRACE_IOERROR;
}

void neap_report_each_warning(const neap_report_t *r, neap_report_warn_fn fn, void *ctx) {
    char t[512];
    if (r->status == NEAP_TRACE_TRUNCATED || neap_report_damaged(r)) {
        snprintf(t, sizeof t, "%s: %s; the report covers the %llu records before it", r->path,
                 r->message, (unsigned long long)r->records);
        fn(ctx, r, neap_report_damaged(r),
           r->status == NEAP_TRACE_TRUNCATED ? "truncated"
           : r->status == NEAP_TRACE_CORRUPT ? "corrupt" : "read_error", 0, t);
    } else if (r->status == NEAP_TRACE_EOF) {
        snprintf(t, sizeof t, "%s: no end record: the program was killed or is still running; "
                              "the report covers the trace up to its last flush", r->path);
        fn(ctx, r, 0, "no_end", 0, t);
    } else if (r->message[0]) {
        snprintf(t, sizeof t, "%s: %s", r->path, r->message);
        fn(ctx, r, 0, "reader", 0, t);
    }
    if (r->unknown_frees) {
        snprintf(t, sizeof t, "%llu frees of blocks the trace does not know (allocated before "
                              "tracing started?)", (unsigned long long)r->unknown_frees);
        fn(ctx, r, 0, "unknown_frees", r->unknown_frees, t);
    }
    if (r->realloc_over) {
        snprintf(t, sizeof t, "%llu allocations at the address of a block still live (a free "
                              "missing from the trace)", (unsigned long long)r->realloc_over);
        fn(ctx, r, 0, "realloc_over", r->realloc_over, t);
    }
    if (r->undefined_stacks) {
        snprintf(t, sizeof t, "%llu stacks used but never defined", (unsigned long long)r->undefined_stacks);
        fn(ctx, r, 0, "undefined_stacks", r->undefined_stacks, t);
    }
    if (r->redefined_stacks) {
        snprintf(t, sizeof t, "%llu stacks defined twice (the first definition kept)",
                 (unsigned long long)r->redefined_stacks);
        fn(ctx, r, 0, "redefined_stacks", r->redefined_stacks, t);
    }
}

static void report_warning_line(void *ctx, const neap_report_t *r, int error, const char *kind,
                                uint64_t count, const char *text) {
    (void)r;
    (void)kind;
    (void)count;
    fprintf(ctx, "%s: %s\n", error ? "error" : "warning", text);
}

/* The stop reason as a warning line (an error for a damaged trace), and
 * the replay's warnings. */
static void report_warnings(FILE *out, const neap_report_t *r) {
    neap_report_each_warning(r, report_warning_line, out);
}

static void report_summary(FILE *out, const neap_report_t *r) {
    char a[32], b[32], c[32];
    fprintf(out, "neap report: %s\n", r->path);
    time_t t = (time_t)(r->hdr.start_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(out, "  command      %s\n", r->cmdline[0] ? r->cmdline : "(unknown)");
    fprintf(out, "  process      pid %u, started %s, traced for %.3f s (last tick)\n", r->hdr.pid,
            when, (double)r->last_ms / 1000.0);
    if (r->sampled) {
        neap_cli_format_size(a, sizeof a, r->interval);
        fprintf(out, "  mode         sampled, one sample per %s on average: figures are estimates\n", a);
    } else {
        fprintf(out, "  mode         every allocation\n");
    }
    if (r->ended) {
        if (r->end_how == NEAP_TRACE_EXIT_STATUS)
            fprintf(out, "  end          exited with status %lld\n", (long long)r->end_value);
        else if (r->end_how == NEAP_TRACE_EXIT_SIGNAL)
            fprintf(out, "  end          killed by signal %lld\n", (long long)r->end_value);
        else
            fprintf(out, "  end          clean end, exit status unknown\n");
    } else {
        if (r->status == NEAP_TRACE_EOF)
            fprintf(out, "  end          no end record: the program was killed or is still running\n");
        else
            fprintf(out, "  end          %s: %s\n", _neap_trace_status_name(r->status), r->message);
    }
    neap_report_size(a, sizeof a, r->total_bytes);
    report_count(b, sizeof b, r->total_count, r->sampled);
    fprintf(out, "  allocated    %s in %s blocks (%llu allocation records, %llu frees, %zu stacks)\n",
            a, b, (unsigned long long)r->allocs, (unsigned long long)r->frees, r->nstacks);
    neap_report_size(a, sizeof a, r->peak_bytes);
    fprintf(out, "  peak         %s live, reached after %.3f s (record %llu)\n", a,
            (double)r->peak_ms / 1000.0, (unsigned long long)r->peak_record);
    neap_report_size(a, sizeof a, r->end_live_bytes);
    report_count(b, sizeof b, r->end_live_count, r->sampled);
    fprintf(out, "  %-12s %s live in %s blocks\n", r->ended ? "at exit" : "at the end", a, b);
    if (r->at_set) {
        neap_report_size(a, sizeof a, r->live_bytes);
        report_count(b, sizeof b, r->live_count, r->sampled);
        neap_report_size(c, sizeof c, (double)r->at_pinned);
        fprintf(out, "  shown        %s: %s live in %s blocks, %s in pages they pin\n", r->at_desc, a,
                b, c);
    }
    if (r->nticks) {
        uint64_t peak_rss = 0;
        for (size_t i = 0; i < r->nticks; i++)
            if (r->ticks[i].rss > peak_rss) peak_rss = r->ticks[i].rss;
        neap_report_size(a, sizeof a, (double)peak_rss);
        neap_report_size(b, sizeof b, (double)r->ticks[r->nticks - 1].rss);
        neap_report_size(c, sizeof c, (double)r->ticks[r->nticks - 1].live);
        fprintf(out, "  RSS          peak %s, last %s (the program counted %s live)\n", a, b, c);
    }
}

/* The marks of the trace, with the replay's live and pinned bytes at each. */
static void report_marks(FILE *out, const neap_report_t *r) {
    if (r->nmarks == 0) return;
    fprintf(out, "\nMarks (neap_trace_mark in the program, or neap mark PID LABEL):\n");
    fprintf(out, "  %3s %10s %12s %12s  %s\n", "#", "time", "live", "pinned", "label");
    for (size_t i = 0; i < r->nmarks; i++) {
        const neap_report_mark_t *m = &r->marks[i];
        char a[32], b[32];
        neap_report_size(a, sizeof a, m->live_bytes);
        neap_report_size(b, sizeof b, (double)m->pinned);
        fprintf(out, "  %3zu %8.3f s %12s %12s  %s%s\n", i + 1, (double)m->ms / 1000.0, a, b, m->label,
                r->at_set && r->at_kind != NEAP_AT_TIME && r->at_record == m->record ? "  <- shown" : "");
    }
}

/* One top-N table: key picks the bytes column, count is its count. */
static void report_top(FILE *out, const neap_report_t *r, const char *title, long key,
                       long count_key, int top) {
    size_t *order = neap_report_order(r, key);
    size_t shown = 0;
    fprintf(out, "\n%s, by %s:\n", title, neap_report_by_name(r->by));
    fprintf(out, "  %3s %12s %10s %10s  %s\n", "#", "bytes", "blocks", "average", "site");
    for (size_t i = 0; i < r->nsites && shown < (size_t)top; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        double bytes = report_key_value(s, key), n = report_key_value(s, count_key);
        if (bytes <= 0 && n <= 0) break;
        char a[32], b[32], c[32];
        neap_report_size(a, sizeof a, bytes);
        report_count(b, sizeof b, n, r->sampled);
        neap_report_size(c, sizeof c, n > 0 ? bytes / n : 0);
        fprintf(out, "  %3zu %12s %10s %10s  ", ++shown, a, b, c);
        report_site_label(out, s, 42);
    }
    if (shown == 0) fprintf(out, "  (none)\n");
    free(order);
}

static void report_pin_table(FILE *out, const neap_report_t *r, int top) {
    size_t *order = neap_report_order(r, -1);
    fprintf(out, "\nPinning at %s, by %s: memory that live blocks keep from going back to the OS\n",
            r->at_name, neap_report_by_name(r->by));
    fprintf(out, "  (a 4 KiB page with any live block cannot be given back, nor a 4 MiB arena with any;\n"
                 "   pinned = pages x 4 KiB, a page shared by several sites split by their live bytes;\n"
                 "   a high ratio pinned/live means a few small blocks hold whole pages)\n");
    if (r->sampled)
        fprintf(out, "  (sampled trace: only the sampled blocks are placed, pinning is underestimated)\n");
    fprintf(out, "  %3s %12s %12s %8s %9s %7s %7s  %s\n", "#", "live", "pinned", "ratio", "pages",
            "shared", "arenas", "site");
    size_t shown = 0;
    double tl = 0, tp = 0;
    for (size_t i = 0; i < r->nsites; i++) {
        tl += r->sites[i].pin.live_bytes;
        tp += r->sites[i].pin.pages;
    }
    for (size_t i = 0; i < r->nsites && shown < (size_t)top; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        if (s->pin.pages <= 0) break;
        char a[32], b[32], pages[32];
        neap_report_size(a, sizeof a, s->pin.live_bytes);
        neap_report_size(b, sizeof b, s->pin.pages * 4096);
        if (s->pin.pages == floor(s->pin.pages)) snprintf(pages, sizeof pages, "%.0f", s->pin.pages);
        else snprintf(pages, sizeof pages, "%.2f", s->pin.pages);
        fprintf(out, "  %3zu %12s %12s %7.1fx %9s %7llu %7llu  ", ++shown, a, b,
                s->pin.live_bytes > 0 ? s->pin.pages * 4096 / s->pin.live_bytes : 0.0, pages,
                (unsigned long long)s->pin.pages_shared, (unsigned long long)s->pin.arenas);
        report_site_label(out, s, 75);
    }
    if (shown == 0) fprintf(out, "  (no live blocks)\n");
    else {
        char a[32], b[32];
        neap_report_size(a, sizeof a, tl);
        neap_report_size(b, sizeof b, tp * 4096);
        fprintf(out, "  all sites: %s live pin %s (%.1fx); shared: pages shared with other sites\n",
                a, b, tl > 0 ? tp * 4096 / tl : 0.0);
        /* the same, in words, for the first sites */
        fprintf(out, "  which line's survivors keep which pages:\n");
        for (size_t i = 0; i < r->nsites && i < 3 && i < (size_t)top; i++) {
            const neap_report_site_t *s = &r->sites[order[i]];
            if (s->pin.pages <= 0) break;
            char line[512];
            neap_report_pin_words(line, sizeof line, s);
            fprintf(out, "    %s\n", line);
        }
    }
    free(order);
}

/* "1,234,567" */
static void report_thousands(char *buf, size_t cap, double v) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

void neap_report_pin_words(char *buf, size_t cap, const neap_report_site_t *s) {
    char pages[48], a[32], b[32];
    if (s->pin.pages == floor(s->pin.pages) || s->pin.pages >= 100)
        report_thousands(pages, sizeof pages, s->pin.pages);
    else
        snprintf(pages, sizeof pages, "%.2f", s->pin.pages);
    neap_report_size(a, sizeof a, s->pin.pages * 4096);
    neap_report_size(b, sizeof b, s->pin.live_bytes);
    snprintf(buf, cap, "%s keeps %s page%s (%s) for %s of live objects", s->label, pages,
             s->pin.pages == 1 ? "" : "s", a, b);
}

/* --- compare -------------------------------------------------------------------------- */

typedef neap_report_diff_t report_diff_t;

static int report_diff_cmp(const void *a, const void *b) {
    const report_diff_t *x = a, *y = b;
    double dx = fabs(x->new_bytes - x->old_bytes), dy = fabs(y->new_bytes - y->old_bytes);
    if (dx != dy) return dx < dy ? 1 : -1;
    double cx = fabs(x->new_count - x->old_count), cy = fabs(y->new_count - y->old_count);
    if (cx != cy) return cx < cy ? 1 : -1;
    return strcmp(x->trace ? x->trace : x->label, y->trace ? y->trace : y->label);
}

neap_report_diff_t *neap_report_compare_rows(const neap_report_t *base, const neap_report_t *now,
                                             size_t *count) {
    strmap_t keys = NEAP_HASHTAB_INIT(&report_tables);
    report_diff_t *d = xrealloc(NULL, (base->nsites + now->nsites) * sizeof *d);
    size_t n = 0;
    for (int side = 0; side < 2; side++) {
        const neap_report_t *r = side ? now : base;
        for (size_t i = 0; i < r->nsites; i++) {
            const neap_report_site_t *s = &r->sites[i];
            int added;
            size_t k = strmap_get(&keys, s->trace ? s->trace : s->label, n, &added);
            if (added) {
                memset(&d[n], 0, sizeof d[n]);
                d[n].label = s->label;
                d[n].trace = s->trace;
                d[n].owner = r;
                d[n].site = s;
                n++;
            }
            if (side) {
                d[k].new_bytes += s->fig.live_bytes;
                d[k].new_count += s->fig.live_count;
            } else {
                d[k].old_bytes += s->fig.live_bytes;
                d[k].old_count += s->fig.live_count;
            }
        }
    }
    strmap_free(&keys);
    qsort(d, n, sizeof *d, report_diff_cmp);
    *count = n;
    return d;
}

/* Live at the end of `now` against `base`, per site (matched by label). */
static void report_compare(FILE *out, const neap_report_t *base, const neap_report_t *now, int top) {
    size_t n;
    report_diff_t *d = neap_report_compare_rows(base, now, &n);
    int sampled = base->sampled || now->sampled;
    char a[32], b[32], c[32], e[32];
    if (now->at_set)
        fprintf(out, "\nCompared with %s: live at %s in both, by %s (%s minus %s), biggest change first:\n",
                base->path, now->at_name, neap_report_by_name(now->by), now->path, base->path);
    else
        fprintf(out, "\nCompared with %s: live %s, by %s (%s minus %s), biggest change first:\n",
                base->path, now->ended ? "at exit" : "at the end", neap_report_by_name(now->by), now->path,
                base->path);
    report_delta(a, sizeof a, now->live_bytes - base->live_bytes);
    neap_report_size(b, sizeof b, now->live_bytes);
    fprintf(out, "  all sites: %s (now %s)\n", a, b);
    fprintf(out, "  %3s %12s %12s %10s %10s  %s\n", "#", "size diff", "size", "count diff", "count",
            "site");
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < (size_t)top; i++) {
        if (d[i].new_bytes == d[i].old_bytes && d[i].new_count == d[i].old_count) break;
        report_delta(a, sizeof a, d[i].new_bytes - d[i].old_bytes);
        neap_report_size(b, sizeof b, d[i].new_bytes);
        double dc = d[i].new_count - d[i].old_count;
        report_count(c + 1, sizeof c - 1, fabs(dc), sampled);
        c[0] = dc < 0 ? '-' : '+';
        report_count(e, sizeof e, d[i].new_count, sampled);
        fprintf(out, "  %3zu %12s %12s %10s %10s  ", ++shown, a, b, c, e);
        neap_report_site_t s = {.label = (char *)d[i].label, .trace = (char *)d[i].trace};
        report_site_label(out, &s, 56);
    }
    if (shown == 0) fprintf(out, "  (no difference)\n");
    free(d);
}

/* --- free ---------------------------------------------------------------------------- */

static void report_flame_free(neap_flame_t *n) {
    while (n) {
        neap_flame_t *next = n->next;
        report_flame_free(n->child);
        free(n);
        n = next;
    }
}

static void report_free(neap_report_t *r) {
    for (size_t i = 0; i < r->nstacks; i++) free(r->stacks[i].frames);
    free(r->stacks);
    for (size_t i = 0; i < r->nmodules; i++) free(r->modules[i].path);
    free(r->modules);
    for (size_t i = 0; i < r->npyframes; i++) {
        free(r->pyframes[i].file);
        free(r->pyframes[i].func);
    }
    free(r->pyframes);
    if (r->pyframe_index) map_free(r->pyframe_index);
    free(r->ticks);
    for (size_t i = 0; i < r->nmarks; i++) {
        free(r->marks[i].label);
        free(r->marks[i].raw);
    }
    free(r->marks);
    map_free(r->pages);
    map_free(r->at_blocks);
    for (size_t i = 0; i < r->nsites; i++) {
        free(r->sites[i].label);
        free(r->sites[i].trace);
    }
    free(r->sites);
    map_free(r->stack_index);
    map_free(r->blocks);
    if (r->syms) {
        for (size_t i = 0; i < r->syms->nframes; i++) {
            free(r->syms->frames[i].func);
            free(r->syms->frames[i].line);
            free(r->syms->frames[i].file);
            free(r->syms->frames[i].src);
            free(r->syms->frames[i].module);
        }
        free(r->syms->frames);
        map_free(r->syms->index);
#ifdef NEAP_HAVE_SYMBOLS
        _neap_symtab_free(r->syms->tab);
#endif
        free(r->syms);
    }
    report_flame_free(r->flame);
    free(r->cmdline);
    free(r->argv);
}

/* --- the moment ---------------------------------------------------------------------- */

/* Parses WHEN of --at into *at: 0, or -1 after saying why. */
static int report_parse_at(const char *when, neap_report_at_t *at) {
    memset(at, 0, sizeof *at);
    at->text = when;
    if (strcmp(when, "end") == 0) {
        at->kind = NEAP_AT_END;
        return 0;
    }
    if (strcmp(when, "peak") == 0) {
        at->kind = NEAP_AT_PEAK;
        return 0;
    }
    if (strncmp(when, "mark:", 5) == 0) {
        const char *m = when + 5;
        size_t digits = strspn(m, "0123456789");
        if (digits > 0 && m[digits] == '\0') {
            unsigned long long n;
            if (neap_cli_parse_count(m, 1, 1000000000, &n) != 0) {
                fprintf(stderr, "neap report: --at %s: marks are numbered from 1\n", when);
                return -1;
            }
            at->kind = NEAP_AT_MARK_N;
            at->n = n;
        } else {
            at->kind = NEAP_AT_MARK_LABEL;
            at->label = m;
        }
        return 0;
    }
    /* a time: 12.5s, 800ms, 12.5 (seconds) */
    if ((when[0] >= '0' && when[0] <= '9') || (when[0] == '.' && when[1] >= '0' && when[1] <= '9')) {
        char *end;
        errno = 0;
        double v = strtod(when, &end);
        double scale = 1000;
        if (strcmp(end, "ms") == 0) scale = 1;
        else if (strcmp(end, "s") == 0 || *end == '\0') scale = 1000;
        else end = NULL;
        if (end != NULL && errno == 0 && isfinite(v) && v >= 0 && v * scale < 1e15 &&
            strpbrk(when, "xXpP") == NULL) {
            at->kind = NEAP_AT_TIME;
            at->ms = (uint64_t)floor(v * scale + 0.5);
            return 0;
        }
    }
    fprintf(stderr,
            "neap report: --at takes end, peak, a time (12.5s, 800ms, or seconds: 12.5), "
            "mark:LABEL or mark:N, not '%s'\n",
            when);
    return -1;
}

/* The marks of r, one a line, for a message. */
static void report_list_marks(FILE *out, const neap_report_t *r) {
    if (r->nmarks == 0) {
        fprintf(out, "  the trace has no marks (a program makes them with neap_trace_mark(\"label\"),\n"
                     "  or `neap mark PID LABEL` while it runs)\n");
        return;
    }
    fprintf(out, "  its marks:\n");
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(out, "  %3zu  %8.3f s  %s\n", i + 1, (double)r->marks[i].ms / 1000.0, r->marks[i].label);
}

/* Loads path as report_load does, the moment `at` snapshotted (at most two
 * replays: the peak's and a time's record are found by the first), and
 * names it.  NEAP_CLI_OK, or an exit status after printing why:
 * NEAP_CLI_USAGE when the moment is not in the trace (a mark it has not, a
 * time past its end). */
static int report_load_at(neap_report_t *r, const char *path, int progress, const neap_report_at_t *at) {
    report_plan_t plan;
    memset(&plan, 0, sizeof plan);
    int st;
    if (at->kind == NEAP_AT_END) {
        st = report_load(r, path, progress, NULL);
        snprintf(r->at_name, sizeof r->at_name, "%s", r->ended ? "exit" : "the end of the trace");
        return st;
    }
    if (at->kind == NEAP_AT_PEAK || at->kind == NEAP_AT_TIME) {
        plan.scan_time = at->kind == NEAP_AT_TIME;
        plan.scan_ms = at->ms;
        st = report_load(r, path, progress, &plan);
        if (st != NEAP_CLI_OK) return st;
        if (at->kind == NEAP_AT_TIME && at->ms > r->time_ms) {
            fprintf(stderr,
                    "neap report: --at %s is past the end of %s: its last tick or mark is at %.3f s\n",
                    at->text, path, (double)r->time_ms / 1000.0);
            return NEAP_CLI_USAGE;
        }
        uint64_t record = at->kind == NEAP_AT_PEAK ? r->peak_record : plan.scan_record;
        report_free(r);
        memset(&plan, 0, sizeof plan);
        plan.snap = 1;
        plan.record = record;
        st = report_load(r, path, progress, &plan);
        if (st != NEAP_CLI_OK) return st;
        if (!r->at_set) {
            /* the file changed between the two readings (a trace still written) */
            fprintf(stderr, "neap report: %s changed while it was read: read it again\n", path);
            return NEAP_CLI_FAILED;
        }
        r->at_kind = at->kind;
        if (at->kind == NEAP_AT_PEAK) {
            snprintf(r->at_name, sizeof r->at_name, "the peak");
            snprintf(r->at_desc, sizeof r->at_desc, "the peak, reached after %.3f s (record %llu)",
                     (double)r->peak_ms / 1000.0, (unsigned long long)r->at_record);
        } else {
            snprintf(r->at_name, sizeof r->at_name, "%.3f s", (double)at->ms / 1000.0);
            if (r->at_record == 0)
                snprintf(r->at_desc, sizeof r->at_desc,
                         "%.3f s: the start of the trace (no tick or mark at or before it)",
                         (double)at->ms / 1000.0);
            else
                snprintf(r->at_desc, sizeof r->at_desc, "%.3f s: as at the tick or mark of %.3f s (record %llu)",
                         (double)at->ms / 1000.0, (double)r->at_ms / 1000.0,
                         (unsigned long long)r->at_record);
        }
        return NEAP_CLI_OK;
    }
    plan.snap = 1;
    plan.mark_label = at->kind == NEAP_AT_MARK_LABEL ? at->label : NULL;
    plan.mark_n = at->kind == NEAP_AT_MARK_N ? at->n : 0;
    st = report_load(r, path, progress, &plan);
    if (st != NEAP_CLI_OK) return st;
    if (!r->at_set) {
        if (at->kind == NEAP_AT_MARK_LABEL)
            fprintf(stderr, "neap report: --at %s: %s has no mark '%s'\n", at->text, path, at->label);
        else
            fprintf(stderr, "neap report: --at %s: %s has %zu mark%s, not %llu\n", at->text, path,
                    r->nmarks, r->nmarks == 1 ? "" : "s", (unsigned long long)at->n);
        report_list_marks(stderr, r);
        return NEAP_CLI_USAGE;
    }
    r->at_kind = at->kind;
    size_t k = 0;
    while (k + 1 < r->nmarks && r->marks[k].record != r->at_record) k++;
    snprintf(r->at_name, sizeof r->at_name, "mark '%.80s'", r->marks[k].label);
    snprintf(r->at_desc, sizeof r->at_desc, "mark '%.80s' at %.3f s (mark %zu of %zu)", r->marks[k].label,
             (double)r->marks[k].ms / 1000.0, k + 1, r->nmarks);
    return NEAP_CLI_OK;
}

/* --- the text report ------------------------------------------------------------------ */

/* The text report of r (sites and pinning done), compared with base (its
 * sites done) when not NULL, on stdout; the warnings on stderr. */
static void report_text(neap_report_t *r, neap_report_t *base, int top) {
    report_summary(stdout, r);
    fflush(stdout);
    report_warnings(stderr, r);
    report_marks(stdout, r);
    if (r->nmodules == 0)
        fprintf(stdout, "  note: the trace has no module map: frames are shown as addresses\n");
    else if (!r->symbolized)
        fprintf(stdout, "  note: no function names found: frames are shown as module+offset\n");
    if (base) {
        report_warnings(stderr, base);
        report_compare(stdout, base, r, top);
    }
    char title[160];
    if (r->at_set)
        snprintf(title, sizeof title, "Top sites live at %s", r->at_name);
    else
        snprintf(title, sizeof title, "%s", r->ended ? "Top sites live at exit (leaks)"
                                                     : "Top sites live at the end (killed: not all leaks)");
    report_top(stdout, r, title, (long)offsetof(neap_report_fig_t, live_bytes),
               (long)offsetof(neap_report_fig_t, live_count), top);
    if (!(r->at_set && r->at_kind == NEAP_AT_PEAK)) /* else the table above */
        report_top(stdout, r, "Top sites live at the peak", (long)offsetof(neap_report_fig_t, peak_bytes),
                   (long)offsetof(neap_report_fig_t, peak_count), top);
    report_top(stdout, r, "Top sites by total allocated", (long)offsetof(neap_report_fig_t, total_bytes),
               (long)offsetof(neap_report_fig_t, total_count), top);
    report_pin_table(stdout, r, top);
}

/* --- output files ------------------------------------------------------------------------ */

/* An output file (--html, --json OUT): opened before the trace is read, so
 * that a path that cannot be written fails before any work.  Made if
 * absent (and removed again when the command fails before writing it); one
 * that exists is emptied only when written. */
typedef struct {
    const char *path;
    FILE *f;
    int created;
} report_out_t;

/* Opens path for o: 0, or -1 after saying why. */
static int report_out_open(report_out_t *o, const char *path) {
    o->path = path;
    o->created = 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) {
        o->created = 0;
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "neap report: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0) close(fd);
        if (fd >= 0 && o->created) unlink(path);
        o->f = NULL;
        return -1;
    }
    return 0;
}

/* The command failed before writing o: closed, removed if it made it. */
static void report_out_abandon(report_out_t *o) {
    if (o->f == NULL) return;
    fclose(o->f);
    if (o->created) unlink(o->path);
    o->f = NULL;
}

/* After written (wrote: the writer's 0 or -1): the rest of an older file
 * cut, closed; 0, or -1 after saying why. */
static int report_out_write(report_out_t *o, int wrote) {
    struct stat sb;
    int rc = wrote;
    if (fflush(o->f) != 0) rc = -1;
    if (rc == 0 && fstat(fileno(o->f), &sb) == 0 && S_ISREG(sb.st_mode) &&
        ftruncate(fileno(o->f), ftello(o->f)) != 0)
        rc = -1;
    if (ferror(o->f)) rc = -1;
    int err = errno;
    if (fclose(o->f) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    o->f = NULL;
    if (rc != 0) fprintf(stderr, "neap report: error writing %s: %s\n", o->path, strerror(err));
    return rc;
}

/* --- the command ---------------------------------------------------------------------- */

static void report_usage(FILE *out) {
    fprintf(out,
            "usage: neap report FILE [B] [options]\n"
            "\n"
            "Reads a trace written by `neap run --trace FILE -- CMD` and shows where the\n"
            "program's memory went: totals, the peak, the top allocation sites, and which\n"
            "sites pin memory the allocator cannot give back to the OS.\n"
            "\n"
            "  --by line|function|file|traceback   group allocations by the first frame\n"
            "                          outside the allocator (its line, the default; its\n"
            "                          function; its source file: a Python program's .py, a\n"
            "                          C program's .c or its library), or by the whole stack\n"
            "  --top N|all             rows per table (default 10; all: every site)\n"
            "  --compare B, or a second FILE   also compare live memory at the end (or the\n"
            "                          --at moment) of B with FILE's, site by site (the\n"
            "                          report is B's)\n"
            "  --at WHEN               the live set, the top sites and the pinning at a\n"
            "                          moment of the run instead of its end: end (the\n"
            "                          default), peak (the most bytes live), a time since\n"
            "                          the start (12.5s, 800ms, or seconds: 12.5; the last\n"
            "                          tick or mark at or before it: ticks come every\n"
            "                          100 ms), mark:LABEL (the first mark so named) or\n"
            "                          mark:N (the Nth mark; so a label of digits is\n"
            "                          picked by its number).  With two traces, the same\n"
            "                          moment in each.  Exit 2 when the trace has no such\n"
            "                          moment (the marks it has are listed)\n"
            "  --html OUT.html         also write a self-contained HTML report: a flame\n"
            "                          graph, live, pinned and RSS bytes over time with\n"
            "                          the marks, the tables\n"
            "  --json OUT.json|-       also write the report as one JSON document (every\n"
            "                          table, the marks, memory over time; schema\n"
            "                          neap-report/1, see docs/report-json.md); - writes\n"
            "                          it to stdout instead of the text report\n"
            "  --bytes                 exact byte counts instead of KiB, MiB...\n"
            "  --progress              a progress bar on stderr even when it is not a terminal\n"
            "  --no-progress           never a progress bar\n"
            "\n"
            "Tables: live at exit (what was never freed: leaks; or at the --at moment),\n"
            "live at the peak (the moment the most bytes were live), total allocated\n"
            "(churn).  Marks: the moments the program named (neap_trace_mark) or `neap mark\n"
            "PID LABEL` named while it ran, with the live and pinned bytes at each.\n"
            "Pinning: for each site, the 4 KiB pages and 4 MiB arenas its live blocks keep\n"
            "mapped; a page shared with other sites is split by live bytes; the first\n"
            "sites in words (\"f (app.c:15) keeps 9,800 pages (38.3 MiB) for 610.0 KiB of\n"
            "live objects\").  Sampled traces give estimates.\n"
            "\n"
            "A truncated trace is reported up to where it ends, with a warning (exit 0).\n"
            "A corrupt one (a bad chunk, CRC or record) is reported up to the damage,\n"
            "then an error names it (exit 1).  Exit 2 for a file that is not a neap\n"
            "trace, 1 when a file cannot be read (a directory too) or an output file\n"
            "(--html, --json) cannot be written: checked before the trace is read.\n");
}

int neap_cli_report(int argc, char **argv) {
    enum { OPT_BY = 256, OPT_TOP, OPT_HTML, OPT_COMPARE, OPT_BYTES, OPT_PROGRESS, OPT_NO_PROGRESS,
           OPT_AT, OPT_JSON };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"by", required_argument, NULL, OPT_BY},
        {"top", required_argument, NULL, OPT_TOP},
        {"html", required_argument, NULL, OPT_HTML},
        {"compare", required_argument, NULL, OPT_COMPARE},
        {"bytes", no_argument, NULL, OPT_BYTES},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"at", required_argument, NULL, OPT_AT},
        {"json", required_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0}};
    neap_report_at_t at = {.kind = NEAP_AT_END, .text = "end"};
    const char *files[2] = {NULL, NULL}, *html = NULL, *json = NULL, *compare = NULL;
    int nfiles = 0, top = 10, progress = -1;
    unsigned long long n;
    neap_report_by_t by = NEAP_BY_LINE;
    neap_report_exact_bytes = 0;
    optind = 0;
    int c;
    while ((c = neap_cli_getopt("report", argc, argv, "h", longopts, 0)) != -1) {
        switch (c) {
        case 'h':
            report_usage(stdout);
            return NEAP_CLI_OK;
        case OPT_BY:
            if (strcmp(optarg, "line") == 0) by = NEAP_BY_LINE;
            else if (strcmp(optarg, "function") == 0) by = NEAP_BY_FUNCTION;
            else if (strcmp(optarg, "traceback") == 0) by = NEAP_BY_TRACEBACK;
            else if (strcmp(optarg, "file") == 0) by = NEAP_BY_FILE;
            else {
                fprintf(stderr, "neap report: --by takes line, function, file or traceback, not '%s'\n",
                        optarg);
                return NEAP_CLI_USAGE;
            }
            break;
        case OPT_TOP:
            if (strcmp(optarg, "all") == 0) {
                top = INT_MAX;
                break;
            }
            if (neap_cli_number("report", "--top", optarg, NEAP_CLI_WHOLE, 1, 1000000, &n) != 0)
                return NEAP_CLI_USAGE;
            top = (int)n;
            break;
        case OPT_HTML: html = optarg; break;
        case OPT_JSON: json = optarg; break;
        case OPT_COMPARE: compare = optarg; break;
        case OPT_BYTES: neap_report_exact_bytes = 1; break;
        case OPT_PROGRESS: progress = 1; break;
        case OPT_NO_PROGRESS: progress = 0; break;
        case OPT_AT:
            if (report_parse_at(optarg, &at) != 0) return NEAP_CLI_USAGE;
            break;
        default: return NEAP_CLI_USAGE;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (nfiles == 2) {
            fprintf(stderr, "neap report: at most two trace files (FILE and the one to compare)\n");
            return NEAP_CLI_USAGE;
        }
        files[nfiles++] = argv[i];
    }
    if (nfiles == 0) {
        fprintf(stderr, "neap report: which trace? usage: neap report FILE [options]\n");
        return NEAP_CLI_USAGE;
    }
    if (nfiles == 2 && compare) {
        fprintf(stderr, "neap report: give the file to compare either second or with --compare, not both\n");
        return NEAP_CLI_USAGE;
    }
    /* neap report A B: B is reported, compared with A */
    const char *base_path = NULL, *main_path = files[0];
    if (nfiles == 2) {
        base_path = files[0];
        main_path = files[1];
    } else if (compare) {
        base_path = files[0];
        main_path = compare;
    }
    if (progress < 0) progress = isatty(STDERR_FILENO);
    int json_stdout = json != NULL && strcmp(json, "-") == 0;

    /* the output files first: one that cannot be written fails the command
     * before any work, with nothing printed */
    report_out_t out_html = {0}, out_json = {0};
    if ((html && report_out_open(&out_html, html) != 0) ||
        (json && !json_stdout && report_out_open(&out_json, json) != 0)) {
        report_out_abandon(&out_html);
        return NEAP_CLI_FAILED;
    }
    neap_report_t base, r;
    int st = report_load_at(&r, main_path, progress, &at);
    if (st != NEAP_CLI_OK) {
        report_free(&r);
        report_out_abandon(&out_html);
        report_out_abandon(&out_json);
        return st;
    }
    if (base_path) {
        st = report_load_at(&base, base_path, progress, &at);
        if (st != NEAP_CLI_OK) {
            report_free(&base);
            report_free(&r);
            report_out_abandon(&out_html);
            report_out_abandon(&out_json);
            return st;
        }
    }
    report_sites(&r, by);
    report_pinning(&r);
    if (base_path) report_sites(&base, by);
    if (json_stdout) {
        /* the document alone on stdout; the warnings on stderr as ever */
        report_warnings(stderr, &r);
        if (base_path) report_warnings(stderr, &base);
        if (neap_report_json(stdout, &r, base_path ? &base : NULL, &at, top) != 0 || fflush(stdout) != 0) {
            fprintf(stderr, "neap report: error writing the JSON document to stdout: %s\n", strerror(errno));
            st = NEAP_CLI_FAILED;
        }
    } else {
        report_text(&r, base_path ? &base : NULL, top);
    }
    if (html && report_out_write(&out_html, neap_report_html(&r, out_html.f, top)) != 0)
        st = NEAP_CLI_FAILED;
    if (json && !json_stdout &&
        report_out_write(&out_json, neap_report_json(out_json.f, &r, base_path ? &base : NULL, &at, top)) != 0)
        st = NEAP_CLI_FAILED;
    if (neap_report_damaged(&r) || (base_path && neap_report_damaged(&base))) st = NEAP_CLI_FAILED;
    if (base_path) report_free(&base);
    report_free(&r);
    return st;
}

/* report.h -- what `neap report` computes from a trace, shared by the text
 * report (report.c), the HTML report (report_html.c) and the JSON document
 * (report_json.c).
 *
 *   trace file --replay--> stacks[] (per stack: live now, live at the peak,
 *        |                  total allocated) + live blocks + pages (page ->
 *        |                  live bytes in it) + ticks[] (with the replay's
 *        |                  live and pinned bytes there) + marks[]
 *        |--at the moment--> a snapshot (--at WHEN, not the end): per stack
 *        |                  live there, the live blocks there
 *        \--at the end---> sites[] (stacks grouped by --by: line, function,
 *                          traceback) + pinning per site, of the moment
 *
 * The moment (--at): the end (default), the peak, a time, or a mark.  With
 * one other than the end, after the replay the snapshot takes the place of
 * the live figures (fig.live_*, live_bytes, blocks): every table "live"
 * and the pinning are the moment's; the totals, the peak and the ticks stay
 * the whole trace's, and end_live_* keep the end's live figures.
 *
 * Invariant after replay: for every stack, live_bytes is the sum of the
 * weighted sizes of the live blocks allocated by it; sum over stacks of
 * live_bytes == report.live_bytes (up to rounding when sampled); pinned_pages
 * is the number of pages holding a byte of a live block (a block of more
 * than 1 MiB counted by its own pages).
 */
#ifndef NEAP_CLI_REPORT_H
#define NEAP_CLI_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace_read.h"

/* How allocations are grouped into sites (--by). */
typedef enum { NEAP_BY_LINE, NEAP_BY_FUNCTION, NEAP_BY_TRACEBACK, NEAP_BY_FILE } neap_report_by_t;

/* Figures of a site or a stack: bytes and counts are doubles because a
 * sampled trace gives estimates (exact traces hold whole numbers). */
typedef struct neap_report_fig {
    double live_bytes, live_count;    /* at the end of the trace */
    double peak_bytes, peak_count;    /* at the moment live bytes were highest */
    double total_bytes, total_count;  /* allocated over the whole trace */
} neap_report_fig_t;

/* One interned stack of the trace. */
typedef struct neap_report_stack {
    uint64_t id;             /* the writer's id */
    size_t nframes;
    uint64_t *frames;        /* innermost first (malloc'd) */
    int undefined;           /* used by an 'A' but never defined */
    neap_report_fig_t fig;   /* live_*: now; peak_*: see snap below */
    double snap_bytes, snap_count;  /* value at peak number snap_id (lazy snapshot) */
    uint64_t snap_id;
    double at_bytes, at_count;      /* live at the moment shown (--at), when not the end */
    size_t site;             /* index into sites, set at the end */
} neap_report_stack_t;

/* Pinning of one site: the 4 KiB pages and 4 MiB arenas its live blocks
 * keep from going back to the OS. */
typedef struct neap_report_pin {
    double pages;           /* pages pinned, shared pages counted fractionally */
    uint64_t pages_alone;   /* pages only this site's blocks are in (huge blocks too) */
    uint64_t pages_shared;  /* pages shared with other sites */
    uint64_t arenas;        /* distinct arenas holding its blocks (an arena shared
                               by several sites counts for each) */
    double live_bytes;      /* its live bytes (the ratio's denominator) */
} neap_report_pin_t;

/* A group of stacks (by --by). */
typedef struct neap_report_site {
    char *label;            /* one line: "function (file:line)", "function", or
                               "module+0xOFF"; traceback: the first frame */
    char *trace;            /* traceback only: every frame, one per line; else NULL */
    neap_report_fig_t fig;
    neap_report_pin_t pin;
    size_t stack;           /* the first stack grouped here (index into stacks) */
    size_t first;           /* its first frame outside the allocator (== its
                               nframes when it has none) */
} neap_report_site_t;

/* One frame resolved (report.c caches them by pc while grouping sites). */
typedef struct neap_report_frame {
    char *func;      /* "function", or the fallback label ("module+0xOFF", "0xPC") */
    char *line;      /* "function (file:line)", or the fallback label */
    char *file;      /* --by file's key: the source file (a Python frame's .py as
                        shown), else the module, else the fallback label */
    char *src;       /* the source file as shown, or NULL when unknown */
    char *module;    /* the module's file name (no directory), or NULL */
    uint32_t lineno; /* the source line, 0 when unknown */
    int named;       /* func is a function's name (not the fallback) */
    int python;      /* a Python frame ('P' record) */
    int allocator;   /* inside neap or the malloc family */
} neap_report_frame_t;

/* One 'T' record, with the replay's figures there. */
typedef struct neap_report_tick {
    uint64_t ms, rss, live;  /* the record's: time, RSS, the program's count of live bytes */
    double replay_live;      /* live bytes of the replay there */
    uint64_t pinned;         /* bytes of the pages holding live bytes there */
} neap_report_tick_t;

/* One 'K' record (a mark), with the replay's figures there. */
typedef struct neap_report_mark {
    uint64_t ms;
    char *label;             /* escaped as neap_cli_escape does (cli.h) */
    char *raw;               /* the label's bytes as written (raw_len of them) */
    size_t raw_len;
    double live_bytes, live_count;
    uint64_t pinned;         /* bytes of the pages holding live bytes */
    uint64_t record;         /* its number (1-based) in the replay */
} neap_report_mark_t;

/* The moment --at WHEN names. */
typedef enum {
    NEAP_AT_END,             /* the end of the trace (default) */
    NEAP_AT_PEAK,            /* the record that made the peak */
    NEAP_AT_TIME,            /* the last tick or mark at or before ms */
    NEAP_AT_MARK_LABEL,      /* the first mark named label */
    NEAP_AT_MARK_N           /* the nth mark */
} neap_report_at_kind_t;

typedef struct neap_report_at {
    neap_report_at_kind_t kind;
    uint64_t ms;             /* NEAP_AT_TIME */
    uint64_t n;              /* NEAP_AT_MARK_N, 1-based */
    const char *label;       /* NEAP_AT_MARK_LABEL */
    const char *text;        /* WHEN as given */
} neap_report_at_t;

/* One 'M' record. */
typedef struct neap_report_module {
    uint64_t start, end, offset;
    char *path;
} neap_report_module_t;

/* One 'P' record: a Python frame, named by stacks as NEAP_PYFRAME_TAG | id. */
typedef struct neap_report_pyframe {
    uint64_t id;
    uint32_t line;
    char *file, *func;
} neap_report_pyframe_t;

/* A flame graph node: frames from the outermost (root) inwards. */
typedef struct neap_flame {
    const char *name;           /* the frame's label (owned by the report's label cache) */
    double live, total;         /* bytes below this node */
    struct neap_flame *child;   /* first child */
    struct neap_flame *next;    /* next sibling */
} neap_flame_t;

struct neap_report_syms;

/* Everything read from one trace. */
typedef struct neap_report {
    const char *path;
    _neap_trace_header_t hdr;
    char *cmdline;               /* arguments joined by spaces */
    char *argv;                  /* the header's arguments, each NUL-terminated */
    size_t argv_len;             /* bytes of argv (the header's cmdline_len) */
    _neap_trace_status_t status; /* why reading stopped */
    char message[256];           /* the reader's message */
    uint64_t file_size, bytes_read, chunks;
    int sampled;
    double interval;             /* sample interval, bytes */
    /* end */
    int ended;
    uint32_t end_how;
    int64_t end_value;
    /* counts */
    uint64_t records, allocs, frees;
    uint64_t unknown_frees;      /* exact mode: frees of addresses not live */
    uint64_t realloc_over;       /* 'A' of an address already live */
    uint64_t undefined_stacks;   /* stacks used but not defined */
    uint64_t redefined_stacks;
    double live_bytes, live_count, total_bytes, total_count;
    double peak_bytes;           /* most live bytes */
    uint64_t peak_id;            /* number of times a new peak was reached */
    uint64_t peak_ms;            /* the last tick's ms before the peak */
    uint64_t peak_record;        /* the record (1-based) that reached the peak */
    uint64_t last_ms;            /* the last tick's ms */
    neap_report_stack_t *stacks;
    size_t nstacks, stacks_cap;
    void *stack_index;           /* id -> index (report.c's hash map) */
    void *blocks;                /* live blocks: addr -> size, stack */
    neap_report_tick_t *ticks;
    size_t nticks, ticks_cap;
    neap_report_mark_t *marks;
    size_t nmarks, marks_cap;
    void *pages;                 /* page -> live bytes in it (blocks of at most 1 MiB) */
    uint64_t pinned_pages;       /* pages holding a live byte, huge blocks' included */
    uint64_t time_ms;            /* the largest ms of a 'T' or 'K' so far */
    /* the moment shown (--at): at_set when it is not the end */
    int at_set;
    neap_report_at_kind_t at_kind;
    char at_name[96];            /* "exit", "the peak", "mark 'x'", "1.500 s" (titles) */
    char at_desc[200];           /* the summary's line: where it is in the trace */
    uint64_t at_record;          /* the snapshot is after this many records */
    uint64_t at_ms;              /* the time there (the last 'T' or 'K' before) */
    double at_live_bytes, at_live_count;
    uint64_t at_pinned;          /* bytes of the pages holding live bytes there */
    void *at_blocks;             /* the live blocks there, until they replace blocks */
    double end_live_bytes, end_live_count;  /* at the end (live_* when at_set is 0) */
    neap_report_module_t *modules;
    size_t nmodules, modules_cap;
    neap_report_pyframe_t *pyframes;
    size_t npyframes, pyframes_cap;
    void *pyframe_index;         /* id -> index into pyframes (report.c's hash map) */
    /* after neap_report_finish */
    neap_report_by_t by;
    neap_report_site_t *sites;
    size_t nsites;
    struct neap_report_syms *syms;
    int symbolized;              /* 1 if function names were found */
    neap_flame_t *flame;         /* root (name "all") */
} neap_report_t;

/* Sizes: "12.3 MiB", or the exact byte count with --bytes. */
extern int neap_report_exact_bytes;
void neap_report_size(char *buf, size_t cap, double bytes);

/* Writes the HTML report of r (finished, with pinning) to f; 0, or -1 when
 * f has an error (report_html.c; the caller says so). */
int neap_report_html(const neap_report_t *r, FILE *f, int top);

/* Writes the JSON document of r (finished, with pinning), compared with
 * base when not NULL, the moment as at says, to f (report_json.c, the
 * schema: docs/report-json.md).  0, or -1 when f has an error. */
int neap_report_json(FILE *f, const neap_report_t *r, const neap_report_t *base,
                     const neap_report_at_t *at, int top);

/* The frame of pc as r's sites resolved it, or NULL when no site used it. */
const neap_report_frame_t *neap_report_frame_of(const neap_report_t *r, uint64_t pc);

/* The name of --by's grouping: "line", "function", "file", "traceback". */
const char *neap_report_by_name(neap_report_by_t by);

/* Is r's trace damaged (corrupt, or unreadable past some point)? */
int neap_report_damaged(const neap_report_t *r);

/* Each warning about r (the stop reason, then the replay's): error is 1
 * for the damage that fails the command; kind a short name (docs/
 * report-json.md); count the number it counts, 0 for the stop reasons;
 * text the line the text report prints after "warning: " or "error: ". */
typedef void (*neap_report_warn_fn)(void *ctx, const neap_report_t *r, int error, const char *kind,
                                    uint64_t count, const char *text);
void neap_report_each_warning(const neap_report_t *r, neap_report_warn_fn fn, void *ctx);

/* A row of the comparison: a site's live figures in both traces (matched
 * by label, or by traceback), one of the sites being site of owner. */
typedef struct neap_report_diff {
    const char *label, *trace;
    const neap_report_t *owner;
    const neap_report_site_t *site;
    double old_bytes, old_count, new_bytes, new_count;
} neap_report_diff_t;

/* The rows of now compared with base, the biggest change first (of bytes,
 * then of blocks); *n of them; the caller frees the array. */
neap_report_diff_t *neap_report_compare_rows(const neap_report_t *base, const neap_report_t *now,
                                             size_t *n);

/* The pinning of site s in words: "f (app.c:15) keeps 9,800 pages (38.3 MiB)
 * for 610.0 KiB of live objects". */
void neap_report_pin_words(char *buf, size_t cap, const neap_report_site_t *s);

/* Indexes of r's sites sorted by key (a neap_report_fig_t member offset, or
 * -1 for pinned bytes), biggest first; the caller frees the array. */
size_t *neap_report_order(const neap_report_t *r, long key);

#endif /* NEAP_CLI_REPORT_H */

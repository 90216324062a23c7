/* neap_trace.h -- tracing allocations: who allocated what, where, and how
 * much is live.  The model is Python's tracemalloc; neap_trace_<name> has
 * the meaning of tracemalloc.<name>, for C code.
 *
 * Once started, every allocation made through neap (neap_malloc and the
 * rest, or malloc itself when neap is the program's malloc) records its size
 * and the stack of return addresses that made it (up to nframe frames, the
 * innermost first), until the block is freed.  Stacks are captured by
 * walking frame pointers: code built without them gives shorter stacks.
 *
 * Sampling (neap_trace_start_sampled) records a Poisson sample by bytes
 * instead: each allocated byte is picked with probability 1/interval, and an
 * allocation is recorded if any of its bytes is.  The figures it reports are
 * estimates scaled to be unbiased (an allocation of s bytes sampled with
 * probability p = 1 - exp(-s/interval) stands for 1/p allocations).
 *
 * Threads: every function is thread-safe.  The thread calling start is
 * traced from its next allocation on; other threads within their next
 * NEAP_TRACE_LATENCY bytes of allocation; a thread started after it from
 * its first allocation.
 */
#ifndef NEAP_TRACE_H
#define NEAP_TRACE_H

#include "neap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Frames kept per stack at most. */
#define NEAP_TRACE_MAX_FRAMES 128
/* Default mean sampling interval, bytes. */
#define NEAP_TRACE_DEFAULT_INTERVAL (512u * 1024u)
/* Bytes another thread may allocate before it notices a start or stop. */
#define NEAP_TRACE_LATENCY (256u * 1024u)

/* tracemalloc.start(nframe): trace every allocation from now on, keeping
 * nframe frames (1..NEAP_TRACE_MAX_FRAMES) of each stack.  Starting again
 * changes nframe and keeps the traces.  -1 and EINVAL for nframe out of
 * range; -1 and EBUSY in the debug mode (NEAP_DEBUG_MALLOC=1), which does
 * not go with tracing. */
NEAP_EXPORT int neap_trace_start(int nframe);
/* The same, sampling by bytes with a mean interval (0: the default). */
NEAP_EXPORT int neap_trace_start_sampled(int nframe, size_t interval);
/* tracemalloc.stop(): stops tracing and forgets every trace. */
NEAP_EXPORT void neap_trace_stop(void);
NEAP_EXPORT int neap_trace_is_tracing(void);
/* The sampling interval, 0 when every allocation is traced. */
NEAP_EXPORT size_t neap_trace_get_sample_interval(void);
/* tracemalloc.clear_traces(): forgets every trace, keeps tracing. */
NEAP_EXPORT void neap_trace_clear_traces(void);
NEAP_EXPORT int neap_trace_get_traceback_limit(void);
/* tracemalloc.get_traced_memory(): bytes of traced blocks now, and at most
 * since start or the last reset_peak (estimates when sampling). */
NEAP_EXPORT void neap_trace_get_traced_memory(size_t *current, size_t *peak);
NEAP_EXPORT void neap_trace_reset_peak(void);
/* Bytes the tracing layer itself uses for its tables and stacks. */
NEAP_EXPORT size_t neap_trace_get_tracemalloc_memory(void);

/* A stack of return addresses, the innermost frame first.  In a CPython
 * 3.11 process, Python code's allocations have Python frames instead
 * (NEAP_OPTION_TRACE_PYTHON): words with bit 63 set, each one line of a
 * Python function, which snapshots name (neap_frame_t: the .py file, its
 * line, the function's qualified name). */
typedef struct neap_traceback {
    size_t nframe;
    uintptr_t frame[NEAP_TRACE_MAX_FRAMES];
} neap_traceback_t;

/* tracemalloc.get_object_traceback(p): fills *out with the stack that
 * allocated the block at p and returns 1; 0 if p is not traced. */
NEAP_EXPORT int neap_trace_get_object_traceback(const void *p, neap_traceback_t *out);
/* The traced size of the block at p, 0 if it is not traced. */
NEAP_EXPORT size_t neap_trace_get_object_size(const void *p);

/* Marks a moment in the NEAP_TRACE stream (`neap run --trace FILE`, or
 * NEAP_TRACE=FILE): a 'K' record with the time since the trace started
 * and label (its first 1024 bytes; NULL: an empty label), in the order of
 * the stream's records: after every record any thread wrote before the
 * call.  `neap report FILE` lists the marks, and `--at mark:LABEL` shows
 * the live set, the top sites and the pinning there.  The record reaches
 * the file with the calling thread's next chunk, or at the next tick
 * (every 100 ms).  Another process marks a moment with `neap mark PID
 * LABEL`.  No counterpart in tracemalloc.  0, or -1 and ENOENT when this
 * process streams no trace, EAGAIN when the thread is writing a record
 * already (a signal handler's call), ENOMEM when no trace buffer could be
 * mapped for the thread. */
NEAP_EXPORT int neap_trace_mark(const char *label);

/* ---------------------------------------------------------------------------
 * Snapshots (tracemalloc.Snapshot): the live traces frozen at one moment,
 * grouped into statistics by allocation site, compared, filtered, saved to
 * a file and read back (src/snapshot.c).
 *
 * A snapshot owns a copy of the traces (address, size, stack) and resolves
 * program counters to function, file and line only when a call needs them:
 * the most recent frame of each stack for NEAP_KEY_LINENO and
 * NEAP_KEY_FILENAME, every frame for NEAP_KEY_TRACEBACK, cumulative
 * statistics, dumps and all_frames filters.  Each resolved pc is cached in
 * the snapshot.  Frames come from DWARF line information when the program
 * and libdw have it (build with -g), otherwise from the dynamic symbol
 * table (module and function only).
 *
 * A Python frame (neap_traceback_t) resolves to its .py file, line and
 * function (module NULL, offset 0).
 *
 * Frames are ordered as in neap_traceback_t: frame[0] is the most recent
 * (the function that called the allocator), frame[nframe-1] the oldest.
 * (Python's Traceback sequence runs the other way.)
 *
 * Sampled snapshots (taken while neap_trace_start_sampled is on): every
 * size and count below is an unbiased estimate, rounded to an integer: a
 * trace of s bytes under interval I stands for w = s / (1 - exp(-s/I))
 * bytes and w / s allocations.  neap_snapshot_count is the number of
 * traces actually recorded.
 *
 * Arrays a snapshot returns (statistics, differences, pinning) and every
 * string in them belong to the snapshot: valid until neap_snapshot_free,
 * the same array for the same question asked twice.  Errors: -1 or NULL
 * with errno set, and a sentence saying what was wrong (and where, for a
 * file) from neap_snapshot_error().  Every call is thread-safe: a snapshot
 * has a lock of its own.  Allocations made by these calls are not traced.
 * ------------------------------------------------------------------------- */
typedef struct neap_snapshot neap_snapshot_t;

/* tracemalloc.take_snapshot(): a copy of every live trace now.  NULL and
 * EINVAL when not tracing, NULL and ENOMEM when memory ran out, NULL and
 * ENOTSUP when the traces only go to a NEAP_TRACE file (exact tracing
 * started from the environment keeps no table; neap_trace_start switches
 * to one). */
NEAP_EXPORT neap_snapshot_t *neap_trace_take_snapshot(void);
/* Frees a snapshot and everything it returned (NULL: nothing happens). */
NEAP_EXPORT void neap_snapshot_free(neap_snapshot_t *s);
/* Snapshot.traceback_limit: frames kept per stack when it was taken. */
NEAP_EXPORT int neap_snapshot_traceback_limit(const neap_snapshot_t *s);
/* The sampling interval when it was taken, 0 for exact tracing. */
NEAP_EXPORT size_t neap_snapshot_sample_interval(const neap_snapshot_t *s);
/* len(Snapshot.traces): traces in the snapshot (0 for NULL). */
NEAP_EXPORT size_t neap_snapshot_count(const neap_snapshot_t *s);

/* tracemalloc.Frame, with what C adds to it. */
typedef struct neap_frame {
    const char *filename;  /* the source file as DWARF names it, else the path
                              of the module holding pc, else "<unknown>" */
    int lineno;            /* source line; 0 if unknown */
    const char *function;  /* function name (the inlined one for inlined code);
                              NULL if unknown */
    uintptr_t pc;          /* a return address that resolved to this frame (the
                              first met; several pcs may share a line); 0 in
                              NEAP_KEY_FILENAME statistics.  For a loaded
                              snapshot, an address in the process that took it */
    const char *module;    /* the ELF file holding pc; NULL if unknown */
    uintptr_t offset;      /* the address looked up (pc - 1, inside the call)
                              minus the module's load bias: what
                              `addr2line -e module` takes; 0 if unknown */
} neap_frame_t;

/* Snapshot.statistics key_type.  Two frames are the same site when they
 * have the same filename and line; frames with no line (lineno 0) are told
 * apart by function, and without one by module offset. */
typedef enum neap_key {
    NEAP_KEY_FILENAME,   /* 'filename': the most recent frame's file (lineno 0) */
    NEAP_KEY_LINENO,     /* 'lineno': the most recent frame's file and line */
    NEAP_KEY_TRACEBACK   /* 'traceback': the whole stack */
} neap_key_t;

/* tracemalloc.Statistic: the blocks of one site. */
typedef struct neap_statistic {
    size_t size;               /* bytes (estimated when sampled) */
    size_t count;              /* blocks (estimated when sampled) */
    size_t nframe;             /* frames of the key: 1, or the stack's for traceback */
    const neap_frame_t *frame; /* the key, most recent frame first */
} neap_statistic_t;

/* tracemalloc.StatisticDiff: one site in a new snapshot against an old one. */
typedef struct neap_statistic_diff {
    size_t size;               /* bytes now (0: the site is gone) */
    long long size_diff;       /* size now - size in the old snapshot */
    size_t count;              /* blocks now */
    long long count_diff;      /* count now - count in the old snapshot */
    size_t nframe;
    const neap_frame_t *frame;
} neap_statistic_diff_t;

/* Snapshot.statistics(key_type, cumulative): one neap_statistic_t per site
 * into *out (n of them; *out is NULL when n is 0), sorted by size, then
 * count, descending, then by frames.  cumulative (NEAP_KEY_LINENO and
 * NEAP_KEY_FILENAME only, as in Python): a trace counts for the site of
 * every frame of its stack, not only the most recent -- once per site even
 * when the site is in several frames (recursion; Python counts it once per
 * frame).  0, or -1 with EINVAL (bad key, cumulative with
 * NEAP_KEY_TRACEBACK, NULL argument) or ENOMEM. */
NEAP_EXPORT int neap_snapshot_statistics(neap_snapshot_t *s, neap_key_t key, int cumulative,
                                         const neap_statistic_t **out, size_t *n);

/* Snapshot.compare_to(old_snapshot, key_type, cumulative): every site of
 * either snapshot with its figures in s and the difference from old (a site
 * only in old has size and count 0 and negative differences), sorted by
 * |size_diff|, size, |count_diff|, count, descending, then by frames.
 * Sites match across snapshots by their frames' contents, so old may be a
 * loaded file.  The array belongs to s.  0 or -1 as for statistics. */
NEAP_EXPORT int neap_snapshot_compare_to(neap_snapshot_t *s, neap_snapshot_t *old, neap_key_t key,
                                         int cumulative, const neap_statistic_diff_t **out,
                                         size_t *n);

/* tracemalloc.Filter.  A frame matches when fnmatch(filename_pattern,
 * filename, 0) does (so '*' crosses '/': "*foo.c" matches any foo.c) and,
 * when lineno > 0, its line is lineno.  A trace matches the filter when its
 * most recent frame matches, or with all_frames when any of its frames does.
 * (Python's DomainFilter has no counterpart: neap's traces have no domain.) */
typedef struct neap_filter {
    int inclusive;                /* 1: keep matching traces; 0: drop them */
    const char *filename_pattern; /* fnmatch(3) pattern on neap_frame_t.filename */
    int lineno;                   /* 0: any line */
    int all_frames;               /* 1: any frame of the stack; 0: the most recent */
} neap_filter_t;

/* Snapshot.filter_traces(filters): a new snapshot of the traces that match
 * at least one of the inclusive filters (if there are any) and none of the
 * exclusive ones (n == 0: a copy).  It keeps the frames s has resolved, and
 * is freed on its own.  NULL with EINVAL (NULL filters with n > 0, a NULL
 * pattern, lineno < 0) or ENOMEM. */
NEAP_EXPORT neap_snapshot_t *neap_snapshot_filter_traces(const neap_snapshot_t *s,
                                                         const neap_filter_t *filters, size_t n);

/* Snapshot.dump(filename): writes s to path (created or truncated) as a
 * neap snapshot file: "NEAPSNP\0", version 1, a header with checksums,
 * then the strings, the resolved frames of every pc, the stacks and the
 * traces (layout: src/snapshot.c).  Every frame is resolved first, so a
 * loaded snapshot names its frames in any process, even once the program
 * has changed.  0, or -1 with errno from the file system (the partial file
 * is removed) or ENOMEM. */
NEAP_EXPORT int neap_snapshot_dump(const neap_snapshot_t *s, const char *path);
/* Snapshot.load(filename): a snapshot read from a file neap_snapshot_dump
 * wrote.  Its frames come from the file only.  NULL with errno: the file
 * system's (ENOENT, EACCES...), EINVAL for a file that is not a snapshot,
 * has another version, is truncated or corrupt (neap_snapshot_error() names
 * the file and the byte offset: "file F: truncated at byte N (expected ...)"),
 * or ENOMEM. */
NEAP_EXPORT neap_snapshot_t *neap_snapshot_load(const char *path);
/* The message of the last neap_snapshot_* or neap_trace_take_snapshot call
 * that failed in this thread ("" if none did); later successes keep it. */
NEAP_EXPORT const char *neap_snapshot_error(void);

/* The pinning report: memory the live blocks of each site keep from going
 * back to the OS.  neap's memory is 4 KiB pages in 4 MiB arenas; a page
 * holding any live byte cannot be given back, nor an arena holding any live
 * page.  A block [addr, addr + size) touches pages addr >> 12 ..
 * (addr + size - 1) >> 12.  A page touched by several sites is split
 * between them in proportion to the bytes each has in it.  Blocks with a
 * mapping of their own (huge blocks, over 1 MiB) pin exactly their pages
 * and no arena.  Under sampling only the recorded blocks are placed, so
 * pages and pinned are a lower bound while live and count are estimates.
 * A loaded snapshot reports on the process that took it. */
typedef struct neap_pinning {
    size_t live;               /* bytes of the site's live blocks */
    size_t pinned;             /* bytes of pages attributed to the site */
    size_t pages;              /* pages holding some of its blocks */
    size_t shared_pages;       /* of those, pages shared with other sites */
    size_t arenas;             /* arenas holding some of its blocks */
    size_t count;              /* its live blocks */
    size_t nframe;             /* the key, as in neap_statistic_t */
    const neap_frame_t *frame;
} neap_pinning_t;

/* One neap_pinning_t per site (key as for statistics, not cumulative),
 * sorted by pinned bytes, then live bytes, descending.  pinned / live is
 * the waste: near 1 for sites whose blocks fill their pages, up to
 * 4096 / size for a site whose few survivors each hold a page alone.  0 or
 * -1 as for statistics. */
NEAP_EXPORT int neap_snapshot_pinning(neap_snapshot_t *s, neap_key_t key,
                                      const neap_pinning_t **out, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* NEAP_TRACE_H */

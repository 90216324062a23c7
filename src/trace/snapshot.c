/* snapshot.c -- tracemalloc's Snapshot for neap (neap_trace.h): the live
 * traces frozen at one moment, grouped by allocation site, compared,
 * filtered, written to a file and read back, and the pinning report.
 *
 *   neap_snapshot_t
 *   +-----------------------+
 *   | trace[ntrace]         |---> {addr, size, stack, flags}: one per live block
 *   | stack[nstack]         |---> {first, nframe, size, count}: distinct stacks,
 *   |                       |     their traces' weights summed (estimates when
 *   |                       |     sampled)
 *   | pc[npc]               |     every stack's pcs, stack after stack
 *   | slot_frame[npc]       |---> frame index of each pc slot, NO_FRAME until
 *   |                       |     a call needs it (lazy resolution)
 *   | frame[nframe]         |---> {neap_frame_t, line}: one per distinct pc,
 *   |   pc_ix: pc -> frame  |     made by symbols.c on first use, or read
 *   |                       |     from the file (a loaded snapshot)
 *   | line[nline]           |---> representative frame of each site identity
 *   |   line_ix             |     (file:line, or file + function when the line
 *   |                       |     is unknown): what NEAP_KEY_LINENO groups by
 *   | str[nstr]             |---> interned strings (file, function, module):
 *   |   str_ix              |     one copy per text, compared by pointer
 *   | results               |---> statistics, differences, pinning already
 *   +-----------------------+     computed: handed out, kept until free
 *
 *   The indexes are util/hashtab.h tables, at most half full, their
 *   memory from neap_calloc.  pc_ix maps a pc (any value, 0 too) to its
 *   frame; take_snapshot maps trace.c's stack ids to stacks the same way.
 *   line_ix, str_ix and the temporary indexes that group stacks and join
 *   compare_to's statistics hold {hash, item + 1}, searched with a
 *   predicate that compares the hash, then the item (a frame's site, a
 *   text, a sequence of key ids, a statistic's frames).
 *
 *   statistics(key, cumulative)
 *     stacks --key ids--> groups (hash of the id sequence) --> sorted array
 *     key ids: NEAP_KEY_FILENAME the filename's string id; NEAP_KEY_LINENO
 *     and NEAP_KEY_TRACEBACK line ids (one, or one per frame)
 *   compare_to(old): both snapshots' statistics, joined on frame contents
 *   pinning: the traces' pages and arenas, split between the groups
 *     (placed by pinning.c)
 *
 * Invariants
 *   - Every string a frame or a result points to is in this snapshot's
 *     pool (frames copied from another snapshot are interned again), so
 *     results outlive the snapshots they were compared with.
 *   - frame[i].f.pc is unique (pc_ix); slot_frame[k], once set, is the frame
 *     of pc[k].
 *   - A loaded snapshot (offline) never resolves anything in this process:
 *     a pc the file gave no frame for is "<unknown>".
 *   - Everything is allocated with neap_malloc or neap_calloc (the tables
 *     too) while the thread's tracing is paused: a snapshot never shows up
 *     in the traces.
 *
 * Locking: each snapshot has a mutex that every call working on it holds
 * (the caches fill lazily even behind a const pointer).  compare_to takes
 * the old snapshot's lock, then the new one's, never both at once.
 *
 * File format (all integers little-endian; sizes in bytes):
 *
 *   header, 112 bytes:
 *       0  "NEAPSNP\0"          8  u32 version (1)   12  u32 header size (112)
 *      16  u64 file size       24  u64 sample interval (0: exact)
 *      32  u32 traceback limit 36  u32 flags (0)
 *      40  u64 strings         48  u64 string bytes
 *      56  u64 frames          64  u64 stacks        72  u64 stack frames
 *      80  u64 traces
 *      88  u32 CRC-32 of the strings, 92 of the frames, 96 of the stacks,
 *     100  of the traces      104  u32 CRC-32 of bytes 0..103   108  u32 0
 *   strings: per string, u32 length and its bytes (no NUL)
 *   frames:  per resolved pc, 32 bytes: u64 pc, u32 filename (string index),
 *            i32 line, u32 function, u32 module (string index or 0xffffffff:
 *            unknown), u64 offset in the module
 *   stacks:  per stack, u32 frame count (1..NEAP_TRACE_MAX_FRAMES), then that
 *            many u64 pcs, the most recent first
 *   traces:  per trace, 24 bytes: u64 address, u64 size, u32 stack index,
 *            u32 flags (bit 0: the block has a mapping of its own)
 */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neap_trace.h"
#include "trace/pinning.h"
#include "trace/pyframes.h"
#include "trace/symbols.h"
#include "trace/traceimpl.h"
#include "trace/tracefmt.h"
#include "util/hashtab.h"

#define NO_FRAME UINT32_MAX          /* slot_frame: not resolved yet */
#define NO_INDEX UINT32_MAX          /* indices kept in uint32_t stay below */
#define UNKNOWN "<unknown>"
#define TRACE_OWN_MAPPING 1u         /* snap_trace_t.flags: a huge block */

#define FILE_MAGIC "NEAPSNP"         /* 8 bytes with its NUL */
#define FILE_VERSION 1u
#define FILE_HEADER 112u
#define FILE_FRAME_REC 32u
#define FILE_TRACE_REC 24u
#define FILE_NONE 0xffffffffu        /* string index: unknown */

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------- */
typedef struct snap_trace {
    uintptr_t addr;          /* the block */
    size_t size;             /* bytes asked for */
    uint32_t stack;          /* index into stack[] */
    uint32_t flags;          /* TRACE_OWN_MAPPING */
} snap_trace_t;

typedef struct snap_stack {
    size_t first;            /* its pcs: pc[first .. first + nframe) */
    uint32_t nframe;         /* at least 1 (an empty stack is one pc 0) */
    uint32_t pad;
    double size, count;      /* its traces' bytes and blocks (estimates when sampled) */
} snap_stack_t;

typedef struct snap_frame {
    neap_frame_t f;          /* strings in the pool */
    uint32_t line;           /* its site identity: index into line[] */
} snap_frame_t;

typedef struct snap_str {
    uint64_t hash;
    uint32_t id;             /* index into str[] */
    uint32_t len;
    char text[];             /* NUL-terminated */
} snap_str_t;

/* An index entry (snapix): an item kept in an array elsewhere, and its
 * hash. */
typedef struct snap_slot {
    uint64_t hash;
    uint32_t item;           /* index + 1; 0: empty slot */
    uint32_t pad;
} snap_slot_t;

/* A map entry (snapmap): a 64-bit key (a pc, a stack id) and its index. */
typedef struct snap_kv {
    uint64_t key;
    uint32_t val;
    uint32_t pad;
} snap_kv_t;

static uint64_t mix64(uint64_t x);

/* The tables (util/hashtab.h), at most half full.  snapix is looked up by
 * the caller's predicate on the item (a text, a frame's site, a key
 * sequence); snapmap by its key word, which may be any value (pc 0 too). */
#define SNAPIX_KEY(e) ((uint64_t)(e)->item)
#define SNAPIX_HASH(e) ((e)->hash)
NEAP_HASHTAB_DEFINE(snapix, snap_slot_t, SNAPIX_KEY, SNAPIX_HASH, 64, 2);
#define SNAPMAP_KEY(e) ((e)->key)
#define SNAPMAP_HASH(e) mix64((e)->key)
NEAP_HASHTAB_DEFINE(snapmap, snap_kv_t, SNAPMAP_KEY, SNAPMAP_HASH, 64, 2);

enum { RESULT_STATS, RESULT_DIFF, RESULT_PIN };

typedef struct snap_result {
    struct snap_result *next;
    int what;                /* RESULT_* */
    int cumulative;
    neap_key_t key;
    uint64_t old;            /* RESULT_DIFF: the old snapshot's serial */
    void *v;                 /* neap_statistic_t, neap_statistic_diff_t or neap_pinning_t */
    size_t n;
    neap_frame_t *frames;    /* what the entries' frame pointers point into */
} snap_result_t;

struct neap_snapshot {
    pthread_mutex_t lock;    /* held by every call on the snapshot */
    uint64_t serial;         /* unique in the process (compare_to's cache) */
    size_t interval;         /* sampling interval then; 0 exact */
    int limit;               /* traceback limit then */
    int offline;             /* 1: loaded; frames only from the file */

    snap_trace_t *trace;
    size_t ntrace, trace_cap;
    snap_stack_t *stack;
    size_t nstack, stack_cap;
    uintptr_t *pc;           /* npc entries, parallel to slot_frame */
    uint32_t *slot_frame;
    size_t npc, pc_cap, slot_cap;

    snap_frame_t *frame;
    size_t nframe, frame_cap;
    snapmap_t pc_ix;         /* pc -> frame */
    uint32_t *line;          /* line id -> its first frame */
    size_t nline, line_cap;
    snapix_t line_ix;        /* frame identity -> line id */
    snap_str_t **str;
    size_t nstr, str_cap;
    snapix_t str_ix;         /* text -> string */

    snap_result_t *results;
};

static _Atomic uint64_t snap_serial;
static __thread char snap_msg[1024];

/* ---------------------------------------------------------------------------
 * Errors and memory
 * ------------------------------------------------------------------------- */
/* Records the thread's message, sets errno to err and returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(snap_msg, sizeof snap_msg, fmt, ap);
    va_end(ap);
    errno = err;
    return -1;
}

static int fail_nomem(const char *what) {
    return fail(ENOMEM, "%s: out of memory", what);
}

/* v (capacity *cap elements of elem bytes) with room for need elements:
 * the same or a moved array, NULL when memory ran out (v still valid). */
static void *grow(void *v, size_t *cap, size_t need, size_t elem) {
    return _neap_array_grow(v, cap, need, elem, 16);
}

/* ---------------------------------------------------------------------------
 * Hashing and the index
 * ------------------------------------------------------------------------- */
#define FNV_BASIS 1469598103934665603ull

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* h continued with s (NULL hashes apart from every text). */
static uint64_t hash_str(uint64_t h, const char *s) {
    return s == NULL ? mix64(h ^ 0x5bd1e995u) : hash_bytes(h, s, strlen(s) + 1);
}

/* The tables' memory: neap_calloc (zeroed), back by neap_free. */
static void *snap_table_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return neap_calloc(1, bytes);
}

static void snap_table_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    (void)bytes;
    neap_free(p);
}

static const neap_hashtab_alloc_t snap_tables = {snap_table_alloc, snap_table_free, NULL};

/* The item of an index slot, or NO_INDEX for none (NULL, or empty). */
static uint32_t index_item(const snap_slot_t *e) {
    return e != NULL && e->item != 0 ? e->item - 1 : NO_INDEX;
}

/* Stores item (hash h) in the empty slot at from snapix_probe. */
static void index_put(snapix_t *ix, snap_slot_t *at, uint64_t h, uint32_t item) {
    snap_slot_t e = {.hash = h, .item = item + 1};
    snapix_put(ix, at, &e);
}

/* ---------------------------------------------------------------------------
 * Interned strings
 * ------------------------------------------------------------------------- */
typedef struct str_key {
    const neap_snapshot_t *s;
    const char *p;
    size_t len;
    uint64_t hash;
} str_key_t;

static inline int str_match(const snap_slot_t *e, const void *ctx) {
    const str_key_t *k = ctx;
    const snap_str_t *str = k->s->str[e->item - 1];
    return e->hash == k->hash && str->len == k->len && memcmp(str->text, k->p, k->len) == 0;
}

static const snap_str_t *str_of(const char *text) {
    return (const snap_str_t *)(const void *)(text - offsetof(snap_str_t, text));
}

/* The pool's copy of text[0..len); NULL when memory ran out. */
static const char *str_intern_n(neap_snapshot_t *s, const char *text, size_t len) {
    uint64_t h = mix64(hash_bytes(FNV_BASIS, text, len));
    if (len > UINT32_MAX || s->nstr >= NO_INDEX || snapix_reserve(&s->str_ix, 1) != 0)
        return NULL;
    str_key_t k = {s, text, len, h};
    snap_slot_t *at = snapix_probe(&s->str_ix, h, str_match, &k);
    uint32_t item = index_item(at);
    if (item != NO_INDEX)
        return s->str[item]->text;
    snap_str_t **v = grow(s->str, &s->str_cap, s->nstr + 1, sizeof *v);
    if (v == NULL)
        return NULL;
    s->str = v;
    snap_str_t *e = neap_malloc(sizeof *e + len + 1);
    if (e == NULL)
        return NULL;
    e->hash = h;
    e->id = (uint32_t)s->nstr;
    e->len = (uint32_t)len;
    memcpy(e->text, text, len);
    e->text[len] = 0;
    s->str[s->nstr++] = e;
    index_put(&s->str_ix, at, h, e->id);
    return e->text;
}

/* The same for a C string; NULL stays NULL.  *ok becomes 0 when memory
 * ran out. */
static const char *str_intern(neap_snapshot_t *s, const char *text, int *ok) {
    if (text == NULL)
        return NULL;
    const char *r = str_intern_n(s, text, strlen(text));
    if (r == NULL)
        *ok = 0;
    return r;
}

/* ---------------------------------------------------------------------------
 * Frames: identity, resolution, the caches
 * ------------------------------------------------------------------------- */
static int str_same(const char *a, const char *b) {
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Two frames are one site: same file and line; with no line, the same
 * function, or with none either, the same module offset.  Compares texts,
 * so it holds across snapshots. */
static int frame_same(const neap_frame_t *a, const neap_frame_t *b) {
    if (a->lineno != b->lineno || !str_same(a->filename, b->filename))
        return 0;
    if (a->lineno != 0)
        return 1;
    if (a->function != NULL || b->function != NULL)
        return str_same(a->function, b->function);
    return str_same(a->module, b->module) && a->offset == b->offset;
}

/* A hash consistent with frame_same, continuing from h. */
static uint64_t frame_hash(uint64_t h, const neap_frame_t *f) {
    h = hash_str(h, f->filename);
    h = mix64(h ^ (uint64_t)(unsigned)f->lineno);
    if (f->lineno != 0)
        return h;
    if (f->function != NULL)
        return hash_str(h, f->function);
    return mix64(hash_str(h, f->module) ^ (uint64_t)f->offset);
}

/* Orders frames for ties in the sorted results: file, line, function. */
static int frame_cmp(const neap_frame_t *a, const neap_frame_t *b) {
    int c = strcmp(a->filename, b->filename);
    if (c != 0)
        return c;
    if (a->lineno != b->lineno)
        return a->lineno < b->lineno ? -1 : 1;
    if (a->function != b->function) {
        if (a->function == NULL || b->function == NULL)
            return a->function == NULL ? -1 : 1;
        c = strcmp(a->function, b->function);
        if (c != 0)
            return c;
    }
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static int frames_cmp(const neap_frame_t *a, size_t an, const neap_frame_t *b, size_t bn) {
    for (size_t i = 0; i < an && i < bn; i++) {
        int c = frame_cmp(&a[i], &b[i]);
        if (c != 0)
            return c;
    }
    return an < bn ? -1 : an > bn;
}

typedef struct line_key {
    const neap_snapshot_t *s;
    const neap_frame_t *f;
    uint64_t hash;
} line_key_t;

static inline int line_match(const snap_slot_t *e, const void *ctx) {
    const line_key_t *k = ctx;
    return e->hash == k->hash && frame_same(&k->s->frame[k->s->line[e->item - 1]].f, k->f);
}

static uint64_t pc_hash(uintptr_t pc) {
    return mix64((uint64_t)pc);
}

/* The frame index of pc if the snapshot has one, else NO_INDEX. */
static uint32_t frame_find(const neap_snapshot_t *s, uintptr_t pc) {
    const snap_kv_t *e = snapmap_find(&s->pc_ix, (uint64_t)pc, pc_hash(pc));
    return e != NULL ? e->val : NO_INDEX;
}

/* Adds f (its strings already the pool's; its pc not in the snapshot yet)
 * with its site identity; the new frame's index, or -1 (no memory). */
static long frame_add(neap_snapshot_t *s, const neap_frame_t *f) {
    if (s->nframe >= NO_INDEX - 1 || snapmap_reserve(&s->pc_ix, 1) != 0 ||
        snapix_reserve(&s->line_ix, 1) != 0)
        return -1;
    snap_frame_t *fv = grow(s->frame, &s->frame_cap, s->nframe + 1, sizeof *fv);
    if (fv == NULL)
        return -1;
    s->frame = fv;
    uint32_t *lv = grow(s->line, &s->line_cap, s->nline + 1, sizeof *lv);
    if (lv == NULL)
        return -1;
    s->line = lv;
    uint32_t fi = (uint32_t)s->nframe;
    /* the last step that can fail (pc 0 goes beside the slots, in memory
     * the reservation did not cover): nothing is changed before it */
    snap_kv_t pe = {.key = (uint64_t)f->pc, .val = fi};
    if (snapmap_add(&s->pc_ix, &pe) == NULL)
        return -1;
    uint64_t lh = frame_hash(FNV_BASIS, f);
    line_key_t lk = {s, f, lh};
    snap_slot_t *at = snapix_probe(&s->line_ix, lh, line_match, &lk);
    uint32_t line = index_item(at);
    if (line == NO_INDEX) {
        line = (uint32_t)s->nline;
        s->line[s->nline++] = fi;
        index_put(&s->line_ix, at, lh, line);
    }
    s->frame[fi] = (snap_frame_t){*f, line};
    s->nframe++;
    return fi;
}

/* Fills *out with what pc is (strings interned); 0, or -1 (no memory).
 * pyframes.c answers for a Python frame (bit 63 set), symbols.c for a
 * return address (DWARF through libdw, else dladdr's dynamic symbols);
 * pc 0, and any pc of an offline snapshot, is unknown. */
static int resolve_pc(neap_snapshot_t *s, uintptr_t pc, neap_frame_t *out) {
    const char *file = NULL, *function = NULL, *module = NULL;
    int line = 0;
    uintptr_t offset = 0;
    _neap_symbol_t sym;
    const _neap_pyframe_t *pf = s->offline ? NULL : _neap_py_frame(pc);
    if (pf != NULL) {
        /* a Python frame (pyframes.h): the .py file, its line, the function */
        file = pf->file;
        line = (int)pf->line;
        function = pf->func;
    } else if (pc != 0 && !s->offline && !_neap_is_pyframe(pc) &&
               _neap_symtab_resolve(_neap_symtab_self(), pc, NEAP_SYM_RETURN_ADDRESS, &sym) == 0) {
        file = sym.file;
        line = sym.file != NULL && sym.line > 0 ? sym.line : 0;
        function = sym.function;
        module = sym.module;
        offset = sym.module != NULL ? sym.module_offset : 0;
    }
    int ok = 1;
    out->filename = str_intern(s, file ? file : module ? module : UNKNOWN, &ok);
    out->lineno = file ? line : 0;
    out->function = str_intern(s, function, &ok);
    out->pc = pc;
    out->module = str_intern(s, module, &ok);
    out->offset = offset;
    return ok ? 0 : -1;
}

/* The frame of pc slot k, resolved and cached on first use; -1 (no memory). */
static long slot_frame(neap_snapshot_t *s, size_t k) {
    uint32_t f = s->slot_frame[k];
    if (f != NO_FRAME)
        return f;
    f = frame_find(s, s->pc[k]);
    if (f == NO_INDEX) {
        neap_frame_t fr;
        long r = resolve_pc(s, s->pc[k], &fr);
        if (r == 0)
            r = frame_add(s, &fr);
        if (r < 0)
            return -1;
        f = (uint32_t)r;
    }
    s->slot_frame[k] = f;
    return f;
}

/* Copies a frame of another snapshot into s (strings interned again);
 * 0, or -1 (no memory). */
static int frame_import(neap_snapshot_t *s, const neap_frame_t *src, neap_frame_t *dst) {
    int ok = 1;
    *dst = *src;
    dst->filename = str_intern(s, src->filename, &ok);
    dst->function = str_intern(s, src->function, &ok);
    dst->module = str_intern(s, src->module, &ok);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------
 * Making a snapshot
 * ------------------------------------------------------------------------- */
static neap_snapshot_t *snap_new(size_t interval, int limit, int offline) {
    neap_snapshot_t *s = neap_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->serial = atomic_fetch_add_explicit(&snap_serial, 1, memory_order_relaxed) + 1;
    s->interval = interval;
    s->limit = limit;
    s->offline = offline;
    snapmap_init(&s->pc_ix, &snap_tables);
    snapix_init(&s->line_ix, &snap_tables);
    snapix_init(&s->str_ix, &snap_tables);
    return s;
}

static void snap_destroy(neap_snapshot_t *s) {
    if (s == NULL)
        return;
    for (snap_result_t *r = s->results, *next; r != NULL; r = next) {
        next = r->next;
        neap_free(r->v);
        neap_free(r->frames);
        neap_free(r);
    }
    for (size_t i = 0; i < s->nstr; i++)
        neap_free(s->str[i]);
    neap_free(s->str);
    snapix_destroy(&s->str_ix);
    neap_free(s->line);
    snapix_destroy(&s->line_ix);
    neap_free(s->frame);
    snapmap_destroy(&s->pc_ix);
    neap_free(s->pc);
    neap_free(s->slot_frame);
    neap_free(s->stack);
    neap_free(s->trace);
    pthread_mutex_destroy(&s->lock);
    neap_free(s);
}

/* Appends a stack of n pcs (n == 0: one unknown pc; at most
 * NEAP_TRACE_MAX_FRAMES kept); its index, or -1. */
static long stack_add(neap_snapshot_t *s, const uintptr_t *pc, size_t n) {
    static const uintptr_t none = 0;
    if (n == 0) {
        pc = &none;
        n = 1;
    }
    if (n > NEAP_TRACE_MAX_FRAMES)
        n = NEAP_TRACE_MAX_FRAMES;
    if (s->nstack >= NO_INDEX - 1)
        return -1;
    snap_stack_t *sv = grow(s->stack, &s->stack_cap, s->nstack + 1, sizeof *sv);
    if (sv == NULL)
        return -1;
    s->stack = sv;
    uintptr_t *pv = grow(s->pc, &s->pc_cap, s->npc + n, sizeof *pv);
    if (pv == NULL)
        return -1;
    s->pc = pv;
    uint32_t *fv = grow(s->slot_frame, &s->slot_cap, s->npc + n, sizeof *fv);
    if (fv == NULL)
        return -1;
    s->slot_frame = fv;
    memcpy(s->pc + s->npc, pc, n * sizeof *pc);
    for (size_t k = 0; k < n; k++)
        s->slot_frame[s->npc + k] = NO_FRAME;
    s->stack[s->nstack] = (snap_stack_t){.first = s->npc, .nframe = (uint32_t)n};
    s->npc += n;
    return (long)s->nstack++;
}

static int trace_add(neap_snapshot_t *s, uintptr_t addr, size_t size, uint32_t stack,
                     uint32_t flags) {
    snap_trace_t *tv = grow(s->trace, &s->trace_cap, s->ntrace + 1, sizeof *tv);
    if (tv == NULL)
        return -1;
    s->trace = tv;
    s->trace[s->ntrace++] = (snap_trace_t){addr, size, stack, flags};
    return 0;
}

/* Sums each stack's traces: bytes and blocks, or their unbiased estimates
 * when sampled (a trace of s bytes stands for w bytes and w / s blocks). */
static void stacks_weigh(neap_snapshot_t *s) {
    for (size_t i = 0; i < s->nstack; i++)
        s->stack[i].size = s->stack[i].count = 0;
    for (size_t i = 0; i < s->ntrace; i++) {
        const snap_trace_t *t = &s->trace[i];
        double w = _neap_trace_weight(t->size, s->interval);
        s->stack[t->stack].size += w;
        s->stack[t->stack].count += t->size > 0 ? w / (double)t->size : 1.0;
    }
}

/* The block has a mapping of its own: what neap's address map says, or for
 * an address neap does not know (freed since), its size. */
static uint32_t trace_flags(uintptr_t addr, size_t size) {
    uint8_t kind = _neap_map_kind(addr);
    if (kind == NEAP_MAP_ARENA)
        return 0;
    if (kind != NEAP_MAP_NONE || size > NEAP_LARGE_MAX)
        return TRACE_OWN_MAPPING;
    return 0;
}

static neap_snapshot_t *take_snapshot(void) {
    if (!neap_trace_is_tracing())
        return fail(EINVAL, "neap_trace_take_snapshot: not tracing (neap_trace_start first)"),
               NULL;
    _neap_rawtrace_t *raw = NULL;
    size_t interval = 0;
    int nframe = 1;
    long n = _neap_trace_copy(&raw, &interval, &nframe);
    if (n < 0 && errno == ENOTSUP)
        return fail(ENOTSUP, "neap_trace_take_snapshot: the traces go to the NEAP_TRACE file, "
                             "not to memory (neap_trace_start first)"),
               NULL;
    if (n < 0)
        return fail_nomem("neap_trace_take_snapshot"), NULL;
    neap_snapshot_t *s = snap_new(interval, nframe, 0);
    snapmap_t map = NEAP_HASHTAB_INIT(&snap_tables); /* trace.c's stack id -> stack index */
    if (s == NULL)
        goto nomem;
    for (long i = 0; i < n; i++) {
        const _neap_rawtrace_t *t = &raw[i];
        snap_kv_t e = {.key = t->stack_id};
        int added;
        snap_kv_t *at = snapmap_insert(&map, &e, mix64(t->stack_id), &added);
        if (at == NULL)
            goto nomem;
        if (added) {
            long r = stack_add(s, t->frame, t->nframe);
            if (r < 0)
                goto nomem;
            at->val = (uint32_t)r;
        }
        if (trace_add(s, t->addr, t->size, at->val, trace_flags(t->addr, t->size)) != 0)
            goto nomem;
    }
    stacks_weigh(s);
    snapmap_destroy(&map);
    neap_free(raw);
    return s;
nomem:
    snapmap_destroy(&map);
    neap_free(raw);
    snap_destroy(s);
    return fail_nomem("neap_trace_take_snapshot"), NULL;
}

/* ---------------------------------------------------------------------------
 * Grouping stacks by key
 * ------------------------------------------------------------------------- */
typedef struct snap_group {
    uint64_t hash;
    size_t off;              /* its key: ids[off .. off + n) */
    uint32_t n;
    uint32_t last;           /* the last stack counted + 1 (once per stack) */
    double size, count;
} snap_group_t;

typedef struct snap_grouping {
    snap_group_t *g;
    size_t n, cap;
    uint32_t *ids;           /* the groups' keys, one after another */
    size_t nids, ids_cap;
    snapix_t ix;             /* key ids -> group */
} snap_grouping_t;

#define GROUPING_INIT {.ix = NEAP_HASHTAB_INIT(&snap_tables)}

typedef struct ids_key {
    const snap_grouping_t *gr;
    const uint32_t *ids;
    uint32_t n;
    uint64_t hash;
} ids_key_t;

static inline int group_match(const snap_slot_t *e, const void *ctx) {
    const ids_key_t *k = ctx;
    const snap_group_t *g = &k->gr->g[e->item - 1];
    return e->hash == k->hash && g->n == k->n &&
           memcmp(k->gr->ids + g->off, k->ids, k->n * sizeof *k->ids) == 0;
}

/* Counts stack's size and count for the group of key ids[0..n), made if
 * new; a stack counts once per group.  The group's index, or -1. */
static long group_add(snap_grouping_t *gr, const uint32_t *ids, uint32_t n, uint32_t stack,
                      double size, double count) {
    uint64_t h = FNV_BASIS ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = mix64(h ^ ids[i]);
    if (snapix_reserve(&gr->ix, 1) != 0)
        return -1;
    ids_key_t k = {gr, ids, n, h};
    snap_slot_t *at = snapix_probe(&gr->ix, h, group_match, &k);
    uint32_t gi = index_item(at);
    if (gi == NO_INDEX) {
        snap_group_t *gv = grow(gr->g, &gr->cap, gr->n + 1, sizeof *gv);
        if (gv == NULL)
            return -1;
        gr->g = gv;
        uint32_t *iv = grow(gr->ids, &gr->ids_cap, gr->nids + n, sizeof *iv);
        if (iv == NULL)
            return -1;
        gr->ids = iv;
        memcpy(gr->ids + gr->nids, ids, n * sizeof *ids);
        gi = (uint32_t)gr->n++;
        gr->g[gi] = (snap_group_t){.hash = h, .off = gr->nids, .n = n};
        gr->nids += n;
        index_put(&gr->ix, at, h, gi);
    }
    snap_group_t *g = &gr->g[gi];
    if (g->last != stack + 1) {
        g->last = stack + 1;
        g->size += size;
        g->count += count;
    }
    return gi;
}

static void grouping_release(snap_grouping_t *gr) {
    neap_free(gr->g);
    neap_free(gr->ids);
    snapix_destroy(&gr->ix);
}

/* The key id of frame f: its filename's string id, or its line id. */
static uint32_t frame_key_id(const neap_snapshot_t *s, long f, neap_key_t key) {
    return key == NEAP_KEY_FILENAME ? str_of(s->frame[f].f.filename)->id : s->frame[f].line;
}

/* The frame a key id stands for in results. */
static neap_frame_t key_frame(const neap_snapshot_t *s, neap_key_t key, uint32_t id) {
    if (key == NEAP_KEY_FILENAME)
        return (neap_frame_t){.filename = s->str[id]->text};
    return s->frame[s->line[id]].f;
}

/* Groups every stack by key: the most recent frame's (FILENAME, LINENO) or
 * all of them (TRACEBACK); cumulative: one group per site of every frame.
 * stack_group (not cumulative) gets each stack's group.  0, or -1 (no
 * memory). */
static int group_stacks(neap_snapshot_t *s, neap_key_t key, int cumulative, snap_grouping_t *gr,
                        uint32_t *stack_group) {
    uint32_t ids[NEAP_TRACE_MAX_FRAMES];
    for (size_t i = 0; i < s->nstack; i++) {
        const snap_stack_t *st = &s->stack[i];
        uint32_t n = cumulative || key == NEAP_KEY_TRACEBACK ? st->nframe : 1;
        for (uint32_t k = 0; k < n; k++) {
            long f = slot_frame(s, st->first + k);
            if (f < 0)
                return -1;
            ids[k] = frame_key_id(s, f, key);
            if (cumulative && group_add(gr, &ids[k], 1, (uint32_t)i, st->size, st->count) < 0)
                return -1;
        }
        if (!cumulative) {
            long g = group_add(gr, ids, n, (uint32_t)i, st->size, st->count);
            if (g < 0)
                return -1;
            if (stack_group != NULL)
                stack_group[i] = (uint32_t)g;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------- */
static snap_result_t *result_find(const neap_snapshot_t *s, int what, neap_key_t key,
                                  int cumulative, uint64_t old) {
    for (snap_result_t *r = s->results; r != NULL; r = r->next)
        if (r->what == what && r->key == key && r->cumulative == cumulative && r->old == old)
            return r;
    return NULL;
}

/* A result of n entries of elem bytes and nframes frames, not linked yet;
 * NULL when memory ran out. */
static snap_result_t *result_new(int what, neap_key_t key, int cumulative, uint64_t old, size_t n,
                                 size_t elem, size_t nframes) {
    snap_result_t *r = neap_calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    *r = (snap_result_t){.what = what, .key = key, .cumulative = cumulative, .old = old, .n = n};
    r->v = n ? neap_calloc(n, elem) : NULL;
    r->frames = nframes ? neap_calloc(nframes, sizeof *r->frames) : NULL;
    if ((n && r->v == NULL) || (nframes && r->frames == NULL)) {
        neap_free(r->v);
        neap_free(r->frames);
        neap_free(r);
        return NULL;
    }
    return r;
}

static void result_link(neap_snapshot_t *s, snap_result_t *r) {
    r->next = s->results;
    s->results = r;
}

/* Rounds an estimate to a count of bytes or blocks. */
static size_t round_size(double x) {
    return x <= 0 ? 0 : x >= 0x1p64 ? SIZE_MAX : (size_t)(x + 0.5);
}

static int stat_cmp(const void *a, const void *b) {
    const neap_statistic_t *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return frames_cmp(x->frame, x->nframe, y->frame, y->nframe);
}

/* s's statistics for (key, cumulative), computed on first request; NULL
 * (message set) when memory ran out.  s locked. */
static snap_result_t *stats_locked(neap_snapshot_t *s, neap_key_t key, int cumulative) {
    snap_result_t *r = result_find(s, RESULT_STATS, key, cumulative, 0);
    if (r != NULL)
        return r;
    snap_grouping_t gr = GROUPING_INIT;
    if (group_stacks(s, key, cumulative, &gr, NULL) != 0 ||
        (r = result_new(RESULT_STATS, key, cumulative, 0, gr.n, sizeof(neap_statistic_t),
                        gr.nids)) == NULL) {
        grouping_release(&gr);
        return fail_nomem("neap_snapshot_statistics"), NULL;
    }
    for (size_t k = 0; k < gr.nids; k++)
        r->frames[k] = key_frame(s, key, gr.ids[k]);
    neap_statistic_t *v = r->v;
    for (size_t i = 0; i < gr.n; i++) {
        const snap_group_t *g = &gr.g[i];
        v[i] = (neap_statistic_t){round_size(g->size), round_size(g->count), g->n,
                                  r->frames + g->off};
    }
    grouping_release(&gr);
    if (r->n > 1)
        qsort(v, r->n, sizeof *v, stat_cmp);
    result_link(s, r);
    return r;
}

/* ---------------------------------------------------------------------------
 * compare_to
 * ------------------------------------------------------------------------- */
static uint64_t stat_hash(const neap_frame_t *f, size_t n) {
    uint64_t h = FNV_BASIS ^ n;
    for (size_t i = 0; i < n; i++)
        h = mix64(frame_hash(h, &f[i]));
    return h;
}

typedef struct stat_key {
    const neap_statistic_t *olds;
    const neap_statistic_t *b;
    uint64_t hash;
} stat_key_t;

static inline int stat_match(const snap_slot_t *e, const void *ctx) {
    const stat_key_t *k = ctx;
    const neap_statistic_t *a = &k->olds[e->item - 1], *b = k->b;
    if (e->hash != k->hash || a->nframe != b->nframe)
        return 0;
    for (size_t i = 0; i < a->nframe; i++)
        if (!frame_same(&a->frame[i], &b->frame[i]))
            return 0;
    return 1;
}

static long long abs_ll(long long x) {
    return x < 0 ? -x : x;
}

static int diff_cmp(const void *a, const void *b) {
    const neap_statistic_diff_t *x = a, *y = b;
    if (abs_ll(x->size_diff) != abs_ll(y->size_diff))
        return abs_ll(x->size_diff) < abs_ll(y->size_diff) ? 1 : -1;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    if (abs_ll(x->count_diff) != abs_ll(y->count_diff))
        return abs_ll(x->count_diff) < abs_ll(y->count_diff) ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return frames_cmp(x->frame, x->nframe, y->frame, y->nframe);
}

static long long ll_of(size_t x) {
    return x > (size_t)LLONG_MAX ? LLONG_MAX : (long long)x;
}

/* The differences of s's statistics (key, cumulative) from old's (its
 * array olds[0..nold), serial old_serial); cached.  s locked.  NULL
 * (message set) when memory ran out. */
static snap_result_t *diff_locked(neap_snapshot_t *s, neap_key_t key, int cumulative,
                                  const neap_statistic_t *olds, size_t nold, uint64_t old_serial) {
    snap_result_t *r = result_find(s, RESULT_DIFF, key, cumulative, old_serial);
    if (r != NULL)
        return r;
    snap_result_t *news = stats_locked(s, key, cumulative);
    if (news == NULL)
        return NULL;
    const neap_statistic_t *nv = news->v;
    snapix_t ix = NEAP_HASHTAB_INIT(&snap_tables); /* olds by frame contents */
    uint8_t *matched = nold ? neap_calloc(nold, 1) : NULL;
    uint32_t *match = news->n ? neap_malloc(news->n * sizeof *match) : NULL;
    if ((nold && matched == NULL) || (news->n && match == NULL))
        goto nomem;
    for (size_t i = 0; i < nold; i++) {
        if (snapix_reserve(&ix, 1) != 0)
            goto nomem;
        uint64_t h = stat_hash(olds[i].frame, olds[i].nframe);
        stat_key_t k = {olds, &olds[i], h};
        snap_slot_t *at = snapix_probe(&ix, h, stat_match, &k);
        if (at->item == 0)
            index_put(&ix, at, h, (uint32_t)i);
        else
            at->item = (uint32_t)i + 1; /* the same frames twice: the later one */
    }
    size_t n = news->n, nframes = 0;
    for (size_t i = 0; i < news->n; i++) {
        match[i] = NO_INDEX;
        if (nold > 0) {
            uint64_t h = stat_hash(nv[i].frame, nv[i].nframe);
            stat_key_t k = {olds, &nv[i], h};
            match[i] = index_item(snapix_lookup(&ix, h, stat_match, &k));
        }
        if (match[i] != NO_INDEX)
            matched[match[i]] = 1;
        nframes += nv[i].nframe;
    }
    for (size_t i = 0; i < nold; i++) {
        if (!matched[i]) {
            n++;
            nframes += olds[i].nframe;
        }
    }
    r = result_new(RESULT_DIFF, key, cumulative, old_serial, n, sizeof(neap_statistic_diff_t),
                   nframes);
    if (r == NULL)
        goto nomem;
    neap_statistic_diff_t *dv = r->v;
    size_t k = 0, fk = 0;
    for (size_t i = 0; i < news->n; i++, k++) {
        const neap_statistic_t *o = match[i] != NO_INDEX ? &olds[match[i]] : NULL;
        dv[k] = (neap_statistic_diff_t){
            .size = nv[i].size,
            .size_diff = ll_of(nv[i].size) - (o ? ll_of(o->size) : 0),
            .count = nv[i].count,
            .count_diff = ll_of(nv[i].count) - (o ? ll_of(o->count) : 0),
            .nframe = nv[i].nframe,
            .frame = r->frames + fk};
        memcpy(r->frames + fk, nv[i].frame, nv[i].nframe * sizeof *r->frames);
        fk += nv[i].nframe;
    }
    for (size_t i = 0; i < nold; i++) {
        if (matched[i])
            continue;
        dv[k++] = (neap_statistic_diff_t){.size_diff = -ll_of(olds[i].size),
                                          .count_diff = -ll_of(olds[i].count),
                                          .nframe = olds[i].nframe,
                                          .frame = r->frames + fk};
        for (size_t j = 0; j < olds[i].nframe; j++, fk++)
            if (frame_import(s, &olds[i].frame[j], &r->frames[fk]) != 0) {
                neap_free(r->v);
                neap_free(r->frames);
                neap_free(r);
                goto nomem;
            }
    }
    if (r->n > 1)
        qsort(dv, r->n, sizeof *dv, diff_cmp);
    result_link(s, r);
    snapix_destroy(&ix);
    neap_free(matched);
    neap_free(match);
    return r;
nomem:
    snapix_destroy(&ix);
    neap_free(matched);
    neap_free(match);
    return fail_nomem("neap_snapshot_compare_to"), NULL;
}

/* ---------------------------------------------------------------------------
 * Pinning
 * ------------------------------------------------------------------------- */
static int pin_cmp(const void *a, const void *b) {
    const neap_pinning_t *x = a, *y = b;
    if (x->pinned != y->pinned)
        return x->pinned < y->pinned ? 1 : -1;
    if (x->live != y->live)
        return x->live < y->live ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return frames_cmp(x->frame, x->nframe, y->frame, y->nframe);
}

_Static_assert(NEAP_PIN_PAGE_SHIFT == NEAP_PAGE_SHIFT && NEAP_PIN_ARENA_SHIFT == NEAP_ARENA_SHIFT,
               "pinning.c places blocks in neap's pages and arenas");
_Static_assert(NEAP_LARGE_MAX <= NEAP_PIN_NONHUGE_MAX,
               "a block that is not huge (no more than NEAP_LARGE_MAX) is one pinning.c takes");

/* Places every trace's pages and arenas (see neap_pinning_t; pinning.c
 * does it) and adds them to acc[its site]: a trace is huge when the address
 * map said so at snapshot time, else when over NEAP_LARGE_MAX.  0, or -1
 * (no memory). */
static int pin_place(const neap_snapshot_t *s, const uint32_t *stack_group, size_t nsites,
                     _neap_pin_site_t *acc) {
    _neap_pin_block_t *blocks = neap_malloc((s->ntrace ? s->ntrace : 1) * sizeof *blocks);
    if (blocks == NULL)
        return -1;
    for (size_t i = 0; i < s->ntrace; i++) {
        const snap_trace_t *t = &s->trace[i];
        blocks[i] = (_neap_pin_block_t){
            .addr = t->addr,
            .size = t->size,
            .site = stack_group[t->stack],
            .huge = (t->flags & TRACE_OWN_MAPPING) || t->size > NEAP_LARGE_MAX};
    }
    int rc = _neap_pinning(blocks, s->ntrace, acc, nsites);
    neap_free(blocks);
    return rc;
}

/* s's pinning report by key, computed on first request.  s locked. */
static snap_result_t *pinning_locked(neap_snapshot_t *s, neap_key_t key) {
    snap_result_t *r = result_find(s, RESULT_PIN, key, 0, 0);
    if (r != NULL)
        return r;
    snap_grouping_t gr = GROUPING_INIT;
    _neap_pin_site_t *acc = NULL;
    uint32_t *stack_group = neap_malloc((s->nstack ? s->nstack : 1) * sizeof *stack_group);
    if (stack_group == NULL || group_stacks(s, key, 0, &gr, stack_group) != 0)
        goto nomem;
    acc = neap_calloc(gr.n ? gr.n : 1, sizeof *acc);
    if (acc == NULL || pin_place(s, stack_group, gr.n, acc) != 0)
        goto nomem;
    r = result_new(RESULT_PIN, key, 0, 0, gr.n, sizeof(neap_pinning_t), gr.nids);
    if (r == NULL)
        goto nomem;
    for (size_t k = 0; k < gr.nids; k++)
        r->frames[k] = key_frame(s, key, gr.ids[k]);
    neap_pinning_t *v = r->v;
    for (size_t i = 0; i < gr.n; i++) {
        const snap_group_t *g = &gr.g[i];
        v[i] = (neap_pinning_t){.live = round_size(g->size),
                                .pinned = round_size(acc[i].pages * NEAP_PAGE_SIZE),
                                .pages = acc[i].pages_alone + acc[i].pages_shared,
                                .shared_pages = acc[i].pages_shared,
                                .arenas = acc[i].arenas,
                                .count = round_size(g->count),
                                .nframe = g->n,
                                .frame = r->frames + g->off};
    }
    if (r->n > 1)
        qsort(v, r->n, sizeof *v, pin_cmp);
    result_link(s, r);
    grouping_release(&gr);
    neap_free(acc);
    neap_free(stack_group);
    return r;
nomem:
    grouping_release(&gr);
    neap_free(acc);
    neap_free(stack_group);
    return fail_nomem("neap_snapshot_pinning"), NULL;
}

/* ---------------------------------------------------------------------------
 * filter_traces
 * ------------------------------------------------------------------------- */
static int frame_matches(const neap_filter_t *f, const neap_frame_t *fr) {
    return fnmatch(f->filename_pattern, fr->filename, 0) == 0 &&
           (f->lineno == 0 || fr->lineno == f->lineno);
}

/* Python's Filter._match for the traces of stack i: 1 if the filter lets
 * them through, 0 if not, -1 when memory ran out. */
static int filter_stack(neap_snapshot_t *s, const neap_filter_t *f, size_t i) {
    const snap_stack_t *st = &s->stack[i];
    uint32_t n = f->all_frames ? st->nframe : 1;
    int any = 0;
    for (uint32_t k = 0; k < n && !any; k++) {
        long fr = slot_frame(s, st->first + k);
        if (fr < 0)
            return -1;
        any = frame_matches(f, &s->frame[fr].f);
    }
    return f->inclusive ? any : !any;
}

/* The new snapshot of the traces of s the filters let through.  s locked. */
static neap_snapshot_t *filter_locked(neap_snapshot_t *s, const neap_filter_t *filters, size_t n) {
    const char *who = "neap_snapshot_filter_traces";
    int inclusive = 0;
    for (size_t j = 0; j < n; j++) {
        if (filters[j].filename_pattern == NULL)
            return fail(EINVAL, "%s: filter %zu has a NULL filename_pattern", who, j), NULL;
        if (filters[j].lineno < 0)
            return fail(EINVAL, "%s: filter %zu: lineno %d (0 for any line)", who, j,
                        filters[j].lineno),
                   NULL;
        inclusive |= filters[j].inclusive != 0;
    }
    neap_snapshot_t *d = snap_new(s->interval, s->limit, s->offline);
    uint32_t *remap = neap_malloc((s->nstack ? s->nstack : 1) * sizeof *remap);
    if (d == NULL || remap == NULL)
        goto nomem;
    for (size_t i = 0; i < s->nstack; i++) {
        int pass = !inclusive;
        for (size_t j = 0; j < n && !pass; j++) {
            if (!filters[j].inclusive)
                continue;
            if ((pass = filter_stack(s, &filters[j], i)) < 0)
                goto nomem;
        }
        for (size_t j = 0; j < n && pass; j++) {
            if (filters[j].inclusive)
                continue;
            if ((pass = filter_stack(s, &filters[j], i)) < 0)
                goto nomem;
        }
        remap[i] = NO_INDEX;
        if (!pass)
            continue;
        const snap_stack_t *st = &s->stack[i];
        long r = stack_add(d, s->pc + st->first, st->nframe);
        if (r < 0)
            goto nomem;
        remap[i] = (uint32_t)r;
        /* the frames s has for these pcs: resolved once is enough */
        for (uint32_t k = 0; k < st->nframe; k++) {
            uintptr_t pc = s->pc[st->first + k];
            uint32_t f = frame_find(s, pc);
            if (f == NO_INDEX || frame_find(d, pc) != NO_INDEX)
                continue;
            neap_frame_t fr;
            if (frame_import(d, &s->frame[f].f, &fr) != 0 || frame_add(d, &fr) < 0)
                goto nomem;
        }
    }
    for (size_t i = 0; i < s->ntrace; i++) {
        const snap_trace_t *t = &s->trace[i];
        if (remap[t->stack] != NO_INDEX &&
            trace_add(d, t->addr, t->size, remap[t->stack], t->flags) != 0)
            goto nomem;
    }
    stacks_weigh(d);
    neap_free(remap);
    return d;
nomem:
    neap_free(remap);
    snap_destroy(d);
    return fail_nomem(who), NULL;
}

/* ---------------------------------------------------------------------------
 * dump
 * ------------------------------------------------------------------------- */
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A section being written: its CRC and length, and the file (NULL on the
 * first pass, which only measures). */
typedef struct snap_out {
    FILE *f;
    uint32_t crc;
    uint64_t bytes;
} snap_out_t;

static void out_bytes(snap_out_t *o, const void *p, size_t n) {
    o->crc = _neap_trace_crc32(o->crc, p, n);
    o->bytes += n;
    if (o->f != NULL && n > 0)
        fwrite(p, 1, n, o->f);
}

static void out_u32(snap_out_t *o, uint32_t v) {
    uint8_t b[4];
    put_u32(b, v);
    out_bytes(o, b, 4);
}

static void out_u64(snap_out_t *o, uint64_t v) {
    uint8_t b[8];
    put_u64(b, v);
    out_bytes(o, b, 8);
}

enum { SEC_STRINGS, SEC_FRAMES, SEC_STACKS, SEC_TRACES, SECTIONS };

/* What the dump writes: strings numbered in the file's order. */
typedef struct dump_plan {
    uint32_t *file_id;       /* pool id -> index in the file, FILE_NONE: unused */
    uint32_t *order;         /* file index -> pool id */
    uint32_t nstr;
} dump_plan_t;

static void plan_str(dump_plan_t *p, const char *text) {
    if (text == NULL)
        return;
    uint32_t id = str_of(text)->id;
    if (p->file_id[id] == FILE_NONE) {
        p->file_id[id] = p->nstr;
        p->order[p->nstr++] = id;
    }
}

static uint32_t plan_index(const dump_plan_t *p, const char *text) {
    return text == NULL ? FILE_NONE : p->file_id[str_of(text)->id];
}

/* Writes (or, with o->f NULL, measures) one section. */
static void dump_section(const neap_snapshot_t *s, const dump_plan_t *p, int sec, snap_out_t *o) {
    switch (sec) {
    case SEC_STRINGS:
        for (uint32_t i = 0; i < p->nstr; i++) {
            const snap_str_t *e = s->str[p->order[i]];
            out_u32(o, e->len);
            out_bytes(o, e->text, e->len);
        }
        break;
    case SEC_FRAMES:
        for (size_t i = 0; i < s->nframe; i++) {
            const neap_frame_t *f = &s->frame[i].f;
            uint8_t b[FILE_FRAME_REC];
            put_u64(b, f->pc);
            put_u32(b + 8, plan_index(p, f->filename));
            put_u32(b + 12, (uint32_t)f->lineno);
            put_u32(b + 16, plan_index(p, f->function));
            put_u32(b + 20, plan_index(p, f->module));
            put_u64(b + 24, f->offset);
            out_bytes(o, b, sizeof b);
        }
        break;
    case SEC_STACKS:
        for (size_t i = 0; i < s->nstack; i++) {
            const snap_stack_t *st = &s->stack[i];
            out_u32(o, st->nframe);
            for (uint32_t k = 0; k < st->nframe; k++)
                out_u64(o, s->pc[st->first + k]);
        }
        break;
    default:
        for (size_t i = 0; i < s->ntrace; i++) {
            const snap_trace_t *t = &s->trace[i];
            uint8_t b[FILE_TRACE_REC];
            put_u64(b, t->addr);
            put_u64(b + 8, t->size);
            put_u32(b + 16, t->stack);
            put_u32(b + 20, t->flags);
            out_bytes(o, b, sizeof b);
        }
        break;
    }
}

static int dump_locked(neap_snapshot_t *s, const char *path) {
    const char *who = "neap_snapshot_dump";
    for (size_t k = 0; k < s->npc; k++) /* every frame resolved: the file names them */
        if (slot_frame(s, k) < 0)
            return fail_nomem(who);
    dump_plan_t plan = {NULL, NULL, 0};
    size_t nstr = s->nstr ? s->nstr : 1;
    plan.file_id = neap_malloc(nstr * sizeof *plan.file_id);
    plan.order = neap_malloc(nstr * sizeof *plan.order);
    if (plan.file_id == NULL || plan.order == NULL) {
        neap_free(plan.file_id);
        neap_free(plan.order);
        return fail_nomem(who);
    }
    memset(plan.file_id, 0xff, nstr * sizeof *plan.file_id);
    for (size_t i = 0; i < s->nframe; i++) {
        plan_str(&plan, s->frame[i].f.filename);
        plan_str(&plan, s->frame[i].f.function);
        plan_str(&plan, s->frame[i].f.module);
    }
    snap_out_t sec[SECTIONS];
    uint64_t total = FILE_HEADER;
    for (int i = 0; i < SECTIONS; i++) {
        sec[i] = (snap_out_t){NULL, 0, 0};
        dump_section(s, &plan, i, &sec[i]);
        total += sec[i].bytes;
    }
    uint8_t h[FILE_HEADER] = {0};
    memcpy(h, FILE_MAGIC, 8);
    put_u32(h + 8, FILE_VERSION);
    put_u32(h + 12, FILE_HEADER);
    put_u64(h + 16, total);
    put_u64(h + 24, s->interval);
    put_u32(h + 32, (uint32_t)s->limit);
    put_u64(h + 40, plan.nstr);
    put_u64(h + 48, sec[SEC_STRINGS].bytes);
    put_u64(h + 56, s->nframe);
    put_u64(h + 64, s->nstack);
    put_u64(h + 72, s->npc);
    put_u64(h + 80, s->ntrace);
    for (int i = 0; i < SECTIONS; i++)
        put_u32(h + 88 + 4 * i, sec[i].crc);
    put_u32(h + 104, _neap_trace_crc32(0, h, 104));

    int err = 0;
    FILE *f = fopen(path, "wb");
    const char *failed = "cannot create it:";
    if (f == NULL) {
        err = errno;
    } else {
        failed = "write failed:";
        snap_out_t o = {f, 0, 0};
        out_bytes(&o, h, sizeof h);
        for (int i = 0; i < SECTIONS; i++)
            dump_section(s, &plan, i, &o);
        if (ferror(f) || fflush(f) != 0)
            err = errno ? errno : EIO;
        if (fclose(f) != 0 && err == 0)
            err = errno ? errno : EIO;
        if (err != 0)
            remove(path);
    }
    neap_free(plan.file_id);
    neap_free(plan.order);
    if (err != 0) {
        char buf[128];
        const char *why = strerror_r(err, buf, sizeof buf);
        return fail(err, "%s: file %s: %s %s", who, path, failed, why);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * load
 * ------------------------------------------------------------------------- */
/* The whole file into a neap_malloc'ed buffer; 0, or -1 with errno and
 * the message set. */
static int read_all(const char *path, uint8_t **out, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int err = errno;
        char buf[128];
        return fail(err, "file %s: cannot open it: %s", path, strerror_r(err, buf, sizeof buf));
    }
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        uint8_t *nb = grow(b, &cap, n + 65536, 1);
        if (nb == NULL) {
            neap_free(b);
            fclose(f);
            return fail(ENOMEM, "file %s: out of memory after %zu bytes", path, n);
        }
        b = nb;
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        int err = errno ? errno : EIO;
        char buf[128];
        neap_free(b);
        fclose(f);
        return fail(err, "file %s: read failed at byte %zu: %s", path, n,
                    strerror_r(err, buf, sizeof buf));
    }
    fclose(f);
    *out = b;
    *size = n;
    return 0;
}

/* The header's counts and the sections' places. */
typedef struct load_plan {
    uint64_t file_bytes, interval;
    uint32_t limit;
    uint64_t nstr, nframe, nstack, npc, ntrace;
    uint64_t start[SECTIONS + 1]; /* section i: bytes start[i] .. start[i+1] - 1 */
    uint32_t crc[SECTIONS];
} load_plan_t;

static const char *const section_name[SECTIONS] = {"strings", "frames", "stacks", "traces"};

/* Reads and checks the header: magic, version, checksum, sizes. */
static int load_header(const char *path, const uint8_t *b, size_t size, load_plan_t *p) {
    size_t m = size < 8 ? size : 8;
    if (memcmp(b, FILE_MAGIC, m) != 0)
        return fail(EINVAL, "file %s: not a neap snapshot (it does not begin with \"%s\")", path,
                    FILE_MAGIC);
    if (size < 12)
        return fail(EINVAL, "file %s: truncated at byte %zu (expected the %s)", path, size,
                    size < 8 ? "8-byte magic \"NEAPSNP\"" : "format version");
    uint32_t version = get_u32(b + 8);
    if (version != FILE_VERSION)
        return fail(EINVAL, "file %s: snapshot format version %u; this neap reads version %u", path,
                    version, FILE_VERSION);
    if (size < FILE_HEADER)
        return fail(EINVAL, "file %s: truncated at byte %zu (expected a %u-byte header)", path,
                    size, FILE_HEADER);
    if (get_u32(b + 104) != _neap_trace_crc32(0, b, 104))
        return fail(EINVAL, "file %s: corrupt header (bytes 0..103 fail their checksum)", path);
    if (get_u32(b + 12) != FILE_HEADER)
        return fail(EINVAL, "file %s: byte 12: header size %u, version 1 has %u", path,
                    get_u32(b + 12), FILE_HEADER);
    p->file_bytes = get_u64(b + 16);
    p->interval = get_u64(b + 24);
    p->limit = get_u32(b + 32);
    p->nstr = get_u64(b + 40);
    uint64_t str_bytes = get_u64(b + 48);
    p->nframe = get_u64(b + 56);
    p->nstack = get_u64(b + 64);
    p->npc = get_u64(b + 72);
    p->ntrace = get_u64(b + 80);
    for (int i = 0; i < SECTIONS; i++)
        p->crc[i] = get_u32(b + 88 + 4 * i);
    if (p->limit < 1 || p->limit > NEAP_TRACE_MAX_FRAMES)
        return fail(EINVAL, "file %s: byte 32: traceback limit %u (1..%d)", path, p->limit,
                    NEAP_TRACE_MAX_FRAMES);
    if (get_u32(b + 36) != 0)
        return fail(EINVAL, "file %s: byte 36: unknown flags 0x%x", path, get_u32(b + 36));
    /* counts bounded first, so that the products below cannot overflow */
    const uint64_t lim = (uint64_t)1 << 40;
    if (p->nstr >= NO_INDEX || p->nframe >= NO_INDEX - 1 || p->nstack >= NO_INDEX - 1 ||
        p->npc >= lim || p->ntrace >= lim || str_bytes >= lim || p->npc < p->nstack ||
        p->npc > p->nstack * NEAP_TRACE_MAX_FRAMES)
        return fail(EINVAL, "file %s: bytes 40..87: impossible counts (%llu strings, %llu frames, "
                            "%llu stacks of %llu frames, %llu traces)",
                    path, (unsigned long long)p->nstr, (unsigned long long)p->nframe,
                    (unsigned long long)p->nstack, (unsigned long long)p->npc,
                    (unsigned long long)p->ntrace);
    p->start[SEC_STRINGS] = FILE_HEADER;
    p->start[SEC_FRAMES] = p->start[SEC_STRINGS] + str_bytes;
    p->start[SEC_STACKS] = p->start[SEC_FRAMES] + p->nframe * FILE_FRAME_REC;
    p->start[SEC_TRACES] = p->start[SEC_STACKS] + p->nstack * 4 + p->npc * 8;
    p->start[SECTIONS] = p->start[SEC_TRACES] + p->ntrace * FILE_TRACE_REC;
    if (p->start[SECTIONS] != p->file_bytes || str_bytes < p->nstr * 4)
        return fail(EINVAL, "file %s: byte 16: the header says %llu bytes, its sections need %llu",
                    path, (unsigned long long)p->file_bytes,
                    (unsigned long long)p->start[SECTIONS]);
    return 0;
}

/* What section i should hold, for messages. */
static void section_expect(const load_plan_t *p, int i, char *buf, size_t cap) {
    switch (i) {
    case SEC_STRINGS:
        snprintf(buf, cap, "%llu strings", (unsigned long long)p->nstr);
        break;
    case SEC_FRAMES:
        snprintf(buf, cap, "%llu resolved frames", (unsigned long long)p->nframe);
        break;
    case SEC_STACKS:
        snprintf(buf, cap, "%llu stacks of %llu stack frames", (unsigned long long)p->nstack,
                 (unsigned long long)p->npc);
        break;
    default:
        snprintf(buf, cap, "%llu traces", (unsigned long long)p->ntrace);
        break;
    }
}

/* The file is as long as its header says, and each section passes its
 * checksum. */
static int load_check(const char *path, const uint8_t *b, size_t size, const load_plan_t *p) {
    char what[160];
    if (size < p->file_bytes) {
        int i = 0;
        while (i + 1 < SECTIONS && p->start[i + 1] <= size)
            i++;
        section_expect(p, i, what, sizeof what);
        return fail(EINVAL,
                    "file %s: truncated at byte %zu (expected %s in bytes %llu..%llu; the file "
                    "should have %llu bytes)",
                    path, size, what, (unsigned long long)p->start[i],
                    (unsigned long long)p->start[i + 1] - 1, (unsigned long long)p->file_bytes);
    }
    if (size > p->file_bytes)
        return fail(EINVAL, "file %s: %zu bytes where the header says %llu: data after byte %llu",
                    path, size, (unsigned long long)p->file_bytes,
                    (unsigned long long)p->file_bytes - 1);
    for (int i = 0; i < SECTIONS; i++) {
        uint64_t a = p->start[i], e = p->start[i + 1];
        if (_neap_trace_crc32(0, b + a, (size_t)(e - a)) != p->crc[i]) {
            section_expect(p, i, what, sizeof what);
            return fail(EINVAL, "file %s: corrupt data in bytes %llu..%llu (the %s section: %s): "
                                "checksum mismatch",
                        path, (unsigned long long)a, (unsigned long long)e - 1, section_name[i],
                        what);
        }
    }
    return 0;
}

/* A string index read at byte `at`: the string, NULL for FILE_NONE when
 * allowed; *bad set when it is out of range. */
static const char *load_str(const char *const *sv, uint64_t nstr, uint32_t i, int none_ok,
                            int *bad) {
    if (i == FILE_NONE && none_ok)
        return NULL;
    if (i >= nstr) {
        *bad = 1;
        return NULL;
    }
    return sv[i];
}

/* Parses the checked sections into s. */
static int load_parse(neap_snapshot_t *s, const char *path, const uint8_t *b,
                      const load_plan_t *p) {
    const char **sv = neap_malloc((p->nstr ? p->nstr : 1) * sizeof *sv);
    if (sv == NULL)
        return fail(ENOMEM, "file %s: out of memory", path);
    uint64_t at = p->start[SEC_STRINGS], got = 0;
    for (uint64_t i = 0; i < p->nstr; i++, got++) {
        uint64_t end = p->start[SEC_FRAMES];
        if (end - at < 4)
            break;
        uint32_t len = get_u32(b + at);
        if (end - at - 4 < len) {
            fail(EINVAL, "file %s: byte %llu: string %llu of %u bytes runs past its section's end "
                         "(byte %llu)",
                 path, (unsigned long long)at, (unsigned long long)i, len,
                 (unsigned long long)end - 1);
            goto out;
        }
        if (memchr(b + at + 4, 0, len) != NULL) {
            fail(EINVAL, "file %s: byte %llu: string %llu holds a NUL byte", path,
                 (unsigned long long)at, (unsigned long long)i);
            goto out;
        }
        if ((sv[i] = str_intern_n(s, (const char *)b + at + 4, len)) == NULL)
            goto nomem;
        at += 4 + (uint64_t)len;
    }
    if (got != p->nstr || at != p->start[SEC_FRAMES]) {
        fail(EINVAL, "file %s: bytes %llu..%llu do not hold exactly %llu strings", path,
             (unsigned long long)p->start[SEC_STRINGS],
             (unsigned long long)p->start[SEC_FRAMES] - 1,
             (unsigned long long)p->nstr);
        goto out;
    }
    for (uint64_t i = 0; i < p->nframe; i++, at += FILE_FRAME_REC) {
        const uint8_t *r = b + at;
        int bad = 0;
        neap_frame_t f = {
            .pc = (uintptr_t)get_u64(r),
            .filename = load_str(sv, p->nstr, get_u32(r + 8), 0, &bad),
            .lineno = (int)get_u32(r + 12),
            .function = load_str(sv, p->nstr, get_u32(r + 16), 1, &bad),
            .module = load_str(sv, p->nstr, get_u32(r + 20), 1, &bad),
            .offset = (uintptr_t)get_u64(r + 24),
        };
        if (bad || f.lineno < 0) {
            fail(EINVAL, "file %s: byte %llu: frame %llu has a string index or line out of range",
                 path, (unsigned long long)at, (unsigned long long)i);
            goto out;
        }
        if (frame_find(s, f.pc) != NO_INDEX) {
            fail(EINVAL, "file %s: byte %llu: a second frame for pc 0x%llx", path,
                 (unsigned long long)at, (unsigned long long)f.pc);
            goto out;
        }
        if (frame_add(s, &f) < 0)
            goto nomem;
    }
    uintptr_t pcs[NEAP_TRACE_MAX_FRAMES];
    for (uint64_t i = 0; i < p->nstack; i++) {
        uint64_t end = p->start[SEC_TRACES];
        uint32_t n = end - at >= 4 ? get_u32(b + at) : 0;
        /* no longer than the traceback limit the file says it was taken with */
        if (n < 1 || n > p->limit || end - at - 4 < (uint64_t)n * 8) {
            fail(EINVAL, "file %s: byte %llu: stack %llu: %u frames (1..%u, the traceback limit, within bytes ..%llu)",
                 path, (unsigned long long)at, (unsigned long long)i, n, p->limit,
                 (unsigned long long)end - 1);
            goto out;
        }
        for (uint32_t k = 0; k < n; k++)
            pcs[k] = (uintptr_t)get_u64(b + at + 4 + 8 * (uint64_t)k);
        if (stack_add(s, pcs, n) < 0)
            goto nomem;
        at += 4 + 8 * (uint64_t)n;
    }
    if (at != p->start[SEC_TRACES] || s->npc != p->npc) {
        fail(EINVAL, "file %s: bytes %llu..%llu: %llu stacks hold %zu frames, the header says %llu",
             path, (unsigned long long)p->start[SEC_STACKS],
             (unsigned long long)p->start[SEC_TRACES] - 1, (unsigned long long)p->nstack, s->npc,
             (unsigned long long)p->npc);
        goto out;
    }
    for (uint64_t i = 0; i < p->ntrace; i++, at += FILE_TRACE_REC) {
        const uint8_t *r = b + at;
        uint64_t addr = get_u64(r), size = get_u64(r + 8);
        uint32_t stack = get_u32(r + 16), flags = get_u32(r + 20);
        if (stack >= p->nstack || (flags & ~TRACE_OWN_MAPPING) != 0) {
            fail(EINVAL, "file %s: byte %llu: trace %llu: stack %u (of %llu), flags 0x%x", path,
                 (unsigned long long)at, (unsigned long long)i, stack,
                 (unsigned long long)p->nstack, flags);
            goto out;
        }
        if (trace_add(s, (uintptr_t)addr, (size_t)size, stack, flags) != 0)
            goto nomem;
    }
    stacks_weigh(s);
    neap_free(sv);
    return 0;
nomem:
    fail(ENOMEM, "file %s: out of memory", path);
out:
    neap_free(sv);
    return -1;
}

static neap_snapshot_t *load(const char *path) {
    uint8_t *b = NULL;
    size_t size = 0;
    load_plan_t plan;
    if (read_all(path, &b, &size) != 0)
        return NULL;
    neap_snapshot_t *s = NULL;
    if (load_header(path, b, size, &plan) == 0 && load_check(path, b, size, &plan) == 0) {
        s = snap_new((size_t)plan.interval, (int)plan.limit, 1);
        if (s == NULL)
            fail(ENOMEM, "file %s: out of memory", path);
        else if (load_parse(s, path, b, &plan) != 0) {
            int err = errno;
            snap_destroy(s);
            s = NULL;
            errno = err;
        }
    }
    int err = errno;
    neap_free(b);
    errno = err;
    return s;
}

/* ---------------------------------------------------------------------------
 * The API: argument checks, the lock, tracing paused around the work
 * ------------------------------------------------------------------------- */
static int key_check(const char *who, neap_key_t key, int cumulative) {
    if (key != NEAP_KEY_FILENAME && key != NEAP_KEY_LINENO && key != NEAP_KEY_TRACEBACK)
        return fail(EINVAL, "%s: key %d is not a neap_key_t", who, (int)key);
    if (cumulative && key == NEAP_KEY_TRACEBACK)
        return fail(EINVAL, "%s: cumulative statistics need NEAP_KEY_LINENO or NEAP_KEY_FILENAME",
                    who);
    return 0;
}

neap_snapshot_t *neap_trace_take_snapshot(void) {
    _neap_trace_pause();
    neap_snapshot_t *s = take_snapshot();
    _neap_trace_resume();
    return s;
}

void neap_snapshot_free(neap_snapshot_t *s) {
    _neap_trace_pause();
    snap_destroy(s);
    _neap_trace_resume();
}

int neap_snapshot_traceback_limit(const neap_snapshot_t *s) {
    return s != NULL ? s->limit : 0;
}

size_t neap_snapshot_sample_interval(const neap_snapshot_t *s) {
    return s != NULL ? s->interval : 0;
}

size_t neap_snapshot_count(const neap_snapshot_t *s) {
    return s != NULL ? s->ntrace : 0;
}

int neap_snapshot_statistics(neap_snapshot_t *s, neap_key_t key, int cumulative,
                             const neap_statistic_t **out, size_t *n) {
    const char *who = "neap_snapshot_statistics";
    if (s == NULL || out == NULL || n == NULL)
        return fail(EINVAL, "%s: NULL %s", who, s == NULL ? "snapshot" : "output pointer");
    if (key_check(who, key, cumulative) != 0)
        return -1;
    _neap_trace_pause();
    pthread_mutex_lock(&s->lock);
    snap_result_t *r = stats_locked(s, key, cumulative != 0);
    if (r != NULL) {
        *out = r->v;
        *n = r->n;
    }
    pthread_mutex_unlock(&s->lock);
    _neap_trace_resume();
    return r != NULL ? 0 : -1;
}

int neap_snapshot_compare_to(neap_snapshot_t *s, neap_snapshot_t *old, neap_key_t key,
                             int cumulative, const neap_statistic_diff_t **out, size_t *n) {
    const char *who = "neap_snapshot_compare_to";
    if (s == NULL || old == NULL || out == NULL || n == NULL)
        return fail(EINVAL, "%s: NULL %s", who,
                    s == NULL ? "snapshot" : old == NULL ? "old snapshot" : "output pointer");
    if (key_check(who, key, cumulative) != 0)
        return -1;
    cumulative = cumulative != 0;
    _neap_trace_pause();
    pthread_mutex_lock(&old->lock);
    snap_result_t *ro = stats_locked(old, key, cumulative);
    const neap_statistic_t *olds = ro ? ro->v : NULL;
    size_t nold = ro ? ro->n : 0;
    pthread_mutex_unlock(&old->lock);
    snap_result_t *r = NULL;
    if (ro != NULL) {
        pthread_mutex_lock(&s->lock);
        r = diff_locked(s, key, cumulative, olds, nold, old->serial);
        if (r != NULL) {
            *out = r->v;
            *n = r->n;
        }
        pthread_mutex_unlock(&s->lock);
    }
    _neap_trace_resume();
    return r != NULL ? 0 : -1;
}

neap_snapshot_t *neap_snapshot_filter_traces(const neap_snapshot_t *s_,
                                             const neap_filter_t *filters, size_t n) {
    const char *who = "neap_snapshot_filter_traces";
    if (s_ == NULL)
        return fail(EINVAL, "%s: NULL snapshot", who), NULL;
    if (filters == NULL && n > 0)
        return fail(EINVAL, "%s: NULL filters and n = %zu", who, n), NULL;
    neap_snapshot_t *s = (neap_snapshot_t *)s_; /* its caches fill in, under its lock */
    _neap_trace_pause();
    pthread_mutex_lock(&s->lock);
    neap_snapshot_t *d = filter_locked(s, filters, n);
    pthread_mutex_unlock(&s->lock);
    _neap_trace_resume();
    return d;
}

int neap_snapshot_dump(const neap_snapshot_t *s_, const char *path) {
    const char *who = "neap_snapshot_dump";
    if (s_ == NULL || path == NULL)
        return fail(EINVAL, "%s: NULL %s", who, s_ == NULL ? "snapshot" : "path");
    neap_snapshot_t *s = (neap_snapshot_t *)s_; /* its frames get resolved, under its lock */
    _neap_trace_pause();
    pthread_mutex_lock(&s->lock);
    int r = dump_locked(s, path);
    pthread_mutex_unlock(&s->lock);
    _neap_trace_resume();
    return r;
}

neap_snapshot_t *neap_snapshot_load(const char *path) {
    if (path == NULL)
        return fail(EINVAL, "neap_snapshot_load: NULL path"), NULL;
    _neap_trace_pause();
    neap_snapshot_t *s = load(path);
    _neap_trace_resume();
    return s;
}

const char *neap_snapshot_error(void) {
    return snap_msg;
}

int neap_snapshot_pinning(neap_snapshot_t *s, neap_key_t key, const neap_pinning_t **out,
                          size_t *n) {
    const char *who = "neap_snapshot_pinning";
    if (s == NULL || out == NULL || n == NULL)
        return fail(EINVAL, "%s: NULL %s", who, s == NULL ? "snapshot" : "output pointer");
    if (key_check(who, key, 0) != 0)
        return -1;
    _neap_trace_pause();
    pthread_mutex_lock(&s->lock);
    snap_result_t *r = pinning_locked(s, key);
    if (r != NULL) {
        *out = r->v;
        *n = r->n;
    }
    pthread_mutex_unlock(&s->lock);
    _neap_trace_resume();
    return r != NULL ? 0 : -1;
}

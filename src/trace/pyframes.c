/* pyframes.c -- the Python frames of a traced allocation: which lines of a
 * CPython program were running when it allocated.
 *
 * neap is preloaded into the interpreter and nothing in the program
 * changes: the interpreter's own structures say where it is.  The thread
 * state points to the innermost frame; each frame to its code object, the
 * code unit it last started and the frame that called it:
 *
 *   _PyThreadState_UncheckedGet()            (the thread holding the GIL)
 *     tstate --cframe--> _PyCFrame --current_frame--> frame --previous--> ...
 *                                                       | f_code, prev_instr
 *                                                       v
 *   tl_cache (per thread): prev_instr -> id    --miss-->
 *   codes: code -> its file and function, copied once (the code object
 *          gets a reference: its address is never reused while cached)
 *   lines: (code, line) -> _neap_pyframe_t (id: 1, 2, ...)
 *   dir[id / DIR_CHUNK][id % DIR_CHUNK] -> _neap_pyframe_t
 *
 * The layouts are CPython 3.11's (the same in every 3.11 release): the
 * probe reads the version the interpreter exports (Py_Version) and takes
 * no frame from any other, saying so once.  Every frame's code object must
 * have the code type, and every name the str type, or the walk stops:
 * a wrong layout gives shorter stacks, never a wild read through garbage.
 *
 * Invariants
 *   - A frame is read only by the thread whose state it is, and only while
 *     that thread holds the GIL (the state the interpreter calls current is
 *     the caller's own: thread_id matches): the frames cannot change
 *     meanwhile, and adding a reference to a code object is safe.
 *   - An id, once given, names the same (file, function, line) for the
 *     life of the process; lines holds each (code, line) once.
 *   - Memory comes from the OS (os.c), never from neap_malloc: reading
 *     frames allocates nothing the program would see.
 *   - lock guards codes, lines and dir's growth; dir entries are written
 *     before their id is published (release) and never change after.
 */
#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "trace/pyframes.h"
#include "trace/tlock.h"
#include "util/hashtab.h"

/* CPython 3.11's layouts (x86-64 and every LP64 target). */
enum {
    TS_CFRAME = 56,          /* PyThreadState.cframe */
    TS_THREAD_ID = 152,      /* PyThreadState.thread_id (pthread_self) */
    CF_CURRENT = 8,          /* _PyCFrame.current_frame */
    FR_CODE = 32,            /* _PyInterpreterFrame.f_code */
    FR_PREVIOUS = 48,        /* .previous */
    FR_PREV_INSTR = 56,      /* .prev_instr */
    FR_IS_ENTRY = 68,        /* .is_entry: the first frame of an evaluation loop call */
    OB_TYPE = 8,             /* PyObject.ob_type */
    OB_SIZE = 16,            /* PyVarObject.ob_size: code units of a code object */
    CO_FILENAME = 112,
    CO_QUALNAME = 128,
    CO_FIRSTLINENO = 72,
    CO_CODE = 184,           /* co_code_adaptive: the code units */
    STR_LENGTH = 16,         /* PyASCIIObject.length */
    STR_STATE = 32,          /* .state: interned:2 kind:3 compact:1 ascii:1 */
    STR_ASCII_DATA = 48,     /* sizeof(PyASCIIObject) */
    STR_COMPACT_DATA = 72    /* sizeof(PyCompactUnicodeObject) */
};
#define PY_VERSION_311 0x030b
#define WALK_MAX 4096        /* frames walked at most (a cycle would be a bug) */

enum { PY_UNKNOWN, PY_NONE, PY_READY, PY_UNSUPPORTED };

static struct {
    _Atomic int state;                   /* PY_* */
    void *(*tstate)(void);               /* _PyThreadState_UncheckedGet */
    int (*addr2line)(void *code, int offset); /* PyCode_Addr2Line */
    const void *code_type, *str_type;    /* &PyCode_Type, &PyUnicode_Type */
    uintptr_t eval_lo, eval_hi;          /* _PyEval_EvalFrameDefault's code */
} py;

#define REPROBE 65536        /* a thread's captures between probes while none is found */
static __thread unsigned tl_probes;  /* this thread's captures since its last probe */

/* ---------------------------------------------------------------------------
 * Tables.
 * ------------------------------------------------------------------------- */
#define DIR_CHUNK 4096
#define DIR_MAX 1024         /* at most 4M distinct lines */
#define STR_CHUNK ((size_t)256 << 10)
#define CACHE_WAYS 1024

typedef struct code_info {
    uintptr_t code;
    const char *file, *func;
    uint32_t file_len, func_len;
} code_info_t;

typedef struct line_key {
    uintptr_t code;
    uint32_t line;
} line_key_t;

typedef struct line_ent {
    uintptr_t code;
    _neap_pyframe_t *frame;
} line_ent_t;

static _Atomic size_t py_memory;

static void *py_map(size_t bytes) {
    void *p = _neap_os_map(bytes);
    if (p != NULL)
        atomic_fetch_add_explicit(&py_memory, bytes, memory_order_relaxed);
    return p;
}
static void *tab_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return py_map(bytes);
}
static void tab_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    _neap_os_unmap(p, bytes);
    atomic_fetch_sub_explicit(&py_memory, bytes, memory_order_relaxed);
}
static const neap_hashtab_alloc_t py_tables = {tab_alloc, tab_free, NULL};

#define CODE_KEY(e) ((uint64_t)(e)->code)
#define CODE_HASH(e) neap_hash_mix((e)->code)
NEAP_HASHTAB_DEFINE(codetab, code_info_t, CODE_KEY, CODE_HASH, 256, 2);
static uint64_t line_hash(uintptr_t code, uint32_t line) {
    return neap_hash_mix(code ^ ((uint64_t)line << 48));
}
#define LINE_KEY(e) ((uint64_t)(e)->code)
#define LINE_HASH(e) line_hash((e)->code, (e)->frame->line)
NEAP_HASHTAB_DEFINE(linetab, line_ent_t, LINE_KEY, LINE_HASH, 1024, 2);

static struct {
    tlock_t lock;
    codetab_t codes;
    linetab_t lines;
    _neap_pyframe_t *_Atomic dir[DIR_MAX];
    _Atomic uint32_t nframe;     /* ids given */
    char *str;                   /* bump allocation of strings */
    size_t str_used;
} tabs = {.lock = TLOCK_INIT, .codes = NEAP_HASHTAB_INIT(&py_tables),
          .lines = NEAP_HASHTAB_INIT(&py_tables)};

/* A frame's last instruction names its code object and line: every code
 * object met is held for good (code_get), so no other code can come to
 * own that address.  A hit reads nothing of the code object. */
typedef struct cache_ent {
    uintptr_t instr;
    uint64_t id;
} cache_ent_t;

static __thread cache_ent_t *tl_cache; /* CACHE_WAYS, mapped at the first use */

/* n bytes of string space (lock held), or NULL. */
static char *str_space(size_t n) {
    if (tabs.str == NULL || tabs.str_used + n > STR_CHUNK) {
        char *c = py_map(STR_CHUNK); /* the old chunk stays: frames are never freed */
        if (c == NULL)
            return NULL;
        tabs.str = c;
        tabs.str_used = 0;
    }
    char *p = tabs.str + tabs.str_used;
    tabs.str_used += n;
    return p;
}

/* A str object's text as UTF-8 into buf (cap > 4), "?" when it is not a
 * compact str; returns the bytes written (no NUL counted, one written). */
static uint32_t str_utf8(uintptr_t o, char *buf, size_t cap) {
    size_t n = 0;
    if (o == 0 || *(const void *const *)(o + OB_TYPE) != py.str_type)
        goto unknown;
    uint32_t state = *(const uint32_t *)(o + STR_STATE);
    unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || (kind != 1 && kind != 2 && kind != 4))
        goto unknown;
    size_t len = (size_t) * (const int64_t *)(o + STR_LENGTH);
    const unsigned char *data = (const unsigned char *)o + (ascii ? STR_ASCII_DATA : STR_COMPACT_DATA);
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        uint32_t c = kind == 1   ? data[i]
                     : kind == 2 ? ((const uint16_t *)(const void *)data)[i]
                                 : ((const uint32_t *)(const void *)data)[i];
        if (c < 0x80) {
            buf[n++] = (char)c;
        } else if (c < 0x800) {
            buf[n++] = (char)(0xC0 | (c >> 6));
            buf[n++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            buf[n++] = (char)(0xE0 | (c >> 12));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | ((c >> 18) & 0x07));
            buf[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    buf[n] = 0;
    return (uint32_t)n;
unknown:
    buf[0] = '?';
    buf[1] = 0;
    return 1;
}

/* The code's names, copied at its first sight (lock held); NULL: no memory. */
static const code_info_t *code_get(uintptr_t code) {
    code_info_t *e = codetab_find(&tabs.codes, code, neap_hash_mix(code));
    if (e != NULL)
        return e;
    char file[NEAP_PYFRAME_FILE_MAX + 8], func[NEAP_PYFRAME_FUNC_MAX + 8];
    uint32_t fl = str_utf8(*(const uintptr_t *)(code + CO_FILENAME), file, sizeof file - 3);
    uint32_t nl = str_utf8(*(const uintptr_t *)(code + CO_QUALNAME), func, sizeof func - 3);
    char *s = str_space((size_t)fl + nl + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, file, fl + 1);
    memcpy(s + fl + 1, func, nl + 1);
    code_info_t ci = {code, s, s + fl + 1, fl, nl};
    int added;
    e = codetab_insert(&tabs.codes, &ci, neap_hash_mix(code), &added);
    if (e == NULL)
        return NULL;
    /* held for good: the address names this code as long as it is cached
     * (the frame holds a reference, so the count is at least 1 now) */
    (*(int64_t *)code)++;
    return e;
}

static int line_match(const line_ent_t *e, const void *key) {
    const line_key_t *k = key;
    return e->code == k->code && e->frame->line == k->line;
}

/* The id of (code, line), made if new (lock taken); 0: no memory. */
static uint32_t line_id(uintptr_t code, uint32_t line) {
    uint32_t id = 0;
    line_key_t key = {code, line};
    uint64_t h = line_hash(code, line);
    tlock_lock(&tabs.lock);
    line_ent_t *e = linetab_lookup(&tabs.lines, h, line_match, &key);
    if (e != NULL) {
        id = e->frame->id;
        goto out;
    }
    uint32_t n = atomic_load_explicit(&tabs.nframe, memory_order_relaxed);
    const code_info_t *ci = code_get(code);
    if (ci == NULL || n + 1 >= (uint32_t)DIR_CHUNK * DIR_MAX || linetab_reserve(&tabs.lines, 1) != 0)
        goto out;
    uint32_t next = n + 1;
    _neap_pyframe_t *chunk = atomic_load_explicit(&tabs.dir[next / DIR_CHUNK], memory_order_relaxed);
    if (chunk == NULL) {
        chunk = py_map(DIR_CHUNK * sizeof(_neap_pyframe_t));
        if (chunk == NULL)
            goto out;
        atomic_store_explicit(&tabs.dir[next / DIR_CHUNK], chunk, memory_order_release);
    }
    _neap_pyframe_t *f = &chunk[next % DIR_CHUNK];
    f->file = ci->file;
    f->func = ci->func;
    f->file_len = ci->file_len;
    f->func_len = ci->func_len;
    f->line = line;
    f->id = next;
    atomic_store_explicit(&f->streamed, 0, memory_order_relaxed);
    line_ent_t le = {code, f};
    line_ent_t *slot = linetab_probe(&tabs.lines, h, line_match, &key);
    linetab_put(&tabs.lines, slot, &le);
    atomic_store_explicit(&tabs.nframe, next, memory_order_release);
    id = next;
out:
    tlock_unlock(&tabs.lock);
    return id;
}

_neap_pyframe_t *_neap_py_frame(uintptr_t f) {
    if (!_neap_is_pyframe(f))
        return NULL;
    uintptr_t id = f & ~NEAP_PYFRAME_TAG;
    if (id == 0 || id > atomic_load_explicit(&tabs.nframe, memory_order_acquire))
        return NULL;
    _neap_pyframe_t *chunk = atomic_load_explicit(&tabs.dir[id / DIR_CHUNK], memory_order_acquire);
    return chunk != NULL ? &chunk[id % DIR_CHUNK] : NULL;
}

size_t _neap_py_memory(void) { return atomic_load_explicit(&py_memory, memory_order_relaxed); }

/* ---------------------------------------------------------------------------
 * Finding the interpreter.
 * ------------------------------------------------------------------------- */
void _neap_py_probe(void) {
    int st = atomic_load_explicit(&py.state, memory_order_acquire);
    if (st == PY_READY || st == PY_UNSUPPORTED)
        return;
    const unsigned long *version = _neap_os_symbol("Py_Version");
    void *tstate = _neap_os_symbol("_PyThreadState_UncheckedGet");
    if (version == NULL) {
        /* no interpreter, or one older than 3.11 (which has no Py_Version) */
        st = tstate != NULL ? PY_UNSUPPORTED : PY_NONE;
        if (st == PY_UNSUPPORTED)
            _neap_warning("this Python is older than 3.11, whose frames neap cannot read",
                          "traces show the interpreter's C functions instead of Python lines");
        atomic_store_explicit(&py.state, st, memory_order_release);
        return;
    }
    unsigned long v = *version;
    void *addr2line = _neap_os_symbol("PyCode_Addr2Line");
    const void *code_type = _neap_os_symbol("PyCode_Type");
    const void *str_type = _neap_os_symbol("PyUnicode_Type");
    if ((v >> 16) != PY_VERSION_311 || tstate == NULL || addr2line == NULL || code_type == NULL ||
        str_type == NULL) {
        char detail[160];
        neap_buf_t b = {detail, 0, sizeof detail};
        _neap_buf_str(&b, "Python ");
        _neap_buf_u(&b, (v >> 24) & 0xff, 0);
        _neap_buf_str(&b, ".");
        _neap_buf_u(&b, (v >> 16) & 0xff, 0);
        _neap_buf_str(&b, ": traces show the interpreter's C functions instead of Python lines");
        detail[b.len < sizeof detail ? b.len : sizeof detail - 1] = 0;
        _neap_warning("neap reads the frames of Python 3.11 only, not of this interpreter", detail);
        atomic_store_explicit(&py.state, PY_UNSUPPORTED, memory_order_release);
        return;
    }
    memcpy(&py.tstate, &tstate, sizeof tstate); /* object to function pointers: POSIX's dlsym */
    memcpy(&py.addr2line, &addr2line, sizeof addr2line);
    py.code_type = code_type;
    py.str_type = str_type;
    if (!_neap_os_symbol_bounds("_PyEval_EvalFrameDefault", &py.eval_lo, &py.eval_hi))
        py.eval_lo = py.eval_hi = 0; /* merging falls back to Python frames first */
    atomic_store_explicit(&py.state, PY_READY, memory_order_release);
}

int _neap_py_mode(void) {
    long mode = neap_opt(NEAP_OPTION_TRACE_PYTHON);
    if (mode == 0)
        return 0;
    int st = atomic_load_explicit(&py.state, memory_order_acquire);
    if (neap_likely(st == PY_READY))
        return (int)mode;
    if (st == PY_UNKNOWN || (st == PY_NONE && ++tl_probes % REPROBE == 0)) {
        _neap_py_probe();
        if (atomic_load_explicit(&py.state, memory_order_acquire) == PY_READY)
            return (int)mode;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Walking the frames.
 * ------------------------------------------------------------------------- */

/* The innermost frame of the calling thread, if it holds the GIL; else 0. */
static uintptr_t frame_top(void) {
    uintptr_t ts = (uintptr_t)py.tstate();
    if (ts == 0 || *(const unsigned long *)(ts + TS_THREAD_ID) != (unsigned long)pthread_self())
        return 0;
    uintptr_t cf = *(const uintptr_t *)(ts + TS_CFRAME);
    return cf != 0 ? *(const uintptr_t *)(cf + CF_CURRENT) : 0;
}

/* The word of frame fr (0: not a frame of a code object, stop). */
static uintptr_t frame_word(uintptr_t fr) {
    uintptr_t instr = *(const uintptr_t *)(fr + FR_PREV_INSTR);
    if (neap_unlikely(tl_cache == NULL)) {
        tl_cache = py_map(CACHE_WAYS * sizeof(cache_ent_t));
        if (tl_cache == NULL)
            return 0;
    }
    cache_ent_t *c = &tl_cache[neap_hash_mix(instr) & (CACHE_WAYS - 1)];
    if (neap_likely(c->instr == instr && instr != 0))
        return NEAP_PYFRAME_TAG | (uintptr_t)c->id;
    uintptr_t code = *(const uintptr_t *)(fr + FR_CODE);
    if (code == 0 || *(const void *const *)(code + OB_TYPE) != py.code_type)
        return 0;
    uintptr_t start = code + CO_CODE;
    uintptr_t bytes = 2 * (uintptr_t) * (const int64_t *)(code + OB_SIZE);
    /* a frame just made points before its first unit: its def line */
    int line = instr >= start && instr - start < bytes
                   ? py.addr2line((void *)code, (int)(instr - start))
                   : *(const int *)(code + CO_FIRSTLINENO);
    uint32_t id = line_id(code, line > 0 ? (uint32_t)line : 0);
    if (id == 0)
        return 0;
    /* only an address inside (or just before) the code names it for good */
    if (instr + 2 >= start && instr - start < bytes)
        *c = (cache_ent_t){instr, id};
    return NEAP_PYFRAME_TAG | id;
}

size_t _neap_py_stack(uintptr_t *f, size_t max, const uintptr_t *native, size_t nnative) {
    uintptr_t fr = frame_top();
    size_t n = 0;
    int walked = 0;
    if (native == NULL || py.eval_hi == 0) {
        for (; fr != 0 && n < max && walked++ < WALK_MAX; fr = *(const uintptr_t *)(fr + FR_PREVIOUS)) {
            uintptr_t w = frame_word(fr);
            if (w == 0)
                break;
            f[n++] = w;
        }
        return n;
    }
    /* merged: each call of the evaluation loop ran the frames from the
     * current one out to the first marked as its entry */
    for (size_t i = 0; i < nnative && n < max; i++) {
        if (native[i] - 1 < py.eval_lo || native[i] - 1 >= py.eval_hi) {
            f[n++] = native[i];
            continue;
        }
        for (; fr != 0 && n < max && walked++ < WALK_MAX;) {
            uintptr_t w = frame_word(fr);
            int entry = *(const uint8_t *)(fr + FR_IS_ENTRY);
            fr = w != 0 ? *(const uintptr_t *)(fr + FR_PREVIOUS) : 0;
            if (w == 0)
                break;
            f[n++] = w;
            if (entry)
                break;
        }
    }
    return n;
}

/* ---------------------------------------------------------------------------
 * Threads and fork.
 * ------------------------------------------------------------------------- */
void _neap_py_thread_exit(void) {
    if (tl_cache != NULL) {
        tab_free(NULL, tl_cache, CACHE_WAYS * sizeof(cache_ent_t));
        tl_cache = NULL;
    }
}

void _neap_py_fork_prepare(void) { tlock_lock(&tabs.lock); }
void _neap_py_fork_parent(void) { tlock_unlock(&tabs.lock); }
void _neap_py_fork_child(void) { atomic_store_explicit(&tabs.lock.held, 0, memory_order_relaxed); }

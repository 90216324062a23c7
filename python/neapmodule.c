/* neapmodule.c -- `import neap`: the library's statistics, process memory
 * and tracing, for Python code running in a process whose allocator is neap.
 *
 *    Python code
 *        |  neap.start(), neap.take_snapshot(), snap.statistics('lineno') ...
 *        v
 *    this module ---- api: one table of function pointers ------------+
 *        |           found at import with dlsym(RTLD_DEFAULT, ...)    |
 *        |           (the module never links libneap)                  v
 *        |                                                 libneap.so in the
 *        |                                                 process (LD_PRELOAD
 *        |                                                 or `neap run`)
 *        v
 *    Snapshot -----owns-----> neap_snapshot_t  (freed with the Snapshot)
 *        |
 *        +--> statistics / compare_to / pinning: lists of records, built at
 *             once from the snapshot's arrays:
 *
 *    Statistic(traceback, size, count)
 *    StatisticDiff(traceback, size, size_diff, count, count_diff)
 *    Pinning(traceback, live, pinned, pages, shared_pages, arenas, count)
 *        traceback: Traceback, a tuple of Frame(filename, lineno, function),
 *                   the oldest frame first (tracemalloc's order; neap's
 *                   arrays run the other way)
 *    Filter(inclusive, filename_pattern, lineno, all_frames)   (mutable)
 *    MemoryInfo(rss, vms, peak_rss)
 *
 * Invariants
 *   - Import succeeds only if the neap_* functions are in the process AND
 *     the process's malloc is neap's (a block from malloc is one neap owns);
 *     otherwise ImportError saying how to run the program on neap.  The
 *     tracing entries of api are NULL when the library was built without
 *     tracing; every function that needs them checks first.
 *   - api is written once, at import, under the GIL, and only read after.
 *   - Records hold Python objects only (copies of the snapshot's strings
 *     and numbers), never pointers into a neap_snapshot_t: a record
 *     outlives the snapshot it came from.
 *   - The GIL is released around neap calls that can take long (snapshots,
 *     statistics, dump, load); no borrowed Python reference is used across
 *     them, and the Snapshot whose neap_snapshot_t is in use is kept alive
 *     by the caller's reference (self, or an argument).
 *   - Errors of the C API (-1 or NULL with errno, neap_snapshot_error())
 *     become exceptions carrying that message: MemoryError for ENOMEM,
 *     ValueError for EINVAL, OSError (with errno and file name) for the
 *     file system's errors, RuntimeError for a snapshot when not tracing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "neap.h"
#include "neap_trace.h"

/* ---------------------------------------------------------------------------
 * The library's functions, looked up in the process.
 * ------------------------------------------------------------------------- */
static struct neap_api {
    __typeof__(neap_malloc) *malloc_fn;
    __typeof__(neap_owns) *owns;
    __typeof__(neap_trim) *trim;
    __typeof__(neap_stats_get) *stats_get;
    __typeof__(neap_stats_print) *stats_print;
    __typeof__(neap_process_memory) *process_memory;
    __typeof__(neap_option_get) *option_get;
    __typeof__(neap_option_set) *option_set;
    __typeof__(neap_option_name) *option_name;
    /* tracing: NULL in a library built without it */
    __typeof__(neap_trace_start) *trace_start;
    __typeof__(neap_trace_start_sampled) *trace_start_sampled;
    __typeof__(neap_trace_stop) *trace_stop;
    __typeof__(neap_trace_is_tracing) *trace_is_tracing;
    __typeof__(neap_trace_get_sample_interval) *trace_get_sample_interval;
    __typeof__(neap_trace_clear_traces) *trace_clear_traces;
    __typeof__(neap_trace_get_traceback_limit) *trace_get_traceback_limit;
    __typeof__(neap_trace_get_traced_memory) *trace_get_traced_memory;
    __typeof__(neap_trace_reset_peak) *trace_reset_peak;
    __typeof__(neap_trace_mark) *trace_mark;
    __typeof__(neap_trace_get_tracemalloc_memory) *trace_get_tracemalloc_memory;
    __typeof__(neap_trace_take_snapshot) *take_snapshot;
    __typeof__(neap_snapshot_free) *snapshot_free;
    __typeof__(neap_snapshot_traceback_limit) *snapshot_traceback_limit;
    __typeof__(neap_snapshot_sample_interval) *snapshot_sample_interval;
    __typeof__(neap_snapshot_count) *snapshot_count;
    __typeof__(neap_snapshot_statistics) *snapshot_statistics;
    __typeof__(neap_snapshot_compare_to) *snapshot_compare_to;
    __typeof__(neap_snapshot_filter_traces) *snapshot_filter_traces;
    __typeof__(neap_snapshot_dump) *snapshot_dump;
    __typeof__(neap_snapshot_load) *snapshot_load;
    __typeof__(neap_snapshot_error) *snapshot_error;
    __typeof__(neap_snapshot_pinning) *snapshot_pinning;
} api;

typedef struct api_symbol {
    const char *name;
    size_t offset; /* of the pointer in struct neap_api */
    int tracing;   /* 1: part of the tracing subsystem (optional) */
} api_symbol_t;

#define API_SYM(field, tracing) {"neap_" #field, offsetof(struct neap_api, field), tracing}
static const api_symbol_t api_symbols[] = {
    {"neap_malloc", offsetof(struct neap_api, malloc_fn), 0},
    API_SYM(owns, 0), API_SYM(trim, 0), API_SYM(stats_get, 0), API_SYM(stats_print, 0),
    API_SYM(process_memory, 0), API_SYM(option_get, 0), API_SYM(option_set, 0),
    API_SYM(option_name, 0),
    API_SYM(trace_start, 1), API_SYM(trace_start_sampled, 1), API_SYM(trace_stop, 1),
    API_SYM(trace_is_tracing, 1), API_SYM(trace_get_sample_interval, 1),
    API_SYM(trace_clear_traces, 1), API_SYM(trace_get_traceback_limit, 1),
    API_SYM(trace_get_traced_memory, 1), API_SYM(trace_reset_peak, 1), API_SYM(trace_mark, 1),
    API_SYM(trace_get_tracemalloc_memory, 1),
    {"neap_trace_take_snapshot", offsetof(struct neap_api, take_snapshot), 1},
    API_SYM(snapshot_free, 1), API_SYM(snapshot_traceback_limit, 1),
    API_SYM(snapshot_sample_interval, 1), API_SYM(snapshot_count, 1),
    API_SYM(snapshot_statistics, 1), API_SYM(snapshot_compare_to, 1),
    API_SYM(snapshot_filter_traces, 1), API_SYM(snapshot_dump, 1), API_SYM(snapshot_load, 1),
    API_SYM(snapshot_error, 1), API_SYM(snapshot_pinning, 1),
};

#define NEAP_HOWTO                                                                         \
    "Run the program on neap: `neap run -- python3 ...`, or "                              \
    "`LD_PRELOAD=/path/to/libneap.so PYTHONMALLOC=malloc python3 ...`."

/* The path of the libneap that holds neap_malloc, for neap.library. */
static char api_library[4096];

/* Fills api; 0, or -1 with ImportError set. */
static int api_load(void) {
    int have_tracing = 1;
    for (size_t i = 0; i < sizeof api_symbols / sizeof api_symbols[0]; i++) {
        const api_symbol_t *s = &api_symbols[i];
        void *p = dlsym(RTLD_DEFAULT, s->name);
        if (p == NULL && !s->tracing) {
            PyErr_Format(PyExc_ImportError,
                         "neap: this Python process does not run on neap (%s is not in the "
                         "process: libneap.so is not loaded). " NEAP_HOWTO,
                         s->name);
            return -1;
        }
        if (p == NULL) have_tracing = 0;
        /* POSIX: a data pointer from dlsym holds a function's address */
        memcpy((char *)&api + s->offset, &p, sizeof p);
    }
    if (!have_tracing) { /* all of tracing or none of it */
        for (size_t i = 0; i < sizeof api_symbols / sizeof api_symbols[0]; i++)
            if (api_symbols[i].tracing)
                memset((char *)&api + api_symbols[i].offset, 0, sizeof(void *));
    }
    /* neap's functions are there; is the process's malloc neap's too?  (A
     * program can link neap without its malloc, or load it with dlopen.) */
    void *probe = malloc(64);
    int owned = probe != NULL && api.owns(probe);
    free(probe);
    if (!owned) {
        PyErr_SetString(PyExc_ImportError,
                        "neap: libneap is loaded in this process, but malloc is not neap's "
                        "(the library was loaded late, or linked without its malloc), so "
                        "neap does not see Python's memory. " NEAP_HOWTO);
        return -1;
    }
    Dl_info info;
    void *fn;
    memcpy(&fn, &api.malloc_fn, sizeof fn);
    if (dladdr(fn, &info) != 0 && info.dli_fname != NULL)
        snprintf(api_library, sizeof api_library, "%s", info.dli_fname);
    return 0;
}

/* 0 when tracing is built in, else -1 with RuntimeError set. */
static int need_tracing(void) {
    if (api.trace_start != NULL) return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "the libneap of this process was built without tracing "
                    "(-DNEAP_TRACING=OFF)");
    return -1;
}

/* Raises the exception for errno err of a C call; msg is the library's
 * sentence (may be NULL or ""), filename the file concerned (or NULL);
 * other_exc for errors that are neither ENOMEM, EINVAL nor a file's.
 * Returns NULL. */
static PyObject *raise_error(int err, const char *msg, PyObject *filename, PyObject *other_exc) {
    if (err == ENOMEM) return PyErr_NoMemory();
    if (msg == NULL || msg[0] == '\0') msg = strerror(err);
    if (err == EINVAL) {
        PyErr_SetString(PyExc_ValueError, msg);
    } else if (filename != NULL) {
        /* OSError(errno, message, filename): FileNotFoundError and the
         * others chosen by errno, as the interpreter's own calls do */
        PyObject *args = Py_BuildValue("(isO)", err, msg, filename);
        if (args != NULL) {
            PyErr_SetObject(PyExc_OSError, args);
            Py_DECREF(args);
        }
    } else {
        PyErr_SetString(other_exc, msg);
    }
    return NULL;
}

/* The library's message for a failed snapshot call (thread-local there). */
static const char *snapshot_message(void) {
    return api.snapshot_error != NULL ? api.snapshot_error() : NULL;
}

/* ---------------------------------------------------------------------------
 * Number formatting for the str() of records.
 * ------------------------------------------------------------------------- */

/* A byte count in B, KiB, MiB, GiB or TiB: three significant digits below
 * 100 of a unit, whole numbers above; with sign, a '+' for positive sizes. */
static void format_size(char *buf, size_t cap, double size, int sign) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && (size >= 10240.0 || size <= -10240.0)) {
        size /= 1024.0;
        u++;
    }
    double mag = size < 0 ? -size : size;
    const char *fmt = u > 0 && mag < 100.0 ? (sign ? "%+.1f %s" : "%.1f %s")
                                           : (sign ? "%+.0f %s" : "%.0f %s");
    snprintf(buf, cap, fmt, size, units[u]);
}

/* n with a comma between groups of three digits: 9,800. */
static void format_count(char *buf, size_t cap, unsigned long long n) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* ---------------------------------------------------------------------------
 * Records: small immutable objects of named Python fields (Frame,
 * Statistic, StatisticDiff, Pinning, MemoryInfo; Filter is mutable).  One C
 * layout for all; each type lists its fields in tp_members, in order.
 * Equality, ordering and hashing compare the tuples of their fields.
 * ------------------------------------------------------------------------- */
#define REC_MAX 8
typedef struct neap_record {
    PyObject_HEAD
    PyObject *f[REC_MAX];
} neap_record_t;

#define REC_FIELD(name, i, flags, doc)                                                    \
    {name, T_OBJECT_EX, offsetof(neap_record_t, f) + (i) * sizeof(PyObject *), flags, doc}

static Py_ssize_t rec_nfields(PyTypeObject *t) {
    Py_ssize_t n = 0;
    while (t->tp_members[n].name != NULL) n++;
    return n;
}

/* A record of type t from n new references (stolen, even on failure; a
 * NULL among them fails with the exception already set). */
static PyObject *rec_new(PyTypeObject *t, Py_ssize_t n, ...) {
    va_list ap;
    PyObject *vals[REC_MAX];
    int missing = 0;
    va_start(ap, n);
    for (Py_ssize_t i = 0; i < n; i++) {
        vals[i] = va_arg(ap, PyObject *);
        if (vals[i] == NULL) missing = 1;
    }
    va_end(ap);
    neap_record_t *r = missing ? NULL : PyObject_GC_New(neap_record_t, t);
    if (r == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(vals[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < REC_MAX; i++) r->f[i] = i < n ? vals[i] : NULL;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static int rec_traverse(PyObject *self, visitproc visit, void *arg) {
    neap_record_t *r = (neap_record_t *)self;
    for (int i = 0; i < REC_MAX; i++) Py_VISIT(r->f[i]);
    return 0;
}

static int rec_clear(PyObject *self) {
    neap_record_t *r = (neap_record_t *)self;
    for (int i = 0; i < REC_MAX; i++) Py_CLEAR(r->f[i]);
    return 0;
}

static void rec_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    rec_clear(self);
    PyObject_GC_Del(self);
}

/* The fields as a tuple (None for an unset one). */
static PyObject *rec_tuple(PyObject *self) {
    neap_record_t *r = (neap_record_t *)self;
    Py_ssize_t n = rec_nfields(Py_TYPE(self));
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = r->f[i] != NULL ? r->f[i] : Py_None;
        Py_INCREF(v);
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *rec_richcompare(PyObject *a, PyObject *b, int op) {
    if (Py_TYPE(a) != Py_TYPE(b)) Py_RETURN_NOTIMPLEMENTED;
    PyObject *ta = rec_tuple(a), *tb = ta != NULL ? rec_tuple(b) : NULL;
    PyObject *res = tb != NULL ? PyObject_RichCompare(ta, tb, op) : NULL;
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    return res;
}

static Py_hash_t rec_hash(PyObject *self) {
    PyObject *t = rec_tuple(self);
    if (t == NULL) return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    return h;
}

/* <Name field=repr field=repr ...> */
static PyObject *rec_repr(PyObject *self) {
    PyTypeObject *t = Py_TYPE(self);
    neap_record_t *r = (neap_record_t *)self;
    const char *dot = strrchr(t->tp_name, '.');
    PyObject *s = PyUnicode_FromFormat("<%s", dot != NULL ? dot + 1 : t->tp_name);
    for (Py_ssize_t i = 0; s != NULL && t->tp_members[i].name != NULL; i++) {
        /* a reference of our own: repr may run code that sets the field */
        PyObject *v = r->f[i] != NULL ? r->f[i] : Py_None;
        Py_INCREF(v);
        PyObject *part = PyUnicode_FromFormat(" %s=%R", t->tp_members[i].name, v);
        Py_DECREF(v);
        PyObject *joined = part != NULL ? PyUnicode_Concat(s, part) : NULL;
        Py_XDECREF(part);
        Py_SETREF(s, joined);
    }
    if (s != NULL) {
        PyObject *end = PyUnicode_FromString(">");
        PyObject *joined = end != NULL ? PyUnicode_Concat(s, end) : NULL;
        Py_XDECREF(end);
        Py_SETREF(s, joined);
    }
    return s;
}

/* A field as a C number (records are built by this file: ints where ints
 * belong). */
static long long rec_ll(PyObject *self, int i) {
    PyObject *v = ((neap_record_t *)self)->f[i];
    return v != NULL && PyLong_Check(v) ? PyLong_AsLongLong(v) : 0;
}

#define REC_TYPE(cname, pyname, doc, members, str)                                        \
    static PyTypeObject cname = {                                                          \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neap." pyname,                          \
        .tp_basicsize = sizeof(neap_record_t),                                             \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                               \
        .tp_doc = doc,                                                                     \
        .tp_dealloc = rec_dealloc,                                                         \
        .tp_traverse = rec_traverse,                                                       \
        .tp_clear = rec_clear,                                                             \
        .tp_richcompare = rec_richcompare,                                                 \
        .tp_hash = rec_hash,                                                               \
        .tp_repr = rec_repr,                                                               \
        .tp_str = str,                                                                     \
        .tp_members = members,                                                             \
    }

/* --- Frame ---------------------------------------------------------------- */
static PyMemberDef frame_members[] = {
    REC_FIELD("filename", 0, READONLY, "source file (or the module, when no line is known)"),
    REC_FIELD("lineno", 1, READONLY, "line number; 0 if unknown"),
    REC_FIELD("function", 2, READONLY, "function name, or None"),
    {NULL, 0, 0, 0, NULL},
};

/* file:line; file (function) when the line is not known */
static PyObject *frame_str(PyObject *self) {
    neap_record_t *r = (neap_record_t *)self;
    long long line = rec_ll(self, 1);
    if (line > 0) return PyUnicode_FromFormat("%S:%lld", r->f[0], line);
    if (r->f[2] != NULL && r->f[2] != Py_None)
        return PyUnicode_FromFormat("%S (%S)", r->f[0], r->f[2]);
    return PyObject_Str(r->f[0]);
}

REC_TYPE(FrameType, "Frame", "One frame of an allocation's stack: filename, lineno, function.",
         frame_members, frame_str);

/* --- Traceback: a tuple of Frames, oldest first ------------------------------ */
static PyObject *traceback_str(PyObject *self) {
    Py_ssize_t n = PyTuple_GET_SIZE(self);
    if (n == 0) return PyUnicode_FromString("<no frames>");
    return PyObject_Str(PyTuple_GET_ITEM(self, n - 1)); /* the allocation site */
}

static PyObject *traceback_repr(PyObject *self) {
    PyObject *frames = PyTuple_GetSlice(self, 0, PyTuple_GET_SIZE(self));
    if (frames == NULL) return NULL;
    PyObject *s = PyUnicode_FromFormat("<Traceback %R>", frames);
    Py_DECREF(frames);
    return s;
}

/* Traceback.format(limit=None, most_recent_first=False): lines as Python's
 * tracebacks print them, each with its source line when linecache has it. */
static PyObject *traceback_format(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"limit", "most_recent_first", NULL};
    PyObject *limit_obj = Py_None;
    int most_recent_first = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Op:format", kwlist, &limit_obj,
                                     &most_recent_first))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(self), lo = 0, hi = n;
    if (limit_obj != Py_None) {
        Py_ssize_t limit = PyLong_AsSsize_t(limit_obj);
        if (limit == -1 && PyErr_Occurred()) return NULL;
        /* as tracemalloc: a positive limit keeps the most recent frames,
         * a negative one the oldest */
        if (limit >= 0) lo = limit < n ? n - limit : 0;
        else hi = -limit < n ? -limit : n;
    }
    PyObject *linecache = PyImport_ImportModule("linecache");
    if (linecache == NULL) return NULL;
    PyObject *lines = PyList_New(0);
    for (Py_ssize_t k = 0; lines != NULL && k < hi - lo; k++) {
        Py_ssize_t i = most_recent_first ? hi - 1 - k : lo + k;
        neap_record_t *f = (neap_record_t *)PyTuple_GET_ITEM(self, i);
        long long line = Py_TYPE(f) == &FrameType ? rec_ll((PyObject *)f, 1) : 0;
        PyObject *head;
        if (Py_TYPE(f) != &FrameType)
            head = PyUnicode_FromFormat("  %S", (PyObject *)f);
        else if (f->f[2] != NULL && f->f[2] != Py_None)
            head = PyUnicode_FromFormat("  File \"%S\", line %lld, in %S", f->f[0], line, f->f[2]);
        else
            head = PyUnicode_FromFormat("  File \"%S\", line %lld", f->f[0], line);
        int ok = head != NULL && PyList_Append(lines, head) == 0;
        Py_XDECREF(head);
        if (ok && line > 0) {
            PyObject *src = PyObject_CallMethod(linecache, "getline", "OL", f->f[0], line);
            PyObject *stripped = src != NULL ? PyObject_CallMethod(src, "strip", NULL) : NULL;
            Py_XDECREF(src);
            if (stripped != NULL && PyUnicode_GetLength(stripped) > 0) {
                PyObject *l = PyUnicode_FromFormat("    %S", stripped);
                ok = l != NULL && PyList_Append(lines, l) == 0;
                Py_XDECREF(l);
            } else if (stripped == NULL) {
                ok = 0;
            }
            Py_XDECREF(stripped);
        }
        if (!ok) Py_CLEAR(lines);
    }
    Py_DECREF(linecache);
    return lines;
}

static PyMethodDef traceback_methods[] = {
    {"format", (PyCFunction)(void (*)(void))traceback_format, METH_VARARGS | METH_KEYWORDS,
     "format(limit=None, most_recent_first=False) -> list of lines"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TracebackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neap.Traceback",
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The frames of an allocation's stack, a tuple of Frame, the oldest first; "
              "str() names the most recent one (the allocation site).",
    .tp_str = traceback_str,
    .tp_repr = traceback_repr,
    .tp_methods = traceback_methods,
};

/* A Traceback of neap's frames (most recent first there). */
static PyObject *traceback_new(const neap_frame_t *frames, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (t == NULL) return NULL;
    for (size_t i = 0; i < n; i++) {
        const neap_frame_t *fr = &frames[n - 1 - i];
        PyObject *fn = Py_None;
        if (fr->function != NULL) fn = PyUnicode_DecodeFSDefault(fr->function);
        else Py_INCREF(fn);
        PyObject *f = rec_new(&FrameType, 3,
                              PyUnicode_DecodeFSDefault(fr->filename ? fr->filename : "<unknown>"),
                              PyLong_FromLong(fr->lineno), fn);
        if (f == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, f);
    }
    PyObject *tb = PyObject_CallOneArg((PyObject *)&TracebackType, t);
    Py_DECREF(t);
    return tb;
}

/* --- Statistic -------------------------------------------------------------- */
static PyMemberDef statistic_members[] = {
    REC_FIELD("traceback", 0, READONLY, "the site: a Traceback"),
    REC_FIELD("size", 1, READONLY, "bytes of its live blocks"),
    REC_FIELD("count", 2, READONLY, "its live blocks"),
    {NULL, 0, 0, 0, NULL},
};

static PyObject *statistic_str(PyObject *self) {
    char size[32], avg[32];
    long long sz = rec_ll(self, 1), count = rec_ll(self, 2);
    format_size(size, sizeof size, (double)sz, 0);
    if (count == 0)
        return PyUnicode_FromFormat("%S: size=%s, count=0", ((neap_record_t *)self)->f[0], size);
    format_size(avg, sizeof avg, (double)sz / (double)count, 0);
    return PyUnicode_FromFormat("%S: size=%s, count=%lld, average=%s",
                                ((neap_record_t *)self)->f[0], size, count, avg);
}

REC_TYPE(StatisticType, "Statistic", "The live blocks of one site: traceback, size, count.",
         statistic_members, statistic_str);

/* --- StatisticDiff ---------------------------------------------------------- */
static PyMemberDef diff_members[] = {
    REC_FIELD("traceback", 0, READONLY, "the site: a Traceback"),
    REC_FIELD("size", 1, READONLY, "bytes now"),
    REC_FIELD("size_diff", 2, READONLY, "bytes now minus bytes in the old snapshot"),
    REC_FIELD("count", 3, READONLY, "blocks now"),
    REC_FIELD("count_diff", 4, READONLY, "blocks now minus blocks in the old snapshot"),
    {NULL, 0, 0, 0, NULL},
};

static PyObject *diff_str(PyObject *self) {
    char size[32], sdiff[32], tail[96];
    long long sz = rec_ll(self, 1), sd = rec_ll(self, 2), count = rec_ll(self, 3),
              cd = rec_ll(self, 4);
    format_size(size, sizeof size, (double)sz, 0);
    format_size(sdiff, sizeof sdiff, (double)sd, 1);
    int len = snprintf(tail, sizeof tail, "count=%lld (%+lld)", count, cd);
    if (count > 0 && len > 0 && (size_t)len < sizeof tail) {
        char avg[32];
        format_size(avg, sizeof avg, (double)sz / (double)count, 0);
        snprintf(tail + len, sizeof tail - (size_t)len, ", average=%s", avg);
    }
    return PyUnicode_FromFormat("%S: size=%s (%s), %s", ((neap_record_t *)self)->f[0], size,
                                sdiff, tail);
}

REC_TYPE(StatisticDiffType, "StatisticDiff",
         "One site against an old snapshot: traceback, size, size_diff, count, count_diff.",
         diff_members, diff_str);

/* --- Pinning ---------------------------------------------------------------- */
static PyMemberDef pinning_members[] = {
    REC_FIELD("traceback", 0, READONLY, "the site: a Traceback"),
    REC_FIELD("live", 1, READONLY, "bytes of its live blocks"),
    REC_FIELD("pinned", 2, READONLY, "bytes of the pages attributed to it"),
    REC_FIELD("pages", 3, READONLY, "pages holding some of its blocks"),
    REC_FIELD("shared_pages", 4, READONLY, "of those, pages shared with other sites"),
    REC_FIELD("arenas", 5, READONLY, "arenas holding some of its blocks"),
    REC_FIELD("count", 6, READONLY, "its live blocks"),
    {NULL, 0, 0, 0, NULL},
};

/* app.py:15 keeps 9,800 pages (38.3 MiB) for 610 KiB of live objects (1,200 blocks) */
static PyObject *pinning_str(PyObject *self) {
    char pages[32], pinned[32], live[32], count[32];
    format_count(pages, sizeof pages, (unsigned long long)rec_ll(self, 3));
    format_size(pinned, sizeof pinned, (double)rec_ll(self, 2), 0);
    format_size(live, sizeof live, (double)rec_ll(self, 1), 0);
    format_count(count, sizeof count, (unsigned long long)rec_ll(self, 6));
    long long np = rec_ll(self, 3);
    return PyUnicode_FromFormat("%S keeps %s page%s (%s) for %s of live objects (%s block%s)",
                                ((neap_record_t *)self)->f[0], pages, np == 1 ? "" : "s",
                                pinned, live, count, rec_ll(self, 6) == 1 ? "" : "s");
}

REC_TYPE(PinningType, "Pinning",
         "Memory one site's live blocks keep from going back to the OS: traceback, live, "
         "pinned, pages, shared_pages, arenas, count.",
         pinning_members, pinning_str);

/* --- MemoryInfo --------------------------------------------------------------- */
static PyMemberDef meminfo_members[] = {
    REC_FIELD("rss", 0, READONLY, "resident set size, bytes (psutil's memory_info().rss)"),
    REC_FIELD("vms", 1, READONLY, "virtual memory size, bytes (psutil's memory_info().vms)"),
    REC_FIELD("peak_rss", 2, READONLY, "high-water resident set size, bytes"),
    {NULL, 0, 0, 0, NULL},
};

REC_TYPE(MemoryInfoType, "MemoryInfo", "The process's memory as the kernel counts it.",
         meminfo_members, NULL);

/* --- Filter (mutable, made by the user) ------------------------------------------ */
static PyMemberDef filter_members[] = {
    REC_FIELD("inclusive", 0, 0, "True: keep matching traces; False: drop them"),
    REC_FIELD("filename_pattern", 1, 0, "fnmatch pattern on the frame's filename"),
    REC_FIELD("lineno", 2, 0, "line to match, or None for any"),
    REC_FIELD("all_frames", 3, 0, "match any frame of the stack, not only the most recent"),
    {NULL, 0, 0, 0, NULL},
};

static PyObject *filter_new(PyTypeObject *t, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"inclusive", "filename_pattern", "lineno", "all_frames", NULL};
    int inclusive, all_frames = 0;
    PyObject *pattern, *lineno = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "pU|Op:Filter", kwlist, &inclusive, &pattern,
                                     &lineno, &all_frames))
        return NULL;
    if (lineno != Py_None && !PyLong_Check(lineno)) {
        PyErr_SetString(PyExc_TypeError, "Filter: lineno must be an int or None");
        return NULL;
    }
    Py_INCREF(pattern);
    Py_INCREF(lineno);
    return rec_new(t, 4, PyBool_FromLong(inclusive), pattern, lineno, PyBool_FromLong(all_frames));
}

static PyTypeObject FilterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neap.Filter",
    .tp_basicsize = sizeof(neap_record_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Filter(inclusive, filename_pattern, lineno=None, all_frames=False): "
              "for Snapshot.filter_traces, as tracemalloc.Filter.",
    .tp_new = filter_new,
    .tp_dealloc = rec_dealloc,
    .tp_traverse = rec_traverse,
    .tp_clear = rec_clear,
    .tp_richcompare = rec_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_repr = rec_repr,
    .tp_members = filter_members,
};

/* ---------------------------------------------------------------------------
 * Snapshot.
 * ------------------------------------------------------------------------- */
typedef struct neap_pysnapshot {
    PyObject_HEAD
    neap_snapshot_t *snap; /* owned; never NULL once made */
} neap_pysnapshot_t;

static PyTypeObject SnapshotType;

static PyObject *snapshot_wrap(neap_snapshot_t *s) {
    neap_pysnapshot_t *o = PyObject_New(neap_pysnapshot_t, &SnapshotType);
    if (o == NULL) {
        api.snapshot_free(s);
        return NULL;
    }
    o->snap = s;
    return (PyObject *)o;
}

static void snapshot_dealloc(PyObject *self) {
    neap_pysnapshot_t *o = (neap_pysnapshot_t *)self;
    if (o->snap != NULL) api.snapshot_free(o->snap);
    PyObject_Free(self);
}

/* 'filename', 'lineno' or 'traceback'; -1 with ValueError otherwise. */
static int parse_key(PyObject *key, neap_key_t *out) {
    const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    if (k != NULL && strcmp(k, "filename") == 0) *out = NEAP_KEY_FILENAME;
    else if (k != NULL && strcmp(k, "lineno") == 0) *out = NEAP_KEY_LINENO;
    else if (k != NULL && strcmp(k, "traceback") == 0) *out = NEAP_KEY_TRACEBACK;
    else {
        if (k == NULL) PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "unknown key_type: %R (expected 'filename', 'lineno' or 'traceback')", key);
        return -1;
    }
    return 0;
}

static PyObject *snapshot_statistics(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"key_type", "cumulative", NULL};
    PyObject *key_obj;
    int cumulative = 0;
    neap_key_t key;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:statistics", kwlist, &key_obj, &cumulative)
        || parse_key(key_obj, &key) < 0)
        return NULL;
    if (cumulative && key == NEAP_KEY_TRACEBACK) {
        PyErr_SetString(PyExc_ValueError, "cumulative statistics are not available for key_type 'traceback'");
        return NULL;
    }
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap;
    const neap_statistic_t *st = NULL;
    size_t n = 0;
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = api.snapshot_statistics(s, key, cumulative, &st, &n);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) return raise_error(err, snapshot_message(), NULL, PyExc_RuntimeError);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *r = rec_new(&StatisticType, 3, traceback_new(st[i].frame, st[i].nframe),
                              PyLong_FromSize_t(st[i].size), PyLong_FromSize_t(st[i].count));
        if (r == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    return list;
}

static PyObject *snapshot_compare_to(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"old_snapshot", "key_type", "cumulative", NULL};
    PyObject *old, *key_obj;
    int cumulative = 0;
    neap_key_t key;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|p:compare_to", kwlist, &SnapshotType, &old,
                                     &key_obj, &cumulative)
        || parse_key(key_obj, &key) < 0)
        return NULL;
    if (cumulative && key == NEAP_KEY_TRACEBACK) {
        PyErr_SetString(PyExc_ValueError, "cumulative statistics are not available for key_type 'traceback'");
        return NULL;
    }
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap, *o = ((neap_pysnapshot_t *)old)->snap;
    const neap_statistic_diff_t *d = NULL;
    size_t n = 0;
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = api.snapshot_compare_to(s, o, key, cumulative, &d, &n);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) return raise_error(err, snapshot_message(), NULL, PyExc_RuntimeError);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *r = rec_new(&StatisticDiffType, 5, traceback_new(d[i].frame, d[i].nframe),
                              PyLong_FromSize_t(d[i].size), PyLong_FromLongLong(d[i].size_diff),
                              PyLong_FromSize_t(d[i].count), PyLong_FromLongLong(d[i].count_diff));
        if (r == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    return list;
}

static PyObject *snapshot_pinning(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"key_type", NULL};
    PyObject *key_obj = NULL;
    neap_key_t key = NEAP_KEY_LINENO;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:pinning", kwlist, &key_obj)
        || (key_obj != NULL && parse_key(key_obj, &key) < 0))
        return NULL;
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap;
    const neap_pinning_t *p = NULL;
    size_t n = 0;
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = api.snapshot_pinning(s, key, &p, &n);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) return raise_error(err, snapshot_message(), NULL, PyExc_RuntimeError);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *r = rec_new(&PinningType, 7, traceback_new(p[i].frame, p[i].nframe),
                              PyLong_FromSize_t(p[i].live), PyLong_FromSize_t(p[i].pinned),
                              PyLong_FromSize_t(p[i].pages), PyLong_FromSize_t(p[i].shared_pages),
                              PyLong_FromSize_t(p[i].arenas), PyLong_FromSize_t(p[i].count));
        if (r == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    return list;
}

/* An attribute of a filter object (neap.Filter, or anything with the same
 * attributes, tracemalloc.Filter among them). */
static PyObject *filter_attr(PyObject *f, const char *name, int required) {
    if (Py_TYPE(f) == &FilterType) {
        Py_ssize_t i = 0;
        while (filter_members[i].name != NULL && strcmp(filter_members[i].name, name) != 0) i++;
        PyObject *v = filter_members[i].name != NULL ? ((neap_record_t *)f)->f[i] : NULL;
        if (v == NULL) v = Py_None; /* no such field (domain): None */
        Py_INCREF(v);
        return v;
    }
    PyObject *v = PyObject_GetAttrString(f, name);
    if (v == NULL && !required && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        Py_INCREF(Py_None);
        v = Py_None;
    }
    return v;
}

static PyObject *snapshot_filter_traces(PyObject *self, PyObject *arg) {
    /* a tuple of its own: a filter's attributes may run code that changes
     * the caller's list */
    PyObject *seq = PySequence_Tuple(arg);
    if (seq == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    neap_filter_t *filters = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof *filters);
    PyObject **patterns = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof *patterns);
    PyObject *result = NULL;
    if (filters == NULL || patterns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(seq, i);
        /* the domain first: a tracemalloc.DomainFilter has no pattern */
        PyObject *domain = filter_attr(f, "domain", 0);
        if (domain != NULL && domain != Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "filter_traces: neap's traces have no domain (domain must be None)");
            Py_CLEAR(domain);
        }
        PyObject *incl = domain != NULL ? filter_attr(f, "inclusive", 1) : NULL;
        PyObject *pat = incl != NULL ? filter_attr(f, "filename_pattern", 1) : NULL;
        PyObject *line = pat != NULL ? filter_attr(f, "lineno", 0) : NULL;
        PyObject *all = line != NULL ? filter_attr(f, "all_frames", 0) : NULL;
        int ok = all != NULL;
        if (ok && !PyUnicode_Check(pat)) {
            PyErr_SetString(PyExc_TypeError, "filter_traces: filename_pattern must be a str");
            ok = 0;
        }
        long lineno = 0;
        if (ok && line != Py_None) {
            lineno = PyLong_AsLong(line);
            if (lineno == -1 && PyErr_Occurred()) ok = 0;
            else if (lineno < 0 || lineno > INT_MAX) {
                PyErr_SetString(PyExc_ValueError, "filter_traces: lineno out of range");
                ok = 0;
            }
        }
        int inclusive = ok ? PyObject_IsTrue(incl) : -1;
        int all_frames = inclusive >= 0 ? PyObject_IsTrue(all) : -1;
        if (all_frames >= 0) {
            patterns[i] = PyUnicode_EncodeFSDefault(pat);
            if (patterns[i] != NULL) {
                filters[i].inclusive = inclusive;
                filters[i].filename_pattern = PyBytes_AS_STRING(patterns[i]);
                filters[i].lineno = (int)lineno;
                filters[i].all_frames = all_frames;
            }
        }
        Py_XDECREF(incl);
        Py_XDECREF(pat);
        Py_XDECREF(line);
        Py_XDECREF(all);
        Py_XDECREF(domain);
        if (patterns[i] == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "filter_traces: bad filter");
            goto done;
        }
    }
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap, *out;
    int err;
    Py_BEGIN_ALLOW_THREADS
    out = api.snapshot_filter_traces(s, filters, (size_t)n);
    err = errno;
    Py_END_ALLOW_THREADS
    result = out != NULL ? snapshot_wrap(out)
                         : raise_error(err, snapshot_message(), NULL, PyExc_RuntimeError);
done:
    if (patterns != NULL)
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(patterns[i]);
    PyMem_Free(patterns);
    PyMem_Free(filters);
    Py_DECREF(seq);
    return result;
}

static PyObject *snapshot_dump(PyObject *self, PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap;
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = api.snapshot_dump(s, PyBytes_AS_STRING(path));
    err = errno;
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc != 0) return raise_error(err, snapshot_message(), arg, PyExc_RuntimeError);
    Py_RETURN_NONE;
}

static PyObject *snapshot_load(PyObject *cls, PyObject *arg) {
    if (need_tracing() < 0) return NULL;
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    neap_snapshot_t *s;
    int err;
    Py_BEGIN_ALLOW_THREADS
    s = api.snapshot_load(PyBytes_AS_STRING(path));
    err = errno;
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s == NULL) return raise_error(err, snapshot_message(), arg, PyExc_RuntimeError);
    return snapshot_wrap(s);
}

static PyObject *snapshot_get_traceback_limit(PyObject *self, void *closure) {
    return PyLong_FromLong(api.snapshot_traceback_limit(((neap_pysnapshot_t *)self)->snap));
}

static PyObject *snapshot_get_sample_interval(PyObject *self, void *closure) {
    return PyLong_FromSize_t(api.snapshot_sample_interval(((neap_pysnapshot_t *)self)->snap));
}

static Py_ssize_t snapshot_len(PyObject *self) {
    return (Py_ssize_t)api.snapshot_count(((neap_pysnapshot_t *)self)->snap);
}

static PyObject *snapshot_repr(PyObject *self) {
    neap_snapshot_t *s = ((neap_pysnapshot_t *)self)->snap;
    return PyUnicode_FromFormat("<neap.Snapshot traces=%zu traceback_limit=%d>",
                                api.snapshot_count(s), api.snapshot_traceback_limit(s));
}

static PyMethodDef snapshot_methods[] = {
    {"statistics", (PyCFunction)(void (*)(void))snapshot_statistics, METH_VARARGS | METH_KEYWORDS,
     "statistics(key_type, cumulative=False) -> list of Statistic, largest first.\n"
     "key_type: 'filename', 'lineno' or 'traceback'."},
    {"compare_to", (PyCFunction)(void (*)(void))snapshot_compare_to, METH_VARARGS | METH_KEYWORDS,
     "compare_to(old_snapshot, key_type, cumulative=False) -> list of StatisticDiff, "
     "largest change first."},
    {"pinning", (PyCFunction)(void (*)(void))snapshot_pinning, METH_VARARGS | METH_KEYWORDS,
     "pinning(key_type='lineno') -> list of Pinning: the pages each site's live blocks "
     "keep from going back to the OS, most first."},
    {"filter_traces", snapshot_filter_traces, METH_O,
     "filter_traces(filters) -> a new Snapshot with the traces the filters keep."},
    {"dump", snapshot_dump, METH_O, "dump(filename): write the snapshot to a file."},
    {"load", (PyCFunction)snapshot_load, METH_O | METH_CLASS,
     "Snapshot.load(filename) -> a Snapshot read from a file dump() wrote."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef snapshot_getset[] = {
    {"traceback_limit", snapshot_get_traceback_limit, NULL,
     "frames kept per stack when the snapshot was taken", NULL},
    {"sample_interval", snapshot_get_sample_interval, NULL,
     "the sampling interval when it was taken (bytes), 0 for exact tracing", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods snapshot_as_sequence = {.sq_length = snapshot_len};

static PyTypeObject SnapshotType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neap.Snapshot",
    .tp_basicsize = sizeof(neap_pysnapshot_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The live traces at one moment (neap.take_snapshot() or Snapshot.load()); "
              "len() is the number of traces.",
    .tp_dealloc = snapshot_dealloc,
    .tp_repr = snapshot_repr,
    .tp_methods = snapshot_methods,
    .tp_getset = snapshot_getset,
    .tp_as_sequence = &snapshot_as_sequence,
};

/* ---------------------------------------------------------------------------
 * Module functions: tracing (tracemalloc's names).
 * ------------------------------------------------------------------------- */
static PyObject *neap_py_start(PyObject *mod, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"nframe", "sample_interval", NULL};
    int nframe = 1;
    PyObject *interval_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|iO:start", kwlist, &nframe, &interval_obj)
        || need_tracing() < 0)
        return NULL;
    if (nframe < 1 || nframe > NEAP_TRACE_MAX_FRAMES) {
        PyErr_Format(PyExc_ValueError, "nframe must be between 1 and %d, not %d",
                     NEAP_TRACE_MAX_FRAMES, nframe);
        return NULL;
    }
    int rc;
    if (interval_obj == Py_None) {
        rc = api.trace_start(nframe);
    } else {
        size_t interval = PyLong_AsSize_t(interval_obj);
        if (interval == (size_t)-1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "sample_interval must be a positive int");
            }
            return NULL;
        }
        if (interval == 0) {
            PyErr_SetString(PyExc_ValueError,
                            "sample_interval must be a positive int (None: trace every allocation)");
            return NULL;
        }
        rc = api.trace_start_sampled(nframe, interval);
    }
    if (rc != 0) {
        int err = errno;
        if (err == EBUSY)
            PyErr_SetString(PyExc_RuntimeError,
                            "neap cannot trace in the debug mode (NEAP_DEBUG_MALLOC=1)");
        else
            raise_error(err, NULL, NULL, PyExc_RuntimeError);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *neap_py_stop(PyObject *mod, PyObject *unused) {
    if (api.trace_stop != NULL) api.trace_stop();
    Py_RETURN_NONE;
}

static PyObject *neap_py_is_tracing(PyObject *mod, PyObject *unused) {
    return PyBool_FromLong(api.trace_is_tracing != NULL && api.trace_is_tracing());
}

/* mark(label): neap_trace_mark; the moment in the NEAP_TRACE stream. */
static PyObject *neap_py_mark(PyObject *mod, PyObject *arg) {
    Py_ssize_t n;
    const char *label = PyUnicode_AsUTF8AndSize(arg, &n);
    if (label == NULL) return NULL;
    if ((size_t)n != strlen(label)) {
        PyErr_SetString(PyExc_ValueError, "mark(): the label holds a NUL character");
        return NULL;
    }
    if (api.trace_mark == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mark(): this libneap has no tracing");
        return NULL;
    }
    if (api.trace_mark(label) != 0) {
        if (errno == ENOENT)
            PyErr_SetString(PyExc_RuntimeError,
                            "mark(): the process writes no trace (run it with `neap run --trace FILE`)");
        else if (errno == ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *neap_py_clear_traces(PyObject *mod, PyObject *unused) {
    if (api.trace_clear_traces != NULL) api.trace_clear_traces();
    Py_RETURN_NONE;
}

static PyObject *neap_py_get_traceback_limit(PyObject *mod, PyObject *unused) {
    if (need_tracing() < 0) return NULL;
    return PyLong_FromLong(api.trace_get_traceback_limit());
}

static PyObject *neap_py_get_sample_interval(PyObject *mod, PyObject *unused) {
    if (need_tracing() < 0) return NULL;
    return PyLong_FromSize_t(api.trace_get_sample_interval());
}

static PyObject *neap_py_get_traced_memory(PyObject *mod, PyObject *unused) {
    size_t current = 0, peak = 0;
    if (api.trace_get_traced_memory != NULL) api.trace_get_traced_memory(&current, &peak);
    return Py_BuildValue("(nn)", (Py_ssize_t)current, (Py_ssize_t)peak);
}

static PyObject *neap_py_reset_peak(PyObject *mod, PyObject *unused) {
    if (api.trace_reset_peak != NULL) api.trace_reset_peak();
    Py_RETURN_NONE;
}

static PyObject *neap_py_get_tracemalloc_memory(PyObject *mod, PyObject *unused) {
    return PyLong_FromSize_t(api.trace_get_tracemalloc_memory != NULL
                                 ? api.trace_get_tracemalloc_memory()
                                 : 0);
}

static PyObject *neap_py_take_snapshot(PyObject *mod, PyObject *unused) {
    if (need_tracing() < 0) return NULL;
    neap_snapshot_t *s;
    int err;
    Py_BEGIN_ALLOW_THREADS
    s = api.take_snapshot();
    err = errno;
    Py_END_ALLOW_THREADS
    if (s != NULL) return snapshot_wrap(s);
    if (err == EINVAL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "neap is not tracing: call neap.start() before neap.take_snapshot()");
        return NULL;
    }
    if (err == ENOTSUP) {
        PyErr_SetString(PyExc_RuntimeError,
                        "neap traces to a file only (NEAP_TRACE): call neap.start() to keep "
                        "traces in memory for snapshots");
        return NULL;
    }
    return raise_error(err, snapshot_message(), NULL, PyExc_RuntimeError);
}

/* ---------------------------------------------------------------------------
 * Module functions: the allocator and the process.
 * ------------------------------------------------------------------------- */
#define STAT_ITEM(d, s, field) stat_set(d, #field, (s)->field)

static int stat_set(PyObject *d, const char *name, size_t v) {
    PyObject *o = PyLong_FromSize_t(v);
    int rc = o != NULL ? PyDict_SetItemString(d, name, o) : -1;
    Py_XDECREF(o);
    return rc;
}

static PyObject *neap_py_get_stats(PyObject *mod, PyObject *unused) {
    neap_stats_t st;
    Py_BEGIN_ALLOW_THREADS
    api.stats_get(&st);
    Py_END_ALLOW_THREADS
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    if (STAT_ITEM(d, &st, arenas_allocated) || STAT_ITEM(d, &st, arenas_freed)
        || STAT_ITEM(d, &st, arenas_current) || STAT_ITEM(d, &st, arenas_highwater)
        || STAT_ITEM(d, &st, pools_current) || STAT_ITEM(d, &st, pages_used)
        || STAT_ITEM(d, &st, pages_dirty) || STAT_ITEM(d, &st, bytes_live)
        || STAT_ITEM(d, &st, bytes_in_pools) || STAT_ITEM(d, &st, bytes_huge)
        || STAT_ITEM(d, &st, bytes_huge_cached) || STAT_ITEM(d, &st, bytes_mapped)
        || STAT_ITEM(d, &st, bytes_purged) || STAT_ITEM(d, &st, bytes_unmapped)
        || STAT_ITEM(d, &st, huge_current) || STAT_ITEM(d, &st, large_current)
        || STAT_ITEM(d, &st, heaps_current) || STAT_ITEM(d, &st, arenas_orphaned)
        || STAT_ITEM(d, &st, mesh_pages) || STAT_ITEM(d, &st, meshes) || STAT_ITEM(d, &st, unmeshes)
        || STAT_ITEM(d, &st, mesh_ns))
        goto fail;
    PyObject *classes = PyList_New(0);
    if (classes == NULL || PyDict_SetItemString(d, "classes", classes) < 0) {
        Py_XDECREF(classes);
        goto fail;
    }
    Py_DECREF(classes); /* d holds it */
    for (int i = 0; i < NEAP_CLASS_MAX; i++) {
        const neap_class_stats_t *c = &st.classes[i];
        if (c->block_size == 0) continue;
        PyObject *cd = PyDict_New();
        int bad = cd == NULL || STAT_ITEM(cd, c, block_size) || STAT_ITEM(cd, c, pools)
                  || STAT_ITEM(cd, c, blocks_used) || STAT_ITEM(cd, c, blocks_free)
                  || STAT_ITEM(cd, c, pools_made) || PyList_Append(classes, cd) < 0;
        Py_XDECREF(cd);
        if (bad) goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *neap_py_print_stats(PyObject *mod, PyObject *unused) {
    /* Python's own stderr first, so that the two outputs keep their order */
    PyObject *err = PySys_GetObject("stderr");
    if (err != NULL && err != Py_None) {
        PyObject *r = PyObject_CallMethod(err, "flush", NULL);
        if (r == NULL) PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_BEGIN_ALLOW_THREADS
    api.stats_print(NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *neap_py_trim(PyObject *mod, PyObject *unused) {
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = api.trim();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(r);
}

static int read_memory(neap_process_memory_t *m) {
    if (api.process_memory(m) == 0) return 0;
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/status");
    return -1;
}

static PyObject *neap_py_memory_info(PyObject *mod, PyObject *unused) {
    neap_process_memory_t m;
    if (read_memory(&m) < 0) return NULL;
    return rec_new(&MemoryInfoType, 3, PyLong_FromSize_t(m.rss), PyLong_FromSize_t(m.vsize),
                   PyLong_FromSize_t(m.peak_rss));
}

static PyObject *neap_py_rss(PyObject *mod, PyObject *unused) {
    neap_process_memory_t m;
    if (read_memory(&m) < 0) return NULL;
    return PyLong_FromSize_t(m.rss);
}

/* An option by its name, with or without NEAP_, in any case. */
static int parse_option(PyObject *name, neap_option_t *out) {
    const char *n = PyUnicode_AsUTF8(name);
    if (n == NULL) return -1;
    if (strncasecmp(n, "NEAP_", 5) == 0) n += 5;
    for (int i = 0; i < NEAP_OPTION_COUNT; i++) {
        const char *o = api.option_name((neap_option_t)i);
        if (o != NULL && strcasecmp(o, n) == 0) {
            *out = (neap_option_t)i;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown neap option: %R", name);
    return -1;
}

static PyObject *neap_py_get_option(PyObject *mod, PyObject *name) {
    neap_option_t opt;
    if (parse_option(name, &opt) < 0) return NULL;
    return PyLong_FromLong(api.option_get(opt));
}

static PyObject *neap_py_set_option(PyObject *mod, PyObject *args) {
    PyObject *name;
    long value;
    neap_option_t opt;
    if (!PyArg_ParseTuple(args, "Ul:set_option", &name, &value) || parse_option(name, &opt) < 0)
        return NULL;
    if (api.option_set(opt, value) != 0) {
        int err = errno;
        if (err == EBUSY) {
            PyErr_Format(PyExc_ValueError, "neap option %R is fixed when the process starts", name);
            return NULL;
        }
        return raise_error(err, NULL, NULL, PyExc_RuntimeError);
    }
    Py_RETURN_NONE;
}

static PyObject *neap_py_get_options(PyObject *mod, PyObject *unused) {
    PyObject *d = PyDict_New();
    for (int i = 0; d != NULL && i < NEAP_OPTION_COUNT; i++) {
        const char *name = api.option_name((neap_option_t)i);
        if (name == NULL) continue;
        PyObject *v = PyLong_FromLong(api.option_get((neap_option_t)i));
        if (v == NULL || PyDict_SetItemString(d, name, v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyMethodDef neap_methods[] = {
    {"start", (PyCFunction)(void (*)(void))neap_py_start, METH_VARARGS | METH_KEYWORDS,
     "start(nframe=1, sample_interval=None): trace allocations, keeping nframe frames of "
     "each stack.  sample_interval=None traces every allocation; a positive int samples "
     "by bytes with that mean interval (DEFAULT_SAMPLE_INTERVAL is the library's own), "
     "and sizes and counts become estimates.  Starting again changes nframe and keeps "
     "the traces."},
    {"stop", neap_py_stop, METH_NOARGS, "stop(): stop tracing and forget every trace."},
    {"is_tracing", neap_py_is_tracing, METH_NOARGS, "is_tracing() -> bool"},
    {"mark", neap_py_mark, METH_O,
     "mark(label): names this moment in the trace file of `neap run --trace FILE` (or "
     "NEAP_TRACE=FILE), for `neap report FILE --at mark:LABEL`; RuntimeError when the process "
     "writes no trace"},
    {"clear_traces", neap_py_clear_traces, METH_NOARGS,
     "clear_traces(): forget every trace, keep tracing."},
    {"get_traceback_limit", neap_py_get_traceback_limit, METH_NOARGS,
     "get_traceback_limit() -> frames kept per stack"},
    {"get_sample_interval", neap_py_get_sample_interval, METH_NOARGS,
     "get_sample_interval() -> the sampling interval in bytes, 0 when every allocation "
     "is traced"},
    {"get_traced_memory", neap_py_get_traced_memory, METH_NOARGS,
     "get_traced_memory() -> (current, peak) bytes of traced blocks"},
    {"reset_peak", neap_py_reset_peak, METH_NOARGS,
     "reset_peak(): the peak of get_traced_memory() starts again from the current size"},
    {"get_tracemalloc_memory", neap_py_get_tracemalloc_memory, METH_NOARGS,
     "get_tracemalloc_memory() -> bytes the tracing itself uses"},
    {"take_snapshot", neap_py_take_snapshot, METH_NOARGS,
     "take_snapshot() -> Snapshot of the live traces (RuntimeError when not tracing)"},
    {"get_stats", neap_py_get_stats, METH_NOARGS,
     "get_stats() -> dict of the allocator's statistics (neap_stats_get), with 'classes': "
     "one dict per size class"},
    {"print_stats", neap_py_print_stats, METH_NOARGS,
     "print_stats(): the allocator's statistics, readable, to stderr (as "
     "sys._debugmallocstats())"},
    {"trim", neap_py_trim, METH_NOARGS,
     "trim() -> bool: give every free page back to the OS now; True if memory went back"},
    {"memory_info", neap_py_memory_info, METH_NOARGS,
     "memory_info() -> MemoryInfo(rss, vms, peak_rss), bytes, as the kernel reports them"},
    {"rss", neap_py_rss, METH_NOARGS, "rss() -> resident set size of the process, bytes"},
    {"get_option", neap_py_get_option, METH_O,
     "get_option(name) -> int: a NEAP_<NAME> option's value ('purge_delay', ...)"},
    {"set_option", neap_py_set_option, METH_VARARGS, "set_option(name, value)"},
    {"get_options", neap_py_get_options, METH_NOARGS, "get_options() -> dict of every option"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef neap_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neap",
    .m_doc = "The neap memory manager, from inside a Python process that runs on it: the "
             "allocator's statistics and trim(), the process's memory, and tracing with "
             "tracemalloc's names (start, take_snapshot, Snapshot.statistics, compare_to, "
             "filter_traces, dump, load) plus Snapshot.pinning().  Importing it in a process "
             "that is not on neap raises ImportError.",
    .m_size = -1,
    .m_methods = neap_methods,
};

/* Python's objects come from malloc only with PYTHONMALLOC=malloc; with
 * pymalloc, neap sees the interpreter's big blocks alone.  A warning. */
static int warn_if_pymalloc(void) {
    void *p = PyObject_Malloc(16);
    int owned = p != NULL && api.owns(p);
    PyObject_Free(p);
    if (owned) return 0;
    return PyErr_WarnEx(PyExc_RuntimeWarning,
                        "neap: Python's small objects come from pymalloc, not from neap, so "
                        "neap neither traces nor frees them: set PYTHONMALLOC=malloc (neap run "
                        "does it for you)",
                        1);
}

PyMODINIT_FUNC PyInit_neap(void); /* the interpreter's entry point */
PyMODINIT_FUNC PyInit_neap(void) {
    if (api_load() < 0) return NULL;
    PyTypeObject *types[] = {&FrameType, &TracebackType, &StatisticType, &StatisticDiffType,
                             &PinningType, &MemoryInfoType, &FilterType, &SnapshotType};
    TracebackType.tp_base = &PyTuple_Type;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;
    if (warn_if_pymalloc() < 0) return NULL;
    PyObject *m = PyModule_Create(&neap_module);
    if (m == NULL) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *name = strrchr(types[i]->tp_name, '.') + 1;
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, name, (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(m);
            return NULL;
        }
    }
    if (PyModule_AddStringConstant(m, "__version__", NEAP_VERSION) < 0
        || PyModule_AddStringConstant(m, "library", api_library) < 0
        || PyModule_AddObject(m, "HAVE_TRACING", PyBool_FromLong(api.trace_start != NULL)) < 0
        || PyModule_AddIntConstant(m, "MAX_FRAMES", NEAP_TRACE_MAX_FRAMES) < 0
        || PyModule_AddIntConstant(m, "DEFAULT_SAMPLE_INTERVAL", NEAP_TRACE_DEFAULT_INTERVAL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

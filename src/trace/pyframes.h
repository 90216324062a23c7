/* pyframes.h -- what pyframes.c offers the tracing layer: the Python frames
 * of the allocating thread, when the process is a CPython interpreter.
 *
 * A frame of an interned stack is one word: a native return address, or a
 * Python frame, NEAP_PYFRAME_TAG | id, where id names one (code object,
 * line) of the program for the life of the process:
 *
 *   bit 63   62 ............................ 0
 *   [ 1 ][ id: 1, 2, ... in order of first use ]   a Python frame
 *   [ 0 ][ a return address (user space)       ]   a native frame
 *
 * _neap_py_frame(word) gives its file, function and line.  The mode
 * (NEAP_OPTION_TRACE_PYTHON): 0 native frames only; 1 (the default) the
 * Python frames alone when there are any; 2 both, the Python frames in
 * place of the interpreter's C function that runs them.
 */
#ifndef NEAP_PYFRAMES_H
#define NEAP_PYFRAMES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "neap.h"
#include "os/os.h"
#include "trace/tracefmt.h"

#define NEAP_PYFRAME_TAG ((uintptr_t)NEAP_TRACE_PYFRAME_TAG) /* as the trace format has it */
#define NEAP_PYFRAME_FILE_MAX 1024   /* bytes of a file name kept (UTF-8) */
#define NEAP_PYFRAME_FUNC_MAX 256    /* bytes of a function name kept */

static inline int _neap_is_pyframe(uintptr_t f) { return (f & NEAP_PYFRAME_TAG) != 0; }

/* One Python frame: a line of a function of a file.  Never freed. */
typedef struct _neap_pyframe {
    const char *file;           /* co_filename, UTF-8, NUL-terminated */
    const char *func;           /* co_qualname */
    uint32_t file_len, func_len;
    uint32_t line;              /* 0: unknown */
    uint32_t id;
    _Atomic uint32_t streamed;  /* the trace stream's state (trace.c) */
} _neap_pyframe_t;

/* Looks for a CPython interpreter in the process (its exported symbols):
 * at tracing's start, and again now and then while none is found (one may
 * be loaded later).  Says once, on stderr, when it finds an interpreter
 * whose frames it cannot read.  May allocate (the dynamic linker): the
 * caller's allocations are untraced. */
NEAP_INTERNAL void _neap_py_probe(void);

/* The frames of the calling thread's stack, innermost first, into f (at
 * most max): per the mode, the Python frames alone (0 when the thread is
 * running no Python code: the caller captures native frames instead), or
 * native[0..nnative) with the Python frames in place of the interpreter's
 * evaluation loop (mode 2: the caller passes the whole native stack, from
 * the DWARF unwinder).  Never allocates. */
NEAP_INTERNAL size_t _neap_py_stack(uintptr_t *f, size_t max, const uintptr_t *native,
                                    size_t nnative);
/* 0 no Python frames are taken (mode 0, or no interpreter found yet);
 * 1 Python frames alone; 2 merged with the native ones. */
NEAP_INTERNAL int _neap_py_mode(void);

/* The Python frame of the word f, or NULL if f is not one of this process. */
NEAP_INTERNAL _neap_pyframe_t *_neap_py_frame(uintptr_t f);

/* Bytes mapped for the frames' tables and strings. */
NEAP_INTERNAL size_t _neap_py_memory(void);

NEAP_INTERNAL void _neap_py_thread_exit(void);
NEAP_INTERNAL void _neap_py_fork_prepare(void);
NEAP_INTERNAL void _neap_py_fork_parent(void);
NEAP_INTERNAL void _neap_py_fork_child(void);

#endif /* NEAP_PYFRAMES_H */

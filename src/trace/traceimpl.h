/* traceimpl.h -- what trace.c offers the modules built on its traces
 * (snapshot.c): a copy of the live traces, and a way to allocate without
 * being traced; and to the library's assembly (neap.c): the stream to
 * NEAP_TRACE=FILE, and the fork and thread-exit hooks.
 */
#ifndef NEAP_TRACEIMPL_H
#define NEAP_TRACEIMPL_H

#include "core/hooks.h"
#include "neap_trace.h"

typedef struct _neap_rawtrace {
    uintptr_t addr;          /* the block */
    size_t size;             /* bytes asked for */
    const uintptr_t *frame;  /* its stack, innermost first: interned, valid for
                                the life of the process */
    uint32_t nframe;
    uint32_t stack_id;       /* the same id for the same stack */
} _neap_rawtrace_t;

/* Copies every live trace, at one moment, into an array from neap_malloc
 * (the caller frees it with neap_free).  Returns the number of traces, or
 * -1 with errno ENOMEM, or ENOTSUP when the traces are only streamed to the
 * NEAP_TRACE file (exact tracing started from the environment).  *interval gets the sampling interval then (0:
 * exact), *nframe the traceback limit. */
NEAP_INTERNAL long _neap_trace_copy(_neap_rawtrace_t **out, size_t *interval, int *nframe);

/* Between pause and resume, the calling thread's allocations are not
 * traced (the tracing layer's own work).  Calls nest. */
NEAP_INTERNAL void _neap_trace_pause(void);
NEAP_INTERNAL void _neap_trace_resume(void);

/* The bytes a trace of `size` stands for under sampling interval `interval`
 * (size itself when 0): size / (1 - exp(-size / interval)). */
NEAP_INTERNAL double _neap_trace_weight(size_t size, size_t interval);

/* Tests only: makes the reads of a thread's stack bounds fail from now on,
 * as they do near a memory limit (the C library's pthread_getattr_np
 * allocates).  how: 0 none fail (the default); 1 the C library's read
 * fails; 2 every way of reading them fails.  A thread whose bounds are
 * known already keeps them. */
NEAP_INTERNAL void _neap_trace_fail_bounds(int how);

NEAP_INTERNAL void _neap_trace_env_start(void);   /* NEAP_TRACE=FILE: stream to FILE */
NEAP_INTERNAL void _neap_trace_env_exit(void);    /* the last records, at exit */
NEAP_INTERNAL void _neap_trace_thread_exit(void); /* the thread's records to the stream */
NEAP_INTERNAL void _neap_trace_fork_prepare(void);
NEAP_INTERNAL void _neap_trace_fork_parent(void);
NEAP_INTERNAL void _neap_trace_fork_child(void);

#endif /* NEAP_TRACEIMPL_H */

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
 * NEAP_TRACE_LATENCY bytes of allocation.
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
 * range. */
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

/* A stack of return addresses, the innermost frame first. */
typedef struct neap_traceback {
    size_t nframe;
    uintptr_t frame[NEAP_TRACE_MAX_FRAMES];
} neap_traceback_t;

/* tracemalloc.get_object_traceback(p): fills *out with the stack that
 * allocated the block at p and returns 1; 0 if p is not traced. */
NEAP_EXPORT int neap_trace_get_object_traceback(const void *p, neap_traceback_t *out);
/* The traced size of the block at p, 0 if it is not traced. */
NEAP_EXPORT size_t neap_trace_get_object_size(const void *p);

#ifdef __cplusplus
}
#endif
#endif /* NEAP_TRACE_H */

/* neap.c -- the library as a whole: the one file above every subsystem,
 * which starts them in order and gives each the core's hooks.
 *
 *   src/os        system calls, formatting, diagnostics        (bottom)
 *   src/core      arenas, pools, heaps, malloc and free         needs os
 *   src/trace     tracing, snapshots, symbols, pinning          needs core
 *   src/obj       objects and the cycle collector               needs core
 *   src/services  published statistics, the background thread,
 *                 isolation                                     needs core
 *   src/override  malloc, free, ... as neap's                   needs core
 *   src/neap.c    this file: constructor and destructor         needs all
 *
 * A subsystem's files include only its own headers, those of the subsystems
 * it needs, and the public headers (scripts/check-layers checks it).
 *
 *   library constructor --> the core (options, thread key, fork handlers),
 *       tracing's and the services' hooks added (tracing first: its locks
 *       are taken on free paths, so fork takes them before the others),
 *       the background thread (NEAP_PUBLISH > 0 or NEAP_BACKGROUND=1),
 *       tracing to a file (NEAP_TRACE=FILE), noted for `neap run`'s
 *       summary when this is not the run's program (publish.c)
 *   library destructor --> statistics if NEAP_SHOW_STATS=1; the published
 *       record's last word; the trace file's last records
 */
#include "core/hooks.h"
#include "services/services.h"
#if NEAP_TRACING
#include "trace/traceimpl.h"
#endif

/* referred to by core/init.c, so that a static link takes this file along */
NEAP_INTERNAL const char _neap_assembly = 1;

#if NEAP_TRACING
static const neap_core_hooks_t neap_trace_hooks = {
    .fork_prepare = _neap_trace_fork_prepare,
    .fork_parent = _neap_trace_fork_parent,
    .fork_child = _neap_trace_fork_child,
    .thread_exit = _neap_trace_thread_exit,
};
#endif

static const neap_core_hooks_t neap_services_hooks = {
    .fork_prepare = _neap_publish_fork_prepare,   /* before _neap_lock, as the publisher takes them */
    .fork_parent = _neap_publish_fork_parent,
    .fork_child = _neap_publish_fork_child,
};

__attribute__((constructor)) static void neap_constructor(void) {
    _neap_core_start();
#if NEAP_TRACING
    _neap_core_add_hooks(&neap_trace_hooks);
#endif
    _neap_core_add_hooks(&neap_services_hooks);
    _neap_publish_start();
#if NEAP_TRACING
    if (neap_debug_mode() && _neap_os_getenv("NEAP_TRACE") != NULL)
        _neap_warning("NEAP_TRACE ignored", "the debug mode (NEAP_DEBUG_MALLOC=1) and tracing do not go together");
    else
        _neap_trace_env_start();
    /* streaming its own file: under neap run, named in the run's summary */
    if (neap_trace_is_tracing()) _neap_publish_trace_note();
#endif
}

__attribute__((destructor)) static void neap_destructor(void) {
    if (neap_opt(NEAP_OPTION_SHOW_STATS)) neap_stats_print(NULL);
    _neap_publish_exit();
#if NEAP_TRACING
    _neap_trace_env_exit();
#endif
}

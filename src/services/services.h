/* services.h -- what the services offer the library's assembly (neap.c):
 * statistics records published for `neap stats` and `neap run`
 * (publish.c), the background thread that writes them and purges idle
 * heaps (background.c); isolation (isolate.c) is public API only (neap.h).
 */
#ifndef NEAP_SERVICES_H
#define NEAP_SERVICES_H

#include "core/internal.h"

/* publish.c -- statistics records for `neap stats` and `neap run` */
NEAP_INTERNAL void _neap_publish_start(void);   /* if NEAP_PUBLISH > 0 */
NEAP_INTERNAL void _neap_publish_exit(void);    /* process exit */
/* This process streams its own trace file (NEAP_TRACE=FILE): under `neap
 * run`, a process other than the run's program notes it for the summary */
NEAP_INTERNAL void _neap_publish_trace_note(void);
NEAP_INTERNAL void _neap_publish_fork_prepare(void);
NEAP_INTERNAL void _neap_publish_fork_parent(void);
NEAP_INTERNAL void _neap_publish_fork_child(void);
/* The background thread's publishing step (write: its interval is up);
 * false when the thread should end. */
NEAP_INTERNAL bool _neap_publish_tick(unsigned long generation, bool write);

/* background.c -- the background thread: publishing and the idle purge */
NEAP_INTERNAL void _neap_background_start(void);   /* publish.c, under its lock */
NEAP_INTERNAL unsigned long _neap_background_generation(void);

#endif /* NEAP_SERVICES_H */

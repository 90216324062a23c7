/* background.c -- the background thread: it publishes the statistics
 * record (publish.c) and gives back the pages of heaps whose owners went
 * quiet.
 *
 *   started by publish.c (NEAP_PUBLISH > 0 or NEAP_BACKGROUND=1), from the
 *   library constructor, and again in a forked child (the parent's thread
 *   does not come along); all signals blocked; it never allocates.
 *
 *   loop:  sleep one tick (see below)
 *          the process's last running thread?  --> exit(0)
 *          publish.c: _neap_publish_tick --> a record if NEAP_PUBLISH ms
 *                     passed; false (exit, or an old generation) --> end
 *          NEAP_BACKGROUND (or NEAP_MESH): _neap_heaps_purge_expired
 *                     (core/heap.c) gives back the pages whose
 *                     NEAP_PURGE_DELAY is up, and meshes the pools their
 *                     owners left for it (NEAP_MESH, within a share of the
 *                     time: heap.c), in every heap whose owner is not in a
 *                     slow path (claimed through heap.c's membarrier
 *                     handshake; the first call registers membarrier, here,
 *                     off the program's threads)
 *
 *   tick = the smallest of NEAP_PUBLISH (1000 when off), the purge delay (at
 *   least 5 ms) while pages wait, 100 ms when none wait, and
 *   NEAP_LAST_TICK.
 *
 * Why the thread looks for being the last one: glibc ends a process when its
 * last thread ends (as if exit(0) were called, POSIX says), but it counts
 * this thread among the program's.  After a main that calls pthread_exit,
 * or in a forked child whose only thread returns, the process would live on
 * with this thread alone, and since it blocks every signal, not even
 * SIGTERM would end it.  Found alone, the thread does what the program's
 * last thread would have done: exit(0), which runs the atexit handlers and
 * destructors.
 *
 * Invariant: one thread per generation; a generation that is not the
 * current one ends at its next tick.
 */
#include "services/services.h"

#include <signal.h>
#include <stdlib.h>

enum { NEAP_LAST_TICK = 100 };   /* ms between looks for being the last thread */

static unsigned long neap_bg_generation;   /* a forked child's thread replaces the parent's */

unsigned long _neap_background_generation(void) {
    return neap_bg_generation;
}

static void *neap_bg_main(void *arg) {
    unsigned long generation = (unsigned long)(uintptr_t)arg;
    uint64_t last_publish = _neap_os_clock_ms();
    size_t waiting = 1;
    _neap_os_thread_name("neap-background");   /* at most 15 characters */
    for (;;) {
        long publish = neap_opt(NEAP_OPTION_PUBLISH);
        bool purge = neap_opt(NEAP_OPTION_BACKGROUND) != 0 || neap_mesh_on();
        long tick = publish > 0 ? publish : 1000;
        if (purge) {
            long delay = neap_opt(NEAP_OPTION_PURGE_DELAY);
            long want = waiting ? (delay < 5 ? 5 : delay) : 100;
            if (want < tick) tick = want;
        }
        if (tick > NEAP_LAST_TICK) tick = NEAP_LAST_TICK;
        _neap_os_sleep_ms((unsigned)tick);
        if (_neap_os_live_threads() == 1) exit(0);
        uint64_t now = _neap_os_clock_ms();
        bool due = publish > 0 && now - last_publish + 2 >= (uint64_t)publish;
        if (!_neap_publish_tick(generation, due)) return NULL;
        if (due) last_publish = now;
        if (purge) waiting = _neap_heaps_purge_expired();
    }
}

void _neap_background_start(void) {
    neap_bg_generation++;
    /* the thread takes no signal meant for the program */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);   /* touched lazily; room for a program's static TLS */
    pthread_t tid;
    int err = pthread_create(&tid, &attr, neap_bg_main, (void *)(uintptr_t)neap_bg_generation);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) _neap_warning("no background thread", "pthread_create failed: statistics are published once, pages purged by the program's own calls only");
}

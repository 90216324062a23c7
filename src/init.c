/* init.c -- process start, thread exit and fork.
 *
 *   first allocation of the process --> _neap_process_init (size classes,
 *       options) under _neap_lock; the calling thread gets a heap, then the
 *       thread-exit key and fork handlers are registered (either may
 *       allocate, which is fine once the heap is in place)
 *   library constructor --> options read, if the first allocation came
 *       before the environment was in place
 *   thread exit --> key destructor --> _neap_heap_done: the heap's arenas are
 *       trimmed and handed over
 *   fork --> prepare: take the global, orphan and huge locks so no arena
 *       list or huge cache is mid-update; parent: release; child: reset the
 *       locks, keep only the forking thread's heap (and the huge cache)
 *   process exit --> statistics if NEAP_SHOW_STATS=1; the published
 *       record's last word (publish.c)
 *   NEAP_PUBLISH > 0 or NEAP_BACKGROUND=1 --> the background thread
 *       (publish.c) starts from the constructor, and again in a forked child
 *   fork with the background thread running: the forking thread's heap lock
 *       is held across fork, so the child's heap is not mid-purge
 */
#include "internal.h"

pthread_mutex_t _neap_lock = PTHREAD_MUTEX_INITIALIZER;
_Atomic int _neap_initialized;

extern NEAP_INTERNAL pthread_mutex_t _neap_orphan_lock;
extern NEAP_INTERNAL pthread_mutex_t _neap_huge_lock;

static pthread_key_t neap_thread_key;
static pthread_once_t neap_hooks_once = PTHREAD_ONCE_INIT;
static int neap_key_ok;

void _neap_process_init(void) {
    if (atomic_load_explicit(&_neap_initialized, memory_order_acquire)) return;
    pthread_mutex_lock(&_neap_lock);
    if (!atomic_load_explicit(&_neap_initialized, memory_order_relaxed)) {
        _neap_classes_init();
        _neap_options_init();
        atomic_store_explicit(&_neap_initialized, 1, memory_order_release);
    }
    pthread_mutex_unlock(&_neap_lock);
}

static void neap_thread_done(void *value) {
    _neap_trace_thread_exit();
    _neap_heap_done((neap_heap_t *)value);
}

static void neap_fork_prepare(void) {
    _neap_trace_fork_prepare();     /* tracing's locks are taken on free paths: first */
    _neap_publish_fork_prepare();   /* before _neap_lock, as the publisher takes them */
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_lock(_neap_tl_heap);   /* no background purge in it */
    pthread_mutex_lock(&_neap_lock);
    pthread_mutex_lock(&_neap_orphan_lock);
    pthread_mutex_lock(&_neap_huge_lock);
}

static void neap_fork_parent(void) {
    pthread_mutex_unlock(&_neap_huge_lock);
    pthread_mutex_unlock(&_neap_orphan_lock);
    pthread_mutex_unlock(&_neap_lock);
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_unlock(_neap_tl_heap);
    _neap_publish_fork_parent();
    _neap_trace_fork_parent();
}

static void neap_fork_child(void) {
    pthread_mutex_init(&_neap_huge_lock, NULL);   /* the huge cache is the parent's, intact */
    _neap_fork_child(_neap_tl_heap);
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_unlock(_neap_tl_heap);
    _neap_publish_fork_child();
    _neap_trace_fork_child();
}

static void neap_hooks_init(void) {
    neap_key_ok = pthread_key_create(&neap_thread_key, neap_thread_done) == 0;
    pthread_atfork(neap_fork_prepare, neap_fork_parent, neap_fork_child);
}

void _neap_thread_register(neap_heap_t *h) {
    pthread_once(&neap_hooks_once, neap_hooks_init);
    if (neap_key_ok) pthread_setspecific(neap_thread_key, h);
}

__attribute__((constructor)) static void neap_constructor(void) {
    _neap_process_init();
    _neap_options_init();
    /* the fork handlers must be in place before a publishing thread runs */
    pthread_once(&neap_hooks_once, neap_hooks_init);
    _neap_publish_start();
    _neap_trace_env_start();
}

__attribute__((destructor)) static void neap_destructor(void) {
    if (neap_opt(NEAP_OPTION_SHOW_STATS)) neap_stats_print(NULL);
    _neap_publish_exit();
    _neap_trace_env_exit();
}

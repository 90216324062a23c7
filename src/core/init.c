/* init.c -- process start, thread exit and fork, for the core; and the
 * hooks through which the layers above hear of thread exits and forks.
 *
 *   first allocation of the process --> _neap_process_init (size classes,
 *       options) under _neap_lock; the calling thread gets a heap, then the
 *       thread-exit key and fork handlers are registered (either may
 *       allocate, which is fine once the heap is in place)
 *   library constructor (neap.c) --> _neap_core_start: options read, if the
 *       first allocation came before the environment was in place
 *   thread exit --> key destructor --> the hooks' thread_exit, then
 *       _neap_heap_done: the heap's empty pools retired, its arenas
 *       orphaned with their dirty pages (given back later, heap.c)
 *   fork --> prepare: the hooks' fork_prepare in order; then the forking
 *       thread enters its heap as a slow path does (so the child's heap is
 *       not mid-purge by the background thread: heap.c), then the global,
 *       orphan and huge locks so no
 *       arena list or huge cache is mid-update; parent: release, then the
 *       hooks in reverse; child: reset the locks, keep only the forking
 *       thread's heap (and the huge cache), then the hooks in reverse
 *
 *   hooks[0..nhooks)   added by neap.c's constructor (tracing, then the
 *                      services), read by every fork and thread exit
 *
 * Invariant: the core calls nothing above itself except through hooks[].
 */
#include "core/hooks.h"

pthread_mutex_t _neap_lock = PTHREAD_MUTEX_INITIALIZER;
_Atomic int _neap_initialized;

extern NEAP_INTERNAL pthread_mutex_t _neap_orphan_lock;
extern NEAP_INTERNAL pthread_mutex_t _neap_huge_lock;

static pthread_key_t neap_thread_key;
static const neap_core_hooks_t *neap_hooks[NEAP_CORE_HOOKS_MAX];
static _Atomic size_t neap_nhooks;

bool _neap_core_add_hooks(const neap_core_hooks_t *h) {
    size_t n = atomic_load_explicit(&neap_nhooks, memory_order_relaxed);
    if (n == NEAP_CORE_HOOKS_MAX) return false;
    neap_hooks[n] = h;
    atomic_store_explicit(&neap_nhooks, n + 1, memory_order_release);
    return true;
}

/* Calls hook `field` of every added hooks, in order or in reverse. */
#define NEAP_RUN_HOOKS(field, reverse)                                          \
    do {                                                                        \
        size_t n_ = atomic_load_explicit(&neap_nhooks, memory_order_acquire);   \
        for (size_t i_ = 0; i_ < n_; i_++) {                                    \
            const neap_core_hooks_t *h_ = neap_hooks[(reverse) ? n_ - 1 - i_ : i_]; \
            if (h_->field) h_->field();                                         \
        }                                                                       \
    } while (0)
static pthread_once_t neap_hooks_once = PTHREAD_ONCE_INIT;
static int neap_key_ok;

void _neap_process_init(void) {
    if (atomic_load_explicit(&_neap_initialized, memory_order_acquire)) return;
    pthread_mutex_lock(&_neap_lock);
    if (!atomic_load_explicit(&_neap_initialized, memory_order_relaxed)) {
        _neap_classes_init();
        _neap_options_init();
        /* fixed now, before the first block: blocks made without the debug
         * mode's guards could not be told from damaged ones later */
        _neap_debug_init(neap_opt(NEAP_OPTION_DEBUG_MALLOC) != 0);
        _neap_mesh_init(neap_opt(NEAP_OPTION_MESH) != 0);   /* fixed too: arenas are mapped for it */
        atomic_store_explicit(&_neap_initialized, 1, memory_order_release);
    }
    pthread_mutex_unlock(&_neap_lock);
}

static void neap_thread_done(void *value) {
    NEAP_RUN_HOOKS(thread_exit, false);
    _neap_heap_done((neap_heap_t *)value);
}

/* The core's locks, in the order every path takes them (a path may skip
 * some, never take one after a later one):
 *   _neap_orphan_lock -> _neap_lock -> _neap_huge_lock
 * (a thread's exit and the orphans' collection unmap arenas, which takes
 * _neap_lock, while they hold the orphan lock; the huge lock is a leaf).
 * The fork handlers take all three in that order: the other order once let
 * a fork deadlock against a thread's exit (test stress_forkexit). */
static void neap_fork_prepare(void) {
    NEAP_RUN_HOOKS(fork_prepare, false);   /* the layers' locks before the core's */
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_enter(_neap_tl_heap);   /* no background purge in it */
    pthread_mutex_lock(&_neap_orphan_lock);
    pthread_mutex_lock(&_neap_lock);
    pthread_mutex_lock(&_neap_huge_lock);
    _neap_mesh_lock();           /* no mesh half done; then the arenas made private */
    _neap_mesh_fork_prepare();
}

static void neap_fork_parent(void) {
    _neap_mesh_fork_after(false);
    _neap_mesh_unlock();
    pthread_mutex_unlock(&_neap_huge_lock);
    pthread_mutex_unlock(&_neap_lock);
    pthread_mutex_unlock(&_neap_orphan_lock);
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_leave(_neap_tl_heap);
    NEAP_RUN_HOOKS(fork_parent, true);
}

static void neap_fork_child(void) {
    /* the forking thread took the core's locks in prepare, so the child's
     * one thread owns them: unlocked, not initialised anew (a sanitizer
     * would see the old owner's lock taken twice) */
    _neap_mesh_fork_after(true);
    _neap_mesh_unlock();
    pthread_mutex_unlock(&_neap_huge_lock);   /* the huge cache is the parent's, intact */
    _neap_fork_child(_neap_tl_heap);
    if (_neap_tl_heap != &_neap_heap_empty) _neap_heap_leave(_neap_tl_heap);
    NEAP_RUN_HOOKS(fork_child, true);
}

static void neap_hooks_init(void) {
    neap_key_ok = pthread_key_create(&neap_thread_key, neap_thread_done) == 0;
    pthread_atfork(neap_fork_prepare, neap_fork_parent, neap_fork_child);
}

void _neap_thread_register(neap_heap_t *h) {
    pthread_once(&neap_hooks_once, neap_hooks_init);
    if (neap_key_ok) pthread_setspecific(neap_thread_key, h);
}

/* The library's assembly (neap.c, its constructor and destructor) must be
 * linked wherever the core is, also out of a static archive, where an object
 * file comes along only when something refers to it: this reference, never
 * read, is the one thing the core knows of neap.c. */
extern NEAP_INTERNAL const char _neap_assembly;
NEAP_INTERNAL const char *volatile _neap_assembly_ref = &_neap_assembly;

void _neap_core_start(void) {
    _neap_process_init();
    _neap_options_init();
    if (neap_opt(NEAP_OPTION_DEBUG_MALLOC) && !neap_debug_mode())
        _neap_warning("the debug mode is off",
                      "NEAP_DEBUG_MALLOC=1 was read after the first allocations were made without it");
    /* the fork handlers must be in place before a background thread runs */
    pthread_once(&neap_hooks_once, neap_hooks_init);
}

/* tlock.h -- the tracing layer's spin lock (trace.c, pyframes.c).
 *
 *   tlock_t { held }   0 free, 1 taken
 *
 * Uncontended, one atomic exchange to take and a store to release (a
 * pthread mutex costs several times that on every traced allocation);
 * contended, it spins a little, then yields the processor.  Not
 * recursive; the holder never allocates through a traced path.
 */
#ifndef NEAP_TLOCK_H
#define NEAP_TLOCK_H

#include <stdatomic.h>

#include "os/os.h"

#if defined(__x86_64__) || defined(__i386__)
#define neap_cpu_relax() __builtin_ia32_pause()
#else
#define neap_cpu_relax() ((void)0)
#endif

typedef struct tlock {
    _Atomic int held;
} tlock_t;

#define TLOCK_INIT {0}

static inline void tlock_lock(tlock_t *l) {
    while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
        for (int spin = 0; atomic_load_explicit(&l->held, memory_order_relaxed); spin++) {
            if (spin < 64)
                neap_cpu_relax();
            else
                _neap_os_yield();
        }
    }
}

static inline void tlock_unlock(tlock_t *l) {
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif /* NEAP_TLOCK_H */

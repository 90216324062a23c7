/* os.c -- every system call neap makes, behind one small contract.
 *
 *   _neap_os_map(size)            anonymous, private, read-write, zeroed;
 *                                 NULL when the kernel refuses (never aborts)
 *   _neap_os_map_aligned(s, al)   the same at an address that is a multiple
 *                                 of al (over-map, then trim both ends)
 *   _neap_os_unmap(p, size)       give the range back entirely
 *   _neap_os_is_mapped(p)         whether anything is mapped at p's page
 *                                 (mincore: reads nothing there)
 *   _neap_os_purge_add(b, p, size)  keep the ranges, drop their pages: RSS
 *   _neap_os_purge_flush(b)       falls at once and the pages read as zero
 *                                 again; a batch of ranges on the caller's
 *                                 stack, adjacent ones joined, given back
 *                                 by one process_madvise(MADV_DONTNEED) per
 *                                 batch (below), or madvise per range
 *   _neap_os_remap(p, old, new, dest)  resize a mapping, contents kept
 *                                 (mremap): in place, or moved to dest
 *                                 (the pages move, nothing is copied)
 *   _neap_os_clock_ms()           coarse monotonic clock (vDSO, no syscall)
 *   _neap_os_clock_ns()           fine monotonic clock (collection durations)
 *   _neap_os_write / read_file    raw write(2)/read(2): diagnostics and /proc
 *   _neap_os_mapping_of(a, ...)   the readable mapping that holds address a,
 *                                 from /proc/self/maps (a thread's stack when
 *                                 the C library cannot say: trace.c)
 *   _neap_os_create / close       a file written whole by neap (the trace stream)
 *                                 never allocate
 *   _neap_os_stats_dir(buf)       the per-user statistics directory
 *                                 /tmp/neap-<uid>, made 0700 and checked to
 *                                 be the user's own (publish.c)
 *   _neap_os_replace_file(...)    write a file whole under a temporary name,
 *                                 then rename it over the old one: readers
 *                                 see the old record or the new, never half
 *   _neap_os_fork / wait / exit   a child process and its end (isolate.c)
 *   _neap_os_map_shared(size)     anonymous memory shared with children
 *   _neap_os_barrier_register()   membarrier(2), private expedited: 0 when
 *   _neap_os_barrier()            the process may use it; then a full memory
 *                                 barrier in every running thread of the
 *                                 process (the trace stream's flusher)
 *   _neap_os_live_threads()       how many of the process's threads still run
 *                                 (a main thread that called pthread_exit is
 *                                 a zombie the kernel counts: not counted);
 *                                 -1 when /proc cannot tell
 *   _neap_os_thread_name(s)       names the calling thread (ps -L, top -H)
 *   _neap_os_append_file          one line added to a note file (O_APPEND)
 *   _neap_os_symbol(name)         dlsym in the whole process (may allocate:
 *                                 only where neap is whole, e.g. at exit)
 *   _neap_os_symbol_bounds(name)  dladdr1: where a function's code starts
 *                                 and ends (may allocate, as dlsym)
 *   _neap_os_addr_name(a)         dladdr: the function and module of a code
 *                                 address, for the debug mode's messages
 *   _neap_os_fail_maps(n, every)  tests only: the nth mapping call from now
 *                                 on fails (ENOMEM), or every one from it
 *   _neap_os_random(buf, n)       n bytes from the kernel's random source
 *                                 (getrandom, never blocks): false if it
 *                                 could not fill them
 *
 * Nothing here calls malloc (but the dynamic linker behind _neap_os_symbol
 * may), and nothing above this file includes <sys/mman.h> or <unistd.h>.
 */
#include "os/os.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------------------
 * Injected mapping failures (tests only, os.h).  Armed, every call of
 * _neap_os_map, _neap_os_map_aligned, _neap_os_map_shared and _neap_os_remap
 * is counted (one each, whatever system calls it makes inside), the chosen
 * one fails as the kernel refuses a mapping, and with `every` each one after
 * it too; the bytes mapped and unmapped through this file are summed, so a
 * test can hold the library's own accounts against them.  Unarmed, a mapping
 * call costs one relaxed load and a branch always taken the same way.
 * ------------------------------------------------------------------------- */
static _Atomic int neap_fail_armed;
static _Atomic int neap_fail_every;
static _Atomic uint64_t neap_fail_at;       /* the failing call, 1 the first; 0 none */
static _Atomic uint64_t neap_fail_calls;    /* mapping calls since armed */
static _Atomic uint64_t neap_fail_failed;   /* of them made to fail */
static _Atomic int64_t neap_fail_net;       /* bytes mapped less bytes unmapped since armed */

void _neap_os_fail_maps(uint64_t n, bool every) {
    atomic_store(&neap_fail_armed, 0);
    atomic_store(&neap_fail_calls, 0);
    atomic_store(&neap_fail_failed, 0);
    atomic_store(&neap_fail_net, 0);
    atomic_store(&neap_fail_at, n);
    atomic_store(&neap_fail_every, every);
    atomic_store(&neap_fail_armed, 1);
}

void _neap_os_fail_maps_stop(void) {
    atomic_store(&neap_fail_at, 0);
    atomic_store(&neap_fail_every, 0);
}

void _neap_os_fail_maps_off(void) {
    atomic_store(&neap_fail_armed, 0);
}

void _neap_os_fail_maps_count(uint64_t *calls, uint64_t *failed, int64_t *net_bytes) {
    if (calls) *calls = atomic_load(&neap_fail_calls);
    if (failed) *failed = atomic_load(&neap_fail_failed);
    if (net_bytes) *net_bytes = atomic_load(&neap_fail_net);
}

/* Counts a mapping call; true: it is to fail. */
static neap_noinline bool neap_fail_this(void) {
    uint64_t k = atomic_fetch_add(&neap_fail_calls, 1) + 1;
    uint64_t at = atomic_load_explicit(&neap_fail_at, memory_order_relaxed);
    if (at == 0 || k < at || (k > at && !atomic_load_explicit(&neap_fail_every, memory_order_relaxed)))
        return false;
    atomic_fetch_add(&neap_fail_failed, 1);
    return true;
}

neap_inline bool neap_fail_inject(void) {
    return neap_unlikely(atomic_load_explicit(&neap_fail_armed, memory_order_relaxed)) && neap_fail_this();
}

/* Bytes mapped (+) or unmapped (-) through this file, while armed. */
neap_inline void neap_fail_account(int64_t bytes) {
    if (neap_unlikely(atomic_load_explicit(&neap_fail_armed, memory_order_relaxed)))
        atomic_fetch_add(&neap_fail_net, bytes);
}

static void *neap_os_mmap(size_t size) {
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    errno = saved;
    return p;
}

static void neap_os_munmap(void *p, size_t size) {
    int saved = errno;
    if (munmap(p, size) != 0) _neap_warning("munmap failed", NULL);
    errno = saved;
}

void *_neap_os_map(size_t size) {
    if (neap_fail_inject()) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = neap_os_mmap(size);
    if (p != NULL) neap_fail_account((int64_t)size);
    return p;
}

void *_neap_os_map_aligned(size_t size, size_t align) {
    if (size + align < size) return NULL;
    if (neap_fail_inject()) {
        errno = ENOMEM;
        return NULL;
    }
    /* First try: the kernel often places mappings next to the last one, so a
     * plain mapping is already aligned when the previous one was. */
    void *p = neap_os_mmap(size);
    if (p == NULL) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) {
        neap_fail_account((int64_t)size);
        return p;
    }
    neap_os_munmap(p, size);
    size_t over = size + align - NEAP_PAGE_SIZE;
    char *raw = neap_os_mmap(over);
    if (raw == NULL) return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t lead = start - (uintptr_t)raw;
    size_t tail = over - lead - size;
    if (lead) neap_os_munmap(raw, lead);
    if (tail) neap_os_munmap((char *)start + size, tail);
    neap_fail_account((int64_t)size);
    return (void *)start;
}

void _neap_os_unmap(void *p, size_t size) {
    neap_os_munmap(p, size);
    neap_fail_account(-(int64_t)size);
}

bool _neap_os_is_mapped(const void *p) {
    int saved = errno;
    unsigned char vec;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(NEAP_PAGE_SIZE - 1);
    /* ENOMEM: no mapping there; any protection counts as mapped */
    bool mapped = mincore((void *)page, 1, &vec) == 0 || errno != ENOMEM;
    errno = saved;
    return mapped;
}

/* ---------------------------------------------------------------------------
 * Batched purge.  process_madvise(pidfd, iov, n, MADV_DONTNEED, 0) gives back
 * up to 1024 ranges in one system call; the kernel takes MADV_DONTNEED from a
 * process for itself since Linux 6.13 (older ones, and any call for another
 * process, refuse it with EINVAL).  The process names itself by the
 * PIDFD_SELF sentinel where the kernel knows it (6.14 on), else by a pidfd
 * of its own (pidfd_open), opened once and again in a forked child (whose
 * inherited one names the parent):
 *
 *   how = SELF  --EBADF (sentinel unknown)-->  PIDFD  --EINVAL, ENOSYS-->  PLAIN
 *     |                                                                 ^
 *     +------------- EINVAL, ENOSYS (advice refused, no call) ----------+
 *
 *   PLAIN: madvise per range, for good (one failed try per process).  A
 *   pidfd the program closed behind neap's back fails with EBADF and is
 *   opened again (one that cannot be opened, out of descriptors say, sends
 *   that batch range by range); one whose number now names another process's pidfd gets
 *   EINVAL (DONTNEED is refused for others), so it can never purge the
 *   wrong process: neap falls back to PLAIN.  Ranges the call did not reach
 *   (it returns the bytes it advised) are given back one by one.
 * ------------------------------------------------------------------------- */
#define NEAP_PIDFD_SELF (-10000)   /* linux/pidfd.h: PIDFD_SELF_THREAD */
enum { NEAP_PM_SELF, NEAP_PM_PIDFD, NEAP_PM_PLAIN };
static _Atomic int neap_pm_how;
/* NEAP_PM_PIDFD: the pidfd and the process it names, in one word so that
 * they are read together: pid << 32 | (fd + 1); 0 when none is open */
static _Atomic uint64_t neap_pm_self;

_Static_assert(sizeof(neap_purge_range_t) == sizeof(struct iovec) &&
                   offsetof(neap_purge_range_t, base) == offsetof(struct iovec, iov_base) &&
                   offsetof(neap_purge_range_t, len) == offsetof(struct iovec, iov_len),
               "a purge range is laid out as struct iovec");
_Static_assert(NEAP_PURGE_BATCH <= 1024, "process_madvise takes at most UIO_MAXIOV ranges");

/* This process's pidfd, opened (again, after a fork: the inherited one
 * names the parent) if need be; -1 if the kernel has no pidfd_open.  An fd
 * replaced is never closed: by then the program may own that number. */
static int neap_pm_pidfd(void) {
#ifdef SYS_pidfd_open
    uint64_t pid = (uint64_t)(uint32_t)getpid();
    uint64_t cur = atomic_load(&neap_pm_self);
    if (cur != 0 && cur >> 32 == pid) return (int)(uint32_t)cur - 1;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);   /* close-on-exec */
    if (fd < 0) return -1;
    if (!atomic_compare_exchange_strong(&neap_pm_self, &cur, pid << 32 | (uint64_t)(fd + 1))) {
        close(fd);   /* another thread was quicker: take its pidfd */
        return cur >> 32 == pid ? (int)(uint32_t)cur - 1 : -1;
    }
    return fd;
#else
    return -1;
#endif
}

/* Forgets the pidfd fd (the call said EBADF: the program closed it). */
static void neap_pm_forget(int fd) {
    uint64_t cur = atomic_load(&neap_pm_self);
    if (cur != 0 && (int)(uint32_t)cur - 1 == fd) atomic_compare_exchange_strong(&neap_pm_self, &cur, 0);
}

/* One process_madvise over the batch: the bytes it gave back, or -1 when
 * the batch must go range by range (neap_pm_how then says whether for good). */
static long neap_pm_call(neap_purge_batch_t *b) {
#ifdef SYS_process_madvise
    for (int tries = 0; tries < 3; tries++) {
        int how = atomic_load_explicit(&neap_pm_how, memory_order_relaxed);
        int fd = NEAP_PIDFD_SELF;
        if (how == NEAP_PM_PLAIN) return -1;
        if (how == NEAP_PM_PIDFD && (fd = neap_pm_pidfd()) < 0) {
            if (errno == ENOSYS) atomic_store(&neap_pm_how, NEAP_PM_PLAIN);
            return -1;
        }
        b->calls++;
        long r = syscall(SYS_process_madvise, fd, (const struct iovec *)b->range, b->n, MADV_DONTNEED, 0u);
        if (r >= 0) return r;
        if (errno == EBADF && how == NEAP_PM_SELF) {
            atomic_store(&neap_pm_how, NEAP_PM_PIDFD);
            continue;
        }
        if (errno == EBADF) {   /* the program closed the pidfd: open it again */
            neap_pm_forget(fd);
            continue;
        }
        if (errno == EINVAL || errno == ENOSYS || errno == EPERM) atomic_store(&neap_pm_how, NEAP_PM_PLAIN);
        return -1;
    }
    return -1;
#else
    (void)b;
    atomic_store(&neap_pm_how, NEAP_PM_PLAIN);
    return -1;
#endif
}

/* A file batch's pages freed in the file, once unmapped: one punch per
 * range, which finds no page table entry left to clear (MADV_REMOVE would
 * clear them range by range, a TLB flush each, where one DONTNEED call
 * clears a whole batch with one); where the punch fails (the program closed
 * the file), MADV_REMOVE frees the range through the mapping. */
static void neap_purge_punch(neap_purge_batch_t *b) {
    for (size_t i = 0; i < b->n; i++) {
        if (b->off[i] == NEAP_PURGE_NOFILE) continue;   /* anonymous memory: given back already */
        b->calls++;
        if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)b->off[i], (off_t)b->range[i].len) == 0)
            continue;
        /* or a range a fork turned private since it was added: its copies
         * are dropped already, the file's pages are the child's */
        if (madvise(b->range[i].base, b->range[i].len, MADV_REMOVE) != 0 && errno != EINVAL)
            _neap_warning("madvise failed", NULL);
    }
}

void _neap_os_purge_flush(neap_purge_batch_t *b) {
    if (b->n == 0) return;
    int saved = errno;
    size_t i = 0, done = 0;
    long r = b->plain ? -1 : neap_pm_call(b);
    if (r > 0) {   /* skip what the call gave back */
        size_t left = (size_t)r;
        while (i < b->n && left >= b->range[i].len) left -= b->range[i++].len;
        done = left;   /* bytes of range i given back (page-aligned in practice) */
    }
    for (; i < b->n; i++, done = 0) {
        b->calls++;
        if (madvise((char *)b->range[i].base + done, b->range[i].len - done, MADV_DONTNEED) != 0)
            _neap_warning("madvise failed", NULL);
    }
    if (b->remove) neap_purge_punch(b);
    b->n = 0;
    b->bytes = 0;
    errno = saved;
}

void _neap_os_purge_add_file(neap_purge_batch_t *b, void *p, size_t size, uint64_t off) {
    if (b->n > 0) {
        /* joined where the addresses follow on, and the offsets too (or
         * neither range is of the file) */
        neap_purge_range_t *last = &b->range[b->n - 1];
        uint64_t loff = b->off[b->n - 1];
        bool follows = off == NEAP_PURGE_NOFILE ? loff == NEAP_PURGE_NOFILE
                                                : loff != NEAP_PURGE_NOFILE && loff + last->len == off;
        if ((char *)last->base + last->len == (char *)p && follows && last->len + size <= ((size_t)1 << 30)) {
            last->len += size;
            b->bytes += size;
            return;
        }
    }
    /* at most 1 GiB a batch: a call's bytes fit its return value everywhere */
    if (b->n == NEAP_PURGE_BATCH || b->bytes + size > ((size_t)1 << 30)) _neap_os_purge_flush(b);
    b->range[b->n].base = p;
    b->range[b->n].len = size;
    b->off[b->n] = off;
    b->n++;
    b->bytes += size;
}

void _neap_os_purge_add(neap_purge_batch_t *b, void *p, size_t size) {
    _neap_os_purge_add_file(b, p, size, NEAP_PURGE_NOFILE);
}

/* dest NULL: grow or shrink in place (growing fails when the pages after the
 * mapping are taken); otherwise move to dest, which the caller has reserved
 * with new_size bytes of its own mapping (MREMAP_FIXED replaces it).  The
 * pages themselves move, so nothing is copied.  NULL on failure, with the
 * old mapping untouched. */
void *_neap_os_remap(void *p, size_t old_size, size_t new_size, void *dest) {
    if (neap_fail_inject()) return NULL;
    int saved = errno;
    void *q = dest ? mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest)
                   : mremap(p, old_size, new_size, 0);
    errno = saved;
    if (q == MAP_FAILED) return NULL;
    /* moved onto dest: dest's own new_size bytes are gone with it */
    neap_fail_account((int64_t)new_size - (int64_t)old_size - (dest ? (int64_t)new_size : 0));
    return q;
}

uint64_t _neap_os_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t _neap_os_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int _neap_os_create(const char *path) {
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    errno = saved;
    return fd;
}

void _neap_os_close(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
}

void _neap_os_write(int fd, const char *s, size_t n) {
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
}

/* getenv without the C library: works before the library is initialised
 * and never allocates. */
const char *_neap_os_getenv(const char *name) {
    if (environ == NULL) return NULL;
    size_t n = strlen(name);
    for (char **e = environ; *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

bool _neap_os_env_ready(void) {
    return environ != NULL;
}

int _neap_os_read_file(const char *path, char *buf, size_t cap) {
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    errno = saved;
    return (int)len;
}

/* /proc/self/maps lines are "start-end perms offset dev inode path", in
 * address order, the numbers in hex.  Only the first three fields count,
 * so each line is parsed as it streams through a small buffer, whatever
 * its length: no allocation, no line limit. */
int _neap_os_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi) {
    int saved = errno;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    char buf[512];
    uintptr_t v[2] = {0, 0};    /* this line's start and end */
    int field = 0;              /* 0 start, 1 end, 2 perms, 3 the rest */
    int found = -1, done = 0;
    while (!done) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r && !done; i++) {
            char c = buf[i];
            if (c == '\n') {
                field = 0;
                v[0] = v[1] = 0;
            } else if (field < 2) {
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d >= 0)
                    v[field] = v[field] << 4 | (uintptr_t)d;
                else
                    field++;    /* the '-' or the ' ' after the number */
            } else if (field == 2) {
                field = 3;
                if (v[0] > addr) {
                    done = 1;   /* past it: addr is in no mapping */
                } else if (addr < v[1]) {
                    done = 1;
                    if (c == 'r') {
                        *lo = v[0];
                        *hi = v[1];
                        found = 0;
                    }
                }
            }
        }
    }
    close(fd);
    errno = saved;
    return found;
}

void _neap_os_abort(void) {
    abort();
}

void _neap_os_yield(void) {
    sched_yield();
}

/* membarrier(2) commands (linux/membarrier.h), by value: the header is not
 * on every system that has the call. */
#define NEAP_MEMBARRIER_PRIVATE_EXPEDITED (1 << 3)
#define NEAP_MEMBARRIER_REGISTER_PRIVATE_EXPEDITED (1 << 4)

int _neap_os_barrier_register(void) {
#ifdef SYS_membarrier
    return syscall(SYS_membarrier, NEAP_MEMBARRIER_REGISTER_PRIVATE_EXPEDITED, 0) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

void _neap_os_barrier(void) {
#ifdef SYS_membarrier
    if (syscall(SYS_membarrier, NEAP_MEMBARRIER_PRIVATE_EXPEDITED, 0) == 0) return;
#endif
    _neap_os_abort();   /* registered, it cannot fail */
}

uint64_t _neap_os_realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void _neap_os_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int _neap_os_live_threads(void) {
    /* /proc/self/stat: "pid (comm) S ppid ... num_threads(20th) ..."; comm
     * may hold spaces and parentheses, so fields count from the last ')' */
    char buf[1024];
    if (_neap_os_read_file("/proc/self/stat", buf, sizeof buf) <= 0) return -1;
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') return -1;
    char state = p[2];
    p += 2;
    for (int field = 3; field < 20; field++) {   /* p is at field `field` */
        p = strchr(p, ' ');
        if (p == NULL) return -1;
        p++;
    }
    long n = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') n = n * 10 + (*p++ - '0');
    /* the leader's own state is the one shown: a zombie leader is a main
     * thread that ended by pthread_exit while the others run on */
    if (state == 'Z' || state == 'X') n--;
    return n < 0 ? -1 : (int)n;
}

void _neap_os_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

long _neap_os_getpid(void) {
    return (long)getpid();
}

int _neap_os_stats_dir(char *buf, size_t cap) {
    int saved = errno;
    neap_buf_t b = {buf, 0, cap};
    buf[0] = 0;
    _neap_buf_str(&b, "/tmp/neap-");
    _neap_buf_u(&b, (unsigned long long)getuid(), 0);
    if (b.len + 1 >= cap) return -1;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
        errno = saved;
        return -1;
    }
    /* somebody else's directory, or a symbolic link, is never written to */
    struct stat st;
    int ok = lstat(buf, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
             (st.st_mode & 077) == 0;
    errno = saved;
    return ok ? 0 : -1;
}

int _neap_os_replace_file(const char *path, const char *tmp, const char *data, size_t len) {
    int saved = errno;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = close(fd) == 0 && done == len && rename(tmp, path) == 0;
    if (!ok) unlink(tmp);
    errno = saved;
    return ok ? 0 : -1;
}

void _neap_os_unlink(const char *path) {
    int saved = errno;
    unlink(path);
    errno = saved;
}

int _neap_os_append_file(const char *path, const char *data, size_t len) {
    int saved = errno;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    ssize_t w;
    do
        w = write(fd, data, len);   /* O_APPEND: one write, one piece, whoever else appends */
    while (w < 0 && errno == EINTR);
    int ok = close(fd) == 0 && w == (ssize_t)len;
    errno = saved;
    return ok ? 0 : -1;
}

void *_neap_os_symbol(const char *name) {
    int saved = errno;
    void *p = dlsym(RTLD_DEFAULT, name);
    if (p == NULL) {
        /* the C library keeps a failed lookup's message until dlerror has
         * returned it and is called again: leave none behind */
        (void)dlerror();
        (void)dlerror();
    }
    errno = saved;
    return p;
}

bool _neap_os_symbol_bounds(const char *name, uintptr_t *lo, uintptr_t *hi) {
    void *p = _neap_os_symbol(name);
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (p == NULL || dladdr1(p, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL ||
        sym->st_size == 0)
        return false;
    *lo = (uintptr_t)p;
    *hi = (uintptr_t)p + sym->st_size;
    return true;
}

bool _neap_os_addr_name(uintptr_t addr, char *buf, size_t cap) {
    Dl_info info;
    if (cap == 0 || dladdr((void *)addr, &info) == 0 || info.dli_fname == NULL) return false;
    neap_buf_t b = {buf, 0, cap};
    if (info.dli_sname != NULL && info.dli_saddr != NULL) {
        _neap_buf_str(&b, info.dli_sname);
        _neap_buf_str(&b, "+");
        _neap_buf_hex(&b, addr - (uintptr_t)info.dli_saddr);
    } else {
        _neap_buf_hex(&b, addr - (uintptr_t)info.dli_fbase);
    }
    _neap_buf_str(&b, " in ");
    _neap_buf_str(&b, info.dli_fname);
    return true;
}

void *_neap_os_map_shared(size_t size) {
    if (neap_fail_inject()) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    neap_fail_account((int64_t)size);
    return p;
}

long _neap_os_fork(void) {
    return (long)fork();
}

int _neap_os_wait(long pid, int *status) {
    for (;;) {
        pid_t r = waitpid((pid_t)pid, status, 0);
        if (r == (pid_t)pid) return 0;
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

bool _neap_os_exited(int status, int *code) {
    if (WIFEXITED(status)) {
        *code = WEXITSTATUS(status);
        return true;
    }
    *code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return false;
}

void _neap_os_exit(int code) {
    _exit(code);
}

bool _neap_os_random(void *buf, size_t n) {
    int saved = errno;
    long r = syscall(SYS_getrandom, buf, n, 1 /* GRND_NONBLOCK */);
    errno = saved;
    return r == (long)n;
}

/* ---------------------------------------------------------------------------
 * Meshing's memory file, its mappings and its fault handler (os.h).
 * ------------------------------------------------------------------------- */
int _neap_os_memfile(uint64_t size) {
    int saved = errno;
    int fd = -1;
#ifdef SYS_memfd_create
    fd = (int)syscall(SYS_memfd_create, "neap", 1u /* MFD_CLOEXEC */);
#endif
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    /* high, out of the way of programs that expect the lowest numbers */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        errno = saved;
        return -1;
    }
    errno = saved;
    return fd;
}

bool _neap_os_fd_ok(int fd) {
    int saved = errno;
    bool ok = fd >= 0 && fcntl(fd, F_GETFD) >= 0;
    errno = saved;
    return ok;
}

void *_neap_os_map_file_aligned(int fd, uint64_t off, size_t size, size_t align) {
    char *p = _neap_os_map_aligned(size, align);
    if (p == NULL) return NULL;
    if (!_neap_os_map_file_fixed(p, size, fd, off, false)) {
        _neap_os_unmap(p, size);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* The system call itself, not the C library's mmap: a race detector that
 * intercepts mmap takes a mapping put in place of another for a write of
 * every byte of it, where meshing keeps the contents the program's threads
 * wrote (and orders them with the write protection) */
static void *neap_os_mmap_raw(void *p, size_t size, int prot, int flags, int fd, uint64_t off) {
    long r = syscall(SYS_mmap, p, size, prot, flags, fd, (long)off);
    return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

bool _neap_os_map_file_fixed(void *p, size_t size, int fd, uint64_t off, bool priv) {
    int saved = errno;
    void *r = neap_os_mmap_raw(p, size, PROT_READ | PROT_WRITE, MAP_FIXED | (priv ? MAP_PRIVATE : MAP_SHARED), fd, off);
    errno = saved;
    return r == p;
}

bool _neap_os_map_file_page(void *p, int fd, uint64_t off) {
    int saved = errno;
    /* populated: the page's entry made now, in this call, rather than by a
     * fault at the program's next touch (a trap costs more than the work) */
    void *r = neap_os_mmap_raw(p, 4096, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED | MAP_POPULATE, fd, off);
    errno = saved;
    return r == p;
}

bool _neap_os_map_anon_fixed(void *p, size_t size) {
    int saved = errno;
    void *r = neap_os_mmap_raw(p, size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                               -1, 0);
    errno = saved;
    return r == p;
}

bool _neap_os_protect(void *p, size_t size, bool writable) {
    int saved = errno;
    bool ok = mprotect(p, size, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0;
    errno = saved;
    return ok;
}

bool _neap_os_punch(int fd, uint64_t off, size_t len) {
    int saved = errno;
    bool ok = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0;
    errno = saved;
    return ok;
}

void _neap_os_drop(void *p, size_t size) {
    int saved = errno;
    if (madvise(p, size, MADV_DONTNEED) != 0) _neap_warning("madvise failed", NULL);
    errno = saved;
}

/* The handler: meshing's own faults (a write into a page being meshed:
 * SEGV_ACCERR) wait and retry; every other one goes to the action that was
 * installed before neap's, as if neap's were not there.  A default or
 * ignored action is put back and the instruction retried, so that the
 * program dies of the fault at the place it happened. */
static bool (*neap_fault_fn)(uintptr_t addr, bool access);
static struct sigaction neap_fault_old;
static _Atomic int neap_fault_state;   /* 0 none, 1 installing, 2 installed */

static void neap_fault_handler(int sig, siginfo_t *si, void *uc) {
    int saved = errno;
    bool access = si->si_code == SEGV_ACCERR;
    /* acquire: the function and the old action were set before */
    if (atomic_load_explicit(&neap_fault_state, memory_order_acquire) != 0 &&
        neap_fault_fn((uintptr_t)si->si_addr, access)) {
        errno = saved;
        return;
    }
    errno = saved;
    if (neap_fault_old.sa_flags & SA_SIGINFO) {
        if (neap_fault_old.sa_sigaction) neap_fault_old.sa_sigaction(sig, si, uc);
        return;
    }
    if (neap_fault_old.sa_handler == SIG_DFL || neap_fault_old.sa_handler == SIG_IGN) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGSEGV, &dfl, NULL);
        return;   /* the instruction faults again, now with the default action */
    }
    neap_fault_old.sa_handler(sig);
}

bool _neap_os_fault_install(bool (*handler)(uintptr_t addr, bool access)) {
    int zero = 0;
    if (!atomic_compare_exchange_strong(&neap_fault_state, &zero, 1)) {
        while (atomic_load(&neap_fault_state) == 1) sched_yield();
        return _neap_os_fault_ok();
    }
    int saved = errno;
    /* the program's action read first, then ours put in its place: the
     * handler finds both set (a change by the program in between is lost,
     * as with any handler installed on top of another) */
    neap_fault_fn = handler;
    bool ok = sigaction(SIGSEGV, NULL, &neap_fault_old) == 0;
    atomic_store_explicit(&neap_fault_state, ok ? 2 : 0, memory_order_release);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = neap_fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (ok && sigaction(SIGSEGV, &sa, NULL) != 0) {
        ok = false;
        atomic_store(&neap_fault_state, 0);
    }
    errno = saved;
    return ok;
}

bool _neap_os_fault_ok(void) {
    if (atomic_load(&neap_fault_state) != 2) return false;
    struct sigaction cur;
    int saved = errno;
    bool ok = sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
              cur.sa_sigaction == neap_fault_handler;
    errno = saved;
    return ok;
}

long _neap_os_max_map_count(void) {
    char buf[32];
    int n = _neap_os_read_file("/proc/sys/vm/max_map_count", buf, sizeof buf - 1);
    if (n <= 0) return 65530;
    buf[n] = 0;
    long v = 0;
    for (int i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v > 0 ? v : 65530;
}

long _neap_os_map_count(void) {
    int saved = errno;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    char buf[4096];
    long lines = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
    }
    close(fd);
    errno = saved;
    return lines;
}

uint64_t _neap_os_thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* os.h -- the bottom layer: what every other layer of neap may use.
 *
 *   compiler helpers      likely/unlikely, inline, internal visibility
 *   assertions            in the levels NEAP_DEBUG sets (never allocate)
 *   os.c                  every system call neap makes, behind one contract
 *   diag.c                formatting into a caller's buffer, warnings and
 *                         fatal errors written straight to fd 2
 *
 * Nothing here allocates, and nothing here knows of arenas, pools, traces or
 * objects: this folder includes only the public header and the C library.
 */
#ifndef NEAP_OS_H
#define NEAP_OS_H

#include "neap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------
 * Compiler helpers
 * ------------------------------------------------------------------------- */
#define neap_likely(x) __builtin_expect(!!(x), 1)
#define neap_unlikely(x) __builtin_expect(!!(x), 0)
#define neap_noinline __attribute__((noinline))
#define neap_inline static inline __attribute__((always_inline))
#define NEAP_INTERNAL __attribute__((visibility("hidden")))
/* Fields the owner writes and other threads read while validating a remote
 * free (pool state and bumped): relaxed atomics, plain moves on x86-64. */
#define neap_load_relaxed(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define neap_store_relaxed(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

#ifndef NEAP_DEBUG
#define NEAP_DEBUG 0
#endif
/* Assertions in levels: 1 cheap, 2 internal, 3 expensive.  Never allocate. */
#define neap_assert_level(lvl, expr)                                         \
    do {                                                                     \
        if (NEAP_DEBUG >= (lvl) && neap_unlikely(!(expr)))                   \
            _neap_assert_fail(#expr, __FILE__, __LINE__);                    \
    } while (0)
#define neap_assert(expr) neap_assert_level(1, expr)
#define neap_assert_internal(expr) neap_assert_level(2, expr)

/* ---------------------------------------------------------------------------
 * os.c -- every system call neap makes (its contract is drawn there)
 * ------------------------------------------------------------------------- */
NEAP_INTERNAL void *_neap_os_map(size_t size);            /* NULL on failure */
NEAP_INTERNAL void *_neap_os_map_aligned(size_t size, size_t align);
NEAP_INTERNAL void _neap_os_unmap(void *p, size_t size);
NEAP_INTERNAL bool _neap_os_is_mapped(const void *p);     /* a mapping holds p's page */
/* Purging: a batch of ranges whose pages are dropped (contents become zero),
 * given back together: one process_madvise per
 * batch where the kernel allows it, else madvise per range (os.c).  Lives on
 * the purging thread's stack; range has struct iovec's layout. */
#define NEAP_PURGE_BATCH 256
#define NEAP_PURGE_NOFILE UINT64_MAX   /* a range of anonymous memory */
typedef struct neap_purge_range_s {
    void *base;
    size_t len;
} neap_purge_range_t;
typedef struct neap_purge_batch_s {
    size_t n;                  /* ranges waiting */
    size_t bytes;              /* their bytes */
    size_t calls;              /* system calls made so far (statistics, tests) */
    bool plain;                /* madvise per range, never process_madvise */
    bool remove;               /* the ranges are shared mappings of the memory file
                                  (meshing): after the DONTNEED, which only unmaps
                                  them, the file's pages are punched (off[]) */
    int fd;                    /* with remove: the memory file */
    neap_purge_range_t range[NEAP_PURGE_BATCH];
    uint64_t off[NEAP_PURGE_BATCH];   /* each range's offset in fd, or NEAP_PURGE_NOFILE */
} neap_purge_batch_t;
/* Adds [p, p+size) (page-aligned): joined to the last range if it starts
 * where that one ends; the batch is flushed first when it is full.  _file:
 * a range of a shared mapping of the batch's file at off (its pages are
 * freed in the file too), joined only where the offsets follow on too. */
NEAP_INTERNAL void _neap_os_purge_add(neap_purge_batch_t *b, void *p, size_t size);
NEAP_INTERNAL void _neap_os_purge_add_file(neap_purge_batch_t *b, void *p, size_t size, uint64_t off);
NEAP_INTERNAL void _neap_os_purge_flush(neap_purge_batch_t *b);   /* the batch is empty after */
/* mremap: in place (dest NULL) or moved onto the caller's reservation dest */
NEAP_INTERNAL void *_neap_os_remap(void *p, size_t old_size, size_t new_size, void *dest);
NEAP_INTERNAL uint64_t _neap_os_clock_ms(void);           /* coarse monotonic */
NEAP_INTERNAL uint64_t _neap_os_clock_ns(void);           /* fine monotonic */
NEAP_INTERNAL void _neap_os_write(int fd, const char *s, size_t n);
NEAP_INTERNAL int _neap_os_create(const char *path);    /* create/truncate for writing; -1 */
NEAP_INTERNAL void _neap_os_close(int fd);
NEAP_INTERNAL const char *_neap_os_getenv(const char *name);
NEAP_INTERNAL bool _neap_os_env_ready(void);              /* environ is set up */
NEAP_INTERNAL int _neap_os_read_file(const char *path, char *buf, size_t cap);
/* The readable mapping that holds addr: 0 and [*lo, *hi), or -1 (none, or
 * /proc cannot be read).  Never allocates. */
NEAP_INTERNAL int _neap_os_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);
NEAP_INTERNAL __attribute__((noreturn)) void _neap_os_abort(void);
NEAP_INTERNAL void _neap_os_yield(void);
NEAP_INTERNAL int _neap_os_barrier_register(void);        /* 0: _neap_os_barrier may be used */
NEAP_INTERNAL void _neap_os_barrier(void);                /* a full barrier in every thread */
NEAP_INTERNAL uint64_t _neap_os_realtime_ms(void);        /* wall clock, ms since 1970 */
NEAP_INTERNAL void _neap_os_sleep_ms(unsigned ms);
NEAP_INTERNAL long _neap_os_getpid(void);
NEAP_INTERNAL int _neap_os_live_threads(void);             /* -1: unknown */
NEAP_INTERNAL void _neap_os_thread_name(const char *name);
NEAP_INTERNAL int _neap_os_stats_dir(char *buf, size_t cap);  /* 0, or -1: not usable */
NEAP_INTERNAL int _neap_os_replace_file(const char *path, const char *tmp, const char *data, size_t len);
NEAP_INTERNAL void _neap_os_unlink(const char *path);
/* appends len bytes to path (created 0600, never through a symbolic link)
 * in one write; 0, or -1 (errno kept) */
NEAP_INTERNAL int _neap_os_append_file(const char *path, const char *data, size_t len);
/* the address of a symbol of the process (the program or a library it
 * loaded), or NULL */
NEAP_INTERNAL void *_neap_os_symbol(const char *name);
/* the code of a function symbol of the process: [*lo, *hi); false if it
 * is not one (its size unknown) */
NEAP_INTERNAL bool _neap_os_symbol_bounds(const char *name, uintptr_t *lo, uintptr_t *hi);
/* "function+0x1c in /path/module" for a code address, into buf; false if
 * no module holds it */
NEAP_INTERNAL bool _neap_os_addr_name(uintptr_t addr, char *buf, size_t cap);
NEAP_INTERNAL void *_neap_os_map_shared(size_t size);     /* NULL on failure */
NEAP_INTERNAL long _neap_os_fork(void);
NEAP_INTERNAL int _neap_os_wait(long pid, int *status);   /* 0, or -1 (errno) */
NEAP_INTERNAL bool _neap_os_exited(int status, int *code); /* true: exit code; false: signal */
NEAP_INTERNAL __attribute__((noreturn)) void _neap_os_exit(int code);
/* Tests only: out of memory on demand.  From this call on, the calls that
 * map (_neap_os_map, _map_aligned, _map_shared, _remap; one count each) are
 * counted, and the nth of them (1: the next one) fails as the kernel refuses
 * a mapping: NULL and ENOMEM (remap: NULL, errno kept, the mapping as it
 * was); with `every`, each one after it fails too.  n = 0: none fails, the
 * calls are only counted.  _stop: none fails from now on, the counting goes
 * on; _off disarms (the counts stay readable).
 * _count: calls counted, of them failed, and the bytes mapped less the bytes
 * unmapped through this file while armed. */
NEAP_INTERNAL void _neap_os_fail_maps(uint64_t n, bool every);
NEAP_INTERNAL void _neap_os_fail_maps_stop(void);
NEAP_INTERNAL void _neap_os_fail_maps_off(void);
NEAP_INTERNAL void _neap_os_fail_maps_count(uint64_t *calls, uint64_t *failed, int64_t *net_bytes);
NEAP_INTERNAL bool _neap_os_random(void *buf, size_t n);   /* getrandom; false: not filled */

/* The memory file meshing maps arenas from (mesh.c, arena.c): a memfd,
 * close-on-exec, moved to a high descriptor number, sized (sparse) to
 * `size` bytes; -1 on failure.  The calls below take its descriptor. */
NEAP_INTERNAL int _neap_os_memfile(uint64_t size);
NEAP_INTERNAL bool _neap_os_fd_ok(int fd);                 /* fd is still open */
/* size bytes at an address that is a multiple of align, mapped shared
 * from fd at off (a reservation over-mapped and trimmed, then the file
 * mapped over it); NULL on failure */
NEAP_INTERNAL void *_neap_os_map_file_aligned(int fd, uint64_t off, size_t size, size_t align);
/* [p, p+size) mapped from fd at off in place of whatever was there,
 * read-write, shared or private (copy on write); false on failure (the
 * range as it was) */
NEAP_INTERNAL bool _neap_os_map_file_fixed(void *p, size_t size, int fd, uint64_t off, bool priv);
/* One page of fd at off, shared, in place, its page table entry made now
 * (a resident page: no fault at the next touch). */
NEAP_INTERNAL bool _neap_os_map_file_page(void *p, int fd, uint64_t off);
NEAP_INTERNAL bool _neap_os_map_anon_fixed(void *p, size_t size);   /* fresh zero pages in place */
NEAP_INTERNAL bool _neap_os_protect(void *p, size_t size, bool writable);
/* The file's pages [off, off+len) freed (a hole that reads as zero). */
NEAP_INTERNAL bool _neap_os_punch(int fd, uint64_t off, size_t len);
/* [p, p+size) of a private mapping of the file: its copies dropped now
 * (madvise DONTNEED; the range reads the file's pages again). */
NEAP_INTERNAL void _neap_os_drop(void *p, size_t size);
/* The write-fault handler of meshing: handler(addr) is called for every
 * SIGSEGV of the process; true: the fault was meshing's (the handler has
 * waited) and the instruction is retried; false: the action installed
 * before is run (or the default one).  Installed once; _ok tells whether
 * it is still the process's handler. */
NEAP_INTERNAL bool _neap_os_fault_install(bool (*handler)(uintptr_t addr, bool access));
NEAP_INTERNAL bool _neap_os_fault_ok(void);
/* /proc/sys/vm/max_map_count, or 65530 when it cannot be read */
NEAP_INTERNAL long _neap_os_max_map_count(void);
NEAP_INTERNAL long _neap_os_map_count(void);   /* the process's mappings now; -1: unknown */
NEAP_INTERNAL uint64_t _neap_os_thread_cpu_ns(void);       /* CPU time of the calling thread */

/* ---------------------------------------------------------------------------
 * diag.c -- formatting without allocation, and diagnostics on fd 2
 * ------------------------------------------------------------------------- */
typedef struct neap_buf_s {
    char *p;
    size_t len, cap;
} neap_buf_t;
NEAP_INTERNAL void _neap_buf_str(neap_buf_t *b, const char *s);
NEAP_INTERNAL void _neap_buf_u(neap_buf_t *b, unsigned long long v, int width);
NEAP_INTERNAL void _neap_buf_hex(neap_buf_t *b, uintptr_t v);
/* s for a terminal: printable ASCII as it is, every other byte as \xHH,
 * at most max bytes of s (then "...") */
NEAP_INTERNAL void _neap_buf_str_escaped(neap_buf_t *b, const char *s, size_t max);
NEAP_INTERNAL void _neap_buf_size(neap_buf_t *b, unsigned long long bytes, int width);

NEAP_INTERNAL __attribute__((noreturn, cold)) void
_neap_fatal_pointer(const char *func, const void *p, const char *what);
NEAP_INTERNAL __attribute__((noreturn, cold)) void
_neap_assert_fail(const char *expr, const char *file, int line);
NEAP_INTERNAL void _neap_warning(const char *msg, const char *detail);

#endif /* NEAP_OS_H */

/* neap.h -- the public interface of the neap memory manager.
 *
 * neap is a memory allocator that gives memory back to the operating system.
 * Small requests (<= 512 bytes) live in 4 KiB pools, one page each, inside
 * 4 MiB arenas; a pool whose blocks are all free goes back to the OS page by
 * page, so a surviving object pins its own page and never a whole arena.
 *
 * Glossary
 *   block   one allocation of one size class
 *   pool    a run of pages holding blocks of one size class (one page for
 *           small classes); also a run holding one large block
 *   arena   a 4 MiB aligned region from the OS, owned by one thread's heap
 *   heap    the per-thread allocator state; no lock on its fast paths
 *   purge   giving free pages back to the OS (madvise) while keeping the
 *           address range
 *
 * Every function here is thread-safe.  Allocation functions return NULL and
 * set errno to ENOMEM when memory cannot be had, never abort.  Freeing a
 * pointer neap did not hand out prints a message naming it and aborts.
 */
#ifndef NEAP_H
#define NEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define NEAP_EXPORT __attribute__((visibility("default")))
#define NEAP_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define NEAP_EXPORT
#define NEAP_MALLOC_ATTR
#endif

#define NEAP_VERSION_MAJOR 0
#define NEAP_VERSION_MINOR 1
#define NEAP_VERSION "0.1.0"

/* ---------------------------------------------------------------------------
 * Allocation.  Same contracts as the C library functions of the same names.
 * ------------------------------------------------------------------------- */
NEAP_EXPORT NEAP_MALLOC_ATTR void *neap_malloc(size_t size);
/* n*size overflowing gives NULL and ENOMEM; the memory is zeroed. */
NEAP_EXPORT NEAP_MALLOC_ATTR void *neap_calloc(size_t n, size_t size);
/* Contents kept up to the smaller size; realloc(NULL, n) is malloc(n);
 * realloc(p, 0) frees p and returns a fresh minimal block (as jemalloc and
 * mimalloc do), so NULL only ever means failure.  On failure p is left
 * untouched. */
NEAP_EXPORT void *neap_realloc(void *p, size_t size);
/* realloc with an overflow-checked n*size. */
NEAP_EXPORT void *neap_reallocarray(void *p, size_t n, size_t size);
NEAP_EXPORT void neap_free(void *p);
/* alignment must be a power of two; otherwise NULL and EINVAL. */
NEAP_EXPORT NEAP_MALLOC_ATTR void *neap_aligned_alloc(size_t alignment, size_t size);
/* Returns 0, EINVAL (alignment not a power of two multiple of sizeof(void*))
 * or ENOMEM; *out is untouched on error. */
NEAP_EXPORT int neap_posix_memalign(void **out, size_t alignment, size_t size);
/* Bytes usable at p (>= the size asked for); 0 for NULL. */
NEAP_EXPORT size_t neap_usable_size(const void *p);
/* Give every free page back to the OS now, as malloc_trim(0) does: the
 * calling thread's heap, the arenas of exited threads, the cached mappings
 * of freed huge blocks, and a request to every other thread's heap, honoured
 * at its next allocation slow path.  Returns 1 if memory was given back, 0
 * otherwise. */
NEAP_EXPORT int neap_trim(void);
/* 1 if p is a live block handed out by neap, 0 otherwise; never reads memory
 * neap does not own.  Exact for blocks of the calling thread's heap (and for
 * large and huge blocks); for a small block of another thread's heap it says
 * whether p is a block boundary in a pool in use. */
NEAP_EXPORT int neap_owns(const void *p);

/* ---------------------------------------------------------------------------
 * Options.  Each has an environment variable NEAP_<NAME>, read once at
 * start-up; a malformed value gets a warning and the default.  Sizes accept
 * K/KiB, M/MiB, G/GiB suffixes; times are milliseconds.
 * ------------------------------------------------------------------------- */
typedef enum neap_option_e {
    NEAP_OPTION_PURGE_DELAY = 0, /* ms an empty page (or a freed huge block's mapping) stays
                                    before it is given back (a page: at most twice that) */
    NEAP_OPTION_PURGE_MAX,       /* bytes of empty committed pages a heap may hold before an early
                                    purge; also the bound of the cache of freed huge mappings */
    NEAP_OPTION_ARENA_RESERVE,   /* empty arenas a heap keeps mapped (pages purged) before unmapping */
    NEAP_OPTION_SHOW_STATS,      /* print statistics to stderr at exit */
    NEAP_OPTION_VERBOSE,         /* print warnings and notices */
    NEAP_OPTION_STATS_FD,        /* if >= 0, the fd neap_stats_print(NULL) and the exit statistics go to */
    NEAP_OPTION_PUBLISH,         /* ms; if > 0, a background thread publishes statistics for
                                    `neap stats PID` to /tmp/neap-<uid>/<pid> at this interval */
    NEAP_OPTION_RUN_PID,         /* set by `neap run`: the process with this pid leaves its final
                                    statistics record at exit, for the run's summary */
    NEAP_OPTION_BACKGROUND,      /* a background thread gives empty pages back when their delay
                                    is up, even if the program stops calling malloc and free */
    NEAP_OPTION_TRACE_FRAMES,    /* with NEAP_TRACE=FILE: frames kept per allocation stack */
    NEAP_OPTION_TRACE_SAMPLE,    /* with NEAP_TRACE=FILE: mean sampling interval in bytes; 0 traces
                                    every allocation */
    NEAP_OPTION_TRACE_UNWIND,    /* how tracing walks stacks: 1 the DWARF unwinder (any code, much
                                    slower); 2 frame pointers (fast; stacks stop at code built
                                    without them); 0 auto: frame pointers, and when sampling, the
                                    DWARF unwinder where they stop at the first frame */
    NEAP_OPTION_VALIDATE,        /* if > 0, each heap checks its invariants every this many slow
                                    paths (allocations and frees that miss the fast path), and
                                    aborts with a message naming the one broken; a debugging aid */
    NEAP_OPTION_PURGE_BATCH,     /* 1: empty pages go back in batches, one process_madvise system
                                    call for many ranges where the kernel takes it; 0: one madvise
                                    per range */
    NEAP_OPTION_DEBUG_MALLOC,    /* 1: the debug mode: guard bytes around every block checked at
                                    free and realloc (overflows, underflows, double frees), new
                                    blocks filled with 0xCD, freed ones with 0xDD and checked when
                                    reused (writes after free), the heap validated on a share of
                                    allocations; fixed when the process starts (neap_option_set
                                    refuses to change it: EBUSY) */
    NEAP_OPTION_TRACE_PYTHON,    /* in a CPython 3.11 process, the frames of a traced allocation:
                                    1 (the default) the Python frames (file, line, function) of the
                                    code running, when there is any; 2 the same merged in place
                                    with the C frames (which then come from the DWARF unwinder);
                                    0 the C frames only */
    NEAP_OPTION_MESH,            /* 1: meshing: pools of one size class whose live blocks sit at
                                    different offsets come to share one physical page (no object
                                    moves), so that scattered survivors pin fewer pages; arenas are
                                    then mapped from a memory file.  Fixed when the process starts
                                    (neap_option_set refuses to change it: EBUSY); refused in
                                    sanitizer builds and in the debug mode */
    NEAP_OPTION_COUNT
} neap_option_t;

NEAP_EXPORT long neap_option_get(neap_option_t opt);
/* Returns 0, or -1 for an unknown option (errno EINVAL). */
NEAP_EXPORT int neap_option_set(neap_option_t opt, long value);
/* The option's name as in NEAP_<NAME>, or NULL. */
NEAP_EXPORT const char *neap_option_name(neap_option_t opt);

/* ---------------------------------------------------------------------------
 * Statistics, in the spirit of sys._debugmallocstats.  A snapshot: counts of
 * other threads' heaps may be a few operations stale.
 * ------------------------------------------------------------------------- */
#define NEAP_SMALL_MAX 512   /* largest small request */
#define NEAP_CLASS_MAX 56    /* number of size classes (small and medium) */
#define NEAP_PAGE_SIZE 4096
#define NEAP_ARENA_SIZE (4u << 20)

typedef struct neap_class_stats_s {
    size_t block_size;   /* bytes per block of this class */
    size_t pools;        /* pools of this class in use */
    size_t blocks_used;  /* blocks handed out */
    size_t blocks_free;  /* free blocks inside those pools */
    size_t pools_made;   /* pools of this class set up since start: how busy it was */
} neap_class_stats_t;

typedef struct neap_stats_s {
    size_t arenas_allocated;  /* arenas mapped since start */
    size_t arenas_freed;      /* arenas unmapped since start */
    size_t arenas_current;    /* arenas mapped now */
    size_t arenas_highwater;  /* most arenas mapped at once */
    size_t pools_current;     /* pools (small, medium and large runs) in use */
    size_t pages_used;        /* arena pages holding pools */
    size_t pages_dirty;       /* empty pages still committed, waiting for purge */
    size_t bytes_live;        /* bytes in blocks handed out (block sizes) */
    size_t bytes_in_pools;    /* bytes of pages holding pools */
    size_t bytes_huge;        /* bytes mapped for huge blocks */
    size_t bytes_huge_cached; /* bytes of freed huge mappings kept for reuse: not live, given
                                 back once huge blocks are quiet for NEAP_PURGE_DELAY ms (at
                                 most NEAP_PURGE_MAX, or bytes_huge if more) */
    size_t bytes_mapped;      /* bytes of address space mapped now (cached huge mappings too) */
    size_t bytes_purged;      /* bytes given back with (process_)madvise since start */
    size_t bytes_unmapped;    /* bytes given back with munmap since start */
    size_t huge_current;      /* huge blocks live */
    size_t large_current;     /* large blocks live */
    size_t heaps_current;     /* thread heaps alive */
    size_t arenas_orphaned;   /* arenas of exited threads awaiting adoption */
    size_t mesh_pages;        /* with NEAP_MESH: pages of pools that share their physical page
                                 with another pool's (each saves a page of memory) */
    size_t meshes;            /* with NEAP_MESH: meshes made since start */
    size_t unmeshes;          /* with NEAP_MESH: meshed pages given their own page back (their
                                 pool emptied) since start */
    size_t mesh_ns;           /* with NEAP_MESH: nanoseconds spent meshing since start */
    neap_class_stats_t classes[NEAP_CLASS_MAX];
} neap_stats_t;

/* The calling thread's pools are counted as they are; another live
 * thread's as that thread last counted them: a call asks every other
 * thread to count again at its next allocation that leaves the fast path,
 * so their part may lag until they allocate (a thread that has exited is
 * counted as it is).  Never reads memory another thread is writing. */
NEAP_EXPORT void neap_stats_get(neap_stats_t *out);
/* Human-readable statistics; NULL means stderr (or NEAP_STATS_FD). Never
 * allocates. */
NEAP_EXPORT void neap_stats_print(FILE *out);

/* Process memory as the kernel reports it (/proc/self/status). */
typedef struct neap_process_memory_s {
    size_t rss;       /* resident set size, bytes */
    size_t peak_rss;  /* high-water resident set size, bytes */
    size_t vsize;     /* virtual size, bytes */
} neap_process_memory_t;

/* Returns 0, or -1 if /proc cannot be read. */
NEAP_EXPORT int neap_process_memory(neap_process_memory_t *out);

/* Size class helpers: the block size a request of `size` bytes receives. */
NEAP_EXPORT size_t neap_good_size(size_t size);

/* 1 in a hardened build (-DNEAP_HARDENED=ON: free-list links encoded, every
 * double free caught; README "Hardened build"), 0 otherwise. */
NEAP_EXPORT int neap_hardened(void);

/* ---------------------------------------------------------------------------
 * Isolation: the last resort for memory that must go back.  Runs
 * fn(arg, buf, out_size) in a forked child process; every byte the child
 * allocates goes back to the OS when it exits.  fn writes its result into
 * buf (shared with the parent, out_size bytes) and returns the result's
 * length, or the length it would need, as snprintf does; a negative return
 * means fn failed.
 *
 * Returns the result's length (0..out_size), copied into out, or:
 *   NEAP_ISOLATED_ERROR      the child could not be started (errno says why)
 *   NEAP_ISOLATED_FAILED     fn returned a negative value
 *   NEAP_ISOLATED_TOO_LARGE  fn returned more than out_size (errno ERANGE);
 *                            out holds the first out_size bytes
 *   NEAP_ISOLATED_EXITED     the child exited before fn returned
 *   NEAP_ISOLATED_SIGNAL(s)  the child was killed by signal s (a crash, the
 *                            OOM killer): NEAP_ISOLATED_IS_SIGNAL(r) is true
 *                            and NEAP_ISOLATED_SIGNO(r) gives s
 * The child is a fork: it must not rely on threads of the parent, and it
 * ends with _exit, so the parent's atexit handlers and stdio buffers are
 * left alone.
 * ------------------------------------------------------------------------- */
typedef long (*neap_isolated_fn)(void *arg, void *buf, size_t out_size);

#define NEAP_ISOLATED_ERROR (-1L)
#define NEAP_ISOLATED_FAILED (-2L)
#define NEAP_ISOLATED_TOO_LARGE (-3L)
#define NEAP_ISOLATED_EXITED (-4L)
#define NEAP_ISOLATED_SIGNAL(s) (-128L - (long)(s))
#define NEAP_ISOLATED_IS_SIGNAL(r) ((r) < -128L)
#define NEAP_ISOLATED_SIGNO(r) ((int)(-128L - (r)))

NEAP_EXPORT long neap_run_isolated(neap_isolated_fn fn, void *arg, void *out, size_t out_size);
/* A sentence describing a result of neap_run_isolated. */
NEAP_EXPORT const char *neap_isolated_strerror(long result);

#ifdef __cplusplus
}
#endif
#endif /* NEAP_H */

/* test_mesh.c -- meshing (NEAP_MESH=1; label mesh, beside api, stress or fork).
 *
 * Meshing merges one-page small pools (blocks of 16..512 bytes) of one size
 * class whose live blocks sit at disjoint offsets into one physical page: the
 * source's live blocks are copied into the destination's page at the same
 * offsets and the source's virtual page is mapped onto the destination's page
 * of the arenas' memory file.  No block moves.  These sections hold the core
 * to that promise (include/neap.h, docs/design/meshing.md):
 *
 *   basic       200k blocks of 16..512 bytes, a random 90% freed, neap_trim():
 *               meshes made, alias pages counted, memory given back (about a
 *               page per alias page), every survivor intact, owned and as
 *               usable as before; new blocks beside the survivors, realloc
 *               smaller and larger; then every block freed and neap_trim():
 *               no alias page left, unmeshes counted; fresh blocks (malloc
 *               and calloc) work on the pages given back
 *   threads     survivors meshed by the main thread's neap_trim() while
 *               writer threads increment counters inside them (no write may
 *               be lost: a counter ends equal to its writer's rounds) and
 *               another thread frees some of them (remote frees) and churns
 *   fork        meshed survivors across fork: each process writes its own
 *               values into them and sees only its own; both allocate,
 *               mesh and free afterwards (the parent's new arenas mesh)
 *   background  NEAP_BACKGROUND=1: the main thread frees and then only sleeps,
 *               polling the statistics, until the background thread has
 *               meshed its heap; survivors intact, memory given back
 *   classes     every small class 16..512 (step 16): pools whose survivors
 *               follow a stride (disjoint between pools: meshable whatever the
 *               placement) and pools with random survivors, every pool
 *               keeping one at least; neap_trim() meshes, the statistics
 *               agree with themselves across it (blocks and bytes in use
 *               unchanged, fewer pools)
 *   churn       threads in random malloc/free churn, now and then freeing
 *               most of their blocks at once, handing blocks to each other
 *               to free, one of them calling neap_trim() every few thousand
 *               steps; every live block checked at the end
 *   signals     the program's own SIGSEGV handler, installed before the first
 *               mesh, still gets the program's own faults (neap's handler
 *               chains to it); one installed after neap's stops meshing
 *               (no mesh more, and a warning), and the program goes on
 *   off         run WITHOUT NEAP_MESH: the same workload as basic makes no
 *               mesh, no alias page, and no memory file is open
 *
 * Every section but off expects NEAP_MESH=1 in the environment (CMake sets
 * it, and NEAP_BACKGROUND=1 for background) and fails when meshing is off.
 * A section is named on the command line (there is no default: the
 * sections need different environments); one that made no check fails.
 *
 * Memory is measured as Pss (/proc/self/smaps_rollup, else the sum over
 * /proc/self/smaps).  Meshed arenas are shared memory, and a physical page
 * mapped at two virtual pages is counted twice in VmRSS, RssShmem and Rss
 * once both have been touched (each virtual page has its own page table
 * entry), while Pss divides it between them.  VmRSS is printed beside it for
 * information.  The arenas' memory file, when one is open, is measured as
 * well (its allocated blocks): a page given back must leave the file too.
 *
 * Block contents follow neap_test.h's position-dependent pattern, tagged with
 * the block's address and index, so that a block seen through the wrong page
 * or two blocks sharing an offset show up as corruption.  Seeds are fixed;
 * work scales with NEAP_TEST_SCALE.  Nothing waits on a clock except the
 * background section, which polls with a generous bound.
 *
 * Usage: test_mesh SECTION...
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "neap.h"
#include "neap_test.h"

/* Every check is counted (a section that made none fails): CHECK and CHECKF
 * of neap_test.h again, with a count.  CHECK_PATTERN expands to CHECKF where
 * it is used, so it counts too. */
static atomic_size_t checks_made;
#undef CHECK
#undef CHECKF
#define CHECK(expr)                                                           \
    do {                                                                      \
        atomic_fetch_add_explicit(&checks_made, 1, memory_order_relaxed);     \
        if (!(expr))                                                          \
            test_fail(__FILE__, __LINE__, #expr, NULL);                       \
    } while (0)
#define CHECKF(expr, ...)                                                     \
    do {                                                                      \
        atomic_fetch_add_explicit(&checks_made, 1, memory_order_relaxed);     \
        if (!(expr))                                                          \
            test_fail(__FILE__, __LINE__, #expr, __VA_ARGS__);                \
    } while (0)

#define PAGE ((uintptr_t)NEAP_PAGE_SIZE)
#define SMALL_CLASSES (NEAP_SMALL_MAX / 16)

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------------------
 * Blocks
 * ---------------------------------------------------------------------- */

/* A block's tag: who made it, its index, and its address. */
static uint64_t
blk_tag(unsigned who, size_t idx, const void *p)
{
    return ((uint64_t)who << 48) ^ ((uint64_t)idx * 0x100000001B3ULL) ^ (uint64_t)(uintptr_t)p;
}

static void
blk_new(struct item *it, size_t size, unsigned who, size_t idx)
{
    it->p = malloc(size);
    CHECKF(it->p != NULL, "malloc(%zu)", size);
    CHECKF(test_aligned(it->p, 16), "malloc(%zu) = %p", size, it->p);
    it->size = size;
    it->tag = blk_tag(who, idx, it->p);
    pat_fill(it->p, size, it->tag);
}

/* Contents as written, and at least as usable as asked for. */
static void
blk_check(const struct item *it)
{
    size_t usable = malloc_usable_size(it->p);
    CHECK_PATTERN(it->p, it->size, it->tag);
    CHECKF(usable >= it->size, "block %p of %zu bytes: usable size %zu", it->p, it->size, usable);
}

static void
blk_free(struct item *it)
{
    blk_check(it);
    free(it->p);
    it->p = NULL;
}

static void
blks_check(const struct item *it, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        blk_check(&it[i]);
}

static void
blks_free(struct item *it, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (it[i].p != NULL)
            blk_free(&it[i]);
}

/* n blocks of lo..hi bytes. */
static void
blks_alloc(struct item *it, size_t n, size_t lo, size_t hi, unsigned who, uint64_t *s)
{
    size_t i;
    for (i = 0; i < n; i++)
        blk_new(&it[i], xs_range(s, lo, hi), who, i);
}

/* Frees all but about keep_pct percent of it[0..n), chosen at random; the
 * survivors move to the front.  Returns their count. */
static size_t
blks_thin(struct item *it, size_t n, unsigned keep_pct, uint64_t *s)
{
    size_t i, k = 0;
    for (i = 0; i < n; i++) {
        if (xs_next(s) % 100 < keep_pct)
            it[k++] = it[i];
        else
            blk_free(&it[i]);
    }
    return k;
}

static int
cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* The pages the blocks sit on (scratch: n entries). */
static size_t
pages_of(const struct item *it, size_t n, uintptr_t *scratch)
{
    size_t i, pages = 0;
    for (i = 0; i < n; i++)
        scratch[i] = (uintptr_t)it[i].p & ~(PAGE - 1);
    qsort(scratch, n, sizeof *scratch, cmp_uptr);
    for (i = 0; i < n; i++)
        pages += i == 0 || scratch[i] != scratch[i - 1];
    return pages;
}

static void
nudge(void)
{
    void *p = malloc(32);
    CHECK(p != NULL);
    *(volatile char *)p = 1;
    free(p);
}

/* ------------------------------------------------------------------------
 * Statistics
 * ---------------------------------------------------------------------- */

static size_t
blocks_used(const neap_stats_t *st)
{
    size_t c, n = 0;
    for (c = 0; c < NEAP_CLASS_MAX; c++)
        n += st->classes[c].blocks_used;
    return n;
}

/* The counts of one snapshot agree with each other.  settled: no mesh can
 * be under way (no background thread), so the mesh counters, read one
 * after the other, agree too. */
static void
stats_consistent(const neap_stats_t *st, const char *when, int settled)
{
    size_t c, pools = 0;
    for (c = 0; c < NEAP_CLASS_MAX; c++)
        pools += st->classes[c].pools;
    CHECKF(pools + st->large_current == st->pools_current,
           "%s: pools of the classes %zu + large %zu != pools_current %zu", when, pools,
           st->large_current, st->pools_current);
    if (settled)
        CHECKF(st->mesh_pages <= st->meshes, "%s: %zu alias pages from %zu meshes", when,
               st->mesh_pages, st->meshes);
}

static void
stats_print(const char *when, const neap_stats_t *st)
{
    printf("  %-22s meshes %zu, alias pages %zu, unmeshes %zu, mesh time %.1f ms; pools %zu, "
           "pages used %zu, dirty %zu, live %.2f MB, arenas %zu\n",
           when, st->meshes, st->mesh_pages, st->unmeshes, st->mesh_ns / 1e6, st->pools_current,
           st->pages_used, st->pages_dirty, st->bytes_live / 1e6, st->arenas_current);
}

/* Meshing is on (fixed at start), or off, as the section needs. */
static void
require_mesh(int on)
{
    const char *env = getenv("NEAP_MESH");
    nudge(); /* neap started: the option is fixed from now on */
    CHECKF(neap_option_get(NEAP_OPTION_MESH) == on,
           "NEAP_MESH is %s and the option reads %ld: this section needs meshing %s "
           "(ctest sets the environment)",
           env != NULL ? env : "unset", neap_option_get(NEAP_OPTION_MESH), on ? "on" : "off");
    errno = 0;
    CHECKF(neap_option_set(NEAP_OPTION_MESH, !on) == -1 && errno == EBUSY,
           "NEAP_MESH changed after start (errno %d)", errno);
    CHECK(neap_option_get(NEAP_OPTION_MESH) == on);
    CHECK(neap_option_set(NEAP_OPTION_MESH, on) == 0);
}

/* ------------------------------------------------------------------------
 * Memory, as the kernel counts it
 * ---------------------------------------------------------------------- */

/* The sum of the values of the lines of a /proc file that begin with key
 * (kB), or -1 if the file cannot be read or has no such line.  read(2) into
 * a static buffer: no allocation (the heaps stay as they are, and idle).
 * Not thread-safe: the main thread's. */
static long
proc_kb(const char *path, const char *key)
{
    static char buf[1 << 16];
    size_t have = 0, klen = strlen(key);
    long sum = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        char *line = buf, *nl, *end;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        end = buf + have;
        *end = 0;
        while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
            if (strncmp(line, key, klen) == 0)
                sum = (sum < 0 ? 0 : sum) + strtol(line + klen, NULL, 10);
            line = nl + 1;
        }
        have = (size_t)(end - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1)
            have = 0; /* a line longer than the buffer: not one of ours */
    }
    close(fd);
    return sum;
}

struct mem {
    long pss, rss, shmem; /* kB; -1: unknown */
};

/* What else may come and go between two readings (stacks, the C library's
 * own, page tables): the memory checks allow this much. */
#define MEM_SLACK_KB 1024L

static void
mem_read(struct mem *m)
{
    m->pss = proc_kb("/proc/self/smaps_rollup", "Pss:");
    if (m->pss < 0)
        m->pss = proc_kb("/proc/self/smaps", "Pss:");
    m->rss = proc_kb("/proc/self/status", "VmRSS:");
    m->shmem = proc_kb("/proc/self/status", "RssShmem:");
}

/* kB the kernel holds for the memory files (memfd) open in this process, or
 * -1 if none is open.  Allocates (opendir): not for the background
 * section's idle heap. */
static long
memfd_kb(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    ino_t seen[16];
    size_t nseen = 0, i;
    long kb = -1;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char target[256];
        struct stat st;
        ssize_t n;
        int dup_ino = 0;
        if (e->d_name[0] == '.')
            continue;
        n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strncmp(target, "/memfd:", 7) != 0 || fstat(atoi(e->d_name), &st) != 0)
            continue;
        for (i = 0; i < nseen; i++)
            dup_ino |= seen[i] == st.st_ino;
        if (dup_ino)
            continue;
        if (nseen < sizeof seen / sizeof seen[0])
            seen[nseen++] = st.st_ino;
        kb = (kb < 0 ? 0 : kb) + (long)(st.st_blocks / 2);
    }
    closedir(d);
    return kb;
}

static void
mem_print(const char *when, const struct mem *m, long file_kb)
{
    printf("  %-22s Pss %.1f MB, VmRSS %.1f MB, RssShmem %.1f MB", when, m->pss / 1e3,
           m->rss / 1e3, m->shmem / 1e3);
    if (file_kb >= 0)
        printf(", memory file %.1f MB", file_kb / 1e3);
    printf("\n");
}

/* whether membarrier(2) can be used here: without it the background thread
 * leaves owned heaps to their owners (as test_stress's purge says) */
static int
membarrier_ok(void)
{
#ifdef SYS_membarrier
    long cmds = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0);
    return cmds > 0 && (cmds & (1 << 3)) != 0; /* MEMBARRIER_CMD_PRIVATE_EXPEDITED */
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------
 * basic
 * ---------------------------------------------------------------------- */

static void
mesh_basic(void)
{
    size_t n = test_scaled(200000), k, i, pinned, nfresh, nnew;
    struct item *it = calloc(n, sizeof *it), *fresh;
    uintptr_t *scratch = malloc(n * sizeof *scratch);
    uint64_t s = xs_seed(18);
    long delay = neap_option_get(NEAP_OPTION_PURGE_DELAY);
    long file0, file1, drop_kb, file_drop_kb, expect_kb;
    size_t new_alias, purged;
    neap_stats_t st0, st1, st2;
    struct mem m0, m1;
    int trimmed;

    CHECK(it != NULL && scratch != NULL);
    require_mesh(1);
    /* empty pages go back as they empty: what neap_trim() gives back beyond
     * that is meshing's */
    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, 0) == 0);

    blks_alloc(it, n, 16, 512, 1, &s);
    k = blks_thin(it, n, 10, &s);
    nudge();
    pinned = pages_of(it, k, scratch);
    neap_stats_get(&st0);
    mem_read(&m0);
    file0 = memfd_kb();
    printf("basic: %zu blocks of 16..512 bytes, %zu survivors on %zu pages\n", n, k, pinned);
    stats_print("before neap_trim:", &st0);
    mem_print("before neap_trim:", &m0, file0);
    CHECKF(k > n / 20 && pinned > 100, "%zu survivors on %zu pages", k, pinned);

    trimmed = neap_trim();
    neap_stats_get(&st1);
    /* the survivors: intact, owned, usable; reading them all also maps
     * every alias page again */
    for (i = 0; i < k; i++) {
        blk_check(&it[i]);
        CHECKF(neap_owns(it[i].p), "survivor %p not owned after the mesh", it[i].p);
    }
    mem_read(&m1);
    file1 = memfd_kb();
    stats_print("after neap_trim:", &st1);
    mem_print("after, survivors read:", &m1, file1);

    stats_consistent(&st0, "before neap_trim", 1);
    stats_consistent(&st1, "after neap_trim", 1);
    CHECKF(st1.meshes > st0.meshes, "neap_trim() made no mesh (%zu before, %zu after)", st0.meshes,
           st1.meshes);
    CHECKF(st1.mesh_pages > 0, "no alias page after %zu meshes", st1.meshes);
    CHECKF(st1.mesh_ns > st0.mesh_ns, "no time spent meshing (%zu ns)", st1.mesh_ns);
    CHECKF(trimmed == 1, "neap_trim() returned %d though it meshed", trimmed);
    CHECKF(st1.mesh_pages < pinned, "%zu alias pages for %zu pages of survivors", st1.mesh_pages,
           pinned);
    new_alias = st1.mesh_pages > st0.mesh_pages ? st1.mesh_pages - st0.mesh_pages : 0;
    /* random survivors at 10%: Mesh's matching frees about half the pages in
     * one round (docs/design/meshing.md); a twentieth is far below that */
    CHECKF(new_alias >= pinned / 20, "only %zu pages meshed away of %zu pages of survivors",
           new_alias, pinned);
    CHECKF(st1.bytes_live == st0.bytes_live, "bytes live %zu before neap_trim, %zu after",
           st0.bytes_live, st1.bytes_live);
    CHECKF(blocks_used(&st1) == blocks_used(&st0), "blocks used %zu before neap_trim, %zu after",
           blocks_used(&st0), blocks_used(&st1));

    /* the memory: a page per alias page, and the empty pages the trim gave
     * back (few: the purge delay is 0), half of it at least */
    purged = st0.pages_dirty > st1.pages_dirty ? st0.pages_dirty - st1.pages_dirty : 0;
    expect_kb = (long)((new_alias + purged) * (PAGE / 1024));
    if (m0.pss >= 0 && m1.pss >= 0) {
        drop_kb = m0.pss - m1.pss;
        printf("  Pss fell by %ld kB; %zu pages meshed away and %zu purged make %ld kB\n", drop_kb,
               new_alias, purged, expect_kb);
        CHECKF(2 * drop_kb + MEM_SLACK_KB >= expect_kb,
               "Pss fell by %ld kB over neap_trim(), %zu alias pages and %zu purged pages make "
               "%ld kB",
               drop_kb, new_alias, purged, expect_kb);
    } else {
        printf("  NOTE: no Pss in /proc (kernel without smaps): memory not measured\n");
    }
    if (file0 >= 0 && file1 >= 0) {
        file_drop_kb = file0 - file1;
        printf("  the memory file shrank by %ld kB\n", file_drop_kb);
        CHECKF(2 * file_drop_kb + MEM_SLACK_KB >= (long)(new_alias * (PAGE / 1024)),
               "the arenas' memory file shrank by %ld kB over neap_trim(), %zu alias pages "
               "should free %zu kB in it",
               file_drop_kb, new_alias, new_alias * (PAGE / 1024));
    } else {
        printf("  NOTE: no memory file open: not measured\n");
    }

    /* new blocks beside the survivors: in the merged pools' free slots too */
    nfresh = k;
    fresh = calloc(nfresh, sizeof *fresh);
    CHECK(fresh != NULL);
    for (i = 0; i < nfresh; i++)
        blk_new(&fresh[i], xs_range(&s, 16, 512), 4, i);
    blks_check(it, k);
    blks_check(fresh, nfresh);

    /* realloc a third of the survivors, smaller and larger */
    for (i = 0, nnew = 0; i < k; i += 3, nnew++) {
        struct item *b = &it[i];
        size_t old = b->size, size = nnew % 2 ? old + xs_range(&s, 1, 700) : xs_range(&s, 1, old);
        void *q = realloc(b->p, size);
        CHECKF(q != NULL, "realloc(%p, %zu)", b->p, size);
        CHECK_PATTERN(q, old < size ? old : size, b->tag);
        b->p = q;
        b->size = size;
        b->tag = blk_tag(2, i, q);
        pat_fill(q, size, b->tag);
        CHECKF(malloc_usable_size(q) >= size, "realloc'd %p: usable %zu < %zu", q,
               malloc_usable_size(q), size);
    }
    blks_check(it, k);
    blks_check(fresh, nfresh);

    /* every block freed: each merged pool empties, its alias pages get
     * their own pages back */
    blks_free(fresh, nfresh);
    blks_free(it, k);
    neap_trim();
    neap_stats_get(&st2);
    stats_print("all freed, trimmed:", &st2);
    stats_consistent(&st2, "all freed", 1);
    /* the blocks the C library and the test harness keep (stdio) may
     * still share pages: a few alias pages of their pools, no more */
    CHECKF(st2.mesh_pages <= 16 && st2.unmeshes + st2.mesh_pages == st2.meshes,
           "%zu alias pages left with every block freed (%zu pools, %zu meshes, %zu unmeshed)",
           st2.mesh_pages, st2.pools_current, st2.meshes, st2.unmeshes);
    CHECKF(st2.unmeshes > st1.unmeshes, "no unmesh counted (%zu) after every block was freed",
           st2.unmeshes);

    /* fresh blocks on the pages given back: writable, readable, calloc's
     * zeroed, no two of them sharing memory */
    for (i = 0; i < n / 2; i++) {
        size_t size = xs_range(&s, 16, 512);
        if (i % 3 == 0) {
            unsigned char *z = calloc(1, size);
            size_t j, nonzero = 0;
            CHECKF(z != NULL, "calloc(1, %zu)", size);
            for (j = 0; j < size; j++)
                nonzero += z[j] != 0;
            CHECKF(nonzero == 0, "calloc(1, %zu) = %p: %zu bytes not zero", size, (void *)z,
                   nonzero);
            it[i].p = z;
            it[i].size = size;
            it[i].tag = blk_tag(5, i, z);
            pat_fill(z, size, it[i].tag);
        } else {
            blk_new(&it[i], size, 5, i);
        }
    }
    blks_check(it, n / 2);
    blks_free(it, n / 2);
    neap_trim();
    neap_stats_get(&st2);
    /* the blocks the C library and the test harness keep (stdio) may
     * still share pages: a few alias pages of their pools, no more */
    CHECKF(st2.mesh_pages <= 16 && st2.unmeshes + st2.mesh_pages == st2.meshes,
           "%zu alias pages left with every block freed (%zu pools, %zu meshes, %zu unmeshed)",
           st2.mesh_pages, st2.pools_current, st2.meshes, st2.unmeshes);

    CHECK(neap_option_set(NEAP_OPTION_PURGE_DELAY, delay) == 0);
    free(fresh);
    free(scratch);
    free(it);
}

/* ------------------------------------------------------------------------
 * threads: writers inside the survivors while they are meshed
 * ---------------------------------------------------------------------- */
#define TH_WRITERS 2
#define TH_ROUNDS 8

/* A writer's block: a 64-bit counter in word 0, the pattern after it. */
static void
wblk_check(const struct item *it, uint64_t count)
{
    uint64_t c;
    memcpy(&c, it->p, sizeof c);
    CHECKF(c == count, "block %p: counter %llu, its writer made %llu rounds (lost writes)", it->p,
           (unsigned long long)c, (unsigned long long)count);
    CHECK_PATTERN((char *)it->p + 8, it->size - 8, it->tag);
}

struct th_writer {
    pthread_t t;
    struct item *blk;
    size_t n;
    _Atomic size_t rounds;
};

static struct {
    atomic_int stop;
    _Atomic size_t round;       /* the main thread's rounds begun */
    struct item *freer_blk;     /* survivors for the freer: it frees half */
    size_t freer_n;
    _Atomic size_t freer_freed; /* of freer_blk, from the front */
} th;

static void *
th_writer_main(void *arg)
{
    struct th_writer *w = arg;
    size_t rounds = 0, i;
    while (!atomic_load_explicit(&th.stop, memory_order_acquire)) {
        for (i = 0; i < w->n; i++) {
            volatile uint64_t *c = w->blk[i].p;
            *c = *c + 1;
        }
        atomic_store_explicit(&w->rounds, ++rounds, memory_order_release);
    }
    return NULL;
}

/* Frees half of its survivors of the main thread's heap a share per round
 * (remote frees into pools being meshed), churning its own heap between. */
static void *
th_freer_main(void *arg)
{
    enum { N = 256 };
    struct item own[N];
    uint64_t s = xs_seed(77);
    size_t op = 0, freed = 0, i;
    (void)arg;
    memset(own, 0, sizeof own);
    while (!atomic_load_explicit(&th.stop, memory_order_acquire)) {
        struct item *o = &own[xs_next(&s) % N];
        size_t round = atomic_load_explicit(&th.round, memory_order_acquire);
        size_t due = th.freer_n / 2 * (round < TH_ROUNDS ? round : TH_ROUNDS) / TH_ROUNDS;
        if (o->p != NULL)
            blk_free(o);
        else
            blk_new(o, xs_range(&s, 16, 512), 9, op);
        if (++op % 16 == 0 && freed < due) {
            blk_free(&th.freer_blk[freed++]);
            atomic_store_explicit(&th.freer_freed, freed, memory_order_release);
        }
        if (op % 1024 == 0)
            sched_yield();
    }
    for (i = 0; i < N; i++)
        if (own[i].p != NULL)
            blk_free(&own[i]);
    return NULL;
}

static void
mesh_threads(void)
{
    size_t n = test_scaled(120000), k, i, r, w, nmine = 0, nextra = 0, mine_freed = 0;
    size_t batch = test_scaled(20000);
    struct item *all = calloc(n, sizeof *all), *extra = calloc(TH_ROUNDS * batch, sizeof *extra);
    struct item *mine, *wblk[TH_WRITERS], *freer;
    size_t nw[TH_WRITERS] = {0}, nfreer = 0, seen[TH_WRITERS];
    struct th_writer writer[TH_WRITERS];
    pthread_t freer_t;
    uint64_t s = xs_seed(2);
    neap_stats_t st;

    CHECK(all != NULL && extra != NULL);
    require_mesh(1);
    blks_alloc(all, n, 16, 512, 1, &s);
    k = blks_thin(all, n, 10, &s);
    /* survivor i goes to writer i % (W + 2), the freer (W) or this thread */
    mine = calloc(k, sizeof *mine);
    freer = calloc(k, sizeof *freer);
    CHECK(mine != NULL && freer != NULL);
    for (w = 0; w < TH_WRITERS; w++) {
        wblk[w] = calloc(k, sizeof *wblk[w]);
        CHECK(wblk[w] != NULL);
    }
    for (i = 0; i < k; i++) {
        size_t j = i % (TH_WRITERS + 2);
        if (j < TH_WRITERS) {
            struct item *b = &wblk[j][nw[j]++];
            uint64_t zero = 0;
            *b = all[i];
            memcpy(b->p, &zero, sizeof zero);
            pat_fill((char *)b->p + 8, b->size - 8, b->tag);
        } else if (j == TH_WRITERS) {
            freer[nfreer++] = all[i];
        } else {
            mine[nmine++] = all[i];
        }
    }
    printf("threads: %zu survivors of %zu blocks: %zu per writer, %zu for the freer, %zu kept\n", k,
           n, nw[0], nfreer, nmine);

    th.freer_blk = freer;
    th.freer_n = nfreer;
    for (w = 0; w < TH_WRITERS; w++) {
        writer[w].blk = wblk[w];
        writer[w].n = nw[w];
        atomic_store(&writer[w].rounds, 0);
        seen[w] = 0;
        CHECK(pthread_create(&writer[w].t, NULL, th_writer_main, &writer[w]) == 0);
    }
    CHECK(pthread_create(&freer_t, NULL, th_freer_main, NULL) == 0);

    for (r = 0; r < TH_ROUNDS; r++) {
        size_t m;
        /* the writers are at work (each made a round more since the last
         * trim): a wait on their progress, not on a clock */
        for (w = 0; w < TH_WRITERS; w++) {
            while (atomic_load_explicit(&writer[w].rounds, memory_order_acquire) <= seen[w])
                sched_yield();
            seen[w] = atomic_load(&writer[w].rounds);
        }
        atomic_store_explicit(&th.round, r + 1, memory_order_release);
        if (r > 0) {
            /* more scattered pools, and some of this thread's survivors
             * freed: new candidates beside the merged pools */
            blks_alloc(extra + nextra, batch, 16, 512, 10 + (unsigned)r, &s);
            nextra += blks_thin(extra + nextra, batch, 10, &s);
            for (m = 0; m < nmine / (2 * TH_ROUNDS) && mine_freed < nmine; m++)
                blk_free(&mine[mine_freed++]);
        }
        neap_trim();
        neap_stats_get(&st);
        printf("  round %zu: writers at %zu", r, seen[0]);
        for (w = 1; w < TH_WRITERS; w++)
            printf(", %zu", seen[w]);
        printf(" rounds, freer at %zu of %zu; meshes %zu, alias pages %zu, unmeshes %zu\n",
               atomic_load(&th.freer_freed), nfreer / 2, st.meshes, st.mesh_pages, st.unmeshes);
    }
    atomic_store_explicit(&th.stop, 1, memory_order_release);
    for (w = 0; w < TH_WRITERS; w++)
        CHECK(pthread_join(writer[w].t, NULL) == 0);
    CHECK(pthread_join(freer_t, NULL) == 0);

    neap_stats_get(&st);
    CHECKF(st.meshes > 0, "no mesh in %d rounds of neap_trim(): the writers raced nothing",
           TH_ROUNDS);
    for (w = 0; w < TH_WRITERS; w++) {
        size_t rounds = atomic_load(&writer[w].rounds);
        CHECKF(rounds >= TH_ROUNDS, "writer %zu: %zu rounds", w, rounds);
        for (i = 0; i < nw[w]; i++)
            wblk_check(&wblk[w][i], rounds);
        printf("  writer %zu: %zu rounds over %zu blocks, none lost\n", w, rounds, nw[w]);
    }
    blks_check(freer + atomic_load(&th.freer_freed), nfreer - atomic_load(&th.freer_freed));
    blks_check(mine + mine_freed, nmine - mine_freed);
    blks_check(extra, nextra);

    for (w = 0; w < TH_WRITERS; w++) {
        for (i = 0; i < nw[w]; i++)
            free(wblk[w][i].p);
        free(wblk[w]);
    }
    blks_free(freer + atomic_load(&th.freer_freed), nfreer - atomic_load(&th.freer_freed));
    blks_free(mine + mine_freed, nmine - mine_freed);
    blks_free(extra, nextra);
    neap_trim();
    neap_stats_get(&st);
    stats_print("all freed, trimmed:", &st);
    /* the blocks the C library and the test harness keep (stdio) may
     * still share pages: a few alias pages of their pools, no more */
    CHECKF(st.mesh_pages <= 16 && st.unmeshes + st.mesh_pages == st.meshes,
           "%zu alias pages left with every block freed (%zu pools, %zu meshes, %zu unmeshed)",
           st.mesh_pages, st.pools_current, st.meshes, st.unmeshes);
    free(mine);
    free(freer);
    free(extra);
    free(all);
}

/* ------------------------------------------------------------------------
 * fork
 * ---------------------------------------------------------------------- */
#define CHILD_MARK 0xC41D000000000000ULL
#define PARENT_MARK 0x9A4E000000000000ULL

/* One byte each way: returns once the other process has come here too. */
static void
fork_meet(int wfd, int rfd, const char *who, int step)
{
    char c = (char)step;
    ssize_t r;
    while ((r = write(wfd, &c, 1)) < 0 && errno == EINTR)
        ;
    CHECKF(r == 1, "%s, step %d: the other process went away (write: errno %d)", who, step, errno);
    while ((r = read(rfd, &c, 1)) < 0 && errno == EINTR)
        ;
    CHECKF(r == 1 && c == (char)step, "%s, step %d: the other process went away (read %zd)", who,
           step, r);
}

/* Random malloc/free on a few slots, every block checked before its free. */
static void
fork_churn(uint64_t seed, size_t ops)
{
    enum { N = 256 };
    struct item slot[N];
    uint64_t s = xs_seed(seed);
    size_t i;
    memset(slot, 0, sizeof slot);
    for (i = 0; i < ops; i++) {
        struct item *it = &slot[xs_next(&s) % N];
        if (it->p != NULL)
            blk_free(it);
        else
            blk_new(it, xs_range(&s, 1, 2048), 20, i);
    }
    blks_free(slot, N);
}

/* What parent and child each do after the fork, side by side; the survivors
 * a[] (meshed before the fork) get this process's own values.  Returns the
 * survivors of a batch allocated, thinned and meshed after the fork (*nb). */
static struct item *
fork_side(struct item *a, size_t ka, int child, int wfd, int rfd, size_t *nb)
{
    const char *who = child ? "child" : "parent";
    uint64_t mark = child ? CHILD_MARK : PARENT_MARK, s = xs_seed(child ? 31 : 32);
    size_t n = test_scaled(120000), k, i;
    struct item *b = calloc(n, sizeof *b);
    neap_stats_t st0, st1;

    CHECK(b != NULL);
    /* as they were at the fork */
    blks_check(a, ka);
    for (i = 0; i < ka; i++) {
        a[i].tag ^= mark;
        pat_fill(a[i].p, a[i].size, a[i].tag);
    }
    /* a batch of its own, beyond the free space of the arenas of the fork
     * (those are private now and mesh no more): new arenas, meshed */
    blks_alloc(b, n, 16, 512, child ? 21 : 22, &s);
    k = blks_thin(b, n, 10, &s);
    neap_stats_get(&st0);
    neap_trim();
    neap_stats_get(&st1);
    printf("fork, %s: %zu blocks after the fork, %zu survivors; meshes %zu -> %zu, alias pages "
           "%zu\n",
           who, n, k, st0.meshes, st1.meshes, st1.mesh_pages);
    if (!child)
        CHECKF(st1.meshes > st0.meshes,
               "parent: neap_trim() after the fork made no mesh (%zu meshes; its new arenas "
               "should mesh)",
               st1.meshes);
    blks_check(a, ka);
    blks_check(b, k);

    /* both have written their values and meshed: each sees its own only */
    fork_meet(wfd, rfd, who, 1);
    blks_check(a, ka);
    blks_check(b, k);
    fork_churn(child ? 41 : 42, test_scaled(20000));
    /* and once more after the other's churn */
    fork_meet(wfd, rfd, who, 2);
    blks_check(a, ka);
    blks_check(b, k);
    *nb = k;
    return b;
}

static void
mesh_fork(void)
{
    size_t n = test_scaled(60000), k, kb, i;
    struct item *a = calloc(n, sizeof *a), *b;
    uint64_t s = xs_seed(3);
    int p2c[2], c2p[2], status, failed_before;
    neap_stats_t st0, st1;
    pid_t pid, r;

    CHECK(a != NULL);
    require_mesh(1);
    signal(SIGPIPE, SIG_IGN); /* a process gone shows as EPIPE, reported */
    blks_alloc(a, n, 16, 512, 1, &s);
    k = blks_thin(a, n, 10, &s);
    neap_stats_get(&st0);
    neap_trim();
    neap_stats_get(&st1);
    printf("fork: %zu survivors of %zu blocks meshed before the fork\n", k, n);
    stats_print("before the fork:", &st1);
    CHECKF(st1.meshes > st0.meshes && st1.mesh_pages > 0,
           "neap_trim() before the fork made no mesh (%zu meshes, %zu alias pages)", st1.meshes,
           st1.mesh_pages);
    blks_check(a, k);

    CHECK(pipe(p2c) == 0 && pipe(c2p) == 0);
    failed_before = test_failures; /* NEAP_TEST_KEEP_GOING: the child's own count */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        b = fork_side(a, k, 1, c2p[1], p2c[0], &kb);
        /* the child frees everything it has, the parent's blocks too */
        blks_free(b, kb);
        blks_free(a, k);
        free(b);
        neap_trim();
        exit(test_failures > failed_before ? 1 : 0); /* atexit handlers, neap's exit path */
    }
    close(p2c[0]);
    close(c2p[1]);
    b = fork_side(a, k, 0, p2c[1], c2p[0], &kb);
    close(p2c[1]);
    close(c2p[0]);
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    CHECK(r == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s %d",
           WIFSIGNALED(status) ? "killed by signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));

    /* the parent goes on: its values kept, more frees, a mesh again */
    blks_check(a, k);
    blks_check(b, kb);
    for (i = 0; i < kb; i += 2)
        blk_free(&b[i]);
    fork_churn(43, test_scaled(20000));
    neap_trim();
    for (i = 0; i < kb; i++)
        if (b[i].p != NULL)
            blk_check(&b[i]);
    blks_check(a, k);
    blks_free(b, kb);
    blks_free(a, k);
    neap_trim();
    neap_stats_get(&st1);
    stats_print("parent, all freed:", &st1);
    /* the blocks the C library and the test harness keep (stdio) may
     * still share pages: a few alias pages of their pools, no more */
    CHECKF(st1.mesh_pages <= 16 && st1.unmeshes + st1.mesh_pages == st1.meshes,
           "parent: %zu alias pages left with every block freed (%zu pools, %zu meshes, %zu unmeshed)",
           st1.mesh_pages, st1.pools_current, st1.meshes, st1.unmeshes);
    free(b);
    free(a);
}

/* ------------------------------------------------------------------------
 * background
 * ---------------------------------------------------------------------- */
#define BG_LOOK_MS 100
#define BG_LOOKS 900 /* 90 s asleep at most: a liveness bound, not a speed */

static void
mesh_background(void)
{
    size_t n = test_scaled(100000), k, pinned, looks, want;
    struct item *it = calloc(n, sizeof *it);
    uintptr_t *scratch = malloc(n * sizeof *scratch);
    uint64_t s = xs_seed(4);
    neap_stats_t st0, st;
    struct mem m0, m1;
    double t0;

    CHECK(it != NULL && scratch != NULL);
    require_mesh(1);
    CHECKF(neap_option_get(NEAP_OPTION_BACKGROUND) != 0,
           "NEAP_BACKGROUND=1 expected (ctest sets it)");
    if (!membarrier_ok()) {
        printf("background: no membarrier(2) here: the background thread leaves owned heaps "
               "alone; skipped\n");
        exit(77);
    }
    blks_alloc(it, n, 16, 512, 1, &s);
    k = blks_thin(it, n, 10, &s);
    pinned = pages_of(it, k, scratch);
    /* from here on this heap is idle: no allocation, no free, no call but
     * neap_stats_get; the memory first, then the counts (a mesh in between
     * is counted as the memory's, not as the statistics') */
    mem_read(&m0);
    neap_stats_get(&st0);
    printf("background: %zu survivors of %zu blocks on %zu pages; now idle\n", k, n, pinned);
    stats_print("idle from:", &st0);
    mem_print("idle from:", &m0, -1);

    /* a mesh or more, then alias pages worth a twentieth of the survivors'
     * pages (or 64: the background's budget is small on purpose) */
    want = pinned / 20 < 64 ? pinned / 20 : 64;
    if (want == 0)
        want = 1;
    t0 = now_s();
    for (looks = 0; looks < BG_LOOKS; looks++) {
        neap_stats_get(&st);
        if (st.meshes > 0 && st.mesh_pages >= want)
            break;
        sleep_ms(BG_LOOK_MS);
    }
    printf("  after %zu looks (%.1f s):\n", looks + 1, now_s() - t0);
    stats_print("", &st);
    CHECKF(st.meshes > 0 && st.mesh_pages >= want,
           "after %zu looks %d ms apart the background thread has made %zu meshes, %zu alias "
           "pages (waited for %zu); dirty pages %zu, %.1f MB purged; %zu survivors on %zu pages",
           looks, BG_LOOK_MS, st.meshes, st.mesh_pages, want, st.pages_dirty, st.bytes_purged / 1e6,
           k, pinned);
    stats_consistent(&st, "idle, meshed", 0);

    blks_check(it, k);
    neap_stats_get(&st);
    mem_read(&m1);
    mem_print("meshed, survivors read:", &m1, -1);
    if (m0.pss >= 0 && m1.pss >= 0) {
        size_t meshed = st.mesh_pages > st0.mesh_pages ? st.mesh_pages - st0.mesh_pages : 0;
        long drop_kb = m0.pss - m1.pss, expect_kb = (long)(meshed * (PAGE / 1024));
        printf("  Pss fell by %ld kB; %zu pages meshed away while idle make %ld kB\n", drop_kb,
               meshed, expect_kb);
        CHECKF(2 * drop_kb + MEM_SLACK_KB >= expect_kb,
               "Pss fell by %ld kB while idle; %zu pages meshed away make %ld kB", drop_kb, meshed,
               expect_kb);
    }
    blks_free(it, k);
    free(scratch);
    free(it);
}

/* ------------------------------------------------------------------------
 * classes
 * ---------------------------------------------------------------------- */
#define CLS_PAGES 64   /* pages of blocks per class */
#define CLS_STRIDE 4   /* stride pages: page g keeps slots = (g/2) % STRIDE */

struct cls_blk {
    uintptr_t addr;
    size_t idx;
};

static int
cmp_cls_blk(const void *a, const void *b)
{
    uintptr_t x = ((const struct cls_blk *)a)->addr, y = ((const struct cls_blk *)b)->addr;
    return x < y ? -1 : x > y;
}

static void
mesh_classes(void)
{
    size_t pages = test_scaled(CLS_PAGES), total = 0, c, i, k = 0, pinned = 0;
    size_t per[SMALL_CLASSES + 1];
    struct item *it;
    struct cls_blk *order;
    unsigned char *keep;
    uint64_t s = xs_seed(5);
    neap_stats_t st0, st1, st2;

    if (pages < 8)
        pages = 8;
    for (c = 1; c <= SMALL_CLASSES; c++) {
        per[c] = pages * NEAP_PAGE_SIZE / (16 * c);
        total += per[c];
    }
    it = calloc(total, sizeof *it);
    order = calloc(total, sizeof *order);
    keep = calloc(total, 1);
    CHECK(it != NULL && order != NULL && keep != NULL);
    require_mesh(1);

    /* class by class: each class's blocks, then its survivors chosen page
     * by page from the blocks' offsets (not their order of allocation) */
    for (c = 1, i = 0; c <= SMALL_CLASSES; c++) {
        size_t size = 16 * c, first = i, j, g = 0, kept_here = 0;
        for (j = 0; j < per[c]; j++, i++) {
            blk_new(&it[i], size, 6, i);
            order[i].addr = (uintptr_t)it[i].p;
            order[i].idx = i;
        }
        CHECKF(neap_good_size(size) == size, "good size of %zu: %zu", size, neap_good_size(size));
        qsort(order + first, per[c], sizeof *order, cmp_cls_blk);
        for (j = first; j < i; j++) {
            uintptr_t page = order[j].addr & ~(PAGE - 1);
            size_t slot = (order[j].addr & (PAGE - 1)) / size;
            int last = j + 1 == i || ((order[j + 1].addr & ~(PAGE - 1)) != page);
            int k1;
            if (g % 2 == 0)
                k1 = slot % CLS_STRIDE == (g / 2) % CLS_STRIDE;
            else
                k1 = xs_next(&s) % 10 == 0;
            if (last && kept_here == 0 && !k1)
                k1 = 1; /* every pool keeps a block: none empties, none is retired */
            keep[order[j].idx] = (unsigned char)k1;
            kept_here += (size_t)k1;
            if (last) {
                g++;
                kept_here = 0;
            }
        }
        pinned += g;
    }
    for (i = 0; i < total; i++) {
        if (keep[i])
            it[k++] = it[i];
        else
            blk_free(&it[i]);
    }
    printf("classes: %zu blocks in %zu classes, %zu survivors on %zu pages\n", total,
           (size_t)SMALL_CLASSES, k, pinned);

    neap_stats_get(&st0);
    neap_trim();
    neap_stats_get(&st1);
    stats_print("before neap_trim:", &st0);
    stats_print("after neap_trim:", &st1);
    for (i = 0; i < k; i++) {
        blk_check(&it[i]);
        CHECKF(neap_owns(it[i].p), "survivor %p not owned after the mesh", it[i].p);
    }
    stats_consistent(&st0, "before neap_trim", 1);
    stats_consistent(&st1, "after neap_trim", 1);
    CHECKF(st1.meshes > st0.meshes, "neap_trim() made no mesh (%zu)", st1.meshes);
    CHECKF(st1.mesh_pages > st0.mesh_pages, "no alias page made (%zu)", st1.mesh_pages);
    CHECKF(st1.mesh_pages < pinned, "%zu alias pages for %zu pages of survivors", st1.mesh_pages,
           pinned);
    CHECKF(blocks_used(&st1) == blocks_used(&st0), "blocks used %zu before neap_trim, %zu after",
           blocks_used(&st0), blocks_used(&st1));
    CHECKF(st1.bytes_live == st0.bytes_live, "bytes live %zu before neap_trim, %zu after",
           st0.bytes_live, st1.bytes_live);
    /* none of these pools emptied (each keeps a block): a source pool
     * folded into its destination is a pool no more, so there are fewer by
     * the alias pages made at least (neap_trim() retires empty pools of
     * its own too: fewer pools alone would prove nothing) */
    CHECKF(st1.pools_current < st0.pools_current &&
               st0.pools_current - st1.pools_current >= st1.mesh_pages - st0.mesh_pages,
           "pools %zu before neap_trim, %zu after, with %zu alias pages made", st0.pools_current,
           st1.pools_current, st1.mesh_pages - st0.mesh_pages);
    for (c = 0; c < SMALL_CLASSES; c++)
        CHECKF(st1.classes[c].pools <= st0.classes[c].pools, "class %zu B: %zu pools, then %zu",
               st1.classes[c].block_size, st0.classes[c].pools, st1.classes[c].pools);

    /* new blocks of every class beside the survivors */
    for (c = 1; c <= SMALL_CLASSES; c++) {
        struct item b[64];
        for (i = 0; i < 64; i++)
            blk_new(&b[i], 16 * c, 7, i);
        blks_check(b, 64);
        blks_free(b, 64);
    }
    blks_check(it, k);
    blks_free(it, k);
    neap_trim();
    neap_stats_get(&st2);
    stats_print("all freed, trimmed:", &st2);
    stats_consistent(&st2, "all freed", 1);
    /* the blocks the C library and the test harness keep (stdio) may
     * still share pages: a few alias pages of their pools, no more */
    CHECKF(st2.mesh_pages <= 16 && st2.unmeshes + st2.mesh_pages == st2.meshes,
           "%zu alias pages left with every block freed (%zu pools, %zu meshes, %zu unmeshed)",
           st2.mesh_pages, st2.pools_current, st2.meshes, st2.unmeshes);
    CHECKF(st2.unmeshes > st1.unmeshes, "no unmesh counted (%zu) after every block was freed",
           st2.unmeshes);
    free(keep);
    free(order);
    free(it);
}

/* ------------------------------------------------------------------------
 * churn: threads churning, thread 0 trimming
 * ---------------------------------------------------------------------- */
#define CH_THREADS 3
#define CH_SLOTS 4096
#define CH_MAIL 1024
#define CH_THIN 25000 /* steps between two frees of most blocks at once */
#define CH_TRIM 5000  /* thread 0's steps between two neap_trim() calls */

static struct {
    pthread_mutex_t lock;
    struct item box[CH_MAIL];
    size_t n;
} ch_mail[CH_THREADS];

static pthread_barrier_t ch_barrier;
static atomic_size_t ch_trims;

static size_t
ch_size(uint64_t *s)
{
    uint64_t r = xs_next(s) % 100;
    if (r < 2)
        return xs_range(s, 1, 15);
    if (r < 10)
        return xs_range(s, 513, 4096);
    return xs_range(s, 16, 512);
}

/* Hands a block to thread `to` to free; 0 if its box is full. */
static int
ch_post(unsigned to, const struct item *it)
{
    int ok = 0;
    pthread_mutex_lock(&ch_mail[to].lock);
    if (ch_mail[to].n < CH_MAIL) {
        ch_mail[to].box[ch_mail[to].n++] = *it;
        ok = 1;
    }
    pthread_mutex_unlock(&ch_mail[to].lock);
    return ok;
}

static void
ch_drain(unsigned id)
{
    struct item got[CH_MAIL];
    size_t n, i;
    pthread_mutex_lock(&ch_mail[id].lock);
    n = ch_mail[id].n;
    memcpy(got, ch_mail[id].box, n * sizeof *got);
    ch_mail[id].n = 0;
    pthread_mutex_unlock(&ch_mail[id].lock);
    for (i = 0; i < n; i++)
        blk_free(&got[i]);
}

static void
ch_check_live(const struct item *slot)
{
    size_t i;
    for (i = 0; i < CH_SLOTS; i++)
        if (slot[i].p != NULL)
            blk_check(&slot[i]);
}

static void *
ch_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t s = xs_seed(500 + id);
    size_t ops = test_scaled(200000), op, i;
    struct item *slot = calloc(CH_SLOTS, sizeof *slot);

    CHECK(slot != NULL);
    for (op = 0; op < ops; op++) {
        struct item *it = &slot[xs_next(&s) % CH_SLOTS];
        if (it->p == NULL)
            blk_new(it, ch_size(&s), 10 + id, op);
        else if (xs_next(&s) % 8 == 0 && ch_post((id + 1) % CH_THREADS, it))
            it->p = NULL; /* the next thread frees it: a remote free */
        else
            blk_free(it);
        if (op % 256 == 255)
            ch_drain(id);
        if (op % CH_THIN == CH_THIN - 1) {
            /* most blocks at once: scattered survivors, pools to mesh */
            for (i = 0; i < CH_SLOTS; i++)
                if (slot[i].p != NULL && xs_next(&s) % 10 != 0)
                    blk_free(&slot[i]);
        }
        if (id == 0 && (op % CH_TRIM == CH_TRIM - 1 || op % CH_THIN == CH_THIN - 1)) {
            neap_trim();
            atomic_fetch_add(&ch_trims, 1);
            ch_check_live(slot);
        }
    }
    /* nobody posts after this: the last of the mail, then every live block,
     * before and after a last trim */
    pthread_barrier_wait(&ch_barrier);
    ch_drain(id);
    ch_check_live(slot);
    pthread_barrier_wait(&ch_barrier);
    if (id == 0)
        neap_trim();
    pthread_barrier_wait(&ch_barrier);
    ch_check_live(slot);
    blks_free(slot, CH_SLOTS);
    free(slot);
    return NULL;
}

static void
mesh_churn(void)
{
    pthread_t t[CH_THREADS];
    uintptr_t i;
    neap_stats_t st;

    require_mesh(1);
    for (i = 0; i < CH_THREADS; i++)
        CHECK(pthread_mutex_init(&ch_mail[i].lock, NULL) == 0);
    CHECK(pthread_barrier_init(&ch_barrier, NULL, CH_THREADS) == 0);
    for (i = 0; i < CH_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, ch_thread, (void *)i) == 0);
    for (i = 0; i < CH_THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(pthread_barrier_destroy(&ch_barrier) == 0);
    neap_stats_get(&st);
    printf("churn: %d threads, %zu trims\n", CH_THREADS, atomic_load(&ch_trims));
    stats_print("at the end:", &st);
    CHECKF(st.meshes > 0, "no mesh in %zu calls of neap_trim() among churning threads",
           atomic_load(&ch_trims));
    stats_consistent(&st, "churn's end", 1);
}

/* ------------------------------------------------------------------------
 * off: the same workload without NEAP_MESH
 * ---------------------------------------------------------------------- */

static void
mesh_off(void)
{
    size_t n = test_scaled(100000), k;
    struct item *it = calloc(n, sizeof *it);
    uint64_t s = xs_seed(18);
    neap_stats_t st;
    long file_kb;

    CHECK(it != NULL);
    require_mesh(0);
    blks_alloc(it, n, 16, 512, 1, &s);
    k = blks_thin(it, n, 10, &s);
    neap_trim();
    neap_stats_get(&st);
    stats_print("off, trimmed:", &st);
    blks_check(it, k);
    CHECKF(st.meshes == 0 && st.mesh_pages == 0 && st.unmeshes == 0 && st.mesh_ns == 0,
           "meshing is off, yet meshes %zu, alias pages %zu, unmeshes %zu, %zu ns",
           st.meshes, st.mesh_pages, st.unmeshes, st.mesh_ns);
    file_kb = memfd_kb();
    CHECKF(file_kb < 0, "meshing is off, yet a memory file is open (%ld kB)", file_kb);
    blks_free(it, k);
    neap_trim();
    neap_stats_get(&st);
    CHECKF(st.meshes == 0 && st.mesh_pages == 0 && st.unmeshes == 0,
           "meshing is off, yet meshes %zu, alias pages %zu, unmeshes %zu", st.meshes,
           st.mesh_pages, st.unmeshes);
    free(it);
}

/* ---------------------------------------------------------------------- */

/* ------------------------------------------------------------------------
 * signals: neap's fault handler and the program's own
 * ---------------------------------------------------------------------- */
static sigjmp_buf sig_jump;
static volatile sig_atomic_t sig_seen;

static void
sig_program_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    sig_seen++;
    siglongjmp(sig_jump, 1);
}

/* A scattered heap, thinned and trimmed: the meshes it made. */
static size_t
sig_mesh_round(struct item *it, size_t n, uint64_t *s)
{
    neap_stats_t a, b;
    neap_stats_get(&a);
    blks_alloc(it, n, 16, 512, 7, s);
    size_t k = blks_thin(it, n, 10, s);
    neap_trim();
    neap_stats_get(&b);
    blks_check(it, k);
    blks_free(it, k);
    return b.meshes - a.meshes;
}

static void
mesh_signals(void)
{
    size_t n = test_scaled(60000);
    struct item *it = calloc(n, sizeof *it);
    uint64_t s = 0x5167A15ull;
    CHECK(it != NULL);
    /* the program's handler first, then neap's on top of it at the first mesh */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sig_program_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    size_t m = sig_mesh_round(it, n, &s);
    CHECKF(m > 0, "%zu meshes with the program's handler installed before", m);
    CHECK(sigaction(SIGSEGV, NULL, &old) == 0);
    CHECKF((old.sa_flags & SA_SIGINFO) && old.sa_sigaction != sig_program_handler,
           "neap's handler is the process's after the first mesh");
    /* a fault of the program's own (a write to a read-only page it mapped)
     * reaches its handler through neap's */
    char *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro != MAP_FAILED);
    if (sigsetjmp(sig_jump, 1) == 0) {
        *(volatile char *)ro = 1;
        CHECKF(0, "the write to a read-only page did not fault");
    }
    CHECKF(sig_seen == 1, "the program's handler saw %d faults, 1 made", (int)sig_seen);
    munmap(ro, PAGE);
    /* the program takes SIGSEGV back: neap stops meshing, the program runs on */
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    m = sig_mesh_round(it, n, &s);
    CHECKF(m == 0, "%zu meshes after the program replaced neap's handler", m);
    printf("signals: the program's handler got its fault through neap's; none meshed after it took SIGSEGV back\n");
    free(it);
}

static const struct test_section sections[] = {
    {"basic", mesh_basic},
    {"threads", mesh_threads},
    {"fork", mesh_fork},
    {"background", mesh_background},
    {"classes", mesh_classes},
    {"churn", mesh_churn},
    {"signals", mesh_signals},
    {"off", mesh_off}, /* the one without NEAP_MESH */
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

int
main(int argc, char **argv)
{
    size_t i;
    int a;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: test_mesh SECTION...  (");
        for (i = 0; i < N_SECTIONS; i++)
            fprintf(stderr, "%s%s", i ? " " : "", sections[i].name);
        fprintf(stderr, "; all but off with NEAP_MESH=1)\n");
        return 2;
    }
    for (a = 1; a < argc; a++) {
        int known = 0;
        for (i = 0; i < N_SECTIONS; i++)
            known |= strcmp(argv[a], sections[i].name) == 0;
        if (!known) {
            fprintf(stderr, "test_mesh: unknown section %s\n", argv[a]);
            return 2;
        }
    }
    printf("NEAP_TEST_SCALE %g\n", test_scale());
    for (a = 1; a < argc; a++) {
        for (i = 0; i < N_SECTIONS; i++) {
            size_t before;
            double t0;
            if (strcmp(argv[a], sections[i].name) != 0)
                continue;
            before = atomic_load(&checks_made);
            t0 = now_s();
            sections[i].run();
            /* this check's own count comes first: more than one means
             * the section made checks */
            CHECKF(atomic_load(&checks_made) > before + 1, "section %s made no check",
                   sections[i].name);
            printf("mesh %-10s %s  %zu checks, %.2f s\n", sections[i].name,
                   test_failures ? "FAILED" : "ok", atomic_load(&checks_made) - before,
                   now_s() - t0);
        }
    }
    return test_status();
}

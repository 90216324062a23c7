/* mech.c -- the costs of the mechanisms meshing would stand on (Linux).
 *
 *   ./mech fault [MiB]     first-touch cost per 4 KiB page: anonymous private
 *                          vs memfd MAP_SHARED vs memfd MAP_PRIVATE
 *   ./mech mesh [pairs]    one mesh: copy + mmap(MAP_FIXED|MAP_SHARED) of one
 *                          page + fallocate(PUNCH_HOLE); also the mremap
 *                          (MREMAP_DONTUNMAP) variant; RSS before and after;
 *                          VMAs the meshed pages cost
 *   ./mech protect [pairs] the same under mprotect(PROT_READ) of both pages
 *   ./mech trap [n]        SIGSEGV round trip: a write to a read-only page,
 *                          a handler that makes it writable and returns
 *   ./mech race [pairs]    a writer thread writes into pages while the main
 *                          thread meshes them under write protection; the
 *                          handler waits for the mesh; checks no write is lost
 *   ./mech purge [MiB]     what neap's purge (MADV_DONTNEED) does to a memfd
 *                          arena's RSS, vs MADV_REMOVE and PUNCH_HOLE
 *   ./mech base [n]        for scale: a trivial system call, one mprotect,
 *                          one fault + MADV_DONTNEED
 *   ./mech bitmap [pages]  an occupancy bitmap built by walking a page's
 *                          free list (not kept on the fast path)
 *   ./mech efault          read(2) into a write-protected page; whether
 *                          userfaultfd is open to this process
 *   ./mech fork [MiB]      what a fork costs the memfd arenas: a child's copy
 *                          into a fresh memfd per MiB, and the switch of the
 *                          parent's mapping to MAP_PRIVATE of the same file
 *                          (checked under a writer thread, and that a fork
 *                          after it snapshots)
 *
 * Build: cc -O2 -pthread -o mech mech.c   (or make in this directory)
 * Times are wall clock (CLOCK_MONOTONIC), best of 3 runs where it says so. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* kB of a line of /proc/self/status ("VmRSS", "RssShmem", "RssAnon") */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

static long count_vmas(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF)
        if (c == '\n') n++;
    if (f) fclose(f);
    return n;
}

static int new_memfd(size_t size) {
    int fd = memfd_create("arena", MFD_CLOEXEC);
    if (fd < 0) die("memfd_create");
    if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
    return fd;
}

/* ---- fault ------------------------------------------------------------- */
static double touch(char *p, size_t size) {
    double t = now_ns();
    for (size_t i = 0; i < size; i += PAGE) p[i] = 1;
    return (now_ns() - t) / (size / PAGE);
}

static void cmd_fault(size_t mib) {
    size_t size = mib << 20;
    double best[3] = {1e18, 1e18, 1e18};
    for (int run = 0; run < 3; run++) {
        char *a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a == MAP_FAILED) die("mmap anon");
        madvise(a, size, MADV_NOHUGEPAGE);   /* 4 KiB faults, as neap's arenas see them after purges */
        double t = touch(a, size);
        if (t < best[0]) best[0] = t;
        munmap(a, size);

        int fd = new_memfd(size);
        char *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s == MAP_FAILED) die("mmap shared");
        t = touch(s, size);
        if (t < best[1]) best[1] = t;
        munmap(s, size);
        close(fd);

        fd = new_memfd(size);
        char *q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (q == MAP_FAILED) die("mmap private");
        t = touch(q, size);
        if (t < best[2]) best[2] = t;
        munmap(q, size);
        close(fd);
    }
    printf("first write per 4 KiB page over %zu MiB (best of 3):\n", mib);
    printf("  anonymous private (no THP)   %7.0f ns\n", best[0]);
    printf("  memfd MAP_SHARED             %7.0f ns  (%.2fx)\n", best[1], best[1] / best[0]);
    printf("  memfd MAP_PRIVATE (hole->COW)%7.0f ns  (%.2fx)\n", best[2], best[2] / best[0]);
}

/* ---- mesh -------------------------------------------------------------- */
/* An "arena" of 2*pairs pages backed by one memfd.  Page 2i is meshed into
 * page 2i+1: the live half of 2i (its even 64-byte slots) is copied into the
 * same offsets of 2i+1 (whose live half is the odd slots), then the virtual
 * page 2i is mapped onto file page 2i+1 and file page 2i is punched out. */
static void fill(char *p, size_t npages) {
    for (size_t i = 0; i < npages; i++)
        for (size_t o = 0; o < PAGE; o += 64) memset(p + i * PAGE + o, (int)((i ^ o) & 0xff) | 1, 64);
}

static void copy_live(char *dst, const char *src, int parity) {
    /* the live blocks of src: slots of parity; at most half a page here */
    for (size_t o = parity * 64; o < PAGE; o += 128) memcpy(dst + o, src + o, 64);
}

static int check(const char *p, size_t npages) {
    for (size_t i = 0; i < npages; i += 2) {
        for (size_t o = 0; o < PAGE; o += 64) {
            size_t src = (o / 64) % 2 == 0 ? i : i + 1;   /* even slots came from page i */
            unsigned char want = (unsigned char)(((src ^ o) & 0xff) | 1);
            if ((unsigned char)p[i * PAGE + o] != want || (unsigned char)p[(i + 1) * PAGE + o] != want) return -1;
        }
    }
    return 0;
}

enum { VIA_MMAP, VIA_MREMAP };

static void mesh_one(char *base, int fd, size_t i, int via, int protect) {
    char *a = base + 2 * i * PAGE, *b = a + PAGE;
    if (protect && mprotect(a, 2 * PAGE, PROT_READ) != 0) die("mprotect ro");
    if (protect) {
        /* the copy goes through a writable view of b: b itself is read-only
         * now.  Here a second mapping of the file page (in neap: one fixed
         * writable alias window per mesher thread). */
        static char *win;
        if (!win) win = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        win = mmap(win, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t)((2 * i + 1) * PAGE));
        if (win == MAP_FAILED) die("mmap window");
        copy_live(win, a, 0);
    } else {
        copy_live(b, a, 0);
    }
    int prot = protect ? PROT_READ : PROT_READ | PROT_WRITE;
    if (via == VIA_MMAP) {
        if (mmap(a, PAGE, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)((2 * i + 1) * PAGE)) == MAP_FAILED) die("mmap fixed");
    } else {
        if (mremap(b, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, a) == MAP_FAILED)
            die("mremap dontunmap");
    }
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(2 * i * PAGE), PAGE) != 0) die("punch");
    if (protect && mprotect(a, 2 * PAGE, PROT_READ | PROT_WRITE) != 0) die("mprotect rw");
}

static void run_mesh(size_t pairs, int protect) {
    const char *names[2] = {"mmap(MAP_FIXED|MAP_SHARED)", "mremap(MREMAP_DONTUNMAP)"};
    for (int via = 0; via < 2; via++) {
        size_t npages = 2 * pairs, size = npages * PAGE;
        int fd = new_memfd(size);
        char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) die("mmap");
        fill(base, npages);
        long rss0 = status_kb("VmRSS"), shm0 = status_kb("RssShmem"), vma0 = count_vmas();
        double t = now_ns();
        for (size_t i = 0; i < pairs; i++) mesh_one(base, fd, i, via, protect);
        double per = (now_ns() - t) / pairs / 1000.0;
        long rss1 = status_kb("VmRSS"), shm1 = status_kb("RssShmem"), vma1 = count_vmas();
        int ok = check(base, npages);
        /* a write through either virtual page shows in the other */
        base[0] = 0x55;
        int alias = base[PAGE] == 0x55;
        printf("%s mesh via %-28s %6.2f us/mesh  (%zu meshes)\n", protect ? "protected" : "plain    ", names[via], per,
               pairs);
        printf("    VmRSS %ld -> %ld kB, RssShmem %ld -> %ld kB (expect -%zu kB); VMAs %ld -> %ld; contents %s; "
               "pages aliased %s\n",
               rss0, rss1, shm0, shm1, pairs * 4, vma0, vma1, ok == 0 ? "ok" : "WRONG", alias ? "yes" : "NO");
        munmap(base, size);
        close(fd);
    }
    /* the pieces: what a 4 KiB copy, one mprotect, one mmap, one punch cost */
    size_t n = pairs;
    int fd = new_memfd(2 * n * PAGE);
    char *base = mmap(NULL, 2 * n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    fill(base, 2 * n);
    double t = now_ns();
    for (size_t i = 0; i < n; i++) memcpy(base + (2 * i + 1) * PAGE, base + 2 * i * PAGE, PAGE);
    double c = (now_ns() - t) / n;
    t = now_ns();
    for (size_t i = 0; i < n; i++) mprotect(base + 2 * i * PAGE, 2 * PAGE, PROT_READ);
    double mp = (now_ns() - t) / n;
    for (size_t i = 0; i < n; i++) mprotect(base + 2 * i * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE);
    t = now_ns();
    for (size_t i = 0; i < n; i++)
        mmap(base + 2 * i * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t)((2 * i + 1) * PAGE));
    double mm = (now_ns() - t) / n;
    t = now_ns();
    for (size_t i = 0; i < n; i++)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(2 * i * PAGE), PAGE);
    double pu = (now_ns() - t) / n;
    if (!protect)
        printf("pieces: copy 4 KiB %.2f us, mprotect 2 pages %.2f us, mmap 1 page %.2f us, punch 1 page %.2f us\n",
               c / 1000, mp / 1000, mm / 1000, pu / 1000);
    munmap(base, 2 * n * PAGE);
    close(fd);
}

/* ---- trap -------------------------------------------------------------- */
static char *trap_page;
static void trap_handler(int sig, siginfo_t *si, void *uc) {
    (void)sig, (void)uc;
    char *p = (char *)((uintptr_t)si->si_addr & ~(PAGE - 1));
    if (p != trap_page) _exit(3);
    mprotect(p, PAGE, PROT_READ | PROT_WRITE);
}

static void cmd_trap(size_t n) {
    struct sigaction sa = {0};
    sa.sa_sigaction = trap_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    trap_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    trap_page[0] = 1;
    /* the pair of mprotects alone */
    double t = now_ns();
    for (size_t i = 0; i < n; i++) {
        mprotect(trap_page, PAGE, PROT_READ);
        mprotect(trap_page, PAGE, PROT_READ | PROT_WRITE);
    }
    double pair = (now_ns() - t) / n;
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        mprotect(trap_page, PAGE, PROT_READ);
        *(volatile char *)trap_page = (char)i;   /* faults; the handler unprotects; the write retries */
    }
    double full = (now_ns() - t) / n;
    printf("mprotect RO + RW pair %.2f us; with a write fault + SIGSEGV handler + sigreturn %.2f us: "
           "the trap round trip costs %.2f us\n",
           pair / 1000, full / 1000, (full - pair) / 1000);
    signal(SIGSEGV, SIG_DFL);
}

/* ---- race -------------------------------------------------------------- */
/* The mesher publishes the pair it works on; the handler of a write fault on
 * either page spins (then sleeps) until the mesh is done and returns: the
 * faulting write is retried on the new mapping. */
static _Atomic(uintptr_t) meshing;   /* address of the pair's first page, or 0 */
static _Atomic long waits;
static char *race_base;
static size_t race_pairs;
static _Atomic int race_stop;
static double max_stall_ns;
static uint64_t *shadow;   /* the writer's last value per (pair, slot) */

static void race_handler(int sig, siginfo_t *si, void *uc) {
    (void)sig, (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr & ~(PAGE - 1);
    uintptr_t m = atomic_load(&meshing);
    if (a < (uintptr_t)race_base || a >= (uintptr_t)race_base + 2 * race_pairs * PAGE) {
        /* not ours: neap would chain to the program's previous handler here */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    atomic_fetch_add(&waits, 1);
    /* wait while our page's mesh is under way; a fault that raced the end of
     * the mesh (m already 0) just retries */
    while (m != 0 && (a == m || a == m + PAGE) && atomic_load(&meshing) == m) sched_yield();
}

static void *race_writer(void *arg) {
    (void)arg;
    unsigned x = 12345;
    long writes = 0;
    while (!atomic_load(&race_stop)) {
        x = x * 1103515245 + 12345;
        size_t i = (x >> 8) % race_pairs;
        /* write a live block of page 2i (even slot) and of page 2i+1 (odd slot) */
        size_t slot = ((x >> 20) % 32) * 2;
        double t = now_ns();
        char *pa = race_base + 2 * i * PAGE + slot * 64, *pb = race_base + (2 * i + 1) * PAGE + (slot + 1) * 64;
        uint64_t v = ((uint64_t)i << 32) | (uint64_t)writes;
        memcpy(pa + 8, &v, 8);
        memcpy(pb + 8, &v, 8);
        shadow[i * 64 + slot] = v;
        shadow[i * 64 + slot + 1] = v;
        double d = now_ns() - t;
        if (d > max_stall_ns) max_stall_ns = d;
        writes++;
    }
    return (void *)writes;
}

static void cmd_race(size_t pairs) {
    struct sigaction sa = {0};
    sa.sa_sigaction = race_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    size_t size = 2 * pairs * PAGE;
    int fd = new_memfd(size);
    race_base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    race_pairs = pairs;
    shadow = calloc(pairs * 64, sizeof *shadow);
    fill(race_base, 2 * pairs);
    pthread_t th;
    pthread_create(&th, NULL, race_writer, NULL);
    usleep(20000);
    double t = now_ns();
    for (size_t i = 0; i < pairs; i++) {
        atomic_store(&meshing, (uintptr_t)(race_base + 2 * i * PAGE));
        mesh_one(race_base, fd, i, VIA_MMAP, 1);
        atomic_store(&meshing, 0);
    }
    double per = (now_ns() - t) / pairs / 1000;
    usleep(20000);
    atomic_store(&race_stop, 1);
    void *w;
    pthread_join(th, &w);
    /* after meshing, page 2i and 2i+1 are one page: each of the writer's
     * last values must be there in both views, and the 64-byte slots keep
     * their pattern byte (byte 0) from fill */
    int ok = check(race_base, 2 * pairs) == 0;
    long lost = 0;
    for (size_t i = 0; i < pairs; i++)
        for (size_t slot = 0; slot < 64; slot++) {
            uint64_t v;
            if (!shadow[i * 64 + slot]) continue;
            memcpy(&v, race_base + 2 * i * PAGE + slot * 64 + 8, 8);
            if (v != shadow[i * 64 + slot]) lost++;
        }
    if (lost) ok = 0;
    printf("race: %zu protected meshes under a writer thread: %.2f us/mesh, %ld writer faults waited, writer "
           "did %ld write pairs, its longest write pair %.1f us; lost writes %ld; contents %s\n",
           pairs, per, atomic_load(&waits), (long)w, max_stall_ns / 1000, lost, ok ? "ok" : "WRONG");
    signal(SIGSEGV, SIG_DFL);
}

/* ---- base ------------------------------------------------------------- */
/* for scale: a trivial system call, and the mapping calls on a mapping they
 * do not split (the whole of a one-page mapping) */
static void cmd_base(size_t n) {
    double t = now_ns();
    for (size_t i = 0; i < n; i++) syscall(SYS_getppid);
    double sc = (now_ns() - t) / n;
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        mprotect(p, PAGE, PROT_READ);
        mprotect(p, PAGE, PROT_READ | PROT_WRITE);
    }
    double mp = (now_ns() - t) / n / 2;
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        p[0] = 1;
        madvise(p, PAGE, MADV_DONTNEED);
    }
    double md = (now_ns() - t) / n;
    printf("getppid %.2f us; mprotect of a whole one-page mapping %.2f us; write fault + madvise(DONTNEED) of one "
           "page %.2f us\n",
           sc / 1000, mp / 1000, md / 1000);
}

/* ---- purge ------------------------------------------------------------ */
/* neap purges with MADV_DONTNEED (batched by process_madvise).  On a memfd
 * MAP_SHARED arena that only drops the page-table entries: the file keeps
 * its pages.  Every other page of 64 MiB is purged three ways. */
static void cmd_purge(size_t mib) {
    size_t size = mib << 20, npages = size / PAGE;
    static const char *names[] = {"madvise(MADV_DONTNEED)", "madvise(MADV_REMOVE)", "fallocate(PUNCH_HOLE)",
                                  "process_madvise(MADV_REMOVE)"};
    for (int how = 0; how < 4; how++) {
        int fd = new_memfd(size);
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        memset(p, 1, size);
        struct stat st;
        fstat(fd, &st);
        long shm0 = status_kb("RssShmem"), blk0 = (long)st.st_blocks / 2;
        double t = now_ns();
        int err = 0;
        for (size_t i = 0; i < npages; i += 2) {
            int r = 0;
            if (how == 0) r = madvise(p + i * PAGE, PAGE, MADV_DONTNEED);
            else if (how == 1) r = madvise(p + i * PAGE, PAGE, MADV_REMOVE);
            else if (how == 2) r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(i * PAGE), PAGE);
            else {
                /* a batch of up to 512 ranges per call, as neap batches its purge */
                static int pidfd = -1;
                static struct iovec iov[512];
                static int nio;
                if (pidfd < 0) pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
                iov[nio++] = (struct iovec){p + i * PAGE, PAGE};
                if (nio == 512 || i + 2 >= npages) {
                    long rr = syscall(SYS_process_madvise, pidfd, iov, nio, MADV_REMOVE, 0);
                    if (rr < 0) r = -1;
                    nio = 0;
                }
            }
            if (r != 0) err = errno;
        }
        double per = (now_ns() - t) / (npages / 2);
        fstat(fd, &st);
        {
            printf("  %-30s %5.2f us/page; RssShmem %ld -> %ld kB; the file's pages %ld -> %ld kB; %s\n", names[how],
                   per / 1000, shm0, status_kb("RssShmem"), blk0, (long)st.st_blocks / 2, err ? strerror(err) : "");
        }
        munmap(p, size);
        close(fd);
    }
}

/* ---- bitmap ------------------------------------------------------------ */
/* What an occupancy bitmap costs if it is not kept on the fast path but
 * built when meshing looks for candidates: walk a page's free list (links
 * through the free blocks, in a random order, as after random frees) and
 * set a bit per free block.  npages pages of 16-byte blocks (the longest
 * lists: 252 blocks, 90% free), walked once each, far more than the caches
 * hold. */
static void cmd_bitmap(size_t npages) {
    size_t size = npages * PAGE;
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void **heads = calloc(npages, sizeof *heads);
    unsigned x = 1;
    int idx[256];
    size_t total = 0;
    for (size_t pg = 0; pg < npages; pg++) {
        char *p = base + pg * PAGE;
        int n = 0;
        for (int s = 4; s < 256; s++) {   /* blocks after a 64-byte header */
            x = x * 1103515245 + 12345;
            if ((x >> 16) % 10 != 0) idx[n++] = s;   /* 90% free */
        }
        for (int i = n; i > 1; i--) {
            x = x * 1103515245 + 12345;
            int j = (int)((x >> 8) % (unsigned)i), t = idx[i - 1];
            idx[i - 1] = idx[j], idx[j] = t;
        }
        void *head = NULL;
        for (int i = 0; i < n; i++) {
            void **b = (void **)(p + idx[i] * 16);
            *b = head;
            head = b;
        }
        heads[pg] = head;
        total += (size_t)n;
    }
    uint64_t (*bm)[4] = calloc(npages, sizeof *bm);
    double t = now_ns();
    for (size_t pg = 0; pg < npages; pg++) {
        uintptr_t page = (uintptr_t)base + pg * PAGE;
        uint64_t b[4] = {~0ULL, ~0ULL, ~0ULL, ~0ULL};   /* live unless found free */
        for (void **q = heads[pg]; q; q = *q) {
            unsigned s = (unsigned)(((uintptr_t)q - page) >> 4);
            b[s >> 6] &= ~(1ULL << (s & 63));
        }
        memcpy(bm[pg], b, sizeof b);
    }
    double d = now_ns() - t;
    printf("bitmap from the free list: %.2f us per page of 16-byte blocks (%.1f ns per free block, %zu pages, %.0f "
           "free blocks each)\n",
           d / npages / 1000, d / total, npages, (double)total / npages);
}

/* ---- efault / uffd ----------------------------------------------------- */
/* A write by the kernel (read(2) into a buffer) to a page under write
 * protection does not fault into the handler: the call fails. */
static void cmd_efault(void) {
    int fd = new_memfd(PAGE), pfd[2];
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    p[0] = 1;
    if (pipe(pfd) != 0 || write(pfd[1], "abc", 3) != 3) die("pipe");
    mprotect(p, PAGE, PROT_READ);
    ssize_t r = read(pfd[0], p + 64, 3);
    printf("read(2) into a block of a write-protected page: returns %zd, %s\n", r, r < 0 ? strerror(errno) : "ok");
    /* userfaultfd write protection: a writer (user or kernel) waits in the
     * kernel, no signal; what this kernel and these privileges allow */
    FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
    int unpriv = -1;
    if (f) {
        if (fscanf(f, "%d", &unpriv) != 1) unpriv = -1;
        fclose(f);
    }
    long u = syscall(SYS_userfaultfd, O_CLOEXEC);
    int e1 = errno;
    long um = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    int e2 = errno;
    printf("userfaultfd: vm.unprivileged_userfaultfd=%d; plain %s; UFFD_USER_MODE_ONLY %s\n", unpriv,
           u >= 0 ? "allowed" : strerror(e1), um >= 0 ? "allowed" : strerror(e2));
}

/* ---- fork ----------------------------------------------------------- */
static _Atomic int switch_stop;
static _Atomic uint64_t *switch_page;
static void *switch_writer(void *arg) {
    (void)arg;
    uint64_t n = 0;
    while (!atomic_load(&switch_stop)) atomic_store(&switch_page[0], ++n);
    return (void *)(uintptr_t)n;
}
static void cmd_fork(size_t mib) {
    size_t size = mib << 20;
    int fd = new_memfd(size);
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memset(p, 7, size);
    /* 1. the child's copy: a fresh memfd, its pages written through a
     * temporary mapping, then mapped over the arena (MAP_FIXED) */
    double best = 1e18;
    for (int run = 0; run < 3; run++) {
        double t = now_ns();
        int fd2 = new_memfd(size);
        char *tmp = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        memcpy(tmp, p, size);
        munmap(tmp, size);
        char *q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);   /* stands for MAP_FIXED over p */
        double d = now_ns() - t;
        if (d < best) best = d;
        munmap(q, size);
        close(fd2);
    }
    printf("fork, child copies into a fresh memfd: %.0f us per MiB (%zu MiB)\n", best / 1000 / mib, mib);
    /* the same in a real child, timed by the parent that waits for it */
    double t = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        int fd2 = new_memfd(size);
        char *tmp = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        memcpy(tmp, p, size);
        munmap(tmp, size);
        if (mmap(p, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd2, 0) == MAP_FAILED) _exit(2);
        p[0] = 9;   /* the child's write */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    double d = now_ns() - t;
    printf("  in a forked child, fork to its exit (parent waits): %.0f us per MiB; child's write seen by parent: %s\n",
           d / 1000 / mib, p[0] == 9 ? "YES (wrong)" : "no");
    /* without the copy: the child's write shows in the parent */
    pid = fork();
    if (pid == 0) {
        p[1] = 9;
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("  without the copy, child's write seen by parent: %s\n", p[1] == 9 ? "YES" : "no");
    /* 2. the switch of the mapping to MAP_PRIVATE of the same file (both
     * processes then COW; nothing writes the file any more) */
    best = 1e18;
    double rd = 1e18, wr = 1e18;
    for (int run = 0; run < 3; run++) {
        double t0 = now_ns();
        if (mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) die("private");
        double t1 = now_ns();
        volatile char s = 0;
        for (size_t i = 0; i < size; i += PAGE) s += p[i];
        double t2 = now_ns();
        for (size_t i = 0; i < size; i += PAGE) p[i] = 3;
        double t3 = now_ns();
        if (t1 - t0 < best) best = t1 - t0;
        if (t2 - t1 < rd) rd = t2 - t1;
        if (t3 - t2 < wr) wr = t3 - t2;
        if (mmap(p, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) die("shared");
    }
    printf("fork, switch to MAP_PRIVATE of the same memfd: remap %.1f us per MiB, then first read %.0f us per MiB "
           "(%.0f ns/page), first write (COW) %.0f us per MiB (%.0f ns/page)\n",
           best / 1000 / mib, rd / 1000 / mib, rd / (size / PAGE), wr / 1000 / mib, wr / (size / PAGE));
    /* 2b. the switch under a writer thread loses no write, and after it a
     * fork snapshots: neither process sees the other's later writes */
    {
        if (mmap(p, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) die("shared");
        memset(p, 0, PAGE);
        atomic_store(&switch_stop, 0);
        switch_page = (_Atomic uint64_t *)p;
        pthread_t th;
        pthread_create(&th, NULL, switch_writer, NULL);
        usleep(20000);
        if (mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) die("private");
        usleep(20000);
        atomic_store(&switch_stop, 1);
        void *w;
        pthread_join(th, &w);
        uint64_t seen = atomic_load(&switch_page[0]);
        printf("  switch to MAP_PRIVATE under a writer thread: writer's count %lu, memory's %lu: %s\n",
               (unsigned long)(uintptr_t)w, (unsigned long)seen, seen == (uint64_t)(uintptr_t)w ? "no write lost" : "LOST");
        p[PAGE] = 1;
        pid = fork();
        if (pid == 0) {
            usleep(20000);   /* the parent writes meanwhile */
            int ok = p[PAGE] == 1;
            p[PAGE + 1] = 5;
            _exit(ok ? 0 : 1);
        }
        p[PAGE] = 2;
        waitpid(pid, &st, 0);
        printf("  fork after the switch: child saw the parent's later write: %s; parent saw the child's: %s\n",
               WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "no" : "YES", p[PAGE + 1] == 5 ? "YES" : "no");
    }
    /* 3. what an ordinary fork's COW costs anonymous memory, for scale */
    char *a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(a, size, MADV_NOHUGEPAGE);
    memset(a, 7, size);
    int pfd[2];
    if (pipe(pfd) != 0) die("pipe");
    pid = fork();
    if (pid == 0) {
        char c;
        if (read(pfd[0], &c, 1) < 0) _exit(1);
        _exit(0);
    }
    t = now_ns();
    for (size_t i = 0; i < size; i += PAGE) a[i] = 4;
    d = now_ns() - t;
    if (write(pfd[1], "x", 1) < 0) die("write");
    waitpid(pid, &st, 0);
    printf("for scale, anonymous memory after fork, parent's first write (COW): %.0f us per MiB (%.0f ns/page)\n",
           d / 1000 / mib, d / (size / PAGE));
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(cmd, "fault")) cmd_fault(n ? (size_t)n : 256);
    else if (!strcmp(cmd, "mesh")) run_mesh(n ? (size_t)n : 10000, 0);
    else if (!strcmp(cmd, "protect")) run_mesh(n ? (size_t)n : 10000, 1);
    else if (!strcmp(cmd, "trap")) cmd_trap(n ? (size_t)n : 100000);
    else if (!strcmp(cmd, "race")) cmd_race(n ? (size_t)n : 2000);
    else if (!strcmp(cmd, "base")) cmd_base(n ? (size_t)n : 100000);
    else if (!strcmp(cmd, "purge")) cmd_purge(n ? (size_t)n : 64);
    else if (!strcmp(cmd, "bitmap")) cmd_bitmap(n ? (size_t)n : 50000);
    else if (!strcmp(cmd, "efault")) cmd_efault();
    else if (!strcmp(cmd, "fork")) cmd_fork(n ? (size_t)n : 256);
    else {
        fprintf(stderr, "usage: mech fault|mesh|protect|trap|race|fork [n]\n");
        return 2;
    }
    return 0;
}

/* mesh.c -- meshing (NEAP_MESH=1): two pools that share one physical page,
 * so that scattered survivors pin fewer pages than there are pools.
 *
 *   before                                after
 *   virtual   S [hdr|  a  |     |  b  ]   S [hdr'|  a  |  c  |  b  ]--+
 *   virtual   D [hdr'|     |  c  |     ]   D [hdr'|  a  |  c  |  b  ]--+
 *   file      slot(S)=page  slot(D)=page  slot(D)=page  slot(S)=hole  |
 *                                           ^------ both map it ------+
 *
 *   S and D: one-page pools of one small class (16..512 B) in one arena,
 *   whose live blocks (a, b in S; c in D) sit at different offsets.  S's
 *   live blocks are copied into D's page at the same offsets, S's virtual
 *   page is mapped onto D's slot of the memory file, and S's own slot is
 *   punched: one page of memory goes back and no pointer changes.  Every
 *   pool of a class has its header and blocks at the same offsets, so the
 *   in-page header needs nothing: S's page now reads D's header, and S's
 *   blocks are D's blocks.  kind[S] says ALIAS with D's page index (the
 *   canonical page); S's blocks are freed through the slow path, which
 *   translates them to D's address first (_neap_mesh_canon), so lists only
 *   ever hold canonical addresses.  D may be meshed again (it collects up
 *   to 255 aliases, nalias[D]), as a destination or as a source: a source
 *   with aliases has every view of its page protected, copied once and
 *   mapped onto the destination's slot, so meshing goes on past pairs
 *   (pages of one survivor each merge by the dozen).
 *
 * Who may mesh, and why no fast path can see it.  The owner marks pools on
 * its partial lists COLD at its purge checks (heap.c, neap_heap_cool);
 * a COLD pool's frees take the slow path, and malloc's fast path only uses
 * the direct pool, so once a pool is COLD no fast path of the owner writes
 * it.  The mesher (the owner in neap_trim, or the background thread while
 * it holds the owner's claim: heap.c's handshake keeps the owner out of its
 * slow paths) meshes only COLD pools.  Other threads may still write S:
 * data into live blocks, and frees (a link into the block, then a push on
 * the arena's remote stack).  So S is write-protected while it is copied
 * and remapped; a thread that writes it meanwhile takes a SIGSEGV, and
 * neap's handler waits until the page is meshed and returns, so the write
 * is made again, into the merged page (a view of S, for a source with
 * aliases: all of them are protected).  A remote free whose link went into
 * S before the protection was copied with the block; a free's push comes
 * after its link, so the stack only ever holds blocks the copy holds.  D is
 * not protected: the copy and the new free list go only into offsets that
 * are free in D, which no other thread writes.
 *
 * Invariants (validate.c checks them):
 *   - an ALIAS page's canonical page is COLD, POOL or FULL, a one-page pool
 *     of a small class, in the same arena, itself no alias; nalias[canon]
 *     counts the ALIAS pages naming it; arena.aliases is their sum;
 *   - a pool's live blocks (bitmap of _neap_mesh_live) number its used
 *     count (remote-freed blocks not yet drained count as live);
 *   - only a NEAP_BACK_FILE arena has ALIAS pages made; after a fork they
 *     stay (private copies), and are undone when their pool empties.
 *
 * When a pool with aliases empties (heap.c, neap_pool_emptied), every alias
 * page is mapped back onto its own (punched, so zero) slot and released.
 * fork: FILE arenas become private mappings of their file before the fork
 * (so neither process sees the other's writes), and both processes take a
 * new memory file for new arenas (_neap_mesh_fork_*).
 *
 * Limits, measured in docs/design/meshing.md: every ALIAS page is a mapping
 * of its own (about two per mesh), against vm.max_map_count (65530 by
 * default, and mmap fails for the whole process past it): meshing stops
 * 8192 mappings under the limit.  The process's mappings are counted at
 * every full pass (neap_trim), at the background thread's first pass, and
 * again whenever the estimate (two more per alias since) runs out.  A write by the kernel (read(2) into a block of a
 * page under mesh) fails with EFAULT instead of waiting; the window is one
 * mesh (tens of microseconds) on one page.
 */
#include "core/internal.h"

#include <errno.h>

neap_mstats_t _neap_mstats;
bool _neap_mesh_enabled;

/* The memory file: 4 MiB slots, one per arena; slots of destroyed arenas
 * (punched) are reused.  Guarded by _neap_lock. */
#define NEAP_MFILE_SIZE ((uint64_t)1 << 44)
#define NEAP_MFREE_MAX 1024
static int neap_mfd = -1;
static uint64_t neap_mnext;
static uint64_t neap_mfree[NEAP_MFREE_MAX];
static unsigned neap_mnfree;
static bool neap_mfd_warned;

static pthread_mutex_t neap_mesh_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The page under mesh (write-protected), or 0. */
static _Atomic uintptr_t neap_mesh_busy;
/* The mapping budget: alias pages at most, from the process's mappings
 * counted at the last full pass (_neap_mesh_budget) and two more for every
 * alias page made since, kept NEAP_MESH_MAP_ROOM under the kernel's limit
 * for the program's own mappings (threads, files, libraries). */
#define NEAP_MESH_MAP_ROOM 8192
static long neap_mesh_map_max;
static _Atomic long neap_mesh_alias_max;

void _neap_mesh_init(bool on) {
    if (!on) return;
    if (neap_debug_mode()) {
        _neap_warning("meshing is off", "NEAP_MESH=1 does not go with the debug mode (NEAP_DEBUG_MALLOC=1)");
        return;
    }
    int fd = _neap_os_memfile(NEAP_MFILE_SIZE);
    if (fd < 0) {
        _neap_warning("meshing is off", "no memory file could be made (memfd_create)");
        return;
    }
    neap_mfd = fd;
    neap_mesh_map_max = _neap_os_max_map_count();
    atomic_store(&neap_mesh_alias_max, (neap_mesh_map_max - NEAP_MESH_MAP_ROOM) / 4);   /* until counted */
    _neap_mesh_enabled = true;
}

bool _neap_mesh_file_slot(int *fd, uint64_t *off) {
    if (neap_mfd < 0) return false;
    if (!_neap_os_fd_ok(neap_mfd)) {   /* the program closed it: new arenas are anonymous */
        if (!neap_mfd_warned)
            _neap_warning("meshing stops", "the program closed neap's memory file: new arenas are not meshed");
        neap_mfd_warned = true;
        neap_mfd = -1;
        return false;
    }
    if (neap_mnfree > 0) {
        *off = neap_mfree[--neap_mnfree];
    } else {
        if (neap_mnext + NEAP_ARENA_SIZE > NEAP_MFILE_SIZE) return false;
        *off = neap_mnext;
        neap_mnext += NEAP_ARENA_SIZE;
    }
    *fd = neap_mfd;
    return true;
}

int _neap_mesh_file_fd(void) { return neap_mfd; }

void _neap_mesh_file_release(int fd, uint64_t off) {
    if (fd != neap_mfd || neap_mnfree == NEAP_MFREE_MAX) return;   /* an older file's: never reused */
    neap_mfree[neap_mnfree++] = off;
}

static long neap_mesh_counted_at = -1;   /* alias pages at the last count (mesh lock) */

void _neap_mesh_budget(void) {
    long maps = _neap_os_map_count();
    if (maps < 0) return;
    long aliases = (long)atomic_load_explicit(&_neap_mstats.pages, memory_order_relaxed);
    /* the aliases there are, and room for two mappings per alias beyond
     * (an alias page splits a mapping in three; next to another alias it
     * costs one: about 1.5 a mesh measured, so the count is made again
     * when the estimate runs out) */
    long room = (neap_mesh_map_max - NEAP_MESH_MAP_ROOM - maps) / 2;
    atomic_store(&neap_mesh_alias_max, aliases + (room > 0 ? room : 0));
    neap_mesh_counted_at = aliases;
}

void _neap_mesh_lock(void) { pthread_mutex_lock(&neap_mesh_mutex); }
bool _neap_mesh_trylock(void) { return pthread_mutex_trylock(&neap_mesh_mutex) == 0; }
void _neap_mesh_unlock(void) { pthread_mutex_unlock(&neap_mesh_mutex); }

/* ---------------------------------------------------------------------------
 * The fault handler (os.c installs it, chained to the program's)
 * ------------------------------------------------------------------------- */
static __thread uintptr_t neap_fault_page;
static __thread unsigned neap_fault_count;

/* A write into a page of an arena that is not writable can only be a
 * mesh's: the page under mesh now (wait until it is done), or one done
 * already whose fault reached its handler late (a thread preempted between
 * the fault and its handler): the write is retried.  A page that keeps
 * faulting with no mesh on it is not meshing's (64 tries), nor is any
 * other fault: the program's own action runs. */
static bool neap_mesh_fault(uintptr_t addr, bool access) {
    if (!access || _neap_map_kind(addr) != NEAP_MAP_ARENA) return false;
    uintptr_t page = addr & ~NEAP_PAGE_MASK;
    uintptr_t busy = atomic_load(&neap_mesh_busy);
    /* the page under mesh, or one of its aliases (their kind names it) */
    if (busy != 0 && (busy == page || busy == (_neap_mesh_canon(page) & ~NEAP_PAGE_MASK))) {
        while (atomic_load(&neap_mesh_busy) == busy) _neap_os_yield();
        neap_fault_page = 0;
        return true;
    }
    if (neap_fault_page != page) {
        neap_fault_page = page;
        neap_fault_count = 0;
    }
    if (++neap_fault_count > 64) {
        neap_fault_page = 0;
        return false;
    }
    if (neap_fault_count > 1) _neap_os_yield();
    return true;
}

/* The handler installed and still the process's own: a program that put
 * its own in place of neap's would take meshing's faults for crashes. */
static bool neap_mesh_handler_ok(void) {
    static int installed, replaced;
    if (!installed) {
        installed = 1;
        if (!_neap_os_fault_install(neap_mesh_fault)) {
            _neap_warning("meshing stops", "the fault handler could not be installed (sigaction)");
            return false;
        }
    }
    if (_neap_os_fault_ok()) return true;
    if (!replaced)
        _neap_warning("meshing stops",
                      "the program put its own SIGSEGV handler in place of neap's (installed at the first mesh)");
    replaced = 1;
    return false;
}

/* ---------------------------------------------------------------------------
 * Live blocks and the mesh of two pools
 * ------------------------------------------------------------------------- */
static inline size_t neap_block_index(const neap_pool_t *pool, const neap_block_t *b) {
    return _neap_pool_block_index(pool, (uint32_t)((uintptr_t)b - (uintptr_t)pool) - pool->first);
}

size_t _neap_mesh_live(const neap_pool_t *pool, uint64_t live[4]) {
    const neap_class_t *k = &_neap_class[pool->cls];
    size_t bumped = neap_load_relaxed(pool->bumped);
    neap_assert(k->pages == 1 && k->capacity <= 256 && bumped <= k->capacity);
    for (size_t w = 0; w < 4; w++) {
        size_t lo = w * 64;
        live[w] = bumped <= lo ? 0 : bumped >= lo + 64 ? ~0ull : (1ull << (bumped - lo)) - 1;
    }
    size_t steps = 0;
    for (const neap_block_t *b = pool->free; b && steps <= k->capacity; b = _neap_pool_link(pool, b), steps++) {
        size_t i = neap_block_index(pool, b);
        live[i / 64] &= ~(1ull << (i % 64));
    }
    for (const neap_block_t *b = pool->local_free; b && steps <= k->capacity; b = _neap_pool_link(pool, b), steps++) {
        size_t i = neap_block_index(pool, b);
        live[i / 64] &= ~(1ull << (i % 64));
    }
    size_t n = 0;
    for (size_t w = 0; w < 4; w++) n += (size_t)__builtin_popcountll(live[w]);
    return n;
}

/* dst's free lists made anew: every block not in live, in address order,
 * on the free list; local_free empty, every block carved. */
static void neap_pool_relist(neap_pool_t *dst, const uint64_t live[4]) {
    const neap_class_t *k = &_neap_class[dst->cls];
    neap_block_t *head = NULL;
    for (size_t i = k->capacity; i-- > 0;) {
        if ((live[i / 64] >> (i % 64)) & 1) continue;
        neap_block_t *b = (neap_block_t *)((char *)dst + k->first + i * k->size);
        _neap_link_set(b, head);
#if NEAP_HARDENED
        b->freed = _neap_freed_tag(b);
#endif
        head = b;
    }
    dst->free = head;
    dst->local_free = NULL;
    neap_store_relaxed(dst->bumped, k->capacity);
}

/* The copy reads blocks other threads wrote and the mesher never
 * synchronised with: the write protection orders them, which a race
 * detector cannot see.  So it copies word by word, in code the detector
 * does not instrument (a call of memcpy would be intercepted). */
__attribute__((no_sanitize("thread"), optimize("no-tree-loop-distribute-patterns"))) static void
neap_copy_blocks(neap_pool_t *dst, const neap_pool_t *src, const uint64_t live[4]) {
    const neap_class_t *k = &_neap_class[dst->cls];
    for (size_t w = 0; w < 4; w++) {
        for (uint64_t m = live[w]; m; m &= m - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(m);
            size_t off = k->first + i * k->size;
            uint64_t *d = (uint64_t *)((char *)dst + off);
            const uint64_t *s = (const uint64_t *)((const char *)src + off);
            for (size_t j = 0; j < k->size / 8; j++) d[j] = s[j];
        }
    }
}

/* The virtual pages that map src's physical page: src's own and its
 * aliases (a source meshed before as a destination); their count. */
static size_t neap_src_views(const neap_arena_t *a, size_t si, uint16_t *view) {
    size_t n = 0;
    view[n++] = (uint16_t)si;
    for (size_t j = NEAP_META_PAGES; j < NEAP_ARENA_PAGES && n <= a->nalias[si]; j++)
        if (_neap_kind_get(a, j) == NEAP_PK(NEAP_PS_ALIAS, si)) view[n++] = (uint16_t)j;
    return n;
}

static inline void *neap_view(const neap_arena_t *a, size_t j) { return (void *)_neap_page_addr(a, j); }
static inline uint64_t neap_slot(const neap_arena_t *a, size_t j) {
    return a->file_off + ((uint64_t)j << NEAP_PAGE_SHIFT);
}

bool _neap_mesh_pair(neap_pool_t *dst, neap_pool_t *src) {
    neap_arena_t *a = _neap_arena_of((uintptr_t)dst);
    size_t di = _neap_page_index((uintptr_t)dst), si = _neap_page_index((uintptr_t)src);
    neap_assert(_neap_arena_of((uintptr_t)src) == a && di != si && dst->cls == src->cls);
    if (neap_arena_backing(a) != NEAP_BACK_FILE || (size_t)a->nalias[di] + a->nalias[si] + 1 > 255) return false;
    long aliases = (long)atomic_load_explicit(&_neap_mstats.pages, memory_order_relaxed);
    if (aliases >= atomic_load_explicit(&neap_mesh_alias_max, memory_order_relaxed)) {
        /* the estimate ran out: count again, once for so many aliases */
        if (aliases == neap_mesh_counted_at) return false;
        _neap_mesh_budget();
        if (aliases >= atomic_load_explicit(&neap_mesh_alias_max, memory_order_relaxed)) return false;
    }
    uint64_t ld[4], ls[4];
    if (_neap_mesh_live(dst, ld) != dst->used || _neap_mesh_live(src, ls) != src->used) return false;
    for (size_t w = 0; w < 4; w++)
        if (ld[w] & ls[w]) return false;
    if (!neap_mesh_handler_ok()) return false;
    uint64_t t0 = _neap_os_clock_ns();
    uint16_t view[256];
    size_t nv = neap_src_views(a, si, view);
    neap_assert(nv == (size_t)a->nalias[si] + 1);
    /* every view of src's page read-only: the program's writes to src's
     * blocks wait in the fault handler until they can go to dst's page */
    atomic_store(&neap_mesh_busy, (uintptr_t)src);
    size_t prot = 0;
    while (prot < nv && _neap_os_protect(neap_view(a, view[prot]), NEAP_PAGE_SIZE, false)) prot++;
    /* the layers above set flags from any thread: one set before the
     * protection is seen now, and none can come after it.  Two pools mesh
     * if neither has a flag, or both only REPORT_ALL (every free reported:
     * an exact trace's pools), which the merged pool keeps; WATCH names one
     * block of one pool, which a merge would lose */
    uint16_t sf = __atomic_load_n(&src->flags, __ATOMIC_ACQUIRE), df = __atomic_load_n(&dst->flags, __ATOMIC_ACQUIRE);
    bool ok = prot == nv && sf == df && (sf & ~NEAP_POOL_REPORT_ALL) == 0;
    size_t moved = 0;   /* views mapped onto dst's slot */
    if (ok) {
        uint64_t both[4];
        for (size_t w = 0; w < 4; w++) both[w] = ld[w] | ls[w];
        neap_copy_blocks(dst, src, ls);
        neap_pool_relist(dst, both);
        dst->used = (uint16_t)(dst->used + src->used);
        while (moved < nv && _neap_os_map_file_page(neap_view(a, view[moved]), a->file_fd, neap_slot(a, di)))
            moved++;
        if (moved < nv) {   /* as it was: the views on src's slot (not punched yet), dst without src's blocks */
            ok = false;
            for (size_t k = 0; k < moved; k++)
                if (!_neap_os_map_file_fixed(neap_view(a, view[k]), NEAP_PAGE_SIZE, a->file_fd, neap_slot(a, si), false))
                    _neap_fatal_pointer("mesh", neap_view(a, view[k]), "a page could not be mapped back (mmap failed)");
            dst->used = (uint16_t)(dst->used - src->used);
            neap_pool_relist(dst, ld);
        }
    }
    if (ok) {
        for (size_t k = 0; k < nv; k++) _neap_kind_set(a, view[k], NEAP_PK(NEAP_PS_ALIAS, di));
        a->nalias[di] = (uint8_t)(a->nalias[di] + nv);
        a->nalias[si] = 0;
        a->aliases++;
    } else {
        for (size_t k = 0; k < prot; k++) _neap_os_protect(neap_view(a, view[k]), NEAP_PAGE_SIZE, true);
    }
    atomic_store(&neap_mesh_busy, 0);
    if (ok) {
        _neap_os_punch(a->file_fd, neap_slot(a, si), NEAP_PAGE_SIZE);
        atomic_fetch_add_explicit(&_neap_mstats.meshes, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&_neap_mstats.pages, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&_neap_mstats.ns, _neap_os_clock_ns() - t0, memory_order_relaxed);
    return ok;
}

void _neap_mesh_unmesh_page(neap_arena_t *a, size_t j) {
    uint16_t v = _neap_kind_get(a, j);
    neap_assert(NEAP_PK_KIND(v) == NEAP_PS_ALIAS);
    size_t di = NEAP_PK_COUNT(v);
    void *page = (void *)_neap_page_addr(a, j);
    _neap_mesh_lock();   /* not while a fork turns the arena private */
    bool ok;
    if (neap_arena_backing(a) == NEAP_BACK_FILE) {
        /* its own slot, punched when it was meshed: zero */
        ok = _neap_os_map_file_fixed(page, NEAP_PAGE_SIZE, a->file_fd, a->file_off + ((uint64_t)j << NEAP_PAGE_SHIFT), false);
    } else {
        ok = _neap_os_map_anon_fixed(page, NEAP_PAGE_SIZE);
    }
    _neap_mesh_unlock();
    if (!ok) _neap_warning("an alias page could not be given its own page back", "mmap failed; its memory stays shared");
    neap_assert(a->nalias[di] > 0 && a->aliases > 0);
    a->nalias[di]--;
    a->aliases--;
    atomic_fetch_sub_explicit(&_neap_mstats.pages, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&_neap_mstats.unmeshes, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------
 * fork
 * ------------------------------------------------------------------------- */
extern NEAP_INTERNAL neap_arena_t *_neap_all_arenas;

void _neap_mesh_fork_prepare(void) {
    if (!neap_mesh_on()) return;
    for (neap_arena_t *a = _neap_all_arenas; a; a = a->gnext) {
        if (neap_arena_backing(a) != NEAP_BACK_FILE) continue;
        /* stretches of pages at their own slots, and alias pages at their
         * canonical page's */
        size_t i = 0;
        bool ok = true;
        while (i < NEAP_ARENA_PAGES) {
            uint16_t v = _neap_kind_get(a, i);
            size_t j = i + 1, slot = i;
            if (NEAP_PK_KIND(v) == NEAP_PS_ALIAS) {
                slot = NEAP_PK_COUNT(v);
            } else {
                while (j < NEAP_ARENA_PAGES && NEAP_PK_KIND(_neap_kind_get(a, j)) != NEAP_PS_ALIAS) j++;
            }
            ok &= _neap_os_map_file_fixed((void *)_neap_page_addr(a, i), (j - i) << NEAP_PAGE_SHIFT, a->file_fd,
                                          a->file_off + ((uint64_t)slot << NEAP_PAGE_SHIFT), true);
            i = j;
        }
        if (!ok) _neap_warning("fork: an arena could not be made private", "mmap failed; parent and child may share its pages");
        neap_arena_set_backing(a, NEAP_BACK_PRIVATE);
    }
}

void _neap_mesh_fork_after(bool child) {
    if (!neap_mesh_on() || !child) return;
    /* The parent goes on with its file: the arenas the child maps are
     * private now and their slots never punched nor handed out again (a
     * destroyed PRIVATE arena keeps its slot), so its new arenas take slots
     * the child never maps.  The child takes a file of its own, or the two
     * would hand out the same fresh slots; the old file lives on in the
     * mappings of its private arenas. */
    if (neap_mfd >= 0) _neap_os_close(neap_mfd);
    neap_mfd = _neap_os_memfile(NEAP_MFILE_SIZE);
    neap_mnext = 0;
    neap_mnfree = 0;
    if (neap_mfd < 0) _neap_warning("meshing stops", "no memory file after fork: new arenas are not meshed");
}

/* stats.c -- statistics: a count of every arena's pools and runs, printed
 * the way sys._debugmallocstats prints pymalloc's, and the process's memory
 * as the kernel sees it.
 *
 *   _neap_stats_collect, from any thread:
 *     the caller's own heap   entered as a slow path enters it (so the
 *                             background purge keeps off), its arenas
 *                             counted: exact
 *     other live heaps        the tally each owner counted of its own
 *                             arenas (under a sequence lock: whole), and
 *                             dirty_pub (relaxed atomics);
 *                             the reader asks (NEAP_REQ_TALLY) and the owner
 *                             counts again on its next allocation slow path
 *                             (heap.c): a stale count, never a racy read
 *     orphan arenas           counted under the orphan lock
 *     zombie arenas           (a forked child's, of threads that did not
 *                             come along) counted under _neap_lock: nothing
 *                             writes them
 *     process-wide counters   _neap_gstats, and _neap_mstats of meshing
 *                             (relaxed atomics)
 *
 * Counting an arena: its kind[] tells its pools and large runs, each pool's
 * header (in the pool's first page) its class and blocks in use.  Those are
 * written without atomics by the owner's fast paths, so only the owner (or
 * the holder of the orphan lock) reads them.  Printing formats into stack
 * buffers and writes to the stream's descriptor: no allocation.
 */
#include "core/internal.h"

#include <stdlib.h>

extern NEAP_INTERNAL neap_arena_t *_neap_all_arenas;
extern NEAP_INTERNAL neap_heap_t *_neap_all_heaps;
extern NEAP_INTERNAL pthread_mutex_t _neap_orphan_lock;
extern NEAP_INTERNAL neap_arena_t *_neap_orphans;

void _neap_tally_arena(const neap_arena_t *a, neap_tally_t *t) {
    t->pages_used += a->pages_used;
    for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES; i++) {
        uint16_t v = _neap_kind_get(a, i);
        unsigned state = NEAP_PK_KIND(v);
        if (state == NEAP_PS_LARGE) {
            t->pools++;
            t->large++;
            t->bytes_live += NEAP_PK_COUNT(v) << NEAP_PAGE_SHIFT;
        } else if (state == NEAP_PS_BLOCK || state == NEAP_PS_SPARE) {
            size_t cls = NEAP_PK_COUNT(v);
            if (cls == 0 || cls > NEAP_CLASS_MAX) continue;
            t->pools++;
            t->cls_pools[cls]++;
            if (state == NEAP_PS_BLOCK) {
                t->cls_used[cls]++;
                t->bytes_live += _neap_class[cls].size;
            } else {
                t->cls_free[cls]++;
            }
        } else if (state == NEAP_PS_POOL || state == NEAP_PS_FULL || state == NEAP_PS_COLD) {
            /* the header in the pool's head page (an ALIAS page's blocks
             * are its canonical pool's, counted there) */
            const neap_pool_t *pool = (const neap_pool_t *)_neap_page_addr(a, i);
            size_t cls = pool->cls;
            if (cls == 0 || cls > NEAP_CLASS_MAX) continue;
            uint32_t used = pool->used;
            /* a direct pool's count carries 1 more (heap.c, neap_set_direct);
             * the owner's direct[] is read by the owner, or with it held */
            const neap_heap_t *owner = __atomic_load_n(&a->owner, __ATOMIC_RELAXED);
            if (owner != NULL && used > 0 && owner->direct[cls] == pool) used--;
            uint32_t capacity = _neap_class[cls].capacity;
            if (used > capacity) used = capacity;
            t->pools++;
            t->cls_pools[cls]++;
            t->cls_used[cls] += used;
            t->cls_free[cls] += capacity - used;
            t->bytes_live += (size_t)used * _neap_class[cls].size;
        }
    }
}

/* The published tally is a sequence lock without fences: the owner makes
 * tally_seq odd, stores the fields with release (each orders the odd
 * number before it), then makes it even with release (the fields before
 * it).  A reader loads the number (acquire), the fields (acquire: a field
 * of a later round makes the second look see the number move), the number
 * again, and starts over if it moved or was odd.  x86-64: plain moves. */
#define NEAP_PUT(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELEASE)
#define NEAP_GET(field) __atomic_load_n(&(field), __ATOMIC_ACQUIRE)

void _neap_tally_publish(neap_heap_t *h) {
    neap_tally_t t;
    memset(&t, 0, sizeof t);
    for (const neap_arena_t *a = h->arenas; a; a = a->hnext) _neap_tally_arena(a, &t);
    unsigned seq = atomic_load_explicit(&h->tally_seq, memory_order_relaxed);
    atomic_store_explicit(&h->tally_seq, seq + 1, memory_order_relaxed);
    NEAP_PUT(h->tally.pages_used, t.pages_used);
    NEAP_PUT(h->tally.pools, t.pools);
    NEAP_PUT(h->tally.large, t.large);
    NEAP_PUT(h->tally.bytes_live, t.bytes_live);
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        NEAP_PUT(h->tally.cls_pools[c], t.cls_pools[c]);
        NEAP_PUT(h->tally.cls_used[c], t.cls_used[c]);
        NEAP_PUT(h->tally.cls_free[c], t.cls_free[c]);
    }
    atomic_store_explicit(&h->tally_seq, seq + 2, memory_order_release);
}

/* h's published tally, whole (another thread's heap). */
static void neap_tally_read(neap_heap_t *h, neap_tally_t *t) {
    for (unsigned tries = 0;; tries++) {
        unsigned seq = atomic_load_explicit(&h->tally_seq, memory_order_acquire);
        if (seq % 2 == 0) {
            t->pages_used = NEAP_GET(h->tally.pages_used);
            t->pools = NEAP_GET(h->tally.pools);
            t->large = NEAP_GET(h->tally.large);
            t->bytes_live = NEAP_GET(h->tally.bytes_live);
            for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
                t->cls_pools[c] = NEAP_GET(h->tally.cls_pools[c]);
                t->cls_used[c] = NEAP_GET(h->tally.cls_used[c]);
                t->cls_free[c] = NEAP_GET(h->tally.cls_free[c]);
            }
            if (atomic_load_explicit(&h->tally_seq, memory_order_relaxed) == seq) return;
        }
        if (tries >= 8) _neap_os_yield();   /* the owner was switched out mid-write */
    }
}

/* Adds the tally t to out. */
static void neap_stats_add(neap_stats_t *out, const neap_tally_t *t) {
    out->pages_used += t->pages_used;
    out->pools_current += t->pools;
    out->large_current += t->large;
    out->bytes_live += t->bytes_live;
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        out->classes[c - 1].pools += t->cls_pools[c];
        out->classes[c - 1].blocks_used += t->cls_used[c];
        out->classes[c - 1].blocks_free += t->cls_free[c];
    }
}

void _neap_stats_collect(neap_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!atomic_load_explicit(&_neap_initialized, memory_order_acquire)) _neap_process_init();
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) out->classes[c - 1].block_size = _neap_class[c].size;
    neap_tally_t t;
    /* the caller's own heap, exact: entered, no purge changes it meanwhile
     * (taken before _neap_lock, as every slow path does) */
    neap_heap_t *self = _neap_tl_heap;
    if (self != &_neap_heap_empty) {
        /* called from inside one of its slow paths (a hook): entered already */
        bool inside = atomic_load_explicit(&self->busy, memory_order_relaxed);
        memset(&t, 0, sizeof t);
        if (!inside) _neap_heap_enter(self);
        for (const neap_arena_t *a = self->arenas; a; a = a->hnext) _neap_tally_arena(a, &t);
        out->pages_dirty += self->dirty_pages;
        for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) out->classes[c - 1].pools_made += self->pools_made[c];
        if (!inside) _neap_heap_leave(self);
        neap_stats_add(out, &t);
    }
    pthread_mutex_lock(&_neap_lock);
    /* pools made: by heaps gone, then by each live one (a heap's count moves
     * to the global one as it leaves the list, both under _neap_lock) */
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++)
        out->classes[c - 1].pools_made += atomic_load_explicit(&_neap_gstats.pools_made[c], memory_order_relaxed);
    for (neap_heap_t *h = _neap_all_heaps; h; h = h->gnext) {
        if (h == self) continue;
        neap_tally_read(h, &t);
        neap_stats_add(out, &t);
        out->pages_dirty += atomic_load_explicit(&h->dirty_pub, memory_order_relaxed);
        for (size_t c = 1; c <= NEAP_CLASS_MAX; c++)
            out->classes[c - 1].pools_made += neap_load_relaxed(h->pools_made[c]);
        if (!(atomic_load_explicit(&h->requests, memory_order_relaxed) & (int)NEAP_REQ_TALLY))
            atomic_fetch_or_explicit(&h->requests, (int)NEAP_REQ_TALLY, memory_order_relaxed);
    }
    /* a forked child's zombie arenas (no thread writes them) */
    memset(&t, 0, sizeof t);
    for (neap_arena_t *a = _neap_all_arenas; a; a = a->gnext) {
        if (!a->zombie) continue;
        _neap_tally_arena(a, &t);
        out->pages_dirty += a->pages_dirty;
    }
    pthread_mutex_unlock(&_neap_lock);
    neap_stats_add(out, &t);
    /* orphans: written under the orphan lock only */
    memset(&t, 0, sizeof t);
    pthread_mutex_lock(&_neap_orphan_lock);
    for (const neap_arena_t *a = _neap_orphans; a; a = a->hnext) {
        _neap_tally_arena(a, &t);
        out->pages_dirty += a->pages_dirty;
    }
    pthread_mutex_unlock(&_neap_orphan_lock);
    neap_stats_add(out, &t);
    out->bytes_in_pools = out->pages_used << NEAP_PAGE_SHIFT;
    out->arenas_allocated = atomic_load(&_neap_gstats.arenas_allocated);
    out->arenas_freed = atomic_load(&_neap_gstats.arenas_freed);
    out->arenas_current = atomic_load(&_neap_gstats.arenas_current);
    out->arenas_highwater = atomic_load(&_neap_gstats.arenas_highwater);
    out->bytes_huge = atomic_load(&_neap_gstats.huge_bytes);
    out->huge_current = atomic_load(&_neap_gstats.huge_current);
    out->bytes_huge_cached = atomic_load(&_neap_gstats.huge_cached);
    out->bytes_live += out->bytes_huge;
    out->bytes_mapped =
        out->arenas_current * (size_t)NEAP_ARENA_SIZE + out->bytes_huge + out->bytes_huge_cached;
    out->bytes_purged = atomic_load(&_neap_gstats.bytes_purged);
    out->bytes_unmapped = atomic_load(&_neap_gstats.bytes_unmapped);
    out->heaps_current = atomic_load(&_neap_gstats.heaps_current);
    out->arenas_orphaned = atomic_load(&_neap_gstats.arenas_orphaned);
    out->mesh_pages = atomic_load_explicit(&_neap_mstats.pages, memory_order_relaxed);
    out->meshes = atomic_load_explicit(&_neap_mstats.meshes, memory_order_relaxed);
    out->unmeshes = atomic_load_explicit(&_neap_mstats.unmeshes, memory_order_relaxed);
    out->mesh_ns = atomic_load_explicit(&_neap_mstats.ns, memory_order_relaxed);
}

void neap_stats_get(neap_stats_t *out) {
    if (out) _neap_stats_collect(out);
}

static void neap_line_size(neap_buf_t *b, const char *label, size_t bytes) {
    _neap_buf_str(b, label);
    _neap_buf_size(b, bytes, 12);
    _neap_buf_str(b, "\n");
}

static void neap_line_count(neap_buf_t *b, const char *label, size_t n) {
    _neap_buf_str(b, label);
    _neap_buf_u(b, n, 12);
    _neap_buf_str(b, "\n");
}

/* n and a noun, singular or plural: "1 page", "12 pages". */
static void neap_count_of(neap_buf_t *b, size_t n, const char *one, const char *many) {
    _neap_buf_u(b, n, 0);
    _neap_buf_str(b, " ");
    _neap_buf_str(b, n == 1 ? one : many);
}

/* With NEAP_MESH: what meshing saved and cost, on one line. */
static void neap_line_mesh(neap_buf_t *b, const neap_stats_t *st) {
    _neap_buf_str(b, "meshing                 ");
    neap_count_of(b, st->mesh_pages, "page shares", "pages share");
    _neap_buf_str(b, " a physical page (");
    _neap_buf_size(b, (unsigned long long)st->mesh_pages << NEAP_PAGE_SHIFT, 0);
    _neap_buf_str(b, " saved), ");
    neap_count_of(b, st->meshes, "mesh", "meshes");
    _neap_buf_str(b, ", ");
    _neap_buf_u(b, st->unmeshes, 0);
    _neap_buf_str(b, " unmeshed, ");
    /* seconds with two decimals, in integers */
    _neap_buf_u(b, st->mesh_ns / 1000000000u, 0);
    _neap_buf_str(b, ".");
    _neap_buf_u(b, st->mesh_ns / 100000000u % 10, 0);
    _neap_buf_u(b, st->mesh_ns / 10000000u % 10, 0);
    _neap_buf_str(b, " s spent\n");
}

static void neap_flush(int fd, FILE *f, neap_buf_t *b) {
    if (fd >= 0) _neap_os_write(fd, b->p, b->len);
    else fputs(b->p, f);
    b->len = 0;
    b->p[0] = 0;
}

void neap_stats_print(FILE *f) {
    neap_stats_t st;
    _neap_stats_collect(&st);
    neap_process_memory_t pm;
    int have_pm = neap_process_memory(&pm) == 0;

    int fd = 2;
    if (f != NULL) {
        fflush(f);
        fd = fileno(f);
    } else if (neap_opt(NEAP_OPTION_STATS_FD) >= 0) {
        fd = (int)neap_opt(NEAP_OPTION_STATS_FD);
    }
    char text[2048];
    neap_buf_t b = {text, 0, sizeof text};
    text[0] = 0;
    _neap_buf_str(&b, "neap " NEAP_VERSION " statistics\n");
    _neap_buf_str(&b, "class   size     pools   blocks used   blocks free   usage\n");
    neap_flush(fd, f, &b);
    for (size_t c = 0; c < NEAP_CLASS_MAX; c++) {
        const neap_class_stats_t *cs = &st.classes[c];
        if (cs->pools == 0) continue;
        _neap_buf_u(&b, c + 1, 5);
        _neap_buf_u(&b, cs->block_size, 7);
        _neap_buf_u(&b, cs->pools, 10);
        _neap_buf_u(&b, cs->blocks_used, 14);
        _neap_buf_u(&b, cs->blocks_free, 14);
        size_t total = cs->blocks_used + cs->blocks_free;
        _neap_buf_u(&b, total ? cs->blocks_used * 100 / total : 0, 7);
        _neap_buf_str(&b, "%\n");
        if (b.len > sizeof text - 128) neap_flush(fd, f, &b);
    }
    neap_flush(fd, f, &b);
    neap_line_count(&b, "arenas allocated        ", st.arenas_allocated);
    neap_line_count(&b, "arenas freed            ", st.arenas_freed);
    neap_line_count(&b, "arenas current          ", st.arenas_current);
    neap_line_count(&b, "arenas high-water       ", st.arenas_highwater);
    neap_line_count(&b, "arenas orphaned         ", st.arenas_orphaned);
    neap_line_count(&b, "pools in use            ", st.pools_current);
    neap_line_count(&b, "large blocks            ", st.large_current);
    neap_line_count(&b, "huge blocks             ", st.huge_current);
    neap_line_count(&b, "thread heaps            ", st.heaps_current);
    neap_line_size(&b, "bytes live              ", st.bytes_live);
    neap_line_size(&b, "bytes in pools          ", st.bytes_in_pools);
    neap_line_size(&b, "bytes in huge blocks    ", st.bytes_huge);
    neap_line_size(&b, "empty, not yet returned ", st.pages_dirty << NEAP_PAGE_SHIFT);
    neap_line_size(&b, "huge, cached for reuse  ", st.bytes_huge_cached);
    neap_line_size(&b, "address space mapped    ", st.bytes_mapped);
    neap_line_size(&b, "given back (madvise)    ", st.bytes_purged);
    neap_line_size(&b, "given back (munmap)     ", st.bytes_unmapped);
    if (neap_opt(NEAP_OPTION_MESH)) neap_line_mesh(&b, &st);
    if (have_pm) {
        neap_line_size(&b, "process RSS             ", pm.rss);
        neap_line_size(&b, "process peak RSS        ", pm.peak_rss);
        neap_line_size(&b, "process virtual size    ", pm.vsize);
    }
    neap_flush(fd, f, &b);
}

/* Value of a "Key:   1234 kB" line of /proc/self/status, in bytes. */
static bool neap_status_field(const char *text, const char *key, size_t *out) {
    size_t klen = strlen(key);
    for (const char *line = text; *line; ) {
        if (strncmp(line, key, klen) == 0) {
            const char *p = line + klen;
            while (*p == ' ' || *p == '\t') p++;
            size_t v = 0;
            while (*p >= '0' && *p <= '9') v = v * 10 + (size_t)(*p++ - '0');
            *out = v * 1024;
            return true;
        }
        const char *nl = strchr(line, '\n');
        if (!nl) break;
        line = nl + 1;
    }
    return false;
}

int neap_process_memory(neap_process_memory_t *out) {
    char text[4096];
    if (out == NULL) return -1;
    /* the calling thread's view of the process's memory: /proc/self is the
     * main thread's, and a main thread that ended by pthread_exit shows no
     * Vm lines (its own memory is gone, the process's is not) */
    if (_neap_os_read_file("/proc/thread-self/status", text, sizeof text) <= 0 &&
        _neap_os_read_file("/proc/self/status", text, sizeof text) <= 0)
        return -1;
    memset(out, 0, sizeof *out);
    bool ok = neap_status_field(text, "VmRSS:", &out->rss);
    ok &= neap_status_field(text, "VmHWM:", &out->peak_rss);
    ok &= neap_status_field(text, "VmSize:", &out->vsize);
    return ok ? 0 : -1;
}

/* stats.c -- statistics: a snapshot of every arena, printed the way
 * sys._debugmallocstats prints pymalloc's, and the process's memory as the
 * kernel sees it.
 *
 * The snapshot walks all arenas under _neap_lock, which keeps them mapped:
 * each arena's kind[] tells its pools and large runs, and each pool's header
 * (in the pool's first page) its class and blocks in use.  Those belong to
 * their owner threads, so counts of other threads may be a few operations
 * stale.  Printing formats into stack
 * buffers and writes to the stream's descriptor: no allocation.
 */
#include "core/internal.h"

#include <stdlib.h>

extern NEAP_INTERNAL neap_arena_t *_neap_all_arenas;

void _neap_stats_collect(neap_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!atomic_load_explicit(&_neap_initialized, memory_order_acquire)) _neap_process_init();
    for (size_t c = 1; c <= NEAP_CLASS_MAX; c++) {
        out->classes[c - 1].block_size = _neap_class[c].size;
        out->classes[c - 1].pools_made = atomic_load_explicit(&_neap_gstats.pools_made[c], memory_order_relaxed);
    }
    pthread_mutex_lock(&_neap_lock);
    for (neap_arena_t *a = _neap_all_arenas; a; a = a->gnext) {
        out->pages_used += __atomic_load_n(&a->pages_used, __ATOMIC_RELAXED);
        out->pages_dirty += __atomic_load_n(&a->pages_dirty, __ATOMIC_RELAXED);
        for (size_t i = NEAP_META_PAGES; i < NEAP_ARENA_PAGES; i++) {
            uint16_t v = _neap_kind_get(a, i);
            unsigned state = NEAP_PK_KIND(v);
            if (state == NEAP_PS_LARGE) {
                out->pools_current++;
                out->large_current++;
                out->bytes_live += NEAP_PK_COUNT(v) << NEAP_PAGE_SHIFT;
            } else if (state == NEAP_PS_BLOCK || state == NEAP_PS_SPARE) {
                size_t cls = NEAP_PK_COUNT(v);
                if (cls == 0 || cls > NEAP_CLASS_MAX) continue;
                neap_class_stats_t *cs = &out->classes[cls - 1];
                out->pools_current++;
                cs->pools++;
                if (state == NEAP_PS_BLOCK) {
                    cs->blocks_used++;
                    out->bytes_live += cs->block_size;
                } else {
                    cs->blocks_free++;
                }
            } else if (state == NEAP_PS_POOL || state == NEAP_PS_FULL) {
                /* the header in the pool's head page; its owner may be
                 * retiring the pool right now, hence the range checks */
                const neap_pool_t *pool = (const neap_pool_t *)_neap_page_addr(a, i);
                uint8_t cls = __atomic_load_n(&pool->cls, __ATOMIC_RELAXED);
                if (cls == 0 || cls > NEAP_CLASS_MAX) continue;
                neap_class_stats_t *cs = &out->classes[cls - 1];
                uint32_t used = __atomic_load_n(&pool->used, __ATOMIC_RELAXED);
                /* a direct pool's count carries 1 more (heap.c, neap_set_direct) */
                neap_heap_t *owner = atomic_load_explicit(&a->owner, memory_order_relaxed);
                if (owner != NULL && used > 0 && __atomic_load_n(&owner->direct[cls], __ATOMIC_RELAXED) == pool)
                    used--;
                uint32_t capacity = _neap_class[cls].capacity;
                if (used > capacity) used = capacity;
                out->pools_current++;
                cs->pools++;
                cs->blocks_used += used;
                cs->blocks_free += capacity - used;
                out->bytes_live += (size_t)used * cs->block_size;
            }
        }
    }
    pthread_mutex_unlock(&_neap_lock);
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

/* symbols.c -- program counters to function, file:line, for the tracing
 * layer's reports (interface and contracts: symbols.h).
 *
 * A table describes one process's address space as ELF objects and answers
 * from a cache, asking libdw (elfutils) on a miss:
 *
 *   _neap_symtab_t
 *   +--------------+
 *   | lock         |  every entry point takes it
 *   | mods[]       |---> _neap_module_t, one per mapping (a PT_LOAD segment):
 *   |              |     what a trace file records
 *   | objs[]       |---> sym_object_t, one per ELF file, sorted by low: path,
 *   |              |     [low, high), bias (file vaddr + bias = address),
 *   |              |     dw_low (the start reported to libdw)
 *   | cache        |---> {addr, _neap_symbol_t *} keyed by addr
 *   | strings      |---> interned strings (one pointer per text)
 *   | arena        |---> chunks of anonymous memory: symbols, strings,
 *   |              |     indexes, the table itself (except the self table)
 *   | dwfl         |---> libdw's session: each object that is a file is a
 *   |              |     module [dw_low, high); a module's user-data slot
 *   |              |     holds its function-symbol index (dw_fns_t)
 *   | cus          |---> per compilation unit (debug file, unit offset):
 *   +--------------+     its subprograms' code ranges, sorted (dw_cu_t)
 *
 *   cache, strings and cus are util/hashtab.h tables (open addressing,
 *   linear probing, at most half full); strings and cus hold pointers into
 *   the arena and are looked up by what they point to (text; dbg and off).
 *
 *   addr --cache hit--> copy of the cached _neap_symbol_t  (about 5 ns)
 *        --miss-------> self: rescan if the loader's counters moved
 *                       -> object of addr (binary search): module, offset
 *                       -> libdw: file:line (DWARF line table); the unit's
 *                          range index -> subprogram DIE -> down through
 *                          the scopes holding addr: an inlined subroutine
 *                          names the function, else the symbol index does
 *                       -> self and still no name: dladdr (dynamic symbols)
 *                       -> demangle, intern, cache
 *
 * Where the answers come from:
 *   self table: objects from dl_iterate_phdr (exact load biases; the paths
 *     of the main program and of objects opened by a relative name from
 *     /proc/self/maps).  libdw opens the files again by path; the vDSO and
 *     deleted files get dladdr only.
 *   other process: objects grouped by path from its module map; libdw works
 *     the bias out of the file's program headers and dw_low.
 *   libdw is dlopen'ed once per process (never linked: libneap.so must load
 *     into programs on machines without it), its functions called through
 *     the pointers in `dw`.  Built without its headers (NEAP_HAVE_LIBDW
 *     unset), the dladdr path is all there is.
 *
 * Memory: every structure of this file is in anonymous mappings from os.c
 * (arena chunks; the module and object arrays; the three tables' slots,
 * through their allocator sym_tables), so resolving never calls the
 * allocator being traced.  libdw allocates with malloc (in
 * libneap.so that is neap's, and the tracing layer marks the thread as
 * inside tracing around these calls); what a result needs is copied into
 * the arena at once.  Nothing in the arena is freed before the table: a
 * result stays valid across rescans and cache flushes.
 *
 * Invariants:
 *   - objs is sorted by low and the spans do not overlap (of two that would,
 *     the later is dropped); every mapping in mods lies in an object.
 *   - every string a result points to is in the table's string set.
 *   - the three tables are at most half full; a cache entry's symbol, a
 *     string and a unit index are in the arena (so a cache flush or a
 *     unit reset frees nothing a result points to).
 *   - dw_gen == objs_gen once libdw has been told the current objects; cus
 *     holds only units of the modules reported since (it is emptied when
 *     they are reported again: a dropped module's Dwarf address can return).
 */
#include "core/internal.h"
#include "trace/symbols.h"
#include "util/hashtab.h"

#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>

#ifdef NEAP_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#endif

#define SYM_CHUNK ((size_t)64 << 10)        /* arena chunk */
#define SYM_CACHE_MIN 1024                  /* first cache capacity (slots) */
#define SYM_STRINGS_MIN 512                 /* first string-set capacity */
#define SYM_CUS_MIN 256                     /* first unit-set capacity */
#define SYM_MAPS_MAX ((size_t)4 << 20)      /* /proc/self/maps bytes read, at most */

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------- */
typedef struct sym_chunk {
    struct sym_chunk *next;  /* the chunk mapped before this one */
    size_t size;             /* bytes mapped, this header included */
} sym_chunk_t;

typedef struct sym_arena {
    sym_chunk_t *chunks;     /* newest first */
    char *cur, *end;         /* free space in the newest chunk */
} sym_arena_t;

typedef struct sym_object {
    const char *path;        /* interned; a file if it starts with '/' */
    uintptr_t low, high;     /* [low, high): where its mappings are */
    uintptr_t bias;          /* load bias: exact for self; offline an estimate
                                (low - its offset), used when libdw has not
                                read the file */
    uintptr_t dw_low;        /* start reported to libdw: bias + the first
                                PT_LOAD's aligned vaddr */
} sym_object_t;

typedef struct sym_slot {
    uintptr_t addr;          /* the looked-up address */
    _neap_symbol_t *sym;     /* in the arena */
} sym_slot_t;

#ifdef NEAP_HAVE_LIBDW
/* A compilation unit's functions (dw_cu_index): the code ranges of the
 * subprograms at its top level (or in namespaces), sorted. */
typedef struct dw_range {
    Dwarf_Addr low, high;    /* [low, high) in DWARF addresses (before the bias) */
    Dwarf_Off die;           /* the subprogram's DIE (dwarf_offdie) */
} dw_range_t;

typedef struct dw_cu {
    Dwarf *dbg;              /* the unit's debug file */
    Dwarf_Off off;           /* its unit DIE's offset: with dbg, the key */
    size_t n;
    dw_range_t r[];          /* sorted by low */
} dw_cu_t;
#endif

/* ---------------------------------------------------------------------------
 * Memory: anonymous mappings only
 * ------------------------------------------------------------------------- */
static size_t sym_page_round(size_t n) {
    return (n + NEAP_PAGE_SIZE - 1) & ~(size_t)NEAP_PAGE_MASK;
}

/* n bytes, 16-aligned, zeroed; NULL when the kernel refuses a chunk. */
static void *sym_alloc(sym_arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if ((size_t)(a->end - a->cur) < n) {
        size_t size = sym_page_round(n + sizeof(sym_chunk_t) + 16);
        if (size < SYM_CHUNK) size = SYM_CHUNK;
        sym_chunk_t *c = _neap_os_map(size);
        if (c == NULL) return NULL;
        c->next = a->chunks;
        c->size = size;
        a->chunks = c;
        a->cur = (char *)c + ((sizeof *c + 15) & ~(size_t)15);
        a->end = (char *)c + size;
    }
    void *p = a->cur;
    a->cur += n;
    return p;
}

static void sym_arena_release(sym_arena_t *a) {
    sym_chunk_t *c = a->chunks;
    while (c != NULL) {
        sym_chunk_t *next = c->next;
        _neap_os_unmap(c, c->size);
        c = next;
    }
    a->chunks = NULL;
    a->cur = a->end = NULL;
}

/* A zeroed array of its own mapping; *bytes gets the mapped size. */
static void *sym_array(size_t n, size_t elem, size_t *bytes) {
    size_t size = sym_page_round((n ? n : 1) * elem);
    void *p = _neap_os_map(size);
    *bytes = p ? size : 0;
    return p;
}

static void sym_array_release(void *p, size_t bytes) {
    if (p != NULL) _neap_os_unmap(p, bytes);
}

/* ---------------------------------------------------------------------------
 * The three hash tables (util/hashtab.h): their hashes, their memory
 * ------------------------------------------------------------------------- */
static size_t sym_hash_str(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static size_t sym_hash_addr(uintptr_t a) {
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 29));
}

/* Their slot arrays: anonymous mappings of whole pages, like the other
 * arrays of this file (never the allocator being traced). */
static void *sym_table_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return _neap_os_map(sym_page_round(bytes));
}

static void sym_table_free(void *ctx, void *p, size_t bytes) {
    (void)ctx;
    _neap_os_unmap(p, sym_page_round(bytes));
}

static const neap_hashtab_alloc_t sym_tables = {sym_table_alloc, sym_table_free, NULL};

/* the result cache: keyed by address, at most half full */
#define SYM_CACHE_KEY(e) ((uint64_t)(e)->addr)
#define SYM_CACHE_HASH(e) ((uint64_t)sym_hash_addr((e)->addr))
NEAP_HASHTAB_DEFINE(symcache, sym_slot_t, SYM_CACHE_KEY, SYM_CACHE_HASH, SYM_CACHE_MIN, 2);

/* the interned strings: entries are the arena copies, looked up by text
 * (symstrings_probe), at most half full */
#define SYM_STR_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define SYM_STR_HASH(e) ((uint64_t)sym_hash_str(*(e), strlen(*(e))))
NEAP_HASHTAB_DEFINE(symstrings, const char *, SYM_STR_KEY, SYM_STR_HASH, SYM_STRINGS_MIN, 2);

#ifdef NEAP_HAVE_LIBDW
static size_t dw_hash_cu(const Dwarf *dbg, Dwarf_Off off) {
    return sym_hash_addr((uintptr_t)dbg ^ (uintptr_t)(off * 0x9E3779B97F4A7C15ull));
}

/* the compilation units' indexes: entries are the arena dw_cu_t, looked up
 * by (dbg, off) (symcus_lookup), at most half full */
#define SYM_CU_KEY(e) ((uint64_t)(uintptr_t)*(e))
#define SYM_CU_HASH(e) ((uint64_t)dw_hash_cu((*(e))->dbg, (*(e))->off))
NEAP_HASHTAB_DEFINE(symcus, const dw_cu_t *, SYM_CU_KEY, SYM_CU_HASH, SYM_CUS_MIN, 2);
#endif

struct _neap_symtab {
    pthread_mutex_t lock;    /* taken by every entry point */
    int self;                /* 1: this process's table (static, never freed) */
    int scanned;             /* self: the loader's list has been read */
    unsigned long long adds, subs;  /* self: dl_iterate_phdr counters at the last scan */
    sym_arena_t arena;       /* symbols, strings, the table itself (not self) */
    _neap_module_t *mods;    /* mappings, own mapping of mods_bytes */
    size_t nmods, mods_bytes;
    sym_object_t *objs;      /* objects, own mapping of objs_bytes */
    size_t nobjs, objs_bytes;
    unsigned objs_gen;       /* bumped when objs is replaced */
    symcache_t cache;        /* addr -> its symbol */
    symstrings_t strings;    /* the interned strings */
    void *dwfl;              /* libdw session (Dwfl *), NULL until first needed */
    int dw_failed;           /* dwfl_begin failed: resolve as without libdw */
    unsigned dw_gen;         /* objs_gen last reported to libdw */
#ifdef NEAP_HAVE_LIBDW
    symcus_t cus;            /* (debug file, unit offset) -> its dw_cu_t */
#endif
};

static _neap_symtab_t sym_self = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .self = 1,
    .cache = NEAP_HASHTAB_INIT(&sym_tables),
    .strings = NEAP_HASHTAB_INIT(&sym_tables),
#ifdef NEAP_HAVE_LIBDW
    .cus = NEAP_HASHTAB_INIT(&sym_tables),
#endif
};

/* ---------------------------------------------------------------------------
 * Interned strings: one copy of each text, compared by pointer afterwards
 * ------------------------------------------------------------------------- */
typedef struct sym_text {
    const char *s;
    size_t len;
} sym_text_t;

static inline int sym_text_match(const char *const *e, const void *ctx) {
    const sym_text_t *k = ctx;
    return strncmp(*e, k->s, k->len) == 0 && (*e)[k->len] == 0;
}

/* The interned copy of s[0..len) (no NUL needed in s); NULL on no memory. */
static const char *sym_intern_n(_neap_symtab_t *t, const char *s, size_t len) {
    if (symstrings_reserve(&t->strings, 1) != 0) return NULL;
    sym_text_t k = {s, len};
    const char **slot = symstrings_probe(&t->strings, sym_hash_str(s, len), sym_text_match, &k);
    if (*slot != NULL) return *slot;
    char *copy = sym_alloc(&t->arena, len + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, s, len);
    copy[len] = 0;
    const char *e = copy;
    symstrings_put(&t->strings, slot, &e);
    return copy;
}

static const char *sym_intern(_neap_symtab_t *t, const char *s) {
    return s ? sym_intern_n(t, s, strlen(s)) : NULL;
}

/* ---------------------------------------------------------------------------
 * The result cache
 * ------------------------------------------------------------------------- */
/* The cache's entry of addr, or NULL. */
static const sym_slot_t *sym_cache_find(const _neap_symtab_t *t, uintptr_t addr) {
    return symcache_find(&t->cache, addr, sym_hash_addr(addr));
}

/* Adds addr -> s (addr not in the cache).  A full cache that cannot grow
 * only loses the entry: the next lookup resolves again. */
static void sym_cache_put(_neap_symtab_t *t, uintptr_t addr, _neap_symbol_t *s) {
    sym_slot_t e = {addr, s};
    (void)symcache_add(&t->cache, &e);
}

/* Forgets every cached result (their memory stays: handed-out strings live
 * as long as the table). */
static void sym_cache_clear(_neap_symtab_t *t) {
    symcache_clear(&t->cache);
}

/* ---------------------------------------------------------------------------
 * Objects: sorting and lookup
 * ------------------------------------------------------------------------- */
/* Shell sort (no qsort: glibc's may call malloc). */
static void sym_sort_objs(sym_object_t *o, size_t n) {
    for (size_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11)
        for (size_t i = gap; i < n; i++) {
            sym_object_t v = o[i];
            size_t j = i;
            for (; j >= gap && o[j - gap].low > v.low; j -= gap) o[j] = o[j - gap];
            o[j] = v;
        }
}

static int sym_mod_before(const _neap_module_t *a, const _neap_module_t *b) {
    if (a->path != b->path) return (uintptr_t)a->path < (uintptr_t)b->path;
    return a->start < b->start;
}

/* Sorts mappings by (interned path, start): one file's mappings in a row. */
static void sym_sort_mods(_neap_module_t *m, size_t n) {
    for (size_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11)
        for (size_t i = gap; i < n; i++) {
            _neap_module_t v = m[i];
            size_t j = i;
            for (; j >= gap && sym_mod_before(&v, &m[j - gap]); j -= gap) m[j] = m[j - gap];
            m[j] = v;
        }
}

/* Sorts objs and drops any whose span overlaps the one before it. */
static size_t sym_objs_finish(sym_object_t *o, size_t n) {
    sym_sort_objs(o, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i].high <= o[i].low) continue;
        if (k > 0 && o[i].low < o[k - 1].high) continue;
        o[k++] = o[i];
    }
    return k;
}

/* The object of objs[0..n) (sorted by low) that holds addr, or NULL. */
static const sym_object_t *sym_find_in(const sym_object_t *objs, size_t n, uintptr_t addr) {
    size_t lo = 0, hi = n;   /* first object with low > addr: hi */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (objs[mid].low <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    const sym_object_t *o = &objs[lo - 1];
    return addr < o->high ? o : NULL;
}

/* Replaces the table's lists (the new ones are the table's from now on). */
static void sym_install(_neap_symtab_t *t, _neap_module_t *mods, size_t nmods, size_t mods_bytes,
                        sym_object_t *objs, size_t nobjs, size_t objs_bytes) {
    sym_array_release(t->mods, t->mods_bytes);
    sym_array_release(t->objs, t->objs_bytes);
    t->mods = mods;
    t->nmods = nmods;
    t->mods_bytes = mods_bytes;
    t->objs = objs;
    t->nobjs = nobjs;
    t->objs_bytes = objs_bytes;
    t->objs_gen++;
}

/* ---------------------------------------------------------------------------
 * This process: the loader's list
 * ------------------------------------------------------------------------- */
typedef struct sym_scan {
    _neap_symtab_t *t;
    _neap_module_t *mods;    /* growing arrays, own mappings */
    size_t nmods, mods_cap, mods_bytes;
    sym_object_t *objs;
    size_t nobjs, objs_cap, objs_bytes;
    unsigned long long adds, subs;
    bool counters;           /* the C library reports adds and subs */
    bool failed;             /* out of memory */
} sym_scan_t;

/* Makes room for one more element; false when memory cannot be mapped. */
static bool sym_reserve(void **arr, size_t n, size_t *cap, size_t *bytes, size_t elem) {
    if (n < *cap) return true;
    size_t ncap = *cap ? *cap * 2 : 64, nbytes;
    void *p = sym_array(ncap, elem, &nbytes);
    if (p == NULL) return false;
    if (*arr != NULL) memcpy(p, *arr, n * elem);
    sym_array_release(*arr, *bytes);
    *arr = p;
    *cap = ncap;
    *bytes = nbytes;
    return true;
}

static int sym_counters_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    sym_scan_t *s = arg;
    s->counters = size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs;
    if (s->counters) {
        s->adds = info->dlpi_adds;
        s->subs = info->dlpi_subs;
    }
    return 1;   /* the first object is enough */
}

static int sym_scan_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    sym_scan_t *s = arg;
    uintptr_t low = UINTPTR_MAX, high = 0, first = 0;
    bool have_first = false;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *path = name[0] ? sym_intern(s->t, name) : NULL;
    if (name[0] && path == NULL) {
        s->failed = true;
        return 1;
    }
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0) continue;
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)NEAP_PAGE_MASK;
        uintptr_t end = sym_page_round(info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
        if (!have_first) {   /* libdw's rule for the bias: the first PT_LOAD's aligned vaddr */
            first = ph->p_vaddr & -(uintptr_t)ph->p_align;
            have_first = true;
        }
        if (start < low) low = start;
        if (end > high) high = end;
        if (!sym_reserve((void **)&s->mods, s->nmods, &s->mods_cap, &s->mods_bytes, sizeof *s->mods)) {
            s->failed = true;
            return 1;
        }
        _neap_module_t *m = &s->mods[s->nmods++];
        m->start = start;
        m->end = end;
        m->offset = ph->p_offset & ~(uint64_t)NEAP_PAGE_MASK;
        m->path = NULL;   /* its object's path, once that is known */
    }
    if (!have_first) return 0;
    if (!sym_reserve((void **)&s->objs, s->nobjs, &s->objs_cap, &s->objs_bytes, sizeof *s->objs)) {
        s->failed = true;
        return 1;
    }
    sym_object_t *o = &s->objs[s->nobjs++];
    o->path = path;
    o->low = low;
    o->high = high;
    o->bias = info->dlpi_addr;
    o->dw_low = info->dlpi_addr + first;
    return 0;
}

/* Gives each object that has no absolute path (the main program, whose
 * name is "", and objects dlopen'ed by a relative path) the path of the file
 * mapped at its low address in /proc/self/maps.  The main program gets
 * "/proc/self/exe" if that fails; the vDSO keeps the loader's name. */
static void sym_maps_fix(_neap_symtab_t *t, sym_object_t *objs, size_t n) {
    size_t need = 0;
    for (size_t i = 0; i < n; i++) need += objs[i].path == NULL || objs[i].path[0] != '/';
    if (need == 0) return;
    char *buf = _neap_os_map(SYM_MAPS_MAX);
    int len = buf ? _neap_os_read_file("/proc/self/maps", buf, SYM_MAPS_MAX) : -1;
    for (char *line = buf; len > 0 && line < buf + len && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        /* start-end perms offset dev inode path */
        char *p = line;
        uintptr_t start = (uintptr_t)strtoull(p, &p, 16);
        uintptr_t end = *p == '-' ? (uintptr_t)strtoull(p + 1, &p, 16) : 0;
        for (int field = 0; field < 4 && *p; field++) {   /* perms offset dev inode */
            while (*p == ' ') p++;
            while (*p && *p != ' ') p++;
        }
        while (*p == ' ') p++;
        for (size_t i = 0; i < n && *p == '/'; i++)
            if ((objs[i].path == NULL || objs[i].path[0] != '/') && start <= objs[i].low &&
                objs[i].low < end) {
                const char *path = sym_intern(t, p);
                if (path != NULL) objs[i].path = path;
            }
        if (nl == NULL) break;
        line = nl + 1;
    }
    if (buf != NULL) _neap_os_unmap(buf, SYM_MAPS_MAX);
    for (size_t i = 0; i < n; i++)
        if (objs[i].path == NULL) objs[i].path = sym_intern(t, "/proc/self/exe");
}

/* Reads the loader's list into the table when it changed since the last
 * scan (dl_iterate_phdr's counters of loads and unloads moved) or was never
 * read; the check alone costs one call of dl_iterate_phdr that stops at the
 * first object.  Returns true if the objects were replaced. */
static bool sym_self_scan_locked(_neap_symtab_t *t) {
    sym_scan_t before = {.t = t};
    dl_iterate_phdr(sym_counters_cb, &before);
    if (t->scanned && (!before.counters || (before.adds == t->adds && before.subs == t->subs)))
        return false;
    sym_scan_t s = {.t = t};
    dl_iterate_phdr(sym_scan_cb, &s);
    if (s.failed || s.nobjs == 0) {
        sym_array_release(s.mods, s.mods_bytes);
        sym_array_release(s.objs, s.objs_bytes);
        return false;
    }
    s.nobjs = sym_objs_finish(s.objs, s.nobjs);
    sym_maps_fix(t, s.objs, s.nobjs);
    size_t k = 0;
    for (size_t i = 0; i < s.nmods; i++) {   /* each mapping takes its object's path */
        const sym_object_t *o = sym_find_in(s.objs, s.nobjs, s.mods[i].start);
        if (o == NULL) continue;   /* its object was dropped as overlapping */
        s.mods[k] = s.mods[i];
        s.mods[k++].path = o->path;
    }
    bool unloaded = t->scanned && before.subs != t->subs;
    sym_install(t, s.mods, k, s.mods_bytes, s.objs, s.nobjs, s.objs_bytes);
    /* the counters from before the scan: a change during it shows next time */
    t->adds = before.adds;
    t->subs = before.subs;
    t->scanned = 1;
    if (unloaded) sym_cache_clear(t);   /* an address may now belong to another object */
    return true;
}

/* ---------------------------------------------------------------------------
 * Demangling: __cxa_demangle of the C++ runtime, when there is one
 * ------------------------------------------------------------------------- */
typedef char *sym_demangle_fn(const char *mangled, char *buf, size_t *len, int *status);
static pthread_mutex_t sym_demangler_lock = PTHREAD_MUTEX_INITIALIZER;
static sym_demangle_fn *sym_demangler;   /* under the lock; once set, kept */
static bool sym_demangler_loaded;        /* libstdc++.so.6 was dlopen'ed for it */

/* __cxa_demangle: the process's (looked for again while there is none: a
 * C++ plugin may come later), else, when may_load, libstdc++.so.6's.  Only
 * a table for another process may load it: a traced program linked with
 * its own static C++ runtime must not get a second one. */
static sym_demangle_fn *sym_demangler_get(bool may_load) {
    pthread_mutex_lock(&sym_demangler_lock);
    void *p = NULL;
    if (sym_demangler == NULL) p = dlsym(RTLD_DEFAULT, "__cxa_demangle");
    if (sym_demangler == NULL && p == NULL && may_load && !sym_demangler_loaded) {
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
        sym_demangler_loaded = true;
        if (h != NULL) p = dlsym(h, "__cxa_demangle");
    }
    if (p != NULL) memcpy(&sym_demangler, &p, sizeof p);
    sym_demangle_fn *d = sym_demangler;
    pthread_mutex_unlock(&sym_demangler_lock);
    return d;
}

/* The interned demangled form of a C++ name, or the interned name itself;
 * without a symbol version (memcpy@@GLIBC_2.14 is memcpy). */
static const char *sym_intern_function(_neap_symtab_t *t, const char *name) {
    if (name == NULL) return NULL;
    const char *at = strchr(name, '@');
    if (at != NULL && at > name) return sym_intern_n(t, name, (size_t)(at - name));
    if (name[0] == '_' && name[1] == 'Z') {
        sym_demangle_fn *demangle = sym_demangler_get(!t->self);
        if (demangle != NULL) {
            int status = -1;
            char *d = demangle(name, NULL, NULL, &status);
            if (d != NULL) {
                const char *r = status == 0 ? sym_intern(t, d) : NULL;
                free(d);   /* the runtime's malloc made it */
                if (r != NULL) return r;
            }
        }
    }
    return sym_intern(t, name);
}

/* ---------------------------------------------------------------------------
 * libdw, loaded on first use
 * ------------------------------------------------------------------------- */
#ifdef NEAP_HAVE_LIBDW

/* NEAP_SYMBOLS_NO_LIBDW=1: behave as if libdw were not installed (tests of
 * the fallback; a way out should libdw misbehave).  Read once, before the
 * dlopen. */
static bool sym_env_no_libdw(void) {
    const char *v = _neap_os_getenv("NEAP_SYMBOLS_NO_LIBDW");
    return v != NULL && v[0] != 0 && strcmp(v, "0") != 0;
}

/* The libdw functions this file calls, as pointers filled by dlsym. */
#define SYM_DW_FUNCTIONS(X)                                                   \
    X(dwfl_begin) X(dwfl_end) X(dwfl_report_begin) X(dwfl_report_module)      \
    X(dwfl_report_end) X(dwfl_addrmodule) X(dwfl_module_getelf)               \
    X(dwfl_module_info) X(dwfl_module_getsymtab) X(dwfl_module_getsym_info)   \
    X(dwfl_module_getsrc) X(dwfl_lineinfo) X(dwfl_line_comp_dir)              \
    X(dwfl_module_addrdie) X(dwfl_linux_proc_find_elf)                        \
    X(dwfl_standard_find_debuginfo) X(dwfl_offline_section_address)           \
    X(dwarf_child) X(dwarf_siblingof) X(dwarf_haspc) X(dwarf_ranges)          \
    X(dwarf_offdie) X(dwarf_dieoffset) X(dwarf_cu_getdwarf) X(dwarf_tag)      \
    X(dwarf_diename) X(dwarf_attr_integrate) X(dwarf_formstring)

static struct {
#define SYM_DW_FIELD(f) __typeof__(f) *f;
    SYM_DW_FUNCTIONS(SYM_DW_FIELD)
#undef SYM_DW_FIELD
} dw;
static bool dw_loaded;                 /* written once, under dw_once */
static pthread_once_t dw_once = PTHREAD_ONCE_INIT;
static Dwfl_Callbacks dw_callbacks;    /* find the files by path, debug info
                                          the standard way (build id, debuglink) */
static char *dw_debuginfo_path;        /* NULL: libdw's default */

static void dw_load(void) {
    if (sym_env_no_libdw()) return;
    void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) return;
#define SYM_DW_LOAD(f)                                                        \
    {                                                                         \
        void *p = dlsym(h, #f);                                               \
        if (p == NULL) goto missing;                                          \
        memcpy(&dw.f, &p, sizeof p);                                          \
    }
    SYM_DW_FUNCTIONS(SYM_DW_LOAD)
#undef SYM_DW_LOAD
    dw_callbacks.find_elf = dw.dwfl_linux_proc_find_elf;
    dw_callbacks.find_debuginfo = dw.dwfl_standard_find_debuginfo;
    dw_callbacks.section_address = dw.dwfl_offline_section_address;
    dw_callbacks.debuginfo_path = &dw_debuginfo_path;
    dw_loaded = true;
    return;
missing:
    _neap_warning("libdw.so.1 lacks a function neap needs; symbols from dladdr only", NULL);
    dlclose(h);
}

static bool dw_available(void) {
    pthread_once(&dw_once, dw_load);
    return dw_loaded;
}

/* The table's libdw session, told about the current objects; NULL when
 * libdw is not there or will not start. */
static Dwfl *dw_session(_neap_symtab_t *t) {
    if (t->dw_failed || !dw_available()) return NULL;
    if (t->dwfl == NULL) {
        t->dwfl = dw.dwfl_begin(&dw_callbacks);
        if (t->dwfl == NULL) {
            t->dw_failed = 1;
            return NULL;
        }
        t->dw_gen = t->objs_gen - 1;
    }
    if (t->dw_gen != t->objs_gen) {
        /* modules reported again with the same name and span are kept, with
         * what libdw has read of them */
        dw.dwfl_report_begin(t->dwfl);
        for (size_t i = 0; i < t->nobjs; i++)
            if (t->objs[i].path != NULL && t->objs[i].path[0] == '/')
                dw.dwfl_report_module(t->dwfl, t->objs[i].path, t->objs[i].dw_low, t->objs[i].high);
        dw.dwfl_report_end(t->dwfl, NULL, NULL);
        t->dw_gen = t->objs_gen;
        /* a dropped module's Dwarf is freed and its address may come back
         * for another: the unit indexes are keyed by it, so start over */
        symcus_clear(&t->cus);
    }
    return t->dwfl;
}

static void dw_session_end(_neap_symtab_t *t) {
    if (t->dwfl != NULL) dw.dwfl_end(t->dwfl);
    t->dwfl = NULL;
}

/* A DIE's name: its linkage (mangled) name if it has one, else its name. */
static const char *dw_die_name(Dwarf_Die *die) {
    Dwarf_Attribute attr;
    const char *s = NULL;
    if (dw.dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) != NULL ||
        dw.dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr) != NULL)
        s = dw.dwarf_formstring(&attr);
    return s != NULL ? s : dw.dwarf_diename(die);
}

/* A compilation unit's functions (dw_cu_t, with the types): built on the
 * unit's first lookup and kept in the arena.  Finding pc's function in the
 * tree itself means reading every top-level DIE before it: hundreds in a C
 * unit, thousands in a C++ unit full of std, per address. */
typedef struct dw_build {    /* a unit's ranges while they are collected */
    dw_range_t *r;           /* own mapping, grown by doubling */
    size_t n, cap, bytes;
    bool failed;
} dw_build_t;

static void dw_collect(dw_build_t *b, Dwarf_Die *parent, int depth) {
    Dwarf_Die child;
    if (depth > 16 || dw.dwarf_child(parent, &child) != 0) return;
    do {
        int tag = dw.dwarf_tag(&child);
        if (tag == DW_TAG_namespace) {
            dw_collect(b, &child, depth + 1);
        } else if (tag == DW_TAG_subprogram) {
            Dwarf_Addr base, start, end;
            for (ptrdiff_t o = 0; (o = dw.dwarf_ranges(&child, o, &base, &start, &end)) > 0;) {
                if (end <= start) continue;
                if (!sym_reserve((void **)&b->r, b->n, &b->cap, &b->bytes, sizeof *b->r)) {
                    b->failed = true;
                    return;
                }
                b->r[b->n++] = (dw_range_t){start, end, dw.dwarf_dieoffset(&child)};
            }
        }
    } while (dw.dwarf_siblingof(&child, &child) == 0);
}

typedef struct dw_cu_key {
    const Dwarf *dbg;
    Dwarf_Off off;
} dw_cu_key_t;

static inline int dw_cu_match(const dw_cu_t *const *e, const void *ctx) {
    const dw_cu_key_t *k = ctx;
    return (*e)->dbg == k->dbg && (*e)->off == k->off;
}

/* The index of the unit whose DIE is cu; NULL when memory ran out. */
static const dw_cu_t *dw_cu_index(_neap_symtab_t *t, Dwarf_Die *cu) {
    Dwarf *dbg = dw.dwarf_cu_getdwarf(cu->cu);
    Dwarf_Off off = dw.dwarf_dieoffset(cu);
    dw_cu_key_t k = {dbg, off};
    size_t h = dw_hash_cu(dbg, off);
    const dw_cu_t *const *found = symcus_lookup(&t->cus, h, dw_cu_match, &k);
    if (found != NULL) return *found;
    if (symcus_reserve(&t->cus, 1) != 0) return NULL;   /* room first */
    const dw_cu_t **slot = symcus_probe(&t->cus, h, dw_cu_match, &k);   /* the empty one */
    dw_build_t b = {0};
    dw_collect(&b, cu, 0);
    dw_cu_t *c = b.failed ? NULL : sym_alloc(&t->arena, sizeof *c + b.n * sizeof c->r[0]);
    if (c != NULL) {
        c->dbg = dbg;
        c->off = off;
        c->n = b.n;
        if (b.n) memcpy(c->r, b.r, b.n * sizeof c->r[0]);
        for (size_t gap = c->n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11)   /* by low */
            for (size_t i = gap; i < c->n; i++) {
                dw_range_t v = c->r[i];
                size_t j = i;
                for (; j >= gap && c->r[j - gap].low > v.low; j -= gap) c->r[j] = c->r[j - gap];
                c->r[j] = v;
            }
        const dw_cu_t *e = c;
        symcus_put(&t->cus, slot, &e);
    }
    sym_array_release(b.r, b.bytes);
    return c;
}

/* Goes down from fn (a subprogram or inlined subroutine holding pc) through
 * the scopes that hold pc: *fn becomes the innermost subprogram or inlined
 * subroutine, *tag its tag. */
static void dw_descend(Dwarf_Die *fn, int *tag, Dwarf_Addr pc) {
    Dwarf_Die parent = *fn, child;
    for (int depth = 0; depth < 64 && dw.dwarf_child(&parent, &child) == 0; depth++) {
        bool down = false;
        do {
            int t = dw.dwarf_tag(&child);
            if ((t == DW_TAG_inlined_subroutine || t == DW_TAG_lexical_block ||
                 t == DW_TAG_subprogram) && dw.dwarf_haspc(&child, pc) == 1) {
                if (t != DW_TAG_lexical_block) {
                    *fn = child;
                    *tag = t;
                }
                down = true;
                break;
            }
        } while (dw.dwarf_siblingof(&child, &child) == 0);
        if (!down) return;
        parent = child;
    }
}

/* The function addr is in according to DWARF: the innermost inlined
 * subroutine around it (*inlined = true), else its subprogram; NULL if
 * DWARF does not say.  The name is libdw's (valid while the session is).
 * The name of an inlined function is reached through its
 * DW_AT_abstract_origin (dwarf_attr_integrate), which spares the second
 * walk of the unit dwarf_getscopes makes. */
static const char *dw_scope_function(_neap_symtab_t *t, Dwfl_Module *m, Dwarf_Addr addr,
                                     bool *inlined) {
    Dwarf_Addr bias;
    Dwarf_Die *cu = dw.dwfl_module_addrdie(m, addr, &bias);
    *inlined = false;
    if (cu == NULL) return NULL;
    const dw_cu_t *c = dw_cu_index(t, cu);
    Dwarf_Addr pc = addr - bias;
    if (c == NULL || c->n == 0) return NULL;
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->r[mid].low <= pc) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || pc >= c->r[lo - 1].high) return NULL;
    Dwarf_Die fn;
    if (dw.dwarf_offdie(c->dbg, c->r[lo - 1].die, &fn) == NULL) return NULL;
    int tag = DW_TAG_subprogram;
    dw_descend(&fn, &tag, pc);
    *inlined = tag == DW_TAG_inlined_subroutine;
    return dw_die_name(&fn);
}

/* A module's functions from its ELF symbol table (.symtab, or .dynsym when
 * stripped; libdw also reads a separate debug file's and .gnu_debugdata's),
 * sorted by address, one entry per address; built on the module's first
 * lookup, in the arena, and hung on the module's user-data slot.  libdw's
 * own search (dwfl_module_addrinfo) reads the whole table per call: some
 * 50 us in the C library with its debug symbols, against well under 1 us
 * for a binary search here. */
typedef struct dw_fn {
    uintptr_t addr;          /* run-time address of the function */
    uintptr_t size;          /* bytes; 0 when the symbol has no size */
    const char *name;        /* libdw's (the module's string table) */
    unsigned rank;           /* which of several symbols at one address wins:
                                global 3, weak 2, local 1 */
} dw_fn_t;

typedef struct dw_fns {
    size_t n;
    dw_fn_t fn[];            /* sorted by addr, addresses distinct */
} dw_fns_t;

static dw_fns_t dw_fns_none;   /* a module without a symbol table */

static bool dw_fn_better(const dw_fn_t *a, const dw_fn_t *b) {   /* same address */
    if (a->rank != b->rank) return a->rank > b->rank;
    if ((a->size == 0) != (b->size == 0)) return a->size != 0;
    size_t ua = strspn(a->name, "_"), ub = strspn(b->name, "_");   /* qsort over __qsort */
    return ua < ub;
}

static const dw_fns_t *dw_functions(_neap_symtab_t *t, Dwfl_Module *m) {
    void **slot = NULL;
    if (dw.dwfl_module_info(m, &slot, NULL, NULL, NULL, NULL, NULL, NULL) == NULL || slot == NULL)
        return &dw_fns_none;
    if (*slot != NULL) return *slot;
    int n = dw.dwfl_module_getsymtab(m);
    dw_fns_t *f = n > 1 ? sym_alloc(&t->arena, sizeof *f + (size_t)n * sizeof f->fn[0]) : NULL;
    if (f == NULL) return *slot = &dw_fns_none;
    for (int i = 1; i < n; i++) {   /* entry 0 is the null symbol */
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        const char *name = dw.dwfl_module_getsym_info(m, i, &sym, &addr, &shndx, NULL, NULL);
        int type = name ? GELF_ST_TYPE(sym.st_info) : STT_NOTYPE;
        if (name == NULL || name[0] == 0 || shndx == SHN_UNDEF || addr == 0 ||
            (type != STT_FUNC && type != STT_GNU_IFUNC))
            continue;
        int bind = GELF_ST_BIND(sym.st_info);
        dw_fn_t *e = &f->fn[f->n++];
        e->addr = (uintptr_t)addr;
        e->size = (uintptr_t)sym.st_size;
        e->name = name;
        e->rank = bind == STB_GLOBAL ? 3 : bind == STB_WEAK ? 2 : 1;
    }
    /* shell sort by address (no qsort: glibc's may call malloc) */
    for (size_t gap = f->n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11)
        for (size_t i = gap; i < f->n; i++) {
            dw_fn_t v = f->fn[i];
            size_t j = i;
            for (; j >= gap && f->fn[j - gap].addr > v.addr; j -= gap) f->fn[j] = f->fn[j - gap];
            f->fn[j] = v;
        }
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (k > 0 && f->fn[k - 1].addr == f->fn[i].addr) {
            if (dw_fn_better(&f->fn[i], &f->fn[k - 1])) f->fn[k - 1] = f->fn[i];
            continue;
        }
        f->fn[k++] = f->fn[i];
    }
    f->n = k;
    return *slot = f;
}

/* The function symbol holding addr: the nearest one at or below it whose
 * size covers it (a few back, for symbols nested in others), else the
 * nearest one if it has no size (hand-written assembly); NULL if none. */
static const char *dw_function_at(const dw_fns_t *f, uintptr_t addr) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->fn[mid].addr <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    for (size_t k = lo; k > 0 && k + 8 > lo; k--)
        if (addr - f->fn[k - 1].addr < f->fn[k - 1].size) return f->fn[k - 1].name;
    return f->fn[lo - 1].size == 0 ? f->fn[lo - 1].name : NULL;
}

/* The interned source path.  libdw joins the file's name to its directory
 * entry, which is the compilation directory for entry 0 (DWARF 5) but may
 * be relative to it for the others (gcc tests/x.c: "tests"), so a relative
 * result under an absolute compilation directory is joined to it ("./"
 * dropped).  A relative compilation directory (-fdebug-prefix-map=...=.,
 * as distributions build) leaves the path relative: nothing better is
 * known. */
static const char *dw_full_path(_neap_symtab_t *t, const char *file, const char *comp_dir) {
    if (file[0] == '/' || comp_dir == NULL || comp_dir[0] != '/') return sym_intern(t, file);
    while (file[0] == '.' && file[1] == '/') file += 2;
    char buf[4096];
    size_t d = strlen(comp_dir), f = strlen(file);
    while (d > 1 && comp_dir[d - 1] == '/') d--;
    if (d + 1 + f + 1 > sizeof buf) return sym_intern(t, file);
    memcpy(buf, comp_dir, d);
    buf[d] = '/';
    memcpy(buf + d + 1, file, f + 1);
    return sym_intern(t, buf);
}

/* Fills what libdw knows of addr into *s (module and module_offset already
 * set from the object, corrected here once the file is read).  Returns
 * false if libdw is not in use for t. */
static bool dw_resolve(_neap_symtab_t *t, uintptr_t addr, _neap_symbol_t *s) {
    Dwfl *dwfl = dw_session(t);
    if (dwfl == NULL) return false;
    Dwfl_Module *m = dw.dwfl_addrmodule(dwfl, addr);
    if (m == NULL) return true;
    GElf_Addr bias;
    if (dw.dwfl_module_getelf(m, &bias) != NULL) s->module_offset = addr - (uintptr_t)bias;
    const char *name = NULL, *subprogram = NULL;
    Dwfl_Line *line = dw.dwfl_module_getsrc(m, addr);
    if (line != NULL) {
        int lineno = 0;
        const char *file = dw.dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file != NULL && lineno > 0) {
            s->file = dw_full_path(t, file, dw.dwfl_line_comp_dir(line));
            s->line = s->file ? lineno : 0;
        }
        bool inlined;
        const char *scope = dw_scope_function(t, m, addr, &inlined);
        if (inlined) name = scope;   /* the function the line belongs to */
        else subprogram = scope;
    }
    /* not inlined: the symbol table's name (qualified and mangled for C++,
     * which DWARF's DW_AT_name is not), DWARF's if the symbol is missing */
    if (name == NULL) name = dw_function_at(dw_functions(t, m), addr);
    if (name == NULL) name = subprogram;
    s->function = sym_intern_function(t, name);
    return true;
}

#else /* !NEAP_HAVE_LIBDW: built without elfutils' headers */

static bool dw_available(void) {
    return false;
}
static bool dw_resolve(_neap_symtab_t *t, uintptr_t addr, _neap_symbol_t *s) {
    return false;
}
static void dw_session_end(_neap_symtab_t *t) {}

#endif

/* ---------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------- */
/* Resolves addr (not in the cache) into a new arena symbol; NULL on no memory. */
static _neap_symbol_t *sym_lookup_locked(_neap_symtab_t *t, uintptr_t addr) {
    _neap_symbol_t *s = sym_alloc(&t->arena, sizeof *s);
    if (s == NULL) return NULL;
    if (t->self) sym_self_scan_locked(t);   /* dlopen, dlclose since the last miss */
    const sym_object_t *o = sym_find_in(t->objs, t->nobjs, addr);
    if (o == NULL) return s;   /* in no module: all unknown */
    s->module = o->path;
    s->module_offset = addr - o->bias;
    bool dwarf = dw_resolve(t, addr, s);
    if (s->function == NULL && t->self) {
        /* the vDSO, a deleted file, no libdw: the dynamic symbols */
        Dl_info info;
        if (dladdr((void *)addr, &info) != 0 && info.dli_sname != NULL)
            s->function = sym_intern_function(t, info.dli_sname);
    }
    s->approximate = !dwarf || s->line == 0;
    return s;
}

/* Makes the self table's lists on first use. */
static void sym_prepare_locked(_neap_symtab_t *t) {
    if (t->self && !t->scanned) sym_self_scan_locked(t);
}

static void sym_atfork_prepare(void) {
    pthread_mutex_lock(&sym_self.lock);
}
static void sym_atfork_parent(void) {
    pthread_mutex_unlock(&sym_self.lock);
}
static void sym_atfork_child(void) {
    /* the forking thread took it in prepare: the child's one thread owns it */
    pthread_mutex_unlock(&sym_self.lock);
}
static pthread_once_t sym_self_once = PTHREAD_ONCE_INIT;
static void sym_self_init(void) {
    /* registered after the allocator's own handlers (library constructor),
     * so this prepare runs before theirs: a resolver holding the table lock
     * can still allocate while fork waits for it */
    pthread_atfork(sym_atfork_prepare, sym_atfork_parent, sym_atfork_child);
}

/* ---------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------- */
_neap_symtab_t *_neap_symtab_self(void) {
    pthread_once(&sym_self_once, sym_self_init);
    return &sym_self;
}

/* Gives back the three tables' slot arrays (not the self table's). */
static void sym_tables_release(_neap_symtab_t *t) {
    symcache_destroy(&t->cache);
    symstrings_destroy(&t->strings);
#ifdef NEAP_HAVE_LIBDW
    symcus_destroy(&t->cus);
#endif
}

_neap_symtab_t *_neap_symtab_new(const _neap_module_t *mods, size_t n) {
    sym_arena_t arena = {0};
    _neap_symtab_t *t = sym_alloc(&arena, sizeof *t);
    if (t == NULL) return NULL;
    t->arena = arena;
    pthread_mutex_init(&t->lock, NULL);
    symcache_init(&t->cache, &sym_tables);
    symstrings_init(&t->strings, &sym_tables);
#ifdef NEAP_HAVE_LIBDW
    symcus_init(&t->cus, &sym_tables);
#endif
    size_t mods_bytes, objs_bytes;
    _neap_module_t *m = sym_array(n, sizeof *m, &mods_bytes);
    sym_object_t *o = sym_array(n, sizeof *o, &objs_bytes);
    if (m == NULL || o == NULL) goto fail;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (mods[i].path == NULL || mods[i].end <= mods[i].start) continue;
        m[k] = mods[i];
        m[k].path = sym_intern(t, mods[i].path);
        if (m[k].path == NULL) goto fail;
        k++;
    }
    sym_sort_mods(m, k);
    size_t nobjs = 0;
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && m[i].path == m[i - 1].path) {   /* one more mapping of the object */
            if (m[i].end > o[nobjs - 1].high) o[nobjs - 1].high = m[i].end;
            continue;
        }
        /* the lowest mapping: normally the file's offset 0 at its first
         * vaddr; otherwise assume vaddr - offset is the same for both */
        sym_object_t *ob = &o[nobjs++];
        ob->path = m[i].path;
        ob->low = m[i].start;
        ob->high = m[i].end;
        ob->dw_low = ob->bias = m[i].start - (uintptr_t)m[i].offset;
    }
    nobjs = sym_objs_finish(o, nobjs);
    sym_install(t, m, k, mods_bytes, o, nobjs, objs_bytes);
    return t;
fail:
    sym_array_release(m, mods_bytes);
    sym_array_release(o, objs_bytes);
    sym_tables_release(t);
    pthread_mutex_destroy(&t->lock);
    sym_arena_release(&t->arena);
    return NULL;
}

void _neap_symtab_free(_neap_symtab_t *t) {
    if (t == NULL || t->self) return;
    dw_session_end(t);
    sym_array_release(t->mods, t->mods_bytes);
    sym_array_release(t->objs, t->objs_bytes);
    sym_tables_release(t);
    pthread_mutex_destroy(&t->lock);
    sym_arena_t arena = t->arena;   /* the table is in it */
    sym_arena_release(&arena);
}

int _neap_symtab_resolve(_neap_symtab_t *t, uintptr_t pc, unsigned flags, _neap_symbol_t *out) {
    if (out == NULL) return -1;
    if (t == NULL) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    uintptr_t addr = (flags & NEAP_SYM_RETURN_ADDRESS) && pc > 0 ? pc - 1 : pc;
    pthread_mutex_lock(&t->lock);
    sym_prepare_locked(t);
    const sym_slot_t *hit = sym_cache_find(t, addr);
    if (hit != NULL) {   /* the usual case; a cached symbol is never NULL */
        *out = *hit->sym;
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    _neap_symbol_t *s = sym_lookup_locked(t, addr);
    if (s != NULL) {
        sym_cache_put(t, addr, s);
        *out = *s;
    } else {
        memset(out, 0, sizeof *out);
    }
    pthread_mutex_unlock(&t->lock);
    return s != NULL ? 0 : -1;
}

int _neap_symtab_has_dwarf(_neap_symtab_t *t) {
    if (t == NULL || !dw_available()) return 0;
    pthread_mutex_lock(&t->lock);
    int r = !t->dw_failed;
    pthread_mutex_unlock(&t->lock);
    return r;
}

size_t _neap_symtab_modules(_neap_symtab_t *t, _neap_module_t *out, size_t cap) {
    if (t == NULL) return 0;
    pthread_mutex_lock(&t->lock);
    if (t->self) sym_self_scan_locked(t);
    size_t n = t->nmods;
    for (size_t i = 0; i < n && i < cap; i++) out[i] = t->mods[i];
    pthread_mutex_unlock(&t->lock);
    return n;
}

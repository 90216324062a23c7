/* test_symbols.c -- program counters to function, file:line (label: unit).
 *
 * Exercises src/symbols.c through its internal interface (symbols.h), linked
 * against neap_nooverride and built with -g whatever the build type:
 *
 *   self      this process's table: a noinline function of this file (name,
 *             file, the call's line through NEAP_SYM_RETURN_ADDRESS), code
 *             inlined into it (the inlined function's name and line), a C
 *             library function, addresses in no module, the cache (second
 *             answers pointer-equal), the module map it exports
 *   offline   another process's view: tables made from /proc/self/maps and
 *             from the exported module map give the self table's answers
 *   dlopen    an object loaded after the first resolution is found (the
 *             module list is rescanned), and after dlclose its addresses
 *             are unknown again (argv[2]: the object, this file built as
 *             TEST_SYMBOLS_DSO)
 *   cxx       C++ names come back demangled (a function of libstdc++.so.6,
 *             dlopen'ed; skipped without it), from the self table and from
 *             an offline one
 *   threads   four threads resolving the same addresses get the same answers
 *   fallback  run with NEAP_SYMBOLS_NO_LIBDW=1 (libdw as if not installed):
 *             dladdr names of exported functions, approximate results,
 *             module and offset still right; offline tables give module
 *             and offset only
 *   bench     prints the cost of first and cached resolutions (no checks
 *             beyond the answers being right)
 *
 * When libdw cannot be loaded at all (not installed, or neap built without
 * its headers), the DWARF sections check what the fallback promises instead
 * and say so on stderr.
 */
#ifdef TEST_SYMBOLS_DSO
/* ---- the object the dlopen section loads --------------------------------- */
#include <stdint.h>

static __attribute__((noinline)) uintptr_t dso_capture(void) {
    return (uintptr_t)__builtin_return_address(0);
}

int test_symbols_dso_begin = __LINE__;
uintptr_t test_symbols_dso_function(void);
__attribute__((noinline)) uintptr_t test_symbols_dso_function(void) {
    uintptr_t ra = dso_capture();
    __asm__ volatile("" : "+r"(ra));   /* no tail call */
    return ra;
}
int test_symbols_dso_end = __LINE__;

#else
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "trace/symbols.h"
#include "neap_test.h"

#if defined(__clang__)
#define TEST_NOIPA __attribute__((noinline))
#else
#define TEST_NOIPA __attribute__((noinline, noipa))   /* no clones: the name stays */
#endif

/* ---- code to resolve ------------------------------------------------------ */
static int target_call_line, inline_call_line;

/* The caller's return address: a pc inside the caller, after the call. */
static TEST_NOIPA uintptr_t capture_ra(void) {
    return (uintptr_t)__builtin_return_address(0);
}

enum { TARGET_BEGIN = __LINE__ };
static TEST_NOIPA uintptr_t sym_target(int x) {
    uintptr_t ra = capture_ra(); target_call_line = __LINE__;
    __asm__ volatile("" : "+r"(ra));   /* no tail call */
    return ra + (uintptr_t)(x - x);
}
enum { TARGET_END = __LINE__ };

static inline __attribute__((always_inline)) uintptr_t inlined_helper(void) {
    uintptr_t ra = capture_ra(); inline_call_line = __LINE__;
    __asm__ volatile("" : "+r"(ra));
    return ra;
}
static TEST_NOIPA uintptr_t inline_outer(void) {
    uintptr_t ra = inlined_helper();
    __asm__ volatile("" : "+r"(ra));
    return ra;
}

/* ---- helpers -------------------------------------------------------------- */
static int ends_with(const char *s, const char *suffix) {
    size_t n = s ? strlen(s) : 0, m = strlen(suffix);
    return s != NULL && n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *path) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

static int same_str(const char *a, const char *b) {
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void show(const char *what, const _neap_symbol_t *s) {
    fprintf(stderr, "  %-10s %s at %s:%d in %s+0x%lx%s\n", what, s->function ? s->function : "?",
            s->file ? s->file : "?", s->line, s->module ? s->module : "?",
            (unsigned long)s->module_offset, s->approximate ? " (approximate)" : "");
}

static uintptr_t libc_qsort(void) {
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    CHECK(h != NULL);
    void *p = dlsym(h, "qsort");   /* the C library's own, whatever interposes it */
    CHECK(p != NULL);
    dlclose(h);
    return (uintptr_t)p;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The pcs every section resolves, captured once. */
typedef struct probes {
    uintptr_t target_ra;     /* return address inside sym_target */
    uintptr_t inline_ra;     /* return address inside inlined_helper, in inline_outer */
    uintptr_t target_entry;  /* sym_target's first instruction */
    uintptr_t qsort_entry;   /* the C library's qsort */
} probes_t;

static probes_t take_probes(void) {
    probes_t p;
    p.target_ra = sym_target(1);
    p.inline_ra = inline_outer();
    p.target_entry = (uintptr_t)&sym_target;
    p.qsort_entry = libc_qsort();
    return p;
}

static void check_unknown(const _neap_symbol_t *s) {
    CHECK(s->function == NULL);
    CHECK(s->file == NULL);
    CHECK(s->line == 0);
    CHECK(s->module == NULL);
    CHECK(s->module_offset == 0);
}

/* What a table must answer for this process's probes.  dwarf: the table
 * uses libdw; self: it is this process's (without libdw, dladdr still names
 * exported functions; an offline table then names none). */
static void check_probes(_neap_symtab_t *t, const probes_t *p, int dwarf, int self) {
    _neap_symbol_t s;
    CHECK(_neap_symtab_resolve(t, p->target_ra, NEAP_SYM_RETURN_ADDRESS, &s) == 0);
    show("target", &s);
    CHECK(ends_with(s.module, "/test_symbols"));
    if (dwarf) {
        CHECK(same_str(s.function, "sym_target"));
        CHECK(ends_with(s.file, "/test_symbols.c"));
        CHECKF(s.line > TARGET_BEGIN && s.line < TARGET_END, "line %d not in %d..%d", s.line,
               TARGET_BEGIN, TARGET_END);
        CHECKF(s.line == target_call_line, "line %d, the call is on %d", s.line, target_call_line);
        CHECK(s.approximate == 0);
    } else {
        /* not in the dynamic symbol table: no name without DWARF */
        CHECK(s.function == NULL || same_str(s.function, "sym_target"));
        CHECK(s.file == NULL && s.line == 0);
        CHECK(s.approximate == 1);
    }

    CHECK(_neap_symtab_resolve(t, p->inline_ra, NEAP_SYM_RETURN_ADDRESS, &s) == 0);
    show("inlined", &s);
    if (dwarf) {
        CHECK(same_str(s.function, "inlined_helper"));
        CHECK(ends_with(s.file, "/test_symbols.c"));
        CHECKF(s.line == inline_call_line, "line %d, the call is on %d", s.line, inline_call_line);
    }

    CHECK(_neap_symtab_resolve(t, p->target_entry, 0, &s) == 0);
    show("entry", &s);
    if (dwarf) {
        CHECK(same_str(s.function, "sym_target"));
        CHECK(s.line >= TARGET_BEGIN && s.line < TARGET_END);
    }

    CHECK(_neap_symtab_resolve(t, p->qsort_entry, 0, &s) == 0);
    show("qsort", &s);
    CHECK(strstr(base_name(s.module), "libc.so") == base_name(s.module));
    if (dwarf || self) CHECK(same_str(s.function, "qsort"));
    else CHECK(s.function == NULL);
}

/* ---- self ----------------------------------------------------------------- */
static void test_self(void) {
    _neap_symtab_t *t = _neap_symtab_self();
    CHECK(t != NULL && t == _neap_symtab_self());
    int dwarf = _neap_symtab_has_dwarf(t);
    if (!dwarf) fprintf(stderr, "test_symbols: libdw not usable, checking the dladdr fallback\n");
    probes_t p = take_probes();
    check_probes(t, &p, dwarf, 1);

    /* the exact address of the call and the return address name one line */
    _neap_symbol_t a, b, c;
    CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &a) == 0);
    CHECK(_neap_symtab_resolve(t, p.target_ra - 1, 0, &b) == 0);
    CHECK(a.function == b.function && a.file == b.file && a.line == b.line);
    CHECK(a.module_offset == b.module_offset);

    /* cached: the same pointers; module_offset consistent with the entry's */
    CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &c) == 0);
    CHECK(memcmp(&a, &c, sizeof a) == 0);
    CHECK(_neap_symtab_resolve(t, p.target_entry, 0, &c) == 0);
    CHECK(c.module == a.module);
    CHECK(a.module_offset - c.module_offset == p.target_ra - 1 - p.target_entry);
    Dl_info info;
    CHECK(dladdr((void *)p.target_entry, &info) != 0);
    CHECK(c.module_offset == p.target_entry - (uintptr_t)info.dli_fbase);   /* PIE: base = bias */

    /* addresses in no module: unknown, not an error */
    int local = 0;
    /* the middle page of three: a return address is looked up one byte
     * back, and a page of its own may sit right after a module's last
     * segment (seen under ASan, after libubsan's) */
    char *anon = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED);
    uintptr_t nowhere[] = {0, 1, 16, 4096, (uintptr_t)&local, (uintptr_t)anon + 4096, UINTPTR_MAX};
    for (size_t i = 0; i < sizeof nowhere / sizeof nowhere[0]; i++) {
        memset(&a, 0x55, sizeof a);
        CHECK(_neap_symtab_resolve(t, nowhere[i], 0, &a) == 0);
        check_unknown(&a);
        CHECK(_neap_symtab_resolve(t, nowhere[i], NEAP_SYM_RETURN_ADDRESS, &a) == 0);
        check_unknown(&a);
    }
    munmap(anon, 3 * 4096);
    CHECK(_neap_symtab_resolve(NULL, p.target_ra, 0, &a) == -1);
    CHECK(a.function == NULL && a.module == NULL);
    CHECK(_neap_symtab_resolve(t, p.target_ra, 0, NULL) == -1);
    _neap_symtab_free(t);   /* ignored for the self table: still there, still cached */
    CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &c) == 0);
    CHECK(c.function == b.function && c.file == b.file && c.line == b.line);

    /* the exported map: this program, the C library, sane mappings */
    size_t n = _neap_symtab_modules(t, NULL, 0);
    CHECK(n >= 3);
    _neap_module_t *mods = calloc(n, sizeof *mods);
    CHECK(mods != NULL);
    CHECK(_neap_symtab_modules(t, mods, n) == n);
    int have_exe = 0, have_libc = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(mods[i].path != NULL);
        CHECK(mods[i].start < mods[i].end && mods[i].start % 4096 == 0 && mods[i].end % 4096 == 0);
        CHECK(mods[i].offset % 4096 == 0);
        if (ends_with(mods[i].path, "/test_symbols") && mods[i].start <= p.target_entry &&
            p.target_entry < mods[i].end)
            have_exe = 1;
        if (strstr(base_name(mods[i].path), "libc.so") == base_name(mods[i].path)) have_libc = 1;
    }
    CHECK(have_exe && have_libc);
    free(mods);
}

/* ---- offline -------------------------------------------------------------- */
/* The module map of this process as a trace file would hold it, from
 * /proc/self/maps: every mapping of a file. */
static size_t maps_modules(_neap_module_t *mods, size_t cap, char (*paths)[512], int exec_only) {
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    char line[1024];
    size_t n = 0;
    while (n < cap && fgets(line, sizeof line, f) != NULL) {
        unsigned long start, end, offset;
        char perms[8];
        int pos = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &start, &end, perms, &offset, &pos) < 4 ||
            pos == 0)
            continue;
        if (exec_only && perms[2] != 'x') continue;
        char *path = line + pos;
        path[strcspn(path, "\n")] = 0;
        if (path[0] != '/') continue;
        snprintf(paths[n], sizeof paths[n], "%s", path);
        mods[n].start = start;
        mods[n].end = end;
        mods[n].offset = offset;
        mods[n].path = paths[n];
        n++;
    }
    fclose(f);
    return n;
}

static void compare_tables(_neap_symtab_t *self, _neap_symtab_t *other, const uintptr_t *pcs,
                           size_t n, int exact_module) {
    for (size_t i = 0; i < n; i++) {
        _neap_symbol_t a, b;
        CHECK(_neap_symtab_resolve(self, pcs[i], NEAP_SYM_RETURN_ADDRESS, &a) == 0);
        CHECK(_neap_symtab_resolve(other, pcs[i], NEAP_SYM_RETURN_ADDRESS, &b) == 0);
        CHECKF(same_str(a.function, b.function), "pc %#lx: %s / %s", (unsigned long)pcs[i],
               a.function ? a.function : "?", b.function ? b.function : "?");
        CHECK(same_str(a.file, b.file));
        CHECK(a.line == b.line);
        CHECK(a.approximate == b.approximate);
        CHECKF(a.module_offset == b.module_offset, "pc %#lx: offset %#lx / %#lx",
               (unsigned long)pcs[i], (unsigned long)a.module_offset, (unsigned long)b.module_offset);
        if (exact_module) CHECK(same_str(a.module, b.module));
        else CHECK(same_str(base_name(a.module), base_name(b.module)));
    }
}

static void test_offline(void) {
    _neap_symtab_t *self = _neap_symtab_self();
    probes_t p = take_probes();
    int dwarf = _neap_symtab_has_dwarf(self);
    _neap_symbol_t s;
    CHECK(_neap_symtab_resolve(self, p.target_ra, 0, &s) == 0);   /* libdw loaded before the map is read */

    enum { CAP = 1024 };
    static _neap_module_t mods[CAP];
    static char paths[CAP][512];
    size_t n = maps_modules(mods, CAP, paths, 0);
    CHECK(n >= 3);
    _neap_symtab_t *t = _neap_symtab_new(mods, n);
    CHECK(t != NULL);
    memset(paths, 0, sizeof paths);   /* the table copied them */
    CHECK(_neap_symtab_has_dwarf(t) == dwarf);
    check_probes(t, &p, dwarf, 0);

    /* the same answers as the self table, for the probes and for a sweep
     * through sym_target, inline_outer and qsort */
    uintptr_t pcs[64 + 4];
    size_t k = 0;
    pcs[k++] = p.target_ra;
    pcs[k++] = p.inline_ra;
    pcs[k++] = p.target_entry + 1;
    pcs[k++] = p.qsort_entry + 1;
    for (int i = 0; i < 24; i++) pcs[k++] = p.target_entry + 1 + (uintptr_t)i;
    for (int i = 0; i < 24; i++) pcs[k++] = (uintptr_t)&inline_outer + 1 + (uintptr_t)i;
    for (int i = 0; i < 16; i++) pcs[k++] = p.qsort_entry + 1 + 4 * (uintptr_t)i;
    if (dwarf) compare_tables(self, t, pcs, k, 0);

    /* only the executable mappings (a writer may keep just those): the
     * lowest is not at offset 0, its start - offset stands for the bias */
    static _neap_module_t xmods[CAP];
    static char xpaths[CAP][512];
    size_t xn = maps_modules(xmods, CAP, xpaths, 1);
    CHECK(xn >= 2);
    _neap_symtab_t *tx = _neap_symtab_new(xmods, xn);
    CHECK(tx != NULL);
    check_probes(tx, &p, dwarf, 0);
    if (dwarf) compare_tables(self, tx, pcs, k, 0);
    _neap_symtab_free(tx);

    /* an address in no mapping of the map */
    CHECK(_neap_symtab_resolve(t, 4096, 0, &s) == 0);
    check_unknown(&s);

    /* the map the self table exports gives the same answers, module paths
     * included */
    size_t m = _neap_symtab_modules(self, NULL, 0);
    _neap_module_t *exported = calloc(m, sizeof *exported);
    CHECK(exported != NULL && _neap_symtab_modules(self, exported, m) == m);
    _neap_symtab_t *t2 = _neap_symtab_new(exported, m);
    CHECK(t2 != NULL);
    free(exported);
    check_probes(t2, &p, dwarf, 0);
    if (dwarf) compare_tables(self, t2, pcs, k, 1);

    /* cache hits in an offline table: pointer-equal strings */
    _neap_symbol_t a, b;
    CHECK(_neap_symtab_resolve(t2, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &a) == 0);
    CHECK(_neap_symtab_resolve(t2, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &b) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(a.module != NULL && (!dwarf || a.function != NULL));

    /* an empty map: every address unknown */
    _neap_symtab_t *t3 = _neap_symtab_new(NULL, 0);
    CHECK(t3 != NULL);
    CHECK(_neap_symtab_resolve(t3, p.target_ra, 0, &s) == 0);
    check_unknown(&s);
    _neap_symtab_free(t3);
    _neap_symtab_free(t2);
    _neap_symtab_free(t);
    _neap_symtab_free(NULL);
}

/* ---- dlopen --------------------------------------------------------------- */
static void test_dlopen(const char *dso) {
    CHECK(dso != NULL);
    _neap_symtab_t *t = _neap_symtab_self();
    int dwarf = _neap_symtab_has_dwarf(t);
    probes_t p = take_probes();
    _neap_symbol_t s;
    CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &s) == 0);

    void *h = dlopen(dso, RTLD_NOW | RTLD_LOCAL);
    CHECKF(h != NULL, "%s", dlerror());
    uintptr_t (*fn)(void);
    void *sym = dlsym(h, "test_symbols_dso_function");
    int *begin = dlsym(h, "test_symbols_dso_begin"), *end = dlsym(h, "test_symbols_dso_end");
    CHECK(sym != NULL && begin != NULL && end != NULL);
    memcpy(&fn, &sym, sizeof sym);
    uintptr_t pc = fn() - 1;   /* inside the call */
    CHECK(_neap_symtab_resolve(t, pc, 0, &s) == 0);
    show("dso", &s);
    CHECK(same_str(base_name(s.module), base_name(dso)));
    CHECK(same_str(s.function, "test_symbols_dso_function"));   /* exported: dladdr knows it too */
    if (dwarf) {
        CHECK(ends_with(s.file, "/test_symbols.c"));
        CHECK(s.line > *begin && s.line < *end);
    }
    CHECK(dlclose(h) == 0);

    /* unloaded: the cache is emptied and the address belongs to nothing */
    if (dlopen(dso, RTLD_NOW | RTLD_NOLOAD) == NULL) {
        CHECK(_neap_symtab_resolve(t, pc + 1, 0, &s) == 0);   /* a new address: rescan */
        check_unknown(&s);
        CHECK(_neap_symtab_resolve(t, pc, 0, &s) == 0);
        check_unknown(&s);
    } else {
        fprintf(stderr, "test_symbols: %s stayed loaded after dlclose\n", dso);
    }
    /* the rest of the process still resolves */
    check_probes(t, &p, dwarf, 1);
}

/* ---- cxx ------------------------------------------------------------------ */
static void test_cxx(void) {
    void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_GLOBAL);
    if (h == NULL) {
        fprintf(stderr, "test_symbols: no libstdc++.so.6, cxx skipped\n");
        exit(77); /* ctest's SKIP_RETURN_CODE: skipped, never passed */
    }
    void *what = dlsym(h, "_ZNKSt9exception4whatEv");
    CHECK(what != NULL);
    _neap_symtab_t *t = _neap_symtab_self();
    _neap_symbol_t s;
    CHECK(_neap_symtab_resolve(t, (uintptr_t)what, 0, &s) == 0);
    show("cxx", &s);
    CHECK(same_str(s.function, "std::exception::what() const"));
    CHECK(strstr(base_name(s.module), "libstdc++.so") == base_name(s.module));

    size_t m = _neap_symtab_modules(t, NULL, 0);
    _neap_module_t *mods = calloc(m, sizeof *mods);
    CHECK(mods != NULL && _neap_symtab_modules(t, mods, m) == m);
    _neap_symtab_t *off = _neap_symtab_new(mods, m);
    free(mods);
    CHECK(off != NULL);
    _neap_symbol_t o;
    CHECK(_neap_symtab_resolve(off, (uintptr_t)what, 0, &o) == 0);
    if (_neap_symtab_has_dwarf(off)) CHECK(same_str(o.function, "std::exception::what() const"));
    else CHECK(o.function == NULL);
    CHECK(o.module_offset == s.module_offset);
    _neap_symtab_free(off);
}

/* ---- threads -------------------------------------------------------------- */
enum { NTHREADS = 4, NPCS = 48 };
static uintptr_t thread_pcs[NPCS];
static _neap_symbol_t thread_results[NTHREADS][NPCS];

static void *thread_main(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < NPCS; i++) {
            int j = (i * 7 + id * 5 + round) % NPCS;
            CHECK(_neap_symtab_resolve(_neap_symtab_self(), thread_pcs[j], NEAP_SYM_RETURN_ADDRESS,
                                       &thread_results[id][j]) == 0);
        }
    return NULL;
}

static void test_threads(void) {
    probes_t p = take_probes();
    for (int i = 0; i < NPCS; i++)
        thread_pcs[i] = (i % 2 ? p.target_entry : p.qsort_entry) + 1 + (uintptr_t)i;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 1; i < NTHREADS; i++)
        CHECK(memcmp(thread_results[0], thread_results[i], sizeof thread_results[0]) == 0);
    for (int j = 0; j < NPCS; j++) CHECK(thread_results[0][j].module != NULL);
}

/* ---- fallback ------------------------------------------------------------- */
static void test_fallback(void) {
    const char *env = getenv("NEAP_SYMBOLS_NO_LIBDW");
    CHECKF(env != NULL && strcmp(env, "1") == 0, "run with NEAP_SYMBOLS_NO_LIBDW=1");
    _neap_symtab_t *t = _neap_symtab_self();
    CHECK(_neap_symtab_has_dwarf(t) == 0);
    probes_t p = take_probes();
    check_probes(t, &p, 0, 1);

    /* module offsets are still exact */
    _neap_symbol_t s;
    Dl_info info;
    CHECK(_neap_symtab_resolve(t, p.qsort_entry, 0, &s) == 0);
    CHECK(dladdr((void *)p.qsort_entry, &info) != 0);
    CHECK(s.module_offset == p.qsort_entry - (uintptr_t)info.dli_fbase);
    CHECK(s.approximate == 1 && s.file == NULL && s.line == 0);

    /* offline without libdw: module and offset only */
    size_t m = _neap_symtab_modules(t, NULL, 0);
    _neap_module_t *mods = calloc(m, sizeof *mods);
    CHECK(mods != NULL && _neap_symtab_modules(t, mods, m) == m);
    _neap_symtab_t *off = _neap_symtab_new(mods, m);
    free(mods);
    CHECK(off != NULL && _neap_symtab_has_dwarf(off) == 0);
    check_probes(off, &p, 0, 0);
    _neap_symbol_t o;
    CHECK(_neap_symtab_resolve(off, p.qsort_entry, 0, &o) == 0);
    CHECK(o.function == NULL && o.module_offset == s.module_offset && o.approximate == 1);
    _neap_symtab_free(off);
}

/* ---- bench ---------------------------------------------------------------- */
/* Mean ns of a first resolution of n new addresses from a, step bytes apart. */
static double bench_new(_neap_symtab_t *t, uintptr_t a, int n, int step) {
    _neap_symbol_t s;
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) CHECK(_neap_symtab_resolve(t, a + (uintptr_t)(i * step), 0, &s) == 0);
    return (double)(now_ns() - t0) / n;
}

static void test_bench(void) {
    probes_t p = take_probes();
    _neap_symtab_t *t = _neap_symtab_self();
    _neap_symbol_t s, q;
    uint64_t t0 = now_ns();
    CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &s) == 0);
    uint64_t t1 = now_ns();
    CHECK(_neap_symtab_resolve(t, p.qsort_entry, 0, &q) == 0);
    uint64_t t2 = now_ns();
    /* new addresses in modules already read: this program's two functions,
     * then qsort, then 64 KiB of the C library spread over many functions */
    double own = bench_new(t, p.target_entry + 1, 30, 1);
    double own2 = bench_new(t, (uintptr_t)&inline_outer + 1, 30, 1);
    double libc_near = bench_new(t, p.qsort_entry + 1, 60, 1);
    double libc_far = bench_new(t, p.qsort_entry + 4096, 256, 251);
    int reps = (int)test_scaled(1000000);
    uint64_t t3 = now_ns();
    for (int i = 0; i < reps; i++)
        CHECK(_neap_symtab_resolve(t, p.target_ra, NEAP_SYM_RETURN_ADDRESS, &s) == 0);
    uint64_t t4 = now_ns();
    CHECK(s.module != NULL);
    printf("libdw: %s\n", _neap_symtab_has_dwarf(t) ? "yes" : "no (dladdr)");
    printf("first resolution in the process (module scan, libdw load, this program's DWARF): "
           "%.3f ms\n", (double)(t1 - t0) / 1e6);
    printf("first resolution in the C library (%s): %.3f ms\n",
           q.approximate ? "symbols only" : "with its DWARF", (double)(t2 - t1) / 1e6);
    printf("new address, module read: this program %.1f us, %.1f us (inlined code); "
           "the C library %.1f us (same function), %.1f us (256 places over 64 KiB)\n",
           own / 1e3, own2 / 1e3, libc_near / 1e3, libc_far / 1e3);
    printf("cached resolution: %.1f ns (mean of %d)\n", (double)(t4 - t3) / reps, reps);
}

int main(int argc, char **argv) {
    const char *section = argc > 1 ? argv[1] : "self";
    if (strcmp(section, "self") == 0) test_self();
    else if (strcmp(section, "offline") == 0) test_offline();
    else if (strcmp(section, "dlopen") == 0) test_dlopen(argc > 2 ? argv[2] : NULL);
    else if (strcmp(section, "cxx") == 0) test_cxx();
    else if (strcmp(section, "threads") == 0) test_threads();
    else if (strcmp(section, "fallback") == 0) test_fallback();
    else if (strcmp(section, "bench") == 0) test_bench();
    else {
        fprintf(stderr, "usage: test_symbols self|offline|dlopen DSO|cxx|threads|fallback|bench\n");
        return 2;
    }
    return test_status();
}
#endif

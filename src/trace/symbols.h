/* symbols.h -- program counters to function, file:line (symbols.c).
 *
 * The tracing layer captures allocation stacks as raw program counters and
 * resolves them only when a report is asked for.  A symbol table knows the
 * ELF files mapped into one process (a module map) and answers "which
 * function, which source line" for an address in that process:
 *
 *   _neap_symtab_self()          this process (dl_iterate_phdr; libdw is
 *                                loaded with dlopen on first use, dladdr()
 *                                stands in when it cannot be)
 *   _neap_symtab_new(mods, n)    another process, finished or not, from its
 *                                recorded module map; the ELF files are read
 *                                from disk (neap report)
 *
 * Everything a table returns (strings, the module list) lives in the table's
 * private memory (anonymous mappings through os.c, never the allocator being
 * traced) and stays valid until the table is freed; the self table is never
 * freed.  libdw itself allocates with malloc: the tracing layer marks its
 * thread as inside tracing around calls into this module.
 *
 * Thread safety: every call on a table takes that table's lock, so any
 * thread may call any function (the self table is shared by all).
 */
#ifndef NEAP_SYMBOLS_H
#define NEAP_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

/* One mapping of an ELF file, as in /proc/PID/maps: [start, end) maps the
 * file's bytes from offset on.  A module map lists every such mapping (an
 * ELF file usually has 2 to 5, one per PT_LOAD segment). */
typedef struct _neap_module {
    uintptr_t start;     /* first address of the mapping */
    uintptr_t end;       /* one past its last address */
    uint64_t offset;     /* file offset mapped at start (page-aligned) */
    const char *path;    /* the mapped file; pseudo-files ("[vdso]") allowed */
} _neap_module_t;

/* What an address resolved to.  Any field may be unknown; the strings are
 * the table's, shared between results (equal strings are one pointer). */
typedef struct _neap_symbol {
    const char *function;    /* demangled when C++ and __cxa_demangle can be found;
                                for an address inside inlined code, the inlined
                                function (the one `line` belongs to); NULL if unknown */
    const char *file;        /* source file as DWARF's line table names it, joined
                                to the unit's compilation directory when relative
                                to it (relative only when that directory is, as in
                                distributions' builds); NULL if unknown */
    int line;                /* source line, 0 if unknown */
    const char *module;      /* the ELF file holding the address; NULL if the
                                address is in no known module */
    uintptr_t module_offset; /* the looked-up address minus the module's load bias:
                                the address in the ELF file's own terms (what
                                `addr2line -e module` takes); 0 if no module */
    int approximate;         /* 1: no DWARF line information was used: the function
                                comes from a symbol table (dladdr's dynamic symbols
                                when libdw is missing) and file, line are unknown;
                                also 1 for every result of a table without libdw */
} _neap_symbol_t;

typedef struct _neap_symtab _neap_symtab_t;

/* Flags of _neap_symtab_resolve. */
#define NEAP_SYM_RETURN_ADDRESS 1u  /* pc is a return address (a frame's saved pc):
                                       pc - 1, inside the call instruction, is looked
                                       up, so the line is the call's even when the
                                       call is the last instruction of its function
                                       or of its line */

/* The table of this process, made on first call (never fails, never freed;
 * _neap_symtab_free ignores it).  Its module list comes from
 * dl_iterate_phdr, with the paths of the main program and of objects
 * opened by a relative name from /proc/self/maps.  Before resolving an
 * address that is not cached it checks the loader's load and unload
 * counters (one dl_iterate_phdr call that stops at once) and rescans when
 * they moved (dlopen, dlclose); after an unload the cache is emptied
 * (results already handed out stay valid).  So an address in an object
 * unloaded before it was first resolved comes back unknown, and one cached
 * before the unload keeps its answer until some other address misses.
 * libdw is dlopen'ed ("libdw.so.1") the first time an address is resolved;
 * when that fails, or NEAP_SYMBOLS_NO_LIBDW=1 is in the environment (a test
 * and diagnostic switch), dladdr() answers: exported function names only,
 * approximate = 1.  The vDSO and files deleted since they were mapped get
 * dladdr's answer with libdw too.  If DEBUGINFOD_URLS is set, libdw may
 * fetch missing debug files over the network (its own choice). */
_neap_symtab_t *_neap_symtab_self(void);

/* A table for another process from its module map (n entries, copied with
 * their paths; the order does not matter; entries without a path or with
 * end <= start are ignored).  Mappings of one path make one object.  Its
 * load bias is taken as (lowest mapping's start - its offset) less the
 * file's first PT_LOAD vaddr, which libdw reads from the file: exact when
 * the lowest mapping is the offset-0 one (as _neap_symtab_modules lists
 * them), and when only the executable mappings were kept as long as their
 * segment has vaddr - offset equal to the first's (the usual layouts).
 * The ELF files are opened by path when first needed, so they must still
 * be the ones the process ran (nothing checks build ids).  Without libdw
 * only module and module_offset are found (module_offset then takes the
 * first PT_LOAD vaddr to be 0: right for shared objects and PIE programs,
 * not for fixed-address ones).  Returns NULL when memory cannot be
 * mapped. */
_neap_symtab_t *_neap_symtab_new(const _neap_module_t *mods, size_t n);

/* Frees a table made by _neap_symtab_new and everything it returned
 * (NULL and the self table: nothing happens). */
void _neap_symtab_free(_neap_symtab_t *t);

/* Resolves pc (flags: NEAP_SYM_RETURN_ADDRESS or 0) into *out.  Returns 0
 * with *out filled, fields unknown where nothing was found (an address in no
 * module is not an error); -1 when t or out is NULL or memory for the result
 * could not be mapped (*out is then cleared, if out is not NULL).  Results
 * are cached per looked-up address: the second call for it costs a lock and
 * a hash lookup (about 5 ns) and returns the same strings (pointer-equal).
 * A first resolution costs about 1-20 us once the module's files are open
 * and indexed; the first one in a module adds reading its symbol and line
 * tables (below 1 ms for a small program, tens of ms for the C library with
 * its separate debug file). */
int _neap_symtab_resolve(_neap_symtab_t *t, uintptr_t pc, unsigned flags, _neap_symbol_t *out);

/* 1 if the table resolves through libdw (DWARF, ELF symbol tables), 0 if it
 * fell back to dladdr (self) or module offsets only (another process).
 * Loads libdw if not tried yet. */
int _neap_symtab_has_dwarf(_neap_symtab_t *t);

/* The table's module map, one entry per mapping: copies up to cap entries
 * into out (paths owned by the table) and returns how many there are.  For
 * the self table the list is brought up to date first, so this is what a
 * trace file records for _neap_symtab_new to read back.  The main program's
 * path comes from /proc/self/maps ("/proc/self/exe" if that cannot be read). */
size_t _neap_symtab_modules(_neap_symtab_t *t, _neap_module_t *out, size_t cap);

#endif

/* options.c -- every runtime option in one table.
 *
 *   option            env variable          default   unit
 *   purge_delay       NEAP_PURGE_DELAY      10        ms
 *   purge_max         NEAP_PURGE_MAX        8MiB      bytes
 *   arena_reserve     NEAP_ARENA_RESERVE    1         arenas
 *   show_stats        NEAP_SHOW_STATS       0         bool
 *   verbose           NEAP_VERBOSE          0         bool
 *   stats_fd          NEAP_STATS_FD         -1        fd
 *   publish           NEAP_PUBLISH          0         ms (0: off)
 *   background        NEAP_BACKGROUND       0         bool
 *   run_pid           NEAP_RUN_PID          0         pid (set by `neap run`)
 *   trace_frames      NEAP_TRACE_FRAMES     32        frames (with NEAP_TRACE=FILE)
 *   trace_sample      NEAP_TRACE_SAMPLE     0         bytes (0: every allocation)
 *   trace_unwind      NEAP_TRACE_UNWIND     0         0 auto, 1 DWARF, 2 frame pointers
 *   validate          NEAP_VALIDATE         0         slow paths between heap validations
 *                                                     (0: as the debug level says)
 *   purge_batch       NEAP_PURGE_BATCH      1         bool (0: madvise per range)
 *   debug_malloc      NEAP_DEBUG_MALLOC     0         bool: the debug mode (debug.c), fixed
 *                                                     at the first allocation
 *   trace_python      NEAP_TRACE_PYTHON     1         0 C frames, 1 Python frames, 2 both
 *   mesh              NEAP_MESH             0         bool: meshing (mesh.c), fixed at the
 *                                                     first allocation
 *
 * NEAP_TRACE=FILE itself, a path, is read by trace.c.
 *
 * Read once: at process start, or, if the environment is not set up yet
 * then, from the library constructor.  A malformed or out-of-range value
 * prints a warning and keeps the default; it never stops the program.
 * neap_option_set changes a value at run time.
 */
#include "core/internal.h"

#include <errno.h>
#include <limits.h>

typedef enum { NEAP_UNIT_NUM, NEAP_UNIT_BYTES, NEAP_UNIT_MS, NEAP_UNIT_BOOL } neap_unit_t;

typedef struct neap_option_desc_s {
    const char *name;   /* NEAP_<name> */
    long def;           /* default */
    long min, max;      /* accepted range */
    neap_unit_t unit;
} neap_option_desc_t;

static const neap_option_desc_t neap_option_desc[NEAP_OPTION_COUNT] = {
    [NEAP_OPTION_PURGE_DELAY] = {"PURGE_DELAY", 10, 0, 3600000, NEAP_UNIT_MS},
    [NEAP_OPTION_PURGE_MAX] = {"PURGE_MAX", 8L << 20, 0, 1L << 40, NEAP_UNIT_BYTES},
    [NEAP_OPTION_ARENA_RESERVE] = {"ARENA_RESERVE", 1, 0, 1024, NEAP_UNIT_NUM},
    [NEAP_OPTION_SHOW_STATS] = {"SHOW_STATS", 0, 0, 1, NEAP_UNIT_BOOL},
    [NEAP_OPTION_VERBOSE] = {"VERBOSE", 0, 0, 1, NEAP_UNIT_BOOL},
    [NEAP_OPTION_STATS_FD] = {"STATS_FD", -1, -1, INT_MAX, NEAP_UNIT_NUM},
    [NEAP_OPTION_PUBLISH] = {"PUBLISH", 0, 0, 3600000, NEAP_UNIT_MS},
    [NEAP_OPTION_RUN_PID] = {"RUN_PID", 0, 0, INT_MAX, NEAP_UNIT_NUM},
    [NEAP_OPTION_BACKGROUND] = {"BACKGROUND", 0, 0, 1, NEAP_UNIT_BOOL},
    [NEAP_OPTION_TRACE_FRAMES] = {"TRACE_FRAMES", 32, 1, 128, NEAP_UNIT_NUM},
    [NEAP_OPTION_TRACE_SAMPLE] = {"TRACE_SAMPLE", 0, 0, 1L << 40, NEAP_UNIT_BYTES},
    [NEAP_OPTION_TRACE_UNWIND] = {"TRACE_UNWIND", 0, 0, 2, NEAP_UNIT_NUM},
    [NEAP_OPTION_VALIDATE] = {"VALIDATE", 0, 0, 1L << 30, NEAP_UNIT_NUM},
    [NEAP_OPTION_PURGE_BATCH] = {"PURGE_BATCH", 1, 0, 1, NEAP_UNIT_BOOL},
    [NEAP_OPTION_DEBUG_MALLOC] = {"DEBUG_MALLOC", 0, 0, 1, NEAP_UNIT_BOOL},
    [NEAP_OPTION_TRACE_PYTHON] = {"TRACE_PYTHON", 1, 0, 2, NEAP_UNIT_NUM},
    [NEAP_OPTION_MESH] = {"MESH", 0, 0, 1, NEAP_UNIT_BOOL},
};

long _neap_options[NEAP_OPTION_COUNT] = {
    [NEAP_OPTION_PURGE_DELAY] = 10,   [NEAP_OPTION_PURGE_MAX] = 8L << 20,
    [NEAP_OPTION_ARENA_RESERVE] = 1,  [NEAP_OPTION_SHOW_STATS] = 0,
    [NEAP_OPTION_VERBOSE] = 0,        [NEAP_OPTION_STATS_FD] = -1,
    [NEAP_OPTION_PUBLISH] = 0,        [NEAP_OPTION_RUN_PID] = 0,
    [NEAP_OPTION_BACKGROUND] = 0,     [NEAP_OPTION_TRACE_FRAMES] = 32,
    [NEAP_OPTION_TRACE_SAMPLE] = 0,   [NEAP_OPTION_TRACE_UNWIND] = 0,
    [NEAP_OPTION_VALIDATE] = 0,       [NEAP_OPTION_PURGE_BATCH] = 1,
    [NEAP_OPTION_DEBUG_MALLOC] = 0,   [NEAP_OPTION_TRACE_PYTHON] = 1,
    [NEAP_OPTION_MESH] = 0,
};

static int neap_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static bool neap_word_is(const char *s, const char *w) {
    for (; *s && *w; s++, w++)
        if (neap_lower((unsigned char)*s) != *w) return false;
    return *s == 0 && *w == 0;
}

/* Parses "12", "4MiB", "4m", "1g", "on", "true".  Returns false when malformed. */
static bool neap_option_parse(const char *s, neap_unit_t unit, long *out) {
    if (unit == NEAP_UNIT_BOOL) {
        if (neap_word_is(s, "1") || neap_word_is(s, "on") || neap_word_is(s, "true") || neap_word_is(s, "yes")) {
            *out = 1;
            return true;
        }
        if (neap_word_is(s, "0") || neap_word_is(s, "off") || neap_word_is(s, "false") || neap_word_is(s, "no")) {
            *out = 0;
            return true;
        }
        return false;
    }
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s < '0' || *s > '9') return false;
    unsigned long long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > (1ull << 50)) return false;
    }
    if (*s != 0) {
        if (unit != NEAP_UNIT_BYTES) {
            if (unit == NEAP_UNIT_MS && neap_word_is(s, "ms")) goto done;
            return false;
        }
        unsigned shift;
        switch (neap_lower((unsigned char)*s)) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return false;
        }
        s++;
        if (!(*s == 0 || neap_word_is(s, "b") || neap_word_is(s, "ib"))) return false;
        /* 2^34 GiB would wrap to 0: a value past LONG_MAX is malformed */
        if (v > (unsigned long long)LONG_MAX >> shift) return false;
        v <<= shift;
    }
done:
    if (v > (unsigned long long)LONG_MAX) return false;
    *out = neg ? -(long)v : (long)v;
    return true;
}

void _neap_options_init(void) {
    static bool done;
    if (done || !_neap_os_env_ready()) return;
    done = true;
    char name[64];
    for (int i = 0; i < NEAP_OPTION_COUNT; i++) {
        const neap_option_desc_t *d = &neap_option_desc[i];
        neap_buf_t b = {name, 0, sizeof name};
        _neap_buf_str(&b, "NEAP_");
        _neap_buf_str(&b, d->name);
        const char *v = _neap_os_getenv(name);
        if (v == NULL || *v == 0) continue;
        long val;
        if (!neap_option_parse(v, d->unit, &val) || val < d->min || val > d->max) {
            char detail[160];
            neap_buf_t db = {detail, 0, sizeof detail};
            _neap_buf_str(&db, name);
            _neap_buf_str(&db, "=");
            _neap_buf_str_escaped(&db, v, 48);   /* the environment's bytes never reach a terminal raw */
            _neap_buf_str(&db, " ignored, using the default");
            _neap_warning("malformed or out-of-range option", detail);
            continue;
        }
        _neap_options[i] = val;
    }
}

long neap_option_get(neap_option_t opt) {
    if ((unsigned)opt >= NEAP_OPTION_COUNT) {
        errno = EINVAL;
        return -1;
    }
    return _neap_options[opt];
}

int neap_option_set(neap_option_t opt, long value) {
    if ((unsigned)opt >= NEAP_OPTION_COUNT) {
        errno = EINVAL;
        return -1;
    }
    const neap_option_desc_t *d = &neap_option_desc[opt];
    if (value < d->min || value > d->max) {
        errno = ERANGE;
        return -1;
    }
    /* the debug mode (debug.c) and meshing (mesh.c) are fixed when the
     * process starts */
    if ((opt == NEAP_OPTION_DEBUG_MALLOC || opt == NEAP_OPTION_MESH) && value != _neap_options[opt] &&
        atomic_load_explicit(&_neap_initialized, memory_order_acquire)) {
        errno = EBUSY;
        return -1;
    }
    __atomic_store_n(&_neap_options[opt], value, __ATOMIC_RELAXED);
    return 0;
}

const char *neap_option_name(neap_option_t opt) {
    if ((unsigned)opt >= NEAP_OPTION_COUNT) return NULL;
    return neap_option_desc[opt].name;
}

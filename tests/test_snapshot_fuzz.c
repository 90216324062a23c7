/* test_snapshot_fuzz.c -- neap_snapshot_load (src/trace/snapshot.c) on
 * damaged snapshot files whose checksums are correct, and what a loaded
 * snapshot then does (label: api).  The loader runs in-process, in forked
 * children whose CPU time is limited (neap_fuzz.h).
 *
 *   test_snapshot_fuzz fuzz [N]      N mutants (default 4000, times
 *                                    NEAP_TEST_SCALE) of valid snapshots
 *   test_snapshot_fuzz regress DIR   the same checks on the files kept in
 *                                    DIR (*.snap: inputs that once failed)
 *
 * The base snapshots are taken here and dumped: exact ones with traceback
 * limits 1, 8 and 128 (stacks up to 60 frames deep), a sampled one, one
 * with a huge block, an empty one.  A file is split into its header and
 * its four sections (strings, frames, stacks, traces: the layout at the
 * top of snapshot.c), and a mutant gets 1 to 4 seeded changes (xorshift64*
 * from a fixed seed; NEAP_FUZZ_SEED picks another): bytes flipped, set,
 * inserted or dropped in a section; a header field (file size, interval,
 * traceback limit, flags, a count) set to an extreme; a record's field set
 * to an extreme or to a value just out of range (a string's length, a
 * frame's string index, line or pc, a stack's frame count, a trace's
 * address, size, stack or flags); a record duplicated or dropped; a section
 * taken from another snapshot; the file cut.  The file is then signed
 * again: most mutants get the header's sizes and counts made to agree with
 * the sections (so that the parser's own checks meet the damage), all get
 * the section and header checksums recomputed, but for a few left wrong.
 *
 * Each input must pass these checks:
 *   - the load fails with EINVAL and a message naming the file, or
 *   - the loaded snapshot has no more traces than the file has room for,
 *     a traceback limit of 1..NEAP_TRACE_MAX_FRAMES; its statistics by
 *     every key (cumulative too), its pinning, compare_to against itself
 *     (no difference) and filter_traces (all, none) succeed and agree: the
 *     sites' sizes and counts add up to the traces' (nothing lost or
 *     counted twice, when exact), every frame has a file name; dumped and
 *     loaded again it has the same statistics, and dumps to the same bytes.
 */
#define _GNU_SOURCE
#include <limits.h>

#include "neap.h"
#include "neap_trace.h"
#include "neap_fuzz.h"

#define HDR 112u
enum { SEC_STR, SEC_FRAME, SEC_STACK, SEC_TRACE, NSEC };

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* CRC-32 (IEEE), a table built on first use: the test's own, to forge
 * valid checksums. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (table[1] == 0)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return ~c;
}

/* --- the checks (in a child) ------------------------------------------------------- */

typedef struct {
    double size, count;
    size_t n;
} sums_t;

static sums_t stat_sums(const neap_statistic_t *v, size_t n) {
    sums_t s = {0, 0, n};
    for (size_t i = 0; i < n; i++) {
        s.size += (double)v[i].size;
        s.count += (double)v[i].count;
    }
    return s;
}

/* The frames of results are whole: a file name, a line >= 0, at most
 * NEAP_TRACE_MAX_FRAMES of them. */
static int frames_ok(const neap_frame_t *f, size_t n) {
    if (n < 1 || n > NEAP_TRACE_MAX_FRAMES) return 0;
    for (size_t i = 0; i < n; i++)
        if (f[i].filename == NULL || f[i].lineno < 0 || strlen(f[i].filename) > 1u << 24) return 0;
    return 1;
}

static int same_stats(neap_snapshot_t *a, neap_snapshot_t *b, char *why, size_t cap) {
    const neap_statistic_t *x, *y;
    size_t nx, ny;
    if (neap_snapshot_statistics(a, NEAP_KEY_TRACEBACK, 0, &x, &nx) != 0 ||
        neap_snapshot_statistics(b, NEAP_KEY_TRACEBACK, 0, &y, &ny) != 0) {
        snprintf(why, cap, "statistics failed: %s", neap_snapshot_error());
        return -1;
    }
    if (nx != ny) {
        snprintf(why, cap, "reloaded: %zu sites, not %zu", ny, nx);
        return -1;
    }
    for (size_t i = 0; i < nx; i++) {
        if (x[i].size != y[i].size || x[i].count != y[i].count || x[i].nframe != y[i].nframe) {
            snprintf(why, cap, "reloaded: site %zu differs", i);
            return -1;
        }
        for (size_t k = 0; k < x[i].nframe; k++)
            if (strcmp(x[i].frame[k].filename, y[i].frame[k].filename) != 0 ||
                x[i].frame[k].lineno != y[i].frame[k].lineno) {
                snprintf(why, cap, "reloaded: site %zu frame %zu differs", i, k);
                return -1;
            }
    }
    return 0;
}

/* What a loaded snapshot must do. */
static int check_loaded(neap_snapshot_t *l, const uint8_t *file, size_t len, char *why, size_t cap) {
    size_t count = neap_snapshot_count(l);
    int limit = neap_snapshot_traceback_limit(l);
    if (count > len / 24 || limit < 1 || limit > NEAP_TRACE_MAX_FRAMES) {
        snprintf(why, cap, "%zu traces from %zu bytes, traceback limit %d", count, len, limit);
        return -1;
    }
    static const struct {
        neap_key_t key;
        int cumulative;
    } ways[] = {{NEAP_KEY_TRACEBACK, 0}, {NEAP_KEY_LINENO, 0}, {NEAP_KEY_FILENAME, 0},
                {NEAP_KEY_LINENO, 1}, {NEAP_KEY_FILENAME, 1}};
    sums_t sum[5];
    for (int w = 0; w < 5; w++) {
        const neap_statistic_t *v;
        size_t n;
        if (neap_snapshot_statistics(l, ways[w].key, ways[w].cumulative, &v, &n) != 0) {
            snprintf(why, cap, "statistics (key %d, cumulative %d) failed: %s", (int)ways[w].key,
                     ways[w].cumulative, neap_snapshot_error());
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (!frames_ok(v[i].frame, v[i].nframe) || v[i].nframe > (size_t)limit ||
                (ways[w].key != NEAP_KEY_TRACEBACK && v[i].nframe != 1)) {
                snprintf(why, cap, "statistics (key %d): site %zu has %zu frames (traceback limit %d), "
                         "or a frame without a file", (int)ways[w].key, i, v[i].nframe, limit);
                return -1;
            }
        sum[w] = stat_sums(v, n);
    }
    /* an exact snapshot: each trace counts once per site, every byte in */
    if (neap_snapshot_sample_interval(l) == 0) {
        size_t ntrace = (size_t)get64(file + 80);
        double bytes = 0;
        const uint8_t *t = file + len - ntrace * 24;
        for (size_t i = 0; i < ntrace; i++) bytes += (double)get64(t + 24 * i + 8);
        for (int w = 0; w < 3; w++)
            if (sum[w].count != (double)count || (bytes < 0x1p52 && sum[w].size != bytes)) {
                snprintf(why, cap, "statistics (key %d): %.0f blocks, %.0f bytes; the traces are %zu "
                         "blocks, %.0f bytes", (int)ways[w].key, sum[w].count, sum[w].size, count, bytes);
                return -1;
            }
    }
    const neap_pinning_t *p;
    size_t np;
    for (int k = 0; k < 2; k++) {
        neap_key_t key = k ? NEAP_KEY_LINENO : NEAP_KEY_TRACEBACK;
        if (neap_snapshot_pinning(l, key, &p, &np) != 0) {
            snprintf(why, cap, "pinning failed: %s", neap_snapshot_error());
            return -1;
        }
        double live = 0;
        for (size_t i = 0; i < np; i++) {
            live += (double)p[i].live;
            if (!frames_ok(p[i].frame, p[i].nframe) || p[i].shared_pages > p[i].pages) {
                snprintf(why, cap, "pinning: site %zu is not whole", i);
                return -1;
            }
        }
        if (np != sum[k].n || (sum[k].size < 0x1p52 && live != sum[k].size)) {
            snprintf(why, cap, "pinning: %zu sites, %.0f bytes live; statistics: %zu, %.0f", np, live,
                     sum[k].n, sum[k].size);
            return -1;
        }
    }
    const neap_statistic_diff_t *d;
    size_t nd;
    if (neap_snapshot_compare_to(l, l, NEAP_KEY_LINENO, 1, &d, &nd) != 0) {
        snprintf(why, cap, "compare_to failed: %s", neap_snapshot_error());
        return -1;
    }
    for (size_t i = 0; i < nd; i++)
        if (d[i].size_diff != 0 || d[i].count_diff != 0) {
            snprintf(why, cap, "compare_to itself: site %zu differs", i);
            return -1;
        }
    neap_filter_t all = {1, "*", 0, 0}, none = {0, "*", 0, 1};
    neap_snapshot_t *fa = neap_snapshot_filter_traces(l, &all, 1);
    neap_snapshot_t *fn = neap_snapshot_filter_traces(l, &none, 1);
    int ok = fa != NULL && fn != NULL && neap_snapshot_count(fa) == count && neap_snapshot_count(fn) == 0;
    neap_snapshot_free(fa);
    neap_snapshot_free(fn);
    if (!ok) {
        snprintf(why, cap, "filter_traces: not all, or not none");
        return -1;
    }
    /* dumped, loaded again: the same; dumped again: the same bytes */
    const char *again = fuzz_path("again.snap"), *twice = fuzz_path("twice.snap");
    if (neap_snapshot_dump(l, again) != 0) {
        snprintf(why, cap, "dump failed: %s", neap_snapshot_error());
        return -1;
    }
    neap_snapshot_t *r = neap_snapshot_load(again);
    if (r == NULL) {
        snprintf(why, cap, "its dump does not load: %s", neap_snapshot_error());
        return -1;
    }
    int rc = neap_snapshot_count(r) == count ? same_stats(l, r, why, cap) : -1;
    if (rc == 0 && neap_snapshot_dump(r, twice) != 0) rc = -1;
    if (rc == 0) {
        size_t n1, n2;
        char *b1 = fuzz_read(again, &n1), *b2 = fuzz_read(twice, &n2);
        if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
            snprintf(why, cap, "dumped twice: %zu and %zu bytes, not the same", n1, n2);
            rc = -1;
        }
        free(b1);
        free(b2);
    } else if (why[0] == 0) {
        snprintf(why, cap, "reloaded: %zu traces, not %zu", neap_snapshot_count(r), count);
    }
    neap_snapshot_free(r);
    return rc;
}

static int check_file(const fuzz_input_t *in, char *why, size_t cap) {
    const char *path = fuzz_path("in.snap");
    fuzz_write(path, in->p, in->len);
    errno = 0;
    neap_snapshot_t *l = neap_snapshot_load(path);
    int err = errno;
    fuzz_tally->runs++;
    if (l == NULL) {
        fuzz_tally->rejected++;
        if (err != EINVAL) {
            snprintf(why, cap, "refused with errno %d, not EINVAL: %s", err, neap_snapshot_error());
            return -1;
        }
        if (strstr(neap_snapshot_error(), path) == NULL) {
            snprintf(why, cap, "refused without naming the file: %s", neap_snapshot_error());
            return -1;
        }
        return 0;
    }
    int rc = check_loaded(l, in->p, in->len, why, cap);
    neap_snapshot_free(l);
    return rc;
}

/* --- base snapshots ------------------------------------------------------------------ */

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* allocation sites at several depths: distinct stacks */
__attribute__((noinline)) static void *site(size_t n, int depth) {
    void *p = depth > 0 ? site(n, depth - 1) : neap_malloc(n);
    KEEP(p);
    return p;
}
__attribute__((noinline)) static void *other_site(size_t n) {
    void *p = neap_malloc(n);
    KEEP(p);
    return p;
}

typedef struct {
    fuzz_buf_t sec[NSEC];
    uint8_t hdr[HDR];
} snap_t;

enum { NBASE_MAX = 8 };
static snap_t base[NBASE_MAX];
static const char *base_name[NBASE_MAX];
static int nbase;

/* Splits a valid file into base[nbase]. */
static void add_base(const char *name, const uint8_t *b, size_t len) {
    CHECKF(len >= HDR && get64(b + 16) == len, "%s: not a snapshot", name);
    snap_t *s = &base[nbase];
    memcpy(s->hdr, b, HDR);
    uint64_t at = HDR, size[NSEC] = {get64(b + 48), 32 * get64(b + 56),
                                     4 * get64(b + 64) + 8 * get64(b + 72), 24 * get64(b + 80)};
    for (int i = 0; i < NSEC; i++) {
        CHECK(at + size[i] <= len);
        s->sec[i] = fuzz_buf_of(b + at, (size_t)size[i]);
        at += size[i];
    }
    CHECK(at == len);
    base_name[nbase++] = name;
}

/* Takes a snapshot of the traces now, dumps it, keeps it as a base. */
static void take(const char *name) {
    neap_snapshot_t *s = neap_trace_take_snapshot();
    CHECKF(s != NULL, "%s", neap_snapshot_error());
    const char *path = fuzz_path("base.snap");
    CHECKF(neap_snapshot_dump(s, path) == 0, "%s", neap_snapshot_error());
    neap_snapshot_free(s);
    size_t n;
    char *b = fuzz_read(path, &n);
    add_base(name, (const uint8_t *)b, n);
    free(b);
}

static void make_bases(void) {
    enum { NB = 400 };
    static void *v[NB];
    static const struct {
        const char *name;
        int limit, depth;
        size_t interval;
        int huge;
    } kinds[] = {{"exact", 8, 12, 0, 1}, {"deep", 128, 60, 0, 0}, {"one-frame", 1, 3, 0, 0},
                 {"sampled", 16, 6, 2048, 1}, {"empty", 4, 0, 0, 0}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        CHECK((kinds[k].interval ? neap_trace_start_sampled(kinds[k].limit, kinds[k].interval)
                                 : neap_trace_start(kinds[k].limit)) == 0);
        int n = strcmp(kinds[k].name, "empty") == 0 ? 0 : NB;
        for (int i = 0; i < n; i++)
            v[i] = i % 5 == 4 ? other_site(24 + (size_t)i * 40)
                              : site(16 + (size_t)(i % 7) * 100, (int)((size_t)i % (size_t)(kinds[k].depth + 1)));
        void *huge = kinds[k].huge ? site(3u << 20, 2) : NULL;
        take(kinds[k].name);
        for (int i = 0; i < n; i++) neap_free(v[i]);
        neap_free(huge);
        neap_trace_stop();
    }
}

/* --- mutations -------------------------------------------------------------------------- */

/* Walks the strings (or stacks) section: the offsets of its first max
 * records in off[], their count returned; -1 when it does not walk. */
static long walk(const fuzz_buf_t *b, int sec, size_t *off, size_t max) {
    size_t at = 0, n = 0;
    while (at < b->len) {
        if (b->len - at < 4) return -1;
        uint64_t len = sec == SEC_STR ? get32(b->p + at) : 8 * (uint64_t)get32(b->p + at);
        if (b->len - at - 4 < len) return -1;
        if (n < max) off[n] = at;
        n++;
        at += 4 + (size_t)len;
    }
    return (long)n;
}

/* Makes the header agree with the sections: sizes, and the counts where
 * the sections tell them. */
static void header_agree(snap_t *s) {
    size_t off[1];
    long nstr = walk(&s->sec[SEC_STR], SEC_STR, off, 0);
    if (nstr >= 0) put64(s->hdr + 40, (uint64_t)nstr);
    put64(s->hdr + 48, s->sec[SEC_STR].len);
    put64(s->hdr + 56, s->sec[SEC_FRAME].len / 32);
    long nstack = walk(&s->sec[SEC_STACK], SEC_STACK, off, 0);
    if (nstack >= 0) {
        put64(s->hdr + 64, (uint64_t)nstack);
        put64(s->hdr + 72, (s->sec[SEC_STACK].len - 4 * (size_t)nstack) / 8);
    }
    put64(s->hdr + 80, s->sec[SEC_TRACE].len / 24);
    size_t total = HDR;
    for (int i = 0; i < NSEC; i++) total += s->sec[i].len;
    put64(s->hdr + 16, total);
}

/* The file: header and sections, checksums recomputed over the sections
 * where the header places them (bad: one checksum left wrong). */
static fuzz_buf_t sign(snap_t *s, int bad) {
    fuzz_buf_t f = fuzz_buf_of(s->hdr, HDR);
    for (int i = 0; i < NSEC; i++) fuzz_splice(&f, f.len, 0, s->sec[i].p, s->sec[i].len);
    uint64_t at = HDR, size[NSEC] = {get64(f.p + 48), 32 * get64(f.p + 56),
                                     4 * get64(f.p + 64) + 8 * get64(f.p + 72), 24 * get64(f.p + 80)};
    for (int i = 0; i < NSEC; i++) {
        if (size[i] > f.len || at > f.len - size[i]) break; /* the header's claims are past the end */
        put32(f.p + 88 + 4 * i, crc32_of(f.p + at, (size_t)size[i]));
        at += size[i];
    }
    if (bad == 1) f.p[88 + 4 * fuzz_pick(4)] ^= 1;
    put32(f.p + 104, crc32_of(f.p, 104));
    if (bad == 2) f.p[104] ^= 0x80;
    return f;
}

static uint64_t extreme64(uint64_t old) {
    static const uint64_t v[] = {0, 1, UINT64_MAX, (uint64_t)1 << 63, ((uint64_t)1 << 40) - 1,
                                 (uint64_t)1 << 40, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                                 UINT32_MAX - 1, ((uint64_t)1 << 62), UINT64_MAX - 4095};
    switch (fuzz_pick(4)) {
    case 0: return old + 1;
    case 1: return old - 1;
    case 2: return old ^ (uint64_t)1 << fuzz_pick(64);
    default: return v[fuzz_pick(sizeof v / sizeof v[0])];
    }
}

static uint32_t extreme32(uint32_t old, uint32_t n) {
    static const uint32_t v[] = {0, 1, UINT32_MAX, UINT32_MAX - 1, 0x7fffffff, 0x80000000u, 127, 128,
                                 129, 65536};
    switch (fuzz_pick(5)) {
    case 0: return old + 1;
    case 1: return old - 1;
    case 2: return n + (uint32_t)fuzz_pick(2) - 1; /* just in, or just out of, a range */
    case 3: return old ^ 1u << fuzz_pick(32);
    default: return v[fuzz_pick(sizeof v / sizeof v[0])];
    }
}

/* One change; *agree cleared when the header is to keep what it says,
 * *cut set to a length to cut the file to. */
static void mutate(snap_t *s, int *agree, size_t *cut) {
    int sec = (int)fuzz_pick(NSEC);
    fuzz_buf_t *b = &s->sec[sec];
    uint32_t nstr = (uint32_t)get64(s->hdr + 40), nstack = (uint32_t)get64(s->hdr + 64);
    size_t off[4096];
    switch (fuzz_pick(12)) {
    case 0: case 1:
        fuzz_bytes(b);
        break;
    case 2: { /* a header field */
        static const size_t at64[] = {16, 24, 40, 48, 56, 64, 72, 80};
        *agree = 0;
        if (fuzz_pick(3) == 0) {
            size_t at = fuzz_pick(2) ? 32 : 36;
            put32(s->hdr + at, extreme32(get32(s->hdr + at), NEAP_TRACE_MAX_FRAMES));
        } else {
            size_t at = at64[fuzz_pick(8)];
            put64(s->hdr + at, extreme64(get64(s->hdr + at)));
        }
        break;
    }
    case 3: case 4: case 5: { /* a record's field */
        if (sec == SEC_STR || sec == SEC_STACK) {
            long n = walk(b, sec, off, 4096);
            if (n <= 0) break;
            size_t at = off[fuzz_pick(n < 4096 ? (size_t)n : 4096)];
            if (sec == SEC_STACK && fuzz_pick(2) && get32(b->p + at) > 0) { /* a pc */
                size_t k = at + 4 + 8 * fuzz_pick(get32(b->p + at));
                put64(b->p + k, fuzz_pick(2) ? 0 : extreme64(get64(b->p + k)));
            } else {
                put32(b->p + at, extreme32(get32(b->p + at), sec == SEC_STR ? 0 : NEAP_TRACE_MAX_FRAMES + 1));
            }
        } else if (sec == SEC_FRAME && b->len >= 32) {
            size_t r = 32 * fuzz_pick(b->len / 32);
            size_t f = fuzz_pick(5);
            if (f == 0) /* the pc: 0, or another frame's */
                put64(b->p + r, fuzz_pick(2) ? 0 : get64(b->p + 32 * fuzz_pick(b->len / 32)));
            else if (f == 4)
                put64(b->p + r + 24, extreme64(get64(b->p + r + 24)));
            else
                put32(b->p + r + 4 + 4 * f, extreme32(get32(b->p + r + 4 + 4 * f), f == 2 ? 0x7fffffff : nstr));
        } else if (sec == SEC_TRACE && b->len >= 24) {
            size_t r = 24 * fuzz_pick(b->len / 24);
            switch (fuzz_pick(4)) {
            case 0: put64(b->p + r, extreme64(get64(b->p + r))); break;
            case 1: put64(b->p + r + 8, extreme64(get64(b->p + r + 8))); break;
            case 2: put32(b->p + r + 16, extreme32(get32(b->p + r + 16), nstack)); break;
            default: put32(b->p + r + 20, (uint32_t)fuzz_pick(4)); break;
            }
        }
        break;
    }
    case 6: case 7: { /* a record duplicated or dropped */
        size_t at, len;
        if (sec == SEC_STR || sec == SEC_STACK) {
            long n = walk(b, sec, off, 4096);
            if (n <= 0) break;
            size_t i = fuzz_pick(n < 4096 ? (size_t)n : 4096);
            at = off[i];
            len = 4 + (sec == SEC_STR ? get32(b->p + at) : 8 * (size_t)get32(b->p + at));
        } else {
            size_t rec = sec == SEC_FRAME ? 32 : 24;
            if (b->len < rec) break;
            at = rec * fuzz_pick(b->len / rec);
            len = rec;
        }
        if (fuzz_pick(2)) {
            uint8_t *copy = malloc(len);
            CHECK(copy != NULL);
            memcpy(copy, b->p + at, len);
            fuzz_splice(b, at, 0, copy, len);
            free(copy);
        } else {
            fuzz_splice(b, at, len, NULL, 0);
        }
        break;
    }
    case 8: { /* a section from another snapshot */
        const fuzz_buf_t *o = &base[fuzz_pick((size_t)nbase)].sec[sec];
        free(b->p);
        *b = fuzz_buf_of(o->p, o->len);
        break;
    }
    case 9: /* a section cut */
        b->len = fuzz_pick(b->len + 1);
        break;
    case 10: /* the file cut */
        *cut = fuzz_pick(HDR + s->sec[0].len + s->sec[1].len + s->sec[2].len + s->sec[3].len);
        break;
    default: /* the sampling interval, a small one */
        *agree = 0;
        put64(s->hdr + 24, fuzz_pick(3) == 0 ? 1 : fuzz_pick(1 << 20));
        break;
    }
}

static void fuzz(size_t count) {
    make_bases();
    fuzz_input_t *batch = calloc(FUZZ_BATCH, sizeof *batch);
    CHECK(batch != NULL);
    size_t nb = 0;
    for (size_t i = 0; i < count; i++) {
        int k = (int)fuzz_pick((size_t)nbase), agree = fuzz_pick(4) != 0;
        size_t cut = SIZE_MAX;
        snap_t m;
        memcpy(m.hdr, base[k].hdr, HDR);
        for (int j = 0; j < NSEC; j++) m.sec[j] = fuzz_buf_of(base[k].sec[j].p, base[k].sec[j].len);
        int header_changed = 0;
        uint8_t hdr[HDR];
        for (size_t j = 1 + fuzz_pick(4); j > 0; j--) {
            int a = 1;
            mutate(&m, &a, &cut);
            if (!a) header_changed = 1;
        }
        if (agree) {
            /* sizes and counts made to agree, then a changed header field
             * put back over them */
            memcpy(hdr, m.hdr, HDR);
            header_agree(&m);
            if (header_changed)
                for (size_t at = 16; at < 88; at++)
                    if (hdr[at] != base[k].hdr[at]) m.hdr[at] = hdr[at];
        }
        fuzz_buf_t f = sign(&m, fuzz_pick(50) == 0 ? 1 + (int)fuzz_pick(2) : 0);
        if (cut < f.len) f.len = cut;
        for (int j = 0; j < NSEC; j++) free(m.sec[j].p);
        fuzz_input_t *in = &batch[nb++];
        in->p = f.p;
        in->len = f.len;
        snprintf(in->label, sizeof in->label, "mutant %zu of %s", i, base_name[k]);
        if (nb == FUZZ_BATCH || i + 1 == count) {
            fuzz_inputs(check_file, batch, nb, "snap");
            for (size_t j = 0; j < nb; j++) free(batch[j].p);
            nb = 0;
        }
    }
    free(batch);
    for (int k = 0; k < nbase; k++)
        for (int j = 0; j < NSEC; j++) free(base[k].sec[j].p);
}

static void usage(void) {
    fprintf(stderr, "usage: test_snapshot_fuzz fuzz [N] | regress DIR\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    /* frames from the dynamic symbols: DWARF for every base costs more than
     * the rest, and the loader never resolves anything */
    setenv("NEAP_SYMBOLS_NO_LIBDW", "1", 1);
    fuzz_setup("snapshot-fuzz", 20261207);
    const char *what;
    if (strcmp(argv[1], "fuzz") == 0 && argc <= 3) {
        fuzz(test_scaled(argc == 3 ? strtoul(argv[2], NULL, 10) : 4000));
        what = "mutants";
    } else if (strcmp(argv[1], "regress") == 0 && argc == 3) {
        fuzz_regress(check_file, argv[2], "snap");
        what = "kept snapshots";
    } else {
        usage();
        return 2;
    }
    return fuzz_finish("test_snapshot_fuzz", what, NULL);
}

/*
 * realloc.c: buffers growing by realloc to megabytes.
 *
 * Strings: 512 * scale strings, each grown to a random length of 64 KiB-1 MiB
 * (log-uniform) by appends of 1-64 B, one realloc to the exact new length per
 * append, the way naive string code does.  Eight strings grow at once, in
 * bursts of 1-16 appends to a randomly chosen one, so that a string's
 * neighbour is often another growing string and in-place growth is not
 * free.  Measures whether the allocator grows blocks in place (size-class
 * slack, free neighbours, mremap) or copies.
 *
 * Vectors: 96 * scale vectors of 64-bit elements pushed one at a time up to
 * 4-16 MiB (log-uniform), the capacity doubling (even vectors) or growing
 * 1.5x (odd ones) with realloc; four grow at once, in bursts of 256-4096
 * pushes.
 *
 * Self-check: byte j of a string and element k of a vector are pure
 * functions of (buffer, position).  After every realloc, a vector's whole
 * prefix is verified (there are only a few per vector).  After a string's
 * realloc, its first and last bytes are verified and, if the string moved,
 * one word per 4 KiB as well (verifying the whole prefix after each of
 * millions of appends would be quadratic and would charge moving allocators
 * mostly for our own checking).  A finished buffer is verified whole, its
 * words summed into "sum", and freed.  "moves" (reallocs that returned a new
 * address) is reported as a statistic; it differs between allocators.
 */
#include "common.h"

#define STRINGS 512
#define STR_ACTIVE 8
#define VECTORS 96
#define VEC_ACTIVE 4

/* ---- content: a pure function of (seed, position) ---------------------- */

/* cheap to generate, so that verifying a buffer costs little more than
 * reading it; a shifted, truncated or foreign copy still differs */
static inline uint64_t word_at(uint64_t seed, size_t k) { return seed + k * PATTERN_STEP; }

static void put_bytes(unsigned char *b, uint64_t seed, size_t from, size_t to)
{
    size_t j = from;
    while (j < to) {
        uint64_t w = word_at(seed, j >> 3);
        if ((j & 7) == 0 && j + 8 <= to) {
            put64(b + j, w);
            j += 8;
        } else {
            b[j] = (unsigned char)(w >> ((j & 7) * 8));
            j++;
        }
    }
}

/* verifies bytes [from, to); returns the sum of the whole words in it */
static uint64_t check_bytes(const unsigned char *b, uint64_t seed, size_t from, size_t to,
                            const char *what, unsigned id)
{
    uint64_t sum = 0;
    size_t j = from;
    while (j < to) {
        uint64_t w = word_at(seed, j >> 3);
        if ((j & 7) == 0 && j + 8 <= to) {
            uint64_t v = get64(b + j);
            if (v != w)
                check_failed("%s %u: word at byte %zu differs (checking bytes %zu-%zu)",
                             what, id, j, from, to);
            sum += v;
            j += 8;
        } else {
            if (b[j] != (unsigned char)(w >> ((j & 7) * 8)))
                check_failed("%s %u: byte %zu differs (checking bytes %zu-%zu)", what, id, j,
                             from, to);
            j++;
        }
    }
    return sum;
}

typedef struct {
    unsigned id;
    uint64_t seed;
    unsigned char *p;
    size_t len, target;           /* bytes for strings, elements for vectors */
    size_t cap;                   /* vectors: capacity in elements */
} buf_t;

static uint64_t moves;

/* after a string moved: its first and last bytes and one word per 4 KiB
 * (the whole string is verified when it is finished) */
static void check_sampled(const unsigned char *b, const buf_t *s)
{
    size_t head = s->len < 16 ? s->len : 16;
    check_bytes(b, s->seed, 0, head, "string", s->id);
    for (size_t off = 4096; off + 16 <= s->len; off += 4096)
        check_bytes(b, s->seed, off, off + 8, "string", s->id);
    check_bytes(b, s->seed, s->len - head, s->len, "string", s->id);
}

/* ---- strings ------------------------------------------------------------------ */

static void string_start(buf_t *s, unsigned id, rng_t *rng)
{
    s->id = id;
    s->seed = mix64(0x57a1d0ull + id);
    s->target = rng_logsize(rng, 16, 20);                 /* 64 KiB .. 1 MiB */
    s->len = rng_range(rng, 1, 64);
    s->p = xmalloc(s->len);
    put_bytes(s->p, s->seed, 0, s->len);
}

static uint64_t strings(const opts_t *o, uint64_t *ops)
{
    unsigned total = (unsigned)scaled(o, STRINGS, 2);
    unsigned nact = total < STR_ACTIVE ? total : STR_ACTIVE;
    buf_t act[STR_ACTIVE];
    rng_t rng = rng_seed(0x57a1);
    unsigned started = 0;
    uint64_t sum = 0;

    for (; started < nact; started++, (*ops)++)
        string_start(&act[started], started, &rng);

    while (nact) {
        unsigned i = (unsigned)rng_below(&rng, nact);
        buf_t *s = &act[i];
        unsigned burst = (unsigned)rng_range(&rng, 1, 16);
        for (unsigned b = 0; b < burst && s->len < s->target; b++) {
            size_t add = rng_range(&rng, 1, 64);
            if (add > s->target - s->len)
                add = s->target - s->len;
            unsigned char *np = xrealloc(s->p, s->len + add);
            (*ops)++;
            if (np != s->p) {
                moves++;
                check_sampled(np, s);
            } else {
                size_t tail = s->len < 8 ? 0 : s->len - 8;
                check_bytes(np, s->seed, 0, s->len < 8 ? s->len : 8, "string", s->id);
                check_bytes(np, s->seed, tail, s->len, "string", s->id);
            }
            s->p = np;
            put_bytes(s->p, s->seed, s->len, s->len + add);
            s->len += add;
        }
        rss_poll();
        if (s->len == s->target) {
            sum += check_bytes(s->p, s->seed, 0, s->len, "string", s->id) + s->len;
            free(s->p);
            if (started < total) {
                string_start(s, started++, &rng);
                (*ops)++;
            } else {
                act[i] = act[--nact];
            }
        }
    }
    return sum;
}

/* ---- vectors ------------------------------------------------------------------ */

static uint64_t check_elems(const buf_t *v, size_t n)
{
    const unsigned char *b = v->p;
    uint64_t sum = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t x = get64(b + 8 * k);
        if (x != word_at(v->seed, k))
            check_failed("vector %u: element %zu of %zu differs (capacity %zu)", v->id, k, n, v->cap);
        sum += x;
    }
    return sum;
}

static void vector_start(buf_t *v, unsigned id, rng_t *rng)
{
    v->id = id;
    v->seed = mix64(0xfec7ull + id);
    v->target = rng_logsize(rng, 22, 24) / 8;             /* 4 .. 16 MiB */
    v->len = 0;
    v->cap = 16;
    v->p = xmalloc(v->cap * 8);
}

static uint64_t vectors(const opts_t *o, uint64_t *ops)
{
    unsigned total = (unsigned)scaled(o, VECTORS, 2);
    unsigned nact = total < VEC_ACTIVE ? total : VEC_ACTIVE;
    buf_t act[VEC_ACTIVE];
    rng_t rng = rng_seed(0xfec7);
    unsigned started = 0;
    uint64_t sum = 0;

    for (; started < nact; started++, (*ops)++)
        vector_start(&act[started], started, &rng);

    while (nact) {
        unsigned i = (unsigned)rng_below(&rng, nact);
        buf_t *v = &act[i];
        size_t burst = rng_range(&rng, 256, 4096);
        for (size_t b = 0; b < burst && v->len < v->target; b++) {
            if (v->len == v->cap) {
                size_t ncap = (v->id & 1) ? v->cap + v->cap / 2 : v->cap * 2;
                unsigned char *np = xrealloc(v->p, ncap * 8);
                (*ops)++;
                if (np != v->p)
                    moves++;
                v->p = np;
                v->cap = ncap;
                check_elems(v, v->len);
                rss_poll();
            }
            put64(v->p + 8 * v->len, word_at(v->seed, v->len));
            v->len++;
        }
        rss_poll();
        if (v->len == v->target) {
            sum += check_elems(v, v->len) + v->len;
            free(v->p);
            if (started < total) {
                vector_start(v, started++, &rng);
                (*ops)++;
            } else {
                act[i] = act[--nact];
            }
        }
    }
    return sum;
}

void run_realloc(const opts_t *o)
{
    uint64_t ops = 0;
    rss_begin();

    double t = now();
    uint64_t s_sum = strings(o, &ops);
    report_phase("strings", now() - t);
    uint64_t s_moves = moves;
    rss_sample();

    moves = 0;
    t = now();
    uint64_t v_sum = vectors(o, &ops);
    report_phase("vectors", now() - t);
    rss_after_free();

    report_ops(ops);
    report_extra("moves", "{\"strings\":%llu,\"vectors\":%llu}", (unsigned long long)s_moves,
                 (unsigned long long)moves);
    report_check("strings=%016llx vectors=%016llx n=%zu+%zu", (unsigned long long)s_sum,
                 (unsigned long long)v_sum, scaled(o, STRINGS, 2), scaled(o, VECTORS, 2));
}

/*
 * mixed.c: a long-running mixed-size program, "mixed --seconds S".
 *
 * 800000 * scale slots hold a steady live set of about 250 MB * scale.
 * Sizes run from 16 B to 4 MiB, skewed to small by count but spread over the
 * bytes:
 *     99%    16 B - 256 B     about 30% of the live bytes
 *     0.99%  256 B - 64 KiB   about 40%
 *     0.01%  64 KiB - 4 MiB   about 30%
 * (log-uniform within each band).  After the fill, a random slot is freed and
 * refilled with a fresh random size, in rounds of 4096 replacements, until S
 * seconds have passed (default 10 * scale; the runner sets it).  RSS is
 * sampled every 50 ms into "series": with the live set constant, growth of
 * RSS over time is fragmentation.  Then everything is freed ("after_free")
 * and the program idles 1 s ("after_idle").
 *
 * Self-check: every object is written from its tag (entirely up to 512 B,
 * first/last/every-4-KiB words beyond, so every page of a large block is
 * touched) and verified before it is freed.  As the number of rounds depends
 * on the allocator's speed, the check string holds the checksum at a fixed
 * point: after the first ceil(slots / 4096) rounds (one live set's worth of
 * replacements), which every run completes whatever S is.  Verification
 * continues to the end; "rounds" reports how far the run got.
 */
#include "common.h"

#define MIXED_SLOTS 8e5
#define ROUND 4096

typedef struct { void *p; uint32_t size; uint64_t tag; } slot_t;

static size_t mixed_size(rng_t *r)
{
    uint64_t x = rng_below(r, 100000);
    if (x < 99000) return rng_logsize(r, 4, 8);     /* 16 B .. 256 B */
    if (x < 99990) return rng_logsize(r, 8, 16);    /* 256 B .. 64 KiB */
    return rng_logsize(r, 16, 22);                  /* 64 KiB .. 4 MiB */
}

static void put(slot_t *s, rng_t *r, uint64_t serial)
{
    s->size = (uint32_t)mixed_size(r);
    s->tag = mix64(0x313edull + serial);
    s->p = xmalloc(s->size);
    fill_block(s->p, s->size, s->tag);
}

void run_mixed(const opts_t *o)
{
    size_t n = scaled(o, MIXED_SLOTS, 4096);
    uint64_t check_rounds = (n + ROUND - 1) / ROUND;
    slot_t *slot = book_alloc(n * sizeof *slot);
    rng_t rng = rng_seed(0x313ed);
    uint64_t serial = 0, sum = 0, sum_at_check = 0, live_bytes = 0;

    rss_begin();
    double t = now();
    for (size_t j = 0; j < n; j++) {
        put(&slot[j], &rng, serial++);
        live_bytes += slot[j].size;
        rss_poll();
    }
    report_phase("fill", now() - t);
    rss_sample();
    uint64_t live_after_fill = live_bytes;

    t = now();
    uint64_t rounds = 0;
    for (;;) {
        for (unsigned k = 0; k < ROUND; k++) {
            slot_t *s = &slot[rng_below(&rng, n)];
            sum += check_block(s->p, s->size, s->tag);
            live_bytes -= s->size;
            free(s->p);
            put(s, &rng, serial++);
            live_bytes += s->size;
            rss_poll();
        }
        rounds++;
        if (rounds == check_rounds)
            sum_at_check = sum;
        if (rounds >= check_rounds && now() - t >= o->seconds)
            break;
    }
    report_phase("run", now() - t);
    rss_sample();
    uint64_t live_at_end = live_bytes;

    t = now();
    for (size_t j = 0; j < n; j++) {
        sum += check_block(slot[j].p, slot[j].size, slot[j].tag);
        free(slot[j].p);
        rss_poll();
    }
    report_phase("free", now() - t);
    book_free(slot, n * sizeof *slot);
    rss_after_free();
    rss_idle(1.0);

    report_ops(n + rounds * ROUND);
    report_extra("rounds", "%llu", (unsigned long long)rounds);
    report_extra("live_bytes", "{\"after_fill\":%llu,\"at_end\":%llu}",
                 (unsigned long long)live_after_fill, (unsigned long long)live_at_end);
    report_check("sum=%016llx slots=%zu at_round=%llu", (unsigned long long)sum_at_check, n,
                 (unsigned long long)check_rounds);
}

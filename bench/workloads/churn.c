/*
 * churn.c: single-threaded small-object churn, "churn --order lifo|fifo|random".
 *
 * A working set of at most 4096 live objects (random sizes 8-512 B) is
 * churned for 10^7 * scale allocations (and as many frees).  Each round
 * removes a random batch of 1-64 objects and then adds a random batch of
 * 1-64 new ones; the number of live objects thus wanders between 0 and 4096.
 * The order decides which objects go:
 *   lifo    the most recently allocated (a stack),
 *   fifo    the oldest (a queue: every object lives through ~2000 others),
 *   random  a uniformly random live object.
 * Measures the speed of the allocator's small-object fast paths under each
 * reuse pattern.  The working set starts half full; the objects left at the
 * end are freed in the "drain" phase.
 *
 * Self-check: object number s has a size and tag that are pure functions of
 * s; it is written entirely and verified entirely before free, and the
 * verified values are summed into "sum".
 */
#include "common.h"

#define CHURN_ALLOCS 1e7
#define CAP 4096u                 /* power of two: the ring index is masked */
#define BATCH 64
#define CHURN_SALT 0xc4a12ull

typedef struct { void *p; uint64_t seq; } obj_t;

static inline uint64_t obj_hash(uint64_t seq) { return mix64(CHURN_SALT ^ (seq * 0x9e3779b97f4a7c15ull)); }
static inline size_t obj_size(uint64_t h) { return 8 + (size_t)below(h, 505); }  /* 8..512 */

void run_churn(const opts_t *o)
{
    uint64_t total = scaled(o, CHURN_ALLOCS, 10000);
    rng_t rng = rng_seed(0xc4a12 + (uint64_t)o->order);

    /* ring of live objects: head .. head+count-1, newest at the end */
    obj_t *ring = book_alloc(CAP * sizeof *ring);
    unsigned head = 0, count = 0;
    uint64_t seq = 0, sum = 0;

    rss_begin();
    double t = now();
    while (seq < total) {
        /* remove a batch (skipped while the ring starts up half full) */
        unsigned nrem = seq < CAP / 2 ? 0 : 1 + (unsigned)rng_below(&rng, BATCH);
        if (nrem > count)
            nrem = count;
        for (unsigned k = 0; k < nrem; k++) {
            unsigned at;
            switch (o->order) {
            case ORDER_LIFO:
                at = (head + count - 1) & (CAP - 1);
                break;
            case ORDER_FIFO:
                at = head;
                head = (head + 1) & (CAP - 1);
                break;
            default: {
                /* swap a random live object with the newest one, remove that */
                unsigned j = (head + (unsigned)rng_below(&rng, count)) & (CAP - 1);
                unsigned last = (head + count - 1) & (CAP - 1);
                obj_t tmp = ring[j];
                ring[j] = ring[last];
                ring[last] = tmp;
                at = last;
            }
            }
            count--;
            uint64_t h = obj_hash(ring[at].seq);
            sum += check_block(ring[at].p, obj_size(h), h);
            free(ring[at].p);
        }

        /* add a batch */
        unsigned nadd = seq < CAP / 2 ? CAP / 2 : 1 + (unsigned)rng_below(&rng, BATCH);
        if (nadd > CAP - count)
            nadd = CAP - count;
        if (nadd > total - seq)
            nadd = (unsigned)(total - seq);
        for (unsigned k = 0; k < nadd; k++, seq++) {
            uint64_t h = obj_hash(seq);
            size_t sz = obj_size(h);
            void *p = xmalloc(sz);
            fill_block(p, sz, h);
            unsigned at = (head + count) & (CAP - 1);
            ring[at].p = p;
            ring[at].seq = seq;
            count++;
        }
        rss_poll();
    }
    report_phase("churn", now() - t);
    unsigned left = count;

    t = now();
    while (count) {
        obj_t *ob = &ring[head];
        uint64_t h = obj_hash(ob->seq);
        sum += check_block(ob->p, obj_size(h), h);
        free(ob->p);
        head = (head + 1) & (CAP - 1);
        count--;
    }
    report_phase("drain", now() - t);
    book_free(ring, CAP * sizeof *ring);
    rss_after_free();

    report_ops(total);
    report_check("sum=%016llx n=%llu left=%u", (unsigned long long)sum,
                 (unsigned long long)total, left);
}

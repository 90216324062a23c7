/*
 * seed.c: the workloads "seed" and "survivors".
 *
 * seed: the seed experiment.  Allocate 10^7 * scale small objects of random
 * sizes 16-128 B, keeping the pointers in a table, then free them all in
 * allocation order.  Measures the time of each phase and, above all, how much
 * of the peak RSS the allocator still holds right after the frees
 * ("after_free") and after one more second of idleness ("after_idle").
 *
 * survivors --keep K: the same, but every K-th object in allocation order
 * (index 0, K, 2K, ...) survives the frees, the case where one live object
 * can pin a whole page or arena.  The survivors are verified and freed at
 * the very end, after "after_idle" has been read, after Pss has settled
 * (marks.settled: a meshing allocator works on in the background) and after
 * the floor (the bytes of the distinct 4 KiB pages the survivors occupy,
 * "floor") has been counted.
 *
 * Self-check: object i has a size and a tag that are pure functions of i;
 * its bytes are all written from the tag and all verified before it is
 * freed, and the verified values are summed into "sum".  The same parameters
 * give the same check string under every allocator.
 *
 * Phases: alloc, free (and for survivors: check, the final survivor pass).
 * The pointer table lives in mmap'd bookkeeping memory and is unmapped before
 * after_free is read.
 */
#include "common.h"

#define SEED_OBJECTS 1e7
#define SEED_SALT 0x5eed5eed5eedull

static inline uint64_t obj_hash(size_t i) { return mix64(SEED_SALT + i); }
static inline size_t obj_size(uint64_t h) { return 16 + (size_t)below(h, 113); }  /* 16..128 */

static void seed_like(const opts_t *o, long keep)
{
    size_t n = scaled(o, SEED_OBJECTS, 1000);
    size_t nsurv = keep ? (n + (size_t)keep - 1) / (size_t)keep : 0;

    rss_begin();
    void **ptr = book_alloc(n * sizeof *ptr);
    void **surv = book_alloc((nsurv ? nsurv : 1) * sizeof *surv);

    double t = now();
    for (size_t i = 0; i < n; i++) {
        uint64_t h = obj_hash(i);
        size_t sz = obj_size(h);
        void *p = xmalloc(sz);
        fill_block(p, sz, h);
        ptr[i] = p;
        rss_poll();
    }
    report_phase("alloc", now() - t);
    rss_sample();

    uint64_t sum = 0;
    t = now();
    for (size_t i = 0; i < n; i++) {
        void *p = ptr[i];
        if (keep && i % (size_t)keep == 0) {
            surv[i / (size_t)keep] = p;
            continue;
        }
        uint64_t h = obj_hash(i);
        sum += check_block(p, obj_size(h), h);
        free(p);
        rss_poll();
    }
    report_phase("free", now() - t);
    book_free(ptr, n * sizeof *ptr);
    rss_after_free();

    rss_idle(1.0);

    if (keep) {
        /* on until Pss settles (a meshing allocator's background work), then
         * the floor: the bytes of the distinct 4 KiB pages the survivors
         * occupy (not timed: it is measuring, not the allocator's work) */
        rss_settle(SETTLE_MAX, SETTLE_INTERVAL);
        rss_mark("settled");
        t = now();
        size_t m = 0;
        uintptr_t *pages = book_alloc(nsurv * 2 * sizeof *pages);
        for (size_t j = 0; j < nsurv; j++) {
            uintptr_t p = (uintptr_t)surv[j];
            size_t sz = obj_size(obj_hash(j * (size_t)keep));
            for (uintptr_t q = p / FLOOR_PAGE; q <= (p + sz - 1) / FLOOR_PAGE; q++)
                pages[m++] = q;
        }
        report_extra("floor", "%zu", distinct_pages(pages, m));
        book_free(pages, nsurv * 2 * sizeof *pages);
        report_untimed(now() - t);
        t = now();
        for (size_t j = 0; j < nsurv; j++) {
            uint64_t h = obj_hash(j * (size_t)keep);
            sum += check_block(surv[j], obj_size(h), h);
            free(surv[j]);
        }
        report_phase("check", now() - t);
        report_check("sum=%016llx n=%zu live=%zu", (unsigned long long)sum, n, nsurv);
    } else {
        report_check("sum=%016llx n=%zu", (unsigned long long)sum, n);
    }
    book_free(surv, (nsurv ? nsurv : 1) * sizeof *surv);
    report_ops(n);
}

void run_seed(const opts_t *o) { seed_like(o, 0); }
void run_survivors(const opts_t *o) { seed_like(o, o->keep); }

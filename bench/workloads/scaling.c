/*
 * scaling.c: thread scaling, "scaling --threads N" (default 1).
 *
 * Each of N threads does the same fixed work, so the total grows with N: it
 * fills 2048 slots, replaces a random slot 1.5*10^7 * scale times with an
 * object of a fresh random size (75% 16-256 B, 25% 257 B-4 KiB), then frees
 * what is left.  Everything stays in the thread that allocated it.  The
 * threads start together (a barrier); the "run" phase is the wall time from
 * the start to the last thread's end.  With perfect scaling it stays flat
 * while N is at most the number of cores; the runner compares it across N.
 * Per-thread times are reported in "thread_seconds".
 *
 * Self-check: all threads use the same seed, so they make the same requests
 * and must arrive at the same checksum; each object is written entirely (up
 * to 512 B; first/last/every-4-KiB words beyond) and verified before free.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define SCALING_OPS 1.5e7
#define SLOTS 2048

typedef struct { void *p; uint32_t size; uint64_t tag; } slot_t;

typedef struct {
    uint64_t ops;
    uint64_t sum;
    double t_end;
} worker_t;

static struct {
    pthread_barrier_t start;
    _Atomic int done;
} G;

static inline void put(slot_t *s, rng_t *r, uint64_t serial)
{
    s->size = (uint32_t)(rng_below(r, 4) ? rng_range(r, 16, 256) : rng_range(r, 257, 4096));
    s->tag = mix64(0x5ca1e5ull + serial);
    s->p = xmalloc(s->size);
    fill_block(s->p, s->size, s->tag);
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    slot_t *slot = book_alloc(SLOTS * sizeof *slot);
    rng_t rng = rng_seed(0x5ca1e);
    uint64_t serial = 0, sum = 0;

    pthread_barrier_wait(&G.start);
    for (unsigned j = 0; j < SLOTS; j++)
        put(&slot[j], &rng, serial++);
    for (uint64_t i = 0; i < w->ops; i++) {
        slot_t *s = &slot[rng_below(&rng, SLOTS)];
        sum += check_block(s->p, s->size, s->tag);
        free(s->p);
        put(s, &rng, serial++);
    }
    for (unsigned j = 0; j < SLOTS; j++) {
        sum += check_block(slot[j].p, slot[j].size, slot[j].tag);
        free(slot[j].p);
    }
    w->t_end = now();
    w->sum = sum;
    book_free(slot, SLOTS * sizeof *slot);
    atomic_fetch_add(&G.done, 1);
    return NULL;
}

void run_scaling(const opts_t *o)
{
    int n = o->threads;
    uint64_t per_thread = scaled(o, SCALING_OPS, 10000);
    worker_t *w = book_alloc((size_t)n * sizeof *w);
    pthread_t *tid = book_alloc((size_t)n * sizeof *tid);
    pthread_barrier_init(&G.start, NULL, (unsigned)n + 1);

    rss_begin();
    for (int i = 0; i < n; i++) {
        w[i].ops = per_thread;
        if (pthread_create(&tid[i], NULL, worker, &w[i]))
            die("pthread_create failed");
    }
    pthread_barrier_wait(&G.start);
    double t = now();
    rss_wait_for(&G.done, n);
    double t_end = t;
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        if (w[i].t_end > t_end)
            t_end = w[i].t_end;
        if (w[i].sum != w[0].sum)
            check_failed("thread %d's checksum %016llx differs from thread 0's %016llx", i,
                         (unsigned long long)w[i].sum, (unsigned long long)w[0].sum);
    }
    report_phase("run", t_end - t);
    rss_after_free();

    char list[2048] = "";
    size_t len = 0;
    for (int i = 0; i < n && len + 32 < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%.6f", i ? "," : "", w[i].t_end - t);
    report_extra("thread_seconds", "[%s]", list);
    report_ops((per_thread + SLOTS) * (uint64_t)n);
    report_check("sum=%016llx per_thread=%llu threads=%d", (unsigned long long)w[0].sum,
                 (unsigned long long)per_thread, n);
    pthread_barrier_destroy(&G.start);
    book_free(w, (size_t)n * sizeof *w);
    book_free(tid, (size_t)n * sizeof *tid);
}

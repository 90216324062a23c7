/*
 * server.c: a request-serving pattern, "server --threads N" (default 4).
 *
 * N worker threads share 4*10^6 * scale requests (the total is fixed, so the
 * run time shows throughput as N changes).  A request allocates 2-8 objects
 * of mixed sizes (60% 16-256 B, 32% 256 B-2 KiB, 8% 2-8 KiB), mostly with
 * malloc, some with calloc (checked to be zero) or posix_memalign(64), and
 * writes them.  Each object then has one of three fates:
 *   - temporary (about half): freed when the request ends;
 *   - retained: kept in the thread's ring of the last 256 requests, freed
 *     when the ring comes round to that slot again;
 *   - handed off (about one in five): sent to another thread's mailbox (a
 *     lock-free list of batches of 32; the batch itself is malloc'd by the
 *     sender and freed by the receiver) and freed there.
 * Each thread empties its own mailbox every 16 requests.  Objects freed by
 * threads that did not allocate them are the point: they measure the
 * allocator's remote-free path and whether memory flowing between threads
 * is recycled or piles up.  With N = 1 the thread mails itself.
 *
 * Self-check: every object's tag is a function of (thread, object number);
 * it travels with the pointer, and whoever frees the object verifies it
 * (entirely up to 512 B, first/last/every-4-KiB words beyond) and adds the
 * verified value to its sum.  Sums and counts are added over threads (order
 * does not matter), and allocated must equal freed.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SRV_REQUESTS 4e6
#define RING 256
#define RETAIN_MAX 4
#define MAIL_BATCH 32
#define DRAIN_EVERY 16

typedef struct { void *p; uint32_t size; uint64_t tag; } item_t;

typedef struct mail {
    struct mail *next;
    unsigned n;
    item_t item[MAIL_BATCH];
} mail_t;

typedef struct {
    _Atomic(mail_t *) head;       /* pushed by senders, taken whole by the owner */
    char pad[64 - sizeof(void *)];
} mailbox_t;

typedef struct {
    int id;
    uint64_t requests;
    uint64_t allocs, frees, sum;
    uint64_t mails;               /* mail batches allocated */
    double t_end;
} worker_t;

static struct {
    int n;
    mailbox_t *box;
    worker_t *w;
    _Atomic int sent_all;         /* threads that have flushed all their mail */
    _Atomic int done;
    pthread_barrier_t start;
    double t_start;
} G;

static void release(worker_t *w, const item_t *it)
{
    w->sum += check_block(it->p, it->size, it->tag);
    free(it->p);
    w->frees++;
}

static void drain(worker_t *w)
{
    mail_t *m = atomic_exchange_explicit(&G.box[w->id].head, NULL, memory_order_acquire);
    while (m) {
        mail_t *next = m->next;
        if (m->n > MAIL_BATCH)
            check_failed("thread %d: mail batch %p holds %u items", w->id, (void *)m, m->n);
        for (unsigned k = 0; k < m->n; k++)
            release(w, &m->item[k]);
        free(m);
        m = next;
    }
}

static void post(int to, mail_t *m)
{
    mail_t *old = atomic_load_explicit(&G.box[to].head, memory_order_relaxed);
    do
        m->next = old;
    while (!atomic_compare_exchange_weak_explicit(&G.box[to].head, &old, m,
                                                   memory_order_release, memory_order_relaxed));
}

static size_t request_size(rng_t *r)
{
    uint64_t x = rng_below(r, 100);
    if (x < 60) return rng_range(r, 16, 256);
    if (x < 92) return rng_range(r, 257, 2048);
    return rng_range(r, 2049, 8192);
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    rng_t rng = rng_seed(0x5e77e7ull * 31 + (uint64_t)w->id);
    item_t (*ring)[RETAIN_MAX] = book_alloc(RING * sizeof *ring);
    mail_t **out = book_alloc((size_t)G.n * sizeof *out);
    uint64_t serial = 0;

    pthread_barrier_wait(&G.start);
    for (uint64_t r = 0; r < w->requests; r++) {
        if (r % DRAIN_EVERY == 0)
            drain(w);

        item_t temp[8];
        unsigned ntemp = 0, nkeep = 0;
        item_t *slot = ring[r % RING];
        /* the request that used this ring slot RING requests ago is done */
        for (unsigned k = 0; k < RETAIN_MAX && slot[k].p; k++) {
            release(w, &slot[k]);
            slot[k].p = NULL;
        }

        unsigned nobj = (unsigned)rng_range(&rng, 2, 8);
        for (unsigned k = 0; k < nobj; k++) {
            item_t it;
            it.size = (uint32_t)request_size(&rng);
            it.tag = mix64(((uint64_t)w->id << 48) ^ serial++);
            uint64_t how = rng_below(&rng, 100);
            if (how < 85) {
                it.p = xmalloc(it.size);
            } else if (how < 95) {
                it.p = xcalloc(it.size);
                check_zero(it.p, it.size);
            } else {
                it.p = xmemalign(64, it.size);
            }
            fill_block(it.p, it.size, it.tag);
            w->allocs++;

            uint64_t fate = rng_below(&rng, 100);
            if (fate < 50 || (fate < 80 && nkeep == RETAIN_MAX)) {
                temp[ntemp++] = it;
            } else if (fate < 80) {
                slot[nkeep++] = it;
            } else {
                int to = G.n == 1 ? w->id : (w->id + 1 + (int)rng_below(&rng, (uint64_t)G.n - 1)) % G.n;
                if (!out[to]) {
                    out[to] = xmalloc(sizeof(mail_t));
                    out[to]->n = 0;
                    w->mails++;
                }
                out[to]->item[out[to]->n++] = it;
                if (out[to]->n == MAIL_BATCH) {
                    post(to, out[to]);
                    out[to] = NULL;
                }
            }
        }
        /* the request ends: its temporaries go, newest first */
        while (ntemp)
            release(w, &temp[--ntemp]);
    }

    /* flush mail, free what this thread still holds */
    for (int to = 0; to < G.n; to++)
        if (out[to])
            post(to, out[to]);
    atomic_fetch_add(&G.sent_all, 1);
    for (unsigned s = 0; s < RING; s++)
        for (unsigned k = 0; k < RETAIN_MAX && ring[s][k].p; k++)
            release(w, &ring[s][k]);
    /* keep draining until every thread has sent everything; then once more */
    while (atomic_load(&G.sent_all) < G.n) {
        drain(w);
        sleep_seconds(0.0005);
    }
    drain(w);
    w->t_end = now();
    book_free(ring, RING * sizeof *ring);
    book_free(out, (size_t)G.n * sizeof *out);
    atomic_fetch_add(&G.done, 1);
    return NULL;
}

void run_server(const opts_t *o)
{
    uint64_t total = scaled(o, SRV_REQUESTS, 1000);
    G.n = o->threads;
    G.box = book_alloc((size_t)G.n * sizeof *G.box);
    G.w = book_alloc((size_t)G.n * sizeof *G.w);
    pthread_t *tid = book_alloc((size_t)G.n * sizeof *tid);
    pthread_barrier_init(&G.start, NULL, (unsigned)G.n + 1);

    rss_begin();
    for (int i = 0; i < G.n; i++) {
        G.w[i].id = i;
        G.w[i].requests = total / (uint64_t)G.n + ((uint64_t)i < total % (uint64_t)G.n);
        if (pthread_create(&tid[i], NULL, worker, &G.w[i]))
            die("pthread_create failed");
    }
    pthread_barrier_wait(&G.start);
    double t = now();
    rss_wait_for(&G.done, G.n);
    uint64_t allocs = 0, frees = 0, sum = 0, mails = 0;
    double t_end = t;
    for (int i = 0; i < G.n; i++) {
        pthread_join(tid[i], NULL);
        allocs += G.w[i].allocs;
        frees += G.w[i].frees;
        sum += G.w[i].sum;
        mails += G.w[i].mails;
        if (G.w[i].t_end > t_end)
            t_end = G.w[i].t_end;
    }
    report_phase("run", t_end - t);
    pthread_barrier_destroy(&G.start);
    book_free(G.box, (size_t)G.n * sizeof *G.box);
    book_free(G.w, (size_t)G.n * sizeof *G.w);
    book_free(tid, (size_t)G.n * sizeof *tid);
    rss_after_free();

    if (allocs != frees)
        check_failed("%llu objects allocated, %llu freed", (unsigned long long)allocs,
                     (unsigned long long)frees);
    report_ops(allocs + mails);
    report_check("sum=%016llx objects=%llu requests=%llu", (unsigned long long)sum,
                 (unsigned long long)allocs, (unsigned long long)total);
}

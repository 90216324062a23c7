/*
 * prodcons.c: producer/consumer, every object freed by a thread that did not
 * allocate it.
 *
 * One producer thread allocates 8*10^6 * scale objects (random sizes
 * 16-1024 B), writes them and passes them in batches of 64 pointers through
 * a bounded ring of 64 batches (mutex + condition variables; a batch per
 * lock keeps the queue's cost small next to the allocator's) to one consumer
 * thread, which verifies and frees them.  Measures the allocator's
 * cross-thread free path and how it recycles memory that keeps flowing from
 * one thread to another.  The main thread only samples RSS.
 *
 * Self-check: object number s has a size and tag that are pure functions of
 * s; the consumer checks that it receives the objects in order, verifies
 * each (entirely up to 512 B, first/last/every-4-KiB words beyond) and sums
 * the verified values into "sum".
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define PC_OBJECTS 8e6
#define PC_BATCH 64
#define PC_SLOTS 64
#define PC_SALT 0x9c0d5ull

typedef struct { uint64_t first; unsigned n; void *p[PC_BATCH]; } batch_t;

static struct {
    uint64_t total;
    batch_t *slot;                /* PC_SLOTS batches, bookkeeping memory */
    unsigned head, count;         /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    uint64_t sum, received;
    double t_end;
    _Atomic int done;
} Q = { .lock = PTHREAD_MUTEX_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER,
        .not_empty = PTHREAD_COND_INITIALIZER };

static inline uint64_t obj_hash(uint64_t seq) { return mix64(PC_SALT + seq); }
static inline size_t obj_size(uint64_t h) { return 16 + (size_t)below(h, 1009); }  /* 16..1024 */

static void *producer(void *arg)
{
    (void)arg;
    uint64_t seq = 0;
    while (seq < Q.total) {
        pthread_mutex_lock(&Q.lock);
        while (Q.count == PC_SLOTS)
            pthread_cond_wait(&Q.not_full, &Q.lock);
        batch_t *b = &Q.slot[(Q.head + Q.count) % PC_SLOTS];
        pthread_mutex_unlock(&Q.lock);

        /* the slot is ours until it is published below */
        b->first = seq;
        b->n = 0;
        for (; b->n < PC_BATCH && seq < Q.total; b->n++, seq++) {
            uint64_t h = obj_hash(seq);
            size_t sz = obj_size(h);
            void *p = xmalloc(sz);
            fill_block(p, sz, h);
            b->p[b->n] = p;
        }

        pthread_mutex_lock(&Q.lock);
        Q.count++;
        pthread_cond_signal(&Q.not_empty);
        pthread_mutex_unlock(&Q.lock);
    }
    atomic_fetch_add(&Q.done, 1);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t expect = 0, sum = 0;
    while (expect < Q.total) {
        pthread_mutex_lock(&Q.lock);
        while (Q.count == 0)
            pthread_cond_wait(&Q.not_empty, &Q.lock);
        batch_t *b = &Q.slot[Q.head];
        pthread_mutex_unlock(&Q.lock);

        if (b->first != expect || b->n == 0 || b->n > PC_BATCH)
            check_failed("consumer expected object %llu, got a batch of %u from %llu",
                         (unsigned long long)expect, b->n, (unsigned long long)b->first);
        for (unsigned k = 0; k < b->n; k++, expect++) {
            uint64_t h = obj_hash(expect);
            sum += check_block(b->p[k], obj_size(h), h);
            free(b->p[k]);
        }

        pthread_mutex_lock(&Q.lock);
        Q.head = (Q.head + 1) % PC_SLOTS;
        Q.count--;
        pthread_cond_signal(&Q.not_full);
        pthread_mutex_unlock(&Q.lock);
    }
    Q.sum = sum;
    Q.received = expect;
    Q.t_end = now();
    atomic_fetch_add(&Q.done, 1);
    return NULL;
}

void run_prodcons(const opts_t *o)
{
    Q.total = scaled(o, PC_OBJECTS, 1000);
    Q.slot = book_alloc(PC_SLOTS * sizeof *Q.slot);

    rss_begin();
    double t = now();
    pthread_t prod, cons;
    if (pthread_create(&cons, NULL, consumer, NULL) || pthread_create(&prod, NULL, producer, NULL))
        die("pthread_create failed");
    rss_wait_for(&Q.done, 2);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    report_phase("run", Q.t_end - t);
    book_free(Q.slot, PC_SLOTS * sizeof *Q.slot);
    rss_after_free();

    if (Q.received != Q.total)
        check_failed("received %llu objects of %llu", (unsigned long long)Q.received,
                     (unsigned long long)Q.total);
    report_ops(Q.total);
    report_check("sum=%016llx n=%llu", (unsigned long long)Q.sum, (unsigned long long)Q.total);
}

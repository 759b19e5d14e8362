/* naive_pool.h : the "naive pthread pool" anchor of weft's benchmarks.
 *
 * What a C programmer writes in an afternoon, and what weft must beat by a
 * wide margin: one FIFO queue of malloc'd jobs under one mutex, a condition
 * variable to wake workers, and a counter of unfinished jobs with a second
 * condition variable for wait-all. No futures: "submit then result" is
 * submit then wait-all. Header-only, C and C++.
 *
 * Invariants: `pending` counts jobs queued or running, and only changes under
 * `mu`; `done_cv` is broadcast when it drops to 0. Workers exit when `stop`
 * is set and the queue is empty.
 */
#ifndef WEFT_BENCH_NAIVE_POOL_H
#define WEFT_BENCH_NAIVE_POOL_H

#include <pthread.h>
#include <stdlib.h>

typedef void (*naive_fn)(void *arg);

typedef struct naive_job {
    struct naive_job *next;
    naive_fn fn;
    void *arg;
} naive_job;

typedef struct naive_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or stop */
    pthread_cond_t done_cv; /* pending dropped to 0 */
    naive_job *head, *tail;
    long pending;
    int stop;
    int nthreads;
    pthread_t *threads;
} naive_pool;

static void *naive_pool_worker(void *p_)
{
    naive_pool *p = (naive_pool *)p_;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work_cv, &p->mu);
        if (!p->head) break; /* stop and empty */
        naive_job *j = p->head;
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* naive_pool_create() : starts `n` workers. @return 0 or an errno value. */
static inline int naive_pool_create(naive_pool *p, int n)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->head = p->tail = NULL;
    p->pending = 0;
    p->stop = 0;
    p->nthreads = 0;
    p->threads = (pthread_t *)calloc((size_t)n, sizeof *p->threads);
    if (!p->threads) return 12; /* ENOMEM */
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, naive_pool_worker, p);
        if (rc) return rc;
        p->nthreads++;
    }
    return 0;
}

/* naive_pool_submit() : queues fn(arg). Any thread. @return 0 or ENOMEM. */
static inline int naive_pool_submit(naive_pool *p, naive_fn fn, void *arg)
{
    naive_job *j = (naive_job *)malloc(sizeof *j);
    if (!j) return 12;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->pending++;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* naive_pool_wait_all() : waits until every submitted job has finished. */
static inline void naive_pool_wait_all(naive_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* naive_pool_destroy() : runs what is queued, stops and joins the workers. */
static inline void naive_pool_destroy(naive_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
}

#endif /* WEFT_BENCH_NAIVE_POOL_H */

/* queue_bench : weft_queue against a plain pthread queue and Python's
 * queue.Queue, put + get throughput (items/s, higher is better).
 *
 *   queue_spsc          1 producer thread puts N items, 1 consumer thread
 *                       gets them; the default queue (unbounded FIFO)
 *   queue_spsc_bounded  the same with capacity 1024
 *   queue_spsc_batch    weft only: put_many / get_many of 64 items,
 *                       unbounded (what batching buys over single items)
 *   queue_mpmc8         8 producers and 8 consumers move N items through
 *                       one unbounded FIFO queue
 *
 * Items are the numbers 1..N cast to pointers; every run checks that the
 * consumers' sum and count match. Threads are created inside the timed block
 * (the same for every system; ~60 us each against runs of 0.2 s and more).
 * pthread is what a C programmer writes without weft: a ring buffer (grown
 * by doubling when unbounded) under one mutex with two condition variables.
 * python is queue.Queue in the same run (bench/queue_anchor.py), with fewer
 * items (it is ~50x slower). Targets (issue 3): weft >= 10M items/s SPSC and
 * >= 50x queue.Queue. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "weft.h"

#define REPS 5
#define N_SPSC 10000000L
#define N_MPMC 10000000L
#define N_PY_SPSC 300000L
#define N_PY_MPMC 200000L
#define BOUND 1024
#define BATCH 64
#define MAXT 8

/* ---- the pthread queue ---- */

typedef struct pq {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    void **buf;
    size_t cap, head, n; /* ring of `cap` slots */
    size_t bound;        /* 0: unbounded (grows) */
} pq;

static int pq_init(pq *q, size_t bound)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    pthread_cond_init(&q->nonfull, NULL);
    q->cap = bound ? bound : 1024;
    q->buf = malloc(q->cap * sizeof *q->buf);
    q->head = q->n = 0;
    q->bound = bound;
    return q->buf ? 0 : -1;
}

static void pq_fini(pq *q)
{
    free(q->buf);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->nonempty);
    pthread_cond_destroy(&q->nonfull);
}

static int pq_put(pq *q, void *item)
{
    pthread_mutex_lock(&q->mu);
    while (q->bound && q->n == q->bound) pthread_cond_wait(&q->nonfull, &q->mu);
    if (q->n == q->cap) {
        void **nb = malloc(2 * q->cap * sizeof *nb);
        if (!nb) {
            pthread_mutex_unlock(&q->mu);
            return -1;
        }
        for (size_t i = 0; i < q->n; i++) nb[i] = q->buf[(q->head + i) % q->cap];
        free(q->buf);
        q->buf = nb;
        q->head = 0;
        q->cap *= 2;
    }
    q->buf[(q->head + q->n) % q->cap] = item;
    q->n++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void *pq_get(pq *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->n == 0) pthread_cond_wait(&q->nonempty, &q->mu);
    void *item = q->buf[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    if (q->bound) pthread_cond_signal(&q->nonfull);
    pthread_mutex_unlock(&q->mu);
    return item;
}

/* ---- the harness ---- */

enum {
    SYS_WEFT,
    SYS_WEFT_BATCH,
    SYS_PTHREAD
};

static struct {
    int sys;
    weft_queue *wq;
    pq pq;
    long per_producer;
    long per_consumer;
    int producers;
    atomic_long next_id; /* producer numbering */
    atomic_ullong sum;
    atomic_long count;
    atomic_int errors;
} H;

static void *producer(void *arg)
{
    (void)arg;
    long id = atomic_fetch_add(&H.next_id, 1);
    uintptr_t first = (uintptr_t)(id * H.per_producer) + 1;
    long n = H.per_producer;
    if (H.sys == SYS_WEFT) {
        for (long i = 0; i < n; i++)
            if (weft_queue_put(H.wq, (void *)(first + (uintptr_t)i), WEFT_FOREVER) != 0) {
                atomic_fetch_add(&H.errors, 1);
                return NULL;
            }
    } else if (H.sys == SYS_WEFT_BATCH) {
        void *b[BATCH];
        for (long i = 0; i < n; i += BATCH) {
            long k = n - i < BATCH ? n - i : BATCH;
            for (long j = 0; j < k; j++) b[j] = (void *)(first + (uintptr_t)(i + j));
            if (weft_queue_put_many(H.wq, b, (size_t)k, WEFT_FOREVER, NULL) != 0) {
                atomic_fetch_add(&H.errors, 1);
                return NULL;
            }
        }
    } else {
        for (long i = 0; i < n; i++)
            if (pq_put(&H.pq, (void *)(first + (uintptr_t)i)) != 0) {
                atomic_fetch_add(&H.errors, 1);
                return NULL;
            }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    unsigned long long sum = 0;
    long n = H.per_consumer, got = 0;
    if (H.sys == SYS_WEFT) {
        for (; got < n; got++) {
            void *item;
            if (weft_queue_get(H.wq, WEFT_FOREVER, &item) != 0) break;
            sum += (uintptr_t)item;
        }
    } else if (H.sys == SYS_WEFT_BATCH) {
        void *b[BATCH];
        while (got < n) {
            size_t k;
            size_t want = n - got < BATCH ? (size_t)(n - got) : BATCH;
            if (weft_queue_get_many(H.wq, WEFT_FOREVER, b, want, &k) != 0) break;
            for (size_t j = 0; j < k; j++) sum += (uintptr_t)b[j];
            got += (long)k;
        }
    } else {
        for (; got < n; got++) sum += (uintptr_t)pq_get(&H.pq);
    }
    atomic_fetch_add(&H.sum, sum);
    atomic_fetch_add(&H.count, got);
    return NULL;
}

/* One run: `threads` producers and as many consumers move `n` items.
 * @return items/s, or -1 after bench_fail. */
static double run(int sys, long capacity, int threads, long n, const char *what)
{
    H.sys = sys;
    H.producers = threads;
    H.per_producer = n / threads;
    H.per_consumer = n / threads;
    n = H.per_producer * threads;
    atomic_store(&H.next_id, 0);
    atomic_store(&H.sum, 0);
    atomic_store(&H.count, 0);
    atomic_store(&H.errors, 0);
    if (sys == SYS_PTHREAD) {
        if (pq_init(&H.pq, (size_t)capacity)) {
            bench_fail("%s: pq_init", what);
            return -1;
        }
    } else {
        weft_queue_options o = {.capacity = (size_t)capacity};
        if (weft_queue_create(&o, &H.wq)) {
            bench_fail("%s: %s", what, weft_last_error());
            return -1;
        }
    }
    pthread_t th[2 * MAXT];
    double t0 = bench_now();
    for (int i = 0; i < threads; i++) {
        pthread_create(&th[i], NULL, consumer, NULL);
        pthread_create(&th[threads + i], NULL, producer, NULL);
    }
    for (int i = 0; i < 2 * threads; i++) pthread_join(th[i], NULL);
    double dt = bench_now() - t0;
    if (sys == SYS_PTHREAD)
        pq_fini(&H.pq);
    else
        weft_queue_destroy(H.wq);
    unsigned long long want = (unsigned long long)n * (unsigned long long)(n + 1) / 2;
    if (atomic_load(&H.errors) || atomic_load(&H.count) != n || atomic_load(&H.sum) != want) {
        bench_fail("%s: %d errors, %ld items of %ld, sum %llu (want %llu)", what,
                   atomic_load(&H.errors), atomic_load(&H.count), n, atomic_load(&H.sum), want);
        return -1;
    }
    return (double)n / dt;
}

static void measure(const char *bench, const char *system, int sys, long capacity, int threads,
                    long n)
{
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(300, what);
    double s[REPS];
    int k = 0;
    bool ok = run(sys, capacity, threads, n / 4, what) >= 0; /* warm-up */
    for (int i = 0; ok && i < REPS; i++) {
        double v = run(sys, capacity, threads, n, what);
        if (v < 0)
            ok = false;
        else
            s[k++] = v;
    }
    alarm(0);
    if (ok)
        bench_report(bench, system, s, k, "items/s");
    else
        bench_fail("%s: not reported (a run failed)", what);
    bench_settle(100);
}

static void python(const char *bench, const char *mode, long n)
{
    char args[96];
    snprintf(args, sizeof args, "%s %ld %d", mode, n, REPS);
    bench_python_report(bench, "python", "items/s", "queue_anchor.py", args, 600);
}

/* items/s is higher-is-better, which bench_ratio() does not know: print
 * weft/anchor (> 1: weft moves more items per second). */
static void ratio(const char *bench, const char *anchor)
{
    const bench_result *w = bench_get(bench, "weft");
    const bench_result *a = bench_get(bench, anchor);
    if (!w || !a || a->median <= 0) {
        printf("ratio %s weft/%s = n/a\n", bench, anchor);
        return;
    }
    printf("ratio %s weft/%s = %.3gx (>1: weft is faster)\n", bench, anchor, w->median / a->median);
}

static void target(const char *bench)
{
    const bench_result *w = bench_get(bench, "weft");
    const bench_result *p = bench_get(bench, "python");
    char what[160];
    snprintf(what, sizeof what, "%s: weft >= 10M items/s", bench);
    bench_target(what, w != NULL, w && w->median >= 10e6);
    snprintf(what, sizeof what, "%s: weft >= 50x queue.Queue", bench);
    bench_target(what, w && p, w && p && w->median >= 50 * p->median);
}

int main(int argc, char **argv)
{
    (void)argc;
    bench_begin(argv[0], __FILE__);
    const char *only = getenv("QUEUE_BENCH_ONLY"); /* a bench name: run just that one */
#define WANT(b) (!only || !*only || !strcmp(only, b))

    if (WANT("queue_spsc")) {
        measure("queue_spsc", "weft", SYS_WEFT, 0, 1, N_SPSC);
        measure("queue_spsc", "pthread", SYS_PTHREAD, 0, 1, N_SPSC);
        python("queue_spsc", "spsc0", N_PY_SPSC);
    }
    if (WANT("queue_spsc_bounded")) {
        measure("queue_spsc_bounded", "weft", SYS_WEFT, BOUND, 1, N_SPSC);
        measure("queue_spsc_bounded", "pthread", SYS_PTHREAD, BOUND, 1, N_SPSC);
        python("queue_spsc_bounded", "spsc1024", N_PY_SPSC);
    }
    if (WANT("queue_spsc_batch")) measure("queue_spsc_batch", "weft", SYS_WEFT_BATCH, 0, 1, N_SPSC);
    if (WANT("queue_mpmc8")) {
        measure("queue_mpmc8", "weft", SYS_WEFT, 0, MAXT, N_MPMC);
        measure("queue_mpmc8", "pthread", SYS_PTHREAD, 0, MAXT, N_MPMC);
        python("queue_mpmc8", "mpmc8", N_PY_MPMC);
    }

    const char *benches[] = {"queue_spsc", "queue_spsc_bounded", "queue_mpmc8"};
    for (int i = 0; i < 3; i++) {
        if (!WANT(benches[i])) continue;
        ratio(benches[i], "pthread");
        ratio(benches[i], "python");
    }
    if (WANT("queue_spsc")) target("queue_spsc");
    if (WANT("queue_spsc_bounded")) target("queue_spsc_bounded");
    return bench_finish();
}

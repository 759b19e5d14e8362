/* stress_queue.c : 8 producers and 8 consumers move items through every
 * queue kind (FIFO unbounded and bounded, LIFO, PRIORITY) with nothing lost
 * or duplicated: every item is seen exactly once (a bitmap), and counts and
 * sums match. Producers mix blocking, timed and non-blocking puts and
 * batches; consumers mix gets the same way; the run ends with a DRAIN
 * shutdown, so consumers also exercise being woken by it.
 * Arguments: [threads per side] [scale]. At scale 1 each kind moves 1M
 * items (capacity 1: 100k, LIFO capacity 64: 250k, both slow by nature); `make test` runs the plain build at WEFT_STRESS_SCALE=10 (10M items
 * per kind), sanitizer builds at 2. */
// weft-test-timeout: 600
#include "check.h"

#include <sched.h>

static struct {
    weft_queue *q;
    int kind;
    long per; /* items per producer */
    int nprod;
    _Atomic unsigned char *seen; /* one byte per item */
    atomic_long count, dups, errors;
    atomic_ullong sum;
    atomic_long next;
} S;

static void *producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    uintptr_t first = (uintptr_t)(id * S.per) + 1;
    void *batch[16];
    long i = 0;
    while (i < S.per) {
        int rc;
        uintptr_t v = first + (uintptr_t)i;
        switch (i % 4) {
        case 0: { /* a batch */
            size_t k = S.per - i < 16 ? (size_t)(S.per - i) : 16;
            for (size_t j = 0; j < k; j++) batch[j] = (void *)(v + (uintptr_t)j);
            size_t n = 0;
            rc = weft_queue_put_many(S.q, batch, k, WEFT_FOREVER, &n);
            i += (long)n;
            if (rc == 0) continue;
            break;
        }
        case 1:
            while ((rc = weft_queue_put(S.q, (void *)v, 0)) == WEFT_EAGAIN) sched_yield();
            break;
        case 2:
            while ((rc = weft_queue_put(S.q, (void *)v, 0.001)) == WEFT_ETIMEDOUT) {
            }
            break;
        default:
            rc = S.kind == WEFT_QUEUE_PRIORITY
                     ? weft_queue_put_prio(S.q, (void *)v, (int64_t)(v % 7), WEFT_FOREVER)
                     : weft_queue_put(S.q, (void *)v, WEFT_FOREVER);
            break;
        }
        if (rc) {
            CHECK_OK(rc);
            atomic_fetch_add(&S.errors, 1);
            return NULL;
        }
        i++;
    }
    return NULL;
}

static void take(void *p)
{
    uintptr_t v = (uintptr_t)p;
    long total = S.per * S.nprod;
    if (v < 1 || (long)v > total) {
        atomic_fetch_add(&S.errors, 1);
        return;
    }
    if (atomic_exchange(&S.seen[v - 1], 1)) atomic_fetch_add(&S.dups, 1);
    atomic_fetch_add_explicit(&S.sum, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&S.count, 1, memory_order_relaxed);
}

static void *consumer(void *arg)
{
    (void)arg;
    void *batch[16];
    for (unsigned long i = 0;; i++) {
        int rc;
        void *p;
        switch (i % 4) {
        case 0: {
            size_t n = 0;
            rc = weft_queue_get_many(S.q, WEFT_FOREVER, batch, 16, &n);
            for (size_t j = 0; j < n; j++) take(batch[j]);
            if (rc == 0) {
                CHECK(n >= 1);
                if (n > 0) CHECK_OK(weft_queue_task_done(S.q, n));
                continue;
            }
            break;
        }
        case 1:
            while ((rc = weft_queue_get(S.q, 0, &p)) == WEFT_EAGAIN) sched_yield();
            break;
        case 2:
            while ((rc = weft_queue_get(S.q, 0.001, &p)) == WEFT_ETIMEDOUT) {
            }
            break;
        default:
            rc = weft_queue_get(S.q, WEFT_FOREVER, &p);
            break;
        }
        if (rc == WEFT_ECLOSED) return NULL;
        if (rc) {
            CHECK_OK(rc);
            atomic_fetch_add(&S.errors, 1);
            return NULL;
        }
        take(p);
        CHECK_OK(weft_queue_task_done(S.q, 1));
    }
}

/* Moves 1M / `div` items (times the scale) through a queue of `kind`. */
static void run(int kind, size_t capacity, long div, const char *name)
{
    int n = check_arg_threads(8);
    long total = (long)check_scaled(1000000 / (size_t)div, 20000);
    S.kind = kind;
    S.nprod = n;
    S.per = total / n;
    total = S.per * n;
    S.seen = calloc((size_t)total, 1);
    REQUIRE(S.seen);
    atomic_store(&S.count, 0);
    atomic_store(&S.dups, 0);
    atomic_store(&S.errors, 0);
    atomic_store(&S.sum, 0);
    weft_queue_options o = {.kind = kind, .capacity = capacity};
    REQUIRE_OK(weft_queue_create(&o, &S.q));
    pthread_t *th = calloc((size_t)(2 * n), sizeof *th);
    REQUIRE(th);
    double t0 = check_now();
    for (int i = 0; i < n; i++) {
        REQUIRE(pthread_create(&th[i], NULL, consumer, NULL) == 0);
        REQUIRE(pthread_create(&th[n + i], NULL, producer, (void *)(intptr_t)i) == 0);
    }
    for (int i = 0; i < n; i++) pthread_join(th[n + i], NULL);
    /* Every item put: join waits until the consumers marked all done. */
    CHECK_OK(weft_queue_join(S.q, 300));
    CHECK_OK(weft_queue_shutdown(S.q, WEFT_QUEUE_DRAIN));
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double dt = check_now() - t0;
    unsigned long long want = (unsigned long long)total * (unsigned long long)(total + 1) / 2;
    CHECK_EQ_INT(atomic_load(&S.errors), 0);
    CHECK_EQ_INT(atomic_load(&S.dups), 0);
    CHECK_EQ_INT(atomic_load(&S.count), total);
    CHECK_EQ_U64(atomic_load(&S.sum), want);
    long missing = 0;
    for (long i = 0; i < total; i++) missing += !S.seen[i];
    CHECK_EQ_INT(missing, 0);
    CHECK(weft_queue_empty(S.q));
    CHECK_EQ_INT(weft_queue_unfinished(S.q), 0);
    CHECK_OK(weft_queue_destroy(S.q));
    free(th);
    free((void *)S.seen);
    printf("    %s: %d producers + %d consumers moved %ld items in %.2f s (%.2fM items/s)\n", name,
           n, n, total, dt, (double)total / dt / 1e6);
}

TEST(stress_fifo_unbounded)
{
    run(WEFT_QUEUE_FIFO, 0, 1, "fifo");
}

TEST(stress_fifo_bounded)
{
    run(WEFT_QUEUE_FIFO, 100, 1, "fifo capacity 100");
}

TEST(stress_fifo_capacity_1)
{
    run(WEFT_QUEUE_FIFO, 1, 10, "fifo capacity 1"); /* every put waits for a get */
}

TEST(stress_lifo)
{
    run(WEFT_QUEUE_LIFO, 0, 1, "lifo");
}

TEST(stress_lifo_bounded)
{
    run(WEFT_QUEUE_LIFO, 64, 4, "lifo capacity 64");
}

TEST(stress_priority)
{
    run(WEFT_QUEUE_PRIORITY, 0, 1, "priority");
}

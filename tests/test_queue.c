/* test_queue.c : weft_queue against the contract of Python's queue module
 * (Queue, LifoQueue, PriorityQueue; task_done/join; 3.13's shutdown), plus
 * weft's own: timeouts, batches, growth of the unbounded FIFO, bad input. */
#include <limits.h>
#include <sched.h>

#include "check.h"

#define ITEM(i) ((void *)(uintptr_t)(i))
#define NUM(p) ((long)(uintptr_t)(p))

static weft_queue *make(int kind, size_t capacity)
{
    weft_queue_options o = {.kind = kind, .capacity = capacity};
    weft_queue *q = NULL;
    int rc = weft_queue_create(&o, &q);
    CHECK_OK(rc);
    REQUIRE(q != NULL);
    return q;
}

typedef struct {
    pthread_t th;
} thr;

static void thr_start(thr *t, void *(*fn)(void *), void *arg)
{
    REQUIRE(pthread_create(&t->th, NULL, fn, arg) == 0);
}

static void thr_join(thr *t)
{
    pthread_join(t->th, NULL);
}

static const int kinds[] = {WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY};

/* ------------------------------------------------------------------------
 * Order
 * ------------------------------------------------------------------------ */

TEST(fifo_order)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 0);
    for (long i = 1; i <= 100; i++) CHECK_OK(weft_queue_put(q, ITEM(i), 0));
    CHECK_EQ_INT(weft_queue_size(q), 100);
    for (long i = 1; i <= 100; i++) {
        void *p = NULL;
        CHECK_OK(weft_queue_get(q, 0, &p));
        CHECK_EQ_INT(NUM(p), i);
    }
    CHECK(weft_queue_empty(q));
    CHECK_OK(weft_queue_destroy(q));
}

TEST(lifo_order)
{
    weft_queue *q = make(WEFT_QUEUE_LIFO, 0);
    for (long i = 1; i <= 100; i++) CHECK_OK(weft_queue_put(q, ITEM(i), 0));
    for (long i = 100; i >= 1; i--) {
        void *p = NULL;
        CHECK_OK(weft_queue_get(q, 0, &p));
        CHECK_EQ_INT(NUM(p), i);
    }
    CHECK_OK(weft_queue_destroy(q));
}

TEST(priority_order_ties_keep_put_order)
{
    weft_queue *q = make(WEFT_QUEUE_PRIORITY, 0);
    /* priorities 3,1,2 repeated: items numbered in put order */
    static const int64_t prio[] = {3, 1, 2, 1, 3, 2, 1, -5, 2, 3};
    for (long i = 0; i < 10; i++) CHECK_OK(weft_queue_put_prio(q, ITEM(i), prio[i], 0));
    CHECK_OK(weft_queue_put(q, ITEM(10), 0)); /* plain put: priority 0 */
    static const long want[] = {7, 10, 1, 3, 6, 2, 5, 8, 0, 4, 9};
    for (int i = 0; i < 11; i++) {
        void *p = NULL;
        int64_t pr = 99;
        CHECK_OK(weft_queue_get_prio(q, 0, &p, &pr));
        CHECK_EQ_INT(NUM(p), want[i]);
        CHECK_EQ_INT(pr, want[i] == 10 ? 0 : prio[want[i]]);
    }
    CHECK_OK(weft_queue_destroy(q));
}

TEST(priority_many_equal_keep_put_order)
{
    weft_queue *q = make(WEFT_QUEUE_PRIORITY, 0);
    for (long i = 0; i < 5000; i++) CHECK_OK(weft_queue_put_prio(q, ITEM(i), i % 3, 0));
    long last[3] = {-1, -1, -1};
    int64_t lastp = -1;
    for (long i = 0; i < 5000; i++) {
        void *p;
        int64_t pr;
        CHECK_OK(weft_queue_get_prio(q, 0, &p, &pr));
        CHECK(pr >= lastp);
        lastp = pr;
        CHECK_EQ_INT(NUM(p) % 3, pr);
        CHECK(NUM(p) > last[pr]);
        last[pr] = NUM(p);
    }
    CHECK_OK(weft_queue_destroy(q));
}

TEST(null_items_are_items)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        CHECK_OK(weft_queue_put(q, NULL, 0));
        CHECK_EQ_INT(weft_queue_size(q), 1);
        void *p = ITEM(1);
        CHECK_OK(weft_queue_get(q, 0, &p));
        CHECK(p == NULL);
        CHECK_OK(weft_queue_destroy(q));
    }
}

TEST(unbounded_fifo_grows_and_keeps_order)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 0);
    long n = 300000; /* many times the first ring */
    for (long r = 0; r < 2; r++) {
        for (long i = 0; i < n; i++) REQUIRE(weft_queue_put(q, ITEM(i), 0) == 0);
        CHECK_EQ_INT(weft_queue_size(q), n);
        for (long i = 0; i < n; i++) {
            void *p;
            REQUIRE(weft_queue_get(q, 0, &p) == 0);
            if (NUM(p) != i) {
                CHECK_EQ_INT(NUM(p), i);
                break;
            }
        }
        CHECK(weft_queue_empty(q));
    }
    CHECK_OK(weft_queue_destroy(q));
}

/* Interleaved growth: the ring fills while a consumer drains it. */
static void *grow_consumer(void *arg)
{
    weft_queue *q = arg;
    for (long i = 0; i < 200000; i++) {
        void *p;
        int rc = weft_queue_get(q, 30, &p);
        if (rc) {
            CHECK_OK(rc);
            return NULL;
        }
        if (NUM(p) != i) {
            CHECK_EQ_INT(NUM(p), i);
            return NULL;
        }
    }
    return NULL;
}

TEST(unbounded_fifo_grows_under_a_consumer)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 0);
    thr t;
    thr_start(&t, grow_consumer, q);
    for (long i = 0; i < 200000; i++) {
        REQUIRE(weft_queue_put(q, ITEM(i), 0) == 0);
        if (i % 50000 == 0) check_sleep(0.01); /* let it drain, then refill */
    }
    thr_join(&t);
    CHECK(weft_queue_empty(q));
    CHECK_OK(weft_queue_destroy(q));
}

/* Each producer's items come out in its order, as every consumer sees them. */
enum {
    OP = 4,
    OC = 4,
    OPER = 50000
};
static struct {
    weft_queue *q;
    atomic_long taken;
} O;

static void *order_producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long i = 0; i < OPER; i++)
        if (weft_queue_put(O.q, ITEM(id * 1000000 + i + 1), 30) != 0) {
            CHECK(0);
            return NULL;
        }
    return NULL;
}

static void *order_consumer(void *arg)
{
    (void)arg;
    long last[OP];
    for (int i = 0; i < OP; i++) last[i] = 0;
    for (;;) {
        void *p;
        int rc = weft_queue_get(O.q, 30, &p);
        if (rc == WEFT_ECLOSED) return NULL;
        if (rc) {
            CHECK_OK(rc);
            return NULL;
        }
        long v = NUM(p), id = v / 1000000, seq = v % 1000000;
        if (seq <= last[id]) CHECK_MSG(0, "producer %ld: %ld after %ld", id, seq, last[id]);
        last[id] = seq;
        atomic_fetch_add(&O.taken, 1);
    }
}

TEST(fifo_keeps_each_producers_order)
{
    long caps[] = {0, 7, 64};
    for (int c = 0; c < 3; c++) {
        O.q = make(WEFT_QUEUE_FIFO, caps[c]);
        atomic_store(&O.taken, 0);
        thr p[OP], k[OC];
        for (int i = 0; i < OC; i++) thr_start(&k[i], order_consumer, NULL);
        for (int i = 0; i < OP; i++) thr_start(&p[i], order_producer, (void *)(intptr_t)i);
        for (int i = 0; i < OP; i++) thr_join(&p[i]);
        CHECK_OK(weft_queue_shutdown(O.q, WEFT_QUEUE_DRAIN));
        for (int i = 0; i < OC; i++) thr_join(&k[i]);
        CHECK_EQ_INT(atomic_load(&O.taken), OP * OPER);
        CHECK(weft_queue_empty(O.q));
        CHECK_OK(weft_queue_destroy(O.q));
    }
}

/* ------------------------------------------------------------------------
 * Capacity, non-blocking and timed calls
 * ------------------------------------------------------------------------ */

TEST(bounded_full_put_fails_without_blocking)
{
    long caps[] = {1, 3, 8, 1000};
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 4; c++) {
            weft_queue *q = make(kinds[k], caps[c]);
            CHECK_EQ_INT(weft_queue_capacity(q), caps[c]);
            for (long i = 0; i < caps[c]; i++) {
                CHECK(!weft_queue_full(q));
                CHECK_OK(weft_queue_put(q, ITEM(i), 0));
            }
            CHECK(weft_queue_full(q));
            CHECK_EQ_INT(weft_queue_size(q), caps[c]);
            CHECK_RC(weft_queue_put(q, ITEM(-1), 0), WEFT_EAGAIN);
            double t0 = check_now();
            CHECK_RC(weft_queue_put(q, ITEM(-1), 0.05), WEFT_ETIMEDOUT);
            CHECK(check_now() - t0 >= 0.045);
            void *p;
            CHECK_OK(weft_queue_get(q, 0, &p));
            CHECK(!weft_queue_full(q));
            CHECK_OK(weft_queue_put(q, ITEM(-1), 0));
            CHECK_EQ_INT(weft_queue_size(q), caps[c]);
            CHECK_OK(weft_queue_destroy(q));
        }
}

TEST(bounded_fifo_wraps_many_laps)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 3);
    long next = 0;
    for (long i = 0; i < 1000; i++) {
        CHECK_OK(weft_queue_put(q, ITEM(i), 0));
        if (i % 3 == 2)
            for (int j = 0; j < 3; j++) {
                void *p;
                CHECK_OK(weft_queue_get(q, 0, &p));
                CHECK_EQ_INT(NUM(p), next++);
            }
    }
    CHECK_OK(weft_queue_destroy(q));
}

TEST(empty_get_fails_without_blocking_or_after_timeout)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        void *p = ITEM(7);
        CHECK_RC(weft_queue_get(q, 0, &p), WEFT_EAGAIN);
        double t0 = check_now();
        CHECK_RC(weft_queue_get(q, 0.05, &p), WEFT_ETIMEDOUT);
        double dt = check_now() - t0;
        CHECK_MSG(dt >= 0.045 && dt < 5, "waited %.3f s", dt);
        CHECK(p == ITEM(7)); /* unchanged on error */
        CHECK(weft_queue_empty(q));
        CHECK_OK(weft_queue_destroy(q));
    }
}

struct later {
    weft_queue *q;
    double delay;
    long value;
    int rc;
};

static void *put_later(void *arg)
{
    struct later *l = arg;
    check_sleep(l->delay);
    l->rc = weft_queue_put(l->q, ITEM(l->value), WEFT_FOREVER);
    return NULL;
}

static void *get_later(void *arg)
{
    struct later *l = arg;
    check_sleep(l->delay);
    void *p;
    l->rc = weft_queue_get(l->q, WEFT_FOREVER, &p);
    if (l->rc == 0) l->value = NUM(p);
    return NULL;
}

TEST(blocked_get_wakes_on_put)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        struct later l = {q, 0.05, 42, -1};
        thr t;
        thr_start(&t, put_later, &l);
        void *p = NULL;
        double t0 = check_now();
        CHECK_OK(weft_queue_get(q, 10, &p));
        CHECK(check_now() - t0 < 5);
        CHECK_EQ_INT(NUM(p), 42);
        thr_join(&t);
        CHECK_OK(l.rc);
        CHECK_OK(weft_queue_destroy(q));
    }
}

TEST(blocked_put_wakes_on_get)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 2);
        CHECK_OK(weft_queue_put(q, ITEM(1), 0));
        CHECK_OK(weft_queue_put(q, ITEM(2), 0));
        struct later l = {q, 0.05, 0, -1};
        thr t;
        thr_start(&t, get_later, &l);
        CHECK_OK(weft_queue_put(q, ITEM(3), 10));
        thr_join(&t);
        CHECK_OK(l.rc);
        CHECK_EQ_INT(l.value, kinds[k] == WEFT_QUEUE_LIFO ? 2 : 1);
        CHECK_EQ_INT(weft_queue_size(q), 2);
        CHECK_OK(weft_queue_destroy(q));
    }
}

/* Many sleeping getters, items put one by one: each is woken and served. */
static struct {
    weft_queue *q;
    atomic_long sum, got;
} W;

static void *sleepy_getter(void *arg)
{
    (void)arg;
    void *p;
    int rc = weft_queue_get(W.q, 30, &p);
    CHECK_OK(rc);
    if (rc == 0) {
        atomic_fetch_add(&W.sum, NUM(p));
        atomic_fetch_add(&W.got, 1);
    }
    return NULL;
}

TEST(every_sleeping_getter_is_woken)
{
    for (int k = 0; k < 3; k++) {
        W.q = make(kinds[k], 0);
        atomic_store(&W.sum, 0);
        atomic_store(&W.got, 0);
        enum {
            N = 6
        };
        thr t[N];
        for (int i = 0; i < N; i++) thr_start(&t[i], sleepy_getter, NULL);
        check_sleep(0.05); /* let them sleep */
        for (long i = 1; i <= N; i++) {
            CHECK_OK(weft_queue_put(W.q, ITEM(i), 0));
            if (i % 2) check_sleep(0.002);
        }
        for (int i = 0; i < N; i++) thr_join(&t[i]);
        CHECK_EQ_INT(atomic_load(&W.got), N);
        CHECK_EQ_INT(atomic_load(&W.sum), N * (N + 1) / 2);
        CHECK_OK(weft_queue_destroy(W.q));
    }
}

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

TEST(put_many_get_many)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        void *in[100], *out[100];
        for (long i = 0; i < 100; i++) in[i] = ITEM(i);
        size_t n = 99;
        CHECK_OK(weft_queue_put_many(q, in, 100, 0, &n));
        CHECK_EQ_INT(n, 100);
        CHECK_OK(weft_queue_put_many(q, in, 0, 0, &n));
        CHECK_EQ_INT(n, 0);
        CHECK_OK(weft_queue_get_many(q, 0, out, 30, &n));
        CHECK_EQ_INT(n, 30);
        for (long i = 0; i < 30; i++)
            CHECK_EQ_INT(NUM(out[i]), kinds[k] == WEFT_QUEUE_LIFO ? 99 - i : i);
        CHECK_OK(weft_queue_get_many(q, 0, out, 100, &n));
        CHECK_EQ_INT(n, 70);
        CHECK_RC(weft_queue_get_many(q, 0, out, 100, &n), WEFT_EAGAIN);
        CHECK_EQ_INT(n, 0);
        CHECK_OK(weft_queue_destroy(q));
    }
}

TEST(put_many_into_bounded_stops_when_full)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 10);
    void *in[25];
    for (long i = 0; i < 25; i++) in[i] = ITEM(i);
    size_t n = 99;
    CHECK_RC(weft_queue_put_many(q, in, 25, 0, &n), WEFT_EAGAIN);
    CHECK_EQ_INT(n, 10);
    CHECK_RC(weft_queue_put_many(q, in + 10, 15, 0.02, &n), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(n, 0);
    void *out[25];
    CHECK_OK(weft_queue_get_many(q, 0, out, 25, &n));
    CHECK_EQ_INT(n, 10);
    for (long i = 0; i < 10; i++) CHECK_EQ_INT(NUM(out[i]), i);
    CHECK_OK(weft_queue_destroy(q));
}

/* ------------------------------------------------------------------------
 * task_done, join
 * ------------------------------------------------------------------------ */

TEST(join_returns_at_once_when_nothing_is_unfinished)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 0);
    CHECK_OK(weft_queue_join(q, 0));
    CHECK_OK(weft_queue_join(q, WEFT_FOREVER));
    CHECK_OK(weft_queue_put(q, ITEM(1), 0));
    CHECK_EQ_INT(weft_queue_unfinished(q), 1);
    CHECK_RC(weft_queue_join(q, 0), WEFT_EAGAIN);
    void *p;
    CHECK_OK(weft_queue_get(q, 0, &p));
    /* got, but not done: join still waits (Python: unfinished_tasks) */
    CHECK_RC(weft_queue_join(q, 0.02), WEFT_ETIMEDOUT);
    CHECK_OK(weft_queue_task_done(q, 1));
    CHECK_EQ_INT(weft_queue_unfinished(q), 0);
    CHECK_OK(weft_queue_join(q, 0));
    CHECK_OK(weft_queue_destroy(q));
}

TEST(task_done_too_many_times_is_an_error)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        CHECK_ERR(weft_queue_task_done(q, 1), WEFT_EOVERFLOW);
        CHECK_OK(weft_queue_put(q, ITEM(1), 0));
        CHECK_OK(weft_queue_put(q, ITEM(2), 0));
        CHECK_ERR(weft_queue_task_done(q, 3), WEFT_EOVERFLOW);
        CHECK_EQ_INT(weft_queue_unfinished(q), 2); /* nothing marked */
        CHECK_OK(weft_queue_task_done(q, 2));
        CHECK_ERR(weft_queue_task_done(q, 1), WEFT_EOVERFLOW);
        CHECK_OK(weft_queue_destroy(q));
    }
}

/* The notebook's worker pattern: N threads loop on get, work, task_done;
 * main puts the items, joins, then shuts down and the workers leave. */
enum {
    WORKERS = 4,
    JOBS = 20000
};
static struct {
    weft_queue *q;
    atomic_long sum;
    atomic_long done;
    atomic_int closed;
} J;

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        void *p;
        int rc = weft_queue_get(J.q, WEFT_FOREVER, &p);
        if (rc == WEFT_ECLOSED) {
            atomic_fetch_add(&J.closed, 1);
            return NULL;
        }
        if (rc) {
            CHECK_OK(rc);
            return NULL;
        }
        atomic_fetch_add(&J.sum, NUM(p) * NUM(p));
        atomic_fetch_add(&J.done, 1);
        CHECK_OK(weft_queue_task_done(J.q, 1));
    }
}

TEST(worker_pattern_put_join_shutdown)
{
    for (int k = 0; k < 3; k++) {
        J.q = make(kinds[k], k == 1 ? 16 : 0);
        atomic_store(&J.sum, 0);
        atomic_store(&J.done, 0);
        atomic_store(&J.closed, 0);
        thr t[WORKERS];
        for (int i = 0; i < WORKERS; i++) thr_start(&t[i], worker, NULL);
        long want = 0;
        for (long i = 1; i <= JOBS; i++) {
            CHECK_OK(weft_queue_put(J.q, ITEM(i), WEFT_FOREVER));
            want += i * i;
        }
        CHECK_OK(weft_queue_join(J.q, 60));
        /* join returned: every item was processed */
        CHECK_EQ_INT(atomic_load(&J.done), JOBS);
        CHECK_EQ_INT(atomic_load(&J.sum), want);
        CHECK_OK(weft_queue_shutdown(J.q, WEFT_QUEUE_DRAIN));
        for (int i = 0; i < WORKERS; i++) thr_join(&t[i]);
        CHECK_EQ_INT(atomic_load(&J.closed), WORKERS);
        CHECK_OK(weft_queue_destroy(J.q));
    }
}

static void *slow_done(void *arg)
{
    weft_queue *q = arg;
    void *p;
    CHECK_OK(weft_queue_get(q, 10, &p));
    check_sleep(0.05);
    CHECK_OK(weft_queue_task_done(q, 1));
    return NULL;
}

TEST(join_wakes_when_the_last_item_is_done)
{
    weft_queue *q = make(WEFT_QUEUE_FIFO, 0);
    CHECK_OK(weft_queue_put(q, ITEM(1), 0));
    thr t;
    thr_start(&t, slow_done, q);
    double t0 = check_now();
    CHECK_OK(weft_queue_join(q, 10));
    double dt = check_now() - t0;
    CHECK_MSG(dt >= 0.04 && dt < 5, "join took %.3f s", dt);
    thr_join(&t);
    CHECK_OK(weft_queue_destroy(q));
}

/* ------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------ */

TEST(shutdown_drain_gets_until_empty_then_closed)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        CHECK(!weft_queue_is_shutdown(q));
        CHECK_OK(weft_queue_put(q, ITEM(1), 0));
        CHECK_OK(weft_queue_put(q, ITEM(2), 0));
        CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DRAIN));
        CHECK(weft_queue_is_shutdown(q));
        CHECK_ERR(weft_queue_put(q, ITEM(3), 0), WEFT_ECLOSED);
        CHECK_ERR(weft_queue_put(q, ITEM(3), WEFT_FOREVER), WEFT_ECLOSED);
        void *p;
        CHECK_OK(weft_queue_get(q, 0, &p));
        CHECK_OK(weft_queue_get(q, WEFT_FOREVER, &p));
        CHECK_ERR(weft_queue_get(q, 0, &p), WEFT_ECLOSED);
        CHECK_ERR(weft_queue_get(q, WEFT_FOREVER, &p), WEFT_ECLOSED);
        CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DRAIN)); /* idempotent */
        /* join after shutdown still waits for task_done (Python 3.13) */
        CHECK_RC(weft_queue_join(q, 0.01), WEFT_ETIMEDOUT);
        CHECK_OK(weft_queue_task_done(q, 2));
        CHECK_OK(weft_queue_join(q, 0));
        CHECK_OK(weft_queue_destroy(q));
    }
}

static atomic_int freed;
static atomic_long freed_sum;

static void count_free(void *item, void *arg)
{
    CHECK(arg == &freed);
    atomic_fetch_add(&freed, 1);
    atomic_fetch_add(&freed_sum, NUM(item));
}

TEST(shutdown_discard_frees_items_and_releases_join)
{
    for (int k = 0; k < 3; k++) {
        weft_queue_options o = {.kind = kinds[k], .free_item = count_free, .free_arg = &freed};
        weft_queue *q;
        REQUIRE_OK(weft_queue_create(&o, &q));
        atomic_store(&freed, 0);
        atomic_store(&freed_sum, 0);
        for (long i = 1; i <= 5000; i++) CHECK_OK(weft_queue_put(q, ITEM(i), 0));
        void *p;
        CHECK_OK(weft_queue_get(q, 0, &p)); /* one in flight, not done */
        CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DISCARD));
        CHECK_EQ_INT(atomic_load(&freed), 4999);
        CHECK_EQ_INT(atomic_load(&freed_sum), 5000L * 5001 / 2 - NUM(p));
        CHECK_EQ_INT(weft_queue_size(q), 0);
        CHECK_EQ_INT(weft_queue_unfinished(q), 1); /* the one in flight */
        CHECK_ERR(weft_queue_get(q, 0, &p), WEFT_ECLOSED);
        CHECK_ERR(weft_queue_put(q, ITEM(1), 0), WEFT_ECLOSED);
        CHECK_RC(weft_queue_join(q, 0.01), WEFT_ETIMEDOUT);
        CHECK_OK(weft_queue_task_done(q, 1));
        CHECK_OK(weft_queue_join(q, 0));
        CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DRAIN)); /* stays DISCARD */
        CHECK_ERR(weft_queue_get(q, 0, &p), WEFT_ECLOSED);
        CHECK_OK(weft_queue_destroy(q));
        CHECK_EQ_INT(atomic_load(&freed), 4999); /* nothing left to free */
    }
}

TEST(discard_after_drain_discards_what_is_left)
{
    weft_queue_options o = {.free_item = count_free, .free_arg = &freed};
    weft_queue *q;
    REQUIRE_OK(weft_queue_create(&o, &q));
    atomic_store(&freed, 0);
    for (long i = 1; i <= 3; i++) CHECK_OK(weft_queue_put(q, ITEM(i), 0));
    CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DRAIN));
    void *p;
    CHECK_OK(weft_queue_get(q, 0, &p));
    CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DISCARD));
    CHECK_EQ_INT(atomic_load(&freed), 2);
    CHECK_ERR(weft_queue_get(q, 0, &p), WEFT_ECLOSED);
    CHECK_OK(weft_queue_destroy(q));
}

struct blocked {
    weft_queue *q;
    int put; /* 1: put, 0: get */
    int rc;
};

static void *block_call(void *arg)
{
    struct blocked *b = arg;
    void *p;
    b->rc = b->put ? weft_queue_put(b->q, ITEM(9), WEFT_FOREVER)
                   : weft_queue_get(b->q, WEFT_FOREVER, &p);
    return NULL;
}

TEST(shutdown_wakes_blocked_callers_with_closed)
{
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < 3; k++) {
            weft_queue *getq = make(kinds[k], 0);
            weft_queue *putq = make(kinds[k], 1);
            CHECK_OK(weft_queue_put(putq, ITEM(1), 0));
            struct blocked b[4] = {{getq, 0, 1}, {getq, 0, 1}, {putq, 1, 1}, {putq, 1, 1}};
            thr t[4];
            for (int i = 0; i < 4; i++) thr_start(&t[i], block_call, &b[i]);
            check_sleep(0.05);
            /* destroy refuses while threads are blocked inside */
            CHECK_ERR(weft_queue_destroy(getq), WEFT_EBUSY);
            double t0 = check_now();
            CHECK_OK(weft_queue_shutdown(getq, mode));
            CHECK_OK(weft_queue_shutdown(putq, mode));
            for (int i = 0; i < 4; i++) thr_join(&t[i]);
            CHECK(check_now() - t0 < 5);
            for (int i = 0; i < 4; i++) CHECK_RC(b[i].rc, WEFT_ECLOSED);
            CHECK_OK(weft_queue_destroy(getq));
            CHECK_OK(weft_queue_destroy(putq));
        }
}

TEST(destroy_frees_items_left)
{
    for (int k = 0; k < 3; k++) {
        weft_queue_options o = {.kind = kinds[k], .free_item = count_free, .free_arg = &freed};
        weft_queue *q;
        REQUIRE_OK(weft_queue_create(&o, &q));
        atomic_store(&freed, 0);
        atomic_store(&freed_sum, 0);
        for (long i = 1; i <= 3000; i++) CHECK_OK(weft_queue_put(q, ITEM(i), 0));
        CHECK_OK(weft_queue_destroy(q));
        CHECK_EQ_INT(atomic_load(&freed), 3000);
        CHECK_EQ_INT(atomic_load(&freed_sum), 3000L * 3001 / 2);
    }
    CHECK_OK(weft_queue_destroy(NULL));
}

/* ------------------------------------------------------------------------
 * Bad input
 * ------------------------------------------------------------------------ */

TEST(bad_input)
{
    weft_queue *q = (weft_queue *)0x1;
    CHECK_ERR(weft_queue_create(NULL, NULL), WEFT_EINVAL);
    weft_queue_options o = {.kind = 3};
    CHECK_ERR(weft_queue_create(&o, &q), WEFT_EINVAL);
    o = (weft_queue_options){.kind = -1};
    CHECK_ERR(weft_queue_create(&o, &q), WEFT_EINVAL);

    q = make(WEFT_QUEUE_FIFO, 0);
    void *p;
    size_t n;
    CHECK_ERR(weft_queue_put(NULL, ITEM(1), 0), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get(NULL, 0, &p), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get(q, 0, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_queue_put(q, ITEM(1), NAN), WEFT_EINVAL);
    CHECK_ERR(weft_queue_put(q, ITEM(1), -1), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get(q, NAN, &p), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get(q, -0.5, &p), WEFT_EINVAL);
    CHECK_ERR(weft_queue_join(q, NAN), WEFT_EINVAL);
    CHECK_ERR(weft_queue_join(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_queue_task_done(q, 0), WEFT_EINVAL);
    CHECK_ERR(weft_queue_task_done(NULL, 1), WEFT_EINVAL);
    CHECK_ERR(weft_queue_put_prio(q, ITEM(1), 5, 0), WEFT_EINVAL); /* not PRIORITY */
    CHECK_ERR(weft_queue_get_prio(q, 0, &p, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_queue_put_many(q, NULL, 3, 0, &n), WEFT_EINVAL);
    CHECK_ERR(weft_queue_put_many(q, &p, 1, NAN, &n), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get_many(q, 0, &p, 0, &n), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get_many(q, 0, NULL, 1, &n), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get_many(q, 0, &p, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_queue_shutdown(q, 2), WEFT_EINVAL);
    CHECK_ERR(weft_queue_shutdown(q, -1), WEFT_EINVAL);
    CHECK_ERR(weft_queue_shutdown(NULL, 0), WEFT_EINVAL);
    /* the snapshots are counts: 0 for a NULL queue, with a message */
    CHECK_EQ_INT(weft_queue_size(NULL), 0);
    CHECK(strstr(weft_last_error(), "weft_queue_size") != NULL);
    CHECK_EQ_INT(weft_queue_capacity(NULL), 0);
    CHECK_EQ_INT(weft_queue_unfinished(NULL), 0);
    CHECK(!weft_queue_empty(NULL));
    CHECK(!weft_queue_full(NULL));
    CHECK(!weft_queue_is_shutdown(NULL));
    /* nothing above changed the queue */
    CHECK_EQ_INT(weft_queue_size(q), 0);
    CHECK(!weft_queue_is_shutdown(q));
    CHECK_OK(weft_queue_destroy(q));

    /* Memory that is not a queue (zeroed, or a destroyed queue's bytes
     * before reuse) is refused by its magic field. */
    static _Alignas(64) unsigned char fake[4096];
    weft_queue *f = (weft_queue *)fake;
    CHECK_ERR(weft_queue_put(f, ITEM(1), 0), WEFT_EINVAL);
    CHECK_ERR(weft_queue_get(f, 0, &p), WEFT_EINVAL);
    CHECK_ERR(weft_queue_destroy(f), WEFT_EINVAL);
    CHECK_EQ_INT(weft_queue_size(f), 0);
    CHECK(!weft_queue_empty(f));
}

TEST(capacity_zero_is_unbounded)
{
    for (int k = 0; k < 3; k++) {
        weft_queue *q = make(kinds[k], 0);
        CHECK_EQ_INT(weft_queue_capacity(q), 0);
        for (long i = 0; i < 10000; i++) REQUIRE(weft_queue_put(q, ITEM(i), 0) == 0);
        CHECK(!weft_queue_full(q));
        CHECK_EQ_INT(weft_queue_size(q), 10000);
        CHECK_OK(weft_queue_destroy(q));
    }
    /* NULL options: an unbounded FIFO */
    weft_queue *q;
    REQUIRE_OK(weft_queue_create(NULL, &q));
    CHECK_OK(weft_queue_put(q, ITEM(1), 0));
    CHECK_OK(weft_queue_put(q, ITEM(2), 0));
    void *p;
    CHECK_OK(weft_queue_get(q, 0, &p));
    CHECK_EQ_INT(NUM(p), 1);
    CHECK_OK(weft_queue_destroy(q));
}

/* ------------------------------------------------------------------------
 * Sizes (issue 11, defect 4)
 * ------------------------------------------------------------------------ */

/* A bounded FIFO allocates its ring at create: a capacity whose ring does not
 * fit the address space is WEFT_ENOMEM before any allocation (it used to
 * wrap the size: 2^60 slots allocated 192 bytes and wrote past them). LIFO
 * and PRIORITY queues grow on demand, so a huge bound is just a bound. */
TEST(huge_capacity_is_refused_or_a_mere_bound)
{
    static const long huge[] = {1L << 59, 1L << 60, (1L << 60) + 1, 1L << 62, LONG_MAX};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        weft_queue_options o = {.kind = WEFT_QUEUE_FIFO, .capacity = huge[i]};
        weft_queue *q = (weft_queue *)0x1;
        CHECK_ERR(weft_queue_create(&o, &q), WEFT_ENOMEM);
        CHECK(q == NULL);
        CHECK_MSG(strstr(weft_last_error(), "capacity") != NULL, "message: %s", weft_last_error());
        for (int k = 1; k < 3; k++) {
            weft_queue *r = make(kinds[k], huge[i]);
            CHECK_EQ_INT(weft_queue_capacity(r), huge[i]);
            for (long j = 0; j < 200; j++) CHECK_OK(weft_queue_put(r, ITEM(j), 0));
            CHECK_EQ_INT(weft_queue_size(r), 200);
            CHECK(!weft_queue_full(r));
            void *p;
            CHECK_OK(weft_queue_get(r, 0, &p));
            CHECK_EQ_INT(NUM(p), k == 1 ? 199 : 0);
            CHECK_OK(weft_queue_destroy(r));
        }
    }
}

/* ------------------------------------------------------------------------
 * Puts racing an immediate shutdown (issue 11, defect 10)
 * ------------------------------------------------------------------------ */

enum {
    RACE_PUTTERS = 4
};

/* Threads live across rounds; each round has a fresh queue. */
static struct {
    weft_queue *_Atomic q;
    atomic_int round;     /* bumped by the main thread to start a round; -1 ends */
    atomic_int finished;  /* threads done with the current round */
    atomic_int running;   /* putters past their first put this round */
    atomic_long accepted; /* items of puts that returned 0 */
    atomic_long got;      /* items the consumer got (and marked done) */
    atomic_long freed;    /* items passed to free_item */
    atomic_int bad_rc;    /* a call returned something else than 0 / ECLOSED */
} R;

static inline void race_relax(void)
{
    __asm__ volatile("" ::: "memory");
}

static void race_free(void *item, void *arg)
{
    (void)item;
    (void)arg;
    atomic_fetch_add(&R.freed, 1);
}

/* Waits for the round after `seen`; false when the test ends. */
static bool race_next(int *seen)
{
    int r;
    while ((r = atomic_load(&R.round)) == *seen) sched_yield();
    *seen = r;
    return r >= 0;
}

/* Puts until the queue refuses; every 4th call is a batch of 8. */
static void *race_putter(void *arg)
{
    long id = (long)(intptr_t)arg;
    int seen = 0;
    while (race_next(&seen)) {
        weft_queue *q = atomic_load(&R.q);
        for (long i = 0;; i++) {
            int rc;
            size_t n = 1;
            if (weft_queue_size(q) > 256) sched_yield(); /* keep the rounds short */
            if ((i + id) % 4 == 0) {
                void *items[8] = {0};
                rc = weft_queue_put_many(q, items, 8, WEFT_FOREVER, &n);
            } else {
                rc = weft_queue_put(q, ITEM(i), WEFT_FOREVER);
                n = rc == 0 ? 1 : 0;
            }
            atomic_fetch_add(&R.accepted, n);
            if (i == 0) atomic_fetch_add(&R.running, 1);
            if (rc == WEFT_ECLOSED) break;
            if (rc != 0) {
                atomic_store(&R.bad_rc, rc);
                break;
            }
        }
        atomic_fetch_add(&R.finished, 1);
    }
    return NULL;
}

/* Gets (and marks done) until the queue refuses: keeps the queue short. */
static void *race_consumer(void *arg)
{
    (void)arg;
    int seen = 0;
    while (race_next(&seen)) {
        weft_queue *q = atomic_load(&R.q);
        for (;;) {
            void *p;
            int rc = weft_queue_get(q, WEFT_FOREVER, &p);
            if (rc == WEFT_ECLOSED) break;
            if (rc != 0) {
                atomic_store(&R.bad_rc, rc);
                break;
            }
            atomic_fetch_add(&R.got, 1);
            rc = weft_queue_task_done(q, 1);
            if (rc) atomic_store(&R.bad_rc, rc);
        }
        atomic_fetch_add(&R.finished, 1);
    }
    return NULL;
}

/* Every put that returns 0 has its item got or discarded by the shutdown,
 * every other put fails with WEFT_ECLOSED: afterwards the queue is empty,
 * nothing is unfinished and join returns at once. Before the fix a put that
 * checked the state just before the shutdown could land after the discard
 * (every kind; 4 runs of 4 failed within 200 rounds): size 1, gets refused,
 * join blocked for ever. */
TEST(puts_racing_discard_shutdown_leave_nothing_unfinished)
{
    int rounds = CHECK_TSAN ? 60 : CHECK_ASAN ? 100 : 300;
    long caps[] = {0, 64};
    thr t[RACE_PUTTERS + 1];
    atomic_store(&R.round, 0);
    for (long i = 0; i < RACE_PUTTERS; i++) thr_start(&t[i], race_putter, (void *)(intptr_t)i);
    thr_start(&t[RACE_PUTTERS], race_consumer, NULL);
    int round = 0;
    for (int k = 0; k < 3 && !atomic_load(&check__failures); k++)
        for (int c = 0; c < 2 && !atomic_load(&check__failures); c++)
            for (int r = 0; r < rounds && !atomic_load(&check__failures); r++) {
                weft_queue_options o = {
                    .kind = kinds[k], .capacity = caps[c], .free_item = race_free};
                weft_queue *q;
                REQUIRE_OK(weft_queue_create(&o, &q));
                atomic_store(&R.q, q);
                atomic_store(&R.finished, 0);
                atomic_store(&R.running, 0);
                atomic_store(&R.accepted, 0);
                atomic_store(&R.got, 0);
                atomic_store(&R.freed, 0);
                atomic_store(&R.bad_rc, 0);
                atomic_store(&R.round, ++round);
                /* shut down while every putter is putting (or blocked on a
                 * full queue), after a varying while more */
                while (atomic_load(&R.running) < RACE_PUTTERS && !weft_queue_full(q)) sched_yield();
                for (int spin = 0; spin < (r % 7) * 500; spin++) race_relax();
                CHECK_OK(weft_queue_shutdown(q, WEFT_QUEUE_DISCARD));
                while (atomic_load(&R.finished) < RACE_PUTTERS + 1) sched_yield();
                CHECK_RC(atomic_load(&R.bad_rc), 0);
                long size = weft_queue_size(q), unfinished = weft_queue_unfinished(q);
                int jrc = weft_queue_join(q, 0);
                CHECK_MSG(size == 0 && unfinished == 0 && jrc == 0,
                          "kind %d cap %ld round %d: size %ld, unfinished %ld, join %d "
                          "(accepted %ld, got %ld, freed %ld)",
                          kinds[k], caps[c], r, size, unfinished, jrc, atomic_load(&R.accepted),
                          atomic_load(&R.got), atomic_load(&R.freed));
                CHECK_EQ_INT(atomic_load(&R.got) + atomic_load(&R.freed), atomic_load(&R.accepted));
                void *p;
                CHECK_ERR(weft_queue_get(q, 0, &p), WEFT_ECLOSED);
                CHECK_OK(weft_queue_destroy(q));
                CHECK_EQ_INT(atomic_load(&R.got) + atomic_load(&R.freed), atomic_load(&R.accepted));
            }
    atomic_store(&R.round, -1);
    for (int i = 0; i <= RACE_PUTTERS; i++) thr_join(&t[i]);
}

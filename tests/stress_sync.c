/* stress_sync.c : threads hammering weft_lock, weft_rlock, weft_sem,
 * weft_cond, weft_barrier and weft_event, checking counts at the end.
 * Arguments: [threads] [scale]; WEFT_STRESS_SCALE scales the iterations. */
// weft-test-timeout: 240
#include "check.h"

#include <sched.h>

static int nthreads(void)
{
    return check_arg_threads(4);
}

typedef void *(*thread_fn)(void *);

static void run_threads(int n, thread_fn fn, void *arg)
{
    pthread_t *th = calloc((size_t)n, sizeof *th);
    REQUIRE(th);
    for (int i = 0; i < n; i++) REQUIRE(pthread_create(&th[i], NULL, fn, arg) == 0);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    free(th);
}

/* ---- lock: mixed blocking, try and timed acquisitions ---- */

static struct {
    weft_lock lock;
    long counter;
    long iters;
    atomic_long timeouts;
} L;

static void *lock_worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < L.iters; i++) {
        int rc;
        switch (i % 3) {
        case 0:
            rc = weft_lock_acquire(&L.lock, WEFT_FOREVER);
            break;
        case 1:
            while ((rc = weft_lock_acquire(&L.lock, 0)) == WEFT_ETIMEDOUT) sched_yield();
            break;
        default:
            while ((rc = weft_lock_acquire(&L.lock, 0.0001)) == WEFT_ETIMEDOUT)
                atomic_fetch_add(&L.timeouts, 1);
            break;
        }
        if (rc) {
            CHECK_OK(rc);
            return NULL;
        }
        L.counter++;
        CHECK_OK(weft_lock_release(&L.lock));
    }
    return NULL;
}

TEST(stress_lock)
{
    int n = nthreads();
    L.iters = (long)check_scaled(200000, 1000);
    L.counter = 0;
    REQUIRE_OK(weft_lock_init(&L.lock, 0));
    double t0 = check_now();
    run_threads(n, lock_worker, NULL);
    CHECK_EQ_INT(L.counter, n * L.iters);
    CHECK(!weft_lock_locked(&L.lock));
    CHECK_OK(weft_lock_fini(&L.lock));
    printf("    %d threads x %ld: %.2f s, %ld timed-out tries\n", n, L.iters, check_now() - t0,
           atomic_load(&L.timeouts));
}

/* ---- rlock: nested acquisitions ---- */

static struct {
    weft_rlock lock;
    long counter;
    long iters;
} R;

static void *rlock_worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < R.iters; i++) {
        int depth = 1 + (int)(i % 3);
        for (int d = 0; d < depth; d++) CHECK_OK(weft_rlock_acquire(&R.lock, WEFT_FOREVER));
        CHECK_EQ_INT(weft_rlock_count(&R.lock), depth);
        R.counter++;
        for (int d = 0; d < depth; d++) CHECK_OK(weft_rlock_release(&R.lock));
    }
    return NULL;
}

TEST(stress_rlock)
{
    int n = nthreads();
    R.iters = (long)check_scaled(100000, 1000);
    R.counter = 0;
    REQUIRE_OK(weft_rlock_init(&R.lock, 0));
    run_threads(n, rlock_worker, NULL);
    CHECK_EQ_INT(R.counter, n * R.iters);
    CHECK_OK(weft_rlock_fini(&R.lock));
}

/* ---- semaphore: at most K threads inside ---- */

enum {
    SEM_K = 2
};

static struct {
    weft_sem sem;
    atomic_int inside, max_inside;
    atomic_long passes;
    long iters;
} S;

static void *sem_worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < S.iters; i++) {
        int rc = weft_sem_acquire(&S.sem, i % 2 ? WEFT_FOREVER : 30);
        if (rc) {
            CHECK_OK(rc);
            return NULL;
        }
        int in = atomic_fetch_add(&S.inside, 1) + 1;
        int m = atomic_load(&S.max_inside);
        while (in > m && !atomic_compare_exchange_weak(&S.max_inside, &m, in)) {
        }
        atomic_fetch_add(&S.passes, 1);
        atomic_fetch_sub(&S.inside, 1);
        CHECK_OK(weft_sem_release(&S.sem, 1)); /* bounded: never over-released */
    }
    return NULL;
}

TEST(stress_sem)
{
    int n = nthreads();
    S.iters = (long)check_scaled(100000, 1000);
    REQUIRE_OK(weft_sem_init(&S.sem, SEM_K, WEFT_SEM_BOUNDED));
    run_threads(n, sem_worker, NULL);
    CHECK_EQ_INT(atomic_load(&S.passes), n * S.iters);
    CHECK_MSG(atomic_load(&S.max_inside) <= SEM_K, "%d threads inside at once",
              atomic_load(&S.max_inside));
    CHECK_EQ_INT(weft_sem_value(&S.sem), SEM_K);
    CHECK_OK(weft_sem_fini(&S.sem));
}

/* ---- barrier: every cycle, the action sees all parties arrived ---- */

static struct {
    weft_barrier bar;
    atomic_long arrived;
    long cycles, actions;
    int parties;
    atomic_int bad_index;
} B;

static int barrier_action(void *arg)
{
    (void)arg;
    B.actions++;
    long want = B.actions * B.parties;
    return atomic_load(&B.arrived) == want ? 0 : WEFT_ETASK;
}

static void *barrier_worker(void *arg)
{
    (void)arg;
    for (long c = 0; c < B.cycles; c++) {
        atomic_fetch_add(&B.arrived, 1);
        int r = weft_barrier_wait(&B.bar, c % 2 ? WEFT_FOREVER : 60);
        if (r < 0) {
            CHECK_MSG(0, "cycle %ld: %s (%s)", c, weft_strerror(r), weft_last_error());
            return NULL;
        }
        if (r >= B.parties) atomic_fetch_add(&B.bad_index, 1);
    }
    return NULL;
}

TEST(stress_barrier)
{
    B.parties = nthreads();
    B.cycles = (long)check_scaled(5000, 100);
    REQUIRE_OK(weft_barrier_init(&B.bar, B.parties, barrier_action, NULL, 0));
    run_threads(B.parties, barrier_worker, NULL);
    CHECK_EQ_INT(B.actions, B.cycles);
    CHECK_EQ_INT(atomic_load(&B.bad_index), 0);
    CHECK(!weft_barrier_broken(&B.bar));
    CHECK_OK(weft_barrier_fini(&B.bar));
}

/* ---- cond: a bounded queue, producers and consumers ---- */

enum {
    QCAP = 8
};

static struct {
    weft_lock lock;
    weft_cond not_empty, not_full;
    long buf[QCAP];
    int head, len;
    long per_producer;
    int producers_left;
    long sum, count;
} Q;

static void *producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= Q.per_producer; i++) {
        CHECK_OK(weft_lock_acquire(&Q.lock, WEFT_FOREVER));
        while (Q.len == QCAP) CHECK(weft_cond_wait(&Q.not_full, &Q.lock, 60) == 0);
        Q.buf[(Q.head + Q.len) % QCAP] = i;
        Q.len++;
        CHECK_OK(weft_cond_notify(&Q.not_empty, 1));
        CHECK_OK(weft_lock_release(&Q.lock));
    }
    CHECK_OK(weft_lock_acquire(&Q.lock, WEFT_FOREVER));
    Q.producers_left--;
    CHECK_OK(weft_cond_notify_all(&Q.not_empty));
    CHECK_OK(weft_lock_release(&Q.lock));
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        CHECK_OK(weft_lock_acquire(&Q.lock, WEFT_FOREVER));
        while (Q.len == 0 && Q.producers_left > 0)
            CHECK(weft_cond_wait(&Q.not_empty, &Q.lock, 60) == 0);
        if (Q.len == 0) {
            CHECK_OK(weft_lock_release(&Q.lock));
            return NULL;
        }
        Q.sum += Q.buf[Q.head];
        Q.count++;
        Q.head = (Q.head + 1) % QCAP;
        Q.len--;
        CHECK_OK(weft_cond_notify(&Q.not_full, 1));
        CHECK_OK(weft_lock_release(&Q.lock));
    }
}

TEST(stress_cond_queue)
{
    int np = nthreads() / 2 > 0 ? nthreads() / 2 : 1, nc = np;
    Q.per_producer = (long)check_scaled(50000, 1000);
    Q.producers_left = np;
    REQUIRE_OK(weft_lock_init(&Q.lock, 0));
    REQUIRE_OK(weft_cond_init(&Q.not_empty, 0));
    REQUIRE_OK(weft_cond_init(&Q.not_full, 0));
    pthread_t th[64];
    REQUIRE(np + nc <= 64);
    for (int i = 0; i < np; i++) REQUIRE(pthread_create(&th[i], NULL, producer, NULL) == 0);
    for (int i = 0; i < nc; i++) REQUIRE(pthread_create(&th[np + i], NULL, consumer, NULL) == 0);
    for (int i = 0; i < np + nc; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(Q.count, np * Q.per_producer);
    CHECK_EQ_INT(Q.sum, np * (Q.per_producer * (Q.per_producer + 1) / 2));
    CHECK_OK(weft_cond_fini(&Q.not_empty));
    CHECK_OK(weft_cond_fini(&Q.not_full));
    CHECK_OK(weft_lock_fini(&Q.lock));
}

/* ---- event: ping-pong between two threads ---- */

static struct {
    weft_event ping, pong;
    long rounds;
    long seen; /* written by the ponger, published by its set() */
} E;

static void *ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < E.rounds; i++) {
        if (weft_event_wait(&E.ping, 60) != 0) {
            CHECK(0);
            return NULL;
        }
        CHECK_OK(weft_event_clear(&E.ping));
        E.seen++;
        CHECK_OK(weft_event_set(&E.pong));
    }
    return NULL;
}

TEST(stress_event_pingpong)
{
    E.rounds = (long)check_scaled(20000, 500);
    REQUIRE_OK(weft_event_init(&E.ping, 0));
    REQUIRE_OK(weft_event_init(&E.pong, 0));
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, ponger, NULL) == 0);
    for (long i = 0; i < E.rounds; i++) {
        CHECK_OK(weft_event_set(&E.ping));
        if (weft_event_wait(&E.pong, 60) != 0) {
            CHECK(0);
            break;
        }
        CHECK_OK(weft_event_clear(&E.pong));
        CHECK_EQ_INT(E.seen, i + 1);
    }
    pthread_join(th, NULL);
    CHECK_EQ_INT(E.seen, E.rounds);
    CHECK_OK(weft_event_fini(&E.ping));
    CHECK_OK(weft_event_fini(&E.pong));
}

/* tour_threads.c : Python's threading primitives, in C (docs/tour.md,
 * "Threads and their primitives").
 *
 * Four threads (plain pthreads, as threading.Thread) use each primitive of
 * weft/sync.h once:
 *   Event      the threads wait for a start signal set by main
 *   Lock       they add 1 to a shared counter 100,000 times each
 *   RLock      a function that takes the lock calls another that takes it
 *              again (a weft_lock would refuse: WEFT_EDEADLK)
 *   Semaphore  at most 2 threads at once in a "download" section
 *   Barrier    everyone waits for everyone; the action runs once per cycle
 *   Timer      a timer sets an event after 50 ms; a second one is cancelled
 * and main checks every count. Build and run: ./build/examples/tour_threads
 * Exit status 0 when every check holds. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <weft.h>

enum {
    NTHREADS = 4,
    ADDS = 100000
};

static weft_event start;   /* threading.Event() */
static weft_lock lock;     /* threading.Lock() */
static long counter;       /* guarded by lock */
static weft_rlock rlock;   /* threading.RLock() */
static long deposits;      /* guarded by rlock */
static weft_sem downloads; /* threading.Semaphore(2) */
static int inside, most;   /* threads in the section now / at most, under lock */
static weft_barrier meet;  /* threading.Barrier(NTHREADS, action=...) */
static int actions;        /* runs of the barrier's action */

static void deposit(long n) /* takes rlock: may be called with it held */
{
    weft_rlock_acquire(&rlock, WEFT_FOREVER);
    deposits += n;
    weft_rlock_release(&rlock);
}

static void deposit_twice(long n) /* holds rlock while calling deposit() */
{
    weft_rlock_acquire(&rlock, WEFT_FOREVER);
    deposit(n);
    deposit(n);
    weft_rlock_release(&rlock);
}

static int on_meet(void *arg) /* the barrier's action: the last to arrive runs it */
{
    (void)arg;
    actions++;
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    weft_event_wait(&start, WEFT_FOREVER); /* start.wait() */

    for (int i = 0; i < ADDS; i++) { /* with lock: counter += 1 */
        weft_lock_acquire(&lock, WEFT_FOREVER);
        counter++;
        weft_lock_release(&lock);
    }

    deposit_twice(10); /* with rlock: ... with rlock: ... */

    weft_sem_acquire(&downloads, WEFT_FOREVER); /* with sem: download() */
    weft_lock_acquire(&lock, WEFT_FOREVER);
    if (++inside > most) most = inside;
    weft_lock_release(&lock);
    struct timespec ts = {0, 10 * 1000 * 1000}; /* 10 ms of "download" */
    nanosleep(&ts, NULL);
    weft_lock_acquire(&lock, WEFT_FOREVER);
    inside--;
    weft_lock_release(&lock);
    weft_sem_release(&downloads, 1);

    int rc = weft_barrier_wait(&meet, 10.0); /* barrier.wait(timeout=10) */
    return rc >= 0 ? NULL : (void *)1;
}

static void ring(void *arg) /* a Timer's function: runs on the timer's thread */
{
    weft_event_set(arg);
}

int main(void)
{
    weft_event_init(&start, 0);
    weft_lock_init(&lock, 0);
    weft_rlock_init(&rlock, 0);
    weft_sem_init(&downloads, 2, WEFT_SEM_BOUNDED);
    weft_barrier_init(&meet, NTHREADS, on_meet, NULL, 0);

    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, worker, NULL);
    double t0 = weft_now();
    weft_event_set(&start); /* start.set(): every thread goes */
    int failed = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        failed += r != NULL;
    }
    double dt = weft_now() - t0;
    printf("Lock:      counter = %ld (want %d), %d threads in %.1f ms\n", counter, NTHREADS * ADDS,
           NTHREADS, dt * 1e3);
    printf("RLock:     deposits = %ld (want %d)\n", deposits, NTHREADS * 20);
    printf("Semaphore: at most %d threads at once in the section (bound 2)\n", most);
    printf("Barrier:   the action ran %d time (want 1), %d waits failed\n", actions, failed);

    weft_event rang;
    weft_timer *timer, *never;
    weft_event_init(&rang, 0);
    weft_timer_create(0.05, ring, &rang, &timer); /* Timer(0.05, ring).start() */
    weft_timer_create(60, ring, &rang, &never);
    int cancelled = weft_timer_cancel(never); /* never.cancel() */
    int waited = weft_event_wait(&rang, 5.0); /* rang.wait(5) */
    printf("Timer:     the event was %s; a 60 s timer was %s\n", waited == 0 ? "set" : "not set",
           cancelled == 0 ? "cancelled before it fired" : weft_strerror(cancelled));
    weft_timer_destroy(timer);
    weft_timer_destroy(never);

    bool ok = counter == NTHREADS * ADDS && deposits == NTHREADS * 20 && most >= 1 && most <= 2 &&
              actions == 1 && failed == 0 && waited == 0 && cancelled == 0;
    weft_barrier_fini(&meet);
    weft_sem_fini(&downloads);
    weft_rlock_fini(&rlock);
    weft_lock_fini(&lock);
    weft_event_fini(&start);
    weft_event_fini(&rang);
    printf("%s\n", ok ? "ok: every primitive behaved" : "FAILED");
    return ok ? 0 : 1;
}

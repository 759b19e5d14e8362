/* sync_bench : weft's synchronization primitives against raw pthreads and
 * Python's threading module.
 *
 *   lock_uncontended  acquire + release of a free lock on one thread (ns/op)
 *                     weft_lock_acquire/_release; pthread_mutex_lock/_unlock
 *                     (default mutex); threading.Lock. Measured while the
 *                     process is single-threaded: glibc's mutex and weft's
 *                     lock then both skip the atomic instructions.
 *   lock_uncontended_mt  the same with a second thread alive (parked), so
 *                     both take their atomic paths (one CAS, one exchange)
 *   lock_handoff      2 threads, each taking the lock N times to add 1 to a
 *                     shared counter: the lock passes between threads under
 *                     contention (ns per acquisition = wall / 2N)
 *   event_pingpong    two threads bounce a token with two events: set ping,
 *                     wait pong, clear (us per round trip); pthread: an
 *                     event made of a mutex, a condvar and a flag;
 *                     threading.Event
 * Counts are checked after every run. Target (issue 3): weft's uncontended
 * lock within 1.2x of a raw pthread mutex. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "bench.h"
#include "weft.h"

#define REPS 7
#define N_UNCONT 20000000L
#define N_HANDOFF 2000000L
#define N_PING 50000L
#define N_PY_UNCONT 1000000L
#define N_PY_HANDOFF 200000L
#define N_PY_PING 10000L

typedef double (*run_fn)(void);

/* Runs `run` once untimed and REPS times timed, under a watchdog, and
 * reports the samples; a negative sample (a failed check) stops the block. */
static void measure(const char *bench, const char *system, const char *unit, run_fn run)
{
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(120, what);
    double s[REPS];
    int n = 0;
    bool ok = run() >= 0;
    for (int i = 0; ok && i < REPS; i++) {
        double v = run();
        if (v < 0)
            ok = false;
        else
            s[n++] = v;
    }
    alarm(0);
    if (ok)
        bench_report(bench, system, s, n, unit);
    else
        bench_fail("%s: not reported (a run failed)", what);
    bench_settle(100);
}

/* ---- lock_uncontended ---- */

static weft_lock wlock;
static pthread_mutex_t pmutex = PTHREAD_MUTEX_INITIALIZER;
static volatile long counter;

static double uncont_weft(void)
{
    double t0 = bench_now();
    for (long i = 0; i < N_UNCONT; i++) {
        weft_lock_acquire(&wlock, WEFT_FOREVER);
        counter++;
        weft_lock_release(&wlock);
    }
    return (bench_now() - t0) / (double)N_UNCONT * 1e9;
}

static double uncont_pthread(void)
{
    double t0 = bench_now();
    for (long i = 0; i < N_UNCONT; i++) {
        pthread_mutex_lock(&pmutex);
        counter++;
        pthread_mutex_unlock(&pmutex);
    }
    return (bench_now() - t0) / (double)N_UNCONT * 1e9;
}

/* ---- lock_uncontended_mt: a parked thread makes the process multi-threaded ---- */

static weft_event park;

static void *parked_thread(void *arg)
{
    (void)arg;
    weft_event_wait(&park, WEFT_FOREVER);
    return NULL;
}

/* ---- lock_handoff ---- */

static long shared_count; /* under the lock being measured */

static void *handoff_weft_thread(void *arg)
{
    (void)arg;
    for (long i = 0; i < N_HANDOFF; i++) {
        weft_lock_acquire(&wlock, WEFT_FOREVER);
        shared_count++;
        weft_lock_release(&wlock);
    }
    return NULL;
}

static void *handoff_pthread_thread(void *arg)
{
    (void)arg;
    for (long i = 0; i < N_HANDOFF; i++) {
        pthread_mutex_lock(&pmutex);
        shared_count++;
        pthread_mutex_unlock(&pmutex);
    }
    return NULL;
}

static double handoff(void *(*fn)(void *), const char *system)
{
    shared_count = 0;
    pthread_t th[2];
    double t0 = bench_now();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, fn, NULL)) {
            bench_fail("lock_handoff %s: pthread_create", system);
            return -1;
        }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    double dt = bench_now() - t0;
    if (shared_count != 2 * N_HANDOFF) {
        bench_fail("lock_handoff %s: count %ld != %ld", system, shared_count, 2 * N_HANDOFF);
        return -1;
    }
    return dt / (double)(2 * N_HANDOFF) * 1e9;
}

static double handoff_weft(void)
{
    return handoff(handoff_weft_thread, "weft");
}

static double handoff_pthread(void)
{
    return handoff(handoff_pthread_thread, "pthread");
}

/* ---- event_pingpong ---- */

static weft_event wping, wpong;
static long seen; /* written by the ponger before it sets pong */

/* The pthread event: what a C programmer writes without weft. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool flag;
} pevent;

static pevent pping = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
static pevent ppong = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void pevent_set(pevent *e)
{
    pthread_mutex_lock(&e->mu);
    e->flag = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void pevent_wait_clear(pevent *e)
{
    pthread_mutex_lock(&e->mu);
    while (!e->flag) pthread_cond_wait(&e->cv, &e->mu);
    e->flag = false;
    pthread_mutex_unlock(&e->mu);
}

static void *ponger_weft(void *arg)
{
    (void)arg;
    for (long i = 0; i < N_PING; i++) {
        if (weft_event_wait(&wping, 60)) return NULL;
        weft_event_clear(&wping);
        seen++;
        weft_event_set(&wpong);
    }
    return NULL;
}

static void *ponger_pthread(void *arg)
{
    (void)arg;
    for (long i = 0; i < N_PING; i++) {
        pevent_wait_clear(&pping);
        seen++;
        pevent_set(&ppong);
    }
    return NULL;
}

static double ping_weft(void)
{
    seen = 0;
    pthread_t th;
    if (pthread_create(&th, NULL, ponger_weft, NULL)) return -1;
    double t0 = bench_now();
    for (long i = 0; i < N_PING; i++) {
        weft_event_set(&wping);
        if (weft_event_wait(&wpong, 60)) break;
        weft_event_clear(&wpong);
    }
    double dt = bench_now() - t0;
    pthread_join(th, NULL);
    if (seen != N_PING) {
        bench_fail("event_pingpong weft: %ld round trips of %ld", seen, N_PING);
        return -1;
    }
    return dt / (double)N_PING * 1e6;
}

static double ping_pthread(void)
{
    seen = 0;
    pthread_t th;
    if (pthread_create(&th, NULL, ponger_pthread, NULL)) return -1;
    double t0 = bench_now();
    for (long i = 0; i < N_PING; i++) {
        pevent_set(&pping);
        pevent_wait_clear(&ppong);
    }
    double dt = bench_now() - t0;
    pthread_join(th, NULL);
    if (seen != N_PING) {
        bench_fail("event_pingpong pthread: %ld round trips of %ld", seen, N_PING);
        return -1;
    }
    return dt / (double)N_PING * 1e6;
}

static void python(const char *bench, const char *unit, long n)
{
    char args[64];
    snprintf(args, sizeof args, "%s %ld 3", bench, n);
    bench_python_report(bench, "python", unit, "sync_anchor.py", args, 300);
}

int main(int argc, char **argv)
{
    (void)argc;
    bench_begin(argv[0], __FILE__);
    if (weft_lock_init(&wlock, 0) || weft_event_init(&wping, 0) || weft_event_init(&wpong, 0)) {
        bench_fail("init: %s", weft_last_error());
        return bench_finish();
    }

    measure("lock_uncontended", "weft", "ns/op", uncont_weft);
    measure("lock_uncontended", "pthread", "ns/op", uncont_pthread);
    python("lock_uncontended", "ns/op", N_PY_UNCONT);

    pthread_t parked;
    if (weft_event_init(&park, 0) || pthread_create(&parked, NULL, parked_thread, NULL)) {
        bench_fail("cannot start the parked thread");
        return bench_finish();
    }
    measure("lock_uncontended_mt", "weft", "ns/op", uncont_weft);
    measure("lock_uncontended_mt", "pthread", "ns/op", uncont_pthread);
    weft_event_set(&park);
    pthread_join(parked, NULL);
    if (counter != (long)(REPS + 1) * 4 * N_UNCONT) bench_fail("lock_uncontended: wrong count");

    measure("lock_handoff", "weft", "ns/op", handoff_weft);
    measure("lock_handoff", "pthread", "ns/op", handoff_pthread);
    python("lock_handoff", "ns/op", N_PY_HANDOFF);

    measure("event_pingpong", "weft", "us/roundtrip", ping_weft);
    measure("event_pingpong", "pthread", "us/roundtrip", ping_pthread);
    python("event_pingpong", "us/roundtrip", N_PY_PING);

    const char *benches[] = {"lock_uncontended", "lock_uncontended_mt", "lock_handoff",
                             "event_pingpong"};
    for (int i = 0; i < 4; i++) {
        bench_ratio(benches[i], "pthread", "weft");
        bench_ratio(benches[i], "python", "weft");
    }
    const bench_result *w = bench_get("lock_uncontended", "weft");
    const bench_result *p = bench_get("lock_uncontended", "pthread");
    bench_target("lock_uncontended: weft_lock within 1.2x of a raw pthread mutex", w && p,
                 w && p && w->median <= 1.2 * p->median);
    w = bench_get("lock_uncontended_mt", "weft");
    p = bench_get("lock_uncontended_mt", "pthread");
    bench_target("lock_uncontended_mt: weft_lock within 1.2x of a raw pthread mutex", w && p,
                 w && p && w->median <= 1.2 * p->median);
    return bench_finish();
}

/* stress_sched.c : many threads enter and cancel events on one scheduler
 * while it runs them; every event runs exactly once unless its cancel
 * succeeded, and never before its time.
 *     stress_sched [THREADS] [SCALE]
 */
#include "check.h"

typedef struct sev {
    atomic_int runs;
    double due;
    double ran;
} sev;

static void sev_run(void *arg)
{
    sev *e = arg;
    e->ran = weft_now();
    atomic_fetch_add(&e->runs, 1);
}

typedef struct worker {
    weft_sched *s;
    sev *ev;
    bool *cancelled;
    int n;
    uint64_t seed;
    int errors;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    weft_rng r;
    weft_rng_seed(&r, w->seed);
    for (int i = 0; i < w->n; i++) {
        double d = (double)weft_rng_range(&r, 0, 3000) * 1e-6;
        w->ev[i].due = weft_now() + d;
        weft_sched_id id;
        if (weft_sched_enter(w->s, d, (int)weft_rng_range(&r, -2, 2), sev_run, &w->ev[i], &id)) {
            w->errors++;
            continue;
        }
        if (weft_rng_range(&r, 0, 3) == 0) {
            /* 0: cancelled before it ran; ENOENT: it ran first */
            int rc = weft_sched_cancel(w->s, id);
            if (rc == 0)
                w->cancelled[i] = true;
            else if (rc != WEFT_ENOENT)
                w->errors++;
        }
    }
    return NULL;
}

static void run_stress(weft_sched *s, int threads, int per, pthread_t *runners, int nrunners)
{
    sev *ev = calloc((size_t)threads * (size_t)per, sizeof *ev);
    bool *cancelled = calloc((size_t)threads * (size_t)per, sizeof *cancelled);
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    REQUIRE(ev && cancelled && w && th);
    for (int t = 0; t < threads; t++) {
        w[t] = (worker){.s = s,
                        .ev = ev + (size_t)t * per,
                        .cancelled = cancelled + (size_t)t * per,
                        .n = per,
                        .seed = (uint64_t)t + 7};
        REQUIRE(pthread_create(&th[t], NULL, worker_main, &w[t]) == 0);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(w[t].errors, 0);
    }
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_DRAIN));
    for (int i = 0; i < nrunners; i++) pthread_join(runners[i], NULL);
    int ran = 0, ncancel = 0;
    for (int i = 0; i < threads * per; i++) {
        int runs = atomic_load(&ev[i].runs);
        if (cancelled[i]) {
            ncancel++;
            CHECK_MSG(runs == 0, "event %d cancelled but ran %d times", i, runs);
        } else {
            ran++;
            CHECK_MSG(runs == 1, "event %d ran %d times", i, runs);
            if (runs == 1) CHECK_MSG(ev[i].ran >= ev[i].due, "event %d ran early", i);
        }
    }
    printf("    %d threads x %d events: %d ran, %d cancelled\n", threads, per, ran, ncancel);
    CHECK_OK(weft_sched_destroy(s));
    free(ev);
    free(cancelled);
    free(w);
    free(th);
}

TEST(background_enter_cancel_from_many_threads)
{
    int threads = check_arg_threads(4);
    int per = (int)check_scaled(2000, 100);
    weft_sched_options o = {.background = true};
    weft_sched *s = NULL;
    REQUIRE_OK(weft_sched_create(&o, &s));
    run_stress(s, threads, per, NULL, 0);
}

static atomic_int probe_runs;

static void probe(void *arg)
{
    (void)arg;
    atomic_fetch_add(&probe_runs, 1);
}

static void *fg_runner_probe(void *p)
{
    weft_sched *s = p;
    for (;;) {
        weft_sched_run(s, true, NULL);
        /* a probe: ECLOSED says the scheduler is stopped */
        int rc = weft_sched_enter(s, 0, 0, probe, NULL, NULL);
        if (rc == WEFT_ECLOSED) break;
        check_sleep(0.0002);
    }
    return NULL;
}

TEST(two_foreground_runners_run_each_event_once)
{
    int threads = check_arg_threads(4);
    int per = (int)check_scaled(1000, 100);
    weft_sched *s = NULL;
    REQUIRE_OK(weft_sched_create(NULL, &s));
    pthread_t runners[2];
    for (int i = 0; i < 2; i++) REQUIRE(pthread_create(&runners[i], NULL, fg_runner_probe, s) == 0);
    run_stress(s, threads, per, runners, 2);
}

/* sched_bench : the cost of one event in weft_sched, entered then run.
 *
 * Workload sched_enter_run: enter N events at delay 0 on a clock that always
 * reads 0 (a custom timefunc; a delayfunc that does nothing, called once
 * after each event as Python's run does), with priorities (i * 7919) % 1000
 * so the heap really orders them, then run them all (blocking run). Unit:
 * ns/event = (enter all + run all) / N. Systems:
 *   weft        weft_sched_enter + weft_sched_run (locks, ids, slot table)
 *   python      sched.scheduler under /usr/bin/python3 (bench/sched_anchor.py)
 *   pthread     the raw C equivalent: a binary heap of (priority, seq, fn,
 *               arg) guarded by a pthread mutex taken per enter and per pop
 *               (as sched takes its lock), no ids, no cancel
 *   plain-heap  the same heap with no lock: the floor any scheduler pays
 * Every run checks that all N events ran, in priority order.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench.h"
#include "weft.h"

#define N 200000
#define REPS 5
#define REPS_PY 3

static const char *B = "sched_enter_run";

/* ---- the action and its check ---- */

static long runs;
static int last_prio;
static int out_of_order;

static void action(void *arg)
{
    int p = (int)(intptr_t)arg;
    if (p < last_prio) out_of_order = 1;
    last_prio = p;
    runs++;
    BENCH_BARRIER();
}

static void check_reset(void)
{
    runs = 0;
    last_prio = -1;
    out_of_order = 0;
}

static int check_done(const char *system)
{
    if (runs != N || out_of_order) {
        bench_fail("%s %s: %ld of %d events ran, %s", B, system, runs, N,
                   out_of_order ? "out of priority order" : "in order");
        return -1;
    }
    return 0;
}

static inline int prio_of(long i)
{
    return (int)((i * 7919) % 1000);
}

/* ---- weft ---- */

static double zero_time(void *arg)
{
    (void)arg;
    return 0;
}

static void no_delay(void *arg, double s)
{
    (void)arg;
    (void)s;
    BENCH_BARRIER();
}

static double run_weft(void)
{
    weft_sched_options o = {.timefunc = zero_time, .delayfunc = no_delay};
    weft_sched *s = NULL;
    int rc = weft_sched_create(&o, &s);
    if (rc) {
        bench_fail("%s weft: weft_sched_create: %s", B, weft_strerror(rc));
        return -1;
    }
    check_reset();
    double t0 = bench_now();
    for (long i = 0; i < N; i++) {
        int p = prio_of(i);
        rc = weft_sched_enter(s, 0, p, action, (void *)(intptr_t)p, NULL);
        if (rc) break;
    }
    if (rc == 0) rc = weft_sched_run(s, true, NULL);
    double t1 = bench_now();
    weft_sched_destroy(s);
    if (rc) {
        bench_fail("%s weft: %s (%s)", B, weft_strerror(rc), weft_last_error());
        return -1;
    }
    if (check_done("weft")) return -1;
    return (t1 - t0) / N * 1e9;
}

/* ---- plain heap ---- */

typedef struct pev {
    int prio;
    uint64_t seq;
    void (*fn)(void *);
    void *arg;
} pev;

static inline int pless(const pev *a, const pev *b)
{
    return a->prio != b->prio ? a->prio < b->prio : a->seq < b->seq;
}

static pthread_mutex_t heap_mu = PTHREAD_MUTEX_INITIALIZER;

/* One run of the heap; `locked` takes heap_mu around every enter and pop. */
static double run_heap(bool locked, const char *system)
{
    pev *h = malloc(sizeof *h * 16);
    size_t n = 0, cap = 16;
    uint64_t seq = 0;
    if (!h) return -1;
    check_reset();
    double t0 = bench_now();
    for (long i = 0; i < N; i++) {
        if (n == cap) {
            pev *t = realloc(h, sizeof *h * cap * 2);
            if (!t) {
                free(h);
                return -1;
            }
            h = t;
            cap *= 2;
        }
        int p = prio_of(i);
        if (locked) pthread_mutex_lock(&heap_mu);
        pev e = {p, seq++, action, (void *)(intptr_t)p};
        size_t k = n++;
        while (k > 0 && pless(&e, &h[(k - 1) / 2])) {
            h[k] = h[(k - 1) / 2];
            k = (k - 1) / 2;
        }
        h[k] = e;
        if (locked) pthread_mutex_unlock(&heap_mu);
    }
    for (;;) {
        if (locked) pthread_mutex_lock(&heap_mu);
        if (n == 0) {
            if (locked) pthread_mutex_unlock(&heap_mu);
            break;
        }
        pev top = h[0];
        pev e = h[--n];
        size_t k = 0;
        for (;;) {
            size_t c = 2 * k + 1;
            if (c >= n) break;
            if (c + 1 < n && pless(&h[c + 1], &h[c])) c++;
            if (!pless(&h[c], &e)) break;
            h[k] = h[c];
            k = c;
        }
        if (n > 0) h[k] = e;
        if (locked) pthread_mutex_unlock(&heap_mu);
        top.fn(top.arg);
        no_delay(NULL, 0);
    }
    double t1 = bench_now();
    free(h);
    if (check_done(system)) return -1;
    return (t1 - t0) / N * 1e9;
}

static double run_plain(void)
{
    return run_heap(false, "plain-heap");
}

static double run_pthread(void)
{
    return run_heap(true, "pthread");
}

static void measure(const char *system, double (*run)(void))
{
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=%s", B, system);
    bench_watchdog(120, what);
    double s[REPS];
    int k = 0;
    if (run() < 0) return; /* warm-up */
    for (int i = 0; i < REPS; i++) {
        double v = run();
        if (v < 0) return;
        s[k++] = v;
    }
    alarm(0);
    bench_report(B, system, s, k, "ns/event");
    bench_settle(100);
}

int main(int argc, char **argv)
{
    (void)argc;
    bench_begin(argv[0], __FILE__);
    printf("# weft %s; %d events per run, all due at once on a clock that reads 0\n",
           weft_version(), N);
    measure("weft", run_weft);
    measure("pthread", run_pthread);
    measure("plain-heap", run_plain);
    char args[64];
    snprintf(args, sizeof args, "%d %d", N, REPS_PY);
    bench_python_report(B, "python", "ns/event", "sched_anchor.py", args, 300);
    bench_ratio(B, "python", "weft");
    bench_ratio(B, "pthread", "weft");
    bench_ratio(B, "plain-heap", "weft");
    const bench_result *w = bench_get(B, "weft"), *p = bench_get(B, "python");
    bench_target("sched_enter_run: weft >= 10x cheaper per event than Python's sched", w && p,
                 w && p && p->median >= 10 * w->median);
    return bench_finish();
}

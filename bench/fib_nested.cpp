/* fib_nested : fork-join through nested submits (a task waits on its child).
 *
 * fib(34), spawning for every n >= 12 and recursing serially below, which is
 * 75024 spawned tasks of about 0.5 us of leaf work each:
 *   weft-threads  a task submits fib(n-1) with weft_submit from inside the
 *                 task, computes fib(n-2) itself, then waits on the child
 *                 with weft_future_result (a waiting task runs other tasks)
 *   weft-serial   the same on the serial backend
 *   tbb           tbb::task_group per node: run fib(n-1), compute fib(n-2), wait
 *   openmp        omp task for fib(n-1), fib(n-2) inline, omp taskwait
 * and plain recursive C on one thread as the baseline, timed again just
 * before each timed run of each system. Every result is
 * checked against the plain recursion. Pools are started and warmed outside
 * the timed blocks.
 * Units: fib_nested in us/task = wall time / spawned tasks;
 * fib_nested_speedup in x = plain C time / the system's time.
 */
#include <stdint.h>
#include <string.h>

#include <omp.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>

#include "bench.h"
#include "bench_weft.h"

static const int FIB_N = 34;
static const int CUTOFF = 12; /* spawn for n >= CUTOFF */
static const int REPS = 5;

/* noipa: gcc must not infer that fib_seq is pure and fold repeated calls */
__attribute__((noipa)) static uint64_t fib_seq(int n)
{
    return n < 2 ? (uint64_t)n : fib_seq(n - 1) + fib_seq(n - 2);
}

/* the number of spawns of the parallel versions for fib(n) */
static uint64_t spawns(int n)
{
    return n < CUTOFF ? 0 : 1 + spawns(n - 1) + spawns(n - 2);
}

/* ---- weft ---- */

static int fib_task(weft_ctx *ctx, const void *in, size_t len);

static int weft_fib(weft_executor *ex, int n, uint64_t *r)
{
    if (n < CUTOFF) {
        *r = fib_seq(n);
        return 0;
    }
    int n1 = n - 1;
    weft_future *f;
    int rc = weft_submit(ex, fib_task, &n1, sizeof n1, &f);
    if (rc) return rc;
    uint64_t b = 0, a = 0;
    int rc2 = weft_fib(ex, n - 2, &b);
    const void *out;
    size_t olen = 0;
    rc = weft_future_result(f, WEFT_FOREVER, &out, &olen);
    if (rc == 0 && olen == sizeof a) memcpy(&a, out, sizeof a);
    weft_future_release(f);
    if (rc) return rc;
    if (rc2) return rc2;
    if (olen != sizeof a) return WEFT_ETASK;
    *r = a + b;
    return 0;
}

static int fib_task(weft_ctx *ctx, const void *in, size_t len)
{
    int n;
    if (len != sizeof n) return WEFT_EINVAL;
    memcpy(&n, in, sizeof n);
    uint64_t r;
    int rc = weft_fib(weft_ctx_executor(ctx), n, &r);
    if (rc) return rc;
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(fib_task);

/* The root is a task too, so the calling thread only waits and the workers
 * do all the work, as in TBB's and OpenMP's pools. */
static int weft_fib_root(weft_executor *ex, int n, uint64_t *r)
{
    weft_future *f;
    int rc = weft_submit(ex, fib_task, &n, sizeof n, &f);
    if (rc) return rc;
    const void *out;
    size_t olen = 0;
    rc = weft_future_result(f, WEFT_FOREVER, &out, &olen);
    if (rc == 0 && olen == sizeof *r) memcpy(r, out, sizeof *r);
    weft_future_release(f);
    return rc ? rc : olen == sizeof *r ? 0 : WEFT_ETASK;
}

/* ---- oneTBB ---- */

static uint64_t tbb_fib(int n)
{
    if (n < CUTOFF) return fib_seq(n);
    uint64_t a = 0, b;
    tbb::task_group g;
    g.run([&a, n] { a = tbb_fib(n - 1); });
    b = tbb_fib(n - 2);
    g.wait();
    return a + b;
}

/* ---- OpenMP ---- */

static uint64_t omp_fib(int n)
{
    if (n < CUTOFF) return fib_seq(n);
    uint64_t a = 0, b;
#pragma omp task shared(a) firstprivate(n)
    a = omp_fib(n - 1);
    b = omp_fib(n - 2);
#pragma omp taskwait
    return a + b;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    const char *B = "fib_nested";
    const uint64_t ntasks = spawns(FIB_N);
    printf("# fib(%d), spawning for n >= %d: %llu spawned tasks\n", FIB_N, CUTOFF,
           (unsigned long long)ntasks);

    /* plain C baseline */
    volatile int vn = FIB_N;
    uint64_t expect = fib_seq(vn);
    double seq[BENCH_MAX_SAMPLES];
    for (int i = 0; i < REPS; i++) {
        double t0 = bench_now();
        uint64_t r = fib_seq(vn);
        double t1 = bench_now();
        if (r != expect) bench_fail("fib_nested plain C: not deterministic");
        seq[i] = t1 - t0;
    }
    qsort(seq, REPS, sizeof seq[0], bench_cmp_double);
    const double t_seq = seq[REPS / 2];
    printf("# plain C fib(%d) = %llu: median %.3f ms on one thread (baseline of "
           "fib_nested_speedup)\n",
           FIB_N, (unsigned long long)expect, t_seq * 1e3);

    double speed[4][BENCH_MAX_SAMPLES];
    int nspeed[4] = {0, 0, 0, 0};
    const char *names[4] = {"weft-threads", "weft-serial", "tbb", "openmp"};

    /* Each run first times the plain recursion again (this machine is shared
     * and its load drifts, so the speed-up sample is the ratio of two
     * neighbouring runs), then the system; it returns us/task and keeps the
     * speed-up. */
    auto plain_now = [&]() -> double {
        double t0 = bench_now();
        uint64_t r = fib_seq(vn);
        double t1 = bench_now();
        if (r != expect) bench_fail("fib_nested plain C: not deterministic");
        return t1 - t0;
    };
    auto record = [&](int k, double tp, double t0, double t1, uint64_t r, int rc) -> double {
        if (rc || r != expect) {
            bench_fail("fib_nested %s: %s, fib = %llu, expected %llu", names[k],
                       rc ? weft_strerror(rc) : "wrong result", (unsigned long long)r,
                       (unsigned long long)expect);
            return -1;
        }
        if (nspeed[k] < BENCH_MAX_SAMPLES) speed[k][nspeed[k]++] = tp / (t1 - t0);
        return (t1 - t0) / (double)ntasks * 1e6;
    };

    const weft_backend backends[2] = {WEFT_BACKEND_THREADS, WEFT_BACKEND_SERIAL};
    for (int k = 0; k < 2; k++) {
        weft_executor *ex = bench_weft_create(backends[k], BENCH_WORKERS);
        if (!ex) continue;
        bench_measure(B, names[k], "us/task", 1, REPS, 120, [&]() -> double {
            uint64_t r = 0;
            double tp = plain_now();
            double t0 = bench_now();
            int rc = weft_fib_root(ex, FIB_N, &r);
            double t1 = bench_now();
            return record(k, tp, t0, t1, r, rc);
        });
        bench_weft_destroy(ex);
    }

    bench_measure(B, "tbb", "us/task", 1, REPS, 120, [&]() -> double {
        double tp = plain_now();
        double t0 = bench_now();
        uint64_t r = 0;
        tbb::task_group g;
        g.run([&r] { r = tbb_fib(FIB_N); });
        g.wait();
        double t1 = bench_now();
        return record(2, tp, t0, t1, r, 0);
    });

    bench_measure(B, "openmp", "us/task", 1, REPS, 120, [&]() -> double {
        double tp = plain_now();
        double t0 = bench_now();
        uint64_t r = 0;
#pragma omp parallel num_threads(BENCH_WORKERS)
#pragma omp single
        r = omp_fib(FIB_N);
        double t1 = bench_now();
        return record(3, tp, t0, t1, r, 0);
    });

    /* speed-up over plain C, from the same runs (the warm-up run excluded) */
    for (int k = 0; k < 4; k++) {
        int n = nspeed[k];
        if (n <= 1) continue;
        bench_report("fib_nested_speedup", names[k], speed[k] + 1, n - 1, "x");
    }

    const char *W = "weft-threads";
    bench_ratio(B, "tbb", W);
    bench_ratio(B, "openmp", W);
    bench_ratio(B, "weft-serial", W);
    return bench_finish();
}

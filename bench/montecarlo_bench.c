/* montecarlo_bench : the speed-up of examples/montecarlo_pi on 2 workers
 * over 1, in one run (issue 16: at least 1.9 on 2 workers).
 *
 *   montecarlo_pi   300,000,000 points in 1000 batches (the example's kernel,
 *                   examples/montecarlo_pi.h: weft_parallel_reduce with a
 *                   fixed combine order)
 *
 * Systems: weft-threads and weft-processes, each with 1 and 2 workers
 * (unit s, wall time of one estimate), and their speed-up (unit x, 1 worker
 * over 2 workers). The 1- and 2-worker runs alternate, and each speed-up
 * sample is the ratio of a pair run back to back, so a load that comes and
 * goes on the shared machine hits both sides of a pair alike. Every run's
 * bits are checked against the first one (the same estimate everywhere).
 * Anchor, through bench/montecarlo_anchor.py: numpy's vectorised batches
 * in a concurrent.futures ProcessPoolExecutor with 1 and 2 processes
 * (numpy-procpool-1w / -2w, and its speed-up), pools started outside the
 * timed block.
 *
 * Usage: montecarlo_bench [--quick] [--no-anchors]
 *   --quick: 16,000,000 points, 3 pairs (a smoke run; the target is not judged) */
#include "bench.h"
#include "weft.h"

#include "../examples/montecarlo_pi.h"

#define TASKS 1000
#define SEED 42

/* the first estimate of each size: every later one must have its bits */
static uint64_t ref_size[2], ref_bits[2];

/* One estimate on `ex`: seconds, or -1 after bench_fail. */
static double one(weft_executor *ex, uint64_t per_task, const char *sys)
{
    mc_result r;
    double t0 = bench_now();
    int rc = mc_estimate(ex, SEED, TASKS, per_task, &r);
    double dt = bench_now() - t0;
    if (rc) {
        bench_fail("montecarlo_pi %s: %s (%s)", sys, weft_strerror(rc), weft_last_error());
        return -1;
    }
    int k = ref_size[0] == per_task || ref_size[0] == 0 ? 0 : 1;
    if (ref_size[k] != per_task) {
        ref_size[k] = per_task;
        ref_bits[k] = mc_bits(r.pi);
    }
    if (mc_bits(r.pi) != ref_bits[k] || fabs(r.pi - 3.14159265358979) > 5 * r.se) {
        bench_fail("montecarlo_pi %s: estimate %.12f (bits %016llx, want %016llx)", sys, r.pi,
                   (unsigned long long)mc_bits(r.pi), (unsigned long long)ref_bits[k]);
        return -1;
    }
    return dt;
}

static void measure(weft_backend b, const char *name, uint64_t per_task, int pairs)
{
    weft_executor *ex[2] = {NULL, NULL};
    char sys[3][32];
    snprintf(sys[0], sizeof sys[0], "weft-%s-1w", name);
    snprintf(sys[1], sizeof sys[1], "weft-%s-2w", name);
    snprintf(sys[2], sizeof sys[2], "weft-%s", name);
    for (int k = 0; k < 2; k++) {
        weft_options o = {.backend = b, .workers = k + 1};
        int rc = weft_executor_create(&o, &ex[k]);
        if (rc) {
            if (rc == WEFT_ENOTSUP)
                bench_skip("montecarlo_pi", sys[k], weft_last_error());
            else
                bench_fail("%s: weft_executor_create: %s", sys[k], weft_last_error());
            weft_executor_destroy(ex[0]);
            return;
        }
    }
    double t[2][BENCH_MAX_SAMPLES], speedup[BENCH_MAX_SAMPLES];
    int n = 0;
    char what[96];
    snprintf(what, sizeof what, "bench=montecarlo_pi system=%s", sys[2]);
    bench_watchdog(600, what);
    bool ok = one(ex[0], per_task / 8, sys[0]) >= 0 && one(ex[1], per_task / 8, sys[1]) >= 0;
    for (int i = 0; ok && i < pairs && i < BENCH_MAX_SAMPLES; i++) {
        double a = one(ex[0], per_task, sys[0]);
        double c = a >= 0 ? one(ex[1], per_task, sys[1]) : -1;
        if (a < 0 || c < 0) {
            ok = false;
            break;
        }
        t[0][n] = a;
        t[1][n] = c;
        speedup[n] = a / c;
        n++;
    }
    alarm(0);
    if (ok) {
        bench_report("montecarlo_pi", sys[0], t[0], n, "s");
        bench_report("montecarlo_pi", sys[1], t[1], n, "s");
        bench_report("montecarlo_pi", sys[2], speedup, n, "x");
    }
    weft_executor_destroy(ex[0]);
    weft_executor_destroy(ex[1]);
    bench_settle(100);
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1; /* first: the processes level needs it */
    bool quick = false, anchors = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--no-anchors")) {
            anchors = false;
        } else {
            fprintf(stderr, "usage: montecarlo_bench [--quick] [--no-anchors]\n");
            return 2;
        }
    }
    bench_begin(argv[0], __FILE__);
    uint64_t points = quick ? 16000000 : 300000000;
    int pairs = quick ? 3 : 7;
    uint64_t per_task = points / TASKS;
    printf("# montecarlo_pi: %llu points in %d batches, %d pairs of runs (1 worker, 2 workers)\n",
           (unsigned long long)points, TASKS, pairs);
    fflush(stdout);

    measure(WEFT_BACKEND_THREADS, "threads", per_task, pairs);
    measure(WEFT_BACKEND_PROCESSES, "processes", per_task, pairs);

    if (anchors) {
        char args[64];
        snprintf(args, sizeof args, "%llu %d %d", (unsigned long long)points, TASKS, pairs);
        double s[BENCH_MAX_SAMPLES];
        bench_watchdog(900, "bench=montecarlo_pi system=numpy-procpool");
        int n = bench_python("montecarlo_anchor.py", args, s, BENCH_MAX_SAMPLES);
        alarm(0);
        /* the anchor prints pairs: "sample T1" then "sample T2" */
        if (n >= 2) {
            double t1[BENCH_MAX_SAMPLES], t2[BENCH_MAX_SAMPLES], sp[BENCH_MAX_SAMPLES];
            int m = n / 2;
            for (int i = 0; i < m; i++) {
                t1[i] = s[2 * i];
                t2[i] = s[2 * i + 1];
                sp[i] = t1[i] / t2[i];
            }
            bench_report("montecarlo_pi", "numpy-procpool-1w", t1, m, "s");
            bench_report("montecarlo_pi", "numpy-procpool-2w", t2, m, "s");
            bench_report("montecarlo_pi", "numpy-procpool", sp, m, "x");
        } else if (n == -1) {
            bench_skip("montecarlo_pi", "numpy-procpool", "/usr/bin/python3 not found");
        } else {
            bench_fail("montecarlo_pi: the numpy anchor failed or printed no samples");
        }
    }

    const bench_result *w = bench_get("montecarlo_pi", "weft-threads");
    const bench_result *p = bench_get("montecarlo_pi", "weft-processes");
    if (w && bench_get("montecarlo_pi", "weft-threads-2w") &&
        bench_get("montecarlo_pi", "numpy-procpool-2w"))
        bench_ratio("montecarlo_pi", "numpy-procpool-2w", "weft-threads-2w");
    if (!quick) {
        bench_target("montecarlo_pi speed-up of weft-threads on 2 workers >= 1.9", w != NULL,
                     w && w->median >= 1.9);
        bench_target("montecarlo_pi speed-up of weft-processes on 2 workers >= 1.9", p != NULL,
                     p && p->median >= 1.9);
    }
    return bench_finish();
}

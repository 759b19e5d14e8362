/* montecarlo_pi.c : pi by Monte Carlo, with a 95% confidence interval and
 * the same bits on every level and every worker count.
 *
 * Throw points into the unit square; the share that lands inside the
 * quarter circle x^2 + y^2 < 1 is pi/4. The points are drawn in batches
 * (tasks); each batch has its own random stream, seeded from the run seed
 * and the batch number alone -- never from the worker or the time -- and
 * gives one estimate of pi. The batch estimates are reduced with
 * weft_parallel_reduce, whose combine order is fixed by the number of
 * batches, so the mean and the interval come out bit for bit the same
 * whoever ran which batch (examples/montecarlo_pi.h has the kernel).
 *
 * Python (numpy) would write it, with SeedSequence for per-task seeds:
 *
 *     def batch(seed, m):
 *         x, y = np.random.default_rng(seed).random((2, m))
 *         return 4 * np.count_nonzero(x * x + y * y < 1) / m
 *     seeds = np.random.SeedSequence(42).spawn(tasks)
 *     with ProcessPoolExecutor(2) as ex:
 *         est = np.array(list(ex.map(batch, seeds, [m] * tasks)))
 *     print(est.mean(), 1.96 * est.std(ddof=1) / np.sqrt(tasks))
 *
 * Usage: montecarlo_pi [--samples N] [--tasks B] [--seed S] [--quick]
 *                      [--backend NAME] [--workers W] [--levels]
 *   --samples N   points in all (default 100,000,000; --quick 4,000,000),
 *                 rounded down to a multiple of the batch count
 *   --tasks B     batches (default 1000)
 *   --backend, --workers   the executor (default: WEFT_BACKEND, WEFT_WORKERS)
 *   --levels      run on serial, threads with 1-4 workers, processes with
 *                 1-3 and mpi (under mpirun), and check that every run gives
 *                 the serial bits
 * Exit status 0; 1 if a run fails, the runs disagree or pi is not within
 * 5 standard errors; 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "montecarlo_pi.h"

#define PI 3.14159265358979323846

static void usage(FILE *to)
{
    fprintf(to, "usage: montecarlo_pi [--samples N] [--tasks B] [--seed S] [--quick]\n"
                "                     [--backend serial|threads|processes|mpi] [--workers W]\n"
                "                     [--levels]\n");
}

/* One run on (backend, workers); prints its line. @return 0 or a WEFT_E* code. */
static int run(weft_backend backend, int workers, uint64_t seed, uint64_t tasks, uint64_t per_task,
               mc_result *res)
{
    weft_options o = {.backend = backend, .workers = workers};
    weft_executor *ex;
    int rc = weft_executor_create(&o, &ex);
    if (rc) {
        if (!(rc == WEFT_ENOTSUP && backend == WEFT_BACKEND_MPI)) /* mpi outside mpirun */
            fprintf(stderr, "montecarlo_pi: %s: %s (%s)\n", weft_backend_name(backend),
                    weft_strerror(rc), weft_last_error());
        return rc;
    }
    double t0 = weft_now();
    rc = mc_estimate(ex, seed, tasks, per_task, res);
    double dt = weft_now() - t0;
    if (rc == 0)
        printf("%-9s %2d workers  pi ~ %.10f +- %.10f  bits 0x%016" PRIx64 " 0x%016" PRIx64
               "  %8.1f ms\n",
               weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex), res->pi,
               1.96 * res->se, mc_bits(res->pi), mc_bits(res->se), dt * 1e3);
    else
        fprintf(stderr, "montecarlo_pi: %s: %s (%s)\n", weft_backend_name(backend),
                weft_strerror(rc), weft_last_error());
    weft_executor_destroy(ex);
    return rc;
}

static bool same(const mc_result *a, const mc_result *b)
{
    return mc_bits(a->pi) == mc_bits(b->pi) && mc_bits(a->se) == mc_bits(b->se) &&
           a->hits == b->hits;
}

int main(int argc, char **argv)
{
    uint64_t samples = 100000000, tasks = 1000, seed = 42;
    weft_backend backend = WEFT_BACKEND_DEFAULT;
    int workers = 0;
    bool levels = false;

    if (weft_init(&argc, &argv) != 0) return 1; /* first: processes and mpi need it */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--samples") == 0 && v) {
            samples = strtoull(v, &end, 10), i++;
        } else if (strcmp(a, "--tasks") == 0 && v) {
            tasks = strtoull(v, &end, 10), i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            seed = strtoull(v, &end, 10), i++;
        } else if (strcmp(a, "--workers") == 0 && v) {
            workers = (int)strtol(v, &end, 10), i++;
        } else if (strcmp(a, "--backend") == 0 && v) {
            if (weft_backend_parse(v, &backend)) return usage(stderr), 2;
            i++;
        } else if (strcmp(a, "--quick") == 0) {
            samples = 4000000;
        } else if (strcmp(a, "--levels") == 0) {
            levels = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return usage(stdout), 0;
        } else {
            return usage(stderr), 2;
        }
        if (end && *end) return usage(stderr), 2;
    }
    if (tasks < 2 || samples < tasks || workers < 0) return usage(stderr), 2;
    uint64_t per_task = samples / tasks;
    printf("pi by Monte Carlo: %" PRIu64 " points in %" PRIu64 " batches of %" PRIu64
           ", seed %" PRIu64 "; +- is the 95%% interval's half width\n",
           tasks * per_task, tasks, per_task, seed);

    mc_result ref = {0};
    int status = 0;
    if (!levels) {
        if (run(backend, workers, seed, tasks, per_task, &ref)) return 1;
    } else {
        static const struct {
            weft_backend b;
            int workers;
        } plan[] = {
            {WEFT_BACKEND_SERIAL, 1},    {WEFT_BACKEND_THREADS, 1},   {WEFT_BACKEND_THREADS, 2},
            {WEFT_BACKEND_THREADS, 3},   {WEFT_BACKEND_THREADS, 4},   {WEFT_BACKEND_PROCESSES, 1},
            {WEFT_BACKEND_PROCESSES, 2}, {WEFT_BACKEND_PROCESSES, 3}, {WEFT_BACKEND_MPI, 0},
        };
        int nruns = 0;
        for (size_t k = 0; k < sizeof plan / sizeof plan[0]; k++) {
            mc_result r = {0};
            if (!weft_backend_available(plan[k].b)) {
                printf("%-9s not in this build\n", weft_backend_name(plan[k].b));
                continue;
            }
            int rc = run(plan[k].b, plan[k].workers, seed, tasks, per_task, k ? &r : &ref);
            if (rc == WEFT_ENOTSUP && plan[k].b == WEFT_BACKEND_MPI) {
                printf("%-9s skipped: run `mpirun -n 3 montecarlo_pi --levels` for it\n",
                       weft_backend_name(plan[k].b));
                continue;
            }
            if (rc) return 1;
            nruns++;
            if (k && !same(&r, &ref)) {
                printf("  ^ DIFFERS from serial\n");
                status = 1;
            }
        }
        printf("%s: %d runs, %s\n", status ? "FAILED" : "ok", nruns,
               status ? "the estimates differ" : "the same bits on every level and worker count");
    }

    double pooled = 4.0 * (double)ref.hits / (double)ref.points;
    printf("pi ~ %.10f, 95%% interval [%.10f, %.10f]; true pi %.10f is %.2f standard errors "
           "away; %" PRIu64 " of %" PRIu64 " points inside\n",
           ref.pi, ref.lo, ref.hi, PI, fabs(ref.pi - PI) / ref.se, ref.hits, ref.points);
    /* checks: the batch mean is the pooled share (equal batches), and pi is
     * where the interval says it should be (a fixed seed: no flaky test) */
    if (fabs(pooled - ref.pi) > 1e-12 || fabs(ref.pi - PI) > 5 * ref.se) {
        fprintf(stderr, "montecarlo_pi: the estimate is off (pooled %.12f)\n", pooled);
        status = 1;
    }
    return status;
}

/* mpi_bench.c : the mpi backend against mpi4py.futures and raw MPI.
 *
 * Run by scripts/run-bench.sh under mpirun (never directly):
 *   mpirun -n 3 mpi_bench            rank 0 + 2 worker ranks: submit_batch,
 *                                    submit_roundtrip, map_empty, the raw
 *                                    MPI_Send/MPI_Recv round trip, and
 *                                    mpi_hybrid_speedup (16 tasks of ~30 ms
 *                                    on 1 worker rank x 2 threads against
 *                                    the serial backend, run by run)
 *   mpirun -n 9 mpi_bench --dispatch rank 0 feeding 8 (oversubscribed)
 *                                    worker ranks: mpi_dispatch_rate
 * Systems: weft-mpi, mpi-raw (a bare ping-pong between ranks 0 and 1, the
 * floor of any round trip), mpi4py-futures (samples measured by
 * bench/mpi_anchor.py in the same bench run, read from the file named by
 * WEFT_MPI_ANCHOR: run-bench.sh runs it just before, since mpirun cannot
 * be started from inside an MPI job).
 *
 * The raw round trip is measured before weft_init: the program initializes
 * MPI itself (weft_init then uses it and leaves MPI_Finalize to us).
 * Executors are created and warmed outside the timed blocks. Every result
 * is checked by a sum.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "bench.h"

#if __has_include(<mpi.h>)
#include <mpi.h>
#define HAVE_MPI_H 1
#endif

#define REPS 5

static weft_executor *ex;

static int ident(weft_ctx *ctx, const void *in, size_t len)
{
    if (len == 8) return weft_ctx_set_output(ctx, in, 8);
    return 0;
}
WEFT_TASK_REGISTER(ident);

static int empty(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    BENCH_BARRIER();
    return 0;
}
WEFT_TASK_REGISTER(empty);

static int64_t result_i64(weft_future *f)
{
    const void *d;
    size_t n;
    int64_t v = -1;
    if (weft_future_result(f, WEFT_FOREVER, &d, &n) == 0 && n == 8) memcpy(&v, d, 8);
    return v;
}

static double run_batch(long n)
{
    weft_future **fs = malloc((size_t)n * sizeof *fs);
    if (!fs) return -1;
    double t0 = bench_now();
    for (int64_t i = 0; i < n; i++)
        if (weft_submit(ex, ident, &i, sizeof i, &fs[i])) return -1;
    int64_t sum = 0;
    for (long i = 0; i < n; i++) {
        sum += result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double dt = bench_now() - t0;
    free(fs);
    if (sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("submit_batch: wrong sum");
        return -1;
    }
    return dt / (double)n * 1e6;
}

static double run_roundtrip(long n)
{
    int64_t sum = 0;
    double t0 = bench_now();
    for (int64_t i = 0; i < n; i++) {
        weft_future *f;
        if (weft_submit(ex, ident, &i, sizeof i, &f)) return -1;
        sum += result_i64(f);
        weft_future_release(f);
    }
    double dt = bench_now() - t0;
    if (sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("submit_roundtrip: wrong sum");
        return -1;
    }
    return dt / (double)n * 1e6;
}

static int64_t *map_in;

static double run_map(long n)
{
    weft_results *r = NULL;
    double t0 = bench_now();
    int rc = weft_map(ex, ident, map_in, sizeof *map_in, (size_t)n, NULL, &r);
    double dt = bench_now() - t0;
    int64_t sum = 0;
    for (long i = 0; rc == 0 && i < n; i++) {
        const void *d;
        if (weft_results_get(r, (size_t)i, &d, NULL) == 0) {
            int64_t v;
            memcpy(&v, d, 8);
            sum += v;
        }
    }
    weft_results_destroy(r);
    if (rc || sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("map_empty: rc %d or wrong sum", rc);
        return -1;
    }
    return dt / (double)n * 1e6;
}

/* tasks per second through submit (batch of n, empty tasks) */
static double run_dispatch_submit(long n)
{
    double us = run_batch(n);
    return us > 0 ? 1e6 / us : -1;
}

/* items per second through map (n empty items) */
static double run_dispatch_map(long n)
{
    double us = run_map(n);
    return us > 0 ? 1e6 / us : -1;
}

static void measure(const char *bench, const char *unit, double (*run)(long), long n)
{
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=weft-mpi", bench);
    bench_watchdog(300, what);
    double s[REPS];
    int k = 0;
    if (run(n / 10 > 0 ? n / 10 : 1) < 0) return; /* warm-up */
    for (int i = 0; i < REPS; i++) {
        double v = run(n);
        if (v < 0) return;
        s[k++] = v;
    }
    alarm(0);
    bench_report(bench, "weft-mpi", s, k, unit);
    bench_settle(100);
}

/* ---- hybrid: 1 worker rank x 2 threads on coarse tasks ---- */

#define COARSE_TASKS 16

/* a CPU-bound loop the compiler cannot shorten */
static uint64_t coarse_work(uint64_t x, uint64_t n)
{
    uint64_t y = 0;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        y += x * i;
    }
    return y;
}

static int coarse(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t a[2];
    if (len != sizeof a) return WEFT_EINVAL;
    memcpy(a, in, sizeof a);
    uint64_t y = coarse_work(a[0], a[1]);
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(coarse);

static uint64_t coarse_in[COARSE_TASKS][2];

/* Seconds for the COARSE_TASKS items on e; *sum gets the outputs' sum. */
static double run_coarse(weft_executor *e, uint64_t *sum)
{
    weft_results *r = NULL;
    double t0 = bench_now();
    int rc = weft_map(e, coarse, coarse_in, sizeof coarse_in[0], COARSE_TASKS, NULL, &r);
    double dt = bench_now() - t0;
    *sum = 0;
    for (size_t i = 0; rc == 0 && i < COARSE_TASKS; i++) {
        const void *d;
        uint64_t y;
        if (weft_results_get(r, i, &d, NULL) != 0) rc = WEFT_ETASK;
        if (rc == 0) memcpy(&y, d, sizeof y), *sum += y;
    }
    weft_results_destroy(r);
    return rc ? -1 : dt;
}

/* mpi_hybrid_speedup: serial time over the time of one worker rank with 2
 * threads (WEFT_MPI_THREADS=2's mode), on 16 tasks of ~30 ms each, each
 * sample from a serial run and a hybrid run back to back. */
static void measure_hybrid(void)
{
    bench_watchdog(300, "bench=mpi_hybrid_speedup system=weft-mpi");
    double t0 = bench_now();
    volatile uint64_t sink = coarse_work(1, 1u << 22);
    (void)sink;
    double per = (bench_now() - t0) / (double)(1u << 22);
    uint64_t n = (uint64_t)(0.03 / (per > 0 ? per : 1e-9));
    for (int i = 0; i < COARSE_TASKS; i++) {
        coarse_in[i][0] = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        coarse_in[i][1] = n;
    }
    weft_options so = {.backend = WEFT_BACKEND_SERIAL};
    weft_options ho = {.backend = WEFT_BACKEND_MPI, .workers = 1, .mpi.threads = 2};
    weft_executor *ser = NULL, *hyb = NULL;
    if (weft_executor_create(&so, &ser) || weft_executor_create(&ho, &hyb)) {
        bench_skip("mpi_hybrid_speedup", "weft-mpi", weft_last_error());
        weft_executor_destroy(ser);
        return;
    }
    printf("# hybrid: %d tasks of %.1f ms on 1 worker rank x 2 threads\n", COARSE_TASKS,
           per * (double)n * 1e3);
    uint64_t s1, s2;
    double ts[REPS], th[REPS], sp[REPS];
    int k = 0;
    if (run_coarse(hyb, &s2) < 0) bench_fail("mpi_hybrid_speedup: the warm-up failed");
    for (int i = 0; i < REPS; i++) {
        ts[k] = run_coarse(ser, &s1);
        th[k] = run_coarse(hyb, &s2);
        if (ts[k] < 0 || th[k] < 0 || s1 != s2) {
            bench_fail("mpi_hybrid_speedup: a run failed or the sums differ");
            break;
        }
        sp[k] = ts[k] / th[k];
        k++;
    }
    alarm(0);
    weft_executor_destroy(hyb);
    weft_executor_destroy(ser);
    if (k == 0) return;
    bench_report("mpi_hybrid_coarse", "weft-serial", ts, k, "s");
    bench_report("mpi_hybrid_coarse", "weft-mpi", th, k, "s");
    bench_report("mpi_hybrid_speedup", "weft-mpi", sp, k, "x");
    const bench_result *r = bench_get("mpi_hybrid_speedup", "weft-mpi");
    if (r)
        bench_target("mpi_hybrid_speedup >= 1.8x (1 worker rank x 2 threads)", 1, r->median >= 1.8);
    bench_settle(100);
}

/* mpi4py.futures samples from mpi_anchor.py's output file */
static void read_anchor(void)
{
    const char *path = getenv("WEFT_MPI_ANCHOR");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f) {
        bench_skip("submit_batch", "mpi4py-futures", "no WEFT_MPI_ANCHOR file (run-bench.sh)");
        return;
    }
    static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty"};
    static const char *units[] = {"us/task", "us/task", "us/item"};
    double s[3][BENCH_MAX_SAMPLES];
    int n[3] = {0, 0, 0};
    char line[256], name[64];
    double v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "sample %63s %lf", name, &v) == 2) {
            for (int b = 0; b < 3; b++)
                if (!strcmp(name, benches[b]) && n[b] < BENCH_MAX_SAMPLES) s[b][n[b]++] = v;
        } else if (!strncmp(line, "FAIL", 4)) {
            bench_fail("mpi_anchor.py: %s", line);
        }
    }
    fclose(f);
    for (int b = 0; b < 3; b++) {
        if (n[b])
            bench_report(benches[b], "mpi4py-futures", s[b], n[b], units[b]);
        else
            bench_skip(benches[b], "mpi4py-futures", "mpi_anchor.py gave no samples");
    }
}

#ifdef HAVE_MPI_H
/* raw MPI_Send/MPI_Recv round trip between ranks 0 and 1, 8 bytes (us) */
static double raw_roundtrip(int rank, long n)
{
    int64_t x = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (rank == 0) {
            MPI_Send(&x, 8, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(&x, 8, MPI_BYTE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(&x, 8, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            x++;
            MPI_Send(&x, 8, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
        }
    }
    double dt = bench_now() - t0;
    if (rank == 0 && x != n) bench_fail("mpi-raw: wrong count");
    return dt / (double)n * 1e6;
}
#endif

int main(int argc, char **argv)
{
    bool dispatch = argc > 1 && strcmp(argv[1], "--dispatch") == 0;
#ifdef HAVE_MPI_H
    int provided, rank = 0, size = 1;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double raw[REPS];
    if (!dispatch && size >= 2) {
        raw_roundtrip(rank, 10000); /* warm-up */
        for (int i = 0; i < REPS; i++) raw[i] = raw_roundtrip(rank, 100000);
    }
#endif
    if (weft_init(&argc, &argv)) { /* ranks 1.. become workers here */
        fprintf(stderr, "weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* the --dispatch run writes its own file (mpi_bench_dispatch.json), never
     * the 3-rank run's mpi_bench.json */
    bench_begin(dispatch ? "mpi_bench_dispatch" : argv[0], __FILE__);
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    if (weft_executor_create(&o, &ex)) {
        bench_skip(dispatch ? "mpi_dispatch_rate" : "submit_batch", "weft-mpi", weft_last_error());
        weft_finalize();
#ifdef HAVE_MPI_H
        MPI_Finalize();
#endif
        return bench_finish();
    }
    int workers = weft_executor_workers(ex);
    printf("# weft %s, mpi backend, %d worker ranks\n", weft_version(), workers);
    map_in = malloc(2000000 * sizeof *map_in);
    if (!map_in) return 1;
    for (int64_t i = 0; i < 2000000; i++) map_in[i] = i;

    if (dispatch) {
        measure("mpi_dispatch_rate", "tasks/s", run_dispatch_map, 2000000);
        measure("mpi_dispatch_rate_submit", "tasks/s", run_dispatch_submit, 200000);
        const bench_result *r = bench_get("mpi_dispatch_rate", "weft-mpi");
        if (r)
            bench_target("mpi_dispatch_rate >= 1M tasks/s (map, 8 worker ranks)", 1,
                         r->median >= 1e6);
    } else {
#ifdef HAVE_MPI_H
        if (size >= 2) bench_report("submit_roundtrip", "mpi-raw", raw, REPS, "us/task");
#endif
        measure("submit_batch", "us/task", run_batch, 200000);
        measure("submit_roundtrip", "us/task", run_roundtrip, 20000);
        measure("map_empty", "us/item", run_map, 2000000);
        read_anchor();
        static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty"};
        for (int b = 0; b < 3; b++)
            if (bench_get(benches[b], "mpi4py-futures"))
                bench_ratio(benches[b], "mpi4py-futures", "weft-mpi");
        const bench_result *r;
        if ((r = bench_get("submit_batch", "weft-mpi")))
            bench_target("submit_batch <= 5 us/task", 1, r->median <= 5);
        if ((r = bench_get("submit_roundtrip", "weft-mpi")))
            bench_target("submit_roundtrip <= 10 us/task", 1, r->median <= 10);
        if ((r = bench_get("map_empty", "weft-mpi")))
            bench_target("map_empty <= 0.2 us/item", 1, r->median <= 0.2);
        const bench_result *raw_rt = bench_get("submit_roundtrip", "mpi-raw");
        if ((r = bench_get("submit_roundtrip", "weft-mpi")) && raw_rt)
            bench_target("submit_roundtrip <= 1.5x the raw MPI round trip of this run", 1,
                         r->median <= 1.5 * raw_rt->median);
        if (workers >= 1) measure_hybrid();
    }
    weft_executor_destroy(ex);
    free(map_in);
    int st = bench_finish();
    weft_finalize();
#ifdef HAVE_MPI_H
    MPI_Finalize();
#endif
    return st;
}

/* map_empty : the per-item cost of a parallel map over trivial items.
 *
 * 10M items of 8 bytes (the index), each producing an 8-byte output (the
 * index plus one), on
 *   weft-threads  weft_map(item_size 8), automatic chunking
 *   weft-serial   the same on the serial backend
 *   tbb           tbb::parallel_for over a blocked_range, out[i] = in[i] + 1
 *   openmp        #pragma omp parallel for schedule(static), the same body
 * The outputs are summed and checked after each run, outside the timed
 * block. weft's time is weft_map (which allocates the results) plus
 * weft_results_destroy; TBB and OpenMP write into an array allocated (and
 * faulted in) once, outside the timed block. Pools are started and warmed
 * outside the timed blocks. Unit: ns/item = wall time / 10M.
 */
#include <stdint.h>
#include <string.h>

#include <omp.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <vector>

#include "bench.h"
#include "bench_weft.h"

static const size_t N = 10000000;
static const int REPS = 5;

static uint64_t expected_sum(uint64_t n)
{
    return n * (n + 1) / 2; /* sum of i + 1 for i in [0, n) */
}

static int inc_task(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t v;
    if (len != sizeof v) return WEFT_EINVAL;
    memcpy(&v, in, sizeof v);
    v += 1;
    void *out = weft_ctx_output(ctx, sizeof v);
    if (!out) return WEFT_ENOMEM;
    memcpy(out, &v, sizeof v);
    return 0;
}
WEFT_TASK_REGISTER(inc_task);

static double run_weft(weft_executor *ex, const char *system, const uint64_t *in)
{
    weft_results *res = NULL;
    double t0 = bench_now();
    int rc = weft_map(ex, inc_task, in, sizeof *in, N, NULL, &res);
    double t1 = bench_now();
    if (rc || !res) {
        bench_fail("map_empty %s: weft_map: %s (%s)", system, weft_strerror(rc), weft_last_error());
        weft_results_destroy(res);
        return -1;
    }
    uint64_t sum = 0;
    size_t bad = 0;
    if (weft_results_count(res) != N) bad = N;
    for (size_t i = 0; i < N && !bad; i++) {
        const void *d;
        size_t len;
        uint64_t v;
        if (weft_results_get(res, i, &d, &len) || len != sizeof v) {
            bad++;
            continue;
        }
        memcpy(&v, d, sizeof v);
        sum += v;
    }
    double t2 = bench_now();
    weft_results_destroy(res);
    double t3 = bench_now();
    if (bad || sum != expected_sum(N)) {
        bench_fail("map_empty %s: %zu bad items, sum %llu != %llu", system, bad,
                   (unsigned long long)sum, (unsigned long long)expected_sum(N));
        return -1;
    }
    return ((t1 - t0) + (t3 - t2)) / (double)N * 1e9;
}

static bool check_out(const char *system, uint64_t *out)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < N; i++) sum += out[i];
    memset(out, 0, N * sizeof *out);
    if (sum != expected_sum(N)) {
        bench_fail("map_empty %s: sum %llu != %llu", system, (unsigned long long)sum,
                   (unsigned long long)expected_sum(N));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    const char *B = "map_empty";
    std::vector<uint64_t> in(N), out(N);
    for (size_t i = 0; i < N; i++) in[i] = i;

    const struct {
        weft_backend b;
        const char *name;
    } levels[] = {{WEFT_BACKEND_THREADS, "weft-threads"}, {WEFT_BACKEND_SERIAL, "weft-serial"}};
    for (const auto &lv : levels) {
        weft_executor *ex = bench_weft_create(lv.b, BENCH_WORKERS);
        if (!ex) continue;
        bench_measure(B, lv.name, "ns/item", 1, REPS, 120,
                      [&] { return run_weft(ex, lv.name, in.data()); });
        bench_weft_destroy(ex);
    }

    uint64_t *o = out.data();
    const uint64_t *ip = in.data();
    bench_measure(B, "tbb", "ns/item", 1, REPS, 60, [&]() -> double {
        double t0 = bench_now();
        tbb::parallel_for(tbb::blocked_range<size_t>(0, N),
                          [&](const tbb::blocked_range<size_t> &r) {
                              for (size_t i = r.begin(); i != r.end(); ++i) o[i] = ip[i] + 1;
                          });
        double t1 = bench_now();
        return check_out("tbb", o) ? (t1 - t0) / (double)N * 1e9 : -1;
    });

    bench_measure(B, "openmp", "ns/item", 1, REPS, 60, [&]() -> double {
        double t0 = bench_now();
#pragma omp parallel for schedule(static) num_threads(BENCH_WORKERS)
        for (size_t i = 0; i < N; i++) o[i] = ip[i] + 1;
        double t1 = bench_now();
        return check_out("openmp", o) ? (t1 - t0) / (double)N * 1e9 : -1;
    });

    const char *W = "weft-threads";
    bench_ratio(B, "tbb", W);
    bench_ratio(B, "openmp", W);
    bench_ratio(B, "weft-serial", W);
    const bench_result *w = bench_get(B, W);
    bench_target("map_empty: weft-threads <= 25 ns/item", w != NULL, w && w->median <= 25.0);
    return bench_finish();
}

/* submit_roundtrip : the latency of one task, submitted and waited for alone.
 *
 * Submit one empty task, wait for its result, repeat, on
 *   weft-threads      weft_submit, weft_future_result, weft_future_release
 *   weft-serial       the same on the serial backend (runs inline)
 *   tbb               tbb::task_group::run, then wait (the waiting thread may
 *                     run the task itself: TBB's wait executes work)
 *   naive-pool        bench/naive_pool.h: submit, then wait-all
 *   python-threadpool ThreadPoolExecutor(2): submit(...).result()
 * Each task returns (weft: as its 8-byte output) its input plus one, and the
 * outputs are summed and checked. Pools are started and warmed outside the
 * timed blocks. Unit: us/task = wall time / number of round trips.
 */
#include <stdint.h>
#include <string.h>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>

#include "bench.h"
#include "bench_weft.h"
#include "naive_pool.h"

static const uint64_t N = 100000;
static const uint64_t N_NAIVE = 50000;
static const uint64_t N_PY = 10000;
static const int REPS = 5;
static const int REPS_PY = 3;

/* sum of (i + 1) for i in [0, n) */
static uint64_t expected_sum(uint64_t n)
{
    return n * (n + 1) / 2;
}

static int inc_task(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t v;
    if (len != sizeof v) return WEFT_EINVAL;
    memcpy(&v, in, sizeof v);
    v += 1;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(inc_task);

static double run_weft(weft_executor *ex, const char *system, uint64_t n)
{
    uint64_t sum = 0;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        weft_future *f;
        int rc = weft_submit(ex, inc_task, &i, sizeof i, &f);
        if (rc) {
            bench_fail("submit_roundtrip %s: weft_submit: %s", system, weft_strerror(rc));
            return -1;
        }
        const void *out;
        size_t len;
        rc = weft_future_result(f, WEFT_FOREVER, &out, &len);
        if (rc || len != sizeof(uint64_t)) {
            bench_fail("submit_roundtrip %s: weft_future_result: %s, len %zu", system,
                       weft_strerror(rc), len);
            weft_future_release(f);
            return -1;
        }
        uint64_t v;
        memcpy(&v, out, sizeof v);
        sum += v;
        weft_future_release(f);
    }
    double t1 = bench_now();
    if (sum != expected_sum(n)) {
        bench_fail("submit_roundtrip %s: sum %llu != %llu", system, (unsigned long long)sum,
                   (unsigned long long)expected_sum(n));
        return -1;
    }
    return (t1 - t0) / (double)n * 1e6;
}

struct naive_arg {
    uint64_t in, out;
};

static void naive_inc(void *p)
{
    naive_arg *a = (naive_arg *)p;
    a->out = a->in + 1;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    const char *B = "submit_roundtrip";

    const struct {
        weft_backend b;
        const char *name;
    } levels[] = {{WEFT_BACKEND_THREADS, "weft-threads"}, {WEFT_BACKEND_SERIAL, "weft-serial"}};
    for (const auto &lv : levels) {
        weft_executor *ex = bench_weft_create(lv.b, BENCH_WORKERS);
        if (!ex) continue;
        bench_measure(B, lv.name, "us/task", 1, REPS, 120,
                      [&] { return run_weft(ex, lv.name, N); });
        bench_weft_destroy(ex);
    }

    bench_measure(B, "tbb", "us/task", 1, REPS, 120, [&]() -> double {
        uint64_t sum = 0;
        tbb::task_group tg;
        double t0 = bench_now();
        for (uint64_t i = 0; i < N; i++) {
            uint64_t out = 0;
            tg.run([i, &out] { out = i + 1; });
            tg.wait();
            sum += out;
        }
        double t1 = bench_now();
        if (sum != expected_sum(N)) {
            bench_fail("submit_roundtrip tbb: wrong sum");
            return -1;
        }
        return (t1 - t0) / (double)N * 1e6;
    });

    {
        naive_pool pool;
        if (naive_pool_create(&pool, BENCH_WORKERS) == 0) {
            bench_measure(B, "naive-pool", "us/task", 1, REPS, 120, [&]() -> double {
                uint64_t sum = 0;
                naive_arg a;
                double t0 = bench_now();
                for (uint64_t i = 0; i < N_NAIVE; i++) {
                    a.in = i;
                    if (naive_pool_submit(&pool, naive_inc, &a)) return -1;
                    naive_pool_wait_all(&pool);
                    sum += a.out;
                }
                double t1 = bench_now();
                if (sum != expected_sum(N_NAIVE)) {
                    bench_fail("submit_roundtrip naive-pool: wrong sum");
                    return -1;
                }
                return (t1 - t0) / (double)N_NAIVE * 1e6;
            });
            naive_pool_destroy(&pool);
        } else {
            bench_fail("naive_pool_create");
        }
    }

    {
        char args[64];
        snprintf(args, sizeof args, "roundtrip %llu %d", (unsigned long long)N_PY, REPS_PY);
        bench_python_report(B, "python-threadpool", "us/task", "threadpool_anchor.py", args, 120);
    }

    const char *W = "weft-threads";
    bench_ratio(B, "tbb", W);
    bench_ratio(B, "naive-pool", W);
    bench_ratio(B, "python-threadpool", W);
    bench_ratio(B, "weft-serial", W);
    const bench_result *w = bench_get(B, W);
    bench_target("submit_roundtrip: weft-threads <= 2 us/task", w != NULL, w && w->median <= 2.0);
    return bench_finish();
}

/* submit_batch : the cost of one task when many are submitted at once.
 *
 * 1M submits of an empty task from one thread, then wait for all, on
 *   weft-threads      weft_submit x N, then weft_future_result + release each
 *   weft-serial       the same on the serial backend (bookkeeping alone)
 *   tbb               tbb::task_group::run x N, then wait
 *   openmp            #pragma omp parallel + single + omp task x N
 *   naive-pool        bench/naive_pool.h: submit x N, then wait-all
 *   python-threadpool ThreadPoolExecutor(2): submit x 50k, then result each
 * Every task marks its own byte of a flag array (2 if it ran on the
 * submitting thread, 1 on another), and the flags are counted after each run:
 * a task that did not run is a failed check. The share of tasks that ran on
 * the submitting thread is printed: libgomp runs a task inline, as a plain
 * call, once more than 64 per thread are queued, and TBB's wait runs tasks on
 * the waiting thread, which flatters their figures. The OpenMP body also
 * carries a compiler barrier, so gcc cannot delete it. Pools are started and
 * warmed (one untimed run) outside the timed blocks.
 * Unit: us/task = wall time of the whole batch / N.
 */
#include <stdint.h>
#include <string.h>

#include <omp.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>
#include <vector>

#include "bench.h"
#include "bench_weft.h"
#include "naive_pool.h"

static const size_t N = 1000000;
static const size_t N_PY = 50000;
static const int REPS = 5;
static const int REPS_PY = 3;

static unsigned char *g_done;
/* 2 on the thread that submits, while it submits and waits; 1 elsewhere */
static thread_local unsigned char tl_mark = 1;
static double g_inline_share; /* of the last run checked */

/* Counts and clears the flags; records a failed check unless all `n` ran. */
static bool check_done(const char *system, size_t n)
{
    size_t ran = 0, on_submitter = 0;
    for (size_t i = 0; i < n; i++) {
        ran += g_done[i] != 0;
        on_submitter += g_done[i] == 2;
    }
    memset(g_done, 0, n);
    g_inline_share = n ? (double)on_submitter / (double)n : 0;
    if (ran != n) {
        bench_fail("submit_batch %s: %zu of %zu tasks ran", system, ran, n);
        return false;
    }
    return true;
}

static void print_inline_share(const char *system)
{
    printf("# %s: %.1f%% of the tasks of the last run ran on the submitting thread\n", system,
           100.0 * g_inline_share);
}

static int empty_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    uint64_t i;
    if (len != sizeof i) return WEFT_EINVAL;
    memcpy(&i, in, sizeof i);
    g_done[i] = tl_mark;
    return 0;
}
WEFT_TASK_REGISTER(empty_task);

static double run_weft(weft_executor *ex, const char *system, std::vector<weft_future *> &fs)
{
    size_t n = fs.size(), submitted = 0;
    int bad = 0;
    tl_mark = 2;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++) {
        int rc = weft_submit(ex, empty_task, &i, sizeof i, &fs[i]);
        if (rc) {
            bench_fail("submit_batch %s: weft_submit: %s", system, weft_strerror(rc));
            break;
        }
        submitted++;
    }
    for (size_t i = 0; i < submitted; i++) {
        if (weft_future_result(fs[i], WEFT_FOREVER, NULL, NULL) != 0) bad++;
        weft_future_release(fs[i]);
    }
    double t1 = bench_now();
    tl_mark = 1;
    if (bad) bench_fail("submit_batch %s: %d futures failed", system, bad);
    if (!check_done(system, submitted) || submitted != n || bad) return -1;
    return (t1 - t0) / (double)n * 1e6;
}

static void naive_task(void *arg)
{
    g_done[(uintptr_t)arg] = tl_mark;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    g_done = (unsigned char *)calloc(N, 1);
    if (!g_done) return 1;
    std::vector<weft_future *> fs(N);
    const char *B = "submit_batch";

    /* weft, threads and serial backends */
    const struct {
        weft_backend b;
        const char *name;
    } levels[] = {{WEFT_BACKEND_THREADS, "weft-threads"}, {WEFT_BACKEND_SERIAL, "weft-serial"}};
    for (const auto &lv : levels) {
        weft_executor *ex = bench_weft_create(lv.b, BENCH_WORKERS);
        if (!ex) continue;
        bench_measure(B, lv.name, "us/task", 1, REPS, 120,
                      [&] { return run_weft(ex, lv.name, fs); });
        print_inline_share(lv.name);
        bench_weft_destroy(ex);
    }

    /* oneTBB task_group */
    bench_measure(B, "tbb", "us/task", 1, REPS, 120, [&]() -> double {
        tl_mark = 2;
        double t0 = bench_now();
        tbb::task_group tg;
        for (size_t i = 0; i < N; i++) tg.run([i] { g_done[i] = tl_mark; });
        tg.wait();
        double t1 = bench_now();
        tl_mark = 1;
        return check_done("tbb", N) ? (t1 - t0) / (double)N * 1e6 : -1;
    });
    print_inline_share("tbb");

    /* OpenMP tasks (libgomp runs tasks inline in the producer once its queue
     * is full, which flatters this figure) */
    bench_measure(B, "openmp", "us/task", 1, REPS, 120, [&]() -> double {
        double t0 = bench_now();
#pragma omp parallel num_threads(BENCH_WORKERS)
#pragma omp single
        {
            tl_mark = 2; /* the producer is whichever thread runs the single */
            for (size_t i = 0; i < N; i++) {
#pragma omp task firstprivate(i)
                {
                    g_done[i] = tl_mark;
                    BENCH_BARRIER();
                }
            }
            tl_mark = 1;
        }
        double t1 = bench_now();
        return check_done("openmp", N) ? (t1 - t0) / (double)N * 1e6 : -1;
    });
    print_inline_share("openmp");

    /* naive mutex + condvar pool */
    {
        naive_pool pool;
        if (naive_pool_create(&pool, BENCH_WORKERS) == 0) {
            bench_measure(B, "naive-pool", "us/task", 1, REPS, 120, [&]() -> double {
                double t0 = bench_now();
                for (size_t i = 0; i < N; i++)
                    if (naive_pool_submit(&pool, naive_task, (void *)(uintptr_t)i)) return -1;
                naive_pool_wait_all(&pool);
                double t1 = bench_now();
                return check_done("naive-pool", N) ? (t1 - t0) / (double)N * 1e6 : -1;
            });
            naive_pool_destroy(&pool);
        } else {
            bench_fail("naive_pool_create");
        }
    }

    /* Python's ThreadPoolExecutor(2), fewer tasks */
    {
        char args[64];
        snprintf(args, sizeof args, "batch %zu %d", N_PY, REPS_PY);
        bench_python_report(B, "python-threadpool", "us/task", "threadpool_anchor.py", args, 120);
    }

    const char *W = "weft-threads";
    double r_tbb = bench_ratio(B, "tbb", W);
    double r_omp = bench_ratio(B, "openmp", W);
    bench_ratio(B, "naive-pool", W);
    double r_py = bench_ratio(B, "python-threadpool", W);
    bench_ratio(B, "weft-serial", W);
    bench_target("submit_batch: weft-threads cheaper per task than tbb task_group", r_tbb > 0,
                 r_tbb > 1);
    bench_target("submit_batch: weft-threads cheaper per task than openmp tasks", r_omp > 0,
                 r_omp > 1);
    bench_target("submit_batch: weft-threads >= 100x cheaper than ThreadPoolExecutor", r_py > 0,
                 r_py >= 100);
    free(g_done);
    return bench_finish();
}

/* submit_8threads : submission under contention, 8 producers, 2 workers.
 *
 * 1M empty tasks in total, 125k from each of 8 submitting threads; each
 * thread submits all of its tasks, then waits for them, on
 *   weft-threads  one executor; weft_submit, then result + release each
 *   tbb           one tbb::task_group per submitting thread: run, then wait
 *   naive-pool    one bench/naive_pool.h pool; submit, then wait-all
 * The submitting threads are created before the clock starts and released
 * together by a barrier; the time runs from the barrier to the last join.
 * Every task stores a 1 in its own byte of a flag array, summed after each
 * run. Pools are started and warmed outside the timed blocks.
 * Unit: us/task = wall time / 1M.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>
#include <vector>

#include "bench.h"
#include "bench_weft.h"
#include "naive_pool.h"

static const int THREADS = 8;
static const size_t PER_THREAD = 125000;
static const size_t N = THREADS * PER_THREAD;
static const int REPS = 5;

static unsigned char *g_done;

static bool check_done(const char *system)
{
    size_t sum = 0;
    for (size_t i = 0; i < N; i++) sum += g_done[i];
    memset(g_done, 0, N);
    if (sum != N) {
        bench_fail("submit_8threads %s: %zu of %zu tasks ran", system, sum, N);
        return false;
    }
    return true;
}

/* One submitting thread of run_producers(). */
struct producer {
    pthread_t th;
    int t;
    pthread_barrier_t *bar;
    const std::function<bool(int)> *body;
    bool ok;
};

static void *producer_main(void *p_)
{
    producer *p = (producer *)p_;
    pthread_barrier_wait(p->bar);
    p->ok = (*p->body)(p->t);
    return NULL;
}

/* Runs body(t) on THREADS threads released together; @return the seconds
 * from the release to the last join, or -1 if a body returned false. */
static double run_producers(const std::function<bool(int)> &body)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, THREADS + 1);
    producer ps[THREADS];
    int started = 0;
    for (int t = 0; t < THREADS; t++) {
        ps[t].t = t;
        ps[t].bar = &bar;
        ps[t].body = &body;
        ps[t].ok = false;
        if (pthread_create(&ps[t].th, NULL, producer_main, &ps[t]) != 0) break;
        started++;
    }
    if (started != THREADS) {
        /* cannot release a partial barrier safely: give up loudly */
        fprintf(stderr, "submit_8threads: pthread_create failed\n");
        _exit(1);
    }
    pthread_barrier_wait(&bar);
    double t0 = bench_now();
    bool ok = true;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(ps[t].th, NULL);
        ok = ok && ps[t].ok;
    }
    double t1 = bench_now();
    pthread_barrier_destroy(&bar);
    return ok ? t1 - t0 : -1;
}

static int empty_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    uint64_t i;
    if (len != sizeof i) return WEFT_EINVAL;
    memcpy(&i, in, sizeof i);
    g_done[i] = 1;
    return 0;
}
WEFT_TASK_REGISTER(empty_task);

static void naive_task(void *arg)
{
    g_done[(uintptr_t)arg] = 1;
}

static double per_task_us(const char *system, double secs)
{
    if (secs < 0) {
        bench_fail("submit_8threads %s: a producer failed", system);
        return -1;
    }
    return check_done(system) ? secs / (double)N * 1e6 : -1;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    g_done = (unsigned char *)calloc(N, 1);
    if (!g_done) return 1;
    const char *B = "submit_8threads";
    printf("# %d submitting threads x %zu tasks\n", THREADS, PER_THREAD);

    weft_executor *ex = bench_weft_create(WEFT_BACKEND_THREADS, BENCH_WORKERS);
    if (ex) {
        std::vector<std::vector<weft_future *>> fs(THREADS, std::vector<weft_future *>(PER_THREAD));
        std::function<bool(int)> body = [&](int t) -> bool {
            std::vector<weft_future *> &f = fs[(size_t)t];
            size_t submitted = 0;
            bool ok = true;
            for (size_t k = 0; k < PER_THREAD; k++) {
                uint64_t i = (uint64_t)t * PER_THREAD + k;
                if (weft_submit(ex, empty_task, &i, sizeof i, &f[k]) != 0) {
                    ok = false;
                    break;
                }
                submitted++;
            }
            for (size_t k = 0; k < submitted; k++) {
                if (weft_future_result(f[k], WEFT_FOREVER, NULL, NULL) != 0) ok = false;
                weft_future_release(f[k]);
            }
            return ok;
        };
        bench_measure(B, "weft-threads", "us/task", 1, REPS, 120,
                      [&] { return per_task_us("weft-threads", run_producers(body)); });
        bench_weft_destroy(ex);
    }

    {
        std::function<bool(int)> body = [&](int t) -> bool {
            tbb::task_group tg;
            for (size_t k = 0; k < PER_THREAD; k++) {
                size_t i = (size_t)t * PER_THREAD + k;
                tg.run([i] { g_done[i] = 1; });
            }
            tg.wait();
            return true;
        };
        bench_measure(B, "tbb", "us/task", 1, REPS, 120,
                      [&] { return per_task_us("tbb", run_producers(body)); });
    }

    {
        naive_pool pool;
        if (naive_pool_create(&pool, BENCH_WORKERS) == 0) {
            std::function<bool(int)> body = [&](int t) -> bool {
                for (size_t k = 0; k < PER_THREAD; k++) {
                    uintptr_t i = (uintptr_t)t * PER_THREAD + k;
                    if (naive_pool_submit(&pool, naive_task, (void *)i)) return false;
                }
                naive_pool_wait_all(&pool);
                return true;
            };
            bench_measure(B, "naive-pool", "us/task", 1, REPS, 180,
                          [&] { return per_task_us("naive-pool", run_producers(body)); });
            naive_pool_destroy(&pool);
        } else {
            bench_fail("naive_pool_create");
        }
    }

    const char *W = "weft-threads";
    bench_ratio(B, "tbb", W);
    bench_ratio(B, "naive-pool", W);
    free(g_done);
    return bench_finish();
}

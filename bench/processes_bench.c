/* processes_bench : the processes backend (2 worker processes) beside
 * Python's ProcessPoolExecutor(2) and joblib (loky, multiprocessing), in
 * one run. Pools are started outside the timed blocks.
 *
 *   submit_batch      N tasks submitted, then every result waited (us/task)
 *   submit_roundtrip  submit one task and wait for it, N times (us/task)
 *   map_empty         weft_map of N trivial items (us/item); Python:
 *                     ProcessPoolExecutor.map with chunksize 1000
 *   payload_64mib     one task gets 64 MiB and returns 64 MiB (each byte + 1);
 *                     GB/s of payload = 64 MiB / round-trip time (the bytes
 *                     travel both ways, counted once)
 *   cpu_speedup       16 CPU-bound tasks: serial time / processes time (x)
 * Systems: weft-processes, python-processpool, joblib-loky,
 * joblib-multiprocessing. Every run checks its results (sums, bytes).
 * Targets (issue 4): submit_batch <= 3 us, submit_roundtrip <= 20 us,
 * map_empty <= 0.2 us/item, payload_64mib >= 1 GB/s, cpu_speedup >= 1.85. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "weft.h"

#define REPS 5
#define N_BATCH 100000
#define N_ROUND 5000
#define N_MAP 2000000
#define PAYLOAD (64u << 20)
#define CPU_TASKS 16
#define CPU_WORK 40000000ull

static int ident(weft_ctx *ctx, const void *in, size_t len)
{
    (void)len;
    return weft_ctx_set_output(ctx, in, sizeof(int64_t));
}
WEFT_TASK_REGISTER(ident);

static int plus_one(weft_ctx *ctx, const void *in, size_t len)
{
    unsigned char *o = weft_ctx_output(ctx, len);
    if (!o) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output");
    const unsigned char *i = in;
    for (size_t k = 0; k < len; k++) o[k] = (unsigned char)(i[k] + 1);
    return 0;
}
WEFT_TASK_REGISTER(plus_one);

static uint64_t burn(uint64_t n)
{
    uint64_t x = 0;
    for (uint64_t i = 0; i < n; i++) x = (x * 6364136223846793005ull + 1442695040888963407ull) ^ i;
    return x;
}

static int burn_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    uint64_t r = burn(CPU_WORK);
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(burn_task);

static weft_executor *ex;

static int64_t result_i64(weft_future *f)
{
    const void *d;
    size_t n;
    int64_t v = -1;
    if (weft_future_result(f, WEFT_FOREVER, &d, &n) == 0 && n == sizeof v) memcpy(&v, d, sizeof v);
    return v;
}

static double run_batch(void)
{
    static weft_future *fs[N_BATCH];
    double t0 = bench_now();
    for (int64_t i = 0; i < N_BATCH; i++)
        if (weft_submit(ex, ident, &i, sizeof i, &fs[i])) return -1;
    int64_t sum = 0;
    for (int64_t i = 0; i < N_BATCH; i++) {
        sum += result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double t1 = bench_now();
    if (sum != (int64_t)N_BATCH * (N_BATCH - 1) / 2) {
        bench_fail("submit_batch: sum %lld", (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_BATCH * 1e6;
}

static double run_round(void)
{
    int64_t sum = 0;
    double t0 = bench_now();
    for (int64_t i = 0; i < N_ROUND; i++) {
        weft_future *f;
        if (weft_submit(ex, ident, &i, sizeof i, &f)) return -1;
        sum += result_i64(f);
        weft_future_release(f);
    }
    double t1 = bench_now();
    if (sum != (int64_t)N_ROUND * (N_ROUND - 1) / 2) {
        bench_fail("submit_roundtrip: sum %lld", (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_ROUND * 1e6;
}

static int64_t *map_in;

static double run_map(void)
{
    weft_results *r = NULL;
    double t0 = bench_now();
    int rc = weft_map(ex, ident, map_in, sizeof *map_in, N_MAP, NULL, &r);
    double t1 = bench_now();
    int64_t sum = 0;
    for (size_t i = 0; r && i < N_MAP; i++) {
        const void *d;
        size_t n;
        int64_t v;
        if (weft_results_get(r, i, &d, &n) == 0 && n == sizeof v) {
            memcpy(&v, d, sizeof v);
            sum += v;
        }
    }
    weft_results_destroy(r);
    if (rc || sum != (int64_t)N_MAP * (N_MAP - 1) / 2) {
        bench_fail("map_empty: rc %d sum %lld", rc, (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_MAP * 1e6;
}

static unsigned char *payload;

static double run_payload(void)
{
    weft_future *f;
    double t0 = bench_now();
    if (weft_submit_ex(ex, plus_one, payload, PAYLOAD,
                       &(weft_submit_options){.flags = WEFT_SUBMIT_BORROW}, &f))
        return -1;
    const void *d;
    size_t n;
    int rc = weft_future_result(f, WEFT_FOREVER, &d, &n);
    double t1 = bench_now();
    bool ok = rc == 0 && n == PAYLOAD;
    for (size_t k = 0; ok && k < PAYLOAD; k += 4099)
        ok = ((const unsigned char *)d)[k] == (unsigned char)(payload[k] + 1);
    weft_future_release(f);
    if (!ok) {
        bench_fail("payload_64mib: wrong bytes back (rc %d)", rc);
        return -1;
    }
    return PAYLOAD / (t1 - t0) / 1e9;
}

static double run_cpu(void)
{
    uint64_t expect = 0;
    double t0 = bench_now();
    for (int i = 0; i < CPU_TASKS; i++) expect += burn(CPU_WORK);
    double t1 = bench_now();
    weft_future *fs[CPU_TASKS];
    for (int i = 0; i < CPU_TASKS; i++)
        if (weft_submit(ex, burn_task, NULL, 0, &fs[i])) return -1;
    uint64_t got = 0;
    for (int i = 0; i < CPU_TASKS; i++) {
        got += (uint64_t)result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double t2 = bench_now();
    if (expect != got || expect == 0) {
        bench_fail("cpu_speedup: results differ");
        return -1;
    }
    return (t1 - t0) / (t2 - t1);
}

static void measure(const char *bench, const char *unit, double (*run)(void), int reps)
{
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=weft-processes", bench);
    bench_watchdog(300, what);
    double s[REPS];
    int k = 0;
    if (run() < 0) return; /* warm-up */
    for (int i = 0; i < reps; i++) {
        double v = run();
        if (v < 0) return;
        s[k++] = v;
    }
    alarm(0);
    bench_report(bench, "weft-processes", s, k, unit);
    bench_settle(100);
}

static void python(const char *bench, const char *system, const char *pysys, const char *mode,
                   long n, const char *unit)
{
    char args[128];
    snprintf(args, sizeof args, "%s %s %ld %d", pysys, mode, n, 3);
    bench_python_report(bench, system, unit, "processes_anchor.py", args, 600);
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) {
        fprintf(stderr, "weft_init: %s\n", weft_last_error());
        return 1;
    }
    bench_begin(argv[0], __FILE__);
    weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 2};
    if (weft_executor_create(&o, &ex)) {
        bench_fail("create: %s", weft_last_error());
        return bench_finish();
    }
    printf("# weft %s, processes backend, 2 worker processes\n", weft_version());
    map_in = malloc(N_MAP * sizeof *map_in);
    payload = malloc(PAYLOAD);
    if (!map_in || !payload) return 1;
    for (int64_t i = 0; i < N_MAP; i++) map_in[i] = i;
    for (size_t k = 0; k < PAYLOAD; k++) payload[k] = (unsigned char)(k * 7);

    measure("submit_batch", "us/task", run_batch, REPS);
    python("submit_batch", "python-processpool", "processpool", "batch", 20000, "us/task");
    python("submit_batch", "joblib-loky", "loky", "batch", 100000, "us/task");
    python("submit_batch", "joblib-multiprocessing", "multiprocessing", "batch", 100000, "us/task");
    measure("submit_roundtrip", "us/task", run_round, REPS);
    python("submit_roundtrip", "python-processpool", "processpool", "roundtrip", 2000, "us/task");
    measure("map_empty", "us/item", run_map, REPS);
    python("map_empty", "python-processpool", "processpool", "map", 1000000, "us/item");
    measure("payload_64mib", "GB/s", run_payload, REPS);
    python("payload_64mib", "python-processpool", "processpool", "payload", 64, "GB/s");
    measure("cpu_speedup", "x", run_cpu, 3);
    python("cpu_speedup", "python-processpool", "processpool", "cpu", 16, "x");
    python("cpu_speedup", "joblib-loky", "loky", "cpu", 16, "x");

    static const char *anchors[] = {"python-processpool", "joblib-loky", "joblib-multiprocessing"};
    static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty",
                                    "payload_64mib", "cpu_speedup"};
    for (size_t b = 0; b < sizeof benches / sizeof *benches; b++)
        for (size_t a = 0; a < 3; a++)
            if (bench_get(benches[b], anchors[a]))
                bench_ratio(benches[b], anchors[a], "weft-processes");
    const bench_result *r;
    r = bench_get("submit_batch", "weft-processes");
    bench_target("submit_batch: weft-processes <= 3 us/task", r != NULL, r && r->median <= 3);
    r = bench_get("submit_roundtrip", "weft-processes");
    bench_target("submit_roundtrip: weft-processes <= 20 us", r != NULL, r && r->median <= 20);
    r = bench_get("map_empty", "weft-processes");
    bench_target("map_empty: weft-processes <= 0.2 us/item", r != NULL, r && r->median <= 0.2);
    r = bench_get("payload_64mib", "weft-processes");
    bench_target("payload_64mib: weft-processes >= 1 GB/s", r != NULL, r && r->median >= 1);
    r = bench_get("cpu_speedup", "weft-processes");
    bench_target("cpu_speedup: weft-processes >= 1.85x", r != NULL, r && r->median >= 1.85);
    free(map_in);
    free(payload);
    weft_executor_destroy(ex);
    return bench_finish();
}

/* range_bench : range loops against oneTBB and OpenMP, in one run.
 *
 *   for_empty         a[i] = i over 100M int64 (800 MB, faulted in once
 *                     before the timed runs); ns/element
 *     weft-threads    weft_parallel_for, default (auto) partitioner
 *     tbb             tbb::parallel_for over a blocked_range (auto_partitioner)
 *     openmp          #pragma omp parallel for schedule(static)
 *   for_uneven        Mandelbrot, one body call per group of rows (rows in
 *                     the middle cost up to 100x those at the edge); ms
 *     weft-threads    weft_parallel_for, auto
 *     weft-processes  the same call on 2 worker processes, rows written to
 *                     a weft_shm region (the body is registered)
 *     tbb             tbb::parallel_for, one row per range (grain 1)
 *     openmp          schedule(dynamic, 1)
 *   reduce_sum        sum of 100M doubles; ns/element
 *     weft-threads    weft_parallel_reduce (fixed tree: the same bits on
 *                     every level and worker count, checked here against
 *                     the serial level)
 *     tbb             tbb::parallel_reduce
 *     openmp          reduction(+:s)
 *   memcpy_bandwidth  one memcpy of 64 MiB, one thread; GB/s (bytes copied)
 *
 * Every pool has 2 workers and is started and warmed outside the timed
 * blocks. Results are checked after each run, outside the timed block.
 * Medians of 3 runs (plus one warm-up), the systems of a row interleaved
 * (weft, tbb, openmp, weft, ...) so that a change of the machine's load
 * falls on all of them alike. */
#include <stdint.h>
#include <string.h>

#include <functional>
#include <omp.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <vector>

#include "bench.h"
#include "bench_weft.h"

static const int64_t N = 100000000;
static const int REPS = 3;

/* One system of a row: its name and one timed run (the sample, or < 0
 * after bench_fail). */
struct sys_run {
    const char *name;
    std::function<double()> run;
};

/* Runs the systems of one row interleaved -- a warm-up of each, then REPS
 * rounds of one run of each -- so that a change in the machine's load
 * (other people's jobs) falls on every system alike, then reports each. */
static void interleave(const char *bench, const char *unit, std::vector<sys_run> systems)
{
    char what[96];
    snprintf(what, sizeof what, "bench=%s (interleaved)", bench);
    bench_watchdog(300, what);
    std::vector<std::vector<double>> samples(systems.size());
    std::vector<bool> ok(systems.size(), true);
    for (int round = -1; round < REPS; round++)
        for (size_t k = 0; k < systems.size(); k++) {
            if (!ok[k]) continue;
            double v = systems[k].run();
            if (v < 0)
                ok[k] = false;
            else if (round >= 0)
                samples[k].push_back(v);
            bench_settle(50);
        }
    alarm(0);
    for (size_t k = 0; k < systems.size(); k++) {
        if (ok[k])
            bench_report(bench, systems[k].name, samples[k].data(), (int)samples[k].size(), unit);
        else
            bench_fail("%s system=%s: not reported (a run failed)", bench, systems[k].name);
    }
}

/* ---- for_empty ---- */

static int fill_body(int64_t lo, int64_t hi, void *arg)
{
    int64_t *a = (int64_t *)arg;
    for (int64_t i = lo; i < hi; i++) a[i] = i;
    return 0;
}

static bool check_fill(const char *sys, int64_t *a)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < N; i++) bad += a[i] != i;
    memset(a, 0, (size_t)N * sizeof *a); /* keeps the pages */
    if (bad) bench_fail("for_empty %s: %lld wrong elements", sys, (long long)bad);
    return bad == 0;
}

/* ---- for_uneven: Mandelbrot rows ---- */

static const int W = 600, H = 600, MAXIT = 1000;

static int mandel_row(int y, int32_t *row)
{
    double ci = -1.5 + 3.0 * y / H;
    int sum = 0;
    for (int x = 0; x < W; x++) {
        double cr = -2.2 + 3.2 * x / W, zr = 0, zi = 0;
        int it = 0;
        while (it < MAXIT && zr * zr + zi * zi <= 4.0) {
            double t = zr * zr - zi * zi + cr;
            zi = 2 * zr * zi + ci;
            zr = t;
            it++;
        }
        row[x] = it;
        sum += it;
    }
    return sum;
}

static int mandel_body(int64_t lo, int64_t hi, void *arg)
{
    int32_t *img = (int32_t *)arg;
    for (int64_t y = lo; y < hi; y++) mandel_row((int)y, img + y * W);
    return 0;
}

/* processes: the image is a weft_shm region; each worker attaches once */
typedef struct mandel_arg {
    weft_ipc_token tok;
} mandel_arg;

static int mandel_shm_body(int64_t lo, int64_t hi, void *arg)
{
    static weft_shm *s;
    static uint64_t key;
    const mandel_arg *a = (const mandel_arg *)arg;
    if (!s || key != a->tok.key) {
        if (s) weft_shm_destroy(s);
        s = NULL;
        int rc = weft_shm_attach(&a->tok, &s);
        if (rc) return rc;
        key = a->tok.key;
    }
    return mandel_body(lo, hi, weft_shm_ptr(s));
}
WEFT_RANGE_REGISTER(mandel_shm_body);

static int64_t img_sum(const int32_t *img)
{
    int64_t s = 0;
    for (int64_t i = 0; i < (int64_t)W * H; i++) s += img[i];
    return s;
}

/* ---- reduce_sum ---- */

static int sum_body(int64_t lo, int64_t hi, void *acc, void *arg)
{
    const double *x = (const double *)arg;
    double s = *(double *)acc;
    for (int64_t i = lo; i < hi; i++) s += x[i];
    *(double *)acc = s;
    return 0;
}

static void sum_combine(void *acc, const void *right, void *arg)
{
    (void)arg;
    *(double *)acc += *(const double *)right;
}

int main(int argc, char **argv)
{
    bench_weft_begin(&argc, &argv, __FILE__);
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, BENCH_WORKERS);
    printf("# the machine is shared: compare the ratios of one run, not the absolute figures\n");
    weft_executor *ex = bench_weft_create(WEFT_BACKEND_THREADS, BENCH_WORKERS);
    weft_executor *exp = bench_weft_create(WEFT_BACKEND_PROCESSES, BENCH_WORKERS);
    weft_executor *ser = bench_weft_create(WEFT_BACKEND_SERIAL, 1);
    if (!ex || !ser) return bench_finish();

    /* ---- memcpy_bandwidth ---- */
    {
        const size_t len = (size_t)64 << 20;
        std::vector<unsigned char> src(len, 1), dst(len, 0);
        bench_measure("memcpy_bandwidth", "memcpy", "GB/s", 1, 5, 60, [&]() -> double {
            src[len / 2]++;
            double t0 = bench_now();
            memcpy(dst.data(), src.data(), len);
            double t1 = bench_now();
            if (dst[len / 2] != src[len / 2]) {
                bench_fail("memcpy_bandwidth: copy wrong");
                return -1;
            }
            return (double)len / (t1 - t0) / 1e9;
        });
    }

    /* ---- for_empty ---- */
    {
        const char *B = "for_empty";
        std::vector<int64_t> av((size_t)N, 0); /* faulted in here */
        int64_t *a = av.data();
        std::vector<sys_run> sys;
        sys.push_back({"weft-threads", [&]() -> double {
                           double t0 = bench_now();
                           int rc = weft_parallel_for(ex, 0, N, fill_body, a, NULL);
                           double t1 = bench_now();
                           if (rc) {
                               bench_fail("for_empty: %s", weft_last_error());
                               return -1;
                           }
                           return check_fill("weft-threads", a) ? (t1 - t0) / (double)N * 1e9 : -1;
                       }});
        sys.push_back({"tbb", [&]() -> double {
                           double t0 = bench_now();
                           tbb::parallel_for(tbb::blocked_range<int64_t>(0, N),
                                             [&](const tbb::blocked_range<int64_t> &r) {
                                                 for (int64_t i = r.begin(); i != r.end(); ++i)
                                                     a[i] = i;
                                             });
                           double t1 = bench_now();
                           return check_fill("tbb", a) ? (t1 - t0) / (double)N * 1e9 : -1;
                       }});
        sys.push_back({"openmp", [&]() -> double {
                           double t0 = bench_now();
#pragma omp parallel for schedule(static) num_threads(BENCH_WORKERS)
                           for (int64_t i = 0; i < N; i++) a[i] = i;
                           double t1 = bench_now();
                           return check_fill("openmp", a) ? (t1 - t0) / (double)N * 1e9 : -1;
                       }});
        interleave(B, "ns/elem", sys);
    }

    /* ---- for_uneven ---- */
    {
        const char *B = "for_uneven";
        std::vector<int32_t> ref((size_t)W * H), img((size_t)W * H);
        mandel_body(0, H, ref.data());
        const int64_t want = img_sum(ref.data());
        auto check = [&](const char *sys, int32_t *im) {
            bool ok = memcmp(im, ref.data(), (size_t)W * H * sizeof *im) == 0;
            if (!ok)
                bench_fail("for_uneven %s: image differs (sum %lld, want %lld)", sys,
                           (long long)img_sum(im), (long long)want);
            memset(im, 0, (size_t)W * H * sizeof *im);
            return ok;
        };
        int32_t *im = img.data();
        std::vector<sys_run> sys;
        sys.push_back({"weft-threads", [&]() -> double {
                           double t0 = bench_now();
                           int rc = weft_parallel_for(ex, 0, H, mandel_body, im, NULL);
                           double t1 = bench_now();
                           if (rc) {
                               bench_fail("for_uneven: %s", weft_last_error());
                               return -1;
                           }
                           return check("weft-threads", im) ? (t1 - t0) * 1e3 : -1;
                       }});
        weft_shm *shm = NULL;
        mandel_arg ma;
        weft_range_options o;
        memset(&o, 0, sizeof o);
        o.arg_size = sizeof ma;
        if (exp && weft_shm_create((size_t)W * H * sizeof(int32_t), &shm) == 0) {
            weft_shm_token(shm, &ma.tok);
            int32_t *sim = (int32_t *)weft_shm_ptr(shm);
            sys.push_back({"weft-processes", [&, sim]() -> double {
                               double t0 = bench_now();
                               int rc = weft_parallel_for(exp, 0, H, mandel_shm_body, &ma, &o);
                               double t1 = bench_now();
                               if (rc) {
                                   bench_fail("for_uneven processes: %s", weft_last_error());
                                   return -1;
                               }
                               return check("weft-processes", sim) ? (t1 - t0) * 1e3 : -1;
                           }});
        } else {
            bench_skip(B, "weft-processes", "no processes executor or shm");
        }
        sys.push_back({"tbb", [&]() -> double {
                           double t0 = bench_now();
                           tbb::parallel_for(tbb::blocked_range<int>(0, H, 1),
                                             [&](const tbb::blocked_range<int> &r) {
                                                 for (int y = r.begin(); y != r.end(); ++y)
                                                     mandel_row(y, im + (int64_t)y * W);
                                             });
                           double t1 = bench_now();
                           return check("tbb", im) ? (t1 - t0) * 1e3 : -1;
                       }});
        sys.push_back({"openmp", [&]() -> double {
                           double t0 = bench_now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(BENCH_WORKERS)
                           for (int y = 0; y < H; y++) mandel_row(y, im + (int64_t)y * W);
                           double t1 = bench_now();
                           return check("openmp", im) ? (t1 - t0) * 1e3 : -1;
                       }});
        interleave(B, "ms", sys);
        if (shm) weft_shm_destroy(shm);
    }

    /* ---- reduce_sum ---- */
    {
        const char *B = "reduce_sum";
        std::vector<double> xv((size_t)N);
        for (int64_t i = 0; i < N; i++) xv[(size_t)i] = 1.0 / (double)(i % 1000 + 1);
        double *x = xv.data();
        std::vector<sys_run> sys;
        double zero = 0.0, serial_bits = 0.0;
        if (weft_parallel_reduce(ser, 0, N, &zero, sizeof zero, sum_body, sum_combine, x, NULL,
                                 &serial_bits))
            bench_fail("reduce_sum serial: %s", weft_last_error());
        double plain = 0.0;
        for (int64_t i = 0; i < N; i++) plain += x[i];
        auto close = [&](const char *sys, double s) {
            bool ok = s > plain * (1 - 1e-9) && s < plain * (1 + 1e-9);
            if (!ok) bench_fail("reduce_sum %s: %.17g, want about %.17g", sys, s, plain);
            return ok;
        };
        sys.push_back(
            {"weft-threads", [&]() -> double {
                 double s = 0.0;
                 double t0 = bench_now();
                 int rc = weft_parallel_reduce(ex, 0, N, &zero, sizeof zero, sum_body, sum_combine,
                                               x, NULL, &s);
                 double t1 = bench_now();
                 if (rc) {
                     bench_fail("reduce_sum: %s", weft_last_error());
                     return -1;
                 }
                 if (memcmp(&s, &serial_bits, sizeof s) != 0) {
                     bench_fail("reduce_sum: threads %.17g differs in its bits from serial %.17g",
                                s, serial_bits);
                     return -1;
                 }
                 return close("weft-threads", s) ? (t1 - t0) / (double)N * 1e9 : -1;
             }});
        sys.push_back({"tbb", [&]() -> double {
                           double t0 = bench_now();
                           double s = tbb::parallel_reduce(
                               tbb::blocked_range<int64_t>(0, N), 0.0,
                               [&](const tbb::blocked_range<int64_t> &r, double acc) {
                                   for (int64_t i = r.begin(); i != r.end(); ++i) acc += x[i];
                                   return acc;
                               },
                               [](double l, double r) { return l + r; });
                           double t1 = bench_now();
                           return close("tbb", s) ? (t1 - t0) / (double)N * 1e9 : -1;
                       }});
        sys.push_back({"openmp", [&]() -> double {
                           double s = 0.0;
                           double t0 = bench_now();
#pragma omp parallel for schedule(static) reduction(+ : s) num_threads(BENCH_WORKERS)
                           for (int64_t i = 0; i < N; i++) s += x[i];
                           double t1 = bench_now();
                           return close("openmp", s) ? (t1 - t0) / (double)N * 1e9 : -1;
                       }});
        interleave(B, "ns/elem", sys);
        printf("# reduce_sum: weft's sum %.17g has the same bits on serial and threads "
               "(plain left-to-right sum %.17g)\n",
               serial_bits, plain);
    }

    const char *Wt = "weft-threads";
    for (const char *b : {"for_empty", "for_uneven", "reduce_sum"}) {
        bench_ratio(b, "tbb", Wt);
        bench_ratio(b, "openmp", Wt);
    }
    bench_ratio("for_uneven", "weft-processes", Wt);
    auto best = [](const char *b) {
        const bench_result *t = bench_get(b, "tbb"), *o = bench_get(b, "openmp");
        if (!t) return o ? o->median : 0.0;
        if (!o) return t->median;
        return t->median < o->median ? t->median : o->median;
    };
    const bench_result *fe = bench_get("for_empty", Wt), *rs = bench_get("reduce_sum", Wt),
                       *fu = bench_get("for_uneven", Wt),
                       *fp = bench_get("for_uneven", "weft-processes");
    bench_target("for_empty: weft-threads within 1.2x of the faster of TBB and OpenMP",
                 fe && best("for_empty") > 0, fe && fe->median <= 1.2 * best("for_empty"));
    bench_target("reduce_sum: weft-threads within 1.2x of the faster of TBB and OpenMP",
                 rs && best("reduce_sum") > 0, rs && rs->median <= 1.2 * best("reduce_sum"));
    bench_target("for_uneven: weft-threads no slower than TBB nor OpenMP",
                 fu && best("for_uneven") > 0, fu && fu->median <= best("for_uneven"));
    bench_target("for_uneven: weft-processes within 1.5x of weft-threads", fu && fp,
                 fu && fp && fp->median <= 1.5 * fu->median);
    bench_weft_destroy(ex);
    bench_weft_destroy(exp);
    bench_weft_destroy(ser);
    return bench_finish();
}

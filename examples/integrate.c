/* integrate.c : the integral of 4 / (1 + x^2) over [0, 1] (= pi) by the
 * midpoint rule with 100M intervals, as a deterministic weft_parallel_reduce.
 *
 * The partial sums are combined in a fixed tree that depends only on the
 * number of intervals, so the result has the same bits on every level and
 * every worker count: run it with WEFT_BACKEND=serial, threads, processes,
 * WEFT_WORKERS=1..4, or under mpirun, and compare the printed bits. (A
 * plain OpenMP `reduction(+:s)` or TBB parallel_reduce does not promise
 * that.) */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

typedef struct integrand {
    int64_t n; /* intervals */
} integrand;

static int midpoints(int64_t lo, int64_t hi, void *acc, void *arg)
{
    const integrand *p = arg;
    double h = 1.0 / (double)p->n, s = *(double *)acc;
    for (int64_t i = lo; i < hi; i++) {
        double x = ((double)i + 0.5) * h;
        s += 4.0 / (1.0 + x * x);
    }
    *(double *)acc = s;
    return 0;
}

static void add(void *acc, const void *right, void *arg)
{
    (void)arg;
    *(double *)acc += *(const double *)right;
}
WEFT_RANGE_REGISTER_REDUCE(midpoints, add);

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv) != 0) return 1;
    weft_executor *ex = NULL;
    if (weft_executor_create(NULL, &ex) != 0) { /* WEFT_BACKEND, WEFT_WORKERS pick the level */
        fprintf(stderr, "integrate: %s\n", weft_last_error());
        return 1;
    }
    integrand p = {100000000};
    weft_range_options o = {.arg_size = sizeof p};
    double zero = 0.0, sum = 0.0;
    double t0 = weft_now();
    int rc = weft_parallel_reduce(ex, 0, p.n, &zero, sizeof zero, midpoints, add, &p, &o, &sum);
    double t1 = weft_now();
    if (rc) {
        fprintf(stderr, "integrate: %s\n", weft_last_error());
        weft_executor_destroy(ex);
        return 1;
    }
    double pi = sum / (double)p.n;
    uint64_t bits;
    memcpy(&bits, &pi, sizeof bits);
    printf("pi ~ %.17g  bits 0x%016" PRIx64 "  error %.3g  (%s, %d workers, %.1f ms)\n", pi, bits,
           pi - 3.14159265358979323846, weft_backend_name(weft_executor_backend(ex)),
           weft_executor_workers(ex), (t1 - t0) * 1e3);
    weft_executor_destroy(ex);
    return 0;
}

/* batch.c : joblib's Parallel(n_jobs)(delayed(f)(x) for x in xs), in C.
 *
 *     from math import sqrt
 *     from joblib import Parallel, delayed
 *     Parallel(n_jobs=-1)(delayed(sqrt)(i ** 2) for i in range(10))
 *
 * becomes a list of weft_call {task, input} run by weft_parallel with the
 * same n_jobs (-1 all CPUs, -2 all but one, 1 serial); results come back in
 * call order, as weft_map's. Calls may name different tasks. Run with
 * WEFT_PROGRESS=1 to see a progress bar on stderr.
 *
 * Usage: batch [N_JOBS]     (default -1). Exit status 0, 1 on a wrong result. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

static int root(weft_ctx *ctx, const void *in, size_t len)
{
    double x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "root: %zu bytes", len);
    memcpy(&x, in, sizeof x);
    x = sqrt(x);
    return weft_ctx_set_output(ctx, &x, sizeof x);
}
WEFT_TASK_REGISTER(root);

static int cube(weft_ctx *ctx, const void *in, size_t len)
{
    double x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "cube: %zu bytes", len);
    memcpy(&x, in, sizeof x);
    x = x * x * x;
    return weft_ctx_set_output(ctx, &x, sizeof x);
}
WEFT_TASK_REGISTER(cube);

int main(int argc, char **argv)
{
    weft_init(&argc, &argv);
    int n_jobs = argc > 1 ? atoi(argv[1]) : -1;
    int workers;
    weft_n_jobs_workers(n_jobs, &workers);

    /* Parallel(n_jobs)(delayed(sqrt)(i ** 2) for i in range(10)) */
    double xs[10];
    weft_call calls[10];
    for (int i = 0; i < 10; i++) {
        xs[i] = (double)(i * i);
        calls[i] = (weft_call){root, &xs[i], sizeof xs[i]};
    }
    weft_parallel_options o = {.n_jobs = n_jobs};
    weft_results *r;
    int rc = weft_parallel(calls, 10, &o, &r);
    if (rc) {
        fprintf(stderr, "batch: %s (%s)\n", weft_strerror(rc), weft_last_error());
        return 1;
    }
    int status = 0;
    printf("n_jobs=%d (%d workers):", n_jobs, workers);
    for (size_t i = 0; i < weft_results_count(r); i++) {
        const void *d;
        double v;
        weft_results_get(r, i, &d, NULL);
        memcpy(&v, d, sizeof v);
        printf(" %g", v);
        if (v != (double)i) status = 1;
    }
    printf("\n");
    weft_results_destroy(r);

    /* heterogeneous calls: every other one cubes instead */
    for (int i = 0; i < 10; i++) calls[i].fn = i % 2 ? cube : root;
    if ((rc = weft_parallel(calls, 10, &o, &r))) {
        fprintf(stderr, "batch: %s (%s)\n", weft_strerror(rc), weft_last_error());
        return 1;
    }
    printf("mixed:");
    for (size_t i = 0; i < weft_results_count(r); i++) {
        const void *d;
        double v;
        weft_results_get(r, i, &d, NULL);
        memcpy(&v, d, sizeof v);
        printf(" %g", v);
        if (v != (i % 2 ? xs[i] * xs[i] * xs[i] : (double)i)) status = 1;
    }
    printf("\n");
    weft_results_destroy(r);
    return status;
}

/* correlate.c : the teaching notebook's pairwise correlation, as a task graph.
 *
 * Load N series, correlate every pair, keep the most correlated pair:
 *
 *     load(0) ... load(N-1)               N nodes (here: generated random walks)
 *     corr(load(i), load(j)) for i < j    N(N-1)/2 nodes
 *     best(corr..., corr...)              a tree of maxima, 16 inputs per node
 *
 * which is what the notebook wrote with dask.delayed. Nothing runs while the
 * graph is built; weft_graph_compute then runs it on any backend, as many
 * nodes at once as dependencies allow, and frees each series once the last
 * correlation that reads it has run. Two series are planted as near copies,
 * so the answer is known; the program checks it against a plain loop.
 *
 * Usage: correlate [--series N] [--length L] [--backend NAME] [--dot FILE]
 *                  [--svg FILE]
 *   --dot FILE  write the graph (after the compute: states and durations)
 *   --svg FILE  write the task-stream picture of the run
 * WEFT_PROGRESS=1 shows a progress bar. Exit status 0, 1 on a wrong answer
 * or an error, 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define PLANT_A 3
#define PLANT_B 17

typedef struct load_in {
    uint32_t index, length;
} load_in;

typedef struct pair_best {
    double r;
    int32_t i, j;
} pair_best;

/* A random walk of `length` doubles; series PLANT_B copies PLANT_A plus a
 * little noise. */
static void make_series(uint32_t index, uint32_t length, double *out)
{
    weft_rng rng;
    weft_rng_seed(&rng, 1000 + (index == PLANT_B ? PLANT_A : index));
    double x = 0;
    for (uint32_t k = 0; k < length; k++) {
        x += weft_rng_double(&rng) - 0.5;
        out[k] = x;
    }
    if (index == PLANT_B) {
        weft_rng_seed(&rng, 99);
        for (uint32_t k = 0; k < length; k++) out[k] += 0.3 * (weft_rng_double(&rng) - 0.5);
    }
}

static int load(weft_ctx *ctx, const void *in, size_t len)
{
    load_in a;
    const void *d;
    size_t l;
    int rc = weft_args_get(in, len, 0, &d, &l);
    if (rc || l != sizeof a) return weft_ctx_fail(ctx, WEFT_EINVAL, "load: bad argument");
    memcpy(&a, d, sizeof a);
    double *out = weft_ctx_output(ctx, (size_t)a.length * sizeof(double));
    if (!out) return WEFT_ENOMEM;
    make_series(a.index, a.length, out);
    return 0;
}
WEFT_TASK_REGISTER(load);

static double pearson(const double *x, const double *y, size_t n)
{
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t k = 0; k < n; k++) {
        sx += x[k];
        sy += y[k];
        sxx += x[k] * x[k];
        syy += y[k] * y[k];
        sxy += x[k] * y[k];
    }
    double cov = sxy - sx * sy / (double)n;
    double vx = sxx - sx * sx / (double)n, vy = syy - sy * sy / (double)n;
    return vx > 0 && vy > 0 ? cov / sqrt(vx * vy) : 0;
}

/* corr(series_i, series_j, (i, j)) */
static int corr(weft_ctx *ctx, const void *in, size_t len)
{
    const void *x, *y, *ij;
    size_t lx, ly, lij;
    if (weft_args_get(in, len, 0, &x, &lx) || weft_args_get(in, len, 1, &y, &ly) ||
        weft_args_get(in, len, 2, &ij, &lij) || lx != ly || lij != 2 * sizeof(int32_t))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "corr: bad arguments");
    size_t n = lx / sizeof(double);
    double *a = malloc(lx), *b = malloc(ly); /* copies: inputs have no alignment promise */
    if (!a || !b) {
        free(a);
        free(b);
        return WEFT_ENOMEM;
    }
    memcpy(a, x, lx);
    memcpy(b, y, ly);
    pair_best p;
    p.r = fabs(pearson(a, b, n));
    memcpy(&p.i, ij, 2 * sizeof(int32_t));
    free(a);
    free(b);
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(corr);

/* best(p...): the pair with the largest |r| */
static int best(weft_ctx *ctx, const void *in, size_t len)
{
    size_t n;
    int rc = weft_args_count(in, len, &n);
    if (rc) return weft_ctx_fail(ctx, rc, "best: %s", weft_last_error());
    pair_best top = {-1, -1, -1};
    for (size_t k = 0; k < n; k++) {
        const void *d;
        size_t l;
        pair_best p;
        if (weft_args_get(in, len, k, &d, &l) || l != sizeof p)
            return weft_ctx_fail(ctx, WEFT_EINVAL, "best: bad argument %zu", k);
        memcpy(&p, d, sizeof p);
        if (p.r > top.r) top = p;
    }
    return weft_ctx_set_output(ctx, &top, sizeof top);
}
WEFT_TASK_REGISTER(best);

static int fail(const char *what, int rc)
{
    fprintf(stderr, "correlate: %s: %s (%s)\n", what, weft_strerror(rc), weft_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    uint32_t nseries = 24, length = 20000;
    const char *dot = NULL, *svg = NULL;
    weft_backend backend = WEFT_BACKEND_DEFAULT;
    weft_init(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--series") && i + 1 < argc)
            nseries = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--length") && i + 1 < argc)
            length = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            if (weft_backend_parse(argv[++i], &backend)) return fail("--backend", WEFT_EINVAL);
        } else if (!strcmp(argv[i], "--dot") && i + 1 < argc)
            dot = argv[++i];
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc)
            svg = argv[++i];
        else {
            fprintf(stderr, "usage: correlate [--series N] [--length L] [--backend NAME] "
                            "[--dot FILE] [--svg FILE]\n");
            return 2;
        }
    }
    if (nseries <= PLANT_B || length < 2) {
        fprintf(stderr, "correlate: need at least %d series of 2 values\n", PLANT_B + 1);
        return 2;
    }

    weft_options eo = {.backend = backend};
    weft_executor *ex;
    int rc = weft_executor_create(&eo, &ex);
    if (rc) return fail("executor", rc);
    if (svg) weft_trace_enable(ex);

    /* build: nothing runs yet */
    weft_graph *g;
    if ((rc = weft_graph_create(NULL, &g))) return fail("graph", rc);
    weft_node *series = malloc(nseries * sizeof *series);
    size_t npairs = (size_t)nseries * (nseries - 1) / 2;
    weft_node *level = malloc(npairs * sizeof *level);
    if (!series || !level) return fail("memory", WEFT_ENOMEM);
    for (uint32_t i = 0; i < nseries && !rc; i++) {
        load_in a = {i, length};
        weft_arg arg = weft_arg_bytes(&a, sizeof a);
        rc = weft_graph_call(g, load, &arg, 1, &series[i]);
    }
    size_t n = 0;
    for (uint32_t i = 0; i < nseries && !rc; i++) {
        for (uint32_t j = i + 1; j < nseries && !rc; j++) {
            int32_t ij[2] = {(int32_t)i, (int32_t)j};
            weft_arg args[3] = {weft_arg_node(series[i]), weft_arg_node(series[j]),
                                weft_arg_bytes(ij, sizeof ij)};
            rc = weft_graph_call(g, corr, args, 3, &level[n++]);
        }
    }
    while (!rc && n > 1) { /* a tree of maxima, 16 inputs per node */
        size_t m = 0;
        for (size_t k = 0; k < n && !rc; k += 16) {
            weft_arg args[16];
            size_t c = n - k < 16 ? n - k : 16;
            for (size_t q = 0; q < c; q++) args[q] = weft_arg_node(level[k + q]);
            rc = weft_graph_call(g, best, args, c, &level[m++]);
        }
        n = m;
    }
    if (rc) return fail("building the graph", rc);
    printf("graph: %zu nodes (%u loads, %zu correlations, %zu maxima), nothing run yet\n",
           weft_graph_size(g), nseries, npairs, weft_graph_size(g) - nseries - npairs);

    /* compute: only the root is a target; every series is freed after use */
    double t0 = weft_now();
    rc = weft_graph_compute(g, ex, &level[0], 1, NULL);
    double wall = weft_now() - t0;
    if (rc) return fail("compute", rc);
    const void *d;
    size_t l;
    pair_best got;
    if ((rc = weft_graph_result(g, level[0], &d, &l)) || l != sizeof got)
        return fail("result", rc ? rc : WEFT_ETASK);
    memcpy(&got, d, sizeof got);
    weft_graph_stats st;
    weft_graph_stats_get(g, &st);
    printf("%s, %d workers: %.3f s; most correlated: series %d and %d, |r| = %.6f\n",
           weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex), wall, got.i,
           got.j, got.r);
    printf("memory: peak %.1f MB of outputs held at once, of %.1f MB loaded in all\n",
           (double)st.bytes_peak / 1e6, (double)nseries * length * sizeof(double) / 1e6);

    /* the plain loop, as a check */
    double *x = malloc((size_t)length * sizeof *x), *y = malloc((size_t)length * sizeof *y);
    pair_best want = {-1, -1, -1};
    for (uint32_t i = 0; x && y && i < nseries; i++) {
        make_series(i, length, x);
        for (uint32_t j = i + 1; j < nseries; j++) {
            make_series(j, length, y);
            double r = fabs(pearson(x, y, length));
            if (r > want.r) want = (pair_best){r, (int32_t)i, (int32_t)j};
        }
    }
    free(x);
    free(y);
    int status = 0;
    if (want.i != got.i || want.j != got.j || fabs(want.r - got.r) > 1e-12) {
        fprintf(stderr, "correlate: WRONG: the loop says %d and %d, |r| = %.6f\n", want.i, want.j,
                want.r);
        status = 1;
    } else {
        printf("check: the plain loop agrees\n");
    }
    if (dot) {
        if ((rc = weft_graph_write_dot(g, dot))) return fail("--dot", rc);
        printf("wrote %s (dot -Tsvg %s -o graph.svg)\n", dot, dot);
    }
    if (svg) {
        if ((rc = weft_trace_write_svg(ex, svg, NULL))) return fail("--svg", rc);
        printf("wrote %s\n", svg);
    }
    weft_graph_destroy(g);
    free(series);
    free(level);
    weft_executor_destroy(ex);
    return status;
}

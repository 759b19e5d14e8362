/* bag_correlate.c : the teaching notebook's correlation search as the bag
 * pipeline it shows with dask.bag:
 *
 *     b = db.from_sequence(range(n))
 *     b.product(b).filter(lambda ij: ij[0] < ij[1])
 *                 .map(lambda ij: (corr(data[ij[0]], data[ij[1]]), ij)).max()
 *
 * Here: weft_bag_range -> weft_bag_product -> weft_bag_filter (i < j) ->
 * weft_bag_map (the correlation of the two series, made from their index as
 * the notebook's loader would) -> weft_bag_topk(k = 1), the max. Two series
 * are planted as near copies; the answer is checked against a plain loop.
 *
 * Usage: bag_correlate [--series N] [--length L] [--backend NAME]
 * Exit status 0, 1 on a wrong answer or an error, 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define PLANT_A 3
#define PLANT_B 17

typedef struct corr_rec {
    double r;
    int64_t i, j;
} corr_rec;

/* A random walk; series PLANT_B copies PLANT_A plus a little noise. */
static void make_series(int64_t index, size_t length, double *out)
{
    weft_rng rng;
    weft_rng_seed(&rng, 1000 + (uint64_t)(index == PLANT_B ? PLANT_A : index));
    double x = 0;
    for (size_t k = 0; k < length; k++) {
        x += weft_rng_double(&rng) - 0.5;
        out[k] = x;
    }
    if (index == PLANT_B) {
        weft_rng_seed(&rng, 99);
        for (size_t k = 0; k < length; k++) out[k] += 0.3 * (weft_rng_double(&rng) - 0.5);
    }
}

static double corr(const double *a, const double *b, size_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t k = 0; k < n; k++) ma += a[k], mb += b[k];
    ma /= (double)n;
    mb /= (double)n;
    for (size_t k = 0; k < n; k++) {
        sab += (a[k] - ma) * (b[k] - mb);
        saa += (a[k] - ma) * (a[k] - ma);
        sbb += (b[k] - mb) * (b[k] - mb);
    }
    return sab / sqrt(saa * sbb);
}

/* filter: a pair (i, j) with i < j */
static int upper(const void *rec, size_t len, const void *arg, size_t alen)
{
    (void)arg, (void)alen;
    const void *k, *v;
    size_t kl, vl;
    if (weft_bag_pair_get(rec, len, &k, &kl, &v, &vl) || kl != 8 || vl != 8) return WEFT_EINVAL;
    int64_t i, j;
    memcpy(&i, k, 8);
    memcpy(&j, v, 8);
    return i < j;
}
WEFT_BAG_FN(upper);

/* map: (i, j) -> {corr(series i, series j), i, j}; the length is the arg */
static int correlate(const void *rec, size_t len, const void *arg, size_t alen, weft_bag_emit *out)
{
    const void *k, *v;
    size_t kl, vl, length;
    if (alen != sizeof length) return WEFT_EINVAL;
    memcpy(&length, arg, sizeof length);
    weft_bag_pair_get(rec, len, &k, &kl, &v, &vl);
    corr_rec c;
    memcpy(&c.i, k, 8);
    memcpy(&c.j, v, 8);
    double *a = malloc(2 * length * sizeof *a);
    if (!a) return WEFT_ENOMEM;
    make_series(c.i, length, a);
    make_series(c.j, length, a + length);
    c.r = corr(a, a + length, length);
    free(a);
    return weft_bag_emit_rec(out, &c, sizeof c);
}
WEFT_BAG_FN(correlate);

/* the order of max(): by r */
static int by_r(const void *a, size_t al, const void *b, size_t bl, const void *arg, size_t alen)
{
    (void)al, (void)bl, (void)arg, (void)alen;
    corr_rec x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x.r < y.r ? -1 : x.r > y.r;
}
WEFT_BAG_FN(by_r);

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) {
        fprintf(stderr, "weft_init: %s\n", weft_last_error());
        return 1;
    }
    int64_t n = 40;
    size_t length = 2000;
    weft_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--series") && i + 1 < argc)
            n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--length") && i + 1 < argc)
            length = (size_t)atoll(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            if (weft_backend_parse(argv[++i], &o.backend)) {
                fprintf(stderr, "unknown backend '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--series N] [--length L] [--backend NAME]\n", argv[0]);
            return 2;
        }
    }
    if (n <= PLANT_B || length < 2) {
        fprintf(stderr, "need more than %d series of at least 2 values\n", PLANT_B);
        return 2;
    }
    weft_executor *ex;
    if (weft_executor_create(&o, &ex)) {
        fprintf(stderr, "executor: %s\n", weft_last_error());
        return 1;
    }
    weft_bag *idx = NULL, *pairs = NULL, *up = NULL, *cs = NULL;
    weft_bag_records *best = NULL;
    weft_bag_topk_options to = {.key = WEFT_BAG_KEY_CMP, .cmp = by_r};
    double t0 = weft_now();
    int rc = weft_bag_range(0, n, 1, 4, &idx);
    if (!rc) rc = weft_bag_product(idx, idx, &pairs);
    if (!rc) rc = weft_bag_filter(pairs, upper, NULL, 0, &up);
    if (!rc) rc = weft_bag_map(up, correlate, &length, sizeof length, &cs);
    if (!rc) rc = weft_bag_topk(cs, ex, 1, &to, &best); /* max() */
    double t1 = weft_now();
    int status = 0;
    if (rc) {
        fprintf(stderr, "bag_correlate: %s\n", weft_last_error());
        status = 1;
    } else {
        const void *d;
        size_t l;
        corr_rec c;
        weft_bag_records_get(best, 0, &d, &l);
        memcpy(&c, d, sizeof c);
        /* the plain loop */
        double *s = malloc((size_t)n * length * sizeof *s);
        corr_rec ref = {-2, 0, 0};
        for (int64_t i = 0; s && i < n; i++) make_series(i, length, s + (size_t)i * length);
        for (int64_t i = 0; s && i < n; i++)
            for (int64_t j = i + 1; j < n; j++) {
                double r = corr(s + (size_t)i * length, s + (size_t)j * length, length);
                if (r > ref.r) ref = (corr_rec){r, i, j};
            }
        free(s);
        printf("%s: %lld series of %zu: best pair (%lld, %lld), r = %.6f in %.3f s; loop: (%lld, "
               "%lld) r = %.6f\n",
               weft_backend_name(weft_executor_backend(ex)), (long long)n, length, (long long)c.i,
               (long long)c.j, c.r, t1 - t0, (long long)ref.i, (long long)ref.j, ref.r);
        if (c.i != ref.i || c.j != ref.j || c.r != ref.r || c.i != PLANT_A || c.j != PLANT_B) {
            fprintf(stderr, "bag_correlate: WRONG answer\n");
            status = 1;
        }
    }
    weft_bag_records_destroy(best);
    weft_bag_release(cs);
    weft_bag_release(up);
    weft_bag_release(pairs);
    weft_bag_release(idx);
    weft_executor_destroy(ex);
    return status;
}

/* bag_median.c : the exact median of many doubles in parallel -- the
 * tutorial's "no median function in parallel, very difficult to do".
 *
 * N doubles come from a generator bag (normal-ish values: the sum of four
 * uniforms, so many share their top bits); weft_bag_median narrows their
 * order-preserving 64-bit keys 16 bits per pass with per-partition
 * histograms merged in a tree, then selects in the last small bucket:
 * a few passes over the data, no sort, no gathering. For N up to 20M the
 * answer is checked against a quickselect over the same values in memory.
 *
 * Usage: bag_median [N] [--backend NAME]  (N default 10,000,000; 100000000
 * for the 100M, which is not checked in memory)
 * Exit status 0, 1 on a wrong answer or an error, 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define PARTS 32

static double value(weft_rng *r)
{
    return weft_rng_double(r) + weft_rng_double(r) + weft_rng_double(r) + weft_rng_double(r);
}

static int gen(uint64_t part, uint64_t nparts, const void *arg, size_t alen, weft_bag_emit *out)
{
    uint64_t n;
    if (alen != 8) return WEFT_EINVAL;
    memcpy(&n, arg, 8);
    uint64_t lo = n * part / nparts, hi = n * (part + 1) / nparts;
    weft_rng rng;
    weft_rng_seed(&rng, 11 + part);
    for (uint64_t i = lo; i < hi; i++) {
        int rc = weft_bag_emit_double(out, value(&rng));
        if (rc) return rc;
    }
    return 0;
}
WEFT_BAG_FN(gen);

/* k-th smallest of v[0..n) (Hoare's quickselect, middle pivot) */
static double kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double p = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        for (;;) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i >= j) break;
            double t = v[i];
            v[i++] = v[j];
            v[j--] = t;
        }
        if (k <= j)
            hi = j;
        else
            lo = j + 1;
    }
    return v[k];
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1;
    uint64_t n = 10000000;
    weft_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            if (weft_backend_parse(argv[++i], &o.backend)) return 2;
        } else if (atoll(argv[i]) > 0) {
            n = (uint64_t)atoll(argv[i]);
        } else {
            fprintf(stderr, "usage: %s [N] [--backend NAME]\n", argv[0]);
            return 2;
        }
    }
    weft_executor *ex;
    if (weft_executor_create(&o, &ex)) return 1;
    weft_bag *b;
    double med = 0, q[3], qs[] = {0.01, 0.5, 0.99};
    int rc = weft_bag_from_generator(gen, &n, 8, PARTS, &b);
    double t0 = weft_now();
    if (!rc) rc = weft_bag_median(b, ex, NULL, &med);
    double t1 = weft_now();
    if (!rc) rc = weft_bag_quantiles(b, ex, qs, 3, NULL, q);
    double t2 = weft_now();
    int status = 0;
    if (rc) {
        fprintf(stderr, "bag_median: %s\n", weft_last_error());
        status = 1;
    } else {
        printf("%s: %llu doubles: median %.17g in %.3f s; quantiles 1%%, 50%%, 99%%: %.6f %.6f "
               "%.6f in %.3f s\n",
               weft_backend_name(weft_executor_backend(ex)), (unsigned long long)n, med, t1 - t0,
               q[0], q[1], q[2], t2 - t1);
        if (n <= 20000000) {
            double *v = malloc(n * sizeof *v);
            if (v) {
                for (uint64_t p = 0; p < PARTS; p++) {
                    weft_rng rng;
                    weft_rng_seed(&rng, 11 + p);
                    for (uint64_t i = n * p / PARTS; i < n * (p + 1) / PARTS; i++)
                        v[i] = value(&rng);
                }
                double t3 = weft_now();
                double a = kth(v, n, (n - 1) / 2), c = n % 2 ? a : kth(v, n, n / 2);
                double ref = n % 2 ? a : (a + c) / 2;
                printf("in memory, one core: quickselect median %.17g in %.3f s\n", ref,
                       weft_now() - t3);
                if (ref != med) {
                    fprintf(stderr, "bag_median: WRONG answer\n");
                    status = 1;
                }
                free(v);
            }
        }
    }
    weft_bag_release(b);
    weft_executor_destroy(ex);
    return status;
}

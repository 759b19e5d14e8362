/* bag_topk.c : Spark's top(5) without a sort, beside sortBy(...).take(5).
 *
 * N pseudo-random doubles come from a generator bag (each partition makes
 * its own, seeded by its index); weft_bag_topk keeps a bounded heap of k per
 * partition and merges the partitions' k-lists -- O(n log k) work and O(k)
 * memory per task. The same values are then gathered and sorted in full
 * (what sortBy + take does) and the two answers compared.
 *
 * Usage: bag_topk [N] [--backend NAME]   (N default 10,000,000)
 * Exit status 0, 1 on a wrong answer or an error, 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define PARTS 16

static int gen(uint64_t part, uint64_t nparts, const void *arg, size_t alen, weft_bag_emit *out)
{
    uint64_t n;
    if (alen != 8) return WEFT_EINVAL;
    memcpy(&n, arg, 8);
    uint64_t lo = n * part / nparts, hi = n * (part + 1) / nparts;
    weft_rng rng;
    weft_rng_seed(&rng, 7 + part);
    for (uint64_t i = lo; i < hi; i++) {
        int rc = weft_bag_emit_double(out, weft_rng_double(&rng) * 1e6);
        if (rc) return rc;
    }
    return 0;
}
WEFT_BAG_FN(gen);

static int desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
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
    weft_bag_records *top = NULL, *all = NULL;
    int rc = weft_bag_from_generator(gen, &n, 8, PARTS, &b);
    double t0 = weft_now();
    if (!rc) rc = weft_bag_topk(b, ex, 5, NULL, &top);
    double t1 = weft_now();
    if (!rc) rc = weft_bag_collect(b, ex, &all);
    double *v = NULL;
    size_t m = all ? weft_bag_records_count(all) : 0;
    if (!rc && !(v = malloc((m ? m : 1) * sizeof *v))) rc = WEFT_ENOMEM;
    for (size_t i = 0; !rc && i < m; i++) {
        const void *d;
        size_t l;
        weft_bag_records_get(all, i, &d, &l);
        weft_bag_rec_double(d, l, &v[i]);
    }
    double t2 = weft_now();
    if (!rc) qsort(v, m, sizeof *v, desc);
    double t3 = weft_now();
    int status = 0;
    if (rc) {
        fprintf(stderr, "bag_topk: %s\n", weft_last_error());
        status = 1;
    } else {
        printf("%s: top 5 of %llu doubles\n", weft_backend_name(weft_executor_backend(ex)),
               (unsigned long long)n);
        for (size_t i = 0; i < 5 && i < m; i++) {
            const void *d;
            size_t l;
            double x;
            weft_bag_records_get(top, i, &d, &l);
            weft_bag_rec_double(d, l, &x);
            printf("  %zu: topk %.6f  sort %.6f\n", i + 1, x, v[i]);
            if (x != v[i]) status = 1;
        }
        printf("topk (bounded heaps + merge): %.3f s; collect + full sort: %.3f s (the sort alone "
               "%.3f s)\n",
               t1 - t0, t3 - t1, t3 - t2);
        if (status) fprintf(stderr, "bag_topk: WRONG answer\n");
    }
    free(v);
    weft_bag_records_destroy(all);
    weft_bag_records_destroy(top);
    weft_bag_release(b);
    weft_executor_destroy(ex);
    return status;
}

/* table_groupby.c : the tutorial's "file too large for memory" flow and the
 * notebook's parallel_apply, with weft's tables.
 *
 *   1. writes a CSV of ROWS rows (species, a measurement with missing
 *      values, a count), several times the memory bound at large ROWS;
 *   2. reads it as a frame of byte-range partitions and groups it by
 *      species: count, mean and an exact median per group -- partials
 *      merged as partitions finish, IN_FLIGHT partitions at a time;
 *   3. applies a user function to every partition (pandarallel's
 *      parallel_apply: three derived columns) on serial, threads,
 *      processes and mpi (under mpirun; skipped otherwise), and checks
 *      that every level gives the same table.
 *
 * Usage: table_groupby [ROWS] (default 200000; try 20000000 for ~1 GiB);
 * `mpirun -n 3 table_groupby` for the mpi level too.
 * Exit status 0, 1 if a run fails or the levels disagree. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

static const char *const species[] = {"setosa", "versicolor", "virginica"};

/* The user's function: gets a partition, returns it with three columns more. */
static int add_features(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    int rc = weft_table_arg(in, len, 0, &t);
    if (rc) return weft_ctx_fail(ctx, rc, "not a table");
    size_t n = weft_table_rows(t), cl, cc;
    const void *len_d, *cnt_d;
    const uint8_t *len_v;
    if (weft_table_col_index(t, "length", &cl) || weft_table_col_index(t, "count", &cc) ||
        weft_table_col_data(t, cl, &len_d, &len_v) || weft_table_col_data(t, cc, &cnt_d, NULL)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "needs columns length and count");
    }
    const double *l = len_d;
    const int64_t *c = cnt_d;
    double *area = malloc((n + 1) * sizeof *area), *per = malloc((n + 1) * sizeof *per);
    bool *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        area[i] = l[i] * l[i];
        per[i] = l[i] / (double)(c[i] + 1);
        big[i] = l[i] > 5.0;
    }
    rc = weft_table_add_double(t, "area", area, len_v, n);
    if (!rc) rc = weft_table_add_double(t, "per_count", per, len_v, n);
    if (!rc) rc = weft_table_add_bool(t, "big", big, NULL, n);
    if (!rc) rc = weft_table_output(ctx, t);
    free(area), free(per), free(big);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER(add_features);

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1;
    long rows = argc > 1 ? atol(argv[1]) : 200000;
    const char *path = "table_groupby.csv";
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    weft_rng r;
    weft_rng_seed(&r, 2026);
    fprintf(f, "species,length,count\n");
    for (long i = 0; i < rows; i++) {
        int s = (int)weft_rng_range(&r, 0, 2);
        fprintf(f, "%s,", species[s]);
        if (weft_rng_range(&r, 0, 19)) fprintf(f, "%.3f", 4.0 + s + weft_rng_double(&r) * 2);
        fprintf(f, ",%lld\n", (long long)weft_rng_range(&r, 0, 50));
    }
    fclose(f);

    /* the tutorial's flow: partition by partition, bounded */
    weft_options eo = WEFT_OPTIONS_INIT; /* WEFT_BACKEND chooses the level */
    weft_executor *ex;
    if (weft_executor_create(&eo, &ex)) return 1;
    weft_csv_options co = {.block_size = 1u << 20};
    weft_table_run_options ro = {.in_flight = 4};
    weft_frame *fr;
    weft_table *gb = NULL;
    const char *keys[] = {"species"};
    weft_agg aggs[] = {{"length", WEFT_AGG_COUNT, NULL},
                       {"length", WEFT_AGG_MEAN, NULL},
                       {"length", WEFT_AGG_MEDIAN, NULL}};
    double t0 = weft_now();
    int rc = weft_frame_read_csv(&path, 1, &co, &fr);
    if (!rc) rc = weft_frame_groupby(fr, keys, 1, aggs, 3, ex, &ro, &gb);
    double tg = weft_now() - t0;
    if (rc) {
        fprintf(stderr, "groupby: %s\n", weft_last_error());
        return 1;
    }
    printf("%ld rows in %zu partitions on %s: groupby in %.3f s\n", rows, weft_frame_partitions(fr),
           weft_backend_name(weft_executor_backend(ex)), tg);
    printf("%-12s %10s %10s %10s\n", "species", "count", "mean", "median");
    for (size_t g = 0; g < weft_table_rows(gb); g++) {
        const char *s;
        int64_t n;
        double mean, med;
        weft_table_get_text(gb, 0, g, &s, NULL);
        weft_table_get_int64(gb, 1, g, &n, NULL);
        weft_table_get_double(gb, 2, g, &mean, NULL);
        weft_table_get_double(gb, 3, g, &med, NULL);
        printf("%-12s %10lld %10.4f %10.4f\n", s, (long long)n, mean, med);
    }
    weft_table_destroy(gb);
    weft_executor_destroy(ex);

    /* the notebook's parallel_apply on every level: the same table */
    weft_table *first = NULL;
    const weft_backend levels[] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS,
                                   WEFT_BACKEND_PROCESSES, WEFT_BACKEND_MPI};
    int bad = 0;
    for (size_t b = 0; b < sizeof levels / sizeof *levels; b++) {
        weft_options o = WEFT_OPTIONS_INIT;
        o.backend = levels[b];
        rc = weft_executor_create(&o, &ex);
        if (levels[b] == WEFT_BACKEND_MPI &&
            (rc == WEFT_ENOTSUP || !weft_backend_available(levels[b]))) {
            /* not launched by mpirun (or no MPI in this build): not a failure */
            printf("parallel_apply on %-9s: skipped: run `mpirun -n 3 table_groupby`\n",
                   weft_backend_name(levels[b]));
            continue;
        }
        if (rc) {
            fprintf(stderr, "executor %s: %s\n", weft_backend_name(levels[b]), weft_last_error());
            return 1;
        }
        weft_frame *applied;
        weft_table *t = NULL;
        t0 = weft_now();
        rc = weft_frame_map_partitions(fr, add_features, NULL, 0, &applied);
        if (!rc) rc = weft_frame_compute(applied, ex, NULL, &t);
        double dt = weft_now() - t0;
        if (rc) {
            fprintf(stderr, "apply on %s: %s\n", weft_backend_name(levels[b]), weft_last_error());
            return 1;
        }
        printf("parallel_apply on %-9s: %zu rows x %zu columns in %.3f s%s\n",
               weft_backend_name(levels[b]), weft_table_rows(t), weft_table_cols(t), dt,
               first && !weft_table_equal(first, t) ? "  DIFFERS" : "");
        if (first && !weft_table_equal(first, t)) bad = 1;
        if (!first)
            first = t;
        else
            weft_table_destroy(t);
        weft_frame_destroy(applied);
        weft_executor_destroy(ex);
    }
    weft_table_destroy(first);
    weft_frame_destroy(fr);
    remove(path);
    return bad;
}

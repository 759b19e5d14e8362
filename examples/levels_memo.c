/* levels_memo.c : the levels demo, memoized -- the second run is near
 * instant.
 *
 * The same ten calls of the teaching notebook's f(x) as levels.c, mapped
 * with WEFT_MAP_MEMO over an executor that has a memo (a cache directory,
 * joblib's Memory): the first run computes and stores the ten results, the
 * second finds them and runs nothing, on any level (WEFT_BACKEND=serial,
 * threads, processes; mpi under mpirun). Run the program again and both
 * runs are hits: the memo is on disk. Bump --version (part of every key)
 * when f changes, as joblib's users clear their cache.
 *
 * A memoized task must be a function of its input alone: here the random
 * numbers are seeded from (x, N), not from weft_ctx_seed(), whose run seed
 * and index the key does not see.
 *
 * Usage: levels_memo [--n N] [--quick] [--dir DIR] [--version V] [--clear]
 *   --dir DIR   the memo directory (default build/demo/levels-memo)
 *   --clear     empty the memo first, so the first run computes
 * Exit status: 0, or 1 if the runs disagree or the second one ran a task. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define NITEMS 10

typedef struct item_in {
    uint64_t n; /* iterations */
    int64_t x;  /* the notebook's input */
} item_in;

static int notebook_f_pure(weft_ctx *ctx, const void *in, size_t len)
{
    item_in it;
    if (len != sizeof it) return weft_ctx_fail(ctx, WEFT_EINVAL, "input of %zu bytes", len);
    memcpy(&it, in, sizeof it);
    weft_rng rng;
    weft_rng_seed(&rng, (uint64_t)it.x * 0x9e3779b97f4a7c15ull ^ it.n);
    uint64_t y = (uint64_t)it.x;
    for (uint64_t i = 0; i < it.n; i++) {
        uint64_t a = (uint64_t)weft_rng_range(&rng, 0, 10000);
        uint64_t b = (uint64_t)weft_rng_range(&rng, 0, 10000);
        y = y - i * i + a * b; /* unsigned: wraps modulo 2^64 */
    }
    y += 1;
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(notebook_f_pure);

/* One run: the map's wall time into *secs, the results into y. */
static int run(weft_executor *ex, uint64_t n, double *secs, uint64_t y[NITEMS])
{
    item_in items[NITEMS];
    for (int i = 0; i < NITEMS; i++) items[i] = (item_in){.n = n, .x = i};
    weft_map_options mo = {.flags = WEFT_MAP_MEMO};
    weft_results *res = NULL;
    double t0 = weft_now();
    int rc = weft_map(ex, notebook_f_pure, items, sizeof items[0], NITEMS, &mo, &res);
    *secs = weft_now() - t0;
    if (rc == 0) rc = weft_results_gather(res, y, sizeof y[0], NITEMS, NULL);
    if (rc) fprintf(stderr, "levels_memo: %s (%s)\n", weft_strerror(rc), weft_last_error());
    weft_results_destroy(res);
    return rc;
}

int main(int argc, char **argv)
{
    uint64_t n = 80000000ull;
    const char *dir = "build/demo/levels-memo", *version = "1";
    int clear = 0;
    weft_init(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quick"))
            n = 3000000ull;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--version") && i + 1 < argc)
            version = argv[++i];
        else if (!strcmp(argv[i], "--clear"))
            clear = 1;
        else {
            fprintf(stderr, "usage: levels_memo [--n N] [--quick] [--dir DIR] [--version V] "
                            "[--clear]\n");
            return 2;
        }
    }
    weft_memo_options mopts = {.version = version};
    weft_memo *memo;
    int rc = weft_memo_open(dir, 64u << 20, &mopts, &memo); /* at most 64 MiB */
    if (rc) {
        fprintf(stderr, "levels_memo: %s: %s\n", dir, weft_last_error());
        return 1;
    }
    if (clear) weft_memo_clear(memo);
    weft_options o = WEFT_OPTIONS_INIT;
    o.memo = memo;
    weft_executor *ex;
    if ((rc = weft_executor_create(&o, &ex)) != 0) {
        fprintf(stderr, "levels_memo: %s\n", weft_last_error());
        weft_memo_close(memo);
        return 1;
    }
    uint64_t y1[NITEMS], y2[NITEMS];
    double t1 = 0, t2 = 0;
    weft_memo_stats s1, s2;
    rc = run(ex, n, &t1, y1);
    weft_memo_stats_get(memo, &s1);
    if (!rc) rc = run(ex, n, &t2, y2);
    weft_memo_stats_get(memo, &s2);
    int bad = rc != 0;
    if (!rc) {
        printf("level %s, %d workers, N = %llu, memo %s\n",
               weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex),
               (unsigned long long)n, dir);
        printf("run 1: %9.4f s  (%llu hits, %llu computed and stored)\n", t1,
               (unsigned long long)s1.hits, (unsigned long long)s1.stores);
        printf("run 2: %9.4f s  (%llu hits, %llu computed)\n", t2,
               (unsigned long long)(s2.hits - s1.hits),
               (unsigned long long)(s2.stores - s1.stores));
        for (int i = 0; i < NITEMS; i++) {
            printf("  f(%d) = %lld\n", i, (long long)y2[i]);
            if (y1[i] != y2[i]) bad = 1;
        }
        if (s2.stores != s1.stores || s2.hits - s1.hits != NITEMS) bad = 1;
        if (bad) fprintf(stderr, "levels_memo: the second run was not all hits, or disagrees\n");
    }
    weft_executor_destroy(ex);
    weft_memo_close(memo);
    return bad;
}

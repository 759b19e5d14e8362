/* test_memo_mpi.c : the memo across MPI ranks.
 *
 * tests/CMakeLists.txt runs it under `mpirun -n 3` (label mpi): rank 0 and
 * the two worker ranks write one key at once into one directory (one entry
 * results, readable and right), and a memoized map on the mpi backend runs
 * nothing the second time (the lookup is on rank 0: a hit sends nothing to
 * a worker rank). Run plainly, there are no ranks: every test SKIPs.
 * weft-test-timeout: 300 */
#define CHECK_CUSTOM_MAIN
#include "check.h"

#include <limits.h>

static bool under_mpi;

#define VLEN 30000
static unsigned char value[VLEN];

static void fill_value(void)
{
    for (size_t i = 0; i < VLEN; i++) value[i] = (unsigned char)(i * 7 + i / 300);
}

static int put_loop(weft_memo *m, int rounds)
{
    int wrong = 0;
    for (int i = 0; i < rounds; i++) {
        if (weft_memo_put(m, "one", "key", 3, value, VLEN) != 0) wrong++;
        void *o = NULL;
        size_t ol = 0;
        if (weft_memo_get(m, "one", "key", 3, &o, &ol) != 0 || ol != VLEN ||
            memcmp(o, value, VLEN) != 0)
            wrong++;
        free(o);
    }
    return wrong;
}

/* on a worker rank: opens the memo at the path given and writes the key */
static int rank_writer(weft_ctx *ctx, const void *in, size_t len)
{
    char path[PATH_MAX];
    if (len == 0 || len >= sizeof path) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad path");
    memcpy(path, in, len);
    path[len] = '\0';
    fill_value();
    weft_memo *m;
    int rc = weft_memo_open(path, 0, NULL, &m);
    if (rc) return weft_ctx_fail(ctx, rc, "open: %s", weft_last_error());
    int32_t wrong = put_loop(m, 60);
    weft_memo_close(m);
    return weft_ctx_set_output(ctx, &wrong, sizeof wrong);
}
WEFT_TASK_REGISTER(rank_writer);

static int cube(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length");
    uint64_t x;
    memcpy(&x, in, 8);
    x = x * x * x;
    return weft_ctx_set_output(ctx, &x, 8);
}
WEFT_TASK_REGISTER(cube);

static void fresh(const char *name, char *abs)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", name);
    if (system(cmd) != 0) printf("    rm failed\n");
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(name, 0, NULL, &m));
    weft_memo_close(m);
    REQUIRE(realpath(name, abs) != NULL);
}

TEST(one_key_from_3_ranks)
{
    if (!under_mpi) SKIP("not launched by mpirun (see the mpi label)");
    char dir[PATH_MAX];
    fresh("memo-ranks", dir);
    fill_value();
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    int nw = weft_executor_workers(ex);
    weft_future *f[8];
    int n = 2 * nw < 8 ? 2 * nw : 8;
    for (int i = 0; i < n; i++) REQUIRE_OK(weft_submit(ex, rank_writer, dir, strlen(dir), &f[i]));
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    CHECK_EQ_INT(put_loop(m, 60), 0); /* rank 0, meanwhile */
    for (int i = 0; i < n; i++) {
        const void *d;
        size_t l;
        CHECK_OK(weft_future_result(f[i], WEFT_FOREVER, &d, &l));
        int32_t wrong = -1;
        if (l == 4) memcpy(&wrong, d, 4);
        CHECK_EQ_INT(wrong, 0);
        weft_future_release(f[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
    size_t bad = 1;
    CHECK_OK(weft_memo_verify(m, &bad));
    CHECK_EQ_U64(bad, 0);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.entries, 1);
    void *out = NULL;
    size_t ol = 0;
    CHECK_OK(weft_memo_get(m, "one", "key", 3, &out, &ol));
    CHECK(ol == VLEN && memcmp(out, value, VLEN) == 0);
    free(out);
    CHECK_OK(weft_memo_close(m));
}

TEST(memoized_map_on_mpi)
{
    if (!under_mpi) SKIP("not launched by mpirun (see the mpi label)");
    char dir[PATH_MAX];
    fresh("memo-mpimap", dir);
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_MPI;
    o.memo = m;
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    uint64_t xs[200];
    for (int i = 0; i < 200; i++) xs[i] = (uint64_t)i;
    for (int round = 0; round < 2; round++) {
        weft_map_options mo = {.flags = WEFT_MAP_MEMO};
        weft_results *r;
        REQUIRE_OK(weft_map(ex, cube, xs, 8, 200, &mo, &r));
        uint64_t ys[200];
        CHECK_OK(weft_results_gather(r, ys, 8, 200, NULL));
        for (uint64_t i = 0; i < 200; i++) CHECK(ys[i] == i * i * i);
        weft_results_destroy(r);
        weft_submit_options so = {.flags = WEFT_SUBMIT_MEMO};
        weft_future *f;
        uint64_t x = 1000;
        REQUIRE_OK(weft_submit_ex(ex, cube, &x, 8, &so, &f));
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
        weft_future_release(f);
    }
    CHECK_OK(weft_executor_destroy(ex));
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.stores, 201);
    CHECK_EQ_U64(s.hits, 201);
    CHECK_OK(weft_memo_close(m));
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        weft_executor_destroy(probe);
    }
    return check_main(argc, argv);
}

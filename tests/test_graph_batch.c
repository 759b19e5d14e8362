/* test_graph_batch.c : weft_parallel, joblib's Parallel(n_jobs)(delayed(f)(x)
 * ...): n_jobs semantics, results in call order, heterogeneous calls (also
 * through named call records, as across processes), errors, bad input. */
#include "check.h"

extern bool weft__graph_force_copy;

static int square(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v;
    if (len != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "square: %zu bytes", len);
    memcpy(&v, in, 8);
    v *= v;
    return weft_ctx_set_output(ctx, &v, 8);
}
WEFT_TASK_REGISTER(square);

static int negate(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v;
    if (len != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "negate: %zu bytes", len);
    memcpy(&v, in, 8);
    v = -v;
    return weft_ctx_set_output(ctx, &v, 8);
}
WEFT_TASK_REGISTER(negate);

/* index and seed, to check they are the call's position on every backend */
static int whoami(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    uint64_t out[3] = {weft_ctx_index(ctx), weft_ctx_seed(ctx), len};
    return weft_ctx_set_output(ctx, out, sizeof out);
}
WEFT_TASK_REGISTER(whoami);

static int refuse7(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v;
    if (len != 8) return WEFT_EINVAL;
    memcpy(&v, in, 8);
    if (v == 7) return weft_ctx_fail(ctx, WEFT_EPERM, "seven is refused");
    return weft_ctx_set_output(ctx, &v, 8);
}
WEFT_TASK_REGISTER(refuse7);

static int unregistered(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}

static int64_t get_i64(weft_results *r, size_t i)
{
    const void *d;
    size_t l;
    int rc = weft_results_get(r, i, &d, &l);
    if (rc || l != 8) {
        CHECK_MSG(0, "item %zu: rc %d len %zu", i, rc, l);
        return INT64_MIN;
    }
    int64_t v;
    memcpy(&v, d, 8);
    return v;
}

TEST(n_jobs_resolves_as_joblib)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int w = -5;
    CHECK_OK(weft_n_jobs_workers(-1, &w));
    CHECK_EQ_INT(w, cpus);
    CHECK_OK(weft_n_jobs_workers(-2, &w));
    CHECK_EQ_INT(w, cpus > 1 ? cpus - 1 : 1);
    CHECK_OK(weft_n_jobs_workers(-1000, &w));
    CHECK_EQ_INT(w, 1);
    CHECK_OK(weft_n_jobs_workers(3, &w));
    CHECK_EQ_INT(w, 3);
    CHECK_OK(weft_n_jobs_workers(0, &w));
    CHECK_EQ_INT(w, 0);
    CHECK_ERR(weft_n_jobs_workers(1, NULL), WEFT_EINVAL);
}

TEST(same_task_results_in_order_for_every_n_jobs)
{
    size_t n = check_scaled(20000, 100);
    int64_t *xs = malloc(n * sizeof *xs);
    weft_call *calls = malloc(n * sizeof *calls);
    REQUIRE(xs && calls);
    for (size_t i = 0; i < n; i++) {
        xs[i] = (int64_t)i - 50;
        calls[i] = (weft_call){square, &xs[i], 8};
    }
    int jobs[] = {1, 2, -1, -2, 0, 4};
    for (size_t k = 0; k < sizeof jobs / sizeof jobs[0]; k++) {
        weft_parallel_options o = {.n_jobs = jobs[k]};
        weft_results *r = NULL;
        CHECK_OK(weft_parallel(calls, n, &o, &r));
        REQUIRE(r);
        CHECK_EQ_U64(weft_results_count(r), n);
        for (size_t i = 0; i < n; i++) {
            int64_t v = get_i64(r, i);
            if (v != xs[i] * xs[i]) {
                CHECK_MSG(0, "n_jobs %d item %zu: %lld", jobs[k], i, (long long)v);
                break;
            }
        }
        weft_results_destroy(r);
    }
    free(xs);
    free(calls);
}

TEST(heterogeneous_calls_in_order_same_index_and_seed_everywhere)
{
    enum {
        N = 3000
    };
    static int64_t xs[N];
    static weft_call calls[N];
    for (int i = 0; i < N; i++) {
        xs[i] = i;
        weft_task_fn fn = i % 3 == 0 ? square : i % 3 == 1 ? negate : whoami;
        calls[i] = (weft_call){fn, &xs[i], 8};
    }
    uint64_t seeds[N];
    struct {
        int n_jobs;
        bool names;
        size_t batch;
    } runs[] = {{1, false, 0}, {2, false, 0}, {2, true, 0}, {1, true, 0}, {-1, false, 7}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        weft__graph_force_copy = runs[k].names;
        weft_parallel_options o = {.n_jobs = runs[k].n_jobs, .batch_size = runs[k].batch};
        weft_results *r = NULL;
        int rc = weft_parallel(calls, N, &o, &r);
        weft__graph_force_copy = false;
        CHECK_OK(rc);
        REQUIRE(r);
        for (int i = 0; i < N; i++) {
            const void *d;
            size_t l;
            if (weft_results_get(r, (size_t)i, &d, &l) != 0) {
                CHECK_MSG(0, "run %zu item %d failed: %s", k, i, weft_results_error(r, (size_t)i));
                break;
            }
            if (i % 3 == 2) {
                uint64_t w[3];
                REQUIRE(l == sizeof w);
                memcpy(w, d, sizeof w);
                CHECK_EQ_U64(w[0], (uint64_t)i);
                CHECK_EQ_U64(w[2], 8);
                if (k == 0)
                    seeds[i] = w[1];
                else
                    CHECK_EQ_U64(w[1], seeds[i]);
            } else {
                int64_t v;
                REQUIRE(l == 8);
                memcpy(&v, d, 8);
                CHECK_EQ_INT(v, i % 3 == 0 ? (int64_t)i * i : -(int64_t)i);
            }
        }
        weft_results_destroy(r);
    }
}

TEST(errors_come_back_per_call)
{
    enum {
        N = 100
    };
    int64_t xs[N];
    weft_call calls[N];
    for (int i = 0; i < N; i++) {
        xs[i] = i;
        calls[i] = (weft_call){i % 2 ? refuse7 : square, &xs[i], 8};
    }
    for (int names = 0; names < 2; names++) {
        weft__graph_force_copy = names;
        weft_parallel_options o = {.n_jobs = 2};
        weft_results *r = NULL;
        int rc = weft_parallel(calls, N, &o, &r);
        weft__graph_force_copy = false;
        CHECK_EQ_INT(rc, WEFT_EPERM);
        REQUIRE(r);
        CHECK_EQ_U64(weft_results_failed(r), 1);
        CHECK_RC(weft_results_get(r, 7, NULL, NULL), WEFT_EPERM);
        CHECK_EQ_STR(weft_results_error(r, 7), "seven is refused");
        CHECK_EQ_INT(get_i64(r, 9), 9);
        CHECK_EQ_INT(get_i64(r, 8), 64);
        weft_results_destroy(r);
    }
    /* stop on error: nothing after a failure is started (serial: in order) */
    weft_parallel_options o = {.n_jobs = 1, .flags = WEFT_MAP_STOP_ON_ERROR, .batch_size = 1};
    weft_results *r = NULL;
    CHECK_EQ_INT(weft_parallel(calls, N, &o, &r), WEFT_EPERM);
    REQUIRE(r);
    CHECK_RC(weft_results_get(r, 99, NULL, NULL), WEFT_ECANCELLED);
    weft_results_destroy(r);
}

TEST(on_a_given_executor)
{
    weft_options eo = {.backend = WEFT_BACKEND_THREADS, .workers = 3};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&eo, &ex));
    int64_t xs[10];
    weft_call calls[10];
    for (int i = 0; i < 10; i++) {
        xs[i] = i;
        calls[i] = (weft_call){i < 5 ? square : negate, &xs[i], 8};
    }
    weft_parallel_options o = {.executor = ex, .n_jobs = 1 /* ignored */};
    weft_results *r;
    CHECK_OK(weft_parallel(calls, 10, &o, &r));
    CHECK_EQ_INT(get_i64(r, 4), 16);
    CHECK_EQ_INT(get_i64(r, 6), -6);
    weft_results_destroy(r);
    CHECK_EQ_INT(weft_executor_workers(ex), 3); /* still ours, still alive */
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(bad_input)
{
    weft_results *r = (weft_results *)1;
    int64_t x = 1;
    weft_call ok = {square, &x, 8};
    CHECK_ERR(weft_parallel(&ok, 1, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_parallel(NULL, 1, NULL, &r), WEFT_EINVAL);
    CHECK(r == NULL);
    weft_call nofn = {NULL, &x, 8};
    CHECK_ERR(weft_parallel(&nofn, 1, NULL, &r), WEFT_EINVAL);
    weft_call noin = {square, NULL, 8};
    CHECK_ERR(weft_parallel(&noin, 1, NULL, &r), WEFT_EINVAL);
    weft_parallel_options bf = {.flags = WEFT_MAP_UNORDERED};
    CHECK_ERR(weft_parallel(&ok, 1, &bf, &r), WEFT_EINVAL);
    weft_parallel_options br = {.retries = -1};
    CHECK_ERR(weft_parallel(&ok, 1, &br, &r), WEFT_EINVAL);
    weft_parallel_options bb = {.backend = (weft_backend)77};
    CHECK_ERR(weft_parallel(&ok, 1, &bb, &r), WEFT_EINVAL);
    /* a backend this build may lack */
    if (!weft_backend_available(WEFT_BACKEND_MPI)) {
        weft_parallel_options bm = {.backend = WEFT_BACKEND_MPI, .n_jobs = 2};
        CHECK_ERR(weft_parallel(&ok, 1, &bm, &r), WEFT_ENOTSUP);
    }
    /* named records need registered tasks */
    weft_call two[2] = {{square, &x, 8}, {unregistered, &x, 8}};
    weft__graph_force_copy = true;
    CHECK_ERR(weft_parallel(two, 2, NULL, &r), WEFT_ENOTREG);
    weft__graph_force_copy = false;
    /* no calls: no results, no error */
    CHECK_OK(weft_parallel(NULL, 0, NULL, &r));
    REQUIRE(r);
    CHECK_EQ_U64(weft_results_count(r), 0);
    weft_results_destroy(r);
}

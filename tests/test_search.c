/* test_search.c : parameter search (include/weft/search.h, docs/search.md).
 *
 * What scikit-learn says is checked against scikit-learn itself: the test
 * writes weft's candidate lists, samples and folds for given spaces and
 * seeds, and its SVC search's cv_results_, and tests/search_oracle.py
 * (run with /usr/bin/python3, Debian's python3-sklearn) recomputes them
 * with ParameterGrid, ParameterSampler, KFold, StratifiedKFold and
 * GridSearchCV(SVC()) over weft's folds. The oracle cases SKIP without
 * python3-sklearn, the SVC cases without libsvm.
 * The rest checks the runner's behaviour: ranking, failures, streaming,
 * budget, target, memo reruns, files, bad input, every level.
 *
 * Under mpirun (ctest test_search_mpi) the case svc_same_scores_on_mpi
 * compares the mpi level with serial. */
// weft-test-timeout: 300
#define CHECK_CUSTOM_MAIN
#include "check.h"
#include "check_exec.h"
#include "search/search_internal.h"

#include <sys/stat.h>
#include <sys/wait.h>

#ifdef WEFT_HAVE_LIBSVM
#include "svc_task.h"
#endif

#ifndef WEFT_DATA_DIR
#define WEFT_DATA_DIR "data"
#endif
#define SVC_DATA WEFT_DATA_DIR "/breast_cancer/breast_cancer.csv"

static bool under_mpi;

static weft_executor *exec_of(weft_backend b)
{
    if (b == WEFT_BACKEND_MPI && !under_mpi) return NULL;
    if (b == WEFT_BACKEND_PROCESSES && CHECK_TSAN) return NULL; /* fork + TSan */
    return make_ex(b, b == WEFT_BACKEND_SERIAL ? 1 : 2);
}

/* ---- tasks ------------------------------------------------------------------------ */

static atomic_int calls_made;

/* score = -(x - 3)^2 - (y - 1)^2, the same on every split; fails when the
 * string parameter "mode" is "fail"; checks that its split is a partition
 * of the samples (fails otherwise). */
static int quad_score(weft_ctx *ctx, const void *in, size_t len)
{
    weft_search_call *c;
    int rc = weft_search_call_parse(in, len, &c);
    if (rc) return weft_ctx_fail(ctx, rc, "parse: %s", weft_last_error());
    atomic_fetch_add(&calls_made, 1);
    double x = 0, y = 0;
    weft_param_value mode = {0};
    rc = weft_search_call_double(c, "x", &x);
    if (!rc) rc = weft_search_call_double(c, "y", &y);
    if (!rc && weft_search_call_param(c, "mode", &mode) == 0 && mode.kind == WEFT_PARAM_STRING &&
        strcmp(mode.s, "fail") == 0)
        rc = WEFT_ETASK;
    size_t n = weft_search_call_samples(c), ntr, nte;
    const size_t *tr = weft_search_call_train(c, &ntr), *te = weft_search_call_test(c, &nte);
    if (!rc && ntr + nte != n) rc = WEFT_EINVAL;
    unsigned char *seen = calloc(n ? n : 1, 1);
    for (size_t i = 0; !rc && i < ntr + nte; i++) {
        size_t v = i < ntr ? tr[i] : te[i - ntr];
        if (v >= n || seen[v]++) rc = WEFT_EINVAL;
    }
    free(seen);
    weft_search_call_destroy(c);
    if (rc) return weft_ctx_fail(ctx, rc, "quad_score: bad call");
    double s = -(x - 3) * (x - 3) - (y - 1) * (y - 1);
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(quad_score);

/* never registered */
static int unregistered_score(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    double s = 0;
    return weft_ctx_set_output(ctx, &s, sizeof s);
}

/* sleeps 20 ms, scores 1 */
static int sleepy_score(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double s = 1;
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(sleepy_score);

/* x in {0..6} x y in {-1, 1, 2}: the best is (3, 1) */
static weft_space *quad_space(void)
{
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    REQUIRE_OK(weft_space_add_linspace(s, "x", 0, 6, 7));
    REQUIRE_OK(weft_space_add_ints(s, "y", (const int64_t[]){-1, 1, 2}, 3));
    return s;
}

static weft_folds *kfold(size_t n, size_t k, bool shuffle, uint32_t seed)
{
    weft_folds_options o = WEFT_FOLDS_OPTIONS_INIT;
    o.n_splits = k;
    o.shuffle = shuffle;
    o.seed = seed;
    weft_folds *f;
    REQUIRE_OK(weft_folds_kfold(n, &o, &f));
    return f;
}

/* ---- spaces ------------------------------------------------------------------------ */

TEST(grid_order_is_parameter_grids)
{
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    CHECK_EQ_U64(weft_space_size(s), 1); /* ParameterGrid({}) has one candidate */
    /* added out of order: candidates go by sorted names, the last fastest */
    REQUIRE_OK(weft_space_add_strings(s, "kernel", (const char *const[]){"rbf", "poly"}, 2));
    REQUIRE_OK(weft_space_add_doubles(s, "C", (const double[]){1, 10, 100}, 3));
    REQUIRE_OK(weft_space_add_ints(s, "degree", (const int64_t[]){2, 3}, 2));
    CHECK_EQ_U64(weft_space_size(s), 12);
    /* sorted names: C, degree, kernel -> index = C * 4 + degree * 2 + kernel */
    const char *name;
    weft_param_value v;
    for (size_t i = 0; i < 12; i++) {
        REQUIRE_OK(weft_space_candidate(s, i, 0, &name, &v));
        CHECK_EQ_STR(name, "C");
        static const double cs[3] = {1, 10, 100};
        CHECK(v.kind == WEFT_PARAM_DOUBLE && v.d == cs[i / 4]);
        REQUIRE_OK(weft_space_candidate(s, i, 1, &name, &v));
        CHECK_EQ_STR(name, "degree");
        CHECK(v.kind == WEFT_PARAM_INT && v.i == 2 + (int64_t)(i / 2 % 2));
        REQUIRE_OK(weft_space_candidate(s, i, 2, &name, &v));
        CHECK_EQ_STR(name, "kernel");
        CHECK_EQ_STR(v.s, i % 2 ? "poly" : "rbf");
        CHECK_EQ_INT(weft_space_candidate(s, i, 3, &name, &v), WEFT_EOF);
    }
    CHECK_OK(weft_space_lookup(s, 6, "degree", &v)); /* 6 = C 10, degree 3, rbf */
    CHECK(v.i == 3);
    CHECK_EQ_INT(weft_space_lookup(s, 5, "gamma", &v), WEFT_ENOENT);
    /* a second sub-grid follows the first */
    REQUIRE_OK(weft_space_new_grid(s));
    REQUIRE_OK(weft_space_add_strings(s, "kernel", (const char *const[]){"linear"}, 1));
    CHECK_EQ_U64(weft_space_size(s), 13);
    REQUIRE_OK(weft_space_candidate(s, 12, 0, &name, &v));
    CHECK_EQ_STR(v.s, "linear");
    CHECK_EQ_INT(weft_space_lookup(s, 12, "C", &v), WEFT_ENOENT);
    /* errors */
    CHECK_ERR(weft_space_add_doubles(s, "kernel", (const double[]){1}, 1), WEFT_EINVAL);
    CHECK_ERR(weft_space_add_doubles(s, "z", (const double[]){1}, 0), WEFT_EINVAL);
    CHECK_ERR(weft_space_add_doubles(s, "", (const double[]){1}, 1), WEFT_EINVAL);
    CHECK_ERR(weft_space_add_doubles(s, "z", (const double[]){NAN}, 1), WEFT_EINVAL);
    CHECK_ERR(weft_space_candidate(s, 13, 0, &name, &v), WEFT_EINVAL);
    CHECK_EQ_U64(weft_space_size(s), 13);
    weft_space_destroy(s);
}

TEST(linspace_and_logspace_follow_numpy)
{
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    REQUIRE_OK(weft_space_add_linspace(s, "a", 0.1, 1.0, 4));
    REQUIRE_OK(weft_space_new_grid(s));
    REQUIRE_OK(weft_space_add_logspace(s, "g", -10, 10, 1001, 0));
    CHECK_EQ_U64(weft_space_size(s), 4 + 1001);
    weft_param_value v;
    /* numpy: arange(4) * 0.3 + 0.1, the last exactly 1.0 */
    for (size_t i = 0; i < 4; i++) {
        REQUIRE_OK(weft_space_lookup(s, i, "a", &v));
        double want = i == 3 ? 1.0 : (double)i * ((1.0 - 0.1) / 3) + 0.1;
        CHECK_MSG(v.d == want, "a[%zu] = %.17g, want %.17g", i, v.d, want);
    }
    REQUIRE_OK(weft_space_lookup(s, 4, "g", &v));
    CHECK(v.d == 1e-10);
    REQUIRE_OK(weft_space_lookup(s, 4 + 500, "g", &v));
    CHECK(v.d == 1.0);
    REQUIRE_OK(weft_space_lookup(s, 4 + 1000, "g", &v));
    CHECK(v.d == 1e10);
    CHECK_ERR(weft_space_add_logspace(s, "h", 0, INFINITY, 3, 10), WEFT_EINVAL);
    CHECK_ERR(weft_space_add_linspace(s, "h", 0, 1, 0), WEFT_EINVAL);
    weft_space_destroy(s);
}

TEST(mt19937_is_the_reference_generator)
{
    /* init_genrand(5489) is the reference's default seed: its first draws
     * are published with MT19937 */
    weft__mt m;
    weft__mt_seed(&m, 5489);
    const uint32_t want[5] = {3499211612u, 581869302u, 3890346734u, 3586334585u, 545404204u};
    for (int i = 0; i < 5; i++) CHECK_EQ_U64(weft__mt_next32(&m), want[i]);
    /* the 10000th draw of the default seed is 4123659995 (the C++ standard's
     * check for std::mt19937) */
    weft__mt_seed(&m, 5489);
    uint32_t x = 0;
    for (int i = 0; i < 10000; i++) x = weft__mt_next32(&m);
    CHECK_EQ_U64(x, 4123659995u);
    /* randint(1) draws nothing */
    weft__mt_seed(&m, 1);
    CHECK_EQ_U64(weft__mt_randint(&m, 1), 0);
    weft__mt a;
    weft__mt_seed(&a, 1);
    CHECK_EQ_U64(weft__mt_next32(&m), weft__mt_next32(&a));
}

TEST(sampler_draws_distinct_candidates_repeatably)
{
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    REQUIRE_OK(weft_space_add_logspace(s, "alpha", -10, 10, 1001, 10));
    REQUIRE_OK(weft_space_add_ints(s, "k", (const int64_t[]){1, 2}, 2));
    size_t n = weft_space_size(s);
    size_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), ca, cb;
    /* n_iter over three regimes: tracking (ratio < 0.01), permutation, reservoir */
    const size_t iters[] = {5, 300, 2000, 5000};
    for (int t = 0; t < 4; t++) {
        REQUIRE_OK(weft_space_sample(s, iters[t], 42, a, &ca));
        REQUIRE_OK(weft_space_sample(s, iters[t], 42, b, &cb));
        CHECK_EQ_U64(ca, iters[t] < n ? iters[t] : n);
        CHECK(ca == cb && memcmp(a, b, ca * sizeof *a) == 0);
        unsigned char *seen = calloc(n, 1);
        for (size_t i = 0; i < ca; i++) {
            CHECK(a[i] < n);
            if (a[i] < n) CHECK_MSG(!seen[a[i]]++, "candidate %zu drawn twice", a[i]);
        }
        free(seen);
    }
    /* n_iter >= size: the whole grid in order (reservoir keeps 0..n-1) */
    REQUIRE_OK(weft_space_sample(s, n, 7, a, &ca));
    for (size_t i = 0; i < ca; i++) CHECK(a[i] == i);
    /* another seed, another sample */
    REQUIRE_OK(weft_space_sample(s, 300, 43, b, &cb));
    REQUIRE_OK(weft_space_sample(s, 300, 42, a, &ca));
    CHECK(memcmp(a, b, 300 * sizeof *a) != 0);
    free(a);
    free(b);
    weft_space_destroy(s);
}

/* ---- folds -------------------------------------------------------------------------- */

/* Every sample is in exactly one test set; train is the rest; both ascending. */
static void check_partition(const weft_folds *f)
{
    size_t n = weft_folds_samples(f), k = weft_folds_count(f);
    unsigned char *in_test = calloc(n ? n : 1, 1);
    for (size_t j = 0; j < k; j++) {
        const size_t *tr, *te;
        size_t ntr, nte;
        REQUIRE_OK(weft_folds_split(f, j, &tr, &ntr, &te, &nte));
        CHECK_EQ_U64(ntr + nte, n);
        unsigned char *mark = calloc(n ? n : 1, 1);
        for (size_t i = 0; i < nte; i++) {
            CHECK(te[i] < n && (i == 0 || te[i] > te[i - 1]));
            if (te[i] < n) {
                mark[te[i]] = 1;
                in_test[te[i]]++;
            }
        }
        for (size_t i = 0; i < ntr; i++) {
            CHECK(tr[i] < n && (i == 0 || tr[i] > tr[i - 1]));
            if (tr[i] < n) CHECK_MSG(!mark[tr[i]], "sample %zu in train and test", tr[i]);
        }
        free(mark);
    }
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(in_test[i] == 1, "sample %zu tested %d times", i, in_test[i]);
    free(in_test);
}

TEST(kfold_partitions_with_sizes_as_sklearn)
{
    const size_t ns[] = {10, 11, 103, 569};
    for (int a = 0; a < 4; a++)
        for (size_t k = 2; k <= 7; k++)
            for (int sh = 0; sh < 2; sh++) {
                weft_folds *f = kfold(ns[a], k, sh, 3);
                check_partition(f);
                for (size_t j = 0; j < k; j++) {
                    size_t nte;
                    weft_folds_split(f, j, NULL, NULL, NULL, &nte);
                    CHECK_EQ_U64(nte, ns[a] / k + (j < ns[a] % k));
                }
                if (!sh) { /* unshuffled: consecutive blocks */
                    const size_t *te;
                    weft_folds_split(f, 0, NULL, NULL, &te, NULL);
                    CHECK(te[0] == 0);
                }
                weft_folds_destroy(f);
            }
    weft_folds *f;
    weft_folds_options o = WEFT_FOLDS_OPTIONS_INIT;
    o.n_splits = 1;
    CHECK_ERR(weft_folds_kfold(10, &o, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    o.n_splits = 11;
    CHECK_ERR(weft_folds_kfold(10, &o, &f), WEFT_EINVAL);
    CHECK_OK(weft_folds_kfold(10, NULL, &f)); /* 5 splits by default */
    CHECK_EQ_U64(weft_folds_count(f), 5);
    CHECK_ERR(weft_folds_split(f, 5, NULL, NULL, NULL, NULL), WEFT_EINVAL);
    weft_folds_destroy(f);
}

static int64_t *labels(size_t n, uint64_t seed)
{
    /* three classes of about 60%, 30%, 10%, labels not in order of value */
    int64_t *y = malloc(n * sizeof *y);
    weft_rng r;
    weft_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double u = weft_rng_double(&r);
        y[i] = u < 0.6 ? 7 : u < 0.9 ? -2 : 5;
    }
    return y;
}

TEST(stratified_folds_keep_class_ratios)
{
    const size_t ns[] = {50, 103, 569};
    for (int a = 0; a < 3; a++) {
        int64_t *y = labels(ns[a], 11 + (uint64_t)a);
        for (size_t k = 2; k <= 5; k++)
            for (int sh = 0; sh < 2; sh++) {
                weft_folds_options o = WEFT_FOLDS_OPTIONS_INIT;
                o.n_splits = k;
                o.shuffle = sh;
                o.seed = 5;
                weft_folds *f;
                REQUIRE_OK(weft_folds_stratified(y, ns[a], &o, &f));
                check_partition(f);
                const int64_t cls[3] = {7, -2, 5};
                for (int c = 0; c < 3; c++) {
                    size_t total = 0;
                    for (size_t i = 0; i < ns[a]; i++) total += y[i] == cls[c];
                    for (size_t j = 0; j < k; j++) {
                        const size_t *te;
                        size_t nte, in = 0;
                        weft_folds_split(f, j, NULL, NULL, &te, &nte);
                        for (size_t i = 0; i < nte; i++) in += y[te[i]] == cls[c];
                        /* each fold tests total / k of the class, give or take one */
                        CHECK_MSG(in * k + k >= total && in * k <= total + k,
                                  "n %zu k %zu class %lld: %zu of %zu in fold %zu", ns[a], k,
                                  (long long)cls[c], in, total, j);
                    }
                }
                weft_folds_destroy(f);
            }
        free(y);
    }
    /* more splits than any class has members: scikit-learn's ValueError */
    int64_t two[4] = {1, 1, 2, 2};
    weft_folds_options o = WEFT_FOLDS_OPTIONS_INIT;
    o.n_splits = 3;
    weft_folds *f;
    CHECK_ERR(weft_folds_stratified(two, 4, &o, &f), WEFT_EINVAL);
    CHECK_ERR(weft_folds_stratified(NULL, 4, &o, &f), WEFT_EINVAL);
}

/* ---- the runner ---------------------------------------------------------------------- */

TEST(runner_ranks_as_sklearn_on_every_local_level)
{
    const weft_backend bs[3] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS, WEFT_BACKEND_PROCESSES};
    weft_space *s = quad_space();
    /* a sub-grid whose candidates fail: NaN scores, ranked last */
    REQUIRE_OK(weft_space_new_grid(s));
    REQUIRE_OK(weft_space_add_doubles(s, "x", (const double[]){3}, 1));
    REQUIRE_OK(weft_space_add_ints(s, "y", (const int64_t[]){1}, 1));
    REQUIRE_OK(weft_space_add_strings(s, "mode", (const char *const[]){"fail"}, 1));
    weft_folds *f = kfold(30, 3, true, 1);
    for (int b = 0; b < 3; b++) {
        weft_executor *ex = exec_of(bs[b]);
        if (!ex) continue;
        weft_search_result *r;
        REQUIRE_OK(weft_search_run(ex, quad_score, s, f, NULL, &r));
        CHECK_EQ_U64(weft_search_result_count(r), 22);
        CHECK_EQ_U64(weft_search_result_splits(r), 3);
        CHECK(weft_search_result_stop(r) == WEFT_SEARCH_COMPLETE);
        size_t ev, ca, fa, best;
        CHECK_OK(weft_search_result_calls(r, &ev, &ca, &fa));
        CHECK(ev == 66 && ca == 0 && fa == 3);
        REQUIRE_OK(weft_search_result_best(r, &best));
        weft_search_row row;
        REQUIRE_OK(weft_search_result_row(r, best, &row));
        CHECK_EQ_U64(row.index, 3 * 3 + 1); /* x = 3 (4th), y = 1 (2nd) */
        CHECK(row.mean_test_score == 0 && row.std_test_score == 0 && row.rank_test_score == 1);
        /* "min" ranks: x = 2 and x = 4 with y = 1 tie at -1, both rank 2 */
        weft_search_row r2, r4;
        weft_search_result_row(r, 2 * 3 + 1, &r2);
        weft_search_result_row(r, 4 * 3 + 1, &r4);
        CHECK(r2.mean_test_score == -1 && r4.mean_test_score == -1);
        CHECK_EQ_U64(r2.rank_test_score, 2);
        CHECK_EQ_U64(r4.rank_test_score, 2);
        /* every rank is 1 + the number of strictly better means */
        for (size_t i = 0; i < 21; i++) {
            weft_search_row a, c;
            weft_search_result_row(r, i, &a);
            size_t better = 0;
            for (size_t j = 0; j < 21; j++) {
                weft_search_result_row(r, j, &c);
                better += c.mean_test_score > a.mean_test_score;
            }
            CHECK_EQ_U64(a.rank_test_score, better + 1);
            CHECK_EQ_U64(a.splits_done, 3);
        }
        /* the failed candidate: NaN, last rank, its splits failed */
        weft_search_row bad;
        weft_search_result_row(r, 21, &bad);
        CHECK(isnan(bad.mean_test_score) && bad.splits_failed == 3 && bad.splits_done == 0);
        CHECK_EQ_U64(bad.rank_test_score, 22);
        double sc;
        CHECK_OK(weft_search_result_score(r, 21, 0, &sc));
        CHECK(isnan(sc));
        weft_param_value v;
        CHECK_OK(weft_search_result_param(r, 21, "mode", &v));
        CHECK_EQ_STR(v.s, "fail");
        CHECK_EQ_INT(weft_search_result_param(r, 0, "mode", &v), WEFT_ENOENT);
        weft_search_result_destroy(r);
        weft_executor_destroy(ex);
    }
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

typedef struct stream_state {
    size_t seen, last_done, stop_after;
    unsigned char mark[64];
    bool order_ok;
} stream_state;

static int on_score(void *arg, const weft_search_score *sc)
{
    stream_state *st = arg;
    st->seen++;
    if (sc->done != st->last_done + 1 || sc->total != 21 * 2) st->order_ok = false;
    st->last_done = sc->done;
    if (sc->candidate * 2 + sc->split < 64) st->mark[sc->candidate * 2 + sc->split]++;
    return st->stop_after && st->seen >= st->stop_after;
}

TEST(scores_stream_once_each_and_a_callback_stops)
{
    weft_space *s = quad_space();
    weft_folds *f = kfold(10, 2, false, 0);
    weft_executor *ex = exec_of(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    stream_state st = {.order_ok = true};
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.on_score = on_score;
    o.arg = &st;
    weft_search_result *r;
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r));
    CHECK_EQ_U64(st.seen, 42);
    CHECK(st.order_ok);
    for (int i = 0; i < 42; i++)
        CHECK_MSG(st.mark[i] == 1, "call %d streamed %d times", i, st.mark[i]);
    weft_search_result_destroy(r);
    /* a callback that says stop after 5: at most the window more finish */
    st = (stream_state){.order_ok = true, .stop_after = 5};
    o.max_in_flight = 2;
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r));
    CHECK(weft_search_result_stop(r) == WEFT_SEARCH_STOPPED);
    size_t ev;
    weft_search_result_calls(r, &ev, NULL, NULL);
    CHECK_MSG(ev >= 5 && ev <= 7, "%zu calls after a stop at 5 with a window of 2", ev);
    weft_search_result_destroy(r);
    weft_executor_destroy(ex);
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

TEST(a_time_budget_stops_the_search)
{
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    REQUIRE_OK(weft_space_add_linspace(s, "x", 0, 1, 200));
    weft_folds *f = kfold(10, 2, false, 0);
    weft_executor *ex = exec_of(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.budget = 0.2; /* 400 calls of 20 ms on 2 workers need 4 s */
    weft_search_result *r;
    REQUIRE_OK(weft_search_run(ex, sleepy_score, s, f, &o, &r));
    CHECK(weft_search_result_stop(r) == WEFT_SEARCH_BUDGET);
    size_t ev;
    weft_search_result_calls(r, &ev, NULL, NULL);
    CHECK_MSG(ev > 0 && ev < 400, "%zu calls ran", ev);
    /* the candidates that did not finish have NaN means and rank after the others */
    weft_search_row last;
    weft_search_result_row(r, 199, &last);
    CHECK(isnan(last.mean_test_score) && last.splits_done == 0);
    size_t best;
    CHECK_OK(weft_search_result_best(r, &best));
    CHECK_EQ_U64(best, 0);
    weft_search_result_destroy(r);
    o.budget = -1;
    CHECK_ERR(weft_search_run(ex, sleepy_score, s, f, &o, &r), WEFT_EINVAL);
    CHECK(r == NULL);
    weft_executor_destroy(ex);
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

TEST(a_target_score_stops_the_search)
{
    weft_space *s = quad_space();
    weft_folds *f = kfold(10, 2, false, 0);
    weft_executor *ex = exec_of(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.stop_at_target = true;
    o.target = -0.5; /* reached first by candidate 10: x = 3, y = 1 */
    o.max_in_flight = 1;
    weft_search_result *r;
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r));
    CHECK(weft_search_result_stop(r) == WEFT_SEARCH_TARGET);
    size_t ev, best;
    weft_search_result_calls(r, &ev, NULL, NULL);
    CHECK_EQ_U64(ev, 22); /* window 1, serial: exactly candidates 0..10 */
    REQUIRE_OK(weft_search_result_best(r, &best));
    CHECK_EQ_U64(best, 10);
    weft_search_result_destroy(r);
    weft_executor_destroy(ex);
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

TEST(a_memo_makes_a_rerun_evaluate_only_new_candidates)
{
    weft_memo *m;
    REQUIRE_OK(weft_memo_open("memo-search", 0, NULL, &m));
    REQUIRE_OK(weft_memo_clear(m));
    weft_space *s = quad_space();
    weft_folds *f = kfold(12, 3, true, 9);
    weft_executor *ex = exec_of(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.memo = m;
    o.context = "data-v1";
    o.context_len = 7;
    weft_search_result *r1, *r2, *r3;
    atomic_store(&calls_made, 0);
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r1));
    CHECK_EQ_INT(atomic_load(&calls_made), 63);
    /* a bigger grid: x gets two new values */
    weft_space *s2;
    REQUIRE_OK(weft_space_create(&s2));
    REQUIRE_OK(weft_space_add_doubles(s2, "x", (const double[]){0, 1, 2, 3, 4, 5, 6, 7, 8}, 9));
    REQUIRE_OK(weft_space_add_ints(s2, "y", (const int64_t[]){-1, 1, 2}, 3));
    atomic_store(&calls_made, 0);
    REQUIRE_OK(weft_search_run(ex, quad_score, s2, f, &o, &r2));
    CHECK_EQ_INT(atomic_load(&calls_made), 2 * 3 * 3); /* only x = 7, 8 ran */
    size_t ev, ca;
    weft_search_result_calls(r2, &ev, &ca, NULL);
    CHECK(ev == 18 && ca == 63);
    for (size_t i = 0; i < 21; i++) {
        weft_search_row a, b;
        weft_search_result_row(r1, i, &a);
        weft_search_result_row(r2, i, &b);
        CHECK(a.mean_test_score == b.mean_test_score && b.splits_cached == 3);
    }
    /* other folds or another context: other keys, everything runs again */
    o.context = "data-v2";
    atomic_store(&calls_made, 0);
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r3));
    CHECK_EQ_INT(atomic_load(&calls_made), 63);
    weft_search_result_destroy(r3);
    weft_memo_stats st;
    weft_memo_stats_get(m, &st);
    CHECK(st.hits == 63);
    /* an unregistered task cannot be memoized */
    CHECK_ERR(weft_search_run(ex, unregistered_score, s, f, &o, &r3), WEFT_ENOTREG);
    weft_search_result_destroy(r1);
    weft_search_result_destroy(r2);
    weft_executor_destroy(ex);
    weft_memo_close(m);
    weft_folds_destroy(f);
    weft_space_destroy(s);
    weft_space_destroy(s2);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

TEST(csv_and_json_carry_cv_results_columns)
{
    weft_space *s = quad_space();
    REQUIRE_OK(weft_space_new_grid(s));
    REQUIRE_OK(weft_space_add_doubles(s, "x", (const double[]){0.1}, 1));
    REQUIRE_OK(weft_space_add_ints(s, "y", (const int64_t[]){5}, 1));
    REQUIRE_OK(weft_space_add_strings(s, "mode", (const char *const[]){"say \"hi\""}, 1));
    weft_folds *f = kfold(10, 2, false, 0);
    weft_executor *ex = exec_of(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_search_result *r;
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.n_iter = 5;
    o.seed = 3;
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, NULL, &r));
    REQUIRE_OK(weft_search_result_write_csv(r, "cv.csv"));
    REQUIRE_OK(weft_search_result_write_json(r, "cv.json"));
    char *csv = slurp("cv.csv"), *json = slurp("cv.json");
    REQUIRE(csv && json);
    static const char header[] = "param_x,param_y,param_mode,params,split0_test_score,"
                                 "split1_test_score,mean_test_score,std_test_score,"
                                 "rank_test_score\n";
    CHECK_MSG(strncmp(csv, header, strlen(header)) == 0, "header: %.200s", csv);
    /* row 10: x = 3.0 (Python's repr), y = 1, best; -(0)^2 is -0.0, the mean
     * of two -0.0 is 0.0 (numpy's too: the sum starts at +0.0) */
    CHECK_MSG(strstr(csv, "\n3.0,1,,\"{\"\"x\"\": 3.0, \"\"y\"\": 1}\",-0.0,-0.0,0.0,0.0,1\n"),
              "%s", csv);
    CHECK(strstr(csv, "say \"\"hi\"\"") != NULL);
    CHECK(strstr(json, "\"best_index\": 10") != NULL);
    CHECK(strstr(json, "\"best_params\": {\"x\": 3.0, \"y\": 1}") != NULL);
    CHECK(strstr(json, "\"param_mode\": [null, null") != NULL);
    CHECK(strstr(json, "\"rank_test_score\": [") != NULL);
    CHECK(strstr(json, "\"stop\": \"complete\"") != NULL);
    free(csv);
    free(json);
    weft_search_result_destroy(r);
    /* a sample of 5: rows in sample order */
    REQUIRE_OK(weft_search_run(ex, quad_score, s, f, &o, &r));
    size_t idx[5], cnt;
    REQUIRE_OK(weft_space_sample(s, 5, 3, idx, &cnt));
    CHECK_EQ_U64(weft_search_result_count(r), 5);
    for (size_t i = 0; i < 5; i++) {
        weft_search_row row;
        weft_search_result_row(r, i, &row);
        CHECK_EQ_U64(row.index, idx[i]);
    }
    CHECK(weft_search_result_write_csv(r, "no-such-dir/x.csv") == -ENOENT);
    weft_search_result_destroy(r);
    weft_executor_destroy(ex);
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

TEST(a_call_that_is_not_one_is_refused)
{
    weft_search_call *c;
    unsigned char junk[64] = {1, 2, 3};
    CHECK_ERR(weft_search_call_parse(junk, sizeof junk, &c), WEFT_EINVAL);
    CHECK(c == NULL);
    CHECK_ERR(weft_search_call_parse(junk, 3, &c), WEFT_EINVAL);
    /* a real call, truncated at every length, never reads past its end */
    weft_space *s = quad_space();
    weft_folds *f = kfold(10, 2, false, 0);
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    REQUIRE_OK(weft__search_encode(&buf, &cap, &len, s, 4, f, 1, "ctx", 3));
    for (size_t l = 0; l < len; l++) {
        unsigned char *copy = malloc(l ? l : 1);
        memcpy(copy, buf, l);
        CHECK_MSG(weft_search_call_parse(copy, l, &c) == WEFT_EINVAL, "length %zu", l);
        free(copy);
    }
    REQUIRE_OK(weft_search_call_parse(buf, len, &c));
    size_t n, cl;
    CHECK_EQ_U64(weft_search_call_split(c), 1);
    CHECK_EQ_STR((const char *)weft_search_call_context(c, &cl), "ctx");
    CHECK_EQ_U64(cl, 3);
    const size_t *te = weft_search_call_test(c, &n);
    CHECK(n == 5 && te[0] == 5 && te[4] == 9);
    double x;
    CHECK_OK(weft_search_call_double(c, "x", &x));
    CHECK(x == 1.0); /* candidate 4: x index 1, y index 1 */
    CHECK_EQ_INT(weft_search_call_double(c, "nope", &x), WEFT_ENOENT);
    weft_search_call_destroy(c);
    free(buf);
    weft_executor *ex = exec_of(WEFT_BACKEND_SERIAL);
    weft_search_result *r;
    CHECK_ERR(weft_search_run(ex, quad_score, NULL, f, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_search_run(NULL, quad_score, s, f, NULL, &r), WEFT_EINVAL);
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.context_len = 3;
    CHECK_ERR(weft_search_run(ex, quad_score, s, f, &o, &r), WEFT_EINVAL);
    weft_executor_destroy(ex);
    weft_folds_destroy(f);
    weft_space_destroy(s);
}

/* ---- against scikit-learn ------------------------------------------------------------ */

/* Runs the oracle on `arg`; SKIPs when it says so (exit 77). */
static void run_oracle(const char *mode, const char *arg)
{
    const char *src = getenv("WEFT_TEST_SRCDIR");
    char cmd[4096];
    if (access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/search_oracle.py %s %s", src ? src : ".", mode,
             arg);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    if (rc == 77) SKIP("the oracle cannot run here (python3-sklearn missing?)");
    CHECK_MSG(rc == 0, "%s: exit %d", cmd, rc);
}

/* A double that reads back exactly and as a float (1.0, not 1). */
static void json_double(FILE *o, double x)
{
    char b[40];
    snprintf(b, sizeof b, "%.17g", x);
    fprintf(o, "%s%s", b, strpbrk(b, ".en") ? "" : ".0");
}

/* The space `s` as the oracle's spec was written, its candidates, and its samples. */
static void write_space(FILE *o, const weft_space *s, const char *spec, const size_t *iters,
                        const uint32_t *seeds, int nsamples)
{
    fprintf(o, "{\"spec\": %s,\n \"candidates\": [", spec);
    for (size_t i = 0; i < weft_space_size(s); i++) {
        fprintf(o, "%s{", i ? ", " : "");
        const char *name;
        weft_param_value v;
        for (size_t k = 0; weft_space_candidate(s, i, k, &name, &v) == 0; k++) {
            fprintf(o, "%s\"%s\": ", k ? ", " : "", name);
            if (v.kind == WEFT_PARAM_DOUBLE)
                json_double(o, v.d);
            else if (v.kind == WEFT_PARAM_INT)
                fprintf(o, "%lld", (long long)v.i);
            else
                fprintf(o, "\"%s\"", v.s);
        }
        fprintf(o, "}");
    }
    fprintf(o, "],\n \"samples\": [");
    size_t *idx = malloc(weft_space_size(s) * sizeof *idx), cnt;
    for (int t = 0; t < nsamples; t++) {
        REQUIRE_OK(weft_space_sample(s, iters[t], seeds[t], idx, &cnt));
        fprintf(o, "%s{\"n_iter\": %zu, \"seed\": %u, \"indices\": [", t ? ", " : "", iters[t],
                seeds[t]);
        for (size_t i = 0; i < cnt; i++) fprintf(o, "%s%zu", i ? ", " : "", idx[i]);
        fprintf(o, "]}");
    }
    free(idx);
    fprintf(o, "]}");
}

static void write_folds(FILE *o, const weft_folds *f, const char *kind, size_t k, bool shuffle,
                        uint32_t seed, const int64_t *y)
{
    size_t n = weft_folds_samples(f);
    fprintf(o,
            "{\"kind\": \"%s\", \"n\": %zu, \"n_splits\": %zu, \"shuffle\": %s, \"seed\": %u, "
            "\"y\": ",
            kind, n, k, shuffle ? "true" : "false", seed);
    if (y) {
        fprintf(o, "[");
        for (size_t i = 0; i < n; i++) fprintf(o, "%s%lld", i ? ", " : "", (long long)y[i]);
        fprintf(o, "]");
    } else {
        fprintf(o, "null");
    }
    fprintf(o, ", \"test\": [");
    for (size_t j = 0; j < k; j++) {
        const size_t *te;
        size_t nte;
        weft_folds_split(f, j, NULL, NULL, &te, &nte);
        fprintf(o, "%s[", j ? ", " : "");
        for (size_t i = 0; i < nte; i++) fprintf(o, "%s%zu", i ? ", " : "", te[i]);
        fprintf(o, "]");
    }
    fprintf(o, "]}");
}

TEST(candidates_samples_and_folds_match_sklearn)
{
    FILE *o = fopen("oracle_spaces.json", "w");
    REQUIRE(o);
    fprintf(o, "{\"spaces\": [\n");
    /* A: one grid of every kind of list */
    weft_space *a;
    REQUIRE_OK(weft_space_create(&a));
    REQUIRE_OK(weft_space_add_logspace(a, "C", -2, 2, 5, 10));
    REQUIRE_OK(weft_space_add_linspace(a, "gamma", 0.1, 1.0, 4));
    REQUIRE_OK(weft_space_add_strings(a, "kernel", (const char *const[]){"rbf", "poly"}, 2));
    REQUIRE_OK(weft_space_add_ints(a, "degree", (const int64_t[]){2, 3, 4}, 3));
    write_space(o, a,
                "[[[\"C\", \"logspace\", -2, 2, 5, 10], [\"gamma\", \"linspace\", 0.1, 1.0, 4], "
                "[\"kernel\", \"list\", [\"rbf\", \"poly\"]], [\"degree\", \"list\", [2, 3, 4]]]]",
                (const size_t[]){10, 119, 1, 500, 60}, (const uint32_t[]){0, 1, 3, 5, 2024}, 5);
    /* B: two sub-grids, the second large (logspace(-10, 10, 1001)) */
    weft_space *b;
    REQUIRE_OK(weft_space_create(&b));
    REQUIRE_OK(weft_space_add_strings(b, "kernel", (const char *const[]){"linear"}, 1));
    REQUIRE_OK(weft_space_add_doubles(b, "C", (const double[]){1, 10, 100}, 3));
    REQUIRE_OK(weft_space_new_grid(b));
    REQUIRE_OK(weft_space_add_strings(b, "kernel", (const char *const[]){"rbf"}, 1));
    REQUIRE_OK(weft_space_add_doubles(b, "C", (const double[]){1, 10}, 2));
    REQUIRE_OK(weft_space_add_logspace(b, "gamma", -10, 10, 1001, 10));
    fprintf(o, ",\n");
    write_space(o, b,
                "[[[\"kernel\", \"list\", [\"linear\"]], [\"C\", \"list\", [1.0, 10.0, 100.0]]], "
                "[[\"kernel\", \"list\", [\"rbf\"]], [\"C\", \"list\", [1.0, 10.0]], "
                "[\"gamma\", \"logspace\", -10, 10, 1001, 10]]]",
                (const size_t[]){10, 100, 2000}, (const uint32_t[]){42, 7, 0}, 3);
    /* C: base 2 */
    weft_space *c;
    REQUIRE_OK(weft_space_create(&c));
    REQUIRE_OK(weft_space_add_logspace(c, "alpha", -3, 5, 33, 2));
    fprintf(o, ",\n");
    write_space(o, c, "[[[\"alpha\", \"logspace\", -3, 5, 33, 2]]]", (const size_t[]){5, 20},
                (const uint32_t[]){0, 123456789}, 2);
    fprintf(o, "],\n \"folds\": [\n");
    bool first = true;
    const size_t ns[] = {10, 103, 569};
    for (int t = 0; t < 3; t++) {
        int64_t *y = labels(ns[t], 100 + (uint64_t)t);
        for (size_t k = 2; k <= 5; k += 3)
            for (int sh = 0; sh < 2; sh++) {
                uint32_t seed = sh ? 17u * (uint32_t)k + (uint32_t)t : 0;
                weft_folds *f = kfold(ns[t], k, sh, seed);
                fprintf(o, "%s", first ? "" : ",\n");
                first = false;
                write_folds(o, f, "kfold", k, sh, seed, NULL);
                weft_folds_destroy(f);
                weft_folds_options fo = WEFT_FOLDS_OPTIONS_INIT;
                fo.n_splits = k;
                fo.shuffle = sh;
                fo.seed = seed;
                if (weft_folds_stratified(y, ns[t], &fo, &f) == 0) {
                    fprintf(o, ",\n");
                    write_folds(o, f, "stratified", k, sh, seed, y);
                    weft_folds_destroy(f);
                }
            }
        free(y);
    }
    fprintf(o, "]}\n");
    fclose(o);
    weft_space_destroy(a);
    weft_space_destroy(b);
    weft_space_destroy(c);
    run_oracle("spaces", "oracle_spaces.json");
}

#ifdef WEFT_HAVE_LIBSVM
static const double SVC_C[] = {0.1, 1, 10, 100};
static const double SVC_GAMMA[] = {0.001, 0.01, 0.1};
static const double SVC_TOL[] = {1e-3};

/* The SVC search of the oracle comparison on `ex`: stratified 5-fold,
 * shuffled with seed 0, over the grid above. */
static weft_search_result *svc_search(weft_executor *ex, weft_folds **folds_out)
{
    char err[256];
    const svc_data *ds = svc_data_get(SVC_DATA, err, sizeof err);
    if (!ds) SKIP("%s", err);
    weft_folds_options fo = WEFT_FOLDS_OPTIONS_INIT;
    fo.n_splits = 5;
    fo.shuffle = true;
    fo.seed = 0;
    weft_folds *f;
    REQUIRE_OK(weft_folds_stratified(ds->y, ds->n, &fo, &f));
    weft_space *s;
    REQUIRE_OK(weft_space_create(&s));
    REQUIRE_OK(weft_space_add_doubles(s, "C", SVC_C, 4));
    REQUIRE_OK(weft_space_add_doubles(s, "gamma", SVC_GAMMA, 3));
    REQUIRE_OK(weft_space_add_doubles(s, "tol", SVC_TOL, 1));
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.context = SVC_DATA;
    o.context_len = strlen(SVC_DATA);
    weft_search_result *r = NULL;
    int rc = weft_search_run(ex, svc_evaluate, s, f, &o, &r);
    CHECK_MSG(rc == 0, "weft_search_run: %s (%s)", weft_strerror(rc), weft_last_error());
    size_t failed = 1;
    if (r) weft_search_result_calls(r, NULL, NULL, &failed);
    CHECK_EQ_U64(failed, 0);
    weft_space_destroy(s);
    if (folds_out)
        *folds_out = f;
    else
        weft_folds_destroy(f);
    return r;
}

static bool same_scores(const weft_search_result *a, const weft_search_result *b)
{
    if (!a || !b || weft_search_result_count(a) != weft_search_result_count(b)) return false;
    for (size_t i = 0; i < weft_search_result_count(a); i++)
        for (size_t k = 0; k < weft_search_result_splits(a); k++) {
            double x, y;
            weft_search_result_score(a, i, k, &x);
            weft_search_result_score(b, i, k, &y);
            if (memcmp(&x, &y, sizeof x) != 0) return false;
        }
    return true;
}
#endif

TEST(svc_search_matches_gridsearchcv_on_every_level)
{
#ifndef WEFT_HAVE_LIBSVM
    SKIP("built without libsvm (libsvm-dev)");
#else
    const weft_backend bs[3] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS, WEFT_BACKEND_PROCESSES};
    weft_search_result *ref = NULL;
    weft_folds *folds = NULL;
    for (int b = 0; b < 3; b++) {
        weft_executor *ex = exec_of(bs[b]);
        if (!ex) continue;
        weft_search_result *r = svc_search(ex, b == 0 ? &folds : NULL);
        weft_executor_destroy(ex);
        REQUIRE(r);
        if (!ref) {
            ref = r;
            continue;
        }
        CHECK_MSG(same_scores(ref, r), "%s scores differ from serial's", weft_backend_name(bs[b]));
        weft_search_result_destroy(r);
    }
    REQUIRE(ref && folds);
    size_t best;
    REQUIRE_OK(weft_search_result_best(ref, &best));
    weft_search_row row;
    weft_search_result_row(ref, best, &row);
    printf("    weft best: candidate %zu, mean %.6f\n", best, row.mean_test_score);
    CHECK(row.mean_test_score > 0.95); /* breast cancer with an RBF SVC: ~0.97-0.98 */
    REQUIRE_OK(weft_search_result_write_json(ref, "svc_weft.json"));
    FILE *o = fopen("svc_in.json", "w");
    REQUIRE(o);
    fprintf(o, "{\"data\": \"%s\", \"weft\": \"svc_weft.json\",\n \"grid\": {\"C\": [", SVC_DATA);
    for (int i = 0; i < 4; i++) fprintf(o, "%s%.17g", i ? ", " : "", SVC_C[i]);
    fprintf(o, "], \"gamma\": [");
    for (int i = 0; i < 3; i++) fprintf(o, "%s%.17g", i ? ", " : "", SVC_GAMMA[i]);
    fprintf(o, "], \"tol\": [%.17g]},\n \"folds\": ", SVC_TOL[0]);
    write_folds(o, folds, "stratified", 5, true, 0, NULL);
    fprintf(o, "}\n");
    fclose(o);
    weft_folds_destroy(folds);
    weft_search_result_destroy(ref);
    run_oracle("svc", "svc_in.json");
#endif
}

TEST(svc_same_scores_on_mpi)
{
#ifndef WEFT_HAVE_LIBSVM
    SKIP("built without libsvm (libsvm-dev)");
#else
    if (!under_mpi) SKIP("not launched by mpirun (ctest test_search_mpi does)");
    weft_executor *ser = exec_of(WEFT_BACKEND_SERIAL), *mpi = exec_of(WEFT_BACKEND_MPI);
    REQUIRE(ser && mpi);
    weft_search_result *a = svc_search(ser, NULL), *b = svc_search(mpi, NULL);
    CHECK(same_scores(a, b));
    weft_search_result_destroy(a);
    weft_search_result_destroy(b);
    weft_executor_destroy(ser);
    weft_executor_destroy(mpi);
#endif
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* only rank 0 gets here under mpirun */
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_MPI;
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        weft_executor_destroy(probe);
    }
    return check_main(argc, argv);
}

/* gridsearch_bench.c : the SVC grid search, weft beside scikit-learn.
 *
 * Workload `gridsearch_svc`: 500 candidates (C = logspace(-2, 3, 10), gamma =
 * logspace(-5, 0, 10), tol in {1e-2, 1e-3, 1e-4, 1e-5, 1e-6}) x stratified
 * 5-fold CV (shuffled, seed 0) of an RBF C-SVC on the breast cancer data
 * set (data/breast_cancer/, 569 x 30), features standardized on each
 * training fold: 2500 fits of libsvm. weft runs examples/svc_task.h through
 * weft_search_run; the anchor (bench/gridsearch_anchor.py) runs
 * GridSearchCV(Pipeline([StandardScaler(), SVC()]), same grid,
 * StratifiedKFold(5, shuffle=True, random_state=0)) -- the same folds, as
 * tests/test_search.c checks -- with n_jobs=1 and n_jobs=2, in the same run.
 *
 * Systems (seconds per whole search, lower is better):
 *   weft-threads-1, weft-threads-2   weft on 1 and 2 worker threads
 *   weft-processes-2                 2 worker processes
 *   sklearn-n_jobs-1, sklearn-n_jobs-2   GridSearchCV (joblib's loky pool,
 *                                    started by an untimed small search first)
 * Checks: every weft system gives the same scores, and its best mean score
 * is within 0.01 of scikit-learn's (the anchor compares, given weft's).
 * Targets (issue 16): weft on 2 workers at least as fast as scikit-learn
 * with 2 jobs, and at least 1.8x weft on 1 worker.
 *
 * Usage: gridsearch_bench [--quick] [--reps N]   (--quick: 1 run each) */
#define _GNU_SOURCE
#include "bench.h"

#include <weft.h>

#include "svc_task.h"

#ifndef WEFT_DATA_DIR
#define WEFT_DATA_DIR "data"
#endif
#define DATA WEFT_DATA_DIR "/breast_cancer/breast_cancer.csv"
#define BENCH "gridsearch_svc"

static weft_space *make_space(void)
{
    weft_space *s = NULL;
    static const double tol[5] = {1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
    if (weft_space_create(&s) || weft_space_add_logspace(s, "C", -2, 3, 10, 10) ||
        weft_space_add_logspace(s, "gamma", -5, 0, 10, 10) ||
        weft_space_add_doubles(s, "tol", tol, 5)) {
        bench_fail("space: %s", weft_last_error());
        weft_space_destroy(s);
        return NULL;
    }
    return s;
}

/* One search; @return its seconds, or -1; *best the best mean score and
 * scores[] (2500) every split score, for the cross-system check. */
static double one_search(weft_executor *ex, const weft_space *s, const weft_folds *f, double *best,
                         double *scores)
{
    weft_search_options o = WEFT_SEARCH_OPTIONS_INIT;
    o.context = DATA;
    o.context_len = strlen(DATA);
    weft_search_result *r = NULL;
    double t0 = bench_now();
    int rc = weft_search_run(ex, svc_evaluate, s, f, &o, &r);
    double dt = bench_now() - t0;
    size_t failed = 0, bi;
    if (rc == 0) weft_search_result_calls(r, NULL, NULL, &failed);
    if (rc || failed || weft_search_result_best(r, &bi) != 0) {
        bench_fail("weft_search_run: %s (%s), %zu failed calls", weft_strerror(rc),
                   weft_last_error(), failed);
        weft_search_result_destroy(r);
        return -1;
    }
    weft_search_row row;
    weft_search_result_row(r, bi, &row);
    *best = row.mean_test_score;
    size_t ns = weft_search_result_splits(r);
    for (size_t i = 0; i < weft_search_result_count(r); i++)
        for (size_t k = 0; k < ns; k++) weft_search_result_score(r, i, k, &scores[i * ns + k]);
    weft_search_result_destroy(r);
    return dt;
}

static double ref_scores[2500], ref_best = NAN;
static bool have_ref;

static void measure(weft_backend b, int workers, const char *sys, int reps, const weft_space *s,
                    const weft_folds *f)
{
    weft_options eo = WEFT_OPTIONS_INIT;
    eo.backend = b;
    eo.workers = workers;
    weft_executor *ex;
    if (weft_executor_create(&eo, &ex) != 0) {
        bench_skip(BENCH, sys, weft_last_error());
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=%s", BENCH, sys);
    bench_watchdog(900, what);
    double samples[BENCH_MAX_SAMPLES], scores[2500], best = NAN;
    int n = 0;
    for (int i = 0; i < reps && n < BENCH_MAX_SAMPLES; i++) {
        double t = one_search(ex, s, f, &best, scores);
        if (t < 0) break;
        samples[n++] = t;
        if (!have_ref) {
            memcpy(ref_scores, scores, sizeof scores);
            ref_best = best;
            have_ref = true;
        } else if (memcmp(ref_scores, scores, sizeof scores) != 0) {
            bench_fail("%s: the scores differ from the first system's", sys);
        }
    }
    alarm(0);
    weft_executor_destroy(ex);
    if (n > 0) bench_report(BENCH, sys, samples, n, "s");
    printf("# %s: best mean score %.6f\n", sys, best);
    bench_settle(200);
}

int main(int argc, char **argv)
{
    weft_init(&argc, &argv);
    bench_begin(argv[0], __FILE__);
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 1;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: gridsearch_bench [--quick] [--reps N]\n");
            return 2;
        }
    }
    char err[256];
    const svc_data *ds = svc_data_get(DATA, err, sizeof err);
    if (!ds) {
        bench_fail("%s", err);
        return bench_finish();
    }
    weft_folds_options fo = WEFT_FOLDS_OPTIONS_INIT;
    fo.n_splits = 5;
    fo.shuffle = true;
    fo.seed = 0;
    weft_folds *f = NULL;
    weft_space *s = make_space();
    if (!s || weft_folds_stratified(ds->y, ds->n, &fo, &f) != 0) {
        bench_fail("folds: %s", weft_last_error());
        return bench_finish();
    }
    measure(WEFT_BACKEND_THREADS, 1, "weft-threads-1", reps, s, f);
    measure(WEFT_BACKEND_THREADS, 2, "weft-threads-2", reps, s, f);
    measure(WEFT_BACKEND_PROCESSES, 2, "weft-processes-2", reps, s, f);
    weft_space_destroy(s);
    weft_folds_destroy(f);

    for (int j = 1; j <= 2; j++) {
        char args[400], sys[32];
        snprintf(args, sizeof args, "%d %d '%s' %.17g", j, reps, DATA, ref_best);
        snprintf(sys, sizeof sys, "sklearn-n_jobs-%d", j);
        bench_python_report(BENCH, sys, "s", "gridsearch_anchor.py", args, 1800);
        bench_settle(200);
    }
    bench_ratio(BENCH, "sklearn-n_jobs-1", "weft-threads-1");
    bench_ratio(BENCH, "sklearn-n_jobs-2", "weft-threads-2");
    bench_ratio(BENCH, "sklearn-n_jobs-2", "weft-processes-2");
    bench_ratio(BENCH, "weft-threads-1", "weft-threads-2");
    const bench_result *w1 = bench_get(BENCH, "weft-threads-1");
    const bench_result *w2 = bench_get(BENCH, "weft-threads-2");
    const bench_result *k2 = bench_get(BENCH, "sklearn-n_jobs-2");
    bench_target("gridsearch_svc: weft on 2 workers at least as fast as scikit-learn n_jobs=2",
                 w2 && k2, w2 && k2 && w2->median <= k2->median);
    bench_target("gridsearch_svc: weft on 2 workers >= 1.8x weft on 1 worker", w1 && w2,
                 w1 && w2 && w1->median / w2->median >= 1.8);
    return bench_finish();
}

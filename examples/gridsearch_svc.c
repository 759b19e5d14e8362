/* gridsearch_svc.c : scikit-learn's GridSearchCV(SVC()) in C, on any level.
 *
 * The tutorial's grid search: for every parameter set and every
 * cross-validation split, evaluate_one(SVC, params, split) -- here libsvm's
 * C-SVC (the library scikit-learn's SVC wraps) with an RBF kernel, over C,
 * gamma and tol, on the breast cancer data set scikit-learn ships
 * (data/breast_cancer/, 569 samples, 30 features, 2 classes), with
 * stratified 5-fold cross-validation, features standardized on each
 * training fold. The task is examples/svc_task.h; weft_search_run sends
 * its calls to the executor of the level chosen, streams the scores into a
 * progress bar, and ranks the candidates as GridSearchCV's cv_results_.
 *
 * In Python, the same search is
 *
 *     pipe = make_pipeline(StandardScaler(), SVC())
 *     grid = {"svc__C": np.logspace(-1, 3, 5), "svc__gamma": np.logspace(-4, 0, 5),
 *             "svc__tol": [1e-3, 1e-4]}
 *     cv = StratifiedKFold(5, shuffle=True, random_state=0)
 *     GridSearchCV(pipe, grid, cv=cv, n_jobs=2).fit(X, y)
 *
 * and tests/test_search.c checks that both pick the same parameters with
 * mean scores within 0.01 (docs/search.md).
 *
 * Usage: gridsearch_svc [--level serial|threads|processes|mpi] [--workers N]
 *                       [--data FILE] [--quick] [--csv FILE] [--json FILE]
 *                       [--memo DIR] [--budget SECONDS] [--progress]
 *   --level mpi runs under mpirun: mpirun -n 3 gridsearch_svc --level mpi
 *   --quick     a 2 x 2 grid instead of 5 x 5 x 2
 *   --memo DIR  keep the scores in a memo: a second run evaluates nothing
 * Exit status: 0; 1 if the search failed; 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "svc_task.h"

#ifndef WEFT_DATA_DIR
#define WEFT_DATA_DIR "data"
#endif

static void usage(void)
{
    fprintf(stderr, "usage: gridsearch_svc [--level serial|threads|processes|mpi] [--workers N]\n"
                    "                      [--data FILE] [--quick] [--csv FILE] [--json FILE]\n"
                    "                      [--memo DIR] [--budget SECONDS] [--progress]\n");
}

static void print_value(const weft_param_value *v)
{
    if (v->kind == WEFT_PARAM_DOUBLE)
        printf("%g", v->d);
    else if (v->kind == WEFT_PARAM_INT)
        printf("%lld", (long long)v->i);
    else
        printf("%s", v->s);
}

int main(int argc, char **argv)
{
    /* first: under mpirun, ranks > 0 become workers here and never return */
    int rc = weft_init(&argc, &argv);
    if (rc) {
        fprintf(stderr, "gridsearch_svc: weft_init: %s\n", weft_last_error());
        return 1;
    }
    const char *data = WEFT_DATA_DIR "/breast_cancer/breast_cancer.csv";
    const char *csv = NULL, *json = NULL, *memo_dir = NULL;
    weft_backend level = WEFT_BACKEND_DEFAULT;
    int workers = 0;
    bool quick = false, progress = false;
    double budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--progress")) {
            progress = true;
        } else if (v && !strcmp(a, "--level")) {
            if (weft_backend_parse(v, &level) != 0) {
                usage();
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--workers")) {
            workers = atoi(v), i++;
        } else if (v && !strcmp(a, "--data")) {
            data = v, i++;
        } else if (v && !strcmp(a, "--csv")) {
            csv = v, i++;
        } else if (v && !strcmp(a, "--json")) {
            json = v, i++;
        } else if (v && !strcmp(a, "--memo")) {
            memo_dir = v, i++;
        } else if (v && !strcmp(a, "--budget")) {
            budget = atof(v), i++;
        } else {
            usage();
            return 2;
        }
    }

    /* the labels, for the stratified folds (the task reads the data itself,
     * in whichever process or rank it runs) */
    char err[256];
    const svc_data *ds = svc_data_get(data, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "gridsearch_svc: %s\n", err);
        return 1;
    }
    weft_folds_options fo = WEFT_FOLDS_OPTIONS_INIT;
    fo.n_splits = 5;
    fo.shuffle = true;
    fo.seed = 0;
    weft_folds *folds = NULL;
    weft_space *space = NULL;
    weft_executor *ex = NULL;
    weft_memo *memo = NULL;
    weft_search_result *res = NULL;
    if ((rc = weft_folds_stratified(ds->y, ds->n, &fo, &folds)) != 0) goto fail;

    /* C and gamma on log scales, as scikit-learn's SVC guide suggests */
    if ((rc = weft_space_create(&space)) != 0) goto fail;
    if ((rc = weft_space_add_logspace(space, "C", -1, 3, quick ? 2 : 5, 10)) != 0) goto fail;
    if ((rc = weft_space_add_logspace(space, "gamma", -4, 0, quick ? 2 : 5, 10)) != 0) goto fail;
    if ((rc = weft_space_add_doubles(space, "tol", (const double[]){1e-3, 1e-4}, quick ? 1 : 2)) !=
        0)
        goto fail;

    weft_options eo = WEFT_OPTIONS_INIT;
    eo.backend = level;
    eo.workers = workers;
    if ((rc = weft_executor_create(&eo, &ex)) != 0) goto fail;
    if (memo_dir && (rc = weft_memo_open(memo_dir, 0, NULL, &memo)) != 0) goto fail;

    weft_search_options so = WEFT_SEARCH_OPTIONS_INIT;
    so.context = data; /* every call gets the path; the task reads the data once per process */
    so.context_len = strlen(data);
    so.memo = memo;
    so.budget = budget;
    so.progress = progress ? WEFT_SHOW_PROGRESS_ON : WEFT_SHOW_PROGRESS_DEFAULT;
    double t0 = weft_now();
    if ((rc = weft_search_run(ex, svc_evaluate, space, folds, &so, &res)) != 0) goto fail;
    double wall = weft_now() - t0;

    size_t evaluated, cached, failed, best;
    weft_search_result_calls(res, &evaluated, &cached, &failed);
    printf("gridsearch_svc: %zu candidates x %zu folds on %s (%d workers): %.2f s, "
           "%zu fits, %zu from the memo, %zu failed\n",
           weft_search_result_count(res), weft_search_result_splits(res),
           weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex), wall, evaluated,
           cached, failed);
    if (weft_search_result_best(res, &best) != 0) {
        fprintf(stderr, "gridsearch_svc: no candidate has a score\n");
        rc = WEFT_ETASK;
        goto fail;
    }
    /* the five best, as cv_results_ sorted by rank_test_score */
    printf("rank  mean    std     C         gamma     tol\n");
    for (size_t want = 1, shown = 0; shown < 5 && want <= weft_search_result_count(res); want++) {
        for (size_t i = 0; i < weft_search_result_count(res) && shown < 5; i++) {
            weft_search_row row;
            weft_search_result_row(res, i, &row);
            if (row.rank_test_score != want) continue;
            printf("%-5zu %.4f  %.4f ", row.rank_test_score, row.mean_test_score,
                   row.std_test_score);
            const char *names[3] = {"C", "gamma", "tol"};
            for (int k = 0; k < 3; k++) {
                weft_param_value v;
                printf(" ");
                if (weft_search_result_param(res, i, names[k], &v) == 0) print_value(&v);
                printf("%*s", 8, "");
            }
            printf("\n");
            shown++;
        }
    }
    weft_search_row row;
    weft_search_result_row(res, best, &row);
    weft_param_value c, g, t;
    weft_search_result_param(res, best, "C", &c);
    weft_search_result_param(res, best, "gamma", &g);
    weft_search_result_param(res, best, "tol", &t);
    printf("best params: C=%g gamma=%g tol=%g\nbest score: %.4f (std %.4f)\n", c.d, g.d, t.d,
           row.mean_test_score, row.std_test_score);
    if (csv && (rc = weft_search_result_write_csv(res, csv)) != 0) goto fail;
    if (json && (rc = weft_search_result_write_json(res, json)) != 0) goto fail;
    weft_search_result_destroy(res);
    weft_executor_destroy(ex);
    weft_memo_close(memo);
    weft_space_destroy(space);
    weft_folds_destroy(folds);
    return 0;
fail:
    fprintf(stderr, "gridsearch_svc: %s (%s)\n", weft_strerror(rc), weft_last_error());
    weft_search_result_destroy(res);
    weft_executor_destroy(ex);
    weft_memo_close(memo);
    weft_space_destroy(space);
    weft_folds_destroy(folds);
    return 1;
}

/* svc_task.h : the evaluate task of the SVC grid search -- libsvm's C-SVC
 * with an RBF kernel, scored by accuracy on one cross-validation split.
 * Shared by examples/gridsearch_svc.c, tests/test_search.c and
 * bench/gridsearch_bench.c, so the three evaluate the same thing.
 *
 * One call (weft_search_call) carries the parameters C, gamma and tol, the
 * split's train and test indices, and as context the path of the data set
 * (scikit-learn's breast_cancer.csv: a first line "n,d,name0,name1", then
 * n rows of d features and an integer class). What the task does, and
 * what tests/search_oracle.py does the same way in scikit-learn:
 *
 *   1. standardize: mean and population standard deviation of each
 *      feature over the train rows (StandardScaler fit on the training
 *      fold; a constant feature is scaled by 1), applied to train and test
 *   2. train libsvm's C-SVC, RBF kernel, with C, gamma, eps = tol,
 *      cache 200 MB, shrinking on, no probabilities: SVC(C, gamma, tol)'s
 *      defaults in scikit-learn
 *   3. output the accuracy on the test rows (one double)
 *
 * The data set is read once per process, on the first call, and kept:
 * worker processes and MPI ranks each read it from the path, which is why
 * the path (not the data) is the context. libsvm's progress printing is
 * silenced at the same time.
 *
 * The including file defines _POSIX_C_SOURCE (or _GNU_SOURCE) and links
 * -lsvm; this header includes <weft.h>, <libsvm/svm.h> and <pthread.h>. */
#ifndef WEFT_SVC_TASK_H
#define WEFT_SVC_TASK_H

#include <libsvm/svm.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

typedef struct svc_data {
    size_t n, d;
    double *x;  /* n rows of d features */
    int64_t *y; /* n class labels */
} svc_data;

static void svc_quiet(const char *s)
{
    (void)s;
}

/* Reads `path` into `*out`. @return 0, or -1 with a message in err. */
static int svc_data_read(const char *path, svc_data *out, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[16384];
    memset(out, 0, sizeof *out);
    if (!f) {
        snprintf(err, cap, "cannot open %s", path);
        return -1;
    }
    unsigned long n = 0, d = 0;
    if (!fgets(line, sizeof line, f) || sscanf(line, "%lu,%lu", &n, &d) != 2 || n == 0 || d == 0 ||
        n > 10000000ul || d > 100000ul) {
        snprintf(err, cap, "%s: the first line is not \"n_samples,n_features,...\"", path);
        fclose(f);
        return -1;
    }
    out->x = malloc((size_t)n * d * sizeof *out->x);
    out->y = malloc((size_t)n * sizeof *out->y);
    if (!out->x || !out->y) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!fgets(line, sizeof line, f)) {
            snprintf(err, cap, "%s: %zu rows, the header says %lu", path, i, n);
            goto fail;
        }
        char *p = line, *end;
        for (size_t j = 0; j <= d; j++) {
            double v = strtod(p, &end);
            if (end == p || (j < d && *end != ',')) {
                snprintf(err, cap, "%s: row %zu, field %zu is not a number", path, i + 1, j);
                goto fail;
            }
            if (j < d)
                out->x[i * d + j] = v;
            else
                out->y[i] = (int64_t)v;
            p = end + 1;
        }
    }
    fclose(f);
    out->n = n;
    out->d = d;
    return 0;
fail:
    fclose(f);
    free(out->x);
    free(out->y);
    memset(out, 0, sizeof *out);
    return -1;
}

/* The data set of `path`, read on the first call of this process and kept
 * until it exits. Threads: any. @return NULL with a message in err. */
static const svc_data *svc_data_get(const char *path, char *err, size_t cap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static svc_data data;
    static char loaded[4096];
    const svc_data *r = &data;
    pthread_mutex_lock(&lock);
    if (!loaded[0] || strcmp(loaded, path) != 0) {
        free(data.x);
        free(data.y);
        loaded[0] = '\0';
        svm_set_print_string_function(svc_quiet);
        if (strlen(path) >= sizeof loaded) {
            snprintf(err, cap, "path too long");
            r = NULL;
        } else if (svc_data_read(path, &data, err, cap) != 0) {
            r = NULL;
        } else {
            snprintf(loaded, sizeof loaded, "%s", path);
        }
    }
    pthread_mutex_unlock(&lock);
    return r;
}

/* Standardizes, trains on train[0..ntr), scores on test[0..nte).
 * @return 0 and the accuracy in *acc, or -1 with a message in err. */
static int svc_fit_score(const svc_data *ds, const size_t *train, size_t ntr, const size_t *test,
                         size_t nte, double C, double gamma, double tol, double *acc, char *err,
                         size_t cap)
{
    size_t d = ds->d;
    double *mu = calloc(d, sizeof *mu), *sd = calloc(d, sizeof *sd);
    struct svm_node *nodes = malloc((ntr + 1) * (d + 1) * sizeof *nodes);
    struct svm_node **rows = malloc((ntr ? ntr : 1) * sizeof *rows);
    double *labels = malloc((ntr ? ntr : 1) * sizeof *labels);
    int rc = -1;
    if (!mu || !sd || !nodes || !rows || !labels || ntr == 0 || nte == 0) {
        snprintf(err, cap, ntr && nte ? "out of memory" : "an empty train or test set");
        goto out;
    }
    for (size_t i = 0; i < ntr; i++)
        for (size_t j = 0; j < d; j++) mu[j] += ds->x[train[i] * d + j];
    for (size_t j = 0; j < d; j++) mu[j] /= (double)ntr;
    for (size_t i = 0; i < ntr; i++)
        for (size_t j = 0; j < d; j++) {
            double t = ds->x[train[i] * d + j] - mu[j];
            sd[j] += t * t;
        }
    for (size_t j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / (double)ntr);
        if (sd[j] < 10 * 2.220446049250313e-16) sd[j] = 1.0;
    }
    for (size_t i = 0; i < ntr; i++) {
        struct svm_node *row = &nodes[i * (d + 1)];
        for (size_t j = 0; j < d; j++)
            row[j] = (struct svm_node){(int)j + 1, (ds->x[train[i] * d + j] - mu[j]) / sd[j]};
        row[d].index = -1;
        rows[i] = row;
        labels[i] = (double)ds->y[train[i]];
    }
    struct svm_problem prob = {.l = (int)ntr, .y = labels, .x = rows};
    struct svm_parameter par = {.svm_type = C_SVC,
                                .kernel_type = RBF,
                                .degree = 3,
                                .gamma = gamma,
                                .coef0 = 0,
                                .cache_size = 200,
                                .eps = tol,
                                .C = C,
                                .nu = 0.5,
                                .p = 0.1,
                                .shrinking = 1,
                                .probability = 0};
    const char *bad = svm_check_parameter(&prob, &par);
    if (bad) {
        snprintf(err, cap, "libsvm: %s", bad);
        goto out;
    }
    struct svm_model *model = svm_train(&prob, &par);
    if (!model) {
        snprintf(err, cap, "libsvm: svm_train failed");
        goto out;
    }
    struct svm_node *q = &nodes[ntr * (d + 1)]; /* scratch row for the test samples */
    size_t right = 0;
    for (size_t i = 0; i < nte; i++) {
        for (size_t j = 0; j < d; j++)
            q[j] = (struct svm_node){(int)j + 1, (ds->x[test[i] * d + j] - mu[j]) / sd[j]};
        q[d].index = -1;
        if (svm_predict(model, q) == (double)ds->y[test[i]]) right++;
    }
    svm_free_and_destroy_model(&model);
    *acc = (double)right / (double)nte;
    rc = 0;
out:
    free(mu);
    free(sd);
    free(nodes);
    free(rows);
    free(labels);
    return rc;
}

/* The evaluate task: one (candidate, split) call of weft_search_run. */
static int svc_evaluate(weft_ctx *ctx, const void *in, size_t len)
{
    weft_search_call *call;
    char err[256] = "";
    int rc = weft_search_call_parse(in, len, &call);
    if (rc) return weft_ctx_fail(ctx, rc, "svc_evaluate: %s", weft_last_error());
    const char *path = weft_search_call_context(call, NULL);
    double C, gamma, tol = 1e-3, acc = 0;
    const svc_data *ds = svc_data_get(path, err, sizeof err);
    if (!ds) {
        weft_search_call_destroy(call);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "svc_evaluate: %s", err);
    }
    if (weft_search_call_double(call, "C", &C) != 0 ||
        weft_search_call_double(call, "gamma", &gamma) != 0) {
        weft_search_call_destroy(call);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "svc_evaluate: the candidate lacks C or gamma");
    }
    (void)weft_search_call_double(call, "tol", &tol); /* optional: SVC's default 1e-3 */
    size_t ntr, nte;
    const size_t *train = weft_search_call_train(call, &ntr);
    const size_t *test = weft_search_call_test(call, &nte);
    if (weft_search_call_samples(call) != ds->n) {
        weft_search_call_destroy(call);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "svc_evaluate: folds of %zu samples, data of %zu",
                             weft_search_call_samples(call), ds->n);
    }
    rc = svc_fit_score(ds, train, ntr, test, nte, C, gamma, tol, &acc, err, sizeof err);
    weft_search_call_destroy(call);
    if (rc) return weft_ctx_fail(ctx, WEFT_ETASK, "svc_evaluate: %s", err);
    return weft_ctx_set_output(ctx, &acc, sizeof acc);
}
WEFT_TASK_REGISTER(svc_evaluate);

#endif

/* weft/search.h : cross-validated parameter search -- scikit-learn's
 * ParameterGrid / ParameterSampler, KFold / StratifiedKFold and
 * GridSearchCV / RandomizedSearchCV for weft's tasks, on every level.
 * Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_space        named parameter lists (values, numpy.linspace and
 *                     numpy.logspace ranges), in one grid or several
 *                     sub-grids (a list of dicts); its candidates are the
 *                     grid points in ParameterGrid's order, and a seeded
 *                     sample of them is ParameterSampler's
 *   weft_folds        k-fold and stratified k-fold splits of n samples,
 *                     shuffled with a seed as scikit-learn shuffles them
 *   weft_search_run   submits one call of the user's registered evaluate
 *                     task per (candidate, split) to any executor, streams
 *                     the scores as they come, aggregates, ranks, stops on a
 *                     time budget or a target score, skips calls a memo
 *                     already holds
 *   weft_search_result  cv_results_: mean/std/rank per candidate, written
 *                     as CSV or JSON with scikit-learn's column names
 *
 * The evaluate task reads its call with weft_search_call_parse (the
 * parameters by name, the split's train and test indices, the caller's
 * context bytes) and outputs one double: the score, higher is better.
 * docs/search.md says where each piece matches scikit-learn and why. */
#ifndef WEFT_SEARCH_H
#define WEFT_SEARCH_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/search.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Parameter values and spaces
 * ------------------------------------------------------------------------ */

typedef enum weft_param_kind {
    WEFT_PARAM_DOUBLE = 1, /* a double (`d`) */
    WEFT_PARAM_INT = 2,    /* a 64-bit integer (`i`) */
    WEFT_PARAM_STRING = 3, /* a NUL-terminated string (`s`) */
} weft_param_kind;

/* One parameter value. `s` is owned by the object it came from (the space,
 * the result or the call) and lives as long as it does. */
typedef struct weft_param_value {
    weft_param_kind kind;
    double d;
    int64_t i;
    const char *s;
} weft_param_value;

/* A parameter space: one or more sub-grids (scikit-learn's param_grid as a
 * dict or a list of dicts), each a set of named, non-empty value lists.
 * Threads: build it on one thread; once built, every const function may be
 * called from any number of threads at once. */
typedef struct weft_space weft_space;

/* weft_space_create() :
 * An empty space with one empty sub-grid (it has one candidate, {}, as
 * ParameterGrid({}) has). Ownership: destroy it with weft_space_destroy().
 * @return 0, WEFT_EINVAL (NULL out), WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_space_create(weft_space **out);

/* weft_space_destroy() : frees `s`; NULL is a no-op. @return 0. */
WEFT_API int weft_space_destroy(weft_space *s);

/* weft_space_add_doubles(), weft_space_add_ints(), weft_space_add_strings() :
 * Adds the parameter `name` (copied) with the values[0..n) (copied) to the
 * current sub-grid; the values keep their order.
 * @return 0; WEFT_EINVAL (NULL or empty name, n == 0, NULL values, a name
 * already in this sub-grid, a NaN); WEFT_EOVERFLOW (the number of
 * candidates would not fit a size_t); WEFT_ENOMEM. Nothing is added on
 * error. */
WEFT_API int weft_space_add_doubles(weft_space *s, const char *name, const double *values,
                                    size_t n);
WEFT_API int weft_space_add_ints(weft_space *s, const char *name, const int64_t *values, size_t n);
WEFT_API int weft_space_add_strings(weft_space *s, const char *name, const char *const *values,
                                    size_t n);

/* weft_space_add_linspace() :
 * Adds `name` with numpy.linspace(start, stop, num) (endpoint included):
 * value i is i * ((stop - start) / (num - 1)) + start, the last is `stop`
 * exactly, computed in the same order as numpy, so the doubles are numpy's.
 * @return as weft_space_add_doubles (also WEFT_EINVAL for non-finite ends). */
WEFT_API int weft_space_add_linspace(weft_space *s, const char *name, double start, double stop,
                                     size_t num);

/* weft_space_add_logspace() :
 * Adds `name` with numpy.logspace(start, stop, num, base): pow(base, v) for
 * each v of linspace(start, stop, num) with the C library's pow; base 0
 * means 10. E.g. gamma over logspace(-10, 10, 1001). (numpy on an AVX-512
 * CPU uses a vectorized pow that can be 1 ulp off: docs/search.md.)
 * @return as weft_space_add_linspace (WEFT_EINVAL for a negative base). */
WEFT_API int weft_space_add_logspace(weft_space *s, const char *name, double start, double stop,
                                     size_t num, double base);

/* weft_space_new_grid() :
 * Starts another sub-grid: parameters added from now on go to it (the next
 * dict of a list of dicts). Candidates run through the sub-grids in the
 * order they were started. @return 0, WEFT_EINVAL, WEFT_EOVERFLOW, WEFT_ENOMEM. */
WEFT_API int weft_space_new_grid(weft_space *s);

/* weft_space_size() : the number of candidates: the sum over sub-grids of
 * the product of their list lengths (len(ParameterGrid)); 0 for NULL. */
WEFT_API size_t weft_space_size(const weft_space *s);

/* weft_space_candidate() :
 * The k-th parameter (k = 0, 1, ... in name order, strcmp: Python's
 * sorted() of the keys) of candidate `index` (ParameterGrid order: within a
 * sub-grid, the last name in sorted order varies fastest, as
 * itertools.product over the sorted items). `*name` and string values
 * belong to the space.
 * @return 0; WEFT_EOF once k passes the candidate's last parameter;
 * WEFT_EINVAL (NULL arguments, index >= weft_space_size). */
WEFT_API int weft_space_candidate(const weft_space *s, size_t index, size_t k, const char **name,
                                  weft_param_value *value);

/* weft_space_lookup() :
 * The value of parameter `name` in candidate `index`.
 * @return 0; WEFT_ENOENT (this candidate's sub-grid has no such name);
 * WEFT_EINVAL. */
WEFT_API int weft_space_lookup(const weft_space *s, size_t index, const char *name,
                               weft_param_value *value);

/* weft_space_sample() :
 * ParameterSampler(space, n_iter, random_state=seed) over a space of lists:
 * min(n_iter, size) distinct candidate indices, chosen without replacement
 * exactly as scikit-learn 1.2's sample_without_replacement chooses them
 * with numpy's RandomState(seed) (MT19937; permutation, tracking selection
 * or reservoir sampling by the same ratio rules), written to
 * out[0..*count) in scikit-learn's order. `out` holds at least
 * min(n_iter, weft_space_size(s)) entries. Threads: any (const).
 * @return 0, WEFT_EINVAL (NULL arguments), WEFT_ENOMEM. */
WEFT_API int weft_space_sample(const weft_space *s, size_t n_iter, uint32_t seed, size_t *out,
                               size_t *count);

/* ------------------------------------------------------------------------
 * Cross-validation folds
 * ------------------------------------------------------------------------ */

/* The splits of n samples into k (train, test) pairs; every sample is in
 * exactly one test set. Immutable once made: any thread, concurrently. */
typedef struct weft_folds weft_folds;

typedef struct weft_folds_options {
    size_t size;     /* sizeof the struct as the caller's header had it; 0 = this layout */
    size_t n_splits; /* k; 0 = 5 (scikit-learn's default); at least 2 */
    bool shuffle;    /* shuffle before splitting (KFold(shuffle=True)) */
    uint32_t seed;   /* random_state when shuffling (numpy RandomState(seed)) */
} weft_folds_options;
/* weft_folds_options o = WEFT_FOLDS_OPTIONS_INIT; records this header's size */
#define WEFT_FOLDS_OPTIONS_INIT            \
    {                                      \
        .size = sizeof(weft_folds_options) \
    }

/* weft_folds_kfold() :
 * KFold(n_splits, shuffle, random_state=seed).split over n_samples: the
 * first n % k test folds have one sample more; the same folds as
 * scikit-learn 1.2. Ownership: weft_folds_destroy(). Threads: any.
 * @return 0, WEFT_EINVAL (NULL out, n_splits 1 or > n_samples),
 * WEFT_EOVERFLOW (n_samples over 2^32 - 1), WEFT_ENOMEM. */
WEFT_API int weft_folds_kfold(size_t n_samples, const weft_folds_options *opts, weft_folds **out);

/* weft_folds_stratified() :
 * StratifiedKFold(n_splits, shuffle, random_state=seed).split(X, y) for the
 * class labels y[0..n_samples): each class is spread over the test folds
 * as evenly as its count allows (scikit-learn 1.2's allocation and
 * shuffling, so the same folds). Threads: any.
 * @return 0, WEFT_EINVAL (NULL y or out, n_splits 1, or more splits than
 * the largest class has members: scikit-learn's ValueError), WEFT_EOVERFLOW,
 * WEFT_ENOMEM. */
WEFT_API int weft_folds_stratified(const int64_t *y, size_t n_samples,
                                   const weft_folds_options *opts, weft_folds **out);

/* weft_folds_count() : k, the number of splits (0 for NULL). */
WEFT_API size_t weft_folds_count(const weft_folds *f);
/* weft_folds_samples() : n, the number of samples (0 for NULL). */
WEFT_API size_t weft_folds_samples(const weft_folds *f);

/* weft_folds_split() :
 * Split `k`: its train and test indices, each ascending (as scikit-learn
 * gives them). The arrays belong to `f`. Any pointer argument may be NULL.
 * @return 0, WEFT_EINVAL (NULL f, k >= count). */
WEFT_API int weft_folds_split(const weft_folds *f, size_t k, const size_t **train, size_t *n_train,
                              const size_t **test, size_t *n_test);

/* weft_folds_destroy() : frees `f`; NULL is a no-op. @return 0. */
WEFT_API int weft_folds_destroy(weft_folds *f);

/* ------------------------------------------------------------------------
 * The evaluate task's side: one call = one candidate on one split
 * ------------------------------------------------------------------------ */

/* A call decoded from the task's input bytes. Owned by the task; one
 * thread. */
typedef struct weft_search_call weft_search_call;

/* weft_search_call_parse() :
 * Decodes the input `in[0..len)` an evaluate task received from
 * weft_search_run. The call copies what it needs: it outlives `in`.
 * Ownership: free it with weft_search_call_destroy().
 * @return 0, WEFT_EINVAL (not a search call: bad magic, truncated),
 * WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_search_call_parse(const void *in, size_t len, weft_search_call **out);

/* weft_search_call_destroy() : frees `c`; NULL is a no-op. @return 0. */
WEFT_API int weft_search_call_destroy(weft_search_call *c);

/* weft_search_call_param() :
 * The value of parameter `name` in this call's candidate (string values
 * belong to `c`). @return 0, WEFT_ENOENT, WEFT_EINVAL. */
WEFT_API int weft_search_call_param(const weft_search_call *c, const char *name,
                                    weft_param_value *value);

/* weft_search_call_double() :
 * Parameter `name` as a double (an integer value is converted).
 * @return 0, WEFT_ENOENT, WEFT_EINVAL (NULL, or a string value). */
WEFT_API int weft_search_call_double(const weft_search_call *c, const char *name, double *value);

/* weft_search_call_split() : the split's number, 0..n_splits-1. */
WEFT_API size_t weft_search_call_split(const weft_search_call *c);

/* weft_search_call_samples() : n, the number of samples the folds cover. */
WEFT_API size_t weft_search_call_samples(const weft_search_call *c);

/* weft_search_call_train(), weft_search_call_test() :
 * The split's train / test indices (ascending; `*n` gets their count).
 * Owned by `c`. */
WEFT_API const size_t *weft_search_call_train(const weft_search_call *c, size_t *n);
WEFT_API const size_t *weft_search_call_test(const weft_search_call *c, size_t *n);

/* weft_search_call_context() :
 * The context bytes of the search (weft_search_options.context: e.g. the
 * data set's path), `*len` their length; owned by `c`, and followed by a
 * NUL byte, so a context that is a path or a string can be used as one. */
WEFT_API const void *weft_search_call_context(const weft_search_call *c, size_t *len);

/* ------------------------------------------------------------------------
 * The runner
 * ------------------------------------------------------------------------ */

/* One finished (candidate, split) call, given to on_score as it arrives. */
typedef struct weft_search_score {
    size_t candidate; /* its row in the results, 0..candidates-1 */
    size_t index;     /* the candidate's index in the space */
    size_t split;     /* 0..n_splits-1 */
    int err;          /* 0, or the task's error (score is then NaN) */
    double score;     /* the task's score */
    bool cached;      /* found in the memo, not evaluated */
    size_t done;      /* calls finished so far, this one included */
    size_t total;     /* calls of the whole search */
} weft_search_score;

/* Streamed results: called on the thread that called weft_search_run, once
 * per finished call, in completion order. A non-zero return stops the
 * search (as a budget would: calls not started are not run). */
typedef int (*weft_search_score_cb)(void *arg, const weft_search_score *score);

typedef struct weft_search_options {
    size_t size;         /* sizeof the struct as the caller's header had it; 0 = this layout */
    size_t n_iter;       /* 0: every candidate (GridSearchCV); else a sample of
                       n_iter of them with weft_space_sample (RandomizedSearchCV) */
    uint32_t seed;       /* the sample's random_state */
    double budget;       /* seconds from the call; 0 or WEFT_FOREVER: none. When it
                       passes, no call starts any more (queued ones are
                       cancelled), running ones finish and count */
    bool stop_at_target; /* stop once a candidate's mean score over all its
                            splits is >= target (as the budget stops) */
    double target;
    weft_memo *memo;             /* optional: calls found in it are not run; new scores
                        are stored in it (key: the task's registered name and
                        the call's bytes: parameters, split, context) */
    weft_show_progress progress; /* a bar on stderr over the calls */
    const void *context;         /* bytes given to every call (copied) */
    size_t context_len;
    weft_search_score_cb on_score; /* optional streaming of scores */
    void *arg;                     /* for on_score */
    size_t max_in_flight;          /* calls submitted and unfinished at once; 0 = 4 * workers + 4 */
} weft_search_options;
/* weft_search_options o = WEFT_SEARCH_OPTIONS_INIT; records this header's size */
#define WEFT_SEARCH_OPTIONS_INIT            \
    {                                       \
        .size = sizeof(weft_search_options) \
    }

/* Why a search ended. */
typedef enum weft_search_stop {
    WEFT_SEARCH_COMPLETE = 0, /* every call ran (or came from the memo) */
    WEFT_SEARCH_BUDGET = 1,   /* the time budget passed */
    WEFT_SEARCH_TARGET = 2,   /* a candidate reached the target score */
    WEFT_SEARCH_STOPPED = 3,  /* on_score returned non-zero */
} weft_search_stop;

typedef struct weft_search_result weft_search_result;

/* weft_search_run() :
 * Evaluates the candidates of `space` (all, or opts->n_iter sampled) on
 * every split of `folds`: one call of the registered task `evaluate` per
 * (candidate, split), candidate by candidate, submitted to `ex` (any
 * backend) with at most max_in_flight unfinished at once. The task outputs
 * one double (8 bytes; more bytes: the first 8 count). A call that fails
 * (error, crash, wrong output size) scores NaN, as scikit-learn's
 * error_score=nan, and the search goes on.
 * Ownership: `*out` is the caller's (weft_search_result_destroy); `space`
 * and `folds` are only read during the call. Threads: any thread; it
 * waits on `ex` (from inside a task it helps, like weft_map).
 * @return 0 (the result says whether it stopped early: budget, target,
 * callback); WEFT_EINVAL (NULL arguments, bad options); WEFT_ENOTREG
 * (`evaluate` is not registered and a memo is given, or the backend needs
 * names); WEFT_ECLOSED; WEFT_ENOMEM; WEFT_EOVERFLOW (over 2^32 - 1
 * samples). `*out` is NULL on error. */
WEFT_API int weft_search_run(weft_executor *ex, weft_task_fn evaluate, const weft_space *space,
                             const weft_folds *folds, const weft_search_options *opts,
                             weft_search_result **out);

/* One candidate's row of cv_results_. */
typedef struct weft_search_row {
    size_t index;           /* the candidate's index in the space */
    double mean_test_score; /* mean over the splits; NaN if any split failed or did not run */
    double std_test_score;  /* population std (numpy's default) over the splits */
    size_t rank_test_score; /* 1 = best; ties share the lowest rank ("min"); NaN means
                               rank after every number, as scikit-learn ranks them */
    size_t splits_done;     /* splits with a score (from the task or the memo) */
    size_t splits_failed;   /* splits whose call failed */
    size_t splits_cached;   /* splits answered by the memo */
} weft_search_row;

/* weft_search_result_count() : candidates (rows); 0 for NULL. */
WEFT_API size_t weft_search_result_count(const weft_search_result *r);
/* weft_search_result_splits() : splits per candidate; 0 for NULL. */
WEFT_API size_t weft_search_result_splits(const weft_search_result *r);

/* weft_search_result_row() :
 * Row `i` (candidates in the order they were evaluated: space order for a
 * grid, sample order for a sample). @return 0, WEFT_EINVAL. */
WEFT_API int weft_search_result_row(const weft_search_result *r, size_t i, weft_search_row *row);

/* weft_search_result_score() :
 * split<k>_test_score of row `i` in `*score` (NaN if it failed or did not
 * run). @return 0, WEFT_EINVAL. */
WEFT_API int weft_search_result_score(const weft_search_result *r, size_t i, size_t k,
                                      double *score);

/* weft_search_result_param() :
 * Parameter `name` of row `i` (string values belong to `r`).
 * @return 0, WEFT_ENOENT, WEFT_EINVAL. */
WEFT_API int weft_search_result_param(const weft_search_result *r, size_t i, const char *name,
                                      weft_param_value *value);

/* weft_search_result_best() :
 * best_index_: the first row of rank 1 whose mean is a number.
 * @return 0, WEFT_ENOENT (no candidate has a mean), WEFT_EINVAL. */
WEFT_API int weft_search_result_best(const weft_search_result *r, size_t *i);

/* weft_search_result_stop() : why the search ended. */
WEFT_API weft_search_stop weft_search_result_stop(const weft_search_result *r);

/* weft_search_result_calls() :
 * Counts of calls: `evaluated` run by the task, `cached` answered by the
 * memo, `failed` failed (any pointer may be NULL). @return 0, WEFT_EINVAL. */
WEFT_API int weft_search_result_calls(const weft_search_result *r, size_t *evaluated,
                                      size_t *cached, size_t *failed);

/* weft_search_result_write_csv() :
 * Writes cv_results_ as CSV, one row per candidate, with scikit-learn's
 * columns in its order: param_<name>... (empty where a sub-grid lacks the
 * name), params (a JSON object), split<k>_test_score..., mean_test_score,
 * std_test_score, rank_test_score; doubles in the shortest form that reads
 * back exactly, NaN as "nan". Threads: any. @return 0, WEFT_EINVAL,
 * WEFT_ENOMEM, or -errno of the file. */
WEFT_API int weft_search_result_write_csv(const weft_search_result *r, const char *path);

/* weft_search_result_write_json() :
 * Writes {"n_candidates", "n_splits", "stop", "best_index", "best_score",
 * "best_params", "cv_results": {column: [values...]}} with the CSV's
 * columns (pandas.DataFrame(d["cv_results"]) gives the table); NaN is
 * null. @return as weft_search_result_write_csv. */
WEFT_API int weft_search_result_write_json(const weft_search_result *r, const char *path);

/* weft_search_result_destroy() : frees `r`; NULL is a no-op. @return 0. */
WEFT_API int weft_search_result_destroy(weft_search_result *r);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SEARCH_H */

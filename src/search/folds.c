/* folds.c : KFold and StratifiedKFold, as scikit-learn 1.2 splits.
 *
 * Both assign every sample a test fold, then split k's test set is the
 * samples of fold k in ascending order and its train set the others in
 * ascending order (scikit-learn builds both from a boolean mask over
 * arange(n), so they come out sorted whatever the shuffling).
 *
 * KFold: indices = arange(n), shuffled with RandomState(seed) when asked;
 * the first n % k folds take n / k + 1 consecutive entries, the others
 * n / k.
 *
 * StratifiedKFold: classes are numbered in order of first appearance in y;
 * sorting those codes and dealing the sorted list round robin over the k
 * folds gives how many samples of each class each fold tests
 * (allocation[fold][class]); then, class by class, the fold numbers
 * 0,0,..,1,1,..,k-1 (each repeated by its allocation) are shuffled with
 * the one RandomState(seed) (when asked) and handed to the class's samples
 * in ascending order. */
#include "search/search_internal.h"

#include <string.h>

#include "internal.h"

struct weft_folds {
    size_t n, k;
    size_t **train, **test; /* [k] */
    size_t *ntrain, *ntest; /* [k] */
};

int weft_folds_destroy(weft_folds *f)
{
    if (!f) return 0;
    for (size_t i = 0; i < f->k; i++) {
        if (f->train) free(f->train[i]);
        if (f->test) free(f->test[i]);
    }
    free(f->train);
    free(f->test);
    free(f->ntrain);
    free(f->ntest);
    free(f);
    return 0;
}

/* Builds the folds from fold[0..n) (each < k). */
static int from_assignment(const uint32_t *fold, size_t n, size_t k, weft_folds **out,
                           const char *fn)
{
    weft_folds *f = calloc(1, sizeof *f);
    if (!f) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    f->n = n;
    f->k = k;
    f->train = calloc(k, sizeof *f->train);
    f->test = calloc(k, sizeof *f->test);
    f->ntrain = calloc(k, sizeof *f->ntrain);
    f->ntest = calloc(k, sizeof *f->ntest);
    if (!f->train || !f->test || !f->ntrain || !f->ntest) goto nomem;
    for (size_t i = 0; i < n; i++) f->ntest[fold[i]]++;
    for (size_t j = 0; j < k; j++) {
        f->ntrain[j] = n - f->ntest[j];
        f->test[j] = malloc((f->ntest[j] ? f->ntest[j] : 1) * sizeof(size_t));
        f->train[j] = malloc((f->ntrain[j] ? f->ntrain[j] : 1) * sizeof(size_t));
        if (!f->test[j] || !f->train[j]) goto nomem;
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            if (fold[i] == j)
                f->test[j][a++] = i;
            else
                f->train[j][b++] = i;
        }
    }
    *out = f;
    return 0;
nomem:
    weft_folds_destroy(f);
    return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
}

static int read_opts(const weft_folds_options *opts, size_t n, weft_folds_options *o,
                     weft_folds **out, const char *fn)
{
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", fn);
    *out = NULL;
    int rc = WEFT__OPTS_READ(*o, opts, fn);
    if (rc) return rc;
    if (o->n_splits == 0) o->n_splits = 5;
    if (o->n_splits < 2)
        return weft__err(WEFT_EINVAL, "%s: n_splits %zu: at least 2 are needed", fn, o->n_splits);
    if (o->n_splits > n)
        return weft__err(WEFT_EINVAL,
                         "%s: cannot have n_splits=%zu greater than the number of samples %zu", fn,
                         o->n_splits, n);
    if (n > UINT32_MAX)
        return weft__err(WEFT_EOVERFLOW, "%s: %zu samples: at most 2^32 - 1", fn, n);
    return 0;
}

int weft_folds_kfold(size_t n_samples, const weft_folds_options *opts, weft_folds **out)
{
    static const char fn[] = "weft_folds_kfold";
    weft_folds_options o;
    int rc = read_opts(opts, n_samples, &o, out, fn);
    if (rc) return rc;
    size_t k = o.n_splits;
    size_t *idx = malloc(n_samples * sizeof *idx);
    uint32_t *fold = malloc(n_samples * sizeof *fold);
    weft__mt *m = malloc(sizeof *m);
    if (!idx || !fold || !m) {
        rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
        goto done;
    }
    for (size_t i = 0; i < n_samples; i++) idx[i] = i;
    if (o.shuffle) {
        weft__mt_seed(m, o.seed);
        weft__mt_shuffle(m, idx, n_samples);
    }
    size_t cur = 0;
    for (size_t j = 0; j < k; j++) {
        size_t size = n_samples / k + (j < n_samples % k ? 1 : 0);
        for (size_t i = cur; i < cur + size; i++) fold[idx[i]] = (uint32_t)j;
        cur += size;
    }
    rc = from_assignment(fold, n_samples, k, out, fn);
done:
    free(idx);
    free(fold);
    free(m);
    return rc;
}

typedef struct label_pos {
    int64_t y;
    size_t first;
} label_pos;

static int by_label_then_pos(const void *a, const void *b)
{
    const label_pos *x = a, *y = b;
    if (x->y != y->y) return x->y < y->y ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int by_first(const void *a, const void *b)
{
    const label_pos *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

int weft_folds_stratified(const int64_t *y, size_t n_samples, const weft_folds_options *opts,
                          weft_folds **out)
{
    static const char fn[] = "weft_folds_stratified";
    weft_folds_options o;
    if (!y) {
        if (out) *out = NULL;
        return weft__err(WEFT_EINVAL, "%s: NULL labels", fn);
    }
    int rc = read_opts(opts, n_samples, &o, out, fn);
    if (rc) return rc;
    size_t k = o.n_splits, n = n_samples, nc = 0;
    label_pos *lp = malloc(n * sizeof *lp);
    size_t *code = malloc(n * sizeof *code);
    uint32_t *fold = malloc(n * sizeof *fold);
    size_t *alloc = NULL, *count = NULL, *perm = NULL, *cur = NULL;
    weft__mt *m = malloc(sizeof *m);
    if (!lp || !code || !fold || !m) goto nomem;

    /* classes: the distinct labels with their first position, numbered by
     * that position (scikit-learn's order of appearance) */
    for (size_t i = 0; i < n; i++) lp[i] = (label_pos){y[i], i};
    qsort(lp, n, sizeof *lp, by_label_then_pos);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || lp[i].y != lp[i - 1].y) lp[nc++] = lp[i];
    qsort(lp, nc, sizeof *lp, by_first); /* lp[c] = class c */
    {
        /* code of each sample: its class's number, through a sorted copy */
        label_pos *sorted = malloc(nc * sizeof *sorted);
        if (!sorted) goto nomem;
        for (size_t c = 0; c < nc; c++) sorted[c] = (label_pos){lp[c].y, c};
        qsort(sorted, nc, sizeof *sorted, by_label_then_pos);
        for (size_t i = 0; i < n; i++) {
            size_t lo = 0, hi = nc;
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (sorted[mid].y <= y[i])
                    lo = mid;
                else
                    hi = mid;
            }
            code[i] = sorted[lo].first;
        }
        free(sorted);
    }
    count = calloc(nc, sizeof *count);
    alloc = calloc(k * nc, sizeof *alloc);
    if (!count || !alloc) goto nomem;
    for (size_t i = 0; i < n; i++) count[code[i]]++;
    size_t largest = 0;
    for (size_t c = 0; c < nc; c++)
        if (count[c] > largest) largest = count[c];
    if (k > largest) {
        rc = weft__err(WEFT_EINVAL,
                       "%s: n_splits=%zu cannot be greater than the number of "
                       "members in each class",
                       fn, k);
        goto done;
    }
    /* round robin over the sorted codes: position p goes to fold p % k */
    size_t p = 0;
    for (size_t c = 0; c < nc; c++)
        for (size_t j = 0; j < count[c]; j++, p++) alloc[(p % k) * nc + c]++;

    /* each class's fold numbers in its own block of perm, classes in
     * order (the random draws go class by class, as scikit-learn's) */
    perm = malloc((n ? n : 1) * sizeof *perm);
    cur = calloc(nc, sizeof *cur);
    if (!perm || !cur) goto nomem;
    if (o.shuffle) weft__mt_seed(m, o.seed);
    size_t off = 0;
    for (size_t c = 0; c < nc; c++) {
        size_t len = 0;
        for (size_t j = 0; j < k; j++)
            for (size_t r = 0; r < alloc[j * nc + c]; r++) perm[off + len++] = j;
        if (o.shuffle) weft__mt_shuffle(m, perm + off, len);
        cur[c] = off;
        off += len;
    }
    for (size_t i = 0; i < n; i++) fold[i] = (uint32_t)perm[cur[code[i]]++];
    rc = from_assignment(fold, n, k, out, fn);
    goto done;
nomem:
    rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
done:
    free(lp);
    free(code);
    free(fold);
    free(alloc);
    free(count);
    free(perm);
    free(cur);
    free(m);
    return rc;
}

size_t weft_folds_count(const weft_folds *f)
{
    return f ? f->k : 0;
}

size_t weft_folds_samples(const weft_folds *f)
{
    return f ? f->n : 0;
}

int weft_folds_split(const weft_folds *f, size_t k, const size_t **train, size_t *n_train,
                     const size_t **test, size_t *n_test)
{
    if (!f || k >= f->k)
        return weft__err(WEFT_EINVAL, "weft_folds_split: NULL folds or k out of range");
    if (train) *train = f->train[k];
    if (n_train) *n_train = f->ntrain[k];
    if (test) *test = f->test[k];
    if (n_test) *n_test = f->ntest[k];
    return 0;
}

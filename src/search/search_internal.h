/* search_internal.h : what the files of src/search/ share.
 *
 *   mt.c      numpy's legacy RandomState draws (MT19937, masked randint,
 *             random_interval, shuffle), the only random source here, so
 *             that samples and shuffled folds are scikit-learn's
 *   space.c   weft_space: sub-grids of sorted named lists; candidates are
 *             indices into ParameterGrid's order; the sampler
 *   folds.c   weft_folds: a test fold per sample, then ascending train and
 *             test index arrays per split
 *   call.c    the bytes of one evaluate call (encode here, parse in the task)
 *   result.c  cv_results_: aggregation, ranking, CSV and JSON
 *   run.c     weft_search_run: the window of calls in flight
 *
 * Calls point one way: run -> result, call, space, folds; result -> space;
 * call -> space; space, folds -> mt. */
#ifndef WEFT_SEARCH_INTERNAL_H
#define WEFT_SEARCH_INTERNAL_H

#include "weft.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- mt.c: numpy's RandomState (legacy seeding and draws) ---------------- */

typedef struct weft__mt {
    uint32_t key[624];
    int pos;
} weft__mt;

/* RandomState(seed) for an integer seed: MT19937's init_genrand. */
void weft__mt_seed(weft__mt *m, uint32_t seed);
/* The next 32 random bits (genrand_int32). */
uint32_t weft__mt_next32(weft__mt *m);
/* RandomState.randint(n) for n >= 1: a draw in [0, n) by masked rejection
 * (no draw at all when n == 1), as numpy's legacy bounded integers. */
uint64_t weft__mt_randint(weft__mt *m, uint64_t n);
/* RandomState.shuffle of a 1-d array of a[0..n): Fisher-Yates from the end
 * with random_interval(i). */
void weft__mt_shuffle(weft__mt *m, size_t *a, size_t n);

/* ---- space.c -------------------------------------------------------------- */

typedef struct weft__sdim {
    char *name;
    weft_param_kind kind;
    size_t n;
    double *d;
    int64_t *i;
    char **s;
} weft__sdim;

typedef struct weft__sgrid {
    weft__sdim *dims; /* sorted by name (strcmp) */
    size_t ndims, cap;
    size_t size; /* product of the lengths (1 when empty) */
} weft__sgrid;

struct weft_space {
    weft__sgrid *grids;
    size_t ngrids, cap;
    size_t total; /* sum of the sub-grids' sizes */
};

/* A deep copy of `s` in `*out`. @return 0 or WEFT_ENOMEM. */
int weft__space_clone(const weft_space *s, weft_space **out);

/* ---- call.c --------------------------------------------------------------- */

/* Encodes the call (candidate `index` of `s`, split `k` of `f`, the context
 * bytes) into `*buf` (grown as needed; `*cap` its size), `*len` the bytes.
 * The bytes depend on the parameters' names and values, the split's number
 * and indices and the context only: they are the memo's key.
 * @return 0, WEFT_ENOMEM, WEFT_EOVERFLOW. */
int weft__search_encode(unsigned char **buf, size_t *cap, size_t *len, const weft_space *s,
                        size_t index, const weft_folds *f, size_t k, const void *ctx,
                        size_t ctx_len);

/* ---- result.c ------------------------------------------------------------- */

struct weft_search_result {
    weft_space *space; /* a copy */
    size_t ncand, nsplits;
    size_t *index;                  /* [ncand] candidate -> space index */
    double *scores;                 /* [ncand * nsplits], NaN until set */
    unsigned char *st;              /* [ncand * nsplits]: 0 none, 1 scored, 2 failed */
    size_t *done, *failed, *cached; /* [ncand] */
    double *mean, *std;             /* [ncand] */
    size_t *rank;                   /* [ncand] */
    weft_search_stop stop;
    size_t n_evaluated, n_cached, n_failed;
};

/* A result for the candidates index[0..ncand) (copied) of a copy of `s`,
 * every score NaN. @return 0 or WEFT_ENOMEM. */
int weft__search_result_new(const weft_space *s, const size_t *index, size_t ncand, size_t nsplits,
                            weft_search_result **out);
/* Computes mean, std and rank of every row from the scores. */
void weft__search_result_finish(weft_search_result *r);

#endif

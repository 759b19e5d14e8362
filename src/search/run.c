/* run.c : weft_search_run, the runner.
 *
 * Calls are numbered candidate-major (call q is candidate q / k on split
 * q % k), the order scikit-learn's GridSearchCV evaluates them in, so the
 * first candidates finish first and a search stopped early has whole
 * candidates to show. The calling thread keeps a window of at most
 * `max_in_flight` submitted, unfinished calls: it tops the window up (a
 * call found in the memo is scored at once, without a submit), waits with
 * weft_wait(FIRST_COMPLETED) until one finishes or the budget passes, and
 * scores what finished. The window is what makes stopping prompt: on a
 * budget, a target or a callback's stop, nothing more is submitted, the
 * window's queued calls are cancelled, and the ones already running finish
 * and are scored. Everything the user sees (on_score, the progress bar,
 * memo stores) happens on the calling thread; the task runs wherever the
 * executor runs it. */
#include "search/search_internal.h"

#include <math.h>
#include <string.h>

#include "diag/progress_internal.h"
#include "internal.h"

typedef struct runner {
    weft_executor *ex;
    weft_task_fn fn;
    const char *name; /* the task's registered name (memo key), or NULL */
    const weft_space *space;
    const weft_folds *folds;
    weft_search_options o;
    weft_search_result *r;
    weft_progress *bar;
    size_t total, finished;
    weft_search_stop stop;
    double deadline; /* weft_now() seconds; INFINITY = none */
} runner;

/* Records the outcome of call q; may decide to stop. */
static void score(runner *u, size_t q, int err, double x, bool cached)
{
    weft_search_result *r = u->r;
    size_t ns = r->nsplits, c = q / ns, k = q % ns;
    if (err == WEFT_ECANCELLED) return; /* stopped before it ran: not a score */
    if (err) x = NAN;
    r->scores[q] = x;
    r->st[q] = err ? 2 : 1;
    r->done[c] += err ? 0 : 1;
    if (err) {
        r->failed[c]++;
        r->n_failed++;
    } else if (cached) {
        r->cached[c]++;
        r->n_cached++;
    }
    if (!cached) r->n_evaluated++;
    u->finished++;
    weft_progress_add(u->bar, 1);
    if (u->o.on_score) {
        weft_search_score s = {.candidate = c,
                               .index = r->index[c],
                               .split = k,
                               .err = err,
                               .score = x,
                               .cached = cached,
                               .done = u->finished,
                               .total = u->total};
        if (u->o.on_score(u->o.arg, &s) != 0 && u->stop == WEFT_SEARCH_COMPLETE)
            u->stop = WEFT_SEARCH_STOPPED;
    }
    if (u->o.stop_at_target && u->stop == WEFT_SEARCH_COMPLETE && r->done[c] == ns) {
        double sum = 0;
        for (size_t j = 0; j < ns; j++) sum += r->scores[c * ns + j];
        if (sum / (double)ns >= u->o.target) u->stop = WEFT_SEARCH_TARGET;
    }
}

/* The score a finished future carries: its first 8 bytes as a double. */
static int future_score(weft_future *f, double *x)
{
    const void *data;
    size_t len;
    int rc = weft_future_result(f, 0, &data, &len);
    if (rc) return rc;
    if (len < sizeof(double)) return WEFT_ETASK;
    memcpy(x, data, sizeof *x);
    return 0;
}

static int run(runner *u)
{
    size_t window = u->o.max_in_flight;
    if (window == 0) {
        int w = weft_executor_workers(u->ex);
        window = 4 * (size_t)(w > 0 ? w : 1) + 4;
    }
    if (window > u->total) window = u->total;
    weft_future **fs = calloc(window, sizeof *fs);
    size_t *qs = calloc(window, sizeof *qs);
    bool *done = calloc(window, sizeof *done);
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0, inflight = 0, next = 0;
    int rc = 0;
    if (!fs || !qs || !done) {
        rc = weft__err(WEFT_ENOMEM, "weft_search_run: out of memory");
        goto out;
    }
    size_t ns = u->r->nsplits;
    bool cancelled = false;
    for (;;) {
        /* top the window up */
        while (u->stop == WEFT_SEARCH_COMPLETE && inflight < window && next < u->total) {
            if (weft_now() >= u->deadline) {
                u->stop = WEFT_SEARCH_BUDGET;
                break;
            }
            size_t q = next++;
            rc = weft__search_encode(&buf, &cap, &len, u->space, u->r->index[q / ns], u->folds,
                                     q % ns, u->o.context, u->o.context_len);
            if (rc) {
                rc = weft__err(rc, "weft_search_run: cannot encode call %zu: %s", q,
                               weft_strerror(rc));
                goto out;
            }
            if (u->o.memo) {
                void *hit = NULL;
                size_t hl = 0;
                if (weft_memo_get(u->o.memo, u->name, buf, len, &hit, &hl) == 0) {
                    double x = NAN;
                    bool ok = hl >= sizeof x;
                    if (ok) memcpy(&x, hit, sizeof x);
                    free(hit);
                    if (ok) {
                        score(u, q, 0, x, true);
                        continue;
                    }
                }
            }
            weft_future *f = NULL;
            rc = weft_submit(u->ex, u->fn, buf, len, &f);
            if (rc) goto out;
            fs[inflight] = f;
            qs[inflight] = q;
            inflight++;
        }
        if (inflight == 0) break;
        if (u->stop != WEFT_SEARCH_COMPLETE && !cancelled) {
            /* stopping: what has not started never will */
            for (size_t i = 0; i < inflight; i++) weft_future_cancel(fs[i]);
            cancelled = true;
        }
        double timeout = WEFT_FOREVER;
        if (u->stop == WEFT_SEARCH_COMPLETE && isfinite(u->deadline)) {
            timeout = u->deadline - weft_now();
            if (timeout < 0) timeout = 0;
        }
        int wr = weft_wait(fs, inflight, WEFT_WAIT_FIRST_COMPLETED, timeout, done, NULL);
        if (wr == WEFT_ETIMEDOUT) {
            if (u->stop == WEFT_SEARCH_COMPLETE) u->stop = WEFT_SEARCH_BUDGET;
            continue;
        }
        if (wr) {
            rc = wr;
            goto out;
        }
        /* score the finished ones, in window order; keep the rest */
        size_t keep = 0;
        for (size_t i = 0; i < inflight; i++) {
            if (!done[i]) {
                fs[keep] = fs[i];
                qs[keep] = qs[i];
                keep++;
                continue;
            }
            double x = NAN;
            int err = future_score(fs[i], &x);
            if (err == 0 && u->o.memo) {
                /* the key: the same bytes the call was submitted with */
                if (weft__search_encode(&buf, &cap, &len, u->space, u->r->index[qs[i] / ns],
                                        u->folds, qs[i] % ns, u->o.context, u->o.context_len) == 0)
                    (void)weft_memo_put(u->o.memo, u->name, buf, len, &x, sizeof x);
            }
            weft_future_release(fs[i]);
            fs[i] = NULL;
            score(u, qs[i], err, x, false);
        }
        inflight = keep;
    }
out:
    if (rc) {
        for (size_t i = 0; i < inflight; i++) weft_future_cancel(fs[i]);
        if (inflight) weft_wait(fs, inflight, WEFT_WAIT_ALL, WEFT_FOREVER, NULL, NULL);
        for (size_t i = 0; i < inflight; i++) weft_future_release(fs[i]);
    }
    free(fs);
    free(qs);
    free(done);
    free(buf);
    return rc;
}

int weft_search_run(weft_executor *ex, weft_task_fn evaluate, const weft_space *space,
                    const weft_folds *folds, const weft_search_options *opts,
                    weft_search_result **out)
{
    static const char fn[] = "weft_search_run";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", fn);
    *out = NULL;
    if (!ex || !evaluate || !space || !folds)
        return weft__err(WEFT_EINVAL, "%s: NULL executor, task, space or folds", fn);
    runner u = {.ex = ex, .fn = evaluate, .space = space, .folds = folds};
    int rc = WEFT__OPTS_READ(u.o, opts, "weft_search_run: weft_search_options");
    if (rc) return rc;
    if (isnan(u.o.budget) || u.o.budget < 0)
        return weft__err(WEFT_EINVAL, "%s: budget %g: use seconds > 0, or 0 for none", fn,
                         u.o.budget);
    if (u.o.context_len && !u.o.context)
        return weft__err(WEFT_EINVAL, "%s: context NULL with context_len %zu", fn, u.o.context_len);
    if (u.o.stop_at_target && isnan(u.o.target))
        return weft__err(WEFT_EINVAL, "%s: target is NaN", fn);
    u.name = weft_task_name(evaluate);
    if (u.o.memo && !u.name)
        return weft__err(WEFT_ENOTREG,
                         "%s: a memo needs the task's registered name (WEFT_TASK_REGISTER)", fn);
    u.deadline = u.o.budget > 0 && isfinite(u.o.budget) ? weft_now() + u.o.budget : INFINITY;

    /* the candidates */
    size_t size = weft_space_size(space), ncand = size;
    if (u.o.n_iter && u.o.n_iter < ncand) ncand = u.o.n_iter;
    size_t *index = malloc((ncand ? ncand : 1) * sizeof *index);
    if (!index) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    if (u.o.n_iter) {
        rc = weft_space_sample(space, u.o.n_iter, u.o.seed, index, &ncand);
    } else {
        for (size_t i = 0; i < ncand; i++) index[i] = i;
    }
    size_t ns = weft_folds_count(folds);
    if (!rc && ncand > SIZE_MAX / ns) rc = weft__err(WEFT_EOVERFLOW, "%s: too many calls", fn);
    if (!rc && weft__search_result_new(space, index, ncand, ns, &u.r) != 0)
        rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    free(index);
    if (rc) return rc;
    u.total = ncand * ns;
    if (weft__progress_wanted(u.o.progress)) u.bar = weft__progress_start("search", u.total);
    rc = run(&u);
    weft_progress_destroy(u.bar);
    if (rc) {
        weft_search_result_destroy(u.r);
        return rc;
    }
    u.r->stop = u.stop;
    weft__search_result_finish(u.r);
    *out = u.r;
    return 0;
}

/* result.c : cv_results_ -- aggregation, ranking, CSV and JSON.
 *
 * As scikit-learn 1.2's _format_results: mean_test_score is the mean of
 * the split scores (NaN if one is NaN), std_test_score their population
 * standard deviation, rank_test_score scipy's rankdata(-mean,
 * method="min") where NaN means are first replaced by (smallest mean - 1),
 * so they share the last rank; every row ranks 1 when every mean is NaN.
 * best_index_ is the first row of rank 1. A candidate the search did not
 * finish (stopped early) has NaN scores for the splits that did not run. */
#include "search/search_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int weft__search_result_new(const weft_space *s, const size_t *index, size_t ncand, size_t nsplits,
                            weft_search_result **out)
{
    weft_search_result *r = calloc(1, sizeof *r);
    if (!r) return WEFT_ENOMEM;
    size_t n = ncand ? ncand : 1, cells = n * nsplits;
    r->ncand = ncand;
    r->nsplits = nsplits;
    r->index = malloc(n * sizeof *r->index);
    r->scores = malloc(cells * sizeof *r->scores);
    r->st = calloc(cells, 1);
    r->done = calloc(n, sizeof *r->done);
    r->failed = calloc(n, sizeof *r->failed);
    r->cached = calloc(n, sizeof *r->cached);
    r->mean = malloc(n * sizeof *r->mean);
    r->std = malloc(n * sizeof *r->std);
    r->rank = malloc(n * sizeof *r->rank);
    if (!r->index || !r->scores || !r->st || !r->done || !r->failed || !r->cached || !r->mean ||
        !r->std || !r->rank || weft__space_clone(s, &r->space) != 0) {
        weft_search_result_destroy(r);
        return WEFT_ENOMEM;
    }
    memcpy(r->index, index, ncand * sizeof *index);
    for (size_t i = 0; i < cells; i++) r->scores[i] = NAN;
    *out = r;
    return 0;
}

int weft_search_result_destroy(weft_search_result *r)
{
    if (!r) return 0;
    weft_space_destroy(r->space);
    free(r->index);
    free(r->scores);
    free(r->st);
    free(r->done);
    free(r->failed);
    free(r->cached);
    free(r->mean);
    free(r->std);
    free(r->rank);
    free(r);
    return 0;
}

typedef struct mean_row {
    double m;
    size_t i;
} mean_row;

static int by_mean_desc(const void *a, const void *b)
{
    const mean_row *x = a, *y = b;
    if (x->m != y->m) return x->m > y->m ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void weft__search_result_finish(weft_search_result *r)
{
    size_t ns = r->nsplits;
    bool any = false;
    double lowest = INFINITY;
    for (size_t c = 0; c < r->ncand; c++) {
        const double *x = &r->scores[c * ns];
        double sum = 0;
        for (size_t k = 0; k < ns; k++) sum += x[k];
        double mean = sum / (double)ns, sq = 0;
        for (size_t k = 0; k < ns; k++) sq += (x[k] - mean) * (x[k] - mean);
        r->mean[c] = mean;
        r->std[c] = sqrt(sq / (double)ns);
        if (!isnan(mean)) {
            any = true;
            if (mean < lowest) lowest = mean;
        }
    }
    if (!any) {
        for (size_t c = 0; c < r->ncand; c++) r->rank[c] = 1;
        return;
    }
    mean_row *rows = malloc((r->ncand ? r->ncand : 1) * sizeof *rows);
    if (!rows) { /* rank by counting: O(n^2), but never wrong */
        for (size_t c = 0; c < r->ncand; c++) {
            double mc = isnan(r->mean[c]) ? lowest - 1 : r->mean[c];
            size_t above = 0;
            for (size_t d = 0; d < r->ncand; d++) {
                double md = isnan(r->mean[d]) ? lowest - 1 : r->mean[d];
                if (md > mc) above++;
            }
            r->rank[c] = above + 1;
        }
        return;
    }
    for (size_t c = 0; c < r->ncand; c++)
        rows[c] = (mean_row){isnan(r->mean[c]) ? lowest - 1 : r->mean[c], c};
    qsort(rows, r->ncand, sizeof *rows, by_mean_desc);
    for (size_t j = 0; j < r->ncand; j++) {
        size_t rank = (j > 0 && rows[j].m == rows[j - 1].m) ? r->rank[rows[j - 1].i] : j + 1;
        r->rank[rows[j].i] = rank;
    }
    free(rows);
}

size_t weft_search_result_count(const weft_search_result *r)
{
    return r ? r->ncand : 0;
}

size_t weft_search_result_splits(const weft_search_result *r)
{
    return r ? r->nsplits : 0;
}

int weft_search_result_row(const weft_search_result *r, size_t i, weft_search_row *row)
{
    if (!r || !row || i >= r->ncand)
        return weft__err(WEFT_EINVAL, "weft_search_result_row: NULL argument or row out of range");
    *row = (weft_search_row){
        .index = r->index[i],
        .mean_test_score = r->mean[i],
        .std_test_score = r->std[i],
        .rank_test_score = r->rank[i],
        .splits_done = r->done[i],
        .splits_failed = r->failed[i],
        .splits_cached = r->cached[i],
    };
    return 0;
}

int weft_search_result_score(const weft_search_result *r, size_t i, size_t k, double *score)
{
    if (!r || !score || i >= r->ncand || k >= r->nsplits)
        return weft__err(WEFT_EINVAL, "weft_search_result_score: NULL argument or out of range");
    *score = r->scores[i * r->nsplits + k];
    return 0;
}

int weft_search_result_param(const weft_search_result *r, size_t i, const char *name,
                             weft_param_value *value)
{
    if (!r || i >= r->ncand)
        return weft__err(WEFT_EINVAL, "weft_search_result_param: NULL result or row out of range");
    return weft_space_lookup(r->space, r->index[i], name, value);
}

int weft_search_result_best(const weft_search_result *r, size_t *i)
{
    if (!r || !i) return weft__err(WEFT_EINVAL, "weft_search_result_best: NULL argument");
    for (size_t c = 0; c < r->ncand; c++)
        if (r->rank[c] == 1 && !isnan(r->mean[c])) {
            *i = c;
            return 0;
        }
    return WEFT_ENOENT;
}

weft_search_stop weft_search_result_stop(const weft_search_result *r)
{
    return r ? r->stop : WEFT_SEARCH_COMPLETE;
}

int weft_search_result_calls(const weft_search_result *r, size_t *evaluated, size_t *cached,
                             size_t *failed)
{
    if (!r) return weft__err(WEFT_EINVAL, "weft_search_result_calls: NULL result");
    if (evaluated) *evaluated = r->n_evaluated;
    if (cached) *cached = r->n_cached;
    if (failed) *failed = r->n_failed;
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

/* `x` in the shortest form that reads back exactly, as Python's repr
 * writes floats (fixed notation for exponents -4..15, a ".0" on integral
 * values); "nan", "inf", "-inf" for the others. */
static void fmt_double(char *buf, size_t cap, double x)
{
    if (isnan(x)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, cap, x > 0 ? "inf" : "-inf");
        return;
    }
    int prec = 1;
    char e[40];
    for (; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    snprintf(e, sizeof e, "%.*e", prec - 1, x);
    int e10 = atoi(strchr(e, 'e') + 1);
    if (e10 >= -4 && e10 < 16) {
        int decimals = prec - 1 - e10;
        snprintf(buf, cap, "%.*f", decimals > 0 ? decimals : 0, x);
        size_t l = strlen(buf);
        if (!strchr(buf, '.') && l + 3 <= cap) memcpy(buf + l, ".0", 3);
    } else {
        snprintf(buf, cap, "%s", e);
    }
}

/* The param_<name> columns: names in order of first appearance over the
 * rows, each row's names in sorted order (as cv_results_'s dict keys). */
static int column_names(const weft_search_result *r, const char ***names, size_t *count)
{
    const char **v = NULL;
    size_t n = 0, cap = 0;
    /* a sub-grid's names are the same for all its candidates: visit each
     * sub-grid once, in the order its first row appears */
    for (size_t c = 0; c < r->ncand; c++) {
        const char *name;
        weft_param_value val;
        for (size_t k = 0; weft_space_candidate(r->space, r->index[c], k, &name, &val) == 0; k++) {
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++) seen = strcmp(v[j], name) == 0;
            if (seen) continue;
            if (weft__grow(&v, &cap, n + 1, sizeof *v, 8) != 0) {
                free(v);
                return WEFT_ENOMEM;
            }
            v[n++] = name;
        }
        if (r->space->ngrids == 1) break; /* one sub-grid: every row has the same names */
    }
    *names = v;
    *count = n;
    return 0;
}

typedef enum {
    CSV,
    JSON
} fmt_kind;

static void put_string(FILE *f, const char *s, fmt_kind kind)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (kind == CSV) {
            if (ch == '"') fputc('"', f);
            fputc(ch, f);
        } else if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

/* A number: CSV writes "nan", JSON null for NaN and infinities. */
static void put_number(FILE *f, double x, fmt_kind kind)
{
    char b[48];
    if (kind == JSON && !isfinite(x)) {
        fputs("null", f);
        return;
    }
    fmt_double(b, sizeof b, x);
    fputs(b, f);
}

static void put_value(FILE *f, const weft_param_value *v, fmt_kind kind)
{
    if (v->kind == WEFT_PARAM_DOUBLE)
        put_number(f, v->d, kind);
    else if (v->kind == WEFT_PARAM_INT)
        fprintf(f, "%lld", (long long)v->i);
    else
        put_string(f, v->s, kind);
}

/* The params object of row c, as JSON: {"C": 1.0, "gamma": 0.01}. Written
 * to a memory stream so that CSV can quote it whole. */
static char *params_json(const weft_search_result *r, size_t c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return NULL;
    fputc('{', m);
    const char *name;
    weft_param_value val;
    for (size_t k = 0; weft_space_candidate(r->space, r->index[c], k, &name, &val) == 0; k++) {
        if (k) fputs(", ", m);
        put_string(m, name, JSON);
        fputs(": ", m);
        put_value(m, &val, JSON);
    }
    fputc('}', m);
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int finish_file(FILE *f, const char *path, const char *fn, int rc)
{
    int err = ferror(f) ? errno : 0;
    if (fclose(f) != 0 && !err) err = errno;
    if (rc) return rc;
    if (err) return weft__err(-err, "%s: writing %s: %s", fn, path, strerror(err));
    return 0;
}

int weft_search_result_write_csv(const weft_search_result *r, const char *path)
{
    static const char fn[] = "weft_search_result_write_csv";
    if (!r || !path) return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    const char **names;
    size_t nn;
    if (column_names(r, &names, &nn) != 0) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        free(names);
        return weft__err(-e, "%s: cannot open %s: %s", fn, path, strerror(e));
    }
    int rc = 0;
    for (size_t j = 0; j < nn; j++) fprintf(f, "param_%s,", names[j]);
    fputs("params", f);
    for (size_t k = 0; k < r->nsplits; k++) fprintf(f, ",split%zu_test_score", k);
    fputs(",mean_test_score,std_test_score,rank_test_score\n", f);
    for (size_t c = 0; c < r->ncand && !rc; c++) {
        for (size_t j = 0; j < nn; j++) {
            weft_param_value v;
            if (weft_space_lookup(r->space, r->index[c], names[j], &v) == 0) put_value(f, &v, CSV);
            fputc(',', f);
        }
        char *p = params_json(r, c);
        if (!p) {
            rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
            break;
        }
        put_string(f, p, CSV);
        free(p);
        for (size_t k = 0; k < r->nsplits; k++) {
            fputc(',', f);
            put_number(f, r->scores[c * r->nsplits + k], CSV);
        }
        fputc(',', f);
        put_number(f, r->mean[c], CSV);
        fputc(',', f);
        put_number(f, r->std[c], CSV);
        fprintf(f, ",%zu\n", r->rank[c]);
    }
    free(names);
    return finish_file(f, path, fn, rc);
}

static const char *stop_name(weft_search_stop s)
{
    switch (s) {
    case WEFT_SEARCH_BUDGET:
        return "budget";
    case WEFT_SEARCH_TARGET:
        return "target";
    case WEFT_SEARCH_STOPPED:
        return "stopped";
    default:
        return "complete";
    }
}

int weft_search_result_write_json(const weft_search_result *r, const char *path)
{
    static const char fn[] = "weft_search_result_write_json";
    if (!r || !path) return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    const char **names;
    size_t nn;
    if (column_names(r, &names, &nn) != 0) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        free(names);
        return weft__err(-e, "%s: cannot open %s: %s", fn, path, strerror(e));
    }
    int rc = 0;
    size_t best;
    bool has_best = weft_search_result_best(r, &best) == 0;
    fprintf(f, "{\"n_candidates\": %zu, \"n_splits\": %zu, \"stop\": \"%s\",\n", r->ncand,
            r->nsplits, stop_name(r->stop));
    fprintf(f, " \"calls_evaluated\": %zu, \"calls_cached\": %zu, \"calls_failed\": %zu,\n",
            r->n_evaluated, r->n_cached, r->n_failed);
    if (has_best) {
        char *p = params_json(r, best);
        fprintf(f, " \"best_index\": %zu, \"best_score\": ", best);
        put_number(f, r->mean[best], JSON);
        fprintf(f, ", \"best_params\": %s,\n", p ? p : "null");
        if (!p) rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
        free(p);
    } else {
        fputs(" \"best_index\": null, \"best_score\": null, \"best_params\": null,\n", f);
    }
    fputs(" \"cv_results\": {\n", f);
    for (size_t j = 0; j < nn; j++) {
        fprintf(f, "  \"param_%s\": [", names[j]);
        for (size_t c = 0; c < r->ncand; c++) {
            weft_param_value v;
            if (c) fputs(", ", f);
            if (weft_space_lookup(r->space, r->index[c], names[j], &v) == 0)
                put_value(f, &v, JSON);
            else
                fputs("null", f);
        }
        fputs("],\n", f);
    }
    fputs("  \"params\": [", f);
    for (size_t c = 0; c < r->ncand && !rc; c++) {
        char *p = params_json(r, c);
        if (!p) {
            rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
            break;
        }
        fprintf(f, "%s%s", c ? ", " : "", p);
        free(p);
    }
    fputs("],\n", f);
    for (size_t k = 0; k < r->nsplits; k++) {
        fprintf(f, "  \"split%zu_test_score\": [", k);
        for (size_t c = 0; c < r->ncand; c++) {
            if (c) fputs(", ", f);
            put_number(f, r->scores[c * r->nsplits + k], JSON);
        }
        fputs("],\n", f);
    }
    const double *cols[2] = {r->mean, r->std};
    const char *cn[2] = {"mean_test_score", "std_test_score"};
    for (int j = 0; j < 2; j++) {
        fprintf(f, "  \"%s\": [", cn[j]);
        for (size_t c = 0; c < r->ncand; c++) {
            if (c) fputs(", ", f);
            put_number(f, cols[j][c], JSON);
        }
        fputs("],\n", f);
    }
    fputs("  \"rank_test_score\": [", f);
    for (size_t c = 0; c < r->ncand; c++) fprintf(f, "%s%zu", c ? ", " : "", r->rank[c]);
    fputs("]\n }\n}\n", f);
    free(names);
    return finish_file(f, path, fn, rc);
}

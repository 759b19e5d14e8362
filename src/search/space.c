/* space.c : parameter spaces, ParameterGrid's order and ParameterSampler.
 *
 * A space is a list of sub-grids; a sub-grid keeps its parameters sorted by
 * name (strcmp, which is Python's sorted() on str keys for the ASCII names
 * parameters have, and code-point order for UTF-8). A candidate is an index
 * into the concatenation of the sub-grids; inside one, the index is read
 * as a mixed-radix number whose last digit is the last name's value, which
 * is itertools.product over the sorted items, i.e. ParameterGrid's order.
 * Nothing is materialized: a grid of 10^9 candidates costs its lists. */
#include "search/search_internal.h"

#include <math.h>
#include <string.h>

#include "internal.h"

int weft_space_create(weft_space **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_space_create: NULL out");
    *out = NULL;
    weft_space *s = calloc(1, sizeof *s);
    if (!s) return weft__err(WEFT_ENOMEM, "weft_space_create: out of memory");
    s->grids = calloc(1, sizeof *s->grids);
    if (!s->grids) {
        free(s);
        return weft__err(WEFT_ENOMEM, "weft_space_create: out of memory");
    }
    s->ngrids = s->cap = 1;
    s->grids[0].size = 1;
    s->total = 1;
    *out = s;
    return 0;
}

static void dim_free(weft__sdim *d)
{
    free(d->name);
    free(d->d);
    free(d->i);
    if (d->s)
        for (size_t k = 0; k < d->n; k++) free(d->s[k]);
    free(d->s);
}

int weft_space_destroy(weft_space *s)
{
    if (!s) return 0;
    for (size_t g = 0; g < s->ngrids; g++) {
        for (size_t k = 0; k < s->grids[g].ndims; k++) dim_free(&s->grids[g].dims[k]);
        free(s->grids[g].dims);
    }
    free(s->grids);
    free(s);
    return 0;
}

/* Inserts `d` (whose arrays the space takes) into the current sub-grid. */
static int add_dim(weft_space *s, weft__sdim *d, const char *fn)
{
    weft__sgrid *g = &s->grids[s->ngrids - 1];
    size_t pos = 0;
    while (pos < g->ndims) {
        int c = strcmp(g->dims[pos].name, d->name);
        if (c == 0)
            return weft__err(WEFT_EINVAL, "%s: '%s' is already in this sub-grid", fn, d->name);
        if (c > 0) break;
        pos++;
    }
    if (g->size > SIZE_MAX / d->n)
        return weft__err(WEFT_EOVERFLOW, "%s: the grid would have over SIZE_MAX candidates", fn);
    size_t size = g->size * d->n;
    size_t total = s->total - g->size;
    if (total > SIZE_MAX - size)
        return weft__err(WEFT_EOVERFLOW, "%s: the space would have over SIZE_MAX candidates", fn);
    if (weft__grow(&g->dims, &g->cap, g->ndims + 1, sizeof *g->dims, 4) != 0)
        return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    memmove(&g->dims[pos + 1], &g->dims[pos], (g->ndims - pos) * sizeof *g->dims);
    g->dims[pos] = *d;
    g->ndims++;
    g->size = size;
    s->total = total + size;
    return 0;
}

static int check_args(weft_space *s, const char *name, const void *values, size_t n, const char *fn)
{
    if (!s || !name || !*name || !values || n == 0)
        return weft__err(WEFT_EINVAL, "%s: NULL space, name or values, empty name or no values",
                         fn);
    return 0;
}

int weft_space_add_doubles(weft_space *s, const char *name, const double *values, size_t n)
{
    static const char fn[] = "weft_space_add_doubles";
    int rc = check_args(s, name, values, n, fn);
    if (rc) return rc;
    for (size_t k = 0; k < n; k++)
        if (isnan(values[k]))
            return weft__err(WEFT_EINVAL, "%s: '%s' value %zu is NaN", fn, name, k);
    weft__sdim d = {.kind = WEFT_PARAM_DOUBLE, .n = n};
    d.name = strdup(name);
    d.d = malloc(n * sizeof *d.d);
    if (!d.name || !d.d) {
        dim_free(&d);
        return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    }
    memcpy(d.d, values, n * sizeof *d.d);
    if ((rc = add_dim(s, &d, fn)) != 0) dim_free(&d);
    return rc;
}

int weft_space_add_ints(weft_space *s, const char *name, const int64_t *values, size_t n)
{
    static const char fn[] = "weft_space_add_ints";
    int rc = check_args(s, name, values, n, fn);
    if (rc) return rc;
    weft__sdim d = {.kind = WEFT_PARAM_INT, .n = n};
    d.name = strdup(name);
    d.i = malloc(n * sizeof *d.i);
    if (!d.name || !d.i) {
        dim_free(&d);
        return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    }
    memcpy(d.i, values, n * sizeof *d.i);
    if ((rc = add_dim(s, &d, fn)) != 0) dim_free(&d);
    return rc;
}

int weft_space_add_strings(weft_space *s, const char *name, const char *const *values, size_t n)
{
    static const char fn[] = "weft_space_add_strings";
    int rc = check_args(s, name, values, n, fn);
    if (rc) return rc;
    for (size_t k = 0; k < n; k++)
        if (!values[k]) return weft__err(WEFT_EINVAL, "%s: '%s' value %zu is NULL", fn, name, k);
    weft__sdim d = {.kind = WEFT_PARAM_STRING, .n = n};
    d.name = strdup(name);
    d.s = calloc(n, sizeof *d.s);
    bool ok = d.name && d.s;
    for (size_t k = 0; ok && k < n; k++) ok = (d.s[k] = strdup(values[k])) != NULL;
    if (!ok) {
        dim_free(&d);
        return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    }
    if ((rc = add_dim(s, &d, fn)) != 0) dim_free(&d);
    return rc;
}

/* numpy.linspace(start, stop, num), endpoint=True, in numpy's order of
 * operations: y = arange(num) * step + start (a zero step -- denormal
 * ranges -- divides first), then y[-1] = stop. */
static void linspace(double start, double stop, size_t num, double *y)
{
    size_t div = num - 1;
    double delta = stop - start;
    if (div > 0) {
        double step = delta / (double)div;
        for (size_t i = 0; i < num; i++) {
            double v = (double)i;
            if (step == 0) {
                v /= (double)div;
                v *= delta;
            } else {
                v *= step;
            }
            y[i] = v + start;
        }
        y[num - 1] = stop;
    } else {
        y[0] = 0.0 * delta + start;
    }
}

static int add_range(weft_space *s, const char *name, double start, double stop, size_t num,
                     double base, bool log, const char *fn)
{
    if (!isfinite(start) || !isfinite(stop) || num == 0 || (log && !(base >= 0)))
        return weft__err(WEFT_EINVAL, "%s: '%s': non-finite ends, num 0 or a negative base", fn,
                         name ? name : "(null)");
    double *y = malloc(num * sizeof *y);
    if (!y) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    linspace(start, stop, num, y);
    if (log) {
        if (base == 0) base = 10.0;
        for (size_t i = 0; i < num; i++) y[i] = pow(base, y[i]);
    }
    int rc = weft_space_add_doubles(s, name, y, num);
    free(y);
    return rc;
}

int weft_space_add_linspace(weft_space *s, const char *name, double start, double stop, size_t num)
{
    return add_range(s, name, start, stop, num, 0, false, "weft_space_add_linspace");
}

int weft_space_add_logspace(weft_space *s, const char *name, double start, double stop, size_t num,
                            double base)
{
    return add_range(s, name, start, stop, num, base, true, "weft_space_add_logspace");
}

int weft_space_new_grid(weft_space *s)
{
    if (!s) return weft__err(WEFT_EINVAL, "weft_space_new_grid: NULL space");
    if (s->total == SIZE_MAX)
        return weft__err(WEFT_EOVERFLOW, "weft_space_new_grid: over SIZE_MAX candidates");
    if (weft__grow(&s->grids, &s->cap, s->ngrids + 1, sizeof *s->grids, 2) != 0)
        return weft__err(WEFT_ENOMEM, "weft_space_new_grid: out of memory");
    s->grids[s->ngrids++] = (weft__sgrid){.size = 1};
    s->total++;
    return 0;
}

size_t weft_space_size(const weft_space *s)
{
    return s ? s->total : 0;
}

/* The sub-grid of candidate `index` and the index inside it. */
static const weft__sgrid *locate(const weft_space *s, size_t *index)
{
    for (size_t g = 0; g < s->ngrids; g++) {
        if (*index < s->grids[g].size) return &s->grids[g];
        *index -= s->grids[g].size;
    }
    return NULL;
}

/* The value position of dimension `k` for local index `local`. */
static size_t digit(const weft__sgrid *g, size_t local, size_t k)
{
    for (size_t j = g->ndims; j-- > k + 1;) local /= g->dims[j].n;
    return local % g->dims[k].n;
}

static void value_of(const weft__sdim *d, size_t pos, weft_param_value *v)
{
    *v = (weft_param_value){.kind = d->kind};
    if (d->kind == WEFT_PARAM_DOUBLE)
        v->d = d->d[pos];
    else if (d->kind == WEFT_PARAM_INT)
        v->i = d->i[pos];
    else
        v->s = d->s[pos];
}

int weft_space_candidate(const weft_space *s, size_t index, size_t k, const char **name,
                         weft_param_value *value)
{
    if (!s || !name || !value || index >= s->total)
        return weft__err(WEFT_EINVAL, "weft_space_candidate: NULL argument or index out of range");
    const weft__sgrid *g = locate(s, &index);
    if (k >= g->ndims) return WEFT_EOF;
    *name = g->dims[k].name;
    value_of(&g->dims[k], digit(g, index, k), value);
    return 0;
}

int weft_space_lookup(const weft_space *s, size_t index, const char *name, weft_param_value *value)
{
    if (!s || !name || !value || index >= s->total)
        return weft__err(WEFT_EINVAL, "weft_space_lookup: NULL argument or index out of range");
    const weft__sgrid *g = locate(s, &index);
    for (size_t k = 0; k < g->ndims; k++)
        if (strcmp(g->dims[k].name, name) == 0) {
            value_of(&g->dims[k], digit(g, index, k), value);
            return 0;
        }
    return WEFT_ENOENT;
}

/* ---- the sampler ---------------------------------------------------------
 * scikit-learn 1.2's sample_without_replacement(n_population, n_samples,
 * random_state=rng), method "auto": with ratio = n_samples / n_population,
 *   0.01 < ratio < 0.99   rng.permutation(n_population)[:n_samples]
 *   ratio < 0.2           tracking selection: draw randint(n_population)
 *                         until a value not drawn before comes, n_samples
 *                         times
 *   otherwise             reservoir sampling: out = 0..n_samples-1, then
 *                         for i in n_samples..n_population-1, j =
 *                         randint(i + 1), out[j] = i when j < n_samples */

/* An open-addressing set of size_t for tracking selection. */
typedef struct idset {
    size_t *slot; /* SIZE_MAX = empty */
    size_t cap;   /* a power of two */
} idset;

static bool idset_add(idset *h, size_t v)
{
    size_t i = (size_t)((v * 0x9e3779b97f4a7c15ull) >> 7) & (h->cap - 1);
    while (h->slot[i] != SIZE_MAX) {
        if (h->slot[i] == v) return false;
        i = (i + 1) & (h->cap - 1);
    }
    h->slot[i] = v;
    return true;
}

int weft_space_sample(const weft_space *s, size_t n_iter, uint32_t seed, size_t *out, size_t *count)
{
    if (!s || !out || !count) return weft__err(WEFT_EINVAL, "weft_space_sample: NULL argument");
    size_t pop = s->total, n = n_iter < pop ? n_iter : pop;
    weft__mt *m = malloc(sizeof *m);
    if (!m) return weft__err(WEFT_ENOMEM, "weft_space_sample: out of memory");
    weft__mt_seed(m, seed);
    double ratio = pop ? (double)n / (double)pop : 1.0;
    int rc = 0;
    if (ratio > 0.01 && ratio < 0.99) {
        size_t *perm = malloc(pop * sizeof *perm);
        if (!perm) {
            rc = weft__err(WEFT_ENOMEM, "weft_space_sample: out of memory");
        } else {
            for (size_t i = 0; i < pop; i++) perm[i] = i;
            weft__mt_shuffle(m, perm, pop);
            memcpy(out, perm, n * sizeof *out);
            free(perm);
        }
    } else if (ratio < 0.2) {
        idset h = {.cap = 16};
        while (h.cap < 2 * n + 2) h.cap *= 2;
        h.slot = malloc(h.cap * sizeof *h.slot);
        if (!h.slot) {
            rc = weft__err(WEFT_ENOMEM, "weft_space_sample: out of memory");
        } else {
            memset(h.slot, 0xff, h.cap * sizeof *h.slot);
            for (size_t i = 0; i < n; i++) {
                size_t j = (size_t)weft__mt_randint(m, pop);
                while (!idset_add(&h, j)) j = (size_t)weft__mt_randint(m, pop);
                out[i] = j;
            }
            free(h.slot);
        }
    } else {
        for (size_t i = 0; i < n; i++) out[i] = i;
        for (size_t i = n; i < pop; i++) {
            size_t j = (size_t)weft__mt_randint(m, (uint64_t)i + 1);
            if (j < n) out[j] = i;
        }
    }
    free(m);
    *count = rc ? 0 : n;
    return rc;
}

int weft__space_clone(const weft_space *s, weft_space **out)
{
    weft_space *c = calloc(1, sizeof *c);
    if (!c) return WEFT_ENOMEM;
    c->grids = calloc(s->ngrids, sizeof *c->grids);
    if (!c->grids) {
        free(c);
        return WEFT_ENOMEM;
    }
    c->ngrids = c->cap = s->ngrids;
    c->total = s->total;
    bool ok = true;
    for (size_t g = 0; g < s->ngrids; g++) {
        const weft__sgrid *sg = &s->grids[g];
        weft__sgrid *cg = &c->grids[g];
        cg->size = sg->size;
        if (sg->ndims == 0) continue;
        cg->dims = calloc(sg->ndims, sizeof *cg->dims);
        if (!cg->dims) {
            ok = false;
            break;
        }
        cg->cap = sg->ndims;
        for (size_t k = 0; k < sg->ndims && ok; k++) {
            const weft__sdim *sd = &sg->dims[k];
            weft__sdim *cd = &cg->dims[k];
            cg->ndims = k + 1;
            cd->kind = sd->kind;
            cd->name = strdup(sd->name);
            ok = cd->name != NULL;
            if (ok && sd->kind == WEFT_PARAM_DOUBLE) {
                ok = (cd->d = malloc(sd->n * sizeof *cd->d)) != NULL;
                if (ok) memcpy(cd->d, sd->d, sd->n * sizeof *cd->d);
            } else if (ok && sd->kind == WEFT_PARAM_INT) {
                ok = (cd->i = malloc(sd->n * sizeof *cd->i)) != NULL;
                if (ok) memcpy(cd->i, sd->i, sd->n * sizeof *cd->i);
            } else if (ok) {
                ok = (cd->s = calloc(sd->n, sizeof *cd->s)) != NULL;
                if (ok) cd->n = sd->n;
                for (size_t v = 0; ok && v < sd->n; v++) ok = (cd->s[v] = strdup(sd->s[v])) != NULL;
            }
            cd->n = sd->n;
        }
    }
    if (!ok) {
        weft_space_destroy(c);
        return WEFT_ENOMEM;
    }
    *out = c;
    return 0;
}

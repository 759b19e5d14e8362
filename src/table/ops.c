/* ops.c : the per-partition tasks of the table operations (filter, select,
 * assign, join, partial aggregates, top-n, sort) and the merges of their
 * partial results, which run in the calling thread as partitions finish.
 *
 * groupby: each partition's task groups its rows by the key tuple (a hash
 * index, or an array indexed by the tuple when the keys are int64 of a
 * small range; rows with a missing key left out, as pandas' dropna=True) and
 * emits one state row per group: count; sum with its Neumaier compensation;
 * (n, mean, M2) for the variance (Welford in row order, merged with Chan's
 * formula); min and max; and for median and nunique the group's values
 * (nunique: distinct per partition). The states are merged group by
 * group into accumulators in lanes (partition p into lane p % 2, in
 * partition order; the lanes merged at the end), by the caller as
 * partitions finish, or on executors that share memory by the CSV read
 * tasks themselves (gb_lanes below); the groups are then sorted by key;
 * medians are selected exactly from the gathered values (quickselect, the
 * mean of the two middle values for an even count: numpy's median). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "table/table_internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

/* ---- small helpers ---- */

static int arg_table(weft_ctx *ctx, const void *in, size_t len, size_t i, weft_table **t)
{
    int rc = weft_table_arg(in, len, i, t);
    if (rc) return weft_ctx_fail(ctx, rc, "argument %zu is not a table", i);
    return 0;
}

/* As arg_table, for tasks that only read the partition: in place when the
 * bytes allow it (weft__table_view), else a copy. */
static int arg_view(weft_ctx *ctx, const void *in, size_t len, size_t i, weft_table **t)
{
    const void *d;
    size_t n;
    int rc = weft_args_get(in, len, i, &d, &n);
    if (!rc) rc = weft__table_view(d, n, t);
    if (rc) return weft_ctx_fail(ctx, rc, "argument %zu is not a table", i);
    return 0;
}

static int arg_unpack(const void *in, size_t len, size_t i, unpack *u)
{
    const void *d;
    size_t n;
    int rc = weft_args_get(in, len, i, &d, &n);
    if (rc) return rc;
    u->p = d;
    u->e = (const char *)d + n;
    u->bad = false;
    return 0;
}

static int finish(weft_ctx *ctx, weft_table *t, int rc)
{
    if (!rc && weft__table_output_take(ctx, t)) return 0; /* a chain's: the table itself */
    if (!rc) rc = weft_table_output(ctx, t);
    weft_table_destroy(t);
    return rc;
}

int weft__tb_lit(weft_ctx *ctx, const void *in, size_t len)
{
    const void *d;
    size_t n;
    if (weft_args_get(in, len, 0, &d, &n)) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad input");
    return weft_ctx_set_output(ctx, d, n);
}

/* ---- filter ---- */

int weft__tb_filter(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    unpack u = {NULL, NULL, true};
    int rc = arg_table(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bad filter");
    }
    char *name = unpack_str(&u);
    uint64_t op = unpack_u64(&u);
    double value = unpack_f64(&u);
    tcol *c = name ? weft__table_col(t, name) : NULL;
    if (u.bad || !c) {
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "filter: no column '%s'", name ? name : "?");
    } else if (op == 0 ? c->type != WEFT_COL_BOOL
                       : c->type != WEFT_COL_INT64 && c->type != WEFT_COL_DOUBLE) {
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "filter: column '%s' is %s", name,
                           weft_col_type_name(c->type));
    }
    size_t *idx = rc ? NULL : malloc((t->nrows ? t->nrows : 1) * sizeof *idx);
    if (!rc && !idx) rc = weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; !rc && i < t->nrows; i++) {
        if (!weft__tcol_ok(c, i)) continue;
        bool keep;
        if (op == 0) {
            keep = ((const bool *)c->data)[i];
        } else if (c->type == WEFT_COL_INT64) {
            /* compare int64 exactly when the value is an integer in range */
            int64_t x = ((const int64_t *)c->data)[i];
            double xv = (double)x;
            int cmp;
            if (value != value)
                cmp = 2;
            else if (value >= 9223372036854775808.0)
                cmp = -1;
            else if (value < -9223372036854775808.0)
                cmp = 1;
            else {
                double fl = floor(value);
                int64_t vi = (int64_t)fl;
                if (x < vi)
                    cmp = -1;
                else if (x > vi)
                    cmp = 1;
                else
                    cmp = fl == value ? 0 : -1;
            }
            (void)xv;
            switch (op) {
            case WEFT_CMP_LT:
                keep = cmp == -1;
                break;
            case WEFT_CMP_LE:
                keep = cmp == -1 || cmp == 0;
                break;
            case WEFT_CMP_EQ:
                keep = cmp == 0;
                break;
            case WEFT_CMP_NE:
                keep = cmp != 0;
                break;
            case WEFT_CMP_GE:
                keep = cmp == 0 || cmp == 1;
                break;
            default:
                keep = cmp == 1;
                break;
            }
        } else {
            double x = ((const double *)c->data)[i];
            switch (op) {
            case WEFT_CMP_LT:
                keep = x < value;
                break;
            case WEFT_CMP_LE:
                keep = x <= value;
                break;
            case WEFT_CMP_EQ:
                keep = x == value;
                break;
            case WEFT_CMP_NE:
                keep = x != value && x == x;
                break;
            case WEFT_CMP_GE:
                keep = x >= value;
                break;
            default:
                keep = x > value;
                break;
            }
        }
        if (keep) idx[n++] = i;
    }
    weft_table *o = NULL;
    if (!rc) rc = weft__table_take(t, idx, n, &o);
    free(idx);
    free(name);
    weft_table_destroy(t);
    return finish(ctx, o, rc);
}

/* ---- select ---- */

int weft__tb_select(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t, *o = NULL;
    unpack u = {NULL, NULL, true};
    int rc = arg_table(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) rc = WEFT_EINVAL;
    uint64_t n = rc ? 0 : unpack_u64(&u);
    if (!rc) rc = weft_table_create(&o);
    for (uint64_t k = 0; k < n && !rc; k++) {
        char *name = unpack_str(&u);
        tcol *c = name ? weft__table_col(t, name) : NULL;
        if (!c)
            rc = weft_ctx_fail(ctx, WEFT_EINVAL, "select: no column '%s'", name ? name : "?");
        else if (weft__table_col(o, name))
            rc = weft_ctx_fail(ctx, WEFT_EINVAL, "select: column '%s' named twice", name);
        else {
            /* move the column: t is thrown away */
            if (o->ncols == o->capcols) {
                tcol *p = realloc(o->cols, (o->capcols ? o->capcols * 2 : 8) * sizeof *p);
                if (!p)
                    rc = WEFT_ENOMEM;
                else
                    o->cols = p, o->capcols = o->capcols ? o->capcols * 2 : 8;
            }
            if (!rc) {
                o->cols[o->ncols++] = *c;
                memset(c, 0, sizeof *c);
                c->name = strdup("");
                c->type = WEFT_COL_NONE;
            }
        }
        free(name);
    }
    if (!rc) {
        o->nrows = t->nrows;
        o->skipped = t->skipped;
    }
    weft_table_destroy(t);
    return finish(ctx, o, rc);
}

/* ---- assign: the partition with the columns of a second table ---- */

int weft__tb_hstack(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t, *add;
    int rc = arg_table(ctx, in, len, 0, &t);
    if (rc) return rc;
    rc = arg_table(ctx, in, len, 1, &add);
    if (rc) {
        weft_table_destroy(t);
        return rc;
    }
    if (add->ncols && add->nrows != t->nrows)
        rc = weft_ctx_fail(ctx, WEFT_EINVAL,
                           "assign: the function returned %zu rows for a partition of %zu",
                           add->nrows, t->nrows);
    for (size_t k = 0; k < add->ncols && !rc; k++) {
        tcol *old = weft__table_col(t, add->cols[k].name);
        if (old) {
            if (!old->borrowed) { /* a chain's view: the arrays are not t's */
                free(old->data);
                free(old->valid);
                free(old->chars);
            }
            free(old->name);
            *old = add->cols[k];
        } else {
            if (t->ncols == t->capcols) {
                size_t nc = t->capcols ? t->capcols * 2 : 8;
                tcol *p = realloc(t->cols, nc * sizeof *p);
                if (!p) {
                    rc = WEFT_ENOMEM;
                    break;
                }
                t->cols = p;
                t->capcols = nc;
            }
            t->cols[t->ncols++] = add->cols[k];
        }
        memset(&add->cols[k], 0, sizeof add->cols[k]);
    }
    weft_table_destroy(add);
    return finish(ctx, t, rc);
}

/* ---- hashing rows by a tuple of columns ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t cell_hash(const tcol *c, size_t i)
{
    switch (c->type) {
    case WEFT_COL_INT64:
        return mix64((uint64_t)((const int64_t *)c->data)[i]);
    case WEFT_COL_DOUBLE: {
        double d = ((const double *)c->data)[i];
        if (d == 0) d = 0; /* -0.0 groups with 0.0 */
        uint64_t b;
        memcpy(&b, &d, 8);
        return mix64(b);
    }
    case WEFT_COL_BOOL:
        return mix64(((const bool *)c->data)[i] ? 1 : 2);
    default:
        return XXH3_64bits(weft__tcol_text(c, i), weft__tcol_textlen(c, i));
    }
}

static bool cell_eq(const tcol *a, size_t i, const tcol *b, size_t j)
{
    switch (a->type) {
    case WEFT_COL_INT64:
        return ((const int64_t *)a->data)[i] == ((const int64_t *)b->data)[j];
    case WEFT_COL_DOUBLE:
        return ((const double *)a->data)[i] == ((const double *)b->data)[j];
    case WEFT_COL_BOOL:
        return ((const bool *)a->data)[i] == ((const bool *)b->data)[j];
    default:
        return weft__tcol_textlen(a, i) == weft__tcol_textlen(b, j) &&
               !memcmp(weft__tcol_text(a, i), weft__tcol_text(b, j), weft__tcol_textlen(a, i));
    }
}

static int cell_cmp(const tcol *a, size_t i, const tcol *b, size_t j)
{
    switch (a->type) {
    case WEFT_COL_INT64: {
        int64_t x = ((const int64_t *)a->data)[i], y = ((const int64_t *)b->data)[j];
        return (x > y) - (x < y);
    }
    case WEFT_COL_DOUBLE: {
        double x = ((const double *)a->data)[i], y = ((const double *)b->data)[j];
        return (x > y) - (x < y);
    }
    case WEFT_COL_BOOL: {
        int x = ((const bool *)a->data)[i], y = ((const bool *)b->data)[j];
        return (x > y) - (x < y);
    }
    default: {
        size_t la = weft__tcol_textlen(a, i), lb = weft__tcol_textlen(b, j);
        int r = memcmp(weft__tcol_text(a, i), weft__tcol_text(b, j), la < lb ? la : lb);
        return r ? (r > 0) - (r < 0) : (la > lb) - (la < lb);
    }
    }
}

/* A set of distinct key tuples; group g's key is row g of `keys`. */
typedef struct gindex {
    weft_table *keys;
    size_t nk, ngroups, cap;
    uint32_t *slots; /* group + 1, 0 = empty */
    uint64_t *hash;  /* per group */
    size_t hcap;
} gindex;

static int gindex_init(gindex *g, const weft_table *src, const size_t *cols, size_t nk,
                       weft_table *reuse)
{
    memset(g, 0, sizeof *g);
    int rc = 0;
    if (reuse && reuse->ncols >= nk && !reuse->borrowed) {
        /* a state table of an earlier partial of the same groupby: its key
         * columns are this one's; emptied, its arrays kept */
        bool same = true;
        for (size_t k = 0; k < nk && same; k++)
            same = reuse->cols[k].type == src->cols[cols[k]].type &&
                   !strcmp(reuse->cols[k].name, src->cols[cols[k]].name);
        if (same) {
            g->keys = reuse;
            reuse = NULL;
            g->keys->nrows = 0;
            g->keys->skipped = 0;
            for (size_t k = 0; k < g->keys->ncols; k++)
                g->keys->cols[k].n = g->keys->cols[k].nchars = 0;
        }
    }
    weft_table_destroy(reuse);
    if (!g->keys) {
        rc = weft_table_create(&g->keys);
        for (size_t k = 0; k < nk && !rc; k++)
            if (!weft__table_add_col(g->keys, src->cols[cols[k]].name, src->cols[cols[k]].type))
                rc = WEFT_ENOMEM;
    }
    g->nk = nk;
    g->cap = 1024;
    g->slots = calloc(g->cap, sizeof *g->slots);
    if (!g->slots) rc = WEFT_ENOMEM;
    return rc;
}

static void gindex_fini(gindex *g)
{
    weft_table_destroy(g->keys);
    free(g->slots);
    free(g->hash);
}

/* The group of row i of src (key columns cols[]), added when new; -1 ENOMEM. */
static int64_t gindex_get(gindex *g, const weft_table *src, const size_t *cols, size_t i)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t k = 0; k < g->nk; k++) h = mix64(h ^ cell_hash(&src->cols[cols[k]], i)) + k;
    size_t mask = g->cap - 1, s = (size_t)h & mask;
    while (g->slots[s]) {
        size_t gr = g->slots[s] - 1;
        if (g->hash[gr] == h) {
            bool eq = true;
            for (size_t k = 0; k < g->nk && eq; k++)
                eq = cell_eq(&g->keys->cols[k], gr, &src->cols[cols[k]], i);
            if (eq) return (int64_t)gr;
        }
        s = (s + 1) & mask;
    }
    if (g->ngroups >= UINT32_MAX - 1) return -1;
    size_t gr = g->ngroups++;
    if (gr >= g->hcap) {
        size_t nc = g->hcap ? g->hcap * 2 : 256;
        uint64_t *p = realloc(g->hash, nc * sizeof *p);
        if (!p) return -1;
        g->hash = p;
        g->hcap = nc;
    }
    g->hash[gr] = h;
    for (size_t k = 0; k < g->nk; k++)
        if (weft__tcol_push_from(&g->keys->cols[k], &src->cols[cols[k]], i)) return -1;
    g->keys->nrows = g->ngroups;
    g->slots[s] = (uint32_t)(gr + 1);
    if (g->ngroups * 2 > g->cap) {
        size_t nc = g->cap * 2;
        uint32_t *ns = calloc(nc, sizeof *ns);
        if (!ns) return -1;
        for (size_t q = 0; q < g->ngroups; q++) {
            size_t t = (size_t)g->hash[q] & (nc - 1);
            while (ns[t]) t = (t + 1) & (nc - 1);
            ns[t] = (uint32_t)(q + 1);
        }
        free(g->slots);
        g->slots = ns;
        g->cap = nc;
    }
    return (int64_t)gr;
}

/* The scratch of a groupby partial that is not part of it, pooled per run
 * on an executor that shares memory (gb_lanes): the rows' group numbers,
 * and dense_groups' array of key tuples, kept at -1 between partials (a
 * partial resets only the slots of its own groups: no memset of the whole
 * array when a range meets few groups). NULL: fresh arrays, freed after. */
typedef struct gb_scratch {
    int64_t *gid;
    size_t gcap;
    int32_t *slot; /* scap slots, each -1 between partials */
    size_t scap;
    struct gb_scratch *next;
} gb_scratch;

static void scratch_free(gb_scratch *s)
{
    while (s) {
        gb_scratch *n = s->next;
        weft__blk_free(s->gid);
        free(s->slot);
        free(s);
        s = n;
    }
}

/* Int64 keys of a small range (at most 8 key columns, all int64, the
 * product of their ranges in this partition at most 2^22 and at most
 * the larger of 4 x its rows and 2^18): a row's group is found by indexing an array with its key tuple
 * (a perfect hash: no hashing, no compare of keys), and groups are
 * numbered in order of first appearance as gindex_get numbers them, so the
 * partial is the same. Fills gid[] and g's keys. @return 1 when done, 0
 * when the keys do not qualify (nothing changed), or WEFT_ENOMEM. */
static _Atomic uint64_t dense_partials;

uint64_t weft__gb_dense_partials(void)
{
    return atomic_load_explicit(&dense_partials, memory_order_relaxed);
}

static int dense_groups(gindex *g, const weft_table *src, const size_t *cols, size_t nk,
                        int64_t *gid, gb_scratch *sc)
{
    uint64_t lo[8], span[8];
    size_t n = src->nrows, total = 1, limit = (size_t)1 << 22;
    if (nk == 0 || nk > 8 || g->ngroups) return 0;
    /* the array costs 4 bytes a slot, set once a partition: up to 2^18
     * slots whatever the rows (a 1 MiB memset), else 4 x the rows */
    if (limit > 4 * n + 1024) limit = 4 * n + 1024;
    if (limit < ((size_t)1 << 18)) limit = (size_t)1 << 18;
    for (size_t k = 0; k < nk; k++) {
        const tcol *c = &src->cols[cols[k]];
        if (c->type != WEFT_COL_INT64) return 0;
        const int64_t *v = c->data;
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            if (!weft__tcol_ok(c, i)) continue;
            if (v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
        if (mn > mx) mn = mx = 0;                     /* no key present */
        uint64_t range = (uint64_t)mx - (uint64_t)mn; /* no overflow in unsigned */
        if (range >= limit) return 0;
        lo[k] = (uint64_t)mn;
        span[k] = range + 1;
        total *= (size_t)span[k];
        if (total > limit) return 0;
    }
    int32_t *slot;
    if (sc) {
        if (sc->scap < total) { /* the pooled array, grown: the new slots set once */
            int32_t *p = realloc(sc->slot, total * sizeof *p);
            if (!p) return WEFT_ENOMEM;
            memset(p + sc->scap, 0xff, (total - sc->scap) * sizeof *p);
            sc->slot = p;
            sc->scap = total;
        }
        slot = sc->slot;
    } else {
        slot = malloc(total * sizeof *slot);
        if (!slot) return WEFT_ENOMEM;
        memset(slot, 0xff, total * sizeof *slot); /* -1: no group yet */
    }
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++) {
        size_t at = 0;
        bool ok = true;
        for (size_t k = 0; k < nk && ok; k++) {
            const tcol *c = &src->cols[cols[k]];
            ok = weft__tcol_ok(c, i);
            at = at * (size_t)span[k] + (size_t)((uint64_t)((const int64_t *)c->data)[i] - lo[k]);
        }
        if (!ok) {
            gid[i] = -1;
            continue;
        }
        if (slot[at] < 0) {
            if (g->ngroups >= (size_t)INT32_MAX) {
                rc = WEFT_ENOMEM;
                break;
            }
            slot[at] = (int32_t)g->ngroups++;
            for (size_t k = 0; k < nk && rc == 1; k++)
                if (weft__tcol_push_from(&g->keys->cols[k], &src->cols[cols[k]], i))
                    rc = WEFT_ENOMEM;
            g->keys->nrows = g->ngroups;
        }
        gid[i] = slot[at];
    }
    if (!sc) {
        free(slot);
    } else if (rc == 1) { /* back to -1: the slots of this partial's groups */
        for (size_t q = 0; q < g->ngroups; q++) {
            size_t at = 0;
            for (size_t k = 0; k < nk; k++)
                at = at * (size_t)span[k] +
                     (size_t)((uint64_t)((const int64_t *)g->keys->cols[k].data)[q] - lo[k]);
            slot[at] = -1;
        }
    } else { /* a group's keys may be missing: every slot */
        memset(slot, 0xff, sc->scap * sizeof *slot);
    }
    if (rc == 1) atomic_fetch_add_explicit(&dense_partials, 1, memory_order_relaxed);
    return rc;
}

/* ---- groupby spec ---- */

typedef struct gb_spec {
    size_t nkeys, naggs;
    char **keys;
    char **cols;
    char **names;
    weft_agg_kind *kinds;
} gb_spec;

static const char *agg_name(weft_agg_kind k)
{
    static const char *const n[] = {"",    "count", "sum",     "mean",  "min",
                                    "max", "var",   "nunique", "median"};
    return k >= WEFT_AGG_COUNT && k <= WEFT_AGG_MEDIAN ? n[k] : "?";
}

int weft__gb_spec(const char *const *keys, size_t nkeys, const weft_agg *aggs, size_t naggs,
                  void **buf, size_t *len)
{
    pack k = {0};
    pack_u64(&k, nkeys);
    for (size_t i = 0; i < nkeys; i++) pack_str(&k, keys[i]);
    pack_u64(&k, naggs);
    for (size_t i = 0; i < naggs; i++) {
        char nm[512];
        if (aggs[i].name)
            snprintf(nm, sizeof nm, "%s", aggs[i].name);
        else
            snprintf(nm, sizeof nm, "%s_%s", aggs[i].column, agg_name(aggs[i].kind));
        pack_str(&k, aggs[i].column);
        pack_str(&k, nm);
        pack_u64(&k, (uint64_t)aggs[i].kind);
    }
    if (k.oom) {
        free(k.p);
        return WEFT_ENOMEM;
    }
    *buf = k.p;
    *len = k.n;
    return 0;
}

static void gb_spec_free(gb_spec *s)
{
    for (size_t i = 0; i < s->nkeys; i++) free(s->keys[i]);
    for (size_t i = 0; i < s->naggs; i++) free(s->cols[i]), free(s->names[i]);
    free(s->keys);
    free(s->cols);
    free(s->names);
    free(s->kinds);
}

static int gb_spec_read(unpack *u, gb_spec *s)
{
    memset(s, 0, sizeof *s);
    uint64_t nk = unpack_u64(u);
    if (u->bad || nk > 4096) return WEFT_EINVAL;
    s->keys = calloc(nk ? nk : 1, sizeof *s->keys);
    if (!s->keys) return WEFT_ENOMEM;
    for (; s->nkeys < nk; s->nkeys++)
        if (!(s->keys[s->nkeys] = unpack_str(u))) return WEFT_EINVAL;
    uint64_t na = unpack_u64(u);
    if (u->bad || na > 4096) return WEFT_EINVAL;
    s->cols = calloc(na ? na : 1, sizeof *s->cols);
    s->names = calloc(na ? na : 1, sizeof *s->names);
    s->kinds = calloc(na ? na : 1, sizeof *s->kinds);
    if (!s->cols || !s->names || !s->kinds) return WEFT_ENOMEM;
    for (; s->naggs < na; s->naggs++) {
        s->cols[s->naggs] = unpack_str(u);
        s->names[s->naggs] = unpack_str(u);
        s->kinds[s->naggs] = (weft_agg_kind)unpack_u64(u);
        if (u->bad) {
            s->naggs++;
            return WEFT_EINVAL;
        }
    }
    return 0;
}

static bool is_num(weft_col_type t)
{
    return t == WEFT_COL_INT64 || t == WEFT_COL_DOUBLE;
}

/* Checks the spec against a partition's columns; a message in `msg`. */
static int gb_check(const gb_spec *s, const weft_table *t, size_t *keycols, size_t *aggcols,
                    char *msg, size_t msz)
{
    for (size_t k = 0; k < s->nkeys; k++) {
        if (weft_table_col_index(t, s->keys[k], &keycols[k])) {
            snprintf(msg, msz, "groupby: no key column '%s'", s->keys[k]);
            return WEFT_EINVAL;
        }
    }
    for (size_t a = 0; a < s->naggs; a++) {
        if (weft_table_col_index(t, s->cols[a], &aggcols[a])) {
            snprintf(msg, msz, "groupby: no column '%s'", s->cols[a]);
            return WEFT_EINVAL;
        }
        weft_col_type ty = t->cols[aggcols[a]].type;
        weft_agg_kind k = s->kinds[a];
        bool ok = k == WEFT_AGG_COUNT || k == WEFT_AGG_NUNIQUE ||
                  ((k == WEFT_AGG_MIN || k == WEFT_AGG_MAX) && ty != WEFT_COL_TEXT) ||
                  (k >= WEFT_AGG_SUM && k <= WEFT_AGG_MEDIAN && is_num(ty));
        if (k < WEFT_AGG_COUNT || k > WEFT_AGG_MEDIAN) ok = false;
        if (!ok) {
            snprintf(msg, msz, "groupby: %s of column '%s' (%s) is not defined", agg_name(k),
                     s->cols[a], weft_col_type_name(ty));
            return WEFT_EINVAL;
        }
    }
    return 0;
}

/* Neumaier's compensated addition of x to (*s, *c): the larger of the two
 * addends in magnitude goes first into the lost part. Both are selected
 * without a branch (the comparison goes either way at random for data of
 * mixed magnitudes, a mispredicted branch a row); the operations are the
 * same, so are the bits. */
static inline void neu_add(double *s, double *c, double x)
{
    double a = *s, t = a + x;
    uint64_t ab, xb, m = (uint64_t)0 - (uint64_t)(fabs(a) >= fabs(x));
    memcpy(&ab, &a, 8);
    memcpy(&xb, &x, 8);
    uint64_t bb = (ab & m) | (xb & ~m), sb = (xb & m) | (ab & ~m);
    double big, small;
    memcpy(&big, &bb, 8);
    memcpy(&small, &sb, 8);
    *c += (big - t) + small;
    *s = t;
}

/* Outputs the bundle of ts[0..n) -- u64 count, then per table u64 length
 * and its serialized bytes -- straight into the task's output: one copy of
 * the values, not three (serialize, pack, output). */
static int bundle_output(weft_ctx *ctx, weft_table *const *ts, size_t n)
{
    size_t total = 8;
    for (size_t i = 0; i < n; i++) {
        size_t l = weft__table_ser_size(ts[i]);
        if (!l) return WEFT_EINVAL; /* a name longer than the format allows */
        total += 8 + l;
    }
    char *p = weft_ctx_output(ctx, total);
    if (!p) return WEFT_ENOMEM;
    uint64_t v = n;
    memcpy(p, &v, 8);
    p += 8;
    for (size_t i = 0; i < n; i++) {
        v = weft__table_ser_size(ts[i]);
        memcpy(p, &v, 8);
        weft__table_ser_into(ts[i], p + 8);
        p += 8 + v;
    }
    return 0;
}

static uint64_t value_key(const tcol *c, size_t i, uint64_t *k2)
{
    *k2 = 0;
    switch (c->type) {
    case WEFT_COL_INT64:
        return (uint64_t)((const int64_t *)c->data)[i];
    case WEFT_COL_DOUBLE: {
        double d = ((const double *)c->data)[i];
        if (d == 0) d = 0;
        uint64_t b;
        memcpy(&b, &d, 8);
        return b;
    }
    case WEFT_COL_BOOL:
        return ((const bool *)c->data)[i];
    default: {
        XXH128_hash_t h = XXH3_128bits(weft__tcol_text(c, i), weft__tcol_textlen(c, i));
        *k2 = h.high64;
        return h.low64;
    }
    }
}

typedef struct triple {
    int64_t g;
    uint64_t a, b;
} triple;

static int triple_cmp(const void *x, const void *y)
{
    const triple *p = x, *q = y;
    if (p->g != q->g) return p->g < q->g ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

/* State column `idx` of `st` for ng groups, zeroed (its mask too, when
 * `valid` asks for one): the column itself when st is a recycled state
 * table (then it must have that name and type), else a new column. The
 * partial's sums are accumulated in place: no array copied into the table
 * after. *data is its values. */
static int state_col(weft_table *st, size_t idx, const char *name, weft_col_type type, size_t ng,
                     void **data, uint8_t **valid)
{
    tcol *c;
    if (idx < st->ncols) {
        c = &st->cols[idx];
        if (c->type != type || strcmp(c->name, name)) return WEFT_EINVAL;
    } else if (idx == st->ncols) {
        if (!(c = weft__table_add_col(st, name, type))) return WEFT_ENOMEM;
    } else {
        return WEFT_EINVAL;
    }
    if (weft__tcol_reserve_exact(c, ng + 1)) return WEFT_ENOMEM;
    memset(c->data, 0, ng * weft__tcol_width(type));
    if (valid) {
        if (!c->valid && !(c->valid = malloc(c->cap))) return WEFT_ENOMEM;
        memset(c->valid, 0, ng);
        *valid = c->valid;
    } else if (c->valid) {
        free(c->valid);
        c->valid = NULL;
    }
    c->n = ng;
    *data = c->data;
    return 0;
}

/* The partial of partition `t` (not destroyed) for the spec in `u`: the
 * state table, then one list table per median and nunique, in
 * (*out)[0..*nout) (malloc'ed, the caller destroys them). `sc` (NULL:
 * none) is pooled scratch; `reuse` (NULL: none; always taken) a state
 * table of an earlier partial of the same groupby, filled again. */
static int gb_partial_tables(weft_ctx *ctx, const weft_table *t, unpack *u, gb_scratch *sc,
                             weft_table *reuse, weft_table ***out, size_t *nout)
{
    gb_spec s;
    int rc = 0;
    *out = NULL;
    *nout = 0;
    memset(&s, 0, sizeof s);
    if (u->bad || gb_spec_read(u, &s)) {
        gb_spec_free(&s);
        weft_table_destroy(reuse);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "groupby: bad spec");
    }
    size_t *kc = calloc(s.nkeys + 1, sizeof *kc), *ac = calloc(s.naggs + 1, sizeof *ac);
    char msg[600];
    gindex g;
    memset(&g, 0, sizeof g);
    int64_t *gid = NULL;
    if (sc) {
        if (sc->gcap < t->nrows + 1) {
            weft__blk_free(sc->gid);
            sc->gcap = 0;
            if ((sc->gid = weft__blk_alloc((t->nrows + 1) * sizeof *sc->gid)))
                sc->gcap = t->nrows + 1;
        }
        gid = sc->gid;
    } else {
        gid = weft__blk_alloc((t->nrows + 1) * sizeof *gid);
    }
    weft_table *st = NULL;
    if (!kc || !ac || !gid) rc = WEFT_ENOMEM;
    if (!rc && (rc = gb_check(&s, t, kc, ac, msg, sizeof msg))) weft_ctx_fail(ctx, rc, "%s", msg);
    if (!rc)
        rc = gindex_init(&g, t, kc, s.nkeys, reuse);
    else
        weft_table_destroy(reuse);
    int dense = rc ? 0 : dense_groups(&g, t, kc, s.nkeys, gid, sc);
    if (dense < 0) rc = dense;
    for (size_t i = 0; i < t->nrows && !rc && !dense; i++) {
        bool ok = true;
        for (size_t k = 0; k < s.nkeys && ok; k++) ok = weft__tcol_ok(&t->cols[kc[k]], i);
        if (!ok) {
            gid[i] = -1;
            continue;
        }
        if ((gid[i] = gindex_get(&g, t, kc, i)) < 0) rc = WEFT_ENOMEM;
    }
    size_t ng = g.ngroups;
    if (!rc) {
        st = g.keys;
        g.keys = NULL;
        st->nrows = ng;
    }
    size_t nlist = 0;
    for (size_t a = 0; a < s.naggs && !rc; a++)
        nlist += s.kinds[a] == WEFT_AGG_MEDIAN || s.kinds[a] == WEFT_AGG_NUNIQUE;
    /* state columns (written in place); named by position so no user name
     * can clash */
    weft_table **lists = calloc(nlist + 1, sizeof *lists);
    size_t li = 0, ci = s.nkeys;
    if (!lists) rc = WEFT_ENOMEM;
    for (size_t a = 0; a < s.naggs && !rc; a++) {
        const tcol *c = &t->cols[ac[a]];
        weft_agg_kind k = s.kinds[a];
        char nm[3][32]; /* "\x01" + 20 digits + "." + one digit */
        for (unsigned q = 0; q < 3; q++) snprintf(nm[q], sizeof nm[q], "\x01%zu.%u", a, q % 10u);
        void *d0 = NULL, *d1 = NULL, *d2 = NULL;
        if (k == WEFT_AGG_COUNT) {
            rc = state_col(st, ci++, nm[0], WEFT_COL_INT64, ng, &d0, NULL);
            int64_t *n = d0;
            for (size_t i = 0; !rc && i < t->nrows; i++)
                if (gid[i] >= 0 && weft__tcol_ok(c, i)) n[gid[i]]++;
        } else if (k == WEFT_AGG_SUM && c->type == WEFT_COL_INT64) {
            rc = state_col(st, ci++, nm[0], WEFT_COL_INT64, ng, &d0, NULL);
            int64_t *sm = d0;
            for (size_t i = 0; !rc && i < t->nrows; i++)
                if (gid[i] >= 0 && weft__tcol_ok(c, i))
                    sm[gid[i]] =
                        (int64_t)((uint64_t)sm[gid[i]] + (uint64_t)((const int64_t *)c->data)[i]);
        } else if (k == WEFT_AGG_SUM || k == WEFT_AGG_MEAN) {
            rc = state_col(st, ci++, nm[0], WEFT_COL_DOUBLE, ng, &d0, NULL);
            if (!rc) rc = state_col(st, ci++, nm[1], WEFT_COL_DOUBLE, ng, &d1, NULL);
            if (!rc) rc = state_col(st, ci++, nm[2], WEFT_COL_INT64, ng, &d2, NULL);
            double *sm = d0, *cp = d1;
            int64_t *n = d2;
            for (size_t i = 0; !rc && i < t->nrows; i++)
                if (gid[i] >= 0 && weft__tcol_ok(c, i)) {
                    neu_add(&sm[gid[i]], &cp[gid[i]], weft__tcol_num(c, i));
                    n[gid[i]]++;
                }
        } else if (k == WEFT_AGG_MIN || k == WEFT_AGG_MAX) {
            size_t w = weft__tcol_width(c->type);
            uint8_t *has = NULL;
            rc = state_col(st, ci++, nm[0], c->type, ng, &d0, &has);
            char *v = d0;
            for (size_t i = 0; !rc && i < t->nrows; i++) {
                if (gid[i] < 0 || !weft__tcol_ok(c, i)) continue;
                size_t gg = (size_t)gid[i];
                bool take = !has[gg];
                if (!take) {
                    tcol tmp = *c;
                    tmp.data = v;
                    tmp.valid = NULL;
                    int cmp = cell_cmp(c, i, &tmp, gg);
                    take = k == WEFT_AGG_MIN ? cmp < 0 : cmp > 0;
                    if (c->type == WEFT_COL_DOUBLE &&
                        ((const double *)c->data)[i] != ((const double *)c->data)[i])
                        take = false;
                }
                if (take) {
                    memcpy(v + gg * w, (const char *)c->data + i * w, w);
                    has[gg] = 1;
                }
            }
        } else if (k == WEFT_AGG_VAR) {
            rc = state_col(st, ci++, nm[0], WEFT_COL_INT64, ng, &d0, NULL);
            if (!rc) rc = state_col(st, ci++, nm[1], WEFT_COL_DOUBLE, ng, &d1, NULL);
            if (!rc) rc = state_col(st, ci++, nm[2], WEFT_COL_DOUBLE, ng, &d2, NULL);
            int64_t *n = d0;
            double *mean = d1, *m2 = d2;
            for (size_t i = 0; !rc && i < t->nrows; i++) {
                if (gid[i] < 0 || !weft__tcol_ok(c, i)) continue;
                size_t gg = (size_t)gid[i];
                double x = weft__tcol_num(c, i);
                n[gg]++;
                double d = x - mean[gg];
                mean[gg] += d / (double)n[gg];
                m2[gg] += d * (x - mean[gg]);
            }
        } else if (k == WEFT_AGG_MEDIAN) {
            size_t cnt = 0;
            for (size_t i = 0; i < t->nrows; i++) cnt += gid[i] >= 0 && weft__tcol_ok(c, i);
            int64_t *gg = weft__blk_alloc((cnt + 1) * sizeof *gg);
            double *v = weft__blk_alloc((cnt + 1) * sizeof *v);
            if (!gg || !v) rc = WEFT_ENOMEM;
            size_t j = 0;
            for (size_t i = 0; !rc && i < t->nrows; i++)
                if (gid[i] >= 0 && weft__tcol_ok(c, i))
                    gg[j] = gid[i], v[j++] = weft__tcol_num(c, i);
            weft_table *lt = NULL;
            if (!rc) rc = weft_table_create(&lt);
            if (!rc) rc = weft_table_add_int64(lt, "g", gg, NULL, cnt);
            if (!rc) rc = weft_table_add_double(lt, "v", v, NULL, cnt);
            lists[li++] = lt;
            weft__blk_free(gg), weft__blk_free(v);
        } else { /* nunique: distinct (group, value) of this partition */
            size_t cnt = 0;
            triple *tr = malloc((t->nrows + 1) * sizeof *tr);
            if (!tr) rc = WEFT_ENOMEM;
            for (size_t i = 0; !rc && i < t->nrows; i++)
                if (gid[i] >= 0 && weft__tcol_ok(c, i)) {
                    tr[cnt].g = gid[i];
                    tr[cnt].a = value_key(c, i, &tr[cnt].b);
                    cnt++;
                }
            if (!rc) qsort(tr, cnt, sizeof *tr, triple_cmp);
            size_t d = 0;
            for (size_t i = 0; !rc && i < cnt; i++)
                if (d == 0 || triple_cmp(&tr[d - 1], &tr[i])) tr[d++] = tr[i];
            int64_t *cols3 = malloc((3 * d + 1) * sizeof *cols3);
            if (!rc && !cols3) rc = WEFT_ENOMEM;
            for (size_t i = 0; !rc && i < d; i++) {
                cols3[i] = tr[i].g;
                cols3[d + i] = (int64_t)tr[i].a;
                cols3[2 * d + i] = (int64_t)tr[i].b;
            }
            weft_table *lt = NULL;
            if (!rc) rc = weft_table_create(&lt);
            if (!rc) rc = weft_table_add_int64(lt, "g", cols3, NULL, d);
            if (!rc) rc = weft_table_add_int64(lt, "a", cols3 + d, NULL, d);
            if (!rc) rc = weft_table_add_int64(lt, "b", cols3 + 2 * d, NULL, d);
            lists[li++] = lt;
            free(tr), free(cols3);
        }
    }
    if (!rc && st->ncols != ci) /* a recycled table of another layout */
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "groupby: a recycled state table is malformed");
    if (!rc) st->skipped = t->skipped;
    weft_table **all = rc ? NULL : malloc((li + 1) * sizeof *all);
    if (!rc && !all) rc = WEFT_ENOMEM;
    if (!rc) {
        all[0] = st;
        st = NULL;
        for (size_t q = 0; q < li; q++) all[q + 1] = lists[q];
        *out = all;
        *nout = li + 1;
    } else {
        for (size_t q = 0; q < li; q++) weft_table_destroy(lists[q]);
    }
    free(lists);
    if (rc == WEFT_ENOMEM) weft_ctx_fail(ctx, rc, "groupby: out of memory");
    weft_table_destroy(st);
    gindex_fini(&g);
    if (!sc) weft__blk_free(gid);
    free(kc), free(ac);
    gb_spec_free(&s);
    return rc;
}

static void tables_free(weft_table **ts, size_t n)
{
    for (size_t i = 0; ts && i < n; i++) weft_table_destroy(ts[i]);
    free(ts);
}

/* The partial of partition `t` (destroyed here) as the task's output. */
static int gb_partial_of(weft_ctx *ctx, weft_table *t, unpack *u)
{
    weft_table **all;
    size_t n;
    int rc = gb_partial_tables(ctx, t, u, NULL, NULL, &all, &n);
    weft_table_destroy(t);
    if (rc) return rc;
    rc = bundle_output(ctx, all, n);
    tables_free(all, n);
    if (rc == WEFT_ENOMEM) weft_ctx_fail(ctx, rc, "groupby: out of memory");
    return rc;
}

int weft__tb_gb_partial(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    unpack u = {NULL, NULL, true};
    int rc = arg_view(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) u.bad = true;
    return gb_partial_of(ctx, t, &u);
}

/* ---- groupby merge: accumulators in lanes ---- */

typedef struct vecd {
    int64_t *g;
    double *v;
    size_t n, cap;
} vecd;

typedef struct agg_acc {
    weft_agg_kind kind;
    weft_col_type type; /* the column's */
    int64_t *n, *isum, *imin;
    double *s, *c, *mean, *m2, *dmin;
    uint8_t *has;
    vecd vals;  /* median */
    triple *tr; /* nunique */
    size_t ntr, captr;
} agg_acc;

typedef struct gb_acc {
    gb_spec s;
    gindex g;
    bool init;
    size_t cap; /* groups the arrays hold */
    agg_acc *a;
    uint64_t skipped;
    /* int64 keys of a small range in the first partial met: the groups of
     * key tuples within that range cached in an array (as dense_groups
     * does for the rows), the hash index only for a tuple met first */
    bool dtried;
    int32_t *dslot; /* dtotal slots: group, or -1 */
    size_t dtotal;
    uint64_t dlo[8], dspan[8];
} gb_acc;

static void acc_destroy(gb_acc *a)
{
    if (!a) return;
    for (size_t i = 0; a->a && i < a->s.naggs; i++) {
        agg_acc *x = &a->a[i];
        weft__blk_free(x->n), weft__blk_free(x->isum), weft__blk_free(x->imin);
        weft__blk_free(x->s), weft__blk_free(x->c), weft__blk_free(x->mean);
        weft__blk_free(x->m2), weft__blk_free(x->dmin), weft__blk_free(x->has);
        weft__blk_free(x->vals.g), weft__blk_free(x->vals.v), weft__blk_free(x->tr);
    }
    free(a->a);
    free(a->dslot);
    if (a->init) gindex_fini(&a->g);
    gb_spec_free(&a->s);
    free(a);
}

static int acc_create(const void *spec, size_t len, gb_acc **out)
{
    gb_acc *a = calloc(1, sizeof *a);
    if (!a) return WEFT_ENOMEM;
    unpack u = {spec, (const char *)spec + len, false};
    int rc = gb_spec_read(&u, &a->s);
    if (!rc) {
        a->a = calloc(a->s.naggs + 1, sizeof *a->a);
        if (!a->a) rc = WEFT_ENOMEM;
    }
    for (size_t i = 0; !rc && i < a->s.naggs; i++) {
        a->a[i].kind = a->s.kinds[i];
        /* the column type shows in the state (min/max, an int64 sum) or is numeric */
        a->a[i].type = WEFT_COL_DOUBLE;
    }
    if (rc) {
        acc_destroy(a);
        return rc;
    }
    *out = a;
    return 0;
}

static int grow(void **p, size_t elem, size_t old, size_t n)
{
    void *q = weft__blk_grow(*p, old * elem, n * elem);
    if (!q) return WEFT_ENOMEM;
    memset((char *)q + old * elem, 0, (n - old) * elem);
    *p = q;
    return 0;
}

/* Room for `groups` groups: only the arrays each aggregate's state uses. */
static int acc_reserve(gb_acc *a, size_t groups)
{
    if (groups <= a->cap) return 0;
    size_t nc = a->cap ? a->cap : 64, o = a->cap;
    while (nc < groups) nc *= 2;
    for (size_t i = 0; i < a->s.naggs; i++) {
        agg_acc *x = &a->a[i];
        int rc = 0;
        switch (x->kind) {
        case WEFT_AGG_COUNT:
            rc = grow((void **)&x->n, 8, o, nc);
            break;
        case WEFT_AGG_SUM:
            rc = grow((void **)&x->isum, 8, o, nc);
            __attribute__((fallthrough));
        case WEFT_AGG_MEAN:
            rc = rc || grow((void **)&x->s, 8, o, nc) || grow((void **)&x->c, 8, o, nc) ||
                 grow((void **)&x->n, 8, o, nc);
            break;
        case WEFT_AGG_MIN:
        case WEFT_AGG_MAX:
            rc = grow((void **)&x->imin, 8, o, nc) || grow((void **)&x->dmin, 8, o, nc) ||
                 grow((void **)&x->has, 1, o, nc);
            break;
        case WEFT_AGG_VAR:
            rc = grow((void **)&x->n, 8, o, nc) || grow((void **)&x->mean, 8, o, nc) ||
                 grow((void **)&x->m2, 8, o, nc);
            break;
        default: /* median, nunique: lists */
            break;
        }
        if (rc) return WEFT_ENOMEM;
    }
    a->cap = nc;
    return 0;
}

static int vecd_add(vecd *vv, size_t more)
{
    if (vv->n + more <= vv->cap) return 0;
    size_t nc = vv->cap ? vv->cap : 1024;
    while (nc < vv->n + more) nc *= 2;
    int64_t *ng = weft__blk_grow(vv->g, vv->n * sizeof *ng, nc * sizeof *ng);
    if (ng) vv->g = ng;
    double *nv = weft__blk_grow(vv->v, vv->n * sizeof *nv, nc * sizeof *nv);
    if (nv) vv->v = nv;
    if (!ng || !nv) return WEFT_ENOMEM;
    vv->cap = nc;
    return 0;
}

static int triples_add(agg_acc *x, size_t more)
{
    if (x->ntr + more <= x->captr) return 0;
    size_t nc = x->captr ? x->captr : 1024;
    while (nc < x->ntr + more) nc *= 2;
    triple *p = weft__blk_grow(x->tr, x->ntr * sizeof *p, nc * sizeof *p);
    if (!p) return WEFT_ENOMEM;
    x->tr = p;
    x->captr = nc;
    return 0;
}

/* The array of acc's groups by key tuple, ranged on the keys of the first
 * partial (`keys`): when they are int64, present, and the product of
 * their ranges at most 2^22. Nothing when they do not qualify. */
static void acc_dense_setup(gb_acc *a, const weft_table *keys)
{
    size_t nk = a->s.nkeys, total = 1;
    if (keys->nrows == 0) return; /* the next partial decides */
    a->dtried = true;
    if (nk == 0 || nk > 8) return;
    for (size_t k = 0; k < nk; k++) {
        const tcol *c = &keys->cols[k];
        if (c->type != WEFT_COL_INT64 || c->valid) return;
        const int64_t *v = c->data;
        int64_t mn = v[0], mx = v[0];
        for (size_t i = 1; i < keys->nrows; i++) {
            if (v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
        uint64_t range = (uint64_t)mx - (uint64_t)mn;
        if (range >= ((uint64_t)1 << 22)) return;
        a->dlo[k] = (uint64_t)mn;
        a->dspan[k] = range + 1;
        total *= (size_t)(range + 1);
        if (total > ((size_t)1 << 22)) return;
    }
    a->dslot = malloc(total * sizeof *a->dslot);
    if (!a->dslot) return; /* the hash index alone then */
    memset(a->dslot, 0xff, total * sizeof *a->dslot);
    a->dtotal = total;
}

/* The slot of row r's key tuple in acc's array, or SIZE_MAX when outside
 * its range (or it has none). */
static inline size_t acc_dense_at(const gb_acc *a, const weft_table *keys, size_t r)
{
    size_t at = 0;
    for (size_t k = 0; k < a->s.nkeys; k++) {
        const tcol *c = &keys->cols[k];
        if (c->type != WEFT_COL_INT64 || !weft__tcol_ok(c, r)) return SIZE_MAX;
        uint64_t d = (uint64_t)((const int64_t *)c->data)[r] - a->dlo[k];
        if (d >= a->dspan[k]) return SIZE_MAX;
        at = at * (size_t)a->dspan[k] + (size_t)d;
    }
    return at;
}

/* The groups of `keys` (a table of the key columns, in order) in `a`'s
 * index, added when new: map[0..keys->nrows). A group's number is the
 * hash index's (the order groups were first met) either way. */
static int acc_map(gb_acc *a, const weft_table *keys, int64_t **map_out)
{
    size_t nk = a->s.nkeys;
    size_t *kc = calloc(nk + 1, sizeof *kc);
    int64_t *map = malloc((keys->nrows + 1) * sizeof *map);
    int rc = kc && map ? 0 : WEFT_ENOMEM;
    for (size_t k = 0; k < nk && !rc; k++) kc[k] = k;
    if (!rc && !a->init) {
        rc = gindex_init(&a->g, keys, kc, nk, NULL);
        a->init = !rc;
        if (rc) gindex_fini(&a->g);
    }
    if (!rc && !a->dtried) acc_dense_setup(a, keys);
    for (size_t r = 0; !rc && r < keys->nrows; r++) {
        size_t at = a->dslot ? acc_dense_at(a, keys, r) : SIZE_MAX;
        if (at != SIZE_MAX && a->dslot[at] >= 0) {
            map[r] = a->dslot[at];
            continue;
        }
        map[r] = gindex_get(&a->g, keys, kc, r);
        if (map[r] < 0)
            rc = WEFT_ENOMEM;
        else if (at != SIZE_MAX && map[r] <= INT32_MAX)
            a->dslot[at] = (int32_t)map[r];
    }
    if (!rc) rc = acc_reserve(a, a->g.ngroups);
    free(kc);
    if (rc) {
        free(map);
        return rc;
    }
    *map_out = map;
    return 0;
}

/* Folds a partial (ts[0] the state table, then the lists) into `a`. */
static int acc_merge_tables(gb_acc *a, weft_table *const *ts, size_t nt)
{
    if (nt == 0) return WEFT_EINVAL;
    const weft_table *st = ts[0];
    if (st->ncols < a->s.nkeys) return WEFT_EINVAL;
    int64_t *map = NULL;
    int rc = acc_map(a, st, &map);
    size_t col = a->s.nkeys, li = 1;
    for (size_t i = 0; i < a->s.naggs && !rc; i++) {
        agg_acc *x = &a->a[i];
        const tcol *c0 = &st->cols[col];
        switch (x->kind) {
        case WEFT_AGG_COUNT:
            for (size_t r = 0; r < st->nrows; r++) x->n[map[r]] += ((const int64_t *)c0->data)[r];
            col += 1;
            break;
        case WEFT_AGG_SUM:
            if (c0->type == WEFT_COL_INT64) {
                x->type = WEFT_COL_INT64;
                for (size_t r = 0; r < st->nrows; r++)
                    x->isum[map[r]] = (int64_t)((uint64_t)x->isum[map[r]] +
                                                (uint64_t)((const int64_t *)c0->data)[r]);
                col += 1;
                break;
            }
            /* a double sum carries (s, c, n) as the mean does */
            __attribute__((fallthrough));
        case WEFT_AGG_MEAN: {
            const double *s = c0->data, *c = st->cols[col + 1].data;
            const int64_t *n = st->cols[col + 2].data;
            for (size_t r = 0; r < st->nrows; r++) {
                neu_add(&x->s[map[r]], &x->c[map[r]], s[r]);
                x->c[map[r]] += c[r];
                x->n[map[r]] += n[r];
            }
            col += 3;
            break;
        }
        case WEFT_AGG_MIN:
        case WEFT_AGG_MAX:
            x->type = c0->type;
            for (size_t r = 0; r < st->nrows; r++) {
                if (!weft__tcol_ok(c0, r)) continue;
                size_t g = (size_t)map[r];
                if (c0->type == WEFT_COL_DOUBLE) {
                    double v = ((const double *)c0->data)[r];
                    if (!x->has[g] || (x->kind == WEFT_AGG_MIN ? v < x->dmin[g] : v > x->dmin[g]))
                        x->dmin[g] = v;
                } else {
                    int64_t v = c0->type == WEFT_COL_INT64 ? ((const int64_t *)c0->data)[r]
                                                           : ((const bool *)c0->data)[r];
                    if (!x->has[g] || (x->kind == WEFT_AGG_MIN ? v < x->imin[g] : v > x->imin[g]))
                        x->imin[g] = v;
                }
                x->has[g] = 1;
            }
            col += 1;
            break;
        case WEFT_AGG_VAR: {
            const int64_t *n = c0->data;
            const double *mean = st->cols[col + 1].data, *m2 = st->cols[col + 2].data;
            for (size_t r = 0; r < st->nrows; r++) {
                size_t g = (size_t)map[r];
                if (!n[r]) continue;
                double na = (double)x->n[g], nb = (double)n[r], nn = na + nb;
                double d = mean[r] - x->mean[g];
                x->mean[g] += d * nb / nn;
                x->m2[g] += m2[r] + d * d * na * nb / nn;
                x->n[g] += n[r];
            }
            col += 3;
            break;
        }
        case WEFT_AGG_MEDIAN: {
            if (li >= nt) {
                rc = WEFT_EINVAL;
                break;
            }
            const weft_table *lt = ts[li++];
            const int64_t *g = lt->cols[0].data;
            const double *v = lt->cols[1].data;
            vecd *vv = &x->vals;
            if ((rc = vecd_add(vv, lt->nrows))) break;
            for (size_t r = 0; r < lt->nrows; r++) {
                vv->g[vv->n] = map[g[r]];
                vv->v[vv->n++] = v[r];
            }
            break;
        }
        default: { /* nunique */
            if (li >= nt) {
                rc = WEFT_EINVAL;
                break;
            }
            const weft_table *lt = ts[li++];
            const int64_t *g = lt->cols[0].data, *ka = lt->cols[1].data, *kb = lt->cols[2].data;
            if ((rc = triples_add(x, lt->nrows))) break;
            for (size_t r = 0; r < lt->nrows; r++) {
                triple tt = {map[g[r]], (uint64_t)ka[r], (uint64_t)kb[r]};
                x->tr[x->ntr++] = tt;
            }
        }
        }
    }
    if (!rc) a->skipped += st->skipped;
    free(map);
    return rc;
}

/* Folds accumulator `b` into `a` (the lanes' final merge), group by group
 * in b's order, with the operations acc_merge_tables applies to a partial. */
static int acc_fold(gb_acc *a, const gb_acc *b)
{
    if (!b->init) return 0;
    int64_t *map = NULL;
    int rc = acc_map(a, b->g.keys, &map);
    size_t ng = b->g.ngroups;
    for (size_t i = 0; i < a->s.naggs && !rc; i++) {
        agg_acc *x = &a->a[i];
        const agg_acc *y = &b->a[i];
        x->type = y->type;
        switch (x->kind) {
        case WEFT_AGG_COUNT:
            for (size_t g = 0; g < ng; g++) x->n[map[g]] += y->n[g];
            break;
        case WEFT_AGG_SUM:
            if (y->type == WEFT_COL_INT64) {
                for (size_t g = 0; g < ng; g++)
                    x->isum[map[g]] = (int64_t)((uint64_t)x->isum[map[g]] + (uint64_t)y->isum[g]);
                break;
            }
            __attribute__((fallthrough));
        case WEFT_AGG_MEAN:
            for (size_t g = 0; g < ng; g++) {
                neu_add(&x->s[map[g]], &x->c[map[g]], y->s[g]);
                x->c[map[g]] += y->c[g];
                x->n[map[g]] += y->n[g];
            }
            break;
        case WEFT_AGG_MIN:
        case WEFT_AGG_MAX:
            for (size_t g = 0; g < ng; g++) {
                if (!y->has[g]) continue;
                size_t m = (size_t)map[g];
                if (y->type == WEFT_COL_DOUBLE) {
                    double v = y->dmin[g];
                    if (!x->has[m] || (x->kind == WEFT_AGG_MIN ? v < x->dmin[m] : v > x->dmin[m]))
                        x->dmin[m] = v;
                } else {
                    int64_t v = y->imin[g];
                    if (!x->has[m] || (x->kind == WEFT_AGG_MIN ? v < x->imin[m] : v > x->imin[m]))
                        x->imin[m] = v;
                }
                x->has[m] = 1;
            }
            break;
        case WEFT_AGG_VAR:
            for (size_t g = 0; g < ng; g++) {
                size_t m = (size_t)map[g];
                if (!y->n[g]) continue;
                double na = (double)x->n[m], nb = (double)y->n[g], nn = na + nb;
                double d = y->mean[g] - x->mean[m];
                x->mean[m] += d * nb / nn;
                x->m2[m] += y->m2[g] + d * d * na * nb / nn;
                x->n[m] += y->n[g];
            }
            break;
        case WEFT_AGG_MEDIAN:
            if ((rc = vecd_add(&x->vals, y->vals.n))) break;
            for (size_t q = 0; q < y->vals.n; q++) {
                x->vals.g[x->vals.n] = map[y->vals.g[q]];
                x->vals.v[x->vals.n++] = y->vals.v[q];
            }
            break;
        default: /* nunique */
            if ((rc = triples_add(x, y->ntr))) break;
            for (size_t q = 0; q < y->ntr; q++) {
                triple tt = {map[y->tr[q].g], y->tr[q].a, y->tr[q].b};
                x->tr[x->ntr++] = tt;
            }
        }
    }
    if (!rc) a->skipped += b->skipped;
    free(map);
    return rc;
}

/* ---- the lanes ---- */

static int gb_acc_finish(gb_acc *a, weft_table **out);

typedef struct gb_part {
    weft_table **ts;
    size_t nt;
} gb_part;

struct gb_lanes {
    pthread_mutex_t mu;
    size_t np;
    gb_acc *acc[WEFT__GB_LANES];
    size_t next[WEFT__GB_LANES]; /* the next partition each lane folds */
    bool busy[WEFT__GB_LANES];   /* a thread is folding into the lane */
    gb_part *pending;            /* np: partials in, not yet folded (ts NULL: none) */
    tb_pool *pool;               /* the read tasks' parsed tables (GROUPBY_SHARED) */
    tb_pool *spool;              /* folded state tables, filled again by later partials */
    gb_scratch *scratch;         /* idle scratch of the partials (GROUPBY_SHARED) */
    int err;
};

int weft__gb_lanes_create(const void *spec, size_t len, size_t nparts, size_t pool_max,
                          gb_lanes **out)
{
    *out = NULL;
    gb_lanes *L = calloc(1, sizeof *L);
    if (!L) return WEFT_ENOMEM;
    L->np = nparts;
    L->pending = calloc(nparts ? nparts : 1, sizeof *L->pending);
    int rc = L->pending ? 0 : WEFT_ENOMEM;
    for (size_t l = 0; l < WEFT__GB_LANES && !rc; l++) {
        rc = acc_create(spec, len, &L->acc[l]);
        L->next[l] = l;
    }
    if (!rc) rc = weft__pool_create(pool_max, &L->pool);
    /* a state table is taken by a partial being made and given back once
     * folded: one per lane folding and one being made is enough to keep */
    if (!rc) rc = weft__pool_create(WEFT__GB_LANES + 1, &L->spool);
    if (!rc && pthread_mutex_init(&L->mu, NULL)) rc = WEFT_ENOMEM;
    if (rc) {
        for (size_t l = 0; l < WEFT__GB_LANES; l++) acc_destroy(L->acc[l]);
        weft__pool_destroy(L->pool);
        weft__pool_destroy(L->spool);
        free(L->pending);
        free(L);
        return rc;
    }
    *out = L;
    return 0;
}

void weft__gb_lanes_destroy(gb_lanes *L)
{
    if (!L) return;
    for (size_t p = 0; p < L->np; p++) tables_free(L->pending[p].ts, L->pending[p].nt);
    free(L->pending);
    for (size_t l = 0; l < WEFT__GB_LANES; l++) acc_destroy(L->acc[l]);
    weft__pool_destroy(L->pool);
    weft__pool_destroy(L->spool);
    scratch_free(L->scratch);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

/* A partial's scratch (an idle one, or a new one; NULL on ENOMEM: the
 * partial then allocates its own). */
static gb_scratch *scratch_take(gb_lanes *L)
{
    pthread_mutex_lock(&L->mu);
    gb_scratch *s = L->scratch;
    if (s) L->scratch = s->next;
    pthread_mutex_unlock(&L->mu);
    return s ? s : calloc(1, sizeof *s);
}

static void scratch_give(gb_lanes *L, gb_scratch *s)
{
    if (!s) return;
    pthread_mutex_lock(&L->mu);
    s->next = L->scratch;
    L->scratch = s;
    pthread_mutex_unlock(&L->mu);
}

/* Takes partition p's partial ts[0..nt) and folds every partial of its
 * lane that is now next in line, unless another thread is folding into
 * that lane (it folds this one too before it lets go). A folded partial's
 * state table goes to the pool of state tables. */
static int lanes_put(gb_lanes *L, size_t p, weft_table **ts, size_t nt)
{
    pthread_mutex_lock(&L->mu);
    if (p >= L->np || L->pending[p].ts || p < L->next[p % WEFT__GB_LANES]) {
        pthread_mutex_unlock(&L->mu);
        tables_free(ts, nt);
        return WEFT_EINVAL;
    }
    L->pending[p].ts = ts;
    L->pending[p].nt = nt;
    size_t lane = p % WEFT__GB_LANES;
    if (!L->busy[lane]) {
        L->busy[lane] = true;
        while (L->next[lane] < L->np && L->pending[L->next[lane]].ts) {
            gb_part x = L->pending[L->next[lane]];
            L->pending[L->next[lane]].ts = NULL;
            L->next[lane] += WEFT__GB_LANES;
            int e = L->err;
            pthread_mutex_unlock(&L->mu);
            if (!e) e = acc_merge_tables(L->acc[lane], x.ts, x.nt);
            if (x.nt) {
                weft__pool_give(L->spool, x.ts[0]);
                x.ts[0] = NULL;
            }
            tables_free(x.ts, x.nt);
            pthread_mutex_lock(&L->mu);
            if (e && !L->err) L->err = e;
        }
        L->busy[lane] = false;
    }
    int rc = L->err;
    pthread_mutex_unlock(&L->mu);
    return rc;
}

int weft__gb_lanes_put_serialized(gb_lanes *L, size_t p, const void *partial, size_t len)
{
    unpack u = {partial, (const char *)partial + len, false};
    uint64_t nt = unpack_u64(&u);
    if (u.bad || nt == 0 || nt > len) return WEFT_EINVAL;
    weft_table **ts = calloc(nt, sizeof *ts);
    if (!ts) return WEFT_ENOMEM;
    int rc = 0;
    for (uint64_t i = 0; i < nt && !rc; i++) {
        uint64_t l = unpack_u64(&u);
        if (u.bad || (uint64_t)(u.e - u.p) < l)
            rc = WEFT_EINVAL;
        else
            rc = weft_table_deserialize(u.p, l, &ts[i]);
        u.p += l;
    }
    if (rc) {
        tables_free(ts, nt);
        return rc;
    }
    return lanes_put(L, p, ts, (size_t)nt);
}

int weft__gb_lanes_finish(gb_lanes *L, weft_table **out)
{
    *out = NULL;
    if (L->err) return L->err;
    for (size_t l = 0; l < WEFT__GB_LANES; l++)
        if (L->next[l] < L->np) return WEFT_EINVAL; /* a partial never came */
    int rc = 0;
    for (size_t l = 1; l < WEFT__GB_LANES && !rc; l++) rc = acc_fold(L->acc[0], L->acc[l]);
    return rc ? rc : gb_acc_finish(L->acc[0], out);
}

/* ---- exact selection ---- */

double weft__select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    uint64_t rs = 0x2545F4914F6CDD1Dull ^ n;
    while (lo < hi) {
        /* a pseudo-random pivot: no input makes this quadratic on purpose */
        rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
        double p = v[lo + (size_t)(rs % (hi - lo + 1))];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

static double min_of(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < m) m = v[i];
    return m;
}

/* The exact median of v[0..n) (reordered), as numpy.median. */
static double median_of(double *v, size_t n)
{
    if (n == 0) return NAN;
    size_t h = (n - 1) / 2;
    double a = weft__select_kth(v, n, h);
    if (n % 2) return a;
    double b = min_of(v + h + 1, n - h - 1);
    return (a + b) / 2;
}

static int group_cmp(const void *x, const void *y, void *arg)
{
    const gindex *g = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    for (size_t k = 0; k < g->nk; k++) {
        int c = cell_cmp(&g->keys->cols[k], i, &g->keys->cols[k], j);
        if (c) return c;
    }
    return 0;
}

static int gb_acc_finish(gb_acc *a, weft_table **out)
{
    *out = NULL;
    if (!a->init) return WEFT_EAGAIN;
    size_t ng = a->g.ngroups;
    size_t *ord = malloc((ng + 1) * sizeof *ord);
    if (!ord) return WEFT_ENOMEM;
    for (size_t i = 0; i < ng; i++) ord[i] = i;
    qsort_r(ord, ng, sizeof *ord, group_cmp, &a->g);
    weft_table *o = NULL;
    int rc = weft__table_take(a->g.keys, ord, ng, &o);
    int64_t *iv = malloc((ng + 1) * sizeof *iv);
    double *dv = malloc((ng + 1) * sizeof *dv);
    uint8_t *ok = malloc(ng + 1);
    if (!rc && (!iv || !dv || !ok)) rc = WEFT_ENOMEM;
    for (size_t i = 0; i < a->s.naggs && !rc; i++) {
        agg_acc *x = &a->a[i];
        const char *nm = a->s.names[i];
        if (weft__table_col(o, nm)) {
            rc = WEFT_EINVAL;
            break;
        }
        for (size_t r = 0; r < ng; r++) ok[r] = 1;
        switch (x->kind) {
        case WEFT_AGG_COUNT:
            for (size_t r = 0; r < ng; r++) iv[r] = x->n[ord[r]];
            rc = weft_table_add_int64(o, nm, iv, NULL, ng);
            break;
        case WEFT_AGG_SUM:
            if (x->type == WEFT_COL_INT64) {
                for (size_t r = 0; r < ng; r++) iv[r] = x->isum[ord[r]];
                rc = weft_table_add_int64(o, nm, iv, NULL, ng);
            } else {
                for (size_t r = 0; r < ng; r++) dv[r] = x->s[ord[r]] + x->c[ord[r]];
                rc = weft_table_add_double(o, nm, dv, NULL, ng);
            }
            break;
        case WEFT_AGG_MEAN:
            for (size_t r = 0; r < ng; r++) {
                size_t g = ord[r];
                dv[r] = x->n[g] ? (x->s[g] + x->c[g]) / (double)x->n[g] : NAN;
                ok[r] = x->n[g] != 0;
            }
            rc = weft_table_add_double(o, nm, dv, ok, ng);
            break;
        case WEFT_AGG_MIN:
        case WEFT_AGG_MAX:
            for (size_t r = 0; r < ng; r++) {
                ok[r] = x->has[ord[r]];
                iv[r] = x->imin[ord[r]];
                dv[r] = ok[r] ? x->dmin[ord[r]] : NAN;
            }
            if (x->type == WEFT_COL_DOUBLE)
                rc = weft_table_add_double(o, nm, dv, ok, ng);
            else if (x->type == WEFT_COL_INT64)
                rc = weft_table_add_int64(o, nm, iv, ok, ng);
            else {
                bool *bv = malloc(ng + 1);
                if (!bv) rc = WEFT_ENOMEM;
                for (size_t r = 0; !rc && r < ng; r++) bv[r] = iv[r] != 0;
                if (!rc) rc = weft_table_add_bool(o, nm, bv, ok, ng);
                free(bv);
            }
            break;
        case WEFT_AGG_VAR:
            for (size_t r = 0; r < ng; r++) {
                size_t g = ord[r];
                ok[r] = x->n[g] > 1;
                dv[r] = ok[r] ? x->m2[g] / (double)(x->n[g] - 1) : NAN;
            }
            rc = weft_table_add_double(o, nm, dv, ok, ng);
            break;
        case WEFT_AGG_MEDIAN: {
            /* counting sort of the values by group, then select per group */
            size_t *start = calloc(ng + 2, sizeof *start);
            double *sorted = malloc((x->vals.n + 1) * sizeof *sorted);
            if (!start || !sorted) rc = WEFT_ENOMEM;
            for (size_t q = 0; !rc && q < x->vals.n; q++) start[x->vals.g[q] + 1]++;
            for (size_t g = 0; !rc && g < ng; g++) start[g + 1] += start[g];
            for (size_t q = 0; !rc && q < x->vals.n; q++)
                sorted[start[x->vals.g[q]]++] = x->vals.v[q];
            /* start[g] is now the end of group g; its beginning is start[g-1] */
            for (size_t r = 0; !rc && r < ng; r++) {
                size_t g = ord[r];
                size_t b = g ? start[g - 1] : 0, e = start[g];
                dv[r] = median_of(sorted + b, e - b);
                ok[r] = e > b;
            }
            if (!rc) rc = weft_table_add_double(o, nm, dv, ok, ng);
            free(start), free(sorted);
            break;
        }
        default: {
            qsort(x->tr, x->ntr, sizeof *x->tr, triple_cmp);
            int64_t *cnt = calloc(ng + 1, sizeof *cnt);
            if (!cnt) rc = WEFT_ENOMEM;
            for (size_t q = 0; !rc && q < x->ntr; q++)
                if (q == 0 || triple_cmp(&x->tr[q - 1], &x->tr[q])) cnt[x->tr[q].g]++;
            for (size_t r = 0; !rc && r < ng; r++) iv[r] = cnt[ord[r]];
            if (!rc) rc = weft_table_add_int64(o, nm, iv, NULL, ng);
            free(cnt);
        }
        }
    }
    if (o) o->skipped = a->skipped;
    free(ord), free(iv), free(dv), free(ok);
    if (rc) {
        weft_table_destroy(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---- describe ---- */

/* The partial of partition `t` (destroyed here). */
static int describe_of(weft_ctx *ctx, weft_table *t)
{
    int rc = 0;
    size_t nnum = 0, made = 0;
    for (size_t k = 0; k < t->ncols; k++) nnum += is_num(t->cols[k].type);
    double *v = malloc((t->nrows + 1) * sizeof *v);
    weft_table **ones = calloc(nnum + 1, sizeof *ones);
    if (!v || !ones) rc = WEFT_ENOMEM;
    for (size_t k = 0; k < t->ncols && !rc; k++) {
        const tcol *c = &t->cols[k];
        if (!is_num(c->type)) continue;
        size_t n = 0;
        for (size_t i = 0; i < t->nrows; i++)
            if (weft__tcol_ok(c, i)) v[n++] = weft__tcol_num(c, i);
        rc = weft_table_create(&ones[made]);
        if (!rc) rc = weft_table_add_double(ones[made++], c->name, v, NULL, n);
    }
    if (!rc) rc = bundle_output(ctx, ones, made);
    for (size_t i = 0; ones && i < made; i++) weft_table_destroy(ones[i]);
    free(ones);
    free(v);
    weft_table_destroy(t);
    return rc;
}

int weft__tb_describe_partial(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    int rc = arg_view(ctx, in, len, 0, &t);
    if (rc) return rc;
    return describe_of(ctx, t);
}

struct ds_acc {
    size_t ncols;
    char **names;
    vecd *vals;
};

int weft__ds_acc_create(ds_acc **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : WEFT_ENOMEM;
}

void weft__ds_acc_destroy(ds_acc *a)
{
    if (!a) return;
    for (size_t k = 0; k < a->ncols; k++) free(a->names[k]), free(a->vals[k].v);
    free(a->names);
    free(a->vals);
    free(a);
}

int weft__ds_acc_merge(ds_acc *a, const void *partial, size_t len)
{
    unpack u = {partial, (const char *)partial + len, false};
    uint64_t nt = unpack_u64(&u);
    if (u.bad || nt > len) return WEFT_EINVAL;
    if (!a->names) {
        a->names = calloc(nt + 1, sizeof *a->names);
        a->vals = calloc(nt + 1, sizeof *a->vals);
        if (!a->names || !a->vals) return WEFT_ENOMEM;
        a->ncols = nt;
    } else if (nt != a->ncols) {
        return WEFT_EINVAL;
    }
    int rc = 0;
    for (uint64_t k = 0; k < nt && !rc; k++) {
        uint64_t l = unpack_u64(&u);
        weft_table *one = NULL;
        if (u.bad || (uint64_t)(u.e - u.p) < l) return WEFT_EINVAL;
        rc = weft_table_deserialize(u.p, l, &one);
        u.p += l;
        if (rc) break;
        if (one->ncols != 1) rc = WEFT_EINVAL;
        if (!rc && !a->names[k] && !(a->names[k] = strdup(one->cols[0].name))) rc = WEFT_ENOMEM;
        vecd *vv = &a->vals[k];
        if (!rc && vv->n + one->nrows > vv->cap) {
            size_t nc = vv->cap ? vv->cap : 1024;
            while (nc < vv->n + one->nrows) nc *= 2;
            double *p = realloc(vv->v, nc * sizeof *p);
            if (!p)
                rc = WEFT_ENOMEM;
            else
                vv->v = p, vv->cap = nc;
        }
        if (!rc && one->nrows)
            memcpy(vv->v + vv->n, one->cols[0].data, one->nrows * sizeof(double));
        if (!rc) vv->n += one->nrows;
        weft_table_destroy(one);
    }
    return rc;
}

/* numpy's linear quantile of sorted-by-selection data v[0..n) */
static double quantile_of(double *v, size_t n, double q)
{
    double idx = q * (double)(n - 1);
    size_t lo = (size_t)floor(idx);
    double t = idx - (double)lo;
    double a = weft__select_kth(v, n, lo);
    if (lo + 1 >= n) return a;
    double b = min_of(v + lo + 1, n - lo - 1);
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

int weft__ds_acc_finish(ds_acc *a, weft_table **out)
{
    static const char *const stat[] = {"count", "mean", "std", "min", "25%", "50%", "75%", "max"};
    weft_table *o;
    int rc = weft_table_create(&o);
    if (rc) return rc;
    rc = weft_table_add_text(o, "stat", stat, 8);
    for (size_t k = 0; k < a->ncols && !rc; k++) {
        double *v = a->vals[k].v;
        size_t n = a->vals[k].n;
        double r[8];
        uint8_t ok[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        double s = 0, c = 0, mn = n ? v[0] : NAN, mx = mn;
        for (size_t i = 0; i < n; i++) {
            neu_add(&s, &c, v[i]);
            if (v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
        double mean = n ? (s + c) / (double)n : NAN;
        double ss = 0, sc = 0;
        for (size_t i = 0; i < n; i++) neu_add(&ss, &sc, (v[i] - mean) * (v[i] - mean));
        r[0] = (double)n;
        r[1] = mean;
        r[2] = n > 1 ? sqrt((ss + sc) / (double)(n - 1)) : NAN;
        r[3] = mn;
        r[4] = n ? quantile_of(v, n, 0.25) : NAN;
        r[5] = n ? quantile_of(v, n, 0.5) : NAN;
        r[6] = n ? quantile_of(v, n, 0.75) : NAN;
        r[7] = mx;
        for (int q = 1; q < 8; q++) ok[q] = !isnan(r[q]);
        rc = weft_table_add_double(o, a->names[k], r, ok, 8);
    }
    if (rc) {
        weft_table_destroy(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---- top n ---- */

typedef struct keyed {
    double v;
    size_t i;
} keyed;

/* true when x comes before y in the result */
static inline bool before(const keyed *x, const keyed *y, bool largest)
{
    if (x->v != y->v) return largest ? x->v > y->v : x->v < y->v;
    return x->i < y->i;
}

static int keyed_cmp(const void *a, const void *b, void *arg)
{
    bool largest = *(const bool *)arg;
    const keyed *x = a, *y = b;
    if (before(x, y, largest)) return -1;
    if (before(y, x, largest)) return 1;
    return 0;
}

/* The rows of the n best values of column c, in result order. */
static int top_rows(const weft_table *t, const tcol *c, size_t n, bool largest, weft_table **out)
{
    keyed *h = malloc((n + 1) * sizeof *h);
    if (!h) return WEFT_ENOMEM;
    size_t k = 0;
    /* a heap whose root is the worst kept row */
    for (size_t i = 0; i < t->nrows && n; i++) {
        if (!weft__tcol_ok(c, i)) continue;
        keyed e = {weft__tcol_num(c, i), i};
        if (e.v != e.v) continue;
        if (k < n) {
            size_t j = k++;
            while (j && before(&h[(j - 1) / 2], &e, largest))
                h[j] = h[(j - 1) / 2], j = (j - 1) / 2;
            h[j] = e;
        } else if (before(&e, &h[0], largest)) {
            size_t j = 0;
            for (;;) {
                size_t l = 2 * j + 1, r = l + 1, w = j;
                const keyed *wv = &e;
                if (l < k && before(wv, &h[l], largest)) w = l, wv = &h[l];
                if (r < k && before(wv, &h[r], largest)) w = r, wv = &h[r];
                if (w == j) break;
                h[j] = h[w];
                j = w;
            }
            h[j] = e;
        }
    }
    qsort_r(h, k, sizeof *h, keyed_cmp, &largest);
    size_t *idx = malloc((k + 1) * sizeof *idx);
    int rc = idx ? 0 : WEFT_ENOMEM;
    for (size_t i = 0; i < k && !rc; i++) idx[i] = h[i].i;
    if (!rc) rc = weft__table_take(t, idx, k, out);
    free(idx);
    free(h);
    return rc;
}

/* The best rows of partition `t` (destroyed here) for the spec in `u`. */
static int top_of(weft_ctx *ctx, weft_table *t, unpack *u)
{
    weft_table *o = NULL;
    int rc = u->bad ? WEFT_EINVAL : 0;
    char *name = rc ? NULL : unpack_str(u);
    uint64_t n = unpack_u64(u), largest = unpack_u64(u);
    tcol *c = name ? weft__table_col(t, name) : NULL;
    if (!c || !is_num(c->type))
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "nlargest/nsmallest: no numeric column '%s'",
                           name ? name : "?");
    if (!rc) rc = top_rows(t, c, (size_t)n, largest != 0, &o);
    free(name);
    weft_table_destroy(t);
    return finish(ctx, o, rc);
}

int weft__tb_top_partial(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    unpack u = {NULL, NULL, true};
    int rc = arg_view(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) u.bad = true;
    return top_of(ctx, t, &u);
}

/* ---- partials straight from the CSV ---- */

/* csv_partial(range, bound, op + the partial's literal; one buffer, see
 * table_internal.h): the read task's parse and a partial in one task, so
 * the partition is never serialized (and copied, and its fresh pages
 * faulted in) between the two. groupby parses only its key and aggregated
 * columns (the others are checked, not stored), describe no text column,
 * nlargest every column; READ is the plain read. */
int weft__tb_csv_partial(weft_ctx *ctx, const void *in, size_t len)
{
    unpack u = {in, (const char *)in + len, false};
    uint64_t rl = unpack_u64(&u);
    const char *range = u.p;
    if (!u.bad && (uint64_t)(u.e - u.p) < rl) u.bad = true;
    if (!u.bad) u.p += rl;
    uint64_t bl = unpack_u64(&u);
    const char *bound = u.p;
    if (!u.bad && (uint64_t)(u.e - u.p) < bl) u.bad = true;
    if (!u.bad) u.p += bl;
    uint64_t op = unpack_u64(&u);
    if (u.bad) return weft_ctx_fail(ctx, WEFT_EINVAL, "csv partial: bad input");
    weft_table *t = NULL;
    int rc = 0;
    if (op == WEFT__CSV_OP_READ) {
        rc = weft__csv_parse(ctx, range, rl, bound, bl, NULL, 0, false, NULL, NULL, &t);
        if (!rc) rc = weft_table_output(ctx, t);
        weft_table_destroy(t);
        return rc;
    }
    if (op == WEFT__CSV_OP_READ_SHARED) {
        /* threads, serial: no serialized partition, the task copies its
         * rows into the result itself (gather.c) */
        tb_gather *g = (tb_gather *)(uintptr_t)unpack_u64(&u);
        if (u.bad || !g) return weft_ctx_fail(ctx, WEFT_EINVAL, "csv partial: bad input");
        rc = weft__csv_parse(ctx, range, rl, bound, bl, NULL, 0, false, weft__gather_take(g),
                             weft__gather_pool(g), &t);
        if (rc) return rc;
        size_t p = (size_t)weft_ctx_index(ctx);
        rc = weft__gather_put(g, p, t);
        return rc ? weft_ctx_fail(ctx, rc, "read: partition %zu could not be placed in the result",
                                  p)
                  : 0;
    }
    gb_lanes *L = NULL;
    if (op == WEFT__CSV_OP_GROUPBY_SHARED) {
        L = (gb_lanes *)(uintptr_t)unpack_u64(&u);
        if (u.bad || !L) return weft_ctx_fail(ctx, WEFT_EINVAL, "csv partial: bad input");
        op = WEFT__CSV_OP_GROUPBY;
    }
    if (op == WEFT__CSV_OP_GROUPBY) {
        unpack s = u;
        gb_spec spec;
        memset(&spec, 0, sizeof spec);
        if (s.bad || gb_spec_read(&s, &spec)) {
            gb_spec_free(&spec);
            return weft_ctx_fail(ctx, WEFT_EINVAL, "groupby: bad spec");
        }
        const char **want = calloc(spec.nkeys + spec.naggs + 1, sizeof *want);
        if (!want) rc = weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
        size_t nw = 0;
        for (size_t k = 0; want && k < spec.nkeys; k++) want[nw++] = spec.keys[k];
        for (size_t a = 0; want && a < spec.naggs; a++) want[nw++] = spec.cols[a];
        if (!rc)
            rc = weft__csv_parse(ctx, range, rl, bound, bl, want, nw, false,
                                 L ? weft__pool_take(L->pool) : NULL, L ? L->pool : NULL, &t);
        free(want);
        gb_spec_free(&spec);
        if (rc) return rc;
        if (!L) return gb_partial_of(ctx, t, &u);
        /* threads, serial: the partial is folded into its lane here, in a
         * state table and scratch of earlier ranges; the parsed columns go
         * back to the pool for the next range */
        weft_table **all;
        size_t n;
        gb_scratch *sc = scratch_take(L);
        rc = gb_partial_tables(ctx, t, &u, sc, weft__pool_take(L->spool), &all, &n);
        scratch_give(L, sc);
        weft__pool_give(L->pool, t);
        if (rc) return rc;
        size_t p = (size_t)weft_ctx_index(ctx);
        rc = lanes_put(L, p, all, n);
        return rc ? weft_ctx_fail(ctx, rc, "groupby: folding partition %zu's partial failed", p)
                  : 0;
    }
    if (op == WEFT__CSV_OP_DESCRIBE) {
        rc = weft__csv_parse(ctx, range, rl, bound, bl, NULL, 0, true, NULL, NULL, &t);
        return rc ? rc : describe_of(ctx, t);
    }
    if (op == WEFT__CSV_OP_TOP) {
        rc = weft__csv_parse(ctx, range, rl, bound, bl, NULL, 0, false, NULL, NULL, &t);
        return rc ? rc : top_of(ctx, t, &u);
    }
    return weft_ctx_fail(ctx, WEFT_EINVAL, "csv partial: unknown op %llu", (unsigned long long)op);
}

int weft__top_finish(weft_table *all, const char *column, size_t n, bool largest, weft_table **out)
{
    tcol *c = weft__table_col(all, column);
    if (!c || !is_num(c->type)) return WEFT_EINVAL;
    return top_rows(all, c, n, largest, out);
}

/* ---- sort ---- */

typedef struct sort_ctx {
    const tcol *c;
    bool desc;
} sort_ctx;

static int row_cmp(const void *a, const void *b, void *arg)
{
    const sort_ctx *s = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int r = cell_cmp(s->c, i, s->c, j);
    if (s->desc) r = -r;
    return r ? r : (i > j) - (i < j);
}

static bool sort_missing(const tcol *c, size_t i)
{
    return !weft__tcol_ok(c, i) || (c->type == WEFT_COL_DOUBLE &&
                                    ((const double *)c->data)[i] != ((const double *)c->data)[i]);
}

int weft__tb_sort_partial(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t, *o = NULL;
    unpack u = {NULL, NULL, true};
    int rc = arg_view(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) rc = WEFT_EINVAL;
    char *name = rc ? NULL : unpack_str(&u);
    bool desc = unpack_u64(&u) != 0;
    tcol *c = name ? weft__table_col(t, name) : NULL;
    if (!c) rc = weft_ctx_fail(ctx, WEFT_EINVAL, "sort: no column '%s'", name ? name : "?");
    size_t *idx = rc ? NULL : malloc((t->nrows + 1) * sizeof *idx);
    if (!rc && !idx) rc = WEFT_ENOMEM;
    if (!rc) {
        size_t k = 0, m = t->nrows;
        for (size_t i = 0; i < t->nrows; i++)
            if (!sort_missing(c, i)) idx[k++] = i;
        size_t nk = k;
        for (size_t i = 0; i < t->nrows; i++)
            if (sort_missing(c, i)) idx[k++] = i;
        (void)m;
        sort_ctx sc = {c, desc};
        qsort_r(idx, nk, sizeof *idx, row_cmp, &sc);
        rc = weft__table_take(t, idx, t->nrows, &o);
    }
    free(idx);
    free(name);
    weft_table_destroy(t);
    return finish(ctx, o, rc);
}

int weft__sort_merge(weft_table **parts, size_t np, const char *column, bool desc, weft_table **out)
{
    *out = NULL;
    if (np == 0) return weft_table_create(out);
    size_t *at = calloc(np, sizeof *at), *stop = calloc(np, sizeof *stop);
    const tcol **cs = calloc(np, sizeof *cs);
    int rc = at && stop && cs ? 0 : WEFT_ENOMEM;
    size_t total = 0;
    for (size_t p = 0; p < np && !rc; p++) {
        cs[p] = weft__table_col(parts[p], column);
        if (!cs[p])
            rc = WEFT_EINVAL;
        else {
            size_t k = 0;
            while (k < parts[p]->nrows && !sort_missing(cs[p], k)) k++;
            stop[p] = k;
            total += parts[p]->nrows;
        }
    }
    weft_table *o = NULL;
    if (!rc) rc = weft__table_like(parts[0], &o);
    for (size_t j = 0; j < (o ? o->ncols : 0) && !rc; j++)
        rc = weft__tcol_reserve(&o->cols[j], total ? total : 1);
    /* k-way merge of the sorted parts; ties go to the earlier part (stable) */
    for (;;) {
        if (rc) break;
        size_t best = SIZE_MAX;
        for (size_t p = 0; p < np; p++) {
            if (at[p] >= stop[p]) continue;
            if (best == SIZE_MAX) {
                best = p;
                continue;
            }
            int r = cell_cmp(cs[p], at[p], cs[best], at[best]);
            if (desc ? r > 0 : r < 0) best = p;
        }
        if (best == SIZE_MAX) break;
        for (size_t j = 0; j < o->ncols && !rc; j++)
            rc = weft__tcol_push_from(&o->cols[j], &parts[best]->cols[j], at[best]);
        at[best]++;
    }
    for (size_t p = 0; p < np && !rc; p++)
        for (size_t i = stop[p]; i < parts[p]->nrows && !rc; i++)
            for (size_t j = 0; j < o->ncols && !rc; j++)
                rc = weft__tcol_push_from(&o->cols[j], &parts[p]->cols[j], i);
    if (!rc) rc = weft__table_fix_rows(o);
    free(at), free(stop), free(cs);
    if (rc) {
        weft_table_destroy(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---- join with a small table ---- */

static int add_suffixed(weft_table *o, const tcol *src, const char *suffix, bool clash, tcol **made)
{
    char nm[1024];
    snprintf(nm, sizeof nm, "%s%s", src->name, clash ? suffix : "");
    if (weft__table_col(o, nm)) return WEFT_EINVAL;
    *made = weft__table_add_col(o, nm, src->type);
    return *made ? 0 : WEFT_ENOMEM;
}

int weft__tb_join(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t, *sm = NULL, *o = NULL;
    unpack u = {NULL, NULL, true};
    int rc = arg_table(ctx, in, len, 0, &t);
    if (rc) return rc;
    rc = arg_table(ctx, in, len, 1, &sm);
    if (!rc && arg_unpack(in, len, 2, &u)) rc = WEFT_EINVAL;
    char *key = rc ? NULL : unpack_str(&u);
    bool left = unpack_u64(&u) == WEFT_JOIN_LEFT;
    size_t lk = 0, rk = 0;
    if (!rc && (!key || weft_table_col_index(t, key, &lk) || weft_table_col_index(sm, key, &rk) ||
                t->cols[lk].type != sm->cols[rk].type))
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "join: key '%s' missing or of unlike types",
                           key ? key : "?");
    gindex g;
    memset(&g, 0, sizeof g);
    int64_t *first = NULL, *next = NULL, *last = NULL;
    size_t *li = NULL;
    int64_t *ri = NULL;
    size_t cap = 0, n = 0;
    if (!rc) rc = gindex_init(&g, sm, &rk, 1, NULL);
    if (!rc) {
        first = malloc((sm->nrows + 1) * sizeof *first);
        last = malloc((sm->nrows + 1) * sizeof *last);
        next = malloc((sm->nrows + 1) * sizeof *next);
        if (!first || !last || !next) rc = WEFT_ENOMEM;
    }
    for (size_t r = 0; !rc && r < sm->nrows; r++) {
        next[r] = -1;
        if (!weft__tcol_ok(&sm->cols[rk], r)) continue;
        int64_t gr = gindex_get(&g, sm, &rk, r);
        if (gr < 0) {
            rc = WEFT_ENOMEM;
            break;
        }
        /* chains in small-table order; groups are numbered as first met */
        if ((size_t)gr >= n) {
            first[gr] = (int64_t)r;
            last[gr] = (int64_t)r;
            n = (size_t)gr + 1;
        } else {
            next[last[gr]] = (int64_t)r;
            last[gr] = (int64_t)r;
        }
    }
    n = 0;
    /* probe: look up each row's key without adding it */
    for (size_t i = 0; !rc && i < t->nrows; i++) {
        int64_t r0 = -1;
        if (weft__tcol_ok(&t->cols[lk], i)) {
            uint64_t h = 0x9e3779b97f4a7c15ull;
            h = mix64(h ^ cell_hash(&t->cols[lk], i)) + 0;
            size_t mask = g.cap - 1, s = (size_t)h & mask;
            while (g.slots[s]) {
                size_t gr = g.slots[s] - 1;
                if (g.hash[gr] == h && cell_eq(&g.keys->cols[0], gr, &t->cols[lk], i)) {
                    r0 = first[gr];
                    break;
                }
                s = (s + 1) & mask;
            }
        }
        if (r0 < 0 && !left) continue;
        do {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                size_t *a = realloc(li, nc * sizeof *a);
                if (a) li = a;
                int64_t *b = realloc(ri, nc * sizeof *b);
                if (b) ri = b;
                if (!a || !b) {
                    rc = WEFT_ENOMEM;
                    break;
                }
                cap = nc;
            }
            li[n] = i;
            ri[n++] = r0;
            r0 = r0 >= 0 ? next[r0] : -1;
        } while (r0 >= 0);
    }
    if (!rc) rc = weft_table_create(&o);
    for (size_t j = 0; j < t->ncols && !rc; j++) {
        const tcol *c = &t->cols[j];
        bool clash = j != lk && weft__table_col(sm, c->name) != NULL;
        tcol *d;
        rc = add_suffixed(o, c, "_x", clash, &d);
        for (size_t q = 0; q < n && !rc; q++) rc = weft__tcol_push_from(d, c, li[q]);
    }
    for (size_t j = 0; j < sm->ncols && !rc; j++) {
        if (j == rk) continue;
        const tcol *c = &sm->cols[j];
        bool clash = weft__table_col(t, c->name) != NULL;
        tcol *d;
        rc = add_suffixed(o, c, "_y", clash, &d);
        for (size_t q = 0; q < n && !rc; q++) {
            if (ri[q] >= 0)
                rc = weft__tcol_push_from(d, c, (size_t)ri[q]);
            else if (c->type == WEFT_COL_TEXT)
                rc = weft__tcol_push_text(d, "", 0, false);
            else if (c->type == WEFT_COL_DOUBLE)
                rc = weft__tcol_push_double(d, 0, false);
            else if (c->type == WEFT_COL_INT64)
                rc = weft__tcol_push_int64(d, 0, false);
            else
                rc = weft__tcol_push_bool(d, false, false);
        }
    }
    if (!rc) {
        rc = weft__table_fix_rows(o);
        o->nrows = n;
        o->skipped = t->skipped;
    }
    if (rc == WEFT_EINVAL && o)
        weft_ctx_fail(ctx, rc, "join: a column name clashes after suffixes");
    if (g.slots) gindex_fini(&g);
    free(first), free(last), free(next), free(li), free(ri), free(key);
    weft_table_destroy(sm);
    weft_table_destroy(t);
    return finish(ctx, o, rc);
}

/* ---- CSV of a partition: bytes, or a file of its own ---- */

int weft__tb_csv_part(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    unpack u = {NULL, NULL, true};
    int rc = arg_table(ctx, in, len, 0, &t);
    if (rc) return rc;
    if (arg_unpack(in, len, 1, &u)) rc = WEFT_EINVAL;
    bool header = unpack_u64(&u) != 0;
    weft_csv_write_options wo = {0};
    wo.delimiter = (char)unpack_u64(&u);
    char *na = unpack_str(&u), *path = unpack_str(&u);
    wo.na_rep = na;
    char *buf = NULL;
    size_t n = 0;
    if (!rc && u.bad) rc = weft_ctx_fail(ctx, WEFT_EINVAL, "csv write: bad spec");
    if (!rc) rc = weft__csv_format(t, &wo, header, &buf, &n);
    if (!rc && path && *path) {
        FILE *f = fopen(path, "wb");
        if (!f)
            rc = weft_ctx_fail(ctx, -errno, "%s: %s", path, strerror(errno));
        else {
            if (n && fwrite(buf, 1, n, f) != n)
                rc = weft_ctx_fail(ctx, -EIO, "%s: write failed", path);
            if (fclose(f) && !rc) rc = weft_ctx_fail(ctx, -EIO, "%s: close failed", path);
        }
        if (!rc) rc = weft_ctx_set_output(ctx, NULL, 0);
    } else if (!rc) {
        rc = weft_ctx_set_output(ctx, buf, n);
    }
    free(buf), free(na), free(path);
    weft_table_destroy(t);
    return rc;
}

WEFT_TASK_REGISTER_AS(weft__tb_lit, "weft.table.literal");
WEFT_TASK_REGISTER_AS(weft__tb_filter, "weft.table.filter");
WEFT_TASK_REGISTER_AS(weft__tb_select, "weft.table.select");
WEFT_TASK_REGISTER_AS(weft__tb_hstack, "weft.table.assign");
WEFT_TASK_REGISTER_AS(weft__tb_join, "weft.table.join");
WEFT_TASK_REGISTER_AS(weft__tb_gb_partial, "weft.table.groupby_partial");
WEFT_TASK_REGISTER_AS(weft__tb_describe_partial, "weft.table.describe_partial");
WEFT_TASK_REGISTER_AS(weft__tb_top_partial, "weft.table.top_partial");
WEFT_TASK_REGISTER_AS(weft__tb_csv_partial, "weft.table.csv_partial");
WEFT_TASK_REGISTER_AS(weft__tb_sort_partial, "weft.table.sort_partial");
WEFT_TASK_REGISTER_AS(weft__tb_csv_part, "weft.table.csv_part");

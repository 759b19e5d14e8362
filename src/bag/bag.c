/* bag.c : lazy bags and the graphs their terminal calls compute.
 *
 * A weft_bag is an immutable node of a small tree: a source (one serialized
 * source description per partition), a narrow operation on a parent (map,
 * flatmap, filter, map_partitions, join: partition i of the result is
 * partition i of the parent, transformed), or a wide one (product, zip,
 * repartition, groupby, and the aggregations frequencies / distinct /
 * foldby that end in one partition). Bags hold references to their parents.
 *
 * A terminal call builds one weft_graph. The plan of partition i walks down
 * the narrow chain to a source; the chain's operations all run in one task
 * (fused, as dask's optimizer does). A wide operation's inputs become graph
 * nodes of their own: the parent partitions materialized (T_COLLECT), the
 * shuffle tasks of a groupby, the merge tree of an aggregation; they are
 * memoized per build, so a partition of `a` feeding every partition of a
 * product is computed once and freed (by the graph) after its last reader.
 * Partial results are merged in a tree of fan-in 8 ("weft.bag.merge").
 *
 * The graph runs on any executor; tasks are registered ("weft.bag.part",
 * "weft.bag.merge"), and user functions travel by pointer only to backends
 * that share the address space, else by registered name. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bag/bag_build.h"
#include "bag/bag_internal.h"
#include "core/backend.h"
#include "internal.h"

#define SPLIT_EVERY 8

static weft_bag *bag_new(int kind, size_t nparts)
{
    weft_bag *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->kind = kind;
    b->nparts = nparts;
    return b;
}

void weft_bag_retain(weft_bag *b)
{
    if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

int weft_bag_release(weft_bag *b)
{
    while (b) {
        if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return 0;
        weft_bag *parent = b->parent;
        if (b->src)
            for (size_t i = 0; i < b->nparts; i++) wb_free(&b->src[i]);
        free(b->src);
        free(b->arg);
        free(b->table);
        free(b->term);
        free(b->merge);
        free(b->spill_dir);
        weft_bag_release(b->other);
        free(b);
        b = parent;
    }
    return 0;
}

size_t weft_bag_nparts(const weft_bag *b)
{
    return b ? b->nparts : 0;
}

int weft_bag_fn_register(const char *name, void (*fn)(void))
{
    return weft_task_register(name, (weft_task_fn)fn);
}

static size_t auto_parts(size_t n, size_t nparts)
{
    if (nparts) return nparts;
    size_t p = (n + 65535) / 65536;
    if (p < 1) p = 1;
    if (p > 64) p = 64;
    return p;
}

/* ---- sources --------------------------------------------------------------------- */

static int src_bag(size_t nparts, weft_bag **out)
{
    weft_bag *b = bag_new(B_SOURCE, nparts);
    if (b) b->src = calloc(nparts, sizeof *b->src);
    if (!b || !b->src) {
        weft_bag_release(b);
        return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    }
    *out = b;
    return 0;
}

static int src_done(weft_bag *b, weft_bag **out)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (b->src[i].oom) {
            weft_bag_release(b);
            return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
        }
    *out = b;
    return 0;
}

typedef const void *(*item_at_fn)(const void *items, size_t i, size_t *len);

static int from_items(const void *items, size_t n, size_t nparts, item_at_fn at, weft_bag **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag_from_*: NULL out");
    *out = NULL;
    if (!items && n) return weft__err(WEFT_EINVAL, "weft_bag_from_*: NULL items");
    nparts = auto_parts(n, nparts);
    weft_bag *b;
    int rc = src_bag(nparts, &b);
    if (rc) return rc;
    for (size_t p = 0; p < nparts; p++) {
        size_t lo = n * p / nparts, hi = n * (p + 1) / nparts, bytes = 0;
        for (size_t i = lo; i < hi; i++) {
            size_t l;
            at(items, i, &l);
            if (l > UINT32_MAX) {
                weft_bag_release(b);
                return weft__err(WEFT_EINVAL, "weft_bag_from_*: item %zu is over 4 GiB", i);
            }
            bytes += 4 + l;
        }
        wb *w = &b->src[p];
        wb_u32(w, SRC_INLINE);
        wb_u64(w, bytes);
        wb_reserve(w, bytes);
        for (size_t i = lo; i < hi; i++) {
            size_t l;
            const void *d = at(items, i, &l);
            wb_rec(w, d, l);
        }
    }
    return src_done(b, out);
}

static const void *at_buf(const void *items, size_t i, size_t *len)
{
    const weft_buf *b = (const weft_buf *)items + i;
    *len = b->len;
    return b->data;
}
static const void *at_8(const void *items, size_t i, size_t *len)
{
    *len = 8;
    return (const unsigned char *)items + 8 * i;
}
static const void *at_text(const void *items, size_t i, size_t *len)
{
    const char *s = ((const char *const *)items)[i];
    *len = s ? strlen(s) : 0;
    return s;
}

int weft_bag_from_sequence(const weft_buf *items, size_t n, size_t nparts, weft_bag **out)
{
    for (size_t i = 0; items && i < n; i++)
        if (!items[i].data && items[i].len)
            return weft__err(WEFT_EINVAL, "weft_bag_from_sequence: item %zu is NULL", i);
    return from_items(items, n, nparts, at_buf, out);
}
int weft_bag_from_doubles(const double *v, size_t n, size_t nparts, weft_bag **out)
{
    return from_items(v, n, nparts, at_8, out);
}
int weft_bag_from_int64s(const int64_t *v, size_t n, size_t nparts, weft_bag **out)
{
    return from_items(v, n, nparts, at_8, out);
}
int weft_bag_from_texts(const char *const *v, size_t n, size_t nparts, weft_bag **out)
{
    for (size_t i = 0; v && i < n; i++)
        if (!v[i]) return weft__err(WEFT_EINVAL, "weft_bag_from_texts: item %zu is NULL", i);
    return from_items(v, n, nparts, at_text, out);
}

int weft_bag_range(int64_t start, int64_t stop, int64_t step, size_t nparts, weft_bag **out)
{
    if (!out || step == 0) return weft__err(WEFT_EINVAL, "weft_bag_range: NULL out or step 0");
    *out = NULL;
    uint64_t n = 0;
    if (step > 0 && stop > start)
        n = ((uint64_t)stop - (uint64_t)start + (uint64_t)step - 1) / (uint64_t)step;
    else if (step < 0 && stop < start) {
        uint64_t s = (uint64_t)(-(step + 1)) + 1; /* |step|, also for INT64_MIN */
        n = ((uint64_t)start - (uint64_t)stop + s - 1) / s;
    }
    nparts = auto_parts((size_t)n, nparts);
    weft_bag *b;
    int rc = src_bag(nparts, &b);
    if (rc) return rc;
    for (size_t p = 0; p < nparts; p++) {
        uint64_t lo = (uint64_t)((unsigned __int128)n * p / nparts);
        uint64_t hi = (uint64_t)((unsigned __int128)n * (p + 1) / nparts);
        wb_u32(&b->src[p], SRC_RANGE);
        wb_u64(&b->src[p], (uint64_t)start + lo * (uint64_t)step);
        wb_u64(&b->src[p], (uint64_t)step);
        wb_u64(&b->src[p], hi - lo);
    }
    return src_done(b, out);
}

static int fnref_init(bag_fnref *f, void (*fn)(void))
{
    f->ptr = fn;
    f->name = fn ? weft_task_name((weft_task_fn)fn) : NULL;
    return 0;
}

int weft_bag_from_generator(weft_bag_gen_fn fn, const void *arg, size_t alen, size_t nparts,
                            weft_bag **out)
{
    if (!out || !fn || (!arg && alen) || nparts == 0)
        return weft__err(WEFT_EINVAL, "weft_bag_from_generator: NULL argument or 0 partitions");
    *out = NULL;
    weft_bag *b;
    int rc = src_bag(nparts, &b);
    if (rc) return rc;
    b->gen = 1;
    fnref_init(&b->fn[0], (void (*)(void))fn);
    b->arg = malloc(alen ? alen : 1);
    if (!b->arg) {
        weft_bag_release(b);
        return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    }
    if (alen) memcpy(b->arg, arg, alen);
    b->alen = alen;
    return src_done(b, out);
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int weft_bag_read_text(const char *pattern, const weft_bag_text_options *opts, weft_bag **out)
{
    if (!out || !pattern) return weft__err(WEFT_EINVAL, "weft_bag_read_text: NULL argument");
    *out = NULL;
    uint64_t bs = opts && opts->blocksize ? opts->blocksize : 64ull << 20;
    size_t ppf = opts ? opts->parts_per_file : 0;
    glob_t g;
    int gr = glob(pattern, 0, NULL, &g);
    if (gr == GLOB_NOMATCH || (gr == 0 && g.gl_pathc == 0)) {
        if (gr == 0) globfree(&g);
        return weft__err(WEFT_ENOENT, "weft_bag_read_text: no file matches '%s'", pattern);
    }
    if (gr != 0) {
        return weft__err(gr == GLOB_NOSPACE ? WEFT_ENOMEM : WEFT_EINVAL,
                         "weft_bag_read_text: cannot list '%s' (glob error %d)", pattern, gr);
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, path_cmp);
    /* first pass: sizes and partition counts */
    size_t total = 0;
    uint64_t *sizes = calloc(g.gl_pathc, sizeof *sizes);
    size_t *np = calloc(g.gl_pathc, sizeof *np);
    int rc = 0;
    if (!sizes || !np) {
        rc = weft__err(WEFT_ENOMEM, "weft_bag_read_text: out of memory");
        goto out;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = weft__err(-errno, "weft_bag_read_text: cannot read '%s': %s", path,
                           strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = weft__err(WEFT_EINVAL, "weft_bag_read_text: '%s' is a directory", path);
            goto out;
        }
        if (access(path, R_OK) != 0) {
            rc = weft__err(-errno, "weft_bag_read_text: cannot read '%s': %s", path,
                           strerror(errno));
            goto out;
        }
        sizes[i] = (uint64_t)st.st_size;
        bool comp = ends_with(path, ".gz") || ends_with(path, ".zst");
        if (comp || sizes[i] == 0)
            np[i] = 1;
        else if (ppf)
            np[i] = ppf;
        else
            np[i] = (size_t)((sizes[i] + bs - 1) / bs);
        total += np[i];
    }
    weft_bag *b;
    rc = src_bag(total, &b);
    if (rc) goto out;
    size_t k = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        for (size_t j = 0; j < np[i]; j++, k++) {
            wb *w = &b->src[k];
            if (ends_with(path, ".gz") || ends_with(path, ".zst")) {
                wb_u32(w, ends_with(path, ".gz") ? SRC_GZ : SRC_ZST);
                wb_str(w, path);
            } else {
                uint64_t lo = (uint64_t)((unsigned __int128)sizes[i] * j / np[i]);
                uint64_t hi = (uint64_t)((unsigned __int128)sizes[i] * (j + 1) / np[i]);
                wb_u32(w, SRC_TEXT);
                wb_str(w, path);
                wb_u64(w, lo);
                wb_u64(w, hi);
            }
        }
    }
    rc = src_done(b, out);
out:
    free(sizes);
    free(np);
    globfree(&g);
    return rc;
}

int weft_bag_read_raw(const char *path, weft_bag_num kind, size_t per_part, weft_bag **out)
{
    if (!out || !path || (kind != WEFT_BAG_DOUBLE && kind != WEFT_BAG_INT64))
        return weft__err(WEFT_EINVAL, "weft_bag_read_raw: bad argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        return weft__err(-errno, "weft_bag_read_raw: cannot read '%s': %s", path, strerror(errno));
    if (st.st_size % 8)
        return weft__err(WEFT_EINVAL, "weft_bag_read_raw: '%s' has %lld bytes, not a multiple of 8",
                         path, (long long)st.st_size);
    uint64_t n = (uint64_t)st.st_size / 8;
    if (!per_part) per_part = 8u << 20;
    size_t nparts = (size_t)((n + per_part - 1) / per_part);
    if (!nparts) nparts = 1;
    weft_bag *b;
    int rc = src_bag(nparts, &b);
    if (rc) return rc;
    for (size_t p = 0; p < nparts; p++) {
        uint64_t lo = (uint64_t)p * per_part, hi = lo + per_part < n ? lo + per_part : n;
        wb_u32(&b->src[p], SRC_RAW);
        wb_str(&b->src[p], path);
        wb_u64(&b->src[p], lo);
        wb_u64(&b->src[p], hi);
    }
    return src_done(b, out);
}

/* ---- operations ---------------------------------------------------------------- */

static int dup_bytes(void **dst, size_t *dlen, const void *src, size_t len)
{
    *dst = malloc(len ? len : 1);
    if (!*dst) return WEFT_ENOMEM;
    if (len) memcpy(*dst, src, len);
    *dlen = len;
    return 0;
}

static int narrow(weft_bag *b, uint32_t kind, void (*fn)(void), const void *arg, size_t alen,
                  weft_bag **out, const char *what)
{
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", what);
    *out = NULL;
    if (!b || !fn || (!arg && alen)) return weft__err(WEFT_EINVAL, "%s: NULL argument", what);
    if (b->depth + 1 > BAG_MAX_OPS)
        return weft__err(WEFT_EINVAL, "%s: more than %d operations in a row", what, BAG_MAX_OPS);
    weft_bag *n = bag_new(B_NARROW, b->nparts);
    if (!n || dup_bytes(&n->arg, &n->alen, arg, alen)) {
        weft_bag_release(n);
        return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
    }
    n->op = kind;
    n->depth = b->depth + 1;
    fnref_init(&n->fn[0], fn);
    weft_bag_retain(b);
    n->parent = b;
    *out = n;
    return 0;
}

int weft_bag_map(weft_bag *b, weft_bag_map_fn fn, const void *arg, size_t alen, weft_bag **out)
{
    return narrow(b, OP_MAP, (void (*)(void))fn, arg, alen, out, "weft_bag_map");
}
int weft_bag_flatmap(weft_bag *b, weft_bag_map_fn fn, const void *arg, size_t alen, weft_bag **out)
{
    return narrow(b, OP_FLATMAP, (void (*)(void))fn, arg, alen, out, "weft_bag_flatmap");
}
int weft_bag_filter(weft_bag *b, weft_bag_pred_fn fn, const void *arg, size_t alen, weft_bag **out)
{
    return narrow(b, OP_FILTER, (void (*)(void))fn, arg, alen, out, "weft_bag_filter");
}
int weft_bag_map_partitions(weft_bag *b, weft_bag_part_fn fn, const void *arg, size_t alen,
                            weft_bag **out)
{
    return narrow(b, OP_MAPPART, (void (*)(void))fn, arg, alen, out, "weft_bag_map_partitions");
}

int weft_bag_join(weft_bag *b, weft_bag_key_fn key, const void *arg, size_t alen,
                  const weft_bag_records *table, weft_bag **out)
{
    if (!table) return weft__err(WEFT_EINVAL, "weft_bag_join: NULL table");
    for (size_t i = 0; i < table->n; i++) {
        const void *d;
        size_t l;
        weft_bag_records_get(table, i, &d, &l);
        if (weft_bag_pair_get(d, l, NULL, NULL, NULL, NULL))
            return weft__err(WEFT_EINVAL, "weft_bag_join: table record %zu is not a pair", i);
    }
    int rc = narrow(b, OP_JOIN, (void (*)(void))key, arg, alen, out, "weft_bag_join");
    if (rc) return rc;
    if (dup_bytes(&(*out)->table, &(*out)->tlen, table->buf, table->len)) {
        weft_bag_release(*out);
        *out = NULL;
        return weft__err(WEFT_ENOMEM, "weft_bag_join: out of memory");
    }
    return 0;
}

static int wide(weft_bag *a, weft_bag *b, int wkind, size_t nparts, weft_bag **out,
                const char *what)
{
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", what);
    *out = NULL;
    if (!a) return weft__err(WEFT_EINVAL, "%s: NULL bag", what);
    weft_bag *n = bag_new(B_WIDE, nparts);
    if (!n) return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
    n->wide = wkind;
    weft_bag_retain(a);
    n->parent = a;
    if (b) {
        weft_bag_retain(b);
        n->other = b;
    }
    *out = n;
    return 0;
}

int weft_bag_product(weft_bag *a, weft_bag *b, weft_bag **out)
{
    if (!a || !b) return weft__err(WEFT_EINVAL, "weft_bag_product: NULL bag");
    if (a->nparts > SIZE_MAX / b->nparts)
        return weft__err(WEFT_EINVAL, "weft_bag_product: too many partitions");
    return wide(a, b, W_PRODUCT, a->nparts * b->nparts, out, "weft_bag_product");
}

int weft_bag_zip(weft_bag *a, weft_bag *b, weft_bag **out)
{
    if (!a || !b || a->nparts != b->nparts)
        return weft__err(WEFT_EINVAL, "weft_bag_zip: NULL bag or different partition counts");
    return wide(a, b, W_ZIP, a->nparts, out, "weft_bag_zip");
}

int weft_bag_repartition(weft_bag *b, size_t nparts, weft_bag **out)
{
    if (nparts == 0) return weft__err(WEFT_EINVAL, "weft_bag_repartition: 0 partitions");
    return wide(b, NULL, W_REPART, nparts, out, "weft_bag_repartition");
}

static int agg_bag(weft_bag *b, wb *term, wb *merge, weft_bag **out, const char *what)
{
    int rc = term->oom || merge->oom ? weft__err(WEFT_ENOMEM, "%s: out of memory", what)
                                     : wide(b, NULL, W_AGG, 1, out, what);
    if (rc) {
        wb_free(term);
        wb_free(merge);
        return rc;
    }
    (*out)->term = term->p;
    (*out)->tlen_term = term->n;
    (*out)->merge = merge->p;
    (*out)->mlen = merge->n;
    return 0;
}

int weft_bag_frequencies(weft_bag *b, weft_bag **out)
{
    wb t = {0}, m = {0};
    wb_u32(&t, T_FREQ);
    wb_u32(&m, T_FREQ);
    return agg_bag(b, &t, &m, out, "weft_bag_frequencies");
}

int weft_bag_distinct(weft_bag *b, weft_bag **out)
{
    wb t = {0}, m = {0};
    wb_u32(&t, T_DISTINCT);
    wb_u32(&m, T_DISTINCT);
    return agg_bag(b, &t, &m, out, "weft_bag_distinct");
}

int weft_bag_foldby(weft_bag *b, weft_bag_key_fn key, weft_bag_binop_fn binop,
                    weft_bag_combine_fn combine, const void *init, size_t acc_size, const void *arg,
                    size_t alen, weft_bag **out)
{
    if (!key || !binop || !combine || (!init && acc_size) || (!arg && alen)) {
        if (out) *out = NULL;
        return weft__err(WEFT_EINVAL, "weft_bag_foldby: NULL argument");
    }
    /* the functions are written at build time (pointer or name): keep them */
    int rc = wide(b, NULL, W_AGG, 1, out, "weft_bag_foldby");
    if (rc) return rc;
    weft_bag *n = *out;
    n->foldby = 1;
    fnref_init(&n->fn[0], (void (*)(void))key);
    fnref_init(&n->fn[1], (void (*)(void))binop);
    fnref_init(&n->fn[2], (void (*)(void))combine);
    if (dup_bytes(&n->arg, &n->alen, arg, alen) || dup_bytes(&n->table, &n->tlen, init, acc_size)) {
        weft_bag_release(n);
        *out = NULL;
        return weft__err(WEFT_ENOMEM, "weft_bag_foldby: out of memory");
    }
    return 0;
}

int weft_bag_groupby(weft_bag *b, weft_bag_key_fn key, const void *arg, size_t alen,
                     const weft_bag_groupby_options *opts, weft_bag **out)
{
    if (!b || !key || (!arg && alen)) {
        if (out) *out = NULL;
        return weft__err(WEFT_EINVAL, "weft_bag_groupby: NULL argument");
    }
    size_t np = opts && opts->nparts ? opts->nparts : b->nparts;
    int rc = wide(b, NULL, W_GROUP, np, out, "weft_bag_groupby");
    if (rc) return rc;
    weft_bag *n = *out;
    fnref_init(&n->fn[0], (void (*)(void))key);
    n->mem_bound = opts && opts->mem_bound ? opts->mem_bound : 64ull << 20;
    const char *dir = opts && opts->spill_dir ? opts->spill_dir : getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    n->spill_dir = strdup(dir);
    if (!n->spill_dir || dup_bytes(&n->arg, &n->alen, arg, alen)) {
        weft_bag_release(n);
        *out = NULL;
        return weft__err(WEFT_ENOMEM, "weft_bag_groupby: out of memory");
    }
    return 0;
}

/* ---- building graphs ------------------------------------------------------------ */

int weft__bag_build_init(bag_build *bb, weft_executor *ex)
{
    memset(bb, 0, sizeof *bb);
    if (!ex) return weft__err(WEFT_EINVAL, "weft_bag: NULL executor");
    bb->ex = ex;
    bb->shared = (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0;
    int rc = weft_graph_create(NULL, &bb->g);
    if (rc) return rc;
    return 0;
}

void weft__bag_build_fini(bag_build *bb)
{
    /* spill files no grouping task read (take, stream windows, failures) */
    for (size_t i = 0; i < bb->nspills; i++) {
        char pat[4300];
        snprintf(pat, sizeof pat, "%s-*", bb->spills[i]);
        glob_t g;
        if (glob(pat, GLOB_NOSORT, NULL, &g) == 0) {
            for (size_t j = 0; j < g.gl_pathc; j++) unlink(g.gl_pathv[j]);
            globfree(&g);
        }
        free(bb->spills[i]);
    }
    free(bb->spills);
    bb->spills = NULL;
    bb->nspills = 0;
    weft_graph_destroy(bb->g);
    free(bb->memo);
    bb->g = NULL;
    bb->memo = NULL;
}

int weft__bag_fnref_write(bag_build *bb, wb *w, const bag_fnref *f)
{
    if (!f->ptr) {
        wb_u64(w, 0);
        wb_u64(w, 0);
        return 0;
    }
    if (!bb->shared && !f->name)
        return weft__err(WEFT_ENOTREG,
                         "weft_bag: a user function is not registered, and the %s backend "
                         "runs tasks in other processes: register it with WEFT_BAG_FN(fn)",
                         weft_backend_name(weft_executor_backend(bb->ex)));
    wb_u64(w, bb->shared ? (uint64_t)(uintptr_t)f->ptr : 0);
    wb_str(w, f->name);
    return 0;
}

static bool memo_find(bag_build *bb, const weft_bag *b, size_t part, int what, weft_node *n)
{
    for (size_t i = 0; i < bb->nmemo; i++)
        if (bb->memo[i].bag == b && bb->memo[i].part == part && bb->memo[i].what == what) {
            *n = bb->memo[i].node;
            return true;
        }
    return false;
}

static int memo_add(bag_build *bb, const weft_bag *b, size_t part, int what, weft_node n)
{
    if (bb->nmemo == bb->cmemo) {
        size_t c = bb->cmemo ? bb->cmemo * 2 : 64;
        void *m = realloc(bb->memo, c * sizeof *bb->memo);
        if (!m) return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
        bb->memo = m;
        bb->cmemo = c;
    }
    bb->memo[bb->nmemo++] = (bag_memo){b, part, what, n};
    return 0;
}

#define MAX_ARGS_INLINE 64

typedef struct plan {
    wb src;
    wb ops;
    uint32_t nops;
    weft_node *args;
    size_t nargs, cargs;
} plan;

static int plan_arg(plan *p, weft_node n)
{
    if (p->nargs == p->cargs) {
        size_t c = p->cargs ? p->cargs * 2 : 8;
        weft_node *a = realloc(p->args, c * sizeof *a);
        if (!a) return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
        p->args = a;
        p->cargs = c;
    }
    p->args[p->nargs++] = n;
    return 0;
}

static void plan_free(plan *p)
{
    wb_free(&p->src);
    wb_free(&p->ops);
    free(p->args);
}

static int counts_of(bag_build *bb, weft_bag *b, uint64_t **counts);

static uint32_t src_kind(const wb *src)
{
    uint32_t k = 0;
    if (src->n >= 12) memcpy(&k, src->p, 4);
    return k;
}

/* The plan of partition `part` of `b`: its source, its narrow ops. */
static int plan_part(bag_build *bb, weft_bag *b, size_t part, plan *p)
{
    int rc = 0;
    if (b->kind == B_NARROW) {
        rc = plan_part(bb, b->parent, part, p);
        if (rc) return rc;
        wb_u32(&p->ops, b->op);
        rc = weft__bag_fnref_write(bb, &p->ops, &b->fn[0]);
        if (rc) return rc;
        wb_bytes(&p->ops, b->arg, b->alen);
        if (b->op == OP_JOIN) wb_bytes(&p->ops, b->table, b->tlen);
        p->nops++;
        return p->ops.oom ? weft__err(WEFT_ENOMEM, "weft_bag: out of memory") : 0;
    }
    if (b->kind == B_SOURCE) {
        if (b->gen) {
            wb_u32(&p->src, SRC_GEN);
            rc = weft__bag_fnref_write(bb, &p->src, &b->fn[0]);
            if (rc) return rc;
            wb_bytes(&p->src, b->arg, b->alen);
            wb_u64(&p->src, part);
            wb_u64(&p->src, b->nparts);
        } else if (bb->shared && src_kind(&b->src[part]) == SRC_INLINE) {
            /* the records stay in the bag (alive during the compute): no copy */
            wb_u32(&p->src, SRC_INLINE_PTR);
            wb_u64(&p->src, (uint64_t)(uintptr_t)(b->src[part].p + 12));
            wb_u64(&p->src, b->src[part].n - 12);
        } else {
            wb_put(&p->src, b->src[part].p, b->src[part].n);
        }
        return p->src.oom ? weft__err(WEFT_ENOMEM, "weft_bag: out of memory") : 0;
    }
    weft_node n;
    switch (b->wide) {
    case W_PRODUCT:
    case W_ZIP: {
        size_t pa = b->wide == W_PRODUCT ? part / b->other->nparts : part;
        size_t pb = b->wide == W_PRODUCT ? part % b->other->nparts : part;
        wb_u32(&p->src, b->wide == W_PRODUCT ? SRC_PRODUCT : SRC_ZIP);
        if ((rc = weft__bag_node(bb, b->parent, pa, T_COLLECT, NULL, 0, &n)) ||
            (rc = plan_arg(p, n)))
            return rc;
        if ((rc = weft__bag_node(bb, b->other, pb, T_COLLECT, NULL, 0, &n)) ||
            (rc = plan_arg(p, n)))
            return rc;
        break;
    }
    case W_AGG: {
        if (!memo_find(bb, b, 0, 1, &n)) {
            wb t = {0}, m = {0};
            if (b->foldby) {
                wb_u32(&t, T_FOLDBY);
                for (int i = 0; i < 3 && !rc; i++) rc = weft__bag_fnref_write(bb, &t, &b->fn[i]);
                wb_bytes(&t, b->table, b->tlen);
                wb_bytes(&t, b->arg, b->alen);
                wb_put(&m, t.p, t.n);
            } else {
                wb_put(&t, b->term, b->tlen_term);
                wb_put(&m, b->merge, b->mlen);
            }
            if (!rc) rc = weft__bag_tree(bb, b->parent, &t, &m, &n);
            wb_free(&t);
            wb_free(&m);
            if (rc || (rc = memo_add(bb, b, 0, 1, n))) return rc;
        }
        wb_u32(&p->src, SRC_INPUTS);
        rc = plan_arg(p, n);
        break;
    }
    case W_REPART: {
        uint64_t *cnt;
        if ((rc = counts_of(bb, b->parent, &cnt))) return rc;
        uint64_t total = 0;
        for (size_t i = 0; i < b->parent->nparts; i++) total += cnt[i];
        uint64_t lo = (uint64_t)((unsigned __int128)total * part / b->nparts);
        uint64_t hi = (uint64_t)((unsigned __int128)total * (part + 1) / b->nparts);
        wb_u32(&p->src, SRC_SLICE);
        wb tmp = {0};
        uint64_t at = 0, nin = 0;
        for (size_t i = 0; i < b->parent->nparts && !rc; i++) {
            uint64_t s = at, e = at + cnt[i];
            at = e;
            if (e <= lo || s >= hi || cnt[i] == 0) continue;
            uint64_t skip = lo > s ? lo - s : 0;
            uint64_t take = (hi < e ? hi : e) - (s + skip);
            wb_u64(&tmp, skip);
            wb_u64(&tmp, take);
            nin++;
            if (!(rc = weft__bag_node(bb, b->parent, i, T_COLLECT, NULL, 0, &n)))
                rc = plan_arg(p, n);
        }
        wb_u64(&p->src, nin);
        wb_put(&p->src, tmp.p, tmp.n);
        wb_free(&tmp);
        free(cnt);
        break;
    }
    case W_GROUP: {
        /* the shuffle: one task per input partition, memoized */
        if (!memo_find(bb, b, 0, 2, &n)) {
            char prefix[4200];
            static atomic_uint_fast64_t seq;
            snprintf(prefix, sizeof prefix, "%s/weft-bag-spill-%ld-%llu", b->spill_dir,
                     (long)getpid(), (unsigned long long)atomic_fetch_add(&seq, 1));
            char **sp = realloc(bb->spills, (bb->nspills + 1) * sizeof *sp);
            if (!sp) return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
            bb->spills = sp;
            if (!(sp[bb->nspills] = strdup(prefix)))
                return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
            bb->nspills++;
            for (size_t i = 0; i < b->parent->nparts && !rc; i++) {
                wb t = {0};
                wb_u32(&t, T_SHUFFLE);
                rc = weft__bag_fnref_write(bb, &t, &b->fn[0]);
                wb_bytes(&t, b->arg, b->alen);
                wb_u64(&t, b->nparts);
                wb_u64(&t, b->mem_bound);
                wb_str(&t, prefix);
                wb_u64(&t, i);
                if (!rc) rc = weft__bag_node(bb, b->parent, i, 0, t.p, t.n, &n);
                wb_free(&t);
                if (!rc) rc = memo_add(bb, b, i, 2, n);
            }
            if (rc) return rc;
        }
        wb_u32(&p->src, SRC_GROUP);
        wb_u64(&p->src, part);
        if ((rc = weft__bag_fnref_write(bb, &p->src, &b->fn[0]))) return rc;
        wb_bytes(&p->src, b->arg, b->alen);
        for (size_t i = 0; i < b->parent->nparts && !rc; i++) {
            memo_find(bb, b, i, 2, &n);
            rc = plan_arg(p, n);
        }
        break;
    }
    default:
        return weft__err(WEFT_EINVAL, "weft_bag: unknown bag kind");
    }
    if (!rc && p->src.oom) rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    return rc;
}

/* A node running partition `part` of `b` into terminal `term` (a plain
 * T_COLLECT / T_COUNT with no parameters), or the terminal bytes given. */
int weft__bag_node(bag_build *bb, weft_bag *b, size_t part, uint32_t term, const void *tbytes,
                   size_t tlen, weft_node *out)
{
    bool memo = !tbytes && (term == T_COLLECT || term == T_COUNT);
    if (memo && memo_find(bb, b, part, (int)(10 + term), out)) return 0;
    plan p = {0};
    int rc = plan_part(bb, b, part, &p);
    if (rc) {
        plan_free(&p);
        return rc;
    }
    wb w = {0};
    wb_u32(&w, BAG_MAGIC);
    wb_u64(&w, p.src.n);
    wb_put(&w, p.src.p, p.src.n);
    wb_u32(&w, p.nops);
    wb_put(&w, p.ops.p, p.ops.n);
    if (tbytes)
        wb_put(&w, tbytes, tlen);
    else
        wb_u32(&w, term);
    weft_arg stack[MAX_ARGS_INLINE];
    weft_arg *args = p.nargs + 1 <= MAX_ARGS_INLINE ? stack : malloc((p.nargs + 1) * sizeof *args);
    if (w.oom || !args) {
        rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    } else {
        args[0] = weft_arg_bytes(w.p, w.n);
        for (size_t i = 0; i < p.nargs; i++) args[i + 1] = weft_arg_node(p.args[i]);
        rc = weft_graph_call(bb->g, weft__bag_part_task, args, p.nargs + 1, out);
        if (!rc && memo) rc = memo_add(bb, b, part, (int)(10 + term), *out);
    }
    if (args != stack) free(args);
    wb_free(&w);
    plan_free(&p);
    return rc;
}

/* Every partition into the terminal `term`, merged by `merge` in a tree. */
int weft__bag_tree(bag_build *bb, weft_bag *b, const wb *term, const wb *merge, weft_node *root)
{
    return weft__bag_tree_fanin(bb, b, term, merge, SPLIT_EVERY, root);
}

int weft__bag_tree_fanin(bag_build *bb, weft_bag *b, const wb *term, const wb *merge, size_t fanin,
                         weft_node *root)
{
    if (fanin < 2) fanin = 2;
    if (fanin > 64) fanin = 64;
    size_t n = b->nparts;
    weft_node *level = malloc((n ? n : 1) * sizeof *level);
    if (!level) return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = weft__bag_node(bb, b, i, 0, term->p, term->n, &level[i]);
    while (!rc && n > 1) {
        size_t m = 0;
        for (size_t i = 0; i < n && !rc; i += fanin) {
            size_t k = n - i < fanin ? n - i : fanin;
            weft_arg args[65];
            args[0] = weft_arg_bytes(merge->p, merge->n);
            for (size_t j = 0; j < k; j++) args[j + 1] = weft_arg_node(level[i + j]);
            rc = weft_graph_call(bb->g, weft__bag_merge_task, args, k + 1, &level[m++]);
        }
        n = m;
    }
    if (!rc) *root = level[0];
    free(level);
    return rc;
}

int weft__bag_compute(bag_build *bb, const weft_node *targets, size_t n)
{
    weft_compute_options co = {0};
    co.flags = WEFT_COMPUTE_CANCEL_ON_ERROR;
    co.progress = -1;
    int rc = weft_graph_compute(bb->g, bb->ex, targets, n, &co);
    if (rc) {
        /* the failed task's own message, with the graph's context */
        const char *why = weft_last_error();
        char *copy = strdup(why ? why : "");
        rc = weft__err(rc, "weft_bag: %s", copy ? copy : "a task failed");
        free(copy);
    }
    return rc;
}

static int counts_of(bag_build *bb, weft_bag *b, uint64_t **counts)
{
    size_t n = b->nparts;
    /* a separate graph: the counts are needed to build this one */
    bag_build cb;
    int rc = weft__bag_build_init(&cb, bb->ex);
    if (rc) return rc;
    weft_node *nodes = malloc(n * sizeof *nodes);
    uint64_t *c = calloc(n, sizeof *c);
    if (!nodes || !c) rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    for (size_t i = 0; i < n && !rc; i++)
        rc = weft__bag_node(&cb, b, i, T_COUNT, NULL, 0, &nodes[i]);
    if (!rc) rc = weft__bag_compute(&cb, nodes, n);
    for (size_t i = 0; i < n && !rc; i++) {
        const void *d;
        size_t l;
        rc = weft_graph_result(cb.g, nodes[i], &d, &l);
        if (!rc && l == 8) memcpy(&c[i], d, 8);
    }
    free(nodes);
    weft__bag_build_fini(&cb);
    if (rc) {
        free(c);
        return rc;
    }
    *counts = c;
    return 0;
}

/* Builds the tree of `term` / `merge` over b, computes it, copies the root's
 * output into *out (malloc, the caller frees). */
int weft__bag_run(weft_bag *b, weft_executor *ex, const wb *term, const wb *merge, void **out,
                  size_t *len)
{
    return weft__bag_run_fanin(b, ex, term, merge, SPLIT_EVERY, out, len);
}

int weft__bag_run_fanin(weft_bag *b, weft_executor *ex, const wb *term, const wb *merge,
                        size_t fanin, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!b) return weft__err(WEFT_EINVAL, "weft_bag: NULL bag");
    if (term->oom || merge->oom) return weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    bag_build bb;
    int rc = weft__bag_build_init(&bb, ex);
    if (rc) return rc;
    weft_node root;
    rc = weft__bag_tree_fanin(&bb, b, term, merge, fanin, &root);
    if (!rc) rc = weft__bag_compute(&bb, &root, 1);
    if (!rc) {
        const void *d;
        size_t l;
        rc = weft_graph_result(bb.g, root, &d, &l);
        if (!rc) {
            *out = malloc(l ? l : 1);
            if (!*out)
                rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
            else {
                if (l) memcpy(*out, d, l);
                *len = l;
            }
        }
    }
    weft__bag_build_fini(&bb);
    return rc;
}

/* ---- terminal calls -------------------------------------------------------------- */

int weft_bag_count(weft_bag *b, weft_executor *ex, uint64_t *out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag_count: NULL out");
    wb t = {0};
    wb_u32(&t, T_COUNT);
    void *d;
    size_t l;
    int rc = weft__bag_run(b, ex, &t, &t, &d, &l);
    if (!rc) memcpy(out, d, 8);
    free(d);
    wb_free(&t);
    return rc;
}

int weft_bag_describe(weft_bag *b, weft_executor *ex, weft_bag_num kind, weft_bag_stats *out)
{
    if (!out || (kind != WEFT_BAG_DOUBLE && kind != WEFT_BAG_INT64))
        return weft__err(WEFT_EINVAL, "weft_bag_describe: NULL out or bad kind");
    wb t = {0};
    wb_u32(&t, T_STATS);
    wb_u32(&t, kind);
    void *d;
    size_t l;
    int rc = weft__bag_run(b, ex, &t, &t, &d, &l);
    if (!rc) {
        memcpy(out, d, sizeof *out);
        weft__bag_stats_finish(out);
        if (kind == WEFT_BAG_INT64 && out->count) {
            out->min = (double)out->imin;
            out->max = (double)out->imax;
        }
    }
    free(d);
    wb_free(&t);
    return rc;
}

static int stat_field(weft_bag *b, weft_executor *ex, weft_bag_num kind, int which, int ddof,
                      double *out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag: NULL out");
    weft_bag_stats s;
    int rc = weft_bag_describe(b, ex, kind, &s);
    if (rc) return rc;
    uint64_t n = s.count - s.nans;
    bool nan = s.nans > 0; /* as numpy: a NaN makes sum, mean, var NaN */
    switch (which) {
    case 0:
        *out = nan ? NAN : kind == WEFT_BAG_INT64 ? (double)s.isum : s.sum;
        break;
    case 1:
        *out = nan ? NAN : s.min;
        break;
    case 2:
        *out = nan ? NAN : s.max;
        break;
    case 3:
        *out = nan || n == 0 ? NAN : s.mean;
        break;
    default: {
        double v = nan || (int64_t)n - ddof <= 0 ? NAN : s.m2 / (double)((int64_t)n - ddof);
        *out = which == 4 ? v : sqrt(v);
    }
    }
    return 0;
}

int weft_bag_sum(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out)
{
    return stat_field(b, ex, kind, 0, 0, out);
}
int weft_bag_min(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out)
{
    return stat_field(b, ex, kind, 1, 0, out);
}
int weft_bag_max(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out)
{
    return stat_field(b, ex, kind, 2, 0, out);
}
int weft_bag_mean(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out)
{
    return stat_field(b, ex, kind, 3, 0, out);
}
int weft_bag_var(weft_bag *b, weft_executor *ex, weft_bag_num kind, int ddof, double *out)
{
    return stat_field(b, ex, kind, 4, ddof, out);
}
int weft_bag_std(weft_bag *b, weft_executor *ex, weft_bag_num kind, int ddof, double *out)
{
    return stat_field(b, ex, kind, 5, ddof, out);
}

int weft_bag_fold(weft_bag *b, weft_executor *ex, weft_bag_binop_fn binop,
                  weft_bag_combine_fn combine, const void *init, size_t acc_size, const void *arg,
                  size_t alen, void *out)
{
    if (!binop || !combine || (!init && acc_size) || (!out && acc_size) || (!arg && alen))
        return weft__err(WEFT_EINVAL, "weft_bag_fold: NULL argument");
    if (!ex || !b) return weft__err(WEFT_EINVAL, "weft_bag_fold: NULL bag or executor");
    bag_build tmp = {.ex = ex, .shared = (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0};
    bag_fnref f1, f2;
    fnref_init(&f1, (void (*)(void))binop);
    fnref_init(&f2, (void (*)(void))combine);
    wb t = {0};
    wb_u32(&t, T_FOLD);
    int rc = weft__bag_fnref_write(&tmp, &t, &f1);
    if (!rc) rc = weft__bag_fnref_write(&tmp, &t, &f2);
    wb_bytes(&t, init, acc_size);
    wb_bytes(&t, arg, alen);
    void *d = NULL;
    size_t l;
    if (!rc) rc = weft__bag_run(b, ex, &t, &t, &d, &l);
    if (!rc && l == acc_size && acc_size) memcpy(out, d, acc_size);
    free(d);
    wb_free(&t);
    return rc;
}

int weft_bag_reduction(weft_bag *b, weft_executor *ex, weft_bag_part_fn perpart,
                       weft_bag_part_fn aggregate, const void *arg, size_t alen, size_t split_every,
                       weft_bag_records **out)
{
    if (!out || !perpart || !aggregate || (!arg && alen) || !ex || !b) {
        if (out) *out = NULL;
        return weft__err(WEFT_EINVAL, "weft_bag_reduction: NULL argument");
    }
    *out = NULL;
    bag_build tmp = {.ex = ex, .shared = (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0};
    bag_fnref f1, f2;
    fnref_init(&f1, (void (*)(void))perpart);
    fnref_init(&f2, (void (*)(void))aggregate);
    wb t = {0};
    wb_u32(&t, T_REDUCE);
    int rc = weft__bag_fnref_write(&tmp, &t, &f1);
    if (!rc) rc = weft__bag_fnref_write(&tmp, &t, &f2);
    wb_bytes(&t, arg, alen);
    void *d = NULL;
    size_t l;
    if (!rc)
        rc = weft__bag_run_fanin(b, ex, &t, &t, split_every ? split_every : SPLIT_EVERY, &d, &l);
    if (!rc && weft__bag_records_make(d, l, out))
        rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    free(d);
    wb_free(&t);
    return rc;
}

int weft_bag_topk(weft_bag *b, weft_executor *ex, size_t k, const weft_bag_topk_options *opts,
                  weft_bag_records **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag_topk: NULL out");
    *out = NULL;
    weft_bag_topk_options o = opts ? *opts : (weft_bag_topk_options){0};
    if (o.key > WEFT_BAG_KEY_CMP || (o.key == WEFT_BAG_KEY_CMP && !o.cmp) || (!o.arg && o.alen) ||
        k > (1u << 26) || !ex)
        return weft__err(WEFT_EINVAL, "weft_bag_topk: bad options (key kind, cmp, k <= 2^26)");
    bag_build tmp = {.ex = ex, .shared = (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0};
    bag_fnref f;
    fnref_init(&f, o.key == WEFT_BAG_KEY_CMP ? (void (*)(void))o.cmp : NULL);
    wb t = {0};
    wb_u32(&t, T_TOPK);
    wb_u64(&t, k);
    wb_u32(&t, o.key);
    wb_u32(&t, o.smallest);
    int rc = weft__bag_fnref_write(&tmp, &t, &f);
    wb_bytes(&t, o.arg, o.alen);
    void *d = NULL;
    size_t l;
    if (!rc) rc = weft__bag_run(b, ex, &t, &t, &d, &l);
    if (!rc && weft__bag_records_make(d, l, out))
        rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    free(d);
    wb_free(&t);
    return rc;
}

/* Computes partitions [lo, hi) of b as T_COLLECT nodes of bb's graph. */
static int compute_window(bag_build *bb, weft_bag *b, size_t lo, size_t hi, weft_node *nodes)
{
    int rc = 0;
    for (size_t i = lo; i < hi && !rc; i++)
        rc = weft__bag_node(bb, b, i, T_COLLECT, NULL, 0, &nodes[i - lo]);
    if (!rc) rc = weft__bag_compute(bb, nodes, hi - lo);
    return rc;
}

int weft_bag_stream(weft_bag *b, weft_executor *ex, weft_bag_stream_cb cb, void *ctx)
{
    if (!b || !cb) return weft__err(WEFT_EINVAL, "weft_bag_stream: NULL argument");
    bag_build bb;
    int rc = weft__bag_build_init(&bb, ex);
    if (rc) return rc;
    int w = weft_executor_workers(ex);
    size_t win = w > 0 ? 2 * (size_t)w : 2;
    weft_node *nodes = malloc(win * sizeof *nodes);
    if (!nodes) rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    for (size_t lo = 0; lo < b->nparts && !rc; lo += win) {
        size_t hi = lo + win < b->nparts ? lo + win : b->nparts;
        rc = compute_window(&bb, b, lo, hi, nodes);
        for (size_t i = lo; i < hi && !rc; i++) {
            const void *d;
            size_t l;
            weft_bag_records *r = NULL;
            rc = weft_graph_result(bb.g, nodes[i - lo], &d, &l);
            if (!rc && weft__bag_records_make(d, l, &r))
                rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
            if (!rc) rc = cb(ctx, i, r);
            weft_bag_records_destroy(r);
            weft_graph_release(bb.g, nodes[i - lo]);
        }
        for (size_t i = lo; i < hi; i++) weft_graph_release(bb.g, nodes[i - lo]);
    }
    free(nodes);
    weft__bag_build_fini(&bb);
    return rc;
}

typedef struct gather {
    wb all;
    size_t want; /* take: stop after this many (SIZE_MAX: all) */
    size_t got;
} gather;

static int gather_cb(void *ctx, size_t part, const weft_bag_records *r)
{
    (void)part;
    gather *g = ctx;
    for (size_t i = 0; i < r->n && g->got < g->want; i++, g->got++) {
        const void *d;
        size_t l;
        weft_bag_records_get(r, i, &d, &l);
        wb_rec(&g->all, d, l);
    }
    if (g->all.oom) return WEFT_ENOMEM;
    return g->got >= g->want ? 1 : 0;
}

int weft_bag_collect(weft_bag *b, weft_executor *ex, weft_bag_records **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag_collect: NULL out");
    *out = NULL;
    gather g = {.want = SIZE_MAX};
    int rc = weft_bag_stream(b, ex, gather_cb, &g);
    if (!rc && weft__bag_records_make(g.all.p, g.all.n, out))
        rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    wb_free(&g.all);
    return rc;
}

int weft_bag_take(weft_bag *b, weft_executor *ex, size_t n, weft_bag_records **out)
{
    if (!out || !b) return weft__err(WEFT_EINVAL, "weft_bag_take: NULL argument");
    *out = NULL;
    gather g = {.want = n};
    int rc = 0;
    if (n > 0) {
        /* the first partition alone, then windows that double */
        bag_build bb;
        rc = weft__bag_build_init(&bb, ex);
        if (rc) return rc;
        size_t win = 1, lo = 0;
        weft_node *nodes = malloc(b->nparts * sizeof *nodes);
        if (!nodes) rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
        while (!rc && lo < b->nparts && g.got < n) {
            size_t hi = lo + win < b->nparts ? lo + win : b->nparts;
            rc = compute_window(&bb, b, lo, hi, nodes);
            for (size_t i = lo; i < hi && !rc && g.got < n; i++) {
                const void *d;
                size_t l;
                weft_bag_records *r = NULL;
                rc = weft_graph_result(bb.g, nodes[i - lo], &d, &l);
                if (!rc && weft__bag_records_make(d, l, &r)) rc = WEFT_ENOMEM;
                if (!rc) rc = gather_cb(&g, i, r) < 0 ? WEFT_ENOMEM : 0;
                weft_bag_records_destroy(r);
            }
            for (size_t i = lo; i < hi; i++) weft_graph_release(bb.g, nodes[i - lo]);
            lo = hi;
            win *= 2;
        }
        free(nodes);
        weft__bag_build_fini(&bb);
    }
    if (!rc && weft__bag_records_make(g.all.p, g.all.n, out))
        rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    wb_free(&g.all);
    return rc;
}

int weft_bag_to_textfiles(weft_bag *b, weft_executor *ex, const char *pattern,
                          weft_bag_compress compress, uint64_t *written)
{
    if (!b || !pattern || !strchr(pattern, '*') || compress > WEFT_BAG_COMPRESS_ZSTD)
        return weft__err(WEFT_EINVAL, "weft_bag_to_textfiles: NULL argument, no '*' in the "
                                      "pattern or a bad compression");
    bag_build bb;
    int rc = weft__bag_build_init(&bb, ex);
    if (rc) return rc;
    const char *star = strchr(pattern, '*');
    weft_node *nodes = malloc(b->nparts * sizeof *nodes);
    if (!nodes) rc = weft__err(WEFT_ENOMEM, "weft_bag: out of memory");
    for (size_t i = 0; i < b->nparts && !rc; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%.*s%05zu%s", (int)(star - pattern), pattern, i, star + 1);
        wb t = {0};
        wb_u32(&t, T_WRITE);
        wb_str(&t, path);
        wb_u32(&t, compress);
        rc = t.oom ? WEFT_ENOMEM : weft__bag_node(&bb, b, i, 0, t.p, t.n, &nodes[i]);
        wb_free(&t);
    }
    if (!rc) rc = weft__bag_compute(&bb, nodes, b->nparts);
    uint64_t total = 0;
    for (size_t i = 0; i < b->nparts && !rc; i++) {
        const void *d;
        size_t l;
        rc = weft_graph_result(bb.g, nodes[i], &d, &l);
        uint64_t c = 0;
        if (!rc && l == 8) memcpy(&c, d, 8);
        total += c;
    }
    if (!rc && written) *written = total;
    free(nodes);
    weft__bag_build_fini(&bb);
    return rc;
}

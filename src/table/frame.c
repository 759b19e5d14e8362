/* frame.c : weft_frame, a lazy partitioned table on the graph layer.
 *
 * A frame is a list of graph nodes, one per partition, in one weft_graph
 * shared (reference-counted) by every frame derived from the same source.
 * Operations add nodes and return a new frame; nothing runs until a
 * function that takes an executor. Those run the partitions' nodes in
 * waves of `in_flight` targets: compute the wave, hand each output in
 * partition order to a consumer (concatenate, merge a partial aggregate,
 * append to a file), release it, go on. The graph frees every intermediate
 * as soon as its consumer ran, so what is alive at once is a wave's
 * partitions, their intermediates and the consumer's state: that is the
 * memory bound (docs/table.md).
 *
 * A CSV source also has "prerequisite" nodes: the chain of range bounds
 * (csv.c). They are computed first, as targets, and kept: they are a few
 * bytes each and every read needs its own. On a frame straight from a CSV
 * read, compute, groupby, describe and nlargest then run one task per
 * range (its read and its partial together) in a window instead of waves
 * (csv_stream_run). On an executor that shares memory (asked of the
 * backend, never its kind), compute's read tasks copy their partitions
 * into the result themselves (gather.c) and groupby's fold their partials
 * into the lanes (ops.c): the caller only waits.
 *
 * A frame derived from a CSV read by per-partition operations only
 * (map_partitions, assign, filter, select, join, chains of them) also
 * records the chain of its operations: compute, head, groupby, describe
 * and nlargest then run one chain_task per range in the same window, the
 * read and every operation of the partition in one task (docs/table.md,
 * "Derived frames in the window"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/backend.h"
#include "graph/graph_internal.h" /* the argument blocks a chained task gets */
#include "internal.h"
#include "table/table_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct tgraph {
    weft_graph *g;
    size_t refs;
} tgraph;

struct weft_frame {
    tgraph *tg;
    size_t np;
    weft_node *parts;
    size_t npre;
    weft_node *pre;
    /* a frame straight from weft_frame_read_csv: each partition's range
     * (the read task's literal), for the partials that parse it themselves
     * (weft__tb_csv_partial); NULL for every other frame */
    void **csv_enc;
    size_t *csv_len;
    /* a frame derived from a CSV read by per-partition operations only
     * (map_partitions, assign, filter, select, join and chains of them):
     * csv_enc/csv_len are the read's (copied), and `chain` the operations
     * each partition goes through, packed (chain_add): `nops` of them.
     * nops 0 with csv_enc: the read itself. */
    char *chain;
    size_t chainlen, nops;
    bool unnamed; /* an operation's task has no registered name: one address space only */
};

static int frame_new(tgraph *tg, const weft_frame *parent, size_t np, weft_frame **out)
{
    weft_frame *f = calloc(1, sizeof *f);
    if (!f) return WEFT_ENOMEM;
    f->parts = calloc(np ? np : 1, sizeof *f->parts);
    f->npre = parent ? parent->npre : 0;
    f->pre = calloc(f->npre ? f->npre : 1, sizeof *f->pre);
    if (!f->parts || !f->pre) {
        free(f->parts), free(f->pre), free(f);
        return WEFT_ENOMEM;
    }
    if (f->npre) memcpy(f->pre, parent->pre, f->npre * sizeof *f->pre);
    f->np = np;
    f->tg = tg;
    tg->refs++;
    *out = f;
    return 0;
}

int weft_frame_destroy(weft_frame *f)
{
    if (!f) return 0;
    if (--f->tg->refs == 0) {
        weft_graph_destroy(f->tg->g);
        free(f->tg);
    }
    for (size_t p = 0; f->csv_enc && p < f->np; p++) free(f->csv_enc[p]);
    free(f->csv_enc);
    free(f->csv_len);
    free(f->chain);
    free(f->parts);
    free(f->pre);
    free(f);
    return 0;
}

size_t weft_frame_partitions(const weft_frame *f)
{
    return f ? f->np : 0;
}

static int tgraph_new(tgraph **out)
{
    tgraph *tg = calloc(1, sizeof *tg);
    if (!tg) return WEFT_ENOMEM;
    int rc = weft_graph_create(NULL, &tg->g);
    if (rc) {
        free(tg);
        return rc;
    }
    *out = tg;
    return 0;
}

int weft_frame_from_table(const weft_table *t, size_t nparts, weft_frame **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!t) return WEFT_EINVAL;
    if (nparts == 0) nparts = 1;
    tgraph *tg;
    int rc = tgraph_new(&tg);
    if (rc) return rc;
    weft_frame *f;
    rc = frame_new(tg, NULL, nparts, &f);
    if (rc) {
        weft_graph_destroy(tg->g);
        free(tg);
        return rc;
    }
    size_t base = t->nrows / nparts, extra = t->nrows % nparts, at = 0;
    for (size_t p = 0; p < nparts && !rc; p++) {
        size_t n = base + (p < extra ? 1 : 0);
        weft_table *s;
        void *buf = NULL;
        size_t len;
        rc = weft_table_slice(t, at, at + n, &s);
        if (!rc) rc = weft_table_serialize(s, &buf, &len);
        weft_table_destroy(s);
        if (!rc) {
            weft_arg a = weft_arg_bytes(buf, len);
            rc = weft_graph_call(tg->g, weft__tb_lit, &a, 1, &f->parts[p]);
        }
        free(buf);
        at += n;
    }
    if (rc) {
        weft_frame_destroy(f);
        return rc;
    }
    *out = f;
    return 0;
}

int weft_frame_read_csv(const char *const *paths, size_t n, const weft_csv_options *opts,
                        weft_frame **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!paths || n == 0) return weft__err(WEFT_EINVAL, "weft_frame_read_csv: no files");
    for (size_t i = 0; i < n; i++)
        if (!paths[i]) return weft__err(WEFT_EINVAL, "weft_frame_read_csv: paths[%zu] is NULL", i);
    weft_csv_options none = {0};
    const weft_csv_options *o = opts ? opts : &none;
    if (o->schema && o->n_schema == 0)
        return weft__err(WEFT_EINVAL, "weft_frame_read_csv: empty schema");
    uint64_t *ds = calloc(n, 8), *dl = calloc(n, 8), *sz = calloc(n, 8);
    csv_spec sp;
    memset(&sp, 0, sizeof sp);
    int rc = ds && dl && sz ? 0 : WEFT_ENOMEM;
    if (!rc) rc = weft__csv_prepare(paths, n, o, &sp, ds, dl, sz);
    uint64_t block = o->block_size ? o->block_size : (32u << 20);
    size_t np = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t data = sz[i] > ds[i] ? sz[i] - ds[i] : 0;
        np += data ? (size_t)((data + block - 1) / block) : 1;
    }
    tgraph *tg = NULL;
    weft_frame *f = NULL;
    if (!rc) rc = tgraph_new(&tg);
    if (!rc) {
        rc = frame_new(tg, NULL, np, &f);
        if (rc) {
            weft_graph_destroy(tg->g);
            free(tg);
        }
    }
    if (!rc) {
        f->pre = realloc(f->pre, np * sizeof *f->pre);
        f->csv_enc = calloc(np, sizeof *f->csv_enc);
        f->csv_len = calloc(np, sizeof *f->csv_len);
        if (!f->pre || !f->csv_enc || !f->csv_len) rc = WEFT_ENOMEM;
    }
    size_t p = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        csv_bound init = {0, dl[i] - 1, 0, 0};
        weft_node prev = WEFT_NODE_NONE;
        uint64_t start = ds[i];
        do {
            uint64_t end = start + block < sz[i] ? start + block : sz[i];
            if (end < start) end = start;
            void *enc;
            size_t len;
            rc = weft__csv_chunk_encode(&sp, paths[i], start, end, start == ds[i], &enc, &len);
            if (rc) break;
            f->csv_enc[p] = enc; /* the frame's now */
            f->csv_len[p] = len;
            weft_node scan, bound;
            weft_arg a = weft_arg_bytes(enc, len);
            rc = weft_graph_call(tg->g, weft__csv_scan, &a, 1, &scan);
            weft_arg b[2] = {prev == WEFT_NODE_NONE ? weft_arg_bytes(&init, sizeof init)
                                                    : weft_arg_node(prev),
                             weft_arg_node(scan)};
            if (!rc) rc = weft_graph_call(tg->g, weft__csv_bound, b, 2, &bound);
            weft_arg r[2] = {weft_arg_bytes(enc, len), weft_arg_node(bound)};
            if (!rc) rc = weft_graph_call(tg->g, weft__csv_read, r, 2, &f->parts[p]);
            f->pre[p++] = bound;
            prev = bound;
            start = end;
        } while (!rc && start < sz[i]);
    }
    if (!rc) f->npre = p, f->np = p;
    weft__csv_spec_free(&sp);
    free(ds), free(dl), free(sz);
    if (rc) {
        weft_frame_destroy(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- lazy operations: one node per partition ---- */

typedef struct op_arg {
    weft_task_fn fn;
    const void *lit;
    size_t litlen;
    const void *lit2;
    size_t lit2len;
} op_arg;

/* ---- chains: the per-partition operations of a frame derived from a CSV
 * read, run with the read in one task per range (chain_task below) ----
 *
 * One packed record per operation: u64 kind (CH_*), u64 the task's address,
 * its registered name (pack_str; "" when it has none), u64 the count of
 * literal arguments, each as u64 length + bytes. The task gets the
 * partition as argument 0 and the literals after it, as the graph node of
 * the same operation does; CH_ASSIGN then appends the columns it returns
 * (weft__tb_hstack). */
enum {
    CH_CALL = 1,
    CH_ASSIGN = 2
};

/* g (just made from f) continues f's chain with one operation; nothing when
 * f is not a CSV read or a chain over one. */
static int chain_add(const weft_frame *f, weft_frame *g, uint64_t kind, weft_task_fn fn,
                     const void *const *lits, const size_t *lens, size_t nlits)
{
    if (!f->csv_enc) return 0;
    g->csv_enc = calloc(f->np ? f->np : 1, sizeof *g->csv_enc);
    g->csv_len = calloc(f->np ? f->np : 1, sizeof *g->csv_len);
    if (!g->csv_enc || !g->csv_len) return WEFT_ENOMEM;
    for (size_t p = 0; p < f->np; p++) {
        g->csv_enc[p] = malloc(f->csv_len[p] ? f->csv_len[p] : 1);
        if (!g->csv_enc[p]) return WEFT_ENOMEM;
        memcpy(g->csv_enc[p], f->csv_enc[p], f->csv_len[p]);
        g->csv_len[p] = f->csv_len[p];
    }
    const char *name = weft_task_name(fn);
    pack k = {0};
    pack_bytes(&k, f->chain, f->chainlen);
    pack_u64(&k, kind);
    pack_u64(&k, (uint64_t)(uintptr_t)fn);
    pack_str(&k, name ? name : "");
    pack_u64(&k, nlits);
    for (size_t i = 0; i < nlits; i++) {
        pack_u64(&k, lens[i]);
        pack_bytes(&k, lits[i], lens[i]);
    }
    if (k.oom) {
        free(k.p);
        return WEFT_ENOMEM;
    }
    g->chain = k.p;
    g->chainlen = k.n;
    g->nops = f->nops + 1;
    g->unnamed = f->unnamed || !name;
    return 0;
}

/* A frame whose partition p is fn(part p, literal bytes[, literal 2]). */
static int per_part(const weft_frame *f, weft_task_fn fn, const void *lit, size_t litlen,
                    const void *lit2, size_t lit2len, bool lit2_first, weft_frame **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !fn) return WEFT_EINVAL;
    weft_frame *g;
    int rc = frame_new(f->tg, f, f->np, &g);
    if (rc) return rc;
    const void *lits[2];
    size_t lens[2], nl = 0;
    if (lit2 && lit2_first) lits[nl] = lit2, lens[nl++] = lit2len;
    lits[nl] = lit, lens[nl++] = litlen;
    if (lit2 && !lit2_first) lits[nl] = lit2, lens[nl++] = lit2len;
    rc = chain_add(f, g, CH_CALL, fn, lits, lens, nl);
    for (size_t p = 0; p < f->np && !rc; p++) {
        weft_arg a[3];
        size_t na = 0;
        a[na++] = weft_arg_node(f->parts[p]);
        for (size_t i = 0; i < nl; i++) a[na++] = weft_arg_bytes(lits[i], lens[i]);
        rc = weft_graph_call(f->tg->g, fn, a, na, &g->parts[p]);
    }
    if (rc) {
        weft_frame_destroy(g);
        return rc;
    }
    *out = g;
    return 0;
}

int weft_frame_map_partitions(const weft_frame *f, weft_task_fn fn, const void *arg, size_t arglen,
                              weft_frame **out)
{
    if (arglen && !arg) return WEFT_EINVAL;
    return per_part(f, fn, arg, arglen, NULL, 0, false, out);
}

int weft_frame_assign(const weft_frame *f, weft_task_fn fn, const void *arg, size_t arglen,
                      weft_frame **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    weft_frame *cols;
    int rc = weft_frame_map_partitions(f, fn, arg, arglen, &cols);
    if (rc) return rc;
    weft_frame *g = NULL;
    rc = frame_new(f->tg, f, f->np, &g);
    if (!rc) {
        const void *lits[1] = {arg};
        size_t lens[1] = {arglen};
        rc = chain_add(f, g, CH_ASSIGN, fn, lits, lens, 1);
    }
    for (size_t p = 0; p < f->np && !rc; p++) {
        weft_arg a[2] = {weft_arg_node(f->parts[p]), weft_arg_node(cols->parts[p])};
        rc = weft_graph_call(f->tg->g, weft__tb_hstack, a, 2, &g->parts[p]);
    }
    weft_frame_destroy(cols);
    if (rc) {
        weft_frame_destroy(g);
        return rc;
    }
    *out = g;
    return 0;
}

static int filter_spec(const weft_frame *f, const char *column, uint64_t op, double v,
                       weft_frame **out)
{
    if (!column) {
        if (out) *out = NULL;
        return WEFT_EINVAL;
    }
    pack k = {0};
    pack_str(&k, column);
    pack_u64(&k, op);
    pack_f64(&k, v);
    int rc = k.oom ? WEFT_ENOMEM : per_part(f, weft__tb_filter, k.p, k.n, NULL, 0, false, out);
    free(k.p);
    return rc;
}

int weft_frame_filter(const weft_frame *f, const char *column, weft_frame **out)
{
    return filter_spec(f, column, 0, 0, out);
}

int weft_frame_filter_cmp(const weft_frame *f, const char *column, weft_cmp op, double value,
                          weft_frame **out)
{
    if (op < WEFT_CMP_LT || op > WEFT_CMP_GT) {
        if (out) *out = NULL;
        return WEFT_EINVAL;
    }
    return filter_spec(f, column, (uint64_t)op, value, out);
}

int weft_frame_select(const weft_frame *f, const char *const *names, size_t n, weft_frame **out)
{
    if (!names && n) {
        if (out) *out = NULL;
        return WEFT_EINVAL;
    }
    pack k = {0};
    pack_u64(&k, n);
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) {
            free(k.p);
            if (out) *out = NULL;
            return WEFT_EINVAL;
        }
        pack_str(&k, names[i]);
    }
    int rc = k.oom ? WEFT_ENOMEM : per_part(f, weft__tb_select, k.p, k.n, NULL, 0, false, out);
    free(k.p);
    return rc;
}

int weft_frame_join(const weft_frame *f, const weft_table *small, const char *key,
                    weft_join_kind how, weft_frame **out)
{
    if (!small || !key || (how != WEFT_JOIN_INNER && how != WEFT_JOIN_LEFT)) {
        if (out) *out = NULL;
        return WEFT_EINVAL;
    }
    void *buf;
    size_t len;
    int rc = weft_table_serialize(small, &buf, &len);
    if (rc) return rc;
    pack k = {0};
    pack_str(&k, key);
    pack_u64(&k, (uint64_t)how);
    rc = k.oom ? WEFT_ENOMEM : per_part(f, weft__tb_join, k.p, k.n, buf, len, true, out);
    free(k.p);
    free(buf);
    return rc;
}

/* ---- running: prerequisites, then waves ---- */

typedef int (*consume_fn)(void *arg, size_t part, const void *data, size_t len);

static int run_waves(weft_frame *f, weft_executor *ex, const weft_table_run_options *o,
                     const weft_node *targets, size_t n, consume_fn fn, void *arg)
{
    if (!f || !ex) return WEFT_EINVAL;
    weft_compute_options co = {0};
    co.progress = o ? o->progress : -1;
    if (co.progress == 0) co.progress = -1;
    co.flags = WEFT_COMPUTE_CANCEL_ON_ERROR;
    int rc = 0;
    if (f->npre) rc = weft_graph_compute(f->tg->g, ex, f->pre, f->npre, &co);
    if (rc) return rc;
    size_t k = o && o->in_flight ? o->in_flight : 2 * (size_t)weft_executor_workers(ex);
    if (k == 0) k = 2;
    for (size_t at = 0; at < n && !rc; at += k) {
        size_t m = n - at < k ? n - at : k;
        rc = weft_graph_compute(f->tg->g, ex, targets + at, m, &co);
        for (size_t i = 0; i < m; i++) {
            const void *d;
            size_t len;
            if (!rc) {
                rc = weft_graph_result(f->tg->g, targets[at + i], &d, &len);
                if (!rc) rc = fn(arg, at + i, d, len);
            }
            weft_graph_release(f->tg->g, targets[at + i]);
        }
    }
    return rc == 1 ? 0 : rc; /* 1: the consumer has what it needs (head) */
}

/* Partial nodes: task(part p, literal). */
static int partial_nodes(weft_frame *f, weft_task_fn fn, const void *lit, size_t litlen,
                         weft_node **out)
{
    *out = calloc(f->np ? f->np : 1, sizeof **out);
    if (!*out) return WEFT_ENOMEM;
    int rc = 0;
    for (size_t p = 0; p < f->np && !rc; p++) {
        weft_arg a[2] = {weft_arg_node(f->parts[p]), weft_arg_bytes(lit, litlen)};
        rc = weft_graph_call(f->tg->g, fn, a, lit ? 2 : 1, &(*out)[p]);
    }
    return rc;
}

/* ---- a chain: a range's read and its frame's operations in one task ----
 *
 * chain_task(range, bound, op, chain, literal) parses the range, then runs
 * the chain's operations one after the other in the same task and ends as
 * `op` says: READ outputs the partition, READ_SHARED hands it to the run's
 * gather (gather.c: copied into the result by the task), GROUPBY,
 * DESCRIBE, TOP output that partial. Each operation's task is called as
 * its graph node would call it, argument 0 the partition, then its
 * literals, but the partition is a reference to the task's table
 * (weft__table_ref: weft_table_arg gives the task a table borrowing its
 * columns, no copy) and the task's weft_table_output is captured as a
 * table (the columns it kept still the partition's, the new ones copied),
 * which becomes the partition: nothing is serialized between read and
 * operations. */

/* What a chain's tasks share on an executor that shares memory (the
 * literal holds its address): the result's gather, and the partition's
 * columns as read (the first task's, no rows), to turn a table the gather
 * has copied back into one to parse into (its pages stay faulted in). */
typedef struct chain_run {
    tb_gather *g;
    pthread_mutex_t mu;
    weft_table *shape;
} chain_run;

static void tcol_drop(tcol *c)
{
    if (!c->borrowed) free(c->data), free(c->valid), free(c->chars);
    free(c->name);
    memset(c, 0, sizeof *c);
}

/* `t` with exactly the columns of `shape` (moved from t, in that order;
 * the others freed), ready to parse into, or NULL (t freed) when it lacks
 * one. */
static weft_table *recycle(weft_table *t, const weft_table *shape)
{
    if (!t || !shape) {
        weft_table_destroy(t);
        return NULL;
    }
    tcol *cols = calloc(shape->ncols + 1, sizeof *cols);
    bool *taken = calloc(t->ncols + 1, 1);
    bool ok = cols && taken;
    for (size_t j = 0; j < shape->ncols && ok; j++) {
        ok = false;
        for (size_t k = 0; k < t->ncols && !ok; k++)
            if (!taken[k] && !t->cols[k].borrowed && t->cols[k].type == shape->cols[j].type &&
                !strcmp(t->cols[k].name, shape->cols[j].name)) {
                cols[j] = t->cols[k];
                taken[k] = ok = true;
            }
    }
    if (!ok) {
        free(cols), free(taken);
        weft_table_destroy(t);
        return NULL;
    }
    for (size_t k = 0; k < t->ncols; k++)
        if (!taken[k]) tcol_drop(&t->cols[k]);
    free(t->cols);
    free(taken);
    t->cols = cols;
    t->ncols = shape->ncols;
    t->capcols = shape->ncols + 1;
    t->nrows = 0;
    return t;
}

/* The partition after an operation: `got`'s columns, those it borrowed
 * from `cur` taken back from cur (no copy), the others moved from got;
 * cur's columns got did not keep are freed. */
static int adopt(weft_table *cur, weft_table *got)
{
    tcol *cols = calloc(got->ncols + 1, sizeof *cols);
    size_t *from = calloc(got->ncols + 1, sizeof *from);
    bool *taken = calloc(cur->ncols + 1, 1);
    int rc = cols && from && taken ? 0 : WEFT_ENOMEM;
    /* first which of cur's columns each borrowed one is (the same arrays):
     * nothing moves unless all are found */
    for (size_t j = 0; j < got->ncols && !rc; j++) {
        const tcol *g = &got->cols[j];
        from[j] = SIZE_MAX;
        if (!g->borrowed) continue;
        for (int pass = 0; pass < 2 && from[j] == SIZE_MAX; pass++)
            for (size_t q = 0; q < cur->ncols && from[j] == SIZE_MAX; q++)
                if (!taken[q] && cur->cols[q].data == g->data && cur->cols[q].chars == g->chars &&
                    cur->cols[q].valid == g->valid && (pass || !strcmp(cur->cols[q].name, g->name)))
                    from[j] = q;
        if (from[j] == SIZE_MAX)
            rc = WEFT_EINVAL; /* not cur's: cannot happen, a task sees no other */
        else
            taken[from[j]] = true;
    }
    if (rc) {
        free(cols), free(from), free(taken);
        return rc;
    }
    for (size_t j = 0; j < got->ncols; j++) {
        tcol *g = &got->cols[j];
        if (from[j] == SIZE_MAX) {
            cols[j] = *g;
        } else {
            cols[j] = cur->cols[from[j]];
            free(cols[j].name);
            cols[j].name = g->name; /* the same name, or select's */
            g->name = NULL;
        }
        memset(g, 0, sizeof *g);
    }
    for (size_t k = 0; k < cur->ncols; k++)
        if (!taken[k]) tcol_drop(&cur->cols[k]);
    free(cur->cols);
    free(from), free(taken);
    cur->cols = cols;
    cur->ncols = got->ncols;
    cur->capcols = got->ncols + 1;
    cur->nrows = got->nrows;
    cur->skipped = got->skipped;
    return 0;
}

/* assign: got's columns appended to cur, or replacing cur's of the same
 * name (as weft__tb_hstack); a column got borrowed from cur is cur's own. */
static int assign_cols(weft_ctx *ctx, weft_table *cur, weft_table *got)
{
    if (got->ncols && got->nrows != cur->nrows)
        return weft_ctx_fail(ctx, WEFT_EINVAL,
                             "assign: the function returned %zu rows for a partition of %zu",
                             got->nrows, cur->nrows);
    for (size_t k = 0; k < got->ncols; k++) {
        tcol *g = &got->cols[k];
        if (g->borrowed) continue; /* cur's column itself */
        tcol *old = weft__table_col(cur, g->name);
        if (old) {
            tcol_drop(old);
            *old = *g;
        } else {
            if (cur->ncols == cur->capcols) {
                size_t nc = cur->capcols ? cur->capcols * 2 : 8;
                tcol *p = realloc(cur->cols, nc * sizeof *p);
                if (!p) return weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
                cur->cols = p;
                cur->capcols = nc;
            }
            cur->cols[cur->ncols++] = *g;
        }
        memset(g, 0, sizeof *g);
    }
    return 0;
}

/* Bytes passed to a partial's task (a serialized partition, a literal). */
typedef struct cbuf {
    void *p;
    size_t len;
    bool heap; /* weft__out_alloc's */
} cbuf;

static void cbuf_drop(cbuf *b)
{
    if (b->heap) weft__out_free(b->p);
    memset(b, 0, sizeof *b);
}

static unsigned char ch_nothing[1]; /* an empty output's address (never written) */

/* Runs `fn` on args[0..n) (n <= 4) as a graph node of n arguments runs it
 * (an argument block of pointers), in a context of its own: its output
 * becomes *out, or with `cap` its weft_table_output becomes cap->got. On
 * failure the task's message, named `what`, becomes the chain task's. */
static int ch_call(weft_ctx *ctx, weft_task_fn fn, const char *what, const cbuf *args, size_t n,
                   weft__table_capture *cap, cbuf *out)
{
    memset(out, 0, sizeof *out);
    unsigned char blk[ARGS_HDR + ARGS_ENT * 4];
    args_hdr h = {ARGS_MAGIC, ARGS_REF, (uint32_t)n, 0};
    memcpy(blk, &h, sizeof h);
    for (size_t i = 0; i < n; i++) {
        args_ent e = {(uint64_t)(uintptr_t)args[i].p, args[i].len};
        memcpy(blk + ARGS_HDR + (size_t)ARGS_ENT * i, &e, sizeof e);
    }
    weft_ctx s = *ctx;
    s.out = NULL;
    s.out_len = 0;
    s.out_heap = false;
    s.inl = ch_nothing; /* room for an empty output only */
    s.inl_cap = 0;
    s.msg = NULL;
    s.alloc_out = NULL;
    weft__table_capture *prev = NULL;
    if (cap) {
        cap->ctx = &s;
        cap->got = NULL;
        prev = weft__table_capture_set(cap);
    }
    unsigned gen = weft__err_gen;
    int rc = fn(&s, blk, ARGS_HDR + (size_t)ARGS_ENT * n);
    if (rc > 0) rc = WEFT_ETASK;
    if (cap) weft__table_capture_set(prev);
    cbuf o = {s.out_heap ? s.out : ch_nothing, s.out_len, s.out_heap};
    if (!rc && cap && !cap->got && o.len) {
        /* the task set its output's bytes itself: a serialized table? */
        rc = weft_table_deserialize(o.p, o.len, &cap->got);
        if (rc) weft_ctx_fail(&s, rc, "its output is not a table");
    }
    if (!rc && cap && !cap->got)
        rc = weft_ctx_fail(&s, WEFT_EINVAL, "it output no table (weft_table_output)");
    if (rc) {
        cbuf_drop(&o);
        if (cap) {
            weft_table_destroy(cap->got);
            cap->got = NULL;
        }
        const char *m = s.msg                  ? s.msg
                        : weft__err_gen != gen ? weft_last_error()
                                               : weft_strerror(rc);
        char *msg = strdup(m);
        free(s.msg);
        rc = weft_ctx_fail(ctx, rc, "%s (partition %llu): %s", what, (unsigned long long)ctx->index,
                           msg ? msg : "?");
        free(msg);
        return rc;
    }
    free(s.msg);
    if (cap)
        cbuf_drop(&o);
    else
        *out = o;
    return 0;
}

static _Atomic uint64_t chain_tasks; /* run in this process (tests) */

uint64_t weft__frame_chain_tasks(void)
{
    return atomic_load(&chain_tasks);
}

static int chain_task(weft_ctx *ctx, const void *in, size_t len)
{
    atomic_fetch_add(&chain_tasks, 1);
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
    uint64_t clen = unpack_u64(&u);
    const char *chain = u.p;
    if (!u.bad && (uint64_t)(u.e - u.p) < clen) u.bad = true;
    if (!u.bad) u.p += clen;
    uint64_t nops = unpack_u64(&u);
    chain_run *run = NULL;
    if (op == WEFT__CSV_OP_READ_SHARED) {
        run = (chain_run *)(uintptr_t)unpack_u64(&u);
        if (!run) u.bad = true;
    }
    if (u.bad) return weft_ctx_fail(ctx, WEFT_EINVAL, "chain: bad input");
    /* the rest of u: the last step's literal */
    weft_table *cur = NULL, *reuse = NULL;
    if (run) {
        pthread_mutex_lock(&run->mu);
        const weft_table *shape = run->shape;
        pthread_mutex_unlock(&run->mu);
        reuse = recycle(weft__gather_take(run->g), shape);
    }
    int rc = weft__csv_parse(ctx, range, rl, bound, bl, NULL, 0, false, reuse,
                             run ? weft__gather_pool(run->g) : NULL, &cur);
    if (rc) return rc;
    if (run) {
        pthread_mutex_lock(&run->mu);
        if (!run->shape) weft__table_like(cur, &run->shape); /* NULL: no recycling */
        pthread_mutex_unlock(&run->mu);
    }
    unpack c = {chain, chain + clen, false};
    for (uint64_t i = 0; i < nops && !rc; i++) {
        uint64_t kind = unpack_u64(&c);
        weft_task_fn fn = (weft_task_fn)(uintptr_t)unpack_u64(&c);
        char *name = unpack_str(&c);
        uint64_t nl = unpack_u64(&c);
        unsigned char ref[WEFT__TABLE_REF_LEN];
        weft__table_ref(cur, ref);
        cbuf args[4];
        memset(args, 0, sizeof args);
        args[0] = (cbuf){ref, sizeof ref, false};
        for (uint64_t j = 0; j < nl && j < 3 && !c.bad; j++) {
            args[1 + j].len = (size_t)unpack_u64(&c);
            args[1 + j].p = (void *)(uintptr_t)c.p;
            if (!c.bad && (uint64_t)(c.e - c.p) < args[1 + j].len) c.bad = true;
            if (!c.bad) c.p += args[1 + j].len;
        }
        if (c.bad || !name || nl > 3) {
            free(name);
            rc =
                weft_ctx_fail(ctx, WEFT_EINVAL, "chain: bad operation %llu", (unsigned long long)i);
            break;
        }
        /* in another process (mpi) the address is not this one's: the name */
        if (*name && (rc = weft_task_lookup(name, &fn)) != 0) {
            rc = weft_ctx_fail(ctx, rc, "chain: task '%s': %s", name, weft_last_error());
            free(name);
            break;
        }
        weft__table_capture cap = {NULL, NULL};
        cbuf none;
        rc = ch_call(ctx, fn, *name ? name : "map_partitions task", args, 1 + nl, &cap, &none);
        free(name);
        if (rc) break;
        if (kind == CH_ASSIGN)
            rc = assign_cols(ctx, cur, cap.got);
        else if ((rc = adopt(cur, cap.got)) != 0)
            rc = weft_ctx_fail(ctx, rc, "chain: operation %llu's table", (unsigned long long)i);
        weft_table_destroy(cap.got);
    }
    if (rc) {
        weft_table_destroy(cur);
        return rc;
    }
    if (op == WEFT__CSV_OP_READ_SHARED) {
        size_t p = (size_t)weft_ctx_index(ctx);
        rc = weft__gather_put(run->g, p, cur);
        return rc ? weft_ctx_fail(ctx, rc,
                                  "partition %zu could not be placed in the result (its columns "
                                  "unlike the partitions' before it: a map_partitions function "
                                  "returned another schema?)",
                                  p)
                  : 0;
    }
    if (op == WEFT__CSV_OP_READ) {
        rc = weft_table_output(ctx, cur);
        weft_table_destroy(cur);
        return rc;
    }
    weft_task_fn pf = op == WEFT__CSV_OP_GROUPBY    ? weft__tb_gb_partial
                      : op == WEFT__CSV_OP_DESCRIBE ? weft__tb_describe_partial
                      : op == WEFT__CSV_OP_TOP      ? weft__tb_top_partial
                                                    : NULL;
    if (!pf) {
        weft_table_destroy(cur);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "chain: unknown op %llu", (unsigned long long)op);
    }
    /* the partials read a serialized partition in place (weft__table_view) */
    size_t sz = weft__table_ser_size(cur);
    cbuf args[2] = {{sz ? weft__out_alloc(sz) : NULL, sz, true},
                    {(void *)(uintptr_t)u.p, (size_t)(u.e - u.p), false}};
    if (args[0].p) weft__table_ser_into(cur, args[0].p);
    weft_table_destroy(cur);
    if (!args[0].p)
        return weft_ctx_fail(ctx, sz ? WEFT_ENOMEM : WEFT_EINVAL, "chain: cannot serialize");
    cbuf res;
    rc = ch_call(ctx, pf, "partial", args, op == WEFT__CSV_OP_DESCRIBE ? 1 : 2, NULL, &res);
    cbuf_drop(&args[0]);
    if (rc) return rc;
    if (res.heap && !ctx->alloc_out) { /* the partial's block becomes the output */
        if (ctx->out_heap) weft__out_free(ctx->out);
        ctx->out = res.p;
        ctx->out_len = res.len;
        ctx->out_heap = true;
        return 0;
    }
    rc = weft_ctx_set_output(ctx, res.p, res.len);
    cbuf_drop(&res);
    return rc;
}
WEFT_TASK_REGISTER_AS(chain_task, "weft.table.csv_chain");

/* ---- a frame straight from a CSV read: one task per range, a window ----
 *
 * The ranges' bounds (the prerequisites) are computed first on the graph;
 * then every partition is one task, weft__tb_csv_partial(range, bound, op,
 * literal): the parse and the partial (or the plain read) at once, run by
 * weft_map_stream with at most `in_flight` partitions read and not yet
 * consumed, and consumed in partition order on the calling thread while
 * the workers go on with the next ones (a window, not waves: the workers
 * never wait for the consumer, nor for the slowest partition of a wave). */

/* Whether the executor's tasks run in this address space: then the CSV
 * tasks hand their tables over by pointer (gather.c, the groupby lanes).
 * WEFT_TABLE_SERIALIZE=1 in the environment takes the serialized path on
 * every executor: a diagnostic, for the bench's comparison of the two. */
static bool shares_memory(weft_executor *ex)
{
    const char *e = getenv("WEFT_TABLE_SERIALIZE");
    if (e && *e && strcmp(e, "0")) return false;
    return (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0;
}

/* Whether a frame runs in the window of csv_stream_run: a CSV read, or a
 * chain over one whose tasks the executor can call (a function without a
 * registered name only in this address space). */
static bool streams(const weft_frame *f, weft_executor *ex)
{
    if (!f->csv_enc) return false;
    return !f->unnamed || (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) != 0;
}

typedef struct csv_stream {
    weft_frame *f;
    const void *lit; /* u64 op + the partial's literal */
    size_t litlen;
    pack item;
    consume_fn fn;
    void *arg;
    int err;   /* the first failure: a task's or the consumer's */
    char *msg; /* and its message */
} csv_stream;

static int csv_next(void *arg, uint64_t index, weft_buf *item)
{
    csv_stream *s = arg;
    if (index >= s->f->np) return 0;
    const void *bd;
    size_t bl;
    int rc = weft_graph_result(s->f->tg->g, s->f->pre[index], &bd, &bl);
    if (rc) return rc;
    s->item.n = 0;
    pack_u64(&s->item, s->f->csv_len[index]);
    pack_bytes(&s->item, s->f->csv_enc[index], s->f->csv_len[index]);
    pack_u64(&s->item, bl);
    pack_bytes(&s->item, bd, bl);
    pack_bytes(&s->item, s->lit, s->litlen);
    if (s->item.oom) return WEFT_ENOMEM;
    item->data = s->item.p;
    item->len = s->item.n;
    return 1;
}

static int csv_result(void *arg, uint64_t index, int err, const void *out, size_t len,
                      const char *msg)
{
    csv_stream *s = arg;
    /* a range cancelled because a later one failed first (the workers take
     * ranges out of order): not the error to report, that one comes next */
    if (err == WEFT_ECANCELLED) return 0;
    int rc = err ? err : s->fn(s->arg, (size_t)index, out, len);
    if (rc < 0 && !s->err) {
        s->err = rc;
        s->msg = strdup(err ? (msg ? msg : weft_strerror(err)) : weft_last_error());
    }
    return rc;
}

static int csv_stream_run(weft_frame *f, weft_executor *ex, const weft_table_run_options *o,
                          uint64_t op, const void *lit, size_t litlen, consume_fn fn, void *arg)
{
    weft_compute_options co = {0};
    co.progress = o ? o->progress : -1;
    if (co.progress == 0) co.progress = -1;
    co.flags = WEFT_COMPUTE_CANCEL_ON_ERROR;
    int rc = weft_graph_compute(f->tg->g, ex, f->pre, f->npre, &co);
    if (rc) return rc;
    csv_stream s;
    memset(&s, 0, sizeof s);
    s.f = f;
    s.fn = fn;
    s.arg = arg;
    pack k = {0};
    pack_u64(&k, op);
    if (f->nops) { /* a chain: its operations, then the last step's literal */
        pack_u64(&k, f->chainlen);
        pack_bytes(&k, f->chain, f->chainlen);
        pack_u64(&k, f->nops);
    }
    pack_bytes(&k, lit, lit ? litlen : 0);
    if (k.oom) {
        free(k.p);
        return WEFT_ENOMEM;
    }
    s.lit = k.p;
    s.litlen = k.n;
    weft_map_options mo = WEFT_MAP_OPTIONS_INIT;
    mo.flags = WEFT_MAP_STOP_ON_ERROR;
    mo.chunk_size = 1;
    size_t w = o && o->in_flight ? o->in_flight : 2 * (size_t)weft_executor_workers(ex);
    mo.max_in_flight = w ? w : 2;
    mo.on_result = csv_result;
    mo.arg = &s;
    mo.progress = co.progress;
    rc = weft_map_stream(ex, f->nops ? chain_task : weft__tb_csv_partial, csv_next, &s, &mo, NULL);
    if (rc == 1) rc = 0; /* the consumer has what it needs (head) */
    if (rc && s.err) rc = weft__err(s.err, "%s", s.msg ? s.msg : weft_strerror(s.err));
    free(s.msg);
    free(s.item.p);
    free(k.p);
    return rc;
}

/* A partial per partition, handed to `cf` in partition order: straight from
 * the CSV when the frame is a CSV read (csv_stream_run), else as nodes of
 * task `fn` on the frame's partitions, in waves. */
static int run_partials(weft_frame *f, weft_executor *ex, const weft_table_run_options *o,
                        weft_task_fn fn, uint64_t csv_op, const void *lit, size_t litlen,
                        consume_fn cf, void *carg)
{
    if (!f || !ex) return WEFT_EINVAL;
    if (streams(f, ex)) return csv_stream_run(f, ex, o, csv_op, lit, litlen, cf, carg);
    weft_node *nodes = NULL;
    int rc = partial_nodes(f, fn, lit, litlen, &nodes);
    if (!rc) rc = run_waves(f, ex, o, nodes, f->np, cf, carg);
    free(nodes);
    return rc;
}

typedef struct collect {
    weft_table **t;
    size_t n, rows, want;
} collect;

static int collect_part(void *arg, size_t part, const void *d, size_t len)
{
    (void)part;
    collect *c = arg;
    weft_table *t;
    int rc = weft_table_deserialize(d, len, &t);
    if (rc) return weft__err(rc, "a partition's output is not a table");
    c->t[c->n++] = t;
    c->rows += t->nrows;
    return c->want && c->rows >= c->want ? 1 : 0;
}

static void collect_free(collect *c)
{
    for (size_t i = 0; i < c->n; i++) weft_table_destroy(c->t[i]);
    free(c->t);
}

/* compute and head: each partition's serialized rows are appended to one
 * table as they arrive, one copy (no partition table in between). */
typedef struct gather {
    weft_table *all;
    size_t want;
    size_t np; /* the partitions to come (compute: the result is sized from them) */
} gather;

static int gather_part(void *arg, size_t part, const void *d, size_t len)
{
    gather *g = arg;
    int rc = weft__table_append_serialized_est(g->all, d, len, part, g->np);
    if (rc == WEFT_EINVAL)
        return weft__err(rc,
                         "partition %zu's output is not a table, or its columns are unlike the "
                         "partitions' before it (a map_partitions function returned another "
                         "schema?)",
                         part);
    if (rc) return rc;
    return g->want && g->all->nrows >= g->want ? 1 : 0;
}

/* The tables a run keeps for reuse: every partition in flight, plus one
 * being parsed per worker. */
static size_t pool_size(weft_executor *ex, const weft_table_run_options *o)
{
    size_t w = (size_t)weft_executor_workers(ex);
    size_t k = o && o->in_flight ? o->in_flight : 2 * w;
    return (k ? k : 2) + w + 1;
}

static int none_consume(void *arg, size_t part, const void *d, size_t len)
{
    (void)arg, (void)part, (void)d, (void)len;
    return 0;
}

/* compute of a CSV read on threads or serial: the tasks parse into pooled
 * tables and copy them into the one result themselves (gather.c). */
static int compute_shared(weft_frame *f, weft_executor *ex, const weft_table_run_options *opts,
                          weft_table **out)
{
    tb_gather *g;
    int rc = weft__gather_create(f->np, pool_size(ex, opts), &g);
    if (rc) return rc;
    uint64_t ptr = (uint64_t)(uintptr_t)g;
    rc =
        csv_stream_run(f, ex, opts, WEFT__CSV_OP_READ_SHARED, &ptr, sizeof ptr, none_consume, NULL);
    if (!rc) rc = weft__gather_finish(g, out);
    weft__gather_destroy(g);
    return rc;
}

/* compute of a chain over a CSV read on threads or serial: as
 * compute_shared, each task running the chain's operations between its
 * parse and its hand-over, parsing into the tables the gather has copied
 * (their pages stay faulted in: chain_task). */
static int compute_chain_shared(weft_frame *f, weft_executor *ex,
                                const weft_table_run_options *opts, weft_table **out)
{
    chain_run run;
    memset(&run, 0, sizeof run);
    if (pthread_mutex_init(&run.mu, NULL)) return WEFT_ENOMEM;
    int rc = weft__gather_create(f->np, pool_size(ex, opts), &run.g);
    uint64_t ptr = (uint64_t)(uintptr_t)&run;
    if (!rc)
        rc = csv_stream_run(f, ex, opts, WEFT__CSV_OP_READ_SHARED, &ptr, sizeof ptr, none_consume,
                            NULL);
    if (!rc) rc = weft__gather_finish(run.g, out);
    weft__gather_destroy(run.g);
    weft_table_destroy(run.shape);
    pthread_mutex_destroy(&run.mu);
    return rc;
}

int weft_frame_compute(weft_frame *f, weft_executor *ex, const weft_table_run_options *opts,
                       weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex) return WEFT_EINVAL;
    if (streams(f, ex) && shares_memory(ex))
        return f->nops ? compute_chain_shared(f, ex, opts, out) : compute_shared(f, ex, opts, out);
    gather g = {NULL, 0, f->np};
    int rc = weft_table_create(&g.all);
    /* a CSV read, or a chain over one: one task per range, the result
     * sized from the first */
    if (!rc && streams(f, ex))
        rc = csv_stream_run(f, ex, opts, WEFT__CSV_OP_READ, NULL, 0, gather_part, &g);
    else if (!rc)
        rc = run_waves(f, ex, opts, f->parts, f->np, gather_part, &g);
    if (rc) {
        weft_table_destroy(g.all);
        return rc;
    }
    *out = g.all;
    return 0;
}

int weft_frame_head(weft_frame *f, size_t n, weft_executor *ex, const weft_table_run_options *opts,
                    weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex) return WEFT_EINVAL;
    gather g = {NULL, n ? n : 1, 0};
    weft_table_run_options o = opts ? *opts : (weft_table_run_options){0};
    if (!o.in_flight) o.in_flight = 1; /* in order, one at a time: stop as soon as enough */
    int rc = weft_table_create(&g.all);
    if (!rc && streams(f, ex))
        rc = csv_stream_run(f, ex, &o, WEFT__CSV_OP_READ, NULL, 0, gather_part, &g);
    else if (!rc)
        rc = run_waves(f, ex, &o, f->parts, f->np, gather_part, &g);
    if (!rc) rc = weft_table_slice(g.all, 0, n < g.all->nrows ? n : g.all->nrows, out);
    weft_table_destroy(g.all);
    return rc;
}

static int gb_consume(void *arg, size_t part, const void *d, size_t len)
{
    int rc = weft__gb_lanes_put_serialized(arg, part, d, len);
    return rc ? weft__err(rc, "groupby: merging partition %zu's partial failed", part) : 0;
}

int weft_frame_groupby(weft_frame *f, const char *const *keys, size_t nkeys, const weft_agg *aggs,
                       size_t naggs, weft_executor *ex, const weft_table_run_options *opts,
                       weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex || !keys || nkeys == 0 || (!aggs && naggs))
        return weft__err(WEFT_EINVAL, "weft_frame_groupby: needs a frame, an executor and keys");
    for (size_t i = 0; i < nkeys; i++)
        if (!keys[i]) return WEFT_EINVAL;
    for (size_t i = 0; i < naggs; i++)
        if (!aggs[i].column || aggs[i].kind < WEFT_AGG_COUNT || aggs[i].kind > WEFT_AGG_MEDIAN)
            return weft__err(WEFT_EINVAL, "weft_frame_groupby: aggs[%zu] is not valid", i);
    void *spec;
    size_t len;
    int rc = weft__gb_spec(keys, nkeys, aggs, naggs, &spec, &len);
    if (rc) return rc;
    gb_lanes *L = NULL;
    rc = weft__gb_lanes_create(spec, len, f->np, pool_size(ex, opts), &L);
    if (!rc && f->csv_enc && !f->nops && shares_memory(ex)) {
        /* threads, serial: each task folds its partial into its lane */
        pack k = {0};
        pack_u64(&k, (uint64_t)(uintptr_t)L);
        pack_bytes(&k, spec, len);
        rc = k.oom ? WEFT_ENOMEM
                   : csv_stream_run(f, ex, opts, WEFT__CSV_OP_GROUPBY_SHARED, k.p, k.n,
                                    none_consume, NULL);
        free(k.p);
    } else if (!rc) {
        rc = run_partials(f, ex, opts, weft__tb_gb_partial, WEFT__CSV_OP_GROUPBY, spec, len,
                          gb_consume, L);
    }
    if (!rc) rc = weft__gb_lanes_finish(L, out);
    if (rc == WEFT_EAGAIN)
        rc = weft__err(WEFT_EINVAL, "weft_frame_groupby: the frame has no partitions");
    free(spec);
    weft__gb_lanes_destroy(L);
    return rc;
}

static int ds_consume(void *arg, size_t part, const void *d, size_t len)
{
    int rc = weft__ds_acc_merge(arg, d, len);
    return rc ? weft__err(rc, "describe: merging partition %zu's partial failed", part) : 0;
}

int weft_frame_describe(weft_frame *f, weft_executor *ex, const weft_table_run_options *opts,
                        weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex) return WEFT_EINVAL;
    ds_acc *acc = NULL;
    int rc = weft__ds_acc_create(&acc);
    if (!rc)
        rc = run_partials(f, ex, opts, weft__tb_describe_partial, WEFT__CSV_OP_DESCRIBE, NULL, 0,
                          ds_consume, acc);
    if (!rc) rc = weft__ds_acc_finish(acc, out);
    weft__ds_acc_destroy(acc);
    return rc;
}

typedef struct top_state {
    weft_table *best;
    const char *column;
    size_t n;
    bool largest;
} top_state;

static int top_consume(void *arg, size_t part, const void *d, size_t len)
{
    (void)part;
    top_state *s = arg;
    weft_table *t, *all, *next;
    int rc = weft_table_deserialize(d, len, &t);
    if (rc) return rc;
    if (!s->best) {
        s->best = t;
        return 0;
    }
    const weft_table *two[2] = {s->best, t};
    rc = weft_table_concat(two, 2, &all);
    weft_table_destroy(t);
    if (rc) return rc;
    rc = weft__top_finish(all, s->column, s->n, s->largest, &next);
    weft_table_destroy(all);
    if (rc) return rc;
    weft_table_destroy(s->best);
    s->best = next;
    return 0;
}

static int top(weft_frame *f, size_t n, const char *column, bool largest, weft_executor *ex,
               const weft_table_run_options *opts, weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex || !column) return WEFT_EINVAL;
    pack k = {0};
    pack_str(&k, column);
    pack_u64(&k, n);
    pack_u64(&k, largest);
    if (k.oom) return WEFT_ENOMEM;
    top_state s = {NULL, column, n, largest};
    int rc = run_partials(f, ex, opts, weft__tb_top_partial, WEFT__CSV_OP_TOP, k.p, k.n,
                          top_consume, &s);
    if (!rc && !s.best) rc = weft__err(WEFT_EINVAL, "the frame has no partitions");
    if (!rc)
        *out = s.best;
    else
        weft_table_destroy(s.best);
    free(k.p);
    return rc;
}

int weft_frame_nlargest(weft_frame *f, size_t n, const char *column, weft_executor *ex,
                        const weft_table_run_options *opts, weft_table **out)
{
    return top(f, n, column, true, ex, opts, out);
}

int weft_frame_nsmallest(weft_frame *f, size_t n, const char *column, weft_executor *ex,
                         const weft_table_run_options *opts, weft_table **out)
{
    return top(f, n, column, false, ex, opts, out);
}

int weft_frame_sort(weft_frame *f, const char *column, bool descending, weft_executor *ex,
                    const weft_table_run_options *opts, weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex || !column) return WEFT_EINVAL;
    pack k = {0};
    pack_str(&k, column);
    pack_u64(&k, descending);
    if (k.oom) return WEFT_ENOMEM;
    weft_node *nodes = NULL;
    collect c = {calloc(f->np ? f->np : 1, sizeof(weft_table *)), 0, 0, 0};
    int rc = c.t ? partial_nodes(f, weft__tb_sort_partial, k.p, k.n, &nodes) : WEFT_ENOMEM;
    if (!rc) rc = run_waves(f, ex, opts, nodes, f->np, collect_part, &c);
    if (!rc) rc = weft__sort_merge(c.t, c.n, column, descending, out);
    collect_free(&c);
    free(nodes);
    free(k.p);
    return rc;
}

/* ---- sorting past the memory bound (sort.c) ---- */

typedef struct sort_runs {
    uint64_t rows, stored, raw;
} sort_runs;

static int run_consume(void *arg, size_t part, const void *d, size_t len)
{
    sort_runs *s = arg;
    uint64_t v[4];
    if (len != sizeof v) return weft__err(WEFT_EINVAL, "sort: partition %zu's run is bad", part);
    memcpy(v, d, sizeof v);
    s->rows += v[0];
    s->stored += v[2];
    s->raw += v[3];
    return 0;
}

int weft_frame_sort_each(weft_frame *f, const char *column, bool descending,
                         const weft_sort_options *sopts, weft_executor *ex,
                         const weft_table_run_options *opts, weft_table_sink_fn fn, void *arg)
{
    if (!f || !column || !ex || !fn)
        return weft__err(WEFT_EINVAL, "weft_frame_sort_each: needs a frame, a column, an "
                                      "executor and a sink");
    weft_sort_options so = sopts ? *sopts : (weft_sort_options){0};
    size_t mem = so.memory_bytes ? so.memory_bytes : ((size_t)64 << 20);
    size_t block = mem / 128;
    if (block < ((size_t)16 << 10)) block = (size_t)16 << 10;
    if (block > ((size_t)4 << 20)) block = (size_t)4 << 20;
    size_t fanin = mem / (4 * block);
    const char *tmp = so.tmp_dir ? so.tmp_dir : getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    char *dir = NULL;
    if (asprintf(&dir, "%s/weft-sort-XXXXXX", tmp) < 0) return WEFT_ENOMEM;
    if (!mkdtemp(dir)) {
        int e = errno;
        free(dir);
        return weft__err(-e, "weft_frame_sort_each: cannot make a directory in %s: %s", tmp,
                         strerror(e));
    }
    char **paths = calloc(f->np ? f->np : 1, sizeof *paths);
    weft_node *nodes = calloc(f->np ? f->np : 1, sizeof *nodes);
    int rc = paths && nodes ? 0 : WEFT_ENOMEM;
    for (size_t p = 0; p < f->np && !rc; p++) {
        if (asprintf(&paths[p], "%s/run-%zu", dir, p) < 0) {
            paths[p] = NULL;
            rc = WEFT_ENOMEM;
            break;
        }
        pack k = {0};
        pack_str(&k, column);
        pack_str(&k, paths[p]);
        pack_u64(&k, descending);
        pack_u64(&k, !so.no_compress);
        pack_u64(&k, block);
        weft_arg a[2] = {weft_arg_node(f->parts[p]), weft_arg_bytes(k.p, k.n)};
        rc = k.oom ? WEFT_ENOMEM : weft_graph_call(f->tg->g, weft__tb_sort_run, a, 2, &nodes[p]);
        free(k.p);
    }
    sort_runs sr = {0, 0, 0};
    if (!rc) rc = run_waves(f, ex, opts, nodes, f->np, run_consume, &sr);
    if (!rc) {
        /* the merge frees and removes the run files */
        rc = weft__sort_merge_runs(paths, f->np, dir, column, descending, block, fanin,
                                   !so.no_compress, so.chunk_rows, fn, arg);
        if (rc == 1) rc = 0;
    } else {
        for (size_t p = 0; paths && p < f->np; p++)
            if (paths[p]) unlink(paths[p]), free(paths[p]);
    }
    rmdir(dir);
    free(dir);
    free(paths);
    free(nodes);
    return rc;
}

/* ---- writing ---- */

typedef struct csv_out {
    FILE *f;
    const char *path;
} csv_out;

static int csv_consume(void *arg, size_t part, const void *d, size_t len)
{
    (void)part;
    csv_out *o = arg;
    if (o->f && len && fwrite(d, 1, len, o->f) != len)
        return weft__err(-EIO, "%s: write failed", o->path);
    return 0;
}

int weft_frame_write_csv(weft_frame *f, const char *path, const weft_csv_write_options *wopts,
                         weft_executor *ex, const weft_table_run_options *opts)
{
    if (!f || !path || !ex) return WEFT_EINVAL;
    weft_csv_write_options w = wopts ? *wopts : (weft_csv_write_options){0};
    const char *star = strchr(path, '*');
    if (w.one_per_partition && !star)
        return weft__err(WEFT_EINVAL,
                         "weft_frame_write_csv: '%s' has no '*' for the partition number", path);
    weft_node *nodes = calloc(f->np ? f->np : 1, sizeof *nodes);
    if (!nodes) return WEFT_ENOMEM;
    int rc = 0;
    for (size_t p = 0; p < f->np && !rc; p++) {
        pack k = {0};
        char file[4096] = "";
        if (w.one_per_partition)
            snprintf(file, sizeof file, "%.*s%zu%s", (int)(star - path), path, p, star + 1);
        pack_u64(&k, !w.no_header && (w.one_per_partition || p == 0));
        pack_u64(&k, (uint64_t)(unsigned char)(w.delimiter ? w.delimiter : ','));
        pack_str(&k, w.na_rep ? w.na_rep : "");
        pack_str(&k, file);
        weft_arg a[2] = {weft_arg_node(f->parts[p]), weft_arg_bytes(k.p, k.n)};
        rc = k.oom ? WEFT_ENOMEM : weft_graph_call(f->tg->g, weft__tb_csv_part, a, 2, &nodes[p]);
        free(k.p);
    }
    csv_out o = {NULL, path};
    if (!rc && !w.one_per_partition) {
        o.f = fopen(path, "wb");
        if (!o.f) rc = weft__err(-errno, "%s: %s", path, strerror(errno));
    }
    if (!rc) rc = run_waves(f, ex, opts, nodes, f->np, csv_consume, &o);
    if (o.f && fclose(o.f) && !rc) rc = weft__err(-EIO, "%s: close failed", path);
    free(nodes);
    return rc;
}

typedef struct npy_out {
    const char *dir;
    size_t ncols;
    FILE **f;
    char **name;
    weft_col_type *type;
    uint64_t *n;
} npy_out;

static int npy_consume(void *arg, size_t part, const void *d, size_t len)
{
    (void)part;
    npy_out *o = arg;
    weft_table *t;
    int rc = weft_table_deserialize(d, len, &t);
    if (rc) return rc;
    if (!o->f) {
        for (size_t k = 0; k < t->ncols; k++) o->ncols += t->cols[k].type != WEFT_COL_TEXT;
        o->f = calloc(o->ncols + 1, sizeof *o->f);
        o->name = calloc(o->ncols + 1, sizeof *o->name);
        o->type = calloc(o->ncols + 1, sizeof *o->type);
        o->n = calloc(o->ncols + 1, sizeof *o->n);
        if (!o->f || !o->name || !o->type || !o->n) rc = WEFT_ENOMEM;
        size_t j = 0;
        for (size_t k = 0; k < t->ncols && !rc; k++) {
            if (t->cols[k].type == WEFT_COL_TEXT) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.npy", o->dir, t->cols[k].name);
            o->name[j] = strdup(t->cols[k].name);
            o->type[j] = t->cols[k].type;
            o->f[j] = fopen(path, "wb");
            if (!o->f[j]) rc = weft__err(-errno, "%s: %s", path, strerror(errno));
            char hdr[128];
            weft__npy_header(hdr, o->type[j], 0);
            if (!rc && fwrite(hdr, 1, 128, o->f[j]) != 128)
                rc = weft__err(-EIO, "%s: write failed", path);
            j++;
        }
    }
    for (size_t j = 0; j < o->ncols && !rc; j++) {
        const tcol *c = weft__table_col(t, o->name[j]);
        if (!c || c->type != o->type[j]) {
            rc = weft__err(WEFT_EINVAL, "write_npy: partition %zu lacks column '%s'", part,
                           o->name[j]);
            break;
        }
        if (c->valid && c->type != WEFT_COL_DOUBLE)
            for (size_t i = 0; i < t->nrows && !rc; i++)
                if (!c->valid[i])
                    rc = weft__err(WEFT_EINVAL,
                                   "write_npy: column '%s' has a missing value (row %zu of "
                                   "partition %zu); numpy's %s has none",
                                   o->name[j], i, part, weft_col_type_name(c->type));
        size_t w = weft__tcol_width(c->type);
        if (!rc && t->nrows && fwrite(c->data, w, t->nrows, o->f[j]) != t->nrows)
            rc = weft__err(-EIO, "write_npy: write of '%s' failed", o->name[j]);
        o->n[j] += t->nrows;
    }
    weft_table_destroy(t);
    return rc;
}

int weft_frame_write_npy(weft_frame *f, const char *dir, weft_executor *ex,
                         const weft_table_run_options *opts)
{
    if (!f || !dir || !ex) return WEFT_EINVAL;
    npy_out o = {dir, 0, NULL, NULL, NULL, NULL};
    int rc = run_waves(f, ex, opts, f->parts, f->np, npy_consume, &o);
    for (size_t j = 0; j < o.ncols; j++) {
        if (!o.f[j]) continue;
        char hdr[128];
        weft__npy_header(hdr, o.type[j], o.n[j]);
        if (!rc && (fseek(o.f[j], 0, SEEK_SET) || fwrite(hdr, 1, 128, o.f[j]) != 128))
            rc = weft__err(-EIO, "write_npy: header of '%s' failed", o.name[j]);
        if (fclose(o.f[j]) && !rc)
            rc = weft__err(-EIO, "write_npy: close of '%s' failed", o.name[j]);
        free(o.name[j]);
    }
    free(o.f), free(o.name), free(o.type), free(o.n);
    return rc;
}

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
 * into the lanes (ops.c): the caller only waits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/backend.h"
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
    for (size_t p = 0; p < f->np && !rc; p++) {
        weft_arg a[3];
        size_t na = 0;
        a[na++] = weft_arg_node(f->parts[p]);
        if (lit2 && lit2_first) a[na++] = weft_arg_bytes(lit2, lit2len);
        a[na++] = weft_arg_bytes(lit, litlen);
        if (lit2 && !lit2_first) a[na++] = weft_arg_bytes(lit2, lit2len);
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
    weft_frame *g;
    rc = frame_new(f->tg, f, f->np, &g);
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

/* ---- a frame straight from a CSV read: one task per range, a window ----
 *
 * The ranges' bounds (the prerequisites) are computed first on the graph;
 * then every partition is one task, weft__tb_csv_partial(range, bound, op,
 * literal): the parse and the partial (or the plain read) at once, run by
 * weft_map_stream with at most `in_flight` partitions read and not yet
 * consumed, and consumed in partition order on the calling thread while
 * the workers go on with the next ones (a window, not waves: the workers
 * never wait for the consumer, nor for the slowest partition of a wave). */

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
    pack_bytes(&k, lit, lit ? litlen : 0);
    if (k.oom) return WEFT_ENOMEM;
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
    rc = weft_map_stream(ex, weft__tb_csv_partial, csv_next, &s, &mo, NULL);
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
    if (f->csv_enc) return csv_stream_run(f, ex, o, csv_op, lit, litlen, cf, carg);
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

int weft_frame_compute(weft_frame *f, weft_executor *ex, const weft_table_run_options *opts,
                       weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!f || !ex) return WEFT_EINVAL;
    if (f->csv_enc && shares_memory(ex)) return compute_shared(f, ex, opts, out);
    gather g = {NULL, 0, f->np};
    int rc = weft_table_create(&g.all);
    /* a CSV read: one task per range, the result sized from the first */
    if (!rc && f->csv_enc)
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
    if (!rc) rc = run_waves(f, ex, &o, f->parts, f->np, gather_part, &g);
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
    if (!rc && f->csv_enc && shares_memory(ex)) {
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

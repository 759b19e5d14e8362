/* pieces.c : range loops on the processes and mpi backends.
 *
 * The loop's tree is cut at one level into pieces (aligned nodes); each
 * piece is one task, "weft.range.piece", submitted with a header, the
 * body's registered name, the identity and `arg` (opts.arg_size bytes). In
 * the worker the task finds the body by name, rebuilds the same leaves from
 * (begin, n, log_leaf) and walks its node serially (tree.c): a for body
 * writes to shared memory, a reduction returns the node's value as the
 * task's output. The caller combines the pieces' values in the tree above
 * them, so the bits are those of every other level.
 *
 * Pieces: AUTO and STATIC take about 8 per worker (STATIC one per worker),
 * DYNAMIC one per leaf up to 2^16; always whole nodes. The first error, or
 * the cancel flag, cancels the pieces not yet started. */
#include <stdio.h>
#include <stdlib.h>

#include "range/range_internal.h"

#define PIECE_MAGIC 0x45474e52u /* "RNGE" */
#define MAX_LOG_PIECES 16

typedef struct piece_hdr {
    uint32_t magic;
    uint32_t reduce;
    int64_t begin;
    uint64_t n;
    uint64_t a, b;
    uint64_t vsize;
    uint64_t arg_len;
    int32_t log_leaf;
    uint32_t name_len; /* without the NUL that follows it */
} piece_hdr;

static size_t pad16(size_t x)
{
    return (x + 15) & ~(size_t)15;
}

/* ---- the worker side ---- */

static int range_piece(weft_ctx *ctx, const void *in, size_t len)
{
    piece_hdr h;
    if (len < sizeof h) return weft_ctx_fail(ctx, WEFT_EINVAL, "weft.range.piece: short input");
    memcpy(&h, in, sizeof h);
    const unsigned char *p = (const unsigned char *)in + sizeof h;
    size_t name_sz = pad16((size_t)h.name_len + 1), id_sz = pad16(h.reduce ? h.vsize : 0);
    if (h.magic != PIECE_MAGIC || h.log_leaf < 0 || h.log_leaf > WEFT__RANGE_LOG_LEAVES_MAX ||
        h.a >= h.b || h.b > ((uint64_t)1 << h.log_leaf) || h.name_len > 4096 ||
        h.vsize > ((size_t)1 << 30) || h.arg_len > len ||
        len != sizeof h + name_sz + id_sz + h.arg_len || p[h.name_len] != 0)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "weft.range.piece: malformed input");
    weft__range_entry e;
    if (weft__range_find_name((const char *)p, &e) || (h.reduce ? !e.rbody : !e.body))
        return weft_ctx_fail(ctx, WEFT_ENOTREG,
                             "weft.range.piece: no range body '%s' is registered in this worker",
                             (const char *)p);
    weft__rloop L;
    memset(&L, 0, sizeof L);
    L.reduce = h.reduce != 0;
    L.begin = h.begin;
    L.n = h.n;
    L.log_leaf = h.log_leaf;
    L.nleaf = (uint64_t)1 << h.log_leaf;
    L.q = h.n >> h.log_leaf;
    L.r = h.n & (L.nleaf - 1);
    L.body = e.body;
    L.rbody = e.rbody;
    L.combine = e.combine;
    L.vsize = h.vsize;
    L.stride = pad16(h.vsize);
    atomic_init(&L.err, 0);
    /* copies, 16-byte aligned: the input's own alignment is not known */
    size_t levels = (size_t)weft__rloop_levels(h.a, h.b);
    size_t total = id_sz + pad16(h.arg_len) + (L.reduce ? (levels + 1) * L.stride : 0);
    unsigned char *mem = aligned_alloc(WEFT__RANGE_ALIGN, total ? total : 16);
    if (!mem) return weft_ctx_fail(ctx, WEFT_ENOMEM, "weft.range.piece: out of memory");
    unsigned char *ident = mem, *arg = mem + id_sz, *vals = arg + pad16(h.arg_len);
    if (L.reduce) memcpy(ident, p + name_sz, h.vsize);
    if (h.arg_len) memcpy(arg, p + name_sz + id_sz, h.arg_len);
    L.identity = ident;
    L.arg = h.arg_len ? arg : NULL;
    weft__rloop_walk(&L, h.a, h.b, L.reduce ? vals : NULL, vals + L.stride);
    int rc = atomic_load(&L.err);
    if (rc == 0 && L.reduce)
        rc = weft_ctx_set_output(ctx, vals, h.vsize);
    else if (rc)
        rc = weft_ctx_fail(ctx, rc, "%s", L.msg);
    free(mem);
    return rc;
}
WEFT_TASK_REGISTER_AS(range_piece, "weft.range.piece");

/* ---- the caller side ---- */

static void cancel_all(weft_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++) weft_future_cancel(fs[i]); /* running ones go on */
}

static int log_pieces(const weft__rloop *L, int workers)
{
    int want;
    if (L->part == WEFT_PARTITION_DYNAMIC) {
        want = L->log_leaf < MAX_LOG_PIECES ? L->log_leaf : MAX_LOG_PIECES;
    } else {
        uint64_t target =
            (uint64_t)(workers > 0 ? workers : 1) * (L->part == WEFT_PARTITION_STATIC ? 1u : 8u);
        want = 0;
        while (((uint64_t)1 << want) < target) want++;
    }
    return want < L->log_leaf ? want : L->log_leaf;
}

int weft__range_remote_run(weft__rloop *L, size_t arg_size, void *out)
{
    const char *who = L->reduce ? "weft_parallel_reduce" : "weft_parallel_for";
    weft__range_entry e;
    int rc = weft__range_find_body(L->body, L->rbody, &e, who);
    if (rc) return rc;
    if (!L->arg) arg_size = 0;
    if (L->arg && arg_size == 0)
        return weft__err(WEFT_EINVAL,
                         "%s: `arg` is not NULL but opts.arg_size is 0: the processes and mpi "
                         "backends copy arg_size bytes of it to the workers",
                         who);
    int d = log_pieces(L, weft_executor_workers(L->ex));
    size_t k = (size_t)1 << d;
    uint64_t span = L->nleaf >> d;
    size_t name_len = strlen(e.name), name_sz = pad16(name_len + 1);
    size_t id_sz = pad16(L->reduce ? L->vsize : 0);
    size_t in_len = sizeof(piece_hdr) + name_sz + id_sz + arg_size;
    unsigned char *in = calloc(1, in_len);
    weft_future **fs = calloc(k, sizeof *fs);
    unsigned char *vals = L->reduce ? aligned_alloc(WEFT__RANGE_ALIGN, k * L->stride) : NULL;
    if (!in || !fs || (L->reduce && !vals)) {
        free(in);
        free(fs);
        free(vals);
        return weft__err(WEFT_ENOMEM, "%s: out of memory", who);
    }
    piece_hdr h = {PIECE_MAGIC, L->reduce, L->begin, L->n,        0,
                   0,           L->vsize,  arg_size, L->log_leaf, (uint32_t)name_len};
    memcpy(in + sizeof h, e.name, name_len + 1);
    if (L->reduce) memcpy(in + sizeof h + name_sz, L->identity, L->vsize);
    if (arg_size) memcpy(in + sizeof h + name_sz + id_sz, L->arg, arg_size);
    int err = 0;
    char msg[256] = "";
    size_t nsub = 0;
    for (; nsub < k; nsub++) {
        if (weft__rloop_stopped(L)) break;
        h.a = nsub * span;
        h.b = h.a + span;
        memcpy(in, &h, sizeof h);
        rc = weft_submit(L->ex, range_piece, in, in_len, &fs[nsub]);
        if (rc) {
            err = rc;
            snprintf(msg, sizeof msg, "%s: %s", who, weft_last_error());
            break;
        }
    }
    /* wait, watching for the first error and the cancel flag */
    bool stopping = err != 0;
    if (stopping) cancel_all(fs, nsub);
    for (;;) {
        size_t nd = 0;
        int w =
            weft_wait(fs, nsub, stopping ? WEFT_WAIT_ALL : WEFT_WAIT_FIRST_ERROR, 0.02, NULL, &nd);
        if (w == WEFT_ETIMEDOUT) {
            if (!stopping && weft__rloop_stopped(L)) {
                stopping = true;
                cancel_all(fs, nsub);
            }
            continue;
        }
        if (w < 0) { /* cannot wait here: the results below wait one by one */
            if (!err) {
                err = w;
                snprintf(msg, sizeof msg, "%s: %s", who, weft_last_error());
            }
            cancel_all(fs, nsub);
            break;
        }
        if (nd == nsub) break;
        stopping = true; /* one failed: the rest are not to start */
        cancel_all(fs, nsub);
    }
    /* results, in piece order; the first real error wins over cancellations */
    int cancelled = 0;
    for (size_t i = 0; i < nsub; i++) {
        const void *data = NULL;
        size_t len = 0;
        rc = weft_future_result(fs[i], WEFT_FOREVER, &data, &len);
        if (rc == WEFT_ECANCELLED) {
            cancelled = rc;
        } else if (rc) {
            if (!err) {
                err = rc;
                const char *m = weft_future_error(fs[i]);
                snprintf(msg, sizeof msg, "%s: %s", who, m ? m : weft_strerror(rc));
            }
        } else if (L->reduce) {
            if (len != L->vsize) {
                if (!err) {
                    err = WEFT_ECRASHED;
                    snprintf(msg, sizeof msg, "%s: a piece returned %zu bytes, not %zu", who, len,
                             L->vsize);
                }
            } else {
                memcpy(vals + i * L->stride, data, len);
            }
        }
        weft_future_release(fs[i]);
    }
    int lerr = atomic_load(&L->err);
    if (!err && lerr) {
        err = lerr;
        snprintf(msg, sizeof msg, "%s: %s", who, L->msg);
    }
    if (!err && nsub < k) err = WEFT_ECANCELLED;
    if (!err && cancelled) err = cancelled;
    if (!err && L->reduce) {
        weft__rloop_combine_tree(L, vals, k);
        memcpy(out, vals, L->vsize);
    }
    free(in);
    free(fs);
    free(vals);
    if (err && msg[0]) return weft__err(err, "%s", msg);
    if (err) return weft__err(err, "%s: the loop was cancelled", who);
    return 0;
}

/* sort.c : the external merge sort of weft_frame_sort_each.
 *
 * Phase 1, runs (a graph task per partition, weft__tb_sort_run): the
 * partition's rows are ordered by the key (stable: ties in row order;
 * missing values, and NaN, last in row order) and written to its own run
 * file as blocks of about `block` bytes. A block is a serialized weft_table
 * (table.c's partition format) behind a 24-byte header: u64 serialized
 * bytes, u64 stored bytes, u64 flags (1 = the stored bytes are one zstd
 * frame). Only the row order (8 bytes a row) and one block are made besides
 * the partition, and the task hands back 32 bytes (rows, blocks, stored and
 * serialized bytes): the caller never holds a partition.
 *
 * Phase 2, merge (the caller's thread): runs are merged k at a time by a
 * binary heap of their current rows; ties go to the run of the earlier
 * partition, so the merge is stable. While there are more runs than the
 * fan-in, consecutive groups of them are merged into new runs (consecutive,
 * so a merged run still covers one stretch of the frame's row order); the
 * last merge hands chunks of rows to the caller's sink. A merge holds one
 * block per run and one output chunk.
 *
 * Compression: zstd level 1 on every block, where it makes the block smaller
 * (docs/table.md, "Sorting past the memory bound", says why). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "internal.h"
#include "table/table_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <zstd.h>

/* ---- the key ---- */

static inline bool key_missing(const tcol *c, size_t i)
{
    return !weft__tcol_ok(c, i) ||
           (c->type == WEFT_COL_DOUBLE && isnan(((const double *)c->data)[i]));
}

/* Compares two present keys of columns of one type; -1, 0, 1. */
static inline int key_cmp(const tcol *a, size_t i, const tcol *b, size_t j)
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

typedef struct order_ctx {
    const tcol *c;
    bool desc;
} order_ctx;

static int order_cmp(const void *a, const void *b, void *arg)
{
    const order_ctx *o = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int r = key_cmp(o->c, i, o->c, j);
    if (o->desc) r = -r;
    return r ? r : (i > j) - (i < j);
}

/* The rows of `t` in key order: present keys sorted (stable), then the
 * missing ones in row order. `idx` has t->nrows slots. */
static void key_order(const weft_table *t, const tcol *c, bool desc, size_t *idx)
{
    size_t k = 0;
    for (size_t i = 0; i < t->nrows; i++)
        if (!key_missing(c, i)) idx[k++] = i;
    size_t present = k;
    for (size_t i = 0; i < t->nrows; i++)
        if (key_missing(c, i)) idx[k++] = i;
    order_ctx o = {c, desc};
    qsort_r(idx, present, sizeof *idx, order_cmp, &o);
}

/* Serialized bytes a row of `t`, about (for sizing blocks). */
static size_t row_bytes(const weft_table *t)
{
    size_t b = 0;
    for (size_t j = 0; j < t->ncols; j++) {
        const tcol *c = &t->cols[j];
        b += weft__tcol_width(c->type) + (c->valid ? 1 : 0);
        if (c->type == WEFT_COL_TEXT && t->nrows) b += c->nchars / t->nrows + 1;
    }
    return b ? b : 1;
}

/* ---- run files ---- */

enum {
    BLK_ZSTD = 1
};

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends `t` as one block; adds the stored bytes to *stored. */
static int block_write(int fd, const weft_table *t, bool compress, uint64_t *stored, uint64_t *raw)
{
    void *ser;
    size_t len;
    int rc = weft_table_serialize(t, &ser, &len);
    if (rc) return rc;
    uint64_t h[3] = {len, len, 0};
    void *z = NULL;
    const void *body = ser;
    if (compress) {
        size_t cap = ZSTD_compressBound(len);
        z = malloc(cap);
        if (!z) {
            free(ser);
            return WEFT_ENOMEM;
        }
        size_t zn = ZSTD_compress(z, cap, ser, len, 1);
        if (!ZSTD_isError(zn) && zn < len) {
            h[1] = zn;
            h[2] = BLK_ZSTD;
            body = z;
        }
    }
    rc = write_all(fd, h, sizeof h);
    if (!rc) rc = write_all(fd, body, (size_t)h[1]);
    if (stored) *stored += sizeof h + h[1];
    if (raw) *raw += len;
    free(z);
    free(ser);
    return rc;
}

/* Reads the block at *off of `fd` (size `size`) into `*out` (NULL at the
 * end of the file). */
static int block_read(int fd, uint64_t *off, uint64_t size, weft_table **out)
{
    *out = NULL;
    if (*off >= size) return 0;
    uint64_t h[3];
    ssize_t r = pread(fd, h, sizeof h, (off_t)*off);
    if (r != (ssize_t)sizeof h || h[1] > size - *off - sizeof h || h[2] > BLK_ZSTD ||
        (h[2] == 0 && h[0] != h[1]) || h[0] > ((uint64_t)1 << 40))
        return WEFT_EINVAL;
    char *stored = malloc(h[1] ? h[1] : 1), *raw = NULL;
    if (!stored) return WEFT_ENOMEM;
    size_t have = 0;
    while (have < h[1]) {
        r = pread(fd, stored + have, (size_t)h[1] - have, (off_t)(*off + sizeof h + have));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(stored);
            return r < 0 ? -errno : WEFT_EINVAL;
        }
        have += (size_t)r;
    }
    int rc = 0;
    const char *ser = stored;
    if (h[2] == BLK_ZSTD) {
        raw = malloc(h[0] ? h[0] : 1);
        if (!raw)
            rc = WEFT_ENOMEM;
        else if (ZSTD_decompress(raw, (size_t)h[0], stored, (size_t)h[1]) != h[0])
            rc = WEFT_EINVAL;
        ser = raw;
        free(stored);
        stored = NULL;
    }
    if (!rc) rc = weft_table_deserialize(ser, (size_t)h[0], out);
    free(stored);
    free(raw);
    if (!rc) *off += sizeof h + h[1];
    return rc;
}

/* ---- phase 1: a run per partition ---- */

int weft__tb_sort_run(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t = NULL;
    const void *d;
    size_t n;
    int rc = weft_args_get(in, len, 0, &d, &n);
    if (!rc) rc = weft__table_view(d, n, &t); /* read only: in place when it can be */
    if (rc) return weft_ctx_fail(ctx, rc, "sort run: argument 0 is not a table");
    unpack u = {NULL, NULL, true};
    if (!weft_args_get(in, len, 1, &d, &n)) u = (unpack){d, (const char *)d + n, false};
    char *name = unpack_str(&u), *path = unpack_str(&u);
    bool desc = unpack_u64(&u) != 0, compress = unpack_u64(&u) != 0;
    uint64_t block = unpack_u64(&u);
    size_t *idx = NULL;
    int fd = -1;
    tcol *c = NULL;
    if (u.bad || !name || !path || block == 0)
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "sort run: bad input");
    if (!rc && !(c = weft__table_col(t, name)))
        rc = weft_ctx_fail(ctx, WEFT_EINVAL, "sort: no column '%s'", name);
    if (!rc && !(idx = malloc((t->nrows + 1) * sizeof *idx)))
        rc = weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
    if (!rc) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) rc = weft_ctx_fail(ctx, -errno, "%s: %s", path, strerror(errno));
    }
    uint64_t out[4] = {0, 0, 0, 0}; /* rows, blocks, stored bytes, serialized bytes */
    if (!rc) {
        key_order(t, c, desc, idx);
        size_t per = (size_t)(block / row_bytes(t));
        if (per < 16) per = 16;
        for (size_t a = 0; a < t->nrows && !rc; a += per) {
            size_t m = t->nrows - a < per ? t->nrows - a : per;
            weft_table *blk = NULL;
            rc = weft__table_take(t, idx + a, m, &blk);
            if (!rc) rc = block_write(fd, blk, compress, &out[2], &out[3]);
            weft_table_destroy(blk);
            out[1]++;
        }
        out[0] = t->nrows;
        if (rc) weft_ctx_fail(ctx, rc, "%s: writing the sorted run failed", path);
    }
    if (fd >= 0 && close(fd) && !rc) rc = weft_ctx_fail(ctx, -EIO, "%s: close failed", path);
    if (!rc) rc = weft_ctx_set_output(ctx, out, sizeof out);
    free(idx);
    free(name);
    free(path);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER_AS(weft__tb_sort_run, "weft.table.sort_run");

/* ---- phase 2: merging runs ---- */

typedef struct rrun {
    int fd;
    uint64_t off, size;
    weft_table *blk; /* the current block; NULL when the run is done */
    size_t at;       /* the current row of blk */
    const tcol *key;
    size_t id; /* the run's place in row order */
} rrun;

typedef struct merger {
    const char *column;
    bool desc;
    rrun *runs;
    rrun **heap;
    size_t nheap;
} merger;

/* true when x's current row comes first */
static inline bool run_before(const rrun *x, const rrun *y, bool desc)
{
    bool mx = key_missing(x->key, x->at), my = key_missing(y->key, y->at);
    if (mx != my) return my;
    if (!mx) {
        int r = key_cmp(x->key, x->at, y->key, y->at);
        if (r) return desc ? r > 0 : r < 0;
    }
    return x->id < y->id;
}

static void sift_down(merger *m, size_t j)
{
    rrun *e = m->heap[j];
    for (;;) {
        size_t l = 2 * j + 1, r = l + 1, w = j;
        rrun *wv = e;
        if (l < m->nheap && run_before(m->heap[l], wv, m->desc)) w = l, wv = m->heap[l];
        if (r < m->nheap && run_before(m->heap[r], wv, m->desc)) w = r, wv = m->heap[r];
        if (w == j) break;
        m->heap[j] = m->heap[w];
        j = w;
    }
    m->heap[j] = e;
}

/* Loads the run's next non-empty block; r->blk NULL at its end. */
static int run_advance(rrun *r, const char *column)
{
    for (;;) {
        weft_table_destroy(r->blk);
        r->blk = NULL;
        r->at = 0;
        int rc = block_read(r->fd, &r->off, r->size, &r->blk);
        if (rc) return rc;
        if (!r->blk) return 0;
        r->key = weft__table_col(r->blk, column);
        if (!r->key) return WEFT_EINVAL;
        if (r->blk->nrows) return 0;
    }
}

static bool same_columns(const weft_table *a, const weft_table *b)
{
    if (a->ncols != b->ncols) return false;
    for (size_t j = 0; j < a->ncols; j++)
        if (a->cols[j].type != b->cols[j].type || strcmp(a->cols[j].name, b->cols[j].name))
            return false;
    return true;
}

typedef int (*emit_fn)(void *arg, const weft_table *chunk);

/* Merges the run files paths[0..k) (in row order) and emits chunks of about
 * `block` bytes, or of `chunk_rows` rows when that is not 0. @return 0, a
 * negative code, or the positive value of an emit that asked to stop. */
static int merge_files(char *const *paths, size_t k, const char *column, bool desc, size_t block,
                       size_t chunk_rows, emit_fn emit, void *arg)
{
    merger m = {column, desc, calloc(k ? k : 1, sizeof(rrun)), calloc(k ? k : 1, sizeof(rrun *)),
                0};
    int rc = m.runs && m.heap ? 0 : WEFT_ENOMEM;
    for (size_t i = 0; i < k && m.runs; i++) m.runs[i].fd = -1;
    for (size_t i = 0; i < k && !rc; i++) {
        rrun *r = &m.runs[i];
        r->id = i;
        r->fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            rc = weft__err(-errno, "%s: %s", paths[i], strerror(errno));
            break;
        }
        off_t end = lseek(r->fd, 0, SEEK_END);
        r->size = end > 0 ? (uint64_t)end : 0;
        rc = run_advance(r, column);
        if (rc)
            rc =
                weft__err(rc, "%s: a sorted run is damaged or lacks column '%s'", paths[i], column);
        else if (r->blk)
            m.heap[m.nheap++] = r;
    }
    /* the output's columns: an empty table like the first block */
    weft_table *schema = NULL, *out = NULL;
    if (!rc && m.nheap) rc = weft__table_like(m.heap[0]->blk, &schema);
    for (size_t i = 0; i < m.nheap && !rc; i++)
        if (!same_columns(schema, m.heap[i]->blk))
            rc = weft__err(WEFT_EINVAL, "sort: partitions have unlike columns");
    for (size_t j = m.nheap / 2; j-- > 0 && !rc;) sift_down(&m, j);
    size_t per = chunk_rows;
    if (!per && schema) {
        per = block / row_bytes(m.heap[0]->blk);
        if (per < 16) per = 16;
    }
    if (!rc && schema) rc = weft__table_like(schema, &out);
    while (!rc && m.nheap) {
        rrun *r = m.heap[0];
        for (size_t j = 0; j < out->ncols && !rc; j++)
            rc = weft__tcol_push_from(&out->cols[j], &r->blk->cols[j], r->at);
        if (rc) break;
        if (++out->nrows == per) {
            rc = emit(arg, out);
            weft_table_destroy(out);
            out = NULL;
            if (!rc) rc = weft__table_like(schema, &out);
            if (rc) break;
        }
        if (++r->at == r->blk->nrows) {
            rc = run_advance(r, column);
            if (rc) {
                rc = weft__err(rc, "%s: a sorted run is damaged", paths[r->id]);
                break;
            }
            if (r->blk && !same_columns(schema, r->blk)) {
                rc = weft__err(WEFT_EINVAL, "sort: partitions have unlike columns");
                break;
            }
            if (!r->blk) {
                m.heap[0] = m.heap[--m.nheap];
                if (!m.nheap) break;
            }
        }
        sift_down(&m, 0);
    }
    if (!rc && out && out->nrows) rc = emit(arg, out);
    weft_table_destroy(out);
    weft_table_destroy(schema);
    for (size_t i = 0; m.runs && i < k; i++) {
        weft_table_destroy(m.runs[i].blk);
        if (m.runs[i].fd >= 0) close(m.runs[i].fd);
    }
    free(m.runs);
    free(m.heap);
    return rc;
}

typedef struct run_out {
    int fd;
    bool compress;
} run_out;

static int emit_block(void *arg, const weft_table *chunk)
{
    run_out *o = arg;
    return block_write(o->fd, chunk, o->compress, NULL, NULL);
}

typedef struct sink_out {
    weft_table_sink_fn fn;
    void *arg;
} sink_out;

static int emit_sink(void *arg, const weft_table *chunk)
{
    sink_out *s = arg;
    int rc = s->fn(s->arg, chunk);
    if (rc < 0) return weft__err(rc, "sort: the sink failed (%d)", rc);
    return rc > 0 ? 1 : 0; /* 1: the sink has what it needs */
}

int weft__sort_merge_runs(char **paths, size_t n, const char *dir, const char *column, bool desc,
                          size_t block, size_t fanin, bool compress, size_t chunk_rows,
                          weft_table_sink_fn fn, void *arg)
{
    if (fanin < 2) fanin = 2;
    int rc = 0;
    unsigned pass = 0;
    /* merge consecutive groups while there are more runs than the fan-in */
    while (n > fanin && !rc) {
        size_t groups = (n + fanin - 1) / fanin, made = 0;
        for (size_t gi = 0; gi < groups && !rc; gi++) {
            size_t a = gi * fanin, k = n - a < fanin ? n - a : fanin;
            char *np = NULL;
            if (asprintf(&np, "%s/merge-%u-%zu", dir, pass, gi) < 0) {
                rc = WEFT_ENOMEM;
                break;
            }
            run_out o = {open(np, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), compress};
            if (o.fd < 0) rc = weft__err(-errno, "%s: %s", np, strerror(errno));
            if (!rc) rc = merge_files(paths + a, k, column, desc, block, 0, emit_block, &o);
            if (o.fd >= 0 && close(o.fd) && !rc) rc = weft__err(-EIO, "%s: close failed", np);
            for (size_t i = a; i < a + k; i++) {
                unlink(paths[i]);
                free(paths[i]);
                paths[i] = NULL;
            }
            paths[made++] = np;
            if (rc) unlink(np);
        }
        for (size_t i = made; i < n; i++) {
            if (paths[i]) unlink(paths[i]);
            free(paths[i]);
            paths[i] = NULL;
        }
        n = made;
        pass++;
    }
    sink_out s = {fn, arg};
    if (!rc) rc = merge_files(paths, n, column, desc, block, chunk_rows, emit_sink, &s);
    for (size_t i = 0; i < n; i++) {
        if (paths[i]) unlink(paths[i]);
        free(paths[i]);
        paths[i] = NULL;
    }
    return rc;
}

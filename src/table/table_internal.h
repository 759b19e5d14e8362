/* table_internal.h : the layout of a weft_table and helpers shared by the
 * files of src/table/ (columns, CSV, operations, frames).
 *
 * A column is one array of values (int64_t, double, bool), or for text an
 * offsets array of rows+1 entries into one byte buffer where every cell is
 * stored NUL-terminated (cell i is chars[off[i] .. off[i+1]-1), the last
 * byte its NUL). `valid` is NULL while no value is missing; the first
 * missing value allocates it (1 byte per row, 0 = missing). */
#ifndef WEFT_TABLE_INTERNAL_H
#define WEFT_TABLE_INTERNAL_H

#include "weft.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct tcol {
    char *name;
    weft_col_type type;
    size_t n, cap;  /* rows, and allocated rows */
    void *data;     /* int64_t / double / bool values; text: uint64_t offsets[n+1] */
    uint8_t *valid; /* NULL = all valid */
    char *chars;    /* text bytes */
    size_t nchars, capchars;
    bool borrowed; /* the arrays are another table's (a chain's view: weft__table_ref) */
} tcol;

struct weft_table {
    size_t ncols, capcols, nrows;
    tcol *cols;
    uint64_t skipped; /* CSV records skipped as malformed */
    bool borrowed;    /* a view (weft__table_view): the columns' arrays are not ours */
};

size_t weft__tcol_width(weft_col_type t);
/* Asks for transparent huge pages over a large buffer about to be written
 * (a first touch of 4 KiB pages costs more than the parsing on some VMs). */
void weft__table_hugepages(void *p, size_t n);
/* The cache of large blocks (table.c, docs/table.md "Memory kept between
 * runs"); any thread. weft__blk_take: a parked block of n to 2n + 1 MiB
 * bytes aligned to `align`, or NULL (n under 1 MiB, none parked fits).
 * weft__blk_free: parks p (1 MiB or more, room in the cache) or frees
 * it. weft__blk_grow: realloc(p, n) keeping the first `used` bytes, into
 * a parked block when one fits (p is then parked). */
void *weft__blk_take(size_t n, size_t align);
void weft__blk_free(void *p);
void *weft__blk_grow(void *p, size_t used, size_t n);
/* n bytes (malloc's), a parked block when one fits. */
static inline void *weft__blk_alloc(size_t n)
{
    return weft__blk_grow(NULL, 0, n);
}
void weft__blk_stats(size_t *bytes, size_t *blocks, uint64_t *hits, uint64_t *misses);
/* Adds an empty column (rows 0) and returns it, or NULL on ENOMEM. */
tcol *weft__table_add_col(weft_table *t, const char *name, weft_col_type type);
int weft__tcol_reserve(tcol *c, size_t rows);
/* As weft__tcol_reserve, to exactly `rows` (no rounding up to a power of 2). */
int weft__tcol_reserve_exact(tcol *c, size_t rows);
int weft__tcol_push_int64(tcol *c, int64_t v, bool ok);
int weft__tcol_push_double(tcol *c, double v, bool ok);
int weft__tcol_push_bool(tcol *c, bool v, bool ok);
int weft__tcol_push_text(tcol *c, const char *s, size_t len, bool ok);
/* Appends row `row` of column `src` (same type) to `dst`. */
int weft__tcol_push_from(tcol *dst, const tcol *src, size_t row);
/* Sets the table's rows from its columns (all must be equal). */
int weft__table_fix_rows(weft_table *t);
static inline bool weft__tcol_ok(const tcol *c, size_t i)
{
    return !c->valid || c->valid[i];
}
static inline const char *weft__tcol_text(const tcol *c, size_t i)
{
    return c->chars + ((const uint64_t *)c->data)[i];
}
static inline size_t weft__tcol_textlen(const tcol *c, size_t i)
{
    const uint64_t *o = c->data;
    return (size_t)(o[i + 1] - o[i] - 1);
}
/* A value as double (int64 converted; missing = NaN). */
static inline double weft__tcol_num(const tcol *c, size_t i)
{
    if (!weft__tcol_ok(c, i)) return NAN;
    if (c->type == WEFT_COL_INT64) return (double)((const int64_t *)c->data)[i];
    if (c->type == WEFT_COL_DOUBLE) return ((const double *)c->data)[i];
    if (c->type == WEFT_COL_BOOL) return ((const bool *)c->data)[i] ? 1.0 : 0.0;
    return NAN;
}
/* A new table with the columns of `t` (names, types), no rows. */
int weft__table_like(const weft_table *t, weft_table **out);
/* A new table of the rows idx[0..n) of `t`, in that order. */
int weft__table_take(const weft_table *t, const size_t *idx, size_t n, weft_table **out);
/* Appends the rows of the serialized table buf[0..len) to `dst` (an empty
 * `dst` takes its columns), copying once; WEFT_EINVAL when malformed or
 * unlike `dst`'s columns (`dst` is then left as it was). */
int weft__table_append_serialized(weft_table *dst, const void *buf, size_t len);
/* As weft__table_append_serialized, growing `dst` (when it must grow) once
 * for `total` partitions like the `done` + 1 seen so far (its rows and
 * text bytes scaled by total / (done + 1)) instead of by doubling:
 * weft_frame_compute sizes its result from the first partition. */
int weft__table_append_serialized_est(weft_table *dst, const void *buf, size_t len, size_t done,
                                      size_t total);
/* A read-only table over the serialized bytes buf[0..len) without copying
 * the values, when `buf` is 8-aligned (the format aligns every column's
 * values then); a copy (weft_table_deserialize) otherwise. The view must
 * not outlive `buf` and must never be added to (its arrays are borrowed).
 * Ownership: weft_table_destroy frees it (not the borrowed arrays). */
int weft__table_view(const void *buf, size_t len, weft_table **out);
/* The serialized size of `t` (0 when a column name is too long for the
 * format), and its serialization into p[0..size). */
size_t weft__table_ser_size(const weft_table *t);
void weft__table_ser_into(const weft_table *t, char *p);
/* Looks up column `name`; NULL if absent. */
tcol *weft__table_col(const weft_table *t, const char *name);

/* A chain's partition handed to its operations in place (frame.c):
 * weft__table_ref writes a reference to `t` (a magic, a per-process secret
 * and the address), which weft_table_arg turns into a table whose columns
 * are borrowed from `t` (tcol.borrowed: never freed nor written through
 * it; new columns added to it are its own). While a capture is set on a
 * thread, weft_table_output(c->ctx, x) makes c->got a table of x's columns
 * (the borrowed ones still borrowed, the others copied) instead of
 * serializing x. The reference is valid while `t` lives and is not
 * changed; it means nothing in another process. */
#define WEFT__TABLE_REF_LEN 24
void weft__table_ref(const weft_table *t, unsigned char ref[WEFT__TABLE_REF_LEN]);
typedef struct weft__table_capture {
    weft_ctx *ctx;
    weft_table *got; /* the caller destroys it */
} weft__table_capture;
/* Sets this thread's capture (NULL: none); returns the one before. */
weft__table_capture *weft__table_capture_set(weft__table_capture *c);
/* As weft_table_output(ctx, t) for weft's own tasks, which are done with
 * `t`: true when a capture is set for ctx and took `t` itself (no copy;
 * the caller must not destroy it), false when nothing was done. */
bool weft__table_output_take(weft_ctx *ctx, weft_table *t);

/* ---- CSV (csv.c) ---- */
/* The serialized parameters of one CSV partition and the parser. */
typedef struct csv_spec {
    char delimiter;
    unsigned flags;
    size_t ncols;
    weft_col_type *types; /* ncols */
    char **names;         /* ncols */
    size_t nna;
    char **na;
    size_t *na_len, na_maxlen;
    bool na_first[256]; /* the first bytes of the non-empty NA strings */
} csv_spec;

#endif

/* Reads the headers of paths[0..n) and, without a schema, infers the
 * types from a sample of the first file; fills `spec` and, per file, where
 * its data starts (after a BOM and the header) and its size. */
int weft__csv_prepare(const char *const *paths, size_t n, const weft_csv_options *opts,
                      csv_spec *spec, uint64_t *data_start, uint64_t *data_line, uint64_t *size);
void weft__csv_spec_free(csv_spec *s);
/* The literal argument of the scan and read tasks of one byte range. */
int weft__csv_chunk_encode(const csv_spec *s, const char *path, uint64_t start, uint64_t end,
                           bool first, void **buf, size_t *len);
/* The literal "previous bound" of a file's first range. */
typedef struct csv_bound {
    uint64_t state_end; /* 1 if the range ends inside a quoted field */
    uint64_t lines_end; /* newlines before the range's end */
    uint64_t rec_start; /* the first record starting in the range, or UINT64_MAX */
    uint64_t rec_line;  /* its line number (1-based) */
} csv_bound;
int weft__csv_scan(weft_ctx *ctx, const void *in, size_t len);
int weft__csv_bound(weft_ctx *ctx, const void *in, size_t len);
int weft__csv_read(weft_ctx *ctx, const void *in, size_t len);
/* The parse of a read task (the range's literal and its bound's output)
 * into a table of its own (*out, the caller destroys it), for tasks that
 * use the partition at once (ops.c: groupby, describe, nlargest straight
 * from the CSV, no serialized partition in between). Only the columns
 * named in keep_names[0..nkeep) are kept (NULL: every one), text columns
 * none when `no_text`; the others are still checked as the full read
 * checks them (a malformed value fails or skips the record alike; text
 * always fits), so the rows and the skipped count are the full read's.
 * `reuse` (NULL: none; always taken, destroyed when not used) is a table
 * an earlier parse of the same read and columns returned: it is emptied
 * and parsed into, its buffers kept (no fresh pages to fault in). `bufs`
 * (NULL: none) is the run's pool whose byte buffers the range is read
 * into (else the range is mapped). */
typedef struct tb_pool tb_pool;
int weft__csv_parse(weft_ctx *ctx, const void *range, size_t rlen, const void *bound,
                    size_t bound_len, const char *const *keep_names, size_t nkeep, bool no_text,
                    weft_table *reuse, tb_pool *bufs, weft_table **out);
/* The field scanner: the first delimiter, newline or quote in b[j..n)
 * (n if none), by `kind` (one of the below; BEST = what this machine has:
 * AVX2 when the CPU says so, else SSE2 on x86-64).
 * weft__csv_set_scanner forces one for every later read (the tests compare
 * them); WEFT_ENOTSUP when this build or CPU lacks it. */
enum {
    WEFT__CSV_SCAN_BEST = 0,
    WEFT__CSV_SCAN_SCALAR = 1,
    WEFT__CSV_SCAN_SWAR = 2,
    WEFT__CSV_SCAN_SSE2 = 3,
    WEFT__CSV_SCAN_AVX2 = 4
};
size_t weft__csv_find(const char *b, size_t j, size_t n, char delim, int kind);
/* Walks b[j..n) as the reader does, one scanner's 64-byte blocks from j:
 * the indexes of every delimiter, newline and quote (quote_only: every
 * quote), in order, into at[0..cap); returns how many. For the tests. */
size_t weft__csv_walk(const char *b, size_t j, size_t n, char delim, int kind, bool quote_only,
                      size_t *at, size_t cap);
int weft__csv_set_scanner(int kind);
/* The bytes a read task reads into its buffer at once (0: 1 MiB); the
 * tests make it tiny so that records and fields cross the chunks. */
int weft__csv_set_chunk(size_t bytes);
/* A partition as CSV text (header first when `header`). */
int weft__csv_format(const weft_table *t, const weft_csv_write_options *o, bool header, char **buf,
                     size_t *len);
/* The 128-byte header of a 1-d .npy file of n values of `type`. */
void weft__npy_header(char hdr[128], weft_col_type type, uint64_t n);

/* ---- packing the literal arguments of the table tasks ---- */
typedef struct pack {
    char *p;
    size_t n, cap;
    bool oom;
} pack;
static inline void pack_bytes(pack *k, const void *s, size_t n)
{
    if (k->oom) return;
    if (k->n + n > k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 256;
        while (nc < k->n + n) nc *= 2;
        char *p = (char *)realloc(k->p, nc);
        if (!p) {
            k->oom = true;
            return;
        }
        k->p = p;
        k->cap = nc;
    }
    if (n) memcpy(k->p + k->n, s, n);
    k->n += n;
}
static inline void pack_u64(pack *k, uint64_t v)
{
    pack_bytes(k, &v, 8);
}
static inline void pack_f64(pack *k, double v)
{
    pack_bytes(k, &v, 8);
}
static inline void pack_str(pack *k, const char *s)
{
    pack_u64(k, strlen(s));
    pack_bytes(k, s, strlen(s));
}
typedef struct unpack {
    const char *p, *e;
    bool bad;
} unpack;
static inline uint64_t unpack_u64(unpack *u)
{
    uint64_t v = 0;
    if (u->e - u->p < 8)
        u->bad = true;
    else
        memcpy(&v, u->p, 8), u->p += 8;
    return v;
}
static inline double unpack_f64(unpack *u)
{
    double v = 0;
    if (u->e - u->p < 8)
        u->bad = true;
    else
        memcpy(&v, u->p, 8), u->p += 8;
    return v;
}
/* A string of the packed bytes, malloc'ed (NULL when malformed). */
static inline char *unpack_str(unpack *u)
{
    uint64_t l = unpack_u64(u);
    if (u->bad || (uint64_t)(u->e - u->p) < l) {
        u->bad = true;
        return NULL;
    }
    char *s = (char *)malloc(l + 1);
    if (!s) {
        u->bad = true;
        return NULL;
    }
    memcpy(s, u->p, l);
    s[l] = 0;
    u->p += l;
    return s;
}

/* ---- operations (ops.c): tasks and the merges that run in the caller ---- */
int weft__tb_lit(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_filter(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_select(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_hstack(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_join(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_gb_partial(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_describe_partial(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_top_partial(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_sort_partial(weft_ctx *ctx, const void *in, size_t len);
int weft__tb_csv_part(weft_ctx *ctx, const void *in, size_t len);
/* A partition's read and its partial in one task, straight from a CSV
 * range: the input is u64 length + the range's literal, u64 length + its
 * bound's output, u64 op (one of these), then the partial's literal. READ
 * outputs the partition (weft__csv_read's output). */
enum {
    WEFT__CSV_OP_GROUPBY = 1,
    WEFT__CSV_OP_DESCRIBE = 2,
    WEFT__CSV_OP_TOP = 3,
    WEFT__CSV_OP_READ = 4,
    /* executors that share memory only (the literal holds a pointer):
     * READ_SHARED hands the parsed partition to a tb_gather (literal: u64
     * pointer), GROUPBY_SHARED folds the partial into a gb_lanes (literal:
     * u64 pointer, then the groupby spec); both output nothing */
    WEFT__CSV_OP_READ_SHARED = 5,
    WEFT__CSV_OP_GROUPBY_SHARED = 6
};
int weft__tb_csv_partial(weft_ctx *ctx, const void *in, size_t len);
/* Chain tasks (a range's read and its frame's per-partition operations in
 * one task, frame.c) run so far in this process (tests). */
uint64_t weft__frame_chain_tasks(void);

/* ---- shared-memory hand-over (gather.c) ----
 * A pool of parsed tables kept from one task to the next (their pages
 * stay faulted in), at most `max`; any thread. */
typedef struct tb_pool tb_pool;
int weft__pool_create(size_t max, tb_pool **out);
/* A table to parse into (NULL when the pool is empty). */
weft_table *weft__pool_take(tb_pool *p);
/* Gives `t` back (destroyed when the pool is full). */
void weft__pool_give(tb_pool *p, weft_table *t);
void weft__pool_destroy(tb_pool *p);
/* Byte buffers for the read tasks' ranges, kept in the same pool from one
 * task to the next: a range is read into one (pread: the kernel copies
 * through its own mapping of the page cache) instead of mapping the
 * file's 4 KiB pages, whose first touch costs a page walk each. */
typedef struct tb_buf {
    char *p;
    size_t cap;
} tb_buf;
/* A buffer of at least n bytes: an idle one of the pool (NULL: none),
 * grown when short, or a new one (whole 2 MiB pages from 2 MiB on, huge
 * pages asked from 4 MiB on; else 4 KiB pages). */
int weft__buf_take(tb_pool *p, size_t n, tb_buf *b);
/* At least n bytes (the old bytes are not kept). */
int weft__buf_reserve(tb_buf *b, size_t n);
/* Back to the pool (freed when it is full or NULL). */
void weft__buf_give(tb_pool *p, tb_buf *b);

/* weft_frame_compute of a CSV read on an executor that shares memory: each
 * read task parses its range into a table from the pool and hands it over
 * with weft__gather_put(partition, table); partitions are placed in order
 * (under a lock: their rows' and text bytes' offsets in the result) and
 * copied into the one result by the tasks themselves, each partition once,
 * in parallel; the result is allocated once, sized from the first
 * partition x the partition count, and grows (while no copy runs) only
 * when a later partition does not fit. */
typedef struct tb_gather tb_gather;
int weft__gather_create(size_t nparts, size_t pool_max, tb_gather **out);
weft_table *weft__gather_take(tb_gather *g);
/* The run's pool (its parsed tables and range buffers). */
tb_pool *weft__gather_pool(tb_gather *g);
/* Takes `t` (partition p). 0, or the first failure of any put. */
int weft__gather_put(tb_gather *g, size_t p, weft_table *t);
/* On the caller once every task has ended: the result (every partition
 * placed), or the first failure. */
int weft__gather_finish(tb_gather *g, weft_table **out);
void weft__gather_destroy(tb_gather *g);

/* The packed groupby spec: keys, aggregates. */
int weft__gb_spec(const char *const *keys, size_t nkeys, const weft_agg *aggs, size_t naggs,
                  void **buf, size_t *len);
/* The merge of a groupby's partials: partition p's partial is folded into
 * accumulator p % WEFT__GB_LANES, in partition order within each lane,
 * and the lanes are merged in order at the end. The order of the floating
 * point operations is therefore fixed by the partitioning alone, whoever
 * folds: the calling thread (weft__gb_lanes_put_serialized, in order) or
 * the tasks themselves on an executor that shares memory (a task folds its
 * own partial when its lane's predecessor is in, else leaves it for the
 * task that folds that one: no task waits for another), so both give the
 * same bits. Any thread. */
#define WEFT__GB_LANES 2
/* Partials grouped by array so far in this process (dense_groups; tests). */
uint64_t weft__gb_dense_partials(void);
typedef struct gb_lanes gb_lanes;
int weft__gb_lanes_create(const void *spec, size_t len, size_t nparts, size_t pool_max,
                          gb_lanes **out);
/* Folds partition p's serialized partial (the caller's thread). */
int weft__gb_lanes_put_serialized(gb_lanes *L, size_t p, const void *partial, size_t len);
/* The groups, sorted by key; WEFT_EAGAIN when there were no partitions. */
int weft__gb_lanes_finish(gb_lanes *L, weft_table **out);
void weft__gb_lanes_destroy(gb_lanes *L);

typedef struct ds_acc ds_acc;
int weft__ds_acc_create(ds_acc **out);
int weft__ds_acc_merge(ds_acc *a, const void *partial, size_t len);
int weft__ds_acc_finish(ds_acc *a, weft_table **out);
void weft__ds_acc_destroy(ds_acc *a);

/* nlargest / sort: the best rows of the concatenated partials */
int weft__top_finish(weft_table *all, const char *column, size_t n, bool largest, weft_table **out);
int weft__sort_merge(weft_table **parts, size_t nparts, const char *column, bool desc,
                     weft_table **out);
/* ---- external sort (sort.c) ---- */
int weft__tb_sort_run(weft_ctx *ctx, const void *in, size_t len);
/* Merges the run files paths[0..n) (the runs of consecutive partitions, in
 * order; malloc'ed, freed and unlinked here) `fanin` at a time, new runs in
 * `dir`, the last merge into `fn` in chunks (`chunk_rows`, 0 = about
 * `block` bytes). @return 0, a negative code, 1 when `fn` stopped it. */
int weft__sort_merge_runs(char **paths, size_t n, const char *dir, const char *column, bool desc,
                          size_t block, size_t fanin, bool compress, size_t chunk_rows,
                          weft_table_sink_fn fn, void *arg);
/* Selection: the k-th smallest of v[0..n) (v is reordered). */
double weft__select_kth(double *v, size_t n, size_t k);

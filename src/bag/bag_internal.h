/* bag_internal.h : what the files of src/bag/ share.
 *
 * Files, bottom up (no two call each other):
 *   io.c     file readers: byte ranges of text files moved to line starts,
 *            whole gzip / zstd streams, raw 8-byte values; line splitting
 *   tasks.c  the registered tasks: "weft.bag.part" runs one partition's plan
 *            (a source, then the narrow operations fused into one pass, then a
 *            terminal: collect, count, stats, fold, topk, hash tables,
 *            histograms, sketches, shuffle, file output); "weft.bag.merge"
 *            combines partial results of a terminal (the tree); the typed
 *            record helpers and the emit/iter functions users call
 *   bag.c    the public constructors and operations (lazy), the graph that a
 *            terminal call builds and computes
 *   quant.c  exact and approximate quantiles, driving passes through bag.c
 *
 * A partition's records travel as one byte string: [u32 len][bytes] per
 * record (native byte order). A plan (argument 0 of a part task) is written
 * with wb_* and read with rb_*; user functions travel as a pointer (only to
 * a backend sharing the address space) and the registered name. */
#ifndef WEFT_BAG_INTERNAL_H
#define WEFT_BAG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

/* ---- byte writer / reader ------------------------------------------------ */

typedef struct wb {
    unsigned char *p;
    size_t n, cap;
    int oom;
} wb;

__attribute__((noinline, unused)) static int wb_grow(wb *w, size_t more)
{
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->n + more) cap *= 2;
    unsigned char *p = realloc(w->p, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}
static inline int wb_reserve(wb *w, size_t more)
{
    if (w->oom) return -1;
    if (w->n + more <= w->cap) return 0;
    return wb_grow(w, more);
}
static inline void wb_put(wb *w, const void *d, size_t len)
{
    if (wb_reserve(w, len)) return;
    if (len) memcpy(w->p + w->n, d, len);
    w->n += len;
}
static inline void wb_u32(wb *w, uint32_t v)
{
    wb_put(w, &v, 4);
}
static inline void wb_u64(wb *w, uint64_t v)
{
    wb_put(w, &v, 8);
}
static inline void wb_bytes(wb *w, const void *d, size_t len)
{
    wb_u64(w, len);
    wb_put(w, d, len);
}
static inline void wb_str(wb *w, const char *s)
{
    wb_bytes(w, s, s ? strlen(s) : 0);
}
/* one record in the partition encoding */
static inline void wb_rec(wb *w, const void *d, size_t len)
{
    if (wb_reserve(w, 4 + len)) return;
    uint32_t l = (uint32_t)len;
    memcpy(w->p + w->n, &l, 4);
    if (len) memcpy(w->p + w->n + 4, d, len);
    w->n += 4 + len;
}
static inline void wb_free(wb *w)
{
    free(w->p);
    *w = (wb){0};
}

typedef struct rb {
    const unsigned char *p;
    size_t n, off;
    int bad;
} rb;

static inline const void *rb_get(rb *r, size_t len)
{
    if (r->bad || len > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const void *q = r->p + r->off;
    r->off += len;
    return q;
}
static inline uint32_t rb_u32(rb *r)
{
    uint32_t v = 0;
    const void *q = rb_get(r, 4);
    if (q) memcpy(&v, q, 4);
    return v;
}
static inline uint64_t rb_u64(rb *r)
{
    uint64_t v = 0;
    const void *q = rb_get(r, 8);
    if (q) memcpy(&v, q, 8);
    return v;
}
static inline const void *rb_bytes(rb *r, size_t *len)
{
    uint64_t l = rb_u64(r);
    const void *q = rb_get(r, (size_t)l);
    *len = q ? (size_t)l : 0;
    return q;
}

/* Iterates the partition encoding: 1 and a record, 0 at the end, -1 if
 * malformed. */
static inline int rec_next(const unsigned char **p, const unsigned char *end, const void **rec,
                           size_t *len)
{
    if (*p >= end) return 0;
    if ((size_t)(end - *p) < 4) return -1;
    uint32_t l;
    memcpy(&l, *p, 4);
    if ((size_t)(end - *p) - 4 < l) return -1;
    *rec = *p + 4;
    *len = l;
    *p += 4 + (size_t)l;
    return 1;
}

/* ---- the order-preserving 64-bit key of a number (quantiles) ------------- */

static inline uint64_t key_of_double(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return (u >> 63) ? ~u : (u | (1ull << 63));
}
static inline double double_of_key(uint64_t k)
{
    uint64_t u = (k >> 63) ? (k & ~(1ull << 63)) : ~k;
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static inline uint64_t key_of_int64(int64_t v)
{
    return (uint64_t)v ^ (1ull << 63);
}
static inline int64_t int64_of_key(uint64_t k)
{
    return (int64_t)(k ^ (1ull << 63));
}

/* ---- plans --------------------------------------------------------------- */

#define BAG_MAGIC 0x47414257u /* "WBAG" */
#define BAG_MAX_OPS 32

enum bag_src {
    SRC_INLINE = 1, /* bytes: records */
    SRC_RANGE,      /* i64 start, i64 step, u64 count */
    SRC_GEN,        /* fnref, bytes arg, u64 part, u64 nparts */
    SRC_TEXT,       /* str path, u64 start, u64 end */
    SRC_GZ,         /* str path */
    SRC_ZST,        /* str path */
    SRC_RAW,        /* str path, u64 first value, u64 end value */
    SRC_INPUTS,     /* the records of arguments 1.. concatenated */
    SRC_PRODUCT,    /* arguments 1, 2: pairs */
    SRC_ZIP,        /* arguments 1, 2: pairs, equal lengths */
    SRC_SLICE,      /* u64 count of inputs, then per input u64 skip, u64 take */
    SRC_GROUP,      /* u64 bucket j, u64 nparts: arguments 1.. shuffle outputs */
    SRC_INLINE_PTR, /* u64 address, u64 length: records the bag holds (one address space) */
};

enum bag_op {
    OP_MAP = 1,
    OP_FLATMAP,
    OP_FILTER,
    OP_MAPPART,
    OP_JOIN, /* fnref key, bytes arg, bytes table (records of pairs) */
};

enum bag_term {
    T_COLLECT = 1,
    T_COUNT,
    T_STATS,    /* u32 kind */
    T_FOLD,     /* fnref binop, fnref combine, bytes init, bytes arg */
    T_REDUCE,   /* fnref perpart, fnref aggregate, bytes arg */
    T_TOPK,     /* u64 k, u32 keykind, u32 smallest, fnref cmp, bytes arg */
    T_FREQ,     /*  */
    T_DISTINCT, /*  */
    T_FOLDBY,   /* fnref key, fnref binop, fnref combine, bytes init, bytes arg */
    T_HIST,     /* u32 kind, u32 shift (bits already fixed), u64 nprefix, prefixes */
    T_GATHER,   /* u32 kind, u32 shift, u64 nprefix, prefixes */
    T_KLL,      /* u32 kind, u64 k */
    T_SHUFFLE,  /* fnref key, bytes arg, u64 nparts, u64 mem_bound, str spill path prefix */
    T_WRITE,    /* str path, u32 compress */
};

#define HIST_BITS 16
#define HIST_BUCKETS (1u << HIST_BITS)

/* ---- hist.c ---------------------------------------------------------------- */

/* A histogram of the exact quantiles as a task returns it: u64 total, u64
 * NaNs, u64 form, then
 *   HIST_DENSE:  nb u64 counts (nb = open prefixes x HIST_BUCKETS);
 *   HIST_SPARSE: u64 nnz, then nnz pairs (u64 bucket, u64 count), buckets
 *                increasing, no zero count.
 * Sparse is written when it is the smaller (fewer than nb/2 buckets used):
 * a pass after the first counts only the keys under a few prefixes, e.g.
 * 20 x 65536 dense counters (10 MiB a partition) for a few thousand keys. */
enum {
    HIST_DENSE = 0,
    HIST_SPARSE = 1
};

typedef struct hist_view {
    uint64_t total, nans;
    uint64_t form, nb, nnz;
    const unsigned char *data; /* the counts, or the pairs */
} hist_view;

/* Writes a histogram: dense[0..nb) holds the counts; nz[0..nnz) the buckets
 * used, in any order, when nz_complete (else the dense form is written).
 * Sorts nz. */
void weft__hist_write(wb *w, uint64_t total, uint64_t nans, const uint64_t *dense, size_t nb,
                      uint32_t *nz, size_t nnz, bool nz_complete);
/* Reads one: 0, or -1 when len does not fit the form for nb buckets. */
int weft__hist_read(const void *h, size_t len, size_t nb, hist_view *v);
/* Sums histograms of nb buckets into one written to *w. 0 or WEFT_E*. */
int weft__hist_merge(const hist_view *in, size_t n, size_t nb, wb *w);
/* The bucket of prefix index pi (0-based) holding rank r (counting from
 * below, the values of lower prefixes already in *below): its index within
 * the prefix's HIST_BUCKETS, its count in *count, *below updated. -1 when
 * the ranks of this prefix end before r. */
long weft__hist_find(const hist_view *v, size_t pi, uint64_t r, uint64_t *below, uint64_t *count);

/* A function reference as the plan carries it. */
typedef struct bag_fnref {
    void (*ptr)(void);
    const char *name; /* registered name or NULL */
} bag_fnref;

/* ---- io.c ------------------------------------------------------------------ */

/* Called per line (without "\n" / "\r\n") or per 8-byte value; a non-zero
 * return stops the reading and is returned. */
typedef int (*bag_line_fn)(void *ctx, const void *line, size_t len);

/* Each returns 0, the callback's code, or a negative code with a message
 * naming the file (and the byte offset where known) in err[0..errlen). */
int weft__bag_read_range(const char *path, uint64_t start, uint64_t end, bag_line_fn fn, void *ctx,
                         char *err, size_t errlen);
int weft__bag_read_gz(const char *path, bag_line_fn fn, void *ctx, char *err, size_t errlen);
int weft__bag_read_zst(const char *path, bag_line_fn fn, void *ctx, char *err, size_t errlen);
int weft__bag_read_raw(const char *path, uint64_t first, uint64_t end, bag_line_fn fn, void *ctx,
                       char *err, size_t errlen);
/* Writes data[0..len) to `path`, compressed (0 none, 1 gzip, 2 zstd). */
int weft__bag_write_file(const char *path, int compress, const void *data, size_t len, char *err,
                         size_t errlen);

/* ---- tasks.c --------------------------------------------------------------- */

int weft__bag_part_task(weft_ctx *ctx, const void *in, size_t len);
int weft__bag_merge_task(weft_ctx *ctx, const void *in, size_t len);
/* KLL: the value of rank fraction q in a serialized sketch (NaN if empty). */
double weft__bag_kll_quantile(const void *sk, size_t len, double q);
/* Partial outputs of T_STATS. */
void weft__bag_stats_finish(weft_bag_stats *s);

struct weft_bag_records {
    unsigned char *buf; /* the partition encoding */
    size_t len;
    size_t n;
    size_t *off; /* offset of each record's header */
};
/* Makes a records list from the partition encoding data[0..len) (copied). */
int weft__bag_records_make(const void *data, size_t len, weft_bag_records **out);

#endif

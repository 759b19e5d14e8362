/* weft/bag.h : bags (dask.bag, Spark's RDD actions): lazy, partitioned
 * collections of records, run on any executor through the graph layer.
 * Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_bag          an immutable, reference-counted description of a
 *                     collection: a source split into partitions, then
 *                     operations; nothing runs until a terminal call
 *                     (count, fold, topk, collect, quantiles, ...)
 *   weft_bag_emit     where a user function writes its output records
 *   weft_bag_iter     how a partition function reads its input records
 *   weft_bag_records  a list of records handed back to the caller
 *
 * A record is a byte string. Typed records are 8-byte doubles or int64s in
 * the machine's byte order, text (the bytes, no terminator) and pairs (a
 * key and a value, weft_bag_pair_*): the typed helpers write and read them.
 *
 * User functions (map, filter, fold, key, comparator, generator, ...) run
 * inside tasks, possibly in other processes or on other machines. They are
 * named by pointer on the serial and threads backends; on processes and mpi
 * they must be registered with WEFT_BAG_FN(fn) (or weft_bag_fn_register
 * before weft_init), and the bag finds the name with weft_task_name: an
 * unregistered function there is WEFT_ENOTREG at the terminal call, before
 * anything runs. Their `arg[0..alen)` bytes are copied into the bag and sent
 * with each task. docs/bag.md has the design.
 *
 * Threads: a weft_bag is immutable; any thread may build on it, compute it
 * and release its own references. The functions on weft_bag_emit and
 * weft_bag_iter are for the task's own thread, during the call. */
#ifndef WEFT_BAG_H
#define WEFT_BAG_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/bag.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_bag weft_bag;
typedef struct weft_bag_emit weft_bag_emit;
typedef struct weft_bag_iter weft_bag_iter;
typedef struct weft_bag_records weft_bag_records;

/* ------------------------------------------------------------------------
 * User functions
 * ------------------------------------------------------------------------ */

/* map / flatmap: reads one record, writes 0..n records to `out` (a map
 * exactly one). Returns 0 or a negative WEFT_E* code (the task fails). */
typedef int (*weft_bag_map_fn)(const void *rec, size_t len, const void *arg, size_t alen,
                               weft_bag_emit *out);
/* filter: returns 1 to keep the record, 0 to drop it, < 0 to fail. */
typedef int (*weft_bag_pred_fn)(const void *rec, size_t len, const void *arg, size_t alen);
/* map_partitions / reduction: reads the partition's records from `in`,
 * writes records to `out`. */
typedef int (*weft_bag_part_fn)(weft_bag_iter *in, const void *arg, size_t alen,
                                weft_bag_emit *out);
/* generator: writes the records of partition `part` of `nparts`. */
typedef int (*weft_bag_gen_fn)(uint64_t part, uint64_t nparts, const void *arg, size_t alen,
                               weft_bag_emit *out);
/* fold binop: folds `rec` into the accumulator acc[0..acc_size). */
typedef int (*weft_bag_binop_fn)(void *acc, size_t acc_size, const void *rec, size_t len,
                                 const void *arg, size_t alen);
/* fold combine: folds the accumulator `other` into `acc` (same size). */
typedef int (*weft_bag_combine_fn)(void *acc, const void *other, size_t acc_size, const void *arg,
                                   size_t alen);
/* key: gives the key of `rec` in *key[0..*klen): a pointer into `rec`, or
 * into storage of the function's thread valid until its next call. */
typedef int (*weft_bag_key_fn)(const void *rec, size_t len, const void *arg, size_t alen,
                               const void **key, size_t *klen);
/* comparator: < 0, 0, > 0 as a orders before, equal to, after b. */
typedef int (*weft_bag_cmp_fn)(const void *a, size_t alen_a, const void *b, size_t alen_b,
                               const void *arg, size_t alen);

/* WEFT_BAG_FN(fn) : registers the bag function `fn` (any of the types above)
 * under the name "fn" before main() runs, so that processes and mpi workers
 * find it; WEFT_BAG_FN_AS(fn, "name") chooses the name. At file scope,
 * after the function. It shares the task registry (weft_task_name). */
#define WEFT_BAG_FN_AS(fn, name)                                              \
    __attribute__((constructor)) static void weft__bag_register_##fn(void)    \
    {                                                                         \
        weft__task_register_static(name, (weft_task_fn)(void (*)(void))(fn)); \
    }                                                                         \
    struct weft__bag_semicolon_##fn
#define WEFT_BAG_FN(fn) WEFT_BAG_FN_AS(fn, #fn)

/* weft_bag_fn_register() :
 * Registers a bag function under `name` at run time (call it before
 * weft_init so that worker processes, forked then, know it).
 * Threads: any. @return as weft_task_register. */
WEFT_API int weft_bag_fn_register(const char *name, void (*fn)(void));

/* ------------------------------------------------------------------------
 * Records: writing, reading, typed helpers
 * ------------------------------------------------------------------------ */

/* weft_bag_emit_rec() :
 * Writes the record data[0..len) to `out` (it is passed on at once; `data`
 * may be reused after the call). Threads: the task's thread, during the
 * user function's call. @return 0, or a negative code to return at once. */
WEFT_API int weft_bag_emit_rec(weft_bag_emit *out, const void *data, size_t len);
/* weft_bag_emit_double(), _int64(), _text() : an 8-byte double or int64
 * record, or the bytes of a NUL-terminated string (without the NUL). */
WEFT_API int weft_bag_emit_double(weft_bag_emit *out, double v);
WEFT_API int weft_bag_emit_int64(weft_bag_emit *out, int64_t v);
WEFT_API int weft_bag_emit_text(weft_bag_emit *out, const char *s);
/* weft_bag_emit_pair() : a pair record (key, value); see weft_bag_pair_get. */
WEFT_API int weft_bag_emit_pair(weft_bag_emit *out, const void *key, size_t klen, const void *val,
                                size_t vlen);

/* weft_bag_iter_next() :
 * The next record of a partition function's input in *rec[0..*len), valid
 * until the function returns. Threads: the task's thread.
 * @return 1 (a record), 0 (no more). */
WEFT_API int weft_bag_iter_next(weft_bag_iter *it, const void **rec, size_t *len);

/* weft_bag_rec_double(), weft_bag_rec_int64() :
 * Reads an 8-byte record into *v. Pure. @return 0, or WEFT_EINVAL (len != 8). */
WEFT_API int weft_bag_rec_double(const void *rec, size_t len, double *v);
WEFT_API int weft_bag_rec_int64(const void *rec, size_t len, int64_t *v);

/* A pair record is [u32 key length][key][value]: weft_bag_pair_make writes
 * one into dst (dst NULL: only the size), weft_bag_pair_get splits one.
 * Pairs are what product, zip, frequencies, foldby, groupby and join make.
 * Pure. weft_bag_pair_get @return 0, or WEFT_EINVAL (not a pair). */
WEFT_API size_t weft_bag_pair_make(void *dst, const void *key, size_t klen, const void *val,
                                   size_t vlen);
WEFT_API int weft_bag_pair_get(const void *rec, size_t len, const void **key, size_t *klen,
                               const void **val, size_t *vlen);

/* weft_bag_records_*() : a list of records owned by the caller.
 * _count: how many; _get: the i-th in *data[0..*len) (valid until _destroy;
 * @return 0 or WEFT_EINVAL); _destroy frees it (NULL is a no-op; returns 0).
 * Threads: read from any thread; destroy once. */
WEFT_API size_t weft_bag_records_count(const weft_bag_records *r);
WEFT_API int weft_bag_records_get(const weft_bag_records *r, size_t i, const void **data,
                                  size_t *len);
WEFT_API int weft_bag_records_destroy(weft_bag_records *r);

/* ------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------ */

/* Sources hand a new bag in *out (the caller holds one reference; drop it
 * with weft_bag_release). `nparts` 0 means 1 per ~64 Ki records (at most 64).
 * Threads: any. @return 0, WEFT_EINVAL, WEFT_ENOMEM (and for files
 * WEFT_ENOENT and -errno, naming the file in weft_last_error()). */

/* weft_bag_from_sequence() : copies records items[0..n) into nparts partitions
 * of consecutive records (sizes differ by at most one). */
WEFT_API int weft_bag_from_sequence(const weft_buf *items, size_t n, size_t nparts, weft_bag **out);
/* weft_bag_from_doubles(), _int64s(), _texts() : the same from typed arrays. */
WEFT_API int weft_bag_from_doubles(const double *v, size_t n, size_t nparts, weft_bag **out);
WEFT_API int weft_bag_from_int64s(const int64_t *v, size_t n, size_t nparts, weft_bag **out);
WEFT_API int weft_bag_from_texts(const char *const *v, size_t n, size_t nparts, weft_bag **out);
/* weft_bag_range() : the int64 records start, start+step, ... < stop
 * (> stop for a negative step), in nparts partitions; step 0 is EINVAL. */
WEFT_API int weft_bag_range(int64_t start, int64_t stop, int64_t step, size_t nparts,
                            weft_bag **out);
/* weft_bag_from_generator() : nparts partitions made by fn(part, nparts, arg). */
WEFT_API int weft_bag_from_generator(weft_bag_gen_fn fn, const void *arg, size_t alen,
                                     size_t nparts, weft_bag **out);

typedef struct weft_bag_text_options {
    /* bytes per partition of an uncompressed file; 0 = 64 MiB. */
    uint64_t blocksize;
    /* partitions per uncompressed file instead (0 = by blocksize). */
    size_t parts_per_file;
} weft_bag_text_options;

/* weft_bag_read_text() :
 * The lines of the files matching the glob `pattern` (sorted by name), one
 * record per line without its "\n" or "\r\n". Uncompressed files are split
 * into byte ranges; a partition holds every line that starts in its range
 * (so each line is read exactly once, whatever the split). Files ending in
 * ".gz" (gzip, zlib) or ".zst" (zstd) are read whole, one partition each,
 * streaming. The files are listed and sized now, read at compute time.
 * @return as the sources; WEFT_ENOENT if nothing matches. */
WEFT_API int weft_bag_read_text(const char *pattern, const weft_bag_text_options *opts,
                                weft_bag **out);

typedef enum weft_bag_num {
    WEFT_BAG_DOUBLE = 0, /* 8-byte IEEE doubles */
    WEFT_BAG_INT64 = 1,  /* 8-byte signed integers */
} weft_bag_num;

/* weft_bag_read_raw() :
 * The 8-byte values of the raw binary file `path` (native byte order, no
 * header) as records, `per_part` values per partition (0 = 8 Mi). This is
 * the .npy reader until weft's arrays land: write the array's data with
 * numpy's tofile(). @return as the sources; WEFT_EINVAL if the size is not
 * a multiple of 8. */
WEFT_API int weft_bag_read_raw(const char *path, weft_bag_num kind, size_t per_part,
                               weft_bag **out);

/* weft_bag_retain(), weft_bag_release() : reference counting (NULL is a no-op
 * for release; release returns 0). Bags built from a bag hold a reference to
 * it. Threads: any. */
WEFT_API void weft_bag_retain(weft_bag *b);
WEFT_API int weft_bag_release(weft_bag *b);
/* weft_bag_nparts() : the number of partitions (0 for NULL). */
WEFT_API size_t weft_bag_nparts(const weft_bag *b);

/* ------------------------------------------------------------------------
 * Operations: each makes a new lazy bag in *out (a new reference; `b` keeps
 * its own). Threads: any. @return 0, WEFT_EINVAL, WEFT_ENOMEM.
 * ------------------------------------------------------------------------ */

WEFT_API int weft_bag_map(weft_bag *b, weft_bag_map_fn fn, const void *arg, size_t alen,
                          weft_bag **out);
WEFT_API int weft_bag_flatmap(weft_bag *b, weft_bag_map_fn fn, const void *arg, size_t alen,
                              weft_bag **out);
WEFT_API int weft_bag_filter(weft_bag *b, weft_bag_pred_fn fn, const void *arg, size_t alen,
                             weft_bag **out);
WEFT_API int weft_bag_map_partitions(weft_bag *b, weft_bag_part_fn fn, const void *arg, size_t alen,
                                     weft_bag **out);
/* weft_bag_product() : every pair (x, y), x of a, y of b, as pair records
 * (key x, value y); a.nparts * b.nparts partitions. */
WEFT_API int weft_bag_product(weft_bag *a, weft_bag *b, weft_bag **out);
/* weft_bag_zip() : pairs (x_i, y_i) of two bags with the same number of
 * partitions; partitions of unequal lengths fail at compute (WEFT_EINVAL). */
WEFT_API int weft_bag_zip(weft_bag *a, weft_bag *b, weft_bag **out);
/* weft_bag_repartition() : the same records in order, in nparts partitions
 * of equal record counts (counted first: one pass over b at compute). */
WEFT_API int weft_bag_repartition(weft_bag *b, size_t nparts, weft_bag **out);
/* weft_bag_join() : for each record x with key(x) found in the small table
 * `table` (pair records key -> value, copied into the bag), the pair (x,
 * value); records whose key is not in the table are dropped (inner join),
 * and a key met several times in the table gives one pair for each. */
WEFT_API int weft_bag_join(weft_bag *b, weft_bag_key_fn key, const void *arg, size_t alen,
                           const weft_bag_records *table, weft_bag **out);

/* weft_bag_frequencies() : pair records (record, int64 count), one per
 * distinct record, in one partition (dask's frequencies). */
WEFT_API int weft_bag_frequencies(weft_bag *b, weft_bag **out);
/* weft_bag_distinct() : each distinct record once, in one partition. */
WEFT_API int weft_bag_distinct(weft_bag *b, weft_bag **out);
/* weft_bag_foldby() : reduce by key with no shuffle: per partition, a table
 * key -> accumulator (init[0..acc_size) folded with binop), the tables
 * combined in a tree; pair records (key, accumulator), one partition. */
WEFT_API int weft_bag_foldby(weft_bag *b, weft_bag_key_fn key, weft_bag_binop_fn binop,
                             weft_bag_combine_fn combine, const void *init, size_t acc_size,
                             const void *arg, size_t alen, weft_bag **out);

typedef struct weft_bag_groupby_options {
    size_t nparts;         /* output partitions; 0 = as the input */
    uint64_t mem_bound;    /* bytes a shuffle task keeps in memory before it spills to
                            files; 0 = 64 MiB */
    const char *spill_dir; /* 0 = $TMPDIR, else /tmp (copied) */
} weft_bag_groupby_options;

/* weft_bag_groupby() : a hash shuffle by key into nparts partitions, then per
 * partition one pair record per key: (key, the key's records as a list in
 * weft_bag_records encoding: [u32 length][bytes] each, in input order). A
 * shuffle task whose buckets pass mem_bound writes them to files in
 * spill_dir, read back (and deleted) by the grouping tasks. */
WEFT_API int weft_bag_groupby(weft_bag *b, weft_bag_key_fn key, const void *arg, size_t alen,
                              const weft_bag_groupby_options *opts, weft_bag **out);

/* ------------------------------------------------------------------------
 * Terminal calls: run on `ex` (any backend) and wait.
 * Threads: any thread; `ex` may be shared. @return 0, WEFT_EINVAL,
 * WEFT_ENOMEM, WEFT_ENOTREG (a function without a name on a backend that
 * needs one), or the first failing task's code with weft_last_error()
 * naming it (e.g. a file that cannot be read, with its byte offset).
 * ------------------------------------------------------------------------ */

/* weft_bag_collect() : every record, in partition order, in *out (the
 * caller's, weft_bag_records_destroy). */
WEFT_API int weft_bag_collect(weft_bag *b, weft_executor *ex, weft_bag_records **out);
/* weft_bag_take() : the first n records (fewer if the bag is shorter),
 * computing partitions from the first only until n are found. */
WEFT_API int weft_bag_take(weft_bag *b, weft_executor *ex, size_t n, weft_bag_records **out);

/* Stream callback: partition `part`'s records; return 0 to go on, non-zero to
 * stop (weft_bag_stream then returns that value). */
typedef int (*weft_bag_stream_cb)(void *ctx, size_t part, const weft_bag_records *recs);
/* weft_bag_stream() : computes the partitions in order, a few at a time
 * (about twice the workers), and calls cb for each in order from the
 * calling thread, freeing each after its call: memory holds a window of
 * partitions, not the bag. */
WEFT_API int weft_bag_stream(weft_bag *b, weft_executor *ex, weft_bag_stream_cb cb, void *ctx);

/* weft_bag_count() : the number of records. */
WEFT_API int weft_bag_count(weft_bag *b, weft_executor *ex, uint64_t *out);

typedef struct weft_bag_stats {
    uint64_t count; /* values, NaN included */
    uint64_t nans;  /* NaN values (doubles) */
    double sum;     /* over the non-NaN values */
    double min, max;
    double mean;
    double m2;    /* sum of squared deviations from the mean (Chan's merge) */
    int64_t isum; /* WEFT_BAG_INT64: the exact sum (wraps on overflow) */
    int64_t imin, imax;
} weft_bag_stats;

/* weft_bag_describe() : count, sum, min, max, mean and variance in one pass over
 * records read as `kind` (each must be 8 bytes, else WEFT_EINVAL). NaNs are
 * counted in `nans` and left out of the rest. min/max of no value are NaN. */
WEFT_API int weft_bag_describe(weft_bag *b, weft_executor *ex, weft_bag_num kind,
                               weft_bag_stats *out);
/* weft_bag_sum(), _min(), _max(), _mean(), _var(), _std() : from
 * weft_bag_describe; var and std with `ddof` (0 population, 1 sample; NaN when
 * count - ddof <= 0). */
WEFT_API int weft_bag_sum(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out);
WEFT_API int weft_bag_min(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out);
WEFT_API int weft_bag_max(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out);
WEFT_API int weft_bag_mean(weft_bag *b, weft_executor *ex, weft_bag_num kind, double *out);
WEFT_API int weft_bag_var(weft_bag *b, weft_executor *ex, weft_bag_num kind, int ddof, double *out);
WEFT_API int weft_bag_std(weft_bag *b, weft_executor *ex, weft_bag_num kind, int ddof, double *out);

/* weft_bag_fold() :
 * Folds every record into acc (acc_size bytes, starting from init) with
 * binop per partition, then combines the partitions' accumulators with
 * combine in a tree; the result in out[0..acc_size). */
WEFT_API int weft_bag_fold(weft_bag *b, weft_executor *ex, weft_bag_binop_fn binop,
                           weft_bag_combine_fn combine, const void *init, size_t acc_size,
                           const void *arg, size_t alen, void *out);
/* weft_bag_reduction() :
 * dask's reduction: perpart(records of a partition) -> records, then
 * aggregate(records of up to split_every partial results, concatenated) ->
 * records, as a tree until one remains (aggregate must accept its own
 * output). split_every 0 = 8 (at most 64). The final records in *out. */
WEFT_API int weft_bag_reduction(weft_bag *b, weft_executor *ex, weft_bag_part_fn perpart,
                                weft_bag_part_fn aggregate, const void *arg, size_t alen,
                                size_t split_every, weft_bag_records **out);

typedef enum weft_bag_key_kind {
    WEFT_BAG_KEY_DOUBLE = 0,      /* the record is a double (NaN after +inf) */
    WEFT_BAG_KEY_INT64 = 1,       /* the record is an int64 */
    WEFT_BAG_KEY_BYTES = 2,       /* the bytes, lexicographic (memcmp, shorter first) */
    WEFT_BAG_KEY_PAIR_INT64 = 3,  /* a pair's value as an int64 (frequencies' counts) */
    WEFT_BAG_KEY_PAIR_DOUBLE = 4, /* a pair's value as a double */
    WEFT_BAG_KEY_CMP = 5,         /* the comparator `cmp` */
} weft_bag_key_kind;

typedef struct weft_bag_topk_options {
    weft_bag_key_kind key;
    weft_bag_cmp_fn cmp; /* WEFT_BAG_KEY_CMP */
    const void *arg;     /* cmp's argument bytes */
    size_t alen;
    bool smallest; /* the k smallest; default the k largest (Spark's top) */
} weft_bag_topk_options;

/* weft_bag_topk() :
 * The k largest (or smallest) records in order, best first: a bounded heap
 * of k per partition and a tree of merges of sorted k-lists -- never a sort
 * of the bag. Ties are broken by the record bytes, so the answer is the same
 * on every backend and partitioning. opts NULL = largest doubles. */
WEFT_API int weft_bag_topk(weft_bag *b, weft_executor *ex, size_t k,
                           const weft_bag_topk_options *opts, weft_bag_records **out);

/* ------------------------------------------------------------------------
 * Quantiles (docs/bag.md "The median in parallel")
 * ------------------------------------------------------------------------ */

typedef enum weft_bag_qmethod {
    WEFT_BAG_Q_LINEAR = 0,       /* numpy's default 'linear' (Hyndman-Fan 7) */
    WEFT_BAG_Q_INVERTED_CDF = 1, /* numpy's 'inverted_cdf' (H-F 1): a value of the data */
} weft_bag_qmethod;

typedef enum weft_bag_nan {
    WEFT_BAG_NAN_PROPAGATE = 0, /* any NaN makes every result NaN (numpy.quantile) */
    WEFT_BAG_NAN_OMIT = 1,      /* NaNs are left out (numpy.nanquantile) */
} weft_bag_nan;

typedef struct weft_bag_quantile_options {
    weft_bag_num kind;
    weft_bag_qmethod method;
    weft_bag_nan nan;
    uint64_t select_max; /* a bucket this small is gathered and selected in; 0 = 1 Mi */
} weft_bag_quantile_options;

/* weft_bag_quantiles() :
 * The exact quantiles q[0..nq) (each in [0, 1]) of the numeric records, as
 * numpy.quantile(x, q, method=...) gives them, in out[0..nq): a few passes of
 * parallel radix-histogram refinement on the values' order-preserving 64-bit
 * keys, then a selection in the last small bucket. No sort, no gathering:
 * O(n) work per pass, O(partitions x 65536 + select_max) memory. An empty bag (or all
 * NaN with WEFT_BAG_NAN_OMIT) gives NaN. Int64 values are exact as keys;
 * their interpolated quantiles are doubles. */
WEFT_API int weft_bag_quantiles(weft_bag *b, weft_executor *ex, const double *q, size_t nq,
                                const weft_bag_quantile_options *opts, double *out);
/* weft_bag_median() : as numpy.median: the middle value, or the mean (a+b)/2
 * of the two middle values. */
WEFT_API int weft_bag_median(weft_bag *b, weft_executor *ex, const weft_bag_quantile_options *opts,
                             double *out);

/* weft_bag_quantiles_approx() :
 * Quantiles in one pass with a mergeable KLL sketch of parameter k (0 =
 * 256) per partition, merged in a tree. The value returned for q has a rank
 * within eps * n of q * n, with eps = 2.0 / k stated (and checked in the
 * tests) as the bound for k >= 128; the sketch's randomness is seeded per
 * partition, so the answer is the same on every backend. NaNs are omitted. */
WEFT_API int weft_bag_quantiles_approx(weft_bag *b, weft_executor *ex, weft_bag_num kind,
                                       const double *q, size_t nq, size_t k, double *out);

/* ------------------------------------------------------------------------
 * Output files
 * ------------------------------------------------------------------------ */

typedef enum weft_bag_compress {
    WEFT_BAG_COMPRESS_NONE = 0,
    WEFT_BAG_COMPRESS_GZIP = 1,
    WEFT_BAG_COMPRESS_ZSTD = 2,
} weft_bag_compress;

/* weft_bag_to_textfiles() :
 * Writes partition i to the file named by `pattern` with its '*' replaced by
 * i (zero-padded to 5 digits), one record per line ("\n" after each), gzip
 * or zstd compressed if asked; each partition is written by its own task.
 * *written (may be NULL) gets the number of records written. */
WEFT_API int weft_bag_to_textfiles(weft_bag *b, weft_executor *ex, const char *pattern,
                                   weft_bag_compress compress, uint64_t *written);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BAG_H */

/* weft/table.h : partitioned tables (dask.dataframe, pandarallel's
 * parallel_apply) read from CSV in parallel and processed in bounded memory.
 * Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_table   one in-memory table: named, typed columns (int64, double,
 *                bool, text), each with an optional validity mask for
 *                missing values. A partition is a weft_table: it is what a
 *                user's task gets and returns (weft_table_arg,
 *                weft_table_output), serialized compactly between processes.
 *   weft_frame   a lazy partitioned table on the graph layer: a list of
 *                partitions, each a node of a weft_graph (a CSV byte range,
 *                a piece of an in-memory table, or an operation on another
 *                frame's partition). Operations add nodes; the functions
 *                that take an executor run them, a bounded number of
 *                partitions at a time (weft_table_run_options.in_flight).
 *
 * docs/table.md has the CSV dialect, the partitioning method, the memory
 * bound and the figures.
 *
 * Threads: a weft_table is immutable once built and may be read from any
 * number of threads; building (weft_table_add_*) is one thread's. Frames
 * derived from one source share one graph: use them from one thread at a
 * time (the tasks run on the executor's workers). */
#ifndef WEFT_TABLE_H
#define WEFT_TABLE_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/table.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Tables (one partition)
 * ------------------------------------------------------------------------ */

typedef enum weft_col_type {
    WEFT_COL_NONE = 0,   /* no such column */
    WEFT_COL_INT64 = 1,  /* int64_t */
    WEFT_COL_DOUBLE = 2, /* double (a missing value also reads as NaN) */
    WEFT_COL_BOOL = 3,   /* bool */
    WEFT_COL_TEXT = 4,   /* NUL-terminated UTF-8 bytes */
} weft_col_type;

typedef struct weft_table weft_table;

/* weft_col_type_name() : "int64", "double", "bool", "text" or "none". */
WEFT_API const char *weft_col_type_name(weft_col_type type);

/* weft_table_create() :
 * Creates an empty table (no columns, no rows).
 * Ownership: the caller frees `*out` with weft_table_destroy().
 * @return 0, WEFT_EINVAL (NULL out), WEFT_ENOMEM; `*out` NULL on error. */
WEFT_API int weft_table_create(weft_table **out);

/* weft_table_destroy() : frees `t` and its columns. NULL is a no-op.
 * A column's block of 1 MiB or more is parked in the process's table
 * cache for the next partitions and runs (weft_table_cache_release()).
 * @return 0. Threads: no other call on `t` may be in progress. */
WEFT_API int weft_table_destroy(weft_table *t);

/* weft_table_cache_release() :
 * Frees every block parked in the table cache: the blocks of 1 MiB or
 * more (columns, read buffers) that tables and reads gave back, kept to
 * be handed to the next ones instead of being returned to the kernel and
 * faulted in again (docs/table.md "Memory kept between runs"). The cache
 * holds at most WEFT_TABLE_CACHE_MIB MiB (default 256; 0: no cache; read
 * each time a block is parked), the oldest blocks leaving first. Call it
 * when a process is done with tables for a while, or before fork() when
 * the child's memory is measured. @return 0. Threads: any thread, at any
 * time. */
WEFT_API int weft_table_cache_release(void);

/* weft_table_add_int64(), _add_double(), _add_bool() :
 * Appends a column `name` (copied; names are unique) of `n` values copied
 * from `data`; `valid` (may be NULL: all valid) gives one byte per row,
 * 0 = missing. Every column of a table has the same length: the first
 * column sets it. Threads: the thread building `t`.
 * @return 0, WEFT_EINVAL (NULL t/name, data NULL with n > 0, a length
 * unlike the others, a name already used), WEFT_ENOMEM. */
WEFT_API int weft_table_add_int64(weft_table *t, const char *name, const int64_t *data,
                                  const uint8_t *valid, size_t n);
WEFT_API int weft_table_add_double(weft_table *t, const char *name, const double *data,
                                   const uint8_t *valid, size_t n);
WEFT_API int weft_table_add_bool(weft_table *t, const char *name, const bool *data,
                                 const uint8_t *valid, size_t n);

/* weft_table_add_text() :
 * Appends a text column of `n` strings copied from `strs`; a NULL string
 * is a missing value. As weft_table_add_int64 otherwise. */
WEFT_API int weft_table_add_text(weft_table *t, const char *name, const char *const *strs,
                                 size_t n);

/* weft_table_rows(), weft_table_cols() : the shape (0 for NULL). */
WEFT_API size_t weft_table_rows(const weft_table *t);
WEFT_API size_t weft_table_cols(const weft_table *t);

/* weft_table_col_index() : finds the column called `name`.
 * @return 0 and `*col`, WEFT_ENOENT (no such column), WEFT_EINVAL. */
WEFT_API int weft_table_col_index(const weft_table *t, const char *name, size_t *col);

/* weft_table_col_name(), weft_table_col_type() : column `col`'s name
 * (owned by `t`; NULL out of range) and type (WEFT_COL_NONE out of range). */
WEFT_API const char *weft_table_col_name(const weft_table *t, size_t col);
WEFT_API weft_col_type weft_table_col_type(const weft_table *t, size_t col);

/* weft_table_col_data() :
 * A column as a plain C array: `*data` is the int64_t[], double[] or bool[]
 * of `rows` values (a missing double is NaN, a missing int64 or bool 0),
 * `*valid` its validity bytes or NULL when no value is missing. Either
 * out-parameter may be NULL. Zero copy.
 * Ownership: both point into `t`, valid until it is destroyed.
 * @return 0, WEFT_EINVAL (NULL t, col out of range, a text column: use
 * weft_table_get_text). */
WEFT_API int weft_table_col_data(const weft_table *t, size_t col, const void **data,
                                 const uint8_t **valid);

/* weft_table_get_int64(), _get_double(), _get_bool(), _get_text() :
 * Reads the cell (`col`, `row`): its value in `*v` (a text cell's
 * NUL-terminated bytes, owned by `t`) and whether it is present in `*valid`
 * (may be NULL). An int64 cell may be read as double.
 * @return 0, WEFT_EINVAL (out of range, another type). Threads: any. */
WEFT_API int weft_table_get_int64(const weft_table *t, size_t col, size_t row, int64_t *v,
                                  bool *valid);
WEFT_API int weft_table_get_double(const weft_table *t, size_t col, size_t row, double *v,
                                   bool *valid);
WEFT_API int weft_table_get_bool(const weft_table *t, size_t col, size_t row, bool *v, bool *valid);
WEFT_API int weft_table_get_text(const weft_table *t, size_t col, size_t row, const char **v,
                                 bool *valid);

/* weft_table_slice() : a new table of rows [start, end) of `t` (copied).
 * Ownership: the caller destroys `*out`.
 * @return 0, WEFT_EINVAL (start > end or end > rows), WEFT_ENOMEM. */
WEFT_API int weft_table_slice(const weft_table *t, size_t start, size_t end, weft_table **out);

/* weft_table_concat() : the rows of parts[0..n) one after another in a new
 * table; every part has the same column names and types (n == 0 gives an
 * empty table). Ownership: the caller destroys `*out`.
 * @return 0, WEFT_EINVAL (unlike columns), WEFT_ENOMEM. */
WEFT_API int weft_table_concat(const weft_table *const *parts, size_t n, weft_table **out);

/* weft_table_equal() : true when `a` and `b` have the same columns (names,
 * types), rows, validity and values (doubles compared by bits, NaN equal). */
WEFT_API bool weft_table_equal(const weft_table *a, const weft_table *b);

/* weft_table_serialize() :
 * Writes `t` in weft's compact partition format (docs/table.md: a header,
 * then each column's name, type, values, text offsets and validity bytes,
 * in native byte order) into a malloc'ed buffer `*buf` of `*len` bytes.
 * Ownership: the caller frees `*buf` with free().
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_table_serialize(const weft_table *t, void **buf, size_t *len);

/* weft_table_deserialize() :
 * Reads a table written by weft_table_serialize from `buf[0..len)`; any
 * malformed input is refused, never read past `len`.
 * Ownership: the caller destroys `*out`; `buf` is not kept.
 * @return 0, WEFT_EINVAL (not a serialized table), WEFT_ENOMEM. */
WEFT_API int weft_table_deserialize(const void *buf, size_t len, weft_table **out);

/* weft_table_arg() :
 * In a graph task (a map_partitions or assign function): decodes argument
 * `i` of the task's input `in[0..len)` as a table: a copy, or, when the
 * frame runs over a CSV read (docs/table.md "Derived frames in the
 * window"), the partition in place (no copy). Either way the task owns the
 * table, may add columns to it and destroys it before it returns.
 * Ownership: the caller destroys `*out`. Threads: the task's thread.
 * @return 0, WEFT_EINVAL (no such argument, not a table), WEFT_ENOMEM. */
WEFT_API int weft_table_arg(const void *in, size_t len, size_t i, weft_table **out);

/* weft_table_output() :
 * In a task: makes the serialized `t` the task's output (`t` is not kept;
 * over a CSV read the frame takes its columns without serializing them).
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM. Threads: the task's thread. */
WEFT_API int weft_table_output(weft_ctx *ctx, const weft_table *t);

/* weft_table_skipped() : rows the CSV reader skipped as malformed while
 * making `t` (WEFT_CSV_SKIP_BAD), summed over concatenated parts. */
WEFT_API uint64_t weft_table_skipped(const weft_table *t);

/* ------------------------------------------------------------------------
 * CSV
 * ------------------------------------------------------------------------ */

enum {
    WEFT_CSV_NO_HEADER = 1u << 0, /* the first record is data; columns are named c0, c1, ... */
    WEFT_CSV_SKIP_BAD = 1u << 1,  /* skip and count malformed records instead of failing */
};

/* One column of a schema: its name and type. */
typedef struct weft_csv_column {
    const char *name;
    weft_col_type type;
} weft_csv_column;

typedef struct weft_csv_options {
    char delimiter; /* field delimiter; 0 = ',' */
    unsigned flags; /* WEFT_CSV_* */
    /* Fields read as missing values (compared after unquoting); NULL takes
     * the default: "", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A". */
    const char *const *na_values;
    size_t n_na_values;
    /* Column types: the schema (in file order, names must match the header
     * unless WEFT_CSV_NO_HEADER); NULL infers them from a sample. */
    const weft_csv_column *schema;
    size_t n_schema;
    size_t sample_bytes; /* inference sample from the first file; 0 = 1 MiB */
    size_t block_size;   /* bytes per partition; 0 = 32 MiB */
} weft_csv_options;

/* weft_csv_write_options: for weft_frame_write_csv. */
typedef struct weft_csv_write_options {
    char delimiter;         /* 0 = ',' */
    const char *na_rep;     /* text of a missing value; NULL = "" */
    bool no_header;         /* leave the header line out */
    bool one_per_partition; /* `path` holds a '*', replaced by the partition number */
} weft_csv_write_options;

/* weft_table_to_csv() :
 * `t` as CSV text, as weft_frame_write_csv writes it (the header line first
 * when `header`), in a malloc'ed buffer `*buf` of `*len` bytes (not
 * NUL-terminated); `wopts` NULL = defaults (one_per_partition is ignored).
 * Ownership: the caller frees `*buf` with free(). Threads: any.
 * @return 0, WEFT_EINVAL (NULL argument), WEFT_ENOMEM. */
WEFT_API int weft_table_to_csv(const weft_table *t, const weft_csv_write_options *wopts,
                               bool header, char **buf, size_t *len);

/* ------------------------------------------------------------------------
 * Frames: lazy partitioned tables
 * ------------------------------------------------------------------------ */

typedef struct weft_frame weft_frame;

/* How the functions that run a frame run it. */
typedef struct weft_table_run_options {
    /* Partitions read and processed at once (the memory bound: about
     * in_flight x block_size x 3 for a CSV source); 0 = 2 x workers. */
    size_t in_flight;
    int progress; /* as weft_compute_options.progress */
} weft_table_run_options;

/* weft_frame_from_table() :
 * A frame of `t` split into `nparts` partitions of nearly equal rows
 * (numpy.array_split's rule; nparts 0 = 1). The rows are copied into the
 * frame's graph. Ownership: the caller destroys `*out`; `t` is not kept.
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_frame_from_table(const weft_table *t, size_t nparts, weft_frame **out);

/* weft_frame_read_csv() :
 * A frame over the CSV files paths[0..n): each file split into byte ranges
 * of about opts->block_size, each range one partition holding the records
 * that start in it (docs/table.md, "Partitioning"). Reads the header and
 * an inference sample of the first file now; the rest is read when the
 * frame runs. Ownership: the caller destroys `*out`.
 * Threads: any; the frame is then used by one thread at a time.
 * @return 0, WEFT_EINVAL (bad options; a header unlike the first file's or
 * the schema's), -errno of opening a file, WEFT_ENOMEM. */
WEFT_API int weft_frame_read_csv(const char *const *paths, size_t n, const weft_csv_options *opts,
                                 weft_frame **out);

/* weft_frame_destroy() : frees the frame (the shared graph goes with the
 * last frame using it). NULL is a no-op. @return 0. */
WEFT_API int weft_frame_destroy(weft_frame *f);

/* weft_frame_partitions() : the number of partitions (0 for NULL). */
WEFT_API size_t weft_frame_partitions(const weft_frame *f);

/* weft_frame_map_partitions() :
 * pandarallel's parallel_apply: a frame whose partition i is the table the
 * registered task `fn` returns (weft_table_output) for partition i. `fn`
 * receives two arguments: 0 the partition (weft_table_arg), 1 the bytes
 * arg[0..arglen) (copied). Results keep the partitions' order. Over a CSV
 * read, chains of map_partitions, assign, filter, select and join run with
 * the read, one task per range, in_flight ranges at a time.
 * Ownership: the caller destroys `*out`; `f` stays usable.
 * @return 0, WEFT_EINVAL (NULL argument), WEFT_ENOMEM. */
WEFT_API int weft_frame_map_partitions(const weft_frame *f, weft_task_fn fn, const void *arg,
                                       size_t arglen, weft_frame **out);

/* weft_frame_assign() :
 * Derived columns: `fn` is called as in weft_frame_map_partitions and
 * returns a table of the same row count; its columns are appended to the
 * partition (replacing columns of the same name). @return as map_partitions. */
WEFT_API int weft_frame_assign(const weft_frame *f, weft_task_fn fn, const void *arg, size_t arglen,
                               weft_frame **out);

typedef enum weft_cmp {
    WEFT_CMP_LT = 1,
    WEFT_CMP_LE,
    WEFT_CMP_EQ,
    WEFT_CMP_NE,
    WEFT_CMP_GE,
    WEFT_CMP_GT,
} weft_cmp;

/* weft_frame_filter() :
 * Keeps the rows where the bool column `column` is true (missing: dropped).
 * weft_frame_filter_cmp() keeps the rows where the numeric column `column`
 * compares to `value` as `op` says (missing and NaN: dropped, as pandas).
 * A missing column fails when the frame runs. @return as map_partitions. */
WEFT_API int weft_frame_filter(const weft_frame *f, const char *column, weft_frame **out);
WEFT_API int weft_frame_filter_cmp(const weft_frame *f, const char *column, weft_cmp op,
                                   double value, weft_frame **out);

/* weft_frame_select() : the columns names[0..n), in that order. */
WEFT_API int weft_frame_select(const weft_frame *f, const char *const *names, size_t n,
                               weft_frame **out);

typedef enum weft_join_kind {
    WEFT_JOIN_INNER = 0,
    WEFT_JOIN_LEFT = 1,
} weft_join_kind;

/* weft_frame_join() :
 * Joins each partition of `f` with the small table `small` (copied into the
 * graph) on the column `key` present in both (same type): pandas'
 * merge(small, on=key, how=inner|left), rows in `f`'s order, matches in
 * `small`'s order; other columns named alike get suffixes _x and _y.
 * @return as map_partitions. */
WEFT_API int weft_frame_join(const weft_frame *f, const weft_table *small, const char *key,
                             weft_join_kind how, weft_frame **out);

/* weft_frame_compute() :
 * Runs the frame on `ex` and concatenates its partitions, in order.
 * Ownership: the caller destroys `*out`. Threads: the frame's thread.
 * @return 0, the first failing partition's error (weft_last_error() names
 * it: for CSV "file:line:column: why"), WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_frame_compute(weft_frame *f, weft_executor *ex,
                                const weft_table_run_options *opts, weft_table **out);

/* weft_frame_head() : the first `n` rows, running only the partitions it
 * needs, in order. As weft_frame_compute otherwise. */
WEFT_API int weft_frame_head(weft_frame *f, size_t n, weft_executor *ex,
                             const weft_table_run_options *opts, weft_table **out);

typedef enum weft_agg_kind {
    WEFT_AGG_COUNT = 1, /* non-missing values (int64) */
    WEFT_AGG_SUM,       /* int64 for int64 columns (wrapping past 2^63), else double */
    WEFT_AGG_MEAN,
    WEFT_AGG_MIN, /* the column's type */
    WEFT_AGG_MAX,
    WEFT_AGG_VAR,     /* sample variance (ddof = 1) */
    WEFT_AGG_NUNIQUE, /* distinct non-missing values (int64) */
    WEFT_AGG_MEDIAN,  /* exact: the middle value, or the mean of the two middle */
} weft_agg_kind;

/* One aggregate: `kind` of column `column`, named `name` in the result
 * (NULL: "<column>_<kind>", e.g. "x_mean"). */
typedef struct weft_agg {
    const char *column;
    weft_agg_kind kind;
    const char *name;
} weft_agg;

/* weft_frame_groupby() :
 * pandas' groupby(keys).agg(...): one row per distinct key tuple (rows with
 * a missing key are dropped), sorted by the keys, with the key columns then
 * one column per aggregate. Partial aggregates of each partition are merged
 * as partitions finish, so the frame is never held whole; median and
 * nunique keep the group's values (8 bytes a row of that column).
 * Ownership: the caller destroys `*out`.
 * @return 0, WEFT_EINVAL (no keys, unknown column, an aggregate the type
 * has not: sum/mean/var/median of text), a partition's error, WEFT_ENOMEM. */
WEFT_API int weft_frame_groupby(weft_frame *f, const char *const *keys, size_t nkeys,
                                const weft_agg *aggs, size_t naggs, weft_executor *ex,
                                const weft_table_run_options *opts, weft_table **out);

/* weft_frame_describe() :
 * pandas' describe() of the numeric (int64, double) columns: a text column
 * "stat" (count, mean, std, min, 25%, 50%, 75%, max) and one double column
 * per numeric column; quartiles exact (numpy's linear interpolation).
 * @return as weft_frame_groupby. */
WEFT_API int weft_frame_describe(weft_frame *f, weft_executor *ex,
                                 const weft_table_run_options *opts, weft_table **out);

/* weft_frame_nlargest(), weft_frame_nsmallest() :
 * The `n` rows with the largest (smallest) values of the numeric column
 * `column`, ordered by it, ties in row order (pandas' keep='first');
 * missing values never chosen. Each partition keeps only its best `n`:
 * no full sort. @return as weft_frame_groupby. */
WEFT_API int weft_frame_nlargest(weft_frame *f, size_t n, const char *column, weft_executor *ex,
                                 const weft_table_run_options *opts, weft_table **out);
WEFT_API int weft_frame_nsmallest(weft_frame *f, size_t n, const char *column, weft_executor *ex,
                                  const weft_table_run_options *opts, weft_table **out);

/* weft_frame_sort() :
 * All rows sorted by column `column` (stable; missing values last, as
 * pandas' sort_values). Partitions are sorted in parallel and merged in
 * memory: the result and the sorted partitions are held at once. Past
 * memory, weft_frame_sort_each. @return as weft_frame_groupby. */
WEFT_API int weft_frame_sort(weft_frame *f, const char *column, bool descending, weft_executor *ex,
                             const weft_table_run_options *opts, weft_table **out);

/* What weft_frame_sort_each gets: one chunk of the sorted rows, in order.
 * `chunk` belongs to the sort and is valid during the call only. Return 0
 * to go on, a positive value to stop early (the sort then returns 0), or a
 * negative WEFT_E* code to fail the sort with it. */
typedef int (*weft_table_sink_fn)(void *arg, const weft_table *chunk);

/* How weft_frame_sort_each spills and merges. */
typedef struct weft_sort_options {
    /* What the merge holds at once (one block per merged run, an output
     * chunk); it sets the blocks' size (memory_bytes / 128, 16 KiB..4 MiB)
     * and the fan-in (memory_bytes / 4 blocks). 0 = 64 MiB. */
    size_t memory_bytes;
    /* Directory of the spilled runs (a fresh weft-sort-XXXXXX inside it,
     * removed at the end); NULL = $TMPDIR, else /tmp. Every worker writes
     * there: on mpi ranks of several machines, a directory they all see. */
    const char *tmp_dir;
    bool no_compress;  /* write runs raw instead of zstd level 1 */
    size_t chunk_rows; /* rows per chunk handed to the sink; 0 = about one block */
} weft_sort_options;

/* weft_frame_sort_each() :
 * An external merge sort: all rows of `f` ordered by column `column`
 * (ascending, or descending when `descending`), stable (ties keep row
 * order), missing values and NaN last in row order: pandas'
 * sort_values(column, kind='stable', na_position='last'). Each partition is
 * sorted by a task and spilled to a run file (in_flight partitions at a
 * time); the runs are merged, sopts->memory_bytes at a time, and handed to
 * `fn` in chunks, in order. Nothing holds the whole frame: what is alive is
 * the frame's bound (weft_table_run_options) while runs are made, then
 * memory_bytes while they are merged (docs/table.md).
 * Ownership: the run files are removed before it returns; `fn` keeps
 * nothing of a chunk. Threads: the frame's thread; `fn` runs on it.
 * @return 0, WEFT_EINVAL (NULL argument, no such column, partitions with
 * unlike columns), -errno of the spill directory or a run file, a
 * partition's error, the sink's negative code, WEFT_ENOMEM. */
WEFT_API int weft_frame_sort_each(weft_frame *f, const char *column, bool descending,
                                  const weft_sort_options *sopts, weft_executor *ex,
                                  const weft_table_run_options *opts, weft_table_sink_fn fn,
                                  void *arg);

/* weft_frame_write_csv() :
 * Writes the frame as CSV to `path` (RFC 4180 quoting where needed; doubles
 * with 17 significant digits, so they read back to the same bits), or one
 * file per partition. Partitions are written in order, in_flight at a time.
 * @return 0, -errno of the file, a partition's error, WEFT_EINVAL. */
WEFT_API int weft_frame_write_csv(weft_frame *f, const char *path,
                                  const weft_csv_write_options *wopts, weft_executor *ex,
                                  const weft_table_run_options *opts);

/* weft_frame_write_npy() :
 * Writes each int64, double and bool column as `dir`/<name>.npy (numpy
 * format 1.0, 1-d, little-endian '<i8', '<f8', '|b1'), streaming partitions
 * in order; text columns are left out. A missing int64 or bool value is
 * WEFT_EINVAL (numpy has none; a missing double is NaN).
 * @return 0, -errno, WEFT_EINVAL, a partition's error. */
WEFT_API int weft_frame_write_npy(weft_frame *f, const char *dir, weft_executor *ex,
                                  const weft_table_run_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TABLE_H */

/* weft/array.h : typed n-dimensional arrays saved and loaded in numpy's file
 * formats -- numpy's ndarray, np.save/np.load, np.savez, and joblib's
 * dump/load with mmap_mode. Included by weft.h; include <weft.h>, not this
 * file. docs/array.md has the guide.
 *
 *   weft_array   a block of elements of one numeric dtype (bool, int8..int64,
 *                uint8..uint64, float16, float32, float64, complex64,
 *                complex128) with a shape and byte strides, in C or Fortran
 *                order, little or big endian; owning its memory, wrapping the
 *                caller's, a view of another array, a mapping of a file
 *                (mmap modes 'r', 'c', 'r+') or shared memory (a memfd, for
 *                worker processes)
 *   .npy         numpy's format, versions 1.0, 2.0 and 3.0 read, the oldest
 *                that fits written (as numpy does); `.npy.zst` is the same
 *                bytes compressed with zstd, streamed in bounded memory
 *   weft_npz     numpy's .npz archives (a zip of .npy entries, stored or
 *                deflated: np.savez and np.savez_compressed), read and written
 *   weft_array_arg  a task input that carries an array: on the processes
 *                backend an array above a size threshold travels as a shared
 *                mapping (memfd), not as bytes, as joblib's loky memmaps big
 *                numpy arguments; the task gets a weft_array either way
 *
 * Files from outside are checked: a header that is not numpy's, a shape whose
 * byte count overflows, a dtype weft does not know, a file shorter than its
 * header says, all fail with WEFT_EINVAL and a weft_last_error() message that
 * names the file; nothing is read past the data the header announces.
 *
 * Threads: an array is plain memory: any number of threads may read one
 * array at once; writes (to the elements or by weft_array_byteswap) need the
 * caller's synchronisation. Every function here is safe to call from any
 * thread on distinct objects. The reference count shared by an array and its
 * views is atomic, so views may be destroyed from any thread. */
#ifndef WEFT_ARRAY_H
#define WEFT_ARRAY_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/array.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The element types: numpy's numeric dtypes. float16 is stored and moved,
 * not computed with (weft has no half-precision arithmetic). */
typedef enum weft_dtype {
    WEFT_DTYPE_BOOL = 1,  /* numpy bool_, '|b1', one byte 0 or 1 */
    WEFT_DTYPE_INT8,      /* '|i1' */
    WEFT_DTYPE_INT16,     /* '<i2' */
    WEFT_DTYPE_INT32,     /* '<i4' */
    WEFT_DTYPE_INT64,     /* '<i8' */
    WEFT_DTYPE_UINT8,     /* '|u1' */
    WEFT_DTYPE_UINT16,    /* '<u2' */
    WEFT_DTYPE_UINT32,    /* '<u4' */
    WEFT_DTYPE_UINT64,    /* '<u8' */
    WEFT_DTYPE_FLOAT16,   /* '<f2', storage only */
    WEFT_DTYPE_FLOAT32,   /* '<f4' */
    WEFT_DTYPE_FLOAT64,   /* '<f8' */
    WEFT_DTYPE_COMPLEX64, /* '<c8', two float32 */
    WEFT_DTYPE_COMPLEX128 /* '<c16', two float64 */
} weft_dtype;

/* The memory order of a contiguous array (numpy's order='C' / 'F'). */
typedef enum weft_order {
    WEFT_ORDER_C = 0, /* row-major: the last index varies fastest */
    WEFT_ORDER_F = 1, /* column-major (Fortran): the first index varies fastest */
} weft_order;

/* The byte order of the elements. */
typedef enum weft_endian {
    WEFT_ENDIAN_NATIVE = 0, /* this machine's (resolved at creation) */
    WEFT_ENDIAN_LITTLE = 1, /* '<' */
    WEFT_ENDIAN_BIG = 2,    /* '>' */
} weft_endian;

/* How weft_array_load() maps a file (joblib's and numpy's mmap_mode). */
typedef enum weft_mmap_mode {
    WEFT_MMAP_NONE = 0,  /* read the data into memory the array owns */
    WEFT_MMAP_READ,      /* 'r': map read-only; writing the elements faults */
    WEFT_MMAP_COPY,      /* 'c': copy-on-write: writes stay in this process,
                            the file never changes */
    WEFT_MMAP_READWRITE, /* 'r+': writes go to the file */
} weft_mmap_mode;

/* The most dimensions an array has (numpy 2's NPY_MAXDIMS; numpy 1.x: 32). */
#define WEFT_ARRAY_MAX_NDIM 64

typedef struct weft_array weft_array;

/* Flags of weft_array_options. */
enum {
    /* Allocate the elements in shared memory (a memfd, see weft_shm), so
     * weft_array_arg passes the array to worker processes with no copy at
     * all and writes of a task are seen by the caller. */
    WEFT_ARRAY_SHARED = 1u << 0,
};

/* Options of weft_array_create(), _wrap() and _copy(); zero = C order,
 * native byte order, private memory. */
typedef struct weft_array_options {
    weft_order order;
    weft_endian endian;
    unsigned flags; /* WEFT_ARRAY_* */
} weft_array_options;

/* weft_dtype_size() : the bytes of one element of `dtype` (1..16), or 0 for
 * a value that is not a weft_dtype. Threads: any. */
WEFT_API size_t weft_dtype_size(weft_dtype dtype);

/* weft_dtype_name() : numpy's name of `dtype` ("float64", "bool", ...), or
 * "unknown" (static storage). Threads: any. */
WEFT_API const char *weft_dtype_name(weft_dtype dtype);

/* weft_array_create() :
 * Creates a zero-filled contiguous array of `dtype` and shape
 * shape[0..ndim) (ndim 0: a scalar of one element; a 0 in the shape: no
 * elements), laid out as `opts` says (NULL: C order, native).
 * Ownership: the caller destroys `*out` with weft_array_destroy().
 * Threads: any. @return 0, or WEFT_EINVAL (bad dtype, ndim over
 * WEFT_ARRAY_MAX_NDIM, NULL shape with ndim > 0, a byte count that
 * overflows size_t), WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_array_create(weft_dtype dtype, size_t ndim, const size_t *shape,
                               const weft_array_options *opts, weft_array **out);

/* weft_array_wrap() :
 * An array over the caller's memory `data`, contiguous in opts->order with
 * elements in opts->endian (flags are ignored). Nothing is copied.
 * Ownership: the caller keeps `data` alive and unmoved until the array and
 * every view of it are destroyed; destroy frees only the array.
 * Threads: any. @return as weft_array_create() (WEFT_EINVAL also for a NULL
 * `data` with elements). */
WEFT_API int weft_array_wrap(void *data, weft_dtype dtype, size_t ndim, const size_t *shape,
                             const weft_array_options *opts, weft_array **out);

/* weft_array_view() :
 * A view of `base`'s elements with a new shape and byte strides (numpy's
 * as_strided): element (i0, i1, ...) of the view is at byte offset
 * `offset + sum(ik * strides[k])` of base's data pointer (the first element
 * of base). strides NULL: C-contiguous strides. Every element the view can
 * reach must lie inside base's memory, else WEFT_EINVAL. The view shares
 * base's memory and keeps it alive (base may be destroyed first).
 * Ownership: destroy the view with weft_array_destroy().
 * Threads: any. @return 0, WEFT_EINVAL, WEFT_ENOMEM; `*out` NULL on error. */
WEFT_API int weft_array_view(const weft_array *base, size_t ndim, const size_t *shape,
                             const ptrdiff_t *strides, size_t offset, weft_array **out);

/* weft_array_copy() :
 * A new contiguous array with `a`'s dtype, shape and values, in the order,
 * byte order and memory opts asks for (NULL: C order, native byte order):
 * numpy's a.astype(a.dtype.newbyteorder('=')).copy(order). This is how a
 * big-endian or strided array becomes a native C array.
 * Ownership: the caller destroys `*out`. Threads: any (`a` is only read).
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_array_copy(const weft_array *a, const weft_array_options *opts, weft_array **out);

/* weft_array_byteswap() :
 * Swaps the bytes of every element in place and flips the array's byte
 * order, so the values stay the same (numpy's
 * a.byteswap(inplace=True).view(a.dtype.newbyteorder())); a no-op for
 * one-byte dtypes. Views of the same memory see the swapped bytes but keep
 * their own byte order: do not mix them. Threads: the caller's (it writes).
 * @return 0, WEFT_EINVAL (NULL), WEFT_EPERM (read-only: an 'r' mapping). */
WEFT_API int weft_array_byteswap(weft_array *a);

/* weft_array_destroy() :
 * Frees `a` (the memory it owns, its mapping or shared memory once no view
 * uses it any more). NULL is a no-op. Threads: any; once per array.
 * @return 0, or the error of munmap/close (the array is freed anyway). */
WEFT_API int weft_array_destroy(weft_array *a);

/* Accessors; all take a valid array (NULL gives 0 / NULL), are constant
 * time and safe from any thread. Shapes and strides are owned by the array.
 * weft_array_data(): the first element (NULL when the array has no
 * elements may happen); weft_array_writable(): false for an 'r' mapping;
 * weft_array_size(): the element count; weft_array_nbytes(): size *
 * itemsize; weft_array_endian(): LITTLE or BIG, never NATIVE;
 * weft_array_is_contiguous(): the elements fill [data, data + nbytes) in
 * `order` (both are true for ndim <= 1 and for arrays of one element). */
WEFT_API weft_dtype weft_array_dtype(const weft_array *a);
WEFT_API size_t weft_array_ndim(const weft_array *a);
WEFT_API const size_t *weft_array_shape(const weft_array *a);
WEFT_API const ptrdiff_t *weft_array_strides(const weft_array *a);
WEFT_API size_t weft_array_itemsize(const weft_array *a);
WEFT_API size_t weft_array_size(const weft_array *a);
WEFT_API size_t weft_array_nbytes(const weft_array *a);
WEFT_API void *weft_array_data(const weft_array *a);
WEFT_API bool weft_array_writable(const weft_array *a);
WEFT_API weft_endian weft_array_endian(const weft_array *a);
WEFT_API bool weft_array_is_contiguous(const weft_array *a, weft_order order);

/* weft_array_at() :
 * The address of the element at index idx[0..ndim) (a scalar: idx may be
 * NULL), or NULL when an index is out of range. Threads: any. */
WEFT_API void *weft_array_at(const weft_array *a, const size_t *idx);

/* ------------------------------------------------------------------------
 * .npy files
 * ------------------------------------------------------------------------ */

/* How weft_array_save() replaces a file (weft_npy_save_options.mode). */
typedef enum weft_npy_save_mode {
    /* The default: a temporary file is written, then put in the file's
     * place in one step; a reader sees the old file or the new one, and a
     * failed or killed save leaves the old file as it was. Costs, for the
     * time of the save, a second copy of the file on the disk and in the
     * page cache. */
    WEFT_NPY_SAVE_ATOMIC = 0,
    /* np.save's way: the existing file is written over from its start and
     * cut to the new length (same inode; created if missing). No second
     * copy, and the old file's cached pages are reused; but a save that
     * fails or is killed half way leaves a file that is neither old nor new,
     * and a reader that has the file open or mapped sees it change. Space is
     * reserved first (fallocate), so a full disk is reported before the old
     * bytes are touched, where the file system supports it. */
    WEFT_NPY_SAVE_IN_PLACE = 1
} weft_npy_save_mode;

/* Options of weft_array_save(); zero = defaults. */
typedef struct weft_npy_save_options {
    /* 0: the oldest version that holds the header (1.0, else 2.0, else 3.0:
     * numpy's rule); 1, 2 or 3 force it (WEFT_EINVAL if it cannot hold it). */
    int version;
    /* zstd level for .zst files (1..22; 0: 3). Ignored for plain .npy. */
    int zstd_level;
    /* WEFT_NPY_SAVE_ATOMIC (0) or WEFT_NPY_SAVE_IN_PLACE. */
    weft_npy_save_mode mode;
} weft_npy_save_options;

/* weft_array_save() :
 * Writes `a` to `path` in numpy's .npy format (np.save), or compressed with
 * zstd when `path` ends in ".zst" (e.g. "x.npy.zst"; `zstd -d` gives the
 * .npy). The bytes keep `a`'s byte order; a contiguous array is written in
 * its order (C or Fortran, fortran_order in the header) with one write, any
 * other view in C order. The header is padded to 64 bytes as numpy pads it.
 * By default (WEFT_NPY_SAVE_ATOMIC) the file appears whole or not at all:
 * a temporary file in the same directory is written, then exchanged with
 * the old file in one step (renameat2 RENAME_EXCHANGE; rename() where the
 * file system has no exchange) and the old file unlinked, so a reader sees
 * the old file or the new one, never part of one and never no file. On any
 * error (ENOSPC, EFBIG, ...) the old file is left as it was and no
 * temporary remains. WEFT_NPY_SAVE_IN_PLACE writes over the old file as
 * np.save does (see weft_npy_save_mode: faster, not crash-safe). The mode
 * of a new file is 0666 less the umask, as numpy's. Threads: any; `a` is
 * only read; two saves to one path at once: atomic saves leave one of the
 * two files whole, in-place saves may mix them.
 * @return 0, WEFT_EINVAL (NULL, forced version too small, unknown mode), or -errno of
 * the file (WEFT_ENOENT, WEFT_ENOSPC, -EISDIR...), with a message naming
 * `path`. */
WEFT_API int weft_array_save(const weft_array *a, const char *path,
                             const weft_npy_save_options *opts);

/* Options of weft_array_load(); zero = defaults. */
typedef struct weft_npy_load_options {
    weft_mmap_mode mmap_mode; /* plain .npy only; WEFT_EINVAL for a .zst */
} weft_npy_load_options;

/* weft_array_load() :
 * Reads the .npy (or, for a path ending in ".zst", zstd-compressed .npy)
 * file `path` (np.load): versions 1.0, 2.0 and 3.0, every weft_dtype in
 * either byte order, C or Fortran order. The array keeps the file's byte
 * order (weft_array_copy() makes it native). With a mmap mode the data is
 * mapped, not read: opening costs the same for any size; the mapping lives
 * until the array and its views are destroyed.
 * Ownership: the caller destroys `*out`. Threads: any.
 * @return 0, WEFT_EINVAL (not a .npy weft reads: bad magic or header, an
 * unknown or object dtype, a shape that overflows, fewer data bytes than
 * the header announces; the message names the file), WEFT_ENOMEM, -errno
 * of the file; `*out` is NULL on error. */
WEFT_API int weft_array_load(const char *path, const weft_npy_load_options *opts, weft_array **out);

/* ------------------------------------------------------------------------
 * .npz archives
 * ------------------------------------------------------------------------ */

typedef struct weft_npz weft_npz;

/* Options of weft_npz_save(); zero = stored entries (np.savez). */
typedef struct weft_npz_save_options {
    bool compress; /* deflate every entry (np.savez_compressed) */
} weft_npz_save_options;

/* weft_npz_save() :
 * Writes `count` arrays to the zip archive `path` (np.savez(path,
 * name0=a0, ...)): entry "<names[i]>.npy" holds arrays[i] as
 * weft_array_save() writes it. Names are non-empty, unique, without '/' or
 * NUL. Large archives use zip64 as needed. The file appears whole or not at
 * all. Threads: any; the arrays are only read.
 * @return 0, WEFT_EINVAL (NULL, bad or duplicate name), WEFT_ENOMEM, or
 * -errno / WEFT_EINVAL from libzip, with a message naming `path`. */
WEFT_API int weft_npz_save(const char *path, const char *const *names,
                           const weft_array *const *arrays, size_t count,
                           const weft_npz_save_options *opts);

/* weft_npz_open() :
 * Opens the .npz (zip) archive `path` for reading (np.load of an .npz: an
 * NpzFile); entries are read by weft_npz_get().
 * Ownership: destroy `*out` with weft_npz_destroy().
 * Threads: one thread at a time per archive.
 * @return 0, WEFT_EINVAL (not a zip archive), WEFT_ENOMEM, -errno. */
WEFT_API int weft_npz_open(const char *path, weft_npz **out);

/* weft_npz_count(), weft_npz_name() : the entries ending in ".npy" and their
 * names without it ("a" for "a.npy"), in archive order; the name is owned
 * by the archive (NULL for i out of range). */
WEFT_API size_t weft_npz_count(const weft_npz *z);
WEFT_API const char *weft_npz_name(const weft_npz *z, size_t i);

/* weft_npz_get() :
 * Reads entry `name` (with or without ".npy") into a new array, checked as
 * weft_array_load() checks a file (deflate streams are inflated straight
 * into the array's memory). Ownership: the caller destroys `*out`.
 * @return 0, WEFT_ENOENT (no such entry), WEFT_EINVAL (a bad entry, a bad
 * deflate stream or CRC), WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_npz_get(weft_npz *z, const char *name, weft_array **out);

/* weft_npz_destroy() : closes the archive; NULL is a no-op. @return 0. */
WEFT_API int weft_npz_destroy(weft_npz *z);

/* ------------------------------------------------------------------------
 * Arrays as task arguments (big arguments without copies)
 * ------------------------------------------------------------------------ */

/* An array packed as a task's input bytes, for one executor. How it travels
 * depends on the executor's backend, never on the task's code:
 *   serial, threads   a reference: the task's view is the caller's memory
 *   processes         below the threshold, the elements are in the input
 *                     bytes (copied as any input); from the threshold up,
 *                     the elements are in shared memory (a memfd) and the
 *                     input bytes carry only its token, so a 1 GiB array
 *                     costs the same ~300 input bytes as a 1 KiB one. An
 *                     array created with WEFT_ARRAY_SHARED is used in place
 *                     (no copy at all); any other array is copied once into
 *                     a region the weft_array_arg owns (joblib's loky dumps
 *                     big numpy arguments to a memmap the same way)
 *   mpi               the elements in the input bytes (other machines share
 *                     no memory)
 * The task calls weft_array_arg_open() on its input and gets a weft_array
 * either way. Writes of a task reach the caller's array on serial and
 * threads, and on processes for WEFT_ARRAY_SHARED arrays above the
 * threshold; treat other arguments as read-only. */
typedef struct weft_array_arg weft_array_arg;

/* Options of weft_array_arg_create(); zero = defaults. */
typedef struct weft_array_arg_options {
    /* Arrays of at least this many bytes go to worker processes as shared
     * memory; 0: 1 MiB (joblib's max_nbytes='1M'); SIZE_MAX: never. */
    size_t threshold;
} weft_array_arg_options;

/* weft_array_arg_create() :
 * Packs `a` for tasks of `ex` (see above). The arg holds its own reference
 * to a's memory (a may be destroyed first), and any shared region it made.
 * Ownership: destroy `*out` with weft_array_arg_destroy() after the last
 * task that got its bytes has finished (the worker attaches while it runs).
 * Threads: any; `a` is only read (copied now, for a copy).
 * @return 0, WEFT_EINVAL (NULL), WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_array_arg_create(weft_executor *ex, const weft_array *a,
                                   const weft_array_arg_options *opts, weft_array_arg **out);

/* weft_array_arg_bytes() :
 * The input bytes to give weft_submit(), weft_map_bufs() or a graph call.
 * Ownership: owned by `arg`, valid until weft_array_arg_destroy(); the
 * executor copies them as any input. Threads: any.
 * @return 0, WEFT_EINVAL (NULL). */
WEFT_API int weft_array_arg_bytes(const weft_array_arg *arg, const void **data, size_t *len);

/* weft_array_arg_shared() :
 * @return true when the elements travel in shared memory (processes, at or
 * above the threshold), false when by reference or in the bytes. */
WEFT_API bool weft_array_arg_shared(const weft_array_arg *arg);

/* weft_array_arg_destroy() :
 * Frees the arg and the shared region it made (the caller's own arrays
 * are untouched). NULL is a no-op. Threads: any, once. @return 0. */
WEFT_API int weft_array_arg_destroy(weft_array_arg *arg);

/* weft_array_arg_open() :
 * In a task: the array carried by input bytes `in[0..len)` that
 * weft_array_arg_bytes() gave, as a view (a reference, a mapping of the
 * shared region, or the input bytes themselves -- copied when they are not
 * aligned for the dtype). Ownership: the task destroys `*out` with
 * weft_array_destroy() before it returns (a worker process keeps its
 * mapping of a shared region for its next tasks: docs/array.md).
 * Threads: the task's thread. @return 0, WEFT_EINVAL (not an array
 * argument, or bytes made for another executor's process), WEFT_ENOENT
 * (the caller destroyed the arg: its region is gone), WEFT_ENOMEM; `*out`
 * is NULL on error. */
WEFT_API int weft_array_arg_open(const void *in, size_t len, weft_array **out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_ARRAY_H */

/* array_internal.h : the array's data, shared by the files of src/array/
 * (array.c: the type; npy.c: .npy files; npz.c: archives; arg.c: task
 * arguments). Not installed.
 *
 * Memory. Every array points into a store: a reference-counted block that
 * an array and all its views share (heap, anonymous mapping, file mapping,
 * shared memory, or the caller's memory, which is never freed). The store
 * is freed by the last weft_array_destroy() of an array over it. Arrays
 * themselves are never shared: a view is a new weft_array. */
#ifndef WEFT_ARRAY_INTERNAL_H
#define WEFT_ARRAY_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"

typedef enum store_kind {
    STORE_HEAP = 1, /* free(base) */
    STORE_ANON,     /* munmap(base, len): anonymous, zero pages for free */
    STORE_FILE,     /* munmap(base, len): a mapped file */
    STORE_SHM,      /* weft_shm_destroy(shm) */
    STORE_EXTERN,   /* the caller's memory: nothing to free */
} store_kind;

typedef struct weft__array_store {
    atomic_size_t refs;
    store_kind kind;
    bool writable;
    char *base; /* the block's first byte */
    size_t len; /* its bytes */
    weft_shm *shm;
} weft__array_store;

struct weft_array {
    weft_dtype dtype;
    weft_endian endian; /* LITTLE or BIG */
    size_t itemsize;
    size_t ndim;
    size_t size;   /* elements */
    size_t nbytes; /* size * itemsize */
    char *data;    /* element (0, 0, ...) */
    weft__array_store *store;
    size_t shape[WEFT_ARRAY_MAX_NDIM];
    ptrdiff_t strides[WEFT_ARRAY_MAX_NDIM];
};

/* This machine's byte order as a weft_endian (LITTLE or BIG). */
weft_endian weft__endian_native(void);

/* Checks dtype, ndim and shape and gives the element count and byte count
 * (WEFT_EINVAL with a message starting with `what` on overflow). */
int weft__array_count(weft_dtype dtype, size_t ndim, const size_t *shape, size_t *size,
                      size_t *nbytes, const char *what);

/* An array of a new store of `nbytes` bytes (zero-filled if `zero`): heap
 * below 1 MiB, an anonymous mapping above, shared memory with
 * WEFT_ARRAY_SHARED. Endian NATIVE is resolved. */
int weft__array_alloc(weft_dtype dtype, size_t ndim, const size_t *shape, weft_order order,
                      weft_endian endian, unsigned flags, bool zero, weft_array **out);

/* An array over a mapped file [base, base+len), data at base+offset; the
 * array owns the mapping (munmap at the last destroy). */
int weft__array_from_map(void *base, size_t len, size_t offset, bool writable, weft_dtype dtype,
                         size_t ndim, const size_t *shape, weft_order order, weft_endian endian,
                         weft_array **out);

/* An array over an attached shared region (owned by the array from now on,
 * also on error), data at weft_shm_ptr(shm)+offset. */
int weft__array_from_shm(weft_shm *shm, size_t offset, weft_dtype dtype, size_t ndim,
                         const size_t *shape, weft_order order, weft_endian endian,
                         weft_array **out);

/* The shared region under `a`, or NULL if its memory is not shared. */
weft_shm *weft__array_shm(const weft_array *a);

/* Row iteration in C or F order: the elements come out as rows of `n`
 * elements `stride` bytes apart; weft__rows_next() gives each row's first
 * element, then NULL. */
typedef struct weft__rows {
    const weft_array *a;
    size_t inner;     /* the axis of a row */
    size_t n;         /* elements of a row */
    ptrdiff_t stride; /* bytes between them */
    size_t left;      /* rows still to give */
    size_t idx[WEFT_ARRAY_MAX_NDIM];
    bool c; /* C order */
    bool first;
} weft__rows;

void weft__rows_init(weft__rows *it, const weft_array *a, weft_order order);
const char *weft__rows_next(weft__rows *it);

/* ---- .npy (npy.c) -------------------------------------------------------- */

/* A parsed .npy header. */
typedef struct weft__npy_header {
    int major, minor;
    size_t header_len; /* bytes before the data (magic, length, dict, padding) */
    weft_dtype dtype;
    weft_endian endian;
    weft_order order;
    size_t ndim;
    size_t shape[WEFT_ARRAY_MAX_NDIM];
    size_t size, nbytes;
} weft__npy_header;

/* The longest header weft reads, in bytes (numpy's own bound is 10000 for
 * the dictionary unless pickles are allowed). */
#define WEFT__NPY_MAX_HEADER (1u << 20)

/* How many bytes of the file the header takes, from its first 12 bytes
 * (`n` >= 12 or the whole file): WEFT_EINVAL for a bad magic or version. */
int weft__npy_prefix(const unsigned char *buf, size_t n, size_t *header_len, const char *name);

/* Parses a header from buf[0..n) (n >= its header_len). `name` names the
 * file in messages. */
int weft__npy_parse_header(const void *buf, size_t n, weft__npy_header *h, const char *name);

/* Formats the header of `a` (as numpy writes it, version as opts say) into
 * buf[0..cap); *len is its length (a multiple of 64). */
int weft__npy_format_header(const weft_array *a, int version, char *buf, size_t cap, size_t *len);

/* The room weft__npy_format_header needs at most. */
#define WEFT__NPY_HEADER_CAP 4096

/* A byte source: reads exactly n bytes or fails (WEFT_EINVAL on a short
 * source, with a message naming it). */
typedef int (*weft__npy_read_fn)(void *ctx, void *buf, size_t n);

/* Reads one .npy from a source into a new array; `avail` is the bytes the
 * source holds (SIZE_MAX: unknown), checked before the array is allocated. */
int weft__npy_read(weft__npy_read_fn rd, void *ctx, size_t avail, const char *name,
                   weft_array **out);

/* Reads a .npy held in memory (what the fuzz target calls). */
int weft__npy_from_buffer(const void *buf, size_t n, const char *name, weft_array **out);

/* A byte sink: writes all n bytes or fails. */
typedef int (*weft__npy_write_fn)(void *ctx, const void *buf, size_t n);

/* Writes `a` as .npy bytes to a sink: the header, then the data (one call
 * for a contiguous array, 1 MiB rows of C order otherwise). */
int weft__npy_write(const weft_array *a, int version, weft__npy_write_fn wr, void *ctx);

/* ---- .npz (npz.c) -------------------------------------------------------- */

/* Opens an archive held in memory (borrowed until weft_npz_destroy). */
int weft__npz_open_buffer(const void *buf, size_t n, const char *name, weft_npz **out);

#endif

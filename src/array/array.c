/* array.c : the weft_array type -- creation, wrapping, views, copies with
 * byte-order and memory-order conversion, byte swapping, accessors.
 *
 * An array is a header (dtype, shape, byte strides, data pointer) over a
 * reference-counted store (array_internal.h). Only this file frees stores:
 * the other files hand it a block with weft__array_from_map/_from_shm and
 * the array owns it from then on. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "array/array_internal.h"

#define ANON_MIN (1u << 20) /* blocks from this size up are anonymous mappings */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [WEFT_DTYPE_BOOL] = {"bool", 1},           [WEFT_DTYPE_INT8] = {"int8", 1},
    [WEFT_DTYPE_INT16] = {"int16", 2},         [WEFT_DTYPE_INT32] = {"int32", 4},
    [WEFT_DTYPE_INT64] = {"int64", 8},         [WEFT_DTYPE_UINT8] = {"uint8", 1},
    [WEFT_DTYPE_UINT16] = {"uint16", 2},       [WEFT_DTYPE_UINT32] = {"uint32", 4},
    [WEFT_DTYPE_UINT64] = {"uint64", 8},       [WEFT_DTYPE_FLOAT16] = {"float16", 2},
    [WEFT_DTYPE_FLOAT32] = {"float32", 4},     [WEFT_DTYPE_FLOAT64] = {"float64", 8},
    [WEFT_DTYPE_COMPLEX64] = {"complex64", 8}, [WEFT_DTYPE_COMPLEX128] = {"complex128", 16},
};

size_t weft_dtype_size(weft_dtype dtype)
{
    if ((int)dtype < WEFT_DTYPE_BOOL || (int)dtype > WEFT_DTYPE_COMPLEX128) return 0;
    return dtypes[dtype].size;
}

const char *weft_dtype_name(weft_dtype dtype)
{
    if ((int)dtype < WEFT_DTYPE_BOOL || (int)dtype > WEFT_DTYPE_COMPLEX128) return "unknown";
    return dtypes[dtype].name;
}

weft_endian weft__endian_native(void)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return WEFT_ENDIAN_BIG;
#else
    return WEFT_ENDIAN_LITTLE;
#endif
}

int weft__array_count(weft_dtype dtype, size_t ndim, const size_t *shape, size_t *size,
                      size_t *nbytes, const char *what)
{
    size_t isz = weft_dtype_size(dtype);
    if (!isz) return weft__err(WEFT_EINVAL, "%s: %d is not a weft_dtype", what, (int)dtype);
    if (ndim > WEFT_ARRAY_MAX_NDIM)
        return weft__err(WEFT_EINVAL, "%s: %zu dimensions (at most %d)", what, ndim,
                         WEFT_ARRAY_MAX_NDIM);
    if (ndim && !shape) return weft__err(WEFT_EINVAL, "%s: NULL shape", what);
    /* The byte count must fit even when an earlier dimension is 0, so that
     * strides (products of later dimensions) cannot overflow either. */
    size_t n = 1, nz = 1;
    for (size_t i = 0; i < ndim; i++) {
        size_t d = shape[i] ? shape[i] : 1;
        if (__builtin_mul_overflow(nz, d, &nz))
            return weft__err(WEFT_EINVAL, "%s: the shape's element count overflows size_t", what);
        n *= shape[i];
    }
    size_t b;
    if (__builtin_mul_overflow(nz, isz, &b) || b > (size_t)PTRDIFF_MAX)
        return weft__err(WEFT_EINVAL, "%s: the shape's byte count overflows", what);
    *size = n;
    *nbytes = n * isz;
    return 0;
}

/* Contiguous strides of `order`. */
static void set_strides(weft_array *a, weft_order order)
{
    ptrdiff_t s = (ptrdiff_t)a->itemsize;
    if (order == WEFT_ORDER_F) {
        for (size_t i = 0; i < a->ndim; i++) {
            a->strides[i] = s;
            s *= (ptrdiff_t)(a->shape[i] ? a->shape[i] : 1);
        }
    } else {
        for (size_t i = a->ndim; i-- > 0;) {
            a->strides[i] = s;
            s *= (ptrdiff_t)(a->shape[i] ? a->shape[i] : 1);
        }
    }
}

static int check_layout(weft_order order, weft_endian endian, const char *what)
{
    if (order != WEFT_ORDER_C && order != WEFT_ORDER_F)
        return weft__err(WEFT_EINVAL, "%s: order %d is not a weft_order", what, (int)order);
    if ((int)endian < WEFT_ENDIAN_NATIVE || (int)endian > WEFT_ENDIAN_BIG)
        return weft__err(WEFT_EINVAL, "%s: endian %d is not a weft_endian", what, (int)endian);
    return 0;
}

/* A header for a contiguous array over `store` (whose reference it takes). */
static int make(weft_dtype dtype, size_t ndim, const size_t *shape, weft_order order,
                weft_endian endian, weft__array_store *store, char *data, weft_array **out,
                const char *what)
{
    size_t size, nbytes;
    int rc = weft__array_count(dtype, ndim, shape, &size, &nbytes, what);
    if (rc == 0) rc = check_layout(order, endian, what);
    if (rc) return rc;
    weft_array *a = calloc(1, sizeof *a);
    if (!a) return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
    a->dtype = dtype;
    a->itemsize = weft_dtype_size(dtype);
    a->endian = endian == WEFT_ENDIAN_NATIVE ? weft__endian_native() : endian;
    if (a->itemsize == 1) a->endian = weft__endian_native();
    a->ndim = ndim;
    a->size = size;
    a->nbytes = nbytes;
    if (ndim) memcpy(a->shape, shape, ndim * sizeof *shape);
    set_strides(a, order);
    a->data = data;
    a->store = store;
    *out = a;
    return 0;
}

static weft__array_store *store_new(store_kind kind, void *base, size_t len, bool writable)
{
    weft__array_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    atomic_init(&s->refs, 1);
    s->kind = kind;
    s->base = base;
    s->len = len;
    s->writable = writable;
    return s;
}

static int store_release(weft__array_store *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return 0;
    int rc = 0;
    switch (s->kind) {
    case STORE_HEAP:
        free(s->base);
        break;
    case STORE_ANON:
    case STORE_FILE:
        if (s->len && munmap(s->base, s->len) != 0)
            rc = weft__err(-errno, "weft_array_destroy: munmap: %s", strerror(errno));
        break;
    case STORE_SHM:
        weft_shm_destroy(s->shm);
        break;
    case STORE_EXTERN:
        break;
    }
    free(s);
    return rc;
}

int weft__array_alloc(weft_dtype dtype, size_t ndim, const size_t *shape, weft_order order,
                      weft_endian endian, unsigned flags, bool zero, weft_array **out)
{
    const char *what = "weft_array_create";
    size_t size, nbytes;
    int rc = weft__array_count(dtype, ndim, shape, &size, &nbytes, what);
    if (rc == 0) rc = check_layout(order, endian, what);
    if (rc) return rc;
    weft__array_store *s = NULL;
    if (flags & WEFT_ARRAY_SHARED) {
        weft_shm *shm = NULL;
        rc = weft_shm_create(nbytes ? nbytes : 1, &shm);
        if (rc) return rc;
        s = store_new(STORE_SHM, weft_shm_ptr(shm), weft_shm_size(shm), true);
        if (!s) {
            weft_shm_destroy(shm);
            return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
        }
        s->shm = shm;
    } else if (nbytes >= ANON_MIN) {
        void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return weft__err(WEFT_ENOMEM, "%s: %zu bytes: %s", what, nbytes, strerror(errno));
#ifdef MADV_HUGEPAGE
        /* as numpy does for arrays of 4 MiB and more: with THP in "madvise"
         * mode, 2 MiB pages fault in 512x less often (a 1 GiB load: ~7 s of
         * 4 KiB faults on a busy VM against ~0.5 s) */
        if (nbytes >= ((size_t)4 << 20)) madvise(p, nbytes, MADV_HUGEPAGE);
#endif
        s = store_new(STORE_ANON, p, nbytes, true);
        if (!s) {
            munmap(p, nbytes);
            return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
        }
    } else {
        void *p = NULL;
        if (posix_memalign(&p, 64, nbytes ? nbytes : 1) != 0)
            return weft__err(WEFT_ENOMEM, "%s: %zu bytes: out of memory", what, nbytes);
        if (zero) memset(p, 0, nbytes);
        s = store_new(STORE_HEAP, p, nbytes, true);
        if (!s) {
            free(p);
            return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
        }
    }
    rc = make(dtype, ndim, shape, order, endian, s, s->base, out, what);
    if (rc) store_release(s);
    return rc;
}

int weft_array_create(weft_dtype dtype, size_t ndim, const size_t *shape,
                      const weft_array_options *opts, weft_array **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_array_create: NULL out");
    *out = NULL;
    weft_array_options o = opts ? *opts : (weft_array_options){0};
    return weft__array_alloc(dtype, ndim, shape, o.order, o.endian, o.flags, true, out);
}

int weft_array_wrap(void *data, weft_dtype dtype, size_t ndim, const size_t *shape,
                    const weft_array_options *opts, weft_array **out)
{
    const char *what = "weft_array_wrap";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", what);
    *out = NULL;
    weft_array_options o = opts ? *opts : (weft_array_options){0};
    size_t size, nbytes;
    int rc = weft__array_count(dtype, ndim, shape, &size, &nbytes, what);
    if (rc) return rc;
    if (!data && nbytes) return weft__err(WEFT_EINVAL, "%s: NULL data", what);
    weft__array_store *s = store_new(STORE_EXTERN, data, nbytes, true);
    if (!s) return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
    rc = make(dtype, ndim, shape, o.order, o.endian, s, data, out, what);
    if (rc) store_release(s);
    return rc;
}

int weft__array_from_map(void *base, size_t len, size_t offset, bool writable, weft_dtype dtype,
                         size_t ndim, const size_t *shape, weft_order order, weft_endian endian,
                         weft_array **out)
{
    weft__array_store *s = store_new(STORE_FILE, base, len, writable);
    if (!s) return weft__err(WEFT_ENOMEM, "weft_array_load: out of memory");
    int rc =
        make(dtype, ndim, shape, order, endian, s, (char *)base + offset, out, "weft_array_load");
    if (rc) {
        s->base = NULL; /* the caller unmaps on error */
        s->len = 0;
        store_release(s);
    }
    return rc;
}

int weft__array_from_shm(weft_shm *shm, size_t offset, weft_dtype dtype, size_t ndim,
                         const size_t *shape, weft_order order, weft_endian endian,
                         weft_array **out)
{
    weft__array_store *s = store_new(STORE_SHM, weft_shm_ptr(shm), weft_shm_size(shm), true);
    if (!s) {
        weft_shm_destroy(shm);
        return weft__err(WEFT_ENOMEM, "weft_array_arg_open: out of memory");
    }
    s->shm = shm;
    int rc =
        make(dtype, ndim, shape, order, endian, s, s->base + offset, out, "weft_array_arg_open");
    if (rc == 0 && offset + (*out)->nbytes > s->len) {
        weft_array_destroy(*out);
        *out = NULL;
        return weft__err(WEFT_EINVAL, "weft_array_arg_open: the array does not fit its region");
    }
    if (rc) store_release(s);
    return rc;
}

weft_shm *weft__array_shm(const weft_array *a)
{
    return a && a->store->kind == STORE_SHM ? a->store->shm : NULL;
}

int weft_array_view(const weft_array *base, size_t ndim, const size_t *shape,
                    const ptrdiff_t *strides, size_t offset, weft_array **out)
{
    const char *what = "weft_array_view";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", what);
    *out = NULL;
    if (!base) return weft__err(WEFT_EINVAL, "%s: NULL base", what);
    size_t size, nbytes;
    int rc = weft__array_count(base->dtype, ndim, shape, &size, &nbytes, what);
    if (rc) return rc;
    /* The memory the view may reach: base's own elements' span, from its
     * lowest to its highest byte (a view of a view stays inside). */
    ptrdiff_t lo = 0, hi = 0;
    for (size_t i = 0; i < base->ndim && base->size; i++) {
        ptrdiff_t ext = (ptrdiff_t)(base->shape[i] - 1) * base->strides[i];
        if (ext < 0)
            lo += ext;
        else
            hi += ext;
    }
    hi += (ptrdiff_t)base->itemsize; /* one past the last byte */
    if (!base->size) hi = lo;
    weft_array *a = calloc(1, sizeof *a);
    if (!a) return weft__err(WEFT_ENOMEM, "%s: out of memory", what);
    a->dtype = base->dtype;
    a->itemsize = base->itemsize;
    a->endian = base->endian;
    a->ndim = ndim;
    a->size = size;
    a->nbytes = nbytes;
    if (ndim) memcpy(a->shape, shape, ndim * sizeof *shape);
    if (strides) {
        memcpy(a->strides, strides, ndim * sizeof *strides);
    } else {
        set_strides(a, WEFT_ORDER_C);
    }
    if (size) {
        /* reach of the view relative to base->data, with overflow checks */
        if (offset > (size_t)PTRDIFF_MAX) goto outside;
        ptrdiff_t vlo = (ptrdiff_t)offset, vhi = (ptrdiff_t)offset;
        for (size_t i = 0; i < ndim; i++) {
            ptrdiff_t ext;
            if (__builtin_mul_overflow((ptrdiff_t)(shape[i] - 1), a->strides[i], &ext))
                goto outside;
            if (ext < 0 ? __builtin_add_overflow(vlo, ext, &vlo)
                        : __builtin_add_overflow(vhi, ext, &vhi))
                goto outside;
        }
        if (__builtin_add_overflow(vhi, (ptrdiff_t)a->itemsize, &vhi)) goto outside;
        if (vlo < lo || vhi > hi) goto outside;
    } else if (offset > (size_t)(hi - lo)) {
        offset = 0;
    }
    a->data = base->data + offset;
    a->store = base->store;
    atomic_fetch_add_explicit(&a->store->refs, 1, memory_order_relaxed);
    *out = a;
    return 0;
outside:
    free(a);
    return weft__err(WEFT_EINVAL, "%s: the view reaches outside its base's elements", what);
}

void weft__rows_init(weft__rows *it, const weft_array *a, weft_order order)
{
    memset(it, 0, sizeof *it);
    it->a = a;
    it->c = order != WEFT_ORDER_F;
    it->first = true;
    if (a->ndim == 0) {
        it->n = 1;
        it->stride = (ptrdiff_t)a->itemsize;
        it->left = 1;
        return;
    }
    it->inner = it->c ? a->ndim - 1 : 0;
    it->n = a->shape[it->inner];
    it->stride = a->strides[it->inner];
    it->left = it->n ? a->size / it->n : 0;
}

const char *weft__rows_next(weft__rows *it)
{
    if (!it->left) return NULL;
    it->left--;
    const weft_array *a = it->a;
    if (!it->first) {
        /* advance the outer index, the axis next to the row's changing fastest */
        if (it->c) {
            for (size_t k = a->ndim - 1; k-- > 0;) {
                if (++it->idx[k] < a->shape[k]) break;
                it->idx[k] = 0;
            }
        } else {
            for (size_t k = 1; k < a->ndim; k++) {
                if (++it->idx[k] < a->shape[k]) break;
                it->idx[k] = 0;
            }
        }
    }
    it->first = false;
    const char *p = a->data;
    for (size_t k = 0; k < a->ndim; k++) p += (ptrdiff_t)it->idx[k] * a->strides[k];
    return p;
}

/* Reverses the bytes of `words` words of `w` bytes at p. */
static void swap_words(char *p, size_t words, size_t w)
{
    switch (w) {
    case 2:
        for (size_t i = 0; i < words; i++) {
            uint16_t v;
            memcpy(&v, p + 2 * i, 2);
            v = __builtin_bswap16(v);
            memcpy(p + 2 * i, &v, 2);
        }
        break;
    case 4:
        for (size_t i = 0; i < words; i++) {
            uint32_t v;
            memcpy(&v, p + 4 * i, 4);
            v = __builtin_bswap32(v);
            memcpy(p + 4 * i, &v, 4);
        }
        break;
    case 8:
        for (size_t i = 0; i < words; i++) {
            uint64_t v;
            memcpy(&v, p + 8 * i, 8);
            v = __builtin_bswap64(v);
            memcpy(p + 8 * i, &v, 8);
        }
        break;
    default:
        break;
    }
}

/* The word a dtype swaps by: complex numbers swap each half (complex64 is
 * two float32: 4-byte words, not 8); every other dtype is one word. */
static size_t swap_word(weft_dtype d, size_t isz)
{
    if (d == WEFT_DTYPE_COMPLEX64) return 4;
    if (d == WEFT_DTYPE_COMPLEX128) return 8;
    return isz;
}

static void swap_run(weft_dtype d, char *p, size_t n, size_t isz)
{
    size_t w = swap_word(d, isz);
    swap_words(p, n * (isz / w), w);
}

int weft_array_byteswap(weft_array *a)
{
    if (!a) return weft__err(WEFT_EINVAL, "weft_array_byteswap: NULL array");
    if (!a->store->writable)
        return weft__err(WEFT_EPERM, "weft_array_byteswap: the array is read-only");
    if (a->itemsize > 1 && a->size) {
        weft__rows it;
        weft__rows_init(&it, a, WEFT_ORDER_C);
        const char *row;
        while ((row = weft__rows_next(&it))) {
            if (it.stride == (ptrdiff_t)a->itemsize) {
                swap_run(a->dtype, (char *)row, it.n, a->itemsize);
            } else {
                for (size_t i = 0; i < it.n; i++)
                    swap_run(a->dtype, (char *)row + (ptrdiff_t)i * it.stride, 1, a->itemsize);
            }
        }
    }
    if (a->itemsize > 1)
        a->endian = a->endian == WEFT_ENDIAN_LITTLE ? WEFT_ENDIAN_BIG : WEFT_ENDIAN_LITTLE;
    return 0;
}

int weft_array_copy(const weft_array *a, const weft_array_options *opts, weft_array **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_array_copy: NULL out");
    *out = NULL;
    if (!a) return weft__err(WEFT_EINVAL, "weft_array_copy: NULL array");
    weft_array_options o = opts ? *opts : (weft_array_options){0};
    weft_array *b = NULL;
    int rc = weft__array_alloc(a->dtype, a->ndim, a->shape, o.order, o.endian, o.flags, false, &b);
    if (rc) return rc;
    bool swap = b->endian != a->endian && a->itemsize > 1;
    if (weft_array_is_contiguous(a, o.order)) {
        memcpy(b->data, a->data, a->nbytes);
        if (swap) swap_run(a->dtype, b->data, a->size, a->itemsize);
    } else {
        weft__rows it;
        weft__rows_init(&it, a, o.order);
        const char *row;
        char *dst = b->data;
        size_t isz = a->itemsize;
        while ((row = weft__rows_next(&it))) {
            if (it.stride == (ptrdiff_t)isz) {
                memcpy(dst, row, it.n * isz);
            } else {
                for (size_t i = 0; i < it.n; i++)
                    memcpy(dst + i * isz, row + (ptrdiff_t)i * it.stride, isz);
            }
            if (swap) swap_run(a->dtype, dst, it.n, isz);
            dst += it.n * isz;
        }
    }
    *out = b;
    return 0;
}

int weft_array_destroy(weft_array *a)
{
    if (!a) return 0;
    int rc = store_release(a->store);
    free(a);
    return rc;
}

weft_dtype weft_array_dtype(const weft_array *a)
{
    return a ? a->dtype : (weft_dtype)0;
}

size_t weft_array_ndim(const weft_array *a)
{
    return a ? a->ndim : 0;
}

const size_t *weft_array_shape(const weft_array *a)
{
    return a ? a->shape : NULL;
}

const ptrdiff_t *weft_array_strides(const weft_array *a)
{
    return a ? a->strides : NULL;
}

size_t weft_array_itemsize(const weft_array *a)
{
    return a ? a->itemsize : 0;
}

size_t weft_array_size(const weft_array *a)
{
    return a ? a->size : 0;
}

size_t weft_array_nbytes(const weft_array *a)
{
    return a ? a->nbytes : 0;
}

void *weft_array_data(const weft_array *a)
{
    return a ? a->data : NULL;
}

bool weft_array_writable(const weft_array *a)
{
    return a && a->store->writable;
}

weft_endian weft_array_endian(const weft_array *a)
{
    return a ? a->endian : WEFT_ENDIAN_NATIVE;
}

bool weft_array_is_contiguous(const weft_array *a, weft_order order)
{
    if (!a) return false;
    if (a->size <= 1) return true;
    ptrdiff_t s = (ptrdiff_t)a->itemsize;
    for (size_t j = 0; j < a->ndim; j++) {
        size_t i = order == WEFT_ORDER_F ? j : a->ndim - 1 - j;
        if (a->shape[i] == 1) continue;
        if (a->strides[i] != s) return false;
        s *= (ptrdiff_t)a->shape[i];
    }
    return true;
}

void *weft_array_at(const weft_array *a, const size_t *idx)
{
    if (!a || (a->ndim && !idx) || !a->size) return NULL;
    char *p = a->data;
    for (size_t k = 0; k < a->ndim; k++) {
        if (idx[k] >= a->shape[k]) return NULL;
        p += (ptrdiff_t)idx[k] * a->strides[k];
    }
    return p;
}

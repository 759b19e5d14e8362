/* npy.c : numpy's .npy format -- the header, reading and writing through
 * byte sources and sinks, and the files: plain (one write / one read of the
 * data), mapped (mmap modes 'r', 'c', 'r+') and zstd-compressed (.npy.zst,
 * streamed).
 *
 * The format (numpy/lib/format.py): the magic "\x93NUMPY", a major and a
 * minor version byte (1.0, 2.0, 3.0), the header length (little-endian u16
 * in 1.0, u32 in 2.0 and 3.0), then the header: a Python dict literal
 * {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } padded with
 * spaces and a final '\n' so that the data starts at a multiple of 64
 * bytes. 3.0 differs from 2.0 only by allowing UTF-8 in the header, which
 * numeric dtypes never need; weft writes 1.0 unless the header is over 64
 * KiB (never for these dtypes), as numpy.
 *
 * Reading outside input: the header's length is bounded
 * (WEFT__NPY_MAX_HEADER) before anything is allocated, the dict is parsed
 * by a small grammar (no eval: strings without escapes, True/False, tuples
 * of decimal integers), the byte count is checked for overflow, and a
 * source whose size is known must hold the whole data before the array is
 * allocated, so a lying header cannot make weft allocate what the file
 * does not hold. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "array/array_internal.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 8
#define ALIGN 64
#define GROWTH_DIGITS 21 /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define IO_CHUNK ((size_t)1 << 30)
#define STAGE (1u << 20)
#define FALLOCATE_MIN ((size_t)4 << 20) /* fallocate the files of big arrays */

/* ---------------------------------------------------------------- header */

int weft__npy_prefix(const unsigned char *buf, size_t n, size_t *header_len, const char *name)
{
    if (n < 10 || memcmp(buf, MAGIC, 6) != 0)
        return weft__err(WEFT_EINVAL, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = buf[6], minor = buf[7];
    if (minor != 0 || major < 1 || major > 3)
        return weft__err(WEFT_EINVAL, "%s: .npy format version %d.%d (weft reads 1.0, 2.0, 3.0)",
                         name, major, minor);
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else {
        if (n < 12) return weft__err(WEFT_EINVAL, "%s: truncated .npy header", name);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    }
    if (hlen > WEFT__NPY_MAX_HEADER)
        return weft__err(WEFT_EINVAL, "%s: .npy header of %zu bytes (at most %u)", name, hlen,
                         WEFT__NPY_MAX_HEADER);
    *header_len = start + hlen;
    return 0;
}

typedef struct parser {
    const char *p, *end;
    const char *name;
    bool py2; /* versions 1.0 and 2.0: Python 2's 123L integers */
} parser;

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool eat(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

static int bad(parser *ps, const char *what)
{
    return weft__err(WEFT_EINVAL, "%s: bad .npy header: %s", ps->name, what);
}

/* A quoted string without escapes into out[0..cap). */
static int parse_string(parser *ps, char *out, size_t cap)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return bad(ps, "expected a string");
    char q = *ps->p++;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || n + 1 >= cap)
            return bad(ps, "a key or dtype string weft does not know");
        out[n++] = *ps->p++;
    }
    if (ps->p >= ps->end) return bad(ps, "unterminated string");
    ps->p++;
    out[n] = '\0';
    return 0;
}

static int parse_descr(parser *ps, weft__npy_header *h)
{
    char s[32];
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '[')
        return weft__err(WEFT_EINVAL,
                         "%s: structured dtype (a list descr): weft reads numeric "
                         "dtypes only",
                         ps->name);
    if (parse_string(ps, s, sizeof s)) return WEFT_EINVAL;
    const char *c = s;
    h->endian = weft__endian_native();
    if (*c == '<')
        h->endian = WEFT_ENDIAN_LITTLE;
    else if (*c == '>')
        h->endian = WEFT_ENDIAN_BIG;
    if (*c == '<' || *c == '>' || *c == '|' || *c == '=') c++;
    char kind = *c ? *c++ : 0;
    unsigned size = 0;
    if (kind == '?' && !*c) {
        kind = 'b';
        size = 1;
    } else {
        if (!*c || strlen(c) > 2) goto unknown;
        for (; *c; c++) {
            if (*c < '0' || *c > '9') goto unknown;
            size = size * 10 + (unsigned)(*c - '0');
        }
    }
    static const struct {
        char kind;
        unsigned size;
        weft_dtype dt;
    } map[] = {
        {'b', 1, WEFT_DTYPE_BOOL},      {'i', 1, WEFT_DTYPE_INT8},
        {'i', 2, WEFT_DTYPE_INT16},     {'i', 4, WEFT_DTYPE_INT32},
        {'i', 8, WEFT_DTYPE_INT64},     {'u', 1, WEFT_DTYPE_UINT8},
        {'u', 2, WEFT_DTYPE_UINT16},    {'u', 4, WEFT_DTYPE_UINT32},
        {'u', 8, WEFT_DTYPE_UINT64},    {'f', 2, WEFT_DTYPE_FLOAT16},
        {'f', 4, WEFT_DTYPE_FLOAT32},   {'f', 8, WEFT_DTYPE_FLOAT64},
        {'c', 8, WEFT_DTYPE_COMPLEX64}, {'c', 16, WEFT_DTYPE_COMPLEX128},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].kind == kind && map[i].size == size) {
            h->dtype = map[i].dt;
            if (size == 1) h->endian = weft__endian_native();
            return 0;
        }
    }
unknown:
    return weft__err(WEFT_EINVAL,
                     "%s: dtype '%s' is not one weft reads (bool, int, uint, "
                     "float, complex)",
                     ps->name, s);
}

static int parse_bool(parser *ps, weft__npy_header *h)
{
    skip_ws(ps);
    size_t left = (size_t)(ps->end - ps->p);
    if (left >= 4 && memcmp(ps->p, "True", 4) == 0) {
        ps->p += 4;
        h->order = WEFT_ORDER_F;
        return 0;
    }
    if (left >= 5 && memcmp(ps->p, "False", 5) == 0) {
        ps->p += 5;
        h->order = WEFT_ORDER_C;
        return 0;
    }
    return bad(ps, "fortran_order is not True or False");
}

static int parse_shape(parser *ps, weft__npy_header *h)
{
    if (!eat(ps, '(')) return bad(ps, "shape is not a tuple");
    h->ndim = 0;
    bool comma = false;
    for (;;) {
        skip_ws(ps);
        if (eat(ps, ')')) break;
        if (h->ndim && !comma) return bad(ps, "shape: expected ',' or ')'");
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return bad(ps, "shape: expected a non-negative integer");
        if (h->ndim == WEFT_ARRAY_MAX_NDIM)
            return weft__err(WEFT_EINVAL, "%s: bad .npy header: more than %d dimensions", ps->name,
                             WEFT_ARRAY_MAX_NDIM);
        size_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (__builtin_mul_overflow(v, (size_t)10, &v) ||
                __builtin_add_overflow(v, (size_t)(*ps->p - '0'), &v))
                return weft__err(WEFT_EINVAL, "%s: bad .npy header: a dimension overflows size_t",
                                 ps->name);
            ps->p++;
        }
        if (ps->py2 && ps->p < ps->end && *ps->p == 'L') ps->p++;
        h->shape[h->ndim++] = v;
        comma = eat(ps, ',');
    }
    /* (3) is the integer 3 in Python, not a tuple */
    if (h->ndim == 1 && !comma) return bad(ps, "shape (n) is not a tuple: (n,)");
    return 0;
}

int weft__npy_parse_header(const void *buf, size_t n, weft__npy_header *h, const char *name)
{
    memset(h, 0, sizeof *h);
    const unsigned char *b = buf;
    int rc = weft__npy_prefix(b, n, &h->header_len, name);
    if (rc) return rc;
    if (n < h->header_len) return weft__err(WEFT_EINVAL, "%s: truncated .npy header", name);
    h->major = b[6];
    h->minor = b[7];
    size_t start = h->major == 1 ? 10 : 12;
    parser ps = {(const char *)b + start, (const char *)b + h->header_len, name, h->major < 3};
    if (!eat(&ps, '{')) return bad(&ps, "not a dict");
    bool seen[3] = {false, false, false};
    for (;;) {
        if (eat(&ps, '}')) break;
        char key[16];
        if (parse_string(&ps, key, sizeof key)) return WEFT_EINVAL;
        if (!eat(&ps, ':')) return bad(&ps, "expected ':'");
        int k = strcmp(key, "descr") == 0           ? 0
                : strcmp(key, "fortran_order") == 0 ? 1
                : strcmp(key, "shape") == 0         ? 2
                                                    : -1;
        if (k < 0) return bad(&ps, "a key that is not descr, fortran_order or shape");
        if (seen[k]) return bad(&ps, "a key given twice");
        seen[k] = true;
        rc = k == 0 ? parse_descr(&ps, h) : k == 1 ? parse_bool(&ps, h) : parse_shape(&ps, h);
        if (rc) return rc;
        if (!eat(&ps, ',')) {
            if (eat(&ps, '}')) break;
            return bad(&ps, "expected ',' or '}'");
        }
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return bad(&ps, "descr, fortran_order or shape is missing");
    skip_ws(&ps);
    if (ps.p != ps.end) return bad(&ps, "bytes after the dict");
    return weft__array_count(h->dtype, h->ndim, h->shape, &h->size, &h->nbytes, name);
}

int weft__npy_format_header(const weft_array *a, int version, char *buf, size_t cap, size_t *len)
{
    char dict[WEFT__NPY_HEADER_CAP];
    static const char kinds[] = {
        [WEFT_DTYPE_BOOL] = 'b',      [WEFT_DTYPE_INT8] = 'i',      [WEFT_DTYPE_INT16] = 'i',
        [WEFT_DTYPE_INT32] = 'i',     [WEFT_DTYPE_INT64] = 'i',     [WEFT_DTYPE_UINT8] = 'u',
        [WEFT_DTYPE_UINT16] = 'u',    [WEFT_DTYPE_UINT32] = 'u',    [WEFT_DTYPE_UINT64] = 'u',
        [WEFT_DTYPE_FLOAT16] = 'f',   [WEFT_DTYPE_FLOAT32] = 'f',   [WEFT_DTYPE_FLOAT64] = 'f',
        [WEFT_DTYPE_COMPLEX64] = 'c', [WEFT_DTYPE_COMPLEX128] = 'c'};
    /* numpy: C-contiguous wins (a 1-d array is both), else Fortran */
    bool fortran =
        !weft_array_is_contiguous(a, WEFT_ORDER_C) && weft_array_is_contiguous(a, WEFT_ORDER_F);
    char bo = a->itemsize == 1 ? '|' : a->endian == WEFT_ENDIAN_BIG ? '>' : '<';
    int n = snprintf(dict, sizeof dict, "{'descr': '%c%c%zu', 'fortran_order': %s, 'shape': (", bo,
                     kinds[a->dtype], a->itemsize, fortran ? "True" : "False");
    for (size_t i = 0; i < a->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i ? ", %zu" : "%zu", a->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", a->ndim == 1 ? "," : "");
    if (a->ndim) {
        /* numpy's room to grow the first (C) or last (Fortran) axis in place */
        char d[32];
        int dl = snprintf(d, sizeof d, "%zu", a->shape[fortran ? a->ndim - 1 : 0]);
        for (int i = dl; i < GROWTH_DIGITS; i++) dict[n++] = ' ';
    }
    size_t hlen = (size_t)n + 1; /* the final '\n' */
    if (version == 0)            /* numpy's rule: 1.0 when the length fits its u16 */
        version = hlen + ALIGN - ((MAGIC_LEN + 2 + hlen) % ALIGN) <= 65535 ? 1 : 2;
    size_t prefix = version == 1 ? MAGIC_LEN + 2 : MAGIC_LEN + 4;
    size_t pad = ALIGN - ((prefix + hlen) % ALIGN);
    size_t body = hlen + pad;
    if (version < 1 || version > 3)
        return weft__err(WEFT_EINVAL, "weft_array_save: .npy version %d (1, 2 or 3)", version);
    if (version == 1 && body > 65535)
        return weft__err(WEFT_EINVAL, "weft_array_save: the header does not fit version 1.0");
    if (prefix + body > cap) return weft__err(WEFT_EINVAL, "weft_array_save: header too long");
    memcpy(buf, MAGIC, 6);
    buf[6] = (char)version;
    buf[7] = 0;
    for (size_t i = 0; i < prefix - MAGIC_LEN; i++) buf[8 + i] = (char)(body >> (8 * i));
    memcpy(buf + prefix, dict, (size_t)n);
    memset(buf + prefix + n, ' ', pad);
    buf[prefix + body - 1] = '\n';
    *len = prefix + body;
    return 0;
}

/* ------------------------------------------------------- sources, sinks */

int weft__npy_read(weft__npy_read_fn rd, void *ctx, size_t avail, const char *name,
                   weft_array **out)
{
    *out = NULL;
    unsigned char pre[12];
    int rc = rd(ctx, pre, 10);
    if (rc) return rc;
    size_t start = 10, hlen;
    if (memcmp(pre, MAGIC, 6) == 0 && (pre[6] == 2 || pre[6] == 3)) {
        if ((rc = rd(ctx, pre + 10, 2))) return rc;
        start = 12;
    }
    if ((rc = weft__npy_prefix(pre, start, &hlen, name))) return rc;
    char *hb = malloc(hlen);
    if (!hb) return weft__err(WEFT_ENOMEM, "%s: out of memory", name);
    memcpy(hb, pre, start);
    weft__npy_header h;
    rc = rd(ctx, hb + start, hlen - start);
    if (rc == 0) rc = weft__npy_parse_header(hb, hlen, &h, name);
    free(hb);
    if (rc) return rc;
    if (avail != SIZE_MAX && (avail < hlen || avail - hlen < h.nbytes))
        return weft__err(WEFT_EINVAL,
                         "%s: truncated: the header announces %zu data bytes, %zu "
                         "are there",
                         name, h.nbytes, avail < hlen ? 0 : avail - hlen);
    weft_array *a = NULL;
    rc = weft__array_alloc(h.dtype, h.ndim, h.shape, h.order, h.endian, 0, false, &a);
    if (rc) return rc;
    if (h.nbytes && (rc = rd(ctx, a->data, h.nbytes))) {
        weft_array_destroy(a);
        return rc;
    }
    *out = a;
    return 0;
}

typedef struct membuf {
    const unsigned char *p;
    size_t left;
    const char *name;
} membuf;

static int mem_read(void *ctx, void *buf, size_t n)
{
    membuf *m = ctx;
    if (n > m->left) return weft__err(WEFT_EINVAL, "%s: truncated .npy data", m->name);
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return 0;
}

int weft__npy_from_buffer(const void *buf, size_t n, const char *name, weft_array **out)
{
    membuf m = {buf, n, name};
    return weft__npy_read(mem_read, &m, n, name, out);
}

int weft__npy_write(const weft_array *a, int version, weft__npy_write_fn wr, void *ctx)
{
    char hdr[WEFT__NPY_HEADER_CAP];
    size_t hlen;
    int rc = weft__npy_format_header(a, version, hdr, sizeof hdr, &hlen);
    if (rc) return rc;
    if ((rc = wr(ctx, hdr, hlen))) return rc;
    if (!a->nbytes) return 0;
    if (weft_array_is_contiguous(a, WEFT_ORDER_C) || weft_array_is_contiguous(a, WEFT_ORDER_F))
        return wr(ctx, a->data, a->nbytes);
    /* a strided view: C order through a staging buffer */
    char *stage = malloc(STAGE);
    if (!stage) return weft__err(WEFT_ENOMEM, "weft_array_save: out of memory");
    size_t used = 0, isz = a->itemsize;
    weft__rows it;
    weft__rows_init(&it, a, WEFT_ORDER_C);
    const char *row;
    while (rc == 0 && (row = weft__rows_next(&it))) {
        for (size_t i = 0; i < it.n && rc == 0; i++) {
            memcpy(stage + used, row + (ptrdiff_t)i * it.stride, isz);
            used += isz;
            if (used + isz > STAGE) {
                rc = wr(ctx, stage, used);
                used = 0;
            }
        }
    }
    if (rc == 0 && used) rc = wr(ctx, stage, used);
    free(stage);
    return rc;
}

/* ---------------------------------------------------------------- files */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

typedef struct fdsink {
    int fd;
    const char *name;
    ZSTD_CCtx *z;
    void *zbuf;
    size_t zcap;
} fdsink;

static int write_all(int fd, const void *buf, size_t n, const char *name)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > IO_CHUNK ? IO_CHUNK : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return weft__err(-errno, "%s: write: %s", name, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fd_write(void *ctx, const void *buf, size_t n)
{
    fdsink *s = ctx;
    return write_all(s->fd, buf, n, s->name);
}

static int zst_pump(fdsink *s, ZSTD_inBuffer *in, ZSTD_EndDirective end)
{
    for (;;) {
        ZSTD_outBuffer out = {s->zbuf, s->zcap, 0};
        size_t left = ZSTD_compressStream2(s->z, &out, in, end);
        if (ZSTD_isError(left))
            return weft__err(WEFT_EINVAL, "%s: zstd: %s", s->name, ZSTD_getErrorName(left));
        int rc = write_all(s->fd, s->zbuf, out.pos, s->name);
        if (rc) return rc;
        if (end == ZSTD_e_end ? left == 0 : in->pos == in->size) return 0;
    }
}

static int zst_write(void *ctx, const void *buf, size_t n)
{
    fdsink *s = ctx;
    ZSTD_inBuffer in = {buf, n, 0};
    return zst_pump(s, &in, ZSTD_e_continue);
}

static _Atomic unsigned tmp_counter;

/* Puts the finished temporary file `tmp` in the place of `path`.
 *
 * renameat2(RENAME_EXCHANGE) swaps the two names in one step: `path` names
 * the old file, then the new one, never nothing and never part of a file;
 * the old file, now under the temporary's name, is then unlinked. A plain
 * rename() over `path` would be as atomic, but on ext4 (auto_da_alloc) a
 * rename that replaces a file first pushes the whole new file to the disk
 * (fs/ext4/namei.c: ext4_rename() calls ext4_alloc_da_blocks() when the
 * target exists; ext4_cross_rename(), the exchange, does not): 8 s instead
 * of 0.2 s for 1 GiB on the machine of docs/array.md.
 *
 * No `path` yet (ENOENT): rename(), which replaces nothing. A file system
 * without RENAME_EXCHANGE (EINVAL; ENOSYS from an old kernel): rename() over
 * `path`, atomic. If the old file cannot be unlinked after the exchange (a
 * directory: EISDIR; a sticky directory: EPERM), the exchange is undone and
 * the save fails with the old file in place; the caller removes `tmp`
 * unless `*tmp_is_old` (the exchange could not be undone either). */
static int put_in_place(const char *tmp, const char *path, bool *tmp_is_old)
{
    *tmp_is_old = false;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
        if (unlink(tmp) == 0) return 0;
        int e = errno;
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) != 0) {
            *tmp_is_old = true;
            return weft__err(-e,
                             "weft_array_save: %s: the old file cannot be removed (%s) nor put "
                             "back (%s); it is at %s",
                             path, strerror(e), strerror(errno), tmp);
        }
        return weft__err(-e, "weft_array_save: %s: the old file cannot be removed: %s", path,
                         strerror(e));
    }
    if (errno != ENOENT && errno != EINVAL && errno != ENOSYS)
        return weft__err(-errno, "weft_array_save: %s: %s", path, strerror(errno));
    if (rename(tmp, path) != 0)
        return weft__err(-errno, "weft_array_save: rename to %s: %s", path, strerror(errno));
    return 0;
}

/* Writes a's .npy bytes (zstd-compressed when `zst`) to `fd` from its
 * current offset. A plain .npy of FALLOCATE_MIN bytes or more first
 * reserves its blocks with fallocate(fd, falloc_mode, ...), unless
 * falloc_mode is -1 (not a regular file): the file system says ENOSPC
 * before anything is written, and the write fills allocated (unwritten)
 * extents instead of reserving delayed-allocation blocks page by page,
 * which ext4 would push to the disk at the close of a truncated file
 * (auto_da_alloc; np.save reserves with FALLOC_FL_KEEP_SIZE for the same
 * reason). A file system without fallocate (EOPNOTSUPP) is written as it
 * comes. */
static int write_npy(const weft_array *a, int fd, const char *path, bool zst,
                     const weft_npy_save_options *o, int falloc_mode)
{
    fdsink s = {fd, path, NULL, NULL, 0};
    int rc = 0;
    if (zst) {
        s.z = ZSTD_createCCtx();
        s.zcap = ZSTD_CStreamOutSize();
        s.zbuf = malloc(s.zcap);
        if (!s.z || !s.zbuf) rc = weft__err(WEFT_ENOMEM, "weft_array_save: out of memory");
        if (rc == 0) {
            ZSTD_CCtx_setParameter(s.z, ZSTD_c_compressionLevel, o->zstd_level ? o->zstd_level : 3);
            ZSTD_CCtx_setParameter(s.z, ZSTD_c_checksumFlag, 1);
            rc = weft__npy_write(a, o->version, zst_write, &s);
        }
        if (rc == 0) {
            ZSTD_inBuffer in = {NULL, 0, 0};
            rc = zst_pump(&s, &in, ZSTD_e_end);
        }
        ZSTD_freeCCtx(s.z);
        free(s.zbuf);
        return rc;
    }
    char hdr[WEFT__NPY_HEADER_CAP];
    size_t hlen;
    if (falloc_mode >= 0 && a->nbytes >= FALLOCATE_MIN &&
        weft__npy_format_header(a, o->version, hdr, sizeof hdr, &hlen) == 0 &&
        fallocate(fd, falloc_mode, 0, (off_t)(hlen + a->nbytes)) != 0 && errno != EOPNOTSUPP &&
        errno != ENOSYS && errno != EINVAL)
        return weft__err(-errno, "weft_array_save: %s: %s", path, strerror(errno));
    return weft__npy_write(a, o->version, fd_write, &s);
}

/* WEFT_NPY_SAVE_IN_PLACE: written over from the start, then cut to the new
 * length. Not truncated first: a truncation frees the old file's cached
 * pages only for the write to take as many again, and on ext4 marks the
 * file for a flush to the disk at close (auto_da_alloc); written over, the
 * pages are reused where they are (docs/array.md, "Why a save costs what it
 * costs"). */
static int save_in_place(const weft_array *a, const char *path, bool zst,
                         const weft_npy_save_options *o)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return weft__err(-errno, "weft_array_save: %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = weft__err(-errno, "weft_array_save: %s: %s", path, strerror(errno));
    bool reg = rc == 0 && S_ISREG(st.st_mode);
    if (rc == 0) rc = write_npy(a, fd, path, zst, o, reg ? FALLOC_FL_KEEP_SIZE : -1);
    if (rc == 0 && reg) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        if (end < 0 || (end < st.st_size && ftruncate(fd, end) != 0))
            rc = weft__err(-errno, "weft_array_save: %s: cut to the new length: %s", path,
                           strerror(errno));
    } else if (rc && reg && lseek(fd, 0, SEEK_CUR) == 0) {
        /* nothing written (the reservation failed): give back what it may
         * have reserved past the end; the old bytes are untouched */
        (void)!ftruncate(fd, st.st_size);
    }
    if (close(fd) != 0 && rc == 0) rc = weft__err(-errno, "%s: close: %s", path, strerror(errno));
    return rc;
}

int weft_array_save(const weft_array *a, const char *path, const weft_npy_save_options *opts)
{
    if (!a || !path || !*path) return weft__err(WEFT_EINVAL, "weft_array_save: NULL argument");
    weft_npy_save_options o = opts ? *opts : (weft_npy_save_options){0};
    if (o.version < 0 || o.version > 3)
        return weft__err(WEFT_EINVAL, "weft_array_save: %s: .npy version %d (1, 2 or 3)", path,
                         o.version);
    if (o.mode != WEFT_NPY_SAVE_ATOMIC && o.mode != WEFT_NPY_SAVE_IN_PLACE)
        return weft__err(WEFT_EINVAL, "weft_array_save: %s: unknown mode %d", path, (int)o.mode);
    bool zst = ends_with(path, ".zst");
    if (o.mode == WEFT_NPY_SAVE_IN_PLACE) return save_in_place(a, path, zst, &o);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 64);
    if (!tmp) return weft__err(WEFT_ENOMEM, "weft_array_save: out of memory");
    snprintf(tmp, plen + 64, "%s.tmp.%ld.%u", path, (long)getpid(), tmp_counter++);
    /* 0666 less the umask, as numpy's files: the kernel applies the umask */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        int rc = weft__err(-errno, "weft_array_save: %s: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    /* a new file: its blocks reserved and its size set in one call */
    int rc = write_npy(a, fd, path, zst, &o, 0);
    if (close(fd) != 0 && rc == 0) rc = weft__err(-errno, "%s: close: %s", path, strerror(errno));
    /* A reader sees the old file or the new one, never part of one, and
     * never no file once there was one. */
    bool tmp_is_old = false;
    if (rc == 0) rc = put_in_place(tmp, path, &tmp_is_old);
    if (rc && !tmp_is_old) unlink(tmp);
    free(tmp);
    return rc;
}

typedef struct fdsrc {
    int fd;
    const char *name;
    ZSTD_DCtx *z;
    ZSTD_inBuffer in;
    void *ibuf;
    size_t icap;
    bool eof;
} fdsrc;

static int zst_read(void *ctx, void *buf, size_t n)
{
    fdsrc *s = ctx;
    ZSTD_outBuffer out = {buf, n, 0};
    while (out.pos < out.size) {
        if (s->in.pos == s->in.size && !s->eof) {
            ssize_t r = read(s->fd, s->ibuf, s->icap);
            if (r < 0) {
                if (errno == EINTR) continue;
                return weft__err(-errno, "%s: read: %s", s->name, strerror(errno));
            }
            if (r == 0) s->eof = true;
            s->in = (ZSTD_inBuffer){s->ibuf, (size_t)r, 0};
        }
        size_t before = out.pos, used = s->in.pos;
        size_t ret = ZSTD_decompressStream(s->z, &out, &s->in);
        if (ZSTD_isError(ret))
            return weft__err(WEFT_EINVAL, "%s: zstd: %s", s->name, ZSTD_getErrorName(ret));
        if (out.pos == before && s->in.pos == used && s->eof)
            return weft__err(WEFT_EINVAL, "%s: truncated (the zstd stream ends early)", s->name);
    }
    return 0;
}

static int load_zst(int fd, const char *path, weft_array **out)
{
    fdsrc s = {.fd = fd, .name = path};
    s.z = ZSTD_createDCtx();
    s.icap = ZSTD_DStreamInSize();
    s.ibuf = malloc(s.icap);
    int rc = 0;
    if (!s.z || !s.ibuf) rc = weft__err(WEFT_ENOMEM, "weft_array_load: out of memory");
    if (rc == 0) rc = weft__npy_read(zst_read, &s, SIZE_MAX, path, out);
    ZSTD_freeDCtx(s.z);
    free(s.ibuf);
    return rc;
}

static int pread_all(int fd, void *buf, size_t n, off_t off, const char *name)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n > IO_CHUNK ? IO_CHUNK : n, off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return weft__err(-errno, "%s: read: %s", name, strerror(errno));
        }
        if (r == 0) return weft__err(WEFT_EINVAL, "%s: truncated .npy file", name);
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* Reads and parses the header of an open plain .npy of `size` bytes and
 * checks that the file holds the data it announces. */
static int file_header(int fd, size_t size, const char *path, weft__npy_header *h)
{
    unsigned char pre[12];
    if (size < 10) return weft__err(WEFT_EINVAL, "%s: not a .npy file (%zu bytes)", path, size);
    size_t hlen;
    int rc = pread_all(fd, pre, size < 12 ? size : 12, 0, path);
    if (rc == 0) rc = weft__npy_prefix(pre, size < 12 ? size : 12, &hlen, path);
    if (rc) return rc;
    if (hlen > size) return weft__err(WEFT_EINVAL, "%s: truncated .npy header", path);
    char *hb = malloc(hlen);
    if (!hb) return weft__err(WEFT_ENOMEM, "%s: out of memory", path);
    rc = pread_all(fd, hb, hlen, 0, path);
    if (rc == 0) rc = weft__npy_parse_header(hb, hlen, h, path);
    free(hb);
    if (rc == 0 && size - hlen < h->nbytes)
        rc = weft__err(WEFT_EINVAL,
                       "%s: truncated: the header announces %zu data bytes, the "
                       "file holds %zu",
                       path, h->nbytes, size - hlen);
    return rc;
}

int weft_array_load(const char *path, const weft_npy_load_options *opts, weft_array **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_array_load: NULL out");
    *out = NULL;
    if (!path || !*path) return weft__err(WEFT_EINVAL, "weft_array_load: NULL path");
    weft_npy_load_options o = opts ? *opts : (weft_npy_load_options){0};
    if ((int)o.mmap_mode < WEFT_MMAP_NONE || (int)o.mmap_mode > WEFT_MMAP_READWRITE)
        return weft__err(WEFT_EINVAL, "weft_array_load: %s: mmap_mode %d", path, (int)o.mmap_mode);
    bool zst = ends_with(path, ".zst");
    if (zst && o.mmap_mode != WEFT_MMAP_NONE)
        return weft__err(WEFT_EINVAL, "weft_array_load: %s: a compressed file cannot be mapped",
                         path);
    int fd = open(path, (o.mmap_mode == WEFT_MMAP_READWRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return weft__err(-errno, "weft_array_load: %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = weft__err(-errno, "weft_array_load: %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode) && o.mmap_mode != WEFT_MMAP_NONE) {
        rc = weft__err(WEFT_EINVAL, "weft_array_load: %s: not a regular file", path);
    } else if (zst || !S_ISREG(st.st_mode)) {
        rc = zst ? load_zst(fd, path, out)
                 : weft__err(WEFT_EINVAL, "weft_array_load: %s: not a regular file", path);
    } else {
        weft__npy_header h;
        size_t size = (size_t)st.st_size;
        rc = file_header(fd, size, path, &h);
        if (rc == 0 && o.mmap_mode == WEFT_MMAP_NONE) {
            weft_array *a = NULL;
            rc = weft__array_alloc(h.dtype, h.ndim, h.shape, h.order, h.endian, 0, false, &a);
            if (rc == 0 && h.nbytes)
                rc = pread_all(fd, a->data, h.nbytes, (off_t)h.header_len, path);
            if (rc)
                weft_array_destroy(a);
            else
                *out = a;
        } else if (rc == 0) {
            size_t len = h.header_len + h.nbytes;
            int prot = o.mmap_mode == WEFT_MMAP_READ ? PROT_READ : PROT_READ | PROT_WRITE;
            int flags = o.mmap_mode == WEFT_MMAP_COPY ? MAP_PRIVATE : MAP_SHARED;
            void *p = mmap(NULL, len, prot, flags, fd, 0);
            if (p == MAP_FAILED) {
                rc = weft__err(errno == ENOMEM ? WEFT_ENOMEM : -errno,
                               "weft_array_load: %s: "
                               "mmap of %zu bytes: %s",
                               path, len, strerror(errno));
            } else {
                rc = weft__array_from_map(p, len, h.header_len, o.mmap_mode != WEFT_MMAP_READ,
                                          h.dtype, h.ndim, h.shape, h.order, h.endian, out);
                if (rc) munmap(p, len);
            }
        }
    }
    close(fd);
    return rc;
}

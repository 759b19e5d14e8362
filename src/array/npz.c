/* npz.c : numpy's .npz archives with libzip -- a zip of .npy entries,
 * stored (np.savez) or deflated (np.savez_compressed).
 *
 * Writing streams each array into libzip through a source callback (the
 * header, then the array's own bytes), so no .npy copy is made in memory;
 * libzip writes a temporary file and renames it at zip_close, so the
 * archive appears whole or not at all. Reading inflates an entry straight
 * into the new array's memory, after checking the header against the
 * entry's uncompressed size, and reads to the entry's end so that libzip
 * checks its CRC. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "array/array_internal.h"

struct weft_npz {
    zip_t *zip;
    char *path;   /* for messages */
    size_t count; /* .npy entries */
    char **names; /* without ".npy" */
    zip_uint64_t *index;
};

static bool npy_name(const char *s, size_t *stem)
{
    size_t n = strlen(s);
    if (n < 4 || strcmp(s + n - 4, ".npy") != 0) return false;
    *stem = n - 4;
    return true;
}

static int zip_code(int ze)
{
    switch (ze) {
    case ZIP_ER_MEMORY:
        return WEFT_ENOMEM;
    case ZIP_ER_NOENT:
        return WEFT_ENOENT;
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_WRITE:
    case ZIP_ER_TMPOPEN:
    case ZIP_ER_RENAME:
    case ZIP_ER_CLOSE:
        return errno ? -errno : WEFT_EINVAL;
    default:
        return WEFT_EINVAL;
    }
}

static int zip_fail(int ze, const char *fn, const char *path)
{
    zip_error_t e;
    zip_error_init_with_code(&e, ze);
    int rc = weft__err(zip_code(ze), "%s: %s: %s", fn, path, zip_error_strerror(&e));
    zip_error_fini(&e);
    return rc;
}

static int finish_open(zip_t *za, const char *name, weft_npz **out)
{
    weft_npz *z = calloc(1, sizeof *z);
    if (!z) {
        zip_discard(za);
        return weft__err(WEFT_ENOMEM, "weft_npz_open: %s: out of memory", name);
    }
    z->zip = za; /* from here on weft_npz_destroy discards it */
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0) n = 0;
    z->path = strdup(name);
    z->names = calloc((size_t)n + 1, sizeof *z->names);
    z->index = calloc((size_t)n + 1, sizeof *z->index);
    if (!z->path || !z->names || !z->index) goto nomem;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *en = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        size_t stem;
        if (!en || !npy_name(en, &stem)) continue;
        char *s = strndup(en, stem);
        if (!s) goto nomem;
        z->names[z->count] = s;
        z->index[z->count++] = (zip_uint64_t)i;
    }
    *out = z;
    return 0;
nomem:
    weft_npz_destroy(z);
    return weft__err(WEFT_ENOMEM, "weft_npz_open: %s: out of memory", name);
}

int weft_npz_open(const char *path, weft_npz **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_npz_open: NULL out");
    *out = NULL;
    if (!path || !*path) return weft__err(WEFT_EINVAL, "weft_npz_open: NULL path");
    int ze = 0;
    errno = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!za) return zip_fail(ze, "weft_npz_open", path);
    return finish_open(za, path, out);
}

int weft__npz_open_buffer(const void *buf, size_t n, const char *name, weft_npz **out)
{
    *out = NULL;
    zip_error_t e;
    zip_error_init(&e);
    zip_source_t *src = zip_source_buffer_create(buf, n, 0, &e);
    if (!src) {
        zip_error_fini(&e);
        return weft__err(WEFT_ENOMEM, "weft_npz_open: %s: out of memory", name);
    }
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &e);
    if (!za) {
        int ze = zip_error_code_zip(&e);
        zip_source_free(src);
        zip_error_fini(&e);
        return zip_fail(ze, "weft_npz_open", name);
    }
    zip_error_fini(&e);
    return finish_open(za, name, out);
}

size_t weft_npz_count(const weft_npz *z)
{
    return z ? z->count : 0;
}

const char *weft_npz_name(const weft_npz *z, size_t i)
{
    return z && i < z->count ? z->names[i] : NULL;
}

typedef struct zreader {
    zip_file_t *f;
    const char *name;
} zreader;

static int zread(void *ctx, void *buf, size_t n)
{
    zreader *r = ctx;
    char *p = buf;
    while (n) {
        zip_int64_t got = zip_fread(r->f, p, n);
        if (got < 0) return weft__err(WEFT_EINVAL, "%s: %s", r->name, zip_file_strerror(r->f));
        if (got == 0) return weft__err(WEFT_EINVAL, "%s: truncated .npy entry", r->name);
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int weft_npz_get(weft_npz *z, const char *name, weft_array **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_npz_get: NULL out");
    *out = NULL;
    if (!z || !name) return weft__err(WEFT_EINVAL, "weft_npz_get: NULL argument");
    size_t stem = strlen(name), dummy;
    if (npy_name(name, &dummy)) stem = dummy;
    size_t i;
    for (i = 0; i < z->count; i++)
        if (strlen(z->names[i]) == stem && strncmp(z->names[i], name, stem) == 0) break;
    if (i == z->count)
        return weft__err(WEFT_ENOENT, "weft_npz_get: %s: no entry '%.*s.npy'", z->path, (int)stem,
                         name);
    zip_stat_t st;
    zip_stat_init(&st);
    char label[512];
    snprintf(label, sizeof label, "%s:%s.npy", z->path, z->names[i]);
    if (zip_stat_index(z->zip, z->index[i], 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return weft__err(WEFT_EINVAL, "weft_npz_get: %s: %s", label, zip_strerror(z->zip));
    zip_file_t *f = zip_fopen_index(z->zip, z->index[i], 0);
    if (!f) return weft__err(WEFT_EINVAL, "weft_npz_get: %s: %s", label, zip_strerror(z->zip));
    zreader r = {f, label};
    size_t avail = st.size > SIZE_MAX ? SIZE_MAX - 1 : (size_t)st.size;
    int rc = weft__npy_read(zread, &r, avail, label, out);
    if (rc == 0) {
        /* read on to the entry's end: libzip checks the CRC there */
        char tail[256];
        zip_int64_t got;
        while ((got = zip_fread(f, tail, sizeof tail)) > 0) {
        }
        if (got < 0) rc = weft__err(WEFT_EINVAL, "%s: %s", label, zip_file_strerror(f));
    }
    zip_fclose(f);
    if (rc) {
        weft_array_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int weft_npz_destroy(weft_npz *z)
{
    if (!z) return 0;
    if (z->zip) zip_discard(z->zip);
    for (size_t i = 0; i < z->count; i++) free(z->names[i]);
    free(z->names);
    free(z->index);
    free(z->path);
    free(z);
    return 0;
}

/* ---------------------------------------------------------------- writing */

/* One entry's bytes, handed to libzip on demand: the header, then data. */
typedef struct entry_src {
    const weft_array *a; /* contiguous */
    weft_array *owned;   /* a C-order copy of a strided view, or NULL */
    char hdr[WEFT__NPY_HEADER_CAP];
    size_t hlen;
    size_t pos; /* bytes given so far */
    zip_error_t err;
} entry_src;

static zip_int64_t entry_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
    entry_src *e = ud;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        e->pos = 0;
        return 0;
    case ZIP_SOURCE_READ: {
        size_t total = e->hlen + e->a->nbytes, n = 0;
        char *out = data;
        while (n < len && e->pos < total) {
            size_t k;
            if (e->pos < e->hlen) {
                k = e->hlen - e->pos;
                if (k > len - n) k = (size_t)(len - n);
                memcpy(out + n, e->hdr + e->pos, k);
            } else {
                size_t off = e->pos - e->hlen;
                k = e->a->nbytes - off;
                if (k > len - n) k = (size_t)(len - n);
                memcpy(out + n, e->a->data + off, k);
            }
            n += k;
            e->pos += k;
        }
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &e->err);
        if (!st) return -1;
        zip_stat_init(st);
        st->size = e->hlen + e->a->nbytes;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&e->err, data, len);
    case ZIP_SOURCE_FREE:
        weft_array_destroy(e->owned);
        zip_error_fini(&e->err);
        free(e);
        return 0;
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                              ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
                                              -1);
    default:
        zip_error_set(&e->err, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

int weft_npz_save(const char *path, const char *const *names, const weft_array *const *arrays,
                  size_t count, const weft_npz_save_options *opts)
{
    const char *fn = "weft_npz_save";
    if (!path || !*path || (count && (!names || !arrays)))
        return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    weft_npz_save_options o = opts ? *opts : (weft_npz_save_options){0};
    for (size_t i = 0; i < count; i++) {
        if (!names[i] || !*names[i] || strchr(names[i], '/') || !arrays[i])
            return weft__err(WEFT_EINVAL, "%s: %s: entry %zu: empty name, '/' or NULL array", fn,
                             path, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return weft__err(WEFT_EINVAL, "%s: %s: name '%s' given twice", fn, path, names[i]);
    }
    int ze = 0;
    errno = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    if (!za) return zip_fail(ze, fn, path);
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        entry_src *e = calloc(1, sizeof *e);
        if (!e) {
            rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
            break;
        }
        zip_error_init(&e->err);
        e->a = arrays[i];
        if (!weft_array_is_contiguous(e->a, WEFT_ORDER_C) &&
            !weft_array_is_contiguous(e->a, WEFT_ORDER_F)) {
            weft_array_options co = {WEFT_ORDER_C, weft_array_endian(e->a), 0};
            rc = weft_array_copy(e->a, &co, &e->owned);
            e->a = e->owned;
        }
        if (rc == 0) rc = weft__npy_format_header(e->a, 0, e->hdr, sizeof e->hdr, &e->hlen);
        zip_source_t *src = rc ? NULL : zip_source_function(za, entry_cb, e);
        if (!src) {
            if (rc == 0) rc = weft__err(WEFT_ENOMEM, "%s: %s: %s", fn, path, zip_strerror(za));
            weft_array_destroy(e->owned);
            zip_error_fini(&e->err);
            free(e);
            break;
        }
        size_t nl = strlen(names[i]);
        char *en = malloc(nl + 5);
        if (!en) {
            zip_source_free(src);
            rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
            break;
        }
        memcpy(en, names[i], nl);
        memcpy(en + nl, ".npy", 5);
        zip_int64_t idx = zip_file_add(za, en, src, ZIP_FL_ENC_UTF_8);
        free(en);
        if (idx < 0) {
            zip_source_free(src);
            rc = weft__err(WEFT_EINVAL, "%s: %s: %s", fn, path, zip_strerror(za));
            break;
        }
        if (zip_set_file_compression(za, (zip_uint64_t)idx,
                                     o.compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0)
            rc = weft__err(WEFT_EINVAL, "%s: %s: %s", fn, path, zip_strerror(za));
    }
    if (rc) {
        zip_discard(za);
        return rc;
    }
    errno = 0;
    if (zip_close(za) != 0) {
        zip_error_t *e = zip_get_error(za);
        rc = weft__err(zip_code(zip_error_code_zip(e)), "%s: %s: %s", fn, path,
                       zip_error_strerror(e));
        zip_discard(za);
    }
    return rc;
}

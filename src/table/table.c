/* table.c : weft_table -- typed columns, building, reading, slicing,
 * concatenation and the compact serialization that carries a partition
 * between processes (docs/table.md "Partition format"). */
#include "table/table_internal.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

void weft__table_hugepages(void *p, size_t n)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (!p || n < 2 * huge) return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
    if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE); /* a hint: failure is harmless */
}

/* ---- the cache of large blocks ----
 *
 * Blocks of 1 MiB or more that the table layer frees (columns, read
 * buffers) are parked here and handed to its next large allocations
 * instead of going back to the kernel. glibc serves such sizes with mmap
 * and gives them back with munmap at free, so every partition of every
 * run faulted its pages in anew: on a VM whose freed memory goes back to
 * the host (virtio-balloon free page reporting, as on this project's
 * machines) a fault then costs the host's too -- 18 us a page measured
 * (docs/table.md "Memory kept between runs"): table_nlargest took 4.0 s
 * instead of 2.0 s, 684k page faults instead of 17k. Parked blocks are
 * plain malloc blocks: whatever is handed out may be freed with free().
 * At most WEFT_TABLE_CACHE_MIB MiB (default 256, 0: no cache; read at
 * each block parked, so a change takes effect at the next) are parked;
 * the oldest go first; weft_table_cache_release() frees them all. */

#define BLK_MIN ((size_t)1 << 20)
#define BLK_SLOTS 256

static struct {
    pthread_mutex_t mu;
    void *p[BLK_SLOTS];
    size_t size[BLK_SLOTS]; /* usable bytes */
    size_t n, bytes;
    uint64_t hits, misses;
} blk = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The cache's bound: WEFT_TABLE_CACHE_MIB, read at every block parked
 * (a getenv beside a free of 1 MiB or more; a test may change it). */
static size_t blk_cap(void)
{
    const char *e = getenv("WEFT_TABLE_CACHE_MIB");
    if (!e || !*e) return (size_t)256 << 20;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(e, &end, 10);
    if (*end || errno || v > ((size_t)1 << 24))
        return (size_t)256 << 20; /* malformed: the default */
    return (size_t)v << 20;
}

/* A fork() while another thread holds the cache's lock would leave the
 * child's copy locked for good: the lock is taken around fork(), as
 * glibc does with malloc's. */
static void blk_prefork(void)
{
    pthread_mutex_lock(&blk.mu);
}

static void blk_postfork(void)
{
    pthread_mutex_unlock(&blk.mu);
}

static void blk_atfork(void)
{
    (void)pthread_atfork(blk_prefork, blk_postfork, blk_postfork);
}

static pthread_once_t blk_once = PTHREAD_ONCE_INIT;

void *weft__blk_take(size_t n, size_t align)
{
    if (n < BLK_MIN) return NULL;
    pthread_once(&blk_once, blk_atfork);
    pthread_mutex_lock(&blk.mu);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < blk.n; i++)
        if (blk.size[i] >= n && blk.size[i] <= 2 * n + BLK_MIN &&
            (uintptr_t)blk.p[i] % align == 0 && (best == SIZE_MAX || blk.size[i] < blk.size[best]))
            best = i;
    void *p = NULL;
    if (best != SIZE_MAX) {
        p = blk.p[best];
        blk.bytes -= blk.size[best];
        memmove(&blk.p[best], &blk.p[best + 1], (blk.n - best - 1) * sizeof *blk.p);
        memmove(&blk.size[best], &blk.size[best + 1], (blk.n - best - 1) * sizeof *blk.size);
        blk.n--;
        blk.hits++;
    } else {
        blk.misses++;
    }
    pthread_mutex_unlock(&blk.mu);
    return p;
}

void weft__blk_free(void *p)
{
    if (!p) return;
    size_t sz = malloc_usable_size(p), cap = blk_cap();
    if (sz < BLK_MIN || sz > cap) {
        free(p);
        return;
    }
    void *out[BLK_SLOTS];
    size_t nout = 0;
    pthread_once(&blk_once, blk_atfork);
    pthread_mutex_lock(&blk.mu);
    while (blk.n && (blk.n == BLK_SLOTS || blk.bytes + sz > cap)) { /* the oldest go */
        out[nout++] = blk.p[0];
        blk.bytes -= blk.size[0];
        memmove(&blk.p[0], &blk.p[1], (blk.n - 1) * sizeof *blk.p);
        memmove(&blk.size[0], &blk.size[1], (blk.n - 1) * sizeof *blk.size);
        blk.n--;
    }
    blk.p[blk.n] = p;
    blk.size[blk.n++] = sz;
    blk.bytes += sz;
    pthread_mutex_unlock(&blk.mu);
    for (size_t i = 0; i < nout; i++) free(out[i]);
}

void *weft__blk_grow(void *p, size_t used, size_t n)
{
    void *q = weft__blk_take(n, 16);
    if (!q) return realloc(p, n);
    if (used) memcpy(q, p, used);
    weft__blk_free(p);
    return q;
}

void weft__blk_stats(size_t *bytes, size_t *blocks, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&blk.mu);
    if (bytes) *bytes = blk.bytes;
    if (blocks) *blocks = blk.n;
    if (hits) *hits = blk.hits;
    if (misses) *misses = blk.misses;
    pthread_mutex_unlock(&blk.mu);
}

int weft_table_cache_release(void)
{
    void *out[BLK_SLOTS];
    pthread_mutex_lock(&blk.mu);
    size_t n = blk.n;
    memcpy(out, blk.p, n * sizeof *out);
    blk.n = 0;
    blk.bytes = 0;
    pthread_mutex_unlock(&blk.mu);
    for (size_t i = 0; i < n; i++) free(out[i]);
    return 0;
}

const char *weft_col_type_name(weft_col_type type)
{
    switch (type) {
    case WEFT_COL_INT64:
        return "int64";
    case WEFT_COL_DOUBLE:
        return "double";
    case WEFT_COL_BOOL:
        return "bool";
    case WEFT_COL_TEXT:
        return "text";
    default:
        return "none";
    }
}

size_t weft__tcol_width(weft_col_type t)
{
    switch (t) {
    case WEFT_COL_INT64:
        return sizeof(int64_t);
    case WEFT_COL_DOUBLE:
        return sizeof(double);
    case WEFT_COL_BOOL:
        return sizeof(bool);
    case WEFT_COL_TEXT:
        return sizeof(uint64_t);
    default:
        return 0;
    }
}

int weft_table_create(weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = calloc(1, sizeof(weft_table));
    return *out ? 0 : WEFT_ENOMEM;
}

static void tcol_free(tcol *c)
{
    free(c->name);
    weft__blk_free(c->data);
    weft__blk_free(c->valid);
    weft__blk_free(c->chars);
}

int weft_table_destroy(weft_table *t)
{
    if (!t) return 0;
    for (size_t i = 0; i < t->ncols; i++) {
        /* a view: the values belong to the buffer, or to the table a
         * reference named (weft__table_ref) */
        if (t->borrowed || t->cols[i].borrowed) {
            free(t->cols[i].name);
            continue;
        }
        tcol_free(&t->cols[i]);
    }
    free(t->cols);
    free(t);
    return 0;
}

tcol *weft__table_col(const weft_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0) return &t->cols[i];
    return NULL;
}

tcol *weft__table_add_col(weft_table *t, const char *name, weft_col_type type)
{
    if (t->ncols == t->capcols) {
        size_t nc = t->capcols ? t->capcols * 2 : 8;
        tcol *p = realloc(t->cols, nc * sizeof *p);
        if (!p) return NULL;
        t->cols = p;
        t->capcols = nc;
    }
    tcol *c = &t->cols[t->ncols];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    c->type = type;
    if (!c->name) return NULL;
    if (type == WEFT_COL_TEXT) {
        c->data = calloc(1, sizeof(uint64_t));
        if (!c->data) {
            free(c->name);
            return NULL;
        }
        c->cap = 0;
    }
    t->ncols++;
    return c;
}

/* The bytes of c->data in use (a text column's offsets: one more). */
static size_t tcol_used(const tcol *c)
{
    return (c->type == WEFT_COL_TEXT ? c->n + 1 : c->n) * weft__tcol_width(c->type);
}

int weft__tcol_reserve(tcol *c, size_t rows)
{
    if (rows <= c->cap) return 0;
    size_t nc = c->cap ? c->cap : 16;
    while (nc < rows) nc *= 2;
    size_t w = weft__tcol_width(c->type);
    size_t slots = c->type == WEFT_COL_TEXT ? nc + 1 : nc;
    void *d = weft__blk_grow(c->data, tcol_used(c), slots * w);
    if (!d) return WEFT_ENOMEM;
    c->data = d;
    weft__table_hugepages(d, slots * w);
    if (c->valid) {
        uint8_t *v = weft__blk_grow(c->valid, c->n, nc);
        if (!v) return WEFT_ENOMEM;
        c->valid = v;
    }
    c->cap = nc;
    return 0;
}

int weft__tcol_reserve_exact(tcol *c, size_t rows)
{
    if (rows <= c->cap) return 0;
    size_t w = weft__tcol_width(c->type);
    size_t slots = c->type == WEFT_COL_TEXT ? rows + 1 : rows;
    void *d = weft__blk_grow(c->data, tcol_used(c), slots * w);
    if (!d) return WEFT_ENOMEM;
    c->data = d;
    weft__table_hugepages(d, slots * w);
    if (c->valid) {
        uint8_t *v = weft__blk_grow(c->valid, c->n, rows);
        if (!v) return WEFT_ENOMEM;
        c->valid = v;
    }
    c->cap = rows;
    return 0;
}

static int mark(tcol *c, bool ok)
{
    if (!ok && !c->valid) {
        c->valid = weft__blk_alloc(c->cap ? c->cap : 1);
        if (!c->valid) return WEFT_ENOMEM;
        memset(c->valid, 1, c->n);
    }
    if (c->valid) c->valid[c->n] = ok;
    return 0;
}

int weft__tcol_push_int64(tcol *c, int64_t v, bool ok)
{
    if (c->n == c->cap && weft__tcol_reserve(c, c->n + 1)) return WEFT_ENOMEM;
    if (mark(c, ok)) return WEFT_ENOMEM;
    ((int64_t *)c->data)[c->n++] = ok ? v : 0;
    return 0;
}

int weft__tcol_push_double(tcol *c, double v, bool ok)
{
    if (c->n == c->cap && weft__tcol_reserve(c, c->n + 1)) return WEFT_ENOMEM;
    if (mark(c, ok)) return WEFT_ENOMEM;
    ((double *)c->data)[c->n++] = ok ? v : NAN;
    return 0;
}

int weft__tcol_push_bool(tcol *c, bool v, bool ok)
{
    if (c->n == c->cap && weft__tcol_reserve(c, c->n + 1)) return WEFT_ENOMEM;
    if (mark(c, ok)) return WEFT_ENOMEM;
    ((bool *)c->data)[c->n++] = ok ? v : false;
    return 0;
}

int weft__tcol_push_text(tcol *c, const char *s, size_t len, bool ok)
{
    if (c->n == c->cap && weft__tcol_reserve(c, c->n + 1)) return WEFT_ENOMEM;
    if (!ok) len = 0;
    if (c->nchars + len + 1 > c->capchars) {
        size_t nc = c->capchars ? c->capchars : 64;
        while (nc < c->nchars + len + 1) nc *= 2;
        char *p = weft__blk_grow(c->chars, c->nchars, nc);
        if (!p) return WEFT_ENOMEM;
        c->chars = p;
        c->capchars = nc;
        weft__table_hugepages(p, nc);
    }
    if (mark(c, ok)) return WEFT_ENOMEM;
    if (len) memcpy(c->chars + c->nchars, s, len);
    c->chars[c->nchars + len] = 0;
    c->nchars += len + 1;
    ((uint64_t *)c->data)[++c->n] = c->nchars;
    return 0;
}

int weft__tcol_push_from(tcol *dst, const tcol *src, size_t row)
{
    bool ok = weft__tcol_ok(src, row);
    switch (src->type) {
    case WEFT_COL_INT64:
        return weft__tcol_push_int64(dst, ((const int64_t *)src->data)[row], ok);
    case WEFT_COL_DOUBLE:
        return weft__tcol_push_double(dst, ((const double *)src->data)[row], ok);
    case WEFT_COL_BOOL:
        return weft__tcol_push_bool(dst, ((const bool *)src->data)[row], ok);
    case WEFT_COL_TEXT:
        return weft__tcol_push_text(dst, weft__tcol_text(src, row), weft__tcol_textlen(src, row),
                                    ok);
    default:
        return WEFT_EINVAL;
    }
}

int weft__table_fix_rows(weft_table *t)
{
    t->nrows = t->ncols ? t->cols[0].n : 0;
    for (size_t i = 1; i < t->ncols; i++)
        if (t->cols[i].n != t->nrows) return WEFT_EINVAL;
    return 0;
}

static int add_check(weft_table *t, const char *name, const void *data, size_t n)
{
    if (!t || !name || (!data && n > 0)) return WEFT_EINVAL;
    if (t->ncols && n != t->nrows) return WEFT_EINVAL;
    if (weft__table_col(t, name)) return WEFT_EINVAL;
    return 0;
}

static int add_fixed(weft_table *t, const char *name, weft_col_type type, const void *data,
                     const uint8_t *valid, size_t n)
{
    int rc = add_check(t, name, data, n);
    if (rc) return rc;
    tcol *c = weft__table_add_col(t, name, type);
    if (!c) return WEFT_ENOMEM;
    if (weft__tcol_reserve(c, n ? n : 1)) return WEFT_ENOMEM;
    size_t w = weft__tcol_width(type);
    if (n) memcpy(c->data, data, n * w);
    if (type == WEFT_COL_BOOL)
        for (size_t i = 0; i < n; i++) ((bool *)c->data)[i] = ((const uint8_t *)data)[i] != 0;
    c->n = n;
    if (valid) {
        bool any = false;
        for (size_t i = 0; i < n; i++) any |= !valid[i];
        if (any) {
            c->valid = malloc(c->cap);
            if (!c->valid) return WEFT_ENOMEM;
            for (size_t i = 0; i < n; i++) c->valid[i] = valid[i] != 0;
            for (size_t i = 0; i < n; i++) {
                if (valid[i]) continue;
                if (type == WEFT_COL_DOUBLE) ((double *)c->data)[i] = NAN;
                if (type == WEFT_COL_INT64) ((int64_t *)c->data)[i] = 0;
                if (type == WEFT_COL_BOOL) ((bool *)c->data)[i] = false;
            }
        }
    }
    t->nrows = n;
    return 0;
}

int weft_table_add_int64(weft_table *t, const char *name, const int64_t *data, const uint8_t *valid,
                         size_t n)
{
    return add_fixed(t, name, WEFT_COL_INT64, data, valid, n);
}

int weft_table_add_double(weft_table *t, const char *name, const double *data, const uint8_t *valid,
                          size_t n)
{
    return add_fixed(t, name, WEFT_COL_DOUBLE, data, valid, n);
}

int weft_table_add_bool(weft_table *t, const char *name, const bool *data, const uint8_t *valid,
                        size_t n)
{
    return add_fixed(t, name, WEFT_COL_BOOL, data, valid, n);
}

int weft_table_add_text(weft_table *t, const char *name, const char *const *strs, size_t n)
{
    int rc = add_check(t, name, strs, n);
    if (rc) return rc;
    tcol *c = weft__table_add_col(t, name, WEFT_COL_TEXT);
    if (!c) return WEFT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (weft__tcol_push_text(c, strs[i], strs[i] ? strlen(strs[i]) : 0, strs[i] != NULL))
            return WEFT_ENOMEM;
    t->nrows = n;
    return 0;
}

size_t weft_table_rows(const weft_table *t)
{
    return t ? t->nrows : 0;
}

size_t weft_table_cols(const weft_table *t)
{
    return t ? t->ncols : 0;
}

uint64_t weft_table_skipped(const weft_table *t)
{
    return t ? t->skipped : 0;
}

int weft_table_col_index(const weft_table *t, const char *name, size_t *col)
{
    if (!t || !name || !col) return WEFT_EINVAL;
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0) {
            *col = i;
            return 0;
        }
    return WEFT_ENOENT;
}

const char *weft_table_col_name(const weft_table *t, size_t col)
{
    return t && col < t->ncols ? t->cols[col].name : NULL;
}

weft_col_type weft_table_col_type(const weft_table *t, size_t col)
{
    return t && col < t->ncols ? t->cols[col].type : WEFT_COL_NONE;
}

int weft_table_col_data(const weft_table *t, size_t col, const void **data, const uint8_t **valid)
{
    if (!t || col >= t->ncols || t->cols[col].type == WEFT_COL_TEXT) return WEFT_EINVAL;
    if (data) *data = t->cols[col].data;
    if (valid) *valid = t->cols[col].valid;
    return 0;
}

static const tcol *cell(const weft_table *t, size_t col, size_t row, weft_col_type type)
{
    if (!t || col >= t->ncols || row >= t->nrows) return NULL;
    const tcol *c = &t->cols[col];
    return c->type == type ? c : NULL;
}

int weft_table_get_int64(const weft_table *t, size_t col, size_t row, int64_t *v, bool *valid)
{
    const tcol *c = cell(t, col, row, WEFT_COL_INT64);
    if (!c || !v) return WEFT_EINVAL;
    *v = ((const int64_t *)c->data)[row];
    if (valid) *valid = weft__tcol_ok(c, row);
    return 0;
}

int weft_table_get_double(const weft_table *t, size_t col, size_t row, double *v, bool *valid)
{
    const tcol *c = cell(t, col, row, WEFT_COL_DOUBLE);
    if (!c) c = cell(t, col, row, WEFT_COL_INT64);
    if (!c || !v) return WEFT_EINVAL;
    *v = weft__tcol_num(c, row);
    if (valid) *valid = weft__tcol_ok(c, row);
    return 0;
}

int weft_table_get_bool(const weft_table *t, size_t col, size_t row, bool *v, bool *valid)
{
    const tcol *c = cell(t, col, row, WEFT_COL_BOOL);
    if (!c || !v) return WEFT_EINVAL;
    *v = ((const bool *)c->data)[row];
    if (valid) *valid = weft__tcol_ok(c, row);
    return 0;
}

int weft_table_get_text(const weft_table *t, size_t col, size_t row, const char **v, bool *valid)
{
    const tcol *c = cell(t, col, row, WEFT_COL_TEXT);
    if (!c || !v) return WEFT_EINVAL;
    *v = weft__tcol_text(c, row);
    if (valid) *valid = weft__tcol_ok(c, row);
    return 0;
}

int weft__table_like(const weft_table *t, weft_table **out)
{
    int rc = weft_table_create(out);
    if (rc) return rc;
    for (size_t i = 0; i < t->ncols; i++)
        if (!weft__table_add_col(*out, t->cols[i].name, t->cols[i].type)) {
            weft_table_destroy(*out);
            *out = NULL;
            return WEFT_ENOMEM;
        }
    return 0;
}

int weft__table_take(const weft_table *t, const size_t *idx, size_t n, weft_table **out)
{
    int rc = weft__table_like(t, out);
    if (rc) return rc;
    weft_table *o = *out;
    for (size_t j = 0; j < t->ncols && !rc; j++) {
        tcol *d = &o->cols[j];
        const tcol *s = &t->cols[j];
        rc = weft__tcol_reserve(d, n ? n : 1);
        if (!rc && s->type != WEFT_COL_TEXT) {
            size_t w = weft__tcol_width(s->type);
            for (size_t i = 0; i < n && !rc; i++) {
                bool ok = weft__tcol_ok(s, idx[i]);
                if (!ok)
                    rc = mark(d, false);
                else if (d->valid)
                    d->valid[d->n] = 1;
                memcpy((char *)d->data + d->n * w, (const char *)s->data + idx[i] * w, w);
                d->n++;
            }
        } else {
            for (size_t i = 0; i < n && !rc; i++) rc = weft__tcol_push_from(d, s, idx[i]);
        }
    }
    if (!rc) rc = weft__table_fix_rows(o);
    o->skipped = t->skipped;
    if (rc) {
        weft_table_destroy(o);
        *out = NULL;
    }
    return rc;
}

int weft_table_slice(const weft_table *t, size_t start, size_t end, weft_table **out)
{
    if (out) *out = NULL;
    if (!t || !out || start > end || end > t->nrows) return WEFT_EINVAL;
    size_t n = end - start;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return WEFT_ENOMEM;
    for (size_t i = 0; i < n; i++) idx[i] = start + i;
    int rc = weft__table_take(t, idx, n, out);
    free(idx);
    return rc;
}

int weft_table_concat(const weft_table *const *parts, size_t n, weft_table **out)
{
    if (!out || (!parts && n)) return WEFT_EINVAL;
    *out = NULL;
    if (n == 0) return weft_table_create(out);
    const weft_table *a = parts[0];
    for (size_t p = 1; p < n; p++) {
        if (parts[p]->ncols != a->ncols) return WEFT_EINVAL;
        for (size_t j = 0; j < a->ncols; j++)
            if (parts[p]->cols[j].type != a->cols[j].type ||
                strcmp(parts[p]->cols[j].name, a->cols[j].name))
                return WEFT_EINVAL;
    }
    int rc = weft__table_like(a, out);
    if (rc) return rc;
    weft_table *o = *out;
    size_t rows = 0;
    for (size_t p = 0; p < n; p++) rows += parts[p]->nrows, o->skipped += parts[p]->skipped;
    for (size_t j = 0; j < a->ncols && !rc; j++) {
        tcol *d = &o->cols[j];
        rc = weft__tcol_reserve(d, rows ? rows : 1);
        size_t w = weft__tcol_width(d->type);
        for (size_t p = 0; p < n && !rc; p++) {
            const tcol *s = &parts[p]->cols[j];
            if (s->valid && !d->valid) {
                d->valid = malloc(d->cap);
                if (!d->valid)
                    rc = WEFT_ENOMEM;
                else
                    memset(d->valid, 1, d->n);
            }
            if (rc) break;
            if (d->valid) {
                if (s->valid)
                    memcpy(d->valid + d->n, s->valid, s->n);
                else
                    memset(d->valid + d->n, 1, s->n);
            }
            if (d->type != WEFT_COL_TEXT) {
                if (s->n) memcpy((char *)d->data + d->n * w, s->data, s->n * w);
            } else {
                if (d->nchars + s->nchars > d->capchars) {
                    size_t nc = d->capchars ? d->capchars : 64;
                    while (nc < d->nchars + s->nchars) nc *= 2;
                    char *c = realloc(d->chars, nc);
                    if (!c) {
                        rc = WEFT_ENOMEM;
                        break;
                    }
                    d->chars = c;
                    d->capchars = nc;
                    weft__table_hugepages(c, nc);
                }
                if (s->nchars) memcpy(d->chars + d->nchars, s->chars, s->nchars);
                const uint64_t *so = s->data;
                uint64_t *dofs = d->data;
                for (size_t i = 1; i <= s->n; i++) dofs[d->n + i] = d->nchars + so[i];
                d->nchars += s->nchars;
            }
            d->n += s->n;
        }
    }
    if (!rc) rc = weft__table_fix_rows(o);
    if (rc) {
        weft_table_destroy(o);
        *out = NULL;
    }
    return rc;
}

bool weft_table_equal(const weft_table *a, const weft_table *b)
{
    if (!a || !b) return a == b;
    if (a->ncols != b->ncols || a->nrows != b->nrows) return false;
    for (size_t j = 0; j < a->ncols; j++) {
        const tcol *x = &a->cols[j], *y = &b->cols[j];
        if (x->type != y->type || strcmp(x->name, y->name)) return false;
        for (size_t i = 0; i < a->nrows; i++) {
            bool ox = weft__tcol_ok(x, i), oy = weft__tcol_ok(y, i);
            if (ox != oy) return false;
            if (!ox) continue;
            switch (x->type) {
            case WEFT_COL_TEXT:
                if (weft__tcol_textlen(x, i) != weft__tcol_textlen(y, i) ||
                    memcmp(weft__tcol_text(x, i), weft__tcol_text(y, i), weft__tcol_textlen(x, i)))
                    return false;
                break;
            default: {
                size_t w = weft__tcol_width(x->type);
                if (memcmp((const char *)x->data + i * w, (const char *)y->data + i * w, w))
                    return false;
            }
            }
        }
    }
    return true;
}

/* ---- serialization ----
 * "WTB2", u64 rows, u64 cols, u64 skipped; per column: u8 type, u8 has_valid,
 * u16 name length, name bytes, zero bytes up to an 8-aligned offset, u64
 * text bytes (0 unless text), values (rows x width; text: rows+1 offsets
 * then the bytes), validity (rows). */

typedef struct wbuf {
    char *p;
    size_t n;
} wbuf;

static void put(wbuf *w, const void *src, size_t len)
{
    if (len) memcpy(w->p + w->n, src, len);
    w->n += len;
}

/* Zero bytes after a column's name so that its values start 8-aligned in
 * the buffer: a reader on an 8-aligned buffer may then use them in place
 * (weft__table_view). */
static size_t pad8(size_t at)
{
    return (8 - at % 8) % 8;
}

static size_t ser_size(const weft_table *t)
{
    size_t total = 4 + 24;
    for (size_t j = 0; j < t->ncols; j++) {
        const tcol *c = &t->cols[j];
        total += 4 + strlen(c->name);
        total += pad8(total) + 8 + t->nrows * weft__tcol_width(c->type) + (c->valid ? t->nrows : 0);
        if (c->type == WEFT_COL_TEXT) total += 8 + c->nchars;
    }
    return total;
}

size_t weft__table_ser_size(const weft_table *t)
{
    for (size_t j = 0; j < t->ncols; j++)
        if (strlen(t->cols[j].name) > UINT16_MAX) return 0;
    return ser_size(t);
}

static void ser_into(const weft_table *t, char *p)
{
    wbuf w = {p, 0};
    uint64_t h[3] = {t->nrows, t->ncols, t->skipped};
    static const char zeros[8] = {0};
    put(&w, "WTB2", 4);
    put(&w, h, sizeof h);
    for (size_t j = 0; j < t->ncols; j++) {
        const tcol *c = &t->cols[j];
        uint8_t ty = (uint8_t)c->type, hv = c->valid != NULL;
        uint16_t nl = (uint16_t)strlen(c->name);
        uint64_t nchars = c->nchars;
        put(&w, &ty, 1);
        put(&w, &hv, 1);
        put(&w, &nl, 2);
        put(&w, c->name, nl);
        put(&w, zeros, pad8(w.n));
        put(&w, &nchars, 8);
        if (c->type == WEFT_COL_TEXT) {
            put(&w, c->data, (t->nrows + 1) * 8);
            put(&w, c->chars, c->nchars);
        } else {
            put(&w, c->data, t->nrows * weft__tcol_width(c->type));
        }
        if (c->valid) put(&w, c->valid, t->nrows);
    }
}

void weft__table_ser_into(const weft_table *t, char *p)
{
    ser_into(t, p);
}

int weft_table_serialize(const weft_table *t, void **buf, size_t *len)
{
    if (!t || !buf || !len) return WEFT_EINVAL;
    for (size_t j = 0; j < t->ncols; j++)
        if (strlen(t->cols[j].name) > UINT16_MAX) return WEFT_EINVAL;
    size_t total = ser_size(t);
    char *p = malloc(total);
    if (!p) return WEFT_ENOMEM;
    weft__table_hugepages(p, total);
    ser_into(t, p);
    *buf = p;
    *len = total;
    return 0;
}

typedef struct rbuf {
    const char *p;
    size_t n, at;
} rbuf;

/* Points *dst at the next `len` bytes (no copy). */
static bool take(rbuf *r, const char **dst, size_t len)
{
    if (r->n - r->at < len) return false;
    *dst = r->p + r->at;
    r->at += len;
    return true;
}

static bool get(rbuf *r, void *dst, size_t len)
{
    const char *s;
    if (!take(r, &s, len)) return false;
    if (len) memcpy(dst, s, len);
    return true;
}

/* One column of a serialized table, pointing into its bytes. */
typedef struct scol {
    uint8_t type, hv;
    uint16_t nl;
    const char *name;  /* nl bytes, not NUL-terminated */
    uint64_t nchars;   /* text bytes */
    const char *data;  /* values, or rows+1 text offsets (unaligned: read with memcpy) */
    const char *chars; /* text bytes */
    const uint8_t *valid;
} scol;

static uint64_t off_at(const char *offs, uint64_t i)
{
    uint64_t v;
    memcpy(&v, offs + i * 8, 8);
    return v;
}

/* Reads and checks a serialized table without copying it: every length,
 * offset, type and name is checked, so malformed input is WEFT_EINVAL and
 * nothing is read past `len`. `*cols` is malloc'ed (the caller frees it). */
static int ser_parse(const void *buf, size_t len, uint64_t *rows_out, uint64_t *skipped,
                     scol **cols_out, uint64_t *ncols_out)
{
    *cols_out = NULL;
    if (!buf) return WEFT_EINVAL;
    rbuf r = {buf, len, 0};
    char magic[4];
    uint64_t h[3];
    if (!get(&r, magic, 4) || memcmp(magic, "WTB2", 4) || !get(&r, h, sizeof h)) return WEFT_EINVAL;
    uint64_t rows = h[0], cols = h[1];
    if (cols > len || rows > len) return WEFT_EINVAL; /* every row and column takes bytes */
    scol *cs = calloc(cols ? cols : 1, sizeof *cs);
    if (!cs) return WEFT_ENOMEM;
    int rc = 0;
    for (uint64_t j = 0; j < cols && !rc; j++) {
        scol *c = &cs[j];
        const char *pad;
        if (!get(&r, &c->type, 1) || !get(&r, &c->hv, 1) || !get(&r, &c->nl, 2) ||
            !take(&r, &c->name, c->nl) || !take(&r, &pad, pad8(r.at)) ||
            memcmp(pad, "\0\0\0\0\0\0\0", (size_t)(r.p + r.at - pad)) || !get(&r, &c->nchars, 8) ||
            c->type < WEFT_COL_INT64 || c->type > WEFT_COL_TEXT || c->hv > 1 ||
            memchr(c->name, 0, c->nl)) {
            rc = WEFT_EINVAL;
            break;
        }
        for (uint64_t q = 0; q < j && !rc; q++)
            if (cs[q].nl == c->nl && !memcmp(cs[q].name, c->name, c->nl)) rc = WEFT_EINVAL;
        if (rc) break;
        if (c->type == WEFT_COL_TEXT) {
            if (!take(&r, &c->data, (rows + 1) * 8) || !take(&r, &c->chars, c->nchars)) {
                rc = WEFT_EINVAL;
                break;
            }
            bool ok = off_at(c->data, 0) == 0 && off_at(c->data, rows) == c->nchars;
            uint64_t prev = 0;
            for (uint64_t i = 1; i <= rows && ok; i++) {
                uint64_t o = off_at(c->data, i);
                ok = o > prev && o <= c->nchars && c->chars[o - 1] == 0;
                prev = o;
            }
            if (!ok) rc = WEFT_EINVAL;
        } else if (c->nchars || !take(&r, &c->data, rows * weft__tcol_width(c->type))) {
            rc = WEFT_EINVAL;
        } else if (c->type == WEFT_COL_BOOL) {
            for (uint64_t i = 0; i < rows && !rc; i++)
                if ((uint8_t)c->data[i] > 1) rc = WEFT_EINVAL;
        }
        const char *vp = NULL;
        if (!rc && c->hv && !take(&r, &vp, rows)) rc = WEFT_EINVAL;
        c->valid = (const uint8_t *)vp;
    }
    if (!rc && r.at != r.n) rc = WEFT_EINVAL;
    if (rc) {
        free(cs);
        return rc;
    }
    *rows_out = rows;
    *skipped = h[2];
    *cols_out = cs;
    *ncols_out = cols;
    return 0;
}

/* Appends the n rows of serialized column `s` to `d` (same type); with
 * `scale` > 0, when `d` must grow it grows once to (its rows + n) x scale. */
static int append_scol(tcol *d, const scol *s, size_t n, double scale)
{
    size_t need = d->n + n ? d->n + n : 1;
    if (need > d->cap && scale > 0) {
        double est = (double)need * scale * 1.02 + 16;
        if (weft__tcol_reserve_exact(d, est > (double)need ? (size_t)est : need))
            return WEFT_ENOMEM;
    }
    if (weft__tcol_reserve(d, need)) return WEFT_ENOMEM;
    if (s->hv && !d->valid) {
        d->valid = malloc(d->cap);
        if (!d->valid) return WEFT_ENOMEM;
        memset(d->valid, 1, d->n);
    }
    if (d->valid) {
        if (s->hv)
            memcpy(d->valid + d->n, s->valid, n);
        else
            memset(d->valid + d->n, 1, n);
    }
    if (d->type != WEFT_COL_TEXT) {
        size_t w = weft__tcol_width(d->type);
        if (n) memcpy((char *)d->data + d->n * w, s->data, n * w);
    } else {
        if (d->nchars + s->nchars + 1 > d->capchars) {
            size_t nc = d->capchars ? d->capchars : 64;
            if (scale > 0) {
                double est = (double)(d->nchars + s->nchars + 1) * scale * 1.02 + 64;
                if (est > (double)nc) nc = (size_t)est;
            }
            while (nc < d->nchars + s->nchars + 1) nc *= 2;
            char *c = realloc(d->chars, nc);
            if (!c) return WEFT_ENOMEM;
            d->chars = c;
            d->capchars = nc;
            weft__table_hugepages(c, nc);
        }
        if (s->nchars) memcpy(d->chars + d->nchars, s->chars, s->nchars);
        uint64_t *dofs = d->data;
        if (d->nchars == 0) {
            memcpy(dofs + d->n, s->data, (n + 1) * 8);
        } else {
            for (size_t i = 1; i <= n; i++) dofs[d->n + i] = d->nchars + off_at(s->data, i);
        }
        d->nchars += s->nchars;
    }
    d->n += n;
    return 0;
}

int weft_table_deserialize(const void *buf, size_t len, weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    if (!buf) return WEFT_EINVAL;
    weft_table *t;
    int rc = weft_table_create(&t);
    if (rc) return rc;
    rc = weft__table_append_serialized(t, buf, len);
    if (rc) {
        weft_table_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

int weft__table_view(const void *buf, size_t len, weft_table **out)
{
    *out = NULL;
    if (!buf || (uintptr_t)buf % 8) return weft_table_deserialize(buf, len, out);
    uint64_t rows, skipped, ncols;
    scol *cs;
    int rc = ser_parse(buf, len, &rows, &skipped, &cs, &ncols);
    if (rc) return rc;
    weft_table *t;
    rc = weft_table_create(&t);
    if (!rc) t->borrowed = true;
    for (uint64_t j = 0; j < ncols && !rc; j++) {
        char name[65536];
        memcpy(name, cs[j].name, cs[j].nl);
        name[cs[j].nl] = 0;
        /* a column of no rows gets a column of its own (nothing to borrow) */
        tcol *c = weft__table_add_col(t, name, (weft_col_type)cs[j].type);
        if (!c) {
            rc = WEFT_ENOMEM;
            break;
        }
        free(c->data); /* the text offsets weft__table_add_col made */
        c->data = (void *)(uintptr_t)cs[j].data;
        c->chars = (char *)(uintptr_t)cs[j].chars;
        c->nchars = c->capchars = cs[j].nchars;
        c->valid = cs[j].hv ? (uint8_t *)(uintptr_t)cs[j].valid : NULL;
        c->n = c->cap = rows;
    }
    free(cs);
    if (rc) {
        weft_table_destroy(t);
        return rc;
    }
    t->nrows = rows;
    t->skipped = skipped;
    *out = t;
    return 0;
}

int weft__table_append_serialized(weft_table *dst, const void *buf, size_t len)
{
    return weft__table_append_serialized_est(dst, buf, len, 0, 0);
}

int weft__table_append_serialized_est(weft_table *dst, const void *buf, size_t len, size_t done,
                                      size_t total)
{
    double scale = total > done ? (double)total / (double)(done + 1) : 0;
    uint64_t rows, skipped, ncols;
    scol *cs;
    int rc = ser_parse(buf, len, &rows, &skipped, &cs, &ncols);
    if (rc) return rc;
    bool fresh = dst->ncols == 0 && dst->nrows == 0;
    if (!fresh && dst->ncols != ncols) rc = WEFT_EINVAL;
    for (uint64_t j = 0; j < ncols && !rc && !fresh; j++)
        if (dst->cols[j].type != cs[j].type || strlen(dst->cols[j].name) != cs[j].nl ||
            memcmp(dst->cols[j].name, cs[j].name, cs[j].nl))
            rc = WEFT_EINVAL;
    size_t added = 0; /* columns made here, dropped again on failure */
    for (uint64_t j = 0; j < ncols && !rc && fresh; j++) {
        char name[65536];
        memcpy(name, cs[j].name, cs[j].nl);
        name[cs[j].nl] = 0;
        if (!weft__table_add_col(dst, name, (weft_col_type)cs[j].type))
            rc = WEFT_ENOMEM;
        else
            added++;
    }
    for (uint64_t j = 0; j < ncols && !rc; j++)
        rc = append_scol(&dst->cols[j], &cs[j], rows, scale);
    if (!rc) {
        dst->nrows += rows;
        dst->skipped += skipped;
    } else {
        /* leave `dst` as it was: drop new columns, cut the others back */
        for (size_t j = 0; j < added; j++) tcol_free(&dst->cols[--dst->ncols]);
        for (size_t j = 0; j < dst->ncols; j++) {
            tcol *c = &dst->cols[j];
            c->n = dst->nrows;
            if (c->type == WEFT_COL_TEXT) c->nchars = ((uint64_t *)c->data)[dst->nrows];
        }
    }
    free(cs);
    return rc;
}

/* ---- references and capture (a chain's partition in place: frame.c) ---- */

static uint64_t ref_secret_value;
static pthread_once_t ref_once = PTHREAD_ONCE_INIT;

static void ref_secret_init(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s || !s)
        s = ((uint64_t)(uintptr_t)&s * 0x9e3779b97f4a7c15ull) ^ (uint64_t)getpid() ^ 1;
    ref_secret_value = s;
}

static uint64_t ref_secret(void)
{
    pthread_once(&ref_once, ref_secret_init);
    return ref_secret_value;
}

void weft__table_ref(const weft_table *t, unsigned char ref[WEFT__TABLE_REF_LEN])
{
    uint64_t w[3] = {0, ref_secret(), (uint64_t)(uintptr_t)t};
    memcpy(w, "WTBREF01", 8);
    memcpy(ref, w, sizeof w);
}

/* The table a reference names, or NULL when d[0..n) is not one. */
static const weft_table *ref_get(const void *d, size_t n)
{
    uint64_t w[3];
    if (!d || n != sizeof w) return NULL;
    memcpy(w, d, sizeof w);
    if (memcmp(w, "WTBREF01", 8) || w[1] != ref_secret()) return NULL;
    return (const weft_table *)(uintptr_t)w[2];
}

/* A table of `src`'s columns, borrowed (their arrays stay src's); with
 * `own` the columns not borrowed from anything are copied instead. */
static int view_of(const weft_table *src, bool own, weft_table **out)
{
    weft_table *t;
    int rc = weft_table_create(&t);
    for (size_t j = 0; j < src->ncols && !rc; j++) {
        const tcol *s = &src->cols[j];
        tcol *d = weft__table_add_col(t, s->name, s->type);
        if (!d) {
            rc = WEFT_ENOMEM;
            break;
        }
        if (own && !s->borrowed) { /* a copy of its n rows */
            size_t w = weft__tcol_width(s->type);
            rc = weft__tcol_reserve_exact(d, s->n ? s->n : 1);
            if (!rc && s->n)
                memcpy(d->data, s->data, (s->type == WEFT_COL_TEXT ? s->n + 1 : s->n) * w);
            if (!rc && s->valid) {
                d->valid = malloc(d->cap ? d->cap : 1);
                if (!d->valid)
                    rc = WEFT_ENOMEM;
                else
                    memcpy(d->valid, s->valid, s->n);
            }
            if (!rc && s->type == WEFT_COL_TEXT && s->nchars) {
                d->chars = malloc(s->nchars);
                if (!d->chars)
                    rc = WEFT_ENOMEM;
                else
                    memcpy(d->chars, s->chars, s->nchars);
                d->nchars = d->capchars = s->nchars;
            }
            d->n = s->n;
            continue;
        }
        free(d->data); /* the text offsets weft__table_add_col made */
        d->data = s->data;
        d->valid = s->valid;
        d->chars = s->chars;
        d->nchars = s->nchars;
        d->capchars = s->capchars;
        d->n = s->n;
        d->cap = s->cap;
        d->borrowed = true;
    }
    if (rc) {
        weft_table_destroy(t);
        return rc;
    }
    t->nrows = src->nrows;
    t->skipped = src->skipped;
    *out = t;
    return 0;
}

static __thread weft__table_capture *capture_now;

weft__table_capture *weft__table_capture_set(weft__table_capture *c)
{
    weft__table_capture *prev = capture_now;
    capture_now = c;
    return prev;
}

bool weft__table_output_take(weft_ctx *ctx, weft_table *t)
{
    weft__table_capture *c = capture_now;
    if (!c || c->ctx != ctx || !t) return false;
    weft_table_destroy(c->got);
    c->got = t;
    return true;
}

int weft_table_arg(const void *in, size_t len, size_t i, weft_table **out)
{
    if (!out) return WEFT_EINVAL;
    *out = NULL;
    const void *d;
    size_t n;
    int rc = weft_args_get(in, len, i, &d, &n);
    if (rc) return rc;
    const weft_table *src = ref_get(d, n);
    if (src) return view_of(src, false, out); /* in place: the columns borrowed */
    return weft_table_deserialize(d, n, out);
}

int weft_table_output(weft_ctx *ctx, const weft_table *t)
{
    if (!ctx || !t) return WEFT_EINVAL;
    weft__table_capture *c = capture_now;
    if (c && c->ctx == ctx) { /* a chain's operation: a table, not bytes */
        weft_table *got;
        int rc = view_of(t, true, &got);
        if (rc) return rc;
        weft_table_destroy(c->got);
        c->got = got;
        return 0;
    }
    for (size_t j = 0; j < t->ncols; j++)
        if (strlen(t->cols[j].name) > UINT16_MAX) return WEFT_EINVAL;
    size_t total = ser_size(t);
    char *p = weft_ctx_output(ctx, total);
    if (!p) return WEFT_ENOMEM;
    weft__table_hugepages(p, total);
    ser_into(t, p);
    return 0;
}

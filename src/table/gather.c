/* gather.c : the hand-over of parsed partitions on executors that share
 * memory (table_internal.h, docs/table.md "The full read on threads").
 *
 * A pool of parsed tables: a read task parses into the columns an earlier
 * task of the same run used (emptied), so only the first tasks of a run
 * fault fresh pages in; a table goes back to the pool once its rows are
 * copied out (the gather) or folded (groupby). The same pool keeps the
 * read tasks' byte buffers (weft__buf_take/_give: a range is read into
 * one, chunk after chunk, not mapped).
 *
 * The gather: a read task hands its parsed table over with
 * weft__gather_put(p, t). Partitions are placed in partition order under
 * the lock -- each gets its first row and, per text column, its first byte
 * in the result -- by whichever task finds the next partition to place
 * present (its own, or the ones that finished before their predecessor),
 * and copied outside the lock by that task: copies of several partitions
 * run at once, into disjoint parts of the one result. No task ever waits
 * for another task to start or finish, only for copies already running
 * when the result must grow. The result is allocated once, sized from the
 * first partition placed x the partition count (+25%: pages never touched
 * cost nothing, and the end shrinks it with realloc, which glibc does in
 * place or with mremap), and grows only when a later partition does not
 * fit (a last partition larger than the first, files of other row
 * widths): then the placer waits until no copy runs and reallocates. */
#include "table/table_internal.h"

#include <malloc.h>
#include <pthread.h>

struct tb_pool {
    pthread_mutex_t mu;
    weft_table **t;
    size_t n, max;
    tb_buf *bufs; /* idle byte buffers, at most max */
    size_t nbufs;
};

int weft__pool_create(size_t max, tb_pool **out)
{
    *out = NULL;
    tb_pool *p = calloc(1, sizeof *p);
    if (!p) return WEFT_ENOMEM;
    p->max = max ? max : 1;
    p->t = calloc(p->max, sizeof *p->t);
    p->bufs = calloc(p->max, sizeof *p->bufs);
    if (!p->t || !p->bufs || pthread_mutex_init(&p->mu, NULL)) {
        free(p->t);
        free(p->bufs);
        free(p);
        return WEFT_ENOMEM;
    }
    *out = p;
    return 0;
}

weft_table *weft__pool_take(tb_pool *p)
{
    if (!p) return NULL;
    pthread_mutex_lock(&p->mu);
    weft_table *t = p->n ? p->t[--p->n] : NULL;
    pthread_mutex_unlock(&p->mu);
    return t;
}

void weft__pool_give(tb_pool *p, weft_table *t)
{
    if (!t) return;
    if (p) {
        pthread_mutex_lock(&p->mu);
        bool kept = p->n < p->max;
        if (kept) p->t[p->n++] = t;
        pthread_mutex_unlock(&p->mu);
        if (kept) return;
    }
    weft_table_destroy(t);
}

void weft__pool_destroy(tb_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) weft_table_destroy(p->t[i]);
    for (size_t i = 0; i < p->nbufs; i++) weft__blk_free(p->bufs[i].p);
    free(p->t);
    free(p->bufs);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int weft__buf_take(tb_pool *p, size_t n, tb_buf *b)
{
    b->p = NULL;
    b->cap = 0;
    if (p) {
        pthread_mutex_lock(&p->mu);
        if (p->nbufs) *b = p->bufs[--p->nbufs];
        pthread_mutex_unlock(&p->mu);
    }
    return weft__buf_reserve(b, n);
}

int weft__buf_reserve(tb_buf *b, size_t n)
{
    if (n <= b->cap) return 0;
    /* a large buffer in whole huge pages (2 MiB aligned), a small one (a
     * small range's) in 4 KiB pages */
    const size_t huge = (size_t)2 << 20, align = n >= huge ? huge : 4096;
    size_t cap = (n + align - 1) & ~(align - 1);
    weft__blk_free(b->p); /* its bytes are read again: no copy */
    b->p = weft__blk_take(cap, align);
    if (b->p) {
        b->cap = malloc_usable_size(b->p);
        return 0;
    }
    b->p = aligned_alloc(align, cap);
    b->cap = b->p ? cap : 0;
    if (!b->p) return WEFT_ENOMEM;
    weft__table_hugepages(b->p, cap);
    return 0;
}

void weft__buf_give(tb_pool *p, tb_buf *b)
{
    if (b->p && p) {
        pthread_mutex_lock(&p->mu);
        bool kept = p->nbufs < p->max;
        if (kept) p->bufs[p->nbufs++] = *b;
        pthread_mutex_unlock(&p->mu);
        if (kept) b->p = NULL;
    }
    weft__blk_free(b->p);
    b->p = NULL;
    b->cap = 0;
}

struct tb_gather {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t np;
    size_t placed;        /* partitions placed: the next to place */
    size_t copying;       /* copies running outside the lock */
    bool placing;         /* a thread is placing (it may wait for the copies) */
    weft_table **pending; /* np: handed over, not yet placed */
    weft_table *all;      /* the result; its columns' n and nchars count what is placed */
    uint64_t *chars0;     /* np x ncols: a partition's first text byte per column */
    uint8_t *fill;        /* np x ncols: set its rows valid (it has no mask, the result has) */
    size_t ncols;
    tb_pool *pool;
    int err;
};

int weft__gather_create(size_t nparts, size_t pool_max, tb_gather **out)
{
    *out = NULL;
    tb_gather *g = calloc(1, sizeof *g);
    if (!g) return WEFT_ENOMEM;
    g->np = nparts;
    g->pending = calloc(nparts ? nparts : 1, sizeof *g->pending);
    int rc = g->pending ? weft_table_create(&g->all) : WEFT_ENOMEM;
    if (!rc) rc = weft__pool_create(pool_max, &g->pool);
    if (!rc && pthread_mutex_init(&g->mu, NULL)) rc = WEFT_ENOMEM;
    if (!rc && pthread_cond_init(&g->cv, NULL)) {
        pthread_mutex_destroy(&g->mu);
        rc = WEFT_ENOMEM;
    }
    if (rc) {
        weft__pool_destroy(g->pool);
        weft_table_destroy(g->all);
        free(g->pending);
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void weft__gather_destroy(tb_gather *g)
{
    if (!g) return;
    for (size_t p = 0; p < g->np; p++) weft_table_destroy(g->pending[p]);
    free(g->pending);
    weft_table_destroy(g->all);
    free(g->chars0);
    free(g->fill);
    weft__pool_destroy(g->pool);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

weft_table *weft__gather_take(tb_gather *g)
{
    return weft__pool_take(g->pool);
}

/* Text bytes of `c` to room for `need` (the lock held, no copy running). */
static int chars_reserve(tcol *c, size_t need)
{
    if (need <= c->capchars) return 0;
    size_t nc = c->capchars * 2 > need ? c->capchars * 2 : need;
    char *p = realloc(c->chars, nc);
    if (!p) return WEFT_ENOMEM;
    c->chars = p;
    c->capchars = nc;
    weft__table_hugepages(p, nc);
    return 0;
}

/* The first placement: the result's columns, sized from partition `t`. */
static int shape(tb_gather *g, const weft_table *t)
{
    weft_table *a = g->all;
    double scale = (double)g->np * 1.25;
    size_t rows = (size_t)((double)t->nrows * scale) + 4096;
    for (size_t j = 0; j < t->ncols; j++) {
        tcol *c = weft__table_add_col(a, t->cols[j].name, t->cols[j].type);
        if (!c || weft__tcol_reserve_exact(c, rows)) return WEFT_ENOMEM;
        if (c->type == WEFT_COL_TEXT &&
            chars_reserve(c, (size_t)((double)t->cols[j].nchars * scale) + 65536))
            return WEFT_ENOMEM;
    }
    g->ncols = t->ncols;
    g->chars0 = calloc(g->np * g->ncols + 1, sizeof *g->chars0);
    g->fill = calloc(g->np * g->ncols + 1, 1);
    return g->chars0 && g->fill ? 0 : WEFT_ENOMEM;
}

/* Places partition q (the lock held): its rows go at a->nrows. */
static int place(tb_gather *g, size_t q, const weft_table *t)
{
    weft_table *a = g->all;
    int rc = 0;
    if (q == 0 && (rc = shape(g, t))) return rc;
    if (t->ncols != a->ncols) return WEFT_EINVAL;
    size_t need = a->nrows + t->nrows;
    bool grow = false;
    for (size_t j = 0; j < a->ncols; j++) {
        const tcol *c = &a->cols[j], *s = &t->cols[j];
        if (c->type != s->type || strcmp(c->name, s->name)) return WEFT_EINVAL;
        grow |= need > c->cap || (c->type == WEFT_COL_TEXT && c->nchars + s->nchars > c->capchars);
    }
    if (grow) {
        /* the arrays move: no copy may be writing into them */
        while (g->copying) pthread_cond_wait(&g->cv, &g->mu);
        for (size_t j = 0; j < a->ncols && !rc; j++) {
            tcol *c = &a->cols[j];
            size_t rows = need > c->cap ? (c->cap * 2 > need ? c->cap * 2 : need) : c->cap;
            rc = weft__tcol_reserve_exact(c, rows);
            if (!rc && c->type == WEFT_COL_TEXT)
                rc = chars_reserve(c, c->nchars + t->cols[j].nchars);
        }
        if (rc) return rc;
    }
    for (size_t j = 0; j < a->ncols; j++) {
        tcol *c = &a->cols[j];
        const tcol *s = &t->cols[j];
        if (s->valid && !c->valid) {
            /* the first missing value: a mask, every row placed before valid
             * (their copies do not touch it: they were placed without) */
            c->valid = malloc(c->cap ? c->cap : 1);
            if (!c->valid) return WEFT_ENOMEM;
            weft__table_hugepages(c->valid, c->cap);
            memset(c->valid, 1, a->nrows);
        }
        g->fill[q * g->ncols + j] = !s->valid && c->valid;
        g->chars0[q * g->ncols + j] = c->nchars;
        c->nchars += s->nchars;
        c->n = need;
    }
    a->nrows = need;
    a->skipped += t->skipped;
    return 0;
}

/* Copies partition q (t) to rows r0.. of the result, outside the lock:
 * only the arrays of rows and bytes placed for it are written. */
static void copy_in(tb_gather *g, size_t q, const weft_table *t, size_t r0)
{
    weft_table *a = g->all;
    size_t n = t->nrows;
    for (size_t j = 0; j < g->ncols; j++) {
        tcol *d = &a->cols[j];
        const tcol *s = &t->cols[j];
        if (s->valid)
            memcpy(d->valid + r0, s->valid, n);
        else if (g->fill[q * g->ncols + j])
            memset(d->valid + r0, 1, n);
        if (d->type != WEFT_COL_TEXT) {
            size_t w = weft__tcol_width(d->type);
            if (n) memcpy((char *)d->data + r0 * w, s->data, n * w);
            continue;
        }
        uint64_t c0 = g->chars0[q * g->ncols + j];
        if (s->nchars) memcpy(d->chars + c0, s->chars, s->nchars);
        uint64_t *o = d->data;
        const uint64_t *so = s->data;
        for (size_t i = 1; i <= n; i++) o[r0 + i] = c0 + so[i];
    }
}

int weft__gather_put(tb_gather *g, size_t p, weft_table *t)
{
    pthread_mutex_lock(&g->mu);
    if (p >= g->np || p < g->placed || g->pending[p]) {
        pthread_mutex_unlock(&g->mu);
        weft_table_destroy(t);
        return WEFT_EINVAL;
    }
    g->pending[p] = t;
    /* the thread placing goes on with what others leave meanwhile */
    while (!g->err && !g->placing && g->placed < g->np && g->pending[g->placed]) {
        size_t q = g->placed;
        weft_table *x = g->pending[q];
        size_t r0 = g->all->nrows;
        g->placing = true;
        int rc = place(g, q, x);
        g->placing = false;
        if (rc) {
            g->err = rc;
            break;
        }
        g->pending[q] = NULL;
        g->placed++;
        g->copying++;
        pthread_mutex_unlock(&g->mu);
        copy_in(g, q, x, r0);
        weft__pool_give(g->pool, x);
        pthread_mutex_lock(&g->mu);
        if (--g->copying == 0) pthread_cond_broadcast(&g->cv);
    }
    int rc = g->err;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* `p` realloc'ed to exactly n bytes (at least 1); `p` when that fails. */
static void *shrunk(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : p;
}

int weft__gather_finish(tb_gather *g, weft_table **out)
{
    *out = NULL;
    if (g->err) return g->err;
    if (g->placed != g->np) return WEFT_EINVAL; /* a partition never came */
    weft_table *a = g->all;
    /* give back what the estimate over-asked (never touched: no copy) */
    for (size_t j = 0; j < a->ncols; j++) {
        tcol *c = &a->cols[j];
        size_t w = weft__tcol_width(c->type);
        c->data = shrunk(c->data, (c->type == WEFT_COL_TEXT ? c->n + 1 : c->n) * w);
        if (c->valid) c->valid = shrunk(c->valid, c->n);
        if (c->type == WEFT_COL_TEXT && c->chars && c->capchars > c->nchars) {
            c->chars = shrunk(c->chars, c->nchars);
            c->capchars = c->nchars ? c->nchars : 1;
        }
        c->cap = c->n;
    }
    *out = a;
    g->all = NULL;
    return 0;
}

tb_pool *weft__gather_pool(tb_gather *g)
{
    return g->pool;
}

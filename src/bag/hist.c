/* hist.c : the histograms of the exact quantiles on the wire, dense or
 * sparse (the form is described in bag_internal.h), written by the
 * partitions' tasks, summed by the merge tasks and read by the driver. */
#include "bag/bag_internal.h"

static int u32cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int paircmp(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    return x < y ? -1 : x > y;
}

static void head(wb *w, uint64_t total, uint64_t nans, uint64_t form)
{
    wb_u64(w, total);
    wb_u64(w, nans);
    wb_u64(w, form);
}

void weft__hist_write(wb *w, uint64_t total, uint64_t nans, const uint64_t *dense, size_t nb,
                      uint32_t *nz, size_t nnz, bool nz_complete)
{
    if (!nz_complete || nnz >= nb / 2) {
        head(w, total, nans, HIST_DENSE);
        wb_put(w, dense, nb * 8);
        return;
    }
    if (nnz > 1) qsort(nz, nnz, sizeof *nz, u32cmp);
    head(w, total, nans, HIST_SPARSE);
    wb_u64(w, nnz);
    if (wb_reserve(w, nnz * 16)) return;
    for (size_t i = 0; i < nnz; i++) {
        uint64_t b = nz[i];
        memcpy(w->p + w->n, &b, 8);
        memcpy(w->p + w->n + 8, &dense[b], 8);
        w->n += 16;
    }
}

int weft__hist_read(const void *h, size_t len, size_t nb, hist_view *v)
{
    rb r = {h, len, 0, 0};
    *v = (hist_view){0};
    v->total = rb_u64(&r);
    v->nans = rb_u64(&r);
    v->form = rb_u64(&r);
    v->nb = nb;
    if (r.bad) return -1;
    if (v->form == HIST_DENSE) {
        if (len - r.off != nb * 8) return -1;
    } else if (v->form == HIST_SPARSE) {
        v->nnz = rb_u64(&r);
        if (r.bad || v->nnz > nb || len - r.off != v->nnz * 16) return -1;
        /* buckets in range and increasing, as hist_find and merge assume */
        const unsigned char *d = r.p + r.off;
        for (size_t i = 0; i < v->nnz; i++) {
            uint64_t b, prev = 0;
            memcpy(&b, d + i * 16, 8);
            if (i) memcpy(&prev, d + (i - 1) * 16, 8);
            if (b >= nb || (i && b <= prev)) return -1;
        }
    } else {
        return -1;
    }
    v->data = r.p + r.off;
    return 0;
}

static uint64_t at(const unsigned char *p, size_t i)
{
    uint64_t x;
    memcpy(&x, p + i * 8, 8);
    return x;
}

int weft__hist_merge(const hist_view *in, size_t n, size_t nb, wb *w)
{
    uint64_t total = 0, nans = 0, nnz = 0;
    bool all_sparse = true;
    for (size_t i = 0; i < n; i++) {
        total += in[i].total;
        nans += in[i].nans;
        nnz += in[i].nnz;
        if (in[i].form != HIST_SPARSE) all_sparse = false;
    }
    if (all_sparse && nnz < nb / 2) {
        /* the pairs of all inputs, sorted by bucket, equal buckets summed */
        unsigned char *pairs = malloc(nnz ? nnz * 16 : 1);
        if (!pairs) return WEFT_ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(pairs + k * 16, in[i].data, in[i].nnz * 16);
            k += in[i].nnz;
        }
        if (k > 1) qsort(pairs, k, 16, paircmp);
        size_t m = 0;
        for (size_t i = 0; i < k; i++) {
            if (m && at(pairs, 2 * (m - 1)) == at(pairs, 2 * i)) {
                uint64_t c = at(pairs, 2 * (m - 1) + 1) + at(pairs, 2 * i + 1);
                memcpy(pairs + (m - 1) * 16 + 8, &c, 8);
            } else {
                memmove(pairs + m * 16, pairs + i * 16, 16);
                m++;
            }
        }
        head(w, total, nans, HIST_SPARSE);
        wb_u64(w, m);
        wb_put(w, pairs, m * 16);
        free(pairs);
        return w->oom ? WEFT_ENOMEM : 0;
    }
    uint64_t *acc = calloc(nb ? nb : 1, 8);
    if (!acc) return WEFT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (in[i].form == HIST_DENSE) {
            for (size_t j = 0; j < nb; j++) acc[j] += at(in[i].data, j);
        } else {
            for (size_t j = 0; j < in[i].nnz; j++)
                acc[at(in[i].data, 2 * j)] += at(in[i].data, 2 * j + 1);
        }
    }
    head(w, total, nans, HIST_DENSE);
    wb_put(w, acc, nb * 8);
    free(acc);
    return w->oom ? WEFT_ENOMEM : 0;
}

long weft__hist_find(const hist_view *v, size_t pi, uint64_t r, uint64_t *below, uint64_t *count)
{
    uint64_t acc = *below;
    size_t lo = pi * HIST_BUCKETS;
    if (v->form == HIST_DENSE) {
        for (uint32_t k = 0; k < HIST_BUCKETS; k++) {
            uint64_t c = at(v->data, lo + k);
            if (r < acc + c) {
                *below = acc;
                *count = c;
                return k;
            }
            acc += c;
        }
        return -1;
    }
    /* the first pair of this prefix, by bisection */
    size_t a = 0, b = v->nnz;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (at(v->data, 2 * mid) < lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (size_t j = a; j < v->nnz; j++) {
        uint64_t bucket = at(v->data, 2 * j), c = at(v->data, 2 * j + 1);
        if (bucket >= lo + HIST_BUCKETS) break;
        if (r < acc + c) {
            *below = acc;
            *count = c;
            return (long)(bucket - lo);
        }
        acc += c;
    }
    return -1;
}

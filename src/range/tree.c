/* tree.c : the leaves of a loop, its first error, and the serial walk of a
 * node (range_internal.h). Used by every level: serial runs the root here,
 * processes and mpi workers their pieces, threads the leaves of its
 * pieces (pool.c walks the upper nodes itself, to split them). */
#include <stdio.h>

#include "range/range_internal.h"

void weft__rloop_layout(weft__rloop *L, uint64_t n, int64_t grain)
{
    L->n = n;
    if (n == 0) {
        L->nleaf = 0;
        L->log_leaf = 0;
        L->q = L->r = 0;
        return;
    }
    uint64_t g = grain > 0 ? (uint64_t)grain : 1;
    int cap = grain > 0 ? WEFT__RANGE_LOG_LEAVES_MAX : WEFT__RANGE_LOG_LEAVES_DEFAULT;
    uint64_t m = n / g;
    int k = 0;
    while (k < cap && (m >> (k + 1)) != 0) k++;
    L->log_leaf = k;
    L->nleaf = (uint64_t)1 << k;
    L->q = n / L->nleaf;
    L->r = n % L->nleaf;
}

void weft__rloop_fail(weft__rloop *L, int code, int64_t lo, int64_t hi)
{
    if (code > 0) code = WEFT_ETASK;
    int zero = 0;
    if (!atomic_compare_exchange_strong(&L->err, &zero, code)) return;
    if (code == WEFT_ECANCELLED && lo == hi)
        snprintf(L->msg, sizeof L->msg, "the loop was cancelled");
    else
        snprintf(L->msg, sizeof L->msg, "the body failed on [%lld, %lld): %s", (long long)lo,
                 (long long)hi, weft_strerror(code));
}

void weft__rloop_walk(weft__rloop *L, uint64_t a, uint64_t b, void *out, unsigned char *scratch)
{
    if (weft__rloop_stopped(L)) {
        if (L->reduce) memcpy(out, L->identity, L->vsize);
        return;
    }
    if (!L->reduce) {
        for (uint64_t i = a; i < b; i++) {
            if (i > a && weft__rloop_stopped(L)) return;
            weft__rloop_leaf_for(L, i);
        }
        return;
    }
    if (b - a == 1) {
        weft__rloop_leaf_reduce(L, a, out);
        return;
    }
    uint64_t mid = a + (b - a) / 2;
    weft__rloop_walk(L, a, mid, out, scratch + L->stride);
    weft__rloop_walk(L, mid, b, scratch, scratch + L->stride);
    L->combine(out, scratch, L->arg);
}

void weft__rloop_combine_tree(weft__rloop *L, unsigned char *vals, uint64_t count)
{
    for (uint64_t step = 1; step < count; step *= 2)
        for (uint64_t i = 0; i + step < count; i += 2 * step)
            L->combine(vals + i * L->stride, vals + (i + step) * L->stride, L->arg);
}

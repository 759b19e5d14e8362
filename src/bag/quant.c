/* quant.c : exact quantiles by parallel radix-histogram refinement, and
 * approximate ones from merged KLL sketches.
 *
 * Exact. Every number maps to a 64-bit key with the same order (doubles:
 * flip all bits of negatives, set the sign bit of the rest; int64: flip the
 * sign bit). The ranks wanted (two per quantile for 'linear', one for
 * 'inverted_cdf') are found by narrowing key prefixes 16 bits at a time:
 *
 *   pass 1: every partition counts its keys by their top 16 bits (65536
 *           counters); the counts are summed in a merge tree; the driver
 *           walks the cumulative counts to the bucket holding each rank, and
 *           the rank within that bucket.
 *   pass p: only keys whose top 16(p-1) bits equal one of the prefixes still
 *           open are counted, by their next 16 bits (one histogram per open
 *           prefix).
 *
 * A prefix stops being refined when its bucket holds at most `select_max`
 * keys -- then one more pass gathers those keys and the driver selects in
 * them (a sort of at most select_max keys per prefix) -- or when all 64 bits
 * are fixed, which is the key itself (heavy duplicates end here, in at most
 * four passes, without gathering anything). Work: O(n) per pass, at most
 * five passes; memory O(partitions x 65536 x open prefixes) counters and
 * select_max gathered keys (1 Mi, 8 MiB, by default), none
 * of it proportional to n. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bag/bag_build.h"
#include "internal.h"

typedef struct want {
    uint64_t rank;   /* 0-based rank among the non-NaN values */
    uint64_t prefix; /* key bits fixed so far (the top `bits`) */
    uint64_t below;  /* values with a smaller prefix */
    uint64_t key;    /* the answer once found */
    bool found;
} want;

static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* LSD radix sort of v[0..n), 16 bits a pass (qsort's comparator calls cost
 * more than the whole gather pass on a bucket of a million keys). */
static int sort_keys(uint64_t *v, size_t n)
{
    if (n < 256) {
        qsort(v, n, sizeof *v, u64cmp);
        return 0;
    }
    uint64_t *tmp = malloc(n * sizeof *tmp);
    size_t *cnt = malloc(65536 * sizeof *cnt);
    if (!tmp || !cnt) {
        free(tmp);
        free(cnt);
        return weft__err(WEFT_ENOMEM, "weft_bag_quantiles: out of memory");
    }
    uint64_t *a = v, *b = tmp;
    for (int sh = 0; sh < 64; sh += 16) {
        memset(cnt, 0, 65536 * sizeof *cnt);
        for (size_t i = 0; i < n; i++) cnt[(a[i] >> sh) & 0xffff]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) b[cnt[(a[i] >> sh) & 0xffff]++] = a[i];
        uint64_t *t = a;
        a = b;
        b = t;
    }
    /* four passes: the sorted keys are back in v */
    free(tmp);
    free(cnt);
    return 0;
}

static int run_hist(weft_bag *b, weft_executor *ex, uint32_t kind, uint32_t shift,
                    const uint64_t *pref, uint64_t np, uint32_t term, void **out, size_t *len)
{
    wb t = {0};
    wb_u32(&t, term);
    wb_u32(&t, kind);
    wb_u32(&t, shift);
    wb_u64(&t, np);
    wb_put(&t, pref, (size_t)np * 8);
    int rc = weft__bag_run(b, ex, &t, &t, out, len);
    wb_free(&t);
    return rc;
}

/* Distinct open prefixes, sorted. */
static size_t open_prefixes(const want *w, size_t nw, uint64_t *pref)
{
    size_t n = 0;
    for (size_t i = 0; i < nw; i++)
        if (!w[i].found) pref[n++] = w[i].prefix;
    qsort(pref, n, sizeof *pref, u64cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || pref[m - 1] != pref[i]) pref[m++] = pref[i];
    return m;
}

static size_t pref_index(const uint64_t *pref, size_t n, uint64_t p)
{
    for (size_t i = 0; i < n; i++)
        if (pref[i] == p) return i;
    return 0;
}

/* Finds the keys of ranks w[0..nw) among the non-NaN values. Sets *total
 * and *nans from the first pass. */
static int find_ranks(weft_bag *b, weft_executor *ex, uint32_t kind, uint64_t select_max, want *w,
                      size_t nw, uint64_t *total, uint64_t *nans, void **first, size_t *first_len)
{
    /* first != NULL and *first NULL: run pass 1 only, keep its histogram in
     * *first; *first set: pass 1's histogram (taken over) */
    bool first_only = first && !*first;
    uint64_t *pref = calloc(nw ? nw : 1, 8);
    if (!pref) return weft__err(WEFT_ENOMEM, "weft_bag_quantiles: out of memory");
    int rc = 0;
    uint32_t bits = 0; /* prefix bits fixed */
    uint64_t npref = 0;
    /* bucket sizes of each want's current prefix (for the gather decision) */
    uint64_t *bsize = calloc(nw ? nw : 1, 8);
    if (!bsize) {
        free(pref);
        return weft__err(WEFT_ENOMEM, "weft_bag_quantiles: out of memory");
    }
    for (;;) {
        void *h = NULL;
        size_t hl = 0;
        if (bits == 0 && first && *first) {
            h = *first;
            hl = *first_len;
            *first = NULL;
        } else {
            rc = run_hist(b, ex, kind, bits, pref, npref, T_HIST, &h, &hl);
            if (rc) break;
        }
        hist_view hv;
        if (weft__hist_read(h, hl, (size_t)(bits ? npref : 1) * HIST_BUCKETS, &hv)) {
            free(h);
            rc = weft__err(WEFT_EINVAL, "weft_bag_quantiles: a histogram of the wrong size");
            break;
        }
        if (bits == 0) {
            *total = hv.total;
            *nans = hv.nans;
            if (first_only) {
                *first = h;
                *first_len = hl;
                break;
            }
            if (hv.total - hv.nans == 0) {
                free(h);
                break;
            }
        }
        for (size_t i = 0; i < nw; i++) {
            if (w[i].found) continue;
            size_t pi = bits ? pref_index(pref, npref, w[i].prefix) : 0;
            uint64_t below = w[i].below, count = 0;
            long k = weft__hist_find(&hv, pi, w[i].rank, &below, &count);
            if (k < 0) {
                rc = weft__err(WEFT_EINVAL, "weft_bag_quantiles: the data changed between "
                                            "passes (a rank fell outside its bucket)");
                break;
            }
            w[i].below = below;
            w[i].prefix = (w[i].prefix << HIST_BITS) | (uint64_t)k;
            bsize[i] = count;
        }
        free(h);
        if (rc) break;
        bits += HIST_BITS;
        if (bits == 64) {
            for (size_t i = 0; i < nw; i++)
                if (!w[i].found) {
                    w[i].key = w[i].prefix;
                    w[i].found = true;
                }
            break;
        }
        /* the wants whose buckets are small are gathered now */
        bool any_open = false, any_small = false;
        for (size_t i = 0; i < nw; i++) {
            if (w[i].found) continue;
            if (bsize[i] <= select_max)
                any_small = true;
            else
                any_open = true;
        }
        if (any_small) {
            /* gather the keys of the small buckets (only theirs) */
            size_t ns = 0;
            for (size_t i = 0; i < nw; i++)
                if (!w[i].found && bsize[i] <= select_max) pref[ns++] = w[i].prefix;
            qsort(pref, ns, 8, u64cmp);
            size_t m = 0;
            for (size_t i = 0; i < ns; i++)
                if (m == 0 || pref[m - 1] != pref[i]) pref[m++] = pref[i];
            void *g;
            size_t gl;
            rc = run_hist(b, ex, kind, bits, pref, m, T_GATHER, &g, &gl);
            if (rc) break;
            uint64_t *keys = g;
            size_t nk = gl / 8;
            /* sort the few gathered keys once: each prefix is then a sorted run */
            rc = sort_keys(keys, nk);
            if (rc) {
                free(g);
                break;
            }
            for (size_t i = 0; i < nw; i++) {
                if (w[i].found || bsize[i] > select_max) continue;
                /* the run of this prefix */
                size_t lo = 0, hi = nk;
                uint64_t shift = 64 - bits;
                while (lo < nk && (keys[lo] >> shift) < w[i].prefix) lo++;
                hi = lo;
                while (hi < nk && (keys[hi] >> shift) == w[i].prefix) hi++;
                uint64_t k = w[i].rank - w[i].below;
                if (k >= hi - lo) {
                    rc = weft__err(WEFT_EINVAL, "weft_bag_quantiles: the data changed between "
                                                "passes (a bucket lost values)");
                    break;
                }
                w[i].key = keys[lo + k]; /* the run is sorted */
                w[i].found = true;
            }
            free(g);
            if (rc) break;
        }
        (void)any_open;
        npref = open_prefixes(w, nw, pref);
        if (npref == 0) break;
    }
    free(bsize);
    free(pref);
    return rc;
}

static double value_of(uint32_t kind, uint64_t key)
{
    return kind == WEFT_BAG_INT64 ? (double)int64_of_key(key) : double_of_key(key);
}

/* numpy's _lerp */
static double lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

int weft_bag_quantiles(weft_bag *b, weft_executor *ex, const double *q, size_t nq,
                       const weft_bag_quantile_options *opts, double *out)
{
    if (!b || !ex || (!q && nq) || (!out && nq))
        return weft__err(WEFT_EINVAL, "weft_bag_quantiles: NULL argument");
    weft_bag_quantile_options o = opts ? *opts : (weft_bag_quantile_options){0};
    if ((o.kind != WEFT_BAG_DOUBLE && o.kind != WEFT_BAG_INT64) ||
        o.method > WEFT_BAG_Q_INVERTED_CDF || o.nan > WEFT_BAG_NAN_OMIT || nq > 1024)
        return weft__err(WEFT_EINVAL,
                         "weft_bag_quantiles: bad options or more than 1024 quantiles");
    for (size_t i = 0; i < nq; i++)
        if (!(q[i] >= 0 && q[i] <= 1))
            return weft__err(WEFT_EINVAL, "weft_bag_quantiles: q[%zu] = %g is not in [0, 1]", i,
                             q[i]);
    uint64_t select_max = o.select_max ? o.select_max : (1u << 20);
    /* pass 1 first alone: n is needed to know the ranks */
    uint64_t total = 0, nans = 0;
    void *h0 = NULL;
    size_t h0_len = 0;
    int rc = find_ranks(b, ex, o.kind, select_max, NULL, 0, &total, &nans, &h0, &h0_len);
    if (rc) return rc;
    uint64_t n = total - nans;
    if ((nans && o.nan == WEFT_BAG_NAN_PROPAGATE) || n == 0) {
        for (size_t i = 0; i < nq; i++) out[i] = NAN;
        free(h0);
        return 0;
    }
    want *w = calloc(2 * nq + 1, sizeof *w);
    double *gamma = calloc(nq + 1, sizeof *gamma);
    size_t *lo = calloc(nq + 1, sizeof *lo), *hi = calloc(nq + 1, sizeof *hi);
    if (!w || !gamma || !lo || !hi) {
        rc = weft__err(WEFT_ENOMEM, "weft_bag_quantiles: out of memory");
        goto out;
    }
    size_t nw = 0;
    for (size_t i = 0; i < nq; i++) {
        double dn = (double)n;
        uint64_t r0, r1;
        if (o.method == WEFT_BAG_Q_LINEAR) {
            /* numpy: virtual index (n-1)q; floor and floor+1 clipped to n-1 */
            double vi = (dn - 1) * q[i];
            double prev = floor(vi);
            gamma[i] = vi - prev;
            r0 = prev < 0 ? 0 : prev > dn - 1 ? n - 1 : (uint64_t)prev;
            r1 = prev + 1 > dn - 1 ? n - 1 : (uint64_t)(prev + 1);
        } else {
            /* numpy's inverted_cdf: index nq - 1; the next unless it is whole */
            double idx = dn * q[i] - 1;
            double prev = floor(idx);
            double r = idx - prev == 0 ? prev : prev + 1;
            r0 = r1 = r < 0 ? 0 : r > dn - 1 ? n - 1 : (uint64_t)r;
        }
        lo[i] = nw;
        w[nw++] = (want){.rank = r0};
        hi[i] = nw;
        w[nw++] = (want){.rank = r1};
    }
    rc = find_ranks(b, ex, o.kind, select_max, w, nw, &total, &nans, &h0, &h0_len);
    if (rc) goto out;
    for (size_t i = 0; i < nq; i++) {
        double a = value_of(o.kind, w[lo[i]].key), c = value_of(o.kind, w[hi[i]].key);
        out[i] = o.method == WEFT_BAG_Q_LINEAR ? lerp(a, c, gamma[i]) : a;
    }
out:
    free(h0);
    free(w);
    free(gamma);
    free(lo);
    free(hi);
    return rc;
}

int weft_bag_median(weft_bag *b, weft_executor *ex, const weft_bag_quantile_options *opts,
                    double *out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_bag_median: NULL out");
    weft_bag_quantile_options o = opts ? *opts : (weft_bag_quantile_options){0};
    if ((o.kind != WEFT_BAG_DOUBLE && o.kind != WEFT_BAG_INT64) || o.nan > WEFT_BAG_NAN_OMIT ||
        !b || !ex)
        return weft__err(WEFT_EINVAL, "weft_bag_median: bad argument");
    uint64_t total = 0, nans = 0;
    uint64_t select_max = o.select_max ? o.select_max : (1u << 20);
    void *h0 = NULL;
    size_t h0_len = 0;
    int rc = find_ranks(b, ex, o.kind, select_max, NULL, 0, &total, &nans, &h0, &h0_len);
    if (rc) return rc;
    uint64_t n = total - nans;
    if ((nans && o.nan == WEFT_BAG_NAN_PROPAGATE) || n == 0) {
        free(h0);
        *out = NAN;
        return 0;
    }
    want w[2] = {{.rank = (n - 1) / 2}, {.rank = n / 2}};
    rc = find_ranks(b, ex, o.kind, select_max, w, 2, &total, &nans, &h0, &h0_len);
    free(h0);
    if (rc) return rc;
    double a = value_of(o.kind, w[0].key), c = value_of(o.kind, w[1].key);
    /* numpy.median: the mean of the middle one or two (sum, then divide) */
    *out = n % 2 ? a : (a + c) / 2;
    return 0;
}

int weft_bag_quantiles_approx(weft_bag *b, weft_executor *ex, weft_bag_num kind, const double *q,
                              size_t nq, size_t k, double *out)
{
    if (!b || !ex || (!q && nq) || (!out && nq) ||
        (kind != WEFT_BAG_DOUBLE && kind != WEFT_BAG_INT64))
        return weft__err(WEFT_EINVAL, "weft_bag_quantiles_approx: bad argument");
    if (!k) k = 256;
    if (k < 8 || k > (1u << 20))
        return weft__err(WEFT_EINVAL, "weft_bag_quantiles_approx: k out of [8, 2^20]");
    for (size_t i = 0; i < nq; i++)
        if (!(q[i] >= 0 && q[i] <= 1))
            return weft__err(WEFT_EINVAL, "weft_bag_quantiles_approx: q[%zu] is not in [0, 1]", i);
    wb t = {0};
    wb_u32(&t, T_KLL);
    wb_u32(&t, kind);
    wb_u64(&t, k);
    void *d;
    size_t l;
    int rc = weft__bag_run(b, ex, &t, &t, &d, &l);
    wb_free(&t);
    if (rc) return rc;
    for (size_t i = 0; i < nq; i++) out[i] = weft__bag_kll_quantile(d, l, q[i]);
    free(d);
    return 0;
}

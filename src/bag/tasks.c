/* tasks.c : the bag's tasks, run on every backend.
 *
 * "weft.bag.part" runs one partition: its source yields records one at a
 * time, each is pushed through the narrow operations (map, flatmap, filter,
 * join; map_partitions buffers its input until the source ends) and reaches
 * the terminal's sink -- a single pass with no intermediate collection, so a
 * map + filter + count costs a few calls per record. The sink's state
 * becomes the task's output: the records (collect), a count, stats, a fold
 * accumulator, a sorted top-k list, a hash table as pair records, a radix
 * histogram, gathered keys, a KLL sketch, shuffle buckets.
 *
 * "weft.bag.merge" combines partial outputs of one terminal into one of the
 * same form, so bag.c can build any tree of them.
 *
 * Function references: a plan names each user function by pointer (only
 * when the executor shares the address space) and by its registered name;
 * a worker without the pointer looks the name up (weft_task_lookup). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bag/bag_internal.h"

/* ---- the pipeline ---------------------------------------------------------- */

struct weft_bag_emit {
    struct pipe *p;
    uint32_t stage;
    uint32_t count;
};

struct weft_bag_iter {
    const unsigned char *p, *end;
};

typedef struct hmap hmap;

typedef struct op {
    uint32_t kind;
    void (*fn)(void);
    const void *arg;
    size_t alen;
    wb buf;     /* OP_MAPPART: its input records */
    hmap *join; /* OP_JOIN: the table */
    const char *name;
} op;

typedef struct pipe {
    op ops[BAG_MAX_OPS];
    uint32_t nops;
    weft_bag_emit em[BAG_MAX_OPS + 1];
    int (*sink)(struct pipe *p, const void *rec, size_t len);
    void *sk; /* the sink's state */
    weft_ctx *ctx;
    int failed; /* a message was recorded with weft_ctx_fail */
} pipe_t;

static int push(pipe_t *p, uint32_t stage, const void *rec, size_t len);

/* the number of arguments of a node's input (an argument block, or plain
 * bytes as one argument), or -1 when it is neither */
static int args_n(const void *in, size_t len)
{
    size_t n = 0;
    return weft_args_count(in, len, &n) || n > INT32_MAX ? -1 : (int)n;
}

int weft_bag_emit_rec(weft_bag_emit *out, const void *data, size_t len)
{
    if (!out || (!data && len)) return WEFT_EINVAL;
    if (len > UINT32_MAX) return WEFT_EINVAL;
    out->count++;
    return push(out->p, out->stage, data, len);
}
int weft_bag_emit_double(weft_bag_emit *out, double v)
{
    return weft_bag_emit_rec(out, &v, 8);
}
int weft_bag_emit_int64(weft_bag_emit *out, int64_t v)
{
    return weft_bag_emit_rec(out, &v, 8);
}
int weft_bag_emit_text(weft_bag_emit *out, const char *s)
{
    if (!s) return WEFT_EINVAL;
    return weft_bag_emit_rec(out, s, strlen(s));
}

size_t weft_bag_pair_make(void *dst, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (dst) {
        uint32_t k = (uint32_t)klen;
        memcpy(dst, &k, 4);
        if (klen) memcpy((unsigned char *)dst + 4, key, klen);
        if (vlen) memcpy((unsigned char *)dst + 4 + klen, val, vlen);
    }
    return 4 + klen + vlen;
}

int weft_bag_pair_get(const void *rec, size_t len, const void **key, size_t *klen, const void **val,
                      size_t *vlen)
{
    if (!rec || len < 4) return WEFT_EINVAL;
    uint32_t k;
    memcpy(&k, rec, 4);
    if (k > len - 4) return WEFT_EINVAL;
    if (key) *key = (const unsigned char *)rec + 4;
    if (klen) *klen = k;
    if (val) *val = (const unsigned char *)rec + 4 + k;
    if (vlen) *vlen = len - 4 - k;
    return 0;
}

int weft_bag_emit_pair(weft_bag_emit *out, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    if (!out || (!key && klen) || (!val && vlen) || klen > UINT32_MAX) return WEFT_EINVAL;
    unsigned char small[256];
    size_t n = 4 + klen + vlen;
    unsigned char *b = n <= sizeof small ? small : malloc(n);
    if (!b) return WEFT_ENOMEM;
    weft_bag_pair_make(b, key, klen, val, vlen);
    int rc = weft_bag_emit_rec(out, b, n);
    if (b != small) free(b);
    return rc;
}

int weft_bag_iter_next(weft_bag_iter *it, const void **rec, size_t *len)
{
    if (!it || !rec || !len) return 0;
    return rec_next(&it->p, it->end, rec, len) == 1;
}

int weft_bag_rec_double(const void *rec, size_t len, double *v)
{
    if (!rec || len != 8 || !v) return WEFT_EINVAL;
    memcpy(v, rec, 8);
    return 0;
}
int weft_bag_rec_int64(const void *rec, size_t len, int64_t *v)
{
    if (!rec || len != 8 || !v) return WEFT_EINVAL;
    memcpy(v, rec, 8);
    return 0;
}

/* ---- records lists ------------------------------------------------------------ */

int weft__bag_records_make(const void *data, size_t len, weft_bag_records **out)
{
    weft_bag_records *r = calloc(1, sizeof *r);
    if (!r) return WEFT_ENOMEM;
    size_t n = 0;
    const unsigned char *p = data, *end = p + len;
    const void *rec;
    size_t rl;
    int k;
    while ((k = rec_next(&p, end, &rec, &rl)) == 1) n++;
    if (k < 0) {
        free(r);
        return WEFT_EINVAL;
    }
    r->buf = malloc(len ? len : 1);
    r->off = malloc((n ? n : 1) * sizeof *r->off);
    if (!r->buf || !r->off) {
        weft_bag_records_destroy(r);
        return WEFT_ENOMEM;
    }
    if (len) memcpy(r->buf, data, len);
    r->len = len;
    p = r->buf;
    end = p + len;
    for (size_t i = 0; i < n; i++) {
        r->off[i] = (size_t)(p - r->buf);
        rec_next(&p, end, &rec, &rl);
    }
    r->n = n;
    *out = r;
    return 0;
}

size_t weft_bag_records_count(const weft_bag_records *r)
{
    return r ? r->n : 0;
}

int weft_bag_records_get(const weft_bag_records *r, size_t i, const void **data, size_t *len)
{
    if (!r || i >= r->n) return WEFT_EINVAL;
    uint32_t l;
    memcpy(&l, r->buf + r->off[i], 4);
    if (data) *data = r->buf + r->off[i] + 4;
    if (len) *len = l;
    return 0;
}

int weft_bag_records_destroy(weft_bag_records *r)
{
    if (!r) return 0;
    free(r->buf);
    free(r->off);
    free(r);
    return 0;
}

/* ---- function references ----------------------------------------------------- */

static int fn_read(rb *r, weft_ctx *ctx, void (**fn)(void), const char **namep)
{
    uint64_t ptr = rb_u64(r);
    size_t nl;
    const char *name = rb_bytes(r, &nl);
    if (r->bad) return WEFT_EINVAL;
    *namep = "(unnamed)";
    if (ptr) {
        *fn = (void (*)(void))(uintptr_t)ptr;
        /* the registry's copy is NUL-terminated and lives as long as the process */
        const char *reg = weft_task_name((weft_task_fn)*fn);
        if (reg) *namep = reg;
        return 0;
    }
    *fn = NULL;
    if (!nl) return 0; /* no function */
    char buf[256];
    if (nl >= sizeof buf) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag: function name too long");
    memcpy(buf, name, nl);
    buf[nl] = '\0';
    weft_task_fn t;
    int rc = weft_task_lookup(buf, &t);
    if (rc)
        return weft_ctx_fail(ctx, WEFT_ENOTREG,
                             "bag: the function '%s' is not registered in this worker "
                             "(WEFT_BAG_FN at file scope)",
                             buf);
    *fn = (void (*)(void))t;
    const char *reg = weft_task_name(t);
    if (reg) *namep = reg;
    return 0;
}

/* ---- hash tables (frequencies, distinct, foldby, join) ------------------------ */

/* Open addressing over entries {hash, offset into the arena}; the arena holds
 * [u32 klen][key][value of vsize bytes] per key, in insertion order, so the
 * table's output order is the order keys were first met. */
struct hmap {
    uint64_t *h; /* 0 = empty (hashes are forced odd... non-zero) */
    size_t *off;
    size_t cap, n;
    size_t vsize;
    wb arena;
};

static uint64_t hkey(const void *k, size_t kl)
{
    uint64_t h = XXH3_64bits(k, kl);
    return h ? h : 1;
}

/* Short keys (words) compared inline: a memcmp call costs more than them. */
static inline bool key_eq(const unsigned char *a, const void *bv, size_t n)
{
    const unsigned char *b = bv;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i]) return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

static hmap *hmap_new(size_t vsize)
{
    hmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 1024;
    m->vsize = vsize;
    m->h = calloc(m->cap, sizeof *m->h);
    m->off = malloc(m->cap * sizeof *m->off);
    if (!m->h || !m->off) {
        free(m->h);
        free(m->off);
        free(m);
        return NULL;
    }
    return m;
}

static void hmap_free(hmap *m)
{
    if (!m) return;
    free(m->h);
    free(m->off);
    wb_free(&m->arena);
    free(m);
}

static int hmap_grow(hmap *m)
{
    size_t cap = m->cap * 2;
    uint64_t *h = calloc(cap, sizeof *h);
    size_t *off = malloc(cap * sizeof *off);
    if (!h || !off) {
        free(h);
        free(off);
        return WEFT_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->h[i]) continue;
        size_t j = (size_t)m->h[i] & (cap - 1);
        while (h[j]) j = (j + 1) & (cap - 1);
        h[j] = m->h[i];
        off[j] = m->off[i];
    }
    free(m->h);
    free(m->off);
    m->h = h;
    m->off = off;
    m->cap = cap;
    return 0;
}

/* Finds key, or (insert) adds it with its value zeroed/initialized from
 * `init`. Returns the value's address (NULL: not found / out of memory;
 * *oom set for the latter). The address is valid until the next insert. */
static unsigned char *hmap_get(hmap *m, const void *k, size_t kl, bool insert, const void *init,
                               bool *isnew, int *oom)
{
    uint64_t h = hkey(k, kl);
    size_t mask = m->cap - 1, j = (size_t)h & mask;
    while (m->h[j]) {
        if (m->h[j] == h) {
            unsigned char *e = m->arena.p + m->off[j];
            uint32_t el;
            memcpy(&el, e, 4);
            if (el == kl && key_eq(e + 4, k, kl)) {
                if (isnew) *isnew = false;
                return e + 4 + el;
            }
        }
        j = (j + 1) & mask;
    }
    if (!insert) return NULL;
    if ((m->n + 1) * 2 > m->cap) {
        if (hmap_grow(m)) {
            *oom = 1;
            return NULL;
        }
        return hmap_get(m, k, kl, insert, init, isnew, oom);
    }
    size_t at = m->arena.n;
    uint32_t kl32 = (uint32_t)kl;
    wb_put(&m->arena, &kl32, 4);
    wb_put(&m->arena, k, kl);
    if (wb_reserve(&m->arena, m->vsize)) {
        *oom = 1;
        return NULL;
    }
    if (init)
        memcpy(m->arena.p + m->arena.n, init, m->vsize);
    else
        memset(m->arena.p + m->arena.n, 0, m->vsize);
    m->arena.n += m->vsize;
    if (m->arena.oom) {
        *oom = 1;
        return NULL;
    }
    m->h[j] = h;
    m->off[j] = at;
    m->n++;
    if (isnew) *isnew = true;
    return m->arena.p + at + 4 + kl;
}

/* Walks the arena: key and value of each entry in insertion order. */
static int hmap_each(const hmap *m, size_t *pos, const unsigned char **k, size_t *kl,
                     unsigned char **v)
{
    if (*pos >= m->arena.n) return 0;
    unsigned char *e = m->arena.p + *pos;
    uint32_t l;
    memcpy(&l, e, 4);
    *k = e + 4;
    *kl = l;
    *v = e + 4 + l;
    *pos += 4 + l + m->vsize;
    return 1;
}

/* ---- top-k ------------------------------------------------------------------------ */

typedef struct topk {
    size_t k;
    uint32_t keykind;
    bool smallest;
    weft_bag_cmp_fn cmp;
    const void *arg;
    size_t alen;
    /* a heap of the k best so far, worst at the root; records copied */
    struct titem {
        unsigned char *d;
        size_t len;
    } * heap;
    size_t n;
} topk;

static int num_cmp_d(double a, double b)
{
    bool na = isnan(a), nb = isnan(b);
    if (na || nb) return na && nb ? 0 : na ? 1 : -1; /* NaN after everything */
    return a < b ? -1 : a > b ? 1 : 0;
}

static int bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* The key order of two records (ascending), ties broken by the bytes. */
/* -1, 0, 1: two 8-byte values, doubles (num_cmp_d's order) or int64 */
static int cmp8(bool is_double, const void *a, const void *b)
{
    if (is_double) {
        double x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return num_cmp_d(x, y);
    }
    int64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    return x < y ? -1 : x > y;
}

static int tk_cmp(const topk *t, const void *a, size_t al, const void *b, size_t bl)
{
    int c = 0;
    switch (t->keykind) {
    case WEFT_BAG_KEY_DOUBLE:
    case WEFT_BAG_KEY_INT64:
        if (al == 8 && bl == 8) c = cmp8(t->keykind == WEFT_BAG_KEY_DOUBLE, a, b);
        break;
    case WEFT_BAG_KEY_PAIR_INT64:
    case WEFT_BAG_KEY_PAIR_DOUBLE: {
        const void *va, *vb;
        size_t la, lb;
        if (weft_bag_pair_get(a, al, NULL, NULL, &va, &la) == 0 &&
            weft_bag_pair_get(b, bl, NULL, NULL, &vb, &lb) == 0 && la == 8 && lb == 8)
            c = cmp8(t->keykind == WEFT_BAG_KEY_PAIR_DOUBLE, va, vb);
        break;
    }
    case WEFT_BAG_KEY_CMP:
        c = t->cmp(a, al, b, bl, t->arg, t->alen);
        c = c < 0 ? -1 : c > 0;
        break;
    default:
        break;
    }
    if (c == 0) c = bytes_cmp(a, al, b, bl);
    return c;
}

/* > 0 when a is better than b (comes first in the answer). */
static int tk_better(const topk *t, const void *a, size_t al, const void *b, size_t bl)
{
    int c = tk_cmp(t, a, al, b, bl);
    return t->smallest ? -c : c;
}

static void tk_sift_down(topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        /* root = the worst: a child worse than w moves up */
        if (l < t->n &&
            tk_better(t, t->heap[w].d, t->heap[w].len, t->heap[l].d, t->heap[l].len) > 0)
            w = l;
        if (r < t->n &&
            tk_better(t, t->heap[w].d, t->heap[w].len, t->heap[r].d, t->heap[r].len) > 0)
            w = r;
        if (w == i) return;
        struct titem x = t->heap[i];
        t->heap[i] = t->heap[w];
        t->heap[w] = x;
        i = w;
    }
}

static int tk_add(topk *t, const void *rec, size_t len)
{
    if (t->k == 0) return 0;
    if (t->n == t->k) {
        /* not better than the worst kept: dropped without a copy */
        if (tk_better(t, rec, len, t->heap[0].d, t->heap[0].len) <= 0) return 0;
        unsigned char *d =
            t->heap[0].len >= len ? t->heap[0].d : realloc(t->heap[0].d, len ? len : 1);
        if (!d) return WEFT_ENOMEM;
        if (len) memcpy(d, rec, len);
        t->heap[0] = (struct titem){d, len};
        tk_sift_down(t, 0);
        return 0;
    }
    unsigned char *d = malloc(len ? len : 1);
    if (!d) return WEFT_ENOMEM;
    if (len) memcpy(d, rec, len);
    size_t i = t->n++;
    t->heap[i] = (struct titem){d, len};
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (tk_better(t, t->heap[up].d, t->heap[up].len, t->heap[i].d, t->heap[i].len) <= 0) break;
        struct titem x = t->heap[i];
        t->heap[i] = t->heap[up];
        t->heap[up] = x;
        i = up;
    }
    return 0;
}

/* Writes the kept records best first (heap pops; k log k) and frees them. */
static int tk_out(topk *t, wb *w)
{
    size_t n = t->n;
    struct titem *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return WEFT_ENOMEM;
    for (size_t i = n; i-- > 0;) {
        order[i] = t->heap[0];
        t->heap[0] = t->heap[--t->n];
        tk_sift_down(t, 0);
    }
    for (size_t i = 0; i < n; i++) {
        wb_rec(w, order[i].d, order[i].len);
        free(order[i].d);
    }
    free(order);
    return w->oom ? WEFT_ENOMEM : 0;
}

static void tk_free(topk *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->heap[i].d);
    free(t->heap);
}

/* ---- KLL sketch ------------------------------------------------------------------ */

/* Compactors of levels 0..L-1; level h holds items of weight 2^h. Level
 * capacities decay by 2/3 from the top (k at the highest level, at least
 * 2). A full level is sorted and every other item (offset by a seeded coin)
 * goes up a level. Serialized: u64 k, u64 n, u64 seed state, u32 levels,
 * then per level u64 count and the doubles. */
typedef struct kll {
    size_t k;
    uint64_t n;
    weft_rng rng;
    uint32_t levels;
    double *it[64];
    size_t cnt[64], cap[64];
    size_t cap0; /* level 0's capacity, cached (0: not known yet) */
} kll;

static size_t kll_capacity(const kll *s, uint32_t h)
{
    double c = (double)s->k;
    for (uint32_t d = h + 1; d < s->levels; d++) c *= 2.0 / 3.0;
    size_t r = (size_t)ceil(c);
    return r < 2 ? 2 : r;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int kll_add_level(kll *s)
{
    if (s->levels >= 63) return WEFT_EINVAL;
    s->it[s->levels] = NULL;
    s->cnt[s->levels] = 0;
    s->cap[s->levels] = 0;
    s->levels++;
    return 0;
}

static int kll_push(kll *s, uint32_t h, double v)
{
    if (s->cnt[h] == s->cap[h]) {
        size_t cap = s->cap[h] ? s->cap[h] * 2 : 16;
        double *p = realloc(s->it[h], cap * sizeof *p);
        if (!p) return WEFT_ENOMEM;
        s->it[h] = p;
        s->cap[h] = cap;
    }
    s->it[h][s->cnt[h]++] = v;
    return 0;
}

static int kll_compress(kll *s)
{
    for (uint32_t h = 0; h < s->levels; h++) {
        if (s->cnt[h] < kll_capacity(s, h)) continue;
        if (h + 1 == s->levels && kll_add_level(s)) return WEFT_EINVAL;
        qsort(s->it[h], s->cnt[h], sizeof(double), dcmp);
        size_t odd = s->cnt[h] & 1;
        /* an odd item out stays at this level */
        double keep = odd ? s->it[h][s->cnt[h] - 1] : 0;
        size_t m = s->cnt[h] - odd;
        size_t off = (size_t)(weft_rng_next(&s->rng) & 1);
        for (size_t i = off; i < m; i += 2)
            if (kll_push(s, h + 1, s->it[h][i])) return WEFT_ENOMEM;
        s->cnt[h] = 0;
        if (odd) kll_push(s, h, keep);
    }
    return 0;
}

static int kll_update(kll *s, double v)
{
    if (s->cnt[0] < s->cap[0] && s->cnt[0] + 1 < s->cap0) {
        s->it[0][s->cnt[0]++] = v; /* the common case: room at level 0 */
        s->n++;
        return 0;
    }
    if (kll_push(s, 0, v)) return WEFT_ENOMEM;
    s->n++;
    if (s->cnt[0] >= kll_capacity(s, 0)) {
        int rc = kll_compress(s);
        s->cap0 = kll_capacity(s, 0);
        return rc;
    }
    s->cap0 = kll_capacity(s, 0);
    return 0;
}

static void kll_free(kll *s)
{
    for (uint32_t h = 0; h < s->levels; h++) free(s->it[h]);
}

static void kll_write(const kll *s, wb *w)
{
    wb_u64(w, s->k);
    wb_u64(w, s->n);
    wb_put(w, &s->rng, sizeof s->rng);
    wb_u32(w, s->levels);
    for (uint32_t h = 0; h < s->levels; h++) {
        wb_u64(w, s->cnt[h]);
        wb_put(w, s->it[h], s->cnt[h] * sizeof(double));
    }
}

/* Reads a sketch; with `into`, merges it into that one instead. */
static int kll_read(const void *d, size_t len, kll *s, bool merge)
{
    rb r = {d, len, 0, 0};
    size_t k = (size_t)rb_u64(&r);
    uint64_t n = rb_u64(&r);
    weft_rng rng;
    const void *q = rb_get(&r, sizeof rng);
    if (q) memcpy(&rng, q, sizeof rng);
    uint32_t levels = rb_u32(&r);
    if (r.bad || levels > 63 || k < 2) return WEFT_EINVAL;
    if (!merge) {
        memset(s, 0, sizeof *s);
        s->k = k;
        s->rng = rng;
    }
    while (s->levels < levels)
        if (kll_add_level(s)) return WEFT_EINVAL;
    for (uint32_t h = 0; h < levels; h++) {
        uint64_t c = rb_u64(&r);
        if (c > (r.n - r.off) / sizeof(double)) return WEFT_EINVAL;
        const unsigned char *p = rb_get(&r, (size_t)c * sizeof(double));
        if (!p) return WEFT_EINVAL;
        for (uint64_t i = 0; i < c; i++) {
            double v;
            memcpy(&v, p + i * sizeof v, sizeof v);
            if (kll_push(s, h, v)) return WEFT_ENOMEM;
        }
    }
    if (merge) {
        s->n += n;
        s->rng.s[0] ^= rng.s[1];
        return kll_compress(s);
    }
    s->n = n;
    return 0;
}

typedef struct wpair {
    double v;
    uint64_t w;
} wpair;

static int wpcmp(const void *a, const void *b)
{
    double x = ((const wpair *)a)->v, y = ((const wpair *)b)->v;
    return x < y ? -1 : x > y;
}

double weft__bag_kll_quantile(const void *sk, size_t len, double q)
{
    kll s;
    if (kll_read(sk, len, &s, false)) return NAN;
    size_t total = 0;
    for (uint32_t h = 0; h < s.levels; h++) total += s.cnt[h];
    double res = NAN;
    wpair *all = malloc((total ? total : 1) * sizeof *all);
    if (all && total) {
        size_t m = 0;
        uint64_t wsum = 0;
        for (uint32_t h = 0; h < s.levels; h++)
            for (size_t i = 0; i < s.cnt[h]; i++) {
                all[m++] = (wpair){s.it[h][i], 1ull << h};
                wsum += 1ull << h;
            }
        qsort(all, m, sizeof *all, wpcmp);
        /* the first item whose cumulative weight passes q of the total */
        double target = q * (double)wsum;
        uint64_t acc = 0;
        res = all[m - 1].v;
        for (size_t i = 0; i < m; i++) {
            acc += all[i].w;
            if ((double)acc > target) {
                res = all[i].v;
                break;
            }
        }
    }
    free(all);
    kll_free(&s);
    return res;
}

/* ---- stats --------------------------------------------------------------------- */

static void stats_add(weft_bag_stats *s, double x)
{
    s->count++;
    if (isnan(x)) {
        s->nans++;
        return;
    }
    uint64_t n = s->count - s->nans;
    double d = x - s->mean;
    s->mean += d / (double)n;
    s->m2 += d * (x - s->mean);
    s->sum += x;
    if (n == 1 || x < s->min) s->min = x;
    if (n == 1 || x > s->max) s->max = x;
}

static void stats_merge(weft_bag_stats *a, const weft_bag_stats *b, bool ints)
{
    uint64_t na = a->count - a->nans, nb = b->count - b->nans;
    if (nb == 0) {
        a->count += b->count;
        a->nans += b->nans;
        return;
    }
    if (na == 0) {
        uint64_t c = a->count, nn = a->nans;
        *a = *b;
        a->count += c;
        a->nans += nn;
        return;
    }
    double n = (double)(na + nb), d = b->mean - a->mean;
    a->mean += d * (double)nb / n;
    a->m2 += b->m2 + d * d * (double)na * (double)nb / n;
    a->sum += b->sum;
    if (b->min < a->min) a->min = b->min;
    if (b->max > a->max) a->max = b->max;
    if (ints) {
        a->isum = (int64_t)((uint64_t)a->isum + (uint64_t)b->isum);
        if (b->imin < a->imin) a->imin = b->imin;
        if (b->imax > a->imax) a->imax = b->imax;
    }
    a->count += b->count;
    a->nans += b->nans;
}

void weft__bag_stats_finish(weft_bag_stats *s)
{
    if (s->count - s->nans == 0) {
        s->min = s->max = s->mean = NAN;
    }
}

/* ---- sinks ---------------------------------------------------------------------- */

typedef struct sink_state {
    uint32_t term;
    wb out;         /* collect / gather / reduce input / write */
    uint64_t count; /* count, write */
    weft_bag_stats st;
    uint32_t kind; /* numeric kind */
    /* fold */
    weft_bag_binop_fn binop;
    unsigned char *acc;
    size_t acc_size;
    const void *farg;
    size_t falen;
    /* topk */
    topk tk;
    /* hash tables */
    hmap *hm;
    weft_bag_key_fn keyfn;
    const void *init;
    /* histogram / gather */
    uint32_t shift;
    uint64_t nprefix;
    const uint64_t *prefix; /* sorted, unaligned: copied */
    uint64_t *pref;
    uint64_t *hist; /* nprefix * HIST_BUCKETS */
    uint32_t *nz;   /* the buckets of hist used, while fewer than half */
    size_t nnz, nzcap, nb;
    bool nz_over; /* more than half used (or no memory for nz): dense */
    uint64_t nan_count, total;
    /* kll */
    kll sk;
    /* shuffle */
    uint64_t nparts, mem_bound, buffered;
    wb *bucket;
    const char *spill;
    size_t spill_len;
    uint64_t part;
    bool spilled;
    weft_ctx *ctx;
} sink_state;

static int num_of(const sink_state *s, const void *rec, size_t len, double *d, uint64_t *key,
                  int64_t *iv)
{
    if (len != 8) return WEFT_EINVAL;
    if (s->kind == WEFT_BAG_INT64) {
        int64_t v;
        memcpy(&v, rec, 8);
        if (iv) *iv = v;
        if (d) *d = (double)v;
        if (key) *key = key_of_int64(v);
    } else {
        double v;
        memcpy(&v, rec, 8);
        if (d) *d = v;
        if (key) *key = key_of_double(v);
    }
    return 0;
}

static int sink_collect(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    wb_rec(&s->out, rec, len);
    return s->out.oom ? WEFT_ENOMEM : 0;
}
static int sink_count(pipe_t *p, const void *rec, size_t len)
{
    (void)rec;
    (void)len;
    ((sink_state *)p->sk)->count++;
    return 0;
}
static int sink_stats(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    double d;
    int64_t iv = 0;
    if (num_of(s, rec, len, &d, NULL, &iv))
        return weft_ctx_fail(p->ctx, WEFT_EINVAL,
                             "bag stats: a record of %zu bytes is not an 8-byte number", len);
    if (s->kind == WEFT_BAG_INT64) {
        uint64_t n = s->st.count;
        s->st.isum = (int64_t)((uint64_t)s->st.isum + (uint64_t)iv);
        if (n == 0 || iv < s->st.imin) s->st.imin = iv;
        if (n == 0 || iv > s->st.imax) s->st.imax = iv;
    }
    stats_add(&s->st, d);
    return 0;
}
static int sink_fold(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    return s->binop(s->acc, s->acc_size, rec, len, s->farg, s->falen);
}
static int sink_topk(pipe_t *p, const void *rec, size_t len)
{
    return tk_add(&((sink_state *)p->sk)->tk, rec, len);
}
static int sink_freq(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    int oom = 0;
    unsigned char *v = hmap_get(s->hm, rec, len, true, NULL, NULL, &oom);
    if (!v) return WEFT_ENOMEM;
    int64_t c;
    memcpy(&c, v, 8);
    c++;
    memcpy(v, &c, 8);
    return 0;
}
static int sink_distinct(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    int oom = 0;
    bool isnew;
    if (!hmap_get(s->hm, rec, len, true, NULL, &isnew, &oom) && oom) return WEFT_ENOMEM;
    return 0;
}
static int sink_foldby(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    const void *k;
    size_t kl;
    int rc = s->keyfn(rec, len, s->farg, s->falen, &k, &kl);
    if (rc) return rc < 0 ? rc : WEFT_ETASK;
    int oom = 0;
    unsigned char *v = hmap_get(s->hm, k, kl, true, s->init, NULL, &oom);
    if (!v) return WEFT_ENOMEM;
    return s->binop(v, s->acc_size, rec, len, s->farg, s->falen);
}

/* index of the prefix `pre` among the sorted prefixes, or -1 */
static long pref_find(const sink_state *s, uint64_t pre)
{
    size_t lo = 0, hi = s->nprefix;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pref[mid] < pre)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nprefix && s->pref[lo] == pre ? (long)lo : -1;
}

/* Counts one key in bucket b, noting a bucket used for the first time
 * (hist.c then writes only the used ones when they are few). */
static void hist_bump(sink_state *s, size_t b)
{
    if (s->hist[b]++ != 0 || s->nz_over) return;
    if (s->nnz == s->nzcap) {
        size_t nc = s->nzcap ? s->nzcap * 2 : 1024;
        uint32_t *n = nc < s->nb / 2 ? realloc(s->nz, nc * sizeof *n) : NULL;
        if (!n) {
            s->nz_over = true;
            return;
        }
        s->nz = n;
        s->nzcap = nc;
    }
    s->nz[s->nnz++] = (uint32_t)b;
}

static int sink_hist(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    uint64_t key;
    double d;
    if (num_of(s, rec, len, &d, &key, NULL))
        return weft_ctx_fail(p->ctx, WEFT_EINVAL,
                             "bag quantiles: a record of %zu bytes is not an 8-byte number", len);
    s->total++;
    if (s->kind == WEFT_BAG_DOUBLE && isnan(d)) {
        s->nan_count++;
        return 0;
    }
    if (s->shift == 0) { /* the first pass: every value, no prefix */
        hist_bump(s, key >> (64 - HIST_BITS));
        return 0;
    }
    uint64_t pre = key >> (64 - s->shift);
    long i = s->nprefix == 1 ? (s->pref[0] == pre ? 0 : -1) : pref_find(s, pre);
    if (i < 0) return 0;
    uint32_t rest = 64 - s->shift; /* bits left below the prefix */
    uint64_t b = rest >= HIST_BITS ? (key >> (rest - HIST_BITS)) & (HIST_BUCKETS - 1)
                                   : (key & ((1ull << rest) - 1)) << (HIST_BITS - rest);
    hist_bump(s, (size_t)i * HIST_BUCKETS + b);
    return 0;
}

static int sink_gather(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    uint64_t key;
    double d;
    if (num_of(s, rec, len, &d, &key, NULL))
        return weft_ctx_fail(p->ctx, WEFT_EINVAL,
                             "bag quantiles: a record of %zu bytes is not an 8-byte number", len);
    if (s->kind == WEFT_BAG_DOUBLE && isnan(d)) return 0;
    if (s->shift) {
        uint64_t pre = key >> (64 - s->shift);
        if (s->nprefix == 1 ? pre != s->pref[0] : pref_find(s, pre) < 0) return 0;
    }
    wb_u64(&s->out, key);
    return s->out.oom ? WEFT_ENOMEM : 0;
}

static int sink_kll(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    double d;
    if (num_of(s, rec, len, &d, NULL, NULL))
        return weft_ctx_fail(p->ctx, WEFT_EINVAL,
                             "bag quantiles: a record of %zu bytes is not an 8-byte number", len);
    if (isnan(d)) return 0;
    return kll_update(&s->sk, d);
}

static int shuffle_spill(sink_state *s);

static int sink_shuffle(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    const void *k;
    size_t kl;
    int rc = s->keyfn(rec, len, s->farg, s->falen, &k, &kl);
    if (rc) return rc < 0 ? rc : WEFT_ETASK;
    uint64_t b = hkey(k, kl) % s->nparts;
    wb_rec(&s->bucket[b], rec, len);
    if (s->bucket[b].oom) return WEFT_ENOMEM;
    s->buffered += 4 + len;
    if (s->buffered > s->mem_bound) return shuffle_spill(s);
    return 0;
}

static int sink_write(pipe_t *p, const void *rec, size_t len)
{
    sink_state *s = p->sk;
    wb_put(&s->out, rec, len);
    wb_put(&s->out, "\n", 1);
    s->count++;
    return s->out.oom ? WEFT_ENOMEM : 0;
}

/* Spill files: <prefix>-<part>-<bucket>; appended to on each spill. */
static void spill_name(const sink_state *s, uint64_t b, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s-%llu-%llu", (int)s->spill_len, s->spill, (unsigned long long)s->part,
             (unsigned long long)b);
}

static int shuffle_spill(sink_state *s)
{
    for (uint64_t b = 0; b < s->nparts; b++) {
        if (!s->bucket[b].n) continue;
        char path[4096];
        spill_name(s, b, path, sizeof path);
        FILE *f = fopen(path, s->spilled ? "ab" : "wb");
        if (!f || fwrite(s->bucket[b].p, 1, s->bucket[b].n, f) != s->bucket[b].n) {
            int e = errno;
            if (f) fclose(f);
            return weft_ctx_fail(s->ctx, -e, "bag groupby: cannot spill to '%s': %s", path,
                                 strerror(e));
        }
        if (fclose(f)) return weft_ctx_fail(s->ctx, WEFT_EINVAL, "bag groupby: spill '%s'", path);
        s->bucket[b].n = 0;
    }
    /* every bucket of this part gets a file, so the reader knows them all */
    if (!s->spilled) {
        for (uint64_t b = 0; b < s->nparts; b++) {
            char path[4096];
            spill_name(s, b, path, sizeof path);
            FILE *f = fopen(path, "ab");
            if (!f) return weft_ctx_fail(s->ctx, WEFT_EINVAL, "bag groupby: '%s'", path);
            fclose(f);
        }
    }
    s->spilled = true;
    s->buffered = 0;
    return 0;
}

/* ---- pushing records ------------------------------------------------------------- */

static int fail_fn(pipe_t *p, const op *o, int rc)
{
    if (p->failed) return rc;
    p->failed = 1;
    static const char *const kinds[] = {"", "map", "flatmap", "filter", "map_partitions", "join"};
    return weft_ctx_fail(p->ctx, rc < 0 ? rc : WEFT_ETASK, "bag %s: the function %s returned %d",
                         kinds[o->kind <= OP_JOIN ? o->kind : 0], o->name, rc);
}

static int push(pipe_t *p, uint32_t stage, const void *rec, size_t len)
{
    if (stage == p->nops) return p->sink(p, rec, len);
    op *o = &p->ops[stage];
    switch (o->kind) {
    case OP_MAP: {
        weft_bag_emit *e = &p->em[stage + 1];
        e->count = 0;
        int rc = ((weft_bag_map_fn)o->fn)(rec, len, o->arg, o->alen, e);
        if (rc) return fail_fn(p, o, rc);
        if (e->count != 1 && !p->failed) {
            p->failed = 1;
            return weft_ctx_fail(p->ctx, WEFT_EINVAL,
                                 "bag map: the function %s wrote %u records for one (a map "
                                 "writes exactly one; use flatmap)",
                                 o->name, e->count);
        }
        return 0;
    }
    case OP_FLATMAP: {
        int rc = ((weft_bag_map_fn)o->fn)(rec, len, o->arg, o->alen, &p->em[stage + 1]);
        return rc ? fail_fn(p, o, rc) : 0;
    }
    case OP_FILTER: {
        int r = ((weft_bag_pred_fn)o->fn)(rec, len, o->arg, o->alen);
        if (r < 0) return fail_fn(p, o, r);
        return r ? push(p, stage + 1, rec, len) : 0;
    }
    case OP_MAPPART:
        wb_rec(&o->buf, rec, len);
        return o->buf.oom ? WEFT_ENOMEM : 0;
    case OP_JOIN: {
        const void *k;
        size_t kl;
        int rc = ((weft_bag_key_fn)o->fn)(rec, len, o->arg, o->alen, &k, &kl);
        if (rc) return fail_fn(p, o, rc);
        int oom = 0;
        unsigned char *v = hmap_get(o->join, k, kl, false, NULL, NULL, &oom);
        if (!v) return 0;
        /* the value slot holds the offset list: [u64 n][u64 off]... into the table */
        wb *tab = (wb *)(void *)&o->buf;
        uint64_t head;
        memcpy(&head, v, 8);
        /* chain of entries: each [u64 next][u32 vlen][value] in o->buf */
        while (head) {
            const unsigned char *e = tab->p + head;
            uint64_t next;
            uint32_t vl;
            memcpy(&next, e, 8);
            memcpy(&vl, e + 8, 4);
            size_t n = 4 + len + vl;
            unsigned char small[512];
            unsigned char *b = n <= sizeof small ? small : malloc(n);
            if (!b) return WEFT_ENOMEM;
            weft_bag_pair_make(b, rec, len, e + 12, vl);
            rc = push(p, stage + 1, b, n);
            if (b != small) free(b);
            if (rc) return rc;
            head = next;
        }
        return 0;
    }
    default:
        return WEFT_EINVAL;
    }
}

/* The source has ended: map_partitions stages run, in order. */
static int pipe_finish(pipe_t *p)
{
    for (uint32_t s = 0; s < p->nops; s++) {
        op *o = &p->ops[s];
        if (o->kind != OP_MAPPART) continue;
        weft_bag_iter it = {o->buf.p, o->buf.p + o->buf.n};
        int rc = ((weft_bag_part_fn)o->fn)(&it, o->arg, o->alen, &p->em[s + 1]);
        wb_free(&o->buf);
        if (rc) return fail_fn(p, o, rc);
    }
    return 0;
}

static void pipe_free(pipe_t *p)
{
    for (uint32_t s = 0; s < p->nops; s++) {
        if (p->ops[s].kind == OP_MAPPART || p->ops[s].kind == OP_JOIN) wb_free(&p->ops[s].buf);
        hmap_free(p->ops[s].join);
    }
}

static int line_cb(void *ctx, const void *line, size_t len)
{
    return push(ctx, 0, line, len);
}

/* Feeds the records of an encoded partition. */
static int push_encoded(pipe_t *p, const void *d, size_t len)
{
    const unsigned char *q = d, *end = q + len;
    const void *rec;
    size_t rl;
    int k;
    while ((k = rec_next(&q, end, &rec, &rl)) == 1) {
        int rc = push(p, 0, rec, rl);
        if (rc) return rc;
    }
    return k < 0 ? weft_ctx_fail(p->ctx, WEFT_EINVAL, "bag: a malformed partition") : 0;
}

/* Reads a shuffle output: its bucket j, in memory or in a spill file. */
static int shuffle_bucket(weft_ctx *ctx, const void *d, size_t len, uint64_t j, wb *dst)
{
    rb r = {d, len, 0, 0};
    uint64_t nparts = rb_u64(&r);
    uint32_t spilled = rb_u32(&r);
    size_t pl;
    const char *prefix = rb_bytes(&r, &pl);
    uint64_t part = rb_u64(&r);
    if (r.bad || j >= nparts) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag groupby: bad shuffle");
    for (uint64_t b = 0; b < nparts; b++) {
        size_t bl;
        const void *bd = rb_bytes(&r, &bl);
        if (r.bad) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag groupby: bad shuffle");
        if (b == j) wb_put(dst, bd, bl);
    }
    if (spilled) {
        char path[4096];
        snprintf(path, sizeof path, "%.*s-%llu-%llu", (int)pl, prefix, (unsigned long long)part,
                 (unsigned long long)j);
        FILE *f = fopen(path, "rb");
        if (!f)
            return weft_ctx_fail(ctx, -errno, "bag groupby: cannot read the spill file '%s': %s",
                                 path, strerror(errno));
        unsigned char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) wb_put(dst, buf, n);
        fclose(f);
        unlink(path);
    }
    return dst->oom ? WEFT_ENOMEM : 0;
}

typedef struct grp {
    const unsigned char *key;
    size_t klen;
    uint64_t h;
    size_t first; /* index of the group's first record */
} grp;

/* Groups the records of bucket data by key; pushes (key, records) pairs. */
static int group_records(pipe_t *p, const void *data, size_t len, weft_bag_key_fn keyfn,
                         const void *arg, size_t alen)
{
    /* key -> u64 index of the group; then records appended per group */
    hmap *m = hmap_new(8);
    if (!m) return WEFT_ENOMEM;
    size_t ng = 0;
    wb *lists = NULL;
    size_t lcap = 0;
    int rc = 0;
    const unsigned char *q = data, *end = q + len;
    const void *rec;
    size_t rl;
    while (rec_next(&q, end, &rec, &rl) == 1) {
        const void *k;
        size_t kl;
        rc = keyfn(rec, rl, arg, alen, &k, &kl);
        if (rc) {
            rc = weft_ctx_fail(p->ctx, rc < 0 ? rc : WEFT_ETASK,
                               "bag groupby: the key function returned %d", rc);
            goto out;
        }
        int oom = 0;
        bool isnew = false;
        unsigned char *v = hmap_get(m, k, kl, true, NULL, &isnew, &oom);
        if (!v) {
            rc = WEFT_ENOMEM;
            goto out;
        }
        uint64_t gi;
        if (isnew) {
            if (ng == lcap) {
                lcap = lcap ? lcap * 2 : 64;
                wb *nl = realloc(lists, lcap * sizeof *nl);
                if (!nl) {
                    rc = WEFT_ENOMEM;
                    goto out;
                }
                lists = nl;
            }
            lists[ng] = (wb){0};
            gi = ng++;
            memcpy(v, &gi, 8);
        } else {
            memcpy(&gi, v, 8);
        }
        wb_rec(&lists[gi], rec, rl);
        if (lists[gi].oom) {
            rc = WEFT_ENOMEM;
            goto out;
        }
    }
    size_t pos = 0, g = 0;
    const unsigned char *k;
    size_t kl;
    unsigned char *v;
    while (!rc && hmap_each(m, &pos, &k, &kl, &v)) {
        wb pr = {0};
        wb_reserve(&pr, 4 + kl + lists[g].n);
        if (pr.oom) {
            rc = WEFT_ENOMEM;
            break;
        }
        pr.n = weft_bag_pair_make(pr.p, k, kl, lists[g].p, lists[g].n);
        rc = push(p, 0, pr.p, pr.n);
        wb_free(&pr);
        g++;
    }
out:
    for (size_t i = 0; i < ng; i++) wb_free(&lists[i]);
    free(lists);
    hmap_free(m);
    return rc;
}

static int run_source(pipe_t *p, rb *r, const void *in, size_t inlen)
{
    weft_ctx *ctx = p->ctx;
    char err[512] = "";
    uint32_t src = rb_u32(r);
    int rc = 0;
    switch (src) {
    case SRC_INLINE: {
        size_t n;
        const void *d = rb_bytes(r, &n);
        if (r->bad) break;
        return push_encoded(p, d, n);
    }
    case SRC_INLINE_PTR: {
        uint64_t addr = rb_u64(r), n = rb_u64(r);
        if (r->bad) break;
        return push_encoded(p, (const void *)(uintptr_t)addr, (size_t)n);
    }
    case SRC_RANGE: {
        int64_t start = (int64_t)rb_u64(r), step = (int64_t)rb_u64(r);
        uint64_t count = rb_u64(r);
        for (uint64_t i = 0; i < count && !rc; i++) {
            int64_t v = (int64_t)((uint64_t)start + i * (uint64_t)step);
            rc = push(p, 0, &v, 8);
        }
        return rc;
    }
    case SRC_GEN: {
        void (*fn)(void);
        const char *name;
        rc = fn_read(r, ctx, &fn, &name);
        if (rc) return rc;
        size_t al;
        const void *arg = rb_bytes(r, &al);
        uint64_t part = rb_u64(r), nparts = rb_u64(r);
        if (r->bad || !fn) break;
        p->em[0] = (weft_bag_emit){p, 0, 0};
        rc = ((weft_bag_gen_fn)fn)(part, nparts, arg, al, &p->em[0]);
        if (rc && !p->failed)
            return weft_ctx_fail(ctx, rc < 0 ? rc : WEFT_ETASK,
                                 "bag generator: the function returned %d for partition %llu", rc,
                                 (unsigned long long)part);
        return rc;
    }
    case SRC_TEXT:
    case SRC_GZ:
    case SRC_ZST:
    case SRC_RAW: {
        size_t pl;
        const char *pp = rb_bytes(r, &pl);
        char path[4096];
        if (r->bad || pl >= sizeof path) break;
        memcpy(path, pp, pl);
        path[pl] = '\0';
        if (src == SRC_TEXT || src == SRC_RAW) {
            uint64_t a = rb_u64(r), b = rb_u64(r);
            if (r->bad) break;
            rc = src == SRC_TEXT ? weft__bag_read_range(path, a, b, line_cb, p, err, sizeof err)
                                 : weft__bag_read_raw(path, a, b, line_cb, p, err, sizeof err);
        } else if (src == SRC_GZ) {
            rc = weft__bag_read_gz(path, line_cb, p, err, sizeof err);
        } else {
            rc = weft__bag_read_zst(path, line_cb, p, err, sizeof err);
        }
        if (rc && err[0] && !p->failed) return weft_ctx_fail(ctx, rc, "bag: %s", err);
        return rc;
    }
    case SRC_INPUTS:
    case SRC_PRODUCT:
    case SRC_ZIP:
    case SRC_SLICE:
    case SRC_GROUP: {
        int na = args_n(in, inlen);
        if (na < 1) break;
        if (src == SRC_INPUTS) {
            for (int i = 1; i < na && !rc; i++) {
                const void *d;
                size_t dl;
                weft_args_get(in, inlen, (size_t)i, &d, &dl);
                rc = push_encoded(p, d, dl);
            }
            return rc;
        }
        if (src == SRC_SLICE) {
            uint64_t n = rb_u64(r);
            if (r->bad || n + 1 != (uint64_t)na) break;
            for (uint64_t i = 0; i < n && !rc; i++) {
                uint64_t skip = rb_u64(r), take = rb_u64(r);
                const void *d;
                size_t dl;
                weft_args_get(in, inlen, (size_t)i + 1, &d, &dl);
                const unsigned char *q = d, *end = q + dl;
                const void *rec;
                size_t rl;
                uint64_t idx = 0;
                while (idx < skip + take && rec_next(&q, end, &rec, &rl) == 1) {
                    if (idx >= skip) rc = push(p, 0, rec, rl);
                    if (rc) break;
                    idx++;
                }
            }
            return rc;
        }
        if (src == SRC_GROUP) {
            uint64_t j = rb_u64(r);
            void (*fn)(void);
            const char *name;
            rc = fn_read(r, ctx, &fn, &name);
            if (rc) return rc;
            size_t al;
            const void *arg = rb_bytes(r, &al);
            if (r->bad || !fn) break;
            wb all = {0};
            for (int i = 1; i < na && !rc; i++) {
                const void *d;
                size_t dl;
                weft_args_get(in, inlen, (size_t)i, &d, &dl);
                rc = shuffle_bucket(ctx, d, dl, j, &all);
            }
            if (!rc) rc = group_records(p, all.p, all.n, (weft_bag_key_fn)fn, arg, al);
            wb_free(&all);
            return rc;
        }
        if (na != 3) break;
        const void *da, *db;
        size_t la, lb;
        weft_args_get(in, inlen, 1, &da, &la);
        weft_args_get(in, inlen, 2, &db, &lb);
        const unsigned char *qa = da, *ea = qa + la;
        const void *ra, *rbb;
        size_t ral, rbl;
        wb pr = {0};
        if (src == SRC_PRODUCT) {
            while (!rc && rec_next(&qa, ea, &ra, &ral) == 1) {
                const unsigned char *qb = db, *eb = qb + lb;
                while (!rc && rec_next(&qb, eb, &rbb, &rbl) == 1) {
                    pr.n = 0;
                    if (wb_reserve(&pr, 4 + ral + rbl)) {
                        rc = WEFT_ENOMEM;
                        break;
                    }
                    pr.n = weft_bag_pair_make(pr.p, ra, ral, rbb, rbl);
                    rc = push(p, 0, pr.p, pr.n);
                }
            }
        } else {
            const unsigned char *qb = db, *eb = qb + lb;
            for (;;) {
                int ka = rec_next(&qa, ea, &ra, &ral), kb = rec_next(&qb, eb, &rbb, &rbl);
                if (ka != kb) {
                    rc =
                        weft_ctx_fail(ctx, WEFT_EINVAL, "bag zip: partitions of different lengths");
                    break;
                }
                if (ka != 1) break;
                pr.n = 0;
                if (wb_reserve(&pr, 4 + ral + rbl)) {
                    rc = WEFT_ENOMEM;
                    break;
                }
                pr.n = weft_bag_pair_make(pr.p, ra, ral, rbb, rbl);
                rc = push(p, 0, pr.p, pr.n);
                if (rc) break;
            }
        }
        wb_free(&pr);
        return rc;
    }
    default:
        break;
    }
    return weft_ctx_fail(ctx, WEFT_EINVAL, "bag: a malformed plan (source %u)", src);
}

static int read_ops(pipe_t *p, rb *r)
{
    p->nops = rb_u32(r);
    if (r->bad || p->nops > BAG_MAX_OPS) return WEFT_EINVAL;
    for (uint32_t s = 0; s < p->nops; s++) {
        op *o = &p->ops[s];
        memset(o, 0, sizeof *o);
        o->kind = rb_u32(r);
        int rc = fn_read(r, p->ctx, &o->fn, &o->name);
        if (rc) return rc;
        o->arg = rb_bytes(r, &o->alen);
        if (r->bad || !o->fn) return WEFT_EINVAL;
        if (o->kind == OP_JOIN) {
            /* the table: pair records; built into a map key -> chain head */
            size_t tl;
            const void *t = rb_bytes(r, &tl);
            if (r->bad) return WEFT_EINVAL;
            o->join = hmap_new(8);
            if (!o->join) return WEFT_ENOMEM;
            wb_u64(&o->buf, 0); /* offset 0 means "end of chain" */
            const unsigned char *q = t, *end = q + tl;
            const void *rec;
            size_t rl;
            while (rec_next(&q, end, &rec, &rl) == 1) {
                const void *k, *v;
                size_t kl, vl;
                if (weft_bag_pair_get(rec, rl, &k, &kl, &v, &vl)) return WEFT_EINVAL;
                int oom = 0;
                unsigned char *slot = hmap_get(o->join, k, kl, true, NULL, NULL, &oom);
                if (!slot) return WEFT_ENOMEM;
                uint64_t head;
                memcpy(&head, slot, 8);
                /* append at the chain's end, so values keep the table's order */
                uint64_t at = o->buf.n;
                uint64_t zero = 0;
                uint32_t vl32 = (uint32_t)vl;
                wb_put(&o->buf, &zero, 8);
                wb_put(&o->buf, &vl32, 4);
                wb_put(&o->buf, v, vl);
                if (o->buf.oom) return WEFT_ENOMEM;
                if (!head) {
                    memcpy(slot, &at, 8);
                } else {
                    uint64_t cur = head, next;
                    for (;;) {
                        memcpy(&next, o->buf.p + cur, 8);
                        if (!next) break;
                        cur = next;
                    }
                    memcpy(o->buf.p + cur, &at, 8);
                }
            }
        }
        p->em[s + 1] = (weft_bag_emit){p, s + 1, 0};
    }
    p->em[0] = (weft_bag_emit){p, 0, 0};
    return 0;
}

/* Reads the terminal's parameters and prepares its sink. */
static int read_term(pipe_t *p, rb *r, sink_state *s)
{
    s->term = rb_u32(r);
    s->ctx = p->ctx;
    const char *name;
    void (*f1)(void) = NULL, (*f2)(void) = NULL;
    int rc = 0;
    switch (s->term) {
    case T_COLLECT:
        p->sink = sink_collect;
        break;
    case T_COUNT:
        p->sink = sink_count;
        break;
    case T_STATS:
        s->kind = rb_u32(r);
        p->sink = sink_stats;
        break;
    case T_FOLD: {
        if ((rc = fn_read(r, p->ctx, &f1, &name)) || (rc = fn_read(r, p->ctx, &f2, &name)))
            return rc;
        size_t il;
        const void *init = rb_bytes(r, &il);
        s->farg = rb_bytes(r, &s->falen);
        if (r->bad || !f1) return WEFT_EINVAL;
        s->binop = (weft_bag_binop_fn)f1;
        s->acc_size = il;
        s->acc = malloc(il ? il : 1);
        if (!s->acc) return WEFT_ENOMEM;
        if (il) memcpy(s->acc, init, il);
        p->sink = sink_fold;
        break;
    }
    case T_REDUCE:
        if ((rc = fn_read(r, p->ctx, &f1, &name)) || (rc = fn_read(r, p->ctx, &f2, &name)))
            return rc;
        s->farg = rb_bytes(r, &s->falen);
        s->binop = (weft_bag_binop_fn)(void (*)(void))f1; /* kept as the perpart fn */
        p->sink = sink_collect;
        break;
    case T_TOPK: {
        s->tk.k = (size_t)rb_u64(r);
        s->tk.keykind = rb_u32(r);
        s->tk.smallest = rb_u32(r) != 0;
        if ((rc = fn_read(r, p->ctx, &f1, &name))) return rc;
        s->tk.cmp = (weft_bag_cmp_fn)f1;
        s->tk.arg = rb_bytes(r, &s->tk.alen);
        if (r->bad || (s->tk.keykind == WEFT_BAG_KEY_CMP && !f1) || s->tk.k > (1u << 26))
            return WEFT_EINVAL;
        s->tk.heap = malloc((s->tk.k ? s->tk.k : 1) * sizeof *s->tk.heap);
        if (!s->tk.heap) return WEFT_ENOMEM;
        p->sink = sink_topk;
        break;
    }
    case T_FREQ:
    case T_DISTINCT:
        s->hm = hmap_new(s->term == T_FREQ ? 8 : 0);
        if (!s->hm) return WEFT_ENOMEM;
        p->sink = s->term == T_FREQ ? sink_freq : sink_distinct;
        break;
    case T_FOLDBY: {
        void (*f3)(void) = NULL;
        if ((rc = fn_read(r, p->ctx, &f1, &name)) || (rc = fn_read(r, p->ctx, &f2, &name)) ||
            (rc = fn_read(r, p->ctx, &f3, &name)))
            return rc;
        size_t il;
        s->init = rb_bytes(r, &il);
        s->farg = rb_bytes(r, &s->falen);
        if (r->bad || !f1 || !f2) return WEFT_EINVAL;
        s->keyfn = (weft_bag_key_fn)f1;
        s->binop = (weft_bag_binop_fn)f2;
        s->acc_size = il;
        s->hm = hmap_new(il);
        if (!s->hm) return WEFT_ENOMEM;
        p->sink = sink_foldby;
        break;
    }
    case T_HIST:
    case T_GATHER: {
        s->kind = rb_u32(r);
        s->shift = rb_u32(r);
        s->nprefix = rb_u64(r);
        if (r->bad || s->shift > 64 || s->nprefix > 4096) return WEFT_EINVAL;
        const void *pp = rb_get(r, (size_t)s->nprefix * 8);
        if (!pp) return WEFT_EINVAL;
        s->pref = malloc((size_t)(s->nprefix ? s->nprefix : 1) * 8);
        if (!s->pref) return WEFT_ENOMEM;
        memcpy(s->pref, pp, (size_t)s->nprefix * 8);
        if (s->term == T_HIST) {
            size_t nb = (size_t)(s->shift ? s->nprefix : 1) * HIST_BUCKETS;
            s->nb = nb;
            s->hist = calloc(nb, 8);
            if (!s->hist) return WEFT_ENOMEM;
            p->sink = sink_hist;
        } else {
            p->sink = sink_gather;
        }
        break;
    }
    case T_KLL:
        s->kind = rb_u32(r);
        s->sk.k = (size_t)rb_u64(r);
        if (r->bad || s->sk.k < 8) return WEFT_EINVAL;
        weft_rng_seed(&s->sk.rng, weft_ctx_seed(p->ctx) ^ weft_ctx_index(p->ctx));
        if (kll_add_level(&s->sk)) return WEFT_EINVAL;
        p->sink = sink_kll;
        break;
    case T_SHUFFLE:
        if ((rc = fn_read(r, p->ctx, &f1, &name))) return rc;
        s->farg = rb_bytes(r, &s->falen);
        s->nparts = rb_u64(r);
        s->mem_bound = rb_u64(r);
        s->spill = rb_bytes(r, &s->spill_len);
        s->part = rb_u64(r);
        if (r->bad || !f1 || !s->nparts || s->nparts > (1u << 20)) return WEFT_EINVAL;
        s->keyfn = (weft_bag_key_fn)f1;
        s->bucket = calloc((size_t)s->nparts, sizeof *s->bucket);
        if (!s->bucket) return WEFT_ENOMEM;
        p->sink = sink_shuffle;
        break;
    case T_WRITE:
        p->sink = sink_write;
        break;
    default:
        return WEFT_EINVAL;
    }
    return r->bad ? WEFT_EINVAL : 0;
}

/* Writes the sink's state as the task's output. */
static int write_term(pipe_t *p, rb *r, sink_state *s, void (*reduce_fn)(void))
{
    weft_ctx *ctx = p->ctx;
    wb w = {0};
    int rc = 0;
    switch (s->term) {
    case T_COLLECT:
    case T_GATHER:
        return weft_ctx_set_output(ctx, s->out.p, s->out.n);
    case T_COUNT:
        return weft_ctx_set_output(ctx, &s->count, 8);
    case T_STATS:
        return weft_ctx_set_output(ctx, &s->st, sizeof s->st);
    case T_FOLD:
        return weft_ctx_set_output(ctx, s->acc, s->acc_size);
    case T_REDUCE: {
        /* perpart over the collected records */
        pipe_t q = {.ctx = ctx, .sink = sink_collect};
        sink_state qs = {.term = T_COLLECT};
        q.sk = &qs;
        q.em[0] = (weft_bag_emit){&q, 0, 0};
        weft_bag_iter it = {s->out.p, s->out.p + s->out.n};
        rc = ((weft_bag_part_fn)reduce_fn)(&it, s->farg, s->falen, &q.em[0]);
        if (!rc)
            rc = qs.out.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, qs.out.p, qs.out.n);
        else if (!q.failed)
            rc = weft_ctx_fail(ctx, rc < 0 ? rc : WEFT_ETASK,
                               "bag reduction: the per-partition function returned %d", rc);
        wb_free(&qs.out);
        return rc;
    }
    case T_TOPK:
        rc = tk_out(&s->tk, &w);
        break;
    case T_FREQ:
    case T_DISTINCT:
    case T_FOLDBY: {
        size_t pos = 0, kl;
        const unsigned char *k;
        unsigned char *v;
        while (hmap_each(s->hm, &pos, &k, &kl, &v)) {
            if (s->term == T_DISTINCT) {
                wb_rec(&w, k, kl);
            } else {
                size_t n = 4 + kl + s->hm->vsize;
                if (wb_reserve(&w, 4 + n)) break;
                uint32_t n32 = (uint32_t)n;
                memcpy(w.p + w.n, &n32, 4);
                weft_bag_pair_make(w.p + w.n + 4, k, kl, v, s->hm->vsize);
                w.n += 4 + n;
            }
        }
        break;
    }
    case T_HIST:
        weft__hist_write(&w, s->total, s->nan_count, s->hist, s->nb, s->nz, s->nnz, !s->nz_over);
        break;
    case T_KLL:
        kll_write(&s->sk, &w);
        break;
    case T_SHUFFLE:
        if (s->spilled) {
            rc = shuffle_spill(s);
            if (rc) break;
        }
        wb_u64(&w, s->nparts);
        wb_u32(&w, s->spilled);
        wb_bytes(&w, s->spill, s->spill_len);
        wb_u64(&w, s->part);
        for (uint64_t b = 0; b < s->nparts; b++) wb_bytes(&w, s->bucket[b].p, s->bucket[b].n);
        break;
    case T_WRITE: {
        size_t pl;
        const char *pp = rb_bytes(r, &pl);
        uint32_t comp = rb_u32(r);
        char path[4096], err[512] = "";
        if (r->bad || pl >= sizeof path) return WEFT_EINVAL;
        memcpy(path, pp, pl);
        path[pl] = '\0';
        rc = weft__bag_write_file(path, (int)comp, s->out.p, s->out.n, err, sizeof err);
        if (rc) return weft_ctx_fail(ctx, rc, "bag to_textfiles: %s", err[0] ? err : path);
        return weft_ctx_set_output(ctx, &s->count, 8);
    }
    default:
        rc = WEFT_EINVAL;
    }
    if (!rc) rc = w.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, w.p, w.n);
    wb_free(&w);
    return rc;
}

static void sink_free(sink_state *s)
{
    wb_free(&s->out);
    free(s->acc);
    tk_free(&s->tk);
    hmap_free(s->hm);
    free(s->pref);
    free(s->hist);
    free(s->nz);
    kll_free(&s->sk);
    if (s->bucket)
        for (uint64_t b = 0; b < s->nparts; b++) wb_free(&s->bucket[b]);
    free(s->bucket);
}

int weft__bag_part_task(weft_ctx *ctx, const void *in, size_t len)
{
    const void *plan;
    size_t plen;
    if (weft_args_get(in, len, 0, &plan, &plen))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bag: the task's input is not an argument block");
    rb r = {plan, plen, 0, 0};
    if (rb_u32(&r) != BAG_MAGIC) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag: not a plan");
    /* the plan: source, then ops, then terminal; the source is read last
     * (it runs the pipeline), so find where it ends first */
    uint64_t src_len = rb_u64(&r);
    const void *src = rb_get(&r, (size_t)src_len);
    pipe_t *p = calloc(1, sizeof *p);
    sink_state *s = calloc(1, sizeof *s);
    int rc = 0;
    if (!p || !s) {
        free(p);
        free(s);
        return WEFT_ENOMEM;
    }
    p->ctx = ctx;
    p->sk = s;
    if (!src) {
        rc = WEFT_EINVAL;
        goto out;
    }
    rc = read_ops(p, &r);
    if (!rc) rc = read_term(p, &r, s);
    if (rc) {
        if (!p->failed) rc = weft_ctx_fail(ctx, rc, "bag: a malformed plan");
        goto out;
    }
    /* T_REDUCE keeps its per-partition function out of the sink */
    void (*reduce_fn)(void) = s->term == T_REDUCE ? (void (*)(void))s->binop : NULL;
    rb sr = {src, (size_t)src_len, 0, 0};
    rc = run_source(p, &sr, in, len);
    if (!rc) rc = pipe_finish(p);
    if (!rc) rc = write_term(p, &r, s, reduce_fn);
out:
    pipe_free(p);
    sink_free(s);
    free(p);
    free(s);
    return rc;
}
WEFT_TASK_REGISTER_AS(weft__bag_part_task, "weft.bag.part");

/* ---- merges ------------------------------------------------------------------------ */

static int merge_tables(weft_ctx *ctx, uint32_t term, const void *in, size_t len, int na,
                        weft_bag_combine_fn combine, size_t vsize, const void *arg, size_t alen)
{
    hmap *m = hmap_new(vsize);
    if (!m) return WEFT_ENOMEM;
    int rc = 0;
    for (int i = 1; i < na && !rc; i++) {
        const void *d;
        size_t dl;
        weft_args_get(in, len, (size_t)i, &d, &dl);
        const unsigned char *q = d, *end = q + dl;
        const void *rec;
        size_t rl;
        while (!rc && rec_next(&q, end, &rec, &rl) == 1) {
            const void *k = rec, *v = NULL;
            size_t kl = rl, vl = 0;
            if (term != T_DISTINCT &&
                (weft_bag_pair_get(rec, rl, &k, &kl, &v, &vl) || vl != vsize)) {
                rc = weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: a malformed table");
                break;
            }
            int oom = 0;
            bool isnew = false;
            unsigned char *slot = hmap_get(m, k, kl, true, v, &isnew, &oom);
            if (!slot && (oom || vsize)) {
                rc = WEFT_ENOMEM;
                break;
            }
            if (isnew || term == T_DISTINCT) continue;
            if (term == T_FREQ) {
                int64_t a, b;
                memcpy(&a, slot, 8);
                memcpy(&b, v, 8);
                a += b;
                memcpy(slot, &a, 8);
            } else {
                rc = combine(slot, v, vsize, arg, alen);
                if (rc)
                    rc = weft_ctx_fail(ctx, rc < 0 ? rc : WEFT_ETASK,
                                       "bag foldby: the combine function returned %d", rc);
            }
        }
    }
    wb w = {0};
    size_t pos = 0, kl;
    const unsigned char *k;
    unsigned char *v;
    while (!rc && hmap_each(m, &pos, &k, &kl, &v)) {
        if (term == T_DISTINCT) {
            wb_rec(&w, k, kl);
            continue;
        }
        size_t n = 4 + kl + vsize;
        if (wb_reserve(&w, 4 + n)) break;
        uint32_t n32 = (uint32_t)n;
        memcpy(w.p + w.n, &n32, 4);
        weft_bag_pair_make(w.p + w.n + 4, k, kl, v, vsize);
        w.n += 4 + n;
    }
    if (!rc) rc = w.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, w.p, w.n);
    wb_free(&w);
    hmap_free(m);
    return rc;
}

int weft__bag_merge_task(weft_ctx *ctx, const void *in, size_t len)
{
    int na = args_n(in, len);
    const void *spec;
    size_t sl;
    if (na < 1 || weft_args_get(in, len, 0, &spec, &sl))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: not an argument block");
    rb r = {spec, sl, 0, 0};
    uint32_t term = rb_u32(&r);
    const char *name;
    void (*f1)(void) = NULL, (*f2)(void) = NULL;
    int rc = 0;
    switch (term) {
    case T_COUNT: {
        uint64_t total = 0;
        for (int i = 1; i < na; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            if (dl != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad count");
            uint64_t c;
            memcpy(&c, d, 8);
            total += c;
        }
        return weft_ctx_set_output(ctx, &total, 8);
    }
    case T_STATS: {
        uint32_t kind = rb_u32(&r);
        weft_bag_stats acc = {0};
        for (int i = 1; i < na; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            if (dl != sizeof acc) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad stats");
            weft_bag_stats b;
            memcpy(&b, d, sizeof b);
            stats_merge(&acc, &b, kind == WEFT_BAG_INT64);
        }
        return weft_ctx_set_output(ctx, &acc, sizeof acc);
    }
    case T_FOLD: {
        if ((rc = fn_read(&r, ctx, &f1, &name)) || (rc = fn_read(&r, ctx, &f2, &name))) return rc;
        size_t il, al;
        rb_bytes(&r, &il);
        const void *arg = rb_bytes(&r, &al);
        if (r.bad || !f2) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad fold");
        unsigned char *acc = NULL;
        for (int i = 1; i < na && !rc; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            if (dl != il) {
                rc = weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad accumulator");
                break;
            }
            if (!acc) {
                acc = malloc(il ? il : 1);
                if (!acc) return WEFT_ENOMEM;
                if (il) memcpy(acc, d, il);
                continue;
            }
            rc = ((weft_bag_combine_fn)f2)(acc, d, il, arg, al);
            if (rc)
                rc = weft_ctx_fail(ctx, rc < 0 ? rc : WEFT_ETASK,
                                   "bag fold: the combine function returned %d", rc);
        }
        if (!rc) rc = weft_ctx_set_output(ctx, acc, acc ? il : 0);
        free(acc);
        return rc;
    }
    case T_REDUCE: {
        if ((rc = fn_read(&r, ctx, &f1, &name)) || (rc = fn_read(&r, ctx, &f2, &name))) return rc;
        size_t al;
        const void *arg = rb_bytes(&r, &al);
        if (r.bad || !f2) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad reduction");
        wb all = {0};
        for (int i = 1; i < na; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            wb_put(&all, d, dl);
        }
        pipe_t q = {.ctx = ctx, .sink = sink_collect};
        sink_state qs = {.term = T_COLLECT};
        q.sk = &qs;
        q.em[0] = (weft_bag_emit){&q, 0, 0};
        weft_bag_iter it = {all.p, all.p + all.n};
        rc = all.oom ? WEFT_ENOMEM : ((weft_bag_part_fn)f2)(&it, arg, al, &q.em[0]);
        if (!rc)
            rc = qs.out.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, qs.out.p, qs.out.n);
        else
            rc = weft_ctx_fail(ctx, rc < 0 ? rc : WEFT_ETASK,
                               "bag reduction: the aggregate function returned %d", rc);
        wb_free(&qs.out);
        wb_free(&all);
        return rc;
    }
    case T_TOPK: {
        topk t = {0};
        t.k = (size_t)rb_u64(&r);
        t.keykind = rb_u32(&r);
        t.smallest = rb_u32(&r) != 0;
        if ((rc = fn_read(&r, ctx, &f1, &name))) return rc;
        t.cmp = (weft_bag_cmp_fn)f1;
        t.arg = rb_bytes(&r, &t.alen);
        if (r.bad || t.k > (1u << 26))
            return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad topk");
        t.heap = malloc((t.k ? t.k : 1) * sizeof *t.heap);
        if (!t.heap) return WEFT_ENOMEM;
        for (int i = 1; i < na && !rc; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            const unsigned char *q = d, *end = q + dl;
            const void *rec;
            size_t rl;
            while (!rc && rec_next(&q, end, &rec, &rl) == 1) rc = tk_add(&t, rec, rl);
        }
        wb w = {0};
        if (!rc) rc = tk_out(&t, &w);
        if (!rc) rc = weft_ctx_set_output(ctx, w.p, w.n);
        wb_free(&w);
        tk_free(&t);
        return rc;
    }
    case T_FREQ:
    case T_DISTINCT:
        return merge_tables(ctx, term, in, len, na, NULL, term == T_FREQ ? 8 : 0, NULL, 0);
    case T_FOLDBY: {
        void (*f3)(void) = NULL;
        if ((rc = fn_read(&r, ctx, &f1, &name)) || (rc = fn_read(&r, ctx, &f2, &name)) ||
            (rc = fn_read(&r, ctx, &f3, &name)))
            return rc;
        size_t il, al;
        rb_bytes(&r, &il);
        const void *arg = rb_bytes(&r, &al);
        if (r.bad || !f3) return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad foldby");
        return merge_tables(ctx, term, in, len, na, (weft_bag_combine_fn)f3, il, arg, al);
    }
    case T_HIST: {
        rb_u32(&r);
        uint32_t shift = rb_u32(&r);
        uint64_t np = rb_u64(&r);
        size_t nb = (size_t)(shift ? np : 1) * HIST_BUCKETS;
        hist_view *v = calloc((size_t)na, sizeof *v);
        if (!v) return WEFT_ENOMEM;
        for (int i = 1; i < na && !rc; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            if (weft__hist_read(d, dl, nb, &v[i - 1]))
                rc = weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: bad histogram");
        }
        wb w = {0};
        if (!rc) rc = weft__hist_merge(v, (size_t)(na - 1), nb, &w);
        if (!rc) rc = weft_ctx_set_output(ctx, w.p, w.n);
        wb_free(&w);
        free(v);
        return rc;
    }
    case T_GATHER:
    case T_COLLECT: {
        wb w = {0};
        for (int i = 1; i < na; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            wb_put(&w, d, dl);
        }
        rc = w.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, w.p, w.n);
        wb_free(&w);
        return rc;
    }
    case T_KLL: {
        kll s = {0};
        for (int i = 1; i < na && !rc; i++) {
            const void *d;
            size_t dl;
            weft_args_get(in, len, (size_t)i, &d, &dl);
            rc = kll_read(d, dl, &s, i > 1);
        }
        wb w = {0};
        if (!rc) {
            kll_write(&s, &w);
            rc = w.oom ? WEFT_ENOMEM : weft_ctx_set_output(ctx, w.p, w.n);
        } else {
            rc = weft_ctx_fail(ctx, rc, "bag merge: bad sketch");
        }
        wb_free(&w);
        kll_free(&s);
        return rc;
    }
    default:
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bag merge: unknown terminal %u", term);
    }
}
WEFT_TASK_REGISTER_AS(weft__bag_merge_task, "weft.bag.merge");

/* call.c : the bytes of one evaluate call, written by the runner and read
 * by the task (on any backend: they cross as bytes, like every input).
 *
 * Layout, native byte order, every field 8-aligned from the start:
 *   "WSC1" u32 0                      magic, format version 1
 *   u64 split, u64 n_samples, u64 context_len, u64 nparams,
 *   u64 ntrain, u64 ntest
 *   context bytes, zero-padded to 8
 *   nparams x { u64 name_len, name (padded), u64 kind,
 *               f64 / i64 value, or u64 len + bytes (padded) for a string }
 *   u32 train[ntrain], u32 test[ntest] (padded to 8)
 * The parameters come in name order and no field depends on the
 * candidate's position, so equal calls have equal bytes: that is what the
 * memo's key is made of. */
#include "search/search_internal.h"

#include <string.h>

#include "internal.h"

#define CALL_MAGIC 0x31435357u /* "WSC1" */

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

typedef struct wbuf {
    unsigned char **buf;
    size_t *cap, len;
    bool fail;
} wbuf;

static void put(wbuf *w, const void *p, size_t n)
{
    if (w->fail) return;
    size_t need = w->len + pad8(n);
    if (weft__grow_bytes(w->buf, w->cap, need, 4096) != 0) {
        w->fail = true;
        return;
    }
    memset(*w->buf + w->len, 0, pad8(n));
    if (p && n) memcpy(*w->buf + w->len, p, n);
    w->len = need;
}

static void put64(wbuf *w, uint64_t v)
{
    put(w, &v, sizeof v);
}

int weft__search_encode(unsigned char **buf, size_t *cap, size_t *len, const weft_space *s,
                        size_t index, const weft_folds *f, size_t k, const void *ctx,
                        size_t ctx_len)
{
    wbuf w = {.buf = buf, .cap = cap};
    const size_t *train, *test;
    size_t ntrain, ntest, nparams = 0;
    const char *name;
    weft_param_value v;
    if (weft_folds_split(f, k, &train, &ntrain, &test, &ntest) != 0) return WEFT_EINVAL;
    while (weft_space_candidate(s, index, nparams, &name, &v) == 0) nparams++;
    uint32_t head[2] = {CALL_MAGIC, 0};
    put(&w, head, sizeof head);
    put64(&w, k);
    put64(&w, weft_folds_samples(f));
    put64(&w, ctx_len);
    put64(&w, nparams);
    put64(&w, ntrain);
    put64(&w, ntest);
    put(&w, ctx, ctx_len);
    for (size_t p = 0; p < nparams; p++) {
        weft_space_candidate(s, index, p, &name, &v);
        size_t nl = strlen(name);
        put64(&w, nl);
        put(&w, name, nl);
        put64(&w, (uint64_t)v.kind);
        if (v.kind == WEFT_PARAM_DOUBLE) {
            put(&w, &v.d, sizeof v.d);
        } else if (v.kind == WEFT_PARAM_INT) {
            put(&w, &v.i, sizeof v.i);
        } else {
            size_t sl = strlen(v.s);
            put64(&w, sl);
            put(&w, v.s, sl);
        }
    }
    if (w.fail) return WEFT_ENOMEM;
    size_t at = w.len;
    put(&w, NULL, (ntrain + ntest) * sizeof(uint32_t));
    if (w.fail) return WEFT_ENOMEM;
    for (size_t i = 0; i < ntrain; i++) {
        uint32_t x = (uint32_t)train[i];
        memcpy(*buf + at + 4 * i, &x, 4);
    }
    for (size_t i = 0; i < ntest; i++) {
        uint32_t x = (uint32_t)test[i];
        memcpy(*buf + at + 4 * (ntrain + i), &x, 4);
    }
    *len = w.len;
    return 0;
}

/* ---- the task's side ------------------------------------------------------ */

struct weft_search_call {
    size_t split, n_samples;
    void *ctx;
    size_t ctx_len;
    size_t nparams;
    char **names;
    weft_param_value *values; /* string values point into strs[] */
    char **strs;
    size_t *train, *test;
    size_t ntrain, ntest;
};

int weft_search_call_destroy(weft_search_call *c)
{
    if (!c) return 0;
    for (size_t p = 0; p < c->nparams; p++) {
        if (c->names) free(c->names[p]);
        if (c->strs) free(c->strs[p]);
    }
    free(c->names);
    free(c->strs);
    free(c->values);
    free(c->ctx);
    free(c->train);
    free(c->test);
    free(c);
    return 0;
}

typedef struct rbuf {
    const unsigned char *p;
    size_t len, at;
    bool bad;
} rbuf;

/* The next field of n bytes (then the position moves past its padding), or
 * NULL when the input is too short. */
static const unsigned char *take(rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->at || pad8(n) > r->len - r->at) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *q = r->p + r->at;
    r->at += pad8(n);
    return q;
}

static uint64_t take64(rbuf *r)
{
    uint64_t v = 0;
    const unsigned char *q = take(r, 8);
    if (q) memcpy(&v, q, 8);
    return v;
}

/* A NUL-terminated copy of n bytes of the input. */
static char *take_str(rbuf *r, size_t n)
{
    const unsigned char *q = take(r, n);
    if (!q) return NULL;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, q, n);
    s[n] = '\0';
    return s;
}

int weft_search_call_parse(const void *in, size_t len, weft_search_call **out)
{
    static const char fn[] = "weft_search_call_parse";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", fn);
    *out = NULL;
    if (!in && len) return weft__err(WEFT_EINVAL, "%s: NULL input", fn);
    rbuf r = {.p = in, .len = len};
    uint32_t head[2] = {0, 0};
    const unsigned char *h = take(&r, sizeof head);
    if (h) memcpy(head, h, sizeof head);
    if (!h || head[0] != CALL_MAGIC || head[1] != 0)
        return weft__err(WEFT_EINVAL, "%s: not a weft_search call (%zu bytes)", fn, len);
    weft_search_call *c = calloc(1, sizeof *c);
    if (!c) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    c->split = take64(&r);
    c->n_samples = take64(&r);
    c->ctx_len = take64(&r);
    uint64_t np = take64(&r), ntr = take64(&r), nte = take64(&r);
    /* counts cannot exceed what the bytes could hold */
    if (r.bad || c->ctx_len > len || np > len / 8 || ntr > len / 4 || nte > len / 4) goto bad;
    const unsigned char *ctx = take(&r, c->ctx_len);
    if (!ctx) goto bad;
    c->ctx = malloc(c->ctx_len + 1);
    if (!c->ctx) goto nomem;
    memcpy(c->ctx, ctx, c->ctx_len);
    ((char *)c->ctx)[c->ctx_len] = '\0';
    c->names = calloc(np ? np : 1, sizeof *c->names);
    c->strs = calloc(np ? np : 1, sizeof *c->strs);
    c->values = calloc(np ? np : 1, sizeof *c->values);
    if (!c->names || !c->strs || !c->values) goto nomem;
    c->nparams = (size_t)np;
    for (size_t p = 0; p < c->nparams; p++) {
        uint64_t nl = take64(&r);
        if (r.bad || nl > len) goto bad;
        if (!(c->names[p] = take_str(&r, (size_t)nl))) goto badornomem;
        uint64_t kind = take64(&r);
        weft_param_value *v = &c->values[p];
        v->kind = (weft_param_kind)kind;
        if (kind == WEFT_PARAM_DOUBLE) {
            const unsigned char *q = take(&r, 8);
            if (!q) goto bad;
            memcpy(&v->d, q, 8);
        } else if (kind == WEFT_PARAM_INT) {
            const unsigned char *q = take(&r, 8);
            if (!q) goto bad;
            memcpy(&v->i, q, 8);
        } else if (kind == WEFT_PARAM_STRING) {
            uint64_t sl = take64(&r);
            if (r.bad || sl > len) goto bad;
            if (!(c->strs[p] = take_str(&r, (size_t)sl))) goto badornomem;
            v->s = c->strs[p];
        } else {
            goto bad;
        }
    }
    c->ntrain = (size_t)ntr;
    c->ntest = (size_t)nte;
    const unsigned char *idx = take(&r, (c->ntrain + c->ntest) * 4);
    if (!idx || r.at != len) goto bad;
    c->train = malloc((c->ntrain ? c->ntrain : 1) * sizeof *c->train);
    c->test = malloc((c->ntest ? c->ntest : 1) * sizeof *c->test);
    if (!c->train || !c->test) goto nomem;
    for (size_t i = 0; i < c->ntrain + c->ntest; i++) {
        uint32_t x;
        memcpy(&x, idx + 4 * i, 4);
        if (x >= c->n_samples) goto bad;
        if (i < c->ntrain)
            c->train[i] = x;
        else
            c->test[i - c->ntrain] = x;
    }
    *out = c;
    return 0;
badornomem:
    if (r.bad) goto bad;
nomem:
    weft_search_call_destroy(c);
    return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
bad:
    weft_search_call_destroy(c);
    return weft__err(WEFT_EINVAL, "%s: a malformed or truncated call (%zu bytes)", fn, len);
}

int weft_search_call_param(const weft_search_call *c, const char *name, weft_param_value *value)
{
    if (!c || !name || !value)
        return weft__err(WEFT_EINVAL, "weft_search_call_param: NULL argument");
    for (size_t p = 0; p < c->nparams; p++)
        if (strcmp(c->names[p], name) == 0) {
            *value = c->values[p];
            return 0;
        }
    return weft__err(WEFT_ENOENT, "weft_search_call_param: no parameter '%s'", name);
}

int weft_search_call_double(const weft_search_call *c, const char *name, double *value)
{
    weft_param_value v;
    if (!value) return weft__err(WEFT_EINVAL, "weft_search_call_double: NULL value");
    int rc = weft_search_call_param(c, name, &v);
    if (rc) return rc;
    if (v.kind == WEFT_PARAM_STRING)
        return weft__err(WEFT_EINVAL, "weft_search_call_double: '%s' is a string", name);
    *value = v.kind == WEFT_PARAM_DOUBLE ? v.d : (double)v.i;
    return 0;
}

size_t weft_search_call_split(const weft_search_call *c)
{
    return c ? c->split : 0;
}

size_t weft_search_call_samples(const weft_search_call *c)
{
    return c ? c->n_samples : 0;
}

const size_t *weft_search_call_train(const weft_search_call *c, size_t *n)
{
    if (n) *n = c ? c->ntrain : 0;
    return c ? c->train : NULL;
}

const size_t *weft_search_call_test(const weft_search_call *c, size_t *n)
{
    if (n) *n = c ? c->ntest : 0;
    return c ? c->test : NULL;
}

const void *weft_search_call_context(const weft_search_call *c, size_t *len)
{
    if (len) *len = c ? c->ctx_len : 0;
    return c ? c->ctx : NULL;
}

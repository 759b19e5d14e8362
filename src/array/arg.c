/* arg.c : arrays as task arguments -- big arguments without copies.
 *
 * The core moves a task's input as bytes; it knows nothing of arrays, and
 * nothing here needs a hook in it. The arg chooses, from the executor's
 * backend (weft_executor_backend, public), what the bytes carry:
 *
 *   MODE_REF     serial, threads: the address of a view the arg holds, with
 *                the creating process's pid and a random per-process nonce
 *                (a worker process or another machine that gets these bytes
 *                refuses them: pids repeat across machines, the nonce makes
 *                a false match negligible, and a forked child has another
 *                pid). The task's view shares the view's store.
 *   MODE_SHM     processes, nbytes >= threshold: a weft_ipc_token of a
 *                memfd region and the data's offset in it; the worker
 *                attaches (weft_shm_attach: /proc/<owner>/fd/<n>, same
 *                physical pages) and keeps the mapping for the next task
 *                (see "Kept mappings" below). The region is the array's
 *                own (WEFT_ARRAY_SHARED) or a copy the arg made and owns.
 *   MODE_INLINE  processes below the threshold, mpi: the elements follow the
 *                header, 64 bytes aligned from the start of the bytes.
 *
 * The header is plain fixed-width data (the same machine's layout for REF
 * and SHM; INLINE assumes ranks of one byte order, as the rest of weft). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array/array_internal.h"
#include "core/backend.h" /* the capabilities, never the kind */

#define ARG_MAGIC 0x52524177u /* "wARR" */
#define MODE_REF 1u
#define MODE_SHM 2u
#define MODE_INLINE 3u
#define DEFAULT_THRESHOLD ((size_t)1 << 20)

typedef struct arg_hdr {
    uint32_t magic;
    uint32_t mode;
    uint32_t dtype;
    uint32_t endian;
    uint32_t order; /* MODE_SHM, MODE_INLINE: the elements are contiguous in it */
    uint32_t ndim;
    uint64_t shape[WEFT_ARRAY_MAX_NDIM];
    int64_t strides[WEFT_ARRAY_MAX_NDIM]; /* MODE_REF only */
    /* MODE_REF */
    uint64_t pid, nonce, view;
    /* MODE_SHM */
    weft_ipc_token token;
    uint64_t offset; /* MODE_SHM: of the data in the region; MODE_INLINE: in the bytes */
    uint64_t nbytes;
} arg_hdr;

#define INLINE_OFF ((sizeof(arg_hdr) + 63) & ~(size_t)63)

struct weft_array_arg {
    unsigned char *bytes;
    size_t len;
    uint32_t mode;
    weft_array *view;  /* MODE_REF: what the bytes point to; MODE_SHM: the data */
    weft_shm *own_shm; /* MODE_SHM: a region the arg made (owned via `view`) */
};

static _Atomic uint64_t process_nonce;

static uint64_t nonce(void)
{
    uint64_t n = atomic_load(&process_nonce);
    if (n) return n;
    uint64_t fresh = 0;
    if (getrandom(&fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
        fresh = weft__now_ns() ^ ((uint64_t)getpid() << 32);
    fresh |= 1;
    uint64_t zero = 0;
    return atomic_compare_exchange_strong(&process_nonce, &zero, fresh) ? fresh : zero;
}

static void fill_meta(arg_hdr *h, const weft_array *a, uint32_t mode, weft_order order)
{
    memset(h, 0, sizeof *h);
    h->magic = ARG_MAGIC;
    h->mode = mode;
    h->dtype = (uint32_t)a->dtype;
    h->endian = (uint32_t)a->endian;
    h->order = (uint32_t)order;
    h->ndim = (uint32_t)a->ndim;
    for (size_t i = 0; i < a->ndim; i++) {
        h->shape[i] = a->shape[i];
        h->strides[i] = a->strides[i];
    }
    h->nbytes = a->nbytes;
}

/* The order `a` is contiguous in, or -1. */
static int contiguous_order(const weft_array *a)
{
    if (weft_array_is_contiguous(a, WEFT_ORDER_C)) return WEFT_ORDER_C;
    if (weft_array_is_contiguous(a, WEFT_ORDER_F)) return WEFT_ORDER_F;
    return -1;
}

int weft_array_arg_create(weft_executor *ex, const weft_array *a,
                          const weft_array_arg_options *opts, weft_array_arg **out)
{
    const char *fn = "weft_array_arg_create";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", fn);
    *out = NULL;
    if (!ex || !a) return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    size_t threshold = opts && opts->threshold ? opts->threshold : DEFAULT_THRESHOLD;
    unsigned caps = weft__executor_caps(ex);
    weft_array_arg *g = calloc(1, sizeof *g);
    if (!g) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    int rc = 0;
    arg_hdr h;
    if (caps & WEFT__CAP_SHARED_MEMORY) {
        g->mode = MODE_REF;
        rc = weft_array_view(a, a->ndim, a->shape, a->strides, 0, &g->view);
        if (rc) goto fail;
        fill_meta(&h, a, MODE_REF, WEFT_ORDER_C);
        h.pid = (uint64_t)getpid();
        h.nonce = nonce();
        h.view = (uint64_t)(uintptr_t)g->view;
        g->len = sizeof h;
    } else if ((caps & WEFT__CAP_SAME_HOST) && a->nbytes >= threshold) {
        g->mode = MODE_SHM;
        int ord = contiguous_order(a);
        weft_shm *shm = weft__array_shm(a);
        if (shm && ord >= 0) {
            /* the array's own shared memory: nothing is copied */
            rc = weft_array_view(a, a->ndim, a->shape, a->strides, 0, &g->view);
            if (rc) goto fail;
        } else {
            /* one copy into a region of the arg's own, in a's order if it has one */
            weft_array_options co = {ord >= 0 ? (weft_order)ord : WEFT_ORDER_C, a->endian,
                                     WEFT_ARRAY_SHARED};
            rc = weft_array_copy(a, &co, &g->view);
            if (rc) goto fail;
            g->own_shm = weft__array_shm(g->view);
            shm = g->own_shm;
            ord = co.order;
        }
        fill_meta(&h, g->view, MODE_SHM, (weft_order)ord);
        rc = weft_shm_token(shm, &h.token);
        if (rc) goto fail;
        h.offset = (uint64_t)(g->view->data - (char *)weft_shm_ptr(shm));
        g->len = sizeof h;
    } else {
        g->mode = MODE_INLINE;
        int ord = contiguous_order(a);
        fill_meta(&h, a, MODE_INLINE, ord >= 0 ? (weft_order)ord : WEFT_ORDER_C);
        h.offset = INLINE_OFF;
        g->len = INLINE_OFF + a->nbytes;
    }
    g->bytes = calloc(1, g->len);
    if (!g->bytes) {
        rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
        goto fail;
    }
    memcpy(g->bytes, &h, sizeof h);
    if (g->mode == MODE_INLINE && a->nbytes) {
        if (contiguous_order(a) >= 0) {
            memcpy(g->bytes + INLINE_OFF, a->data, a->nbytes);
        } else {
            weft_array *c = NULL;
            weft_array_options co = {WEFT_ORDER_C, a->endian, 0};
            rc = weft_array_copy(a, &co, &c);
            if (rc) goto fail;
            memcpy(g->bytes + INLINE_OFF, c->data, a->nbytes);
            weft_array_destroy(c);
        }
    }
    *out = g;
    return 0;
fail:
    weft_array_arg_destroy(g);
    return rc;
}

int weft_array_arg_bytes(const weft_array_arg *arg, const void **data, size_t *len)
{
    if (!arg || !data || !len) return weft__err(WEFT_EINVAL, "weft_array_arg_bytes: NULL argument");
    *data = arg->bytes;
    *len = arg->len;
    return 0;
}

bool weft_array_arg_shared(const weft_array_arg *arg)
{
    return arg && arg->mode == MODE_SHM;
}

int weft_array_arg_destroy(weft_array_arg *arg)
{
    if (!arg) return 0;
    weft_array_destroy(arg->view); /* frees own_shm with the last reference */
    free(arg->bytes);
    free(arg);
    return 0;
}

/* ---- Kept mappings (MODE_SHM in a worker process) ----
 * Mapping a region anew for every task costs a page-table fill of the
 * whole array per task and, on VMs that shadow page tables, a fault per
 * page at its first touch: for a 64 MiB array far more than a task's own
 * pass over it. A worker process therefore keeps the arrays it opened
 * from MODE_SHM arguments, up to ARG_KEEP of them (the least recently used
 * goes), and gives each task a view of the kept one. An entry is keyed by
 * the header (token with its random key, offset, dtype, shape, order) and
 * by the identity of the owner's memfd (st_dev and st_ino through
 * /proc/<owner>/fd/<n>), checked for every entry at every open: an entry
 * whose region the owner has let go of (the fd closed, or now another
 * file) is dropped then, so a worker holds a destroyed region's memory at
 * most until its next open of an array argument (or its exit). In the
 * program itself nothing is kept (its own args are rare there, and tests
 * count its mappings). */
#define ARG_KEEP 4
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

typedef struct kept_arg {
    weft_array *a; /* NULL: a free slot */
    arg_hdr h;
    dev_t dev;
    ino_t ino;
    uint64_t used;
} kept_arg;

static kept_arg kept[ARG_KEEP];
static uint64_t kept_clock;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;

/* The identity of the memfd a token names, now: false if it is gone. */
static bool region_id(const weft_ipc_token *t, dev_t *dev, ino_t *ino)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)t->pid, (int)t->fd);
    struct stat st;
    if (stat(path, &st) != 0 || (uint64_t)st.st_size != t->size) return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

static void kept_drop(kept_arg *k)
{
    weft_array_destroy(k->a); /* unmapped now, or by the last task's view */
    memset(k, 0, sizeof *k);
}

/* A view of the kept array for `h`, after dropping the entries whose
 * regions are gone: 0 and *out, or 1 (not kept: attach it). */
static int kept_find(const arg_hdr *h, weft_array **out)
{
    int rc = 1;
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < ARG_KEEP; i++) {
        kept_arg *k = &kept[i];
        if (!k->a) continue;
        dev_t dev;
        ino_t ino;
        if (!region_id(&k->h.token, &dev, &ino) || dev != k->dev || ino != k->ino) {
            kept_drop(k);
            continue;
        }
        if (rc == 1 && memcmp(&k->h, h, sizeof *h) == 0) {
            k->used = ++kept_clock;
            rc = weft_array_view(k->a, k->a->ndim, k->a->shape, k->a->strides, 0, out);
        }
    }
    pthread_mutex_unlock(&kept_mu);
    return rc;
}

/* Keeps `a` (just attached for `h`, whose region was (dev, ino) before
 * the attach) if its region is still that one; *out is a view of it, or
 * `a` itself when it is not kept. */
static int kept_add(const arg_hdr *h, dev_t dev, ino_t ino, weft_array *a, weft_array **out)
{
    dev_t d2;
    ino_t i2;
    if (!region_id(&h->token, &d2, &i2) || d2 != dev || i2 != ino) {
        *out = a;
        return 0;
    }
    pthread_mutex_lock(&kept_mu);
    kept_arg *slot = &kept[0];
    for (int i = 0; i < ARG_KEEP; i++) {
        if (!kept[i].a) {
            slot = &kept[i];
            break;
        }
        if (kept[i].used < slot->used) slot = &kept[i];
    }
    if (slot->a) kept_drop(slot);
    int rc = weft_array_view(a, a->ndim, a->shape, a->strides, 0, out);
    if (rc == 0) {
        slot->a = a;
        slot->h = *h;
        slot->dev = dev;
        slot->ino = ino;
        slot->used = ++kept_clock;
    }
    pthread_mutex_unlock(&kept_mu);
    if (rc) *out = a; /* not kept (no memory for the view) */
    return 0;
}

int weft_array_arg_open(const void *in, size_t len, weft_array **out)
{
    const char *fn = "weft_array_arg_open";
    if (!out) return weft__err(WEFT_EINVAL, "%s: NULL out", fn);
    *out = NULL;
    arg_hdr h;
    if (!in || len < sizeof h) return weft__err(WEFT_EINVAL, "%s: not an array argument", fn);
    memcpy(&h, in, sizeof h);
    if (h.magic != ARG_MAGIC || h.ndim > WEFT_ARRAY_MAX_NDIM || h.order > WEFT_ORDER_F ||
        (h.endian != WEFT_ENDIAN_LITTLE && h.endian != WEFT_ENDIAN_BIG))
        return weft__err(WEFT_EINVAL, "%s: not an array argument", fn);
    size_t shape[WEFT_ARRAY_MAX_NDIM], size, nbytes;
    for (uint32_t i = 0; i < h.ndim; i++) shape[i] = (size_t)h.shape[i];
    int rc = weft__array_count((weft_dtype)h.dtype, h.ndim, shape, &size, &nbytes, fn);
    if (rc) return rc;
    if (nbytes != h.nbytes) return weft__err(WEFT_EINVAL, "%s: inconsistent sizes", fn);
    switch (h.mode) {
    case MODE_REF: {
        if (h.pid != (uint64_t)getpid() || h.nonce != nonce())
            return weft__err(WEFT_EINVAL,
                             "%s: the argument was made for an executor of another "
                             "process (make it with the executor that runs the task)",
                             fn);
        const weft_array *v = (const weft_array *)(uintptr_t)h.view;
        return weft_array_view(v, v->ndim, v->shape, v->strides, 0, out);
    }
    case MODE_SHM: {
        dev_t dev = 0;
        ino_t ino = 0;
        bool keep = weft__worker_process && region_id(&h.token, &dev, &ino);
        if (keep && kept_find(&h, out) == 0) return 0;
        weft_shm *shm = NULL;
        rc = weft_shm_attach(&h.token, &shm);
        if (rc) return rc;
        if (h.offset > weft_shm_size(shm) || weft_shm_size(shm) - h.offset < nbytes) {
            weft_shm_destroy(shm);
            return weft__err(WEFT_EINVAL, "%s: the array does not fit its region", fn);
        }
        weft_array *a = NULL;
        rc = weft__array_from_shm(shm, (size_t)h.offset, (weft_dtype)h.dtype, h.ndim, shape,
                                  (weft_order)h.order, (weft_endian)h.endian, &a);
        if (rc) return rc;
        if (!keep) {
            *out = a;
            return 0;
        }
        /* its page tables filled at once, not by a fault per page in the task */
        uintptr_t lo = (uintptr_t)a->data & ~(uintptr_t)4095;
        if (nbytes) madvise((void *)lo, (uintptr_t)a->data + nbytes - lo, MADV_POPULATE_READ);
        return kept_add(&h, dev, ino, a, out);
    }
    case MODE_INLINE: {
        if (h.offset != INLINE_OFF || len < INLINE_OFF || len - INLINE_OFF < nbytes)
            return weft__err(WEFT_EINVAL, "%s: truncated array argument", fn);
        const char *data = (const char *)in + INLINE_OFF;
        weft_array_options o = {(weft_order)h.order, (weft_endian)h.endian, 0};
        size_t align = weft_dtype_size((weft_dtype)h.dtype);
        if (align > 16) align = 16;
        weft_array *w = NULL;
        rc = weft_array_wrap((void *)(uintptr_t)data, (weft_dtype)h.dtype, h.ndim, shape, &o, &w);
        if (rc) return rc;
        w->store->writable = false; /* the task's input bytes */
        if ((uintptr_t)data % align == 0) {
            *out = w;
            return 0;
        }
        rc = weft_array_copy(w, &o, out);
        weft_array_destroy(w);
        return rc;
    }
    default:
        return weft__err(WEFT_EINVAL, "%s: not an array argument", fn);
    }
}

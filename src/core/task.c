/* task.c : the context a task runs in: output, failure, seed, worker. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Heap outputs carry their length in a header before the bytes, so a map
 * result entry can stay 16 bytes and still hold any length. The header's
 * second word is 0 for a malloc'd block, or the length of the mapping of a
 * big one (BIG_OUT bytes or more): big outputs are mappings of their own
 * (huge pages where the kernel gives them), and the last one freed is
 * kept, up to SPARE_MAX, for the next big output -- a stream of large
 * results (a worker process's 64 MiB output read back, a large map
 * result) then lands in memory already faulted in, instead of paying a
 * page fault and the zeroing of every page each time, which costs as much
 * as the copy itself. */
#define BIG_OUT ((size_t)4 << 20)
#define BIG_ALIGN ((size_t)2 << 20)
#define SPARE_MAX ((size_t)256 << 20)
static _Atomic(unsigned char *) out_spare; /* a freed big block, or NULL */

static size_t map_len_of(unsigned char *p)
{
    /* atomic: a shared block's word is also changed by the program's cache */
    return __atomic_load_n((size_t *)(void *)p + 1, __ATOMIC_ACQUIRE);
}

static void big_unmap(unsigned char *p)
{
    munmap(p, map_len_of(p));
}

void *weft__out_alloc(size_t len)
{
    if (len > SIZE_MAX - WEFT__OUT_HDR - BIG_ALIGN) return NULL;
    unsigned char *p;
    size_t m = 0;
    if (len >= BIG_OUT) {
        size_t want = (len + WEFT__OUT_HDR + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1);
        p = atomic_exchange_explicit(&out_spare, NULL, memory_order_acquire);
        if (p && (map_len_of(p) < want || map_len_of(p) / 4 > want)) {
            /* not this size: give it back (or drop it if another came) */
            unsigned char *q = atomic_exchange_explicit(&out_spare, p, memory_order_acq_rel);
            if (q) big_unmap(q);
            p = NULL;
        }
        if (p) {
            m = map_len_of(p);
        } else {
            void *r = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (r == MAP_FAILED) return NULL;
            madvise(r, want, MADV_HUGEPAGE); /* fewer faults; a hint only */
            p = r;
            m = want;
        }
    } else {
        p = malloc(len + WEFT__OUT_HDR);
        if (!p) return NULL;
    }
    memcpy(p, &len, sizeof len);
    memcpy(p + sizeof len, &m, sizeof m);
    return p + WEFT__OUT_HDR;
}

void weft__out_free(void *out)
{
    if (!out) return;
    unsigned char *p = (unsigned char *)out - WEFT__OUT_HDR;
    size_t m = map_len_of(p);
    if (!m) {
        free(p);
        return;
    }
    if (m & WEFT__OUT_SHARED) { /* the writer may reuse it now (internal.h) */
        size_t *w = (size_t *)(void *)p;
        size_t mine = __atomic_load_n(&w[1], __ATOMIC_ACQUIRE);
        /* the mapping stays this holder's until HELD is cleared below */
        __atomic_store_n(&w[0], SIZE_MAX, __ATOMIC_RELEASE);
        size_t cur = mine;
        while (cur & WEFT__OUT_KEPT) {
            if (__atomic_compare_exchange_n(&w[1], &cur, cur & ~WEFT__OUT_HELD, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return; /* the program's cache keeps the mapping */
            if ((cur | WEFT__OUT_KEPT | WEFT__OUT_HELD) != (mine | WEFT__OUT_KEPT | WEFT__OUT_HELD))
                return; /* another output is in it now: the mapping is the cache's */
        }
        munmap(p, mine & WEFT__OUT_LEN_MASK); /* not kept, or the cache let go of it */
        return;
    }
    if (m <= SPARE_MAX) p = atomic_exchange_explicit(&out_spare, p, memory_order_acq_rel);
    if (p) big_unmap(p); /* the one it replaced, or one too big to keep */
}

void weft__out_shared_drop(void *map, size_t map_len)
{
    size_t *w = map;
    size_t cur = __atomic_load_n(&w[1], __ATOMIC_ACQUIRE);
    while ((cur & WEFT__OUT_KEPT) && (cur & WEFT__OUT_HELD))
        if (__atomic_compare_exchange_n(&w[1], &cur, cur & ~WEFT__OUT_KEPT, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return; /* an output in it is held: its holder unmaps it */
    munmap(map, map_len);
}

void weft__out_trim(void)
{
    unsigned char *p = atomic_exchange_explicit(&out_spare, NULL, memory_order_acquire);
    if (p) big_unmap(p);
}

size_t weft__out_len(const void *out)
{
    size_t len;
    memcpy(&len, (const unsigned char *)out - WEFT__OUT_HDR, sizeof len);
    return len;
}

void *weft_ctx_output(weft_ctx *ctx, size_t len)
{
    if (!ctx) return NULL;
    if (ctx->out_heap) {
        weft__out_free(ctx->out);
        ctx->out_heap = false;
    }
    ctx->out = NULL;
    ctx->out_len = 0;
    void *p;
    if (ctx->alloc_out) {
        p = ctx->alloc_out(ctx, len);
        if (!p) return NULL;
    } else if (len <= ctx->inl_cap) {
        p = ctx->inl;
    } else {
        p = weft__out_alloc(len);
        if (!p) return NULL;
        ctx->out_heap = true;
    }
    ctx->out = p;
    ctx->out_len = len;
    return p;
}

int weft_ctx_set_output(weft_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (!data && len)) return weft__err(WEFT_EINVAL, "weft_ctx_set_output: NULL argument");
    void *p = weft_ctx_output(ctx, len);
    if (!p) return weft__err(WEFT_ENOMEM, "weft_ctx_set_output: cannot allocate %zu bytes", len);
    if (len) memmove(p, data, len);
    return 0;
}

int weft_ctx_fail(weft_ctx *ctx, int code, const char *fmt, ...)
{
    if (code >= 0) code = WEFT_ETASK;
    if (!ctx) return code;
    free(ctx->msg);
    ctx->msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        ctx->msg = weft__vasprintf(fmt, ap);
        va_end(ap);
    }
    return code;
}

uint64_t weft_ctx_seed(const weft_ctx *ctx)
{
    return ctx ? ctx->seed : 0;
}

uint64_t weft_ctx_index(const weft_ctx *ctx)
{
    return ctx ? ctx->index : 0;
}

int weft_ctx_worker(const weft_ctx *ctx)
{
    return ctx ? ctx->worker : -1;
}

int weft_ctx_attempt(const weft_ctx *ctx)
{
    return ctx ? ctx->attempt : 0;
}

const void *weft_ctx_worker_state(const weft_ctx *ctx, size_t *len)
{
    if (len) *len = ctx ? ctx->wstate_len : 0;
    return ctx ? ctx->wstate : NULL;
}

weft_executor *weft_ctx_executor(const weft_ctx *ctx)
{
    return ctx ? ctx->ex : NULL;
}

void weft__ctx_clear(weft_ctx *ctx)
{
    if (ctx->out_heap) weft__out_free(ctx->out);
    ctx->out = NULL;
    ctx->out_len = 0;
    ctx->out_heap = false;
    free(ctx->msg);
    ctx->msg = NULL;
}

int weft__ctx_run(weft_ctx *ctx, weft_task_fn fn, const void *in, size_t len, int retries)
{
    int rc = 0;
    unsigned gen = 0;
    for (int attempt = 0;; attempt++) {
        ctx->attempt = attempt;
        gen = weft__err_gen;
        rc = fn(ctx, in, len);
        if (rc > 0) rc = WEFT_ETASK;
        if (rc == 0 || attempt >= retries) break;
        weft__ctx_clear(ctx);
    }
    if (rc == 0 && ctx->msg) {
        free(ctx->msg);
        ctx->msg = NULL;
    } else if (WEFT__UNLIKELY(rc < 0 && !ctx->msg && weft__err_gen != gen)) {
        /* The task failed without a message of its own after a weft call
         * failed in it (e.g. weft_args_get of a missing argument returned
         * WEFT_EINVAL and the task passed the code on): that call's message
         * says why, so it becomes the task's. */
        ctx->msg = strdup(weft_last_error());
    }
    return rc;
}

bool weft__worker_process;

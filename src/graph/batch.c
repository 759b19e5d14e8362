/* batch.c : weft_parallel, joblib's Parallel(n_jobs)(delayed(f)(x) ...).
 *
 * Not a scheduler of its own: a batch is one weft_map_bufs, so it gets
 * map's automatic chunking ("auto-batched"), ordered results, stop on
 * error and progress for free. A batch whose calls all name one task maps
 * that task over the inputs as they are (no copy). A heterogeneous batch
 * maps a trampoline task, registered as "weft.parallel.call", over small
 * call records: in one address space (serial, threads) a record holds the
 * task's pointer and borrows the input; across processes it holds the
 * task's registered name and a copy of the input, and the trampoline looks
 * the name up in the worker (with a one-entry per-thread cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "graph/graph_internal.h"

#define CALL_MAGIC 0x7763616cu /* "wcal" */
#define KIND_PTR 1u
#define KIND_NAME 2u

typedef struct call_rec {
    uint32_t magic;
    uint32_t kind;
    uint64_t name_len; /* KIND_NAME: name bytes follow, then the input */
    weft_task_fn fn;   /* KIND_PTR */
    const void *in;    /* KIND_PTR */
    uint64_t len;      /* KIND_PTR: input length */
} call_rec;

static __thread char T_name[128];
static __thread weft_task_fn T_fn;

static int parallel_call(weft_ctx *ctx, const void *in, size_t len)
{
    call_rec r;
    if (len < sizeof r)
        return weft_ctx_fail(ctx, WEFT_EINVAL,
                             "weft_parallel: the call record is cut short (%zu of %zu bytes)", len,
                             sizeof r);
    memcpy(&r, in, sizeof r);
    if (r.magic != CALL_MAGIC)
        return weft_ctx_fail(ctx, WEFT_EINVAL,
                             "weft_parallel: the input is not a call record (the task "
                             "weft.parallel.call was called directly?)");
    if (r.kind == KIND_PTR) return r.fn(ctx, r.in, (size_t)r.len);
    if (r.kind != KIND_NAME || r.name_len == 0 || r.name_len >= sizeof T_name ||
        r.name_len > len - sizeof r)
        return weft_ctx_fail(ctx, WEFT_EINVAL,
                             "weft_parallel: the call record's task name (%llu bytes) does not "
                             "fit its %zu bytes",
                             (unsigned long long)r.name_len, len);
    const char *name = (const char *)in + sizeof r;
    size_t nl = (size_t)r.name_len;
    size_t off = sizeof r + ((nl + 15u) & ~(size_t)15u);
    if (off > len)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "weft_parallel: the call record is cut short");
    if (!T_fn || strncmp(T_name, name, nl) != 0 || T_name[nl] != '\0') {
        char buf[sizeof T_name];
        memcpy(buf, name, nl);
        buf[nl] = '\0';
        weft_task_fn fn;
        int rc = weft_task_lookup(buf, &fn);
        if (rc) return weft_ctx_fail(ctx, rc, "weft_parallel: %s", weft_last_error());
        memcpy(T_name, buf, nl + 1);
        T_fn = fn;
    }
    return T_fn(ctx, (const unsigned char *)in + off, len - off);
}
WEFT_TASK_REGISTER_AS(parallel_call, "weft.parallel.call");

int weft_n_jobs_workers(int n_jobs, int *workers)
{
    if (!workers) return weft__err(WEFT_EINVAL, "weft_n_jobs_workers: workers is NULL");
    if (n_jobs >= 0) {
        *workers = n_jobs;
    } else {
        int w = weft__cpu_count() + 1 + n_jobs;
        *workers = w < 1 ? 1 : w;
    }
    return 0;
}

int weft_parallel(const weft_call *calls, size_t n, const weft_parallel_options *opts,
                  weft_results **out)
{
    weft_parallel_options local_opts;
    if (out) *out = NULL;
    if (!out || (!calls && n))
        return weft__err(WEFT_EINVAL, "weft_parallel: %s is NULL", !out ? "out" : "calls");
    int orc = WEFT__OPTS_READ(local_opts, opts, "weft_parallel: weft_parallel_options");
    if (orc) return orc;
    opts = &local_opts;
    if (opts->flags & ~(unsigned)(WEFT_MAP_STOP_ON_ERROR | WEFT_MAP_MEMO))
        return weft__err(WEFT_EINVAL, "weft_parallel: unknown flags 0x%x", opts->flags);
    if (opts->retries < 0)
        return weft__err(WEFT_EINVAL, "weft_parallel: negative retries %d", opts->retries);
    bool same = true;
    for (size_t i = 0; i < n; i++) {
        if (!calls[i].fn) return weft__err(WEFT_EINVAL, "weft_parallel: calls[%zu].fn is NULL", i);
        if (!calls[i].in && calls[i].len)
            return weft__err(WEFT_EINVAL, "weft_parallel: calls[%zu].in is NULL", i);
        if (calls[i].fn != calls[0].fn) same = false;
    }
    weft_executor *ex = opts->executor;
    bool own = false;
    if (!ex) {
        weft_options eo = {0};
        /* joblib's n_jobs=1 runs in order on the calling thread: choose the
         * serial level, as a user would (a choice, not a branch on it) */
        eo.backend = opts->n_jobs == 1 ? WEFT_BACKEND_SERIAL : opts->backend;
        weft_n_jobs_workers(opts->n_jobs, &eo.workers);
        int rc = weft_executor_create(&eo, &ex);
        if (rc) return rc;
        own = true;
    }
    /* memoized calls are keyed by the bytes a task gets: records by name,
     * never by pointer */
    bool one_space = (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) &&
                     !weft__graph_force_copy && !(opts->flags & WEFT_MAP_MEMO);
    weft_buf *bufs = malloc((n ? n : 1) * sizeof *bufs);
    unsigned char *pack = NULL;
    int rc = 0;
    if (!bufs) {
        rc = weft__err(WEFT_ENOMEM, "weft_parallel: out of memory");
        goto done;
    }
    weft_task_fn fn = n ? calls[0].fn : parallel_call;
    if (same) {
        for (size_t i = 0; i < n; i++) bufs[i] = (weft_buf){calls[i].in, calls[i].len};
    } else if (one_space) {
        call_rec *recs = malloc(n * sizeof *recs);
        if (!recs) {
            rc = weft__err(WEFT_ENOMEM, "weft_parallel: out of memory");
            goto done;
        }
        pack = (unsigned char *)recs;
        for (size_t i = 0; i < n; i++) {
            recs[i] = (call_rec){CALL_MAGIC, KIND_PTR, 0, calls[i].fn, calls[i].in, calls[i].len};
            bufs[i] = (weft_buf){&recs[i], sizeof recs[i]};
        }
        fn = parallel_call;
    } else {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            const char *name = weft_task_name(calls[i].fn);
            if (!name) {
                rc = weft__err(WEFT_ENOTREG,
                               "weft_parallel: calls[%zu] names an unregistered task, which "
                               "the %s backend cannot run",
                               i, weft_backend_name(weft_executor_backend(ex)));
                goto done;
            }
            total += sizeof(call_rec) + ((strlen(name) + 15u) & ~(size_t)15u) +
                     ((calls[i].len + 15u) & ~(size_t)15u);
        }
        pack = calloc(1, total ? total : 1); /* zeroed padding: stable memo keys */
        if (!pack) {
            rc = weft__err(WEFT_ENOMEM, "weft_parallel: out of memory");
            goto done;
        }
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            const char *name = weft_task_name(calls[i].fn);
            size_t nl = strlen(name);
            call_rec r = {CALL_MAGIC, KIND_NAME, nl, NULL, NULL, calls[i].len};
            unsigned char *p = pack + off;
            memcpy(p, &r, sizeof r);
            memcpy(p + sizeof r, name, nl);
            size_t in_off = sizeof r + ((nl + 15u) & ~(size_t)15u);
            if (calls[i].len) memcpy(p + in_off, calls[i].in, calls[i].len);
            bufs[i] = (weft_buf){p, in_off + calls[i].len};
            off += in_off + ((calls[i].len + 15u) & ~(size_t)15u);
        }
        fn = parallel_call;
    }
    weft_map_options mo = {0};
    mo.flags = opts->flags;
    mo.chunk_size = opts->batch_size;
    mo.retries = opts->retries;
    mo.progress = opts->progress;
    rc = weft_map_bufs(ex, fn, bufs, n, &mo, out);
done:
    free(bufs);
    free(pack);
    if (own) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", weft_last_error());
        weft_executor_destroy(ex);
        if (rc) weft__err(rc, "%s", keep);
    }
    return rc;
}

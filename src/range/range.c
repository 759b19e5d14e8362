/* range.c : weft_parallel_for and weft_parallel_reduce -- checks, the leaf
 * layout, and the level: serial walks the tree inline (tree.c), threads
 * hands nodes out through the pool's deques (pool.c), processes and mpi
 * send pieces to registered bodies (pieces.c). */
#include <stdlib.h>

#include "core/backend.h"
#include "range/range_internal.h"

static int setup(weft__rloop *L, weft_executor *ex, int64_t begin, int64_t end,
                 const weft_range_options *opts, const char *who)
{
    if (!ex) return weft__err(WEFT_EINVAL, "%s: NULL executor", who);
    weft_range_options o = {0};
    if (opts) o = *opts;
    if (o.grain < 0)
        return weft__err(WEFT_EINVAL, "%s: negative grain %lld", who, (long long)o.grain);
    if (o.partitioner != WEFT_PARTITION_AUTO && o.partitioner != WEFT_PARTITION_STATIC &&
        o.partitioner != WEFT_PARTITION_DYNAMIC)
        return weft__err(WEFT_EINVAL, "%s: unknown partitioner %d", who, (int)o.partitioner);
    if (weft__executor_closed(ex))
        return weft__err(WEFT_ECLOSED, "%s: the executor is shut down", who);
    memset(L, 0, sizeof *L);
    L->ex = ex;
    L->begin = begin;
    L->part = o.partitioner;
    L->cancel = o.cancel;
    atomic_init(&L->err, 0);
    weft__rloop_layout(L, end > begin ? (uint64_t)end - (uint64_t)begin : 0, o.grain);
    int workers = weft_executor_workers(ex), d = 0;
    while (d < 62 && ((int64_t)1 << d) < workers) d++;
    L->static_depth = d;
    return 0;
}

/* Runs the loop set up in L on its level. */
static int run(weft__rloop *L, size_t arg_size, void *out, const char *who)
{
    unsigned caps = weft__executor_caps(L->ex);
    int rc;
    if (caps & WEFT__CAP_INLINE) {
        _Alignas(WEFT__RANGE_ALIGN) unsigned char buf[WEFT__RANGE_STACK_SCRATCH];
        unsigned char *scratch = buf;
        size_t need = L->reduce ? (size_t)weft__rloop_levels(0, L->nleaf) * L->stride : 0;
        if (need > sizeof buf && !(scratch = aligned_alloc(WEFT__RANGE_ALIGN, need)))
            return weft__err(WEFT_ENOMEM, "%s: out of memory", who);
        weft__rloop_walk(L, 0, L->nleaf, out, scratch);
        if (scratch != buf) free(scratch);
        rc = atomic_load(&L->err);
    } else if (caps & WEFT__CAP_NAMED_TASKS) {
        return weft__range_remote_run(L, arg_size, out); /* sets its own message */
    } else {
        rc = weft__range_pool_run(L, out);
        if (rc && !atomic_load(&L->err)) return rc; /* could not start: message set */
    }
    if (rc) return weft__err(rc, "%s: %s", who, L->msg);
    if (weft__executor_cancelling(L->ex))
        return weft__err(WEFT_ECANCELLED, "%s: the executor was shut down with cancel", who);
    return 0;
}

int weft_parallel_for(weft_executor *ex, int64_t begin, int64_t end, weft_range_fn body, void *arg,
                      const weft_range_options *opts)
{
    static const char who[] = "weft_parallel_for";
    weft__rloop L;
    if (!body) return weft__err(WEFT_EINVAL, "%s: NULL body", who);
    int rc = setup(&L, ex, begin, end, opts, who);
    if (rc) return rc;
    if (L.n == 0) return 0;
    L.body = body;
    L.arg = arg;
    return run(&L, opts ? opts->arg_size : 0, NULL, who);
}

int weft_parallel_reduce(weft_executor *ex, int64_t begin, int64_t end, const void *identity,
                         size_t value_size, weft_range_reduce_fn body,
                         weft_range_combine_fn combine, void *arg, const weft_range_options *opts,
                         void *result)
{
    static const char who[] = "weft_parallel_reduce";
    weft__rloop L;
    if (!body || !combine || !identity || !result || value_size == 0 ||
        value_size > ((size_t)1 << 30))
        return weft__err(WEFT_EINVAL, "%s: %s", who,
                         !body       ? "NULL body"
                         : !combine  ? "NULL combine"
                         : !identity ? "NULL identity"
                         : !result   ? "NULL result"
                                     : "value_size must be 1 to 2^30 bytes");
    int rc = setup(&L, ex, begin, end, opts, who);
    if (rc) return rc;
    if (L.n == 0) {
        memcpy(result, identity, value_size);
        return 0;
    }
    L.reduce = true;
    L.rbody = body;
    L.combine = combine;
    L.arg = arg;
    L.identity = identity;
    L.vsize = value_size;
    L.stride = (value_size + WEFT__RANGE_ALIGN - 1) & ~(size_t)(WEFT__RANGE_ALIGN - 1);
    /* the value is built in an aligned buffer, copied out on success */
    _Alignas(WEFT__RANGE_ALIGN) unsigned char small[256];
    unsigned char *val = small;
    if (L.stride > sizeof small && !(val = aligned_alloc(WEFT__RANGE_ALIGN, L.stride)))
        return weft__err(WEFT_ENOMEM, "%s: out of memory", who);
    rc = run(&L, opts ? opts->arg_size : 0, val, who);
    if (rc == 0) memcpy(result, val, value_size);
    if (val != small) free(val);
    return rc;
}

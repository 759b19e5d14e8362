/* result.c : the futures of items run in another process (processes, mpi):
 * started when sent, completed from the result that comes back. */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "backends/remote/remote.h"
#include "core/exec_internal.h"

int weft__rres_copy(const weft__rres *r, void *dst)
{
    if (!r->out_len) return 0;
    if (r->out) {
        memcpy(dst, r->out, r->out_len);
        return 0;
    }
    size_t done = 0;
    while (done < r->out_len) {
        struct iovec l = {(char *)dst + done, r->out_len - done};
        struct iovec rm = {(void *)(uintptr_t)(r->remote + done), r->out_len - done};
        ssize_t n = process_vm_readv(r->pid, &l, 1, &rm, 1, 0);
        if (n <= 0) return WEFT_ECRASHED;
        done += (size_t)n;
    }
    return 0;
}

bool weft__exec_start_remote(weft_executor *ex, weft_future *f, int lane, weft__ritem *it)
{
    uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (WEFT__UNLIKELY(atomic_load_explicit(&ex->cancelling, memory_order_relaxed)))
        weft__future_complete(f, WEFT_FUTURE_CANCELLED);
    if (!weft__future_start(f)) {
        weft__exec_drop_cancelled(ex, f, lane);
        return false;
    }
    it->fn = f->fn;
    it->in = f->in;
    it->len = f->in_len;
    it->index = f->index;
    it->seed = weft__seed_for(ex->seed, f->index);
    it->retries = (st & WEFT__ST_DIRTY) ? f->retries : 0;
    it->timeout = 0;
    return true;
}

void weft__exec_complete_remote(weft_executor *ex, int lane, weft_future *f, const weft__rres *r)
{
    uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (weft__executor_tracing(ex) && r->t1)
        weft__trace_record(ex, lane, f->fn, r->t0, r->t1, r->err, 1);
    if ((st & WEFT__ST_IN_HEAP) && f->in) {
        free((void *)f->in);
        f->in = NULL;
    }
    uint32_t final;
    int err = r->err;
    const char *msg = r->msg;
    if (err == 0) {
        void *out = f->out_inl;
        final = WEFT_FUTURE_DONE;
        if (r->out_len > WEFT__FUT_OUT_INLINE) {
            if (r->take && *r->take) { /* mpi: keep the received block, no copy */
                f->out = *r->take;
                f->out_len = r->out_len;
                *r->take = NULL;
                weft__future_complete(f, final | WEFT__ST_OUT_HEAP);
                weft_future_release(f);
                return;
            }
            out = weft__out_alloc(r->out_len);
            final |= WEFT__ST_OUT_HEAP;
        }
        if (out && weft__rres_copy(r, out) == 0) {
            f->out = out;
            f->out_len = r->out_len;
        } else {
            if (out && (final & WEFT__ST_OUT_HEAP)) weft__out_free(out);
            err = out ? WEFT_ECRASHED : WEFT_ENOMEM;
            msg = out ? "the output could not be read from the worker process"
                      : "out of memory for the task's output";
        }
    }
    if (err == WEFT_ECANCELLED && !msg) {
        final = WEFT_FUTURE_CANCELLED;
    } else if (err) {
        f->err = err;
        f->msg = msg ? strdup(msg) : NULL;
        final = WEFT_FUTURE_FAILED | WEFT__ST_DIRTY;
    }
    if (final == WEFT_FUTURE_CANCELLED)
        weft__future_cancel_taken(f); /* started when taken: complete() would not cancel it */
    else
        weft__future_complete(f, final);
    weft_future_release(f);
}

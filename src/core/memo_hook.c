/* memo_hook.c : the core's side of memoized calls (see memo_hook.h). */
#include "core/memo_hook.h"
#include "core/exec_internal.h"

static _Atomic(const weft__memo_hook *) hook;

void weft__memo_hook_set(const weft__memo_hook *h)
{
    atomic_store_explicit(&hook, h, memory_order_release);
}

weft_memo *weft__executor_memo(const weft_executor *ex)
{
    return ex ? ex->memo : NULL;
}

static const weft__memo_hook *get_hook(const weft_executor *ex, const char *name)
{
    const weft__memo_hook *h = atomic_load_explicit(&hook, memory_order_acquire);
    if (!ex->memo || !h) {
        weft__err(WEFT_EINVAL,
                  "%s: the call asks for the memo but the executor has none (set "
                  "weft_options.memo, with the options' size from WEFT_OPTIONS_INIT)",
                  name);
        return NULL;
    }
    return h;
}

int weft__memo_submit(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                      const weft_submit_options *opts, weft_future **out)
{
    const weft__memo_hook *h = get_hook(ex, "weft_submit");
    if (!h) return WEFT_EINVAL;
    return h->submit(ex, ex->memo, fn, in, len, opts, out);
}

int weft__memo_map(weft_executor *ex, weft_task_fn fn, const weft_buf *items, size_t count,
                   const weft_map_options *opts, weft_results **out, const char *name)
{
    if (out) *out = NULL;
    if (!ex || !fn)
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", name, !ex ? "the executor" : "the task");
    const weft__memo_hook *h = get_hook(ex, name);
    if (!h) return WEFT_EINVAL;
    return h->map(ex, ex->memo, fn, items, count, opts, out, name);
}

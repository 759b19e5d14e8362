/* threads.c : the threads backend. Each lane is a worker thread of the
 * core's work-stealing pool (core/executor.c) and runs the futures it takes
 * right there; its initializer state lives in the lane. Submit needs no
 * fence where the asymmetric barrier is available (docs/design.md). */
#include "core/exec_internal.h"

static int threads_create(const weft_options *o, weft__shape *shape, void **data)
{
    (void)o;
    (void)data;
    shape->fence_free = true;
    return 0;
}

const weft__backend weft__backend_threads = {
    .kind = WEFT_BACKEND_THREADS,
    .name = "threads",
    .caps = WEFT__CAP_SHARED_MEMORY | WEFT__CAP_HELPS | WEFT__CAP_NESTED | WEFT__CAP_SAME_HOST,
    .create = threads_create,
    .lane_open = weft__lane_initializer,
    .run = weft__lane_run_here,
    .lane_close = weft__lane_finalizer,
};

/* serial.c : the serial backend. No lanes: submit runs the task on the
 * caller's thread, in order, so a program can be debugged step by step
 * (gdb, valgrind) with the same code it runs in parallel. The initializer
 * runs once at create on the caller's thread, the finalizer at destroy. */
#include "core/exec_internal.h"

static int serial_create(const weft_options *o, weft__shape *shape, void **data)
{
    (void)o;
    (void)data;
    shape->lanes = 0;
    shape->workers = 1;
    shape->trace_lanes = 1;
    return 0;
}

static void serial_run(weft_executor *ex, weft__lane *l, weft_future *f)
{
    weft__run_future(ex, f, 0, l->state, l->state_len);
}

const weft__backend weft__backend_serial = {
    .kind = WEFT_BACKEND_SERIAL,
    .name = "serial",
    .caps = WEFT__CAP_SHARED_MEMORY | WEFT__CAP_INLINE | WEFT__CAP_NESTED | WEFT__CAP_SAME_HOST,
    .create = serial_create,
    .lane_open = weft__lane_initializer,
    .run = serial_run,
    .lane_close = weft__lane_finalizer,
};

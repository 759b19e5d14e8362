/* mpi.c : the mpi backend behind the core's interface.
 *
 * An mpi executor has one lane, the dispatcher (dispatch.c): it takes the
 * futures and map chunks the core queues and sends them to the worker
 * ranks (worker.c), which weft_init turned into workers (init.c). The
 * worker count it reports is the number of worker ranks it uses. A build
 * without MPI compiles stub.c instead of init/dispatch/worker: its entry
 * points say the backend is not available (weft_backend_available). */
#include <stdlib.h>

#include "backends/mpi/mpi_internal.h"
#include "core/exec_internal.h"
#ifdef WEFT_HAVE_MPI
#include "backends/mpi/wire.h"
#endif

static int mpi_create(const weft_options *o, weft__shape *shape, void **data)
{
    int ranks = 0, threads = 0;
    bool procs = false;
    int rc = weft__mpi_check_create(o->workers, o->mpi.threads, o->mpi.rank_backend, &ranks,
                                    &threads, &procs);
    if (!rc) rc = weft__check_hooks_registered(o->initializer, o->finalizer, "mpi");
    if (rc) return rc;
    weft__mpi_data *d = calloc(1, sizeof *d);
    if (!d) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    d->ranks = ranks;
    d->threads = threads;
    d->procs = procs;
    shape->lanes = 1; /* the dispatcher */
    /* what runs at once: every local worker of every rank (map, ranges and
     * bags split their work by it), and a trace row for each */
    shape->workers = ranks * threads;
    shape->trace_lanes = ranks * weft__mpi_lanes_per_rank(ranks, threads);
    *data = d;
    return 0;
}

static int mpi_lane_open(weft_executor *ex, weft__lane *l, char **msg)
{
    (void)l;
    return weft__mpi_exec_open(ex, msg);
}

static void mpi_lane_main(weft_executor *ex, weft__lane *l)
{
    (void)l;
    weft__mpi_dispatch(ex);
}

static void mpi_lane_close(weft_executor *ex, weft__lane *l)
{
    (void)l;
    weft__mpi_exec_close(ex); /* finalizers on the worker ranks */
}

static void mpi_prepare(weft__init_ctx *c)
{
    /* Worker ranks are not marked remote_worker: the processes backend then
     * starts its fork server there too, before MPI_Init, so that an
     * executor in ranks x processes mode (opts.mpi.rank_backend) can fork
     * the rank's worker processes safely later. It costs one sleeping
     * process per rank. */
    int rank = weft__mpi_env_rank();
    if (rank >= 0) c->launched = true;
}

static int mpi_init(weft__init_ctx *c)
{
    if (!c->launched) return 0;
#ifdef WEFT_HAVE_MPI
    weft__mpi_create_local = c->create_executor;
#endif
    return weft__mpi_init(c->argc, c->argv); /* worker ranks never return */
}

static bool mpi_available(void)
{
    return weft__mpi_built();
}

const weft__backend weft__backend_mpi = {
    .kind = WEFT_BACKEND_MPI,
    .name = "mpi",
    .caps = WEFT__CAP_NAMED_TASKS,
    .available = mpi_available,
    .prepare = mpi_prepare,
    .init = mpi_init,
    .finalize = weft__mpi_finalize,
    .create = mpi_create,
    .lane_open = mpi_lane_open,
    .lane_main = mpi_lane_main,
    .lane_close = mpi_lane_close,
    .destroy = free,
};

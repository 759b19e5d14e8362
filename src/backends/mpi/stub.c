/* stub.c : the mpi backend's entry points in a build without MPI: the
 * backend is not available (weft_backend_available() is false), weft_init
 * does nothing MPI-related and weft_finalize is a no-op. */
#ifndef WEFT_HAVE_MPI
#include <stdlib.h>

#include "backends/mpi/mpi_internal.h"

bool weft__mpi_built(void)
{
    return false;
}

int weft__mpi_env_rank(void)
{
    return -1;
}

int weft__mpi_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int weft__mpi_check_create(int workers, int threads, weft_backend rank_backend, int *ranks,
                           int *threads_out, bool *procs_out)
{
    (void)workers;
    (void)threads;
    (void)rank_backend;
    *ranks = 0;
    *threads_out = 0;
    *procs_out = false;
    return weft__err(WEFT_ENOTSUP, "the 'mpi' backend is not available in this build (MPI was "
                                   "not found when weft was configured)");
}

int weft__mpi_exec_open(weft_executor *ex, char **msg)
{
    (void)ex;
    *msg = NULL;
    return WEFT_ENOTSUP;
}

void weft__mpi_dispatch(weft_executor *ex)
{
    (void)ex;
}

void weft__mpi_exec_close(weft_executor *ex)
{
    (void)ex;
}

int weft__mpi_finalize(void)
{
    return 0;
}
#endif

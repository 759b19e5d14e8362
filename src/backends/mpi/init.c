/* init.c : MPI start-up and shutdown for the mpi backend.
 *
 * weft_init() under mpirun (or srun, or MPICH's hydra) calls
 * weft__mpi_init() after the fork server is up (fork after MPI_Init is not
 * safe: Open MPI has threads and registered memory by then). It asks for
 * MPI_THREAD_SERIALIZED: on rank 0 several dispatcher threads (one per mpi
 * executor) make MPI calls, never two at once (weft__mpi_mu); on worker
 * ranks only the main thread does. MULTIPLE would make Open MPI take locks
 * inside every call for nothing. A program that calls MPI_Init_thread
 * itself before weft_init keeps its own level (it must be at least
 * SERIALIZED), and then finalizes MPI itself.
 *
 * Rank 0 returns to main; every other rank enters the worker loop and
 * never returns: it leaves through exit(0) after MPI_Finalize when rank 0
 * sends STOP from weft_finalize() (called by atexit if the program does
 * not). Every rank has forked the processes backend's fork server by then
 * (rank 0 for processes executors, worker ranks for ranks x processes).
 */
#ifdef WEFT_HAVE_MPI
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/mpi/wire.h"

static bool inited;         /* weft__mpi_init ran (MPI usable) */
static bool we_initialized; /* weft called MPI_Init_thread (so it finalizes) */
static bool finalized;
static int thread_level;

/* weft_finalize at exit. With executors alive it cannot stop the workers
 * (their dispatchers may be in the middle of a batch): MPI stays
 * unfinalized and mpirun says so; weft itself prints nothing. */
static void at_exit(void)
{
    if (weft__mpi_rank != 0 || finalized) return;
    if (atomic_load(&weft__mpi_live) > 0) return;
    weft__mpi_finalize();
}

int weft__mpi_init(int *argc, char ***argv)
{
    if (inited || weft__mpi_env_rank() < 0) return 0;
    int is = 0, provided = 0;
    MPI_Initialized(&is);
    if (is) {
        MPI_Query_thread(&provided);
    } else {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return weft__err(WEFT_ECRASHED, "weft_init: MPI_Init_thread failed");
        we_initialized = true;
    }
    if (MPI_Comm_dup(MPI_COMM_WORLD, &weft__mpi_comm) != MPI_SUCCESS)
        return weft__err(WEFT_ECRASHED, "weft_init: MPI_Comm_dup failed");
    MPI_Comm_rank(weft__mpi_comm, &weft__mpi_rank);
    MPI_Comm_size(weft__mpi_comm, &weft__mpi_size);

    /* which ranks share rank 0's host: there, worker clock readings are
     * rank 0's clock too (trace times) */
    char host[64] = {0};
    gethostname(host, sizeof host - 1);
    char *all = weft__mpi_rank == 0 ? calloc((size_t)weft__mpi_size, sizeof host) : NULL;
    MPI_Gather(host, (int)sizeof host, MPI_CHAR, all, (int)sizeof host, MPI_CHAR, 0,
               weft__mpi_comm);
    if (weft__mpi_rank == 0) {
        weft__mpi_same_host = calloc((size_t)weft__mpi_size, sizeof *weft__mpi_same_host);
        for (int r = 0; all && weft__mpi_same_host && r < weft__mpi_size; r++)
            weft__mpi_same_host[r] = memcmp(all + (size_t)r * sizeof host, host, sizeof host) == 0;
        free(all);
    }
    /* the buffer that takes the messages no one has room for (wire.h); a
     * rank without even this much memory fails weft_init */
    if (weft__mpi_scratch_alloc())
        return weft__err(WEFT_ENOMEM,
                         "weft_init: rank %d cannot allocate the mpi backend's "
                         "%u bytes scratch buffer",
                         weft__mpi_rank, PIECE);
    weft__mpi_bells_open(); /* the same-host ranks sleep on these (wire.h) */
    inited = true;
    /* below SERIALIZED the backend is off: weft_executor_create says why */
    thread_level = provided;
    if (weft__mpi_rank != 0) weft__mpi_worker_loop(); /* never returns */
    atexit(at_exit);
    return 0;
}

int weft__mpi_check_create(int workers, int threads, weft_backend rank_backend, int *ranks,
                           int *threads_out, bool *procs_out)
{
    if (!inited) {
        if (weft__mpi_env_rank() >= 0)
            return weft__err(WEFT_ENOTSUP, "the mpi backend needs weft_init(&argc, &argv) at the "
                                           "start of main(): it turns ranks 1.. into workers");
        return weft__err(WEFT_ENOTSUP,
                         "the mpi backend needs the program launched by mpirun: e.g. `mpirun -n 3 "
                         "./prog` (rank 0 runs main, ranks 1..2 are the workers; add "
                         "--oversubscribe for more ranks than cores, --allow-run-as-root as "
                         "root; on a cluster: --hostfile FILE or srun), and weft_init(&argc, "
                         "&argv) first in main()");
    }
    if (weft__mpi_rank != 0)
        return weft__err(WEFT_ENOTSUP, "the mpi backend: only rank 0 creates mpi executors "
                                       "(this is a worker rank)");
    if (finalized)
        return weft__err(WEFT_ENOTSUP, "the mpi backend: weft_finalize() was called already");
    if (thread_level < MPI_THREAD_SERIALIZED)
        return weft__err(WEFT_ENOTSUP,
                         "the mpi backend needs MPI_THREAD_SERIALIZED; MPI was "
                         "initialized with thread level %d",
                         thread_level);
    if (weft__mpi_size < 2)
        return weft__err(WEFT_ENOTSUP,
                         "the mpi backend needs at least 2 ranks (rank 0 and a worker); this job "
                         "has %d: e.g. `mpirun -n 3 ./prog`",
                         weft__mpi_size);
    if (workers > weft__mpi_size - 1)
        return weft__err(WEFT_EINVAL,
                         "weft_executor_create: %d workers asked, the job has %d worker ranks "
                         "(mpirun -n %d for %d)",
                         workers, weft__mpi_size - 1, workers + 1, workers);
    if (threads < 0 || threads > 1024)
        return weft__err(WEFT_EINVAL, "weft_executor_create: mpi_threads %d is not in 0..1024",
                         threads);
    if (rank_backend == WEFT_BACKEND_DEFAULT) {
        const char *v = getenv("WEFT_MPI_WORKERS");
        rank_backend = WEFT_BACKEND_THREADS;
        if (v && *v) {
            /* not weft_backend_parse: the core's table of backends names this
             * backend, which must not call back into it */
            if (!strcasecmp(v, "processes"))
                rank_backend = WEFT_BACKEND_PROCESSES;
            else if (strcasecmp(v, "threads"))
                return weft__err(WEFT_EINVAL,
                                 "WEFT_MPI_WORKERS='%s' is not what a worker rank runs its "
                                 "tasks on: use threads or processes",
                                 v);
        }
    }
    if (rank_backend != WEFT_BACKEND_THREADS && rank_backend != WEFT_BACKEND_PROCESSES)
        return weft__err(WEFT_EINVAL,
                         "weft_executor_create: mpi.rank_backend %d is not "
                         "WEFT_BACKEND_THREADS or WEFT_BACKEND_PROCESSES",
                         (int)rank_backend);
    if (threads == 0) {
        const char *v = getenv("WEFT_MPI_THREADS");
        if (v && *v) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > 1024)
                return weft__err(WEFT_EINVAL,
                                 "WEFT_MPI_THREADS='%s' is not a thread count (1..1024)", v);
            threads = (int)t;
        } else {
            threads = 1;
        }
    }
    *ranks = workers > 0 ? workers : weft__mpi_size - 1;
    *threads_out = threads;
    *procs_out = rank_backend == WEFT_BACKEND_PROCESSES;
    return 0;
}

int weft__mpi_finalize(void)
{
    if (!inited || finalized || weft__mpi_rank != 0) return 0;
    if (atomic_load(&weft__mpi_live) > 0)
        return weft__err(WEFT_EBUSY, "weft_finalize: %d mpi executor(s) are still alive",
                         atomic_load(&weft__mpi_live));
    finalized = true;
    pthread_mutex_lock(&weft__mpi_mu);
    w_hdr h;
    memset(&h, 0, sizeof h);
    h.type = MSG_STOP;
    for (int r = 1; r < weft__mpi_size; r++) {
        MPI_Send(&h, (int)sizeof h, MPI_BYTE, r, TAG_CMD, weft__mpi_comm);
        weft__mpi_ring(r);
    }
    MPI_Comm_free(&weft__mpi_comm);
    if (we_initialized) MPI_Finalize();
    pthread_mutex_unlock(&weft__mpi_mu);
    free(weft__mpi_same_host);
    weft__mpi_same_host = NULL;
    if (weft__mpi_bells) munmap(weft__mpi_bells, (size_t)weft__mpi_size * sizeof(w_bell));
    weft__mpi_bells = NULL;
    weft__mpi_scratch_free();
    return 0;
}

#endif

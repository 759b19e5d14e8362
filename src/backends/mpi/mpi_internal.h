/* backend.h : internals of the mpi backend (not installed).
 *
 * Three pieces:
 * - init (init.c): weft_init() under mpirun/srun initializes MPI; rank 0
 *   returns to main, every other rank enters weft__mpi_worker_loop() and
 *   never returns. weft_finalize() (or atexit) stops the workers.
 * - the worker loop (worker.c): receives batches from rank 0, runs them
 *   (on its own thread or, in hybrid mode, on a local threads executor),
 *   sends one result message per batch.
 * - the dispatcher (dispatch.c): the single executor thread of an mpi
 *   executor on rank 0. It takes queued futures and map chunks from the
 *   executor's deques, sends them in batches to the worker ranks with the
 *   fewest batches in flight, polls for results and completes futures and
 *   map entries.
 * Without MPI in the build, stub.c gives the same functions (the backend
 * is then not available).
 */
#ifndef WEFT_MPI_INTERNAL_H
#define WEFT_MPI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/remote/remote.h"
#include "internal.h"

struct weft__mpi_exec;

/* What an mpi executor's dispatcher needs from its executor. */
typedef struct weft__mpi_params {
    int ranks;   /* worker ranks used: 1..ranks */
    int threads; /* hybrid: local workers per worker rank (1: none, unless procs) */
    bool procs;  /* ranks x processes: the local workers are processes */
    uint64_t seed;
    weft_task_fn initializer, finalizer;
    const void *init_in;
    size_t init_len;
} weft__mpi_params;

/* ---- provided by executor.c for the dispatcher thread ---- */

/* The next queued future for the calling dispatcher, or NULL. */
weft_future *weft__exec_take(weft_executor *ex);
/* Counts k taken futures finished (shutdown accounting). */
void weft__exec_finished(weft_executor *ex, int64_t k);
/* True once weft_executor_destroy() asked the executor's threads to stop. */
bool weft__exec_stopping(weft_executor *ex);
/* Sleeps until a submit wakes the dispatcher, stop, or timeout_ns (-1:
 * none); returns a future found on the way in, or NULL. */
weft_future *weft__exec_idle(weft_executor *ex, int64_t timeout_ns);
/* Starts a taken plain future and describes it in *it; false if it was
 * cancelled (then dropped and its reference released; still count it). */
bool weft__exec_start_remote(weft_executor *ex, weft_future *f, int lane, weft__ritem *it);
/* Completes a started plain future from a remote result (releases the
 * queue's reference). */
void weft__exec_complete_remote(weft_executor *ex, int lane, weft_future *f, const weft__rres *r);
/* An mpi executor's backend state (mpi.c's create; dispatch.c's dispatcher
 * keeps its own state in M). */
typedef struct weft__mpi_data {
    int ranks;   /* worker ranks used: 1..ranks */
    int threads; /* hybrid: local workers per worker rank */
    bool procs;  /* ranks x processes */
    struct weft__mpi_exec *M;
} weft__mpi_data;
/* Trace rows per worker rank: one per local worker (hybrid), unless that
 * makes more than 4096 rows; then one per rank. */
static inline int weft__mpi_lanes_per_rank(int ranks, int threads)
{
    return (long)ranks * threads <= 4096 ? threads : 1;
}
/* weft_finalize's part: stops the worker ranks, finalizes MPI if weft
 * initialized it. */
int weft__mpi_finalize(void);

/* ---- provided by src/mpi ---- */

/* True when this build has the mpi backend. */
bool weft__mpi_built(void);
/* weft_init()'s part: initializes MPI when launched by mpirun/srun; worker
 * ranks never return. 0 outside mpirun. */
int weft__mpi_init(int *argc, char ***argv);
/* The rank the environment says this process has under mpirun (-1 if not
 * launched by an MPI launcher). Safe before MPI_Init. */
int weft__mpi_env_rank(void);
/* Validates an mpi executor's creation: `workers` asked (0: all worker
 * ranks), `threads` asked (0: WEFT_MPI_THREADS, else 1), `rank_backend`
 * asked (0: WEFT_MPI_WORKERS, else threads); *procs_out: ranks x processes. */
int weft__mpi_check_create(int workers, int threads, weft_backend rank_backend, int *ranks,
                           int *threads_out, bool *procs_out);
/* On the dispatcher thread: opens the executor on the worker ranks (runs
 * the initializer there). On failure *msg (heap) may say why. */
int weft__mpi_exec_open(weft_executor *ex, char **msg);
/* The dispatcher's loop; returns when the executor stops. */
void weft__mpi_dispatch(weft_executor *ex);
/* Closes the executor on the worker ranks (runs the finalizer), frees. */
void weft__mpi_exec_close(weft_executor *ex);

/* ---- fault injection (tests only) ---- */

/* The allocations of the mpi backend a test can make fail. */
typedef enum weft__mpi_fault_site {
    WEFT__MPI_FAULT_RESULT = 0, /* rank 0: room for a batch's answer */
    WEFT__MPI_FAULT_OUTPUT,     /* rank 0: the block of one big output */
    WEFT__MPI_FAULT_COMMAND,    /* worker rank: room for a command */
    WEFT__MPI_FAULT_INPUT,      /* worker rank: the block of one big input */
    WEFT__MPI_FAULT_ANSWER,     /* worker rank: room for a batch's answer */
    WEFT__MPI_FAULT_SITES
} weft__mpi_fault_site;
/* In this process: after `skip` more allocations at `site` succeed, the
 * next `count` fail as if memory had run out. A test arms a worker rank by
 * calling it from a task that runs there. */
void weft__mpi_fault_arm(weft__mpi_fault_site site, int skip, int count);
/* True when the next allocation at `site` is to fail (counts it). */
bool weft__mpi_fault(weft__mpi_fault_site site);

#endif

/* wire.h : the mpi backend's messages and shared state (MPI builds only).
 *
 * All traffic runs on weft's own communicator (a dup of MPI_COMM_WORLD),
 * so it never meets the program's own messages.
 *
 *   rank 0 -> worker, tag TAG_CMD, in send order (MPI's non-overtaking rule):
 *     OPEN   hdr, names [initializer, finalizer], one item: the init input
 *     BATCH  hdr, names, n items (+ inline inputs); each input of BIG bytes
 *            or more follows as its own message, straight from the caller's
 *            memory, in item order
 *     CLOSE  hdr (runs the finalizer, drops the executor's state)
 *     STOP   hdr (MPI_Finalize, exit 0)
 *   worker -> rank 0, tag res_tag(executor number):
 *     OPENED / CLOSED  hdr (err, message)
 *     RESULT hdr, n records (+ inline outputs, messages); each output of BIG
 *            bytes or more follows as its own message, in item order
 *
 * A batch from rank 0 and its big inputs are sent under mpi_mu in one go,
 * so two executors' messages to the same worker never interleave. Every
 * record is 8-byte aligned; payloads are padded to 8.
 */
#ifndef WEFT_MPI_WIRE_H
#define WEFT_MPI_WIRE_H

#include <mpi.h>
#include <pthread.h>

#include "backends/mpi/mpi_internal.h"

#define TAG_CMD 1
#define TAG_RES0 100
#define TAG_RES_SPAN 20000
#define BIG (64u << 10)  /* payloads this large travel as their own message */
#define PIECE (1u << 30) /* messages are at most this many bytes (int counts) */

enum {
    MSG_OPEN = 1,
    MSG_BATCH = 2,
    MSG_CLOSE = 3,
    MSG_STOP = 4,
    MSG_OPENED = 5,
    MSG_RESULT = 6,
    MSG_CLOSED = 7,
};

enum {
    BF_STOP_ON_ERROR = 1, /* batch: cancel the rest after a failed item */
    IF_BIG = 1,           /* item / record: the payload is its own message */
};

typedef struct w_hdr {
    uint32_t type;
    uint32_t exec; /* executor number (rank 0's counter) */
    uint32_t batch;
    uint32_t n; /* items */
    uint32_t nnames;
    uint32_t flags;
    int32_t err;      /* OPENED / CLOSED */
    uint32_t msg_len; /* OPENED: the message follows the header */
    uint64_t seed;
    int32_t threads; /* OPEN: hybrid threads per rank */
    int32_t rank;    /* replies: the sender */
} w_hdr;

typedef struct w_item {
    uint64_t index, seed, len;
    int32_t retries;
    uint16_t fn; /* index into the batch's name table */
    uint16_t flags;
} w_item;

typedef struct w_res {
    int32_t err;
    uint32_t flags;
    uint64_t out_len;
    uint32_t msg_len;
    uint32_t pad;
    uint64_t t0, t1; /* on the worker's CLOCK_MONOTONIC */
} w_res;

static inline size_t pad8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

static inline int res_tag(uint32_t exec)
{
    return TAG_RES0 + (int)(exec % TAG_RES_SPAN);
}

/* ---- shared state (init.c) ---- */
extern MPI_Comm weft__mpi_comm;
extern int weft__mpi_rank, weft__mpi_size;
/* serializes every MPI call on rank 0 (MPI_THREAD_SERIALIZED) */
extern pthread_mutex_t weft__mpi_mu;
/* per rank: same host as rank 0 (CLOCK_MONOTONIC comparable) */
extern bool *weft__mpi_same_host;
extern _Atomic int weft__mpi_live; /* open executors on rank 0 */

/* Sends / receives len bytes as one or more messages of at most PIECE. */
int weft__mpi_send_big(const void *p, size_t len, int dest, int tag);
int weft__mpi_recv_big(void *p, size_t len, int src, int tag);
/* Worker ranks: the loop (worker.c). */
void weft__mpi_worker_loop(void) __attribute__((noreturn));

/* weft_executor_create, handed down by weft_init (hybrid ranks run a local
 * threads executor; calling the public create from here would loop back). */
extern int (*weft__mpi_create_local)(const weft_options *o, weft_executor **out);

#endif

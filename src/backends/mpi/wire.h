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
 *            bytes or more follows as its own message, in item order.
 *            With RF_FAILED: hdr (err, message) only, no records: the
 *            worker could not run or answer the batch (out of memory), every
 *            item fails with err.
 *            A rank whose items run inline answers its batches in the order
 *            sent; a hybrid rank (local threads or processes) answers each
 *            batch when its last item finishes, so rank 0 finds the batch
 *            by its number. An answer and the messages that follow it are
 *            always sent in one go.
 *
 * Every MPI message is at most PIECE bytes: a longer command, answer or
 * payload travels as consecutive pieces. The header (always whole in the
 * first piece) says the command's length (`total`) and how many messages
 * follow it (`follow`: its other pieces and every piece of its big
 * payloads). So a receiver that cannot allocate room for a command or a
 * payload still receives every message that belongs to it, into a PIECE
 * scratch buffer (weft__mpi_drain), and the pairing of messages stays
 * right: it fails the items concerned with WEFT_ENOMEM and goes on
 * (docs/mpi.md, "Out of memory").
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
#define PIECE (1u << 20) /* messages are at most this many bytes (see above) */

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
    RF_FAILED = 2,        /* result: the whole batch failed with hdr.err */
    OF_INIT = 1,          /* open: has an initializer */
    OF_FINI = 2,          /* open: has a finalizer */
    OF_PROCESSES = 4,     /* open: the local workers are processes (ranks x processes) */
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
    int32_t threads; /* OPEN: hybrid local workers per rank */
    int32_t rank;    /* replies: the sender */
    uint64_t total;  /* bytes of this command or answer (all its pieces) */
    uint32_t follow; /* messages after the first that belong to it */
    uint32_t pad;
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
    uint32_t sub;    /* the rank's local worker that ran it (hybrid; else 0) */
    uint64_t t0, t1; /* on the worker's CLOCK_MONOTONIC */
} w_res;

static inline size_t pad8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

/* Messages a payload of len bytes takes (at least one). */
static inline uint32_t pieces(size_t len)
{
    return len ? (uint32_t)((len + PIECE - 1) / PIECE) : 1;
}

static inline int res_tag(uint32_t exec)
{
    return TAG_RES0 + (int)(exec % TAG_RES_SPAN);
}

/* ---- waiting: spin, yield, park ----
 *
 * Every hop of a task (rank 0's dispatcher waiting for a submit or an
 * answer, a worker rank waiting for a command) waits the same way: it
 * pauses (weft__cpu_relax) for at most `budget` ns, then yields the CPU
 * (sched_yield) until its horizon, then parks (futex or sleep). The budget
 * adapts, as a future's waiter does (core/future.c): doubled when a wait
 * ended within it, halved when not, between SPIN_MIN_NS and its maximum.
 * So round trips on free cores are caught by the pause spin (no system
 * call on the path), while long tasks, idle ranks, and hops that share a
 * core with the thread that has the work (3 or 4 threads on the path of a
 * round trip, 2 cores) shrink it to SPIN_MIN_NS and yield instead: the
 * yield hands the core to that thread at once, where a pause spin would
 * hold it until the kernel's tick. Open MPI's own progress (MPI_Improbe)
 * yields too when OMPI_MCA_mpi_yield_when_idle=1. */
#define SPIN_MIN_NS 1000u

static inline void spin_adapt(uint32_t *budget, uint64_t waited, uint32_t max)
{
    if (waited <= *budget)
        *budget = *budget * 2 > max ? max : *budget * 2;
    else if (*budget / 2 >= SPIN_MIN_NS)
        *budget /= 2;
}

/* The yield horizon that follows the pause (rank 0 awaiting answers): it
 * grows at once to twice a wait that ended within `max`, and halves (down
 * to 0: park right after the pause) after each wait longer than that. So
 * round trips keep it, while waits for long tasks drop it in a few answers
 * and stop taking the task threads' cores with sched_yield. */
static inline void horizon_adapt(uint32_t *h, uint64_t waited, uint32_t max)
{
    if (waited <= max) {
        uint64_t w2 = 2 * waited;
        if (w2 > *h) *h = w2 > max ? max : (uint32_t)w2;
    } else {
        *h /= 2;
    }
}

/* ---- the doorbells of the ranks on rank 0's host ----
 *
 * MPI has no wait that does not spin (Open MPI's blocking calls poll), so
 * a worker rank with nothing to do would have to poll MPI_Improbe, and
 * each poll costs (measured: 2-3% of a core per idle rank at one poll per
 * ms on this 2-core VM under load). The ranks that share rank 0's host
 * share one page instead (weft_init: shm_open of a name rank 0 makes and
 * broadcasts, unlinked once every rank has mapped it), with a bell per
 * rank: rank 0 rings it after it sends the rank a command
 * (weft__mpi_ring), the rank's local workers after they finish a batch,
 * and the rank's main thread sleeps on it (a process-shared futex) instead
 * of polling, with a long safety timeout. Dekker on seq_cst both ways: the
 * sleeper sets `sleeping`, then looks (MPI_Iprobe, the done stack); the
 * ringer publishes (MPI_Isend, the push), bumps `seq`, then reads
 * `sleeping`. A rank without the page (another host, no /dev/shm) polls
 * as before. */
typedef struct w_bell {
    uint32_t seq;      /* bumped by whoever has news for the rank */
    uint32_t sleeping; /* the rank's main thread sleeps (or is about to) on seq */
    uint32_t mapped;   /* the rank has mapped the bells (so it rings rank 0's) */
    char pad[52];      /* one cache line per rank */
} w_bell;

/* ---- shared state (init.c) ---- */
extern MPI_Comm weft__mpi_comm;
extern int weft__mpi_rank, weft__mpi_size;
/* serializes every MPI call on rank 0 (MPI_THREAD_SERIALIZED) */
extern pthread_mutex_t weft__mpi_mu;
/* per rank: same host as rank 0 (CLOCK_MONOTONIC comparable) */
extern bool *weft__mpi_same_host;
extern _Atomic int weft__mpi_live; /* open executors on rank 0 */
/* per rank, shared by the ranks on rank 0's host (see above); NULL: none */
extern w_bell *weft__mpi_bells;

/* Rank 0, after sending rank `rank` a command: rings its bell (no system
 * call unless the rank sleeps on it). */
void weft__mpi_ring(int rank);
/* Worker ranks' and rank 0's part of weft_init: maps the bells (a
 * collective call: every rank calls it). */
void weft__mpi_bells_open(void);

/* Sends / receives len bytes as pieces(len) messages of at most PIECE.
 * recv_big with p NULL receives them into the scratch (drops them). */
int weft__mpi_send_big(const void *p, size_t len, int dest, int tag);
int weft__mpi_recv_big(void *p, size_t len, int src, int tag);
/* Receives and drops k messages of at most PIECE bytes from src. */
void weft__mpi_drain(int src, int tag, uint32_t k);
/* Receives the command or answer whose first piece is the matched message
 * m (count bytes) into *buf (grown as needed, capacity *cap): 0, with the
 * whole of it in *buf and its header in *h. -1 if it could not be held (out
 * of memory, or the fault hook `site`): then *h is its header and every
 * message that belongs to it (h->follow) has been received and dropped.
 * `site` < 0: no fault hook. The caller holds the right to make MPI calls
 * (mpi_mu on rank 0). */
int weft__mpi_recv_msg(MPI_Message *m, int count, int src, int tag, unsigned char **buf,
                       size_t *cap, w_hdr *h, int site);
/* Sends the len bytes at p (a command or answer) as pieces(len) messages. */
int weft__mpi_send_msg(const void *p, size_t len, int dest, int tag);
/* The PIECE bytes scratch buffer (allocated by weft__mpi_init). */
int weft__mpi_scratch_alloc(void);
void weft__mpi_scratch_free(void);
/* Worker ranks: the loop (worker.c). */
void weft__mpi_worker_loop(void) __attribute__((noreturn));

/* weft_executor_create, handed down by weft_init (hybrid ranks run a local
 * threads executor; calling the public create from here would loop back). */
extern int (*weft__mpi_create_local)(const weft_options *o, weft_executor **out);

#endif

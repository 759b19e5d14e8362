/* backend.h : the one interface between the executor core and its backends.
 *
 * The core (src/core/) owns what every executor has: the options, the
 * futures, the work-stealing deques, the worker threads ("lanes"), shutdown,
 * the watchdog and the trace. A backend (src/backends/<name>/) decides what
 * a lane does with the work it takes: run it on this thread (threads), send
 * it to a worker process (processes), send it to worker ranks (mpi), or,
 * for serial, there are no lanes and submit runs the task inline.
 *
 * The core calls a backend only through the table below; it never names a
 * backend. A backend calls down into the core (src/core/pool.h, future.c,
 * map.c's chunk calls) and into src/os/, never into another backend except
 * src/backends/remote/, which holds what processes and mpi share. Adding a
 * backend is its own folder plus one line in src/core/backends.c.
 *
 * Lifetimes: `init` runs once in weft_init (table order, program still
 * single-threaded), `create` once per executor on the creating thread,
 * `lane_open`/`lane_close` on each lane's own thread, `run` on a lane's
 * thread for each future it takes (an inline backend: on the submitting
 * thread), `destroy` once after every lane has stopped, or when creation
 * fails after `create`. A forced shutdown sets the executor's cancelling
 * word to 2: a backend that can stop running work (processes kills its
 * workers) watches it.
 */
#ifndef WEFT_CORE_BACKEND_H
#define WEFT_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"

typedef struct weft__lane weft__lane;

/* What a backend can do; the parts above the core ask these, never the kind. */
enum {
    /* tasks run in the caller's address space: pointers inside inputs and
     * outputs stay valid (graphs and batch calls pass them without copying) */
    WEFT__CAP_SHARED_MEMORY = 1u << 0,
    /* tasks run in another process: they must be registered by name */
    WEFT__CAP_NAMED_TASKS = 1u << 1,
    /* no lanes: submit runs the task on the caller's thread */
    WEFT__CAP_INLINE = 1u << 2,
    /* a lane thread waiting on a future may run queued work meanwhile */
    WEFT__CAP_HELPS = 1u << 3,
    /* tasks run on the lanes' own threads in parallel and may submit to
     * their executor (graphs spread a wide start over the lanes) */
    WEFT__CAP_NESTED = 1u << 5,
    /* the watchdog has something to watch (tasks that can stall for good) */
    WEFT__CAP_WATCHDOG = 1u << 4,
    /* tasks run on this machine: they can map the caller's shared memory
     * (a weft_shm region's descriptor reaches them) */
    WEFT__CAP_SAME_HOST = 1u << 6,
};

/* What create() decides about a new executor. */
typedef struct weft__shape {
    int lanes;       /* worker threads the core starts (0 with WEFT__CAP_INLINE) */
    int workers;     /* what weft_executor_workers() reports */
    int trace_lanes; /* rows of the task-stream trace */
    bool fence_free; /* submit may skip its fence (asymmetric barrier) */
    bool count_idle; /* keep count of idle lanes (weft__lane_set_idle) */
    /* at most one idle lane spins for work, the one that went idle last
     * (its worker process is the one still spinning); the others sleep,
     * with adaptive spin budgets (os.h). For backends whose lanes wait on
     * other processes: fewer spinners than cores keeps every hop short. */
    bool one_spinner;
} weft__shape;

/* The per-process start-up context shared by every backend's init. */
typedef struct weft__init_ctx {
    int *argc;
    char ***argv;
    /* set by prepare(): this process was started by a launcher (mpirun),
     * and the launcher made it a remote worker (an mpi rank other than 0):
     * the other backends then start nothing. (The mpi backend does not set
     * it for its worker ranks: they keep the processes backend's fork
     * server for ranks x processes.) */
    bool launched;
    bool remote_worker;
    /* what a backend may call above the core (its worker processes or
     * ranks may run a local executor): weft_executor_create */
    int (*create_executor)(const weft_options *o, weft_executor **out);
} weft__init_ctx;

typedef struct weft__backend {
    weft_backend kind;
    const char *name;
    unsigned caps;
    /* Whether this build and machine can run it. */
    bool (*available)(void);
    /* weft_init: `prepare` of every backend first (look, start nothing),
     * then `init` of each; may not return (mpi worker ranks). NULL: none. */
    void (*prepare)(weft__init_ctx *c);
    int (*init)(weft__init_ctx *c);
    /* weft_finalize, in reverse table order */
    int (*finalize)(void);
    /* weft_executor_create: validates the backend's options, fills the
     * shape (the core has filled lanes = workers = trace_lanes = the asked
     * or default count), and may hand back private state in *data
     * (weft__exec_data(); freed by destroy(data)). NULL: nothing to check. */
    int (*create)(const weft_options *o, weft__shape *shape, void **data);
    /* On a lane's thread before it takes work (initializer, worker
     * process, ranks). On failure a code and *msg (heap) may say why. */
    int (*lane_open)(weft_executor *ex, weft__lane *l, char **msg);
    /* The lane's loop instead of the core's (mpi's dispatcher); NULL: the
     * core's loop, which calls run() for each future it takes. */
    void (*lane_main)(weft_executor *ex, weft__lane *l);
    /* Runs future f taken by lane l; may take more from the lane's own
     * deque (weft__lane_pop) to batch them. Inline backends: the caller's
     * thread, lane NULL. */
    void (*run)(weft_executor *ex, weft__lane *l, weft_future *f);
    /* Optional. On a submitting thread that is not a lane, for a plain
     * future f instead of queueing it: true if the backend took f (sent it
     * straight to an idle worker; it then finishes f itself and calls
     * weft__exec_direct_done once), false to queue it as usual. */
    bool (*submit)(weft_executor *ex, weft_future *f);
    /* Optional. On lane l's thread when it found no work, before it sleeps:
     * does the backend's own idle work, returning 0 if it did some (the
     * lane looks for work again), else how long the lane may sleep in ns
     * (-1: until woken). */
    int64_t (*idle)(weft_executor *ex, weft__lane *l);
    void (*lane_close)(weft_executor *ex, weft__lane *l);
    /* One line on what lane l is doing, for the watchdog. */
    void (*describe)(weft_executor *ex, weft__lane *l, uint64_t now, char *buf, size_t len);
    void (*destroy)(void *data);
} weft__backend;

/* The registered backends (src/core/backends.c), in weft_init's order, and
 * the one for `kind` (NULL if none). */
extern const weft__backend *const weft__backends[];
extern const size_t weft__nbackends;
const weft__backend *weft__backend_of(weft_backend kind);

/* What the parts above the core may ask of an executor's backend. */
unsigned weft__executor_caps(const weft_executor *ex);
/* The backend's private executor state (from create). */
void *weft__exec_data(const weft_executor *ex);
/* The second half of weft_executor_create (executor.c). */
int weft__exec_new(const weft_options *opts, const weft__backend *ops, const weft__shape *shape,
                   void *bdata, double watchdog, bool watchdog_print, weft_executor **out);

#endif

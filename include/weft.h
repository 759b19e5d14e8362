/* weft.h : the one public header of libweft.
 *
 * weft runs embarrassingly parallel work on four levels of execution --
 * serial, threads, processes, mpi -- behind one executor API. A task is a
 * registered C function that reads input bytes and writes output bytes, so
 * the same task runs in this thread, on a worker thread, in another process
 * or on another machine.
 *
 * Conventions (see docs/api.md):
 * - Functions that can fail return int: 0 on success, a negative WEFT_E* code
 *   on failure; weft_strerror() names a code, weft_last_error() gives the
 *   detail of the last failure on the calling thread.
 * - Constructors hand the object back through an out-parameter; on failure
 *   the out-parameter is set to NULL.
 * - Options structs: the zero value means "defaults"; NULL is always valid.
 *   Each starts with `size_t size` (the caller's sizeof; 0 = the layout of
 *   weft 0.2; WEFT_<NAME>_INIT sets it): fields are only ever appended, a
 *   shorter (older) struct is read as far as its size, a longer (newer) one
 *   whose unknown fields are set is WEFT_ENOTSUP.
 * - Argument order: object, inputs, timeout, outputs. Counts of items are
 *   size_t; kinds and modes are typed enums; bit flags are unsigned.
 * - Every _destroy and _fini returns int (0; NULL is a no-op, except for
 *   the sync objects' _fini, which refuse NULL with WEFT_EINVAL).
 * - Timeouts are in seconds (double). WEFT_FOREVER waits without limit; 0
 *   polls; negative and NaN are WEFT_EINVAL.
 * - Every function states its ownership and thread-safety rules.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_STATIC_DEFINE)
#define WEFT_API
#elif defined(WEFT_BUILDING)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 2
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.2.0"

/* weft_version() :
 * @return the library's version string, e.g. "0.2.0" (static storage).
 * Threads: safe from any thread; async-signal-safe. */
WEFT_API const char *weft_version(void);

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

enum {
    WEFT_OK = 0,
    WEFT_EPERM = -EPERM,         /* operation not permitted */
    WEFT_ENOENT = -ENOENT,       /* no such name (task lookup) */
    WEFT_ENOMEM = -ENOMEM,       /* out of memory */
    WEFT_EBUSY = -EBUSY,         /* busy: e.g. cancel of a running task */
    WEFT_EEXIST = -EEXIST,       /* name already registered to another function */
    WEFT_EINVAL = -EINVAL,       /* invalid argument */
    WEFT_EDEADLK = -EDEADLK,     /* the call would deadlock (e.g. destroy from a task) */
    WEFT_ENOTSUP = -ENOTSUP,     /* not available in this build / on this backend */
    WEFT_ETIMEDOUT = -ETIMEDOUT, /* the timeout elapsed first */
    WEFT_EAGAIN = -EAGAIN,       /* nothing available now (non-blocking calls) */
    WEFT_EOVERFLOW = -EOVERFLOW, /* a count would exceed its bound (bounded semaphore) */
    WEFT_ENOTDIR = -ENOTDIR,     /* a working directory cannot be entered (weft_run) */
    WEFT_EPIPE = -EPIPE,         /* the reading end of a pipe is closed (weft_proc_write) */
    WEFT_ENOSPC = -ENOSPC,       /* no space left on the device (weft_memo_put) */
    /* weft's own codes */
    WEFT_ETASK = -1000,      /* a task failed without a more specific code */
    WEFT_ECANCELLED = -1001, /* the task was cancelled before it started */
    WEFT_ECLOSED = -1002,    /* shut down: executor, queue, scheduler or channel */
    WEFT_ECRASHED = -1003,   /* the worker running the task died */
    WEFT_EOF = -1004,        /* an iteration is finished */
    WEFT_ENOTREG = -1005,    /* the task function is not registered */
    WEFT_EDEPEND = -1006,    /* a task this one depends on failed */
    WEFT_EBROKEN = -1007,    /* the barrier is broken (abort, timeout, failed action, reset) */
    WEFT_EMEMLIMIT = -1008,  /* the task went over its worker's memory limit (processes) */
    WEFT_EEXIT = -1009,      /* a child process exited non-zero or died of a signal (check mode) */
    WEFT_EPEERDIED = -1010,  /* the process at the other end of an IPC channel died */
};

/* weft_strerror() :
 * @return a static string naming `code` ("WEFT_ETIMEDOUT: timed out"), or
 * "unknown error" for codes weft does not define. Threads: any thread;
 * async-signal-safe. */
WEFT_API const char *weft_strerror(int code);

/* weft_last_error() :
 * @return the message of the last failing weft call on the calling thread
 * (e.g. "WEFT_BACKEND='foo' is not a backend: use serial, threads, processes
 * or mpi"), or "" if none failed yet. Valid until the next weft call on this
 * thread. Threads: thread-local; async-signal-safe. */
WEFT_API const char *weft_last_error(void);

/* Timeouts are seconds; WEFT_FOREVER waits without limit. */
#define WEFT_FOREVER ((double)INFINITY)

/* weft_init() :
 * Prepares the process for the processes and mpi backends (fork server,
 * MPI ranks). Call it first thing in main(), before creating threads. It
 * starts the processes backend's fork server whatever backend the program
 * will use (forking is safe only while the program has one thread, and the
 * backend is often chosen later, by WEFT_BACKEND). Under mpirun/srun (and
 * with the mpi backend in this build) it then initializes MPI
 * (MPI_Init_thread; argc/argv are passed on); rank 0 returns to main()
 * and owns the mpi executors, every other rank becomes a worker and never
 * returns: it exits 0 when rank 0 calls weft_finalize() or exits. Either
 * argument may be NULL.
 * Threads: call once, from the main thread, before other weft calls.
 * @return 0, or a negative WEFT_E* code. */
WEFT_API int weft_init(int *argc, char ***argv);

/* weft_finalize() :
 * Ends what weft_init() started: under mpirun, on rank 0, tells every
 * worker rank to stop (they call MPI_Finalize and exit 0) and finalizes MPI
 * if weft initialized it. Optional: weft_init() registers it with atexit(),
 * so returning from main() does the same. Destroy every mpi executor first.
 * A no-op outside mpirun and on a second call.
 * Threads: the main thread, after every other weft call.
 * @return 0, or WEFT_EBUSY (an mpi executor is still alive: nothing done). */
WEFT_API int weft_finalize(void);

/* ------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------ */

/* The per-call context a task receives; valid only during the call. */
typedef struct weft_ctx weft_ctx;
typedef struct weft_executor weft_executor;
typedef struct weft_future weft_future;
typedef struct weft_memo weft_memo; /* an on-disk memo of results: weft/memo.h */

/* A task: reads `in[0..len)`, writes its output with weft_ctx_output() or
 * weft_ctx_set_output(), returns 0 or a negative error code (use
 * weft_ctx_fail() to attach a message). A positive return is treated as
 * WEFT_ETASK. The input stays valid only during the call. */
typedef int (*weft_task_fn)(weft_ctx *ctx, const void *in, size_t len);

/* weft_task_register() :
 * Registers `fn` under the stable `name` (copied). Registering the same pair
 * twice is a no-op; a name already held by another function, or a function
 * already registered under another name, fails with WEFT_EEXIST.
 * Threads: safe from any thread; usually called from WEFT_TASK_REGISTER.
 * @return 0, WEFT_EINVAL (NULL or empty name, NULL fn), WEFT_EEXIST, WEFT_ENOMEM. */
WEFT_API int weft_task_register(const char *name, weft_task_fn fn);

/* weft_task_lookup() :
 * Finds the function registered under `name`.
 * @return 0 and `*fn`, or WEFT_ENOENT (`*fn` = NULL), WEFT_EEXIST (the name
 * is ambiguous, see WEFT_TASK_REGISTER), WEFT_EINVAL. Threads: any. */
WEFT_API int weft_task_lookup(const char *name, weft_task_fn *fn);

/* weft_task_name() :
 * @return the registered name of `fn` (static storage, lives as long as the
 * process), or NULL if `fn` is not registered. Threads: any. */
WEFT_API const char *weft_task_name(weft_task_fn fn);

/* WEFT_TASK_REGISTER(fn) : registers the task `fn` under the name "fn" before
 * main() runs. Use at file scope, after the function's definition:
 *
 *     static int square(weft_ctx *ctx, const void *in, size_t len) { ... }
 *     WEFT_TASK_REGISTER(square);
 *
 * WEFT_TASK_REGISTER_AS(fn, "lib.square") chooses the name. A clash (two
 * functions under one name) cannot fail at load time; the name is then
 * ambiguous: weft_task_lookup() of it fails with WEFT_EEXIST and names why,
 * and backends that need names refuse tasks under it. */
#define WEFT_TASK_REGISTER_AS(fn, name)                                \
    __attribute__((constructor)) static void weft__register_##fn(void) \
    {                                                                  \
        weft__task_register_static(name, fn);                          \
    }                                                                  \
    struct weft__semicolon_##fn
#define WEFT_TASK_REGISTER(fn) WEFT_TASK_REGISTER_AS(fn, #fn)

/* Internal: records a registration from a constructor (errors are kept and
 * reported later, since constructors cannot return them). */
WEFT_API void weft__task_register_static(const char *name, weft_task_fn fn);

/* weft_ctx_output() :
 * Gives the task an output buffer of `len` bytes (replacing any earlier
 * output of this call) and returns it; the task fills it before returning.
 * Ownership: weft owns the buffer. Threads: only the task's own thread.
 * @return the buffer (non-NULL even for len 0), or NULL if out of memory. */
WEFT_API void *weft_ctx_output(weft_ctx *ctx, size_t len);

/* weft_ctx_set_output() :
 * Copies `data[0..len)` as the task's output. Threads: the task's thread.
 * @return 0 or WEFT_ENOMEM, WEFT_EINVAL (data NULL with len > 0). */
WEFT_API int weft_ctx_set_output(weft_ctx *ctx, const void *data, size_t len);

/* weft_ctx_fail() :
 * Records a printf-formatted error message for this call and returns `code`
 * (WEFT_ETASK if `code` >= 0), so a task ends with
 *     return weft_ctx_fail(ctx, WEFT_EINVAL, "bad size %zu", len);
 * The future then reports `code` and the message. Threads: the task's thread. */
WEFT_API int weft_ctx_fail(weft_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* weft_ctx_seed() : the task's deterministic 64-bit seed, derived from the run
 * seed and the task's index, identical on every backend and worker count. */
WEFT_API uint64_t weft_ctx_seed(const weft_ctx *ctx);
/* weft_ctx_index() : the task's index: input index in a map, submission
 * number of the executor for weft_submit (or the one given in options). */
WEFT_API uint64_t weft_ctx_index(const weft_ctx *ctx);
/* weft_ctx_worker() : the worker running the task, 0..workers-1 (0 on serial). */
WEFT_API int weft_ctx_worker(const weft_ctx *ctx);
/* weft_ctx_attempt() : 0 on the first run, 1.. on retries. */
WEFT_API int weft_ctx_attempt(const weft_ctx *ctx);
/* weft_ctx_worker_state() :
 * @return the output bytes of this worker's initializer (NULL, len 0 if the
 * executor has none). Owned by the worker; valid until the worker exits. */
WEFT_API const void *weft_ctx_worker_state(const weft_ctx *ctx, size_t *len);
/* weft_ctx_executor() : the executor running the task, for nested submits. */
WEFT_API weft_executor *weft_ctx_executor(const weft_ctx *ctx);

/* A small, fast random number generator (xoshiro256**) for tasks; seed it
 * from weft_ctx_seed() for results that do not depend on the backend.
 * Threads: one weft_rng per thread; the functions are pure. */
typedef struct weft_rng {
    uint64_t s[4];
} weft_rng;

static inline uint64_t weft__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* weft_rng_seed() : initialises `r` from a 64-bit seed. */
static inline void weft_rng_seed(weft_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = weft__splitmix64(&seed);
}

static inline uint64_t weft__rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* weft_rng_next() : the next 64 random bits. */
static inline uint64_t weft_rng_next(weft_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = weft__rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = weft__rotl64(s[3], 45);
    return result;
}

/* weft_rng_range() : a uniform integer in [lo, hi] (inclusive; lo <= hi),
 * by Lemire's multiply-shift (bias below 2^-32 for ranges under 2^32). */
static inline int64_t weft_rng_range(weft_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1u;
    if (span == 0) return (int64_t)weft_rng_next(r);
    /* __extension__: __int128 is a GNU extension; this keeps -Wpedantic quiet
     * in a user's build. */
    return lo + (int64_t)(__extension__(((unsigned __int128)weft_rng_next(r) * span) >> 64));
}

/* weft_rng_double() : a uniform double in [0, 1). */
static inline double weft_rng_double(weft_rng *r)
{
    return (double)(weft_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------------
 * Executor
 * ------------------------------------------------------------------------ */

typedef enum weft_backend {
    WEFT_BACKEND_DEFAULT = 0, /* WEFT_BACKEND from the environment, else threads */
    WEFT_BACKEND_SERIAL,      /* inline on the calling thread, in order */
    WEFT_BACKEND_THREADS,     /* work-stealing thread pool */
    WEFT_BACKEND_PROCESSES,   /* crash-isolated worker processes */
    WEFT_BACKEND_MPI,         /* MPI ranks */
} weft_backend;

/* weft_backend_parse() :
 * Maps "serial", "threads", "processes", "mpi" (case-insensitive) to `*out`.
 * @return 0, or WEFT_EINVAL for NULL or an unknown name. Threads: any. */
WEFT_API int weft_backend_parse(const char *name, weft_backend *out);
/* weft_backend_name() : "serial", "threads", ..., or "unknown". */
WEFT_API const char *weft_backend_name(weft_backend b);
/* weft_backend_available() : true if this build can create `b`. */
WEFT_API bool weft_backend_available(weft_backend b);

/* What a live executor does when the program exits (leaves main() or
 * calls exit()); see docs/api.md "Exit behaviour". */
typedef enum weft_exit_mode {
    WEFT_EXIT_JOIN = 0, /* wait for queued and running tasks (Python's default) */
    WEFT_EXIT_CANCEL,   /* cancel queued tasks, wait for the running ones */
    WEFT_EXIT_NONE,     /* do nothing: the process ends, unfinished work is lost */
} weft_exit_mode;

/* What the watchdog of the processes backend reports on a stall (valid
 * only during the on_stall call). */
typedef struct weft_stall_info {
    double stalled;     /* seconds since a task last finished */
    size_t pending;     /* tasks submitted and not finished */
    int workers;        /* worker processes of the executor */
    const char *report; /* the text report: a summary line, then one line
                           per worker ("worker 1 (pid 42): task 'f' (index 7)
                           running for 3.2 s" or "... idle") */
} weft_stall_info;

/* Options of the processes backend (ignored by the others):
 * weft_options.processes. */
typedef struct weft_processes_options {
    /* Per-task time limit in seconds (0 or WEFT_FOREVER: none), counted
     * from when the task starts in its worker: a task still running after
     * it has its worker process killed and replaced, and fails with
     * WEFT_ETIMEDOUT. weft_submit_options.timeout overrides it per task. */
    double task_timeout;
    /* Replace a worker process after it ran this many tasks (map items
     * count one each); 0: never (multiprocessing's maxtasksperchild). */
    int max_tasks_per_worker;
    /* Private memory (heap and anonymous mappings, RLIMIT_DATA) a worker
     * process may hold, in bytes; 0: no limit. A task whose allocation
     * fails under it, or that dies after one failed, fails with
     * WEFT_EMEMLIMIT; the worker is replaced. */
    size_t memory_limit;
    /* Run a task whose worker died (crash, kill, timeout) again on a fresh
     * worker, up to this many times; 0 (default): fail it at once. */
    int crash_retries;
    /* Largest task input, in bytes; 0: no limit. A larger input fails its
     * future with WEFT_EOVERFLOW; the pool goes on. */
    size_t max_input;
    /* Watchdog: when no task finished for this many seconds while tasks
     * are pending (0 takes WEFT_WATCHDOG, else off; WEFT_FOREVER: never),
     * report which task each worker runs and for how long, once per stall,
     * to on_stall(on_stall_arg, info) and watchdog_fn(report, watchdog_arg)
     * when set, and to stderr only when watchdog_print is true or the
     * period came from WEFT_WATCHDOG. A watchdog with none of these is
     * WEFT_EINVAL (it would report to no one): weft never prints unasked. */
    double watchdog;
    void (*on_stall)(void *arg, const weft_stall_info *info);
    void *on_stall_arg;
    void (*watchdog_fn)(const char *report, void *arg);
    void *watchdog_arg;
    bool watchdog_print;
} weft_processes_options;

/* Options of the mpi backend (ignored by the others): weft_options.mpi. */
typedef struct weft_mpi_options {
    /* Hybrid mode: each worker rank runs its items on this many local
     * workers of its own (ranks x threads, or ranks x processes below), all
     * kept busy whatever the task length; 0 takes WEFT_MPI_THREADS, else 1
     * (threads: items run on the rank's main thread). */
    int threads;
    /* What the local workers of a rank are: WEFT_BACKEND_THREADS, or
     * WEFT_BACKEND_PROCESSES (ranks x processes: each rank runs its items
     * in worker processes of its own, so a task that crashes fails alone
     * with WEFT_ECRASHED instead of ending the MPI job). 0 takes
     * WEFT_MPI_WORKERS ("threads" or "processes"), else threads. Other
     * values are WEFT_EINVAL. Added after weft 0.2: read only when the
     * options' size covers it (WEFT_OPTIONS_INIT). */
    weft_backend rank_backend;
} weft_mpi_options;

typedef struct weft_options {
    /* sizeof(weft_options) as the caller's header had it, so the struct can
     * grow across library versions: the library reads only that many bytes
     * (later fields take their defaults) and refuses, with WEFT_ENOTSUP, a
     * larger struct whose unknown fields are set, and with WEFT_EINVAL one
     * smaller than its size field. 0 means the layout of weft 0.2
     * (WEFT_OPTIONS_SIZE_0_2). WEFT_OPTIONS_INIT sets it. */
    size_t size;
    /* Level of execution; 0 takes WEFT_BACKEND, else threads. */
    weft_backend backend;
    /* Worker count; 0 takes WEFT_WORKERS, else all online CPUs. Negative is
     * WEFT_EINVAL. The serial backend always has 1. */
    int workers;
    /* Run once in each worker before any task (Python's pool initializer);
     * its output bytes become the worker's state (weft_ctx_worker_state).
     * If it fails in any worker, weft_executor_create fails with its code. */
    weft_task_fn initializer;
    const void *init_input; /* copied at creation */
    size_t init_len;
    /* Run once in each worker as it exits, with the worker's state as input. */
    weft_task_fn finalizer;
    /* Run seed for task seeds; 0 takes a fixed default, so runs repeat. */
    uint64_t seed;
    /* Chrome trace-event JSON written at destroy; NULL takes WEFT_TRACE. */
    const char *trace_path;
    /* Worker thread stack size in bytes; 0 = 8 MiB. At most 1 GiB (larger
     * is WEFT_EINVAL); a size the system refuses is WEFT_EINVAL too. */
    size_t stack_size;
    /* What happens to this executor when the program leaves main() or calls
     * exit() while it is still alive (docs/api.md "Exit behaviour"). */
    weft_exit_mode exit_mode;
    /* With WEFT_EXIT_JOIN or _CANCEL: the longest wait at exit, in seconds; 0 (default)
     * waits without limit, like Python's concurrent.futures. Work still
     * queued or running when it passes is dropped. */
    double exit_timeout;
    /* A memo (weft/memo.h) that calls flagged WEFT_SUBMIT_MEMO,
     * WEFT_MAP_MEMO or WEFT_COMPUTE_MEMO consult before running and fill
     * after; NULL = none. Borrowed: close it after the executor. */
    weft_memo *memo;
    /* Backend-only options, ignored by the other backends. */
    weft_processes_options processes;
    weft_mpi_options mpi;
    /* New fields are appended here, after the last group (a new field of
     * the last group goes at its end); a caller's size tells which it
     * knows. */
} weft_options;

/* The size of weft_options in weft 0.2: what a size of 0 stands for. */
#define WEFT_OPTIONS_SIZE_0_2 \
    (offsetof(weft_options, mpi) + offsetof(weft_mpi_options, rank_backend))
/* An initializer that records this header's size: weft_options o = WEFT_OPTIONS_INIT; */
#define WEFT_OPTIONS_INIT            \
    {                                \
        .size = sizeof(weft_options) \
    }

/* weft_executor_create() :
 * Creates an executor from `opts` (NULL = defaults) and starts its workers.
 * The environment (WEFT_BACKEND, WEFT_WORKERS, WEFT_TRACE, WEFT_WATCHDOG)
 * fills only the fields left at zero.
 * Ownership: the caller destroys `*out` with weft_executor_destroy().
 * Threads: safe from any thread.
 * At the first call, registers an atexit handler that, at program exit,
 * waits for the work of every executor still alive as its exit_mode says
 * (docs/api.md "Exit behaviour").
 * @return 0, or WEFT_EINVAL (bad option or environment value), WEFT_ENOTSUP
 * (backend not available in this build), WEFT_ENOTREG (processes, mpi: an
 * unregistered initializer or finalizer), WEFT_ENOMEM, WEFT_EAGAIN (cannot
 * start threads), or the initializer's error; `*out` is NULL on error. */
WEFT_API int weft_executor_create(const weft_options *opts, weft_executor **out);

/* Bits: CANCEL (1) cancels queued tasks, NOWAIT (2) returns at once, FORCE
 * (4, always with CANCEL) also stops running tasks. Python's
 * shutdown(wait=False, cancel_futures=True) is WEFT_SHUTDOWN_CANCEL_NOWAIT. */
typedef enum weft_shutdown_mode {
    WEFT_SHUTDOWN_WAIT = 0,          /* run everything submitted, then stop */
    WEFT_SHUTDOWN_CANCEL = 1,        /* cancel what has not started, wait for the rest */
    WEFT_SHUTDOWN_NOWAIT = 2,        /* return at once; everything submitted still runs */
    WEFT_SHUTDOWN_CANCEL_NOWAIT = 3, /* cancel what has not started, return at once */
    WEFT_SHUTDOWN_FORCE = 5,         /* cancel what has not started, stop what runs
                                        (processes: kill the worker processes; their
                                        tasks fail with WEFT_ECANCELLED), wait until
                                        every future is finished */
} weft_shutdown_mode;

/* weft_executor_shutdown() :
 * Stops accepting work (later submits fail with WEFT_ECLOSED), then waits
 * until every task submitted before is finished (WAIT) or finished or
 * cancelled (CANCEL, FORCE); the NOWAIT modes return at once while the
 * work goes on (or is cancelled) in the background. FORCE stops running
 * tasks where the backend can: processes kills the worker processes
 * running them (those futures fail with WEFT_ECANCELLED and a message;
 * the finalizer does not run in them); threads and serial cannot stop a
 * running thread, so FORCE waits for running tasks as CANCEL does; mpi
 * cancels everything not yet sent to a rank and waits for what was sent.
 * Idempotent; a stronger mode may follow a weaker one from any thread
 * (a FORCE after a WAIT stops the work the WAIT waits for).
 * Workers stay alive until weft_executor_destroy(), which waits for
 * whatever a NOWAIT shutdown left running.
 * Threads: safe from any thread except the executor's own tasks (WEFT_EDEADLK).
 * @return 0, WEFT_EINVAL (NULL or an unknown mode), WEFT_EDEADLK. */
WEFT_API int weft_executor_shutdown(weft_executor *ex, weft_shutdown_mode mode);

/* weft_executor_destroy() :
 * Shuts down with WEFT_SHUTDOWN_WAIT (if not already shut down), stops and
 * joins the workers, writes the trace, frees `ex`. Futures obtained from `ex`
 * stay valid (they are finished or cancelled) until released. NULL is a no-op.
 * Threads: not from the executor's own tasks (WEFT_EDEADLK); no other call on
 * `ex` may be in progress or follow.
 * @return 0, WEFT_EDEADLK, or the error of writing the trace file. */
WEFT_API int weft_executor_destroy(weft_executor *ex);

/* weft_executor_backend(), weft_executor_workers() : what was chosen. */
WEFT_API weft_backend weft_executor_backend(const weft_executor *ex);
WEFT_API int weft_executor_workers(const weft_executor *ex);

/* ------------------------------------------------------------------------
 * Futures
 * ------------------------------------------------------------------------ */

enum {
    WEFT_SUBMIT_BORROW = 1u << 0, /* do not copy the input: the caller keeps it
                                     alive and unchanged until the future is done */
    WEFT_SUBMIT_MEMO = 1u << 8,   /* look the result up in the executor's memo
                                     (weft_options.memo) first, store it after */
};

typedef struct weft_submit_options {
    size_t size;    /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    unsigned flags; /* WEFT_SUBMIT_* */
    int retries;    /* re-run a task that returned an error up to this many times */
    bool has_index; /* use `index` below instead of the submission number */
    uint64_t index; /* index for weft_ctx_index() and the seed */
    double timeout; /* processes backend: time limit of this task in seconds
                       (0: the executor's task_timeout; < 0: none) */
} weft_submit_options;
/* weft_submit_options o = WEFT_SUBMIT_OPTIONS_INIT; records this header's size */
#define WEFT_SUBMIT_OPTIONS_INIT            \
    {                                       \
        .size = sizeof(weft_submit_options) \
    }

/* weft_submit() :
 * Queues `fn(in[0..len))` on `ex` (input copied) and returns its future.
 * Ownership: the caller holds one reference to `*out`; drop it with
 * weft_future_release(). The future outlives the executor if still held.
 * Threads: safe from any thread, including from inside a task (nested).
 * @return 0, or WEFT_EINVAL (NULL ex/fn/out, in NULL with len > 0),
 * WEFT_ENOMEM, WEFT_ECLOSED (shut down), WEFT_ENOTREG (backend needs names);
 * on error `*out` is NULL and the task never runs. */
WEFT_API int weft_submit(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                         weft_future **out);

/* weft_submit_ex() : weft_submit() with options (NULL = defaults). */
WEFT_API int weft_submit_ex(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                            const weft_submit_options *opts, weft_future **out);

/* weft_future_retain(), weft_future_release() :
 * Add or drop a reference; the future is freed when the last one goes,
 * together with its output. Releasing never cancels the task. NULL is a
 * no-op. Using a future after its last release is undefined, except that a
 * second release (or a retain) of a future that still sits in the library's
 * free list -- e.g. released twice in a row -- is detected and ignored, and
 * weft_last_error() says so. Threads: safe from any thread. */
WEFT_API void weft_future_retain(weft_future *f);
WEFT_API void weft_future_release(weft_future *f);

/* weft_future_wait() :
 * Waits until `f` is finished (done, failed or cancelled). Called from
 * inside a task of the same executor, it runs other tasks meanwhile, so
 * nesting never deadlocks; the timeout is then checked between them.
 * Threads: safe from any thread.
 * @return 0 once finished, WEFT_ETIMEDOUT, WEFT_EINVAL (NULL, NaN, negative). */
WEFT_API int weft_future_wait(weft_future *f, double timeout);

/* weft_future_result() :
 * Waits as weft_future_wait(), then gives the output.
 * Ownership: `*data` points into the future, valid until its last release.
 * `data` and `len` may be NULL.
 * @return 0 with the output; the task's error code (see weft_future_error);
 * WEFT_ECANCELLED; WEFT_ETIMEDOUT (not finished yet); WEFT_EINVAL. */
WEFT_API int weft_future_result(weft_future *f, double timeout, const void **data, size_t *len);

/* weft_future_error() :
 * @return the error message of a failed future ("" if none was given),
 * "cancelled" for a cancelled one, NULL otherwise (pending, running or
 * done). Owned by the future. Threads: any, once finished. */
WEFT_API const char *weft_future_error(const weft_future *f);

/* weft_future_cancel() :
 * Cancels `f` if it has not started: it will never run, its callbacks run,
 * and waiters wake with WEFT_ECANCELLED.
 * Threads: any. @return 0 if `f` is (now) cancelled; WEFT_EBUSY if it is
 * running or finished; WEFT_EINVAL. */
WEFT_API int weft_future_cancel(weft_future *f);

typedef enum weft_future_state {
    WEFT_FUTURE_PENDING = 0,
    WEFT_FUTURE_RUNNING = 1,
    WEFT_FUTURE_DONE = 2,      /* finished with an output */
    WEFT_FUTURE_FAILED = 3,    /* finished with an error */
    WEFT_FUTURE_CANCELLED = 4, /* never ran */
} weft_future_state;

/* weft_future_state_get() and the predicates: a snapshot (an atomic load);
 * any thread; async-signal-safe (the caller must hold a reference). */
WEFT_API weft_future_state weft_future_state_get(const weft_future *f);
WEFT_API bool weft_future_done(const weft_future *f); /* done, failed or cancelled */
WEFT_API bool weft_future_running(const weft_future *f);
WEFT_API bool weft_future_cancelled(const weft_future *f);

typedef void (*weft_future_cb)(weft_future *f, void *arg);

/* weft_future_on_done() :
 * Calls `cb(f, arg)` exactly once when `f` finishes (done, failed or
 * cancelled): in the thread that finishes it, or at once in the caller's
 * thread if it is already finished and its earlier callbacks have run (else
 * after them, in the finishing thread). Callbacks run in the order added,
 * across threads too; a wait may return before they have run. The
 * callback must not block for long; it may call any future function on `f`
 * except release of a reference it does not own.
 * Threads: safe from any thread.
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM (then `cb` never runs). */
WEFT_API int weft_future_on_done(weft_future *f, weft_future_cb cb, void *arg);

/* Promises: futures without a task, completed by the caller's own code
 * (Python's Future used directly, with set_result / set_exception /
 * set_running_or_notify_cancel). A promise works everywhere a future does:
 * weft_future_result/wait/cancel/on_done, weft_wait, weft_as_completed, and
 * as a graph node (weft_graph_future). Any thread may complete a promise;
 * exactly one completion wins. A completing thread must hold a reference
 * (weft_future_retain) if another thread may release the last one meanwhile.
 * Releasing the last reference of an unfinished promise cancels it (its
 * callbacks run) before it is freed. */

/* weft_promise_create() :
 * Creates a pending promise. Ownership: the caller holds one reference to
 * `*out` (weft_future_release). Threads: any.
 * @return 0, WEFT_EINVAL (NULL out), WEFT_ENOMEM; `*out` is NULL on error. */
WEFT_API int weft_promise_create(weft_future **out);

/* weft_promise_set_result() :
 * Finishes promise `f` as done with a copy of data[0..len) as its output
 * (weft_future_result gives it), from pending or running; callbacks run in
 * the calling thread, waiters wake. Threads: any.
 * @return 0; WEFT_ECANCELLED (the promise was cancelled: nothing is set);
 * WEFT_EINVAL (NULL f, data NULL with len > 0, not a promise, or already
 * finished: set twice); WEFT_ENOMEM. */
WEFT_API int weft_promise_set_result(weft_future *f, const void *data, size_t len);

/* weft_promise_set_error() :
 * Finishes promise `f` as failed: weft_future_result returns `code` (< 0,
 * e.g. WEFT_ETASK or any WEFT_E*), weft_future_error a copy of `msg` (NULL:
 * none). Threads: any.
 * @return as weft_promise_set_result (WEFT_EINVAL also for code >= 0). */
WEFT_API int weft_promise_set_error(weft_future *f, int code, const char *msg);

/* weft_promise_set_running() :
 * Python's set_running_or_notify_cancel: moves a pending promise to
 * running, after which weft_future_cancel fails (WEFT_EBUSY); call it
 * before starting the work the promise stands for. Threads: any.
 * @return 0 (now running: go on), WEFT_ECANCELLED (it was cancelled: do not
 * do the work), WEFT_EINVAL (NULL, not a promise, already running or
 * finished). */
WEFT_API int weft_promise_set_running(weft_future *f);

typedef enum weft_wait_mode {
    WEFT_WAIT_ALL = 0,         /* all finished */
    WEFT_WAIT_FIRST_COMPLETED, /* at least one finished */
    WEFT_WAIT_FIRST_ERROR,     /* one failed or was cancelled, or all finished */
} weft_wait_mode;

/* weft_wait() :
 * Waits over `fs[0..n)` until `mode` is met or `timeout` passes, and, if
 * `done` is not NULL, sets done[i] to whether fs[i] is finished. NULL
 * entries count as finished; a future given several times counts at each
 * of its positions. A task waiting here helps as weft_future_wait.
 * `*ndone` (may be NULL) gets the number of finished futures, also on
 * WEFT_ETIMEDOUT. Threads: safe from any thread.
 * @return 0 when `mode` is met, WEFT_ETIMEDOUT, WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_wait(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout,
                       bool *done, size_t *ndone);

typedef struct weft_as_completed weft_as_completed;

/* weft_as_completed_create() :
 * An iterator that yields each of `fs[0..n)` once, as it finishes (those
 * already finished first, in order). A future given several times is
 * yielded once, with the index of its first occurrence (as Python's
 * as_completed, which takes a set). It holds its own references.
 * Ownership: destroy with weft_as_completed_destroy().
 * Threads: one thread iterates at a time.
 * @return 0, WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_as_completed_create(weft_future *const *fs, size_t n, weft_as_completed **out);

/* weft_as_completed_next() :
 * Waits up to `timeout` for the next finished future; `*f` is borrowed from
 * the iterator (retain it to keep it past destroy); `*index` (may be NULL)
 * is its position in `fs`.
 * @return 0, WEFT_EOF when all were yielded, WEFT_ETIMEDOUT, WEFT_EINVAL. */
WEFT_API int weft_as_completed_next(weft_as_completed *it, double timeout, weft_future **f,
                                    size_t *index);

/* weft_as_completed_destroy() : frees the iterator and its references.
 * NULL is a no-op. Threads: the iterating thread, after the last next.
 * @return 0. */
WEFT_API int weft_as_completed_destroy(weft_as_completed *it);

/* ------------------------------------------------------------------------
 * Map
 * ------------------------------------------------------------------------ */

typedef struct weft_buf {
    const void *data;
    size_t len;
} weft_buf;

/* A map's results, one entry per input item, in input order. */
typedef struct weft_results weft_results;

enum {
    WEFT_MAP_STOP_ON_ERROR = 1u << 0, /* stop at the first error: items not
                                         started are WEFT_ECANCELLED */
    WEFT_MAP_UNORDERED = 1u << 1,     /* on_result in completion order */
    WEFT_MAP_MEMO = 1u << 8,          /* items found in the executor's memo are not
                                         run; the others are stored as they finish
                                         (weft_map, weft_map_bufs, weft_parallel) */
};

/* Result delivery: called on the thread that called map, for each item, in
 * input order (or completion order with WEFT_MAP_UNORDERED). `err` is 0 or
 * the item's error; `out` is valid only during the call; `msg` is the
 * error message or NULL. A non-zero return stops the map with that code. */
typedef int (*weft_result_cb)(void *arg, uint64_t index, int err, const void *out, size_t len,
                              const char *msg);

/* Stream input: fills `*item` with the item at `index` and returns 1, or
 * returns 0 at the end, or a negative code to stop the map with it. The
 * item's bytes must stay valid until the next call or the map's return. */
typedef int (*weft_input_cb)(void *arg, uint64_t index, weft_buf *item);

/* Whether weft_map, weft_parallel and weft_graph_compute draw a progress
 * bar on stderr (their `progress` option; docs/progress.md). */
typedef enum weft_show_progress {
    WEFT_SHOW_PROGRESS_OFF = -1,    /* never (any negative value) */
    WEFT_SHOW_PROGRESS_DEFAULT = 0, /* when WEFT_PROGRESS is set and not "0" */
    WEFT_SHOW_PROGRESS_ON = 1,      /* always (any positive value) */
} weft_show_progress;

typedef struct weft_map_options {
    size_t size;       /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    unsigned flags;    /* WEFT_MAP_* */
    size_t chunk_size; /* items per task; 0 = automatic from measured durations */
    int retries;       /* re-run an item that returned an error */
    uint64_t seed;     /* run seed; 0 = the executor's */
    size_t max_in_flight;        /* stream: items read but not delivered; 0 = 1024 * workers */
    weft_result_cb on_result;    /* optional: deliver results through this callback */
    void *arg;                   /* for on_result */
    weft_show_progress progress; /* progress bar on stderr (WEFT_SHOW_PROGRESS_*) */
    double timeout;              /* deadline in seconds from the call; 0 or WEFT_FOREVER = none:
                                 items not started by then are WEFT_ECANCELLED, items
                                 running then finish, and the map returns WEFT_ETIMEDOUT */
} weft_map_options;
/* weft_map_options o = WEFT_MAP_OPTIONS_INIT; records this header's size */
#define WEFT_MAP_OPTIONS_INIT            \
    {                                    \
        .size = sizeof(weft_map_options) \
    }

/* weft_map() :
 * Runs `fn` over `count` items of `item_size` bytes each, contiguous at
 * `items`, and waits for all of them. Each result reaches on_result as soon
 * as its chunk finishes (and, ordered, every earlier item has been given).
 * Ownership: `*out` (may be NULL when on_result is set) is the caller's,
 * freed with weft_results_destroy(); it is set even when items failed or
 * the deadline passed (each item's code tells whether it completed).
 * Threads: safe from any thread, including inside a task (it helps).
 * @return 0 if every item succeeded; otherwise the code an on_result
 * callback returned, WEFT_ETIMEDOUT (opts->timeout passed before every item
 * started), the error of the first failed item by index (details in the
 * results), WEFT_EINVAL (also when count * item_size overflows), WEFT_ENOMEM,
 * WEFT_ECLOSED. */
WEFT_API int weft_map(weft_executor *ex, weft_task_fn fn, const void *items, size_t item_size,
                      size_t count, const weft_map_options *opts, weft_results **out);

/* weft_map_bufs() : weft_map() over `count` buffers of any size. */
WEFT_API int weft_map_bufs(weft_executor *ex, weft_task_fn fn, const weft_buf *items, size_t count,
                           const weft_map_options *opts, weft_results **out);

/* weft_map_stream() :
 * weft_map() over items produced lazily by `next(arg, index, &item)`, called
 * on the calling thread; at most max_in_flight items are held at once, so an
 * input of unknown length runs in bounded memory when on_result is set and
 * `out` is NULL. Inputs are copied before `next` is called again. */
WEFT_API int weft_map_stream(weft_executor *ex, weft_task_fn fn, weft_input_cb next, void *arg,
                             const weft_map_options *opts, weft_results **out);

/* One input of weft_map_zip(): `count` items, either of `item_size` bytes
 * each, contiguous at `items`, or (when `bufs` is not NULL) the buffers
 * bufs[0..count) of any size. */
typedef struct weft_map_input {
    const void *items;
    size_t item_size;
    const weft_buf *bufs;
    size_t count;
} weft_map_input;

/* weft_map_zip() :
 * weft_map() over several inputs zipped, as Python's executor.map(fn, a, b):
 * item i calls `fn` once with item i of every input. The task reads them as
 * a graph task reads its arguments: weft_args_count(in, len, &count) gives count == ninputs and
 * weft_args_get(in, len, k, &data, &alen) gives item i of inputs[k] (the same
 * encoding on every backend). As Python's zip, the map stops at the shortest
 * input: it has min(inputs[k].count) items. Results, options, threads and
 * return codes are weft_map()'s. Inputs are read during the call only.
 * @return as weft_map(); WEFT_EINVAL also for ninputs 0 or over 2^20, a NULL
 * `inputs`, an input whose items are NULL, or a size that overflows. */
WEFT_API int weft_map_zip(weft_executor *ex, weft_task_fn fn, const weft_map_input *inputs,
                          size_t ninputs, const weft_map_options *opts, weft_results **out);

/* weft_results_count() : the number of items. */
WEFT_API size_t weft_results_count(const weft_results *r);
/* weft_results_get() :
 * Gives item `i`'s output (`data`, `len` may be NULL; owned by `r`).
 * @return 0, the item's error code, or WEFT_EINVAL for i out of range. */
WEFT_API int weft_results_get(const weft_results *r, size_t i, const void **data, size_t *len);
/* weft_results_gather() :
 * Copies every item's output, in item order, into the caller's array `dst`
 * of `count` elements of `elem_size` bytes (e.g. a map whose task outputs
 * one double: double y[n]; weft_results_gather(r, y, sizeof y[0], n)), so
 * a map over a plain array needs no loop of weft_results_get. Each output
 * must be exactly elem_size bytes. Threads: as weft_results_get; dst is
 * written, never kept.
 * @return 0; the first failed item's error code (its index in *bad when
 * `bad` is not NULL; items before it are copied); WEFT_EINVAL for NULL
 * arguments, count != weft_results_count(r), or an output of another size
 * (its index in *bad). */
WEFT_API int weft_results_gather(const weft_results *r, void *dst, size_t elem_size, size_t count,
                                 size_t *bad);
/* weft_results_error() : item `i`'s error message, or NULL if it succeeded. */
WEFT_API const char *weft_results_error(const weft_results *r, size_t i);
/* weft_results_failed() : the number of items that did not succeed. */
WEFT_API size_t weft_results_failed(const weft_results *r);
/* weft_results_destroy() : frees `r`; NULL is a no-op. @return 0. */
WEFT_API int weft_results_destroy(weft_results *r);

/* ------------------------------------------------------------------------
 * Trace
 * ------------------------------------------------------------------------ */

/* weft_trace_write() :
 * Writes the task-stream trace recorded so far (Chrome trace-event JSON,
 * opened by Perfetto and chrome://tracing) to `path`. Recording is on when
 * opts.trace_path or WEFT_TRACE was set, or after weft_trace_enable().
 * Threads: safe from any thread. @return 0, WEFT_EINVAL, or -errno of the file. */
WEFT_API int weft_trace_write(weft_executor *ex, const char *path);

/* weft_trace_enable() : starts recording task events on `ex`. */
WEFT_API int weft_trace_enable(weft_executor *ex);

/* weft_now() : monotonic seconds, for timing and tests. Threads: any;
 * async-signal-safe (clock_gettime). */
WEFT_API double weft_now(void);

#ifdef __cplusplus
}
#endif

/* The parts beyond the executor, one sub-header each. */
#include "weft/ipc.h"
#include "weft/proc.h"
#include "weft/sched.h"
#include "weft/sync.h"

#include "weft/queue.h" /* MPMC queue */
/* task graphs, batch calls, progress bars, task-stream pictures */
#include "weft/graph.h"
#include "weft/progress.h"
/* an on-disk memo of task results */
#include "weft/memo.h"
#include "weft/range.h" /* range loops: parallel for and reduce */
/* typed arrays, .npy / .npz files, big task arguments in shared memory */
#include "weft/array.h"
/* partitioned tables, CSV (on the graph layer) */
#include "weft/table.h"

/* bags: partitioned collections on the graph layer (dask.bag) */
#include "weft/bag.h"
/* parameter search: spaces, CV folds, a runner over any executor */
#include "weft/search.h"

#endif /* WEFT_H */

/* weft/graph.h : lazy task graphs (dask.delayed + compute), the argument
 * blocks their tasks read, and batch calls (joblib's Parallel + delayed).
 * Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_graph     a graph of calls built without running anything; compute
 *                  runs the nodes asked for, and only what they need, on any
 *                  executor, as many at once as dependencies allow
 *   weft_args_*    how a graph task reads its i-th argument's bytes
 *   weft_parallel  a list of calls run with joblib's n_jobs semantics,
 *                  results in order (a thin layer over weft_map)
 *
 * A graph node is a call of a registered task: weft_graph_call(g, fn, args)
 * with each argument either literal bytes (copied into the graph) or the
 * output of an earlier node. Nodes are small integers (weft_node) owned by
 * the graph, which allocates them in slabs: a node costs no malloc of its
 * own, and its lifetime is the graph's (weft_graph_destroy frees all). What
 * is reference-counted is a node's *output*: each consumer holds it until it
 * has run, and the output is freed as soon as its last consumer has read it,
 * unless the node is a target (kept until weft_graph_release) -- so the
 * memory of a compute follows the widest level of the graph, not its size.
 * docs/graph.md has the design and its reasons.
 *
 * Threads: a weft_graph is used by one thread at a time (build, compute,
 * read results, release); weft_graph_compute itself runs the tasks on the
 * executor's workers. Different graphs are independent. */
#ifndef WEFT_GRAPH_H
#define WEFT_GRAPH_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/graph.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Argument blocks: what a graph task receives as its input
 * ------------------------------------------------------------------------ */

/* A task is a task everywhere: a graph node of one argument passes that
 * argument's bytes to its task as they are, as weft_submit, weft_map and
 * weft_parallel pass their inputs, so one registered task runs unchanged
 * through all four. A node of several arguments (and a weft_map_zip item)
 * passes an argument block, which its task reads with these two calls
 * only; they read plain bytes as a single argument, so a task written
 * with them runs everywhere too. */

/* weft_args_count() :
 * Gives in `*count` the number of arguments in the input `in[0..len)` of a
 * task: the block's count, or 1 for plain bytes.
 * Threads: pure; any thread.
 * @return 0, or WEFT_EINVAL (`count` NULL, `in` NULL with len > 0, or a
 * block cut short: it declares more arguments than `len` holds; the
 * message says which); `*count` is 0 on error. */
WEFT_API int weft_args_count(const void *in, size_t len, size_t *count);

/* weft_args_get() :
 * Gives the bytes of argument `i` of the graph task input `in[0..len)`.
 * Ownership: `*data` points into the input (or, on the serial and threads
 * backends, into the producing node's output, which the graph keeps alive
 * while the task runs); valid only during the task's call. No alignment is
 * promised: memcpy multi-byte values out. `data` and `alen` may be NULL.
 * Plain bytes are argument 0 (the whole input).
 * Threads: pure; any thread.
 * @return 0, or WEFT_EINVAL (i >= the count; a block cut short: the entry
 * or the bytes of argument i lie past `len`; the message says which and
 * gives the count). A task that passes the code on without a message of
 * its own fails with this message. */
WEFT_API int weft_args_get(const void *in, size_t len, size_t i, const void **data, size_t *alen);

/* ------------------------------------------------------------------------
 * Graphs
 * ------------------------------------------------------------------------ */

typedef struct weft_graph weft_graph;

/* A node of a graph: an index, 0.. in creation order. */
typedef uint32_t weft_node;
#define WEFT_NODE_NONE ((weft_node)UINT32_MAX)

/* One argument of a call: the output of `node`, or (node == WEFT_NODE_NONE)
 * the literal bytes data[0..len), copied by weft_graph_call. */
typedef struct weft_arg {
    weft_node node;
    const void *data;
    size_t len;
} weft_arg;

/* weft_arg_node(), weft_arg_bytes() : build a weft_arg. */
static inline weft_arg weft_arg_node(weft_node n)
{
    weft_arg a = {n, NULL, 0};
    return a;
}
static inline weft_arg weft_arg_bytes(const void *data, size_t len)
{
    weft_arg a = {WEFT_NODE_NONE, data, len};
    return a;
}

enum {
    /* Merge identical calls (same task, same arguments: the same producer
     * nodes and equal literal bytes) into one node, found by a content hash
     * of the call as dask's tokenize (xxHash3). weft_graph_call then returns
     * the existing node. */
    WEFT_GRAPH_MERGE = 1u << 0,
};

typedef struct weft_graph_options {
    size_t size;    /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    unsigned flags; /* WEFT_GRAPH_* */
} weft_graph_options;
/* weft_graph_options o = WEFT_GRAPH_OPTIONS_INIT; records this header's size */
#define WEFT_GRAPH_OPTIONS_INIT            \
    {                                      \
        .size = sizeof(weft_graph_options) \
    }

/* weft_graph_create() :
 * Creates an empty graph (opts NULL = defaults).
 * Ownership: the caller destroys `*out` with weft_graph_destroy().
 * Threads: any thread.
 * @return 0, WEFT_EINVAL (NULL out, unknown flags), WEFT_ENOMEM; `*out` is
 * NULL on error. */
WEFT_API int weft_graph_create(const weft_graph_options *opts, weft_graph **out);

/* weft_graph_destroy() :
 * Frees the graph, its nodes and every output it still holds. NULL is a
 * no-op. Threads: not while a compute of `g` runs.
 * @return 0, WEFT_EBUSY (a compute of `g` is running: nothing freed). */
WEFT_API int weft_graph_destroy(weft_graph *g);

/* weft_graph_call() :
 * Adds the call fn(args[0..nargs)) as a node, without running anything, and
 * gives its id in `*out`. Literal argument bytes are copied; node arguments
 * must name existing nodes (so a graph is acyclic by construction). With
 * WEFT_GRAPH_MERGE an identical earlier call is returned instead.
 * `fn` should be registered (WEFT_TASK_REGISTER): backends that move tasks
 * across processes need its name.
 * Threads: the graph's thread.
 * @return 0, WEFT_EINVAL (NULL g/fn/out, args NULL with nargs > 0, an
 * unknown node, literal data NULL with len > 0, too many arguments),
 * WEFT_EBUSY (a compute of g is running), WEFT_ENOMEM; `*out` is
 * WEFT_NODE_NONE on error. */
WEFT_API int weft_graph_call(weft_graph *g, weft_task_fn fn, const weft_arg *args, size_t nargs,
                             weft_node *out);

/* weft_graph_future() :
 * Adds a node whose output is that of the future `f` -- a promise
 * (weft_promise_create) or a submitted task's future -- and gives its id in
 * `*out`; other nodes take it as an argument (weft_arg_node). A compute that
 * needs the node waits for `f` to finish, without running anything for it:
 * if `f` is done its output is the node's, if it failed or was cancelled
 * the node fails with its code (consumers with WEFT_EDEPEND). The graph
 * never cancels `f` (not with WEFT_COMPUTE_CANCEL_ON_ERROR either).
 * weft_graph_duration() is -1 for such a node; its task name is "future".
 * Ownership: the graph holds its own reference to `f` until
 * weft_graph_destroy; the caller keeps its own.
 * Threads: the graph's thread; `f` may be completed by any thread.
 * @return 0, WEFT_EINVAL (NULL argument), WEFT_EBUSY (a compute of g is
 * running), WEFT_ENOMEM; `*out` is WEFT_NODE_NONE on error. */
WEFT_API int weft_graph_future(weft_graph *g, weft_future *f, weft_node *out);

/* weft_graph_size() : the number of nodes in `g` (0 for NULL). */
WEFT_API size_t weft_graph_size(const weft_graph *g);

enum {
    /* On the first failure, cancel every node of this compute that has not
     * started (queued tasks are cancelled in the executor); without it,
     * branches that do not depend on the failed node still finish. */
    WEFT_COMPUTE_CANCEL_ON_ERROR = 1u << 0,
    /* Keep the output of every node computed, not only of the targets
     * (dask's persist of the whole graph); weft_graph_release frees them. */
    WEFT_COMPUTE_KEEP_ALL = 1u << 1,
    /* Look each node up in the executor's memo (weft_options.memo) before
     * running it, keyed by its task and argument bytes, and store its output
     * after (docs/memo.md); arguments are then copied on every backend. */
    WEFT_COMPUTE_MEMO = 1u << 8,
};

typedef struct weft_compute_options {
    size_t size;    /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    unsigned flags; /* WEFT_COMPUTE_* */
    int retries;    /* re-run a node whose task returned an error up to this many times */
    weft_show_progress progress; /* progress bar on stderr (WEFT_SHOW_PROGRESS_*) */
} weft_compute_options;
/* weft_compute_options o = WEFT_COMPUTE_OPTIONS_INIT; records this header's size */
#define WEFT_COMPUTE_OPTIONS_INIT            \
    {                                        \
        .size = sizeof(weft_compute_options) \
    }

/* weft_graph_compute() :
 * Runs the nodes `targets[0..n)` need, and only those, on `ex`, and waits
 * for them. Nodes whose output is held from an earlier compute (targets,
 * kept nodes) are not run again (persist). A node is submitted as soon as
 * its inputs are ready; each intermediate output is freed as soon as the
 * last node of this compute that reads it has run. The targets' outputs are
 * kept (weft_graph_result) until weft_graph_release or weft_graph_destroy.
 * A failing node stops everything that depends on it (those end with
 * WEFT_EDEPEND, naming the failed node and its task); other branches finish,
 * or are cancelled with WEFT_COMPUTE_CANCEL_ON_ERROR. Nodes that failed in
 * an earlier compute are run again when needed.
 * Works on every backend through the public executor API; a compute from
 * inside a task of `ex` helps run tasks while it waits.
 * Threads: the graph's thread; `ex` may be shared with other work.
 * @return 0 if every target is done; else the error of the first node that
 * failed (its code, e.g. WEFT_ETASK; WEFT_ECANCELLED), with
 * weft_last_error() naming the node and its task; WEFT_EINVAL (NULL
 * argument, unknown target, bad options), WEFT_EBUSY (a compute of `g` is
 * already running), WEFT_ENOMEM. */
WEFT_API int weft_graph_compute(weft_graph *g, weft_executor *ex, const weft_node *targets,
                                size_t n, const weft_compute_options *opts);

typedef enum weft_node_state {
    WEFT_NODE_NEW = 0,       /* never computed */
    WEFT_NODE_WAITING = 1,   /* in a compute, waiting for its inputs */
    WEFT_NODE_RUNNING = 2,   /* submitted to the executor */
    WEFT_NODE_DONE = 3,      /* finished; its output is held */
    WEFT_NODE_RELEASED = 4,  /* finished; its output was freed after use */
    WEFT_NODE_FAILED = 5,    /* its task failed, or an input's did (WEFT_EDEPEND) */
    WEFT_NODE_CANCELLED = 6, /* not run: cancelled after a failure */
} weft_node_state;

/* weft_graph_state() : a node's state (WEFT_NODE_NEW for an unknown node).
 * weft_node_state_name() : "new", "waiting", ..., "cancelled". */
WEFT_API weft_node_state weft_graph_state(const weft_graph *g, weft_node n);
WEFT_API const char *weft_node_state_name(weft_node_state s);

/* weft_graph_result() :
 * Gives the output of node `n`.
 * Ownership: `*data` belongs to the graph; valid until the node is released
 * (weft_graph_release), recomputed or the graph destroyed. `data`, `len`
 * may be NULL. Threads: the graph's thread.
 * @return 0; the node's error (its task's code, WEFT_EDEPEND,
 * WEFT_ECANCELLED); WEFT_EAGAIN (not computed, or its output was freed
 * after use: make it a target); WEFT_EINVAL. */
WEFT_API int weft_graph_result(const weft_graph *g, weft_node n, const void **data, size_t *len);

/* weft_graph_error() :
 * @return the error message of a failed or cancelled node (owned by the
 * graph, valid as weft_graph_result's data), or NULL if it has not failed. */
WEFT_API const char *weft_graph_error(const weft_graph *g, weft_node n);

/* weft_graph_duration() :
 * @return the seconds node `n`'s task ran in its last compute, or -1 if it
 * has not run. On serial and threads this is the task's own run time; on
 * other backends it includes the time the task waited in the queue. */
WEFT_API double weft_graph_duration(const weft_graph *g, weft_node n);

/* weft_graph_release() :
 * Frees the output of node `n` held as a target or kept node; the node
 * becomes WEFT_NODE_RELEASED and is computed again if a later compute needs
 * it. Threads: the graph's thread, not during a compute.
 * @return 0 (also if nothing was held), WEFT_EINVAL, WEFT_EBUSY. */
WEFT_API int weft_graph_release(weft_graph *g, weft_node n);

typedef struct weft_graph_stats {
    size_t nodes;        /* nodes in the graph */
    size_t merged;       /* weft_graph_call calls answered with an existing node */
    size_t executed;     /* tasks run, over every compute */
    size_t reused;       /* needed nodes not run because their output was held */
    size_t failed;       /* nodes that ended failed (task error or WEFT_EDEPEND) */
    size_t cancelled;    /* nodes cancelled */
    size_t outputs_live; /* outputs held now */
    size_t bytes_live;   /* bytes of those outputs (and of argument copies in flight) */
    size_t bytes_peak;   /* the most bytes_live has been, since the graph was created */
} weft_graph_stats;

/* weft_graph_stats_get() : fills `*st`. bytes_peak is exact: it is updated as
 * outputs are made and freed. Threads: the graph's thread (during a compute
 * from another thread the figures are a snapshot).
 * @return 0 or WEFT_EINVAL. */
WEFT_API int weft_graph_stats_get(const weft_graph *g, weft_graph_stats *st);

/* weft_graph_write_dot() :
 * Writes the graph in Graphviz DOT to `path` ("-" is stdout): one node per
 * call labelled with its task name, state and (after a compute) duration,
 * filled by state; an edge from each producer to each consumer, labelled
 * with the argument position when a task has several inputs.
 * `dot -Tsvg graph.dot -o graph.svg` draws it.
 * Threads: the graph's thread, not during a compute.
 * @return 0, WEFT_EINVAL, WEFT_EBUSY (a compute is running), or -errno of
 * the file. */
WEFT_API int weft_graph_write_dot(const weft_graph *g, const char *path);

/* ------------------------------------------------------------------------
 * Batch calls: joblib's Parallel(n_jobs)(delayed(f)(x) for x in xs)
 * ------------------------------------------------------------------------ */

/* One call: fn(in[0..len)). Calls of one batch may name different tasks. */
typedef struct weft_call {
    weft_task_fn fn;
    const void *in;
    size_t len;
} weft_call;

typedef struct weft_parallel_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    /* joblib's n_jobs: -1 all CPUs, -2 all but one (-k: CPUs + 1 - k, at
     * least 1), 1 runs serially in the calling thread (the serial backend),
     * N > 1 that many workers; 0 takes WEFT_WORKERS, else all CPUs. */
    int n_jobs;
    /* Backend for n_jobs != 1; 0 takes WEFT_BACKEND, else threads. */
    weft_backend backend;
    /* Run on this executor instead (n_jobs and backend are then ignored). */
    weft_executor *executor;
    size_t batch_size; /* calls per task; 0 = automatic (weft_map's chunking) */
    unsigned flags;    /* WEFT_MAP_STOP_ON_ERROR, WEFT_MAP_MEMO (needs `executor` with a memo) */
    int retries;       /* re-run a call that returned an error */
    weft_show_progress progress; /* progress bar on stderr (WEFT_SHOW_PROGRESS_*) */
} weft_parallel_options;
/* weft_parallel_options o = WEFT_PARALLEL_OPTIONS_INIT; records this header's size */
#define WEFT_PARALLEL_OPTIONS_INIT            \
    {                                         \
        .size = sizeof(weft_parallel_options) \
    }

/* weft_n_jobs_workers() :
 * Resolves joblib's n_jobs to a worker count in `*workers` (see
 * weft_parallel_options.n_jobs; 0 gives 0, "the executor's default").
 * @return 0, or WEFT_EINVAL (NULL workers). Threads: any. */
WEFT_API int weft_n_jobs_workers(int n_jobs, int *workers);

/* weft_parallel() :
 * Runs calls[0..n) in parallel and waits for all of them; results come in
 * call order in `*out`, as weft_map's (call i is item i: its index and seed
 * are i). Calls are batched automatically. When every call names the same
 * task this is weft_map_bufs itself; otherwise each call goes through a
 * small registered trampoline task, so heterogeneous calls also cross
 * process boundaries (their tasks must be registered there).
 * Ownership: `*out` is the caller's (weft_results_destroy); inputs are read
 * during the call only. Threads: any thread.
 * @return 0 if every call succeeded; otherwise as weft_map (the first failed
 * call's error by index), WEFT_EINVAL, WEFT_ENOMEM, or an executor creation
 * error (WEFT_ENOTSUP for a backend this build lacks). */
WEFT_API int weft_parallel(const weft_call *calls, size_t n, const weft_parallel_options *opts,
                           weft_results **out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_GRAPH_H */

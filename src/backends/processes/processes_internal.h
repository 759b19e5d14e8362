/* procs.h : internals of the processes backend (not installed).
 *
 * Three pieces:
 * - the fork server (forkserver.c): one small single-threaded process per
 *   program, forked by weft_init() (or by the first processes executor of a
 *   program that is still single-threaded). It forks the worker processes,
 *   reaps them, tells the owner how each one died, and kills them on
 *   request; with PR_SET_PDEATHSIG along the chain program -> server ->
 *   worker, nothing outlives the program.
 * - the worker process (remote.c): maps its arena (a memfd shared with the
 *   program), waits for requests on a futex, runs the tasks they name with
 *   their inputs read in place, writes outputs straight into the arena.
 * - the proxy (remote.c): one per worker process, driven by one worker
 *   thread of the executor. weft__proxy_run() sends a batch of items (plain
 *   futures or one map chunk), waits for them, and reports each item's
 *   result through a callback; a crash, a timeout or a memory-limit hit
 *   fails exactly the item that was running, a fresh worker replaces the
 *   dead one and the rest of the batch goes on.
 */
#ifndef WEFT_PROCS_H
#define WEFT_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/remote/remote.h"
#include "internal.h"

/* ---- fork server (forkserver.c) -------------------------------------------------- */

/* Starts the fork server if it is not running. `who` names the caller in
 * errors. Refuses (WEFT_ENOTSUP, naming weft_init) when the program already
 * has other threads, since forking then is not safe. */
int weft__fs_start(const char *who, void (*worker_main)(int memfd));
/* Forks a worker process from the server. The worker maps `memfd` and runs
 * weft__worker_main(memfd). Returns 0 and the pid, or an error. */
int weft__fs_spawn(int memfd, size_t memory_limit, pid_t *pid);
/* Sends `sig` to worker `pid` unless it was reaped already. */
int weft__fs_kill(pid_t pid, int sig);
/* The server's pid (0 if not running): tests look for leftover children. */
pid_t weft__fs_pid(void);
/* False once the server has died (it is reaped then). */
bool weft__fs_alive(void);
/* True in a worker process. */
bool weft__in_worker(void);

/* ---- the control block at the start of every arena --------------------------------- */

#define WEFT__ARENA_CTRL 4096u
#define WEFT__ARENA_RESERVE (1ull << 38) /* virtual range reserved per mapping */

typedef struct weft__wctl {
    uint32_t req_seq; /* owner: bumped after writing a request */
    uint32_t worker_sleeping;
    uint32_t dead;       /* set by the fork server when the worker was reaped */
    int32_t status;      /* its wait status */
    int64_t maxrss_kb;   /* its peak resident size */
    uint64_t arena_size; /* current memfd size (either side may grow it) */
    uint32_t done_items; /* items of the current request finished */
    uint32_t cur_item;   /* item running now */
    uint64_t item_t0;    /* when it started (monotonic ns) */
    int32_t crash_sig;   /* set by the worker's crash handler */
    int32_t crash_errno; /* errno when it crashed (ENOMEM: an allocation failed) */
    int32_t pid;
    uint32_t ready;
    uint32_t stop; /* owner: cancel the items not started */
    uint64_t memory_limit;
    /* large inputs: the worker asks the owner to write one into its memory */
    uint32_t xfer_req;   /* worker: bumped when xfer_addr is ready */
    uint32_t xfer_ack;   /* owner: = xfer_req once written (or refused) */
    int32_t xfer_status; /* owner: 0 written, else -errno */
    uint32_t xfer_item;  /* which item */
    uint64_t xfer_addr;  /* the worker's buffer */
    uint64_t probe_addr; /* a worker variable the owner reads to test the path */
    /* a finished item's output left in the worker's memory is read by the
     * owner before the worker starts the next item of the request (which
     * could kill it, and the output with it) */
    uint32_t pull_req; /* worker: bumped when done_items has such an output */
    uint32_t pull_ack; /* owner: = pull_req once it has reported those items */
    /* the part of a large input the owner writes (the worker reads the
     * rest itself from the owner's memory, at the same time) */
    uint64_t xfer_off, xfer_len;
    uint64_t xfer_ns;  /* owner: how long its part took (the worker balances the parts) */
    int32_t owner_pid; /* owner: the program */
    /* large outputs in the worker's shared segments (memfds): the owner
     * maps one and its future keeps it (no copy); seg_rel[i] = the
     * generation of segment i's output it read without keeping it */
    uint32_t seg_rel[2];
    /* worker: when it saw the request, had the first item's input in hand
     * (after its copy, on the process_vm path) and answered (monotonic ns),
     * stamped only for requests with phases asked (WEFT_PROCESSES_PHASES) */
    uint64_t ph_seen, ph_in, ph_resp;
    /* The response word and what goes with it, alone on a cache line: the
     * owner spins on resp_seq and the worker writes the line once per
     * response. resp_seq is bumped after every event the owner waits for:
     * a response (after resp_done), a transfer or hand-over asked (after
     * xfer_req, pull_req) and, by the fork server, a death (after dead). */
    uint32_t resp_seq __attribute__((aligned(64)));
    uint32_t resp_done; /* worker: the request number it has answered */
    uint32_t owner_sleeping;
} weft__wctl;
_Static_assert(sizeof(weft__wctl) <= WEFT__ARENA_CTRL, "the control block fits its page");

/* The worker process's main loop; never returns. */
void weft__worker_main(int memfd) __attribute__((noreturn));

/* ---- proxy (remote.c) ---------------------------------------------------------------- */

typedef struct weft__proxy weft__proxy;

typedef struct weft__proxy_opts {
    int id;
    double task_timeout; /* seconds, 0 = none */
    size_t memory_limit; /* bytes, 0 = none */
    int max_tasks;       /* recycle the worker after this many items, 0 = never */
    int crash_retries;   /* re-run a crashed / timed-out item on a fresh worker */
    size_t max_input;    /* 0 = no limit */
    weft_task_fn initializer, finalizer;
    const void *init_in;
    size_t init_len;
    uint64_t seed;
    bool keep_segments; /* the program keeps its mappings of output segments (adopt_segment) */
    /* Large inputs: 0 = written into the worker with process_vm_writev/readv
     * (the fallback); 1 = copied with memcpy into the worker's input segment
     * by the proxy's thread; 2 = the same, split with a second thread. */
    int in_copiers;
    bool phases; /* WEFT_PROCESSES_PHASES=1: one line on stderr per large request */
    /* Forced shutdown: once *force >= 2, the item running is stopped by
     * killing the worker (it fails with WEFT_ECANCELLED) and no item after
     * it starts. NULL: never. */
    _Atomic int *force;
} weft__proxy_opts;

/* Starts the worker process of a proxy and runs the initializer in it.
 * On failure returns the code and, in *msg (heap, may be NULL), why. */
int weft__proxy_create(const weft__proxy_opts *o, weft__proxy **out, char **msg);
/* Runs the finalizer in the worker, stops it, frees the proxy. */
void weft__proxy_destroy(weft__proxy *p);
/* Runs items[0..n) in the worker, in order, calling done(arg, i, result)
 * exactly once per item, in order (an item that left a large output in the
 * worker is reported, with those before it, while the next ones wait). When *stop becomes non-zero (or an item
 * fails and stop_on_error), the items not started are reported cancelled. */
void weft__proxy_run(weft__proxy *p, const weft__ritem *items, size_t n, _Atomic int *stop,
                     bool stop_on_error, weft__rdone_fn done, void *arg);
/* The direct path (processes.c): a submitting thread that holds the proxy
 * (no lane uses it) sends one item itself and the thread that collects it
 * (the one that waits for it, or the lane) finishes it.
 * weft__proxy_can_send(): whether the worker can take an item of `len`
 * input bytes now with nothing to do first (alive, no recycling, a small
 * input within max_input). weft__proxy_send(): writes the request for it;
 * 0, or an error code (with its message) and nothing was sent.
 * weft__proxy_finish(): waits for the response to that request and
 * reports the item through done() exactly once, as weft__proxy_run()
 * would (a crash, a timeout, a retry on a fresh worker). */
bool weft__proxy_can_send(weft__proxy *p, size_t len);
/* Whether the response to the request in flight is complete (and the
 * worker alive): collecting it then cannot block. Any thread. */
bool weft__proxy_answered(weft__proxy *p);
int weft__proxy_send(weft__proxy *p, const weft__ritem *it);
void weft__proxy_finish(weft__proxy *p, const weft__ritem *it, _Atomic int *stop,
                        weft__rdone_fn done, void *arg);
/* Tests: 1 = pass large payloads with process_vm_readv/writev, -1 = through
 * the arena, 0 = find out (the default; WEFT_NO_VM=1 in the environment
 * also forces the arena). */
void weft__procs_set_vm(int state);
/* Tests: the proxy thread stalls `seconds` once per request right before it
 * checks the running task's deadline, as a thread descheduled there on a
 * loaded machine would (0: off). */
void weft__procs_test_stall(double seconds);
/* Tests: the next `count` copies of a large input into a worker's input
 * segment kill that worker (SIGKILL) half-way through (0: off). */
void weft__procs_test_kill_in_fill(unsigned count);
/* In a worker process: when the running task started (monotonic ns, the
 * time its deadline counts from); 0 elsewhere. */
uint64_t weft__worker_item_t0(void);
/* One line on what the proxy's worker is doing (watchdog reports). */
void weft__proxy_describe(weft__proxy *p, uint64_t now, char *buf, size_t len);
/* pid of the worker process now (tests). */
pid_t weft__proxy_pid(const weft__proxy *p);

#endif

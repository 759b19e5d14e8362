/* exec_internal.h : the executor's insides, for the core and the backends
 * (not installed). The core owns these structures; a backend reads the
 * fields it needs and calls the weft__exec_* / weft__lane_* functions below
 * (src/core/executor.c). Nothing here names a backend. */
#ifndef WEFT_CORE_EXEC_INTERNAL_H
#define WEFT_CORE_EXEC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/backend.h"
#include "core/deque.h"
#include "internal.h"

#define MAX_WORKERS 4096
#define MAX_EXT_SLOTS 256
#define STATE_INLINE 64

typedef struct slot {
    weft__deque dq;
    _Atomic int64_t pushed WEFT__ALIGNED; /* written by the owner only */
    _Atomic(void *) owner;                /* thread token; NULL = free */
    bool shared;                          /* overflow slot: owner ops under shared_mu */
    bool push_only;                       /* external: the owner never pops, so
                                              thieves may take batches */
} slot;

struct weft__lane {
    _Atomic int64_t finished WEFT__ALIGNED;
    weft_executor *ex;
    int id;
    pthread_t th;
    bool started;
    slot *own;
    uint64_t rng;
    void *state;
    size_t state_len;
    bool state_heap;
    unsigned char state_inl[STATE_INLINE] __attribute__((aligned(16))); /* any scalar type */
    void *bdata;     /* the backend's lane state (processes: its proxy) */
    bool idle;       /* counted in ex->idle (shape.count_idle) */
    weft__spin spin; /* shape.one_spinner: this lane's idle spin budget */
};

struct weft_executor {
    uint64_t id;
    weft_backend backend;
    const weft__backend *ops; /* the backend behind the interface (core/backend.h) */
    unsigned caps;            /* ops->caps */
    void *bdata;              /* the backend's executor state (ops->create) */
    int nworkers;             /* lanes: worker threads of the core */
    int nreport;              /* what weft_executor_workers() reports */
    bool count_idle;          /* keep ex->idle (shape.count_idle) */
    uint64_t seed;
    uint64_t t0;
    weft_task_fn initializer, finalizer;
    void *init_in;
    size_t init_len;
    char *trace_path;
    _Atomic bool tracing;
    weft__trace_buf *trace; /* one per worker (serial: one) */
    int ntrace;
    size_t stack_size;

    weft__lane *workers;
    slot *slots[MAX_WORKERS + MAX_EXT_SLOTS];
    _Atomic int nslots;
    pthread_mutex_t slot_mu;
    pthread_mutex_t shared_mu;
    slot *shared_slot;

    _Atomic uint32_t epoch WEFT__ALIGNED;
    _Atomic int sleepers;
    _Atomic int waking;
    _Atomic int idle; /* count_idle: lanes looking for work, or about to (set_idle) */
    _Atomic uint32_t idle_epoch WEFT__ALIGNED;
    /* shape.one_spinner: the one lane allowed to spin for work (-1: none);
     * a submit wakes no sleeper while one spins (executor.c, "Spinning") */
    bool one_spinner;
    _Atomic int spin_tok WEFT__ALIGNED;
    _Atomic int closed;
    _Atomic int cancelling;
    _Atomic int stop;
    _Atomic int shut_done;
    _Atomic uint64_t next_index WEFT__ALIGNED;
    _Atomic int64_t finished_ext; /* tasks dropped by shutdown(CANCEL) itself */

    bool asym; /* membarrier available: submit needs no fence (see light_fence) */

    /* inline backends (WEFT__CAP_INLINE): tasks running inline right now,
     * and the one lane they run on */
    _Atomic int inline_running;
    weft__lane serial;

    /* the watchdog (WEFT__CAP_WATCHDOG) */
    _Atomic uint64_t last_done_ns;
    double watchdog;
    void (*watchdog_fn)(const char *report, void *arg);
    void *watchdog_arg;
    void (*on_stall)(void *arg, const weft_stall_info *info);
    void *on_stall_arg;
    bool watchdog_print;
    pthread_t watchdog_th;
    bool watchdog_started;
    _Atomic uint32_t watchdog_stop;

    /* exit behaviour (exit_join_all): on the exit list, guarded by exit_mu */
    weft_exit_mode exit_mode;
    int64_t exit_timeout_ns; /* 0: no limit */
    pid_t pid;               /* the process that created it */
    struct weft_executor *exit_next;
    int exit_pins;  /* exit_join_all is using it: destroy waits */
    bool exit_seen; /* exit_join_all handled it */

    /* weft_options.memo (core/memo_hook.h): consulted by flagged calls */
    weft_memo *memo;

    /* creation handshake */
    pthread_mutex_t init_mu;
    pthread_cond_t init_cv;
    int init_count;
    int init_err;
    char *init_msg;
};

/* ---- what the core offers its backends (executor.c) ---- */

/* Runs future f on the calling lane's thread (initializer state as the
 * worker state) and counts it finished: the threads backend's run(). */
void weft__lane_run_here(weft_executor *ex, weft__lane *l, weft_future *f);
/* Runs the executor's initializer / finalizer on lane l (state kept in l). */
int weft__lane_initializer(weft_executor *ex, weft__lane *l, char **msg);
void weft__lane_finalizer(weft_executor *ex, weft__lane *l);
/* The next future of lane l's own deque, or NULL; pushes one back. */
weft_future *weft__lane_pop(weft__lane *l);
int weft__lane_push(weft__lane *l, weft_future *f);
/* Counts k futures taken by lane l as finished (shutdown accounting). */
void weft__lane_finished(weft__lane *l, int64_t k);
/* count_idle: lane l is (not) looking for work. */
void weft__lane_set_idle(weft_executor *ex, weft__lane *l, bool idle);
/* shape.one_spinner: lane l is the one to spin for work from now on (it
 * will look at the queues before it sleeps). */
void weft__lane_spin_claim(weft_executor *ex, weft__lane *l);
/* Wakes one sleeping lane (work was left in a deque). */
void weft__exec_wake_one(weft_executor *ex);
/* Wakes every sleeping lane. */
void weft__exec_wake_all(weft_executor *ex);
/* A task the backend took at submit (its `submit` op) has finished: the
 * shutdown's count of pending tasks goes down. Any thread. */
void weft__exec_direct_done(weft_executor *ex);
/* Drops a taken future that was cancelled (its queue reference). */
void weft__exec_drop_cancelled(weft_executor *ex, weft_future *f, int lane);
/* Notes that tasks finished now (the watchdog's clock). */
void weft__executor_progress(weft_executor *ex);

#endif

/* processes.c : the processes backend behind the core's interface.
 *
 * Each lane (worker thread of the core's pool) drives one worker process
 * through its proxy (remote.c): the lane takes futures from the deques as
 * on threads, and sends them to its process in batches sized so that a
 * batch takes about REMOTE_BATCH_NS there (from the measured time per
 * task), but only what idle lanes cannot take (a task must not wait in a
 * batch behind a long one while another worker is idle). A map chunk goes
 * alone, through the map's chunk calls (backends/remote/remote.h). The
 * fork server (forkserver.c) is started by weft_init, or by the first
 * executor of a program that is still single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/processes/processes_internal.h"
#include "core/exec_internal.h"

#define REMOTE_BATCH_MAX 64
#define REMOTE_BATCH_NS 100000.0 /* aim: a batch takes about this long in the worker */

/* a lane's state */
typedef struct plane {
    weft__proxy *proxy;
    double item_ns; /* recent time per task in the worker process */
} plane;

static inline plane *pl_of(weft__lane *l)
{
    return l->bdata;
}

/* ---- batches of plain futures ---- */

typedef struct remote_batch {
    weft_executor *ex;
    weft__lane *w;
    weft_future **f;
    size_t n;
    double ns;
    bool claim; /* the lane goes back to its queues right after the batch */
} remote_batch;

/* Completes item i's future; the lane counts as idle before its last
 * result can be seen: whoever submits upon it finds the lane counted, and
 * finds it the lane that spins for work (so the next task goes to this
 * lane's worker process, still spinning, and wakes no other lane). A
 * future with callbacks (or waiters' lists) is completed first: its
 * callbacks run on this thread, and while a lane holds the spin no submit
 * wakes another lane, so a callback that waited for another task to run
 * would wait for good. */
static void remote_done(void *arg, size_t i, const weft__rres *r)
{
    remote_batch *b = arg;
    if (i >= b->n) return; /* not an item of this batch: no future to complete */
    bool last = i + 1 == b->n;
    bool early = last && b->claim &&
                 !(atomic_load_explicit(&b->f[i]->state, memory_order_relaxed) & WEFT__ST_LIST);
    if (last) weft__lane_set_idle(b->ex, b->w, true);
    if (early) weft__lane_spin_claim(b->ex, b->w);
    b->ns += (double)(r->t1 - r->t0);
    weft__exec_complete_remote(b->ex, b->w->id, b->f[i], r);
    if (last && b->claim && !early) weft__lane_spin_claim(b->ex, b->w);
}

static void run_chunk(weft_executor *ex, weft__lane *w, weft_future *f);

static void run_batch(weft_executor *ex, weft__lane *w, weft_future *first)
{
    plane *pl = pl_of(w);
    weft_future *fs[REMOTE_BATCH_MAX];
    weft__ritem items[REMOTE_BATCH_MAX];
    int max = 1;
    if (pl->item_ns > 0) {
        double m = REMOTE_BATCH_NS / pl->item_ns;
        max = m >= REMOTE_BATCH_MAX ? REMOTE_BATCH_MAX : m < 1 ? 1 : (int)m;
    } else {
        max = 1; /* nothing measured yet: a long task must not hold others back */
    }
    size_t n = 0;
    int64_t taken = 0;
    weft_future *f = first;
    for (;;) {
        taken++;
        if (weft__exec_start_remote(ex, f, w->id, &items[n])) {
            uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
            items[n].timeout = (st & WEFT__ST_DIRTY) ? f->timeout : 0;
            fs[n++] = f;
        }
        f = NULL;
        if ((int)n >= max) break;
        /* Batch only what idle workers cannot take: a task must not wait
         * in this batch behind a long one while another worker is idle
         * (tasks that wait for each other would never finish). */
        if (weft__deque_size(&w->own->dq) <= atomic_load(&ex->idle)) break;
        f = weft__lane_pop(w);
        if (!f) break;
        if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) {
            if (weft__lane_push(w, f) == 0) f = NULL; /* a map chunk goes alone */
            break;
        }
    }
    if (n) {
        /* this thread blocks now: an idle worker must see what it leaves */
        if (weft__deque_size(&w->own->dq) > 0) weft__exec_wake_one(ex);
        /* a worker recycled after the batch (max_tasks_per_worker) runs its
         * finalizer first: then the lane claims the spin only when back */
        const weft__proxy_opts *po = weft__exec_data(ex);
        remote_batch b = {ex, w, fs, n, 0, po->max_tasks == 0};
        weft__proxy_run(pl->proxy, items, n, &ex->cancelling, false, remote_done, &b);
        double per = b.ns / (double)n;
        pl->item_ns = pl->item_ns > 0 ? 0.5 * pl->item_ns + 0.5 * per : per;
        if (pl->item_ns < 1) pl->item_ns = 1;
        weft__executor_progress(ex);
    }
    weft__lane_finished(w, taken);
    if (f) run_chunk(ex, w, f); /* a chunk that could not go back to the deque */
}

/* ---- map chunks ---- */

static void chunk_item_done(void *arg, size_t i, const weft__rres *r)
{
    weft__map_chunk_item(arg, i, r);
}

static void run_chunk(weft_executor *ex, weft__lane *w, weft_future *f)
{
    weft__ritem *items = NULL;
    size_t n = 0;
    bool stop_on_error = false;
    weft__rchunk *r = weft__map_chunk_open(f, &items, &n, &stop_on_error);
    if (r) {
        weft__proxy_run(pl_of(w)->proxy, items, n, weft__map_chunk_stop(r), stop_on_error,
                        chunk_item_done, r);
        free(items);
        weft__map_chunk_close(r, w->id);
    }
    weft__lane_finished(w, 1);
    weft__executor_progress(ex);
}

static void processes_run(weft_executor *ex, weft__lane *w, weft_future *f)
{
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL)
        run_chunk(ex, w, f);
    else
        run_batch(ex, w, f);
}

/* ---- the interface ---- */

static int processes_create(const weft_options *opts, weft__shape *shape, void **data)
{
    if (weft__worker_process)
        return weft__err(WEFT_ENOTSUP, "weft_executor_create: not inside a worker process of "
                                       "the processes backend (nested pools are refused)");
    if (opts->processes.task_timeout < 0 ||
        opts->processes.task_timeout != opts->processes.task_timeout)
        return weft__err(WEFT_EINVAL, "weft_executor_create: task_timeout and watchdog must "
                                      "be >= 0 seconds");
    if (opts->processes.max_tasks_per_worker < 0 || opts->processes.crash_retries < 0)
        return weft__err(WEFT_EINVAL, "weft_executor_create: negative %s",
                         opts->processes.crash_retries < 0 ? "crash_retries"
                                                           : "max_tasks_per_worker");
    int rc = weft__check_hooks_registered(opts->initializer, opts->finalizer, "processes");
    if (rc) return rc;
    rc = weft__fs_start("weft_executor_create", weft__worker_main);
    if (rc) return rc;
    weft__proxy_opts *po = calloc(1, sizeof *po);
    if (!po) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    po->task_timeout = opts->processes.task_timeout;
    po->memory_limit = opts->processes.memory_limit;
    po->max_tasks = opts->processes.max_tasks_per_worker;
    po->crash_retries = opts->processes.crash_retries;
    po->max_input = opts->processes.max_input;
    po->initializer = opts->initializer;
    po->finalizer = opts->finalizer;
    shape->count_idle = true;
    shape->one_spinner = true;
    *data = po;
    return 0;
}

static int processes_lane_open(weft_executor *ex, weft__lane *l, char **msg)
{
    plane *pl = calloc(1, sizeof *pl);
    if (!pl) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    weft__proxy_opts po = *(const weft__proxy_opts *)weft__exec_data(ex);
    po.id = l->id;
    po.seed = ex->seed;
    po.init_in = ex->init_in;
    po.init_len = ex->init_len;
    po.force = &ex->cancelling; /* 2: a forced shutdown kills running workers */
    int rc = weft__proxy_create(&po, &pl->proxy, msg);
    if (rc) {
        free(pl);
        return rc;
    }
    l->bdata = pl;
    return 0;
}

static void processes_lane_close(weft_executor *ex, weft__lane *l)
{
    (void)ex;
    plane *pl = pl_of(l);
    if (!pl) return;
    weft__proxy_destroy(pl->proxy); /* runs the finalizer in the worker process */
    free(pl);
    l->bdata = NULL;
}

static void processes_describe(weft_executor *ex, weft__lane *l, uint64_t now, char *buf,
                               size_t len)
{
    (void)ex;
    plane *pl = pl_of(l);
    if (pl && pl->proxy)
        weft__proxy_describe(pl->proxy, now, buf, len);
    else
        snprintf(buf, len, "worker %d: no process", l->id);
}

static int processes_init(weft__init_ctx *c)
{
    /* The fork server, while the program is single-threaded. A remote
     * worker (an mpi rank other than 0) never uses this backend. Under a
     * launcher, a program that initialized MPI itself has threads already:
     * no server then, and a processes executor says so when created. */
    if (c->remote_worker) return 0;
    int rc = weft__fs_start("weft_init", weft__worker_main);
    return c->launched ? 0 : rc;
}

const weft__backend weft__backend_processes = {
    .kind = WEFT_BACKEND_PROCESSES,
    .name = "processes",
    .caps = WEFT__CAP_NAMED_TASKS | WEFT__CAP_HELPS | WEFT__CAP_WATCHDOG,
    .init = processes_init,
    .create = processes_create,
    .lane_open = processes_lane_open,
    .run = processes_run,
    .lane_close = processes_lane_close,
    .describe = processes_describe,
    .destroy = free,
};

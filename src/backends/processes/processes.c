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

/* ---- the direct path ----
 * A submit from a thread that is not a lane, when a worker process is
 * free, does not go through a lane: the submitting thread writes the task
 * into that worker's arena itself (weft__proxy_send), and the thread that
 * then waits for the future without a time limit collects the result
 * itself (claim: weft__proxy_finish on its own thread) -- a round trip is
 * caller -> worker process -> caller, two processes spinning on two
 * cores, as a channel ping-pong, instead of caller -> lane -> worker ->
 * lane -> caller with three threads busy. The lane is the backstop: it
 * collects a request nobody claimed (a future never waited for, or waited
 * for with a time limit, in weft_wait, by callbacks) after DIRECT_GRACE_NS,
 * or at once when a waiter about to sleep kicks it, so that timeouts,
 * crashes and callbacks work as on the lane's own path.
 *
 * Who may use a lane's proxy is one word (dslot.word: a state and a
 * generation, bumped by every direct send): FREE; SENDING (a submitter
 * writes a request); SENT (in flight, not collected); CLAIMED (a thread
 * collects it); BUSY (the lane runs its batches); CLOSED. Every change is
 * a CAS, so exactly one thread holds the proxy at a time, and the
 * generation makes a claim of a stale SENT fail. The records are never
 * freed (a pool reused by later executors): a waiter may hold a pointer
 * to one (f->job) after its executor is gone; claim and kick check the
 * generation and the future before they touch anything else, and kick
 * pins the record while it wakes the executor (lane_close waits).
 *
 * Idle cost: a lane whose worker takes direct sends sleeps at most
 * DIRECT_TICK_NS at a time (its backstop) while the executor is in use;
 * DIRECT_ACTIVE_NS after the last send to it, it sleeps until woken, and
 * a submit then does not send to it directly (forever, set by the lane
 * before it sleeps and read by the submitter after it took the word: one
 * of them sees the other) but queues the task, which wakes the lane. */
#define DIRECT_GRACE_NS 100000      /* the waiter's time to claim before the lane collects */
#define DIRECT_TICK_NS 1000000      /* the lane's longest sleep while sends come */
#define DIRECT_ACTIVE_NS 200000000u /* sends this recent keep the lane on ticks */

enum {
    D_FREE,
    D_SENDING,
    D_SENT,
    D_CLAIMED,
    D_BUSY,
    D_CLOSED
};
#define D_ST(w) ((unsigned)((w)&0xffu))
#define D_WITH(w, st) (((w) & ~(uint64_t)0xffu) | (st))

typedef struct dslot {
    weft__direct hook; /* first: f->job points here */
    _Atomic uint64_t word;
    _Atomic(weft_future *) fut; /* the future of the request in flight */
    weft__ritem item;           /* its item (written in SENDING) */
    weft_executor *ex;
    weft__lane *lane;
    weft__proxy *proxy;
    _Atomic uint64_t sent_ns;   /* when it was sent */
    _Atomic uint64_t active_ns; /* the last send (or batch) */
    _Atomic uint32_t kicked;    /* a waiter sleeps on it: collect at once */
    _Atomic uint32_t forever;   /* the lane sleeps until woken: no direct sends */
    _Atomic uint32_t free_seq;  /* bumped when the word goes back to FREE */
    _Atomic uint32_t waiters;   /* threads waiting for FREE */
    _Atomic uint32_t pins;      /* kicks under way */
    _Atomic uint32_t tail;      /* BUSY: the lane reported its batch's last item */
    _Atomic uint64_t item_ns;   /* the lane's recent time per task, ns (batches and direct tasks) */
    struct dslot *next;         /* the pool */
} dslot;

static pthread_mutex_t dpool_mu = PTHREAD_MUTEX_INITIALIZER;
static dslot *dpool;

static bool d_claim(weft__direct *h, weft_future *f);
static bool d_poll(weft__direct *h, weft_future *f);
static void d_kick(weft__direct *h, weft_future *f);

static dslot *d_get(void)
{
    pthread_mutex_lock(&dpool_mu);
    dslot *d = dpool;
    if (d) dpool = d->next;
    pthread_mutex_unlock(&dpool_mu);
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d) return NULL;
        d->hook.claim = d_claim;
        d->hook.poll = d_poll;
        d->hook.kick = d_kick;
        atomic_init(&d->word, D_CLOSED);
    }
    return d;
}

static void d_put(dslot *d)
{
    pthread_mutex_lock(&dpool_mu);
    d->next = dpool;
    dpool = d;
    pthread_mutex_unlock(&dpool_mu);
}

/* Hands the proxy back (from SENDING, CLAIMED or BUSY). */
static void d_release(dslot *d)
{
    uint64_t w = atomic_load_explicit(&d->word, memory_order_relaxed);
    atomic_store_explicit(&d->word, D_WITH(w, D_FREE), memory_order_seq_cst);
    atomic_fetch_add_explicit(&d->free_seq, 1, memory_order_release);
    if (atomic_load_explicit(&d->waiters, memory_order_seq_cst))
        weft__futex_wake(&d->free_seq, INT32_MAX);
}

typedef struct dctx {
    dslot *d;
    weft_future *f;
} dctx;

/* The direct item's result: finishes its future (on the collecting thread). */
static void d_done(void *arg, size_t i, const weft__rres *r)
{
    dctx *c = arg;
    if (i != 0) return;
    weft_executor *ex = c->d->ex;
    __atomic_store_n(&c->f->job, NULL, __ATOMIC_RELEASE); /* before it can be freed */
    if (r->t1 > r->t0) { /* the lane sizes its batches from it too (one holder at a time) */
        uint64_t o = atomic_load_explicit(&c->d->item_ns, memory_order_relaxed);
        uint64_t dn = r->t1 - r->t0;
        atomic_store_explicit(&c->d->item_ns, o ? (o + dn) / 2 : dn, memory_order_relaxed);
    }
    weft__exec_complete_remote(ex, c->d->lane->id, c->f, r);
    weft__exec_direct_done(ex);
    weft__executor_progress(ex);
}

/* Collects the request in flight; the caller holds the word CLAIMED. */
static void d_collect(dslot *d)
{
    dctx c = {d, atomic_load_explicit(&d->fut, memory_order_relaxed)};
    atomic_store_explicit(&d->kicked, 0, memory_order_relaxed);
    weft__proxy_finish(d->proxy, &d->item, &d->ex->cancelling, d_done, &c);
    d_release(d);
}

/* A future with callbacks is left to the lane: they run there (where a
 * callback that waits for another task of this executor helps). */
static bool has_callbacks(weft_future *f)
{
    return (atomic_load_explicit(&f->state, memory_order_acquire) & WEFT__ST_LIST) != 0;
}

static bool d_claim(weft__direct *h, weft_future *f)
{
    dslot *d = (dslot *)h;
    if (has_callbacks(f)) return false;
    uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
    if (D_ST(w) != D_SENT || atomic_load_explicit(&d->fut, memory_order_relaxed) != f) return false;
    if (!atomic_compare_exchange_strong_explicit(&d->word, &w, D_WITH(w, D_CLAIMED),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    d_collect(d);
    return true;
}

/* Collects f's result if it is there already (pinned: lane_close waits
 * before the proxy goes). */
static bool d_poll(weft__direct *h, weft_future *f)
{
    dslot *d = (dslot *)h;
    if (has_callbacks(f)) return false;
    bool took = false;
    atomic_fetch_add_explicit(&d->pins, 1, memory_order_seq_cst);
    uint64_t w = atomic_load_explicit(&d->word, memory_order_seq_cst);
    if (D_ST(w) == D_SENT && atomic_load_explicit(&d->fut, memory_order_relaxed) == f &&
        weft__proxy_answered(d->proxy) &&
        atomic_compare_exchange_strong_explicit(&d->word, &w, D_WITH(w, D_CLAIMED),
                                                memory_order_acq_rel, memory_order_relaxed))
        took = true;
    atomic_fetch_sub_explicit(&d->pins, 1, memory_order_release);
    if (took) d_collect(d);
    return took;
}

static void d_kick(weft__direct *h, weft_future *f)
{
    dslot *d = (dslot *)h;
    atomic_fetch_add_explicit(&d->pins, 1, memory_order_seq_cst);
    uint64_t w = atomic_load_explicit(&d->word, memory_order_seq_cst);
    if (D_ST(w) == D_SENT && atomic_load_explicit(&d->fut, memory_order_relaxed) == f &&
        !atomic_exchange_explicit(&d->kicked, 1, memory_order_relaxed))
        weft__exec_wake_all(d->ex); /* its lane collects it now */
    atomic_fetch_sub_explicit(&d->pins, 1, memory_order_release);
}

/* Takes the proxy for the lane (to = D_BUSY) or for good (D_CLOSED), or
 * waits until it is free (D_FREE): a request nobody collects is collected
 * first; one a waiter collects is waited for. */
static void d_acquire(dslot *d, unsigned to)
{
    for (;;) {
        uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
        unsigned st = D_ST(w);
        if (st == D_FREE) {
            if (to == D_FREE) return; /* only waited for it */
            if (atomic_compare_exchange_strong_explicit(&d->word, &w, D_WITH(w, to),
                                                        memory_order_seq_cst, memory_order_relaxed))
                return;
            continue;
        }
        if (st == D_SENT) {
            if (atomic_compare_exchange_strong_explicit(&d->word, &w, D_WITH(w, D_CLAIMED),
                                                        memory_order_acq_rel, memory_order_relaxed))
                d_collect(d);
            continue;
        }
        /* SENDING (a moment) or CLAIMED (its waiter collects it) */
        uint32_t s = atomic_load_explicit(&d->free_seq, memory_order_acquire);
        atomic_fetch_add_explicit(&d->waiters, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&d->word, memory_order_seq_cst) == w)
            weft__futex_wait(&d->free_seq, s, 1000000);
        atomic_fetch_sub_explicit(&d->waiters, 1, memory_order_relaxed);
    }
}

/* Sends f to lane k's worker if it is free; true if f was taken. */
static bool d_send(weft_executor *ex, dslot *d, weft_future *f)
{
    uint64_t w = atomic_load_explicit(&d->word, memory_order_relaxed);
    if (D_ST(w) != D_FREE || atomic_load_explicit(&d->forever, memory_order_relaxed)) return false;
    uint64_t mine = (((w >> 8) + 1) << 8) | D_SENDING; /* a new generation */
    if (!atomic_compare_exchange_strong_explicit(&d->word, &w, mine, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return false;
    if (atomic_load_explicit(&d->forever, memory_order_seq_cst) ||
        !weft__proxy_can_send(d->proxy, f->in_len)) {
        d_release(d);
        return false;
    }
    weft__ritem it;
    if (!weft__exec_start_remote(ex, f, d->lane->id, &it)) { /* cancelled: dropped */
        d_release(d);
        weft__exec_direct_done(ex);
        return true;
    }
    uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    it.timeout = (st & WEFT__ST_DIRTY) ? f->timeout : 0;
    d->item = it;
    atomic_store_explicit(&d->fut, f, memory_order_relaxed);
    int rc = weft__proxy_send(d->proxy, &d->item);
    if (rc) { /* nothing sent: f fails with why */
        weft__rres res = {rc, NULL, 0, 0, 0, weft_last_error(), 0, 0, NULL};
        res.t0 = res.t1 = weft__now_ns();
        dctx c = {d, f};
        d_done(&c, 0, &res);
        d_release(d);
        return true;
    }
    uint64_t now = weft__now_ns();
    atomic_store_explicit(&d->sent_ns, now, memory_order_relaxed);
    atomic_store_explicit(&d->active_ns, now, memory_order_relaxed);
    __atomic_store_n(&f->job, (void *)&d->hook, __ATOMIC_RELEASE); /* waiters may claim it */
    atomic_store_explicit(&d->word, D_WITH(mine, D_SENT), memory_order_seq_cst);
    return true;
}

/* the executor's state (the proxies' options first: lanes copy them) */
typedef struct pexec {
    weft__proxy_opts po;
    bool direct;      /* the direct path is on (WEFT_PROCESSES_DIRECT=0: off) */
    _Atomic int hint; /* the lane whose worker answered a direct send last */
} pexec;

/* a lane's state */
typedef struct plane {
    weft__proxy *proxy;
    double item_ns; /* recent time per task in the worker process */
    dslot *d;       /* the direct path's record (NULL: none) */
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
    if (last && pl_of(b->w)->d) /* a submit may wait the moment until the proxy is free */
        atomic_store_explicit(&pl_of(b->w)->d->tail, 1, memory_order_relaxed);
    if (early) weft__lane_spin_claim(b->ex, b->w);
    b->ns += (double)(r->t1 - r->t0);
    weft__exec_complete_remote(b->ex, b->w->id, b->f[i], r);
    if (last && b->claim && !early) weft__lane_spin_claim(b->ex, b->w);
}

static void run_chunk(weft_executor *ex, weft__lane *w, weft_future *f);

static void run_batch(weft_executor *ex, weft__lane *w, weft_future *first)
{
    plane *pl = pl_of(w);
    if (pl->d) { /* direct tasks ran in this worker meanwhile: their times count */
        uint64_t dn = atomic_load_explicit(&pl->d->item_ns, memory_order_relaxed);
        if (dn) pl->item_ns = (double)dn;
    }
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
        const weft__proxy_opts *po = &((const pexec *)weft__exec_data(ex))->po;
        remote_batch b = {ex, w, fs, n, 0, po->max_tasks == 0};
        weft__proxy_run(pl->proxy, items, n, &ex->cancelling, false, remote_done, &b);
        double per = b.ns / (double)n;
        pl->item_ns = pl->item_ns > 0 ? 0.5 * pl->item_ns + 0.5 * per : per;
        if (pl->item_ns < 1) pl->item_ns = 1;
        if (pl->d)
            atomic_store_explicit(&pl->d->item_ns, (uint64_t)pl->item_ns, memory_order_relaxed);
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
    dslot *d = pl_of(w)->d;
    if (d) { /* the proxy is the lane's for the batch */
        atomic_store_explicit(&d->forever, 0, memory_order_relaxed);
        atomic_store_explicit(&d->active_ns, weft__now_ns(), memory_order_relaxed);
        if (D_ST(atomic_load_explicit(&d->word, memory_order_acquire)) != D_FREE &&
            weft__lane_push(w, f) == 0) {
            /* Its worker runs a direct task: f must not wait behind it while
             * another worker may be free (tasks that wait for each other
             * would never finish). Another lane may take f meanwhile; this
             * one collects the direct task (or waits while its waiter does),
             * then looks for work again. */
            weft__exec_wake_one(ex);
            d_acquire(d, D_FREE);
            return;
        }
        d_acquire(d, D_BUSY);
        atomic_store_explicit(&d->tail, 0, memory_order_relaxed);
    }
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL)
        run_chunk(ex, w, f);
    else
        run_batch(ex, w, f);
    if (d) d_release(d);
}

/* The submit of a plain task from a thread that is not a lane: sent
 * straight to a free worker process if there is one (the one that
 * answered last first: it is the one still spinning). */
static bool processes_submit(weft_executor *ex, weft_future *f)
{
    pexec *pe = weft__exec_data(ex);
    int n = ex->nworkers;
    /* only when a lane is idle: a burst of submits queues as before */
    if (!pe->direct || n < 1 || atomic_load_explicit(&ex->idle, memory_order_relaxed) <= 0)
        return false;
    int h = atomic_load_explicit(&pe->hint, memory_order_relaxed);
    if (h < 0 || h >= n) h = 0;
    for (int k = 0; k < n; k++) {
        int i = (h + k) % n;
        plane *pl = pl_of(&ex->workers[i]);
        dslot *d = pl ? pl->d : NULL;
        if (!d) continue;
        if (atomic_load_explicit(&d->tail, memory_order_relaxed)) {
            /* its lane is reporting the last result of a batch: the proxy
             * is free in a moment (else every next task takes the lane
             * path again, with three threads busy per round trip) */
            uint64_t t0 = weft__now_ns();
            while (D_ST(atomic_load_explicit(&d->word, memory_order_relaxed)) == D_BUSY &&
                   atomic_load_explicit(&d->tail, memory_order_relaxed) &&
                   weft__now_ns() - t0 < 5000)
                weft__cpu_relax();
        }
        if (d_send(ex, d, f)) {
            if (i != h) atomic_store_explicit(&pe->hint, i, memory_order_relaxed);
            return true;
        }
    }
    return false;
}

/* A lane with no work: collects a direct request of its worker that no
 * waiter claimed (after the grace, or at once when kicked); says how long
 * to sleep (its tick while direct sends come, else until woken). */
static int64_t processes_idle(weft_executor *ex, weft__lane *l)
{
    plane *pl = pl_of(l);
    dslot *d = pl ? pl->d : NULL;
    if (!d) return -1;
    atomic_store_explicit(&d->forever, 0, memory_order_relaxed);
    uint64_t now = weft__now_ns();
    uint64_t w = atomic_load_explicit(&d->word, memory_order_acquire);
    if (D_ST(w) == D_SENT) {
        uint64_t age = now - atomic_load_explicit(&d->sent_ns, memory_order_relaxed);
        if (age < DIRECT_GRACE_NS && !atomic_load_explicit(&d->kicked, memory_order_relaxed))
            return (int64_t)(DIRECT_GRACE_NS - age);
        if (atomic_compare_exchange_strong_explicit(&d->word, &w, D_WITH(w, D_CLAIMED),
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            weft__lane_set_idle(ex, l, false); /* busy with it (batches count idle lanes) */
            d_collect(d);
        }
        return 0;
    }
    if (D_ST(w) == D_SENDING) return DIRECT_GRACE_NS;
    uint64_t act = atomic_load_explicit(&d->active_ns, memory_order_relaxed);
    if (act > now || now - act < DIRECT_ACTIVE_NS) return DIRECT_TICK_NS;
    /* quiet: sleep until woken; a submit from now on queues (and wakes) */
    atomic_store_explicit(&d->forever, 1, memory_order_seq_cst);
    w = atomic_load_explicit(&d->word, memory_order_seq_cst);
    if (D_ST(w) == D_SENDING || D_ST(w) == D_SENT) {
        atomic_store_explicit(&d->forever, 0, memory_order_relaxed);
        return 0; /* a send came meanwhile: look again */
    }
    return -1;
}

/* ---- the interface ---- */

/* A 0/1 tuning switch from the environment (default 1): 0 or 1, or -1
 * with the error set (a malformed value is refused, docs/api.md). */
static int env_switch(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) return 1;
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
        weft__err(WEFT_EINVAL, "weft_executor_create: %s is '%s', not 0 or 1", name, v);
        return -1;
    }
    return v[0] == '1';
}

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
    pexec *pe = calloc(1, sizeof *pe);
    if (!pe) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    weft__proxy_opts *po = &pe->po;
    /* tuning, for comparisons: 0 sends every task through a lane, 0 maps
     * every large output anew (docs/api.md, environment variables) */
    int direct = env_switch("WEFT_PROCESSES_DIRECT");
    int keep = direct < 0 ? -1 : env_switch("WEFT_PROCESSES_KEEP_SEGMENTS");
    if (keep < 0) {
        free(pe);
        return WEFT_EINVAL;
    }
    pe->direct = direct == 1;
    po->keep_segments = keep == 1;
    /* large inputs: 0 process_vm, 1 memcpy by one thread, 2 by two (remote.c) */
    const char *ic = getenv("WEFT_PROCESSES_INPUT_COPY");
    po->in_copiers = 2;
    if (ic && *ic) {
        if (strcmp(ic, "0") != 0 && strcmp(ic, "1") != 0 && strcmp(ic, "2") != 0) {
            free(pe);
            return weft__err(WEFT_EINVAL,
                             "weft_executor_create: WEFT_PROCESSES_INPUT_COPY is '%s', not 0, 1 "
                             "or 2",
                             ic);
        }
        po->in_copiers = ic[0] - '0';
    }
    const char *ph = getenv("WEFT_PROCESSES_PHASES");
    po->phases = ph && strcmp(ph, "1") == 0;
    po->task_timeout = opts->processes.task_timeout;
    po->memory_limit = opts->processes.memory_limit;
    po->max_tasks = opts->processes.max_tasks_per_worker;
    po->crash_retries = opts->processes.crash_retries;
    po->max_input = opts->processes.max_input;
    po->initializer = opts->initializer;
    po->finalizer = opts->finalizer;
    shape->count_idle = true;
    shape->one_spinner = true;
    *data = pe;
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
    dslot *d = ((const pexec *)weft__exec_data(ex))->direct ? d_get() : NULL;
    if (d) { /* no direct path without it: the lane takes every task */
        d->ex = ex;
        d->lane = l;
        d->proxy = pl->proxy;
        atomic_store_explicit(&d->kicked, 0, memory_order_relaxed);
        atomic_store_explicit(&d->forever, 0, memory_order_relaxed);
        atomic_store_explicit(&d->item_ns, 0, memory_order_relaxed);
        atomic_store_explicit(&d->tail, 0, memory_order_relaxed);
        atomic_store_explicit(&d->active_ns, weft__now_ns(), memory_order_relaxed);
        uint64_t w = atomic_load_explicit(&d->word, memory_order_relaxed);
        atomic_store_explicit(&d->word, D_WITH(w, D_FREE), memory_order_release);
        pl->d = d;
    }
    l->bdata = pl;
    return 0;
}

static void processes_lane_close(weft_executor *ex, weft__lane *l)
{
    (void)ex;
    plane *pl = pl_of(l);
    if (!pl) return;
    if (pl->d) { /* a direct request in flight is collected first */
        d_acquire(pl->d, D_CLOSED);
        while (atomic_load_explicit(&pl->d->pins, memory_order_seq_cst)) weft__yield();
        d_put(pl->d);
        pl->d = NULL;
    }
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
    .caps = WEFT__CAP_NAMED_TASKS | WEFT__CAP_HELPS | WEFT__CAP_WATCHDOG | WEFT__CAP_SAME_HOST,
    .init = processes_init,
    .create = processes_create,
    .lane_open = processes_lane_open,
    .run = processes_run,
    .submit = processes_submit,
    .idle = processes_idle,
    .lane_close = processes_lane_close,
    .describe = processes_describe,
    .destroy = free,
};

/* executor.c : the executor, its serial backend and its threads backend.
 *
 * Threads backend design
 * ----------------------
 * Work lives in Chase-Lev deques (deque.h), one per "slot". Slots
 * [0, workers) belong to the worker threads; a thread that is not a worker
 * and submits gets a slot of its own on its first submit (kept in a
 * thread-local cache), so submitting is a push onto a deque only its thread
 * writes: no lock and no shared counter on the hot path. Workers pop their
 * own deque (LIFO, cache-warm, depth-first for nested work) and steal from
 * any slot, starting at a random one. A thread that exits gives its slot up
 * (owner = NULL) and a later thread adopts it.
 *
 * Sleeping: an idle worker spins on steal attempts for IDLE_SPIN_NS, then
 * announces itself in `sleepers`, re-checks every deque and sleeps on the
 * `epoch` futex. A submitter, after its push and a seq_cst fence, wakes one
 * sleeper if there are sleepers and no wake is already in flight (`waking`);
 * every worker passing through the sleep path clears `waking` (before its
 * re-check and after it wakes) and, if it finds more work than it takes,
 * wakes the next. The fence pair (sleeper: sleepers++ then re-check; pusher:
 * push then read sleepers) means a task is never left behind a sleeping pool.
 *
 * Shutdown: `pushed` is counted per slot by its owner and `finished` per
 * worker, so pending = sum(pushed) - sum(finished) costs nothing per task.
 * A submit increments pushed, pushes, fences, then reads `closed`; shutdown
 * stores closed, fences, then reads the counters. If the submitter saw
 * `closed`, it cancels its task (which stays queued and counted until a
 * worker drops it) and fails with WEFT_ECLOSED; if a worker started it
 * first, it runs. Either way shutdown waits for it.
 *
 * Batches: an external slot's owner only ever pushes, so a thief takes up
 * to half of it (STEAL_BATCH at most) with one CAS and keeps the rest in its
 * own deque; one submitting thread then feeds the pool without a cache-line
 * round trip per task.
 *
 * Waiting inside a task: weft__help_one() runs queued tasks on the waiting
 * worker, so nested submit/wait needs no extra thread and cannot deadlock.
 *
 * Lock order: live_mu (global) > ex->slot_mu > future LOCK bits. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/exec_internal.h"
#include "core/help.h"
#include "core/memo_hook.h"

typedef weft__lane worker;

#define IDLE_SPIN_NS 100000
#define IDLE_SPIN_MIN_NS 2000 /* one_spinner lanes: the least their budget falls to */
#define DEQUE_CAP0 256
#define MAX_STACK_SIZE ((size_t)1 << 30)

/* Seconds to nanoseconds, saturating: NaN and <= 0 give 0; WEFT_FOREVER and
 * anything past INT64_MAX ns (~292 years) give INT64_MAX, "never". */
static int64_t secs_to_ns(double s)
{
    if (!(s > 0)) return 0;
    if (s >= (double)INT64_MAX / 1e9) return INT64_MAX;
    return (int64_t)(s * 1e9);
}

/* ---- thread-local state ---------------------------------------------------------- */

typedef struct ext_slot {
    uint64_t ex_id;
    slot *s;
    struct ext_slot *next;
} ext_slot;

typedef struct tls {
    weft_executor *ex; /* the executor this thread is a worker of */
    worker *w;
    uint64_t cache_id;
    slot *cache_slot;
    ext_slot *list;
    int serial_depth;
    weft_executor *serial_ex;
    bool keyed;
} tls;

static __thread tls T;

/* Live executors, so an exiting thread can tell whether its slots are still
 * there. Guarded by live_mu. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *live_ids;
static size_t live_n, live_cap;
static uint64_t next_ex_id = 1;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static bool live_has(uint64_t id)
{
    for (size_t i = 0; i < live_n; i++)
        if (live_ids[i] == id) return true;
    return false;
}

static void tls_exit(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&live_mu);
    for (ext_slot *e = T.list; e;) {
        ext_slot *n = e->next;
        if (live_has(e->ex_id)) atomic_store_explicit(&e->s->owner, NULL, memory_order_release);
        free(e);
        e = n;
    }
    pthread_mutex_unlock(&live_mu);
    T.list = NULL;
    T.cache_id = 0;
    T.cache_slot = NULL;
}

static void tls_make_key(void)
{
    pthread_key_create(&tls_key, tls_exit);
}

int weft__executor_worker_index(void)
{
    return T.w ? T.w->id : -1;
}

bool weft__executor_is_serial(const weft_executor *ex)
{
    return (ex->caps & WEFT__CAP_INLINE) != 0;
}

unsigned weft__executor_caps(const weft_executor *ex)
{
    return ex->caps;
}

void *weft__exec_data(const weft_executor *ex)
{
    return ex->bdata;
}

bool weft__executor_cancelling(weft_executor *ex)
{
    return atomic_load_explicit(&ex->cancelling, memory_order_relaxed) != 0;
}

bool weft__executor_closed(weft_executor *ex)
{
    return atomic_load_explicit(&ex->closed, memory_order_relaxed) != 0;
}

uint64_t weft__executor_seed(const weft_executor *ex)
{
    return ex->seed;
}

uint64_t weft__executor_t0(const weft_executor *ex)
{
    return ex->t0;
}

uint64_t weft__executor_next_index(weft_executor *ex)
{
    return atomic_fetch_add_explicit(&ex->next_index, 1, memory_order_relaxed);
}

bool weft__executor_tracing(const weft_executor *ex)
{
    return atomic_load_explicit(&((weft_executor *)ex)->tracing, memory_order_relaxed);
}

void weft__trace_record(weft_executor *ex, int worker_id, weft_task_fn fn, uint64_t t0, uint64_t t1,
                        int err, uint64_t items)
{
    if (worker_id < 0 || worker_id >= ex->ntrace) worker_id = 0;
    weft__trace_buf *b = &ex->trace[worker_id];
    pthread_mutex_lock(&b->mu);
    if (weft__grow(&b->ev, &b->cap, b->n + 1, sizeof *b->ev, 1024)) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    b->ev[b->n++] = (weft__trace_ev){t0, t1, fn, items, worker_id, err};
    pthread_mutex_unlock(&b->mu);
}

/* ---- slots ---------------------------------------------------------------------- */

static slot *slot_new(bool shared, bool push_only)
{
    slot *s;
    if (posix_memalign((void **)&s, WEFT__CACHELINE, sizeof *s)) return NULL;
    memset(s, 0, sizeof *s);
    if (weft__deque_init(&s->dq, DEQUE_CAP0)) {
        free(s);
        return NULL;
    }
    atomic_init(&s->pushed, 0);
    atomic_init(&s->owner, NULL);
    s->shared = shared;
    s->push_only = push_only;
    return s;
}

static void slot_free(slot *s)
{
    if (!s) return;
    weft__deque_fini(&s->dq);
    free(s);
}

/* The slot the calling (non-worker) thread submits through. */
static slot *ext_slot_get(weft_executor *ex)
{
    if (WEFT__LIKELY(T.cache_id == ex->id)) return T.cache_slot;
    for (ext_slot *e = T.list; e; e = e->next) {
        if (e->ex_id == ex->id) {
            T.cache_id = ex->id;
            T.cache_slot = e->s;
            return e->s;
        }
    }
    if (!T.keyed) {
        pthread_once(&tls_once, tls_make_key);
        pthread_setspecific(tls_key, &T);
        T.keyed = true;
    }
    ext_slot *node = malloc(sizeof *node);
    if (!node) return NULL;
    /* drop entries of executors that are gone */
    pthread_mutex_lock(&live_mu);
    for (ext_slot **pp = &T.list; *pp;) {
        if (!live_has((*pp)->ex_id)) {
            ext_slot *dead = *pp;
            *pp = dead->next;
            free(dead);
        } else {
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&live_mu);

    slot *got = NULL;
    pthread_mutex_lock(&ex->slot_mu);
    int n = atomic_load_explicit(&ex->nslots, memory_order_relaxed);
    for (int i = ex->nworkers; i < n; i++) {
        void *expect = NULL;
        if (atomic_compare_exchange_strong(&ex->slots[i]->owner, &expect, &T)) {
            got = ex->slots[i];
            break;
        }
    }
    if (!got && n < ex->nworkers + MAX_EXT_SLOTS) {
        got = slot_new(false, true);
        if (got) {
            atomic_store(&got->owner, &T);
            ex->slots[n] = got;
            atomic_store_explicit(&ex->nslots, n + 1, memory_order_release);
        }
    }
    if (!got) got = ex->shared_slot; /* many threads at once: share a locked slot */
    pthread_mutex_unlock(&ex->slot_mu);
    node->ex_id = ex->id;
    node->s = got;
    node->next = T.list;
    T.list = node;
    T.cache_id = ex->id;
    T.cache_slot = got;
    return got;
}

/* The two sides of every Dekker pair here: a submit (frequent: publish the
 * task, then read `closed` and `sleepers`) against a worker going to sleep
 * or a shutdown (rare: publish sleepers/closed, then read the queues and
 * counters). With membarrier the rare side pays a syscall and the frequent
 * side only stops the compiler from reordering. */
static inline void light_fence(const weft_executor *ex)
{
    if (WEFT__LIKELY(ex->asym))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
}

static inline void heavy_fence(const weft_executor *ex)
{
    if (ex->asym)
        weft__heavy_barrier();
    else
        atomic_thread_fence(memory_order_seq_cst);
}

/* ---- waking ----------------------------------------------------------------------- */

static void wake_one(weft_executor *ex)
{
    /* one_spinner: the spinning lane looks at every queue before it sleeps */
    if (ex->one_spinner && atomic_load_explicit(&ex->spin_tok, memory_order_relaxed) >= 0) return;
    if (atomic_load_explicit(&ex->sleepers, memory_order_relaxed) > 0 &&
        atomic_load_explicit(&ex->waking, memory_order_relaxed) == 0) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&ex->waking, &expect, 1)) {
            atomic_fetch_add_explicit(&ex->epoch, 1, memory_order_release);
            weft__futex_wake(&ex->epoch, 1);
        }
    }
}

static void wake_all(weft_executor *ex)
{
    atomic_fetch_add(&ex->epoch, 1);
    weft__futex_wake(&ex->epoch, INT_MAX);
}

/* ---- running tasks ------------------------------------------------------------------- */

void weft__exec_drop_cancelled(weft_executor *ex, weft_future *f, int wid)
{
    if (weft__executor_tracing(ex) &&
        !(atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL)) {
        uint64_t t = weft__now_ns();
        weft__trace_record(ex, wid, f->fn, t, t, WEFT_ECANCELLED, 1);
    }
    if ((atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_IN_HEAP) && f->in) {
        free((void *)f->in);
        f->in = NULL;
    }
    weft_future_release(f);
}

void weft__run_future(weft_executor *ex, weft_future *f, int wid, const void *wstate,
                      size_t wstate_len)
{
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) {
        ((weft__job *)f->job)->run(f, wid, wstate, wstate_len); /* e.g. a map chunk */
        return;
    }
    if (WEFT__UNLIKELY(atomic_load_explicit(&ex->cancelling, memory_order_relaxed)))
        weft__future_complete(f, WEFT_FUTURE_CANCELLED);
    if (!weft__future_start(f)) {
        weft__exec_drop_cancelled(ex, f, wid);
        return;
    }
    uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    weft_ctx ctx;
    weft__ctx_init(&ctx, ex, wid, wstate, wstate_len);
    weft__ctx_item(&ctx, f->index, weft__seed_for(ex->seed, f->index), f->out_inl,
                   WEFT__FUT_OUT_INLINE);
    bool tracing = weft__executor_tracing(ex);
    uint64_t t0 = tracing ? weft__now_ns() : 0;
    int rc = weft__ctx_run(&ctx, f->fn, f->in, f->in_len, (st & WEFT__ST_DIRTY) ? f->retries : 0);
    if (tracing) weft__trace_record(ex, wid, f->fn, t0, weft__now_ns(), rc, 1);
    if ((st & WEFT__ST_IN_HEAP) && f->in) {
        free((void *)f->in);
        f->in = NULL;
    }
    uint32_t final;
    if (rc == 0) {
        f->out = ctx.out ? ctx.out : f->out_inl;
        f->out_len = ctx.out_len;
        final = WEFT_FUTURE_DONE | (ctx.out_heap ? WEFT__ST_OUT_HEAP : 0);
    } else {
        if (ctx.out_heap) weft__out_free(ctx.out);
        f->err = rc;
        f->msg = ctx.msg;
        final = WEFT_FUTURE_FAILED | WEFT__ST_DIRTY;
    }
    weft__future_complete(f, final);
    weft_future_release(f);
}

static inline uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#define STEAL_BATCH 32

/* Takes a batch from a push-only slot: runs the oldest, keeps the rest in
 * the thief's own deque (newest pushed first, so they pop oldest first). */
static weft_future *steal_from(slot *s, worker *w, bool *aborted, bool *more)
{
    if (!s->push_only) {
        void *x = weft__deque_steal(&s->dq);
        if (x == WEFT__DEQUE_ABORT) {
            *aborted = true;
            return NULL;
        }
        if (x && more) *more = weft__deque_size(&s->dq) > 0;
        return x;
    }
    void *buf[STEAL_BATCH];
    int64_t k = weft__deque_steal_batch(&s->dq, buf, STEAL_BATCH);
    if (k < 0) {
        *aborted = true;
        return NULL;
    }
    if (k == 0) return NULL;
    int64_t i = k - 1;
    for (; i >= 1; i--)
        if (weft__deque_push(&w->own->dq, buf[i])) break;
    /* out of memory growing our deque: run what did not fit right here */
    for (; i >= 1; i--) {
        weft__run_future(w->ex, buf[i], w->id, w->state, w->state_len);
        atomic_store_explicit(&w->finished,
                              atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
                              memory_order_release);
    }
    if (more) *more = k > 1 || weft__deque_size(&s->dq) > 0;
    return buf[0];
}

/* One round over every slot, starting at a random one. */
static weft_future *steal_round(weft_executor *ex, worker *w, bool *found_more)
{
    int n = atomic_load_explicit(&ex->nslots, memory_order_acquire);
    int start = (int)(xorshift(&w->rng) % (uint64_t)n);
    for (int pass = 0; pass < 2; pass++) {
        bool aborted = false;
        for (int k = 0; k < n; k++) {
            slot *s = ex->slots[(start + k) % n];
            if (s == w->own) continue;
            weft_future *x = steal_from(s, w, &aborted, found_more);
            if (x) return x;
        }
        if (!aborted) break;
    }
    if (ex->shared_slot) {
        bool aborted = false;
        weft_future *x = steal_from(ex->shared_slot, w, &aborted, found_more);
        if (x) return x;
    }
    return NULL;
}

/* Whether any deque holds a task (a snapshot). */
static bool any_queued(weft_executor *ex)
{
    int n = atomic_load_explicit(&ex->nslots, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (weft__deque_size(&ex->slots[i]->dq) > 0) return true;
    return ex->shared_slot && weft__deque_size(&ex->shared_slot->dq) > 0;
}

static weft_future *find_work(weft_executor *ex, worker *w)
{
    weft_future *f = weft__deque_pop(&w->own->dq);
    if (f) return f;
    bool more = false;
    f = steal_round(ex, w, &more);
    /* The slot stolen from is empty now, but another may not be: e.g. the
     * rest of a batch a busy worker stole into its own deque, which the
     * sleeper woken for it passed by. With sleepers about, look (a wake
     * chain must reach every task, or it waits behind a long one). */
    if (f && !more && atomic_load_explicit(&ex->sleepers, memory_order_relaxed) > 0)
        more = any_queued(ex);
    if (f && more) wake_one(ex);
    return f;
}

/* Processes backend: counts in ex->idle the workers that are looking for
 * work or about to (from when the last result of their batch is reported),
 * so a proxy batches only what they cannot take (run_remote). */
static void spin_release(weft_executor *ex, worker *w, bool busy);

static inline void set_idle(weft_executor *ex, worker *w, bool idle)
{
    if (!idle && ex->one_spinner) spin_release(ex, w, true);
    if (!ex->count_idle || w->idle == idle) return;
    w->idle = idle;
    atomic_fetch_add_explicit(&ex->idle, idle ? 1 : -1, memory_order_seq_cst);
}

/* ---- Spinning (shape.one_spinner) --------------------------------------------------- *
 * At most one idle lane spins for work: the one that went idle last, since
 * its worker process was the last to answer and is still spinning itself
 * (a task sent to it costs no wake-up). A lane that claims the role takes
 * it from any other spinner, which then sleeps. While a lane holds it
 * (spin_tok), submits wake no sleeper: the holder looks at every queue
 * before it lets go. Letting go pairs with submit as the sleep path does:
 * the holder clears spin_tok, fences, then looks at the queues (and, when
 * it takes work, wakes a sleeper for what it leaves); a submitter pushes,
 * fences, then reads spin_tok and sleepers. Either the submitter sees the
 * token gone and wakes a sleeper, or the holder sees the task. (The fences
 * are plain on both sides: a one_spinner executor is never fence_free.)
 * Spin budgets adapt per lane (os.h): a lane whose spins end in sleep
 * soon stops spinning, so idle lanes cost nothing. */

void weft__lane_spin_claim(weft_executor *ex, weft__lane *l)
{
    if (ex->one_spinner) atomic_store_explicit(&ex->spin_tok, l->id, memory_order_seq_cst);
}

/* Lets go of the spinner role if w holds it; `busy`: w took work, so
 * look for more that others should take. */
static void spin_release(weft_executor *ex, worker *w, bool busy)
{
    int me = w->id;
    if (atomic_load_explicit(&ex->spin_tok, memory_order_relaxed) != me ||
        !atomic_compare_exchange_strong(&ex->spin_tok, &me, -1))
        return;
    if (!busy) return; /* the sleep path fences and looks itself */
    heavy_fence(ex);
    if (any_queued(ex)) wake_one(ex);
}

/* The idle spin of a one_spinner lane: work it found, or NULL (sleep). */
static weft_future *spin_one(weft_executor *ex, worker *w)
{
    weft__lane_spin_claim(ex, w);
    weft__spin_run r;
    weft__spin_begin(&r);
    for (;;) {
        if (atomic_load_explicit(&ex->spin_tok, memory_order_relaxed) != w->id)
            return NULL; /* another lane spins now */
        weft_future *f = steal_round(ex, w, NULL);
        if (f) {
            weft__spin_hit(&w->spin, &r);
            return f; /* set_idle(false) lets go of the role */
        }
        if (atomic_load_explicit(&ex->stop, memory_order_acquire)) break;
        if (!weft__spin_wait(&w->spin, &r)) {
            weft__spin_miss(&w->spin);
            break;
        }
    }
    spin_release(ex, w, false);
    return NULL;
}

void weft__lane_set_idle(weft_executor *ex, weft__lane *l, bool idle)
{
    set_idle(ex, l, idle);
}

weft_future *weft__lane_pop(weft__lane *l)
{
    return weft__deque_pop(&l->own->dq);
}

int weft__lane_push(weft__lane *l, weft_future *f)
{
    return weft__deque_push(&l->own->dq, f);
}

void weft__lane_finished(weft__lane *l, int64_t k)
{
    atomic_store_explicit(&l->finished,
                          atomic_load_explicit(&l->finished, memory_order_relaxed) + k,
                          memory_order_release);
}

void weft__exec_wake_one(weft_executor *ex)
{
    wake_one(ex);
}

void weft__exec_wake_all(weft_executor *ex)
{
    wake_all(ex);
}

void weft__exec_direct_done(weft_executor *ex)
{
    atomic_fetch_add_explicit(&ex->finished_ext, 1, memory_order_release);
    if (atomic_load_explicit(&ex->closed, memory_order_relaxed)) { /* a shutdown may wait */
        atomic_fetch_add_explicit(&ex->idle_epoch, 1, memory_order_release);
        weft__futex_wake(&ex->idle_epoch, INT_MAX);
    }
}

static void run_counted(weft_executor *ex, worker *w, weft_future *f)
{
    weft__run_future(ex, f, w->id, w->state, w->state_len);
    atomic_store_explicit(&w->finished,
                          atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
                          memory_order_release);
}

void weft__lane_run_here(weft_executor *ex, weft__lane *l, weft_future *f)
{
    run_counted(ex, l, f);
}

static inline void run_work(weft_executor *ex, worker *w, weft_future *f)
{
    ex->ops->run(ex, w, f);
}

/* A waiting task's thread runs queued work meanwhile (core/help.h). */
static bool pool_help_one(weft_executor *ex)
{
    worker *w = T.w;
    if (!w || T.ex != ex || !(ex->caps & WEFT__CAP_HELPS)) return false;
    weft_future *f = find_work(ex, w);
    if (!f) return false;
    run_work(ex, w, f);
    return true;
}

static void worker_state_set(worker *w, weft_ctx *ctx)
{
    w->state = ctx->out;
    w->state_len = ctx->out_len;
    w->state_heap = ctx->out_heap;
    ctx->out_heap = false;
}

int weft__lane_initializer(weft_executor *ex, weft__lane *w, char **msg)
{
    if (!ex->initializer) return 0;
    weft_ctx ctx;
    weft__ctx_init(&ctx, ex, w->id, NULL, 0);
    weft__ctx_item(&ctx, (uint64_t)w->id, weft__init_seed(ex->seed, w->id), w->state_inl,
                   STATE_INLINE);
    int rc = weft__ctx_run(&ctx, ex->initializer, ex->init_in, ex->init_len, 0);
    if (rc == 0) {
        worker_state_set(w, &ctx);
    } else {
        *msg = ctx.msg;
        ctx.msg = NULL;
        weft__ctx_clear(&ctx);
    }
    return rc;
}

void weft__lane_finalizer(weft_executor *ex, weft__lane *w)
{
    if (ex->finalizer) {
        weft_ctx ctx;
        weft__ctx_init(&ctx, ex, w->id, w->state, w->state_len);
        weft__ctx_run(&ctx, ex->finalizer, w->state, w->state_len, 0);
        weft__ctx_clear(&ctx);
    }
    if (w->state_heap) weft__out_free(w->state);
    w->state = NULL;
    w->state_len = 0;
    w->state_heap = false;
}

/* ---- results that come back from another process ------------------------------------ */

void weft__executor_progress(weft_executor *ex)
{
    atomic_store_explicit(&ex->last_done_ns, weft__now_ns(), memory_order_relaxed);
}

/* ---- a lane that drives remote work: its view of the queues (mpi's dispatcher) ------ */

weft_future *weft__exec_take(weft_executor *ex)
{
    return T.w && T.ex == ex ? find_work(ex, T.w) : NULL;
}

void weft__exec_finished(weft_executor *ex, int64_t k)
{
    worker *w = T.w;
    (void)ex;
    atomic_store_explicit(&w->finished,
                          atomic_load_explicit(&w->finished, memory_order_relaxed) + k,
                          memory_order_release);
    if (atomic_load_explicit(&ex->closed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ex->idle_epoch, 1, memory_order_release);
        weft__futex_wake(&ex->idle_epoch, INT_MAX);
    }
}

bool weft__exec_stopping(weft_executor *ex)
{
    return atomic_load_explicit(&ex->stop, memory_order_acquire) != 0;
}

weft_future *weft__exec_idle(weft_executor *ex, int64_t timeout_ns)
{
    worker *w = T.w;
    uint32_t e = atomic_load_explicit(&ex->epoch, memory_order_acquire);
    atomic_fetch_add_explicit(&ex->sleepers, 1, memory_order_seq_cst);
    atomic_store_explicit(&ex->waking, 0, memory_order_seq_cst);
    heavy_fence(ex);
    weft_future *f = find_work(ex, w);
    if (!f && !atomic_load_explicit(&ex->stop, memory_order_acquire)) {
        if (atomic_load_explicit(&ex->closed, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&ex->idle_epoch, 1, memory_order_release);
            weft__futex_wake(&ex->idle_epoch, INT_MAX);
        }
        weft__futex_wait(&ex->epoch, e, timeout_ns);
        atomic_store_explicit(&ex->waking, 0, memory_order_seq_cst);
    }
    atomic_fetch_sub_explicit(&ex->sleepers, 1, memory_order_relaxed);
    return f;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    weft_executor *ex = w->ex;
    T.ex = ex;
    T.w = w;
    weft__help_register(ex, pool_help_one);
    int rc = 0;
    char *msg = NULL;
    if (ex->ops->lane_open) rc = ex->ops->lane_open(ex, w, &msg);
    pthread_mutex_lock(&ex->init_mu);
    if (rc && !ex->init_err) {
        ex->init_err = rc;
        ex->init_msg = msg;
        msg = NULL;
    }
    ex->init_count++;
    pthread_cond_broadcast(&ex->init_cv);
    pthread_mutex_unlock(&ex->init_mu);
    free(msg);

    if (ex->ops->lane_main) { /* the backend drives this lane itself */
        if (rc == 0) ex->ops->lane_main(ex, w);
        if (ex->ops->lane_close) ex->ops->lane_close(ex, w);
        weft__help_register(NULL, NULL);
        return NULL;
    }
    for (;;) {
        weft_future *f = find_work(ex, w);
        if (f) {
            set_idle(ex, w, false);
            run_work(ex, w, f);
            continue;
        }
        if (atomic_load_explicit(&ex->stop, memory_order_acquire)) break;
        set_idle(ex, w, true);
        /* spin a while: a new task is often a moment away */
        uint64_t t0 = weft__now_ns();
        if (ex->one_spinner) f = spin_one(ex, w);
        for (unsigned i = 1; !f && !ex->one_spinner; i++) {
            f = steal_round(ex, w, NULL);
            if (f || (i & 15) == 0) {
                if (f || weft__now_ns() - t0 > IDLE_SPIN_NS ||
                    atomic_load_explicit(&ex->stop, memory_order_acquire))
                    break;
                weft__yield();
            }
            weft__cpu_relax();
        }
        if (f) {
            set_idle(ex, w, false);
            run_work(ex, w, f);
            continue;
        }
        /* the backend's own idle work (processes: collect a task sent straight
         * to this lane's worker that nobody waits for), and how long to sleep */
        int64_t nap = -1;
        if (ex->ops->idle && (nap = ex->ops->idle(ex, w)) == 0) continue;
        /* sleep */
        uint32_t e = atomic_load_explicit(&ex->epoch, memory_order_acquire);
        atomic_fetch_add_explicit(&ex->sleepers, 1, memory_order_seq_cst);
        /* Drop any wake claim in flight: a claim whose target never sleeps
         * must not silence later submits. At worst this costs one extra
         * wake; a submitter that still reads waking == 1 did so before this
         * store, so the re-check below sees its task. */
        atomic_store_explicit(&ex->waking, 0, memory_order_seq_cst);
        heavy_fence(ex);
        f = find_work(ex, w);
        if (f) {
            atomic_fetch_sub_explicit(&ex->sleepers, 1, memory_order_relaxed);
            set_idle(ex, w, false);
            run_work(ex, w, f);
            continue;
        }
        if (atomic_load_explicit(&ex->stop, memory_order_acquire)) {
            atomic_fetch_sub_explicit(&ex->sleepers, 1, memory_order_relaxed);
            break;
        }
        if (atomic_load_explicit(&ex->closed, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&ex->idle_epoch, 1, memory_order_release);
            weft__futex_wake(&ex->idle_epoch, INT_MAX);
        }
        weft__futex_wait(&ex->epoch, e, nap);
        atomic_fetch_sub_explicit(&ex->sleepers, 1, memory_order_relaxed);
        atomic_store_explicit(&ex->waking, 0, memory_order_seq_cst);
    }
    set_idle(ex, w, false);
    if (ex->ops->lane_close) ex->ops->lane_close(ex, w);
    weft__help_register(NULL, NULL);
    return NULL;
}

/* ---- submit ------------------------------------------------------------------------ */

static int serial_run(weft_executor *ex, weft_future *f)
{
    atomic_fetch_add(&ex->inline_running, 1);
    if (atomic_load(&ex->closed)) {
        atomic_fetch_sub(&ex->inline_running, 1);
        return weft__err(WEFT_ECLOSED, "submit: the executor is shut down");
    }
    weft_executor *prev = T.serial_ex;
    T.serial_ex = ex;
    T.serial_depth++;
    ex->ops->run(ex, &ex->serial, f);
    T.serial_depth--;
    T.serial_ex = prev;
    atomic_fetch_sub(&ex->inline_running, 1);
    return 0;
}

int weft__enqueue(weft_executor *ex, weft_future *f)
{
    if (ex->caps & WEFT__CAP_INLINE) return serial_run(ex, f);
    slot *s = (T.w && T.ex == ex) ? T.w->own : ext_slot_get(ex);
    if (WEFT__UNLIKELY(!s)) return weft__err(WEFT_ENOMEM, "submit: out of memory");
    if (WEFT__UNLIKELY(s->shared)) pthread_mutex_lock(&ex->shared_mu);
    int64_t p = atomic_load_explicit(&s->pushed, memory_order_relaxed);
    atomic_store_explicit(&s->pushed, p + 1, memory_order_relaxed);
    /* A backend may send a plain task straight to an idle worker (processes:
     * the submitter writes it into the worker's arena); it stays counted
     * here and is counted finished when it completes (weft__exec_direct_done).
     * Not while this thread's earlier tasks wait in its queue: they go first. */
    if (ex->ops->submit && !s->shared && !(T.w && T.ex == ex) && weft__deque_size(&s->dq) == 0 &&
        !(atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) &&
        ex->ops->submit(ex, f))
        return 0;
    if (WEFT__UNLIKELY(weft__deque_push(&s->dq, f))) {
        atomic_store_explicit(&s->pushed, p, memory_order_relaxed);
        if (s->shared) pthread_mutex_unlock(&ex->shared_mu);
        return weft__err(WEFT_ENOMEM, "submit: out of memory growing the queue");
    }
    light_fence(ex);
    if (WEFT__UNLIKELY(atomic_load_explicit(&ex->closed, memory_order_relaxed)) &&
        !(atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL)) {
        /* Shut down meanwhile (a map chunk instead just runs: its map is
         * under way and the chunk reports cancellation itself). Take the task back by cancelling it: it stays
         * queued (and counted) until a worker drops it, which shutdown waits
         * for; if a worker already started it, the submit stands. The caller
         * keeps no reference, so take the caller's one back here. */
        if (weft__future_complete(f, WEFT_FUTURE_CANCELLED)) {
            if (s->shared) pthread_mutex_unlock(&ex->shared_mu);
            weft_future_release(f);
            /* a worker must still come by to drop it: shutdown counts it */
            wake_one(ex);
            return WEFT__ECLOSED_QUEUED;
        }
    }
    if (WEFT__UNLIKELY(s->shared)) pthread_mutex_unlock(&ex->shared_mu);
    wake_one(ex);
    return 0;
}

int weft_submit_ex(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                   const weft_submit_options *opts, weft_future **out)
{
    if (out) *out = NULL;
    if (WEFT__UNLIKELY(weft__worker_process))
        return weft__err(WEFT_ENOTSUP, "weft_submit: a task of the processes backend cannot "
                                       "submit (nested submits are supported on serial and "
                                       "threads only)");
    if (WEFT__UNLIKELY(!ex || !fn || !out || (!in && len)))
        return weft__err(WEFT_EINVAL, "weft_submit: %s is NULL",
                         !ex    ? "the executor"
                         : !fn  ? "the task"
                         : !out ? "out"
                                : "the input");
    if (WEFT__UNLIKELY(atomic_load_explicit(&ex->closed, memory_order_relaxed)))
        return weft__err(WEFT_ECLOSED, "weft_submit: the executor is shut down");
    weft_submit_options so_local;
    if (opts) {
        int orc = WEFT__OPTS_READ(so_local, opts, "weft_submit_ex: weft_submit_options");
        if (orc) return orc;
        opts = &so_local;
    }
    if (WEFT__UNLIKELY(opts && opts->retries < 0))
        return weft__err(WEFT_EINVAL, "weft_submit: negative retries %d", opts->retries);
    if (WEFT__UNLIKELY(opts && opts->timeout != opts->timeout))
        return weft__err(WEFT_EINVAL, "weft_submit: the timeout is NaN");
    if (WEFT__UNLIKELY(opts && (opts->flags & WEFT_SUBMIT_MEMO)))
        return weft__memo_submit(ex, fn, in, len, opts, out);
    if (ex->caps & WEFT__CAP_NAMED_TASKS) {
        int rc = weft__check_registered(fn, "weft_submit");
        if (rc) return rc;
    }
    weft_future *f = weft__future_alloc();
    if (WEFT__UNLIKELY(!f)) return weft__err(WEFT_ENOMEM, "weft_submit: out of memory");
    uint32_t st = WEFT_FUTURE_PENDING;
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed);
    f->fn = fn;
    f->ex = ex;
    if (opts && (opts->retries || opts->timeout != 0)) {
        f->retries = opts->retries;
        f->timeout = opts->timeout;
        st |= WEFT__ST_DIRTY;
    }
    f->index = (opts && opts->has_index) ? opts->index : weft__executor_next_index(ex);
    f->in_len = len;
    if ((opts && (opts->flags & WEFT_SUBMIT_BORROW)) || len == 0) {
        f->in = in;
    } else if (len <= WEFT__IN_INLINE) {
        memcpy(f->in_inl, in, len);
        f->in = f->in_inl;
    } else {
        void *copy = malloc(len);
        if (!copy) {
            atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
            atomic_store_explicit(&f->state, st | WEFT_FUTURE_CANCELLED, memory_order_relaxed);
            weft_future_release(f);
            return weft__err(WEFT_ENOMEM, "weft_submit: cannot copy %zu input bytes", len);
        }
        memcpy(copy, in, len);
        f->in = copy;
        st |= WEFT__ST_IN_HEAP;
    }
    atomic_store_explicit(&f->state, st, memory_order_relaxed);
    int rc = weft__enqueue(ex, f);
    if (WEFT__UNLIKELY(rc == WEFT__ECLOSED_QUEUED))
        return weft__err(WEFT_ECLOSED, "weft_submit: the executor is shut down");
    if (WEFT__UNLIKELY(rc)) {
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&f->state, st | WEFT_FUTURE_CANCELLED, memory_order_relaxed);
        weft_future_release(f);
        return rc;
    }
    *out = f;
    return 0;
}

int weft_submit(weft_executor *ex, weft_task_fn fn, const void *in, size_t len, weft_future **out)
{
    return weft_submit_ex(ex, fn, in, len, NULL, out);
}

/* ---- create / shutdown / destroy ----------------------------------------------------- */

weft_backend weft_executor_backend(const weft_executor *ex)
{
    return ex ? ex->backend : WEFT_BACKEND_DEFAULT;
}

int weft_executor_workers(const weft_executor *ex)
{
    if (!ex) return 0;
    return ex->nreport;
}

static void executor_free(weft_executor *ex)
{
    if (!ex) return;
    for (int i = 0; i < atomic_load(&ex->nslots); i++) slot_free(ex->slots[i]);
    slot_free(ex->shared_slot);
    free(ex->workers);
    for (int i = 0; i < ex->ntrace; i++) {
        pthread_mutex_destroy(&ex->trace[i].mu);
        free(ex->trace[i].ev);
    }
    free(ex->trace);
    free(ex->init_in);
    free(ex->trace_path);
    free(ex->init_msg);
    pthread_mutex_destroy(&ex->slot_mu);
    pthread_mutex_destroy(&ex->shared_mu);
    pthread_mutex_destroy(&ex->init_mu);
    pthread_cond_destroy(&ex->init_cv);
    if (ex->ops && ex->ops->destroy) ex->ops->destroy(ex->bdata);
    free(ex);
}

static void live_add(weft_executor *ex)
{
    pthread_mutex_lock(&live_mu);
    ex->id = next_ex_id++;
    if (!weft__grow(&live_ids, &live_cap, live_n + 1, sizeof *live_ids, 16))
        live_ids[live_n++] = ex->id;
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(weft_executor *ex)
{
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < live_n; i++) {
        if (live_ids[i] == ex->id) {
            live_ids[i] = live_ids[--live_n];
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

static void stop_workers(weft_executor *ex)
{
    atomic_store(&ex->stop, 1);
    wake_all(ex);
    for (int i = 0; i < ex->nworkers; i++)
        if (ex->workers[i].started) pthread_join(ex->workers[i].th, NULL);
}

static int start_threads(weft_executor *ex)
{
    ex->workers = calloc((size_t)ex->nworkers, sizeof *ex->workers);
    if (!ex->workers) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    for (int i = 0; i < ex->nworkers; i++) {
        worker *w = &ex->workers[i];
        w->ex = ex;
        w->id = i;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ ex->id;
        w->own = slot_new(false, false);
        if (!w->own) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
        atomic_store(&w->own->owner, w);
        ex->slots[i] = w->own;
        if (ex->count_idle) { /* idle until it takes work */
            w->idle = true;
            atomic_fetch_add(&ex->idle, 1);
        }
        w->spin = (weft__spin)WEFT__SPIN_INIT(IDLE_SPIN_NS, IDLE_SPIN_MIN_NS);
        atomic_store(&ex->nslots, i + 1);
    }
    ex->shared_slot = slot_new(true, true);
    if (!ex->shared_slot) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int e = pthread_attr_setstacksize(&attr, ex->stack_size);
    if (e) {
        pthread_attr_destroy(&attr);
        return weft__err(WEFT_EINVAL,
                         "weft_executor_create: stack_size %zu is not a valid thread stack size "
                         "(%s)",
                         ex->stack_size, strerror(e));
    }
    int started = 0, rc = 0;
    for (int i = 0; i < ex->nworkers; i++) {
        e = pthread_create(&ex->workers[i].th, &attr, worker_main, &ex->workers[i]);
        if (e == EINVAL) {
            rc = weft__err(WEFT_EINVAL,
                           "weft_executor_create: the system refuses worker threads with "
                           "stack_size %zu (%s)",
                           ex->stack_size, strerror(e));
            break;
        }
        if (e) {
            rc = weft__err(WEFT_EAGAIN,
                           "weft_executor_create: cannot start worker thread %d of %d with a "
                           "stack of %zu bytes: %s",
                           i, ex->nworkers, ex->stack_size, strerror(e));
            break;
        }
        ex->workers[i].started = true;
        started++;
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_lock(&ex->init_mu);
    while (ex->init_count < started) pthread_cond_wait(&ex->init_cv, &ex->init_mu);
    pthread_mutex_unlock(&ex->init_mu);
    if (!rc && ex->init_err)
        rc = weft__err(ex->init_err, "weft_executor_create: the initializer failed: %s",
                       ex->init_msg ? ex->init_msg : weft_strerror(ex->init_err));
    return rc;
}

/* The watchdog of the processes backend: when nothing finished for
 * ex->watchdog seconds while tasks are pending, reports what every worker
 * process is running, once per stall. */
static int64_t pending(weft_executor *ex);
static void exit_list_add(weft_executor *ex);

static void *watchdog_main(void *arg)
{
    weft_executor *ex = arg;
    int64_t limit_ns = secs_to_ns(ex->watchdog);
    uint64_t limit = (uint64_t)limit_ns;
    /* check four times per period, at most every 10 s (the sleep ends at
     * destroy anyway) */
    int64_t tick = limit_ns / 4 + 1000000;
    if (tick > 10000000000ll) tick = 10000000000ll;
    uint64_t reported_for = 0;
    while (!atomic_load(&ex->watchdog_stop)) {
        weft__futex_wait(&ex->watchdog_stop, 0, tick);
        if (atomic_load(&ex->watchdog_stop)) break;
        uint64_t last = atomic_load_explicit(&ex->last_done_ns, memory_order_relaxed);
        uint64_t now = weft__now_ns();
        if (now - last < limit || last == reported_for || pending(ex) <= 0) continue;
        reported_for = last;
        size_t cap = 256 + (size_t)ex->nworkers * 192, len = 0;
        char *rep = malloc(cap);
        if (!rep) continue;
        len += (size_t)snprintf(rep + len, cap - len,
                                "weft watchdog: no task finished for %.1f s (%lld pending)",
                                (double)(now - last) * 1e-9, (long long)pending(ex));
        for (int i = 0; i < ex->nworkers && len < cap; i++) {
            char line[192];
            if (ex->ops->describe)
                ex->ops->describe(ex, &ex->workers[i], now, line, sizeof line);
            else
                snprintf(line, sizeof line, "worker %d: no process", i);
            len += (size_t)snprintf(rep + len, cap - len, "\n  %s", line);
        }
        if (ex->on_stall) {
            int64_t npend = pending(ex);
            weft_stall_info info = {(double)(now - last) * 1e-9, npend > 0 ? (size_t)npend : 0,
                                    ex->nworkers, rep};
            ex->on_stall(ex->on_stall_arg, &info);
        }
        if (ex->watchdog_fn) ex->watchdog_fn(rep, ex->watchdog_arg);
        if (ex->watchdog_print) fprintf(stderr, "%s\n", rep); /* asked for */
        free(rep);
    }
    return NULL;
}

/* The second half of weft_executor_create (core/create.c), once the options
 * are checked and the backend has chosen the shape: builds the executor,
 * opens the inline lane or starts the lanes, and the watchdog. On failure
 * the backend's data is handed back to its destroy(). */
int weft__exec_new(const weft_options *opts, const weft__backend *ops, const weft__shape *shape,
                   void *bdata, double watchdog, bool watchdog_print, weft_executor **out)
{
    weft_executor *ex;
    if (posix_memalign((void **)&ex, WEFT__CACHELINE, sizeof *ex)) {
        if (ops->destroy) ops->destroy(bdata);
        return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    }
    memset(ex, 0, sizeof *ex);
    pthread_mutex_init(&ex->slot_mu, NULL);
    pthread_mutex_init(&ex->shared_mu, NULL);
    pthread_mutex_init(&ex->init_mu, NULL);
    pthread_cond_init(&ex->init_cv, NULL);
    ex->backend = ops->kind;
    ex->ops = ops;
    ex->caps = ops->caps;
    ex->bdata = bdata;
    ex->nworkers = shape->lanes;
    ex->nreport = shape->workers;
    ex->count_idle = shape->count_idle;
    ex->one_spinner = shape->one_spinner;
    atomic_store(&ex->spin_tok, -1);
    ex->seed = opts->seed ? opts->seed : 0x5eedf00dcafe1234ull;
    ex->t0 = weft__now_ns();
    /* one_spinner's release (spin_release) pairs a plain fence with submit's */
    ex->asym = shape->fence_free && !shape->one_spinner && weft__heavy_barrier_init();
    ex->initializer = opts->initializer;
    ex->finalizer = opts->finalizer;
    ex->stack_size = opts->stack_size ? opts->stack_size : (8u << 20);
    ex->watchdog = watchdog;
    ex->watchdog_fn = opts->processes.watchdog_fn;
    ex->watchdog_arg = opts->processes.watchdog_arg;
    ex->on_stall = opts->processes.on_stall;
    ex->on_stall_arg = opts->processes.on_stall_arg;
    ex->watchdog_print = watchdog_print;
    ex->exit_mode = opts->exit_mode;
    ex->memo = opts->memo;
    ex->exit_timeout_ns = secs_to_ns(opts->exit_timeout);
    ex->pid = getpid();
    atomic_store(&ex->last_done_ns, weft__now_ns());
    if (ex->stack_size < 65536) ex->stack_size = 65536;
    if (opts->init_len) {
        ex->init_in = malloc(opts->init_len);
        if (!ex->init_in) {
            executor_free(ex);
            return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
        }
        memcpy(ex->init_in, opts->init_input, opts->init_len);
        ex->init_len = opts->init_len;
    }
    const char *tp = opts->trace_path;
    if (!tp) {
        tp = getenv("WEFT_TRACE");
        if (tp && !*tp) tp = NULL;
    }
    ex->ntrace = shape->trace_lanes;
    ex->trace = calloc((size_t)ex->ntrace, sizeof *ex->trace);
    if (!ex->trace || (tp && !(ex->trace_path = strdup(tp)))) {
        executor_free(ex);
        return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    }
    for (int i = 0; i < ex->ntrace; i++) pthread_mutex_init(&ex->trace[i].mu, NULL);
    atomic_store(&ex->tracing, tp != NULL);
    live_add(ex);

    if (ex->caps & WEFT__CAP_INLINE) {
        ex->serial.ex = ex;
        ex->serial.id = 0;
        char *msg = NULL;
        int rc = ops->lane_open ? ops->lane_open(ex, &ex->serial, &msg) : 0;
        if (rc) {
            weft__err(rc, "weft_executor_create: the initializer failed: %s",
                      msg ? msg : weft_strerror(rc));
            free(msg);
            live_remove(ex);
            executor_free(ex);
            return rc;
        }
    } else {
        int rc = start_threads(ex);
        if (rc) {
            char keep[512];
            snprintf(keep, sizeof keep, "%s", weft_last_error());
            atomic_store(&ex->closed, 1);
            stop_workers(ex);
            live_remove(ex);
            executor_free(ex);
            return weft__err(rc, "%s", keep);
        }
        /* WEFT_FOREVER (or any period past ~292 years) is "never" */
        if (ex->watchdog > 0 && secs_to_ns(ex->watchdog) < INT64_MAX &&
            pthread_create(&ex->watchdog_th, NULL, watchdog_main, ex) == 0)
            ex->watchdog_started = true;
    }
    exit_list_add(ex);
    *out = ex;
    return 0;
}

static int64_t pending(weft_executor *ex)
{
    int64_t p = 0;
    int n = atomic_load_explicit(&ex->nslots, memory_order_acquire);
    for (int i = 0; i < n; i++)
        p += atomic_load_explicit(&ex->slots[i]->pushed, memory_order_acquire);
    if (ex->shared_slot) p += atomic_load_explicit(&ex->shared_slot->pushed, memory_order_acquire);
    for (int i = 0; i < ex->nworkers; i++)
        p -= atomic_load_explicit(&ex->workers[i].finished, memory_order_acquire);
    p -= atomic_load_explicit(&ex->finished_ext, memory_order_acquire);
    return p;
}

/* Shutdown with CANCEL: take every queued task out of every deque (stealing
 * works from any thread) and cancel it now, instead of waiting for a worker
 * to come by while it may be busy with a long task. */
static void cancel_queued(weft_executor *ex)
{
    int n = atomic_load_explicit(&ex->nslots, memory_order_acquire);
    for (int i = 0; i <= n; i++) {
        slot *s = i < n ? ex->slots[i] : ex->shared_slot;
        for (;;) {
            weft_future *f = weft__deque_steal(&s->dq);
            if (f == WEFT__DEQUE_ABORT) continue;
            if (!f) break;
            weft__run_future(ex, f, -1, NULL, 0); /* cancels: cancelling is set */
            atomic_fetch_add_explicit(&ex->finished_ext, 1, memory_order_release);
        }
    }
}

static bool inside_own_task(const weft_executor *ex)
{
    return (T.w && T.ex == ex) || (T.serial_depth > 0 && T.serial_ex == ex);
}

/* Waits until every task submitted is finished or cancelled, or until
 * `deadline` (weft__now_ns; 0: none) passes. Returns whether all finished. */
static bool wait_drained(weft_executor *ex, uint64_t deadline)
{
    if (ex->caps & WEFT__CAP_INLINE) {
        while (atomic_load(&ex->inline_running) > 0) {
            if (deadline && weft__now_ns() >= deadline) return false;
            weft__yield();
        }
        return true;
    }
    for (;;) {
        uint32_t e = atomic_load(&ex->idle_epoch);
        if (pending(ex) <= 0) return true;
        if (deadline && weft__now_ns() >= deadline) return false;
        if (weft__futex_wait(&ex->idle_epoch, e, 1000000) == WEFT_ETIMEDOUT) {
            /* Still pending after a quiet millisecond: make sure no task
             * waits behind a sleeping pool (cheap, and only while shutting
             * down). A CANCEL or FORCE may have come from another thread
             * meanwhile. */
            wake_all(ex);
            if (weft__executor_cancelling(ex)) cancel_queued(ex);
        }
    }
}

int weft_executor_shutdown(weft_executor *ex, weft_shutdown_mode mode)
{
    if (!ex) return weft__err(WEFT_EINVAL, "weft_executor_shutdown: NULL executor");
    if (mode != WEFT_SHUTDOWN_WAIT && mode != WEFT_SHUTDOWN_CANCEL &&
        mode != WEFT_SHUTDOWN_NOWAIT && mode != WEFT_SHUTDOWN_CANCEL_NOWAIT &&
        mode != WEFT_SHUTDOWN_FORCE)
        return weft__err(WEFT_EINVAL, "weft_executor_shutdown: unknown mode %d", (int)mode);
    bool cancel = (mode & WEFT_SHUTDOWN_CANCEL) != 0;
    bool nowait = (mode & WEFT_SHUTDOWN_NOWAIT) != 0;
    /* a task may shut its own executor down without waiting: nothing to deadlock on */
    if (!nowait && inside_own_task(ex))
        return weft__err(WEFT_EDEADLK,
                         "weft_executor_shutdown: called from a task of the same executor");
    if (mode == WEFT_SHUTDOWN_FORCE) {
        atomic_store(&ex->cancelling, 2); /* processes: proxies kill running workers */
    } else if (cancel) {
        int expect = 0; /* never weaken a FORCE */
        atomic_compare_exchange_strong(&ex->cancelling, &expect, 1);
    }
    atomic_store(&ex->closed, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!(ex->caps & WEFT__CAP_INLINE)) {
        heavy_fence(ex);
        wake_all(ex);
        if (cancel) cancel_queued(ex);
    }
    if (!nowait) wait_drained(ex, 0);
    return 0;
}

/* ---- exit behaviour ------------------------------------------------------------------
 *
 * Every executor is on exit_list from create to destroy. At the first create
 * an atexit handler is registered; when the program leaves main() or calls
 * exit(), it goes through the live executors of this process and, unless
 * they opted out (exit_mode), shuts each down without waiting and waits for
 * its work (bounded by exit_timeout), like concurrent.futures' join at exit.
 * It skips an executor whose task called exit() (waiting would deadlock),
 * and does nothing in a worker process or a fork child (the executors'
 * threads do not exist there). destroy waits while the handler uses its
 * executor (exit_pins). */
static pthread_mutex_t exit_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t exit_cv = PTHREAD_COND_INITIALIZER;
static weft_executor *exit_list;
static bool exit_registered;

static void exit_join(weft_executor *ex)
{
    if (ex->exit_mode == WEFT_EXIT_NONE || inside_own_task(ex)) return;
    weft_executor_shutdown(ex, ex->exit_mode == WEFT_EXIT_CANCEL ? WEFT_SHUTDOWN_CANCEL_NOWAIT
                                                                 : WEFT_SHUTDOWN_NOWAIT);
    uint64_t deadline = 0;
    if (ex->exit_timeout_ns > 0 && ex->exit_timeout_ns < INT64_MAX)
        deadline = weft__now_ns() + (uint64_t)ex->exit_timeout_ns;
    wait_drained(ex, deadline);
}

static void exit_join_all(void)
{
    if (weft__worker_process) return;
    pid_t me = getpid();
    pthread_mutex_lock(&exit_mu);
    for (;;) {
        weft_executor *ex = exit_list;
        while (ex && (ex->exit_seen || ex->pid != me)) ex = ex->exit_next;
        if (!ex) break;
        ex->exit_seen = true;
        ex->exit_pins++;
        pthread_mutex_unlock(&exit_mu);
        exit_join(ex);
        pthread_mutex_lock(&exit_mu);
        ex->exit_pins--;
        pthread_cond_broadcast(&exit_cv);
    }
    pthread_mutex_unlock(&exit_mu);
}

static void exit_list_add(weft_executor *ex)
{
    pthread_mutex_lock(&exit_mu);
    if (!exit_registered) exit_registered = atexit(exit_join_all) == 0;
    ex->exit_next = exit_list;
    exit_list = ex;
    pthread_mutex_unlock(&exit_mu);
}

static void exit_list_remove(weft_executor *ex)
{
    pthread_mutex_lock(&exit_mu);
    while (ex->exit_pins > 0) pthread_cond_wait(&exit_cv, &exit_mu);
    for (weft_executor **pp = &exit_list; *pp; pp = &(*pp)->exit_next) {
        if (*pp == ex) {
            *pp = ex->exit_next;
            break;
        }
    }
    pthread_mutex_unlock(&exit_mu);
}

int weft_executor_destroy(weft_executor *ex)
{
    if (!ex) return 0;
    if (inside_own_task(ex))
        return weft__err(WEFT_EDEADLK,
                         "weft_executor_destroy: called from a task of the same executor");
    exit_list_remove(ex);
    weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT);
    int rc = 0;
    if (ex->caps & WEFT__CAP_INLINE) {
        if (ex->ops->lane_close) ex->ops->lane_close(ex, &ex->serial);
    } else {
        if (ex->watchdog_started) {
            atomic_store(&ex->watchdog_stop, 1);
            weft__futex_wake(&ex->watchdog_stop, 1);
            pthread_join(ex->watchdog_th, NULL);
        }
        stop_workers(ex);
    }
    if (ex->trace_path) rc = weft_trace_write(ex, ex->trace_path);
    live_remove(ex);
    if (T.cache_id == ex->id) {
        T.cache_id = 0;
        T.cache_slot = NULL;
    }
    executor_free(ex);
    weft__future_trim(); /* give back the pages a burst freed */
    return rc;
}

int weft_trace_enable(weft_executor *ex)
{
    if (!ex) return weft__err(WEFT_EINVAL, "weft_trace_enable: NULL executor");
    atomic_store(&ex->tracing, true);
    return 0;
}

int weft_trace_write(weft_executor *ex, const char *path)
{
    if (!ex || !path || !*path) return weft__err(WEFT_EINVAL, "weft_trace_write: NULL argument");
    return weft__trace_write_file(path, ex->trace, ex->ntrace, ex->t0, ex->ops->name);
}

/* future.c : futures, their allocator, callbacks, wait and as_completed.
 *
 * A future is a small state machine in one 32-bit word:
 *
 *     PENDING --start--> RUNNING --finish--> DONE | FAILED
 *        \--cancel--> CANCELLED
 *
 * with flag bits beside the state: LOCK guards the callback and waiter
 * lists, SLEEP says a thread sleeps on the word (futex), LIST says a list is
 * attached. The finishing transition is a CAS that requires LOCK clear, so a
 * thread holding LOCK knows the state cannot become final under it: whoever
 * adds a callback either sees the future finished (and runs the callback
 * itself) or leaves it in the list for the finisher. The hot path -- no
 * callbacks, no sleepers -- costs one CAS to start and one to finish.
 *
 * The waiter nodes of weft_wait() live on the waiting thread's stack; the
 * finisher signals them while holding LOCK and the waiter unlinks them under
 * LOCK before returning, so a node is never touched after its wait ends.
 *
 * References: the submitter's reference plus one held by the queue until a
 * worker has run or dropped the task. Futures are recycled through a
 * per-thread free list that overflows into a global list of batches, so a
 * steady stream of submits does not call malloc. The per-thread list is
 * bounded (LOCAL_MAX); the global one keeps what a burst frees while
 * executors work (a second burst of a million tasks reuses them: 5x faster
 * than through malloc), and is cut back to GLOBAL_MAX_BATCHES when an
 * executor is destroyed, with glibc asked to return the pages
 * (malloc_trim), so the memory of a burst does not stay with the process.
 * A thread that exits hands its own list to the global one.
 *
 * A future in a free list has refs == 0 (a live one has at least 1): a
 * release or retain of such a future -- the second release of a future,
 * while it still sits in a free list -- is detected, ignored and reported
 * through weft_last_error().
 *
 * Promises (weft_promise_create) are futures without a task, completed by
 * the caller: the completion claims the future by taking its LOCK bit (a
 * cancel or a second completion cannot finish it under the lock), writes
 * the output or error, and moves to the final state still holding LOCK. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "internal.h"

/* ---- allocator ------------------------------------------------------------ */

#define LOCAL_MAX 512
#define BATCH 256
#define GLOBAL_MAX_BATCHES 64 /* 16384 futures (~3 MB) kept in the global list at most */
/* bytes freed past the bounds after which glibc is asked to return pages:
 * a burst's worth (a 1M-task burst frees ~190 MB). Trimming after every
 * small executor cost the next one its warm heap: graph_bench's serial
 * nodes after a threads and a processes executor took 0.56-0.77 us instead
 * of 0.20 (page faults in malloc), with 1 MiB here. */
#define TRIM_BYTES (32u << 20)

typedef struct batch {
    weft_future *head;
    size_t n;
    struct batch *next;
} batch;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static batch *pool_batches;
static size_t pool_nbatches;
static batch *pool_free_batch_nodes;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static _Atomic size_t trim_pending; /* bytes freed since the last trim */

typedef struct local_pool {
    weft_future *head;
    size_t n;
    bool keyed;
} local_pool;

static __thread local_pool lp;

/* Frees a list of futures for good. */
static void free_list(weft_future *head)
{
    size_t n = 0;
    while (head) {
        weft_future *next = head->next_free;
        free(head);
        head = next;
        n++;
    }
    atomic_fetch_add_explicit(&trim_pending, n * sizeof(weft_future), memory_order_relaxed);
}

/* Gives freed pages back to the system once enough was freed: called when
 * an executor is destroyed, not while a burst runs or when a thread leaves, where
 * the next burst would fault every page in again (what free() keeps stays
 * mapped and is reused by the next burst's allocations). */
void weft__future_trim(void)
{
    weft__out_trim(); /* the big output block kept for reuse (task.c) */
    /* the global list back to its bound: what a burst left beyond it */
    batch *extra = NULL;
    pthread_mutex_lock(&pool_mu);
    while (pool_nbatches > GLOBAL_MAX_BATCHES && pool_batches) {
        batch *b = pool_batches;
        pool_batches = b->next;
        pool_nbatches--;
        b->next = extra;
        extra = b;
    }
    pthread_mutex_unlock(&pool_mu);
    while (extra) {
        batch *b = extra;
        extra = b->next;
        free_list(b->head);
        free(b);
    }
    if (atomic_load_explicit(&trim_pending, memory_order_relaxed) < TRIM_BYTES) return;
    atomic_store_explicit(&trim_pending, 0, memory_order_relaxed);
#ifdef __GLIBC__
    /* free() alone keeps pages that live chunks above them pin */
    malloc_trim(0);
#endif
}

static void give_batch(weft_future *head, size_t n)
{
    pthread_mutex_lock(&pool_mu);
    batch *b = pool_free_batch_nodes;
    if (b) {
        pool_free_batch_nodes = b->next;
    } else {
        b = malloc(sizeof *b);
        if (!b) {
            pthread_mutex_unlock(&pool_mu);
            free_list(head);
            return;
        }
    }
    b->head = head;
    b->n = n;
    b->next = pool_batches;
    pool_batches = b;
    pool_nbatches++;
    pthread_mutex_unlock(&pool_mu);
}

/* A thread leaves: its futures join the global list, for the threads that
 * submit next. No trim here: a program that starts submitter threads per
 * round (bench/submit_8threads) would give the pages back and fault them
 * in again every round (4x slower per task); executor destroy trims. */
static void pool_thread_exit(void *unused)
{
    (void)unused;
    weft_future *h = lp.head;
    size_t n = lp.n;
    lp.head = NULL;
    lp.n = 0;
    if (h) give_batch(h, n);
}

static void pool_init_key(void)
{
    pthread_key_create(&pool_key, pool_thread_exit);
}

static weft_future *take_batch(size_t *n)
{
    pthread_mutex_lock(&pool_mu);
    batch *b = pool_batches;
    weft_future *h = NULL;
    if (b) {
        pool_batches = b->next;
        pool_nbatches--;
        h = b->head;
        *n = b->n;
        b->next = pool_free_batch_nodes;
        pool_free_batch_nodes = b;
    }
    pthread_mutex_unlock(&pool_mu);
    return h;
}

weft_future *weft__future_alloc(void)
{
    weft_future *f = lp.head;
    if (WEFT__UNLIKELY(!f)) {
        if (!lp.keyed) {
            pthread_once(&pool_once, pool_init_key);
            pthread_setspecific(pool_key, &lp);
            lp.keyed = true;
        }
        size_t n = 0;
        f = take_batch(&n);
        if (f) {
            lp.head = f;
            lp.n = n;
        } else {
            if (posix_memalign((void **)&f, WEFT__CACHELINE, sizeof *f)) return NULL;
            memset(f, 0, sizeof *f);
            lp.head = f;
            lp.n = 1;
        }
    }
    lp.head = f->next_free;
    lp.n--;
    /* line 2 is clean (see future_free); callers set all of line 1 */
    f->out = NULL;
    f->out_len = 0;
    return f;
}

static bool transition(weft_future *f, uint32_t from_mask, uint32_t final);

static void future_free(weft_future *f)
{
    uint32_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (WEFT__UNLIKELY((st & WEFT__ST_PROMISE) && !weft__st_final(st & WEFT__ST_MASK))) {
        /* a promise dropped unfinished can never finish: cancel it, so that
         * its callbacks run (and free what they hold) */
        transition(f, (1u << WEFT_FUTURE_PENDING) | (1u << WEFT_FUTURE_RUNNING),
                   WEFT_FUTURE_CANCELLED);
        st = atomic_load_explicit(&f->state, memory_order_relaxed);
    }
    if ((st & WEFT__ST_IN_HEAP) && f->in) free((void *)f->in);
    if (st & WEFT__ST_OUT_HEAP) weft__out_free(f->out);
    if (st & WEFT__ST_DIRTY) {
        free(f->msg);
        f->msg = NULL;
        f->err = 0;
        f->retries = 0;
        f->timeout = 0;
        f->job = NULL;
    }
    if (!lp.keyed) {
        pthread_once(&pool_once, pool_init_key);
        pthread_setspecific(pool_key, &lp);
        lp.keyed = true;
    }
    f->next_free = lp.head;
    lp.head = f;
    if (++lp.n >= LOCAL_MAX) {
        /* hand the older BATCH to the global pool; the newest stay here,
         * still warm in the cache (and a second release of f, right after
         * its first, still finds it in a free list) */
        weft_future *p = lp.head;
        for (int i = 1; i < LOCAL_MAX - BATCH; i++) p = p->next_free;
        weft_future *h = p->next_free;
        p->next_free = NULL;
        lp.n -= BATCH;
        give_batch(h, BATCH);
    }
}

void weft_future_retain(weft_future *f)
{
    if (!f) return;
    uint32_t r = atomic_load_explicit(&f->refs, memory_order_relaxed);
    do {
        if (WEFT__UNLIKELY(r == 0)) {
            weft__err(WEFT_EINVAL, "weft_future_retain: future %p was released (ignored)",
                      (void *)f);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&f->refs, &r, r + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void weft_future_release(weft_future *f)
{
    if (!f) return;
    uint32_t r = atomic_load_explicit(&f->refs, memory_order_relaxed);
    do {
        if (WEFT__UNLIKELY(r == 0)) {
            weft__err(WEFT_EINVAL,
                      "weft_future_release: future %p was already released (second release "
                      "ignored)",
                      (void *)f);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&f->refs, &r, r - 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (r == 1) future_free(f);
}

/* ---- state machine ----------------------------------------------------------- */

typedef struct weft__cb {
    weft_future_cb cb;
    void *arg;
    struct weft__cb *next;
} weft__cb;

typedef struct weft__waiter {
    _Atomic uint32_t seq;
} weft__waiter;

typedef struct weft__waiter_node {
    weft__waiter *w;
    weft_future *f;
    struct weft__waiter_node *next, *prev;
} weft__waiter_node;

/* A wait for a future's lock bit. The holder keeps it for a few stores, but
 * it can be preempted while it holds it -- typically right after it woke a
 * waiter, which the scheduler runs at once on the holder's CPU -- and a
 * waiter that only spun would then spin out its whole time slice (3-5 ms,
 * measured: a caller of weft_wait in a grid search on 2 workers spun 30%
 * of a CPU and left each worker idle 17% of the time). After a few pauses
 * it yields, which lets a holder queued on the same CPU run. */
static inline void lock_backoff(unsigned *spins)
{
    if (++*spins < 64)
        weft__cpu_relax();
    else
        weft__yield();
}

static uint32_t lock_future(weft_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
        if (s & WEFT__ST_LOCK) {
            lock_backoff(&spins);
            s = atomic_load_explicit(&f->state, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, s | WEFT__ST_LOCK,
                                                  memory_order_acquire, memory_order_relaxed))
            return s | WEFT__ST_LOCK;
    }
}

static void unlock_future(weft_future *f)
{
    if (f->cbs || f->waiters)
        atomic_fetch_or_explicit(&f->state, WEFT__ST_LIST, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&f->state, ~WEFT__ST_LIST, memory_order_relaxed);
    atomic_fetch_and_explicit(&f->state, ~WEFT__ST_LOCK, memory_order_release);
}

bool weft__future_start(weft_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        if ((s & WEFT__ST_MASK) != WEFT_FUTURE_PENDING) return false;
        uint32_t n = (s & ~WEFT__ST_MASK) | WEFT_FUTURE_RUNNING;
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, n, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
}

/* f just finished and is locked: wakes its waiters, unlocks it, then runs
 * its callbacks (outside the lock, in the order they were added). */
static void wake_and_call_locked(weft_future *f)
{
    weft__cb *cbs = f->cbs;
    f->cbs = NULL;
    /* The sequence words are bumped under the lock (a waiter may free its
     * word once it has unregistered, which takes the lock); the futex wakes
     * of the first few come after the unlock, so a waiter the scheduler runs
     * at once does not find the lock still held by the thread it preempted.
     * A wake of a word its waiter has freed meanwhile is harmless: a futex
     * wake does not touch the memory, and every futex waiter tolerates a
     * spurious wake (pthread_mutex_unlock relies on the same). */
    _Atomic uint32_t *late[8];
    int nlate = 0;
    for (weft__waiter_node *w = f->waiters; w; w = w->next) {
        atomic_fetch_add_explicit(&w->w->seq, 1, memory_order_release);
        if (nlate < 8)
            late[nlate++] = &w->w->seq;
        else
            weft__futex_wake(&w->w->seq, INT_MAX);
    }
    /* WEFT__ST_CALLING was set with the final state when anything was
     * attached: a weft_future_on_done that comes while these callbacks run
     * queues its callback behind them (the completer runs it below) instead
     * of running it at once, so callbacks run in the order added even
     * across threads (the memo's store of a graph node before the graph
     * learns that the node is done). The completer holds a reference. */
    if (!cbs) atomic_fetch_and_explicit(&f->state, ~WEFT__ST_CALLING, memory_order_release);
    unlock_future(f);
    for (int i = 0; i < nlate; i++) weft__futex_wake(late[i], INT_MAX);
    while (cbs) {
        while (cbs) {
            weft__cb *n = cbs->next;
            cbs->cb(f, cbs->arg);
            free(cbs);
            cbs = n;
        }
        lock_future(f);
        cbs = f->cbs; /* added while the others ran */
        f->cbs = NULL;
        if (!cbs) atomic_fetch_and_explicit(&f->state, ~WEFT__ST_CALLING, memory_order_release);
        unlock_future(f);
    }
}

/* Moves f to `final` if its state is one of `from_mask` (bit per state). */
static bool transition(weft_future *f, uint32_t from_mask, uint32_t final)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
        if (!(from_mask & (1u << (s & WEFT__ST_MASK)))) return false;
        if (s & WEFT__ST_LOCK) {
            lock_backoff(&spins);
            s = atomic_load_explicit(&f->state, memory_order_relaxed);
            continue;
        }
        uint32_t n = (s & ~(WEFT__ST_MASK | WEFT__ST_SLEEP)) | final;
        if (s & WEFT__ST_LIST) n |= WEFT__ST_CALLING; /* cleared by wake_and_call_locked */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, n, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (s & WEFT__ST_LIST) {
        lock_future(f);
        wake_and_call_locked(f);
    }
    if (s & WEFT__ST_SLEEP) weft__futex_wake(&f->state, INT_MAX);
    return true;
}

bool weft__future_complete(weft_future *f, uint32_t final)
{
    uint32_t from = (final & WEFT__ST_MASK) == WEFT_FUTURE_CANCELLED
                        ? (1u << WEFT_FUTURE_PENDING)
                        : (1u << WEFT_FUTURE_RUNNING) | (1u << WEFT_FUTURE_PENDING);
    return transition(f, from, final);
}

bool weft__future_cancel_taken(weft_future *f)
{
    return transition(f, (1u << WEFT_FUTURE_PENDING) | (1u << WEFT_FUTURE_RUNNING),
                      WEFT_FUTURE_CANCELLED);
}

int weft_future_cancel(weft_future *f)
{
    if (!f) return weft__err(WEFT_EINVAL, "weft_future_cancel: NULL future");
    if (transition(f, 1u << WEFT_FUTURE_PENDING, WEFT_FUTURE_CANCELLED)) return 0;
    uint32_t st = weft__future_st(f);
    if (st == WEFT_FUTURE_CANCELLED) return 0;
    return weft__err(WEFT_EBUSY, "weft_future_cancel: the task is %s",
                     st == WEFT_FUTURE_RUNNING ? "running" : "already finished");
}

weft_future_state weft_future_state_get(const weft_future *f)
{
    return f ? (weft_future_state)weft__future_st(f) : WEFT_FUTURE_PENDING;
}

bool weft_future_done(const weft_future *f)
{
    return f && weft__st_final(weft__future_st(f));
}

bool weft_future_running(const weft_future *f)
{
    return f && weft__future_st(f) == WEFT_FUTURE_RUNNING;
}

bool weft_future_cancelled(const weft_future *f)
{
    return f && weft__future_st(f) == WEFT_FUTURE_CANCELLED;
}

int weft_future_on_done(weft_future *f, weft_future_cb cb, void *arg)
{
    if (!f || !cb) return weft__err(WEFT_EINVAL, "weft_future_on_done: NULL argument");
    uint32_t s0 = atomic_load_explicit(&f->state, memory_order_acquire);
    if (weft__st_final(s0 & WEFT__ST_MASK) && !(s0 & WEFT__ST_CALLING)) {
        cb(f, arg); /* finished, and every earlier callback has run */
        return 0;
    }
    weft__cb *n = malloc(sizeof *n);
    if (!n) return weft__err(WEFT_ENOMEM, "weft_future_on_done: out of memory");
    n->cb = cb;
    n->arg = arg;
    n->next = NULL;
    uint32_t s = lock_future(f);
    if (weft__st_final(s & WEFT__ST_MASK) && !(s & WEFT__ST_CALLING)) {
        unlock_future(f);
        free(n);
        cb(f, arg);
        return 0;
    }
    weft__cb **pp = &f->cbs; /* callbacks run in the order added */
    while (*pp) pp = &(*pp)->next;
    *pp = n;
    unlock_future(f);
    return 0;
}

/* ---- promises ------------------------------------------------------------------ */

int weft_promise_create(weft_future **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_promise_create: out is NULL");
    *out = NULL;
    weft_future *f = weft__future_alloc();
    if (!f) return weft__err(WEFT_ENOMEM, "weft_promise_create: out of memory");
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    f->fn = NULL;
    f->ex = NULL;
    f->index = 0;
    f->in = NULL;
    f->in_len = 0;
    atomic_store_explicit(&f->state, WEFT_FUTURE_PENDING | WEFT__ST_PROMISE, memory_order_release);
    *out = f;
    return 0;
}

static int promise_check(const weft_future *f, const char *who)
{
    if (!f) return weft__err(WEFT_EINVAL, "%s: NULL future", who);
    if (!(atomic_load_explicit(&((weft_future *)f)->state, memory_order_relaxed) &
          WEFT__ST_PROMISE))
        return weft__err(WEFT_EINVAL,
                         "%s: not a promise (a task's future is completed by its task)", who);
    return 0;
}

static int promise_finished_err(uint32_t st, const char *who)
{
    if (st == WEFT_FUTURE_CANCELLED)
        return weft__err(WEFT_ECANCELLED, "%s: the promise was cancelled", who);
    return weft__err(WEFT_EINVAL, "%s: the promise is already finished (%s)", who,
                     st == WEFT_FUTURE_DONE ? "it has a result" : "it has an error");
}

/* Takes f's LOCK unless f is finished: then no cancel or other completion
 * can finish it until promise_settle. @return 0 (locked) or the error. */
static int promise_claim(weft_future *f, const char *who)
{
    uint32_t s = lock_future(f);
    if (!weft__st_final(s & WEFT__ST_MASK)) return 0;
    unlock_future(f);
    return promise_finished_err(s & WEFT__ST_MASK, who);
}

/* Under the LOCK of promise_claim: moves f to `final` (a state and flags),
 * wakes its waiters and runs its callbacks, as transition() does. */
static void promise_settle(weft_future *f, uint32_t final)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    uint32_t calling = f->cbs ? WEFT__ST_CALLING : 0; /* under the LOCK: see wake_and_call_locked */
    while (!atomic_compare_exchange_weak_explicit(
        &f->state, &s, (s & ~(WEFT__ST_MASK | WEFT__ST_SLEEP)) | final | calling,
        memory_order_acq_rel, memory_order_relaxed)) {
    }
    wake_and_call_locked(f);
    if (s & WEFT__ST_SLEEP) weft__futex_wake(&f->state, INT_MAX);
}

int weft_promise_set_result(weft_future *f, const void *data, size_t len)
{
    static const char who[] = "weft_promise_set_result";
    int rc = promise_check(f, who);
    if (rc) return rc;
    if (!data && len) return weft__err(WEFT_EINVAL, "%s: NULL data with length %zu", who, len);
    void *heap = NULL;
    if (len > WEFT__FUT_OUT_INLINE) {
        heap = weft__out_alloc(len);
        if (!heap) return weft__err(WEFT_ENOMEM, "%s: cannot copy %zu bytes", who, len);
        memcpy(heap, data, len);
    }
    rc = promise_claim(f, who);
    if (rc) {
        weft__out_free(heap);
        return rc;
    }
    if (heap) {
        f->out = heap;
    } else {
        if (len) memcpy(f->out_inl, data, len);
        f->out = f->out_inl;
    }
    f->out_len = len;
    promise_settle(f, WEFT_FUTURE_DONE | (heap ? WEFT__ST_OUT_HEAP : 0));
    return 0;
}

int weft_promise_set_error(weft_future *f, int code, const char *msg)
{
    static const char who[] = "weft_promise_set_error";
    int rc = promise_check(f, who);
    if (rc) return rc;
    if (code >= 0)
        return weft__err(WEFT_EINVAL, "%s: the code %d is not negative (a WEFT_E* code)", who,
                         code);
    char *m = NULL;
    if (msg) {
        size_t n = strlen(msg) + 1;
        m = malloc(n);
        if (!m) return weft__err(WEFT_ENOMEM, "%s: out of memory", who);
        memcpy(m, msg, n);
    }
    rc = promise_claim(f, who);
    if (rc) {
        free(m);
        return rc;
    }
    f->err = code;
    f->msg = m;
    promise_settle(f, WEFT_FUTURE_FAILED | WEFT__ST_DIRTY);
    return 0;
}

int weft_promise_set_running(weft_future *f)
{
    static const char who[] = "weft_promise_set_running";
    int rc = promise_check(f, who);
    if (rc) return rc;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        uint32_t st = s & WEFT__ST_MASK;
        if (st == WEFT_FUTURE_RUNNING)
            return weft__err(WEFT_EINVAL, "%s: the promise is already running", who);
        if (st != WEFT_FUTURE_PENDING) return promise_finished_err(st, who);
        if (atomic_compare_exchange_weak_explicit(&f->state, &s,
                                                  (s & ~WEFT__ST_MASK) | WEFT_FUTURE_RUNNING,
                                                  memory_order_acq_rel, memory_order_acquire))
            return 0;
    }
}

/* ---- waiting ----------------------------------------------------------------- */

/* An external waiter spins before it sleeps (os.h's adaptive spin): its
 * budget doubles when a spin ends with the future finished and halves when
 * the waiter had to sleep anyway, between SPIN_MIN_NS and SPIN_MAX_NS.
 * Short tasks thus keep a fast round trip (no futex wake), long tasks stop
 * costing the workers a core's worth of spinning; after a short pure spin
 * the waiter yields on every look, so a lane or a worker process that
 * shares its CPU runs at once. */
#define SPIN_MAX_NS 50000
#define SPIN_MIN_NS 1000
static __thread weft__spin wait_spin = WEFT__SPIN_INIT(SPIN_MAX_NS, SPIN_MIN_NS);
#define HELP_SLEEP_NS 50000

static uint64_t deadline_of(int64_t tmo_ns)
{
    return tmo_ns < 0 ? UINT64_MAX : weft__now_ns() + (uint64_t)tmo_ns;
}

static int64_t remaining(uint64_t deadline)
{
    if (deadline == UINT64_MAX) return -1;
    uint64_t now = weft__now_ns();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* The direct path (internal.h's weft__direct): the record of a plain
 * future its submitter sent straight to a worker, or NULL. */
static weft__direct *direct_of(weft_future *f)
{
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) return NULL;
    return __atomic_load_n(&f->job, __ATOMIC_ACQUIRE);
}

/* A thread about to sleep on f: the backend collects f's result soon. */
static void direct_kick(weft_future *f)
{
    weft__direct *d = direct_of(f);
    if (d) d->kick(d, f);
}

/* Sleeps on f's state word for at most `ns` (-1: no limit) unless final. */
static void sleep_on_future(weft_future *f, int64_t ns)
{
    direct_kick(f);
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        if (weft__st_final(s & WEFT__ST_MASK)) return;
        if (s & WEFT__ST_SLEEP) break;
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, s | WEFT__ST_SLEEP,
                                                  memory_order_acq_rel, memory_order_acquire)) {
            s |= WEFT__ST_SLEEP;
            break;
        }
    }
    weft__futex_wait(&f->state, s, ns);
}

static int wait_ns(weft_future *f, int64_t tmo_ns)
{
    if (weft__st_final(weft__future_st(f))) return 0;
    if (tmo_ns == 0) return WEFT_ETIMEDOUT;
    uint64_t deadline = deadline_of(tmo_ns);
    weft_executor *cur = weft__current_executor();
    if (cur) {
        while (!weft__st_final(weft__future_st(f))) {
            if (weft__help_one(cur)) continue;
            int64_t r = remaining(deadline);
            if (r == 0) return WEFT_ETIMEDOUT;
            sleep_on_future(f, r < 0 || r > HELP_SLEEP_NS ? HELP_SLEEP_NS : r);
        }
        return 0;
    }
    /* sent straight to a worker process: wait for the result there and
     * finish f on this thread (no thread in between) */
    weft__direct *d = direct_of(f);
    if (d && tmo_ns < 0) d->claim(d, f); /* then f is final, unless another thread collects it */
    weft__spin_run run;
    weft__spin_begin(&run);
    for (;;) {
        if (weft__st_final(weft__future_st(f)) || (d && d->poll(d, f))) {
            weft__spin_hit(&wait_spin, &run);
            return 0;
        }
        if (run.now >= deadline) return WEFT_ETIMEDOUT;
        if (!weft__spin_wait(&wait_spin, &run)) break;
    }
    weft__spin_miss(&wait_spin);
    for (;;) {
        if (weft__st_final(weft__future_st(f))) return 0;
        int64_t r = remaining(deadline);
        if (r == 0) return WEFT_ETIMEDOUT;
        sleep_on_future(f, r);
    }
}

int weft_future_wait(weft_future *f, double timeout)
{
    int64_t ns;
    if (!f) return weft__err(WEFT_EINVAL, "weft_future_wait: NULL future");
    int rc = weft__timeout_ns(timeout, &ns, "weft_future_wait");
    if (rc) return rc;
    rc = wait_ns(f, ns);
    if (rc == WEFT_ETIMEDOUT)
        return weft__err(rc, "weft_future_wait: not finished within %g s", timeout);
    return rc;
}

int weft_future_result(weft_future *f, double timeout, const void **data, size_t *len)
{
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!f) return weft__err(WEFT_EINVAL, "weft_future_result: NULL future");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_future_result");
    if (rc) return rc;
    rc = wait_ns(f, ns);
    if (rc == WEFT_ETIMEDOUT)
        return weft__err(rc, "weft_future_result: not finished within %g s", timeout);
    switch (weft__future_st(f)) {
    case WEFT_FUTURE_DONE:
        if (data) *data = f->out;
        if (len) *len = f->out_len;
        return 0;
    case WEFT_FUTURE_CANCELLED:
        return weft__err(WEFT_ECANCELLED, "weft_future_result: the task was cancelled");
    default:
        return weft__err(f->err, "task failed: %s", f->msg ? f->msg : weft_strerror(f->err));
    }
}

const char *weft_future_error(const weft_future *f)
{
    if (!f) return NULL;
    uint32_t st = weft__future_st(f);
    if (st == WEFT_FUTURE_CANCELLED) return "cancelled";
    if (st != WEFT_FUTURE_FAILED) return NULL;
    return f->msg ? f->msg : "";
}

/* ---- weft_wait ------------------------------------------------------------------ */

static bool wait_met(weft_future *const *fs, size_t n, weft_wait_mode mode, bool *done,
                     size_t *ndone)
{
    size_t cnt = 0;
    bool err = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t st = fs[i] ? weft__future_st(fs[i]) : WEFT_FUTURE_DONE;
        bool d = weft__st_final(st);
        if (done) done[i] = d;
        if (d) cnt++;
        if (st == WEFT_FUTURE_FAILED || st == WEFT_FUTURE_CANCELLED) err = true;
    }
    *ndone = cnt;
    if (cnt == n) return true;
    if (mode == WEFT_WAIT_FIRST_COMPLETED) return cnt > 0;
    if (mode == WEFT_WAIT_FIRST_ERROR) return err;
    return false;
}

int weft_wait(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout, bool *done,
              size_t *ndone)
{
    size_t cnt = 0;
    if (ndone) *ndone = 0;
    if (!fs && n) return weft__err(WEFT_EINVAL, "weft_wait: NULL future array");
    if (mode != WEFT_WAIT_ALL && mode != WEFT_WAIT_FIRST_COMPLETED && mode != WEFT_WAIT_FIRST_ERROR)
        return weft__err(WEFT_EINVAL, "weft_wait: unknown mode %d", (int)mode);
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_wait");
    if (rc) return rc;
    if (wait_met(fs, n, mode, done, &cnt)) {
        if (ndone) *ndone = cnt;
        return 0;
    }
    if (ndone) *ndone = cnt;
    if (ns == 0) return weft__err(WEFT_ETIMEDOUT, "weft_wait: condition not met");
    uint64_t deadline = deadline_of(ns);

    weft__waiter w;
    atomic_init(&w.seq, 0);
    weft__waiter_node *nodes = calloc(n, sizeof *nodes);
    if (!nodes) return weft__err(WEFT_ENOMEM, "weft_wait: out of memory");
    for (size_t i = 0; i < n; i++) {
        weft_future *f = fs[i];
        if (!f) continue;
        uint32_t s = lock_future(f);
        if (weft__st_final(s & WEFT__ST_MASK)) {
            unlock_future(f);
            continue;
        }
        nodes[i].w = &w;
        nodes[i].f = f;
        nodes[i].prev = NULL;
        nodes[i].next = f->waiters;
        if (f->waiters) f->waiters->prev = &nodes[i];
        f->waiters = &nodes[i];
        unlock_future(f);
    }
    for (size_t i = 0; i < n; i++)
        if (fs[i]) direct_kick(fs[i]); /* the backend collects them soon */
    weft_executor *cur = weft__current_executor();
    rc = WEFT_ETIMEDOUT;
    for (;;) {
        uint32_t seq = atomic_load_explicit(&w.seq, memory_order_acquire);
        if (wait_met(fs, n, mode, done, &cnt)) {
            rc = 0;
            break;
        }
        if (cur && weft__help_one(cur)) continue;
        int64_t r = remaining(deadline);
        if (r == 0) break;
        if (cur && (r < 0 || r > HELP_SLEEP_NS)) r = HELP_SLEEP_NS;
        weft__futex_wait(&w.seq, seq, r);
    }
    for (size_t i = 0; i < n; i++) {
        weft__waiter_node *nd = &nodes[i];
        if (!nd->f) continue;
        lock_future(nd->f);
        if (nd->prev)
            nd->prev->next = nd->next;
        else
            nd->f->waiters = nd->next;
        if (nd->next) nd->next->prev = nd->prev;
        unlock_future(nd->f);
    }
    free(nodes);
    if (rc == WEFT_ETIMEDOUT) {
        wait_met(fs, n, mode, done, &cnt);
        if (ndone) *ndone = cnt;
        return weft__err(WEFT_ETIMEDOUT,
                         "weft_wait: condition not met within %g s (%zu of %zu done)", timeout, cnt,
                         n);
    }
    if (ndone) *ndone = cnt;
    return rc;
}

/* ---- as_completed ------------------------------------------------------------- */

/* One node per distinct future: a future given several times is yielded
 * once, with the index of its first occurrence (Python's as_completed takes
 * a set of futures). */
typedef struct ac_node {
    struct weft_as_completed *it;
    weft_future *f;
    size_t index;
    struct ac_node *next;
} ac_node;

struct weft_as_completed {
    _Atomic uint32_t refs;
    _Atomic uint32_t seq;
    _Atomic(ac_node *) stack; /* finished, newest first */
    ac_node *ready;           /* finished, oldest first (iterator thread only) */
    size_t n, yielded;        /* n: distinct futures */
    ac_node *nodes;
};

static void ac_unref(weft_as_completed *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1) {
        free(it->nodes);
        free(it);
    }
}

static void ac_on_done(weft_future *f, void *arg)
{
    (void)f;
    ac_node *nd = arg;
    weft_as_completed *it = nd->it;
    ac_node *head = atomic_load_explicit(&it->stack, memory_order_relaxed);
    do {
        nd->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&it->stack, &head, nd, memory_order_release,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&it->seq, 1, memory_order_release);
    weft__futex_wake(&it->seq, INT_MAX);
    ac_unref(it);
}

typedef struct ac_key {
    uintptr_t p;
    size_t i;
} ac_key;

static int ac_key_cmp(const void *a, const void *b)
{
    const ac_key *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Marks in dup[] every entry of fs[0..n) that repeats an earlier one.
 * @return the number of distinct futures, or 0 with n > 0 on ENOMEM. */
static size_t ac_mark_dups(weft_future *const *fs, size_t n, bool *dup)
{
    if (n < 2) return n;
    ac_key *k = malloc(n * sizeof *k);
    if (!k) return 0;
    for (size_t i = 0; i < n; i++) k[i] = (ac_key){(uintptr_t)fs[i], i};
    qsort(k, n, sizeof *k, ac_key_cmp);
    size_t distinct = n;
    for (size_t i = 1; i < n; i++) {
        if (k[i].p == k[i - 1].p) {
            dup[k[i].i] = true;
            distinct--;
        }
    }
    free(k);
    return distinct;
}

int weft_as_completed_create(weft_future *const *fs, size_t n, weft_as_completed **out)
{
    if (out) *out = NULL;
    if (!out || (!fs && n))
        return weft__err(WEFT_EINVAL, "weft_as_completed_create: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!fs[i]) return weft__err(WEFT_EINVAL, "weft_as_completed_create: fs[%zu] is NULL", i);
    weft_as_completed *it = calloc(1, sizeof *it);
    bool *dup = calloc(n ? n : 1, sizeof *dup);
    size_t nu = 0;
    if (it && dup) {
        nu = ac_mark_dups(fs, n, dup);
        if (nu || !n) it->nodes = calloc(nu ? nu : 1, sizeof *it->nodes);
    }
    if (!it || !it->nodes) {
        if (it) free(it->nodes);
        free(it);
        free(dup);
        return weft__err(WEFT_ENOMEM, "weft_as_completed_create: out of memory");
    }
    it->n = nu;
    atomic_init(&it->refs, (uint32_t)(nu + 1));
    atomic_init(&it->seq, 0);
    atomic_init(&it->stack, NULL);
    for (size_t i = 0, k = 0; i < n; i++) {
        if (dup[i]) continue;
        weft_future_retain(fs[i]);
        it->nodes[k].it = it;
        it->nodes[k].f = fs[i];
        it->nodes[k].index = i;
        k++;
    }
    free(dup);
    for (size_t k = 0; k < nu; k++) {
        if (weft_future_on_done(it->nodes[k].f, ac_on_done, &it->nodes[k]) < 0) {
            /* only ENOMEM: fail the creation cleanly once every registered
             * callback ran */
            for (size_t j = k; j < nu; j++) ac_unref(it); /* callbacks never registered */
            weft_as_completed_destroy(it);
            return weft__err(WEFT_ENOMEM, "weft_as_completed_create: out of memory");
        }
    }
    *out = it;
    return 0;
}

int weft_as_completed_next(weft_as_completed *it, double timeout, weft_future **f, size_t *index)
{
    if (f) *f = NULL;
    if (!it || !f) return weft__err(WEFT_EINVAL, "weft_as_completed_next: NULL argument");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_as_completed_next");
    if (rc) return rc;
    if (it->yielded == it->n) return WEFT_EOF;
    uint64_t deadline = deadline_of(ns);
    weft_executor *cur = weft__current_executor();
    for (;;) {
        uint32_t seq = atomic_load_explicit(&it->seq, memory_order_acquire);
        if (!it->ready) {
            ac_node *s = atomic_exchange_explicit(&it->stack, NULL, memory_order_acquire);
            /* reverse into FIFO order, appended after what is ready */
            ac_node *rev = NULL;
            while (s) {
                ac_node *n = s->next;
                s->next = rev;
                rev = s;
                s = n;
            }
            it->ready = rev;
        }
        if (it->ready) {
            ac_node *nd = it->ready;
            it->ready = nd->next;
            it->yielded++;
            *f = nd->f;
            if (index) *index = nd->index;
            return 0;
        }
        if (cur && weft__help_one(cur)) continue;
        int64_t r = remaining(deadline);
        if (r == 0)
            return weft__err(WEFT_ETIMEDOUT, "weft_as_completed_next: nothing finished in time");
        if (cur && (r < 0 || r > HELP_SLEEP_NS)) r = HELP_SLEEP_NS;
        weft__futex_wait(&it->seq, seq, r);
    }
}

int weft_as_completed_destroy(weft_as_completed *it)
{
    if (!it) return 0;
    /* the nodes stay allocated until the last callback has run (ac_unref);
     * their futures are no longer used */
    for (size_t i = 0; i < it->n; i++) weft_future_release(it->nodes[i].f);
    ac_unref(it);
    return 0;
}

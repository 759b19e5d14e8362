/* weft/sync.h : synchronization primitives -- Python's threading semantics at
 * C speed. Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_lock     mutual exclusion (threading.Lock), owner-checked release
 *   weft_rlock    re-entrant lock (threading.RLock)
 *   weft_sem      counting semaphore, optionally bounded (Semaphore, BoundedSemaphore)
 *   weft_cond     condition variable over a weft_lock or a weft_rlock
 *                 (threading.Condition), with wait_for(predicate)
 *   weft_barrier  N-party cyclic barrier with action, abort, reset (threading.Barrier)
 *   weft_event    a flag threads wait on (threading.Event)
 *   weft_timer    runs a function after a delay on its own thread (threading.Timer)
 *
 * Storage: every type but weft_timer lives in caller storage (a variable, a
 * struct field, shared memory): _init() prepares it, _fini() retires it, and
 * the fields are private (named weft__*; never read or write them). With
 * WEFT_SYNC_PSHARED at init the object works across processes when it is
 * placed in memory they share (mmap MAP_SHARED, shm_open); without it, only
 * within one process (cheaper futex calls). Use of an object that was never
 * initialised (zeroed memory) or was finalised is detected by a magic field
 * and fails with WEFT_EINVAL; memory that merely looks initialised is not.
 *
 * Timeouts are seconds (double): WEFT_FOREVER waits without limit, 0 polls
 * (try), negative and NaN are WEFT_EINVAL. A wait that times out returns
 * WEFT_ETIMEDOUT. Every call is safe from any thread (and, for PSHARED
 * objects, from any process) unless its comment says otherwise.
 *
 * Owners are kernel thread ids (gettid), unique across the processes of the
 * machine, so owner checks work across processes too.
 *
 * Signal handlers may call only the functions whose comment says
 * "async-signal-safe" (they take no lock, allocate nothing, make no system
 * call but futex, keep errno, and write weft_last_error() without printf):
 * weft_sem_release, weft_sem_acquire with timeout 0, weft_sem_value,
 * weft_event_set, _clear, _is_set, weft_cond_notify, _notify_all,
 * weft_timer_cancel, weft_timer_fired, weft_lock_locked,
 * weft_barrier_broken, weft_barrier_parties. Every other call may take a
 * lock the interrupted thread holds. docs/api.md, "Signal safety". */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/sync.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of the _init() functions. */
enum {
    WEFT_SYNC_PSHARED = 1u << 0, /* usable across processes (in shared memory) */
    WEFT_SEM_BOUNDED = 1u << 1,  /* weft_sem_init: releasing above the initial
                                    value is WEFT_EOVERFLOW (BoundedSemaphore) */
};

/* ------------------------------------------------------------------------
 * Lock
 * ------------------------------------------------------------------------ */

/* A mutex: 0 = free, 1 = held, 2 = held with possible sleepers (the
 * three-state futex mutex). 16 bytes; fields private. */
typedef struct weft_lock {
    uint32_t weft__state;
    uint32_t weft__magic;
    uint32_t weft__owner; /* thread id of the holder, 0 when free */
    uint32_t weft__flags;
} weft_lock;

/* weft_lock_init() :
 * Prepares `l` (caller storage) as a free lock. `flags`: 0 or WEFT_SYNC_PSHARED.
 * Threads: not concurrently with any other call on `l`.
 * @return 0, or WEFT_EINVAL (NULL, unknown flags). */
WEFT_API int weft_lock_init(weft_lock *l, unsigned flags);

/* weft_lock_fini() :
 * Retires `l`; later calls on it fail with WEFT_EINVAL until it is initialised
 * again. Ownership: the storage stays the caller's.
 * Threads: no thread may be waiting on `l`.
 * @return 0, WEFT_EBUSY (held: `l` is left as it was), WEFT_EINVAL. */
WEFT_API int weft_lock_fini(weft_lock *l);

/* weft_lock_acquire() :
 * Takes `l`, waiting at most `timeout` seconds (WEFT_FOREVER: no limit; 0:
 * try once). Uncontended it is one compare-and-swap; contended it spins
 * briefly, then sleeps on a futex. Not re-entrant: acquiring a lock the
 * caller holds is WEFT_EDEADLK (use weft_rlock).
 * Threads: any thread. @return 0 (the caller holds `l`), WEFT_ETIMEDOUT,
 * WEFT_EDEADLK, WEFT_EINVAL (NULL, not initialised, NaN or negative timeout). */
WEFT_API int weft_lock_acquire(weft_lock *l, double timeout);

/* weft_lock_release() :
 * Frees `l`, waking one waiter if any sleeps. Unlike Python's Lock, only the
 * holder may release it.
 * Threads: the holding thread. @return 0, WEFT_EPERM (not held, or held by
 * another thread: `l` is unchanged), WEFT_EINVAL. */
WEFT_API int weft_lock_release(weft_lock *l);

/* weft_lock_locked() : true if some thread holds `l` (a snapshot). Any
 * thread; async-signal-safe. */
WEFT_API bool weft_lock_locked(const weft_lock *l);

/* ------------------------------------------------------------------------
 * Re-entrant lock
 * ------------------------------------------------------------------------ */

/* A lock its holder may take again; it is free after as many releases as
 * acquisitions. 24 bytes; fields private. */
typedef struct weft_rlock {
    uint32_t weft__state;
    uint32_t weft__magic;
    uint32_t weft__owner;
    uint32_t weft__flags;
    uint32_t weft__count; /* acquisitions by the holder; only the holder writes it */
    uint32_t weft__pad;
} weft_rlock;

/* weft_rlock_init(), weft_rlock_fini() : as weft_lock_init/_fini (fini of a
 * held rlock is WEFT_EBUSY). */
WEFT_API int weft_rlock_init(weft_rlock *l, unsigned flags);
WEFT_API int weft_rlock_fini(weft_rlock *l);

/* weft_rlock_acquire() :
 * Takes `l`, or counts one more acquisition if the caller holds it already
 * (that never waits). Threads: any thread.
 * @return 0, WEFT_ETIMEDOUT, WEFT_EOVERFLOW (2^32-1 acquisitions),
 * WEFT_EINVAL. */
WEFT_API int weft_rlock_acquire(weft_rlock *l, double timeout);

/* weft_rlock_release() :
 * Undoes one acquisition; the last one frees `l` and wakes a waiter.
 * Threads: the holding thread. @return 0, WEFT_EPERM (the caller does not
 * hold `l`: nothing changes), WEFT_EINVAL. */
WEFT_API int weft_rlock_release(weft_rlock *l);

/* weft_rlock_count() : how many times the calling thread holds `l` (0 if it
 * does not). Any thread. */
WEFT_API unsigned weft_rlock_count(const weft_rlock *l);

/* ------------------------------------------------------------------------
 * Semaphore
 * ------------------------------------------------------------------------ */

/* A counter that acquire decrements, waiting while it is 0, and release
 * increments. 24 bytes; fields private. */
typedef struct weft_sem {
    uint32_t weft__value;
    uint32_t weft__magic;
    uint32_t weft__waiters;
    uint32_t weft__flags;
    uint32_t weft__max; /* bound (WEFT_SEM_BOUNDED), else INT32_MAX */
    uint32_t weft__pad;
} weft_sem;

/* weft_sem_init() :
 * Prepares `s` with the count `value` (0 <= value <= INT32_MAX). `flags`:
 * WEFT_SYNC_PSHARED, WEFT_SEM_BOUNDED (the count may never exceed `value`).
 * Threads: not concurrently with other calls on `s`.
 * @return 0, or WEFT_EINVAL (NULL, negative or too large value, unknown flags). */
WEFT_API int weft_sem_init(weft_sem *s, int value, unsigned flags);

/* weft_sem_fini() : retires `s`. Threads: no thread may be waiting on it.
 * @return 0, WEFT_EBUSY (threads wait on `s`), WEFT_EINVAL. */
WEFT_API int weft_sem_fini(weft_sem *s);

/* weft_sem_acquire() :
 * Decrements the count, waiting at most `timeout` while it is 0.
 * Async-signal-safe with timeout 0 (a try: one compare-and-swap); a waiting
 * acquire is not meant for a handler. Threads: any. @return 0,
 * WEFT_ETIMEDOUT, WEFT_EINVAL. */
WEFT_API int weft_sem_acquire(weft_sem *s, double timeout);

/* weft_sem_release() :
 * Adds `n` (>= 1) to the count and wakes up to `n` waiters. Any thread may
 * release, not only one that acquired. Async-signal-safe (as sem_post): a
 * signal handler may release a semaphore a thread waits on; errors write
 * a fixed weft_last_error() message.
 * Threads: any. @return 0, WEFT_EOVERFLOW (a bounded semaphore would exceed
 * its bound, or the count INT32_MAX: the count is unchanged), WEFT_EINVAL
 * (n < 1). */
WEFT_API int weft_sem_release(weft_sem *s, int n);

/* weft_sem_value() : the current count (a snapshot), or -1 if `s` is not
 * initialised. Any thread; async-signal-safe. */
WEFT_API int weft_sem_value(const weft_sem *s);

/* ------------------------------------------------------------------------
 * Condition variable
 * ------------------------------------------------------------------------ */

/* Waiters release a weft_lock and sleep until notified. 16 bytes. */
typedef struct weft_cond {
    uint32_t weft__seq; /* bumped by every notify that finds waiters */
    uint32_t weft__magic;
    uint32_t weft__waiters;
    uint32_t weft__flags;
} weft_cond;

/* weft_cond_init(), weft_cond_fini() : as weft_lock_init/_fini; fini with
 * waiters is WEFT_EBUSY. A PSHARED cond is used with a PSHARED lock. */
WEFT_API int weft_cond_init(weft_cond *c, unsigned flags);
WEFT_API int weft_cond_fini(weft_cond *c);

/* weft_cond_wait() :
 * Releases `l` (which the caller must hold), sleeps until notified or
 * `timeout` passes, and takes `l` again before returning -- also on timeout,
 * as Python's Condition.wait. As with POSIX (and as Python advises), a wait
 * can return without a notify meant for it: wait in a loop on a predicate.
 * Threads: the holder of `l`. @return 0 (notified), WEFT_ETIMEDOUT (`l` is
 * held again), WEFT_EPERM (the caller does not hold `l`), WEFT_EINVAL. */
WEFT_API int weft_cond_wait(weft_cond *c, weft_lock *l, double timeout);

/* weft_cond_wait_rlock() :
 * As weft_cond_wait() over a re-entrant lock (Python's Condition(RLock())):
 * releases `l` completely, however many times the caller holds it, sleeps,
 * then takes it again and restores the caller's recursion count -- also on
 * timeout. Threads: the holder of `l`. @return 0 (notified), WEFT_ETIMEDOUT
 * (`l` is held again, as often as before), WEFT_EPERM (the caller does not
 * hold `l`), WEFT_EINVAL. */
WEFT_API int weft_cond_wait_rlock(weft_cond *c, weft_rlock *l, double timeout);

/* A predicate of weft_cond_wait_for(): true when the awaited state holds.
 * Called with the lock held; it must not release the lock. */
typedef bool (*weft_cond_pred)(void *arg);

/* weft_cond_wait_for() :
 * Python's Condition.wait_for(predicate, timeout): calls `pred(arg)` and,
 * while it is false, waits on `c` (releasing `l`) and calls it again, until
 * it is true or `timeout` seconds (for the whole call) have passed. `pred`
 * is always called at least once, and once more after the last wait, with
 * `l` held. Returns with `l` held.
 * Threads: the holder of `l`. @return 0 (the last call of `pred` returned
 * true), WEFT_ETIMEDOUT (it returned false when the time ran out: Python's
 * False), WEFT_EPERM (the caller does not hold `l`; `pred` not called),
 * WEFT_EINVAL (NULL c, l or pred, bad timeout, not initialised). */
WEFT_API int weft_cond_wait_for(weft_cond *c, weft_lock *l, weft_cond_pred pred, void *arg,
                                double timeout);

/* weft_cond_wait_for_rlock() : weft_cond_wait_for() over a weft_rlock, whose
 * recursion count is restored after every wait (see weft_cond_wait_rlock).
 * @return as weft_cond_wait_for(). */
WEFT_API int weft_cond_wait_for_rlock(weft_cond *c, weft_rlock *l, weft_cond_pred pred, void *arg,
                                      double timeout);

/* weft_cond_notify() :
 * Wakes up to `n` (>= 1) threads waiting on `c`; none if none wait. Call it
 * holding the waiters' lock (as Python requires) so that a waiter about to
 * sleep is not missed. Async-signal-safe (no lock, no allocation, no errno
 * change; an error writes weft_last_error() without formatting) -- though
 * a handler cannot hold the lock, so only a waiter that re-checks its
 * predicate with a timeout is sure to notice.
 * Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_cond_notify(weft_cond *c, int n);

/* weft_cond_notify_all() : wakes every thread waiting on `c`; as
 * weft_cond_notify(), async-signal-safe. @return 0, WEFT_EINVAL. */
WEFT_API int weft_cond_notify_all(weft_cond *c);

/* ------------------------------------------------------------------------
 * Barrier
 * ------------------------------------------------------------------------ */

/* The action of a barrier: run by exactly one party (the last to arrive)
 * per cycle, before any party is released. A non-zero return breaks the
 * barrier: that party's wait returns the code, every other gets WEFT_EBROKEN. */
typedef int (*weft_barrier_fn)(void *arg);

/* A cyclic barrier for `parties` threads, with threading.Barrier's states:
 * filling, draining, resetting, broken. 56 bytes (64-bit); fields private. */
typedef struct weft_barrier {
    weft_lock weft__lock; /* guards the fields below */
    uint32_t weft__seq;   /* futex word: bumped at every state change */
    uint32_t weft__magic;
    uint32_t weft__parties;
    uint32_t weft__count; /* parties inside wait() */
    int32_t weft__state;  /* 0 filling, 1 draining, -1 resetting, -2 broken */
    uint32_t weft__flags;
    weft_barrier_fn weft__action;
    void *weft__arg;
} weft_barrier;

/* weft_barrier_init() :
 * Prepares `b` for `parties` (>= 1) threads; `action` (may be NULL) runs with
 * `arg` once per cycle. With WEFT_SYNC_PSHARED the action pointer must mean
 * the same function in every process (true for fork()ed children).
 * Threads: not concurrently with other calls on `b`.
 * @return 0, WEFT_EINVAL (NULL, parties < 1, unknown flags). */
WEFT_API int weft_barrier_init(weft_barrier *b, int parties, weft_barrier_fn action, void *arg,
                               unsigned flags);

/* weft_barrier_fini() : retires `b`. @return 0, WEFT_EBUSY (threads are in
 * weft_barrier_wait), WEFT_EINVAL. */
WEFT_API int weft_barrier_fini(weft_barrier *b);

/* weft_barrier_wait() :
 * Waits until `parties` threads have called it, then releases them all.
 * The timeout applies to this call; when it passes, the barrier breaks (as
 * in Python), this call returns WEFT_ETIMEDOUT and the others WEFT_EBROKEN.
 * Threads: any. @return the arrival index 0..parties-1 (distinct for each
 * party of a cycle; the last to arrive gets parties-1 and ran the action),
 * WEFT_EBROKEN (broken by abort, a timeout, a failed action or a reset
 * while waiting; stays broken until weft_barrier_reset), WEFT_ETIMEDOUT,
 * the action's error code, WEFT_EINVAL. */
WEFT_API int weft_barrier_wait(weft_barrier *b, double timeout);

/* weft_barrier_abort() :
 * Breaks `b`: current and future waits return WEFT_EBROKEN until a reset.
 * Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_barrier_abort(weft_barrier *b);

/* weft_barrier_reset() :
 * Returns `b` to its empty, unbroken state; threads waiting in it now get
 * WEFT_EBROKEN (and new arrivals wait until they are gone).
 * Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_barrier_reset(weft_barrier *b);

/* weft_barrier_broken() : true if `b` is broken (a snapshot). Async-signal-safe. */
WEFT_API bool weft_barrier_broken(weft_barrier *b);
/* weft_barrier_n_waiting() : threads waiting in the current cycle (a snapshot). */
WEFT_API int weft_barrier_n_waiting(weft_barrier *b);
/* weft_barrier_parties() : the number of parties, or -1 if not initialised.
 * Async-signal-safe. */
WEFT_API int weft_barrier_parties(const weft_barrier *b);

/* ------------------------------------------------------------------------
 * Event
 * ------------------------------------------------------------------------ */

/* A flag with waiters. 16 bytes; fields private. */
typedef struct weft_event {
    uint32_t weft__word; /* bit 0: set; the rest counts set() calls that set it */
    uint32_t weft__magic;
    uint32_t weft__waiters;
    uint32_t weft__flags;
} weft_event;

/* weft_event_init(), weft_event_fini() : as weft_lock_init/_fini; the event
 * starts clear; fini with waiters is WEFT_EBUSY. */
WEFT_API int weft_event_init(weft_event *e, unsigned flags);
WEFT_API int weft_event_fini(weft_event *e);

/* weft_event_set() : sets the flag and wakes every waiter. Any thread;
 * async-signal-safe: a signal handler may set an event a thread waits on.
 * @return 0, WEFT_EINVAL. */
WEFT_API int weft_event_set(weft_event *e);
/* weft_event_clear() : clears the flag. Async-signal-safe. @return 0, WEFT_EINVAL. */
WEFT_API int weft_event_clear(weft_event *e);
/* weft_event_is_set() : the flag (a snapshot); false if not initialised.
 * Async-signal-safe. */
WEFT_API bool weft_event_is_set(const weft_event *e);

/* weft_event_wait() :
 * Waits until the flag is set, at most `timeout`. A waiter woken by a set()
 * returns 0 even if the flag was cleared again before it ran.
 * Threads: any. @return 0 (set), WEFT_ETIMEDOUT (not set in time), WEFT_EINVAL. */
WEFT_API int weft_event_wait(weft_event *e, double timeout);

/* ------------------------------------------------------------------------
 * Timer
 * ------------------------------------------------------------------------ */

typedef void (*weft_timer_fn)(void *arg);
typedef struct weft_timer weft_timer;

/* weft_timer_create() :
 * Starts a thread that calls `fn(arg)` once `delay` seconds (>= 0, finite)
 * have passed, unless cancelled first. Process-local (it owns a thread).
 * Ownership: the caller destroys `*out` with weft_timer_destroy().
 * Threads: any. @return 0, WEFT_EINVAL (NULL fn/out, bad delay), WEFT_ENOMEM,
 * WEFT_EAGAIN (cannot start a thread); on error `*out` is NULL and `fn`
 * never runs. */
WEFT_API int weft_timer_create(double delay, weft_timer_fn fn, void *arg, weft_timer **out);

/* weft_timer_cancel() :
 * Stops `t` from firing if it has not fired yet. Cancelling twice is fine.
 * Async-signal-safe (while `t` is not being destroyed).
 * Threads: any. @return 0 (`fn` will never run), WEFT_EBUSY (it already
 * fired: `fn` is running or has returned), WEFT_EINVAL. */
WEFT_API int weft_timer_cancel(weft_timer *t);

/* weft_timer_wait() :
 * Waits until `t` is over: `fn` has returned, or `t` was cancelled (Python's
 * Timer.join). Threads: any but the timer's own. @return 0, WEFT_ETIMEDOUT,
 * WEFT_EINVAL. */
WEFT_API int weft_timer_wait(weft_timer *t, double timeout);

/* weft_timer_fired() : true once `fn` has started (a snapshot).
 * Async-signal-safe. */
WEFT_API bool weft_timer_fired(const weft_timer *t);

/* weft_timer_destroy() :
 * Cancels `t` if it has not fired, waits for a running `fn` to return, joins
 * the thread and frees `t`. NULL is a no-op.
 * Threads: any but the timer's own (`fn` destroying its timer: WEFT_EDEADLK,
 * nothing freed); no other call on `t` may be in progress or follow.
 * @return 0, WEFT_EDEADLK. */
WEFT_API int weft_timer_destroy(weft_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */

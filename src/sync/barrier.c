/* barrier.c : weft_barrier, threading.Barrier's algorithm over a futex.
 *
 * State (all under the barrier's internal lock word):
 *   FILLING   (0)  parties are arriving; `count` of them wait
 *   DRAINING  (1)  the cycle completed; waiters are leaving with their index
 *   RESETTING (-1) reset() while parties waited; they leave with WEFT_EBROKEN
 *   BROKEN    (-2) abort, a timeout or a failed action; every wait fails
 * An arrival waits while the barrier drains or resets, so a slow party of
 * the previous cycle can never be mistaken for one of the next; the last
 * party to leave a draining or resetting barrier returns it to FILLING.
 *
 * Waiting is a condition variable made of the `seq` word: a thread reads
 * `seq` while holding the lock, releases the lock and sleeps while `seq` is
 * unchanged; every state change bumps `seq` under the lock and wakes all.
 * The action runs on the last arriving party with the lock held, so it must
 * not call weft_barrier_* on the same barrier. */
#include <limits.h>

#include "sync/sync_internal.h"

enum {
    FILLING = 0,
    DRAINING = 1,
    RESETTING = -1,
    BROKEN = -2
};

static int bad_barrier(const weft_barrier *b, const char *fn)
{
    if (!b) return weft__err(WEFT_EINVAL, "%s: barrier is NULL", fn);
    return weft__err(WEFT_EINVAL, "%s: the barrier is not initialised (or was finalised)", fn);
}

static inline bool valid(const weft_barrier *b)
{
    return b && ld_relaxed(&b->weft__magic) == WEFT__MAGIC_BARRIER;
}

static inline bool shared_of(weft_barrier *b)
{
    return weft__sync_shared(ld_relaxed(&b->weft__flags));
}

static void b_lock(weft_barrier *b)
{
    weft__lockword_acquire(&b->weft__lock.weft__state, shared_of(b));
}

static void b_unlock(weft_barrier *b)
{
    weft__lockword_release(&b->weft__lock.weft__state, shared_of(b));
}

static inline int32_t get_state(weft_barrier *b)
{
    return ld_relaxed(&b->weft__state);
}

/* Sets the state and wakes every sleeper; the lock is held. */
static void set_state(weft_barrier *b, int32_t st)
{
    st_relaxed(&b->weft__state, st);
    __atomic_fetch_add(&b->weft__seq, 1, __ATOMIC_SEQ_CST);
    weft__futex_wake_ex(&b->weft__seq, INT_MAX, shared_of(b));
}

/* Releases the lock until the state may have changed or `deadline` (0: none)
 * passed, then takes it again. Returns WEFT_ETIMEDOUT once the deadline has
 * passed (the caller re-checks the state first, as Python's wait_for). */
static int wait_change(weft_barrier *b, uint64_t deadline)
{
    uint32_t seq = __atomic_load_n(&b->weft__seq, __ATOMIC_SEQ_CST);
    b_unlock(b);
    int rc = 0;
    int64_t rem = weft__remaining(deadline);
    if (rem == 0)
        rc = WEFT_ETIMEDOUT;
    else
        rc = weft__futex_wait_ex(&b->weft__seq, seq, rem, shared_of(b));
    b_lock(b);
    return rc;
}

int weft_barrier_init(weft_barrier *b, int parties, weft_barrier_fn action, void *arg,
                      unsigned flags)
{
    if (!b) return weft__err(WEFT_EINVAL, "weft_barrier_init: barrier is NULL");
    if (parties < 1)
        return weft__err(WEFT_EINVAL, "weft_barrier_init: parties = %d, must be >= 1", parties);
    if (flags & ~(unsigned)WEFT_SYNC_PSHARED)
        return weft__err(WEFT_EINVAL, "weft_barrier_init: unknown flags 0x%x", flags);
    int rc = weft_lock_init(&b->weft__lock, flags);
    if (rc) return rc;
    b->weft__seq = 0;
    b->weft__parties = (uint32_t)parties;
    b->weft__count = 0;
    b->weft__state = FILLING;
    b->weft__flags = flags;
    b->weft__action = action;
    b->weft__arg = arg;
    st_release(&b->weft__magic, WEFT__MAGIC_BARRIER);
    return 0;
}

int weft_barrier_fini(weft_barrier *b)
{
    if (!valid(b)) return bad_barrier(b, "weft_barrier_fini");
    b_lock(b);
    uint32_t n = b->weft__count;
    if (n == 0) st_relaxed(&b->weft__magic, WEFT__MAGIC_FINI);
    b_unlock(b);
    if (n) return weft__err(WEFT_EBUSY, "weft_barrier_fini: %u threads are in wait", n);
    return 0;
}

int weft_barrier_wait(weft_barrier *b, double timeout)
{
    if (!valid(b)) return bad_barrier(b, "weft_barrier_wait");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_barrier_wait");
    if (rc) return rc;
    uint64_t deadline = weft__deadline(ns);

    b_lock(b);
    /* enter: wait out the previous cycle's draining or a reset */
    while (get_state(b) == DRAINING || get_state(b) == RESETTING) wait_change(b, 0);
    if (get_state(b) == BROKEN) {
        b_unlock(b);
        return weft__err(WEFT_EBROKEN, "weft_barrier_wait: the barrier is broken");
    }
    uint32_t index = b->weft__count;
    st_relaxed(&b->weft__count, index + 1);
    if (index + 1 == b->weft__parties) {
        /* the last party: run the action, then release everyone */
        int arc = b->weft__action ? b->weft__action(b->weft__arg) : 0;
        if (arc != 0) {
            set_state(b, BROKEN);
            rc = arc < 0 ? arc : WEFT_ETASK;
        } else {
            set_state(b, DRAINING);
            rc = (int)index;
        }
    } else {
        rc = (int)index;
        while (get_state(b) == FILLING) {
            if (wait_change(b, deadline) == WEFT_ETIMEDOUT && get_state(b) == FILLING) {
                set_state(b, BROKEN); /* a timeout breaks the barrier, as in Python */
                rc = WEFT_ETIMEDOUT;
                break;
            }
        }
        if (rc >= 0 && get_state(b) < 0) rc = WEFT_EBROKEN;
    }
    /* exit: the last one out of a draining or resetting barrier refills it */
    uint32_t left = b->weft__count - 1;
    st_relaxed(&b->weft__count, left);
    if (left == 0 && (get_state(b) == DRAINING || get_state(b) == RESETTING)) set_state(b, FILLING);
    b_unlock(b);
    if (rc == WEFT_EBROKEN) return weft__err(rc, "weft_barrier_wait: the barrier is broken");
    if (rc == WEFT_ETIMEDOUT)
        return weft__err(rc, "weft_barrier_wait: timed out (the barrier is now broken)");
    if (rc < 0)
        return weft__err(rc, "weft_barrier_wait: the barrier action failed (%s)",
                         weft_strerror(rc));
    return rc;
}

int weft_barrier_abort(weft_barrier *b)
{
    if (!valid(b)) return bad_barrier(b, "weft_barrier_abort");
    b_lock(b);
    set_state(b, BROKEN);
    b_unlock(b);
    return 0;
}

int weft_barrier_reset(weft_barrier *b)
{
    if (!valid(b)) return bad_barrier(b, "weft_barrier_reset");
    b_lock(b);
    int32_t st = get_state(b);
    if (b->weft__count > 0) {
        if (st == FILLING || st == BROKEN) st = RESETTING;
    } else {
        st = FILLING;
    }
    set_state(b, st);
    b_unlock(b);
    return 0;
}

bool weft_barrier_broken(weft_barrier *b)
{
    if (!valid(b)) return false;
    return get_state(b) == BROKEN;
}

int weft_barrier_n_waiting(weft_barrier *b)
{
    if (!valid(b)) return 0;
    b_lock(b);
    int n = get_state(b) == FILLING ? (int)b->weft__count : 0;
    b_unlock(b);
    return n;
}

int weft_barrier_parties(const weft_barrier *b)
{
    if (!valid(b)) return -1;
    return (int)ld_relaxed(&b->weft__parties);
}

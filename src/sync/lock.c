/* lock.c : weft_lock, weft_rlock and weft_cond.
 *
 * The lock word is the three-state futex mutex of Drepper's "Futexes Are
 * Tricky": 0 free, 1 held, 2 held and some thread may sleep on the word.
 * Acquire is one compare-and-swap 0 -> 1 when free; release is one exchange
 * to 0, plus a FUTEX_WAKE only when the old value was 2. A contended acquirer
 * swaps in 2 and sleeps until the exchange returns 0 (WEFT__LOCK_SPIN, 0:
 * no spinning first; sync_internal.h says why). The word's
 * acquire/release ordering is what publishes the protected data.
 *
 * The owner field holds the holder's kernel thread id. It is written by the
 * holder alone (after acquiring, before releasing) and read by other threads
 * only to compare with their own id, so relaxed accesses suffice: a thread
 * can see its own id there only if it wrote it itself.
 *
 * weft_rlock is the same word plus a recursion count written only by the
 * holder. weft_cond is a sequence-number condition variable: a waiter counts
 * itself in `waiters` and reads `seq` while it still holds the lock, then
 * releases the lock and sleeps while `seq` is unchanged; notify bumps `seq`
 * and wakes up to n sleepers, and skips both when nobody waits. Over an
 * rlock the wait saves the holder's recursion count, releases the word once
 * (whatever the count) and restores the count after taking it back; the
 * count is written only by the holder, so no other thread sees the change.
 * wait_for is Python's loop: predicate, wait, predicate ... until the
 * predicate holds or the deadline has passed. */
#include <errno.h>
#include <limits.h>
#include <sys/single_threaded.h>

#include "sync/sync_internal.h"

/* True while the process has one thread (glibc clears the flag before the
 * second thread starts). A process-private lock then needs no atomic
 * read-modify-write: nobody else can touch it. glibc's own mutex takes the
 * same shortcut; PSHARED locks never do (another process may). */
static inline bool private_single_threaded(uint32_t flags)
{
    return __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED) &&
           !(flags & WEFT_SYNC_PSHARED);
}

int weft__lockword_acquire_slow(uint32_t *w, uint64_t deadline, bool try_only, bool shared)
{
    uint32_t z = 0;
    if (try_only)
        return __atomic_compare_exchange_n(w, &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
                   ? 0
                   : WEFT_ETIMEDOUT;
    for (int i = 0; i < WEFT__LOCK_SPIN; i++) {
        uint32_t c = ld_relaxed(w);
        if (c == 0) {
            z = 0;
            if (__atomic_compare_exchange_n(w, &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return 0;
        } else if (c == 2) {
            break; /* others sleep already: spinning will not win */
        }
        weft__cpu_relax();
    }
    uint32_t c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) return WEFT_ETIMEDOUT;
        weft__futex_wait_ex(w, 2, rem, shared);
        c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    }
    return 0;
}

static int check_flags(unsigned flags, unsigned allowed, const char *fn)
{
    if (flags & ~allowed) return weft__err(WEFT_EINVAL, "%s: unknown flags 0x%x", fn, flags);
    return 0;
}

static int bad_object(const void *p, const char *fn, const char *what)
{
    if (!p) return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, what);
    return weft__err(WEFT_EINVAL, "%s: the %s is not initialised (or was finalised)", fn, what);
}

/* Validates a timeout and turns it into a deadline; *try_only for 0. */
static int take_timeout(double timeout, uint64_t *deadline, bool *try_only, const char *fn)
{
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    if (rc) return rc;
    *try_only = ns == 0;
    *deadline = weft__deadline(ns);
    return 0;
}

/* ---- weft_lock ----------------------------------------------------------- */

int weft_lock_init(weft_lock *l, unsigned flags)
{
    if (!l) return weft__err(WEFT_EINVAL, "weft_lock_init: lock is NULL");
    int rc = check_flags(flags, WEFT_SYNC_PSHARED, "weft_lock_init");
    if (rc) return rc;
    l->weft__state = 0;
    l->weft__owner = 0;
    l->weft__flags = flags;
    st_release(&l->weft__magic, WEFT__MAGIC_LOCK);
    return 0;
}

int weft_lock_fini(weft_lock *l)
{
    if (!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_LOCK)
        return bad_object(l, "weft_lock_fini", "lock");
    if (ld_acquire(&l->weft__state) != 0)
        return weft__err(WEFT_EBUSY, "weft_lock_fini: the lock is held");
    st_relaxed(&l->weft__magic, WEFT__MAGIC_FINI);
    return 0;
}

static __attribute__((noinline)) int lock_slow(weft_lock *l, double timeout, uint32_t me)
{
    uint64_t deadline;
    bool try_only;
    int rc = take_timeout(timeout, &deadline, &try_only, "weft_lock_acquire");
    if (rc) return rc;
    if (ld_relaxed(&l->weft__owner) == me)
        return weft__err(WEFT_EDEADLK, "weft_lock_acquire: the calling thread holds the lock "
                                       "already (use weft_rlock to re-enter)");
    rc = weft__lockword_acquire_slow(&l->weft__state, deadline, try_only,
                                     weft__sync_shared(ld_relaxed(&l->weft__flags)));
    if (rc) return rc;
    st_relaxed(&l->weft__owner, me);
    return 0;
}

int weft_lock_acquire(weft_lock *l, double timeout)
{
    if (WEFT__UNLIKELY(!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_LOCK))
        return bad_object(l, "weft_lock_acquire", "lock");
    uint32_t me = weft__thread_id();
    if (WEFT__LIKELY(timeout >= 0)) {
        if (private_single_threaded(ld_relaxed(&l->weft__flags))) {
            if (ld_relaxed(&l->weft__state) == 0) {
                st_relaxed(&l->weft__state, 1);
                st_relaxed(&l->weft__owner, me);
                return 0;
            }
        } else {
            uint32_t z = 0;
            if (__atomic_compare_exchange_n(&l->weft__state, &z, 1, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                st_relaxed(&l->weft__owner, me);
                return 0;
            }
        }
    }
    return lock_slow(l, timeout, me);
}

static __attribute__((noinline)) int release_eperm(uint32_t owner, const char *fn, const char *what)
{
    if (owner == 0) return weft__err(WEFT_EPERM, "%s: the %s is not held", fn, what);
    return weft__err(WEFT_EPERM, "%s: the %s is held by thread %u, not by the caller", fn, what,
                     owner);
}

int weft_lock_release(weft_lock *l)
{
    if (WEFT__UNLIKELY(!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_LOCK))
        return bad_object(l, "weft_lock_release", "lock");
    uint32_t owner = ld_relaxed(&l->weft__owner);
    if (WEFT__UNLIKELY(owner != weft__thread_id()))
        return release_eperm(owner, "weft_lock_release", "lock");
    st_relaxed(&l->weft__owner, 0);
    uint32_t flags = ld_relaxed(&l->weft__flags);
    if (private_single_threaded(flags))
        st_relaxed(&l->weft__state, 0); /* no other thread: none can sleep on it */
    else
        weft__lockword_release(&l->weft__state, weft__sync_shared(flags));
    return 0;
}

bool weft_lock_locked(const weft_lock *l)
{
    if (!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_LOCK) return false;
    return ld_relaxed(&l->weft__state) != 0;
}

/* ---- weft_rlock ---------------------------------------------------------- */

int weft_rlock_init(weft_rlock *l, unsigned flags)
{
    if (!l) return weft__err(WEFT_EINVAL, "weft_rlock_init: rlock is NULL");
    int rc = check_flags(flags, WEFT_SYNC_PSHARED, "weft_rlock_init");
    if (rc) return rc;
    l->weft__state = 0;
    l->weft__owner = 0;
    l->weft__count = 0;
    l->weft__pad = 0;
    l->weft__flags = flags;
    st_release(&l->weft__magic, WEFT__MAGIC_RLOCK);
    return 0;
}

int weft_rlock_fini(weft_rlock *l)
{
    if (!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_RLOCK)
        return bad_object(l, "weft_rlock_fini", "rlock");
    if (ld_acquire(&l->weft__state) != 0)
        return weft__err(WEFT_EBUSY, "weft_rlock_fini: the rlock is held");
    st_relaxed(&l->weft__magic, WEFT__MAGIC_FINI);
    return 0;
}

int weft_rlock_acquire(weft_rlock *l, double timeout)
{
    if (WEFT__UNLIKELY(!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_RLOCK))
        return bad_object(l, "weft_rlock_acquire", "rlock");
    uint32_t me = weft__thread_id();
    if (ld_relaxed(&l->weft__owner) == me) {
        uint32_t n = ld_relaxed(&l->weft__count);
        if (n == UINT32_MAX)
            return weft__err(WEFT_EOVERFLOW, "weft_rlock_acquire: held %u times already", n);
        if (timeout != timeout || timeout < 0) {
            int64_t ns;
            return weft__timeout_ns(timeout, &ns, "weft_rlock_acquire");
        }
        st_relaxed(&l->weft__count, n + 1);
        return 0;
    }
    uint32_t z = 0;
    if (!(timeout >= 0 && __atomic_compare_exchange_n(&l->weft__state, &z, 1, false,
                                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
        uint64_t deadline;
        bool try_only;
        int rc = take_timeout(timeout, &deadline, &try_only, "weft_rlock_acquire");
        if (rc) return rc;
        rc = weft__lockword_acquire_slow(&l->weft__state, deadline, try_only,
                                         weft__sync_shared(ld_relaxed(&l->weft__flags)));
        if (rc) return rc;
    }
    st_relaxed(&l->weft__count, 1);
    st_relaxed(&l->weft__owner, me);
    return 0;
}

int weft_rlock_release(weft_rlock *l)
{
    if (WEFT__UNLIKELY(!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_RLOCK))
        return bad_object(l, "weft_rlock_release", "rlock");
    uint32_t owner = ld_relaxed(&l->weft__owner);
    if (WEFT__UNLIKELY(owner != weft__thread_id()))
        return release_eperm(owner, "weft_rlock_release", "rlock");
    uint32_t n = ld_relaxed(&l->weft__count) - 1;
    st_relaxed(&l->weft__count, n);
    if (n > 0) return 0;
    st_relaxed(&l->weft__owner, 0);
    weft__lockword_release(&l->weft__state, weft__sync_shared(ld_relaxed(&l->weft__flags)));
    return 0;
}

unsigned weft_rlock_count(const weft_rlock *l)
{
    if (!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_RLOCK) return 0;
    if (ld_relaxed(&l->weft__owner) != weft__thread_id()) return 0;
    return ld_relaxed(&l->weft__count);
}

/* ---- weft_cond ----------------------------------------------------------- */

int weft_cond_init(weft_cond *c, unsigned flags)
{
    if (!c) return weft__err(WEFT_EINVAL, "weft_cond_init: cond is NULL");
    int rc = check_flags(flags, WEFT_SYNC_PSHARED, "weft_cond_init");
    if (rc) return rc;
    c->weft__seq = 0;
    c->weft__waiters = 0;
    c->weft__flags = flags;
    st_release(&c->weft__magic, WEFT__MAGIC_COND);
    return 0;
}

int weft_cond_fini(weft_cond *c)
{
    if (!c || ld_relaxed(&c->weft__magic) != WEFT__MAGIC_COND)
        return bad_object(c, "weft_cond_fini", "cond");
    if (__atomic_load_n(&c->weft__waiters, __ATOMIC_SEQ_CST) != 0)
        return weft__err(WEFT_EBUSY, "weft_cond_fini: threads are waiting");
    st_relaxed(&c->weft__magic, WEFT__MAGIC_FINI);
    return 0;
}

/* The lock a cond waits over: a weft_lock (count NULL) or a weft_rlock,
 * whose recursion count is saved before the wait and restored after. */
typedef struct cond_lock {
    uint32_t *state, *owner, *count;
    bool shared;
} cond_lock;

static cond_lock of_lock(weft_lock *l)
{
    return (cond_lock){&l->weft__state, &l->weft__owner, NULL,
                       weft__sync_shared(ld_relaxed(&l->weft__flags))};
}

static cond_lock of_rlock(weft_rlock *l)
{
    return (cond_lock){&l->weft__state, &l->weft__owner, &l->weft__count,
                       weft__sync_shared(ld_relaxed(&l->weft__flags))};
}

/* One wait; the caller (`me`) holds `l`. Counts itself a waiter and reads
 * `seq` while holding the lock, releases it fully (an rlock's count goes to
 * 0: the next holder sets its own), sleeps while `seq` is unchanged, then
 * takes the lock again and restores owner and count. 0 or WEFT_ETIMEDOUT. */
static int cond_sleep(weft_cond *c, cond_lock l, uint32_t me, uint64_t deadline)
{
    bool cshared = weft__sync_shared(ld_relaxed(&c->weft__flags));
    __atomic_fetch_add(&c->weft__waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t seq = __atomic_load_n(&c->weft__seq, __ATOMIC_SEQ_CST);
    uint32_t count = l.count ? ld_relaxed(l.count) : 0;
    if (l.count) st_relaxed(l.count, 0);
    st_relaxed(l.owner, 0);
    weft__lockword_release(l.state, l.shared);

    int rc = 0;
    while (__atomic_load_n(&c->weft__seq, __ATOMIC_ACQUIRE) == seq) {
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
        weft__futex_wait_ex(&c->weft__seq, seq, rem, cshared);
    }
    __atomic_fetch_sub(&c->weft__waiters, 1, __ATOMIC_SEQ_CST);

    weft__lockword_acquire(l.state, l.shared);
    if (l.count) st_relaxed(l.count, count);
    st_relaxed(l.owner, me);
    return rc;
}

/* Checks the arguments common to every wait: 0, or an error (the lock is
 * not touched). On success *deadline and *me are set. */
static int cond_enter(weft_cond *c, const void *l, const uint32_t *magic_field, uint32_t lmagic,
                      const uint32_t *owner_field, double timeout, uint64_t *deadline, uint32_t *me,
                      const char *fn)
{
    if (!c || ld_relaxed(&c->weft__magic) != WEFT__MAGIC_COND) return bad_object(c, fn, "cond");
    const char *what = lmagic == WEFT__MAGIC_LOCK ? "lock" : "rlock";
    if (!l || ld_relaxed(magic_field) != lmagic) return bad_object(l, fn, what);
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    if (rc) return rc;
    *me = weft__thread_id();
    uint32_t owner = ld_relaxed(owner_field);
    if (owner != *me) return release_eperm(owner, fn, what);
    *deadline = weft__deadline(ns);
    return 0;
}

int weft_cond_wait(weft_cond *c, weft_lock *l, double timeout)
{
    uint64_t deadline;
    uint32_t me;
    int rc = cond_enter(c, l, l ? &l->weft__magic : NULL, WEFT__MAGIC_LOCK,
                        l ? &l->weft__owner : NULL, timeout, &deadline, &me, "weft_cond_wait");
    if (rc) return rc;
    return cond_sleep(c, of_lock(l), me, deadline);
}

int weft_cond_wait_rlock(weft_cond *c, weft_rlock *l, double timeout)
{
    uint64_t deadline;
    uint32_t me;
    int rc =
        cond_enter(c, l, l ? &l->weft__magic : NULL, WEFT__MAGIC_RLOCK, l ? &l->weft__owner : NULL,
                   timeout, &deadline, &me, "weft_cond_wait_rlock");
    if (rc) return rc;
    return cond_sleep(c, of_rlock(l), me, deadline);
}

/* Python's wait_for: the predicate first, then wait and re-check until it
 * holds or the deadline has passed (a last check follows the last wait). */
static int cond_wait_for(weft_cond *c, cond_lock l, uint32_t me, uint64_t deadline,
                         weft_cond_pred pred, void *arg)
{
    for (;;) {
        if (pred(arg)) return 0;
        if (weft__remaining(deadline) == 0) return WEFT_ETIMEDOUT;
        cond_sleep(c, l, me, deadline);
    }
}

int weft_cond_wait_for(weft_cond *c, weft_lock *l, weft_cond_pred pred, void *arg, double timeout)
{
    uint64_t deadline;
    uint32_t me;
    int rc = cond_enter(c, l, l ? &l->weft__magic : NULL, WEFT__MAGIC_LOCK,
                        l ? &l->weft__owner : NULL, timeout, &deadline, &me, "weft_cond_wait_for");
    if (rc) return rc;
    if (!pred) return weft__err(WEFT_EINVAL, "weft_cond_wait_for: pred is NULL");
    return cond_wait_for(c, of_lock(l), me, deadline, pred, arg);
}

int weft_cond_wait_for_rlock(weft_cond *c, weft_rlock *l, weft_cond_pred pred, void *arg,
                             double timeout)
{
    uint64_t deadline;
    uint32_t me;
    int rc =
        cond_enter(c, l, l ? &l->weft__magic : NULL, WEFT__MAGIC_RLOCK, l ? &l->weft__owner : NULL,
                   timeout, &deadline, &me, "weft_cond_wait_for_rlock");
    if (rc) return rc;
    if (!pred) return weft__err(WEFT_EINVAL, "weft_cond_wait_for_rlock: pred is NULL");
    return cond_wait_for(c, of_rlock(l), me, deadline, pred, arg);
}

int weft_cond_notify(weft_cond *c, int n)
{
    /* async-signal-safe: fixed error messages, errno kept */
    if (!c || ld_relaxed(&c->weft__magic) != WEFT__MAGIC_COND)
        return weft__err_safe(WEFT_EINVAL, "weft_cond_notify: ",
                              c ? "the cond is not initialised (or was finalised)"
                                : "cond is NULL");
    if (n < 1) return weft__err_safe(WEFT_EINVAL, "weft_cond_notify: n must be >= 1", NULL);
    if (__atomic_load_n(&c->weft__waiters, __ATOMIC_SEQ_CST) == 0) return 0;
    __atomic_fetch_add(&c->weft__seq, 1, __ATOMIC_SEQ_CST);
    int saved = errno;
    weft__futex_wake_ex(&c->weft__seq, n, weft__sync_shared(ld_relaxed(&c->weft__flags)));
    errno = saved;
    return 0;
}

int weft_cond_notify_all(weft_cond *c)
{
    return weft_cond_notify(c, INT_MAX);
}

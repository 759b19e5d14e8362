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
 * and wakes up to n sleepers, and skips both when nobody waits. */
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

int weft_cond_wait(weft_cond *c, weft_lock *l, double timeout)
{
    if (!c || ld_relaxed(&c->weft__magic) != WEFT__MAGIC_COND)
        return bad_object(c, "weft_cond_wait", "cond");
    if (!l || ld_relaxed(&l->weft__magic) != WEFT__MAGIC_LOCK)
        return bad_object(l, "weft_cond_wait", "lock");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_cond_wait");
    if (rc) return rc;
    uint32_t me = weft__thread_id();
    uint32_t owner = ld_relaxed(&l->weft__owner);
    if (owner != me) return release_eperm(owner, "weft_cond_wait", "lock");
    uint64_t deadline = weft__deadline(ns);
    bool cshared = weft__sync_shared(ld_relaxed(&c->weft__flags));
    bool lshared = weft__sync_shared(ld_relaxed(&l->weft__flags));

    __atomic_fetch_add(&c->weft__waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t seq = __atomic_load_n(&c->weft__seq, __ATOMIC_SEQ_CST);
    st_relaxed(&l->weft__owner, 0);
    weft__lockword_release(&l->weft__state, lshared);

    rc = 0;
    while (__atomic_load_n(&c->weft__seq, __ATOMIC_ACQUIRE) == seq) {
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
        weft__futex_wait_ex(&c->weft__seq, seq, rem, cshared);
    }
    __atomic_fetch_sub(&c->weft__waiters, 1, __ATOMIC_SEQ_CST);

    weft__lockword_acquire(&l->weft__state, lshared);
    st_relaxed(&l->weft__owner, me);
    return rc;
}

int weft_cond_notify(weft_cond *c, int n)
{
    if (!c || ld_relaxed(&c->weft__magic) != WEFT__MAGIC_COND)
        return bad_object(c, "weft_cond_notify", "cond");
    if (n < 1) return weft__err(WEFT_EINVAL, "weft_cond_notify: n = %d, must be >= 1", n);
    if (__atomic_load_n(&c->weft__waiters, __ATOMIC_SEQ_CST) == 0) return 0;
    __atomic_fetch_add(&c->weft__seq, 1, __ATOMIC_SEQ_CST);
    weft__futex_wake_ex(&c->weft__seq, n, weft__sync_shared(ld_relaxed(&c->weft__flags)));
    return 0;
}

int weft_cond_notify_all(weft_cond *c)
{
    return weft_cond_notify(c, INT_MAX);
}

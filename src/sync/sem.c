/* sem.c : weft_sem (counting and bounded semaphore) and weft_event.
 *
 * Both sleep on their value word and count sleepers in `waiters`, so that
 * the waking side makes no system call when nobody sleeps. The handshake is
 * a Dekker pair in seq_cst order: a sleeper increments `waiters`, then the
 * kernel re-reads the word inside FUTEX_WAIT; a waker changes the word, then
 * reads `waiters`. Either the waker sees the sleeper (and wakes it) or the
 * sleeper's FUTEX_WAIT sees the new word (and does not sleep).
 *
 * The event word is (generation << 1) | flag. set() bumps the generation as
 * it raises the flag, so a waiter that sleeps on the old word notices a set()
 * even if clear() lowered the flag again before it ran -- the guarantee
 * Python's Event gives: a waiter woken by set() returns True. */
#include <errno.h>
#include <limits.h>

#include "sync/sync_internal.h"

static int bad_object(const void *p, const char *fn, const char *what)
{
    if (!p) return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, what);
    return weft__err(WEFT_EINVAL, "%s: the %s is not initialised (or was finalised)", fn, what);
}

/* The async-signal-safe calls (weft_sem_release, weft_sem_acquire with
 * timeout 0, weft_event_set, _clear)
 * report errors with these fixed messages (weft__err_safe: no printf) and
 * keep errno across their futex call, so a signal handler may call them. */
static int bad_object_safe(const void *p, const char *fn)
{
    return weft__err_safe(WEFT_EINVAL, fn,
                          p ? ": not initialised (or was finalised)" : ": NULL object");
}

static void wake_safe(uint32_t *word, int n, uint32_t flags)
{
    int saved = errno;
    weft__futex_wake_ex(word, n, weft__sync_shared(flags));
    errno = saved;
}

/* ---- weft_sem ------------------------------------------------------------ */

int weft_sem_init(weft_sem *s, int value, unsigned flags)
{
    if (!s) return weft__err(WEFT_EINVAL, "weft_sem_init: sem is NULL");
    if (flags & ~(unsigned)(WEFT_SYNC_PSHARED | WEFT_SEM_BOUNDED))
        return weft__err(WEFT_EINVAL, "weft_sem_init: unknown flags 0x%x", flags);
    if (value < 0) return weft__err(WEFT_EINVAL, "weft_sem_init: value %d is negative", value);
    s->weft__value = (uint32_t)value;
    s->weft__waiters = 0;
    s->weft__flags = flags;
    s->weft__max = (flags & WEFT_SEM_BOUNDED) ? (uint32_t)value : (uint32_t)INT32_MAX;
    s->weft__pad = 0;
    st_release(&s->weft__magic, WEFT__MAGIC_SEM);
    return 0;
}

int weft_sem_fini(weft_sem *s)
{
    if (!s || ld_relaxed(&s->weft__magic) != WEFT__MAGIC_SEM)
        return bad_object(s, "weft_sem_fini", "semaphore");
    if (__atomic_load_n(&s->weft__waiters, __ATOMIC_SEQ_CST) != 0)
        return weft__err(WEFT_EBUSY, "weft_sem_fini: threads are waiting");
    st_relaxed(&s->weft__magic, WEFT__MAGIC_FINI);
    return 0;
}

/* One decrement if the count is positive. */
static inline bool sem_try(weft_sem *s)
{
    uint32_t v = ld_relaxed(&s->weft__value);
    while (v > 0) {
        if (__atomic_compare_exchange_n(&s->weft__value, &v, v - 1, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

int weft_sem_acquire(weft_sem *s, double timeout)
{
    if (WEFT__UNLIKELY(!s || ld_relaxed(&s->weft__magic) != WEFT__MAGIC_SEM))
        return bad_object_safe(s, "weft_sem_acquire");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_sem_acquire");
    if (rc) return rc;
    if (sem_try(s)) return 0;
    if (ns == 0) return WEFT_ETIMEDOUT;
    for (int i = 0; i < WEFT__SPIN; i++) {
        weft__cpu_relax();
        if (ld_relaxed(&s->weft__value) > 0 && sem_try(s)) return 0;
    }
    uint64_t deadline = weft__deadline(ns);
    bool shared = weft__sync_shared(ld_relaxed(&s->weft__flags));
    for (;;) {
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) return WEFT_ETIMEDOUT;
        __atomic_fetch_add(&s->weft__waiters, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->weft__value, __ATOMIC_SEQ_CST) == 0)
            weft__futex_wait_ex(&s->weft__value, 0, rem, shared);
        __atomic_fetch_sub(&s->weft__waiters, 1, __ATOMIC_SEQ_CST);
        if (sem_try(s)) return 0;
    }
}

int weft_sem_release(weft_sem *s, int n)
{
    if (WEFT__UNLIKELY(!s || ld_relaxed(&s->weft__magic) != WEFT__MAGIC_SEM))
        return bad_object_safe(s, "weft_sem_release");
    if (n < 1) return weft__err_safe(WEFT_EINVAL, "weft_sem_release: n must be >= 1", NULL);
    uint32_t max = ld_relaxed(&s->weft__max);
    uint32_t v = ld_relaxed(&s->weft__value);
    do {
        if ((uint32_t)n > max - v) {
            if (ld_relaxed(&s->weft__flags) & WEFT_SEM_BOUNDED)
                return weft__err_safe(WEFT_EOVERFLOW,
                                      "weft_sem_release: released too many times (the count "
                                      "would exceed the bound of the bounded semaphore)",
                                      NULL);
            return weft__err_safe(WEFT_EOVERFLOW,
                                  "weft_sem_release: the count would exceed INT32_MAX", NULL);
        }
    } while (!__atomic_compare_exchange_n(&s->weft__value, &v, v + (uint32_t)n, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    if (__atomic_load_n(&s->weft__waiters, __ATOMIC_SEQ_CST) != 0)
        wake_safe(&s->weft__value, n, ld_relaxed(&s->weft__flags));
    return 0;
}

int weft_sem_value(const weft_sem *s)
{
    if (!s || ld_relaxed(&s->weft__magic) != WEFT__MAGIC_SEM) return -1;
    return (int)ld_relaxed(&s->weft__value);
}

/* ---- weft_event ---------------------------------------------------------- */

int weft_event_init(weft_event *e, unsigned flags)
{
    if (!e) return weft__err(WEFT_EINVAL, "weft_event_init: event is NULL");
    if (flags & ~(unsigned)WEFT_SYNC_PSHARED)
        return weft__err(WEFT_EINVAL, "weft_event_init: unknown flags 0x%x", flags);
    e->weft__word = 0;
    e->weft__waiters = 0;
    e->weft__flags = flags;
    st_release(&e->weft__magic, WEFT__MAGIC_EVENT);
    return 0;
}

int weft_event_fini(weft_event *e)
{
    if (!e || ld_relaxed(&e->weft__magic) != WEFT__MAGIC_EVENT)
        return bad_object(e, "weft_event_fini", "event");
    if (__atomic_load_n(&e->weft__waiters, __ATOMIC_SEQ_CST) != 0)
        return weft__err(WEFT_EBUSY, "weft_event_fini: threads are waiting");
    st_relaxed(&e->weft__magic, WEFT__MAGIC_FINI);
    return 0;
}

int weft_event_set(weft_event *e)
{
    if (WEFT__UNLIKELY(!e || ld_relaxed(&e->weft__magic) != WEFT__MAGIC_EVENT))
        return bad_object_safe(e, "weft_event_set");
    uint32_t w = ld_relaxed(&e->weft__word);
    do {
        if (w & 1u) return 0; /* set already: nobody sleeps on a set word */
    } while (!__atomic_compare_exchange_n(&e->weft__word, &w, (w + 2u) | 1u, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (__atomic_load_n(&e->weft__waiters, __ATOMIC_SEQ_CST) != 0)
        wake_safe(&e->weft__word, INT_MAX, ld_relaxed(&e->weft__flags));
    return 0;
}

int weft_event_clear(weft_event *e)
{
    if (WEFT__UNLIKELY(!e || ld_relaxed(&e->weft__magic) != WEFT__MAGIC_EVENT))
        return bad_object_safe(e, "weft_event_clear");
    __atomic_fetch_and(&e->weft__word, ~1u, __ATOMIC_RELEASE);
    return 0;
}

bool weft_event_is_set(const weft_event *e)
{
    if (!e || ld_relaxed(&e->weft__magic) != WEFT__MAGIC_EVENT) return false;
    return (ld_acquire(&e->weft__word) & 1u) != 0;
}

int weft_event_wait(weft_event *e, double timeout)
{
    if (WEFT__UNLIKELY(!e || ld_relaxed(&e->weft__magic) != WEFT__MAGIC_EVENT))
        return bad_object(e, "weft_event_wait", "event");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_event_wait");
    if (rc) return rc;
    uint32_t w = ld_acquire(&e->weft__word);
    if (w & 1u) return 0;
    if (ns == 0) return WEFT_ETIMEDOUT;
    for (int i = 0; i < WEFT__SPIN; i++) {
        weft__cpu_relax();
        if (ld_acquire(&e->weft__word) != w) return 0;
    }
    uint64_t deadline = weft__deadline(ns);
    bool shared = weft__sync_shared(ld_relaxed(&e->weft__flags));
    for (;;) {
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) return WEFT_ETIMEDOUT;
        __atomic_fetch_add(&e->weft__waiters, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&e->weft__word, __ATOMIC_SEQ_CST) == w)
            weft__futex_wait_ex(&e->weft__word, w, rem, shared);
        __atomic_fetch_sub(&e->weft__waiters, 1, __ATOMIC_SEQ_CST);
        /* the word moves only by set() (clear() of a clear word keeps it) */
        if (ld_acquire(&e->weft__word) != w) return 0;
    }
}

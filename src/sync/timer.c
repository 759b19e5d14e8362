/* timer.c : weft_timer, a function run once after a delay on its own thread
 * (threading.Timer).
 *
 * The state word moves PENDING -> CANCELLED (cancel won) or PENDING -> FIRED
 * -> DONE (the thread won); the one compare-and-swap out of PENDING decides
 * the race between cancel() and the delay running out, so `fn` runs at most
 * once and never after a successful cancel. The thread sleeps on the word
 * with the remaining delay, so cancel() wakes it at once; waiters sleep on
 * the same word until it reaches CANCELLED or DONE. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "sync/sync_internal.h"

enum {
    PENDING = 0,
    CANCELLED = 1,
    FIRED = 2,
    DONE = 3
};

struct weft_timer {
    _Atomic uint32_t state;
    pthread_t thread;
    uint64_t deadline; /* monotonic ns */
    weft_timer_fn fn;
    void *arg;
};

static void *timer_main(void *p)
{
    weft_timer *t = p;
    for (;;) {
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (st != PENDING) break;
        int64_t rem = weft__remaining(t->deadline);
        if (rem == 0) {
            uint32_t expect = PENDING;
            if (atomic_compare_exchange_strong(&t->state, &expect, FIRED)) {
                t->fn(t->arg);
                atomic_store_explicit(&t->state, DONE, memory_order_release);
                weft__futex_wake(&t->state, INT_MAX);
            }
            break;
        }
        weft__futex_wait(&t->state, PENDING, rem);
    }
    return NULL;
}

int weft_timer_create(double delay, weft_timer_fn fn, void *arg, weft_timer **out)
{
    if (out) *out = NULL;
    if (!out || !fn)
        return weft__err(WEFT_EINVAL, "weft_timer_create: %s is NULL", out ? "fn" : "out");
    if (delay != delay || delay < 0 || delay >= 9.2e9)
        return weft__err(WEFT_EINVAL, "weft_timer_create: delay %g is not a finite number >= 0",
                         delay);
    weft_timer *t = calloc(1, sizeof *t);
    if (!t) return weft__err(WEFT_ENOMEM, "weft_timer_create: out of memory");
    atomic_init(&t->state, PENDING);
    t->deadline = weft__now_ns() + (uint64_t)(delay * 1e9);
    t->fn = fn;
    t->arg = arg;
    int e = pthread_create(&t->thread, NULL, timer_main, t);
    if (e) {
        free(t);
        return weft__err(WEFT_EAGAIN, "weft_timer_create: cannot start a thread (errno %d)", e);
    }
    *out = t;
    return 0;
}

/* Async-signal-safe: one compare-and-swap, a futex wake with errno kept,
 * fixed error messages. */
int weft_timer_cancel(weft_timer *t)
{
    if (!t) return weft__err_safe(WEFT_EINVAL, "weft_timer_cancel: timer is NULL", NULL);
    uint32_t expect = PENDING;
    if (atomic_compare_exchange_strong(&t->state, &expect, CANCELLED)) {
        int saved = errno;
        weft__futex_wake(&t->state, INT_MAX);
        errno = saved;
        return 0;
    }
    if (expect == CANCELLED) return 0;
    return weft__err_safe(WEFT_EBUSY, "weft_timer_cancel: the timer has fired already", NULL);
}

int weft_timer_wait(weft_timer *t, double timeout)
{
    if (!t) return weft__err(WEFT_EINVAL, "weft_timer_wait: timer is NULL");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_timer_wait");
    if (rc) return rc;
    if (pthread_equal(pthread_self(), t->thread))
        return weft__err(WEFT_EDEADLK, "weft_timer_wait: called from the timer's own function");
    uint64_t deadline = weft__deadline(ns);
    for (;;) {
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (st == CANCELLED || st == DONE) return 0;
        int64_t rem = weft__remaining(deadline);
        if (rem == 0) return WEFT_ETIMEDOUT;
        weft__futex_wait(&t->state, st, rem);
    }
}

bool weft_timer_fired(const weft_timer *t)
{
    if (!t) return false;
    return atomic_load_explicit(&((weft_timer *)t)->state, memory_order_acquire) >= FIRED;
}

int weft_timer_destroy(weft_timer *t)
{
    if (!t) return 0;
    if (pthread_equal(pthread_self(), t->thread))
        return weft__err(WEFT_EDEADLK, "weft_timer_destroy: called from the timer's own function");
    (void)weft_timer_cancel(t);
    pthread_join(t->thread, NULL);
    free(t);
    return 0;
}

/* deque.h : the Chase-Lev work-stealing deque (after Le, Pop, Cohen and
 * Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory
 * Models", PPoPP 2013).
 *
 * One owner pushes and pops at the bottom; any thread steals at the top.
 * Invariants: top only grows (CAS by thieves, or by the owner taking the
 * last item); items in [top, bottom) are live; the owner alone writes
 * bottom and the array pointer.
 * Memory orders: slots are written with release and read with acquire, and
 * bottom is published with release, so a thief that sees an item also sees
 * everything its pusher wrote before (ThreadSanitizer follows this; it does
 * not follow fences). The seq_cst fence in pop and steal orders the owner's
 * bottom store against the thieves' top CAS for the last item.
 * Growth: the owner copies into an array twice the size; old arrays stay
 * allocated until the deque is destroyed, since a thief may still read one. */
#ifndef WEFT_DEQUE_H
#define WEFT_DEQUE_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

typedef struct weft__darray {
    int64_t cap; /* power of two */
    struct weft__darray *prev;
    _Atomic(void *) buf[];
} weft__darray;

typedef struct weft__deque {
    _Atomic int64_t top WEFT__ALIGNED;
    _Atomic int64_t bottom WEFT__ALIGNED;
    _Atomic(weft__darray *) arr;
} weft__deque;

#define WEFT__DEQUE_ABORT ((void *)1)

static inline weft__darray *weft__darray_new(int64_t cap, weft__darray *prev)
{
    weft__darray *a = malloc(sizeof *a + (size_t)cap * sizeof(_Atomic(void *)));
    if (!a) return NULL;
    a->cap = cap;
    a->prev = prev;
    return a;
}

static inline int weft__deque_init(weft__deque *d, int64_t cap)
{
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    weft__darray *a = weft__darray_new(cap, NULL);
    if (!a) return WEFT_ENOMEM;
    atomic_init(&d->arr, a);
    return 0;
}

static inline void weft__deque_fini(weft__deque *d)
{
    weft__darray *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    while (a) {
        weft__darray *p = a->prev;
        free(a);
        a = p;
    }
}

/* Owner only. Returns 0 or WEFT_ENOMEM (the deque is unchanged then). */
static inline int weft__deque_push(weft__deque *d, void *x)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    weft__darray *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    if (WEFT__UNLIKELY(b - t > a->cap - 1)) {
        weft__darray *na = weft__darray_new(a->cap * 2, a);
        if (!na) return WEFT_ENOMEM;
        for (int64_t i = t; i < b; i++)
            atomic_store_explicit(
                &na->buf[i & (na->cap - 1)],
                atomic_load_explicit(&a->buf[i & (a->cap - 1)], memory_order_relaxed),
                memory_order_relaxed);
        atomic_store_explicit(&d->arr, na, memory_order_release);
        a = na;
    }
    atomic_store_explicit(&a->buf[b & (a->cap - 1)], x, memory_order_release);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

/* Owner only. Returns an item or NULL. */
static inline void *weft__deque_pop(weft__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    weft__darray *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    void *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->buf[b & (a->cap - 1)], memory_order_relaxed);
        if (t == b) {
            if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

/* Any thread. Returns an item, NULL if empty, or WEFT__DEQUE_ABORT if it
 * lost a race (try again or elsewhere). */
static inline void *weft__deque_steal(weft__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b) return NULL;
    weft__darray *a = atomic_load_explicit(&d->arr, memory_order_acquire);
    void *x = atomic_load_explicit(&a->buf[t & (a->cap - 1)], memory_order_acquire);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return WEFT__DEQUE_ABORT;
    return x;
}

/* Any thread, on a deque whose owner only ever pushes: takes up to half of
 * the items (at most `max`) with one CAS on top, oldest first, into out[].
 * Safe because nothing but thieves moves top and the owner never takes from
 * the bottom, so [top, top + k) cannot be taken by anyone else once the CAS
 * succeeds, and the owner cannot overwrite those slots before it (it sees
 * the old top and grows rather than wrap onto them). Returns the count, 0
 * if empty, -1 if it lost a race. */
static inline int64_t weft__deque_steal_batch(weft__deque *d, void **out, int64_t max)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    int64_t n = b - t;
    if (n <= 0) return 0;
    int64_t k = (n + 1) / 2;
    if (k > max) k = max;
    weft__darray *a = atomic_load_explicit(&d->arr, memory_order_acquire);
    for (int64_t i = 0; i < k; i++)
        out[i] = atomic_load_explicit(&a->buf[(t + i) & (a->cap - 1)], memory_order_acquire);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + k, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return -1;
    return k;
}

/* Any thread; a snapshot. */
static inline int64_t weft__deque_size(weft__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    return b > t ? b - t : 0;
}

#endif

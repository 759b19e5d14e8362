/* weft/queue.h : a multi-producer multi-consumer blocking queue -- Python's
 * queue.Queue, LifoQueue and PriorityQueue at C speed. Included by weft.h;
 * include <weft.h>, not this file.
 *
 * Items are opaque pointers (void *, NULL allowed): the queue stores and hands
 * back the pointer, never the bytes it points to. Who owns an item is the
 * program's business while it sits in the queue; the queue touches an item
 * only through the optional `free_item` callback, for the items that
 * shutdown(WEFT_QUEUE_DISCARD) throws away and those left at destroy.
 *
 * Order: FIFO (default), LIFO, or PRIORITY (lowest priority value first; equal
 * priorities come out in the order they were put, as PriorityQueue with
 * (priority, count, item) tuples). A FIFO queue is linearizable per producer:
 * the items of one producer come out in the order it put them.
 *
 * Capacity: 0 (the default) is unbounded, as Python's maxsize <= 0; a positive
 * capacity makes put wait while the queue holds that many items. A bounded FIFO allocates its 16-byte slots at create:
 * a capacity whose slots do not fit the address space (2^59 or more on
 * 64-bit) is WEFT_ENOMEM; LIFO and PRIORITY queues grow on demand.
 *
 * Timeouts are seconds (double): WEFT_FOREVER blocks without limit, 0 does not
 * block, negative and NaN are WEFT_EINVAL. A call that does not block and
 * finds the queue empty (get) or full (put) returns WEFT_EAGAIN (Python's
 * Empty / Full with block=False); one whose positive timeout passes returns
 * WEFT_ETIMEDOUT. Neither sets weft_last_error() (they are outcomes, and
 * polling loops should stay cheap); every other error does.
 *
 * Shutdown (Python 3.13's Queue.shutdown): after weft_queue_shutdown() every
 * put fails with WEFT_ECLOSED; with WEFT_QUEUE_DRAIN gets still succeed until
 * the queue is empty, then fail with WEFT_ECLOSED; with WEFT_QUEUE_DISCARD the
 * items are removed at once (counted as done for join) and every get fails.
 * Blocked callers wake with WEFT_ECLOSED. A put racing a DISCARD shutdown
 * either fails with WEFT_ECLOSED or its item is discarded with the others:
 * no item lands after the discard, so join and size stay right.
 *
 * Signals: no queue call is async-signal-safe (LIFO and PRIORITY queues take
 * a lock, an unbounded FIFO allocates as it grows, free_item may run):
 * never call one from a signal handler (docs/api.md, "Signal safety").
 * Threads: every call is safe from any thread, concurrently, except
 * weft_queue_destroy(). A queue is process-local. */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/queue.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_queue weft_queue;

/* The order items come out in. */
typedef enum weft_queue_kind {
    WEFT_QUEUE_FIFO = 0,     /* first in, first out (queue.Queue) */
    WEFT_QUEUE_LIFO = 1,     /* last in, first out (queue.LifoQueue) */
    WEFT_QUEUE_PRIORITY = 2, /* lowest priority first, ties in put order (PriorityQueue) */
} weft_queue_kind;

/* Frees one item the queue discards (see free_item below). */
typedef void (*weft_queue_free_fn)(void *item, void *arg);

/* Options of weft_queue_create(); the zero value (or NULL) is an unbounded
 * FIFO queue that never frees items. */
typedef struct weft_queue_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    weft_queue_kind kind; /* other values are WEFT_EINVAL */
    size_t capacity;      /* most items held at once; 0 = unbounded */
    /* Called (on the calling thread) for every item that
     * weft_queue_shutdown(WEFT_QUEUE_DISCARD) removes and every item still
     * queued at weft_queue_destroy(); NULL: such items are just dropped. A
     * FIFO put that lands while a DISCARD shutdown runs discards its item
     * (and any other that landed late) itself: free_item then runs on the
     * putting thread. */
    weft_queue_free_fn free_item;
    void *free_arg; /* passed to free_item */
} weft_queue_options;
/* weft_queue_options o = WEFT_QUEUE_OPTIONS_INIT; records this header's size */
#define WEFT_QUEUE_OPTIONS_INIT            \
    {                                      \
        .size = sizeof(weft_queue_options) \
    }

/* Modes of weft_queue_shutdown(). */
typedef enum weft_queue_shutdown_mode {
    WEFT_QUEUE_DRAIN = 0,   /* gets succeed until the queue is empty (immediate=False) */
    WEFT_QUEUE_DISCARD = 1, /* remove the items now; gets fail at once (immediate=True) */
} weft_queue_shutdown_mode;

/* weft_queue_create() :
 * Creates an empty queue as `opts` says (NULL: unbounded FIFO).
 * Ownership: the caller destroys `*out` with weft_queue_destroy().
 * Threads: any. @return 0, WEFT_EINVAL (NULL out, unknown kind),
 * WEFT_ENOMEM (also a bounded FIFO whose capacity cannot be
 * allocated, checked before any allocation); on error `*out` is NULL. */
WEFT_API int weft_queue_create(const weft_queue_options *opts, weft_queue **out);

/* weft_queue_destroy() :
 * Frees `q`, first passing every item still queued to free_item (if set).
 * NULL is a no-op. Later calls on `q` are undefined; a call on a destroyed
 * queue whose memory was not reused yet fails with WEFT_EINVAL.
 * Threads: no other call on `q` may be in progress or follow. A thread
 * blocked in `q` is detected: WEFT_EBUSY, nothing freed (shut the queue down
 * first, which wakes them, and let them return).
 * @return 0, WEFT_EBUSY, WEFT_EINVAL (not a live queue). */
WEFT_API int weft_queue_destroy(weft_queue *q);

/* weft_queue_put() :
 * Adds `item` (any pointer, NULL too), waiting at most `timeout` while a
 * bounded queue is full. On a PRIORITY queue the item gets priority 0.
 * Ownership: the queue holds the pointer until a get returns it.
 * Threads: any. @return 0, WEFT_EAGAIN (full, timeout 0), WEFT_ETIMEDOUT,
 * WEFT_ECLOSED (shut down, also while waiting), WEFT_ENOMEM (an unbounded
 * queue could not grow), WEFT_EINVAL (NULL or dead q, bad timeout). */
WEFT_API int weft_queue_put(weft_queue *q, void *item, double timeout);

/* weft_queue_put_prio() :
 * As weft_queue_put() on a PRIORITY queue, with `priority`: lower values
 * come out first, equal ones in put order.
 * @return as weft_queue_put(); WEFT_EINVAL also if `q` is not a PRIORITY queue. */
WEFT_API int weft_queue_put_prio(weft_queue *q, void *item, int64_t priority, double timeout);

/* weft_queue_get() :
 * Removes the next item (by the queue's order) into `*item`, waiting at most
 * `timeout` while the queue is empty.
 * Ownership: the item is the caller's again. Each item put is returned by
 * exactly one get (or discarded by shutdown, or left for destroy).
 * Threads: any. @return 0, WEFT_EAGAIN (empty, timeout 0), WEFT_ETIMEDOUT,
 * WEFT_ECLOSED (shut down: DRAIN and empty, or DISCARD), WEFT_EINVAL (NULL
 * item or q, dead q, bad timeout); on error `*item` is unchanged. */
WEFT_API int weft_queue_get(weft_queue *q, double timeout, void **item);

/* weft_queue_get_prio() :
 * As weft_queue_get() on a PRIORITY queue; also stores the item's priority in
 * `*priority` (may be NULL). @return as weft_queue_get(); WEFT_EINVAL also if
 * `q` is not a PRIORITY queue. */
WEFT_API int weft_queue_get_prio(weft_queue *q, double timeout, void **item, int64_t *priority);

/* weft_queue_put_many() :
 * Puts `items[0..n)` in order, waiting as weft_queue_put() does; `timeout`
 * bounds the whole call. Cheaper than n puts: sleeping getters are woken
 * once per batch. `*nput` (may be NULL) receives how many were put (all of
 * them when it returns 0; the first `*nput` otherwise).
 * Threads: any; items of concurrent producers may interleave.
 * @return as weft_queue_put(); WEFT_EINVAL also for NULL items with n > 0.
 * n == 0 returns 0 at once. */
WEFT_API int weft_queue_put_many(weft_queue *q, void *const *items, size_t n, double timeout,
                                 size_t *nput);

/* weft_queue_get_many() :
 * Waits at most `timeout` for one item, then takes up to `max` items that
 * are available without waiting, into `items[0..*ngot)` in the queue's order.
 * Threads: any. @return 0 (*ngot >= 1), or as weft_queue_get() (*ngot = 0);
 * WEFT_EINVAL also for max 0, NULL items or ngot. */
WEFT_API int weft_queue_get_many(weft_queue *q, double timeout, void **items, size_t max,
                                 size_t *ngot);

/* weft_queue_task_done() :
 * Marks `n` (>= 1) items fetched with get as processed (Queue.task_done).
 * When every item put so far is marked done, weft_queue_join() returns.
 * Threads: any. @return 0, WEFT_EOVERFLOW (more items marked done than were
 * put: nothing is marked; Python's ValueError), WEFT_EINVAL (n 0, bad q). */
WEFT_API int weft_queue_task_done(weft_queue *q, size_t n);

/* weft_queue_join() :
 * Waits at most `timeout` until every item put has been marked done by
 * weft_queue_task_done() (items discarded by shutdown count as done). Puts
 * that race with join may or may not be waited for.
 * Threads: any; not from the thread that must call task_done (it would wait
 * for itself until the timeout). @return 0, WEFT_ETIMEDOUT (WEFT_EAGAIN with
 * timeout 0), WEFT_EINVAL. */
WEFT_API int weft_queue_join(weft_queue *q, double timeout);

/* weft_queue_shutdown() :
 * Shuts `q` down as `mode` says (WEFT_QUEUE_DRAIN or WEFT_QUEUE_DISCARD) and
 * wakes every blocked caller. Idempotent; DISCARD after DRAIN discards the
 * items left; DRAIN after DISCARD changes nothing. A put that races with
 * DRAIN may still succeed; its item is then got. A put that races with
 * DISCARD either fails with WEFT_ECLOSED or its item is discarded too
 * (counted done): after every racing put has returned, size is 0 and join
 * waits only for the items that were got. Discarded items go to free_item
 * on the calling thread (for a FIFO item that landed during the discard, on
 * the putting thread).
 * Threads: any. @return 0, WEFT_EINVAL (bad q or mode). */
WEFT_API int weft_queue_shutdown(weft_queue *q, weft_queue_shutdown_mode mode);

/* weft_queue_size() :
 * @return the number of items queued (a snapshot, approximate while other
 * threads put and get), or 0 for a NULL or dead q (weft_last_error() then
 * says which). Any thread. */
WEFT_API size_t weft_queue_size(const weft_queue *q);

/* weft_queue_empty(), weft_queue_full() : snapshots, as size() == 0 and (for
 * a bounded queue) size() >= capacity; false for a NULL or dead q. */
WEFT_API bool weft_queue_empty(const weft_queue *q);
WEFT_API bool weft_queue_full(const weft_queue *q);

/* weft_queue_capacity() : the capacity (0: unbounded; also 0 for a NULL or
 * dead q). */
WEFT_API size_t weft_queue_capacity(const weft_queue *q);

/* weft_queue_unfinished() : items put and not yet marked done (a snapshot),
 * or 0 for a NULL or dead q. */
WEFT_API size_t weft_queue_unfinished(const weft_queue *q);

/* weft_queue_is_shutdown() : true once weft_queue_shutdown() was called;
 * false for a NULL or dead q. */
WEFT_API bool weft_queue_is_shutdown(const weft_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_QUEUE_H */

/* queue.c : weft_queue, a multi-producer multi-consumer blocking queue.
 *
 * FIFO. A FIFO queue is a chain of rings, each a bounded MPMC ring with a
 * sequence number per slot (Vyukov's design). A ring's `tail` and `head` are
 * 64-bit positions that only grow; position p lives in slot p % size, whose
 * `seq` says whose turn it is: seq == 2p -> free for the put of p; 2p+1 ->
 * holds the item of p; a get of p frees the slot for the next lap by storing
 * 2(p + size). (Counting in steps of two keeps "full" and "free" apart even
 * for a ring of one slot.) A put claims p with one compare-and-swap of `tail`,
 * writes the item and publishes it with a release store of `seq`; a get
 * mirrors it on `head`. The acquire load of `seq` on the other side orders
 * the item's bytes. Producers and consumers touch different cache lines
 * (tail, head) except for the slots themselves.
 *
 * A bounded queue is one ring of exactly `capacity` slots (index by modulo
 * when capacity is not a power of two) and never grows. An unbounded queue
 * starts with one ring of FIFO_FIRST slots; a put that finds its ring full
 * closes it (bit 63 of `tail`: no position can be claimed any more), links a
 * ring of twice the size as `next` (one CAS decides who links) and moves
 * the queue's `tail_ring` to it. Getters drain a ring to its final tail
 * before they follow `next`, so order across rings is kept. Rings are never
 * freed before destroy: a thread may still hold a pointer to an old one, and
 * the chain only grows to about twice the peak size (sizes double), which is
 * the price of a put and a get without any reference counting.
 *
 * A get that finds the slot of `head` claimed by a put that has not
 * published yet (head < tail) waits for that put (it is a few instructions
 * away; it yields if the producer was preempted) instead of reporting empty:
 * so the items of one producer always come out in order.
 *
 * LIFO and PRIORITY are an array stack and a binary heap (ties broken by a
 * put counter) under a three-state futex lock (sync_internal.h).
 *
 * Sleeping. Waiters count themselves in get_waiters / put_waiters /
 * join_waiters and sleep on the futex words nonempty / nonfull / joinseq.
 * The other side changes the queue, then reads the count and, only if it is
 * not zero, bumps the word and wakes: an uncontended put or get makes no
 * system call and writes no shared word besides its ring. The handshake is a
 * Dekker pair -- "publish, then read waiters" against "count myself, then
 * re-check the queue": either the waker sees the waiter or the waiter sees
 * the item. The waker's side needs a store-load barrier; when the kernel has
 * expedited membarrier (weft__heavy_barrier) the waiter pays for it with one
 * system call before sleeping and the waker's side is a compiler barrier;
 * otherwise both sides use seq_cst fences. Every waiter re-tries after any
 * wake-up, and one that leaves on a timeout un-counts itself and tries once
 * more, so a wake-up aimed at it can never strand an item. Callers spin
 * briefly (WEFT__SPIN pauses) before they sleep: a partner on another core
 * usually answers within that time, much cheaper than FUTEX_WAIT + WAKE.
 *
 * Counts for join. Items put are counted without a shared counter on the
 * put path: for FIFO the total is the tail ring's `base` (positions of the
 * rings before it) plus its tail; LIFO/PRIORITY count under their lock.
 * task_done adds to `done`; join waits until done >= puts.
 *
 * Shutdown stores `state` (seq_cst), then bumps every futex word and wakes
 * all sleepers unconditionally; a waiter reads the futex word before it
 * reads `state`, so it cannot sleep through the shutdown.
 *
 * A put racing shutdown(DISCARD) must not land after the discard (its item
 * would count as unfinished for ever, and gets are refused): LIFO/PRIORITY
 * re-check the state under their lock; a FIFO put re-checks it after
 * publishing and, if it sees DISCARD, discards what landed itself
 * (put_landed). So every put either fails with WEFT_ECLOSED or its item is
 * got or discarded. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync_internal.h"

#define QUEUE_MAGIC 0x55517766u /* "fwQU" */
#define QUEUE_DEAD 0x44517766u  /* destroyed */
#define FIFO_FIRST 1024u        /* slots of an unbounded queue's first ring */
#define CLOSED_BIT (UINT64_C(1) << 63)

enum {
    ST_OPEN = 0,
    ST_DRAIN = 1,
    ST_DISCARD = 2
};

/* Internal result of a get attempt: not empty, but the next item is still
 * being put. Blocking callers wait for it; non-blocking ones see EAGAIN. */
#define Q_BUSY 1

typedef struct slot {
    _Atomic uint64_t seq;
    void *item;
} slot;

typedef struct ring {
    uint64_t size;
    uint64_t mask; /* size - 1 when size is a power of two, else 0 */
    uint64_t base; /* positions of every ring before this one */
    _Atomic(struct ring *) next;
    _Atomic uint64_t tail WEFT__ALIGNED; /* bit 63: closed */
    _Atomic uint64_t head WEFT__ALIGNED;
    slot slots[] WEFT__ALIGNED;
} ring;

typedef struct pentry {
    int64_t prio;
    uint64_t seq;
    void *item;
} pentry;

struct weft_queue {
    /* read-mostly: every call reads it; written only by sleepers and shutdown */
    uint32_t magic;
    int kind;
    size_t capacity;
    bool asym; /* membarrier available: the waker's side needs no fence */
    weft_queue_free_fn free_item;
    void *free_arg;
    _Atomic uint32_t state;
    _Atomic uint32_t get_waiters;
    _Atomic uint32_t put_waiters;
    _Atomic uint32_t join_waiters;
    uint32_t max_spinners; /* CPUs - 1, at least 1 */
    ring *first;           /* the chain, for destroy */
    /* FIFO producers */
    _Atomic(ring *) tail_ring WEFT__ALIGNED;
    /* FIFO consumers */
    _Atomic(ring *) head_ring WEFT__ALIGNED;
    /* futex words: written only when someone sleeps */
    _Atomic uint32_t nonempty WEFT__ALIGNED;
    _Atomic uint32_t nonfull;
    _Atomic uint32_t joinseq;
    _Atomic uint32_t get_pending; /* a getter was woken and has not run yet */
    _Atomic uint32_t put_pending;
    /* task_done; threads spinning in block() */
    _Atomic uint64_t done WEFT__ALIGNED;
    _Atomic uint32_t spinners;
    /* LIFO / PRIORITY, under `lock` */
    uint32_t lock WEFT__ALIGNED;
    _Atomic uint64_t puts; /* written under the lock, read anywhere */
    _Atomic uint64_t gets;
    uint64_t pseq; /* priority ties */
    size_t n, alloc;
    void **stack;
    pentry *heap;
};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire
#define REL memory_order_release
#define SC memory_order_seq_cst

static inline bool live(const weft_queue *q)
{
    return q && __atomic_load_n(&q->magic, __ATOMIC_RELAXED) == QUEUE_MAGIC;
}

static __attribute__((noinline)) int bad_queue(const weft_queue *q, const char *fn)
{
    if (!q) return weft__err(WEFT_EINVAL, "%s: queue is NULL", fn);
    return weft__err(WEFT_EINVAL,
                     "%s: not a live queue (destroyed, or not made by "
                     "weft_queue_create)",
                     fn);
}

static __attribute__((noinline)) int bad_timeout(double timeout, const char *fn)
{
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    return rc ? rc : weft__err(WEFT_EINVAL, "%s: bad timeout", fn);
}

/* The waker's half of the Dekker pair: orders the change just made before
 * the read of a waiter count. */
static inline void waker_fence(const weft_queue *q)
{
    if (q->asym)
        atomic_signal_fence(SC);
    else
        atomic_thread_fence(SC);
}

/* The waiter's half: after counting itself, before re-checking the queue. */
static inline void waiter_fence(const weft_queue *q)
{
    if (q->asym)
        weft__heavy_barrier();
    else
        atomic_thread_fence(SC);
}

static inline void wake(_Atomic uint32_t *word, int n)
{
    atomic_fetch_add_explicit(word, 1, SC);
    weft__futex_wake(word, n);
}

/* Wakes one sleeper unless a wake-up is already on its way (`pending`):
 * when producers outrun sleeping consumers, one system call per item would
 * cost more than the items. The thread that wakes clears `pending` and, if
 * it leaves items and sleepers behind, wakes the next one (chain_*). */
static __attribute__((noinline)) void wake_pending(_Atomic uint32_t *word,
                                                   _Atomic uint32_t *pending, size_t n)
{
    if (n == 1) {
        if (atomic_exchange_explicit(pending, 1, SC) == 1) return;
        wake(word, 1);
    } else {
        atomic_store_explicit(pending, 1, SC);
        wake(word, n > INT_MAX ? INT_MAX : (int)n);
    }
}

static inline void notify_putters(weft_queue *q, size_t n)
{
    if (q->capacity == 0) return; /* an unbounded put never waits */
    waker_fence(q);
    uint32_t w = atomic_load_explicit(&q->put_waiters, RLX);
    if (WEFT__UNLIKELY(w != 0)) wake_pending(&q->nonfull, &q->put_pending, n);
}

static void discard_counted(weft_queue *q);

/* After n items were put. A FIFO put cannot check the state under a lock,
 * so it checks after publishing: shutdown(DISCARD) stores the state, then
 * (after the waiter-side barrier) drains the rings; the put publishes, then
 * (after the waker-side fence) reads the state. One of the two sees the
 * other: either the shutdown's discard finds the item, or the put sees the
 * shutdown and discards what landed late itself (passing it to free_item
 * and counting it done, as the shutdown would have). Otherwise wakes up to
 * n sleeping getters. */
static inline void put_landed(weft_queue *q, size_t n)
{
    waker_fence(q);
    if (WEFT__UNLIKELY(q->kind == WEFT_QUEUE_FIFO &&
                       atomic_load_explicit(&q->state, RLX) == ST_DISCARD)) {
        discard_counted(q);
        return; /* getters fail now; the shutdown woke them */
    }
    uint32_t w = atomic_load_explicit(&q->get_waiters, RLX);
    if (WEFT__UNLIKELY(w != 0)) wake_pending(&q->nonempty, &q->get_pending, n);
}

/* ------------------------------------------------------------------------
 * FIFO rings
 * ------------------------------------------------------------------------ */

/* Slots a ring may have: its bytes, rounded up to a cache line, stay within
 * PTRDIFF_MAX (no allocator hands out more) and the size computation below
 * cannot wrap. */
#define RING_MAX_SLOTS ((uint64_t)((PTRDIFF_MAX - sizeof(ring) - WEFT__CACHELINE) / sizeof(slot)))

static ring *ring_new(uint64_t size, uint64_t base)
{
    if (size > RING_MAX_SLOTS) return NULL;
    size_t bytes = sizeof(ring) + (size_t)size * sizeof(slot);
    ring *r = aligned_alloc(WEFT__CACHELINE, (bytes + WEFT__CACHELINE - 1) & ~(size_t)63);
    if (!r) return NULL;
    r->size = size;
    r->mask = (size & (size - 1)) == 0 ? size - 1 : 0;
    r->base = base;
    atomic_init(&r->next, NULL);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    for (uint64_t i = 0; i < size; i++) {
        atomic_init(&r->slots[i].seq, 2 * i);
        r->slots[i].item = NULL;
    }
    return r;
}

static inline slot *ring_slot(ring *r, uint64_t pos)
{
    return &r->slots[r->mask ? (pos & r->mask) : (pos % r->size)];
}

enum {
    R_OK,
    R_FULL,
    R_CLOSED,
    R_EMPTY,
    R_BUSY
};

/* One put attempt: R_OK, R_FULL, or R_CLOSED. */
static inline int ring_put(ring *r, void *item)
{
    uint64_t pos = atomic_load_explicit(&r->tail, RLX);
    for (;;) {
        if (WEFT__UNLIKELY(pos & CLOSED_BIT)) return R_CLOSED;
        slot *s = ring_slot(r, pos);
        uint64_t seq = atomic_load_explicit(&s->seq, ACQ);
        int64_t d = (int64_t)(seq - 2 * pos);
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, RLX, RLX)) {
                s->item = item;
                atomic_store_explicit(&s->seq, 2 * pos + 1, REL);
                return R_OK;
            }
        } else if (d < 0) {
            /* The slot still holds the item of the previous lap. */
            uint64_t t = atomic_load_explicit(&r->tail, RLX);
            if (t == pos) return R_FULL;
            pos = t;
        } else {
            pos = atomic_load_explicit(&r->tail, RLX);
        }
    }
}

/* One get attempt: R_OK, R_EMPTY (head == tail), R_BUSY (the put of head
 * has claimed its slot but not published yet). */
static inline int ring_get(ring *r, void **item)
{
    uint64_t pos = atomic_load_explicit(&r->head, RLX);
    for (;;) {
        slot *s = ring_slot(r, pos);
        uint64_t seq = atomic_load_explicit(&s->seq, ACQ);
        int64_t d = (int64_t)(seq - (2 * pos + 1));
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, RLX, RLX)) {
                *item = s->item;
                atomic_store_explicit(&s->seq, 2 * (pos + r->size), REL);
                return R_OK;
            }
        } else if (d < 0) {
            uint64_t h = atomic_load_explicit(&r->head, RLX);
            if (h != pos) {
                pos = h;
                continue;
            }
            uint64_t t = atomic_load_explicit(&r->tail, ACQ) & ~CLOSED_BIT;
            return t > pos ? R_BUSY : R_EMPTY;
        } else {
            pos = atomic_load_explicit(&r->head, RLX);
        }
    }
}

/* Closes the full ring r (if not yet) and makes sure q's tail ring is past
 * it. Returns 0 or WEFT_ENOMEM. */
static __attribute__((noinline)) int fifo_grow(weft_queue *q, ring *r)
{
    uint64_t t = atomic_fetch_or_explicit(&r->tail, CLOSED_BIT, SC) & ~CLOSED_BIT;
    ring *n = atomic_load_explicit(&r->next, ACQ);
    if (!n) {
        uint64_t size = r->size <= (UINT64_C(1) << 40) ? r->size * 2 : r->size;
        ring *fresh = ring_new(size, r->base + t);
        if (!fresh)
            return weft__err(WEFT_ENOMEM,
                             "weft_queue_put: cannot grow the queue to %llu "
                             "slots",
                             (unsigned long long)size);
        ring *expect = NULL;
        if (atomic_compare_exchange_strong_explicit(&r->next, &expect, fresh, memory_order_acq_rel,
                                                    ACQ)) {
            n = fresh;
        } else {
            free(fresh);
            n = expect;
        }
    }
    ring *cur = r;
    atomic_compare_exchange_strong_explicit(&q->tail_ring, &cur, n, REL, RLX);
    return 0;
}

/* A put that never waits: 0, WEFT_EAGAIN (full), WEFT_ENOMEM. */
static inline int fifo_try_put(weft_queue *q, void *item)
{
    for (;;) {
        ring *r = atomic_load_explicit(&q->tail_ring, ACQ);
        int rc = ring_put(r, item);
        if (WEFT__LIKELY(rc == R_OK)) return 0;
        if (rc == R_FULL && q->capacity > 0) return WEFT_EAGAIN;
        int g = fifo_grow(q, r);
        if (g) return g;
    }
}

/* A get that never waits: 0, WEFT_EAGAIN (empty) or Q_BUSY (the put of
 * the head position has claimed its slot and not published yet: the queue
 * is not empty, but its next item is not ready). */
static inline int fifo_try_get(weft_queue *q, void **item)
{
    unsigned spins = 0;
    for (;;) {
        ring *r = atomic_load_explicit(&q->head_ring, ACQ);
        int rc = ring_get(r, item);
        if (WEFT__LIKELY(rc == R_OK)) return 0;
        if (rc == R_BUSY) {
            /* Usually a few instructions away, unless that producer was
             * preempted: then the caller sleeps until its put notifies. */
            if (++spins > 64) return Q_BUSY;
            weft__cpu_relax();
            continue;
        }
        /* Empty: move on if this ring is closed and drained. */
        if (!(atomic_load_explicit(&r->tail, ACQ) & CLOSED_BIT)) return WEFT_EAGAIN;
        ring *n = atomic_load_explicit(&r->next, ACQ);
        if (!n) return WEFT_EAGAIN; /* the closer has not linked it yet: nothing in it */
        ring *cur = r;
        atomic_compare_exchange_strong_explicit(&q->head_ring, &cur, n, REL, RLX);
    }
}

/* A producer that found a bounded ring full waits (while it spins) until
 * the consumers have freed a run of slots, rather than taking each slot the
 * moment it frees: then producer and consumers work on cache lines apart
 * instead of bouncing the same line for every item. */
static inline bool fifo_room(weft_queue *q)
{
    ring *r = atomic_load_explicit(&q->tail_ring, ACQ);
    uint64_t k = r->size / 4 < 32 ? r->size / 4 : 32;
    if (k < 2) return true;
    uint64_t pos = (atomic_load_explicit(&r->tail, RLX) & ~CLOSED_BIT) + k - 1;
    return atomic_load_explicit(&ring_slot(r, pos)->seq, RLX) == 2 * pos;
}

/* Positions claimed so far by puts (FIFO). */
static uint64_t fifo_puts(const weft_queue *q)
{
    ring *r = atomic_load_explicit(&((weft_queue *)q)->tail_ring, ACQ);
    for (;;) {
        uint64_t t = atomic_load_explicit(&r->tail, ACQ);
        if (t & CLOSED_BIT) {
            ring *n = atomic_load_explicit(&r->next, ACQ);
            if (n) {
                r = n;
                continue;
            }
        }
        return r->base + (t & ~CLOSED_BIT);
    }
}

static uint64_t fifo_gets(const weft_queue *q)
{
    ring *r = atomic_load_explicit(&((weft_queue *)q)->head_ring, ACQ);
    return r->base + atomic_load_explicit(&r->head, ACQ);
}

/* ------------------------------------------------------------------------
 * LIFO and PRIORITY (under q->lock)
 * ------------------------------------------------------------------------ */

static inline void qlock(weft_queue *q)
{
    weft__lockword_acquire(&q->lock, false);
}

static inline void qunlock(weft_queue *q)
{
    weft__lockword_release(&q->lock, false);
}

static inline bool pless(const pentry *a, const pentry *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void heap_push(weft_queue *q, pentry e)
{
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pless(&e, &q->heap[p])) break;
        q->heap[i] = q->heap[p];
        i = p;
    }
    q->heap[i] = e;
}

static pentry heap_pop(weft_queue *q)
{
    pentry top = q->heap[0];
    pentry last = q->heap[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pless(&q->heap[c + 1], &q->heap[c])) c++;
        if (!pless(&q->heap[c], &last)) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (n > 0) q->heap[i] = last;
    return top;
}

/* Makes room for one more item (lock held): 0 or WEFT_ENOMEM. */
static int locked_reserve(weft_queue *q)
{
    if (q->n < q->alloc) return 0;
    size_t elem = q->kind == WEFT_QUEUE_LIFO ? sizeof(void *) : sizeof(pentry);
    size_t most = (size_t)PTRDIFF_MAX / elem;
    if (q->alloc >= most) return WEFT_ENOMEM;
    size_t want = q->alloc ? (q->alloc > most / 2 ? most : q->alloc * 2) : 64;
    if (q->capacity > 0 && want > (size_t)q->capacity) want = (size_t)q->capacity;
    if (q->kind == WEFT_QUEUE_LIFO) {
        void **p = realloc(q->stack, want * sizeof *p);
        if (!p) return WEFT_ENOMEM;
        q->stack = p;
    } else {
        pentry *p = realloc(q->heap, want * sizeof *p);
        if (!p) return WEFT_ENOMEM;
        q->heap = p;
    }
    q->alloc = want;
    return 0;
}

static int locked_try_put(weft_queue *q, void *item, int64_t prio)
{
    qlock(q);
    /* Checked under the lock: shutdown stores the state before it takes the
     * lock to discard, so a put either lands before the discard or sees the
     * shutdown here and fails (never lands after the discard). */
    if (WEFT__UNLIKELY(atomic_load_explicit(&q->state, RLX) != ST_OPEN)) {
        qunlock(q);
        return WEFT_ECLOSED;
    }
    if (q->capacity > 0 && q->n >= (size_t)q->capacity) {
        qunlock(q);
        return WEFT_EAGAIN;
    }
    if (locked_reserve(q)) {
        qunlock(q);
        return weft__err(WEFT_ENOMEM, "weft_queue_put: cannot grow the queue past %zu items", q->n);
    }
    if (q->kind == WEFT_QUEUE_LIFO)
        q->stack[q->n++] = item;
    else
        heap_push(q, (pentry){prio, q->pseq++, item});
    atomic_store_explicit(&q->puts, atomic_load_explicit(&q->puts, RLX) + 1, REL);
    qunlock(q);
    return 0;
}

static int locked_try_get(weft_queue *q, void **item, int64_t *prio)
{
    qlock(q);
    if (q->n == 0) {
        qunlock(q);
        return WEFT_EAGAIN;
    }
    if (q->kind == WEFT_QUEUE_LIFO) {
        *item = q->stack[--q->n];
        if (prio) *prio = 0;
    } else {
        pentry e = heap_pop(q);
        *item = e.item;
        if (prio) *prio = e.prio;
    }
    atomic_store_explicit(&q->gets, atomic_load_explicit(&q->gets, RLX) + 1, REL);
    qunlock(q);
    return 0;
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

static inline int try_put(weft_queue *q, void *item, int64_t prio)
{
    if (WEFT__LIKELY(q->kind == WEFT_QUEUE_FIFO)) return fifo_try_put(q, item);
    return locked_try_put(q, item, prio);
}

static inline int try_get(weft_queue *q, void **item, int64_t *prio)
{
    if (WEFT__LIKELY(q->kind == WEFT_QUEUE_FIFO)) {
        if (prio) *prio = 0;
        return fifo_try_get(q, item);
    }
    return locked_try_get(q, item, prio);
}

static uint64_t total_puts(const weft_queue *q)
{
    if (q->kind == WEFT_QUEUE_FIFO) return fifo_puts(q);
    return atomic_load_explicit(&((weft_queue *)q)->puts, ACQ);
}

static uint64_t total_gets(const weft_queue *q)
{
    if (q->kind == WEFT_QUEUE_FIFO) return fifo_gets(q);
    return atomic_load_explicit(&((weft_queue *)q)->gets, ACQ);
}

/* ------------------------------------------------------------------------
 * Create, destroy
 * ------------------------------------------------------------------------ */

int weft_queue_create(const weft_queue_options *opts, weft_queue **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_queue_create: out is NULL");
    *out = NULL;
    weft_queue_options o;
    int orc = WEFT__OPTS_READ(o, opts, "weft_queue_create: weft_queue_options");
    if (orc) return orc;
    if (o.kind != WEFT_QUEUE_FIFO && o.kind != WEFT_QUEUE_LIFO && o.kind != WEFT_QUEUE_PRIORITY)
        return weft__err(WEFT_EINVAL,
                         "weft_queue_create: kind %d is not WEFT_QUEUE_FIFO, _LIFO or _PRIORITY",
                         (int)o.kind);
    if (o.kind == WEFT_QUEUE_FIFO && (uint64_t)o.capacity > RING_MAX_SLOTS)
        return weft__err(WEFT_ENOMEM,
                         "weft_queue_create: capacity %zu is too large: a bounded FIFO allocates "
                         "its %zu-byte slots at once, and at most %llu fit the address space",
                         o.capacity, sizeof(slot), (unsigned long long)RING_MAX_SLOTS);
    weft_queue *q = aligned_alloc(WEFT__CACHELINE, sizeof *q);
    if (!q) return weft__err(WEFT_ENOMEM, "weft_queue_create: out of memory");
    memset(q, 0, sizeof *q);
    q->kind = o.kind;
    q->capacity = o.capacity;
    q->free_item = o.free_item;
    q->free_arg = o.free_arg;
    q->asym = weft__heavy_barrier_init();
    int ncpu = weft__cpu_count();
    q->max_spinners = ncpu > 2 ? (uint32_t)ncpu - 1 : 1;
    atomic_init(&q->state, ST_OPEN);
    if (q->kind == WEFT_QUEUE_FIFO) {
        ring *r = ring_new(o.capacity > 0 ? (uint64_t)o.capacity : FIFO_FIRST, 0);
        if (!r) {
            free(q);
            return weft__err(WEFT_ENOMEM,
                             "weft_queue_create: cannot allocate %zu slots (capacity %zu)",
                             o.capacity > 0 ? o.capacity : (size_t)FIFO_FIRST, o.capacity);
        }
        q->first = r;
        atomic_init(&q->tail_ring, r);
        atomic_init(&q->head_ring, r);
    }
    __atomic_store_n(&q->magic, QUEUE_MAGIC, __ATOMIC_RELEASE);
    *out = q;
    return 0;
}

/* Removes every item, passing each to free_item; returns how many. */
static uint64_t discard_all(weft_queue *q)
{
    uint64_t n = 0;
    if (q->kind == WEFT_QUEUE_FIFO) {
        void *item;
        for (;;) {
            int rc = fifo_try_get(q, &item);
            if (rc == Q_BUSY) {
                weft__yield();
                continue;
            }
            if (rc) break;
            if (q->free_item) q->free_item(item, q->free_arg);
            n++;
        }
        return n;
    }
    qlock(q);
    void **stack = q->stack;
    pentry *heap = q->heap;
    size_t cnt = q->n;
    q->stack = NULL;
    q->heap = NULL;
    q->n = q->alloc = 0;
    atomic_store_explicit(&q->gets, atomic_load_explicit(&q->gets, RLX) + cnt, REL);
    qunlock(q);
    for (size_t i = 0; i < cnt; i++) {
        void *item = stack ? stack[cnt - 1 - i] : heap[i].item;
        if (q->free_item) q->free_item(item, q->free_arg);
    }
    free(stack);
    free(heap);
    return cnt;
}

/* Discards every item (shutdown DISCARD, or a FIFO put that landed after
 * it: see put_landed) and counts them done, waking joiners. */
static void discard_counted(weft_queue *q)
{
    uint64_t n = discard_all(q);
    if (n == 0) return;
    atomic_fetch_add_explicit(&q->done, n, SC);
    waker_fence(q);
    if (atomic_load_explicit(&q->join_waiters, RLX) != 0) wake(&q->joinseq, INT_MAX);
}

int weft_queue_destroy(weft_queue *q)
{
    if (!q) return 0;
    if (!live(q)) return bad_queue(q, "weft_queue_destroy");
    uint32_t w = atomic_load_explicit(&q->get_waiters, SC) +
                 atomic_load_explicit(&q->put_waiters, SC) +
                 atomic_load_explicit(&q->join_waiters, SC);
    if (w)
        return weft__err(WEFT_EBUSY,
                         "weft_queue_destroy: %u threads are blocked in the queue (shut it down "
                         "and let them return first)",
                         w);
    discard_all(q);
    ring *r = q->first;
    while (r) {
        ring *n = atomic_load_explicit(&r->next, RLX);
        free(r);
        r = n;
    }
    __atomic_store_n(&q->magic, QUEUE_DEAD, __ATOMIC_RELAXED);
    free(q);
    return 0;
}

/* ------------------------------------------------------------------------
 * Blocking
 * ------------------------------------------------------------------------ */

/* Sleeps on `word` (counted in `waiters`) until `attempt` succeeds, the
 * queue is shut down (`closed` says when that ends the wait) or the
 * deadline passes. `attempt` returns 0 (done), WEFT_EAGAIN (retry) or an
 * error. */
typedef int (*attempt_fn)(weft_queue *q, void *ctx);
typedef bool (*closed_fn)(weft_queue *q, uint32_t state);

static int block(weft_queue *q, _Atomic uint32_t *word, _Atomic uint32_t *waiters,
                 _Atomic uint32_t *pending, uint64_t deadline, attempt_fn attempt, closed_fn closed,
                 void *ctx)
{
    bool hyst = word == &q->nonfull && q->kind == WEFT_QUEUE_FIFO;
    /* Spin only while fewer threads spin than there are other CPUs: with
     * more threads than cores, spinning steals the time of the thread that
     * would make progress. */
    if (atomic_fetch_add_explicit(&q->spinners, 1, RLX) < q->max_spinners) {
        for (int i = 0; i < WEFT__SPIN; i++) {
            weft__cpu_relax();
            if (hyst && i < WEFT__SPIN / 2 && !fifo_room(q)) continue;
            int rc = attempt(q, ctx);
            if (rc == Q_BUSY) continue;
            if (rc != WEFT_EAGAIN) {
                atomic_fetch_sub_explicit(&q->spinners, 1, RLX);
                return rc;
            }
            if (closed(q, atomic_load_explicit(&q->state, ACQ))) {
                atomic_fetch_sub_explicit(&q->spinners, 1, RLX);
                return WEFT_ECLOSED;
            }
        }
    }
    atomic_fetch_sub_explicit(&q->spinners, 1, RLX);
    for (;;) {
        atomic_fetch_add_explicit(waiters, 1, SC);
        waiter_fence(q);
        uint32_t seen = atomic_load_explicit(word, SC);
        /* After reading the word: a waker that sets `pending` from now on
         * also changes the word, so this thread cannot sleep through it. */
        if (pending) atomic_exchange_explicit(pending, 0, SC);
        int rc = attempt(q, ctx);
        if (rc == WEFT_EAGAIN || rc == Q_BUSY) {
            if (rc == WEFT_EAGAIN && closed(q, atomic_load_explicit(&q->state, SC))) {
                rc = WEFT_ECLOSED;
            } else {
                int64_t rem = weft__remaining(deadline);
                if (rem == 0) {
                    rc = WEFT_ETIMEDOUT;
                } else {
                    weft__futex_wait(word, seen, rem);
                }
            }
        }
        atomic_fetch_sub_explicit(waiters, 1, SC);
        if (rc == WEFT_ETIMEDOUT || rc == WEFT_ECLOSED) {
            /* A wake-up may have been meant for us: take what it announced
             * rather than leave it to a sleeper nobody wakes. */
            waiter_fence(q);
            int again = attempt(q, ctx);
            return again == WEFT_EAGAIN || again == Q_BUSY ? rc : again;
        }
        if (rc != WEFT_EAGAIN && rc != Q_BUSY) return rc;
    }
}

/* After a wait that ended with an item: pass the wake-up on if items and
 * sleepers are left (see wake_pending). */
static void chain_getters(weft_queue *q)
{
    waker_fence(q);
    if (atomic_load_explicit(&q->get_waiters, RLX) == 0) return;
    uint64_t g = total_gets(q); /* gets first: then puts >= gets */
    uint64_t p = total_puts(q);
    if (p > g) wake_pending(&q->nonempty, &q->get_pending, 1);
}

static void chain_putters(weft_queue *q)
{
    waker_fence(q);
    if (atomic_load_explicit(&q->put_waiters, RLX) == 0) return;
    uint64_t p = total_puts(q); /* puts first: the size can only be underestimated */
    uint64_t g = total_gets(q);
    if (g >= p || p - g < (uint64_t)q->capacity) wake_pending(&q->nonfull, &q->put_pending, 1);
}

struct put_ctx {
    void *item;
    int64_t prio;
};

static int attempt_put(weft_queue *q, void *ctx)
{
    struct put_ctx *c = ctx;
    if (atomic_load_explicit(&q->state, ACQ) != ST_OPEN) return WEFT_ECLOSED;
    return try_put(q, c->item, c->prio);
}

static bool put_closed(weft_queue *q, uint32_t state)
{
    (void)q;
    return state != ST_OPEN;
}

struct get_ctx {
    void **item;
    int64_t *prio;
};

static int attempt_get(weft_queue *q, void *ctx)
{
    struct get_ctx *c = ctx;
    if (atomic_load_explicit(&q->state, ACQ) == ST_DISCARD) return WEFT_ECLOSED;
    return try_get(q, c->item, c->prio);
}

static bool get_closed(weft_queue *q, uint32_t state)
{
    (void)q;
    return state != ST_OPEN; /* checked after an attempt found the queue empty */
}

static __attribute__((noinline)) int put_slow(weft_queue *q, void *item, int64_t prio,
                                              double timeout, int rc, const char *fn)
{
    if (rc != WEFT_EAGAIN) return rc;
    int64_t ns;
    if (weft__timeout_ns(timeout, &ns, fn)) return WEFT_EINVAL;
    if (ns == 0) return WEFT_EAGAIN;
    struct put_ctx c = {item, prio};
    rc = block(q, &q->nonfull, &q->put_waiters, &q->put_pending, weft__deadline(ns), attempt_put,
               put_closed, &c);
    if (rc == 0) {
        put_landed(q, 1);
        chain_putters(q);
    }
    return rc;
}

static inline int put_common(weft_queue *q, void *item, int64_t prio, double timeout,
                             const char *fn)
{
    if (WEFT__UNLIKELY(!live(q))) return bad_queue(q, fn);
    if (WEFT__UNLIKELY(!(timeout >= 0))) return bad_timeout(timeout, fn);
    if (WEFT__UNLIKELY(atomic_load_explicit(&q->state, ACQ) != ST_OPEN))
        return weft__err(WEFT_ECLOSED, "%s: the queue is shut down", fn);
    int rc = try_put(q, item, prio);
    if (WEFT__LIKELY(rc == 0)) {
        put_landed(q, 1);
        return 0;
    }
    rc = put_slow(q, item, prio, timeout, rc, fn);
    if (rc == WEFT_ECLOSED) return weft__err(WEFT_ECLOSED, "%s: the queue is shut down", fn);
    return rc;
}

int weft_queue_put(weft_queue *q, void *item, double timeout)
{
    return put_common(q, item, 0, timeout, "weft_queue_put");
}

int weft_queue_put_prio(weft_queue *q, void *item, int64_t priority, double timeout)
{
    if (live(q) && q->kind != WEFT_QUEUE_PRIORITY)
        return weft__err(WEFT_EINVAL, "weft_queue_put_prio: the queue is not a PRIORITY queue");
    return put_common(q, item, priority, timeout, "weft_queue_put_prio");
}

static __attribute__((noinline)) int get_slow(weft_queue *q, void **item, int64_t *prio,
                                              double timeout, int rc, const char *fn)
{
    if (rc != WEFT_EAGAIN && rc != Q_BUSY) return rc;
    if (rc == WEFT_EAGAIN && atomic_load_explicit(&q->state, ACQ) != ST_OPEN) return WEFT_ECLOSED;
    int64_t ns;
    if (weft__timeout_ns(timeout, &ns, fn)) return WEFT_EINVAL;
    if (ns == 0) return WEFT_EAGAIN;
    struct get_ctx c = {item, prio};
    rc = block(q, &q->nonempty, &q->get_waiters, &q->get_pending, weft__deadline(ns), attempt_get,
               get_closed, &c);
    if (rc == 0) {
        notify_putters(q, 1);
        chain_getters(q);
    }
    return rc;
}

static inline int get_common(weft_queue *q, void **item, int64_t *prio, double timeout,
                             const char *fn)
{
    if (WEFT__UNLIKELY(!live(q))) return bad_queue(q, fn);
    if (WEFT__UNLIKELY(!item)) return weft__err(WEFT_EINVAL, "%s: item is NULL", fn);
    if (WEFT__UNLIKELY(!(timeout >= 0))) return bad_timeout(timeout, fn);
    int rc;
    if (WEFT__UNLIKELY(atomic_load_explicit(&q->state, ACQ) == ST_DISCARD))
        rc = WEFT_ECLOSED;
    else
        rc = try_get(q, item, prio);
    if (WEFT__LIKELY(rc == 0)) {
        notify_putters(q, 1);
        return 0;
    }
    rc = get_slow(q, item, prio, timeout, rc, fn);
    if (rc == WEFT_ECLOSED) return weft__err(WEFT_ECLOSED, "%s: the queue is shut down", fn);
    return rc;
}

int weft_queue_get(weft_queue *q, double timeout, void **item)
{
    return get_common(q, item, NULL, timeout, "weft_queue_get");
}

int weft_queue_get_prio(weft_queue *q, double timeout, void **item, int64_t *priority)
{
    if (live(q) && q->kind != WEFT_QUEUE_PRIORITY)
        return weft__err(WEFT_EINVAL, "weft_queue_get_prio: the queue is not a PRIORITY queue");
    int64_t p;
    int rc = get_common(q, item, &p, timeout, "weft_queue_get_prio");
    if (rc == 0 && priority) *priority = p;
    return rc;
}

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

int weft_queue_put_many(weft_queue *q, void *const *items, size_t n, double timeout, size_t *nput)
{
    static const char fn[] = "weft_queue_put_many";
    if (nput) *nput = 0;
    if (!live(q)) return bad_queue(q, fn);
    if (n > 0 && !items) return weft__err(WEFT_EINVAL, "%s: items is NULL", fn);
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    if (rc) return rc;
    if (atomic_load_explicit(&q->state, ACQ) != ST_OPEN)
        return weft__err(WEFT_ECLOSED, "%s: the queue is shut down", fn);
    uint64_t deadline = weft__deadline(ns);
    size_t i = 0, pending = 0;
    rc = 0;
    while (i < n) {
        if (WEFT__UNLIKELY(atomic_load_explicit(&q->state, RLX) != ST_OPEN)) {
            rc = WEFT_ECLOSED;
            break;
        }
        rc = try_put(q, items[i], 0);
        if (rc == 0) {
            i++;
            pending++;
            continue;
        }
        if (rc != WEFT_EAGAIN) break;
        /* Full: let sleeping getters at what is there before waiting. */
        if (pending) put_landed(q, pending);
        pending = 0;
        if (ns == 0) break;
        struct put_ctx c = {items[i], 0};
        rc = block(q, &q->nonfull, &q->put_waiters, &q->put_pending, deadline, attempt_put,
                   put_closed, &c);
        if (rc == 0) chain_putters(q);
        if (rc) break;
        i++;
        pending++;
    }
    if (pending) put_landed(q, pending);
    if (nput) *nput = i;
    if (rc == WEFT_ECLOSED) return weft__err(WEFT_ECLOSED, "%s: the queue is shut down", fn);
    return i == n ? 0 : rc;
}

int weft_queue_get_many(weft_queue *q, double timeout, void **items, size_t max, size_t *ngot)
{
    static const char fn[] = "weft_queue_get_many";
    if (ngot) *ngot = 0;
    if (!live(q)) return bad_queue(q, fn);
    if (!items || !ngot) return weft__err(WEFT_EINVAL, "%s: items or ngot is NULL", fn);
    if (max < 1) return weft__err(WEFT_EINVAL, "%s: max is 0, must be >= 1", fn);
    int rc = get_common(q, &items[0], NULL, timeout, fn);
    if (rc) return rc;
    size_t got = 1;
    while (got < max) {
        if (atomic_load_explicit(&q->state, ACQ) == ST_DISCARD) break;
        if (try_get(q, &items[got], NULL) != 0) break; /* empty or busy */
        got++;
    }
    if (got > 1) notify_putters(q, got - 1);
    *ngot = got;
    return 0;
}

/* ------------------------------------------------------------------------
 * task_done, join
 * ------------------------------------------------------------------------ */

int weft_queue_task_done(weft_queue *q, size_t n)
{
    if (!live(q)) return bad_queue(q, "weft_queue_task_done");
    if (n < 1) return weft__err(WEFT_EINVAL, "weft_queue_task_done: n is 0, must be >= 1");
    uint64_t d = atomic_load_explicit(&q->done, RLX);
    uint64_t puts;
    do {
        puts = total_puts(q);
        if (d + (uint64_t)n > puts)
            return weft__err(WEFT_EOVERFLOW,
                             "weft_queue_task_done: called for %llu items, only %llu were put",
                             (unsigned long long)(d + (uint64_t)n), (unsigned long long)puts);
    } while (!atomic_compare_exchange_weak_explicit(&q->done, &d, d + (uint64_t)n, SC, RLX));
    waker_fence(q);
    if (atomic_load_explicit(&q->join_waiters, RLX) != 0 && d + (uint64_t)n >= total_puts(q))
        wake(&q->joinseq, INT_MAX);
    return 0;
}

static int attempt_join(weft_queue *q, void *ctx)
{
    (void)ctx;
    return atomic_load_explicit(&q->done, SC) >= total_puts(q) ? 0 : WEFT_EAGAIN;
}

static bool join_closed(weft_queue *q, uint32_t state)
{
    (void)q;
    (void)state;
    return false; /* join waits for task_done even after a shutdown */
}

int weft_queue_join(weft_queue *q, double timeout)
{
    if (!live(q)) return bad_queue(q, "weft_queue_join");
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, "weft_queue_join");
    if (rc) return rc;
    if (attempt_join(q, NULL) == 0) return 0;
    if (ns == 0) return WEFT_EAGAIN;
    return block(q, &q->joinseq, &q->join_waiters, NULL, weft__deadline(ns), attempt_join,
                 join_closed, NULL);
}

/* ------------------------------------------------------------------------
 * Shutdown, snapshots
 * ------------------------------------------------------------------------ */

int weft_queue_shutdown(weft_queue *q, weft_queue_shutdown_mode mode)
{
    if (!live(q)) return bad_queue(q, "weft_queue_shutdown");
    if (mode != WEFT_QUEUE_DRAIN && mode != WEFT_QUEUE_DISCARD)
        return weft__err(WEFT_EINVAL,
                         "weft_queue_shutdown: mode %d is not WEFT_QUEUE_DRAIN or "
                         "WEFT_QUEUE_DISCARD",
                         (int)mode);
    uint32_t want = mode == WEFT_QUEUE_DISCARD ? ST_DISCARD : ST_DRAIN;
    uint32_t s = atomic_load_explicit(&q->state, RLX);
    while (s < want && !atomic_compare_exchange_weak_explicit(&q->state, &s, want, SC, RLX)) {
    }
    if (want == ST_DISCARD) {
        /* the state before the rings are read: pairs with put_landed */
        waiter_fence(q);
        discard_counted(q);
    }
    wake(&q->nonempty, INT_MAX);
    wake(&q->nonfull, INT_MAX);
    wake(&q->joinseq, INT_MAX);
    return 0;
}

size_t weft_queue_size(const weft_queue *q)
{
    if (!live(q)) return (void)bad_queue(q, "weft_queue_size"), 0;
    uint64_t g = total_gets(q), p = total_puts(q);
    size_t n = p > g ? (size_t)(p - g) : 0;
    if (q->capacity > 0 && n > q->capacity) n = q->capacity;
    return n;
}

bool weft_queue_empty(const weft_queue *q)
{
    return live(q) && weft_queue_size(q) == 0;
}

bool weft_queue_full(const weft_queue *q)
{
    return live(q) && q->capacity > 0 && weft_queue_size(q) >= q->capacity;
}

size_t weft_queue_capacity(const weft_queue *q)
{
    if (!live(q)) return (void)bad_queue(q, "weft_queue_capacity"), 0;
    return q->capacity;
}

size_t weft_queue_unfinished(const weft_queue *q)
{
    if (!live(q)) return (void)bad_queue(q, "weft_queue_unfinished"), 0;
    uint64_t d = atomic_load_explicit(&((weft_queue *)q)->done, ACQ), p = total_puts(q);
    return p > d ? (size_t)(p - d) : 0;
}

bool weft_queue_is_shutdown(const weft_queue *q)
{
    return live(q) && atomic_load_explicit(&((weft_queue *)q)->state, ACQ) != ST_OPEN;
}

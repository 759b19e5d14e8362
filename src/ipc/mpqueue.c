/* mpqueue.c : weft_mpqueue, a bounded FIFO of byte messages shared by any
 * number of threads in any number of processes (multiprocessing.Queue).
 *
 * Layout: the common header; a robust process-shared pthread mutex; the
 * queue's state; the ring bytes from offset 4096. Messages are stored as in
 * a channel (8-byte length, payload padded to 8) between `head` and `tail`,
 * monotonic byte positions.
 *
 * Why a robust pthread mutex rather than weft_lock: any process may die at
 * any point, including inside put or get while it holds the lock. The
 * kernel releases a robust mutex of a dead thread (its robust list) and the
 * next locker gets EOWNERDEAD. For that to be safe the state is committed
 * by one store: put writes the message past `tail` and then moves `tail`;
 * get reads the message and then moves `head`. `count` is derived data,
 * updated after the commit, and recomputed from [head, tail) by whoever
 * recovers the lock after a death. So a dead process's message is wholly in
 * or wholly out, and nobody blocks on it.
 *
 * Waiting. Getters that find the queue empty count themselves in
 * `get_waiters`, read the `get_seq` futex word under the lock, release the
 * lock, spin briefly (adaptively: see weft__ipc_spin), then sleep while
 * `get_seq` is unchanged (in slices, so that the wait also ends at its
 * deadline). A put that finds getters waiting bumps `get_seq` under the
 * lock and wakes one after unlocking, unless every waiter has a wake-up on
 * its way already (`get_signals`); putters waiting for room mirror this
 * with `put_seq`. A waiter that leaves without taking what it was woken for
 * (timeout) passes the wake-up on, so one wake per message never strands a
 * message while others sleep. Close
 * bumps both words and wakes everyone. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ipc/ipc_internal.h"

#define Q_DEFAULT_CAP (1024u * 1024u)
#define Q_MUTEX_OFF 64
#define Q_STATE_OFF 128
#define Q_DATA_OFF 4096

struct q_state {
    uint64_t head, tail; /* under the mutex; read without it only for snapshots */
    uint64_t count;      /* messages in [head, tail); recomputed after a death */
    uint64_t cap;
    uint64_t maxsize; /* 0: no limit on the count */
    uint32_t closed;
    uint32_t get_seq, put_seq; /* futex words */
    uint32_t get_waiters, put_waiters;
    uint32_t get_signals, put_signals; /* wake-ups sent to waiters not yet back */
    uint32_t recoveries;               /* times a dead holder's lock was recovered */
};

_Static_assert(sizeof(pthread_mutex_t) <= Q_STATE_OFF - Q_MUTEX_OFF, "mutex too big");
_Static_assert(Q_STATE_OFF + sizeof(struct q_state) <= Q_DATA_OFF, "state too big");

struct weft_mpqueue {
    weft__ipc_map map;
    pthread_mutex_t *mu;
    struct q_state *st;
    unsigned char *data;
    uint64_t mask;
    weft__ipc_spin get_spin, put_spin;
};

static void wire(weft_mpqueue *q)
{
    q->mu = (pthread_mutex_t *)(q->map.base + Q_MUTEX_OFF);
    q->st = (struct q_state *)(q->map.base + Q_STATE_OFF);
    q->data = q->map.base + Q_DATA_OFF;
    q->mask = q->st->cap - 1;
}

int weft_mpqueue_create(const weft_mpqueue_options *opts, weft_mpqueue **out)
{
    static const char fn[] = "weft_mpqueue_create";
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "%s: out is NULL", fn);
    weft_mpqueue_options o;
    int orc = WEFT__OPTS_READ(o, opts, "weft_mpqueue_create: weft_mpqueue_options");
    if (orc) return orc;
    uint64_t cap = weft__ring_capacity(o.capacity, Q_DEFAULT_CAP);
    if (!cap) return weft__err(WEFT_EINVAL, "%s: capacity %zu is above 1 GiB", fn, o.capacity);
    void *h;
    int rc = weft__ipc_open(false, NULL, WEFT_IPC_MPQUEUE, Q_DATA_OFF + (size_t)cap, fn,
                            sizeof(weft_mpqueue), offsetof(weft_mpqueue, map), &h);
    if (rc) return rc;
    weft_mpqueue *q = h;
    pthread_mutexattr_t a;
    int e = pthread_mutexattr_init(&a);
    if (!e) e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!e) e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!e) e = pthread_mutex_init((pthread_mutex_t *)(q->map.base + Q_MUTEX_OFF), &a);
    pthread_mutexattr_destroy(&a);
    if (e) {
        rc = weft__err(e == ENOMEM ? WEFT_ENOMEM : WEFT_ENOTSUP,
                       "%s: cannot make a robust process-shared mutex: %s", fn, strerror(e));
        weft__ipc_close(q, offsetof(weft_mpqueue, map));
        return rc;
    }
    struct q_state *st = (struct q_state *)(q->map.base + Q_STATE_OFF);
    st->cap = cap;
    st->maxsize = (uint64_t)o.maxsize;
    wire(q);
    weft__ipc_publish(&q->map);
    *out = q;
    return 0;
}

int weft_mpqueue_attach(const weft_ipc_token *tok, weft_mpqueue **out)
{
    static const char fn[] = "weft_mpqueue_attach";
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "%s: out is NULL", fn);
    void *h;
    int rc = weft__ipc_open(true, tok, WEFT_IPC_MPQUEUE, 0, fn, sizeof(weft_mpqueue),
                            offsetof(weft_mpqueue, map), &h);
    if (rc) return rc;
    weft_mpqueue *q = h;
    uint64_t cap = ((struct q_state *)(q->map.base + Q_STATE_OFF))->cap;
    if (!weft__ring_fits(cap, Q_DATA_OFF, 1, q->map.size)) {
        weft__ipc_close(q, offsetof(weft_mpqueue, map));
        return weft__err(WEFT_EINVAL, "%s: malformed queue", fn);
    }
    wire(q);
    *out = q;
    return 0;
}

int weft_mpqueue_token(const weft_mpqueue *q, weft_ipc_token *out)
{
    if (!q || !out) return weft__err(WEFT_EINVAL, "weft_mpqueue_token: NULL argument");
    *out = q->map.token;
    return 0;
}

size_t weft_mpqueue_max_message(const weft_mpqueue *q)
{
    return q ? (size_t)(q->mask + 1 - 8) : 0;
}

/* ---- the lock ------------------------------------------------------------ */

/* After a holder died: the committed positions are right; recount. */
static void recover(weft_mpqueue *q)
{
    struct q_state *st = q->st;
    uint64_t n = 0, pos = st->head;
    while (pos != st->tail) {
        uint64_t len;
        memcpy(&len, q->data + (pos & q->mask), 8);
        uint64_t need = weft__ring_need((size_t)len);
        if (len > q->mask + 1 - 8 || need > st->tail - pos) {
            /* cannot happen with whole commits; drop the rest rather than loop */
            st->tail = pos;
            break;
        }
        pos += need;
        n++;
    }
    st->count = n;
    st->recoveries++;
    st->get_signals = st->put_signals = 0;
    /* waiters it had counted may be gone: over-counting only costs wake-ups */
    pthread_mutex_consistent(q->mu);
}

static void lock(weft_mpqueue *q)
{
    int e = pthread_mutex_lock(q->mu);
    if (WEFT__UNLIKELY(e == EOWNERDEAD)) recover(q);
}

static void unlock(weft_mpqueue *q)
{
    pthread_mutex_unlock(q->mu);
}

/* ---- waiting ------------------------------------------------------------- */

typedef struct {
    uint64_t deadline; /* 0: none */
    bool try_only;
} wait_limit;

static int take_limit(double timeout, wait_limit *l, const char *fn)
{
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    if (rc) return rc;
    l->try_only = ns == 0;
    l->deadline = ns < 0 ? 0 : weft__now_ns() + (uint64_t)ns;
    return 0;
}

/* Called with the lock held after `*waiters` was incremented and `seen`
 * read: releases the lock, spins then sleeps while *word == seen (at most a
 * slice), takes the lock again. Returns false if the deadline has passed. */
struct word_still {
    uint32_t *word;
    uint32_t seen;
};

static bool word_still(void *arg)
{
    struct word_still *a = arg;
    return ipc_ld_relaxed(a->word) == a->seen;
}

static bool wait_on(weft_mpqueue *q, uint32_t *word, uint32_t seen, weft__ipc_spin *spin,
                    const wait_limit *l)
{
    unlock(q);
    uint64_t now = weft__now_ns();
    bool more = true;
    if (l->deadline && now >= l->deadline) {
        more = false;
    } else {
        struct word_still a = {word, seen};
        bool changed = weft__spin_while(word_still, &a, weft__spin_budget(spin), l->deadline);
        weft__spin_result(spin, changed);
        if (!changed) {
            int64_t slice = WEFT__IPC_SLICE_NS;
            if (l->deadline) {
                now = weft__now_ns();
                int64_t rem = now >= l->deadline ? 0 : (int64_t)(l->deadline - now);
                if (rem < slice) slice = rem;
            }
            if (slice > 0) weft__futex_wait_ex(word, seen, slice, true);
        }
    }
    lock(q);
    return more;
}

/* With the lock held: bumps `*word` if anyone waits on it; returns whether a
 * wake-up is due (done after unlocking). */
static bool signal_locked(uint32_t *word, uint32_t waiters, uint32_t *signals)
{
    /* one wake-up per waiter: while a woken waiter is on its way back to
     * the lock, more puts need not make more system calls */
    if (waiters <= *signals) return false;
    (*signals)++;
    __atomic_fetch_add(word, 1, __ATOMIC_RELEASE);
    return true;
}

/* A waiter is back under the lock (woken, timed out or spurious). */
static void waiter_back(uint32_t *waiters, uint32_t *signals)
{
    (*waiters)--;
    if (*signals > 0) (*signals)--;
}

static bool has_room(const struct q_state *st, uint64_t need)
{
    return st->cap - (st->tail - st->head) >= need && (!st->maxsize || st->count < st->maxsize);
}

/* ---- put / get ----------------------------------------------------------- */

int weft_mpqueue_put(weft_mpqueue *q, const void *data, size_t len, double timeout)
{
    static const char fn[] = "weft_mpqueue_put";
    if (!q || (!data && len > 0))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, q ? "data" : "queue");
    wait_limit l;
    int rc = take_limit(timeout, &l, fn);
    if (rc) return rc;
    if (len > weft_mpqueue_max_message(q))
        return weft__err(WEFT_EOVERFLOW,
                         "%s: a message of %zu bytes is larger than the queue carries (%zu: "
                         "create it with a larger capacity, or pass the bytes in a weft_shm)",
                         fn, len, weft_mpqueue_max_message(q));
    struct q_state *st = q->st;
    uint64_t need = weft__ring_need(len);
    bool waited = false, wake_get = false, wake_put = false;
    lock(q);
    for (;;) {
        if (st->closed) {
            rc = weft__err(WEFT_ECLOSED, "%s: the queue is closed", fn);
            break;
        }
        if (has_room(st, need)) {
            uint64_t t = st->tail, hdr = (uint64_t)len;
            memcpy(q->data + (t & q->mask), &hdr, 8);
            if (len) weft__ring_put(q->data, q->mask, t + 8, data, len);
            st->tail = t + need; /* the commit */
            st->count++;
            wake_get = signal_locked(&st->get_seq, st->get_waiters, &st->get_signals);
            break;
        }
        if (l.try_only) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
        st->put_waiters++;
        uint32_t seen = st->put_seq;
        bool more = wait_on(q, &st->put_seq, seen, &q->put_spin, &l);
        waiter_back(&st->put_waiters, &st->put_signals);
        waited = true;
        if (!more && !st->closed && !has_room(st, need)) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
    }
    /* leaving without using a wake-up meant for putters: pass it on */
    if (rc && waited && st->put_waiters && has_room(st, 8))
        wake_put = signal_locked(&st->put_seq, st->put_waiters, &st->put_signals);
    unlock(q);
    if (wake_get) weft__futex_wake_ex(&st->get_seq, 1, true);
    if (wake_put) weft__futex_wake_ex(&st->put_seq, 1, true);
    return rc;
}

/* Gets with the message copied by `take` (into the caller's buffer or a new
 * allocation); `take` returns 0 to consume, or a code to leave it. */
typedef int (*take_fn)(void *arg, const unsigned char *data, uint64_t mask, uint64_t pos,
                       uint64_t len);

static int get_common(weft_mpqueue *q, double timeout, take_fn take, void *arg, const char *fn)
{
    if (!q) return weft__err(WEFT_EINVAL, "%s: queue is NULL", fn);
    wait_limit l;
    int rc = take_limit(timeout, &l, fn);
    if (rc) return rc;
    struct q_state *st = q->st;
    bool waited = false, wake_get = false, wake_put = false;
    lock(q);
    for (;;) {
        if (st->count > 0) {
            uint64_t h = st->head, len;
            memcpy(&len, q->data + (h & q->mask), 8);
            rc = take(arg, q->data, q->mask, h + 8, len);
            if (rc) break;
            st->head = h + weft__ring_need((size_t)len); /* the commit */
            st->count--;
            wake_put = signal_locked(&st->put_seq, st->put_waiters, &st->put_signals);
            break;
        }
        if (st->closed) {
            rc = WEFT_EOF;
            break;
        }
        if (l.try_only) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
        st->get_waiters++;
        uint32_t seen = st->get_seq;
        bool more = wait_on(q, &st->get_seq, seen, &q->get_spin, &l);
        waiter_back(&st->get_waiters, &st->get_signals);
        waited = true;
        if (!more && st->count == 0 && !st->closed) {
            rc = WEFT_ETIMEDOUT;
            break;
        }
    }
    if (rc && waited && st->get_waiters && st->count > 0)
        wake_get = signal_locked(&st->get_seq, st->get_waiters, &st->get_signals);
    unlock(q);
    if (wake_get) weft__futex_wake_ex(&st->get_seq, 1, true);
    if (wake_put) weft__futex_wake_ex(&st->put_seq, 1, true);
    return rc;
}

struct buf_arg {
    void *buf;
    size_t cap;
    size_t *len;
    const char *fn;
};

static int take_into(void *arg, const unsigned char *data, uint64_t mask, uint64_t pos,
                     uint64_t len)
{
    struct buf_arg *a = arg;
    *a->len = (size_t)len;
    if (len > a->cap)
        return weft__err(WEFT_EOVERFLOW,
                         "%s: the next message has %llu bytes, the buffer %zu (it stays in "
                         "the queue)",
                         a->fn, (unsigned long long)len, a->cap);
    if (len) weft__ring_get(data, mask, pos, a->buf, (size_t)len);
    return 0;
}

int weft_mpqueue_get(weft_mpqueue *q, double timeout, void *buf, size_t cap, size_t *len)
{
    static const char fn[] = "weft_mpqueue_get";
    if (!len || (!buf && cap > 0))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, len ? "buf" : "len");
    struct buf_arg a = {buf, cap, len, fn};
    return get_common(q, timeout, take_into, &a, fn);
}

struct alloc_arg {
    void **data;
    size_t *len;
    const char *fn;
};

static int take_alloc(void *arg, const unsigned char *data, uint64_t mask, uint64_t pos,
                      uint64_t len)
{
    struct alloc_arg *a = arg;
    void *p = malloc(len ? (size_t)len : 1);
    if (!p)
        return weft__err(WEFT_ENOMEM, "%s: out of memory for %llu bytes", a->fn,
                         (unsigned long long)len);
    if (len) weft__ring_get(data, mask, pos, p, (size_t)len);
    *a->data = p;
    *a->len = (size_t)len;
    return 0;
}

int weft_mpqueue_get_alloc(weft_mpqueue *q, double timeout, void **data, size_t *len)
{
    static const char fn[] = "weft_mpqueue_get_alloc";
    if (data) *data = NULL;
    if (!data || !len) return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, data ? "len" : "data");
    struct alloc_arg a = {data, len, fn};
    return get_common(q, timeout, take_alloc, &a, fn);
}

size_t weft_mpqueue_count(weft_mpqueue *q)
{
    if (!q) return 0;
    lock(q);
    size_t n = (size_t)q->st->count;
    unlock(q);
    return n;
}

int weft_mpqueue_close(weft_mpqueue *q)
{
    if (!q) return weft__err(WEFT_EINVAL, "weft_mpqueue_close: queue is NULL");
    struct q_state *st = q->st;
    lock(q);
    bool first = !st->closed;
    st->closed = 1;
    __atomic_fetch_add(&st->get_seq, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&st->put_seq, 1, __ATOMIC_RELEASE);
    unlock(q);
    if (first) {
        weft__futex_wake_ex(&st->get_seq, INT32_MAX, true);
        weft__futex_wake_ex(&st->put_seq, INT32_MAX, true);
    }
    return 0;
}

int weft_mpqueue_destroy(weft_mpqueue *q)
{
    if (!q) return 0;
    weft__ipc_close(q, offsetof(weft_mpqueue, map));
    return 0;
}

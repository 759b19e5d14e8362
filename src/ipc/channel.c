/* channel.c : weft_channel, byte messages between two processes.
 *
 * Layout of the mapping: the common header; a control line (direction,
 * closed bits, the peer's pid and start time); one control block per ring
 * (ring 0 carries owner -> peer, ring 1 peer -> owner); the ring bytes from
 * offset 4096. A one-way channel maps only the ring it uses.
 *
 * Each ring has exactly one writer and one reader (one end each), so it is
 * a lock-free single-producer single-consumer ring of bytes: `tail` (bytes
 * published, monotonic 64-bit) is written only by the writer, `head` (bytes
 * consumed) only by the reader; a message is an 8-byte length then the
 * payload padded to 8, written before `tail` moves past it (release), read
 * before `head` moves past it (release). A process that dies in the middle
 * of a send or recv therefore leaves the ring consistent: the message is
 * either wholly published or not at all, wholly consumed or not at all.
 *
 * Waiting. A reader that finds the ring empty spins for up to a few
 * microseconds (adaptively: see weft__ipc_spin), then sleeps on the ring's `wseq` futex word, shared
 * (no FUTEX_PRIVATE_FLAG). The sleeper protocol is Dekker's: the reader
 * reads `wseq`, sets `rsleep`, re-checks `tail`, sleeps while `wseq` is
 * unchanged; the writer moves `tail`, then reads `rsleep`, and only if it is
 * set clears it, bumps `wseq` and wakes (clearing it means one wake-up per
 * sleep, not one per message sent before the woken reader runs). Those four accesses are sequentially
 * consistent (an xchg on x86), so one side always sees the other's store. So a writer never makes a system call while its
 * reader is awake. Writers waiting for room mirror this with `rseq` and
 * `wsleep`. Close sets a bit in `closed`, then bumps every futex word and
 * wakes everyone.
 *
 * Dead ends. Sleeps are cut in slices of WEFT__IPC_SLICE_NS; between
 * slices, and at a timeout, a waiter checks that the other end's process
 * still lives (/proc/<pid>/stat: present, not a zombie, same start time),
 * at most once per slice. A dead writer's messages are still delivered;
 * once the ring is drained the reader gets WEFT_EPEERDIED, and so does a
 * writer whose reader died. */
#include <stdlib.h>
#include <unistd.h>

#include "ipc/ipc_internal.h"

#define CH_DEFAULT_CAP (256u * 1024u)
#define CH_CTL_OFF 64
#define CH_RING_OFF 128
#define CH_DATA_OFF 4096

#define END_OWNER 0
#define END_PEER 1

struct ch_ctl {
    uint32_t direction;
    uint32_t closed;     /* bit e: end e closed */
    int32_t peer_pid;    /* 0 until a peer attaches (release, after peer_start) */
    uint32_t peer_state; /* 0 free, 1 claimed */
    uint64_t peer_start;
    uint64_t cap;
};

struct ring {
    /* the writer's line */
    uint64_t tail;
    uint32_t wseq;   /* futex: bumped when tail moves while the reader sleeps, and at close */
    uint32_t rsleep; /* the reader sleeps (or is about to) */
    unsigned char pad1[48];
    /* the reader's line */
    uint64_t head;
    uint32_t rseq;   /* futex: bumped when head moves while the writer sleeps, and at close */
    uint32_t wsleep; /* the writer sleeps (or is about to) */
    unsigned char pad2[48];
};

_Static_assert(sizeof(struct ch_ctl) <= CH_RING_OFF - CH_CTL_OFF, "channel control too big");
_Static_assert(CH_RING_OFF + 2 * sizeof(struct ring) <= CH_DATA_OFF, "rings too big");

struct weft_channel {
    weft__ipc_map map;
    struct ch_ctl *ctl;
    int end;
    struct ring *tx, *rx; /* NULL when this end does not send / receive */
    unsigned char *txdata, *rxdata;
    uint64_t mask;
    uint64_t tx_head; /* cached rx->head of the tx ring (only grows) */
    uint64_t last_check_ns;
    weft__ipc_spin rx_spin, tx_spin;
};

static bool sends(uint32_t dir, int end)
{
    return dir == WEFT_CHANNEL_DUPLEX ||
           (end == END_OWNER ? dir == WEFT_CHANNEL_TO_PEER : dir == WEFT_CHANNEL_TO_OWNER);
}

static bool receives(uint32_t dir, int end)
{
    return sends(dir, 1 - end);
}

/* Points the handle at its rings. */
static void wire(weft_channel *ch, int end)
{
    unsigned char *b = ch->map.base;
    struct ch_ctl *c = (struct ch_ctl *)(b + CH_CTL_OFF);
    uint32_t dir = c->direction;
    struct ring *r0 = (struct ring *)(b + CH_RING_OFF), *r1 = r0 + 1;
    unsigned char *d0 = b + CH_DATA_OFF;
    unsigned char *d1 = d0 + (sends(dir, END_OWNER) ? c->cap : 0);
    ch->ctl = c;
    ch->end = end;
    ch->mask = c->cap - 1;
    ch->tx = ch->rx = NULL;
    ch->txdata = ch->rxdata = NULL;
    if (sends(dir, end)) {
        ch->tx = end == END_OWNER ? r0 : r1;
        ch->txdata = end == END_OWNER ? d0 : d1;
        ch->tx_head = ipc_ld(&ch->tx->head);
    }
    if (receives(dir, end)) {
        ch->rx = end == END_OWNER ? r1 : r0;
        ch->rxdata = end == END_OWNER ? d1 : d0;
    }
    ch->last_check_ns = weft__now_ns();
}

int weft_channel_create(const weft_channel_options *opts, weft_channel **out)
{
    static const char fn[] = "weft_channel_create";
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "%s: out is NULL", fn);
    weft_channel_options o;
    int orc = WEFT__OPTS_READ(o, opts, "weft_channel_create: weft_channel_options");
    if (orc) return orc;
    if ((unsigned)o.direction > WEFT_CHANNEL_TO_OWNER)
        return weft__err(WEFT_EINVAL, "%s: direction %d is not a weft_channel_direction", fn,
                         (int)o.direction);
    uint64_t cap = weft__ring_capacity(o.capacity, CH_DEFAULT_CAP);
    if (!cap) return weft__err(WEFT_EINVAL, "%s: capacity %zu is above 1 GiB", fn, o.capacity);
    int nrings = o.direction == WEFT_CHANNEL_DUPLEX ? 2 : 1;
    void *h;
    int rc =
        weft__ipc_open(false, NULL, WEFT_IPC_CHANNEL, CH_DATA_OFF + (size_t)cap * (size_t)nrings,
                       fn, sizeof(weft_channel), offsetof(weft_channel, map), &h);
    if (rc) return rc;
    weft_channel *ch = h;
    struct ch_ctl *c = (struct ch_ctl *)(ch->map.base + CH_CTL_OFF);
    c->direction = (uint32_t)o.direction;
    c->cap = cap;
    wire(ch, END_OWNER);
    weft__ipc_publish(&ch->map);
    *out = ch;
    return 0;
}

int weft_channel_attach(const weft_ipc_token *tok, weft_channel **out)
{
    static const char fn[] = "weft_channel_attach";
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "%s: out is NULL", fn);
    void *h;
    int rc = weft__ipc_open(true, tok, WEFT_IPC_CHANNEL, 0, fn, sizeof(weft_channel),
                            offsetof(weft_channel, map), &h);
    if (rc) return rc;
    weft_channel *ch = h;
    struct ch_ctl *c = (struct ch_ctl *)(ch->map.base + CH_CTL_OFF);
    int nrings = c->direction == WEFT_CHANNEL_DUPLEX ? 2 : 1;
    if (c->direction > WEFT_CHANNEL_TO_OWNER ||
        !weft__ring_fits(c->cap, CH_DATA_OFF, (uint64_t)nrings, ch->map.size)) {
        rc = weft__err(WEFT_EINVAL, "%s: malformed channel", fn);
        goto fail;
    }
    if (ipc_ld(&c->closed) & (1u << END_OWNER)) {
        rc = weft__err(WEFT_ECLOSED, "%s: the owner closed the channel", fn);
        goto fail;
    }
    uint32_t free_state = 0;
    if (!__atomic_compare_exchange_n(&c->peer_state, &free_state, 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        rc = weft__err(WEFT_EBUSY,
                       "%s: the channel has a peer already (process %d): a channel joins "
                       "two ends; use a weft_mpqueue for more",
                       fn, (int)ipc_ld(&c->peer_pid));
        goto fail;
    }
    c->peer_start = weft__ipc_self_start();
    ipc_st(&c->peer_pid, (int32_t)getpid());
    wire(ch, END_PEER);
    *out = ch;
    return 0;
fail:
    weft__ipc_close(ch, offsetof(weft_channel, map));
    return rc;
}

int weft_channel_token(const weft_channel *ch, weft_ipc_token *out)
{
    if (!ch || !out) return weft__err(WEFT_EINVAL, "weft_channel_token: NULL argument");
    *out = ch->map.token;
    return 0;
}

size_t weft_channel_max_message(const weft_channel *ch)
{
    return ch ? (size_t)(ch->mask + 1 - 8) : 0;
}

/* ---- liveness and waiting ------------------------------------------------ */

/* True if the other end's process is known to be dead. Rate-limited to one
 * /proc read per slice unless `force`. */
static bool other_dead(weft_channel *ch, bool force)
{
    uint64_t now = weft__now_ns();
    if (!force && now - ch->last_check_ns < (uint64_t)WEFT__IPC_SLICE_NS) return false;
    ch->last_check_ns = now;
    int32_t pid;
    uint64_t start;
    if (ch->end == END_OWNER) {
        pid = ipc_ld(&ch->ctl->peer_pid);
        if (pid == 0) return false; /* no peer yet */
        start = ch->ctl->peer_start;
    } else {
        weft__ipc_hdr *h = weft__ipc_hdr_of(&ch->map);
        pid = h->owner_pid;
        start = h->owner_start;
    }
    return !weft__ipc_proc_alive(pid, start);
}

static int peer_died(weft_channel *ch, const char *fn)
{
    int32_t pid =
        ch->end == END_OWNER ? ipc_ld(&ch->ctl->peer_pid) : weft__ipc_hdr_of(&ch->map)->owner_pid;
    return weft__err(WEFT_EPEERDIED, "%s: the process at the other end (%d) died without closing",
                     fn, (int)pid);
}

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

/* Sleeps on *word while it equals `seen`, at most a slice or until the
 * deadline. */
static void sleep_on(uint32_t *word, uint32_t seen, const wait_limit *l)
{
    int64_t slice = WEFT__IPC_SLICE_NS;
    if (l->deadline) {
        uint64_t now = weft__now_ns();
        int64_t rem = now >= l->deadline ? 0 : (int64_t)(l->deadline - now);
        if (rem < slice) slice = rem;
    }
    if (slice > 0) weft__futex_wait_ex(word, seen, slice, true);
}

static bool expired(const wait_limit *l)
{
    return l->try_only || (l->deadline && weft__now_ns() >= l->deadline);
}

#define MY_BIT(ch) (1u << (ch)->end)
#define OTHER_BIT(ch) (1u << (1 - (ch)->end))

struct rx_still {
    weft_channel *ch;
    uint64_t head;
};

static bool rx_still(void *arg)
{
    struct rx_still *a = arg;
    return ipc_ld_relaxed(&a->ch->rx->tail) == a->head && !ipc_ld_relaxed(&a->ch->ctl->closed);
}

struct tx_still {
    weft_channel *ch;
    uint64_t tail, need;
};

static bool tx_still(void *arg)
{
    struct tx_still *a = arg;
    uint64_t cap = a->ch->mask + 1;
    return cap - (a->tail - ipc_ld_relaxed(&a->ch->tx->head)) < a->need &&
           !ipc_ld_relaxed(&a->ch->ctl->closed);
}

/* Waits until the rx ring holds a message (0, `*tail`), or another outcome:
 * WEFT_ECLOSED (this end closed), WEFT_EOF (the other end closed, drained),
 * WEFT_EPEERDIED (drained, the writer died), WEFT_ETIMEDOUT. */
static int rx_wait(weft_channel *ch, uint64_t head, const wait_limit *l, uint64_t *tail,
                   const char *fn)
{
    struct ring *r = ch->rx;
    bool spun = false;
    for (;;) {
        uint64_t t = ipc_ld(&r->tail);
        if (t != head) {
            *tail = t;
            return 0;
        }
        uint32_t cl = ipc_ld(&ch->ctl->closed);
        if (cl & MY_BIT(ch)) return weft__err(WEFT_ECLOSED, "%s: this end is closed", fn);
        if (cl & OTHER_BIT(ch)) {
            /* closed is set after the last send: that send is visible now */
            t = ipc_ld(&r->tail);
            if (t != head) {
                *tail = t;
                return 0;
            }
            return WEFT_EOF;
        }
        bool out = expired(l);
        if (other_dead(ch, out)) {
            t = ipc_ld(&r->tail);
            if (t != head) {
                *tail = t;
                return 0;
            }
            return peer_died(ch, fn);
        }
        if (out) return WEFT_ETIMEDOUT;
        if (!spun) {
            spun = true;
            struct rx_still a = {ch, head};
            bool hit = weft__spin_while(rx_still, &a, weft__spin_budget(&ch->rx_spin), l->deadline);
            weft__spin_result(&ch->rx_spin, hit);
            continue;
        }
        uint32_t seen = ipc_ld(&r->wseq);
        ipc_st_sc(&r->rsleep, 1);
        if (ipc_ld_sc(&r->tail) == head && !ipc_ld_sc(&ch->ctl->closed))
            sleep_on(&r->wseq, seen, l);
        ipc_st_relaxed(&r->rsleep, 0);
    }
}

/* Waits until the tx ring has `need` free bytes (0), or: WEFT_ECLOSED (either
 * end closed), WEFT_EPEERDIED (the reader died), WEFT_ETIMEDOUT. */
static int tx_wait(weft_channel *ch, uint64_t tail, uint64_t need, const wait_limit *l,
                   const char *fn)
{
    struct ring *r = ch->tx;
    uint64_t cap = ch->mask + 1;
    bool spun = false;
    for (;;) {
        uint32_t cl = ipc_ld(&ch->ctl->closed);
        if (cl & MY_BIT(ch)) return weft__err(WEFT_ECLOSED, "%s: this end is closed", fn);
        if (cl & OTHER_BIT(ch))
            return weft__err(WEFT_ECLOSED, "%s: the other end closed the channel", fn);
        ch->tx_head = ipc_ld(&r->head);
        if (cap - (tail - ch->tx_head) >= need) return 0;
        bool out = expired(l);
        if (other_dead(ch, out)) return peer_died(ch, fn);
        if (out) return WEFT_ETIMEDOUT;
        if (!spun) {
            spun = true;
            struct tx_still a = {ch, tail, need};
            bool hit = weft__spin_while(tx_still, &a, weft__spin_budget(&ch->tx_spin), l->deadline);
            weft__spin_result(&ch->tx_spin, hit);
            continue;
        }
        uint32_t seen = ipc_ld(&r->rseq);
        ipc_st_sc(&r->wsleep, 1);
        if (cap - (tail - ipc_ld_sc(&r->head)) < need && !ipc_ld_sc(&ch->ctl->closed))
            sleep_on(&r->rseq, seen, l);
        ipc_st_relaxed(&r->wsleep, 0);
    }
}

/* ---- send / recv --------------------------------------------------------- */

int weft_channel_send(weft_channel *ch, const void *data, size_t len, double timeout)
{
    static const char fn[] = "weft_channel_send";
    if (WEFT__UNLIKELY(!ch || (!data && len > 0)))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, ch ? "data" : "channel");
    if (WEFT__UNLIKELY(!ch->tx))
        return weft__err(WEFT_EPERM, "%s: this end of a one-way channel only receives", fn);
    if (WEFT__UNLIKELY(len > weft_channel_max_message(ch)))
        return weft__err(WEFT_EOVERFLOW,
                         "%s: a message of %zu bytes is larger than the channel carries (%zu: "
                         "create it with a larger capacity, or pass the bytes in a weft_shm)",
                         fn, len, weft_channel_max_message(ch));
    struct ring *r = ch->tx;
    uint64_t need = weft__ring_need(len);
    uint64_t tail = ipc_ld_relaxed(&r->tail);
    if (WEFT__UNLIKELY(ipc_ld_relaxed(&ch->ctl->closed) ||
                       ch->mask + 1 - (tail - ch->tx_head) < need)) {
        wait_limit l;
        int rc = take_limit(timeout, &l, fn);
        if (rc) return rc;
        rc = tx_wait(ch, tail, need, &l, fn);
        if (rc) return rc;
    } else if (WEFT__UNLIKELY(!(timeout >= 0))) {
        wait_limit l;
        return take_limit(timeout, &l, fn);
    }
    uint64_t hdr = (uint64_t)len;
    memcpy(ch->txdata + (tail & ch->mask), &hdr, 8);
    if (len) weft__ring_put(ch->txdata, ch->mask, tail + 8, data, len);
    ipc_st_sc(&r->tail, tail + need);
    /* clearing the flag here spares the next sends a wake-up system call
     * each while the woken reader is not yet running */
    if (ipc_ld_sc(&r->rsleep) && __atomic_exchange_n(&r->rsleep, 0, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&r->wseq, 1, __ATOMIC_RELEASE);
        weft__futex_wake_ex(&r->wseq, 1, true);
    }
    return 0;
}

/* Waits for the next message; gives its length and position. */
static int next_message(weft_channel *ch, double timeout, uint64_t *head, uint64_t *len,
                        const char *fn)
{
    if (WEFT__UNLIKELY(!ch)) return weft__err(WEFT_EINVAL, "%s: channel is NULL", fn);
    if (WEFT__UNLIKELY(!ch->rx))
        return weft__err(WEFT_EPERM, "%s: this end of a one-way channel only sends", fn);
    struct ring *r = ch->rx;
    uint64_t h = ipc_ld_relaxed(&r->head);
    uint64_t t = ipc_ld(&r->tail);
    if (WEFT__UNLIKELY(!(timeout >= 0) || (ipc_ld_relaxed(&ch->ctl->closed) & MY_BIT(ch)))) {
        wait_limit l;
        int rc = take_limit(timeout, &l, fn);
        if (rc) return rc;
        return weft__err(WEFT_ECLOSED, "%s: this end is closed", fn);
    }
    if (t == h) {
        wait_limit l;
        int rc = take_limit(timeout, &l, fn);
        if (rc) return rc;
        rc = rx_wait(ch, h, &l, &t, fn);
        if (rc) return rc;
    }
    uint64_t n;
    memcpy(&n, ch->rxdata + (h & ch->mask), 8);
    if (WEFT__UNLIKELY(n > weft_channel_max_message(ch) || weft__ring_need((size_t)n) > t - h))
        return weft__err(WEFT_EINVAL, "%s: the channel's ring is corrupted (length %llu)", fn,
                         (unsigned long long)n);
    *head = h;
    *len = n;
    return 0;
}

static void consume(weft_channel *ch, uint64_t head, uint64_t len)
{
    struct ring *r = ch->rx;
    ipc_st_sc(&r->head, head + weft__ring_need((size_t)len));
    if (ipc_ld_sc(&r->wsleep) && __atomic_exchange_n(&r->wsleep, 0, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&r->rseq, 1, __ATOMIC_RELEASE);
        weft__futex_wake_ex(&r->rseq, 1, true);
    }
}

int weft_channel_recv(weft_channel *ch, double timeout, void *buf, size_t cap, size_t *len)
{
    static const char fn[] = "weft_channel_recv";
    if (WEFT__UNLIKELY(!len || (!buf && cap > 0)))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, len ? "buf" : "len");
    uint64_t head, n;
    int rc = next_message(ch, timeout, &head, &n, fn);
    if (rc) return rc;
    *len = (size_t)n;
    if (n > cap)
        return weft__err(WEFT_EOVERFLOW,
                         "%s: the next message has %llu bytes, the buffer %zu (it stays in "
                         "the channel)",
                         fn, (unsigned long long)n, cap);
    if (n) weft__ring_get(ch->rxdata, ch->mask, head + 8, buf, (size_t)n);
    consume(ch, head, n);
    return 0;
}

int weft_channel_recv_alloc(weft_channel *ch, double timeout, void **data, size_t *len)
{
    static const char fn[] = "weft_channel_recv_alloc";
    if (data) *data = NULL;
    if (WEFT__UNLIKELY(!data || !len))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn, data ? "len" : "data");
    uint64_t head, n;
    int rc = next_message(ch, timeout, &head, &n, fn);
    if (rc) return rc;
    void *p = malloc(n ? (size_t)n : 1);
    if (!p)
        return weft__err(WEFT_ENOMEM, "%s: out of memory for %llu bytes", fn,
                         (unsigned long long)n);
    if (n) weft__ring_get(ch->rxdata, ch->mask, head + 8, p, (size_t)n);
    consume(ch, head, n);
    *data = p;
    *len = (size_t)n;
    return 0;
}

int weft_channel_poll(weft_channel *ch, double timeout)
{
    static const char fn[] = "weft_channel_poll";
    uint64_t head, n;
    int rc = next_message(ch, timeout, &head, &n, fn);
    if (rc == WEFT_EOF || rc == WEFT_EPEERDIED) return 0; /* recv would not wait */
    return rc;
}

/* ---- close --------------------------------------------------------------- */

static void wake_all(weft_channel *ch)
{
    struct ring *r0 = (struct ring *)(ch->map.base + CH_RING_OFF);
    for (int i = 0; i < 2; i++) {
        struct ring *r = r0 + i;
        __atomic_fetch_add(&r->wseq, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&r->rseq, 1, __ATOMIC_SEQ_CST);
        weft__futex_wake_ex(&r->wseq, INT32_MAX, true);
        weft__futex_wake_ex(&r->rseq, INT32_MAX, true);
    }
}

int weft_channel_close(weft_channel *ch)
{
    if (!ch) return weft__err(WEFT_EINVAL, "weft_channel_close: channel is NULL");
    uint32_t old = __atomic_fetch_or(&ch->ctl->closed, MY_BIT(ch), __ATOMIC_SEQ_CST);
    if (!(old & MY_BIT(ch))) wake_all(ch);
    return 0;
}

int weft_channel_destroy(weft_channel *ch)
{
    if (!ch) return 0;
    weft_channel_close(ch);
    weft__ipc_close(ch, offsetof(weft_channel, map));
    return 0;
}

/* dispatch.c : the dispatcher of an mpi executor, on rank 0.
 *
 * An mpi executor is the threads executor with one thread, the
 * dispatcher: submit and map push onto the same deques, shutdown and
 * cancel work the same way; where a threads worker would run a task, the
 * dispatcher sends it.
 *
 * Loop: (1) poll results (MPI_Improbe on the executor's private tag, so
 * several executors share the worker ranks), complete futures / map
 * entries; (2) while a worker rank has room, take queued work and send it
 * to the rank with the fewest batches in flight (a fast rank comes back
 * sooner and so takes more: dynamic load balancing). Plain futures go in
 * batches of up to BATCH_MAX, sized so that a batch takes about
 * BATCH_TARGET_NS on the worker (from the measured time per task); a map
 * chunk (sized by map's own estimator) is one batch. Up to DEPTH batches
 * are in flight per rank, so a rank always has its next batch queued
 * while it runs one and the message latency is hidden. (3) with nothing
 * to do, pause for an adaptive budget, then yield, then sleep on the
 * executor's futex (a submit wakes it), with a timeout while results are
 * awaited (wire.h, "waiting"). A task alone goes to the lowest idle rank.
 *
 * A worker rank that runs its items inline answers its batches in the
 * order sent, so a result from rank r is for the oldest batch in r's list;
 * a hybrid rank (local threads or processes, opts.mpi) runs several
 * batches at once and answers each when it finishes, so the answer is
 * looked up by batch number in r's short list. A hybrid rank gets as many
 * batches in flight as it has local workers, besides the DEPTH that hide
 * the latency, so every local worker has work whatever the task length.
 *
 * Ownership: a sent batch keeps its send buffer and MPI requests until its
 * answer arrives (then every request is complete: the worker has received
 * all of it). Big inputs are sent straight from the future's input or the
 * map's items (MPI_Isend, no copy); both stay alive until the item is
 * complete. Big outputs are received into a weft__out_alloc block that the
 * future or map entry keeps (no copy).
 *
 * Out of memory: a batch that cannot be packed fails its items; an
 * answer or a big output rank 0 cannot hold is still received, into the
 * scratch buffer, and dropped (wire.h), and the items concerned fail with
 * WEFT_ENOMEM. The dispatcher goes on; nothing aborts or prints.
 *
 * Cancel: a future still in the deques can be cancelled; once taken it is
 * started (RUNNING) before it is sent, so weft_future_cancel says EBUSY.
 */
#ifdef WEFT_HAVE_MPI
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/mpi/wire.h"
#include "core/exec_internal.h"

#define BATCH_MAX 64
#define BATCH_TARGET_NS 100000.0
#define BATCH_BYTES (1u << 20)
#define DEPTH 4
#define DEPTH_LONG 2
#define LONG_ITEM_NS 500000.0
#define IDLE_SPIN_NS 50000u      /* no work: pause and yield this long, then park */
#define ANSWER_SPIN_NS 20000u    /* answers awaited: pause at most this long, then yield */
#define ANSWER_YIELD_NS 1000000u /* ... yield at most this long (adaptive), then park */
#define POLL_MIN_NS 50000        /* parked: poll for answers at least 50 us apart */
#define POLL_MAX_NS 2000000      /* and at most 2 ms */
#define PACK_OOM "out of memory packing the batch for the worker rank"

typedef struct big {
    const void *p;
    size_t len;
} big;

typedef struct batch {
    struct batch *next;
    uint32_t id;
    size_t n;
    weft__rchunk *chunk; /* a map chunk, or NULL: plain futures in fs */
    weft_future **fs;
    size_t fs_cap;
    MPI_Request *reqs;
    int nreq;
    size_t req_cap;
    unsigned char *buf;
    size_t cap;
    big *bigs;
    size_t nbig, big_cap;
    uint64_t sent_ns;
} batch;

typedef struct rankq {
    batch *head, *tail;
    int n;
} rankq;

struct weft__mpi_exec {
    weft_executor *ex;
    weft__mpi_params p;
    uint32_t no;
    int tag;
    rankq *rq;
    int inflight;
    batch *free_batches;
    unsigned char *rbuf;
    size_t rcap;
    weft__ritem items[BATCH_MAX];
    void **blocks; /* big outputs of the batch being delivered */
    size_t blocks_cap;
    weft_future *pending;  /* taken, not sent yet */
    double item_ns;        /* recent time per item on the workers */
    uint32_t answer_spin;  /* pause budget while answers are awaited (wire.h) */
    uint32_t answer_yield; /* yield horizon while answers are awaited (wire.h) */
    uint32_t idle_spin;    /* pause budget while no work is queued */
    bool all_ring;         /* every rank rings rank 0's bell when it answers */
    int lanes;             /* trace rows per rank (weft__mpi_lanes_per_rank) */
    uint32_t next_batch;
    struct {
        weft_task_fn fn;
        const char *name;
    } names[8];
    unsigned nnext;
};

static _Atomic uint32_t next_exec_no;

static bool all_ring(const struct weft__mpi_exec *M);

/* ---- small helpers ---- */

static const char *name_of(struct weft__mpi_exec *M, weft_task_fn fn)
{
    for (int i = 0; i < 8; i++)
        if (M->names[i].fn == fn) return M->names[i].name;
    const char *n = weft_task_name(fn);
    if (n) {
        unsigned k = M->nnext++ % 8;
        M->names[k].fn = fn;
        M->names[k].name = n;
    }
    return n ? n : "";
}

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* Waits for one reply of `type` on M's tag from any rank: its header in
 * *h and, if msg is not NULL, its message (heap, or NULL) in *msg. A reply
 * rank 0 has no room for still comes with its header (from the scratch
 * buffer); only its message is lost. Polls without holding the lock for
 * long. */
static void wait_reply(struct weft__mpi_exec *M, uint32_t type, w_hdr *h, char **msg)
{
    uint64_t t0 = weft__now_ns();
    for (;;) {
        int flag = 0;
        MPI_Message m;
        MPI_Status st;
        pthread_mutex_lock(&weft__mpi_mu);
        MPI_Improbe(MPI_ANY_SOURCE, M->tag, weft__mpi_comm, &flag, &m, &st);
        if (flag) {
            int count = 0;
            MPI_Get_count(&st, MPI_BYTE, &count);
            int rc =
                weft__mpi_recv_msg(&m, count, st.MPI_SOURCE, M->tag, &M->rbuf, &M->rcap, h, -1);
            pthread_mutex_unlock(&weft__mpi_mu);
            if (h->type != type) continue;
            if (msg)
                *msg = rc == 0 && h->msg_len
                           ? strndup((const char *)M->rbuf + sizeof *h, h->msg_len)
                           : NULL;
            return;
        }
        pthread_mutex_unlock(&weft__mpi_mu);
        uint64_t d = weft__now_ns() - t0;
        if (d < 100000)
            weft__cpu_relax();
        else if (d < 2000000)
            sched_yield();
        else
            sleep_ns(100000);
    }
}

/* ---- open / close ---- */

static struct weft__mpi_exec **weft__exec_mpi_slot(weft_executor *ex)
{
    return &((weft__mpi_data *)weft__exec_data(ex))->M;
}

static void weft__exec_mpi_params(const weft_executor *ex, weft__mpi_params *p)
{
    const weft__mpi_data *d = weft__exec_data(ex);
    p->ranks = d->ranks;
    p->threads = d->threads;
    p->procs = d->procs;
    p->seed = ex->seed;
    p->initializer = ex->initializer;
    p->finalizer = ex->finalizer;
    p->init_in = ex->init_in;
    p->init_len = ex->init_len;
}

int weft__mpi_exec_open(weft_executor *ex, char **msg)
{
    *msg = NULL;
    weft__mpi_params p;
    weft__exec_mpi_params(ex, &p);
    struct weft__mpi_exec *M = calloc(1, sizeof *M);
    if (!M || !(M->rq = calloc((size_t)p.ranks, sizeof *M->rq))) {
        free(M);
        return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    }
    M->ex = ex;
    M->p = p;
    M->lanes = weft__mpi_lanes_per_rank(p.ranks, p.threads);
    M->answer_spin = ANSWER_SPIN_NS;
    M->answer_yield = ANSWER_YIELD_NS;
    M->idle_spin = IDLE_SPIN_NS;
    M->all_ring = all_ring(M);
    M->no = atomic_fetch_add(&next_exec_no, 1);
    M->tag = res_tag(M->no);
    *weft__exec_mpi_slot(ex) = M;
    atomic_fetch_add(&weft__mpi_live, 1);

    const char *names[2] = {p.initializer ? weft_task_name(p.initializer) : "",
                            p.finalizer ? weft_task_name(p.finalizer) : ""};
    size_t len = sizeof(w_hdr) + sizeof(w_item) + pad8(p.init_len);
    for (int i = 0; i < 2; i++) len += 8 + pad8(strlen(names[i]));
    unsigned char *buf = calloc(1, len);
    if (!buf) return weft__err(WEFT_ENOMEM, "weft_executor_create: out of memory");
    w_hdr *h = (w_hdr *)buf;
    h->type = MSG_OPEN;
    h->exec = M->no;
    h->nnames = 2;
    h->flags = (p.initializer ? OF_INIT : 0u) | (p.finalizer ? OF_FINI : 0u) |
               (p.procs ? OF_PROCESSES : 0u);
    h->seed = p.seed;
    h->threads = p.threads;
    unsigned char *q = buf + sizeof *h;
    for (int i = 0; i < 2; i++) {
        uint32_t l = (uint32_t)strlen(names[i]);
        memcpy(q, &l, sizeof l);
        memcpy(q + 8, names[i], l);
        q += 8 + pad8(l);
    }
    w_item *it = (w_item *)q;
    it->len = p.init_len;
    q += sizeof *it;
    if (p.init_len) memcpy(q, p.init_in, p.init_len);
    h->total = len;
    h->follow = pieces(len) - 1;
    pthread_mutex_lock(&weft__mpi_mu);
    for (int r = 1; r <= p.ranks; r++) weft__mpi_send_msg(buf, len, r, TAG_CMD); /* rings */
    pthread_mutex_unlock(&weft__mpi_mu);
    free(buf);

    int err = 0;
    for (int k = 0; k < p.ranks; k++) {
        w_hdr rh;
        char *m = NULL;
        wait_reply(M, MSG_OPENED, &rh, err ? NULL : &m);
        if (rh.err && !err) {
            err = rh.err;
            *msg = m;
        } else {
            free(m);
        }
    }
    return err;
}

static void batch_free(batch *b)
{
    free(b->fs);
    free(b->reqs);
    free(b->buf);
    free(b->bigs);
    free(b);
}

void weft__mpi_exec_close(weft_executor *ex)
{
    struct weft__mpi_exec *M = *weft__exec_mpi_slot(ex);
    if (!M) return;
    w_hdr h;
    memset(&h, 0, sizeof h);
    h.type = MSG_CLOSE;
    h.exec = M->no;
    h.total = sizeof h;
    pthread_mutex_lock(&weft__mpi_mu);
    for (int r = 1; r <= M->p.ranks; r++) {
        MPI_Send(&h, (int)sizeof h, MPI_BYTE, r, TAG_CMD, weft__mpi_comm);
        weft__mpi_ring(r);
    }
    pthread_mutex_unlock(&weft__mpi_mu);
    for (int k = 0; k < M->p.ranks; k++) {
        w_hdr rh;
        wait_reply(M, MSG_CLOSED, &rh, NULL);
    }
    while (M->free_batches) {
        batch *b = M->free_batches;
        M->free_batches = b->next;
        batch_free(b);
    }
    free(M->rq);
    free(M->rbuf);
    free(M->blocks);
    free(M);
    *weft__exec_mpi_slot(ex) = NULL;
    atomic_fetch_sub(&weft__mpi_live, 1);
}

/* ---- sending ---- */

static batch *batch_get(struct weft__mpi_exec *M)
{
    batch *b = M->free_batches;
    if (b) {
        M->free_batches = b->next;
    } else {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
    }
    b->next = NULL;
    b->n = 0;
    b->chunk = NULL;
    b->nreq = 0;
    b->nbig = 0;
    return b;
}

static void batch_put(struct weft__mpi_exec *M, batch *b)
{
    b->next = M->free_batches;
    M->free_batches = b;
}

/* Packs items[0..n) into b->buf; big inputs are noted in b->bigs. 0, or
 * -1 when out of memory. */
static int pack(struct weft__mpi_exec *M, batch *b, const weft__ritem *items, size_t n,
                bool stop_on_error)
{
    weft_task_fn fns[8];
    const char *nm[8];
    uint32_t nn = 0;
    /* name table: the distinct functions (a map chunk has one) */
    size_t len = sizeof(w_hdr);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = 0;
        while (k < nn && fns[k] != items[i].fn) k++;
        if (k == nn) {
            if (nn == 8) return -1; /* caller keeps batches to <= 8 functions */
            fns[nn] = items[i].fn;
            nm[nn] = name_of(M, items[i].fn);
            len += 8 + pad8(strlen(nm[nn]));
            nn++;
        }
        len += sizeof(w_item);
        if (items[i].len < BIG) len += pad8(items[i].len);
    }
    if (weft__grow_bytes(&b->buf, &b->cap, len, 4096)) return -1;
    w_hdr *h = (w_hdr *)b->buf;
    memset(h, 0, sizeof *h);
    h->type = MSG_BATCH;
    h->exec = M->no;
    h->batch = b->id = M->next_batch++;
    h->n = (uint32_t)n;
    h->nnames = nn;
    h->flags = stop_on_error ? BF_STOP_ON_ERROR : 0;
    unsigned char *q = b->buf + sizeof *h;
    for (uint32_t k = 0; k < nn; k++) {
        uint32_t l = (uint32_t)strlen(nm[k]);
        memcpy(q, &l, sizeof l);
        memset(q + 4, 0, 4);
        memcpy(q + 8, nm[k], l);
        q += 8 + pad8(l);
    }
    for (size_t i = 0; i < n; i++) {
        const weft__ritem *r = &items[i];
        w_item *it = (w_item *)q;
        uint16_t k = 0;
        while (fns[k] != r->fn) k++;
        it->index = r->index;
        it->seed = r->seed;
        it->len = r->len;
        it->retries = r->retries;
        it->fn = k;
        it->flags = 0;
        q += sizeof *it;
        if (r->len >= BIG) {
            it->flags = IF_BIG;
            if (weft__grow(&b->bigs, &b->big_cap, b->nbig + 1, sizeof *b->bigs, 8)) return -1;
            b->bigs[b->nbig++] = (big){r->in, r->len};
        } else if (r->len) {
            memcpy(q, r->in, r->len);
            size_t pl = pad8(r->len);
            if (pl > r->len) memset(q + r->len, 0, pl - r->len);
            q += pl;
        }
    }
    b->n = n;
    /* requests: one per PIECE of the batch and of each big input */
    size_t total = (size_t)(q - b->buf);
    size_t nreq = pieces(total);
    for (size_t i = 0; i < b->nbig; i++) nreq += pieces(b->bigs[i].len);
    if (nreq > INT32_MAX || weft__grow(&b->reqs, &b->req_cap, nreq, sizeof *b->reqs, 4)) return -1;
    h->total = total;
    h->follow = (uint32_t)nreq - 1;
    return 0;
}

/* Posts the sends of len bytes at p, in pieces (wire.h). */
static void isend_pieces(batch *b, const void *p, size_t len, int rank)
{
    const char *c = p;
    do {
        size_t k = len > PIECE ? PIECE : len;
        MPI_Isend(c, (int)k, MPI_BYTE, rank, TAG_CMD, weft__mpi_comm, &b->reqs[b->nreq++]);
        c += k;
        len -= k;
    } while (len);
}

static void post(struct weft__mpi_exec *M, batch *b, int rank)
{
    pthread_mutex_lock(&weft__mpi_mu);
    b->nreq = 0;
    isend_pieces(b, b->buf, ((const w_hdr *)b->buf)->total, rank);
    for (size_t i = 0; i < b->nbig; i++) isend_pieces(b, b->bigs[i].p, b->bigs[i].len, rank);
    pthread_mutex_unlock(&weft__mpi_mu);
    weft__mpi_ring(rank);
    b->sent_ns = weft__now_ns();
    rankq *q = &M->rq[rank - 1];
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->n++;
    M->inflight++;
}

/* Hands item i's result to its map chunk or future. */
static void deliver(struct weft__mpi_exec *M, batch *b, size_t i, int lane, const weft__rres *r)
{
    if (b->chunk)
        weft__map_chunk_item(b->chunk, i, r);
    else
        weft__exec_complete_remote(M->ex, lane, b->fs[i], r);
}

/* Every item of b has its result: closes the chunk or counts the futures
 * finished, puts b back. */
static void batch_done(struct weft__mpi_exec *M, batch *b, size_t n, int lane)
{
    if (b->chunk) {
        weft__map_chunk_close(b->chunk, lane);
        weft__exec_finished(M->ex, 1);
    } else {
        weft__exec_finished(M->ex, (int64_t)n);
    }
    batch_put(M, b);
}

/* Fails the n items of batch b with err and msg (out of memory: the batch
 * could not be sent, or its answer not held) and puts b back. */
static void fail_items(struct weft__mpi_exec *M, batch *b, size_t n, int lane, int err,
                       const char *msg)
{
    weft__rres r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.msg = msg;
    r.t0 = r.t1 = weft__now_ns();
    for (size_t i = 0; i < n; i++) deliver(M, b, i, lane, &r);
    batch_done(M, b, n, lane);
}

static int batch_max(const struct weft__mpi_exec *M)
{
    if (M->item_ns <= 0) return 1; /* unknown yet: a long task must not hold up others */
    double m = BATCH_TARGET_NS / M->item_ns;
    return m >= BATCH_MAX ? BATCH_MAX : m < 1 ? 1 : (int)m;
}

/* Sends the next work to `rank`. Returns false if there was none. */
static bool send_next(struct weft__mpi_exec *M, int rank)
{
    weft_executor *ex = M->ex;
    int lane = rank - 1;
    weft_future *f = M->pending ? M->pending : weft__exec_take(ex);
    M->pending = NULL;
    if (!f) return false;
    batch *b = batch_get(M);
    if (!b) { /* out of memory: keep it for later */
        M->pending = f;
        return false;
    }
    if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) {
        weft__ritem *items;
        size_t n;
        bool soe;
        b->chunk = weft__map_chunk_open(f, &items, &n, &soe);
        if (!b->chunk) { /* cancelled or failed: already back with its map */
            batch_put(M, b);
            weft__exec_finished(ex, 1);
            return true;
        }
        int rc = pack(M, b, items, n, soe);
        free(items);
        if (rc) {
            fail_items(M, b, n, lane, WEFT_ENOMEM, PACK_OOM);
            return true;
        }
        post(M, b, rank);
        return true;
    }
    int max = batch_max(M);
    size_t n = 0, bytes = 0;
    if (b->fs_cap < BATCH_MAX) {
        weft_future **fs = realloc(b->fs, BATCH_MAX * sizeof *fs);
        if (!fs) {
            M->pending = f;
            batch_put(M, b);
            return false;
        }
        b->fs = fs;
        b->fs_cap = BATCH_MAX;
    }
    weft_task_fn fns[8];
    int nfns = 0;
    for (;;) {
        /* at most 8 distinct functions per batch (the name table) */
        int k = 0;
        while (k < nfns && fns[k] != f->fn) k++;
        if (k == nfns && nfns == 8) {
            M->pending = f;
            break;
        }
        if (weft__exec_start_remote(ex, f, lane, &M->items[n])) {
            if (k == nfns) fns[nfns++] = f->fn;
            b->fs[n] = f;
            bytes += M->items[n].len;
            n++;
        } else {
            weft__exec_finished(ex, 1); /* cancelled while queued */
        }
        if ((int)n >= max || bytes >= BATCH_BYTES) break;
        f = weft__exec_take(ex);
        if (!f) break;
        if (atomic_load_explicit(&f->state, memory_order_relaxed) & WEFT__ST_INTERNAL) {
            M->pending = f; /* a map chunk goes alone */
            break;
        }
    }
    if (n == 0) {
        batch_put(M, b);
        return true;
    }
    if (pack(M, b, M->items, n, false)) {
        fail_items(M, b, n, lane, WEFT_ENOMEM, PACK_OOM);
        return true;
    }
    post(M, b, rank);
    return true;
}

/* The worker rank with room and the fewest batches in flight, or -1. */
static int pick_rank(struct weft__mpi_exec *M)
{
    /* a hybrid rank runs as many batches at once as it has local workers:
     * it needs that many in flight besides the queued ones that hide the
     * message latency */
    int extra = M->p.threads - 1;
    int depth = M->item_ns > LONG_ITEM_NS ? DEPTH_LONG + extra : DEPTH + 2 * extra;
    /* ties go to the lowest rank, not round robin: one task at a time keeps
     * one rank busy and lets the others go to sleep, instead of keeping them
     * all spinning on cores the round trip needs (wire.h, "waiting") */
    int best = -1, best_n = depth;
    int R = M->p.ranks;
    for (int i = 0; i < R; i++) {
        if (M->rq[i].n < best_n) {
            best = i;
            best_n = M->rq[i].n;
            if (best_n == 0) break;
        }
    }
    return best < 0 ? -1 : best + 1;
}

/* ---- receiving ---- */

/* Receives the big outputs that follow a held answer (records at p), in
 * item order: into blocks[i] (a block rank 0 cannot allocate is left NULL
 * and its output dropped), or all dropped when blocks is NULL. */
static void recv_outputs(struct weft__mpi_exec *M, const unsigned char *p, size_t n, int src,
                         void **blocks)
{
    for (size_t i = 0; i < n; i++) {
        const w_res *r = (const w_res *)p;
        p += sizeof *r;
        void *blk = NULL;
        if (r->flags & IF_BIG) {
            if (blocks && !weft__mpi_fault(WEFT__MPI_FAULT_OUTPUT))
                blk = weft__out_alloc(r->out_len);
            weft__mpi_recv_big(blk, r->out_len, src, M->tag); /* NULL: dropped */
        } else {
            p += pad8(r->out_len);
        }
        p += pad8(r->msg_len);
        if (blocks) blocks[i] = blk;
    }
}

/* Receives one answer, if one is there, and completes its batch. Every
 * message that belongs to the answer is received even when rank 0 has no
 * room for it (wire.h): then the batch's items fail with WEFT_ENOMEM. */
static bool poll_one(struct weft__mpi_exec *M)
{
    int flag = 0;
    MPI_Message m;
    MPI_Status st;
    pthread_mutex_lock(&weft__mpi_mu);
    MPI_Improbe(MPI_ANY_SOURCE, M->tag, weft__mpi_comm, &flag, &m, &st);
    if (!flag) {
        pthread_mutex_unlock(&weft__mpi_mu);
        return false;
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    int src = st.MPI_SOURCE;
    w_hdr h;
    bool held = weft__mpi_recv_msg(&m, count, src, M->tag, &M->rbuf, &M->rcap, &h,
                                   WEFT__MPI_FAULT_RESULT) == 0;
    rankq *q = &M->rq[src - 1];
    /* the oldest batch in flight, unless the rank runs its items on local
     * workers: then batches finish in any order (wire.h) */
    batch *b = q->head, *prev = NULL;
    while (b && b->id != h.batch) {
        prev = b;
        b = b->next;
    }
    size_t n = h.n;
    bool failed = (h.flags & RF_FAILED) != 0;
    if (h.type != MSG_RESULT || !b || (!failed && n != b->n)) {
        /* cannot happen (a rank answers only batches it was sent): dropped,
         * with what follows it */
        if (held) weft__mpi_drain(src, M->tag, h.follow - (pieces(h.total) - 1));
        pthread_mutex_unlock(&weft__mpi_mu);
        return true;
    }
    const unsigned char *p = M->rbuf + sizeof h;
    char why[256];
    int err = 0;
    if (!held) {
        err = WEFT_ENOMEM;
        snprintf(why, sizeof why,
                 "rank 0 is out of memory for the answer of the batch (%llu bytes from rank %d)",
                 (unsigned long long)h.total, src);
    } else if (failed) {
        err = h.err < 0 ? h.err : WEFT_ENOMEM;
        snprintf(why, sizeof why, "%.*s", (int)h.msg_len, (const char *)p);
    } else if (weft__grow(&M->blocks, &M->blocks_cap, n, sizeof *M->blocks, 64)) {
        recv_outputs(M, p, n, src, NULL);
        err = WEFT_ENOMEM;
        snprintf(why, sizeof why, "rank 0 is out of memory for the outputs of the batch");
    } else {
        recv_outputs(M, p, n, src, M->blocks);
    }
    MPI_Waitall(b->nreq, b->reqs, MPI_STATUSES_IGNORE);
    pthread_mutex_unlock(&weft__mpi_mu);

    if (prev)
        prev->next = b->next;
    else
        q->head = b->next;
    if (q->tail == b) q->tail = prev;
    q->n--;
    M->inflight--;
    int lane = (src - 1) * M->lanes; /* the rank's first trace row */
    if (err) {
        fail_items(M, b, b->n, lane, err, why);
        return true;
    }

    uint64_t now = weft__now_ns();
    bool same = weft__mpi_same_host && weft__mpi_same_host[src];
    int first_lane = lane;
    double busy = 0;
    for (size_t i = 0; i < n; i++) {
        const w_res *r = (const w_res *)p;
        p += sizeof *r;
        int item_lane = lane + (r->sub < (uint32_t)M->lanes ? (int)r->sub : 0);
        if (i == 0) first_lane = item_lane;
        weft__rres res;
        res.err = r->err;
        res.remote = 0;
        res.pid = 0;
        res.out_len = r->out_len;
        res.take = NULL;
        if (r->flags & IF_BIG) {
            res.out = M->blocks[i];
            res.take = &M->blocks[i];
            if (!res.out) {
                res.err = WEFT_ENOMEM;
                res.out_len = 0;
            }
        } else {
            res.out = r->out_len ? p : NULL;
            p += pad8(r->out_len);
        }
        res.msg = NULL;
        char *msg = NULL, oom[96];
        if ((r->flags & IF_BIG) && !res.out) {
            snprintf(oom, sizeof oom, "rank 0 cannot allocate %llu bytes for the task's output",
                     (unsigned long long)r->out_len);
            res.msg = oom;
        } else if (r->msg_len) {
            msg = strndup((const char *)p, r->msg_len);
            res.msg = msg ? msg : "(message lost: out of memory)";
        }
        p += pad8(r->msg_len);
        busy += (double)(r->t1 - r->t0);
        res.t0 = same ? r->t0 : b->sent_ns;
        res.t1 = same ? r->t1 : now;
        deliver(M, b, i, item_lane, &res);
        if (M->blocks[i]) weft__out_free(M->blocks[i]); /* not kept */
        free(msg);
    }
    double per = busy / (double)(n ? n : 1);
    if (per < 1) per = 1;
    M->item_ns = M->item_ns > 0 ? 0.7 * M->item_ns + 0.3 * per : per;
    batch_done(M, b, n, first_lane);
    return true;
}

/* ---- the loop ---- */

/* True when every worker rank of M has mapped rank 0's bells (wire.h):
 * each rings rank 0's bell after it answers. */
static bool all_ring(const struct weft__mpi_exec *M)
{
    if (!weft__mpi_bells) return false;
    for (int r = 1; r <= M->p.ranks; r++)
        if (!__atomic_load_n(&weft__mpi_bells[r].mapped, __ATOMIC_SEQ_CST)) return false;
    return true;
}

/* Every rank is full and more work is queued: only an answer can change
 * anything, so sleep on rank 0's bell until a rank rings it (or timeout).
 * Dekker with weft__mpi_ring: announce the sleeper, then look. */
static void sleep_on_bell(struct weft__mpi_exec *M, int64_t timeout_ns)
{
    w_bell *b = &weft__mpi_bells[0];
    uint32_t seq = __atomic_load_n(&b->seq, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&b->sleeping, 1, __ATOMIC_SEQ_CST);
    int flag = 0;
    pthread_mutex_lock(&weft__mpi_mu);
    MPI_Iprobe(MPI_ANY_SOURCE, M->tag, weft__mpi_comm, &flag, MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&weft__mpi_mu);
    if (!flag) weft__futex_wait_ex(&b->seq, seq, timeout_ns, true);
    __atomic_sub_fetch(&b->sleeping, 1, __ATOMIC_SEQ_CST);
}

/* How long the dispatcher parks between two polls for answers, d ns into
 * the wait: half the wait so far (a backoff, so an answer that comes soon
 * is taken soon), at most 1/32 of the recent time per item (an answer
 * waits on rank 0 for at most ~3% of a task), between POLL_MIN_NS and
 * POLL_MAX_NS. Before the first answer (no time per item yet): 50 us until
 * 20 ms, then 500 us. */
static int64_t poll_interval(const struct weft__mpi_exec *M, uint64_t d)
{
    double cap = M->item_ns > 0 ? M->item_ns / 32 : d < 20000000 ? POLL_MIN_NS : 500000;
    if (cap > POLL_MAX_NS) cap = POLL_MAX_NS;
    double iv = (double)d / 2 < cap ? (double)d / 2 : cap;
    return iv < POLL_MIN_NS ? POLL_MIN_NS : (int64_t)iv;
}

void weft__mpi_dispatch(weft_executor *ex)
{
    struct weft__mpi_exec *M = *weft__exec_mpi_slot(ex);
    uint64_t wait_t0 = 0;
    for (;;) {
        bool did = false, got = false;
        while (M->inflight && poll_one(M)) did = got = true;
        if (got && wait_t0) {
            uint64_t waited = weft__now_ns() - wait_t0;
            spin_adapt(&M->answer_spin, waited, ANSWER_SPIN_NS);
            horizon_adapt(&M->answer_yield, waited, ANSWER_YIELD_NS);
        }
        for (int r; (r = pick_rank(M)) > 0;) {
            if (!send_next(M, r)) break;
            did = true;
        }
        if (did) {
            wait_t0 = 0;
            continue;
        }
        if (!M->inflight && !M->pending) {
            if (weft__exec_stopping(ex)) break;
            /* idle: spin a moment (the next submit is often close: pause,
             * then yield, wire.h), then sleep until a submit wakes us */
            uint64_t t0 = weft__now_ns(), d = 0;
            weft_future *f = NULL;
            for (unsigned i = 1;; i++) {
                if ((f = weft__exec_take(ex))) break;
                if (d >= M->idle_spin || (i & 15) == 0) d = weft__now_ns() - t0;
                if (d > IDLE_SPIN_NS) break;
                if (d < M->idle_spin)
                    weft__cpu_relax();
                else
                    sched_yield();
            }
            spin_adapt(&M->idle_spin, f ? weft__now_ns() - t0 : UINT64_MAX, IDLE_SPIN_NS);
            if (!f) f = weft__exec_idle(ex, 100000000);
            M->pending = f;
            continue;
        }
        /* results awaited */
        uint64_t now = weft__now_ns();
        if (!wait_t0) wait_t0 = now;
        uint64_t d = now - wait_t0;
        if (d < M->answer_spin) {
            weft__cpu_relax();
        } else if (d < M->answer_yield) {
            sched_yield();
        } else if (M->pending && M->all_ring) {
            sleep_on_bell(M, 100000000); /* 100 ms: a safety net */
        } else if (M->pending) {
            sleep_ns(poll_interval(M, d));
        } else {
            weft_future *f = weft__exec_idle(ex, poll_interval(M, d));
            if (f) M->pending = f;
        }
    }
}

#endif

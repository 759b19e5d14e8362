/* worker.c : the loop of a worker rank (ranks 1..n-1) of the mpi backend.
 *
 * One thread, the rank's main thread, makes every MPI call: it waits for a
 * command from rank 0 (MPI_Improbe), receives it whole (MPI_Mrecv into a
 * buffer kept between commands) and answers each batch with one RESULT
 * message (plus one message per big output, sent straight from the task's
 * output block).
 *
 * State per executor (OPEN .. CLOSE): the initializer's output, the
 * finalizer, and in hybrid mode a local executor of k workers:
 *
 * - inline (k = 1, threads): the main thread runs a batch's items in order
 *   and answers it; batches are answered in the order sent.
 * - ranks x threads (k > 1): a batch goes to the local threads executor as
 *   min(n, k) runner tasks that take its items one by one from a shared
 *   counter, so every thread is busy whatever the task length and however
 *   many items a batch holds; the main thread goes back to MPI at once and
 *   takes the next batch while these run. The last runner to leave a batch
 *   pushes it on the done stack; the main thread answers it. Batches thus
 *   finish, and are answered, in any order (rank 0 finds them by number).
 * - ranks x processes: each item is a future of a local processes executor
 *   (the rank's worker processes, forked by the fork server weft_init
 *   started on this rank before MPI_Init). The future runs "weft.mpi.item"
 *   in a worker process, which runs the task in a context with the item's
 *   own index, seed and retries and sends back a framed result (the task's
 *   code, message, times and output). A task that crashes kills only its
 *   worker process: its future fails with WEFT_ECRASHED, the processes
 *   backend replaces the process, the rank goes on. The futures' on_done
 *   callbacks count the batch down and push it on the done stack.
 *
 * The worker id a task sees is rank - 1 in every mode.
 *
 * Waking the main thread: the done stack is a lock-free stack; pushing it
 * bumps the main thread's bell and wakes it with a futex only if it sleeps
 * there (bell->sleeping; seq_cst on both sides, so either the main thread
 * sees the batch or the pusher sees it sleeping). On rank 0's host the
 * bell is the rank's shared one (wire.h), which rank 0 also rings after
 * it sends a command: there the main thread never polls MPI on a timer --
 * it sleeps until a batch is done or a command comes (100 ms at most, a
 * safety net), so neither an idle rank nor a busy hybrid one takes a core.
 * A rank on another host has a private bell and polls: while local work
 * runs, every 1 ms while the local workers have more items than workers
 * (x->left > threads: one at least waits, so no worker runs out of work
 * before the item that empties the queue, which wakes the main thread:
 * local_item_done), else after a 20 us spin with a timeout that grows from
 * 50 us to 1 ms. With nothing out, every rank polls MPI_Improbe pausing
 * for an adaptive budget (at most 50 us, wire.h "waiting"), then yielding
 * until 5 ms; then a rank with a shared bell sleeps on it, one without
 * sleeps in 50 us (later 1 ms) steps.
 *
 * Out of memory: nothing aborts. A command or big input the rank cannot
 * hold is received into the scratch buffer and dropped (wire.h); the items
 * concerned fail with WEFT_ENOMEM, a whole batch through a header-only
 * RF_FAILED answer that needs no allocation (reply()).
 *
 * A task that crashes the rank (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
 * in the inline or threads modes is named on stderr by an async-signal-safe
 * handler before the default action ends the process; mpirun then aborts
 * the whole job (Open MPI's default when a rank dies): MPI has no way to
 * replace a rank. Ranks x processes is the mode where it fails alone.
 */
#ifdef WEFT_HAVE_MPI
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/mpi/wire.h"

#define CMD_SPIN_NS 50000u       /* longest pause spin for a command (wire.h, "waiting") */
#define BUSY_POLL_NS 1000000     /* every local worker busy, more queued: poll MPI this often */
#define BELL_SAFETY_NS 100000000 /* a rank with a bell: sleeps this long at most */

typedef struct wexec {
    uint32_t no;
    int tag;
    weft_task_fn finalizer;
    void *state; /* initializer output (weft__out_alloc block) or NULL */
    size_t state_len;
    int threads;
    bool procs;           /* ranks x processes */
    weft_executor *local; /* hybrid: the local threads or processes executor */
    _Atomic long left;    /* hybrid: items handed to the local workers, not finished */
    struct wexec *next;
} wexec;

/* One item's result while its batch runs. */
typedef struct slot {
    int err;
    uint32_t sub; /* the local worker that ran it */
    void *out;    /* into inl, a heap block, or (processes) a future's output */
    size_t out_len;
    bool out_heap;
    char *msg;
    uint64_t t0, t1;
    unsigned char inl[64] __attribute__((aligned(16)));
} slot;

/* A batch from its command to its answer. */
typedef struct wbatch {
    wexec *x;
    w_hdr h;
    size_t n;
    unsigned char *cmd; /* hybrid: the command's buffer (items and inputs point into it) */
    size_t cmd_cap;
    const w_item **items;
    const void **ins;
    void **bigs; /* big inputs (malloc'd) */
    weft_task_fn *fns;
    const char **names;
    weft_task_fn fns_small[8];
    const char *names_small[8];
    slot *slots;        /* inline: the rank's shared table (islots); else its own */
    weft_future **futs; /* ranks x processes: an item's future, or NULL */
    bool stop_on_error;
    bool cancelled; /* processes: the rest was cancelled after a failure */
    _Atomic int stop;
    _Atomic size_t next;      /* threads: the next item a runner takes */
    _Atomic long pending;     /* threads: runners on it; processes: items not finished */
    struct wbatch *done_next; /* on the done stack */
    struct wbatch *out_next;  /* on the main thread's list of batches out */
} wbatch;

static wexec *execs;
/* the slots of inline batches, kept between them (one runs at a time) */
static slot *islots;
static size_t islots_cap;
static unsigned char *rbuf, *sbuf;
static size_t rcap, scap;
/* command buffers of answered hybrid batches, for the next commands */
static struct {
    unsigned char *p;
    size_t cap;
} pool[8];
static int npool;

/* batches on local workers: pushed by the thread that finishes them,
 * popped and answered by the main thread */
static _Atomic(wbatch *) done_head;
/* what the main thread sleeps on: the rank's bell, shared with rank 0
 * (wire.h), or own_bell when the rank has none (then it polls MPI) */
static w_bell own_bell;
static w_bell *bell = &own_bell;
static bool bell_shared;
static _Atomic int stop_asked; /* processes: a batch wants its rest cancelled */
static wbatch *out_head;       /* main thread only */
static size_t nout;

/* ---- crash report ---- */

static const char *volatile cur_name;
static volatile uint64_t cur_index;
static volatile int cur_running;

static size_t put_str(char *b, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap) b[at++] = *s++;
    return at;
}

static size_t put_u64(char *b, size_t at, size_t cap, uint64_t v)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap) b[at++] = d[--n];
    return at;
}

/* The crash note (backends/remote/crash.c): names the rank, the signal and
 * the task on stderr before MPI ends the job. */
static void crash_note(int sig, int err)
{
    (void)err;
    char b[512];
    size_t k = 0;
    k = put_str(b, k, sizeof b, "weft: rank ");
    k = put_u64(b, k, sizeof b, (uint64_t)weft__mpi_rank);
    k = put_str(b, k, sizeof b, " died of signal ");
    k = put_u64(b, k, sizeof b, (uint64_t)sig);
    if (cur_running) {
        k = put_str(b, k, sizeof b, " while running task '");
        k = put_str(b, k, sizeof b, cur_name ? cur_name : "?");
        k = put_str(b, k, sizeof b, "' (index ");
        k = put_u64(b, k, sizeof b, cur_index);
        k = put_str(b, k, sizeof b, ")");
    }
    k = put_str(b, k, sizeof b, "; MPI will end the job\n");
    ssize_t unused = write(2, b, k);
    (void)unused;
}

/* ---- helpers ---- */

/* Name -> function, cached: a batch names its functions, usually one. */
static struct {
    char name[128];
    weft_task_fn fn;
    const char *stable; /* the registry's copy, for crash reports */
} fcache[16];
static unsigned fcache_next;

static weft_task_fn find_fn(const char *name, size_t len, const char **stable)
{
    for (int i = 0; i < 16; i++)
        if (fcache[i].fn && strlen(fcache[i].name) == len &&
            memcmp(fcache[i].name, name, len) == 0) {
            *stable = fcache[i].stable;
            return fcache[i].fn;
        }
    char tmp[1024];
    if (len >= sizeof tmp) return NULL;
    memcpy(tmp, name, len);
    tmp[len] = 0;
    weft_task_fn fn = NULL;
    if (weft_task_lookup(tmp, &fn) != 0) return NULL;
    *stable = weft_task_name(fn);
    if (len < sizeof fcache[0].name) {
        unsigned k = fcache_next++ % 16;
        memcpy(fcache[k].name, tmp, len + 1);
        fcache[k].fn = fn;
        fcache[k].stable = *stable;
    }
    return fn;
}

static wexec *find_exec(uint32_t no)
{
    for (wexec *x = execs; x; x = x->next)
        if (x->no == no) return x;
    return NULL;
}

/* Sends rank 0 a header-only answer (OPENED, CLOSED, or a RESULT with
 * RF_FAILED) with err and a message of at most 511 bytes. Needs no memory:
 * what a rank out of memory still can say. */
static void reply(int tag, uint32_t type, const w_hdr *cmd, uint32_t flags, int err,
                  const char *msg)
{
    struct {
        w_hdr h;
        char m[512];
    } a;
    size_t ml = msg ? strnlen(msg, sizeof a.m - 1) : 0;
    memset(&a.h, 0, sizeof a.h);
    a.h.type = type;
    a.h.exec = cmd->exec;
    a.h.batch = cmd->batch;
    a.h.n = cmd->n;
    a.h.flags = flags;
    a.h.err = err;
    a.h.msg_len = (uint32_t)ml;
    a.h.rank = weft__mpi_rank;
    a.h.total = sizeof a.h + ml;
    if (ml) memcpy(a.m, msg, ml);
    weft__mpi_send_msg(&a, (size_t)a.h.total, 0, tag); /* rings rank 0's bell */
}

/* Fails a whole batch: every item gets err (rank 0 fills in the records). */
static void fail_batch(const w_hdr *h, int err, const char *why)
{
    char m[256];
    snprintf(m, sizeof m, "worker rank %d: %s", weft__mpi_rank, why);
    reply(res_tag(h->exec), MSG_RESULT, h, RF_FAILED, err, m);
}

/* Receives and drops the big inputs of a batch not run (items at p). */
static void drain_inputs(const w_hdr *h, const unsigned char *p)
{
    for (uint32_t i = 0; i < h->nnames; i++) {
        uint32_t len;
        memcpy(&len, p, sizeof len);
        p += 8 + pad8(len);
    }
    for (uint32_t i = 0; i < h->n; i++) {
        const w_item *it = (const w_item *)p;
        p += sizeof *it;
        if (it->flags & IF_BIG)
            weft__mpi_recv_big(NULL, it->len, 0, TAG_CMD);
        else
            p += pad8(it->len);
    }
}

/* Parses the name table at p; fills fns/names (n entries). Returns the
 * position after it. */
static const unsigned char *parse_names(const unsigned char *p, uint32_t n, weft_task_fn *fns,
                                        const char **names)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        memcpy(&len, p, sizeof len);
        const char *s = (const char *)p + 8;
        fns[i] = len ? find_fn(s, len, &names[i]) : NULL;
        if (!fns[i]) names[i] = NULL;
        p += 8 + pad8(len);
    }
    return p;
}

/* ---- running items ---- */

/* Fills slot s for an item that cannot run: its big input found no room
 * here, or its function is not registered. True if so. */
static bool item_unrunnable(wbatch *b, size_t i, slot *s)
{
    const w_item *it = b->items[i];
    weft_task_fn fn = it->fn < b->h.nnames ? b->fns[it->fn] : NULL;
    if (!b->ins[i]) {
        s->err = WEFT_ENOMEM;
        s->msg = weft__asprintf("worker rank %d cannot allocate %llu bytes for the task's input",
                                weft__mpi_rank, (unsigned long long)it->len);
        if (b->stop_on_error) atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
        return true;
    }
    if (!fn) {
        s->err = WEFT_ENOTREG;
        s->msg = strdup("the task is not registered under its name on this worker rank (is it "
                        "the same program?)");
        return true;
    }
    return false;
}

static void slot_clear(slot *s)
{
    s->out = NULL;
    s->out_len = 0;
    s->out_heap = false;
    s->msg = NULL;
    s->sub = 0;
    s->t0 = s->t1 = weft__now_ns();
}

/* Runs item i of b on this thread (inline, or a runner of ranks x threads). */
static void run_item(wbatch *b, size_t i)
{
    slot *s = &b->slots[i];
    const w_item *it = b->items[i];
    slot_clear(s);
    if (b->stop_on_error && atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        s->err = WEFT_ECANCELLED;
        return;
    }
    if (item_unrunnable(b, i, s)) return;
    weft_task_fn fn = b->fns[it->fn];
    weft_ctx ctx;
    weft__ctx_init(&ctx, NULL, weft__mpi_rank - 1, b->x->state, b->x->state_len);
    weft__ctx_item(&ctx, it->index, it->seed, s->inl, sizeof s->inl);
    if (!b->x->local) {
        cur_name = b->names[it->fn];
        cur_index = it->index;
        cur_running = 1;
    }
    s->err = weft__ctx_run(&ctx, fn, b->ins[i], it->len, it->retries);
    if (!b->x->local) cur_running = 0;
    s->t1 = weft__now_ns();
    if (s->err == 0) {
        s->out = ctx.out ? ctx.out : s->inl;
        s->out_len = ctx.out_len;
        s->out_heap = ctx.out_heap;
    } else {
        if (ctx.out_heap) weft__out_free(ctx.out);
        s->msg = ctx.msg;
        if (b->stop_on_error) atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
    }
}

/* Wakes the main thread if it sleeps on its bell (see the top). */
static void notify_main(void)
{
    __atomic_add_fetch(&bell->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&bell->sleeping, __ATOMIC_SEQ_CST))
        weft__futex_wake_ex(&bell->seq, 1, bell_shared);
}

/* Any thread: b's last item finished; the main thread answers it. */
static void batch_finished(wbatch *b)
{
    wbatch *h = atomic_load_explicit(&done_head, memory_order_relaxed);
    do {
        b->done_next = h;
    } while (!atomic_compare_exchange_weak_explicit(&done_head, &h, b, memory_order_seq_cst,
                                                    memory_order_relaxed));
    notify_main();
}

/* Any thread: one item handed to x's local workers finished. Once no
 * more items wait for a local worker, the main thread must poll MPI at its
 * quick pace again (a worker may run out of work): it is woken. */
static void local_item_done(wexec *x)
{
    if (atomic_fetch_sub_explicit(&x->left, 1, memory_order_relaxed) - 1 <= x->threads &&
        !bell_shared) /* with a shared bell it does not poll: rank 0 rings */
        notify_main();
}

/* Main thread: true when every executor with local work has more items
 * than local workers, so that none of its workers can run out of work
 * before local_item_done wakes the main thread. */
static bool local_saturated(void)
{
    bool any = false;
    for (wexec *x = execs; x; x = x->next) {
        long l = atomic_load_explicit(&x->left, memory_order_relaxed);
        if (l == 0) continue;
        if (l <= x->threads) return false;
        any = true;
    }
    return any;
}

/* ranks x threads: a runner takes b's items one by one until none is left.
 * The last runner to leave hands b to the main thread; after that no
 * runner touches b. */
static void runner_loop(wbatch *b, uint32_t sub)
{
    wexec *x = b->x;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        if (i >= b->n) break;
        run_item(b, i);
        b->slots[i].sub = sub;
        local_item_done(x);
    }
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) batch_finished(b);
}

static int hyb_runner(weft_ctx *ctx, const void *in, size_t len)
{
    wbatch *b;
    if (len != sizeof b) return WEFT_EINVAL;
    memcpy(&b, in, sizeof b);
    runner_loop(b, (uint32_t)weft_ctx_worker(ctx));
    return 0;
}

static void start_threads(wbatch *b)
{
    size_t k = (size_t)b->x->threads < b->n ? (size_t)b->x->threads : b->n;
    atomic_fetch_add_explicit(&b->x->left, (long)b->n, memory_order_relaxed);
    atomic_store_explicit(&b->next, 0, memory_order_relaxed);
    atomic_store_explicit(&b->pending, (long)k, memory_order_relaxed);
    for (size_t r = 0; r < k; r++) {
        weft_future *f;
        if (weft_submit(b->x->local, hyb_runner, &b, sizeof b, &f) == 0) {
            weft_future_release(f); /* runs all the same */
        } else {
            runner_loop(b, 0); /* out of memory: this thread runs what is left */
        }
    }
}

/* ---- ranks x processes ---- */

/* The input of "weft.mpi.item": this header, the task's name (padded to
 * 8), then the task's input. */
typedef struct p_item {
    uint64_t index, seed;
    int32_t retries, worker;
    uint32_t name_len, pad;
} p_item;

/* Its output: this header, the message (padded to 8), the task's output. */
typedef struct p_res {
    int32_t err;
    uint32_t sub;
    uint64_t t0, t1;
    uint64_t out_len;
    uint32_t msg_len, pad;
} p_res;

/* Runs in a worker process of the rank: the item's task in a context of
 * its own index, seed and worker id, with the process's worker state. */
static int proc_item(weft_ctx *outer, const void *in, size_t len)
{
    p_item h;
    if (len < sizeof h) return weft_ctx_fail(outer, WEFT_EINVAL, "weft.mpi.item: short input");
    memcpy(&h, in, sizeof h);
    size_t at = sizeof h + pad8(h.name_len);
    if (at > len || h.name_len >= 1024)
        return weft_ctx_fail(outer, WEFT_EINVAL, "weft.mpi.item: bad input");
    char name[1024];
    memcpy(name, (const char *)in + sizeof h, h.name_len);
    name[h.name_len] = 0;
    weft_task_fn fn = NULL;
    const void *data = (const unsigned char *)in + at;
    size_t dlen = len - at;
    size_t sl = 0;
    const void *st = weft_ctx_worker_state(outer, &sl);
    weft_ctx ctx;
    unsigned char inl[64] __attribute__((aligned(16)));
    weft__ctx_init(&ctx, NULL, h.worker, st, sl);
    weft__ctx_item(&ctx, h.index, h.seed, inl, sizeof inl);
    uint64_t t0 = weft__now_ns();
    int err = weft_task_lookup(name, &fn) == 0 ? weft__ctx_run(&ctx, fn, data, dlen, h.retries)
                                               : WEFT_ENOTREG;
    uint64_t t1 = weft__now_ns();
    const char *msg = err ? ctx.msg : NULL;
    if (err == WEFT_ENOTREG && !fn) msg = "the task is not registered in the rank's worker process";
    size_t ml = msg ? strlen(msg) : 0;
    size_t ol = err == 0 ? ctx.out_len : 0;
    const void *o = ctx.out ? ctx.out : inl;
    unsigned char *fr = weft_ctx_output(outer, sizeof(p_res) + pad8(ml) + ol);
    if (fr) {
        p_res r = {err, (uint32_t)weft_ctx_worker(outer), t0, t1, ol, (uint32_t)ml, 0};
        memcpy(fr, &r, sizeof r);
        if (ml) memcpy(fr + sizeof r, msg, ml);
        if (ol) memcpy(fr + sizeof r + pad8(ml), o, ol);
    }
    if (ctx.out_heap) weft__out_free(ctx.out);
    free(ctx.msg);
    return fr ? 0 : weft_ctx_fail(outer, WEFT_ENOMEM, "weft.mpi.item: out of memory");
}
WEFT_TASK_REGISTER_AS(proc_item, "weft.mpi.item");

/* A future of b finished (any thread). */
static void proc_done(weft_future *f, void *arg)
{
    wbatch *b = arg;
    if (b->stop_on_error && !atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        bool failed = weft_future_state_get(f) == WEFT_FUTURE_FAILED;
        const void *d;
        size_t len;
        if (!failed && weft_future_result(f, 0, &d, &len) == 0 && len >= sizeof(p_res)) {
            int32_t e;
            memcpy(&e, d, sizeof e);
            failed = e != 0;
        }
        if (failed) {
            atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
            atomic_store_explicit(&stop_asked, 1, memory_order_relaxed);
            notify_main();
        }
    }
    local_item_done(b->x);
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) batch_finished(b);
}

/* Submits item i of b to the rank's worker processes; false if it could
 * not (then its slot says why). */
static bool proc_submit(wbatch *b, size_t i)
{
    const w_item *it = b->items[i];
    slot *s = &b->slots[i];
    const char *name = b->names[it->fn];
    size_t nl = strlen(name);
    size_t at = sizeof(p_item) + pad8(nl);
    unsigned char *buf = malloc(at + it->len);
    if (!buf) {
        s->err = WEFT_ENOMEM;
        s->msg =
            weft__asprintf("worker rank %d: out of memory for the task's input", weft__mpi_rank);
        return false;
    }
    p_item h = {it->index, it->seed, it->retries, weft__mpi_rank - 1, (uint32_t)nl, 0};
    memcpy(buf, &h, sizeof h);
    memset(buf + sizeof h, 0, pad8(nl));
    memcpy(buf + sizeof h, name, nl);
    if (it->len) memcpy(buf + at, b->ins[i], it->len);
    weft_submit_options so = {.size = sizeof so, .has_index = true, .index = it->index};
    int rc = weft_submit_ex(b->x->local, proc_item, buf, at + it->len, &so, &b->futs[i]);
    free(buf);
    if (rc == 0) rc = weft_future_on_done(b->futs[i], proc_done, b);
    if (rc) {
        s->err = rc;
        s->msg = weft__asprintf("worker rank %d: %s", weft__mpi_rank, weft_last_error());
        if (b->futs[i]) { /* no callback: it must not count */
            weft_future_cancel(b->futs[i]);
            weft_future_release(b->futs[i]);
            b->futs[i] = NULL;
        }
        return false;
    }
    return true;
}

static void start_procs(wbatch *b)
{
    atomic_store_explicit(&b->pending, (long)b->n + 1, memory_order_relaxed);
    for (size_t i = 0; i < b->n; i++) {
        slot *s = &b->slots[i];
        slot_clear(s);
        s->err = 0;
        bool stopped = b->stop_on_error && atomic_load_explicit(&b->stop, memory_order_relaxed);
        if (stopped) s->err = WEFT_ECANCELLED;
        if (stopped || item_unrunnable(b, i, s)) {
            atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel);
            continue;
        }
        /* counted before its callback can run; a failed submit has none */
        atomic_fetch_add_explicit(&b->x->left, 1, memory_order_relaxed);
        if (!proc_submit(b, i)) {
            atomic_fetch_sub_explicit(&b->x->left, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel);
        }
    }
    /* the +1 above: b cannot finish while its items are being submitted */
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) batch_finished(b);
}

/* Main thread, at the answer: each future's result into its slot. */
static void proc_collect(wbatch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        weft_future *f = b->futs[i];
        slot *s = &b->slots[i];
        if (!f) continue;
        const void *d = NULL;
        size_t len = 0;
        weft_future_state st = weft_future_state_get(f);
        s->t1 = weft__now_ns();
        if (st == WEFT_FUTURE_DONE && weft_future_result(f, 0, &d, &len) == 0 &&
            len >= sizeof(p_res)) {
            p_res r;
            memcpy(&r, d, sizeof r);
            if (sizeof r + pad8(r.msg_len) + r.out_len <= len) {
                s->err = r.err;
                s->sub = r.sub;
                s->t0 = r.t0;
                s->t1 = r.t1;
                if (r.msg_len) s->msg = strndup((const char *)d + sizeof r, r.msg_len);
                s->out = (unsigned char *)d + sizeof r + pad8(r.msg_len);
                s->out_len = r.err == 0 ? r.out_len : 0;
                continue;
            }
            s->err = WEFT_ECRASHED;
            s->msg = strdup("the worker process sent a malformed result");
        } else if (st == WEFT_FUTURE_CANCELLED) {
            s->err = WEFT_ECANCELLED;
        } else {
            int rc = weft_future_result(f, 0, NULL, NULL);
            const w_item *it = b->items[i];
            s->err = rc < 0 ? rc : WEFT_ECRASHED;
            s->msg =
                weft__asprintf("task '%s' (index %llu) on worker rank %d: %s", b->names[it->fn],
                               (unsigned long long)it->index, weft__mpi_rank, weft_future_error(f));
        }
    }
}

/* Main thread: cancels the futures not started of batches that stop on
 * an error (WEFT_MAP_STOP_ON_ERROR) and had one. */
static void proc_stop(void)
{
    atomic_store_explicit(&stop_asked, 0, memory_order_relaxed);
    for (wbatch *b = out_head; b; b = b->out_next) {
        if (!b->futs || b->cancelled || !atomic_load_explicit(&b->stop, memory_order_relaxed))
            continue;
        b->cancelled = true;
        for (size_t i = 0; i < b->n; i++)
            if (b->futs[i]) weft_future_cancel(b->futs[i]); /* running or done: EBUSY */
    }
}

/* ---- commands ---- */

static void do_open(const w_hdr *h, const unsigned char *p)
{
    int tag = res_tag(h->exec);
    weft_task_fn fns[2] = {NULL, NULL};
    const char *names[2] = {NULL, NULL};
    p = parse_names(p, h->nnames, fns, names);
    const w_item *it = (const w_item *)p;
    const void *in = p + sizeof *it;
    wexec *x = calloc(1, sizeof *x);
    if (!x) {
        char m[128];
        snprintf(m, sizeof m, "rank %d: out of memory", weft__mpi_rank);
        reply(tag, MSG_OPENED, h, 0, WEFT_ENOMEM, m);
        return;
    }
    x->no = h->exec;
    x->tag = tag;
    x->threads = h->threads > 0 ? h->threads : 1;
    x->procs = (h->flags & OF_PROCESSES) != 0;
    int err = 0;
    char *msg = NULL;
    if (h->nnames > 0 && !fns[0] && (h->flags & OF_INIT)) {
        err = WEFT_ENOTREG;
        msg = strdup("the initializer is not registered on this worker rank");
    } else if (x->procs) {
        /* the rank's worker processes run the initializer and the
         * finalizer themselves, as on the processes level */
        weft_options o = {.size = sizeof o,
                          .backend = WEFT_BACKEND_PROCESSES,
                          .workers = x->threads,
                          .initializer = fns[0],
                          .init_input = it->len ? in : NULL,
                          .init_len = it->len,
                          .finalizer = fns[1],
                          .seed = h->seed};
        int rc = weft__mpi_create_local ? weft__mpi_create_local(&o, &x->local) : WEFT_ENOTSUP;
        if (rc) {
            err = rc;
            msg = strdup(weft_last_error());
        }
    } else {
        x->finalizer = fns[1];
        if (fns[0]) {
            weft_ctx ctx;
            unsigned char inl[64] __attribute__((aligned(16)));
            int w = weft__mpi_rank - 1;
            weft__ctx_init(&ctx, NULL, w, NULL, 0);
            weft__ctx_item(&ctx, (uint64_t)w, weft__init_seed(h->seed, w), inl, sizeof inl);
            cur_name = names[0];
            cur_index = 0;
            cur_running = 1;
            err = weft__ctx_run(&ctx, fns[0], in, it->len, 0);
            cur_running = 0;
            if (err == 0) {
                if (ctx.out_heap) {
                    x->state = ctx.out;
                } else if ((x->state = weft__out_alloc(ctx.out_len))) {
                    if (ctx.out_len) memcpy(x->state, ctx.out, ctx.out_len);
                } else {
                    err = WEFT_ENOMEM;
                }
                x->state_len = ctx.out_len;
            } else {
                if (ctx.out_heap) weft__out_free(ctx.out);
                msg = ctx.msg;
            }
        }
        if (err == 0 && x->threads > 1) {
            weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = x->threads};
            int rc = weft__mpi_create_local ? weft__mpi_create_local(&o, &x->local) : WEFT_ENOTSUP;
            if (rc) {
                err = rc;
                msg = strdup(weft_last_error());
            }
        }
    }
    x->next = execs;
    execs = x;
    char full[512];
    if (err)
        snprintf(full, sizeof full, "rank %d: %s", weft__mpi_rank, msg ? msg : weft_strerror(err));
    free(msg);
    reply(tag, MSG_OPENED, h, 0, err, err ? full : NULL);
}

static void reap(void);
static void wait_local(int64_t timeout_ns, bool cmd_wakes);

static void do_close(const w_hdr *h)
{
    wexec **pp = &execs;
    while (*pp && (*pp)->no != h->exec) pp = &(*pp)->next;
    wexec *x = *pp;
    int tag = res_tag(h->exec);
    if (x) {
        /* rank 0 closes an executor once every batch is answered; should
         * one still be out, it is answered first */
        for (;;) {
            bool busy = false;
            for (wbatch *b = out_head; b && !busy; b = b->out_next) busy = b->x == x;
            if (!busy) break;
            reap();
            wait_local(100000, false);
        }
        *pp = x->next;
        if (x->local) weft_executor_destroy(x->local); /* processes: runs the finalizer there */
        if (x->finalizer) {
            weft_ctx ctx;
            weft__ctx_init(&ctx, NULL, weft__mpi_rank - 1, x->state, x->state_len);
            weft__ctx_run(&ctx, x->finalizer, x->state, x->state_len, 0);
            weft__ctx_clear(&ctx);
        }
        if (x->state) weft__out_free(x->state);
        free(x);
    }
    reply(tag, MSG_CLOSED, h, 0, 0, NULL);
}

/* Builds the answer of a run batch in sbuf: 0, or -1 out of memory. */
static int pack_answer(const w_hdr *h, const slot *slots, size_t n, size_t *total)
{
    size_t need = sizeof(w_hdr);
    uint32_t follow = 0;
    for (size_t i = 0; i < n; i++) {
        const slot *s = &slots[i];
        need += sizeof(w_res) + (s->msg ? pad8(strlen(s->msg)) : 0);
        if (s->err == 0 && s->out_len < BIG) need += pad8(s->out_len);
        if (s->err == 0 && s->out_len >= BIG) follow += pieces(s->out_len);
    }
    if (weft__mpi_fault(WEFT__MPI_FAULT_ANSWER) || weft__grow_bytes(&sbuf, &scap, need, 65536))
        return -1;
    w_hdr *rh = (w_hdr *)sbuf;
    memset(rh, 0, sizeof *rh);
    rh->type = MSG_RESULT;
    rh->exec = h->exec;
    rh->batch = h->batch;
    rh->n = (uint32_t)n;
    rh->rank = weft__mpi_rank;
    unsigned char *q = sbuf + sizeof *rh;
    for (size_t i = 0; i < n; i++) {
        const slot *s = &slots[i];
        w_res *r = (w_res *)q;
        q += sizeof *r;
        r->err = s->err;
        r->flags = 0;
        r->out_len = s->err == 0 ? s->out_len : 0;
        r->msg_len = s->msg ? (uint32_t)strlen(s->msg) : 0;
        r->sub = s->sub;
        r->t0 = s->t0;
        r->t1 = s->t1;
        if (s->err == 0 && s->out_len >= BIG) {
            r->flags = IF_BIG;
        } else if (r->out_len) {
            memcpy(q, s->out, s->out_len);
            q += pad8(s->out_len);
        }
        if (r->msg_len) {
            memcpy(q, s->msg, r->msg_len);
            q += pad8(r->msg_len);
        }
    }
    *total = (size_t)(q - sbuf);
    rh->total = *total;
    rh->follow = pieces(*total) - 1 + follow;
    return 0;
}

static void batch_free(wbatch *b)
{
    if (b->bigs)
        for (size_t i = 0; i < b->n; i++) free(b->bigs[i]);
    if (b->futs)
        for (size_t i = 0; i < b->n; i++) weft_future_release(b->futs[i]);
    if (b->cmd) { /* back to the pool of command buffers */
        if (!rbuf) {
            rbuf = b->cmd;
            rcap = b->cmd_cap;
        } else if (npool < (int)(sizeof pool / sizeof pool[0])) {
            pool[npool].p = b->cmd;
            pool[npool++].cap = b->cmd_cap;
        } else {
            free(b->cmd);
        }
    }
    if (b->fns != b->fns_small) free(b->fns);
    if (b->names != b->names_small) free(b->names);
    free(b->items);
    free(b->ins);
    free(b->bigs);
    if (b->slots != islots) free(b->slots);
    free(b->futs);
    free(b);
}

/* Answers a batch whose items all ran, then frees it. */
static void answer(wbatch *b)
{
    if (b->futs) proc_collect(b);
    size_t n = b->n, total = 0;
    int tag = res_tag(b->h.exec);
    bool packed = pack_answer(&b->h, b->slots, n, &total) == 0;
    if (packed)
        weft__mpi_send_msg(sbuf, total, 0, tag);
    else
        fail_batch(&b->h, WEFT_ENOMEM, "out of memory for the batch's answer");
    for (size_t i = 0; i < n; i++) {
        slot *s = &b->slots[i];
        if (packed && s->err == 0 && s->out_len >= BIG)
            weft__mpi_send_big(s->out, s->out_len, 0, tag);
        if (s->out_heap) weft__out_free(s->out);
        free(s->msg);
    }
    batch_free(b);
}

/* Main thread: answers the batches local workers finished; cancels what
 * a failed item stops. */
static void reap(void)
{
    if (atomic_load_explicit(&stop_asked, memory_order_relaxed)) proc_stop();
    wbatch *d = atomic_exchange_explicit(&done_head, NULL, memory_order_acquire);
    while (d) {
        wbatch *next = d->done_next;
        wbatch **pp = &out_head;
        while (*pp && *pp != d) pp = &(*pp)->out_next;
        if (*pp) *pp = d->out_next;
        nout--;
        answer(d);
        d = next;
    }
}

/* Main thread: sleeps until a local worker finishes a batch, rank 0 sends
 * a command (with cmd_wakes, on a rank with a shared bell), or timeout. */
static void wait_local(int64_t timeout_ns, bool cmd_wakes)
{
    uint32_t seq = __atomic_load_n(&bell->seq, __ATOMIC_SEQ_CST);
    __atomic_store_n(&bell->sleeping, 1, __ATOMIC_SEQ_CST);
    int cmd = 0;
    if (cmd_wakes && bell_shared) MPI_Iprobe(0, TAG_CMD, weft__mpi_comm, &cmd, MPI_STATUS_IGNORE);
    if (!cmd && !atomic_load_explicit(&done_head, memory_order_seq_cst) &&
        !atomic_load_explicit(&stop_asked, memory_order_seq_cst))
        weft__futex_wait_ex(&bell->seq, seq, timeout_ns, bell_shared);
    __atomic_store_n(&bell->sleeping, 0, __ATOMIC_RELAXED);
}

/* Takes a received batch (its header h, its body at p in rbuf): receives
 * its big inputs, then runs it inline and answers it, or hands it to the
 * rank's local workers. Whatever it cannot allocate (its tables, a big
 * input, the answer) fails the items concerned with WEFT_ENOMEM; every
 * message of the batch is received all the same (wire.h). */
static void do_batch(const w_hdr *h, const unsigned char *p)
{
    wexec *x = find_exec(h->exec);
    static wexec dummy; /* an executor this rank does not know: fails each item */
    size_t n = h->n;
    wbatch *b = calloc(1, sizeof *b);
    if (b) {
        b->n = n;
        b->h = *h;
        b->x = x ? x : &dummy;
        b->fns = h->nnames <= 8 ? b->fns_small : malloc(h->nnames * sizeof *b->fns);
        b->names = h->nnames <= 8 ? b->names_small : malloc(h->nnames * sizeof *b->names);
        b->items = malloc(n * sizeof *b->items);
        b->ins = malloc(n * sizeof *b->ins);
        b->bigs = calloc(n, sizeof *b->bigs);
        if (!b->x->local)
            b->slots = weft__grow(&islots, &islots_cap, n, sizeof *islots, 64) ? NULL : islots;
        else
            b->slots = malloc(n * sizeof *b->slots);
        if (b->x->procs) b->futs = calloc(n, sizeof *b->futs);
        b->stop_on_error = (h->flags & BF_STOP_ON_ERROR) != 0;
    }
    if (!b || !b->fns || !b->names || !b->items || !b->ins || !b->bigs || !b->slots ||
        (b->x->procs && !b->futs)) {
        drain_inputs(h, p);
        fail_batch(h, WEFT_ENOMEM, "out of memory for the batch's tables");
        if (b) {
            b->n = 0;
            batch_free(b);
        }
        return;
    }
    p = parse_names(p, h->nnames, b->fns, b->names);
    for (size_t i = 0; i < n; i++) {
        b->items[i] = (const w_item *)p;
        p += sizeof(w_item);
        if (b->items[i]->flags & IF_BIG) {
            b->ins[i] = NULL;
        } else {
            b->ins[i] = p;
            p += pad8(b->items[i]->len);
        }
    }
    /* the big inputs follow in item order; one without a block is dropped
     * and its item fails (ins[i] stays NULL) */
    for (size_t i = 0; i < n; i++) {
        if (!(b->items[i]->flags & IF_BIG)) continue;
        if (!weft__mpi_fault(WEFT__MPI_FAULT_INPUT)) b->bigs[i] = malloc(b->items[i]->len);
        weft__mpi_recv_big(b->bigs[i], b->items[i]->len, 0, TAG_CMD);
        b->ins[i] = b->bigs[i];
    }
    if (!b->x->local || n == 0) {
        for (size_t i = 0; i < n; i++) run_item(b, i);
        answer(b);
        return;
    }
    /* local workers: the batch keeps the command's buffer until answered */
    b->cmd = rbuf;
    b->cmd_cap = rcap;
    rbuf = NULL;
    rcap = 0;
    if (npool > 0) {
        rbuf = pool[--npool].p;
        rcap = pool[npool].cap;
    }
    b->out_next = out_head;
    out_head = b;
    nout++;
    if (b->x->procs)
        start_procs(b);
    else
        start_threads(b);
}

static void do_command(MPI_Message *m, MPI_Status *st)
{
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    w_hdr h;
    bool held =
        weft__mpi_recv_msg(m, count, 0, TAG_CMD, &rbuf, &rcap, &h, WEFT__MPI_FAULT_COMMAND) == 0;
    const unsigned char *p = held ? rbuf + sizeof h : NULL;
    switch (h.type) {
    case MSG_OPEN:
        if (held) {
            do_open(&h, p);
        } else {
            char why[128];
            snprintf(why, sizeof why, "rank %d: out of memory for the executor's %llu bytes",
                     weft__mpi_rank, (unsigned long long)h.total);
            reply(res_tag(h.exec), MSG_OPENED, &h, 0, WEFT_ENOMEM, why);
        }
        break;
    case MSG_BATCH:
        if (held) {
            do_batch(&h, p);
        } else {
            char why[128];
            snprintf(why, sizeof why, "out of memory for the batch's %llu bytes",
                     (unsigned long long)h.total);
            fail_batch(&h, WEFT_ENOMEM, why);
        }
        break;
    case MSG_CLOSE: /* the header is all */
        do_close(&h);
        break;
    case MSG_STOP:
        while (nout) { /* cannot happen: rank 0 stops after every executor closed */
            reap();
            wait_local(100000, false);
        }
        free(rbuf);
        free(sbuf);
        free(islots);
        while (npool) free(pool[--npool].p);
        weft__mpi_scratch_free();
        MPI_Comm_free(&weft__mpi_comm);
        MPI_Finalize();
        exit(0);
    default:
        break;
    }
}

void weft__mpi_worker_loop(void)
{
    weft__crash_handlers_install(crash_note);
    if (weft__mpi_bells) {
        bell = &weft__mpi_bells[weft__mpi_rank];
        bell_shared = true;
    }
    /* WEFT_TRACE names rank 0's trace: the local executors of this rank
     * (hybrid) must not write theirs over it */
    unsetenv("WEFT_TRACE");
    /* the wait for a command: t0 when it began, d how long so far (read
     * every 16 pauses), budget the pause spin of waits with nothing out */
    uint64_t t0 = 0, d = 0;
    uint32_t budget = CMD_SPIN_NS;
    bool idle = false;
    for (unsigned i = 0;; i++) {
        if (nout) {
            size_t before = nout;
            reap();
            if (nout != before) t0 = 0;
        }
        int flag = 0;
        MPI_Message m;
        MPI_Status st;
        MPI_Improbe(0, TAG_CMD, weft__mpi_comm, &flag, &m, &st);
        if (flag) {
            if (t0 && idle) spin_adapt(&budget, weft__now_ns() - t0, CMD_SPIN_NS);
            do_command(&m, &st);
            t0 = 0;
            continue;
        }
        if (!t0) {
            t0 = weft__now_ns();
            d = 0;
            i = 0;
            idle = nout == 0;
        } else if (d >= budget || (i & 15) == 0) {
            d = weft__now_ns() - t0;
        }
        if (nout) {
            /* local workers run: leave them the cores, but keep polling
             * MPI for the next command: at the quick pace while a worker
             * may run out of work, every 1 ms while items wait for a local
             * worker (local_item_done wakes this thread when none waits) */
            if (bell_shared) {
                wait_local(BELL_SAFETY_NS, true); /* rank 0 rings for a command */
                t0 = 0;
            } else if (local_saturated()) {
                wait_local(BUSY_POLL_NS, true);
                t0 = 0; /* once a worker may run short: the quick pace from its start */
            } else if (d < 20000) {
                weft__cpu_relax();
            } else {
                wait_local(d < 1000000 ? 50000 : d < 20000000 ? 200000 : 1000000, true);
            }
        } else if (d < budget) {
            weft__cpu_relax();
        } else if (d < 5000000) {
            sched_yield();
        } else if (bell_shared) {
            wait_local(BELL_SAFETY_NS, true); /* rank 0 rings for a command */
        } else {
            struct timespec ts = {0, d < 100000000 ? 50000 : 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

#endif

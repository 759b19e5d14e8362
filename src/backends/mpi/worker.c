/* worker.c : the loop of a worker rank (ranks 1..n-1) of the mpi backend.
 *
 * One thread makes every MPI call: it waits for a command from rank 0
 * (MPI_Improbe, spinning briefly, then yielding, then sleeping in growing
 * steps so an idle rank leaves its core to others), receives it whole
 * (MPI_Mrecv into a buffer kept between batches), runs the batch's items
 * in order and answers with one RESULT message (plus one message per big
 * output, sent straight from the task's output block).
 *
 * State per executor (OPEN .. CLOSE): the initializer's output, the
 * finalizer, and in hybrid mode a local threads executor on which a
 * batch's items run in parallel (weft_map over the item numbers). The
 * worker id a task sees is rank - 1 in both modes.
 *
 * Out of memory: nothing aborts. A command or big input the rank cannot
 * hold is received into the scratch buffer and dropped (wire.h); the items
 * concerned fail with WEFT_ENOMEM, a whole batch through a header-only
 * RF_FAILED answer that needs no allocation (reply()).
 *
 * A task that crashes the rank (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
 * is named on stderr by an async-signal-safe handler before the default
 * action ends the process; mpirun then aborts the whole job (Open MPI's
 * default when a rank dies), which is the honest outcome: MPI has no way to
 * replace a rank.
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

typedef struct wexec {
    uint32_t no;
    int tag;
    weft_task_fn finalizer;
    void *state; /* initializer output (weft__out_alloc block) or NULL */
    size_t state_len;
    int threads;
    weft_executor *local; /* hybrid mode */
    struct wexec *next;
} wexec;

/* One item's result while its batch runs. */
typedef struct slot {
    int err;
    void *out; /* into inl or a heap block */
    size_t out_len;
    bool out_heap;
    char *msg;
    uint64_t t0, t1;
    unsigned char inl[64] __attribute__((aligned(16)));
} slot;

/* The batch being run (hybrid items read it from their threads). */
typedef struct wbatch {
    wexec *x;
    size_t n;
    const w_item **items;
    const void **ins;
    weft_task_fn *fns;
    const char **names;
    slot *slots;
    bool stop_on_error;
    _Atomic int stop;
} wbatch;

static wexec *execs;
static unsigned char *rbuf, *sbuf;
static size_t rcap, scap;
static slot *slots;
static size_t nslots_cap;

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

static void wait_cmd(MPI_Message *m, MPI_Status *st)
{
    uint64_t t0 = 0;
    for (unsigned spins = 0;; spins++) {
        int flag = 0;
        MPI_Improbe(0, TAG_CMD, weft__mpi_comm, &flag, m, st);
        if (flag) return;
        if (spins < 64) continue;
        uint64_t now = weft__now_ns();
        if (!t0) t0 = now;
        uint64_t d = now - t0;
        if (d < 50000) {
            weft__cpu_relax();
        } else if (d < 5000000) {
            sched_yield();
        } else {
            struct timespec ts = {0, d < 100000000 ? 50000 : 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

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
    MPI_Send(&a, (int)a.h.total, MPI_BYTE, 0, tag, weft__mpi_comm);
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

static void run_item(wbatch *b, size_t i)
{
    slot *s = &b->slots[i];
    const w_item *it = b->items[i];
    weft_task_fn fn = it->fn < 65535 ? b->fns[it->fn] : NULL;
    s->out = NULL;
    s->out_len = 0;
    s->out_heap = false;
    s->msg = NULL;
    s->t0 = s->t1 = weft__now_ns();
    if (b->stop_on_error && atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        s->err = WEFT_ECANCELLED;
        return;
    }
    if (!b->ins[i]) { /* its big input found no room here */
        s->err = WEFT_ENOMEM;
        s->msg = weft__asprintf("worker rank %d cannot allocate %llu bytes for the task's input",
                                weft__mpi_rank, (unsigned long long)it->len);
        if (b->stop_on_error) atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
        return;
    }
    if (!fn) {
        s->err = WEFT_ENOTREG;
        s->msg = strdup("the task is not registered under its name on this worker rank (is it "
                        "the same program?)");
        return;
    }
    weft_ctx ctx;
    weft__ctx_init(&ctx, NULL, weft__mpi_rank - 1, b->x->state, b->x->state_len);
    weft__ctx_item(&ctx, it->index, it->seed, s->inl, sizeof s->inl);
    if (b->x->threads <= 1) {
        cur_name = b->names[it->fn];
        cur_index = it->index;
        cur_running = 1;
    }
    s->err = weft__ctx_run(&ctx, fn, b->ins[i], it->len, it->retries);
    cur_running = 0;
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

/* hybrid mode: a local map over the item numbers */
static wbatch *hyb_batch;

static int hyb_item(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    uint32_t i;
    if (len != sizeof i) return WEFT_EINVAL;
    memcpy(&i, in, sizeof i);
    run_item(hyb_batch, i);
    return 0;
}

static void run_batch(wbatch *b)
{
    if (b->x->local && b->n > 1) {
        uint32_t *idx = malloc(b->n * sizeof *idx);
        if (idx) {
            for (size_t i = 0; i < b->n; i++) idx[i] = (uint32_t)i;
            hyb_batch = b;
            weft_map_options mo = {.chunk_size = 1};
            weft_results *res = NULL;
            weft_map(b->x->local, hyb_item, idx, sizeof *idx, b->n, &mo, &res);
            weft_results_destroy(res);
            free(idx);
            return;
        }
    }
    for (size_t i = 0; i < b->n; i++) run_item(b, i);
}

/* ---- commands ---- */

static void do_open(const w_hdr *h, const unsigned char *p, int src_len)
{
    (void)src_len;
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
    x->finalizer = fns[1];
    int err = 0;
    char *msg = NULL;
    if (h->nnames > 0 && !fns[0] && (h->flags & 1)) {
        err = WEFT_ENOTREG;
        msg = strdup("the initializer is not registered on this worker rank");
    } else if (fns[0]) {
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
    x->next = execs;
    execs = x;
    char full[512];
    if (err)
        snprintf(full, sizeof full, "rank %d: %s", weft__mpi_rank, msg ? msg : weft_strerror(err));
    free(msg);
    reply(tag, MSG_OPENED, h, 0, err, err ? full : NULL);
}

static void do_close(const w_hdr *h)
{
    wexec **pp = &execs;
    while (*pp && (*pp)->no != h->exec) pp = &(*pp)->next;
    wexec *x = *pp;
    int tag = res_tag(h->exec);
    if (x) {
        *pp = x->next;
        if (x->local) weft_executor_destroy(x->local);
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
static int pack_answer(const w_hdr *h, size_t n, size_t *total)
{
    size_t need = sizeof(w_hdr);
    uint32_t follow = 0;
    for (size_t i = 0; i < n; i++) {
        slot *s = &slots[i];
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
        slot *s = &slots[i];
        w_res *r = (w_res *)q;
        q += sizeof *r;
        r->err = s->err;
        r->flags = 0;
        r->out_len = s->err == 0 ? s->out_len : 0;
        r->msg_len = s->msg ? (uint32_t)strlen(s->msg) : 0;
        r->pad = 0;
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

/* Runs a batch and answers it. Whatever it cannot allocate (its tables, a
 * big input, the answer) fails the items concerned with WEFT_ENOMEM; every
 * message of the batch is received all the same (wire.h). */
static void do_batch(const w_hdr *h, const unsigned char *p)
{
    wexec *x = find_exec(h->exec);
    size_t n = h->n;
    weft_task_fn fns_small[8];
    const char *names_small[8];
    weft_task_fn *fns = h->nnames <= 8 ? fns_small : malloc(h->nnames * sizeof *fns);
    const char **names = h->nnames <= 8 ? names_small : malloc(h->nnames * sizeof *names);
    const w_item **items = malloc(n * sizeof *items);
    const void **ins = malloc(n * sizeof *ins);
    void **bigs = calloc(n, sizeof *bigs);
    if (!fns || !names || !items || !ins || !bigs ||
        weft__grow(&slots, &nslots_cap, n, sizeof *slots, 64)) {
        drain_inputs(h, p);
        fail_batch(h, WEFT_ENOMEM, "out of memory for the batch's tables");
        goto out;
    }
    p = parse_names(p, h->nnames, fns, names);
    for (size_t i = 0; i < n; i++) {
        items[i] = (const w_item *)p;
        p += sizeof(w_item);
        if (items[i]->flags & IF_BIG) {
            ins[i] = NULL;
        } else {
            ins[i] = p;
            p += pad8(items[i]->len);
        }
    }
    /* the big inputs follow in item order; one without a block is dropped
     * and its item fails (ins[i] stays NULL) */
    for (size_t i = 0; i < n; i++) {
        if (!(items[i]->flags & IF_BIG)) continue;
        if (!weft__mpi_fault(WEFT__MPI_FAULT_INPUT)) bigs[i] = malloc(items[i]->len);
        weft__mpi_recv_big(bigs[i], items[i]->len, 0, TAG_CMD);
        ins[i] = bigs[i];
    }
    wexec dummy = {0};
    wbatch b = {
        x ? x : &dummy, n, items, ins, fns, names, slots, (h->flags & BF_STOP_ON_ERROR) != 0, 0};
    run_batch(&b);
    for (size_t i = 0; i < n; i++) free(bigs[i]);

    /* the answer: header, records (+ small outputs, messages), then bigs */
    size_t total = 0;
    int tag = res_tag(h->exec);
    bool packed = pack_answer(h, n, &total) == 0;
    if (packed)
        weft__mpi_send_msg(sbuf, total, 0, tag);
    else
        fail_batch(h, WEFT_ENOMEM, "out of memory for the batch's answer");
    for (size_t i = 0; i < n; i++) {
        slot *s = &slots[i];
        if (packed && s->err == 0 && s->out_len >= BIG)
            weft__mpi_send_big(s->out, s->out_len, 0, tag);
        if (s->out_heap) weft__out_free(s->out);
        free(s->msg);
    }
out:
    if (fns != fns_small) free(fns);
    if (names != names_small) free(names);
    free(items);
    free(ins);
    free(bigs);
}

void weft__mpi_worker_loop(void)
{
    weft__crash_handlers_install(crash_note);
    for (;;) {
        MPI_Message m;
        MPI_Status st;
        wait_cmd(&m, &st);
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        w_hdr h;
        bool held = weft__mpi_recv_msg(&m, count, 0, TAG_CMD, &rbuf, &rcap, &h,
                                       WEFT__MPI_FAULT_COMMAND) == 0;
        const unsigned char *p = held ? rbuf + sizeof h : NULL;
        switch (h.type) {
        case MSG_OPEN:
            if (held) {
                do_open(&h, p, count);
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
            free(rbuf);
            free(sbuf);
            free(slots);
            weft__mpi_scratch_free();
            MPI_Comm_free(&weft__mpi_comm);
            MPI_Finalize();
            exit(0);
        default:
            break;
        }
    }
}

#endif

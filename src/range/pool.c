/* pool.c : range loops on the threads backend, built on the pool's own
 * work-stealing deques (core/deque.h, core/executor.c).
 *
 * Pieces are nodes of the loop's tree (range_internal.h). A worker walks a
 * node top-down; to split, it pushes the right child onto its own deque as
 * an internal job (a frame on its stack that embeds the weft_future the
 * deques carry, marked WEFT__ST_INTERNAL, so no allocation and no future
 * from the allocator per piece), walks the left child, then pops its deque:
 * if the frame is still there nobody wanted it and the worker walks it
 * itself; if a thief took it, the worker helps (runs other queued work)
 * until the thief marks the frame done, then combines. This is fork/join
 * with lazy frames, as Cilk and Lace do it.
 *
 * When to split (the partitioner):
 *   AUTO     lazy binary splitting (after Tzannes, Caragea, Barua and
 *            Vishkin, PPoPP 2010): split a node when the worker's own deque
 *            is empty -- thieves took what it offered, so someone is
 *            hungry; otherwise keep the one offered piece and go on. A busy
 *            pool never pays for pieces nobody takes; an idle worker always
 *            finds one piece, half of a node, to steal, and splits it in turn.
 *            The top ceil(log2(workers)) + 2 levels split at once (about 4
 *            pieces per worker, as TBB's auto_partitioner starts): workers
 *            waking up find work at once, and a worker preempted on a busy
 *            machine holds only its share, not half of the loop.
 *   STATIC   split the top ceil(log2(workers)) levels at once, then walk.
 *   DYNAMIC  split every node: every leaf is a piece (a grain-sized one).
 *
 * Accounting: a frame goes through weft__enqueue, so it counts as pushed
 * for shutdown; a thief's run counts it finished (the core's loop), and
 * popping it back counts it here (weft__lane_finished). A cancelling
 * shutdown may run frames on its own thread (wid -1): they skip their
 * range and record WEFT_ECANCELLED.
 *
 * Lifetime: a frame lives on the stack of the thread that pushed it, which
 * does not return before the frame is popped back or marked done. The
 * thief's last touch is the exchange on `done`; a futex wake after it may
 * hit a reused stack word, which futex users tolerate (a spurious wake). */
#include <stdlib.h>

#include "core/exec_internal.h"
#include "range/range_internal.h"

typedef struct frame {
    weft__job job; /* first: how the pool runs it */
    weft__rloop *L;
    uint64_t a, b;
    int depth;
    void *out;             /* reduce: where the node's value goes */
    _Atomic uint32_t done; /* 0 queued or running, 1 done, 2 a waiter sleeps */
    weft_future fut;       /* what the deque carries (fut.job = this frame) */
} frame;

typedef struct pctx {
    weft__rloop *L;
    weft_executor *ex;
    weft__lane *lane;
} pctx;

static void frame_run(weft_future *f, int wid, const void *wstate, size_t wstate_len);

static void frame_init(frame *t, weft__rloop *L, uint64_t a, uint64_t b, int depth, void *out)
{
    t->job.run = frame_run;
    t->L = L;
    t->a = a;
    t->b = b;
    t->depth = depth;
    t->out = out;
    atomic_init(&t->done, 0);
    memset(&t->fut, 0, sizeof t->fut);
    atomic_init(&t->fut.state, WEFT_FUTURE_PENDING | WEFT__ST_INTERNAL);
    atomic_init(&t->fut.refs, 1);
    t->fut.ex = L->ex;
    t->fut.job = t;
}

static void frame_done(frame *t)
{
    if (atomic_exchange_explicit(&t->done, 1, memory_order_acq_rel) == 2)
        weft__futex_wake(&t->done, 1);
}

/* Waits for a frame a thief took: helps meanwhile, sleeps a little when
 * there is nothing to help with (a long piece runs elsewhere). */
static void frame_join_stolen(weft_executor *ex, frame *t, bool can_help)
{
    unsigned idle = 0;
    for (;;) {
        uint32_t d = atomic_load_explicit(&t->done, memory_order_acquire);
        if (d == 1) return;
        if (can_help && weft__help_one(ex)) {
            idle = 0;
            continue;
        }
        if (++idle < 64) {
            weft__cpu_relax();
            continue;
        }
        if (idle < 128) {
            weft__yield();
            continue;
        }
        if (d == 0) {
            uint32_t zero = 0;
            if (!atomic_compare_exchange_strong(&t->done, &zero, 2)) continue;
        }
        /* short naps while helping is possible: new work may appear */
        weft__futex_wait(&t->done, 2, can_help ? 200000 : 10000000);
        idle = 64;
    }
}

static void walk(pctx *c, uint64_t a, uint64_t b, int depth, void *out, unsigned char *scratch);

/* Pushes [mid, b) as a frame, walks [a, mid), then joins the frame. */
static void fork_join(pctx *c, uint64_t a, uint64_t mid, uint64_t b, int depth, void *out,
                      unsigned char *scratch)
{
    weft__rloop *L = c->L;
    frame t;
    frame_init(&t, L, mid, b, depth, L->reduce ? scratch : NULL);
    if (WEFT__UNLIKELY(weft__enqueue(c->ex, &t.fut) != 0)) { /* out of memory: no split */
        walk(c, a, mid, depth, out, scratch + L->stride);
        walk(c, mid, b, depth, scratch, scratch + L->stride);
        if (L->reduce) L->combine(out, scratch, L->arg);
        return;
    }
    walk(c, a, mid, depth, out, scratch + L->stride);
    for (;;) {
        weft_future *f = weft__lane_pop(c->lane);
        if (f == &t.fut) { /* nobody took it */
            weft__lane_finished(c->lane, 1);
            walk(c, mid, b, depth, scratch, scratch + L->stride);
            break;
        }
        if (!f) { /* a thief has it */
            frame_join_stolen(c->ex, &t, true);
            break;
        }
        /* queued above ours by the body (a submit it did not wait for): run it */
        c->ex->ops->run(c->ex, c->lane, f);
    }
    if (L->reduce) L->combine(out, scratch, L->arg);
}

static void walk(pctx *c, uint64_t a, uint64_t b, int depth, void *out, unsigned char *scratch)
{
    weft__rloop *L = c->L;
    if (weft__rloop_stopped(L)) {
        if (L->reduce) memcpy(out, L->identity, L->vsize);
        return;
    }
    if (b - a == 1) {
        weft__rloop_leaf(L, a, out);
        return;
    }
    bool split;
    switch (L->part) {
    case WEFT_PARTITION_STATIC:
        split = depth > 0;
        break;
    case WEFT_PARTITION_DYNAMIC:
        split = true;
        break;
    default:
        split = depth > 0 || weft__deque_size(&c->lane->own->dq) == 0;
        break;
    }
    uint64_t mid = a + (b - a) / 2;
    if (split) {
        fork_join(c, a, mid, b, depth - 1, out, scratch);
        return;
    }
    if (L->part == WEFT_PARTITION_STATIC) { /* a block: no more splits */
        weft__rloop_walk(L, a, b, out, scratch);
        return;
    }
    walk(c, a, mid, depth - 1, out, scratch + L->stride);
    walk(c, mid, b, depth - 1, L->reduce ? scratch : NULL, scratch + L->stride);
    if (L->reduce) L->combine(out, scratch, L->arg);
}

/* Scratch for walking [a, b): on the stack when small (buf), else heap. */
static unsigned char *scratch_get(weft__rloop *L, uint64_t a, uint64_t b, unsigned char *buf)
{
    if (!L->reduce) return buf;
    size_t need = (size_t)weft__rloop_levels(a, b) * L->stride;
    if (need <= WEFT__RANGE_STACK_SCRATCH) return buf;
    return aligned_alloc(WEFT__RANGE_ALIGN, need);
}

static void run_node(pctx *c, uint64_t a, uint64_t b, int depth, void *out)
{
    _Alignas(WEFT__RANGE_ALIGN) unsigned char buf[WEFT__RANGE_STACK_SCRATCH];
    unsigned char *scratch = scratch_get(c->L, a, b, buf);
    if (!scratch) {
        weft__rloop_fail(c->L, WEFT_ENOMEM, weft__rloop_at(c->L, a), weft__rloop_at(c->L, b));
        if (c->L->reduce) memcpy(out, c->L->identity, c->L->vsize);
        return;
    }
    walk(c, a, b, depth, out, scratch);
    if (scratch != buf) free(scratch);
}

/* A frame taken by a thief (or dropped by a cancelling shutdown). */
static void frame_run(weft_future *f, int wid, const void *wstate, size_t wstate_len)
{
    (void)wstate, (void)wstate_len;
    frame *t = f->job;
    weft__rloop *L = t->L;
    weft_executor *ex = L->ex;
    if (wid < 0 || weft__executor_cancelling(ex) || weft__current_executor() != ex) {
        weft__rloop_fail(L, WEFT_ECANCELLED, 0, 0);
        if (L->reduce) memcpy(t->out, L->identity, L->vsize);
    } else {
        pctx c = {L, ex, &ex->workers[wid]};
        run_node(&c, t->a, t->b, t->depth, t->out);
    }
    frame_done(t);
}

int weft__range_pool_run(weft__rloop *L, void *out)
{
    weft_executor *ex = L->ex;
    int depth = L->static_depth + (L->part == WEFT_PARTITION_AUTO ? 2 : 0);
    int wid = weft__executor_worker_index();
    if (weft__current_executor() == ex && wid >= 0) { /* inside a task of ex: walk here */
        pctx c = {L, ex, &ex->workers[wid]};
        run_node(&c, 0, L->nleaf, depth, out);
    } else { /* hand the root to the pool and wait */
        frame t;
        frame_init(&t, L, 0, L->nleaf, depth, out);
        int rc = weft__enqueue(ex, &t.fut);
        if (rc) return weft__err(rc, "weft_parallel_for: %s", weft_strerror(rc));
        frame_join_stolen(ex, &t, false);
    }
    return atomic_load(&L->err);
}

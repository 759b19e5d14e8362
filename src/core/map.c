/* map.c : weft_map, weft_map_bufs, weft_map_stream and their results.
 *
 * The calling thread coordinates: it cuts the input into chunks, queues each
 * chunk as one internal task, and collects finished chunks from a lock-free
 * stack. Workers write each item's result straight into its entry (the
 * results array for array input, a per-chunk array for streams), so the
 * caller touches a chunk only twice: to queue it and to deliver it.
 *
 * Chunk size: fixed when asked; otherwise it follows the measured time per
 * item so that one chunk takes about TARGET_CHUNK_NS (small enough to
 * balance the load, large enough that the per-chunk costs vanish), starting
 * from one item and never more than a quarter of a worker's share of what is
 * left, so the tail stays balanced.
 *
 * At most `ring` chunks and (for streams) max_in_flight items are out at
 * once: the caller reads more input only as results are delivered, which is
 * what keeps an endless stream in bounded memory.
 *
 * Ordering: chunks sit in a ring in input order; ordered delivery takes
 * them from the head as they finish, unordered delivery takes them as they
 * arrive.
 *
 * Lifetime: the job lives on the caller's stack. Every queued chunk holds a
 * reference to it and drops it as its very last touch of the job, and the
 * caller does not return before the count is back to its own, so no worker
 * ever touches a dead job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backends/remote/remote.h" /* items sent to other processes, chunk by chunk */
#include "core/backend.h"
#include "core/memo_hook.h"
#include "diag/progress_internal.h"
#include "graph/graph_internal.h" /* the argument blocks zipped items are passed in */
#include "internal.h"

#define TARGET_CHUNK_NS 100000ull
#define MAX_CHUNK (1u << 20)
/* on_result: a chunk that ran at least EAGER_NS, or that finishes when the
 * caller has slept EAGER_LATE_NS, wakes the caller at once */
#define EAGER_NS 50000ull
#define EAGER_LATE_NS 1000000ull

/* One result: 16 bytes, so ten million results take 160 MB. Outputs of up
 * to 8 bytes sit inline; longer ones are heap blocks that carry their own
 * length (weft__out_alloc), marked by len == LEN_HEAP; an error keeps its
 * message pointer in the same place. */
#define LEN_HEAP UINT32_MAX

typedef struct entry {
    union {
        unsigned char inl[8];
        void *ptr; /* heap output (len == LEN_HEAP), or message (err != 0) */
    } u;
    uint32_t len;
    int32_t err;
} entry;

struct weft_results {
    size_t count, cap;
    entry *e;
    size_t failed;
    bool huge; /* e came from mmap */
};

enum {
    IN_ARRAY,
    IN_BUFS,
    IN_STREAM,
    IN_ZIP /* several inputs: each item is an argument block */
};

/* n elements of `size` bytes, or NULL (also when n * size overflows). */
static void *malloc_n(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    return malloc(n * size);
}

typedef struct map_job map_job;

typedef struct chunk {
    weft__job run; /* first: how the pool runs it (internal.h) */
    map_job *job;
    uint64_t start;
    size_t n;
    entry *ents;
    bool own_ents;
    unsigned char *data; /* stream: copied items; zip on processes/mpi: argument blocks */
    size_t *offs;        /* stream: n + 1 offsets into data */
    int state;           /* caller's view: 0 queued, 1 finished, 2 delivered */
    size_t nfail;        /* items that did not succeed (written by the worker) */
    uint64_t ns;         /* time the worker spent on it (0 if cancelled) */
    struct chunk *next_done;
} chunk;

struct map_job {
    weft_executor *ex;
    weft_task_fn fn;
    unsigned flags;
    int retries;
    uint64_t seed;
    int mode;
    const unsigned char *items;
    size_t item_size;
    const weft_buf *bufs;
    const weft_map_input *zin; /* zip: the inputs */
    size_t nzin;
    uint64_t deadline; /* weft__now_ns() past which no item starts; 0 = none */
    _Atomic int stop;
    _Atomic int timed_out; /* the deadline (not an error or on_result) set `stop` */
    _Atomic(chunk *) done_stack;
    _Atomic uint32_t wake;
    _Atomic int caller_sleeping;
    bool eager;                /* on_result: results are awaited one by one */
    _Atomic uint64_t sleep_t0; /* eager: when the caller went to sleep */
    _Atomic int pending;       /* queued chunks not finished yet */
    _Atomic int low_water;     /* wake the sleeping caller when pending drops to this */
    _Atomic int refs;
};

/* ---- entries ------------------------------------------------------------------ */

static void entry_clear(entry *e)
{
    if (e->err != 0)
        free(e->u.ptr);
    else if (e->len == LEN_HEAP)
        weft__out_free(e->u.ptr);
    e->u.ptr = NULL;
    e->len = 0;
}

static const void *entry_data(const entry *e)
{
    if (e->err != 0) return NULL;
    return e->len == LEN_HEAP ? e->u.ptr : e->u.inl;
}

static size_t entry_len(const entry *e)
{
    if (e->err != 0) return 0;
    return e->len == LEN_HEAP ? weft__out_len(e->u.ptr) : e->len;
}

static void entry_cancel(entry *e)
{
    e->err = WEFT_ECANCELLED;
    e->len = 0;
    e->u.ptr = NULL;
}

/* ---- deadline and zipped inputs --------------------------------------------------- */

/* True once the map's deadline has passed. Whoever sees it first stops the
 * map and, unless something else stopped it before, marks it timed out.
 * One clock read, and only for maps with a deadline. */
static bool deadline_passed(map_job *job)
{
    if (!job->deadline || weft__now_ns() < job->deadline) return false;
    int zero = 0;
    if (atomic_compare_exchange_strong(&job->stop, &zero, 1)) atomic_store(&job->timed_out, 1);
    return true;
}

/* Item `idx` of zip input `k`. */
static void zip_arg(const map_job *job, size_t k, uint64_t idx, const void **p, size_t *len)
{
    const weft_map_input *in = &job->zin[k];
    if (in->bufs) {
        *p = in->bufs[idx].data;
        *len = in->bufs[idx].len;
    } else {
        *p = (const unsigned char *)in->items + idx * in->item_size;
        *len = in->item_size;
    }
}

/* Zip on processes and mpi: the COPY argument blocks (the graph's
 * encoding for other address spaces) of chunk c's items, one after the
 * other in c->data, item i's at c->offs[i]; they live until the chunk is
 * freed, after its results are in. Returns 0, WEFT_ENOMEM or WEFT_EINVAL
 * (a block's size overflows). */
static int zip_copy_blocks(chunk *c)
{
    const map_job *job = c->job;
    size_t head = ARGS_HDR + (size_t)ARGS_ENT * job->nzin; /* nzin <= MAX_ARGS */
    if (c->n == SIZE_MAX || !(c->offs = malloc_n(c->n + 1, sizeof *c->offs))) return WEFT_ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t sz = head;
        for (size_t k = 0; k < job->nzin; k++) {
            const void *p;
            size_t l;
            zip_arg(job, k, c->start + i, &p, &l);
            if (l > SIZE_MAX - 15 || ((l + 15) & ~(size_t)15) > SIZE_MAX - sz) return WEFT_EINVAL;
            sz += (l + 15) & ~(size_t)15;
        }
        if (sz > SIZE_MAX - total) return WEFT_EINVAL;
        c->offs[i] = total;
        total += sz;
    }
    c->offs[c->n] = total;
    if (!(c->data = malloc(total ? total : 1))) return WEFT_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        unsigned char *blk = c->data + c->offs[i];
        args_hdr h = {ARGS_MAGIC, ARGS_COPY, (uint32_t)job->nzin, 0};
        memcpy(blk, &h, sizeof h);
        size_t off = head;
        for (size_t k = 0; k < job->nzin; k++) {
            const void *p;
            size_t l;
            zip_arg(job, k, c->start + i, &p, &l);
            args_ent e = {off, l};
            memcpy(blk + ARGS_HDR + (size_t)ARGS_ENT * k, &e, sizeof e);
            if (l) memcpy(blk + off, p, l);
            off += (l + 15) & ~(size_t)15;
        }
    }
    return 0;
}

/* ---- the worker side -------------------------------------------------------------- */

static void chunk_publish(weft_future *f, chunk *c, map_job *job);

/* ---- processes backend: the whole chunk runs in the worker process ---- */

typedef struct rchunk {
    chunk *c;
    map_job *job;
    uint64_t t0, t1;
    int first_err;
} rchunk;

static void rchunk_fail(chunk *c, entry *e, int err, const char *msg)
{
    e->err = err;
    e->len = 0;
    e->u.ptr = msg ? strdup(msg) : NULL;
    c->nfail++;
}

static void rchunk_done(void *arg, size_t i, const weft__rres *r)
{
    rchunk *rc = arg;
    chunk *c = rc->c;
    if (i >= c->n) return; /* not an item of this chunk: never write past it */
    entry *e = &c->ents[i];
    if (r->t1) {
        if (!rc->t0 || r->t0 < rc->t0) rc->t0 = r->t0;
        if (r->t1 > rc->t1) rc->t1 = r->t1;
    }
    if (r->err == 0) {
        if (r->out_len <= sizeof e->u.inl) {
            if (r->out_len) memcpy(e->u.inl, r->out, r->out_len); /* small: in the arena */
            e->len = (uint32_t)r->out_len;
            e->err = 0;
        } else if (r->take && *r->take) { /* mpi: keep the received block */
            e->u.ptr = *r->take;
            *r->take = NULL;
            e->len = LEN_HEAP;
            e->err = 0;
        } else {
            void *p = weft__out_alloc(r->out_len);
            if (!p) {
                rchunk_fail(c, e, WEFT_ENOMEM, "out of memory for the item's output");
                return;
            }
            if (weft__rres_copy(r, p)) {
                weft__out_free(p);
                rchunk_fail(c, e, WEFT_ECRASHED, "the output could not be read from the worker");
                return;
            }
            e->u.ptr = p;
            e->len = LEN_HEAP;
            e->err = 0;
        }
        return;
    }
    if (r->err == WEFT_ECANCELLED && !r->msg) {
        entry_cancel(e);
        c->nfail++;
        return;
    }
    rchunk_fail(c, e, r->err, r->msg);
    if (!rc->first_err) rc->first_err = r->err;
    if (rc->job->flags & WEFT_MAP_STOP_ON_ERROR)
        atomic_store_explicit(&rc->job->stop, 1, memory_order_relaxed);
}

/* The items of chunk c, or NULL after failing or cancelling them all. */
static weft__ritem *chunk_items(chunk *c)
{
    map_job *job = c->job;
    bool cancelled = weft__executor_cancelling(job->ex) ||
                     atomic_load_explicit(&job->stop, memory_order_relaxed) || deadline_passed(job);
    int zerr = !cancelled && job->mode == IN_ZIP ? zip_copy_blocks(c) : 0;
    weft__ritem *items = cancelled || zerr ? NULL : malloc_n(c->n, sizeof *items);
    if (!items) {
        for (size_t i = 0; i < c->n; i++) {
            if (cancelled) {
                entry_cancel(&c->ents[i]);
                c->nfail++;
            } else if (zerr == WEFT_EINVAL) {
                rchunk_fail(c, &c->ents[i], WEFT_EINVAL, "the item's arguments overflow size_t");
            } else {
                rchunk_fail(c, &c->ents[i], WEFT_ENOMEM, "out of memory");
            }
        }
    } else {
        for (size_t i = 0; i < c->n; i++) {
            uint64_t idx = c->start + i;
            weft__ritem *it = &items[i];
            it->fn = job->fn;
            switch (job->mode) {
            case IN_ARRAY:
                it->in = job->items + idx * job->item_size;
                it->len = job->item_size;
                break;
            case IN_BUFS:
                it->in = job->bufs[idx].data;
                it->len = job->bufs[idx].len;
                break;
            case IN_ZIP:
                it->in = c->data + c->offs[i];
                it->len = c->offs[i + 1] - c->offs[i];
                break;
            default:
                it->in = c->data + c->offs[i];
                it->len = c->offs[i + 1] - c->offs[i];
                break;
            }
            it->index = idx;
            it->seed = weft__seed_for(job->seed, idx);
            it->retries = job->retries;
            it->timeout = 0;
        }
    }
    return items;
}

/* ---- a chunk sent to another process (processes, mpi): its results come back later ---- */

struct weft__rchunk {
    rchunk rc;
    weft_future *f;
};

weft__rchunk *weft__map_chunk_open(weft_future *f, weft__ritem **items, size_t *n,
                                   bool *stop_on_error)
{
    chunk *c = f->job;
    weft__rchunk *r = malloc(sizeof *r);
    *items = NULL;
    *n = c->n;
    *stop_on_error = (c->job->flags & WEFT_MAP_STOP_ON_ERROR) != 0;
    if (r) *items = chunk_items(c);
    if (!r || !*items) {
        if (!r && *items) free(*items);
        if (!r) /* nothing was filled in yet */
            for (size_t i = 0; i < c->n; i++)
                rchunk_fail(c, &c->ents[i], WEFT_ENOMEM, "out of memory");
        free(r);
        c->ns = 0;
        chunk_publish(f, c, c->job);
        return NULL;
    }
    r->rc = (rchunk){c, c->job, 0, 0, 0};
    r->f = f;
    return r;
}

void weft__map_chunk_item(weft__rchunk *r, size_t i, const weft__rres *res)
{
    rchunk_done(&r->rc, i, res);
}

void weft__map_chunk_close(weft__rchunk *r, int lane)
{
    chunk *c = r->rc.c;
    map_job *job = r->rc.job;
    c->ns = r->rc.t1 > r->rc.t0 ? r->rc.t1 - r->rc.t0 : 0;
    if (weft__executor_tracing(job->ex) && r->rc.t1)
        weft__trace_record(job->ex, lane, job->fn, r->rc.t0, r->rc.t1, r->rc.first_err, c->n);
    weft_future *f = r->f;
    free(r);
    chunk_publish(f, c, job);
}

_Atomic int *weft__map_chunk_stop(weft__rchunk *r)
{
    return &r->rc.job->stop;
}

/* Runs chunk f on this thread (the pool calls it through f->job). */
static void map_run_chunk(weft_future *f, int wid, const void *wstate, size_t wstate_len)
{
    chunk *c = f->job;
    map_job *job = c->job;
    bool cancelled = weft__executor_cancelling(job->ex);
    bool tracing = weft__executor_tracing(job->ex);
    uint64_t t0 = weft__now_ns();
    int first_err = 0;
    weft_ctx ctx;
    weft__ctx_init(&ctx, job->ex, wid, wstate, wstate_len);
    /* zip: one REF argument block (the graph's encoding for one address
     * space), refilled for each item; on the stack up to 8 inputs */
    uint64_t zstack[(ARGS_HDR + 8 * ARGS_ENT) / sizeof(uint64_t)];
    unsigned char *zblk = NULL;
    size_t zlen = 0;
    if (job->mode == IN_ZIP) {
        zlen = ARGS_HDR + (size_t)ARGS_ENT * job->nzin;
        zblk = zlen <= sizeof zstack ? (unsigned char *)zstack : malloc(zlen);
        if (zblk) {
            args_hdr h = {ARGS_MAGIC, ARGS_REF, (uint32_t)job->nzin, 0};
            memcpy(zblk, &h, sizeof h);
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        entry *e = &c->ents[i];
        if (cancelled || atomic_load_explicit(&job->stop, memory_order_relaxed) ||
            (job->deadline && deadline_passed(job))) {
            entry_cancel(e);
            c->nfail++;
            continue;
        }
        if (job->mode == IN_ZIP && !zblk) {
            rchunk_fail(c, e, WEFT_ENOMEM, "out of memory for the argument block");
            continue;
        }
        uint64_t idx = c->start + i;
        const void *in;
        size_t len;
        switch (job->mode) {
        case IN_ARRAY:
            in = job->items + idx * job->item_size;
            len = job->item_size;
            break;
        case IN_BUFS:
            in = job->bufs[idx].data;
            len = job->bufs[idx].len;
            break;
        case IN_ZIP:
            for (size_t k = 0; k < job->nzin; k++) {
                const void *p;
                size_t l;
                zip_arg(job, k, idx, &p, &l);
                args_ent ae = {(uint64_t)(uintptr_t)p, l};
                memcpy(zblk + ARGS_HDR + (size_t)ARGS_ENT * k, &ae, sizeof ae);
            }
            in = zblk;
            len = zlen;
            break;
        default:
            in = c->data + c->offs[i];
            len = c->offs[i + 1] - c->offs[i];
            break;
        }
        weft__ctx_item(&ctx, idx, weft__seed_for(job->seed, idx), e->u.inl, sizeof e->u.inl);
        int rc = weft__ctx_run(&ctx, job->fn, in, len, job->retries);
        if (rc == 0) {
            e->err = 0;
            if (ctx.out_heap) {
                e->u.ptr = ctx.out;
                e->len = LEN_HEAP;
            } else {
                e->len = (uint32_t)ctx.out_len; /* <= 8: inline */
            }
        } else {
            if (ctx.out_heap) weft__out_free(ctx.out);
            e->err = rc;
            e->len = 0;
            e->u.ptr = ctx.msg;
            ctx.msg = NULL;
            c->nfail++;
            if (!first_err) first_err = rc;
            if (job->flags & WEFT_MAP_STOP_ON_ERROR)
                atomic_store_explicit(&job->stop, 1, memory_order_relaxed);
        }
    }
    if (zblk != (unsigned char *)zstack) free(zblk);
    uint64_t t1 = weft__now_ns();
    c->ns = cancelled ? 0 : t1 - t0;
    if (tracing) weft__trace_record(job->ex, wid, job->fn, t0, t1, first_err, c->n);
    chunk_publish(f, c, job);
}

/* Hands a finished chunk to the caller; the last touch of the job. */
static void chunk_publish(weft_future *f, chunk *c, map_job *job)
{
    bool eager = job->eager && c->ns >= EAGER_NS; /* read c before the caller may free it */
    chunk *head = atomic_load_explicit(&job->done_stack, memory_order_relaxed);
    do {
        c->next_done = head;
    } while (!atomic_compare_exchange_weak_explicit(&job->done_stack, &head, c,
                                                    memory_order_release, memory_order_relaxed));
    int left = atomic_fetch_sub_explicit(&job->pending, 1, memory_order_seq_cst) - 1;
    if (atomic_load_explicit(&job->caller_sleeping, memory_order_seq_cst)) {
        bool wake = eager || left <= atomic_load_explicit(&job->low_water, memory_order_relaxed);
        if (!wake && job->eager)
            wake = weft__now_ns() - atomic_load_explicit(&job->sleep_t0, memory_order_relaxed) >=
                   EAGER_LATE_NS;
        if (wake) {
            atomic_fetch_add_explicit(&job->wake, 1, memory_order_release);
            weft__futex_wake(&job->wake, 1);
        }
    }
    atomic_fetch_sub_explicit(&job->refs, 1, memory_order_release); /* last touch of job */
    weft_future_release(f);
}

/* ---- the caller side --------------------------------------------------------------- */

typedef struct map_call {
    map_job job;
    weft_results *res;
    const weft_map_options *o;
    weft_input_cb next;
    void *next_arg;
    size_t count; /* array/bufs: item count */
    chunk **ring;
    size_t ring_cap, ring_head, ring_n;
    uint64_t next_index;
    size_t inflight_items;
    size_t max_items;
    bool input_done;
    int stop_code;      /* from on_result or input */
    char stop_msg[200]; /* why, when the map stopped itself (kept as the last error) */
    int first_err;      /* lowest-index real error */
    uint64_t first_err_idx;
    bool any_cancelled;
    int workers;
    double per_item[4]; /* ns per item of the last finished chunks */
    int nsamples;
    weft_progress *progress; /* NULL unless asked: one branch per chunk */
} map_call;

/* Streams: grow the results as chunks are delivered (zeroed, since an
 * unordered delivery may leave a gap for a while). */
static int results_reserve(weft_results *r, size_t n)
{
    if (n <= r->cap) return 0;
    if (n > SIZE_MAX / 2 / sizeof(entry)) return WEFT_ENOMEM;
    size_t cap = r->cap ? r->cap : 64;
    while (cap < n) cap *= 2;
    entry *e = realloc(r->e, cap * sizeof *e);
    if (!e) return WEFT_ENOMEM;
    memset(e + r->cap, 0, (cap - r->cap) * sizeof *e);
    r->e = e;
    r->cap = cap;
    return 0;
}

/* Arrays: every entry is written by its chunk, so no zeroing; a large array
 * is mapped with transparent huge pages, which turns ~40k page faults per
 * ten million results into ~80. */
#define HUGE_MIN (4u << 20)
#define HUGE_PAGE (2u << 20)

static int results_alloc_fixed(weft_results *r, size_t n)
{
    if (n == 0) n = 1;
    if (n > SIZE_MAX / sizeof(entry)) return WEFT_ENOMEM;
    size_t bytes = n * sizeof(entry);
    if (bytes >= HUGE_MIN) {
        size_t len = (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            madvise(p, len, MADV_HUGEPAGE);
            r->e = p;
            r->cap = len / sizeof(entry);
            r->huge = true;
            return 0;
        }
    }
    r->e = malloc(bytes);
    if (!r->e) return WEFT_ENOMEM;
    r->cap = n;
    return 0;
}

static void results_free_array(weft_results *r)
{
    if (r->huge)
        munmap(r->e, r->cap * sizeof(entry));
    else
        free(r->e);
}

static size_t pick_chunk(map_call *mc)
{
    const weft_map_options *o = mc->o;
    size_t size;
    if (o->chunk_size) {
        size = o->chunk_size;
    } else {
        if (mc->nsamples == 0) {
            size = 1;
        } else {
            /* The fastest recent chunk: page faults, preemption and cold
             * caches only ever make a chunk slower, so the minimum is the
             * estimate they do not spoil (one 2 MB page fault in a map's
             * first one-item chunk would otherwise keep chunks tiny). */
            int k = mc->nsamples < 4 ? mc->nsamples : 4;
            double per = mc->per_item[0];
            for (int i = 1; i < k; i++)
                if (mc->per_item[i] < per) per = mc->per_item[i];
            if (per < 0.5) per = 0.5;
            double s = (double)TARGET_CHUNK_NS / per;
            size = s < 1 ? 1 : s > MAX_CHUNK ? MAX_CHUNK : (size_t)s;
        }
        if (mc->job.mode != IN_STREAM) {
            size_t left = mc->count - (size_t)mc->next_index;
            size_t share = left / (size_t)(4 * mc->workers);
            if (size > share) size = share ? share : 1;
        } else {
            size_t share = mc->max_items / (size_t)(2 * mc->workers);
            if (size > share) size = share ? share : 1;
        }
    }
    return size;
}

static void chunk_free(chunk *c)
{
    if (c->own_ents) free(c->ents);
    free(c->data);
    free(c->offs);
    free(c);
}

/* Reads up to `want` stream items into a new chunk. Returns the chunk (n may
 * be 0 at the end of input) or NULL with mc->stop_code set. */
static chunk *read_stream(map_call *mc, size_t want)
{
    chunk *c = calloc(1, sizeof *c);
    size_t cap = 0, used = 0;
    if (want > MAX_CHUNK) want = MAX_CHUNK; /* a stream chunk's items are copied at once */
    if (!c || !(c->offs = malloc((want + 1) * sizeof *c->offs))) {
        free(c);
        mc->stop_code = WEFT_ENOMEM;
        return NULL;
    }
    c->offs[0] = 0;
    while (c->n < want) {
        weft_buf item = {NULL, 0};
        int r = mc->next(mc->next_arg, mc->next_index + c->n, &item);
        if (r == 0) {
            mc->input_done = true;
            break;
        }
        if (r < 0 || (!item.data && item.len)) {
            mc->stop_code = r < 0 ? r : weft__err(WEFT_EINVAL, "map input: item with NULL data");
            mc->input_done = true;
            break;
        }
        if (item.len > SIZE_MAX / 2 - used) {
            snprintf(mc->stop_msg, sizeof mc->stop_msg,
                     "weft_map_stream: item %llu of %zu bytes overflows the chunk's size",
                     (unsigned long long)(mc->next_index + c->n), item.len);
            mc->stop_code = WEFT_EINVAL;
            mc->input_done = true;
            break;
        }
        if (used + item.len > cap) {
            size_t ncap = cap ? cap * 2 : 256;
            while (ncap < used + item.len) ncap *= 2; /* no wrap: used + len <= SIZE_MAX / 2 */
            unsigned char *d = realloc(c->data, ncap);
            if (!d) {
                mc->stop_code = WEFT_ENOMEM;
                mc->input_done = true;
                break;
            }
            c->data = d;
            cap = ncap;
        }
        if (item.len) memcpy(c->data + used, item.data, item.len);
        used += item.len;
        c->n++;
        c->offs[c->n] = used;
    }
    return c;
}

static int dispatch_one(map_call *mc)
{
    map_job *job = &mc->job;
    size_t size = pick_chunk(mc);
    chunk *c;
    if (job->mode == IN_STREAM) {
        size_t room = mc->max_items - mc->inflight_items;
        if (size > room) size = room;
        c = read_stream(mc, size);
        if (!c) return -1;
        if (c->n == 0) {
            chunk_free(c);
            return -1;
        }
    } else {
        size_t left = mc->count - (size_t)mc->next_index;
        if (left == 0) {
            mc->input_done = true;
            return -1;
        }
        if (size > left) size = left;
        c = calloc(1, sizeof *c);
        if (!c) {
            mc->stop_code = WEFT_ENOMEM;
            return -1;
        }
        c->n = size;
    }
    c->job = job;
    c->start = mc->next_index;
    if (mc->res && job->mode != IN_STREAM) {
        c->ents = mc->res->e + c->start;
    } else {
        c->ents = malloc_n(c->n, sizeof *c->ents);
        c->own_ents = true;
        if (!c->ents) {
            chunk_free(c);
            mc->stop_code = WEFT_ENOMEM;
            return -1;
        }
    }
    weft_future *f = weft__future_alloc();
    if (!f) {
        chunk_free(c);
        mc->stop_code = WEFT_ENOMEM;
        return -1;
    }
    atomic_store_explicit(&f->state, WEFT_FUTURE_PENDING | WEFT__ST_INTERNAL | WEFT__ST_DIRTY,
                          memory_order_relaxed);
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    f->fn = job->fn;
    f->ex = job->ex;
    c->run.run = map_run_chunk;
    f->job = c;
    f->in = NULL;
    f->in_len = 0;
    mc->next_index += c->n;
    mc->inflight_items += c->n;
    mc->ring[(mc->ring_head + mc->ring_n) % mc->ring_cap] = c;
    mc->ring_n++;
    atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&job->pending, 1, memory_order_seq_cst);
    int rc = weft__enqueue(job->ex, f);
    if (rc) {
        /* shut down under us: the chunk never runs; fail its items */
        atomic_fetch_sub_explicit(&job->refs, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&job->pending, 1, memory_order_relaxed);
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
        weft_future_release(f);
        for (size_t i = 0; i < c->n; i++) entry_cancel(&c->ents[i]);
        c->state = 1;
        mc->stop_code = rc;
        return -1;
    }
    return 0;
}

static void note_error(map_call *mc, uint64_t idx, int err)
{
    if (err == WEFT_ECANCELLED) {
        mc->any_cancelled = true;
        return;
    }
    if (!mc->first_err || idx < mc->first_err_idx) {
        mc->first_err = err;
        mc->first_err_idx = idx;
    }
}

static void deliver(map_call *mc, chunk *c)
{
    const weft_map_options *o = mc->o;
    bool scan = o->on_result || c->nfail;
    for (size_t i = 0; scan && i < c->n; i++) {
        entry *e = &c->ents[i];
        uint64_t idx = c->start + i;
        if (e->err) {
            note_error(mc, idx, e->err);
            if (mc->res) mc->res->failed++;
        }
        if (o->on_result && !mc->stop_code) {
            int r = o->on_result(
                o->arg, idx, e->err, entry_data(e), entry_len(e),
                e->err ? (e->u.ptr ? (const char *)e->u.ptr : weft_strerror(e->err)) : NULL);
            if (r) {
                mc->stop_code = r;
                atomic_store(&mc->job.stop, 1);
            }
        }
    }
    if (c->own_ents) {
        if (mc->res) {
            /* streams: move the entries into the results */
            if (results_reserve(mc->res, c->start + c->n) == 0) {
                memcpy(mc->res->e + c->start, c->ents, c->n * sizeof *c->ents);
                if (mc->res->count < c->start + c->n) mc->res->count = c->start + c->n;
            } else {
                for (size_t i = 0; i < c->n; i++) entry_clear(&c->ents[i]);
                if (!mc->stop_code) mc->stop_code = WEFT_ENOMEM;
            }
        } else {
            for (size_t i = 0; i < c->n; i++) entry_clear(&c->ents[i]);
        }
    }
    mc->inflight_items -= c->n;
    c->state = 2;
    if (WEFT__UNLIKELY(mc->progress != NULL)) weft_progress_add(mc->progress, c->n);
}

static bool collect(map_call *mc)
{
    chunk *s = atomic_exchange_explicit(&mc->job.done_stack, NULL, memory_order_acquire);
    if (!s) return false;
    for (; s; s = s->next_done) {
        s->state = 1;
        if (s->ns && s->n) mc->per_item[mc->nsamples++ % 4] = (double)s->ns / (double)s->n;
    }
    bool ordered = !(mc->o->flags & WEFT_MAP_UNORDERED);
    if (!ordered) {
        for (size_t k = 0; k < mc->ring_n; k++) {
            chunk *c = mc->ring[(mc->ring_head + k) % mc->ring_cap];
            if (c->state == 1) deliver(mc, c);
        }
    }
    while (mc->ring_n) {
        chunk *c = mc->ring[mc->ring_head];
        if (c->state == 1) deliver(mc, c);
        if (c->state != 2) break;
        chunk_free(c);
        mc->ring_head = (mc->ring_head + 1) % mc->ring_cap;
        mc->ring_n--;
    }
    return true;
}

static void wait_for_chunks(map_call *mc)
{
    map_job *job = &mc->job;
    weft_executor *cur = weft__current_executor();
    if (cur == job->ex && weft__help_one(cur)) return;
    /* Sleep until half of what is queued has finished (all of it once
     * nothing more can be queued): one wake-up per many chunks, and the
     * workers still have the other half to run while this thread refills.
     * With on_result, results must also reach it as they come: a worker
     * whose chunk ran >= EAGER_NS wakes it at once (one wake per chunk of
     * real work), and so does one whose chunk finishes when this thread has
     * slept EAGER_LATE_NS (a short chunk's result does not wait behind long
     * ones). Waking at every chunk doubled the context switches and the CPU
     * time of a stream of tiny chunks; sleeping at most 1 ms instead cost
     * +50% CPU there (a short timer armed per sleep). */
    bool more = !mc->input_done && !mc->stop_code && !atomic_load(&job->stop);
    int lw = more ? (int)(mc->ring_n / 2) : 0;
    int64_t tick = cur ? 50000 : 200000000;
    /* the tick guards against a lost wake-up; a deadline shortens it */
    if (job->deadline && !atomic_load_explicit(&job->stop, memory_order_relaxed)) {
        uint64_t now = weft__now_ns();
        if (now >= job->deadline) return;
        if (job->deadline - now < (uint64_t)tick) tick = (int64_t)(job->deadline - now);
    }
    atomic_store_explicit(&job->low_water, lw, memory_order_relaxed);
    if (job->eager) atomic_store_explicit(&job->sleep_t0, weft__now_ns(), memory_order_relaxed);
    uint32_t seq = atomic_load_explicit(&job->wake, memory_order_acquire);
    atomic_store_explicit(&job->caller_sleeping, 1, memory_order_seq_cst);
    /* A worker that did not see caller_sleeping took `pending` down before
     * the load below, so its chunk is on done_stack by then: an eager
     * chunk published in that window is not slept through. */
    if (atomic_load_explicit(&job->pending, memory_order_seq_cst) > lw &&
        !atomic_load_explicit(&job->done_stack, memory_order_acquire))
        weft__futex_wait(&job->wake, seq, tick);
    atomic_store_explicit(&job->caller_sleeping, 0, memory_order_relaxed);
}

static int run_map(map_call *mc, weft_results **out)
{
    map_job *job = &mc->job;
    const weft_map_options *o = mc->o;
    weft_executor *ex = job->ex;
    mc->workers = weft_executor_workers(ex);
    if (mc->workers < 1) mc->workers = 1;
    mc->max_items = o->max_in_flight ? o->max_in_flight : (size_t)1024 * (size_t)mc->workers;
    mc->ring_cap = (size_t)(8 * mc->workers + 8);
    mc->ring = calloc(mc->ring_cap, sizeof *mc->ring);
    if (!mc->ring) return weft__err(WEFT_ENOMEM, "weft_map: out of memory");
    if (out) {
        mc->res = calloc(1, sizeof *mc->res);
        if (!mc->res) {
            free(mc->ring);
            return weft__err(WEFT_ENOMEM, "weft_map: out of memory");
        }
        if (job->mode != IN_STREAM) {
            if (results_alloc_fixed(mc->res, mc->count)) {
                free(mc->res);
                free(mc->ring);
                return weft__err(WEFT_ENOMEM, "weft_map: cannot allocate %zu results", mc->count);
            }
            mc->res->count = mc->count;
        }
    }
    atomic_init(&job->stop, 0);
    atomic_init(&job->timed_out, 0);
    atomic_init(&job->done_stack, NULL);
    atomic_init(&job->wake, 0);
    atomic_init(&job->caller_sleeping, 0);
    job->eager = o->on_result != NULL;
    atomic_init(&job->sleep_t0, 0);
    atomic_init(&job->pending, 0);
    atomic_init(&job->low_water, 0);
    atomic_init(&job->refs, 0);
    if (weft__progress_wanted(o->progress))
        mc->progress = weft__progress_start("map", job->mode == IN_STREAM ? 0 : mc->count);

    for (;;) {
        if (job->deadline) deadline_passed(job);
        bool stopping = mc->stop_code || atomic_load_explicit(&job->stop, memory_order_relaxed);
        while (!stopping && !mc->input_done && mc->ring_n < mc->ring_cap &&
               (job->mode != IN_STREAM || mc->inflight_items < mc->max_items)) {
            if (dispatch_one(mc) < 0) break;
            /* on serial the chunk already ran: collect before reading more */
            if (weft__executor_is_serial(ex)) collect(mc);
            stopping = mc->stop_code || atomic_load_explicit(&job->stop, memory_order_relaxed);
        }
        if (collect(mc)) continue;
        if (mc->ring_n == 0) {
            stopping = mc->stop_code || atomic_load_explicit(&job->stop, memory_order_relaxed);
            if (mc->input_done || stopping) break;
            continue;
        }
        wait_for_chunks(mc);
    }
    /* every chunk is delivered; wait for the workers' last touch of the job */
    while (atomic_load_explicit(&job->refs, memory_order_acquire) != 0) weft__cpu_relax();
    free(mc->ring);
    weft_progress_destroy(mc->progress);

    if (mc->res && job->mode != IN_STREAM) {
        /* items never queued after a stop */
        for (size_t i = (size_t)mc->next_index; i < mc->count; i++) {
            entry_cancel(&mc->res->e[i]);
            mc->res->failed++;
            mc->any_cancelled = true;
        }
    } else if (job->mode != IN_STREAM && mc->next_index < mc->count) {
        mc->any_cancelled = true;
    }
    if (out) *out = mc->res;
    int rc = 0;
    /* timed out: the deadline cancelled items, or left stream input unread */
    bool timed_out = atomic_load(&job->timed_out) &&
                     (mc->any_cancelled || (job->mode == IN_STREAM && !mc->input_done));
    if (mc->stop_code)
        rc = mc->stop_code;
    else if (timed_out)
        rc = WEFT_ETIMEDOUT;
    else if (mc->first_err)
        rc = mc->first_err;
    else if (mc->any_cancelled)
        rc = WEFT_ECANCELLED;
    if (rc == mc->first_err && rc)
        weft__err(rc, "weft_map: item %llu failed: %s", (unsigned long long)mc->first_err_idx,
                  weft_strerror(rc));
    else if (rc == WEFT_ECANCELLED)
        weft__err(rc, "weft_map: items were cancelled");
    else if (timed_out)
        weft__err(rc, "weft_map: the deadline of %g s passed: items not started were cancelled",
                  mc->o->timeout);
    else if (rc && mc->stop_msg[0])
        weft__err(rc, "%s", mc->stop_msg);
    else if (rc)
        weft__err(rc, "weft_map: stopped with %s", weft_strerror(rc));
    return rc;
}

static int map_common(weft_executor *ex, weft_task_fn fn, const weft_map_options *opts,
                      map_call *mc, weft_results **out, const char *name)
{
    weft_map_options local_opts;
    if (out) *out = NULL;
    if (weft__worker_process)
        return weft__err(WEFT_ENOTSUP,
                         "%s: a task of the processes backend cannot start a map "
                         "(nested maps are supported on serial and threads only)",
                         name);
    if (!ex || !fn)
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", name, !ex ? "the executor" : "the task");
    int orc = weft__opts_read(&local_opts, sizeof local_opts, opts, sizeof local_opts, name);
    if (orc) return orc;
    opts = &local_opts;
    if (opts->retries < 0)
        return weft__err(WEFT_EINVAL, "%s: negative retries %d", name, opts->retries);
    if (opts->flags & WEFT_MAP_MEMO)
        return weft__err(WEFT_ENOTSUP,
                         "%s: WEFT_MAP_MEMO is for weft_map and weft_map_bufs (and weft_parallel)",
                         name);
    if (opts->flags & ~(unsigned)(WEFT_MAP_STOP_ON_ERROR | WEFT_MAP_UNORDERED))
        return weft__err(WEFT_EINVAL, "%s: unknown flags 0x%x", name, opts->flags);
    if (!out && !opts->on_result)
        return weft__err(WEFT_EINVAL, "%s: neither out nor on_result is given", name);
    if (!(opts->timeout >= 0)) /* also NaN */
        return weft__err(WEFT_EINVAL, "%s: timeout %g is not 0 (none) or a positive time", name,
                         opts->timeout);
    if (weft__executor_closed(ex))
        return weft__err(WEFT_ECLOSED, "%s: the executor is shut down", name);
    if (weft__executor_caps(ex) & WEFT__CAP_NAMED_TASKS) {
        int rc = weft__check_registered(fn, name);
        if (rc) return rc;
    }
    mc->o = opts;
    mc->job.ex = ex;
    mc->job.fn = fn;
    mc->job.flags = opts->flags;
    mc->job.retries = opts->retries;
    mc->job.seed = opts->seed ? opts->seed : weft__executor_seed(ex);
    /* beyond ~31 years (WEFT_FOREVER included) there is no deadline: the
     * nanoseconds would overflow */
    if (opts->timeout > 0 && opts->timeout < 1e9)
        mc->job.deadline = weft__now_ns() + (uint64_t)(opts->timeout * 1e9);
    return run_map(mc, out);
}

int weft_map(weft_executor *ex, weft_task_fn fn, const void *items, size_t item_size, size_t count,
             const weft_map_options *opts, weft_results **out)
{
    if (out) *out = NULL;
    if (count && item_size && !items) return weft__err(WEFT_EINVAL, "weft_map: items is NULL");
    if (item_size && count > (UINTPTR_MAX - (uintptr_t)items) / item_size)
        return weft__err(WEFT_EINVAL,
                         "weft_map: %zu items of %zu bytes overflow the address space (count "
                         "* item_size is the size of the array at items)",
                         count, item_size);
    weft_map_options mo;
    if (opts) { /* the caller's size first: a shorter struct has no flags to read */
        int orc = WEFT__OPTS_READ(mo, opts, "weft_map: weft_map_options");
        if (orc) return orc;
        opts = &mo;
    }
    if (opts && (opts->flags & WEFT_MAP_MEMO)) {
        weft_buf *bufs = malloc_n(count ? count : 1, sizeof *bufs);
        if (!bufs) return weft__err(WEFT_ENOMEM, "weft_map: out of memory");
        for (size_t i = 0; i < count; i++)
            bufs[i] = (weft_buf){(const unsigned char *)items + i * item_size, item_size};
        int rc = weft__memo_map(ex, fn, bufs, count, opts, out, "weft_map");
        free(bufs);
        return rc;
    }
    map_call mc;
    memset(&mc, 0, sizeof mc);
    mc.job.mode = IN_ARRAY;
    mc.job.items = items;
    mc.job.item_size = item_size;
    mc.count = count;
    return map_common(ex, fn, opts, &mc, out, "weft_map");
}

int weft_map_bufs(weft_executor *ex, weft_task_fn fn, const weft_buf *items, size_t count,
                  const weft_map_options *opts, weft_results **out)
{
    if (out) *out = NULL;
    if (count && !items) return weft__err(WEFT_EINVAL, "weft_map_bufs: items is NULL");
    for (size_t i = 0; i < count; i++)
        if (!items[i].data && items[i].len)
            return weft__err(WEFT_EINVAL, "weft_map_bufs: items[%zu] has NULL data", i);
    weft_map_options mo;
    if (opts) { /* the caller's size first: a shorter struct has no flags to read */
        int orc = WEFT__OPTS_READ(mo, opts, "weft_map_bufs: weft_map_options");
        if (orc) return orc;
        opts = &mo;
    }
    if (opts && (opts->flags & WEFT_MAP_MEMO))
        return weft__memo_map(ex, fn, items, count, opts, out, "weft_map_bufs");
    map_call mc;
    memset(&mc, 0, sizeof mc);
    mc.job.mode = IN_BUFS;
    mc.job.bufs = items;
    mc.count = count;
    return map_common(ex, fn, opts, &mc, out, "weft_map_bufs");
}

int weft_map_stream(weft_executor *ex, weft_task_fn fn, weft_input_cb next, void *arg,
                    const weft_map_options *opts, weft_results **out)
{
    if (out) *out = NULL;
    if (!next) return weft__err(WEFT_EINVAL, "weft_map_stream: next is NULL");
    map_call mc;
    memset(&mc, 0, sizeof mc);
    mc.job.mode = IN_STREAM;
    mc.next = next;
    mc.next_arg = arg;
    return map_common(ex, fn, opts, &mc, out, "weft_map_stream");
}

int weft_map_zip(weft_executor *ex, weft_task_fn fn, const weft_map_input *inputs, size_t ninputs,
                 const weft_map_options *opts, weft_results **out)
{
    if (out) *out = NULL;
    if (!inputs || ninputs == 0 || ninputs > MAX_ARGS)
        return weft__err(WEFT_EINVAL, "weft_map_zip: %s",
                         !inputs   ? "inputs is NULL"
                         : ninputs ? "more than 2^20 inputs"
                                   : "no inputs");
    size_t count = SIZE_MAX; /* as Python's zip: the shortest input */
    for (size_t k = 0; k < ninputs; k++) {
        const weft_map_input *in = &inputs[k];
        if (in->count < count) count = in->count;
        if (!in->count) continue;
        if (in->bufs) {
            for (size_t i = 0; i < in->count; i++)
                if (!in->bufs[i].data && in->bufs[i].len)
                    return weft__err(WEFT_EINVAL,
                                     "weft_map_zip: inputs[%zu].bufs[%zu] has NULL data", k, i);
        } else if (in->item_size) {
            if (!in->items)
                return weft__err(WEFT_EINVAL, "weft_map_zip: inputs[%zu].items is NULL", k);
            if (in->count > (UINTPTR_MAX - (uintptr_t)in->items) / in->item_size)
                return weft__err(WEFT_EINVAL,
                                 "weft_map_zip: inputs[%zu]: %zu items of %zu bytes overflow the "
                                 "address space",
                                 k, in->count, in->item_size);
        }
    }
    map_call mc;
    memset(&mc, 0, sizeof mc);
    mc.job.mode = IN_ZIP;
    mc.job.zin = inputs;
    mc.job.nzin = ninputs;
    mc.count = count;
    return map_common(ex, fn, opts, &mc, out, "weft_map_zip");
}

/* ---- results -------------------------------------------------------------------- */

int weft__results_new(size_t count, weft_results **out)
{
    *out = NULL;
    weft_results *r = calloc(1, sizeof *r);
    if (!r || results_alloc_fixed(r, count) != 0) {
        free(r);
        return weft__err(WEFT_ENOMEM, "weft_map: out of memory for %zu results", count);
    }
    for (size_t i = 0; i < count; i++) entry_cancel(&r->e[i]);
    r->count = count;
    r->failed = count;
    *out = r;
    return 0;
}

int weft__results_set(weft_results *r, size_t i, int err, const void *data, size_t len,
                      const char *msg)
{
    entry *e = &r->e[i];
    bool was_failed = e->err != 0;
    entry_clear(e);
    if (err) {
        e->err = err;
        e->u.ptr = msg ? strdup(msg) : NULL;
        if (!was_failed) r->failed++;
        return 0;
    }
    if (len <= sizeof e->u.inl) {
        if (len) memcpy(e->u.inl, data, len);
        e->len = (uint32_t)len;
    } else {
        void *p = weft__out_alloc(len);
        if (!p) {
            entry_cancel(e);
            if (!was_failed) r->failed++;
            return WEFT_ENOMEM;
        }
        memcpy(p, data, len);
        e->u.ptr = p;
        e->len = LEN_HEAP;
    }
    e->err = 0;
    if (was_failed) r->failed--;
    return 0;
}

size_t weft_results_count(const weft_results *r)
{
    return r ? r->count : 0;
}

int weft_results_get(const weft_results *r, size_t i, const void **data, size_t *len)
{
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!r) return weft__err(WEFT_EINVAL, "weft_results_get: NULL results");
    if (i >= r->count)
        return weft__err(WEFT_EINVAL, "weft_results_get: index %zu out of range (%zu items)", i,
                         r->count);
    const entry *e = &r->e[i];
    if (e->err) return e->err;
    if (data) *data = entry_data(e);
    if (len) *len = entry_len(e);
    return 0;
}

int weft_results_gather(const weft_results *r, void *dst, size_t elem_size, size_t count,
                        size_t *bad)
{
    if (bad) *bad = 0;
    if (!r || (!dst && count) || !elem_size)
        return weft__err(WEFT_EINVAL, "weft_results_gather: %s",
                         !r           ? "NULL results"
                         : !elem_size ? "elem_size is 0"
                                      : "dst is NULL");
    if (count != r->count)
        return weft__err(WEFT_EINVAL, "weft_results_gather: room for %zu items, the map has %zu",
                         count, r->count);
    unsigned char *p = dst;
    for (size_t i = 0; i < count; i++, p += elem_size) {
        const entry *e = &r->e[i];
        if (e->err) {
            if (bad) *bad = i;
            return weft__err(e->err, "weft_results_gather: item %zu failed: %s", i,
                             e->u.ptr ? (const char *)e->u.ptr : weft_strerror(e->err));
        }
        if (entry_len(e) != elem_size) {
            if (bad) *bad = i;
            return weft__err(WEFT_EINVAL,
                             "weft_results_gather: item %zu has %zu output bytes, not %zu", i,
                             entry_len(e), elem_size);
        }
        memcpy(p, entry_data(e), elem_size);
    }
    return 0;
}

const char *weft_results_error(const weft_results *r, size_t i)
{
    if (!r || i >= r->count) return NULL;
    const entry *e = &r->e[i];
    if (!e->err) return NULL;
    return e->u.ptr ? (const char *)e->u.ptr : weft_strerror(e->err);
}

size_t weft_results_failed(const weft_results *r)
{
    return r ? r->failed : 0;
}

int weft_results_destroy(weft_results *r)
{
    if (!r) return 0;
    for (size_t i = 0; i < r->count; i++) entry_clear(&r->e[i]);
    results_free_array(r);
    free(r);
    return 0;
}

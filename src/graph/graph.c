/* graph.c : lazy task graphs -- build, compute, results, release.
 *
 * Building
 * --------
 * Nodes live in slabs of 4096 (their addresses never move), their
 * arguments in one growing array, the producer -> consumer edges in another
 * (a singly linked list per producer, by index), literal bytes and each
 * node's argument-block room in an arena of 64 KiB blocks. Adding a node is
 * a few stores and an amortized array growth: no malloc of its own. With
 * WEFT_GRAPH_MERGE, a call's key is an xxHash3 of its task's name and its
 * arguments (the producers' keys, literal bytes), as dask's tokenize; an
 * open-addressing table maps keys to nodes, and an equal call (same task,
 * same producer nodes, equal bytes) returns the existing node.
 *
 * Computing
 * ---------
 * Setup, on the caller's thread: a depth-first walk from the targets marks
 * the nodes this compute needs (stopping at nodes whose output is held:
 * persist), sets each needed node's `deps` (inputs still to finish) and each
 * visited node's `uses` (needed consumers that have not run). Then every
 * ready node is submitted.
 *
 * Running is driven by completions, through the public executor API only,
 * so it works on any backend: a node is one weft_submit_ex of its task (the
 * argument block borrowed, index = node id for a stable seed) and one
 * weft_future_on_done callback. The callback runs where the future
 * finishes (a worker, for threads); it takes the output (the future *is*
 * the output's holder: nothing is copied), drops one `uses` of each input
 * -- the last consumer frees a non-kept producer's output, which is what
 * keeps a compute's memory to the width of the graph --, and decrements the
 * `deps` of each consumer; a consumer reaching 0 is submitted from there,
 * on that worker, into its own deque. Failure propagates through the same
 * counters: a failed node marks its consumers `doomed` (with the id of the
 * node that failed first) before it decrements them, and a doomed node that
 * becomes ready is finished as WEFT_EDEPEND without running.
 *
 * Drivers: a thread that makes nodes ready pushes them on its thread-local
 * driver stack and submits them in a loop, instead of submitting from
 * inside the completion that made them ready. On the serial backend, where
 * a submit runs the task (and its callback) inline, this turns what would
 * be recursion as deep as the graph into a loop.
 *
 * Arguments: on serial and threads (one address space) the block holds
 * (pointer, length) pairs straight into the producers' outputs, kept alive
 * by `uses` until the consumer has run: zero copies. On other backends it
 * holds the bytes (one copy per consumer), so tasks read the same API.
 *
 * Lifetime: the compute's state (grun) is on the caller's stack, and the
 * caller returns once every needed node has finished (`remaining` == 0).
 * Taking `remaining` down is the last touch of the run and of the graph in
 * a node's processing: a node that made others ready did so before (so
 * `remaining` cannot reach 0 under it), and the wake-up after the last
 * decrement goes through a static futex word (`done_seq`), never through
 * the caller's stack. No per-callback reference count is needed, which
 * saves two contended atomics per node.
 *
 * False sharing: what every completion writes (`remaining`, the byte
 * counts) sits on cache lines of its own, apart from what every completion
 * only reads (the run's settings, the graph's arrays).
 *
 * Memory orders: the setup's plain writes reach the workers through the
 * executor's queues (a submit publishes, a worker acquires). `deps` and
 * `uses` are acq_rel read-modify-writes: whoever takes a count to 0 sees
 * everything the other decrementers wrote before (a producer's `fut`, a
 * consumer's `doomed`). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/memo_hook.h"
#include "diag/progress_internal.h"
#include "graph/graph_internal.h"

#define ARENA_BLOCK (64u * 1024u)

/* Tests set this to exercise the copying argument blocks (used by the
 * backends with other address spaces) on serial and threads. */
bool weft__graph_force_copy;
#define DRV_INLINE 64

/* ---- arena -------------------------------------------------------------- */

typedef struct ablock {
    struct ablock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} ablock;

static void *arena_alloc(weft_graph *g, size_t n)
{
    n = (n + 15u) & ~(size_t)15u;
    if (n == 0) n = 16;
    ablock *b = g->arena;
    if (b && b->cap - b->used >= n) {
        void *p = b->data + b->used;
        b->used += n;
        return p;
    }
    bool big = n > ARENA_BLOCK / 4;
    size_t cap = big ? n : ARENA_BLOCK;
    ablock *nb = NULL;
    if (!big) {
        size_t have;
        nb = weft__graph_spare_take(WEFT__SPARE_ARENA, &have);
    }
    if (!nb) nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    nb->cap = cap;
    nb->used = n;
    if (big && b) { /* keep filling the current block */
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        g->arena = nb;
    }
    return nb->data;
}

/* ---- names and messages ------------------------------------------------------ */

const char *weft__graph_task_name(weft_task_fn fn, char *buf, size_t cap)
{
    if (!fn) return "future"; /* a future node */
    const char *name = weft_task_name(fn);
    if (name) return name;
    void *p;
    memcpy(&p, &fn, sizeof p < sizeof fn ? sizeof p : sizeof fn);
    snprintf(buf, cap, "task@%p", p);
    return buf;
}

/* The message of a failed or cancelled node. */
static const char *node_msg(const gnode *n)
{
    if (n->msg) return n->msg;
    if (n->fut) {
        const char *m = weft_future_error(n->fut);
        if (m && *m) return m;
    }
    return weft_strerror(n->err);
}

/* ---- memory accounting -------------------------------------------------------- */

static void bytes_add(weft_graph *g, size_t n)
{
    size_t now = atomic_fetch_add_explicit(&g->bytes_live, n, memory_order_relaxed) + n;
    size_t peak = atomic_load_explicit(&g->bytes_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&g->bytes_peak, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void bytes_sub(weft_graph *g, size_t n)
{
    atomic_fetch_sub_explicit(&g->bytes_live, n, memory_order_relaxed);
}

/* Frees a held output (the node's future). */
static void release_output(weft_graph *g, gnode *n)
{
    weft_future *f = n->fut;
    if (!f) return;
    n->fut = NULL;
    if (atomic_load_explicit(&n->state, memory_order_relaxed) == WEFT_NODE_DONE) {
        bytes_sub(g, n->out_len);
        atomic_store_explicit(&n->state, WEFT_NODE_RELEASED, memory_order_relaxed);
    }
    n->out_len = 0;
    weft_future_release(f);
}

/* ---- create / destroy ---------------------------------------------------------- */

int weft_graph_create(const weft_graph_options *opts, weft_graph **out)
{
    weft_graph_options local_opts;
    if (!out) return weft__err(WEFT_EINVAL, "weft_graph_create: out is NULL");
    *out = NULL;
    int orc = WEFT__OPTS_READ(local_opts, opts, "weft_graph_create: weft_graph_options");
    if (orc) return orc;
    opts = &local_opts;
    if (opts->flags & ~(unsigned)WEFT_GRAPH_MERGE)
        return weft__err(WEFT_EINVAL, "weft_graph_create: unknown flags 0x%x", opts->flags);
    weft_graph *g;
    if (posix_memalign((void **)&g, WEFT__CACHELINE, sizeof *g))
        return weft__err(WEFT_ENOMEM, "weft_graph_create: out of memory");
    memset(g, 0, sizeof *g);
    g->flags = opts->flags;
    atomic_init(&g->bytes_live, 0);
    atomic_init(&g->bytes_peak, 0);
    *out = g;
    return 0;
}

int weft_graph_destroy(weft_graph *g)
{
    if (!g) return 0;
    if (g->run)
        return weft__err(WEFT_EBUSY, "weft_graph_destroy: a compute of this graph is running");
    for (uint32_t i = 0; i < g->nnodes; i++) {
        gnode *n = node_at(g, i);
        if (n->fut) weft_future_release(n->fut);
        if (n->src) weft_future_release(n->src);
        free(n->msg);
        free(n->copy);
    }
    for (size_t s = 0; s < g->nslabs; s++)
        weft__graph_spare_give(WEFT__SPARE_SLAB, g->slabs[s], SLAB_NODES * sizeof(gnode));
    free(g->slabs);
    weft__graph_spare_give(WEFT__SPARE_ARGS, g->args, g->nargs_cap * sizeof *g->args);
    weft__graph_spare_give(WEFT__SPARE_EDGES, g->edges, g->edges_cap * sizeof *g->edges);
    free(g->table);
    for (ablock *b = g->arena; b;) {
        ablock *next = b->next;
        if (b->cap == ARENA_BLOCK)
            weft__graph_spare_give(WEFT__SPARE_ARENA, b, sizeof *b + ARENA_BLOCK);
        else
            free(b);
        b = next;
    }
    free(g);
    return 0;
}

size_t weft_graph_size(const weft_graph *g)
{
    return g ? g->nnodes : 0;
}

/* ---- merge table ------------------------------------------------------------------- */

static uint64_t call_key(const weft_graph *g, weft_task_fn fn, const weft_arg *args, size_t nargs)
{
    const char *name = weft_task_name(fn);
    uint64_t h;
    if (name) {
        h = XXH3_64bits(name, strlen(name));
    } else {
        unsigned char b[sizeof fn];
        memcpy(b, &fn, sizeof fn);
        h = XXH3_64bits_withSeed(b, sizeof b, 0x66756e63u);
    }
    uint64_t na = nargs;
    h = XXH3_64bits_withSeed(&na, sizeof na, h);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].node != WEFT_NODE_NONE) {
            uint64_t k = node_at(g, args[i].node)->key;
            h = XXH3_64bits_withSeed(&k, sizeof k, h ^ 0x6e6f6465u);
        } else {
            uint64_t len = args[i].len;
            h = XXH3_64bits_withSeed(&len, sizeof len, h ^ 0x62797465u);
            h = XXH3_64bits_withSeed(args[i].data, args[i].len, h);
        }
    }
    return h;
}

static bool same_call(const weft_graph *g, const gnode *n, weft_task_fn fn, const weft_arg *args,
                      size_t nargs)
{
    if (n->fn != fn || n->nargs != nargs) return false;
    for (size_t i = 0; i < nargs; i++) {
        const garg *a = &g->args[n->arg0 + i];
        if (a->node != args[i].node) return false;
        if (a->node == NONE32 &&
            (a->len != args[i].len || (a->len && memcmp(a->data, args[i].data, a->len) != 0)))
            return false;
    }
    return true;
}

static uint32_t table_find(const weft_graph *g, uint64_t key, weft_task_fn fn, const weft_arg *args,
                           size_t nargs)
{
    if (!g->table_cap) return NONE32;
    size_t mask = g->table_cap - 1;
    for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
        uint32_t id = g->table[i];
        if (id == NONE32) return NONE32;
        const gnode *n = node_at(g, id);
        if (n->key == key && same_call(g, n, fn, args, nargs)) return id;
    }
}

static void table_put(weft_graph *g, uint32_t id)
{
    size_t mask = g->table_cap - 1;
    size_t i = (size_t)node_at(g, id)->key & mask;
    while (g->table[i] != NONE32) i = (i + 1) & mask;
    g->table[i] = id;
    g->table_n++;
}

static int table_grow(weft_graph *g)
{
    if ((g->table_n + 1) * 2 <= g->table_cap) return 0;
    size_t cap = g->table_cap ? g->table_cap * 2 : 1024;
    uint32_t *t = malloc(cap * sizeof *t);
    if (!t) return WEFT_ENOMEM;
    memset(t, 0xff, cap * sizeof *t);
    uint32_t *old = g->table;
    size_t old_cap = g->table_cap;
    g->table = t;
    g->table_cap = cap;
    g->table_n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NONE32) table_put(g, old[i]);
    free(old);
    return 0;
}

/* ---- building ------------------------------------------------------------------------ */

/* Makes room for node `id` in the slabs. @return 0 or WEFT_ENOMEM. */
static int reserve_slab(weft_graph *g, uint32_t id)
{
    size_t slab = id >> SLAB_SHIFT;
    if (slab < g->nslabs) return 0;
    gnode **s = realloc(g->slabs, (slab + 1) * sizeof *s);
    if (!s) return WEFT_ENOMEM;
    g->slabs = s;
    size_t have;
    gnode *warm = weft__graph_spare_take(WEFT__SPARE_SLAB, &have);
    if (warm) {
        memset(warm, 0, have);
        s[slab] = warm;
    } else {
        s[slab] = calloc(SLAB_NODES, sizeof(gnode));
        if (!s[slab]) return WEFT_ENOMEM;
    }
    g->nslabs = slab + 1;
    return 0;
}

/* A new graph's first call: the argument and edge arrays a destroyed graph
 * left (spare.c), so a loop of graphs does not grow them again each time. */
static void take_arrays(weft_graph *g)
{
    size_t bytes;
    g->args = weft__graph_spare_take(WEFT__SPARE_ARGS, &bytes);
    g->nargs_cap = bytes / sizeof *g->args;
    if (!g->edges) {
        g->edges = weft__graph_spare_take(WEFT__SPARE_EDGES, &bytes);
        g->edges_cap = bytes / sizeof *g->edges;
    }
}

int weft_graph_call(weft_graph *g, weft_task_fn fn, const weft_arg *args, size_t nargs,
                    weft_node *out)
{
    if (out) *out = WEFT_NODE_NONE;
    if (!g || !fn || !out || (!args && nargs))
        return weft__err(WEFT_EINVAL, "weft_graph_call: %s is NULL",
                         !g     ? "the graph"
                         : !fn  ? "the task"
                         : !out ? "out"
                                : "args");
    if (g->run) return weft__err(WEFT_EBUSY, "weft_graph_call: a compute of this graph is running");
    if (nargs > MAX_ARGS)
        return weft__err(WEFT_EINVAL, "weft_graph_call: %zu arguments (at most %u)", nargs,
                         MAX_ARGS);
    if (g->nnodes >= NONE32 - 1)
        return weft__err(WEFT_ENOMEM, "weft_graph_call: the graph is full (%u nodes)", g->nnodes);
    size_t nnode_args = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].node != WEFT_NODE_NONE) {
            if (args[i].node >= g->nnodes)
                return weft__err(WEFT_EINVAL,
                                 "weft_graph_call: argument %zu names node %u, "
                                 "which does not exist (%u nodes)",
                                 i, args[i].node, g->nnodes);
            nnode_args++;
        } else if (!args[i].data && args[i].len) {
            return weft__err(WEFT_EINVAL, "weft_graph_call: argument %zu has NULL data", i);
        }
    }
    uint64_t key = 0;
    if (g->flags & WEFT_GRAPH_MERGE) {
        key = call_key(g, fn, args, nargs);
        uint32_t id = table_find(g, key, fn, args, nargs);
        if (id != NONE32) {
            g->merged++;
            *out = id;
            return 0;
        }
        if (table_grow(g)) return weft__err(WEFT_ENOMEM, "weft_graph_call: out of memory");
    }
    /* reserve everything before changing anything */
    uint32_t id = g->nnodes;
    if (reserve_slab(g, id)) return weft__err(WEFT_ENOMEM, "weft_graph_call: out of memory");
    if (WEFT__UNLIKELY(!g->args)) take_arrays(g);
    if (weft__grow(&g->args, &g->nargs_cap, g->nargs_used + nargs, sizeof *g->args, 1024) ||
        weft__grow(&g->edges, &g->edges_cap, g->nedges + nnode_args, sizeof *g->edges, 1024))
        return weft__err(WEFT_ENOMEM, "weft_graph_call: out of memory");
    args_hdr *blk = arena_alloc(g, ARGS_HDR + (size_t)ARGS_ENT * nargs);
    if (!blk) return weft__err(WEFT_ENOMEM, "weft_graph_call: out of memory");
    args_ent *ents = (args_ent *)(void *)((unsigned char *)blk + ARGS_HDR);
    blk->magic = ARGS_MAGIC;
    blk->mode = ARGS_REF;
    blk->nargs = (uint32_t)nargs;
    blk->pad = 0;
    garg *ga = &g->args[g->nargs_used];
    for (size_t i = 0; i < nargs; i++) {
        ga[i].node = args[i].node;
        ga[i].pad = 0;
        ga[i].len = args[i].len;
        ga[i].data = NULL;
        ents[i].a = 0;
        ents[i].len = 0;
        if (args[i].node == WEFT_NODE_NONE) {
            void *copy = arena_alloc(g, args[i].len);
            if (!copy) return weft__err(WEFT_ENOMEM, "weft_graph_call: out of memory");
            if (args[i].len) memcpy(copy, args[i].data, args[i].len);
            ga[i].data = copy;
            ents[i].a = (uint64_t)(uintptr_t)copy;
            ents[i].len = args[i].len;
        }
    }
    gnode *n = node_at(g, id);
    n->fn = fn;
    n->g_back = g;
    n->block = blk;
    n->key = key;
    n->arg0 = (uint32_t)g->nargs_used;
    n->nargs = (uint32_t)nargs;
    n->edges = NONE32;
    n->id = id;
    n->t_run = UINT64_MAX;
    atomic_init(&n->state, WEFT_NODE_NEW);
    atomic_init(&n->deps, 0);
    atomic_init(&n->uses, 0);
    atomic_init(&n->doomed, 0);
    atomic_init(&n->handle, NULL);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].node == WEFT_NODE_NONE) continue;
        gnode *p = node_at(g, args[i].node);
        g->edges[g->nedges] = (gedge){id, p->edges};
        p->edges = (uint32_t)g->nedges++;
    }
    g->nargs_used += nargs;
    g->nnodes++;
    if (g->flags & WEFT_GRAPH_MERGE) table_put(g, id);
    *out = id;
    return 0;
}

int weft_graph_future(weft_graph *g, weft_future *f, weft_node *out)
{
    if (out) *out = WEFT_NODE_NONE;
    if (!g || !f || !out)
        return weft__err(WEFT_EINVAL, "weft_graph_future: %s is NULL",
                         !g   ? "the graph"
                         : !f ? "the future"
                              : "out");
    if (g->run)
        return weft__err(WEFT_EBUSY, "weft_graph_future: a compute of this graph is running");
    if (g->nnodes >= NONE32 - 1)
        return weft__err(WEFT_ENOMEM, "weft_graph_future: the graph is full (%u nodes)", g->nnodes);
    uint32_t id = g->nnodes;
    if (reserve_slab(g, id)) return weft__err(WEFT_ENOMEM, "weft_graph_future: out of memory");
    gnode *n = node_at(g, id);
    uintptr_t p = (uintptr_t)f;
    n->fn = NULL;
    n->src = f;
    weft_future_retain(f);
    n->g_back = g;
    n->block = NULL;
    n->key = XXH3_64bits_withSeed(&p, sizeof p, 0x66757475u);
    n->arg0 = (uint32_t)g->nargs_used;
    n->nargs = 0;
    n->edges = NONE32;
    n->id = id;
    n->t_run = UINT64_MAX;
    atomic_init(&n->state, WEFT_NODE_NEW);
    atomic_init(&n->deps, 0);
    atomic_init(&n->uses, 0);
    atomic_init(&n->doomed, 0);
    atomic_init(&n->handle, NULL);
    g->nnodes++;
    *out = id;
    return 0;
}

/* ---- argument blocks ------------------------------------------------------------------ */

/* What args_check returns for plain bytes (not an argument block): the
 * input of weft_submit, weft_map, weft_parallel or a one-argument node,
 * which the args_* calls read as a single argument. */
static const args_hdr plain_marker;
#define PLAIN (&plain_marker)

/* Checks that in[0..len) is a whole argument block (or plain bytes:
 * PLAIN); else records why, for `fn`, and returns NULL. */
static const args_hdr *args_check(const void *in, size_t len, const char *fn)
{
    if (!in) {
        if (len == 0) return PLAIN; /* an empty input: one empty argument */
        weft__err(WEFT_EINVAL, "%s: the input is NULL with %zu bytes", fn, len);
        return NULL;
    }
    args_hdr h;
    if (len >= ARGS_HDR) memcpy(&h, in, sizeof h);
    if (len < ARGS_HDR || h.magic != ARGS_MAGIC || (h.mode != ARGS_REF && h.mode != ARGS_COPY))
        return PLAIN; /* plain bytes: one argument */
    if (h.nargs > MAX_ARGS || len < ARGS_HDR + (size_t)ARGS_ENT * h.nargs) {
        weft__err(WEFT_EINVAL,
                  "%s: the argument block is cut short: it declares %u arguments, which need "
                  "%zu bytes of entries, but has %zu bytes",
                  fn, h.nargs, (size_t)ARGS_HDR + (size_t)ARGS_ENT * h.nargs, len);
        return NULL;
    }
    return in;
}

int weft_args_count(const void *in, size_t len, size_t *count)
{
    if (count) *count = 0;
    if (!count) return weft__err(WEFT_EINVAL, "weft_args_count: count is NULL");
    const args_hdr *h = args_check(in, len, "weft_args_count");
    if (!h) return WEFT_EINVAL;
    if (h == PLAIN) {
        *count = 1;
        return 0;
    }
    uint32_t n;
    memcpy(&n, &h->nargs, sizeof n);
    *count = n;
    return 0;
}

int weft_args_get(const void *in, size_t len, size_t i, const void **data, size_t *alen)
{
    if (data) *data = NULL;
    if (alen) *alen = 0;
    const args_hdr *h = args_check(in, len, "weft_args_get");
    if (!h) return WEFT_EINVAL;
    if (h == PLAIN) {
        if (i != 0)
            return weft__err(WEFT_EINVAL,
                             "weft_args_get: argument %zu asked for, but the call has 1 argument "
                             "(plain bytes: a one-argument node, or weft_submit, weft_map, "
                             "weft_parallel)",
                             i);
        if (data) *data = in;
        if (alen) *alen = len;
        return 0;
    }
    args_hdr hd;
    memcpy(&hd, h, sizeof hd);
    if (i >= hd.nargs)
        return weft__err(WEFT_EINVAL,
                         "weft_args_get: argument %zu asked for, but the call has %u argument%s "
                         "(0..%u)",
                         i, hd.nargs, hd.nargs == 1 ? "" : "s", hd.nargs ? hd.nargs - 1 : 0);
    args_ent e;
    memcpy(&e, (const unsigned char *)in + ARGS_HDR + (size_t)ARGS_ENT * i, sizeof e);
    const void *p;
    if (hd.mode == ARGS_REF) {
        p = (const void *)(uintptr_t)e.a;
    } else {
        if (e.a > len || e.len > len - e.a)
            return weft__err(WEFT_EINVAL,
                             "weft_args_get: argument %zu (%llu bytes at offset %llu) lies "
                             "outside the block of %zu bytes: the block is cut short",
                             i, (unsigned long long)e.len, (unsigned long long)e.a, len);
        p = (const unsigned char *)in + e.a;
    }
    if (data) *data = p;
    if (alen) *alen = (size_t)e.len;
    return 0;
}

/* ---- computing ------------------------------------------------------------------------ */

struct grun {
    /* read by every completion */
    weft_graph *g;
    weft_executor *ex;
    uint32_t id;
    bool ref;         /* REF argument blocks (one address space) */
    bool cancel_mode; /* WEFT_COMPUTE_CANCEL_ON_ERROR */
    bool memo;        /* WEFT_COMPUTE_MEMO */
    int retries;
    uint32_t *list; /* the needed nodes */
    size_t nlist;
    weft_progress *pg;
    /* written by every completion */
    _Atomic uint32_t remaining WEFT__ALIGNED; /* needed nodes not finished */
    /* written on failure */
    _Atomic int stop WEFT__ALIGNED; /* cancel everything not started */
    _Atomic uint32_t first_fail;    /* 1 + the first node that failed by itself */
};

/* Bumped and woken when a compute's last node finishes; computes wait on
 * it (a spurious wake-up from another graph's compute costs a re-check). */
static _Atomic uint32_t done_seq;

typedef struct driver {
    grun *r;
    uint32_t *v;
    size_t n, cap;
    struct driver *prev;
    uint32_t inl[DRV_INLINE];
} driver;

static __thread driver *T_drv;
static __thread uint64_t T_last_done;

static void dispatch(grun *r, gnode *n);

static void drv_begin(driver *d, grun *r)
{
    d->r = r;
    d->v = d->inl;
    d->n = 0;
    d->cap = DRV_INLINE;
    d->prev = T_drv;
    T_drv = d;
}

/* Submits everything pushed (including what those submits make ready). */
static void drv_end(driver *d)
{
    while (d->n) dispatch(d->r, node_at(d->r->g, d->v[--d->n]));
    if (d->v != d->inl) free(d->v);
    T_drv = d->prev;
}

/* A node became ready: the calling thread's driver for this run submits it
 * once the current completion is processed. */
static void make_ready(grun *r, gnode *n)
{
    driver *d = T_drv;
    if (d->n == d->cap) {
        size_t cap = d->cap * 2;
        uint32_t *v = d->v == d->inl ? malloc(cap * sizeof *v) : realloc(d->v, cap * sizeof *v);
        if (!v) { /* out of memory: submit right away (recursion, but correct) */
            dispatch(r, n);
            return;
        }
        if (d->v == d->inl) memcpy(v, d->inl, sizeof d->inl);
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = n->id;
}

static void cancel_pass(grun *r)
{
    for (size_t i = 0; i < r->nlist; i++) {
        gnode *n = node_at(r->g, r->list[i]);
        weft_future *h = atomic_exchange_explicit(&n->handle, NULL, memory_order_acq_rel);
        if (!h) continue;
        weft_future_cancel(h); /* if still queued: its callback runs now, cancelled */
        weft_future_release(h);
    }
}

static void note_failure(grun *r, gnode *n)
{
    uint32_t z = 0;
    atomic_compare_exchange_strong_explicit(&r->first_fail, &z, n->id + 1, memory_order_acq_rel,
                                            memory_order_relaxed);
    if (r->cancel_mode && !atomic_exchange_explicit(&r->stop, 1, memory_order_acq_rel))
        cancel_pass(r);
}

/* A needed node has finished (ran, failed, or never ran): release its
 * inputs, wake its consumers, count it. */
static void finish_node(grun *r, gnode *n, bool ok, bool root)
{
    weft_graph *g = r->g;
    const garg *a = &g->args[n->arg0];
    size_t freed = 0; /* one update of the shared byte count per node, not per input */
    for (uint32_t i = 0; i < n->nargs; i++) {
        if (a[i].node == NONE32) continue;
        gnode *p = node_at(g, a[i].node);
        if (atomic_fetch_sub_explicit(&p->uses, 1, memory_order_acq_rel) == 1 &&
            !(p->flags & NF_KEEP) &&
            atomic_load_explicit(&p->state, memory_order_relaxed) == WEFT_NODE_DONE) {
            weft_future *f = p->fut;
            p->fut = NULL;
            freed += p->out_len;
            p->out_len = 0;
            atomic_store_explicit(&p->state, WEFT_NODE_RELEASED, memory_order_relaxed);
            weft_future_release(f);
        }
    }
    if (freed) bytes_sub(g, freed);
    uint32_t doom = 0;
    if (!ok) {
        doom = atomic_load_explicit(&n->doomed, memory_order_relaxed);
        if (!doom) doom = n->id + 1;
        if (root) note_failure(r, n);
    }
    for (uint32_t e = n->edges; e != NONE32; e = g->edges[e].next) {
        gnode *c = node_at(g, g->edges[e].consumer);
        if (c->run != r->id || !c->needed) continue;
        if (doom) {
            uint32_t z = 0;
            atomic_compare_exchange_strong_explicit(&c->doomed, &z, doom, memory_order_relaxed,
                                                    memory_order_relaxed);
        }
        if (atomic_fetch_sub_explicit(&c->deps, 1, memory_order_acq_rel) == 1) make_ready(r, c);
    }
    if (WEFT__UNLIKELY(r->pg != NULL)) weft_progress_add(r->pg, 1);
    if (atomic_fetch_sub_explicit(&r->remaining, 1, memory_order_acq_rel) == 1) {
        /* the last touch of r was the decrement: wake through static memory */
        atomic_fetch_add_explicit(&done_seq, 1, memory_order_seq_cst);
        weft__futex_wake(&done_seq, INT32_MAX);
    }
}

/* Finishes a node without running it: WEFT_EDEPEND, WEFT_ECANCELLED, or a
 * submit error. Takes `msg` (heap). */
static void skip_node(grun *r, gnode *n, int code, char *msg, bool root)
{
    n->err = code;
    n->msg = msg;
    atomic_store_explicit(&n->state,
                          code == WEFT_ECANCELLED ? WEFT_NODE_CANCELLED : WEFT_NODE_FAILED,
                          memory_order_relaxed);
    finish_node(r, n, false, root);
}

static void node_done(weft_future *f, void *arg)
{
    gnode *n = arg;
    weft_graph *g = n->g_back;
    grun *r = g->run;
    driver local;
    bool own = !(T_drv && T_drv->r == r);
    if (own) drv_begin(&local, r);
    uint64_t now = weft__now_ns();
    if (r->cancel_mode) {
        weft_future *h = atomic_exchange_explicit(&n->handle, NULL, memory_order_acq_rel);
        if (h) weft_future_release(h);
    }
    if (n->copy) {
        free(n->copy);
        n->copy = NULL;
        bytes_sub(g, n->copy_len);
    }
    if (!n->src) { /* a future node runs no task: its duration stays -1 */
        /* The task started after it was submitted, and (one address space:
         * the callback runs on the worker that ran it) after this thread's
         * previous completion. */
        uint64_t start = n->t_submit;
        if (r->ref && T_last_done > start && T_last_done <= now) start = T_last_done;
        n->t_run = now - start;
        T_last_done = now;
    }
    const void *data;
    size_t len;
    int rc = weft_future_result(f, 0, &data, &len);
    n->fut = f; /* the node owns the submitter's reference */
    bool ok = rc == 0;
    if (ok) {
        n->out_len = len;
        if (len) bytes_add(g, len);
        atomic_store_explicit(&n->state, WEFT_NODE_DONE, memory_order_relaxed);
    } else {
        n->err = rc;
        atomic_store_explicit(&n->state,
                              rc == WEFT_ECANCELLED ? WEFT_NODE_CANCELLED : WEFT_NODE_FAILED,
                              memory_order_relaxed);
    }
    bool root = !ok && !(rc == WEFT_ECANCELLED && atomic_load(&r->stop));
    finish_node(r, n, ok, root);
    if (own) drv_end(&local); /* after the node's own decrement: touches r only if it submits */
}

static char *depend_msg(grun *r, uint32_t root_id)
{
    gnode *rn = node_at(r->g, root_id);
    char buf[48];
    return weft__asprintf("not run: node %u (task '%s') failed: %s", root_id,
                          weft__graph_task_name(rn->fn, buf, sizeof buf), node_msg(rn));
}

static void dispatch(grun *r, gnode *n)
{
    weft_graph *g = r->g;
    if (atomic_load_explicit(&r->stop, memory_order_acquire)) {
        uint32_t ff = atomic_load_explicit(&r->first_fail, memory_order_acquire);
        skip_node(r, n, WEFT_ECANCELLED,
                  ff ? weft__asprintf("cancelled: node %u failed", ff - 1) : NULL, false);
        return;
    }
    uint32_t d = atomic_load_explicit(&n->doomed, memory_order_relaxed);
    if (d) {
        skip_node(r, n, WEFT_EDEPEND, depend_msg(r, d - 1), false);
        return;
    }
    if (n->src) { /* a future node: its output is the future's, when it finishes */
        atomic_store_explicit(&n->state, WEFT_NODE_RUNNING, memory_order_relaxed);
        weft_future_retain(n->src); /* owned by n->fut in node_done */
        if (weft_future_on_done(n->src, node_done, n) != 0) {
            weft_future_wait(n->src, WEFT_FOREVER);
            node_done(n->src, n);
        }
        return;
    }
    const garg *a = &g->args[n->arg0];
    const void *in;
    size_t len;
    if (n->nargs == 1) {
        /* One argument: the task gets its bytes as they are, as from
         * weft_submit, so one task runs the same through submit, map, batch
         * and graph (weft_args_* read plain bytes as one argument). The
         * bytes are a literal held by the graph or the producer's output,
         * kept until this node has run: borrowed, not copied. */
        in = a[0].data;
        len = a[0].len;
        if (a[0].node != NONE32) weft_future_result(node_at(g, a[0].node)->fut, 0, &in, &len);
    } else if (r->ref) {
        args_ent *ents = (args_ent *)(void *)((unsigned char *)n->block + ARGS_HDR);
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (a[i].node == NONE32) continue;
            const void *pd = NULL;
            size_t pl = 0;
            weft_future_result(node_at(g, a[i].node)->fut, 0, &pd, &pl);
            ents[i].a = (uint64_t)(uintptr_t)pd;
            ents[i].len = pl;
        }
        in = n->block;
        len = ARGS_HDR + (size_t)ARGS_ENT * n->nargs;
    } else {
        size_t total = ARGS_HDR + (size_t)ARGS_ENT * n->nargs;
        for (uint32_t i = 0; i < n->nargs; i++) {
            size_t l = a[i].len;
            if (a[i].node != NONE32) l = node_at(g, a[i].node)->out_len;
            total += (l + 15u) & ~(size_t)15u;
        }
        unsigned char *blk = malloc(total);
        if (!blk) {
            skip_node(r, n, WEFT_ENOMEM, weft__asprintf("cannot copy %zu argument bytes", total),
                      true);
            return;
        }
        args_hdr h = {ARGS_MAGIC, ARGS_COPY, n->nargs, 0};
        memcpy(blk, &h, sizeof h);
        size_t off = ARGS_HDR + (size_t)ARGS_ENT * n->nargs;
        for (uint32_t i = 0; i < n->nargs; i++) {
            const void *pd = a[i].data;
            size_t pl = a[i].len;
            if (a[i].node != NONE32) weft_future_result(node_at(g, a[i].node)->fut, 0, &pd, &pl);
            args_ent e = {off, pl};
            memcpy(blk + ARGS_HDR + (size_t)ARGS_ENT * i, &e, sizeof e);
            if (pl) memcpy(blk + off, pd, pl);
            size_t padded = (pl + 15u) & ~(size_t)15u;
            memset(blk + off + pl, 0, padded - pl); /* the bytes are a memo key's input */
            off += padded;
        }
        n->copy = blk;
        n->copy_len = total;
        bytes_add(g, total);
        in = blk;
        len = total;
    }
    atomic_store_explicit(&n->state, WEFT_NODE_RUNNING, memory_order_relaxed);
    n->t_submit = weft__now_ns();
    weft_submit_options so = {
        .flags = WEFT_SUBMIT_BORROW, .retries = r->retries, .has_index = true, .index = n->id};
    if (r->memo) so.flags |= WEFT_SUBMIT_MEMO;
    weft_future *f = NULL;
    int rc = weft_submit_ex(r->ex, n->fn, in, len, &so, &f);
    if (rc) {
        char *m = weft__asprintf("cannot submit: %s", weft_last_error());
        if (n->copy) {
            free(n->copy);
            n->copy = NULL;
            bytes_sub(g, n->copy_len);
        }
        skip_node(r, n, rc, m, true);
        return;
    }
    if (r->cancel_mode) {
        weft_future_retain(f);
        atomic_store_explicit(&n->handle, f, memory_order_release);
    }
    if (weft_future_on_done(f, node_done, n) != 0) {
        /* out of memory for the callback record: wait here instead */
        weft_future_wait(f, WEFT_FOREVER);
        node_done(f, n);
    }
}

static bool held(const gnode *n)
{
    return atomic_load_explicit(&n->state, memory_order_relaxed) == WEFT_NODE_DONE && n->fut;
}

/* Marks what the targets need; fills r->list. @return 0 or WEFT_ENOMEM. */
static int setup(grun *r, const weft_node *targets, size_t nt, size_t *reused)
{
    weft_graph *g = r->g;
    size_t cap = 1024, sp = 0, lcap = 1024;
    uint32_t *stack = malloc(cap * sizeof *stack);
    r->list = malloc(lcap * sizeof *r->list);
    if (!stack || !r->list) {
        free(stack);
        return WEFT_ENOMEM;
    }
    r->nlist = 0;
    for (size_t t = nt; t-- > 0;) {
        if (weft__grow(&stack, &cap, sp + 1, sizeof *stack, 1024)) goto oom;
        stack[sp++] = targets[t];
    }
    while (sp) {
        gnode *n = node_at(g, stack[--sp]);
        if (n->run == r->id) continue;
        n->run = r->id;
        n->needed = false;
        atomic_store_explicit(&n->uses, 0, memory_order_relaxed);
        if (held(n)) {
            (*reused)++;
            continue;
        }
        n->needed = true;
        if (weft__grow(&r->list, &lcap, r->nlist + 1, sizeof *r->list, 1024)) goto oom;
        r->list[r->nlist++] = n->id;
        if (n->fut) { /* a failed future of an earlier compute */
            weft_future_release(n->fut);
            n->fut = NULL;
        }
        free(n->msg);
        n->msg = NULL;
        n->err = 0;
        n->out_len = 0;
        n->t_run = UINT64_MAX;
        atomic_store_explicit(&n->doomed, 0, memory_order_relaxed);
        atomic_store_explicit(&n->state, WEFT_NODE_WAITING, memory_order_relaxed);
        const garg *a = &g->args[n->arg0];
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (a[i].node == NONE32 || node_at(g, a[i].node)->run == r->id) continue;
            if (weft__grow(&stack, &cap, sp + 1, sizeof *stack, 1024)) goto oom;
            stack[sp++] = a[i].node;
        }
    }
    free(stack);
    /* counts: deps of needed nodes, uses of every visited producer */
    for (size_t k = 0; k < r->nlist; k++) {
        gnode *n = node_at(g, r->list[k]);
        const garg *a = &g->args[n->arg0];
        int32_t deps = 0;
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (a[i].node == NONE32) continue;
            gnode *p = node_at(g, a[i].node);
            atomic_fetch_add_explicit(&p->uses, 1, memory_order_relaxed);
            if (p->needed) deps++;
        }
        atomic_store_explicit(&n->deps, deps, memory_order_relaxed);
    }
    return 0;
oom:
    /* nodes marked so far go back to "not computed" */
    for (size_t k = 0; k < r->nlist; k++) {
        gnode *n = node_at(g, r->list[k]);
        atomic_store_explicit(&n->state, WEFT_NODE_NEW, memory_order_relaxed);
    }
    free(stack);
    free(r->list);
    r->list = NULL;
    return WEFT_ENOMEM;
}

/* ---- the initial ready set ------------------------------------------------------------ */

/* A large initial ready set (dask.compute of many independent calls) is not
 * submitted by the caller alone: that one thread would be the bottleneck,
 * and with fast workers it would also run most completion callbacks itself
 * (a task that finishes before its callback is registered runs it in the
 * registering thread). On serial and threads, slices of the set go to
 * "weft.graph.spawn" tasks instead, which submit their nodes from workers,
 * into the workers' own deques; the caller takes the first slice. Other
 * backends would run a spawn task in another address space, so there the
 * caller submits everything. A spawn task that never runs (the executor
 * cancelled it, or the submit failed) has its slice submitted by the caller.
 *
 * Lifetime: a spawn task reads its slice descriptor before it submits its
 * first node and each ready[] entry before submitting that node, and none of
 * those nodes can finish before being submitted, so the run (and the arrays
 * the caller frees after it) outlives every read. */
#define SPAWN_MIN 512 /* nodes per slice at least */

typedef struct spawn_slice {
    grun *r;
    const uint32_t *ready;
    size_t lo, hi;
} spawn_slice;

static void submit_slice(grun *r, const uint32_t *ready, size_t lo, size_t hi)
{
    driver d;
    drv_begin(&d, r);
    for (size_t k = lo; k < hi; k++) dispatch(r, node_at(r->g, ready[k]));
    drv_end(&d);
}

static int graph_spawn(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    spawn_slice sl;
    if (len != sizeof sl) return WEFT_EINVAL;
    memcpy(&sl, in, sizeof sl);
    submit_slice(sl.r, sl.ready, sl.lo, sl.hi);
    return 0;
}
WEFT_TASK_REGISTER_AS(graph_spawn, "weft.graph.spawn");

static void submit_initial(grun *r)
{
    weft_graph *g = r->g;
    size_t nready = 0;
    for (size_t k = 0; k < r->nlist; k++)
        if (atomic_load_explicit(&node_at(g, r->list[k])->deps, memory_order_relaxed) == 0)
            nready++;
    int workers = weft_executor_workers(r->ex);
    size_t nslices = nready / SPAWN_MIN;
    if ((size_t)workers * 2 < nslices) nslices = (size_t)workers * 2;
    uint32_t *ready = NULL;
    spawn_slice *sl = NULL;
    weft_future **fs = NULL;
    unsigned caps = weft__executor_caps(r->ex);
    if (r->ref && (caps & WEFT__CAP_NESTED) && !(caps & WEFT__CAP_INLINE) && nslices >= 2) {
        ready = malloc(nready * sizeof *ready);
        sl = malloc(nslices * sizeof *sl);
        fs = calloc(nslices, sizeof *fs);
    }
    if (!ready || !sl || !fs) {
        free(ready);
        free(sl);
        free(fs);
        driver d;
        drv_begin(&d, r);
        /* in reverse, so that the driver (a stack) submits in list order */
        for (size_t k = r->nlist; k-- > 0;) {
            gnode *n = node_at(g, r->list[k]);
            if (atomic_load_explicit(&n->deps, memory_order_relaxed) == 0) make_ready(r, n);
        }
        drv_end(&d);
        return;
    }
    size_t m = 0;
    for (size_t k = 0; k < r->nlist; k++)
        if (atomic_load_explicit(&node_at(g, r->list[k])->deps, memory_order_relaxed) == 0)
            ready[m++] = r->list[k];
    for (size_t i = 0; i < nslices; i++)
        sl[i] = (spawn_slice){r, ready, nready * i / nslices, nready * (i + 1) / nslices};
    weft_submit_options so = {.flags = WEFT_SUBMIT_BORROW};
    for (size_t i = 1; i < nslices; i++)
        if (weft_submit_ex(r->ex, graph_spawn, &sl[i], sizeof sl[i], &so, &fs[i]) != 0)
            fs[i] = NULL;
    submit_slice(r, ready, sl[0].lo, sl[0].hi);
    for (size_t i = 1; i < nslices; i++) {
        if (fs[i]) {
            weft_future_wait(fs[i], WEFT_FOREVER);
            bool ran = weft_future_state_get(fs[i]) == WEFT_FUTURE_DONE;
            weft_future_release(fs[i]);
            if (ran) continue;
        }
        submit_slice(r, ready, sl[i].lo, sl[i].hi);
    }
    free(ready);
    free(sl);
    free(fs);
}

int weft_graph_compute(weft_graph *g, weft_executor *ex, const weft_node *targets, size_t nt,
                       const weft_compute_options *opts)
{
    weft_compute_options local_opts;
    if (!g || !ex || (!targets && nt))
        return weft__err(WEFT_EINVAL, "weft_graph_compute: %s is NULL",
                         !g    ? "the graph"
                         : !ex ? "the executor"
                               : "targets");
    int orc = WEFT__OPTS_READ(local_opts, opts, "weft_graph_compute: weft_compute_options");
    if (orc) return orc;
    opts = &local_opts;
    if (opts->flags &
        ~(unsigned)(WEFT_COMPUTE_CANCEL_ON_ERROR | WEFT_COMPUTE_KEEP_ALL | WEFT_COMPUTE_MEMO))
        return weft__err(WEFT_EINVAL, "weft_graph_compute: unknown flags 0x%x", opts->flags);
    if (opts->retries < 0)
        return weft__err(WEFT_EINVAL, "weft_graph_compute: negative retries %d", opts->retries);
    if (g->run) return weft__err(WEFT_EBUSY, "weft_graph_compute: this graph is being computed");
    for (size_t i = 0; i < nt; i++)
        if (targets[i] >= g->nnodes)
            return weft__err(WEFT_EINVAL,
                             "weft_graph_compute: target %zu is node %u, which does "
                             "not exist (%u nodes)",
                             i, targets[i], g->nnodes);
    if ((opts->flags & WEFT_COMPUTE_MEMO) && !weft__executor_memo(ex))
        return weft__err(WEFT_EINVAL, "weft_graph_compute: WEFT_COMPUTE_MEMO, but the executor "
                                      "has no memo (weft_options.memo)");
    grun r;
    memset(&r, 0, sizeof r);
    r.g = g;
    r.ex = ex;
    if (++g->run_counter == 0) g->run_counter = 1; /* 0 marks "never visited" */
    r.id = g->run_counter;
    /* memoized nodes are keyed by their argument bytes, so they get the
     * copying blocks (pointers would differ from run to run) */
    r.memo = (opts->flags & WEFT_COMPUTE_MEMO) != 0;
    r.ref =
        (weft__executor_caps(ex) & WEFT__CAP_SHARED_MEMORY) && !weft__graph_force_copy && !r.memo;
    r.cancel_mode = (opts->flags & WEFT_COMPUTE_CANCEL_ON_ERROR) != 0;
    r.retries = opts->retries;
    atomic_init(&r.stop, 0);
    atomic_init(&r.first_fail, 0);
    size_t reused = 0;
    if (setup(&r, targets, nt, &reused))
        return weft__err(WEFT_ENOMEM, "weft_graph_compute: out of memory");
    for (size_t i = 0; i < nt; i++) node_at(g, targets[i])->flags |= NF_KEEP;
    if (opts->flags & WEFT_COMPUTE_KEEP_ALL)
        for (size_t k = 0; k < r.nlist; k++) node_at(g, r.list[k])->flags |= NF_KEEP;
    g->reused += reused;
    atomic_init(&r.remaining, (uint32_t)r.nlist);
    if (r.nlist && weft__progress_wanted(opts->progress))
        r.pg = weft__progress_start("compute", r.nlist);
    g->run = &r;
    if (r.nlist) {
        submit_initial(&r);
        weft_executor *cur = weft__current_executor();
        /* spin a little (a small graph is often done a moment later), then sleep */
        uint64_t spin_until = weft__now_ns() + 20000;
        bool spinning = true;
        for (unsigned i = 1;; i++) {
            uint32_t seq = atomic_load_explicit(&done_seq, memory_order_seq_cst);
            if (atomic_load_explicit(&r.remaining, memory_order_seq_cst) == 0) break;
            if (cur == ex && weft__help_one(ex)) continue;
            if (spinning) {
                if ((i & 63) == 0 && weft__now_ns() > spin_until) spinning = false;
                weft__cpu_relax();
                continue;
            }
            weft__futex_wait(&done_seq, seq, cur ? 50000 : -1);
        }
    }
    g->run = NULL;
    if (r.pg) weft_progress_destroy(r.pg);
    for (size_t k = 0; k < r.nlist; k++) {
        gnode *n = node_at(g, r.list[k]);
        switch (atomic_load_explicit(&n->state, memory_order_relaxed)) {
        case WEFT_NODE_DONE:
        case WEFT_NODE_RELEASED:
            if (!n->src) g->executed++; /* a future node runs no task */
            break;
        case WEFT_NODE_FAILED:
            g->failed++;
            if (n->fut && !n->src) g->executed++;
            break;
        case WEFT_NODE_CANCELLED:
            g->cancelled++;
            break;
        default:
            break;
        }
    }
    free(r.list);
    uint32_t ff = atomic_load_explicit(&r.first_fail, memory_order_acquire);
    size_t missing = 0;
    for (size_t i = 0; i < nt; i++)
        if (!held(node_at(g, targets[i]))) missing++;
    if (ff) {
        gnode *rn = node_at(g, ff - 1);
        char buf[48];
        return weft__err(rn->err,
                         "weft_graph_compute: node %u (task '%s') failed: %s (%s); %zu of "
                         "%zu targets not computed",
                         ff - 1, weft__graph_task_name(rn->fn, buf, sizeof buf),
                         weft_strerror(rn->err), node_msg(rn), missing, nt);
    }
    if (missing) { /* cannot happen without a failure; keep the contract anyway */
        for (size_t i = 0; i < nt; i++) {
            gnode *n = node_at(g, targets[i]);
            if (!held(n))
                return weft__err(n->err ? n->err : WEFT_ETASK,
                                 "weft_graph_compute: target node %u was not computed: %s",
                                 targets[i], node_msg(n));
        }
    }
    return 0;
}

/* ---- results ---------------------------------------------------------------------------- */

weft_node_state weft_graph_state(const weft_graph *g, weft_node n)
{
    if (!g || n >= g->nnodes) return WEFT_NODE_NEW;
    return (weft_node_state)atomic_load_explicit(&node_at(g, n)->state, memory_order_relaxed);
}

const char *weft_node_state_name(weft_node_state s)
{
    switch (s) {
    case WEFT_NODE_NEW:
        return "new";
    case WEFT_NODE_WAITING:
        return "waiting";
    case WEFT_NODE_RUNNING:
        return "running";
    case WEFT_NODE_DONE:
        return "done";
    case WEFT_NODE_RELEASED:
        return "released";
    case WEFT_NODE_FAILED:
        return "failed";
    case WEFT_NODE_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

int weft_graph_result(const weft_graph *g, weft_node id, const void **data, size_t *len)
{
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!g) return weft__err(WEFT_EINVAL, "weft_graph_result: NULL graph");
    if (id >= g->nnodes)
        return weft__err(WEFT_EINVAL, "weft_graph_result: no node %u (%u nodes)", id, g->nnodes);
    const gnode *n = node_at(g, id);
    switch (atomic_load_explicit(&n->state, memory_order_relaxed)) {
    case WEFT_NODE_DONE:
        if (n->fut) return weft_future_result(n->fut, 0, data, len);
        break;
    case WEFT_NODE_FAILED:
    case WEFT_NODE_CANCELLED:
        return weft__err(n->err, "node %u failed: %s", id, node_msg(n));
    case WEFT_NODE_RELEASED:
        return weft__err(WEFT_EAGAIN,
                         "weft_graph_result: node %u's output was freed after use (make it a "
                         "target to keep it)",
                         id);
    default:
        break;
    }
    return weft__err(WEFT_EAGAIN, "weft_graph_result: node %u has not been computed", id);
}

const char *weft_graph_error(const weft_graph *g, weft_node id)
{
    if (!g || id >= g->nnodes) return NULL;
    const gnode *n = node_at(g, id);
    uint8_t s = atomic_load_explicit(&n->state, memory_order_relaxed);
    if (s != WEFT_NODE_FAILED && s != WEFT_NODE_CANCELLED) return NULL;
    return node_msg(n);
}

double weft_graph_duration(const weft_graph *g, weft_node id)
{
    if (!g || id >= g->nnodes) return -1;
    const gnode *n = node_at(g, id);
    if (n->t_run == UINT64_MAX) return -1;
    return (double)n->t_run * 1e-9;
}

int weft_graph_release(weft_graph *g, weft_node id)
{
    if (!g || id >= g->nnodes)
        return weft__err(WEFT_EINVAL, "weft_graph_release: %s", !g ? "NULL graph" : "no such node");
    if (g->run) return weft__err(WEFT_EBUSY, "weft_graph_release: a compute is running");
    gnode *n = node_at(g, id);
    n->flags &= (uint8_t)~NF_KEEP;
    if (atomic_load_explicit(&n->state, memory_order_relaxed) == WEFT_NODE_DONE)
        release_output(g, n);
    return 0;
}

int weft_graph_stats_get(const weft_graph *g, weft_graph_stats *st)
{
    if (!g || !st) return weft__err(WEFT_EINVAL, "weft_graph_stats_get: NULL argument");
    weft_graph *m = (weft_graph *)g;
    st->nodes = g->nnodes;
    st->merged = g->merged;
    st->executed = g->executed;
    st->reused = g->reused;
    st->failed = g->failed;
    st->cancelled = g->cancelled;
    st->outputs_live = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const gnode *n = node_at(g, i);
        if (n->fut && atomic_load_explicit(&n->state, memory_order_relaxed) == WEFT_NODE_DONE)
            st->outputs_live++;
    }
    st->bytes_live = atomic_load_explicit(&m->bytes_live, memory_order_relaxed);
    st->bytes_peak = atomic_load_explicit(&m->bytes_peak, memory_order_relaxed);
    return 0;
}

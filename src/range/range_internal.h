/* range_internal.h : what the files of src/range/ share (not installed).
 *
 * A loop is cut into nleaf = 2^log_leaf leaves, contiguous and in order,
 * that depend only on the length and the grain: leaf i starts at
 * i * q + min(i, r) past `begin` (q = n / nleaf, r = n % nleaf), so leaves
 * differ in size by at most one. A node of the tree is an aligned run of
 * leaves [a, b) with b - a a power of two; its children are the two halves.
 * A reduction's value of a node is combine(value(left), value(right)) and
 * a leaf's is body(leaf, copy of identity): the same on every level, worker
 * count and partitioner, whoever runs which node.
 *
 * Calls between the files point one way: range.c (the API) -> pool.c
 * (threads), pieces.c (processes, mpi) -> tree.c (leaves, errors, the
 * serial walk) and reg.c (names of bodies). */
#ifndef WEFT_RANGE_INTERNAL_H
#define WEFT_RANGE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* default: at most 2^12 leaves; with a grain, at most 2^40 */
#define WEFT__RANGE_LOG_LEAVES_DEFAULT 12
#define WEFT__RANGE_LOG_LEAVES_MAX 40
/* value buffers: stride of one value in scratch (16-byte aligned) */
#define WEFT__RANGE_ALIGN 16
/* scratch on the stack up to this many bytes */
#define WEFT__RANGE_STACK_SCRATCH 1024

typedef struct weft__rloop {
    weft_executor *ex;
    bool reduce;
    int64_t begin;
    uint64_t n;     /* elements */
    uint64_t nleaf; /* 2^log_leaf (0 leaves: n == 0) */
    int log_leaf;
    uint64_t q, r;
    weft_range_fn body;
    weft_range_reduce_fn rbody;
    weft_range_combine_fn combine;
    void *arg;
    const void *identity;
    size_t vsize, stride;
    weft_partitioner part;
    int static_depth; /* STATIC: eager splits from the root */
    const int *cancel;
    _Atomic int err; /* the first error, 0 while none */
    char msg[200];   /* why, written by the thread that set err */
} weft__rloop;

/* Fills the leaf layout of L from n and grain (> 0: the smallest leaf;
 * 0: the default). */
void weft__rloop_layout(weft__rloop *L, uint64_t n, int64_t grain);

/* The first index of leaf i (i <= nleaf: leaf nleaf starts at the end). */
static inline int64_t weft__rloop_at(const weft__rloop *L, uint64_t i)
{
    uint64_t off = i * L->q + (i < L->r ? i : L->r);
    return (int64_t)((uint64_t)L->begin + off);
}

/* Records `code` as the loop's error if it is the first (a positive code
 * is WEFT_ETASK); later pieces are then skipped. */
void weft__rloop_fail(weft__rloop *L, int code, int64_t lo, int64_t hi);

/* True when the loop is to stop: an error, or the cancel flag (which it
 * records as WEFT_ECANCELLED). Cheap: a few relaxed loads. */
static inline bool weft__rloop_stopped(weft__rloop *L)
{
    if (WEFT__UNLIKELY(atomic_load_explicit(&L->err, memory_order_relaxed) != 0)) return true;
    if (L->cancel && WEFT__UNLIKELY(__atomic_load_n(L->cancel, __ATOMIC_RELAXED) != 0)) {
        weft__rloop_fail(L, WEFT_ECANCELLED, 0, 0);
        return true;
    }
    return false;
}

/* Runs leaf i: the for body over it. */
static inline void weft__rloop_leaf_for(weft__rloop *L, uint64_t i)
{
    int64_t lo = weft__rloop_at(L, i), hi = weft__rloop_at(L, i + 1);
    int rc = L->body(lo, hi, L->arg);
    if (WEFT__UNLIKELY(rc != 0)) weft__rloop_fail(L, rc, lo, hi);
}

/* Runs leaf i of a reduction: its partial into out. */
static inline void weft__rloop_leaf_reduce(weft__rloop *L, uint64_t i, void *out)
{
    int64_t lo = weft__rloop_at(L, i), hi = weft__rloop_at(L, i + 1);
    memcpy(out, L->identity, L->vsize);
    int rc = L->rbody(lo, hi, out, L->arg);
    if (WEFT__UNLIKELY(rc != 0)) weft__rloop_fail(L, rc, lo, hi);
}

/* Runs leaf i: the for body, or (reduce) its partial into out. */
static inline void weft__rloop_leaf(weft__rloop *L, uint64_t i, void *out)
{
    if (L->reduce)
        weft__rloop_leaf_reduce(L, i, out);
    else
        weft__rloop_leaf_for(L, i);
}

/* Levels of scratch a walk of node [a, b) needs (log2(b - a) + 1). */
static inline int weft__rloop_levels(uint64_t a, uint64_t b)
{
    int k = 1;
    for (uint64_t s = b - a; s > 1; s >>= 1) k++;
    return k;
}

/* Walks node [a, b) on this thread, leaf after leaf: a for runs its body,
 * a reduction leaves the node's value in `out`, using `scratch` (levels *
 * stride bytes, 16-byte aligned). Stops early once the loop is stopped. */
void weft__rloop_walk(weft__rloop *L, uint64_t a, uint64_t b, void *out, unsigned char *scratch);

/* Combines vals[0..count) (count a power of two, stride apart) in the
 * tree's order into vals[0]. */
void weft__rloop_combine_tree(weft__rloop *L, unsigned char *vals, uint64_t count);

/* ---- the levels (range.c calls these) ---- */

/* threads: the pool's deques (pool.c). Returns the loop's error or 0. */
int weft__range_pool_run(weft__rloop *L, void *out);
/* processes, mpi: registered bodies in workers (pieces.c). */
int weft__range_remote_run(weft__rloop *L, size_t arg_size, void *out);

/* ---- names of bodies (reg.c) ---- */

typedef struct weft__range_entry {
    const char *name;
    weft_range_fn body;
    weft_range_reduce_fn rbody;
    weft_range_combine_fn combine;
} weft__range_entry;

/* The registration of a body (by pointer) or of a name; 0 or WEFT_ENOTREG
 * (with a message naming `who`). */
int weft__range_find_body(weft_range_fn body, weft_range_reduce_fn rbody, weft__range_entry *out,
                          const char *who);
int weft__range_find_name(const char *name, weft__range_entry *out);

#endif

/* graph_internal.h : the graph's data, shared by graph.c (build, compute)
 * and dot.c (DOT export). Not installed. */
#ifndef WEFT_GRAPH_INTERNAL_H
#define WEFT_GRAPH_INTERNAL_H

#include "internal.h"

#define SLAB_SHIFT 12
#define SLAB_NODES (1u << SLAB_SHIFT)
#define NONE32 UINT32_MAX

/* Argument block header (what a graph task receives). REF blocks carry
 * (pointer, length) pairs into memory the graph keeps alive: serial and
 * threads, one address space. COPY blocks carry (offset, length) pairs into
 * bytes that follow: every other backend. */
#define ARGS_MAGIC 0x77617267u /* "warg" */
#define ARGS_REF 1u
#define ARGS_COPY 2u
#define ARGS_HDR 16u
#define ARGS_ENT 16u
#define MAX_ARGS (1u << 20)

typedef struct args_hdr {
    uint32_t magic;
    uint32_t mode;
    uint32_t nargs;
    uint32_t pad;
} args_hdr;

typedef struct args_ent {
    uint64_t a; /* REF: pointer; COPY: offset from the block start */
    uint64_t len;
} args_ent;

typedef struct garg {
    uint32_t node; /* producer, or NONE32 for literal bytes */
    uint32_t pad;
    const void *data; /* literal: a copy in the graph's arena */
    size_t len;
} garg;

typedef struct gedge {
    uint32_t consumer;
    uint32_t next;
} gedge;

enum {
    NF_KEEP = 1u << 0, /* output held after use: target or kept */
};

typedef struct grun grun;

/* A node. The first group is fixed at weft_graph_call; the rest is the
 * state of the compute that last needed the node: written by the setup
 * (one thread), then by exactly one completion, read by consumers after
 * their dependency count (acq_rel) says the producer finished. */
typedef struct gnode {
    weft_task_fn fn;           /* NULL for a future node */
    weft_future *src;          /* a future node's future (weft_graph_future), held */
    struct weft_graph *g_back; /* for the completion callback */
    void *block;               /* room for the REF argument block, in the arena */
    uint64_t key;
    uint32_t arg0, nargs; /* into g->args */
    uint32_t edges;       /* head of the consumer edge list (g->edges) */
    uint32_t id;
    /* compute state */
    uint32_t run;            /* id of the last compute that visited the node */
    bool needed;             /* runs in compute `run` (else its output was held) */
    uint8_t flags;           /* NF_* */
    _Atomic uint8_t state;   /* weft_node_state */
    _Atomic int32_t deps;    /* inputs not finished yet in this compute */
    _Atomic int32_t uses;    /* consumers in this compute that have not run */
    _Atomic uint32_t doomed; /* 1 + the failed node this one depends on, or 0 */
    int32_t err;
    weft_future *fut;              /* holds the output (DONE) or error (FAILED) */
    _Atomic(weft_future *) handle; /* for cancelling a queued task */
    char *msg;                     /* own message: WEFT_EDEPEND, cancel, submit error */
    void *copy;                    /* COPY argument block in flight */
    size_t copy_len;
    size_t out_len; /* counted in bytes_live while held */
    uint64_t t_submit, t_run;
} gnode;

struct weft_graph {
    unsigned flags;
    gnode **slabs;
    size_t nslabs;
    uint32_t nnodes;
    garg *args;
    size_t nargs_used, nargs_cap;
    gedge *edges;
    size_t nedges, edges_cap;
    /* arena: literal bytes and REF blocks; blocks never move */
    struct ablock *arena;
    /* merge: open addressing over node ids, keyed by gnode.key */
    uint32_t *table;
    size_t table_cap, table_n;
    uint32_t run_counter;
    grun *run; /* the compute under way, or NULL */
    /* stats */
    size_t merged, executed, reused, failed, cancelled;
    /* written by completions: a cache line each (peak is mostly only read) */
    _Atomic size_t bytes_live WEFT__ALIGNED;
    _Atomic size_t bytes_peak WEFT__ALIGNED;
};

static inline gnode *node_at(const weft_graph *g, uint32_t id)
{
    return &g->slabs[id >> SLAB_SHIFT][id & (SLAB_NODES - 1)];
}

/* Tests: use copying argument blocks (graphs) and named call records
 * (weft_parallel) on every backend, as across processes. */
extern bool weft__graph_force_copy;

/* Warm memory kept from a destroyed graph for the next (spare.c): node
 * slabs and arena blocks (fixed sizes), the argument and edge arrays (one of
 * each, any size). take: a block and its size in *bytes, or NULL; give: keeps
 * the block or frees it. Thread-safe. */
typedef enum weft__spare_kind {
    WEFT__SPARE_SLAB,
    WEFT__SPARE_ARENA,
    WEFT__SPARE_ARGS,
    WEFT__SPARE_EDGES
} weft__spare_kind;
void *weft__graph_spare_take(weft__spare_kind kind, size_t *bytes);
void weft__graph_spare_give(weft__spare_kind kind, void *p, size_t bytes);

/* A printable name for a task: its registered name, else "task@0x...". */
const char *weft__graph_task_name(weft_task_fn fn, char *buf, size_t cap);

#endif

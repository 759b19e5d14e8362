/* bag_build.h : the bag object and the graph builder, for bag.c and quant.c. */
#ifndef WEFT_BAG_BUILD_H
#define WEFT_BAG_BUILD_H

#include <stdatomic.h>

#include "bag/bag_internal.h"

enum {
    B_SOURCE = 1,
    B_NARROW,
    B_WIDE
};
enum {
    W_PRODUCT = 1,
    W_ZIP,
    W_AGG,
    W_REPART,
    W_GROUP
};

struct weft_bag {
    atomic_size_t refs;
    int kind;
    size_t nparts;
    uint32_t depth;   /* narrow operations in a row above the last wide/source */
    weft_bag *parent; /* narrow and wide */
    weft_bag *other;  /* product, zip */
    wb *src;          /* B_SOURCE: one source description per partition */
    int gen;          /* B_SOURCE from a generator: fn[0], arg */
    uint32_t op;      /* B_NARROW: OP_* */
    bag_fnref fn[3];
    void *arg;
    size_t alen;
    void *table; /* join: the table's records; foldby: the initial accumulator */
    size_t tlen;
    int wide; /* W_* */
    int foldby;
    void *term, *merge; /* W_AGG: the terminal and merge specs */
    size_t tlen_term, mlen;
    uint64_t mem_bound; /* groupby */
    char *spill_dir;
};

typedef struct bag_memo {
    const weft_bag *bag;
    size_t part;
    int what;
    weft_node node;
} bag_memo;

typedef struct bag_build {
    weft_graph *g;
    weft_executor *ex;
    bool shared; /* the executor shares this address space */
    bag_memo *memo;
    size_t nmemo, cmemo;
    char **spills; /* groupby spill prefixes: leftovers are deleted at fini */
    size_t nspills;
} bag_build;

int weft__bag_build_init(bag_build *bb, weft_executor *ex);
void weft__bag_build_fini(bag_build *bb);
int weft__bag_fnref_write(bag_build *bb, wb *w, const bag_fnref *f);
int weft__bag_node(bag_build *bb, weft_bag *b, size_t part, uint32_t term, const void *tbytes,
                   size_t tlen, weft_node *out);
int weft__bag_tree(bag_build *bb, weft_bag *b, const wb *term, const wb *merge, weft_node *root);
int weft__bag_tree_fanin(bag_build *bb, weft_bag *b, const wb *term, const wb *merge, size_t fanin,
                         weft_node *root);
int weft__bag_run_fanin(weft_bag *b, weft_executor *ex, const wb *term, const wb *merge,
                        size_t fanin, void **out, size_t *len);
int weft__bag_compute(bag_build *bb, const weft_node *targets, size_t n);
int weft__bag_run(weft_bag *b, weft_executor *ex, const wb *term, const wb *merge, void **out,
                  size_t *len);

#endif

/* spare.c : warm memory kept from one graph for the next.
 *
 * The usual shape of a program is a loop: build a graph, compute it, read
 * the results, destroy it. Without this file every round gets its node slabs
 * (576 KiB each), arena blocks and argument/edge arrays fresh from the
 * kernel: glibc gives blocks above its mmap threshold back on free (the
 * threshold starts at 128 KiB and moves with glibc's own heuristics as other
 * code frees big blocks) and trims the top of its heap past the trim
 * threshold, so each page is faulted in again on the next round. On the
 * paravirtualised VMs this project is measured on a fault costs ~10 us: a
 * serial graph node cost 0.9 us where its work is 0.2, and the figure
 * depended on what the process had freed before (docs/BENCHMARKS.md, the
 * graph rows of issue 12).
 *
 * weft_graph_destroy leaves its slabs, arena blocks and arrays here, up to
 * SPARE_BYTES in all; the next graph takes them before it calls malloc.
 * What does not fit is freed. One mutex, taken once per slab, block or
 * array (4096 nodes), never per node. The blocks stay reachable from here
 * until the process exits (a leak checker sees them as reachable).
 *
 * Under AddressSanitizer a kept block is poisoned until it is taken again,
 * so a use of a destroyed graph's memory is still reported. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SPARE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_ASAN 1
#endif
#endif
#ifdef SPARE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* 32 MiB: what a burst may keep (the futures' trim bound, src/core/future.c). */
#define SPARE_BYTES ((size_t)32 << 20)
#define SPARE_FIXED 64 /* slabs or arena blocks kept, each kind */

typedef struct spare_list {
    void *p[SPARE_FIXED];
    size_t size[SPARE_FIXED];
    unsigned n;
} spare_list;

static struct {
    pthread_mutex_t lock;
    size_t bytes;
    spare_list fixed[2]; /* WEFT__SPARE_SLAB, WEFT__SPARE_ARENA */
    void *arr[2];        /* WEFT__SPARE_ARGS, WEFT__SPARE_EDGES: one each */
    size_t arr_bytes[2];
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

void *weft__graph_spare_take(weft__spare_kind kind, size_t *bytes)
{
    void *p = NULL;
    size_t n = 0;
    pthread_mutex_lock(&S.lock);
    if (kind <= WEFT__SPARE_ARENA) {
        spare_list *l = &S.fixed[kind];
        if (l->n) {
            l->n--;
            p = l->p[l->n];
            n = l->size[l->n];
        }
    } else {
        int k = kind - WEFT__SPARE_ARGS;
        p = S.arr[k];
        n = S.arr_bytes[k];
        S.arr[k] = NULL;
        S.arr_bytes[k] = 0;
    }
    S.bytes -= n;
    pthread_mutex_unlock(&S.lock);
    if (p) UNPOISON(p, n);
    *bytes = n;
    return p;
}

void weft__graph_spare_give(weft__spare_kind kind, void *p, size_t bytes)
{
    if (!p) return;
    void *drop = p;
    size_t drop_bytes = bytes;
    POISON(p, bytes);
    pthread_mutex_lock(&S.lock);
    if (kind <= WEFT__SPARE_ARENA) {
        spare_list *l = &S.fixed[kind];
        if (l->n < SPARE_FIXED && S.bytes + bytes <= SPARE_BYTES) {
            l->p[l->n] = p;
            l->size[l->n] = bytes;
            l->n++;
            S.bytes += bytes;
            drop = NULL;
        }
    } else {
        /* one array of each kind: the larger of the kept one and this */
        int k = kind - WEFT__SPARE_ARGS;
        if (bytes > S.arr_bytes[k] && S.bytes - S.arr_bytes[k] + bytes <= SPARE_BYTES) {
            drop = S.arr[k];
            drop_bytes = S.arr_bytes[k];
            S.bytes = S.bytes - S.arr_bytes[k] + bytes;
            S.arr[k] = p;
            S.arr_bytes[k] = bytes;
        }
    }
    pthread_mutex_unlock(&S.lock);
    if (drop) {
        UNPOISON(drop, drop_bytes);
        free(drop);
    }
}

/* remote.h : what the backends that run tasks in other processes share
 * (processes and mpi): the description of an item sent away, the result
 * that comes back, and the core-side calls that start and complete the
 * future of such an item (result.c). Not installed. */
#ifndef WEFT_BACKENDS_REMOTE_H
#define WEFT_BACKENDS_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* One item to run remotely. */
typedef struct weft__ritem {
    weft_task_fn fn;
    const void *in;
    size_t len;
    uint64_t index;
    uint64_t seed;
    int retries;    /* re-runs of a task that returned an error */
    double timeout; /* seconds; 0 takes the proxy's task_timeout; < 0: none */
} weft__ritem;

/* The result of one item, valid only during the callback. The output is
 * in the arena (`out`) or, when large, in the worker's own memory; copy it
 * with weft__rres_copy(). */
typedef struct weft__rres {
    int err;
    const void *out; /* NULL when remote */
    uint64_t remote; /* address in the worker (out == NULL, out_len > 0) */
    pid_t pid;
    size_t out_len;
    const char *msg; /* NULL or a message */
    uint64_t t0, t1; /* when it ran (monotonic ns) */
    /* mpi backend: when not NULL, *take is a weft__out_alloc block holding
     * the out_len output bytes (out points into it); a callback may keep it
     * instead of copying (it then sets *take = NULL). */
    void **take;
} weft__rres;

typedef void (*weft__rdone_fn)(void *arg, size_t i, const weft__rres *r);
/* Copies a result's out_len output bytes to dst. Returns 0 or WEFT_ECRASHED
 * (the worker's memory could not be read). */
int weft__rres_copy(const weft__rres *r, void *dst);

/* Starts a taken plain future and describes it in *it; false if it was
 * cancelled (then dropped and its reference released; still count it). */
bool weft__exec_start_remote(weft_executor *ex, weft_future *f, int lane, weft__ritem *it);
/* Completes a started plain future from a remote result (releases the
 * queue's reference). */
void weft__exec_complete_remote(weft_executor *ex, int lane, weft_future *f, const weft__rres *r);

/* In a worker process or rank: catches SIGSEGV, SIGBUS, SIGFPE, SIGILL and
 * SIGABRT on an alternate stack, calls note(sig, errno) (async-signal-safe
 * code only), then dies of the same signal (crash.c). */
void weft__crash_handlers_install(void (*note)(int sig, int err));

/* ---- map chunks sent away (provided by core/map.c) ---- */

typedef struct weft__rchunk weft__rchunk;
/* Opens map chunk f (an internal future) for sending: *items (malloc'd,
 * the caller frees) and *n. Returns NULL if nothing is to be sent: the
 * chunk was cancelled or failed and is already handed back to its map. */
weft__rchunk *weft__map_chunk_open(weft_future *f, weft__ritem **items, size_t *n,
                                   bool *stop_on_error);
/* Records item i's result. */
void weft__map_chunk_item(weft__rchunk *r, size_t i, const weft__rres *res);
/* Hands the finished chunk back to its map (frees r, releases f). */
void weft__map_chunk_close(weft__rchunk *r, int lane);
/* The map's stop word: non-zero once the rest of its items are not to run. */
_Atomic int *weft__map_chunk_stop(weft__rchunk *r);

#endif

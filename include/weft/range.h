/* weft/range.h : loops over index ranges -- OpenMP's `for` and `reduction`,
 * oneTBB's parallel_for and parallel_reduce -- on every level. Included by
 * weft.h; include <weft.h>, not this file.
 *
 * A loop runs `body(lo, hi, arg)` on sub-ranges [lo, hi) that together
 * cover [begin, end) exactly once. Indices are int64_t, so a loop may span
 * 2^31 and more elements. The body returns 0, or a non-zero code that stops
 * the loop: pieces not yet started are skipped, the pieces running finish,
 * and the call returns the first error (a positive code becomes WEFT_ETASK).
 *
 * Leaves and the reduction tree. The range is cut into a power of two of
 * contiguous leaves that depend only on the length and opts.grain (never on
 * the backend or the worker count); a body call covers one leaf (reduce) or
 * one or more adjacent leaves (for). A reduction computes every leaf's
 * partial from the identity, then combines them in one fixed binary tree
 * (leaf pairs, then pairs of pairs): a floating-point sum gives the same
 * bits on every backend, worker count and partitioner.
 *
 * Levels. On serial the loop runs inline, leaf after leaf. On threads the
 * leaves are handed out through the pool's work-stealing deques, without a
 * future per piece. On processes and mpi the body must be registered
 * (WEFT_RANGE_REGISTER / WEFT_RANGE_REGISTER_REDUCE): pieces run in worker
 * processes or ranks, `arg` is copied there (opts.arg_size bytes), a for
 * body writes its outputs to shared memory (weft_shm, weft/ipc.h), and a
 * reduction's partials come back to be combined on the caller in the same
 * tree. Same call, same results.
 *
 * Nesting: a loop called from a task of the same threads executor (or from
 * a body of an outer loop) runs its pieces on the calling worker and lets
 * idle workers take some: nested loops need no extra thread and cannot
 * deadlock, even with one worker.
 *
 * Thread safety: every function here may be called from any thread,
 * concurrently, including from inside tasks and bodies. */
#ifndef WEFT_RANGE_H
#define WEFT_RANGE_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/range.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A loop body: handles [lo, hi) (lo < hi) and returns 0 or an error code. */
typedef int (*weft_range_fn)(int64_t lo, int64_t hi, void *arg);
/* A reduction body: folds [lo, hi) into `acc`, which holds a copy of the
 * identity when it is called; returns 0 or an error code. */
typedef int (*weft_range_reduce_fn)(int64_t lo, int64_t hi, void *acc, void *arg);
/* A reduction's combine: acc = acc (+) right, where `acc` holds the partial
 * of the indices just before those of `right`. Must not fail. */
typedef void (*weft_range_combine_fn)(void *acc, const void *right, void *arg);

/* How pieces are handed to the workers. Every partitioner visits the same
 * leaves and gives a reduction the same bits; they differ in cost only. */
typedef enum weft_partitioner {
    /* about 4 pieces per worker at once, then lazily: a worker whose
     * deque was emptied by thieves splits off the right half of the part
     * it is about to run (lazy binary splitting); needs no tuning */
    WEFT_PARTITION_AUTO = 0,
    /* static blocks: split evenly into at least one block per worker up
     * front, no later splitting (lowest overhead for even work) */
    WEFT_PARTITION_STATIC = 1,
    /* dynamic: every leaf is its own piece (set opts.grain to the piece
     * size), pieces taken by whichever worker is free */
    WEFT_PARTITION_DYNAMIC = 2,
} weft_partitioner;

/* Options of a loop; the zero value (or NULL) means the defaults. */
typedef struct weft_range_options {
    weft_partitioner partitioner; /* default AUTO */
    /* the smallest leaf, in elements (leaves hold grain to 2 * grain
     * elements); 0: leaves of at least 1 element, at most 4096 leaves */
    int64_t grain;
    /* processes, mpi: bytes of `arg` to copy to the workers (required
     * when `arg` is not NULL); ignored on serial and threads, which pass
     * `arg` itself */
    size_t arg_size;
    /* when non-NULL, a flag any thread may set non-zero (an atomic store)
     * to stop the loop, which then returns WEFT_ECANCELLED */
    const int *cancel;
} weft_range_options;

/* weft_parallel_for() :
 * Runs body(lo, hi, arg) over sub-ranges covering [begin, end) once each,
 * on `ex`'s workers, and returns when every piece has finished or was
 * skipped. end <= begin is an empty loop (0, the body never runs).
 * Ownership: `arg` stays the caller's; it must stay valid during the call.
 * Threads: any thread, also inside a task or body (nested loops help).
 * @return 0, the body's first error, WEFT_ECANCELLED (opts.cancel or a
 * cancelling shutdown), WEFT_EINVAL (NULL ex or body, a negative grain or
 * unknown partitioner; processes, mpi: `arg` without opts.arg_size),
 * WEFT_ECLOSED, WEFT_ENOTREG (processes, mpi: the body is not registered), WEFT_ENOMEM, or a worker's crash
 * (WEFT_ECRASHED, processes). */
WEFT_API int weft_parallel_for(weft_executor *ex, int64_t begin, int64_t end, weft_range_fn body,
                               void *arg, const weft_range_options *opts);

/* weft_parallel_reduce() :
 * Reduces [begin, end) into `*result` (value_size bytes): every leaf's
 * partial is body(lo, hi, acc, arg) over a copy of `identity`, and the
 * partials are combined in the fixed tree (see the top of this file). An
 * empty range gives the identity. Value buffers are 16-byte aligned.
 * Ownership: `identity`, `arg` and `result` stay the caller's; `result` is
 * written only on success.
 * Threads: as weft_parallel_for.
 * @return as weft_parallel_for; WEFT_EINVAL also for value_size 0, a NULL
 * identity, combine or result. */
WEFT_API int weft_parallel_reduce(weft_executor *ex, int64_t begin, int64_t end,
                                  const void *identity, size_t value_size,
                                  weft_range_reduce_fn body, weft_range_combine_fn combine,
                                  void *arg, const weft_range_options *opts, void *result);

/* weft_range_register() / weft_range_register_reduce() :
 * Registers a loop body (a reduction body with its combine) under `name`
 * (copied), so that worker processes and ranks find it. Registering the
 * same pair again is a no-op; a name held by another function, or a body
 * already registered under another name, is WEFT_EEXIST. Usually called
 * through WEFT_RANGE_REGISTER before main().
 * Threads: any. @return 0, WEFT_EINVAL, WEFT_EEXIST, WEFT_ENOMEM. */
WEFT_API int weft_range_register(const char *name, weft_range_fn body);
WEFT_API int weft_range_register_reduce(const char *name, weft_range_reduce_fn body,
                                        weft_range_combine_fn combine);

/* WEFT_RANGE_REGISTER(body) : registers `body` under the name "body" before
 * main() runs (file scope, after the definition).
 * WEFT_RANGE_REGISTER_REDUCE(body, combine) : the same for a reduction. */
#define WEFT_RANGE_REGISTER(fn)                                              \
    __attribute__((constructor)) static void weft__range_register_##fn(void) \
    {                                                                        \
        (void)weft_range_register(#fn, fn);                                  \
    }                                                                        \
    struct weft__range_semicolon_##fn
#define WEFT_RANGE_REGISTER_REDUCE(fn, combine)                              \
    __attribute__((constructor)) static void weft__range_register_##fn(void) \
    {                                                                        \
        (void)weft_range_register_reduce(#fn, fn, combine);                  \
    }                                                                        \
    struct weft__range_semicolon_##fn

#ifdef __cplusplus
}
#endif

#endif /* WEFT_RANGE_H */

/* bench_weft.h : weft helpers shared by the bench programs (C and C++). */
#ifndef WEFT_BENCH_WEFT_H
#define WEFT_BENCH_WEFT_H

#include <string.h>

#include "bench.h"
#include "weft.h"

/* Worker count of every pool in the benchmarks: the "2 workers". */
#define BENCH_WORKERS 2

/* bench_weft_create() :
 * Creates an executor of backend `b` with `workers` workers, or records a
 * failed check and returns NULL. Called outside the timed blocks. */
static inline weft_executor *bench_weft_create(weft_backend b, int workers)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    o.backend = b;
    o.workers = workers;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) {
        bench_fail("weft_executor_create(%s, %d workers): %s (%s)", weft_backend_name(b), workers,
                   weft_strerror(rc), weft_last_error());
        return NULL;
    }
    return ex;
}

/* bench_weft_destroy() : destroys `ex`, recording a failure. NULL is a no-op. */
static inline void bench_weft_destroy(weft_executor *ex)
{
    if (!ex) return;
    int rc = weft_executor_destroy(ex);
    if (rc) bench_fail("weft_executor_destroy: %s", weft_strerror(rc));
}

/* bench_weft_begin() : weft_init + bench_begin + a line naming the library. */
static inline void bench_weft_begin(int *argc, char ***argv, const char *src_file)
{
    int rc = weft_init(argc, argv);
    bench_begin((*argv)[0], src_file);
    if (rc) bench_fail("weft_init: %s", weft_strerror(rc));
    printf("# weft %s, %d workers for every pool (weft, naive-pool, TBB, OpenMP, "
           "ThreadPoolExecutor)\n",
           weft_version(), BENCH_WORKERS);
    fflush(stdout);
}

#endif /* WEFT_BENCH_WEFT_H */

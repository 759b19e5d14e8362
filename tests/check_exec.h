/* check_exec.h : executors for weft's tests (include after check.h).
 *
 *     weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
 *     REQUIRE(ex);
 *
 * check_executor() creates a `backend` executor with `workers` workers and
 * the other options from `extra` (NULL: defaults); on failure it prints why
 * (the code and weft_last_error) and returns NULL, so the test can REQUIRE,
 * SKIP or check the error itself. make_ex() is it with default options.
 * check_local_backends lists the backends that run in this process, for
 * tests that run the same checks on each in turn. */
#ifndef WEFT_CHECK_EXEC_H
#define WEFT_CHECK_EXEC_H

#include "check.h"

__attribute__((unused)) static weft_executor *check_executor(weft_backend backend, int workers,
                                                             const weft_options *extra)
{
    weft_options o = extra ? *extra : (weft_options){0};
    o.backend = backend;
    o.workers = workers;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc != 0) {
        printf("    weft_executor_create(%s, %d): %s (%s)\n", weft_backend_name(backend), workers,
               weft_strerror(rc), weft_last_error());
        return NULL;
    }
    return ex;
}

__attribute__((unused)) static weft_executor *make_ex(weft_backend backend, int workers)
{
    return check_executor(backend, workers, NULL);
}

/* The backends that run tasks in this process: threads, then serial. */
enum {
    CHECK_NLOCAL = 2
};
__attribute__((unused)) static const weft_backend check_local_backends[CHECK_NLOCAL] = {
    WEFT_BACKEND_THREADS, WEFT_BACKEND_SERIAL};

#endif

/* create.c : weft_executor_create, the top of the core. It reads the
 * options and the environment (WEFT_BACKEND, WEFT_WORKERS, WEFT_WATCHDOG),
 * asks the chosen backend (core/backend.h) to check its own options and
 * choose the executor's shape, and hands over to the pool (executor.c).
 * Only this file, init.c and backends.c reach the backends' table, so the
 * backends can call down into the pool with no cycle of calls. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec_internal.h"

#define MAX_STACK_SIZE ((size_t)1 << 30)

static int parse_workers_env(const char *v, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    while (*end == ' ') end++;
    if (errno || end == v || *end || n < 0 || n > MAX_WORKERS)
        return weft__err(WEFT_EINVAL, "WEFT_WORKERS='%s' is not a worker count (0..%d)", v,
                         MAX_WORKERS);
    *out = (int)n;
    return 0;
}

/* WEFT_WATCHDOG: seconds (>= 0, "inf" = never). */
static int parse_watchdog_env(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    while (*end == ' ') end++;
    if (errno == ERANGE && d != 0) errno = 0; /* a huge value: never */
    if (errno || end == v || *end || !(d >= 0))
        return weft__err(WEFT_EINVAL, "WEFT_WATCHDOG='%s' is not a number of seconds (>= 0)", v);
    *out = d;
    return 0;
}

int weft_executor_create(const weft_options *opts, weft_executor **out)
{
    static const weft_options defaults;
    if (!out) return weft__err(WEFT_EINVAL, "weft_executor_create: out is NULL");
    *out = NULL;
    if (!opts) opts = &defaults;
    /* Read only the bytes the caller's header knew; later fields default. */
    weft_options local;
    int orc = weft__opts_read(&local, sizeof local, opts, WEFT_OPTIONS_SIZE_0_2,
                              "weft_executor_create: weft_options");
    if (orc) return orc;
    opts = &local;

    weft_backend backend = opts->backend;
    if (backend != WEFT_BACKEND_DEFAULT && !weft__backend_of(backend))
        return weft__err(WEFT_EINVAL, "weft_executor_create: unknown backend %d", (int)backend);
    if (backend == WEFT_BACKEND_DEFAULT) {
        const char *v = getenv("WEFT_BACKEND");
        if (v && *v) {
            if (weft_backend_parse(v, &backend))
                return weft__err(WEFT_EINVAL,
                                 "WEFT_BACKEND='%s' is not a backend: use serial, threads, "
                                 "processes or mpi",
                                 v);
        } else {
            backend = WEFT_BACKEND_THREADS;
        }
    }
    const weft__backend *ops = weft__backend_of(backend);
    if (!weft_backend_available(backend)) {
        char avail[128] = "";
        size_t at = 0;
        for (size_t i = 0; i < weft__nbackends && at < sizeof avail; i++)
            if (weft_backend_available(weft__backends[i]->kind))
                at += (size_t)snprintf(avail + at, sizeof avail - at, "%s%s", at ? ", " : "",
                                       weft__backends[i]->name);
        return weft__err(WEFT_ENOTSUP,
                         "the '%s' backend is not available in this build (available: %s)",
                         ops->name, avail);
    }
    int workers = opts->workers;
    if (workers < 0)
        return weft__err(WEFT_EINVAL, "weft_executor_create: negative worker count %d", workers);
    if (workers > MAX_WORKERS)
        return weft__err(WEFT_EINVAL, "weft_executor_create: %d workers is over the limit of %d",
                         workers, MAX_WORKERS);
    if (workers == 0) {
        const char *v = getenv("WEFT_WORKERS");
        if (v && *v) {
            int rc = parse_workers_env(v, &workers);
            if (rc) return rc;
        }
        if (workers == 0) workers = weft__cpu_count();
    }
    if (opts->init_len && !opts->init_input)
        return weft__err(WEFT_EINVAL, "weft_executor_create: init_input is NULL with init_len %zu",
                         opts->init_len);
    if (opts->stack_size > MAX_STACK_SIZE)
        return weft__err(WEFT_EINVAL,
                         "weft_executor_create: stack_size %zu is over the limit of %zu bytes "
                         "(1 GiB)",
                         opts->stack_size, MAX_STACK_SIZE);
    if ((unsigned)opts->exit_mode > WEFT_EXIT_NONE)
        return weft__err(WEFT_EINVAL, "weft_executor_create: unknown exit_mode %d",
                         (int)opts->exit_mode);
    if (opts->exit_timeout < 0 || opts->exit_timeout != opts->exit_timeout)
        return weft__err(WEFT_EINVAL, "weft_executor_create: exit_timeout must be >= 0 seconds");
    weft__shape shape = {workers, workers, workers, false, false, false};
    void *bdata = NULL;
    if (ops->create) {
        int rc = ops->create(opts, &shape, &bdata);
        if (rc) return rc;
    }
    /* the watchdog: where tasks can stall for good (processes) */
    double watchdog = 0;
    bool watchdog_print = false;
    if (ops->caps & WEFT__CAP_WATCHDOG) {
        int rc = 0;
        if (opts->processes.watchdog < 0 || opts->processes.watchdog != opts->processes.watchdog)
            rc = weft__err(WEFT_EINVAL, "weft_executor_create: task_timeout and watchdog must "
                                        "be >= 0 seconds");
        watchdog = opts->processes.watchdog;
        watchdog_print = opts->processes.watchdog_print;
        if (!rc && watchdog == 0) {
            const char *v = getenv("WEFT_WATCHDOG");
            if (v && *v) {
                rc = parse_watchdog_env(v, &watchdog);
                watchdog_print = watchdog > 0; /* asked for through the environment */
            }
        }
        if (!rc && watchdog > 0 && !opts->processes.on_stall && !opts->processes.watchdog_fn &&
            !watchdog_print)
            rc = weft__err(WEFT_EINVAL,
                           "weft_executor_create: a watchdog with no on_stall, no watchdog_fn "
                           "and watchdog_print false would report to no one");
        if (rc) {
            if (ops->destroy) ops->destroy(bdata);
            return rc;
        }
    }
    return weft__exec_new(opts, ops, &shape, bdata, watchdog, watchdog_print, out);
}

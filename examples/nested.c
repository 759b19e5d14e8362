/* nested.c : fork/join from inside tasks -- Fibonacci by nested submits.
 *
 * A task submits a child to its own executor (weft_ctx_executor), computes
 * the other half itself, then waits for the child. Waiting inside a task
 * runs other tasks meanwhile ("helping"), so this never deadlocks, even with
 * one worker, and never starts more threads than the executor has.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define CUTOFF 22 /* below this, plain recursion: a task should be worth its cost */

static uint64_t fib_seq(int n)
{
    return n < 2 ? (uint64_t)n : fib_seq(n - 1) + fib_seq(n - 2);
}

static int fib_task(weft_ctx *ctx, const void *in, size_t len);

/* fib(n) from inside a task: fork n-1 as a child task, do n-2 here, join. */
static int fib(weft_ctx *ctx, int n, uint64_t *out)
{
    if (n < CUTOFF) {
        *out = fib_seq(n);
        return 0;
    }
    int m = n - 1, rc, rc2;
    uint64_t here = 0;
    const void *child;
    weft_future *f;
    if ((rc = weft_submit(weft_ctx_executor(ctx), fib_task, &m, sizeof m, &f)) != 0) return rc;
    rc = fib(ctx, n - 2, &here);
    rc2 = weft_future_result(f, WEFT_FOREVER, &child, NULL); /* helps while it waits */
    if (rc == 0 && rc2 == 0) *out = *(const uint64_t *)child + here;
    weft_future_release(f);
    return rc != 0 ? rc : rc2;
}

static int fib_task(weft_ctx *ctx, const void *in, size_t len)
{
    int n;
    uint64_t v;
    if (len != sizeof n) return weft_ctx_fail(ctx, WEFT_EINVAL, "want an int");
    memcpy(&n, in, sizeof n);
    int rc = fib(ctx, n, &v);
    if (rc != 0) return weft_ctx_fail(ctx, rc, "fib(%d): %s", n, weft_strerror(rc));
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(fib_task);

/* Runs fib(n) as one top-level task on a fresh executor; returns 0 if right. */
static int run(weft_backend backend, int workers, int n, uint64_t expect)
{
    weft_options opts = {.backend = backend, .workers = workers};
    weft_executor *ex;
    weft_future *f;
    const void *out;
    int rc = weft_executor_create(&opts, &ex);
    if (rc != 0) return fprintf(stderr, "create: %s\n", weft_strerror(rc)), 1;
    double t0 = weft_now();
    rc = weft_submit(ex, fib_task, &n, sizeof n, &f);
    if (rc == 0) rc = weft_future_result(f, WEFT_FOREVER, &out, NULL);
    double dt = weft_now() - t0;
    if (rc == 0)
        printf("%-8s %d worker%s  fib(%d) = %" PRIu64 "  %.3f s  %s\n", weft_backend_name(backend),
               weft_executor_workers(ex), weft_executor_workers(ex) == 1 ? " " : "s", n,
               *(const uint64_t *)out, dt, *(const uint64_t *)out == expect ? "ok" : "WRONG");
    else
        printf("%s: %s %s\n", weft_backend_name(backend), weft_strerror(rc),
               f ? weft_future_error(f) : "");
    int ok = rc == 0 && *(const uint64_t *)out == expect;
    weft_future_release(f);
    weft_executor_destroy(ex);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int n = 38, bad = 0;
    weft_init(&argc, &argv);
    double t0 = weft_now();
    uint64_t expect = fib_seq(n);
    printf("plain C           fib(%d) = %" PRIu64 "  %.3f s\n", n, expect, weft_now() - t0);
    bad |= run(WEFT_BACKEND_SERIAL, 0, n, expect);  /* nested submits run inline */
    bad |= run(WEFT_BACKEND_THREADS, 1, n, expect); /* one worker: helping, no deadlock */
    bad |= run(WEFT_BACKEND_THREADS, 0, n, expect); /* all CPUs */
    return bad;
}

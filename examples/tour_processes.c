/* tour_processes.c : multiprocessing.Pool, in C (docs/tour.md, "Processes").
 *
 *     from multiprocessing import Pool
 *     def f(x):                          # the notebook's CPU-bound loop
 *         y = x
 *         for i in range(N):
 *             y = y - i*i + randint(0, 10000) * randint(0, 10000)
 *         return y + 1
 *     with Pool(2) as p:
 *         print(p.map(f, range(10)))
 *
 * The same map on an executor whose backend is `processes`: tasks run in
 * worker processes (their pids are printed), inputs and outputs cross as
 * bytes through shared memory. A task that crashes takes down its worker
 * only: the future says WEFT_ECRASHED, the pool starts a new worker and the
 * next map runs as before. The loop also runs on `serial` to time it and
 * to check that both levels give the same ten numbers (each item's random
 * numbers are seeded from its index: weft_ctx_seed).
 *
 * Usage: tour_processes [--n N]   (iterations per item, default 20,000,000)
 * Exit status 0 when the levels agree and the crash was contained. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

typedef struct f_in {
    uint64_t n;
    int64_t x;
} f_in;

typedef struct f_out {
    uint64_t y;  /* f(x) modulo 2^64 (C's integers wrap, Python's grow) */
    int64_t pid; /* the process that ran it */
} f_out;

static int f(weft_ctx *ctx, const void *in, size_t len)
{
    f_in a;
    if (len != sizeof a) return weft_ctx_fail(ctx, WEFT_EINVAL, "input of %zu bytes", len);
    memcpy(&a, in, sizeof a);
    weft_rng rng;
    weft_rng_seed(&rng, weft_ctx_seed(ctx)); /* the item's own stream */
    uint64_t y = (uint64_t)a.x;
    for (uint64_t i = 0; i < a.n; i++)
        y = y - i * i + (uint64_t)weft_rng_range(&rng, 0, 10000) * weft_rng_range(&rng, 0, 10000);
    f_out o = {y + 1, (int64_t)getpid()};
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(f);

static int crash(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    raise(SIGSEGV); /* what a bad pointer does */
    return 0;
}
WEFT_TASK_REGISTER(crash);

/* p.map(f, range(10)) on `backend`; fills out[10]. @return seconds, or -1. */
static double map_f(weft_executor *ex, uint64_t n, f_out out[10])
{
    f_in items[10];
    weft_results *res;
    for (int i = 0; i < 10; i++) items[i] = (f_in){n, i};
    double t0 = weft_now();
    int rc = weft_map(ex, f, items, sizeof items[0], 10, NULL, &res);
    double dt = weft_now() - t0;
    if (rc == 0) rc = weft_results_gather(res, out, sizeof out[0], 10, NULL);
    weft_results_destroy(res);
    if (rc) fprintf(stderr, "tour_processes: map: %s (%s)\n", weft_strerror(rc), weft_last_error());
    return rc ? -1 : dt;
}

int main(int argc, char **argv)
{
    uint64_t n = 20000000;
    weft_init(&argc, &argv); /* first thing: starts the fork server */
    if (argc == 3 && strcmp(argv[1], "--n") == 0) n = strtoull(argv[2], NULL, 10);

    weft_executor *serial, *pool;
    weft_options so = {.backend = WEFT_BACKEND_SERIAL};
    weft_options po = {.backend = WEFT_BACKEND_PROCESSES, .workers = 2}; /* Pool(2) */
    if (weft_executor_create(&so, &serial) || weft_executor_create(&po, &pool)) {
        fprintf(stderr, "tour_processes: %s\n", weft_last_error());
        return 1;
    }
    f_out ref[10], got[10];
    double ts = map_f(serial, n, ref), tp = map_f(pool, n, got);
    if (ts < 0 || tp < 0) return 1;
    bool same = true;
    printf("f(x) for x in 0..9 (N = %llu), pid of the worker that ran it:\n",
           (unsigned long long)n);
    for (int i = 0; i < 10; i++) {
        printf("  f(%d) = %lld  pid %lld\n", i, (long long)(int64_t)got[i].y,
               (long long)got[i].pid);
        same = same && got[i].y == ref[i].y && got[i].pid != (int64_t)getpid();
    }
    printf("serial %.3f s, processes (2 workers) %.3f s: speed-up %.2f; same results: %s\n", ts, tp,
           ts / tp, same ? "yes" : "NO");

    /* a task that segfaults: its future fails, the pool lives on */
    weft_future *fu;
    int rc = weft_submit(pool, crash, NULL, 0, &fu);
    if (rc == 0) rc = weft_future_result(fu, WEFT_FOREVER, NULL, NULL);
    const char *msg = fu ? weft_future_error(fu) : NULL;
    printf("a crashing task: %s -- %s\n", weft_strerror(rc), msg ? msg : "");
    weft_future_release(fu);
    bool alive = map_f(pool, n / 10, got) >= 0;
    printf("the pool after the crash: %s\n", alive ? "ran the map again" : "BROKEN");

    weft_executor_destroy(pool);
    weft_executor_destroy(serial);
    bool ok = same && rc == WEFT_ECRASHED && alive;
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

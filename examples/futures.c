/* futures.c : futures one by one -- timeouts, wait, as_completed, cancel, callbacks.
 *
 * Every task here sleeps for the number of seconds it is given and returns
 * that number, so the order things finish in is known in advance.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <weft.h>

static int nap(weft_ctx *ctx, const void *in, size_t len)
{
    double s;
    if (len != sizeof s)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "want a double, got %zu bytes", len);
    memcpy(&s, in, sizeof s);
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(nap);

static weft_future *submit_nap(weft_executor *ex, double s)
{
    weft_future *f = NULL;
    int rc = weft_submit(ex, nap, &s, sizeof s, &f);
    if (rc != 0) fprintf(stderr, "submit: %s\n", weft_strerror(rc));
    return f;
}

/* A callback runs once, on the thread that finishes the future (a worker),
 * or at once on the caller's thread if it is already finished: keep it short. */
static atomic_int callbacks_run;
static void on_done(weft_future *f, void *arg)
{
    (void)arg;
    if (weft_future_state_get(f) == WEFT_FUTURE_DONE) atomic_fetch_add(&callbacks_run, 1);
}

int main(int argc, char **argv)
{
    weft_executor *ex;
    const void *out;
    int rc;

    weft_init(&argc, &argv);
    /* Two workers whatever the machine, so the timings below hold everywhere. */
    weft_options opts = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    if ((rc = weft_executor_create(&opts, &ex)) != 0) {
        fprintf(stderr, "create: %s (%s)\n", weft_strerror(rc), weft_last_error());
        return 1;
    }

    /* 1. Timeouts: a result asked for too early says WEFT_ETIMEDOUT and
     *    leaves the task running; asking again later gets it. */
    weft_future *slow = submit_nap(ex, 0.2);
    rc = weft_future_result(slow, 0.01, &out, NULL);
    printf("1. result after 10 ms: %s\n", weft_strerror(rc));
    rc = weft_future_result(slow, WEFT_FOREVER, &out, NULL);
    printf("   result when done:   %s, %.1f\n", weft_strerror(rc), *(const double *)out);
    weft_future_release(slow);

    /* 2. weft_wait: block until the first of several futures finishes. */
    double naps[4] = {0.4, 0.1, 0.15, 0.05}; /* on 2 workers: finish 1, 2, 3, 0 */
    weft_future *fs[4];
    bool done[4];
    for (int i = 0; i < 4; i++) fs[i] = submit_nap(ex, naps[i]);
    size_t nd = 0;
    rc = weft_wait(fs, 4, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER, done, &nd);
    printf("2. first completed: %zu finished (", nd);
    for (int i = 0; i < 4; i++) printf("%s%d", i ? " " : "", done[i]);
    printf(")\n");

    /* 3. weft_as_completed: take each future as it finishes. The iterator
     *    holds its own references; `f` is borrowed from it. */
    weft_as_completed *it;
    if (weft_as_completed_create(fs, 4, &it) == 0) {
        weft_future *f;
        size_t idx;
        printf("3. as completed:");
        while (weft_as_completed_next(it, WEFT_FOREVER, &f, &idx) == 0) {
            weft_future_result(f, 0, &out, NULL); /* finished: 0 never waits */
            printf(" #%zu (%.2f s)", idx, *(const double *)out);
        }
        printf("\n");
        weft_as_completed_destroy(it);
    }
    rc = weft_wait(fs, 4, WEFT_WAIT_ALL, 5.0, NULL, &nd); /* all done already: nd = 4 */
    printf("   wait all: %zu finished\n", nd);
    for (int i = 0; i < 4; i++) weft_future_release(fs[i]);

    /* 4. Cancel: only a task that has not started can be cancelled. Fill both
     *    workers, then queue a third task: it is still pending. */
    weft_future *a = submit_nap(ex, 0.2), *b = submit_nap(ex, 0.2), *c = submit_nap(ex, 0.2);
    /* (finished counts too: on a busy machine this thread may wake late) */
    while (!(weft_future_running(a) || weft_future_done(a)) ||
           !(weft_future_running(b) || weft_future_done(b))) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    printf("4. cancel pending: %s; cancel running: %s\n", weft_strerror(weft_future_cancel(c)),
           weft_strerror(weft_future_cancel(a)));
    rc = weft_future_result(c, WEFT_FOREVER, NULL, NULL);
    printf("   result of the cancelled one: %s (cancelled=%d)\n", weft_strerror(rc),
           weft_future_cancelled(c));
    weft_future_release(a);
    weft_future_release(b);
    weft_future_release(c);

    /* 5. Callbacks: added before the task finishes, it runs on the worker;
     *    added after, it runs at once on this thread. */
    weft_future *d = submit_nap(ex, 0.05);
    weft_future_on_done(d, on_done, NULL);
    weft_future_wait(d, WEFT_FOREVER);
    weft_future_on_done(d, on_done, NULL); /* already finished: runs now */
    weft_future_release(d);
    weft_executor_destroy(ex); /* every callback has run once this returns */
    printf("5. callbacks run: %d (expected 2)\n", atomic_load(&callbacks_run));
    return atomic_load(&callbacks_run) == 2 ? 0 : 1;
}

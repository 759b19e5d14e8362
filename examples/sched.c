/* sched.c : weft_sched, the event scheduler (Python's sched.scheduler).
 *
 * 1. A foreground scheduler on a virtual clock: events ordered by time, then
 *    priority, then insertion; one cancelled; run until empty, instantly.
 * 2. A background scheduler on the real clock: a periodic heartbeat, and a
 *    task event handed to an executor, whose future gives the result.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "weft.h"

/* ---- 1: virtual clock ---- */

static double clock_now(void *arg)
{
    return *(double *)arg;
}

static void clock_sleep(void *arg, double seconds)
{
    *(double *)arg += seconds; /* no real sleeping */
}

static double vnow;

static void say(void *arg)
{
    printf("  t=%4.1f  %s\n", vnow, (const char *)arg);
}

/* ---- 2: background + executor ---- */

static void heartbeat(void *arg)
{
    int *beats = arg;
    ++*beats;
}

static int cube(weft_ctx *ctx, const void *in, size_t len)
{
    long v = 0;
    if (len != sizeof v) return weft_ctx_fail(ctx, WEFT_EINVAL, "want a long");
    memcpy(&v, in, sizeof v);
    v = v * v * v;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(cube);

static weft_future *submitted; /* set by on_submit on the scheduler's thread */

static void on_submit(void *arg, weft_sched_id id, int rc, weft_future *f)
{
    (void)arg;
    (void)id;
    if (rc == 0) {
        weft_future_retain(f); /* keep it past this call */
        submitted = f;
    }
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, weft_strerror(rc), weft_last_error());
    return 1;
}

int main(void)
{
    /* 1 */
    weft_sched_options vo = {.timefunc = clock_now, .delayfunc = clock_sleep, .clock_arg = &vnow};
    weft_sched *s = NULL;
    int rc = weft_sched_create(&vo, &s);
    if (rc) return fail("weft_sched_create", rc);
    weft_sched_id gone;
    weft_sched_enter(s, 2.0, 1, say, "second at 2 s (priority 1)", NULL);
    weft_sched_enter(s, 2.0, 0, say, "first at 2 s (priority 0)", NULL);
    weft_sched_enter(s, 1.0, 0, say, "at 1 s", NULL);
    weft_sched_enter(s, 3.0, 0, say, "cancelled: never printed", &gone);
    weft_sched_enterabs(s, 5.0, 0, say, "at 5 s (enterabs)", NULL);
    weft_sched_cancel(s, gone);
    size_t n = 0;
    weft_sched_queue(s, NULL, 0, &n);
    printf("virtual clock: %zu events queued\n", n);
    rc = weft_sched_run(s, true, NULL);
    if (rc) return fail("weft_sched_run", rc);
    rc = weft_sched_cancel(s, gone);
    printf("cancel again: %s\n", weft_strerror(rc));
    weft_sched_destroy(s);

    /* 2 */
    weft_options eo = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    weft_executor *ex = NULL;
    rc = weft_executor_create(&eo, &ex);
    if (rc) return fail("weft_executor_create", rc);
    weft_sched_options bo = {.background = true, .executor = ex, .on_submit = on_submit};
    rc = weft_sched_create(&bo, &s);
    if (rc) return fail("weft_sched_create", rc);
    int beats = 0;
    weft_sched_id hb;
    weft_sched_enter_periodic(s, 0, 0.01, WEFT_SCHED_FIXED_RATE, 0, heartbeat, &beats, &hb);
    long x = 7;
    weft_sched_enter_task(s, 0.05, 0, cube, &x, sizeof x, NULL);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the main thread is free meanwhile */
    /* drain: pending one-shot events run (none left), the heartbeat is
     * cancelled, the thread is joined */
    weft_sched_stop(s, WEFT_SCHED_STOP_DRAIN);
    printf("background: %d heartbeats in 100 ms (about 10)\n", beats);
    if (submitted) {
        const void *out;
        size_t len;
        rc = weft_future_result(submitted, WEFT_FOREVER, &out, &len);
        long v = 0;
        if (rc == 0 && len == sizeof v) memcpy(&v, out, sizeof v);
        printf("cube(7) through the executor = %ld\n", v);
        weft_future_release(submitted);
    }
    weft_sched_destroy(s);
    weft_executor_destroy(ex);
    return 0;
}

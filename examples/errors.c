/* errors.c : how failures come back -- a task's error and message, a map
 * with failed items, retries, and the detail of a failed weft call. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

/* Parses a positive integer; fails with a code and a message otherwise. */
static int parse_positive(weft_ctx *ctx, const void *in, size_t len)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "input of %zu bytes", len);
    memcpy(buf, in, len);
    buf[len] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end != '\0' || v <= 0)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "'%s' is not a positive number", buf);
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(parse_positive);

/* Fails on its first two attempts (weft_ctx_attempt is 0, 1, ...). */
static int flaky(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    int attempt = weft_ctx_attempt(ctx);
    if (attempt < 2) return weft_ctx_fail(ctx, WEFT_EAGAIN, "attempt %d: try again", attempt);
    return weft_ctx_set_output(ctx, &attempt, sizeof attempt);
}
WEFT_TASK_REGISTER(flaky);

/* Returning a positive number without a message: reported as WEFT_ETASK. */
static int sloppy(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 1;
}
WEFT_TASK_REGISTER(sloppy);

static int surprises; /* outcomes other than the ones this example expects */

static void show(const char *what, weft_future *f, int expect)
{
    const void *out;
    int rc = weft_future_result(f, WEFT_FOREVER, &out, NULL);
    if (rc == 0)
        printf("%-22s ok\n", what);
    else
        printf("%-22s %s; message: \"%s\"\n", what, weft_strerror(rc), weft_future_error(f));
    surprises += rc != expect;
}

int main(int argc, char **argv)
{
    weft_executor *ex;
    weft_future *f;
    int rc;

    weft_init(&argc, &argv);

    /* 1. A failed call says why twice: the code, and weft_last_error(). */
    weft_options bad = {.workers = -1};
    rc = weft_executor_create(&bad, &ex);
    printf("1. workers = -1:       %s; detail: \"%s\"; ex = %p\n", weft_strerror(rc),
           weft_last_error(), (void *)ex);
    surprises += rc != WEFT_EINVAL || ex != NULL;
    setenv("WEFT_BACKEND", "warp-drive", 1); /* the environment is checked too */
    rc = weft_executor_create(NULL, &ex);
    printf("   WEFT_BACKEND=warp-drive: %s; detail: \"%s\"\n", weft_strerror(rc),
           weft_last_error());
    surprises += rc != WEFT_EINVAL;
    unsetenv("WEFT_BACKEND");

    if ((rc = weft_executor_create(NULL, &ex)) != 0) return 1;

    /* 2. A task's failure comes back through its future, like an exception. */
    printf("2. ");
    weft_submit(ex, parse_positive, "42", 2, &f);
    show("parse \"42\":", f, 0);
    weft_future_release(f);
    printf("   ");
    weft_submit(ex, parse_positive, "-3", 2, &f);
    show("parse \"-3\":", f, WEFT_EINVAL);
    weft_future_release(f);
    printf("   ");
    weft_submit(ex, sloppy, NULL, 0, &f);
    show("return 1:", f, WEFT_ETASK);
    weft_future_release(f);

    /* 3. A map keeps going past failed items (unless WEFT_MAP_STOP_ON_ERROR)
     *    and returns the first failed item's code; each item keeps its own. */
    weft_buf inputs[4] = {{"7", 1}, {"x", 1}, {"12", 2}, {"0", 1}};
    weft_results *res;
    rc = weft_map_bufs(ex, parse_positive, inputs, 4, NULL, &res);
    printf("3. map: %s, %zu of %zu failed\n", weft_strerror(rc), weft_results_failed(res),
           weft_results_count(res));
    surprises += rc != WEFT_EINVAL || weft_results_failed(res) != 2;
    for (size_t i = 0; i < weft_results_count(res); i++) {
        const void *p;
        if (weft_results_get(res, i, &p, NULL) == 0)
            printf("   [%zu] %ld\n", i, *(const long *)p);
        else
            printf("   [%zu] failed: %s\n", i, weft_results_error(res, i));
    }
    weft_results_destroy(res);

    /* 4. Retries: re-run a task that returned an error, up to `retries` times. */
    weft_submit_options once = {.retries = 1}, twice = {.retries = 2};
    printf("4. ");
    weft_submit_ex(ex, flaky, NULL, 0, &once, &f);
    show("flaky, 1 retry:", f, WEFT_EAGAIN);
    weft_future_release(f);
    weft_submit_ex(ex, flaky, NULL, 0, &twice, &f);
    const void *out;
    if (weft_future_result(f, WEFT_FOREVER, &out, NULL) == 0)
        printf("   flaky, 2 retries:     ok on attempt %d\n", *(const int *)out);
    else
        surprises++;
    weft_future_release(f);

    weft_executor_destroy(ex);
    if (surprises) fprintf(stderr, "errors: %d unexpected outcomes\n", surprises);
    return surprises != 0;
}

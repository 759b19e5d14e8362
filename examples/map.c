/* map.c : weft_map three ways -- results in input order, streamed results,
 * and a stream of inputs of any length in bounded memory. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

/* One item: an int64 in, its square out. */
static int square(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "item of %zu bytes", len);
    memcpy(&x, in, sizeof x);
    int64_t y = x * x;
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(square);

/* Streamed results arrive on the thread that called map, in input order
 * (unless WEFT_MAP_UNORDERED); `out` is valid only during the call. */
typedef struct totals {
    uint64_t count;
    int64_t sum;
    int64_t expect_index;
} totals;

static int add_result(void *arg, uint64_t index, int err, const void *out, size_t len,
                      const char *msg)
{
    totals *t = arg;
    if (err != 0) {
        fprintf(stderr, "item %" PRIu64 ": %s %s\n", index, weft_strerror(err), msg ? msg : "");
        return err; /* a non-zero return stops the map */
    }
    if ((int64_t)index != t->expect_index++) return WEFT_EINVAL; /* order is kept */
    int64_t y;
    if (len != sizeof y) return WEFT_EINVAL;
    memcpy(&y, out, sizeof y);
    t->sum += y;
    t->count++;
    return 0;
}

/* Stream input: produce item `index` on demand; 0 ends the stream. The
 * bytes must stay valid until the next call, so they live in `arg`. */
typedef struct counter {
    int64_t limit;
    int64_t current;
} counter;

static int next_item(void *arg, uint64_t index, weft_buf *item)
{
    counter *c = arg;
    if ((int64_t)index >= c->limit) return 0;
    c->current = (int64_t)index;
    item->data = &c->current;
    item->len = sizeof c->current;
    return 1;
}

int main(int argc, char **argv)
{
    weft_executor *ex;
    int rc;

    weft_init(&argc, &argv);
    if ((rc = weft_executor_create(NULL, &ex)) != 0) {
        fprintf(stderr, "create: %s (%s)\n", weft_strerror(rc), weft_last_error());
        return 1;
    }
    printf("%s, %d workers\n", weft_backend_name(weft_executor_backend(ex)),
           weft_executor_workers(ex));

    /* 1. An array in, a results object out: one entry per item, in input
     *    order, whatever order the workers finished them in. */
    int64_t xs[10];
    for (int i = 0; i < 10; i++) xs[i] = i;
    weft_results *res;
    rc = weft_map(ex, square, xs, sizeof xs[0], 10, NULL, &res);
    printf("1. map: %s, %zu results:", weft_strerror(rc), weft_results_count(res));
    for (size_t i = 0; i < weft_results_count(res); i++) {
        const void *p;
        if (weft_results_get(res, i, &p, NULL) == 0) printf(" %" PRId64, *(const int64_t *)p);
    }
    printf("\n");
    weft_results_destroy(res);

    /* 2. The same with results streamed to a callback as they come, in
     *    order; no results object is kept (out = NULL). */
    static int64_t many[100000]; /* static: 800 KB is too much for a stack */
    for (int i = 0; i < 100000; i++) many[i] = i;
    totals t = {0};
    weft_map_options mo = {.on_result = add_result, .arg = &t};
    rc = weft_map(ex, square, many, sizeof many[0], 100000, &mo, NULL);
    printf("2. on_result: %s, %" PRIu64 " items, sum of squares %" PRId64 "\n", weft_strerror(rc),
           t.count, t.sum);

    /* 3. A stream of one million items that never exists as an array: at
     *    most max_in_flight items are held at once. */
    counter c = {.limit = 1000000};
    totals s = {0};
    weft_map_options so = {.on_result = add_result, .arg = &s, .max_in_flight = 4096};
    double t0 = weft_now();
    rc = weft_map_stream(ex, square, next_item, &c, &so, NULL);
    int64_t n = c.limit, expect = (n - 1) * n * (2 * n - 1) / 6;
    printf("3. stream: %s, %" PRIu64 " items in %.3f s, sum %s\n", weft_strerror(rc), s.count,
           weft_now() - t0, s.sum == expect ? "correct" : "WRONG");

    weft_executor_destroy(ex);
    return rc == 0 && s.sum == expect && t.count == 100000 ? 0 : 1;
}

/* stress_tasks.c : 1M small tasks submitted, then all waited and checked.
 * Arguments: [workers] [scale]; WEFT_STRESS_SCALE scales the count. */
// weft-test-timeout: 180
#include "check.h"

static int affine(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t v;
    if (len != sizeof v) return weft_ctx_fail(ctx, WEFT_EINVAL, "len %zu", len);
    memcpy(&v, in, sizeof v);
    v = v * 2654435761u + 12345u;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(affine);

static void run(weft_backend b, size_t n)
{
    weft_options o = {0};
    o.backend = b;
    o.workers = check_arg_threads(0);
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    weft_future **fs = malloc(n * sizeof *fs);
    REQUIRE(fs);
    double t0 = check_now();
    for (size_t i = 0; i < n; i++) {
        uint64_t v = i;
        int rc = weft_submit(ex, affine, &v, sizeof v, &fs[i]);
        if (rc) {
            CHECK_OK(rc);
            n = i;
            break;
        }
    }
    double t1 = check_now();
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t len;
        int rc = weft_future_result(fs[i], WEFT_FOREVER, &d, &len);
        uint64_t want = (uint64_t)i * 2654435761u + 12345u;
        if (rc != 0 || len != 8 || memcmp(d, &want, 8) != 0) {
            if (bad++ < 5) CHECK_MSG(0, "task %zu: rc %d len %zu", i, rc, len);
        }
        weft_future_release(fs[i]);
    }
    double t2 = check_now();
    CHECK_EQ_INT(bad, 0);
    printf("    %s, %d workers: %zu tasks, submit %.2f s, wait %.2f s (%.0f tasks/s)\n",
           weft_backend_name(b), weft_executor_workers(ex), n, t1 - t0, t2 - t1,
           (double)n / (t2 - t0));
    free(fs);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(million_tasks_threads)
{
    run(WEFT_BACKEND_THREADS, check_scaled(1000000, 1000));
}
TEST(tasks_serial)
{
    run(WEFT_BACKEND_SERIAL, check_scaled(200000, 1000));
}

/* the same through weft_map, chunked automatically */
TEST(million_items_map)
{
    size_t n = check_scaled(1000000, 1000);
    weft_options o = {0};
    o.workers = check_arg_threads(0);
    o.backend = WEFT_BACKEND_THREADS;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    uint64_t *items = malloc(n * sizeof *items);
    REQUIRE(items);
    for (size_t i = 0; i < n; i++) items[i] = i;
    weft_results *r = NULL;
    double t0 = check_now();
    CHECK_OK(weft_map(ex, affine, items, sizeof items[0], n, NULL, &r));
    double dt = check_now() - t0;
    REQUIRE(r);
    CHECK_EQ_INT(weft_results_count(r), n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t len;
        uint64_t want = (uint64_t)i * 2654435761u + 12345u;
        if (weft_results_get(r, i, &d, &len) != 0 || len != 8 || memcmp(d, &want, 8) != 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    printf("    map of %zu items: %.2f s\n", n, dt);
    weft_results_destroy(r);
    free(items);
    CHECK_OK(weft_executor_destroy(ex));
}

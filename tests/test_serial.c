/* test_serial.c : the serial backend runs everything inline on the calling
 * thread, in submission order; futures are finished when submit returns. */
#include "check.h"
#include "check_exec.h"

static weft_executor *make_serial(void)
{
    return make_ex(WEFT_BACKEND_SERIAL, 0);
}

static pthread_t seen_thread;
static int order_log[1000];
static int order_n;
static int depth;

static int record(weft_ctx *ctx, const void *in, size_t len)
{
    int v = 0;
    if (len == sizeof v) memcpy(&v, in, sizeof v);
    seen_thread = pthread_self();
    if (order_n < 1000) order_log[order_n++] = v;
    int info[3] = {v, weft_ctx_worker(ctx), depth};
    return weft_ctx_set_output(ctx, info, sizeof info);
}
WEFT_TASK_REGISTER(record);

TEST(runs_inline_on_caller_thread)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_SERIAL);
    CHECK_EQ_INT(weft_executor_workers(ex), 1);
    int threads0 = check_count_threads();
    order_n = 0;
    memset(&seen_thread, 0, sizeof seen_thread);
    int v = 5;
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, record, &v, sizeof v, &f));
    /* ran before submit returned, here */
    CHECK_EQ_INT(order_n, 1);
    CHECK(pthread_equal(seen_thread, pthread_self()));
    CHECK(weft_future_done(f));
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_DONE);
    CHECK_OK(weft_future_result(f, 0, NULL, NULL));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, 0, &d, &len));
    REQUIRE(len == 3 * sizeof(int));
    CHECK_EQ_INT(((const int *)d)[0], 5);
    CHECK_EQ_INT(((const int *)d)[1], 0);
    weft_future_release(f);
    /* no worker threads */
    CHECK_EQ_INT(check_count_threads(), threads0);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(submission_order)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    order_n = 0;
    weft_future *fs[100];
    for (int i = 0; i < 100; i++) {
        REQUIRE_OK(weft_submit(ex, record, &i, sizeof i, &fs[i]));
        CHECK_EQ_INT(order_n, i + 1);
        CHECK(weft_future_done(fs[i]));
    }
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(order_log[i], i);
    for (int i = 0; i < 100; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
}

static int failing(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    return weft_ctx_fail(ctx, WEFT_EPERM, "serial failure");
}
WEFT_TASK_REGISTER(failing);

TEST(failure_done_after_submit)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, failing, NULL, 0, &f)); /* submit itself succeeds */
    CHECK(weft_future_done(f));
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_FAILED);
    CHECK_RC(weft_future_result(f, 0, NULL, NULL), WEFT_EPERM);
    CHECK_EQ_STR(weft_future_error(f), "serial failure");
    CHECK_RC(weft_future_cancel(f), WEFT_EBUSY);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* nested: a task submits a child, which runs inline at once */
static int nest(weft_ctx *ctx, const void *in, size_t len)
{
    int v;
    memcpy(&v, in, sizeof v);
    (void)len;
    if (v == 0) return record(ctx, in, len);
    int child = v - 1;
    depth++;
    weft_future *f;
    int rc = weft_submit(weft_ctx_executor(ctx), nest, &child, sizeof child, &f);
    depth--;
    if (rc) return rc;
    if (!weft_future_done(f)) rc = WEFT_ETASK;
    weft_future_release(f);
    if (rc) return rc;
    if (order_n < 1000) order_log[order_n++] = v;
    return 0;
}
WEFT_TASK_REGISTER(nest);

TEST(nested_inline)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    order_n = 0;
    int v = 5;
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, nest, &v, sizeof v, &f));
    CHECK_OK(weft_future_result(f, 0, NULL, NULL));
    CHECK_EQ_INT(order_n, 6);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(order_log[i], i); /* deepest first */
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

static int map_cb_calls;
static int map_log_at_cb[200];

static int serial_cb(void *arg, uint64_t index, int err, const void *out, size_t len,
                     const char *msg)
{
    (void)arg, (void)err, (void)out, (void)len, (void)msg;
    /* items run in order; by the time item i is delivered, item i ran */
    if (map_cb_calls < 200) map_log_at_cb[map_cb_calls] = order_n;
    CHECK(pthread_equal(seen_thread, pthread_self()));
    CHECK_EQ_U64(index, (uint64_t)map_cb_calls);
    map_cb_calls++;
    return 0;
}

TEST(map_in_order_on_caller)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    order_n = 0;
    map_cb_calls = 0;
    int items[200];
    for (int i = 0; i < 200; i++) items[i] = 1000 + i;
    weft_map_options mo = {0};
    mo.on_result = serial_cb;
    mo.chunk_size = 7;
    CHECK_OK(weft_map(ex, record, items, sizeof items[0], 200, &mo, NULL));
    CHECK_EQ_INT(map_cb_calls, 200);
    CHECK_EQ_INT(order_n, 200);
    for (int i = 0; i < 200; i++) CHECK_EQ_INT(order_log[i], 1000 + i);
    for (int i = 1; i < 200; i++) CHECK(map_log_at_cb[i] >= i + 1);
    CHECK(pthread_equal(seen_thread, pthread_self()));
    CHECK_OK(weft_executor_destroy(ex));
}

/* callbacks of a serial future run in the submitting thread */
static pthread_t cb_thread;
static int cb_count;
static void on_done_cb(weft_future *f, void *arg)
{
    (void)f, (void)arg;
    cb_thread = pthread_self();
    cb_count++;
}

TEST(callbacks_on_caller)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    weft_future *f;
    int v = 1;
    REQUIRE_OK(weft_submit(ex, record, &v, sizeof v, &f));
    cb_count = 0;
    CHECK_OK(weft_future_on_done(f, on_done_cb, NULL));
    CHECK_EQ_INT(cb_count, 1);
    CHECK(pthread_equal(cb_thread, pthread_self()));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* serial from several threads: each task runs on its own submitting thread */
static void *serial_thread(void *arg)
{
    weft_executor *ex = arg;
    for (int i = 0; i < 200; i++) {
        weft_future *f;
        int v = i;
        if (weft_submit(ex, record, &v, sizeof v, &f) != 0) {
            CHECK(0);
            break;
        }
        CHECK(weft_future_done(f));
        weft_future_release(f);
    }
    return NULL;
}

static pthread_t task_thread_seen[2];
static int where(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    pthread_t me = pthread_self();
    return weft_ctx_set_output(ctx, &me, sizeof me);
}
WEFT_TASK_REGISTER(where);

static void *where_thread(void *arg)
{
    weft_executor *ex = *(weft_executor **)arg;
    int k = ((weft_executor **)arg)[1] != NULL;
    weft_future *f;
    if (weft_submit(ex, where, NULL, 0, &f) == 0) {
        const void *d;
        size_t len;
        if (weft_future_result(f, 0, &d, &len) == 0 && len == sizeof(pthread_t))
            memcpy(&task_thread_seen[k], d, sizeof(pthread_t));
        weft_future_release(f);
    }
    return NULL;
}

TEST(serial_from_threads)
{
    weft_executor *ex = make_serial();
    REQUIRE(ex);
    pthread_t a, b;
    weft_executor *arg0[2] = {ex, NULL}, *arg1[2] = {ex, ex};
    REQUIRE(pthread_create(&a, NULL, where_thread, arg0) == 0);
    REQUIRE(pthread_create(&b, NULL, where_thread, arg1) == 0);
    pthread_t ta = a, tb = b;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(pthread_equal(task_thread_seen[0], ta));
    CHECK(pthread_equal(task_thread_seen[1], tb));
    (void)serial_thread;
    CHECK_OK(weft_executor_destroy(ex));
}

/* test_badinput.c : bad arguments everywhere return the right code with a
 * message in weft_last_error(), never a crash or a hang. */
#include "check.h"
#include "check_exec.h"

static int echo(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(echo);

static atomic_int gate_started, gate_open;
static int gate(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    atomic_store(&gate_started, 1);
    double end = check_now() + 30;
    while (!atomic_load(&gate_open) && check_now() < end) check_sleep(0.0005);
    return 0;
}
WEFT_TASK_REGISTER(gate);

static int next_none(void *arg, uint64_t index, weft_buf *item)
{
    (void)arg, (void)index, (void)item;
    return 0;
}

static weft_executor *make_threads(int w)
{
    return make_ex(WEFT_BACKEND_THREADS, w);
}

TEST(null_arguments)
{
    weft_executor *ex = make_threads(1);
    REQUIRE(ex);
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_executor_create(NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_submit(NULL, echo, NULL, 0, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, NULL, NULL, 0, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(weft_submit(ex, echo, "x", 1, NULL), WEFT_EINVAL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, echo, NULL, 3, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit_ex(NULL, echo, NULL, 0, NULL, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(weft_executor_shutdown(NULL, WEFT_SHUTDOWN_CANCEL), WEFT_EINVAL);
    CHECK_ERR(weft_future_wait(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_future_result(NULL, 0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_cancel(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_on_done(NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_wait(NULL, 2, WEFT_WAIT_ALL, 0, NULL, NULL), WEFT_EINVAL);
    weft_as_completed *it = (weft_as_completed *)1;
    CHECK_ERR(weft_as_completed_create(NULL, 1, &it), WEFT_EINVAL);
    weft_future *fp;
    CHECK_ERR(weft_as_completed_next(NULL, 0, &fp, NULL), WEFT_EINVAL);
    weft_results *r = NULL;
    CHECK_ERR(weft_map(NULL, echo, "ab", 1, 2, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_map(ex, NULL, "ab", 1, 2, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_map(ex, echo, NULL, 1, 2, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_map_bufs(ex, echo, NULL, 2, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_map_stream(ex, echo, NULL, NULL, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_map_stream(ex, NULL, next_none, NULL, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_trace_write(NULL, "t.json"), WEFT_EINVAL);
    CHECK_ERR(weft_trace_write(ex, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_trace_enable(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_task_register(NULL, echo), WEFT_EINVAL);
    CHECK_ERR(weft_task_register("x.null", NULL), WEFT_EINVAL);
    weft_task_fn fn;
    CHECK_ERR(weft_task_lookup(NULL, &fn), WEFT_EINVAL);
    CHECK_ERR(weft_task_lookup("echo", NULL), WEFT_EINVAL);
    CHECK(weft_task_name(NULL) == NULL);
    weft_backend b;
    CHECK_ERR(weft_backend_parse(NULL, &b), WEFT_EINVAL);
    CHECK_ERR(weft_backend_parse("threads", NULL), WEFT_EINVAL);
    /* no-ops */
    weft_future_retain(NULL);
    weft_future_release(NULL);
    CHECK_OK(weft_results_destroy(NULL));
    CHECK_OK(weft_as_completed_destroy(NULL));
    CHECK_OK(weft_executor_destroy(NULL));
    CHECK_OK(weft_executor_destroy(ex));
}

/* Every _destroy and _fini returns int, and NULL is a no-op returning 0. */
TEST(destroy_null_returns_zero)
{
    CHECK_OK(weft_executor_destroy(NULL));
    CHECK_OK(weft_results_destroy(NULL));
    CHECK_OK(weft_as_completed_destroy(NULL));
    CHECK_OK(weft_graph_destroy(NULL));
    CHECK_OK(weft_progress_destroy(NULL));
    CHECK_OK(weft_proc_destroy(NULL));
    CHECK_OK(weft_run_result_fini(NULL));
    CHECK_OK(weft_queue_destroy(NULL));
    CHECK_OK(weft_sched_destroy(NULL));
    CHECK_OK(weft_timer_destroy(NULL));
    CHECK_OK(weft_shm_destroy(NULL));
    CHECK_OK(weft_channel_destroy(NULL));
    CHECK_OK(weft_mpqueue_destroy(NULL));
    weft_run_result zeroed = {0};
    CHECK_OK(weft_run_result_fini(&zeroed));
}

TEST(unknown_backend_name)
{
    unsetenv("WEFT_WORKERS");
    const char *names[] = {"foo", "", "thread", "serial ", "mpi2"};
    for (int i = 0; i < 5; i++) {
        setenv("WEFT_BACKEND", names[i], 1);
        weft_executor *ex = (weft_executor *)1;
        int rc = weft_executor_create(NULL, &ex);
        if (names[i][0] == '\0' && rc == 0) {
            /* an empty variable may mean "unset" */
            CHECK(ex != NULL);
            weft_executor_destroy(ex);
            continue;
        }
        CHECK_MSG(rc == WEFT_EINVAL, "WEFT_BACKEND='%s': %d %s", names[i], rc, weft_strerror(rc));
        CHECK(ex == NULL);
        CHECK(weft_last_error()[0] != '\0');
        weft_backend b;
        if (names[i][0]) CHECK_ERR(weft_backend_parse(names[i], &b), WEFT_EINVAL);
    }
    unsetenv("WEFT_BACKEND");
}

TEST(negative_worker_count)
{
    int ws[3] = {-1, -2, -1000000};
    for (int i = 0; i < 3; i++) {
        weft_options o = {0};
        o.workers = ws[i];
        weft_executor *ex = (weft_executor *)1;
        CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
        CHECK(ex == NULL);
    }
}

TEST(nan_and_negative_timeouts)
{
    weft_executor *ex = make_threads(1);
    REQUIRE(ex);
    atomic_store(&gate_started, 0);
    atomic_store(&gate_open, 0);
    weft_future *g;
    REQUIRE_OK(weft_submit(ex, gate, NULL, 0, &g));
    CHECK(check_wait_atomic(&gate_started, 1, 10));
    double bad[4] = {NAN, -1.0, -INFINITY, -1e-9};
    for (int i = 0; i < 4; i++) {
        double t0 = check_now();
        CHECK_ERR(weft_future_wait(g, bad[i]), WEFT_EINVAL);
        CHECK_ERR(weft_future_result(g, bad[i], NULL, NULL), WEFT_EINVAL);
        weft_future *fs[1] = {g};
        CHECK_ERR(weft_wait(fs, 1, WEFT_WAIT_ALL, bad[i], NULL, NULL), WEFT_EINVAL);
        weft_as_completed *it = NULL;
        if (weft_as_completed_create(fs, 1, &it) == 0) {
            weft_future *f;
            CHECK_ERR(weft_as_completed_next(it, bad[i], &f, NULL), WEFT_EINVAL);
            weft_as_completed_destroy(it);
        }
        CHECK(check_now() - t0 < 2.0); /* no waiting */
    }
    atomic_store(&gate_open, 1);
    CHECK_OK(weft_future_wait(g, WEFT_FOREVER));
    /* also on finished futures */
    for (int i = 0; i < 4; i++) {
        CHECK_ERR(weft_future_wait(g, bad[i]), WEFT_EINVAL);
        CHECK_ERR(weft_future_result(g, bad[i], NULL, NULL), WEFT_EINVAL);
    }
    weft_future_release(g);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(result_of_cancelled)
{
    weft_executor *ex = make_threads(1);
    REQUIRE(ex);
    atomic_store(&gate_started, 0);
    atomic_store(&gate_open, 0);
    weft_future *g, *f;
    REQUIRE_OK(weft_submit(ex, gate, NULL, 0, &g));
    CHECK(check_wait_atomic(&gate_started, 1, 10));
    REQUIRE_OK(weft_submit(ex, echo, "a", 1, &f));
    CHECK_OK(weft_future_cancel(f));
    const void *d = (const void *)1;
    size_t len = 7;
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, &d, &len), WEFT_ECANCELLED);
    CHECK_RC(weft_future_result(f, 0, NULL, NULL), WEFT_ECANCELLED);
    atomic_store(&gate_open, 1);
    weft_future_release(f);
    weft_future_release(g);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(submit_after_shutdown)
{
    weft_executor *ex = make_threads(2);
    REQUIRE(ex);
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, echo, "a", 1, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    weft_results *r = NULL;
    CHECK_ERR(weft_map(ex, echo, "abc", 1, 3, NULL, &r), WEFT_ECLOSED);
    weft_results_destroy(r);
    r = NULL;
    weft_buf b = {"a", 1};
    CHECK_ERR(weft_map_bufs(ex, echo, &b, 1, NULL, &r), WEFT_ECLOSED);
    weft_results_destroy(r);
    CHECK_OK(weft_executor_destroy(ex));

    /* serial too */
    weft_options o = {0};
    o.backend = WEFT_BACKEND_SERIAL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
    f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, echo, "a", 1, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(unregistered_names)
{
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_ERR(weft_task_lookup("no.such.task", &fn), WEFT_ENOENT);
    CHECK(fn == NULL);
    fn = (weft_task_fn)1;
    int rc = weft_task_lookup("", &fn); /* an empty name: not found or invalid */
    CHECK_MSG(rc == WEFT_ENOENT || rc == WEFT_EINVAL, "lookup(\"\") = %d", rc);
    CHECK(weft_last_error()[0] != '\0');
    char longname[5000];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_ERR(weft_task_lookup(longname, &fn), WEFT_ENOENT);
}

TEST(bad_enum_values)
{
    weft_executor *ex = make_threads(1);
    REQUIRE(ex);
    CHECK_ERR(weft_executor_shutdown(ex, (weft_shutdown_mode)7), WEFT_EINVAL);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "a", 1, &f));
    weft_future *fs[1] = {f};
    CHECK_ERR(weft_wait(fs, 1, (weft_wait_mode)9, 1.0, NULL, NULL), WEFT_EINVAL);
    weft_future_release(f);
    weft_options o = {0};
    o.backend = (weft_backend)77;
    weft_executor *ex2 = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex2), WEFT_EINVAL);
    CHECK(ex2 == NULL);
    CHECK_OK(weft_executor_destroy(ex));
}

/* test_executor.c : executor creation, options, environment, initializer and
 * finalizer, shutdown modes, destroy, leaks. */
#include <sys/wait.h>

#include "check.h"
#include "check_exec.h"

static void clear_env(void)
{
    unsetenv("WEFT_BACKEND");
    unsetenv("WEFT_WORKERS");
    unsetenv("WEFT_TRACE");
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* ---- tasks ---- */

static atomic_int counter;

static int count_task(weft_ctx *ctx, const void *in, size_t len)
{
    double sleep_s = 0;
    if (len == sizeof(double)) memcpy(&sleep_s, in, sizeof sleep_s);
    check_sleep(sleep_s);
    int v = atomic_fetch_add(&counter, 1);
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(count_task);

static int square_task(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != sizeof(int64_t)) return weft_ctx_fail(ctx, WEFT_EINVAL, "len %zu", len);
    int64_t v;
    memcpy(&v, in, sizeof v);
    v = v * v + 1;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(square_task);

/* gate: signals it started, then waits (at most 30 s) until opened */
static atomic_int gate_started, gate_open;

static void gate_reset(void)
{
    atomic_store(&gate_started, 0);
    atomic_store(&gate_open, 0);
}

static int gate_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    atomic_fetch_add(&gate_started, 1);
    double end = check_now() + 30;
    while (!atomic_load(&gate_open) && check_now() < end) check_sleep(0.0005);
    return weft_ctx_set_output(ctx, "gate", 4);
}
WEFT_TASK_REGISTER(gate_task);

static void check_square(weft_executor *ex, int64_t x)
{
    weft_future *f = NULL;
    int rc = weft_submit(ex, square_task, &x, sizeof x, &f);
    CHECK_OK(rc);
    if (rc) return;
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    CHECK_EQ_INT(len, sizeof(int64_t));
    if (len == sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, d, sizeof v);
        CHECK_EQ_INT(v, x * x + 1);
    }
    weft_future_release(f);
}

/* ---- tests ---- */

TEST(init_first)
{
    CHECK_OK(weft_init(NULL, NULL));
}

TEST(create_null_opts)
{
    clear_env();
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(NULL, &ex));
    REQUIRE(ex != NULL);
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
    CHECK_EQ_INT(weft_executor_workers(ex), online_cpus());
    check_square(ex, 12);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(create_zero_opts)
{
    clear_env();
    weft_options o;
    memset(&o, 0, sizeof o);
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
    CHECK_EQ_INT(weft_executor_workers(ex), online_cpus());
    check_square(ex, -5);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(create_serial)
{
    clear_env();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_SERIAL;
    o.workers = 4;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_SERIAL);
    CHECK_EQ_INT(weft_executor_workers(ex), 1);
    check_square(ex, 7);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(create_threads_counts)
{
    clear_env();
    for (int w = 1; w <= 5; w++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
        CHECK_EQ_INT(weft_executor_workers(ex), w);
        check_square(ex, w);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

TEST(unavailable_backends)
{
    clear_env();
    weft_backend bs[2] = {WEFT_BACKEND_PROCESSES, WEFT_BACKEND_MPI};
    int tested = 0;
    for (int i = 0; i < 2; i++) {
        if (weft_backend_available(bs[i])) continue;
        tested++;
        weft_options o = {0};
        o.backend = bs[i];
        o.workers = 2;
        weft_executor *ex = (weft_executor *)1;
        CHECK_ERR(weft_executor_create(&o, &ex), WEFT_ENOTSUP);
        CHECK(ex == NULL);
        const char *m = weft_last_error();
        CHECK_MSG(strstr(m, "not available") != NULL,
                  "last error \"%s\" should say \"not available\"", m);
    }
    if (!tested) SKIP("processes and mpi are both available in this build");
}

TEST(env_backend_unknown)
{
    clear_env();
    setenv("WEFT_BACKEND", "foo", 1);
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(NULL, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    CHECK_MSG(strstr(weft_last_error(), "foo") != NULL, "message \"%s\" should name 'foo'",
              weft_last_error());
    ex = (weft_executor *)1;
    weft_options o = {0};
    o.workers = 2;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    /* an explicit backend does not look at the environment */
    o.backend = WEFT_BACKEND_THREADS;
    ex = NULL;
    CHECK_OK(weft_executor_create(&o, &ex));
    if (ex) {
        CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
        CHECK_OK(weft_executor_destroy(ex));
    }
    clear_env();
}

TEST(env_backend_serial)
{
    clear_env();
    setenv("WEFT_BACKEND", "serial", 1);
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(NULL, &ex));
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_SERIAL);
    CHECK_EQ_INT(weft_executor_workers(ex), 1);
    check_square(ex, 3);
    CHECK_OK(weft_executor_destroy(ex));

    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS; /* explicit option wins */
    o.workers = 2;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
    CHECK_EQ_INT(weft_executor_workers(ex), 2);
    CHECK_OK(weft_executor_destroy(ex));

    setenv("WEFT_BACKEND", "THREADS", 1);
    REQUIRE_OK(weft_executor_create(NULL, &ex));
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
    CHECK_OK(weft_executor_destroy(ex));
    clear_env();
}

TEST(env_workers)
{
    clear_env();
    setenv("WEFT_WORKERS", "3", 1);
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(NULL, &ex));
    CHECK_EQ_INT(weft_executor_workers(ex), 3);
    check_square(ex, 9);
    CHECK_OK(weft_executor_destroy(ex));

    weft_options o = {0};
    o.workers = 2; /* explicit option wins over the environment */
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_workers(ex), 2);
    CHECK_OK(weft_executor_destroy(ex));

    const char *bad[] = {"abc", "-2", "3x"};
    for (int i = 0; i < 3; i++) {
        setenv("WEFT_WORKERS", bad[i], 1);
        ex = (weft_executor *)1;
        CHECK_ERR(weft_executor_create(NULL, &ex), WEFT_EINVAL);
        CHECK(ex == NULL);
    }
    clear_env();
}

TEST(negative_workers)
{
    clear_env();
    weft_options o = {0};
    o.workers = -1;
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    o.backend = WEFT_BACKEND_SERIAL;
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    /* a bad backend value */
    o.backend = (weft_backend)42;
    o.workers = 1;
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
}

TEST(zero_workers_is_online_cpus)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 0);
    REQUIRE(ex);
    CHECK_EQ_INT(weft_executor_workers(ex), online_cpus());
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(create_null_out)
{
    CHECK_ERR(weft_executor_create(NULL, NULL), WEFT_EINVAL);
}

/* ---- initializer and finalizer ---- */

static atomic_int init_calls, fini_calls, fini_bad_input, init_fail_worker;
static atomic_int init_worker_seen[64];

static int counting_init(weft_ctx *ctx, const void *in, size_t len)
{
    atomic_fetch_add(&init_calls, 1);
    int w = weft_ctx_worker(ctx);
    if (w >= 0 && w < 64) atomic_fetch_add(&init_worker_seen[w], 1);
    if (w == atomic_load(&init_fail_worker))
        return weft_ctx_fail(ctx, WEFT_EPERM, "initializer refuses worker %d", w);
    char state[32];
    int n = snprintf(state, sizeof state, "state-%d-%.*s", w, (int)len, (const char *)in);
    return weft_ctx_set_output(ctx, state, (size_t)n + 1);
}
WEFT_TASK_REGISTER(counting_init);

static int counting_fini(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    atomic_fetch_add(&fini_calls, 1);
    if (len < 7 || memcmp(in, "state-", 6) != 0 || ((const char *)in)[len - 1] != '\0')
        atomic_fetch_add(&fini_bad_input, 1);
    return 0;
}
WEFT_TASK_REGISTER(counting_fini);

static void reset_init_counts(void)
{
    atomic_store(&init_calls, 0);
    atomic_store(&fini_calls, 0);
    atomic_store(&fini_bad_input, 0);
    atomic_store(&init_fail_worker, -1);
    for (int i = 0; i < 64; i++) atomic_store(&init_worker_seen[i], 0);
}

TEST(initializer_once_per_worker)
{
    clear_env();
    reset_init_counts();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 3;
    o.initializer = counting_init;
    o.init_input = "xy";
    o.init_len = 2;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    /* create waits for the initializers (it reports their failure) */
    CHECK_EQ_INT(atomic_load(&init_calls), 3);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(atomic_load(&init_worker_seen[i]), 1);
    for (int i = 0; i < 50; i++) check_square(ex, i);
    CHECK_EQ_INT(atomic_load(&init_calls), 3);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&init_calls), 3);
}

TEST(initializer_serial)
{
    clear_env();
    reset_init_counts();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_SERIAL;
    o.initializer = counting_init;
    o.finalizer = counting_fini;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(atomic_load(&init_calls), 1);
    check_square(ex, 2);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&fini_calls), 1);
    CHECK_EQ_INT(atomic_load(&fini_bad_input), 0);
}

TEST(initializer_failure)
{
    clear_env();
    reset_init_counts();
    int threads0 = check_count_threads();
    int fds0 = check_count_fds();
    atomic_store(&init_fail_worker, 1);
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 3;
    o.initializer = counting_init;
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EPERM);
    CHECK(ex == NULL);
    CHECK_EQ_INT(check_wait_threads_at_most(threads0, 5.0), threads0);
    CHECK_EQ_INT(check_count_fds(), fds0);

    /* every worker fails */
    reset_init_counts();
    atomic_store(&init_fail_worker, 0);
    o.workers = 1;
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EPERM);
    CHECK(ex == NULL);
    /* serial */
    reset_init_counts();
    atomic_store(&init_fail_worker, 0);
    o.backend = WEFT_BACKEND_SERIAL;
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EPERM);
    CHECK(ex == NULL);
    CHECK_EQ_INT(check_wait_threads_at_most(threads0, 5.0), threads0);
    reset_init_counts();
}

TEST(finalizer_once_per_worker)
{
    clear_env();
    reset_init_counts();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 4;
    o.initializer = counting_init;
    o.finalizer = counting_fini;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    for (int i = 0; i < 20; i++) check_square(ex, i);
    CHECK_EQ_INT(atomic_load(&fini_calls), 0);
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    /* workers stay alive until destroy */
    CHECK_EQ_INT(atomic_load(&fini_calls), 0);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&fini_calls), 4);
    CHECK_EQ_INT(atomic_load(&fini_bad_input), 0);
    CHECK_EQ_INT(atomic_load(&init_calls), 4);
}

TEST(finalizer_without_initializer)
{
    clear_env();
    reset_init_counts();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    o.finalizer = counting_fini; /* input: empty state */
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&fini_calls), 2);
    reset_init_counts();
}

/* ---- shutdown ---- */

TEST(shutdown_wait_runs_everything)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    atomic_store(&counter, 0);
    enum {
        N = 100
    };
    weft_future *fs[N];
    double sl = 0.001;
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, count_task, &sl, sizeof sl, &fs[i]));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    CHECK_EQ_INT(atomic_load(&counter), N);
    int seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        CHECK(weft_future_done(fs[i]));
        CHECK_EQ_INT(weft_future_state_get(fs[i]), WEFT_FUTURE_DONE);
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(fs[i], 0, &d, &len));
        if (len == sizeof(int)) {
            int v;
            memcpy(&v, d, sizeof v);
            if (v >= 0 && v < N) seen[v]++;
        }
    }
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
    /* closed */
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, count_task, NULL, 0, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit_ex(ex, count_task, NULL, 0, NULL, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    int64_t items[3] = {1, 2, 3};
    weft_results *r = NULL;
    CHECK_ERR(weft_map(ex, square_task, items, sizeof items[0], 3, NULL, &r), WEFT_ECLOSED);
    weft_results_destroy(r);
    /* idempotent */
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
    CHECK_EQ_INT(atomic_load(&counter), N);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
}

struct shutdown_arg {
    weft_executor *ex;
    weft_shutdown_mode mode;
    int rc;
    atomic_int returned;
};

static void *shutdown_thread(void *p)
{
    struct shutdown_arg *a = p;
    a->rc = weft_executor_shutdown(a->ex, a->mode);
    atomic_store(&a->returned, 1);
    return NULL;
}

static bool all_cancelled(weft_future **fs, int n, double timeout)
{
    double end = check_now() + timeout;
    for (;;) {
        int c = 0;
        for (int i = 0; i < n; i++) c += weft_future_cancelled(fs[i]);
        if (c == n) return true;
        if (check_now() > end) return false;
        check_sleep(0.001);
    }
}

TEST(shutdown_cancel)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gate_reset();
    atomic_store(&counter, 0);
    weft_future *gate;
    REQUIRE_OK(weft_submit(ex, gate_task, NULL, 0, &gate));
    REQUIRE(check_wait_atomic(&gate_started, 1, 10));
    enum {
        N = 50
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, count_task, NULL, 0, &fs[i]));

    struct shutdown_arg a = {ex, WEFT_SHUTDOWN_CANCEL, -1, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, shutdown_thread, &a) == 0);
    /* the queued tasks are cancelled while the gate still runs */
    CHECK(all_cancelled(fs, N, 10));
    /* shutdown waits for the running gate */
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&a.returned), 0);
    CHECK(weft_future_running(gate));
    atomic_store(&gate_open, 1);
    pthread_join(th, NULL);
    CHECK_OK(a.rc);
    CHECK(weft_future_done(gate));
    CHECK_EQ_INT(weft_future_state_get(gate), WEFT_FUTURE_DONE);
    CHECK_OK(weft_future_result(gate, 0, NULL, NULL));
    for (int i = 0; i < N; i++) {
        CHECK(weft_future_done(fs[i]));
        CHECK(weft_future_cancelled(fs[i]));
        CHECK_EQ_INT(weft_future_state_get(fs[i]), WEFT_FUTURE_CANCELLED);
        CHECK_RC(weft_future_result(fs[i], WEFT_FOREVER, NULL, NULL), WEFT_ECANCELLED);
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(atomic_load(&counter), 0);
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, count_task, NULL, 0, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    weft_future_release(gate);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&counter), 0);
}

/* The three cases of control 15 on threads: NOWAIT and CANCEL_NOWAIT
 * return while a task runs; FORCE cancels the queue and, since a thread
 * cannot be stopped, waits for the running task. */
static void run_shutdown_nowait(weft_shutdown_mode mode)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gate_reset();
    atomic_store(&counter, 0);
    weft_future *gate;
    REQUIRE_OK(weft_submit(ex, gate_task, NULL, 0, &gate));
    REQUIRE(check_wait_atomic(&gate_started, 1, 10));
    enum {
        N = 20
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, count_task, NULL, 0, &fs[i]));
    /* returns with the gate still closed: it cannot have waited */
    CHECK_OK(weft_executor_shutdown(ex, mode));
    CHECK(weft_future_running(gate));
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, count_task, NULL, 0, &f), WEFT_ECLOSED);
    CHECK(f == NULL);
    if (mode == WEFT_SHUTDOWN_CANCEL_NOWAIT) CHECK(all_cancelled(fs, N, 10));
    atomic_store(&gate_open, 1);
    CHECK_OK(weft_future_result(gate, 30, NULL, NULL));
    for (int i = 0; i < N; i++) {
        int rc = weft_future_result(fs[i], 30, NULL, NULL);
        CHECK_RC(rc, mode == WEFT_SHUTDOWN_NOWAIT ? 0 : WEFT_ECANCELLED);
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(atomic_load(&counter), mode == WEFT_SHUTDOWN_NOWAIT ? N : 0);
    weft_future_release(gate);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(shutdown_nowait_returns_while_work_runs)
{
    run_shutdown_nowait(WEFT_SHUTDOWN_NOWAIT);
}

TEST(shutdown_cancel_nowait_returns_and_cancels_the_queue)
{
    run_shutdown_nowait(WEFT_SHUTDOWN_CANCEL_NOWAIT);
}

TEST(shutdown_force_on_threads_waits_for_running_tasks)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gate_reset();
    atomic_store(&counter, 0);
    weft_future *gate;
    REQUIRE_OK(weft_submit(ex, gate_task, NULL, 0, &gate));
    REQUIRE(check_wait_atomic(&gate_started, 1, 10));
    enum {
        N = 20
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, count_task, NULL, 0, &fs[i]));
    struct shutdown_arg a = {ex, WEFT_SHUTDOWN_FORCE, -1, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, shutdown_thread, &a) == 0);
    CHECK(all_cancelled(fs, N, 10));
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&a.returned), 0); /* a running thread is waited for */
    atomic_store(&gate_open, 1);
    pthread_join(th, NULL);
    CHECK_OK(a.rc);
    CHECK_EQ_INT(weft_future_state_get(gate), WEFT_FUTURE_DONE);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_EQ_INT(atomic_load(&counter), 0);
    weft_future_release(gate);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(shutdown_modes_on_serial)
{
    clear_env();
    weft_shutdown_mode modes[] = {WEFT_SHUTDOWN_NOWAIT, WEFT_SHUTDOWN_CANCEL_NOWAIT,
                                  WEFT_SHUTDOWN_FORCE};
    for (int m = 0; m < 3; m++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
        REQUIRE(ex);
        check_square(ex, 3);
        CHECK_OK(weft_executor_shutdown(ex, modes[m]));
        weft_future *f = (weft_future *)1;
        CHECK_ERR(weft_submit(ex, count_task, NULL, 0, &f), WEFT_ECLOSED);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

TEST(shutdown_unknown_modes)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    int bad[] = {4, 6, 7, 8, -1, 99};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_ERR(weft_executor_shutdown(ex, (weft_shutdown_mode)bad[i]), WEFT_EINVAL);
    check_square(ex, 2); /* still open */
    CHECK_OK(weft_executor_destroy(ex));
}

static int shutdown_self_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    weft_executor *ex = weft_ctx_executor(ctx);
    int rc = weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT);
    if (rc != WEFT_EDEADLK) return weft_ctx_fail(ctx, WEFT_ETASK, "WAIT from a task gave %d", rc);
    return weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL_NOWAIT);
}
WEFT_TASK_REGISTER(shutdown_self_task);

TEST(shutdown_nowait_from_inside_a_task)
{
    clear_env();
    const weft_backend *bs = check_local_backends;
    for (int b = 0; b < 2; b++) {
        weft_executor *ex = make_ex(bs[b], 2);
        REQUIRE(ex);
        weft_future *f;
        REQUIRE_OK(weft_submit(ex, shutdown_self_task, NULL, 0, &f));
        CHECK_OK(weft_future_result(f, 30, NULL, NULL));
        weft_future_release(f);
        weft_future *g = (weft_future *)1;
        CHECK_ERR(weft_submit(ex, count_task, NULL, 0, &g), WEFT_ECLOSED);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

TEST(stack_size_too_large_is_einval)
{
    clear_env();
    size_t sizes[] = {SIZE_MAX, (size_t)1 << 45, ((size_t)1 << 30) + 1};
    for (size_t i = 0; i < 3; i++) {
        weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = 2, .stack_size = sizes[i]};
        weft_executor *ex = (weft_executor *)1;
        CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
        CHECK(ex == NULL);
        CHECK_MSG(strstr(weft_last_error(), "stack_size"), "message: %s", weft_last_error());
    }
    weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = 1, .stack_size = 1u << 20};
    weft_executor *ex;
    CHECK_OK(weft_executor_create(&o, &ex));
    if (ex) check_square(ex, 5);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(shutdown_wait_then_cancel)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gate_reset();
    atomic_store(&counter, 0);
    weft_future *gate;
    REQUIRE_OK(weft_submit(ex, gate_task, NULL, 0, &gate));
    REQUIRE(check_wait_atomic(&gate_started, 1, 10));
    enum {
        N = 20
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, count_task, NULL, 0, &fs[i]));
    struct shutdown_arg w = {ex, WEFT_SHUTDOWN_WAIT, -1, 0};
    struct shutdown_arg c = {ex, WEFT_SHUTDOWN_CANCEL, -1, 0};
    pthread_t tw, tc;
    REQUIRE(pthread_create(&tw, NULL, shutdown_thread, &w) == 0);
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&w.returned), 0);
    REQUIRE(pthread_create(&tc, NULL, shutdown_thread, &c) == 0);
    CHECK(all_cancelled(fs, N, 10));
    atomic_store(&gate_open, 1);
    pthread_join(tw, NULL);
    pthread_join(tc, NULL);
    CHECK_OK(w.rc);
    CHECK_OK(c.rc);
    CHECK_EQ_INT(atomic_load(&counter), 0);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    weft_future_release(gate);
    CHECK_OK(weft_executor_destroy(ex));
}

/* destroy or shutdown from inside a task */
static int destroy_from_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    weft_executor *ex = weft_ctx_executor(ctx);
    int rcs[2];
    rcs[0] = weft_executor_destroy(ex);
    rcs[1] = weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT);
    return weft_ctx_set_output(ctx, rcs, sizeof rcs);
}
WEFT_TASK_REGISTER(destroy_from_task);

static void run_destroy_from_task(weft_backend b)
{
    weft_executor *ex = make_ex(b, 2);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, destroy_from_task, NULL, 0, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    REQUIRE(len == 2 * sizeof(int));
    int rcs[2];
    memcpy(rcs, d, sizeof rcs);
    CHECK_EQ_INT(rcs[0], WEFT_EDEADLK);
    CHECK_EQ_INT(rcs[1], WEFT_EDEADLK);
    weft_future_release(f);
    /* the executor still works */
    check_square(ex, 11);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(destroy_from_task_threads)
{
    run_destroy_from_task(WEFT_BACKEND_THREADS);
}
TEST(destroy_from_task_serial)
{
    run_destroy_from_task(WEFT_BACKEND_SERIAL);
}

/* threads still submitting during shutdown */
struct submitter {
    weft_executor *ex;
    weft_future **fs;
    int cap, n, closed, other_err;
    atomic_int *go;
};

static void *submit_loop(void *p)
{
    struct submitter *s = p;
    while (!atomic_load(s->go)) check_sleep(0.0001);
    while (s->n < s->cap) {
        int64_t x = s->n;
        weft_future *f = NULL;
        int rc = weft_submit(s->ex, square_task, &x, sizeof x, &f);
        if (rc == WEFT_ECLOSED) {
            s->closed = 1;
            if (f != NULL) s->other_err++;
            break;
        }
        if (rc != 0) {
            s->other_err++;
            break;
        }
        s->fs[s->n++] = f;
        if ((s->n & 63) == 0) check_sleep(0.0002);
    }
    return NULL;
}

static void run_submitters_during_shutdown(weft_shutdown_mode mode)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    enum {
        T = 4,
        CAP = 200000
    };
    struct submitter s[T];
    pthread_t th[T];
    atomic_int go = 0;
    for (int i = 0; i < T; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].ex = ex;
        s[i].cap = CAP;
        s[i].fs = calloc(CAP, sizeof(weft_future *));
        s[i].go = &go;
        REQUIRE(s[i].fs);
        REQUIRE(pthread_create(&th[i], NULL, submit_loop, &s[i]) == 0);
    }
    atomic_store(&go, 1);
    check_sleep(0.05);
    CHECK_OK(weft_executor_shutdown(ex, mode));
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    long total = 0, cancelled = 0;
    for (int i = 0; i < T; i++) {
        CHECK_EQ_INT(s[i].other_err, 0);
        CHECK_MSG(s[i].closed, "submitter %d never saw WEFT_ECLOSED (%d submitted)", i, s[i].n);
        total += s[i].n;
        for (int j = 0; j < s[i].n; j++) {
            weft_future *f = s[i].fs[j];
            /* shutdown returned only after everything submitted before it finished */
            CHECK_MSG(weft_future_done(f), "submitter %d future %d not finished after shutdown", i,
                      j);
            const void *d;
            size_t len;
            int rc = weft_future_result(f, 5.0, &d, &len);
            if (rc == WEFT_ECANCELLED && mode == WEFT_SHUTDOWN_CANCEL) {
                cancelled++;
            } else {
                CHECK_OK(rc);
                if (rc == 0 && len == sizeof(int64_t)) {
                    int64_t v;
                    memcpy(&v, d, sizeof v);
                    CHECK_EQ_INT(v, (int64_t)j * j + 1);
                }
            }
            weft_future_release(f);
        }
        free(s[i].fs);
    }
    CHECK(total > 0);
    printf("    %ld submitted, %ld cancelled\n", total, cancelled);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(submitters_during_shutdown_wait)
{
    run_submitters_during_shutdown(WEFT_SHUTDOWN_WAIT);
}
TEST(submitters_during_shutdown_cancel)
{
    run_submitters_during_shutdown(WEFT_SHUTDOWN_CANCEL);
}

TEST(destroy_runs_pending_work)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    atomic_store(&counter, 0);
    double sl = 0.0005;
    weft_future *keep = NULL;
    for (int i = 0; i < 200; i++) {
        weft_future *f;
        REQUIRE_OK(weft_submit(ex, count_task, &sl, sizeof sl, &f));
        if (i == 199)
            keep = f;
        else
            weft_future_release(f);
    }
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&counter), 200);
    /* futures outlive the executor */
    CHECK(weft_future_done(keep));
    size_t len = 0;
    CHECK_OK(weft_future_result(keep, 0, NULL, &len));
    CHECK_EQ_INT(len, sizeof(int));
    weft_future_release(keep);
}

TEST(destroy_null_and_shutdown_null)
{
    CHECK_OK(weft_executor_destroy(NULL));
    CHECK_ERR(weft_executor_shutdown(NULL, WEFT_SHUTDOWN_WAIT), WEFT_EINVAL);
}

TEST(no_thread_or_fd_leak)
{
    clear_env();
    int threads0 = check_count_threads();
    int fds0 = check_count_fds();
    for (int round = 0; round < 10; round++) {
        weft_executor *ex =
            make_ex(round % 3 == 2 ? WEFT_BACKEND_SERIAL : WEFT_BACKEND_THREADS, 1 + round % 4);
        REQUIRE(ex);
        if (round == 0 && weft_executor_backend(ex) == WEFT_BACKEND_THREADS)
            CHECK(check_count_threads() >= threads0 + 1);
        for (int i = 0; i < 30; i++) check_square(ex, i);
        if (round % 2)
            CHECK_OK(weft_executor_shutdown(ex, round % 4 == 1 ? WEFT_SHUTDOWN_WAIT
                                                               : WEFT_SHUTDOWN_CANCEL));
        CHECK_OK(weft_executor_destroy(ex));
        CHECK_EQ_INT(check_wait_threads_at_most(threads0, 5.0), threads0);
        CHECK_EQ_INT(check_count_fds(), fds0);
    }
}

TEST(many_executors_at_once)
{
    clear_env();
    int threads0 = check_count_threads();
    enum {
        E = 6
    };
    weft_executor *ex[E];
    for (int i = 0; i < E; i++) {
        ex[i] = make_ex(WEFT_BACKEND_THREADS, 2);
        REQUIRE(ex[i]);
    }
    int nt = check_count_threads();
    CHECK_MSG(nt >= threads0 + 2 * E && nt <= threads0 + 2 * E + E,
              "%d threads for %d executors of 2 workers (baseline %d)", nt, E, threads0);
    for (int i = 0; i < E; i++) check_square(ex[i], i + 100);
    for (int i = E - 1; i >= 0; i--) CHECK_OK(weft_executor_destroy(ex[i]));
    CHECK_EQ_INT(check_wait_threads_at_most(threads0, 5.0), threads0);
}

/* ---- exit behaviour (issue 11 defect 12) ---- */

typedef struct marker_in {
    double sleep_s;
    int i;
    char dir[200];
} marker_in;

/* writes dir/started<i>, sleeps, then writes dir/m<i> */
static int marker_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    if (len != sizeof(marker_in)) return WEFT_EINVAL;
    const marker_in *m = in;
    char path[260];
    snprintf(path, sizeof path, "%s/started%d", m->dir, m->i);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    check_sleep(m->sleep_s);
    snprintf(path, sizeof path, "%s/m%d", m->dir, m->i);
    f = fopen(path, "w");
    if (f) fclose(f);
    return 0;
}
WEFT_TASK_REGISTER(marker_task);

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[400];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* In a fork child (single-threaded: no executor is alive in the test
 * process): an executor of `workers` workers gets `n` marker tasks of
 * `sleep_s` seconds, their futures are released and the child leaves with
 * exit(0), as returning from main() does. With `wait_first`, it waits until
 * the first task started. The parent gets the child's wait status and how
 * long the child took. */
static int run_exit_child(weft_backend b, int workers, const weft_options *extra, int n,
                          double sleep_s, bool wait_first, const char *dir, double *secs)
{
    double t0 = check_now();
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
        alarm(0);
        weft_options o = extra ? *extra : (weft_options){0};
        o.backend = b;
        o.workers = workers;
        weft_executor *ex;
        if (weft_executor_create(&o, &ex)) _exit(90);
        for (int i = 0; i < n; i++) {
            marker_in m = {sleep_s, i, {0}};
            snprintf(m.dir, sizeof m.dir, "%s", dir);
            weft_future *f;
            if (weft_submit(ex, marker_task, &m, sizeof m, &f)) _exit(91);
            weft_future_release(f);
        }
        if (wait_first) {
            double end = check_now() + 30;
            while (count_files(dir, "started") < 1 && check_now() < end) check_sleep(0.001);
        }
        exit(0); /* leaves as main() returning does: atexit handlers run */
    }
    int st = 0;
    waitpid(p, &st, 0);
    *secs = check_now() - t0;
    return st;
}

static void make_tmp(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/weft-exit-XXXXXX");
    if (!mkdtemp(dir)) dir[0] = 0;
}

TEST(exit_waits_for_queued_work_threads)
{
    clear_env();
    char dir[64];
    make_tmp(dir, sizeof dir);
    REQUIRE(dir[0]);
    double secs;
    int st = run_exit_child(WEFT_BACKEND_THREADS, 2, NULL, 8, 0.05, false, dir, &secs);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    CHECK_EQ_INT(count_files(dir, "m"), 8); /* every task ran to its end */
    remove_dir(dir);
}

TEST(exit_cancel_mode_runs_only_what_started)
{
    clear_env();
    char dir[64];
    make_tmp(dir, sizeof dir);
    REQUIRE(dir[0]);
    weft_options o = {.exit_mode = WEFT_EXIT_CANCEL};
    double secs;
    int st = run_exit_child(WEFT_BACKEND_THREADS, 1, &o, 6, 0.2, true, dir, &secs);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    CHECK_EQ_INT(count_files(dir, "m"), 1); /* the running one finished, the rest cancelled */
    CHECK_EQ_INT(count_files(dir, "started"), 1);
    remove_dir(dir);
}

TEST(exit_opt_out_and_exit_timeout_leave_promptly)
{
    clear_env();
    /* 8 tasks of 3 s on 2 workers: joining would take 12 s */
    weft_options opts[2] = {{.exit_mode = WEFT_EXIT_NONE}, {.exit_timeout = 0.2}};
    for (int k = 0; k < 2; k++) {
        char dir[64];
        make_tmp(dir, sizeof dir);
        REQUIRE(dir[0]);
        double secs;
        int st = run_exit_child(WEFT_BACKEND_THREADS, 2, &opts[k], 8, 3.0, false, dir, &secs);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
        CHECK_MSG(secs < 6.0, "%s: the child took %.2f s to exit",
                  k ? "exit_timeout" : "WEFT_EXIT_NONE", secs);
        CHECK(count_files(dir, "m") < 8);
        remove_dir(dir);
    }
}

static int exit_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    exit(7);
}
WEFT_TASK_REGISTER(exit_task);

TEST(exit_from_inside_a_task_does_not_hang)
{
    clear_env();
    const weft_backend *bs = check_local_backends;
    for (int b = 0; b < 2; b++) {
        fflush(stdout);
        pid_t p = fork();
        REQUIRE(p >= 0);
        if (p == 0) {
            alarm(0);
            weft_executor *ex = make_ex(bs[b], 1);
            if (!ex) _exit(90);
            weft_future *f;
            double s = 0.01;
            /* queued behind the task that exits: never run, never waited for */
            if (bs[b] == WEFT_BACKEND_THREADS) {
                weft_submit(ex, exit_task, NULL, 0, &f);
                for (int i = 0; i < 4; i++) weft_submit(ex, count_task, &s, sizeof s, &f);
                for (;;) pause();
            }
            weft_submit(ex, exit_task, NULL, 0, &f); /* serial: runs inline */
            _exit(91);
        }
        int st = 0;
        double end = check_now() + 30;
        pid_t r;
        while ((r = waitpid(p, &st, WNOHANG)) == 0 && check_now() < end) check_sleep(0.005);
        if (r == 0) {
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
        }
        CHECK_MSG(r == p && WIFEXITED(st) && WEXITSTATUS(st) == 7, "%s: child status 0x%x%s",
                  weft_backend_name(bs[b]), st, r == 0 ? " (hung: killed)" : "");
    }
}

TEST(exit_in_a_fork_child_does_not_wait)
{
    clear_env();
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gate_reset();
    weft_future *gate;
    REQUIRE_OK(weft_submit(ex, gate_task, NULL, 0, &gate));
    REQUIRE(check_wait_atomic(&gate_started, 1, 10));
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) exit(0); /* the executor's threads do not exist here */
    int st = 0;
    double end = check_now() + 20;
    pid_t r;
    while ((r = waitpid(p, &st, WNOHANG)) == 0 && check_now() < end) check_sleep(0.005);
    if (r == 0) {
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
    }
    CHECK_MSG(r == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    atomic_store(&gate_open, 1);
    weft_future_release(gate);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(exit_mode_and_timeout_are_checked)
{
    clear_env();
    weft_options o = {.exit_mode = (weft_exit_mode)3};
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    o = (weft_options){.exit_timeout = -1};
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    o = (weft_options){.exit_timeout = NAN};
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
}

/* A program built against an older weft.h passes a shorter weft_options
 * (its `size` says how long): the library reads only those bytes, exactly
 * (the struct is allocated at that size, so ASan sees any read past it),
 * and the fields it lacks take their defaults. */
TEST(options_of_an_older_size_work)
{
    size_t old = offsetof(weft_options, exit_mode); /* a header without exit_mode and later */
    weft_options full = {.size = old, .backend = WEFT_BACKEND_THREADS, .workers = 3};
    full.exit_mode = WEFT_EXIT_NONE; /* past `old`: must not be read */
    void *o = malloc(old);
    REQUIRE(o);
    memcpy(o, &full, old);
    weft_executor *ex = NULL;
    CHECK_OK(weft_executor_create(o, &ex));
    free(o); /* the library keeps no pointer to the options */
    REQUIRE(ex);
    CHECK_EQ_INT(weft_executor_workers(ex), 3);
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_THREADS);
    CHECK_OK(weft_executor_destroy(ex));

    /* size 0 is weft 0.2's layout; WEFT_OPTIONS_INIT records this header's */
    weft_options z = WEFT_OPTIONS_INIT;
    CHECK(z.size == sizeof(weft_options));
    z.size = 0;
    z.backend = WEFT_BACKEND_SERIAL;
    CHECK_OK(weft_executor_create(&z, &ex));
    CHECK_OK(weft_executor_destroy(ex));
}

/* A newer header's struct: unknown fields left zero are fine, a set one is
 * refused rather than ignored; a size too small to hold `backend` is an error. */
TEST(options_of_a_newer_size_or_too_small)
{
    size_t big = sizeof(weft_options) + 32;
    unsigned char *buf = calloc(1, big);
    REQUIRE(buf);
    weft_options *o = (weft_options *)buf;
    o->size = big;
    o->backend = WEFT_BACKEND_SERIAL;
    weft_executor *ex = NULL;
    CHECK_OK(weft_executor_create(o, &ex));
    CHECK_OK(weft_executor_destroy(ex));
    buf[sizeof(weft_options) + 8] = 1;
    CHECK_EQ_INT(weft_executor_create(o, &ex), WEFT_ENOTSUP);
    CHECK(ex == NULL);
    CHECK(strstr(weft_last_error(), "does not know") != NULL);
    free(buf);
    weft_options t = {.size = 2};
    CHECK_EQ_INT(weft_executor_create(&t, &ex), WEFT_EINVAL);
}

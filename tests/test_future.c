/* test_future.c : submit, results, errors, cancel, state, callbacks,
 * references, weft_wait, as_completed, retries. */
#include "check.h"
#include "check_exec.h"

#include <malloc.h>

/* weft_wait's count of finished futures, or its error code */
static long wait_count(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout,
                       bool *done)
{
    size_t nd = 0;
    int rc = weft_wait(fs, n, mode, timeout, done, &nd);
    return rc ? rc : (long)nd;
}

/* ---- tasks ---- */

static int echo(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(echo);

/* outputs the input pointer itself */
static int input_ptr(weft_ctx *ctx, const void *in, size_t len)
{
    (void)len;
    uintptr_t p = (uintptr_t)in;
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(input_ptr);

static atomic_int ran;

static int count_run(weft_ctx *ctx, const void *in, size_t len)
{
    atomic_fetch_add(&ran, 1);
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(count_run);

/* gates: gate_task waits on flag gate_open[k] where k is its int input */
static atomic_int gate_started[4], gate_open[4];

static void gates_reset(void)
{
    for (int i = 0; i < 4; i++) {
        atomic_store(&gate_started[i], 0);
        atomic_store(&gate_open[i], 0);
    }
}

static int gate_task(weft_ctx *ctx, const void *in, size_t len)
{
    int k = 0;
    if (len == sizeof k) memcpy(&k, in, sizeof k);
    atomic_fetch_add(&gate_started[k], 1);
    double end = check_now() + 30;
    while (!atomic_load(&gate_open[k]) && check_now() < end) check_sleep(0.0005);
    return weft_ctx_set_output(ctx, "opened", 6);
}
WEFT_TASK_REGISTER(gate_task);

static weft_future *start_gate(weft_executor *ex, int k)
{
    weft_future *g = NULL;
    int rc = weft_submit(ex, gate_task, &k, sizeof k, &g);
    CHECK_OK(rc);
    if (rc) return NULL;
    CHECK(check_wait_atomic(&gate_started[k], 1, 10));
    return g;
}

static int fail_task(weft_ctx *ctx, const void *in, size_t len)
{
    int mode = len == sizeof(int) ? *(const int *)in : 0;
    switch (mode) {
    case 0:
        return weft_ctx_fail(ctx, WEFT_EPERM, "refused %s %d", "item", 7);
    case 1:
        return WEFT_EINVAL; /* no message */
    case 2:
        return 3; /* positive: WEFT_ETASK */
    default:
        return weft_ctx_fail(ctx, -7777, "custom");
    }
}
WEFT_TASK_REGISTER(fail_task);

static atomic_int attempts_seen;

/* fails on attempts 0 and 1, succeeds on attempt 2 */
static int flaky(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    atomic_fetch_add(&attempts_seen, 1);
    int a = weft_ctx_attempt(ctx);
    if (a < 2) return weft_ctx_fail(ctx, WEFT_EAGAIN, "attempt %d fails", a);
    return weft_ctx_set_output(ctx, &a, sizeof a);
}
WEFT_TASK_REGISTER(flaky);

static int sleeper(weft_ctx *ctx, const void *in, size_t len)
{
    double s = 0;
    if (len == sizeof s) memcpy(&s, in, sizeof s);
    check_sleep(s);
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(sleeper);

/* ---- submit ---- */

TEST(submit_copies_input)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    char buf[64];
    memset(buf, 'A', sizeof buf);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, buf, sizeof buf, &f));
    memset(buf, 'B', sizeof buf); /* the task has not run yet */
    CHECK(!weft_future_done(f));
    atomic_store(&gate_open[0], 1);
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    CHECK_EQ_INT(len, sizeof buf);
    char want[64];
    memset(want, 'A', sizeof want);
    CHECK(len == 64 && memcmp(d, want, 64) == 0);
    weft_future_release(f);
    weft_future_release(g);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(submit_borrow)
{
    const weft_backend *bs = check_local_backends;
    for (int k = 0; k < 2; k++) {
        weft_executor *ex = make_ex(bs[k], 2);
        REQUIRE(ex);
        static char big[100000];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i % 251);
        weft_submit_options so = {0};
        so.flags = WEFT_SUBMIT_BORROW;
        weft_future *f, *p;
        REQUIRE_OK(weft_submit_ex(ex, echo, big, sizeof big, &so, &f));
        REQUIRE_OK(weft_submit_ex(ex, input_ptr, big, sizeof big, &so, &p));
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
        CHECK(len == sizeof big && memcmp(d, big, len) == 0);
        CHECK_OK(weft_future_result(p, WEFT_FOREVER, &d, &len));
        REQUIRE(len == sizeof(uintptr_t));
        uintptr_t ptr;
        memcpy(&ptr, d, sizeof ptr);
        CHECK_MSG(ptr == (uintptr_t)big, "BORROW on %s: the task saw a copy",
                  weft_backend_name(bs[k]));
        weft_future_release(f);
        weft_future_release(p);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

TEST(submit_empty_input)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, NULL, 0, &f));
    size_t len = 99;
    const void *d = NULL;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    CHECK_EQ_INT(len, 0);
    weft_future_release(f);
    char c = 'x';
    REQUIRE_OK(weft_submit(ex, echo, &c, 0, &f)); /* non-NULL, len 0 */
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, &len));
    CHECK_EQ_INT(len, 0);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- results, timeouts, errors ---- */

TEST(result_timeout_then_success)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    gates_reset();
    weft_future *g = start_gate(ex, 1);
    REQUIRE(g);
    double t0 = check_now();
    CHECK_RC(weft_future_result(g, 0, NULL, NULL), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 < 0.5);
    t0 = check_now();
    CHECK_RC(weft_future_result(g, 0.1, NULL, NULL), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK_MSG(dt >= 0.09 && dt < 3.0, "result(0.1) took %.3f s", dt);
    t0 = check_now();
    CHECK_RC(weft_future_wait(g, 0.05), WEFT_ETIMEDOUT);
    dt = check_now() - t0;
    CHECK_MSG(dt >= 0.045 && dt < 3.0, "wait(0.05) took %.3f s", dt);
    CHECK_RC(weft_future_wait(g, 0), WEFT_ETIMEDOUT);
    CHECK(!weft_future_done(g));
    atomic_store(&gate_open[1], 1);
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(g, 10.0, &d, &len));
    CHECK(len == 6 && memcmp(d, "opened", 6) == 0);
    CHECK_OK(weft_future_wait(g, 0));
    CHECK_OK(weft_future_wait(g, WEFT_FOREVER));
    /* the same output again */
    const void *d2;
    CHECK_OK(weft_future_result(g, 0, &d2, &len));
    CHECK(d2 == d);
    weft_future_release(g);
    CHECK_OK(weft_executor_destroy(ex));
}

static void run_errors(weft_backend b)
{
    weft_executor *ex = make_ex(b, 2);
    REQUIRE(ex);
    static const struct {
        int mode, code;
        const char *msg;
    } cases[] = {{0, WEFT_EPERM, "refused item 7"},
                 {1, WEFT_EINVAL, ""},
                 {2, WEFT_ETASK, ""},
                 {3, -7777, "custom"}};
    for (int i = 0; i < 4; i++) {
        weft_future *f;
        REQUIRE_OK(weft_submit(ex, fail_task, &cases[i].mode, sizeof(int), &f));
        const void *d = (const void *)1;
        size_t len = 5;
        CHECK_RC(weft_future_result(f, WEFT_FOREVER, &d, &len), cases[i].code);
        CHECK_OK(weft_future_wait(f, 0));
        CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_FAILED);
        CHECK(weft_future_done(f));
        CHECK(!weft_future_cancelled(f));
        CHECK(!weft_future_running(f));
        CHECK_EQ_STR(weft_future_error(f), cases[i].msg);
        /* cancel of a finished future */
        CHECK_RC(weft_future_cancel(f), WEFT_EBUSY);
        weft_future_release(f);
    }
    /* success: error is NULL */
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "x", 1, &f));
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    CHECK(weft_future_error(f) == NULL);
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(errors_threads)
{
    run_errors(WEFT_BACKEND_THREADS);
}
TEST(errors_serial)
{
    run_errors(WEFT_BACKEND_SERIAL);
}

/* ---- cancel and state ---- */

TEST(cancel_before_start)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    atomic_store(&ran, 0);
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    CHECK_EQ_INT(weft_future_state_get(g), WEFT_FUTURE_RUNNING);
    CHECK(weft_future_running(g));
    CHECK(!weft_future_done(g));
    CHECK(!weft_future_cancelled(g));

    weft_future *f1, *f2;
    REQUIRE_OK(weft_submit(ex, count_run, "a", 1, &f1));
    REQUIRE_OK(weft_submit(ex, count_run, "b", 1, &f2));
    CHECK_EQ_INT(weft_future_state_get(f1), WEFT_FUTURE_PENDING);
    CHECK(!weft_future_running(f1));
    CHECK(!weft_future_done(f1));
    CHECK(!weft_future_cancelled(f1));

    CHECK_OK(weft_future_cancel(f1));
    CHECK_OK(weft_future_cancel(f1)); /* already cancelled: still 0 */
    CHECK(weft_future_cancelled(f1));
    CHECK(weft_future_done(f1));
    CHECK(!weft_future_running(f1));
    CHECK_EQ_INT(weft_future_state_get(f1), WEFT_FUTURE_CANCELLED);
    CHECK_RC(weft_future_result(f1, WEFT_FOREVER, NULL, NULL), WEFT_ECANCELLED);
    CHECK_RC(weft_future_result(f1, 0, NULL, NULL), WEFT_ECANCELLED);
    CHECK_OK(weft_future_wait(f1, 0));

    /* cancel of the running gate */
    CHECK_RC(weft_future_cancel(g), WEFT_EBUSY);
    CHECK(!weft_future_cancelled(g));

    atomic_store(&gate_open[0], 1);
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f2, WEFT_FOREVER, &d, &len));
    CHECK(len == 1 && memcmp(d, "b", 1) == 0);
    CHECK_OK(weft_future_result(g, WEFT_FOREVER, NULL, NULL));
    CHECK_EQ_INT(weft_future_state_get(g), WEFT_FUTURE_DONE);
    CHECK_RC(weft_future_cancel(g), WEFT_EBUSY);
    CHECK_RC(weft_future_cancel(f2), WEFT_EBUSY);
    CHECK_OK(weft_executor_destroy(ex));
    /* f1 never ran */
    CHECK_EQ_INT(atomic_load(&ran), 1);
    CHECK_EQ_INT(weft_future_state_get(f1), WEFT_FUTURE_CANCELLED);
    weft_future_release(f1);
    weft_future_release(f2);
    weft_future_release(g);
}

TEST(cancel_serial_is_busy)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "q", 1, &f));
    CHECK(weft_future_done(f));
    CHECK_RC(weft_future_cancel(f), WEFT_EBUSY);
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- callbacks ---- */

struct cb_log {
    pthread_mutex_t lock;
    int order[16];
    int n;
    weft_future *expect;
    int wrong_future;
    pthread_t thread[16];
};

struct cb_arg {
    struct cb_log *log;
    int id;
};

static void log_cb(weft_future *f, void *arg)
{
    struct cb_arg *a = arg;
    pthread_mutex_lock(&a->log->lock);
    if (f != a->log->expect) a->log->wrong_future++;
    /* the future is finished when its callbacks run */
    if (!weft_future_done(f)) a->log->wrong_future += 100;
    if (a->log->n < 16) {
        a->log->thread[a->log->n] = pthread_self();
        a->log->order[a->log->n++] = a->id;
    }
    pthread_mutex_unlock(&a->log->lock);
}

static int log_count(struct cb_log *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

static bool wait_log(struct cb_log *l, int n, double timeout)
{
    double end = check_now() + timeout;
    while (log_count(l) < n) {
        if (check_now() > end) return false;
        check_sleep(0.0005);
    }
    return true;
}

TEST(on_done_order_and_once)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "z", 1, &f));
    struct cb_log log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.lock, NULL);
    log.expect = f;
    struct cb_arg args[6];
    for (int i = 0; i < 6; i++) args[i] = (struct cb_arg){&log, i};
    for (int i = 0; i < 3; i++) CHECK_OK(weft_future_on_done(f, log_cb, &args[i]));
    CHECK_EQ_INT(log_count(&log), 0);
    atomic_store(&gate_open[0], 1);
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    CHECK(wait_log(&log, 3, 10));
    /* added after completion: at once in the caller's thread, or, while the
     * worker has not yet left the third callback (its log entry seen is not
     * its return), just after it on the worker: in order either way */
    for (int i = 3; i < 6; i++) {
        CHECK_OK(weft_future_on_done(f, log_cb, &args[i]));
        CHECK(wait_log(&log, i + 1, 10));
    }
    check_sleep(0.02);
    CHECK_EQ_INT(log_count(&log), 6);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(log.order[i], i);
    CHECK_EQ_INT(log.wrong_future, 0);
    /* a future finished with no callback attached: at once, on the caller */
    weft_future *h;
    REQUIRE_OK(weft_submit(ex, echo, "y", 1, &h));
    CHECK_OK(weft_future_result(h, WEFT_FOREVER, NULL, NULL));
    struct cb_log hl;
    memset(&hl, 0, sizeof hl);
    pthread_mutex_init(&hl.lock, NULL);
    hl.expect = h;
    struct cb_arg ha[3];
    for (int i = 0; i < 3; i++) {
        ha[i] = (struct cb_arg){&hl, i};
        CHECK_OK(weft_future_on_done(h, log_cb, &ha[i]));
        CHECK_EQ_INT(log_count(&hl), i + 1);
        CHECK(pthread_equal(hl.thread[i], pthread_self()));
        CHECK_EQ_INT(hl.order[i], i);
    }
    CHECK_EQ_INT(hl.wrong_future, 0);
    weft_future_release(h);
    pthread_mutex_destroy(&hl.lock);
    weft_future_release(f);
    weft_future_release(g);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(log_count(&log), 6);
    pthread_mutex_destroy(&log.lock);
}

TEST(on_done_cancelled_and_failed)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    weft_future *f, *bad;
    REQUIRE_OK(weft_submit(ex, echo, "z", 1, &f));
    int mode = 0;
    REQUIRE_OK(weft_submit(ex, fail_task, &mode, sizeof mode, &bad));
    struct cb_log log, log2;
    memset(&log, 0, sizeof log);
    memset(&log2, 0, sizeof log2);
    pthread_mutex_init(&log.lock, NULL);
    pthread_mutex_init(&log2.lock, NULL);
    log.expect = f;
    log2.expect = bad;
    struct cb_arg a0 = {&log, 0}, a1 = {&log, 1}, b0 = {&log2, 0};
    CHECK_OK(weft_future_on_done(f, log_cb, &a0));
    CHECK_OK(weft_future_on_done(f, log_cb, &a1));
    CHECK_OK(weft_future_on_done(bad, log_cb, &b0));
    CHECK_OK(weft_future_cancel(f));
    CHECK(wait_log(&log, 2, 10));
    CHECK_EQ_INT(log.order[0], 0);
    CHECK_EQ_INT(log.order[1], 1);
    atomic_store(&gate_open[0], 1);
    CHECK_RC(weft_future_result(bad, WEFT_FOREVER, NULL, NULL), WEFT_EPERM);
    CHECK(wait_log(&log2, 1, 10));
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(log_count(&log), 2);
    CHECK_EQ_INT(log_count(&log2), 1);
    CHECK_EQ_INT(log.wrong_future + log2.wrong_future, 0);
    weft_future_release(f);
    weft_future_release(bad);
    weft_future_release(g);
    pthread_mutex_destroy(&log.lock);
    pthread_mutex_destroy(&log2.lock);
}

/* a callback may call future functions on f (but not release it) */
static atomic_int cb_result_rc = 1;
static void result_in_cb(weft_future *f, void *arg)
{
    (void)arg;
    size_t len = 0;
    int rc = weft_future_result(f, 0, NULL, &len);
    atomic_store(&cb_result_rc, rc == 0 && len == 3 ? 0 : (rc ? rc : -1));
}

TEST(on_done_calls_result)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    atomic_store(&cb_result_rc, 1);
    double s = 0.02;
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "abc", 3, &f));
    CHECK_OK(weft_future_on_done(f, result_in_cb, NULL));
    CHECK_OK(weft_future_wait(f, WEFT_FOREVER));
    double end = check_now() + 10;
    while (atomic_load(&cb_result_rc) == 1 && check_now() < end) check_sleep(0.001);
    CHECK_EQ_INT(atomic_load(&cb_result_rc), 0);
    weft_future_release(f);
    (void)s;
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- references ---- */

struct ref_arg {
    weft_future *f;
    int n;
};

static void *retain_release_loop(void *p)
{
    struct ref_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        weft_future_retain(a->f);
        if (i & 1) (void)weft_future_done(a->f);
        weft_future_release(a->f);
    }
    for (int i = 0; i < 10; i++) weft_future_retain(a->f);
    for (int i = 0; i < 10; i++) weft_future_release(a->f);
    return NULL;
}

TEST(retain_release_many_threads)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    double s = 0.05;
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, sleeper, &s, sizeof s, &f));
    enum {
        T = 8
    };
    pthread_t th[T];
    struct ref_arg a = {f, 20000};
    for (int i = 0; i < T; i++) REQUIRE(pthread_create(&th[i], NULL, retain_release_loop, &a) == 0);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    /* hand extra references to the executor's lifetime */
    weft_future_retain(f);
    weft_future_retain(f);
    weft_future_release(f);
    weft_future_release(f);
    CHECK_OK(weft_future_result(f, 0, NULL, NULL));
    weft_future_release(f);
    weft_future_retain(NULL);
    weft_future_release(NULL);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(release_before_completion)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    atomic_store(&ran, 0);
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    weft_future *f;
    char big[5000];
    memset(big, 'r', sizeof big);
    REQUIRE_OK(weft_submit(ex, count_run, big, sizeof big, &f));
    weft_future_release(f); /* never cancels */
    weft_future_release(g); /* released while running */
    atomic_store(&gate_open[0], 1);
    CHECK(check_wait_atomic(&ran, 1, 10));
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&ran), 1);
}

/* ---- weft_wait ---- */

TEST(wait_all)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    enum {
        N = 8
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) {
        double s = 0.002 * i;
        REQUIRE_OK(weft_submit(ex, sleeper, &s, sizeof s, &fs[i]));
    }
    bool done[N];
    memset(done, 0, sizeof done);
    CHECK_EQ_INT(wait_count(fs, N, WEFT_WAIT_ALL, WEFT_FOREVER, done), N);
    for (int i = 0; i < N; i++) {
        CHECK(done[i]);
        CHECK(weft_future_done(fs[i]));
    }
    CHECK_EQ_INT(wait_count(fs, N, WEFT_WAIT_ALL, 0, NULL), N);
    CHECK_EQ_INT(wait_count(fs, 0, WEFT_WAIT_ALL, 0, NULL), 0);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(wait_timeout_and_first_completed)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    gates_reset();
    weft_future *g = start_gate(ex, 0);
    REQUIRE(g);
    weft_future *fs[3] = {g, NULL, NULL};
    bool done[3];
    /* ALL with a blocked future times out */
    double t0 = check_now();
    CHECK_RC(weft_wait(fs, 1, WEFT_WAIT_ALL, 0.05, done, NULL), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.045);
    CHECK_RC(weft_wait(fs, 1, WEFT_WAIT_FIRST_COMPLETED, 0.02, NULL, NULL), WEFT_ETIMEDOUT);
    CHECK_RC(weft_wait(fs, 1, WEFT_WAIT_FIRST_ERROR, 0, NULL, NULL), WEFT_ETIMEDOUT);
    /* the count is given on a timeout too: the NULL entry is finished */
    size_t nd = 99;
    CHECK_RC(weft_wait(fs, 3, WEFT_WAIT_ALL, 0, NULL, &nd), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(nd, 2);
    /* a NULL entry counts as finished */
    memset(done, 0, sizeof done);
    CHECK_EQ_INT(wait_count(fs, 2, WEFT_WAIT_FIRST_COMPLETED, 0, done), 1);
    CHECK(!done[0]);
    CHECK(done[1]);
    CHECK_RC(weft_wait(fs, 2, WEFT_WAIT_ALL, 0.01, NULL, NULL), WEFT_ETIMEDOUT);
    /* a fast task on the other worker */
    double s = 0.01;
    REQUIRE_OK(weft_submit(ex, sleeper, &s, sizeof s, &fs[1]));
    memset(done, 0, sizeof done);
    CHECK_EQ_INT(wait_count(fs, 2, WEFT_WAIT_FIRST_COMPLETED, 10.0, done), 1);
    CHECK(!done[0]);
    CHECK(done[1]);
    CHECK(!weft_future_done(g));
    /* FIRST_ERROR: no error, one pending -> waits and times out */
    CHECK_RC(weft_wait(fs, 2, WEFT_WAIT_FIRST_ERROR, 0.02, NULL, NULL), WEFT_ETIMEDOUT);
    atomic_store(&gate_open[0], 1);
    memset(done, 0, sizeof done);
    CHECK_EQ_INT(wait_count(fs, 3, WEFT_WAIT_ALL, 10.0, done), 3);
    CHECK(done[0] && done[1] && done[2]);
    /* FIRST_ERROR with all finished and no error: met, returns all */
    CHECK_EQ_INT(wait_count(fs, 2, WEFT_WAIT_FIRST_ERROR, 0, NULL), 2);
    weft_future_release(fs[0]);
    weft_future_release(fs[1]);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(wait_first_error)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    gates_reset();
    weft_future *fs[3];
    fs[0] = start_gate(ex, 0);
    REQUIRE(fs[0]);
    int mode = 0;
    REQUIRE_OK(weft_submit(ex, fail_task, &mode, sizeof mode, &fs[1]));
    fs[2] = NULL;
    bool done[3] = {true, false, false};
    int n = wait_count(fs, 3, WEFT_WAIT_FIRST_ERROR, 10.0, done);
    CHECK_EQ_INT(n, 2); /* the failed one and the NULL entry */
    CHECK(!done[0]);
    CHECK(done[1]);
    CHECK(done[2]);
    CHECK(!weft_future_done(fs[0]));
    atomic_store(&gate_open[0], 1);
    CHECK_EQ_INT(wait_count(fs, 3, WEFT_WAIT_ALL, 10.0, NULL), 3);
    weft_future_release(fs[0]);
    weft_future_release(fs[1]);

    /* a cancelled future also meets FIRST_ERROR */
    gates_reset();
    weft_executor *ex1 = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex1);
    weft_future *gs[2];
    gs[0] = start_gate(ex1, 0);
    REQUIRE(gs[0]);
    REQUIRE_OK(weft_submit(ex1, echo, "c", 1, &gs[1]));
    CHECK_OK(weft_future_cancel(gs[1]));
    CHECK_EQ_INT(wait_count(gs, 2, WEFT_WAIT_FIRST_ERROR, 10.0, done), 1);
    CHECK(!done[0] && done[1]);
    atomic_store(&gate_open[0], 1);
    weft_future_release(gs[0]);
    weft_future_release(gs[1]);
    CHECK_OK(weft_executor_destroy(ex1));
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(wait_bad_args)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "a", 1, &f));
    weft_future *fs[1] = {f};
    CHECK_ERR(weft_wait(NULL, 1, WEFT_WAIT_ALL, 1.0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_wait(fs, 1, WEFT_WAIT_ALL, NAN, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_wait(fs, 1, WEFT_WAIT_ALL, -1.0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_wait(fs, 1, WEFT_WAIT_ALL, -INFINITY, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_wait(fs, 1, (weft_wait_mode)17, 1.0, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ_INT(wait_count(fs, 1, WEFT_WAIT_ALL, WEFT_FOREVER, NULL), 1);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- as_completed ---- */

TEST(as_completed_each_once)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    enum {
        N = 12
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) {
        double s = 0.003 * ((i * 7) % N);
        REQUIRE_OK(weft_submit(ex, sleeper, &s, sizeof s, &fs[i]));
    }
    weft_as_completed *it = NULL;
    REQUIRE_OK(weft_as_completed_create(fs, N, &it));
    /* the iterator holds its own references */
    weft_future *mine[N];
    memcpy(mine, fs, sizeof fs);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    memset(fs, 0, sizeof fs);
    int seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < N; k++) {
        weft_future *f = NULL;
        size_t idx = 999;
        int rc = weft_as_completed_next(it, 10.0, &f, &idx);
        CHECK_OK(rc);
        if (rc) break;
        REQUIRE(idx < N);
        seen[idx]++;
        CHECK(f == mine[idx]);
        CHECK(weft_future_done(f));
        double s;
        size_t len;
        const void *d;
        CHECK_OK(weft_future_result(f, 0, &d, &len));
        CHECK(len == sizeof s);
    }
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
    weft_future *f = (weft_future *)1;
    CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_EOF);
    CHECK_RC(weft_as_completed_next(it, 1.0, &f, NULL), WEFT_EOF);
    weft_as_completed_destroy(it);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(as_completed_finished_first_in_order)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    gates_reset();
    enum {
        N = 6
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) {
        if (i == 2) {
            fs[i] = start_gate(ex, 0);
            REQUIRE(fs[i]);
        } else {
            REQUIRE_OK(weft_submit(ex, echo, &i, sizeof i, &fs[i]));
        }
    }
    for (int i = 0; i < N; i++)
        if (i != 2) CHECK_OK(weft_future_wait(fs[i], WEFT_FOREVER));
    weft_as_completed *it = NULL;
    REQUIRE_OK(weft_as_completed_create(fs, N, &it));
    size_t order[N];
    for (int k = 0; k < N - 1; k++) {
        weft_future *f;
        CHECK_OK(weft_as_completed_next(it, 10.0, &f, &order[k]));
    }
    CHECK_EQ_INT(order[0], 0);
    CHECK_EQ_INT(order[1], 1);
    CHECK_EQ_INT(order[2], 3);
    CHECK_EQ_INT(order[3], 4);
    CHECK_EQ_INT(order[4], 5);
    /* the gate is still running */
    weft_future *f = NULL;
    double t0 = check_now();
    CHECK_RC(weft_as_completed_next(it, 0.05, &f, NULL), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.045);
    CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_ETIMEDOUT);
    atomic_store(&gate_open[0], 1);
    size_t idx = 99;
    CHECK_OK(weft_as_completed_next(it, 10.0, &f, &idx));
    CHECK_EQ_INT(idx, 2);
    CHECK(f == fs[2]);
    weft_future *f_eof = NULL;
    CHECK_RC(weft_as_completed_next(it, 0, &f_eof, &idx), WEFT_EOF);
    /* keep a yielded future past destroy */
    weft_future_retain(f);
    weft_as_completed_destroy(it);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_future_result(f, 0, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(as_completed_bad_args)
{
    weft_as_completed *it = (weft_as_completed *)1;
    CHECK_ERR(weft_as_completed_create(NULL, 2, &it), WEFT_EINVAL);
    weft_future *fs[1] = {NULL};
    CHECK_ERR(weft_as_completed_create(fs, 0, NULL), WEFT_EINVAL);
    /* empty: EOF at once */
    it = NULL;
    CHECK_OK(weft_as_completed_create(fs, 0, &it));
    if (it) {
        weft_future *f;
        CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_EOF);
        weft_as_completed_destroy(it);
    }
    /* bad timeouts on an iterator whose only future is still running */
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    gates_reset();
    fs[0] = start_gate(ex, 0);
    REQUIRE(fs[0]);
    it = NULL;
    REQUIRE_OK(weft_as_completed_create(fs, 1, &it));
    weft_future *f;
    CHECK_ERR(weft_as_completed_next(it, NAN, &f, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_as_completed_next(it, -0.5, &f, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_as_completed_next(it, 0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_as_completed_next(NULL, 0, &f, NULL), WEFT_EINVAL);
    atomic_store(&gate_open[0], 1);
    size_t idx = 9;
    CHECK_OK(weft_as_completed_next(it, 10.0, &f, &idx));
    CHECK_EQ_INT(idx, 0);
    CHECK_RC(weft_as_completed_next(it, 10.0, &f, &idx), WEFT_EOF);
    weft_as_completed_destroy(it);
    weft_future_release(fs[0]);
    weft_as_completed_destroy(NULL);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- bad inputs ---- */

TEST(future_bad_args)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(NULL, echo, NULL, 0, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, NULL, NULL, 0, &f), WEFT_EINVAL);
    CHECK(f == NULL);
    CHECK_ERR(weft_submit(ex, echo, NULL, 0, NULL), WEFT_EINVAL);
    f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, echo, NULL, 5, &f), WEFT_EINVAL);
    CHECK(f == NULL);

    REQUIRE_OK(weft_submit(ex, echo, "a", 1, &f));
    CHECK_ERR(weft_future_result(NULL, 1.0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_result(f, NAN, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_result(f, -1.0, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_result(f, -INFINITY, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_wait(NULL, 1.0), WEFT_EINVAL);
    CHECK_ERR(weft_future_wait(f, NAN), WEFT_EINVAL);
    CHECK_ERR(weft_future_wait(f, -0.001), WEFT_EINVAL);
    CHECK_ERR(weft_future_cancel(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_on_done(NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_future_on_done(f, NULL, NULL), WEFT_EINVAL);
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- retries ---- */

static void run_retries(weft_backend b)
{
    weft_executor *ex = make_ex(b, 2);
    REQUIRE(ex);
    weft_submit_options so = {0};
    weft_future *f;

    so.retries = 2;
    atomic_store(&attempts_seen, 0);
    REQUIRE_OK(weft_submit_ex(ex, flaky, NULL, 0, &so, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    if (len == sizeof(int))
        CHECK_EQ_INT(*(const int *)d, 2);
    else
        CHECK_EQ_INT(len, sizeof(int));
    CHECK(weft_future_error(f) == NULL);
    CHECK_EQ_INT(atomic_load(&attempts_seen), 3);
    weft_future_release(f);

    so.retries = 1;
    atomic_store(&attempts_seen, 0);
    REQUIRE_OK(weft_submit_ex(ex, flaky, NULL, 0, &so, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_EAGAIN);
    CHECK_EQ_STR(weft_future_error(f), "attempt 1 fails");
    CHECK_EQ_INT(atomic_load(&attempts_seen), 2);
    weft_future_release(f);

    so.retries = 0;
    atomic_store(&attempts_seen, 0);
    REQUIRE_OK(weft_submit_ex(ex, flaky, NULL, 0, &so, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_EAGAIN);
    CHECK_EQ_STR(weft_future_error(f), "attempt 0 fails");
    CHECK_EQ_INT(atomic_load(&attempts_seen), 1);
    weft_future_release(f);

    so.retries = 10; /* stops retrying once it succeeds */
    atomic_store(&attempts_seen, 0);
    REQUIRE_OK(weft_submit_ex(ex, flaky, NULL, 0, &so, &f));
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    CHECK_EQ_INT(atomic_load(&attempts_seen), 3);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(retries_threads)
{
    run_retries(WEFT_BACKEND_THREADS);
}
TEST(retries_serial)
{
    run_retries(WEFT_BACKEND_SERIAL);
}

/* the future outlives the executor */
TEST(future_outlives_executor)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "survivor", 8, &f));
    CHECK_OK(weft_executor_destroy(ex));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, 0, &d, &len));
    CHECK(len == 8 && memcmp(d, "survivor", 8) == 0);
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
}

/* many futures, waited from several threads at once */
struct waiter_arg {
    weft_future **fs;
    int n;
    int bad;
};

static void *wait_all_thread(void *p)
{
    struct waiter_arg *a = p;
    for (int i = a->n - 1; i >= 0; i--) {
        const void *d;
        size_t len;
        if (weft_future_result(a->fs[i], WEFT_FOREVER, &d, &len) != 0 || len != sizeof(int) ||
            *(const int *)d != i)
            a->bad++;
    }
    return NULL;
}

TEST(many_waiters)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    enum {
        N = 2000,
        T = 4
    };
    static weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, echo, &i, sizeof i, &fs[i]));
    pthread_t th[T];
    struct waiter_arg a[T];
    for (int t = 0; t < T; t++) {
        a[t] = (struct waiter_arg){fs, N, 0};
        REQUIRE(pthread_create(&th[t], NULL, wait_all_thread, &a[t]) == 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(a[t].bad, 0);
    }
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- memory after a burst ---- */

static int noop_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}
WEFT_TASK_REGISTER(noop_task);

/* resident set size in MiB (Linux) */
static double rss_mib(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return -1;
    long size = 0, res = 0;
    int k = fscanf(fp, "%ld %ld", &size, &res);
    fclose(fp);
    if (k != 2) return -1;
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* bytes malloc has handed out and not got back (glibc), else -1 */
static double malloc_in_use_mib(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks / (1024.0 * 1024.0);
#else
    return -1;
#endif
}

/* Issue 12 item 9: the free list kept every future of a burst (up to ~1M,
 * ~300 MB) for the life of the process. Now it keeps them only while
 * executors work (a second burst reuses them: bench submit_batch 0.06 us
 * per task instead of 0.2-0.5 through malloc); when the executor is
 * destroyed the list is cut to its bound and the pages go back to the
 * system. */
TEST(burst_memory_returns)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("the sanitizers' allocators keep freed memory");
    enum {
        N = 1000000
    };
    weft_future **fs = malloc(N * sizeof *fs);
    REQUIRE(fs);
    memset(fs, 0, N * sizeof *fs); /* touch the array before the baseline */
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    double base = rss_mib(), base_used = malloc_in_use_mib();
    REQUIRE(base > 0);
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, noop_task, NULL, 0, &fs[i]));
    double peak = rss_mib();
    for (int i = 0; i < N; i++) {
        CHECK_OK(weft_future_wait(fs[i], WEFT_FOREVER));
        weft_future_release(fs[i]);
    }
    double after = rss_mib(), used = malloc_in_use_mib();
    CHECK_OK(weft_executor_destroy(ex));
    double destroyed = rss_mib(), used_destroyed = malloc_in_use_mib();
    printf("    rss MiB: base %.1f, 1M futures %.1f, released %.1f (malloc in use %.1f -> %.1f "
           "-> %.1f), destroyed %.1f\n",
           base, peak, after, base_used, used, used_destroyed, destroyed);
    if (base_used >= 0)
        CHECK_MSG(used_destroyed - base_used < 40, "%.1f MiB still held after destroy",
                  used_destroyed - base_used);
    CHECK_MSG(destroyed - base < 40, "%.1f MiB kept after destroy", destroyed - base);
    free(fs);
}

/* Issue 11 defect 13: a second release of a future (or a retain after its
 * last release) while it sits in the free list is detected, ignored and
 * reported; before, a retain + release after the last release put the
 * future twice in the free list, and two later submits got the same one. */
TEST(double_release_detected)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, echo, "x", 1, &f));
    CHECK_OK(weft_future_wait(f, WEFT_FOREVER));
    weft_future_release(f); /* the last reference: f goes to the free list */
    weft_future_retain(f);  /* use after release: ignored */
    CHECK_MSG(strstr(weft_last_error(), "was released") != NULL, "last error: %s",
              weft_last_error());
    weft_future_release(f); /* the second release: ignored */
    CHECK_MSG(strstr(weft_last_error(), "already released") != NULL, "last error: %s",
              weft_last_error());
    weft_future_release(f);
    /* the free list is intact: the next futures are distinct and work */
    weft_future *a, *b;
    REQUIRE_OK(weft_submit(ex, echo, "a", 1, &a));
    REQUIRE_OK(weft_submit(ex, echo, "b", 1, &b));
    CHECK(a != b);
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(a, WEFT_FOREVER, &d, &len));
    CHECK(len == 1 && memcmp(d, "a", 1) == 0);
    CHECK_OK(weft_future_result(b, WEFT_FOREVER, &d, &len));
    CHECK(len == 1 && memcmp(d, "b", 1) == 0);
    weft_future_release(a);
    weft_future_release(b);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- promises (issue 11, control 14) ---- */

struct delayed_set {
    weft_future *f;
    double delay;
    const void *data;
    size_t len;
    int code; /* < 0: set_error with this code instead */
    int rc;
};

static void *delayed_set_thread(void *p)
{
    struct delayed_set *d = p;
    check_sleep(d->delay);
    d->rc = d->code < 0 ? weft_promise_set_error(d->f, d->code, "from the producer")
                        : weft_promise_set_result(d->f, d->data, d->len);
    weft_future_release(d->f); /* the producer's own reference */
    return NULL;
}

/* completes f from another thread after `delay` s (it takes a reference) */
static void set_later(pthread_t *th, struct delayed_set *d, weft_future *f, double delay,
                      const void *data, size_t len, int code)
{
    *d = (struct delayed_set){f, delay, data, len, code, 1};
    weft_future_retain(f);
    REQUIRE(pthread_create(th, NULL, delayed_set_thread, d) == 0);
}

TEST(promise_result_from_another_thread)
{
    static unsigned char big[1000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7);
    const size_t lens[2] = {5, sizeof big}; /* inline output and a heap copy */
    for (int k = 0; k < 2; k++) {
        weft_future *f;
        REQUIRE_OK(weft_promise_create(&f));
        CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_PENDING);
        CHECK(!weft_future_done(f));
        CHECK_RC(weft_future_result(f, 0.02, NULL, NULL), WEFT_ETIMEDOUT);
        unsigned char *src = malloc(lens[k]);
        REQUIRE(src);
        memcpy(src, big, lens[k]);
        pthread_t th;
        struct delayed_set d;
        set_later(&th, &d, f, 0.05, src, lens[k], 0);
        const void *out;
        size_t len;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &out, &len));
        pthread_join(th, NULL);
        CHECK_OK(d.rc);
        memset(src, 0, lens[k]); /* the promise holds a copy */
        free(src);
        CHECK_EQ_U64(len, lens[k]);
        CHECK(out && memcmp(out, big, lens[k]) == 0);
        CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_DONE);
        CHECK(weft_future_error(f) == NULL);
        weft_future_release(f);
    }
    /* an empty result */
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    CHECK_OK(weft_promise_set_result(f, NULL, 0));
    size_t len = 99;
    CHECK_OK(weft_future_result(f, 0, NULL, &len));
    CHECK_EQ_U64(len, 0);
    weft_future_release(f);
}

TEST(promise_error)
{
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    pthread_t th;
    struct delayed_set d;
    set_later(&th, &d, f, 0.02, NULL, 0, -7777);
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), -7777);
    pthread_join(th, NULL);
    CHECK_OK(d.rc);
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_FAILED);
    CHECK_EQ_STR(weft_future_error(f), "from the producer");
    weft_future_release(f);
    /* no message; a code that is not an error */
    REQUIRE_OK(weft_promise_create(&f));
    CHECK_RC(weft_promise_set_error(f, 0, "x"), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_error(f, 5, "x"), WEFT_EINVAL);
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_PENDING);
    CHECK_OK(weft_promise_set_error(f, WEFT_ETASK, NULL));
    CHECK_RC(weft_future_result(f, 0, NULL, NULL), WEFT_ETASK);
    CHECK_EQ_STR(weft_future_error(f), "");
    weft_future_release(f);
}

TEST(promise_set_twice_is_refused)
{
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    CHECK_OK(weft_promise_set_result(f, "first", 5));
    CHECK_RC(weft_promise_set_result(f, "second", 6), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "already finished") != NULL, "%s", weft_last_error());
    CHECK_RC(weft_promise_set_error(f, WEFT_ETASK, "late"), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_running(f), WEFT_EINVAL);
    CHECK_RC(weft_future_cancel(f), WEFT_EBUSY);
    const void *out;
    size_t len;
    CHECK_OK(weft_future_result(f, 0, &out, &len));
    CHECK(len == 5 && memcmp(out, "first", 5) == 0);
    weft_future_release(f);

    REQUIRE_OK(weft_promise_create(&f));
    CHECK_OK(weft_promise_set_error(f, WEFT_EPERM, "no"));
    CHECK_RC(weft_promise_set_error(f, WEFT_ETASK, "again"), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_result(f, "x", 1), WEFT_EINVAL);
    CHECK_RC(weft_future_result(f, 0, NULL, NULL), WEFT_EPERM);
    CHECK_EQ_STR(weft_future_error(f), "no");
    weft_future_release(f);
}

static void note_state_cb(weft_future *f, void *arg)
{
    atomic_store((atomic_int *)arg, 100 + (int)weft_future_state_get(f));
}

TEST(promise_cancel_is_noticed)
{
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    atomic_int seen = 0; /* the producer notices a cancel through a callback */
    CHECK_OK(weft_future_on_done(f, note_state_cb, &seen));
    CHECK_OK(weft_future_cancel(f));
    CHECK_EQ_INT(atomic_load(&seen), 100 + WEFT_FUTURE_CANCELLED);
    CHECK(weft_future_cancelled(f));
    CHECK_RC(weft_promise_set_running(f), WEFT_ECANCELLED);
    CHECK_RC(weft_promise_set_result(f, "x", 1), WEFT_ECANCELLED);
    CHECK_RC(weft_promise_set_error(f, WEFT_ETASK, NULL), WEFT_ECANCELLED);
    CHECK_RC(weft_future_result(f, 0, NULL, NULL), WEFT_ECANCELLED);
    CHECK_OK(weft_future_cancel(f)); /* already cancelled */
    weft_future_release(f);
}

TEST(promise_set_running_blocks_cancel)
{
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    CHECK_OK(weft_promise_set_running(f));
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_RUNNING);
    CHECK(weft_future_running(f));
    CHECK_RC(weft_future_cancel(f), WEFT_EBUSY);
    CHECK_RC(weft_promise_set_running(f), WEFT_EINVAL);
    CHECK_RC(weft_future_wait(f, 0.01), WEFT_ETIMEDOUT);
    CHECK_OK(weft_promise_set_result(f, "ok", 2));
    CHECK_OK(weft_future_result(f, 0, NULL, NULL));
    weft_future_release(f);
}

TEST(promise_bad_args)
{
    CHECK_RC(weft_promise_create(NULL), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_result(NULL, "x", 1), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_error(NULL, WEFT_ETASK, NULL), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_running(NULL), WEFT_EINVAL);
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    CHECK_RC(weft_promise_set_result(f, NULL, 3), WEFT_EINVAL);
    weft_future_release(f);
    /* a task's future is not a promise */
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    REQUIRE_OK(weft_submit(ex, echo, "t", 1, &f));
    CHECK_RC(weft_promise_set_result(f, "x", 1), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_error(f, WEFT_ETASK, NULL), WEFT_EINVAL);
    CHECK_RC(weft_promise_set_running(f), WEFT_EINVAL);
    const void *out;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &out, &len));
    CHECK(len == 1 && memcmp(out, "t", 1) == 0);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* weft_wait, as_completed and callbacks over promises completed from another
 * thread in a known order: 2, 0, 1 */
TEST(promise_wait_as_completed_callbacks)
{
    weft_future *fs[3];
    atomic_int seen[3];
    for (int i = 0; i < 3; i++) {
        REQUIRE_OK(weft_promise_create(&fs[i]));
        atomic_init(&seen[i], 0);
        CHECK_OK(weft_future_on_done(fs[i], note_state_cb, &seen[i]));
    }
    weft_as_completed *it;
    REQUIRE_OK(weft_as_completed_create(fs, 3, &it));
    bool done[3];
    CHECK_RC(weft_wait(fs, 3, WEFT_WAIT_FIRST_COMPLETED, 0.01, done, NULL), WEFT_ETIMEDOUT);
    pthread_t th[3];
    struct delayed_set d[3];
    int vals[3] = {10, 11, 12};
    set_later(&th[2], &d[2], fs[2], 0.02, &vals[2], sizeof(int), 0);
    CHECK_EQ_INT(wait_count(fs, 3, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER, done), 1);
    CHECK(done[2] && !done[0] && !done[1]);
    set_later(&th[0], &d[0], fs[0], 0.02, NULL, 0, WEFT_EPERM);
    CHECK_EQ_INT(wait_count(fs, 3, WEFT_WAIT_FIRST_ERROR, WEFT_FOREVER, done), 2);
    CHECK(done[0] && done[2] && !done[1]);
    set_later(&th[1], &d[1], fs[1], 0.02, &vals[1], sizeof(int), 0);
    CHECK_EQ_INT(wait_count(fs, 3, WEFT_WAIT_ALL, WEFT_FOREVER, done), 3);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    const size_t order[3] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        weft_future *f;
        size_t idx;
        CHECK_OK(weft_as_completed_next(it, WEFT_FOREVER, &f, &idx));
        CHECK_EQ_U64(idx, order[k]);
        CHECK(f == fs[order[k]]);
    }
    weft_future *f;
    CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_EOF);
    weft_as_completed_destroy(it);
    CHECK_EQ_INT(atomic_load(&seen[0]), 100 + WEFT_FUTURE_FAILED);
    CHECK_EQ_INT(atomic_load(&seen[1]), 100 + WEFT_FUTURE_DONE);
    CHECK_EQ_INT(atomic_load(&seen[2]), 100 + WEFT_FUTURE_DONE);
    for (int i = 0; i < 3; i++) weft_future_release(fs[i]);
}

/* a promise whose last reference goes while unfinished is cancelled first:
 * its callbacks run, an iterator over it is freed (ASan: no leak) */
TEST(promise_dropped_unfinished_is_cancelled)
{
    weft_future *f;
    REQUIRE_OK(weft_promise_create(&f));
    atomic_int seen = 0;
    CHECK_OK(weft_future_on_done(f, note_state_cb, &seen));
    weft_as_completed *it;
    REQUIRE_OK(weft_as_completed_create(&f, 1, &it));
    weft_as_completed_destroy(it);
    CHECK_EQ_INT(atomic_load(&seen), 0);
    weft_future_release(f);
    CHECK_EQ_INT(atomic_load(&seen), 100 + WEFT_FUTURE_CANCELLED);
}

/* a promise as the input of a task: the task waits on it (and helps) */
static int wait_promise_task(weft_ctx *ctx, const void *in, size_t len)
{
    weft_future *p;
    if (len != sizeof p) return WEFT_EINVAL;
    memcpy(&p, in, sizeof p);
    const void *d;
    size_t l;
    int rc = weft_future_result(p, WEFT_FOREVER, &d, &l);
    if (rc) return rc;
    return weft_ctx_set_output(ctx, d, l);
}

TEST(promise_awaited_inside_tasks)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    weft_future *p, *t;
    REQUIRE_OK(weft_promise_create(&p));
    REQUIRE_OK(weft_submit(ex, wait_promise_task, &p, sizeof p, &t));
    CHECK_RC(weft_future_wait(t, 0.02), WEFT_ETIMEDOUT);
    CHECK_OK(weft_promise_set_result(p, "relay", 5));
    const void *out;
    size_t len;
    CHECK_OK(weft_future_result(t, WEFT_FOREVER, &out, &len));
    CHECK(len == 5 && memcmp(out, "relay", 5) == 0);
    weft_future_release(t);
    weft_future_release(p);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Many threads race to complete, cancel, start and wait on the same
 * promises: exactly one outcome wins and everyone sees it. */
enum {
    RACE_ROLES = 6 /* set_result, set_error, cancel, set_running+set_result, wait, on_done */
};

typedef struct race_slot {
    weft_future *f;
    atomic_int set_ok, err_ok, run_ok, run_set_ok, cb_reg, cb_runs, cb_state;
    atomic_int won_value; /* the value whose set_result returned 0 */
    atomic_int bad;
} race_slot;

typedef struct race_shared {
    race_slot *slots;
    int nslots;
    int nthreads;
    pthread_barrier_t start, end;
    atomic_int stop;
} race_shared;

typedef struct race_arg {
    race_shared *sh;
    int id;
} race_arg;

static void race_cb(weft_future *f, void *arg)
{
    race_slot *s = arg;
    atomic_fetch_add(&s->cb_runs, 1);
    atomic_store(&s->cb_state, (int)weft_future_state_get(f));
}

static void *race_thread(void *p)
{
    race_arg *a = p;
    race_shared *sh = a->sh;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(a->id + 1);
    for (;;) {
        pthread_barrier_wait(&sh->start);
        if (atomic_load(&sh->stop)) break;
        for (int k = 0; k < sh->nslots; k++) {
            /* each thread visits the slots in its own order */
            int i = (k * 7 + a->id * 13) % sh->nslots;
            race_slot *s = &sh->slots[i];
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int role = (int)((rng >> 8) % RACE_ROLES);
            int v = a->id * 100000 + i;
            int rc;
            switch (role) {
            case 0:
                rc = weft_promise_set_result(s->f, &v, sizeof v);
                if (rc == 0) {
                    atomic_fetch_add(&s->set_ok, 1);
                    atomic_store(&s->won_value, v);
                } else if (rc != WEFT_EINVAL && rc != WEFT_ECANCELLED) {
                    atomic_fetch_add(&s->bad, 1);
                }
                break;
            case 1:
                rc = weft_promise_set_error(s->f, -(1000 + a->id), "race");
                if (rc == 0)
                    atomic_fetch_add(&s->err_ok, 1);
                else if (rc != WEFT_EINVAL && rc != WEFT_ECANCELLED)
                    atomic_fetch_add(&s->bad, 1);
                break;
            case 2:
                rc = weft_future_cancel(s->f);
                if (rc != 0 && rc != WEFT_EBUSY) atomic_fetch_add(&s->bad, 1);
                break;
            case 3:
                rc = weft_promise_set_running(s->f);
                if (rc == 0) {
                    atomic_fetch_add(&s->run_ok, 1);
                    if (weft_future_cancel(s->f) != WEFT_EBUSY) atomic_fetch_add(&s->bad, 1);
                    rc = weft_promise_set_result(s->f, &v, sizeof v);
                    if (rc == 0) {
                        atomic_fetch_add(&s->set_ok, 1);
                        atomic_fetch_add(&s->run_set_ok, 1);
                        atomic_store(&s->won_value, v);
                    } else if (rc != WEFT_EINVAL) {
                        atomic_fetch_add(&s->bad, 1);
                    }
                } else if (rc != WEFT_EINVAL && rc != WEFT_ECANCELLED) {
                    atomic_fetch_add(&s->bad, 1);
                }
                break;
            case 4: {
                const void *d;
                size_t len;
                rc = weft_future_result(s->f, (rng >> 40) & 1 ? 0.002 : 0.0001, &d, &len);
                if (rc == 0 && len != sizeof(int)) atomic_fetch_add(&s->bad, 1);
                if (rc == WEFT_ETIMEDOUT && weft_future_done(s->f)) {
                    /* finished just after the timeout: fine */
                }
                break;
            }
            default:
                atomic_fetch_add(&s->cb_reg, 1);
                if (weft_future_on_done(s->f, race_cb, s) != 0) atomic_fetch_add(&s->bad, 1);
                break;
            }
        }
        pthread_barrier_wait(&sh->end);
    }
    return NULL;
}

TEST(promise_race_many_threads)
{
    int nthreads = check_arg_threads(8);
    int nslots = 64;
    double seconds = (CHECK_TSAN || CHECK_ASAN ? 2.0 : 3.0) * check_stress_scale();
    race_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.nslots = nslots;
    sh.nthreads = nthreads;
    sh.slots = calloc((size_t)nslots, sizeof *sh.slots);
    REQUIRE(sh.slots);
    pthread_barrier_init(&sh.start, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&sh.end, NULL, (unsigned)nthreads + 1);
    pthread_t *th = malloc((size_t)nthreads * sizeof *th);
    race_arg *args = malloc((size_t)nthreads * sizeof *args);
    REQUIRE(th && args);
    for (int t = 0; t < nthreads; t++) {
        args[t] = (race_arg){&sh, t};
        REQUIRE(pthread_create(&th[t], NULL, race_thread, &args[t]) == 0);
    }
    long rounds = 0, outcomes[5] = {0};
    double end = check_now() + seconds;
    while (check_now() < end) {
        for (int i = 0; i < nslots; i++) {
            race_slot *s = &sh.slots[i];
            memset(s, 0, sizeof *s);
            REQUIRE_OK(weft_promise_create(&s->f));
        }
        pthread_barrier_wait(&sh.start);
        pthread_barrier_wait(&sh.end);
        for (int i = 0; i < nslots; i++) {
            race_slot *s = &sh.slots[i];
            int st = (int)weft_future_state_get(s->f);
            int set_ok = atomic_load(&s->set_ok), err_ok = atomic_load(&s->err_ok);
            CHECK_EQ_INT(atomic_load(&s->bad), 0);
            CHECK_MSG(set_ok + err_ok <= 1, "slot %d: %d results and %d errors set", i, set_ok,
                      err_ok);
            CHECK_MSG(atomic_load(&s->run_ok) <= 1, "slot %d: set_running won %d times", i,
                      atomic_load(&s->run_ok));
            const void *d;
            size_t len;
            int rc = weft_future_result(s->f, 0, &d, &len);
            switch (st) {
            case WEFT_FUTURE_DONE: {
                CHECK_EQ_INT(set_ok, 1);
                CHECK_OK(rc);
                int v = -1;
                if (rc == 0 && len == sizeof v) memcpy(&v, d, sizeof v);
                CHECK_EQ_INT(v, atomic_load(&s->won_value));
                break;
            }
            case WEFT_FUTURE_FAILED:
                CHECK_EQ_INT(err_ok, 1);
                CHECK(rc <= -1000 && rc > -1000 - nthreads);
                break;
            case WEFT_FUTURE_CANCELLED:
                CHECK_EQ_INT(set_ok + err_ok, 0);
                CHECK_EQ_INT(atomic_load(&s->run_ok), 0);
                CHECK_RC(rc, WEFT_ECANCELLED);
                break;
            default: /* nobody finished it (pending or running): finish it now */
                CHECK_EQ_INT(set_ok + err_ok, 0);
                CHECK_OK(weft_promise_set_result(s->f, NULL, 0));
                break;
            }
            /* whoever finished it, every callback ran once and saw the end */
            int cbs = atomic_load(&s->cb_runs);
            CHECK_EQ_INT(cbs, atomic_load(&s->cb_reg));
            if (cbs) CHECK_EQ_INT(atomic_load(&s->cb_state), (int)weft_future_state_get(s->f));
            weft_future_release(s->f);
            CHECK_EQ_INT(atomic_load(&s->cb_runs), cbs);
            outcomes[st]++;
        }
        rounds++;
    }
    atomic_store(&sh.stop, 1);
    pthread_barrier_wait(&sh.start);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    printf("    %ld rounds x %d promises x %d threads: %ld done, %ld failed, %ld cancelled, "
           "%ld left pending/running\n",
           rounds, nslots, nthreads, outcomes[WEFT_FUTURE_DONE], outcomes[WEFT_FUTURE_FAILED],
           outcomes[WEFT_FUTURE_CANCELLED],
           outcomes[WEFT_FUTURE_PENDING] + outcomes[WEFT_FUTURE_RUNNING]);
    CHECK(rounds > 0);
    pthread_barrier_destroy(&sh.start);
    pthread_barrier_destroy(&sh.end);
    free(th);
    free(args);
    free(sh.slots);
}

/* Issue 11 control 18: a future given several times is yielded once, with
 * the index of its first occurrence (Python's as_completed dedups). Before,
 * it was yielded at each position. */
TEST(as_completed_yields_a_repeated_future_once)
{
    weft_future *a, *b, *c;
    REQUIRE_OK(weft_promise_create(&a));
    REQUIRE_OK(weft_promise_create(&b));
    REQUIRE_OK(weft_promise_create(&c));
    CHECK_OK(weft_promise_set_result(b, "b", 1)); /* finished before create */
    weft_future *fs[7] = {a, b, a, c, b, a, c};
    weft_as_completed *it;
    REQUIRE_OK(weft_as_completed_create(fs, 7, &it));
    CHECK_OK(weft_promise_set_result(c, "c", 1));
    CHECK_OK(weft_promise_set_result(a, "a", 1));
    const size_t want_idx[3] = {1, 3, 0};
    weft_future *const want_f[3] = {b, c, a};
    for (int k = 0; k < 3; k++) {
        weft_future *f = NULL;
        size_t idx = 99;
        CHECK_OK(weft_as_completed_next(it, 1.0, &f, &idx));
        CHECK_EQ_U64(idx, want_idx[k]);
        CHECK(f == want_f[k]);
    }
    weft_future *f;
    CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_EOF);
    weft_as_completed_destroy(it);
    /* one future many times, and the references are balanced (ASan: no leak) */
    weft_future *same[5] = {a, a, a, a, a};
    REQUIRE_OK(weft_as_completed_create(same, 5, &it));
    size_t idx = 99;
    CHECK_OK(weft_as_completed_next(it, 0, &f, &idx));
    CHECK_EQ_U64(idx, 0);
    CHECK_RC(weft_as_completed_next(it, 0, &f, NULL), WEFT_EOF);
    weft_as_completed_destroy(it);
    weft_future_release(a);
    weft_future_release(b);
    weft_future_release(c);
}

/* test_nesting.c : tasks that submit and wait on tasks (helping), with few
 * workers, without deadlock or extra threads. */
#include "check.h"
#include "check_exec.h"

static atomic_int max_threads;

static void sample_threads(void)
{
    int n = check_count_threads();
    int m = atomic_load(&max_threads);
    while (n > m && !atomic_compare_exchange_weak(&max_threads, &m, n)) {
    }
}

static int leaf(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v;
    if (len != sizeof v) return WEFT_EINVAL;
    memcpy(&v, in, sizeof v);
    v *= 3;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(leaf);

/* submits 10 leaves, waits on them in reverse, outputs their sum */
static int parent(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    weft_executor *ex = weft_ctx_executor(ctx);
    weft_future *fs[10];
    for (int64_t i = 0; i < 10; i++) {
        int rc = weft_submit(ex, leaf, &i, sizeof i, &fs[i]);
        if (rc) return weft_ctx_fail(ctx, rc, "child submit: %s", weft_last_error());
    }
    int64_t sum = 0;
    int err = 0;
    for (int i = 9; i >= 0; i--) {
        const void *d;
        size_t l;
        int rc = weft_future_result(fs[i], WEFT_FOREVER, &d, &l);
        if (rc == 0 && l == sizeof(int64_t))
            sum += *(const int64_t *)d;
        else
            err = rc ? rc : WEFT_ETASK;
        weft_future_release(fs[i]);
    }
    if (err) return weft_ctx_fail(ctx, err, "child failed");
    return weft_ctx_set_output(ctx, &sum, sizeof sum);
}
WEFT_TASK_REGISTER(parent);

static void run_parents(weft_backend b, int w)
{
    weft_executor *ex = make_ex(b, w);
    REQUIRE(ex);
    enum {
        N = 20
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, parent, NULL, 0, &fs[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, &len));
        if (len == 8)
            CHECK_EQ_INT(*(const int64_t *)d, 3 * 45);
        else
            CHECK_EQ_INT(len, 8);
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(children_threads_1)
{
    run_parents(WEFT_BACKEND_THREADS, 1);
}
TEST(children_threads_2)
{
    run_parents(WEFT_BACKEND_THREADS, 2);
}
TEST(children_serial)
{
    run_parents(WEFT_BACKEND_SERIAL, 1);
}

/* depth d submits depth d-1 and waits for it */
static int deep(weft_ctx *ctx, const void *in, size_t len)
{
    int d;
    if (len != sizeof d) return WEFT_EINVAL;
    memcpy(&d, in, sizeof d);
    sample_threads();
    if (d == 0) {
        int one = 1;
        return weft_ctx_set_output(ctx, &one, sizeof one);
    }
    int child = d - 1;
    weft_future *f;
    int rc = weft_submit(weft_ctx_executor(ctx), deep, &child, sizeof child, &f);
    if (rc) return rc;
    const void *out;
    size_t l;
    rc = weft_future_result(f, WEFT_FOREVER, &out, &l);
    int v = rc == 0 && l == sizeof v ? *(const int *)out + 1 : -1000;
    weft_future_release(f);
    if (rc) return rc;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(deep);

static void run_deep(weft_backend b, int w, int depth)
{
    int threads0 = check_count_threads();
    atomic_store(&max_threads, 0);
    weft_executor *ex = make_ex(b, w);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, deep, &depth, sizeof depth, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, 60.0, &d, &len));
    if (len == sizeof(int))
        CHECK_EQ_INT(*(const int *)d, depth + 1);
    else
        CHECK_EQ_INT(len, sizeof(int));
    weft_future_release(f);
    int nw = weft_executor_workers(ex);
    CHECK_OK(weft_executor_destroy(ex));
    int mt = atomic_load(&max_threads);
    CHECK_MSG(mt <= threads0 + (b == WEFT_BACKEND_SERIAL ? 0 : nw),
              "%d threads while nesting (baseline %d, %d workers)", mt, threads0, nw);
}

TEST(deep_10_one_worker)
{
    run_deep(WEFT_BACKEND_THREADS, 1, 10);
}
TEST(deep_100_two_workers)
{
    run_deep(WEFT_BACKEND_THREADS, 2, 100);
}
TEST(deep_10_serial)
{
    run_deep(WEFT_BACKEND_SERIAL, 1, 10);
}

/* fib by nested submits */
static atomic_int fib_calls;

static int fib(weft_ctx *ctx, const void *in, size_t len)
{
    int n;
    if (len != sizeof n) return WEFT_EINVAL;
    memcpy(&n, in, sizeof n);
    if ((atomic_fetch_add(&fib_calls, 1) & 255) == 0) sample_threads();
    int64_t r;
    if (n < 2) {
        r = n;
    } else {
        weft_executor *ex = weft_ctx_executor(ctx);
        int a = n - 1, b = n - 2;
        weft_future *fa, *fb;
        int rc = weft_submit(ex, fib, &a, sizeof a, &fa);
        if (rc) return rc;
        rc = weft_submit(ex, fib, &b, sizeof b, &fb);
        if (rc) {
            weft_future_release(fa);
            return rc;
        }
        const void *da, *db;
        size_t la, lb;
        int ra = weft_future_result(fa, WEFT_FOREVER, &da, &la);
        int rb = weft_future_result(fb, WEFT_FOREVER, &db, &lb);
        r = (ra == 0 && rb == 0) ? *(const int64_t *)da + *(const int64_t *)db : -1;
        weft_future_release(fa);
        weft_future_release(fb);
        if (ra) return ra;
        if (rb) return rb;
    }
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(fib);

static void run_fib(weft_backend b, int w, int n, int64_t want)
{
    int threads0 = check_count_threads();
    atomic_store(&max_threads, 0);
    atomic_store(&fib_calls, 0);
    weft_executor *ex = make_ex(b, w);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, fib, &n, sizeof n, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, 100.0, &d, &len));
    if (len == 8)
        CHECK_EQ_INT(*(const int64_t *)d, want);
    else
        CHECK_EQ_INT(len, 8);
    weft_future_release(f);
    int nw = weft_executor_workers(ex);
    CHECK_OK(weft_executor_destroy(ex));
    /* fib(n) makes 2 fib(n+1) - 1 calls */
    CHECK_EQ_INT(atomic_load(&fib_calls), 2 * 10946 - 1);
    int mt = atomic_load(&max_threads);
    CHECK_MSG(mt <= threads0 + (b == WEFT_BACKEND_SERIAL ? 0 : nw),
              "%d threads while nesting (baseline %d, %d workers)", mt, threads0, nw);
}

TEST(fib20_one_worker)
{
    run_fib(WEFT_BACKEND_THREADS, 1, 20, 6765);
}
TEST(fib20_two_workers)
{
    run_fib(WEFT_BACKEND_THREADS, 2, 20, 6765);
}
TEST(fib20_serial)
{
    run_fib(WEFT_BACKEND_SERIAL, 1, 20, 6765);
}

/* a map inside a task */
static int square(weft_ctx *ctx, const void *in, size_t len)
{
    (void)len;
    int64_t v;
    memcpy(&v, in, sizeof v);
    v *= v;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(square);

static int map_inside(weft_ctx *ctx, const void *in, size_t len)
{
    (void)len;
    int64_t base;
    memcpy(&base, in, sizeof base);
    int64_t items[100];
    for (int i = 0; i < 100; i++) items[i] = base + i;
    weft_results *r = NULL;
    int rc = weft_map(weft_ctx_executor(ctx), square, items, sizeof items[0], 100, NULL, &r);
    if (rc) {
        weft_results_destroy(r);
        return weft_ctx_fail(ctx, rc, "inner map: %s", weft_last_error());
    }
    int64_t sum = 0;
    for (size_t i = 0; i < 100; i++) {
        const void *d;
        size_t l;
        if (weft_results_get(r, i, &d, &l) == 0 && l == 8) sum += *(const int64_t *)d;
    }
    weft_results_destroy(r);
    sample_threads();
    return weft_ctx_set_output(ctx, &sum, sizeof sum);
}
WEFT_TASK_REGISTER(map_inside);

static void run_map_inside(weft_backend b, int w)
{
    int threads0 = check_count_threads();
    atomic_store(&max_threads, 0);
    weft_executor *ex = make_ex(b, w);
    REQUIRE(ex);
    int64_t bases[8];
    for (int i = 0; i < 8; i++) bases[i] = i * 1000;
    weft_results *r = NULL;
    weft_map_options mo = {0};
    mo.chunk_size = 1;
    CHECK_OK(weft_map(ex, map_inside, bases, sizeof bases[0], 8, &mo, &r));
    REQUIRE(r);
    for (int i = 0; i < 8; i++) {
        int64_t want = 0;
        for (int j = 0; j < 100; j++) want += (bases[i] + j) * (bases[i] + j);
        const void *d;
        size_t l;
        CHECK_OK(weft_results_get(r, (size_t)i, &d, &l));
        if (l == 8) CHECK_EQ_INT(*(const int64_t *)d, want);
    }
    weft_results_destroy(r);
    int nw = weft_executor_workers(ex);
    CHECK_OK(weft_executor_destroy(ex));
    int mt = atomic_load(&max_threads);
    CHECK_MSG(mt <= threads0 + (b == WEFT_BACKEND_SERIAL ? 0 : nw), "%d threads (baseline %d)", mt,
              threads0);
}

TEST(map_inside_task_1)
{
    run_map_inside(WEFT_BACKEND_THREADS, 1);
}
TEST(map_inside_task_2)
{
    run_map_inside(WEFT_BACKEND_THREADS, 2);
}
TEST(map_inside_task_serial)
{
    run_map_inside(WEFT_BACKEND_SERIAL, 1);
}

/* weft_wait and as_completed from inside a task also help */
static int wait_inside(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    weft_executor *ex = weft_ctx_executor(ctx);
    weft_future *fs[6];
    for (int64_t i = 0; i < 6; i++)
        if (weft_submit(ex, leaf, &i, sizeof i, &fs[i]) != 0) return WEFT_ETASK;
    size_t nd = 0;
    int n = weft_wait(fs, 6, WEFT_WAIT_ALL, WEFT_FOREVER, NULL, &nd) == 0 ? (int)nd : -1;
    weft_as_completed *it = NULL;
    int64_t sum = 0;
    if (weft_as_completed_create(fs, 6, &it) == 0) {
        weft_future *f;
        while (weft_as_completed_next(it, WEFT_FOREVER, &f, NULL) == 0) {
            const void *d;
            size_t l;
            if (weft_future_result(f, 0, &d, &l) == 0 && l == 8) sum += *(const int64_t *)d;
        }
        weft_as_completed_destroy(it);
    }
    for (int i = 0; i < 6; i++) weft_future_release(fs[i]);
    int64_t out[2] = {n, sum};
    return weft_ctx_set_output(ctx, out, sizeof out);
}
WEFT_TASK_REGISTER(wait_inside);

TEST(wait_inside_task_one_worker)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 1);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, wait_inside, NULL, 0, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, 60.0, &d, &len));
    if (len == 16) {
        CHECK_EQ_INT(((const int64_t *)d)[0], 6);
        CHECK_EQ_INT(((const int64_t *)d)[1], 3 * 15);
    } else {
        CHECK_EQ_INT(len, 16);
    }
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* a task waiting with a timeout inside a task times out instead of hanging */
static atomic_int hold, holder_started;
static int holder(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    atomic_store(&holder_started, 1);
    double end = check_now() + 20;
    while (!atomic_load(&hold) && check_now() < end) check_sleep(0.001);
    return 0;
}
WEFT_TASK_REGISTER(holder);

static int timed_waiter(weft_ctx *ctx, const void *in, size_t len)
{
    weft_future *g;
    memcpy(&g, in, sizeof g);
    (void)len;
    int rc = weft_future_wait(g, 0.05);
    return weft_ctx_set_output(ctx, &rc, sizeof rc);
}
WEFT_TASK_REGISTER(timed_waiter);

TEST(timeout_inside_task)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    atomic_store(&hold, 0);
    atomic_store(&holder_started, 0);
    weft_future *g, *w;
    REQUIRE_OK(weft_submit(ex, holder, NULL, 0, &g));
    REQUIRE(check_wait_atomic(&holder_started, 1, 10));
    REQUIRE_OK(weft_submit(ex, timed_waiter, &g, sizeof g, &w));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(w, 10.0, &d, &len));
    if (len == sizeof(int)) CHECK_EQ_INT(*(const int *)d, WEFT_ETIMEDOUT);
    atomic_store(&hold, 1);
    CHECK_OK(weft_future_result(g, 10.0, NULL, NULL));
    weft_future_release(g);
    weft_future_release(w);
    CHECK_OK(weft_executor_destroy(ex));
}

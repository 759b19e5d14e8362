/* stress_shutdown.c : shutdown (WAIT and CANCEL) with 100k tasks queued and
 * threads still submitting: nothing hangs, every future finishes; WAIT runs
 * everything, CANCEL runs or cancels each. Arguments: [workers] [scale]. */
// weft-test-timeout: 180
#include "check.h"

static atomic_long executed;

static int work(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t i;
    if (len != sizeof i) return WEFT_EINVAL;
    memcpy(&i, in, sizeof i);
    atomic_fetch_add(&executed, 1);
    volatile uint64_t x = i;
    for (int k = 0; k < 200; k++) x = x * 6364136223846793005ull + 1;
    uint64_t o = i ^ 0x5555;
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(work);

struct sub {
    weft_executor *ex;
    weft_future **fs;
    size_t cap, n;
    int closed, other;
    atomic_int *go;
};

static void *submit_loop(void *p)
{
    struct sub *s = p;
    while (!atomic_load(s->go)) check_sleep(0.0001);
    while (s->n < s->cap) {
        uint64_t v = s->n;
        weft_future *f = NULL;
        int rc = weft_submit(s->ex, work, &v, sizeof v, &f);
        if (rc == WEFT_ECLOSED) {
            s->closed = 1;
            break;
        }
        if (rc) {
            s->other++;
            break;
        }
        s->fs[s->n++] = f;
    }
    return NULL;
}

/* checks a future after shutdown; returns 1 if it ran, 0 if cancelled, -1 bad */
static int check_one(weft_future *f, uint64_t i, weft_shutdown_mode mode)
{
    if (!weft_future_done(f)) return -1;
    const void *d;
    size_t len;
    int rc = weft_future_result(f, 0, &d, &len);
    if (rc == WEFT_ECANCELLED) return mode == WEFT_SHUTDOWN_CANCEL ? 0 : -1;
    uint64_t want = i ^ 0x5555;
    return rc == 0 && len == 8 && memcmp(d, &want, 8) == 0 ? 1 : -1;
}

static void run(weft_shutdown_mode mode, int workers, size_t queued)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = workers;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    atomic_store(&executed, 0);
    weft_future **pre = malloc(queued * sizeof *pre);
    REQUIRE(pre);
    for (size_t i = 0; i < queued; i++) REQUIRE_OK(weft_submit(ex, work, &i, sizeof i, &pre[i]));
    enum {
        T = 3
    };
    struct sub s[T];
    pthread_t th[T];
    atomic_int go = 0;
    for (int k = 0; k < T; k++) {
        s[k] = (struct sub){ex, NULL, queued, 0, 0, 0, &go};
        s[k].fs = malloc(queued * sizeof(weft_future *));
        REQUIRE(s[k].fs);
        REQUIRE(pthread_create(&th[k], NULL, submit_loop, &s[k]) == 0);
    }
    atomic_store(&go, 1);
    check_sleep(0.02);
    double t0 = check_now();
    CHECK_OK(weft_executor_shutdown(ex, mode));
    double dt = check_now() - t0;
    for (int k = 0; k < T; k++) pthread_join(th[k], NULL);

    long ran = 0, cancelled = 0, bad = 0, total = (long)queued;
    for (size_t i = 0; i < queued; i++) {
        int r = check_one(pre[i], i, mode);
        if (r == 1)
            ran++;
        else if (r == 0)
            cancelled++;
        else if (bad++ < 5)
            CHECK_MSG(0, "queued future %zu wrong after shutdown", i);
        weft_future_release(pre[i]);
    }
    for (int k = 0; k < T; k++) {
        CHECK_EQ_INT(s[k].other, 0);
        CHECK(s[k].closed || s[k].n == s[k].cap);
        total += (long)s[k].n;
        for (size_t i = 0; i < s[k].n; i++) {
            int r = check_one(s[k].fs[i], i, mode);
            if (r == 1)
                ran++;
            else if (r == 0)
                cancelled++;
            else if (bad++ < 5)
                CHECK_MSG(0, "submitter %d future %zu wrong after shutdown", k, i);
            weft_future_release(s[k].fs[i]);
        }
        free(s[k].fs);
    }
    free(pre);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ran + cancelled, total);
    CHECK_EQ_INT(atomic_load(&executed), ran);
    if (mode == WEFT_SHUTDOWN_WAIT) CHECK_EQ_INT(cancelled, 0);
    printf("    %s: %ld submitted, %ld ran, %ld cancelled, shutdown took %.3f s\n",
           mode == WEFT_SHUTDOWN_WAIT ? "WAIT" : "CANCEL", total, ran, cancelled, dt);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(atomic_load(&executed), ran);
}

TEST(shutdown_wait)
{
    for (int round = 0; round < 2; round++)
        run(WEFT_SHUTDOWN_WAIT, check_arg_threads(0), check_scaled(100000, 1000));
}

TEST(shutdown_cancel)
{
    for (int round = 0; round < 3; round++)
        run(WEFT_SHUTDOWN_CANCEL, check_arg_threads(0), check_scaled(100000, 1000));
}

TEST(shutdown_cancel_one_worker)
{
    run(WEFT_SHUTDOWN_CANCEL, 1, check_scaled(50000, 1000));
}

/* destroy (implicit WAIT) while threads still submit */
TEST(destroy_with_work_queued)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = check_arg_threads(0);
    for (int round = 0; round < 3; round++) {
        weft_executor *ex = NULL;
        REQUIRE_OK(weft_executor_create(&o, &ex));
        atomic_store(&executed, 0);
        size_t n = check_scaled(50000, 1000);
        for (size_t i = 0; i < n; i++) {
            weft_future *f;
            REQUIRE_OK(weft_submit(ex, work, &i, sizeof i, &f));
            weft_future_release(f);
        }
        CHECK_OK(weft_executor_destroy(ex));
        CHECK_EQ_INT(atomic_load(&executed), n);
    }
}

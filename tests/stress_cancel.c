/* stress_cancel.c : random cancels while tasks run. Each future ends either
 * done with the right output or cancelled (never both, never run when
 * cancelled); callbacks run exactly once each. Arguments: [workers] [scale]. */
// weft-test-timeout: 180
#include "check.h"

static atomic_int executed;
static atomic_uchar *ran;       /* per index: times the task ran */
static atomic_uchar *cb_runs;   /* per index: times the callback ran */
static atomic_uchar *cancel_ok; /* per index: a cancel returned 0 */
static atomic_int cb_total;

static int work(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t i;
    if (len != sizeof i) return WEFT_EINVAL;
    memcpy(&i, in, sizeof i);
    atomic_fetch_add(&ran[i], 1);
    atomic_fetch_add(&executed, 1);
    /* a little work, so that queues build up */
    volatile uint64_t x = i;
    for (int k = 0; k < 300; k++) x = x * 6364136223846793005ull + 1;
    uint64_t o = i * 3 + 1;
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(work);

static void on_done(weft_future *f, void *arg)
{
    (void)f;
    uintptr_t i = (uintptr_t)arg;
    atomic_fetch_add(&cb_runs[i], 1);
    atomic_fetch_add(&cb_total, 1);
}

struct canceller {
    weft_future **fs;
    atomic_size_t *published;
    atomic_int *stop;
    uint64_t seed;
    size_t attempts, hits;
    int bad_rc;
};

static void *cancel_loop(void *p)
{
    struct canceller *c = p;
    weft_rng r;
    weft_rng_seed(&r, c->seed);
    while (!atomic_load(c->stop)) {
        size_t n = atomic_load(c->published);
        if (n == 0) continue;
        size_t i = (size_t)weft_rng_range(&r, 0, (int64_t)n - 1);
        int rc = weft_future_cancel(c->fs[i]);
        c->attempts++;
        if (rc == 0) {
            atomic_store(&cancel_ok[i], 1);
            c->hits++;
        } else if (rc != WEFT_EBUSY) {
            c->bad_rc++;
        }
    }
    return NULL;
}

static void run(int workers, size_t n)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = workers;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    weft_future **fs = calloc(n, sizeof *fs);
    ran = calloc(n, sizeof *ran);
    cb_runs = calloc(n, sizeof *cb_runs);
    cancel_ok = calloc(n, sizeof *cancel_ok);
    REQUIRE(fs && ran && cb_runs && cancel_ok);
    atomic_store(&executed, 0);
    atomic_store(&cb_total, 0);
    atomic_size_t published = 0;
    atomic_int stop = 0;
    enum {
        C = 2
    };
    struct canceller cs[C];
    pthread_t th[C];
    for (int k = 0; k < C; k++) {
        cs[k] = (struct canceller){fs, &published, &stop, 1234u + (uint64_t)k, 0, 0, 0};
        REQUIRE(pthread_create(&th[k], NULL, cancel_loop, &cs[k]) == 0);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t v = i;
        REQUIRE_OK(weft_submit(ex, work, &v, sizeof v, &fs[i]));
        CHECK_OK(weft_future_on_done(fs[i], on_done, (void *)(uintptr_t)i));
        atomic_store(&published, i + 1);
    }
    for (size_t i = 0; i < n; i++) CHECK_OK(weft_future_wait(fs[i], WEFT_FOREVER));
    atomic_store(&stop, 1);
    for (int k = 0; k < C; k++) pthread_join(th[k], NULL);
    /* callbacks may run just after waiters wake */
    double end = check_now() + 30;
    while ((size_t)atomic_load(&cb_total) < n && check_now() < end) check_sleep(0.001);

    size_t cancelled = 0, done = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        weft_future_state st = weft_future_state_get(fs[i]);
        const void *d;
        size_t len;
        int rc = weft_future_result(fs[i], 0, &d, &len);
        bool ok;
        if (st == WEFT_FUTURE_CANCELLED) {
            cancelled++;
            ok = rc == WEFT_ECANCELLED && atomic_load(&ran[i]) == 0 && atomic_load(&cancel_ok[i]);
        } else {
            done++;
            uint64_t want = i * 3 + 1;
            ok = st == WEFT_FUTURE_DONE && rc == 0 && len == 8 && memcmp(d, &want, 8) == 0 &&
                 atomic_load(&ran[i]) == 1 && !atomic_load(&cancel_ok[i]);
        }
        if (atomic_load(&cb_runs[i]) != 1) ok = false;
        if (!ok && bad++ < 5)
            CHECK_MSG(0, "future %zu: state %d rc %d ran %d cancel_ok %d callbacks %d", i, st, rc,
                      atomic_load(&ran[i]), atomic_load(&cancel_ok[i]), atomic_load(&cb_runs[i]));
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(atomic_load(&executed), n - cancelled);
    CHECK_EQ_INT(atomic_load(&cb_total), n);
    size_t attempts = 0, hits = 0;
    for (int k = 0; k < C; k++) {
        CHECK_EQ_INT(cs[k].bad_rc, 0);
        attempts += cs[k].attempts;
        hits += cs[k].hits;
    }
    printf("    %zu tasks: %zu done, %zu cancelled (%zu cancel calls, %zu returned 0)\n", n, done,
           cancelled, attempts, hits);
    CHECK_OK(weft_executor_destroy(ex));
    free(fs);
    free(ran);
    free(cb_runs);
    free(cancel_ok);
}

TEST(random_cancels)
{
    run(check_arg_threads(0), check_scaled(200000, 2000));
}
TEST(random_cancels_one_worker)
{
    run(1, check_scaled(50000, 1000));
}

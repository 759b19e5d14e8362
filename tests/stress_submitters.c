/* stress_submitters.c : 8 threads submitting at once (8 x 100k tasks), each
 * checking its own results. Arguments: [workers] [scale]. */
// weft-test-timeout: 180
#include "check.h"

enum {
    T = 8
};

static int tag(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t v[2];
    if (len != sizeof v) return weft_ctx_fail(ctx, WEFT_EINVAL, "len %zu", len);
    memcpy(v, in, sizeof v);
    uint64_t o = (v[0] << 32) ^ (v[1] * 31 + 7);
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(tag);

struct sub {
    weft_executor *ex;
    uint64_t id;
    size_t n;
    size_t bad, submitted;
    atomic_int *go;
};

static void *submitter(void *p)
{
    struct sub *s = p;
    weft_future **fs = malloc(s->n * sizeof *fs);
    if (!fs) {
        s->bad = s->n;
        return NULL;
    }
    while (!atomic_load(s->go)) {
    }
    for (size_t i = 0; i < s->n; i++) {
        uint64_t v[2] = {s->id, i};
        int rc = weft_submit(s->ex, tag, v, sizeof v, &fs[i]);
        if (rc) {
            CHECK_OK(rc);
            break;
        }
        s->submitted++;
        /* drain in waves so memory stays bounded and waits overlap submits */
        if ((i & 4095) == 4095) {
            size_t lo = i - 4095;
            for (size_t j = lo; j <= i; j++) {
                const void *d;
                size_t len;
                uint64_t want = (s->id << 32) ^ ((uint64_t)j * 31 + 7);
                if (weft_future_result(fs[j], WEFT_FOREVER, &d, &len) != 0 || len != 8 ||
                    memcmp(d, &want, 8) != 0)
                    s->bad++;
                weft_future_release(fs[j]);
                fs[j] = NULL;
            }
        }
    }
    for (size_t j = 0; j < s->submitted; j++) {
        if (!fs[j]) continue;
        const void *d;
        size_t len;
        uint64_t want = (s->id << 32) ^ ((uint64_t)j * 31 + 7);
        if (weft_future_result(fs[j], WEFT_FOREVER, &d, &len) != 0 || len != 8 ||
            memcmp(d, &want, 8) != 0)
            s->bad++;
        weft_future_release(fs[j]);
    }
    free(fs);
    return NULL;
}

static void run(int workers, size_t per)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = workers;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    struct sub s[T];
    pthread_t th[T];
    atomic_int go = 0;
    for (int i = 0; i < T; i++) {
        s[i] = (struct sub){ex, (uint64_t)i + 1, per, 0, 0, &go};
        REQUIRE(pthread_create(&th[i], NULL, submitter, &s[i]) == 0);
    }
    double t0 = check_now();
    atomic_store(&go, 1);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    double dt = check_now() - t0;
    size_t total = 0;
    for (int i = 0; i < T; i++) {
        CHECK_EQ_INT(s[i].submitted, per);
        CHECK_EQ_INT(s[i].bad, 0);
        total += s[i].submitted;
    }
    printf("    %d workers, %d submitters: %zu tasks in %.2f s (%.0f tasks/s)\n",
           weft_executor_workers(ex), T, total, dt, (double)total / dt);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(eight_submitters)
{
    run(check_arg_threads(0), check_scaled(100000, 500));
}
TEST(eight_submitters_one_worker)
{
    run(1, check_scaled(25000, 200));
}

/* test_tasks.c : task registration and the task context (weft_ctx_*). */
#define CHECK_CUSTOM_MAIN /* main() below calls weft_init: the processes case needs it */
#include "check.h"
#include "check_exec.h"

/* ---- registered tasks ---- */

static int echo(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(echo);

static int square_named(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != sizeof(int64_t)) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad size %zu", len);
    int64_t v;
    memcpy(&v, in, sizeof v);
    v *= v;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER_AS(square_named, "lib.square");

static int never_registered(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}

static int other_fn(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 1;
}

static int dyn_fn(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 2;
}

/* two functions registered statically under one name: the name is ambiguous */
static int clash_a(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}
WEFT_TASK_REGISTER_AS(clash_a, "clash.name");
static int clash_b(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 1;
}
WEFT_TASK_REGISTER_AS(clash_b, "clash.name");

TEST(register_static_clash)
{
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_ERR(weft_task_lookup("clash.name", &fn), WEFT_EEXIST);
    CHECK(fn == NULL);
    /* the clash does not stop executors from being created */
    weft_executor *ex = NULL;
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 1;
    CHECK_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_executor_destroy(ex));
    /* a backend that finds tasks by name refuses either function at
     * submit, never later in a worker */
    o.backend = WEFT_BACKEND_PROCESSES;
    CHECK_OK(weft_executor_create(&o, &ex));
    weft_future *f = NULL;
    CHECK_ERR(weft_submit(ex, clash_a, NULL, 0, &f), WEFT_EEXIST);
    CHECK(strstr(weft_last_error(), "clash.name") != NULL);
    CHECK_ERR(weft_submit(ex, clash_b, NULL, 0, &f), WEFT_ENOTREG);
    CHECK(f == NULL);
    CHECK_OK(weft_executor_destroy(ex));
    /* other names are unaffected */
    CHECK_OK(weft_task_lookup("echo", &fn));
}

TEST(register_macro)
{
    weft_task_fn fn = NULL;
    CHECK_OK(weft_task_lookup("echo", &fn));
    CHECK(fn == echo);
    CHECK_EQ_STR(weft_task_name(echo), "echo");
}

TEST(register_as_macro)
{
    weft_task_fn fn = NULL;
    CHECK_OK(weft_task_lookup("lib.square", &fn));
    CHECK(fn == square_named);
    CHECK_EQ_STR(weft_task_name(square_named), "lib.square");
    /* registered under its chosen name only */
    fn = (weft_task_fn)1;
    CHECK_ERR(weft_task_lookup("square_named", &fn), WEFT_ENOENT);
    CHECK(fn == NULL);
}

TEST(register_dynamic)
{
    char name[64];
    snprintf(name, sizeof name, "dyn.task.%d", 7);
    CHECK_OK(weft_task_register(name, dyn_fn));
    /* the name is copied */
    memset(name, 'x', 10);
    weft_task_fn fn = NULL;
    CHECK_OK(weft_task_lookup("dyn.task.7", &fn));
    CHECK(fn == dyn_fn);
    const char *n = weft_task_name(dyn_fn);
    CHECK_EQ_STR(n, "dyn.task.7");
    /* the same pair again is a no-op */
    CHECK_OK(weft_task_register("dyn.task.7", dyn_fn));
    CHECK(weft_task_name(dyn_fn) == n || strcmp(weft_task_name(dyn_fn), "dyn.task.7") == 0);
}

TEST(register_duplicate_name)
{
    /* the name "echo" is held by echo */
    CHECK_ERR(weft_task_register("echo", other_fn), WEFT_EEXIST);
    weft_task_fn fn = NULL;
    CHECK_OK(weft_task_lookup("echo", &fn));
    CHECK(fn == echo);
    CHECK(weft_task_name(other_fn) == NULL);
}

TEST(register_function_twice_under_other_name)
{
    CHECK_ERR(weft_task_register("echo.again", echo), WEFT_EEXIST);
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_RC(weft_task_lookup("echo.again", &fn), WEFT_ENOENT);
    CHECK_EQ_STR(weft_task_name(echo), "echo");
}

TEST(register_bad_args)
{
    CHECK_ERR(weft_task_register(NULL, other_fn), WEFT_EINVAL);
    CHECK_ERR(weft_task_register("", other_fn), WEFT_EINVAL);
    CHECK_ERR(weft_task_register("null.fn", NULL), WEFT_EINVAL);
    weft_task_fn fn;
    CHECK_ERR(weft_task_lookup(NULL, &fn), WEFT_EINVAL);
    CHECK_ERR(weft_task_lookup("echo", NULL), WEFT_EINVAL);
    CHECK(weft_task_name(NULL) == NULL);
}

TEST(unregistered_name_is_null)
{
    CHECK(weft_task_name(never_registered) == NULL);
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_ERR(weft_task_lookup("never_registered", &fn), WEFT_ENOENT);
    CHECK(fn == NULL);
}

/* Registration from many threads at once: every name lands exactly once. */
static int t0(weft_ctx *c, const void *i, size_t l)
{
    (void)c, (void)i, (void)l;
    return 0;
}
static int t1(weft_ctx *c, const void *i, size_t l)
{
    (void)c, (void)i, (void)l;
    return 0;
}
static int t2(weft_ctx *c, const void *i, size_t l)
{
    (void)c, (void)i, (void)l;
    return 0;
}
static int t3(weft_ctx *c, const void *i, size_t l)
{
    (void)c, (void)i, (void)l;
    return 0;
}
static weft_task_fn race_fns[4] = {t0, t1, t2, t3};
static atomic_int race_ok, race_exist;

static void *race_register(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        int rc = weft_task_register("race.name", race_fns[i]);
        if (rc == 0)
            atomic_fetch_add(&race_ok, 1);
        else if (rc == WEFT_EEXIST)
            atomic_fetch_add(&race_exist, 1);
        else
            CHECK_MSG(0, "unexpected rc %d", rc);
    }
    return NULL;
}

TEST(register_concurrent)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++) REQUIRE(pthread_create(&th[i], NULL, race_register, NULL) == 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    weft_task_fn fn = NULL;
    CHECK_OK(weft_task_lookup("race.name", &fn));
    int owners = 0;
    for (int i = 0; i < 4; i++)
        if (weft_task_name(race_fns[i]) != NULL) {
            owners++;
            CHECK(fn == race_fns[i]);
            CHECK_EQ_STR(weft_task_name(race_fns[i]), "race.name");
        }
    CHECK_EQ_INT(owners, 1);
    /* 4 threads succeed with the owner (same pair again is a no-op); 12 clash */
    CHECK_EQ_INT(atomic_load(&race_ok), 4);
    CHECK_EQ_INT(atomic_load(&race_exist), 12);
}

/* ---- context ---- */

static int ctx_output_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    char *a = weft_ctx_output(ctx, 100);
    if (!a) return WEFT_ENOMEM;
    memset(a, 'a', 100);
    /* replaced by a later output */
    char *b = weft_ctx_output(ctx, 5);
    if (!b) return WEFT_ENOMEM;
    memcpy(b, "hello", 5);
    return 0;
}
WEFT_TASK_REGISTER(ctx_output_task);

static int ctx_output_zero(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    void *p = weft_ctx_output(ctx, 0);
    return p ? 0 : weft_ctx_fail(ctx, WEFT_ETASK, "weft_ctx_output(ctx, 0) returned NULL");
}
WEFT_TASK_REGISTER(ctx_output_zero);

static int ctx_set_output_checks(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    int rc = weft_ctx_set_output(ctx, NULL, 5);
    if (rc != WEFT_EINVAL) return weft_ctx_fail(ctx, WEFT_ETASK, "set_output(NULL, 5) = %d", rc);
    rc = weft_ctx_set_output(ctx, NULL, 0);
    if (rc != 0) return weft_ctx_fail(ctx, WEFT_ETASK, "set_output(NULL, 0) = %d", rc);
    char buf[16] = "first";
    rc = weft_ctx_set_output(ctx, buf, 5);
    if (rc != 0) return rc;
    memcpy(buf, "XXXXX", 5); /* copied: changing buf does not change the output */
    rc = weft_ctx_set_output(ctx, "second!", 7); /* replaces */
    return rc;
}
WEFT_TASK_REGISTER(ctx_set_output_checks);

static int ctx_fail_task(weft_ctx *ctx, const void *in, size_t len)
{
    int which = len ? *(const int *)in : 0;
    if (which == 0) return weft_ctx_fail(ctx, WEFT_EPERM, "bad %s number %d", "item", 42);
    if (which == 1) {
        int rc = weft_ctx_fail(ctx, 0, "zero becomes ETASK");
        return rc == WEFT_ETASK ? rc : weft_ctx_fail(ctx, WEFT_EINVAL, "fail(0) returned %d", rc);
    }
    if (which == 2) return weft_ctx_fail(ctx, 5, "positive %d", 5);
    /* a long message */
    char big[3000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    return weft_ctx_fail(ctx, -4321, "%s", big);
}
WEFT_TASK_REGISTER(ctx_fail_task);

struct ctx_info {
    uint64_t seed, index;
    int worker, attempt;
    weft_executor *ex;
};

static int ctx_info_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    struct ctx_info info;
    memset(&info, 0, sizeof info);
    info.seed = weft_ctx_seed(ctx);
    info.index = weft_ctx_index(ctx);
    info.worker = weft_ctx_worker(ctx);
    info.attempt = weft_ctx_attempt(ctx);
    info.ex = weft_ctx_executor(ctx);
    return weft_ctx_set_output(ctx, &info, sizeof info);
}
WEFT_TASK_REGISTER(ctx_info_task);

static int get_output(weft_future *f, const void **data, size_t *len)
{
    return weft_future_result(f, WEFT_FOREVER, data, len);
}

static void run_output_tests(weft_backend b, int workers)
{
    weft_executor *ex = make_ex(b, workers);
    REQUIRE(ex != NULL);
    weft_future *f = NULL;
    const void *data;
    size_t len;

    REQUIRE_OK(weft_submit(ex, ctx_output_task, NULL, 0, &f));
    CHECK_OK(get_output(f, &data, &len));
    CHECK_EQ_INT(len, 5);
    CHECK(len == 5 && memcmp(data, "hello", 5) == 0);
    weft_future_release(f);

    REQUIRE_OK(weft_submit(ex, ctx_output_zero, NULL, 0, &f));
    CHECK_OK(get_output(f, &data, &len));
    CHECK_EQ_INT(len, 0);
    weft_future_release(f);

    REQUIRE_OK(weft_submit(ex, ctx_set_output_checks, NULL, 0, &f));
    CHECK_OK(get_output(f, &data, &len));
    if (weft_future_error(f)) printf("    task said: %s\n", weft_future_error(f));
    CHECK_EQ_INT(len, 7);
    CHECK(len == 7 && memcmp(data, "second!", 7) == 0);
    weft_future_release(f);

    /* no output at all: len 0 */
    REQUIRE_OK(weft_submit(ex, never_registered, NULL, 0, &f));
    len = 99;
    CHECK_OK(get_output(f, NULL, &len));
    CHECK_EQ_INT(len, 0);
    CHECK_OK(get_output(f, NULL, NULL));
    weft_future_release(f);

    /* echo of 64 KiB */
    size_t n = 65536;
    unsigned char *buf = malloc(n);
    REQUIRE(buf);
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 7 + 3);
    REQUIRE_OK(weft_submit(ex, echo, buf, n, &f));
    CHECK_OK(get_output(f, &data, &len));
    CHECK_EQ_INT(len, n);
    CHECK(len == n && memcmp(data, buf, n) == 0);
    weft_future_release(f);
    free(buf);

    CHECK_OK(weft_executor_destroy(ex));
}

TEST(ctx_output_threads)
{
    run_output_tests(WEFT_BACKEND_THREADS, 2);
}
TEST(ctx_output_serial)
{
    run_output_tests(WEFT_BACKEND_SERIAL, 0);
}

static void run_fail_tests(weft_backend b)
{
    weft_executor *ex = make_ex(b, 2);
    REQUIRE(ex != NULL);
    weft_future *f;
    int which;

    which = 0;
    REQUIRE_OK(weft_submit(ex, ctx_fail_task, &which, sizeof which, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_EPERM);
    CHECK_EQ_STR(weft_future_error(f), "bad item number 42");
    CHECK_EQ_INT(weft_future_state_get(f), WEFT_FUTURE_FAILED);
    weft_future_release(f);

    which = 1;
    REQUIRE_OK(weft_submit(ex, ctx_fail_task, &which, sizeof which, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ETASK);
    CHECK_EQ_STR(weft_future_error(f), "zero becomes ETASK");
    weft_future_release(f);

    which = 2;
    REQUIRE_OK(weft_submit(ex, ctx_fail_task, &which, sizeof which, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ETASK);
    CHECK_EQ_STR(weft_future_error(f), "positive 5");
    weft_future_release(f);

    which = 3;
    REQUIRE_OK(weft_submit(ex, ctx_fail_task, &which, sizeof which, &f));
    CHECK_RC(weft_future_result(f, WEFT_FOREVER, NULL, NULL), -4321);
    const char *m = weft_future_error(f);
    CHECK(m != NULL && strlen(m) > 100 && m[0] == 'm');
    weft_future_release(f);

    CHECK_OK(weft_executor_destroy(ex));
}

TEST(ctx_fail_threads)
{
    run_fail_tests(WEFT_BACKEND_THREADS);
}
TEST(ctx_fail_serial)
{
    run_fail_tests(WEFT_BACKEND_SERIAL);
}

static struct ctx_info submit_info(weft_executor *ex, const weft_submit_options *so)
{
    struct ctx_info info;
    memset(&info, 0xff, sizeof info);
    weft_future *f = NULL;
    int rc = weft_submit_ex(ex, ctx_info_task, NULL, 0, so, &f);
    CHECK_OK(rc);
    if (rc) return info;
    const void *data;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &data, &len));
    if (len == sizeof info)
        memcpy(&info, data, sizeof info);
    else
        CHECK_EQ_INT(len, sizeof info);
    weft_future_release(f);
    return info;
}

static void run_info_tests(weft_backend b, int workers)
{
    weft_executor *ex = make_ex(b, workers);
    REQUIRE(ex != NULL);
    int nw = weft_executor_workers(ex);
    CHECK_EQ_INT(nw, b == WEFT_BACKEND_SERIAL ? 1 : workers);

    /* index: the submission number, consecutive */
    struct ctx_info prev = submit_info(ex, NULL);
    CHECK(prev.ex == ex);
    CHECK_EQ_INT(prev.attempt, 0);
    CHECK(prev.worker >= 0 && prev.worker < nw);
    for (int i = 0; i < 20; i++) {
        struct ctx_info cur = submit_info(ex, NULL);
        CHECK_EQ_U64(cur.index, prev.index + 1);
        CHECK(cur.seed != prev.seed);
        CHECK(cur.worker >= 0 && cur.worker < nw);
        CHECK(cur.ex == ex);
        CHECK_EQ_INT(cur.attempt, 0);
        prev = cur;
    }

    /* has_index: chosen index, and the seed depends only on it */
    weft_submit_options so = {0};
    so.has_index = true;
    so.index = 1000;
    struct ctx_info a = submit_info(ex, &so);
    struct ctx_info a2 = submit_info(ex, &so);
    so.index = 1001;
    struct ctx_info c = submit_info(ex, &so);
    CHECK_EQ_U64(a.index, 1000);
    CHECK_EQ_U64(a2.index, 1000);
    CHECK_EQ_U64(c.index, 1001);
    CHECK_EQ_U64(a.seed, a2.seed);
    CHECK(a.seed != c.seed);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(ctx_info_threads)
{
    run_info_tests(WEFT_BACKEND_THREADS, 3);
}
TEST(ctx_info_serial)
{
    run_info_tests(WEFT_BACKEND_SERIAL, 0);
}

/* The seed is identical on every backend and worker count for one index. */
TEST(ctx_seed_same_across_backends)
{
    weft_submit_options so = {0};
    so.has_index = true;
    uint64_t seeds[3][5];
    weft_backend bs[3] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS, WEFT_BACKEND_THREADS};
    int ws[3] = {1, 1, 4};
    for (int k = 0; k < 3; k++) {
        weft_executor *ex = make_ex(bs[k], ws[k]);
        REQUIRE(ex);
        for (int i = 0; i < 5; i++) {
            so.index = (uint64_t)i * 17;
            seeds[k][i] = submit_info(ex, &so).seed;
        }
        CHECK_OK(weft_executor_destroy(ex));
    }
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_U64(seeds[0][i], seeds[1][i]);
        CHECK_EQ_U64(seeds[0][i], seeds[2][i]);
    }
    /* a different run seed gives different task seeds */
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    o.seed = 0x1234567;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    int same = 0;
    for (int i = 0; i < 5; i++) {
        so.index = (uint64_t)i * 17;
        if (submit_info(ex, &so).seed == seeds[0][i]) same++;
    }
    CHECK_EQ_INT(same, 0);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- worker state from the initializer ---- */

struct wstate {
    uint32_t magic;
    int worker;
    char input[16];
};

static int init_state(weft_ctx *ctx, const void *in, size_t len)
{
    struct wstate s;
    memset(&s, 0, sizeof s);
    s.magic = 0xfeedbeef;
    s.worker = weft_ctx_worker(ctx);
    if (len > sizeof s.input) len = sizeof s.input;
    if (len) memcpy(s.input, in, len);
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(init_state);

struct state_seen {
    int ok, worker, state_worker;
    size_t len;
    char input[16];
};

static int read_state(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    struct state_seen seen;
    memset(&seen, 0, sizeof seen);
    size_t sl = 12345;
    const struct wstate *s = weft_ctx_worker_state(ctx, &sl);
    seen.len = sl;
    seen.worker = weft_ctx_worker(ctx);
    if (s && sl == sizeof *s && s->magic == 0xfeedbeef) {
        seen.ok = 1;
        seen.state_worker = s->worker;
        memcpy(seen.input, s->input, sizeof seen.input);
    }
    check_sleep(0.001);
    return weft_ctx_set_output(ctx, &seen, sizeof seen);
}
WEFT_TASK_REGISTER(read_state);

TEST(ctx_worker_state_from_initializer)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 3;
    o.initializer = init_state;
    char init_in[8] = "cfg-123";
    o.init_input = init_in;
    o.init_len = sizeof init_in;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    memset(init_in, 'Z', sizeof init_in); /* copied at creation */
    enum {
        N = 60
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, read_state, NULL, 0, &fs[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, &len));
        struct state_seen seen;
        REQUIRE(len == sizeof seen);
        memcpy(&seen, d, sizeof seen);
        CHECK_EQ_INT(seen.len, sizeof(struct wstate));
        CHECK(seen.ok);
        CHECK_EQ_STR(seen.input, "cfg-123");
        CHECK_MSG(seen.state_worker == seen.worker,
                  "state made by worker %d (weft_ctx_worker in initializer) read on worker %d",
                  seen.state_worker, seen.worker);
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(ctx_worker_state_none)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, read_state, NULL, 0, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    struct state_seen seen;
    REQUIRE(len == sizeof seen);
    memcpy(&seen, d, sizeof seen);
    CHECK_EQ_INT(seen.ok, 0);
    CHECK_EQ_INT(seen.len, 0);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(ctx_worker_state_serial)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_SERIAL;
    o.initializer = init_state;
    o.init_input = "ser";
    o.init_len = 4;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, read_state, NULL, 0, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    struct state_seen seen;
    REQUIRE(len == sizeof seen);
    memcpy(&seen, d, sizeof seen);
    CHECK(seen.ok);
    CHECK_EQ_INT(seen.worker, 0);
    CHECK_EQ_STR(seen.input, "ser");
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

int main(int argc, char **argv)
{
    /* before any thread (TSan's runtime starts one): the processes
     * backend forks its workers from a server started here */
    if (weft_init(&argc, &argv) != 0) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    return check_main(argc, argv);
}

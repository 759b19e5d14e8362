/* test_mpi.c : the mpi backend -- the executor API on worker ranks.
 *
 * Run plainly (the `unit` entry), it checks what a program not launched by
 * mpirun gets: WEFT_ENOTSUP with a message showing how to launch; every
 * other test SKIPs there. tests/CMakeLists.txt also runs it under
 * `mpirun -n 3` and `mpirun -n 5` (label mpi), where rank 0 runs the tests
 * and ranks 1.. are the workers, and once with `--crash` to check that a
 * task which kills its rank is named on stderr before the job ends.
 *
 * Sanitizers: Open MPI under ASan/TSan reports its own leaks and races, so
 * the asan and tsan phases of scripts/run-tests.sh build without MPI (the
 * stub is then what they test); the plain phase runs all of this.
 *
 * Graphs (issue 6): graph_compute_on_mpi computes a reduction tree and a
 * diamond on the worker ranks.
 *
 * Hybrid ranks (issue 18): hybrid_* check that one rank of 2 threads runs
 * two long tasks at once (a task waits for a second one beside it on its
 * rank; test_mpi_hybrid_n2 runs that under `WEFT_MPI_THREADS=2 mpirun -n
 * 2`); ranks_x_processes_* run items in the ranks' worker processes,
 * where a map of 10k items with one segfault gives 1 error and 9,999
 * results and the job goes on.
 *
 * Waiting costs no core: idle_ranks_and_dispatcher_sleep and
 * hybrid_rank_leaves_the_cores_to_its_threads read the CPU time of the
 * ranks' threads (/proc/<pid>/task/<tid>/schedstat: the ranks run on this
 * machine) while they are idle and while long tasks run.
 * weft-test-timeout: 300 */
#define CHECK_CUSTOM_MAIN
#include "check.h"
#include "check_exec.h"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>

#include "backends/mpi/mpi_internal.h" /* the fault-injection hook */
/* weft_wait's count of finished futures, or its error code */
static long wait_count(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout,
                       bool *done)
{
    size_t nd = 0;
    int rc = weft_wait(fs, n, mode, timeout, done, &nd);
    return rc ? rc : (long)nd;
}

#define WEFT_ERANGE_TEST (-ERANGE)

static bool under_mpi;
static int nworkers; /* worker ranks of the job */

#define NEED_MPI()                                                          \
    do {                                                                    \
        if (!under_mpi) SKIP("not launched by mpirun (see the mpi label)"); \
    } while (0)

/* ---- tasks ---- */

static int square(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != sizeof(int64_t)) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    int64_t x;
    memcpy(&x, in, sizeof x);
    x *= x;
    return weft_ctx_set_output(ctx, &x, sizeof x);
}
WEFT_TASK_REGISTER(square);

static int not_registered(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}

/* output: worker id, index, seed, attempt */
typedef struct who {
    int32_t worker, attempt;
    uint64_t index, seed;
} who;

static int who_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    who w = {weft_ctx_worker(ctx), weft_ctx_attempt(ctx), weft_ctx_index(ctx), weft_ctx_seed(ctx)};
    return weft_ctx_set_output(ctx, &w, sizeof w);
}
WEFT_TASK_REGISTER(who_task);

/* uint32 in -> uint64 2x out; fails on multiples of 1000 when asked */
static int twice(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    memcpy(&x, in, sizeof x);
    uint64_t y = 2ull * x;
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(twice);

static int fail_some(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t x;
    memcpy(&x, in, sizeof x);
    (void)len;
    if (x % 100 == 7) return weft_ctx_fail(ctx, WEFT_ERANGE_TEST, "item %u is bad", x);
    return weft_ctx_set_output(ctx, &x, sizeof x);
}

static int sleep_ms(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t ms = 0;
    if (len >= sizeof ms) memcpy(&ms, in, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    int32_t w = weft_ctx_worker(ctx);
    return weft_ctx_set_output(ctx, &w, sizeof w);
}
WEFT_TASK_REGISTER(sleep_ms);

/* output: input bytes each + 1 (large payloads both ways) */
static int echo_plus(weft_ctx *ctx, const void *in, size_t len)
{
    unsigned char *o = weft_ctx_output(ctx, len);
    if (!o && len) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output buffer");
    const unsigned char *i = in;
    for (size_t k = 0; k < len; k++) o[k] = (unsigned char)(i[k] + 1);
    return 0;
}
WEFT_TASK_REGISTER(echo_plus);

static int flaky(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    if (weft_ctx_attempt(ctx) < 2)
        return weft_ctx_fail(ctx, WEFT_ETASK, "attempt %d fails", weft_ctx_attempt(ctx));
    int32_t a = weft_ctx_attempt(ctx);
    return weft_ctx_set_output(ctx, &a, sizeof a);
}
WEFT_TASK_REGISTER(flaky);

/* initializer: state = input value * 1000 + worker */
static int init_state(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t base = 0;
    if (len == sizeof base) memcpy(&base, in, sizeof base);
    int64_t st = base * 1000 + weft_ctx_worker(ctx);
    return weft_ctx_set_output(ctx, &st, sizeof st);
}
WEFT_TASK_REGISTER(init_state);

static int init_fails(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    if (weft_ctx_worker(ctx) == 0) return weft_ctx_fail(ctx, WEFT_EINVAL, "no state for worker 0");
    return 0;
}
WEFT_TASK_REGISTER(init_fails);

static int read_state(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    size_t sl;
    const void *s = weft_ctx_worker_state(ctx, &sl);
    int64_t out[2] = {-1, weft_ctx_worker(ctx)};
    if (s && sl == sizeof(int64_t)) memcpy(&out[0], s, sizeof(int64_t));
    return weft_ctx_set_output(ctx, out, sizeof out);
}
WEFT_TASK_REGISTER(read_state);

static int crash_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    if (weft_ctx_index(ctx) == 7) {
        static volatile uintptr_t bad = 8;
        *(volatile int *)bad = 1;
    }
    return 0;
}
WEFT_TASK_REGISTER(crash_task);

WEFT_TASK_REGISTER(fail_some);

/* graph tasks */
static int64_t arg64(const void *in, size_t len, size_t i)
{
    const void *d;
    size_t l;
    int64_t v = 0;
    if (weft_args_get(in, len, i, &d, &l) == 0 && l == sizeof v) memcpy(&v, d, sizeof v);
    return v;
}

static int g_leaf(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v = arg64(in, len, 0);
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(g_leaf);

static int g_add(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v = arg64(in, len, 0) + arg64(in, len, 1);
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(g_add);

/* Arms the fault hook of the worker rank it runs on: {site, skip, count}. */
static int arm_fault(weft_ctx *ctx, const void *in, size_t len)
{
    int32_t a[3];
    if (len != sizeof a) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    memcpy(a, in, sizeof a);
    weft__mpi_fault_arm((weft__mpi_fault_site)a[0], a[1], a[2]);
    return 0;
}
WEFT_TASK_REGISTER(arm_fault);

/* uint32 x in -> 32 bytes out: x, then 7 * x (answers bigger than a piece) */
static int wide(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t x;
    if (len < sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    memcpy(&x, in, sizeof x);
    uint32_t o[8] = {x, 7 * x, 7 * x, 7 * x, 7 * x, 7 * x, 7 * x, 7 * x};
    return weft_ctx_set_output(ctx, o, sizeof o);
}
WEFT_TASK_REGISTER(wide);

static weft_executor *make(int workers)
{
    weft_executor *ex = check_executor(WEFT_BACKEND_MPI, workers, NULL);
    REQUIRE(ex);
    return ex;
}

/* ---- outside mpirun ---- */

TEST(not_launched_is_enotsup_with_how_to)
{
    if (under_mpi) SKIP("launched by mpirun");
    if (!weft_backend_available(WEFT_BACKEND_MPI)) {
        weft_options o = {.backend = WEFT_BACKEND_MPI};
        weft_executor *ex;
        CHECK_ERR(weft_executor_create(&o, &ex), WEFT_ENOTSUP);
        SKIP("this build has no MPI");
    }
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_ENOTSUP);
    CHECK(ex == NULL);
    CHECK(strstr(weft_last_error(), "mpirun -n 3") != NULL);
    CHECK(strstr(weft_last_error(), "--oversubscribe") != NULL);
    CHECK_OK(weft_finalize()); /* a no-op here */
}

/* ---- under mpirun ---- */

TEST(graph_compute_on_mpi)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    weft_graph *g = NULL;
    REQUIRE(weft_graph_create(NULL, &g) == 0);
    enum {
        LEAVES = 1024
    };
    static weft_node level[LEAVES];
    for (int64_t k = 0; k < LEAVES; k++) {
        weft_arg a = weft_arg_bytes(&k, sizeof k);
        CHECK_OK(weft_graph_call(g, g_leaf, &a, 1, &level[k]));
    }
    weft_node leaf0 = level[0];
    for (int n = LEAVES; n > 1; n /= 2)
        for (int i = 0; i < n / 2; i++) {
            weft_arg a[2] = {weft_arg_node(level[2 * i]), weft_arg_node(level[2 * i + 1])};
            CHECK_OK(weft_graph_call(g, g_add, a, 2, &level[i]));
        }
    /* a diamond on top: root + root, and the root reused by a second node */
    weft_arg d2[2] = {weft_arg_node(level[0]), weft_arg_node(level[0])};
    weft_node twice, plus0;
    CHECK_OK(weft_graph_call(g, g_add, d2, 2, &twice));
    weft_arg d3[2] = {weft_arg_node(level[0]), weft_arg_node(leaf0)};
    CHECK_OK(weft_graph_call(g, g_add, d3, 2, &plus0));
    weft_node targets[2] = {twice, plus0};
    CHECK_OK(weft_graph_compute(g, ex, targets, 2, NULL));
    int64_t total = (int64_t)LEAVES * (LEAVES - 1) / 2, v = 0;
    const void *d;
    size_t n;
    CHECK_OK(weft_graph_result(g, twice, &d, &n));
    if (n == sizeof v) memcpy(&v, d, sizeof v);
    CHECK_EQ_U64((uint64_t)v, (uint64_t)(2 * total));
    CHECK_OK(weft_graph_result(g, plus0, &d, &n));
    if (n == sizeof v) memcpy(&v, d, sizeof v);
    CHECK_EQ_U64((uint64_t)v, (uint64_t)total);
    weft_graph_destroy(g);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(workers_are_the_worker_ranks)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    CHECK_EQ_INT(weft_executor_workers(ex), nworkers);
    CHECK(weft_executor_backend(ex) == WEFT_BACKEND_MPI);
    CHECK_OK(weft_executor_destroy(ex));
    weft_options o = {.backend = WEFT_BACKEND_MPI, .workers = nworkers + 1};
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    o.workers = -1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
}

TEST(submit_result)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        N = 200
    };
    weft_future *fs[N];
    for (int64_t i = 0; i < N; i++) CHECK_OK(weft_submit(ex, square, &i, sizeof i, &fs[i]));
    for (int64_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, &len));
        CHECK_EQ_U64(len, sizeof(int64_t));
        int64_t y;
        memcpy(&y, d, sizeof y);
        CHECK(y == i * i);
        weft_future_release(fs[i]);
    }
    /* a task error comes back with its message */
    weft_future *f;
    CHECK_OK(weft_submit(ex, square, "abc", 3, &f));
    CHECK_ERR(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_EINVAL);
    CHECK(weft_future_error(f) && strstr(weft_future_error(f), "bad length 3"));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(context_matches_threads)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    weft_options so = {.backend = WEFT_BACKEND_SERIAL};
    weft_executor *ser;
    REQUIRE_OK(weft_executor_create(&so, &ser));
    enum {
        N = 64
    };
    weft_future *fm[N], *fs[N];
    for (int i = 0; i < N; i++) {
        CHECK_OK(weft_submit(ex, who_task, NULL, 0, &fm[i]));
        CHECK_OK(weft_submit(ser, who_task, NULL, 0, &fs[i]));
    }
    bool seen[64] = {0};
    for (int i = 0; i < N; i++) {
        const void *a, *b;
        CHECK_OK(weft_future_result(fm[i], WEFT_FOREVER, &a, NULL));
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &b, NULL));
        who wa, wb;
        memcpy(&wa, a, sizeof wa);
        memcpy(&wb, b, sizeof wb);
        CHECK_EQ_U64(wa.index, (uint64_t)i);
        CHECK_EQ_U64(wa.seed, wb.seed); /* same seeds on every backend */
        CHECK(wa.worker >= 0 && wa.worker < nworkers);
        if (wa.worker >= 0 && wa.worker < 64) seen[wa.worker] = true;
        weft_future_release(fm[i]);
        weft_future_release(fs[i]);
    }
    CHECK(seen[0]);
    weft_executor_destroy(ser);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(unregistered_function_refused_at_submit)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, not_registered, NULL, 0, &f), WEFT_ENOTREG);
    CHECK(f == NULL);
    CHECK(strstr(weft_last_error(), "not registered") != NULL);
    uint32_t items[4] = {1, 2, 3, 4};
    weft_results *r = NULL;
    CHECK_ERR(weft_map(ex, not_registered, items, sizeof items[0], 4, NULL, &r), WEFT_ENOTREG);
    CHECK(r == NULL);
    CHECK_OK(weft_executor_destroy(ex));
    weft_options o = {.backend = WEFT_BACKEND_MPI, .initializer = not_registered};
    weft_executor *e2 = NULL;
    CHECK_ERR(weft_executor_create(&o, &e2), WEFT_ENOTREG);
    CHECK(e2 == NULL);
}

TEST(retries_rerun_on_the_worker)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    weft_submit_options so = {.retries = 2};
    weft_future *f;
    CHECK_OK(weft_submit_ex(ex, flaky, NULL, 0, &so, &f));
    const void *d;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, NULL));
    int32_t a;
    memcpy(&a, d, sizeof a);
    CHECK_EQ_INT(a, 2);
    weft_future_release(f);
    CHECK_OK(weft_submit(ex, flaky, NULL, 0, &f));
    CHECK_ERR(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ETASK);
    CHECK(strstr(weft_future_error(f), "attempt 0 fails") != NULL);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(map_in_order_and_errors)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        N = 20000
    };
    uint32_t *items = malloc(N * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < N; i++) items[i] = i;
    weft_results *r = NULL;
    CHECK_OK(weft_map(ex, twice, items, sizeof items[0], N, NULL, &r));
    REQUIRE(r);
    CHECK_EQ_U64(weft_results_count(r), N);
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        if (weft_results_get(r, i, &d, &len) != 0 || len != 8) {
            CHECK_MSG(false, "item %zu", i);
            break;
        }
        uint64_t y;
        memcpy(&y, d, sizeof y);
        if (y != 2ull * i) {
            CHECK_MSG(false, "item %zu = %llu", i, (unsigned long long)y);
            break;
        }
    }
    weft_results_destroy(r);

    /* errors: every item with x % 100 == 7 fails; the rest have results */
    CHECK_ERR(weft_map(ex, fail_some, items, sizeof items[0], 1000, NULL, &r), WEFT_ERANGE_TEST);
    REQUIRE(r);
    CHECK_EQ_U64(weft_results_failed(r), 10);
    CHECK_ERR(weft_results_get(r, 7, NULL, NULL), WEFT_ERANGE_TEST);
    CHECK(weft_results_error(r, 7) && strstr(weft_results_error(r, 7), "item 7 is bad"));
    CHECK_OK(weft_results_get(r, 8, NULL, NULL));
    weft_results_destroy(r);

    /* stop on error: the error is reported, and not all later items ran */
    weft_map_options mo = {.flags = WEFT_MAP_STOP_ON_ERROR, .chunk_size = 10};
    CHECK_ERR(weft_map(ex, fail_some, items, sizeof items[0], N, &mo, &r), WEFT_ERANGE_TEST);
    REQUIRE(r);
    CHECK_ERR(weft_results_get(r, 7, NULL, NULL), WEFT_ERANGE_TEST);
    CHECK_ERR(weft_results_get(r, 8, NULL, NULL), WEFT_ECANCELLED); /* same chunk, after it */
    CHECK_ERR(weft_results_get(r, N - 1, NULL, NULL), WEFT_ECANCELLED);
    weft_results_destroy(r);
    free(items);
    CHECK_OK(weft_executor_destroy(ex));
}

typedef struct stream_st {
    uint32_t n, next_in;
    uint64_t sum;
    uint64_t delivered;
    bool in_order;
    uint64_t last;
} stream_st;

static int stream_next(void *arg, uint64_t index, weft_buf *item)
{
    stream_st *s = arg;
    if (index >= s->n) return 0;
    s->next_in = (uint32_t)index;
    item->data = &s->next_in;
    item->len = sizeof s->next_in;
    return 1;
}

static int stream_res(void *arg, uint64_t index, int err, const void *out, size_t len,
                      const char *msg)
{
    (void)msg;
    stream_st *s = arg;
    if (err || len != 8) return WEFT_ETASK;
    uint64_t y;
    memcpy(&y, out, sizeof y);
    s->sum += y;
    if (s->delivered && index != s->last + 1) s->in_order = false;
    s->last = index;
    s->delivered++;
    return 0;
}

TEST(map_stream_ordered_and_unordered)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    for (int unordered = 0; unordered < 2; unordered++) {
        stream_st s = {.n = 50000, .in_order = true};
        weft_map_options mo = {.on_result = stream_res,
                               .arg = &s,
                               .max_in_flight = 4096,
                               .flags = unordered ? WEFT_MAP_UNORDERED : 0};
        CHECK_OK(weft_map_stream(ex, twice, stream_next, &s, &mo, NULL));
        CHECK_EQ_U64(s.delivered, 50000);
        CHECK_EQ_U64(s.sum, 2ull * (49999ull * 50000ull / 2));
        if (!unordered) CHECK(s.in_order);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

/* weft_map_zip reads the graph's argument blocks on the worker ranks too;
 * a map deadline cancels what was not sent (issue 11, control 16) */
TEST(map_zip_and_deadline)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        NA = 300,
        NB = 260
    };
    int64_t a[NA], b[NB];
    for (int i = 0; i < NA; i++) a[i] = i;
    for (int i = 0; i < NB; i++) b[i] = 1000 * i;
    weft_map_input in[2] = {{a, sizeof a[0], NULL, NA}, {b, sizeof b[0], NULL, NB}};
    weft_results *r = NULL;
    CHECK_OK(weft_map_zip(ex, g_add, in, 2, NULL, &r));
    REQUIRE(r);
    CHECK_EQ_INT(weft_results_count(r), NB);
    int bad = 0;
    for (size_t i = 0; i < weft_results_count(r); i++) {
        const void *d;
        size_t l;
        int64_t v = -1;
        if (weft_results_get(r, i, &d, &l) == 0 && l == sizeof v) memcpy(&v, d, sizeof v);
        bad += v != (int64_t)(1001 * i);
    }
    CHECK_EQ_INT(bad, 0);
    weft_results_destroy(r);

    uint32_t ms[200];
    for (int i = 0; i < 200; i++) ms[i] = 20; /* 4 s of work over the ranks */
    weft_map_options mo = {.timeout = 0.2, .chunk_size = 1};
    r = NULL;
    CHECK_ERR(weft_map(ex, sleep_ms, ms, sizeof ms[0], 200, &mo, &r), WEFT_ETIMEDOUT);
    REQUIRE(r);
    size_t done = 0, cancelled = 0;
    for (size_t i = 0; i < 200; i++) {
        int rc = weft_results_get(r, i, NULL, NULL);
        done += rc == 0;
        cancelled += rc == WEFT_ECANCELLED;
    }
    CHECK_EQ_INT(done + cancelled, 200);
    CHECK(cancelled >= 1);
    weft_results_destroy(r);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(large_payloads_both_ways)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    size_t sizes[] = {0, 1, 100, 65535, 65536, 300000, 5u << 20};
    enum {
        K = sizeof sizes / sizeof sizes[0]
    };
    unsigned char *bufs[K];
    weft_future *fs[K];
    for (int k = 0; k < K; k++) {
        bufs[k] = malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++) bufs[k][i] = (unsigned char)(i * 7 + k);
        CHECK_OK(weft_submit(ex, echo_plus, bufs[k], sizes[k], &fs[k]));
    }
    for (int k = 0; k < K; k++) {
        const unsigned char *d;
        size_t len;
        CHECK_OK(weft_future_result(fs[k], WEFT_FOREVER, (const void **)&d, &len));
        CHECK_EQ_U64(len, sizes[k]);
        bool ok = true;
        for (size_t i = 0; i < len && ok; i++) ok = d[i] == (unsigned char)(i * 7 + k + 1);
        CHECK_MSG(ok, "payload %zu bytes differs", sizes[k]);
        weft_future_release(fs[k]);
    }
    /* the same through map_bufs, mixed sizes in one chunk */
    weft_buf in[K];
    for (int k = 0; k < K; k++) in[k] = (weft_buf){bufs[k], sizes[k]};
    weft_results *r;
    weft_map_options mo = {.chunk_size = K};
    CHECK_OK(weft_map_bufs(ex, echo_plus, in, K, &mo, &r));
    for (int k = 0; k < K; k++) {
        const unsigned char *d;
        size_t len;
        CHECK_OK(weft_results_get(r, (size_t)k, (const void **)&d, &len));
        CHECK_EQ_U64(len, sizes[k]);
        bool ok = true;
        for (size_t i = 0; i < len && ok; i++) ok = d[i] == (unsigned char)(i * 7 + k + 1);
        CHECK_MSG(ok, "map payload %zu bytes differs", sizes[k]);
    }
    weft_results_destroy(r);
    for (int k = 0; k < K; k++) free(bufs[k]);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(wait_as_completed_and_timeouts)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    uint32_t slow = 400, fast = 1;
    weft_future *fs[2];
    CHECK_OK(weft_submit(ex, sleep_ms, &slow, sizeof slow, &fs[0]));
    CHECK_OK(weft_submit(ex, sleep_ms, &fast, sizeof fast, &fs[1]));
    CHECK_ERR(weft_future_wait(fs[0], 0.02), WEFT_ETIMEDOUT);
    CHECK_ERR(weft_future_wait(fs[0], -1), WEFT_EINVAL);
    bool done[2];
    int n = wait_count(fs, 2, WEFT_WAIT_FIRST_COMPLETED, WEFT_FOREVER, done);
    CHECK(n >= 1);
    /* the fast task finishes first on its own rank; one worker rank
     * (mpirun -n 2) runs both in the order sent */
    bool two = nworkers >= 2;
    if (two) CHECK(done[1]);
    weft_as_completed *it;
    CHECK_OK(weft_as_completed_create(fs, 2, &it));
    weft_future *f;
    size_t idx;
    CHECK_OK(weft_as_completed_next(it, WEFT_FOREVER, &f, &idx));
    CHECK_EQ_U64(idx, two ? 1 : 0);
    CHECK_OK(weft_as_completed_next(it, WEFT_FOREVER, &f, &idx));
    CHECK_EQ_U64(idx, two ? 0 : 1);
    CHECK_ERR(weft_as_completed_next(it, 0, &f, &idx), WEFT_EOF);
    weft_as_completed_destroy(it);
    CHECK_EQ_INT(wait_count(fs, 2, WEFT_WAIT_ALL, 0, NULL), 2);
    weft_future_release(fs[0]);
    weft_future_release(fs[1]);
    CHECK_OK(weft_executor_destroy(ex));
}

static _Atomic int cb_count;
static void count_cb(weft_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add(&cb_count, *(int *)arg);
}

TEST(callbacks_run_once)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    atomic_store(&cb_count, 0);
    int one = 1;
    enum {
        N = 300
    };
    weft_future *fs[N];
    for (int64_t i = 0; i < N; i++) {
        CHECK_OK(weft_submit(ex, square, &i, sizeof i, &fs[i]));
        CHECK_OK(weft_future_on_done(fs[i], count_cb, &one));
    }
    CHECK_EQ_INT(wait_count(fs, N, WEFT_WAIT_ALL, WEFT_FOREVER, NULL), N);
    /* a wait returns once the futures are finished; their callbacks run on
     * the finishing thread and may still be running (docs/api.md) */
    for (int t = 0; t < 5000 && atomic_load(&cb_count) < N; t++) usleep(1000);
    CHECK_EQ_INT(atomic_load(&cb_count), N);
    /* added when done: at once, or just after the finishing thread leaves
     * the last earlier callback (a side effect seen is not a return) */
    CHECK_OK(weft_future_on_done(fs[0], count_cb, &one));
    for (int t = 0; t < 5000 && atomic_load(&cb_count) < N + 1; t++) usleep(1000);
    CHECK_EQ_INT(atomic_load(&cb_count), N + 1);
    usleep(2000);
    CHECK_EQ_INT(atomic_load(&cb_count), N + 1); /* exactly once */
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(cancel_unsent_tasks)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        N = 100
    };
    uint32_t ms = 20;
    weft_future *fs[N];
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, sleep_ms, &ms, sizeof ms, &fs[i]));
    while (!weft_future_running(fs[0]) && !weft_future_done(fs[0])) sched_yield();
    int cancelled = 0;
    for (int i = N - 1; i >= N / 2; i--)
        if (weft_future_cancel(fs[i]) == 0) cancelled++;
    CHECK(cancelled >= N / 4);
    CHECK_ERR(weft_future_cancel(fs[0]), WEFT_EBUSY); /* sent long ago */
    int ok = 0, canc = 0;
    for (int i = 0; i < N; i++) {
        int rc = weft_future_result(fs[i], WEFT_FOREVER, NULL, NULL);
        if (rc == 0) ok++;
        if (rc == WEFT_ECANCELLED) canc++;
        CHECK(rc == 0 || rc == WEFT_ECANCELLED);
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(canc, cancelled);
    CHECK_EQ_INT(ok + canc, N);
    /* shutdown(CANCEL) drops what is still queued */
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, sleep_ms, &ms, sizeof ms, &fs[i]));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
    canc = 0;
    for (int i = 0; i < N; i++) {
        CHECK(weft_future_done(fs[i]));
        if (weft_future_cancelled(fs[i])) canc++;
        weft_future_release(fs[i]);
    }
    CHECK(canc >= N / 2);
    weft_future *f;
    CHECK_ERR(weft_submit(ex, sleep_ms, &ms, sizeof ms, &f), WEFT_ECLOSED);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(initializer_state_per_rank)
{
    NEED_MPI();
    int64_t base = 42;
    weft_options o = {.backend = WEFT_BACKEND_MPI,
                      .initializer = init_state,
                      .init_input = &base,
                      .init_len = sizeof base};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    enum {
        N = 100
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, read_state, NULL, 0, &fs[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, NULL));
        int64_t v[2];
        memcpy(v, d, sizeof v);
        CHECK_EQ_U64((uint64_t)v[0], (uint64_t)(42 * 1000 + v[1]));
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
    /* an initializer failing on one rank fails the creation, with its message */
    weft_options bad = {.backend = WEFT_BACKEND_MPI, .initializer = init_fails};
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&bad, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    CHECK(strstr(weft_last_error(), "no state for worker 0") != NULL);
}

TEST(one_million_map_items_nothing_lost)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        N = 1000000
    };
    uint32_t *items = malloc(N * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < N; i++) items[i] = i;
    weft_results *r = NULL;
    double t0 = check_now();
    CHECK_OK(weft_map(ex, twice, items, sizeof items[0], N, NULL, &r));
    double dt = check_now() - t0;
    REQUIRE(r);
    uint64_t sum = 0, got = 0;
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        if (weft_results_get(r, i, &d, &len) == 0 && len == 8) {
            uint64_t y;
            memcpy(&y, d, sizeof y);
            sum += y;
            got++;
        }
    }
    CHECK_EQ_U64(got, N);
    CHECK_EQ_U64(sum, 2ull * ((uint64_t)N * (N - 1) / 2));
    printf("  1M items in %.3f s (%.0f ns/item)\n", dt, dt * 1e9 / N);
    weft_results_destroy(r);
    free(items);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(executors_one_after_another_and_side_by_side)
{
    NEED_MPI();
    for (int round = 0; round < 5; round++) {
        weft_executor *ex = make(round % 2 ? 1 : 0);
        int64_t x = round;
        weft_future *f;
        CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
        const void *d;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, NULL));
        int64_t y;
        memcpy(&y, d, sizeof y);
        CHECK(y == x * x);
        weft_future_release(f);
        CHECK_OK(weft_executor_destroy(ex));
    }
    /* two at once share the worker ranks; their results never mix */
    weft_executor *a = make(0), *b = make(0);
    enum {
        N = 2000
    };
    uint32_t *items = malloc(N * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < N; i++) items[i] = i;
    weft_future *fa[64], *fb[64];
    for (int64_t i = 0; i < 64; i++) {
        CHECK_OK(weft_submit(a, square, &i, sizeof i, &fa[i]));
        int64_t j = i + 1000;
        CHECK_OK(weft_submit(b, square, &j, sizeof j, &fb[i]));
    }
    weft_results *r;
    CHECK_OK(weft_map(b, twice, items, sizeof items[0], N, NULL, &r));
    CHECK_EQ_U64(weft_results_failed(r), 0);
    weft_results_destroy(r);
    for (int64_t i = 0; i < 64; i++) {
        const void *d;
        int64_t y;
        CHECK_OK(weft_future_result(fa[i], WEFT_FOREVER, &d, NULL));
        memcpy(&y, d, sizeof y);
        CHECK(y == i * i);
        CHECK_OK(weft_future_result(fb[i], WEFT_FOREVER, &d, NULL));
        memcpy(&y, d, sizeof y);
        CHECK(y == (i + 1000) * (i + 1000));
        weft_future_release(fa[i]);
        weft_future_release(fb[i]);
    }
    free(items);
    CHECK_OK(weft_executor_destroy(a));
    CHECK_OK(weft_executor_destroy(b));
    /* weft_finalize refuses while an executor lives */
    weft_executor *c = make(0);
    CHECK_ERR(weft_finalize(), WEFT_EBUSY);
    CHECK_OK(weft_executor_destroy(c));
}

TEST(workers_option_uses_the_first_ranks)
{
    NEED_MPI();
    weft_executor *ex = make(1);
    CHECK_EQ_INT(weft_executor_workers(ex), 1);
    enum {
        N = 50
    };
    weft_future *fs[N];
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, who_task, NULL, 0, &fs[i]));
    for (int i = 0; i < N; i++) {
        const void *d;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, NULL));
        who w;
        memcpy(&w, d, sizeof w);
        CHECK_EQ_INT(w.worker, 0);
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(load_balance_uses_every_rank)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        N = 40
    };
    uint32_t ms = 10;
    weft_future *fs[N];
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, sleep_ms, &ms, sizeof ms, &fs[i]));
    int per[64] = {0};
    for (int i = 0; i < N; i++) {
        const void *d;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, NULL));
        int32_t w;
        memcpy(&w, d, sizeof w);
        if (w >= 0 && w < 64) per[w]++;
        weft_future_release(fs[i]);
    }
    for (int w = 0; w < nworkers && w < 64; w++)
        CHECK_MSG(per[w] > 0, "rank %d ran nothing", w + 1);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(hybrid_threads_per_rank)
{
    NEED_MPI();
    weft_options o = {.backend = WEFT_BACKEND_MPI, .mpi.threads = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_workers(ex), 2 * nworkers); /* ranks x threads */
    enum {
        N = 5000
    };
    uint32_t *items = malloc(N * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < N; i++) items[i] = i;
    weft_results *r;
    CHECK_OK(weft_map(ex, twice, items, sizeof items[0], N, NULL, &r));
    uint64_t sum = 0;
    for (size_t i = 0; i < N; i++) {
        const void *d;
        if (weft_results_get(r, i, &d, NULL) == 0) {
            uint64_t y;
            memcpy(&y, d, sizeof y);
            sum += y;
        }
    }
    CHECK_EQ_U64(sum, 2ull * ((uint64_t)N * (N - 1) / 2));
    weft_results_destroy(r);
    free(items);
    o.mpi.threads = 2000;
    weft_executor *bad;
    CHECK_ERR(weft_executor_create(&o, &bad), WEFT_EINVAL);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- hybrid ranks: every local worker busy, whatever the task length ---- */

/* On a worker rank: how many pair_task run at once, and the most seen. */
static _Atomic int pair_running, pair_peak, pair_gave_up;

/* Holds until a second task runs beside it on the same rank (a rank that
 * runs one task at a time never gets there: then it gives up after 10 s and
 * the peak stays 1), then 5 ms more, so the dispatcher sees long tasks. */
static int pair_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    int now = atomic_fetch_add(&pair_running, 1) + 1;
    int p = atomic_load(&pair_peak);
    while (now > p && !atomic_compare_exchange_weak(&pair_peak, &p, now)) {
    }
    struct timespec ms = {0, 1000000L};
    for (int i = 0; i < 10000 && atomic_load(&pair_peak) < 2 && !atomic_load(&pair_gave_up); i++)
        nanosleep(&ms, NULL);
    if (atomic_load(&pair_peak) < 2) atomic_store(&pair_gave_up, 1);
    struct timespec hold = {0, 5000000L};
    nanosleep(&hold, NULL);
    atomic_fetch_sub(&pair_running, 1);
    int32_t w = weft_ctx_worker(ctx);
    return weft_ctx_set_output(ctx, &w, sizeof w);
}
WEFT_TASK_REGISTER(pair_task);

/* Returns the rank's peak and starts a new count. */
static int pair_reset(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    int32_t p = atomic_exchange(&pair_peak, 0);
    atomic_store(&pair_gave_up, 0);
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(pair_reset);

static int32_t rank_peak(weft_executor *ex)
{
    weft_future *f;
    int32_t p = -1;
    const void *d;
    if (weft_submit(ex, pair_reset, NULL, 0, &f) != 0) return -1;
    if (weft_future_result(f, WEFT_FOREVER, &d, NULL) == 0) memcpy(&p, d, sizeof p);
    weft_future_release(f);
    return p;
}

/* ten long tasks on one rank of 2 threads, by map (the levels workload's
 * shape) and by plain submits: two of them run at once */
static void check_pairs(weft_executor *ex)
{
    rank_peak(ex);
    uint32_t items[10] = {0};
    weft_results *r = NULL;
    CHECK_OK(weft_map(ex, pair_task, items, sizeof items[0], 10, NULL, &r));
    CHECK_EQ_U64(weft_results_failed(r), 0);
    weft_results_destroy(r);
    CHECK_EQ_INT(rank_peak(ex), 2);
    weft_future *fs[10];
    for (int i = 0; i < 10; i++) CHECK_OK(weft_submit(ex, pair_task, NULL, 0, &fs[i]));
    for (int i = 0; i < 10; i++) {
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, NULL, NULL));
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(rank_peak(ex), 2);
}

TEST(hybrid_runs_long_tasks_side_by_side)
{
    NEED_MPI();
    weft_options o = {.backend = WEFT_BACKEND_MPI, .workers = 1, .mpi.threads = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_EQ_INT(weft_executor_workers(ex), 2); /* 1 rank x 2 threads */
    check_pairs(ex);
    CHECK_OK(weft_executor_destroy(ex));
}

/* What test_mpi_hybrid_n2 runs: `WEFT_MPI_THREADS=2 mpirun -n 2` (set here
 * when the environment does not say), the levels demo's shape. */
TEST(hybrid_threads_from_the_environment)
{
    NEED_MPI();
    bool set = !getenv("WEFT_MPI_THREADS");
    if (set) setenv("WEFT_MPI_THREADS", "2", 1);
    weft_options o = {.backend = WEFT_BACKEND_MPI, .workers = 1};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    if (atoi(getenv("WEFT_MPI_THREADS")) == 2) {
        CHECK_EQ_INT(weft_executor_workers(ex), 2);
        check_pairs(ex);
    }
    CHECK_OK(weft_executor_destroy(ex));
    if (set) unsetenv("WEFT_MPI_THREADS");
}

/* ---- waiting costs no core: idle ranks sleep, a hybrid rank's threads
 * keep the cores while long tasks run (CPU time, robust to a busy
 * machine; a rank or a dispatcher that spun or yielded in a loop would
 * take a large share of a core) ---- */

/* A worker rank's pid; held 20 ms, so that a set of them lands on every rank. */
static int pid_hold20(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    struct timespec ts = {0, 20000000L};
    nanosleep(&ts, NULL);
    int64_t p = getpid();
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(pid_hold20);

/* Burns the CPU for the input's milliseconds (a long task that needs its
 * core); output: the pid and tid that ran it. */
static int burn_ms(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t ms = 0;
    if (len >= sizeof ms) memcpy(&ms, in, sizeof ms);
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    volatile uint64_t x = 1;
    do {
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005ull + 1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < (long)ms);
    int32_t o[2] = {(int32_t)getpid(), (int32_t)syscall(SYS_gettid)};
    return weft_ctx_set_output(ctx, o, sizeof o);
}
WEFT_TASK_REGISTER(burn_ms);

/* Seconds thread tid of process pid has run (-1: unreadable). */
static double thread_cpu_s(pid_t pid, pid_t tid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long ns = 0;
    int ok = fscanf(f, "%llu", &ns) == 1;
    fclose(f);
    return ok ? (double)ns * 1e-9 : -1;
}

/* Seconds every thread of pid has run, but `skip` (0: none). */
static double proc_cpu_s(pid_t pid, pid_t skip)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || tid == skip) continue;
        double c = thread_cpu_s(pid, tid);
        if (c > 0) sum += c;
    }
    closedir(d);
    return sum;
}

/* The pids of ex's worker ranks (n of them) into pids; false if not all
 * were found (they run on this machine in the tests). */
static bool rank_pids(weft_executor *ex, int n, pid_t *pids)
{
    int found = 0;
    for (int round = 0; round < 50 && found < n; round++) {
        weft_future *fs[64];
        int k = 0;
        for (; k < n && k < 64; k++)
            if (weft_submit(ex, pid_hold20, NULL, 0, &fs[k])) break;
        for (int i = 0; i < k; i++) {
            int64_t p = -1;
            const void *d;
            if (weft_future_result(fs[i], WEFT_FOREVER, &d, NULL) == 0) memcpy(&p, d, sizeof p);
            weft_future_release(fs[i]);
            bool seen = p <= 0;
            for (int j = 0; j < found; j++) seen |= pids[j] == (pid_t)p;
            if (!seen && found < n) pids[found++] = (pid_t)p;
        }
    }
    return found == n;
}

TEST(idle_ranks_and_dispatcher_sleep)
{
    NEED_MPI();
    weft_executor *ex = make(0);
    enum {
        MAXR = 16
    };
    int n = nworkers < MAXR ? nworkers : MAXR;
    pid_t pids[MAXR];
    REQUIRE(rank_pids(ex, n, pids));
    /* past the windows where a waiting thread pauses or yields */
    struct timespec settle = {0, 300000000L}, idle = {1, 0};
    nanosleep(&settle, NULL);
    pid_t me = getpid();
    double c0[MAXR], c1[MAXR];
    for (int r = 0; r < n; r++) c0[r] = proc_cpu_s(pids[r], 0);
    double d0 = proc_cpu_s(me, me); /* rank 0 but its main thread: the dispatcher */
    double t0 = check_now();
    nanosleep(&idle, NULL);
    double dt = check_now() - t0;
    for (int r = 0; r < n; r++) c1[r] = proc_cpu_s(pids[r], 0);
    double d1 = proc_cpu_s(me, me);
    for (int r = 0; r < n; r++) {
        double pct = (c1[r] - c0[r]) / dt * 100;
        CHECK_MSG(c0[r] >= 0 && c1[r] >= 0, "cannot read the CPU time of rank %d", r + 1);
        CHECK_MSG(pct < 5, "idle worker rank %d used %.2f%% of a core", r + 1, pct);
    }
    double dpct = (d1 - d0) / dt * 100;
    CHECK_MSG(dpct < 5, "rank 0's idle dispatcher used %.2f%% of a core", dpct);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(hybrid_rank_leaves_the_cores_to_its_threads)
{
    NEED_MPI();
    weft_options o = {.backend = WEFT_BACKEND_MPI, .workers = 1, .mpi.threads = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    enum {
        N = 6
    };
    uint32_t ms[N];
    for (int i = 0; i < N; i++) ms[i] = 150;
    /* warm-up: the dispatcher learns the tasks are long; the rank's pid */
    weft_results *r = NULL;
    REQUIRE_OK(weft_map(ex, burn_ms, ms, sizeof ms[0], 2, NULL, &r));
    const void *d;
    int32_t ran[2] = {0, 0};
    REQUIRE_OK(weft_results_get(r, 0, &d, NULL));
    memcpy(ran, d, sizeof ran);
    weft_results_destroy(r);
    pid_t rank = (pid_t)ran[0], me = getpid();
    /* the rank's main thread (MPI) and rank 0's threads but its main one
     * (the dispatchers) while six tasks of 150 ms of CPU run on the rank's
     * two threads */
    double m0 = thread_cpu_s(rank, rank), d0 = proc_cpu_s(me, me);
    double t0 = check_now();
    REQUIRE_OK(weft_map(ex, burn_ms, ms, sizeof ms[0], N, NULL, &r));
    double dt = check_now() - t0;
    double m1 = thread_cpu_s(rank, rank), d1 = proc_cpu_s(me, me);
    CHECK_EQ_U64(weft_results_failed(r), 0);
    weft_results_destroy(r);
    CHECK(m0 >= 0 && m1 >= 0);
    double mpct = (m1 - m0) / dt * 100, dpct = (d1 - d0) / dt * 100;
    CHECK_MSG(mpct < 5, "the hybrid rank's main thread used %.2f%% of a core", mpct);
    CHECK_MSG(dpct < 5, "rank 0's dispatcher used %.2f%% of a core", dpct);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- ranks x processes ---- */

static int crash_at(weft_ctx *ctx, const void *in, size_t len)
{
    uint32_t x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    memcpy(&x, in, sizeof x);
    if (x == 4321) {
        static volatile uintptr_t bad = 8;
        *(volatile int *)bad = 1;
    }
    uint64_t y = 2ull * x;
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(crash_at);

static int pid_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    int64_t p = getpid();
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(pid_task);

static weft_executor *make_procs(int procs_per_rank)
{
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_MPI;
    o.mpi.threads = procs_per_rank;
    o.mpi.rank_backend = WEFT_BACKEND_PROCESSES;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) printf("    ranks x processes: %s (%s)\n", weft_strerror(rc), weft_last_error());
    return ex;
}

/* The case: a map of 10k items on ranks x processes where one
 * segfaults gives 1 error and 9,999 results; the job goes on (and the
 * test program exits 0). */
TEST(ranks_x_processes_a_crash_fails_alone)
{
    NEED_MPI();
    weft_executor *ex = make_procs(0);
    REQUIRE(ex);
    CHECK_EQ_INT(weft_executor_workers(ex), nworkers); /* one process per rank */
    enum {
        N = 10000
    };
    uint32_t *items = malloc(N * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < N; i++) items[i] = i;
    weft_results *r = NULL;
    CHECK_ERR(weft_map(ex, crash_at, items, sizeof items[0], N, NULL, &r), WEFT_ECRASHED);
    REQUIRE(r);
    CHECK_EQ_U64(weft_results_failed(r), 1);
    CHECK_ERR(weft_results_get(r, 4321, NULL, NULL), WEFT_ECRASHED);
    CHECK(weft_results_error(r, 4321) && strstr(weft_results_error(r, 4321), "crash_at"));
    size_t good = 0;
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        uint64_t y;
        if (weft_results_get(r, i, &d, &len) != 0 || len != sizeof y) continue;
        memcpy(&y, d, sizeof y);
        if (y == 2ull * i) good++;
    }
    CHECK_EQ_U64(good, N - 1);
    weft_results_destroy(r);
    /* a crashing future alone, and the next tasks run */
    uint32_t bad = 4321, fine = 5;
    weft_future *f, *g;
    CHECK_OK(weft_submit(ex, crash_at, &bad, sizeof bad, &f));
    CHECK_OK(weft_submit(ex, crash_at, &fine, sizeof fine, &g));
    CHECK_ERR(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ECRASHED);
    const void *d;
    CHECK_OK(weft_future_result(g, WEFT_FOREVER, &d, NULL));
    weft_future_release(f);
    weft_future_release(g);
    free(items);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Items keep their index, seed, worker id, retries and errors on the
 * rank's worker processes, with 1 and 2 processes per rank. */
TEST(ranks_x_processes_same_results_as_threads)
{
    NEED_MPI();
    for (int k = 1; k <= 2; k++) {
        weft_executor *ex = make_procs(k);
        REQUIRE(ex);
        CHECK_EQ_INT(weft_executor_workers(ex), nworkers * k);
        weft_options so = {.backend = WEFT_BACKEND_SERIAL};
        weft_executor *ser;
        REQUIRE_OK(weft_executor_create(&so, &ser));
        enum {
            N = 64
        };
        weft_future *fm[N], *fs[N];
        for (int i = 0; i < N; i++) {
            CHECK_OK(weft_submit(ex, who_task, NULL, 0, &fm[i]));
            CHECK_OK(weft_submit(ser, who_task, NULL, 0, &fs[i]));
        }
        for (int i = 0; i < N; i++) {
            const void *a, *b;
            CHECK_OK(weft_future_result(fm[i], WEFT_FOREVER, &a, NULL));
            CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &b, NULL));
            who wa, wb;
            memcpy(&wa, a, sizeof wa);
            memcpy(&wb, b, sizeof wb);
            CHECK_EQ_U64(wa.index, (uint64_t)i);
            CHECK_EQ_U64(wa.seed, wb.seed);
            CHECK(wa.worker >= 0 && wa.worker < nworkers);
            weft_future_release(fm[i]);
            weft_future_release(fs[i]);
        }
        weft_executor_destroy(ser);
        /* retries run in the worker process */
        weft_future *f;
        weft_submit_options ro = {.retries = 2};
        CHECK_OK(weft_submit_ex(ex, flaky, NULL, 0, &ro, &f));
        const void *d;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, NULL));
        weft_future_release(f);
        /* results, errors and stop-on-error as on the other levels */
        enum {
            M = 5000
        };
        uint32_t *items = malloc(M * sizeof *items);
        REQUIRE(items);
        for (uint32_t i = 0; i < M; i++) items[i] = i;
        weft_results *r = NULL;
        CHECK_OK(weft_map(ex, twice, items, sizeof items[0], M, NULL, &r));
        uint64_t sum = 0;
        for (size_t i = 0; r && i < M; i++) {
            uint64_t y;
            if (weft_results_get(r, i, &d, NULL) == 0) {
                memcpy(&y, d, sizeof y);
                sum += y;
            }
        }
        CHECK_EQ_U64(sum, 2ull * ((uint64_t)M * (M - 1) / 2));
        weft_results_destroy(r);
        CHECK_ERR(weft_map(ex, fail_some, items, sizeof items[0], 1000, NULL, &r),
                  WEFT_ERANGE_TEST);
        CHECK_EQ_U64(weft_results_failed(r), 10);
        CHECK(weft_results_error(r, 7) && strstr(weft_results_error(r, 7), "item 7 is bad"));
        weft_results_destroy(r);
        weft_map_options mo = {.flags = WEFT_MAP_STOP_ON_ERROR, .chunk_size = 10};
        CHECK_ERR(weft_map(ex, fail_some, items, sizeof items[0], M, &mo, &r), WEFT_ERANGE_TEST);
        CHECK_ERR(weft_results_get(r, 7, NULL, NULL), WEFT_ERANGE_TEST);
        CHECK_ERR(weft_results_get(r, M - 1, NULL, NULL), WEFT_ECANCELLED);
        weft_results_destroy(r);
        /* large payloads both ways */
        size_t big = 3u << 20;
        unsigned char *in = malloc(big);
        REQUIRE(in);
        for (size_t i = 0; i < big; i++) in[i] = (unsigned char)(i * 7);
        CHECK_OK(weft_submit(ex, echo_plus, in, big, &f));
        size_t len = 0;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
        CHECK_EQ_U64(len, big);
        if (len == big) {
            const unsigned char *o = d;
            size_t bad = 0;
            for (size_t i = 0; i < big; i++) bad += o[i] != (unsigned char)(in[i] + 1);
            CHECK_EQ_U64(bad, 0);
        }
        weft_future_release(f);
        free(in);
        free(items);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* The initializer runs in each worker process of each rank. */
TEST(ranks_x_processes_initializer_per_process)
{
    NEED_MPI();
    int64_t base = 42;
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_MPI;
    o.mpi.rank_backend = WEFT_BACKEND_PROCESSES;
    o.mpi.threads = 2;
    o.initializer = init_state;
    o.init_input = &base;
    o.init_len = sizeof base;
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    weft_future *fs[20];
    for (int i = 0; i < 20; i++) CHECK_OK(weft_submit(ex, read_state, NULL, 0, &fs[i]));
    for (int i = 0; i < 20; i++) {
        const void *d;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, &d, NULL));
        int64_t v[2];
        memcpy(v, d, sizeof v);
        CHECK(v[0] == 42 * 1000 || v[0] == 42 * 1000 + 1); /* the process's number */
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
    o.initializer = init_fails;
    o.mpi.threads = 1;
    ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    CHECK(strstr(weft_last_error(), "no state for worker 0") != NULL);
}

/* WEFT_MPI_WORKERS=processes selects it; tasks then run in processes
 * other than the rank's. */
TEST(ranks_x_processes_from_the_environment)
{
    NEED_MPI();
    weft_options o = {.backend = WEFT_BACKEND_MPI, .workers = 1};
    weft_executor *ex;
    int64_t pid_rank = -1, pid_proc = -2;
    const void *d;
    weft_future *f;
    REQUIRE_OK(weft_executor_create(&o, &ex)); /* threads: on the rank itself */
    CHECK_OK(weft_submit(ex, pid_task, NULL, 0, &f));
    if (weft_future_result(f, WEFT_FOREVER, &d, NULL) == 0) memcpy(&pid_rank, d, sizeof pid_rank);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
    setenv("WEFT_MPI_WORKERS", "processes", 1);
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_submit(ex, pid_task, NULL, 0, &f));
    if (weft_future_result(f, WEFT_FOREVER, &d, NULL) == 0) memcpy(&pid_proc, d, sizeof pid_proc);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK(pid_rank > 0 && pid_proc > 0 && pid_rank != pid_proc);
    CHECK(pid_proc != getpid());
    setenv("WEFT_MPI_WORKERS", "serial", 1);
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "WEFT_MPI_WORKERS") != NULL);
    unsetenv("WEFT_MPI_WORKERS");
    weft_options bad = WEFT_OPTIONS_INIT;
    bad.backend = WEFT_BACKEND_MPI;
    bad.mpi.rank_backend = WEFT_BACKEND_MPI;
    CHECK_ERR(weft_executor_create(&bad, &ex), WEFT_EINVAL);
}
TEST(trace_has_a_lane_per_rank)
{
    NEED_MPI();
    weft_options o = {.backend = WEFT_BACKEND_MPI, .trace_path = "mpi-trace.json"};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    uint32_t ms = 2;
    weft_future *fs[20];
    for (int i = 0; i < 20; i++) CHECK_OK(weft_submit(ex, sleep_ms, &ms, sizeof ms, &fs[i]));
    CHECK_EQ_INT(wait_count(fs, 20, WEFT_WAIT_ALL, WEFT_FOREVER, NULL), 20);
    for (int i = 0; i < 20; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_executor_destroy(ex));
    FILE *f = fopen("mpi-trace.json", "r");
    REQUIRE(f);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "sleep_ms") != NULL);
    CHECK(strstr(buf, "mpi") != NULL);
}

/* ---- out of memory: the future fails, the executor goes on ---- */

/* Runs arm_fault on worker rank 1 (ex uses that rank only). */
static void arm_worker(weft_executor *ex, weft__mpi_fault_site site, int skip, int count)
{
    int32_t a[3] = {(int32_t)site, skip, count};
    weft_future *f;
    REQUIRE(weft_submit(ex, arm_fault, a, sizeof a, &f) == 0);
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    weft_future_release(f);
}

/* Submits square(x) and checks it fails with WEFT_ENOMEM and a message
 * holding `what`. */
static void check_square_enomem(weft_executor *ex, int64_t x, const char *what)
{
    weft_future *f;
    REQUIRE(weft_submit(ex, square, &x, sizeof x, &f) == 0);
    CHECK_EQ_INT(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ENOMEM);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, what), "message '%s' lacks '%s'", m ? m : "(null)", what);
    weft_future_release(f);
}

/* Submits n squares and checks every one succeeds. */
static void check_squares_ok(weft_executor *ex, int n)
{
    weft_future *fs[32];
    REQUIRE(n <= 32);
    for (int64_t i = 0; i < n; i++) REQUIRE(weft_submit(ex, square, &i, sizeof i, &fs[i]) == 0);
    for (int64_t i = 0; i < n; i++) {
        const int64_t *v;
        size_t len;
        CHECK_OK(weft_future_result(fs[i], WEFT_FOREVER, (const void **)&v, &len));
        if (len == sizeof *v) CHECK_EQ_INT(*v, i * i);
        weft_future_release(fs[i]);
    }
}

TEST(rank0_out_of_memory_for_an_answer_fails_its_batch_only)
{
    NEED_MPI();
    weft_executor *ex = make(1);
    check_squares_ok(ex, 4);
    weft__mpi_fault_arm(WEFT__MPI_FAULT_RESULT, 0, 1);
    check_square_enomem(ex, 5, "rank 0 is out of memory for the answer");
    check_squares_ok(ex, 20);
    /* a map: the chunk whose answer finds no room fails, the others not */
    uint32_t items[40];
    for (uint32_t i = 0; i < 40; i++) items[i] = i;
    weft_map_options mo = {.chunk_size = 10};
    weft_results *r;
    weft__mpi_fault_arm(WEFT__MPI_FAULT_RESULT, 1, 1);
    CHECK_EQ_INT(weft_map(ex, twice, items, sizeof items[0], 40, &mo, &r), WEFT_ENOMEM);
    int failed = 0;
    for (size_t i = 0; i < 40; i++) {
        const uint64_t *v;
        size_t len;
        int rc = weft_results_get(r, i, (const void **)&v, &len);
        if (rc) {
            CHECK_EQ_INT(rc, WEFT_ENOMEM);
            failed++;
        } else {
            CHECK_EQ_U64(*v, 2 * i);
        }
    }
    CHECK_EQ_INT(failed, 10);
    weft_results_destroy(r);
    check_squares_ok(ex, 8);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(rank0_out_of_memory_for_a_big_output_fails_that_item)
{
    NEED_MPI();
    weft_executor *ex = make(1);
    enum {
        K = 4,
        SZ = 100000
    };
    unsigned char *buf = malloc(SZ);
    REQUIRE(buf);
    for (size_t i = 0; i < SZ; i++) buf[i] = (unsigned char)i;
    weft_buf in[K];
    for (int k = 0; k < K; k++) in[k] = (weft_buf){buf, SZ};
    weft_map_options mo = {.chunk_size = K};
    weft_results *r;
    weft__mpi_fault_arm(WEFT__MPI_FAULT_OUTPUT, 1, 1); /* the second output */
    CHECK_EQ_INT(weft_map_bufs(ex, echo_plus, in, K, &mo, &r), WEFT_ENOMEM);
    for (size_t k = 0; k < K; k++) {
        const unsigned char *d;
        size_t len;
        int rc = weft_results_get(r, k, (const void **)&d, &len);
        if (k == 1) {
            CHECK_EQ_INT(rc, WEFT_ENOMEM);
            const char *m = weft_results_error(r, k);
            CHECK_MSG(m && strstr(m, "rank 0 cannot allocate 100000 bytes"), "message '%s'",
                      m ? m : "(null)");
        } else {
            CHECK_OK(rc);
            CHECK_EQ_U64(len, SZ);
            if (len == SZ) CHECK(d[SZ - 1] == (unsigned char)((SZ - 1) % 256 + 1));
        }
    }
    weft_results_destroy(r);
    /* the next big output arrives */
    weft_future *f;
    REQUIRE(weft_submit(ex, echo_plus, buf, SZ, &f) == 0);
    const unsigned char *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, (const void **)&d, &len));
    CHECK_EQ_U64(len, SZ);
    weft_future_release(f);
    free(buf);
    check_squares_ok(ex, 4);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(worker_out_of_memory_fails_the_task_and_goes_on)
{
    NEED_MPI();
    weft_executor *ex = make(1);
    /* no room for the next command: its batch fails whole */
    arm_worker(ex, WEFT__MPI_FAULT_COMMAND, 0, 1);
    check_square_enomem(ex, 3, "worker rank 1: out of memory for the batch's");
    check_squares_ok(ex, 10);
    /* no room for the answer (skip the arming batch's own answer) */
    arm_worker(ex, WEFT__MPI_FAULT_ANSWER, 1, 1);
    check_square_enomem(ex, 4, "worker rank 1: out of memory for the batch's answer");
    check_squares_ok(ex, 10);
    /* no room for a big input: that task fails, its neighbours run */
    enum {
        SZ = 200000
    };
    unsigned char *buf = calloc(1, SZ);
    REQUIRE(buf);
    arm_worker(ex, WEFT__MPI_FAULT_INPUT, 0, 1);
    weft_future *f;
    REQUIRE(weft_submit(ex, echo_plus, buf, SZ, &f) == 0);
    CHECK_EQ_INT(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ENOMEM);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, "worker rank 1 cannot allocate 200000 bytes for the task's input"),
              "message '%s'", m ? m : "(null)");
    weft_future_release(f);
    REQUIRE(weft_submit(ex, echo_plus, buf, SZ, &f) == 0);
    const unsigned char *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, (const void **)&d, &len));
    CHECK_EQ_U64(len, SZ);
    if (len == SZ) CHECK(d[0] == 1 && d[SZ - 1] == 1);
    weft_future_release(f);
    free(buf);
    check_squares_ok(ex, 10);
    CHECK_OK(weft_executor_destroy(ex));
}

/* A map chunk of n items through `wide`: 0 if every item is right, else
 * the first error (and every item failed with it). */
static int wide_chunk(weft_executor *ex, uint32_t n)
{
    uint32_t *items = malloc(n * sizeof *items);
    REQUIRE(items);
    for (uint32_t i = 0; i < n; i++) items[i] = i;
    weft_map_options mo = {.chunk_size = n};
    weft_results *r;
    int rc = weft_map(ex, wide, items, sizeof *items, n, &mo, &r);
    REQUIRE(r != NULL);
    int first = 0;
    size_t nfail = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t *v;
        size_t len;
        int e = weft_results_get(r, i, (const void **)&v, &len);
        if (e) {
            if (!first) first = e;
            nfail++;
        } else {
            CHECK(len == 32 && v[0] == i && v[7] == 7 * i);
        }
    }
    CHECK(nfail == 0 || nfail == n);
    CHECK_EQ_INT(rc, first);
    weft_results_destroy(r);
    free(items);
    return first;
}

TEST(commands_and_answers_longer_than_a_piece)
{
    NEED_MPI();
    weft_executor *ex = make(1);
    /* 40000 items: the command (~1.3 MB) and the answer (~2.9 MB) travel
     * in 1 MiB pieces */
    CHECK_EQ_INT(wide_chunk(ex, 40000), 0);
    /* no room on rank 0 for the answer: every piece is drained */
    weft__mpi_fault_arm(WEFT__MPI_FAULT_RESULT, 0, 1);
    CHECK_EQ_INT(wide_chunk(ex, 40000), WEFT_ENOMEM);
    CHECK_EQ_INT(wide_chunk(ex, 40000), 0);
    /* no room on the worker for the command: every piece is drained */
    arm_worker(ex, WEFT__MPI_FAULT_COMMAND, 0, 1);
    CHECK_EQ_INT(wide_chunk(ex, 40000), WEFT_ENOMEM);
    CHECK_EQ_INT(wide_chunk(ex, 40000), 0);
    check_squares_ok(ex, 4);
    CHECK_OK(weft_executor_destroy(ex));
}

static int crash_main(void)
{
    weft_executor *ex = make(0);
    weft_results *r;
    uint32_t items[16] = {0};
    weft_map_options mo = {.chunk_size = 1};
    weft_map(ex, crash_task, items, sizeof items[0], 16, &mo, &r);
    printf("not reached: the job should have ended\n");
    return 0;
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* only rank 0 gets here under mpirun */
    weft_options o = {.backend = WEFT_BACKEND_MPI, .mpi.threads = 1}; /* worker ranks */
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        nworkers = weft_executor_workers(probe);
        weft_executor_destroy(probe);
        printf("mpi: %d worker ranks\n", nworkers);
    }
    if (argc > 1 && strcmp(argv[1], "--crash") == 0) return under_mpi ? crash_main() : 77;
    rc = check_main(argc, argv);
    return rc;
}

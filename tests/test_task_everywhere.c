/* test_task_everywhere.c : a task is a task everywhere. One registered task
 * runs unchanged through weft_submit, weft_map, weft_parallel (batch calls)
 * and as a one-argument graph node, on every backend this program can
 * create (serial, threads, processes; mpi runs under mpirun in test_mpi).
 * A multi-argument node's task reads its arguments with weft_args_count /
 * weft_args_get only, and every length mismatch -- a block cut short, a
 * task given plain bytes, an index past the count, a count the task does
 * not expect -- is WEFT_EINVAL with a message that says which, never a
 * silent misread, on every backend and through graph, submit and batch. */
#define CHECK_CUSTOM_MAIN
#include "check.h"

/* x (int64) -> 3 * x + 1: a plain one-input task */
static int triple(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t x;
    if (len != sizeof x) return weft_ctx_fail(ctx, WEFT_EINVAL, "triple: %zu bytes", len);
    memcpy(&x, in, sizeof x);
    x = 3 * x + 1;
    return weft_ctx_set_output(ctx, &x, sizeof x);
}
WEFT_TASK_REGISTER(triple);

/* a - b of two int64 arguments; passes on any weft_args_* error code
 * without a message of its own, so the library's message must reach the
 * future (and the graph node) */
static int diff2(weft_ctx *ctx, const void *in, size_t len)
{
    size_t n;
    int rc = weft_args_count(in, len, &n);
    if (rc) return rc;
    if (n != 2) return weft_ctx_fail(ctx, WEFT_EINVAL, "diff2: wants 2 arguments, got %zu", n);
    int64_t v[2];
    for (size_t i = 0; i < 2; i++) {
        const void *d;
        size_t l;
        rc = weft_args_get(in, len, i, &d, &l);
        if (rc) return rc;
        if (l != sizeof v[i])
            return weft_ctx_fail(ctx, WEFT_EINVAL, "diff2: argument %zu has %zu bytes", i, l);
        memcpy(&v[i], d, sizeof v[i]);
    }
    int64_t r = v[0] - v[1];
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(diff2);

/* reads argument 2 of however many it got (a task that reads past the count) */
static int third(weft_ctx *ctx, const void *in, size_t len)
{
    const void *d;
    size_t l;
    int rc = weft_args_get(in, len, 2, &d, &l);
    if (rc) return rc;
    return weft_ctx_set_output(ctx, d, l);
}
WEFT_TASK_REGISTER(third);

static const weft_backend backends[] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS,
                                        WEFT_BACKEND_PROCESSES};
#define NB (sizeof backends / sizeof backends[0])

static weft_executor *make(weft_backend b)
{
    weft_options o = {.backend = b, .workers = b == WEFT_BACKEND_SERIAL ? 1 : 2};
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc)
        printf("    create %s: %s (%s)\n", weft_backend_name(b), weft_strerror(rc),
               weft_last_error());
    return ex;
}

static int64_t as_i64(const void *d, size_t l)
{
    int64_t v = -999;
    if (l == sizeof v) memcpy(&v, d, sizeof v);
    return v;
}

TEST(one_task_through_submit_map_batch_and_a_graph_node)
{
    for (size_t b = 0; b < NB; b++) {
        weft_executor *ex = make(backends[b]);
        REQUIRE(ex);
        printf("    %s\n", weft_backend_name(backends[b]));
        int64_t xs[4] = {1, -2, 30, 7};
        /* submit */
        for (int i = 0; i < 4; i++) {
            weft_future *f;
            REQUIRE_OK(weft_submit(ex, triple, &xs[i], sizeof xs[i], &f));
            const void *d;
            size_t l;
            CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &l));
            CHECK_EQ_INT(as_i64(d, l), 3 * xs[i] + 1);
            weft_future_release(f);
        }
        /* map */
        weft_results *r = NULL;
        CHECK_OK(weft_map(ex, triple, xs, sizeof xs[0], 4, NULL, &r));
        int64_t ys[4];
        CHECK_OK(weft_results_gather(r, ys, sizeof ys[0], 4, NULL));
        for (int i = 0; i < 4; i++) CHECK_EQ_INT(ys[i], 3 * xs[i] + 1);
        weft_results_destroy(r);
        /* batch calls on this executor */
        weft_call calls[4];
        for (int i = 0; i < 4; i++) calls[i] = (weft_call){triple, &xs[i], sizeof xs[i]};
        weft_parallel_options po = {.executor = ex};
        r = NULL;
        CHECK_OK(weft_parallel(calls, 4, &po, &r));
        memset(ys, 0, sizeof ys);
        CHECK_OK(weft_results_gather(r, ys, sizeof ys[0], 4, NULL));
        for (int i = 0; i < 4; i++) CHECK_EQ_INT(ys[i], 3 * xs[i] + 1);
        weft_results_destroy(r);
        /* a one-argument graph node, literal and fed by another node: the
         * task gets the plain bytes, as from submit */
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node n1, n2;
        weft_arg a = weft_arg_bytes(&xs[2], sizeof xs[2]);
        CHECK_OK(weft_graph_call(g, triple, &a, 1, &n1));
        a = weft_arg_node(n1);
        CHECK_OK(weft_graph_call(g, triple, &a, 1, &n2));
        CHECK_OK(weft_graph_compute(g, ex, &n2, 1, NULL));
        const void *d;
        size_t l;
        CHECK_OK(weft_graph_result(g, n2, &d, &l));
        CHECK_EQ_INT(as_i64(d, l), 3 * (3 * xs[2] + 1) + 1);
        CHECK_OK(weft_graph_destroy(g));
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* An argument block as graph.c lays it out for another process (the COPY
 * form: header, one {offset, length} entry per argument, the bytes). */
static size_t make_block(unsigned char *blk, int64_t a, int64_t b)
{
    uint32_t hdr[4] = {0x77617267u, 2, 2, 0}; /* magic, COPY, nargs, pad */
    uint64_t ent[4] = {48, 8, 56, 8};
    memcpy(blk, hdr, 16);
    memcpy(blk + 16, ent, 32);
    memcpy(blk + 48, &a, 8);
    memcpy(blk + 56, &b, 8);
    return 64;
}

/* Submits fn(in[0..len)) and checks it fails with WEFT_EINVAL and a message
 * containing `want`. */
static void expect_einval(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                          const char *want)
{
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, fn, in, len, &f));
    CHECK_ERR(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_EINVAL);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, want), "want '%s' in the error, got '%s'", want, m ? m : "(null)");
    weft_future_release(f);
}

TEST(argument_mismatches_are_clear_errors_on_every_backend)
{
    for (size_t b = 0; b < NB; b++) {
        weft_executor *ex = make(backends[b]);
        REQUIRE(ex);
        printf("    %s\n", weft_backend_name(backends[b]));
        unsigned char blk[64];
        size_t n = make_block(blk, 50, 8);
        /* the whole block reads right */
        weft_future *f;
        REQUIRE_OK(weft_submit(ex, diff2, blk, n, &f));
        const void *d;
        size_t l;
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &l));
        CHECK_EQ_INT(as_i64(d, l), 42);
        weft_future_release(f);
        /* cut inside the entries: the count is checked against the length */
        expect_einval(ex, diff2, blk, 40, "cut short: it declares 2 arguments");
        /* cut inside the second argument's bytes */
        expect_einval(ex, diff2, blk, 60, "lies outside the block");
        /* cut inside the header: plain bytes, one argument */
        expect_einval(ex, diff2, blk, 10, "diff2: wants 2 arguments, got 1");
        /* plain bytes given to a multi-argument task: one argument; the task
         * can tell, and reading a second is refused by the library */
        int64_t plain = 5;
        expect_einval(ex, diff2, &plain, sizeof plain, "diff2: wants 2 arguments, got 1");
        expect_einval(ex, third, &plain, sizeof plain, "argument 2 asked for, but the call has 1");
        /* an index past the count */
        expect_einval(ex, third, blk, n, "argument 2 asked for, but the call has 2 arguments");
        /* a count the task does not expect: it can tell, and says so */
        unsigned char blk3[80];
        uint32_t hdr3[4] = {0x77617267u, 2, 3, 0};
        uint64_t ent3[6] = {64, 8, 72, 8, 64, 8};
        memcpy(blk3, hdr3, 16);
        memcpy(blk3 + 16, ent3, 48);
        memcpy(blk3 + 64, blk + 48, 16);
        expect_einval(ex, diff2, blk3, sizeof blk3, "diff2: wants 2 arguments, got 3");
        /* a block that declares more arguments than its length holds */
        expect_einval(ex, diff2, blk3, 60, "cut short: it declares 3 arguments");
        /* batch calls: the same task given plain bytes fails each call */
        weft_call calls[2] = {{diff2, &plain, sizeof plain}, {triple, &plain, sizeof plain}};
        weft_parallel_options po = {.executor = ex};
        weft_results *r = NULL;
        CHECK_ERR(weft_parallel(calls, 2, &po, &r), WEFT_EINVAL);
        REQUIRE(r);
        CHECK_ERR(weft_results_get(r, 0, NULL, NULL), WEFT_EINVAL);
        const char *m = weft_results_error(r, 0);
        CHECK_MSG(m && strstr(m, "wants 2 arguments, got 1"), "%s", m ? m : "(null)");
        CHECK_OK(weft_results_get(r, 1, &d, &l));
        CHECK_EQ_INT(as_i64(d, l), 16);
        weft_results_destroy(r);
        /* graph: a node with too few arguments, one with an index past them,
         * and a one-argument node of the two-argument task */
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        int64_t x = 9, y = 4;
        weft_arg two[2] = {weft_arg_bytes(&x, sizeof x), weft_arg_bytes(&y, sizeof y)};
        weft_node ok, past, one;
        CHECK_OK(weft_graph_call(g, diff2, two, 2, &ok));
        CHECK_OK(weft_graph_call(g, third, two, 2, &past));
        CHECK_OK(weft_graph_call(g, diff2, two, 1, &one));
        weft_node ts[3] = {ok, past, one};
        CHECK_ERR(weft_graph_compute(g, ex, ts, 3, NULL), WEFT_EINVAL);
        CHECK_OK(weft_graph_result(g, ok, &d, &l));
        CHECK_EQ_INT(as_i64(d, l), 5);
        CHECK_ERR(weft_graph_result(g, past, NULL, NULL), WEFT_EINVAL);
        m = weft_graph_error(g, past);
        CHECK_MSG(m && strstr(m, "argument 2 asked for"), "%s", m ? m : "(null)");
        CHECK_ERR(weft_graph_result(g, one, NULL, NULL), WEFT_EINVAL);
        m = weft_graph_error(g, one);
        CHECK_MSG(m && strstr(m, "wants 2 arguments, got 1"), "%s", m ? m : "(null)");
        CHECK_OK(weft_graph_destroy(g));
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* weft_init first: under TSan (its own thread) or any threaded start the
 * processes backend needs the fork server started before threads exist. */
int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    return check_main(argc, argv);
}

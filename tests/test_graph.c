/* test_graph.c : lazy task graphs -- shapes from 1 to 100k nodes checked
 * against a serial evaluation, failure in the middle, merge of identical
 * calls, persist, freeing intermediates (the memory claim), DOT output
 * parsed back, argument blocks, bad input. Every shape runs on serial and
 * threads, and with copying argument blocks (what the processes and mpi
 * backends use) as well as borrowed ones. */
// weft-test-timeout: 300
#include "check.h"

#include <sys/stat.h>

extern bool weft__graph_force_copy;

#define WEFT_ERANGE_TEST (-ERANGE) /* fail13's own error code */

/* ------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------ */

static atomic_int runs[200000]; /* per node index (weft_ctx_index = node id) */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static int64_t arg_i64(const void *in, size_t len, size_t i, weft_ctx *ctx, int *rc)
{
    const void *d;
    size_t l;
    *rc = weft_args_get(in, len, i, &d, &l);
    if (*rc == 0 && l != 8)
        *rc = weft_ctx_fail(ctx, WEFT_EINVAL, "argument %zu has %zu bytes", i, l);
    if (*rc) return 0;
    int64_t v;
    memcpy(&v, d, 8);
    return v;
}

/* sum of all 8-byte arguments */
static int add(weft_ctx *ctx, const void *in, size_t len)
{
    size_t n;
    int rc0 = weft_args_count(in, len, &n);
    if (rc0) return weft_ctx_fail(ctx, rc0, "not an argument block");
    atomic_fetch_add(&runs[weft_ctx_index(ctx) % 200000], 1);
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int rc;
        int64_t v = arg_i64(in, len, i, ctx, &rc);
        if (rc) return rc;
        s = (int64_t)((uint64_t)s + (uint64_t)v); /* wraps, no UB */
    }
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(add);

/* order-sensitive hash of all arguments (any length) */
static int hashmix(weft_ctx *ctx, const void *in, size_t len)
{
    size_t n;
    int rc0 = weft_args_count(in, len, &n);
    if (rc0) return weft_ctx_fail(ctx, rc0, "not an argument block");
    atomic_fetch_add(&runs[weft_ctx_index(ctx) % 200000], 1);
    uint64_t h = 0x1234;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t l;
        if (weft_args_get(in, len, i, &d, &l)) return WEFT_EINVAL;
        uint64_t v = 0;
        memcpy(&v, d, l < 8 ? l : 8);
        h = mix(h, v ^ l);
    }
    return weft_ctx_set_output(ctx, &h, sizeof h);
}
WEFT_TASK_REGISTER(hashmix);

/* fails when its (first) 8-byte argument is 13, else passes it on */
static int fail13(weft_ctx *ctx, const void *in, size_t len)
{
    int rc;
    int64_t v = arg_i64(in, len, 0, ctx, &rc);
    if (rc) return rc;
    atomic_fetch_add(&runs[weft_ctx_index(ctx) % 200000], 1);
    if (v == 13) return weft_ctx_fail(ctx, WEFT_ERANGE_TEST, "unlucky %lld", (long long)v);
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(fail13);

/* sleeps its argument in microseconds, outputs it */
static int nap(weft_ctx *ctx, const void *in, size_t len)
{
    int rc;
    int64_t us = arg_i64(in, len, 0, ctx, &rc);
    if (rc) return rc;
    atomic_fetch_add(&runs[weft_ctx_index(ctx) % 200000], 1);
    check_sleep((double)us * 1e-6);
    return weft_ctx_set_output(ctx, &us, sizeof us);
}
WEFT_TASK_REGISTER(nap);

#define MIB (1u << 20)
/* outputs 1 MiB: one word per 4 KiB page = (input's first word + 1) */
static int big(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t v = 0;
    const void *d;
    size_t l;
    if (weft_args_get(in, len, 0, &d, &l) == 0 && l >= 8) memcpy(&v, d, 8);
    if (l == MIB) {
        /* check the whole input is what the producer wrote */
        for (size_t p = 0; p < MIB; p += 4096) {
            uint64_t w;
            memcpy(&w, (const unsigned char *)d + p, 8);
            if (w != v)
                return weft_ctx_fail(ctx, WEFT_EINVAL, "page %zu: %llu != %llu", p / 4096,
                                     (unsigned long long)w, (unsigned long long)v);
        }
    }
    unsigned char *o = weft_ctx_output(ctx, MIB);
    if (!o) return WEFT_ENOMEM;
    v++;
    for (size_t p = 0; p < MIB; p += 4096) memcpy(o + p, &v, 8);
    return 0;
}
WEFT_TASK_REGISTER(big);

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void reset_runs(void)
{
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) atomic_store(&runs[i], 0);
}

typedef struct config {
    weft_backend backend;
    int workers;
    bool copy;
    const char *name;
} config;

static const config configs[] = {
    {WEFT_BACKEND_SERIAL, 1, false, "serial"},     {WEFT_BACKEND_THREADS, 2, false, "threads2"},
    {WEFT_BACKEND_THREADS, 4, false, "threads4"},  {WEFT_BACKEND_THREADS, 2, true, "threads2-copy"},
    {WEFT_BACKEND_SERIAL, 1, true, "serial-copy"},
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

static weft_executor *make_ex(const config *c)
{
    weft_options o = {.backend = c->backend, .workers = c->workers};
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) {
        CHECK_OK(rc);
        return NULL;
    }
    weft__graph_force_copy = c->copy;
    return ex;
}

static void done_ex(weft_executor *ex)
{
    weft__graph_force_copy = false;
    CHECK_OK(weft_executor_destroy(ex));
}

static weft_node lit(weft_graph *g, weft_task_fn fn, int64_t v)
{
    weft_arg a = weft_arg_bytes(&v, sizeof v);
    weft_node n = WEFT_NODE_NONE;
    CHECK_OK(weft_graph_call(g, fn, &a, 1, &n));
    return n;
}

static weft_node call2(weft_graph *g, weft_task_fn fn, weft_node a, weft_node b)
{
    weft_arg args[2] = {weft_arg_node(a), weft_arg_node(b)};
    weft_node n = WEFT_NODE_NONE;
    CHECK_OK(weft_graph_call(g, fn, args, 2, &n));
    return n;
}

static int64_t result_i64(weft_graph *g, weft_node n)
{
    const void *d = NULL;
    size_t l = 0;
    int rc = weft_graph_result(g, n, &d, &l);
    if (rc || l != 8) {
        CHECK_MSG(0, "node %u: rc %d (%s) len %zu", n, rc, weft_last_error(), l);
        return INT64_MIN;
    }
    int64_t v;
    memcpy(&v, d, 8);
    return v;
}

/* ------------------------------------------------------------------------
 * Shapes
 * ------------------------------------------------------------------------ */

TEST(single_node)
{
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node n = lit(g, add, 41);
        CHECK_EQ_INT(weft_graph_size(g), 1);
        CHECK_EQ_INT(weft_graph_state(g, n), WEFT_NODE_NEW);
        CHECK_RC(weft_graph_result(g, n, NULL, NULL), WEFT_EAGAIN);
        CHECK_OK(weft_graph_compute(g, ex, &n, 1, NULL));
        CHECK_EQ_INT(result_i64(g, n), 41);
        CHECK_EQ_INT(weft_graph_state(g, n), WEFT_NODE_DONE);
        CHECK(weft_graph_duration(g, n) >= 0);
        CHECK(weft_graph_error(g, n) == NULL);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(chain_adds_one_per_step)
{
    size_t steps = 10000;
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node one = WEFT_NODE_NONE, prev = lit(g, add, 0);
        int64_t v1 = 1;
        for (size_t i = 0; i < steps; i++) {
            weft_arg args[2] = {weft_arg_node(prev), weft_arg_bytes(&v1, 8)};
            REQUIRE_OK(weft_graph_call(g, add, args, 2, &one));
            prev = one;
        }
        CHECK_OK(weft_graph_compute(g, ex, &prev, 1, NULL));
        CHECK_EQ_INT(result_i64(g, prev), (int64_t)steps);
        /* intermediates were freed after use; only the target is held */
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.executed, steps + 1);
        CHECK_EQ_U64(st.outputs_live, 1);
        CHECK_EQ_U64(st.bytes_live, 8);
        CHECK_EQ_INT(weft_graph_state(g, 0), WEFT_NODE_RELEASED);
        CHECK_RC(weft_graph_result(g, 0, NULL, NULL), WEFT_EAGAIN);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(wide_fan_out_and_in)
{
    size_t width = 10000;
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node root = lit(g, add, 3);
        weft_arg *args = calloc(width, sizeof *args);
        REQUIRE(args);
        for (size_t i = 0; i < width; i++) {
            int64_t k = (int64_t)i;
            weft_arg a[2] = {weft_arg_node(root), weft_arg_bytes(&k, 8)};
            weft_node n;
            REQUIRE_OK(weft_graph_call(g, add, a, 2, &n));
            args[i] = weft_arg_node(n);
        }
        weft_node sum;
        REQUIRE_OK(weft_graph_call(g, add, args, width, &sum));
        CHECK_OK(weft_graph_compute(g, ex, &sum, 1, NULL));
        int64_t want = 3 * (int64_t)width + (int64_t)width * ((int64_t)width - 1) / 2;
        CHECK_EQ_INT(result_i64(g, sum), want);
        free(args);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(diamonds_stacked)
{
    /* a -> (b, c) -> d -> (e, f) -> g ...: each level doubles and adds */
    size_t levels = 2000;
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node top = lit(g, add, 1);
        for (size_t i = 0; i < levels; i++) {
            int64_t k = 1;
            weft_arg a1[2] = {weft_arg_node(top), weft_arg_bytes(&k, 8)};
            weft_arg a2[1] = {weft_arg_node(top)};
            weft_node l, r;
            REQUIRE_OK(weft_graph_call(g, add, a1, 2, &l));
            REQUIRE_OK(weft_graph_call(g, add, a2, 1, &r));
            top = call2(g, add, l, r);
        }
        CHECK_OK(weft_graph_compute(g, ex, &top, 1, NULL));
        /* recompute the expected value with exact int64 wrap semantics */
        int64_t v = 1;
        for (size_t i = 0; i < levels; i++) v = (int64_t)((uint64_t)v + 1 + (uint64_t)v);
        CHECK_EQ_INT(result_i64(g, top), v);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

/* A random DAG: node i takes 0..4 arguments, each a literal or an earlier
 * node; hashmix is order-sensitive, so any mix-up of arguments shows. */
typedef struct rdag {
    size_t n;
    int *nargs;
    int64_t (*arg)[4]; /* >= 0: node id; < 0: literal -(v+1) */
} rdag;

static void rdag_make(rdag *d, size_t n, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    d->n = n;
    d->nargs = calloc(n, sizeof *d->nargs);
    d->arg = calloc(n, sizeof *d->arg);
    REQUIRE(d->nargs && d->arg);
    for (size_t i = 0; i < n; i++) {
        d->nargs[i] = (int)weft_rng_range(&r, 0, 4);
        for (int k = 0; k < d->nargs[i]; k++) {
            if (i > 0 && weft_rng_range(&r, 0, 3) > 0) {
                /* mostly near predecessors, sometimes far */
                int64_t lo = weft_rng_range(&r, 0, 1) ? (int64_t)i - 8 : 0;
                if (lo < 0) lo = 0;
                d->arg[i][k] = weft_rng_range(&r, lo, (int64_t)i - 1);
            } else {
                d->arg[i][k] = -(weft_rng_range(&r, 0, 1000) + 1);
            }
        }
    }
}

static void rdag_free(rdag *d)
{
    free(d->nargs);
    free(d->arg);
}

static uint64_t *rdag_eval(const rdag *d)
{
    uint64_t *v = calloc(d->n, sizeof *v);
    REQUIRE(v);
    for (size_t i = 0; i < d->n; i++) {
        uint64_t h = 0x1234;
        for (int k = 0; k < d->nargs[i]; k++) {
            int64_t a = d->arg[i][k];
            uint64_t x = a >= 0 ? v[a] : (uint64_t)(-(a + 1));
            h = mix(h, x ^ 8);
        }
        v[i] = h;
    }
    return v;
}

static void rdag_build(const rdag *d, weft_graph *g)
{
    for (size_t i = 0; i < d->n; i++) {
        weft_arg a[4];
        int64_t lits[4];
        for (int k = 0; k < d->nargs[i]; k++) {
            if (d->arg[i][k] >= 0) {
                a[k] = weft_arg_node((weft_node)d->arg[i][k]);
            } else {
                lits[k] = -(d->arg[i][k] + 1);
                a[k] = weft_arg_bytes(&lits[k], 8);
            }
        }
        weft_node n;
        REQUIRE_OK(weft_graph_call(g, hashmix, a, (size_t)d->nargs[i], &n));
        REQUIRE(n == i);
    }
}

TEST(random_dags_match_serial_evaluation)
{
    size_t sizes[] = {1, 2, 17, 300, 5000};
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            rdag d;
            rdag_make(&d, sizes[s], 1000 + s * 7 + c);
            uint64_t *want = rdag_eval(&d);
            weft_graph *g;
            REQUIRE_OK(weft_graph_create(NULL, &g));
            rdag_build(&d, g);
            /* targets: a random subset, plus the last node */
            weft_rng r;
            weft_rng_seed(&r, s);
            size_t nt = 0;
            weft_node *t = malloc((d.n + 1) * sizeof *t);
            REQUIRE(t);
            for (size_t i = 0; i < d.n; i++)
                if (weft_rng_range(&r, 0, 9) == 0) t[nt++] = (weft_node)i;
            t[nt++] = (weft_node)(d.n - 1);
            reset_runs();
            CHECK_OK(weft_graph_compute(g, ex, t, nt, NULL));
            for (size_t i = 0; i < nt; i++) {
                const void *p;
                size_t l;
                CHECK_OK(weft_graph_result(g, t[i], &p, &l));
                uint64_t v = 0;
                if (l == 8) memcpy(&v, p, 8);
                CHECK_MSG(v == want[t[i]], "%s: dag %zu node %u", configs[c].name, d.n, t[i]);
            }
            /* every node ran at most once */
            for (size_t i = 0; i < d.n && i < 200000; i++)
                CHECK_MSG(atomic_load(&runs[i]) <= 1, "node %zu ran %d times", i,
                          atomic_load(&runs[i]));
            free(t);
            free(want);
            weft_graph_destroy(g);
            rdag_free(&d);
        }
        done_ex(ex);
    }
}

TEST(hundred_thousand_nodes)
{
    /* 50k leaves, a binary reduction tree over them: ~100k nodes */
    size_t leaves = 50000;
    config cs[] = {configs[0], configs[1]};
    for (size_t c = 0; c < 2; c++) {
        weft_executor *ex = make_ex(&cs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node *level = malloc(leaves * sizeof *level);
        REQUIRE(level);
        for (size_t i = 0; i < leaves; i++) level[i] = lit(g, add, (int64_t)i);
        size_t n = leaves;
        while (n > 1) {
            size_t m = 0;
            for (size_t i = 0; i + 1 < n; i += 2)
                level[m++] = call2(g, add, level[i], level[i + 1]);
            if (n % 2) level[m++] = level[n - 1];
            n = m;
        }
        CHECK(weft_graph_size(g) >= 2 * leaves - 1);
        CHECK_OK(weft_graph_compute(g, ex, &level[0], 1, NULL));
        CHECK_EQ_INT(result_i64(g, level[0]), (int64_t)leaves * ((int64_t)leaves - 1) / 2);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.executed, weft_graph_size(g));
        CHECK_EQ_U64(st.outputs_live, 1);
        free(level);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(only_what_targets_need_runs)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node a = lit(g, add, 1), b = lit(g, add, 2), c = call2(g, add, a, b);
    weft_node unrelated = lit(g, add, 99);
    reset_runs();
    CHECK_OK(weft_graph_compute(g, ex, &c, 1, NULL));
    CHECK_EQ_INT(result_i64(g, c), 3);
    CHECK_EQ_INT(atomic_load(&runs[unrelated]), 0);
    CHECK_EQ_INT(weft_graph_state(g, unrelated), WEFT_NODE_NEW);
    /* an empty compute is fine */
    CHECK_OK(weft_graph_compute(g, ex, NULL, 0, NULL));
    weft_graph_destroy(g);
    done_ex(ex);
}

/* ------------------------------------------------------------------------
 * The memory claim
 * ------------------------------------------------------------------------ */

/* Resident set size in bytes (/proc/self/statm), or 0. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

TEST(chain_of_1mib_outputs_keeps_live_memory_small)
{
    /* the figure, 10 GB through a chain; under sanitizers, whose
     * every 1 MiB allocation maps and poisons memory, 500 steps (the live
     * memory stays the same two or three outputs however long the chain:
     * 2000 took over the 220 s watchdog under ASan on a loaded machine,
     * and 44 s under TSan on an idle one; 500 still keeps ~250 outputs
     * from being live at once if freeing were broken) */
    size_t steps = CHECK_ASAN || CHECK_TSAN ? 500 : 10000;
    config cs[] = {configs[0], configs[1], configs[3]};
    /* sanitizers make each 1 MiB allocation slow (ASan maps and poisons it):
     * the copying configuration runs in the plain build only */
    size_t ncs = CHECK_ASAN || CHECK_TSAN ? 2 : 3;
    for (size_t c = 0; c < ncs; c++) {
        weft_executor *ex = make_ex(&cs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        int64_t zero = 0;
        weft_arg a0 = weft_arg_bytes(&zero, 8);
        weft_node prev;
        REQUIRE_OK(weft_graph_call(g, big, &a0, 1, &prev));
        for (size_t i = 1; i < steps; i++) {
            weft_arg a = weft_arg_node(prev);
            REQUIRE_OK(weft_graph_call(g, big, &a, 1, &prev));
        }
        size_t rss0 = rss_bytes();
        CHECK_OK(weft_graph_compute(g, ex, &prev, 1, NULL));
        /* the process agrees with the graph's own count (sanitizers keep
         * freed memory in quarantine, so only the plain build checks) */
        size_t rss1 = rss_bytes();
        if (!CHECK_ASAN && !CHECK_TSAN && rss0 && rss1)
            CHECK_MSG(rss1 < rss0 + 64u * MIB, "RSS grew from %zu to %zu MiB", rss0 / MIB,
                      rss1 / MIB);
        const void *d;
        size_t l;
        CHECK_OK(weft_graph_result(g, prev, &d, &l));
        CHECK_EQ_U64(l, MIB);
        uint64_t v = 0;
        if (l == MIB) memcpy(&v, d, 8);
        CHECK_EQ_U64(v, steps);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        /* a node's output lives until its consumer has run: at most the
         * producer's, the consumer's (and with copies, the consumer's
         * input copy) at once -- never the chain's 10 GB */
        printf("    %s: %zu steps of 1 MiB, peak live %.2f MiB, live now %.2f MiB\n", cs[c].name,
               steps, (double)st.bytes_peak / MIB, (double)st.bytes_live / MIB);
        CHECK_MSG(st.bytes_peak <= 4u * MIB, "peak %zu bytes", st.bytes_peak);
        CHECK_EQ_U64(st.bytes_live, MIB);
        CHECK_EQ_U64(st.outputs_live, 1);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

/* ------------------------------------------------------------------------
 * Failure
 * ------------------------------------------------------------------------ */

TEST(failure_stops_dependents_and_names_the_node)
{
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        /* a=12 -> b=fail13(a+1) -> c=add(b) -> d=add(c);  e independent */
        weft_node a = lit(g, add, 12);
        int64_t one = 1;
        weft_arg aa[2] = {weft_arg_node(a), weft_arg_bytes(&one, 8)};
        weft_node a1, b, cc, d;
        REQUIRE_OK(weft_graph_call(g, add, aa, 2, &a1));
        weft_arg ab = weft_arg_node(a1);
        REQUIRE_OK(weft_graph_call(g, fail13, &ab, 1, &b));
        weft_arg ac = weft_arg_node(b);
        REQUIRE_OK(weft_graph_call(g, add, &ac, 1, &cc));
        weft_arg ad = weft_arg_node(cc);
        REQUIRE_OK(weft_graph_call(g, add, &ad, 1, &d));
        weft_node e = lit(g, add, 5);
        weft_node targets[2] = {d, e};
        reset_runs();
        int rc = weft_graph_compute(g, ex, targets, 2, NULL);
        CHECK_EQ_INT(rc, WEFT_ERANGE_TEST);
        const char *le = weft_last_error();
        CHECK_MSG(strstr(le, "node 2") && strstr(le, "fail13") && strstr(le, "unlucky 13"),
                  "last error: %s", le);
        CHECK_EQ_INT(weft_graph_state(g, b), WEFT_NODE_FAILED);
        CHECK_RC(weft_graph_result(g, b, NULL, NULL), WEFT_ERANGE_TEST);
        CHECK(weft_graph_error(g, b) && strstr(weft_graph_error(g, b), "unlucky 13"));
        CHECK_EQ_INT(weft_graph_state(g, cc), WEFT_NODE_FAILED);
        CHECK_EQ_INT(weft_graph_state(g, d), WEFT_NODE_FAILED);
        CHECK_RC(weft_graph_result(g, d, NULL, NULL), WEFT_EDEPEND);
        const char *m = weft_graph_error(g, d);
        CHECK_MSG(m && strstr(m, "node 2") && strstr(m, "fail13") && strstr(m, "unlucky"),
                  "d's error: %s", m ? m : "(null)");
        CHECK_EQ_INT(atomic_load(&runs[cc]), 0);
        CHECK_EQ_INT(atomic_load(&runs[d]), 0);
        /* the independent branch finished */
        CHECK_EQ_INT(result_i64(g, e), 5);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.failed, 3);
        CHECK_EQ_U64(st.cancelled, 0);
        /* a's and a1's outputs were freed even though their branch failed */
        CHECK_EQ_U64(st.outputs_live, 1);
        /* the DOT of a failed compute names states */
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(cancel_on_error_cancels_independent_branches)
{
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        /* the failing node first, then 200 naps of 2 ms: most never start */
        weft_node f = lit(g, fail13, 13);
        enum {
            NNAP = 200
        };
        weft_node t[NNAP + 1];
        t[0] = f;
        for (int i = 0; i < NNAP; i++) t[i + 1] = lit(g, nap, 2000);
        weft_compute_options o = {.flags = WEFT_COMPUTE_CANCEL_ON_ERROR};
        reset_runs();
        double t0 = check_now();
        int rc = weft_graph_compute(g, ex, t, NNAP + 1, &o);
        double dt = check_now() - t0;
        CHECK_EQ_INT(rc, WEFT_ERANGE_TEST);
        int cancelled = 0, done = 0;
        for (int i = 1; i <= NNAP; i++) {
            weft_node_state s = weft_graph_state(g, t[i]);
            if (s == WEFT_NODE_CANCELLED) {
                cancelled++;
                CHECK_RC(weft_graph_result(g, t[i], NULL, NULL), WEFT_ECANCELLED);
                CHECK_EQ_INT(atomic_load(&runs[t[i]]), 0);
            } else {
                CHECK_EQ_INT(s, WEFT_NODE_DONE);
                done++;
            }
        }
        CHECK_MSG(cancelled >= NNAP - 20, "%s: %d cancelled, %d done in %.3f s", configs[c].name,
                  cancelled, done, dt);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.cancelled, (size_t)cancelled);
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

TEST(failed_nodes_run_again_in_a_later_compute)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node f = lit(g, fail13, 13);
    weft_arg a = weft_arg_node(f);
    weft_node d;
    REQUIRE_OK(weft_graph_call(g, add, &a, 1, &d));
    reset_runs();
    CHECK_RC(weft_graph_compute(g, ex, &d, 1, NULL), WEFT_ERANGE_TEST);
    CHECK_RC(weft_graph_compute(g, ex, &d, 1, NULL), WEFT_ERANGE_TEST);
    CHECK_EQ_INT(atomic_load(&runs[f]), 2);
    CHECK_EQ_INT(atomic_load(&runs[d]), 0);
    weft_graph_destroy(g);
    done_ex(ex);
}

TEST(retries_rerun_a_failing_node)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node f = lit(g, fail13, 13);
    weft_compute_options o = {.retries = 2};
    reset_runs();
    CHECK_RC(weft_graph_compute(g, ex, &f, 1, &o), WEFT_ERANGE_TEST);
    CHECK_EQ_INT(atomic_load(&runs[f]), 3);
    weft_graph_destroy(g);
    done_ex(ex);
}

TEST(submit_failure_on_a_shut_down_executor)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node a = lit(g, add, 1);
    weft_arg x = weft_arg_node(a);
    weft_node b;
    REQUIRE_OK(weft_graph_call(g, add, &x, 1, &b));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    int rc = weft_graph_compute(g, ex, &b, 1, NULL);
    CHECK_EQ_INT(rc, WEFT_ECLOSED);
    CHECK_MSG(strstr(weft_last_error(), "node 0"), "%s", weft_last_error());
    CHECK_EQ_INT(weft_graph_state(g, b), WEFT_NODE_FAILED);
    CHECK_RC(weft_graph_result(g, b, NULL, NULL), WEFT_EDEPEND);
    weft_graph_destroy(g);
    /* a wide graph too: its ready set is submitted in slices by spawn
     * tasks, which cannot be submitted either: the caller does it, and every
     * node fails, none is lost */
    REQUIRE_OK(weft_graph_create(NULL, &g));
    enum {
        WIDE = 5000
    };
    static weft_node t[WIDE];
    for (int i = 0; i < WIDE; i++) t[i] = lit(g, add, i);
    CHECK_EQ_INT(weft_graph_compute(g, ex, t, WIDE, NULL), WEFT_ECLOSED);
    for (int i = 0; i < WIDE; i++) CHECK_EQ_INT(weft_graph_state(g, t[i]), WEFT_NODE_FAILED);
    weft_graph_stats st;
    CHECK_OK(weft_graph_stats_get(g, &st));
    CHECK_EQ_U64(st.failed, WIDE);
    weft_graph_destroy(g);
    done_ex(ex);
}

TEST(wide_ready_set_is_spread_over_workers)
{
    /* 20k independent nodes: every one runs exactly once, whoever submits it */
    for (size_t c = 1; c < 3; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        enum {
            N = 20000
        };
        static weft_node t[N];
        for (int i = 0; i < N; i++) t[i] = lit(g, add, i);
        reset_runs();
        CHECK_OK(weft_graph_compute(g, ex, t, N, NULL));
        for (int i = 0; i < N; i++) {
            CHECK_EQ_INT(atomic_load(&runs[t[i]]), 1);
            if (result_i64(g, t[i]) != i) break;
        }
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

/* ------------------------------------------------------------------------
 * Merge and persist
 * ------------------------------------------------------------------------ */

TEST(merge_identical_calls)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph_options go = {.flags = WEFT_GRAPH_MERGE};
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(&go, &g));
    weft_node a = lit(g, add, 7), a2 = lit(g, add, 7), b = lit(g, add, 8);
    CHECK_EQ_INT(a, a2);
    CHECK(a != b);
    weft_node h1 = lit(g, hashmix, 7); /* another task, same bytes: not merged */
    CHECK(h1 != a);
    weft_node s1 = call2(g, add, a, b), s2 = call2(g, add, a2, b), s3 = call2(g, add, b, a);
    CHECK_EQ_INT(s1, s2);
    CHECK(s3 != s1); /* argument order matters */
    /* literal bytes of another length are another call */
    int32_t seven32 = 7;
    weft_arg short_arg = weft_arg_bytes(&seven32, 4);
    weft_node a4;
    REQUIRE_OK(weft_graph_call(g, add, &short_arg, 1, &a4));
    CHECK(a4 != a);
    weft_graph_stats st;
    CHECK_OK(weft_graph_stats_get(g, &st));
    CHECK_EQ_U64(st.merged, 2);
    CHECK_EQ_U64(st.nodes, 6);
    /* a merged diamond runs its shared node once */
    weft_node t[2] = {s1, s3};
    reset_runs();
    CHECK_OK(weft_graph_compute(g, ex, t, 2, NULL));
    CHECK_EQ_INT(result_i64(g, s1), 15);
    CHECK_EQ_INT(result_i64(g, s3), 15);
    CHECK_EQ_INT(atomic_load(&runs[a]), 1);
    weft_graph_destroy(g);

    /* without the flag nothing merges */
    REQUIRE_OK(weft_graph_create(NULL, &g));
    CHECK(lit(g, add, 7) != lit(g, add, 7));
    weft_graph_destroy(g);
    done_ex(ex);
}

TEST(merge_many_keeps_one_node_per_distinct_call)
{
    weft_graph_options go = {.flags = WEFT_GRAPH_MERGE};
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(&go, &g));
    size_t n = 20000;
    for (size_t i = 0; i < n; i++) lit(g, add, (int64_t)(i % 1000));
    CHECK_EQ_U64(weft_graph_size(g), n < 1000 ? n : 1000);
    weft_graph_destroy(g);
}

TEST(persist_computes_more_targets_without_redoing)
{
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_node a = lit(g, add, 1), b = lit(g, add, 2);
        weft_node ab = call2(g, add, a, b);
        reset_runs();
        CHECK_OK(weft_graph_compute(g, ex, &ab, 1, NULL));
        CHECK_EQ_INT(result_i64(g, ab), 3);
        /* more nodes on top of the computed target */
        weft_node c2 = call2(g, add, ab, ab);
        weft_node t[2] = {ab, c2};
        CHECK_OK(weft_graph_compute(g, ex, t, 2, NULL));
        CHECK_EQ_INT(result_i64(g, c2), 6);
        CHECK_EQ_INT(atomic_load(&runs[a]), 1);
        CHECK_EQ_INT(atomic_load(&runs[ab]), 1);
        CHECK_EQ_INT(atomic_load(&runs[c2]), 1);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.reused, 1); /* ab, held from the first compute */
        CHECK_EQ_U64(st.executed, 4);
        /* an intermediate (a) was freed; needing it again recomputes it */
        CHECK_EQ_INT(weft_graph_state(g, a), WEFT_NODE_RELEASED);
        weft_node d = call2(g, add, a, c2);
        CHECK_OK(weft_graph_compute(g, ex, &d, 1, NULL));
        CHECK_EQ_INT(result_i64(g, d), 7);
        CHECK_EQ_INT(atomic_load(&runs[a]), 2);
        CHECK_EQ_INT(atomic_load(&runs[c2]), 1);
        /* keep-all keeps intermediates: nothing runs twice afterwards */
        weft_node e = lit(g, add, 10), f = call2(g, add, e, d);
        weft_compute_options ko = {.flags = WEFT_COMPUTE_KEEP_ALL};
        CHECK_OK(weft_graph_compute(g, ex, &f, 1, &ko));
        CHECK_EQ_INT(weft_graph_state(g, e), WEFT_NODE_DONE);
        CHECK_EQ_INT(result_i64(g, e), 10);
        weft_node h = call2(g, add, e, e);
        CHECK_OK(weft_graph_compute(g, ex, &h, 1, NULL));
        CHECK_EQ_INT(result_i64(g, h), 20);
        CHECK_EQ_INT(atomic_load(&runs[e]), 1);
        /* release drops a held output; the next compute recomputes it */
        CHECK_OK(weft_graph_release(g, ab));
        CHECK_EQ_INT(weft_graph_state(g, ab), WEFT_NODE_RELEASED);
        CHECK_RC(weft_graph_result(g, ab, NULL, NULL), WEFT_EAGAIN);
        CHECK_OK(weft_graph_compute(g, ex, &ab, 1, NULL));
        CHECK_EQ_INT(atomic_load(&runs[ab]), 2);
        CHECK_OK(weft_graph_release(g, ab));
        CHECK_OK(weft_graph_release(g, ab)); /* nothing held: still fine */
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

/* ------------------------------------------------------------------------
 * Nesting: a compute inside a task, on one worker
 * ------------------------------------------------------------------------ */

static int nested_compute(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    weft_graph *g;
    int rc = weft_graph_create(NULL, &g);
    if (rc) return rc;
    weft_node prev = lit(g, add, 0);
    for (int i = 0; i < 50; i++) {
        int64_t one = 1;
        weft_arg a[2] = {weft_arg_node(prev), weft_arg_bytes(&one, 8)};
        if ((rc = weft_graph_call(g, add, a, 2, &prev))) break;
    }
    if (!rc) rc = weft_graph_compute(g, weft_ctx_executor(ctx), &prev, 1, NULL);
    const void *d;
    size_t l;
    if (!rc) rc = weft_graph_result(g, prev, &d, &l);
    if (!rc) rc = weft_ctx_set_output(ctx, d, l);
    weft_graph_destroy(g);
    return rc;
}
WEFT_TASK_REGISTER(nested_compute);

TEST(compute_inside_a_task_helps_on_one_worker)
{
    config cs[] = {{WEFT_BACKEND_THREADS, 1, false, "threads1"}, configs[0]};
    for (size_t c = 0; c < 2; c++) {
        weft_executor *ex = make_ex(&cs[c]);
        REQUIRE(ex);
        weft_future *f;
        REQUIRE_OK(weft_submit(ex, nested_compute, NULL, 0, &f));
        const void *d;
        size_t l;
        CHECK_OK(weft_future_result(f, 60, &d, &l));
        int64_t v = 0;
        if (l == 8) memcpy(&v, d, 8);
        CHECK_EQ_INT(v, 50);
        weft_future_release(f);
        done_ex(ex);
    }
}

/* ------------------------------------------------------------------------
 * DOT output, parsed back
 * ------------------------------------------------------------------------ */

typedef struct dot_node {
    char task[64];
    char state[32];
    bool has_duration;
} dot_node;

/* Parses the subset weft writes: `nID [label="task\nstate[\nduration]",
 * ...];` and `nP -> nC [label="k"];` / `nP -> nC;`. Returns the number of
 * nodes, or -1 on a line it does not understand. */
static int parse_dot(const char *path, dot_node *nodes, int maxn, int (*edges)[3], int *nedges)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0, ne = 0, lineno = 0;
    bool open = false, closed = false;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        unsigned id, p, c, k;
        char lab[512];
        if (!strncmp(line, "digraph weft {", 14)) {
            open = true;
        } else if (!strcmp(line, "}\n")) {
            closed = true;
        } else if (!strncmp(line, "  node [", 8) || !strncmp(line, "  edge [", 8)) {
        } else if (sscanf(line, "  n%u -> n%u [label=\"%u\"];", &p, &c, &k) == 3) {
            edges[ne][0] = (int)p, edges[ne][1] = (int)c, edges[ne][2] = (int)k, ne++;
        } else if (sscanf(line, "  n%u -> n%u;", &p, &c) == 2) {
            edges[ne][0] = (int)p, edges[ne][1] = (int)c, edges[ne][2] = -1, ne++;
        } else if (sscanf(line, "  n%u [label=\"%511[^\"]\"", &id, lab) == 2) {
            if ((int)id != n || n >= maxn) break;
            char *s1 = strstr(lab, "\\n");
            if (!s1) break;
            *s1 = '\0';
            snprintf(nodes[n].task, sizeof nodes[n].task, "%.63s", lab);
            char *st = s1 + 2, *s2 = strstr(st, "\\n");
            nodes[n].has_duration = s2 != NULL;
            if (s2) *s2 = '\0';
            snprintf(nodes[n].state, sizeof nodes[n].state, "%.31s", st);
            n++;
        } else {
            printf("    dot line %d not understood: %s", lineno, line);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    *nedges = ne;
    return open && closed ? n : -1;
}

TEST(dot_output_parses_back)
{
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node a = lit(g, add, 1), b = lit(g, fail13, 13), c = call2(g, add, a, a);
    weft_arg x = weft_arg_node(b);
    weft_node d, never = lit(g, hashmix, 5);
    REQUIRE_OK(weft_graph_call(g, add, &x, 1, &d));
    weft_node t[2] = {c, d};
    CHECK_RC(weft_graph_compute(g, ex, t, 2, NULL), WEFT_ERANGE_TEST);
    CHECK_OK(weft_graph_write_dot(g, "graph.dot"));
    dot_node nodes[16];
    int edges[16][3], ne = 0;
    int n = parse_dot("graph.dot", nodes, 16, edges, &ne);
    REQUIRE(n == 5);
    CHECK_EQ_STR(nodes[a].task, "add");
    CHECK_EQ_STR(nodes[a].state, "released");
    CHECK(nodes[a].has_duration);
    CHECK_EQ_STR(nodes[b].task, "fail13");
    CHECK_EQ_STR(nodes[b].state, "failed");
    CHECK_EQ_STR(nodes[c].state, "done");
    CHECK_EQ_STR(nodes[d].state, "failed");
    CHECK(!nodes[d].has_duration);
    CHECK_EQ_STR(nodes[never].task, "hashmix");
    CHECK_EQ_STR(nodes[never].state, "new");
    CHECK(!nodes[never].has_duration);
    /* edges: a->c twice (args 0 and 1), b->d */
    CHECK_EQ_INT(ne, 3);
    int seen = 0;
    for (int i = 0; i < ne; i++) {
        if (edges[i][0] == (int)a && edges[i][1] == (int)c &&
            (edges[i][2] == 0 || edges[i][2] == 1))
            seen |= 1 << edges[i][2];
        if (edges[i][0] == (int)b && edges[i][1] == (int)d && edges[i][2] == -1) seen |= 4;
    }
    CHECK_EQ_INT(seen, 7);
    /* Graphviz itself, when installed, accepts it */
    if (system("command -v dot >/dev/null 2>&1") == 0)
        CHECK_EQ_INT(system("dot -Tsvg graph.dot -o graph.svg"), 0);
    CHECK_RC(weft_graph_write_dot(g, "/nonexistent-dir/x.dot"), -ENOENT);
    weft_graph_destroy(g);
    done_ex(ex);
}

/* ------------------------------------------------------------------------
 * Argument blocks and bad input
 * ------------------------------------------------------------------------ */

/* Plain bytes (the input of weft_submit, weft_map, weft_parallel or a
 * one-argument node) read as one argument; a block cut short is refused. */
TEST(args_of_plain_input_and_bad_blocks)
{
    char junk[64] = "hello";
    size_t cnt = 7;
    CHECK_OK(weft_args_count(junk, sizeof junk, &cnt));
    CHECK_EQ_INT(cnt, 1);
    CHECK_OK(weft_args_count(NULL, 0, &cnt));
    CHECK_EQ_INT(cnt, 1);
    CHECK_OK(weft_args_count(junk, 3, &cnt));
    CHECK_EQ_INT(cnt, 1);
    CHECK_ERR(weft_args_count(NULL, 3, &cnt), WEFT_EINVAL);
    CHECK_EQ_INT(cnt, 0);
    CHECK_ERR(weft_args_count(junk, sizeof junk, NULL), WEFT_EINVAL);
    const void *d = NULL;
    size_t l = 5;
    CHECK_OK(weft_args_get(junk, sizeof junk, 0, &d, &l));
    CHECK(d == junk && l == sizeof junk);
    CHECK_ERR(weft_args_get(junk, sizeof junk, 1, &d, &l), WEFT_EINVAL);
    CHECK(d == NULL && l == 0);
    CHECK(strstr(weft_last_error(), "has 1 argument") != NULL);
    /* a copying block whose entry points outside is refused */
    unsigned char blk[48] = {0};
    uint32_t hdr[4] = {0x77617267u, 2, 1, 0};
    uint64_t ent[2] = {40, 100};
    memcpy(blk, hdr, 16);
    memcpy(blk + 16, ent, 16);
    CHECK_OK(weft_args_count(blk, sizeof blk, &cnt));
    CHECK_EQ_INT(cnt, 1);
    CHECK_ERR(weft_args_get(blk, sizeof blk, 0, &d, &l), WEFT_EINVAL);
    CHECK_ERR(weft_args_get(blk, sizeof blk, 1, &d, &l), WEFT_EINVAL);
    ent[1] = 8;
    memcpy(blk + 16, ent, 16);
    CHECK_OK(weft_args_get(blk, sizeof blk, 0, &d, &l));
    CHECK(d == blk + 40 && l == 8);
}

TEST(bad_input)
{
    weft_graph *g = (weft_graph *)1;
    CHECK_ERR(weft_graph_create(NULL, NULL), WEFT_EINVAL);
    weft_graph_options bad = {.flags = 0x100};
    CHECK_ERR(weft_graph_create(&bad, &g), WEFT_EINVAL);
    CHECK(g == NULL);
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node n = 5;
    CHECK_ERR(weft_graph_call(NULL, add, NULL, 0, &n), WEFT_EINVAL);
    CHECK_EQ_INT(n, WEFT_NODE_NONE);
    CHECK_ERR(weft_graph_call(g, NULL, NULL, 0, &n), WEFT_EINVAL);
    CHECK_ERR(weft_graph_call(g, add, NULL, 1, &n), WEFT_EINVAL);
    CHECK_ERR(weft_graph_call(g, add, NULL, 0, NULL), WEFT_EINVAL);
    weft_arg unknown = weft_arg_node(3);
    CHECK_ERR(weft_graph_call(g, add, &unknown, 1, &n), WEFT_EINVAL);
    weft_arg nulldata = weft_arg_bytes(NULL, 4);
    CHECK_ERR(weft_graph_call(g, add, &nulldata, 1, &n), WEFT_EINVAL);
    weft_arg empty = weft_arg_bytes(NULL, 0);
    CHECK_OK(weft_graph_call(g, add, &empty, 1, &n));
    CHECK_EQ_INT(n, 0);
    weft_executor *ex = make_ex(&configs[0]);
    REQUIRE(ex);
    CHECK_ERR(weft_graph_compute(NULL, ex, &n, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_compute(g, NULL, &n, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_compute(g, ex, NULL, 1, NULL), WEFT_EINVAL);
    weft_node nope = 7;
    CHECK_ERR(weft_graph_compute(g, ex, &nope, 1, NULL), WEFT_EINVAL);
    weft_compute_options bo = {.flags = 0x80};
    CHECK_ERR(weft_graph_compute(g, ex, &n, 1, &bo), WEFT_EINVAL);
    weft_compute_options br = {.retries = -1};
    CHECK_ERR(weft_graph_compute(g, ex, &n, 1, &br), WEFT_EINVAL);
    /* the empty argument's task fails (it wants 8 bytes): a task error */
    CHECK_RC(weft_graph_compute(g, ex, &n, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_result(g, 9, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_result(NULL, 0, NULL, NULL), WEFT_EINVAL);
    CHECK(weft_graph_error(g, 9) == NULL);
    CHECK(weft_graph_duration(g, 9) < 0);
    CHECK_EQ_INT(weft_graph_state(g, 9), WEFT_NODE_NEW);
    CHECK_ERR(weft_graph_release(g, 9), WEFT_EINVAL);
    CHECK_ERR(weft_graph_stats_get(g, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_write_dot(g, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_graph_write_dot(NULL, "x.dot"), WEFT_EINVAL);
    CHECK_EQ_INT(weft_graph_size(NULL), 0);
    CHECK_EQ_STR(weft_node_state_name(WEFT_NODE_CANCELLED), "cancelled");
    CHECK_EQ_STR(weft_node_state_name((weft_node_state)42), "unknown");
    weft_graph_destroy(NULL);
    weft_graph_destroy(g);
    done_ex(ex);
}

/* ------------------------------------------------------------------------
 * Futures as nodes (issue 11, control 14: promises in graphs)
 * ------------------------------------------------------------------------ */

struct promise_later {
    weft_future *p;
    int64_t v;
    int code;
};

static void *complete_later(void *arg)
{
    struct promise_later *pl = arg;
    check_sleep(0.03);
    if (pl->code)
        weft_promise_set_error(pl->p, pl->code, "the producer gave up");
    else
        weft_promise_set_result(pl->p, &pl->v, sizeof pl->v);
    return NULL;
}

TEST(promise_as_a_node_input)
{
    for (size_t c = 0; c < NCONFIGS; c++) {
        weft_executor *ex = make_ex(&configs[c]);
        REQUIRE(ex);
        weft_graph *g;
        REQUIRE_OK(weft_graph_create(NULL, &g));
        weft_future *p, *q;
        REQUIRE_OK(weft_promise_create(&p));
        REQUIRE_OK(weft_promise_create(&q));
        weft_node np, nq, x, y, z;
        REQUIRE_OK(weft_graph_future(g, p, &np));
        REQUIRE_OK(weft_graph_future(g, q, &nq));
        /* x = p + 1; y = x + q (q already done); z = p + 40 */
        int64_t one = 1, forty = 40;
        weft_arg ax[2] = {weft_arg_node(np), weft_arg_bytes(&one, 8)};
        REQUIRE_OK(weft_graph_call(g, add, ax, 2, &x));
        weft_arg ay[2] = {weft_arg_node(x), weft_arg_node(nq)};
        REQUIRE_OK(weft_graph_call(g, add, ay, 2, &y));
        weft_arg az[2] = {weft_arg_node(np), weft_arg_bytes(&forty, 8)};
        REQUIRE_OK(weft_graph_call(g, add, az, 2, &z));
        int64_t qv = 1000;
        CHECK_OK(weft_promise_set_result(q, &qv, sizeof qv));
        struct promise_later pl = {p, 2, 0};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, complete_later, &pl) == 0);
        weft_node targets[2] = {y, z};
        CHECK_OK(weft_graph_compute(g, ex, targets, 2, NULL));
        pthread_join(th, NULL);
        CHECK_EQ_INT(result_i64(g, y), 1003);
        CHECK_EQ_INT(result_i64(g, z), 42);
        CHECK(weft_graph_duration(g, np) < 0);
        weft_graph_stats st;
        CHECK_OK(weft_graph_stats_get(g, &st));
        CHECK_EQ_U64(st.executed, 3); /* x, y, z: the future nodes run no task */
        weft_graph_destroy(g);        /* drops the graph's references */
        CHECK_EQ_INT(weft_future_state_get(p), WEFT_FUTURE_DONE);
        weft_future_release(p);
        weft_future_release(q);

        /* a failed promise fails its node and its consumers */
        REQUIRE_OK(weft_graph_create(NULL, &g));
        REQUIRE_OK(weft_promise_create(&p));
        REQUIRE_OK(weft_graph_future(g, p, &np));
        weft_arg a1 = weft_arg_node(np);
        REQUIRE_OK(weft_graph_call(g, add, &a1, 1, &x));
        pl = (struct promise_later){p, 0, WEFT_EPERM};
        REQUIRE(pthread_create(&th, NULL, complete_later, &pl) == 0);
        CHECK_RC(weft_graph_compute(g, ex, &x, 1, NULL), WEFT_EPERM);
        pthread_join(th, NULL);
        CHECK_MSG(strstr(weft_last_error(), "future") &&
                      strstr(weft_last_error(), "the producer gave up"),
                  "last error: %s", weft_last_error());
        CHECK_EQ_INT(weft_graph_state(g, np), WEFT_NODE_FAILED);
        CHECK_RC(weft_graph_result(g, x, NULL, NULL), WEFT_EDEPEND);
        weft_future_release(p); /* the graph still holds it */
        weft_graph_destroy(g);
        done_ex(ex);
    }
}

/* Graphs built, computed and destroyed in a loop on several threads at once:
 * each destroy leaves its slabs, arena blocks and arrays to the next graph
 * (src/graph/spare.c), so every round but the first runs on memory another
 * graph used -- of another size, from another thread. Sizes cross the slab
 * boundary (4096 nodes) and the arena block (64 KiB of arguments); literal
 * arguments of several sizes fill the arena unevenly. Results are checked
 * each round: a block handed out twice, or not cleared, shows as a wrong
 * sum (and as a report under ASan, where kept blocks are poisoned, or TSan). */
struct spare_loop {
    weft_executor *ex;
    unsigned seed;
    int bad;
    char why[256];
};

static void *spare_loop_thread(void *arg)
{
    struct spare_loop *L = arg;
    unsigned s = L->seed;
    for (int round = 0; round < 40; round++) {
        s = s * 1103515245u + 12345u;
        size_t leaves = 100 + (s >> 8) % 9000; /* 100 .. 9099: up to 3 slabs */
        weft_graph *g;
        if (weft_graph_create(NULL, &g)) {
            L->bad++;
            return NULL;
        }
        int64_t want = 0;
        weft_node acc = WEFT_NODE_NONE;
        for (size_t i = 0; i < leaves && !L->bad; i++) {
            int64_t v = (int64_t)(i * 7 + round);
            want += v;
            unsigned char pad[200] = {0};
            weft_arg a[3] = {weft_arg_bytes(&v, 8), weft_arg_node(acc),
                             weft_arg_bytes(pad, (i * 13) % 200)};
            /* add() wants 8-byte arguments: the padding goes to a node of its
             * own that is never a target (its bytes sit in the arena) */
            weft_node n, junk;
            if (weft_graph_call(g, hashmix, &a[2], 1, &junk) ||
                weft_graph_call(g, add, a, acc == WEFT_NODE_NONE ? 1 : 2, &n))
                L->bad++;
            acc = n;
        }
        if (!L->bad && weft_graph_compute(g, L->ex, &acc, 1, NULL)) L->bad++;
        const void *d;
        size_t l;
        int64_t got;
        if (!L->bad && (weft_graph_result(g, acc, &d, &l) || l != 8)) L->bad++;
        if (!L->bad) {
            memcpy(&got, d, 8);
            if (got != want) L->bad++;
        }
        if (L->bad)
            snprintf(L->why, sizeof L->why, "round %d, %zu leaves: %s", round, leaves,
                     weft_last_error());
        weft_graph_destroy(g);
        if (L->bad) break;
    }
    return NULL;
}

TEST(graphs_in_a_loop_on_several_threads_reuse_memory_safely)
{
    enum {
        T = 4
    };
    weft_executor *ex = make_ex(&configs[1]);
    REQUIRE(ex);
    struct spare_loop L[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        L[i] = (struct spare_loop){ex, 77u + (unsigned)i * 1000u, 0, ""};
        REQUIRE(pthread_create(&th[i], NULL, spare_loop_thread, &L[i]) == 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(L[i].bad == 0, "thread %d: a graph gave a wrong result or failed: %s", i,
                  L[i].why);
    }
    done_ex(ex);
}

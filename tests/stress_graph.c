/* stress_graph.c : many random graphs computed at once on one executor from
 * several threads, with failing nodes, cancel-on-error, persist rounds and
 * compute from inside tasks, each result checked against a serial
 * evaluation. Arguments: [threads] [scale]; WEFT_STRESS_SCALE scales the
 * number of rounds. */
// weft-test-timeout: 300
#include "check.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* order-sensitive hash of the arguments; fails when the first argument's
 * value is 0 mod 97 (a literal chosen so by the test) */
static int hnode(weft_ctx *ctx, const void *in, size_t len)
{
    size_t n;
    int rc0 = weft_args_count(in, len, &n);
    if (rc0) return rc0;
    uint64_t h = 0x1234;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t l;
        if (weft_args_get(in, len, i, &d, &l) || l != 8)
            return weft_ctx_fail(ctx, WEFT_EINVAL, "bad argument %zu", i);
        uint64_t v;
        memcpy(&v, d, 8);
        if (i == 0 && v == 97 * 1000) return weft_ctx_fail(ctx, WEFT_ETASK, "planted failure");
        h = mix(h, v);
    }
    if (h % 16 == 0) sched_yield(); /* some jitter */
    return weft_ctx_set_output(ctx, &h, 8);
}
WEFT_TASK_REGISTER(hnode);

#define MAXN 6000

typedef struct dag {
    size_t n;
    int nargs[MAXN];
    int64_t arg[MAXN][3]; /* >= 0 node, < 0 literal -(v+1) */
    bool fails[MAXN];     /* the node itself fails */
} dag;

static void dag_make(dag *d, size_t n, uint64_t seed, bool plant)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    d->n = n;
    for (size_t i = 0; i < n; i++) {
        d->nargs[i] = (int)weft_rng_range(&r, 0, 3);
        d->fails[i] = false;
        for (int k = 0; k < d->nargs[i]; k++) {
            if (i > 0 && weft_rng_range(&r, 0, 2) > 0)
                d->arg[i][k] = weft_rng_range(&r, i > 20 ? (int64_t)i - 20 : 0, (int64_t)i - 1);
            else
                d->arg[i][k] = -(weft_rng_range(&r, 1, 96000) + 1);
        }
        if (plant && d->nargs[i] > 0 && weft_rng_range(&r, 0, 60) == 0) {
            d->arg[i][0] = -(97 * 1000 + 1);
            d->fails[i] = true;
        }
    }
}

/* expected: value, or failed (self or an input) */
static void dag_eval(const dag *d, uint64_t *v, bool *bad)
{
    for (size_t i = 0; i < d->n; i++) {
        bad[i] = d->fails[i];
        uint64_t h = 0x1234;
        for (int k = 0; k < d->nargs[i]; k++) {
            int64_t a = d->arg[i][k];
            if (a >= 0 && bad[a]) bad[i] = true;
            h = mix(h, a >= 0 ? v[a] : (uint64_t)(-(a + 1)));
        }
        v[i] = h;
    }
}

typedef struct worker_arg {
    weft_executor *ex;
    int id;
    int rounds;
    atomic_int *checked;
} worker_arg;

static void one_round(weft_executor *ex, uint64_t seed, int *checked)
{
    dag *dp = malloc(sizeof *dp);
    uint64_t *want = malloc(MAXN * sizeof *want);
    bool *bad = malloc(MAXN * sizeof *bad);
    REQUIRE(dp && want && bad);
    weft_rng r;
    weft_rng_seed(&r, seed);
    /* mostly small graphs; every tenth is wide enough that its ready set is
     * submitted by spawn tasks from the workers */
    size_t n = seed % 10 == 0 ? MAXN : (size_t)weft_rng_range(&r, 1, 600);
    bool plant = weft_rng_range(&r, 0, 2) == 0;
    bool cancel = weft_rng_range(&r, 0, 3) == 0;
    dag_make(dp, n, seed, plant);
    dag_eval(dp, want, bad);
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    for (size_t i = 0; i < n; i++) {
        weft_arg a[3];
        int64_t lits[3];
        for (int k = 0; k < dp->nargs[i]; k++) {
            if (dp->arg[i][k] >= 0) {
                a[k] = weft_arg_node((weft_node)dp->arg[i][k]);
            } else {
                lits[k] = -(dp->arg[i][k] + 1);
                a[k] = weft_arg_bytes(&lits[k], 8);
            }
        }
        weft_node id;
        REQUIRE_OK(weft_graph_call(g, hnode, a, (size_t)dp->nargs[i], &id));
    }
    /* two persist rounds: a random half of the nodes, then all */
    weft_node *t = malloc(n * sizeof *t);
    REQUIRE(t);
    for (int round = 0; round < 2; round++) {
        size_t nt = 0;
        for (size_t i = 0; i < n; i++)
            if (round == 1 || weft_rng_range(&r, 0, 1)) t[nt++] = (weft_node)i;
        weft_compute_options o = {.flags = cancel ? WEFT_COMPUTE_CANCEL_ON_ERROR : 0};
        int rc = weft_graph_compute(g, ex, t, nt, &o);
        bool any_bad = false;
        for (size_t k = 0; k < nt; k++) {
            size_t i = t[k];
            const void *p;
            size_t l;
            int got = weft_graph_result(g, t[k], &p, &l);
            if (bad[i]) {
                any_bad = true;
                CHECK_MSG(got == WEFT_ETASK || got == WEFT_EDEPEND || got == WEFT_ECANCELLED,
                          "node %zu: %d", i, got);
            } else if (got == 0) {
                uint64_t v;
                memcpy(&v, p, 8);
                CHECK_MSG(l == 8 && v == want[i], "node %zu of %zu: wrong value", i, n);
                (*checked)++;
            } else {
                /* only cancel-on-error may leave a good node undone */
                CHECK_MSG(cancel && got == WEFT_ECANCELLED, "node %zu: %d (%s)", i, got,
                          weft_graph_error(g, t[k]) ? weft_graph_error(g, t[k]) : "");
            }
        }
        CHECK_MSG(any_bad ? rc != 0 : rc == 0, "compute returned %d (bad %d)", rc, any_bad);
    }
    weft_graph_stats st;
    CHECK_OK(weft_graph_stats_get(g, &st));
    CHECK(st.bytes_live == 8 * st.outputs_live);
    free(t);
    weft_graph_destroy(g);
    free(dp);
    free(want);
    free(bad);
}

static void *submitter(void *p)
{
    worker_arg *w = p;
    int checked = 0;
    for (int i = 0; i < w->rounds; i++)
        one_round(w->ex, (uint64_t)w->id * 100003 + (uint64_t)i, &checked);
    atomic_fetch_add(w->checked, checked);
    return NULL;
}

/* a task that computes a graph of its own (nesting) */
static int inner(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t seed = 0;
    if (len == 8) memcpy(&seed, in, 8);
    int checked = 0;
    one_round(weft_ctx_executor(ctx), seed, &checked);
    return weft_ctx_set_output(ctx, &checked, sizeof checked);
}
WEFT_TASK_REGISTER(inner);

TEST(concurrent_random_graphs_with_failures)
{
    int threads = check_arg_threads(4);
    int rounds = (int)check_scaled(200, 4);
    weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = 3};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    atomic_int checked = 0;
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    worker_arg *wa = calloc((size_t)threads, sizeof *wa);
    REQUIRE(th && wa);
    for (int i = 0; i < threads; i++) {
        wa[i] = (worker_arg){ex, i, rounds, &checked};
        REQUIRE(pthread_create(&th[i], NULL, submitter, &wa[i]) == 0);
    }
    /* meanwhile, graphs computed from inside tasks of the same executor */
    enum {
        NINNER = 8
    };
    weft_future *fs[NINNER];
    for (int i = 0; i < NINNER; i++) {
        uint64_t seed = 777000 + (uint64_t)i;
        REQUIRE_OK(weft_submit(ex, inner, &seed, 8, &fs[i]));
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NINNER; i++) {
        CHECK_OK(weft_future_result(fs[i], 120, NULL, NULL));
        weft_future_release(fs[i]);
    }
    printf("    %d threads x %d rounds: %d node values checked\n", threads, rounds,
           atomic_load(&checked));
    CHECK(atomic_load(&checked) > 0);
    free(th);
    free(wa);
    CHECK_OK(weft_executor_destroy(ex));
}

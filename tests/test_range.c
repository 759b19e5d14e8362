/* test_range.c : range loops (weft_parallel_for, weft_parallel_reduce) on
 * every level: every element visited exactly once for lengths 0, 1, primes
 * and 2^31+ with every partitioner; reductions equal to the bit to a serial
 * fixed-order reduction written here from the documented rule, on every
 * level and worker count 1..4; nested loops 3 deep on one worker; errors
 * and cancels stop the loop.
 *
 * tests/CMakeLists.txt also runs its mpi case under `mpirun -n 2, 3, 5`
 * (label mpi): rank 0 runs it on 1, 2 and 4 worker ranks; run plainly, it
 * SKIPs.
 * weft-test-timeout: 300 */
#define CHECK_CUSTOM_MAIN
#include "check.h"

static bool under_mpi;

#define WEFT_ERANGE_TEST_CODE (-ERANGE)

static const weft_partitioner parts[] = {WEFT_PARTITION_AUTO, WEFT_PARTITION_STATIC,
                                         WEFT_PARTITION_DYNAMIC};
static const char *part_name[] = {"auto", "static", "dynamic"};

static weft_executor *make_ex(weft_backend b, int workers)
{
    weft_options o = {0};
    o.backend = b;
    o.workers = workers;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) {
        check__fail(__FILE__, __LINE__, "executor_create(%d, %d): %s", (int)b, workers,
                    weft_last_error());
        return NULL;
    }
    return ex;
}

/* ---- exactly once: per-element counts ---- */

typedef struct counts {
    int64_t begin;
    _Atomic uint32_t *c;
    _Atomic int64_t calls;
    _Atomic int bad; /* a call with lo >= hi */
} counts;

static int count_body(int64_t lo, int64_t hi, void *arg)
{
    counts *k = arg;
    if (lo >= hi) atomic_store(&k->bad, 1);
    for (int64_t i = lo; i < hi; i++)
        atomic_fetch_add_explicit(&k->c[i - k->begin], 1, memory_order_relaxed);
    atomic_fetch_add(&k->calls, 1);
    return 0;
}

static void check_once(weft_executor *ex, int64_t begin, int64_t n, weft_partitioner p,
                       int64_t grain)
{
    counts k = {.begin = begin};
    k.c = calloc((size_t)(n ? n : 1), sizeof *k.c);
    REQUIRE(k.c);
    weft_range_options o = {.partitioner = p, .grain = grain};
    CHECK_OK(weft_parallel_for(ex, begin, begin + n, count_body, &k, &o));
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&k.c[i]) != 1;
    CHECK_MSG(wrong == 0, "n %lld begin %lld %s grain %lld: %lld elements not visited once",
              (long long)n, (long long)begin, part_name[p], (long long)grain, (long long)wrong);
    CHECK(!atomic_load(&k.bad));
    if (n == 0) CHECK_EQ_INT(atomic_load(&k.calls), 0);
    free(k.c);
}

static const int64_t lengths[] = {0, 1, 2, 3, 7, 97, 1009, 65537, 100003};

static void once_on(weft_executor *ex)
{
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
        for (int p = 0; p < 3; p++) {
            check_once(ex, 0, lengths[li], parts[p], 0);
            check_once(ex, -12345, lengths[li], parts[p], 0);
            check_once(ex, 5, lengths[li], parts[p], 13);
        }
}

TEST(for_visits_every_element_once_serial)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    once_on(ex);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(for_visits_every_element_once_threads_1_to_4)
{
    for (int w = 1; w <= 4; w++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        once_on(ex);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* ---- 2^31+ elements: record the pieces, check that they tile the range ---- */

typedef struct pieces {
    _Atomic size_t n;
    size_t cap;
    int64_t (*p)[2];
} pieces;

static int piece_body(int64_t lo, int64_t hi, void *arg)
{
    pieces *ps = arg;
    size_t i = atomic_fetch_add(&ps->n, 1);
    if (i >= ps->cap) return WEFT_ERANGE_TEST_CODE;
    ps->p[i][0] = lo;
    ps->p[i][1] = hi;
    return 0;
}

static int cmp_piece(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void check_tiles(weft_executor *ex, int64_t begin, int64_t end, weft_partitioner p,
                        int64_t grain)
{
    pieces ps = {.cap = 1 << 16};
    ps.p = malloc(ps.cap * sizeof *ps.p);
    REQUIRE(ps.p);
    weft_range_options o = {.partitioner = p, .grain = grain};
    CHECK_OK(weft_parallel_for(ex, begin, end, piece_body, &ps, &o));
    size_t n = atomic_load(&ps.n);
    REQUIRE(n > 0 && n <= ps.cap);
    qsort(ps.p, n, sizeof *ps.p, cmp_piece);
    int64_t at = begin;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ok = ps.p[i][0] == at && ps.p[i][1] > ps.p[i][0];
        at = ps.p[i][1];
    }
    CHECK_MSG(ok && at == end, "[%lld, %lld) %s: %zu pieces do not tile the range",
              (long long)begin, (long long)end, part_name[p], n);
    free(ps.p);
}

TEST(for_over_2_31_plus_elements)
{
    const int64_t big = ((int64_t)1 << 31) + 11;
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    check_tiles(ex, 0, big, WEFT_PARTITION_AUTO, 0);
    check_tiles(ex, -((int64_t)1 << 40), -((int64_t)1 << 40) + ((int64_t)1 << 33) + 3,
                WEFT_PARTITION_AUTO, 0);
    CHECK_OK(weft_executor_destroy(ex));
    for (int w = 1; w <= 4; w++) {
        ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        for (int p = 0; p < 3; p++) check_tiles(ex, 0, big, parts[p], 0);
        check_tiles(ex, 7, 7 + big, WEFT_PARTITION_DYNAMIC, (int64_t)1 << 20);
        check_tiles(ex, INT64_MAX - big, INT64_MAX, WEFT_PARTITION_AUTO, 0);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* ---- reductions: the bits of a serial fixed-order reduction ---- */

/* terms of wildly different magnitudes, so the order of the additions
 * shows in the last bits */
static double term(int64_t i)
{
    double x = 1.0 / (double)(i + 1);
    return (i % 3 == 0) ? x * 1e12 : (i % 3 == 1) ? -x * 1e-3 : x;
}

static int sum_body(int64_t lo, int64_t hi, void *acc, void *arg)
{
    (void)arg;
    double s = *(double *)acc;
    for (int64_t i = lo; i < hi; i++) s += term(i);
    *(double *)acc = s;
    return 0;
}

static void sum_combine(void *acc, const void *right, void *arg)
{
    (void)arg;
    *(double *)acc += *(const double *)right;
}
WEFT_RANGE_REGISTER_REDUCE(sum_body, sum_combine);

/* The documented rule, written independently of the library: the largest
 * power of two of leaves <= n / grain (at most 2^12 without a grain), leaf
 * i starting at i*q + min(i, r); each leaf summed from the identity from
 * left to right; the leaves combined pairwise, then pairs of pairs. */
static double reference_sum(int64_t begin, int64_t n, int64_t grain)
{
    if (n == 0) return 0.0;
    int64_t g = grain > 0 ? grain : 1, m = n / g;
    int cap = grain > 0 ? 40 : 12, k = 0;
    while (k < cap && (m >> (k + 1)) != 0) k++;
    int64_t nleaf = (int64_t)1 << k, q = n / nleaf, r = n % nleaf;
    double *v = malloc((size_t)nleaf * sizeof *v);
    for (int64_t i = 0; i < nleaf; i++) {
        int64_t lo = begin + i * q + (i < r ? i : r), hi = lo + q + (i < r);
        double s = 0.0;
        for (int64_t j = lo; j < hi; j++) s += term(j);
        v[i] = s;
    }
    for (int64_t step = 1; step < nleaf; step *= 2)
        for (int64_t i = 0; i + step < nleaf; i += 2 * step) v[i] += v[i + step];
    double s = v[0];
    free(v);
    return s;
}

static double plain_sum(int64_t begin, int64_t n)
{
    double s = 0.0;
    for (int64_t i = begin; i < begin + n; i++) s += term(i);
    return s;
}

static void check_sum_bits(weft_executor *ex, int64_t begin, int64_t n, weft_partitioner p,
                           int64_t grain)
{
    double want = reference_sum(begin, n, grain), got = -1.0, zero = 0.0;
    weft_range_options o = {.partitioner = p, .grain = grain};
    CHECK_OK(weft_parallel_reduce(ex, begin, begin + n, &zero, sizeof zero, sum_body, sum_combine,
                                  NULL, &o, &got));
    CHECK_MSG(memcmp(&want, &got, sizeof want) == 0,
              "%s n %lld grain %lld %s: %.17g != reference %.17g",
              weft_backend_name(weft_executor_backend(ex)), (long long)n, (long long)grain,
              part_name[p], got, want);
}

static const int64_t rlengths[] = {0, 1, 3, 97, 4099, 1000003};

static void sums_on(weft_executor *ex)
{
    for (size_t li = 0; li < sizeof rlengths / sizeof *rlengths; li++)
        for (int p = 0; p < 3; p++) {
            check_sum_bits(ex, 0, rlengths[li], parts[p], 0);
            check_sum_bits(ex, 3, rlengths[li], parts[p], 1000);
        }
}

TEST(reduce_order_shows_in_the_bits)
{
    /* the check below means something only if another order gives other bits */
    double a = reference_sum(0, 1000003, 0), b = plain_sum(0, 1000003);
    CHECK(memcmp(&a, &b, sizeof a) != 0);
}

TEST(reduce_bits_serial)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    sums_on(ex);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(reduce_bits_threads_1_to_4)
{
    for (int w = 1; w <= 4; w++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        sums_on(ex);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

TEST(reduce_bits_processes_1_to_4)
{
    if (CHECK_TSAN) SKIP("ThreadSanitizer cannot follow the fork server");
    for (int w = 1; w <= 4; w++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_PROCESSES, w);
        REQUIRE(ex);
        for (int p = 0; p < 3; p++) {
            check_sum_bits(ex, 0, 1000003, parts[p], 0);
            check_sum_bits(ex, 3, 4099, parts[p], 7);
            check_sum_bits(ex, 0, 1, parts[p], 0);
        }
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* a value bigger than the inline buffers: a histogram of 100 counters */
typedef struct hist {
    int64_t n[100];
} hist;

static int hist_body(int64_t lo, int64_t hi, void *acc, void *arg)
{
    (void)arg;
    hist *h = acc;
    for (int64_t i = lo; i < hi; i++) h->n[(i * 7919) % 100]++;
    return 0;
}

static void hist_combine(void *acc, const void *right, void *arg)
{
    (void)arg;
    hist *a = acc;
    const hist *b = right;
    for (int i = 0; i < 100; i++) a->n[i] += b->n[i];
}

TEST(reduce_large_values)
{
    hist zero = {{0}}, got;
    for (int w = 1; w <= 3; w++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        for (int p = 0; p < 3; p++) {
            weft_range_options o = {.partitioner = parts[p], .grain = 3};
            CHECK_OK(weft_parallel_reduce(ex, 0, 200000, &zero, sizeof zero, hist_body,
                                          hist_combine, NULL, &o, &got));
            for (int i = 0; i < 100; i++) CHECK_EQ_INT(got.n[i], 2000);
        }
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* ---- nesting ---- */

typedef struct nest {
    weft_executor *ex;
    _Atomic int cells[8][8][8];
    int64_t i, j;
} nest;

typedef struct nest_arg {
    nest *nt;
    int64_t i, j;
} nest_arg;

static int nest3(int64_t lo, int64_t hi, void *arg)
{
    nest_arg *a = arg;
    for (int64_t k = lo; k < hi; k++) atomic_fetch_add(&a->nt->cells[a->i][a->j][k], 1);
    return 0;
}

static int nest2(int64_t lo, int64_t hi, void *arg)
{
    nest_arg *a = arg;
    for (int64_t j = lo; j < hi; j++) {
        nest_arg b = {a->nt, a->i, j};
        int rc = weft_parallel_for(a->nt->ex, 0, 8, nest3, &b, NULL);
        if (rc) return rc;
    }
    return 0;
}

static int nest1(int64_t lo, int64_t hi, void *arg)
{
    nest *nt = arg;
    for (int64_t i = lo; i < hi; i++) {
        nest_arg a = {nt, i, 0};
        weft_range_options o = {.partitioner = WEFT_PARTITION_DYNAMIC};
        int rc = weft_parallel_for(nt->ex, 0, 8, nest2, &a, &o);
        if (rc) return rc;
    }
    return 0;
}

static int nest_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)len;
    nest *nt = *(nest *const *)in;
    return weft_parallel_for(nt->ex, 0, 8, nest1, nt, NULL);
}

static void check_nest(nest *nt)
{
    int wrong = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 8; k++) wrong += atomic_load(&nt->cells[i][j][k]) != 1;
    CHECK_EQ_INT(wrong, 0);
}

TEST(nested_loops_3_deep_on_one_worker)
{
    for (int w = 1; w <= 2; w++) {
        nest *nt = calloc(1, sizeof *nt);
        REQUIRE(nt);
        nt->ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(nt->ex);
        /* from outside the pool */
        CHECK_OK(weft_parallel_for(nt->ex, 0, 8, nest1, nt, NULL));
        check_nest(nt);
        /* from inside a task of the pool: the worker runs the pieces */
        memset(nt->cells, 0, sizeof nt->cells);
        weft_future *f = NULL;
        CHECK_OK(weft_submit(nt->ex, nest_task, &nt, sizeof nt, &f));
        CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
        weft_future_release(f);
        check_nest(nt);
        CHECK_OK(weft_executor_destroy(nt->ex));
        free(nt);
    }
    nest *nt = calloc(1, sizeof *nt);
    REQUIRE(nt);
    nt->ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(nt->ex);
    CHECK_OK(weft_parallel_for(nt->ex, 0, 8, nest1, nt, NULL));
    check_nest(nt);
    CHECK_OK(weft_executor_destroy(nt->ex));
    free(nt);
}

/* ---- errors and cancellation stop the loop ---- */

typedef struct stopper {
    int64_t fail_at; /* the element whose range fails */
    int cancel;      /* set instead of failing, when `use_cancel` */
    bool use_cancel;
    _Atomic int64_t visited;
} stopper;

static int stop_body(int64_t lo, int64_t hi, void *arg)
{
    stopper *s = arg;
    if (lo <= s->fail_at && s->fail_at < hi) {
        if (!s->use_cancel) return WEFT_ERANGE_TEST_CODE;
        __atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED);
    }
    atomic_fetch_add(&s->visited, hi - lo);
    /* a little work per element, so that a loop run to the end is slow */
    volatile double x = 0;
    for (int64_t i = lo; i < hi; i++) x += (double)i;
    return 0;
}

static void check_stops(weft_executor *ex, bool cancel, weft_partitioner p)
{
    const int64_t n = 2000000;
    stopper s = {.fail_at = 0, .use_cancel = cancel};
    weft_range_options o = {.partitioner = p, .grain = 1000, .cancel = cancel ? &s.cancel : NULL};
    int want = cancel ? WEFT_ECANCELLED : WEFT_ERANGE_TEST_CODE;
    CHECK_ERR(weft_parallel_for(ex, 0, n, stop_body, &s, &o), want);
    int64_t v = atomic_load(&s.visited);
    int workers = weft_executor_workers(ex);
    /* one worker stops after the failing piece; more may each have run
     * pieces elsewhere meanwhile, never the whole range */
    if (workers == 1 && weft_executor_backend(ex) != WEFT_BACKEND_PROCESSES)
        CHECK_MSG(v <= 2000, "%s %s: %lld visited after the stop", part_name[p],
                  cancel ? "cancel" : "error", (long long)v);
    else
        CHECK_MSG(v < n * 3 / 4, "%s %s: %lld of %lld visited", part_name[p],
                  cancel ? "cancel" : "error", (long long)v, (long long)n);
}

static int sum_fail_body(int64_t lo, int64_t hi, void *acc, void *arg)
{
    stopper *s = arg;
    if (lo <= s->fail_at && s->fail_at < hi) return WEFT_ERANGE_TEST_CODE;
    *(double *)acc += (double)(hi - lo);
    return 0;
}

WEFT_RANGE_REGISTER_REDUCE(sum_fail_body, sum_combine);

TEST(errors_and_cancels_stop_the_loop)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_SERIAL, 1);
    REQUIRE(ex);
    for (int p = 0; p < 3; p++) {
        check_stops(ex, false, parts[p]);
        check_stops(ex, true, parts[p]);
    }
    CHECK_OK(weft_executor_destroy(ex));
    for (int w = 1; w <= 3; w++) {
        ex = make_ex(WEFT_BACKEND_THREADS, w);
        REQUIRE(ex);
        for (int p = 0; p < 3; p++) {
            check_stops(ex, false, parts[p]);
            check_stops(ex, true, parts[p]);
        }
        /* a reduction that fails returns the error and leaves result alone */
        stopper s = {.fail_at = 77777};
        double zero = 0, got = 42;
        CHECK_ERR(weft_parallel_reduce(ex, 0, 1000000, &zero, sizeof zero, sum_fail_body,
                                       sum_combine, &s, NULL, &got),
                  WEFT_ERANGE_TEST_CODE);
        CHECK(got == 42);
        CHECK(strstr(weft_last_error(), "77") != NULL);
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* ---- stopping from outside: a flag set by another thread, a shutdown ---- */

typedef struct slow {
    _Atomic int64_t leaves;
    int flag;
} slow;

static int slow_body(int64_t lo, int64_t hi, void *arg)
{
    (void)lo, (void)hi;
    atomic_fetch_add(&((slow *)arg)->leaves, 1);
    struct timespec ts = {0, 1000000}; /* 1 ms per leaf: 2000 leaves take 1 s on 2 workers */
    nanosleep(&ts, NULL);
    return 0;
}

typedef struct loop_thread {
    weft_executor *ex;
    slow *sl;
    weft_range_options o;
    int rc;
} loop_thread;

static void *run_loop(void *p)
{
    loop_thread *t = p;
    t->rc = weft_parallel_for(t->ex, 0, 2000, slow_body, t->sl, &t->o);
    return NULL;
}

/* waits until the loop has started some leaves */
static void wait_started(slow *sl)
{
    while (atomic_load(&sl->leaves) < 4) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

TEST(cancel_flag_from_another_thread)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    for (int p = 0; p < 3; p++) {
        slow sl = {0};
        loop_thread t = {ex, &sl, {.partitioner = parts[p], .grain = 1, .cancel = &sl.flag}, 1};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, run_loop, &t) == 0);
        wait_started(&sl);
        __atomic_store_n(&sl.flag, 1, __ATOMIC_RELAXED);
        pthread_join(th, NULL);
        CHECK_EQ_INT(t.rc, WEFT_ECANCELLED);
        CHECK_MSG(atomic_load(&sl.leaves) < 2000, "%s: all %lld leaves ran", part_name[p],
                  (long long)atomic_load(&sl.leaves));
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(shutdown_with_cancel_stops_a_loop)
{
    for (int p = 0; p < 3; p++) {
        weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
        REQUIRE(ex);
        slow sl = {0};
        loop_thread t = {ex, &sl, {.partitioner = parts[p], .grain = 1}, 1};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, run_loop, &t) == 0);
        wait_started(&sl);
        CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
        pthread_join(th, NULL);
        CHECK_EQ_INT(t.rc, WEFT_ECANCELLED);
        CHECK_MSG(atomic_load(&sl.leaves) < 2000, "%s: all %lld leaves ran", part_name[p],
                  (long long)atomic_load(&sl.leaves));
        CHECK_OK(weft_executor_destroy(ex));
    }
}

/* ---- arguments ---- */

static int never_body(int64_t lo, int64_t hi, void *arg)
{
    (void)lo, (void)hi;
    atomic_fetch_add((_Atomic int *)arg, 1);
    return 0;
}

TEST(arguments_and_empty_ranges)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    _Atomic int calls = 0;
    CHECK_ERR(weft_parallel_for(NULL, 0, 10, never_body, &calls, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_parallel_for(ex, 0, 10, NULL, &calls, NULL), WEFT_EINVAL);
    weft_range_options bad = {.grain = -1};
    CHECK_ERR(weft_parallel_for(ex, 0, 10, never_body, &calls, &bad), WEFT_EINVAL);
    bad = (weft_range_options){.partitioner = (weft_partitioner)9};
    CHECK_ERR(weft_parallel_for(ex, 0, 10, never_body, &calls, &bad), WEFT_EINVAL);
    CHECK_OK(weft_parallel_for(ex, 10, 10, never_body, &calls, NULL));
    CHECK_OK(weft_parallel_for(ex, 10, -10, never_body, &calls, NULL));
    CHECK_EQ_INT(atomic_load(&calls), 0);
    double id = 5.0, got = 0, zero = 0;
    CHECK_OK(
        weft_parallel_reduce(ex, 3, 3, &id, sizeof id, sum_body, sum_combine, NULL, NULL, &got));
    CHECK(got == 5.0);
    CHECK_ERR(weft_parallel_reduce(ex, 0, 3, &zero, 0, sum_body, sum_combine, NULL, NULL, &got),
              WEFT_EINVAL);
    CHECK_ERR(weft_parallel_reduce(ex, 0, 3, &zero, sizeof zero, sum_body, NULL, NULL, NULL, &got),
              WEFT_EINVAL);
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    CHECK_ERR(weft_parallel_for(ex, 0, 10, never_body, &calls, NULL), WEFT_ECLOSED);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- several loops at once on one pool, from several threads ---- */

typedef struct conc_arg {
    weft_executor *ex;
    int ok;
} conc_arg;

static void *conc_thread(void *p)
{
    conc_arg *a = p;
    a->ok = 1;
    for (int r = 0; r < 20; r++) {
        double want = reference_sum(0, 50000, 0), got = 0, zero = 0;
        if (weft_parallel_reduce(a->ex, 0, 50000, &zero, sizeof zero, sum_body, sum_combine, NULL,
                                 NULL, &got) != 0 ||
            memcmp(&want, &got, sizeof got) != 0)
            a->ok = 0;
    }
    return NULL;
}

TEST(loops_from_several_threads_at_once)
{
    weft_executor *ex = make_ex(WEFT_BACKEND_THREADS, 2);
    REQUIRE(ex);
    pthread_t th[3];
    conc_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (conc_arg){ex, 0};
        pthread_create(&th[i], NULL, conc_thread, &a[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(a[i].ok);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- processes: bodies write shared memory ---- */

typedef struct shm_arg {
    weft_ipc_token tok;
    int64_t fail_at;
} shm_arg;

/* each worker process attaches once and keeps the mapping */
static int64_t *attach_cached(const weft_ipc_token *tok)
{
    static weft_shm *s;
    static uint64_t key;
    if (!s || key != tok->key) {
        if (s) weft_shm_destroy(s);
        s = NULL;
        if (weft_shm_attach(tok, &s)) return NULL;
        key = tok->key;
    }
    return weft_shm_ptr(s);
}

static int shm_body(int64_t lo, int64_t hi, void *arg)
{
    shm_arg *a = arg;
    if (lo <= a->fail_at && a->fail_at < hi) return WEFT_ERANGE_TEST_CODE;
    int64_t *x = attach_cached(&a->tok);
    if (!x) return WEFT_ENOENT;
    for (int64_t i = lo; i < hi; i++) x[i] = 3 * i + 1;
    return 0;
}
WEFT_RANGE_REGISTER(shm_body);

static int unregistered_body(int64_t lo, int64_t hi, void *arg)
{
    (void)lo, (void)hi, (void)arg;
    return 0;
}

TEST(processes_for_writes_shared_memory)
{
    if (CHECK_TSAN) SKIP("ThreadSanitizer cannot follow the fork server");
    const int64_t n = 100003;
    weft_shm *s = NULL;
    REQUIRE_OK(weft_shm_create((size_t)n * sizeof(int64_t), &s));
    int64_t *x = weft_shm_ptr(s);
    shm_arg a = {.fail_at = -1};
    REQUIRE_OK(weft_shm_token(s, &a.tok));
    weft_executor *ex = make_ex(WEFT_BACKEND_PROCESSES, 2);
    REQUIRE(ex);
    for (int p = 0; p < 3; p++) {
        memset(x, 0, (size_t)n * sizeof *x);
        weft_range_options o = {.partitioner = parts[p], .arg_size = sizeof a};
        CHECK_OK(weft_parallel_for(ex, 0, n, shm_body, &a, &o));
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; i++) wrong += x[i] != 3 * i + 1;
        CHECK_EQ_INT(wrong, 0);
    }
    /* an error in a worker comes back, with its message */
    a.fail_at = 5;
    weft_range_options o = {.arg_size = sizeof a};
    CHECK_ERR(weft_parallel_for(ex, 0, n, shm_body, &a, &o), WEFT_ERANGE_TEST_CODE);
    CHECK(strstr(weft_last_error(), "failed on") != NULL);
    /* an arg whose size is not given cannot be copied to the workers */
    CHECK_ERR(weft_parallel_for(ex, 0, n, shm_body, &a, NULL), WEFT_EINVAL);
    /* a body the workers cannot find by name */
    CHECK_ERR(weft_parallel_for(ex, 0, n, unregistered_body, NULL, NULL), WEFT_ENOTREG);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_OK(weft_shm_destroy(s));
}

TEST(register_rules)
{
    CHECK_OK(weft_range_register("shm_body", shm_body)); /* the same pair again */
    CHECK_ERR(weft_range_register("shm_body", unregistered_body), WEFT_EEXIST);
    CHECK_ERR(weft_range_register("another_name", shm_body), WEFT_EEXIST);
    CHECK_ERR(weft_range_register("", unregistered_body), WEFT_EINVAL);
    CHECK_ERR(weft_range_register_reduce("x", sum_body, NULL), WEFT_EINVAL);
}

TEST(reduce_bits_mpi)
{
    if (!under_mpi) SKIP("not launched by mpirun (see the mpi label)");
    weft_executor *ex = make_ex(WEFT_BACKEND_MPI, 0);
    REQUIRE(ex);
    for (int p = 0; p < 3; p++) {
        check_sum_bits(ex, 0, 1000003, parts[p], 0);
        check_sum_bits(ex, 3, 4099, parts[p], 7);
    }
    /* an error on a rank comes back with its message */
    stopper s = {.fail_at = 4242};
    double zero = 0, got = 42;
    weft_range_options o = {.arg_size = sizeof s};
    CHECK_ERR(weft_parallel_reduce(ex, 0, 100000, &zero, sizeof zero, sum_fail_body, sum_combine,
                                   &s, &o, &got),
              WEFT_ERANGE_TEST_CODE);
    CHECK(got == 42);
    CHECK(strstr(weft_last_error(), "failed on") != NULL);
    CHECK_OK(weft_executor_destroy(ex));
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* only rank 0 gets here under mpirun */
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        weft_executor_destroy(probe);
    }
    return check_main(argc, argv);
}

/* test_bag.c : bags (issue 14) -- every operation against a serial
 * reference computed here in plain C on random data (empty bags, one
 * record, empty partitions, records larger than a partition), on serial,
 * threads and processes (and mpi when launched by mpirun: the label `mpi`
 * runs this file under `mpirun -n 3`); text files split by byte ranges for
 * every partition count 1..64; gzip and zstd; errors naming the file;
 * exact quantiles equal to numpy's (python3-numpy is the oracle) and the
 * KLL sketch's rank error.
 * weft-test-timeout: 600 */
#define CHECK_CUSTOM_MAIN
/* a hang watchdog, not a timing check: the numpy oracle runs python many
 * times, slow on a loaded machine */
#define CHECK_WATCHDOG_SECONDS 300
#include "check.h"

#include "bag/bag_internal.h"

#include <sys/stat.h>
#include <zlib.h>

#define WEFT_ERANGE_DUMMY (-ERANGE)

static bool under_mpi;

/* ---- executors ---------------------------------------------------------------- */

static const weft_backend BACKENDS[] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS,
                                        WEFT_BACKEND_PROCESSES, WEFT_BACKEND_MPI};
#define NBACK 4

static weft_executor *exec_of(weft_backend b)
{
    if (b == WEFT_BACKEND_MPI && !under_mpi) return NULL;
    if (b == WEFT_BACKEND_PROCESSES && CHECK_TSAN) return NULL; /* fork + TSan */
    weft_options o = {0};
    o.backend = b;
    o.workers = b == WEFT_BACKEND_SERIAL ? 1 : 2;
    weft_executor *ex = NULL;
    if (weft_executor_create(&o, &ex) != 0) return NULL;
    return ex;
}

static weft_executor *threads(void)
{
    return exec_of(WEFT_BACKEND_THREADS);
}

/* ---- user functions (registered: they run on processes and mpi) ----------------- */

static int times3(const void *rec, size_t len, const void *arg, size_t alen, weft_bag_emit *out)
{
    (void)arg, (void)alen;
    int64_t v;
    if (weft_bag_rec_int64(rec, len, &v)) return WEFT_EINVAL;
    return weft_bag_emit_int64(out, v * 3);
}
WEFT_BAG_FN(times3);

/* keeps v % arg == 0 */
static int divisible(const void *rec, size_t len, const void *arg, size_t alen)
{
    int64_t v, m;
    if (weft_bag_rec_int64(rec, len, &v) || alen != 8) return WEFT_EINVAL;
    memcpy(&m, arg, 8);
    return v % m == 0;
}
WEFT_BAG_FN(divisible);

/* v -> v copies of v (0..3) */
static int repeat(const void *rec, size_t len, const void *arg, size_t alen, weft_bag_emit *out)
{
    (void)arg, (void)alen;
    int64_t v;
    if (weft_bag_rec_int64(rec, len, &v)) return WEFT_EINVAL;
    for (int64_t i = 0; i < (v & 3); i++) {
        int rc = weft_bag_emit_int64(out, v);
        if (rc) return rc;
    }
    return 0;
}
WEFT_BAG_FN(repeat);

/* a partition -> its count and its sum */
static int count_sum(weft_bag_iter *in, const void *arg, size_t alen, weft_bag_emit *out)
{
    (void)arg, (void)alen;
    const void *r;
    size_t l;
    int64_t n = 0, s = 0;
    while (weft_bag_iter_next(in, &r, &l)) {
        int64_t v;
        memcpy(&v, r, 8);
        n++;
        s += v;
    }
    int rc = weft_bag_emit_int64(out, n);
    return rc ? rc : weft_bag_emit_int64(out, s);
}
WEFT_BAG_FN(count_sum);

/* aggregate of count_sum: pairs summed */
static int sum_pairs(weft_bag_iter *in, const void *arg, size_t alen, weft_bag_emit *out)
{
    (void)arg, (void)alen;
    const void *r;
    size_t l;
    int64_t a[2] = {0, 0};
    int i = 0;
    while (weft_bag_iter_next(in, &r, &l)) {
        int64_t v;
        memcpy(&v, r, 8);
        a[i] += v;
        i ^= 1;
    }
    int rc = weft_bag_emit_int64(out, a[0]);
    return rc ? rc : weft_bag_emit_int64(out, a[1]);
}
WEFT_BAG_FN(sum_pairs);

/* fold: acc = {count, sum of squares mod 2^64, xor} */
static int fold_bin(void *acc, size_t n, const void *rec, size_t len, const void *arg, size_t alen)
{
    (void)arg, (void)alen;
    if (n != 24) return WEFT_EINVAL;
    uint64_t a[3], v = 0;
    memcpy(a, acc, 24);
    memcpy(&v, rec, len < 8 ? len : 8);
    a[0]++;
    a[1] += v * v;
    a[2] ^= v;
    memcpy(acc, a, 24);
    return 0;
}
WEFT_BAG_FN(fold_bin);
static int fold_comb(void *acc, const void *other, size_t n, const void *arg, size_t alen)
{
    (void)arg, (void)alen, (void)n;
    uint64_t a[3], b[3];
    memcpy(a, acc, 24);
    memcpy(b, other, 24);
    a[0] += b[0];
    a[1] += b[1];
    a[2] ^= b[2];
    memcpy(acc, a, 24);
    return 0;
}
WEFT_BAG_FN(fold_comb);

/* generator: partition p -> p*10 .. p*10 + p - 1 */
static int gen_part(uint64_t part, uint64_t nparts, const void *arg, size_t alen,
                    weft_bag_emit *out)
{
    (void)nparts, (void)arg, (void)alen;
    for (uint64_t i = 0; i < part; i++) {
        int rc = weft_bag_emit_int64(out, (int64_t)(part * 10 + i));
        if (rc) return rc;
    }
    return 0;
}
WEFT_BAG_FN(gen_part);

/* key: the record's first byte (or the empty key) */
static int first_byte(const void *rec, size_t len, const void *arg, size_t alen, const void **key,
                      size_t *klen)
{
    (void)arg, (void)alen;
    *key = rec;
    *klen = len ? 1 : 0;
    return 0;
}
WEFT_BAG_FN(first_byte);

/* key of an int64: v % 7 as an int64 */
static int mod7(const void *rec, size_t len, const void *arg, size_t alen, const void **key,
                size_t *klen)
{
    (void)arg, (void)alen;
    static __thread int64_t k;
    int64_t v;
    if (weft_bag_rec_int64(rec, len, &v)) return WEFT_EINVAL;
    k = ((v % 7) + 7) % 7;
    *key = &k;
    *klen = 8;
    return 0;
}
WEFT_BAG_FN(mod7);

static int add_i64(void *acc, size_t n, const void *rec, size_t len, const void *arg, size_t alen)
{
    (void)arg, (void)alen, (void)n;
    int64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, rec, len == 8 ? 8 : 0);
    a += v;
    memcpy(acc, &a, 8);
    return 0;
}
WEFT_BAG_FN(add_i64);
static int comb_i64(void *acc, const void *other, size_t n, const void *arg, size_t alen)
{
    (void)arg, (void)alen, (void)n;
    int64_t a, b;
    memcpy(&a, acc, 8);
    memcpy(&b, other, 8);
    a += b;
    memcpy(acc, &a, 8);
    return 0;
}
WEFT_BAG_FN(comb_i64);

/* orders records by length, then nothing (ties broken by the bag) */
static int by_len(const void *a, size_t al, const void *b, size_t bl, const void *arg, size_t alen)
{
    (void)a, (void)b, (void)arg, (void)alen;
    return al < bl ? -1 : al > bl;
}
WEFT_BAG_FN(by_len);

static int fails_on_13(const void *rec, size_t len, const void *arg, size_t alen,
                       weft_bag_emit *out)
{
    (void)arg, (void)alen;
    int64_t v;
    weft_bag_rec_int64(rec, len, &v);
    if (v == 13) return WEFT_ERANGE_DUMMY;
    return weft_bag_emit_rec(out, rec, len);
}

/* not registered: only serial and threads may run it */
static int unregistered_map(const void *rec, size_t len, const void *arg, size_t alen,
                            weft_bag_emit *out)
{
    (void)arg, (void)alen;
    return weft_bag_emit_rec(out, rec, len);
}

/* ---- helpers ---------------------------------------------------------------------- */

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void)
{
    return weft__splitmix64(&rng_state);
}

static int64_t *rand_i64(size_t n, int64_t mod)
{
    int64_t *v = malloc((n ? n : 1) * 8);
    for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rnd() % (uint64_t)mod) - mod / 2;
    return v;
}

static bool recs_equal_i64(const weft_bag_records *r, const int64_t *v, size_t n)
{
    if (weft_bag_records_count(r) != n) return false;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t l;
        int64_t x;
        if (weft_bag_records_get(r, i, &d, &l) || weft_bag_rec_int64(d, l, &x) || x != v[i])
            return false;
    }
    return true;
}

/* ---- core -------------------------------------------------------------------------- */

TEST(sequence_collect_keeps_records_and_order)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    size_t sizes[] = {0, 1, 5, 1000};
    size_t parts[] = {1, 3, 7, 64};
    for (size_t a = 0; a < 4; a++)
        for (size_t p = 0; p < 4; p++) {
            size_t n = sizes[a];
            weft_buf *items = calloc(n + 1, sizeof *items);
            char **store = calloc(n + 1, sizeof *store);
            for (size_t i = 0; i < n; i++) {
                size_t l = rnd() % 40;
                if (i == 2) l = 3u << 20; /* a record larger than a partition's share */
                store[i] = malloc(l + 1);
                for (size_t j = 0; j < l; j++) store[i][j] = (char)rnd();
                items[i] = (weft_buf){store[i], l};
            }
            weft_bag *b;
            REQUIRE_OK(weft_bag_from_sequence(items, n, parts[p], &b));
            CHECK_EQ_U64(weft_bag_nparts(b), parts[p]);
            weft_bag_records *r;
            REQUIRE_OK(weft_bag_collect(b, ex, &r));
            CHECK_EQ_U64(weft_bag_records_count(r), n);
            for (size_t i = 0; i < n && i < weft_bag_records_count(r); i++) {
                const void *d;
                size_t l;
                weft_bag_records_get(r, i, &d, &l);
                CHECK(l == items[i].len && (l == 0 || memcmp(d, items[i].data, l) == 0));
            }
            uint64_t c;
            CHECK_OK(weft_bag_count(b, ex, &c));
            CHECK_EQ_U64(c, n);
            weft_bag_records_destroy(r);
            weft_bag_release(b);
            for (size_t i = 0; i < n; i++) free(store[i]);
            free(store);
            free(items);
        }
    weft_executor_destroy(ex);
}

TEST(range_and_generator_match_a_loop)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    int64_t cases[][3] = {{0, 10, 1}, {5, 5, 1}, {10, 0, -3}, {-7, 100, 7}, {0, 1, 5}, {3, -4, -1}};
    for (size_t c = 0; c < 6; c++) {
        int64_t ref[200];
        size_t n = 0;
        for (int64_t v = cases[c][0]; cases[c][2] > 0 ? v < cases[c][1] : v > cases[c][1];
             v += cases[c][2])
            ref[n++] = v;
        for (size_t p = 1; p <= 9; p += 4) {
            weft_bag *b;
            REQUIRE_OK(weft_bag_range(cases[c][0], cases[c][1], cases[c][2], p, &b));
            weft_bag_records *r;
            REQUIRE_OK(weft_bag_collect(b, ex, &r));
            CHECK_MSG(recs_equal_i64(r, ref, n), "range case %zu parts %zu", c, p);
            weft_bag_records_destroy(r);
            weft_bag_release(b);
        }
    }
    weft_bag *g;
    REQUIRE_OK(weft_bag_from_generator(gen_part, NULL, 0, 6, &g));
    int64_t ref[64];
    size_t n = 0;
    for (int64_t p = 0; p < 6; p++)
        for (int64_t i = 0; i < p; i++) ref[n++] = p * 10 + i;
    weft_bag_records *r;
    REQUIRE_OK(weft_bag_collect(g, ex, &r));
    CHECK(recs_equal_i64(r, ref, n));
    weft_bag_records_destroy(r);
    weft_bag_release(g);
    CHECK_ERR(weft_bag_range(0, 1, 0, 1, &g), WEFT_EINVAL);
    weft_executor_destroy(ex);
}

/* The pipeline map(x3) -> filter(% 2) -> flatmap(repeat) -> map_partitions
 * (count, sum) and its numbers, against the same loop here. */
static void pipeline_vs_reference(weft_executor *ex, size_t n, size_t parts)
{
    int64_t *v = rand_i64(n, 1000);
    int64_t two = 2;
    size_t rn = 0;
    int64_t *ref = malloc((4 * n + 1) * 8);
    for (size_t i = 0; i < n; i++) {
        int64_t x = v[i] * 3;
        if (x % 2) continue;
        for (int64_t k = 0; k < (x & 3); k++) ref[rn++] = x;
    }
    weft_bag *b, *m, *f, *fm, *mp;
    REQUIRE_OK(weft_bag_from_int64s(v, n, parts, &b));
    REQUIRE_OK(weft_bag_map(b, times3, NULL, 0, &m));
    REQUIRE_OK(weft_bag_filter(m, divisible, &two, 8, &f));
    REQUIRE_OK(weft_bag_flatmap(f, repeat, NULL, 0, &fm));
    weft_bag_records *r;
    REQUIRE_OK(weft_bag_collect(fm, ex, &r));
    CHECK_MSG(recs_equal_i64(r, ref, rn), "n %zu parts %zu", n, parts);
    weft_bag_records_destroy(r);
    /* stats */
    uint64_t c;
    CHECK_OK(weft_bag_count(fm, ex, &c));
    CHECK_EQ_U64(c, rn);
    double sum = 0, mn = INFINITY, mx = -INFINITY, mean = 0, var = 0;
    for (size_t i = 0; i < rn; i++) {
        sum += (double)ref[i];
        if (ref[i] < mn) mn = (double)ref[i];
        if (ref[i] > mx) mx = (double)ref[i];
    }
    mean = rn ? sum / (double)rn : NAN;
    for (size_t i = 0; i < rn; i++) var += ((double)ref[i] - mean) * ((double)ref[i] - mean);
    double got;
    CHECK_OK(weft_bag_sum(fm, ex, WEFT_BAG_INT64, &got));
    CHECK(got == sum);
    if (rn) {
        CHECK_OK(weft_bag_min(fm, ex, WEFT_BAG_INT64, &got));
        CHECK(got == mn);
        CHECK_OK(weft_bag_max(fm, ex, WEFT_BAG_INT64, &got));
        CHECK(got == mx);
        CHECK_OK(weft_bag_mean(fm, ex, WEFT_BAG_INT64, &got));
        CHECK(fabs(got - mean) <= 1e-9 * (fabs(mean) + 1));
        CHECK_OK(weft_bag_var(fm, ex, WEFT_BAG_INT64, 1, &got));
        CHECK(rn < 2 ? isnan(got) : fabs(got - var / (double)(rn - 1)) <= 1e-9 * (var + 1));
        CHECK_OK(weft_bag_std(fm, ex, WEFT_BAG_INT64, 0, &got));
        CHECK(fabs(got - sqrt(var / (double)rn)) <= 1e-9 * (sqrt(var) + 1));
    } else {
        CHECK_OK(weft_bag_mean(fm, ex, WEFT_BAG_INT64, &got));
        CHECK(isnan(got));
    }
    /* map_partitions + reduction: (count, sum) */
    REQUIRE_OK(weft_bag_map_partitions(fm, count_sum, NULL, 0, &mp));
    REQUIRE_OK(weft_bag_collect(mp, ex, &r));
    CHECK_EQ_U64(weft_bag_records_count(r), 2 * parts);
    weft_bag_records_destroy(r);
    REQUIRE_OK(weft_bag_reduction(fm, ex, count_sum, sum_pairs, NULL, 0, 0, &r));
    int64_t isum = 0;
    for (size_t i = 0; i < rn; i++) isum += ref[i];
    int64_t want[2] = {(int64_t)rn, isum};
    CHECK(recs_equal_i64(r, want, 2));
    weft_bag_records_destroy(r);
    REQUIRE_OK(
        weft_bag_reduction(fm, ex, count_sum, sum_pairs, NULL, 0, 2, &r)); /* a binary tree */
    CHECK(recs_equal_i64(r, want, 2));
    weft_bag_records_destroy(r);
    /* fold */
    uint64_t acc[3] = {0, 0, 0}, init[3] = {0, 0, 0}, fref[3] = {0, 0, 0};
    for (size_t i = 0; i < rn; i++) {
        fref[0]++;
        fref[1] += (uint64_t)ref[i] * (uint64_t)ref[i];
        fref[2] ^= (uint64_t)ref[i];
    }
    CHECK_OK(weft_bag_fold(fm, ex, fold_bin, fold_comb, init, 24, NULL, 0, acc));
    CHECK(memcmp(acc, fref, 24) == 0);
    weft_bag_release(mp);
    weft_bag_release(fm);
    weft_bag_release(f);
    weft_bag_release(m);
    weft_bag_release(b);
    free(ref);
    free(v);
}

TEST(pipeline_matches_reference_on_every_backend)
{
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        size_t ns[] = {0, 1, 10, 5000};
        size_t ps[] = {1, 4, 13};
        for (size_t a = 0; a < 4; a++)
            for (size_t p = 0; p < 3; p++) pipeline_vs_reference(ex, ns[a], ps[p]);
        weft_executor_destroy(ex);
    }
}

TEST(doubles_stats_and_nan)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    double v[] = {1.5, -2, 4, 8.25};
    weft_bag *b;
    REQUIRE_OK(weft_bag_from_doubles(v, 4, 3, &b));
    weft_bag_stats s;
    REQUIRE_OK(weft_bag_describe(b, ex, WEFT_BAG_DOUBLE, &s));
    CHECK(s.count == 4 && s.sum == 11.75 && s.min == -2 && s.max == 8.25);
    weft_bag_release(b);
    double w[] = {1, NAN, 3};
    REQUIRE_OK(weft_bag_from_doubles(w, 3, 2, &b));
    REQUIRE_OK(weft_bag_describe(b, ex, WEFT_BAG_DOUBLE, &s));
    CHECK(s.count == 3 && s.nans == 1 && s.sum == 4 && s.max == 3);
    double m;
    CHECK_OK(weft_bag_mean(b, ex, WEFT_BAG_DOUBLE, &m));
    CHECK(isnan(m)); /* as numpy.mean */
    weft_bag_release(b);
    /* text records are not numbers */
    const char *t[] = {"abc"};
    REQUIRE_OK(weft_bag_from_texts(t, 1, 1, &b));
    CHECK_ERR(weft_bag_describe(b, ex, WEFT_BAG_DOUBLE, &s), WEFT_EINVAL);
    weft_bag_release(b);
    weft_executor_destroy(ex);
}

static _Atomic int map_calls;
static int counting_map(const void *rec, size_t len, const void *arg, size_t alen,
                        weft_bag_emit *out)
{
    (void)arg, (void)alen;
    atomic_fetch_add(&map_calls, 1);
    return weft_bag_emit_rec(out, rec, len);
}

TEST(take_computes_only_the_partitions_it_needs)
{
    weft_executor *ex = exec_of(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    int64_t *v = rand_i64(1000, 100);
    weft_bag *b, *m;
    REQUIRE_OK(weft_bag_from_int64s(v, 1000, 10, &b)); /* 100 per partition */
    REQUIRE_OK(weft_bag_map(b, counting_map, NULL, 0, &m));
    weft_bag_records *r;
    atomic_store(&map_calls, 0);
    REQUIRE_OK(weft_bag_take(m, ex, 5, &r));
    CHECK(recs_equal_i64(r, v, 5));
    CHECK_EQ_INT(atomic_load(&map_calls), 100); /* partition 0 only */
    weft_bag_records_destroy(r);
    atomic_store(&map_calls, 0);
    REQUIRE_OK(weft_bag_take(m, ex, 250, &r));
    CHECK(recs_equal_i64(r, v, 250));
    CHECK_EQ_INT(atomic_load(&map_calls), 300); /* 0, then 1-2 */
    weft_bag_records_destroy(r);
    REQUIRE_OK(weft_bag_take(m, ex, 5000, &r));
    CHECK(recs_equal_i64(r, v, 1000));
    weft_bag_records_destroy(r);
    weft_bag_release(m);
    weft_bag_release(b);
    free(v);
    weft_executor_destroy(ex);
}

typedef struct streamed {
    size_t next_part;
    int64_t *all;
    size_t n;
} streamed;

static int stream_cb(void *ctx, size_t part, const weft_bag_records *r)
{
    streamed *s = ctx;
    if (part != s->next_part++) return -77;
    for (size_t i = 0; i < weft_bag_records_count(r); i++) {
        const void *d;
        size_t l;
        weft_bag_records_get(r, i, &d, &l);
        memcpy(&s->all[s->n++], d, 8);
    }
    return 0;
}

TEST(stream_gives_partitions_in_order)
{
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        int64_t *v = rand_i64(3000, 1000);
        weft_bag *b;
        REQUIRE_OK(weft_bag_from_int64s(v, 3000, 17, &b));
        streamed s = {0, malloc(3000 * 8), 0};
        CHECK_OK(weft_bag_stream(b, ex, stream_cb, &s));
        CHECK(s.next_part == 17 && s.n == 3000 && memcmp(s.all, v, 3000 * 8) == 0);
        free(s.all);
        weft_bag_release(b);
        free(v);
        weft_executor_destroy(ex);
    }
}

TEST(a_failing_function_names_itself)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    weft_bag *b, *m;
    REQUIRE_OK(weft_bag_range(0, 100, 1, 4, &b));
    REQUIRE_OK(weft_bag_flatmap(b, fails_on_13, NULL, 0, &m));
    uint64_t c;
    int rc = weft_bag_count(m, ex, &c);
    CHECK(rc == WEFT_ERANGE_DUMMY);
    CHECK_MSG(strstr(weft_last_error(), "flatmap") != NULL, "%s", weft_last_error());
    weft_bag_release(m);
    /* an unregistered function on processes: WEFT_ENOTREG before anything runs */
    weft_executor *px = exec_of(WEFT_BACKEND_PROCESSES);
    if (px) {
        REQUIRE_OK(weft_bag_map(b, unregistered_map, NULL, 0, &m));
        CHECK_ERR(weft_bag_count(m, px, &c), WEFT_ENOTREG);
        CHECK(strstr(weft_last_error(), "WEFT_BAG_FN") != NULL);
        CHECK_OK(weft_bag_count(m, ex, &c)); /* fine on threads */
        CHECK_EQ_U64(c, 100);
        weft_bag_release(m);
        weft_executor_destroy(px);
    }
    weft_bag_release(b);
    weft_executor_destroy(ex);
}

/* ---- text files ----------------------------------------------------------------------- */

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    if (n) REQUIRE(fwrite(d, 1, n, f) == n);
    fclose(f);
}

/* The lines of text[0..n) as the bag defines them. */
static size_t ref_lines(const char *t, size_t n, char ***out)
{
    size_t cap = 16, k = 0;
    char **v = malloc(cap * sizeof *v);
    size_t s = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n && s == n) break;
        if (i == n || t[i] == '\n') {
            size_t e = i;
            if (i < n && e > s && t[e - 1] == '\r') e--;
            if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[k] = malloc(e - s + 1);
            memcpy(v[k], t + s, e - s);
            v[k][e - s] = 0;
            k++;
            s = i + 1;
        }
    }
    *out = v;
    return k;
}

static bool recs_equal_lines(const weft_bag_records *r, char **lines, size_t n)
{
    if (weft_bag_records_count(r) != n) return false;
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t l;
        weft_bag_records_get(r, i, &d, &l);
        if (l != strlen(lines[i]) || memcmp(d, lines[i], l)) return false;
    }
    return true;
}

TEST(byte_ranges_give_every_line_once_for_1_to_64_partitions)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    /* lines of 0..300 bytes, some CRLF, some empty, a long one, no final newline */
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap);
    for (int i = 0; i < 300; i++) {
        size_t l = rnd() % 60;
        if (i == 100) l = 3000; /* longer than many ranges */
        if (n + l + 2 >= cap) break;
        for (size_t j = 0; j < l; j++) t[n++] = (char)('a' + rnd() % 26);
        if (i % 7 == 0) t[n++] = '\r';
        if (i < 299) t[n++] = '\n';
    }
    write_file("lines.txt", t, n);
    char **lines;
    size_t nl = ref_lines(t, n, &lines);
    for (size_t p = 1; p <= 64; p++) {
        weft_bag_text_options o = {.parts_per_file = p};
        weft_bag *b;
        REQUIRE_OK(weft_bag_read_text("lines.txt", &o, &b));
        CHECK_EQ_U64(weft_bag_nparts(b), p);
        weft_bag_records *r;
        REQUIRE_OK(weft_bag_collect(b, ex, &r));
        CHECK_MSG(recs_equal_lines(r, lines, nl), "%zu partitions: %zu lines, want %zu", p,
                  weft_bag_records_count(r), nl);
        weft_bag_records_destroy(r);
        weft_bag_release(b);
    }
    /* blocksize splitting: 1 byte per partition at the extreme (on the
     * first 400 bytes: a partition per byte is a task per byte), and the
     * whole file in 4 KiB blocks */
    {
        size_t sn = n < 400 ? n : 400;
        write_file("small.txt", t, sn);
        char **sl;
        size_t snl = ref_lines(t, sn, &sl);
        uint64_t bss[] = {1, 7, 64};
        for (int k = 0; k < 3; k++) {
            weft_bag_text_options o = {.blocksize = bss[k]};
            weft_bag *b;
            REQUIRE_OK(weft_bag_read_text("small.txt", &o, &b));
            weft_bag_records *r;
            REQUIRE_OK(weft_bag_collect(b, ex, &r));
            CHECK_MSG(recs_equal_lines(r, sl, snl), "blocksize %llu", (unsigned long long)bss[k]);
            weft_bag_records_destroy(r);
            weft_bag_release(b);
        }
        for (size_t i = 0; i < snl; i++) free(sl[i]);
        free(sl);
        weft_bag_text_options o = {.blocksize = 4096};
        weft_bag *b;
        REQUIRE_OK(weft_bag_read_text("lines.txt", &o, &b));
        uint64_t c;
        CHECK_OK(weft_bag_count(b, ex, &c));
        CHECK_EQ_U64(c, nl);
        weft_bag_release(b);
    }
    for (size_t i = 0; i < nl; i++) free(lines[i]);
    free(lines);
    free(t);
    weft_executor_destroy(ex);
}

TEST(many_small_files_empty_files_gzip_and_zstd)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    mkdir("many", 0755);
    /* 40 small files, one of 0 bytes, one without a final newline */
    size_t total = 0;
    char path[64];
    for (int i = 0; i < 40; i++) {
        char buf[256];
        size_t n = 0;
        if (i != 5) {
            int lines = 1 + i % 4;
            for (int j = 0; j < lines; j++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, "f%d-l%d\n", i, j);
            total += (size_t)lines;
            if (i == 9) n--; /* no final newline */
        }
        snprintf(path, sizeof path, "many/f%02d.txt", i);
        write_file(path, buf, n);
    }
    weft_bag *b;
    REQUIRE_OK(weft_bag_read_text("many/*.txt", NULL, &b));
    CHECK_EQ_U64(weft_bag_nparts(b), 40);
    weft_bag_records *r;
    REQUIRE_OK(weft_bag_collect(b, ex, &r));
    CHECK_EQ_U64(weft_bag_records_count(r), total);
    const void *d;
    size_t l;
    weft_bag_records_get(r, 0, &d, &l);
    CHECK(l == 5 && memcmp(d, "f0-l0", 5) == 0);
    /* written back gzip and zstd, read back whole */
    for (int c = 1; c <= 2; c++) {
        uint64_t w = 0;
        const char *pat = c == 1 ? "many/out-*.gz" : "many/out-*.zst";
        CHECK_OK(weft_bag_to_textfiles(b, ex, pat, (weft_bag_compress)c, &w));
        CHECK_EQ_U64(w, total);
        weft_bag *rb2;
        REQUIRE_OK(weft_bag_read_text(pat, NULL, &rb2));
        weft_bag_records *r2;
        REQUIRE_OK(weft_bag_collect(rb2, ex, &r2));
        CHECK_EQ_U64(weft_bag_records_count(r2), total);
        bool same = weft_bag_records_count(r2) == total;
        for (size_t i = 0; same && i < total; i++) {
            const void *d1, *d2;
            size_t l1, l2;
            weft_bag_records_get(r, i, &d1, &l1);
            weft_bag_records_get(r2, i, &d2, &l2);
            same = l1 == l2 && memcmp(d1, d2, l1) == 0;
        }
        CHECK(same);
        weft_bag_records_destroy(r2);
        weft_bag_release(rb2);
    }
    /* a large gzip file of several members and CRLF lines */
    {
        gzFile g = gzopen("big.gz", "wb");
        REQUIRE(g);
        for (int i = 0; i < 100000; i++) gzprintf(g, "line %d\r\n", i);
        gzclose(g);
        g = gzopen("big.gz", "ab"); /* a second member */
        gzprintf(g, "tail");
        gzclose(g);
        weft_bag *gb;
        REQUIRE_OK(weft_bag_read_text("big.gz", NULL, &gb));
        weft_bag_records *gr;
        REQUIRE_OK(weft_bag_collect(gb, ex, &gr));
        CHECK_EQ_U64(weft_bag_records_count(gr), 100001);
        weft_bag_records_get(gr, 99999, &d, &l);
        CHECK(l == 10 && memcmp(d, "line 99999", 10) == 0);
        weft_bag_records_get(gr, 100000, &d, &l);
        CHECK(l == 4 && memcmp(d, "tail", 4) == 0);
        weft_bag_records_destroy(gr);
        weft_bag_release(gb);
    }
    weft_bag_records_destroy(r);
    weft_bag_release(b);
    weft_executor_destroy(ex);
}

static void truncate_file(const char *path, long keep)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    REQUIRE((size_t)keep < n);
    write_file(path, buf, (size_t)keep);
    free(buf);
}

TEST(errors_name_the_file_and_offset)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    weft_bag *b;
    CHECK_ERR(weft_bag_read_text("no-such-dir/*.txt", NULL, &b), WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "no-such-dir/*.txt") != NULL);
    /* truncated gzip and zstd */
    mkdir("trunc", 0755);
    weft_bag *src;
    REQUIRE_OK(weft_bag_range(0, 20000, 1, 1, &src));
    weft_bag *txt;
    REQUIRE_OK(weft_bag_map(src, times3, NULL, 0, &txt)); /* 8-byte records: binary lines */
    CHECK_OK(weft_bag_to_textfiles(src, ex, "trunc/a-*.gz", WEFT_BAG_COMPRESS_GZIP, NULL));
    CHECK_OK(weft_bag_to_textfiles(src, ex, "trunc/a-*.zst", WEFT_BAG_COMPRESS_ZSTD, NULL));
    truncate_file("trunc/a-00000.gz", 2000);
    truncate_file("trunc/a-00000.zst", 2000);
    const char *pats[] = {"trunc/a-00000.gz", "trunc/a-00000.zst"};
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(weft_bag_read_text(pats[i], NULL, &b));
        uint64_t c;
        int rc = weft_bag_count(b, ex, &c);
        CHECK(rc < 0);
        CHECK_MSG(strstr(weft_last_error(), pats[i]) && strstr(weft_last_error(), "byte 2000"),
                  "%s", weft_last_error());
        weft_bag_release(b);
    }
    /* an unreadable file: a dangling link is named at listing; a file that
     * goes away before compute is named by the task */
    symlink("nowhere", "trunc/dangling.txt");
    CHECK(weft_bag_read_text("trunc/dangling.txt", NULL, &b) < 0);
    CHECK(strstr(weft_last_error(), "trunc/dangling.txt") != NULL);
    write_file("trunc/gone.txt", "a\nb\n", 4);
    REQUIRE_OK(weft_bag_read_text("trunc/gone.txt", NULL, &b));
    unlink("trunc/gone.txt");
    uint64_t c;
    CHECK_ERR(weft_bag_count(b, ex, &c), -ENOENT);
    CHECK_MSG(strstr(weft_last_error(), "cannot open 'trunc/gone.txt'") != NULL, "%s",
              weft_last_error());
    weft_bag_release(b);
    if (geteuid() != 0) {
        write_file("trunc/secret.txt", "x\n", 2);
        chmod("trunc/secret.txt", 0);
        CHECK(weft_bag_read_text("trunc/secret.txt", NULL, &b) == -EACCES);
        CHECK(strstr(weft_last_error(), "trunc/secret.txt") != NULL);
    }
    weft_bag_release(txt);
    weft_bag_release(src);
    weft_executor_destroy(ex);
}

TEST(raw_doubles_file)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    double v[1000];
    for (int i = 0; i < 1000; i++) v[i] = i * 0.5;
    write_file("v.f64", v, sizeof v);
    weft_bag *b;
    REQUIRE_OK(weft_bag_read_raw("v.f64", WEFT_BAG_DOUBLE, 77, &b));
    CHECK_EQ_U64(weft_bag_nparts(b), 13);
    double s;
    CHECK_OK(weft_bag_sum(b, ex, WEFT_BAG_DOUBLE, &s));
    CHECK(s == 0.5 * 999 * 1000 / 2);
    weft_bag_release(b);
    write_file("odd.f64", v, 12);
    CHECK_ERR(weft_bag_read_raw("odd.f64", WEFT_BAG_DOUBLE, 0, &b), WEFT_EINVAL);
    weft_executor_destroy(ex);
}

/* ---- topk and keyed operations --------------------------------------------------------- */

static int cmp_d_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    /* NaN first (it is the largest), then descending */
    if (isnan(x) || isnan(y)) return isnan(y) - isnan(x);
    return x > y ? -1 : x < y;
}

TEST(topk_matches_a_sort)
{
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        size_t ns[] = {0, 1, 100, 20000};
        for (int a = 0; a < 4; a++) {
            size_t n = ns[a];
            double *v = malloc((n + 1) * 8), *s = malloc((n + 1) * 8);
            for (size_t i = 0; i < n; i++) v[i] = (double)(rnd() % 5000) / 7.0; /* duplicates */
            if (n > 50) v[17] = NAN;
            memcpy(s, v, n * 8);
            qsort(s, n, 8, cmp_d_desc);
            weft_bag *b;
            REQUIRE_OK(weft_bag_from_doubles(v, n, 7, &b));
            size_t ks[] = {0, 1, 10, 30000};
            for (int j = 0; j < 4; j++) {
                for (int small = 0; small < 2; small++) {
                    weft_bag_topk_options o = {.smallest = small};
                    weft_bag_records *r;
                    REQUIRE_OK(weft_bag_topk(b, ex, ks[j], &o, &r));
                    size_t want = ks[j] < n ? ks[j] : n;
                    CHECK_EQ_U64(weft_bag_records_count(r), want);
                    bool ok = weft_bag_records_count(r) == want;
                    for (size_t i = 0; ok && i < want; i++) {
                        const void *d;
                        size_t l;
                        double x;
                        weft_bag_records_get(r, i, &d, &l);
                        weft_bag_rec_double(d, l, &x);
                        double e = small ? s[n - 1 - i] : s[i];
                        ok = (isnan(x) && isnan(e)) || x == e;
                    }
                    CHECK_MSG(ok, "n %zu k %zu smallest %d", n, ks[j], small);
                    weft_bag_records_destroy(r);
                }
            }
            weft_bag_release(b);
            free(v);
            free(s);
        }
        /* a comparator (by length) and bytes */
        const char *t[] = {"pear", "fig", "banana", "kiwi", "apple", "plum", "date"};
        weft_bag *tb;
        REQUIRE_OK(weft_bag_from_texts(t, 7, 3, &tb));
        weft_bag_topk_options o = {.key = WEFT_BAG_KEY_CMP, .cmp = by_len};
        weft_bag_records *r;
        REQUIRE_OK(weft_bag_topk(tb, ex, 3, &o, &r));
        const char *want[] = {"banana", "apple", "pear"}; /* ties by bytes: pear > plum? no */
        (void)want;
        const void *d;
        size_t l;
        weft_bag_records_get(r, 0, &d, &l);
        CHECK(l == 6 && memcmp(d, "banana", 6) == 0);
        weft_bag_records_get(r, 1, &d, &l);
        CHECK(l == 5 && memcmp(d, "apple", 5) == 0);
        weft_bag_records_get(r, 2, &d, &l);
        CHECK(l == 4 && memcmp(d, "plum", 4) == 0); /* the largest bytes of the 4-letter ties */
        weft_bag_records_destroy(r);
        o = (weft_bag_topk_options){.key = WEFT_BAG_KEY_BYTES, .smallest = true};
        REQUIRE_OK(weft_bag_topk(tb, ex, 2, &o, &r));
        weft_bag_records_get(r, 0, &d, &l);
        CHECK(l == 5 && memcmp(d, "apple", 5) == 0);
        weft_bag_records_destroy(r);
        weft_bag_release(tb);
        weft_executor_destroy(ex);
    }
}

static int i64cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(frequencies_distinct_foldby_groupby_match_reference)
{
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        size_t n = 5000;
        int64_t *v = rand_i64(n, 50);
        weft_bag *b, *fq, *ds, *fb;
        REQUIRE_OK(weft_bag_from_int64s(v, n, 9, &b));
        REQUIRE_OK(weft_bag_frequencies(b, &fq));
        weft_bag_records *r;
        REQUIRE_OK(weft_bag_collect(fq, ex, &r));
        int64_t cnt[50] = {0};
        for (size_t i = 0; i < n; i++) cnt[v[i] + 25]++;
        size_t distinct = 0;
        for (int i = 0; i < 50; i++) distinct += cnt[i] > 0;
        CHECK_EQ_U64(weft_bag_records_count(r), distinct);
        bool ok = true;
        for (size_t i = 0; i < weft_bag_records_count(r); i++) {
            const void *d, *kk, *vv;
            size_t l, kl, vl;
            weft_bag_records_get(r, i, &d, &l);
            REQUIRE_OK(weft_bag_pair_get(d, l, &kk, &kl, &vv, &vl));
            int64_t key, c;
            memcpy(&key, kk, 8);
            memcpy(&c, vv, 8);
            ok = ok && kl == 8 && vl == 8 && c == cnt[key + 25];
        }
        CHECK(ok);
        weft_bag_records_destroy(r);
        /* top 3 by count on the frequencies (word count's last step) */
        weft_bag_topk_options o = {.key = WEFT_BAG_KEY_PAIR_INT64};
        REQUIRE_OK(weft_bag_topk(fq, ex, 3, &o, &r));
        int64_t sorted[50];
        memcpy(sorted, cnt, sizeof sorted);
        qsort(sorted, 50, 8, i64cmp);
        const void *d, *vv;
        size_t l, vl;
        weft_bag_records_get(r, 0, &d, &l);
        weft_bag_pair_get(d, l, NULL, NULL, &vv, &vl);
        int64_t top;
        memcpy(&top, vv, 8);
        CHECK(top == sorted[49]);
        weft_bag_records_destroy(r);
        REQUIRE_OK(weft_bag_distinct(b, &ds));
        uint64_t c;
        CHECK_OK(weft_bag_count(ds, ex, &c));
        CHECK_EQ_U64(c, distinct);
        /* foldby mod 7: sums */
        int64_t zero = 0;
        REQUIRE_OK(weft_bag_foldby(b, mod7, add_i64, comb_i64, &zero, 8, NULL, 0, &fb));
        REQUIRE_OK(weft_bag_collect(fb, ex, &r));
        int64_t sums[7] = {0};
        for (size_t i = 0; i < n; i++) sums[((v[i] % 7) + 7) % 7] += v[i];
        ok = weft_bag_records_count(r) == 7;
        for (size_t i = 0; ok && i < 7; i++) {
            const void *kk;
            size_t kl;
            weft_bag_records_get(r, i, &d, &l);
            weft_bag_pair_get(d, l, &kk, &kl, &vv, &vl);
            int64_t key, s;
            memcpy(&key, kk, 8);
            memcpy(&s, vv, 8);
            ok = s == sums[key];
        }
        CHECK(ok);
        weft_bag_records_destroy(r);
        /* groupby mod 7, in memory and spilling (a 1 KiB bound) */
        for (int spill = 0; spill < 2; spill++) {
            weft_bag_groupby_options go = {
                .nparts = 3, .mem_bound = spill ? 1024 : 0, .spill_dir = "."};
            weft_bag *gb;
            REQUIRE_OK(weft_bag_groupby(b, mod7, NULL, 0, &go, &gb));
            CHECK_EQ_U64(weft_bag_nparts(gb), 3);
            REQUIRE_OK(weft_bag_collect(gb, ex, &r));
            ok = weft_bag_records_count(r) == 7;
            for (size_t i = 0; ok && i < weft_bag_records_count(r); i++) {
                const void *kk;
                size_t kl;
                weft_bag_records_get(r, i, &d, &l);
                weft_bag_pair_get(d, l, &kk, &kl, &vv, &vl);
                int64_t key;
                memcpy(&key, kk, 8);
                /* the group: records in input order, all with this key */
                size_t gi = 0;
                const unsigned char *q = vv, *end = q + vl;
                for (size_t j = 0; ok && j < n; j++) {
                    if (((v[j] % 7) + 7) % 7 != key) continue;
                    uint32_t rl;
                    int64_t x;
                    ok = q + 12 <= end;
                    if (!ok) break;
                    memcpy(&rl, q, 4);
                    memcpy(&x, q + 4, 8);
                    ok = rl == 8 && x == v[j];
                    q += 12;
                    gi++;
                }
                ok = ok && q == end;
            }
            CHECK_MSG(ok, "groupby spill %d", spill);
            weft_bag_records_destroy(r);
            weft_bag_release(gb);
        }
        if (k == 0) {
            /* every spill file was read back and deleted */
            int left = 0;
            DIR *dir = opendir(".");
            struct dirent *e;
            while (dir && (e = readdir(dir)))
                if (strncmp(e->d_name, "weft-bag-spill-", 15) == 0) left++;
            if (dir) closedir(dir);
            CHECK_EQ_INT(left, 0);
        }
        weft_bag_release(fb);
        weft_bag_release(ds);
        weft_bag_release(fq);
        weft_bag_release(b);
        free(v);
        weft_executor_destroy(ex);
    }
}

TEST(product_zip_join_repartition)
{
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        weft_bag *a, *b, *p, *z, *rp, *j;
        REQUIRE_OK(weft_bag_range(0, 30, 1, 4, &a));
        REQUIRE_OK(weft_bag_range(100, 107, 1, 3, &b));
        REQUIRE_OK(weft_bag_product(a, b, &p));
        CHECK_EQ_U64(weft_bag_nparts(p), 12);
        weft_bag_records *r;
        REQUIRE_OK(weft_bag_collect(p, ex, &r));
        CHECK_EQ_U64(weft_bag_records_count(r), 210);
        int64_t sum = 0;
        for (size_t i = 0; i < weft_bag_records_count(r); i++) {
            const void *d, *kk, *vv;
            size_t l, kl, vl;
            int64_t x, y;
            weft_bag_records_get(r, i, &d, &l);
            weft_bag_pair_get(d, l, &kk, &kl, &vv, &vl);
            memcpy(&x, kk, 8);
            memcpy(&y, vv, 8);
            sum += x * 1000 + y;
        }
        CHECK(sum == 7 * 1000 * (29 * 30 / 2) + 30 * (100 * 7 + 21));
        weft_bag_records_destroy(r);
        /* zip of equally partitioned bags; unequal lengths fail */
        weft_bag *a2;
        REQUIRE_OK(weft_bag_range(1000, 1030, 1, 4, &a2));
        REQUIRE_OK(weft_bag_zip(a, a2, &z));
        REQUIRE_OK(weft_bag_collect(z, ex, &r));
        CHECK_EQ_U64(weft_bag_records_count(r), 30);
        bool ok = true;
        for (size_t i = 0; i < 30; i++) {
            const void *d, *kk, *vv;
            size_t l, kl, vl;
            int64_t x, y;
            weft_bag_records_get(r, i, &d, &l);
            weft_bag_pair_get(d, l, &kk, &kl, &vv, &vl);
            memcpy(&x, kk, 8);
            memcpy(&y, vv, 8);
            ok = ok && x == (int64_t)i && y == 1000 + (int64_t)i;
        }
        CHECK(ok);
        weft_bag_records_destroy(r);
        weft_bag_release(z);
        weft_bag_release(a2);
        REQUIRE_OK(weft_bag_range(0, 31, 1, 4, &a2));
        REQUIRE_OK(weft_bag_zip(a, a2, &z));
        CHECK_ERR(weft_bag_collect(z, ex, &r), WEFT_EINVAL);
        weft_bag_release(z);
        weft_bag_release(a2);
        /* repartition: the same records, in order, even sizes */
        for (size_t np = 1; np <= 9; np += 4) {
            REQUIRE_OK(weft_bag_repartition(a, np, &rp));
            REQUIRE_OK(weft_bag_collect(rp, ex, &r));
            int64_t ref[30];
            for (int i = 0; i < 30; i++) ref[i] = i;
            CHECK(recs_equal_i64(r, ref, 30));
            weft_bag_records_destroy(r);
            weft_bag_release(rp);
        }
        /* join with a small table keyed by v % 7 (key 3 twice, key 6 absent) */
        weft_bag_records *table;
        {
            unsigned char store[7][32];
            weft_buf items[7];
            int64_t keys[] = {0, 1, 2, 3, 3, 4, 5};
            for (int i = 0; i < 7; i++) {
                char val[8];
                snprintf(val, sizeof val, "v%d", i);
                items[i].len = weft_bag_pair_make(store[i], &keys[i], 8, val, strlen(val));
                items[i].data = store[i];
            }
            weft_bag *tb;
            REQUIRE_OK(weft_bag_from_sequence(items, 7, 2, &tb));
            REQUIRE_OK(weft_bag_collect(tb, ex, &table));
            weft_bag_release(tb);
        }
        REQUIRE_OK(weft_bag_join(a, mod7, NULL, 0, table, &j));
        REQUIRE_OK(weft_bag_collect(j, ex, &r));
        /* 0..29: keys 0-5 present; 3 twice; 6 absent (6, 13, 20, 27) */
        size_t want = 0;
        for (int i = 0; i < 30; i++) want += i % 7 == 6 ? 0 : i % 7 == 3 ? 2 : 1;
        CHECK_EQ_U64(weft_bag_records_count(r), want);
        weft_bag_records_destroy(r);
        weft_bag_records_destroy(table);
        weft_bag_release(j);
        weft_bag_release(p);
        weft_bag_release(a);
        weft_bag_release(b);
        weft_executor_destroy(ex);
    }
}

/* ---- quantiles ------------------------------------------------------------------------- */

/* numpy's answers for the values in `file`, in one python run: for each of
 * quantile/linear, quantile/inverted_cdf, nanquantile/linear,
 * nanquantile/inverted_cdf the nq quantiles, then numpy.median: 4 nq + 1
 * values in out[] (hex floats, exact). */
static bool numpy_all(const char *file, const char *dtype, const double *q, size_t nq, double *out)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd,
                     "/usr/bin/python3 -c \"import numpy as np; a=np.fromfile('%s', dtype='%s'); "
                     "q=[",
                     file, dtype);
    for (size_t i = 0; i < nq; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%s%.17g", i ? "," : "", q[i]);
    snprintf(
        cmd + n, sizeof cmd - (size_t)n,
        "]; nan=float('nan'); "
        "r=[float(x) for f in (np.quantile, np.nanquantile) for m in ('linear','inverted_cdf') "
        "for x in (f(a, q, method=m) if len(a) and (f is np.quantile or not np.isnan(a).all()) "
        "else [nan]*len(q))]; "
        "r.append(float(np.median(a)) if len(a) else nan); "
        "print(' '.join(float.hex(x) for x in r))\" 2>/dev/null");
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    char line[65536];
    bool ok = fgets(line, sizeof line, p) != NULL;
    pclose(p);
    if (!ok) return false;
    char *s = line;
    for (size_t i = 0; i < 4 * nq + 1; i++) {
        char *e;
        out[i] = strtod(s, &e);
        if (e == s) return false;
        s = e;
    }
    return true;
}

static bool have_numpy(void)
{
    return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

static bool same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void check_quantiles_of(weft_executor *ex, const double *v, size_t n, const char *what)
{
    write_file("q.f64", v, n * 8);
    double q[] = {0, 0.01, 0.1, 0.25, 0.3333, 0.5, 0.75, 0.9, 0.999, 1};
    size_t nq = sizeof q / sizeof *q;
    double want[64];
    REQUIRE(numpy_all("q.f64", "float64", q, nq, want));
    weft_bag *b;
    REQUIRE_OK(weft_bag_from_doubles(v, n, 5, &b));
    for (int nanm = 0; nanm < 2; nanm++)
        for (int m = 0; m < 2; m++)
            for (int sel = 0; sel < 2; sel++) {
                /* each pass sums dense 65536-bucket histograms per open
                 * prefix, ~50 MiB a call here, which TSan makes take ~1 s:
                 * under TSan half the combinations (each option still
                 * takes both values) */
                if (CHECK_TSAN && (nanm + m + sel) % 2) continue;
                weft_bag_quantile_options o = {.method = (weft_bag_qmethod)m,
                                               .nan = (weft_bag_nan)nanm,
                                               .select_max = sel ? 3 : 0};
                double got[16];
                REQUIRE_OK(weft_bag_quantiles(b, ex, q, nq, &o, got));
                const double *w = want + (size_t)(nanm * 2 + m) * nq;
                for (size_t i = 0; i < nq; i++)
                    CHECK_MSG(same_double(got[i], w[i]),
                              "%s: method %d nan %d select %d q=%g: %a, numpy %a", what, m, nanm,
                              sel, q[i], got[i], w[i]);
            }
    double med;
    weft_bag_quantile_options o = {0};
    REQUIRE_OK(weft_bag_median(b, ex, &o, &med));
    CHECK_MSG(same_double(med, want[4 * nq]), "%s: median %a, numpy %a", what, med, want[4 * nq]);
    weft_bag_release(b);
}

TEST(exact_quantiles_equal_numpy)
{
    if (!have_numpy()) SKIP("python3-numpy is not installed (the oracle)");
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) continue;
        /* every data set on serial; on the other backends the two that
         * take every path (gather, and exact keys through duplicates) */
        bool all = k == 0;
        size_t n = all ? 30001 : 10000;
        double *v = malloc(n * 8);
        /* random, with negatives, tiny and huge magnitudes */
        for (size_t i = 0; i < n; i++)
            v[i] = ((double)(rnd() >> 11) * 0x1p-53 - 0.3) * (i % 3 ? 1 : 1e6);
        check_quantiles_of(ex, v, n, "random");
        if (all) {
            for (size_t i = 0; i < n; i++) v[i] = (double)i * 0.25 - 100; /* sorted */
            check_quantiles_of(ex, v, n, "sorted");
            for (size_t i = 0; i < n; i++) v[i] = 42.5; /* constant */
            check_quantiles_of(ex, v, n, "constant");
        }
        for (size_t i = 0; i < n; i++) v[i] = (double)(rnd() % 3) - 0.0; /* heavy duplicates */
        v[7] = -0.0;
        if (all) check_quantiles_of(ex, v, n, "duplicates");
        v[3] = NAN;
        v[n - 1] = NAN;
        check_quantiles_of(ex, v, n, "duplicates with NaN");
        if (all) {
            check_quantiles_of(ex, v, 1, "one");
            check_quantiles_of(ex, v + 2, 2, "two");
        }
        free(v);
        weft_executor_destroy(ex);
    }
}

TEST(exact_quantiles_of_int64_and_empty)
{
    if (!have_numpy()) SKIP("python3-numpy is not installed (the oracle)");
    weft_executor *ex = threads();
    REQUIRE(ex);
    size_t n = 30001;
    int64_t *v = malloc(n * 8);
    for (size_t i = 0; i < n; i++) v[i] = (int64_t)rnd() >> (i % 50);
    write_file("qi.i64", v, n * 8);
    weft_bag *b;
    REQUIRE_OK(weft_bag_from_int64s(v, n, 6, &b));
    double q[] = {0, 0.2, 0.5, 0.77, 1};
    for (int m = 0; m < 2; m++) {
        weft_bag_quantile_options o = {.kind = WEFT_BAG_INT64, .method = (weft_bag_qmethod)m};
        double got[5], want[21];
        REQUIRE_OK(weft_bag_quantiles(b, ex, q, 5, &o, got));
        REQUIRE(numpy_all("qi.i64", "int64", q, 5, want));
        for (int i = 0; i < 5; i++)
            CHECK_MSG(got[i] == want[m * 5 + i], "q=%g %a %a", q[i], got[i], want[m * 5 + i]);
    }
    weft_bag_release(b);
    free(v);
    REQUIRE_OK(weft_bag_from_doubles(NULL, 0, 3, &b));
    double got;
    CHECK_OK(weft_bag_quantiles(b, ex, q + 2, 1, NULL, &got));
    CHECK(isnan(got));
    double bad = 1.5;
    CHECK_ERR(weft_bag_quantiles(b, ex, &bad, 1, NULL, &got), WEFT_EINVAL);
    weft_bag_release(b);
    weft_executor_destroy(ex);
}

static int dcmp_t(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

TEST(approx_quantiles_within_the_stated_rank_error)
{
    weft_executor *ex = threads();
    REQUIRE(ex);
    size_t n = 200000;
    double *v = malloc(n * 8), *s = malloc(n * 8);
    for (int data = 0; data < 3; data++) {
        for (size_t i = 0; i < n; i++)
            v[i] = data == 0   ? (double)(rnd() >> 11)
                   : data == 1 ? (double)i
                               : (double)(rnd() % 100);
        memcpy(s, v, n * 8);
        qsort(s, n, 8, dcmp_t);
        size_t ks[] = {128, 256, 1024};
        for (int j = 0; j < 3; j++) {
            weft_bag *b;
            REQUIRE_OK(weft_bag_from_doubles(v, n, 16, &b));
            double q[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99};
            double got[7], same[7];
            REQUIRE_OK(weft_bag_quantiles_approx(b, ex, WEFT_BAG_DOUBLE, q, 7, ks[j], got));
            REQUIRE_OK(weft_bag_quantiles_approx(b, ex, WEFT_BAG_DOUBLE, q, 7, ks[j], same));
            double eps = 2.0 / (double)ks[j];
            for (int i = 0; i < 7; i++) {
                CHECK(got[i] == same[i]); /* deterministic */
                /* the ranks the value covers: [first index >= v, last index <= v] */
                size_t lo = 0, hi = n;
                while (lo < hi) {
                    size_t m = (lo + hi) / 2;
                    if (s[m] < got[i])
                        lo = m + 1;
                    else
                        hi = m;
                }
                size_t first = lo;
                hi = n;
                while (lo < hi) {
                    size_t m = (lo + hi) / 2;
                    if (s[m] <= got[i])
                        lo = m + 1;
                    else
                        hi = m;
                }
                double target = q[i] * (double)n;
                double err = target < (double)first ? (double)first - target
                             : target > (double)lo  ? target - (double)lo
                                                    : 0;
                CHECK_MSG(err <= eps * (double)n, "data %d k %zu q %g: rank error %.0f > %.0f",
                          data, ks[j], q[i], err, eps * (double)n);
            }
            weft_bag_release(b);
        }
    }
    free(v);
    free(s);
    weft_executor_destroy(ex);
}

/* ---- the same pipeline everywhere ------------------------------------------------------ */

TEST(same_result_on_every_backend)
{
    int64_t *v = rand_i64(20000, 100000);
    int64_t two = 2;
    uint64_t ref_count = 0;
    double ref_q[3] = {0};
    int64_t ref_top[20];
    bool first = true;
    for (int k = 0; k < NBACK; k++) {
        weft_executor *ex = exec_of(BACKENDS[k]);
        if (!ex) {
            printf("     (backend %s not available here)\n", weft_backend_name(BACKENDS[k]));
            continue;
        }
        weft_bag *b, *m, *f;
        REQUIRE_OK(weft_bag_from_int64s(v, 20000, 11, &b));
        REQUIRE_OK(weft_bag_map(b, times3, NULL, 0, &m));
        REQUIRE_OK(weft_bag_filter(m, divisible, &two, 8, &f));
        uint64_t c;
        REQUIRE_OK(weft_bag_count(f, ex, &c));
        double q[3], qs[] = {0.1, 0.5, 0.9};
        weft_bag_quantile_options o = {.kind = WEFT_BAG_INT64};
        REQUIRE_OK(weft_bag_quantiles(f, ex, qs, 3, &o, q));
        weft_bag_topk_options to = {.key = WEFT_BAG_KEY_INT64};
        weft_bag_records *r;
        REQUIRE_OK(weft_bag_topk(f, ex, 20, &to, &r));
        if (first) {
            ref_count = c;
            memcpy(ref_q, q, sizeof q);
            REQUIRE(weft_bag_records_count(r) == 20);
            for (size_t i = 0; i < 20; i++) {
                const void *d;
                size_t l;
                weft_bag_records_get(r, i, &d, &l);
                weft_bag_rec_int64(d, l, &ref_top[i]);
            }
            first = false;
        } else {
            CHECK_EQ_U64(c, ref_count);
            CHECK(memcmp(q, ref_q, sizeof q) == 0);
            CHECK(recs_equal_i64(r, ref_top, 20));
        }
        weft_bag_records_destroy(r);
        weft_bag_release(f);
        weft_bag_release(m);
        weft_bag_release(b);
        weft_executor_destroy(ex);
    }
    free(v);
}

/* The histograms of the exact quantiles travel dense or sparse
 * (src/bag/hist.c): every mix of the two forms merges to the plain sum,
 * a bucket is found by rank the same way in both, and malformed ones are
 * refused. Random histograms over 3 prefixes, from nearly empty to full. */
TEST(histograms_dense_and_sparse_agree)
{
    const size_t nb = 3 * HIST_BUCKETS;
    uint64_t *one = calloc(nb, 8);
    uint32_t *nz = malloc(nb * 4);
    REQUIRE(one && nz);
    size_t fills[] = {0, 1, 5, 1000, nb / 2 - 1, nb / 2, nb};
    enum {
        K = 7
    };
    wb parts[K];
    hist_view v[K];
    memset(parts, 0, sizeof parts);
    for (int k = 0; k < K; k++) {
        memset(one, 0, nb * 8);
        size_t nnz = 0;
        for (size_t j = 0; j < fills[k]; j++) {
            size_t b = fills[k] == nb ? j : (size_t)(rnd() % nb);
            if (one[b]++ == 0) nz[nnz++] = (uint32_t)b;
        }
        uint64_t t = 0;
        for (size_t b = 0; b < nb; b++) t += one[b];
        /* even k: the used buckets are known (sparse when few); odd: dense */
        weft__hist_write(&parts[k], t + 2, 2, one, nb, nz, nnz, k % 2 == 0);
        REQUIRE(!parts[k].oom);
        REQUIRE(weft__hist_read(parts[k].p, parts[k].n, nb, &v[k]) == 0);
        CHECK_EQ_U64(v[k].form, (k % 2 == 0 && nnz < nb / 2) ? HIST_SPARSE : HIST_DENSE);
        CHECK_EQ_U64(v[k].total, t + 2);
    }
    /* every subset of the parts, merged, equals the sum of that subset */
    for (unsigned mask = 1; mask < (1u << K); mask += 5) {
        hist_view in[K];
        size_t n = 0;
        memset(one, 0, nb * 8);
        for (int k = 0; k < K; k++)
            if (mask & (1u << k)) {
                in[n++] = v[k];
                if (v[k].form == HIST_DENSE) {
                    for (size_t b = 0; b < nb; b++) {
                        uint64_t c;
                        memcpy(&c, v[k].data + b * 8, 8);
                        one[b] += c;
                    }
                } else {
                    for (size_t j = 0; j < v[k].nnz; j++) {
                        uint64_t b, c;
                        memcpy(&b, v[k].data + j * 16, 8);
                        memcpy(&c, v[k].data + j * 16 + 8, 8);
                        one[b] += c;
                    }
                }
            }
        wb m = {0};
        CHECK_OK(weft__hist_merge(in, n, nb, &m));
        hist_view mv;
        REQUIRE(weft__hist_read(m.p, m.n, nb, &mv) == 0);
        /* the rank walk over each prefix finds the same buckets as over the
         * plain sum */
        for (size_t pi = 0; pi < 3; pi++) {
            uint64_t tot = 0;
            for (size_t b = 0; b < HIST_BUCKETS; b++) tot += one[pi * HIST_BUCKETS + b];
            for (uint64_t r = 0; r < tot; r += tot / 7 + 1) {
                uint64_t below = 0, count = 0, acc = 0;
                long want = -1;
                for (size_t b = 0; b < HIST_BUCKETS; b++) {
                    uint64_t c = one[pi * HIST_BUCKETS + b];
                    if (r < acc + c) {
                        want = (long)b;
                        break;
                    }
                    acc += c;
                }
                long got = weft__hist_find(&mv, pi, r, &below, &count);
                CHECK_MSG(got == want && below == acc && count == one[pi * HIST_BUCKETS + got],
                          "mask %u prefix %zu rank %llu: bucket %ld (want %ld)", mask, pi,
                          (unsigned long long)r, got, want);
            }
            uint64_t below = 0, count;
            CHECK(weft__hist_find(&mv, pi, tot, &below, &count) == -1);
        }
        wb_free(&m);
    }
    /* malformed: a wrong length, an unknown form, buckets out of order */
    CHECK(weft__hist_read(parts[1].p, parts[1].n - 8, nb, &v[0]) == -1);
    CHECK(weft__hist_read(parts[1].p, parts[1].n, nb - 1, &v[0]) == -1);
    uint64_t bad[7] = {1, 0, 9, 0, 0, 0, 0};
    CHECK(weft__hist_read(bad, 24, nb, &v[0]) == -1);
    uint64_t unordered[3 + 1 + 4] = {2, 0, HIST_SPARSE, 2, 5, 1, 4, 1};
    CHECK(weft__hist_read(unordered, sizeof unordered, nb, &v[0]) == -1);
    uint64_t outside[3 + 1 + 2] = {1, 0, HIST_SPARSE, 1, nb, 1};
    CHECK(weft__hist_read(outside, sizeof outside, nb, &v[0]) == -1);
    for (int k = 0; k < K; k++) wb_free(&parts[k]);
    free(one);
    free(nz);
}

TEST(bad_input)
{
    weft_bag *b = NULL;
    CHECK_ERR(weft_bag_from_sequence(NULL, 3, 1, &b), WEFT_EINVAL);
    CHECK_ERR(weft_bag_map(NULL, times3, NULL, 0, &b), WEFT_EINVAL);
    CHECK(b == NULL);
    REQUIRE_OK(weft_bag_range(0, 3, 1, 1, &b));
    weft_bag *m;
    CHECK_ERR(weft_bag_map(b, NULL, NULL, 0, &m), WEFT_EINVAL);
    CHECK_ERR(weft_bag_count(b, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_bag_to_textfiles(b, NULL, "no-star", WEFT_BAG_COMPRESS_NONE, NULL), WEFT_EINVAL);
    double x;
    CHECK_ERR(weft_bag_pair_get("ab", 2, NULL, NULL, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_bag_rec_double("abc", 3, &x), WEFT_EINVAL);
    CHECK_EQ_INT(weft_bag_release(b), 0);
    CHECK_EQ_INT(weft_bag_release(NULL), 0);
    CHECK_EQ_INT(weft_bag_records_destroy(NULL), 0);
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        weft_executor_destroy(probe);
    }
    return check_main(argc, argv);
}

/* test_svg.c : the task-stream picture. Traces from real runs and written by
 * hand are drawn and checked well-formed with xmllint (libxml2-utils, which
 * scripts/install-deps.sh installs); lanes, bars, colours and the legend are
 * checked in the text; malformed traces are refused with a position; a
 * trace of 200k tiny tasks still makes a small picture. */
// weft-test-timeout: 300
#include "check.h"

#include <sys/stat.h>

/* weft_wait's count of finished futures, or its error code */
static long wait_count(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout,
                       bool *done)
{
    size_t nd = 0;
    int rc = weft_wait(fs, n, mode, timeout, done, &nd);
    return rc ? rc : (long)nd;
}

static int spin_ms(weft_ctx *ctx, const void *in, size_t len)
{
    double ms = 0;
    if (len == sizeof ms) memcpy(&ms, in, sizeof ms);
    double end = weft_now() + ms * 1e-3;
    while (weft_now() < end) {
    }
    if (weft_ctx_index(ctx) % 10 == 9) return weft_ctx_fail(ctx, WEFT_ETASK, "every tenth fails");
    return weft_ctx_set_output(ctx, &ms, sizeof ms);
}
WEFT_TASK_REGISTER(spin_ms);

static int other_task(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER_AS(other_task, "odd<name>&\"quoted\"");

static int tiny(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    (void)in;
    (void)len;
    return 0;
}
WEFT_TASK_REGISTER(tiny);

static bool have_xmllint(void)
{
    return system("command -v xmllint >/dev/null 2>&1") == 0;
}

/* xmllint's verdict on `path` (it must be installed: the caller skips). */
static bool well_formed(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    return system(cmd) == 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

TEST(picture_of_a_threads_run)
{
    if (!have_xmllint()) SKIP("xmllint is not installed (apt-get install libxml2-utils)");
    weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_trace_enable(ex));
    enum {
        N = 40
    };
    weft_future *fs[N + 1];
    double ms = 2;
    for (int i = 0; i < N; i++) REQUIRE_OK(weft_submit(ex, spin_ms, &ms, sizeof ms, &fs[i]));
    REQUIRE_OK(weft_submit(ex, other_task, "x", 1, &fs[N]));
    CHECK_EQ_INT(wait_count(fs, N + 1, WEFT_WAIT_ALL, 60, NULL), N + 1);
    for (int i = 0; i <= N; i++) weft_future_release(fs[i]);
    CHECK_OK(weft_trace_write_svg(ex, "run.svg", NULL));
    CHECK_OK(weft_trace_write(ex, "run.json"));
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_OK(weft_trace_svg("run.json", "run2.svg", &(weft_svg_options){.title = "a <title>"}));

    CHECK(well_formed("run.svg"));
    CHECK(well_formed("run2.svg"));
    char *s = slurp("run.svg", NULL);
    REQUIRE(s);
    CHECK(strstr(s, "<svg ") && strstr(s, "</svg>"));
    CHECK(strstr(s, "weft task stream: threads"));
    CHECK(strstr(s, ">worker 0 (") && strstr(s, ">worker 1 ("));
    CHECK(!strstr(s, ">worker 2 ("));
    /* one bar per task (2 ms each: wide enough never to merge) */
    CHECK_EQ_U64(count(s, "<title>spin_ms: "), N);
    CHECK_EQ_U64(count(s, "(failed)</title>"), N / 10);
    /* the odd name is escaped, in a bar and in the legend */
    CHECK(strstr(s, "odd&lt;name&gt;&amp;&quot;quoted&quot;"));
    CHECK(!strstr(s, "odd<name>"));
    /* two colours: the busiest name gets the palette's first */
    CHECK(strstr(s, "fill=\"#4e79a7\" stroke=\"white\" stroke-width=\"0.75\"><title>spin_ms"));
    CHECK(strstr(s, "fill=\"#f28e2b\""));
    CHECK(strstr(s, "time since the first task"));
    free(s);
    s = slurp("run2.svg", NULL);
    REQUIRE(s);
    CHECK(strstr(s, ">a &lt;title&gt;</text>"));
    free(s);
}

TEST(hand_written_traces)
{
    if (!have_xmllint()) SKIP("xmllint is not installed (apt-get install libxml2-utils)");
    /* a bare array, string ids, escapes, B/E and instant events ignored */
    write_text("bare.json",
               "[ {\"name\":\"load\\u0021\",\"ph\":\"X\",\"ts\":0,\"dur\":1000,\"pid\":\"main\","
               "\"tid\":\"io\"},\n"
               "  {\"name\":\"crunch\",\"ph\":\"X\",\"ts\":1000.5,\"dur\":2e3,\"pid\":1,\"tid\":7,"
               "\"args\":{\"outcome\":\"error\",\"nested\":[1,{\"a\":null}],\"t\":true}},\n"
               "  {\"name\":\"mark\",\"ph\":\"i\",\"ts\":5},\n"
               "  {\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":7,"
               "\"args\":{\"name\":\"cruncher \\\"7\\\"\"}} ]");
    CHECK_OK(weft_trace_svg("bare.json", "bare.svg",
                            &(weft_svg_options){.width = 640, .lane_height = 40}));
    CHECK(well_formed("bare.svg"));
    char *s = slurp("bare.svg", NULL);
    REQUIRE(s);
    CHECK(strstr(s, "width=\"640\""));
    CHECK(strstr(s, "<title>load!: 1 ms</title>"));
    CHECK(strstr(s, "<title>crunch: 2 ms (failed)</title>"));
    CHECK(strstr(s, ">cruncher &quot;7&quot; (67%)</text>"));
    CHECK(!strstr(s, "mark"));
    CHECK(strstr(s, "2 tasks on 2 lanes"));
    free(s);
    /* an empty trace is an empty picture */
    write_text("empty.json", "{\"traceEvents\":[]}");
    CHECK_OK(weft_trace_svg("empty.json", "empty.svg", NULL));
    CHECK(well_formed("empty.svg"));
}

TEST(malformed_traces_are_refused_with_a_position)
{
    const char *bad[] = {
        "",
        "{",
        "[",
        "{\"traceEvents\":[{\"name\":\"a\",\"ph\":\"X\",\"ts\":1,}]}",
        "{\"traceEvents\":[{\"name\":\"a\" \"ph\":\"X\"}]}",
        "{\"traceEvents\":[{\"name\":\"a\\q\"}]}",
        "{\"traceEvents\":[{\"name\":\"a\",\"ts\":1e999}]}",
        "{\"traceEvents\":[{\"name\":\"unterminated}]}",
        "{\"traceEvents\":[]} trailing",
        "{\"other\":1}",
        "{\"traceEvents\":[{\"name\":\"a\",\"ts\":-}]}",
        "{\"traceEvents\":[{\"x\":tru}]}",
        "{\"traceEvents\":[{\"name\":\"\\u12\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text("bad.json", bad[i]);
        int rc = weft_trace_svg("bad.json", "bad.svg", NULL);
        CHECK_MSG(rc == WEFT_EINVAL, "case %zu: %d", i, rc);
        CHECK_MSG(strstr(weft_last_error(), "byte"), "case %zu: %s", i, weft_last_error());
    }
    /* nesting deeper than the limit is refused, not recursed into */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    REQUIRE(deep);
    strcpy(deep, "{\"traceEvents\":[{\"args\":{\"x\":");
    size_t p = strlen(deep);
    for (size_t i = 0; i < depth; i++) deep[p++] = '[';
    deep[p] = '\0';
    write_text("deep.json", deep);
    free(deep);
    CHECK_ERR(weft_trace_svg("deep.json", "deep.svg", NULL), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "nested too deeply"));
    CHECK_ERR(weft_trace_svg("no-such.json", "x.svg", NULL), -ENOENT);
    CHECK_ERR(weft_trace_svg(NULL, "x.svg", NULL), WEFT_EINVAL);
    CHECK_ERR(weft_trace_svg("bad.json", NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_trace_write_svg(NULL, "x.svg", NULL), WEFT_EINVAL);
    write_text("ok.json", "[]");
    CHECK_ERR(weft_trace_svg("ok.json", "/no-such-dir/x.svg", NULL), -ENOENT);
}

TEST(many_tiny_tasks_make_a_small_picture)
{
    if (!have_xmllint()) SKIP("xmllint is not installed (apt-get install libxml2-utils)");
    weft_options o = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_trace_enable(ex));
    size_t n = check_scaled(200000, 2000);
    weft_map_options mo = {.chunk_size = 1};
    weft_results *r;
    REQUIRE_OK(weft_map(ex, tiny, NULL, 0, n, &mo, &r));
    weft_results_destroy(r);
    CHECK_OK(weft_trace_write_svg(ex, "tiny.svg", NULL));
    CHECK_OK(weft_executor_destroy(ex));
    CHECK(well_formed("tiny.svg"));
    size_t len = 0;
    char *s = slurp("tiny.svg", &len);
    REQUIRE(s);
    /* every task is in the picture, but merged runs keep it small */
    printf("    %zu tasks: %zu bytes of SVG, %zu bars\n", n, len, count(s, "<rect x="));
    CHECK_MSG(len < 2u << 20, "%zu bytes", len);
    CHECK(strstr(s, " tasks in "));
    free(s);
}

/* A lane per (pid, tid): a trace of 100,000 threads (or a hostile file
 * with a new tid on every event) must cost time linear in its size. Lanes
 * were found by a scan and re-pointed after sorting by a double loop:
 * quadratic, over 30 s of CPU here before the fix. Measured in CPU time of
 * this thread, so a busy machine does not change it. */
TEST(a_lane_per_event_stays_linear)
{
    size_t n = 100000;
    FILE *f = fopen("lanes.json", "wb");
    REQUIRE(f);
    fputs("{\"traceEvents\":[", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f,
                "%s{\"name\":\"t%zu\",\"ph\":\"X\",\"ts\":%zu,\"dur\":1,\"pid\":%zu,\"tid\":%zu}",
                i ? "," : "", i % 7, i, i % 3, n - i);
    fputs("]}", f);
    REQUIRE(fclose(f) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    CHECK_OK(weft_trace_svg("lanes.json", "/dev/null", NULL));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("    %zu lanes: %.2f s of CPU\n", n, cpu);
    CHECK_MSG(cpu < 10.0, "%.2f s of CPU for %zu lanes: not linear", cpu, n);
    remove("lanes.json");
}

TEST(executor_without_a_trace_draws_an_empty_picture)
{
    weft_options o = {.backend = WEFT_BACKEND_SERIAL};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_trace_write_svg(ex, "none.svg", NULL));
    CHECK_OK(weft_executor_destroy(ex));
    char *s = slurp("none.svg", NULL);
    REQUIRE(s);
    CHECK(strstr(s, "0 tasks on"));
    free(s);
    if (have_xmllint()) CHECK(well_formed("none.svg"));
}

/* A small mutation fuzzer over the trace reader: random byte flips,
 * deletions, duplications and insertions of JSON punctuation into a valid
 * trace. Every result must be a picture or WEFT_EINVAL: never a crash
 * (ASan/UBSan builds watch the reads), a hang or another code. */
TEST(mutated_traces_never_crash_the_reader)
{
    const char *seed_trace =
        "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"backend\":\"threads\",\"version\":\"0.1.0\"},"
        "\"traceEvents\":[\n"
        "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"worker "
        "0\"}},\n"
        "{\"name\":\"a\\\"b\",\"cat\":\"task\",\"ph\":\"X\",\"ts\":1.5,\"dur\":20.25,\"pid\":1,"
        "\"tid\":0,\"args\":{\"outcome\":\"ok\",\"items\":1}},\n"
        "{\"name\":\"c\",\"ph\":\"X\",\"ts\":30,\"dur\":1e1,\"pid\":1,\"tid\":1,\"args\":{"
        "\"outcome\":\"error\",\"error\":\"WEFT_ETASK\",\"list\":[1,2,{\"x\":null}]}}\n]}\n";
    static const char punct[] = "{}[]:,\"\\-.0123456789eEtfn u";
    size_t base = strlen(seed_trace);
    weft_rng r;
    weft_rng_seed(&r, 42);
    size_t iters = check_scaled(3000, 300);
    int pictures = 0;
    char *buf = malloc(4 * base + 64);
    REQUIRE(buf);
    for (size_t it = 0; it < iters; it++) {
        size_t n = base;
        memcpy(buf, seed_trace, base);
        int muts = (int)weft_rng_range(&r, 1, 4);
        for (int m = 0; m < muts && n > 2; m++) {
            size_t at = (size_t)weft_rng_range(&r, 0, (int64_t)n - 1);
            switch (weft_rng_range(&r, 0, 3)) {
            case 0: /* flip a byte */
                buf[at] = (char)weft_rng_range(&r, 1, 255);
                break;
            case 1: { /* delete a range */
                size_t k = (size_t)weft_rng_range(&r, 1, 8);
                if (at + k > n) k = n - at;
                memmove(buf + at, buf + at + k, n - at - k);
                n -= k;
                break;
            }
            case 2: { /* duplicate a range */
                size_t k = (size_t)weft_rng_range(&r, 1, 16);
                if (at + k > n) k = n - at;
                if (n + k > 4 * base) break;
                memmove(buf + at + k, buf + at, n - at);
                n += k;
                break;
            }
            default: /* insert punctuation */
                if (n + 1 > 4 * base) break;
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = punct[weft_rng_range(&r, 0, (int64_t)sizeof punct - 2)];
                n++;
                break;
            }
        }
        /* new files, not truncated ones: ext4 (auto_da_alloc) writes a
         * file truncated and rewritten back to disk at close, and the next
         * truncation waits for that write -- up to 0.3 s an iteration
         * while a build fills the disk queue (the case took 130 s then) */
        unlink("fuzz.json");
        unlink("fuzz.svg");
        FILE *f = fopen("fuzz.json", "wb");
        REQUIRE(f);
        fwrite(buf, 1, n, f);
        fclose(f);
        int rc = weft_trace_svg("fuzz.json", "fuzz.svg", NULL);
        CHECK_MSG(rc == 0 || rc == WEFT_EINVAL, "iteration %zu: %d (%s)", it, rc,
                  weft_last_error());
        if (rc == 0) pictures++;
    }
    free(buf);
    printf("    %zu mutated traces: %d still pictures, the rest refused\n", iters, pictures);
    CHECK(pictures > 0 && (size_t)pictures < iters);
}

/* test_progress.c : progress bars -- plain lines and in-place redraws, adds
 * from many threads, unknown totals, bad options, and the bars weft_map,
 * weft_parallel and weft_graph_compute draw on stderr when asked (option or
 * WEFT_PROGRESS=1) and only then. */
#include "check.h"

#include <fcntl.h>

static int noop(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(noop);

static char *slurp(const char *path)
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
    return b;
}

/* stderr goes to a file between capture_begin and capture_end, which
 * returns what was written (caller frees). */
static int saved_err = -1;

static void capture_begin(const char *path)
{
    fflush(stderr);
    saved_err = dup(2);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0 && saved_err >= 0);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(const char *path)
{
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    saved_err = -1;
    return slurp(path);
}

typedef struct adder {
    weft_progress *p;
    int n;
} adder;

static void *add_many(void *arg)
{
    adder *a = arg;
    for (int i = 0; i < a->n; i++) {
        weft_progress_add(a->p, 1);
        if (i % 100 == 0) check_sleep(0.0002);
    }
    return NULL;
}

TEST(plain_lines_from_many_threads)
{
    int fd = open("lines.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    weft_progress_options o = {.fd = fd, .mode = WEFT_PROGRESS_LINES, .interval = 0.001};
    weft_progress *p;
    REQUIRE_OK(weft_progress_create("work", 4000, &o, &p));
    pthread_t th[4];
    adder a = {p, 1000};
    for (int i = 0; i < 4; i++) REQUIRE(pthread_create(&th[i], NULL, add_many, &a) == 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U64(weft_progress_done(p), 4000);
    weft_progress_destroy(p);
    close(fd);
    char *s = slurp("lines.txt");
    REQUIRE(s);
    /* every line is whole: "work: D/4000 (P%) R/s elapsed E eta T", done
     * counts never go down, the last says 100% and done */
    int lines = 0;
    unsigned long long prev = 0;
    char *save = NULL;
    bool last_done = false;
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        unsigned long long d, t;
        int pct;
        CHECK_MSG(sscanf(l, "work: %llu/%llu (%d%%)", &d, &t, &pct) == 3, "line: %s", l);
        CHECK_EQ_U64(t, 4000);
        CHECK(d >= prev);
        CHECK(strstr(l, "/s elapsed ") && strstr(l, " eta "));
        CHECK(!strchr(l, '\r'));
        prev = d;
        last_done = strstr(l, " done") != NULL;
        if (last_done) CHECK(d == 4000 && pct == 100);
        lines++;
    }
    CHECK(lines >= 2);
    CHECK(last_done);
    free(s);
}

TEST(terminal_mode_redraws_in_place)
{
    int fd = open("tty.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    weft_progress_options o = {
        .fd = fd, .mode = WEFT_PROGRESS_TTY, .interval = 0.0001, .width = 10};
    weft_progress *p;
    REQUIRE_OK(weft_progress_create("bar", 10, &o, &p));
    for (int i = 0; i < 10; i++) {
        check_sleep(0.001);
        weft_progress_add(p, 1);
    }
    weft_progress_destroy(p);
    close(fd);
    char *s = slurp("tty.txt");
    REQUIRE(s);
    CHECK(s[0] == '\r');
    CHECK(strstr(s, "\rbar:   0% |..........| 0/10 ["));
    CHECK(strstr(s, "\rbar: 100% |##########| 10/10 ["));
    CHECK(strstr(s, "\x1b[K"));
    size_t n = strlen(s);
    CHECK(n > 0 && s[n - 1] == '\n');
    CHECK_EQ_U64((size_t)(strchr(s, '\n') - s), n - 1); /* one line, ended once */
    free(s);
}

TEST(unknown_total_and_set_total)
{
    int fd = open("unknown.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    weft_progress_options o = {.fd = fd, .mode = WEFT_PROGRESS_LINES, .interval = 1000};
    weft_progress *p;
    REQUIRE_OK(weft_progress_create(NULL, 0, &o, &p));
    weft_progress_add(p, 5);
    weft_progress_destroy(p);
    REQUIRE_OK(weft_progress_create("later", 0, &o, &p));
    weft_progress_add(p, 3);
    weft_progress_set_total(p, 3);
    weft_progress_destroy(p);
    close(fd);
    char *s = slurp("unknown.txt");
    REQUIRE(s);
    CHECK(strstr(s, "progress: 0 "));
    CHECK(strstr(s, "progress: 5 ") && strstr(s, " done\n"));
    CHECK(strstr(s, "later: 3/3 (100%)"));
    free(s);
    weft_progress_add(NULL, 1);
    weft_progress_set_total(NULL, 1);
    weft_progress_destroy(NULL);
    CHECK_EQ_U64(weft_progress_done(NULL), 0);
}

TEST(bad_options)
{
    weft_progress *p = (weft_progress *)1;
    CHECK_ERR(weft_progress_create("x", 1, NULL, NULL), WEFT_EINVAL);
    weft_progress_options o = {.interval = -1};
    CHECK_ERR(weft_progress_create("x", 1, &o, &p), WEFT_EINVAL);
    CHECK(p == NULL);
    o = (weft_progress_options){.interval = NAN};
    CHECK_ERR(weft_progress_create("x", 1, &o, &p), WEFT_EINVAL);
    o = (weft_progress_options){.width = -3};
    CHECK_ERR(weft_progress_create("x", 1, &o, &p), WEFT_EINVAL);
    o = (weft_progress_options){.mode = (weft_progress_mode)9};
    CHECK_ERR(weft_progress_create("x", 1, &o, &p), WEFT_EINVAL);
    o = (weft_progress_options){.fd = -2};
    CHECK_ERR(weft_progress_create("x", 1, &o, &p), WEFT_EINVAL);
}

TEST(map_parallel_and_compute_draw_when_asked_only)
{
    unsetenv("WEFT_PROGRESS");
    weft_options eo = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    weft_executor *ex;
    REQUIRE_OK(weft_executor_create(&eo, &ex));
    enum {
        N = 5000
    };
    static int64_t items[N];
    for (int i = 0; i < N; i++) items[i] = i;
    weft_results *r;

    /* off by default: nothing on stderr */
    capture_begin("off.txt");
    CHECK_OK(weft_map(ex, noop, items, 8, N, NULL, &r));
    weft_results_destroy(r);
    char *s = capture_end("off.txt");
    REQUIRE(s);
    CHECK_EQ_STR(s, "");
    free(s);

    /* the option */
    capture_begin("on.txt");
    weft_map_options mo = {.progress = 1};
    CHECK_OK(weft_map(ex, noop, items, 8, N, &mo, &r));
    weft_results_destroy(r);
    s = capture_end("on.txt");
    REQUIRE(s);
    CHECK_MSG(strstr(s, "map: 0/5000 (0%)") && strstr(s, "map: 5000/5000 (100%)"), "%s", s);
    free(s);

    /* the environment, and an explicit -1 that beats it */
    setenv("WEFT_PROGRESS", "1", 1);
    capture_begin("env.txt");
    CHECK_OK(weft_map(ex, noop, items, 8, N, NULL, &r));
    weft_results_destroy(r);
    mo.progress = -1;
    CHECK_OK(weft_map(ex, noop, items, 8, 10, &mo, &r));
    weft_results_destroy(r);
    s = capture_end("env.txt");
    REQUIRE(s);
    CHECK_MSG(strstr(s, "map: 5000/5000 (100%)") && !strstr(s, "/10 ("), "%s", s);
    free(s);

    /* weft_parallel and compute, through the environment */
    weft_call calls[3] = {{noop, "a", 1}, {noop, "bb", 2}, {noop, "ccc", 3}};
    weft_graph *g;
    REQUIRE_OK(weft_graph_create(NULL, &g));
    weft_node nodes[3];
    for (int i = 0; i < 3; i++) {
        weft_arg a = weft_arg_bytes(&items[i], 8);
        REQUIRE_OK(weft_graph_call(g, noop, &a, 1, &nodes[i]));
    }
    capture_begin("more.txt");
    weft_parallel_options po = {.executor = ex};
    CHECK_OK(weft_parallel(calls, 3, &po, &r));
    weft_results_destroy(r);
    CHECK_OK(weft_graph_compute(g, ex, nodes, 3, NULL));
    s = capture_end("more.txt");
    REQUIRE(s);
    CHECK_MSG(strstr(s, "map: 3/3 (100%)") && strstr(s, "compute: 3/3 (100%)"), "%s", s);
    free(s);
    /* WEFT_PROGRESS=0 is off */
    setenv("WEFT_PROGRESS", "0", 1);
    capture_begin("zero.txt");
    CHECK_OK(weft_graph_compute(g, ex, nodes, 3, NULL)); /* all held: nothing to run */
    CHECK_OK(weft_map(ex, noop, items, 8, 10, NULL, &r));
    weft_results_destroy(r);
    s = capture_end("zero.txt");
    REQUIRE(s);
    CHECK_EQ_STR(s, "");
    free(s);
    unsetenv("WEFT_PROGRESS");
    weft_graph_destroy(g);
    CHECK_OK(weft_executor_destroy(ex));
}

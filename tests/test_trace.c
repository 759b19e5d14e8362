/* test_trace.c : the Chrome trace-event JSON written at destroy
 * (opts.trace_path, WEFT_TRACE) and on demand (weft_trace_enable/_write). */
#include "check.h"

#include <ctype.h>
#include <sys/stat.h>

/* ---- a small JSON checker ---- */

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
    if (*p != '"') return NULL;
    p++;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
    const char *s = p;
    if (*p == '-') p++;
    if (!isdigit((unsigned char)*p)) return NULL;
    while (isdigit((unsigned char)*p)) p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p > s ? p : NULL;
}

static const char *js_value(const char *p, int depth)
{
    if (depth > 64) return NULL;
    p = js_ws(p);
    if (*p == '{') {
        p = js_ws(p + 1);
        if (*p == '}') return p + 1;
        for (;;) {
            p = js_string(js_ws(p));
            if (!p) return NULL;
            p = js_ws(p);
            if (*p != ':') return NULL;
            p = js_value(p + 1, depth + 1);
            if (!p) return NULL;
            p = js_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == '}' ? p + 1 : NULL;
        }
    }
    if (*p == '[') {
        p = js_ws(p + 1);
        if (*p == ']') return p + 1;
        for (;;) {
            p = js_value(p, depth + 1);
            if (!p) return NULL;
            p = js_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == ']' ? p + 1 : NULL;
        }
    }
    if (*p == '"') return js_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return js_number(p);
}

static bool json_valid(const char *text)
{
    const char *p = js_value(text, 0);
    return p && *js_ws(p) == '\0';
}

/* The text with whitespace outside strings removed. */
static char *compact(const char *t)
{
    char *o = malloc(strlen(t) + 1), *q = o;
    bool in = false;
    for (const char *p = t; *p; p++) {
        if (in) {
            *q++ = *p;
            if (*p == '\\' && p[1])
                *q++ = *++p;
            else if (*p == '"')
                in = false;
        } else if (*p == '"') {
            in = true;
            *q++ = *p;
        } else if (!isspace((unsigned char)*p)) {
            *q++ = *p;
        }
    }
    *q = '\0';
    return o;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t r = fread(b, 1, (size_t)n, f);
    b[r] = '\0';
    fclose(f);
    return b;
}

struct trace_event {
    char name[64];
    char ph[8];
    char args[256];
    long long tid;
    bool has_tid, has_ts, has_dur;
};

/* Copies a string field `"key":"v"` of the compact object text at obj. */
static bool field_str(const char *obj, const char *end, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(obj, pat);
    if (!p || p >= end) return false;
    p += strlen(pat);
    size_t i = 0;
    while (p < end && *p != '"' && i + 1 < cap) out[i++] = *p++;
    out[i] = '\0';
    return true;
}

static bool field_num(const char *obj, const char *end, const char *key, long long *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(obj, pat);
    if (!p || p >= end) return false;
    p += strlen(pat);
    if (*p == '"') p++; /* tolerate "tid":"3" */
    if (!(isdigit((unsigned char)*p) || *p == '-')) return false;
    *out = strtoll(p, NULL, 10);
    return true;
}

/* Parses the events of the traceEvents array (compact text). Returns count or -1. */
static int parse_events(const char *c, struct trace_event *ev, int cap)
{
    const char *p = strstr(c, "\"traceEvents\":[");
    if (!p) return -1;
    p += strlen("\"traceEvents\":[");
    int n = 0;
    while (*p && *p != ']') {
        if (*p == ',') {
            p++;
            continue;
        }
        const char *end = js_value(p, 0);
        if (!end) return -1;
        if (*p == '{' && n < cap) {
            /* restrict field searches to this object, excluding args for top fields */
            size_t len = (size_t)(end - p);
            char *obj = malloc(len + 1);
            memcpy(obj, p, len);
            obj[len] = '\0';
            struct trace_event *e = &ev[n];
            memset(e, 0, sizeof *e);
            char *args = strstr(obj, "\"args\":{");
            if (args) {
                const char *ae = js_value(args + 7, 0);
                size_t al = ae ? (size_t)(ae - (args + 7)) : 0;
                if (al >= sizeof e->args) al = sizeof e->args - 1;
                memcpy(e->args, args + 7, al);
                e->args[al] = '\0';
                /* blank the args so their keys are not taken as top-level */
                if (ae) memset(args, ' ', (size_t)(ae - args));
            }
            const char *oe = obj + len;
            field_str(obj, oe, "name", e->name, sizeof e->name);
            field_str(obj, oe, "ph", e->ph, sizeof e->ph);
            e->has_tid = field_num(obj, oe, "tid", &e->tid);
            long long dummy;
            e->has_ts = field_num(obj, oe, "ts", &dummy);
            e->has_dur = field_num(obj, oe, "dur", &dummy);
            free(obj);
            n++;
        }
        p = end;
    }
    return n;
}

/* ---- tasks ---- */

static int trace_ok(weft_ctx *ctx, const void *in, size_t len)
{
    check_sleep(0.001);
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(trace_ok);

static int trace_err(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    return weft_ctx_fail(ctx, WEFT_EPERM, "traced failure with \"quotes\" and \\ backslash\n");
}
WEFT_TASK_REGISTER(trace_err);

static int trace_cancel(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}
WEFT_TASK_REGISTER(trace_cancel);

static atomic_int gate_started, gate_open;

static int trace_gate(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    atomic_fetch_add(&gate_started, 1);
    double end = check_now() + 30;
    while (!atomic_load(&gate_open) && check_now() < end) check_sleep(0.0005);
    return 0;
}
WEFT_TASK_REGISTER(trace_gate);

enum {
    N_OK = 20,
    N_ERR = 3,
    N_CANCEL = 2
};

/* one gate per worker (so every worker is busy), N_CANCEL cancelled while
 * they block, then N_OK ok and N_ERR failed tasks */
static void run_workload(weft_executor *ex)
{
    bool serial = weft_executor_backend(ex) == WEFT_BACKEND_SERIAL;
    int nw = weft_executor_workers(ex);
    REQUIRE(nw >= 1 && nw <= 16);
    atomic_store(&gate_started, 0);
    /* serial runs the gate inline: open it first */
    atomic_store(&gate_open, serial);
    weft_future *g[16], *c[N_CANCEL], *fs[N_OK + N_ERR];
    for (int i = 0; i < nw; i++) REQUIRE_OK(weft_submit(ex, trace_gate, NULL, 0, &g[i]));
    if (!serial) {
        CHECK(check_wait_atomic(&gate_started, nw, 10));
        for (int i = 0; i < N_CANCEL; i++) {
            REQUIRE_OK(weft_submit(ex, trace_cancel, NULL, 0, &c[i]));
            CHECK_OK(weft_future_cancel(c[i]));
        }
    } else {
        for (int i = 0; i < N_CANCEL; i++) c[i] = NULL;
    }
    atomic_store(&gate_open, 1);
    for (int i = 0; i < N_OK; i++) REQUIRE_OK(weft_submit(ex, trace_ok, &i, sizeof i, &fs[i]));
    for (int i = 0; i < N_ERR; i++) REQUIRE_OK(weft_submit(ex, trace_err, NULL, 0, &fs[N_OK + i]));
    for (int i = 0; i < N_OK + N_ERR; i++) {
        weft_future_wait(fs[i], WEFT_FOREVER);
        weft_future_release(fs[i]);
    }
    for (int i = 0; i < nw; i++) {
        weft_future_wait(g[i], WEFT_FOREVER);
        weft_future_release(g[i]);
    }
    for (int i = 0; i < N_CANCEL; i++) weft_future_release(c[i]);
}

static bool args_has(const struct trace_event *e, const char *word)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\"", word);
    return strstr(e->args, pat) != NULL;
}

/* Checks the file at path holds the workload's events. */
/* expect_cancel: the number of "cancelled" events to expect, or -1 for any */
static void check_trace_file(const char *path, int workers, int expect_cancel)
{
    struct stat st;
    CHECK_MSG(stat(path, &st) == 0, "trace file %s does not exist", path);
    char *text = read_file(path);
    REQUIRE(text);
    CHECK_MSG(json_valid(text), "trace file %s is not valid JSON", path);
    char *c = compact(text);
    CHECK(strstr(c, "\"traceEvents\"") != NULL);
    static struct trace_event ev[1000];
    int n = parse_events(c, ev, 1000);
    CHECK_MSG(n > 0, "no events parsed (%d)", n);
    int n_ok = 0, n_err = 0, n_cancel = 0, n_gate = 0, bad = 0;
    long long tids[64];
    int ntids = 0;
    for (int i = 0; i < n; i++) {
        struct trace_event *e = &ev[i];
        bool ours = !strcmp(e->name, "trace_ok") || !strcmp(e->name, "trace_err") ||
                    !strcmp(e->name, "trace_cancel") || !strcmp(e->name, "trace_gate");
        if (!ours) continue;
        if (strcmp(e->ph, "X") != 0 || !e->has_ts || !e->has_dur || !e->has_tid) {
            if (bad++ < 3)
                CHECK_MSG(0, "event %s: ph \"%s\" ts %d dur %d tid %d", e->name, e->ph, e->has_ts,
                          e->has_dur, e->has_tid);
            continue;
        }
        if (!strcmp(e->name, "trace_ok") || !strcmp(e->name, "trace_gate")) {
            if (!strcmp(e->name, "trace_ok"))
                n_ok++;
            else
                n_gate++;
            CHECK_MSG(args_has(e, "ok"), "%s args %s", e->name, e->args);
            bool found = false;
            for (int k = 0; k < ntids; k++) found |= tids[k] == e->tid;
            if (!found && ntids < 64) tids[ntids++] = e->tid;
        } else if (!strcmp(e->name, "trace_err")) {
            n_err++;
            CHECK_MSG(args_has(e, "error"), "%s args %s", e->name, e->args);
        } else {
            n_cancel++;
            CHECK_MSG(args_has(e, "cancelled"), "%s args %s", e->name, e->args);
        }
    }
    CHECK_EQ_INT(n_ok, N_OK);
    CHECK_EQ_INT(n_err, N_ERR);
    CHECK_EQ_INT(n_gate, workers);
    if (expect_cancel >= 0) CHECK_EQ_INT(n_cancel, expect_cancel);
    /* events that ran are on worker rows: at most one row per worker */
    CHECK_MSG(ntids >= 1 && ntids <= workers, "%d distinct tids for %d workers", ntids, workers);
    free(c);
    free(text);
}

static void trace_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "weft_trace_%d_%s.json", (int)getpid(), tag);
    unlink(buf);
}

TEST(trace_path_option)
{
    unsetenv("WEFT_TRACE");
    char path[256];
    trace_path(path, sizeof path, "opt");
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    o.trace_path = path;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    run_workload(ex);
    CHECK_OK(weft_executor_destroy(ex));
    check_trace_file(path, 2, -1);
    unlink(path);
}

TEST(trace_path_option_serial)
{
    unsetenv("WEFT_TRACE");
    char path[256];
    trace_path(path, sizeof path, "serial");
    weft_options o = {0};
    o.backend = WEFT_BACKEND_SERIAL;
    o.trace_path = path;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    run_workload(ex);
    CHECK_OK(weft_executor_destroy(ex));
    check_trace_file(path, 1, 0);
    unlink(path);
}

/* a task cancelled before it ran still gets its event, outcome "cancelled" */
TEST(trace_records_cancelled)
{
    unsetenv("WEFT_TRACE");
    char path[256];
    trace_path(path, sizeof path, "cancel");
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 1;
    o.trace_path = path;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    run_workload(ex);
    CHECK_OK(weft_executor_destroy(ex));
    check_trace_file(path, 1, N_CANCEL);
    unlink(path);
}

TEST(trace_env)
{
    char path[256];
    trace_path(path, sizeof path, "env");
    setenv("WEFT_TRACE", path, 1);
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 1;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    unsetenv("WEFT_TRACE"); /* read once, at creation */
    run_workload(ex);
    CHECK_OK(weft_executor_destroy(ex));
    check_trace_file(path, 1, -1);
    unlink(path);
}

TEST(trace_option_wins_over_env)
{
    char penv[256], popt[256];
    trace_path(penv, sizeof penv, "env2");
    trace_path(popt, sizeof popt, "opt2");
    setenv("WEFT_TRACE", penv, 1);
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    o.trace_path = popt;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    unsetenv("WEFT_TRACE");
    run_workload(ex);
    CHECK_OK(weft_executor_destroy(ex));
    check_trace_file(popt, 2, -1);
    struct stat st;
    CHECK_MSG(stat(penv, &st) != 0, "WEFT_TRACE's file was written although trace_path was set");
    unlink(popt);
    unlink(penv);
}

TEST(trace_enable_and_write_live)
{
    unsetenv("WEFT_TRACE");
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_trace_enable(ex));
    run_workload(ex);
    char path[256];
    trace_path(path, sizeof path, "live");
    CHECK_OK(weft_trace_write(ex, path));
    check_trace_file(path, 2, -1);
    /* the executor still works after a write */
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, trace_ok, "x", 1, &f));
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
    unlink(path);
}

TEST(trace_bad_args)
{
    unsetenv("WEFT_TRACE");
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 1;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_trace_enable(ex));
    CHECK_ERR(weft_trace_write(NULL, "x.json"), WEFT_EINVAL);
    CHECK_ERR(weft_trace_write(ex, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_trace_enable(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_trace_write(ex, "/nonexistent-dir-weft/x/trace.json"), -ENOENT);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(trace_destroy_reports_write_error)
{
    unsetenv("WEFT_TRACE");
    int fds0 = check_count_fds();
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 1;
    o.trace_path = "/nonexistent-dir-weft/y/trace.json";
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc != 0) {
        /* refusing the path early is also acceptable, with a reason */
        CHECK(ex == NULL);
        CHECK(weft_last_error()[0] != '\0');
        return;
    }
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, trace_ok, "x", 1, &f));
    CHECK_OK(weft_future_wait(f, WEFT_FOREVER));
    weft_future_release(f);
    CHECK_ERR(weft_executor_destroy(ex), -ENOENT);
    CHECK_EQ_INT(check_count_fds(), fds0);
}

/* test_processes.c : the processes backend -- same API as threads, crash
 * isolation, timeouts, limits, recycling, leak checks.
 * weft-test-timeout: 600
 * weft-test-labels: fault */
#define CHECK_CUSTOM_MAIN
#include "check.h"
#include "check_exec.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "backends/processes/processes_internal.h"

/* weft_wait's count of finished futures, or its error code */
static long wait_count(weft_future *const *fs, size_t n, weft_wait_mode mode, double timeout,
                       bool *done)
{
    size_t nd = 0;
    int rc = weft_wait(fs, n, mode, timeout, done, &nd);
    return rc ? rc : (long)nd;
}

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

static int getpid_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    int32_t p = (int32_t)getpid();
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(getpid_task);

/* input: int32 code; 0 = ok, 1 = segv, 2 = abort, 3 = exit(3), 4 = fail
 * with an error, 5 = SIGKILL itself, 6 = hang */
static int fault_task(weft_ctx *ctx, const void *in, size_t len)
{
    int32_t code = 0;
    if (len >= sizeof code) memcpy(&code, in, sizeof code);
    switch (code) {
    case 1: {
        static volatile uintptr_t bad = 8; /* a real fault, hidden from the optimizer */
        *(volatile int *)bad = 1;
        break;
    }
    case 2:
        abort();
    case 3:
        exit(3);
    case 4:
        return weft_ctx_fail(ctx, WEFT_ETASK, "task failed on purpose");
    case 5:
        kill(getpid(), SIGKILL);
        pause();
        break;
    case 6:
        for (;;) pause();
    default:
        break;
    }
    int64_t idx = (int64_t)weft_ctx_index(ctx);
    return weft_ctx_set_output(ctx, &idx, sizeof idx);
}
WEFT_TASK_REGISTER(fault_task);

/* input: size_t bytes; output: the same bytes, each + 1 */
static int echo_plus(weft_ctx *ctx, const void *in, size_t len)
{
    unsigned char *o = weft_ctx_output(ctx, len);
    if (!o && len) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output buffer");
    const unsigned char *i = in;
    for (size_t k = 0; k < len; k++) o[k] = (unsigned char)(i[k] + 1);
    return 0;
}
WEFT_TASK_REGISTER(echo_plus);

static int sleep_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    double s = 0;
    if (len == sizeof s) memcpy(&s, in, sizeof s);
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
    return 0;
}
WEFT_TASK_REGISTER(sleep_task);

/* allocates (and touches) the number of MiB in its input */
static int hog_task(weft_ctx *ctx, const void *in, size_t len)
{
    int32_t mib = 0;
    if (len == sizeof mib) memcpy(&mib, in, sizeof mib);
    char *p = malloc((size_t)mib << 20);
    if (!p) return weft_ctx_fail(ctx, WEFT_ENOMEM, "malloc(%d MiB) failed", mib);
    memset(p, 1, (size_t)mib << 20);
    free(p);
    return 0;
}
WEFT_TASK_REGISTER(hog_task);

/* allocates without checking and writes: dies after a failed allocation */
static int hog_unchecked(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    int32_t mib = 0;
    if (len == sizeof mib) memcpy(&mib, in, sizeof mib);
    volatile char *p = malloc((size_t)mib << 20);
    p[0] = 1; /* NULL when the limit refused it */
    free((void *)p);
    return 0;
}
WEFT_TASK_REGISTER(hog_unchecked);

static int nested_submit(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    weft_future *f = NULL;
    int rc = weft_submit(weft_ctx_executor(ctx), square, NULL, 0, &f);
    int32_t r = rc;
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(nested_submit);

static int init_state(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v = 0;
    if (len == sizeof v) memcpy(&v, in, sizeof v);
    v += 1000;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(init_state);

static int read_state(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    size_t n = 0;
    const void *s = weft_ctx_worker_state(ctx, &n);
    if (n != sizeof(int64_t)) return weft_ctx_fail(ctx, WEFT_EINVAL, "no state (%zu)", n);
    return weft_ctx_set_output(ctx, s, n);
}
WEFT_TASK_REGISTER(read_state);

/* input: a weft_ipc_token of a region of int64 slots; writes index^2 into
 * slot `index` in place and adds 1 to slot 0 under the region's lock */
static int shm_writer(weft_ctx *ctx, const void *in, size_t len)
{
    weft_ipc_token tok;
    if (len != sizeof tok) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad token length");
    memcpy(&tok, in, sizeof tok);
    static weft_shm *shm; /* attached once per worker process */
    static weft_ipc_token seen;
    if (!shm || memcmp(&seen, &tok, sizeof tok) != 0) {
        if (shm) weft_shm_destroy(shm);
        shm = NULL;
        int rc = weft_shm_attach(&tok, &shm);
        if (rc) return weft_ctx_fail(ctx, rc, "attach: %s", weft_last_error());
        seen = tok;
    }
    int64_t *a = weft_shm_ptr(shm);
    uint64_t i = weft_ctx_index(ctx);
    a[1 + i] = (int64_t)(i * i);
    weft_lock *l = weft_shm_lock(shm);
    int rc = weft_lock_acquire(l, 10);
    if (rc) return weft_ctx_fail(ctx, rc, "lock");
    a[0]++;
    weft_lock_release(l);
    return 0;
}
WEFT_TASK_REGISTER(shm_writer);

/* graph tasks: leaf(k) = k; add(a, b) = a + b; crash_if(x) dies when x == 13 */
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

static int g_crash_if_13(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v = arg64(in, len, 0);
    if (v == 13) abort();
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(g_crash_if_13);

/* records in a shared region when it started (as its deadline counts) and
 * when it ended, around a sleep: input timed_in */
typedef struct timed_in {
    weft_ipc_token tok;
    double secs;
    uint32_t slot;
} timed_in;
typedef struct timed_slot {
    uint64_t t0, t_end;
} timed_slot;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int timed_sleep(weft_ctx *ctx, const void *in, size_t len)
{
    timed_in a;
    if (len != sizeof a) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad input length");
    memcpy(&a, in, sizeof a);
    static weft_shm *shm; /* attached once per worker process */
    static weft_ipc_token seen;
    if (!shm || memcmp(&seen, &a.tok, sizeof a.tok) != 0) {
        if (shm) weft_shm_destroy(shm);
        shm = NULL;
        int rc = weft_shm_attach(&a.tok, &shm);
        if (rc) return weft_ctx_fail(ctx, rc, "attach: %s", weft_last_error());
        seen = a.tok;
    }
    timed_slot *sl = (timed_slot *)weft_shm_ptr(shm) + a.slot;
    __atomic_store_n(&sl->t0, weft__worker_item_t0(), __ATOMIC_SEQ_CST);
    struct timespec ts = {(time_t)a.secs, (long)((a.secs - (double)(time_t)a.secs) * 1e9)};
    nanosleep(&ts, NULL);
    __atomic_store_n(&sl->t_end, mono_ns(), __ATOMIC_SEQ_CST);
    return 0;
}
WEFT_TASK_REGISTER(timed_sleep);

/* input: late_in; sleeps, then 0 = returns, 2 = abort(), 7 = leaves an
 * alarm (SIGALRM in 0.1 s) behind and returns */
typedef struct late_in {
    double secs;
    int32_t code;
} late_in;

static int late_fault(weft_ctx *ctx, const void *in, size_t len)
{
    late_in a = {0, 0};
    if (len == sizeof a) memcpy(&a, in, sizeof a);
    struct timespec ts = {(time_t)a.secs, (long)((a.secs - (double)(time_t)a.secs) * 1e9)};
    nanosleep(&ts, NULL);
    if (a.code == 2) abort();
    if (a.code == 7) ualarm(100000, 0);
    int32_t p = (int32_t)getpid();
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(late_fault);

static int unregistered(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    (void)in;
    (void)len;
    return 0;
}

/* ---- helpers ---- */

static weft_executor *make(int workers, const weft_options *extra)
{
    return check_executor(WEFT_BACKEND_PROCESSES, workers, extra);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

/* Live (not zombie) children of `parent`: up to `max` pids in out[] (out
 * may be NULL); returns how many there are. */
static int children_of(pid_t parent, pid_t *out, int max)
{
    if (parent <= 0) return 0;
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        char *rp = strrchr(buf, ')');
        char st;
        int ppid;
        if (!rp || sscanf(rp + 2, "%c %d", &st, &ppid) != 2 || ppid != parent || st == 'Z')
            continue;
        if (out && n < max) out[n] = atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* children of the fork server still alive (workers) */
static int server_children(void)
{
    return children_of(weft__fs_pid(), NULL, 0);
}

static int dev_shm_entries(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- tests ---- */

TEST(submit_and_result)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    CHECK_EQ_INT(weft_executor_backend(ex), WEFT_BACKEND_PROCESSES);
    enum {
        N = 200
    };
    weft_future *fs[N];
    for (int64_t i = 0; i < N; i++) CHECK_OK(weft_submit(ex, square, &i, sizeof i, &fs[i]));
    for (int64_t i = 0; i < N; i++) {
        const void *d;
        size_t n;
        CHECK_OK(weft_future_result(fs[i], 30, &d, &n));
        CHECK_EQ_U64(n, sizeof(int64_t));
        int64_t v;
        memcpy(&v, d, sizeof v);
        CHECK_EQ_U64((uint64_t)v, (uint64_t)(i * i));
        weft_future_release(fs[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(tasks_run_in_other_processes)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    pid_t seen[2] = {0, 0};
    int distinct = 0;
    for (int i = 0; i < 64; i++) {
        weft_future *f;
        CHECK_OK(weft_submit(ex, getpid_task, NULL, 0, &f));
        const void *d;
        size_t n;
        CHECK_OK(weft_future_result(f, 30, &d, &n));
        int32_t p;
        memcpy(&p, d, sizeof p);
        CHECK(p != getpid());
        if (p != seen[0] && p != seen[1] && distinct < 2) seen[distinct++] = p;
        weft_future_release(f);
    }
    CHECK(distinct >= 1);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(map_in_order_with_one_crash_among_10k)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    enum {
        N = 10000
    };
    int32_t *in = calloc(N, sizeof *in);
    REQUIRE(in);
    in[4321] = 1; /* segfaults */
    weft_results *r = NULL;
    int rc = weft_map(ex, fault_task, in, sizeof *in, N, NULL, &r);
    CHECK_EQ_INT(rc, WEFT_ECRASHED);
    REQUIRE(r);
    CHECK_EQ_U64(weft_results_count(r), N);
    CHECK_EQ_U64(weft_results_failed(r), 1);
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t n;
        int e = weft_results_get(r, i, &d, &n);
        if (i == 4321) {
            CHECK_EQ_INT(e, WEFT_ECRASHED);
            const char *m = weft_results_error(r, i);
            CHECK_MSG(m && strstr(m, "signal 11"), "message: %s", m ? m : "(null)");
        } else {
            CHECK_EQ_INT(e, 0);
            int64_t v = -1;
            if (e == 0) memcpy(&v, d, sizeof v);
            CHECK_EQ_U64((uint64_t)v, i);
        }
    }
    weft_results_destroy(r);
    free(in);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(each_fault_fails_only_its_task)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    struct {
        int32_t code;
        int err;
        const char *word;
    } cases[] = {{1, WEFT_ECRASHED, "signal 11"},
                 {2, WEFT_ECRASHED, "signal 6"},
                 {3, WEFT_ECRASHED, "status 3"},
                 {4, WEFT_ETASK, "on purpose"},
                 {5, WEFT_ECRASHED, "signal 9"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        enum {
            N = 50
        };
        weft_future *fs[N];
        for (int i = 0; i < N; i++) {
            int32_t code = i == 17 ? cases[c].code : 0;
            CHECK_OK(weft_submit(ex, fault_task, &code, sizeof code, &fs[i]));
        }
        for (int i = 0; i < N; i++) {
            int rc = weft_future_wait(fs[i], 30);
            CHECK_EQ_INT(rc, 0);
            rc = weft_future_result(fs[i], 0, NULL, NULL);
            if (i == 17) {
                CHECK_EQ_INT(rc, cases[c].err);
                const char *m = weft_future_error(fs[i]);
                CHECK_MSG(m && strstr(m, cases[c].word), "case %d: %s", cases[c].code,
                          m ? m : "(null)");
            } else {
                CHECK_EQ_INT(rc, 0);
            }
            weft_future_release(fs[i]);
        }
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(worker_killed_from_outside)
{
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    int32_t hang = 6;
    weft_future *f;
    CHECK_OK(weft_submit(ex, fault_task, &hang, sizeof hang, &f));
    /* wait until it runs, then kill its worker */
    pid_t pid = 0;
    for (int i = 0; i < 2000 && !pid; i++) {
        usleep(1000);
        if (weft_future_state_get(f) == WEFT_FUTURE_RUNNING) children_of(weft__fs_pid(), &pid, 1);
    }
    REQUIRE(pid > 0);
    usleep(20000);
    kill(pid, SIGKILL);
    CHECK_OK(weft_future_wait(f, 30));
    CHECK_EQ_INT(weft_future_result(f, 0, NULL, NULL), WEFT_ECRASHED);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, "signal 9"), "%s", m ? m : "(null)");
    weft_future_release(f);
    /* the pool still serves */
    int64_t x = 7;
    CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
    CHECK_OK(weft_future_result(f, 30, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(task_timeout_kills_and_replaces)
{
    weft_options o = {0};
    o.processes.task_timeout = 0.3;
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    int32_t hang = 6, ok = 0;
    weft_future *h, *g[20];
    double t0 = check_now();
    CHECK_OK(weft_submit(ex, fault_task, &hang, sizeof hang, &h));
    for (int i = 0; i < 20; i++) CHECK_OK(weft_submit(ex, fault_task, &ok, sizeof ok, &g[i]));
    CHECK_OK(weft_future_wait(h, 30));
    CHECK_EQ_INT(weft_future_result(h, 0, NULL, NULL), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.29);
    const char *m = weft_future_error(h);
    CHECK_MSG(m && strstr(m, "timeout"), "%s", m ? m : "(null)");
    for (int i = 0; i < 20; i++) {
        CHECK_OK(weft_future_result(g[i], 30, NULL, NULL));
        weft_future_release(g[i]);
    }
    weft_future_release(h);
    /* per-submit override: a longer limit lets a 0.5 s task finish */
    double half = 0.5;
    weft_submit_options so = {0};
    so.timeout = 5;
    CHECK_OK(weft_submit_ex(ex, sleep_task, &half, sizeof half, &so, &h));
    CHECK_OK(weft_future_result(h, 30, NULL, NULL));
    weft_future_release(h);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Issue 11, 1: the proxy thread descheduled past the deadline while the
 * batch finishes (a test hook stalls it right before the deadline check).
 * Before, it killed the worker that had answered, reported item n of an
 * n-item batch and completed a future slot past the batch (a crash), or
 * wrote past the map chunk. */
TEST(deadline_passing_as_the_batch_finishes)
{
    weft_options o = {0};
    o.processes.task_timeout = 0.2; /* far longer than the tasks, even on a loaded machine */
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    weft__procs_test_stall(0.35);
    enum {
        N = 4
    };
    weft_future *f[N];
    late_in a = {0.01, 0};
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &f[i]));
    for (int i = 0; i < N; i++) {
        int rc = weft_future_result(f[i], 60, NULL, NULL);
        CHECK_MSG(rc == 0, "task %d: %s: %s", i, weft_strerror(rc), weft_future_error(f[i]));
        weft_future_release(f[i]);
    }
    late_in items[8];
    for (int i = 0; i < 8; i++) items[i] = a;
    weft_map_options mo = {0};
    mo.chunk_size = 4;
    weft_results *r = NULL;
    CHECK_OK(weft_map(ex, late_fault, items, sizeof items[0], 8, &mo, &r));
    CHECK_EQ_U64(weft_results_count(r), 8);
    CHECK_EQ_U64(weft_results_failed(r), 0);
    weft_results_destroy(r);
    weft__procs_test_stall(0);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Issue 11, 2: a task that crashed right at its deadline is a crash, not a
 * timeout (the proxy, stalled past the deadline, used to kill the dead
 * worker and report WEFT_ETIMEDOUT). */
TEST(abort_at_the_deadline_is_a_crash)
{
    weft_options o = {0};
    o.processes.task_timeout = 0.2;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    weft__procs_test_stall(0.35);
    late_in a = {0.01, 2};
    weft_future *f;
    CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &f));
    CHECK_EQ_INT(weft_future_result(f, 60, NULL, NULL), WEFT_ECRASHED);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, "signal 6"), "%s", m ? m : "(null)");
    weft_future_release(f);
    weft__procs_test_stall(0);
    /* the pool goes on */
    a.code = 0;
    weft_submit_options so = {0};
    so.timeout = 60;
    CHECK_OK(weft_submit_ex(ex, late_fault, &a, sizeof a, &so, &f));
    CHECK_OK(weft_future_result(f, 60, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

static void note_done(weft_future *f, void *arg)
{
    (void)f;
    __atomic_store_n((uint64_t *)arg, mono_ns(), __ATOMIC_SEQ_CST);
}

/* Issue 11, 1 and 2: tasks that run about as long as task_timeout (each
 * sleeps 0.92..1.08 of it), submitted and mapped. Every task gets its
 * result or WEFT_ETIMEDOUT; a task reported timed out had run to its
 * deadline (counted from when it started) and had not returned before it. */
TEST(tasks_ending_at_their_timeout)
{
    enum {
        N = 30
    };
    const double T = 0.04;
    const uint64_t T_ns = 40000000u;
    const uint64_t slack_ns = 2000000u; /* between a task's return and its worker noting it */
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create(2 * N * sizeof(timed_slot), &shm) == 0);
    timed_slot *slots = weft_shm_ptr(shm);
    memset(slots, 0, 2 * N * sizeof(timed_slot));
    weft_ipc_token tok;
    CHECK_OK(weft_shm_token(shm, &tok));
    weft_options o = {0};
    o.processes.task_timeout = T;
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    timed_in in[2 * N];
    for (uint32_t i = 0; i < 2 * N; i++) {
        in[i].tok = tok;
        in[i].secs = T * (0.92 + 0.16 * (double)(i % 9) / 8.0);
        in[i].slot = i;
    }
    weft_future *f[N];
    uint64_t done_at[N] = {0};
    for (int i = 0; i < N; i++) {
        weft_submit_options so = {0};
        so.flags = WEFT_SUBMIT_BORROW;
        CHECK_OK(weft_submit_ex(ex, timed_sleep, &in[i], sizeof in[i], &so, &f[i]));
        CHECK_OK(weft_future_on_done(f[i], note_done, &done_at[i]));
    }
    weft_results *r = NULL;
    weft_map_options mo = {0};
    mo.chunk_size = 3;
    int mrc = weft_map(ex, timed_sleep, &in[N], sizeof in[0], N, &mo, &r);
    CHECK_MSG(mrc == 0 || mrc == WEFT_ETIMEDOUT, "map: %s", weft_strerror(mrc));
    int timed_out = 0;
    for (int i = 0; i < 2 * N; i++) {
        int rc;
        const char *m;
        if (i < N) {
            rc = weft_future_result(f[i], 60, NULL, NULL);
            m = weft_future_error(f[i]);
        } else {
            rc = weft_results_get(r, (size_t)(i - N), NULL, NULL);
            m = weft_results_error(r, (size_t)(i - N));
        }
        CHECK_MSG(rc == 0 || rc == WEFT_ETIMEDOUT, "task %d: %s: %s", i, weft_strerror(rc),
                  m ? m : "");
        if (rc != WEFT_ETIMEDOUT) continue;
        timed_out++;
        uint64_t t0 = __atomic_load_n(&slots[i].t0, __ATOMIC_SEQ_CST);
        uint64_t te = __atomic_load_n(&slots[i].t_end, __ATOMIC_SEQ_CST);
        /* killed before it noted its start (attaching the region in a
         * fresh worker can take that long on a loaded machine) */
        if (!t0) continue;
        CHECK_MSG(te == 0 || te + slack_ns >= t0 + T_ns,
                  "task %d returned %.2f ms after its start, yet was reported timed out", i,
                  (double)(te - t0) * 1e-6);
        if (i < N) {
            uint64_t d = __atomic_load_n(&done_at[i], __ATOMIC_SEQ_CST);
            CHECK_MSG(d >= t0 + T_ns, "task %d reported timed out %.2f ms after its start", i,
                      ((double)d - (double)t0) * 1e-6);
        }
    }
    printf("  %d of %d tasks timed out\n", timed_out, 2 * N);
    for (int i = 0; i < N; i++) weft_future_release(f[i]);
    weft_results_destroy(r);
    CHECK_OK(weft_executor_destroy(ex));
    weft_shm_destroy(shm);
}

/* Issue 11, 2: the deadline counts from when the worker starts the task,
 * not from when it was sent: a task sent to a worker that cannot run yet
 * (stopped here) is not killed as "ran longer than its timeout". */
TEST(timeout_counts_from_the_start_of_the_task)
{
    weft_options o = {0};
    o.processes.task_timeout = 0.3;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    weft_future *f;
    int32_t pid = 0;
    CHECK_OK(weft_submit(ex, getpid_task, NULL, 0, &f));
    const void *d;
    CHECK_OK(weft_future_result(f, 60, &d, NULL));
    memcpy(&pid, d, sizeof pid);
    weft_future_release(f);
    REQUIRE(pid > 0);
    REQUIRE(kill(pid, SIGSTOP) == 0);
    late_in a = {0.01, 0};
    CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &f));
    check_sleep(0.7); /* over twice the timeout while the task waits to start */
    kill(pid, SIGCONT);
    int rc = weft_future_result(f, 60, &d, NULL);
    CHECK_MSG(rc == 0, "%s: %s", weft_strerror(rc), weft_future_error(f));
    if (rc == 0) {
        int32_t ran_in;
        memcpy(&ran_in, d, sizeof ran_in);
        CHECK_EQ_INT(ran_in, pid); /* on the worker that was stopped */
    }
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Issue 11, 3: WEFT_FOREVER or any huge value as task_timeout or as a
 * submit timeout means no limit (the conversion to ns overflowed and
 * killed every task at once). */
TEST(forever_timeouts_run_normally)
{
    const double forever[] = {WEFT_FOREVER, 1e30, 2e10};
    late_in a = {0.03, 0};
    for (int k = 0; k < 3; k++) {
        weft_options o = {0};
        o.processes.task_timeout = forever[k];
        weft_executor *ex = make(2, &o);
        REQUIRE(ex);
        weft_future *f;
        CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &f));
        int rc = weft_future_result(f, 60, NULL, NULL);
        CHECK_MSG(rc == 0, "task_timeout %g: %s: %s", forever[k], weft_strerror(rc),
                  weft_future_error(f));
        weft_future_release(f);
        late_in items[8];
        for (int i = 0; i < 8; i++) items[i] = a;
        weft_results *r = NULL;
        CHECK_OK(weft_map(ex, late_fault, items, sizeof items[0], 8, NULL, &r));
        CHECK_EQ_U64(weft_results_failed(r), 0);
        weft_results_destroy(r);
        CHECK_OK(weft_executor_destroy(ex));
    }
    weft_options o = {0};
    o.processes.task_timeout = 0.01; /* the submit's own timeout overrides it */
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    for (int k = 0; k < 3; k++) {
        weft_submit_options so = {0};
        so.timeout = forever[k];
        weft_future *f;
        CHECK_OK(weft_submit_ex(ex, late_fault, &a, sizeof a, &so, &f));
        int rc = weft_future_result(f, 60, NULL, NULL);
        CHECK_MSG(rc == 0, "submit timeout %g: %s: %s", forever[k], weft_strerror(rc),
                  weft_future_error(f));
        weft_future_release(f);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

/* Issue 11, 6: a worker that dies after its task returned (here of an
 * alarm the task left behind) is replaced before the next task is sent; the
 * next task used to fail with "signal 14". */
TEST(worker_dead_between_tasks_is_replaced)
{
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    for (int round = 0; round < 2; round++) {
        late_in a = {0, 7};
        weft_future *f;
        CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &f));
        const void *d;
        REQUIRE_OK(weft_future_result(f, 60, &d, NULL));
        int32_t pid;
        memcpy(&pid, d, sizeof pid);
        weft_future_release(f);
        double t0 = check_now();
        while (kill(pid, 0) == 0 && check_now() - t0 < 30) check_sleep(0.01);
        if (round == 1) check_sleep(0.05); /* also after the server noted the death */
        a.code = 0;
        weft_future *g[5];
        for (int i = 0; i < 5; i++) CHECK_OK(weft_submit(ex, late_fault, &a, sizeof a, &g[i]));
        for (int i = 0; i < 5; i++) {
            int rc = weft_future_result(g[i], 60, &d, NULL);
            CHECK_MSG(rc == 0, "round %d task %d: %s: %s", round, i, weft_strerror(rc),
                      weft_future_error(g[i]));
            if (rc == 0) {
                int32_t p2;
                memcpy(&p2, d, sizeof p2);
                CHECK(p2 != pid);
            }
            weft_future_release(g[i]);
        }
    }
    CHECK_OK(weft_executor_destroy(ex));
}

/* Issue 11, 4: a borrowed input whose length is more than any buffer
 * holds wrapped the size sum of the request on the arena path (a crash):
 * now that item fails with WEFT_EOVERFLOW, and only that item. */
TEST(borrowed_input_with_an_impossible_length)
{
    static const size_t lens[] = {SIZE_MAX - 8, SIZE_MAX / 2, (size_t)1 << 40};
    char small[16] = {0};
    for (int vm = 0; vm < 2; vm++) {
        weft__procs_set_vm(vm ? 0 : -1);
        weft_executor *ex = make(1, NULL);
        REQUIRE(ex);
        for (int k = 0; k < 3; k++) {
            weft_submit_options so = {0};
            so.flags = WEFT_SUBMIT_BORROW;
            weft_future *f;
            CHECK_OK(weft_submit_ex(ex, echo_plus, small, lens[k], &so, &f));
            int rc = weft_future_result(f, 60, NULL, NULL);
            const char *m = weft_future_error(f);
            if (!vm) {
                CHECK_MSG(rc == WEFT_EOVERFLOW && m && strstr(m, "bytes"), "len %zu: %s: %s",
                          lens[k], weft_strerror(rc), m ? m : "");
            } else {
                CHECK_MSG(rc != 0 && m, "len %zu: %s", lens[k], weft_strerror(rc));
            }
            weft_future_release(f);
        }
        /* in a map, among good items */
        int64_t x = 3;
        weft_buf bufs[5];
        for (int i = 0; i < 5; i++) bufs[i] = (weft_buf){&x, sizeof x};
        bufs[2].len = SIZE_MAX - 8;
        weft_results *r = NULL;
        weft_map_bufs(ex, square, bufs, 5, NULL, &r);
        REQUIRE(r);
        for (int i = 0; i < 5; i++) {
            const void *d;
            int rc = weft_results_get(r, (size_t)i, &d, NULL);
            if (i == 2) {
                CHECK_MSG(rc != 0, "item 2: %d", rc);
                if (!vm) CHECK_EQ_INT(rc, WEFT_EOVERFLOW);
            } else {
                CHECK_MSG(rc == 0, "item %d: %s: %s", i, weft_strerror(rc),
                          weft_results_error(r, (size_t)i));
            }
        }
        weft_results_destroy(r);
        CHECK_OK(weft_executor_destroy(ex));
    }
    weft__procs_set_vm(0);
}

TEST(crash_retries_on_fresh_worker)
{
    weft_options o = {0};
    o.processes.crash_retries = 2;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    int32_t segv = 1;
    weft_future *f;
    CHECK_OK(weft_submit(ex, fault_task, &segv, sizeof segv, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_ECRASHED); /* 3 tries, all crash */
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(max_tasks_per_worker_recycles)
{
    weft_options o = {0};
    o.processes.max_tasks_per_worker = 5;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    int distinct = 0;
    int32_t last = 0;
    for (int i = 0; i < 20; i++) {
        weft_future *f;
        CHECK_OK(weft_submit(ex, getpid_task, NULL, 0, &f));
        const void *d;
        CHECK_OK(weft_future_result(f, 30, &d, NULL));
        int32_t p;
        memcpy(&p, d, sizeof p);
        if (p != last) distinct++;
        last = p;
        weft_future_release(f);
    }
    CHECK_EQ_INT(distinct, 4);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(initializer_state_in_each_worker)
{
    weft_options o = {0};
    int64_t base = 5;
    o.initializer = init_state;
    o.init_input = &base;
    o.init_len = sizeof base;
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    for (int i = 0; i < 10; i++) {
        weft_future *f;
        CHECK_OK(weft_submit(ex, read_state, NULL, 0, &f));
        const void *d;
        size_t n;
        CHECK_OK(weft_future_result(f, 30, &d, &n));
        int64_t v = 0;
        if (n == sizeof v) memcpy(&v, d, sizeof v);
        CHECK_EQ_U64((uint64_t)v, 1005);
        weft_future_release(f);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

/* Largest memfd arena this process has open now (bytes). */
static long largest_arena(void)
{
    DIR *d = opendir("/proc/self/fd");
    long best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = 0;
        if (!strstr(link, "weft-worker")) continue;
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > best) best = (long)st.st_size;
    }
    closedir(d);
    return best;
}

/* vm: process_vm_* allowed (1) or not (-1); copy: WEFT_PROCESSES_INPUT_COPY
 * (0: large inputs without the input segment) */
static void payload_round(int vm, const char *copy)
{
    weft__procs_set_vm(vm);
    setenv("WEFT_PROCESSES_INPUT_COPY", copy, 1);
    weft_executor *ex = make(2, NULL);
    unsetenv("WEFT_PROCESSES_INPUT_COPY");
    REQUIRE(ex);
    size_t sizes[] = {0, 1, 63, 64, 65, 4096, 1 << 20, 3u << 20, 64u << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        if ((CHECK_ASAN || CHECK_TSAN) && n > (16u << 20)) n = 16u << 20; /* slow there */
        unsigned char *in = malloc(n + 1);
        REQUIRE(in);
        for (size_t k = 0; k < n; k++) in[k] = (unsigned char)(k * 31 + 7);
        weft_future *f;
        CHECK_OK(weft_submit(ex, echo_plus, in, n, &f));
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(f, 60, &d, &len));
        CHECK_EQ_U64(len, n);
        const unsigned char *o = d;
        size_t bad = 0;
        for (size_t k = 0; k < n && k < len; k++)
            if (o[k] != (unsigned char)(in[k] + 1)) bad++;
        CHECK_EQ_U64(bad, 0);
        weft_future_release(f);
        free(in);
        /* with process_vm_*, large payloads need no shared buffer of their size */
        if (vm > 0) CHECK_MSG(largest_arena() <= (16l << 20), "arena %ld", largest_arena());
    }
    CHECK_OK(weft_executor_destroy(ex));
    weft__procs_set_vm(0);
}

TEST(payloads_0_to_64mib)
{
    payload_round(1, "2");  /* large inputs in the input segment, outputs in segments */
    payload_round(1, "1");  /* the same, copied by one thread */
    payload_round(1, "0");  /* large payloads written into / read from the worker's memory */
    payload_round(-1, "2"); /* inputs in the segment, outputs through the shared arena */
    payload_round(-1, "0"); /* everything through the shared arena */
}

/* ---- the input segment (large inputs copied into the worker's memfd) ---- */

/* Mappings of input segments in this process (one per live worker that
 * took a large input). */
static int input_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "weft-input")) n++;
    fclose(f);
    return n;
}

/* Submits echo_plus on n bytes of pattern `salt` (borrowed) and checks
 * every byte of the result (60 s at most: never a hang). */
static void echo_checked(weft_executor *ex, size_t n, unsigned salt)
{
    unsigned char *in = malloc(n + 1);
    REQUIRE(in);
    for (size_t k = 0; k < n; k++) in[k] = (unsigned char)(k * 31 + salt);
    weft_future *f;
    CHECK_OK(weft_submit_ex(ex, echo_plus, in, n,
                            &(weft_submit_options){.flags = WEFT_SUBMIT_BORROW}, &f));
    const void *d;
    size_t len = 0;
    int rc = weft_future_result(f, 60, &d, &len);
    CHECK_MSG(rc == 0, "%zu bytes: %s", n, weft_future_error(f));
    size_t bad = 0;
    for (size_t k = 0; rc == 0 && k < n && k < len; k++)
        if (((const unsigned char *)d)[k] != (unsigned char)(in[k] + 1)) bad++;
    CHECK_MSG(rc != 0 || (len == n && bad == 0), "%zu bytes: %zu back, %zu wrong", n, len, bad);
    weft_future_release(f);
    free(in);
}

/* The pid of the worker of a 1-worker executor. */
static pid_t worker_pid(weft_executor *ex)
{
    weft_future *f;
    if (weft_submit(ex, getpid_task, NULL, 0, &f)) return 0;
    const void *d;
    size_t len = 0;
    int32_t pid = 0;
    if (weft_future_result(f, 30, &d, &len) == 0 && len == sizeof pid) memcpy(&pid, d, sizeof pid);
    weft_future_release(f);
    return (pid_t)pid;
}

static bool slow_sanitizer(void)
{
    return CHECK_ASAN || CHECK_TSAN;
}

/* Inputs of mixed sizes back to back on one worker: the segment is made
 * at the first large one, grown when one does not fit, reused otherwise;
 * small ones still go through the arena; a map chunk of several large
 * items shares the segment; a chunk larger than the segment may be (256
 * MiB) sends the rest with process_vm_*. Every byte checked; nothing is
 * left mapped or open after the executor. */
TEST(input_segment_mixed_sizes_back_to_back)
{
    int fds0 = count_fds(), maps0 = input_mappings();
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    const size_t mib = (size_t)1 << 20;
    size_t sizes[] = {3 * mib, 4 * mib,         64 * mib,    5 * mib, 100 * mib, 4 * mib - 1,
                      0,       64 * mib + 4097, 4 * mib + 1, 100,     9 * mib,   48 * mib};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        if (slow_sanitizer() && n > 16 * mib) n = 16 * mib + (n & 4095);
        echo_checked(ex, n, (unsigned)s);
        if (s == 1) CHECK_EQ_INT(input_mappings() - maps0, 1); /* made at the first 4 MiB */
    }
    CHECK_EQ_INT(input_mappings() - maps0, 1); /* one segment, grown: never two */
    size_t item = 5 * mib + 3, nitems = slow_sanitizer() ? 3 : 60;
    unsigned char *in = malloc(item * nitems);
    REQUIRE(in);
    for (size_t k = 0; k < item * nitems; k++) in[k] = (unsigned char)(k * 7 + 1);
    weft_results *r = NULL;
    weft_map_options mo = WEFT_MAP_OPTIONS_INIT;
    mo.chunk_size = nitems; /* one request: 300 MiB of inputs when not under a sanitizer */
    CHECK_OK(weft_map(ex, echo_plus, in, item, nitems, &mo, &r));
    for (size_t i = 0; r && i < nitems; i++) {
        const void *d;
        size_t len = 0;
        CHECK_OK(weft_results_get(r, i, &d, &len));
        size_t bad = 0;
        for (size_t k = 0; k < len && k < item; k++)
            if (((const unsigned char *)d)[k] != (unsigned char)(in[i * item + k] + 1)) bad++;
        CHECK_MSG(len == item && bad == 0, "map item %zu: %zu bytes, %zu wrong", i, len, bad);
    }
    weft_results_destroy(r);
    free(in);
    echo_checked(ex, 6 * mib, 99); /* the largest segment is kept */
    CHECK_EQ_INT(input_mappings() - maps0, 1);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(input_mappings(), maps0);
    CHECK_EQ_INT(count_fds(), fds0);
}

/* A worker killed while the program fills its input segment (the test hook
 * kills it half-way through the copy): the item had not started, so it
 * runs again on a fresh worker, with a fresh segment, and comes back
 * whole; killed that way four times in a row (more than the deaths before
 * an item is blamed), the item fails with the signal. The next item goes
 * to a fresh worker; nothing is left mapped or open. */
TEST(input_segment_worker_killed_while_filled)
{
    int fds0 = count_fds(), maps0 = input_mappings();
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    const size_t n = slow_sanitizer() ? (size_t)8 << 20 : (size_t)64 << 20;
    echo_checked(ex, n, 1); /* a segment exists: the kill hits a warm one */
    pid_t p0 = worker_pid(ex);
    weft__procs_test_kill_in_fill(1);
    echo_checked(ex, n, 2); /* run again on a fresh worker */
    pid_t p1 = worker_pid(ex);
    CHECK_MSG(p0 > 0 && p1 > 0 && p0 != p1, "worker %d then %d", (int)p0, (int)p1);
    weft__procs_test_kill_in_fill(4);
    unsigned char *in = calloc(1, n);
    REQUIRE(in);
    weft_future *f;
    CHECK_OK(weft_submit(ex, echo_plus, in, n, &f));
    CHECK_EQ_INT(weft_future_result(f, 60, NULL, NULL), WEFT_ECRASHED);
    const char *why = weft_future_error(f);
    CHECK_MSG(why && strstr(why, "signal 9"), "%s", why ? why : "(none)");
    weft_future_release(f);
    free(in);
    weft__procs_test_kill_in_fill(0);
    echo_checked(ex, n + 4096, 3); /* a fresh worker, a fresh segment */
    echo_checked(ex, 5u << 20, 4);
    CHECK_EQ_INT(input_mappings() - maps0, 1);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(input_mappings(), maps0);
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(server_children(), 0);
}

/* input: a weft_ipc_token of a weft_shm, then any bytes (large); reads
 * them all, sets the region's first byte (it runs), then hangs until
 * killed */
static int read_then_hang(weft_ctx *ctx, const void *in, size_t len)
{
    weft_ipc_token tok;
    if (len < sizeof tok) return weft_ctx_fail(ctx, WEFT_EINVAL, "no token");
    memcpy(&tok, in, sizeof tok);
    const unsigned char *b = in;
    unsigned sum = 0;
    for (size_t k = 0; k < len; k += 4096) sum += b[k];
    if (sum == 0xffffffffu) return 1; /* never: keeps the reads */
    weft_shm *shm = NULL;
    int rc = weft_shm_attach(&tok, &shm);
    if (rc) return weft_ctx_fail(ctx, rc, "attach: %s", weft_last_error());
    __atomic_store_n((unsigned char *)weft_shm_ptr(shm), 1, __ATOMIC_RELEASE);
    for (;;) pause();
}
WEFT_TASK_REGISTER(read_then_hang);

/* A worker killed (SIGKILL from outside) while its task runs on an input
 * in the segment: the item fails with the signal, the next large items go
 * to a fresh worker and its own segment, nothing leaks. */
TEST(input_segment_worker_killed_while_the_task_runs)
{
    int fds0 = count_fds(), maps0 = input_mappings();
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    const size_t n = (size_t)24 << 20;
    weft_shm *shm = NULL;
    REQUIRE_OK(weft_shm_create(64, &shm));
    volatile unsigned char *runs = weft_shm_ptr(shm);
    weft_ipc_token tok;
    REQUIRE_OK(weft_shm_token(shm, &tok));
    unsigned char *in = calloc(1, n);
    REQUIRE(in);
    memcpy(in, &tok, sizeof tok);
    for (int round = 0; round < 2; round++) {
        runs[0] = 0;
        weft_future *f;
        CHECK_OK(weft_submit(ex, read_then_hang, in, n, &f));
        /* wait until the task runs in its worker (its input in hand) */
        for (int i = 0; i < 60000 && !__atomic_load_n(runs, __ATOMIC_ACQUIRE); i++) usleep(1000);
        REQUIRE(runs[0] == 1);
        pid_t pid = 0;
        children_of(weft__fs_pid(), &pid, 1);
        REQUIRE(pid > 0);
        kill(pid, SIGKILL);
        CHECK_EQ_INT(weft_future_result(f, 60, NULL, NULL), WEFT_ECRASHED);
        const char *why = weft_future_error(f);
        CHECK_MSG(why && strstr(why, "signal 9"), "%s", why ? why : "(none)");
        weft_future_release(f);
        echo_checked(ex, n, (unsigned)round);
        echo_checked(ex, n * 2, (unsigned)round + 10); /* grown on the fresh worker */
    }
    free(in);
    weft_shm_destroy(shm);
    CHECK_EQ_INT(input_mappings() - maps0, 1);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(input_mappings(), maps0);
    CHECK_EQ_INT(count_fds(), fds0);
}

/* Two executors at once, each with two workers, large inputs of several
 * sizes in flight on all four workers (the lanes copy at the same time:
 * one of them gets the second copier, the others copy alone). */
TEST(input_segments_of_two_executors_at_once)
{
    int fds0 = count_fds(), maps0 = input_mappings();
    weft_executor *ex[2] = {make(2, NULL), make(2, NULL)};
    REQUIRE(ex[0] && ex[1]);
    const size_t mib = (size_t)1 << 20;
    size_t sizes[] = {4 * mib, 17 * mib + 5, 6 * mib, 33 * mib, 5 * mib + 4095, 12 * mib};
    enum {
        NS = sizeof sizes / sizeof sizes[0]
    };
    int rounds = slow_sanitizer() ? 1 : 3;
    for (int round = 0; round < rounds; round++) {
        unsigned char *in[NS];
        weft_future *f[NS];
        for (size_t s = 0; s < NS; s++) {
            in[s] = malloc(sizes[s]);
            REQUIRE(in[s]);
            for (size_t k = 0; k < sizes[s]; k++) in[s][k] = (unsigned char)(k * 11 + s + round);
            CHECK_OK(weft_submit(ex[s % 2], echo_plus, in[s], sizes[s], &f[s]));
        }
        for (size_t s = 0; s < NS; s++) {
            const void *d;
            size_t len = 0;
            int rc = weft_future_result(f[s], 60, &d, &len);
            CHECK_MSG(rc == 0, "input %zu: %s", s, weft_future_error(f[s]));
            size_t bad = 0;
            for (size_t k = 0; rc == 0 && k < len && k < sizes[s]; k++)
                if (((const unsigned char *)d)[k] != (unsigned char)(in[s][k] + 1)) bad++;
            CHECK_MSG(rc != 0 || (len == sizes[s] && bad == 0), "input %zu: %zu back, %zu wrong", s,
                      len, bad);
            weft_future_release(f[s]);
            free(in[s]);
        }
    }
    int kept = input_mappings() - maps0;
    CHECK_MSG(kept >= 2 && kept <= 4, "%d input segments mapped", kept);
    CHECK_OK(weft_executor_destroy(ex[0]));
    CHECK_OK(weft_executor_destroy(ex[1]));
    CHECK_EQ_INT(input_mappings(), maps0);
    CHECK_EQ_INT(count_fds(), fds0);
}

TEST(workers_write_a_shared_region_in_place)
{
    enum {
        N = 1000
    };
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create((N + 1) * sizeof(int64_t), &shm) == 0);
    weft_ipc_token tok;
    CHECK_OK(weft_shm_token(shm, &tok));
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    weft_buf bufs[N];
    for (int i = 0; i < N; i++) bufs[i] = (weft_buf){&tok, sizeof tok};
    weft_results *r = NULL;
    CHECK_OK(weft_map_bufs(ex, shm_writer, bufs, N, NULL, &r));
    CHECK_EQ_U64(weft_results_failed(r), 0);
    weft_results_destroy(r);
    const int64_t *a = weft_shm_ptr(shm);
    CHECK_EQ_U64((uint64_t)a[0], N); /* every increment, under the lock */
    size_t bad = 0;
    for (int64_t i = 0; i < N; i++)
        if (a[1 + i] != i * i) bad++;
    CHECK_EQ_U64(bad, 0);
    CHECK_OK(weft_executor_destroy(ex));
    weft_shm_destroy(shm);
}

TEST(graph_reduction_tree_and_a_crashing_node)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    weft_graph *g = NULL;
    REQUIRE(weft_graph_create(NULL, &g) == 0);
    enum {
        LEAVES = 512
    };
    weft_node level[LEAVES];
    for (int64_t k = 0; k < LEAVES; k++) {
        weft_arg a = weft_arg_bytes(&k, sizeof k);
        CHECK_OK(weft_graph_call(g, g_leaf, &a, 1, &level[k]));
    }
    for (int n = LEAVES; n > 1; n /= 2)
        for (int i = 0; i < n / 2; i++) {
            weft_arg a[2] = {weft_arg_node(level[2 * i]), weft_arg_node(level[2 * i + 1])};
            CHECK_OK(weft_graph_call(g, g_add, a, 2, &level[i]));
        }
    /* a branch whose node kills its worker */
    int64_t bad = 13;
    weft_arg ba = weft_arg_bytes(&bad, sizeof bad);
    weft_node crash, after;
    CHECK_OK(weft_graph_call(g, g_crash_if_13, &ba, 1, &crash));
    weft_arg aa[2] = {weft_arg_node(crash), weft_arg_node(level[0])};
    CHECK_OK(weft_graph_call(g, g_add, aa, 2, &after));
    weft_node targets[2] = {level[0], after};
    int rc = weft_graph_compute(g, ex, targets, 2, NULL);
    CHECK_EQ_INT(rc, WEFT_ECRASHED);
    const void *d;
    size_t n;
    CHECK_OK(weft_graph_result(g, level[0], &d, &n));
    int64_t sum = 0;
    if (n == sizeof sum) memcpy(&sum, d, sizeof sum);
    CHECK_EQ_U64((uint64_t)sum, (uint64_t)LEAVES * (LEAVES - 1) / 2);
    CHECK(weft_graph_result(g, after, &d, &n) != 0);
    weft_graph_destroy(g);
    CHECK_OK(weft_executor_destroy(ex));
}

static long mem_available_mib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024;
}

/* sums the bytes of its input */
static int byte_sum(weft_ctx *ctx, const void *in, size_t len)
{
    const unsigned char *p = in;
    uint64_t s = 0;
    for (size_t k = 0; k < len; k++) s += p[k];
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(byte_sum);

/* writes (input: uint64 n) n bytes, byte k = (k >> 20) * 7 + 1 */
static int make_bytes(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t n = 0;
    if (len == sizeof n) memcpy(&n, in, sizeof n);
    unsigned char *o = weft_ctx_output(ctx, n);
    if (!o && n)
        return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output of %llu bytes", (unsigned long long)n);
    for (uint64_t b = 0; b < n >> 20; b++)
        memset(o + (b << 20), (int)((b * 7 + 1) & 0xff), 1 << 20);
    return 0;
}
WEFT_TASK_REGISTER(make_bytes);

/* Several GiB: an input past 2^32 bytes in, an output past 2^31 bytes out. */
TEST(payload_of_several_gib)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("too slow under sanitizers");
    const size_t mib = (size_t)1 << 20;
    const size_t n_in = (size_t)4352 << 20;  /* 4.25 GiB */
    const size_t n_out = (size_t)2304 << 20; /* 2.25 GiB */
    if (mem_available_mib() < (long)(2 * (n_in >> 20)) + 4096) SKIP("not enough memory");
    /* 6.5 GiB of page faults and copies: ~40 s on an idle 2-core machine,
     * several times that under load (45 MB/s measured for the memset alone
     * beside a CPU hog); a hang is still caught, later */
    check_watchdog_extend(420);
    /* huge pages where the kernel gives them: a 4 KiB fault costs ~1 us on
     * this VM, and 4.25 GiB of them were a third of the case's time */
    unsigned char *in =
        mmap(NULL, n_in, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(in != MAP_FAILED);
    madvise(in, n_in, MADV_HUGEPAGE); /* a hint: failure is harmless */
    uint64_t want_sum = 0;
    for (size_t b = 0; b < n_in / mib; b++) {
        memset(in + b * mib, (int)(b * 7 & 0xff), mib);
        want_sum += (uint64_t)(b * 7 & 0xff) * mib;
    }
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    weft_future *f;
    CHECK_OK(weft_submit_ex(ex, byte_sum, in, n_in,
                            &(weft_submit_options){.flags = WEFT_SUBMIT_BORROW}, &f));
    const void *d;
    size_t len = 0;
    CHECK_OK(weft_future_result(f, 240, &d, &len));
    uint64_t got = 0;
    if (len == sizeof got) memcpy(&got, d, sizeof got);
    CHECK_EQ_U64(got, want_sum);
    weft_future_release(f);
    munmap(in, n_in);
    uint64_t n = n_out;
    CHECK_OK(weft_submit(ex, make_bytes, &n, sizeof n, &f));
    CHECK_OK(weft_future_result(f, 240, &d, &len));
    CHECK_EQ_U64(len, n_out);
    size_t bad = 0;
    for (size_t b = 0; len == n_out && b < n_out / mib; b++) {
        const unsigned char *blk = (const unsigned char *)d + b * mib;
        unsigned char v = (unsigned char)((b * 7 + 1) & 0xff);
        if (blk[0] != v || blk[mib / 2] != v || blk[mib - 1] != v) bad++;
    }
    CHECK_EQ_U64(bad, 0);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

static void count_done(weft_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* the futures API beyond submit/result, as on threads */
TEST(wait_as_completed_callbacks_cancel)
{
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    double slow = 0.3, quick = 0;
    weft_future *fs[4];
    CHECK_OK(weft_submit(ex, sleep_task, &slow, sizeof slow, &fs[0]));
    for (int i = 1; i < 4; i++) CHECK_OK(weft_submit(ex, sleep_task, &quick, sizeof quick, &fs[i]));
    /* one worker busy 0.3 s: the others are still queued, so cancel works */
    usleep(50000);
    CHECK_OK(weft_future_cancel(fs[3]));
    CHECK(weft_future_cancelled(fs[3]));
    atomic_int called = 0;
    for (int i = 0; i < 4; i++) CHECK_OK(weft_future_on_done(fs[i], count_done, &called));
    CHECK_EQ_INT(wait_count(fs, 4, WEFT_WAIT_ALL, 0.01, NULL), WEFT_ETIMEDOUT);
    CHECK(wait_count(fs, 4, WEFT_WAIT_ALL, 30, NULL) == 4);
    /* a wait returns once the futures are finished; their callbacks run on
     * the finishing thread and may still be running (docs/api.md, as
     * concurrent.futures): each runs exactly once, soon */
    for (int t = 0; t < 5000 && atomic_load(&called) < 4; t++) usleep(1000);
    CHECK_EQ_INT(atomic_load(&called), 4);
    weft_as_completed *it = NULL;
    CHECK_OK(weft_as_completed_create(fs, 4, &it));
    int seen = 0;
    weft_future *f;
    size_t idx;
    while (weft_as_completed_next(it, 30, &f, &idx) == 0) seen++;
    CHECK_EQ_INT(seen, 4);
    weft_as_completed_destroy(it);
    CHECK_OK(weft_future_result(fs[0], 0, NULL, NULL));
    for (int i = 0; i < 4; i++) weft_future_release(fs[i]);
    /* a timed wait on a running task times out, then the task finishes */
    CHECK_OK(weft_submit(ex, sleep_task, &slow, sizeof slow, &f));
    CHECK_EQ_INT(weft_future_wait(f, 0.05), WEFT_ETIMEDOUT);
    CHECK_OK(weft_future_result(f, 30, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(bad_input_each_a_clear_error)
{
    weft_options o = {0};
    o.processes.max_input = 1000;
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    weft_future *f = NULL;
    CHECK_ERR(weft_submit(ex, unregistered, NULL, 0, &f), WEFT_ENOTREG);
    CHECK(f == NULL);
    CHECK(strstr(weft_last_error(), "not registered"));
    weft_results *r = NULL;
    int64_t xs[3] = {1, 2, 3};
    CHECK_ERR(weft_map(ex, unregistered, xs, sizeof xs[0], 3, NULL, &r), WEFT_ENOTREG);
    /* a task returning an error */
    int32_t fail = 4;
    CHECK_OK(weft_submit(ex, fault_task, &fail, sizeof fail, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_ETASK);
    weft_future_release(f);
    /* an input over max_input */
    static unsigned char big[2000];
    CHECK_OK(weft_submit(ex, echo_plus, big, sizeof big, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_EOVERFLOW);
    CHECK(strstr(weft_future_error(f), "max_input"));
    weft_future_release(f);
    /* nested submit from a process task is refused with a clear error */
    CHECK_OK(weft_submit(ex, nested_submit, NULL, 0, &f));
    const void *d;
    CHECK_OK(weft_future_result(f, 30, &d, NULL));
    int32_t code;
    memcpy(&code, d, sizeof code);
    CHECK_EQ_INT(code, WEFT_ENOTSUP);
    weft_future_release(f);
    /* still serving */
    int64_t x = 9;
    CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
    CHECK_OK(weft_future_result(f, 30, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
    weft_options bad = {0};
    bad.backend = WEFT_BACKEND_PROCESSES;
    bad.processes.task_timeout = NAN;
    CHECK_ERR(weft_executor_create(&bad, &ex), WEFT_EINVAL);
    bad.processes.task_timeout = 0;
    bad.processes.crash_retries = -1;
    CHECK_ERR(weft_executor_create(&bad, &ex), WEFT_EINVAL);
}

TEST(memory_limit_is_its_own_error)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("sanitizers reserve address space the limit would count");
    weft_options o = {0};
    o.processes.memory_limit = 256u << 20;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    int32_t mib = 512;
    weft_future *f;
    CHECK_OK(weft_submit(ex, hog_task, &mib, sizeof mib, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_EMEMLIMIT);
    const char *m = weft_future_error(f);
    CHECK_MSG(m && strstr(m, "memory limit"), "%s", m ? m : "(null)");
    weft_future_release(f);
    CHECK_OK(weft_submit(ex, hog_unchecked, &mib, sizeof mib, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_EMEMLIMIT);
    weft_future_release(f);
    mib = 16; /* under the limit: fine */
    CHECK_OK(weft_submit(ex, hog_task, &mib, sizeof mib, &f));
    CHECK_OK(weft_future_result(f, 30, NULL, NULL));
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

static pthread_mutex_t report_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_watchdog(const char *report, void *arg)
{
    char *buf = arg;
    pthread_mutex_lock(&report_mu);
    if (!buf[0]) snprintf(buf, 1024, "%s", report);
    pthread_mutex_unlock(&report_mu);
}

TEST(watchdog_reports_the_stuck_task)
{
    static char report[1024];
    weft_options o = {0};
    o.processes.watchdog = 0.2;
    o.processes.watchdog_fn = on_watchdog;
    o.processes.watchdog_arg = report;
    o.processes.task_timeout = 1.0;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    int32_t hang = 6;
    weft_future *f;
    CHECK_OK(weft_submit(ex, fault_task, &hang, sizeof hang, &f));
    CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_ETIMEDOUT);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex)); /* the watchdog thread is joined */
    CHECK_MSG(strstr(report, "fault_task") && strstr(report, "running for"), "report: %s", report);
}

TEST(no_leaks_fds_shm_children)
{
    int fds0 = count_fds(), shm0 = dev_shm_entries();
    for (int round = 0; round < 3; round++) {
        weft_executor *ex = make(2, NULL);
        REQUIRE(ex);
        int32_t segv = 1;
        weft_future *f;
        CHECK_OK(weft_submit(ex, fault_task, &segv, sizeof segv, &f));
        CHECK_EQ_INT(weft_future_result(f, 30, NULL, NULL), WEFT_ECRASHED);
        weft_future_release(f);
        CHECK_OK(weft_executor_destroy(ex));
    }
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(dev_shm_entries(), shm0);
    CHECK_EQ_INT(server_children(), 0);
}

TEST(shutdown_cancel_with_work_queued)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    enum {
        N = 2000
    };
    weft_future **fs = calloc(N, sizeof *fs);
    double d = 0.001;
    for (int i = 0; i < N; i++) CHECK_OK(weft_submit(ex, sleep_task, &d, sizeof d, &fs[i]));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
    int done = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        CHECK_OK(weft_future_wait(fs[i], 30));
        weft_future_state s = weft_future_state_get(fs[i]);
        if (s == WEFT_FUTURE_DONE) done++;
        if (s == WEFT_FUTURE_CANCELLED) cancelled++;
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(done + cancelled, N);
    CHECK(cancelled > 0);
    free(fs);
    CHECK_OK(weft_executor_destroy(ex));
}

static const char *self_path; /* this test binary, for child programs */

/* ---- shutdown without waiting, forced shutdown (issue 11 control 15) ---- */

static void wait_running(weft_future *f)
{
    double end = check_now() + 30;
    while (weft_future_state_get(f) != WEFT_FUTURE_RUNNING && check_now() < end) check_sleep(0.002);
}

/* mappings of weft's shared memory (memfds named "weft-...") in this
 * process: a process-local count, unlike /dev/shm, which other programs on
 * the machine change */
static int weft_shm_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/memfd:weft")) n++;
    fclose(f);
    return n;
}

static void run_force(int crash_retries)
{
    int fds0 = count_fds(), shm0 = weft_shm_maps();
    weft_options o = {.processes.crash_retries = crash_retries};
    weft_executor *ex = make(2, &o);
    REQUIRE(ex);
    enum {
        R = 2,
        Q = 10
    };
    weft_future *run[R], *queued[Q];
    double d = 60;
    for (int i = 0; i < R; i++) { /* one at a time: a worker steals a batch of what waits */
        REQUIRE_OK(weft_submit(ex, sleep_task, &d, sizeof d, &run[i]));
        wait_running(run[i]);
    }
    for (int i = 0; i < Q; i++) REQUIRE_OK(weft_submit(ex, sleep_task, &d, sizeof d, &queued[i]));
    CHECK_EQ_INT(server_children(), 2);
    CHECK(weft_shm_maps() > shm0); /* the arenas: the count below means something */
    double t0 = check_now();
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_FORCE));
    double took = check_now() - t0;
    /* the tasks sleep 60 s: returning sooner means they were stopped */
    CHECK_MSG(took < 30, "forced shutdown took %.2f s", took);
    for (int i = 0; i < R; i++) {
        CHECK(weft_future_done(run[i]));
        CHECK_RC(weft_future_result(run[i], 0, NULL, NULL), WEFT_ECANCELLED);
        const char *msg = weft_future_error(run[i]);
        if (!crash_retries)
            CHECK_MSG(msg && strstr(msg, "forced shutdown"), "message: %s", msg ? msg : "(null)");
        weft_future_release(run[i]);
    }
    for (int i = 0; i < Q; i++) {
        CHECK(weft_future_done(queued[i]));
        CHECK_RC(weft_future_result(queued[i], 0, NULL, NULL), WEFT_ECANCELLED);
        weft_future_release(queued[i]);
    }
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(server_children(), 0);
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(weft_shm_maps(), shm0);
}

TEST(shutdown_force_kills_running_workers)
{
    run_force(0);
}

TEST(shutdown_force_does_not_retry_killed_tasks)
{
    run_force(2);
}

typedef struct map_arg {
    weft_executor *ex;
    int rc;
    size_t failed;
} map_arg;

static void *map_thread(void *p)
{
    map_arg *a = p;
    double d[4] = {60, 60, 60, 60};
    weft_map_options mo = {.chunk_size = 2};
    weft_results *r = NULL;
    a->rc = weft_map(a->ex, sleep_task, d, sizeof d[0], 4, &mo, &r);
    a->failed = weft_results_failed(r);
    weft_results_destroy(r);
    return NULL;
}

TEST(shutdown_force_stops_a_running_map)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    map_arg a = {ex, 1, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, map_thread, &a) == 0);
    check_sleep(0.5); /* the chunks are usually running by now; queued ones are cancelled */
    double t0 = check_now();
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_FORCE));
    pthread_join(th, NULL);
    double took = check_now() - t0;
    CHECK_MSG(took < 30, "forced shutdown with a map took %.2f s", took);
    CHECK_RC(a.rc, WEFT_ECANCELLED);
    CHECK_EQ_INT(a.failed, 4);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(server_children(), 0);
}

/* creates the file named by its input, then sleeps 0.5 s */
static int started_sleep(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    char path[300];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)in);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    check_sleep(0.5);
    return 0;
}
WEFT_TASK_REGISTER(started_sleep);

static void run_nowait(weft_shutdown_mode mode)
{
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    enum {
        N = 4
    };
    weft_future *fs[N];
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-started-%d", (int)getpid());
    unlink(path);
    REQUIRE_OK(weft_submit(ex, started_sleep, path, strlen(path), &fs[0]));
    double d = 0.5;
    for (int i = 1; i < N; i++) REQUIRE_OK(weft_submit(ex, sleep_task, &d, sizeof d, &fs[i]));
    /* wait until the first task runs in the worker process (RUNNING alone
     * is set before the item is sent) */
    double end = check_now() + 30;
    while (access(path, F_OK) != 0 && check_now() < end) check_sleep(0.002);
    unlink(path);
    CHECK_OK(weft_executor_shutdown(ex, mode));
    /* the last task is 1.5 s of work away: it cannot be done unless shutdown waited */
    CHECK(!weft_future_done(fs[N - 1]) || mode == WEFT_SHUTDOWN_CANCEL_NOWAIT);
    weft_future *f = (weft_future *)1;
    CHECK_ERR(weft_submit(ex, sleep_task, &d, sizeof d, &f), WEFT_ECLOSED);
    CHECK_OK(weft_future_result(fs[0], 30, NULL, NULL)); /* the running one always finishes */
    for (int i = 1; i < N; i++) {
        CHECK_RC(weft_future_result(fs[i], 30, NULL, NULL),
                 mode == WEFT_SHUTDOWN_NOWAIT ? 0 : WEFT_ECANCELLED);
        weft_future_release(fs[i]);
    }
    weft_future_release(fs[0]);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_EQ_INT(server_children(), 0);
}

TEST(shutdown_nowait_processes)
{
    run_nowait(WEFT_SHUTDOWN_NOWAIT);
}

TEST(shutdown_cancel_nowait_processes)
{
    run_nowait(WEFT_SHUTDOWN_CANCEL_NOWAIT);
}

/* ---- watchdog: periods, callback, no printing unasked (issue 11 defect 3,
 * issue 12 item 6) ---- */

static atomic_int stall_calls;
static weft_stall_info stall_seen;
static char stall_report[1024];

static void on_stall(void *arg, const weft_stall_info *info)
{
    (void)arg;
    if (atomic_fetch_add(&stall_calls, 1) == 0) {
        pthread_mutex_lock(&report_mu);
        stall_seen = *info;
        snprintf(stall_report, sizeof stall_report, "%s", info->report);
        stall_seen.report = stall_report;
        pthread_mutex_unlock(&report_mu);
    }
}

/* runs one 0.6 s task under a watchdog of `period` with stderr captured;
 * returns the bytes written to stderr */
static long run_watchdog(double period, bool print)
{
    atomic_store(&stall_calls, 0);
    stall_report[0] = 0;
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    if (!tmp || saved < 0) return -1;
    dup2(fileno(tmp), 2);
    weft_options o = {
        .processes = {.watchdog = period, .on_stall = on_stall, .watchdog_print = print}};
    weft_executor *ex = make(1, &o);
    if (ex) {
        double d = 0.6;
        weft_future *f;
        CHECK_OK(weft_submit(ex, sleep_task, &d, sizeof d, &f));
        CHECK_OK(weft_future_result(f, 30, NULL, NULL));
        weft_future_release(f);
        CHECK_OK(weft_executor_destroy(ex));
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp) >= 0 ? (fseek(tmp, 0, SEEK_END), ftell(tmp)) : -1;
    fclose(tmp);
    return n;
}

TEST(watchdog_forever_never_reports)
{
    long printed = run_watchdog(WEFT_FOREVER, true);
    CHECK_EQ_INT(atomic_load(&stall_calls), 0);
    CHECK_EQ_INT(printed, 0);
    printed = run_watchdog(1e12, true); /* any period past ~292 years */
    CHECK_EQ_INT(atomic_load(&stall_calls), 0);
    CHECK_EQ_INT(printed, 0);
}

TEST(watchdog_reports_through_on_stall_and_prints_only_when_asked)
{
    long printed = run_watchdog(0.1, false);
    CHECK_EQ_INT(atomic_load(&stall_calls), 1); /* once per stall */
    CHECK_EQ_INT(printed, 0);
    pthread_mutex_lock(&report_mu);
    CHECK(stall_seen.stalled >= 0.1);
    CHECK_EQ_INT(stall_seen.pending, 1);
    CHECK_EQ_INT(stall_seen.workers, 1);
    /* a line per worker (running sleep_task, or idle if the stall was seen
     * before the task reached its worker on a busy machine) */
    CHECK_MSG(strstr(stall_report, "no task finished for") && strstr(stall_report, "worker 0 (pid"),
              "report: %s", stall_report);
    pthread_mutex_unlock(&report_mu);
    printed = run_watchdog(0.1, true);
    CHECK_EQ_INT(atomic_load(&stall_calls), 1);
    CHECK(printed > 0);
}

TEST(watchdog_options_checked)
{
    weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 1, .processes.watchdog = 1};
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL); /* reports to no one */
    CHECK(ex == NULL);
    CHECK_MSG(strstr(weft_last_error(), "no one"), "%s", weft_last_error());
    o.processes.watchdog = 0;
    setenv("WEFT_WATCHDOG", "soon", 1);
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "WEFT_WATCHDOG"), "%s", weft_last_error());
    setenv("WEFT_WATCHDOG", "inf", 1); /* asked through the environment: never */
    CHECK_OK(weft_executor_create(&o, &ex));
    CHECK_OK(weft_executor_destroy(ex));
    unsetenv("WEFT_WATCHDOG");
}

TEST(unregistered_initializer_is_refused_at_create)
{
    weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 1, .initializer = unregistered};
    weft_executor *ex = (weft_executor *)1;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_ENOTREG);
    CHECK(ex == NULL);
    CHECK_MSG(strstr(weft_last_error(), "initializer is not registered"), "%s", weft_last_error());
    o.initializer = NULL;
    o.finalizer = unregistered;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_ENOTREG);
    CHECK_MSG(strstr(weft_last_error(), "finalizer is not registered"), "%s", weft_last_error());
    CHECK_EQ_INT(server_children(), 0);
}

/* ---- exit behaviour (issue 11 defect 12) ---- */

static int marker_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    char path[300];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)in);
    check_sleep(0.05);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    return 0;
}
WEFT_TASK_REGISTER(marker_task);

/* "the program": submits 6 marker tasks to 2 worker processes, releases
 * them and returns from main */
static int exit_child(const char *dir)
{
    weft_executor *ex = make(2, NULL);
    if (!ex) return 90;
    for (int i = 0; i < 6; i++) {
        char path[300];
        int n = snprintf(path, sizeof path, "%s/m%d", dir, i);
        weft_future *f;
        if (weft_submit(ex, marker_task, path, (size_t)n, &f)) return 91;
        weft_future_release(f);
    }
    return 0;
}

TEST(exit_waits_for_queued_work_processes)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/weft-exitp-XXXXXX");
    REQUIRE(mkdtemp(dir));
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        execl(self_path, self_path, "--exit-child", dir, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    int found = 0;
    for (int i = 0; i < 6; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/m%d", dir, i);
        found += unlink(path) == 0;
    }
    rmdir(dir);
    CHECK_EQ_INT(found, 6);
}

/* ---- big outputs kept when a later item of the batch kills its worker ---- */

typedef struct big_in {
    int32_t code; /* 0: output `mib` MiB; else a fault of fault_task, 7 = over memory_limit */
    int32_t mib;
    uint64_t salt;
} big_in;

static uint64_t big_word(uint64_t salt, size_t k)
{
    return salt * 0x9e3779b97f4a7c15ull + k;
}

static int big_or_fault(weft_ctx *ctx, const void *in, size_t len)
{
    big_in a = {0};
    if (len == sizeof a) memcpy(&a, in, sizeof a);
    if (a.code == 7) {
        int32_t mib = 1024;
        return hog_unchecked(ctx, &mib, sizeof mib);
    }
    if (a.code) {
        int32_t code = a.code;
        return fault_task(ctx, &code, sizeof code);
    }
    size_t n = ((size_t)a.mib << 20) / sizeof(uint64_t);
    uint64_t *o = weft_ctx_output(ctx, n * sizeof *o);
    if (!o) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output buffer");
    for (size_t k = 0; k < n; k++) o[k] = big_word(a.salt, k);
    return 0;
}
WEFT_TASK_REGISTER(big_or_fault);

/* checks an 8 MiB output of big_or_fault; returns the words that differ */
static size_t big_bad_words(const void *d, size_t len, uint64_t salt)
{
    if (!d || len != (8u << 20)) return SIZE_MAX;
    const uint64_t *o = d;
    size_t bad = 0;
    for (size_t k = 0; k < len / sizeof *o; k++)
        if (o[k] != big_word(salt, k)) bad++;
    return bad;
}

/* holds the executor's only worker thread in a future's callback until
 * released, so the tasks submitted meanwhile go to the worker in one batch */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t owner;
    int entered, open;
} gate;

static void gate_cb(weft_future *f, void *arg)
{
    (void)f;
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    if (pthread_equal(pthread_self(), g->owner)) { /* finished first: no hold */
        g->entered = -1;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    while (!g->open && pthread_cond_timedwait(&g->cv, &g->mu, &dl) == 0) {
    }
    pthread_mutex_unlock(&g->mu);
}

/* Once an input of 4 MiB or more has turned on the direct process_vm_readv
 * path, an output of 4 MiB or more stays in the worker's memory until the
 * owner reads it. A later item of the same batch that killed its worker
 * (or timed out) used to take the finished item's output with it: item 0
 * was reported WEFT_ECRASHED "the output could not be read". */
TEST(big_output_kept_when_a_later_item_kills_the_worker)
{
    const char *kinds[] = {"",
                           "segfault",
                           "abort",
                           "exit(3)",
                           "",
                           "SIGKILL",
                           "hang past timeout",
                           "memory limit death"};
    int codes[] = {1, 2, 3, 5, 6, 7};
    for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++) {
        int code = codes[c];
        if (code == 7 && (CHECK_ASAN || CHECK_TSAN)) continue; /* no memory limit there */
        weft_options o = {0};
        /* the hang: the map's items all have the executor's limit, so it is
         * far above what an 8 MiB output takes; submits other than the
         * hanging one have none (a busy machine may deschedule anything) */
        if (code == 6) o.processes.task_timeout = 2.0;
        if (code == 7) o.processes.memory_limit = 256u << 20;
        weft_submit_options nolimit = {0};
        nolimit.timeout = -1;
        weft_submit_options hang_limit = {0};
        hang_limit.timeout = 0.3;
        weft__procs_set_vm(0);
        weft_executor *ex = make(1, &o);
        REQUIRE(ex);
        /* a 5 MiB input turns the direct path on */
        size_t n5 = 5u << 20;
        unsigned char *in5 = calloc(1, n5);
        REQUIRE(in5);
        weft_future *f;
        CHECK_OK(weft_submit_ex(ex, echo_plus, in5, n5, &nolimit, &f));
        CHECK_OK(weft_future_result(f, 60, NULL, NULL));
        weft_future_release(f);
        free(in5);

        /* map: one chunk of 3 items, item 1 kills its worker */
        big_in items[3] = {{0, 8, 1000 + c}, {code, 0, 0}, {0, 8, 2000 + c}};
        weft_map_options mo = {0};
        mo.chunk_size = 3;
        weft_results *r = NULL;
        int rc = weft_map(ex, big_or_fault, items, sizeof items[0], 3, &mo, &r);
        CHECK_MSG(rc != 0, "%s: the map succeeded", kinds[code]);
        REQUIRE(r);
        const void *d = NULL;
        size_t len = 0;
        rc = weft_results_get(r, 0, &d, &len);
        CHECK_MSG(rc == 0, "map, %s: item 0: %s: %s", kinds[code], weft_strerror(rc),
                  weft_results_error(r, 0) ? weft_results_error(r, 0) : "");
        CHECK_MSG(rc || big_bad_words(d, len, 1000 + c) == 0, "map, %s: item 0's output is wrong",
                  kinds[code]);
        rc = weft_results_get(r, 1, NULL, NULL);
        CHECK_MSG(rc == (code == 6   ? WEFT_ETIMEDOUT
                         : code == 7 ? WEFT_EMEMLIMIT
                                     : WEFT_ECRASHED),
                  "map, %s: item 1: %s", kinds[code], weft_strerror(rc));
        rc = weft_results_get(r, 2, &d, &len);
        CHECK_MSG(rc == 0 && big_bad_words(d, len, 2000 + c) == 0, "map, %s: item 2: %s",
                  kinds[code], weft_strerror(rc));
        weft_results_destroy(r);

        /* submit: the same three as one batch of the only worker. Tiny
         * tasks first make the measured time per task short (a batch then
         * takes several); the gate holds the worker thread while the three
         * are submitted. */
        for (int k = 0; k < 20; k++) {
            int64_t x = k;
            CHECK_OK(weft_submit_ex(ex, square, &x, sizeof x, &nolimit, &f));
            CHECK_OK(weft_future_result(f, 60, NULL, NULL));
            weft_future_release(f);
        }
        gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, pthread_self(), 0, 0};
        weft_future *gf = NULL;
        for (int tries = 0; tries < 100 && g.entered != 1; tries++) {
            weft_future_release(gf);
            g.entered = 0;
            int64_t x = 3;
            CHECK_OK(weft_submit_ex(ex, square, &x, sizeof x, &nolimit, &gf));
            CHECK_OK(weft_future_on_done(gf, gate_cb, &g));
            pthread_mutex_lock(&g.mu);
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 30;
            while (!g.entered && pthread_cond_timedwait(&g.cv, &g.mu, &dl) == 0) {
            }
            pthread_mutex_unlock(&g.mu);
        }
        CHECK_MSG(g.entered == 1, "the gate never held the worker thread");
        weft_future *fs[3];
        for (int k = 0; k < 3; k++)
            CHECK_OK(weft_submit_ex(ex, big_or_fault, &items[k], sizeof items[k],
                                    k == 1 && code == 6 ? &hang_limit : &nolimit, &fs[k]));
        pthread_mutex_lock(&g.mu);
        g.open = 1;
        pthread_cond_broadcast(&g.cv);
        pthread_mutex_unlock(&g.mu);
        weft_future_release(gf);
        rc = weft_future_result(fs[0], 60, &d, &len);
        CHECK_MSG(rc == 0, "submit, %s: task 0: %s: %s", kinds[code], weft_strerror(rc),
                  weft_future_error(fs[0]) ? weft_future_error(fs[0]) : "");
        CHECK_MSG(rc || big_bad_words(d, len, 1000 + c) == 0,
                  "submit, %s: task 0's output is wrong", kinds[code]);
        rc = weft_future_result(fs[1], 60, NULL, NULL);
        CHECK_MSG(rc == (code == 6   ? WEFT_ETIMEDOUT
                         : code == 7 ? WEFT_EMEMLIMIT
                                     : WEFT_ECRASHED),
                  "submit, %s: task 1: %s", kinds[code], weft_strerror(rc));
        rc = weft_future_result(fs[2], 60, &d, &len);
        CHECK_MSG(rc == 0 && big_bad_words(d, len, 2000 + c) == 0, "submit, %s: task 2: %s",
                  kinds[code], weft_strerror(rc));
        for (int k = 0; k < 3; k++) weft_future_release(fs[k]);
        pthread_mutex_destroy(&g.mu);
        pthread_cond_destroy(&g.cv);
        CHECK_OK(weft_executor_destroy(ex));
    }
    weft__procs_set_vm(0);
}

/* The program is killed: no worker or server survives it. Runs a copy of
 * this test binary as "the program" (argv[1] = "--orphan-child"). */

static int orphan_child(void)
{
    weft_executor *ex = make(2, NULL);
    if (!ex) return 1;
    int32_t hang = 6;
    weft_future *f[2];
    weft_submit(ex, fault_task, &hang, sizeof hang, &f[0]);
    weft_submit(ex, fault_task, &hang, sizeof hang, &f[1]);
    printf("%d\n", (int)weft__fs_pid());
    fflush(stdout);
    for (;;) pause();
}

static bool alive(pid_t p)
{
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[2] != 'Z';
}

TEST(killing_the_program_leaves_no_survivors)
{
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    pid_t prog = fork();
    REQUIRE(prog >= 0);
    if (prog == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl(self_path, self_path, "--orphan-child", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[64] = {0};
    ssize_t n = read(pfd[0], line, sizeof line - 1);
    close(pfd[0]);
    REQUIRE(n > 0);
    pid_t srv = atoi(line);
    REQUIRE(srv > 0);
    usleep(100000);
    /* collect the server's children (the workers) */
    pid_t kids[16];
    int nk = children_of(srv, kids, 16);
    CHECK_EQ_INT(nk, 2);
    kill(prog, SIGKILL);
    waitpid(prog, NULL, 0);
    bool any = true;
    for (int t = 0; t < 200 && any; t++) {
        any = alive(srv);
        for (int i = 0; i < nk; i++) any = any || alive(kids[i]);
        if (any) usleep(10000);
    }
    CHECK_MSG(!any, "a worker or the fork server outlived the program");
}

TEST(without_weft_init_a_threaded_program_gets_a_clear_error)
{
    /* This process called weft_init, so the server exists; the check is
     * made in a fresh child that has a thread and no server. */
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        execl(self_path, self_path, "--no-init-child", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
}

static void *idle_thread(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

static int no_init_child(void)
{
    pthread_t th;
    pthread_create(&th, NULL, idle_thread, NULL);
    weft_options o = {0};
    o.backend = WEFT_BACKEND_PROCESSES;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc != WEFT_ENOTSUP || !strstr(weft_last_error(), "weft_init")) {
        fprintf(stderr, "got %d: %s\n", rc, weft_last_error());
        _exit(1);
    }
    _exit(0);
}

/* ---- issue 11: worker isolation, inherited fds, cancelled batches, idle workers ---- */

/* How many distinct worker arenas (memfds named weft-worker) this process
 * maps: a worker must map its own only. Output: int32. */
static int arena_maps_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return weft_ctx_fail(ctx, WEFT_ENOENT, "no /proc/self/maps");
    unsigned long inodes[64];
    int32_t n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long ino = 0;
        if (!strstr(line, "/memfd:weft-worker")) continue;
        if (sscanf(line, "%*s %*s %*s %*s %lu", &ino) != 1) continue;
        bool seen = false;
        for (int32_t i = 0; i < n; i++) seen = seen || inodes[i] == ino;
        if (!seen && n < 64) inodes[n++] = ino;
    }
    fclose(f);
    return weft_ctx_set_output(ctx, &n, sizeof n);
}
WEFT_TASK_REGISTER(arena_maps_task);

TEST(a_worker_maps_no_other_workers_control_block)
{
    /* Workers forked later (b's, and the replacement of a crashed one)
     * must not have inherited the control pages of those forked before. */
    weft_executor *a = make(2, NULL), *b = make(2, NULL);
    REQUIRE(a && b);
    int32_t segv = 1;
    weft_future *crash;
    CHECK_OK(weft_submit(a, fault_task, &segv, sizeof segv, &crash));
    CHECK_EQ_INT(weft_future_result(crash, 30, NULL, NULL), WEFT_ECRASHED);
    weft_future_release(crash);
    enum {
        N = 40
    };
    weft_future *fs[2 * N];
    for (int i = 0; i < 2 * N; i++)
        CHECK_OK(weft_submit(i < N ? a : b, arena_maps_task, NULL, 0, &fs[i]));
    int bad = 0;
    for (int i = 0; i < 2 * N; i++) {
        const void *d = NULL;
        size_t len = 0;
        int32_t got = -1;
        CHECK_OK(weft_future_result(fs[i], 30, &d, &len));
        if (d && len == sizeof got) memcpy(&got, d, sizeof got);
        if (got != 1) bad++;
        if (got != 1 && bad == 1) printf("    a worker maps %d worker arenas\n", (int)got);
        weft_future_release(fs[i]);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_OK(weft_executor_destroy(b));
    CHECK_OK(weft_executor_destroy(a));
}

#define INHERITED_NAME "weft-test-inherited"
#define INHERITED_FDS 300

/* Audits the worker's descriptors. Output: int32 {inherited descriptors
 * open, worker arenas open, arenas whose mode is not 0600}. */
static int fd_audit_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    int32_t r[3] = {0, 0, 0};
    DIR *d = opendir("/proc/self/fd");
    if (!d) return weft_ctx_fail(ctx, WEFT_ENOENT, "no /proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], link[512];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0) continue;
        link[k] = 0;
        if (strstr(link, INHERITED_NAME)) r[0]++;
        if (strstr(link, "memfd:weft-worker")) {
            r[1]++;
            struct stat st;
            if (fstat(atoi(e->d_name), &st) != 0 || (st.st_mode & 07777) != 0600) r[2]++;
        }
    }
    closedir(d);
    return weft_ctx_set_output(ctx, r, sizeof r);
}
WEFT_TASK_REGISTER(fd_audit_task);

/* Descriptors of process `pid` that point at the inherited memfd. */
static int inherited_in(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[400], link[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k > 0) {
            link[k] = 0;
            if (strstr(link, INHERITED_NAME)) n++;
        }
    }
    closedir(d);
    return n;
}

/* "The program" of the next test: opens INHERITED_FDS descriptors without
 * CLOEXEC, then weft_init; none may reach the fork server or a worker.
 * Exits 0 when clean. */
static int fds_child(int *argc, char ***argv)
{
    int fd = memfd_create(INHERITED_NAME, 0);
    if (fd < 0) return 2;
    for (int i = 1; i < INHERITED_FDS; i++)
        if (dup(fd) < 0) return 2;
    if (weft_init(argc, argv) != 0) return 3;
    weft_executor *ex = make(2, NULL);
    if (!ex) return 4;
    /* the server has answered (spawned the workers): it is past its start */
    int in_server = inherited_in(weft__fs_pid());
    int32_t r[3] = {-1, -1, -1};
    int fails = 0;
    for (int i = 0; i < 8; i++) {
        weft_future *f;
        const void *d = NULL;
        size_t len = 0;
        if (weft_submit(ex, fd_audit_task, NULL, 0, &f) != 0) return 5;
        if (weft_future_result(f, 30, &d, &len) == 0 && len == sizeof r) memcpy(r, d, sizeof r);
        weft_future_release(f);
        if (r[0] != 0 || r[1] != 1 || r[2] != 0) fails++;
    }
    weft_executor_destroy(ex);
    printf("server: %d inherited; worker: %d inherited, %d arenas, %d not 0600\n", in_server,
           (int)r[0], (int)r[1], (int)r[2]);
    return in_server == 0 && fails == 0 ? 0 : 1;
}

TEST(no_inherited_fd_reaches_the_fork_server_or_a_worker)
{
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(self_path, self_path, "--fds-child", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char out[512] = {0};
    size_t got = 0;
    ssize_t k;
    while (got < sizeof out - 1 && (k = read(pfd[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)k;
    close(pfd[0]);
    int st = 0;
    waitpid(p, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x: %s", st, out);
}

/* Sleeps (input: double seconds), then its worker process dies. */
static int sleep_then_die(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    double s = 0;
    if (len == sizeof s) memcpy(&s, in, sizeof s);
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
    kill(getpid(), SIGKILL);
    pause();
    return 0;
}
WEFT_TASK_REGISTER(sleep_then_die);

TEST(shutdown_cancel_finishes_a_task_taken_but_not_sent)
{
    /* The task crashes after the cancel began; its retry is then cancelled
     * by the proxy before it is sent: the future, already taken (running),
     * must still finish. */
    weft_options o = {0};
    o.processes.crash_retries = 1;
    weft_executor *ex = make(1, &o);
    REQUIRE(ex);
    double d = 0.3;
    weft_future *f;
    CHECK_OK(weft_submit(ex, sleep_then_die, &d, sizeof d, &f));
    for (int i = 0; i < 3000 && !weft_future_running(f); i++) usleep(1000);
    CHECK(weft_future_running(f));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL));
    CHECK_OK(weft_future_wait(f, 10));
    weft_future_state s = weft_future_state_get(f);
    CHECK_MSG(s == WEFT_FUTURE_CANCELLED || s == WEFT_FUTURE_FAILED, "state %d", (int)s);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

typedef struct barrier_in {
    weft_ipc_token tok;
    int32_t group, size;
} barrier_in;

/* Adds itself to counter `group` of the shared region, then waits (10 s at
 * most) until `size` tasks of the group have started. */
static int barrier_task(weft_ctx *ctx, const void *in, size_t len)
{
    barrier_in b;
    if (len != sizeof b) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad input length %zu", len);
    memcpy(&b, in, sizeof b);
    static weft_shm *shm;
    static weft_ipc_token seen;
    if (!shm || memcmp(&seen, &b.tok, sizeof b.tok) != 0) {
        if (shm) weft_shm_destroy(shm);
        shm = NULL;
        int rc = weft_shm_attach(&b.tok, &shm);
        if (rc) return weft_ctx_fail(ctx, rc, "attach: %s", weft_last_error());
        seen = b.tok;
    }
    int64_t *c = (int64_t *)weft_shm_ptr(shm) + b.group;
    __atomic_fetch_add(c, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; __atomic_load_n(c, __ATOMIC_SEQ_CST) < b.size; i++) {
        if (i >= 100000)
            return weft_ctx_fail(ctx, WEFT_ETIMEDOUT, "group %d: %lld of %d tasks started",
                                 (int)b.group, (long long)__atomic_load_n(c, __ATOMIC_SEQ_CST),
                                 (int)b.size);
        usleep(100);
    }
    return 0;
}
WEFT_TASK_REGISTER(barrier_task);

/* `rounds` rounds of one barrier task per worker, each round after `warm`
 * tiny tasks (which make the executor batch): every task of a round must
 * start, so no task may wait while a worker is idle. */
static void barrier_rounds(int workers, int rounds, int warm)
{
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create((size_t)rounds * sizeof(int64_t), &shm) == 0);
    barrier_in b;
    CHECK_OK(weft_shm_token(shm, &b.tok));
    b.size = workers;
    weft_executor *ex = make(workers, NULL);
    REQUIRE(ex);
    weft_future **fs = calloc((size_t)(workers > warm ? workers : warm), sizeof *fs);
    REQUIRE(fs);
    int failed = 0;
    for (int r = 0; r < rounds && !failed; r++) {
        for (int64_t i = 0; i < warm; i++) CHECK_OK(weft_submit(ex, square, &i, sizeof i, &fs[i]));
        for (int i = 0; i < warm; i++) {
            CHECK_OK(weft_future_wait(fs[i], 30));
            weft_future_release(fs[i]);
        }
        b.group = r;
        for (int i = 0; i < workers; i++)
            CHECK_OK(weft_submit(ex, barrier_task, &b, sizeof b, &fs[i]));
        for (int i = 0; i < workers; i++) {
            int rc = weft_future_result(fs[i], 60, NULL, NULL);
            CHECK_MSG(rc == 0, "%d workers, round %d, task %d: %s: %s", workers, r, i,
                      weft_strerror(rc), weft_future_error(fs[i]) ? weft_future_error(fs[i]) : "");
            if (rc) failed++;
            weft_future_release(fs[i]);
        }
    }
    free(fs);
    CHECK_OK(weft_executor_destroy(ex));
    weft_shm_destroy(shm);
}

TEST(no_task_waits_while_a_worker_is_idle)
{
    barrier_rounds(3, 10, 0);   /* fresh executor: batches of one */
    barrier_rounds(3, 10, 300); /* after tiny tasks: batching on */
    barrier_rounds(4, 15, 0);   /* 60 tasks */
    barrier_rounds(4, 15, 300);
}

/* After a round trip the lane that answered spins for work and holds the
 * spinner role (docs/processes.md, "Spinning"): submits wake no other lane
 * while it does. Two tasks that wait for each other, submitted right then,
 * must still both start: the spinner takes one and wakes a lane for the
 * other, or the other's submit finds no spinner and wakes one itself. */
TEST(a_pair_submitted_upon_a_round_trip_both_start)
{
    enum {
        ROUNDS = 200
    };
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create(ROUNDS * sizeof(int64_t), &shm) == 0);
    barrier_in b;
    CHECK_OK(weft_shm_token(shm, &b.tok));
    b.size = 2;
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    int failed = 0;
    for (int r = 0; r < ROUNDS && !failed; r++) {
        int64_t x = r;
        weft_future *f, *g[2];
        CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
        CHECK_OK(weft_future_wait(f, 30));
        weft_future_release(f);
        b.group = r;
        for (int i = 0; i < 2; i++) CHECK_OK(weft_submit(ex, barrier_task, &b, sizeof b, &g[i]));
        for (int i = 0; i < 2; i++) {
            int rc = weft_future_result(g[i], 60, NULL, NULL);
            CHECK_MSG(rc == 0, "round %d, task %d: %s: %s", r, i, weft_strerror(rc),
                      weft_future_error(g[i]) ? weft_future_error(g[i]) : "");
            if (rc) failed++;
            weft_future_release(g[i]);
        }
    }
    CHECK_OK(weft_executor_destroy(ex));
    weft_shm_destroy(shm);
}

typedef struct cb_submit {
    weft_executor *ex;
    barrier_in b;
    int64_t *counter; /* the group's counter, in the shared region */
    int started;      /* the callback saw the task it submitted start */
    int done;         /* the callback returned */
} cb_submit;

/* On the lane that completed the future: submits a task, then waits (10 s
 * at most) for it to start without waiting on its future (which would run
 * it right here, by helping): another lane must be woken for it. */
static void submit_and_watch(weft_future *f, void *arg)
{
    (void)f;
    cb_submit *c = arg;
    weft_future *g = NULL;
    if (weft_submit(c->ex, barrier_task, &c->b, sizeof c->b, &g) == 0) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            if (__atomic_load_n(c->counter, __ATOMIC_SEQ_CST) >= 1) c->started = 1;
            usleep(100);
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while (!c->started && t.tv_sec - t0.tv_sec < 10);
        weft_future_release(g);
    }
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
}

/* A lane that completes a future with callbacks takes the spinner role
 * only after they ran: a callback that submits and waits for the task to
 * start must not wait for good behind a lane that holds it. */
TEST(a_callback_that_submits_sees_its_task_start)
{
    enum {
        ROUNDS = 20
    };
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create(ROUNDS * sizeof(int64_t), &shm) == 0);
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    for (int r = 0; r < ROUNDS; r++) {
        cb_submit c = {ex, {.group = r, .size = 1}, (int64_t *)weft_shm_ptr(shm) + r, 0, 0};
        CHECK_OK(weft_shm_token(shm, &c.b.tok));
        for (int k = 0; k < 3; k++) { /* round trips first: the lanes spin */
            int64_t x = k;
            weft_future *f;
            CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
            CHECK_OK(weft_future_wait(f, 30));
            weft_future_release(f);
        }
        int64_t x = r;
        weft_future *f;
        CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
        CHECK_OK(weft_future_on_done(f, submit_and_watch, &c));
        CHECK_OK(weft_future_wait(f, 30));
        for (int i = 0; i < 6000 && !__atomic_load_n(&c.done, __ATOMIC_SEQ_CST); i++) usleep(10000);
        REQUIRE(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST)); /* the callback returned */
        CHECK_MSG(c.started, "round %d: the task submitted by the callback never started", r);
        weft_future_release(f);
        if (!c.started) break;
    }
    CHECK_OK(weft_executor_destroy(ex));
    weft_shm_destroy(shm);
}

/* An idle pool costs no CPU: its lanes, worker processes and the fork
 * server all sleep (spins end within their budget, 100 us at most). CPU
 * time is the processes' own, so a loaded machine does not change it. */
static double cpu_seconds_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = '\0';
    char *q = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

TEST(an_idle_pool_uses_no_cpu)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    pid_t pids[3] = {0, 0, weft__fs_pid()};
    int n = 0;
    for (int i = 0; i < 2000; i++) { /* round trips: every spin budget at its top */
        weft_future *f;
        CHECK_OK(weft_submit(ex, getpid_task, NULL, 0, &f));
        const void *d;
        size_t len;
        CHECK_OK(weft_future_result(f, 30, &d, &len));
        int32_t p;
        memcpy(&p, d, sizeof p);
        if (n < 2 && p != pids[0] && p != pids[1]) pids[n++] = p;
        weft_future_release(f);
    }
    REQUIRE(n >= 1);
    usleep(20000); /* let every spin end */
    struct timespec a, b;
    double w0 = 0, w1 = 0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) w0 += cpu_seconds_of(pids[i]);
    usleep(2000000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) w1 += cpu_seconds_of(pids[i]);
    double own = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    if (CHECK_TSAN) own = 0; /* TSan's own background thread wakes up on its own */
    double pct = (own + (w1 - w0)) / 2.0 * 100;
    /* 1% of a core over 2 s is 20 ms: two clock ticks of the workers' */
    CHECK_MSG(pct < 1.5,
              "the idle pool used %.2f%% of a core (program %.3f s, workers and "
              "server %.3f s over 2 s)",
              pct, own, w1 - w0);
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- the direct path (docs/processes.md, "Round trips"): a submit from
 * the program's thread goes straight to a free worker; the waiter, or the
 * lane as the backstop, collects it ---- */

static void count_cb(weft_future *f, void *arg)
{
    (void)f;
    __atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
}

static void every_way_of_waiting(void);

TEST(direct_path_every_way_of_waiting)
{
    every_way_of_waiting(); /* the direct path */
    setenv("WEFT_PROCESSES_DIRECT", "0", 1);
    every_way_of_waiting(); /* every task through the lanes, as before it */
    setenv("WEFT_PROCESSES_DIRECT", "yes", 1);
    weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 1};
    weft_executor *bad = NULL;
    CHECK_EQ_INT(weft_executor_create(&o, &bad), WEFT_EINVAL);
    CHECK(bad == NULL);
    unsetenv("WEFT_PROCESSES_DIRECT");
}

static int cb_count; /* callbacks run (count_cb) */

static void every_way_of_waiting(void)
{
    weft_executor *ex = make(2, NULL);
    REQUIRE(ex);
    __atomic_store_n(&cb_count, 0, __ATOMIC_SEQ_CST);
    /* waited for without a limit: the waiter collects */
    long bad = 0;
    for (int64_t i = 0; i < 3000; i++) {
        weft_future *f;
        CHECK_OK(weft_submit(ex, square, &i, sizeof i, &f));
        const void *d;
        size_t len;
        int rc = weft_future_result(f, WEFT_FOREVER, &d, &len);
        int64_t v = -1;
        if (rc == 0 && len == sizeof v) memcpy(&v, d, sizeof v);
        if (v != i * i) bad++;
        weft_future_release(f);
    }
    CHECK_EQ_INT(bad, 0);
    /* with a limit: the waiter takes the result once it is there */
    for (int64_t i = 0; i < 500; i++) {
        weft_future *f;
        CHECK_OK(weft_submit(ex, square, &i, sizeof i, &f));
        const void *d;
        size_t len;
        int rc = weft_future_result(f, 60, &d, &len);
        int64_t v = -1;
        if (rc == 0 && len == sizeof v) memcpy(&v, d, sizeof v);
        if (v != i * i) bad++;
        weft_future_release(f);
    }
    CHECK_EQ_INT(bad, 0);
    /* weft_wait over several, callbacks, and futures nobody waits for:
     * the lanes collect them */
    for (int round = 0; round < 50; round++) {
        weft_future *fs[3];
        for (int64_t k = 0; k < 3; k++) CHECK_OK(weft_submit(ex, square, &k, sizeof k, &fs[k]));
        CHECK_OK(weft_future_on_done(fs[2], count_cb, &cb_count));
        size_t nd = 0;
        CHECK_OK(weft_wait(fs, 3, WEFT_WAIT_ALL, 60, NULL, &nd));
        CHECK_EQ_INT((int)nd, 3);
        for (int64_t k = 0; k < 3; k++) {
            const void *d;
            size_t len;
            CHECK_OK(weft_future_result(fs[k], 0, &d, &len));
            int64_t v = -1;
            if (len == sizeof v) memcpy(&v, d, sizeof v);
            CHECK_EQ_INT(v, k * k);
            weft_future_release(fs[k]);
        }
    }
    /* every callback ran (on the thread that finished its future) */
    for (int k = 0; k < 30000 && __atomic_load_n(&cb_count, __ATOMIC_SEQ_CST) < 50; k++)
        usleep(1000);
    CHECK_EQ_INT(__atomic_load_n(&cb_count, __ATOMIC_SEQ_CST), 50);
    /* a crash and a timeout of a task sent straight to its worker, waited
     * for without a limit: the same errors as through a lane, and the
     * next task runs on a fresh worker */
    int32_t segv = 1, hang = 6;
    weft_future *f;
    CHECK_OK(weft_submit(ex, fault_task, &segv, sizeof segv, &f));
    CHECK_EQ_INT(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ECRASHED);
    weft_future_release(f);
    weft_submit_options to = {0};
    to.timeout = 0.2;
    CHECK_OK(weft_submit_ex(ex, fault_task, &hang, sizeof hang, &to, &f));
    CHECK_EQ_INT(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ETIMEDOUT);
    weft_future_release(f);
    int64_t x = 7;
    CHECK_OK(weft_submit(ex, square, &x, sizeof x, &f));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(f, WEFT_FOREVER, &d, &len));
    int64_t v = 0;
    if (len == sizeof v) memcpy(&v, d, sizeof v);
    CHECK_EQ_INT(v, 49);
    weft_future_release(f);
    CHECK_OK(weft_executor_destroy(ex));
}

/* Futures released at once, never waited for: each task still runs once,
 * a shutdown waits for them, and destroy collects what is left. */
TEST(direct_path_unwaited_tasks_all_run)
{
    enum {
        N = 300
    };
    weft_shm *shm = NULL;
    REQUIRE(weft_shm_create((N + 1) * sizeof(int64_t), &shm) == 0);
    weft_ipc_token tok;
    CHECK_OK(weft_shm_token(shm, &tok));
    for (int round = 0; round < 2; round++) {
        memset(weft_shm_ptr(shm), 0, (N + 1) * sizeof(int64_t));
        weft_executor *ex = make(2, NULL);
        REQUIRE(ex);
        for (int i = 0; i < N; i++) {
            weft_future *f;
            weft_submit_options so = {0};
            so.has_index = true;
            so.index = (uint64_t)i;
            CHECK_OK(weft_submit_ex(ex, shm_writer, &tok, sizeof tok, &so, &f));
            weft_future_release(f);
            if (i % 50 == 0) usleep(2000); /* now and then a pool with nothing queued */
        }
        if (round == 0) CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
        CHECK_OK(weft_executor_destroy(ex));
        const int64_t *a = weft_shm_ptr(shm);
        CHECK_EQ_INT(a[0], N); /* every task ran exactly once */
        long wrong = 0;
        for (int i = 0; i < N; i++)
            if (a[1 + i] != (int64_t)i * i) wrong++;
        CHECK_EQ_INT(wrong, 0);
    }
    weft_shm_destroy(shm);
}

/* mappings of worker output segments (memfds named weft-output) in this
 * program */
static int output_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "weft-output")) n++;
    fclose(f);
    return n;
}

/* takes an 8 MiB output (a warm segment of its worker), writes half of
 * it, then dies */
static int big_then_crash(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    unsigned char *o = weft_ctx_output(ctx, 8u << 20);
    if (!o) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output buffer");
    memset(o, 0x5a, 4u << 20);
    int32_t segv = 1;
    return fault_task(ctx, &segv, sizeof segv);
}
WEFT_TASK_REGISTER(big_then_crash);

static weft_future *big_submit(weft_executor *ex, int mib, uint64_t salt)
{
    big_in a = {0, mib, salt};
    weft_future *f = NULL;
    CHECK_OK(weft_submit(ex, big_or_fault, &a, sizeof a, &f));
    return f;
}

static bool big_ok(weft_future *f, int mib, uint64_t salt)
{
    const void *d;
    size_t len;
    int rc = weft_future_result(f, 60, &d, &len);
    size_t bad = rc == 0 ? big_bad_words(d, len, salt) : 0;
    if (rc == 0 && len == ((size_t)mib << 20) && bad == 0) return true;
    printf("    output of %d MiB (salt %llu): %s, %zu bytes, %zu wrong words\n", mib,
           (unsigned long long)salt, weft_strerror(rc), len, bad);
    return false;
}

/* Large outputs land in the worker's segments, which the program keeps
 * mapped between outputs (warm); an output held by a future stays valid
 * when its worker dies, is replaced, and the fresh worker's segments are
 * used; everything is unmapped at destroy, or when the last output held
 * past it is released. */
TEST(warm_output_segments_survive_their_worker_and_go_at_destroy)
{
    weft__procs_set_vm(0);
    int maps0 = output_mappings();
    weft_executor *ex = make(1, NULL);
    REQUIRE(ex);
    { /* a 5 MiB input turns the process_vm path on: large outputs then go in segments */
        size_t n5 = 5u << 20;
        unsigned char *in5 = calloc(1, n5);
        REQUIRE(in5);
        weft_future *f;
        CHECK_OK(weft_submit(ex, echo_plus, in5, n5, &f));
        CHECK_OK(weft_future_result(f, 60, NULL, NULL));
        weft_future_release(f);
        free(in5);
    }
    for (int i = 0; i < 6; i++) { /* a stream of outputs: the same segments */
        weft_future *f = big_submit(ex, 8, (uint64_t)i);
        CHECK_MSG(big_ok(f, 8, (uint64_t)i), "output %d wrong", i);
        weft_future_release(f);
    }
    int kept = output_mappings() - maps0;
    /* 0 where the program may not map its workers' memfds (then copied) */
    CHECK_MSG(kept >= 0 && kept <= 2, "%d segment mappings kept", kept);
    weft_future *held1 = big_submit(ex, 8, 101), *held2 = big_submit(ex, 8, 102);
    CHECK(big_ok(held1, 8, 101));
    CHECK(big_ok(held2, 8, 102));
    /* the worker dies while the program holds outputs in both segments */
    weft_future *pf;
    CHECK_OK(weft_submit(ex, getpid_task, NULL, 0, &pf));
    const void *d;
    size_t len;
    CHECK_OK(weft_future_result(pf, 30, &d, &len));
    int32_t pid = 0;
    memcpy(&pid, d, sizeof pid);
    weft_future_release(pf);
    REQUIRE(pid > 0);
    kill(pid, SIGKILL);
    for (int i = 0; i < 4; i++) { /* the fresh worker's segments */
        weft_future *f = big_submit(ex, 8, 200 + (uint64_t)i);
        CHECK_MSG(big_ok(f, 8, 200 + (uint64_t)i), "output %d after the kill wrong", i);
        weft_future_release(f);
    }
    /* a worker killed while it writes a large output into a warm segment */
    weft_future *cf;
    CHECK_OK(weft_submit(ex, big_then_crash, NULL, 0, &cf));
    CHECK_EQ_INT(weft_future_result(cf, 60, NULL, NULL), WEFT_ECRASHED);
    weft_future_release(cf);
    CHECK(big_ok(held1, 8, 101)); /* still intact */
    CHECK(big_ok(held2, 8, 102));
    weft_future_release(held1);
    weft_future *f = big_submit(ex, 8, 300);
    CHECK(big_ok(f, 8, 300));
    CHECK_OK(weft_executor_destroy(ex));
    /* destroyed: only the outputs still held are mapped */
    CHECK_EQ_INT(output_mappings() - maps0, kept > 0 ? 2 : 0);
    CHECK(big_ok(f, 8, 300));
    CHECK(big_ok(held2, 8, 102));
    weft_future_release(f);
    weft_future_release(held2);
    CHECK_EQ_INT(output_mappings(), maps0);
    weft__procs_set_vm(0);
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc > 1 && strcmp(argv[1], "--no-init-child") == 0) return no_init_child();
    if (argc > 1 && strcmp(argv[1], "--fds-child") == 0) return fds_child(&argc, &argv);
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--orphan-child") == 0) return orphan_child();
    if (argc > 2 && strcmp(argv[1], "--exit-child") == 0) return exit_child(argv[2]);
    return check_main(argc, argv);
}

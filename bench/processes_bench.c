/* processes_bench : the processes backend (2 worker processes) beside
 * Python's ProcessPoolExecutor(2) and joblib (loky, multiprocessing), in
 * one run. Pools are started outside the timed blocks.
 *
 *   submit_batch      N tasks submitted, then every result waited (us/task)
 *   submit_roundtrip  submit one task and wait for it, N times (us/task)
 *   map_empty         weft_map of N trivial items (us/item); Python:
 *                     ProcessPoolExecutor.map with chunksize 1000
 *   payload_64mib     one task gets 64 MiB and returns 64 MiB (each byte + 1);
 *                     GB/s of payload = 64 MiB / round-trip time (the bytes
 *                     travel both ways, counted once)
 *   payload_64mib_shared  the same task on an input already in shared
 *                     memory (a weft_array_arg of a WEFT_ARRAY_SHARED array:
 *                     the task gets a token and maps the caller's pages, no
 *                     copy on the way in; the worker keeps that mapping from
 *                     task to task); 64 MiB returned as above (GB/s)
 *   With WEFT_PROCESSES_BENCH_AB=1, payload_64mib also runs on executors
 *   that copy large inputs another way (systems weft-processes-copy1: one
 *   copier thread; weft-processes-vm: process_vm_writev/readv), same run.
 *   With WEFT_PROCESSES_PHASES=1 each payload round trip prints the
 *   caller's submit and wake-up on stderr, beside the backend's phases.
 *   cpu_speedup       16 CPU-bound tasks: serial time / processes time (x)
 *   channel_pingpong  reference: an 8-byte weft_channel message there and
 *                     back between this program and a forked child, both
 *                     spinning (us/roundtrip; ipc_bench has the same row)
 *   memcpy_bandwidth  reference: one memcpy of 64 MiB into a warm buffer
 *                     (GB/s of bytes copied)
 *   payload_task_local  reference: payload_64mib's task (each byte + 1) run
 *                     in this process on warm buffers (GB/s): the part of
 *                     the round trip that is the task's own work
 *   processes_idle_cpu  CPU time used by the idle pool over 5 s after the
 *                     runs: its worker processes, the fork server and this
 *                     program's threads (% of one core)
 * Systems: weft-processes, python-processpool, joblib-loky,
 * joblib-multiprocessing; weft-channel and memcpy for the references. Every
 * run checks its results (sums, bytes).
 * Targets (issue 4): submit_batch <= 3 us, submit_roundtrip <= 20 us,
 * map_empty <= 0.2 us/item, payload_64mib >= 1 GB/s, cpu_speedup >= 1.85;
 * (issue 18) submit_roundtrip <= 5x channel_pingpong of the same run,
 * payload_64mib >= half of memcpy_bandwidth, processes_idle_cpu < 1%. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

#define REPS 5
#define N_BATCH 100000
#define N_ROUND 5000
#define N_MAP 2000000
#define PAYLOAD (64u << 20)
#define CPU_TASKS 16
#define CPU_WORK 40000000ull

static int ident(weft_ctx *ctx, const void *in, size_t len)
{
    (void)len;
    return weft_ctx_set_output(ctx, in, sizeof(int64_t));
}
WEFT_TASK_REGISTER(ident);

/* Each byte + 1, in blocks of 64 through restrict pointers: gcc -O2
 * vectorizes this (a plain byte loop stays scalar at -O2 and took half of
 * the round trip by itself, which is the task's cost, not the payload's). */
static void add_one(unsigned char *restrict o, const unsigned char *restrict i, size_t len)
{
    size_t k = 0;
    for (; k + 64 <= len; k += 64)
        for (size_t j = 0; j < 64; j++) o[k + j] = (unsigned char)(i[k + j] + 1);
    for (; k < len; k++) o[k] = (unsigned char)(i[k] + 1);
}

static int plus_one(weft_ctx *ctx, const void *in, size_t len)
{
    unsigned char *o = weft_ctx_output(ctx, len);
    if (!o) return weft_ctx_fail(ctx, WEFT_ENOMEM, "no output");
    add_one(o, in, len);
    return 0;
}
WEFT_TASK_REGISTER(plus_one);

static uint64_t burn(uint64_t n)
{
    uint64_t x = 0;
    for (uint64_t i = 0; i < n; i++) x = (x * 6364136223846793005ull + 1442695040888963407ull) ^ i;
    return x;
}

static int burn_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    uint64_t r = burn(CPU_WORK);
    return weft_ctx_set_output(ctx, &r, sizeof r);
}
WEFT_TASK_REGISTER(burn_task);

static int pid_task(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in;
    (void)len;
    usleep(30000); /* long enough that both workers take one */
    int64_t pid = getpid();
    return weft_ctx_set_output(ctx, &pid, sizeof pid);
}
WEFT_TASK_REGISTER(pid_task);

static weft_executor *ex;

static int64_t result_i64(weft_future *f)
{
    const void *d;
    size_t n;
    int64_t v = -1;
    if (weft_future_result(f, WEFT_FOREVER, &d, &n) == 0 && n == sizeof v) memcpy(&v, d, sizeof v);
    return v;
}

static double run_batch(void)
{
    static weft_future *fs[N_BATCH];
    double t0 = bench_now();
    for (int64_t i = 0; i < N_BATCH; i++)
        if (weft_submit(ex, ident, &i, sizeof i, &fs[i])) return -1;
    int64_t sum = 0;
    for (int64_t i = 0; i < N_BATCH; i++) {
        sum += result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double t1 = bench_now();
    if (sum != (int64_t)N_BATCH * (N_BATCH - 1) / 2) {
        bench_fail("submit_batch: sum %lld", (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_BATCH * 1e6;
}

static double run_round(void)
{
    int64_t sum = 0;
    double t0 = bench_now();
    for (int64_t i = 0; i < N_ROUND; i++) {
        weft_future *f;
        if (weft_submit(ex, ident, &i, sizeof i, &f)) return -1;
        sum += result_i64(f);
        weft_future_release(f);
    }
    double t1 = bench_now();
    if (sum != (int64_t)N_ROUND * (N_ROUND - 1) / 2) {
        bench_fail("submit_roundtrip: sum %lld", (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_ROUND * 1e6;
}

static int64_t *map_in;

static double run_map(void)
{
    weft_results *r = NULL;
    double t0 = bench_now();
    int rc = weft_map(ex, ident, map_in, sizeof *map_in, N_MAP, NULL, &r);
    double t1 = bench_now();
    int64_t sum = 0;
    for (size_t i = 0; r && i < N_MAP; i++) {
        const void *d;
        size_t n;
        int64_t v;
        if (weft_results_get(r, i, &d, &n) == 0 && n == sizeof v) {
            memcpy(&v, d, sizeof v);
            sum += v;
        }
    }
    weft_results_destroy(r);
    if (rc || sum != (int64_t)N_MAP * (N_MAP - 1) / 2) {
        bench_fail("map_empty: rc %d sum %lld", rc, (long long)sum);
        return -1;
    }
    return (t1 - t0) / N_MAP * 1e6;
}

static unsigned char *payload;

static double run_payload(void)
{
    weft_future *f;
    double t0 = bench_now();
    if (weft_submit_ex(ex, plus_one, payload, PAYLOAD,
                       &(weft_submit_options){.flags = WEFT_SUBMIT_BORROW}, &f))
        return -1;
    const void *d;
    size_t n;
    int rc = weft_future_result(f, WEFT_FOREVER, &d, &n);
    double t1 = bench_now();
    if (getenv("WEFT_PROCESSES_PHASES")) /* against the proxy's line (docs/processes.md) */
        fprintf(stderr, "weft-phases: caller submit_ns %.0f woke_ns %.0f\n", t0 * 1e9, t1 * 1e9);
    bool ok = rc == 0 && n == PAYLOAD;
    for (size_t k = 0; ok && k < PAYLOAD; k += 4099)
        ok = ((const unsigned char *)d)[k] == (unsigned char)(payload[k] + 1);
    weft_future_release(f);
    if (!ok) {
        bench_fail("payload_64mib: wrong bytes back (rc %d)", rc);
        return -1;
    }
    return PAYLOAD / (t1 - t0) / 1e9;
}

/* payload_64mib_shared: the same task on an input already in shared
 * memory, passed as a weft_array_arg (its token, not its bytes): the
 * worker maps the caller's pages, nothing is copied on the way in. */
static weft_array *shared_in;
static weft_array_arg *shared_arg;

static int plus_one_array(weft_ctx *ctx, const void *in, size_t len)
{
    weft_array *a;
    int rc = weft_array_arg_open(in, len, &a);
    if (rc) return weft_ctx_fail(ctx, rc, "weft_array_arg_open: %s", weft_last_error());
    size_t n = weft_array_nbytes(a);
    unsigned char *o = weft_ctx_output(ctx, n);
    if (o) add_one(o, weft_array_data(a), n);
    weft_array_destroy(a);
    return o ? 0 : weft_ctx_fail(ctx, WEFT_ENOMEM, "no output");
}
WEFT_TASK_REGISTER(plus_one_array);

static double run_payload_shared(void)
{
    const void *arg;
    size_t arg_len;
    weft_future *f;
    if (weft_array_arg_bytes(shared_arg, &arg, &arg_len)) return -1;
    double t0 = bench_now();
    if (weft_submit(ex, plus_one_array, arg, arg_len, &f)) return -1;
    const void *d;
    size_t n;
    int rc = weft_future_result(f, WEFT_FOREVER, &d, &n);
    double t1 = bench_now();
    if (getenv("WEFT_PROCESSES_PHASES"))
        fprintf(stderr, "weft-phases: caller shared submit_ns %.0f woke_ns %.0f\n", t0 * 1e9,
                t1 * 1e9);
    const unsigned char *src = weft_array_data(shared_in);
    bool ok = rc == 0 && n == PAYLOAD;
    for (size_t k = 0; ok && k < PAYLOAD; k += 4099)
        ok = ((const unsigned char *)d)[k] == (unsigned char)(src[k] + 1);
    if (ok) ok = ((const unsigned char *)d)[PAYLOAD - 1] == (unsigned char)(src[PAYLOAD - 1] + 1);
    if (rc) fprintf(stderr, "payload_64mib_shared: %s\n", weft_last_error());
    weft_future_release(f);
    if (!ok) {
        bench_fail("payload_64mib_shared: wrong bytes back (rc %d)", rc);
        return -1;
    }
    return PAYLOAD / (t1 - t0) / 1e9;
}

/* the shared input of payload_64mib_shared: the bytes of payload_64mib */
static bool make_shared_input(void)
{
    size_t shape[1] = {PAYLOAD};
    weft_array_options o = {.flags = WEFT_ARRAY_SHARED};
    if (weft_array_create(WEFT_DTYPE_UINT8, 1, shape, &o, &shared_in)) return false;
    memcpy(weft_array_data(shared_in), payload, PAYLOAD);
    if (weft_array_arg_create(ex, shared_in, NULL, &shared_arg)) return false;
    return weft_array_arg_shared(shared_arg); /* a token, not the bytes */
}

static double run_cpu(void)
{
    uint64_t expect = 0;
    double t0 = bench_now();
    for (int i = 0; i < CPU_TASKS; i++) expect += burn(CPU_WORK);
    double t1 = bench_now();
    weft_future *fs[CPU_TASKS];
    for (int i = 0; i < CPU_TASKS; i++)
        if (weft_submit(ex, burn_task, NULL, 0, &fs[i])) return -1;
    uint64_t got = 0;
    for (int i = 0; i < CPU_TASKS; i++) {
        got += (uint64_t)result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double t2 = bench_now();
    if (expect != got || expect == 0) {
        bench_fail("cpu_speedup: results differ");
        return -1;
    }
    return (t1 - t0) / (t2 - t1);
}

/* ---- references: channel ping-pong and memcpy, in this same run ---- */

#define N_PING 20000L

static double run_ping(void)
{
    weft_channel *ch;
    weft_ipc_token t;
    if (weft_channel_create(NULL, &ch) || weft_channel_token(ch, &t)) return -1;
    pid_t p = fork();
    if (p == 0) {
        weft_channel *c;
        if (weft_channel_attach(&t, &c)) _exit(2);
        uint64_t m;
        size_t n;
        for (long i = 0; i <= N_PING; i++) {
            if (weft_channel_recv(c, 60, &m, sizeof m, &n)) _exit(3);
            if (weft_channel_send(c, &m, sizeof m, 60)) _exit(4);
        }
        _exit(0);
    }
    uint64_t m = 0, sum = 0;
    size_t n;
    bool ok =
        p > 0 && weft_channel_send(ch, &m, 8, 60) == 0 && weft_channel_recv(ch, 60, &m, 8, &n) == 0;
    double t0 = bench_now();
    for (long i = 1; ok && i <= N_PING; i++) {
        m = (uint64_t)i;
        ok = weft_channel_send(ch, &m, 8, 60) == 0 && weft_channel_recv(ch, 60, &m, 8, &n) == 0;
        sum += m;
    }
    double dt = bench_now() - t0;
    int st = 0;
    if (p > 0 && (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) ok = false;
    weft_channel_destroy(ch);
    if (!ok || sum != (uint64_t)N_PING * (N_PING + 1) / 2) {
        bench_fail("channel_pingpong: wrong echo or the child failed (status 0x%x)", st);
        return -1;
    }
    return dt / (double)N_PING * 1e6;
}

static unsigned char *copy_dst;

static double run_memcpy(void)
{
    payload[PAYLOAD / 2]++;
    double t0 = bench_now();
    memcpy(copy_dst, payload, PAYLOAD);
    double t1 = bench_now();
    if (copy_dst[PAYLOAD / 2] != payload[PAYLOAD / 2]) {
        bench_fail("memcpy_bandwidth: copy wrong");
        return -1;
    }
    return PAYLOAD / (t1 - t0) / 1e9;
}

/* The payload task's own work (each byte + 1, 64 MiB, warm buffers) in
 * this process: what a round trip of payload_64mib costs at the least
 * besides moving the bytes (GB/s of payload). */
static double run_task_local(void)
{
    double t0 = bench_now();
    add_one(copy_dst, payload, PAYLOAD);
    double t1 = bench_now();
    if (copy_dst[PAYLOAD / 3] != (unsigned char)(payload[PAYLOAD / 3] + 1)) {
        bench_fail("payload_task_local: wrong bytes");
        return -1;
    }
    return PAYLOAD / (t1 - t0) / 1e9;
}

/* ---- processes_idle_cpu ---- */

/* CPU seconds a process has used: /proc/<pid>/schedstat (ns), else the
 * clock ticks of /proc/<pid>/stat; -1 if neither can be read. *ppid: its
 * parent (from stat) when not NULL. */
static double proc_cpu(pid_t pid, pid_t *ppid)
{
    char path[64], buf[1024];
    double cpu = -1;
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long ns;
    if (f) {
        if (fscanf(f, "%llu", &ns) == 1) cpu = (double)ns * 1e-9;
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f) return cpu;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = '\0';
    char *q = strrchr(buf, ')');
    int pp = 0;
    unsigned long ut = 0, stt = 0;
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    if (q &&
        sscanf(q + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &pp, &ut, &stt) == 3) {
        if (ppid) *ppid = pp;
        if (cpu < 0) cpu = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    }
    return cpu;
}

static pid_t idle_pids[3];
static int n_idle_pids;

/* The worker processes (each task of a pair runs 30 ms, so both workers
 * take one) and the fork server, their parent. */
static bool find_idle_pids(void)
{
    for (int round = 0; round < 20 && n_idle_pids < 2; round++) {
        weft_future *fs[2];
        for (int i = 0; i < 2; i++)
            if (weft_submit(ex, pid_task, NULL, 0, &fs[i])) return false;
        for (int i = 0; i < 2; i++) {
            pid_t p = (pid_t)result_i64(fs[i]);
            weft_future_release(fs[i]);
            bool seen = p <= 0;
            for (int k = 0; k < n_idle_pids; k++) seen |= idle_pids[k] == p;
            if (!seen && n_idle_pids < 2) idle_pids[n_idle_pids++] = p;
        }
    }
    if (n_idle_pids < 2) return false;
    pid_t server = 0;
    proc_cpu(idle_pids[0], &server);
    if (server > 1 && server != getpid()) idle_pids[n_idle_pids++] = server;
    return true;
}

static double pool_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* this program: its lanes */
    double sum = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    for (int i = 0; i < n_idle_pids; i++) {
        double c = proc_cpu(idle_pids[i], NULL);
        if (c < 0) return -1;
        sum += c;
    }
    return sum;
}

#define IDLE_S 5

static double run_idle(void)
{
    double c0 = pool_cpu();
    struct timespec d = {IDLE_S, 0};
    while (nanosleep(&d, &d) != 0) {
    }
    double c1 = pool_cpu();
    if (c0 < 0 || c1 < 0) {
        bench_fail("processes_idle_cpu: cannot read the CPU time of the pool's processes");
        return -1;
    }
    return (c1 - c0) / IDLE_S * 100;
}

/* WEFT_PROCESSES_BENCH_ONLY=name,name,...: only those rows (and their
 * anchors) run, e.g. the issue 18 ratios alone:
 * channel_pingpong,submit_roundtrip,memcpy_bandwidth,payload_64mib */
static bool wanted(const char *bench)
{
    const char *only = getenv("WEFT_PROCESSES_BENCH_ONLY");
    if (!only || !*only) return true;
    size_t n = strlen(bench);
    for (const char *p = only; (p = strstr(p, bench)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

static void measure_as(const char *bench, const char *system, const char *unit, double (*run)(void),
                       int reps)
{
    if (!wanted(bench)) return;
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(300, what);
    double s[REPS];
    int k = 0;
    if (run() < 0) return; /* warm-up */
    for (int i = 0; i < reps; i++) {
        double v = run();
        if (v < 0) return;
        s[k++] = v;
    }
    alarm(0);
    bench_report(bench, system, s, k, unit);
    bench_settle(100);
}

static void measure(const char *bench, const char *unit, double (*run)(void), int reps)
{
    measure_as(bench, "weft-processes", unit, run, reps);
}

static void python(const char *bench, const char *system, const char *pysys, const char *mode,
                   long n, const char *unit)
{
    if (!wanted(bench)) return;
    char args[128];
    snprintf(args, sizeof args, "%s %s %ld %d", pysys, mode, n, 3);
    bench_python_report(bench, system, unit, "processes_anchor.py", args, 600);
}

/* WEFT_PROCESSES_BENCH_AB=1: payload_64mib again, in the same run, on
 * executors made with the other ways of copying a large input
 * (WEFT_PROCESSES_INPUT_COPY, docs/processes.md): memcpy by one thread
 * into the input segment (system weft-processes-copy1) and the
 * process_vm_writev/readv path (weft-processes-vm). */
static void payload_ab(void)
{
    const char *ab = getenv("WEFT_PROCESSES_BENCH_AB");
    if (!ab || strcmp(ab, "1") != 0 || !wanted("payload_64mib")) return;
    static const char *mode[] = {"1", "0"};
    static const char *sys[] = {"weft-processes-copy1", "weft-processes-vm"};
    weft_executor *main_ex = ex;
    for (int v = 0; v < 2; v++) {
        setenv("WEFT_PROCESSES_INPUT_COPY", mode[v], 1);
        weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 2};
        if (weft_executor_create(&o, &ex)) {
            bench_fail("create (%s): %s", sys[v], weft_last_error());
            break;
        }
        measure_as("payload_64mib", sys[v], "GB/s", run_payload, REPS);
        weft_executor_destroy(ex);
    }
    unsetenv("WEFT_PROCESSES_INPUT_COPY");
    ex = main_ex;
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) {
        fprintf(stderr, "weft_init: %s\n", weft_last_error());
        return 1;
    }
    bench_begin(argv[0], __FILE__);
    /* the channel reference first, while this program has one thread */
    measure_as("channel_pingpong", "weft-channel", "us/roundtrip", run_ping, REPS);
    weft_options o = {.backend = WEFT_BACKEND_PROCESSES, .workers = 2};
    if (weft_executor_create(&o, &ex)) {
        bench_fail("create: %s", weft_last_error());
        return bench_finish();
    }
    printf("# weft %s, processes backend, 2 worker processes\n", weft_version());
    map_in = malloc(N_MAP * sizeof *map_in);
    payload = malloc(PAYLOAD);
    copy_dst = malloc(PAYLOAD);
    if (!map_in || !payload || !copy_dst) return 1;
    memset(copy_dst, 0, PAYLOAD);
    for (int64_t i = 0; i < N_MAP; i++) map_in[i] = i;
    for (size_t k = 0; k < PAYLOAD; k++) payload[k] = (unsigned char)(k * 7);

    measure("submit_batch", "us/task", run_batch, REPS);
    python("submit_batch", "python-processpool", "processpool", "batch", 20000, "us/task");
    python("submit_batch", "joblib-loky", "loky", "batch", 100000, "us/task");
    python("submit_batch", "joblib-multiprocessing", "multiprocessing", "batch", 100000, "us/task");
    measure("submit_roundtrip", "us/task", run_round, REPS);
    python("submit_roundtrip", "python-processpool", "processpool", "roundtrip", 2000, "us/task");
    measure("map_empty", "us/item", run_map, REPS);
    python("map_empty", "python-processpool", "processpool", "map", 1000000, "us/item");
    measure_as("memcpy_bandwidth", "memcpy", "GB/s", run_memcpy, REPS);
    measure_as("payload_task_local", "in-process", "GB/s", run_task_local, REPS);
    measure("payload_64mib", "GB/s", run_payload, REPS);
    payload_ab();
    if (!wanted("payload_64mib_shared")) {
    } else if (make_shared_input()) {
        measure("payload_64mib_shared", "GB/s", run_payload_shared, REPS);
    } else {
        bench_fail("payload_64mib_shared: cannot make the shared input: %s", weft_last_error());
    }
    python("payload_64mib", "python-processpool", "processpool", "payload", 64, "GB/s");
    measure("cpu_speedup", "x", run_cpu, 3);
    python("cpu_speedup", "python-processpool", "processpool", "cpu", 16, "x");
    python("cpu_speedup", "joblib-loky", "loky", "cpu", 16, "x");
    if (!wanted("processes_idle_cpu")) {
    } else if (find_idle_pids()) {
        printf("# processes_idle_cpu: workers %d %d, fork server %d, and this program\n",
               (int)idle_pids[0], (int)idle_pids[1], n_idle_pids > 2 ? (int)idle_pids[2] : 0);
        measure("processes_idle_cpu", "%core", run_idle, 3);
    } else {
        bench_fail("processes_idle_cpu: cannot find the worker processes' pids");
    }

    static const char *anchors[] = {"python-processpool", "joblib-loky", "joblib-multiprocessing"};
    static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty",
                                    "payload_64mib", "cpu_speedup"};
    for (size_t b = 0; b < sizeof benches / sizeof *benches; b++)
        for (size_t a = 0; a < 3; a++)
            if (bench_get(benches[b], anchors[a]))
                bench_ratio(benches[b], anchors[a], "weft-processes");
    const bench_result *r;
    r = bench_get("submit_batch", "weft-processes");
    bench_target("submit_batch: weft-processes <= 3 us/task", r != NULL, r && r->median <= 3);
    r = bench_get("submit_roundtrip", "weft-processes");
    bench_target("submit_roundtrip: weft-processes <= 20 us", r != NULL, r && r->median <= 20);
    r = bench_get("map_empty", "weft-processes");
    bench_target("map_empty: weft-processes <= 0.2 us/item", r != NULL, r && r->median <= 0.2);
    r = bench_get("payload_64mib", "weft-processes");
    bench_target("payload_64mib: weft-processes >= 1 GB/s", r != NULL, r && r->median >= 1);
    r = bench_get("cpu_speedup", "weft-processes");
    bench_target("cpu_speedup: weft-processes >= 1.85x", r != NULL, r && r->median >= 1.85);
    const bench_result *ping = bench_get("channel_pingpong", "weft-channel");
    r = bench_get("submit_roundtrip", "weft-processes");
    if (r && ping)
        printf("ratio submit_roundtrip weft-processes/channel_pingpong = %.3gx\n",
               r->median / ping->median);
    bench_target("submit_roundtrip: weft-processes <= 5x channel_pingpong", r && ping,
                 r && ping && r->median <= 5 * ping->median);
    const bench_result *mc = bench_get("memcpy_bandwidth", "memcpy");
    r = bench_get("payload_64mib", "weft-processes");
    if (r && mc)
        printf("ratio payload_64mib weft-processes/memcpy_bandwidth = %.3gx\n",
               r->median / mc->median);
    bench_target("payload_64mib: weft-processes >= 0.5x memcpy_bandwidth", r && mc,
                 r && mc && r->median >= 0.5 * mc->median);
    r = bench_get("payload_64mib_shared", "weft-processes");
    if (r && mc)
        printf("ratio payload_64mib_shared weft-processes/memcpy_bandwidth = %.3gx\n",
               r->median / mc->median);
    static const char *ab_sys[] = {"weft-processes-copy1", "weft-processes-vm"};
    for (int v = 0; v < 2; v++)
        if ((r = bench_get("payload_64mib", ab_sys[v])) && mc)
            printf("ratio payload_64mib %s/memcpy_bandwidth = %.3gx\n", ab_sys[v],
                   r->median / mc->median);
    r = bench_get("processes_idle_cpu", "weft-processes");
    bench_target("processes_idle_cpu: weft-processes < 1% of a core", r != NULL,
                 r && r->median < 1);
    free(map_in);
    free(payload);
    free(copy_dst);
    weft_array_arg_destroy(shared_arg);
    weft_array_destroy(shared_in);
    weft_executor_destroy(ex);
    return bench_finish();
}

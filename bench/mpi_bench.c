/* mpi_bench.c : the mpi backend against mpi4py.futures and raw MPI.
 *
 * Run by scripts/run-bench.sh under mpirun (never directly):
 *   mpirun -n 3 mpi_bench            rank 0 + 2 worker ranks: submit_batch,
 *                                    submit_roundtrip, map_empty, the raw
 *                                    MPI_Send/MPI_Recv round trip, and
 *                                    mpi_hybrid_speedup (16 tasks of ~30 ms
 *                                    on 1 worker rank x 2 threads against
 *                                    the serial backend, run by run, with
 *                                    two raw pthreads as the machine's
 *                                    ceiling and the CPU time of every
 *                                    thread of every rank), mpi_idle_cpu
 *   mpirun -n 9 mpi_bench --dispatch rank 0 feeding 8 (oversubscribed)
 *                                    worker ranks: mpi_dispatch_rate
 * Systems: weft-mpi, mpi-raw (a bare ping-pong between ranks 0 and 1, the
 * floor of any round trip), mpi4py-futures (samples measured by
 * bench/mpi_anchor.py in the same bench run, read from the file named by
 * WEFT_MPI_ANCHOR: run-bench.sh runs it just before, since mpirun cannot
 * be started from inside an MPI job).
 *
 * The raw round trip is measured before weft_init: the program initializes
 * MPI itself (weft_init then uses it and leaves MPI_Finalize to us).
 * Executors are created and warmed outside the timed blocks. Every result
 * is checked by a sum.
 *
 * CPU time (robust to a busy machine, where wall times are not): rank 0
 * finds the worker ranks' pids (a task returns getpid()) and reads every
 * thread's /proc/<pid>/task/<tid>/schedstat before and after a timed
 * block. mpi_hybrid_* then splits the hybrid run's CPU into the rank's task
 * threads (the tids the tasks return) and everything else (rank 0's
 * threads, the rank's main thread, the idle rank): mpi_hybrid_overhead_cpu.
 * mpi_idle_cpu is the CPU of all ranks over 5 s with an executor open and
 * nothing to do.
 *
 * WEFT_MPI_BENCH_ONLY=name,name,... runs only those rows of the 3-rank run
 * (e.g. submit_roundtrip,mpi_hybrid_speedup,mpi_idle_cpu); the raw round
 * trip always runs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"

#if __has_include(<mpi.h>)
#include <mpi.h>
#define HAVE_MPI_H 1
#endif

#define REPS 5

static weft_executor *ex;

static int ident(weft_ctx *ctx, const void *in, size_t len)
{
    if (len == 8) return weft_ctx_set_output(ctx, in, 8);
    return 0;
}
WEFT_TASK_REGISTER(ident);

static int empty(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    BENCH_BARRIER();
    return 0;
}
WEFT_TASK_REGISTER(empty);

static int64_t result_i64(weft_future *f)
{
    const void *d;
    size_t n;
    int64_t v = -1;
    if (weft_future_result(f, WEFT_FOREVER, &d, &n) == 0 && n == 8) memcpy(&v, d, 8);
    return v;
}

static double run_batch(long n)
{
    weft_future **fs = malloc((size_t)n * sizeof *fs);
    if (!fs) return -1;
    double t0 = bench_now();
    for (int64_t i = 0; i < n; i++)
        if (weft_submit(ex, ident, &i, sizeof i, &fs[i])) return -1;
    int64_t sum = 0;
    for (long i = 0; i < n; i++) {
        sum += result_i64(fs[i]);
        weft_future_release(fs[i]);
    }
    double dt = bench_now() - t0;
    free(fs);
    if (sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("submit_batch: wrong sum");
        return -1;
    }
    return dt / (double)n * 1e6;
}

static double run_roundtrip(long n)
{
    int64_t sum = 0;
    double t0 = bench_now();
    for (int64_t i = 0; i < n; i++) {
        weft_future *f;
        if (weft_submit(ex, ident, &i, sizeof i, &f)) return -1;
        sum += result_i64(f);
        weft_future_release(f);
    }
    double dt = bench_now() - t0;
    if (sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("submit_roundtrip: wrong sum");
        return -1;
    }
    return dt / (double)n * 1e6;
}

static int64_t *map_in;

static double run_map(long n)
{
    weft_results *r = NULL;
    double t0 = bench_now();
    int rc = weft_map(ex, ident, map_in, sizeof *map_in, (size_t)n, NULL, &r);
    double dt = bench_now() - t0;
    int64_t sum = 0;
    for (long i = 0; rc == 0 && i < n; i++) {
        const void *d;
        if (weft_results_get(r, (size_t)i, &d, NULL) == 0) {
            int64_t v;
            memcpy(&v, d, 8);
            sum += v;
        }
    }
    weft_results_destroy(r);
    if (rc || sum != (int64_t)n * (n - 1) / 2) {
        bench_fail("map_empty: rc %d or wrong sum", rc);
        return -1;
    }
    return dt / (double)n * 1e6;
}

/* tasks per second through submit (batch of n, empty tasks) */
static double run_dispatch_submit(long n)
{
    double us = run_batch(n);
    return us > 0 ? 1e6 / us : -1;
}

/* items per second through map (n empty items) */
static double run_dispatch_map(long n)
{
    double us = run_map(n);
    return us > 0 ? 1e6 / us : -1;
}

static void measure(const char *bench, const char *unit, double (*run)(long), long n)
{
    char what[96];
    snprintf(what, sizeof what, "bench=%s system=weft-mpi", bench);
    bench_watchdog(300, what);
    double s[REPS];
    int k = 0;
    if (run(n / 10 > 0 ? n / 10 : 1) < 0) return; /* warm-up */
    for (int i = 0; i < REPS; i++) {
        double v = run(n);
        if (v < 0) return;
        s[k++] = v;
    }
    alarm(0);
    bench_report(bench, "weft-mpi", s, k, unit);
    bench_settle(100);
}

/* WEFT_MPI_BENCH_ONLY=name,name,...: only those rows run (see the top) */
static bool wanted(const char *bench)
{
    const char *only = getenv("WEFT_MPI_BENCH_ONLY");
    if (!only || !*only) return true;
    size_t n = strlen(bench);
    for (const char *p = only; (p = strstr(p, bench)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

/* ---- CPU time of every thread of every rank (this machine's ranks) ---- */

#define MAX_RANKS 16
#define MAX_THREADS 512

static pid_t rank_pid[MAX_RANKS]; /* [0]: this process; [r]: worker rank r */
static int nrank_pids;

typedef struct tcpu {
    pid_t pid, tid;
    double s; /* seconds on a CPU */
} tcpu;

typedef struct snap {
    int n;
    tcpu t[MAX_THREADS];
} snap;

/* Seconds thread tid of pid has run: /proc/<pid>/task/<tid>/schedstat
 * (ns), -1 if it cannot be read. */
static double thread_cpu(pid_t pid, pid_t tid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long ns = 0;
    int ok = fscanf(f, "%llu", &ns) == 1;
    fclose(f);
    return ok ? (double)ns * 1e-9 : -1;
}

/* Every thread of every known rank, with its CPU time so far. */
static void snap_take(snap *s)
{
    s->n = 0;
    for (int r = 0; r < nrank_pids; r++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)rank_pid[r]);
        DIR *d = opendir(path);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) && s->n < MAX_THREADS) {
            pid_t tid = (pid_t)atoi(e->d_name);
            if (tid <= 0) continue;
            double c = thread_cpu(rank_pid[r], tid);
            if (c >= 0) s->t[s->n++] = (tcpu){rank_pid[r], tid, c};
        }
        closedir(d);
    }
}

/* The CPU thread t of snapshot b used since snapshot a (all of it if it
 * started after a). */
static double snap_delta(const snap *a, const tcpu *t)
{
    for (int i = 0; i < a->n; i++)
        if (a->t[i].pid == t->pid && a->t[i].tid == t->tid) return t->s - a->t[i].s;
    return t->s;
}

/* A worker rank's pid: held 20 ms so that a pair of them lands on two ranks */
static int pid_hold(weft_ctx *ctx, const void *in, size_t len)
{
    (void)in, (void)len;
    struct timespec ts = {0, 20000000L};
    nanosleep(&ts, NULL);
    int64_t p = getpid();
    return weft_ctx_set_output(ctx, &p, sizeof p);
}
WEFT_TASK_REGISTER(pid_hold);

/* Fills rank_pid with this process and the pids of ex's worker ranks (all
 * on this machine). False if not all of them were found. */
static bool find_rank_pids(int ranks)
{
    rank_pid[0] = getpid();
    nrank_pids = 1;
    if (ranks >= MAX_RANKS) ranks = MAX_RANKS - 1;
    for (int round = 0; round < 20 && nrank_pids < ranks + 1; round++) {
        weft_future *fs[MAX_RANKS];
        int k = 0;
        for (; k < ranks; k++)
            if (weft_submit(ex, pid_hold, NULL, 0, &fs[k])) break;
        for (int i = 0; i < k; i++) {
            pid_t p = (pid_t)result_i64(fs[i]);
            weft_future_release(fs[i]);
            bool seen = p <= 0;
            for (int j = 0; j < nrank_pids; j++) seen |= rank_pid[j] == p;
            if (!seen && nrank_pids < MAX_RANKS) rank_pid[nrank_pids++] = p;
        }
    }
    return nrank_pids == ranks + 1;
}

/* ---- mpi_idle_cpu: all ranks, an executor open and nothing to do ---- */

#define IDLE_S 5

static double run_idle(void)
{
    bench_settle(300); /* past the spin and yield windows of the last run */
    snap *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return -1;
    }
    snap_take(a);
    struct timespec d = {IDLE_S, 0};
    while (nanosleep(&d, &d) != 0) {
    }
    snap_take(b);
    double per[MAX_RANKS] = {0}, all = 0;
    for (int i = 0; i < b->n; i++) {
        double c = snap_delta(a, &b->t[i]);
        all += c;
        for (int r = 0; r < nrank_pids; r++)
            if (rank_pid[r] == b->t[i].pid) per[r] += c;
    }
    printf("# idle %d s: %% of a core per rank:", IDLE_S);
    for (int r = 0; r < nrank_pids; r++) printf(" rank%d %.3f", r, per[r] / IDLE_S * 100);
    printf("\n");
    free(a), free(b);
    return all / IDLE_S * 100;
}

/* ---- hybrid: 1 worker rank x 2 threads on coarse tasks ---- */

#define COARSE_TASKS 16

/* a CPU-bound loop the compiler cannot shorten */
static uint64_t coarse_work(uint64_t x, uint64_t n)
{
    uint64_t y = 0;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        y += x * i;
    }
    return y;
}

/* output: the sum's term, and where it ran (for the CPU split) */
typedef struct coarse_out {
    uint64_t y;
    int32_t pid, tid;
    uint64_t t0, t1; /* CLOCK_MONOTONIC ns: the ranks share this machine's clock */
} coarse_out;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int coarse(weft_ctx *ctx, const void *in, size_t len)
{
    uint64_t a[2];
    if (len != sizeof a) return WEFT_EINVAL;
    memcpy(a, in, sizeof a);
    uint64_t t0 = mono_ns();
    uint64_t y = coarse_work(a[0], a[1]);
    coarse_out o = {y, (int32_t)getpid(), (int32_t)syscall(SYS_gettid), t0, mono_ns()};
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(coarse);

static uint64_t coarse_in[COARSE_TASKS][2];

/* the threads that ran the last run's tasks, and each task's times */
static pid_t task_pid, task_tids[8];
static int ntask_tids;
static coarse_out task_out[COARSE_TASKS];
static uint64_t map_t0, map_t1; /* the last run's weft_map call */

/* Seconds for the COARSE_TASKS items on e; *sum gets the outputs' sum. */
static double run_coarse(weft_executor *e, uint64_t *sum)
{
    weft_results *r = NULL;
    map_t0 = mono_ns();
    double t0 = bench_now();
    int rc = weft_map(e, coarse, coarse_in, sizeof coarse_in[0], COARSE_TASKS, NULL, &r);
    double dt = bench_now() - t0;
    map_t1 = mono_ns();
    *sum = 0;
    ntask_tids = 0;
    for (size_t i = 0; rc == 0 && i < COARSE_TASKS; i++) {
        const void *d;
        size_t n = 0;
        coarse_out o;
        if (weft_results_get(r, i, &d, &n) != 0 || n != sizeof o) rc = WEFT_ETASK;
        if (rc) break;
        memcpy(&o, d, sizeof o);
        task_out[i] = o;
        *sum += o.y;
        task_pid = o.pid;
        bool seen = false;
        for (int k = 0; k < ntask_tids; k++) seen |= task_tids[k] == o.tid;
        if (!seen && ntask_tids < 8) task_tids[ntask_tids++] = o.tid;
    }
    weft_results_destroy(r);
    return rc ? -1 : dt;
}

/* The machine's ceiling: two raw pthreads take the tasks from a counter. */
static _Atomic int pt_next;
static uint64_t pt_out[COARSE_TASKS];

static void *pt_run(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&pt_next, 1)) < COARSE_TASKS;)
        pt_out[i] = coarse_work(coarse_in[i][0], coarse_in[i][1]);
    return NULL;
}

static double run_pthreads(uint64_t *sum)
{
    pthread_t t[2];
    atomic_store(&pt_next, 0);
    double t0 = bench_now();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, pt_run, NULL)) return -1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    double dt = bench_now() - t0;
    *sum = 0;
    for (int i = 0; i < COARSE_TASKS; i++) *sum += pt_out[i];
    return dt;
}

/* Where the hybrid run's CPU went (seconds, between snapshots a and b). */
typedef struct cpu_split {
    double tasks;   /* the worker rank's threads that ran tasks */
    double rmain;   /* the worker rank's main thread (MPI, answers) */
    double rother;  /* its other threads (idle local workers, MPI's) */
    double r0main;  /* rank 0's main thread (the map's caller) */
    double r0other; /* rank 0's other threads (the dispatchers) */
    double others;  /* the other ranks (idle) */
} cpu_split;

static cpu_split split_cpu(const snap *a, const snap *b)
{
    cpu_split s = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < b->n; i++) {
        const tcpu *t = &b->t[i];
        double c = snap_delta(a, t);
        bool task = false;
        for (int k = 0; k < ntask_tids; k++) task |= t->pid == task_pid && t->tid == task_tids[k];
        if (task)
            s.tasks += c;
        else if (t->pid == task_pid)
            *(t->tid == t->pid ? &s.rmain : &s.rother) += c;
        else if (t->pid == rank_pid[0])
            *(t->tid == t->pid ? &s.r0main : &s.r0other) += c;
        else
            s.others += c;
    }
    return s;
}

/* Where the last hybrid run's wall time went, from its tasks' own times
 * (ms): from the map's call to the first task's start, the gaps between
 * one thread's tasks, how much later one thread ended than the other, and
 * from the last task's end to the map's return. */
static void print_timeline(int run)
{
    double start = 1e300, end = 0, gaps = 0, busy = 0, first_end = 1e300;
    char counts[64] = "";
    for (int k = 0; k < ntask_tids; k++) {
        double last = -1, tend = 0;
        int cnt = 0;
        /* this thread's tasks in start order (16 at most: a selection) */
        for (;;) {
            int nx = -1;
            for (int i = 0; i < COARSE_TASKS; i++)
                if (task_out[i].tid == task_tids[k] && (double)task_out[i].t0 > last &&
                    (nx < 0 || task_out[i].t0 < task_out[nx].t0))
                    nx = i;
            if (nx < 0) break;
            double a = ((double)task_out[nx].t0 - (double)map_t0) * 1e-6;
            double b = ((double)task_out[nx].t1 - (double)map_t0) * 1e-6;
            if (a < start) start = a;
            if (tend > 0) gaps += a - tend;
            busy += b - a;
            tend = b;
            last = (double)task_out[nx].t0;
            cnt++;
        }
        size_t l = strlen(counts);
        snprintf(counts + l, sizeof counts - l, "%s%d", k ? "+" : "", cnt);
        if (tend > end) end = tend;
        if (tend < first_end) first_end = tend;
    }
    double wall = ((double)map_t1 - (double)map_t0) * 1e-6;
    printf("# hybrid run %d timeline (ms): wall %.2f = first task starts +%.2f, tasks per "
           "thread %s, busy %.1f (%.2f per task), gaps between a thread's tasks %.2f in all, "
           "one thread ends %.2f before the other, map returns %.2f after the last task\n",
           run, wall, start, counts, busy, busy / COARSE_TASKS, gaps, end - first_end, wall - end);
}

/* mpi_hybrid_speedup: serial time over the time of one worker rank with 2
 * threads (WEFT_MPI_THREADS=2's mode), on 16 tasks of ~30 ms each, each
 * sample from a serial run, a hybrid run and a run on two raw pthreads back
 * to back. Besides the times, the CPU of every thread (see the top): the
 * task threads' CPU against the serial run's (the same work: > 1 means the
 * tasks ran slower side by side, which is the machine, not weft), the
 * share of 2 cores they got, and what everything else took. */
static void measure_hybrid(void)
{
    bench_watchdog(300, "bench=mpi_hybrid_speedup system=weft-mpi");
    double t0 = bench_now();
    volatile uint64_t sink = coarse_work(1, 1u << 22);
    (void)sink;
    double per = (bench_now() - t0) / (double)(1u << 22);
    uint64_t n = (uint64_t)(0.03 / (per > 0 ? per : 1e-9));
    for (int i = 0; i < COARSE_TASKS; i++) {
        coarse_in[i][0] = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        coarse_in[i][1] = n;
    }
    weft_options so = {.backend = WEFT_BACKEND_SERIAL};
    weft_options ho = {.backend = WEFT_BACKEND_MPI, .workers = 1, .mpi.threads = 2};
    weft_executor *ser = NULL, *hyb = NULL;
    snap *sn = malloc(4 * sizeof *sn);
    if (!sn || weft_executor_create(&so, &ser) || weft_executor_create(&ho, &hyb)) {
        bench_skip("mpi_hybrid_speedup", "weft-mpi", sn ? weft_last_error() : "out of memory");
        weft_executor_destroy(ser);
        free(sn);
        return;
    }
    printf("# hybrid: %d tasks of %.1f ms on 1 worker rank x 2 threads\n", COARSE_TASKS,
           per * (double)n * 1e3);
    uint64_t s1, s2, s3;
    double ts[REPS], th[REPS], tp[REPS], sp[REPS], spp[REPS];
    double cr[REPS], busy[REPS], over[REPS];
    int k = 0;
    if (run_coarse(hyb, &s2) < 0) bench_fail("mpi_hybrid_speedup: the warm-up failed");
    for (int i = 0; i < REPS; i++) {
        snap_take(&sn[0]);
        ts[k] = run_coarse(ser, &s1);
        snap_take(&sn[1]);
        th[k] = run_coarse(hyb, &s2);
        snap_take(&sn[2]);
        tp[k] = run_pthreads(&s3);
        if (ts[k] < 0 || th[k] < 0 || tp[k] < 0 || s1 != s2 || s1 != s3) {
            bench_fail("mpi_hybrid_speedup: a run failed or the sums differ");
            break;
        }
        print_timeline(i);
        sp[k] = ts[k] / th[k];
        spp[k] = ts[k] / tp[k];
        cpu_split ser_cpu = split_cpu(&sn[0], &sn[1]);
        cpu_split c = split_cpu(&sn[1], &sn[2]);
        double other = c.rmain + c.rother + c.r0main + c.r0other + c.others;
        cr[k] = ser_cpu.r0main > 0 ? c.tasks / ser_cpu.r0main : 0;
        busy[k] = c.tasks / (2 * th[k]) * 100;
        over[k] = other / th[k] * 100;
        printf("# hybrid run %d: serial %.3f s (cpu %.3f s), hybrid %.3f s, pthreads %.3f s; "
               "hybrid cpu ms: %d task threads %.1f, rank main %.2f, rank other %.2f, "
               "rank0 main %.2f, rank0 other %.2f, idle ranks %.2f\n",
               i, ts[k], ser_cpu.r0main, th[k], tp[k], ntask_tids, c.tasks * 1e3, c.rmain * 1e3,
               c.rother * 1e3, c.r0main * 1e3, c.r0other * 1e3, c.others * 1e3);
        k++;
    }
    alarm(0);
    weft_executor_destroy(hyb);
    weft_executor_destroy(ser);
    free(sn);
    if (k == 0) return;
    bench_report("mpi_hybrid_coarse", "weft-serial", ts, k, "s");
    bench_report("mpi_hybrid_coarse", "weft-mpi", th, k, "s");
    bench_report("mpi_hybrid_coarse", "pthreads", tp, k, "s");
    bench_report("mpi_hybrid_speedup", "weft-mpi", sp, k, "x");
    bench_report("mpi_hybrid_speedup", "pthreads", spp, k, "x");
    bench_report("mpi_hybrid_task_cpu", "weft-mpi", cr, k, "ratio");
    bench_report("mpi_hybrid_task_busy", "weft-mpi", busy, k, "%");
    bench_report("mpi_hybrid_overhead_cpu", "weft-mpi", over, k, "%core");
    const bench_result *r = bench_get("mpi_hybrid_speedup", "weft-mpi");
    if (r)
        bench_target("mpi_hybrid_speedup >= 1.8x (1 worker rank x 2 threads)", 1, r->median >= 1.8);
    bench_settle(100);
}

/* mpi4py.futures samples from mpi_anchor.py's output file */
static void read_anchor(void)
{
    const char *path = getenv("WEFT_MPI_ANCHOR");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f) {
        bench_skip("submit_batch", "mpi4py-futures", "no WEFT_MPI_ANCHOR file (run-bench.sh)");
        return;
    }
    static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty"};
    static const char *units[] = {"us/task", "us/task", "us/item"};
    double s[3][BENCH_MAX_SAMPLES];
    int n[3] = {0, 0, 0};
    char line[256], name[64];
    double v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "sample %63s %lf", name, &v) == 2) {
            for (int b = 0; b < 3; b++)
                if (!strcmp(name, benches[b]) && n[b] < BENCH_MAX_SAMPLES) s[b][n[b]++] = v;
        } else if (!strncmp(line, "FAIL", 4)) {
            bench_fail("mpi_anchor.py: %s", line);
        }
    }
    fclose(f);
    for (int b = 0; b < 3; b++) {
        if (n[b])
            bench_report(benches[b], "mpi4py-futures", s[b], n[b], units[b]);
        else
            bench_skip(benches[b], "mpi4py-futures", "mpi_anchor.py gave no samples");
    }
}

#ifdef HAVE_MPI_H
/* raw MPI_Send/MPI_Recv round trip between ranks 0 and 1, 8 bytes (us) */
static double raw_roundtrip(int rank, long n)
{
    int64_t x = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (rank == 0) {
            MPI_Send(&x, 8, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(&x, 8, MPI_BYTE, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(&x, 8, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            x++;
            MPI_Send(&x, 8, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
        }
    }
    double dt = bench_now() - t0;
    if (rank == 0 && x != n) bench_fail("mpi-raw: wrong count");
    return dt / (double)n * 1e6;
}
#endif

int main(int argc, char **argv)
{
    bool dispatch = argc > 1 && strcmp(argv[1], "--dispatch") == 0;
#ifdef HAVE_MPI_H
    int provided, rank = 0, size = 1;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double raw[REPS];
    if (!dispatch && size >= 2) {
        raw_roundtrip(rank, 10000); /* warm-up */
        for (int i = 0; i < REPS; i++) raw[i] = raw_roundtrip(rank, 100000);
    }
#endif
    if (weft_init(&argc, &argv)) { /* ranks 1.. become workers here */
        fprintf(stderr, "weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* the --dispatch run writes its own file (mpi_bench_dispatch.json), never
     * the 3-rank run's mpi_bench.json */
    bench_begin(dispatch ? "mpi_bench_dispatch" : argv[0], __FILE__);
    weft_options o = {.backend = WEFT_BACKEND_MPI};
    if (weft_executor_create(&o, &ex)) {
        bench_skip(dispatch ? "mpi_dispatch_rate" : "submit_batch", "weft-mpi", weft_last_error());
        weft_finalize();
#ifdef HAVE_MPI_H
        MPI_Finalize();
#endif
        return bench_finish();
    }
    int workers = weft_executor_workers(ex);
    printf("# weft %s, mpi backend, %d worker ranks\n", weft_version(), workers);
    map_in = malloc(2000000 * sizeof *map_in);
    if (!map_in) return 1;
    for (int64_t i = 0; i < 2000000; i++) map_in[i] = i;

    if (dispatch) {
        measure("mpi_dispatch_rate", "tasks/s", run_dispatch_map, 2000000);
        measure("mpi_dispatch_rate_submit", "tasks/s", run_dispatch_submit, 200000);
        const bench_result *r = bench_get("mpi_dispatch_rate", "weft-mpi");
        if (r)
            bench_target("mpi_dispatch_rate >= 1M tasks/s (map, 8 worker ranks)", 1,
                         r->median >= 1e6);
    } else {
#ifdef HAVE_MPI_H
        if (size >= 2) bench_report("submit_roundtrip", "mpi-raw", raw, REPS, "us/task");
#endif
        if (wanted("submit_batch")) measure("submit_batch", "us/task", run_batch, 200000);
        if (wanted("submit_roundtrip"))
            measure("submit_roundtrip", "us/task", run_roundtrip, 20000);
        if (wanted("map_empty")) measure("map_empty", "us/item", run_map, 2000000);
        read_anchor();
        static const char *benches[] = {"submit_batch", "submit_roundtrip", "map_empty"};
        for (int b = 0; b < 3; b++)
            if (bench_get(benches[b], "mpi4py-futures"))
                bench_ratio(benches[b], "mpi4py-futures", "weft-mpi");
        const bench_result *r;
        if ((r = bench_get("submit_batch", "weft-mpi")))
            bench_target("submit_batch <= 5 us/task", 1, r->median <= 5);
        if ((r = bench_get("submit_roundtrip", "weft-mpi")))
            bench_target("submit_roundtrip <= 10 us/task", 1, r->median <= 10);
        if ((r = bench_get("map_empty", "weft-mpi")))
            bench_target("map_empty <= 0.2 us/item", 1, r->median <= 0.2);
        const bench_result *raw_rt = bench_get("submit_roundtrip", "mpi-raw");
        if ((r = bench_get("submit_roundtrip", "weft-mpi")) && raw_rt)
            bench_target("submit_roundtrip <= 1.5x the raw MPI round trip of this run", 1,
                         r->median <= 1.5 * raw_rt->median);
        bool pids = find_rank_pids(workers);
        if (!pids) bench_fail("cannot find the worker ranks' pids (CPU times are partial)");
        if (workers >= 1 && wanted("mpi_hybrid_speedup")) measure_hybrid();
        if (wanted("mpi_idle_cpu")) {
            printf("# mpi_idle_cpu: every thread of rank 0 and of %d worker ranks, an "
                   "executor open, %d s\n",
                   nrank_pids - 1, IDLE_S);
            bench_watchdog(60, "bench=mpi_idle_cpu system=weft-mpi");
            double idle[3];
            int k = 0;
            while (k < 3 && (idle[k] = run_idle()) >= 0) k++;
            alarm(0);
            bench_report("mpi_idle_cpu", "weft-mpi", idle, k, "%core");
            if ((r = bench_get("mpi_idle_cpu", "weft-mpi")))
                bench_target("mpi_idle_cpu < 1% of a core (rank 0 and the idle worker ranks)", pids,
                             r->median < 1);
        }
    }
    weft_executor_destroy(ex);
    free(map_in);
    int st = bench_finish();
    weft_finalize();
#ifdef HAVE_MPI_H
    MPI_Finalize();
#endif
    return st;
}

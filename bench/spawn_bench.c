/* spawn_bench : starting a child process and waiting for it, with weft_run
 * against raw fork+exec, raw posix_spawn and Python's subprocess.run.
 *
 *   spawn_true          spawn + wait of /bin/true, one at a time (us/spawn: the
 *                       median spawn of a round of 300, median over rounds)
 *   spawn_true_8threads 8 threads spawning /bin/true at once, each one at a
 *                       time (us/spawn: the system's share of the wall time
 *                       per spawn, see paired_eight_threads)
 *
 * Systems: weft (weft_run with default options: stdio inherited, no
 * timeout), posix-spawn (posix_spawn + waitpid, no attributes),
 * fork-exec (fork, execv in the child, waitpid), python-subprocess
 * (subprocess.run(["/bin/true"]) in bench/spawn_anchor.py under
 * /usr/bin/python3; 8 threads through ThreadPoolExecutor(8)).
 *
 * The systems are measured in rounds, one sample of each per round. Within
 * a round the three C systems take turns spawn by spawn (paired_round,
 * paired_eight_threads), so that the load of this shared machine, which
 * moves by more than the systems differ, hits them alike; Python (another
 * process) runs before or after them, alternately. Every child's exit
 * status is checked (0), and the number of spawns is counted.
 *
 * Targets (issue 5): weft at least 3x cheaper per spawn than
 * subprocess.run, and no slower than the faster of fork+exec and
 * posix_spawn. The first is bounded by the machine: nothing that starts
 * /bin/true can be cheaper than raw posix_spawn, so the line "bound" prints
 * python-subprocess / the fastest raw C -- the best ratio any spawner could
 * reach here. */
#define _GNU_SOURCE
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "bench.h"
#include "weft.h"

#define ROUNDS 9
#define N_ONE 300 /* spawns per sample, one at a time */
#define N_MT 400  /* spawns per sample over 8 threads */
#define THREADS 8
#define NSYS 4

extern char **environ;
static char *const true_argv[] = {"/bin/true", NULL};
static atomic_long spawned, failed;

typedef int (*spawn_fn)(void);

/* Same-round ratios raw system / weft, per bench (0 spawn_true, 1 8threads). */
static double paired_ratio[2][NSYS];

static int spawn_weft(void)
{
    weft_run_result r;
    int rc = weft_run((const char *const *)true_argv, NULL, &r);
    int ok = rc == 0 && r.exit_code == 0;
    weft_run_result_fini(&r);
    return ok ? 0 : -1;
}

static int spawn_posix(void)
{
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ) != 0) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int spawn_fork(void)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv("/bin/true", true_argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void count(int rc)
{
    if (rc == 0)
        atomic_fetch_add(&spawned, 1);
    else
        atomic_fetch_add(&failed, 1);
}

/* One sample: `n` spawns one after another, us per spawn. */
static double one_at_a_time(spawn_fn fn, int n)
{
    double t0 = bench_now();
    for (int i = 0; i < n; i++) count(fn());
    return (bench_now() - t0) / n * 1e6;
}

/* spawn_true_8threads, paired: THREADS threads, each spawning N_MT/THREADS
 * times with every C system in turn (rotating order), timing each spawn.
 * While all threads are busy the wall time is the sum of all spawn times /
 * THREADS, so system k's share per spawn is sum_k / THREADS / count_k: its
 * cost per spawn in throughput terms, measured under exactly the same
 * concurrency as the others. */
struct mt_arg {
    const spawn_fn *fns;
    int nfn, n, id;
    double sum[NSYS];
};

static void *mt_thread(void *arg)
{
    struct mt_arg *a = arg;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < a->nfn; j++) {
            int k = (i + j + a->id) % a->nfn;
            double t0 = bench_now();
            count(a->fns[k]());
            a->sum[k] += bench_now() - t0;
        }
    return NULL;
}

/* One round: out[k] = us per spawn of system k. @return 0, -1 on failure. */
static int paired_eight_threads(const spawn_fn *fns, int nfn, int n, double *out)
{
    pthread_t th[THREADS];
    struct mt_arg a[THREADS];
    int started = 0;
    for (; started < THREADS; started++) {
        a[started] = (struct mt_arg){.fns = fns, .nfn = nfn, .n = n / THREADS, .id = started};
        if (pthread_create(&th[started], NULL, mt_thread, &a[started]) != 0) break;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (started < THREADS) return -1;
    for (int k = 0; k < nfn; k++) {
        double sum = 0;
        for (int i = 0; i < THREADS; i++) sum += a[i].sum[k];
        out[k] = sum / THREADS / (double)(a[0].n * THREADS) * 1e6;
    }
    return 0;
}

/* One Python sample (the script's own timing of `n` spawns). */
static double python_sample(const char *mode, int n)
{
    char args[64];
    snprintf(args, sizeof args, "%s %d 1", mode, n);
    double s[2];
    int k = bench_python("spawn_anchor.py", args, s, 2);
    return k >= 1 ? s[0] : (k == -1 ? -2 : -1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One round of spawn_true for the three C systems: N_ONE iterations, each
 * spawning once with every system in rotating order and timing each spawn
 * alone, so that the systems share the machine's state spawn by spawn.
 * out[k] = the median spawn time of system k in us: on a shared machine a
 * few spawns in a round are delayed by other work many times over, and a
 * mean would measure them rather than the spawner. */
static void paired_round(const spawn_fn *fns, int nfn, double *out)
{
    static double t[NSYS][N_ONE];
    for (int i = 0; i < N_ONE; i++)
        for (int j = 0; j < nfn; j++) {
            int k = (i + j) % nfn;
            double t0 = bench_now();
            count(fns[k]());
            t[k][i] = bench_now() - t0;
        }
    for (int k = 0; k < nfn; k++) {
        qsort(t[k], N_ONE, sizeof t[k][0], cmp_double);
        out[k] = 0.5 * (t[k][N_ONE / 2 - 1] + t[k][N_ONE / 2]) * 1e6;
    }
}

static void run_bench(const char *bench, bool mt)
{
    static const char *names[NSYS] = {"weft", "posix-spawn", "fork-exec", "python-subprocess"};
    static const spawn_fn fns[NSYS - 1] = {spawn_weft, spawn_posix, spawn_fork};
    double s[NSYS][ROUNDS];
    double paired[NSYS][ROUNDS]; /* same-round ratio system k / weft */
    int n[NSYS] = {0}, npaired = 0;
    bool py_missing = false;
    char what[128];
    snprintf(what, sizeof what, "bench=%s", bench);
    bench_watchdog(600, what);
    /* warm-up: page cache, the dynamic loader's files, Python's imports */
    for (int k = 0; k < NSYS - 1; k++) one_at_a_time(fns[k], 20);
    for (int round = 0; round < ROUNDS; round++) {
        /* the C systems (paired) and Python take turns going first */
        for (int half = 0; half < 2; half++) {
            if ((round + half) % 2 == 0) {
                double v[NSYS];
                if (mt ? paired_eight_threads(fns, NSYS - 1, N_MT, v) != 0
                       : (paired_round(fns, NSYS - 1, v), 0)) {
                    bench_fail("%s: cannot start threads", bench);
                    continue;
                }
                for (int k = 0; k < NSYS - 1; k++) s[k][n[k]++] = v[k];
                for (int k = 1; k < NSYS - 1; k++) paired[k][npaired] = v[k] / v[0];
                npaired++;
            } else if (!py_missing) {
                double v =
                    python_sample(mt ? "spawn_true_8threads" : "spawn_true", mt ? N_MT : N_ONE);
                if (v == -2)
                    py_missing = true;
                else if (v < 0)
                    bench_fail("%s system=%s: a sample failed", bench, names[NSYS - 1]);
                else
                    s[NSYS - 1][n[NSYS - 1]++] = v;
            }
            bench_settle(50);
        }
    }
    alarm(0);
    int slot = mt ? 1 : 0;
    for (int k = 1; k < NSYS - 1 && npaired > 0; k++) {
        qsort(paired[k], (size_t)npaired, sizeof paired[k][0], cmp_double);
        double m = npaired % 2 ? paired[k][npaired / 2]
                               : 0.5 * (paired[k][npaired / 2 - 1] + paired[k][npaired / 2]);
        paired_ratio[slot][k] = m;
        printf("paired %s %s/weft = %.3gx (median over %d rounds of the same-round ratio, range "
               "%.3g-%.3g; >1: weft is faster)\n",
               bench, names[k], m, npaired, paired[k][0], paired[k][npaired - 1]);
    }
    for (int k = 0; k < NSYS; k++) {
        if (n[k] > 0)
            bench_report(bench, names[k], s[k], n[k], "us/spawn");
        else if (k == NSYS - 1 && py_missing)
            bench_skip(bench, names[k], "/usr/bin/python3 not found");
    }
}

static void targets(const char *bench, int slot)
{
    const bench_result *w = bench_get(bench, "weft");
    const bench_result *ps = bench_get(bench, "posix-spawn");
    const bench_result *fe = bench_get(bench, "fork-exec");
    const bench_result *py = bench_get(bench, "python-subprocess");
    bench_ratio(bench, "python-subprocess", "weft");
    double raw = ps && fe ? (ps->median < fe->median ? ps->median : fe->median) : 0;
    if (py && raw > 0)
        printf("bound %s: python-subprocess / fastest raw C = %.3gx (no spawner can beat "
               "subprocess.run by more here)\n",
               bench, py->median / raw);
    char t[200];
    snprintf(t, sizeof t, "%s: weft >= 3x cheaper per spawn than subprocess.run", bench);
    bench_target(t, w && py, w && py && py->median >= 3 * w->median);
    /* "no slower": the paired (same-round) ratio against the faster raw
     * system, within 3% (single rounds scatter by more than that) */
    double r_ps = paired_ratio[slot][1], r_fe = paired_ratio[slot][2];
    double r = r_ps < r_fe ? r_ps : r_fe;
    snprintf(t, sizeof t,
             "%s: weft no slower than the faster of fork+exec and posix_spawn (paired ratio "
             "%.3gx >= 0.97)",
             bench, r);
    bench_target(t, r > 0, r >= 0.97);
}

int main(int argc, char **argv)
{
    (void)argc;
    bench_begin(argv[0], __FILE__);
    if (access("/bin/true", X_OK) != 0) {
        bench_skip("spawn_true", "all", "/bin/true is missing");
        return bench_finish();
    }
    run_bench("spawn_true", false);
    run_bench("spawn_true_8threads", true);
    long want = 0; /* C spawns: warm-up + timed, per bench and system */
    want += 3L * (20 + (long)ROUNDS * N_ONE);
    want += 3L * (20 + (long)ROUNDS * N_MT);
    if (atomic_load(&failed) || atomic_load(&spawned) != want)
        bench_fail("spawns: %ld ok, %ld failed, %ld expected", atomic_load(&spawned),
                   atomic_load(&failed), want);
    targets("spawn_true", 0);
    targets("spawn_true_8threads", 1);
    return bench_finish();
}

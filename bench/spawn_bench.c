/* spawn_bench : starting a child process and waiting for it, with weft_run
 * against raw fork+exec, raw posix_spawn and Python's subprocess.run.
 *
 *   spawn_true          spawn + wait of /bin/true, one at a time (us/spawn)
 *   spawn_true_8threads 8 threads spawning /bin/true at once, each one at a
 *                       time (us/spawn = wall / spawns)
 *
 * Systems: weft (weft_run with default options: stdio inherited, no
 * timeout), posix-spawn (posix_spawn + waitpid, no attributes),
 * fork-exec (fork, execv in the child, waitpid), python-subprocess
 * (subprocess.run(["/bin/true"]) in bench/spawn_anchor.py under
 * /usr/bin/python3; 8 threads through ThreadPoolExecutor(8)).
 *
 * The systems are measured in rounds, one sample of each per round, in an
 * order that rotates, so that drift in the machine's load hits all of them
 * alike. Every child's exit status is checked (0), and the number of
 * spawns is counted.
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

#define ROUNDS 7
#define N_ONE 300 /* spawns per sample, one at a time */
#define N_MT 400  /* spawns per sample over 8 threads */
#define THREADS 8
#define NSYS 4

extern char **environ;
static char *const true_argv[] = {"/bin/true", NULL};
static atomic_long spawned, failed;

typedef int (*spawn_fn)(void);

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

struct mt_arg {
    spawn_fn fn;
    int n;
};

static void *mt_thread(void *arg)
{
    struct mt_arg *a = arg;
    for (int i = 0; i < a->n; i++) count(a->fn());
    return NULL;
}

/* One sample: `n` spawns spread over THREADS threads, us per spawn. */
static double eight_threads(spawn_fn fn, int n)
{
    pthread_t th[THREADS];
    struct mt_arg a = {fn, n / THREADS};
    double t0 = bench_now();
    int started = 0;
    for (; started < THREADS; started++)
        if (pthread_create(&th[started], NULL, mt_thread, &a) != 0) break;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (started < THREADS) return -1;
    return (bench_now() - t0) / (a.n * THREADS) * 1e6;
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

static void run_bench(const char *bench, bool mt)
{
    static const char *names[NSYS] = {"weft", "posix-spawn", "fork-exec", "python-subprocess"};
    static const spawn_fn fns[NSYS - 1] = {spawn_weft, spawn_posix, spawn_fork};
    double s[NSYS][ROUNDS];
    int n[NSYS] = {0};
    bool py_missing = false;
    char what[128];
    snprintf(what, sizeof what, "bench=%s", bench);
    bench_watchdog(600, what);
    /* warm-up: page cache, the dynamic loader's files, Python's imports */
    for (int k = 0; k < NSYS - 1; k++) mt ? eight_threads(fns[k], 40) : one_at_a_time(fns[k], 20);
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < NSYS; j++) {
            int k = (round + j) % NSYS;
            double v;
            if (k == NSYS - 1) {
                if (py_missing) continue;
                v = python_sample(mt ? "spawn_true_8threads" : "spawn_true", mt ? N_MT : N_ONE);
                if (v == -2) {
                    py_missing = true;
                    continue;
                }
            } else {
                v = mt ? eight_threads(fns[k], N_MT) : one_at_a_time(fns[k], N_ONE);
            }
            if (v < 0)
                bench_fail("%s system=%s: a sample failed", bench, names[k]);
            else
                s[k][n[k]++] = v;
            bench_settle(50);
        }
    }
    alarm(0);
    for (int k = 0; k < NSYS; k++) {
        if (n[k] > 0)
            bench_report(bench, names[k], s[k], n[k], "us/spawn");
        else if (k == NSYS - 1 && py_missing)
            bench_skip(bench, names[k], "/usr/bin/python3 not found");
    }
}

static void targets(const char *bench)
{
    const bench_result *w = bench_get(bench, "weft");
    const bench_result *ps = bench_get(bench, "posix-spawn");
    const bench_result *fe = bench_get(bench, "fork-exec");
    const bench_result *py = bench_get(bench, "python-subprocess");
    bench_ratio(bench, "posix-spawn", "weft");
    bench_ratio(bench, "fork-exec", "weft");
    bench_ratio(bench, "python-subprocess", "weft");
    double raw = ps && fe ? (ps->median < fe->median ? ps->median : fe->median) : 0;
    if (py && raw > 0)
        printf("bound %s: python-subprocess / fastest raw C = %.3gx (no spawner can beat "
               "subprocess.run by more here)\n",
               bench, py->median / raw);
    char t[160];
    snprintf(t, sizeof t, "%s: weft >= 3x cheaper per spawn than subprocess.run", bench);
    bench_target(t, w && py, w && py && py->median >= 3 * w->median);
    /* "no slower": within 3% (the rounds' spread is larger than that) */
    snprintf(t, sizeof t, "%s: weft no slower than the faster of fork+exec and posix_spawn (3%%)",
             bench);
    bench_target(t, w && raw > 0, w && raw > 0 && w->median <= 1.03 * raw);
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
    want += 3L * (40 + (long)ROUNDS * N_MT);
    if (atomic_load(&failed) || atomic_load(&spawned) != want)
        bench_fail("spawns: %ld ok, %ld failed, %ld expected", atomic_load(&spawned),
                   atomic_load(&failed), want);
    targets("spawn_true");
    targets("spawn_true_8threads");
    return bench_finish();
}

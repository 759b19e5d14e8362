/* bench.h : the shared harness of weft's benchmarks (header-only, C and C++).
 *
 * Every bench program measures one workload on weft and on its anchors in the
 * same invocation, so that the ratios between them mean something on a noisy
 * machine (see shared/ANCHORS.md: the same row moves up to 2x between runs).
 *
 * What it gives:
 * - bench_now()          : monotonic seconds (clock_gettime(CLOCK_MONOTONIC)).
 * - bench_report()       : sorts the samples, prints one scrapeable line
 *       bench=NAME system=SYS median=M min=A max=B unit=U runs=N
 *   and rewrites PROGNAME.json in the current directory (a JSON list of
 *   {"bench","system","value","unit","min","max","runs"}; "value" is the
 *   median), so a program killed half-way still leaves what it measured.
 * - bench_ratio()        : prints "ratio BENCH ANCHOR/weft-threads = 2.30x",
 *   oriented so that > 1 always means weft is faster.
 * - bench_target()       : prints "target ...: MET" or "MISSED".
 * - bench_python()       : runs a Python anchor (bench/NAME.py) with /usr/bin/python3
 *   (never plain python3: see the pitfalls) and collects its "sample X" lines.
 * - bench_watchdog()     : alarm() per measured block, so a hang in one system
 *   ends the program with a FAIL line instead of stalling `make bench`.
 * - bench_fail()         : records a failed check; bench_finish() returns the
 *   exit status (1 if any check failed).
 *
 * Threads: everything here is for the benchmark's main thread only.
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_RESULTS 128
#define BENCH_MAX_SAMPLES 64

/* A compiler barrier: an "empty" task body that gcc cannot delete. */
#define BENCH_BARRIER() __asm__ volatile("" ::: "memory")

typedef struct bench_result {
    char bench[48];
    char system[32];
    char unit[16];
    double median, min, max;
    int runs;
} bench_result;

static struct {
    char prog[64];
    char json_path[128];
    char src_dir[PATH_MAX];
    bench_result results[BENCH_MAX_RESULTS];
    int nresults;
    int failures;
    volatile sig_atomic_t watchdog_armed;
    char watchdog_what[192];
} bench_g;

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps `ms` milliseconds: between systems, so that one pool's idle threads
 * (libgomp and TBB spin a while before they sleep) do not eat the next
 * system's CPU on this 2-core machine. */
static inline void bench_settle(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void bench_watchdog_handler(int sig)
{
    (void)sig;
    static const char head[] = "FAIL watchdog: timed out in ";
    ssize_t r = write(2, head, sizeof head - 1);
    r = write(2, bench_g.watchdog_what, strlen(bench_g.watchdog_what));
    r = write(2, "\n", 1);
    (void)r;
    _exit(3);
}

/* bench_watchdog() :
 * Arms a `seconds` alarm for the block named `what` (0 disarms). */
static inline void bench_watchdog(unsigned seconds, const char *what)
{
    snprintf(bench_g.watchdog_what, sizeof bench_g.watchdog_what, "%s (after %us)",
             what ? what : "?", seconds);
    signal(SIGALRM, bench_watchdog_handler);
    alarm(seconds);
}

/* bench_begin() :
 * Names the program (from argv[0]) and where its sources are, for the .py
 * anchors: the environment's WEFT_BENCH_SRCDIR (set by scripts/run-bench.sh),
 * else the WEFT_BENCH_SRCDIR the build defined, else the directory of
 * `src_file` (normally __FILE__). */
static inline void bench_begin(const char *argv0, const char *src_file)
{
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    snprintf(bench_g.prog, sizeof bench_g.prog, "%s", base);
    snprintf(bench_g.json_path, sizeof bench_g.json_path, "%s.json", bench_g.prog);
    const char *env = getenv("WEFT_BENCH_SRCDIR");
#ifdef WEFT_BENCH_SRCDIR
    if (!env || !*env) env = WEFT_BENCH_SRCDIR;
#endif
    if (env && *env) {
        snprintf(bench_g.src_dir, sizeof bench_g.src_dir, "%s", env);
    } else {
        snprintf(bench_g.src_dir, sizeof bench_g.src_dir, "%s", src_file);
        char *slash = strrchr(bench_g.src_dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(bench_g.src_dir, sizeof bench_g.src_dir, ".");
    }
    /* Start with an empty list, so a stale file never survives a failed run. */
    FILE *f = fopen(bench_g.json_path, "w");
    if (f) {
        fputs("[]\n", f);
        fclose(f);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double load = -1;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load) != 1) load = -1;
        fclose(la);
    }
    printf("# %s: %ld online CPUs, load average %.2f at start; pools are started and warmed "
           "outside the timed blocks\n",
           bench_g.prog, ncpu, load);
    fflush(stdout);
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_json_write(void)
{
    FILE *f = fopen(bench_g.json_path, "w");
    if (!f) {
        fprintf(stderr, "bench: cannot write %s: %s\n", bench_g.json_path, strerror(errno));
        return;
    }
    fputs("[\n", f);
    for (int i = 0; i < bench_g.nresults; i++) {
        const bench_result *r = &bench_g.results[i];
        fprintf(f,
                "  {\"bench\": \"%s\", \"system\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", "
                "\"min\": %.6g, \"max\": %.6g, \"runs\": %d}%s\n",
                r->bench, r->system, r->median, r->unit, r->min, r->max, r->runs,
                i + 1 < bench_g.nresults ? "," : "");
    }
    fputs("]\n", f);
    fclose(f);
}

/* bench_report() :
 * Records and prints the median/min/max of `samples[0..n)` (n >= 1), which it
 * sorts in place. */
static inline void bench_report(const char *bench, const char *system, double *samples, int n,
                                const char *unit)
{
    if (n < 1) return;
    qsort(samples, (size_t)n, sizeof *samples, bench_cmp_double);
    double med = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    printf("bench=%s system=%s median=%.4g min=%.4g max=%.4g unit=%s runs=%d\n", bench, system, med,
           samples[0], samples[n - 1], unit, n);
    fflush(stdout);
    if (bench_g.nresults < BENCH_MAX_RESULTS) {
        bench_result *r = &bench_g.results[bench_g.nresults++];
        snprintf(r->bench, sizeof r->bench, "%s", bench);
        snprintf(r->system, sizeof r->system, "%s", system);
        snprintf(r->unit, sizeof r->unit, "%s", unit);
        r->median = med;
        r->min = samples[0];
        r->max = samples[n - 1];
        r->runs = n;
    }
    bench_json_write();
}

/* bench_get() : the recorded result of (bench, system), or NULL. */
static inline const bench_result *bench_get(const char *bench, const char *system)
{
    for (int i = 0; i < bench_g.nresults; i++)
        if (!strcmp(bench_g.results[i].bench, bench) && !strcmp(bench_g.results[i].system, system))
            return &bench_g.results[i];
    return NULL;
}

/* bench_higher_is_better() : "x" (speed-up) and rates (units ending in "/s":
 * GB/s) are better high; times are better low. */
static inline int bench_higher_is_better(const char *unit)
{
    size_t n = strlen(unit);
    return !strcmp(unit, "x") || (n >= 2 && !strcmp(unit + n - 2, "/s"));
}

/* bench_ratio() :
 * Prints how many times faster `sys` is than `anchor` on `bench` (> 1: `sys`
 * is faster), and returns it (0 when one of them is missing). */
static inline double bench_ratio(const char *bench, const char *anchor, const char *sys)
{
    const bench_result *a = bench_get(bench, anchor), *w = bench_get(bench, sys);
    if (!a || !w || a->median <= 0 || w->median <= 0) {
        printf("ratio %s %s/%s = n/a\n", bench, anchor, sys);
        return 0;
    }
    if (bench_higher_is_better(w->unit)) {
        double r = w->median / a->median;
        printf("ratio %s %s/%s = %.3gx (>1: %s is better)\n", bench, sys, anchor, r, sys);
        return r;
    }
    double r = a->median / w->median;
    printf("ratio %s %s/%s = %.3gx (>1: %s is faster)\n", bench, anchor, sys, r, sys);
    return r;
}

/* bench_target() : prints whether a target the issue set for weft is met. */
static inline void bench_target(const char *what, int known, int met)
{
    printf("target %s: %s\n", what, !known ? "UNKNOWN (not measured)" : met ? "MET" : "MISSED");
    fflush(stdout);
}

/* bench_fail() : records a failed check (wrong result, error code). */
static inline void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    bench_g.failures++;
}

/* bench_skip() : a visible SKIP line with a reason, never a silent pass. */
static inline void bench_skip(const char *bench, const char *system, const char *reason)
{
    printf("SKIP bench=%s system=%s reason=%s\n", bench, system, reason);
    fflush(stdout);
}

/* bench_python() :
 * Runs `/usr/bin/python3 DIR/script args` (DIR: WEFT_BENCH_SRCDIR, else the
 * directory of the bench source, else ../../bench, ../bench, bench) and collects the numbers of its
 * stdout lines "sample X" into samples[0..max); other lines are echoed with a
 * "# py: " prefix. A line "FAIL ..." from the script counts as a failed
 * check. @return the number of samples, -1 if /usr/bin/python3 is missing
 * (the caller prints a SKIP line), -2 if the script is missing or failed. */
static inline int bench_python(const char *script, const char *args, double *samples, int max)
{
    const char *py = "/usr/bin/python3";
    if (access(py, X_OK) != 0) return -1;
    /* The script: beside this source file, else where `make bench` (cwd
     * build/bench) or a run from the repository root finds it. */
    const char *dirs[] = {bench_g.src_dir, "../../bench", "../bench", "bench"};
    char path[PATH_MAX + 64];
    int found = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !found; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], script);
        found = access(path, R_OK) == 0;
    }
    if (!found) {
        printf("# py: %s not found (set WEFT_BENCH_SRCDIR to the bench/ directory)\n", script);
        return -2;
    }
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd, "%s '%s' %s", py, path, args);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) return -2;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        double v;
        if (sscanf(line, "sample %lf", &v) == 1) {
            if (n < max) samples[n++] = v;
        } else if (!strncmp(line, "FAIL", 4)) {
            line[strcspn(line, "\n")] = '\0';
            bench_fail("python anchor %s: %s", script, line);
        } else {
            printf("# py: %s", line);
        }
    }
    int st = pclose(p);
    if (st != 0) {
        printf("# py: %s exited with status %d\n", cmd, st);
        return -2;
    }
    return n;
}

/* bench_python_report() :
 * Runs a Python anchor under a watchdog and reports its samples as (bench,
 * system, unit); a SKIP line if /usr/bin/python3 is missing, a failed check
 * if the script failed. @return true if reported. */
static inline bool bench_python_report(const char *bench, const char *system, const char *unit,
                                       const char *script, const char *args, unsigned watchdog_s)
{
    double s[BENCH_MAX_SAMPLES];
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(watchdog_s, what);
    int n = bench_python(script, args, s, BENCH_MAX_SAMPLES);
    alarm(0);
    if (n > 0) {
        bench_report(bench, system, s, n, unit);
        return true;
    }
    if (n == -1)
        bench_skip(bench, system, "/usr/bin/python3 not found");
    else
        bench_fail("%s: the Python anchor failed or printed no samples", what);
    return false;
}

/* bench_finish() : prints the summary line; @return the exit status. */
static inline int bench_finish(void)
{
    alarm(0);
    bench_json_write();
    printf("# %s: %d results in %s, %d failed checks\n", bench_g.prog, bench_g.nresults,
           bench_g.json_path, bench_g.failures);
    fflush(stdout);
    return bench_g.failures ? 1 : 0;
}

#ifdef __cplusplus
/* bench_measure() :
 * Runs `run()` `warm` times untimed, then `reps` times, under a watchdog of
 * `watchdog_s` seconds for the whole block, and reports the samples.
 * `run` returns the sample in `unit`, or a negative number after calling
 * bench_fail() (the block is then not reported). Settles afterwards.
 * @return true if the block was reported. */
template <class F>
static bool bench_measure(const char *bench, const char *system, const char *unit, int warm,
                          int reps, unsigned watchdog_s, F run)
{
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(watchdog_s, what);
    double s[BENCH_MAX_SAMPLES];
    int n = 0;
    bool ok = true;
    for (int i = 0; ok && i < warm; i++)
        if (run() < 0) ok = false;
    for (int i = 0; ok && i < reps && n < BENCH_MAX_SAMPLES; i++) {
        double v = run();
        if (v < 0)
            ok = false;
        else
            s[n++] = v;
    }
    alarm(0);
    if (ok)
        bench_report(bench, system, s, n, unit);
    else
        bench_fail("%s: not reported (a run failed)", what);
    bench_settle(100);
    return ok;
}
#endif

#endif /* WEFT_BENCH_H */

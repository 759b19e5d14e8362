/* table_bench.c : weft's tables on a deterministic generated CSV, beside
 * pandas and dask.dataframe (bench/table_anchor.py, /usr/bin/python3) in the
 * same run.
 *
 * The file (generated once, kept as table_bench_v2_<rows>.csv in the cwd):
 * 2 int key columns (k1: 100 values, k2: 1000), 4 double columns d1..d4
 * with 2% missing, printed with 17 significant digits (as numpy's and
 * pandas' writers print a double), 2 short text columns (t1
 * "customer_NNNNNN"; t2 "status_NN" and quoted fields with commas, escaped
 * quotes and embedded newlines). About 109 bytes a row; rows from
 * WEFT_TABLE_BENCH_ROWS (default 10000000: about 1.04 GiB, issue 15's
 * file). (v1, table_bench_<rows>.csv, printed the doubles with 1..6
 * decimals and was 53 bytes a row: 530 MiB at 10M rows.)
 *
 *   table_read_csv        every column typed, into memory (one table)
 *   table_groupby_mean    streaming: CSV to the mean of d1..d4 per (k1, k2) without
 *                         holding the table (in_flight partitions at a time)
 *   table_groupby_median  streaming: CSV to the exact median of d1 per k1
 *   table_apply           map_partitions: a per-row derived column
 *                         (d1 * 2 + d2) on every partition, concatenated
 *   table_nlargest        streaming: the 10 rows of largest d1
 *   <bench>_peak_rss      each streaming bench once more in a child
 *                         process of its own: its peak RSS (MiB; issue
 *                         15: under 1 GiB)
 * Every weft figure includes reading and parsing the CSV, as the anchors'
 * do. weft runs on threads with 2 workers (WEFT_WORKERS), blocks of 32 MiB.
 * Anchors, same run, same file: pandas and dask.dataframe
 * (bench/table_anchor.py), DuckDB and Polars with 2 threads
 * (bench/table_anchor_node.mjs, from bench/node/ as installed by
 * scripts/install-deps.sh --bench; SKIP lines when node or they are missing).
 * DuckDB and Polars, the engines issue 15's targets compare against, run in
 * rounds beside weft: per bench, weft's N runs, then DuckDB's N, then
 * Polars' N, and again (--rounds R, default 2: 2N samples each, medians
 * over all); pandas and dask.dataframe (2x and 5x targets) once, after.
 * Usage: table_bench [--reps N] [--rounds R] [--no-anchors] [--only BENCH
 * [--anchors]] [--compare] (--only: that bench alone, weft alone: for a
 * profile, with --anchors its anchors too; --compare: the
 * read and the groupby mean also on weft's serialized path, which
 * processes take -- WEFT_TABLE_SERIALIZE=1 -- in turns with the default
 * one in the same run: weft-threads-serialized, and their ratio) */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "bench.h"

static size_t gen(const char *path, long rows)
{
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return (size_t)st.st_size;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return 0;
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    weft_rng r;
    weft_rng_seed(&r, 15);
    fputs("k1,k2,d1,d2,d3,d4,t1,t2\n", f);
    for (long i = 0; i < rows; i++) {
        fprintf(f, "%lld,%lld", (long long)weft_rng_range(&r, 0, 99),
                (long long)weft_rng_range(&r, 0, 999));
        for (int d = 0; d < 4; d++) {
            if (weft_rng_range(&r, 0, 49) == 0)
                fputc(',', f);
            else /* 17 significant digits, as numpy's and pandas' writers print a double */
                fprintf(f, ",%.17g", (weft_rng_double(&r) - 0.5) * 1e4);
        }
        fprintf(f, ",customer_%06lld,", (long long)weft_rng_range(&r, 0, 999999));
        int q = (int)weft_rng_range(&r, 0, 199);
        if (q == 0)
            fputs("\"two\nlines\"", f);
        else if (q < 3)
            fputs("\"say \"\"hi\"\"\"", f);
        else if (q < 6)
            fputs("\"a,b\"", f);
        else
            fprintf(f, "status_%02lld", (long long)weft_rng_range(&r, 0, 99));
        fputc('\n', f);
    }
    if (fclose(f)) return 0;
    if (rename(tmp, path)) return 0;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static int derive(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    int rc = weft_table_arg(in, len, 0, &t);
    if (rc) return weft_ctx_fail(ctx, rc, "not a table");
    size_t n = weft_table_rows(t), c1, c2;
    const void *a, *b;
    const uint8_t *va, *vb;
    if (weft_table_col_index(t, "d1", &c1) || weft_table_col_index(t, "d2", &c2) ||
        weft_table_col_data(t, c1, &a, &va) || weft_table_col_data(t, c2, &b, &vb)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "no d1/d2");
    }
    double *o = malloc((n + 1) * sizeof *o);
    for (size_t i = 0; i < n; i++) o[i] = ((const double *)a)[i] * 2 + ((const double *)b)[i];
    rc = weft_table_add_double(t, "r", o, NULL, n); /* NaN where d1 or d2 is missing */
    if (!rc) rc = weft_table_output(ctx, t);
    free(o);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER(derive);

/* node_samples() :
 * Runs `node DIR/table_anchor_node.mjs SYSTEM BENCH PATH REPS ROWS` (DIR as
 * bench_python's) with POLARS_MAX_THREADS=2 and appends its "sample X"
 * lines to s[*n..max); a SKIP line when node or the engine's package is
 * missing (then false: nothing more to ask of that engine), a FAIL line
 * when the anchor fails. */
static bool node_samples(const char *bench, const char *system, const char *path, int reps,
                         long rows, double *s, int *n, int max)
{
    const char *node = NULL;
    static const char *const nodes[] = {"/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"};
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes && !node; i++)
        if (access(nodes[i], X_OK) == 0) node = nodes[i];
    if (!node) {
        bench_skip(bench, system,
                   "node is not installed (scripts/install-deps.sh --bench installs nodejs, npm "
                   "and the engines into bench/node/)");
        return false;
    }
    const char *dirs[] = {bench_g.src_dir, "../../bench", "../bench", "bench"};
    char script[PATH_MAX + 64];
    bool found = false;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !found; i++) {
        snprintf(script, sizeof script, "%s/table_anchor_node.mjs", dirs[i]);
        found = access(script, R_OK) == 0;
    }
    if (!found) {
        bench_skip(bench, system, "table_anchor_node.mjs not found (set WEFT_BENCH_SRCDIR)");
        return false;
    }
    char cmd[2 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "POLARS_MAX_THREADS=2 %s '%s' %s %s '%s' %d %ld", node, script,
             system, bench, path, reps, rows);
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(3600, what);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    int n0 = *n;
    bool skipped = false;
    char line[1024];
    while (p && fgets(line, sizeof line, p)) {
        double v;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "sample %lf", &v) == 1) {
            if (*n < max) s[(*n)++] = v;
        } else if (!strncmp(line, "SKIP ", 5)) {
            bench_skip(bench, system, line + 5);
            skipped = true;
        } else if (!strncmp(line, "FAIL", 4)) {
            bench_fail("node anchor: %s", line);
        } else {
            printf("# node: %s\n", line);
        }
    }
    int st = p ? pclose(p) : -1;
    alarm(0);
    if (skipped) return false;
    if (*n > n0 && st == 0) return true;
    bench_fail("%s: the node anchor failed (status %d) or printed no samples", what, st);
    return false;
}

enum {
    B_READ,
    B_MEAN,
    B_MEDIAN,
    B_APPLY,
    B_NLARGEST,
    B_N
};
static const char *const names[B_N] = {"table_read_csv", "table_groupby_mean",
                                       "table_groupby_median", "table_apply", "table_nlargest"};

static double run_one(int which, const char *path, weft_executor *ex, size_t *check)
{
    double t0 = bench_now();
    weft_frame *f = NULL, *g = NULL;
    weft_table *t = NULL;
    weft_csv_options co = {0};
    int rc = weft_frame_read_csv(&path, 1, &co, &f);
    const char *k1[1] = {"k1"};
    weft_agg mean[4] = {{"d1", WEFT_AGG_MEAN, NULL},
                        {"d2", WEFT_AGG_MEAN, NULL},
                        {"d3", WEFT_AGG_MEAN, NULL},
                        {"d4", WEFT_AGG_MEAN, NULL}};
    weft_agg med[1] = {{"d1", WEFT_AGG_MEDIAN, NULL}};
    const char *k12[2] = {"k1", "k2"};
    if (!rc) switch (which) {
        case B_READ:
            rc = weft_frame_compute(f, ex, NULL, &t);
            break;
        case B_MEAN:
            rc = weft_frame_groupby(f, k12, 2, mean, 4, ex, NULL, &t);
            break;
        case B_MEDIAN:
            rc = weft_frame_groupby(f, k1, 1, med, 1, ex, NULL, &t);
            break;
        case B_APPLY:
            rc = weft_frame_map_partitions(f, derive, NULL, 0, &g);
            if (!rc) rc = weft_frame_compute(g, ex, NULL, &t);
            break;
        default:
            rc = weft_frame_nlargest(f, 10, "d1", ex, NULL, &t);
        }
    double dt = bench_now() - t0;
    if (rc) {
        bench_fail("%s: %s", names[which], weft_last_error());
        dt = -1;
    }
    *check = weft_table_rows(t);
    weft_table_destroy(t);
    weft_frame_destroy(g);
    weft_frame_destroy(f);
    return dt;
}

/* peak_rss_mib() :
 * Runs bench `which` once in a child process with an executor of its own
 * (threads, 2 workers) and returns the child's peak RSS in MiB
 * (getrusage ru_maxrss: what the child inherits and touches of this
 * process counts too, so the table cache and glibc's free memory are
 * given back first), or -1. */
static double peak_rss_mib(int which, const char *path)
{
    weft_table_cache_release();
    malloc_trim(0);
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        long out = -1;
        weft_options o = WEFT_OPTIONS_INIT;
        o.backend = WEFT_BACKEND_THREADS;
        o.workers = 2;
        weft_executor *ex;
        size_t check = 0;
        if (weft_executor_create(&o, &ex) == 0) {
            if (run_one(which, path, ex, &check) >= 0) {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                out = ru.ru_maxrss; /* KiB */
            }
            weft_executor_destroy(ex);
        }
        ssize_t w = write(fd[1], &out, sizeof out);
        _exit(w == sizeof out ? 0 : 1);
    }
    close(fd[1]);
    long kib = -1;
    ssize_t got = read(fd[0], &kib, sizeof kib);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return got == sizeof kib && kib >= 0 ? (double)kib / 1024 : -1;
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1;
    bench_begin(argv[0], __FILE__);
    int reps = 3, rounds = 2;
    bool anchors = true, compare = false, with_anchors = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-anchors"))
            anchors = false;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i]; /* one bench, weft only (for a profile) */
        else if (!strcmp(argv[i], "--compare"))
            compare = true;
        else if (!strcmp(argv[i], "--anchors"))
            with_anchors = true; /* with --only: that bench's anchors too */
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
    }
    if (rounds < 1) rounds = 1;
    if (rounds * reps > BENCH_MAX_SAMPLES) rounds = BENCH_MAX_SAMPLES / (reps < 1 ? 1 : reps);
    if (reps < 1) reps = 1;
    if (reps > BENCH_MAX_SAMPLES) reps = BENCH_MAX_SAMPLES;
    const char *env = getenv("WEFT_TABLE_BENCH_ROWS");
    long rows = env && atol(env) > 0 ? atol(env) : 10000000;
    char path[64];
    snprintf(path, sizeof path, "table_bench_v2_%ld.csv", rows);
    double g0 = bench_now();
    size_t size = gen(path, rows);
    if (!size) {
        bench_fail("cannot write %s", path);
        return bench_finish();
    }
    printf("# %s: %ld rows, %.1f MiB (made or found in %.1f s)\n", path, rows,
           (double)size / (1 << 20), bench_now() - g0);
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    weft_executor *ex;
    if (weft_executor_create(&o, &ex)) return 1;
    size_t rows_out[B_N] = {0};
    if (only && !with_anchors) anchors = false;
    static const char *const engines[] = {"duckdb", "polars"};
    for (int b = 0; b < B_N; b++) {
        bool engine_ok[2] = {true, true};
        double s[BENCH_MAX_SAMPLES];
        int n = 0;
        if (only && strcmp(only, names[b])) continue;
        /* --compare: the serialized path in turns with the default one */
        bool cmp = compare && (b == B_READ || b == B_MEAN);
        double sc[BENCH_MAX_SAMPLES], se[2][BENCH_MAX_SAMPLES];
        int nc = 0, ne[2] = {0, 0};
        bool failed = false;
        /* rounds: weft's reps, then DuckDB's and Polars', and again: the
         * engines the targets compare against are measured beside weft,
         * not minutes later (this host's speed drifts: the same binary
         * took 1.6 s, then 2.3 s ten minutes later) */
        for (int r = 0; r < rounds && !failed; r++) {
            bench_watchdog(3600, names[b]);
            for (int i = 0; i < reps; i++) {
                double dt = run_one(b, path, ex, &rows_out[b]);
                if (dt < 0) {
                    failed = true;
                    break;
                }
                s[n++] = dt;
                if (!cmp) continue;
                size_t rows2 = 0;
                setenv("WEFT_TABLE_SERIALIZE", "1", 1);
                dt = run_one(b, path, ex, &rows2);
                unsetenv("WEFT_TABLE_SERIALIZE");
                if (dt < 0) {
                    failed = true;
                    break;
                }
                if (rows2 != rows_out[b])
                    bench_fail("%s: %zu rows serialized, %zu not", names[b], rows2, rows_out[b]);
                sc[nc++] = dt;
            }
            alarm(0);
            for (int a = 0; a < 2 && anchors && !failed; a++)
                if (engine_ok[a])
                    engine_ok[a] = node_samples(names[b], engines[a], path, reps, rows, se[a],
                                                &ne[a], BENCH_MAX_SAMPLES);
        }
        if (!failed) bench_report(names[b], "weft-threads", s, n, "s");
        if (cmp && !failed) {
            bench_report(names[b], "weft-threads-serialized", sc, nc, "s");
            bench_ratio(names[b], "weft-threads-serialized", "weft-threads");
        }
        for (int a = 0; a < 2 && anchors && !failed; a++)
            if (engine_ok[a] && ne[a]) bench_report(names[b], engines[a], se[a], ne[a], "s");
    }
    weft_executor_destroy(ex);
    /* the streaming rows' peak memory: each in a child of its own (the
     * read and apply rows hold the 1 GiB table by definition) */
    bool rss_known = true, rss_met = true;
    for (int b = B_MEAN; b < B_N; b++) {
        if (b == B_APPLY || (only && strcmp(only, names[b]))) continue;
        double mib = peak_rss_mib(b, path);
        if (mib < 0) {
            rss_known = false;
            bench_fail("%s: the peak-memory child failed", names[b]);
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "%s_peak_rss", names[b]);
        bench_report(what, "weft-threads", &mib, 1, "MiB");
        if (mib >= 1024) rss_met = false;
    }
    if (!only || strcmp(only, names[B_READ]))
        bench_target("peak memory under 1 GiB for every streaming workload", rss_known, rss_met);
    if ((!only || !strcmp(only, names[B_READ])) && rows_out[B_READ] != (size_t)rows)
        bench_fail("read %zu rows, wrote %ld", rows_out[B_READ], rows);
    if ((!only || !strcmp(only, names[B_MEDIAN])) && rows_out[B_MEDIAN] != 100)
        bench_fail("median: %zu groups, want 100", rows_out[B_MEDIAN]);
    if (anchors) {
        static const char *const sys[] = {"pandas", "dask-threads"};
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < B_N; b++) {
                char args[256];
                if (only && strcmp(only, names[b])) continue;
                if (a == 1 && b == B_MEDIAN) {
                    bench_skip(names[b], sys[a], "dask.dataframe 2022.12's groupby has no median");
                    continue;
                }
                snprintf(args, sizeof args, "%s %s %s %d", sys[a], names[b], path, reps);
                bench_python_report(names[b], sys[a], "s", "table_anchor.py", args, 3600);
            }
        for (int b = 0; b < B_N; b++) {
            bench_ratio(names[b], "pandas", "weft-threads");
            bench_ratio(names[b], "dask-threads", "weft-threads");
            if (bench_get(names[b], "duckdb")) bench_ratio(names[b], "duckdb", "weft-threads");
            if (bench_get(names[b], "polars")) bench_ratio(names[b], "polars", "weft-threads");
        }
        /* issue 15's targets, judged on this run's medians */
        const bench_result *w = bench_get(names[B_READ], "weft-threads"),
                           *pl = bench_get(names[B_READ], "polars");
        bench_target("table_read_csv no slower than Polars", w && pl,
                     w && pl && w->median <= pl->median);
        w = bench_get(names[B_MEAN], "weft-threads");
        const bench_result *dk = bench_get(names[B_MEAN], "duckdb");
        bench_target("table_groupby_mean within 1.5x of DuckDB", w && dk,
                     w && dk && w->median <= 1.5 * dk->median);
        bool known = true, met = true;
        for (int b = 0; b < B_N; b++) {
            const bench_result *me = bench_get(names[b], "weft-threads"),
                               *pd = bench_get(names[b], "pandas"),
                               *da = bench_get(names[b], "dask-threads");
            if (!me || !pd) known = false;
            if (me && pd && me->median * 2 > pd->median) met = false;
            if (me && da && me->median * 5 > da->median) met = false;
        }
        bench_target("at least 2x pandas and 5x dask.dataframe on every bench", known, met);
    }
    return bench_finish();
}

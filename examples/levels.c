/* levels.c : the levels demo -- one CPU-bound workload on every level weft has.
 *
 * The workload is the teaching notebook's: ten calls of
 *
 *     def f(x):
 *         y = x
 *         for i in range(N):
 *             y = y - i*i + randint(0, 10000) * randint(0, 10000)
 *         return y + 1
 *
 * for x in 0..9. Python's integers never overflow; C's int64_t would (the sum
 * of i*i passes 2^63 near i = 3e6), and signed overflow is undefined
 * behaviour. So the loop runs in uint64_t, where wrapping is defined: the
 * results are the notebook's values modulo 2^64, printed as two's-complement
 * int64. The random numbers come from a weft_rng seeded with
 * weft_ctx_seed(ctx), which depends only on the run seed and the item's
 * index, so every level computes exactly the same ten numbers.
 *
 * The demo runs the ten items with weft_map() on every backend this build
 * has (serial first, as the reference), one executor per level with all
 * CPUs, and prints one row per level: wall time, speed-up over serial,
 * efficiency (speed-up / workers) and whether the results match serial's.
 * Executors are created before the clock starts and destroyed after it
 * stops: the wall time is the map alone.
 *
 * Files (under build/demo/, created if missing; --outdir changes it):
 *   levels.json          one object per level run
 *   trace-<level>.json   weft's Chrome trace of each level's run (Perfetto)
 *   trace-<level>.svg    its task-stream picture (weft_trace_svg): a lane per
 *                        worker, a bar per task; on threads, two busy lanes
 *
 * Usage: levels [--n N] [--quick] [--workers W] [--outdir DIR]
 * Exit status: 0, or 1 if a level's results differ from serial's or a level
 * that weft_backend_available() reports fails to run; 2 on bad arguments.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <weft.h>

/* Calibrated on the project's machine (2 vCPU Xeon VM, gcc -O2): about
 * 3.4 ns per iteration, so 10 items of 80M iterations take ~2.8 s serially. */
#define DEFAULT_N 80000000ull
#define QUICK_N 3000000ull
#define NITEMS 10

typedef struct item_in {
    uint64_t n; /* iterations */
    int64_t x;  /* the notebook's input */
} item_in;

typedef struct item_out {
    uint64_t y; /* f(x) modulo 2^64 */
} item_out;

static int notebook_f(weft_ctx *ctx, const void *in, size_t len)
{
    item_in it;
    item_out out = {0};
    weft_rng rng;

    if (len != sizeof it) return weft_ctx_fail(ctx, WEFT_EINVAL, "input of %zu bytes", len);
    memcpy(&it, in, sizeof it); /* inputs carry no alignment promise */
    weft_rng_seed(&rng, weft_ctx_seed(ctx));
    uint64_t y = (uint64_t)it.x;
    for (uint64_t i = 0; i < it.n; i++) {
        uint64_t a = (uint64_t)weft_rng_range(&rng, 0, 10000);
        uint64_t b = (uint64_t)weft_rng_range(&rng, 0, 10000);
        y = y - i * i + a * b; /* unsigned: wraps modulo 2^64, no UB */
    }
    out.y = y + 1;
    return weft_ctx_set_output(ctx, &out, sizeof out);
}
WEFT_TASK_REGISTER(notebook_f);

typedef struct level_row {
    weft_backend backend;
    int workers;
    double wall, speedup;
    bool match;
    item_out out[NITEMS];
} level_row;

static const char *outdir = "build/demo";

static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -EINVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -errno;
        buf[i] = c;
    }
    return 0;
}

static FILE *open_out(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", outdir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "levels: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

/* Runs the ten items on `backend`; fills `row`. @return 0 or a WEFT_E* code. */
static int run_level(weft_backend backend, int workers, uint64_t n, const char *trace,
                     level_row *row)
{
    weft_options opts = {.backend = backend, .workers = workers, .trace_path = trace};
    weft_executor *ex;
    weft_results *res = NULL;
    item_in items[NITEMS];
    int rc;

    for (int i = 0; i < NITEMS; i++) items[i] = (item_in){.n = n, .x = i};
    if ((rc = weft_executor_create(&opts, &ex)) != 0) {
        fprintf(stderr, "levels: %s: %s (%s)\n", weft_backend_name(backend), weft_strerror(rc),
                weft_last_error());
        return rc;
    }
    row->backend = backend;
    row->workers = weft_executor_workers(ex);

    double t0 = weft_now();
    rc = weft_map(ex, notebook_f, items, sizeof items[0], NITEMS, NULL, &res);
    row->wall = weft_now() - t0;

    for (int i = 0; rc == 0 && i < NITEMS; i++) {
        const void *data;
        size_t len;
        rc = weft_results_get(res, (size_t)i, &data, &len);
        if (rc == 0 && len != sizeof(item_out)) rc = WEFT_ETASK;
        if (rc == 0) memcpy(&row->out[i], data, sizeof(item_out));
    }
    if (rc != 0)
        fprintf(stderr, "levels: %s: map failed: %s %s\n", weft_backend_name(backend),
                weft_strerror(rc),
                res && weft_results_error(res, 0) ? weft_results_error(res, 0) : "");
    weft_results_destroy(res);
    int drc = weft_executor_destroy(ex); /* joins workers, writes the trace */
    if (drc != 0)
        fprintf(stderr, "levels: writing %s: %s\n", trace ? trace : "-", weft_strerror(drc));
    return rc;
}

static int write_json(const level_row *rows, int nrows)
{
    char path[4200];
    FILE *f = open_out("levels.json", path, sizeof path);
    if (!f) return -1;
    fprintf(f, "[\n");
    for (int i = 0; i < nrows; i++)
        fprintf(f,
                "  {\"backend\": \"%s\", \"workers\": %d, \"wall_s\": %.6f, \"speedup\": %.4f, "
                "\"efficiency\": %.4f, \"results_match\": %s}%s\n",
                weft_backend_name(rows[i].backend), rows[i].workers, rows[i].wall, rows[i].speedup,
                rows[i].speedup / rows[i].workers, rows[i].match ? "true" : "false",
                i + 1 < nrows ? "," : "");
    fprintf(f, "]\n");
    if (fclose(f) != 0) return -1;
    printf("wrote %s\n", path);
    return 0;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: levels [--n N] [--quick] [--workers W] [--outdir DIR]\n"
            "  --n N        iterations per task (default %llu: ~3 s serial)\n"
            "  --quick      N = %llu, for a smoke test\n"
            "  --workers W  workers for the parallel levels (default: all CPUs)\n"
            "  --outdir DIR where levels.json and the trace go (default build/demo)\n",
            DEFAULT_N, QUICK_N);
}

int main(int argc, char **argv)
{
    uint64_t n = DEFAULT_N;
    int workers = 0;

    weft_init(&argc, &argv); /* first: the processes and mpi levels need it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            char *end;
            n = strtoull(argv[++i], &end, 10);
            if (*end || n == 0) return usage(stderr), 2;
        } else if (strcmp(argv[i], "--quick") == 0) {
            n = QUICK_N;
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
            if (workers < 1) return usage(stderr), 2;
        } else if (strcmp(argv[i], "--outdir") == 0 && i + 1 < argc) {
            outdir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return usage(stdout), 0;
        } else {
            return usage(stderr), 2;
        }
    }
    if (make_dirs(outdir) != 0) {
        fprintf(stderr, "levels: cannot create %s: %s\n", outdir, strerror(errno));
        return 1;
    }

    static const struct {
        weft_backend b;
        const char *why; /* when not in this build */
    } levels[] = {
        {WEFT_BACKEND_SERIAL, NULL},
        {WEFT_BACKEND_THREADS, NULL},
        {WEFT_BACKEND_PROCESSES, "issue #4"},
        {WEFT_BACKEND_MPI, "MPI was not found when weft was built"},
    };
    static level_row rows[4];
    int nrows = 0, status = 0;
    char trace[4][4200];

    printf("weft %s levels demo: %d tasks of N=%llu iterations "
           "(y = y - i*i + rand*rand, modulo 2^64)\n\n",
           weft_version(), NITEMS, (unsigned long long)n);
    printf("%-10s %7s %10s %9s %11s  %s\n", "level", "workers", "wall (s)", "speed-up",
           "efficiency", "results");
    fflush(stdout);
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        weft_backend b = levels[l].b;
        if (!weft_backend_available(b)) {
            printf("%s: not available in this build (%s)\n", weft_backend_name(b),
                   levels[l].why ? levels[l].why : "planned");
            continue;
        }
        if (nrows == 0 && b != WEFT_BACKEND_SERIAL) {
            fprintf(stderr, "levels: no serial reference\n");
            return 1;
        }
        level_row *row = &rows[nrows];
        snprintf(trace[nrows], sizeof trace[nrows], "%s/trace-%s.json", outdir,
                 weft_backend_name(b));
        int rc = run_level(b, b == WEFT_BACKEND_SERIAL ? 1 : workers, n, trace[nrows], row);
        if (rc == WEFT_ENOTSUP && b == WEFT_BACKEND_MPI) {
            /* not launched by mpirun: not a failure of the demo */
            printf("%s: skipped: run the demo as `mpirun -n 3 levels` (make demo does)\n",
                   weft_backend_name(b));
            continue;
        }
        if (rc != 0) {
            printf("%s: failed: %s\n", weft_backend_name(b), weft_strerror(rc));
            status = 1;
            continue;
        }
        row->match = true;
        for (int i = 0; i < NITEMS; i++)
            if (row->out[i].y != rows[0].out[i].y) row->match = false;
        row->speedup = rows[0].wall / row->wall;
        if (!row->match) status = 1;
        printf("%-10s %7d %10.3f %9.2f %10.0f%%  %s\n", weft_backend_name(b), row->workers,
               row->wall, row->speedup, 100.0 * row->speedup / row->workers,
               nrows == 0   ? "reference"
               : row->match ? "match"
                            : "DIFFER");
        fflush(stdout);
        nrows++;
    }

    printf("\nresults (int64, same on every level):");
    for (int i = 0; i < NITEMS && nrows > 0; i++)
        printf("%s%lld", i % 5 ? " " : "\n  ", (long long)(int64_t)rows[0].out[i].y);
    printf("\n\n");
    if (write_json(rows, nrows) != 0) status = 1;
    for (int r = 0; r < nrows; r++) {
        struct stat st;
        if (stat(trace[r], &st) != 0) {
            fprintf(stderr, "levels: the executor wrote no %s\n", trace[r]);
            status = 1;
            continue;
        }
        printf("wrote %s (open it in Perfetto)\n", trace[r]);
        /* the task-stream picture, drawn by the library from the trace */
        char svg[4200], title[200];
        snprintf(svg, sizeof svg, "%s/trace-%s.svg", outdir, weft_backend_name(rows[r].backend));
        snprintf(title, sizeof title,
                 "weft task stream: %s, %d workers, %d tasks of N=%llu; wall %.3f s, speed-up "
                 "%.2f",
                 weft_backend_name(rows[r].backend), rows[r].workers, NITEMS, (unsigned long long)n,
                 rows[r].wall, rows[r].speedup);
        weft_svg_options so = {.title = title};
        int rc = weft_trace_svg(trace[r], svg, &so);
        if (rc != 0) {
            fprintf(stderr, "levels: %s: %s (%s)\n", svg, weft_strerror(rc), weft_last_error());
            status = 1;
        } else {
            printf("wrote %s\n", svg);
        }
    }
    if (status) fprintf(stderr, "levels: FAILED: a level's results differ or a level failed\n");
    return status;
}

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
 *   levels.json         one object per level run
 *   trace-threads.json  weft's Chrome trace of the threads run (Perfetto)
 *   trace-threads.svg   a task-stream picture of the threads run, drawn here
 *                       from the start/end/worker each task writes into its
 *                       output next to its result
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
    uint64_t y;        /* f(x) modulo 2^64 */
    double start, end; /* weft_now() around the loop, for the picture */
    int32_t worker;    /* weft_ctx_worker() */
    int32_t pad;
} item_out;

static int notebook_f(weft_ctx *ctx, const void *in, size_t len)
{
    item_in it;
    item_out out = {0};
    weft_rng rng;

    if (len != sizeof it) return weft_ctx_fail(ctx, WEFT_EINVAL, "input of %zu bytes", len);
    memcpy(&it, in, sizeof it); /* inputs carry no alignment promise */
    weft_rng_seed(&rng, weft_ctx_seed(ctx));
    out.start = weft_now();
    uint64_t y = (uint64_t)it.x;
    for (uint64_t i = 0; i < it.n; i++) {
        uint64_t a = (uint64_t)weft_rng_range(&rng, 0, 10000);
        uint64_t b = (uint64_t)weft_rng_range(&rng, 0, 10000);
        y = y - i * i + a * b; /* unsigned: wraps modulo 2^64, no UB */
    }
    out.y = y + 1;
    out.end = weft_now();
    out.worker = weft_ctx_worker(ctx);
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
        if (rc == 0) {
            memcpy(&row->out[i], data, sizeof(item_out));
            row->out[i].start -= t0; /* seconds since the map started */
            row->out[i].end -= t0;
        }
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

/* ---- the task-stream picture ------------------------------------------ */

static double nice_step(double span)
{
    static const double steps[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                                   0.5,   1,     2,     5,    10,   20,   50,  100};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / steps[i] <= 10) return steps[i];
    return 200;
}

static int write_svg(const level_row *row, uint64_t n)
{
    static const char *palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
    const int left = 90, right = 30, top = 56, lane = 40, gap = 10, axis = 50, width = 960;
    const int lanes = row->workers > 0 ? row->workers : 1;
    const int height = top + lanes * (lane + gap) + axis;
    double span = row->wall;
    for (int i = 0; i < NITEMS; i++)
        if (row->out[i].end > span) span = row->out[i].end;
    if (span <= 0) span = 1e-3;
    const double scale = (width - left - right) / span;
    char path[4200];
    FILE *f = open_out("trace-threads.svg", path, sizeof path);
    if (!f) return -1;

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f,
            "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">weft task stream: "
            "%s, %d workers</text>\n",
            left, weft_backend_name(row->backend), row->workers);
    fprintf(f,
            "<text x=\"%d\" y=\"42\" fill=\"#555\">%d tasks of N=%llu iterations; wall %.3f s, "
            "speed-up %.2f over serial</text>\n",
            left, NITEMS, (unsigned long long)n, row->wall, row->speedup);
    for (int w = 0; w < lanes; w++) {
        int y = top + w * (lane + gap);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f3f3f3\"/>\n", left,
                y, width - left - right, lane);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">worker %d</text>\n", left - 8,
                y + lane / 2 + 4, w);
    }
    for (int i = 0; i < NITEMS; i++) {
        const item_out *o = &row->out[i];
        int w = o->worker >= 0 && o->worker < lanes ? o->worker : 0;
        double x = left + o->start * scale, wd = (o->end - o->start) * scale;
        int y = top + w * (lane + gap);
        if (wd < 1) wd = 1;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" "
                "stroke=\"white\" stroke-width=\"1\"><title>item %d: %.3f s on worker %d</title>"
                "</rect>\n",
                x, y + 2, wd, lane - 4, palette[i % 10], i, o->end - o->start, o->worker);
        if (wd >= 16)
            fprintf(f,
                    "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"white\">%d</text>\n",
                    x + wd / 2, y + lane / 2 + 4, i);
    }
    int ay = top + lanes * (lane + gap);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, ay,
            width - right, ay);
    double step = nice_step(span);
    for (int k = 0; k * step <= span * 1.0001; k++) {
        double x = left + k * step * scale;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", x, ay,
                x, ay + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", x, ay + 18,
                k * step);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since map start (s)</text>\n",
            left + (width - left - right) / 2, ay + 38);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) return -1;
    printf("wrote %s\n", path);
    return 0;
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
    char trace[4200];
    snprintf(trace, sizeof trace, "%s/trace-threads.json", outdir);

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
        int rc = run_level(b, b == WEFT_BACKEND_SERIAL ? 1 : workers, n,
                           b == WEFT_BACKEND_THREADS ? trace : NULL, row);
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
        if (rows[r].backend != WEFT_BACKEND_THREADS) continue;
        struct stat st;
        if (stat(trace, &st) == 0)
            printf("wrote %s (open it in Perfetto)\n", trace);
        else
            fprintf(stderr, "levels: the executor wrote no %s\n", trace), status = 1;
        if (write_svg(&rows[r], n) != 0) status = 1;
    }
    if (status) fprintf(stderr, "levels: FAILED: a level's results differ or a level failed\n");
    return status;
}

/* bag_bench.c : bags (issue 14) beside dask.bag, numpy and the shell, in
 * the same invocation.
 *
 *   bag_map_filter       range(N) -> map(x * 3) -> filter(even) -> count,
 *                        N = 10M; us per item; dask.bag beside (N / 10
 *                        items: it is ~30x slower per item)
 *   bag_wordcount_1gib   a deterministic 1 GiB text (words of a Zipf-like
 *                        vocabulary): read_text -> split -> frequencies, s;
 *                        dask.bag read_text + frequencies, and the shell:
 *                        `tr -s ' ' '\n' | sort | uniq -c` and `wc -w`
 *                        (LC_ALL=C); peak RSS of the weft run in MiB
 *   bag_topk             k = 10 of 100M doubles read from a raw file; numpy
 *                        partition and a full sort of the loaded array
 *   bag_median_exact     the exact median of the same 100M; numpy.median
 *   bag_quantiles_approx 5 quantiles from KLL sketches (k = 256); the exact
 *                        5 quantiles and numpy.quantile beside
 *
 * Sizes scale with WEFT_BAG_BENCH_SCALE (default 1; 0.01 is a quick run),
 * repetitions with WEFT_BAG_BENCH_REPS (default 3). weft runs on threads
 * with 2 workers (the machine has 2 cores). Files are written to the
 * current directory (build/bench under scripts/run-bench.sh) and removed.
 * Usage: bag_bench [--no-anchors] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

static double scale = 1;
static int reps = 3;
static bool anchors = true;

static int times3(const void *rec, size_t len, const void *arg, size_t alen, weft_bag_emit *out)
{
    (void)arg, (void)alen, (void)len;
    int64_t v;
    memcpy(&v, rec, 8);
    return weft_bag_emit_int64(out, v * 3);
}
WEFT_BAG_FN(times3);

static int even(const void *rec, size_t len, const void *arg, size_t alen)
{
    (void)arg, (void)alen, (void)len;
    int64_t v;
    memcpy(&v, rec, 8);
    return (v & 1) == 0;
}
WEFT_BAG_FN(even);

static int split_words(const void *rec, size_t len, const void *arg, size_t alen,
                       weft_bag_emit *out)
{
    (void)arg, (void)alen;
    const unsigned char *p = rec, *end = p + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const unsigned char *w = p;
        while (p < end && *p != ' ' && *p != '\t') p++;
        if (p > w) {
            int rc = weft_bag_emit_rec(out, w, (size_t)(p - w));
            if (rc) return rc;
        }
    }
    return 0;
}
WEFT_BAG_FN(split_words);

static weft_executor *make_ex(void)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    weft_executor *ex = NULL;
    if (weft_executor_create(&o, &ex)) bench_fail("executor: %s", weft_last_error());
    return ex;
}

static void map_filter(weft_executor *ex)
{
    int64_t n = (int64_t)(10e6 * scale);
    if (n < 1000) n = 1000;
    double s[BENCH_MAX_SAMPLES];
    weft_bag *b = NULL, *m = NULL, *f = NULL;
    weft_bag_range(0, n, 1, 16, &b);
    weft_bag_map(b, times3, NULL, 0, &m);
    weft_bag_filter(m, even, NULL, 0, &f);
    bench_watchdog(600, "bag_map_filter weft");
    uint64_t warm;
    weft_bag_count(f, ex, &warm); /* untimed warm-up */
    for (int r = 0; r < reps; r++) {
        uint64_t c = 0;
        double t0 = bench_now();
        int rc = weft_bag_count(f, ex, &c);
        s[r] = (bench_now() - t0) * 1e6 / (double)n;
        if (rc || c != (uint64_t)(n + 1) / 2)
            bench_fail("bag_map_filter: count %llu rc %d", (unsigned long long)c, rc);
    }
    alarm(0);
    bench_report("bag_map_filter", "weft-threads", s, reps, "us/item");
    weft_bag_release(f);
    weft_bag_release(m);
    weft_bag_release(b);
    if (anchors) {
        char args[64];
        snprintf(args, sizeof args, "map_filter dask-threads %lld %d", (long long)(n / 10), reps);
        bench_python_report("bag_map_filter", "dask-threads", "us/item", "bag_anchor.py", args,
                            1200);
        bench_ratio("bag_map_filter", "dask-threads", "weft-threads");
        const bench_result *w = bench_get("bag_map_filter", "weft-threads");
        const bench_result *d = bench_get("bag_map_filter", "dask-threads");
        bench_target("bag_map_filter <= 0.05 us/item", w != NULL, w && w->median <= 0.05);
        bench_target("bag_map_filter >= 25x dask.bag", w && d,
                     w && d && d->median >= 25 * w->median);
    }
}

/* The deterministic text: lines of 5-15 words of a Zipf-like vocabulary. */
static int write_text(const char *path, uint64_t bytes)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    weft_rng r;
    weft_rng_seed(&r, 2026);
    static const char syl[][4] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu"};
    uint64_t written = 0;
    char line[256];
    while (written < bytes) {
        size_t n = 0;
        int words = 5 + (int)(weft_rng_next(&r) % 11);
        for (int w = 0; w < words; w++) {
            uint64_t rank = (uint64_t)(1.0 / (weft_rng_double(&r) + 1e-6)) % 50000;
            if (w) line[n++] = ' ';
            do {
                memcpy(line + n, syl[rank % 10], 2);
                n += 2;
                rank /= 10;
            } while (rank);
        }
        line[n++] = '\n';
        fwrite(line, 1, n, f);
        written += n;
    }
    return fclose(f);
}

static double shell_time(const char *cmd)
{
    double t0 = bench_now();
    int rc = system(cmd);
    double dt = bench_now() - t0;
    if (rc != 0) bench_fail("shell: '%s' exited %d", cmd, rc);
    return dt;
}

static void wordcount(weft_executor *ex)
{
    const char *path = "bag_bench_words.txt";
    uint64_t bytes = (uint64_t)((double)(1ull << 30) * scale);
    if (write_text(path, bytes)) {
        bench_fail("cannot write %s", path);
        return;
    }
    double s[BENCH_MAX_SAMPLES];
    uint64_t words = 0;
    bench_watchdog(1200, "bag_wordcount_1gib weft");
    for (int r = 0; r < reps; r++) {
        weft_bag *lines = NULL, *w = NULL, *fq = NULL;
        weft_bag_text_options o = {.blocksize = 32u << 20};
        double t0 = bench_now();
        int rc = weft_bag_read_text(path, &o, &lines);
        if (!rc) rc = weft_bag_flatmap(lines, split_words, NULL, 0, &w);
        if (!rc) rc = weft_bag_frequencies(w, &fq);
        /* every word's count, summed: the frequencies are computed whole */
        weft_bag_records *all = NULL;
        if (!rc) rc = weft_bag_collect(fq, ex, &all);
        s[r] = bench_now() - t0;
        uint64_t total = 0;
        for (size_t i = 0; !rc && i < weft_bag_records_count(all); i++) {
            const void *d, *v;
            size_t l, vl;
            int64_t c;
            weft_bag_records_get(all, i, &d, &l);
            weft_bag_pair_get(d, l, NULL, NULL, &v, &vl);
            memcpy(&c, v, 8);
            total += (uint64_t)c;
        }
        if (rc) bench_fail("bag_wordcount: %s", weft_last_error());
        if (r && total != words)
            bench_fail("bag_wordcount: %llu words, then %llu", (unsigned long long)words,
                       (unsigned long long)total);
        words = total;
        weft_bag_records_destroy(all);
        weft_bag_release(fq);
        weft_bag_release(w);
        weft_bag_release(lines);
    }
    alarm(0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0;
    printf("# bag_wordcount: %llu words in %llu bytes\n", (unsigned long long)words,
           (unsigned long long)bytes);
    bench_report("bag_wordcount_1gib", "weft-threads", s, reps, "s");
    bench_report("bag_wordcount_1gib_peak_rss", "weft-threads", &rss, 1, "MiB");
    bench_target("bag_wordcount peak RSS < 256 MiB", 1, rss < 256);
    if (anchors) {
        char cmd[512];
        double t[BENCH_MAX_SAMPLES];
        snprintf(cmd, sizeof cmd, "LC_ALL=C wc -w < %s > /dev/null", path);
        for (int r = 0; r < reps; r++) t[r] = shell_time(cmd);
        bench_report("bag_wordcount_1gib", "shell-wc-w", t, reps, "s");
        snprintf(cmd, sizeof cmd,
                 "LC_ALL=C tr -s ' ' '\\n' < %s | LC_ALL=C sort -S 200M | uniq -c > /dev/null",
                 path);
        t[0] = shell_time(cmd);
        bench_report("bag_wordcount_1gib", "shell-tr-sort-uniq", t, 1, "s");
        char args[256];
        snprintf(args, sizeof args, "wordcount dask-threads %s 1", path);
        bench_python_report("bag_wordcount_1gib", "dask-threads", "s", "bag_anchor.py", args, 3600);
        bench_ratio("bag_wordcount_1gib", "dask-threads", "weft-threads");
        bench_ratio("bag_wordcount_1gib", "shell-wc-w", "weft-threads");
        bench_ratio("bag_wordcount_1gib", "shell-tr-sort-uniq", "weft-threads");
        const bench_result *w = bench_get("bag_wordcount_1gib", "weft-threads");
        const bench_result *d = bench_get("bag_wordcount_1gib", "dask-threads");
        const bench_result *wc = bench_get("bag_wordcount_1gib", "shell-wc-w");
        bench_target("bag_wordcount >= 10x dask.bag", w && d,
                     w && d && d->median >= 10 * w->median);
        bench_target("bag_wordcount no slower than wc -w", w && wc,
                     w && wc && w->median <= wc->median);
    }
    unlink(path);
}

static void numbers(weft_executor *ex)
{
    const char *path = "bag_bench_doubles.f64";
    size_t n = (size_t)(100e6 * scale);
    if (n < 1000) n = 1000;
    {
        FILE *f = fopen(path, "wb");
        if (!f) {
            bench_fail("cannot write %s", path);
            return;
        }
        weft_rng r;
        weft_rng_seed(&r, 42);
        double buf[4096];
        for (size_t i = 0; i < n;) {
            size_t k = n - i < 4096 ? n - i : 4096;
            for (size_t j = 0; j < k; j++) buf[j] = weft_rng_double(&r) * 1e3 + weft_rng_double(&r);
            fwrite(buf, 8, k, f);
            i += k;
        }
        fclose(f);
    }
    weft_bag *b = NULL;
    if (weft_bag_read_raw(path, WEFT_BAG_DOUBLE, (n + 31) / 32, &b)) {
        bench_fail("read_raw: %s", weft_last_error());
        return;
    }
    double s[BENCH_MAX_SAMPLES];
    bench_watchdog(1200, "bag_topk weft");
    for (int r = 0; r < reps; r++) {
        weft_bag_records *top = NULL;
        double t0 = bench_now();
        int rc = weft_bag_topk(b, ex, 10, NULL, &top);
        s[r] = bench_now() - t0;
        if (rc || weft_bag_records_count(top) != 10) bench_fail("bag_topk: %s", weft_last_error());
        weft_bag_records_destroy(top);
    }
    bench_report("bag_topk", "weft-threads", s, reps, "s");
    bench_watchdog(1200, "bag_median_exact weft");
    double med = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        int rc = weft_bag_median(b, ex, NULL, &med);
        s[r] = bench_now() - t0;
        if (rc) bench_fail("bag_median: %s", weft_last_error());
    }
    printf("# bag_median_exact: weft median %a\n", med);
    bench_report("bag_median_exact", "weft-threads", s, reps, "s");
    double qs[] = {0.01, 0.25, 0.5, 0.75, 0.99}, q[5], qa[5];
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        int rc = weft_bag_quantiles_approx(b, ex, WEFT_BAG_DOUBLE, qs, 5, 256, qa);
        s[r] = bench_now() - t0;
        if (rc) bench_fail("bag_quantiles_approx: %s", weft_last_error());
    }
    bench_report("bag_quantiles_approx", "weft-threads-kll", s, reps, "s");
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        int rc = weft_bag_quantiles(b, ex, qs, 5, NULL, q);
        s[r] = bench_now() - t0;
        if (rc) bench_fail("bag_quantiles exact: %s", weft_last_error());
    }
    alarm(0);
    bench_report("bag_quantiles_approx", "weft-threads-exact", s, reps, "s");
    for (int i = 0; i < 5; i++)
        printf("# q=%.2f exact %.6f approx %.6f (range 0..1001)\n", qs[i], q[i], qa[i]);
    weft_bag_release(b);
    if (anchors) {
        char args[256];
        snprintf(args, sizeof args, "topk numpy-partition %s %d", path, reps);
        bench_python_report("bag_topk", "numpy-partition", "s", "bag_anchor.py", args, 1200);
        snprintf(args, sizeof args, "topk numpy-sort %s %d", path, reps);
        bench_python_report("bag_topk", "numpy-sort", "s", "bag_anchor.py", args, 1200);
        snprintf(args, sizeof args, "median numpy-median %s %d", path, reps);
        bench_python_report("bag_median_exact", "numpy-median", "s", "bag_anchor.py", args, 1200);
        snprintf(args, sizeof args, "quantiles numpy-quantile %s %d", path, reps);
        bench_python_report("bag_quantiles_approx", "numpy-quantile", "s", "bag_anchor.py", args,
                            1200);
        bench_ratio("bag_topk", "numpy-partition", "weft-threads");
        bench_ratio("bag_topk", "numpy-sort", "weft-threads");
        bench_ratio("bag_median_exact", "numpy-median", "weft-threads");
        bench_ratio("bag_quantiles_approx", "numpy-quantile", "weft-threads-kll");
        bench_ratio("bag_quantiles_approx", "numpy-quantile", "weft-threads-exact");
        const bench_result *w = bench_get("bag_topk", "weft-threads");
        const bench_result *p = bench_get("bag_topk", "numpy-partition");
        bench_target("bag_topk >= 2x numpy partition", w && p,
                     w && p && p->median >= 2 * w->median);
        w = bench_get("bag_median_exact", "weft-threads");
        p = bench_get("bag_median_exact", "numpy-median");
        bench_target("bag_median_exact faster than numpy.median", w && p,
                     w && p && w->median < p->median);
    }
    unlink(path);
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1;
    bench_begin(argv[0], __FILE__);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-anchors"))
            anchors = false;
        else {
            fprintf(stderr, "usage: bag_bench [--no-anchors]\n");
            return 2;
        }
    }
    const char *e = getenv("WEFT_BAG_BENCH_SCALE");
    if (e && atof(e) > 0) scale = atof(e);
    e = getenv("WEFT_BAG_BENCH_REPS");
    if (e && atoi(e) > 0) reps = atoi(e) < BENCH_MAX_SAMPLES ? atoi(e) : BENCH_MAX_SAMPLES;
    printf("# bag_bench: scale %g, %d repetitions, weft on threads with 2 workers\n", scale, reps);
    weft_executor *ex = make_ex();
    if (!ex) return bench_finish();
    wordcount(ex); /* first: its peak RSS is the process's so far */
    map_filter(ex);
    numbers(ex);
    weft_executor_destroy(ex);
    return bench_finish();
}

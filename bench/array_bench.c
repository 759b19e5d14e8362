/* array_bench.c : saving, loading and mapping a 1 GiB array (2^27 float64)
 * in .npy, beside a plain write()/read() of the same bytes, numpy's
 * np.save/np.load and joblib's dump/load, all in the same run:
 *
 *   npy_save_1gib   weft_array_save | plain write (open, one write, close)
 *                   | numpy np.save                       (ms, lower is better)
 *   npy_load_1gib   weft_array_load | plain read (open, fresh buffer, one
 *                   read, close) | numpy np.load
 *   npy_mmap_1gib   weft_array_load with WEFT_MMAP_READ, then destroy |
 *                   np.load(mmap_mode='r') | joblib.load(mmap_mode='r')  (us)
 *   dump_load_1gib  save then load, one round trip: weft | joblib.dump +
 *                   joblib.load | numpy
 *
 * Targets (issue 13): save and load within 1.2x of the plain write/read and
 * no slower than numpy's; mmap open under 100 us.
 *
 * The file lives in the current directory (build/bench under `make bench`):
 * not /tmp, which may be a tmpfs. Nothing is dropped from the page cache
 * (that needs root and hides nothing the user sees on a second run), so
 * these are warm-cache figures: the file was just written, reads come from
 * memory, writes go to the page cache (the kernel writes back later, as it
 * does for numpy). Each repetition runs weft and the plain baseline
 * back to back, in alternating order, so drift hits both.
 * Usage: array_bench [--quick]  (--quick: 2 repetitions of 256 MiB) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

static size_t n_elems = (size_t)1 << 27; /* 1 GiB of float64 */
static int reps = 5;

static const char *path = "array_bench.npy";
static const char *plain_path = "array_bench.raw";

static void write_plain(const void *buf, size_t n)
{
    unlink(plain_path);
    int fd = open(plain_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        bench_fail("open %s", plain_path);
        return;
    }
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (w <= 0) {
            bench_fail("write %s", plain_path);
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

/* A fresh buffer each time, as a load must allocate one; checks a value. */
static double read_plain(size_t n)
{
    int fd = open(plain_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        bench_fail("open %s", plain_path);
        return 0;
    }
    char *buf = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* huge pages, as numpy's and weft's big arrays (THP "madvise" mode) */
    if (buf != MAP_FAILED) madvise(buf, n, MADV_HUGEPAGE);
    size_t got = 0;
    while (buf != MAP_FAILED && got < n) {
        ssize_t r = read(fd, buf + got, n - got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == MAP_FAILED || got != n) {
        bench_fail("read %s", plain_path);
        return 0;
    }
    double v;
    memcpy(&v, buf + n - 8, 8);
    munmap(buf, n);
    return v;
}

int main(int argc, char **argv)
{
    bench_begin(argv[0], __FILE__);
    if (argc > 1 && !strcmp(argv[1], "--quick")) {
        n_elems >>= 2;
        reps = 2;
    }
    size_t nbytes = n_elems * 8;
    weft_array *a = NULL;
    if (weft_array_create(WEFT_DTYPE_FLOAT64, 1, &n_elems, NULL, &a) != 0) {
        bench_fail("weft_array_create: %s", weft_last_error());
        return bench_finish();
    }
    double *d = weft_array_data(a);
    for (size_t i = 0; i < n_elems; i++) d[i] = (double)i;
    const double last = (double)(n_elems - 1);
    printf("# %zu MiB of float64 in %s (cwd); warm page cache; %d repetitions\n", nbytes >> 20,
           path, reps);

    double save_w[BENCH_MAX_SAMPLES], save_p[BENCH_MAX_SAMPLES], load_w[BENCH_MAX_SAMPLES],
        load_p[BENCH_MAX_SAMPLES], mm[BENCH_MAX_SAMPLES], rt[BENCH_MAX_SAMPLES];
    bench_watchdog(600, "weft and plain save/load");
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < 2; k++) {
            bool weft_first = (r & 1) == 0;
            if ((k == 0) == weft_first) {
                double t0 = bench_now();
                if (weft_array_save(a, path, NULL) != 0)
                    bench_fail("weft_array_save: %s", weft_last_error());
                save_w[r] = (bench_now() - t0) * 1e3;
            } else {
                double t0 = bench_now();
                write_plain(d, nbytes);
                save_p[r] = (bench_now() - t0) * 1e3;
            }
        }
        for (int k = 0; k < 2; k++) {
            bool weft_first = (r & 1) == 1;
            if ((k == 0) == weft_first) {
                double t0 = bench_now();
                weft_array *b = NULL;
                if (weft_array_load(path, NULL, &b) != 0)
                    bench_fail("weft_array_load: %s", weft_last_error());
                else if (((double *)weft_array_data(b))[n_elems - 1] != last)
                    bench_fail("weft_array_load: wrong value");
                weft_array_destroy(b);
                load_w[r] = (bench_now() - t0) * 1e3;
            } else {
                double t0 = bench_now();
                if (read_plain(nbytes) != last) bench_fail("plain read: wrong value");
                load_p[r] = (bench_now() - t0) * 1e3;
            }
        }
        /* mmap open: many opens per sample (each one is microseconds) */
        weft_npy_load_options mo = {WEFT_MMAP_READ};
        double t0 = bench_now();
        int opens = 200;
        for (int i = 0; i < opens; i++) {
            weft_array *b = NULL;
            if (weft_array_load(path, &mo, &b) != 0) {
                bench_fail("weft_array_load mmap: %s", weft_last_error());
                break;
            }
            weft_array_destroy(b);
        }
        mm[r] = (bench_now() - t0) / opens * 1e6;
        /* round trip, as joblib.dump + joblib.load */
        t0 = bench_now();
        weft_array *b = NULL;
        if (weft_array_save(a, path, NULL) != 0 || weft_array_load(path, NULL, &b) != 0)
            bench_fail("round trip: %s", weft_last_error());
        weft_array_destroy(b);
        rt[r] = (bench_now() - t0) * 1e3;
    }
    alarm(0);
    /* one mapped value, to show the map is the file */
    {
        weft_npy_load_options mo = {WEFT_MMAP_READ};
        weft_array *b = NULL;
        if (weft_array_load(path, &mo, &b) != 0 ||
            ((double *)weft_array_data(b))[n_elems - 1] != last)
            bench_fail("mmap: wrong value");
        weft_array_destroy(b);
    }
    weft_array_destroy(a);
    unlink(plain_path);
    bench_report("npy_save_1gib", "weft", save_w, reps, "ms");
    bench_report("npy_save_1gib", "plain-write", save_p, reps, "ms");
    bench_report("npy_load_1gib", "weft", load_w, reps, "ms");
    bench_report("npy_load_1gib", "plain-read", load_p, reps, "ms");
    bench_report("npy_mmap_1gib", "weft", mm, reps, "us");
    bench_report("dump_load_1gib", "weft", rt, reps, "ms");

    /* numpy and joblib on the same file name and size */
    char args[256];
    const char *modes[][3] = {
        {"npy_save_1gib", "numpy", "save"},        {"npy_load_1gib", "numpy", "load"},
        {"npy_mmap_1gib", "numpy", "mmap"},        {"npy_mmap_1gib", "joblib", "joblib_mmap"},
        {"dump_load_1gib", "joblib", "dump_load"}, {"dump_load_1gib", "numpy", "save_load"}};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        snprintf(args, sizeof args, "%s %s %zu %d", modes[k][2], path, n_elems, reps);
        bench_python_report(modes[k][0], modes[k][1],
                            strcmp(modes[k][0], "npy_mmap_1gib") ? "ms" : "us", "array_anchor.py",
                            args, 900);
    }
    unlink(path);
    unlink("array_bench.joblib");

    bench_ratio("npy_save_1gib", "plain-write", "weft");
    bench_ratio("npy_save_1gib", "numpy", "weft");
    bench_ratio("npy_load_1gib", "plain-read", "weft");
    bench_ratio("npy_load_1gib", "numpy", "weft");
    bench_ratio("npy_mmap_1gib", "numpy", "weft");
    bench_ratio("npy_mmap_1gib", "joblib", "weft");
    bench_ratio("dump_load_1gib", "joblib", "weft");
    bench_ratio("dump_load_1gib", "numpy", "weft");
    const bench_result *ws = bench_get("npy_save_1gib", "weft"),
                       *ps = bench_get("npy_save_1gib", "plain-write"),
                       *ns = bench_get("npy_save_1gib", "numpy"),
                       *wl = bench_get("npy_load_1gib", "weft"),
                       *pl = bench_get("npy_load_1gib", "plain-read"),
                       *nl = bench_get("npy_load_1gib", "numpy"),
                       *wm = bench_get("npy_mmap_1gib", "weft");
    bench_target("npy_save_1gib: weft within 1.2x of a plain write", ws && ps,
                 ws && ps && ws->median <= 1.2 * ps->median);
    bench_target("npy_save_1gib: weft no slower than numpy", ws && ns,
                 ws && ns && ws->median <= ns->median);
    bench_target("npy_load_1gib: weft within 1.2x of a plain read", wl && pl,
                 wl && pl && wl->median <= 1.2 * pl->median);
    bench_target("npy_load_1gib: weft no slower than numpy", wl && nl,
                 wl && nl && wl->median <= nl->median);
    bench_target("npy_mmap_1gib: weft open under 100 us", wm != NULL, wm && wm->median < 100);
    return bench_finish();
}

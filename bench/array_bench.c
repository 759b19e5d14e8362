/* array_bench.c : saving, loading and mapping a 1 GiB array (2^27 float64)
 * in .npy, beside a plain write()/read() of the same bytes, numpy's
 * np.save/np.load and joblib's dump/load, all in the same run:
 *
 *   npy_save_1gib   weft_array_save, atomic (the default) and in place |
 *                   plain write (np.save's system calls) | atomic plain
 *                   write (weft's default save's system calls) | numpy
 *                   np.save                              (ms, lower is better)
 *   npy_load_1gib   weft_array_load | plain read (open, fresh buffer, one
 *                   read, close) | numpy np.load
 *   npy_mmap_1gib   weft_array_load with WEFT_MMAP_READ, then destroy |
 *                   np.load(mmap_mode='r') | joblib.load(mmap_mode='r')  (us)
 *   dump_load_1gib  save then load, one round trip: weft | joblib.dump +
 *                   joblib.load | numpy
 *
 * Targets (issue 13): save and load within 1.2x of the plain write/read and
 * no slower than numpy's; mmap open under 100 us. A save is checked against
 * the plain write that gives the same guarantee: in place against np.save's
 * calls and numpy, atomic against the atomic plain write (on this kind of
 * VM memory touched anew costs a host fault per page, and an atomic save
 * needs 1 GiB of new page cache beside the old file's: docs/array.md, "Why
 * a save costs what it costs"); atomic against numpy is printed too.
 *
 * The files live in the current directory (build/bench under `make bench`):
 * not /tmp, which may be a tmpfs. Nothing is dropped from the page cache
 * (that needs root and hides nothing the user sees on a second run), so
 * these are warm-cache figures: reads come from memory, writes go to the
 * page cache and the kernel writes them back later.
 *
 * Why the save figures are fair. A 1 GiB save costs what the page cache and
 * the writeback queue make it cost: writing 1 GiB can push the dirty total
 * over vm.dirty_background_ratio, the flusher then writes back the oldest
 * dirty file, and replacing (truncating or unlinking) a file whose pages
 * are under writeback waits for them. So every system must meet the same
 * state:
 * - five files, one per system (array_bench.npy and
 *   array_bench_in_place.npy for weft, array_bench.raw and
 *   array_bench_atomic.raw for the plain writes, array_bench_numpy.npy for
 *   numpy), each written once untimed first, so that every timed save
 *   replaces a 1 GiB file of its own system, written one round earlier;
 * - the repetitions are interleaved: each round saves once with every
 *   system, the order rotated from round to round (each system comes in
 *   each place equally often: 10 rounds), so each meets the writeback and
 *   the free memory the others left as often as they meet its own;
 * - numpy runs in one Python process that lives through the whole phase
 *   (array_anchor.py serve): it builds its array once, and saves when this
 *   program tells it to on a pipe, timing np.save with its own clock (so
 *   neither Python's start nor the pipe is timed); weft and the plain write
 *   are timed here the same way, around the one call;
 * - the same untimed pause before every timed save, whatever the system
 *   (SAVE_PAUSE_MS; no sync(), which would measure another state: every
 *   file clean on the disk), and /proc/meminfo's Dirty and Writeback are
 *   printed before each save, so the states each system met can be compared.
 * The plain write makes the same system calls as np.save (open with O_TRUNC,
 * fallocate(FALLOC_FL_KEEP_SIZE), one write of the data, close: strace of
 * numpy 1.24); without the fallocate, ext4 pushes the truncated file to the
 * disk at close (auto_da_alloc) and the plain write took 3x numpy's time.
 * Usage: array_bench [--quick]  (--quick: 256 MiB, fewer repetitions) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

#define SAVE_PAUSE_MS 300

static size_t n_elems = (size_t)1 << 27; /* 1 GiB of float64 */
static int reps = 5;
static int save_rounds = 10; /* a multiple of the 5 systems: every order as often */

static const char *path = "array_bench.npy";
static const char *plain_path = "array_bench.raw";
static const char *in_place_path = "array_bench_in_place.npy";
static const char *plain_atomic_path = "array_bench_atomic.raw";
static const char *numpy_path = "array_bench_numpy.npy";

/* What np.save does, in C (strace of numpy 1.24): open with O_TRUNC,
 * fallocate(FALLOC_FL_KEEP_SIZE) of the whole size, one write, close. With
 * `atomic`, what weft's default save does instead: a new temporary file,
 * fallocate, one write, close, renameat2(RENAME_EXCHANGE) with the old
 * file, unlink of the old one. */
static void write_plain(const void *buf, size_t n, bool atomic)
{
    const char *target = atomic ? plain_atomic_path : plain_path;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", target);
    int fd = atomic ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                    : open(plain_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        bench_fail("open %s", atomic ? tmp : plain_path);
        return;
    }
    if (fallocate(fd, atomic ? 0 : FALLOC_FL_KEEP_SIZE, 0, (off_t)n) != 0)
        bench_fail("fallocate %s", target);
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
    if (close(fd) != 0) bench_fail("close %s", target);
    if (atomic) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) {
            if (unlink(tmp) != 0) bench_fail("unlink %s", tmp);
        } else if (rename(tmp, target) != 0) {
            bench_fail("rename %s", tmp);
        }
    }
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

/* /proc/meminfo's Dirty and Writeback, in MiB (-1 if unreadable). */
static void dirty_state(long *dirty, long *writeback)
{
    *dirty = *writeback = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return;
    char line[256];
    long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Dirty: %ld kB", &kb) == 1) *dirty = kb >> 10;
        if (sscanf(line, "Writeback: %ld kB", &kb) == 1) *writeback = kb >> 10;
    }
    fclose(f);
}

/* numpy's np.save in one persistent Python process (array_anchor.py serve):
 * "save\n" on its stdin, "sample MS\n" back. */
typedef struct numpy_saver {
    pid_t pid;
    FILE *to, *from;
} numpy_saver;

static void numpy_saver_stop(numpy_saver *s)
{
    if (s->to) {
        fputs("quit\n", s->to);
        fclose(s->to);
    }
    if (s->from) fclose(s->from);
    int st = 0;
    if (s->pid > 0 && (waitpid(s->pid, &st, 0) != s->pid || !WIFEXITED(st) || WEXITSTATUS(st)))
        bench_fail("array_anchor.py serve: exit status %d", st);
    memset(s, 0, sizeof *s);
}

static bool numpy_saver_start(numpy_saver *s, const char *file, size_t n)
{
    memset(s, 0, sizeof *s);
    const char *py = "/usr/bin/python3";
    if (access(py, X_OK) != 0) return false;
    const char *dirs[] = {bench_g.src_dir, "../../bench", "../bench", "bench"};
    char script[PATH_MAX + 32];
    bool found = false;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !found; i++) {
        snprintf(script, sizeof script, "%s/array_anchor.py", dirs[i]);
        found = access(script, R_OK) == 0;
    }
    int to[2], from[2];
    if (!found || pipe2(to, O_CLOEXEC) != 0) return false;
    if (pipe2(from, O_CLOEXEC) != 0) {
        close(to[0]);
        close(to[1]);
        return false;
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* dup2 clears O_CLOEXEC on 0 and 1; the other ends close at exec */
        if (dup2(to[0], 0) < 0 || dup2(from[1], 1) < 0) _exit(127);
        execl(py, py, script, "serve", file, count, "0", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    if (pid < 0) {
        close(to[1]);
        close(from[0]);
        return false;
    }
    s->pid = pid;
    s->to = fdopen(to[1], "w");
    s->from = fdopen(from[0], "r");
    char line[512];
    while (s->to && s->from && fgets(line, sizeof line, s->from)) {
        if (!strncmp(line, "ready", 5)) return true;
        printf("# py: %s", line);
    }
    numpy_saver_stop(s);
    return false;
}

/* One np.save, timed by Python: ms, or -1. */
static double numpy_saver_save(numpy_saver *s)
{
    if (fputs("save\n", s->to) == EOF || fflush(s->to) != 0) return -1;
    char line[512];
    double v;
    while (fgets(line, sizeof line, s->from)) {
        if (sscanf(line, "sample %lf", &v) == 1) return v;
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "FAIL", 4))
            bench_fail("array_anchor.py serve: %s", line);
        else
            printf("# py: %s\n", line);
    }
    return -1;
}

enum {
    SYS_WEFT,
    SYS_WEFT_IN_PLACE,
    SYS_PLAIN,
    SYS_PLAIN_ATOMIC,
    SYS_NUMPY,
    NSYS
};
static const char *sys_names[NSYS] = {"weft", "weft-in-place", "plain-write", "plain-write-atomic",
                                      "numpy"};

/* The save phase: the five systems interleaved (see the header). */
static void save_phase(const weft_array *a, size_t nbytes)
{
    numpy_saver np;
    bool have_np = numpy_saver_start(&np, numpy_path, n_elems);
    if (!have_np) bench_skip("npy_save_1gib", "numpy", "/usr/bin/python3, numpy or the anchor");
    double s[NSYS][BENCH_MAX_SAMPLES];
    long dirty[NSYS][BENCH_MAX_SAMPLES], wb[NSYS][BENCH_MAX_SAMPLES];
    int ns[NSYS] = {0};
    bool ok = true;
    /* round -1: every system writes its file once, untimed */
    for (int r = -1; r < save_rounds && ok; r++) {
        char line[512];
        int len = snprintf(line, sizeof line, "# save round %d:", r);
        for (int k = 0; k < NSYS && ok; k++) {
            int sys = (k + (r < 0 ? 0 : r)) % NSYS;
            if (sys == SYS_NUMPY && !have_np) continue;
            bench_settle(SAVE_PAUSE_MS);
            long d, w;
            dirty_state(&d, &w);
            double v = -1;
            if (sys == SYS_NUMPY) {
                v = numpy_saver_save(&np);
                if (v < 0) {
                    bench_fail("np.save: the anchor did not answer");
                    ok = false;
                }
            } else {
                double t0 = bench_now();
                if (sys == SYS_WEFT || sys == SYS_WEFT_IN_PLACE) {
                    weft_npy_save_options so = {.mode = sys == SYS_WEFT ? WEFT_NPY_SAVE_ATOMIC
                                                                        : WEFT_NPY_SAVE_IN_PLACE};
                    if (weft_array_save(a, sys == SYS_WEFT ? path : in_place_path, &so) != 0) {
                        bench_fail("weft_array_save: %s", weft_last_error());
                        ok = false;
                    }
                } else {
                    write_plain(weft_array_data(a), nbytes, sys == SYS_PLAIN_ATOMIC);
                }
                v = (bench_now() - t0) * 1e3;
            }
            if (len > 0 && (size_t)len < sizeof line)
                len += snprintf(line + len, sizeof line - (size_t)len,
                                " %s %.0f ms (dirty %ld, writeback %ld MiB before)", sys_names[sys],
                                v, d, w);
            if (r < 0 || v < 0) continue;
            s[sys][ns[sys]] = v;
            dirty[sys][ns[sys]] = d;
            wb[sys][ns[sys]++] = w;
        }
        printf("%s\n", line);
        fflush(stdout);
    }
    if (have_np) numpy_saver_stop(&np);
    /* what each system met: the median dirty and writeback MiB before its saves */
    for (int sys = 0; sys < NSYS; sys++) {
        if (!ns[sys]) continue;
        double dd[BENCH_MAX_SAMPLES], ww[BENCH_MAX_SAMPLES];
        for (int i = 0; i < ns[sys]; i++) {
            dd[i] = (double)dirty[sys][i];
            ww[i] = (double)wb[sys][i];
        }
        qsort(dd, (size_t)ns[sys], sizeof *dd, bench_cmp_double);
        qsort(ww, (size_t)ns[sys], sizeof *ww, bench_cmp_double);
        printf("# before the saves of %s: median dirty %.0f MiB, writeback %.0f MiB\n",
               sys_names[sys], dd[ns[sys] / 2], ww[ns[sys] / 2]);
    }
    for (int sys = 0; sys < NSYS; sys++)
        if (ns[sys] == save_rounds)
            bench_report("npy_save_1gib", sys_names[sys], s[sys], ns[sys], "ms");
    /* numpy's file is what np.save writes: weft reads it back */
    if (have_np) {
        weft_npy_load_options mo = {WEFT_MMAP_READ};
        weft_array *b = NULL;
        if (weft_array_load(numpy_path, &mo, &b) != 0 ||
            ((double *)weft_array_data(b))[n_elems - 1] != (double)(n_elems - 1))
            bench_fail("numpy's file: wrong value (%s)", weft_last_error());
        weft_array_destroy(b);
    }
    unlink(numpy_path);
    /* weft's in-place file is the atomic one's bytes */
    weft_array *b = NULL;
    if (weft_array_load(in_place_path, &(weft_npy_load_options){WEFT_MMAP_READ}, &b) != 0 ||
        ((double *)weft_array_data(b))[n_elems - 1] != (double)(n_elems - 1))
        bench_fail("weft's in-place file: wrong value (%s)", weft_last_error());
    weft_array_destroy(b);
    unlink(in_place_path);
    unlink(plain_atomic_path);
}

int main(int argc, char **argv)
{
    bench_begin(argv[0], __FILE__);
    if (argc > 1 && !strcmp(argv[1], "--quick")) {
        n_elems >>= 2;
        reps = 2;
        save_rounds = 5;
    }
    signal(SIGPIPE, SIG_IGN); /* a dead anchor is a failed check, not a dead bench */
    size_t nbytes = n_elems * 8;
    weft_array *a = NULL;
    if (weft_array_create(WEFT_DTYPE_FLOAT64, 1, &n_elems, NULL, &a) != 0) {
        bench_fail("weft_array_create: %s", weft_last_error());
        return bench_finish();
    }
    double *d = weft_array_data(a);
    for (size_t i = 0; i < n_elems; i++) d[i] = (double)i;
    const double last = (double)(n_elems - 1);
    long d0, w0;
    dirty_state(&d0, &w0);
    printf("# %zu MiB of float64 in %s (cwd); warm page cache; %d save rounds, %d repetitions of "
           "the rest; dirty %ld MiB, writeback %ld MiB at start\n",
           nbytes >> 20, path, save_rounds, reps, d0, w0);

    bench_watchdog(900, "save phase (weft, plain writes, numpy interleaved)");
    save_phase(a, nbytes);
    alarm(0);

    double load_w[BENCH_MAX_SAMPLES], load_p[BENCH_MAX_SAMPLES], mm[BENCH_MAX_SAMPLES],
        rt[BENCH_MAX_SAMPLES];
    bench_watchdog(600, "weft and plain load");
    for (int r = 0; r < reps; r++) {
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
    bench_report("npy_load_1gib", "weft", load_w, reps, "ms");
    bench_report("npy_load_1gib", "plain-read", load_p, reps, "ms");
    bench_report("npy_mmap_1gib", "weft", mm, reps, "us");
    bench_report("dump_load_1gib", "weft", rt, reps, "ms");

    /* numpy and joblib on the same file name and size */
    char args[256];
    const char *modes[][3] = {{"npy_load_1gib", "numpy", "load"},
                              {"npy_mmap_1gib", "numpy", "mmap"},
                              {"npy_mmap_1gib", "joblib", "joblib_mmap"},
                              {"dump_load_1gib", "joblib", "dump_load"},
                              {"dump_load_1gib", "numpy", "save_load"}};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        snprintf(args, sizeof args, "%s %s %zu %d", modes[k][2], path, n_elems, reps);
        bench_python_report(modes[k][0], modes[k][1],
                            strcmp(modes[k][0], "npy_mmap_1gib") ? "ms" : "us", "array_anchor.py",
                            args, 900);
    }
    unlink(path);
    unlink("array_bench.joblib");

    bench_ratio("npy_save_1gib", "plain-write-atomic", "weft");
    bench_ratio("npy_save_1gib", "plain-write", "weft-in-place");
    bench_ratio("npy_save_1gib", "numpy", "weft-in-place");
    bench_ratio("npy_save_1gib", "numpy", "weft");
    bench_ratio("npy_save_1gib", "numpy", "plain-write");
    bench_ratio("npy_save_1gib", "plain-write", "plain-write-atomic");
    bench_ratio("npy_load_1gib", "plain-read", "weft");
    bench_ratio("npy_load_1gib", "numpy", "weft");
    bench_ratio("npy_mmap_1gib", "numpy", "weft");
    bench_ratio("npy_mmap_1gib", "joblib", "weft");
    bench_ratio("dump_load_1gib", "joblib", "weft");
    bench_ratio("dump_load_1gib", "numpy", "weft");
    const bench_result *ws = bench_get("npy_save_1gib", "weft"),
                       *wi = bench_get("npy_save_1gib", "weft-in-place"),
                       *ps = bench_get("npy_save_1gib", "plain-write"),
                       *pa = bench_get("npy_save_1gib", "plain-write-atomic"),
                       *ns = bench_get("npy_save_1gib", "numpy"),
                       *wl = bench_get("npy_load_1gib", "weft"),
                       *pl = bench_get("npy_load_1gib", "plain-read"),
                       *nl = bench_get("npy_load_1gib", "numpy"),
                       *wm = bench_get("npy_mmap_1gib", "weft");
    bench_target("npy_save_1gib: weft-in-place within 1.2x of a plain write (np.save's calls)",
                 wi && ps, wi && ps && wi->median <= 1.2 * ps->median);
    bench_target("npy_save_1gib: weft-in-place no slower than numpy", wi && ns,
                 wi && ns && wi->median <= ns->median);
    bench_target("npy_save_1gib: weft (atomic) within 1.2x of an atomic plain write", ws && pa,
                 ws && pa && ws->median <= 1.2 * pa->median);
    bench_target("npy_save_1gib: weft (atomic) no slower than numpy (in place)", ws && ns,
                 ws && ns && ws->median <= ns->median);
    bench_target("npy_load_1gib: weft within 1.2x of a plain read", wl && pl,
                 wl && pl && wl->median <= 1.2 * pl->median);
    bench_target("npy_load_1gib: weft no slower than numpy", wl && nl,
                 wl && nl && wl->median <= nl->median);
    bench_target("npy_mmap_1gib: weft open under 100 us", wm != NULL, wm && wm->median < 100);
    return bench_finish();
}

/* memo_bench : the memo (weft_memo) against joblib.Memory, in one run.
 *
 *   memo_hit_small    a hit: 64-byte input, 64-byte output (weft_memo_get on
 *                     disk, the in-memory tier off; joblib: a call of a
 *                     Memory.cache'd function already computed); also
 *                     weft-memory-cpu: the in-memory tier on, warmed
 *   memo_hit_1mib     a hit with a 1 MiB input, 64-byte output: mostly the
 *                     hashing of the input
 *   memo_hash_1mib    the input hashing alone, GB/s: weft_memo_contains of a
 *                     1 MiB input that is not stored (a hash and one failed
 *                     open)
 *                     and pread-floor: the system call a disk hit cannot
 *                     avoid, alone -- one pread of the 136-byte record from
 *                     an open file, in a loop (the floor of a disk hit here)
 *   memo_store_small  a store: 64-byte input and output, new keys (weft:
 *                     weft_memo_put; joblib: the first call of the cached
 *                     function, which runs it -- it returns its input -- and
 *                     writes the result)
 *
 * Unit: microseconds per call (GB/s for the hashing). Every sample is the
 * mean over a block of calls. Each row is reported twice: by the wall clock
 * (systems weft, joblib) and by the calling thread's CPU time (weft-cpu,
 * joblib-cpu: CLOCK_THREAD_CPUTIME_ID, Python's time.thread_time), which a
 * machine busy with other work inflates far less; the directories are fresh, under the working
 * directory (build/bench: the disk the project lives on), for both systems.
 * joblib through bench/memo_anchor.py (/usr/bin/python3).
 * Usage: memo_bench [--quick] [--no-anchors]
 * Targets (issue 13): a small hit at most 10 us and at least 50x cheaper
 * than joblib's; hashing at least 5 GB/s. */
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

#define REPS 7
#define SMALL_KEYS 2000
#define BIG (1u << 20)

static weft_memo *fresh(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", name);
    if (system(cmd) != 0) bench_fail("cannot remove %s", name);
    weft_memo *m = NULL;
    if (weft_memo_open(name, 0, NULL, &m) != 0) bench_fail("weft_memo_open: %s", weft_last_error());
    return m;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void key_of(uint64_t i, unsigned char in[64])
{
    memset(in, 0x5a, 64);
    memcpy(in, &i, sizeof i);
}

static void measure_weft(int reps)
{
    weft_memo *m = fresh("memo-bench-weft");
    if (!m) return;
    unsigned char in[64], out[64];
    memset(out, 7, sizeof out);
    double st[BENCH_MAX_SAMPLES], hit[BENCH_MAX_SAMPLES], big[BENCH_MAX_SAMPLES],
        hash[BENCH_MAX_SAMPLES];
    double cst[BENCH_MAX_SAMPLES], chit[BENCH_MAX_SAMPLES], cbig[BENCH_MAX_SAMPLES],
        chash[BENCH_MAX_SAMPLES];
    uint64_t next = 0;
    int block = SMALL_KEYS / reps;
    bench_watchdog(600, "bench=memo system=weft");
    for (int r = 0; r < reps; r++) { /* stores: new keys */
        double t0 = bench_now(), c0 = cpu_now();
        for (int i = 0; i < block; i++) {
            key_of(next++, in);
            if (weft_memo_put(m, "f", in, sizeof in, out, sizeof out) != 0)
                bench_fail("weft_memo_put: %s", weft_last_error());
        }
        st[r] = (bench_now() - t0) / block * 1e6;
        cst[r] = (cpu_now() - c0) / block * 1e6;
    }
    uint64_t sum = 0;
    for (int r = 0; r < reps; r++) { /* hits over the stored keys */
        double t0 = bench_now(), c0 = cpu_now();
        for (int i = 0; i < block; i++) {
            key_of((uint64_t)(r * block + i), in);
            void *o = NULL;
            size_t ol = 0;
            if (weft_memo_get(m, "f", in, sizeof in, &o, &ol) != 0 || ol != 64)
                bench_fail("weft_memo_get missed: %s", weft_last_error());
            else
                sum += ((unsigned char *)o)[5];
            free(o);
        }
        hit[r] = (bench_now() - t0) / block * 1e6;
        chit[r] = (cpu_now() - c0) / block * 1e6;
    }
    if (sum != (uint64_t)reps * block * 7) bench_fail("memo_hit_small: wrong outputs");
    /* the floor: one pread of a record's 136 bytes from an open file */
    double floor_w[BENCH_MAX_SAMPLES];
    {
        int fd = open("memo-bench-floor", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        unsigned char rec[136 * 64];
        memset(rec, 1, sizeof rec);
        if (fd < 0 || write(fd, rec, sizeof rec) != (ssize_t)sizeof rec)
            bench_fail("memo-bench-floor: cannot write");
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now();
            for (int i = 0; i < block; i++)
                if (pread(fd, rec, 136, (off_t)(136 * (i % 64))) != 136)
                    bench_fail("memo-bench-floor: short read");
            floor_w[r] = (bench_now() - t0) / block * 1e6;
        }
        if (fd >= 0) close(fd);
        unlink("memo-bench-floor");
    }
    /* the same hits through a handle with the in-memory tier, warmed */
    weft_memo_options mo = {.memory_bytes = 4u << 20};
    weft_memo *mm = NULL;
    double mhit[BENCH_MAX_SAMPLES];
    if (weft_memo_open("memo-bench-weft", 0, &mo, &mm) != 0)
        bench_fail("weft_memo_open: %s", weft_last_error());
    for (int pass = 0; mm && pass < 2; pass++)
        for (int r = 0; r < reps; r++) {
            double c0 = cpu_now();
            for (int i = 0; i < block; i++) {
                key_of((uint64_t)(r * block + i), in);
                void *o = NULL;
                size_t ol = 0;
                if (weft_memo_get(mm, "f", in, sizeof in, &o, &ol) != 0 || ol != 64)
                    bench_fail("weft_memo_get (memory tier) missed");
                free(o);
            }
            mhit[r] = (cpu_now() - c0) / block * 1e6;
        }
    weft_memo_close(mm);
    unsigned char *bin = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) bin[i] = (unsigned char)(i * 131 + 7);
    if (weft_memo_put(m, "f", bin, BIG, out, sizeof out) != 0)
        bench_fail("weft_memo_put: %s", weft_last_error());
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now(), c0 = cpu_now();
        for (int i = 0; i < 20; i++) {
            void *o = NULL;
            size_t ol = 0;
            if (weft_memo_get(m, "f", bin, BIG, &o, &ol) != 0 || ol != 64)
                bench_fail("memo_hit_1mib missed");
            free(o);
        }
        big[r] = (bench_now() - t0) / 20 * 1e6;
        cbig[r] = (cpu_now() - c0) / 20 * 1e6;
        bin[BIG - 1] ^= 1; /* a key not stored */
        t0 = bench_now();
        c0 = cpu_now();
        for (int i = 0; i < 20; i++)
            if (weft_memo_contains(m, "g", bin, BIG)) bench_fail("memo_hash_1mib: found");
        hash[r] = BIG / ((bench_now() - t0) / 20) / 1e9;
        chash[r] = BIG / ((cpu_now() - c0) / 20) / 1e9;
        bin[BIG - 1] ^= 1;
    }
    alarm(0);
    bench_report("memo_store_small", "weft", st, reps, "us/call");
    bench_report("memo_hit_small", "weft", hit, reps, "us/call");
    bench_report("memo_hit_1mib", "weft", big, reps, "us/call");
    bench_report("memo_hash_1mib", "weft", hash, reps, "GB/s");
    bench_report("memo_store_small", "weft-cpu", cst, reps, "us/call");
    bench_report("memo_hit_small", "weft-cpu", chit, reps, "us/call");
    bench_report("memo_hit_1mib", "weft-cpu", cbig, reps, "us/call");
    bench_report("memo_hash_1mib", "weft-cpu", chash, reps, "GB/s");
    bench_report("memo_hit_small", "weft-memory-cpu", mhit, reps, "us/call");
    bench_report("memo_hit_small", "pread-floor", floor_w, reps, "us/call");
    free(bin);
    weft_memo_close(m);
    if (system("rm -rf memo-bench-weft") != 0) bench_fail("cannot remove memo-bench-weft");
}

int main(int argc, char **argv)
{
    bench_begin(argv[0], __FILE__);
    int reps = REPS;
    bool anchors_too = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            reps = 3;
        } else if (!strcmp(argv[i], "--no-anchors")) {
            anchors_too = false;
        } else {
            fprintf(stderr, "usage: memo_bench [--quick] [--no-anchors]\n");
            return 2;
        }
    }
    measure_weft(reps);
    if (anchors_too) {
        const char *rows[] = {"memo_store_small", "memo_hit_small", "memo_hit_1mib"};
        const char *what[] = {"store", "hit", "hit1mib"};
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 3; k++) {
                char args[64];
                snprintf(args, sizeof args, "%s %d %s", what[k], reps, c ? "cpu" : "wall");
                bench_python_report(rows[k], c ? "joblib-cpu" : "joblib", "us/call",
                                    "memo_anchor.py", args, 900);
                bench_settle(100);
            }
        for (int k = 0; k < 3; k++) {
            bench_ratio(rows[k], "joblib", "weft");
            bench_ratio(rows[k], "joblib-cpu", "weft-cpu");
        }
        bench_ratio("memo_hit_small", "joblib-cpu", "weft-memory-cpu");
    }
    for (int c = 0; c < 2; c++) {
        const char *ws = c ? "weft-cpu" : "weft", *js = c ? "joblib-cpu" : "joblib";
        const bench_result *w = bench_get("memo_hit_small", ws);
        const bench_result *j = bench_get("memo_hit_small", js);
        const bench_result *h = bench_get("memo_hash_1mib", ws);
        char what[128];
        snprintf(what, sizeof what, "memo_hit_small: %s <= 10 us", ws);
        bench_target(what, w != NULL, w && w->median <= 10);
        snprintf(what, sizeof what, "memo_hit_small: %s >= 50x cheaper than %s", ws, js);
        bench_target(what, w && j, w && j && j->median / w->median >= 50);
        snprintf(what, sizeof what, "memo_hash_1mib: %s >= 5 GB/s", ws);
        bench_target(what, h != NULL, h && h->median >= 5);
    }
    return bench_finish();
}

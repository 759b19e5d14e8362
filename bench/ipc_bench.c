/* ipc_bench : weft's IPC objects between two processes, against raw pipes
 * and Python's multiprocessing (Pipe, Queue), in one run.
 *
 *   channel_pingpong    an 8-byte message there and back between a parent
 *                       and a child process (us per round trip):
 *                       weft_channel (duplex); a pair of pipes (pipe);
 *                       multiprocessing.Pipe send_bytes/recv_bytes (python)
 *   channel_throughput  64-byte messages one way, parent -> child, timed
 *                       until the child acknowledges the last (msg/s):
 *                       weft_channel; a pipe written 64 bytes at a time
 *                       (pipe); multiprocessing.Pipe (python)
 *   mpqueue_throughput  64-byte messages through a multi-process queue,
 *                       one producer process, one consumer process, timed
 *                       until the consumer acknowledges the last (msg/s):
 *                       weft_mpqueue; multiprocessing.Queue (python)
 *
 * The child is forked once per sample, outside the timed block, and attaches
 * to the weft objects by token (not through the inherited handle). Every
 * sample checks what arrived: the count and the sum of the sequence numbers
 * carried in the messages. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

#define REPS 5
#define N_PING 20000L
#define N_TPUT 1000000L
#define N_QUEUE 500000L
#define N_PY_PING 10000L
#define N_PY_TPUT 100000L
#define N_PY_QUEUE 50000L

typedef double (*run_fn)(void);

static void measure(const char *bench, const char *system, const char *unit, run_fn run)
{
    char what[128];
    snprintf(what, sizeof what, "bench=%s system=%s", bench, system);
    bench_watchdog(180, what);
    double s[REPS];
    int n = 0;
    bool ok = run() >= 0; /* warm-up */
    for (int i = 0; ok && i < REPS; i++) {
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
}

static bool reap_ok(pid_t p, const char *what)
{
    int st = 0;
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        bench_fail("%s: the child failed (status 0x%x)", what, st);
        return false;
    }
    return true;
}

/* ---- channel_pingpong ---------------------------------------------------- */

static double ping_weft(void)
{
    weft_channel *ch;
    weft_ipc_token t;
    if (weft_channel_create(NULL, &ch) || weft_channel_token(ch, &t)) return -1;
    pid_t p = fork();
    if (p == 0) {
        weft_channel *c;
        if (weft_channel_attach(&t, &c)) _exit(2);
        uint64_t m;
        size_t n;
        for (long i = 0; i <= N_PING; i++) {
            if (weft_channel_recv(c, 60, &m, sizeof m, &n)) _exit(3);
            if (weft_channel_send(c, &m, sizeof m, 60)) _exit(4);
        }
        _exit(0);
    }
    uint64_t m = 0, sum = 0;
    size_t n;
    bool ok = weft_channel_send(ch, &m, 8, 60) == 0 && weft_channel_recv(ch, 60, &m, 8, &n) == 0;
    double t0 = bench_now();
    for (long i = 1; ok && i <= N_PING; i++) {
        m = (uint64_t)i;
        ok = weft_channel_send(ch, &m, 8, 60) == 0 && weft_channel_recv(ch, 60, &m, 8, &n) == 0;
        sum += m;
    }
    double dt = bench_now() - t0;
    ok &= reap_ok(p, "channel_pingpong weft");
    weft_channel_destroy(ch);
    if (!ok || sum != (uint64_t)N_PING * (N_PING + 1) / 2) {
        bench_fail("channel_pingpong weft: wrong echo (sum %llu)", (unsigned long long)sum);
        return -1;
    }
    return dt / (double)N_PING * 1e6;
}

static bool full_io(int fd, void *b, size_t n, bool wr)
{
    size_t k = 0;
    while (k < n) {
        ssize_t r = wr ? write(fd, (char *)b + k, n - k) : read(fd, (char *)b + k, n - k);
        if (r <= 0) return false;
        k += (size_t)r;
    }
    return true;
}

static double ping_pipe(void)
{
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) return -1;
    pid_t p = fork();
    if (p == 0) {
        close(ab[1]);
        close(ba[0]);
        uint64_t m;
        for (long i = 0; i <= N_PING; i++) {
            if (!full_io(ab[0], &m, 8, false)) _exit(3);
            if (!full_io(ba[1], &m, 8, true)) _exit(4);
        }
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    uint64_t m = 0, sum = 0;
    bool ok = full_io(ab[1], &m, 8, true) && full_io(ba[0], &m, 8, false);
    double t0 = bench_now();
    for (long i = 1; ok && i <= N_PING; i++) {
        m = (uint64_t)i;
        ok = full_io(ab[1], &m, 8, true) && full_io(ba[0], &m, 8, false);
        sum += m;
    }
    double dt = bench_now() - t0;
    close(ab[1]);
    close(ba[0]);
    ok &= reap_ok(p, "channel_pingpong pipe");
    if (!ok || sum != (uint64_t)N_PING * (N_PING + 1) / 2) {
        bench_fail("channel_pingpong pipe: wrong echo");
        return -1;
    }
    return dt / (double)N_PING * 1e6;
}

/* ---- channel_throughput -------------------------------------------------- */

static double tput_weft(void)
{
    weft_channel *ch;
    weft_ipc_token t;
    if (weft_channel_create(NULL, &ch) || weft_channel_token(ch, &t)) return -1;
    pid_t p = fork();
    if (p == 0) {
        weft_channel *c;
        if (weft_channel_attach(&t, &c)) _exit(2);
        unsigned char m[64];
        size_t n;
        uint64_t sum = 0, k;
        for (long i = 0; i < N_TPUT; i++) {
            if (weft_channel_recv(c, 60, m, sizeof m, &n) || n != 64) _exit(3);
            memcpy(&k, m, 8);
            sum += k;
        }
        if (weft_channel_send(c, &sum, 8, 60)) _exit(4);
        _exit(0);
    }
    unsigned char m[64] = {0};
    bool ok = true;
    double t0 = bench_now();
    for (long i = 0; ok && i < N_TPUT; i++) {
        uint64_t k = (uint64_t)i;
        memcpy(m, &k, 8);
        ok = weft_channel_send(ch, m, 64, 60) == 0;
    }
    uint64_t sum = 0;
    size_t n;
    ok = ok && weft_channel_recv(ch, 60, &sum, 8, &n) == 0;
    double dt = bench_now() - t0;
    ok &= reap_ok(p, "channel_throughput weft");
    weft_channel_destroy(ch);
    if (!ok || sum != (uint64_t)N_TPUT * (N_TPUT - 1) / 2) {
        bench_fail("channel_throughput weft: wrong sum");
        return -1;
    }
    return (double)N_TPUT / dt;
}

static double tput_pipe(void)
{
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) return -1;
    pid_t p = fork();
    if (p == 0) {
        close(ab[1]);
        close(ba[0]);
        unsigned char m[64];
        uint64_t sum = 0, k;
        for (long i = 0; i < N_TPUT; i++) {
            if (!full_io(ab[0], m, 64, false)) _exit(3);
            memcpy(&k, m, 8);
            sum += k;
        }
        if (!full_io(ba[1], &sum, 8, true)) _exit(4);
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    unsigned char m[64] = {0};
    bool ok = true;
    double t0 = bench_now();
    for (long i = 0; ok && i < N_TPUT; i++) {
        uint64_t k = (uint64_t)i;
        memcpy(m, &k, 8);
        ok = full_io(ab[1], m, 64, true);
    }
    uint64_t sum = 0;
    ok = ok && full_io(ba[0], &sum, 8, false);
    double dt = bench_now() - t0;
    close(ab[1]);
    close(ba[0]);
    ok &= reap_ok(p, "channel_throughput pipe");
    if (!ok || sum != (uint64_t)N_TPUT * (N_TPUT - 1) / 2) {
        bench_fail("channel_throughput pipe: wrong sum");
        return -1;
    }
    return (double)N_TPUT / dt;
}

/* ---- mpqueue_throughput -------------------------------------------------- */

static double queue_weft(void)
{
    weft_mpqueue *q, *ack;
    weft_ipc_token t, ta;
    if (weft_mpqueue_create(NULL, &q) || weft_mpqueue_create(NULL, &ack) ||
        weft_mpqueue_token(q, &t) || weft_mpqueue_token(ack, &ta))
        return -1;
    pid_t p = fork();
    if (p == 0) {
        weft_mpqueue *c, *a;
        if (weft_mpqueue_attach(&t, &c) || weft_mpqueue_attach(&ta, &a)) _exit(2);
        unsigned char m[64];
        size_t n;
        uint64_t sum = 0, k;
        for (long i = 0; i < N_QUEUE; i++) {
            if (weft_mpqueue_get(c, 60, m, sizeof m, &n) || n != 64) _exit(3);
            memcpy(&k, m, 8);
            sum += k;
        }
        if (weft_mpqueue_put(a, &sum, 8, 60)) _exit(4);
        _exit(0);
    }
    unsigned char m[64] = {0};
    bool ok = true;
    double t0 = bench_now();
    for (long i = 0; ok && i < N_QUEUE; i++) {
        uint64_t k = (uint64_t)i;
        memcpy(m, &k, 8);
        ok = weft_mpqueue_put(q, m, 64, 60) == 0;
    }
    uint64_t sum = 0;
    size_t n;
    ok = ok && weft_mpqueue_get(ack, 60, &sum, 8, &n) == 0;
    double dt = bench_now() - t0;
    ok &= reap_ok(p, "mpqueue_throughput weft");
    weft_mpqueue_destroy(q);
    weft_mpqueue_destroy(ack);
    if (!ok || sum != (uint64_t)N_QUEUE * (N_QUEUE - 1) / 2) {
        bench_fail("mpqueue_throughput weft: wrong sum");
        return -1;
    }
    return (double)N_QUEUE / dt;
}

/* ---- main ---------------------------------------------------------------- */

static void python(const char *bench, const char *unit, long n)
{
    char args[64];
    snprintf(args, sizeof args, "%s %ld %d", bench, n, REPS);
    bench_python_report(bench, "python", unit, "ipc_anchor.py", args, 600);
}

/* How many times faster `sys` is than `anchor`, for rates (higher is
 * better; bench_ratio() orients only "x" that way). */
static void rate_ratio(const char *bench, const char *anchor, const char *sys)
{
    const bench_result *a = bench_get(bench, anchor), *w = bench_get(bench, sys);
    if (!a || !w || a->median <= 0) {
        printf("ratio %s %s/%s = n/a\n", bench, sys, anchor);
        return;
    }
    printf("ratio %s %s/%s = %.3gx (>1: %s is faster)\n", bench, sys, anchor, w->median / a->median,
           sys);
}

int main(int argc, char **argv)
{
    (void)argc;
    bench_begin(argv[0], __FILE__);
    signal(SIGPIPE, SIG_IGN);

    measure("channel_pingpong", "weft", "us/roundtrip", ping_weft);
    measure("channel_pingpong", "pipe", "us/roundtrip", ping_pipe);
    python("channel_pingpong", "us/roundtrip", N_PY_PING);

    measure("channel_throughput", "weft", "msg/s", tput_weft);
    measure("channel_throughput", "pipe", "msg/s", tput_pipe);
    python("channel_throughput", "msg/s", N_PY_TPUT);

    measure("mpqueue_throughput", "weft", "msg/s", queue_weft);
    python("mpqueue_throughput", "msg/s", N_PY_QUEUE);

    bench_ratio("channel_pingpong", "pipe", "weft");
    bench_ratio("channel_pingpong", "python", "weft");
    rate_ratio("channel_throughput", "pipe", "weft");
    rate_ratio("channel_throughput", "python", "weft");
    rate_ratio("mpqueue_throughput", "python", "weft");
    return bench_finish();
}

/* soak.c : the fault soak behind `make soak` (docs/soak.md).
 *
 * Submitter threads drive a processes executor and a threads executor for a
 * fixed time, in rounds: plain submits (collected by result, weft_wait or
 * as_completed, with done callbacks and a few cancels), weft_map,
 * weft_map_bufs (some with on_result, ordered or not) and weft_parallel.
 * About 1% of the tasks inject a fault. A task's input says what it will
 * do, so the outcome each one must have is known before it runs; the
 * documented outcomes (docs/processes.md "Faults", include/weft.h) are:
 *
 *   kind      what the task does                       its future must give
 *   ok        hashes its input                         0, {id, hash, tag}
 *   sleep     sleeps 0-2 ms, then as ok                as ok
 *   fail      weft_ctx_fail(code -3000-id%97, "soak    that code, that message
 *             fail <id>")
 *   failpos   returns 7                                WEFT_ETASK
 *   huge      writes a 64 MiB output (8 MiB in a map   0, every page right
 *             or batch on processes)
 *   segv      writes to address 8                      WEFT_ECRASHED, "signal 11"
 *   abort     abort()                                  WEFT_ECRASHED, "signal 6"
 *   exit      exit(3)                                  WEFT_ECRASHED, "status 3"
 *   sigkill   raise(SIGKILL)                           WEFT_ECRASHED, "signal 9"
 *   mem       malloc past memory_limit, checks it      WEFT_EMEMLIMIT
 *   memu      the same, writes through the NULL        WEFT_EMEMLIMIT
 *   hang      pause() forever                          WEFT_ETIMEDOUT, "timeout of T s"
 *   near      sleeps T +-1% (half) or +-10%            0 (as ok) or WEFT_ETIMEDOUT
 *   nearwait  (threads) sleeps d; the caller waits d   wait 0 or ETIMEDOUT, then as ok
 *
 * On processes every kind but nearwait is injected (mem/memu only with a
 * memory limit, i.e. not under sanitizers); on threads only what is safe in
 * the caller's process: fail, failpos, huge, nearwait. T is the submit's own
 * timeout for submitted hang/near tasks (0.1-0.5 s) and the executor's
 * task_timeout (2 s) in maps and batches, where hang and near are picked a
 * third as often as the other kinds (each holds a worker for T). A huge
 * task submitted to processes gets a timeout of 60 s: writing 64 MiB of
 * fresh pages can take seconds on a loaded machine and is no fault.
 *
 * Counted: tasks, right outcomes per kind, cancelled, lost (a future not
 * finished, a map item not delivered or a callback not run within --bound
 * seconds), wrong codes (incl. a wrong message for a right code), wrong
 * outputs, hangs (a call that does not return within --bound + 30 s: the
 * monitor thread then prints the report and ends the program), watchdog
 * stalls, and at the end leaked fds, memfds, children, /dev/shm entries and
 * threads against a baseline taken after a warm-up round. Each epoch
 * (--epoch seconds) recreates both executors; half of the epochs end with
 * a shutdown(CANCEL) while work is queued.
 *
 * Output: live WRONG/LOST lines and a progress line every 10 s on stderr,
 * then the report on stdout, last line "SOAK_RESULT status=PASS|FAIL k=v...".
 * Exit status 0 when nothing was lost, wrong, hung or leaked, 1 otherwise, 2
 * for bad arguments or a setup failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#include "backends/processes/processes_internal.h" /* weft__fs_pid: the fork server, parent of the workers */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

/* ---- what a task does ---------------------------------------------------------------------- */

enum kind {
    K_OK,
    K_SLEEP,
    K_FAIL,
    K_FAILPOS,
    K_HUGE,
    K_SEGV,
    K_ABORT,
    K_EXIT,
    K_SIGKILL,
    K_MEM,
    K_MEMU,
    K_HANG,
    K_NEAR,
    K_NEARWAIT,
    K_COUNT
};

static const char *const kind_name[K_COUNT] = {"ok",   "sleep", "fail", "failpos", "huge",
                                               "segv", "abort", "exit", "sigkill", "mem",
                                               "memu", "hang",  "near", "nearwait"};

static const char *const kind_what[K_COUNT] = {"hashes its input",
                                               "sleeps 0-2 ms",
                                               "returns its own error",
                                               "returns 7 (WEFT_ETASK)",
                                               "writes a huge output",
                                               "segfaults",
                                               "aborts",
                                               "exit(3)",
                                               "raise(SIGKILL)",
                                               "malloc over the limit",
                                               "uses a refused malloc",
                                               "hangs past its timeout",
                                               "ends at its timeout",
                                               "caller waits its length"};

enum {
    B_PROC,
    B_THR,
    B_COUNT
};
static const char *const backend_name[B_COUNT] = {"processes", "threads"};

enum {
    P_SUBMIT,
    P_MAP,
    P_MAPBUFS,
    P_BATCH,
    P_SHUTDOWN,
    P_COUNT
};
static const char *const path_name[P_COUNT] = {"submit", "map", "map_bufs", "parallel", "shutdown"};

#define TAG_A 0x50414b41u /* soak_task */
#define TAG_B 0x50414b42u /* soak_task_b */

/* The head of every input; the payload (if any) follows. */
typedef struct soak_in {
    uint64_t id;
    uint32_t kind;
    uint32_t param; /* ok: spin rounds; sleep, near, nearwait: µs; huge, mem: MiB */
    uint64_t salt;
    uint64_t pad;
} soak_in;

typedef struct soak_out {
    uint64_t id, hash, tag;
} soak_out;

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int fail_code(uint64_t id)
{
    return -3000 - (int)(id % 97);
}

static unsigned char huge_byte(uint64_t id, size_t page)
{
    return (unsigned char)((id * 131 + page * 7 + 1) & 0xff);
}

static void sleep_us(uint32_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int soak_body(weft_ctx *ctx, const void *in, size_t len, uint64_t tag)
{
    soak_in h;
    if (len < sizeof h) return weft_ctx_fail(ctx, WEFT_EINVAL, "soak: input of %zu bytes", len);
    memcpy(&h, in, sizeof h);
    switch (h.kind) {
    case K_FAIL:
        return weft_ctx_fail(ctx, fail_code(h.id), "soak fail %" PRIu64, h.id);
    case K_FAILPOS:
        return 7;
    case K_HUGE: {
        size_t n = (size_t)h.param << 20;
        unsigned char *o = weft_ctx_output(ctx, n);
        if (!o) return weft_ctx_fail(ctx, WEFT_ENOMEM, "soak: no output of %u MiB", h.param);
        for (size_t pg = 0; pg < n / 4096; pg++) memset(o + pg * 4096, huge_byte(h.id, pg), 4096);
        return 0;
    }
    case K_SEGV: {
        static volatile uintptr_t bad = 8; /* a real fault, hidden from the optimizer */
        *(volatile int *)bad = 1;
        return weft_ctx_fail(ctx, WEFT_ETASK, "soak: the write to address 8 did not fault");
    }
    case K_ABORT:
        abort();
    case K_EXIT:
        exit(3);
    case K_SIGKILL:
        raise(SIGKILL);
        for (;;) pause();
    case K_MEM: {
        void *p = malloc((size_t)h.param << 20);
        if (!p) return weft_ctx_fail(ctx, WEFT_ENOMEM, "soak: malloc(%u MiB) failed", h.param);
        free(p);
        return weft_ctx_fail(ctx, WEFT_ETASK, "soak: malloc(%u MiB) was not refused", h.param);
    }
    case K_MEMU: {
        volatile char *p = malloc((size_t)h.param << 20);
        p[0] = 1; /* NULL when the limit refused it: dies after a failed allocation */
        free((void *)p);
        return weft_ctx_fail(ctx, WEFT_ETASK, "soak: malloc(%u MiB) was not refused", h.param);
    }
    case K_HANG:
        for (;;) pause();
    case K_SLEEP:
    case K_NEAR:
    case K_NEARWAIT:
        sleep_us(h.param);
        break;
    default: {
        volatile uint64_t x = h.salt; /* a little work */
        for (uint32_t i = 0; i < h.param; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        break;
    }
    }
    soak_out o = {h.id, fnv(in, len), tag};
    return weft_ctx_set_output(ctx, &o, sizeof o);
}

static int soak_task(weft_ctx *ctx, const void *in, size_t len)
{
    return soak_body(ctx, in, len, TAG_A);
}
WEFT_TASK_REGISTER(soak_task);

static int soak_task_b(weft_ctx *ctx, const void *in, size_t len)
{
    return soak_body(ctx, in, len, TAG_B);
}
WEFT_TASK_REGISTER(soak_task_b);

/* ---- settings ------------------------------------------------------------------------------ */

static struct {
    double duration, rate, task_timeout, epoch, bound, watchdog, progress;
    int submitters, workers, huge_mib, huge_map_mib, mem_mib;
    uint64_t seed;
    bool enabled[K_COUNT];
    bool backend[B_COUNT];
} cfg = {.duration = 600,
         .rate = 0.01,
         .task_timeout = 2.0,
         .epoch = 60,
         .bound = 120,
         .watchdog = 30,
         .progress = 10,
         .submitters = 4,
         .huge_mib = 64,
         .huge_map_mib = 8,
         .mem_mib = 256,
         .seed = 1,
         .backend = {true, true}};

static const double hang_timeouts[] = {0.2, 0.25, 0.3, 0.4, 0.5};
static const double near_timeouts[] = {0.1, 0.15, 0.2, 0.25, 0.3};

/* ---- counters ------------------------------------------------------------------------------ */

typedef struct kstat {
    atomic_ullong n, right, wrong, lost, cancelled, near_timedout;
} kstat;

static kstat ks[B_COUNT][K_COUNT];
static atomic_ullong n_wrong_output, n_call_errors, n_lost_other, n_wrong_other, n_hangs, n_stalls,
    n_rounds[B_COUNT][P_COUNT];
static atomic_ullong next_id = 1;
static atomic_int huge_busy[B_COUNT]; /* at most one huge output in flight per executor */
static double t_start;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_logged;
static char first_stall[1024];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    pthread_mutex_lock(&log_mu);
    if (n_logged++ < 60) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "soak: [%6.1f s] ", weft_now() - t_start);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    } else if (n_logged == 61) {
        fprintf(stderr, "soak: (more problems; only the first 60 are shown)\n");
    }
    pthread_mutex_unlock(&log_mu);
}

static uint64_t sum_kind(int field)
{
    uint64_t s = 0;
    for (int b = 0; b < B_COUNT; b++)
        for (int k = 0; k < K_COUNT; k++) {
            kstat *x = &ks[b][k];
            atomic_ullong *f[] = {&x->n, &x->right, &x->wrong, &x->lost, &x->cancelled};
            s += atomic_load(f[field]);
        }
    return s;
}

static uint64_t sum_faults(int field)
{
    uint64_t s = 0;
    for (int b = 0; b < B_COUNT; b++)
        for (int k = K_FAIL; k < K_COUNT; k++) {
            kstat *x = &ks[b][k];
            atomic_ullong *f[] = {&x->n, &x->right, &x->wrong, &x->lost, &x->cancelled};
            s += atomic_load(f[field]);
        }
    return s;
}

/* ---- one task's expected outcome ----------------------------------------------------------- */

typedef struct item {
    soak_in h;
    unsigned char *in; /* header + payload; owned unless `fixed` */
    size_t len;
    bool fixed; /* points into a weft_map array */
    uint64_t hash, tag;
    weft_task_fn fn;
    double timeout; /* processes: the limit it runs under; 0 none */
    bool own_timeout, huge_token, cancelled;
    weft_future *f;
    int delivered, cb_err; /* map on_result */
} item;

static void describe(char *buf, size_t n, int b, int path, const item *it)
{
    snprintf(buf, n, "%s/%s kind=%s id=%" PRIu64 " fn=%s", backend_name[b], path_name[path],
             kind_name[it->h.kind], it->h.id, it->tag == TAG_A ? "soak_task" : "soak_task_b");
    if (b == B_PROC && (it->h.kind == K_HANG || it->h.kind == K_NEAR)) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " timeout=%g s%s", it->timeout,
                 it->own_timeout ? " (submit)" : "");
    }
}

/* Checks a successful output; returns NULL or what is wrong. */
static const char *bad_output(const item *it, const void *out, size_t len, char *why, size_t n)
{
    if (it->h.kind == K_HUGE) {
        size_t want = (size_t)it->h.param << 20;
        if (len != want) {
            snprintf(why, n, "output of %zu bytes, want %zu", len, want);
            return why;
        }
        const unsigned char *o = out;
        for (size_t pg = 0; pg < want / 4096; pg++) {
            unsigned char v = huge_byte(it->h.id, pg);
            if (o[pg * 4096] != v || o[pg * 4096 + 4095] != v) {
                snprintf(why, n, "huge output wrong at page %zu", pg);
                return why;
            }
        }
        return NULL;
    }
    soak_out o;
    if (len != sizeof o || !out) {
        snprintf(why, n, "output of %zu bytes, want %zu", len, sizeof o);
        return why;
    }
    memcpy(&o, out, sizeof o);
    if (o.id != it->h.id) {
        snprintf(why, n, "output of task id %" PRIu64 " (another task's result)", o.id);
        return why;
    }
    if (o.hash != it->hash) {
        snprintf(why, n, "input hash %016" PRIx64 ", want %016" PRIx64, o.hash, it->hash);
        return why;
    }
    if (o.tag != it->tag) {
        snprintf(why, n, "ran %s, want %s", o.tag == TAG_A ? "soak_task" : "soak_task_b",
                 it->tag == TAG_A ? "soak_task" : "soak_task_b");
        return why;
    }
    return NULL;
}

/* Judges one finished task against its kind. */
static void judge(int b, int path, const item *it, int rc, const void *out, size_t len,
                  const char *msg)
{
    int k = (int)it->h.kind;
    kstat *st = &ks[b][k];
    char want[128], word[64] = "";
    int code = 0;
    bool either = false; /* near: success or WEFT_ETIMEDOUT */
    switch (k) {
    case K_FAIL:
        code = fail_code(it->h.id);
        snprintf(word, sizeof word, "soak fail %" PRIu64, it->h.id);
        break;
    case K_FAILPOS:
        code = WEFT_ETASK;
        break;
    case K_SEGV:
        code = WEFT_ECRASHED;
        snprintf(word, sizeof word, "signal 11");
        break;
    case K_ABORT:
        code = WEFT_ECRASHED;
        snprintf(word, sizeof word, "signal 6");
        break;
    case K_EXIT:
        code = WEFT_ECRASHED;
        snprintf(word, sizeof word, "status 3");
        break;
    case K_SIGKILL:
        code = WEFT_ECRASHED;
        snprintf(word, sizeof word, "signal 9");
        break;
    case K_MEM:
    case K_MEMU:
        code = WEFT_EMEMLIMIT;
        snprintf(word, sizeof word, "memory limit");
        break;
    case K_HANG:
        code = WEFT_ETIMEDOUT;
        snprintf(word, sizeof word, "timeout of %g s", it->timeout);
        break;
    case K_NEAR:
        either = true;
        if (rc != 0) {
            code = WEFT_ETIMEDOUT;
            snprintf(word, sizeof word, "timeout of %g s", it->timeout);
        }
        break;
    default:
        break;
    }
    char d[200], why[160];
    describe(d, sizeof d, b, path, it);
    if (rc == code && (!word[0] || (msg && strstr(msg, word)))) {
        if (rc == 0) {
            const char *bad = bad_output(it, out, len, why, sizeof why);
            if (bad) {
                atomic_fetch_add(&n_wrong_output, 1);
                atomic_fetch_add(&st->wrong, 1);
                logf_("WRONG OUTPUT %s: %s", d, bad);
                return;
            }
        } else if (either) {
            atomic_fetch_add(&st->near_timedout, 1);
        }
        atomic_fetch_add(&st->right, 1);
        return;
    }
    atomic_fetch_add(&st->wrong, 1);
    if (either)
        snprintf(want, sizeof want, "0 or WEFT_ETIMEDOUT \"%s\"", word);
    else
        snprintf(want, sizeof want, "%s%s%s%s", code ? weft_strerror(code) : "0",
                 word[0] ? " \"" : "", word, word[0] ? "\"" : "");
    logf_("WRONG CODE %s: want %s, got %d (%s): %s", d, want, rc, weft_strerror(rc),
          msg ? msg : "(no message)");
}

/* ---- hang monitor -------------------------------------------------------------------------- */

typedef struct opslot {
    pthread_mutex_t mu;
    double t0; /* 0: idle */
    char what[160];
} opslot;

static opslot *slots; /* one per submitter, then the main thread */
static int nslots;

static void op_begin(int s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void op_begin(int s, const char *fmt, ...)
{
    pthread_mutex_lock(&slots[s].mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slots[s].what, sizeof slots[s].what, fmt, ap);
    va_end(ap);
    slots[s].t0 = weft_now();
    pthread_mutex_unlock(&slots[s].mu);
}

static void op_end(int s)
{
    pthread_mutex_lock(&slots[s].mu);
    slots[s].t0 = 0;
    pthread_mutex_unlock(&slots[s].mu);
}

/* ---- leak measures ------------------------------------------------------------------------- */

typedef struct snapshot {
    int fds, memfds, shm, threads, children;
    long rss_kib, hwm_kib;
} snapshot;

static void count_fds(int *fds, int *memfds)
{
    *fds = *memfds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
        (*fds)++;
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = 0;
            if (strncmp(link, "/memfd:", 7) == 0) (*memfds)++;
        }
    }
    closedir(d);
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Children of `parent` (zombies too), not counting `except`. */
static int children_of(pid_t parent, pid_t except)
{
    if (parent <= 0) return 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        char *rp = strrchr(buf, ')');
        char st;
        int ppid;
        if (!rp || sscanf(rp + 2, "%c %d", &st, &ppid) != 2 || ppid != parent) continue;
        if (atoi(e->d_name) == except) continue;
        n++;
    }
    closedir(d);
    return n;
}

static long status_field(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    if (f) fclose(f);
    return v;
}

static void take_snapshot(snapshot *s)
{
    count_fds(&s->fds, &s->memfds);
    s->shm = dir_entries("/dev/shm");
    s->threads = (int)status_field("Threads");
    /* our children other than the fork server, plus the server's (workers) */
    s->children = children_of(getpid(), weft__fs_pid()) + children_of(weft__fs_pid(), 0);
    s->rss_kib = status_field("VmRSS");
    s->hwm_kib = status_field("VmHWM");
}

/* ---- the report ---------------------------------------------------------------------------- */

static snapshot base, fin;
static bool have_final;
static atomic_ullong leaked_children_epochs;

static int leak(int a, int b)
{
    return b > a ? b - a : 0;
}

static bool report(FILE *o, const char *why_stopped)
{
    double secs = weft_now() - t_start;
    fprintf(o, "\nweft soak: %.1f s, seed %" PRIu64 ", fault rate %.2f%%, %d submitters", secs,
            cfg.seed, cfg.rate * 100, cfg.submitters);
    if (cfg.backend[B_PROC])
        fprintf(o, "; processes: task_timeout %g s, memory_limit %s", cfg.task_timeout,
                cfg.mem_mib > 0 && !SOAK_SANITIZED ? "on" : "off");
    fprintf(o, "\n%-10s %-9s %-24s %10s %10s %7s %6s %9s\n", "backend", "kind", "what", "tasks",
            "right", "wrong", "lost", "cancelled");
    for (int b = 0; b < B_COUNT; b++)
        for (int k = 0; k < K_COUNT; k++) {
            kstat *x = &ks[b][k];
            if (!atomic_load(&x->n)) continue;
            fprintf(o, "%-10s %-9s %-24s %10llu %10llu %7llu %6llu %9llu", backend_name[b],
                    kind_name[k], kind_what[k], atomic_load(&x->n), atomic_load(&x->right),
                    atomic_load(&x->wrong), atomic_load(&x->lost), atomic_load(&x->cancelled));
            if (k == K_NEAR) fprintf(o, "  (%llu timed out)", atomic_load(&x->near_timedout));
            fputc('\n', o);
        }
    fprintf(o, "rounds:");
    for (int b = 0; b < B_COUNT; b++)
        for (int p = 0; p < P_COUNT; p++)
            if (atomic_load(&n_rounds[b][p]))
                fprintf(o, " %s/%s %llu", backend_name[b], path_name[p],
                        atomic_load(&n_rounds[b][p]));
    fputc('\n', o);
    uint64_t tasks = sum_kind(0), faults = sum_faults(0), faults_right = sum_faults(1);
    uint64_t ok = sum_kind(1) - faults_right, cancelled = sum_kind(4);
    uint64_t lost = sum_kind(3) + atomic_load(&n_lost_other);
    uint64_t wrong = sum_kind(2) - atomic_load(&n_wrong_output) + atomic_load(&n_wrong_other);
    uint64_t wout = atomic_load(&n_wrong_output), cerr = atomic_load(&n_call_errors);
    uint64_t hangs = atomic_load(&n_hangs), stalls = atomic_load(&n_stalls);
    char stall[sizeof first_stall];
    pthread_mutex_lock(&log_mu);
    snprintf(stall, sizeof stall, "%s", first_stall);
    pthread_mutex_unlock(&log_mu);
    fprintf(o, "  %-22s %llu\n", "tasks", (unsigned long long)tasks);
    fprintf(o, "  %-22s %llu\n", "completed ok", (unsigned long long)ok);
    fprintf(o, "  %-22s %llu\n", "faults injected", (unsigned long long)faults);
    fprintf(o, "  %-22s %llu\n", "faults right", (unsigned long long)faults_right);
    fprintf(o, "  %-22s %llu\n", "cancelled", (unsigned long long)cancelled);
    fprintf(o, "  %-22s %llu\n", "lost", (unsigned long long)lost);
    fprintf(o, "  %-22s %llu\n", "wrong codes", (unsigned long long)wrong);
    fprintf(o, "  %-22s %llu\n", "wrong outputs", (unsigned long long)wout);
    fprintf(o, "  %-22s %llu\n", "call errors", (unsigned long long)cerr);
    fprintf(o, "  %-22s %llu\n", "hangs", (unsigned long long)hangs);
    fprintf(o, "  %-22s %llu%s%s\n", "stalls (watchdog)", (unsigned long long)stalls,
            stall[0] ? ": " : "", stall);
    int lfd = 0, lmem = 0, lch = 0, lshm = 0, lthr = 0;
    if (have_final) {
        lfd = leak(base.fds, fin.fds);
        lmem = leak(base.memfds, fin.memfds);
        lch = leak(base.children, fin.children) + (int)atomic_load(&leaked_children_epochs);
        lshm = leak(base.shm, fin.shm);
        lthr = leak(base.threads, fin.threads);
        fprintf(o, "  %-22s %d (%d -> %d open)\n", "leaked fds", lfd, base.fds, fin.fds);
        fprintf(o, "  %-22s %d (%d -> %d)\n", "leaked memfds", lmem, base.memfds, fin.memfds);
        fprintf(o, "  %-22s %d (workers left after a destroy, other children)\n", "leaked children",
                lch);
        fprintf(o, "  %-22s %d (%d -> %d entries)\n", "leaked shm", lshm, base.shm, fin.shm);
        fprintf(o, "  %-22s %d (%d -> %d)\n", "leaked threads", lthr, base.threads, fin.threads);
        fprintf(o, "  %-22s %.1f MiB -> %.1f MiB (%+.1f MiB), peak %.1f MiB\n", "rss",
                base.rss_kib / 1024.0, fin.rss_kib / 1024.0, (fin.rss_kib - base.rss_kib) / 1024.0,
                fin.hwm_kib / 1024.0);
    } else {
        fprintf(o, "  leak checks not run: %s\n", why_stopped ? why_stopped : "stopped early");
    }
    bool pass = have_final && lost == 0 && wrong == 0 && wout == 0 && cerr == 0 && hangs == 0 &&
                stalls == 0 && lfd == 0 && lmem == 0 && lch == 0 && lshm == 0 && lthr == 0;
    fprintf(o,
            "SOAK_RESULT status=%s seconds=%.0f tasks=%llu faults=%llu faults_right=%llu "
            "ok=%llu cancelled=%llu lost=%llu wrong_codes=%llu wrong_outputs=%llu "
            "call_errors=%llu hangs=%llu stalls=%llu leaked_fds=%d leaked_memfds=%d "
            "leaked_children=%d leaked_shm=%d leaked_threads=%d rss_growth_kib=%ld\n",
            pass ? "PASS" : "FAIL", secs, (unsigned long long)tasks, (unsigned long long)faults,
            (unsigned long long)faults_right, (unsigned long long)ok, (unsigned long long)cancelled,
            (unsigned long long)lost, (unsigned long long)wrong, (unsigned long long)wout,
            (unsigned long long)cerr, (unsigned long long)hangs, (unsigned long long)stalls, lfd,
            lmem, lch, lshm, lthr, have_final ? fin.rss_kib - base.rss_kib : 0L);
    fflush(o);
    return pass;
}

static void progress_line(char *buf, size_t n)
{
    snprintf(buf, n,
             "soak: [%6.1f s] tasks=%llu faults=%llu right=%llu cancelled=%llu lost=%llu "
             "wrong=%llu hangs=%llu\n",
             weft_now() - t_start, (unsigned long long)sum_kind(0),
             (unsigned long long)sum_faults(0), (unsigned long long)sum_faults(1),
             (unsigned long long)sum_kind(4),
             (unsigned long long)(sum_kind(3) + atomic_load(&n_lost_other)),
             (unsigned long long)(sum_kind(2) + atomic_load(&n_wrong_other) +
                                  atomic_load(&n_call_errors)),
             (unsigned long long)atomic_load(&n_hangs));
}

/* The soak program itself dying (e.g. a weft defect in the calling
 * process): say so with the counts so far, then die of the same signal. */
static void on_fatal(int sig)
{
    static char buf[512];
    int n = snprintf(buf, sizeof buf, "\nsoak: the soak program itself died of signal %d (%s)\n",
                     sig, strsignal(sig));
    if (n > 0) (void)!write(2, buf, (size_t)n);
    progress_line(buf, sizeof buf);
    (void)!write(2, buf, strlen(buf));
    n = snprintf(buf, sizeof buf, "SOAK_RESULT status=CRASHED signal=%d seconds=%.0f\n", sig,
                 weft_now() - t_start);
    if (n > 0) (void)!write(1, buf, (size_t)n);
    raise(sig); /* SA_RESETHAND: the default action now */
}

static atomic_int monitor_stop;

static void *monitor(void *arg)
{
    (void)arg;
    double next_progress = weft_now() + cfg.progress;
    while (!atomic_load(&monitor_stop)) {
        usleep(200000);
        double now = weft_now();
        if (cfg.progress > 0 && now >= next_progress) {
            char buf[512];
            progress_line(buf, sizeof buf);
            fputs(buf, stderr);
            next_progress = now + cfg.progress;
        }
        for (int s = 0; s < nslots; s++) {
            pthread_mutex_lock(&slots[s].mu);
            double t0 = slots[s].t0;
            char what[160];
            snprintf(what, sizeof what, "%s", slots[s].what);
            pthread_mutex_unlock(&slots[s].mu);
            if (t0 > 0 && now - t0 > cfg.bound + 30) {
                atomic_fetch_add(&n_hangs, 1);
                char why[300];
                snprintf(why, sizeof why, "HANG: %s %d: %s, running for %.0f s",
                         s < cfg.submitters ? "submitter" : "main thread", s, what, now - t0);
                logf_("%s", why);
                report(stdout, why);
                _exit(1);
            }
        }
    }
    return NULL;
}

/* ---- building tasks ------------------------------------------------------------------------ */

typedef struct sub {
    int id;
    weft_rng rng;
    double deadline;
} sub;

static weft_executor *EX[B_COUNT];

static uint64_t rnd(sub *s, uint64_t n)
{
    return (uint64_t)weft_rng_range(&s->rng, 0, (int64_t)n - 1);
}

static bool kind_allowed(int b, int path, int k)
{
    if (!cfg.enabled[k]) return false;
    if (b == B_THR)
        return k == K_FAIL || k == K_FAILPOS || k == K_HUGE ||
               (k == K_NEARWAIT && path == P_SUBMIT);
    if (k == K_NEARWAIT) return false;
    if ((k == K_MEM || k == K_MEMU) && (SOAK_SANITIZED || cfg.mem_mib <= 0)) return false;
    return true;
}

static int pick_kind(sub *s, int b, int path, bool *huge_token)
{
    if (weft_rng_double(&s->rng) >= cfg.rate)
        return weft_rng_double(&s->rng) < 0.01 && cfg.enabled[K_SLEEP] ? K_SLEEP : K_OK;
    /* Every kind weighs 3, except that in a map or batch on processes a
     * hang or near task holds its worker for the executor's whole
     * task_timeout: those weigh 1 there, so they do not take over. */
    int weight[K_COUNT], total = 0;
    for (int k = K_FAIL; k < K_COUNT; k++) {
        weight[k] =
            !kind_allowed(b, path, k) ? 0
            : b == B_PROC && (k == K_HANG || k == K_NEAR) && path != P_SUBMIT && path != P_SHUTDOWN
                ? 1
                : 3;
        total += weight[k];
    }
    if (!total) return K_OK;
    int k = K_FAIL;
    for (int r = (int)rnd(s, (uint64_t)total); r >= weight[k]; k++) r -= weight[k];
    if (k == K_HUGE) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&huge_busy[b], &zero, 1))
            *huge_token = true;
        else
            k = kind_allowed(b, path, K_FAIL) ? K_FAIL : K_OK;
    }
    return k;
}

static void make_item(sub *s, item *it, int b, int path, soak_in *fixed)
{
    memset(it, 0, sizeof *it);
    int k = pick_kind(s, b, path, &it->huge_token);
    soak_in h = {atomic_fetch_add(&next_id, 1), (uint32_t)k, 0, weft_rng_next(&s->rng), 0};
    bool own = path == P_SUBMIT || path == P_SHUTDOWN;
    it->timeout = b == B_PROC ? cfg.task_timeout : 0;
    switch (k) {
    case K_OK:
        h.param = (uint32_t)rnd(s, 2000);
        break;
    case K_SLEEP:
        h.param = (uint32_t)rnd(s, 2000);
        break;
    case K_NEARWAIT:
        h.param = 5000 + (uint32_t)rnd(s, 25000);
        break;
    case K_HUGE:
        /* on processes, a map's items run under the executor's task_timeout:
         * a smaller huge output there (first-touch page faults cost) */
        h.param = (uint32_t)(b == B_PROC && !own ? cfg.huge_map_mib : cfg.huge_mib);
        if (b == B_PROC && own) {
            it->timeout = 60; /* the time to write 64 MiB is no fault */
            it->own_timeout = true;
        }
        break;
    case K_MEM:
    case K_MEMU:
        h.param = (uint32_t)cfg.mem_mib * 2;
        break;
    case K_HANG:
        if (own) {
            it->timeout = hang_timeouts[rnd(s, 5)];
            it->own_timeout = true;
        }
        break;
    case K_NEAR:
        if (own) {
            it->timeout = near_timeouts[rnd(s, 5)];
            it->own_timeout = true;
        }
        /* half within 1% of the limit, half within 10% */
        h.param = (uint32_t)(it->timeout * 1e6 *
                             (1 + (rnd(s, 2) ? 0.02 : 0.2) * (weft_rng_double(&s->rng) - 0.5)));
        break;
    default:
        break;
    }
    it->h = h;
    if (fixed) {
        *fixed = h;
        it->in = (unsigned char *)fixed;
        it->len = sizeof h;
        it->fixed = true;
    } else {
        uint64_t u = rnd(s, 20000);
        size_t pay = u < 18000   ? rnd(s, 256)
                     : u < 19999 ? 256 + rnd(s, 65536)
                                 : (4u << 20) + rnd(s, 2u << 20);
        it->len = sizeof h + pay;
        it->in = malloc(it->len);
        if (!it->in) {
            fprintf(stderr, "soak: out of memory\n");
            _exit(2);
        }
        memcpy(it->in, &h, sizeof h);
        for (size_t off = sizeof h; off < it->len; off += 8) {
            uint64_t r = weft_rng_next(&s->rng);
            memcpy(it->in + off, &r, it->len - off < 8 ? it->len - off : 8);
        }
    }
    it->hash = fnv(it->in, it->len);
    bool b_fn = (path == P_SUBMIT || path == P_SHUTDOWN || path == P_BATCH) && rnd(s, 2);
    it->fn = b_fn ? soak_task_b : soak_task;
    it->tag = b_fn ? TAG_B : TAG_A;
}

static void free_items(int b, item *its, size_t n, bool keep_inputs)
{
    for (size_t i = 0; i < n; i++) {
        if (its[i].huge_token) atomic_store(&huge_busy[b], 0);
        if (!its[i].fixed && !keep_inputs) free(its[i].in);
    }
    free(its);
}

/* ---- submit rounds ------------------------------------------------------------------------- */

static void on_done(weft_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Submits n tasks to executor b and collects them; with `shutdown`, shuts
 * the executor down (CANCEL) while they are queued instead. */
static void round_submit(sub *s, int b, bool shutdown)
{
    weft_executor *ex = EX[b];
    int path = shutdown ? P_SHUTDOWN : P_SUBMIT;
    /* a tenth of the rounds are 1-4 tasks: a task alone in its batch */
    size_t n = shutdown ? 200 : rnd(s, 10) == 0 ? 1 + rnd(s, 4) : 1 + rnd(s, 300);
    item *its = calloc(n, sizeof *its);
    atomic_int *cbc = calloc(n, sizeof *cbc); /* callbacks run, per task */
    bool *cbreg = calloc(n, sizeof *cbreg);
    weft_future **fs = calloc(n, sizeof *fs);
    if (!its || !cbc || !cbreg || !fs) {
        fprintf(stderr, "soak: out of memory\n");
        _exit(2);
    }
    atomic_fetch_add(&n_rounds[b][path], 1);
    double t0 = weft_now();
    op_begin(s->id, "%s round of %zu tasks on %s", path_name[path], n, backend_name[b]);
    for (size_t i = 0; i < n; i++) {
        item *it = &its[i];
        make_item(s, it, b, path, NULL);
        weft_submit_options so = {0};
        bool with_opts = false;
        if (it->own_timeout) {
            so.timeout = it->timeout;
            with_opts = true;
        }
        if (rnd(s, 4) == 0) { /* the input stays ours until the round ends */
            so.flags = WEFT_SUBMIT_BORROW;
            with_opts = true;
        }
        int rc = with_opts ? weft_submit_ex(ex, it->fn, it->in, it->len, &so, &it->f)
                           : weft_submit(ex, it->fn, it->in, it->len, &it->f);
        if (rc) {
            atomic_fetch_add(&n_call_errors, 1);
            logf_("CALL ERROR weft_submit on %s: %s: %s", backend_name[b], weft_strerror(rc),
                  weft_last_error());
            it->f = NULL;
            continue;
        }
        fs[i] = it->f;
        atomic_fetch_add(&ks[b][it->h.kind].n, 1);
        if (weft_future_on_done(it->f, on_done, &cbc[i]) == 0) cbreg[i] = true;
        if (it->h.kind == K_NEARWAIT) {
            int w = weft_future_wait(it->f, it->h.param * 1e-6);
            if (w != 0 && w != WEFT_ETIMEDOUT) {
                atomic_fetch_add(&n_wrong_other, 1);
                logf_("WRONG CODE weft_future_wait(%g s) of a task of that length: %s",
                      it->h.param * 1e-6, weft_strerror(w));
            }
        }
        /* half of the near tasks are waited for at once, so they often end
         * a batch of their own right at its time limit */
        if (it->h.kind == K_NEAR && !shutdown && rnd(s, 2)) weft_future_wait(it->f, cfg.bound);
    }
    if (shutdown) {
        int rc = weft_executor_shutdown(ex, WEFT_SHUTDOWN_CANCEL);
        if (rc) {
            atomic_fetch_add(&n_call_errors, 1);
            logf_("CALL ERROR weft_executor_shutdown(CANCEL) on %s: %s", backend_name[b],
                  weft_strerror(rc));
        }
        weft_future *late = NULL;
        int64_t x = 0;
        rc = weft_submit(ex, soak_task, &x, sizeof x, &late);
        if (rc != WEFT_ECLOSED || late) {
            atomic_fetch_add(&n_wrong_other, 1);
            logf_("WRONG CODE weft_submit after shutdown on %s: %s, want WEFT_ECLOSED",
                  backend_name[b], weft_strerror(rc));
            weft_future_release(late);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (its[i].f && rnd(s, 100) < 2 && weft_future_cancel(its[i].f) == 0)
                its[i].cancelled = true;
        int mode = (int)rnd(s, 3);
        if (mode == 1) {
            size_t nd = 0;
            int w = weft_wait(fs, n, WEFT_WAIT_ALL, cfg.bound, NULL, &nd);
            if (w == 0 && nd != n) w = WEFT_ETASK;
            if (w != 0 && w != WEFT_ETIMEDOUT) {
                atomic_fetch_add(&n_wrong_other, 1);
                logf_("WRONG CODE weft_wait(ALL) of %zu futures on %s returned %d", n,
                      backend_name[b], w);
            }
        } else if (mode == 2) {
            weft_as_completed *ac = NULL;
            if (weft_as_completed_create(fs, n, &ac) == 0) {
                bool *seen = calloc(n, sizeof *seen);
                weft_future *f;
                size_t idx;
                int r;
                while (seen && (r = weft_as_completed_next(ac, cfg.bound - (weft_now() - t0), &f,
                                                           &idx)) == 0) {
                    if (idx >= n || seen[idx] || f != fs[idx]) {
                        atomic_fetch_add(&n_wrong_other, 1);
                        logf_("WRONG as_completed on %s yielded index %zu twice or wrongly",
                              backend_name[b], idx);
                        break;
                    }
                    seen[idx] = true;
                }
                free(seen);
                weft_as_completed_destroy(ac);
            }
        }
    }
    bool lost_any = false;
    for (size_t i = 0; i < n; i++) {
        item *it = &its[i];
        if (!it->f) continue;
        double left = cfg.bound - (weft_now() - t0);
        if (weft_future_wait(it->f, left > 0 ? left : 0) != 0) {
            char d[200];
            describe(d, sizeof d, b, path, it);
            atomic_fetch_add(&ks[b][it->h.kind].lost, 1);
            logf_("LOST %s: not finished after %.0f s (state %d)", d, cfg.bound,
                  (int)weft_future_state_get(it->f));
            lost_any = true;
            continue;
        }
        const void *d = NULL;
        size_t len = 0;
        int rc = weft_future_result(it->f, 0, &d, &len);
        bool is_cancelled = weft_future_state_get(it->f) == WEFT_FUTURE_CANCELLED;
        if (is_cancelled || it->cancelled) {
            char dd[200];
            describe(dd, sizeof dd, b, path, it);
            if (is_cancelled && rc == WEFT_ECANCELLED && (it->cancelled || shutdown)) {
                atomic_fetch_add(&ks[b][it->h.kind].cancelled, 1);
            } else {
                atomic_fetch_add(&ks[b][it->h.kind].wrong, 1);
                logf_("WRONG CODE %s: cancel returned %s, state %d, result %s", dd,
                      it->cancelled ? "0" : "(not called)", (int)weft_future_state_get(it->f),
                      weft_strerror(rc));
            }
            continue;
        }
        judge(b, path, it, rc, d, len, weft_future_error(it->f));
    }
    /* every registered callback ran exactly once (callbacks may run just
     * after the waiters woke: give them until the bound) */
    bool cb_done = false;
    while (!cb_done) {
        cb_done = true;
        for (size_t i = 0; i < n && cb_done; i++)
            if (cbreg[i] && its[i].f && atomic_load(&cbc[i]) == 0) cb_done = false;
        if (cb_done || weft_now() - t0 > cfg.bound) break;
        usleep(1000);
    }
    for (size_t i = 0; i < n; i++) {
        if (!cbreg[i] || !its[i].f) continue;
        int c = atomic_load(&cbc[i]);
        if (c == 1) continue;
        char d[200];
        describe(d, sizeof d, b, path, &its[i]);
        if (c == 0) {
            atomic_fetch_add(&n_lost_other, 1);
            logf_("LOST callback of %s: never ran", d);
        } else {
            atomic_fetch_add(&n_wrong_other, 1);
            logf_("WRONG callback of %s: ran %d times", d, c);
        }
    }
    for (size_t i = 0; i < n; i++) weft_future_release(its[i].f);
    op_end(s->id);
    if (lost_any || !cb_done) {
        /* the tasks may still run and their callbacks may still fire:
         * keep what they point to */
        for (size_t i = 0; i < n; i++)
            if (its[i].huge_token) atomic_store(&huge_busy[b], 0);
        return;
    }
    free_items(b, its, n, false);
    free(cbc);
    free(cbreg);
    free(fs);
}

/* ---- map and batch rounds ------------------------------------------------------------------ */

typedef struct mapcb {
    item *its;
    size_t n;
    int b, path;
    size_t bad_index;
} mapcb;

static int map_on_result(void *arg, uint64_t index, int err, const void *out, size_t len,
                         const char *msg)
{
    mapcb *m = arg;
    if (index >= m->n) {
        m->bad_index++;
        return 0;
    }
    item *it = &m->its[index];
    if (it->delivered++ == 0) {
        it->cb_err = err;
        judge(m->b, m->path, it, err, out, len, msg);
    }
    return 0;
}

static void round_map(sub *s, int b, int path)
{
    weft_executor *ex = EX[b];
    size_t n = 1 + rnd(s, b == B_PROC ? 1000 : 3000);
    item *its = calloc(n, sizeof *its);
    soak_in *arr = path == P_MAP ? calloc(n, sizeof *arr) : NULL;
    weft_buf *bufs = path == P_MAPBUFS ? calloc(n, sizeof *bufs) : NULL;
    weft_call *calls = path == P_BATCH ? calloc(n, sizeof *calls) : NULL;
    if (!its || (path == P_MAP && !arr) || (path == P_MAPBUFS && !bufs) ||
        (path == P_BATCH && !calls)) {
        fprintf(stderr, "soak: out of memory\n");
        _exit(2);
    }
    atomic_fetch_add(&n_rounds[b][path], 1);
    for (size_t i = 0; i < n; i++) {
        make_item(s, &its[i], b, path, arr ? &arr[i] : NULL);
        atomic_fetch_add(&ks[b][its[i].h.kind].n, 1);
        if (bufs) bufs[i] = (weft_buf){its[i].in, its[i].len};
        if (calls) calls[i] = (weft_call){its[i].fn, its[i].in, its[i].len};
    }
    weft_map_options mo = {0};
    mo.progress = -1;
    if (rnd(s, 3) == 0) mo.chunk_size = 1 + rnd(s, 64);
    mapcb mc = {its, n, b, path, 0};
    bool use_cb = path != P_BATCH && rnd(s, 3) == 0;
    if (use_cb) {
        mo.on_result = map_on_result;
        mo.arg = &mc;
        if (rnd(s, 2)) mo.flags |= WEFT_MAP_UNORDERED;
    }
    bool want_r = !use_cb || rnd(s, 2);
    weft_results *r = NULL;
    int rc;
    op_begin(s->id, "%s of %zu items on %s%s", path_name[path], n, backend_name[b],
             use_cb ? " with on_result" : "");
    if (path == P_MAP) {
        rc = weft_map(ex, soak_task, arr, sizeof *arr, n, &mo, want_r ? &r : NULL);
    } else if (path == P_MAPBUFS) {
        rc = weft_map_bufs(ex, soak_task, bufs, n, &mo, want_r ? &r : NULL);
    } else {
        weft_parallel_options po = {0};
        po.executor = ex;
        po.progress = -1;
        if (rnd(s, 3) == 0) po.batch_size = 1 + rnd(s, 32);
        rc = weft_parallel(calls, n, &po, &r);
    }
    op_end(s->id);
    /* the results */
    int first_err = 0;
    if (use_cb) {
        for (size_t i = 0; i < n; i++) {
            item *it = &its[i];
            char d[200];
            describe(d, sizeof d, b, path, it);
            if (it->delivered == 0) {
                atomic_fetch_add(&ks[b][it->h.kind].lost, 1);
                logf_("LOST %s: on_result never called for index %zu (map returned %s)", d, i,
                      weft_strerror(rc));
                continue;
            }
            if (it->delivered > 1) {
                atomic_fetch_add(&n_wrong_other, 1);
                logf_("WRONG %s: on_result called %d times", d, it->delivered);
            }
            if (it->cb_err && !first_err) first_err = it->cb_err;
        }
        if (mc.bad_index) {
            atomic_fetch_add(&n_wrong_other, 1);
            logf_("WRONG %s/%s: on_result got %zu indexes out of range", backend_name[b],
                  path_name[path], mc.bad_index);
        }
    }
    if (want_r && !r) {
        atomic_fetch_add(&n_call_errors, 1);
        logf_("CALL ERROR %s of %zu items on %s gave no results: %s: %s", path_name[path], n,
              backend_name[b], weft_strerror(rc), weft_last_error());
        if (!use_cb)
            for (size_t i = 0; i < n; i++) atomic_fetch_add(&ks[b][its[i].h.kind].lost, 1);
    } else if (r) {
        if (weft_results_count(r) != n) {
            atomic_fetch_add(&n_wrong_other, 1);
            logf_("WRONG %s/%s: %zu results for %zu items", backend_name[b], path_name[path],
                  weft_results_count(r), n);
        }
        size_t failed_here = 0;
        int first_here = 0;
        for (size_t i = 0; i < n && i < weft_results_count(r); i++) {
            const void *d = NULL;
            size_t len = 0;
            int e = weft_results_get(r, i, &d, &len);
            if (e) failed_here++;
            if (e && !first_here) first_here = e;
            if (use_cb) {
                if (its[i].delivered && e != its[i].cb_err) {
                    atomic_fetch_add(&n_wrong_other, 1);
                    logf_("WRONG %s/%s item %zu: results say %s, on_result said %s",
                          backend_name[b], path_name[path], i, weft_strerror(e),
                          weft_strerror(its[i].cb_err));
                }
            } else {
                judge(b, path, &its[i], e, d, len, weft_results_error(r, i));
            }
        }
        if (!use_cb) first_err = first_here;
        if (weft_results_failed(r) != failed_here) {
            atomic_fetch_add(&n_wrong_other, 1);
            logf_("WRONG %s/%s: weft_results_failed %zu, %zu items failed", backend_name[b],
                  path_name[path], weft_results_failed(r), failed_here);
        }
    }
    if ((r || use_cb) && rc != first_err) {
        atomic_fetch_add(&n_wrong_other, 1);
        logf_("WRONG CODE %s of %zu items on %s returned %d (%s), the first failed item has %d "
              "(%s)",
              path_name[path], n, backend_name[b], rc, weft_strerror(rc), first_err,
              weft_strerror(first_err));
    }
    weft_results_destroy(r);
    free_items(b, its, n, false);
    free(arr);
    free(bufs);
    free(calls);
}

/* ---- threads and epochs -------------------------------------------------------------------- */

static void *submitter(void *arg)
{
    sub *s = arg;
    while (weft_now() < s->deadline) {
        int b = (int)rnd(s, 2);
        if (!cfg.backend[b]) b = 1 - b;
        uint64_t p = rnd(s, 100);
        if (p < 50)
            round_submit(s, b, false);
        else if (p < 75)
            round_map(s, b, P_MAP);
        else if (p < 85)
            round_map(s, b, P_MAPBUFS);
        else
            round_map(s, b, P_BATCH);
    }
    return NULL;
}

static void on_stall(const char *rep, void *arg)
{
    (void)arg;
    atomic_fetch_add(&n_stalls, 1);
    pthread_mutex_lock(&log_mu);
    if (!first_stall[0]) snprintf(first_stall, sizeof first_stall, "%s", rep);
    pthread_mutex_unlock(&log_mu);
    logf_("STALL (watchdog, nothing finished for %g s): %s", cfg.watchdog, rep);
}

static int create_executors(void)
{
    for (int b = 0; b < B_COUNT; b++) {
        EX[b] = NULL;
        if (!cfg.backend[b]) continue;
        weft_options o = {0};
        o.workers = cfg.workers;
        if (b == B_THR) {
            o.backend = WEFT_BACKEND_THREADS;
        } else {
            o.backend = WEFT_BACKEND_PROCESSES;
            o.processes.task_timeout = cfg.task_timeout;
            if (cfg.mem_mib > 0 && !SOAK_SANITIZED)
                o.processes.memory_limit = (size_t)cfg.mem_mib << 20;
            o.processes.watchdog = cfg.watchdog;
            o.processes.watchdog_fn = on_stall;
        }
        int rc = weft_executor_create(&o, &EX[b]);
        if (rc) {
            fprintf(stderr, "soak: cannot create the %s executor: %s: %s\n", backend_name[b],
                    weft_strerror(rc), weft_last_error());
            return rc;
        }
    }
    return 0;
}

/* Destroys both executors; a processes pool must leave no worker behind. */
static void destroy_executors(int slot)
{
    for (int b = 0; b < B_COUNT; b++) {
        if (!EX[b]) continue;
        op_begin(slot, "weft_executor_destroy(%s)", backend_name[b]);
        int rc = weft_executor_destroy(EX[b]);
        op_end(slot);
        EX[b] = NULL;
        if (rc) {
            atomic_fetch_add(&n_call_errors, 1);
            logf_("CALL ERROR weft_executor_destroy(%s): %s", backend_name[b], weft_strerror(rc));
        }
    }
    int left = children_of(weft__fs_pid(), 0);
    for (int i = 0; i < 100 && left; i++) { /* the server reaps asynchronously */
        usleep(10000);
        left = children_of(weft__fs_pid(), 0);
    }
    if (left) {
        atomic_fetch_add(&leaked_children_epochs, (unsigned long long)left);
        logf_("LEAK: %d worker processes left after weft_executor_destroy", left);
    }
}

static bool parse_kinds(const char *list, bool on)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            for (int k = K_FAIL; k < K_COUNT; k++) cfg.enabled[k] = on;
            continue;
        }
        int k = 0;
        while (k < K_COUNT && strcmp(kind_name[k], t) != 0) k++;
        if (k == K_COUNT || k == K_OK) {
            fprintf(stderr, "soak: unknown fault kind '%s'\n", t);
            return false;
        }
        cfg.enabled[k] = on;
    }
    return true;
}

static void usage(FILE *o)
{
    fprintf(o, "usage: soak [options]   (docs/soak.md)\n"
               "  --duration S      seconds to run (default $WEFT_SOAK_SECONDS, else 600)\n"
               "  --rate F          fraction of tasks that inject a fault (default 0.01)\n"
               "  --submitters N    submitting threads (default 4)\n"
               "  --workers N       workers of each executor (default: all CPUs)\n"
               "  --task-timeout T  the processes executor's task_timeout (default 1 s)\n"
               "  --huge-mib M      size of a huge output (default 64)\n"
               "  --mem-limit-mib M the processes executor's memory_limit (default 256, 0 off)\n"
               "  --epoch S         recreate the executors every S seconds (default 60)\n"
               "  --bound S         a task not finished after S s is lost (default 120)\n"
               "  --watchdog S      the processes executor's watchdog (default 30)\n"
               "  --progress S      a progress line every S s on stderr (default 10, 0 off)\n"
               "  --seed N          random seed (default 1)\n"
               "  --faults LIST     inject only these kinds (comma separated, or all)\n"
               "  --skip LIST       do not inject these kinds\n"
               "  --backends LIST   processes,threads (default both)\n"
               "kinds: sleep fail failpos huge segv abort exit sigkill mem memu hang near "
               "nearwait\n");
}

static bool parse_args(int argc, char **argv)
{
    for (int k = 0; k < K_COUNT; k++) cfg.enabled[k] = true;
    const char *env = getenv("WEFT_SOAK_SECONDS");
    if (env && *env) cfg.duration = atof(env);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "soak: %s needs a value\n", a);
            return false;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--duration") == 0)
            cfg.duration = atof(v);
        else if (strcmp(a, "--rate") == 0)
            cfg.rate = atof(v);
        else if (strcmp(a, "--submitters") == 0)
            cfg.submitters = atoi(v);
        else if (strcmp(a, "--workers") == 0)
            cfg.workers = atoi(v);
        else if (strcmp(a, "--task-timeout") == 0)
            cfg.task_timeout = atof(v);
        else if (strcmp(a, "--huge-mib") == 0)
            cfg.huge_mib = atoi(v);
        else if (strcmp(a, "--huge-map-mib") == 0)
            cfg.huge_map_mib = atoi(v);
        else if (strcmp(a, "--mem-limit-mib") == 0)
            cfg.mem_mib = atoi(v);
        else if (strcmp(a, "--epoch") == 0)
            cfg.epoch = atof(v);
        else if (strcmp(a, "--bound") == 0)
            cfg.bound = atof(v);
        else if (strcmp(a, "--watchdog") == 0)
            cfg.watchdog = atof(v);
        else if (strcmp(a, "--progress") == 0)
            cfg.progress = atof(v);
        else if (strcmp(a, "--seed") == 0)
            cfg.seed = strtoull(v, NULL, 0);
        else if (strcmp(a, "--faults") == 0) {
            for (int k = K_FAIL; k < K_COUNT; k++) cfg.enabled[k] = false;
            if (!parse_kinds(v, true)) return false;
        } else if (strcmp(a, "--skip") == 0) {
            if (!parse_kinds(v, false)) return false;
        } else if (strcmp(a, "--backends") == 0) {
            cfg.backend[B_PROC] = strstr(v, "processes") != NULL;
            cfg.backend[B_THR] = strstr(v, "threads") != NULL;
        } else {
            fprintf(stderr, "soak: unknown option %s\n", a);
            usage(stderr);
            return false;
        }
    }
    if (!(cfg.duration > 0) || cfg.rate < 0 || cfg.rate > 1 || cfg.submitters < 1 ||
        cfg.workers < 0 || !(cfg.task_timeout > 0) || cfg.huge_mib < 1 || cfg.huge_mib > 1024 ||
        cfg.huge_map_mib < 1 || cfg.huge_map_mib > 1024 || cfg.mem_mib < 0 || !(cfg.epoch > 0) ||
        !(cfg.bound > 0) || cfg.watchdog < 0 || (!cfg.backend[B_PROC] && !cfg.backend[B_THR])) {
        fprintf(stderr, "soak: a value is out of range\n");
        usage(stderr);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv); /* first: forks the fork server */
    if (rc) {
        fprintf(stderr, "soak: weft_init: %s\n", weft_last_error());
        return 2;
    }
    if (!parse_args(argc, argv)) return 2;
    t_start = weft_now();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = (int)SA_RESETHAND;
    int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) sigaction(fatal[i], &sa, NULL);

    nslots = cfg.submitters + 1;
    slots = calloc((size_t)nslots, sizeof *slots);
    sub *subs = calloc((size_t)cfg.submitters + 1, sizeof *subs);
    pthread_t *th = calloc((size_t)cfg.submitters, sizeof *th);
    if (!slots || !subs || !th) return 2;
    for (int i = 0; i < nslots; i++) pthread_mutex_init(&slots[i].mu, NULL);
    for (int i = 0; i <= cfg.submitters; i++) {
        subs[i].id = i;
        weft_rng_seed(&subs[i].rng, cfg.seed * 1000003u + (uint64_t)i);
    }
    sub *mainsub = &subs[cfg.submitters];

    /* warm-up: one executor pair with a few tasks, so one-time setup (the
     * fork server's connection, caches) is in the baseline */
    if (create_executors()) return 2;
    for (int b = 0; b < B_COUNT; b++) {
        if (!EX[b]) continue;
        weft_results *r = NULL;
        soak_in in[64];
        memset(in, 0, sizeof in); /* kind ok, id 0 */
        weft_map(EX[b], soak_task, in, sizeof in[0], 64, NULL, &r);
        weft_results_destroy(r);
    }
    destroy_executors(cfg.submitters);
    pthread_t mon;
    if (pthread_create(&mon, NULL, monitor, NULL) != 0) return 2;
    take_snapshot(&base);

    printf("weft soak: %.0f s, fault rate %.2f%%, %d submitters, epochs of %.0f s, seed %" PRIu64
           "%s\n",
           cfg.duration, cfg.rate * 100, cfg.submitters, cfg.epoch, cfg.seed,
           SOAK_SANITIZED ? " (sanitized build: no memory limit)" : "");
    fflush(stdout);
    double end = t_start + cfg.duration;
    for (int epoch = 0; weft_now() < end; epoch++) {
        if (create_executors()) return 2;
        double eend = weft_now() + cfg.epoch;
        if (eend > end || end - eend < cfg.epoch / 2) eend = end;
        for (int i = 0; i < cfg.submitters; i++) {
            subs[i].deadline = eend;
            if (pthread_create(&th[i], NULL, submitter, &subs[i]) != 0) {
                fprintf(stderr, "soak: cannot start a submitter thread\n");
                return 2;
            }
        }
        for (int i = 0; i < cfg.submitters; i++) pthread_join(th[i], NULL);
        /* half of the epochs end with shutdown(CANCEL) while work is queued */
        for (int b = 0; b < B_COUNT; b++) {
            if (EX[b] && rnd(mainsub, 2)) {
                mainsub->deadline = end;
                round_submit(mainsub, b, true);
            }
        }
        destroy_executors(cfg.submitters);
    }
    take_snapshot(&fin);
    have_final = true;
    atomic_store(&monitor_stop, 1);
    pthread_join(mon, NULL);
    bool pass = report(stdout, NULL);
    free(subs);
    free(th);
    return pass ? 0 : 1;
}

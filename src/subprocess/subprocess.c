/* subprocess.c : weft_run and weft_popen -- waiting, piping, timeouts, signals.
 *
 * One loop drives a running child (drive()): it writes the input to the
 * child's stdin, reads its stdout and stderr into growing buffers, and
 * watches the child's pidfd for its exit, all from one ppoll() on
 * non-blocking descriptors. Nothing waits on one pipe while another could
 * fill, so a child that writes megabytes to both stdout and stderr while
 * reading megabytes of input never deadlocks, and no helper thread is
 * needed. When the kernel has no pidfd (before Linux 5.3) the loop polls
 * waitid(WNOWAIT) every few milliseconds instead.
 *
 * Timeout: the process group gets SIGTERM at the deadline; SIGKILL follows
 * as soon as the child itself has exited or after the grace period, which
 * also ends descendants that ignore SIGTERM. Output keeps being read for up
 * to one more grace period after SIGKILL: a descendant that left the group
 * (setsid) and still holds a pipe cannot hold weft_run forever.
 *
 * The child is reaped last (see subprocess_internal.h): signalling the group is
 * only safe while the child's pid is pinned by its unreaped zombie.
 *
 * SIGPIPE: writes to the child's stdin run with SIGPIPE blocked in the
 * calling thread; a SIGPIPE they raise is consumed with sigtimedwait before
 * the old mask comes back (unless one was already pending), so a child that
 * exits without reading its input gives WEFT_EPIPE, never kills the caller. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "subprocess/subprocess_internal.h"

#define GRACE_DEFAULT_NS 2000000000ull
#define NO_PIDFD_POLL_NS 5000000ull /* 5 ms between waitid checks without a pidfd */
#define READ_CHUNK 65536u
#define NO_DEADLINE UINT64_MAX

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t seconds_to_ns(double s)
{
    if (!(s < 9.2e9)) return NO_DEADLINE; /* WEFT_FOREVER */
    return (uint64_t)(s * 1e9);
}

/* A call's `timeout` as an absolute deadline (NO_DEADLINE for none). */
static int deadline_of(double timeout, uint64_t *deadline, const char *fn)
{
    int64_t ns;
    int rc = weft__timeout_ns(timeout, &ns, fn);
    if (rc) return rc;
    *deadline = ns < 0 ? NO_DEADLINE : weft__now_ns() + (uint64_t)ns;
    return 0;
}

static void ns_to_ts(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* ppoll until `deadline` (NO_DEADLINE: no limit); EINTR is retried.
 * @return > 0 ready, 0 timed out, -errno. */
static int poll_until(struct pollfd *pf, nfds_t n, uint64_t deadline)
{
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (deadline != NO_DEADLINE) {
            uint64_t now = weft__now_ns();
            ns_to_ts(deadline > now ? deadline - now : 0, &ts);
            tsp = &ts;
        }
        int r = ppoll(pf, n, tsp, NULL);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

typedef struct pipe_guard {
    sigset_t old;
    bool active, was_pending, got_epipe;
} pipe_guard;

static void pipe_guard_on(pipe_guard *g)
{
    sigset_t s, pend;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &g->old);
    sigemptyset(&pend);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    g->got_epipe = false;
    g->active = true;
}

static void pipe_guard_off(pipe_guard *g)
{
    if (!g->active) return;
    if (g->got_epipe && !g->was_pending) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    g->active = false;
}

/* ---- streams --------------------------------------------------------------- */

static size_t pending(const weft__pstream *s)
{
    return s->len - s->off;
}

/* Makes room for `want` more bytes plus a NUL after buf[len). */
static int stream_reserve(weft__pstream *s, size_t want)
{
    if (s->off > 0 && s->off == s->len) s->off = s->len = 0;
    if (s->cap - s->len > want) return 0;
    if (s->off > 0) { /* compact first */
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
        if (s->cap - s->len > want) return 0;
    }
    size_t cap = s->cap ? s->cap : READ_CHUNK;
    while (cap - s->len <= want) {
        if (cap > SIZE_MAX / 2) return WEFT_ENOMEM;
        cap *= 2;
    }
    char *b = realloc(s->buf, cap);
    if (!b) return WEFT_ENOMEM;
    s->buf = b;
    s->cap = cap;
    return 0;
}

/* One read() into the buffer. @return > 0 bytes, 0 end of file (eof set),
 * WEFT_EAGAIN nothing now, WEFT_ENOMEM, -errno. */
static long stream_read(weft__pstream *s)
{
    int rc = stream_reserve(s, READ_CHUNK);
    if (rc) return rc;
    for (;;) {
        ssize_t n = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
        if (n > 0) {
            s->len += (size_t)n;
            return (long)n;
        }
        if (n == 0) {
            s->eof = true;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WEFT_EAGAIN;
        return -errno;
    }
}

static void stream_free(weft__pstream *s)
{
    close_fd(&s->fd);
    free(s->buf);
    free(s->line);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Hands the captured bytes of `s` to the caller (NUL-terminated). */
static int stream_take(weft__pstream *s, char **out, size_t *len)
{
    int rc = stream_reserve(s, 0);
    if (rc) return rc;
    if (s->off) {
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
    }
    s->buf[s->len] = '\0';
    *out = s->buf;
    *len = s->len;
    s->buf = NULL;
    s->len = s->cap = 0;
    return 0;
}

/* ---- the child ---------------------------------------------------------------- */

/* Sends `sig` to the child's group (or the child alone without one), unless
 * it was reaped already. */
static int signal_child(weft_proc *p, int sig, bool group)
{
    if (p->reaped) return 0;
    pid_t target = group ? -p->pid : p->pid;
    if (kill(target, sig) != 0 && errno != ESRCH) return -errno;
    return 0;
}

static void end_group(weft_proc *p, int sig)
{
    signal_child(p, sig, p->own_group);
}

/* Has the child exited? (Not reaped: see the invariant.) */
static bool check_exited(weft_proc *p)
{
    if (p->exited || p->reaped) return true;
    if (p->pidfd >= 0) {
        struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
        if (poll(&pf, 1, 0) > 0) p->exited = true;
    } else {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid)
            p->exited = true;
        else if (r < 0 && errno == ECHILD)
            p->exited = true; /* reaped elsewhere: reap() reports it */
    }
    return p->exited;
}

/* Waits until the child has exited or `deadline`. @return true if it has. */
static bool wait_exited(weft_proc *p, uint64_t deadline)
{
    while (!check_exited(p)) {
        uint64_t now = weft__now_ns();
        if (deadline != NO_DEADLINE && now >= deadline) return false;
        if (p->pidfd >= 0) {
            struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
            int r = poll_until(&pf, 1, deadline);
            if (r > 0) p->exited = true;
            if (r < 0) return check_exited(p);
        } else {
            uint64_t step = NO_PIDFD_POLL_NS;
            if (deadline != NO_DEADLINE && deadline - now < step) step = deadline - now;
            struct timespec ts;
            ns_to_ts(step, &ts);
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

/* Reaps the child, blocking until it exits. @return 0, or WEFT_EINVAL when
 * it was reaped elsewhere (SIGCHLD ignored, or a wait(-1) in the program). */
static int reap(weft_proc *p, const char *fn)
{
    if (p->reaped) return 0;
    int st = 0;
    for (;;) {
        pid_t r = wait4(p->pid, &st, 0, &p->ru);
        if (r == p->pid) break;
        if (r < 0 && errno == EINTR) continue;
        p->reaped = p->exited = true;
        p->status = -1;
        p->t_end_ns = weft__now_ns();
        return weft__err(WEFT_EINVAL,
                         "%s: child %d was reaped by someone else (is SIGCHLD ignored?)", fn,
                         (int)p->pid);
    }
    p->t_end_ns = weft__now_ns();
    p->status = st;
    p->reaped = p->exited = true;
    close_fd(&p->pidfd);
    return 0;
}

/* Reaps the child if it has exited, without blocking. @return true if reaped. */
static bool reap_nohang(weft_proc *p)
{
    if (p->reaped) return true;
    int st = 0;
    pid_t r;
    do r = wait4(p->pid, &st, WNOHANG, &p->ru);
    while (r < 0 && errno == EINTR);
    if (r == p->pid) {
        p->t_end_ns = weft__now_ns();
        p->status = st;
        p->reaped = p->exited = true;
        close_fd(&p->pidfd);
        return true;
    }
    if (r < 0) { /* ECHILD: gone */
        p->t_end_ns = weft__now_ns();
        p->status = -1;
        p->reaped = p->exited = true;
        return true;
    }
    return false;
}

static double tv_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static void fill_status(const weft_proc *p, weft_run_result *r)
{
    r->pid = (int)p->pid;
    r->exit_code = -1;
    r->signal = 0;
    if (p->status != -1) {
        if (WIFEXITED(p->status)) r->exit_code = WEXITSTATUS(p->status);
        if (WIFSIGNALED(p->status)) {
            r->signal = WTERMSIG(p->status);
            r->core_dumped = WCOREDUMP(p->status);
        }
    }
    r->timed_out = p->timed_out;
    r->wall = (double)(p->t_end_ns - p->t0_ns) * 1e-9;
    r->user_cpu = tv_seconds(p->ru.ru_utime);
    r->sys_cpu = tv_seconds(p->ru.ru_stime);
    r->max_rss_kib = p->ru.ru_maxrss;
}

/* The return code for a finished child: timeout, check mode, or 0. */
static int status_rc(const weft_proc *p, const weft_run_result *r, bool report_timeout,
                     const char *fn)
{
    if (report_timeout && p->timed_out)
        return weft__err(WEFT_ETIMEDOUT, "%s: child %d timed out after %.3g s and was ended", fn,
                         r->pid, (double)p->timeout_ns * 1e-9);
    if ((p->flags & WEFT_RUN_CHECK) && (r->exit_code != 0)) {
        if (r->signal)
            return weft__err(WEFT_EEXIT, "%s: child %d was killed by signal %d (%s)", fn, r->pid,
                             r->signal, strsignal(r->signal));
        return weft__err(WEFT_EEXIT, "%s: child %d exited with status %d", fn, r->pid,
                         r->exit_code);
    }
    return 0;
}

/* ---- the loop ----------------------------------------------------------------- */

/* Writes what fits of input[*off..len) to the child's stdin; closes stdin
 * when all is written or the child stopped reading. */
static void feed(weft_proc *p, const char *input, size_t len, size_t *off, pipe_guard *g)
{
    while (*off < len) {
        size_t n = len - *off;
        if (n > (1u << 20)) n = 1u << 20;
        ssize_t w = write(p->in_fd, input + *off, n);
        if (w > 0) {
            *off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w < 0 && errno == EPIPE) g->got_epipe = true;
        break; /* EPIPE or another error: the child does not want the rest */
    }
    close_fd(&p->in_fd);
}

/* Reads what is there of `s` (a bounded number of reads, for fairness). */
static int drain(weft__pstream *s)
{
    for (int i = 0; i < 16; i++) {
        long n = stream_read(s);
        if (n == WEFT_EAGAIN || n == 0) return 0;
        if (n < 0) {
            if (n == WEFT_ENOMEM) return WEFT_ENOMEM;
            s->eof = true; /* a read error ends the stream */
            return 0;
        }
    }
    return 0;
}

/* Runs the child to its end: feeds input, captures stdout/stderr into
 * p->out/p->err buffers, enforces the timeout, reaps. */
static int drive(weft_proc *p, const void *input, size_t input_len, const char *fn)
{
    pipe_guard g = {0};
    size_t in_off = 0;
    int rc = 0;
    if (p->in_fd >= 0) {
        if (input_len == 0)
            close_fd(&p->in_fd);
        else
            pipe_guard_on(&g);
    }
    uint64_t deadline = p->timeout_ns ? p->t0_ns + p->timeout_ns : NO_DEADLINE;
    int stage = 0; /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent */
    uint64_t stage_at = NO_DEADLINE;
    weft__pstream *streams[2] = {&p->out, &p->err};

    for (;;) {
        check_exited(p);
        bool reading = false;
        for (int i = 0; i < 2; i++) reading |= streams[i]->fd >= 0 && !streams[i]->eof;
        if (!reading && p->in_fd < 0 && p->exited) break;

        uint64_t now = weft__now_ns();
        if (stage == 0 && now >= deadline) {
            p->timed_out = true;
            end_group(p, SIGTERM);
            close_fd(&p->in_fd);
            stage = 1;
            stage_at = now + p->grace_ns;
        }
        if (stage == 1 && (p->exited || now >= stage_at)) {
            end_group(p, SIGKILL);
            stage = 2;
            stage_at = now + p->grace_ns;
        }
        if (stage == 2 && p->exited && now >= stage_at) break; /* pipes held elsewhere */

        struct pollfd pf[4];
        weft__pstream *who[4] = {NULL, NULL, NULL, NULL};
        nfds_t n = 0;
        int in_i = -1, pid_i = -1;
        if (p->in_fd >= 0) {
            in_i = (int)n;
            pf[n++] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
        }
        for (int i = 0; i < 2; i++)
            if (streams[i]->fd >= 0 && !streams[i]->eof) {
                who[n] = streams[i];
                pf[n++] = (struct pollfd){.fd = streams[i]->fd, .events = POLLIN};
            }
        if (!p->exited && p->pidfd >= 0) {
            pid_i = (int)n;
            pf[n++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
        }
        uint64_t until = stage == 0 ? deadline : stage_at;
        if (stage == 2 && now >= stage_at) until = NO_DEADLINE; /* only the exit is awaited */
        if (!p->exited && p->pidfd < 0) {
            uint64_t cap = weft__now_ns() + NO_PIDFD_POLL_NS;
            if (cap < until) until = cap;
        }
        int r = poll_until(pf, n, until);
        if (r < 0) {
            rc = weft__err(r, "%s: poll: %s", fn, strerror(-r));
            break;
        }
        if (r == 0) continue;
        if (pid_i >= 0 && pf[pid_i].revents) p->exited = true;
        if (in_i >= 0 && pf[in_i].revents) feed(p, input, input_len, &in_off, &g);
        for (nfds_t i = 0; i < n; i++)
            if (who[i] && pf[i].revents) {
                rc = drain(who[i]);
                if (rc) break;
            }
        if (rc) {
            weft__err(rc, "%s: out of memory for the child's output", fn);
            break;
        }
    }
    pipe_guard_off(&g);
    close_fd(&p->in_fd);
    if (rc) end_group(p, SIGKILL); /* an error of ours: do not leave it running */
    int rr = reap(p, fn);
    return rc ? rc : rr;
}

/* ---- run ------------------------------------------------------------------------- */

static void proc_init_limits(weft_proc *p, const weft_run_opts *o)
{
    p->flags = o->flags;
    p->timeout_ns = o->timeout > 0 ? seconds_to_ns(o->timeout) : 0;
    if (p->timeout_ns == NO_DEADLINE) p->timeout_ns = 0;
    p->grace_ns = o->kill_grace > 0 ? seconds_to_ns(o->kill_grace) : GRACE_DEFAULT_NS;
    if (p->grace_ns == NO_DEADLINE) p->grace_ns = UINT64_MAX / 4; /* forever, no overflow */
}

static void proc_release(weft_proc *p)
{
    close_fd(&p->in_fd);
    close_fd(&p->pidfd);
    stream_free(&p->out);
    stream_free(&p->err);
}

/* Moves the captured streams into the result. */
static int take_output(weft_proc *p, bool out_pipe, bool err_pipe, weft_run_result *res)
{
    int rc = 0;
    if (out_pipe) rc = stream_take(&p->out, &res->out, &res->out_len);
    if (!rc && err_pipe) rc = stream_take(&p->err, &res->err, &res->err_len);
    return rc;
}

static int run_argv(const char *const *argv, const weft_run_opts *opts, weft_run_result *res,
                    const char *fn)
{
    if (!res) return weft__err(WEFT_EINVAL, "%s: res is NULL", fn);
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    weft_run_opts o;
    int rc = weft__opts_read(&o, sizeof o, opts, sizeof o, fn);
    if (rc) return rc;
    rc = weft__proc_check(argv, &o, fn);
    if (rc) return rc;

    weft_proc p;
    memset(&p, 0, sizeof p);
    proc_init_limits(&p, &o);
    bool out_pipe = o.out.mode == WEFT_STDIO_PIPE, err_pipe = o.err.mode == WEFT_STDIO_PIPE;
    bool in_pipe = weft__proc_in_mode(&o) == WEFT_STDIO_PIPE;
    bool loop = out_pipe || err_pipe || in_pipe || p.timeout_ns;
    rc = weft__proc_spawn(argv, &o, loop, &p, fn);
    if (rc) return rc;
    if (loop)
        rc = drive(&p, o.input, o.input_len, fn);
    else
        rc = reap(&p, fn);
    fill_status(&p, res);
    if (!rc) rc = take_output(&p, out_pipe, err_pipe, res);
    if (rc == WEFT_ENOMEM) weft__err(rc, "%s: out of memory for the child's output", fn);
    proc_release(&p);
    if (!rc) rc = status_rc(&p, res, true, fn);
    return rc;
}

int weft_run(const char *const *argv, const weft_run_opts *opts, weft_run_result *res)
{
    return run_argv(argv, opts, res, "weft_run");
}

int weft_run_shell(const char *command, const weft_run_opts *opts, weft_run_result *res)
{
    if (!command) {
        if (res) memset(res, 0, sizeof *res);
        return weft__err(WEFT_EINVAL, "weft_run_shell: command is NULL");
    }
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    return run_argv(argv, opts, res, "weft_run_shell");
}

int weft_run_capture(const char *const *argv, double timeout, weft_run_result *res)
{
    weft_run_opts o = {0};
    o.in.mode = WEFT_STDIO_NULL;
    o.out.mode = WEFT_STDIO_PIPE;
    o.err.mode = WEFT_STDIO_PIPE;
    o.timeout = timeout;
    return run_argv(argv, &o, res, "weft_run_capture");
}

int weft_run_result_fini(weft_run_result *res)
{
    if (!res) return 0;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
    return 0;
}

/* ---- popen ----------------------------------------------------------------------- */

static int popen_argv(const char *const *argv, const weft_run_opts *opts, weft_proc **out,
                      const char *fn)
{
    if (!out) return weft__err(WEFT_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    weft_run_opts o;
    int rc = weft__opts_read(&o, sizeof o, opts, sizeof o, fn);
    if (rc) return rc;
    rc = weft__proc_check(argv, &o, fn);
    if (rc) return rc;
    weft_proc *p = calloc(1, sizeof *p);
    if (!p) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    proc_init_limits(p, &o);
    if (o.input_len) {
        void *copy = malloc(o.input_len);
        if (!copy) {
            free(p);
            return weft__err(WEFT_ENOMEM, "%s: out of memory for the input", fn);
        }
        memcpy(copy, o.input, o.input_len);
        p->input = copy;
        p->input_len = o.input_len;
        p->input_owned = true;
    }
    rc = weft__proc_spawn(argv, &o, true, p, fn);
    if (rc) {
        if (p->input_owned) free((void *)p->input);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int weft_popen(const char *const *argv, const weft_run_opts *opts, weft_proc **out)
{
    return popen_argv(argv, opts, out, "weft_popen");
}

int weft_popen_shell(const char *command, const weft_run_opts *opts, weft_proc **out)
{
    if (!command) {
        if (out) *out = NULL;
        return weft__err(WEFT_EINVAL, "weft_popen_shell: command is NULL");
    }
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    return popen_argv(argv, opts, out, "weft_popen_shell");
}

int weft_proc_pid(const weft_proc *p)
{
    return p ? (int)p->pid : -1;
}

int weft_proc_write(weft_proc *p, const void *buf, size_t len, double timeout, size_t *written)
{
    static const char fn[] = "weft_proc_write";
    if (written) *written = 0;
    if (!p || (!buf && len)) return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    uint64_t deadline;
    int rc = deadline_of(timeout, &deadline, fn);
    if (rc) return rc;
    if (p->in_fd < 0)
        return weft__err(WEFT_EINVAL, "%s: the child's stdin is %s", fn,
                         p->in_pipe ? "closed" : "not a pipe");
    size_t off = 0;
    pipe_guard g = {0};
    pipe_guard_on(&g);
    const char *b = buf;
    while (off < len) {
        ssize_t w = write(p->in_fd, b + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = p->in_fd, .events = POLLOUT};
            int r = poll_until(&pf, 1, deadline);
            if (r == 0) {
                rc = WEFT_ETIMEDOUT;
                break;
            }
            if (r < 0) {
                rc = weft__err(r, "%s: poll: %s", fn, strerror(-r));
                break;
            }
            continue;
        }
        int e = w < 0 ? errno : EIO;
        if (e == EPIPE) {
            g.got_epipe = true;
            rc = weft__err(WEFT_EPIPE, "%s: child %d closed its stdin", fn, (int)p->pid);
        } else {
            rc = weft__err(-e, "%s: %s", fn, strerror(e));
        }
        break;
    }
    pipe_guard_off(&g);
    if (written) *written = off;
    return rc;
}

int weft_proc_close_stdin(weft_proc *p)
{
    if (!p) return weft__err(WEFT_EINVAL, "weft_proc_close_stdin: p is NULL");
    if (!p->in_pipe)
        return weft__err(WEFT_EINVAL, "weft_proc_close_stdin: the child's stdin is not a pipe");
    close_fd(&p->in_fd);
    return 0;
}

static weft__pstream *stream_of(weft_proc *p, int stream, const char *fn, int *rc)
{
    weft__pstream *s = NULL;
    if (!p)
        *rc = weft__err(WEFT_EINVAL, "%s: p is NULL", fn);
    else if (stream == WEFT_PROC_STDOUT)
        s = &p->out;
    else if (stream == WEFT_PROC_STDERR)
        s = &p->err;
    else
        *rc =
            weft__err(WEFT_EINVAL, "%s: stream %d is not WEFT_PROC_STDOUT or _STDERR", fn, stream);
    if (s && s->fd < 0 && !s->eof && !pending(s)) {
        *rc = weft__err(WEFT_EINVAL, "%s: the child's %s is not a pipe", fn,
                        stream == WEFT_PROC_STDOUT ? "stdout" : "stderr");
        s = NULL;
    }
    return s;
}

/* Waits until `s` is readable or `deadline`. @return 0, WEFT_ETIMEDOUT, -errno. */
static int wait_readable(weft__pstream *s, uint64_t deadline, const char *fn)
{
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    int r = poll_until(&pf, 1, deadline);
    if (r == 0) return WEFT_ETIMEDOUT;
    if (r < 0) return weft__err(r, "%s: poll: %s", fn, strerror(-r));
    return 0;
}

int weft_proc_read(weft_proc *p, weft_proc_stream stream, double timeout, void *buf, size_t cap,
                   size_t *got)
{
    static const char fn[] = "weft_proc_read";
    if (got) *got = 0;
    int rc = 0;
    weft__pstream *s = stream_of(p, stream, fn, &rc);
    if (!s) return rc;
    if (!buf || !cap || !got) return weft__err(WEFT_EINVAL, "%s: NULL buffer or cap 0", fn);
    uint64_t deadline;
    if ((rc = deadline_of(timeout, &deadline, fn))) return rc;
    if (pending(s)) {
        size_t n = pending(s) < cap ? pending(s) : cap;
        memcpy(buf, s->buf + s->off, n);
        s->off += n;
        *got = n;
        return 0;
    }
    while (!s->eof) {
        ssize_t n = read(s->fd, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return 0;
        }
        if (n == 0) {
            s->eof = true;
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            int e = errno;
            return weft__err(-e, "%s: %s", fn, strerror(e));
        }
        if ((rc = wait_readable(s, deadline, fn))) return rc;
    }
    return WEFT_EOF;
}

/* Copies buf[off..off+n) into s->line with a NUL and consumes it. */
static int hand_line(weft__pstream *s, size_t n, const char **line, size_t *len)
{
    if (weft__grow(&s->line, &s->line_cap, n + 1, 1, 128))
        return weft__err(WEFT_ENOMEM, "weft_proc_read_line: out of memory");
    memcpy(s->line, s->buf + s->off, n);
    s->line[n] = '\0';
    s->off += n;
    *line = s->line;
    if (len) *len = n;
    return 0;
}

int weft_proc_read_line(weft_proc *p, weft_proc_stream stream, double timeout, const char **line,
                        size_t *len)
{
    static const char fn[] = "weft_proc_read_line";
    if (line) *line = NULL;
    if (len) *len = 0;
    int rc = 0;
    weft__pstream *s = stream_of(p, stream, fn, &rc);
    if (!s) return rc;
    if (!line) return weft__err(WEFT_EINVAL, "%s: line is NULL", fn);
    uint64_t deadline;
    if ((rc = deadline_of(timeout, &deadline, fn))) return rc;
    size_t scanned = 0; /* bytes of the pending data known to hold no '\n' */
    for (;;) {
        const char *start = s->buf ? s->buf + s->off : NULL;
        if (start && pending(s) > scanned) {
            const char *nl = memchr(start + scanned, '\n', pending(s) - scanned);
            if (nl) return hand_line(s, (size_t)(nl - start) + 1, line, len);
            scanned = pending(s);
        }
        if (s->eof || s->fd < 0) {
            if (pending(s)) return hand_line(s, pending(s), line, len);
            return WEFT_EOF;
        }
        long n = stream_read(s);
        if (n == WEFT_ENOMEM) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
        if (n == WEFT_EAGAIN) {
            if ((rc = wait_readable(s, deadline, fn))) return rc;
        } else if (n < 0) {
            return weft__err((int)n, "%s: %s", fn, strerror((int)-n));
        }
    }
}

int weft_proc_poll(weft_proc *p, weft_run_result *res)
{
    if (res) memset(res, 0, sizeof *res);
    if (!p) return weft__err(WEFT_EINVAL, "weft_proc_poll: p is NULL");
    if (!reap_nohang(p)) return 0;
    if (res) fill_status(p, res);
    return 1;
}

int weft_proc_wait(weft_proc *p, double timeout, weft_run_result *res)
{
    static const char fn[] = "weft_proc_wait";
    if (res) memset(res, 0, sizeof *res);
    if (!p) return weft__err(WEFT_EINVAL, "%s: p is NULL", fn);
    uint64_t deadline;
    int rc = deadline_of(timeout, &deadline, fn);
    if (rc) return rc;
    if (!p->reaped) {
        if (!wait_exited(p, deadline)) return WEFT_ETIMEDOUT;
        if ((rc = reap(p, fn))) return rc;
    }
    weft_run_result r;
    memset(&r, 0, sizeof r);
    fill_status(p, &r);
    if (res) *res = r;
    return status_rc(p, &r, false, fn);
}

int weft_proc_communicate(weft_proc *p, weft_run_result *res)
{
    static const char fn[] = "weft_proc_communicate";
    if (res) memset(res, 0, sizeof *res);
    if (!p || !res) return weft__err(WEFT_EINVAL, "%s: NULL argument", fn);
    res->exit_code = -1;
    bool out_pipe = p->out.fd >= 0 || pending(&p->out) || p->out.eof;
    bool err_pipe = p->err.fd >= 0 || pending(&p->err) || p->err.eof;
    int rc = 0;
    if (p->reaped) {
        /* Nothing left to wait for: collect what the pipes still hold. */
        for (int i = 0; i < 2 && !rc; i++) {
            weft__pstream *s = i ? &p->err : &p->out;
            while (!rc && s->fd >= 0 && !s->eof) {
                long n = stream_read(s);
                if (n == WEFT_EAGAIN) {
                    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
                    poll_until(&pf, 1, weft__now_ns() + p->grace_ns);
                    if (!(pf.revents)) break; /* held open by a descendant */
                } else if (n == WEFT_ENOMEM) {
                    rc = weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
                } else if (n < 0) {
                    s->eof = true;
                }
            }
        }
        close_fd(&p->in_fd);
    } else {
        rc = drive(p, p->input, p->input_len, fn);
    }
    fill_status(p, res);
    if (!rc) rc = take_output(p, out_pipe, err_pipe, res);
    if (rc == WEFT_ENOMEM) weft__err(rc, "%s: out of memory for the child's output", fn);
    close_fd(&p->out.fd);
    close_fd(&p->err.fd);
    p->out.eof = p->err.eof = true;
    if (!rc) rc = status_rc(p, res, true, fn);
    return rc;
}

int weft_proc_signal(weft_proc *p, int sig, bool group)
{
    static const char fn[] = "weft_proc_signal";
    if (!p) return weft__err(WEFT_EINVAL, "%s: p is NULL", fn);
    if (sig < 0 || sig >= NSIG) return weft__err(WEFT_EINVAL, "%s: bad signal %d", fn, sig);
    if (group && !p->own_group)
        return weft__err(WEFT_EINVAL, "%s: the child has no process group of its own", fn);
    int rc = signal_child(p, sig, group);
    if (rc) return weft__err(rc, "%s: kill: %s", fn, strerror(-rc));
    return 0;
}

int weft_proc_kill(weft_proc *p)
{
    if (!p) return weft__err(WEFT_EINVAL, "weft_proc_kill: p is NULL");
    return weft_proc_signal(p, SIGKILL, p->own_group);
}

int weft_proc_destroy(weft_proc *p)
{
    if (!p) return 0;
    if (!p->reaped) {
        end_group(p, SIGKILL);
        (void)reap(p, "weft_proc_destroy");
    }
    proc_release(p);
    if (p->input_owned) free((void *)p->input);
    free(p);
    return 0;
}

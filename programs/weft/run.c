/* run.c : one job of the weft command (see run.h for the why).
 *
 * Who owns what: the task's input belongs to the executor during the call;
 * the output buffers (`sink`) belong to the call and are copied into the
 * task output at the end; a spill file belongs to the reader (the command's
 * main thread), which unlinks it once written out. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

extern char **environ;

#define MAGIC 0x77656674u /* "weft" */

int wt_job_encode(wt_buf *b, const wt_jobhdr *h, const char *cmd, size_t cmd_len, const char *tag,
                  size_t tag_len, const void *in, size_t in_len)
{
    uint32_t magic = MAGIC;
    wt_jobhdr hh = *h;
    hh.cmd_len = cmd_len;
    hh.tag_len = tag_len;
    hh.in_len = in_len;
    b->len = 0;
    /* one allocation of the exact size: a --pipe chunk is megabytes */
    size_t need = sizeof magic + sizeof hh + cmd_len + tag_len + in_len + 1;
    if (b->cap < need) {
        char *np = realloc(b->p, need);
        if (!np) return -1;
        b->p = np;
        b->cap = need;
    }
    if (wt_buf_add(b, &magic, sizeof magic) || wt_buf_add(b, &hh, sizeof hh) ||
        wt_buf_add(b, cmd, cmd_len) || wt_buf_add(b, tag, tag_len) || wt_buf_add(b, in, in_len))
        return -1;
    return 0;
}

/* ------------------------------------------------------------- children */

static _Atomic int *children; /* pgid by slot-1, 0 if free */
static size_t nchildren;

int wt_children_init(size_t slots)
{
    children = calloc(slots, sizeof *children);
    nchildren = children ? slots : 0;
    return children ? 0 : -1;
}

void wt_children_free(void)
{
    nchildren = 0;
    free((void *)children);
    children = NULL;
}

void wt_kill_all(int sig)
{
    for (size_t i = 0; i < nchildren; i++) {
        int pg = atomic_load(&children[i]);
        if (pg > 0) kill(-pg, sig);
    }
}

static void child_set(uint32_t slot, int pg)
{
    if (slot >= 1 && slot <= nchildren) atomic_store(&children[slot - 1], pg);
}

static void (*out_lock)(void);
static void (*out_unlock)(void);

void wt_set_output_lock(void (*lock)(void), void (*unlock)(void))
{
    out_lock = lock;
    out_unlock = unlock;
}

/* ----------------------------------------------------------------- output */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int wt_write_tagged(int fd, const char *tag, size_t tag_len, const char *data, size_t len,
                    bool *at_line_start)
{
    if (tag_len == 0) return write_all(fd, data, len);
    /* gather into a buffer so that a job's output stays one write per 64 KiB */
    wt_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        if (*at_line_start && wt_buf_add(&b, tag, tag_len)) rc = -ENOMEM;
        const char *nl = memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) + 1 : len;
        if (rc == 0 && wt_buf_add(&b, data + i, e - i)) rc = -ENOMEM;
        *at_line_start = nl != NULL;
        i = e;
        if (rc == 0 && b.len >= 65536) {
            rc = write_all(fd, b.p, b.len);
            b.len = 0;
        }
    }
    if (rc == 0 && b.len) rc = write_all(fd, b.p, b.len);
    wt_buf_free(&b);
    return rc;
}

int wt_write_spilled(int fd, const char *path, const char *tag, size_t tag_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t inc = ZSTD_DStreamInSize(), outc = ZSTD_DStreamOutSize();
    char *ib = malloc(inc), *ob = malloc(outc);
    int rc = (d && ib && ob) ? 0 : -ENOMEM;
    bool ls = true;
    while (rc == 0) {
        size_t got = fread(ib, 1, inc, f);
        if (got == 0) {
            if (ferror(f)) rc = -EIO;
            break;
        }
        ZSTD_inBuffer in = {ib, got, 0};
        while (rc == 0 && in.pos < in.size) {
            ZSTD_outBuffer out = {ob, outc, 0};
            size_t z = ZSTD_decompressStream(d, &out, &in);
            if (ZSTD_isError(z)) rc = -EIO;
            if (rc == 0 && out.pos) rc = wt_write_tagged(fd, tag, tag_len, ob, out.pos, &ls);
        }
    }
    free(ib);
    free(ob);
    ZSTD_freeDCtx(d);
    fclose(f);
    return rc;
}

/* A job's stdout or stderr as it is read: memory up to `bound`, then a
 * zstd stream into a temporary file. */
typedef struct sink {
    wt_buf mem;
    uint64_t total;
    uint64_t bound;
    FILE *file;
    char path[4096];
    ZSTD_CCtx *z;
    int err;
    /* line-buffer mode */
    int fd;
    const char *tag;
    size_t tag_len;
    bool linebuf;
    bool ls;
} sink;

static int spill(sink *s, const char *p, size_t n, ZSTD_EndDirective end)
{
    static const size_t cap = 1 << 17;
    char out[1 << 17];
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer o = {out, cap, 0};
        size_t left = ZSTD_compressStream2(s->z, &o, &in, end);
        if (ZSTD_isError(left)) return EIO;
        if (o.pos && fwrite(out, 1, o.pos, s->file) != o.pos) return errno ? errno : EIO;
        if (end == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
    }
    return 0;
}

static void sink_add(sink *s, const char *p, size_t n)
{
    s->total += n;
    if (s->err) return;
    if (s->linebuf) {
        /* complete lines out now, the partial one kept */
        if (wt_buf_add(&s->mem, p, n)) {
            s->err = ENOMEM;
            return;
        }
        char *nl = memrchr(s->mem.p, '\n', s->mem.len);
        if (!nl) return;
        size_t e = (size_t)(nl - s->mem.p) + 1;
        if (out_lock) out_lock();
        wt_write_tagged(s->fd, s->tag, s->tag_len, s->mem.p, e, &s->ls);
        if (out_unlock) out_unlock();
        memmove(s->mem.p, s->mem.p + e, s->mem.len - e);
        s->mem.len -= e;
        return;
    }
    if (!s->file && (s->bound == 0 || s->mem.len + n <= s->bound)) {
        if (wt_buf_add(&s->mem, p, n)) s->err = ENOMEM;
        return;
    }
    if (!s->file) {
        const char *dir = getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
        snprintf(s->path, sizeof s->path, "%s/weft-out-XXXXXX", dir);
        int fd = mkostemp(s->path, O_CLOEXEC);
        if (fd < 0) {
            s->err = errno;
            return;
        }
        s->file = fdopen(fd, "wb");
        s->z = ZSTD_createCCtx();
        if (!s->file || !s->z) {
            s->err = ENOMEM;
            if (!s->file) close(fd);
            return;
        }
        ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, 1);
        s->err = spill(s, s->mem.p ? s->mem.p : "", s->mem.len, ZSTD_e_continue);
        wt_buf_free(&s->mem);
    }
    if (!s->err) s->err = spill(s, p, n, ZSTD_e_continue);
}

static void sink_end(sink *s)
{
    if (s->linebuf && s->mem.len) {
        if (out_lock) out_lock();
        wt_write_tagged(s->fd, s->tag, s->tag_len, s->mem.p, s->mem.len, &s->ls);
        if (out_unlock) out_unlock();
        s->mem.len = 0;
    }
    if (s->file) {
        if (!s->err) s->err = spill(s, NULL, 0, ZSTD_e_end);
        if (fflush(s->file) && !s->err) s->err = errno ? errno : EIO;
        if (fclose(s->file) && !s->err) s->err = errno ? errno : EIO;
        s->file = NULL;
        ZSTD_freeCCtx(s->z);
        s->z = NULL;
        if (s->err) unlink(s->path);
    }
}

static void sink_free(sink *s)
{
    wt_buf_free(&s->mem);
}

/* ------------------------------------------------------------------- task */

static double now_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct reshdr {
    int32_t exit_code, signal, timed_out, error;
    double start, runtime;
    uint64_t out_total, err_total;
    uint64_t out_len, err_len; /* bytes that follow (data or path + NUL) */
    uint8_t out_spilled, err_spilled;
    char msg[200];
} reshdr;

static int finish(weft_ctx *ctx, reshdr *h, sink *o, sink *e)
{
    const char *op = o->file || o->path[0] ? o->path : o->mem.p;
    const char *ep = e->file || e->path[0] ? e->path : e->mem.p;
    h->out_spilled = o->path[0] != 0 && !o->err;
    h->err_spilled = e->path[0] != 0 && !e->err;
    h->out_len = h->out_spilled ? strlen(o->path) + 1 : (o->linebuf ? 0 : o->mem.len);
    h->err_len = h->err_spilled ? strlen(e->path) + 1 : (e->linebuf ? 0 : e->mem.len);
    h->out_total = o->total;
    h->err_total = e->total;
    if (!h->error && (o->err || e->err)) {
        h->error = o->err ? o->err : e->err;
        snprintf(h->msg, sizeof h->msg, "cannot keep the output of job in %s: %s",
                 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                 strerror(h->error));
    }
    size_t tot = sizeof *h + h->out_len + h->err_len;
    char *buf = weft_ctx_output(ctx, tot);
    if (!buf) return weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory for a job's output");
    memcpy(buf, h, sizeof *h);
    if (h->out_len) memcpy(buf + sizeof *h, op, h->out_len);
    if (h->err_len) memcpy(buf + sizeof *h + h->out_len, ep, h->err_len);
    return 0;
}

int weft_cli_job(weft_ctx *ctx, const void *in, size_t len)
{
    wt_jobhdr jh;
    uint32_t magic;
    if (len < sizeof magic + sizeof jh) return weft_ctx_fail(ctx, WEFT_EINVAL, "short job");
    memcpy(&magic, in, sizeof magic);
    memcpy(&jh, (const char *)in + sizeof magic, sizeof jh);
    const char *cmd = (const char *)in + sizeof magic + sizeof jh;
    if (magic != MAGIC || jh.cmd_len > len || jh.tag_len > len || jh.in_len > len ||
        sizeof magic + sizeof jh + jh.cmd_len + jh.tag_len + jh.in_len != len)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "malformed job");
    const char *tag = cmd + jh.cmd_len;
    const char *data = tag + jh.tag_len;

    reshdr h;
    memset(&h, 0, sizeof h);
    sink o = {.bound = jh.mem_bound,
              .fd = 1,
              .tag = tag,
              .tag_len = jh.tag_len,
              .linebuf = (jh.flags & WT_JOB_LINEBUF) != 0,
              .ls = true};
    sink e = o;
    e.fd = 2;

    /* argv: the shell's or the command's own */
    char *argv_sh[4];
    char **argv = argv_sh;
    char *cmdz = malloc(jh.cmd_len + 1);
    char **words = NULL;
    if (!cmdz) return weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
    memcpy(cmdz, cmd, jh.cmd_len);
    cmdz[jh.cmd_len] = '\0';
    const char *shell = getenv("PARALLEL_SHELL");
    if (!shell || !*shell) shell = "/bin/sh";
    if (jh.flags & WT_JOB_SHELL) {
        const char *b = strrchr(shell, '/');
        argv_sh[0] = (char *)(b ? b + 1 : shell);
        argv_sh[1] = "-c";
        argv_sh[2] = cmdz;
        argv_sh[3] = NULL;
    } else {
        size_t n = 1;
        for (size_t i = 0; i < jh.cmd_len; i++) n += cmdz[i] == '\0';
        words = malloc((n + 1) * sizeof *words);
        if (!words) {
            free(cmdz);
            return weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
        }
        size_t w = 0;
        for (size_t i = 0; i < jh.cmd_len; i += strlen(cmdz + i) + 1) words[w++] = cmdz + i;
        words[w] = NULL;
        argv = words;
    }

    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
    bool ungroup = (jh.flags & WT_JOB_UNGROUP) != 0;
    bool feed = (jh.flags & WT_JOB_STDIN) != 0;
    int rc = 0;
    if (!ungroup && (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))) rc = errno;
    if (!rc && feed && pipe2(pi, O_CLOEXEC)) rc = errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (feed)
        posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
    else if (!(jh.flags & WT_JOB_INHERIT_IN))
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!ungroup) {
        posix_spawn_file_actions_adddup2(&fa, po[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    }
    sigset_t def, none;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGQUIT);
    sigaddset(&def, SIGXFSZ);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    h.start = now_epoch();
    double t0 = now_mono();
    if (!rc) {
        if (jh.flags & WT_JOB_SHELL)
            rc = posix_spawn(&pid, shell, &fa, &at, argv, environ);
        else
            rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (po[1] >= 0) close(po[1]);
    if (pe[1] >= 0) close(pe[1]);
    if (pi[0] >= 0) close(pi[0]);
    if (rc) {
        h.error = rc;
        h.exit_code = rc == ENOENT ? 127 : 126;
        snprintf(h.msg, sizeof h.msg, "%s: %s", argv[0],
                 rc == ENOENT ? "command not found" : strerror(rc));
        if (po[0] >= 0) close(po[0]);
        if (pe[0] >= 0) close(pe[0]);
        if (pi[1] >= 0) close(pi[1]);
        free(words);
        free(cmdz);
        int r = finish(ctx, &h, &o, &e);
        sink_free(&o);
        sink_free(&e);
        return r;
    }
    child_set(jh.slot, pid);
    if (pi[1] >= 0) {
        fcntl(pi[1], F_SETFL, O_NONBLOCK);
        fcntl(pi[1], F_SETPIPE_SZ, 1 << 20);
    }

    size_t fed = 0;
    if (feed && jh.in_len == 0) {
        close(pi[1]);
        pi[1] = -1;
    }
    char *rbuf = malloc(1 << 16);
    double deadline = jh.timeout > 0 ? t0 + jh.timeout : 0, killat = 0;
    int killstage = 0;
    while (rbuf && (po[0] >= 0 || pe[0] >= 0 || pi[1] >= 0)) {
        struct pollfd pf[3];
        int np = 0, io = -1, ie = -1, ii = -1;
        if (po[0] >= 0) pf[io = np++] = (struct pollfd){po[0], POLLIN, 0};
        if (pe[0] >= 0) pf[ie = np++] = (struct pollfd){pe[0], POLLIN, 0};
        if (pi[1] >= 0) pf[ii = np++] = (struct pollfd){pi[1], POLLOUT, 0};
        int ms = -1;
        if (deadline > 0) {
            double t = (killstage ? killat : deadline) - now_mono();
            ms = t <= 0 ? 0 : (int)(t * 1000) + 1;
        }
        int r = ungroup && !feed ? 0 : poll(pf, (nfds_t)np, ms);
        if (ungroup && !feed) break;
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) {
            if (deadline > 0 && now_mono() >= (killstage ? killat : deadline)) {
                h.timed_out = 1;
                kill(-pid, killstage ? SIGKILL : SIGTERM);
                killstage++;
                killat = now_mono() + 1.0;
                if (killstage > 1) deadline = 0;
            }
            continue;
        }
        if (ii >= 0 && (pf[ii].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(pi[1], data + fed, jh.in_len - fed);
            if (w > 0) fed += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || fed == jh.in_len) {
                close(pi[1]);
                pi[1] = -1;
            }
        }
        for (int k = 0; k < 2; k++) {
            int ix = k ? ie : io;
            int *fd = k ? &pe[0] : &po[0];
            if (ix < 0 || !(pf[ix].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(*fd, rbuf, 1 << 16);
            if (got > 0)
                sink_add(k ? &e : &o, rbuf, (size_t)got);
            else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(*fd);
                *fd = -1;
            }
        }
    }
    free(rbuf);
    if (po[0] >= 0) close(po[0]);
    if (pe[0] >= 0) close(pe[0]);
    if (pi[1] >= 0) close(pi[1]);
    int st = 0;
    for (;;) {
        /* the output closed; the child may still run (ungroup, or it
         * closed its outputs): wait, still honouring the timeout */
        pid_t w;
        if (deadline > 0) {
            w = waitpid(pid, &st, WNOHANG);
            if (w == 0) {
                if (now_mono() >= (killstage ? killat : deadline)) {
                    h.timed_out = 1;
                    kill(-pid, killstage ? SIGKILL : SIGTERM);
                    killstage++;
                    killat = now_mono() + 1.0;
                    if (killstage > 1) deadline = 0;
                }
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
                continue;
            }
        } else {
            w = waitpid(pid, &st, 0);
        }
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
    }
    child_set(jh.slot, 0);
    h.runtime = now_mono() - t0;
    if (WIFEXITED(st)) {
        h.exit_code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        h.signal = WTERMSIG(st);
        h.exit_code = 0;
    }
    if (h.timed_out) h.exit_code = -1;
    sink_end(&o);
    sink_end(&e);
    free(words);
    free(cmdz);
    int r = finish(ctx, &h, &o, &e);
    sink_free(&o);
    sink_free(&e);
    return r;
}
WEFT_TASK_REGISTER(weft_cli_job);

int wt_result_decode(const void *data, size_t len, wt_result *r)
{
    reshdr h;
    memset(r, 0, sizeof *r);
    if (len < sizeof h) return -1;
    memcpy(&h, data, sizeof h);
    if (sizeof h + h.out_len + h.err_len != len) return -1;
    r->exit_code = h.exit_code;
    r->signal = h.signal;
    r->timed_out = h.timed_out;
    r->error = h.error;
    r->start = h.start;
    r->runtime = h.runtime;
    r->out_total = h.out_total;
    r->err_total = h.err_total;
    r->out_len = h.out_len;
    r->err_len = h.err_len;
    r->out = (const char *)data + sizeof h;
    r->err = r->out + h.out_len;
    r->out_spilled = h.out_spilled;
    r->err_spilled = h.err_spilled;
    memcpy(r->msg, h.msg, sizeof r->msg);
    r->msg[sizeof r->msg - 1] = '\0';
    return 0;
}

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
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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

static _Atomic int
    kill_sig; /* the last wt_kill_all signal: a job that starts after it gets it too */
static _Atomic int stop_start; /* wt_stop_starting: a job not started yet never starts */

void wt_stop_starting(void)
{
    atomic_store(&stop_start, 1);
}

void wt_kill_all(int sig)
{
    atomic_store(&kill_sig, sig);
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

/* ------------------------------------------------------------------- feed */

/* The queue is a ring of chunks under a mutex. Jobs wait for it in their
 * poll loop (with their pipes), so its readiness is an eventfd in
 * semaphore mode: one count per queued chunk, and a huge count once
 * closed. A job that reads a count owns one pop: it finds a chunk, or
 * (closed) the end. */
struct wt_feed {
    pthread_mutex_t mu;
    pthread_cond_t room;
    int efd;
    struct {
        char *own; /* what to free */
        const char *p;
        size_t len;
    } * q;
    size_t cap, head, n;
    int consumers;
    bool closed;
};

wt_feed *wt_feed_create(size_t cap)
{
    wt_feed *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->cap = cap ? cap : 1;
    f->q = calloc(f->cap, sizeof *f->q);
    f->efd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
    if (!f->q || f->efd < 0) {
        if (f->efd >= 0) close(f->efd);
        free(f->q);
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->room, NULL);
    return f;
}

void wt_feed_add_consumer(wt_feed *f)
{
    pthread_mutex_lock(&f->mu);
    f->consumers++;
    pthread_mutex_unlock(&f->mu);
}

static void feed_leave(wt_feed *f)
{
    pthread_mutex_lock(&f->mu);
    f->consumers--;
    pthread_cond_broadcast(&f->room);
    pthread_mutex_unlock(&f->mu);
}

static void efd_add(int efd, uint64_t v)
{
    while (write(efd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

int wt_feed_push(wt_feed *f, char *own, const char *p, size_t len, bool (*stop)(void))
{
    pthread_mutex_lock(&f->mu);
    while (f->n == f->cap && f->consumers > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&f->room, &f->mu, &ts);
        if (stop && stop()) break;
    }
    if (f->n == f->cap || f->consumers <= 0) {
        pthread_mutex_unlock(&f->mu);
        free(own);
        return -1;
    }
    size_t t = (f->head + f->n) % f->cap;
    f->q[t].own = own;
    f->q[t].p = p;
    f->q[t].len = len;
    f->n++;
    pthread_mutex_unlock(&f->mu);
    efd_add(f->efd, 1);
    return 0;
}

void wt_feed_close(wt_feed *f)
{
    pthread_mutex_lock(&f->mu);
    bool was = f->closed;
    f->closed = true;
    pthread_mutex_unlock(&f->mu);
    if (!was) efd_add(f->efd, (uint64_t)1 << 40);
}

void wt_feed_destroy(wt_feed *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->q[(f->head + i) % f->cap].own);
    close(f->efd);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->room);
    free(f->q);
    free(f);
}

/* @return 1 with a chunk (the caller frees it), 0 at the end, -1 when
 * none is there yet (poll f->efd). */
static int feed_pull(wt_feed *f, char **own, const char **p, size_t *len)
{
    uint64_t v;
    ssize_t r = read(f->efd, &v, sizeof v);
    if (r != (ssize_t)sizeof v) return -1;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (f->n > 0) {
        *own = f->q[f->head].own;
        *p = f->q[f->head].p;
        *len = f->q[f->head].len;
        f->head = (f->head + 1) % f->cap;
        f->n--;
        pthread_cond_broadcast(&f->room);
        rc = 1;
    } else if (!f->closed) {
        rc = -1; /* cannot happen: a count is only there with a chunk or closed */
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* ------------------------------------------------------------------ stdin */

/* What is written to a job's stdin: `pre` (inline data or the --header
 * record), then the chunk from memory, a file range (spliced: the pages
 * go from the page cache into the pipe without a copy here) or a feed. */
typedef struct feeder {
    int fd; /* the pipe's write end, -1 once closed */
    const char *pre;
    size_t pre_len, pre_done;
    uint32_t kind; /* 0, WT_JOB_STDIN_MEM, _FILE or _FEED */
    const char *mem;
    size_t mem_len, mem_done;
    int file_fd;
    uint64_t off, left;
    bool no_splice;
    char *bounce;
    size_t bounce_len, bounce_done;
    wt_feed *feed;
    char *chunk_own;
    const char *chunk;
    size_t chunk_len, chunk_done;
    bool feed_left;
    uint64_t total;
} feeder;

static void feeder_close(feeder *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    free(f->chunk_own);
    f->chunk_own = NULL;
    f->chunk = NULL;
    free(f->bounce);
    f->bounce = NULL;
    if (f->feed && !f->feed_left) {
        feed_leave(f->feed);
        f->feed_left = true;
    }
}

/* Writes from p[*done..n): @return 1 all written, 0 the pipe is full, -1
 * an error (the reader is gone). */
static int feed_write(feeder *f, const char *p, size_t n, size_t *done)
{
    while (*done < n) {
        ssize_t w = write(f->fd, p + *done, n - *done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        *done += (size_t)w;
        f->total += (uint64_t)w;
    }
    return 1;
}

/* Writes what it can without blocking. @return the fd to poll and the
 * events (POLLOUT on the pipe, POLLIN on the feed), or -1 once done (the
 * pipe is closed then). */
static int feeder_step(feeder *f, short *events)
{
    for (;;) {
        if (f->fd < 0) return -1;
        int r = 1;
        if (f->pre_done < f->pre_len) {
            r = feed_write(f, f->pre, f->pre_len, &f->pre_done);
        } else if (f->kind == WT_JOB_STDIN_MEM) {
            r = feed_write(f, f->mem, f->mem_len, &f->mem_done);
            if (r == 1) f->kind = 0;
        } else if (f->kind == WT_JOB_STDIN_FILE) {
            if (f->bounce_done < f->bounce_len) {
                r = feed_write(f, f->bounce, f->bounce_len, &f->bounce_done);
                if (r == 1) f->bounce_done = f->bounce_len = 0;
            } else if (f->left == 0) {
                f->kind = 0;
            } else if (!f->no_splice) {
                size_t n = f->left < (1u << 20) ? (size_t)f->left : (1u << 20);
                loff_t off = (loff_t)f->off;
                ssize_t s =
                    splice(f->file_fd, &off, f->fd, NULL, n, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (s > 0) {
                    f->off += (uint64_t)s;
                    f->left -= (uint64_t)s;
                    f->total += (uint64_t)s;
                } else if (s == 0) {
                    f->left = 0; /* the file got shorter */
                } else if (errno == EAGAIN) {
                    r = 0;
                } else if (errno == EINVAL || errno == ENOSYS) {
                    f->no_splice = true; /* a file system without splice */
                } else if (errno != EINTR) {
                    r = -1;
                }
            } else {
                if (!f->bounce) f->bounce = malloc(1u << 20);
                if (!f->bounce) {
                    r = -1;
                } else {
                    size_t n = f->left < (1u << 20) ? (size_t)f->left : (1u << 20);
                    ssize_t g = pread(f->file_fd, f->bounce, n, (off_t)f->off);
                    if (g > 0) {
                        f->off += (uint64_t)g;
                        f->left -= (uint64_t)g;
                        f->bounce_len = (size_t)g;
                        f->bounce_done = 0;
                    } else if (g == 0) {
                        f->left = 0;
                    } else if (errno != EINTR) {
                        r = -1;
                    }
                }
            }
        } else if (f->kind == WT_JOB_STDIN_FEED) {
            if (f->chunk) {
                r = feed_write(f, f->chunk, f->chunk_len, &f->chunk_done);
                if (r == 1) {
                    free(f->chunk_own);
                    f->chunk_own = NULL;
                    f->chunk = NULL;
                }
            } else {
                int g = feed_pull(f->feed, &f->chunk_own, &f->chunk, &f->chunk_len);
                if (g == 0) {
                    f->kind = 0;
                } else if (g < 0) {
                    *events = POLLIN;
                    return f->feed->efd;
                } else {
                    f->chunk_done = 0;
                }
            }
        } else {
            feeder_close(f);
            return -1;
        }
        if (r < 0) {
            feeder_close(f);
            return -1;
        }
        if (r == 0) {
            *events = POLLOUT;
            return f->fd;
        }
    }
}

/* /dev/null, opened once: a job's stdin is a dup2 of it, not an open */
static int devnull_fd = -1;
static pthread_once_t devnull_once = PTHREAD_ONCE_INIT;

static void devnull_open(void)
{
    devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
    int32_t exit_code, signal, timed_out, error, skipped;
    double start, runtime;
    uint64_t out_total, err_total, in_total;
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

    /* argv: the shell's or the command's own (WT_JOB_PATH: after the
     * program's path, found in PATH once by the main thread) */
    char *argv_sh[4];
    char **argv = argv_sh;
    char *cmdz = malloc(jh.cmd_len + 1);
    char **words = NULL;
    const char *path = NULL;
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
        path = shell;
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
        if ((jh.flags & WT_JOB_PATH) && words[0] && words[1]) {
            path = words[0];
            argv = words + 1;
        }
    }

    /* stdin: the chunk, from this buffer or by reference */
    bool ungroup = (jh.flags & WT_JOB_UNGROUP) != 0;
    bool feed = (jh.flags & WT_JOB_STDIN) != 0;
    feeder fd_in = {.fd = -1, .file_fd = -1, .pre = data, .pre_len = jh.in_len};
    uint32_t refkind = jh.flags & (WT_JOB_STDIN_MEM | WT_JOB_STDIN_FILE | WT_JOB_STDIN_FEED);
    if (feed && refkind) {
        wt_stdin_ref ref;
        if (jh.in_len < sizeof ref) {
            free(words);
            free(cmdz);
            return weft_ctx_fail(ctx, WEFT_EINVAL, "malformed job");
        }
        memcpy(&ref, data, sizeof ref);
        fd_in.pre = data + sizeof ref;
        fd_in.pre_len = jh.in_len - sizeof ref;
        fd_in.kind = refkind;
        fd_in.mem = ref.mem;
        fd_in.mem_len = (size_t)ref.len;
        fd_in.file_fd = ref.fd;
        fd_in.off = ref.off;
        fd_in.left = ref.len;
        fd_in.feed = ref.feed;
    }

    if (atomic_load(&stop_start)) {
        /* queued ahead of a free slot, and the command stopped starting jobs */
        h.skipped = 1;
        feeder_close(&fd_in);
        free(words);
        free(cmdz);
        int r = finish(ctx, &h, &o, &e);
        sink_free(&o);
        sink_free(&e);
        return r;
    }

    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
    int rc = 0;
    if (!ungroup && (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))) rc = errno;
    if (!rc && feed && pipe2(pi, O_CLOEXEC)) rc = errno;
    fd_in.fd = pi[1];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (feed) {
        posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
    } else if (!(jh.flags & WT_JOB_INHERIT_IN)) {
        pthread_once(&devnull_once, devnull_open);
        if (devnull_fd > 2) /* (not when weft itself was started without fd 0) */
            posix_spawn_file_actions_adddup2(&fa, devnull_fd, 0);
        else
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
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
        if (path)
            rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
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
        feeder_close(&fd_in);
        free(words);
        free(cmdz);
        int r = finish(ctx, &h, &o, &e);
        sink_free(&o);
        sink_free(&e);
        return r;
    }
    child_set(jh.slot, pid);
    int ks = atomic_load(&kill_sig);
    if (ks) kill(-pid, ks); /* wt_kill_all ran between the spawn and child_set */
    if (fd_in.fd >= 0) {
        fcntl(fd_in.fd, F_SETFL, O_NONBLOCK);
        fcntl(fd_in.fd, F_SETPIPE_SZ, 1 << 20);
    }

    char *rbuf = malloc(1 << 16);
    double deadline = jh.timeout > 0 ? t0 + jh.timeout : 0, killat = 0;
    int killstage = 0;
    while (rbuf) {
        struct pollfd pf[3];
        int np = 0, io = -1, ie = -1, ii = -1;
        short iev = 0;
        int ifd = feed ? feeder_step(&fd_in, &iev) : -1;
        if (po[0] < 0 && pe[0] < 0 && ifd < 0) break;
        if (po[0] >= 0) pf[io = np++] = (struct pollfd){po[0], POLLIN, 0};
        if (pe[0] >= 0) pf[ie = np++] = (struct pollfd){pe[0], POLLIN, 0};
        if (ifd >= 0) pf[ii = np++] = (struct pollfd){ifd, iev, 0};
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
                /* a job killed for its time gets no more input */
                feeder_close(&fd_in);
            }
            continue;
        }
        (void)ii; /* the feeder writes (or pulls) at the top of the loop */
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
    feeder_close(&fd_in);
    h.in_total = fd_in.total;
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
    r->skipped = h.skipped;
    r->error = h.error;
    r->start = h.start;
    r->runtime = h.runtime;
    r->out_total = h.out_total;
    r->err_total = h.err_total;
    r->in_total = h.in_total;
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

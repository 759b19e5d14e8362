/* progress.c : progress bars on stderr (tqdm for weft).
 *
 * Counting is an atomic add; drawing is rate-limited by a deadline word
 * (`next_ns`) that every adder compares with the clock, and done by one
 * thread at a time (`drawing`, a try-lock: a thread that finds it held skips
 * the draw rather than wait). A line is built in a stack buffer and written
 * with one write(2), so lines from several bars or threads never interleave
 * inside a line. Nothing here allocates after create. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag/progress_internal.h"
#include "internal.h"

#define DEFAULT_WIDTH 24
#define MAX_WIDTH 200
#define TTY_INTERVAL_NS 100000000ull
#define LINES_INTERVAL_NS 1000000000ull

struct weft_progress {
    _Atomic uint64_t done;
    _Atomic uint64_t total;
    _Atomic uint64_t next_ns;
    _Atomic int drawing;
    uint64_t t0;
    uint64_t interval_ns;
    int fd;
    bool tty;
    int width;
    char label[64];
};

static void fmt_time(char *b, size_t cap, double s)
{
    if (!(s >= 0) || s > 3600.0 * 24 * 365) {
        snprintf(b, cap, "?");
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(b, cap, "%lu:%02lu:%02lu", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(b, cap, "%02lu:%02lu", t / 60, t % 60);
}

static void fmt_rate(char *b, size_t cap, double r)
{
    if (!(r >= 0))
        snprintf(b, cap, "?");
    else if (r >= 1e9)
        snprintf(b, cap, "%.2fG", r / 1e9);
    else if (r >= 1e6)
        snprintf(b, cap, "%.2fM", r / 1e6);
    else if (r >= 1e4)
        snprintf(b, cap, "%.1fk", r / 1e3);
    else if (r >= 100)
        snprintf(b, cap, "%.0f", r);
    else
        snprintf(b, cap, "%.2f", r);
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) return; /* progress is best effort: never fail the work for it */
        s += w;
        n -= (size_t)w;
    }
}

static void draw(weft_progress *p, bool final)
{
    uint64_t done = atomic_load_explicit(&p->done, memory_order_relaxed);
    uint64_t total = atomic_load_explicit(&p->total, memory_order_relaxed);
    double el = (double)(weft__now_ns() - p->t0) * 1e-9;
    double rate = el > 0 ? (double)done / el : 0;
    char e[32], eta[32], r[32];
    fmt_time(e, sizeof e, el);
    fmt_rate(r, sizeof r, rate);
    if (total && done < total && rate > 0)
        fmt_time(eta, sizeof eta, (double)(total - done) / rate);
    else if (total && done >= total)
        fmt_time(eta, sizeof eta, 0);
    else
        snprintf(eta, sizeof eta, "?");
    char line[512];
    int n = 0;
    if (p->tty) {
        if (total) {
            double frac = done >= total ? 1.0 : (double)done / (double)total;
            char bar[MAX_WIDTH + 1];
            int full = (int)(frac * p->width);
            for (int i = 0; i < p->width; i++) bar[i] = i < full ? '#' : '.';
            bar[p->width] = '\0';
            n = snprintf(line, sizeof line, "\r%s: %3d%% |%s| %llu/%llu [%s<%s, %s/s]\x1b[K%s",
                         p->label, (int)(frac * 100), bar, (unsigned long long)done,
                         (unsigned long long)total, e, eta, r, final ? "\n" : "");
        } else {
            n = snprintf(line, sizeof line, "\r%s: %llu [%s, %s/s]\x1b[K%s", p->label,
                         (unsigned long long)done, e, r, final ? "\n" : "");
        }
    } else {
        if (total) {
            double frac = done >= total ? 1.0 : (double)done / (double)total;
            n = snprintf(line, sizeof line, "%s: %llu/%llu (%d%%) %s/s elapsed %s eta %s%s\n",
                         p->label, (unsigned long long)done, (unsigned long long)total,
                         (int)(frac * 100), r, e, eta, final ? " done" : "");
        } else {
            n = snprintf(line, sizeof line, "%s: %llu %s/s elapsed %s%s\n", p->label,
                         (unsigned long long)done, r, e, final ? " done" : "");
        }
    }
    if (n > 0) write_all(p->fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

int weft_progress_create(const char *label, uint64_t total, const weft_progress_options *opts,
                         weft_progress **out)
{
    weft_progress_options local_opts;
    if (!out) return weft__err(WEFT_EINVAL, "weft_progress_create: out is NULL");
    *out = NULL;
    int orc = WEFT__OPTS_READ(local_opts, opts, "weft_progress_create: weft_progress_options");
    if (orc) return orc;
    opts = &local_opts;
    if (!(opts->interval >= 0) || opts->width < 0 || opts->fd < 0 ||
        (unsigned)opts->mode > WEFT_PROGRESS_LINES)
        return weft__err(WEFT_EINVAL,
                         "weft_progress_create: bad option (interval %g, width %d, fd %d, mode %d)",
                         opts->interval, opts->width, opts->fd, (int)opts->mode);
    weft_progress *p = calloc(1, sizeof *p);
    if (!p) return weft__err(WEFT_ENOMEM, "weft_progress_create: out of memory");
    p->fd = opts->fd ? opts->fd : 2;
    p->tty =
        opts->mode == WEFT_PROGRESS_TTY || (opts->mode == WEFT_PROGRESS_AUTO && isatty(p->fd) == 1);
    p->width = opts->width ? opts->width : DEFAULT_WIDTH;
    if (p->width > MAX_WIDTH) p->width = MAX_WIDTH;
    if (opts->interval > 0)
        p->interval_ns = opts->interval > 1e6 ? (uint64_t)1e15 : (uint64_t)(opts->interval * 1e9);
    else
        p->interval_ns = p->tty ? TTY_INTERVAL_NS : LINES_INTERVAL_NS;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "progress");
    atomic_init(&p->done, 0);
    atomic_init(&p->total, total);
    atomic_init(&p->drawing, 0);
    p->t0 = weft__now_ns();
    atomic_init(&p->next_ns, p->t0 + p->interval_ns);
    draw(p, false);
    *out = p;
    return 0;
}

void weft_progress_add(weft_progress *p, uint64_t n)
{
    if (!p) return;
    atomic_fetch_add_explicit(&p->done, n, memory_order_relaxed);
    uint64_t now = weft__now_ns();
    if (now < atomic_load_explicit(&p->next_ns, memory_order_relaxed)) return;
    if (atomic_exchange_explicit(&p->drawing, 1, memory_order_acquire)) return;
    if (now >= atomic_load_explicit(&p->next_ns, memory_order_relaxed)) {
        atomic_store_explicit(&p->next_ns, now + p->interval_ns, memory_order_relaxed);
        draw(p, false);
    }
    atomic_store_explicit(&p->drawing, 0, memory_order_release);
}

void weft_progress_set_total(weft_progress *p, uint64_t total)
{
    if (p) atomic_store_explicit(&p->total, total, memory_order_relaxed);
}

uint64_t weft_progress_done(const weft_progress *p)
{
    return p ? atomic_load_explicit(&((weft_progress *)p)->done, memory_order_relaxed) : 0;
}

int weft_progress_destroy(weft_progress *p)
{
    if (!p) return 0;
    while (atomic_exchange_explicit(&p->drawing, 1, memory_order_acquire)) weft__yield();
    draw(p, true);
    free(p);
    return 0;
}

bool weft__progress_wanted(weft_show_progress opt)
{
    if (opt) return opt > 0;
    const char *v = getenv("WEFT_PROGRESS");
    return v && *v && strcmp(v, "0") != 0;
}

weft_progress *weft__progress_start(const char *label, uint64_t total)
{
    weft_progress *p = NULL;
    char keep[512];
    snprintf(keep, sizeof keep, "%s", weft_last_error());
    if (weft_progress_create(label, total, NULL, &p) != 0) p = NULL;
    weft__err(0, "%s", keep); /* a bar never changes the caller's last error */
    return p;
}

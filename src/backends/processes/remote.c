/* remote.c : the worker process and its proxy (processes backend).
 *
 * The arena: one memfd per worker, shared by the worker and its proxy.
 * Each side reserves a large virtual range once and maps the memfd at its
 * start, growing the mapping in place (MAP_FIXED), so a pointer into the
 * arena (a task's input, an output being written) never moves, whichever
 * side grows the file. Layout of one request:
 *
 *   [control block, 4 KiB][req_hdr][req_item x n][inputs][resp_rec x n][outputs]
 *
 * The proxy writes header, items and inputs, bumps req_seq; the worker runs
 * the items in order, the task reading its input in place and writing its
 * output straight into the arena (weft_ctx_output allocates there), fills
 * each resp_rec and bumps done_items after every item, then bumps resp_seq.
 * Wake-ups are futexes on req_seq / resp_seq, made only when the other side
 * announced it sleeps: a busy pair exchanges requests with no system call.
 *
 * Faults: the fork server reaps a dead worker and sets `dead` in its
 * control block with a wake, so the proxy learns at once. Items before
 * done_items have results; the one at done_items is the one that killed
 * the worker (or ran out of time, or over the memory limit): it fails with
 * the cause, a fresh worker takes the arena and the rest of the batch.
 * An output left in the worker's own memory (a large one, read with
 * process_vm_readv) would die with it: before the worker starts the next
 * item it waits (pull_req / pull_ack) until the proxy has reported the
 * finished items, copying that output.
 *
 * Large inputs (4 MiB or more) do not go through the arena: each worker
 * has an *input segment*, a memfd it creates when the proxy asks
 * (OP_INSEG) and maps pre-faulted; the proxy maps it too (through
 * /proc/<pid>/fd), pre-faulted, and keeps both mappings from one large
 * input to the next (grown to the largest request seen, up to INSEG_MAX;
 * gone with the worker). The proxy copies a large input into it with
 * memcpy (split with a second thread, copy_in) before it sends the
 * request, and the task reads it there: a copy at memory speed, with no
 * page fault and no page pinned. The worker is done with the segment
 * when it has answered, and the proxy writes the next request only then.
 * Inputs that do not fit, or when the segment cannot be made (under a
 * memory limit, or when /proc/<pid>/fd is refused), go with
 * process_vm_writev/readv into a buffer of the worker (IF_REMOTE_IN).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/processes/processes_internal.h"

#define ARENA_MIN (1u << 20)
#define ARENA_SHRINK (64u << 20) /* give memory back above this after a batch */
#define ARENA_RESERVE (1ull << 36)
#define ARENA_IN_MAX (ARENA_RESERVE / 2) /* inputs of one request through the arena */
#define ALIGN 64
#define BIG_PAYLOAD (4u << 20) /* inputs/outputs this large bypass the arena */
#define SLICE_NS 50000000ll    /* longest sleep between checks of timeouts, stop, watchdog */
#define SPIN_NS 50000u         /* the most a proxy spins for a response */
#define WORKER_SPIN_NS 100000u /* the most a worker process spins for a request */
#define SPIN_MIN_NS 2000u      /* the least either spin budget falls to */

enum {
    OP_RUN = 1,
    OP_INIT = 2,
    OP_QUIT = 3,
    OP_INSEG = 4 /* make the input segment (its size in items[0].index) */
};
enum {
    RF_STOP_ON_ERROR = 1, /* request: cancel the rest after a failure */
    RF_VM = 2,            /* request: large outputs may stay in the worker */
    RF_SHM_OUT = 4,       /* request: large outputs may go in shared segments */
    IF_REMOTE_IN = 1,     /* item: the input is written into the worker's memory */
    IF_SEG_IN = 2,        /* item: the input is in the input segment at in_off */
    RF_PHASES = 8,        /* request: stamp ph_seen / ph_resp (WEFT_PROCESSES_PHASES) */
    OF_REMOTE_OUT = 1,    /* record: the output is in the worker's memory at out_off */
    OF_SHARED_OUT = 2,    /* record: ... in its segment seg (also at out_off) */
};

typedef struct req_hdr {
    uint32_t op;
    uint32_t n;
    uint32_t flags;
    int32_t worker_id;
    uint64_t resp_off; /* the resp_rec array */
    uint64_t data_off; /* where outputs may start */
    uint32_t seq;      /* the request number (req_seq after it) */
    uint32_t pad;
    uint64_t inseg_id; /* IF_SEG_IN items: which input segment (w_in.id) */
} req_hdr;

typedef struct req_item {
    weft_task_fn fn;
    uint64_t in_off, in_len;
    uint64_t index, seed;
    int32_t retries;
    uint32_t flags;   /* IF_* */
    uint64_t in_addr; /* IF_REMOTE_IN: the input in the owner's memory */
} req_item;

typedef struct resp_rec {
    int32_t err;
    uint32_t flags; /* OF_* */
    uint64_t out_off, out_len;
    uint64_t msg_off, msg_len;
    uint64_t t0, t1;
    int32_t seg_fd;   /* OF_SHARED_OUT: the segment's descriptor in the worker */
    uint32_t seg;     /* its index */
    uint32_t seg_gen; /* the output's generation (seg_rel) */
    uint32_t pad;
    uint64_t seg_id; /* which memfd of the worker the segment is (the owner keeps its mapping) */
} resp_rec;

static inline size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

/* ---- arena (both sides) ---------------------------------------------------------- */

typedef struct arena {
    unsigned char *base;
    size_t mapped;
    int fd;
} arena;

static int arena_open(arena *a, int fd)
{
    void *r =
        mmap(NULL, ARENA_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return -errno;
    a->base = r;
    a->mapped = 0;
    a->fd = fd;
    return 0;
}

/* Maps [0, size) of the file (in place). */
static int arena_map(arena *a, size_t size)
{
    if (size <= a->mapped) return 0;
    if (size > ARENA_RESERVE) return -E2BIG;
    size_t want = align_up(size, 2u << 20);
    if (want > ARENA_RESERVE) want = ARENA_RESERVE;
    void *r = mmap(a->base + a->mapped, want - a->mapped, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED, a->fd, (off_t)a->mapped);
    if (r == MAP_FAILED) return -errno;
    a->mapped = want;
    return 0;
}

static void arena_close(arena *a)
{
    if (a->base) munmap(a->base, ARENA_RESERVE);
    a->base = NULL;
    a->mapped = 0;
}

static inline weft__wctl *ctl_of(const arena *a)
{
    return (weft__wctl *)a->base;
}

/* Makes the file at least `need` bytes and maps it. */
static int arena_grow(arena *a, size_t need)
{
    weft__wctl *c = ctl_of(a);
    size_t cur = __atomic_load_n(&c->arena_size, __ATOMIC_ACQUIRE);
    if (need > cur) {
        size_t n = cur * 2 > need ? cur * 2 : need;
        n = align_up(n, 1u << 20);
        if (n > ARENA_RESERVE) n = ARENA_RESERVE;
        if (need > n) return -E2BIG;
        if (ftruncate(a->fd, (off_t)n) < 0) return -errno;
        __atomic_store_n(&c->arena_size, n, __ATOMIC_RELEASE);
        cur = n;
    }
    return arena_map(a, cur);
}

/* ---- the worker process ------------------------------------------------------------ */

static arena W;
static weft__spin w_spin = WEFT__SPIN_INIT(WORKER_SPIN_NS, SPIN_MIN_NS);
static size_t w_cursor; /* where the next output goes */
static size_t w_item_start;
static void *w_state;
static size_t w_state_len;
static weft_task_fn w_checked_fn;
static volatile uint64_t w_probe = 0x77656674766d6f6bull; /* read by the owner */
static bool w_vm;       /* this request allows outputs in worker memory */
static void *w_big_out; /* the current item's large output, if any */
static size_t w_big_len;
typedef struct big {
    void *p;
    size_t len;
} big;
static big *w_bigs; /* large outputs of the last response, freed at the next */
static size_t w_nbigs, w_capbigs;

/* Large buffers are anonymous mappings; up to two (an input and an output)
 * are kept for the next large task, so a stream of large payloads does not
 * pay page faults and zeroing every time. Lengths are rounded to 2 MiB (the
 * mapping's real length); big_free() takes the rounded length. */
#define SPARE_MAX (256u << 20)
static big w_spare[2];

static size_t big_round(size_t len)
{
    return align_up(len, 2u << 20);
}

static void *big_alloc(size_t len)
{
    if (len > SIZE_MAX / 2) return NULL; /* no such buffer; big_round would wrap */
    size_t want = big_round(len);
    for (int i = 0; i < 2; i++) {
        if (w_spare[i].p && w_spare[i].len >= want) {
            void *p = w_spare[i].p;
            if (w_spare[i].len > want) { /* give the tail back */
                munmap((char *)p + want, w_spare[i].len - want);
            }
            w_spare[i].p = NULL;
            return p;
        }
    }
    void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, want, MADV_HUGEPAGE); /* fewer faults; a hint only */
    return p;
}

static void big_free(void *p, size_t len)
{
    size_t have = big_round(len);
    if (have <= SPARE_MAX) {
        for (int i = 0; i < 2; i++) {
            if (!w_spare[i].p) {
                w_spare[i] = (big){p, have};
                return;
            }
        }
        int small = w_spare[0].len <= w_spare[1].len ? 0 : 1;
        if (w_spare[small].len < have) {
            munmap(w_spare[small].p, w_spare[small].len);
            w_spare[small] = (big){p, have};
            return;
        }
    }
    munmap(p, have);
}

static void w_free_bigs(void)
{
    for (size_t i = 0; i < w_nbigs; i++) big_free(w_bigs[i].p, w_bigs[i].len);
    w_nbigs = 0;
}

/* ---- shared output segments ----
 * A large output is written in a segment: a memfd of the worker, mapped by
 * it, laid out as an output block of the owner ([length][map length]
 * [bytes], internal.h's WEFT__OUT_HDR). The owner maps the segment through
 * /proc/<pid>/fd and its future keeps that mapping as its output: no copy.
 * The worker reuses a segment (its pages already faulted in) once the
 * owner has let go of its output: the owner's weft__out_free() sets the
 * length word to UINT64_MAX, or, when the owner read the output without
 * keeping the mapping, it sets seg_rel[i] to the output's generation. By
 * the time the worker needs a segment again the owner has handled every
 * earlier output (adopted or released): it reads them before the next
 * request, or, within a request, before the worker goes on (w_hand_over).
 * A segment still held by the program is let go of by the worker (the
 * program's mapping keeps the bytes). Never used under a memory limit:
 * RLIMIT_DATA does not count shared mappings. */
#define NSEG 2
#define SEG_HDR 16 /* = WEFT__OUT_HDR */
typedef struct seg {
    int fd;           /* -1: none */
    unsigned char *p; /* the worker's mapping */
    size_t cap;       /* its length (= the file's) */
    uint32_t gen;     /* the generation of the output handed over in it, 0: none */
    uint64_t id;      /* which memfd (w_seg_ids): the owner's key for its mapping */
} seg;
static seg w_segs[NSEG] = {{-1, NULL, 0, 0, 0}, {-1, NULL, 0, 0, 0}};
static uint32_t w_seg_gen;
static uint64_t w_seg_ids;
static bool w_shm_out;     /* this request allows outputs in segments */
static int w_cur_seg = -1; /* the segment of the running item's output */

static inline uint64_t *seg_word(const seg *s)
{
    return (uint64_t *)(void *)s->p;
}

static bool seg_free(int i)
{
    const seg *s = &w_segs[i];
    if (s->fd < 0) return true;
    if (__atomic_load_n(seg_word(s), __ATOMIC_ACQUIRE) == UINT64_MAX) return true;
    return s->gen && __atomic_load_n(&ctl_of(&W)->seg_rel[i], __ATOMIC_ACQUIRE) == s->gen;
}

static void seg_drop(int i)
{
    seg *s = &w_segs[i];
    if (s->fd >= 0) {
        munmap(s->p, s->cap);
        close(s->fd);
    }
    *s = (seg){-1, NULL, 0, 0, 0};
}

/* A segment for an output of `len` bytes, marked in use: its index, or -1. */
static int seg_take(size_t len)
{
    if (len > SIZE_MAX / 2) return -1;
    size_t need = align_up(SEG_HDR + len, 2u << 20);
    int pick = -1;
    for (int i = 0; i < NSEG && pick < 0; i++)
        if (w_segs[i].fd >= 0 && w_segs[i].cap >= need && seg_free(i)) pick = i;
    if (pick < 0) {
        for (int i = 0; i < NSEG && pick < 0; i++)
            if (w_segs[i].fd < 0) pick = i;
        for (int i = 0; i < NSEG && pick < 0; i++)
            if (seg_free(i)) pick = i;
        if (pick < 0) pick = 0; /* both held by the program: let go of one */
        seg_drop(pick);
        int fd = memfd_create("weft-output", MFD_CLOEXEC);
        if (fd < 0) return -1;
        void *m = MAP_FAILED;
        if (fchmod(fd, 0600) == 0 && ftruncate(fd, (off_t)need) == 0)
            m = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return -1;
        }
        w_segs[pick] = (seg){fd, m, need, 0, ++w_seg_ids};
    }
    seg *s = &w_segs[pick];
    s->gen = 0;
    /* in use (the second word is the owner's: it maps the segment, and may
     * keep the mapping between outputs, WEFT__OUT_KEPT) */
    __atomic_store_n(seg_word(s), (uint64_t)len, __ATOMIC_RELAXED);
    return pick;
}

/* The running item's segment goes back unused (no output handed in it). */
static void seg_untake(void)
{
    if (w_cur_seg < 0) return;
    __atomic_store_n(seg_word(&w_segs[w_cur_seg]), UINT64_MAX, __ATOMIC_RELAXED);
    w_cur_seg = -1;
}

/* Segments too large to keep are let go of once the owner has handled
 * their outputs (at the next request). */
static void seg_trim(void)
{
    for (int i = 0; i < NSEG; i++)
        if (w_segs[i].fd >= 0 && w_segs[i].gen && w_segs[i].cap > SPARE_MAX) seg_drop(i);
}

/* ---- the input segment ----
 * A memfd of the worker that the owner writes large inputs into (see the
 * top of the file). Made at the owner's request (OP_INSEG), pre-faulted,
 * kept until the next OP_INSEG (a larger one) or the end of the process. */
#define INSEG_MAX SPARE_MAX
typedef struct inseg {
    int fd; /* -1: none */
    unsigned char *p;
    size_t cap;
    uint64_t id;
} inseg;
static inseg w_in = {-1, NULL, 0, 0};

/* Touches one byte of every page of [p, p + len): the page tables are
 * filled (MAP_POPULATE) and, on a VM that shadows them, the hypervisor's
 * too, once, not during the first copy or task. */
static void touch_pages(unsigned char *p, size_t len, bool write)
{
    volatile unsigned char *v = p;
    unsigned sum = 0;
    for (size_t o = 0; o < len; o += 4096) {
        if (write)
            v[o] = 0;
        else
            sum += v[o];
    }
    (void)sum;
}

static void w_in_drop(void)
{
    if (w_in.fd >= 0) {
        munmap(w_in.p, w_in.cap);
        close(w_in.fd);
    }
    w_in = (inseg){-1, NULL, 0, 0};
}

/* Replaces the input segment with one of `cap` bytes: 0 or -errno. */
static int w_in_make(size_t cap)
{
    w_in_drop();
    if (cap == 0 || cap > INSEG_MAX) return -EINVAL;
    int fd = memfd_create("weft-input", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    void *m = MAP_FAILED;
    int e = 0;
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)cap) != 0)
        e = errno;
    else if ((m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)) ==
             MAP_FAILED)
        e = errno;
    if (m == MAP_FAILED) {
        close(fd);
        return -(e ? e : ENOMEM);
    }
    touch_pages(m, cap, false);
    w_in = (inseg){fd, m, cap, ++w_seg_ids};
    return 0;
}

/* The crash note (backends/remote/crash.c): the owner reads the signal and
 * errno from the control block (ENOMEM: an allocation failed). */
static void crash_note(int sig, int err)
{
    weft__wctl *c = ctl_of(&W);
    if (c) {
        c->crash_errno = err;
        __atomic_store_n(&c->crash_sig, sig, __ATOMIC_SEQ_CST);
    }
}

static void *w_alloc_out(weft_ctx *ctx, size_t len)
{
    (void)ctx;
    if (w_big_out) { /* a second call of weft_ctx_output (or a retry) */
        big_free(w_big_out, w_big_len);
        w_big_out = NULL;
    }
    seg_untake();
    if (w_shm_out && len >= BIG_PAYLOAD) {
        int i = seg_take(len);
        if (i >= 0) {
            w_cur_seg = i;
            w_cursor = w_item_start;
            return w_segs[i].p + SEG_HDR;
        } /* else in a private buffer */
    }
    if (w_vm && len >= BIG_PAYLOAD) {
        w_big_out = big_alloc(len);
        w_big_len = len;
        if (w_big_out) w_cursor = w_item_start;
        return w_big_out;
    }
    size_t need = w_item_start + len;
    if (need < w_item_start || arena_grow(&W, need) != 0) return NULL;
    w_cursor = need;
    return W.base + w_item_start;
}

/* Copies `len` bytes to the arena at the cursor; returns its offset. */
static uint64_t w_put(const void *p, size_t len)
{
    size_t off = align_up(w_cursor, 16);
    if (arena_grow(&W, off + len) != 0) return 0;
    memcpy(W.base + off, p, len);
    w_cursor = off + len;
    return off;
}

static void w_message(resp_rec *r, const char *msg)
{
    r->msg_off = r->msg_len = 0;
    if (!msg) return;
    size_t n = strlen(msg);
    uint64_t off = w_put(msg, n + 1);
    if (off) {
        r->msg_off = off;
        r->msg_len = n;
    }
}

static bool fn_loaded(weft_task_fn fn)
{
    if (fn == w_checked_fn) return true;
    Dl_info di;
    union {
        weft_task_fn f;
        void *p;
    } u = {.f = fn};
    if (!dladdr(u.p, &di) || !di.dli_fname) return false;
    w_checked_fn = fn;
    return true;
}

/* Asks the owner to write [off, off + len) of the running item's input
 * into buf + off (it does when it sees xfer_req move); returns the
 * request's number for w_xfer_wait. */
static uint32_t w_xfer_ask(weft__wctl *c, void *buf, size_t off, size_t len)
{
    __atomic_store_n(&c->xfer_addr, (uint64_t)(uintptr_t)buf, __ATOMIC_RELAXED);
    __atomic_store_n(&c->xfer_off, (uint64_t)off, __ATOMIC_RELAXED);
    __atomic_store_n(&c->xfer_len, (uint64_t)len, __ATOMIC_RELAXED);
    uint32_t want = __atomic_load_n(&c->xfer_req, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&c->xfer_req, want, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&c->resp_seq, 1, __ATOMIC_SEQ_CST);
    weft__futex_wake_ex(&c->resp_seq, 1, true);
    return want;
}

/* Waits until the owner has written; 0 or -errno. */
static int w_xfer_wait(weft__wctl *c, uint32_t want)
{
    while (__atomic_load_n(&c->xfer_ack, __ATOMIC_ACQUIRE) != want)
        weft__futex_wait_ex(&c->xfer_ack, want - 1, -1, true);
    return c->xfer_status;
}

/* Whether this worker can read the owner's memory: 0 unknown, 1, -1. */
static int w_self_read;

/* Reads up to len bytes at the owner's address src into dst; how many. */
static size_t w_read_owner(weft__wctl *c, void *dst, uint64_t src, size_t len)
{
    size_t done = 0;
    while (done < len) {
        struct iovec l = {(char *)dst + done, len - done};
        struct iovec rm = {(void *)(uintptr_t)(src + done), len - done};
        ssize_t n = process_vm_readv((pid_t)c->owner_pid, &l, 1, &rm, 1, 0);
        if (n <= 0) break;
        done += (size_t)n;
    }
    return done;
}

/* The owner's share of a large input, in 1/1024 (w_fetch_input): set so
 * that both parts take as long, from the rates measured last time (the
 * owner's process_vm_writev and this process's process_vm_readv need not
 * copy as fast: e.g. pinning the owner's small pages against this
 * process's huge ones). */
static uint32_t w_split = 768; /* this VM: readv of 4 KiB pages about 3x slower */
static unsigned w_fetches;     /* large inputs fetched (the first ones run cold) */

/* Brings a large input into buf: the owner writes its first part into
 * this process while this process reads the rest out of the owner's
 * memory, both at once, so two cores copy (if this process may not read
 * the owner's memory, the owner writes it all). 0 or -errno. */
static int w_fetch_input(weft__wctl *c, const req_item *it, unsigned char *buf)
{
    size_t len = it->in_len;
    size_t half = len;
    if (w_self_read >= 0 && it->in_addr && c->owner_pid > 0)
        half = (len / 1024 * w_split) & ~(size_t)4095;
    uint64_t t0 = weft__now_ns();
    uint32_t want = w_xfer_ask(c, buf, 0, half);
    size_t got = half;
    if (half < len) {
        size_t n = w_read_owner(c, buf + half, it->in_addr + half, len - half);
        w_self_read = n == len - half ? 1 : -1;
        got += n;
        uint64_t own = weft__now_ns() - t0;
        int st = w_xfer_wait(c, want);
        uint64_t theirs = __atomic_load_n(&c->xfer_ns, __ATOMIC_RELAXED);
        /* learn from warm copies only: the first ones fault their buffers in */
        if (!st && n == len - half && half && own && theirs && ++w_fetches > 2) {
            double r_them = (double)half / (double)theirs, r_me = (double)n / (double)own;
            double s = 1024.0 * r_them / (r_them + r_me);
            s = 0.5 * s + 0.5 * (double)w_split;
            w_split = s < 64 ? 64 : s > 960 ? 960 : (uint32_t)s;
        }
        if (st) return st;
        if (got < len) return w_xfer_wait(c, w_xfer_ask(c, buf, got, len - got));
        return 0;
    }
    return w_xfer_wait(c, want);
}

/* Runs one item; fills *r. */
static void w_run_item(const req_hdr *h, const req_item *it, resp_rec *r)
{
    weft__wctl *c = ctl_of(&W);
    weft_ctx ctx;
    weft__ctx_init(&ctx, NULL, h->worker_id, w_state, w_state_len);
    weft__ctx_item(&ctx, it->index, it->seed, NULL, 0);
    ctx.alloc_out = w_alloc_out; /* outputs straight into the arena */
    w_item_start = align_up(w_cursor, ALIGN);
    w_cursor = w_item_start;
    r->t0 = weft__now_ns();
    __atomic_store_n(&c->item_t0, r->t0 | 1, __ATOMIC_RELEASE); /* never 0: started */
    int rc;
    const void *in = W.base + it->in_off;
    void *in_big = NULL;
    if (it->flags & IF_SEG_IN) {
        if (w_in.fd < 0 || h->inseg_id != w_in.id || it->in_off > w_in.cap ||
            it->in_len > w_in.cap - it->in_off) {
            rc = weft_ctx_fail(&ctx, WEFT_ECRASHED,
                               "cannot pass the input to the worker: its input segment is not "
                               "the one the program wrote");
            goto done;
        }
        in = w_in.p + it->in_off;
    } else if (it->flags & IF_REMOTE_IN) {
        in_big = big_alloc(it->in_len);
        if (!in_big) {
            rc = weft_ctx_fail(&ctx, c->memory_limit ? WEFT_EMEMLIMIT : WEFT_ENOMEM,
                               "the worker cannot allocate %zu bytes for the task's input",
                               (size_t)it->in_len);
            goto done;
        }
        int st = w_fetch_input(c, it, in_big);
        if (st) {
            rc = weft_ctx_fail(&ctx, WEFT_ECRASHED, "cannot pass the input to the worker: %s",
                               strerror(-st));
            goto done;
        }
        in = in_big;
    }
    if ((h->flags & RF_PHASES) && !c->ph_in) c->ph_in = weft__now_ns();
    if (!fn_loaded(it->fn)) {
        rc = weft_ctx_fail(&ctx, WEFT_ENOTREG,
                           "the task function is not loaded in the worker process (a library "
                           "loaded after weft_init?)");
    } else {
        errno = 0;
        rc = weft__ctx_run(&ctx, it->fn, in, it->in_len, it->retries);
        if (rc && c->memory_limit && (rc == WEFT_ENOMEM || errno == ENOMEM)) {
            char *m = ctx.msg;
            ctx.msg = NULL;
            rc = weft_ctx_fail(&ctx, WEFT_EMEMLIMIT,
                               "the task went over the worker memory limit of %zu bytes (an "
                               "allocation failed)%s%s",
                               (size_t)c->memory_limit, m ? ": " : "", m ? m : "");
            free(m);
        }
    }
done:
    if (in_big) big_free(in_big, it->in_len);
    r->t1 = weft__now_ns();
    r->err = rc;
    r->flags = 0;
    if (rc == 0 && w_cur_seg >= 0 && ctx.out == w_segs[w_cur_seg].p + SEG_HDR) {
        seg *sg = &w_segs[w_cur_seg];
        if (++w_seg_gen == 0) w_seg_gen = 1;
        sg->gen = w_seg_gen;
        __atomic_store_n(seg_word(sg), (uint64_t)ctx.out_len, __ATOMIC_RELEASE);
        r->flags = OF_SHARED_OUT; /* the owner maps it, or reads it from out_off */
        r->out_off = (uint64_t)(uintptr_t)ctx.out;
        r->out_len = ctx.out_len;
        r->seg_fd = sg->fd;
        r->seg = (uint32_t)w_cur_seg;
        r->seg_gen = sg->gen;
        r->seg_id = sg->id;
        w_cur_seg = -1;
        w_cursor = w_item_start;
    } else if (rc == 0 && w_big_out && ctx.out == w_big_out) {
        r->flags = OF_REMOTE_OUT; /* the owner reads it from here */
        r->out_off = (uint64_t)(uintptr_t)w_big_out;
        r->out_len = ctx.out_len;
        if (!weft__grow(&w_bigs, &w_capbigs, w_nbigs + 1, sizeof *w_bigs, 8))
            w_bigs[w_nbigs++] = (big){w_big_out, w_big_len};
        w_cursor = w_item_start;
    } else if (rc == 0) {
        r->out_off = ctx.out_len ? (uint64_t)((unsigned char *)ctx.out - W.base) : 0;
        r->out_len = ctx.out_len;
        w_cursor = w_item_start + ctx.out_len;
    } else {
        r->out_off = r->out_len = 0;
        w_cursor = w_item_start;
    }
    if (w_big_out && !(r->flags & OF_REMOTE_OUT)) big_free(w_big_out, w_big_len);
    w_big_out = NULL;
    seg_untake(); /* a segment the output did not end in */
    w_message(r, ctx.msg);
    free(ctx.msg);
}

static void w_respond(uint32_t seq)
{
    weft__wctl *c = ctl_of(&W);
    __atomic_store_n(&c->resp_done, seq, __ATOMIC_RELEASE);
    __atomic_fetch_add(&c->resp_seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->owner_sleeping, __ATOMIC_SEQ_CST))
        weft__futex_wake_ex(&c->resp_seq, 1, true);
}

/* Item done_items - 1 left its output in this process's memory and more
 * items follow, any of which may kill the process (and the output with
 * it): the owner reads the finished items first; wait until it has. */
static void w_hand_over(weft__wctl *c)
{
    uint32_t want = __atomic_load_n(&c->pull_req, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&c->pull_req, want, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&c->resp_seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->owner_sleeping, __ATOMIC_SEQ_CST))
        weft__futex_wake_ex(&c->resp_seq, 1, true);
    while (__atomic_load_n(&c->pull_ack, __ATOMIC_ACQUIRE) != want)
        weft__futex_wait_ex(&c->pull_ack, want - 1, -1, true);
}

void weft__worker_main(int memfd)
{
    if (arena_open(&W, memfd) != 0) _exit(112);
    if (arena_map(&W, WEFT__ARENA_CTRL) != 0) _exit(113);
    weft__wctl *c = ctl_of(&W);
    if (arena_map(&W, __atomic_load_n(&c->arena_size, __ATOMIC_ACQUIRE)) != 0) _exit(114);
    weft__crash_handlers_install(crash_note);
    c->pid = getpid();
    c->probe_addr = (uint64_t)(uintptr_t)&w_probe;
    uint32_t seen = 0; /* the owner reset the block before the spawn; request 1 may be there */
    __atomic_store_n(&c->ready, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        /* wait for the next request: spin while that pays (os.h), then sleep */
        weft__spin_run run;
        weft__spin_begin(&run);
        bool parked = false;
        while (__atomic_load_n(&c->req_seq, __ATOMIC_ACQUIRE) == seen) {
            if (!parked && weft__spin_wait(&w_spin, &run)) continue;
            if (!parked) weft__spin_miss(&w_spin);
            parked = true;
            __atomic_store_n(&c->worker_sleeping, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&c->req_seq, __ATOMIC_SEQ_CST) == seen)
                weft__futex_wait_ex(&c->req_seq, seen, -1, true);
            __atomic_store_n(&c->worker_sleeping, 0, __ATOMIC_RELAXED);
        }
        if (!parked) weft__spin_hit(&w_spin, &run);
        seen = __atomic_load_n(&c->req_seq, __ATOMIC_ACQUIRE);
        if (arena_map(&W, __atomic_load_n(&c->arena_size, __ATOMIC_ACQUIRE)) != 0) _exit(115);
        const req_hdr *h = (const req_hdr *)(W.base + WEFT__ARENA_CTRL);
        if (h->flags & RF_PHASES) {
            c->ph_seen = weft__now_ns();
            c->ph_in = 0;
        }
        const req_item *items = (const req_item *)(h + 1);
        resp_rec *recs = (resp_rec *)(W.base + h->resp_off);
        w_cursor = h->data_off;
        w_free_bigs(); /* the owner has read the last response */
        seg_trim();
        w_vm = (h->flags & RF_VM) != 0;
        w_shm_out = (h->flags & RF_SHM_OUT) != 0;
        if (h->op == OP_INSEG) {
            memset(&recs[0], 0, sizeof recs[0]);
            int st = w_in_make((size_t)items[0].index);
            if (st) {
                recs[0].err = WEFT_ENOMEM;
                w_message(&recs[0], strerror(-st));
            } else {
                recs[0].seg_fd = w_in.fd;
                recs[0].seg_id = w_in.id;
                recs[0].out_len = w_in.cap;
            }
            __atomic_store_n(&c->done_items, 1, __ATOMIC_RELEASE);
            w_respond(h->seq);
            continue;
        }
        if (h->op == OP_INIT || h->op == OP_QUIT) {
            weft_ctx ctx;
            weft__ctx_init(&ctx, NULL, h->worker_id, w_state, w_state_len);
            weft__ctx_item(&ctx, (uint64_t)h->worker_id, items[0].seed, NULL, 0);
            int rc = 0;
            if (items[0].fn) {
                const void *in =
                    h->op == OP_INIT ? (const void *)(W.base + items[0].in_off) : w_state;
                size_t len = h->op == OP_INIT ? items[0].in_len : w_state_len;
                rc = weft__ctx_run(&ctx, items[0].fn, in, len, 0);
            }
            recs[0].err = rc;
            recs[0].out_off = recs[0].out_len = 0;
            w_message(&recs[0], ctx.msg);
            if (h->op == OP_INIT && rc == 0 && ctx.out_len) {
                w_state = malloc(ctx.out_len);
                if (w_state) memcpy(w_state, ctx.out, ctx.out_len);
                w_state_len = w_state ? ctx.out_len : 0;
            }
            weft__ctx_clear(&ctx);
            __atomic_store_n(&c->done_items, 1, __ATOMIC_RELEASE);
            w_respond(h->seq);
            if (h->op == OP_QUIT) _exit(0);
            continue;
        }
        bool failed = false;
        for (uint32_t k = 0; k < h->n; k++) {
            /* item k not started yet (item_t0 0) until w_run_item stamps it */
            __atomic_store_n(&c->item_t0, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&c->cur_item, k, __ATOMIC_RELEASE);
            resp_rec *r = &recs[k];
            if (__atomic_load_n(&c->stop, __ATOMIC_RELAXED) ||
                (failed && (h->flags & RF_STOP_ON_ERROR))) {
                memset(r, 0, sizeof *r);
                r->err = WEFT_ECANCELLED;
            } else {
                w_run_item(h, &items[k], r);
                if (r->err) failed = true;
            }
            __atomic_store_n(&c->done_items, k + 1, __ATOMIC_RELEASE);
            if ((r->flags & (OF_REMOTE_OUT | OF_SHARED_OUT)) && k + 1 < h->n) w_hand_over(c);
        }
        if (h->flags & RF_PHASES) c->ph_resp = weft__now_ns();
        w_respond(h->seq);
    }
}

uint64_t weft__worker_item_t0(void)
{
    return W.base ? __atomic_load_n(&ctl_of(&W)->item_t0, __ATOMIC_ACQUIRE) : 0;
}

/* ---- the proxy ------------------------------------------------------------------------ */

/* Seconds to nanoseconds, saturating: WEFT_FOREVER, 1e30 or anything past
 * ~570 years is UINT64_MAX, i.e. no limit (never a wrapped small value). */
static uint64_t secs_to_ns(double s)
{
    if (!(s > 0)) return 0;
    if (s >= 1.8e10) return UINT64_MAX;
    return (uint64_t)(s * 1e9);
}

/* Tests: the proxy thread stalls this long once per request, right before
 * it checks the running item's deadline (a thread descheduled there). */
static _Atomic uint64_t test_stall_ns;

void weft__procs_test_stall(double seconds)
{
    atomic_store_explicit(&test_stall_ns, secs_to_ns(seconds), memory_order_relaxed);
}

/* Whether process_vm_readv/writev work between the program and its workers
 * (seccomp or security modules may refuse them): 0 unknown, 1 yes, -1 no.
 * Without them large payloads go through the arena. */
static _Atomic int vm_state;
/* Whether the program can map its workers' output segments (through
 * /proc/<pid>/fd): 0 unknown, 1 yes, -1 no (outputs are then copied). */
static _Atomic int shm_out_state;

static int vm_write(pid_t pid, const void *src, size_t len, uint64_t addr)
{
    size_t done = 0;
    while (done < len) {
        struct iovec l = {(char *)src + done, len - done};
        struct iovec rm = {(void *)(uintptr_t)(addr + done), len - done};
        ssize_t n = process_vm_writev(pid, &l, 1, &rm, 1, 0);
        if (n <= 0) return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* ---- the copy of large inputs into input segments ----
 * A second copier: one thread of the program, started at the first large
 * input that takes it, parked on a futex between copies, and stopped and
 * joined when the last proxy goes (copier_hold/copier_release count them:
 * no thread outlives the executors that used it). copy_in() hands it the
 * second half of a copy and does the first half itself: on this kind of
 * machine two cores copy ~1.3x as fast as one. One copy at a time uses
 * it; a lane that finds it busy copies alone. */
static struct copier {
    pthread_mutex_t mu; /* held by the lane whose copy it runs */
    int state;          /* 0 not started, 1 running, -1 could not start */
    uint32_t seq;       /* lane: bumped with a job (futex) */
    uint32_t done;      /* copier: = seq when the job is done (futex) */
    bool stop;          /* with a bump of seq: the thread returns */
    void *dst;
    const void *src;
    size_t len;
    pthread_t thread;
} cp = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, false, NULL, NULL, 0, 0};

static pthread_mutex_t cp_users_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t cp_users; /* live proxies */

static void copier_hold(void)
{
    pthread_mutex_lock(&cp_users_mu);
    cp_users++;
    pthread_mutex_unlock(&cp_users_mu);
}

/* The last proxy gone: no copy can be in flight (copies run on a proxy's
 * lane), so the thread is told to stop and joined; a later proxy starts
 * a new one. */
static void copier_release(void)
{
    pthread_mutex_lock(&cp_users_mu);
    if (--cp_users == 0) {
        pthread_mutex_lock(&cp.mu);
        if (cp.state > 0) {
            __atomic_store_n(&cp.stop, true, __ATOMIC_RELAXED);
            __atomic_add_fetch(&cp.seq, 1, __ATOMIC_RELEASE);
            weft__futex_wake_ex(&cp.seq, 1, false);
            pthread_join(cp.thread, NULL);
            cp.stop = false;
        }
        cp.state = 0; /* -1 (could not start) is tried again next time */
        pthread_mutex_unlock(&cp.mu);
    }
    pthread_mutex_unlock(&cp_users_mu);
}

/* arg: cp.seq when the thread was made (under cp.mu, which every change
 * of seq holds): a thread started anew after a stop must not take the
 * stop's bump of seq for a job. */
static void *copier_main(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    for (;;) {
        while (__atomic_load_n(&cp.seq, __ATOMIC_ACQUIRE) == seen)
            weft__futex_wait_ex(&cp.seq, seen, -1, false);
        seen = __atomic_load_n(&cp.seq, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&cp.stop, __ATOMIC_RELAXED)) return NULL;
        memcpy(cp.dst, cp.src, cp.len);
        __atomic_store_n(&cp.done, seen, __ATOMIC_RELEASE);
        weft__futex_wake_ex(&cp.done, 1, false);
    }
    return NULL;
}

/* Copies len bytes, with `copiers` threads (1 or 2). */
static void copy_in(void *dst, const void *src, size_t len, int copiers)
{
    if (copiers < 2 || len < BIG_PAYLOAD || pthread_mutex_trylock(&cp.mu) != 0) {
        memcpy(dst, src, len);
        return;
    }
    if (cp.state == 0) {
        pthread_t t;
        sigset_t all, old; /* the copier takes no signal meant for the program */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        void *seq0 = (void *)(uintptr_t)__atomic_load_n(&cp.seq, __ATOMIC_RELAXED);
        cp.state = pthread_create(&t, NULL, copier_main, seq0) == 0 ? 1 : -1;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (cp.state > 0) cp.thread = t;
    }
    if (cp.state < 0) {
        pthread_mutex_unlock(&cp.mu);
        memcpy(dst, src, len);
        return;
    }
    size_t half = (len / 2) & ~(size_t)4095;
    cp.dst = (char *)dst + half;
    cp.src = (const char *)src + half;
    cp.len = len - half;
    uint32_t s = __atomic_load_n(&cp.seq, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&cp.seq, s, __ATOMIC_RELEASE);
    weft__futex_wake_ex(&cp.seq, 1, false);
    memcpy(dst, src, half);
    while (__atomic_load_n(&cp.done, __ATOMIC_ACQUIRE) != s)
        weft__futex_wait_ex(&cp.done, s - 1, -1, false);
    pthread_mutex_unlock(&cp.mu);
}

/* Whether the program can map its workers' input segments (through
 * /proc/<pid>/fd): 0 unknown, 1 yes, -1 no (large inputs then go with
 * process_vm_writev/readv). */
static _Atomic int inseg_state;
/* Tests: copies into an input segment left to kill their worker. */
static _Atomic unsigned test_kill_in_fill;

void weft__procs_test_kill_in_fill(unsigned count)
{
    atomic_store_explicit(&test_kill_in_fill, count, memory_order_relaxed);
}

struct weft__proxy {
    weft__proxy_opts o;
    arena a;
    int memfd;
    pid_t pid;
    bool alive;
    uint32_t seq; /* last req_seq written */
    uint64_t items_run;
    /* what runs now, for the watchdog */
    pthread_mutex_t mu;
    weft_task_fn cur_fn;
    uint64_t cur_index;
    uint64_t cur_t0;
    bool forced;     /* the worker was killed by a forced shutdown */
    weft__spin spin; /* its spin for responses (os.h) */
    /* the program's mappings of the worker's output segments, kept between
     * outputs (adopt_segment) */
    struct omap {
        unsigned char *base; /* NULL: none */
        size_t len;
        pid_t pid;
        uint64_t id; /* the worker's seg_id */
        uint32_t tag;
    } om[NSEG];
    /* the program's mapping of the worker's input segment (base NULL: none;
     * id: the worker's w_in.id) */
    inseg in;
    /* WEFT_PROCESSES_PHASES: when the lane began writing the last large
     * request, had the input segment ready, had sent it (monotonic ns) */
    uint64_t ph[3];
    bool ph_on; /* the request in flight is stamped */
};

static void omap_drop_all(weft__proxy *p);

static void inseg_unmap(weft__proxy *p)
{
    if (p->in.p) munmap(p->in.p, p->in.cap);
    p->in = (inseg){-1, NULL, 0, 0};
}

pid_t weft__proxy_pid(const weft__proxy *p)
{
    return p->alive ? p->pid : 0;
}

static weft__wctl *pctl(weft__proxy *p)
{
    return ctl_of(&p->a);
}

/* Tests once whether this process can read its workers' memory. */
void weft__procs_set_vm(int state)
{
    atomic_store_explicit(&vm_state, state, memory_order_relaxed);
}

static bool vm_usable(weft__proxy *p)
{
    int st = atomic_load_explicit(&vm_state, memory_order_relaxed);
    if (!st && getenv("WEFT_NO_VM")) st = -1; /* force the arena path (tests, debugging) */
    if (st) return st > 0;
    weft__wctl *c = pctl(p);
    uint64_t t0 = weft__now_ns();
    while (!__atomic_load_n(&c->ready, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) {
        if (weft__now_ns() - t0 > 2000000000ull) return false; /* slow start: ask again later */
        weft__yield();
    }
    uint64_t v = 0;
    struct iovec l = {&v, sizeof v};
    struct iovec r = {(void *)(uintptr_t)c->probe_addr, sizeof v};
    st =
        process_vm_readv(p->pid, &l, 1, &r, 1, 0) == (ssize_t)sizeof v && v == 0x77656674766d6f6bull
            ? 1
            : -1;
    atomic_store_explicit(&vm_state, st, memory_order_relaxed);
    return st > 0;
}

/* A forced shutdown of the executor is under way (see weft__proxy_opts). */
static bool force_stop(const weft__proxy *p)
{
    return p->o.force && atomic_load_explicit(p->o.force, memory_order_relaxed) >= 2;
}

/* Names how a worker died, from its wait status and crash record. */
static int death_cause(weft__proxy *p, char *buf, size_t len)
{
    weft__wctl *c = pctl(p);
    if (p->forced) {
        snprintf(buf, len,
                 "stopped by a forced shutdown of the executor: its worker process (pid %d) "
                 "was killed",
                 (int)p->pid);
        return WEFT_ECANCELLED;
    }
    int st = c->status;
    int csig = __atomic_load_n(&c->crash_sig, __ATOMIC_ACQUIRE);
    if (p->o.memory_limit && csig && c->crash_errno == ENOMEM) {
        snprintf(buf, len,
                 "the worker process (pid %d) went over its memory limit of %zu bytes: an "
                 "allocation failed and it then died of signal %d (%s)",
                 (int)p->pid, p->o.memory_limit, csig, strsignal(csig));
        return WEFT_EMEMLIMIT;
    }
    if (WIFSIGNALED(st)) {
        int s = WTERMSIG(st);
        if (s == SIGKILL && csig) s = csig; /* it was dying of its crash when a kill landed */
        snprintf(buf, len, "the worker process (pid %d) died of signal %d (%s%s)", (int)p->pid, s,
                 strsignal(s),
                 s == SIGKILL ? "; killed from outside, e.g. by kill -9 or the OOM killer" : "");
    } else if (WIFEXITED(st)) {
        snprintf(buf, len, "the worker process (pid %d) exited with status %d during the task",
                 (int)p->pid, WEXITSTATUS(st));
    } else {
        snprintf(buf, len, "the worker process (pid %d) died (wait status 0x%x)", (int)p->pid,
                 (unsigned)st);
    }
    return WEFT_ECRASHED;
}

/* Waits until the server has reported the worker dead (after a kill). */
static void wait_dead(weft__proxy *p)
{
    weft__wctl *c = pctl(p);
    while (!__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) {
        uint32_t s = __atomic_load_n(&c->resp_seq, __ATOMIC_ACQUIRE);
        __atomic_store_n(&c->owner_sleeping, 1, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&c->dead, __ATOMIC_SEQ_CST))
            weft__futex_wait_ex(&c->resp_seq, s, SLICE_NS, true);
        __atomic_store_n(&c->owner_sleeping, 0, __ATOMIC_RELAXED);
        if (!weft__fs_alive()) break; /* the server itself is gone */
    }
    p->alive = false;
}

/* Starts a fresh worker on the proxy's arena; runs the initializer. */
static int spawn(weft__proxy *p)
{
    weft__wctl *c = pctl(p);
    omap_drop_all(p); /* the old worker's segments: their held outputs stay mapped */
    inseg_unmap(p);   /* and its input segment: the new worker makes its own */
    size_t size = c->arena_size;
    memset(c, 0, sizeof *c);
    c->arena_size = size;
    c->memory_limit = p->o.memory_limit;
    c->owner_pid = (int32_t)getpid();
    __atomic_store_n(&p->seq, 0, __ATOMIC_RELAXED); /* read by pollers (direct path) */
    pid_t pid;
    int rc = weft__fs_spawn(p->memfd, p->o.memory_limit, &pid);
    if (rc) return rc;
    p->pid = pid;
    p->alive = true;
    p->items_run = 0;
    return 0;
}

static int inseg_ensure(weft__proxy *p, size_t need);

/* Whether an input of `len` bytes goes in the input segment, after the
 * ones placed so far (*so: the bytes they take; advanced). The same calls
 * in the same order give the same placements. */
static bool to_seg(const weft__proxy *p, size_t len, size_t *so)
{
    if (len < BIG_PAYLOAD || !p->in.p) return false;
    size_t at = align_up(*so, 4096);
    if (len > p->in.cap || at > p->in.cap - len) return false;
    *so = at + len;
    return true;
}

/* Copies a large input into the input segment (the test hook kills the
 * worker half-way: the program's mapping stays valid, the copy ends). */
static void fill_seg(weft__proxy *p, unsigned char *dst, const void *src, size_t len)
{
    unsigned k = atomic_load_explicit(&test_kill_in_fill, memory_order_relaxed);
    if (k && atomic_compare_exchange_strong(&test_kill_in_fill, &k, k - 1)) {
        size_t half = len / 2;
        copy_in(dst, src, half, p->o.in_copiers);
        weft__fs_kill(p->pid, SIGKILL);
        wait_dead(p);
        copy_in(dst + half, (const char *)src + half, len - half, p->o.in_copiers);
        return;
    }
    copy_in(dst, src, len, p->o.in_copiers);
}

/* Writes a request for items[0..n) (op RUN) or one INIT/QUIT. The inputs
 * that go through the arena may add up to at most ARENA_IN_MAX bytes: the
 * request then takes fewer items (*taken says how many; NULL: all or
 * -E2BIG). -E2BIG when the first item's input alone does not fit (a
 * length no buffer can have, e.g. a borrowed input with a wrong length).
 * Large inputs that fit go in the input segment (made or grown first, by
 * a request of its own), copied here before the request is sent. */
static int write_request(weft__proxy *p, uint32_t op, const weft__ritem *items, size_t n,
                         uint32_t flags, size_t *taken)
{
    bool vm = false;
    for (size_t i = 0; i < n && !vm; i++) vm = items[i].len >= BIG_PAYLOAD;
    bool big = vm && op == OP_RUN;
    uint64_t ph0 = big && p->o.phases ? weft__now_ns() : 0;
    /* large inputs into the input segment (those that fit in INSEG_MAX, in
     * order): made or grown first, a request of its own */
    bool seg = big && p->o.in_copiers > 0 && !p->o.memory_limit &&
               atomic_load_explicit(&inseg_state, memory_order_relaxed) >= 0;
    if (seg) {
        size_t need = 0;
        for (size_t i = 0; i < n; i++) {
            size_t at = align_up(need, 4096);
            if (items[i].len >= BIG_PAYLOAD && items[i].len <= INSEG_MAX &&
                at <= INSEG_MAX - items[i].len)
                need = at + items[i].len;
        }
        seg = need && inseg_ensure(p, need) == 0;
    }
    uint64_t ph1 = ph0 ? weft__now_ns() : 0;
    vm = op == OP_RUN && (vm || atomic_load_explicit(&vm_state, memory_order_relaxed) > 0) &&
         vm_usable(p);
    /* outputs in shared segments: not under a memory limit (shared
     * mappings are not counted), nor once mapping them failed */
    bool shm_out =
        vm && !p->o.memory_limit && atomic_load_explicit(&shm_out_state, memory_order_relaxed) >= 0;
    size_t total = WEFT__ARENA_CTRL + sizeof(req_hdr) + n * sizeof(req_item);
    size_t so = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg && to_seg(p, items[i].len, &so)) continue;
        if (vm && items[i].len >= BIG_PAYLOAD) continue;
        size_t at = align_up(total, 16);
        if (items[i].len > ARENA_IN_MAX || at + items[i].len > ARENA_IN_MAX) {
            if (i == 0 || !taken) return -E2BIG;
            n = i; /* the rest goes in the next request */
            break;
        }
        total = at + items[i].len;
    }
    if (taken) *taken = n;
    size_t off = WEFT__ARENA_CTRL + sizeof(req_hdr) + n * sizeof(req_item);
    size_t resp_off = align_up(total, ALIGN);
    size_t data_off = resp_off + align_up(n * sizeof(resp_rec), ALIGN);
    int rc = arena_grow(&p->a, data_off + 4096);
    if (rc) return rc;
    req_hdr *h = (req_hdr *)(p->a.base + WEFT__ARENA_CTRL);
    req_item *ri = (req_item *)(h + 1);
    h->op = op;
    h->n = (uint32_t)n;
    h->flags = flags | (vm ? RF_VM : 0) | (shm_out ? RF_SHM_OUT : 0) | (ph0 ? RF_PHASES : 0);
    h->worker_id = p->o.id;
    h->resp_off = resp_off;
    h->data_off = data_off;
    h->inseg_id = seg ? p->in.id : 0;
    size_t cur = off;
    so = 0;
    for (size_t i = 0; i < n; i++) {
        ri[i].fn = items[i].fn;
        ri[i].in_len = items[i].len;
        ri[i].index = items[i].index;
        ri[i].seed = items[i].seed;
        ri[i].retries = items[i].retries;
        ri[i].in_addr = 0;
        if (seg && to_seg(p, items[i].len, &so)) {
            ri[i].flags = IF_SEG_IN; /* copied now, at memory speed */
            ri[i].in_off = so - items[i].len;
            fill_seg(p, p->in.p + ri[i].in_off, items[i].in, items[i].len);
            continue;
        }
        if (vm && items[i].len >= BIG_PAYLOAD) {
            ri[i].flags = IF_REMOTE_IN; /* written straight into the worker when it asks */
            ri[i].in_off = 0;
            ri[i].in_addr = (uint64_t)(uintptr_t)items[i].in;
            continue;
        }
        cur = align_up(cur, 16);
        ri[i].flags = 0;
        ri[i].in_off = cur;
        if (items[i].len) memcpy(p->a.base + cur, items[i].in, items[i].len);
        cur += items[i].len;
    }
    weft__wctl *c = pctl(p);
    __atomic_store_n(&c->done_items, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->cur_item, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->stop, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->item_t0, 0, __ATOMIC_RELAXED); /* no item started: no deadline yet */
    uint32_t sq = p->seq + 1;
    __atomic_store_n(&p->seq, sq, __ATOMIC_RELAXED); /* read by pollers (direct path) */
    h->seq = sq;
    p->ph_on = ph0 != 0;
    if (ph0) {
        p->ph[0] = ph0;
        p->ph[1] = ph1;
        p->ph[2] = weft__now_ns();
    }
    __atomic_store_n(&c->req_seq, sq, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->worker_sleeping, __ATOMIC_SEQ_CST))
        weft__futex_wake_ex(&c->req_seq, 1, true);
    return 0;
}

static inline const resp_rec *rec_at(weft__proxy *p, size_t k)
{
    const req_hdr *h = (const req_hdr *)(p->a.base + WEFT__ARENA_CTRL);
    return (const resp_rec *)(p->a.base + h->resp_off) + k;
}

/* Lets go of the program's kept mapping of a worker's segment: unmapped
 * now, or by the holder of the output in it when it lets go (task.c). */
static void omap_drop(struct omap *om)
{
    if (om->base) weft__out_shared_drop(om->base, om->len);
    om->base = NULL;
}

/* Every kept mapping (a new worker, the proxy destroyed). */
static void omap_drop_all(weft__proxy *p)
{
    for (int i = 0; i < NSEG; i++) omap_drop(&p->om[i]);
}

/* Maps the segment holding a worker's output as an output block the
 * future can keep (no copy): the block, or NULL (then it is copied).
 * A segment of up to SPARE_MAX bytes stays mapped after its output is
 * let go of (WEFT__OUT_KEPT): the worker writes its next output in the
 * same pages, and the program then finds them mapped and faulted in
 * already (no open, mmap and page-table fill of 64 MiB per output). */
static void *adopt_segment(weft__proxy *p, const resp_rec *r)
{
    if (atomic_load_explicit(&shm_out_state, memory_order_relaxed) < 0 || r->seg >= NSEG)
        return NULL;
    struct omap *om = &p->om[r->seg];
    if (om->base && (om->pid != p->pid || om->id != r->seg_id)) omap_drop(om); /* another memfd */
    size_t len = SEG_HDR + r->out_len;
    if (!om->base || om->len < len) {
        omap_drop(om);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)p->pid, (int)r->seg_fd);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            if (errno == EACCES || errno == EPERM)
                atomic_store_explicit(&shm_out_state, -1, memory_order_relaxed);
            return NULL;
        }
        struct stat stt;
        void *m = MAP_FAILED;
        bool keep = false;
        size_t size = len;
        if (fstat(fd, &stt) == 0 && (uint64_t)stt.st_size >= len) {
            /* kept: the whole file (the next output in it may be longer) */
            keep = p->o.keep_segments && (uint64_t)stt.st_size <= SPARE_MAX;
            if (keep) size = (size_t)stt.st_size;
            m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        }
        close(fd);
        if (m == MAP_FAILED) return NULL;
        uint64_t *w = m;
        if (!keep) { /* too large to keep (or WEFT_PROCESSES_KEEP_SEGMENTS=0) */
            if (__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) != r->out_len) { /* not that output */
                munmap(m, size);
                return NULL;
            }
            /* weft__out_free: mark released, unmap */
            __atomic_store_n(&w[1], (uint64_t)size | WEFT__OUT_SHARED, __ATOMIC_RELEASE);
            atomic_store_explicit(&shm_out_state, 1, memory_order_relaxed);
            return (unsigned char *)m + SEG_HDR;
        }
        *om = (struct omap){m, size, p->pid, r->seg_id, om->tag};
        __atomic_store_n(&w[1], 0, __ATOMIC_RELEASE); /* no output held in it yet */
    }
    uint64_t *w = (uint64_t *)(void *)om->base;
    if (__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) != r->out_len) return NULL; /* not that output */
    om->tag = (om->tag + 1) & ((1u << (63 - WEFT__OUT_TAG_SHIFT - 2)) - 1);
    __atomic_store_n(&w[1],
                     (uint64_t)om->len | WEFT__OUT_SHARED | WEFT__OUT_KEPT | WEFT__OUT_HELD |
                         ((uint64_t)om->tag << WEFT__OUT_TAG_SHIFT),
                     __ATOMIC_RELEASE);
    atomic_store_explicit(&shm_out_state, 1, memory_order_relaxed);
    return om->base + SEG_HDR;
}

static void report(weft__proxy *p, size_t k, weft__rdone_fn done, void *arg, size_t i)
{
    const resp_rec *r = rec_at(p, k);
    weft__rres res;
    res.err = r->err;
    res.remote = 0;
    res.pid = p->pid;
    res.take = NULL;
    void *blk = NULL;
    bool adopted = false;
    if (r->flags & OF_SHARED_OUT) {
        blk = r->err == 0 ? adopt_segment(p, r) : NULL;
        adopted = blk != NULL;
        res.out = blk;
        if (blk)
            res.take = &blk; /* the future keeps the mapping */
        else
            res.remote = r->out_off; /* read from the worker's mapping */
    } else if (r->flags & OF_REMOTE_OUT) {
        res.out = NULL;
        res.remote = r->out_off;
    } else {
        res.out = r->out_len ? p->a.base + r->out_off : NULL;
    }
    res.out_len = r->out_len;
    res.msg = r->msg_len ? (const char *)(p->a.base + r->msg_off) : NULL;
    res.t0 = r->t0;
    res.t1 = r->t1;
    done(arg, i, &res);
    if (r->flags & OF_SHARED_OUT) {
        if (blk) /* not kept: released for the worker */
            weft__out_free(blk);
        else if (!adopted && r->seg < NSEG) /* copied: the worker may reuse it (a future
                                              * that kept the mapping releases it itself) */
            __atomic_store_n(&pctl(p)->seg_rel[r->seg], r->seg_gen, __ATOMIC_RELEASE);
    }
}

static void report_err(weft__rdone_fn done, void *arg, size_t i, int err, const char *msg)
{
    weft__rres res = {err, NULL, 0, 0, 0, msg, 0, 0, NULL};
    uint64_t t = weft__now_ns();
    res.t0 = res.t1 = t;
    done(arg, i, &res);
}

/* The request in flight as weft__proxy_run reports it: items [0, reported)
 * of the request (items first..) have been reported. */
typedef struct batch {
    weft__rdone_fn done;
    void *arg;
    size_t first;
    size_t reported;
    bool failed; /* an item reported failed */
} batch;

/* Reports the items of the request in flight that the worker has finished
 * and not reported yet (it waits for this before it goes on, when one left
 * its output in its own memory): false if the arena cannot be mapped. */
static bool report_finished(weft__proxy *p, batch *b)
{
    weft__wctl *c = pctl(p);
    size_t got = __atomic_load_n(&c->done_items, __ATOMIC_ACQUIRE);
    if (arena_map(&p->a, __atomic_load_n(&c->arena_size, __ATOMIC_ACQUIRE)) != 0) return false;
    for (; b->reported < got; b->reported++) {
        if (rec_at(p, b->reported)->err) b->failed = true;
        report(p, b->reported, b->done, b->arg, b->first + b->reported);
    }
    return true;
}

/* Which item of the request in flight runs, and since when (the worker's
 * own clock reading when it started it). False while the worker has not
 * started the item at cur_item (item_t0 is 0 then) or moved on while we
 * read: a queued item has no deadline yet. */
static bool running_item(weft__wctl *c, size_t n, uint32_t *k, uint64_t *t0)
{
    uint32_t a = __atomic_load_n(&c->cur_item, __ATOMIC_ACQUIRE);
    uint64_t t = __atomic_load_n(&c->item_t0, __ATOMIC_ACQUIRE);
    uint32_t b = __atomic_load_n(&c->cur_item, __ATOMIC_ACQUIRE);
    if (a != b || a >= n || t == 0) return false;
    *k = a;
    *t0 = t;
    return true;
}

/* Waits for the response to the request in flight (items[0..n), or NULL
 * for INIT/QUIT). Returns 0 (response complete), 1 (the worker died;
 * done_items tells how far it got), 2 (item *timed ran past its time
 * limit, counted from when the worker started it, and the worker was
 * killed; it may still have finished before the kill landed: done_items
 * says). */
static int wait_response(weft__proxy *p, const weft__ritem *items, size_t n, _Atomic int *stop,
                         uint32_t *timed, batch *b)
{
    weft__wctl *c = pctl(p);
    bool stopped = false, stalled = false;
    /* spin while that pays (os.h); a transfer or hand-over restarts it */
    weft__spin_run run;
    weft__spin_begin(&run);
    bool spinning = true;
    for (;;) {
        uint32_t s = __atomic_load_n(&c->resp_seq, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) return 1;
        if (__atomic_load_n(&c->resp_done, __ATOMIC_ACQUIRE) == p->seq) {
            if (spinning) weft__spin_hit(&p->spin, &run);
            return 0;
        }
        uint32_t xr = __atomic_load_n(&c->xfer_req, __ATOMIC_ACQUIRE);
        if (xr != __atomic_load_n(&c->xfer_ack, __ATOMIC_RELAXED) && items) {
            uint32_t k = __atomic_load_n(&c->cur_item, __ATOMIC_RELAXED);
            uint64_t off = __atomic_load_n(&c->xfer_off, __ATOMIC_RELAXED);
            uint64_t xl = __atomic_load_n(&c->xfer_len, __ATOMIC_RELAXED);
            uint64_t xt0 = weft__now_ns();
            c->xfer_status = k < n && off <= items[k].len && xl <= items[k].len - off
                                 ? vm_write(p->pid, (const char *)items[k].in + off, xl,
                                            __atomic_load_n(&c->xfer_addr, __ATOMIC_RELAXED) + off)
                                 : -EINVAL;
            __atomic_store_n(&c->xfer_ns, weft__now_ns() - xt0, __ATOMIC_RELAXED);
            __atomic_store_n(&c->xfer_ack, xr, __ATOMIC_SEQ_CST);
            weft__futex_wake_ex(&c->xfer_ack, 1, true);
            weft__spin_begin(&run);
            spinning = true;
            continue;
        }
        uint32_t pr = __atomic_load_n(&c->pull_req, __ATOMIC_ACQUIRE);
        if (pr != __atomic_load_n(&c->pull_ack, __ATOMIC_RELAXED)) {
            if (b) report_finished(p, b); /* else, or if it fails: read after the response */
            __atomic_store_n(&c->pull_ack, pr, __ATOMIC_SEQ_CST);
            weft__futex_wake_ex(&c->pull_ack, 1, true);
            weft__spin_begin(&run);
            spinning = true;
            continue;
        }
        if (spinning) {
            /* Every event (the response, a transfer or hand-over asked, the
             * worker's death) bumps resp_seq after its data: while spinning,
             * look at that word alone (its own cache line, which the worker
             * writes once per response), not at the whole block. */
            bool more = weft__spin_wait(&p->spin, &run);
            while (more && __atomic_load_n(&c->resp_seq, __ATOMIC_ACQUIRE) == s)
                more = weft__spin_wait(&p->spin, &run);
            if (more) continue;
            weft__spin_miss(&p->spin);
            spinning = false;
        }
        uint64_t now = weft__now_ns();
        uint64_t stall = atomic_load_explicit(&test_stall_ns, memory_order_relaxed);
        if (stall && items && !stalled) {
            stalled = true;
            struct timespec ts = {(time_t)(stall / 1000000000u), (long)(stall % 1000000000u)};
            nanosleep(&ts, NULL);
            now = weft__now_ns();
        }
        /* the time limit of the running item, from when it started */
        uint32_t k = 0;
        uint64_t it0 = 0;
        bool running = items && running_item(c, n, &k, &it0);
        int64_t slice = SLICE_NS;
        if (running) {
            double to = items[k].timeout;
            if (to == 0) to = p->o.task_timeout;
            uint64_t lim = to > 0 ? secs_to_ns(to) : UINT64_MAX;
            uint64_t ran = now > it0 ? now - it0 : 0;
            if (ran >= lim) {
                /* Look again before killing: the response, the item's end or
                 * the worker's death may have come since the checks above
                 * (this thread may have been descheduled in between). */
                if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE) ||
                    __atomic_load_n(&c->resp_done, __ATOMIC_ACQUIRE) == p->seq ||
                    __atomic_load_n(&c->done_items, __ATOMIC_ACQUIRE) > k) {
                    weft__yield(); /* the worker is between items: let it go on */
                    continue;
                }
                weft__fs_kill(p->pid, SIGKILL);
                wait_dead(p);
                *timed = k;
                return 2;
            }
            if (lim - ran < (uint64_t)slice) slice = (int64_t)(lim - ran);
        }
        if (items && force_stop(p)) { /* forced shutdown: stop the running item too */
            p->forced = true;
            weft__fs_kill(p->pid, SIGKILL);
            wait_dead(p);
            /* it may have answered in the meantime: then nothing was lost */
            return __atomic_load_n(&c->resp_done, __ATOMIC_ACQUIRE) == p->seq ? 0 : 1;
        }
        if (stop && !stopped && atomic_load_explicit(stop, memory_order_relaxed)) {
            __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED); /* the worker cancels the rest */
            stopped = true;
        }
        if (p->o.id >= 0 && running) {
            pthread_mutex_lock(&p->mu);
            p->cur_fn = items[k].fn;
            p->cur_index = items[k].index;
            p->cur_t0 = it0;
            pthread_mutex_unlock(&p->mu);
        }
        __atomic_store_n(&c->owner_sleeping, 1, __ATOMIC_SEQ_CST);
        int wr = 0;
        if (__atomic_load_n(&c->resp_seq, __ATOMIC_SEQ_CST) == s)
            wr = weft__futex_wait_ex(&c->resp_seq, s, slice, true);
        __atomic_store_n(&c->owner_sleeping, 0, __ATOMIC_RELAXED);
        if (wr == WEFT_ETIMEDOUT && !__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE) &&
            !weft__fs_alive()) {
            c->status = SIGKILL; /* server gone: its workers went with it */
            __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE);
        }
    }
}

/* Runs an INIT or QUIT request; returns the code and *msg. */
static int run_control(weft__proxy *p, uint32_t op, weft_task_fn fn, const void *in, size_t len,
                       char **msg)
{
    weft__ritem it = {fn, in, len, (uint64_t)p->o.id, weft__init_seed(p->o.seed, p->o.id), 0, -1};
    int rc = write_request(p, op, &it, 1, 0, NULL);
    if (rc) return weft__err(WEFT_ENOMEM, "cannot grow the worker arena: %s", strerror(-rc));
    uint32_t timed = 0;
    int w = wait_response(p, NULL, 0, NULL, &timed, NULL);
    if (w) {
        char why[256];
        int code = death_cause(p, why, sizeof why);
        p->alive = false;
        if (msg) *msg = strdup(why);
        return op == OP_QUIT ? 0 : code;
    }
    arena_map(&p->a, __atomic_load_n(&pctl(p)->arena_size, __ATOMIC_ACQUIRE));
    const resp_rec *r = rec_at(p, 0);
    if (r->err && msg && r->msg_len) *msg = strdup((const char *)(p->a.base + r->msg_off));
    if (op == OP_QUIT) wait_dead(p);
    return r->err;
}

/* Makes the worker's input segment at least `need` bytes (asking the
 * worker: OP_INSEG) and maps it here, pre-faulted: 0, or -errno (the
 * large inputs then go with process_vm_writev/readv). */
static int inseg_ensure(weft__proxy *p, size_t need)
{
    if (p->in.p && p->in.cap >= need) return 0;
    if (!p->alive || __atomic_load_n(&pctl(p)->dead, __ATOMIC_ACQUIRE)) return -ESRCH;
    inseg_unmap(p);
    weft__ritem it = {0};
    it.index = align_up(need, 2u << 20); /* the worker's item index: the size */
    int rc = write_request(p, OP_INSEG, &it, 1, 0, NULL);
    if (rc) return rc;
    uint32_t timed = 0;
    if (wait_response(p, NULL, 0, NULL, &timed, NULL) != 0) return -ESRCH; /* dead: seen later */
    if (arena_map(&p->a, __atomic_load_n(&pctl(p)->arena_size, __ATOMIC_ACQUIRE)) != 0)
        return -ENOMEM;
    const resp_rec *r = rec_at(p, 0);
    if (r->err) return -ENOMEM;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)p->pid, (int)r->seg_fd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            atomic_store_explicit(&inseg_state, -1, memory_order_relaxed);
        return -e;
    }
    struct stat st;
    void *m = MAP_FAILED;
    int e = EINVAL;
    size_t cap = (size_t)r->out_len;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == r->out_len && cap >= need) {
        m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        e = errno;
    }
    close(fd);
    if (m == MAP_FAILED) return -e;
    touch_pages(m, cap, true);
    p->in = (inseg){-1, m, cap, r->seg_id};
    atomic_store_explicit(&inseg_state, 1, memory_order_relaxed);
    return 0;
}

static int start_worker(weft__proxy *p, char **msg)
{
    int rc = spawn(p);
    if (rc) {
        if (msg) *msg = strdup(weft_last_error());
        return rc;
    }
    if (p->o.initializer) {
        rc = run_control(p, OP_INIT, p->o.initializer, p->o.init_in, p->o.init_len, msg);
        if (rc) {
            if (p->alive) {
                weft__fs_kill(p->pid, SIGKILL);
                wait_dead(p);
            }
            return rc;
        }
    }
    return 0;
}

int weft__proxy_create(const weft__proxy_opts *o, weft__proxy **out, char **msg)
{
    *out = NULL;
    if (msg) *msg = NULL;
    weft__proxy *p = calloc(1, sizeof *p);
    if (!p) return weft__err(WEFT_ENOMEM, "out of memory");
    p->o = *o;
    p->spin = (weft__spin)WEFT__SPIN_INIT(SPIN_NS, SPIN_MIN_NS);
    pthread_mutex_init(&p->mu, NULL);
    p->memfd = memfd_create("weft-worker", MFD_CLOEXEC);
    int rc = 0;
    if (p->memfd < 0) {
        rc = weft__err(WEFT_EAGAIN, "memfd_create: %s", strerror(errno));
    } else if (fchmod(p->memfd, 0600) < 0) { /* as the IPC memfds: not 0777 */
        rc = weft__err(WEFT_EAGAIN, "cannot make the worker arena private: %s", strerror(errno));
    } else if (ftruncate(p->memfd, ARENA_MIN) < 0) {
        rc = weft__err(WEFT_ENOMEM, "cannot size the worker arena: %s", strerror(errno));
    } else if ((rc = arena_open(&p->a, p->memfd)) != 0 || (rc = arena_map(&p->a, ARENA_MIN))) {
        rc = weft__err(WEFT_ENOMEM, "cannot map the worker arena: %s", strerror(-rc));
    }
    if (!rc) {
        pctl(p)->arena_size = ARENA_MIN;
        rc = start_worker(p, msg);
    }
    if (rc) {
        arena_close(&p->a);
        if (p->memfd >= 0) close(p->memfd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    copier_hold();
    *out = p;
    return 0;
}

void weft__proxy_destroy(weft__proxy *p)
{
    if (!p) return;
    if (p->alive) {
        char *msg = NULL;
        run_control(p, OP_QUIT, p->o.finalizer, NULL, 0, &msg);
        free(msg);
        if (p->alive) {
            weft__fs_kill(p->pid, SIGKILL);
            wait_dead(p);
        }
    }
    omap_drop_all(p);
    inseg_unmap(p);
    arena_close(&p->a);
    close(p->memfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
    copier_release();
}

void weft__proxy_describe(weft__proxy *p, uint64_t now, char *buf, size_t len)
{
    pthread_mutex_lock(&p->mu);
    if (!p->cur_fn) {
        snprintf(buf, len, "worker %d (pid %d): idle", p->o.id, (int)p->pid);
    } else {
        const char *name = weft_task_name(p->cur_fn);
        snprintf(buf, len, "worker %d (pid %d): task '%s' (index %llu) running for %.3f s", p->o.id,
                 (int)p->pid, name ? name : "?", (unsigned long long)p->cur_index,
                 (double)(now - p->cur_t0) * 1e-9);
    }
    pthread_mutex_unlock(&p->mu);
}

static void set_idle(weft__proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->cur_fn = NULL;
    pthread_mutex_unlock(&p->mu);
}

/* Why a dead worker died when item `timed` ran past its time limit and the
 * proxy killed it: its own crash or exit (the item's fault, reported as
 * such) or the proxy's SIGKILL (a timeout). */
static bool killed_by_proxy(weft__proxy *p)
{
    weft__wctl *c = pctl(p);
    int st = c->status;
    return !__atomic_load_n(&c->crash_sig, __ATOMIC_ACQUIRE) && WIFSIGNALED(st) &&
           WTERMSIG(st) == SIGKILL;
}

#define UNBLAMED_MAX 3 /* deaths before an item started, before it is blamed */

/* WEFT_PROCESSES_PHASES=1: one line on stderr per large request answered,
 * every phase in µs from when the lane began writing it (at_ns, monotonic,
 * to line up with the caller's own stamps): input segment ready (a grow
 * costs a request of its own), inputs copied and request sent, the worker
 * saw it, began its first item, had that item's input (fetched, on the
 * process_vm path) and started the task, ended its last task, answered;
 * the lane saw the answer, the items were reported (futures finished). */
static void print_phases(weft__proxy *p, const weft__ritem *items, size_t n, uint64_t t_ans)
{
    weft__wctl *c = pctl(p);
    uint64_t t0 = p->ph[0], now = weft__now_ns();
    size_t in = 0, out = 0;
    for (size_t k = 0; k < n; k++) {
        in += items[k].len;
        out += rec_at(p, k)->out_len;
    }
#define PH_US(t) ((t) > t0 ? (double)((t)-t0) * 1e-3 : 0.0)
    fprintf(stderr,
            "weft-phases: worker %d pid %d items %zu in %zu out %zu at_ns %llu | segment %.0f "
            "sent %.0f seen %.0f item0 %.0f input %.0f task1 %.0f answered %.0f lane_saw %.0f "
            "reported %.0f us\n",
            p->o.id, (int)p->pid, n, in, out, (unsigned long long)t0, PH_US(p->ph[1]),
            PH_US(p->ph[2]), PH_US(c->ph_seen), PH_US(rec_at(p, 0)->t0), PH_US(c->ph_in),
            PH_US(rec_at(p, n - 1)->t1), PH_US(c->ph_resp), PH_US(t_ans), PH_US(now));
#undef PH_US
}

/* Runs items[0..n) as weft__proxy_run does; the first `sent` of them are
 * in a request in flight already (the direct path: 0 or 1). */
static void proxy_loop(weft__proxy *p, const weft__ritem *items, size_t n, _Atomic int *stop,
                       bool stop_on_error, weft__rdone_fn done, void *arg, size_t sent)
{
    size_t i = 0;
    int tries = 0;    /* crash retries spent on item i */
    int unblamed = 0; /* deaths of the worker before item i started */
    bool failed = false;
    while (i < n) {
        size_t j;
        if (sent) {
            j = i + sent;
            sent = 0;
            goto in_flight;
        }
        if (force_stop(p)) { /* a message: the future may be RUNNING already */
            report_err(done, arg, i++, WEFT_ECANCELLED,
                       "stopped by a forced shutdown of the executor before it ran");
            continue;
        }
        if ((stop && atomic_load_explicit(stop, memory_order_relaxed)) ||
            (failed && stop_on_error)) {
            report_err(done, arg, i++, WEFT_ECANCELLED, NULL);
            continue;
        }
        /* A worker can die between tasks (a signal a task left behind, e.g.
         * an alarm): replace it before sending, not blame the next task. */
        if (p->alive && __atomic_load_n(&pctl(p)->dead, __ATOMIC_ACQUIRE)) p->alive = false;
        if (!p->alive) {
            char *msg = NULL;
            int rc = start_worker(p, &msg);
            if (rc) {
                char buf[512];
                snprintf(buf, sizeof buf, "cannot start a worker process: %s",
                         msg ? msg : weft_strerror(rc));
                free(msg);
                report_err(done, arg, i++, rc, buf);
                failed = true;
                continue;
            }
        }
        if (p->o.max_input && items[i].len > p->o.max_input) {
            char buf[160];
            snprintf(buf, sizeof buf, "input of %zu bytes is over the max_input limit of %zu bytes",
                     items[i].len, p->o.max_input);
            report_err(done, arg, i++, WEFT_EOVERFLOW, buf);
            failed = true;
            continue;
        }
        j = i + 1;
        while (j < n && !(p->o.max_input && items[j].len > p->o.max_input)) j++;
        if (p->o.max_tasks > 0 && j - i > (size_t)p->o.max_tasks - p->items_run)
            j = i + ((size_t)p->o.max_tasks - p->items_run);
        size_t taken = 0;
        int rc = write_request(p, OP_RUN, items + i, j - i, stop_on_error ? RF_STOP_ON_ERROR : 0,
                               &taken);
        if (rc) {
            char buf[240];
            if (rc == -E2BIG) {
                snprintf(buf, sizeof buf,
                         "input of %zu bytes cannot be passed to a worker process: over the "
                         "%llu bytes a request may carry (is the input's length right?)",
                         items[i].len, (unsigned long long)ARENA_IN_MAX);
                report_err(done, arg, i++, WEFT_EOVERFLOW, buf);
            } else {
                snprintf(buf, sizeof buf, "cannot grow the worker arena for %zu input bytes: %s",
                         items[i].len, strerror(-rc));
                report_err(done, arg, i++, WEFT_ENOMEM, buf);
            }
            failed = true;
            continue;
        }
        j = i + taken;
    in_flight:;
        uint32_t timed = 0;
        batch b = {done, arg, i, 0, false};
        int w = wait_response(p, items + i, j - i, stop, &timed, &b);
        uint64_t t_ans = p->ph_on ? weft__now_ns() : 0;
        if (b.failed) failed = true;
        i += b.reported; /* reported while the worker went on */
        weft__wctl *c = pctl(p);
        if (arena_map(&p->a, __atomic_load_n(&c->arena_size, __ATOMIC_ACQUIRE)) != 0) {
            /* cannot see the outputs: the batch is lost, and so is the worker */
            if (!__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) {
                weft__fs_kill(p->pid, SIGKILL);
                wait_dead(p);
            }
            p->alive = false;
            while (i < j)
                report_err(done, arg, i++, WEFT_ENOMEM, "cannot map the worker arena's outputs");
            failed = true;
            continue;
        }
        size_t cnt = j - b.first;
        size_t got = __atomic_load_n(&c->done_items, __ATOMIC_ACQUIRE);
        if (got > cnt || w == 0) got = cnt;
        /* whether the worker had started item i + got when it died */
        bool started = false;
        if (w != 0 && got < cnt) {
            uint32_t ck = __atomic_load_n(&c->cur_item, __ATOMIC_ACQUIRE);
            started = ck == got && __atomic_load_n(&c->item_t0, __ATOMIC_ACQUIRE) != 0;
        }
        for (size_t k = b.reported; k < got; k++) {
            if (rec_at(p, k)->err) failed = true;
            report(p, k, done, arg, b.first + k);
        }
        if (t_ans && w == 0 && got) print_phases(p, items + b.first, got, t_ans);
        p->ph_on = false;
        p->items_run += got;
        i = b.first + got;
        if (got) tries = unblamed = 0;
        if (w != 0) {
            p->alive = false;
            if (i >= j) {
                /* it died after the last item of the batch finished: no
                 * item to blame; the next one goes to a fresh worker */
            } else if (w == 2 && timed < got) {
                /* the item over its time finished as the kill went out; the
                 * kill cut item i short: not its fault, it runs again */
            } else if (!started && unblamed < UNBLAMED_MAX) {
                unblamed++; /* died before item i started: run it on a fresh worker */
            } else {
                /* item i killed its worker, or ran out of time (w == 2) */
                char why[320];
                int code;
                if (w == 2 && killed_by_proxy(p)) {
                    double to = items[i].timeout > 0 ? items[i].timeout : p->o.task_timeout;
                    snprintf(why, sizeof why,
                             "the task ran longer than its timeout of %g s; its worker process "
                             "(pid %d) was killed and replaced",
                             to, (int)p->pid);
                    code = WEFT_ETIMEDOUT;
                } else {
                    code = death_cause(p, why, sizeof why); /* what really happened */
                }
                unblamed = 0;
                if (tries < p->o.crash_retries) {
                    tries++; /* run it again on a fresh worker */
                } else {
                    report_err(done, arg, i++, code, why);
                    failed = true;
                    tries = 0;
                }
            }
        } else if (p->o.max_tasks > 0 && p->items_run >= (uint64_t)p->o.max_tasks) {
            char *msg = NULL;
            run_control(p, OP_QUIT, p->o.finalizer, NULL, 0, &msg); /* recycle */
            free(msg);
            if (p->alive) {
                weft__fs_kill(p->pid, SIGKILL);
                wait_dead(p);
            }
        }
        if (pctl(p)->arena_size > ARENA_SHRINK && p->alive) {
            if (ftruncate(p->memfd, ARENA_MIN) == 0) pctl(p)->arena_size = ARENA_MIN;
        }
    }
    set_idle(p);
}

void weft__proxy_run(weft__proxy *p, const weft__ritem *items, size_t n, _Atomic int *stop,
                     bool stop_on_error, weft__rdone_fn done, void *arg)
{
    proxy_loop(p, items, n, stop, stop_on_error, done, arg, 0);
}

/* ---- the direct path: one item written by its submitter ---- */

bool weft__proxy_can_send(weft__proxy *p, size_t len)
{
    /* a large input only into an input segment it fits as it is: the
     * submitter copies it (no request to grow it, no process_vm path) */
    bool fits = len < BIG_PAYLOAD ||
                (p->o.in_copiers > 0 && !p->o.memory_limit && p->in.p && len <= p->in.cap &&
                 atomic_load_explicit(&inseg_state, memory_order_relaxed) > 0);
    return p->alive && !__atomic_load_n(&pctl(p)->dead, __ATOMIC_ACQUIRE) && !force_stop(p) &&
           p->o.max_tasks == 0 && fits && (!p->o.max_input || len <= p->o.max_input);
}

int weft__proxy_send(weft__proxy *p, const weft__ritem *it)
{
    int rc = write_request(p, OP_RUN, it, 1, 0, NULL);
    if (rc == -E2BIG)
        return weft__err(WEFT_EOVERFLOW,
                         "input of %zu bytes cannot be passed to a worker process: over the %llu "
                         "bytes a request may carry (is the input's length right?)",
                         it->len, (unsigned long long)ARENA_IN_MAX);
    if (rc)
        return weft__err(WEFT_ENOMEM, "cannot grow the worker arena for %zu input bytes: %s",
                         it->len, strerror(-rc));
    return 0;
}

void weft__proxy_finish(weft__proxy *p, const weft__ritem *it, _Atomic int *stop,
                        weft__rdone_fn done, void *arg)
{
    proxy_loop(p, it, 1, stop, false, done, arg, 1);
}

bool weft__proxy_answered(weft__proxy *p)
{
    weft__wctl *c = pctl(p);
    return __atomic_load_n(&c->resp_done, __ATOMIC_ACQUIRE) ==
               __atomic_load_n(&p->seq, __ATOMIC_RELAXED) &&
           !__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE);
}

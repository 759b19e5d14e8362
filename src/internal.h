/* internal.h : declarations shared by the parts of libweft. Not installed. */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "os/os.h"
#include "weft.h"

#define WEFT__CACHELINE 64
#define WEFT__ALIGNED __attribute__((aligned(WEFT__CACHELINE)))
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- growing arrays ------------------------------------------------------ */

/* weft__grow() :
 * Makes room for `need` elements of `size` bytes in the array `*arrp` (a
 * `T **` passed as void *) of capacity `*cap` elements: the capacity
 * doubles, starting from `first` (>= 1), until it holds `need`.
 * @return 0, or -1 (out of memory, or the byte count overflows): the array
 * and *cap are then as they were. */
static inline int weft__grow(void *arrp, size_t *cap, size_t need, size_t size, size_t first)
{
    if (WEFT__LIKELY(need <= *cap)) return 0;
    if (need > SIZE_MAX / 2 / size) return -1;
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    void *old;
    memcpy(&old, arrp, sizeof old);
    void *p = realloc(old, c * size);
    if (!p) return -1;
    memcpy(arrp, &p, sizeof p);
    *cap = c;
    return 0;
}

/* weft__grow() for a byte buffer. */
static inline int weft__grow_bytes(unsigned char **buf, size_t *cap, size_t need, size_t first)
{
    return weft__grow(buf, cap, need, 1, first);
}

/* ---- errors (error.c) ---------------------------------------------------- */

/* Records a message for weft_last_error() and returns `code`. */
int weft__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As weft__err with a fixed message (two parts, b may be NULL), copied
 * byte by byte: async-signal-safe (no printf, no errno change). */
int weft__err_safe(int code, const char *a, const char *b);
/* Validates a timeout: returns 0 and the limit in ns (-1 = none) in *ns. */
int weft__timeout_ns(double timeout, int64_t *ns, const char *fn);
/* A formatted message on the heap (free it), or NULL out of memory. */
char *weft__vasprintf(const char *fmt, va_list ap);
char *weft__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Counts the failures weft__err and weft__err_safe recorded on this thread
 * (code < 0), so a task run can tell whether a weft call failed during it.
 * Read once per task run (every map item): initial-exec, one load from the
 * thread pointer, where the default model for a shared library calls
 * __tls_get_addr each time (3-4 ns an item of map_empty on serial). Four
 * bytes of the static TLS block glibc keeps for libraries loaded later. */
extern __thread unsigned weft__err_gen __attribute__((tls_model("initial-exec")));

/* ---- options structs that grow ------------------------------------------ */

/* Reads a public options struct whose first member is `size_t size` (the
 * caller's sizeof; 0 = `size0`, the layout of the version that introduced
 * the size field, 0.2) into the zeroed local copy `dst` of `dst_size` bytes
 * (this library's sizeof): copies min(size, dst_size) bytes, so fields the
 * caller's header did not have keep their defaults, and sets dst's size to
 * dst_size. `src` NULL gives the defaults. `what` names the struct and the
 * call in messages ("weft_map: weft_map_options").
 * @return 0; WEFT_EINVAL for a size smaller than the size field itself;
 * WEFT_ENOTSUP for a larger struct (a newer header) that sets a field this
 * library does not know (its tail bytes are not all zero). When a field is
 * appended to a struct, the callers pass its 0.2 size as `size0`. */
static inline int weft__opts_read(void *dst, size_t dst_size, const void *src, size_t size0,
                                  const char *what)
{
    memset(dst, 0, dst_size);
    if (src) {
        size_t size;
        memcpy(&size, src, sizeof size);
        if (size == 0) size = size0;
        if (size < sizeof(size_t))
            return weft__err(WEFT_EINVAL,
                             "%s: size %zu is smaller than the size field (set it to "
                             "sizeof the struct, or 0)",
                             what, size);
        for (size_t i = dst_size; i < size; i++)
            if (((const unsigned char *)src)[i])
                return weft__err(WEFT_ENOTSUP,
                                 "%s: the struct (size %zu) sets a field this library (weft "
                                 "%s, size %zu) does not know",
                                 what, size, WEFT_VERSION_STRING, dst_size);
        memcpy(dst, src, size < dst_size ? size : dst_size);
    }
    memcpy(dst, &dst_size, sizeof dst_size);
    return 0;
}
/* WEFT__OPTS_READ(local, user, what): weft__opts_read for a struct that
 * has not grown since 0.2 (size 0 = this header's layout). */
#define WEFT__OPTS_READ(local, user, what) \
    weft__opts_read(&(local), sizeof(local), (user), sizeof(local), (what))

/* ---- registry (registry.c) ---------------------------------------------- */

/* The first conflict met by a static registration, or NULL. */

/* ---- task context -------------------------------------------------------- */

#define WEFT__OUT_INLINE 32

struct weft_ctx {
    weft_executor *ex;
    uint64_t index;
    uint64_t seed;
    int worker;
    int attempt;
    /* output: points into `inl` (caller storage) or to a heap block */
    void *out;
    size_t out_len;
    bool out_heap;
    unsigned char *inl;
    size_t inl_cap;
    char *msg; /* heap, from weft_ctx_fail */
    const void *wstate;
    size_t wstate_len;
    /* processes backend, in a worker process: outputs go straight into the
     * shared arena (NULL elsewhere) */
    void *(*alloc_out)(weft_ctx *ctx, size_t len);
};

/* Derives the seed of item `index` from the run seed. */
static inline uint64_t weft__seed_for(uint64_t run_seed, uint64_t index)
{
    uint64_t x = run_seed ^ (index * 0xd1342543de82ef95ull);
    uint64_t a = weft__splitmix64(&x);
    return a ^ weft__splitmix64(&x);
}

#define WEFT__OUT_HDR 16
/* Heap output blocks (length header before the bytes). */
void *weft__out_alloc(size_t len);
void weft__out_free(void *out);
size_t weft__out_len(const void *out);
/* Unmaps the big output block kept for reuse, if any (executor destroy). */
void weft__out_trim(void);
/* An output block may be a MAP_SHARED mapping of a file another process
 * wrote it in (a worker process's output segment): its header's second
 * word is then the mapping's length | WEFT__OUT_SHARED, and
 * weft__out_free() marks it released for that process (the first word,
 * the length, becomes UINT64_MAX) before it unmaps it.
 * The program may keep such a mapping between outputs (a worker's warm
 * segment, reused for its next output): the word then also has
 * WEFT__OUT_KEPT while the program's cache holds the mapping and
 * WEFT__OUT_HELD while an output in it is held, and a tag (the bits from
 * WEFT__OUT_TAG_SHIFT up) that tells one output in it from the next.
 * weft__out_free() then only clears HELD, or unmaps if the cache has let
 * go; the cache lets go with weft__out_shared_drop(), which unmaps unless
 * an output is held (its holder unmaps it then). Lengths: the low bits. */
#define WEFT__OUT_SHARED ((size_t)1 << 63)
#define WEFT__OUT_KEPT ((size_t)1 << 62)
#define WEFT__OUT_HELD ((size_t)1 << 61)
#define WEFT__OUT_TAG_SHIFT 40
#define WEFT__OUT_LEN_MASK (((size_t)1 << WEFT__OUT_TAG_SHIFT) - 1)
void weft__out_shared_drop(void *map, size_t map_len);

/* A plain future its submitter sent straight to a worker (the processes
 * backend's direct path): f->job (read and written with __atomic builtins)
 * points at the backend's record, whose first member is this, until the
 * future is finished. A thread about to wait for f without a time limit
 * calls claim(), which collects the result itself and finishes f (true),
 * or leaves it to the backend (false: someone else collects it); one
 * that waits with a limit calls poll() as it spins, which does the same
 * only once the result is there (collecting it cannot block). A thread
 * about to sleep on f (or to wait for several futures) calls kick(), which
 * makes the backend collect it soon. Both are safe to call on a stale
 * record: the record outlives its executor and checks that f is its own. */
typedef struct weft__direct {
    bool (*claim)(struct weft__direct *d, weft_future *f);
    bool (*poll)(struct weft__direct *d, weft_future *f);
    void (*kick)(struct weft__direct *d, weft_future *f);
} weft__direct;

/* weft__ctx_item() :
 * Points a prepared ctx at the next item: its index and seed, the caller's
 * room for a small output (inl, cap bytes; NULL, 0: none), no output yet.
 * The message is left as it is (NULL after a run whose message the caller
 * took). */
static inline void weft__ctx_item(weft_ctx *ctx, uint64_t index, uint64_t seed, unsigned char *inl,
                                  size_t cap)
{
    ctx->index = index;
    ctx->seed = seed;
    ctx->out = NULL;
    ctx->out_len = 0;
    ctx->out_heap = false;
    ctx->inl = inl;
    ctx->inl_cap = cap;
}

/* weft__ctx_init() :
 * Prepares ctx for the runs of one worker (or lane): `ex` (NULL in another
 * process), the worker id and its state; no item yet (index and seed 0, no
 * inline output room, no output, no message). Every place that runs a task
 * starts here, so a new field of weft_ctx gets its value once. */
static inline void weft__ctx_init(weft_ctx *ctx, weft_executor *ex, int worker, const void *wstate,
                                  size_t wstate_len)
{
    weft__ctx_item(ctx, 0, 0, NULL, 0);
    ctx->ex = ex;
    ctx->worker = worker;
    ctx->attempt = 0;
    ctx->msg = NULL;
    ctx->wstate = wstate;
    ctx->wstate_len = wstate_len;
    ctx->alloc_out = NULL;
}

/* The seed of worker w's initializer run: apart from every item's. */
static inline uint64_t weft__init_seed(uint64_t run_seed, int w)
{
    return weft__seed_for(run_seed, UINT64_MAX - (uint64_t)w);
}

/* Runs fn with retries in `ctx` (prepared by weft__ctx_init and
 * weft__ctx_item). Returns the final code (0 or < 0); the
 * output and message are left in ctx (owned by the caller afterwards). */
int weft__ctx_run(weft_ctx *ctx, weft_task_fn fn, const void *in, size_t len, int retries);
/* Frees a heap output / message left in ctx. */
void weft__ctx_clear(weft_ctx *ctx);

/* ---- futures (future.c) --------------------------------------------------- */

/* state word: low 3 bits = weft_future_state, then flags */
#define WEFT__ST_MASK 7u
#define WEFT__ST_LOCK (1u << 3)     /* callbacks / waiter list being changed */
#define WEFT__ST_SLEEP (1u << 4)    /* a thread sleeps on the state word */
#define WEFT__ST_LIST (1u << 5)     /* callbacks or waiter nodes attached */
#define WEFT__ST_INTERNAL (1u << 6) /* an internal job (map chunk) */
#define WEFT__ST_IN_HEAP (1u << 7)  /* `in` is a heap copy (until freed) */
#define WEFT__ST_OUT_HEAP (1u << 8) /* `out` is a heap block */
#define WEFT__ST_DIRTY (1u << 9)    /* line 2 holds something to reset */
#define WEFT__ST_PROMISE (1u << 10) /* made by weft_promise_create: user-completed */
#define WEFT__ST_CALLING (1u << 11) /* final, and its completion still runs callbacks */

#define WEFT__IN_INLINE 16
#define WEFT__FUT_OUT_INLINE 64

struct weft__cb;
struct weft__waiter_node;

/* Three cache lines, 64-byte aligned. The first holds everything a plain
 * submit writes and a worker and a waiter read; the second the rare parts,
 * kept all-zero while unused so that neither submit nor free touches it
 * (WEFT__ST_DIRTY says it must be reset at free); the third a small output.
 * A submit without input touches one line, with a small input two. */
struct weft_future {
    /* line 1 */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    union {
        weft_task_fn fn;
        struct weft_future *next_free; /* allocator free lists */
    };
    weft_executor *ex;
    uint64_t index;
    const void *in; /* NULL once a heap copy is freed */
    size_t in_len;
    void *out;
    size_t out_len;
    /* line 2: zero unless WEFT__ST_DIRTY (cbs and waiters are NULL again
     * by the time the future is freed) */
    char *msg;
    struct weft__cb *cbs;              /* FIFO, under LOCK */
    struct weft__waiter_node *waiters; /* under LOCK */
    void *job;                         /* internal jobs: the job record */
    int32_t retries;
    int32_t err;
    double timeout; /* processes: this task's time limit (0: the executor's) */
    unsigned char in_inl[WEFT__IN_INLINE] __attribute__((aligned(16)));
    /* line 3 */
    unsigned char out_inl[WEFT__FUT_OUT_INLINE] WEFT__ALIGNED;
} WEFT__ALIGNED;

weft_future *weft__future_alloc(void);
/* Returns the pages of futures freed past the free lists' bounds to the
 * system (glibc: malloc_trim) if enough were freed since the last time. */
void weft__future_trim(void);
/* Marks f finished with `final` (DONE, FAILED or CANCELLED, possibly with
 * OUT_HEAP / DIRTY bits) unless already finished; runs callbacks and wakes
 * waiters. Returns true if it did. */
bool weft__future_complete(weft_future *f, uint32_t final);
/* PENDING -> RUNNING; false if f was cancelled. */
bool weft__future_start(weft_future *f);
/* PENDING or RUNNING -> CANCELLED: a task its runner took (started) but
 * cancelled before it ran, e.g. an item of a processes batch not yet sent
 * when a shutdown cancels. weft__future_complete() cannot: it cancels only
 * PENDING futures. Returns true if it did. */
bool weft__future_cancel_taken(weft_future *f);
static inline uint32_t weft__future_st(const weft_future *f)
{
    return atomic_load_explicit(&((weft_future *)f)->state, memory_order_acquire) & WEFT__ST_MASK;
}
static inline bool weft__st_final(uint32_t st)
{
    return st >= WEFT_FUTURE_DONE;
}

/* ---- executor (executor.c) ----------------------------------------------- */

/* Runs one queued task if one can be found for the calling worker of `ex`.
 * Returns true if it ran something. Only on a worker thread of `ex`. */
bool weft__help_one(weft_executor *ex);
/* The executor whose worker the calling thread is, or NULL. */
weft_executor *weft__current_executor(void);
/* Queues an allocated future (refs already include the queue's). Returns 0,
 * a WEFT_E* code (the future was not queued), or WEFT__ECLOSED_QUEUED: shut
 * down meanwhile, the future is cancelled and the caller's reference was
 * dropped (the queue still holds its own). */
#define WEFT__ECLOSED_QUEUED (-100000)
int weft__enqueue(weft_executor *ex, weft_future *f);
/* Waits until *word != seen or `deadline_ns` (0: none); a worker of an
 * executor helps meanwhile. `done` is polled. Returns 0 or WEFT_ETIMEDOUT. */
int weft__wait_until(bool (*done)(void *), void *arg, uint64_t deadline_ns);
bool weft__executor_is_serial(const weft_executor *ex);
bool weft__executor_cancelling(weft_executor *ex);
bool weft__executor_closed(weft_executor *ex);
uint64_t weft__executor_seed(const weft_executor *ex);
int weft__executor_worker_index(void);
uint64_t weft__executor_next_index(weft_executor *ex);
bool weft__executor_tracing(const weft_executor *ex);
void weft__trace_record(weft_executor *ex, int worker, weft_task_fn fn, uint64_t t0, uint64_t t1,
                        int err, uint64_t items);
uint64_t weft__executor_t0(const weft_executor *ex);
/* Runs a dequeued future on the calling thread as worker `worker`. */
void weft__run_future(weft_executor *ex, weft_future *f, int worker, const void *wstate,
                      size_t wstate_len);

/* 0 if `fn` is registered (weft_task_register / WEFT_TASK_REGISTER), else
 * WEFT_ENOTREG naming `who`: backends that run tasks in other processes
 * find them by registration. Cached per thread. */
int weft__check_registered(weft_task_fn fn, const char *who);
/* For a backend that finds functions by name (`backend` names it in the
 * message): WEFT_ENOTREG if the executor's initializer or finalizer is not
 * registered, else 0. */
int weft__check_hooks_registered(weft_task_fn initializer, weft_task_fn finalizer,
                                 const char *backend);
/* Set in a worker process of a backend that runs tasks in other processes
 * (defined in task.c, set by the backend when it starts a worker). */
extern bool weft__worker_process;
/* Notes that tasks finished now (for the watchdog). */
void weft__executor_progress(weft_executor *ex);

/* ---- map (map.c) --------------------------------------------------------- */

/* An internal future (WEFT__ST_INTERNAL, e.g. a map chunk) carries in
 * f->job a record that starts with this: how the pool runs it. */
typedef struct weft__job {
    void (*run)(weft_future *f, int worker, const void *wstate, size_t wstate_len);
} weft__job;

/* ---- trace (trace.c) ----------------------------------------------------- */

typedef struct weft__trace_ev {
    uint64_t t0, t1;
    weft_task_fn fn;
    uint64_t items;
    int worker;
    int err;
} weft__trace_ev;

typedef struct weft__trace_buf {
    pthread_mutex_t mu;
    weft__trace_ev *ev;
    size_t n, cap;
} weft__trace_buf;

int weft__trace_write_file(const char *path, weft__trace_buf *bufs, int nbufs, uint64_t t0,
                           const char *backend);

#endif

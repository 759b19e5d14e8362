/* os.h : the platform layer (Linux first).
 *
 * What lives here: every raw syscall(2) of libweft -- the calls glibc does
 * not wrap (futex, membarrier, gettid, pidfd_open) -- and the clock, CPU
 * count and yield the core's hot paths use. No file outside src/os/ calls
 * syscall() (a grep for "syscall(" in src/ finds only linux.c).
 *
 * What does not: the parts whose job is processes, memory or files call
 * glibc's POSIX and Linux wrappers directly, since their system calls are
 * their subject, not a detail -- the processes backend (src/backends/processes/: fork,
 * wait4/waitid, signalfd, socketpair, sendmsg/recvmsg, poll, prctl,
 * setrlimit, memfd_create, mmap, sigaction), the mpi workers (src/backends/mpi/:
 * sigaction, sigaltstack, nanosleep, sched_yield; shm_open, ftruncate, mmap
 * for the same-host doorbells; futexes through src/os/), subprocesses
 * (src/subprocess/: posix_spawn, pipe2, poll/ppoll, wait4/waitid, kill),
 * IPC (src/ipc/: memfd_create, mmap, ftruncate, fcntl, /proc files), large
 * map results (src/core/map.c: mmap, madvise), arrays (src/array/: file
 * I/O, mmap, getrandom), the tables (src/table/: CSV file I/O, madvise),
 * the diagnostics (src/diag/: file I/O, memfd_create, isatty) and
 * src/sched.c (clock_gettime for a
 * pthread_cond_timedwait deadline). pthreads and stdio are used
 * everywhere. docs/design.md ("System calls") keeps the same list. */
#ifndef WEFT_OS_H
#define WEFT_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Monotonic clock in nanoseconds. */
uint64_t weft__now_ns(void);

/* Sleeps while `*addr == expected`, at most `timeout_ns` (< 0: no limit).
 * Returns 0 when woken or the value differed, WEFT_ETIMEDOUT on timeout.
 * Spurious returns are possible: callers re-check their condition. */
int weft__futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns);

/* Wakes up to `n` threads sleeping on `addr`. */
void weft__futex_wake(_Atomic uint32_t *addr, int n);

/* As weft__futex_wait / weft__futex_wake on a plain 32-bit word (accessed
 * elsewhere with __atomic builtins); with `shared` the futex is keyed by the
 * physical page (no FUTEX_PRIVATE_FLAG), so processes that map the word
 * through shared memory wait and wake one another. */
int weft__futex_wait_ex(uint32_t *addr, uint32_t expected, int64_t timeout_ns, bool shared);
void weft__futex_wake_ex(uint32_t *addr, int n, bool shared);

/* The calling thread's kernel id (gettid), unique across the processes of
 * the machine; cached per thread and refreshed in a fork()ed child. */
extern __thread uint32_t weft__tid_cache __attribute__((tls_model("initial-exec")));
uint32_t weft__thread_id_slow(void);
static inline uint32_t weft__thread_id(void)
{
    uint32_t t = weft__tid_cache;
    return __builtin_expect(t != 0, 1) ? t : weft__thread_id_slow();
}

/* Online CPUs (>= 1). */
int weft__cpu_count(void);

/* A pause hint for spin loops. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    __asm__ volatile("" ::: "memory");
#endif
}

/* Asymmetric barrier. weft__heavy_barrier_init() registers the process for
 * expedited membarrier and returns true if it is available. Then
 * weft__heavy_barrier() makes every running thread of the process execute
 * a full memory barrier before it returns, so the frequent side of a Dekker
 * pair needs only a compiler barrier. Without it, callers fall back to
 * seq_cst fences on both sides. */
bool weft__heavy_barrier_init(void);
void weft__heavy_barrier(void);

/* Yields the CPU to another runnable thread. */
void weft__yield(void);

/* Adaptive spin before a park: oneTBB's backoff (pause, then yield) with a
 * budget that learns, as Lace's and Go's idle workers spin only while it
 * pays. A waiter first pauses for `pure` ns, then keeps looking and yields
 * the CPU every WEFT__SPIN_YIELD_EVERY looks (a yield is a system call,
 * ~5 us on a loaded VM) -- on a machine with fewer cores than busy threads, the thread it
 * waits for may be queued behind it on its own CPU, and a yield hands that
 * thread the CPU at once, where a pure spin would hold it until preempted
 * -- until `ns` ns have passed since it began; then it parks on a futex.
 *
 * Learning: weft__spin_hit() (the wait ended while spinning) doubles `ns`;
 * weft__spin_miss() (it had to park) halves it, down to `min`: a waiter
 * whose events come quickly keeps spinning, one that waits for long work
 * or sits idle soon parks at once and costs no CPU. `pure` shrinks when
 * hits come after a yield that let another thread run on this CPU (the
 * awaited thread shares it: pausing only delays it) and grows to cover
 * hits that came after yields that ran nothing (the awaited thread runs
 * on another CPU: pausing is cheaper than a system call per look).
 * Per waiter, not shared: no atomics. */
typedef struct weft__spin {
    uint32_t ns;   /* budget before parking */
    uint32_t pure; /* its pause-only head, before the first yield */
    uint32_t min, max;
} weft__spin;

typedef struct weft__spin_run {
    uint64_t t0, now;
    uint32_t looks;
    bool yielding; /* past the pure head */
    bool switched; /* a yield ran another thread on this CPU */
} weft__spin_run;

#define WEFT__SPIN_INIT(max_ns, min_ns)     \
    {                                       \
        (max_ns), 1000u, (min_ns), (max_ns) \
    }
#define WEFT__SPIN_PURE_MAX 4000u  /* ns */
#define WEFT__SPIN_SWITCH_NS 2500u /* a yield this long ran another thread */
#define WEFT__SPIN_YIELD_EVERY 8u  /* looks per yield past the head (a power of 2) */

static inline void weft__spin_begin(weft__spin_run *r)
{
    r->t0 = r->now = weft__now_ns();
    r->looks = 0;
    r->yielding = r->switched = false;
}

/* Waits a little; false once the budget is spent (the caller parks now).
 * r->now is the time of the last look. */
static inline bool weft__spin_wait(const weft__spin *s, weft__spin_run *r)
{
    if (!r->yielding) {
        for (int i = 0; i < 4; i++) weft__cpu_relax();
        r->now = weft__now_ns();
        if (r->now - r->t0 < s->pure) return true;
        r->yielding = true;
    }
    if (r->now - r->t0 >= s->ns) return false;
    if ((++r->looks & (WEFT__SPIN_YIELD_EVERY - 1)) != 0) {
        /* a yield is a system call, several us on some VMs: look often,
         * yield now and then */
        for (int i = 0; i < 4; i++) weft__cpu_relax();
        r->now = weft__now_ns();
        return true;
    }
    uint64_t before = r->now;
    weft__yield();
    r->now = weft__now_ns();
    if (r->now - before > WEFT__SPIN_SWITCH_NS) r->switched = true;
    return true;
}

/* The wait ended while spinning. */
static inline void weft__spin_hit(weft__spin *s, const weft__spin_run *r)
{
    if (r->yielding) {
        if (r->switched) {
            s->pure /= 2;
        } else {
            uint64_t t = r->now - r->t0;
            t += t / 4;
            if (t > WEFT__SPIN_PURE_MAX) t = WEFT__SPIN_PURE_MAX;
            if (t > s->pure) s->pure = (uint32_t)t;
        }
    }
    s->ns = s->ns >= s->max / 2 ? s->max : s->ns * 2;
}

/* The waiter had to park. */
static inline void weft__spin_miss(weft__spin *s)
{
    s->ns = s->ns / 2 <= s->min ? s->min : s->ns / 2;
}

/* Closes every file descriptor >= 3 except the `nkeep` in keep[] (any
 * order; negative entries are ignored), however many are open: with
 * close_range(2) where the kernel has it, else by walking /proc/self/fd
 * until no other descriptor is left, else by closing every number below
 * the RLIMIT_NOFILE limit. For a freshly forked single-threaded child;
 * async-signal-safe except the /proc walk (opendir), used only when
 * close_range is missing. */
void weft__close_fds_except(const int *keep, int nkeep);

/* A pidfd for child `pid` (pidfd_open(2), close-on-exec), or -1 with errno
 * (ENOSYS on kernels before 5.3 or headers without it). */
int weft__pidfd_open(int pid);

#endif

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
 * sigaction, sigaltstack, nanosleep, sched_yield), subprocesses
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

/* linux.c : the platform layer (src/os/os.h) for Linux. */
#include "os/os.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

uint64_t weft__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int weft__futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    if (r == -1 && errno == ETIMEDOUT) return WEFT_ETIMEDOUT;
    return 0;
}

void weft__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int weft__futex_wait_ex(uint32_t *addr, uint32_t expected, int64_t timeout_ns, bool shared)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    int op = shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;
    long r = syscall(SYS_futex, addr, op, expected, tsp, NULL, 0);
    if (r == -1 && errno == ETIMEDOUT) return WEFT_ETIMEDOUT;
    return 0;
}

void weft__futex_wake_ex(uint32_t *addr, int n, bool shared)
{
    syscall(SYS_futex, addr, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

__thread uint32_t weft__tid_cache __attribute__((tls_model("initial-exec")));
static pthread_once_t tid_once = PTHREAD_ONCE_INIT;

/* In a fork()ed child the one thread has a new id: forget the parent's. */
static void tid_atfork_child(void)
{
    weft__tid_cache = 0;
}

static void tid_setup(void)
{
    pthread_atfork(NULL, NULL, tid_atfork_child);
}

uint32_t weft__thread_id_slow(void)
{
    pthread_once(&tid_once, tid_setup);
    weft__tid_cache = (uint32_t)syscall(SYS_gettid);
    return weft__tid_cache;
}

int weft__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > INT_MAX ? INT_MAX : n) : 1;
}

void weft__yield(void)
{
    sched_yield();
}

int weft__pidfd_open(int pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by default */
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static bool membarrier_ok;
static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;

static void membarrier_setup(void)
{
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) != 0) return;
    membarrier_ok = true;
}

bool weft__heavy_barrier_init(void)
{
    if (getenv("WEFT_NO_MEMBARRIER")) return false;
    pthread_once(&membarrier_once, membarrier_setup);
    return membarrier_ok;
}

void weft__heavy_barrier(void)
{
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) != 0)
        atomic_thread_fence(memory_order_seq_cst); /* cannot happen once registered */
}

/* Whether `fd` is one of keep[0..n). */
static bool kept(int fd, const int *keep, int n)
{
    for (int i = 0; i < n; i++)
        if (keep[i] == fd) return true;
    return false;
}

/* close_range(lo, hi): 0, or -1 when the kernel lacks it. */
static int close_span(unsigned lo, unsigned hi)
{
#ifdef SYS_close_range
    if (lo > hi) return 0;
    return syscall(SYS_close_range, lo, hi, 0) == 0 ? 0 : -1;
#else
    (void)lo;
    (void)hi;
    return -1;
#endif
}

void weft__close_fds_except(const int *keep, int nkeep)
{
    /* the kept descriptors, ascending, >= 3 */
    int ks[8];
    int n = 0;
    for (int i = 0; i < nkeep && n < (int)(sizeof ks / sizeof ks[0]); i++)
        if (keep[i] >= 3 && !kept(keep[i], ks, n)) ks[n++] = keep[i];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ks[j - 1] > ks[j]; j--) {
            int t = ks[j];
            ks[j] = ks[j - 1];
            ks[j - 1] = t;
        }
    /* the gaps between them: [3, ks[0]-1], [ks[0]+1, ks[1]-1], ..., [last+1, ~0] */
    unsigned lo = 3;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        if ((unsigned)ks[i] > lo) ok = close_span(lo, (unsigned)ks[i] - 1) == 0;
        lo = (unsigned)ks[i] + 1;
    }
    if (ok && close_span(lo, ~0u) == 0) return;
    /* No close_range: walk /proc/self/fd, closing as we go, until a pass
     * finds nothing more (closing while reading the directory may skip
     * entries, so one pass is not enough). */
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (bool any = true; any;) {
            any = false;
            rewinddir(d);
            int dfd = dirfd(d);
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
                int fd = atoi(e->d_name);
                if (fd < 3 || fd == dfd || kept(fd, ks, n)) continue;
                close(fd);
                any = true;
            }
        }
        closedir(d);
        return;
    }
    /* no /proc either: every number the process may have open */
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    if (max > (1l << 20)) max = 1l << 20;
    for (long fd = 3; fd < max; fd++)
        if (!kept((int)fd, ks, n)) close((int)fd);
}

/* test_sync.c : weft_lock, weft_rlock, weft_sem, weft_cond, weft_barrier,
 * weft_event, weft_timer, checked against the contract of Python's
 * threading module, plus cross-process use of the PSHARED variants.
 *
 * The fork tests come first in the file (tests run in file order), so that
 * they fork while the process is still single-threaded: TSan cannot follow a
 * fork of a multi-threaded process. */
#include "check.h"

#include <sys/mman.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void *shm_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Waits for `n` children in pids[] and checks each exited with status 0. */
static void reap(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int st = 0;
        pid_t r = waitpid(pids[i], &st, 0);
        CHECK_MSG(r == pids[i], "waitpid(%d) = %d", (int)pids[i], (int)r);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: %s %d", i,
                  WIFEXITED(st) ? "exit" : "signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
}

typedef struct {
    pthread_t th;
} thr;

static void thr_start(thr *t, void *(*fn)(void *), void *arg)
{
    int e = pthread_create(&t->th, NULL, fn, arg);
    REQUIRE(e == 0);
}

static void thr_join(thr *t)
{
    pthread_join(t->th, NULL);
}

/* ------------------------------------------------------------------------
 * Cross-process (PSHARED) -- first, while single-threaded
 * ------------------------------------------------------------------------ */

struct shm_lock {
    weft_lock lock;
    long counter; /* only under the lock */
    int eperm;    /* a child's release of the parent's lock */
};

TEST(pshared_lock_counts_across_processes)
{
    struct shm_lock *s = shm_alloc(sizeof *s);
    REQUIRE(s);
    REQUIRE_OK(weft_lock_init(&s->lock, WEFT_SYNC_PSHARED));
    enum {
        NPROC = 4
    };
    long per = (long)check_scaled(20000, 1000);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            for (long k = 0; k < per; k++) {
                if (weft_lock_acquire(&s->lock, 30) != 0) _exit(2);
                long v = s->counter;
                __asm__ volatile("" ::: "memory");
                s->counter = v + 1;
                if (weft_lock_release(&s->lock) != 0) _exit(3);
            }
            _exit(0);
        }
    }
    reap(pids, NPROC);
    CHECK_EQ_INT(s->counter, NPROC * per);
    CHECK(!weft_lock_locked(&s->lock));

    /* the owner is a thread id, unique across processes: a child cannot
     * release the parent's lock */
    REQUIRE_OK(weft_lock_acquire(&s->lock, 0));
    pid_t c = fork();
    REQUIRE(c >= 0);
    if (c == 0) {
        int rc = weft_lock_release(&s->lock);
        _exit(rc == WEFT_EPERM ? 0 : 4);
    }
    reap(&c, 1);
    CHECK(weft_lock_locked(&s->lock));
    CHECK_OK(weft_lock_release(&s->lock));
    CHECK_OK(weft_lock_fini(&s->lock));
    munmap(s, sizeof *s);
}

struct shm_sem {
    weft_sem items, done;
    int got[8];
};

TEST(pshared_sem_across_processes)
{
    struct shm_sem *s = shm_alloc(sizeof *s);
    REQUIRE(s);
    REQUIRE_OK(weft_sem_init(&s->items, 0, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_sem_init(&s->done, 0, WEFT_SYNC_PSHARED));
    enum {
        NPROC = 3,
        EACH = 50
    };
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            for (int k = 0; k < EACH; k++)
                if (weft_sem_acquire(&s->items, 30) != 0) _exit(2);
            s->got[i] = EACH;
            if (weft_sem_release(&s->done, 1) != 0) _exit(3);
            _exit(0);
        }
    }
    for (int k = 0; k < NPROC * EACH; k++) CHECK_OK(weft_sem_release(&s->items, 1));
    for (int i = 0; i < NPROC; i++) CHECK_OK(weft_sem_acquire(&s->done, 30));
    reap(pids, NPROC);
    for (int i = 0; i < NPROC; i++) CHECK_EQ_INT(s->got[i], EACH);
    CHECK_EQ_INT(weft_sem_value(&s->items), 0);
    CHECK_OK(weft_sem_fini(&s->items));
    CHECK_OK(weft_sem_fini(&s->done));
    munmap(s, sizeof *s);
}

enum {
    BAR_PROCS = 4,
    BAR_CYCLES = 20
};

struct shm_barrier {
    weft_barrier b;
    int actions;                      /* run by the last party, under the barrier */
    int index[BAR_CYCLES][BAR_PROCS]; /* the index each party got per cycle */
    int actions_seen[BAR_CYCLES][BAR_PROCS];
};

static struct shm_barrier *g_shm_barrier;

static int shm_barrier_action(void *arg)
{
    struct shm_barrier *s = arg;
    s->actions++;
    return 0;
}

TEST(pshared_barrier_across_processes)
{
    struct shm_barrier *s = shm_alloc(sizeof *s);
    REQUIRE(s);
    g_shm_barrier = s;
    REQUIRE_OK(weft_barrier_init(&s->b, BAR_PROCS, shm_barrier_action, s, WEFT_SYNC_PSHARED));
    pid_t pids[BAR_PROCS - 1];
    for (int i = 0; i < BAR_PROCS - 1; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            for (int c = 0; c < BAR_CYCLES; c++) {
                int r = weft_barrier_wait(&s->b, 30);
                if (r < 0) _exit(2);
                s->index[c][i] = r;
                s->actions_seen[c][i] = s->actions;
            }
            _exit(0);
        }
    }
    int me = BAR_PROCS - 1;
    for (int c = 0; c < BAR_CYCLES; c++) {
        int r = weft_barrier_wait(&s->b, 30);
        CHECK_MSG(r >= 0, "cycle %d: %d %s", c, r, weft_strerror(r));
        s->index[c][me] = r;
        s->actions_seen[c][me] = s->actions;
    }
    reap(pids, BAR_PROCS - 1);
    CHECK_EQ_INT(s->actions, BAR_CYCLES);
    for (int c = 0; c < BAR_CYCLES; c++) {
        int seen = 0;
        for (int p = 0; p < BAR_PROCS; p++) {
            int r = s->index[c][p];
            CHECK_MSG(r >= 0 && r < BAR_PROCS, "cycle %d party %d index %d", c, p, r);
            if (r >= 0 && r < BAR_PROCS) seen |= 1 << r;
            /* every party leaves a cycle after its action ran */
            CHECK_MSG(s->actions_seen[c][p] >= c + 1, "cycle %d party %d saw %d actions", c, p,
                      s->actions_seen[c][p]);
        }
        CHECK_MSG(seen == (1 << BAR_PROCS) - 1, "cycle %d: indices not distinct (mask %x)", c,
                  seen);
    }
    CHECK_OK(weft_barrier_fini(&s->b));
    munmap(s, sizeof *s);
}

struct shm_event {
    weft_event ev;
    weft_lock lock;
    weft_cond cond;
    int ready; /* under lock */
    weft_rlock rlock;
};

TEST(pshared_event_cond_rlock_across_processes)
{
    struct shm_event *s = shm_alloc(sizeof *s);
    REQUIRE(s);
    REQUIRE_OK(weft_event_init(&s->ev, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_lock_init(&s->lock, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_cond_init(&s->cond, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_rlock_init(&s->rlock, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_rlock_acquire(&s->rlock, 0));
    REQUIRE_OK(weft_rlock_acquire(&s->rlock, 0));
    pid_t pids[2];
    /* child 0 waits for the event; child 1 waits on the cond for `ready` */
    pids[0] = fork();
    REQUIRE(pids[0] >= 0);
    if (pids[0] == 0) _exit(weft_event_wait(&s->ev, 30) == 0 ? 0 : 2);
    pids[1] = fork();
    REQUIRE(pids[1] >= 0);
    if (pids[1] == 0) {
        if (weft_lock_acquire(&s->lock, 30)) _exit(2);
        while (!s->ready)
            if (weft_cond_wait(&s->cond, &s->lock, 30) == WEFT_ETIMEDOUT) _exit(3);
        if (weft_lock_release(&s->lock)) _exit(4);
        /* the parent holds the rlock: a non-owner release is refused */
        if (weft_rlock_release(&s->rlock) != WEFT_EPERM) _exit(5);
        _exit(0);
    }
    check_sleep(0.05);
    CHECK_OK(weft_event_set(&s->ev));
    CHECK_OK(weft_lock_acquire(&s->lock, 30));
    s->ready = 1;
    CHECK_OK(weft_cond_notify_all(&s->cond));
    CHECK_OK(weft_lock_release(&s->lock));
    reap(pids, 2);
    CHECK_EQ_INT(weft_rlock_count(&s->rlock), 2);
    CHECK_OK(weft_rlock_release(&s->rlock));
    CHECK_OK(weft_rlock_release(&s->rlock));
    CHECK_OK(weft_event_fini(&s->ev));
    CHECK_OK(weft_cond_fini(&s->cond));
    CHECK_OK(weft_lock_fini(&s->lock));
    CHECK_OK(weft_rlock_fini(&s->rlock));
    munmap(s, sizeof *s);
}

/* ------------------------------------------------------------------------
 * Lock
 * ------------------------------------------------------------------------ */

static weft_lock g_lock;
static atomic_int g_rc, g_flag;

static void *try_lock_thread(void *arg)
{
    (void)arg;
    atomic_store(&g_rc, weft_lock_acquire(&g_lock, 0));
    return NULL;
}

static void *release_lock_thread(void *arg)
{
    (void)arg;
    atomic_store(&g_rc, weft_lock_release(&g_lock));
    return NULL;
}

static void *lock_waiter_thread(void *arg)
{
    double timeout = *(double *)arg;
    int rc = weft_lock_acquire(&g_lock, timeout);
    atomic_store(&g_flag, 1);
    if (rc == 0) weft_lock_release(&g_lock);
    atomic_store(&g_rc, rc);
    return NULL;
}

TEST(lock_acquire_release_try)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    CHECK(!weft_lock_locked(&g_lock));
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    CHECK(weft_lock_locked(&g_lock));
    thr t;
    thr_start(&t, try_lock_thread, NULL); /* try from another thread fails */
    thr_join(&t);
    CHECK_RC(atomic_load(&g_rc), WEFT_ETIMEDOUT);
    CHECK_OK(weft_lock_release(&g_lock));
    CHECK(!weft_lock_locked(&g_lock));
    CHECK_OK(weft_lock_acquire(&g_lock, 0)); /* try on a free lock succeeds */
    CHECK_OK(weft_lock_release(&g_lock));
    CHECK_OK(weft_lock_fini(&g_lock));
}

TEST(lock_acquire_timeout)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    double timeout = 0.1;
    atomic_store(&g_flag, 0);
    thr t;
    double t0 = check_now();
    thr_start(&t, lock_waiter_thread, &timeout);
    thr_join(&t);
    double dt = check_now() - t0;
    CHECK_RC(atomic_load(&g_rc), WEFT_ETIMEDOUT);
    CHECK_MSG(dt >= 0.095, "timed out after %.3f s, before 0.1 s", dt);
    /* a waiter with a long timeout gets the lock when it is released */
    timeout = 10;
    atomic_store(&g_flag, 0);
    thr_start(&t, lock_waiter_thread, &timeout);
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&g_flag), 0);
    CHECK_OK(weft_lock_release(&g_lock));
    thr_join(&t);
    CHECK_OK(atomic_load(&g_rc));
    CHECK_OK(weft_lock_fini(&g_lock));
}

TEST(lock_release_by_non_owner_is_eperm)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    CHECK_ERR(weft_lock_release(&g_lock), WEFT_EPERM); /* not held */
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    thr t;
    thr_start(&t, release_lock_thread, NULL);
    thr_join(&t);
    CHECK_RC(atomic_load(&g_rc), WEFT_EPERM);
    CHECK(weft_lock_locked(&g_lock)); /* unchanged */
    CHECK_ERR(weft_lock_acquire(&g_lock, 1), WEFT_EDEADLK);
    CHECK_ERR(weft_lock_fini(&g_lock), WEFT_EBUSY);
    CHECK_OK(weft_lock_release(&g_lock));
    CHECK_ERR(weft_lock_release(&g_lock), WEFT_EPERM);
    CHECK_OK(weft_lock_fini(&g_lock));
}

struct count_arg {
    weft_lock *lock;
    long *counter;
    long n;
};

static void *count_thread(void *p)
{
    struct count_arg *a = p;
    for (long i = 0; i < a->n; i++) {
        if (weft_lock_acquire(a->lock, WEFT_FOREVER) != 0) {
            CHECK(0);
            return NULL;
        }
        (*a->counter)++;
        CHECK_OK(weft_lock_release(a->lock));
    }
    return NULL;
}

TEST(lock_mutual_exclusion_threads)
{
    weft_lock l;
    REQUIRE_OK(weft_lock_init(&l, 0));
    long counter = 0;
    enum {
        T = 4
    };
    struct count_arg a = {&l, &counter, (long)check_scaled(20000, 1000)};
    thr t[T];
    for (int i = 0; i < T; i++) thr_start(&t[i], count_thread, &a);
    for (int i = 0; i < T; i++) thr_join(&t[i]);
    CHECK_EQ_INT(counter, T * a.n);
    CHECK_OK(weft_lock_fini(&l));
}

/* ------------------------------------------------------------------------
 * RLock
 * ------------------------------------------------------------------------ */

static weft_rlock g_rlock;

static void *rlock_try_thread(void *arg)
{
    (void)arg;
    atomic_store(&g_rc, weft_rlock_acquire(&g_rlock, 0));
    return NULL;
}

static void *rlock_release_thread(void *arg)
{
    (void)arg;
    atomic_store(&g_rc, weft_rlock_release(&g_rlock));
    atomic_store(&g_flag, (int)weft_rlock_count(&g_rlock));
    return NULL;
}

TEST(rlock_reentrant)
{
    REQUIRE_OK(weft_rlock_init(&g_rlock, 0));
    CHECK_EQ_INT(weft_rlock_count(&g_rlock), 0);
    for (int i = 1; i <= 3; i++) {
        CHECK_OK(weft_rlock_acquire(&g_rlock, i == 2 ? 0 : WEFT_FOREVER));
        CHECK_EQ_INT(weft_rlock_count(&g_rlock), i);
    }
    thr t;
    thr_start(&t, rlock_try_thread, NULL);
    thr_join(&t);
    CHECK_RC(atomic_load(&g_rc), WEFT_ETIMEDOUT);
    CHECK_ERR(weft_rlock_fini(&g_rlock), WEFT_EBUSY);
    CHECK_OK(weft_rlock_release(&g_rlock));
    CHECK_OK(weft_rlock_release(&g_rlock));
    thr_start(&t, rlock_try_thread, NULL); /* still held once */
    thr_join(&t);
    CHECK_RC(atomic_load(&g_rc), WEFT_ETIMEDOUT);
    CHECK_OK(weft_rlock_release(&g_rlock));
    CHECK_EQ_INT(weft_rlock_count(&g_rlock), 0);
    CHECK_ERR(weft_rlock_release(&g_rlock), WEFT_EPERM); /* released more than acquired */
    thr_start(&t, rlock_try_thread, NULL);               /* now free: the thread takes it */
    thr_join(&t);
    CHECK_OK(atomic_load(&g_rc));
    /* held (once) by the exited thread: nobody else may release it */
    CHECK_ERR(weft_rlock_release(&g_rlock), WEFT_EPERM);
    CHECK_ERR(weft_rlock_acquire(&g_rlock, 0.01), WEFT_ETIMEDOUT);
}

TEST(rlock_release_by_non_owner_is_eperm)
{
    REQUIRE_OK(weft_rlock_init(&g_rlock, 0));
    CHECK_OK(weft_rlock_acquire(&g_rlock, WEFT_FOREVER));
    CHECK_OK(weft_rlock_acquire(&g_rlock, WEFT_FOREVER));
    atomic_store(&g_flag, -1);
    thr t;
    thr_start(&t, rlock_release_thread, NULL);
    thr_join(&t);
    CHECK_RC(atomic_load(&g_rc), WEFT_EPERM);
    CHECK_EQ_INT(atomic_load(&g_flag), 0);       /* the other thread holds it 0 times */
    CHECK_EQ_INT(weft_rlock_count(&g_rlock), 2); /* no corruption */
    CHECK_OK(weft_rlock_release(&g_rlock));
    CHECK_OK(weft_rlock_release(&g_rlock));
    CHECK_OK(weft_rlock_fini(&g_rlock));
}

/* ------------------------------------------------------------------------
 * Semaphore
 * ------------------------------------------------------------------------ */

static weft_sem g_sem;

static void *sem_acquire_thread(void *arg)
{
    double timeout = *(double *)arg;
    atomic_store(&g_rc, weft_sem_acquire(&g_sem, timeout));
    atomic_store(&g_flag, 1);
    return NULL;
}

TEST(sem_counting)
{
    REQUIRE_OK(weft_sem_init(&g_sem, 2, 0));
    CHECK_EQ_INT(weft_sem_value(&g_sem), 2);
    CHECK_OK(weft_sem_acquire(&g_sem, WEFT_FOREVER));
    CHECK_OK(weft_sem_acquire(&g_sem, 0));
    CHECK_RC(weft_sem_acquire(&g_sem, 0), WEFT_ETIMEDOUT);
    double t0 = check_now();
    CHECK_RC(weft_sem_acquire(&g_sem, 0.05), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.045);
    /* a blocked acquirer is woken by a release from another thread */
    double timeout = 10;
    atomic_store(&g_flag, 0);
    thr t;
    thr_start(&t, sem_acquire_thread, &timeout);
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&g_flag), 0);
    CHECK_OK(weft_sem_release(&g_sem, 1));
    thr_join(&t);
    CHECK_OK(atomic_load(&g_rc));
    CHECK_EQ_INT(weft_sem_value(&g_sem), 0);
    CHECK_OK(weft_sem_release(&g_sem, 5)); /* unbounded: may exceed the initial value */
    CHECK_EQ_INT(weft_sem_value(&g_sem), 5);
    CHECK_ERR(weft_sem_release(&g_sem, INT32_MAX), WEFT_EOVERFLOW);
    CHECK_OK(weft_sem_fini(&g_sem));
}

TEST(sem_bounded_over_release)
{
    REQUIRE_OK(weft_sem_init(&g_sem, 2, WEFT_SEM_BOUNDED));
    CHECK_ERR(weft_sem_release(&g_sem, 1), WEFT_EOVERFLOW); /* BoundedSemaphore: ValueError */
    CHECK_EQ_INT(weft_sem_value(&g_sem), 2);
    CHECK_OK(weft_sem_acquire(&g_sem, 0));
    CHECK_ERR(weft_sem_release(&g_sem, 2), WEFT_EOVERFLOW);
    CHECK_EQ_INT(weft_sem_value(&g_sem), 1); /* unchanged */
    CHECK_OK(weft_sem_release(&g_sem, 1));
    CHECK_EQ_INT(weft_sem_value(&g_sem), 2);
    CHECK_OK(weft_sem_fini(&g_sem));
    /* a bounded semaphore of 0 can never be released */
    REQUIRE_OK(weft_sem_init(&g_sem, 0, WEFT_SEM_BOUNDED));
    CHECK_ERR(weft_sem_release(&g_sem, 1), WEFT_EOVERFLOW);
    CHECK_OK(weft_sem_fini(&g_sem));
}

/* ------------------------------------------------------------------------
 * Event
 * ------------------------------------------------------------------------ */

static weft_event g_ev;

static void *event_wait_thread(void *arg)
{
    double timeout = *(double *)arg;
    atomic_fetch_add(&g_flag, 1);
    int rc = weft_event_wait(&g_ev, timeout);
    if (rc != 0) atomic_store(&g_rc, rc);
    return NULL;
}

TEST(event_wait_timeout_is_false)
{
    REQUIRE_OK(weft_event_init(&g_ev, 0));
    CHECK(!weft_event_is_set(&g_ev));
    CHECK_RC(weft_event_wait(&g_ev, 0), WEFT_ETIMEDOUT);
    double t0 = check_now();
    CHECK_RC(weft_event_wait(&g_ev, 0.1), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK_MSG(dt >= 0.095 && dt < 5, "waited %.3f s for a 0.1 s timeout", dt);
    CHECK_OK(weft_event_set(&g_ev));
    CHECK(weft_event_is_set(&g_ev));
    CHECK_OK(weft_event_wait(&g_ev, 0));
    CHECK_OK(weft_event_wait(&g_ev, WEFT_FOREVER));
    CHECK_OK(weft_event_set(&g_ev)); /* setting twice is fine */
    CHECK_OK(weft_event_clear(&g_ev));
    CHECK(!weft_event_is_set(&g_ev));
    CHECK_RC(weft_event_wait(&g_ev, 0.01), WEFT_ETIMEDOUT);
    CHECK_OK(weft_event_fini(&g_ev));
}

TEST(event_set_wakes_all_waiters)
{
    REQUIRE_OK(weft_event_init(&g_ev, 0));
    enum {
        T = 4
    };
    thr t[T];
    double timeout = 10;
    atomic_store(&g_flag, 0);
    atomic_store(&g_rc, 0);
    for (int i = 0; i < T; i++) thr_start(&t[i], event_wait_thread, &timeout);
    CHECK(check_wait_atomic(&g_flag, T, 10));
    check_sleep(0.05);
    /* set then clear at once: every waiter woken by the set still returns 0 */
    CHECK_OK(weft_event_set(&g_ev));
    CHECK_OK(weft_event_clear(&g_ev));
    for (int i = 0; i < T; i++) thr_join(&t[i]);
    CHECK_OK(atomic_load(&g_rc));
    CHECK_OK(weft_event_fini(&g_ev));
}

/* ------------------------------------------------------------------------
 * Condition
 * ------------------------------------------------------------------------ */

static weft_cond g_cond;
static int g_ready; /* under g_lock */
static atomic_int g_woken;

static void *cond_wait_thread(void *arg)
{
    (void)arg;
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    atomic_fetch_add(&g_flag, 1);
    int rc = 0;
    while (g_ready == 0 && rc == 0) rc = weft_cond_wait(&g_cond, &g_lock, 10);
    CHECK_OK(rc);
    CHECK(g_ready > 0);
    g_ready--; /* consume one */
    atomic_fetch_add(&g_woken, 1);
    CHECK_OK(weft_lock_release(&g_lock));
    return NULL;
}

TEST(cond_wait_timeout_keeps_lock)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    REQUIRE_OK(weft_cond_init(&g_cond, 0));
    CHECK_ERR(weft_cond_wait(&g_cond, &g_lock, 0.01), WEFT_EPERM); /* lock not held */
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    double t0 = check_now();
    CHECK_RC(weft_cond_wait(&g_cond, &g_lock, 0.1), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.095);
    CHECK(weft_lock_locked(&g_lock)); /* held again after the timeout */
    CHECK_RC(weft_cond_wait(&g_cond, &g_lock, 0), WEFT_ETIMEDOUT);
    CHECK_OK(weft_cond_notify(&g_cond, 1)); /* nobody waits: a no-op */
    CHECK_OK(weft_lock_release(&g_lock));
    CHECK_OK(weft_cond_fini(&g_cond));
    CHECK_OK(weft_lock_fini(&g_lock));
}

TEST(cond_notify_one_then_all)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    REQUIRE_OK(weft_cond_init(&g_cond, 0));
    g_ready = 0;
    atomic_store(&g_flag, 0);
    atomic_store(&g_woken, 0);
    enum {
        T = 3
    };
    thr t[T];
    for (int i = 0; i < T; i++) thr_start(&t[i], cond_wait_thread, NULL);
    CHECK(check_wait_atomic(&g_flag, T, 10));
    check_sleep(0.05); /* all asleep in weft_cond_wait */
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    g_ready = 1;
    CHECK_OK(weft_cond_notify(&g_cond, 1));
    CHECK_OK(weft_lock_release(&g_lock));
    CHECK(check_wait_atomic(&g_woken, 1, 10));
    check_sleep(0.05);
    CHECK_EQ_INT(atomic_load(&g_woken), 1);
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    g_ready = T - 1;
    CHECK_OK(weft_cond_notify_all(&g_cond));
    CHECK_OK(weft_lock_release(&g_lock));
    for (int i = 0; i < T; i++) thr_join(&t[i]);
    CHECK_EQ_INT(atomic_load(&g_woken), T);
    CHECK_EQ_INT(g_ready, 0);
    CHECK_OK(weft_cond_fini(&g_cond));
    CHECK_OK(weft_lock_fini(&g_lock));
}

/* ---- conditions over an rlock, wait_for (issue 11, control 17) ---------- */

static weft_rlock r_lock;
static weft_cond r_cond;
static atomic_int r_stage;

/* Takes r_lock while the main thread waits on r_cond holding it 3 times:
 * possible only because the wait released every level. */
static void *rlock_taker(void *arg)
{
    (void)arg;
    CHECK(check_wait_atomic(&r_stage, 1, 10));
    CHECK_OK(weft_rlock_acquire(&r_lock, 10));
    CHECK_EQ_INT(weft_rlock_count(&r_lock), 1);
    atomic_store(&r_stage, 2);
    CHECK_OK(weft_cond_notify(&r_cond, 1));
    CHECK_OK(weft_rlock_release(&r_lock));
    return NULL;
}

TEST(cond_wait_rlock_releases_every_level_and_restores_the_count)
{
    REQUIRE_OK(weft_rlock_init(&r_lock, 0));
    REQUIRE_OK(weft_cond_init(&r_cond, 0));
    atomic_store(&r_stage, 0);
    CHECK_ERR(weft_cond_wait_rlock(&r_cond, &r_lock, 0), WEFT_EPERM); /* not held */
    for (int i = 0; i < 3; i++) CHECK_OK(weft_rlock_acquire(&r_lock, 0));
    thr t;
    thr_start(&t, rlock_taker, NULL);
    atomic_store(&r_stage, 1);
    int rc = 0;
    while (atomic_load(&r_stage) != 2 && rc == 0) rc = weft_cond_wait_rlock(&r_cond, &r_lock, 10);
    CHECK_OK(rc);
    CHECK_EQ_INT(weft_rlock_count(&r_lock), 3); /* restored */
    thr_join(&t);
    /* a timeout restores the count too */
    double t0 = check_now();
    CHECK_RC(weft_cond_wait_rlock(&r_cond, &r_lock, 0.05), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.045);
    CHECK_EQ_INT(weft_rlock_count(&r_lock), 3);
    CHECK_RC(weft_cond_wait_rlock(&r_cond, &r_lock, 0), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(weft_rlock_count(&r_lock), 3);
    for (int i = 0; i < 3; i++) CHECK_OK(weft_rlock_release(&r_lock));
    CHECK_ERR(weft_rlock_release(&r_lock), WEFT_EPERM); /* exactly 3 levels */
    CHECK_OK(weft_cond_fini(&r_cond));
    CHECK_OK(weft_rlock_fini(&r_lock));
}

/* A bounded buffer (Python's classic Condition example) over one rlock
 * and two conditions; producers and consumers hold the rlock twice (an
 * outer call and an inner helper that takes it again) when they wait. */
enum {
    BB_CAP = 4,
    BB_PRODUCERS = 3,
    BB_CONSUMERS = 3,
    BB_ITEMS = 3000
};

static struct {
    weft_rlock lock;
    weft_cond not_empty, not_full;
    long buf[BB_CAP];
    int n, head;
    long sum_out;
    int got;
    atomic_long sum_in;
} BB;

static bool bb_has_room(void *arg)
{
    (void)arg;
    CHECK_EQ_INT(weft_rlock_count(&BB.lock), 2); /* the predicate runs under the lock */
    return BB.n < BB_CAP;
}

static bool bb_has_item_or_done(void *arg)
{
    (void)arg;
    return BB.n > 0 || BB.got == BB_PRODUCERS * BB_ITEMS;
}

static void bb_put_inner(long v)
{
    CHECK_OK(weft_rlock_acquire(&BB.lock, WEFT_FOREVER)); /* the second level */
    CHECK_OK(weft_cond_wait_for_rlock(&BB.not_full, &BB.lock, bb_has_room, NULL, 30));
    CHECK_EQ_INT(weft_rlock_count(&BB.lock), 2);
    BB.buf[(BB.head + BB.n) % BB_CAP] = v;
    BB.n++;
    CHECK_OK(weft_cond_notify(&BB.not_empty, 1));
    CHECK_OK(weft_rlock_release(&BB.lock));
}

static void *bb_producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long i = 0; i < BB_ITEMS; i++) {
        long v = id * 1000000 + i;
        CHECK_OK(weft_rlock_acquire(&BB.lock, WEFT_FOREVER));
        bb_put_inner(v);
        CHECK_EQ_INT(weft_rlock_count(&BB.lock), 1);
        CHECK_OK(weft_rlock_release(&BB.lock));
        atomic_fetch_add(&BB.sum_in, v);
    }
    return NULL;
}

static void *bb_consumer(void *arg)
{
    (void)arg;
    for (;;) {
        CHECK_OK(weft_rlock_acquire(&BB.lock, WEFT_FOREVER));
        CHECK_OK(weft_rlock_acquire(&BB.lock, WEFT_FOREVER));
        /* plain wait in a loop, as Python's docs write it */
        int rc = 0;
        while (!bb_has_item_or_done(NULL) && rc == 0)
            rc = weft_cond_wait_rlock(&BB.not_empty, &BB.lock, 30);
        CHECK_OK(rc);
        CHECK_EQ_INT(weft_rlock_count(&BB.lock), 2);
        bool done = BB.n == 0;
        if (!done) {
            BB.sum_out += BB.buf[BB.head];
            BB.head = (BB.head + 1) % BB_CAP;
            BB.n--;
            if (++BB.got == BB_PRODUCERS * BB_ITEMS) CHECK_OK(weft_cond_notify_all(&BB.not_empty));
            CHECK_OK(weft_cond_notify(&BB.not_full, 1));
        }
        CHECK_OK(weft_rlock_release(&BB.lock));
        CHECK_OK(weft_rlock_release(&BB.lock));
        if (done || rc) return NULL;
    }
}

TEST(cond_rlock_bounded_buffer_producers_consumers)
{
    memset(&BB, 0, sizeof BB);
    REQUIRE_OK(weft_rlock_init(&BB.lock, 0));
    REQUIRE_OK(weft_cond_init(&BB.not_empty, 0));
    REQUIRE_OK(weft_cond_init(&BB.not_full, 0));
    thr t[BB_PRODUCERS + BB_CONSUMERS];
    for (long i = 0; i < BB_PRODUCERS; i++) thr_start(&t[i], bb_producer, (void *)(intptr_t)i);
    for (int i = 0; i < BB_CONSUMERS; i++) thr_start(&t[BB_PRODUCERS + i], bb_consumer, NULL);
    for (int i = 0; i < BB_PRODUCERS + BB_CONSUMERS; i++) thr_join(&t[i]);
    CHECK_EQ_INT(BB.got, BB_PRODUCERS * BB_ITEMS);
    CHECK_EQ_INT(BB.n, 0);
    CHECK_EQ_INT(BB.sum_out, atomic_load(&BB.sum_in));
    CHECK_EQ_INT(weft_rlock_count(&BB.lock), 0);
    CHECK_OK(weft_cond_fini(&BB.not_empty));
    CHECK_OK(weft_cond_fini(&BB.not_full));
    CHECK_OK(weft_rlock_fini(&BB.lock));
}

static int wf_value; /* under g_lock */
static atomic_int wf_calls;

static bool wf_reached(void *arg)
{
    atomic_fetch_add(&wf_calls, 1);
    CHECK(weft_lock_locked(&g_lock));
    return wf_value >= *(int *)arg;
}

static bool wf_never(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wf_calls, 1);
    return false;
}

/* Bumps wf_value to 10, notifying all at every step. */
static void *wf_bumper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        check_sleep(0.002);
        CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
        wf_value++;
        CHECK_OK(weft_cond_notify_all(&g_cond));
        CHECK_OK(weft_lock_release(&g_lock));
    }
    return NULL;
}

TEST(cond_wait_for_predicate_and_timeouts)
{
    REQUIRE_OK(weft_lock_init(&g_lock, 0));
    REQUIRE_OK(weft_cond_init(&g_cond, 0));
    int want = 10;
    wf_value = 0;
    atomic_store(&wf_calls, 0);
    /* not held: EPERM before the predicate runs */
    CHECK_ERR(weft_cond_wait_for(&g_cond, &g_lock, wf_reached, &want, 1), WEFT_EPERM);
    CHECK_EQ_INT(atomic_load(&wf_calls), 0);
    CHECK_OK(weft_lock_acquire(&g_lock, WEFT_FOREVER));
    CHECK_ERR(weft_cond_wait_for(&g_cond, &g_lock, NULL, NULL, 1), WEFT_EINVAL);
    CHECK_ERR(weft_cond_wait_for(&g_cond, &g_lock, wf_reached, &want, -1), WEFT_EINVAL);
    /* true at once: no wait, one call */
    int zero = 0;
    CHECK_OK(weft_cond_wait_for(&g_cond, &g_lock, wf_reached, &zero, 0));
    CHECK_EQ_INT(atomic_load(&wf_calls), 1);
    /* timeout 0: one call, false -> ETIMEDOUT, lock still held */
    CHECK_RC(weft_cond_wait_for(&g_cond, &g_lock, wf_never, NULL, 0), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(atomic_load(&wf_calls), 2);
    CHECK(weft_lock_locked(&g_lock));
    /* a timeout with notifications that never make it true: the whole call
     * is bounded, and the predicate ran once more after the last wait */
    atomic_store(&wf_calls, 0);
    thr t;
    thr_start(&t, wf_bumper, NULL);
    double t0 = check_now();
    CHECK_RC(weft_cond_wait_for(&g_cond, &g_lock, wf_never, NULL, 0.2), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK_MSG(dt >= 0.195 && dt < 10, "wait_for took %.3f s", dt);
    CHECK(atomic_load(&wf_calls) >= 2);
    CHECK(weft_lock_locked(&g_lock));
    thr_join(&t);
    CHECK_EQ_INT(wf_value, 10);
    /* many notifications, true only at the 10th: returns 0 once it holds */
    wf_value = 0;
    atomic_store(&wf_calls, 0);
    thr_start(&t, wf_bumper, NULL);
    CHECK_OK(weft_cond_wait_for(&g_cond, &g_lock, wf_reached, &want, 30));
    CHECK_EQ_INT(wf_value, 10);
    CHECK(atomic_load(&wf_calls) >= 2);
    CHECK_OK(weft_lock_release(&g_lock));
    thr_join(&t);
    /* over an rlock held twice */
    weft_rlock rl;
    REQUIRE_OK(weft_rlock_init(&rl, 0));
    CHECK_ERR(weft_cond_wait_for_rlock(&g_cond, &rl, wf_never, NULL, 0), WEFT_EPERM);
    CHECK_OK(weft_rlock_acquire(&rl, 0));
    CHECK_OK(weft_rlock_acquire(&rl, 0));
    CHECK_RC(weft_cond_wait_for_rlock(&g_cond, &rl, wf_never, NULL, 0.02), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(weft_rlock_count(&rl), 2);
    CHECK_ERR(weft_cond_wait_for_rlock(&g_cond, &rl, NULL, NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_wait_for_rlock(&g_cond, NULL, wf_never, NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_wait_rlock(NULL, &rl, 0), WEFT_EINVAL);
    CHECK_OK(weft_rlock_release(&rl));
    CHECK_OK(weft_rlock_release(&rl));
    CHECK_OK(weft_rlock_fini(&rl));
    CHECK_OK(weft_cond_fini(&g_cond));
    CHECK_OK(weft_lock_fini(&g_lock));
}

/* ---- async-signal safety (issue 11, defect 13) --------------------------- */

static weft_sem sig_sem, sig_bounded;
static weft_event sig_event;
static atomic_int sig_handled, sig_bad;

/* Calls the documented async-signal-safe functions and checks that errno
 * survives them (a handler must not change the interrupted code's errno). */
static void sig_handler(int sig)
{
    (void)sig;
    int saved = errno;
    errno = 4242;
    if (weft_sem_release(&sig_sem, 1) != 0) atomic_fetch_add(&sig_bad, 1);
    /* at its bound unless the interrupted thread holds it: undo a success */
    int rc = weft_sem_release(&sig_bounded, 1);
    if (rc == 0 ? weft_sem_acquire(&sig_bounded, 0) != 0 : rc != WEFT_EOVERFLOW)
        atomic_fetch_add(&sig_bad, 1);
    if (weft_event_set(&sig_event) != 0) atomic_fetch_add(&sig_bad, 1);
    if (weft_sem_value(&sig_sem) < 0) atomic_fetch_add(&sig_bad, 1);
    if (errno != 4242) atomic_fetch_add(&sig_bad, 1);
    errno = saved;
    atomic_fetch_add(&sig_handled, 1);
}

static atomic_int sig_stop;

/* The signalled thread: busy inside the library on the same objects when
 * the signal lands (acquire and release race the handler's release). */
static void *sig_target(void *arg)
{
    (void)arg;
    while (!atomic_load(&sig_stop)) {
        if (weft_sem_release(&sig_bounded, 1) == 0) CHECK_OK(weft_sem_acquire(&sig_bounded, 0));
        (void)weft_event_is_set(&sig_event);
    }
    return NULL;
}

static void *sig_event_waiter(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        CHECK_OK(weft_event_wait(&sig_event, 30));
        CHECK_OK(weft_event_clear(&sig_event));
    }
    return NULL;
}

TEST(signal_handler_releases_sem_and_sets_event)
{
    int n = CHECK_TSAN ? 300 : 2000;
    REQUIRE_OK(weft_sem_init(&sig_sem, 0, 0));
    REQUIRE_OK(weft_sem_init(&sig_bounded, 1, WEFT_SEM_BOUNDED));
    REQUIRE_OK(weft_event_init(&sig_event, 0));
    atomic_store(&sig_handled, 0);
    atomic_store(&sig_bad, 0);
    atomic_store(&sig_stop, 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
    thr target, ev;
    thr_start(&target, sig_target, NULL);
    thr_start(&ev, sig_event_waiter, &(int){1});
    /* one signal at a time (signals of one kind do not queue), each to the
     * busy thread; this thread waits on the semaphore for each */
    for (int i = 0; i < n; i++) {
        REQUIRE(pthread_kill(target.th, SIGUSR1) == 0);
        int rc = weft_sem_acquire(&sig_sem, 30);
        CHECK_OK(rc);
        if (rc) break;
    }
    thr_join(&ev); /* its event was set by a handler */
    atomic_store(&sig_stop, 1);
    thr_join(&target);
    REQUIRE(sigaction(SIGUSR1, &old, NULL) == 0);
    CHECK_EQ_INT(atomic_load(&sig_handled), n);
    CHECK_EQ_INT(atomic_load(&sig_bad), 0);
    CHECK_EQ_INT(weft_sem_value(&sig_sem), 0);
    /* the error path a handler may take writes a fixed message */
    while (weft_sem_value(&sig_bounded) < 1) CHECK_OK(weft_sem_release(&sig_bounded, 1));
    CHECK_ERR(weft_sem_release(&sig_bounded, 1), WEFT_EOVERFLOW);
    CHECK(strstr(weft_last_error(), "bound") != NULL);
    CHECK_OK(weft_sem_fini(&sig_sem));
    CHECK_OK(weft_sem_fini(&sig_bounded));
    CHECK_OK(weft_event_fini(&sig_event));
}

/* ------------------------------------------------------------------------
 * Barrier
 * ------------------------------------------------------------------------ */

static weft_barrier g_bar;
static atomic_int g_actions, g_action_fail;
static atomic_int g_idx_mask[64];
static atomic_int g_results[8];

static int count_action(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_actions, 1);
    return atomic_load(&g_action_fail);
}

struct bar_arg {
    int id, cycles;
    double timeout;
};

static void *barrier_thread(void *p)
{
    struct bar_arg *a = p;
    for (int c = 0; c < a->cycles; c++) {
        int r = weft_barrier_wait(&g_bar, a->timeout);
        atomic_store(&g_results[a->id], r);
        if (r < 0) return NULL;
        atomic_fetch_or(&g_idx_mask[c % 64], 1 << r);
    }
    return NULL;
}

TEST(barrier_cycles_indices_action)
{
    enum {
        P = 3,
        C = 50
    };
    atomic_store(&g_actions, 0);
    atomic_store(&g_action_fail, 0);
    for (int i = 0; i < 64; i++) atomic_store(&g_idx_mask[i], 0);
    REQUIRE_OK(weft_barrier_init(&g_bar, P, count_action, NULL, 0));
    CHECK_EQ_INT(weft_barrier_parties(&g_bar), P);
    struct bar_arg a[P];
    thr t[P];
    for (int i = 0; i < P; i++) {
        a[i] = (struct bar_arg){i, C, 30};
        thr_start(&t[i], barrier_thread, &a[i]);
    }
    for (int i = 0; i < P; i++) thr_join(&t[i]);
    for (int i = 0; i < P; i++) CHECK(atomic_load(&g_results[i]) >= 0);
    CHECK_EQ_INT(atomic_load(&g_actions), C); /* exactly one action per cycle */
    for (int c = 0; c < C; c++)
        CHECK_MSG(atomic_load(&g_idx_mask[c]) == (1 << P) - 1, "cycle %d mask %x", c,
                  atomic_load(&g_idx_mask[c]));
    CHECK(!weft_barrier_broken(&g_bar));
    CHECK_EQ_INT(weft_barrier_n_waiting(&g_bar), 0);
    CHECK_OK(weft_barrier_fini(&g_bar));
    /* one party: returns index 0 at once and runs the action */
    REQUIRE_OK(weft_barrier_init(&g_bar, 1, count_action, NULL, 0));
    CHECK_EQ_INT(weft_barrier_wait(&g_bar, 0), 0);
    CHECK_EQ_INT(atomic_load(&g_actions), C + 1);
    CHECK_OK(weft_barrier_fini(&g_bar));
}

TEST(barrier_timeout_breaks_it)
{
    REQUIRE_OK(weft_barrier_init(&g_bar, 3, NULL, NULL, 0));
    struct bar_arg a = {0, 1, 30};
    thr t;
    thr_start(&t, barrier_thread, &a);
    while (weft_barrier_n_waiting(&g_bar) < 1) check_sleep(0.001);
    double t0 = check_now();
    CHECK_ERR(weft_barrier_wait(&g_bar, 0.1), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.095);
    thr_join(&t);
    CHECK_RC(atomic_load(&g_results[0]), WEFT_EBROKEN); /* the other waiter sees it broken */
    CHECK(weft_barrier_broken(&g_bar));
    CHECK_ERR(weft_barrier_wait(&g_bar, 1), WEFT_EBROKEN); /* stays broken */
    CHECK_OK(weft_barrier_reset(&g_bar));
    CHECK(!weft_barrier_broken(&g_bar));
    /* usable again after the reset */
    enum {
        P = 3
    };
    struct bar_arg b[P];
    thr ts[P];
    for (int i = 0; i < P; i++) {
        b[i] = (struct bar_arg){i, 3, 30};
        thr_start(&ts[i], barrier_thread, &b[i]);
    }
    for (int i = 0; i < P; i++) thr_join(&ts[i]);
    for (int i = 0; i < P; i++) CHECK(atomic_load(&g_results[i]) >= 0);
    CHECK_OK(weft_barrier_fini(&g_bar));
}

TEST(barrier_abort_and_reset_wake_waiters_broken)
{
    REQUIRE_OK(weft_barrier_init(&g_bar, 3, NULL, NULL, 0));
    struct bar_arg a[2] = {{0, 1, 30}, {1, 1, 30}};
    thr t[2];
    for (int i = 0; i < 2; i++) thr_start(&t[i], barrier_thread, &a[i]);
    while (weft_barrier_n_waiting(&g_bar) < 2) check_sleep(0.001);
    CHECK_OK(weft_barrier_abort(&g_bar));
    for (int i = 0; i < 2; i++) thr_join(&t[i]);
    for (int i = 0; i < 2; i++) CHECK_RC(atomic_load(&g_results[i]), WEFT_EBROKEN);
    CHECK(weft_barrier_broken(&g_bar));
    CHECK_ERR(weft_barrier_wait(&g_bar, 0), WEFT_EBROKEN);
    CHECK_OK(weft_barrier_reset(&g_bar));

    /* reset while parties wait: they get WEFT_EBROKEN, the barrier is fine */
    for (int i = 0; i < 2; i++) thr_start(&t[i], barrier_thread, &a[i]);
    while (weft_barrier_n_waiting(&g_bar) < 2) check_sleep(0.001);
    CHECK_OK(weft_barrier_reset(&g_bar));
    for (int i = 0; i < 2; i++) thr_join(&t[i]);
    for (int i = 0; i < 2; i++) CHECK_RC(atomic_load(&g_results[i]), WEFT_EBROKEN);
    CHECK(!weft_barrier_broken(&g_bar));
    CHECK_EQ_INT(weft_barrier_n_waiting(&g_bar), 0);
    struct bar_arg b[3] = {{0, 2, 30}, {1, 2, 30}, {2, 2, 30}};
    thr ts[3];
    for (int i = 0; i < 3; i++) thr_start(&ts[i], barrier_thread, &b[i]);
    for (int i = 0; i < 3; i++) thr_join(&ts[i]);
    for (int i = 0; i < 3; i++) CHECK(atomic_load(&g_results[i]) >= 0);
    CHECK_OK(weft_barrier_fini(&g_bar));
}

TEST(barrier_failing_action_breaks_it)
{
    atomic_store(&g_actions, 0);
    atomic_store(&g_action_fail, WEFT_EINVAL);
    REQUIRE_OK(weft_barrier_init(&g_bar, 3, count_action, NULL, 0));
    struct bar_arg a[3] = {{0, 1, 30}, {1, 1, 30}, {2, 1, 30}};
    thr t[3];
    for (int i = 0; i < 3; i++) thr_start(&t[i], barrier_thread, &a[i]);
    for (int i = 0; i < 3; i++) thr_join(&t[i]);
    int failed = 0, broken = 0;
    for (int i = 0; i < 3; i++) {
        int r = atomic_load(&g_results[i]);
        failed += r == WEFT_EINVAL;
        broken += r == WEFT_EBROKEN;
    }
    CHECK_EQ_INT(failed, 1); /* the party that ran the action gets its code */
    CHECK_EQ_INT(broken, 2);
    CHECK_EQ_INT(atomic_load(&g_actions), 1);
    CHECK(weft_barrier_broken(&g_bar));
    atomic_store(&g_action_fail, 0);
    CHECK_OK(weft_barrier_reset(&g_bar));
    CHECK_OK(weft_barrier_fini(&g_bar));
}

/* ------------------------------------------------------------------------
 * Timer
 * ------------------------------------------------------------------------ */

static atomic_int g_fired;
static double g_fired_at;
static _Atomic(weft_timer *) g_self_timer;

static void timer_fn(void *arg)
{
    (void)arg;
    g_fired_at = check_now();
    atomic_fetch_add(&g_fired, 1);
}

static void timer_self_destroy(void *arg)
{
    (void)arg;
    weft_timer *t;
    while (!(t = atomic_load(&g_self_timer))) check_sleep(0.001);
    atomic_store(&g_rc, weft_timer_destroy(t));
    atomic_store(&g_flag, weft_timer_wait(t, 0));
    atomic_fetch_add(&g_fired, 1);
}

TEST(timer_fires_after_delay)
{
    atomic_store(&g_fired, 0);
    weft_timer *t = NULL;
    double t0 = check_now();
    REQUIRE_OK(weft_timer_create(0.1, timer_fn, NULL, &t));
    CHECK(!weft_timer_fired(t));
    CHECK_OK(weft_timer_wait(t, 10));
    CHECK_EQ_INT(atomic_load(&g_fired), 1);
    CHECK(weft_timer_fired(t));
    CHECK_MSG(g_fired_at - t0 >= 0.095, "fired after %.3f s", g_fired_at - t0);
    CHECK_ERR(weft_timer_cancel(t), WEFT_EBUSY); /* cancel after firing is reported */
    CHECK_OK(weft_timer_destroy(t));
    CHECK_OK(weft_timer_destroy(NULL));
}

TEST(timer_cancel_before_fire)
{
    atomic_store(&g_fired, 0);
    weft_timer *t = NULL;
    REQUIRE_OK(weft_timer_create(0.2, timer_fn, NULL, &t));
    CHECK_RC(weft_timer_wait(t, 0.01), WEFT_ETIMEDOUT);
    CHECK_OK(weft_timer_cancel(t));
    CHECK_OK(weft_timer_cancel(t)); /* twice is fine */
    CHECK_OK(weft_timer_wait(t, 10));
    check_sleep(0.3);
    CHECK_EQ_INT(atomic_load(&g_fired), 0);
    CHECK(!weft_timer_fired(t));
    CHECK_OK(weft_timer_destroy(t));
    /* destroy cancels a pending timer */
    REQUIRE_OK(weft_timer_create(0.2, timer_fn, NULL, &t));
    CHECK_OK(weft_timer_destroy(t));
    check_sleep(0.3);
    CHECK_EQ_INT(atomic_load(&g_fired), 0);
    /* a zero delay fires at once */
    REQUIRE_OK(weft_timer_create(0, timer_fn, NULL, &t));
    CHECK_OK(weft_timer_wait(t, 10));
    CHECK_EQ_INT(atomic_load(&g_fired), 1);
    CHECK_OK(weft_timer_destroy(t));
}

TEST(timer_destroy_from_its_function_is_edeadlk)
{
    atomic_store(&g_fired, 0);
    atomic_store(&g_self_timer, NULL);
    weft_timer *t = NULL;
    REQUIRE_OK(weft_timer_create(0, timer_self_destroy, NULL, &t));
    atomic_store(&g_self_timer, t);
    CHECK_OK(weft_timer_wait(t, 10));
    CHECK_EQ_INT(atomic_load(&g_fired), 1);
    CHECK_RC(atomic_load(&g_rc), WEFT_EDEADLK);
    CHECK_RC(atomic_load(&g_flag), WEFT_EDEADLK);
    CHECK_OK(weft_timer_destroy(t));
}

/* ------------------------------------------------------------------------
 * Bad input
 * ------------------------------------------------------------------------ */

static int noop_action(void *arg)
{
    (void)arg;
    return 0;
}

static void noop_timer(void *arg)
{
    (void)arg;
}

TEST(bad_input_null_and_flags)
{
    CHECK_ERR(weft_lock_init(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_init(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_init(NULL, 0, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_init(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_event_init(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_init(NULL, 2, NULL, NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_lock_acquire(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_lock_release(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_acquire(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_release(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_sem_acquire(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_release(NULL, 1), WEFT_EINVAL);
    CHECK_ERR(weft_event_set(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_event_wait(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_notify(NULL, 1), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_wait(NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_lock_fini(NULL), WEFT_EINVAL);
    CHECK(!weft_lock_locked(NULL));
    CHECK(!weft_event_is_set(NULL));
    CHECK_EQ_INT(weft_sem_value(NULL), -1);
    CHECK_EQ_INT(weft_barrier_parties(NULL), -1);

    weft_lock l;
    weft_sem s;
    weft_event e;
    weft_cond c;
    weft_rlock r;
    weft_barrier b;
    CHECK_ERR(weft_lock_init(&l, 0x80), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_init(&r, 0x80), WEFT_EINVAL);
    CHECK_ERR(weft_lock_init(&l, WEFT_SEM_BOUNDED), WEFT_EINVAL); /* not a lock flag */
    CHECK_ERR(weft_sem_init(&s, 1, 0x80), WEFT_EINVAL);
    CHECK_ERR(weft_event_init(&e, 0x80), WEFT_EINVAL);
    CHECK_ERR(weft_cond_init(&c, 0x80), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_init(&b, 2, NULL, NULL, 0x80), WEFT_EINVAL);
    /* zero and negative parties, negative counts */
    CHECK_ERR(weft_barrier_init(&b, 0, NULL, NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_init(&b, -3, noop_action, NULL, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_init(&s, -1, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_init(&s, -1, WEFT_SEM_BOUNDED), WEFT_EINVAL);
    REQUIRE_OK(weft_sem_init(&s, 1, 0));
    CHECK_ERR(weft_sem_release(&s, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_release(&s, -2), WEFT_EINVAL);
    CHECK_OK(weft_sem_fini(&s));
    REQUIRE_OK(weft_cond_init(&c, 0));
    CHECK_ERR(weft_cond_notify(&c, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_wait(&c, NULL, 0), WEFT_EINVAL);
    CHECK_OK(weft_cond_fini(&c));
    /* timers */
    weft_timer *t = (weft_timer *)&l;
    CHECK_ERR(weft_timer_create(1, NULL, NULL, &t), WEFT_EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(weft_timer_create(1, noop_timer, NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_timer_create(-1, noop_timer, NULL, &t), WEFT_EINVAL);
    CHECK_ERR(weft_timer_create(NAN, noop_timer, NULL, &t), WEFT_EINVAL);
    CHECK_ERR(weft_timer_create(INFINITY, noop_timer, NULL, &t), WEFT_EINVAL);
    CHECK_ERR(weft_timer_cancel(NULL), WEFT_EINVAL);
    CHECK_ERR(weft_timer_wait(NULL, 0), WEFT_EINVAL);
}

TEST(bad_input_nan_and_negative_timeouts)
{
    weft_lock l;
    weft_rlock r;
    weft_sem s;
    weft_event e;
    weft_cond c;
    weft_barrier b;
    REQUIRE_OK(weft_lock_init(&l, 0));
    REQUIRE_OK(weft_rlock_init(&r, 0));
    REQUIRE_OK(weft_sem_init(&s, 1, 0));
    REQUIRE_OK(weft_event_init(&e, 0));
    REQUIRE_OK(weft_cond_init(&c, 0));
    REQUIRE_OK(weft_barrier_init(&b, 1, NULL, NULL, 0));
    const double bad[] = {NAN, -1.0, -INFINITY, -1e-9};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double to = bad[i];
        CHECK_ERR(weft_lock_acquire(&l, to), WEFT_EINVAL);
        CHECK_ERR(weft_rlock_acquire(&r, to), WEFT_EINVAL);
        CHECK_ERR(weft_sem_acquire(&s, to), WEFT_EINVAL);
        CHECK_ERR(weft_event_wait(&e, to), WEFT_EINVAL);
        CHECK_ERR(weft_barrier_wait(&b, to), WEFT_EINVAL);
        CHECK_OK(weft_lock_acquire(&l, 0));
        CHECK_ERR(weft_cond_wait(&c, &l, to), WEFT_EINVAL);
        CHECK_OK(weft_lock_release(&l));
        CHECK_OK(weft_rlock_acquire(&r, 0)); /* re-entry validates the timeout too */
        CHECK_ERR(weft_rlock_acquire(&r, to), WEFT_EINVAL);
        CHECK_EQ_INT(weft_rlock_count(&r), 1);
        CHECK_OK(weft_rlock_release(&r));
    }
    /* nothing was taken by a failed call */
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ_INT(weft_sem_value(&s), 1);
    CHECK_EQ_INT(weft_barrier_n_waiting(&b), 0);
    CHECK_ERR(weft_timer_wait(NULL, NAN), WEFT_EINVAL);
    CHECK_OK(weft_lock_fini(&l));
    CHECK_OK(weft_rlock_fini(&r));
    CHECK_OK(weft_sem_fini(&s));
    CHECK_OK(weft_event_fini(&e));
    CHECK_OK(weft_cond_fini(&c));
    CHECK_OK(weft_barrier_fini(&b));
}

TEST(uninitialised_and_finalised_objects_are_einval)
{
    weft_lock l;
    weft_rlock r;
    weft_sem s;
    weft_event e;
    weft_cond c;
    weft_barrier b;
    memset(&l, 0, sizeof l);
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    memset(&e, 0, sizeof e);
    memset(&c, 0, sizeof c);
    memset(&b, 0, sizeof b);
    CHECK_ERR(weft_lock_acquire(&l, 0), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_acquire(&r, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_acquire(&s, 0), WEFT_EINVAL);
    CHECK_ERR(weft_event_set(&e), WEFT_EINVAL);
    CHECK_ERR(weft_cond_notify_all(&c), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_wait(&b, 0), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_abort(&b), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_reset(&b), WEFT_EINVAL);

    REQUIRE_OK(weft_lock_init(&l, 0));
    REQUIRE_OK(weft_rlock_init(&r, WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_sem_init(&s, 0, WEFT_SEM_BOUNDED | WEFT_SYNC_PSHARED));
    REQUIRE_OK(weft_event_init(&e, 0));
    REQUIRE_OK(weft_cond_init(&c, 0));
    REQUIRE_OK(weft_barrier_init(&b, 2, NULL, NULL, 0));
    CHECK_OK(weft_lock_fini(&l));
    CHECK_OK(weft_rlock_fini(&r));
    CHECK_OK(weft_sem_fini(&s));
    CHECK_OK(weft_event_fini(&e));
    CHECK_OK(weft_cond_fini(&c));
    CHECK_OK(weft_barrier_fini(&b));
    CHECK_ERR(weft_lock_acquire(&l, 0), WEFT_EINVAL);
    CHECK_ERR(weft_lock_release(&l), WEFT_EINVAL);
    CHECK_ERR(weft_lock_fini(&l), WEFT_EINVAL);
    CHECK_ERR(weft_rlock_acquire(&r, 0), WEFT_EINVAL);
    CHECK_ERR(weft_sem_release(&s, 1), WEFT_EINVAL);
    CHECK_ERR(weft_event_wait(&e, 0), WEFT_EINVAL);
    CHECK_ERR(weft_cond_notify(&c, 1), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_wait(&b, 0), WEFT_EINVAL);
    CHECK_ERR(weft_barrier_fini(&b), WEFT_EINVAL);
    /* initialising again makes them usable */
    REQUIRE_OK(weft_lock_init(&l, 0));
    CHECK_OK(weft_lock_acquire(&l, 0));
    CHECK_OK(weft_lock_release(&l));
    CHECK_OK(weft_lock_fini(&l));
}

TEST(object_sizes_are_fixed)
{
    /* caller-storage types: their sizes are part of the ABI */
    CHECK_EQ_INT(sizeof(weft_lock), 16);
    CHECK_EQ_INT(sizeof(weft_rlock), 24);
    CHECK_EQ_INT(sizeof(weft_sem), 24);
    CHECK_EQ_INT(sizeof(weft_cond), 16);
    CHECK_EQ_INT(sizeof(weft_event), 16);
    CHECK_EQ_INT(sizeof(weft_barrier), 56);
}

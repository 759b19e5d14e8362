/* sync.c : weft's threading-style primitives.
 * - tasks on a thread pool add to a total under a weft_lock;
 * - a weft_timer sets a weft_event after 50 ms; main waits for it;
 * - a bounded weft_sem refuses to be released past its bound;
 * - a PSHARED weft_lock in shared memory serializes two processes. */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS, fork, waitpid */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

static weft_lock total_lock;
static long total; /* guarded by total_lock */

static int add(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx;
    (void)len;
    weft_lock_acquire(&total_lock, WEFT_FOREVER);
    total += *(const int *)in;
    weft_lock_release(&total_lock);
    return 0;
}
WEFT_TASK_REGISTER(add);

static void ring(void *arg)
{
    weft_event_set(arg); /* runs on the timer's own thread */
}

int main(int argc, char **argv)
{
    weft_init(&argc, &argv);

    /* 1. a lock shared by the tasks of a pool */
    int items[1000];
    for (int i = 0; i < 1000; i++) items[i] = i + 1;
    weft_executor *ex;
    weft_results *res;
    if (weft_lock_init(&total_lock, 0) || weft_executor_create(NULL, &ex)) return 1;
    if (weft_map(ex, add, items, sizeof items[0], 1000, NULL, &res) != 0) return 1;
    weft_results_destroy(res);
    weft_executor_destroy(ex);
    printf("total = %ld (expected 500500)\n", total);

    /* 2. an event set by a timer */
    weft_event ev;
    weft_timer *t;
    weft_event_init(&ev, 0);
    printf("event set before the timer? %s\n",
           weft_event_wait(&ev, 0) == 0 ? "yes" : "no (WEFT_ETIMEDOUT)");
    if (weft_timer_create(0.05, ring, &ev, &t)) return 1;
    int rc = weft_event_wait(&ev, 5.0);
    printf("after the timer: %s\n", rc == 0 ? "set" : weft_strerror(rc));
    weft_timer_destroy(t);
    weft_event_fini(&ev);

    /* 3. a bounded semaphore */
    weft_sem sem;
    weft_sem_init(&sem, 2, WEFT_SEM_BOUNDED);
    weft_sem_acquire(&sem, WEFT_FOREVER);
    weft_sem_release(&sem, 1);
    rc = weft_sem_release(&sem, 1); /* one release too many */
    printf("over-release: %s -- %s\n", weft_strerror(rc), weft_last_error());
    weft_sem_fini(&sem);

    /* 4. a lock in shared memory, used by a parent and its child */
    struct shared {
        weft_lock lock;
        long counter;
    } *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || weft_lock_init(&sh->lock, WEFT_SYNC_PSHARED)) return 1;
    pid_t child = fork();
    for (int i = 0; i < 100000; i++) {
        weft_lock_acquire(&sh->lock, WEFT_FOREVER);
        sh->counter++;
        weft_lock_release(&sh->lock);
    }
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    printf("two processes counted to %ld (expected 200000)\n", sh->counter);
    return total != 500500 || rc != WEFT_EOVERFLOW || sh->counter != 200000;
}

/* workers.c : the worker-thread pattern of Python's queue documentation.
 *
 * N threads loop on weft_queue_get, do the work, and call
 * weft_queue_task_done; main puts the items, waits with weft_queue_join
 * until every item is processed, then shuts the queue down, which wakes the
 * idle workers with WEFT_ECLOSED so they return. Items are pointers: here,
 * to jobs main allocated; each worker writes its result into the job.
 *
 * A second part shows a PRIORITY queue (lowest first, ties in put order) and
 * shutdown(WEFT_QUEUE_DISCARD) handing the items left to free_item. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

enum {
    WORKERS = 4,
    JOBS = 1000
};

typedef struct job {
    long n;      /* input */
    long result; /* the sum of 1..n, written by a worker */
} job;

static weft_queue *q;

static void *worker(void *arg)
{
    long *handled = arg;
    for (;;) {
        void *item;
        int rc = weft_queue_get(q, WEFT_FOREVER, &item);
        if (rc == WEFT_ECLOSED) return NULL; /* shut down and drained */
        if (rc) {
            fprintf(stderr, "get: %s\n", weft_strerror(rc));
            return NULL;
        }
        job *j = item;
        long s = 0;
        for (long i = 1; i <= j->n; i++) s += i;
        j->result = s;
        (*handled)++;
        weft_queue_task_done(q, 1);
    }
}

static void free_job(void *item, void *arg)
{
    (*(int *)arg)++;
    free(item);
}

int main(void)
{
    /* ---- workers ---- */
    if (weft_queue_create(NULL, &q)) { /* NULL: an unbounded FIFO */
        fprintf(stderr, "create: %s\n", weft_last_error());
        return 1;
    }
    pthread_t th[WORKERS];
    long handled[WORKERS] = {0};
    for (int i = 0; i < WORKERS; i++) pthread_create(&th[i], NULL, worker, &handled[i]);

    job *jobs = calloc(JOBS, sizeof *jobs);
    if (!jobs) return 1;
    for (long i = 0; i < JOBS; i++) {
        jobs[i].n = i;
        weft_queue_put(q, &jobs[i], WEFT_FOREVER);
    }
    weft_queue_join(q, WEFT_FOREVER); /* every job is done now */
    long bad = 0;
    for (long i = 0; i < JOBS; i++) bad += jobs[i].result != i * (i + 1) / 2;
    printf("%d jobs done by %d workers (", JOBS, WORKERS);
    for (int i = 0; i < WORKERS; i++) printf("%s%ld", i ? ", " : "", handled[i]);
    printf(" each), %ld wrong results\n", bad);

    weft_queue_shutdown(q, WEFT_QUEUE_DRAIN); /* idle workers wake with WEFT_ECLOSED */
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
    weft_queue_destroy(q);
    free(jobs);

    /* ---- priority, discard ---- */
    int freed = 0;
    weft_queue_options o = {.kind = WEFT_QUEUE_PRIORITY, .free_item = free_job, .free_arg = &freed};
    if (weft_queue_create(&o, &q)) return 1;
    const char *names[] = {"low", "urgent", "normal", "urgent-2", "normal-2"};
    const int64_t prio[] = {9, 0, 5, 0, 5};
    for (int i = 0; i < 5; i++) {
        job *j = malloc(sizeof *j);
        if (!j) return 1;
        j->n = i;
        weft_queue_put_prio(q, j, prio[i], 0);
    }
    printf("priority order:");
    for (int i = 0; i < 3; i++) {
        void *item;
        int64_t p;
        weft_queue_get_prio(q, 0, &item, &p);
        printf(" %s(%lld)", names[((job *)item)->n], (long long)p);
        free(item);
    }
    printf("\n");
    weft_queue_shutdown(q, WEFT_QUEUE_DISCARD); /* the 2 left go to free_job */
    void *item;
    int rc = weft_queue_get(q, WEFT_FOREVER, &item);
    printf("after discard: %d items freed, get says %s\n", freed, weft_strerror(rc));
    weft_queue_destroy(q);
    return bad == 0 && freed == 2 && rc == WEFT_ECLOSED ? 0 : 1;
}

/* ipc.c : weft's multiprocessing-style objects between processes.
 * - a weft_shm holds an array and a total (Array, Value with its lock);
 *   two child processes fill halves of the array in place and add to the total;
 * - a weft_mpqueue hands out work and a second one collects the results
 *   (Queue): two children square numbers until the work queue is closed;
 * - a weft_channel carries a request and its reply (Pipe).
 * Children receive tokens, not handles: each attaches with the token, as a
 * worker of the processes backend does with a token found in its task's
 * input (a worker is not forked from the process that made the object).
 * Here the token crosses fork() in a variable; it is 40 bytes of plain data
 * and could as well cross a file, a command line (weft_ipc_token_format)
 * or a task's input bytes. */
#define _GNU_SOURCE /* fork, waitpid */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#define N 1000

struct shared {
    double total; /* under the region's lock */
    double a[N];
};

static int fill_half(weft_ipc_token tok, int half)
{
    weft_shm *s;
    if (weft_shm_attach(&tok, &s)) return 1;
    struct shared *sh = weft_shm_ptr(s);
    double part = 0;
    for (int i = half * N / 2; i < (half + 1) * N / 2; i++) {
        sh->a[i] = (double)i * i; /* in place: no copy goes back */
        part += sh->a[i];
    }
    weft_lock_acquire(weft_shm_lock(s), WEFT_FOREVER);
    sh->total += part;
    weft_lock_release(weft_shm_lock(s));
    weft_shm_destroy(s);
    return 0;
}

static int square_worker(weft_ipc_token work_tok, weft_ipc_token result_tok)
{
    weft_mpqueue *work, *results;
    if (weft_mpqueue_attach(&work_tok, &work) || weft_mpqueue_attach(&result_tok, &results))
        return 1;
    long x;
    size_t len;
    while (weft_mpqueue_get(work, 10, &x, sizeof x, &len) == 0) { /* WEFT_EOF ends it */
        long y = x * x;
        weft_mpqueue_put(results, &y, sizeof y, 10);
    }
    weft_mpqueue_destroy(work);
    weft_mpqueue_destroy(results);
    return 0;
}

static int responder(weft_ipc_token tok)
{
    weft_channel *ch;
    char buf[64];
    size_t len;
    if (weft_channel_attach(&tok, &ch)) return 1;
    if (weft_channel_recv(ch, 10, buf, sizeof buf - 1, &len) == 0) {
        buf[len] = '\0';
        char reply[96];
        snprintf(reply, sizeof reply, "pong to '%s' from process %d", buf, (int)getpid());
        weft_channel_send(ch, reply, strlen(reply), 10);
    }
    weft_channel_destroy(ch); /* the parent's recv then sees WEFT_EOF */
    return 0;
}

static int wait_children(const pid_t *p, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int st;
        if (waitpid(p[i], &st, 0) != p[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    weft_init(&argc, &argv);
    pid_t kids[2];

    /* 1. Array and Value: a region, written in place by two processes */
    weft_shm *s;
    weft_ipc_token tok;
    if (weft_shm_create(sizeof(struct shared), &s) || weft_shm_token(s, &tok)) {
        fprintf(stderr, "weft_shm_create: %s\n", weft_last_error());
        return 1;
    }
    for (int h = 0; h < 2; h++)
        if ((kids[h] = fork()) == 0) _exit(fill_half(tok, h));
    if (wait_children(kids, 2)) return 1;
    struct shared *sh = weft_shm_ptr(s);
    printf("shm: a[999] = %.0f, total = %.0f (expected 332833500)\n", sh->a[N - 1], sh->total);
    weft_shm_destroy(s);

    /* 2. Queue: work out, results back */
    weft_mpqueue *work, *results;
    weft_ipc_token wt, rt;
    if (weft_mpqueue_create(NULL, &work) || weft_mpqueue_create(NULL, &results)) return 1;
    weft_mpqueue_token(work, &wt);
    weft_mpqueue_token(results, &rt);
    for (int w = 0; w < 2; w++)
        if ((kids[w] = fork()) == 0) _exit(square_worker(wt, rt));
    for (long x = 1; x <= 100; x++) weft_mpqueue_put(work, &x, sizeof x, WEFT_FOREVER);
    weft_mpqueue_close(work); /* the workers drain it, then see WEFT_EOF */
    long sum = 0, y;
    size_t len;
    for (int i = 0; i < 100; i++)
        if (weft_mpqueue_get(results, 10, &y, sizeof y, &len) == 0) sum += y;
    if (wait_children(kids, 2)) return 1;
    printf("mpqueue: sum of squares 1..100 = %ld (expected 338350)\n", sum);
    weft_mpqueue_destroy(work);
    weft_mpqueue_destroy(results);

    /* 3. Pipe: a request and its reply */
    weft_channel *ch;
    if (weft_channel_create(NULL, &ch) || weft_channel_token(ch, &tok)) return 1;
    if ((kids[0] = fork()) == 0) _exit(responder(tok));
    char buf[128];
    weft_channel_send(ch, "ping", 4, 10);
    int rc = weft_channel_recv(ch, 10, buf, sizeof buf - 1, &len);
    if (rc == 0) {
        buf[len] = '\0';
        printf("channel: %s\n", buf);
    }
    rc = weft_channel_recv(ch, 10, buf, sizeof buf, &len);
    printf("channel: then %s\n", weft_strerror(rc));
    weft_channel_destroy(ch);
    return wait_children(kids, 1) || rc != WEFT_EOF;
}

/* saxpy.c : y = a*x + y over 10M floats with weft_parallel_for, the same
 * code on every level (WEFT_BACKEND=serial|threads|processes, or mpirun).
 *
 * x and y live in one weft_shm region, so worker processes write the
 * caller's memory in place: the body receives a copy of `arg` (its
 * arg_size bytes) and finds the region from its token; in the caller's own
 * process (serial, threads) it uses the caller's mapping. Under mpirun the
 * ranks must share the caller's machine (a weft_shm is memory of one
 * machine); across machines, return results with weft_parallel_reduce. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

typedef struct saxpy_arg {
    weft_ipc_token tok; /* the region: n floats of x, then n of y */
    void *local;        /* its address in the caller's process */
    pid_t pid;          /* the caller */
    int64_t n;
    float a;
} saxpy_arg;

/* The region in this process: the caller's mapping, or (in a worker
 * process, one task at a time) an attachment kept for later pieces. */
static float *region(const saxpy_arg *s)
{
    static weft_shm *att;
    static uint64_t key;
    if (s->pid == getpid()) return s->local;
    if (!att || key != s->tok.key) {
        if (att) weft_shm_destroy(att);
        att = NULL;
        if (weft_shm_attach(&s->tok, &att) != 0) return NULL;
        key = s->tok.key;
    }
    return weft_shm_ptr(att);
}

static int saxpy(int64_t lo, int64_t hi, void *arg)
{
    const saxpy_arg *s = arg;
    float *x = region(s);
    if (!x) return WEFT_ENOENT;
    float *y = x + s->n;
    for (int64_t i = lo; i < hi; i++) y[i] = s->a * x[i] + y[i];
    return 0;
}
WEFT_RANGE_REGISTER(saxpy); /* processes and mpi find the body by name */

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv) != 0) return 1;
    const int64_t n = 10000000;
    weft_shm *shm = NULL;
    weft_executor *ex = NULL;
    int rc = weft_shm_create((size_t)(2 * n) * sizeof(float), &shm);
    if (rc == 0) rc = weft_executor_create(NULL, &ex); /* WEFT_BACKEND picks the level */
    if (rc) {
        fprintf(stderr, "saxpy: %s\n", weft_last_error());
        return 1;
    }
    saxpy_arg s = {.local = weft_shm_ptr(shm), .pid = getpid(), .n = n, .a = 2.0f};
    weft_shm_token(shm, &s.tok);
    float *x = s.local, *y = x + n;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(i % 1000);
        y[i] = 1.0f;
    }
    weft_range_options o = {.arg_size = sizeof s}; /* copied to worker processes and ranks */
    double t0 = weft_now();
    rc = weft_parallel_for(ex, 0, n, saxpy, &s, &o);
    double t1 = weft_now();
    int64_t bad = 0;
    for (int64_t i = 0; rc == 0 && i < n; i++) bad += y[i] != 2.0f * (float)(i % 1000) + 1.0f;
    printf("saxpy on %s (%d workers): %lld elements in %.1f ms, %s\n",
           weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex), (long long)n,
           (t1 - t0) * 1e3,
           rc    ? weft_last_error()
           : bad ? "WRONG"
                 : "y = 2x + 1 everywhere");
    weft_executor_destroy(ex);
    weft_shm_destroy(shm);
    return rc || bad ? 1 : 0;
}

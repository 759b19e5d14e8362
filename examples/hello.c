/* hello.c : register a task, create an executor, submit, read the result. */
#include <stdio.h>
#include <weft.h>

static int square(weft_ctx *ctx, const void *in, size_t len) /* bytes in, bytes out */
{
    int x = *(const int *)in, y = x * x;
    (void)len;
    return weft_ctx_set_output(ctx, &y, sizeof y);
}
WEFT_TASK_REGISTER(square); /* a stable name: every backend finds the function */

int main(int argc, char **argv)
{
    weft_executor *ex;
    weft_future *f;
    const void *out;
    int x = 7;

    weft_init(&argc, &argv); /* first thing in main: needed by processes and mpi */
    if (weft_executor_create(NULL, &ex) != 0) return 1;           /* WEFT_BACKEND or threads */
    if (weft_submit(ex, square, &x, sizeof x, &f) != 0) return 1; /* x is copied */
    if (weft_future_result(f, WEFT_FOREVER, &out, NULL) != 0) return 1;
    printf("square(%d) = %d on %s\n", x, *(const int *)out,
           weft_backend_name(weft_executor_backend(ex)));
    weft_future_release(f);                /* out points into f: use it before this */
    return weft_executor_destroy(ex) != 0; /* waits for all work, joins workers */
}

/* reduce_tree.c : a reduction tree as a task graph -- sum a large array in
 * chunks, then add the partial sums pairwise up to one root.
 *
 *     chunk(k)                 makes chunk k: 100k doubles (800 KB)
 *     sum(chunk(k))            its sum
 *     add(a, b)                pairwise, level by level, to the root
 *
 * Run on serial and on threads: the same graph, the same answer. The
 * program prints the graph's shape, each run's time, and how few chunks
 * were held at once (each is freed as soon as its sum has read it). With
 * --dot it writes the graph after the threads run, states and durations
 * included (small --chunks make a readable picture: dot -Tsvg).
 *
 * Usage: reduce_tree [--chunks N] [--dot FILE]
 * Exit status 0, 1 if the runs disagree with the closed form or fail. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define CHUNK 100000

static int64_t arg_i64(const void *in, size_t len, size_t i)
{
    const void *d;
    size_t l;
    int64_t v = 0;
    if (weft_args_get(in, len, i, &d, &l) == 0 && l == 8) memcpy(&v, d, 8);
    return v;
}

/* chunk k holds the numbers k*CHUNK .. (k+1)*CHUNK-1, as doubles */
static int chunk(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t k = arg_i64(in, len, 0);
    double *out = weft_ctx_output(ctx, CHUNK * sizeof(double));
    if (!out) return weft_ctx_fail(ctx, WEFT_ENOMEM, "chunk %lld", (long long)k);
    for (int64_t i = 0; i < CHUNK; i++) out[i] = (double)(k * CHUNK + i);
    return 0;
}
WEFT_TASK_REGISTER(chunk);

static int sum(weft_ctx *ctx, const void *in, size_t len)
{
    const void *d;
    size_t l;
    if (weft_args_get(in, len, 0, &d, &l) || l % sizeof(double))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "sum: bad chunk");
    double s = 0, x;
    for (size_t i = 0; i < l; i += sizeof x) {
        memcpy(&x, (const char *)d + i, sizeof x);
        s += x;
    }
    return weft_ctx_set_output(ctx, &s, sizeof s);
}
WEFT_TASK_REGISTER(sum);

static int add(weft_ctx *ctx, const void *in, size_t len)
{
    double a, b;
    const void *d;
    size_t l;
    if (weft_args_get(in, len, 0, &d, &l) || l != 8) return WEFT_EINVAL;
    memcpy(&a, d, 8);
    if (weft_args_get(in, len, 1, &d, &l) || l != 8) return WEFT_EINVAL;
    memcpy(&b, d, 8);
    a += b;
    return weft_ctx_set_output(ctx, &a, sizeof a);
}
WEFT_TASK_REGISTER(add);

int main(int argc, char **argv)
{
    int64_t nchunks = 256;
    const char *dot = NULL;
    weft_init(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            nchunks = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--dot") && i + 1 < argc)
            dot = argv[++i];
        else {
            fprintf(stderr, "usage: reduce_tree [--chunks N] [--dot FILE]\n");
            return 2;
        }
    }
    if (nchunks < 1 || nchunks > 1000000) return 2;

    weft_graph *g;
    weft_node *level = malloc((size_t)nchunks * sizeof *level);
    if (!level || weft_graph_create(NULL, &g)) return 1;
    for (int64_t k = 0; k < nchunks; k++) {
        weft_arg a = weft_arg_bytes(&k, sizeof k);
        weft_node c;
        weft_graph_call(g, chunk, &a, 1, &c);
        a = weft_arg_node(c);
        weft_graph_call(g, sum, &a, 1, &level[k]);
    }
    int depth = 0;
    for (size_t n = (size_t)nchunks; n > 1; depth++) {
        size_t m = 0;
        for (size_t i = 0; i + 1 < n; i += 2) {
            weft_arg a[2] = {weft_arg_node(level[i]), weft_arg_node(level[i + 1])};
            weft_graph_call(g, add, a, 2, &level[m++]);
        }
        if (n % 2) level[m++] = level[n - 1];
        n = m;
    }
    weft_node root = level[0];
    double total = (double)nchunks * CHUNK;
    double want = total * (total - 1) / 2; /* exact in doubles below 2^53 */
    printf("graph: %zu nodes: %lld chunks of %d doubles, their sums, %d levels of adds\n",
           weft_graph_size(g), (long long)nchunks, CHUNK, depth);

    int status = 0;
    weft_backend levels[2] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS};
    for (int b = 0; b < 2; b++) {
        weft_options eo = {.backend = levels[b]};
        weft_executor *ex;
        if (weft_executor_create(&eo, &ex)) {
            fprintf(stderr, "reduce_tree: %s\n", weft_last_error());
            return 1;
        }
        weft_graph_release(g, root); /* compute it again from scratch */
        double t0 = weft_now();
        int rc = weft_graph_compute(g, ex, &root, 1, NULL);
        double wall = weft_now() - t0;
        double got = -1;
        const void *d;
        size_t l;
        if (!rc && !(rc = weft_graph_result(g, root, &d, &l)) && l == 8) memcpy(&got, d, 8);
        weft_graph_stats st;
        weft_graph_stats_get(g, &st);
        printf("%-8s %d workers: %.3f s, sum %.0f (%s); at most %.1f MB held at once\n",
               weft_backend_name(levels[b]), weft_executor_workers(ex), wall, got,
               got == want ? "right" : "WRONG", (double)st.bytes_peak / 1e6);
        if (rc || got != want) {
            fprintf(stderr, "reduce_tree: %s: %s\n", weft_strerror(rc), weft_last_error());
            status = 1;
        }
        weft_executor_destroy(ex);
    }
    if (dot) {
        if (weft_graph_write_dot(g, dot) == 0)
            printf("wrote %s\n", dot);
        else
            status = 1;
    }
    weft_graph_destroy(g);
    free(level);
    return status;
}

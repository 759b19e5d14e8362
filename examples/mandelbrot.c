/* mandelbrot.c : a Mandelbrot image, one body call per group of rows, with
 * weft_parallel_for; writes mandelbrot.pgm (or the path given).
 *
 * The rows crossing the set cost up to a hundred times those at the edges:
 * the default partitioner splits the loop lazily, where workers run out of
 * work, so no tuning is needed. The image lives in a weft_shm region, so
 * the same code runs on worker processes (WEFT_BACKEND=processes). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

enum {
    W = 800,
    H = 600,
    MAXIT = 500
};

typedef struct image {
    weft_ipc_token tok; /* H rows of W bytes */
    void *local;        /* the caller's mapping */
    pid_t pid;
} image;

static unsigned char *pixels(const image *im)
{
    static weft_shm *att; /* in a worker process: attached once */
    static uint64_t key;
    if (im->pid == getpid()) return im->local;
    if (!att || key != im->tok.key) {
        if (att) weft_shm_destroy(att);
        att = NULL;
        if (weft_shm_attach(&im->tok, &att) != 0) return NULL;
        key = im->tok.key;
    }
    return weft_shm_ptr(att);
}

static int rows(int64_t lo, int64_t hi, void *arg)
{
    unsigned char *px = pixels(arg);
    if (!px) return WEFT_ENOENT;
    for (int64_t y = lo; y < hi; y++) {
        double ci = -1.2 + 2.4 * (double)y / H;
        for (int x = 0; x < W; x++) {
            double cr = -2.2 + 3.2 * x / W, zr = 0, zi = 0;
            int it = 0;
            while (it < MAXIT && zr * zr + zi * zi <= 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2 * zr * zi + ci;
                zr = t;
                it++;
            }
            px[y * W + x] = it == MAXIT ? 0 : (unsigned char)(255 - (it * 8 % 256));
        }
    }
    return 0;
}
WEFT_RANGE_REGISTER(rows);

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv) != 0) return 1;
    const char *path = argc > 1 ? argv[1] : "mandelbrot.pgm";
    weft_shm *shm = NULL;
    weft_executor *ex = NULL;
    int rc = weft_shm_create((size_t)W * H, &shm);
    if (rc == 0) rc = weft_executor_create(NULL, &ex);
    if (rc) {
        fprintf(stderr, "mandelbrot: %s\n", weft_last_error());
        return 1;
    }
    image im = {.local = weft_shm_ptr(shm), .pid = getpid()};
    weft_shm_token(shm, &im.tok);
    weft_range_options o = {.arg_size = sizeof im};
    double t0 = weft_now();
    rc = weft_parallel_for(ex, 0, H, rows, &im, &o);
    double t1 = weft_now();
    if (rc == 0) {
        FILE *f = fopen(path, "wb");
        if (!f || fprintf(f, "P5\n%d %d\n255\n", W, H) < 0 ||
            fwrite(im.local, 1, (size_t)W * H, f) != (size_t)W * H)
            rc = -1;
        if (f && fclose(f) != 0) rc = -1;
        if (rc) fprintf(stderr, "mandelbrot: cannot write %s\n", path);
    } else {
        fprintf(stderr, "mandelbrot: %s\n", weft_last_error());
    }
    if (rc == 0)
        printf("mandelbrot: %dx%d on %s (%d workers) in %.0f ms, written to %s\n", W, H,
               weft_backend_name(weft_executor_backend(ex)), weft_executor_workers(ex),
               (t1 - t0) * 1e3, path);
    weft_executor_destroy(ex);
    weft_shm_destroy(shm);
    return rc ? 1 : 0;
}

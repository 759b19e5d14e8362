/* array_npy.c : dump an array as numpy's .npy, read it back with numpy.
 *
 *     array_npy [DIR]          (default: the current directory)
 *
 * 1. creates a 1000 x 3 float64 array in shared memory (WEFT_ARRAY_SHARED),
 * 2. has tasks fill its columns: the array travels to them as a
 *    weft_array_arg -- a reference on threads, a memfd token on processes
 *    (WEFT_BACKEND=processes), never a copy of its 24 KB... or of 24 GB,
 * 3. saves it as DIR/array_npy.npy and DIR/array_npy.npz (with a Fortran-order
 *    big-endian int32 copy beside it), maps the .npy back (mmap mode 'r'),
 * 4. prints the Python line that loads the file with numpy, and what it
 *    should print. tests/test_array.c runs both and compares. */
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define ROWS 1000
#define COLS 3

/* Task: fills column weft_ctx_index(ctx) of the array in its input with
 * row * 10^column. */
static int fill_column(weft_ctx *ctx, const void *in, size_t len)
{
    weft_array *a;
    int rc = weft_array_arg_open(in, len, &a);
    if (rc) return weft_ctx_fail(ctx, rc, "%s", weft_last_error());
    size_t col = (size_t)weft_ctx_index(ctx), scale = 1;
    for (size_t k = 0; k < col; k++) scale *= 10;
    for (size_t row = 0; row < ROWS; row++) {
        size_t idx[2] = {row, col};
        *(double *)weft_array_at(a, idx) = (double)(row * scale);
    }
    return weft_array_destroy(a);
}
WEFT_TASK_REGISTER(fill_column);

static int fail(const char *what)
{
    fprintf(stderr, "array_npy: %s: %s\n", what, weft_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return fail("weft_init");
    const char *dir = argc > 1 ? argv[1] : ".";
    char npy[1024], npz[1024];
    snprintf(npy, sizeof npy, "%s/array_npy.npy", dir);
    snprintf(npz, sizeof npz, "%s/array_npy.npz", dir);

    size_t shape[2] = {ROWS, COLS};
    weft_array_options shared = {WEFT_ORDER_C, WEFT_ENDIAN_NATIVE, WEFT_ARRAY_SHARED};
    weft_array *a;
    if (weft_array_create(WEFT_DTYPE_FLOAT64, 2, shape, &shared, &a)) return fail("create");

    weft_executor *ex;
    if (weft_executor_create(NULL, &ex)) return fail("executor");
    weft_array_arg_options small = {1024}; /* share from 1 KiB up, to show it */
    weft_array_arg *arg;
    if (weft_array_arg_create(ex, a, &small, &arg)) return fail("arg");
    const void *bytes;
    size_t len;
    weft_array_arg_bytes(arg, &bytes, &len);
    weft_future *f[COLS];
    for (int c = 0; c < COLS; c++) {
        weft_submit_options so = {.has_index = true, .index = (uint64_t)c};
        if (weft_submit_ex(ex, fill_column, bytes, len, &so, &f[c])) return fail("submit");
    }
    for (int c = 0; c < COLS; c++) {
        if (weft_future_result(f[c], WEFT_FOREVER, NULL, NULL)) return fail("task");
        weft_future_release(f[c]);
    }
    printf("%s backend: %zu-byte array passed as %zu input bytes (%s)\n",
           weft_backend_name(weft_executor_backend(ex)), weft_array_nbytes(a), len,
           weft_array_arg_shared(arg) ? "shared memory" : "a reference or the bytes");
    weft_array_arg_destroy(arg);
    weft_executor_destroy(ex);

    /* dump: .npy, and an .npz with a Fortran-order big-endian int32 copy */
    if (weft_array_save(a, npy, NULL)) return fail("save");
    weft_array_options fbe = {WEFT_ORDER_F, WEFT_ENDIAN_BIG, 0};
    weft_array *b;
    if (weft_array_copy(a, &fbe, &b)) return fail("copy");
    weft_array *ints;
    weft_array_options fi = {WEFT_ORDER_F, WEFT_ENDIAN_BIG, 0};
    if (weft_array_create(WEFT_DTYPE_INT32, 2, shape, &fi, &ints)) return fail("create");
    for (size_t r = 0; r < ROWS; r++)
        for (size_t c = 0; c < COLS; c++) {
            int32_t v = (int32_t)(r + c);
            unsigned char be[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                                   (unsigned char)(v >> 8), (unsigned char)v};
            memcpy(weft_array_at(ints, (size_t[]){r, c}), be, 4);
        }
    const char *names[] = {"values", "values_fbe", "ints"};
    const weft_array *arrays[] = {a, b, ints};
    weft_npz_save_options zo = {.compress = true};
    if (weft_npz_save(npz, names, arrays, 3, &zo)) return fail("npz");

    /* load: mapped read-only, opened in microseconds whatever the size */
    weft_npy_load_options lo = {.mmap_mode = WEFT_MMAP_READ};
    weft_array *m;
    if (weft_array_load(npy, &lo, &m)) return fail("load");
    double sum = 0;
    const double *d = weft_array_data(m);
    for (size_t i = 0; i < weft_array_size(m); i++) sum += d[i];
    printf("weft read back %s: %s, %zu x %zu, sum %.1f\n", npy,
           weft_dtype_name(weft_array_dtype(m)), weft_array_shape(m)[0], weft_array_shape(m)[1],
           sum);
    printf("read it with numpy:\n");
    printf("/usr/bin/python3 -c \"import numpy as np; a = np.load('%s'); z = np.load('%s'); "
           "print(a.dtype, a.shape, a.sum(), (z['values_fbe'] == a).all(), z['ints'].sum())\"\n",
           npy, npz);
    long isum = 0;
    for (long r = 0; r < ROWS; r++) isum += 3 * r + 3;
    printf("numpy should print:\nfloat64 (%d, %d) %.1f True %ld\n", ROWS, COLS, sum, isum);
    weft_array_destroy(m);
    weft_array_destroy(ints);
    weft_array_destroy(b);
    weft_array_destroy(a);
    return 0;
}

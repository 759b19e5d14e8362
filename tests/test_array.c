/* test_array.c : weft_array and numpy's files. numpy (Debian's
 * python3-numpy, run as /usr/bin/python3 tests/array_oracle.py) writes
 * .npy and .npz files that weft must load equal, and checks the files weft
 * writes; the tests that need numpy skip (77) when it is missing. The rest:
 * views, copies, byte swapping, .npy.zst, mmap modes, and corrupt or
 * truncated files rejected with WEFT_EINVAL and a message naming the file.
 * weft-test-timeout: 300 */
#define CHECK_CUSTOM_MAIN
#include "check.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zstd.h>

#include "array/array_internal.h"

static const char *srcdir(void)
{
    const char *s = getenv("WEFT_TEST_SRCDIR");
    return s ? s : "../../../../tests";
}

static bool have_numpy(void)
{
    return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

static int oracle(const char *cmd, const char *dir)
{
    char line[1024];
    snprintf(line, sizeof line, "/usr/bin/python3 %s/array_oracle.py %s %s", srcdir(), cmd, dir);
    return system(line);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static weft_dtype dtype_by_name(const char *s)
{
    for (int d = WEFT_DTYPE_BOOL; d <= WEFT_DTYPE_COMPLEX128; d++)
        if (strcmp(weft_dtype_name((weft_dtype)d), s) == 0) return (weft_dtype)d;
    return (weft_dtype)0;
}

/* The C-order bytes of `a` in its own byte order. */
static weft_array *c_copy(const weft_array *a)
{
    weft_array_options o = {WEFT_ORDER_C, weft_array_endian(a), 0};
    weft_array *c = NULL;
    CHECK_OK(weft_array_copy(a, &o, &c));
    return c;
}

static bool same_as_raw(const weft_array *a, const char *raw_path)
{
    size_t n = 0;
    unsigned char *raw = slurp(raw_path, &n);
    if (!raw) return false;
    weft_array *c = c_copy(a);
    bool ok = c && n == weft_array_nbytes(c) && memcmp(raw, weft_array_data(c), n) == 0;
    weft_array_destroy(c);
    free(raw);
    return ok;
}

/* Checks `a` against a manifest line's fields. */
static void check_meta(const weft_array *a, const char *name, const char *dt, const char *en,
                       const char *order, size_t ndim, const size_t *shape)
{
    CHECK_MSG(weft_array_dtype(a) == dtype_by_name(dt), "%s: dtype %s", name, dt);
    if (weft_array_itemsize(a) > 1)
        CHECK_MSG(weft_array_endian(a) == (en[0] == 'l' ? WEFT_ENDIAN_LITTLE : WEFT_ENDIAN_BIG),
                  "%s: byte order", name);
    CHECK_MSG(weft_array_ndim(a) == ndim, "%s: ndim", name);
    for (size_t i = 0; i < ndim && i < weft_array_ndim(a); i++)
        CHECK_MSG(weft_array_shape(a)[i] == shape[i], "%s: shape[%zu]", name, i);
    weft_order o = order[0] == 'F' ? WEFT_ORDER_F : WEFT_ORDER_C;
    CHECK_MSG(weft_array_is_contiguous(a, o), "%s: not %s-contiguous", name, order);
}

/* Every array of numpy's manifest loads equal: from files, plain and
 * mapped, and from the two archives. */
TEST(numpy_files_load_equal)
{
    if (!have_numpy()) SKIP("numpy is not installed (apt-get install python3-numpy)");
    mkdir("np", 0700);
    REQUIRE(oracle("gen", "np") == 0);
    FILE *m = fopen("np/manifest.txt", "r");
    REQUIRE(m);
    weft_npz *plain = NULL, *deflated = NULL;
    REQUIRE_OK(weft_npz_open("np/np_plain.npz", &plain));
    REQUIRE_OK(weft_npz_open("np/np_deflated.npz", &deflated));
    CHECK_EQ_INT((int)weft_npz_count(plain), 4);
    CHECK_EQ_STR(weft_npz_name(plain, 0), "a");
    char ln[512];
    int n = 0;
    while (fgets(ln, sizeof ln, m)) {
        char name[128], dt[32], en[4], order[4];
        size_t ndim, shape[8] = {0};
        int off = 0;
        if (sscanf(ln, "%127s %31s %3s %3s %zu%n", name, dt, en, order, &ndim, &off) != 5) continue;
        char *p = ln + off;
        for (size_t i = 0; i < ndim; i++) shape[i] = strtoull(p, &p, 10);
        char path[256], raw[256];
        snprintf(raw, sizeof raw, "np/%s.raw", name);
        if (strncmp(name, "npz_", 4) == 0) {
            weft_npz *zs[2] = {plain, deflated};
            for (int k = 0; k < 2; k++) {
                weft_array *a = NULL;
                CHECK_OK(weft_npz_get(zs[k], name + 4, &a));
                if (!a) continue;
                check_meta(a, name, dt, en, order, ndim, shape);
                CHECK_MSG(same_as_raw(a, raw), "%s (archive %d): values", name, k);
                weft_array_destroy(a);
            }
            n++;
            continue;
        }
        snprintf(path, sizeof path, "np/%s.npy", name);
        for (int mode = WEFT_MMAP_NONE; mode <= WEFT_MMAP_COPY; mode++) {
            weft_npy_load_options lo = {(weft_mmap_mode)mode};
            weft_array *a = NULL;
            CHECK_OK(weft_array_load(path, &lo, &a));
            if (!a) continue;
            check_meta(a, name, dt, en, order, ndim, shape);
            CHECK_MSG(same_as_raw(a, raw), "%s (mode %d): values", name, mode);
            /* native copy: the same values, in this machine's byte order */
            weft_array *nat = NULL;
            CHECK_OK(weft_array_copy(a, NULL, &nat));
            CHECK(weft_array_endian(nat) == weft__endian_native());
            if (weft_array_endian(a) != weft__endian_native() && weft_array_itemsize(a) > 1) {
                CHECK_OK(weft_array_byteswap(nat));
                CHECK_MSG(same_as_raw(nat, raw), "%s: byteswap of the native copy", name);
            }
            weft_array_destroy(nat);
            weft_array_destroy(a);
        }
        n++;
    }
    fclose(m);
    CHECK_MSG(n > 400, "%d arrays in the manifest", n);
    weft_array *x = NULL;
    CHECK_ERR(weft_npz_get(plain, "nope", &x), WEFT_ENOENT);
    CHECK_OK(weft_npz_destroy(plain));
    CHECK_OK(weft_npz_destroy(deflated));
}

/* Fills a with deterministic bytes that are valid values (bools 0/1). */
static void fill(weft_array *a, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    unsigned char *p = weft_array_data(a);
    for (size_t i = 0; i < weft_array_nbytes(a); i++) {
        p[i] = (unsigned char)weft_rng_next(&r);
        if (weft_array_dtype(a) == WEFT_DTYPE_BOOL) p[i] &= 1;
    }
}

static void manifest_line(FILE *m, const char *name, const weft_array *a, const char *dir)
{
    char raw[256];
    snprintf(raw, sizeof raw, "%s/%s.raw", dir, name);
    for (char *c = raw; *c; c++)
        if (*c == ':') *c = '_', memmove(c + 1, c, strlen(c) + 1), c[1] = '_', c++;
    weft_array *c = c_copy(a);
    spit(raw, weft_array_data(c), weft_array_nbytes(c));
    weft_array_destroy(c);
    bool f =
        !weft_array_is_contiguous(a, WEFT_ORDER_C) && weft_array_is_contiguous(a, WEFT_ORDER_F);
    fprintf(m, "%s %s %c %c %zu", name, weft_dtype_name(weft_array_dtype(a)),
            weft_array_endian(a) == WEFT_ENDIAN_LITTLE ? 'l' : 'b', f ? 'F' : 'C',
            weft_array_ndim(a));
    for (size_t i = 0; i < weft_array_ndim(a); i++) fprintf(m, " %zu", weft_array_shape(a)[i]);
    fprintf(m, "\n");
}

/* weft writes every dtype, order and byte order; numpy loads them equal and
 * its own np.save of what it loaded gives the same bytes. */
TEST(weft_files_load_equal_in_numpy)
{
    if (!have_numpy()) SKIP("numpy is not installed (apt-get install python3-numpy)");
    mkdir("wf", 0700);
    FILE *m = fopen("wf/weft_manifest.txt", "w");
    REQUIRE(m);
    static const size_t shapes[][4] = {{0},       {1, 0},       {3, 3, 0, 2}, {1, 7},
                                       {2, 4, 5}, {3, 2, 3, 4}, {2, 33, 65}};
    int k = 0;
    for (int d = WEFT_DTYPE_BOOL; d <= WEFT_DTYPE_COMPLEX128; d++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            for (int e = WEFT_ENDIAN_LITTLE; e <= WEFT_ENDIAN_BIG; e++) {
                for (int o = WEFT_ORDER_C; o <= WEFT_ORDER_F; o++) {
                    weft_array_options opt = {(weft_order)o, (weft_endian)e, 0};
                    weft_array *a = NULL;
                    REQUIRE_OK(
                        weft_array_create((weft_dtype)d, shapes[s][0], shapes[s] + 1, &opt, &a));
                    fill(a, (uint64_t)k);
                    char name[64], path[96];
                    snprintf(name, sizeof name, "w%d.npy", k++);
                    snprintf(path, sizeof path, "wf/%s", name);
                    CHECK_OK(weft_array_save(a, path, NULL));
                    manifest_line(m, name, a, "wf");
                    weft_array_destroy(a);
                }
            }
        }
    }
    /* forced versions 2.0 and 3.0, a strided view (written in C order), a
     * reversed view (negative strides) */
    weft_array *a = NULL, *v = NULL, *r = NULL;
    size_t sh[2] = {6, 8};
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_INT32, 2, sh, NULL, &a));
    fill(a, 99);
    for (int ver = 2; ver <= 3; ver++) {
        char name[32], path[64];
        snprintf(name, sizeof name, "v%d.npy", ver);
        snprintf(path, sizeof path, "wf/%s", name);
        weft_npy_save_options so = {.version = ver};
        CHECK_OK(weft_array_save(a, path, &so));
        manifest_line(m, name, a, "wf");
    }
    size_t vs[2] = {3, 4};
    ptrdiff_t st[2] = {2 * 8 * 4, 2 * 4};
    REQUIRE_OK(weft_array_view(a, 2, vs, st, 4, &v));
    CHECK(!weft_array_is_contiguous(v, WEFT_ORDER_C));
    CHECK_EQ_INT(*(int32_t *)weft_array_at(v, (size_t[]){1, 1}),
                 *(int32_t *)weft_array_at(a, (size_t[]){2, 3}));
    CHECK_OK(weft_array_save(v, "wf/view.npy", NULL));
    manifest_line(m, "view.npy", v, "wf");
    ptrdiff_t rs[1] = {-4};
    size_t rn[1] = {48};
    REQUIRE_OK(weft_array_view(a, 1, rn, rs, 47 * 4, &r));
    CHECK_EQ_INT(*(int32_t *)weft_array_at(r, (size_t[]){0}),
                 *(int32_t *)weft_array_at(a, (size_t[]){5, 7}));
    CHECK_OK(weft_array_save(r, "wf/rev.npy", NULL));
    manifest_line(m, "rev.npy", r, "wf");
    /* archives: stored and deflated, with the views */
    weft_array *b = NULL;
    size_t bs[3] = {3, 5, 2};
    weft_array_options fo = {WEFT_ORDER_F, WEFT_ENDIAN_BIG, 0};
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_COMPLEX128, 3, bs, &fo, &b));
    fill(b, 5);
    const char *names[] = {"a", "view", "rev", "b"};
    const weft_array *arrs[] = {a, v, r, b};
    weft_npz_save_options zo = {false};
    CHECK_OK(weft_npz_save("wf/plain.npz", names, arrs, 4, &zo));
    zo.compress = true;
    CHECK_OK(weft_npz_save("wf/deflated.npz", names, arrs, 4, &zo));
    for (int i = 0; i < 4; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "plain.npz:%s", names[i]);
        manifest_line(m, nm, arrs[i], "wf");
        snprintf(nm, sizeof nm, "deflated.npz:%s", names[i]);
        manifest_line(m, nm, arrs[i], "wf");
    }
    /* and weft reads its own archives */
    weft_npz *z = NULL;
    REQUIRE_OK(weft_npz_open("wf/deflated.npz", &z));
    CHECK_EQ_INT((int)weft_npz_count(z), 4);
    weft_array *back = NULL;
    CHECK_OK(weft_npz_get(z, "rev.npy", &back));
    weft_array *rc = c_copy(r);
    CHECK(back && weft_array_nbytes(back) == 48 * 4 &&
          memcmp(weft_array_data(back), weft_array_data(rc), 48 * 4) == 0);
    weft_array_destroy(rc);
    weft_array_destroy(back);
    weft_npz_destroy(z);
    fclose(m);
    CHECK_EQ_INT(oracle("check", "wf"), 0);
    weft_array_destroy(v);
    weft_array_destroy(a); /* before the reversed view: the store outlives it */
    weft_array_destroy(r);
    weft_array_destroy(b);
}

TEST(npz_names_are_checked)
{
    weft_array *a = NULL;
    size_t n = 3;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_INT8, 1, &n, NULL, &a));
    const weft_array *two[] = {a, a};
    const char *dup[] = {"x", "x"}, *slash[] = {"x/y"}, *empty[] = {""};
    CHECK_ERR(weft_npz_save("bad.npz", dup, two, 2, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_npz_save("bad.npz", slash, two, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_npz_save("bad.npz", empty, two, 1, NULL), WEFT_EINVAL);
    CHECK(access("bad.npz", F_OK) != 0);
    weft_array_destroy(a);
}

TEST(views_copies_and_byteswap)
{
    size_t sh[2] = {3, 4};
    weft_array *a = NULL, *f = NULL, *v = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_FLOAT64, 2, sh, NULL, &a));
    CHECK_EQ_INT((int)weft_array_size(a), 12);
    CHECK_EQ_INT((int)weft_array_nbytes(a), 96);
    CHECK_EQ_INT((int)weft_array_strides(a)[0], 32);
    CHECK_EQ_INT((int)weft_array_strides(a)[1], 8);
    double *d = weft_array_data(a);
    for (int i = 0; i < 12; i++) CHECK(d[i] == 0.0);
    for (int i = 0; i < 12; i++) d[i] = i;
    /* to Fortran order, big endian */
    weft_array_options o = {WEFT_ORDER_F, WEFT_ENDIAN_BIG, 0};
    REQUIRE_OK(weft_array_copy(a, &o, &f));
    CHECK(weft_array_is_contiguous(f, WEFT_ORDER_F) && !weft_array_is_contiguous(f, WEFT_ORDER_C));
    CHECK_EQ_INT((int)weft_array_strides(f)[0], 8);
    CHECK(weft_array_endian(f) == WEFT_ENDIAN_BIG);
    uint64_t bits;
    memcpy(&bits, weft_array_at(f, (size_t[]){2, 1}), 8);
    double nine = 9.0;
    uint64_t want;
    memcpy(&want, &nine, 8);
    CHECK(bits == (weft__endian_native() == WEFT_ENDIAN_BIG ? want : __builtin_bswap64(want)));
    CHECK_OK(weft_array_byteswap(f)); /* now native, same values */
    CHECK(*(double *)weft_array_at(f, (size_t[]){2, 1}) == 9.0);
    /* a transposed view of `a`, kept alive after `a` is gone */
    ptrdiff_t ts[2] = {8, 32};
    size_t tsh[2] = {4, 3};
    REQUIRE_OK(weft_array_view(a, 2, tsh, ts, 0, &v));
    CHECK(weft_array_is_contiguous(v, WEFT_ORDER_F));
    CHECK_OK(weft_array_destroy(a));
    CHECK(*(double *)weft_array_at(v, (size_t[]){3, 1}) == 7.0);
    CHECK(weft_array_at(v, (size_t[]){4, 0}) == NULL);
    /* views that reach outside are refused */
    weft_array *bad = NULL;
    size_t big[1] = {13};
    CHECK_ERR(weft_array_view(v, 1, big, NULL, 0, &bad), WEFT_EINVAL);
    size_t one[1] = {12};
    CHECK_ERR(weft_array_view(v, 1, one, NULL, 8, &bad), WEFT_EINVAL);
    ptrdiff_t neg[1] = {-8};
    CHECK_ERR(weft_array_view(v, 1, one, neg, 0, &bad), WEFT_EINVAL);
    CHECK_OK(weft_array_view(v, 1, one, neg, 88, &bad));
    CHECK(*(double *)weft_array_at(bad, (size_t[]){0}) == 11.0);
    weft_array_destroy(bad);
    CHECK_OK(weft_array_destroy(v));
    CHECK_OK(weft_array_destroy(f));
    /* bad arguments */
    weft_array *x = NULL;
    size_t huge[3] = {SIZE_MAX / 2, 3, 0};
    CHECK_ERR(weft_array_create(WEFT_DTYPE_INT8, 3, huge, NULL, &x), WEFT_EINVAL);
    CHECK_ERR(weft_array_create((weft_dtype)99, 1, sh, NULL, &x), WEFT_EINVAL);
    CHECK_ERR(weft_array_create(WEFT_DTYPE_INT8, WEFT_ARRAY_MAX_NDIM + 1, sh, NULL, &x),
              WEFT_EINVAL);
    CHECK_ERR(weft_array_wrap(NULL, WEFT_DTYPE_INT8, 1, sh, NULL, &x), WEFT_EINVAL);
    CHECK(x == NULL);
    CHECK_EQ_STR(weft_dtype_name(WEFT_DTYPE_COMPLEX64), "complex64");
    CHECK_EQ_INT((int)weft_dtype_size(WEFT_DTYPE_COMPLEX128), 16);
    CHECK_EQ_INT((int)weft_dtype_size((weft_dtype)0), 0);
    /* wrap: the caller's memory, never freed by weft */
    int16_t mem[6] = {1, 2, 3, 4, 5, 6};
    size_t ws[2] = {2, 3};
    REQUIRE_OK(weft_array_wrap(mem, WEFT_DTYPE_INT16, 2, ws, NULL, &x));
    CHECK(*(int16_t *)weft_array_at(x, (size_t[]){1, 2}) == 6);
    CHECK_OK(weft_array_save(x, "wrapped.npy", NULL));
    weft_array_destroy(x);
    REQUIRE_OK(weft_array_load("wrapped.npy", NULL, &x));
    CHECK(memcmp(weft_array_data(x), mem, sizeof mem) == 0);
    weft_array_destroy(x);
    CHECK_OK(weft_array_destroy(NULL));
}

TEST(zst_round_trip_and_streaming)
{
    /* 8 MiB: more than zstd's stream buffers many times over */
    size_t sh[2] = {1024, 1024};
    weft_array *a = NULL, *b = NULL;
    weft_array_options fo = {WEFT_ORDER_F, WEFT_ENDIAN_BIG, 0};
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_INT64, 2, sh, &fo, &a));
    int64_t *p = weft_array_data(a);
    for (size_t i = 0; i < 1024 * 1024; i++) p[i] = (int64_t)(i % 1000) * 7;
    CHECK_OK(weft_array_save(a, "a.npy.zst", NULL));
    CHECK_OK(weft_array_save(a, "a.npy", NULL));
    struct stat sz, sn;
    REQUIRE(stat("a.npy.zst", &sz) == 0 && stat("a.npy", &sn) == 0);
    CHECK_MSG(sz.st_size * 10 < sn.st_size, "compressed %ld of %ld", (long)sz.st_size,
              (long)sn.st_size);
    REQUIRE_OK(weft_array_load("a.npy.zst", NULL, &b));
    CHECK(weft_array_is_contiguous(b, WEFT_ORDER_F) && weft_array_endian(b) == WEFT_ENDIAN_BIG);
    CHECK(weft_array_nbytes(b) == weft_array_nbytes(a) &&
          memcmp(weft_array_data(a), weft_array_data(b), weft_array_nbytes(a)) == 0);
    weft_array_destroy(b);
    /* the .zst holds exactly the .npy's bytes */
    size_t nz, nn;
    unsigned char *z = slurp("a.npy.zst", &nz), *n = slurp("a.npy", &nn);
    REQUIRE(z && n);
    unsigned char *d = malloc(nn + 1);
    size_t got = ZSTD_decompress(d, nn + 1, z, nz);
    CHECK(!ZSTD_isError(got) && got == nn && memcmp(d, n, nn) == 0);
    free(d);
    /* truncated and corrupted streams are refused */
    spit("cut.npy.zst", z, nz / 2);
    CHECK_ERR(weft_array_load("cut.npy.zst", NULL, &b), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "cut.npy.zst") != NULL);
    z[nz / 2] ^= 0x5a;
    spit("flip.npy.zst", z, nz);
    CHECK_ERR(weft_array_load("flip.npy.zst", NULL, &b), WEFT_EINVAL);
    CHECK(b == NULL);
    weft_npy_load_options mo = {WEFT_MMAP_READ};
    CHECK_ERR(weft_array_load("a.npy.zst", &mo, &b), WEFT_EINVAL);
    free(z);
    free(n);
    weft_array_destroy(a);
}

TEST(mmap_modes)
{
    size_t n = 4096;
    weft_array *a = NULL, *m = NULL, *back = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_FLOAT32, 1, &n, NULL, &a));
    float *p = weft_array_data(a);
    for (size_t i = 0; i < n; i++) p[i] = (float)i;
    REQUIRE_OK(weft_array_save(a, "m.npy", NULL));
    /* 'r': the file's bytes, read-only */
    weft_npy_load_options o = {WEFT_MMAP_READ};
    REQUIRE_OK(weft_array_load("m.npy", &o, &m));
    CHECK(!weft_array_writable(m));
    CHECK(((uintptr_t)weft_array_data(m) & 63) == 0);
    CHECK(memcmp(weft_array_data(m), p, n * 4) == 0);
    CHECK_ERR(weft_array_byteswap(m), WEFT_EPERM);
    if (!CHECK_ASAN && !CHECK_TSAN) {
        pid_t pid = fork();
        if (pid == 0) {
            ((volatile float *)weft_array_data(m))[0] = 1.0f; /* faults */
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "a write to an 'r' map: %d", st);
    }
    weft_array_destroy(m);
    /* 'c': writes stay in this process */
    o.mmap_mode = WEFT_MMAP_COPY;
    REQUIRE_OK(weft_array_load("m.npy", &o, &m));
    CHECK(weft_array_writable(m));
    ((float *)weft_array_data(m))[7] = -1.0f;
    weft_array_destroy(m);
    REQUIRE_OK(weft_array_load("m.npy", NULL, &back));
    CHECK(((float *)weft_array_data(back))[7] == 7.0f);
    weft_array_destroy(back);
    /* 'r+': writes reach the file */
    o.mmap_mode = WEFT_MMAP_READWRITE;
    REQUIRE_OK(weft_array_load("m.npy", &o, &m));
    ((float *)weft_array_data(m))[9] = -2.0f;
    weft_array_destroy(m);
    REQUIRE_OK(weft_array_load("m.npy", NULL, &back));
    CHECK(((float *)weft_array_data(back))[9] == -2.0f);
    weft_array_destroy(back);
    weft_array_destroy(a);
}

/* A 10 GiB array (a sparse file: the header, then a hole) opens by mmap in
 * microseconds: nothing of the data is read. */
TEST(mmap_10gib_sparse_file_opens_at_once)
{
    size_t n = (size_t)10 << 27; /* 10 GiB of float64 */
    weft_array *hdr = NULL;
    size_t one = 1;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_FLOAT64, 1, &one, NULL, &hdr));
    /* the header of a 10 GiB array, from a view that claims its shape */
    char h[WEFT__NPY_HEADER_CAP];
    size_t hlen = 0;
    hdr->shape[0] = n; /* internal: only the header is formatted from it */
    REQUIRE_OK(weft__npy_format_header(hdr, 0, h, sizeof h, &hlen));
    hdr->shape[0] = 1;
    weft_array_destroy(hdr);
    int fd = open("big.npy", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, h, hlen) == (ssize_t)hlen);
    if (ftruncate(fd, (off_t)(hlen + n * 8)) != 0) {
        close(fd);
        unlink("big.npy");
        SKIP("the file system refuses a 10 GiB sparse file");
    }
    close(fd);
    weft_npy_load_options o = {WEFT_MMAP_READ};
    weft_array *a = NULL;
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = weft_now();
        REQUIRE_OK(weft_array_load("big.npy", &o, &a));
        double dt = weft_now() - t0;
        if (dt < best) best = dt;
        CHECK(weft_array_size(a) == n);
        CHECK(((double *)weft_array_data(a))[n - 1] == 0.0);
        weft_array_destroy(a);
    }
    printf("    10 GiB mmap open: best of 5 %.1f us\n", best * 1e6);
    /* reading 10 GiB, even of a hole, takes seconds: well under one means
     * nothing was read */
    CHECK_MSG(best < 0.25, "open took %.3f s", best);
    unlink("big.npy");
}

/* Corrupt, truncated and hostile headers: WEFT_EINVAL, the file named. */
TEST(corrupt_files_are_rejected)
{
    static const char *headers[] = {
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", /* the good one */
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3), }",
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (3,), }",
        "{'descr': '<f8', 'fortran_order': 'False', 'shape': (3,), }",
        "{'descr': '<f8', 'shape': (3,), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'extra': 1, }",
        "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<U4', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<f3', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<f88', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), } x",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,),",
        "{'descr': '<f8\\', 'fortran_order': False, 'shape': (3,), }",
        "['descr', '<f8']",
        "",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        unsigned char f[512] = "\x93NUMPY\x01\x00";
        size_t hl = strlen(headers[i]), body = hl + 1, pad = 64 - (10 + body) % 64;
        memcpy(f + 10, headers[i], hl);
        memset(f + 10 + hl, ' ', pad);
        f[10 + hl + pad] = '\n';
        size_t total = 10 + hl + pad + 1;
        f[8] = (unsigned char)(total - 10);
        f[9] = (unsigned char)((total - 10) >> 8);
        memset(f + total, 0, 24); /* three doubles */
        char path[32];
        snprintf(path, sizeof path, "bad%zu.npy", i);
        spit(path, f, total + 24);
        weft_array *a = NULL;
        int rc = weft_array_load(path, NULL, &a);
        if (i == 0) {
            CHECK_OK(rc);
            CHECK(a && weft_array_size(a) == 3);
            weft_array_destroy(a);
            /* the good file cut short: truncated data, in every reader */
            spit("short.npy", f, total + 23);
            CHECK_ERR(weft_array_load("short.npy", NULL, &a), WEFT_EINVAL);
            CHECK(strstr(weft_last_error(), "short.npy") && strstr(weft_last_error(), "truncated"));
            weft_npy_load_options mo = {WEFT_MMAP_READ};
            CHECK_ERR(weft_array_load("short.npy", &mo, &a), WEFT_EINVAL);
            CHECK_ERR(weft__npy_from_buffer(f, total + 23, "buf", &a), WEFT_EINVAL);
            CHECK_ERR(weft__npy_from_buffer(f, total - 1, "buf", &a), WEFT_EINVAL);
            /* header length past the end of the file */
            f[8] = 0xff;
            f[9] = 0xff;
            spit("long.npy", f, total + 24);
            CHECK_ERR(weft_array_load("long.npy", NULL, &a), WEFT_EINVAL);
            /* versions */
            f[8] = (unsigned char)(total - 10);
            f[9] = 0;
            f[6] = 4;
            spit("v4.npy", f, total + 24);
            CHECK_ERR(weft_array_load("v4.npy", NULL, &a), WEFT_EINVAL);
            CHECK(strstr(weft_last_error(), "v4.npy") && strstr(weft_last_error(), "version"));
            f[6] = 1;
            f[0] = 'X';
            spit("magic.npy", f, total + 24);
            CHECK_ERR(weft_array_load("magic.npy", NULL, &a), WEFT_EINVAL);
            continue;
        }
        CHECK_MSG(rc == WEFT_EINVAL, "header %zu: rc %d", i, rc);
        CHECK_MSG(strstr(weft_last_error(), path) != NULL, "header %zu: message '%s'", i,
                  weft_last_error());
        CHECK(a == NULL);
    }
    weft_array *a = NULL;
    spit("tiny.npy", "\x93NUM", 4);
    CHECK_ERR(weft_array_load("tiny.npy", NULL, &a), WEFT_EINVAL);
    CHECK_ERR(weft_array_load("does-not-exist.npy", NULL, &a), WEFT_ENOENT);
    /* a version 2.0 header length of 4 GiB is refused before any allocation */
    unsigned char v2[16] = "\x93NUMPY\x02\x00\xff\xff\xff\xff";
    CHECK_ERR(weft__npy_from_buffer(v2, 16, "buf", &a), WEFT_EINVAL);
    /* a directory, not a file */
    CHECK(weft_array_load(".", NULL, &a) < 0);
    weft_npy_load_options mo = {WEFT_MMAP_READ};
    CHECK_ERR(weft_array_load(".", &mo, &a), WEFT_EINVAL);
}

TEST(corrupt_archives_are_rejected)
{
    size_t n = 1000;
    weft_array *a = NULL, *b = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_UINT16, 1, &n, NULL, &a));
    fill(a, 3);
    const char *names[] = {"x"};
    const weft_array *arrs[] = {a};
    REQUIRE_OK(weft_npz_save("ok.npz", names, arrs, 1, NULL));
    size_t len;
    unsigned char *z = slurp("ok.npz", &len);
    REQUIRE(z);
    /* flip a data byte of the stored entry: the CRC check refuses it */
    unsigned char *hit = memmem(z, len, "NUMPY", 5);
    REQUIRE(hit);
    hit[200] ^= 1;
    spit("crc.npz", z, len);
    weft_npz *zz = NULL;
    REQUIRE_OK(weft_npz_open("crc.npz", &zz));
    CHECK_ERR(weft_npz_get(zz, "x", &b), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "crc.npz") != NULL);
    weft_npz_destroy(zz);
    hit[200] ^= 1;
    /* cut short: not an archive any more (the directory is at the end) */
    spit("cut.npz", z, len / 2);
    CHECK_ERR(weft_npz_open("cut.npz", &zz), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "cut.npz") != NULL);
    CHECK_ERR(weft_npz_open("nothere.npz", &zz), WEFT_ENOENT);
    spit("junk.npz", "not a zip at all", 16);
    CHECK_ERR(weft_npz_open("junk.npz", &zz), WEFT_EINVAL);
    /* from memory, as the fuzz target reads */
    CHECK_OK(weft__npz_open_buffer(z, len, "mem", &zz));
    CHECK_OK(weft_npz_get(zz, "x", &b));
    CHECK(b && memcmp(weft_array_data(b), weft_array_data(a), 2000) == 0);
    weft_array_destroy(b);
    weft_npz_destroy(zz);
    free(z);
    weft_array_destroy(a);
}

TEST(save_is_atomic_and_reports_errors)
{
    size_t n = 10;
    weft_array *a = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_INT64, 1, &n, NULL, &a));
    CHECK(weft_array_save(a, "no/such/dir/x.npy", NULL) == WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "no/such/dir/x.npy") != NULL);
    weft_npy_save_options so = {.version = 7};
    CHECK_ERR(weft_array_save(a, "x.npy", &so), WEFT_EINVAL);
    CHECK_OK(weft_array_save(a, "x.npy", NULL));
    /* no temporary file is left beside it */
    DIR *d = opendir(".");
    struct dirent *e;
    int tmp = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) tmp++;
    closedir(d);
    CHECK_EQ_INT(tmp, 0);
    /* a full disk (/dev/full): an error, and no file */
    if (access("/dev/full", W_OK) == 0) {
        /* /dev/full is not a directory: a file inside cannot be created */
        CHECK(weft_array_save(a, "/dev/full/x.npy", NULL) < 0);
    }
    weft_array_destroy(a);
}

/* Files whose name holds ".tmp." in `dir`: weft_array_save's temporaries. */
static int tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

/* An array of n float64, each equal to n: a file of it is whole if every
 * element equals the count. */
static weft_array *counted(size_t n)
{
    weft_array *a = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_FLOAT64, 1, &n, NULL, &a));
    double *d = weft_array_data(a);
    for (size_t i = 0; i < n; i++) d[i] = (double)n;
    return a;
}

typedef struct swap_reader {
    const char *path;
    atomic_bool stop;
    atomic_int reads, missing, wrong;
} swap_reader;

static void *read_while_saving(void *arg)
{
    swap_reader *r = arg;
    while (!atomic_load(&r->stop)) {
        weft_array *b = NULL;
        int rc = weft_array_load(r->path, NULL, &b);
        if (rc == WEFT_ENOENT) {
            atomic_fetch_add(&r->missing, 1);
        } else if (rc != 0) {
            atomic_fetch_add(&r->wrong, 1);
        } else {
            size_t n = weft_array_size(b);
            const double *d = weft_array_data(b);
            bool ok = n == 1000 || n == 3000;
            for (size_t i = 0; ok && i < n; i++) ok = d[i] == (double)n;
            if (!ok) atomic_fetch_add(&r->wrong, 1);
            weft_array_destroy(b);
        }
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

/* The old file is exchanged for the new one in one step: a reader that
 * loads the path again and again while it is saved over and over always
 * finds a file (never ENOENT, as when the old file was unlinked before the
 * rename) and always a whole one of the two versions. */
TEST(save_replaces_the_old_file_in_one_step)
{
    weft_array *a = counted(1000), *b = counted(3000);
    const char *path = "swap.npy";
    REQUIRE_OK(weft_array_save(a, path, NULL));
    swap_reader r = {.path = path};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, read_while_saving, &r) == 0);
    /* at least 300 saves, then more, a millisecond apart, until the reader
     * has read 100 times during them (a busy machine may starve it a while) */
    int saves = 0, rc = 0;
    int reads0 = atomic_load(&r.reads);
    while (rc == 0 && saves < 300) rc = weft_array_save(saves++ % 2 ? a : b, path, NULL);
    for (int ms = 0; rc == 0 && atomic_load(&r.reads) - reads0 < 100 && ms < 30000; ms++) {
        rc = weft_array_save(saves++ % 2 ? a : b, path, NULL);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    CHECK_OK(rc);
    CHECK_MSG(atomic_load(&r.reads) - reads0 >= 100, "the reader read %d times in %d saves",
              atomic_load(&r.reads) - reads0, saves);
    CHECK_EQ_INT(atomic_load(&r.missing), 0);
    CHECK_EQ_INT(atomic_load(&r.wrong), 0);
    CHECK_EQ_INT(tmp_files("."), 0);
    /* the last save is what is there */
    weft_array *c = NULL;
    REQUIRE_OK(weft_array_load(path, NULL, &c));
    CHECK_EQ_INT(weft_array_size(c), (saves - 1) % 2 ? 1000 : 3000);
    weft_array_destroy(c);
    unlink(path);
    weft_array_destroy(a);
    weft_array_destroy(b);
}

/* In a child (the limit stays there): RLIMIT_FSIZE of 64 KiB with SIGXFSZ
 * ignored, so writing the 1 MiB temporary fails with EFBIG half way. Exit 0
 * ok, 1 wrong code, 2 message without the path. */
static int save_over_the_limit(const char *path)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {64 << 10, 64 << 10};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 77;
    weft_array *big = counted(1 << 17);
    int rc = weft_array_save(big, path, NULL);
    weft_array_destroy(big);
    if (rc != -EFBIG) {
        printf("    weft_array_save over the limit: %d (%s)\n", rc, weft_last_error());
        return 1;
    }
    return strstr(weft_last_error(), path) ? 0 : 2;
}

/* A save that fails leaves the old file as it was and no temporary: a
 * write that fails half way (the file size limit), and a directory in the
 * way (exchanged with the new file, then the exchange is undone, as the old
 * "file" cannot be unlinked). */
TEST(a_failed_save_keeps_the_old_file)
{
    weft_array *small = counted(1000);
    const char *path = "keep.npy";
    REQUIRE_OK(weft_array_save(small, path, NULL));
    size_t n0 = 0, n1 = 0;
    unsigned char *before = slurp(path, &n0);
    REQUIRE(before);
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        int code = save_over_the_limit(path);
        fflush(stdout);
        _exit(code);
    }
    int st;
    REQUIRE(waitpid(p, &st, 0) == p);
    REQUIRE(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77) SKIP("setrlimit(RLIMIT_FSIZE) failed");
    CHECK_EQ_INT(WEXITSTATUS(st), 0);
    unsigned char *after = slurp(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    CHECK_EQ_INT(tmp_files("."), 0);

    const char *dir = "in_the_way.npy";
    REQUIRE(mkdir(dir, 0700) == 0 || errno == EEXIST);
    CHECK_ERR(weft_array_save(small, dir, NULL), -EISDIR);
    CHECK(strstr(weft_last_error(), dir) != NULL);
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK_EQ_INT(tmp_files("."), 0);
    rmdir(dir);
    unlink(path);
    weft_array_destroy(small);
}

/* WEFT_NPY_SAVE_IN_PLACE writes over the file as np.save does: the same
 * inode (a hard link sees the new array), cut when the new array is
 * shorter, grown when longer (past the 4 MiB where space is reserved
 * first), the very bytes an atomic save writes, .zst too; a new path is
 * created; an unknown mode is refused. */
TEST(save_in_place_writes_over_the_file)
{
    const char *path = "inplace.npy", *link_path = "inplace_link.npy", *ref = "inplace_ref.npy";
    unlink(path);
    unlink(link_path);
    weft_npy_save_options ip = {.mode = WEFT_NPY_SAVE_IN_PLACE};
    weft_array *mid = counted(1000);
    CHECK_OK(weft_array_save(mid, path, &ip)); /* a new file */
    REQUIRE(link(path, link_path) == 0);
    struct stat s0, s1;
    REQUIRE(stat(path, &s0) == 0);
    static const size_t sizes[] = {100, 600000, 1000, 7, 2 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        weft_array *a = counted(sizes[k]);
        CHECK_OK(weft_array_save(a, path, &ip));
        CHECK_OK(weft_array_save(a, ref, NULL));
        size_t n = 0, nr = 0;
        unsigned char *got = slurp(link_path, &n), *want = slurp(ref, &nr);
        CHECK(got && want && n == nr && memcmp(got, want, n) == 0);
        free(got);
        free(want);
        REQUIRE(stat(path, &s1) == 0);
        CHECK(s1.st_ino == s0.st_ino);
        weft_array *back = NULL;
        CHECK_OK(weft_array_load(path, NULL, &back));
        CHECK(back && weft_array_size(back) == sizes[k] &&
              ((double *)weft_array_data(back))[sizes[k] - 1] == (double)sizes[k]);
        weft_array_destroy(back);
        weft_array_destroy(a);
    }
    /* compressed over a longer plain file */
    weft_array *big = counted(300000);
    CHECK_OK(weft_array_save(big, path, &ip));
    CHECK_OK(rename(path, "inplace.npy.zst") == 0 ? 0 : -errno);
    CHECK_OK(weft_array_save(mid, "inplace.npy.zst", &ip));
    weft_array *back = NULL;
    CHECK_OK(weft_array_load("inplace.npy.zst", NULL, &back));
    CHECK(back && weft_array_size(back) == 1000 &&
          memcmp(weft_array_data(back), weft_array_data(mid), 8000) == 0);
    weft_array_destroy(back);
    ip.mode = (weft_npy_save_mode)7;
    CHECK_ERR(weft_array_save(mid, path, &ip), WEFT_EINVAL);
    CHECK(strstr(weft_last_error(), "mode") != NULL);
    CHECK_EQ_INT(tmp_files("."), 0);
    unlink("inplace.npy.zst");
    unlink(link_path);
    unlink(ref);
    unlink(path);
    weft_array_destroy(big);
    weft_array_destroy(mid);
}

/* In a child: a 256 KiB tmpfs in a mount namespace of its own (a user
 * namespace too when not root), a small file saved there, then a 512 KiB
 * save over it. Exit 0 ok, 77 no mount, 1-7 wrong. */
static int save_on_a_full_disk(const char *mnt)
{
    const char *opts = "size=256k,mode=0700";
    bool ns = unshare(CLONE_NEWNS) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0;
    if (!ns || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, opts) != 0)
        return 77;
    char file[600];
    snprintf(file, sizeof file, "%s/x.npy", mnt);
    weft_array *small = counted(1000), *big = counted(1 << 16);
    int rc = weft_array_save(small, file, NULL);
    if (rc == -EOVERFLOW) return 77; /* a user namespace without a uid map */
    if (rc != 0) return 1;
    rc = weft_array_save(big, file, NULL);
    printf("    512 KiB on a 256 KiB tmpfs: %s (%s)\n", weft_strerror(rc), weft_last_error());
    if (rc != WEFT_ENOSPC || !strstr(weft_last_error(), file)) return 2;
    weft_array *c = NULL;
    if (weft_array_load(file, NULL, &c) != 0 || weft_array_size(c) != 1000 ||
        ((double *)weft_array_data(c))[999] != 1000.0)
        return 3;
    weft_array_destroy(c);
    if (tmp_files(mnt) != 0) return 4;
    /* 4 MiB and more: fallocate says ENOSPC before anything is written */
    weft_array *huge = counted(1 << 19);
    rc = weft_array_save(huge, file, NULL);
    weft_array_destroy(huge);
    printf("    4 MiB on a 256 KiB tmpfs: %s (%s)\n", weft_strerror(rc), weft_last_error());
    if (rc != WEFT_ENOSPC || !strstr(weft_last_error(), file)) return 5;
    if (weft_array_load(file, NULL, &c) != 0 || weft_array_size(c) != 1000) return 6;
    weft_array_destroy(c);
    if (tmp_files(mnt) != 0) return 7;
    /* in place: 4 MiB and more reserve their space before the old bytes
     * are touched, so a full disk leaves the old file whole too */
    weft_npy_save_options ip = {.mode = WEFT_NPY_SAVE_IN_PLACE};
    huge = counted(1 << 19);
    rc = weft_array_save(huge, file, &ip);
    weft_array_destroy(huge);
    printf("    4 MiB in place on a 256 KiB tmpfs: %s (%s)\n", weft_strerror(rc),
           weft_last_error());
    if (rc != WEFT_ENOSPC || !strstr(weft_last_error(), file)) return 8;
    if (weft_array_load(file, NULL, &c) != 0 || weft_array_size(c) != 1000) return 9;
    weft_array_destroy(c);
    /* and with room again, the save goes through */
    weft_array_destroy(big);
    big = counted(2000);
    if (weft_array_save(big, file, NULL) != 0 || tmp_files(mnt) != 0) return 4;
    weft_array_destroy(big);
    weft_array_destroy(small);
    return 0;
}

TEST(a_full_disk_is_an_error_and_keeps_the_old_file)
{
    const char *mnt = "full-tmpfs";
    REQUIRE(mkdir(mnt, 0700) == 0 || errno == EEXIST);
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        int code = save_on_a_full_disk(mnt);
        fflush(stdout);
        _exit(code);
    }
    int st;
    REQUIRE(waitpid(p, &st, 0) == p);
    REQUIRE(WIFEXITED(st));
    rmdir(mnt);
    if (WEXITSTATUS(st) == 77)
        SKIP("cannot mount a tmpfs here (no CAP_SYS_ADMIN and no user namespaces)");
    CHECK_EQ_INT(WEXITSTATUS(st), 0);
}
/* ------------------------------------------------------------------------
 * Big arguments without copies
 * ------------------------------------------------------------------------ */

/* Mappings of memfds in this process (/proc/self/maps lines "/memfd:"). */
static int memfd_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char ln[512];
    int n = 0;
    while (fgets(ln, sizeof ln, f))
        if (strstr(ln, "/memfd:")) n++;
    fclose(f);
    return n;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d)) n++;
    if (d) closedir(d);
    return n;
}

/* Entries of /dev/shm that name weft or this process. The directory is the
 * machine's: other programs come and go there, so only names that could be
 * ours count (weft itself uses memfds, never shm_open). */
static int dev_shm_ours(void)
{
    DIR *d = opendir("/dev/shm");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, "weft") || strstr(e->d_name, pid)) n++;
    if (d) closedir(d);
    return n;
}

/* The task of the argument tests: sums a float64 array, then, for an index
 * of 10 or more, writes -index into element `index` (when writable), and
 * reports the sum, its pid and the worker's memfd mappings before and
 * after. Tasks of indices below 10 only read, so concurrent sums agree. */
typedef struct arg_out {
    double sum;
    int64_t maps_before, maps_after;
    int64_t pid;
} arg_out;

static int sum_and_mark(weft_ctx *ctx, const void *in, size_t len)
{
    arg_out o = {0, memfd_maps(), 0, getpid()};
    weft_array *a = NULL;
    int rc = weft_array_arg_open(in, len, &a);
    if (rc) return weft_ctx_fail(ctx, rc, "open: %s", weft_last_error());
    if (weft_array_dtype(a) != WEFT_DTYPE_FLOAT64 || weft_array_ndim(a) != 1) {
        weft_array_destroy(a);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "wrong dtype or ndim");
    }
    const double *d = weft_array_data(a);
    size_t n = weft_array_size(a);
    for (size_t i = 0; i < n; i++) o.sum += d[i];
    uint64_t k = weft_ctx_index(ctx);
    if (weft_array_writable(a) && k >= 10 && k < n) ((double *)weft_array_data(a))[k] = -(double)k;
    weft_array_destroy(a);
    o.maps_after = memfd_maps();
    return weft_ctx_set_output(ctx, &o, sizeof o);
}
WEFT_TASK_REGISTER(sum_and_mark);

static weft_executor *executor(weft_backend b, int workers)
{
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = b;
    o.workers = workers;
    weft_executor *ex = NULL;
    REQUIRE_OK(weft_executor_create(&o, &ex));
    return ex;
}

static void run_tasks(weft_executor *ex, weft_array_arg *arg, int ntasks, uint64_t first,
                      double want_sum, arg_out *outs)
{
    const void *bytes;
    size_t len;
    REQUIRE_OK(weft_array_arg_bytes(arg, &bytes, &len));
    weft_future *fs[8];
    for (int i = 0; i < ntasks; i++) {
        weft_submit_options so = {0};
        so.index = first + (uint64_t)i;
        so.has_index = true;
        REQUIRE_OK(weft_submit_ex(ex, sum_and_mark, bytes, len, &so, &fs[i]));
    }
    for (int i = 0; i < ntasks; i++) {
        const void *out;
        size_t olen;
        int rc = weft_future_result(fs[i], WEFT_FOREVER, &out, &olen);
        CHECK_MSG(rc == 0, "task %d: %s", i, weft_future_error(fs[i]));
        if (rc == 0 && olen == sizeof *outs) {
            memcpy(&outs[i], out, sizeof *outs);
            CHECK_MSG(outs[i].sum == want_sum, "task %d: sum %g, want %g", i, outs[i].sum,
                      want_sum);
            /* a worker keeps the mapping of a shared array for its next
             * tasks (arg.c, "Kept mappings"): one more at most */
            CHECK_MSG(outs[i].maps_after <= outs[i].maps_before + 1,
                      "task %d: the worker kept mappings (%d -> %d)", i, (int)outs[i].maps_before,
                      (int)outs[i].maps_after);
        }
        weft_future_release(fs[i]);
    }
}

static weft_array *iota(size_t n, unsigned flags, double *sum)
{
    weft_array_options o = {WEFT_ORDER_C, WEFT_ENDIAN_NATIVE, flags};
    weft_array *a = NULL;
    REQUIRE_OK(weft_array_create(WEFT_DTYPE_FLOAT64, 1, &n, &o, &a));
    double *d = weft_array_data(a);
    *sum = 0;
    for (size_t i = 0; i < n; i++) *sum += (d[i] = (double)(i % 1000));
    return a;
}

/* threads: the bytes carry a reference; the task writes the caller's array */
TEST(arg_threads_pass_a_reference)
{
    weft_executor *ex = executor(WEFT_BACKEND_THREADS, 2);
    double sum;
    weft_array *a = iota((size_t)1 << 20, 0, &sum);
    weft_array_arg *arg = NULL;
    REQUIRE_OK(weft_array_arg_create(ex, a, NULL, &arg));
    const void *bytes;
    size_t len;
    CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
    CHECK_MSG(len < 2048, "%zu input bytes for an 8 MiB array", len);
    CHECK(!weft_array_arg_shared(arg));
    arg_out outs[2];
    run_tasks(ex, arg, 2, 0, sum, outs);
    run_tasks(ex, arg, 1, 10, sum, outs); /* writes element 10 */
    CHECK(((double *)weft_array_data(a))[10] == -10.0);
    weft_array_destroy(a); /* the arg keeps the memory */
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_executor_destroy(ex);
}

/* processes: a WEFT_ARRAY_SHARED array above the threshold travels as a
 * token; workers map the same pages, so their writes reach the caller and
 * no element is copied; nothing leaks in the caller or the workers */
TEST(arg_processes_share_big_arrays)
{
    weft_executor *ex = executor(WEFT_BACKEND_PROCESSES, 2);
    int fds0 = open_fds(), maps0 = memfd_maps(), shm0 = dev_shm_ours();
    double sum;
    size_t n = (size_t)1 << 21; /* 16 MiB */
    weft_array *a = iota(n, WEFT_ARRAY_SHARED, &sum);
    for (int round = 0; round < 3; round++) {
        weft_array_arg *arg = NULL;
        REQUIRE_OK(weft_array_arg_create(ex, a, NULL, &arg));
        CHECK(weft_array_arg_shared(arg));
        const void *bytes;
        size_t len;
        CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
        CHECK_MSG(len < 2048, "%zu input bytes for a 16 MiB array", len);
        arg_out outs[2];
        run_tasks(ex, arg, 2, 0, sum, outs);
        CHECK(outs[0].pid != getpid() && outs[1].pid != getpid());
        /* a worker writes element 10 + round of the caller's array in place */
        size_t k = 10 + (size_t)round;
        run_tasks(ex, arg, 1, k, sum, outs);
        CHECK_MSG(((double *)weft_array_data(a))[k] == -(double)k, "round %d", round);
        ((double *)weft_array_data(a))[k] = (double)k; /* as iota made it */
        CHECK_OK(weft_array_arg_destroy(arg));
    }
    /* several tasks at once, each marking its own element */
    weft_array_arg *arg = NULL;
    REQUIRE_OK(weft_array_arg_create(ex, a, NULL, &arg));
    const void *bytes;
    size_t len;
    CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
    weft_future *fs[6];
    for (int i = 0; i < 6; i++) {
        weft_submit_options so = {0};
        so.index = (uint64_t)i + 10;
        so.has_index = true;
        REQUIRE_OK(weft_submit_ex(ex, sum_and_mark, bytes, len, &so, &fs[i]));
    }
    for (int i = 0; i < 6; i++) {
        CHECK_OK(weft_future_wait(fs[i], WEFT_FOREVER));
        weft_future_release(fs[i]);
    }
    for (int i = 0; i < 6; i++) CHECK(((double *)weft_array_data(a))[10 + i] == -(double)(10 + i));
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_array_destroy(a);
    CHECK_EQ_INT(open_fds(), fds0);
    CHECK_EQ_INT(memfd_maps(), maps0);
    CHECK_EQ_INT(dev_shm_ours(), shm0);
    weft_executor_destroy(ex);
}

/* processes: a worker keeps its mapping of a shared array from one task
 * to the next (no mapping added after the first task); once the caller
 * destroys the array, the worker drops that mapping at its next open, a
 * new array in its place is read, not the old pages, and the old
 * argument's bytes are refused (WEFT_ENOENT) */
TEST(arg_processes_keep_mappings_between_tasks)
{
    weft_executor *ex = executor(WEFT_BACKEND_PROCESSES, 1);
    int fds0 = open_fds(), maps0 = memfd_maps();
    double sum;
    size_t n = (size_t)1 << 21; /* 16 MiB */
    weft_array *a = iota(n, WEFT_ARRAY_SHARED, &sum);
    weft_array_arg *arg = NULL;
    REQUIRE_OK(weft_array_arg_create(ex, a, NULL, &arg));
    arg_out outs[1];
    run_tasks(ex, arg, 1, 0, sum, outs);
    int64_t first = outs[0].maps_after - outs[0].maps_before;
    CHECK_MSG(first == 1, "the first task kept %d mappings", (int)first);
    for (int i = 0; i < 3; i++) {
        run_tasks(ex, arg, 1, 0, sum, outs);
        CHECK_MSG(outs[0].maps_after == outs[0].maps_before, "task %d: %d -> %d mappings", i,
                  (int)outs[0].maps_before, (int)outs[0].maps_after);
    }
    const void *bytes;
    size_t len;
    CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
    unsigned char *stale = malloc(len);
    REQUIRE(stale);
    memcpy(stale, bytes, len);
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_array_destroy(a);
    /* another shared array (likely at the same fd number), other values */
    weft_array *b = iota(n, WEFT_ARRAY_SHARED, &sum);
    double *d = weft_array_data(b);
    sum = 0;
    for (size_t i = 0; i < n; i++) sum += (d[i] = (double)(i % 7));
    REQUIRE_OK(weft_array_arg_create(ex, b, NULL, &arg));
    run_tasks(ex, arg, 1, 0, sum, outs); /* the old mapping dropped, the new one kept */
    CHECK_MSG(outs[0].maps_after == outs[0].maps_before, "after the destroy: %d -> %d mappings",
              (int)outs[0].maps_before, (int)outs[0].maps_after);
    weft_future *f;
    REQUIRE_OK(weft_submit(ex, sum_and_mark, stale, len, &f));
    CHECK_EQ_INT(weft_future_result(f, WEFT_FOREVER, NULL, NULL), WEFT_ENOENT);
    weft_future_release(f);
    free(stale);
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_array_destroy(b);
    CHECK_EQ_INT(open_fds(), fds0);
    CHECK_EQ_INT(memfd_maps(), maps0);
    weft_executor_destroy(ex);
}

/* processes: a private array above the threshold is copied once into a
 * region the arg owns (the task sees the values, the input is a token); a
 * small array and a strided view travel in the bytes */
TEST(arg_processes_copy_private_and_inline_small)
{
    weft_executor *ex = executor(WEFT_BACKEND_PROCESSES, 2);
    int fds0 = open_fds(), maps0 = memfd_maps();
    double sum;
    weft_array *big = iota((size_t)1 << 18, 0, &sum); /* 2 MiB */
    weft_array_arg *arg = NULL;
    REQUIRE_OK(weft_array_arg_create(ex, big, NULL, &arg));
    CHECK(weft_array_arg_shared(arg));
    arg_out outs[2];
    run_tasks(ex, arg, 2, 0, sum, outs);
    run_tasks(ex, arg, 1, 10, sum, outs); /* writes the arg's copy, not `big` */
    CHECK(((double *)weft_array_data(big))[10] == 10.0);
    CHECK_OK(weft_array_arg_destroy(arg));
    /* the same array with a threshold above its size: in the bytes */
    weft_array_arg_options ao = {(size_t)4 << 20};
    REQUIRE_OK(weft_array_arg_create(ex, big, &ao, &arg));
    CHECK(!weft_array_arg_shared(arg));
    const void *bytes;
    size_t len;
    CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
    CHECK(len >= weft_array_nbytes(big));
    run_tasks(ex, arg, 1, 0, sum, outs);
    CHECK_OK(weft_array_arg_destroy(arg));
    /* a strided view (every other element): in C order in the bytes */
    size_t half = ((size_t)1 << 18) / 2;
    ptrdiff_t st = 16;
    weft_array *v = NULL;
    REQUIRE_OK(weft_array_view(big, 1, &half, &st, 0, &v));
    double vsum = 0;
    for (size_t i = 0; i < half; i++) vsum += (double)((2 * i) % 1000);
    REQUIRE_OK(weft_array_arg_create(ex, v, &ao, &arg));
    run_tasks(ex, arg, 1, 0, vsum, outs);
    CHECK_OK(weft_array_arg_destroy(arg));
    /* and as shared memory (copied: a view is not contiguous); 1 MiB is at
     * the default threshold, which counts as above */
    REQUIRE_OK(weft_array_arg_create(ex, v, NULL, &arg));
    CHECK(weft_array_arg_shared(arg));
    run_tasks(ex, arg, 1, 0, vsum, outs);
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_array_destroy(v);
    weft_array_destroy(big);
    CHECK_EQ_INT(open_fds(), fds0);
    CHECK_EQ_INT(memfd_maps(), maps0);
    weft_executor_destroy(ex);
}

TEST(arg_bad_bytes_are_refused)
{
    weft_array *a = NULL;
    CHECK_ERR(weft_array_arg_open("junk", 4, &a), WEFT_EINVAL);
    unsigned char zeros[4096] = {0};
    CHECK_ERR(weft_array_arg_open(zeros, sizeof zeros, &a), WEFT_EINVAL);
    /* a reference made in this process, altered to claim another pid */
    weft_executor *ex = executor(WEFT_BACKEND_SERIAL, 1);
    double sum;
    weft_array *x = iota(100, 0, &sum);
    weft_array_arg *arg = NULL;
    REQUIRE_OK(weft_array_arg_create(ex, x, NULL, &arg));
    const void *bytes;
    size_t len;
    CHECK_OK(weft_array_arg_bytes(arg, &bytes, &len));
    unsigned char *copy = malloc(len);
    memcpy(copy, bytes, len);
    CHECK_OK(weft_array_arg_open(copy, len, &a));
    CHECK(a && weft_array_size(a) == 100);
    weft_array_destroy(a);
    CHECK_ERR(weft_array_arg_open(copy, len - 1, &a), WEFT_EINVAL);
    /* the pid field follows the metadata: flip every byte until one is refused */
    copy[8] ^= 0x7f; /* dtype */
    CHECK_ERR(weft_array_arg_open(copy, len, &a), WEFT_EINVAL);
    free(copy);
    CHECK_OK(weft_array_arg_destroy(arg));
    weft_array_destroy(x);
    CHECK_ERR(weft_array_arg_create(NULL, x, NULL, &arg), WEFT_EINVAL);
    weft_executor_destroy(ex);
}

/* examples/array_npy: dumps an array, prints the numpy line that reads it
 * back and what numpy should print; run both (threads and processes). */
TEST(example_array_npy_is_read_back_by_numpy)
{
    const char *ex = "../../../examples/array_npy";
    if (access(ex, X_OK) != 0) SKIP("examples are not built in this configuration");
    if (!have_numpy()) SKIP("numpy is not installed (apt-get install python3-numpy)");
    const char *backends[] = {"threads", "processes"};
    for (int b = 0; b < 2; b++) {
        mkdir("example", 0700);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "WEFT_BACKEND=%s %s example", backends[b], ex);
        FILE *p = popen(cmd, "r");
        REQUIRE(p);
        char ln[1024], py[1024] = "", want[1024] = "";
        bool next_is_want = false;
        while (fgets(ln, sizeof ln, p)) {
            if (next_is_want) snprintf(want, sizeof want, "%s", ln);
            next_is_want = strncmp(ln, "numpy should print", 18) == 0;
            if (strncmp(ln, "/usr/bin/python3", 16) == 0) snprintf(py, sizeof py, "%s", ln);
        }
        CHECK_EQ_INT(pclose(p), 0);
        REQUIRE(py[0] && want[0]);
        py[strcspn(py, "\n")] = '\0';
        p = popen(py, "r");
        REQUIRE(p);
        char got[256] = "";
        if (!fgets(got, sizeof got, p)) got[0] = '\0';
        CHECK_EQ_INT(pclose(p), 0);
        CHECK_MSG(strcmp(got, want) == 0, "%s: numpy printed '%s', want '%s'", backends[b], got,
                  want);
    }
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    return check_main(argc, argv);
}

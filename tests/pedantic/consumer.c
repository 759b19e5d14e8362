/* consumer.c : a user's program built against the public headers only, in
 * strict ISO C11 with -Wall -Wextra -Wpedantic -Werror (run.sh; ctest
 * header_pedantic). It touches what the headers expand into the user's
 * code -- the registration macro, the inline RNG, options structs, enums of
 * every sub-header -- so that nothing there warns in a user's build, and
 * runs one task to show the program links and works. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

static int twice(weft_ctx *ctx, const void *in, size_t len)
{
    long v;
    if (len != sizeof v) return weft_ctx_fail(ctx, WEFT_EINVAL, "want a long, got %zu bytes", len);
    memcpy(&v, in, sizeof v);
    v *= 2;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(twice);

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        fprintf(stderr, "weft_init: %s\n", weft_strerror(rc));
        return 1;
    }
    weft_rng r;
    weft_rng_seed(&r, 42);
    int64_t x = weft_rng_range(&r, -5, 5);
    double d = weft_rng_double(&r);
    if (x < -5 || x > 5 || d < 0 || d >= 1) return 1;

    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_SERIAL;
    o.workers = 1;
    /* a struct as an older weft.h had it: shorter, its size says so */
    {
        weft_options old = {.size = offsetof(weft_options, exit_mode),
                            .backend = WEFT_BACKEND_SERIAL};
        weft_executor *e0;
        if ((rc = weft_executor_create(&old, &e0)) != 0) {
            fprintf(stderr, "create (older options): %s %s\n", weft_strerror(rc),
                    weft_last_error());
            return 1;
        }
        weft_executor_destroy(e0);
    }
    weft_map_options mo = {.chunk_size = 1};
    weft_svg_options so = {.width = 0};
    weft_queue_options qo = {.capacity = 4};
    (void)mo;
    (void)so;
    (void)qo;
    weft_executor *ex;
    if ((rc = weft_executor_create(&o, &ex)) != 0) {
        fprintf(stderr, "create: %s %s\n", weft_strerror(rc), weft_last_error());
        return 1;
    }
    long in = 21;
    weft_future *f;
    const void *out = NULL;
    size_t len = 0;
    rc = weft_submit(ex, twice, &in, sizeof in, &f);
    if (rc == 0) {
        rc = weft_future_result(f, WEFT_FOREVER, &out, &len);
        long v = 0;
        if (rc == 0 && len == sizeof v) memcpy(&v, out, sizeof v);
        printf("twice(21) = %ld on %s, weft %s\n", v, weft_backend_name(weft_executor_backend(ex)),
               weft_version());
        if (rc == 0 && v != 42) rc = WEFT_ETASK;
        weft_future_release(f);
    }
    weft_executor_destroy(ex);
    return rc == 0 ? 0 : 1;
}

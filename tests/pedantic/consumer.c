/* consumer.c : a user's program built against the public headers only, in
 * strict ISO C11 with -Wall -Wextra -Wpedantic -Werror (run.sh; ctest
 * header_pedantic). It touches what the headers expand into the user's
 * code -- the registration macro, the inline RNG, options structs, enums of
 * every sub-header -- so that nothing there warns in a user's build, and
 * runs one task to show the program links and works. It also passes
 * options structs as an older header had them (shorter: weft_options,
 * weft_queue_options, weft_map_options) and as a newer one would (longer,
 * with a set field this library does not know: WEFT_ENOTSUP). */
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
    /* a newer header's struct: a field this library does not know is set */
    {
        struct newer {
            weft_options o;
            uint64_t unknown_field;
        } nw = {{.backend = WEFT_BACKEND_SERIAL}, 7};
        nw.o.size = sizeof nw;
        weft_executor *e1 = NULL;
        if ((rc = weft_executor_create(&nw.o, &e1)) != WEFT_ENOTSUP || e1) {
            fprintf(stderr, "create (newer options): %s, want WEFT_ENOTSUP\n", weft_strerror(rc));
            return 1;
        }
        nw.unknown_field = 0; /* unknown but zero: fine */
        if ((rc = weft_executor_create(&nw.o, &e1)) != 0) {
            fprintf(stderr, "create (newer options, zero tail): %s\n", weft_strerror(rc));
            return 1;
        }
        weft_executor_destroy(e1);
    }
    weft_map_options mo = WEFT_MAP_OPTIONS_INIT;
    mo.chunk_size = 1;
    weft_svg_options so = {.width = 0};
    weft_queue_options qo = {.capacity = 4};
    (void)so;
    /* older, shorter structs of two more kinds: a queue options struct that
     * ends after `capacity`, a map options struct that ends after `flags` */
    {
        weft_queue_options oq = {.size = offsetof(weft_queue_options, capacity) + sizeof(size_t),
                                 .capacity = 2};
        weft_queue *q = NULL;
        void *item = NULL;
        if ((rc = weft_queue_create(&oq, &q)) != 0 || weft_queue_capacity(q) != 2 ||
            weft_queue_put(q, &qo, 0) != 0 || weft_queue_get(q, 0, &item) != 0 || item != &qo) {
            fprintf(stderr, "queue (older options): %s %s\n", weft_strerror(rc), weft_last_error());
            return 1;
        }
        weft_queue_destroy(q);
    }
    weft_map_options om = {.size = offsetof(weft_map_options, flags) + sizeof(unsigned),
                           .flags = WEFT_MAP_STOP_ON_ERROR};
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
    long xs[3] = {1, 2, 3};
    weft_results *res = NULL;
    for (int k = 0; k < 2 && rc == 0; k++) {
        rc = weft_map(ex, twice, xs, sizeof xs[0], 3, k ? &om : &mo, &res);
        long ys[3] = {0, 0, 0};
        if (rc == 0) rc = weft_results_gather(res, ys, sizeof ys[0], 3, NULL);
        if (rc == 0 && (ys[0] != 2 || ys[1] != 4 || ys[2] != 6)) rc = WEFT_ETASK;
        if (rc)
            fprintf(stderr, "map (options %d): %s %s\n", k, weft_strerror(rc), weft_last_error());
        weft_results_destroy(res);
        res = NULL;
    }
    weft_executor_destroy(ex);
    return rc == 0 ? 0 : 1;
}

/* consumer.c : a program outside the weft tree, built against an installed
 * weft to check the header, the libraries, weft.pc and weftConfig.cmake. */
#include <weft.h>

#include <stdio.h>
#include <string.h>

static int twice(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != sizeof(int)) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad size %zu", len);
    int v;
    memcpy(&v, in, sizeof v);
    v *= 2;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}

int main(void)
{
    if (strcmp(weft_version(), WEFT_VERSION_STRING) != 0) {
        fprintf(stderr, "version mismatch: header %s, library %s\n", WEFT_VERSION_STRING,
                weft_version());
        return 1;
    }
    weft_options opts = {0};
    opts.workers = 2;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&opts, &ex);
    if (rc != 0) {
        fprintf(stderr, "weft_executor_create: %s\n", weft_strerror(rc));
        return 1;
    }
    int sum = 0;
    for (int i = 1; i <= 10; i++) {
        weft_future *f = NULL;
        rc = weft_submit(ex, twice, &i, sizeof i, &f);
        if (rc != 0) {
            fprintf(stderr, "weft_submit: %s\n", weft_strerror(rc));
            return 1;
        }
        const void *out = NULL;
        size_t len = 0;
        rc = weft_future_result(f, WEFT_FOREVER, &out, &len);
        if (rc != 0 || len != sizeof(int)) {
            fprintf(stderr, "weft_future_result: %s\n", weft_strerror(rc));
            return 1;
        }
        int v;
        memcpy(&v, out, sizeof v);
        sum += v;
        weft_future_release(f);
    }
    rc = weft_executor_destroy(ex);
    if (rc != 0 || sum != 110) {
        fprintf(stderr, "destroy %d, sum %d (want 110)\n", rc, sum);
        return 1;
    }
    printf("weft %s consumer ok: sum %d\n", weft_version(), sum);
    return 0;
}

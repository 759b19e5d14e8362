/* fuzz_svg.c : libFuzzer target for the trace-event JSON reader of
 * src/diag/svg.c (and the drawing behind it). Any input must give 0,
 * WEFT_EINVAL or WEFT_ENOMEM -- never a crash, a hang, a leak or undefined
 * behaviour; the picture goes to /dev/null. Built by scripts/run-fuzz.sh
 * (clang -fsanitize=fuzzer,address,undefined); replay.c runs the same entry
 * point over the corpus in every ctest run, with any compiler. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "diag/svg_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The picture size follows the input size, so the clamps of draw() are
     * exercised too (width 0 = default, below, inside and above the range). */
    static const int widths[] = {0, 1, 640, 20001};
    static const int heights[] = {0, 5, 28, 401};
    weft_svg_options o = {.width = widths[size % 4], .lane_height = heights[(size / 4) % 4]};
    int rc = weft__svg_from_buffer((const char *)data, size, "the fuzz input", "/dev/null", &o);
    if (rc != 0 && rc != WEFT_EINVAL && rc != WEFT_ENOMEM) abort();
    return 0;
}

/* fuzz_npy_header.c : libFuzzer target for the .npy reader of
 * src/array/npy.c: the header parser (magic, version, length, the dict of
 * descr / fortran_order / shape) and the reader behind weft_array_load, fed
 * from memory. Any input must give 0, WEFT_EINVAL or WEFT_ENOMEM -- never a
 * crash, a hang, a leak, undefined behaviour or an allocation larger than
 * the input announces and holds. A parsed header must be self-consistent.
 * Built by scripts/run-fuzz.sh (clang -fsanitize=fuzzer,address,undefined);
 * replay.c runs the same entry point over corpus/npy_header/ in every ctest
 * run, with any compiler. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "array/array_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft__npy_header h;
    int rc = weft__npy_parse_header(data, size, &h, "the fuzz input");
    if (rc != 0 && rc != WEFT_EINVAL) abort();
    if (rc == 0) {
        size_t n = 1;
        for (size_t i = 0; i < h.ndim; i++) n *= h.shape[i];
        if (h.header_len > size || n != h.size || h.nbytes != h.size * weft_dtype_size(h.dtype) ||
            h.ndim > WEFT_ARRAY_MAX_NDIM)
            abort();
    }
    weft_array *a = NULL;
    rc = weft__npy_from_buffer(data, size, "the fuzz input", &a);
    if (rc != 0 && rc != WEFT_EINVAL && rc != WEFT_ENOMEM) abort();
    if (rc == 0) {
        /* the array holds what the input held after its header */
        if (!a || weft_array_nbytes(a) > size) abort();
        weft_array *c = NULL;
        if (weft_array_copy(a, NULL, &c) == 0) weft_array_destroy(c);
        weft_array_destroy(a);
    } else if (a) {
        abort();
    }
    return 0;
}

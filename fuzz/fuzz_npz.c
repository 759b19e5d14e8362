/* fuzz_npz.c : libFuzzer target for the .npz reader of src/array/npz.c
 * (libzip's archive reader under it, then the .npy reader for every entry):
 * opens the input as an archive held in memory and reads every .npy entry.
 * Any input must give 0, WEFT_EINVAL, WEFT_ENOENT or WEFT_ENOMEM -- never a
 * crash, a hang, a leak or undefined behaviour. Built by
 * scripts/run-fuzz.sh; replay.c runs it over corpus/npz/ in every ctest run. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "array/array_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_npz *z = NULL;
    int rc = weft__npz_open_buffer(data, size, "the fuzz input", &z);
    if (rc != 0 && rc != WEFT_EINVAL && rc != WEFT_ENOMEM && rc != WEFT_ENOENT) abort();
    if (rc) return 0;
    for (size_t i = 0; i < weft_npz_count(z); i++) {
        weft_array *a = NULL;
        rc = weft_npz_get(z, weft_npz_name(z, i), &a);
        if (rc != 0 && rc != WEFT_EINVAL && rc != WEFT_ENOMEM && rc != WEFT_ENOENT) abort();
        if (rc == 0 && !a) abort();
        weft_array_destroy(a);
    }
    weft_npz_destroy(z);
    return 0;
}

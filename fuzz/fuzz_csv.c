/* fuzz_csv.c : libFuzzer target for the CSV reader of src/table/csv.c.
 * The input is written to a file and read as a frame (the serial backend)
 * twice: as one partition, and cut into byte ranges of 1..16 bytes, each
 * read in chunks of 1..16 bytes (the
 * input's first byte chooses both; its second, the delimiter and whether bad
 * records are skipped). Any input must give 0, WEFT_EINVAL or WEFT_ENOMEM
 * -- never a crash, a hang, a leak or undefined behaviour -- and when the
 * one-partition read succeeds in strict mode (the file is RFC 4180 as weft
 * reads it: no stray quote), the cut read must give the same table: that
 * is the partitioning method's promise (docs/table.md); the one-partition
 * read gives the same result (or the same error) with every field scanner
 * (AVX2, SSE2, SWAR, byte by byte: weft__csv_set_scanner). Built by
 * scripts/run-fuzz.sh (clang -fsanitize=fuzzer,address,undefined);
 * replay.c runs the same entry point over fuzz/corpus/csv in every ctest. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#include "table/table_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_as(const char *path, const weft_csv_options *o, weft_executor *ex, weft_table **out)
{
    weft_frame *f;
    *out = NULL;
    int rc = weft_frame_read_csv(&path, 1, o, &f);
    if (rc) return rc;
    rc = weft_frame_compute(f, ex, NULL, out);
    weft_frame_destroy(f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static weft_executor *ex;
    static char path[64];
    if (!ex) {
        weft_options eo = WEFT_OPTIONS_INIT;
        eo.backend = WEFT_BACKEND_SERIAL;
        if (weft_executor_create(&eo, &ex)) abort();
        snprintf(path, sizeof path, "/tmp/weft-fuzz-csv-%d.csv", (int)getpid());
    }
    uint8_t mode = size > 0 ? data[0] : 0, flags = size > 1 ? data[1] : 0;
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    weft_csv_options o = {0};
    o.delimiter = (flags & 1) ? ';' : ',';
    o.flags = (flags & 2) ? WEFT_CSV_SKIP_BAD : 0;
    o.flags |= (flags & 4) ? WEFT_CSV_NO_HEADER : 0;
    o.block_size = size + 1;
    weft_table *one = NULL, *cut = NULL;
    int rc1 = read_as(path, &o, ex, &one);
    if (rc1 != 0 && rc1 != WEFT_EINVAL && rc1 != WEFT_ENOMEM) abort();
    /* the same read with every other field scanner (byte at a time, SWAR,
     * SSE2, AVX2 when the CPU has it): the same result, or the same error */
    for (int kind = WEFT__CSV_SCAN_SCALAR; kind <= WEFT__CSV_SCAN_AVX2; kind++) {
        weft_table *other = NULL;
        if (weft__csv_set_scanner(kind)) continue; /* not in this build */
        int rc3 = read_as(path, &o, ex, &other);
        weft__csv_set_scanner(WEFT__CSV_SCAN_BEST);
        if (rc3 != rc1 || (rc1 == 0 && (!weft_table_equal(one, other) ||
                                        weft_table_skipped(one) != weft_table_skipped(other))))
            abort(); /* the scanners disagree */
        weft_table_destroy(other);
    }
    o.block_size = 1 + (mode % 16);
    weft__csv_set_chunk(1 + (size_t)(mode >> 4)); /* read in chunks of 1..16 bytes too */
    int rc2 = read_as(path, &o, ex, &cut);
    weft__csv_set_chunk(0);
    if (rc2 != 0 && rc2 != WEFT_EINVAL && rc2 != WEFT_ENOMEM) abort();
    if (rc1 == 0 && !(o.flags & WEFT_CSV_SKIP_BAD) && (rc2 != 0 || !weft_table_equal(one, cut)))
        abort(); /* a valid file read differently when cut into ranges */
    weft_table_destroy(one);
    weft_table_destroy(cut);
    unlink(path);
    return 0;
}

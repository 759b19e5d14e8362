/* fuzz_memo_entry.c : libFuzzer target for the memo's entry reader
 * (weft__memo_entry_read, src/memo/memo_entry.c), which checks every cache
 * file before its bytes are believed. Any input must give 0, WEFT_EINVAL
 * or WEFT_ENOMEM -- never a crash, a leak or undefined behaviour -- and a
 * success must hand back exactly raw_len bytes.
 *
 * The first byte picks a mode, the rest is the file: bit 0 repairs the
 * length and both checksums first (otherwise almost every input stops at
 * the header checksum, and the payload and zstd paths would go unfuzzed),
 * bit 1 checks the key against the header's own, bit 2 lets the reader
 * reuse the buffer. Built by scripts/run-fuzz.sh; replay.c runs the same
 * entry point over fuzz/corpus/memo_entry/ in every ctest run. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memo/memo_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0];
    size_t len = size - 1;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) return 0;
    if (len) memcpy(buf, data + 1, len);
    if ((mode & 1) && len >= WEFT__MEMO_HDR) {
        put64(buf + 40, len - WEFT__MEMO_HDR);
        put64(buf + 48, XXH3_64bits(buf + WEFT__MEMO_HDR, len - WEFT__MEMO_HDR));
        put64(buf + 64, XXH3_64bits(buf, 64));
    }
    weft__memo_key key;
    const weft__memo_key *kp = NULL;
    if ((mode & 2) && len >= 32) {
        memcpy(key.b, buf + 16, 16);
        kp = &key;
    }
    weft__memo_hdr h;
    int hrc = weft__memo_hdr_decode(buf, len, NULL, &h);
    void *out = NULL;
    size_t out_len = 0;
    /* max_raw: a valid entry may claim up to 16 MiB here */
    int rc = weft__memo_entry_read(buf, len, kp, (size_t)1 << 24, (mode & 4) != 0, &out, &out_len);
    if (rc != 0 && rc != WEFT_EINVAL && rc != WEFT_ENOMEM) abort();
    if (rc == 0) {
        /* a success implies a sound header that announced this length */
        if (!out || hrc != 0 || out_len != h.raw_len) abort();
        /* touch every byte: ASan sees an output shorter than it claims */
        volatile unsigned char sum = 0;
        for (size_t i = 0; i < out_len; i++) sum ^= ((unsigned char *)out)[i];
        (void)sum;
    } else if (out) {
        abort();
    }
    if (out != buf) free(out);
    free(buf);
    return 0;
}

/* fuzz_memo_pack.c : libFuzzer target for the memo's packs (src/memo/
 * memo_pack.c): an index file and a pack file, both taken from the input,
 * are put in a memo directory, which is then used through every path that
 * reads them -- a lookup of each slot's key, a store (appends; may grow the
 * index), verify (reads every record), clear (evicts and compacts). Nothing
 * may crash, leak, read out of bounds or loop; a hit must be the output a
 * sound record holds (its checks are memo_entry.c's, fuzzed by
 * fuzz_memo_entry.c).
 *
 * Input: byte 0 a mode, bytes 1-2 the index's length n (little-endian),
 * then n bytes of index and the rest as the pack. Mode bit 0 makes the
 * index pass its soundness check (the 128-byte header gets its magic,
 * version, byte-order mark, 64 slots and gen 1; the input's bytes become
 * the header's other fields and the slots, zero-padded), so the fuzzer
 * reaches the slots without finding the magic first; bit 1 moves every
 * slot's key into pack 00, the one on disk. A ledger is written too, so
 * opening does not recount (and compact) the pack before it is read.
 * Built by scripts/run-fuzz.sh; replay.c runs the same entry point over
 * fuzz/corpus/memo_pack/ in every ctest run. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memo/memo_internal.h"
#include "memo/memo_pack.h"
#include "memo/memo_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(p);
    return 0;
}

static void put_file(const char *p, const void *b, size_t n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (n && write(fd, b, n) != (ssize_t)n) {
        /* a short file is an input like any other */
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64];
    if (!dir[0]) snprintf(dir, sizeof dir, "fuzz-memo-pack.%ld", (long)getpid());
    if (size < 3) return 0;
    unsigned mode = data[0];
    size_t n = (size_t)data[1] | (size_t)data[2] << 8;
    if (n > size - 3) n = size - 3;
    const uint8_t *in = data + 3, *pack = in + n;
    size_t pack_len = size - 3 - n;

    size_t idx_len = n;
    if (mode & 1) idx_len = WEFT__PACK_IDX_HDR + 64 * WEFT__PACK_SLOT;
    unsigned char *idx = calloc(1, idx_len ? idx_len : 1);
    if (!idx) return 0;
    memcpy(idx, in, n < idx_len ? n : idx_len);
    if (mode & 1) {
        uint32_t v = WEFT__PACK_IDX_VERSION, bom = WEFT__PACK_BOM;
        uint64_t cap = 64, gen = 1;
        memcpy(idx, WEFT__PACK_IDX_MAGIC, 8);
        memcpy(idx + 8, &v, 4);
        memcpy(idx + 12, &bom, 4);
        memcpy(idx + 16, &cap, 8);
        memcpy(idx + 56, &gen, 8);
    }
    size_t nslots = idx_len > WEFT__PACK_IDX_HDR ? (idx_len - WEFT__PACK_IDX_HDR) / 32 : 0;
    if (mode & 2)
        for (size_t s = 0; s < nslots; s++) idx[WEFT__PACK_IDX_HDR + 32 * s] &= 3;
    uint64_t gen = 1;
    if (idx_len >= 64) memcpy(&gen, idx + 56, 8);

    char p[256];
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/packs", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/packs/00.idx", dir);
    put_file(p, idx, idx_len);
    snprintf(p, sizeof p, "%s/packs/00.%llu.pack", dir, (unsigned long long)gen);
    put_file(p, pack, pack_len);
    unsigned char ledger[48] = "WEFTLEDG";
    ledger[8] = 2;
    ledger[16] = 1; /* a byte, an entry: anything sound */
    ledger[24] = 1;
    snprintf(p, sizeof p, "%s/ledger", dir);
    put_file(p, ledger, sizeof ledger);

    weft_memo *m;
    if (weft_memo_open(dir, 1 << 20, NULL, &m) == 0) {
        for (size_t s = 0; s < nslots && s < 64; s++) {
            weft__memo_key k;
            memcpy(k.b, idx + WEFT__PACK_IDX_HDR + 32 * s, 16);
            void *out = NULL;
            size_t out_len = 0;
            int rc = weft__memo_get_key(m, &k, &out, &out_len);
            if ((rc == 0) != (out != NULL)) abort();
            if (rc == 0) {
                volatile unsigned char sum = 0; /* ASan sees an output shorter than it claims */
                for (size_t i = 0; i < out_len; i++) sum ^= ((unsigned char *)out)[i];
                (void)sum;
            }
            free(out);
        }
        weft__memo_key k0 = {{0}};
        if (nslots) memcpy(k0.b, idx + WEFT__PACK_IDX_HDR, 16);
        k0.b[0] &= 3;
        if (weft__memo_put_key(m, &k0, "fuzz", 4) == 0) {
            void *out = NULL;
            size_t out_len = 0;
            /* what was just stored reads back, whatever the pack held */
            if (weft__memo_get_key(m, &k0, &out, &out_len) != 0 || out_len != 4 ||
                memcmp(out, "fuzz", 4) != 0)
                abort();
            free(out);
        }
        weft_memo_verify(m, NULL);
        weft_memo_clear(m);
        weft_memo_close(m);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(idx);
    return 0;
}

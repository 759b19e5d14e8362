/* memo_internal.h : the memo's entry format and key (memo_entry.c), for the
 * store (memo.c), the memoized calls (exec.c), the tests and the fuzz
 * target. Not installed.
 *
 * An entry file is a 72-byte header, then the payload (little-endian):
 *
 *   0  magic "WEFTMEMO"          40  stored length (bytes after the header)
 *   8  format version (u32)      48  XXH3-64 of the stored payload
 *  12  flags (u32; 1 = zstd)     56  created (ns since the epoch)
 *  16  key (16 bytes)            64  XXH3-64 of header bytes 0..63
 *  32  raw (output) length
 *
 * The file's size must be exactly 72 + stored length. */
#ifndef WEFT_MEMO_INTERNAL_H
#define WEFT_MEMO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define WEFT__MEMO_MAGIC "WEFTMEMO"
#define WEFT__MEMO_VERSION 1u
#define WEFT__MEMO_HDR 72u
#define WEFT__MEMO_ZSTD 1u

typedef struct weft__memo_key {
    uint8_t b[16];
} weft__memo_key;

typedef struct weft__memo_hdr {
    uint32_t version;
    uint32_t flags;
    weft__memo_key key;
    uint64_t raw_len;
    uint64_t stored_len;
    uint64_t checksum;
    uint64_t created_ns;
} weft__memo_hdr;

/* The key of (task name, version, input): XXH3-128 over the three, each
 * length-prefixed so that no two triples share a byte stream. */
void weft__memo_key_of(const char *name, const char *version, const void *in, size_t len,
                       weft__memo_key *key);
/* 32 lowercase hex digits and a NUL into hex[33]. */
void weft__memo_key_hex(const weft__memo_key *key, char hex[33]);

/* Encodes the header of an entry of `stored[0..stored_len)` into
 * out[WEFT__MEMO_HDR] (checksums computed here). */
void weft__memo_hdr_encode(const weft__memo_hdr *h, const void *stored, void *out);
/* Decodes and checks a header: magic, version, known flags, header
 * checksum, and (if `key` is not NULL) the key. @return 0 or WEFT_EINVAL. */
int weft__memo_hdr_decode(const void *buf, size_t len, const weft__memo_key *key,
                          weft__memo_hdr *h);
/* The entry reader: checks a whole entry file's bytes buf[0..len) (header,
 * size, payload checksum, decompression to exactly raw_len, at most
 * `max_raw` bytes) and gives a malloc'd copy of the output in `*out`
 * (non-NULL, even for 0 bytes). With `reuse` (buf is malloc'd and the
 * caller gives it up if *out == buf), a raw payload is moved to the front
 * of buf and buf itself is the output. @return 0, WEFT_EINVAL (not a sound
 * entry: *out NULL), WEFT_ENOMEM. */
int weft__memo_entry_read(void *buf, size_t len, const weft__memo_key *key, size_t max_raw,
                          bool reuse, void **out, size_t *out_len);
/* Prepares the payload of `out[0..len)`: zstd at `level` when len >=
 * compress_min and smaller, else raw. `*stored` is `out` itself or a
 * malloc'd buffer (`*heap` true). @return 0 or WEFT_ENOMEM. */
int weft__memo_pack(const void *out, size_t len, size_t compress_min, int level,
                    const void **stored, size_t *stored_len, uint32_t *flags, bool *heap);

#endif

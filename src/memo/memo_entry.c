/* memo_entry.c : the memo's key and entry format (memo_internal.h has the
 * layout). Pure functions over bytes: the store reads a file into memory
 * and asks weft__memo_entry_read whether it is sound, which is what the
 * fuzz target (fuzz/fuzz_memo_entry.c) exercises. Nothing here trusts a
 * length read from a file before checking it against the bytes at hand. */
#define XXH_INLINE_ALL
#include <xxhash.h>
#include <zstd.h>

#include <stdlib.h>
#include <string.h>

#include "memo/memo_internal.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

void weft__memo_key_of(const char *name, const char *version, const void *in, size_t len,
                       weft__memo_key *key)
{
    size_t nl = strlen(name), vl = version ? strlen(version) : 0;
    XXH128_hash_t h;
    if (nl + vl <= 240) {
        /* the common case: one prefix block, then the input in one pass
         * (XXH3's streaming state would cost more than a small input) */
        unsigned char pre[256 + 16];
        put64(pre, nl);
        memcpy(pre + 8, name, nl);
        put64(pre + 8 + nl, vl);
        if (vl) memcpy(pre + 16 + nl, version, vl);
        uint64_t seed = XXH3_64bits(pre, 16 + nl + vl);
        h = XXH3_128bits_withSeed(in, len, seed);
    } else {
        XXH3_state_t st;
        XXH3_128bits_reset(&st);
        unsigned char n8[8];
        put64(n8, nl);
        XXH3_128bits_update(&st, n8, 8);
        XXH3_128bits_update(&st, name, nl);
        put64(n8, vl);
        XXH3_128bits_update(&st, n8, 8);
        if (vl) XXH3_128bits_update(&st, version, vl);
        XXH128_hash_t pre = XXH3_128bits_digest(&st);
        uint64_t seed = pre.low64 ^ pre.high64;
        h = XXH3_128bits_withSeed(in, len, seed);
    }
    put64(key->b, h.low64);
    put64(key->b + 8, h.high64);
}

void weft__memo_key_hex(const weft__memo_key *key, char hex[33])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = d[key->b[i] >> 4];
        hex[2 * i + 1] = d[key->b[i] & 15];
    }
    hex[32] = '\0';
}

void weft__memo_hdr_encode(const weft__memo_hdr *h, const void *stored, void *out)
{
    unsigned char *p = out;
    memcpy(p, WEFT__MEMO_MAGIC, 8);
    put32(p + 8, h->version);
    put32(p + 12, h->flags);
    memcpy(p + 16, h->key.b, 16);
    put64(p + 32, h->raw_len);
    put64(p + 40, h->stored_len);
    put64(p + 48, XXH3_64bits(stored, (size_t)h->stored_len));
    put64(p + 56, h->created_ns);
    put64(p + 64, XXH3_64bits(p, 64));
}

int weft__memo_hdr_decode(const void *buf, size_t len, const weft__memo_key *key, weft__memo_hdr *h)
{
    const unsigned char *p = buf;
    if (len < WEFT__MEMO_HDR || memcmp(p, WEFT__MEMO_MAGIC, 8) != 0) return WEFT_EINVAL;
    if (get64(p + 64) != XXH3_64bits(p, 64)) return WEFT_EINVAL;
    h->version = get32(p + 8);
    h->flags = get32(p + 12);
    memcpy(h->key.b, p + 16, 16);
    h->raw_len = get64(p + 32);
    h->stored_len = get64(p + 40);
    h->checksum = get64(p + 48);
    h->created_ns = get64(p + 56);
    if (h->version != WEFT__MEMO_VERSION) return WEFT_EINVAL;
    if (h->flags & ~WEFT__MEMO_ZSTD) return WEFT_EINVAL;
    if (!(h->flags & WEFT__MEMO_ZSTD) && h->raw_len != h->stored_len) return WEFT_EINVAL;
    if (key && memcmp(key->b, h->key.b, 16) != 0) return WEFT_EINVAL;
    return 0;
}

int weft__memo_entry_read(void *buf, size_t len, const weft__memo_key *key, size_t max_raw,
                          bool reuse, void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    weft__memo_hdr h;
    if (weft__memo_hdr_decode(buf, len, key, &h) != 0) return WEFT_EINVAL;
    if (h.stored_len != len - WEFT__MEMO_HDR) return WEFT_EINVAL; /* truncated or padded */
    if (h.raw_len > max_raw) return WEFT_EINVAL;
    const unsigned char *payload = (const unsigned char *)buf + WEFT__MEMO_HDR;
    size_t stored = (size_t)h.stored_len;
    if (XXH3_64bits(payload, stored) != h.checksum) return WEFT_EINVAL;
    size_t raw = (size_t)h.raw_len;
    if (h.flags & WEFT__MEMO_ZSTD) {
        /* the frame must say the same size before anything is allocated */
        unsigned long long fs = ZSTD_getFrameContentSize(payload, stored);
        if (fs == ZSTD_CONTENTSIZE_ERROR || fs == ZSTD_CONTENTSIZE_UNKNOWN || fs != raw)
            return WEFT_EINVAL;
        if (ZSTD_findFrameCompressedSize(payload, stored) != stored) return WEFT_EINVAL;
    }
    if (reuse && !(h.flags & WEFT__MEMO_ZSTD)) {
        memmove(buf, payload, raw);
        *out = buf;
        *out_len = raw;
        return 0;
    }
    void *o = malloc(raw ? raw : 1);
    if (!o) return WEFT_ENOMEM;
    if (h.flags & WEFT__MEMO_ZSTD) {
        size_t r = ZSTD_decompress(o, raw, payload, stored);
        if (ZSTD_isError(r) || r != raw) {
            free(o);
            return WEFT_EINVAL;
        }
    } else if (raw) {
        memcpy(o, payload, raw);
    }
    *out = o;
    *out_len = raw;
    return 0;
}

int weft__memo_pack(const void *out, size_t len, size_t compress_min, int level,
                    const void **stored, size_t *stored_len, uint32_t *flags, bool *heap)
{
    *stored = out;
    *stored_len = len;
    *flags = 0;
    *heap = false;
    if (len < compress_min || len == 0) return 0;
    size_t cap = ZSTD_compressBound(len);
    void *z = malloc(cap);
    if (!z) return WEFT_ENOMEM;
    size_t r = ZSTD_compress(z, cap, out, len, level);
    if (ZSTD_isError(r) || r >= len) {
        free(z);
        return 0;
    }
    *stored = z;
    *stored_len = r;
    *flags = WEFT__MEMO_ZSTD;
    *heap = true;
    return 0;
}

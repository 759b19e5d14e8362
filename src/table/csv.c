/* csv.c : the CSV reader (RFC 4180) and writer of tables.
 *
 * A file is cut into byte ranges; range i holds the records that START in
 * it, and its reader parses past its end to finish the last one. Where a
 * record starts depends on whether the range's first byte lies inside a
 * quoted field, which only the bytes before it tell. Three kinds of graph
 * task find out (docs/table.md, "Partitioning"):
 *
 *   scan(i)          reads range i once, small buffer: the parity of its
 *                    quote characters, its newlines, and for each of the two
 *                    hypotheses "the range starts outside / inside quotes"
 *                    the first record start (the byte after the first
 *                    newline seen outside quotes under that hypothesis);
 *   bound(i)         from bound(i-1) (the state at range i's start: outside
 *                    for the file's first range) and scan(i): picks the true
 *                    hypothesis, so the first record start of range i and
 *                    its line number are exact; a chain of tiny tasks;
 *   read(i)          parses [record start, end of the last record starting
 *                    before the range's end) into a partition.
 *
 * In RFC 4180 a quote character appears only in quoted fields (opening,
 * closing, or doubled inside), so the parity of quotes before a byte is
 * exactly "inside a quoted field". The one case where this fails is a file
 * that is not RFC 4180: a quote inside an unquoted field (5'11"). The reader
 * reports such a field as malformed; the split itself can then be wrong
 * (records near range boundaries are cut at the wrong newline). Read such
 * files as one partition (block_size larger than the file).
 *
 * Doubles: a field of at most 19 digits whose value needs at most 53 bits
 * and whose decimal exponent is within [-22, 22] is m * 10^e or m / 10^e in
 * one IEEE operation on exact operands, so correctly rounded (Clinger's
 * fast path); one of 17 to 19 digits is exact in 128-bit integers (a
 * product, or a product with 5^k's reciprocal that decides the rounding
 * in all but the exact and tie cases, which a 128-by-64-bit division
 * settles: div_pow10_recip); every other field goes to glibc's strtod,
 * which is correctly rounded (docs/table.md, "The CSV dialect"). */
#include "internal.h"
#include "table/table_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const default_na[] = {"", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A"};

void weft__csv_spec_free(csv_spec *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->ncols; i++) free(s->names ? s->names[i] : NULL);
    for (size_t i = 0; i < s->nna; i++) free(s->na[i]);
    free(s->names);
    free(s->types);
    free(s->na);
    free(s->na_len);
    memset(s, 0, sizeof *s);
}

/* ---- tokenizer ---- */

enum {
    T_DELIM,
    T_EOL,
    T_EOF,
    T_MORE,
    T_UNTERM
};

typedef struct field {
    size_t start, len; /* the field's bytes, quotes removed (escaped "" still doubled) */
    bool escaped;      /* holds "" pairs to undo */
    bool bad;          /* garbage after a closing quote, or a quote in an unquoted field */
} field;

/* ---- the field scanner ----
 *
 * An unquoted field ends at the first delimiter or newline; a quote inside
 * it makes it malformed; a quoted field ends at its next quote (then the
 * byte after says whether it is a doubled one). The scanner keeps, for one
 * block of 64 bytes of the buffer, two bit masks: where the delimiters,
 * newlines and quotes are (`any`), and where the quotes are (`quote`). A
 * field's end is then the lowest bit of the mask above its start: the
 * block's bytes are compared once, not once per field (about 8 fields a
 * row of 109 bytes: two blocks instead of eight scans). The masks come 64
 * bytes at a time from AVX2 (two 32-byte compares; only when the CPU
 * says it has it), SSE2 (four 16-byte compares; every x86-64 has it), a
 * SWAR test of eight uint64_t (other little-endian machines: an exact
 * zero-byte test, packed into 8 bits by one multiplication), or one byte
 * at a time; the last block of a buffer, shorter than 64 bytes, always one
 * byte at a time (no load ever crosses the buffer's end). The kinds give
 * the same masks for every input: the tests `csv_scanner_agrees_at_every_alignment`
 * and `csv_scanner_walks_blocks_like_a_plain_loop` compare them with a
 * plain loop on random bytes at every start, length and alignment, the
 * bytes ending right before an unreadable page; weft__csv_set_scanner
 * forces one. */

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE2_SCAN 1
#else
#define HAVE_SSE2_SCAN 0
#endif
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_SCAN 1
#else
#define HAVE_AVX2_SCAN 0
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_SWAR_SCAN 1
#else
#define HAVE_SWAR_SCAN 0
#endif

static _Atomic int csv_scanner_forced; /* 0: the best this machine has */

static bool cpu_has_avx2(void)
{
#if HAVE_AVX2_SCAN
    static _Atomic int known; /* 0 not asked, 1 no, 2 yes */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx2") ? 2 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
#else
    return false;
#endif
}

int weft__csv_set_scanner(int kind)
{
    if (kind < WEFT__CSV_SCAN_BEST || kind > WEFT__CSV_SCAN_AVX2) return WEFT_EINVAL;
    if (kind == WEFT__CSV_SCAN_SSE2 && !HAVE_SSE2_SCAN) return WEFT_ENOTSUP;
    if (kind == WEFT__CSV_SCAN_SWAR && !HAVE_SWAR_SCAN) return WEFT_ENOTSUP;
    if (kind == WEFT__CSV_SCAN_AVX2 && !cpu_has_avx2()) return WEFT_ENOTSUP;
    atomic_store_explicit(&csv_scanner_forced, kind, memory_order_relaxed);
    return 0;
}

/* The scanner a task uses (read once per task). */
static int csv_scanner(void)
{
    int k = atomic_load_explicit(&csv_scanner_forced, memory_order_relaxed);
    if (k) return k;
    if (cpu_has_avx2()) return WEFT__CSV_SCAN_AVX2;
    return HAVE_SSE2_SCAN   ? WEFT__CSV_SCAN_SSE2
           : HAVE_SWAR_SCAN ? WEFT__CSV_SCAN_SWAR
                            : WEFT__CSV_SCAN_SCALAR;
}

typedef struct bscan {
    const char *b;
    size_t n;       /* the buffer's length */
    size_t base;    /* the block: the masks' bit i is byte base + i */
    uint64_t any;   /* delimiters, newlines and quotes of the block */
    uint64_t quote; /* quotes of the block */
    char d;
    int kind;
} bscan;

/* Bytes b[0..n) (n <= 64) one at a time. */
static void block_scalar(const char *b, size_t n, char d, uint64_t *any, uint64_t *quote)
{
    uint64_t a = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        a |= (uint64_t)(c == d || c == '\n' || c == '"') << i;
        q |= (uint64_t)(c == '"') << i;
    }
    *any = a;
    *quote = q;
}

#if HAVE_SWAR_SCAN
/* 0x80 in every byte of x that is zero, exactly (no borrow between bytes). */
static inline uint64_t swar_zero(uint64_t x)
{
    const uint64_t lo7 = 0x7F7F7F7F7F7F7F7Full;
    return ~(((x & lo7) + lo7) | x | lo7);
}

/* The high bits of the 8 bytes of h (0x80 or 0 each) as bits 0..7: each
 * byte's bit lands on its own bit of the top byte, no two terms of the
 * product on one bit, so no carries. */
static inline uint64_t swar_pack(uint64_t h)
{
    return ((h >> 7) * 0x0102040810204080ull) >> 56;
}

static void block_swar(const char *b, char d, uint64_t *any, uint64_t *quote)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t md = ones * (unsigned char)d, mn = ones * '\n', mq = ones * '"';
    uint64_t a = 0, q = 0;
    for (unsigned k = 0; k < 8; k++) {
        uint64_t w;
        memcpy(&w, b + 8 * k, 8);
        uint64_t zq = swar_zero(w ^ mq);
        uint64_t za = zq | swar_zero(w ^ md) | swar_zero(w ^ mn);
        a |= swar_pack(za) << (8 * k);
        q |= swar_pack(zq) << (8 * k);
    }
    *any = a;
    *quote = q;
}
#endif

#if HAVE_SSE2_SCAN
static inline void block_sse2(const char *b, char d, uint64_t *any, uint64_t *quote)
{
    const __m128i vd = _mm_set1_epi8(d), vn = _mm_set1_epi8('\n'), vq = _mm_set1_epi8('"');
    uint64_t a = 0, q = 0;
    for (unsigned k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * k));
        __m128i mq = _mm_cmpeq_epi8(x, vq);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vd), _mm_cmpeq_epi8(x, vn)), mq);
        a |= (uint64_t)(unsigned)_mm_movemask_epi8(m) << (16 * k);
        q |= (uint64_t)(unsigned)_mm_movemask_epi8(mq) << (16 * k);
    }
    *any = a;
    *quote = q;
}
#endif

#if HAVE_AVX2_SCAN
__attribute__((target("avx2"))) static void block_avx2(const char *b, char d, uint64_t *any,
                                                       uint64_t *quote)
{
    const __m256i vd = _mm256_set1_epi8(d), vn = _mm256_set1_epi8('\n'), vq = _mm256_set1_epi8('"');
    __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)b);
    __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + 32));
    __m256i q0 = _mm256_cmpeq_epi8(x0, vq), q1 = _mm256_cmpeq_epi8(x1, vq);
    __m256i a0 =
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x0, vd), _mm256_cmpeq_epi8(x0, vn)), q0);
    __m256i a1 =
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x1, vd), _mm256_cmpeq_epi8(x1, vn)), q1);
    *any = (uint64_t)(uint32_t)_mm256_movemask_epi8(a0) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(a1) << 32;
    *quote = (uint64_t)(uint32_t)_mm256_movemask_epi8(q0) |
             (uint64_t)(uint32_t)_mm256_movemask_epi8(q1) << 32;
}
#endif

/* Masks the block of 64 bytes from j (fewer at the buffer's end). */
static void bs_load(bscan *s, size_t j)
{
    s->base = j;
    /* the range is read once, forwards: ask for the line 16 blocks ahead
     * now (a hint: never a fault, even past the end), so that it is in the
     * cache when the scanner gets there (a load that misses waits for
     * memory: the first touch of each line of a mapped range) */
    __builtin_prefetch((const void *)((uintptr_t)s->b + j + 1024));
    if (s->n - j < 64) {
        block_scalar(s->b + j, s->n - j, s->d, &s->any, &s->quote);
        return;
    }
    switch (s->kind) {
#if HAVE_AVX2_SCAN
    case WEFT__CSV_SCAN_AVX2:
        block_avx2(s->b + j, s->d, &s->any, &s->quote);
        return;
#endif
#if HAVE_SSE2_SCAN
    case WEFT__CSV_SCAN_SSE2:
        block_sse2(s->b + j, s->d, &s->any, &s->quote);
        return;
#endif
#if HAVE_SWAR_SCAN
    case WEFT__CSV_SCAN_SWAR:
        block_swar(s->b + j, s->d, &s->any, &s->quote);
        return;
#endif
    default:
        block_scalar(s->b + j, 64, s->d, &s->any, &s->quote);
    }
}

/* A scanner over b[0..n), its first block at `from` (<= n). */
static void bs_init(bscan *s, const char *b, size_t n, char d, int kind, size_t from)
{
    s->b = b;
    s->n = n;
    s->d = d;
    s->kind = kind;
    bs_load(s, from);
}

/* The first index >= j of a delimiter, newline or quote (quote_only: of a
 * quote) in the buffer, or its length. j >= the current block's start:
 * the fields are read forwards. */
static inline size_t bs_next(bscan *s, size_t j, bool quote_only)
{
    for (;;) {
        size_t off = j - s->base;
        if (off < 64) {
            uint64_t m = (quote_only ? s->quote : s->any) >> off;
            if (m) return j + (size_t)__builtin_ctzll(m);
            j = s->base + 64;
        }
        if (j >= s->n) return s->n;
        bs_load(s, j);
    }
}

static inline size_t bs_find(bscan *s, size_t j)
{
    return bs_next(s, j, false);
}

static inline size_t bs_find_quote(bscan *s, size_t j)
{
    return bs_next(s, j, true);
}

size_t weft__csv_find(const char *b, size_t j, size_t n, char delim, int kind)
{
    bscan s;
    bs_init(&s, b, n, delim, kind ? kind : csv_scanner(), j);
    return bs_find(&s, j);
}

size_t weft__csv_walk(const char *b, size_t j, size_t n, char delim, int kind, bool quote_only,
                      size_t *at, size_t cap)
{
    bscan s;
    size_t k = 0;
    bs_init(&s, b, n, delim, kind ? kind : csv_scanner(), j);
    while (k < cap) {
        j = bs_next(&s, j, quote_only);
        if (j >= n) break;
        at[k++] = j++;
    }
    return k;
}

/* The number of bytes equal to c in p[0..n). */
static uint64_t count_byte(const char *p, size_t n, char c)
{
    uint64_t k = 0;
    size_t i = 0;
#if HAVE_SSE2_SCAN
    /* per-byte counters (a match is -1: subtract it), summed every 255
     * steps before they can wrap */
    const __m128i vc = _mm_set1_epi8(c), zero = _mm_setzero_si128();
    while (n - i >= 16) {
        size_t steps = (n - i) / 16;
        if (steps > 255) steps = 255;
        __m128i acc = zero;
        for (size_t s = 0; s < steps; s++, i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(x, vc));
        }
        uint64_t two[2];
        _mm_storeu_si128((__m128i *)(void *)two, _mm_sad_epu8(acc, zero));
        k += two[0] + two[1];
    }
#endif
    for (; i < n; i++) k += p[i] == c;
    return k;
}

/* Reads the field at *i of the scanner's buffer; on T_DELIM/T_EOL *i is
 * past the terminator. */
static inline __attribute__((always_inline)) int next_field(bscan *s, bool eof, size_t *i, field *f)
{
    const char *buf = s->b;
    const size_t blen = s->n;
    const char delim = s->d;
    size_t p = *i;
    f->escaped = f->bad = false;
    if (p < blen && buf[p] == '"') {
        size_t j = p + 1;
        for (;;) {
            size_t k = bs_find_quote(s, j);
            if (k >= blen) return eof ? T_UNTERM : T_MORE;
            if (k + 1 >= blen && !eof) return T_MORE;
            if (k + 1 < blen && buf[k + 1] == '"') {
                f->escaped = true;
                j = k + 2;
                continue;
            }
            f->start = p + 1;
            f->len = k - p - 1;
            p = k + 1;
            break;
        }
        if (p < blen && buf[p] != delim && buf[p] != '\n') {
            if (buf[p] == '\r' && p + 1 >= blen && !eof) return T_MORE;
            if (!(buf[p] == '\r' && p + 1 < blen && buf[p + 1] == '\n')) {
                f->bad = true; /* skip to the field's end */
                while (p < blen && buf[p] != delim && buf[p] != '\n') p++;
                if (p >= blen && !eof) return T_MORE;
            } else {
                p++;
            }
        }
    } else {
        size_t j = bs_find(s, p);
        while (j < blen && buf[j] == '"') { /* a stray quote: go on to the field's end */
            f->bad = true;
            j = bs_find(s, j + 1);
        }
        if (j >= blen && !eof) return T_MORE;
        f->start = p;
        f->len = j - p;
        if (f->len && buf[j - 1] == '\r' && j < blen) f->len--;
        p = j;
    }
    if (p >= blen) {
        *i = p;
        return T_EOF;
    }
    *i = p + 1;
    return buf[p] == '\n' ? T_EOL : T_DELIM;
}

/* The field's content, unescaped into `scratch` when needed. */
static const char *field_text(const char *buf, const field *f, char **scratch, size_t *cap,
                              size_t *len)
{
    if (!f->escaped) {
        *len = f->len;
        return buf + f->start;
    }
    if (*cap < f->len + 1) {
        char *p = realloc(*scratch, f->len + 1);
        if (!p) return NULL;
        *scratch = p;
        *cap = f->len + 1;
    }
    size_t o = 0;
    for (size_t k = 0; k < f->len; k++) {
        (*scratch)[o++] = buf[f->start + k];
        if (buf[f->start + k] == '"') k++;
    }
    (*scratch)[o] = 0;
    *len = o;
    return *scratch;
}

/* ---- value parsing ---- */

static const double pow10tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

static const uint64_t pow10_u64[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

/* 2^e for e in [-1022, 1023]. */
static inline double pow2i(int e)
{
    uint64_t b = (uint64_t)(e + 1023) << 52;
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* The double nearest (ties to even) to (q + x) * 2^e2, where q > 0 and x
 * is a fraction in [0, 1) that is non-zero exactly when `sticky`; q must
 * hold at least 54 significant bits or x must be 0. The top 64 bits of q
 * go to one correctly rounded int-to-double conversion with every lower
 * bit (and x) folded into bit 0: below the 11 bits a double drops, so the
 * rounding sees "above half" exactly when the true value is; the scaling
 * by 2^e2 is exact (the callers stay in the normal range). */
static double round_u128(u128 q, bool sticky, int e2)
{
    uint64_t hi = (uint64_t)(q >> 64);
    int len = hi ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll((uint64_t)q);
    uint64_t t;
    if (len > 64) {
        int u = len - 64;
        sticky |= (q & (((u128)1 << u) - 1)) != 0;
        t = (uint64_t)(q >> u);
        e2 += u;
    } else {
        int k = 64 - len;
        t = (uint64_t)q << k;
        e2 -= k;
    }
    return (double)(t | (uint64_t)sticky) * pow2i(e2);
}
#endif

#ifdef __SIZEOF_INT128__
/* recip5[k] = floor(2^recip5_sh[k] / 5^k) for k = 1..22, recip5_sh[k] =
 * 127 + bitlen(5^k): the reciprocal of 5^k in [2^127, 2^128), computed once
 * at load by long division in 64-bit limbs. */
static u128 recip5[23];
static int recip5_sh[23];

__attribute__((constructor)) static void recip5_init(void)
{
    uint64_t p = 1;
    for (int k = 1; k <= 22; k++) {
        p *= 5;
        int bp = 64 - __builtin_clzll(p);
        /* 2^(127 + bp) = 2^(bp - 1) x 2^128 and 2^(bp - 1) < p (5^k is
         * no power of 2): the top limb's quotient is 0 */
        u128 r = (u128)1 << (bp - 1);
        u128 q1 = (r << 64) / p;
        r = (r << 64) % p;
        u128 q0 = (r << 64) / p;
        recip5[k] = q1 << 64 | q0;
        recip5_sh[k] = 127 + bp;
    }
}

/* m / 10^k (m > 0, 1 <= k <= 22) correctly rounded into *out, by one
 * 64 x 128-bit product with 5^k's reciprocal instead of a division; false
 * when the product cannot decide (then the exact division must).
 *
 * With mm = m x 2^lz (its top bit set), s = recip5_sh[k] and I =
 * recip5[k] = 2^s / 5^k - f (0 <= f < 1), the true V = mm x 2^s / 5^k is
 * mm x I + mm x f, and 0 <= mm x f < 2^64. Let top = floor(mm x I / 2^64)
 * = U x 2^64 + L (U its upper, L its lower 64 bits): V / 2^128 lies in
 * [U + L / 2^64, U + (L + 2) / 2^64). When L is neither 0 nor 2^64 - 1,
 * that is strictly inside (U, U + 1): the value is U plus a fraction that
 * is not zero, so U (63 or 64 bits) with a sticky bit rounds exactly as
 * the true value does (round_u128), and m / 10^k = (V / 2^128) x
 * 2^(128 - s - lz - k). When L is 0 or all ones (about 2^-63 of random
 * inputs, and the exact cases: a quotient that ends within the double's
 * bits, or a tie) the caller divides exactly. */
static inline bool div_pow10_recip(uint64_t m, int k, double *out)
{
    int lz = __builtin_clzll(m);
    uint64_t mm = m << lz;
    u128 lo = (u128)mm * (uint64_t)recip5[k];
    u128 hi = (u128)mm * (uint64_t)(recip5[k] >> 64);
    u128 top = hi + (lo >> 64);
    uint64_t L = (uint64_t)top;
    if (L == 0 || L == UINT64_MAX) return false;
    *out = round_u128(top >> 64, true, 128 - recip5_sh[k] - lz - k);
    return true;
}
#endif

#if HAVE_SWAR_SCAN
/* The 8 ASCII digits at s (s[0] the most significant) as a number, or -1
 * when they are not all digits. Every byte is checked to lie in '0'..'9'
 * (its high nibble 3, and still 3 after adding 6), then digits are paired
 * into 2-digit, 4-digit, 8-digit values in the lanes of one uint64_t:
 * three multiplications instead of a chain of eight. No step carries
 * across lanes (99, 9999, 99999999 fit the 8, 16, 32 bits). */
static inline int64_t eight_digits(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ull, threes = 0x3030303030303030ull;
    if ((v & hi) != threes || ((v + 0x0606060606060606ull) & hi) != threes) return -1;
    uint64_t d = v - threes;
    d = (d * 10 + (d >> 8)) & 0x00FF00FF00FF00FFull;
    d = (d * 100 + (d >> 16)) & 0x0000FFFF0000FFFFull;
    return (int64_t)(uint32_t)(d * 10000 + (d >> 32));
}
#endif

/* The digits of s[*i..n) into *m (times 10 per digit), eight at a time
 * while eight remain (at most one failed try per run, at its end), then
 * one at a time (a short run's chain of multiply-adds is shorter than the
 * eight-digit test and pairing); *nd counts them. */
static inline __attribute__((always_inline)) void digit_run(const char *s, size_t n, size_t *i,
                                                            uint64_t *m, int *nd)
{
    size_t j = *i;
    uint64_t v = *m;
#if HAVE_SWAR_SCAN
    while (n - j >= 8) {
        int64_t e8 = eight_digits(s + j);
        if (e8 < 0) break;
        v = v * 100000000u + (uint64_t)e8;
        j += 8;
    }
#endif
    while (j < n && (unsigned)(s[j] - '0') < 10) v = v * 10 + (unsigned)(s[j++] - '0');
    *nd += (int)(j - *i);
    *m = v;
    *i = j;
}

static bool parse_double(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    uint64_t m = 0;
    int nd = 0, e10 = 0;
    /* nd counts the digits from the first non-zero one: leading zeros
     * (0.000123) are skipped first, so every digit of a run is significant
     * (more than 19 wrap m around: then nd sends the field to strtod) */
    size_t z0 = i;
    while (i < n && s[i] == '0') i++;
    bool digits = i > z0;
    size_t r0 = i;
    digit_run(s, n, &i, &m, &nd);
    digits |= i > r0;
    if (i < n && s[i] == '.') {
        i++;
        if (nd == 0) { /* 0.000123: the fraction's leading zeros */
            size_t f0 = i;
            while (i < n && s[i] == '0') i++;
            e10 -= (int)(i - f0);
            digits |= i > f0;
        }
        size_t f1 = i;
        digit_run(s, n, &i, &m, &nd);
        e10 -= (int)(i - f1);
        digits |= i > f1;
    }
    if (digits && i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t k = i + 1;
        bool eneg = false;
        if (k < n && (s[k] == '-' || s[k] == '+')) eneg = s[k++] == '-';
        int ev = 0, ed = 0;
        while (k < n && s[k] >= '0' && s[k] <= '9' && ed < 6) ev = ev * 10 + (s[k++] - '0'), ed++;
        if (ed && k == n) {
            e10 += eneg ? -ev : ev;
            i = k;
        }
    }
    if (digits && i == n && nd <= 19 && m <= (1ull << 53) && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        v = e10 >= 0 ? v * pow10tab[e10] : v / pow10tab[-e10];
        *out = neg ? -v : v;
        return true;
    }
#ifdef __SIZEOF_INT128__
    if (digits && i == n && nd <= 19 && e10 >= -22 && e10 <= 19) {
        /* m > 2^53 (17 to 19 digits, as printed by %.17g or repr): exact
         * in 128 bits, m * 10^e10, or m / 10^-e10 by the reciprocal's
         * product when it decides, else m * 2^s / 10^-e10 with the
         * remainder as a sticky bit, rounded once (round_u128) */
        double v;
        if (e10 >= 0) {
            v = round_u128((u128)m * pow10_u64[e10], false, 0);
        } else if (div_pow10_recip(m, -e10, &v)) {
            /* v set */
        } else if (-e10 <= 19) {
            /* one 128-by-64-bit division: m * 2^sh has bitlen(den) + 63
             * bits, so the quotient has 63 or 64 (at least 54 are needed)
             * and fits the 64-bit result */
            uint64_t den = pow10_u64[-e10], q, r;
            int sh = (64 - __builtin_clzll(den)) + 63 - (64 - __builtin_clzll(m));
            u128 num = (u128)m << sh;
#if defined(__x86_64__)
            __asm__("divq %4"
                    : "=a"(q), "=d"(r)
                    : "a"((uint64_t)num), "d"((uint64_t)(num >> 64)), "rm"(den)
                    : "cc");
#else
            q = (uint64_t)(num / den);
            r = (uint64_t)(num - (u128)q * den);
#endif
            v = round_u128(q, r != 0, -sh);
        } else {
            int sh = 64 + __builtin_clzll(m);
            u128 num = (u128)m << sh, den = (u128)pow10_u64[19] * pow10_u64[-e10 - 19];
            u128 q = num / den;
            v = round_u128(q, num - q * den != 0, -sh);
        }
        *out = neg ? -v : v;
        return true;
    }
#endif
    /* the slow path: strtod on a NUL-terminated copy */
    char small[64], *buf = small;
    if (n == 0) return false;
    if (n >= sizeof small) {
        buf = malloc(n + 1);
        if (!buf) return false;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    bool ok = end == buf + n && !(s[0] == ' ' || s[0] == '\t');
    if (buf != small) free(buf);
    if (ok) *out = v;
    return ok;
}

static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == n) return false;
    uint64_t v = 0;
    if (n - i <= 18) { /* at most 10^18 - 1 < 2^63: no overflow to test per digit */
        for (; i < n; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (d > 9) return false;
            v = v * 10 + d;
        }
    }
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9) return false;
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_bool(const char *s, size_t n, bool *out)
{
    if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))) {
        *out = true;
        return true;
    }
    if ((n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))) {
        *out = false;
        return true;
    }
    return false;
}

static bool is_na(const csv_spec *sp, const char *s, size_t n)
{
    if (n > sp->na_maxlen || (n && !sp->na_first[(unsigned char)s[0]])) return false;
    for (size_t k = 0; k < sp->nna; k++)
        if (sp->na_len[k] == n && memcmp(sp->na[k], s, n) == 0) return true;
    return false;
}

/* Fills the NA strings' lengths (is_na compares lengths first). */
static int na_lengths(csv_spec *sp)
{
    free(sp->na_len);
    sp->na_len = calloc(sp->nna + 1, sizeof *sp->na_len);
    if (!sp->na_len) return WEFT_ENOMEM;
    sp->na_maxlen = 0;
    memset(sp->na_first, 0, sizeof sp->na_first);
    for (size_t k = 0; k < sp->nna; k++) {
        sp->na_len[k] = strlen(sp->na[k]);
        sp->na_first[(unsigned char)sp->na[k][0]] = true;
        if (sp->na_len[k] > sp->na_maxlen) sp->na_maxlen = sp->na_len[k];
    }
    return 0;
}

/* ---- file helpers ---- */

/* The bytes a read task reads at once (weft__csv_set_chunk: the tests make
 * it tiny, so that records and fields cross chunks everywhere). */
static _Atomic size_t csv_chunk = (size_t)1 << 20;

int weft__csv_set_chunk(size_t bytes)
{
    atomic_store_explicit(&csv_chunk, bytes ? bytes : (size_t)1 << 20, memory_order_relaxed);
    return 0;
}

static int read_at(int fd, char *buf, size_t n, uint64_t off, size_t *got)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = pread(fd, buf + have, n - have, (off_t)(off + have));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        have += (size_t)r;
    }
    *got = have;
    return 0;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 0;
}

/* Splits the first `len` bytes of `buf` into records of text fields; calls
 * `fn` per record. Stops at the last complete record unless `eof`.
 * @return records seen, or a negative code. */
typedef int (*record_fn)(void *arg, const char *buf, const field *fs, size_t nf);

static int for_records(const char *buf, size_t len, bool eof, char delim, size_t max_records,
                       record_fn fn, void *arg, size_t *consumed)
{
    size_t i = 0, nrec = 0, cap = 16;
    bscan sc;
    bs_init(&sc, buf, len, delim, csv_scanner(), 0);
    field *fs = malloc(cap * sizeof *fs);
    if (!fs) return WEFT_ENOMEM;
    int rc = 0;
    while (i < len && nrec < max_records) {
        size_t nf = 0, p = i;
        int t;
        for (;;) {
            if (nf == cap) {
                field *q = realloc(fs, cap * 2 * sizeof *fs);
                if (!q) {
                    free(fs);
                    return WEFT_ENOMEM;
                }
                fs = q;
                cap *= 2;
            }
            t = next_field(&sc, eof, &p, &fs[nf]);
            if (t == T_MORE || t == T_UNTERM) break;
            nf++;
            if (t != T_DELIM) break;
        }
        if (t == T_MORE) break;
        if (t == T_UNTERM) {
            rc = WEFT_EINVAL;
            break;
        }
        i = p;
        if (nf == 1 && fs[0].len == 0 && !fs[0].escaped &&
            (fs[0].start == 0 || buf[fs[0].start - 1] != '"'))
            continue; /* a blank line */
        rc = fn(arg, buf, fs, nf);
        if (rc) break;
        nrec++;
    }
    free(fs);
    if (consumed) *consumed = i;
    return rc ? rc : (int)nrec;
}

/* ---- preparing a read: headers, schema, inference ---- */

typedef struct hdr_state {
    char **names;
    size_t n;
} hdr_state;

static int take_header(void *arg, const char *buf, const field *fs, size_t nf)
{
    hdr_state *h = arg;
    h->names = calloc(nf, sizeof *h->names);
    if (!h->names) return WEFT_ENOMEM;
    h->n = nf;
    char *scratch = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < nf; k++) {
        size_t l;
        const char *s = field_text(buf, &fs[k], &scratch, &cap, &l);
        h->names[k] = s ? strndup(s, l) : NULL;
        if (!h->names[k]) {
            free(scratch);
            return WEFT_ENOMEM;
        }
    }
    free(scratch);
    return 0;
}

typedef struct infer_state {
    const csv_spec *sp;
    size_t ncols;
    uint8_t *can; /* per column: bit0 int, bit1 double, bit2 bool, bit3 any non-NA */
} infer_state;

static int infer_record(void *arg, const char *buf, const field *fs, size_t nf)
{
    infer_state *st = arg;
    char *scratch = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < nf && k < st->ncols; k++) {
        size_t l;
        const char *s = field_text(buf, &fs[k], &scratch, &cap, &l);
        if (!s) break;
        if (is_na(st->sp, s, l)) continue;
        st->can[k] |= 8;
        int64_t iv;
        double dv;
        bool bv;
        if (!parse_int64(s, l, &iv)) st->can[k] &= (uint8_t)~1u;
        if (!parse_double(s, l, &dv)) st->can[k] &= (uint8_t)~2u;
        if (!parse_bool(s, l, &bv)) st->can[k] &= (uint8_t)~4u;
    }
    free(scratch);
    return 0;
}

static int file_head(const char *path, size_t want, char **buf, size_t *got, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return weft__err(-errno, "%s: %s", path, strerror(errno));
    off_t end = lseek(fd, 0, SEEK_END);
    *size = end > 0 ? (uint64_t)end : 0;
    if (want > *size) want = (size_t)*size;
    *buf = malloc(want + 1);
    if (!*buf) {
        close(fd);
        return WEFT_ENOMEM;
    }
    int rc = read_at(fd, *buf, want, 0, got);
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
        return weft__err(rc, "%s: %s", path, strerror(-rc));
    }
    (*buf)[*got] = 0;
    return 0;
}

int weft__csv_prepare(const char *const *paths, size_t n, const weft_csv_options *o, csv_spec *sp,
                      uint64_t *data_start, uint64_t *data_line, uint64_t *size)
{
    memset(sp, 0, sizeof *sp);
    sp->delimiter = o->delimiter ? o->delimiter : ',';
    sp->flags = o->flags;
    if (sp->delimiter == '"' || sp->delimiter == '\n' || sp->delimiter == '\r')
        return weft__err(WEFT_EINVAL,
                         "weft_frame_read_csv: the delimiter cannot be a quote or newline");
    const char *const *na = o->na_values ? o->na_values : default_na;
    size_t nna = o->na_values ? o->n_na_values : sizeof default_na / sizeof *default_na;
    sp->na = calloc(nna ? nna : 1, sizeof *sp->na);
    if (!sp->na) return WEFT_ENOMEM;
    for (size_t k = 0; k < nna; k++) {
        if (!na[k]) return weft__err(WEFT_EINVAL, "weft_frame_read_csv: na_values[%zu] is NULL", k);
        if (!(sp->na[k] = strdup(na[k]))) return WEFT_ENOMEM;
        sp->nna++;
    }
    if (na_lengths(sp)) return WEFT_ENOMEM;
    size_t sample = o->sample_bytes ? o->sample_bytes : (1u << 20);
    int rc = 0;
    for (size_t f = 0; f < n && !rc; f++) {
        char *buf = NULL;
        size_t got = 0;
        /* the header may be long: read until it is whole */
        size_t want = f == 0 ? sample : 65536;
        for (;;) {
            rc = file_head(paths[f], want, &buf, &got, &size[f]);
            if (rc) return rc;
            size_t bom = got >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
            bool eof = got == size[f];
            hdr_state h = {0};
            size_t used = 0;
            int nrec = 0;
            if (!(sp->flags & WEFT_CSV_NO_HEADER)) {
                nrec = for_records(buf + bom, got - bom, eof, sp->delimiter, 1, take_header, &h,
                                   &used);
                if (nrec == 0 && !eof) {
                    free(buf);
                    want *= 4;
                    continue;
                }
                if (nrec < 0) {
                    free(buf);
                    return weft__err(nrec == WEFT_EINVAL ? WEFT_EINVAL : nrec,
                                     "%s:1: the header has an unterminated quoted field", paths[f]);
                }
            }
            data_start[f] = bom + used;
            uint64_t nl = 0;
            for (size_t k = 0; k < bom + used; k++) nl += buf[k] == '\n';
            data_line[f] = nl + 1;
            if (f == 0) {
                size_t ncols;
                if (o->schema) {
                    ncols = o->n_schema;
                    if (!(sp->flags & WEFT_CSV_NO_HEADER) && h.n != ncols &&
                        !(h.n == 0 && eof && got == bom))
                        rc = weft__err(WEFT_EINVAL, "%s: the header has %zu fields, the schema %zu",
                                       paths[f], h.n, ncols);
                } else if (sp->flags & WEFT_CSV_NO_HEADER) {
                    /* count the fields of the first record */
                    hdr_state h2 = {0};
                    for_records(buf + bom, got - bom, eof, sp->delimiter, 1, take_header, &h2,
                                NULL);
                    ncols = h2.n;
                    for (size_t k = 0; k < h2.n; k++) free(h2.names[k]);
                    free(h2.names);
                } else {
                    ncols = h.n;
                }
                if (!rc && ncols == 0)
                    rc = weft__err(WEFT_EINVAL, "%s: no columns (an empty file needs a schema)",
                                   paths[f]);
                if (!rc) {
                    sp->ncols = ncols;
                    sp->names = calloc(ncols, sizeof *sp->names);
                    sp->types = calloc(ncols, sizeof *sp->types);
                    if (!sp->names || !sp->types) rc = WEFT_ENOMEM;
                }
                for (size_t k = 0; k < ncols && !rc; k++) {
                    char tmp[32];
                    const char *nm;
                    if (o->schema) {
                        nm = o->schema[k].name;
                        if (!nm || o->schema[k].type < WEFT_COL_INT64 ||
                            o->schema[k].type > WEFT_COL_TEXT)
                            rc = weft__err(WEFT_EINVAL,
                                           "weft_frame_read_csv: schema[%zu] is not valid", k);
                        else if (h.names && strcmp(h.names[k], nm))
                            rc = weft__err(WEFT_EINVAL,
                                           "%s: header field %zu is '%s', the schema says '%s'",
                                           paths[f], k + 1, h.names[k], nm);
                        sp->types[k] = o->schema[k].type;
                    } else {
                        snprintf(tmp, sizeof tmp, "c%zu", k);
                        nm = h.names ? h.names[k] : tmp;
                    }
                    if (!rc && !(sp->names[k] = strdup(nm))) rc = WEFT_ENOMEM;
                }
                for (size_t a = 0; a < ncols && !rc; a++)
                    for (size_t b = a + 1; b < ncols && !rc; b++)
                        if (!strcmp(sp->names[a], sp->names[b]))
                            rc = weft__err(WEFT_EINVAL, "%s: column name '%s' appears twice",
                                           paths[f], sp->names[a]);
                if (!rc && !o->schema) {
                    infer_state st = {sp, ncols, malloc(ncols)};
                    if (!st.can)
                        rc = WEFT_ENOMEM;
                    else {
                        memset(st.can, 7, ncols);
                        size_t from = data_start[f];
                        int r2 = for_records(buf + from, got - from, eof, sp->delimiter, SIZE_MAX,
                                             infer_record, &st, NULL);
                        (void)r2; /* a malformed sample record is reported by the reader */
                        for (size_t k = 0; k < ncols; k++) {
                            uint8_t c = st.can[k];
                            sp->types[k] = !(c & 8)  ? WEFT_COL_DOUBLE
                                           : (c & 1) ? WEFT_COL_INT64
                                           : (c & 2) ? WEFT_COL_DOUBLE
                                           : (c & 4) ? WEFT_COL_BOOL
                                                     : WEFT_COL_TEXT;
                        }
                        free(st.can);
                    }
                }
            } else if (!rc && h.names) {
                bool same = h.n == sp->ncols;
                for (size_t k = 0; same && k < h.n; k++) same = !strcmp(h.names[k], sp->names[k]);
                if (!same)
                    rc = weft__err(WEFT_EINVAL, "%s: its header differs from %s's", paths[f],
                                   paths[0]);
            }
            for (size_t k = 0; k < h.n; k++) free(h.names[k]);
            free(h.names);
            free(buf);
            break;
        }
    }
    return rc;
}

/* ---- chunk specs: what the scan and read tasks of one range get ---- */

typedef struct chunk {
    char *path;
    uint64_t start, end;
    bool first;
    csv_spec sp;
} chunk;

static void put_u64(char **p, uint64_t v)
{
    memcpy(*p, &v, 8);
    *p += 8;
}

static void put_str(char **p, const char *s)
{
    uint64_t l = strlen(s);
    put_u64(p, l);
    memcpy(*p, s, l);
    *p += l;
}

int weft__csv_chunk_encode(const csv_spec *s, const char *path, uint64_t start, uint64_t end,
                           bool first, void **buf, size_t *len)
{
    size_t n = 8 * 8 + 8 + strlen(path);
    for (size_t k = 0; k < s->ncols; k++) n += 16 + strlen(s->names[k]);
    for (size_t k = 0; k < s->nna; k++) n += 8 + strlen(s->na[k]);
    char *b = malloc(n), *p = b;
    if (!b) return WEFT_ENOMEM;
    put_str(&p, path);
    put_u64(&p, start);
    put_u64(&p, end);
    put_u64(&p, first);
    put_u64(&p, (uint64_t)(unsigned char)s->delimiter);
    put_u64(&p, s->flags);
    put_u64(&p, s->ncols);
    for (size_t k = 0; k < s->ncols; k++) {
        put_u64(&p, (uint64_t)s->types[k]);
        put_str(&p, s->names[k]);
    }
    put_u64(&p, s->nna);
    for (size_t k = 0; k < s->nna; k++) put_str(&p, s->na[k]);
    *buf = b;
    *len = (size_t)(p - b);
    return 0;
}

static bool get_u64(const char **p, const char *e, uint64_t *v)
{
    if (e - *p < 8) return false;
    memcpy(v, *p, 8);
    *p += 8;
    return true;
}

static char *get_str(const char **p, const char *e)
{
    uint64_t l;
    if (!get_u64(p, e, &l) || (uint64_t)(e - *p) < l) return NULL;
    char *s = strndup(*p, l);
    *p += l;
    return s;
}

static void chunk_free(chunk *c)
{
    free(c->path);
    weft__csv_spec_free(&c->sp);
}

/* Decodes the range's literal d[0..n) (weft__csv_chunk_encode's bytes). */
static int chunk_decode(const void *d, size_t n, chunk *c)
{
    memset(c, 0, sizeof *c);
    const char *p = d, *e = p + n;
    uint64_t first, delim, flags, ncols, nna;
    if (!(c->path = get_str(&p, e)) || !get_u64(&p, e, &c->start) || !get_u64(&p, e, &c->end) ||
        !get_u64(&p, e, &first) || !get_u64(&p, e, &delim) || !get_u64(&p, e, &flags) ||
        !get_u64(&p, e, &ncols) || ncols > n)
        goto bad;
    c->first = first;
    c->sp.delimiter = (char)delim;
    c->sp.flags = (unsigned)flags;
    c->sp.types = calloc(ncols ? ncols : 1, sizeof *c->sp.types);
    c->sp.names = calloc(ncols ? ncols : 1, sizeof *c->sp.names);
    if (!c->sp.types || !c->sp.names) goto bad;
    c->sp.ncols = ncols;
    for (size_t k = 0; k < ncols; k++) {
        uint64_t t;
        if (!get_u64(&p, e, &t) || !(c->sp.names[k] = get_str(&p, e))) goto bad;
        c->sp.types[k] = (weft_col_type)t;
    }
    if (!get_u64(&p, e, &nna) || nna > n) goto bad;
    c->sp.na = calloc(nna ? nna : 1, sizeof *c->sp.na);
    if (!c->sp.na) goto bad;
    for (size_t k = 0; k < nna; k++) {
        if (!(c->sp.na[k] = get_str(&p, e))) goto bad;
        c->sp.nna++;
    }
    if (na_lengths(&c->sp)) goto bad;
    return 0;
bad:
    chunk_free(c);
    return WEFT_EINVAL;
}

/* ---- scan ---- */

typedef struct scan_out {
    uint64_t parity, newlines;
    uint64_t first[2];     /* first record start under hypothesis out (0) / in (1) */
    uint64_t nl_before[2]; /* newlines before it, from the range's start */
    uint64_t start, is_first;
} scan_out;

/* The set bits of x (no popcnt instruction in an x86-64 baseline build:
 * __builtin_popcountll would call libgcc). */
static inline uint64_t popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (x * 0x0101010101010101ull) >> 56;
}

int weft__csv_scan(weft_ctx *ctx, const void *in, size_t len)
{
    chunk c;
    const void *d;
    size_t dn;
    if (weft_args_get(in, len, 0, &d, &dn) || chunk_decode(d, dn, &c))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "csv scan: bad input");
    int fd = open(c.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        weft_ctx_fail(ctx, -e, "%s: %s", c.path, strerror(e));
        chunk_free(&c);
        return -e;
    }
    scan_out s = {0, 0, {UINT64_MAX, UINT64_MAX}, {0, 0}, c.start, c.first};
    /* the range is read into one buffer of 1 MiB, window after window:
     * a copy by the kernel (through its own mapping of the page cache)
     * into the same warm pages, not the file's pages mapped here (a
     * mapping of 4 KiB pages costs a page walk per page on the first
     * touch, which on this VM cost more than the scan itself) */
    const size_t bsz = (size_t)1 << 20;
    char *wbuf = malloc(c.end > c.start && c.end - c.start < bsz ? (size_t)(c.end - c.start) : bsz);
    int rc = wbuf ? 0 : WEFT_ENOMEM;
    unsigned par = 0;
    const int kind = csv_scanner();
    if (!rc && !c.first && c.start > 0 && c.start < c.end) {
        /* a record starts right at the range's start when the byte before
         * is a newline outside quotes (that newline is not a quote, so the
         * state there is the range's starting state) */
        size_t got;
        char one = 0;
        rc = read_at(fd, &one, 1, c.start - 1, &got);
        if (!rc && got == 1 && one == '\n') {
            s.first[0] = c.start;
            s.nl_before[0] = 0;
        }
    }
    uint64_t fsize = file_size(fd);
    if (c.end > fsize) c.end = fsize;
    for (uint64_t off = c.start; off < c.end && !rc;) {
        size_t want = (size_t)(c.end - off < bsz ? c.end - off : bsz), got;
        rc = read_at(fd, wbuf, want, off, &got);
        if (rc) break;
        const char *buf = wbuf;
        if (got == 0) {
            break;
        }
        /* one pass of 64-byte blocks (the field scanner's masks with the
         * newline as delimiter: newlines and quotes): a block without a
         * quote keeps the parity, so its newlines are counted at once and
         * the first found only while a hypothesis needs it; a block with
         * quotes is walked bit by bit in order */
        bscan sc;
        bs_init(&sc, buf, got, '\n', kind, 0);
        for (size_t i = 0; i < got; i += 64) {
            if (i) bs_load(&sc, i);
            uint64_t q = sc.quote, nl = sc.any & ~q;
            if (!q) {
                if (nl && s.first[par] == UINT64_MAX) {
                    s.nl_before[par] = s.newlines + 1;
                    s.first[par] = off + i + (size_t)__builtin_ctzll(nl) + 1;
                }
                s.newlines += popcount64(nl);
                continue;
            }
            for (uint64_t m = nl | q; m; m &= m - 1) {
                unsigned b = (unsigned)__builtin_ctzll(m);
                if ((q >> b) & 1) {
                    par ^= 1u;
                    continue;
                }
                if (s.first[par] == UINT64_MAX) {
                    s.nl_before[par] = s.newlines + 1;
                    s.first[par] = off + i + b + 1;
                }
                s.newlines++;
            }
        }
        off += got;
    }
    s.parity = par;
    free(wbuf);
    close(fd);
    if (!rc)
        rc = weft_ctx_set_output(ctx, &s, sizeof s);
    else
        weft_ctx_fail(ctx, rc, "%s: %s", c.path, strerror(-rc));
    chunk_free(&c);
    return rc;
}

int weft__csv_bound(weft_ctx *ctx, const void *in, size_t len)
{
    const void *a, *b;
    size_t la, lb;
    csv_bound prev, out;
    scan_out s;
    if (weft_args_get(in, len, 0, &a, &la) || weft_args_get(in, len, 1, &b, &lb) ||
        la != sizeof prev || lb != sizeof s)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "csv bound: bad input");
    memcpy(&prev, a, sizeof prev);
    memcpy(&s, b, sizeof s);
    unsigned st = (unsigned)prev.state_end;
    if (s.is_first) {
        /* the file's first range starts at a record (after the header) */
        out.rec_start = s.start;
        out.rec_line = prev.lines_end + 1;
    } else {
        out.rec_start = s.first[st];
        out.rec_line = prev.lines_end + s.nl_before[st] + 1;
    }
    out.state_end = st ^ (unsigned)s.parity;
    out.lines_end = prev.lines_end + s.newlines;
    return weft_ctx_set_output(ctx, &out, sizeof out);
}

/* ---- read ---- */

/* What the reader does with a column's fields, fixed once per task from
 * the column's type and whether it is kept: the record loop switches on
 * it instead of asking the column's slot, type and room field by field. */
enum {
    OP_SKIP,         /* text, not kept: any bytes fit */
    OP_CHECK_INT,    /* not kept: checked as the full read would */
    OP_CHECK_DOUBLE, /* (a plain decimal by its syntax, not converted) */
    OP_CHECK_BOOL,
    OP_INT, /* kept */
    OP_DOUBLE,
    OP_BOOL,
    OP_TEXT
};

typedef struct reader {
    const chunk *c;
    weft_table *t;
    int *slot;   /* per CSV column: its column in t, or -1 when not kept */
    uint8_t *op; /* per CSV column: OP_* */
    tcol **col;  /* per CSV column: its column in t, or NULL */
    int kind;    /* the field scanner (bscan) */
    size_t room; /* every kept column has room for a row below this */
    char *scratch;
    size_t scap;
    uint64_t skipped;
    bool reserved;
    bool reused;     /* parsing into an earlier partition's table */
    size_t consumed; /* bytes of the range before the buffer's first */
} reader;

/* The rows every kept column has room for (the least of their caps). */
static size_t min_room(const weft_table *t)
{
    size_t m = SIZE_MAX;
    for (size_t k = 0; k < t->ncols; k++)
        if (t->cols[k].cap < m) m = t->cols[k].cap;
    return t->ncols ? m : SIZE_MAX;
}

/* Room for one more row in every kept column (doubling). */
static int make_room(reader *r)
{
    weft_table *t = r->t;
    for (size_t k = 0; k < t->ncols; k++)
        if (t->cols[k].cap <= t->nrows && weft__tcol_reserve(&t->cols[k], t->nrows + 1))
            return WEFT_ENOMEM;
    r->room = min_room(t);
    return 0;
}

/* After the first records, sizes every column for the range's expected
 * rows (+6%): growing by doubling copies each column about twice. A
 * reused table (weft__csv_parse's `reuse`) that must grow grows by 1/8
 * more, so that the next ranges' estimates (a few % apart) fit it. */
static void reserve_estimate(reader *r, size_t used, size_t limit)
{
    weft_table *t = r->t;
    r->reserved = true;
    if (!used) return;
    double per = (double)used / (double)t->nrows;
    size_t est = (size_t)((double)limit / per * 1.06) + 64;
    for (size_t k = 0; k < t->ncols; k++) {
        tcol *c = &t->cols[k];
        size_t rows = r->reused && est > c->cap ? est + est / 8 : est;
        if (weft__tcol_reserve_exact(c, rows)) break;
        if (c->type == WEFT_COL_TEXT) {
            size_t want = (size_t)((double)c->nchars / (double)t->nrows * (double)est * 1.06) + 64;
            if (r->reused && want > c->capchars) want += want / 8;
            if (want > c->capchars) {
                char *p = weft__blk_grow(c->chars, c->nchars, want);
                if (!p) break;
                c->chars = p;
                c->capchars = want;
            }
        }
    }
    r->room = min_room(t);
}

static void rollback(weft_table *t, size_t rows)
{
    for (size_t k = 0; k < t->ncols; k++) {
        tcol *col = &t->cols[k];
        col->n = rows;
        if (col->type == WEFT_COL_TEXT) col->nchars = ((uint64_t *)col->data)[rows];
    }
}

/* Whether parse_double accepts s[0..n): the plain decimal forms
 * ([+-]digits[.digits][e[+-]digits], a digit at least) are checked without
 * converting them; anything else is converted by parse_double itself. */
static bool double_ok(const char *s, size_t n)
{
    size_t i = 0, nd = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    for (; i < n && (unsigned)(s[i] - '0') < 10; i++) nd++;
    if (i < n && s[i] == '.')
        for (i++; i < n && (unsigned)(s[i] - '0') < 10; i++) nd++;
    if (nd && i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t k = i + 1;
        if (k < n && (s[k] == '-' || s[k] == '+')) k++;
        size_t e0 = k;
        while (k < n && (unsigned)(s[k] - '0') < 10) k++;
        if (k > e0) i = k;
    }
    if (nd && i == n) return true;
    double v;
    return parse_double(s, n, &v);
}

/* Stores field k of a record (or checks it, when its column is not kept):
 * 0, 1 when the value does not fit the type, or a negative code. Every
 * kept column has room for the row (r->room): a value is written in
 * place; only a first missing value (its column's mask to make) and text
 * past its bytes' room take the push functions. */
static inline int store(reader *r, size_t k, const char *buf, const field *f)
{
    const unsigned op = r->op[k];
    if (op == OP_SKIP) return 0;
    size_t l = f->len;
    const char *s = buf + f->start;
    if (f->escaped && !(s = field_text(buf, f, &r->scratch, &r->scap, &l))) return WEFT_ENOMEM;
    const bool na = is_na(&r->c->sp, s, l);
    tcol *col = r->col[k];
    switch (op) {
    case OP_CHECK_INT: {
        int64_t iv;
        return na || parse_int64(s, l, &iv) ? 0 : 1;
    }
    case OP_CHECK_DOUBLE:
        return na || double_ok(s, l) ? 0 : 1;
    case OP_CHECK_BOOL: {
        bool bv;
        return na || parse_bool(s, l, &bv) ? 0 : 1;
    }
    case OP_INT: {
        int64_t v = 0;
        if (na) {
            if (!col->valid) return weft__tcol_push_int64(col, 0, false);
        } else if (!parse_int64(s, l, &v)) {
            return 1;
        }
        if (col->valid) col->valid[col->n] = !na;
        ((int64_t *)col->data)[col->n++] = v;
        return 0;
    }
    case OP_DOUBLE: {
        double v = NAN;
        if (na) {
            if (!col->valid) return weft__tcol_push_double(col, 0, false);
        } else if (!parse_double(s, l, &v)) {
            return 1;
        }
        if (col->valid) col->valid[col->n] = !na;
        ((double *)col->data)[col->n++] = v;
        return 0;
    }
    case OP_BOOL: {
        bool v = false;
        if (!na && !parse_bool(s, l, &v)) return 1;
        return weft__tcol_push_bool(col, v, !na);
    }
    default: /* OP_TEXT */
        if (!na && col->nchars + l + 1 <= col->capchars) {
            if (col->valid) col->valid[col->n] = 1;
            if (l) memcpy(col->chars + col->nchars, s, l);
            col->chars[col->nchars + l] = 0;
            col->nchars += l + 1;
            ((uint64_t *)col->data)[++col->n] = col->nchars;
            return 0;
        }
        return weft__tcol_push_text(col, s, l, !na);
    }
}

static uint64_t line_of(const char *buf, size_t at, uint64_t line0)
{
    return line0 + count_byte(buf, at, '\n');
}

/* Parses the records that start in buf[*pos .. limit); T_MORE when a record
 * runs past the buffer (it is rolled back: read more and call again).
 * @return 0, T_MORE, or a negative code (the task's message set). */
static int parse_range(reader *r, const char *buf, size_t blen, bool eof, size_t *pos, size_t limit,
                       uint64_t line0, weft_ctx *ctx)
{
    const csv_spec *sp = &r->c->sp;
    const size_t ncols = sp->ncols;
    weft_table *t = r->t;
    size_t i = *pos;
    bscan sc;
    bs_init(&sc, buf, blen, sp->delimiter, r->kind, i);
    while (i < limit && i < blen) {
        size_t rec = i, rows = t->nrows, k = 0;
        int bad = 0; /* 1 bad value, 2 bad quoting, 3 field count */
        size_t bad_field = 0;
        int term;
        field f;
        if (rows >= r->room && make_room(r))
            return weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
        for (;;) {
            term = next_field(&sc, eof, &i, &f);
            if (term == T_MORE) {
                rollback(t, rows);
                *pos = rec;
                return T_MORE;
            }
            if (term == T_UNTERM) {
                rollback(t, rows);
                if (sp->flags & WEFT_CSV_SKIP_BAD) {
                    r->skipped++;
                    *pos = blen;
                    return 0;
                }
                return weft_ctx_fail(
                    ctx, WEFT_EINVAL,
                    "%s:%llu: field %zu: a quoted field is not closed before the end of the file",
                    r->c->path, (unsigned long long)line_of(buf, rec, line0), k + 1);
            }
            if (k == 0 && term != T_DELIM && f.len == 0 && !f.escaped &&
                (f.start == 0 || buf[f.start - 1] != '"'))
                break; /* a blank line */
            if (!bad && k >= ncols) bad = 3, bad_field = k;
            if (!bad && f.bad) bad = 2, bad_field = k;
            if (!bad) {
                int sr = store(r, k, buf, &f);
                if (sr < 0) return weft_ctx_fail(ctx, sr, "out of memory");
                if (sr) bad = 1, bad_field = k;
            }
            k++;
            if (term != T_DELIM) break;
        }
        if (k == 0) continue; /* blank line */
        if (!bad && k < ncols) bad = 3, bad_field = k;
        if (!bad) {
            if (++t->nrows == 512 && !r->reserved)
                reserve_estimate(r, r->consumed + i, r->consumed + limit);
            continue;
        }
        rollback(t, rows);
        if (sp->flags & WEFT_CSV_SKIP_BAD) {
            r->skipped++;
            continue;
        }
        uint64_t line = line_of(buf, rec, line0);
        if (bad == 3)
            return weft_ctx_fail(ctx, WEFT_EINVAL,
                                 "%s:%llu: the record has %zu%s fields, the header %zu", r->c->path,
                                 (unsigned long long)line, bad_field + (k > ncols ? 1 : 0),
                                 k > ncols ? " or more" : "", ncols);
        /* re-read the bad field for the message */
        size_t j = rec;
        bscan s2;
        bs_init(&s2, buf, blen, sp->delimiter, r->kind, j);
        for (size_t q = 0; q <= bad_field; q++) next_field(&s2, true, &j, &f);
        size_t l;
        const char *s = field_text(buf, &f, &r->scratch, &r->scap, &l);
        int show = l > 40 ? 40 : (int)l;
        if (bad == 2)
            return weft_ctx_fail(ctx, WEFT_EINVAL,
                                 "%s:%llu: field %zu (%s): a quote inside an unquoted field or "
                                 "after a closing quote",
                                 r->c->path, (unsigned long long)line_of(buf, f.start, line0),
                                 bad_field + 1, sp->names[bad_field]);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "%s:%llu: field %zu (%s): '%.*s' is not %s",
                             r->c->path, (unsigned long long)line_of(buf, f.start, line0),
                             bad_field + 1, sp->names[bad_field], show, s ? s : "",
                             sp->types[bad_field] == WEFT_COL_INT64    ? "an int64"
                             : sp->types[bad_field] == WEFT_COL_DOUBLE ? "a double"
                                                                       : "a bool");
    }
    *pos = i;
    return 0;
}

/* Whether `t` (a table an earlier parse of the same read made) has exactly
 * the kept columns of `c`, in order: it can then be parsed into again. */
static bool reusable(const weft_table *t, const chunk *c, const int *slot)
{
    size_t kept = 0;
    for (size_t k = 0; k < c->sp.ncols; k++) {
        if (slot[k] < 0) continue;
        if (kept >= t->ncols || t->cols[kept].type != c->sp.types[k] ||
            strcmp(t->cols[kept].name, c->sp.names[k]))
            return false;
        kept++;
    }
    return kept == t->ncols;
}

int weft__csv_parse(weft_ctx *ctx, const void *range, size_t rlen, const void *bound,
                    size_t bound_len, const char *const *keep_names, size_t nkeep, bool no_text,
                    weft_table *reuse, tb_pool *bufs, weft_table **out)
{
    *out = NULL;
    chunk c;
    csv_bound b;
    if (chunk_decode(range, rlen, &c)) {
        weft_table_destroy(reuse);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "csv read: bad input");
    }
    if (!bound || bound_len != sizeof b) {
        weft_table_destroy(reuse);
        chunk_free(&c);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "csv read: bad bound");
    }
    memcpy(&b, bound, sizeof b);
    reader r;
    memset(&r, 0, sizeof r);
    r.c = &c;
    r.kind = csv_scanner();
    r.slot = malloc((c.sp.ncols + 1) * sizeof *r.slot);
    int rc = r.slot ? 0 : WEFT_ENOMEM;
    size_t nkept = 0;
    for (size_t k = 0; k < c.sp.ncols && !rc; k++) {
        bool keep = !(no_text && c.sp.types[k] == WEFT_COL_TEXT);
        if (keep && keep_names) {
            keep = false;
            for (size_t q = 0; q < nkeep && !keep; q++)
                keep = !strcmp(keep_names[q], c.sp.names[k]);
        }
        r.slot[k] = keep ? (int)nkept++ : -1;
    }
    if (!rc && reuse && reusable(reuse, &c, r.slot)) {
        /* the columns of an earlier partition, emptied: their pages are
         * already faulted in (a fresh partition's are not) */
        r.t = reuse;
        r.reused = true;
        reuse = NULL;
        r.t->nrows = 0;
        r.t->skipped = 0;
        for (size_t k = 0; k < r.t->ncols; k++) r.t->cols[k].n = r.t->cols[k].nchars = 0;
    } else if (!rc) {
        rc = weft_table_create(&r.t);
        for (size_t k = 0; k < c.sp.ncols && !rc; k++)
            if (r.slot[k] >= 0 && !weft__table_add_col(r.t, c.sp.names[k], c.sp.types[k]))
                rc = WEFT_ENOMEM;
    }
    weft_table_destroy(reuse);
    if (rc) {
        weft_table_destroy(r.t);
        free(r.slot);
        chunk_free(&c);
        return weft_ctx_fail(ctx, rc, "out of memory");
    }
    /* each column's op, and its column in the table (fixed: no column is
     * added from here on) */
    r.op = malloc(c.sp.ncols + 1);
    r.col = calloc(c.sp.ncols + 1, sizeof *r.col);
    if (!r.op || !r.col) rc = weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
    for (size_t k = 0; k < c.sp.ncols && !rc; k++) {
        weft_col_type ty = c.sp.types[k];
        bool kept = r.slot[k] >= 0;
        r.col[k] = kept ? &r.t->cols[r.slot[k]] : NULL;
        r.op[k] = ty == WEFT_COL_INT64    ? (kept ? OP_INT : OP_CHECK_INT)
                  : ty == WEFT_COL_DOUBLE ? (kept ? OP_DOUBLE : OP_CHECK_DOUBLE)
                  : ty == WEFT_COL_BOOL   ? (kept ? OP_BOOL : OP_CHECK_BOOL)
                  : kept                  ? OP_TEXT
                                          : OP_SKIP;
    }
    r.room = min_room(r.t);
    int fd = -1;
    if (!rc && b.rec_start < c.end) {
        fd = open(c.path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) rc = weft_ctx_fail(ctx, -errno, "%s: %s", c.path, strerror(errno));
        /* read the range in chunks into a pooled buffer (at most
         * csv_chunk bytes, more only for a record longer than that), up to
         * 64 KiB past the range's end (further while its last record runs
         * on); the record that runs past a chunk's end moves to the front
         * and the next chunk follows it (line0: the line of the buffer's
         * first byte) */
        uint64_t fsize = fd >= 0 ? file_size(fd) : 0;
        size_t chunk = atomic_load_explicit(&csv_chunk, memory_order_relaxed);
        uint64_t stop = c.end + 65536;
        tb_buf wb = {NULL, 0};
        if (!rc) {
            uint64_t want = stop - b.rec_start;
            rc = weft__buf_take(bufs, (want < chunk ? (size_t)want : chunk) + 1, &wb);
            if (rc) weft_ctx_fail(ctx, rc, "out of memory");
        }
        uint64_t foff = b.rec_start, line0 = b.rec_line;
        size_t have = 0, pos = 0, lcap = chunk < wb.cap - 1 ? chunk : wb.cap - 1;
        while (!rc) {
            uint64_t end = stop < fsize ? stop : fsize;
            uint64_t left = end > foff + have ? end - (foff + have) : 0;
            size_t room = lcap - have, got = 0;
            size_t n = left < room ? (size_t)left : room;
            if (n) rc = read_at(fd, wb.p + have, n, foff + have, &got);
            if (rc) {
                weft_ctx_fail(ctx, rc, "%s: %s", c.path, strerror(-rc));
                break;
            }
            have += got;
            bool eof = got < n || foff + have >= fsize;
            size_t limit = (size_t)(c.end - foff);
            r.consumed = (size_t)(foff - b.rec_start);
            rc = parse_range(&r, wb.p, have, eof, &pos, limit, line0, ctx);
            if (rc == T_MORE || (rc == 0 && !eof && pos >= have && pos < limit)) {
                rc = 0;
                if (foff + have >= stop) stop = foff + have + 65536;
                if (pos == 0) {
                    if (have < lcap) continue; /* more of the file fits */
                    /* one record fills the chunk: a larger one */
                    lcap *= 2;
                    if (lcap + 1 > wb.cap) {
                        char *p = realloc(wb.p, lcap + 1);
                        if (!p) rc = weft_ctx_fail(ctx, WEFT_ENOMEM, "out of memory");
                        if (p) wb.p = p, wb.cap = lcap + 1;
                    }
                    continue;
                }
                line0 += count_byte(wb.p, pos, '\n');
                memmove(wb.p, wb.p + pos, have - pos);
                have -= pos;
                foff += pos;
                pos = 0;
                continue;
            }
            break;
        }
        weft__buf_give(bufs, &wb);
    }
    if (fd >= 0) close(fd);
    free(r.scratch);
    free(r.slot);
    free(r.op);
    free(r.col);
    r.t->skipped = r.skipped;
    if (!rc)
        *out = r.t;
    else
        weft_table_destroy(r.t);
    chunk_free(&c);
    return rc;
}

int weft__csv_read(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    const void *r, *b;
    size_t rl, bl;
    if (weft_args_get(in, len, 0, &r, &rl) || weft_args_get(in, len, 1, &b, &bl))
        return weft_ctx_fail(ctx, WEFT_EINVAL, "csv read: bad input");
    int rc = weft__csv_parse(ctx, r, rl, b, bl, NULL, 0, false, NULL, NULL, &t);
    if (rc) return rc;
    rc = weft_table_output(ctx, t);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER_AS(weft__csv_scan, "weft.table.csv_scan");
WEFT_TASK_REGISTER_AS(weft__csv_bound, "weft.table.csv_bound");
WEFT_TASK_REGISTER_AS(weft__csv_read, "weft.table.csv_read");

/* ---- writing ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_text(sbuf *b, const char *s, size_t n, char delim)
{
    bool q = false;
    for (size_t k = 0; k < n && !q; k++)
        q = s[k] == delim || s[k] == '"' || s[k] == '\n' || s[k] == '\r';
    if (!q) {
        sb_put(b, s, n);
        return;
    }
    sb_put(b, "\"", 1);
    for (size_t k = 0; k < n; k++) {
        if (s[k] == '"') sb_put(b, "\"", 1);
        sb_put(b, s + k, 1);
    }
    sb_put(b, "\"", 1);
}

/* The shortest of %.15g, %.16g, %.17g that reads back to the same bits. */
static int fmt_double(char *out, size_t cap, double v)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v || isnan(v)) break;
    }
    return n;
}

int weft__csv_format(const weft_table *t, const weft_csv_write_options *o, bool header, char **out,
                     size_t *outlen)
{
    char delim = o && o->delimiter ? o->delimiter : ',';
    const char *na = o && o->na_rep ? o->na_rep : "";
    size_t nal = strlen(na);
    sbuf b = {0};
    if (header) {
        for (size_t k = 0; k < t->ncols; k++) {
            if (k) sb_put(&b, &delim, 1);
            sb_text(&b, t->cols[k].name, strlen(t->cols[k].name), delim);
        }
        sb_put(&b, "\n", 1);
    }
    char num[64];
    for (size_t i = 0; i < t->nrows; i++) {
        for (size_t k = 0; k < t->ncols; k++) {
            const tcol *c = &t->cols[k];
            if (k) sb_put(&b, &delim, 1);
            if (!weft__tcol_ok(c, i)) {
                sb_put(&b, na, nal);
                continue;
            }
            int n;
            switch (c->type) {
            case WEFT_COL_INT64:
                n = snprintf(num, sizeof num, "%lld", (long long)((const int64_t *)c->data)[i]);
                sb_put(&b, num, (size_t)n);
                break;
            case WEFT_COL_DOUBLE:
                n = fmt_double(num, sizeof num, ((const double *)c->data)[i]);
                sb_put(&b, num, (size_t)n);
                break;
            case WEFT_COL_BOOL:
                if (((const bool *)c->data)[i])
                    sb_put(&b, "True", 4);
                else
                    sb_put(&b, "False", 5);
                break;
            default:
                sb_text(&b, weft__tcol_text(c, i), weft__tcol_textlen(c, i), delim);
            }
        }
        sb_put(&b, "\n", 1);
    }
    if (b.oom) {
        free(b.p);
        return WEFT_ENOMEM;
    }
    *out = b.p;
    *outlen = b.n;
    return 0;
}

int weft_table_to_csv(const weft_table *t, const weft_csv_write_options *wopts, bool header,
                      char **buf, size_t *len)
{
    if (buf) *buf = NULL;
    if (!t || !buf || !len) return WEFT_EINVAL;
    return weft__csv_format(t, wopts, header, buf, len);
}

void weft__npy_header(char hdr[128], weft_col_type type, uint64_t n)
{
    const char *descr = type == WEFT_COL_INT64 ? "<i8" : type == WEFT_COL_DOUBLE ? "<f8" : "|b1";
    memset(hdr, ' ', 128);
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = 128 - 10;
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    char d[118];
    int k = snprintf(d, sizeof d, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu,), }",
                     descr, (unsigned long long)n);
    memcpy(hdr + 10, d, (size_t)k);
    hdr[127] = '\n';
}

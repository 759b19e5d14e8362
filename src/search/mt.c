/* mt.c : numpy's legacy RandomState, as far as scikit-learn's samplers and
 * splitters use it.
 *
 * scikit-learn turns an integer random_state into numpy.random.RandomState
 * (check_random_state). For an integer seed, RandomState seeds MT19937 with
 * the reference init_genrand; its draws are the reference genrand_int32.
 * On top of it, numpy's legacy methods (numpy 1.24, kept stable for
 * RandomState by numpy's compatibility policy) do:
 *   randint(n)          masked rejection: the smallest all-ones mask >= n-1,
 *                       32-bit draws while n-1 fits 32 bits, else 64-bit
 *                       draws (high word first); n == 1 draws nothing
 *   shuffle(1-d array)  for i = n-1 down to 1: j = random_interval(i),
 *                       swap a[i], a[j]; random_interval is the same masked
 *                       rejection (32 bits while i fits)
 *   permutation(n)      shuffle(arange(n))
 * The functions below are written from that description; tests/test_search.c
 * compares their results with numpy's through scikit-learn. */
#include "search/search_internal.h"

enum {
    MT_N = 624,
    MT_M = 397
};

void weft__mt_seed(weft__mt *m, uint32_t seed)
{
    m->key[0] = seed;
    for (int i = 1; i < MT_N; i++)
        m->key[i] = 1812433253u * (m->key[i - 1] ^ (m->key[i - 1] >> 30)) + (uint32_t)i;
    m->pos = MT_N;
}

static void mt_refill(weft__mt *m)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t *k = m->key;
    int i;
    for (i = 0; i < MT_N - MT_M; i++) {
        uint32_t y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
        k[i] = k[i + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
    }
    for (; i < MT_N - 1; i++) {
        uint32_t y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
        k[i] = k[i + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
    }
    uint32_t y = (k[MT_N - 1] & 0x80000000u) | (k[0] & 0x7fffffffu);
    k[MT_N - 1] = k[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
    m->pos = 0;
}

uint32_t weft__mt_next32(weft__mt *m)
{
    if (m->pos >= MT_N) mt_refill(m);
    uint32_t y = m->key[m->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static uint64_t mt_next64(weft__mt *m)
{
    uint64_t hi = weft__mt_next32(m);
    uint64_t lo = weft__mt_next32(m);
    return hi << 32 | lo;
}

static uint64_t mask_for(uint64_t max)
{
    uint64_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    return mask;
}

/* A draw in [0, max] by masked rejection (numpy's random_interval and its
 * masked bounded integers agree on this). */
static uint64_t masked(weft__mt *m, uint64_t max)
{
    if (max == 0) return 0;
    uint64_t mask = mask_for(max), v;
    if (max <= 0xffffffffu) {
        while ((v = (weft__mt_next32(m) & mask)) > max) {
        }
    } else {
        while ((v = (mt_next64(m) & mask)) > max) {
        }
    }
    return v;
}

uint64_t weft__mt_randint(weft__mt *m, uint64_t n)
{
    return masked(m, n - 1);
}

void weft__mt_shuffle(weft__mt *m, size_t *a, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)masked(m, i);
        size_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

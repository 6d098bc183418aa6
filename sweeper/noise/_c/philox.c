/* Counter-based normal and uniform noise: Philox4x32-10 (Salmon et al., SC'11, "Parallel random
 * numbers: as easy as 1, 2, 3") followed by the Box-Muller transform.
 *
 * Value j of a stream is a pure function of (key, counter + j): any member of a pack, on any thread,
 * on any CPU, draws exactly what it would draw alone. The loops are written so the compiler vectorizes
 * them (32x32->64 multiplies, and the logarithm, sine and cosine of portable_math.h, which give the
 * same bits in a scalar, an SSE or an AVX2 loop). */
#include <math.h>
#include <stdint.h>

#include "philox.h"
#include "portable_math.h"

#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u
#define BLOCK 512 /* Philox blocks (of 4 words) per vectorized pass */

/* One Philox4x32-10 block, scalar. */
static inline void philox_one(uint64_t b, uint32_t k0, uint32_t k1, uint32_t *o0, uint32_t *o1, uint32_t *o2,
                              uint32_t *o3) {
    uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = 0, c3 = 0;
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
        k0 += W0; k1 += W1;
    }
    *o0 = c0; *o1 = c1; *o2 = c2; *o3 = c3;
}

#ifdef __AVX2__
#include <immintrin.h>
/* hi and lo 32 bits of the eight 32x32 products a[i] * m: _mm256_mul_epu32 multiplies the even lanes,
 * a 64-bit shift brings the odd lanes down, and blends put the halves back in lane order. */
static inline void mul_hilo(__m256i a, __m256i m, __m256i *hi, __m256i *lo) {
    __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}
#endif

/* Philox4x32-10 over `blocks` consecutive counters, written as four arrays of words (w_j[i] is word j
 * of block first_block + i). With AVX2, eight blocks per step. */
static void philox(uint64_t first_block, int64_t blocks, uint32_t key0, uint32_t key1, uint32_t *w0,
                   uint32_t *w1, uint32_t *w2, uint32_t *w3) {
    int64_t i = 0;
#ifdef __AVX2__
    const __m256i m0 = _mm256_set1_epi32((int)M0), m1 = _mm256_set1_epi32((int)M1);
    for (; i + 8 <= blocks; i += 8) {
        uint32_t lo[8], hi[8];
        for (int j = 0; j < 8; j++) {
            uint64_t b = first_block + (uint64_t)(i + j);
            lo[j] = (uint32_t)b;
            hi[j] = (uint32_t)(b >> 32);
        }
        __m256i c0 = _mm256_loadu_si256((const __m256i *)lo), c1 = _mm256_loadu_si256((const __m256i *)hi);
        __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
        uint32_t k0 = key0, k1 = key1;
        for (int r = 0; r < 10; r++) {
            __m256i hi0, lo0, hi1, lo1;
            mul_hilo(c0, m0, &hi0, &lo0);
            mul_hilo(c2, m1, &hi1, &lo1);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
            c1 = lo1;
            c3 = lo0;
            k0 += W0; k1 += W1;
        }
        _mm256_storeu_si256((__m256i *)(w0 + i), c0);
        _mm256_storeu_si256((__m256i *)(w1 + i), c1);
        _mm256_storeu_si256((__m256i *)(w2 + i), c2);
        _mm256_storeu_si256((__m256i *)(w3 + i), c3);
    }
#endif
    for (; i < blocks; i++) philox_one(first_block + (uint64_t)i, key0, key1, &w0[i], &w1[i], &w2[i], &w3[i]);
}

/* 24 random bits to a float in (0, 1): exactly representable, never 0 (log stays finite). */
static inline float unit(uint32_t x) { return ((float)(int32_t)(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

/* Box-Muller from word pairs (a, b): z0 = r cos t, z1 = r sin t with r = sqrt(-2 ln u_a), t = 2 pi u_b. */
static void polar(const uint32_t *a, const uint32_t *b, int64_t n, float scale, float *z0, float *z1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const float r = sqrtf(-2.0f * pm_logf_normal(unit(a[i]))) * scale;
        float c, s;
        pm_cossin_turn(unit(b[i]), &c, &s);
        z0[i] = r * c;
        z1[i] = r * s;
    }
}

/* Fills out[0..n) with scale * N(0, 1). Block i (counter first_block + i) gives values 4i .. 4i+3
 * by Box-Muller: (w0, w1) -> values 4i, 4i+1 and (w2, w3) -> values 4i+2, 4i+3. */
void sweeper_normal(float *out, int64_t n, uint64_t key, uint64_t first_block, float scale) {
    uint32_t w0[BLOCK], w1[BLOCK], w2[BLOCK], w3[BLOCK];
    float z0[BLOCK], z1[BLOCK], z2[BLOCK], z3[BLOCK];
    for (int64_t base = 0; base < n; base += 4 * BLOCK) {
        int64_t blocks = (n - base + 3) / 4;
        if (blocks > BLOCK) blocks = BLOCK;
        philox(first_block + (uint64_t)(base / 4), blocks, (uint32_t)key, (uint32_t)(key >> 32), w0, w1, w2, w3);
        polar(w0, w1, blocks, scale, z0, z1);
        polar(w2, w3, blocks, scale, z2, z3);
        int64_t m = n - base < 4 * BLOCK ? n - base : 4 * BLOCK;
        float *o = out + base;
        for (int64_t i = 0; i + 4 <= m; i += 4) {
            o[i] = z0[i >> 2]; o[i + 1] = z1[i >> 2]; o[i + 2] = z2[i >> 2]; o[i + 3] = z3[i >> 2];
        }
        for (int64_t i = m & ~(int64_t)3; i < m; i++) {
            const float *z = (i & 3) == 0 ? z0 : (i & 3) == 1 ? z1 : (i & 3) == 2 ? z2 : z3;
            o[i] = z[i >> 2];
        }
    }
}

/* Fills out[0..n) with lo + (hi - lo) * U(0, 1); value 4i + j comes from word j of block i. */
void sweeper_uniform(float *out, int64_t n, uint64_t key, uint64_t first_block, float lo, float hi) {
    uint32_t w[4][BLOCK];
    for (int64_t base = 0; base < n; base += 4 * BLOCK) {
        int64_t blocks = (n - base + 3) / 4;
        if (blocks > BLOCK) blocks = BLOCK;
        philox(first_block + (uint64_t)(base / 4), blocks, (uint32_t)key, (uint32_t)(key >> 32), w[0], w[1], w[2], w[3]);
        int64_t m = n - base < 4 * BLOCK ? n - base : 4 * BLOCK;
        float *o = out + base;
        for (int64_t i = 0; i < m; i++) o[i] = lo + (hi - lo) * unit(w[i & 3][i >> 2]);
    }
}

/* Several members at once, on `threads` OpenMP threads (the team torch's own operators use, so no core
 * is left to a spinning idle thread): member i fills outs[i] (n values) from its own key and first
 * block. A member's values do not depend on the thread that draws them. */
void sweeper_normal_many(float **outs, int64_t members, int64_t n, const uint64_t *keys,
                         const uint64_t *first_blocks, const float *scales, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < members; i++) sweeper_normal(outs[i], n, keys[i], first_blocks[i], scales[i]);
}

void sweeper_uniform_many(float **outs, int64_t members, int64_t n, const uint64_t *keys,
                          const uint64_t *first_blocks, const float *scales, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < members; i++)
        sweeper_uniform(outs[i], n, keys[i], first_blocks[i], -1.7320508075688772f * scales[i],
                        1.7320508075688772f * scales[i]);
}

/* dst[0..n) = f(src + scale * N(0, 1)) with f = identity or ReLU (relu != 0), the normals drawn exactly
 * as sweeper_normal draws them; scale == 0 draws nothing. The draws stay in a cache-resident chunk: one
 * pass over memory instead of writing the noise, adding it and applying the activation separately. */
void sweeper_add_normal(const float *src, float *dst, int64_t n, uint64_t key, uint64_t first_block,
                        float scale, int relu) {
    float z[4 * BLOCK];
    for (int64_t base = 0; base < n; base += 4 * BLOCK) {
        int64_t m = n - base < 4 * BLOCK ? n - base : 4 * BLOCK;
        const float *s = src + base;
        float *d = dst + base;
        if (scale != 0.0f) {
            sweeper_normal(z, m, key, first_block + (uint64_t)(base / 4), scale);
        } else {
            for (int64_t i = 0; i < m; i++) z[i] = 0.0f;
        }
        if (relu) {
#pragma omp simd
            for (int64_t i = 0; i < m; i++) {
                const float v = s[i] + z[i];
                d[i] = v > 0.0f || v != v ? v : 0.0f; /* NaN passes, as in torch.relu: divergence shows */
            }
        } else {
#pragma omp simd
            for (int64_t i = 0; i < m; i++) d[i] = s[i] + z[i];
        }
    }
}

void sweeper_add_normal_many(const float **srcs, float **dsts, int64_t members, int64_t n, const uint64_t *keys,
                             const uint64_t *first_blocks, const float *scales, int relu, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < members; i++)
        sweeper_add_normal(srcs[i], dsts[i], n, keys[i], first_blocks[i], scales[i], relu);
}

/* Uniforms in (0, 1) for several members, as sweeper_uniform draws them (value 4i + j from word j of
 * block i): dropout's draws. The keep test u >= p is made by the callers, in float32 and outside this
 * file's -ffast-math, so that no compiler rewrites the comparison and every engine keeps the same units. */
void sweeper_units_many(float **outs, int64_t members, int64_t n, const uint64_t *keys, const uint64_t *first_blocks,
                        int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < members; i++) sweeper_uniform(outs[i], n, keys[i], first_blocks[i], 0.0f, 1.0f);
}

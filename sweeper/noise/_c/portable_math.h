/* Elementary functions that give the same bits on every CPU, whatever its vector width.
 *
 * glibc's logf/expf/sinf/tanhf/pow pick an FMA or a plain variant by the CPU they run on, and its
 * vector versions (libmvec) differ again between SSE and AVX2; the last bit of a result then depends on
 * the machine. These are written with +, -, *, /, sqrt and integer operations only, each correctly
 * rounded by IEEE 754 on any x86-64 or other CPU, and sweeper compiles them with -ffp-contract=off and
 * no -ffast-math: every element gets the same operations in the same order in a scalar, an SSE or an
 * AVX2 loop. Branch-free (selects, not jumps), so loops that call them vectorize.
 *
 * The logarithm follows Cephes (Moshier), the exponential fdlibm (Sun, 1993); both are accurate to
 * about one ulp. The sine and cosine take the angle as a fraction of a turn, which reduces exactly. */
#ifndef SWEEPER_PORTABLE_MATH_H
#define SWEEPER_PORTABLE_MATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t pm_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float pm_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* x rounded to the nearest integer (ties to even), for |x| < 2^22: adding 1.5 * 2^23 leaves no
 * fraction bits, and the rounding is the FPU's own. */
static inline float pm_round(float x) { return (x + 12582912.0f) - 12582912.0f; }

/* 2^k for -252 <= k <= 254, as two normal factors multiplied in turn (one rounding where the result is
 * subnormal, as fdlibm's scaling gives). */
static inline float pm_scale(float y, int32_t k) {
    const int32_t k1 = k / 2, k2 = k - k1;
    return y * pm_float((uint32_t)(k1 + 127) << 23) * pm_float((uint32_t)(k2 + 127) << 23);
}

/* Natural logarithm of a positive normal float, as Cephes' logf (Moshier) computes it: x = 2^e (1 + f)
 * with 1 + f in [sqrt(2)/2, sqrt(2)), log x = f - f^2/2 + f^3 P(f) + e ln2, ln2 split so that e ln2_hi
 * is exact. No division (fdlibm's form has one, slower when vectorized); within one ulp, exact at 1. */
static inline float pm_logf_normal(float x) {
    const uint32_t ix = pm_bits(x);
    const uint32_t hx = ix & 0x007fffffu;
    const uint32_t i = (hx + (0x95f64u << 3)) & 0x800000u; /* mantissa above sqrt(2): halve it */
    const float e = (float)((int32_t)(ix >> 23) - 127 + (int32_t)(i >> 23));
    const float f = pm_float(hx | (i ^ 0x3f800000u)) - 1.0f, z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    return (((p * f * z) + -2.12194440e-4f * e) + -0.5f * z) + f + 0.693359375f * e;
}

/* Natural logarithm of any float: -inf for 0 (subnormals are taken as 0), +inf for +inf, NaN for NaN
 * and x < 0. */
static inline float pm_logf(float x) {
    const uint32_t ix = pm_bits(x);
    const float inf = pm_float(0x7f800000u), y = pm_logf_normal(x);
    return (ix & 0x7fffffffu) < 0x00800000u ? -inf
           : ix >= 0x7f800000u              ? (ix == 0x7f800000u ? inf : x + inf - inf)
                                            : y;
}

/* log(1 + x) for x >= 0 (Goldberg's correction: u = 1 + x rounded, log(u) * x / (u - 1)). */
static inline float pm_log1pf(float x) {
    const float u = 1.0f + x;
    return u == 1.0f ? x : pm_logf(u) * (x / (u - 1.0f));
}

/* e^x: fdlibm's e_expf.c without its branches. x = k ln2 + r, |r| <= ln2/2, e^r from a rational
 * form of a degree-5 polynomial, times 2^k. Overflows to +inf, underflows to 0; NaN stays NaN. */
static inline float pm_expf(float x) {
    const float ln2_hi = 6.9314575195e-01f, ln2_lo = 1.4286067653e-06f, inv_ln2 = 1.4426950216e+00f;
    const float p1 = 1.6666625440e-01f, p2 = -2.7777778450e-03f, p3 = 6.6137559770e-05f,
                p4 = -1.6533901999e-06f, p5 = 4.1381369442e-08f;
    /* Clamped so that k stays in range; the clamped ends still overflow to inf and round to 0. */
    float xc = x <= 88.8f ? x : 88.8f;
    xc = xc >= -104.0f ? xc : -104.0f;
    const float kf = pm_round(xc * inv_ln2);
    const float hi = xc - kf * ln2_hi, lo = kf * ln2_lo; /* kf * ln2_hi is exact */
    const float r = hi - lo, t = r * r;
    const float c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))));
    const float y = 1.0f - ((lo - (r * c) / (2.0f - c)) - hi);
    const float e = pm_scale(y, (int32_t)kf);
    return x != x ? x : e;
}

/* tanh x: an odd polynomial up to |x| = 0.625 (least-squares fit of tanh(x)/x - 1, relative error
 * below 2^-24), 1 - 2 / (e^2|x| + 1) beyond it, where no digits cancel. NaN stays NaN. */
static inline float pm_tanhf(float x) {
    const float ax = x < 0.0f ? -x : x, s = x * x;
    const float small = x + x * s * (-0x1.555554p-2f + s * (0x1.11106ep-3f + s * (-0x1.b9f002p-5f
                                      + s * (0x1.63992cp-6f + s * (-0x1.0c31ecp-7f + s * 0x1.19abf0p-9f)))));
    const float big = 1.0f - 2.0f / (pm_expf(2.0f * ax) + 1.0f);
    const float y = ax < 0.625f ? small : (x < 0.0f ? -big : big);
    return x != x ? x : y;
}

/* 1 / (1 + e^-x), as torch's sigmoid. */
static inline float pm_sigmoidf(float x) { return 1.0f / (1.0f + pm_expf(-x)); }

/* cos and sin of the angle 2 pi u for u in [0, 1] (a fraction of a turn): u = q/4 + f with |f| <= 1/8
 * exactly, so there is no range-reduction error; polynomials in f (least-squares fits, relative error
 * below 2^-24) give the cosine and sine of 2 pi f, and the quarter turn q swaps and negates them. */
static inline void pm_cossin_turn(float u, float *c, float *s) {
    const float q = pm_round(4.0f * u), f = u - 0.25f * q, f2 = f * f;
    const float sf = f * (0x1.921fb6p+2f + f2 * (-0x1.4abbcep+5f + f2 * (0x1.466bbcp+6f
                                                   + f2 * (-0x1.32caf4p+6f + f2 * 0x1.4bdc38p+5f))));
    const float cf = 1.0f + f2 * (-0x1.3bd3ccp+4f + f2 * (0x1.03c1dep+6f + f2 * (-0x1.55c628p+6f
                                                          + f2 * 0x1.d9e722p+5f)));
    /* Quarter turns 1 and 3 swap cosine and sine; 1 and 2 negate the cosine, 2 and 3 the sine. */
    const uint32_t quarter = (uint32_t)(int32_t)q;
    const float cs = quarter & 1 ? sf : cf, sn = quarter & 1 ? cf : sf;
    *c = pm_float(pm_bits(cs) ^ (((quarter + 1) & 2) << 30));
    *s = pm_float(pm_bits(sn) ^ ((quarter & 2) << 30));
}

/* The double-precision counterparts, for the optimizers' bias corrections and annealed noise sizes:
 * fdlibm's e_log.c and e_exp.c without their branches, and pow from them (x > 0). */
static inline double pm_log(double x) {
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double lg1 = 6.666666666666735130e-01, lg2 = 3.999999999940941908e-01, lg3 = 2.857142874366239149e-01,
                 lg4 = 2.222219843214978396e-01, lg5 = 1.818357216161805012e-01, lg6 = 1.531383769920937332e-01,
                 lg7 = 1.479819860511658591e-01;
    uint64_t ix;
    memcpy(&ix, &x, sizeof ix);
    const uint64_t hx = ix & 0x000fffffffffffffull;
    const uint64_t i = (hx + 0x95f6400000000ull) & 0x0010000000000000ull;
    const uint64_t mbits = hx | (i ^ 0x3ff0000000000000ull);
    double m;
    memcpy(&m, &mbits, sizeof m);
    const double dk = (double)((int64_t)(ix >> 52) - 1023 + (int64_t)(i >> 52));
    const double f = m - 1.0, s = f / (2.0 + f), z = s * s, w = z * z;
    const double t1 = w * (lg2 + w * (lg4 + w * lg6)), t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
    const double r = t2 + t1, hfsq = 0.5 * f * f;
    const uint32_t hi = (uint32_t)(hx >> 32);
    const int wide = (int32_t)((hi - 0x6147au) | (0x6b851u - hi)) > 0;
    return wide ? dk * ln2_hi - ((hfsq - (s * (hfsq + r) + dk * ln2_lo)) - f)
                : dk * ln2_hi - ((s * (f - r) - dk * ln2_lo) - f);
}

static inline double pm_exp(double x) {
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10,
                 inv_ln2 = 1.44269504088896338700e+00;
    const double p1 = 1.66666666666666019037e-01, p2 = -2.77777777770155933842e-03, p3 = 6.61375632143793436117e-05,
                 p4 = -1.65339022054652515390e-06, p5 = 4.13813679705723846039e-08;
    double xc = x <= 709.0 ? x : 709.0;
    xc = xc >= -708.0 ? xc : -708.0; /* keeps 2^k normal: no subnormal rounding to get right */
    const double kd = (xc * inv_ln2 + 6755399441055744.0) - 6755399441055744.0;
    const double hi = xc - kd * ln2_hi, lo = kd * ln2_lo;
    const double r = hi - lo, t = r * r;
    const double c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))));
    const double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    const uint64_t kbits = (uint64_t)((int64_t)kd + 1023) << 52;
    double two_k;
    memcpy(&two_k, &kbits, sizeof two_k);
    return y * two_k;
}

static inline double pm_pow(double x, double y) { return y == 0.0 ? 1.0 : pm_exp(y * pm_log(x)); }

#endif

/* chain/rng.h -- counter-based random numbers (Philox4x32-10).
 *
 * Every random number chain uses is a pure function of its coordinates
 * (seed, stream, a, b, c): no state is carried from one draw to the next, so
 * the draws of row r do not depend on how rows are split into batches or
 * threads.  Generated kernels and hand-written references call these same
 * functions, so their samples agree bit for bit.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011) with
 *     key     = { seed & 0xffffffff, seed >> 32 }
 *     counter = { a & 0xffffffff, a >> 32, b, (stream << 24) | (c & 0xffffff) }
 */
#ifndef CHAIN_RNG_H
#define CHAIN_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a stream of draws is for; the `stream` coordinate. */
enum chain_stream {
	CHAIN_STREAM_SAMPLE = 0,   /* a = row, b = position in the order, c = draw within the family's sampler */
	CHAIN_STREAM_INIT = 1,     /* a = index in theta, b = 0, c = 0 */
	CHAIN_STREAM_SHUFFLE = 2,  /* a = epoch, b = step of the shuffle, c = 0 */
	CHAIN_STREAM_BINARIZE = 3, /* a = row, b = column, c = 0 */
	CHAIN_STREAM_DATA = 4,     /* a, b free: test and tool data */
};

/* The raw block: out[0..3] = Philox4x32-10(counter, key). */
void chain_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* 64 random bits: out[0] | (uint64_t)out[1] << 32. */
uint64_t chain_rng_bits(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c);

/* Uniform on the open interval (0, 1): ((bits >> 11) + 0.5) * 2^-53. */
double chain_rng_uniform(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c);

/* Standard normal by Box-Muller from one block: u1 from out[0], out[1] and
 * u2 from out[2], out[3] (each as in chain_rng_uniform);
 * sqrt(-2 log u1) * cos(2 pi u2). */
double chain_rng_normal(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c);

/* Standard Gumbel: -log(-log(u)), u = chain_rng_uniform(...). */
double chain_rng_gumbel(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c);

/* Poisson(rate): a count, as a double.  NaN for a NaN or negative rate, 0
 * for 0, +inf for +inf.  It reads the blocks
 *     B_j = the block at (seed + j * 0x9E3779B97F4A7C15 mod 2^64, stream, a, b, c)
 * for attempts j = 0, 1, ..., 127 (the key varies, the counter does not:
 * the draws of two seeds share a block only when the seeds differ by j
 * times that odd constant, 2^64 over the golden ratio, for some j <= 127),
 * each giving u_j from out[0], out[1] and v_j from out[2],
 * out[3] (each as in chain_rng_uniform; u_0 is chain_rng_uniform(seed,
 * stream, a, b, c)).  In IEEE double arithmetic, every operation rounded
 * (no fused multiply-add), with libm's exp, log, sqrt, floor:
 *
 * rate < 10, inversion (sequential search) with u = u_0:
 *     k = 0; p = exp(-rate); s = p;
 *     while (u > s) { k += 1; p = p * rate / k; t = s + p; if (t == s) break; s = t; }
 *     return k;
 * (the break, when what is left of the mass is below the rounding of s,
 * bounds the loop: at most about 50 steps).
 *
 * rate >= 10, Hormann's PTRS transformed rejection (1993; NumPy's):
 *     slam = sqrt(rate); B = 0.931 + 2.53 * slam; A = -0.059 + 0.02483 * B;
 *     invalpha = 1.1239 + 1.1328 / (B - 3.4); vr = 0.9277 - 3.6224 / (B - 2);
 *     for j = 0 .. 127:
 *         U = u_j - 0.5; V = v_j; us = 0.5 - fabs(U);
 *         k = floor((2 * A / us + B) * U + rate + 0.43);
 *         if (us >= 0.07 && V <= vr) return k;
 *         if (k < 0 || (us < 0.013 && V > us)) continue;
 *         if (log(V) + log(invalpha) - log(A / (us * us) + B) <= logf(k)) return k;
 *     return floor(rate);   (128 rejections in a row: probability below 1e-77)
 * with logf(k) = log(rate^k e^-rate / k!) computed as
 *     k <= 15:  k * log(rate) - rate - log(F), F = 1 * 2 * ... * k (exact; F = 1 for k = 0)
 *     k >= 16:  -stirlerr(k) - bd0(k, rate) - (0.91893853320467274178 + 0.5 * log(k))
 *     stirlerr(k): kk = k * k, s0..s4 = 1.0/12, 1.0/360, 1.0/1260, 1.0/1680, 1.0/1188;
 *         k > 500: (s0 - s1 / kk) / k
 *         k > 80:  (s0 - (s1 - s2 / kk) / kk) / k
 *         k > 35:  (s0 - (s1 - (s2 - s3 / kk) / kk) / kk) / k
 *         else:    (s0 - (s1 - (s2 - (s3 - s4 / kk) / kk) / kk) / kk) / k
 *     bd0(k, r): hk = 0.5 * k; hr = 0.5 * r;
 *         if (fabs(hk - hr) < 0.1 * (hk + hr)) {
 *             v = (hk - hr) / (hk + hr); s = (k - r) * v; ej = 2 * (k * v); vv = v * v;
 *             for i = 1 .. 99: { ej *= vv; s1 = s + ej / (2 * i + 1); if (s1 == s) return s1; s = s1; }
 *             return s;
 *         }
 *         return k * log(k / r) + (r - k);
 * (Loader's form of the log-mass, "Fast and accurate computation of
 * binomial probabilities", 2000: full relative precision at any rate, where
 * k log(rate) - rate - log(k!) loses all of it by 1e15.)  The cost does not
 * grow with the rate: PTRS takes 1.33 attempts on average at rate 10, 1.12
 * from 1e6 on.  Above 2^52
 * (4.5e15) the sum rate + ... that gives k is rounded to a multiple of
 * ulp(rate) >= 1 before floor, so the count is exact Poisson only up to
 * that rounding (a relative error below 2^-52, as for any double). */
double chain_rng_poisson(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c, double rate);

#ifdef __cplusplus
}
#endif
#endif

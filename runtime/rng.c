/* rng.c -- counter-based random numbers: Philox4x32-10.
 *
 * Every draw is a pure function of (seed, stream, a, b, c) (see chain/rng.h),
 * so a row's draws are the same whatever the batch split or thread count.
 * Philox4x32-10 is from Salmon, Moraes, Dror and Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3" (SC 2011); the constants are those of their
 * Random123 library, and tests/unit/test_rng.c checks its known answers.
 */
#include <math.h>
#include <stdint.h>

#include "chain/rng.h"

#define PHILOX_M0 0xD2511F53u /* round multipliers */
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* Weyl key increments: golden ratio, sqrt(3)-1 */
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

/* One Philox round: two 32x32->64 multiplies, whose high halves are mixed
 * with the other two counter words and the key. */
static void philox_round(uint32_t x[4], const uint32_t k[2])
{
	uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
	uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
	uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
	uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
	uint32_t y0 = hi1 ^ x[1] ^ k[0];
	uint32_t y2 = hi0 ^ x[3] ^ k[1];
	x[0] = y0;
	x[1] = lo1;
	x[2] = y2;
	x[3] = lo0;
}

void chain_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
	uint32_t x[4] = { counter[0], counter[1], counter[2], counter[3] };
	uint32_t k[2] = { key[0], key[1] };
	for (int r = 0; r < PHILOX_ROUNDS; r++) {
		if (r > 0) { /* the key is bumped between rounds, not before the first */
			k[0] += PHILOX_W0;
			k[1] += PHILOX_W1;
		}
		philox_round(x, k);
	}
	out[0] = x[0];
	out[1] = x[1];
	out[2] = x[2];
	out[3] = x[3];
}

/* The block at coordinates (seed, stream, a, b, c), laid out as chain/rng.h
 * says: the stream takes the top 8 bits of the last counter word, c the low 24. */
static void rng_block(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c,
                      uint32_t out[4])
{
	uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
	uint32_t ctr[4] = { (uint32_t)a, (uint32_t)(a >> 32), b, (stream << 24) | (c & 0xffffffu) };
	chain_philox4x32_10(ctr, key, out);
}

/* 64 bits to a double on the open interval (0, 1): the top 53 bits, plus
 * half an ulp so that neither 0 nor 1 can come out (log stays finite). */
static double bits_to_open01(uint64_t bits)
{
	return ((double)(bits >> 11) + 0.5) * 0x1p-53;
}

uint64_t chain_rng_bits(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c)
{
	uint32_t out[4];
	rng_block(seed, stream, a, b, c, out);
	return (uint64_t)out[0] | (uint64_t)out[1] << 32;
}

double chain_rng_uniform(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c)
{
	return bits_to_open01(chain_rng_bits(seed, stream, a, b, c));
}

/* Box-Muller from one block: both uniforms come from the same counter, so a
 * normal draw costs one Philox call and uses one coordinate. */
double chain_rng_normal(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c)
{
	uint32_t out[4];
	rng_block(seed, stream, a, b, c, out);
	double u1 = bits_to_open01((uint64_t)out[0] | (uint64_t)out[1] << 32);
	double u2 = bits_to_open01((uint64_t)out[2] | (uint64_t)out[3] << 32);
	const double two_pi = 6.283185307179586476925286766559;
	return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

double chain_rng_gumbel(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c)
{
	double u = chain_rng_uniform(seed, stream, a, b, c);
	return -log(-log(u));
}

/* ------------------------------------------------------------ Poisson */

/* The Philox key of attempt j: seed + j * 0x9E3779B97F4A7C15 (2^64 over
 * the golden ratio, odd), so the attempts of one draw never share a block,
 * and two seeds share blocks only when they differ by j times that constant
 * for some j < 128 (seeds that differ by small numbers never do).  Varying
 * the key keeps every coordinate of the counter what rng.h says it is. */
#define POISSON_KEY_STEP 0x9E3779B97F4A7C15ull
#define POISSON_MAX_ATTEMPTS 128 /* PTRS rejects at most 1 attempt in 4 (at rate 10; 1 in 9 at 1e6) */

/* The two uniforms of attempt j: u from out[0], out[1], v from out[2],
 * out[3] of the block at key seed + j * POISSON_KEY_STEP. */
static void poisson_uniforms(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c, uint32_t j,
                             double *u, double *v)
{
	uint32_t out[4];
	rng_block(seed + (uint64_t)j * POISSON_KEY_STEP, stream, a, b, c, out);
	*u = bits_to_open01((uint64_t)out[0] | (uint64_t)out[1] << 32);
	*v = bits_to_open01((uint64_t)out[2] | (uint64_t)out[3] << 32);
}

/* stirlerr(k) = log(k!) - (k + 1/2) log k + k - log(sqrt(2 pi)), the error
 * of Stirling's formula, for an integer k >= 16: its asymptotic series,
 * with as many terms as double precision needs (Loader, "Fast and accurate
 * computation of binomial probabilities", 2000; R's stirlerr). */
static double poisson_stirlerr(double k)
{
	const double s0 = 1.0 / 12, s1 = 1.0 / 360, s2 = 1.0 / 1260, s3 = 1.0 / 1680, s4 = 1.0 / 1188;
	double kk = k * k; /* +inf above 1.3e154: the terms past the first vanish, as they should */
	if (k > 500)
		return (s0 - s1 / kk) / k;
	if (k > 80)
		return (s0 - (s1 - s2 / kk) / kk) / k;
	if (k > 35)
		return (s0 - (s1 - (s2 - s3 / kk) / kk) / kk) / k;
	return (s0 - (s1 - (s2 - (s3 - s4 / kk) / kk) / kk) / kk) / k;
}

/* bd0(k, r) = k log(k / r) + r - k >= 0, the deviance term of the Poisson
 * log-mass, without its cancellation: near r by the series
 * 2k (v^3/3 + v^5/5 + ...) + (k - r) v with v = (k - r) / (k + r) (Loader;
 * R's bd0).  Halves are used so that k + r never overflows; scaling by
 * 1/2 and 2 is exact, so the values are those of the plain formulas. */
static double poisson_bd0(double k, double r)
{
	double hk = 0.5 * k, hr = 0.5 * r;
	if (fabs(hk - hr) < 0.1 * (hk + hr)) {
		double v = (hk - hr) / (hk + hr);
		double s = (k - r) * v;
		double ej = 2 * (k * v);
		double vv = v * v;
		for (int j = 1; j < 100; j++) { /* |v| < 0.1: at most 17 terms */
			ej *= vv;
			double s1 = s + ej / (2 * j + 1);
			if (s1 == s)
				return s1;
			s = s1;
		}
		return s;
	}
	return k * log(k / r) + (r - k);
}

/* log(r^k e^-r / k!) for an integer k >= 0 and r >= 10: directly for
 * k <= 15 (k! exact in double), by Loader's form for larger k, which keeps
 * full relative precision for any r (k log r - r - log k! loses all of it
 * at r = 1e15, where its terms are 3e16 and the result is about -18). */
static double poisson_log_mass(double k, double r)
{
	if (k <= 15) {
		double f = 1;
		for (int i = 2; i <= (int)k; i++)
			f *= i;
		return k * log(r) - r - log(f);
	}
	return -poisson_stirlerr(k) - poisson_bd0(k, r) - (0.91893853320467274178 + 0.5 * log(k));
}

/* Poisson(rate).  Inversion below 10 (about rate + 1 steps, each a multiply
 * and a divide), Hörmann's PTRS above ("The transformed rejection method
 * for generating Poisson random variables", Insurance: Mathematics and
 * Economics 12, 1993; NumPy's random_poisson_ptrs), whose cost does not
 * grow with the rate.  chain/rng.h spells out every operation. */
double chain_rng_poisson(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c, double rate)
{
	if (!(rate >= 0))
		return NAN; /* NaN, negative */
	if (rate == 0)
		return 0;
	if (isinf(rate))
		return INFINITY;
	double u, v;
	if (rate < 10) {
		poisson_uniforms(seed, stream, a, b, c, 0, &u, &v);
		double k = 0, p = exp(-rate), s = p;
		while (u > s) {
			k += 1;
			p = p * rate / k;
			double t = s + p;
			if (t == s) /* the mass left is below the rounding of s */
				break;
			s = t;
		}
		return k;
	}
	double slam = sqrt(rate);
	double bb = 0.931 + 2.53 * slam;
	double aa = -0.059 + 0.02483 * bb;
	double invalpha = 1.1239 + 1.1328 / (bb - 3.4);
	double vr = 0.9277 - 3.6224 / (bb - 2);
	for (uint32_t j = 0; j < POISSON_MAX_ATTEMPTS; j++) {
		poisson_uniforms(seed, stream, a, b, c, j, &u, &v);
		double uu = u - 0.5;
		double us = 0.5 - fabs(uu);
		double k = floor((2 * aa / us + bb) * uu + rate + 0.43);
		if (us >= 0.07 && v <= vr)
			return k;
		if (k < 0 || (us < 0.013 && v > us))
			continue;
		if (log(v) + log(invalpha) - log(aa / (us * us) + bb) <= poisson_log_mass(k, rate))
			return k;
	}
	return floor(rate); /* 128 rejections in a row: probability below 1e-77 */
}

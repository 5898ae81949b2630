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

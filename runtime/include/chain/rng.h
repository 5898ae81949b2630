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

#ifdef __cplusplus
}
#endif
#endif

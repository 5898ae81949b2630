/* test_rng.c -- Philox4x32-10 known answers and the chain_rng_* draws. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chain/rng.h"

/* Known-answer vectors of Random123 (kat_vectors, philox4x32_10). */
static void test_rng__philox_kat__matches_random123(void **state)
{
	static const struct {
		uint32_t ctr[4], key[2], out[4];
	} kat[] = {
		{ { 0, 0, 0, 0 }, { 0, 0 },
		  { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
		{ { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff }, { 0xffffffff, 0xffffffff },
		  { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
		{ { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 },
		  { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
	};
	for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		uint32_t out[4];
		chain_philox4x32_10(kat[i].ctr, kat[i].key, out);
		for (int j = 0; j < 4; j++)
			assert_int_equal(out[j], kat[i].out[j]);
	}
}

/* chain_rng_bits lays out key and counter as rng.h documents. */
static void test_rng__bits__uses_documented_counter_layout(void **state)
{
	uint64_t seed = 0x0123456789abcdefull, a = 0xfedcba9876543210ull;
	uint32_t stream = CHAIN_STREAM_BINARIZE, b = 77, c = 0x1234567; /* c's top bits dropped */
	uint32_t key[2] = { 0x89abcdef, 0x01234567 };
	uint32_t ctr[4] = { 0x76543210, 0xfedcba98, 77, (3u << 24) | 0x234567 };
	uint32_t out[4];
	chain_philox4x32_10(ctr, key, out);
	assert_true(chain_rng_bits(seed, stream, a, b, c) == ((uint64_t)out[0] | (uint64_t)out[1] << 32));
	double u = ((double)(chain_rng_bits(seed, stream, a, b, c) >> 11) + 0.5) * 0x1p-53;
	assert_true(chain_rng_uniform(seed, stream, a, b, c) == u);
}

/* Each coordinate changes the draw; the same coordinates give the same draw. */
static void test_rng__coordinates__each_changes_the_draw(void **state)
{
	uint64_t base = chain_rng_bits(1, 0, 2, 3, 4);
	assert_true(chain_rng_bits(1, 0, 2, 3, 4) == base);
	assert_true(chain_rng_bits(2, 0, 2, 3, 4) != base);
	assert_true(chain_rng_bits(1, 1, 2, 3, 4) != base);
	assert_true(chain_rng_bits(1, 0, 3, 3, 4) != base);
	assert_true(chain_rng_bits(1, 0, 2, 4, 4) != base);
	assert_true(chain_rng_bits(1, 0, 2, 3, 5) != base);
	assert_true(chain_rng_bits(1, 0, (uint64_t)2 << 32 | 2, 3, 4) != base);
}

/* Uniforms lie in the open interval and have mean 1/2, variance 1/12. */
static void test_rng__uniform__open_interval_and_moments(void **state)
{
	const int n = 200000;
	double sum = 0, sum2 = 0;
	for (int i = 0; i < n; i++) {
		double u = chain_rng_uniform(42, CHAIN_STREAM_DATA, (uint64_t)i, 0, 0);
		assert_true(u > 0.0 && u < 1.0);
		sum += u;
		sum2 += u * u;
	}
	double mean = sum / n, var = sum2 / n - mean * mean;
	assert_true(fabs(mean - 0.5) < 0.005);
	assert_true(fabs(var - 1.0 / 12) < 0.002);
}

/* Box-Muller normals: mean 0, variance 1, and the documented formula. */
static void test_rng__normal__box_muller_from_one_block(void **state)
{
	const int n = 200000;
	double sum = 0, sum2 = 0;
	for (int i = 0; i < n; i++) {
		double z = chain_rng_normal(7, CHAIN_STREAM_SAMPLE, (uint64_t)i, 1, 2);
		assert_true(isfinite(z));
		sum += z;
		sum2 += z * z;
	}
	double mean = sum / n, var = sum2 / n - mean * mean;
	assert_true(fabs(mean) < 0.01);
	assert_true(fabs(var - 1.0) < 0.02);

	uint32_t key[2] = { 7, 0 }, ctr[4] = { 5, 0, 1, 2 }, out[4];
	chain_philox4x32_10(ctr, key, out);
	double u1 = ((double)(((uint64_t)out[0] | (uint64_t)out[1] << 32) >> 11) + 0.5) * 0x1p-53;
	double u2 = ((double)(((uint64_t)out[2] | (uint64_t)out[3] << 32) >> 11) + 0.5) * 0x1p-53;
	double want = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	assert_true(fabs(chain_rng_normal(7, CHAIN_STREAM_SAMPLE, 5, 1, 2) - want) < 1e-15);
}

/* Gumbel draws: mean is the Euler-Mascheroni constant, variance pi^2/6. */
static void test_rng__gumbel__mean_is_euler_gamma(void **state)
{
	const int n = 200000;
	double sum = 0, sum2 = 0;
	for (int i = 0; i < n; i++) {
		double g = chain_rng_gumbel(9, CHAIN_STREAM_SAMPLE, (uint64_t)i, 0, 0);
		assert_true(isfinite(g));
		sum += g;
		sum2 += g * g;
	}
	double mean = sum / n, var = sum2 / n - mean * mean;
	assert_true(fabs(mean - 0.5772156649) < 0.01);
	assert_true(fabs(var - M_PI * M_PI / 6) < 0.03);
	double u = chain_rng_uniform(9, CHAIN_STREAM_SAMPLE, 3, 0, 0);
	assert_true(chain_rng_gumbel(9, CHAIN_STREAM_SAMPLE, 3, 0, 0) == -log(-log(u)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng__philox_kat__matches_random123),
		cmocka_unit_test(test_rng__bits__uses_documented_counter_layout),
		cmocka_unit_test(test_rng__coordinates__each_changes_the_draw),
		cmocka_unit_test(test_rng__uniform__open_interval_and_moments),
		cmocka_unit_test(test_rng__normal__box_muller_from_one_block),
		cmocka_unit_test(test_rng__gumbel__mean_is_euler_gamma),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

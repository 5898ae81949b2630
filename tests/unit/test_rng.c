/* test_rng.c -- Philox4x32-10 known answers and the chain_rng_* draws. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

/* ------------------------------------------------------------ Poisson */

/* Every rate the tests draw at: both sides of the switch from inversion to
 * PTRS at 10, and far beyond. */
static const double poisson_rates[] = { 0, 0.3, 3, 9.9, 10, 10.1, 47, 1000, 1e6 };

/* chain_rng_poisson written again from chain/rng.h's description alone
 * (what a hand-written reference does): the draws must agree bit for bit. */
static void doc_uniforms(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c, uint32_t j, double *u,
                         double *v)
{
	uint64_t key = seed + (uint64_t)j * 0x9E3779B97F4A7C15ull;
	uint32_t k[2] = { (uint32_t)key, (uint32_t)(key >> 32) };
	uint32_t ctr[4] = { (uint32_t)a, (uint32_t)(a >> 32), b, (stream << 24) | (c & 0xffffffu) }, out[4];
	chain_philox4x32_10(ctr, k, out);
	*u = ((double)(((uint64_t)out[0] | (uint64_t)out[1] << 32) >> 11) + 0.5) * 0x1p-53;
	*v = ((double)(((uint64_t)out[2] | (uint64_t)out[3] << 32) >> 11) + 0.5) * 0x1p-53;
}

static double doc_stirlerr(double k)
{
	double kk = k * k, s0 = 1.0 / 12, s1 = 1.0 / 360, s2 = 1.0 / 1260, s3 = 1.0 / 1680, s4 = 1.0 / 1188;
	if (k > 500)
		return (s0 - s1 / kk) / k;
	if (k > 80)
		return (s0 - (s1 - s2 / kk) / kk) / k;
	if (k > 35)
		return (s0 - (s1 - (s2 - s3 / kk) / kk) / kk) / k;
	return (s0 - (s1 - (s2 - (s3 - s4 / kk) / kk) / kk) / kk) / k;
}

static double doc_bd0(double k, double r)
{
	double hk = 0.5 * k, hr = 0.5 * r;
	if (fabs(hk - hr) < 0.1 * (hk + hr)) {
		double v = (hk - hr) / (hk + hr), s = (k - r) * v, ej = 2 * (k * v), vv = v * v;
		for (int i = 1; i <= 99; i++) {
			ej *= vv;
			double s1 = s + ej / (2 * i + 1);
			if (s1 == s)
				return s1;
			s = s1;
		}
		return s;
	}
	return k * log(k / r) + (r - k);
}

static double doc_logf(double k, double rate)
{
	if (k <= 15) {
		double f = 1;
		for (int i = 2; i <= (int)k; i++)
			f *= i;
		return k * log(rate) - rate - log(f);
	}
	return -doc_stirlerr(k) - doc_bd0(k, rate) - (0.91893853320467274178 + 0.5 * log(k));
}

static double doc_poisson(uint64_t seed, uint32_t stream, uint64_t a, uint32_t b, uint32_t c, double rate)
{
	if (isnan(rate) || rate < 0)
		return NAN;
	if (rate == 0)
		return 0;
	if (rate == INFINITY)
		return INFINITY;
	double u, v;
	if (rate < 10) {
		doc_uniforms(seed, stream, a, b, c, 0, &u, &v);
		double k = 0, p = exp(-rate), s = p;
		while (u > s) {
			k += 1;
			p = p * rate / k;
			double t = s + p;
			if (t == s)
				break;
			s = t;
		}
		return k;
	}
	double slam = sqrt(rate), B = 0.931 + 2.53 * slam, A = -0.059 + 0.02483 * B;
	double invalpha = 1.1239 + 1.1328 / (B - 3.4), vr = 0.9277 - 3.6224 / (B - 2);
	for (uint32_t j = 0; j <= 127; j++) {
		doc_uniforms(seed, stream, a, b, c, j, &u, &v);
		double U = u - 0.5, V = v, us = 0.5 - fabs(U);
		double k = floor((2 * A / us + B) * U + rate + 0.43);
		if (us >= 0.07 && V <= vr)
			return k;
		if (k < 0 || (us < 0.013 && V > us))
			continue;
		if (log(V) + log(invalpha) - log(A / (us * us) + B) <= doc_logf(k, rate))
			return k;
	}
	return floor(rate);
}

/* rng.h describes the draw precisely enough to write it again: the same
 * bits at rates on both sides of the switch, up to the largest double. */
static void test_rng__poisson__reproduced_from_the_header_bit_for_bit(void **state)
{
	const double rates[] = { 1e-300, 0.3, 3, 9.9, 9.999999999999998, 10, 10.1, 47, 1000, 1e6, 1e15, 1e18, 1e300, 1.7976931348623157e308 };
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
		for (uint64_t r = 0; r < 5000; r++) {
			double got = chain_rng_poisson(11, CHAIN_STREAM_SAMPLE, r, 3, 1, rates[i]);
			double want = doc_poisson(11, CHAIN_STREAM_SAMPLE, r, 3, 1, rates[i]);
			if (memcmp(&got, &want, sizeof got) != 0)
				fail_msg("rate %g, row %llu: %.17g, the header's algorithm gives %.17g", rates[i], (unsigned long long)r, got, want);
		}
	/* u_0 is the uniform draw at the same coordinates */
	double u, v;
	doc_uniforms(11, 0, 5, 3, 1, 0, &u, &v);
	assert_true(u == chain_rng_uniform(11, 0, 5, 3, 1));
}

/* Mean and variance within 5 standard errors of the rate at every rate;
 * every draw a non-negative integer. */
static void test_rng__poisson__mean_and_variance_match_the_rate(void **state)
{
	const int n = 50000;
	for (size_t i = 0; i < sizeof poisson_rates / sizeof poisson_rates[0]; i++) {
		double rate = poisson_rates[i], sum = 0, sum2 = 0;
		for (int r = 0; r < n; r++) {
			double k = chain_rng_poisson(3, CHAIN_STREAM_DATA, (uint64_t)r, 0, 0, rate);
			if (!(k >= 0 && k == floor(k)))
				fail_msg("rate %g: draw %g is not a count", rate, k);
			sum += k - rate; /* deviations: no cancellation at 1e6 */
			sum2 += (k - rate) * (k - rate);
		}
		double mean = sum / n, var = sum2 / n - mean * mean;
		double se_mean = sqrt(rate / n), se_var = sqrt((2 * rate * rate + rate) / n);
		if (!(fabs(mean) <= 5 * se_mean) || !(fabs(var - rate) <= 5 * se_var))
			fail_msg("rate %g: mean %+.5g and variance %.6g off by more than 5 standard errors (%.3g, %.3g)", rate,
			         mean, var, se_mean, se_var);
	}
}

/* Frequencies against the probability mass (from lgamma): a chi-square
 * over the counts whose expected number is at least 5, the two tails
 * lumped, at rates on both sides of the switch. */
static void test_rng__poisson__frequencies_pass_chi_square(void **state)
{
	const double rates[] = { 0.3, 3, 9.9, 10, 10.1, 47, 1000 };
	enum { N = 100000, KMAX = 1400 };
	static double count[KMAX + 1];
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		double rate = rates[i];
		memset(count, 0, sizeof count);
		for (int r = 0; r < N; r++) {
			double k = chain_rng_poisson(17, CHAIN_STREAM_DATA, (uint64_t)r, 1, 0, rate);
			count[k < KMAX ? (int)k : KMAX]++;
		}
		/* cells: [0, lo), lo, ..., hi, (hi, inf) with lo..hi the counts of
		 * expectation >= 5 */
		double p[KMAX + 1];
		int lo = -1, hi = -1;
		for (int k = 0; k < KMAX; k++) {
			p[k] = exp(k * log(rate) - rate - lgamma(k + 1.0));
			if (N * p[k] >= 5) {
				if (lo < 0)
					lo = k;
				hi = k;
			}
		}
		double chi = 0, below = 0, pbelow = 0, above = 0, pabove = 0;
		int cells = 0;
		for (int k = 0; k <= KMAX; k++) {
			if (k < lo) {
				below += count[k];
				pbelow += p[k];
			} else if (k > hi) {
				above += count[k];
			} else {
				double e = N * p[k];
				chi += (count[k] - e) * (count[k] - e) / e;
				cells++;
				pabove += p[k];
			}
		}
		pabove = 1 - pbelow - pabove; /* what is left: the upper tail */
		if (pbelow > 0) {
			chi += (below - N * pbelow) * (below - N * pbelow) / (N * pbelow);
			cells++;
		}
		if (N * pabove > 1e-3) {
			chi += (above - N * pabove) * (above - N * pabove) / (N * pabove);
			cells++;
		}
		double df = cells - 1;
		/* the 99.9% quantile is below df + 4.5 sqrt(2 df) + 10 */
		if (!(chi < df + 4.5 * sqrt(2 * df) + 10))
			fail_msg("rate %g: chi-square %.1f with %g degrees of freedom", rate, chi, df);
	}
}

/* A pure function of its coordinates: the same coordinates give the same
 * count; another draw number c (or row, seed) is another, independent one. */
static void test_rng__poisson__deterministic_and_streams_differ(void **state)
{
	const double rates[] = { 3, 47 };
	for (size_t i = 0; i < 2; i++) {
		const int n = 4000;
		double rate = rates[i], sxy = 0, sxx = 0, syy = 0;
		int same = 0;
		for (int r = 0; r < n; r++) {
			double x = chain_rng_poisson(5, CHAIN_STREAM_SAMPLE, (uint64_t)r, 2, 0, rate);
			double y = chain_rng_poisson(5, CHAIN_STREAM_SAMPLE, (uint64_t)r, 2, 1, rate);
			assert_true(x == chain_rng_poisson(5, CHAIN_STREAM_SAMPLE, (uint64_t)r, 2, 0, rate));
			same += x == y;
			sxy += (x - rate) * (y - rate);
			sxx += (x - rate) * (x - rate);
			syy += (y - rate) * (y - rate);
		}
		double corr = sxy / sqrt(sxx * syy);
		/* independent: |corr| ~ 1/sqrt(n) = 0.016; P(x == y) is 0.17 at
		 * rate 3, 0.04 at 47 */
		assert_true(fabs(corr) < 0.08);
		assert_true(same < n / 4);
	}
	double base = chain_rng_poisson(1, 0, 2, 3, 4, 1000);
	int differ = 0;
	differ += chain_rng_poisson(2, 0, 2, 3, 4, 1000) != base;
	differ += chain_rng_poisson(1, 1, 2, 3, 4, 1000) != base;
	differ += chain_rng_poisson(1, 0, 3, 3, 4, 1000) != base;
	differ += chain_rng_poisson(1, 0, 2, 4, 4, 1000) != base;
	differ += chain_rng_poisson(1, 0, 2, 3, 5, 1000) != base;
	assert_true(differ >= 4); /* P(equal) about 0.013 each */
}

/* NaN for NaN and negative rates, 0 for 0, +inf for +inf; tiny rates give
 * 0; huge finite ones a finite count near the rate, without looping. */
static void test_rng__poisson__edge_cases(void **state)
{
	assert_true(isnan(chain_rng_poisson(1, 0, 0, 0, 0, NAN)));
	assert_true(isnan(chain_rng_poisson(1, 0, 0, 0, 0, -1)));
	assert_true(isnan(chain_rng_poisson(1, 0, 0, 0, 0, -1e-300)));
	assert_true(isnan(chain_rng_poisson(1, 0, 0, 0, 0, -INFINITY)));
	assert_true(chain_rng_poisson(1, 0, 0, 0, 0, 0.0) == 0);
	assert_true(chain_rng_poisson(1, 0, 0, 0, 0, -0.0) == 0);
	assert_true(chain_rng_poisson(1, 0, 0, 0, 0, INFINITY) == INFINITY);
	for (uint64_t r = 0; r < 1000; r++)
		assert_true(chain_rng_poisson(1, 0, r, 0, 0, 1e-300) == 0);
	const double huge[] = { 1e15, 4.5e15, 1e18, 1e100, 1e300, 1.7976931348623157e308 };
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
		for (uint64_t r = 0; r < 2000; r++) {
			double rate = huge[i], k = chain_rng_poisson(1, 0, r, 0, 0, rate);
			/* within 7 standard deviations, give or take the rounding of
			 * rate + ... to a multiple of ulp(rate) */
			double slack = 7 * sqrt(rate) + 4 * (nextafter(rate, INFINITY) - rate);
			if (!(isfinite(k) && k == floor(k) && fabs(k - rate) <= slack))
				fail_msg("rate %g, row %llu: %.17g", rate, (unsigned long long)r, k);
		}
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
		cmocka_unit_test(test_rng__poisson__reproduced_from_the_header_bit_for_bit),
		cmocka_unit_test(test_rng__poisson__mean_and_variance_match_the_rate),
		cmocka_unit_test(test_rng__poisson__frequencies_pass_chi_square),
		cmocka_unit_test(test_rng__poisson__deterministic_and_streams_differ),
		cmocka_unit_test(test_rng__poisson__edge_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_optim.c -- SGD with momentum and Adam: the textbook updates, bias
 * correction, masks, slices, and convergence on a quadratic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "chain/optim.h"

/* |a - b| <= tol, with both values in the failure message (cmocka's own
 * assert_float_equal rounds to float). */
#define assert_double_equal(a, b, tol) check_close((a), (b), (tol), #a, __LINE__)
static void check_close(double a, double b, double tol, const char *what, int line)
{
	if (!(fabs(a - b) <= tol))
		fail_msg("line %d: %s = %.17g, expected %.17g (tolerance %g)", line, what, a, b, tol);
}

static chain_optim make(chain_optim_kind kind, double lr, size_t n, const uint8_t *mask)
{
	chain_optim_options oo;
	chain_optim_defaults(&oo, kind);
	oo.lr = lr;
	chain_optim o;
	chain_error err = { "" };
	if (chain_optim_init(&o, &oo, n, mask, &err) != 0)
		fail_msg("chain_optim_init: %s", err.msg);
	return o;
}

static void test_optim__defaults__are_the_documented_ones(void **state)
{
	chain_optim_options o;
	chain_optim_defaults(&o, CHAIN_OPTIM_ADAM);
	assert_true(o.lr == 0.001 && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8);
	chain_optim_defaults(&o, CHAIN_OPTIM_SGD);
	assert_true(o.lr == 0.01 && o.momentum == 0.9);
	chain_optim_kind k;
	assert_int_equal(chain_optim_parse("sgd", &k), 0);
	assert_int_equal(k, CHAIN_OPTIM_SGD);
	assert_int_equal(chain_optim_parse("adam", &k), 0);
	assert_int_equal(k, CHAIN_OPTIM_ADAM);
	assert_int_equal(chain_optim_parse("lbfgs", &k), -1);
	assert_string_equal(chain_optim_name(CHAIN_OPTIM_ADAM), "adam");
}

/* With bias correction, Adam's first step is lr * g / (|g| + eps): about
 * lr against the sign of g, whatever the scale of g. */
static void test_optim__adam_first_step__is_lr_against_the_gradient(void **state)
{
	chain_optim o = make(CHAIN_OPTIM_ADAM, 0.01, 3, NULL);
	double theta[3] = { 1, 1, 1 }, g[3] = { 1e-3, -50, 0 };
	chain_optim_step(&o, theta, g);
	assert_double_equal(theta[0], 1 - 0.01, 1e-7);
	assert_double_equal(theta[1], 1 + 0.01, 1e-9);
	assert_true(theta[2] == 1); /* a zero gradient from zero state does not move */
	chain_optim_free(&o);
}

/* Several steps against a direct transcription of Kingma & Ba, Algorithm 1. */
static void test_optim__adam_steps__match_the_paper(void **state)
{
	chain_optim o = make(CHAIN_OPTIM_ADAM, 0.05, 2, NULL);
	double theta[2] = { 0.3, -0.2 }, ref[2] = { 0.3, -0.2 }, m[2] = { 0 }, v[2] = { 0 };
	for (int t = 1; t <= 20; t++) {
		double g[2] = { sin(t) * 3, cos(0.7 * t) - 0.5 };
		chain_optim_step(&o, theta, g);
		for (int j = 0; j < 2; j++) {
			m[j] = 0.9 * m[j] + 0.1 * g[j];
			v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
			double mh = m[j] / (1 - pow(0.9, t)), vh = v[j] / (1 - pow(0.999, t));
			ref[j] -= 0.05 * mh / (sqrt(vh) + 1e-8);
		}
	}
	assert_double_equal(theta[0], ref[0], 1e-13);
	assert_double_equal(theta[1], ref[1], 1e-13);
	assert_int_equal(o.t, 20);
	chain_optim_free(&o);
}

/* v = 0.9 v + g; theta -= lr v, step by step. */
static void test_optim__sgd_momentum__accumulates_velocity(void **state)
{
	chain_optim o = make(CHAIN_OPTIM_SGD, 0.1, 1, NULL);
	double theta[1] = { 0 }, g[1] = { 1 };
	chain_optim_step(&o, theta, g);   /* v = 1 */
	assert_double_equal(theta[0], -0.1, 1e-15);
	chain_optim_step(&o, theta, g);   /* v = 1.9 */
	assert_double_equal(theta[0], -0.1 - 0.19, 1e-15);
	g[0] = 0;
	chain_optim_step(&o, theta, g);   /* v = 1.71: keeps moving without a gradient */
	assert_double_equal(theta[0], -0.29 - 0.171, 1e-15);
	chain_optim_reset(&o);
	chain_optim_step(&o, theta, g);   /* forgotten: no more motion */
	assert_double_equal(theta[0], -0.461, 1e-15);
	chain_optim_free(&o);
}

/* Structurally unused entries never move, even if a (buggy) gradient says
 * otherwise, and their state stays zero. */
static void test_optim__masked_entries__never_move(void **state)
{
	const uint8_t mask[4] = { 1, 0, 1, 0 };
	for (int kind = 0; kind < 2; kind++) {
		chain_optim o = make((chain_optim_kind)kind, 0.1, 4, mask);
		double theta[4] = { 0, 0, 0, 0 }, g[4] = { 1, 1, -1, NAN };
		for (int t = 0; t < 5; t++)
			chain_optim_step(&o, theta, g);
		assert_true(theta[0] < 0 && theta[2] > 0);
		assert_true(theta[1] == 0 && !signbit(theta[1]));
		assert_true(theta[3] == 0);
		assert_true(o.m[1] == 0 && o.m[3] == 0);
		chain_optim_free(&o);
	}
}

/* A step done in slices (as threads do it) gives the same bits as one
 * pass. */
static void test_optim__update_in_slices__same_bits_as_whole(void **state)
{
	for (int kind = 0; kind < 2; kind++) {
		chain_optim a = make((chain_optim_kind)kind, 0.03, 7, NULL);
		chain_optim b = make((chain_optim_kind)kind, 0.03, 7, NULL);
		double ta[7], tb[7], g[7];
		for (int j = 0; j < 7; j++)
			ta[j] = tb[j] = 0.1 * j;
		for (int t = 0; t < 10; t++) {
			for (int j = 0; j < 7; j++)
				g[j] = sin(t * 7 + j);
			chain_optim_step(&a, ta, g);
			chain_optim_begin_step(&b);
			chain_optim_update(&b, tb, g, 4, 7);
			chain_optim_update(&b, tb, g, 0, 2);
			chain_optim_update(&b, tb, g, 2, 4);
		}
		assert_memory_equal(ta, tb, sizeof ta);
		chain_optim_free(&a);
		chain_optim_free(&b);
	}
}

/* chain_optim_update_chunk, with the gradient given from each chunk's
 * start, in chunks that start and end inside and outside the runs of a mask:
 * the same bits as whole steps, and masked entries (whose gradient is NaN
 * here) untouched. */
static void test_optim__update_in_chunks_with_mask__same_bits_as_whole(void **state)
{
	enum { N = 40 };
	uint8_t mask[N];
	for (int j = 0; j < N; j++)
		mask[j] = j % 7 != 3 && j % 7 != 4 && j != 0 && j != N - 1;
	const size_t cuts[] = { 0, 1, 3, 5, 6, 16, 17, 30, 39, N };
	for (int kind = 0; kind < 2; kind++) {
		chain_optim a = make((chain_optim_kind)kind, 0.03, N, mask);
		chain_optim b = make((chain_optim_kind)kind, 0.03, N, mask);
		double ta[N], tb[N], g[N], chunk[N];
		for (int j = 0; j < N; j++)
			ta[j] = tb[j] = mask[j] ? 0.1 * j : 0;
		for (int t = 0; t < 10; t++) {
			for (int j = 0; j < N; j++)
				g[j] = mask[j] ? sin(t * N + j) : NAN;
			chain_optim_step(&a, ta, g);
			chain_optim_begin_step(&b);
			for (size_t c = sizeof cuts / sizeof *cuts - 1; c-- > 0;) {
				size_t lo = cuts[c], hi = cuts[c + 1];
				for (size_t j = lo; j < hi; j++)
					chunk[j - lo] = g[j];
				chain_optim_update_chunk(&b, tb, chunk, lo, hi);
			}
		}
		assert_memory_equal(ta, tb, sizeof ta);
		for (int j = 0; j < N; j++)
			if (!mask[j])
				assert_true(tb[j] == 0 && b.m[j] == 0);
		chain_optim_free(&a);
		chain_optim_free(&b);
	}
}

/* Both minimize f(x) = sum_j (j + 1) (x_j - c_j)^2 from 0. */
static void test_optim__quadratic__both_reach_the_minimum(void **state)
{
	const double c[3] = { 1.5, -2, 0.25 };
	for (int kind = 0; kind < 2; kind++) {
		chain_optim o = make((chain_optim_kind)kind, kind == CHAIN_OPTIM_SGD ? 0.02 : 0.05, 3, NULL);
		double x[3] = { 0 }, g[3];
		for (int t = 0; t < 3000; t++) {
			for (int j = 0; j < 3; j++)
				g[j] = 2 * (j + 1) * (x[j] - c[j]);
			chain_optim_step(&o, x, g);
		}
		for (int j = 0; j < 3; j++)
			assert_double_equal(x[j], c[j], 1e-4);
		chain_optim_free(&o);
	}
}

static void test_optim__bad_options__rejected_with_a_reason(void **state)
{
	chain_optim o;
	chain_error err = { "" };
	chain_optim_options oo;
	chain_optim_defaults(&oo, CHAIN_OPTIM_ADAM);
	oo.lr = 0;
	assert_int_equal(chain_optim_init(&o, &oo, 3, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "learning rate"));
	oo.lr = NAN;
	assert_int_equal(chain_optim_init(&o, &oo, 3, NULL, &err), -1);
	oo.lr = 0.1;
	oo.beta2 = 1;
	assert_int_equal(chain_optim_init(&o, &oo, 3, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "beta"));
	chain_optim_defaults(&oo, CHAIN_OPTIM_SGD);
	oo.momentum = 1;
	assert_int_equal(chain_optim_init(&o, &oo, 3, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "momentum"));
	oo.momentum = 0;
	assert_int_equal(chain_optim_init(&o, &oo, 3, NULL, &err), 0);
	chain_optim_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_optim__defaults__are_the_documented_ones),
		cmocka_unit_test(test_optim__adam_first_step__is_lr_against_the_gradient),
		cmocka_unit_test(test_optim__adam_steps__match_the_paper),
		cmocka_unit_test(test_optim__sgd_momentum__accumulates_velocity),
		cmocka_unit_test(test_optim__masked_entries__never_move),
		cmocka_unit_test(test_optim__update_in_slices__same_bits_as_whole),
		cmocka_unit_test(test_optim__update_in_chunks_with_mask__same_bits_as_whole),
		cmocka_unit_test(test_optim__quadratic__both_reach_the_minimum),
		cmocka_unit_test(test_optim__bad_options__rejected_with_a_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

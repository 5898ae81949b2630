/* test_lbfgs.c -- L-BFGS on functions with known minima. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "chain/lbfgs.h"

/* Rosenbrock in n dimensions: minimum 0 at (1, ..., 1), a curved valley. */
static double rosenbrock(void *ctx, const double *x, double *g)
{
	size_t n = *(size_t *)ctx;
	double f = 0;
	for (size_t i = 0; i < n; i++)
		g[i] = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		double a = x[i + 1] - x[i] * x[i], b = 1 - x[i];
		f += 100 * a * a + b * b;
		g[i] += -400 * a * x[i] - 2 * b;
		g[i + 1] += 200 * a;
	}
	return f;
}

static void test_lbfgs__rosenbrock__reaches_the_minimum(void **state)
{
	size_t n = 10;
	double x[10];
	for (size_t i = 0; i < n; i++)
		x[i] = i % 2 ? 1.2 : -1.2;
	chain_lbfgs_result r;
	chain_error err;
	assert_int_equal(chain_lbfgs_minimize(n, x, rosenbrock, &n, NULL, NULL, &r, &err), 0);
	assert_true(r.converged);
	for (size_t i = 0; i < n; i++)
		assert_true(fabs(x[i] - 1) < 1e-6);
	assert_true(r.f < 1e-12);
}

static void test_lbfgs__mask__keeps_frozen_entries(void **state)
{
	size_t n = 4;
	double x[4] = {0, 0, 5, 0};
	uint8_t mask[4] = {1, 1, 0, 1};
	chain_lbfgs_result r;
	chain_error err;
	assert_int_equal(chain_lbfgs_minimize(n, x, rosenbrock, &n, mask, NULL, &r, &err), 0);
	assert_true(x[2] == 5);
}

static double nan_at_start(void *ctx, const double *x, double *g)
{
	g[0] = 0;
	return NAN;
}

static void test_lbfgs__nan_objective__is_an_error(void **state)
{
	double x[1] = {0};
	chain_lbfgs_result r;
	chain_error err;
	assert_int_equal(chain_lbfgs_minimize(1, x, nan_at_start, NULL, NULL, NULL, &r, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lbfgs__rosenbrock__reaches_the_minimum),
		cmocka_unit_test(test_lbfgs__mask__keeps_frozen_entries),
		cmocka_unit_test(test_lbfgs__nan_objective__is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

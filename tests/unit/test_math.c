/* test_math.c -- the elementary functions the compiler writes out as
 * arithmetic (cg_math.c: exp, log1p, and sigmoid and softplus built on
 * them) against the C library, value by value, in f64 and f32: within a
 * few ulp over their whole range, with the IEEE values at the edges.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chain/model.h"
#include "chainc.h"
#include "test_jit.h"

/* The distance from a to the exact value b in units in the last place of
 * b's precision; 0 when both are the same NaN, infinity or zero. */
static double ulps(double a, double b, bool f32)
{
	if (isnan(a) && isnan(b))
		return 0;
	if (isinf(b) || isinf(a) || isnan(a) || isnan(b))
		return a == b ? 0 : INFINITY;
	double mag = fabs(b);
	double ulp = f32 ? (double)(nextafterf((float)mag, INFINITY) - (float)mag) : nextafter(mag, INFINITY) - mag;
	return fabs(a - b) / ulp;
}

/* Arguments from -1e30 to 1e30, dense near 0 and near -1, with the edges. */
static size_t arguments(double *x, size_t cap)
{
	size_t n = 0;
	for (int e = -300; e <= 300 && n + 2 < cap; e += 3)
		for (int sign = -1; sign <= 1; sign += 2)
			x[n++] = sign * 1.37 * pow(10, e / 10.0);
	for (int i = 1; i <= 200 && n < cap; i++)
		x[n++] = -1 + pow(2, -i * 0.25); /* toward -1 */
	for (int i = -400; i <= 400 && n < cap; i++)
		x[n++] = i * 0.1234567;
	const double edges[] = {0.0, -0.0, -1.0, -1.5, -INFINITY, INFINITY, NAN, 1e-310, -1e-310, 88.5, 89.5, 709.5, 710.5, -103.5, -745.5};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0] && n < cap; i++)
		x[n++] = edges[i];
	return n;
}

static double sigmoid_ref(double x)
{
	return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

static double softplus_ref(double x)
{
	return fmax(x, 0) + log1p(exp(-fabs(x)));
}

/* Compiles `minimize sum(FN(a))` over one param and compares its objective
 * with ref at every argument (rounded to float for f32). */
static void check(const char *fn, double (*ref)(double), bool f32, double tol)
{
	char src[256];
	snprintf(src, sizeof src, "model f\nparam a : real[1]\nminimize sum(%s(a))\n", fn);
	gen g = {0};
	const chain_model *m = gen_compile_with(&g, src, NULL, 0, f32);
	assert_non_null(m);
	double xs[1000];
	size_t n = arguments(xs, 1000);
	double worst = 0;
	for (size_t i = 0; i < n; i++) {
		double x = f32 ? (double)(float)xs[i] : xs[i], y, want;
		if (f32) {
			float a = (float)x;
			y = m->f32->objective(&a, NULL, 0, NULL);
			want = (double)(float)ref(x);
		} else {
			y = m->f64->objective(&x, NULL, 0, NULL);
			want = ref(x);
		}
		double d = ulps(y, want, f32);
		if (!(d <= tol))
			fail_msg("%s(%.17g) in %s: %.17g, libm %.17g (%.3g ulp)", fn, x, f32 ? "f32" : "f64", y, want, d);
		if (d > worst)
			worst = d;
	}
	gen_free(&g);
}

static void test_math__exp__within_2_ulp(void **state)
{
	check("exp", exp, false, 2);
	check("exp", exp, true, 2);
}

static void test_math__log1p__within_2_ulp(void **state)
{
	check("log1p", log1p, false, 2);
	check("log1p", log1p, true, 2);
}

static void test_math__sigmoid_softplus__within_4_ulp(void **state)
{
	check("sigmoid", sigmoid_ref, false, 4);
	check("sigmoid", sigmoid_ref, true, 4);
	check("softplus", softplus_ref, false, 4);
	check("softplus", softplus_ref, true, 4);
}

static double lfact_ref(double x)
{
	return x < 0 ? INFINITY : lgamma(x + 1);
}

/* lfact (lower.c: Stirling's series, shifted by 16 below 16): log x! at
 * integers 0..200 and up to 1e300, and at reals between, against libm's
 * lgamma; below 16 the shift subtracts two numbers near 30-60, so the
 * error is measured in ulp of max(|lfact(x)|, 64); +inf for x < 0. */
static void test_math__lfact__matches_lgamma(void **state)
{
	for (int f32 = 0; f32 < 2; f32++) {
		gen g = {0};
		const chain_model *m = gen_compile_with(&g, "model f\nparam a : real[1]\nminimize sum(lfact(a))\n", NULL, 0, f32);
		assert_non_null(m);
		double xs[400];
		size_t n = 0;
		for (int i = 0; i <= 200; i++)
			xs[n++] = i;
		for (int e = 3; e <= 300; e += 3)
			xs[n++] = pow(10, e);
		const double odd[] = { 0.5, 1.5, 2.25, 7.75, 15.5, 15.999, 16.0001, 16.5, 33.3, 1e6 + 0.5, -0.5, -1, -1e10, -INFINITY };
		for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
			xs[n++] = odd[i];
		double worst = 0;
		for (size_t i = 0; i < n; i++) {
			double x = f32 ? (double)(float)xs[i] : xs[i], y, want = lfact_ref(x);
			if (f32 && !isinf(want) && want > FLT_MAX)
				continue; /* beyond float: lgamma of 1e38 is 8.7e39 */
			if (f32) {
				float a = (float)x;
				y = m->f32->objective(&a, NULL, 0, NULL);
				want = (double)(float)want;
			} else {
				y = m->f64->objective(&x, NULL, 0, NULL);
			}
			double scale = isinf(want) ? want : fmax(fabs(want), 64), d = ulps(y - want + scale, scale, f32 != 0);
			if (isinf(want))
				d = y == want ? 0 : INFINITY;
			if (!(d <= 4))
				fail_msg("lfact(%.17g) in %s: %.17g, lgamma %.17g (%.3g ulp of %g)", x, f32 ? "f32" : "f64", y, want, d, scale);
			if (d > worst)
				worst = d;
		}
		gen_free(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_math__exp__within_2_ulp),
		cmocka_unit_test(test_math__log1p__within_2_ulp),
		cmocka_unit_test(test_math__sigmoid_softplus__within_4_ulp),
		cmocka_unit_test(test_math__lfact__matches_lgamma),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

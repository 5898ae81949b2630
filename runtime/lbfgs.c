/* lbfgs.c -- limited-memory BFGS with a backtracking line search. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chain/lbfgs.h"

void chain_lbfgs_defaults(chain_lbfgs_options *o)
{
	o->memory = 10;
	o->max_iter = 1000;
	o->gtol = 1e-9;
}

static double dot(size_t n, const double *a, const double *b)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static double max_abs(size_t n, const double *a)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(a[i]) > m)
			m = fabs(a[i]);
	return m;
}

/* Frozen entries never move: their gradient is taken as 0. */
static void apply_mask(size_t n, double *g, const uint8_t *mask)
{
	if (mask)
		for (size_t i = 0; i < n; i++)
			if (!mask[i])
				g[i] = 0;
}

/* d = -H g by the two-loop recursion over the kept pairs (s_k, y_k),
 * oldest first at index (first + k) % m; H0 = (s.y / y.y) I. */
static void direction(size_t n, int m, int count, int first, double *const *s, double *const *y, const double *rho,
                      double *alpha, const double *g, double *d)
{
	for (size_t i = 0; i < n; i++)
		d[i] = -g[i];
	for (int k = count - 1; k >= 0; k--) {
		int j = (first + k) % m;
		alpha[j] = rho[j] * dot(n, s[j], d);
		for (size_t i = 0; i < n; i++)
			d[i] -= alpha[j] * y[j][i];
	}
	if (count > 0) {
		int last = (first + count - 1) % m;
		double gamma = dot(n, s[last], y[last]) / dot(n, y[last], y[last]);
		for (size_t i = 0; i < n; i++)
			d[i] *= gamma;
	}
	for (int k = 0; k < count; k++) {
		int j = (first + k) % m;
		double beta = rho[j] * dot(n, y[j], d);
		for (size_t i = 0; i < n; i++)
			d[i] += (alpha[j] - beta) * s[j][i];
	}
}

int chain_lbfgs_minimize(size_t n, double *x, chain_fg_fn fg, void *ctx, const uint8_t *mask,
                         const chain_lbfgs_options *opt, chain_lbfgs_result *res, chain_error *err)
{
	chain_lbfgs_options o;
	if (opt)
		o = *opt;
	else
		chain_lbfgs_defaults(&o);
	int m = o.memory > 0 ? (o.memory < 64 ? o.memory : 64) : 10;
	memset(res, 0, sizeof *res);
	double *buf = calloc((size_t)(2 * m + 5) * (n ? n : 1) + 2 * (size_t)m, sizeof(double));
	if (!buf)
		return chain_error_set(err, "optimize: out of memory for %zu params", n);
	double *g = buf, *d = g + n, *xn = d + n, *gn = xn + n, *rho = gn + n, *alpha = rho + m;
	double *s[64], *y[64];
	double *pairs = alpha + m + n;
	for (int k = 0; k < m; k++) {
		s[k] = pairs + (size_t)(2 * k) * n;
		y[k] = pairs + (size_t)(2 * k + 1) * n;
	}
	double f = fg(ctx, x, g);
	res->evaluations = 1;
	apply_mask(n, g, mask);
	if (!isfinite(f) || !isfinite(max_abs(n, g))) {
		free(buf);
		return chain_error_set(err, "optimize: the objective or its gradient is not finite at the start (f = %g)", f);
	}
	int count = 0, first = 0;
	for (res->iterations = 0; res->iterations < o.max_iter; res->iterations++) {
		double gmax = max_abs(n, g);
		if (gmax <= o.gtol * fmax(1, max_abs(n, x))) {
			res->converged = 1;
			break;
		}
		direction(n, m, count, first, s, y, rho, alpha, g, d);
		double slope = dot(n, g, d);
		if (!(slope < 0)) { /* not a descent direction: restart from -g */
			count = 0;
			for (size_t i = 0; i < n; i++)
				d[i] = -g[i];
			slope = -dot(n, g, g);
		}
		/* first step: a unit move along -g of length at most 1 */
		double t = count == 0 ? fmin(1, 1 / sqrt(-slope)) : 1, fn = f;
		bool ok = false;
		for (int ls = 0; ls < 60; ls++) {
			for (size_t i = 0; i < n; i++)
				xn[i] = x[i] + t * d[i];
			fn = fg(ctx, xn, gn);
			res->evaluations++;
			apply_mask(n, gn, mask);
			if (isfinite(fn) && fn <= f + 1e-4 * t * slope && isfinite(max_abs(n, gn))) {
				ok = true;
				break;
			}
			t *= 0.5;
		}
		if (!ok)
			break; /* no decrease possible at working precision */
		int j = (first + count) % m;
		for (size_t i = 0; i < n; i++) {
			s[j][i] = xn[i] - x[i];
			y[j][i] = gn[i] - g[i];
		}
		double sy = dot(n, s[j], y[j]);
		if (sy > 1e-300) { /* keep only pairs of positive curvature */
			rho[j] = 1 / sy;
			if (count < m)
				count++;
			else
				first = (first + 1) % m;
		}
		memcpy(x, xn, n * sizeof *x);
		memcpy(g, gn, n * sizeof *g);
		f = fn;
	}
	res->f = f;
	res->gmax = max_abs(n, g);
	free(buf);
	return 0;
}

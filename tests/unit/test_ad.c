/* test_ad.c -- the generated gradients against central finite differences:
 * every elementwise function, reduction and penalty of the language, every
 * stdlib family the compiler compiles, lets, slices, `@` and the example
 * models, including arguments at +-20, +-50 and +-1e3 where the value must
 * stay finite (f64, relative error <= 1e-6).
 */
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
#include "chain/rng.h"
#include "chainc.h"
#include "test_jit.h"

static const chain_model *compile(gen *g, const char *src)
{
	return gen_compile_with(g, src, NULL, 0, false);
}

/* Compares M_objective's gradient with fourth-order central differences at
 * theta; the value and the gradient must be finite.  Returns the worst
 * relative error (denominator: max(|g|, |fd|, 1e-6)). */
static double fd_check(const chain_model *m, double *theta, const double *obs, size_t rows, const char *what)
{
	size_t np = m->num_params;
	double *grad = calloc(np + 1, sizeof(double)), worst = 0;
	double f0 = m->f64->objective(theta, obs, rows, grad);
	if (!isfinite(f0))
		fail_msg("%s: objective is %g", what, f0);
	for (size_t t = 0; t < np; t++) {
		if (!isfinite(grad[t]))
			fail_msg("%s: gradient[%zu] is %g", what, t, grad[t]);
		double x = theta[t], h = 1e-4 * fmax(fabs(x), 1e-2), f[4];
		const double steps[4] = {2, 1, -1, -2};
		for (int q = 0; q < 4; q++) {
			theta[t] = x + steps[q] * h;
			f[q] = m->f64->objective(theta, obs, rows, NULL);
		}
		theta[t] = x;
		double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
		/* what rounding in f allows: a few ulps of |f| over h */
		double noise = 64 * 2.2e-16 * fmax(1, fabs(f0)) / h;
		double rel = fabs(grad[t] - fd) / fmax(fmax(fabs(grad[t]), fabs(fd)), fmax(1e-6, noise / 1e-6));
		if (rel > worst)
			worst = rel;
		if (!(rel <= 1e-6))
			fail_msg("%s: d/dtheta[%zu] generated %.17g, finite differences %.17g (relative %.2g)", what, t, grad[t], fd, rel);
	}
	free(grad);
	return worst;
}

/* A free objective `minimize sum(EXPR)` of a param a : real[4] set to the
 * given values. */
static void check_fn(const char *fx, const double *at, size_t nat)
{
	char src[1024];
	snprintf(src, sizeof src, "model f\nparam a : real[%zu]\nparam w : real[%zu]\nminimize sum(w * %s)\n", nat, nat, fx);
	gen g = {0};
	const chain_model *m = compile(&g, src);
	if (!m)
		fail_msg("%s: does not compile", fx);
	double theta[64];
	for (size_t i = 0; i < nat; i++) {
		theta[i] = at[i];
		theta[nat + i] = 0.5 + 0.25 * (double)i; /* weights: distinct per element */
	}
	fd_check(m, theta, NULL, 0, fx);
	gen_free(&g);
}

static const double wide[] = {-1e3, -50, -20, -1.5, -0.3, 0.7, 2, 20, 50, 1e3};
static const double positive[] = {1e-3, 0.3, 1.5, 20, 50, 1e3};
static const double moderate[] = {-20, -3, -0.5, 0.4, 2.5, 20};

static void test_ad__elementwise_functions__match_finite_differences(void **state)
{
	size_t nw = sizeof wide / sizeof wide[0], np = sizeof positive / sizeof positive[0];
	size_t nm = sizeof moderate / sizeof moderate[0];
	check_fn("sigmoid(a)", wide, nw);
	check_fn("softplus(a)", wide, nw);
	check_fn("log_sigmoid(a)", wide, nw);
	check_fn("tanh(a)", wide, nw);
	check_fn("abs(a)", wide, nw);
	check_fn("square(a)", wide, nw);
	check_fn("relu(a)", wide, nw);
	check_fn("(-a)", wide, nw);
	check_fn("exp(a)", moderate, nm);
	check_fn("log(a)", positive, np);
	check_fn("log1p(a)", positive, np);
	check_fn("sqrt(a)", positive, np);
	check_fn("a ^ 3", moderate, nm);
	check_fn("(a * a + 1) / (a - 100)", wide, nw);
	check_fn("(if a > 1 then a * 2 else 3 - a)", moderate, nm);
}

static void test_ad__reductions_and_penalties__match_finite_differences(void **state)
{
	size_t nw = sizeof wide / sizeof wide[0];
	check_fn("logsumexp(a)", wide, nw);
	check_fn("logsumexp(a * 0.01)", wide, nw);
	check_fn("max(a * 0.1)", wide, nw);
	check_fn("mean(sigmoid(a))", wide, nw);
	check_fn("dot(a, sigmoid(a))", moderate, 6);
	check_fn("l2(a)", wide, nw);
	check_fn("l1(a)", wide, nw);
	check_fn("sum(k in 0..3) a[k] * a[k + 1]", moderate, 6);
}

/* Matrix products, slices and lets in a free objective. */
static void test_ad__matmul_slices_lets__match_finite_differences(void **state)
{
	const char *src = "model q\ndim n = 3\nparam A : real[n, n]\nparam x : real[n]\nparam B : real[n, 2]\n"
	                  "let y = A @ x\nlet Z = A @ B\n"
	                  "minimize dot(y, tanh(y)) + sum(square(Z)) + dot(A[1, :], x) + sum(A[:, 2] * x) + sum(x @ B)\n";
	gen g = {0};
	const chain_model *m = compile(&g, src);
	assert_non_null(m);
	double theta[32];
	for (size_t t = 0; t < m->num_params; t++)
		theta[t] = chain_rng_normal(1, CHAIN_STREAM_DATA, t, 0, 0);
	fd_check(m, theta, NULL, 0, "matmul");
	gen_free(&g);
}

/* One data variable with a family: the objective is the mean log p over
 * rows of random data, with the family's arguments at given values. */
static void check_family_in(const char *prelude, const char *kind, const char *cond, const double *values, size_t nv,
                            double (*draw)(uint64_t, size_t))
{
	char src[4096];
	snprintf(src, sizeof src, "model fam\n%sdata y : %s[4]\nparam a : real[4]\nparam s : real[4]\ny[i] ~ %s\nmaximize loglik\n",
	         prelude, strcmp(kind, "cat") ? kind : "cat(4)", cond);
	gen g = {0};
	const chain_model *m = compile(&g, src);
	if (!m)
		fail_msg("%s: does not compile:\n%s", cond, src);
	double obs[6 * 4];
	for (size_t r = 0; r < 6 * 4; r++)
		obs[r] = draw(3, r);
	for (size_t v = 0; v < nv; v++) {
		double theta[8];
		for (size_t i = 0; i < 4; i++) {
			theta[i] = values[v] * (1 + 0.1 * (double)i);
			theta[4 + i] = 0.3 * (double)i - 0.4;
		}
		char what[256];
		snprintf(what, sizeof what, "%s at %g", cond, values[v]);
		fd_check(m, theta, obs, 6, what);
	}
	gen_free(&g);
}

static void check_family(const char *kind, const char *cond, const double *values, size_t nv, double (*draw)(uint64_t, size_t))
{
	check_family_in("", kind, cond, values, nv, draw);
}

static double draw_bin(uint64_t seed, size_t r) { return chain_rng_uniform(seed, CHAIN_STREAM_DATA, r, 0, 0) < 0.5; }
static double draw_real(uint64_t seed, size_t r) { return 3 * chain_rng_normal(seed, CHAIN_STREAM_DATA, r, 0, 0); }
static double draw_count4(uint64_t seed, size_t r) { return floor(4 * chain_rng_uniform(seed, CHAIN_STREAM_DATA, r, 0, 0)); }

static void test_ad__stdlib_families__match_finite_differences(void **state)
{
	const double extreme[] = {-1e3, -50, -20, -2, 0.5, 20, 50, 1e3};
	const double mid[] = {-20, -3, -0.5, 0.8, 4, 20};
	check_family("bin", "bernoulli_logit(a[i] + s[i])", extreme, 8, draw_bin);
	check_family("bin", "bernoulli(sigmoid(a[i] * 0.1))", mid, 6, draw_bin);
	check_family("real", "normal(a[i], exp(s[i]))", extreme, 8, draw_real);
	check_family("real", "normal_logscale(a[i], s[i])", extreme, 8, draw_real);
	check_family("real", "normal_logscale(s[i], a[i] * 0.01)", extreme, 8, draw_real);
	check_family("cat", "categorical_logits(a * 0.01 + s)", extreme, 8, draw_count4);
	check_family("real", "mixture_normal(a * 0.01 + s, a * 0.001, s * 0.1)", mid, 6, draw_real);
	check_family("int", "binomial(8, sigmoid(a[i] * 0.1 + s[i]))", mid, 6, draw_count4);
	/* poisson_log: its sampler (a sum up to a real bound) is not compiled
	 * yet; its log-density is checked below through a copy of the stdlib
	 * text with another sampler */
}

/* The family `name` as the stdlib writes it, renamed `name_logp`, with its
 * sampler replaced by a constant: the same log-density, compilable today. */
static char *stdlib_logp_only(const char *name)
{
	static char out[2048];
	extern const struct { const char *name; const char *text; } chain_stdlib_files[];
	char head[64];
	snprintf(head, sizeof head, "family %s(", name);
	const char *text = chain_stdlib_files[0].text, *a = strstr(text, head);
	assert_non_null(a);
	const char *end = strstr(a, "\n}");
	assert_non_null(end);
	size_t o = (size_t)snprintf(out, sizeof out, "family %s_logp(", name);
	const char *p = a + strlen(head);
	while (p < end) {
		const char *eol = strchr(p, '\n');
		if (!eol || eol > end)
			eol = end;
		const char *line = p;
		while (*line == ' ')
			line++;
		if (strncmp(line, "sample", 6) == 0)
			o += (size_t)snprintf(out + o, sizeof out - o, "  sample = 0\n");
		else if (strncmp(line, "let", 3) != 0)
			o += (size_t)snprintf(out + o, sizeof out - o, "%.*s\n", (int)(eol - p), p);
		p = eol + 1;
	}
	snprintf(out + o, sizeof out - o, "}\n");
	return out;
}

static void test_ad__poisson_logp__matches_finite_differences(void **state)
{
	const double mid[] = {-20, -3, -0.5, 0.8, 4, 20};
	check_family_in(stdlib_logp_only("poisson_log"), "int", "poisson_log_logp(a[i] * 0.1 + s[i])", mid, 6, draw_count4);

}

/* The example models, with every order form. */
static void test_ad__example_models__match_finite_differences(void **state)
{
	static const char *orders[] = {"order x", "order reverse(x)", "const P : int[n] = [3, 0, 5, 1, 4, 2]\norder x by P",
	                               "order x by random(11)"};
	for (int o = 0; o < 4; o++) {
		char src[2048];
		snprintf(src, sizeof src,
		         "model nade\ndim n = 6\ndim H = 4\ndata x : bin[n]\nparam W : real[H, n] ~ normal(0, 1)\nparam c : real[H] ~ normal(0, 1)\n"
		         "param V : real[n, H] ~ normal(0, 1)\nparam b : real[n] ~ normal(0, 1)\n%s\n"
		         "let h[i] = sigmoid(c + sum(j before i) W[:, j] * x[j])\nx[i] ~ bernoulli_logit(b[i] + dot(V[i, :], h[i]))\n"
		         "maximize loglik - 0.01 * l2(W)\n",
		         orders[o]);
		gen g = {0};
		const chain_model *m = compile(&g, src);
		assert_non_null(m);
		double theta[128], obs[5 * 6];
		m->f64->init(theta, 4);
		for (size_t r = 0; r < 30; r++)
			obs[r] = draw_bin(9, r);
		fd_check(m, theta, obs, 5, orders[o]);
		/* structurally unused entries: gradient exactly 0 */
		double grad[128];
		m->f64->objective(theta, obs, 5, grad);
		for (size_t p = 0; p < m->num_param_vars; p++)
			if (m->params[p].used)
				for (size_t e = 0; e < m->params[p].size; e++)
					if (!m->params[p].used[e])
						assert_true(grad[m->params[p].offset + e] == 0 && theta[m->params[p].offset + e] == 0);
		gen_free(&g);
	}
}

/* The descriptor's loglik_only: 1 for an objective that is the loglik and
 * nothing else, whose value and gradient on 0 rows are then 0 (what the
 * trainer relies on to skip them); 0 as soon as anything is added. */
static void test_ad__objective_loglik_alone__descriptor_says_loglik_only(void **state)
{
	static const struct {
		const char *objective;
		int loglik_only;
	} cases[] = {
		{ "maximize loglik", 1 },
		{ "maximize (loglik)", 1 },
		{ "maximize loglik - 0.01 * l2(W)", 0 },
		{ "maximize loglik + 0", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char src[1024];
		snprintf(src, sizeof src,
		         "model m\ndim n = 4\ndata x : bin[n]\nparam W : real[n, n] ~ normal(0, 1)\nparam b : real[n] ~ normal(0, 1)\n"
		         "order x\nx[i] ~ bernoulli_logit(b[i] + sum(j before i) W[i, j] * x[j])\n%s\n",
		         cases[i].objective);
		gen g = {0};
		const chain_model *m = compile(&g, src);
		assert_non_null(m);
		assert_int_equal(m->abi_version, CHAIN_ABI_VERSION);
		assert_int_equal(m->loglik_only, cases[i].loglik_only);
		assert_int_equal(chain_model_loglik_only(m), cases[i].loglik_only);
		if (cases[i].loglik_only) {
			double theta[20], grad[20], obs[4] = { 0 };
			m->f64->init(theta, 3);
			for (size_t j = 0; j < m->num_params; j++)
				grad[j] = NAN;
			assert_true(m->f64->objective(theta, obs, 0, grad) == 0);
			for (size_t j = 0; j < m->num_params; j++)
				assert_true(grad[j] == 0);
		}
		gen_free(&g);
	}
}

/* Inputs, two data variables in the order (the second sees all of the
 * first), a per-observation let, several penalty terms. */
static void test_ad__inputs_two_variables_penalties__match_finite_differences(void **state)
{
	const char *src = "model cond\ndim n = 5\ndim D = 3\ninput s : real[D]\ndata x : bin[n]\ndata y : real\n"
	                  "param A : real[n, D] ~ normal(0, 0.5)\nparam W : real[n, n] ~ normal(0, 0.5)\nparam u : real[n] ~ normal(0, 0.5)\n"
	                  "param b : real[n]\norder reverse(x), y\nlet z = tanh(A @ s)\n"
	                  "x[i] ~ bernoulli_logit(b[i] + z[i] + sum(j before i) W[i, j] * x[j])\n"
	                  "y ~ normal_logscale(dot(u, x) + sum(s), -0.5)\nmaximize loglik - 0.01 * l2(W) - 0.01 * l1(A)\n";
	gen g = {0};
	const chain_model *m = compile(&g, src);
	assert_non_null(m);
	double theta[64], obs[4 * 9];
	m->f64->init(theta, 2);
	for (size_t r = 0; r < 4; r++)
		for (size_t j = 0; j < 9; j++)
			obs[r * 9 + j] = j < 3 ? draw_real(5, r * 9 + j) : j < 8 ? draw_bin(6, r * 9 + j) : draw_real(7, r);
	fd_check(m, theta, obs, 4, "conditional model");
	gen_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ad__elementwise_functions__match_finite_differences),
		cmocka_unit_test(test_ad__reductions_and_penalties__match_finite_differences),
		cmocka_unit_test(test_ad__matmul_slices_lets__match_finite_differences),
		cmocka_unit_test(test_ad__stdlib_families__match_finite_differences),
		cmocka_unit_test(test_ad__poisson_logp__matches_finite_differences),
		cmocka_unit_test(test_ad__example_models__match_finite_differences),
		cmocka_unit_test(test_ad__inputs_two_variables_penalties__match_finite_differences),
		cmocka_unit_test(test_ad__objective_loglik_alone__descriptor_says_loglik_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_reference.c -- the hand-written references examples/reference/fvsbn.c
 * and nade.c, tested against the mathematics itself.
 *
 * The references are the ground truth the compiler is compared with, so
 * here they answer to definitions that need no compiler: for small N every
 * distribution sums to 1 over all 2^N states (in natural, reverse and a
 * random order), log p agrees with a naive O(n^2) rewrite of the model,
 * gradients agree with central finite differences, samples have the
 * frequencies p(x) (chi-square), completion keeps its prefix, and the f32
 * build agrees with the f64 one.
 *
 * Both references define the same kind of symbols at several sizes, so each
 * build is compiled at test time into its own .so
 *     $CC -O2 -shared -fPIC -Iruntime/include -DN=.. [-DH=..] [-DCHAIN_F32]
 * and dlopen()ed RTLD_LOCAL; their chain_rng_* calls resolve to this
 * executable's runtime, which is linked with -rdynamic.  Sources are found
 * under $CHAIN_SRCDIR (default: the current directory, the repository root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain/rng.h"

#define MAXN 10          /* the largest N built here (2^N states enumerated) */
#define MAXP (2 * MAXN * MAXN + 2 * MAXN) /* enough params for every build */

/* ---- building and loading a reference */

/* One reference build, f64, with every kernel of the generated API. */
typedef struct ref {
	const char *model; /* "fvsbn" or "nade" */
	size_t n, hidden;  /* N and H (H unused by fvsbn) */
	size_t num_params;
	void *so;
	void (*ref_set_order)(const size_t *order);
	void (*init)(double *theta, uint64_t seed);
	double (*logp)(const double *theta, const double *obs);
	void (*logp_batch)(const double *theta, const double *obs, size_t n, double *out);
	double (*loglik_grad)(const double *theta, const double *obs, size_t n, double *grad);
	double (*objective)(const double *theta, const double *obs, size_t n, double *grad);
	void (*sample)(const double *theta, uint64_t seed, uint64_t first, size_t n, double *obs);
	void (*complete)(const double *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
	                 double *obs);
	void (*conditionals)(const double *theta, const double *obs, double *out);
} ref;

/* The same model built with -DCHAIN_F32: only what the precision test uses. */
typedef struct ref32 {
	void *so;
	void (*ref_set_order)(const size_t *order);
	float (*logp)(const float *theta, const float *obs);
	void (*logp_batch)(const float *theta, const float *obs, size_t n, float *out);
} ref32;

static char tmpdir[64];
static ref fv10, fv4, nd10, nd4;
static ref32 fv10f, nd10f;

static const char *srcdir(void)
{
	const char *d = getenv("CHAIN_SRCDIR");
	return d && *d ? d : ".";
}

/* Compile examples/reference/<model>.c with the -D flags `defines` into a
 * .so in tmpdir and dlopen() it.  The file is unlinked once loaded (the
 * mapping outlives it), so nothing is left behind but the directory.
 * Returns NULL, having said why, when compiling or loading fails. */
static void *ref_build(const char *model, const char *defines, const char *tag)
{
	const char *cc = getenv("CC");
	char so[128], cmd[1024];
	if (!cc || !*cc)
		cc = "cc";
	snprintf(so, sizeof so, "%s/%s.so", tmpdir, tag);
	snprintf(cmd, sizeof cmd,
	         "%s -O2 -shared -fPIC -I%s/runtime/include %s -o %s %s/examples/reference/%s.c",
	         cc, srcdir(), defines, so, srcdir(), model);
	if (system(cmd) != 0) {
		print_error("compiling a reference failed: %s\n"
		            "(run from the repository root, or set CHAIN_SRCDIR to it)\n", cmd);
		return NULL;
	}
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		print_error("dlopen(%s): %s\n", so, dlerror());
	unlink(so);
	return h;
}

/* dlsym of "<model>_<fn>", or NULL having said which is missing. */
static void *ref_sym(void *so, const char *model, const char *fn)
{
	char name[128];
	snprintf(name, sizeof name, "%s_%s", model, fn);
	void *p = dlsym(so, name);
	if (!p)
		print_error("%s: no symbol %s\n", model, name);
	return p;
}

#define REF_LOAD(r, model, fn) \
	((r)->fn = (__typeof__((r)->fn))ref_sym((r)->so, (model), #fn), (r)->fn != NULL)

/* Build and load the f64 reference of `model` at size n (and hidden). */
static int ref_open(ref *r, const char *model, size_t n, size_t hidden)
{
	char defines[64], tag[64];
	if (hidden)
		snprintf(defines, sizeof defines, "-DN=%zu -DH=%zu", n, hidden);
	else
		snprintf(defines, sizeof defines, "-DN=%zu", n);
	snprintf(tag, sizeof tag, "%s_%zu_%zu", model, n, hidden);
	r->model = model;
	r->n = n;
	r->hidden = hidden;
	r->so = ref_build(model, defines, tag);
	if (!r->so)
		return -1;
	const size_t *np = ref_sym(r->so, model, "ref_num_params");
	const size_t *os = ref_sym(r->so, model, "ref_obs_size");
	size_t want = hidden ? 2 * n * hidden + hidden + n : n * n + n;
	if (!np || !os || *np != want || *os != n || want > MAXP) {
		print_error("%s: wrong sizes in the built reference\n", model);
		return -1;
	}
	r->num_params = *np;
	int ok = REF_LOAD(r, model, ref_set_order) && REF_LOAD(r, model, init) &&
	         REF_LOAD(r, model, logp) && REF_LOAD(r, model, logp_batch) &&
	         REF_LOAD(r, model, loglik_grad) && REF_LOAD(r, model, objective) &&
	         REF_LOAD(r, model, sample) && REF_LOAD(r, model, complete) &&
	         REF_LOAD(r, model, conditionals);
	return ok ? 0 : -1;
}

/* Build and load the f32 reference of `model` at size n (and hidden). */
static int ref32_open(ref32 *r, const char *model, size_t n, size_t hidden)
{
	char defines[64], tag[64];
	if (hidden)
		snprintf(defines, sizeof defines, "-DN=%zu -DH=%zu -DCHAIN_F32", n, hidden);
	else
		snprintf(defines, sizeof defines, "-DN=%zu -DCHAIN_F32", n);
	snprintf(tag, sizeof tag, "%s_%zu_%zu_f32", model, n, hidden);
	r->so = ref_build(model, defines, tag);
	if (!r->so)
		return -1;
	int ok = REF_LOAD(r, model, ref_set_order) && REF_LOAD(r, model, logp) &&
	         REF_LOAD(r, model, logp_batch);
	return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
	void *sos[] = { fv10.so, fv4.so, nd10.so, nd4.so, fv10f.so, nd10f.so };
	for (size_t k = 0; k < sizeof sos / sizeof sos[0]; k++) {
		if (sos[k])
			dlclose(sos[k]);
	}
	rmdir(tmpdir);
	return 0;
}

/* Every build the tests use, compiled once (about a second in all). */
static int group_setup(void **state)
{
	strcpy(tmpdir, "/tmp/chain_test_reference_XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	if (ref_open(&fv10, "fvsbn", 10, 0) || ref_open(&fv4, "fvsbn", 4, 0) ||
	    ref_open(&nd10, "nade", 10, 5) || ref_open(&nd4, "nade", 4, 3) ||
	    ref32_open(&fv10f, "fvsbn", 10, 0) || ref32_open(&nd10f, "nade", 10, 5)) {
		group_teardown(state);
		return -1;
	}
	return 0;
}

/* ---- test data, all from the runtime's RNG on the DATA stream */

enum order_kind { ORDER_NATURAL, ORDER_REVERSE, ORDER_RANDOM };

/* Set r's order and write it to order[0..n): natural, reverse, or a random
 * permutation (Fisher-Yates) fixed by `seed`. */
static void use_order(void (*set_order)(const size_t *), size_t n, enum order_kind kind,
                      uint64_t seed, size_t *order)
{
	for (size_t k = 0; k < n; k++)
		order[k] = kind == ORDER_REVERSE ? n - 1 - k : k;
	if (kind == ORDER_RANDOM) {
		for (size_t k = n - 1; k > 0; k--) {
			size_t j = (size_t)(chain_rng_bits(seed, CHAIN_STREAM_DATA, k, 1, 0) % (k + 1));
			size_t t = order[k];
			order[k] = order[j];
			order[j] = t;
		}
	}
	set_order(order);
}

/* theta[t] = sd * a standard normal, for t < count. */
static void random_params(double *theta, size_t count, uint64_t seed, double sd)
{
	for (size_t t = 0; t < count; t++)
		theta[t] = sd * chain_rng_normal(seed, CHAIN_STREAM_DATA, t, 2, 0);
}

/* rows x n of fair random bits as 0.0 / 1.0. */
static void random_rows(double *obs, size_t rows, size_t n, uint64_t seed)
{
	for (size_t t = 0; t < rows * n; t++)
		obs[t] = (double)(chain_rng_bits(seed, CHAIN_STREAM_DATA, t, 3, 0) & 1);
}

/* State s of n bits as a row: x[j] = bit j of s. */
static void state_row(double *x, size_t n, unsigned s)
{
	for (size_t j = 0; j < n; j++)
		x[j] = (double)((s >> j) & 1u);
}

static double softplus_naive(double l)
{
	return l > 0 ? l + log1p(exp(-l)) : log1p(exp(l));
}

static double sigmoid_naive(double l)
{
	return 1 / (1 + exp(-l));
}

/* log p(x) straight from the model text, with no running sum: for each i,
 * sum over every j with pos[j] < pos[i].  O(n^2) for fvsbn, O(n^2 H) for nade. */
static double logp_naive(const ref *r, const double *theta, const size_t *order, const double *x)
{
	size_t n = r->n, hd = r->hidden, pos[MAXN];
	for (size_t k = 0; k < n; k++)
		pos[order[k]] = k;
	double lp = 0;
	for (size_t i = 0; i < n; i++) {
		double l;
		if (strcmp(r->model, "fvsbn") == 0) {
			const double *w = theta, *b = theta + n * n;
			l = b[i];
			for (size_t j = 0; j < n; j++)
				l += pos[j] < pos[i] ? w[i * n + j] * x[j] : 0;
		} else {
			const double *w = theta, *c = w + hd * n, *v = c + hd, *b = v + n * hd;
			l = b[i];
			for (size_t u = 0; u < hd; u++) {
				double a = c[u];
				for (size_t j = 0; j < n; j++)
					a += pos[j] < pos[i] ? w[u * n + j] * x[j] : 0;
				l += v[i * hd + u] * sigmoid_naive(a);
			}
		}
		lp += x[i] * l - softplus_naive(l);
	}
	return lp;
}

static int close_rel(double a, double b, double rel)
{
	return fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
}

/* ---- tests; each takes its ref as the state */

/* Before any M_ref_set_order call the order is natural: log p matches the
 * naive definition with order 0..N-1.  Must run before the other tests,
 * which set orders on the same loaded library. */
static void test_order__default__is_natural(void **state)
{
	const ref *r = *state;
	double theta[MAXP], x[MAXN];
	size_t order[MAXN] = { 0 };
	for (size_t k = 0; k < r->n; k++)
		order[k] = k;
	random_params(theta, r->num_params, 10, 1.0);
	for (uint64_t row = 0; row < 8; row++) {
		random_rows(x, 1, r->n, 200 + row);
		assert_true(close_rel(r->logp(theta, x), logp_naive(r, theta, order, x), 1e-12));
	}
}

/* sum over all 2^N states of p(x) is 1, in three orders, and logp_batch
 * gives logp's values. */
static void test_logp__all_states__sum_to_one(void **state)
{
	const ref *r = *state;
	static double theta[MAXP], obs[(1u << MAXN) * MAXN], lp[1u << MAXN];
	size_t order[MAXN] = { 0 }, n = r->n;
	unsigned states = 1u << n;
	random_params(theta, r->num_params, 11, 1.0);
	for (unsigned s = 0; s < states; s++)
		state_row(obs + s * n, n, s);
	for (int kind = ORDER_NATURAL; kind <= ORDER_RANDOM; kind++) {
		use_order(r->ref_set_order, n, kind, 5, order);
		r->logp_batch(theta, obs, states, lp);
		double total = 0;
		for (unsigned s = 0; s < states; s++) {
			assert_true(lp[s] <= 0);
			assert_true(lp[s] == r->logp(theta, obs + s * n));
			total += exp(lp[s]);
		}
		if (fabs(total - 1) > 1e-12)
			fail_msg("%s order %d: sum of p = %.17g", r->model, kind, total);
	}
}

/* log p agrees with the model text written out naively (no running sum, no
 * triangle bookkeeping), for random states and a random order. */
static void test_logp__random_order__matches_naive_definition(void **state)
{
	const ref *r = *state;
	double theta[MAXP], x[MAXN];
	size_t order[MAXN] = { 0 };
	random_params(theta, r->num_params, 12, 1.0);
	for (int kind = ORDER_NATURAL; kind <= ORDER_RANDOM; kind++) {
		use_order(r->ref_set_order, r->n, kind, 6, order);
		for (uint64_t row = 0; row < 20; row++) {
			random_rows(x, 1, r->n, 100 + row);
			double want = logp_naive(r, theta, order, x), got = r->logp(theta, x);
			if (!close_rel(got, want, 1e-12))
				fail_msg("%s order %d row %d: %.17g != naive %.17g", r->model, kind,
				         (int)row, got, want);
		}
	}
}

/* loglik_grad returns the sum of log p and adds a gradient that agrees with
 * central differences of that sum, entry by entry, in two orders. */
static void test_loglik_grad__random_params__matches_finite_differences(void **state)
{
	const ref *r = *state;
	enum { ROWS = 3 };
	double theta[MAXP], grad[MAXP], obs[ROWS * MAXN], lp[ROWS];
	size_t order[MAXN] = { 0 };
	const double eps = 1e-5;
	random_params(theta, r->num_params, 13, 0.7);
	random_rows(obs, ROWS, r->n, 14);
	for (int kind = ORDER_NATURAL; kind <= ORDER_RANDOM; kind += 2) {
		use_order(r->ref_set_order, r->n, kind, 7, order);
		for (size_t t = 0; t < r->num_params; t++)
			grad[t] = 0;
		double sum = r->loglik_grad(theta, obs, ROWS, grad);
		r->logp_batch(theta, obs, ROWS, lp);
		assert_true(close_rel(sum, lp[0] + lp[1] + lp[2], 1e-12));
		for (size_t t = 0; t < r->num_params; t++) {
			double keep = theta[t], fp = 0, fm = 0;
			theta[t] = keep + eps;
			r->logp_batch(theta, obs, ROWS, lp);
			fp = lp[0] + lp[1] + lp[2];
			theta[t] = keep - eps;
			r->logp_batch(theta, obs, ROWS, lp);
			fm = lp[0] + lp[1] + lp[2];
			theta[t] = keep;
			double fd = (fp - fm) / (2 * eps);
			if (fabs(grad[t] - fd) > 1e-6 * fmax(fabs(fd), 1e-2))
				fail_msg("%s order %d: d/dtheta[%zu] = %.12g, finite difference %.12g",
				         r->model, kind, t, grad[t], fd);
		}
	}
}

/* loglik_grad ADDS: a second call on the same grad doubles it (up to
 * rounding: rows are added one by one). */
static void test_loglik_grad__called_twice__adds_twice(void **state)
{
	const ref *r = *state;
	double theta[MAXP], g1[MAXP], g2[MAXP], obs[2 * MAXN];
	size_t order[MAXN] = { 0 };
	use_order(r->ref_set_order, r->n, ORDER_RANDOM, 8, order);
	random_params(theta, r->num_params, 15, 0.7);
	random_rows(obs, 2, r->n, 16);
	for (size_t t = 0; t < r->num_params; t++)
		g1[t] = g2[t] = 0;
	double a = r->loglik_grad(theta, obs, 2, g1);
	double b = r->loglik_grad(theta, obs, 2, g2);
	assert_true(a == b);
	assert_memory_equal(g1, g2, r->num_params * sizeof g1[0]);
	r->loglik_grad(theta, obs, 2, g2);
	for (size_t t = 0; t < r->num_params; t++)
		assert_true(fabs(g2[t] - 2 * g1[t]) <= 1e-14 * fmax(fabs(g1[t]), 1));
}

/* objective = mean log p, with gradient = mean of loglik_grad's, WRITTEN
 * over whatever grad held; grad may be NULL; no rows gives 0 and a 0 grad. */
static void test_objective__rows__is_mean_with_mean_gradient(void **state)
{
	const ref *r = *state;
	enum { ROWS = 5 };
	double theta[MAXP], gobj[MAXP], gsum[MAXP], obs[ROWS * MAXN];
	size_t order[MAXN] = { 0 };
	use_order(r->ref_set_order, r->n, ORDER_REVERSE, 0, order);
	random_params(theta, r->num_params, 17, 0.7);
	random_rows(obs, ROWS, r->n, 18);
	for (size_t t = 0; t < r->num_params; t++) {
		gobj[t] = 123.0; /* garbage the objective must overwrite */
		gsum[t] = 0;
	}
	double mean = r->objective(theta, obs, ROWS, gobj);
	double sum = r->loglik_grad(theta, obs, ROWS, gsum);
	assert_true(close_rel(mean, sum / ROWS, 1e-14));
	assert_true(r->objective(theta, obs, ROWS, NULL) == mean);
	for (size_t t = 0; t < r->num_params; t++) {
		if (fabs(gobj[t] - gsum[t] / ROWS) > 1e-14 * fmax(fabs(gobj[t]), 1))
			fail_msg("%s: objective grad[%zu] = %.17g, loglik_grad / n = %.17g", r->model,
			         t, gobj[t], gsum[t] / ROWS);
	}
	for (size_t t = 0; t < r->num_params; t++)
		gobj[t] = 123.0;
	assert_true(r->objective(theta, obs, 0, gobj) == 0);
	for (size_t t = 0; t < r->num_params; t++)
		assert_true(gobj[t] == 0);
}

/* init follows the rng formula: W (and V) ~ 0.01 * normal(seed, INIT, t),
 * other params 0; fvsbn leaves W[i][j] 0 unless j is before i. */
static void test_init__seed__follows_rng_formula(void **state)
{
	const ref *r = *state;
	double theta[MAXP], again[MAXP];
	size_t order[MAXN] = { 0 }, pos[MAXN], n = r->n, hd = r->hidden;
	use_order(r->ref_set_order, n, ORDER_RANDOM, 9, order);
	for (size_t k = 0; k < n; k++)
		pos[order[k]] = k;
	r->init(theta, 42);
	r->init(again, 42);
	assert_memory_equal(theta, again, r->num_params * sizeof theta[0]);
	for (size_t t = 0; t < r->num_params; t++) {
		double drawn = 0.0 + 0.01 * chain_rng_normal(42, CHAIN_STREAM_INIT, t, 0, 0);
		double want;
		if (strcmp(r->model, "fvsbn") == 0) {
			size_t i = t / n, j = t % n;
			want = t < n * n && pos[j] < pos[i] ? drawn : 0;
		} else {
			int is_w = t < hd * n && pos[t % n] != n - 1, is_v = t >= hd * n + hd && t < hd * n + hd + n * hd;
			want = is_w || is_v ? drawn : 0;
		}
		if (theta[t] != want)
			fail_msg("%s: init theta[%zu] = %.17g, want %.17g", r->model, t, theta[t], want);
	}
	r->init(again, 43);
	assert_memory_not_equal(theta, again, r->num_params * sizeof theta[0]);
}

/* fvsbn's W[i][j] with j not before i (diagonal included) is never read and
 * gets exactly 0 gradient: loglik_grad leaves them as they were, objective
 * writes 0, and changing them changes no log p. */
static void test_fvsbn__unused_weights__ignored_with_zero_gradient(void **state)
{
	const ref *r = &fv10;
	enum { ROWS = 4 };
	size_t n = r->n, order[MAXN] = { 0 }, pos[MAXN];
	double theta[MAXP], wild[MAXP], grad[MAXP], obs[ROWS * MAXN], lp[ROWS], lpw[ROWS];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 10, order);
	for (size_t k = 0; k < n; k++)
		pos[order[k]] = k;
	random_params(theta, r->num_params, 19, 0.7);
	random_rows(obs, ROWS, n, 20);
	memcpy(wild, theta, sizeof theta);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (pos[j] >= pos[i])
				wild[i * n + j] = 1e3 * (double)(i + 1) - 7.0 * (double)j;
	r->logp_batch(theta, obs, ROWS, lp);
	r->logp_batch(wild, obs, ROWS, lpw);
	assert_memory_equal(lp, lpw, sizeof lp);

	for (size_t t = 0; t < r->num_params; t++)
		grad[t] = 7.0;
	r->loglik_grad(theta, obs, ROWS, grad);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (pos[j] >= pos[i])
				assert_true(grad[i * n + j] == 7.0);
	r->objective(theta, obs, ROWS, grad);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (pos[j] >= pos[i])
				assert_true(grad[i * n + j] == 0.0);
}

/* nade's column W[:, j] of the last element in the order feeds no
 * conditional: ignored by log p, exactly 0 gradient. */
static void test_nade__last_column__ignored_with_zero_gradient(void **state)
{
	const ref *r = &nd10;
	enum { ROWS = 4 };
	size_t n = r->n, hd = r->hidden, order[MAXN] = { 0 };
	double theta[MAXP], grad[MAXP], obs[ROWS * MAXN], lp[ROWS], lpw[ROWS];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 11, order);
	size_t last = order[n - 1];
	random_params(theta, r->num_params, 21, 0.7);
	random_rows(obs, ROWS, n, 22);
	for (size_t u = 0; u < ROWS; u++)
		obs[u * n + last] = 1; /* so x[last] would matter if the column were read */
	r->logp_batch(theta, obs, ROWS, lp);
	for (size_t u = 0; u < hd; u++)
		theta[u * n + last] += 1e3;
	r->logp_batch(theta, obs, ROWS, lpw);
	assert_memory_equal(lp, lpw, sizeof lp);
	for (size_t t = 0; t < r->num_params; t++)
		grad[t] = 7.0;
	r->loglik_grad(theta, obs, ROWS, grad);
	for (size_t u = 0; u < hd; u++)
		assert_true(grad[u * n + last] == 7.0);
}

/* out[k] is position k's logit: it rebuilds log p, and does not move when
 * the elements at positions k, k+1, ... change. */
static void test_conditionals__logits__rebuild_logp_and_ignore_later(void **state)
{
	const ref *r = *state;
	size_t n = r->n, order[MAXN] = { 0 };
	double theta[MAXP], x[MAXN], y[MAXN], lx[MAXN], ly[MAXN];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 12, order);
	random_params(theta, r->num_params, 23, 1.0);
	random_rows(x, 1, n, 24);
	r->conditionals(theta, x, lx);
	double lp = 0;
	for (size_t k = 0; k < n; k++)
		lp += x[order[k]] * lx[k] - softplus_naive(lx[k]);
	assert_true(close_rel(lp, r->logp(theta, x), 1e-12));
	for (size_t k = 0; k < n; k++) {
		memcpy(y, x, sizeof x);
		for (size_t kk = k; kk < n; kk++)
			y[order[kk]] = 1 - y[order[kk]];
		r->conditionals(theta, y, ly);
		assert_memory_equal(lx, ly, (k + 1) * sizeof lx[0]);
	}
}

/* With N = 4, the frequencies of the 16 states over many sampled rows match
 * p(x): Pearson chi-square with 15 degrees of freedom below its 0.1% point
 * (37.70), for a fixed seed, in natural and random order. */
static void test_sample__many_rows__frequencies_match_p(void **state)
{
	const ref *r = *state;
	enum { ROWS = 200000, CHUNK = 10000, STATES = 16 };
	static double obs[CHUNK * 4];
	double theta[MAXP], x[4];
	size_t order[4] = { 0 };
	assert_int_equal(r->n, 4);
	random_params(theta, r->num_params, 25, 0.8);
	for (int kind = ORDER_NATURAL; kind <= ORDER_RANDOM; kind += 2) {
		use_order(r->ref_set_order, 4, kind, 13, order);
		double count[STATES] = { 0 }, chi2 = 0;
		for (uint64_t first = 0; first < ROWS; first += CHUNK) {
			r->sample(theta, 2024, first, CHUNK, obs);
			for (size_t u = 0; u < CHUNK; u++) {
				unsigned s = 0;
				for (size_t j = 0; j < 4; j++) {
					double v = obs[u * 4 + j];
					assert_true(v == 0 || v == 1);
					s |= (unsigned)v << j;
				}
				count[s]++;
			}
		}
		for (unsigned s = 0; s < STATES; s++) {
			state_row(x, 4, s);
			double expected = ROWS * exp(r->logp(theta, x));
			chi2 += (count[s] - expected) * (count[s] - expected) / expected;
		}
		if (chi2 > 37.70)
			fail_msg("%s order %d: chi-square %.2f > 37.70", r->model, kind, chi2);
	}
}

/* Row r is the same whatever batch it is drawn in: sample(first = 5, 3 rows)
 * is rows 5..7 of sample(first = 0, 8 rows). */
static void test_sample__batch_split__gives_same_rows(void **state)
{
	const ref *r = *state;
	size_t n = r->n, order[MAXN] = { 0 };
	double theta[MAXP], all[8 * MAXN], part[3 * MAXN];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 14, order);
	random_params(theta, r->num_params, 26, 1.0);
	r->sample(theta, 99, 0, 8, all);
	r->sample(theta, 99, 5, 3, part);
	assert_memory_equal(part, all + 5 * n, 3 * n * sizeof all[0]);
}

/* complete keeps the positions before `prefix` (all of them when prefix >=
 * N); given a sampled row's prefix it redraws that very row (same uniforms);
 * with prefix 0 it is sample, whatever the buffer held. */
static void test_complete__prefix__kept_and_rest_drawn_as_sample(void **state)
{
	const ref *r = *state;
	enum { ROWS = 6 };
	size_t n = r->n, order[MAXN] = { 0 };
	double theta[MAXP], sampled[ROWS * MAXN], given[ROWS * MAXN], obs[ROWS * MAXN];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 15, order);
	random_params(theta, r->num_params, 27, 1.0);
	r->sample(theta, 7, 40, ROWS, sampled);
	random_rows(given, ROWS, n, 28);
	for (size_t prefix = 0; prefix <= n + 2; prefix++) {
		memcpy(obs, sampled, sizeof obs);
		r->complete(theta, 7, 40, prefix, ROWS, obs);
		assert_memory_equal(obs, sampled, sizeof obs);

		memcpy(obs, given, sizeof obs);
		r->complete(theta, 7, 40, prefix, ROWS, obs);
		for (size_t u = 0; u < ROWS; u++) {
			for (size_t k = 0; k < n; k++) {
				double v = obs[u * n + order[k]];
				if (k < prefix)
					assert_true(v == given[u * n + order[k]]);
				else
					assert_true(v == 0 || v == 1);
			}
		}
	}
	for (size_t t = 0; t < ROWS * n; t++)
		obs[t] = NAN;
	r->complete(theta, 7, 40, 0, ROWS, obs);
	assert_memory_equal(obs, sampled, sizeof obs);
}

/* Logits of magnitude ~1e3 and beyond: log p, gradient and conditionals stay
 * finite, log p <= 0, samples are 0 or 1. */
static void test_kernels__huge_logits__stay_finite(void **state)
{
	const ref *r = *state;
	enum { ROWS = 4 };
	size_t n = r->n, order[MAXN] = { 0 };
	double theta[MAXP], grad[MAXP], obs[ROWS * MAXN], lp[ROWS], cond[MAXN];
	use_order(r->ref_set_order, n, ORDER_REVERSE, 0, order);
	random_params(theta, r->num_params, 29, 1e3);
	random_rows(obs, ROWS, n, 30);
	for (size_t t = 0; t < r->num_params; t++)
		grad[t] = 0;
	double sum = r->loglik_grad(theta, obs, ROWS, grad);
	assert_true(isfinite(sum));
	for (size_t t = 0; t < r->num_params; t++)
		assert_true(isfinite(grad[t]));
	r->logp_batch(theta, obs, ROWS, lp);
	for (size_t u = 0; u < ROWS; u++)
		assert_true(isfinite(lp[u]) && lp[u] <= 0);
	r->conditionals(theta, obs, cond);
	for (size_t k = 0; k < n; k++)
		assert_true(isfinite(cond[k]));
	r->sample(theta, 1, 0, ROWS, obs);
	for (size_t t = 0; t < ROWS * n; t++)
		assert_true(obs[t] == 0 || obs[t] == 1);
}

/* The -DCHAIN_F32 build computes the same log p as the f64 build, from the
 * same (float-representable) params, to 1e-5 relative, and its distribution
 * still sums to 1 to float accuracy. */
static void test_f32__logp__agrees_with_f64(void **state)
{
	const ref *r = *state;
	const ref32 *r32 = strcmp(r->model, "fvsbn") == 0 ? &fv10f : &nd10f;
	enum { ROWS = 1u << MAXN };
	static double obs[ROWS * MAXN], lp[ROWS];
	static float obsf[ROWS * MAXN], lpf[ROWS];
	double theta[MAXP];
	float thetaf[MAXP];
	size_t n = r->n, order[MAXN] = { 0 };
	assert_int_equal(n, MAXN);
	random_params(theta, r->num_params, 31, 1.0);
	for (size_t t = 0; t < r->num_params; t++) {
		thetaf[t] = (float)theta[t];
		theta[t] = thetaf[t];
	}
	for (unsigned s = 0; s < ROWS; s++)
		state_row(obs + s * n, n, s);
	for (size_t t = 0; t < ROWS * n; t++)
		obsf[t] = (float)obs[t];
	use_order(r->ref_set_order, n, ORDER_RANDOM, 16, order);
	r32->ref_set_order(order);
	r->logp_batch(theta, obs, ROWS, lp);
	r32->logp_batch(thetaf, obsf, ROWS, lpf);
	double total = 0;
	for (unsigned s = 0; s < ROWS; s++) {
		if (!close_rel(lpf[s], lp[s], 1e-5))
			fail_msg("%s state %u: f32 %.9g, f64 %.17g", r->model, s, lpf[s], lp[s]);
		total += exp((double)lpf[s]);
	}
	assert_true(r32->logp(thetaf, obsf + 5 * n) == lpf[5]);
	assert_true(fabs(total - 1) < 1e-4);
}

#define ON(fn, model) { #fn " [" #model "]", fn, NULL, NULL, &model }

int main(void)
{
	const struct CMUnitTest tests[] = {
		ON(test_order__default__is_natural, fv10), /* first: before any order is set */
		ON(test_order__default__is_natural, nd10),
		ON(test_logp__all_states__sum_to_one, fv10),
		ON(test_logp__all_states__sum_to_one, nd10),
		ON(test_logp__random_order__matches_naive_definition, fv10),
		ON(test_logp__random_order__matches_naive_definition, nd10),
		ON(test_loglik_grad__random_params__matches_finite_differences, fv10),
		ON(test_loglik_grad__random_params__matches_finite_differences, nd10),
		ON(test_loglik_grad__called_twice__adds_twice, fv10),
		ON(test_loglik_grad__called_twice__adds_twice, nd10),
		ON(test_objective__rows__is_mean_with_mean_gradient, fv10),
		ON(test_objective__rows__is_mean_with_mean_gradient, nd10),
		ON(test_init__seed__follows_rng_formula, fv10),
		ON(test_init__seed__follows_rng_formula, nd10),
		cmocka_unit_test(test_fvsbn__unused_weights__ignored_with_zero_gradient),
		cmocka_unit_test(test_nade__last_column__ignored_with_zero_gradient),
		ON(test_conditionals__logits__rebuild_logp_and_ignore_later, fv10),
		ON(test_conditionals__logits__rebuild_logp_and_ignore_later, nd10),
		ON(test_sample__many_rows__frequencies_match_p, fv4),
		ON(test_sample__many_rows__frequencies_match_p, nd4),
		ON(test_sample__batch_split__gives_same_rows, fv10),
		ON(test_sample__batch_split__gives_same_rows, nd10),
		ON(test_complete__prefix__kept_and_rest_drawn_as_sample, fv10),
		ON(test_complete__prefix__kept_and_rest_drawn_as_sample, nd10),
		ON(test_kernels__huge_logits__stay_finite, fv10),
		ON(test_kernels__huge_logits__stay_finite, nd10),
		ON(test_f32__logp__agrees_with_f64, fv10),
		ON(test_f32__logp__agrees_with_f64, nd10),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

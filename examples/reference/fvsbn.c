/* fvsbn.c -- hand-written reference for examples/fvsbn.chain.
 *
 *     model fvsbn
 *     dim n = 784
 *     data  x : bin[n]
 *     param W : real[n, n] ~ normal(0, 0.01)
 *     param b : real[n]
 *     order x
 *     x[i] ~ bernoulli_logit(b[i] + sum(j before i) W[i, j] * x[j])
 *     maximize loglik
 *
 * The ground truth the compiler is tested against, and a benchmark baseline:
 * it exports exactly the generated C API of `model fvsbn` (ARCHITECTURE.md,
 * "Generated C API"), so a test can dlopen this file's .so beside a compiled
 * model's and compare them kernel by kernel.  Plain loops, no cleverness: the
 * logit of each position is the O(n) sum over the positions before it, so a
 * row costs the O(n^2) triangle.
 *
 * Compile-time knobs: -DN=... (default 784), -DCHAIN_F32 (real = float).
 * The order defaults to natural; fvsbn_ref_set_order() replaces it, so tests
 * can check reverse and arbitrary orders without a second source file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/rng.h"

#ifndef N
#define N 784
#endif

/* theta = W[N][N], b[N], each row-major, in declaration order. */
#define W_OFF      ((size_t)0)
#define B_OFF      ((size_t)N * N)
#define NUM_PARAMS ((size_t)N * N + N)

/* ---- precision: every computation is done in `real` */

#ifdef CHAIN_F32
typedef float real;
static inline real r_exp(real v) { return expf(v); }
static inline real r_log1p(real v) { return log1pf(v); }
static inline real r_fabs(real v) { return fabsf(v); }
#else
typedef double real;
static inline real r_exp(real v) { return exp(v); }
static inline real r_log1p(real v) { return log1p(v); }
static inline real r_fabs(real v) { return fabs(v); }
#endif

/* ---- the API (the generated header fvsbn.h declares the same) */

extern const size_t fvsbn_ref_num_params;
extern const size_t fvsbn_ref_obs_size;
void fvsbn_ref_set_order(const size_t *order);
void fvsbn_init(real *theta, uint64_t seed);
real fvsbn_logp(const real *theta, const real *obs);
void fvsbn_logp_batch(const real *theta, const real *obs, size_t n, real *out);
real fvsbn_loglik_grad(const real *theta, const real *obs, size_t n, real *grad);
real fvsbn_objective(const real *theta, const real *obs, size_t n, real *grad);
void fvsbn_sample(const real *theta, uint64_t seed, uint64_t first, size_t n, real *obs);
void fvsbn_complete(const real *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                    real *obs);
void fvsbn_conditionals(const real *theta, const real *obs, real *out);

const size_t fvsbn_ref_num_params = NUM_PARAMS;
const size_t fvsbn_ref_obs_size = N;

/* ---- stable math, as the language defines it (finite for |l| up to 1e3) */

/* softplus(l) = log(1 + e^l) = max(l, 0) + log1p(e^-|l|): never overflows. */
static inline real softplus(real l)
{
	return (l > 0 ? l : 0) + r_log1p(r_exp(-r_fabs(l)));
}

/* sigmoid(l) = 1 / (1 + e^-l), with the exponential always of -|l| so it
 * never overflows: l >= 0 ? 1/(1+e^-l) : e^l/(1+e^l). */
static inline real sigmoid(real l)
{
	real e = r_exp(-r_fabs(l));
	return l >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* bernoulli_logit(l) at v in {0, 1}: v * l - softplus(l). */
static inline real bernoulli_logit_logp(real v, real l)
{
	return v * l - softplus(l);
}

/* ---- the order: position k -> element index ref_order[k], and back */

static size_t ref_order[N]; /* position -> element */
static size_t ref_pos[N];   /* element -> position: "j before i" is ref_pos[j] < ref_pos[i] */

/* The natural order x[0], ..., x[N-1], set when the library is loaded (a
 * static array cannot be initialised to 0..N-1 for a macro N). */
__attribute__((constructor)) static void order_natural(void)
{
	for (size_t k = 0; k < N; k++) {
		ref_order[k] = k;
		ref_pos[k] = k;
	}
}

/* Test hook: use `order` (a permutation of 0..N-1, copied) as the order from
 * now on, as if the model said `order x by P`.  Not thread-safe: call it
 * before any kernel runs.  A non-permutation is a bug in the caller: abort. */
void fvsbn_ref_set_order(const size_t *order)
{
	unsigned char seen[N] = { 0 };
	for (size_t k = 0; k < N; k++) {
		if (order[k] >= N || seen[order[k]]) {
			fprintf(stderr, "fvsbn_ref_set_order: not a permutation of 0..%d\n", N - 1);
			abort();
		}
		seen[order[k]] = 1;
	}
	for (size_t k = 0; k < N; k++) {
		ref_order[k] = order[k];
		ref_pos[order[k]] = k;
	}
}

/* ---- kernels */

/* The logit of position k, i = order[k]:
 *     l = b[i] + sum over positions k' < k of W[i][j] * x[j], j = order[k'].
 * Only x at positions before k is read, so x may be a row being sampled. */
static real fvsbn_logit(const real *theta, const real *x, size_t k)
{
	size_t i = ref_order[k];
	const real *wi = theta + W_OFF + i * N; /* row i of W */
	real s = 0;
	for (size_t kk = 0; kk < k; kk++) {
		size_t j = ref_order[kk];
		s += wi[j] * x[j];
	}
	return theta[B_OFF + i] + s;
}

/* log p(x) of one row, and when grad != NULL its gradient ADDED into grad.
 * Each conditional's logit is linear in the params, so reverse mode is one
 * step per position: dl = d/dl [x l - softplus(l)] = x - sigmoid(l), then
 * db[i] += dl and dW[i][j] += dl * x[j] for every j before i.  Entries W[i][j]
 * with j not before i are never touched. */
static real fvsbn_row(const real *theta, const real *x, real *grad)
{
	real lp = 0;
	for (size_t k = 0; k < N; k++) {
		size_t i = ref_order[k];
		real l = fvsbn_logit(theta, x, k);
		lp += bernoulli_logit_logp(x[i], l);
		if (grad) {
			real dl = x[i] - sigmoid(l);
			real *gwi = grad + W_OFF + i * N;
			grad[B_OFF + i] += dl;
			for (size_t kk = 0; kk < k; kk++) {
				size_t j = ref_order[kk];
				gwi[j] += dl * x[j];
			}
		}
	}
	return lp;
}

/* Sum of log p over n rows; the gradient of the sum is added into grad
 * unless grad == NULL. */
static real fvsbn_loglik(const real *theta, const real *obs, size_t n, real *grad)
{
	real total = 0;
	for (size_t r = 0; r < n; r++)
		total += fvsbn_row(theta, obs + r * N, grad);
	return total;
}

/* Fill row x by ancestral sampling from position `prefix` on (positions
 * before it keep their values and condition the rest).  The uniform of
 * position k in row r is chain_rng_uniform(seed, SAMPLE, r, k, 0), as the
 * compiled sampler draws it, so both produce the same rows bit for bit. */
static void fvsbn_draw_row(const real *theta, uint64_t seed, uint64_t r, size_t prefix, real *x)
{
	for (size_t k = prefix; k < N; k++) {
		size_t i = ref_order[k];
		real l = fvsbn_logit(theta, x, k);
		double unif = chain_rng_uniform(seed, CHAIN_STREAM_SAMPLE, r, (uint32_t)k, 0);
		x[i] = ((real)unif < sigmoid(l)) ? 1 : 0;
	}
}

/* W[i][j] ~ normal(0, 0.01) for j before i; the other entries of W (the
 * diagonal and above it, in order terms) are structurally unused and stay 0,
 * as does b (no `~`).  The draw for theta[t] uses coordinate a = t. */
void fvsbn_init(real *theta, uint64_t seed)
{
	memset(theta, 0, NUM_PARAMS * sizeof *theta);
	for (size_t i = 0; i < N; i++) {
		for (size_t j = 0; j < N; j++) {
			if (ref_pos[j] < ref_pos[i]) {
				size_t t = W_OFF + i * N + j;
				theta[t] = (real)(0.0 + 0.01 * chain_rng_normal(seed, CHAIN_STREAM_INIT, t, 0, 0));
			}
		}
	}
}

real fvsbn_logp(const real *theta, const real *obs)
{
	return fvsbn_row(theta, obs, NULL);
}

void fvsbn_logp_batch(const real *theta, const real *obs, size_t n, real *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = fvsbn_row(theta, obs + r * N, NULL);
}

real fvsbn_loglik_grad(const real *theta, const real *obs, size_t n, real *grad)
{
	return fvsbn_loglik(theta, obs, n, grad);
}

/* `maximize loglik`: the mean log p over the rows (0 for no rows); the
 * gradient of the mean is WRITTEN (not added) into grad unless NULL. */
real fvsbn_objective(const real *theta, const real *obs, size_t n, real *grad)
{
	if (grad)
		memset(grad, 0, NUM_PARAMS * sizeof *grad);
	if (n == 0)
		return 0;
	real total = fvsbn_loglik(theta, obs, n, grad);
	if (grad) {
		for (size_t t = 0; t < NUM_PARAMS; t++)
			grad[t] /= (real)n;
	}
	return total / (real)n;
}

void fvsbn_sample(const real *theta, uint64_t seed, uint64_t first, size_t n, real *obs)
{
	for (size_t r = 0; r < n; r++)
		fvsbn_draw_row(theta, seed, first + r, 0, obs + r * N);
}

void fvsbn_complete(const real *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                    real *obs)
{
	if (prefix > N)
		prefix = N;
	for (size_t r = 0; r < n; r++)
		fvsbn_draw_row(theta, seed, first + r, prefix, obs + r * N);
}

/* The family argument of each position: out[k] = logit of x[order[k]]. */
void fvsbn_conditionals(const real *theta, const real *obs, real *out)
{
	for (size_t k = 0; k < N; k++)
		out[k] = fvsbn_logit(theta, obs, k);
}

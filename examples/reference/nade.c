/* nade.c -- hand-written reference for examples/nade.chain.
 *
 *     model nade
 *     dim n = 784
 *     dim H = 500
 *     data  x : bin[n]
 *     param W : real[H, n] ~ normal(0, 0.01)
 *     param c : real[H]
 *     param V : real[n, H] ~ normal(0, 0.01)
 *     param b : real[n]
 *     order x
 *     let h[i] = sigmoid(c + sum(j before i) W[:, j] * x[j])
 *     x[i] ~ bernoulli_logit(b[i] + dot(V[i, :], h[i]))
 *     maximize loglik
 *
 * The ground truth the compiler is tested against, and a benchmark baseline:
 * it exports exactly the generated C API of `model nade` (ARCHITECTURE.md,
 * "Generated C API"), so a test can dlopen this file's .so beside a compiled
 * model's and compare them kernel by kernel.
 *
 * The algorithm is Larochelle & Murray's (2011): the hidden pre-activation of
 * position k is c + s_k with the running sum
 *     s_0 = 0,   s_{k+1} = s_k + W[:, o(k)] * x[o(k)]      (o = the order)
 * so a row costs O(nH), not O(n^2 H).  The gradient is the classic backward
 * pass: positions in reverse, with the adjoint of the running sum carried
 * from each position to the ones before it.
 *
 * Compile-time knobs: -DN=... (784), -DH=... (500), -DCHAIN_F32 (real =
 * float).  The order defaults to natural; nade_ref_set_order() replaces it.
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
#ifndef H
#define H 500
#endif

/* theta = W[H][N], c[H], V[N][H], b[N], each row-major, in declaration order. */
#define W_OFF      ((size_t)0)
#define C_OFF      ((size_t)H * N)
#define V_OFF      ((size_t)H * N + H)
#define B_OFF      ((size_t)H * N + H + (size_t)N * H)
#define NUM_PARAMS ((size_t)H * N + H + (size_t)N * H + N)

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

/* ---- the API (the generated header nade.h declares the same) */

extern const size_t nade_ref_num_params;
extern const size_t nade_ref_obs_size;
void nade_ref_set_order(const size_t *order);
void nade_init(real *theta, uint64_t seed);
real nade_logp(const real *theta, const real *obs);
void nade_logp_batch(const real *theta, const real *obs, size_t n, real *out);
real nade_loglik_grad(const real *theta, const real *obs, size_t n, real *grad);
real nade_objective(const real *theta, const real *obs, size_t n, real *grad);
void nade_sample(const real *theta, uint64_t seed, uint64_t first, size_t n, real *obs);
void nade_complete(const real *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                   real *obs);
void nade_conditionals(const real *theta, const real *obs, real *out);

const size_t nade_ref_num_params = NUM_PARAMS;
const size_t nade_ref_obs_size = N;

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

/* ---- the order: position k -> element index ref_order[k] */

static size_t ref_order[N];

/* The natural order x[0], ..., x[N-1], set when the library is loaded (a
 * static array cannot be initialised to 0..N-1 for a macro N). */
__attribute__((constructor)) static void order_natural(void)
{
	for (size_t k = 0; k < N; k++)
		ref_order[k] = k;
}

/* Test hook: use `order` (a permutation of 0..N-1, copied) as the order from
 * now on, as if the model said `order x by P`.  Not thread-safe: call it
 * before any kernel runs.  A non-permutation is a bug in the caller: abort. */
void nade_ref_set_order(const size_t *order)
{
	unsigned char seen[N] = { 0 };
	for (size_t k = 0; k < N; k++) {
		if (order[k] >= N || seen[order[k]]) {
			fprintf(stderr, "nade_ref_set_order: not a permutation of 0..%d\n", N - 1);
			abort();
		}
		seen[order[k]] = 1;
	}
	for (size_t k = 0; k < N; k++)
		ref_order[k] = order[k];
}

/* ---- the two steps of the forward pass */

/* The conditional of element i given the running sum s of the positions
 * before it: h = sigmoid(c + s) (written to h, H entries), and the returned
 * logit l = b[i] + dot(V[i, :], h). */
static real nade_logit(const real *theta, const real *s, size_t i, real *h)
{
	const real *c = theta + C_OFF;
	const real *vi = theta + V_OFF + i * H; /* row i of V */
	for (size_t u = 0; u < H; u++)
		h[u] = sigmoid(c[u] + s[u]);
	real dot = 0;
	for (size_t u = 0; u < H; u++)
		dot += vi[u] * h[u];
	return theta[B_OFF + i] + dot;
}

/* Move the running sum past element i: s += W[:, i] * xi.  W is [H][N], so
 * its column i is strided.  A transposed copy of W would make this loop
 * contiguous, but it gains little (~10% at the default sizes): the N*H
 * exponentials of the sigmoids dominate a row's cost. */
static void nade_advance(const real *theta, size_t i, real xi, real *s)
{
	const real *w = theta + W_OFF;
	for (size_t u = 0; u < H; u++)
		s[u] += w[u * N + i] * xi;
}

/* ---- kernels */

/* The forward pass over one row: returns log p(x).  When hs != NULL, the
 * hidden vector of position k is kept in hs[k*H .. k*H+H) and its logit in
 * logits[k] (both read by the backward pass); when only logits != NULL,
 * just the logits are kept. */
static real nade_forward(const real *theta, const real *x, real *hs, real *logits)
{
	real s[H];    /* running sum over the positions so far */
	real hbuf[H]; /* h of the current position when hs is not kept */
	real lp = 0;
	for (size_t u = 0; u < H; u++)
		s[u] = 0;
	for (size_t k = 0; k < N; k++) {
		size_t i = ref_order[k];
		real *h = hs ? hs + k * H : hbuf;
		real l = nade_logit(theta, s, i, h);
		if (logits)
			logits[k] = l;
		lp += bernoulli_logit_logp(x[i], l);
		nade_advance(theta, i, x[i], s);
	}
	return lp;
}

/* The backward pass over one row, ADDING d log p(x) / d theta into grad,
 * from the forward pass's hs and logits.  With i = o(k) and a_k = c + s_k:
 *     dl_k = x_i - sigmoid(l_k)             (d/dl of x l - softplus(l))
 *     db[i] += dl_k,  dV[i, :] += dl_k h_k
 *     da_k = dl_k V[i, :] h_k (1 - h_k)     (sigmoid' = h (1 - h))
 *     dc += da_k
 *     dW[:, i] += (da_{k+1} + ... + da_{n-1}) x_i   (s_{k'} for k' > k holds W[:, i] x_i)
 * The suffix sum in the last line is `ds`, carried backwards over positions:
 * when position k is reached it holds the da of every later position.  So the
 * column of the last position gets exactly 0: no conditional sees it. */
static void nade_backward(const real *theta, const real *x, const real *hs, const real *logits,
                          real *grad)
{
	real ds[H]; /* adjoint of the running sum: sum of da over later positions */
	for (size_t u = 0; u < H; u++)
		ds[u] = 0;
	for (size_t k = N; k-- > 0;) {
		size_t i = ref_order[k];
		const real *h = hs + k * H;
		const real *vi = theta + V_OFF + i * H;
		real *gvi = grad + V_OFF + i * H;
		real *gw = grad + W_OFF;

		for (size_t u = 0; u < H; u++)
			gw[u * N + i] += ds[u] * x[i];

		real dl = x[i] - sigmoid(logits[k]);
		grad[B_OFF + i] += dl;
		for (size_t u = 0; u < H; u++) {
			gvi[u] += dl * h[u];
			ds[u] += dl * vi[u] * h[u] * (1 - h[u]);
		}
	}
	for (size_t u = 0; u < H; u++)
		grad[C_OFF + u] += ds[u];
}

/* Sum of log p over n rows; the gradient of the sum is added into grad
 * unless grad == NULL.  The per-position hidden vectors of one row (N*H
 * reals) are kept for its backward pass, in one buffer reused row after row. */
static real nade_loglik(const real *theta, const real *obs, size_t n, real *grad)
{
	real *hs = NULL;
	real logits[N];
	if (grad) {
		hs = malloc((size_t)N * H * sizeof *hs);
		if (!hs) {
			fprintf(stderr, "nade reference: out of memory\n");
			abort();
		}
	}
	real total = 0;
	for (size_t r = 0; r < n; r++) {
		const real *x = obs + r * N;
		total += nade_forward(theta, x, hs, grad ? logits : NULL);
		if (grad)
			nade_backward(theta, x, hs, logits, grad);
	}
	free(hs);
	return total;
}

/* Fill row x by ancestral sampling from position `prefix` on (positions
 * before it keep their values and only advance the running sum).  The
 * uniform of position k in row r is chain_rng_uniform(seed, SAMPLE, r, k, 0),
 * as the compiled sampler draws it, so both produce the same rows bit for bit. */
static void nade_draw_row(const real *theta, uint64_t seed, uint64_t r, size_t prefix, real *x)
{
	real s[H], h[H];
	for (size_t u = 0; u < H; u++)
		s[u] = 0;
	for (size_t k = 0; k < N; k++) {
		size_t i = ref_order[k];
		if (k >= prefix) {
			real l = nade_logit(theta, s, i, h);
			double unif = chain_rng_uniform(seed, CHAIN_STREAM_SAMPLE, r, (uint32_t)k, 0);
			x[i] = ((real)unif < sigmoid(l)) ? 1 : 0;
		}
		nade_advance(theta, i, x[i], s);
	}
}

/* W and V ~ normal(0, 0.01), every entry; c and b (no `~`) stay 0.  The
 * draw for theta[t] uses coordinate a = t. */
void nade_init(real *theta, uint64_t seed)
{
	memset(theta, 0, NUM_PARAMS * sizeof *theta);
	for (size_t t = W_OFF; t < W_OFF + (size_t)H * N; t++)
		theta[t] = (real)(0.0 + 0.01 * chain_rng_normal(seed, CHAIN_STREAM_INIT, t, 0, 0));
	for (size_t t = V_OFF; t < V_OFF + (size_t)N * H; t++)
		theta[t] = (real)(0.0 + 0.01 * chain_rng_normal(seed, CHAIN_STREAM_INIT, t, 0, 0));
	/* W[:, last element of the order] feeds no conditional: structurally
	 * unused, so it stays 0 (ARCHITECTURE.md) */
	for (size_t u = 0; u < H; u++)
		theta[W_OFF + u * N + ref_order[N - 1]] = 0;
}

real nade_logp(const real *theta, const real *obs)
{
	return nade_forward(theta, obs, NULL, NULL);
}

void nade_logp_batch(const real *theta, const real *obs, size_t n, real *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = nade_forward(theta, obs + r * N, NULL, NULL);
}

real nade_loglik_grad(const real *theta, const real *obs, size_t n, real *grad)
{
	return nade_loglik(theta, obs, n, grad);
}

/* `maximize loglik`: the mean log p over the rows (0 for no rows); the
 * gradient of the mean is WRITTEN (not added) into grad unless NULL. */
real nade_objective(const real *theta, const real *obs, size_t n, real *grad)
{
	if (grad)
		memset(grad, 0, NUM_PARAMS * sizeof *grad);
	if (n == 0)
		return 0;
	real total = nade_loglik(theta, obs, n, grad);
	if (grad) {
		for (size_t t = 0; t < NUM_PARAMS; t++)
			grad[t] /= (real)n;
	}
	return total / (real)n;
}

void nade_sample(const real *theta, uint64_t seed, uint64_t first, size_t n, real *obs)
{
	for (size_t r = 0; r < n; r++)
		nade_draw_row(theta, seed, first + r, 0, obs + r * N);
}

void nade_complete(const real *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                   real *obs)
{
	if (prefix > N)
		prefix = N;
	for (size_t r = 0; r < n; r++)
		nade_draw_row(theta, seed, first + r, prefix, obs + r * N);
}

/* The family argument of each position: out[k] = logit of x[order[k]]. */
void nade_conditionals(const real *theta, const real *obs, real *out)
{
	nade_forward(theta, obs, NULL, out);
}

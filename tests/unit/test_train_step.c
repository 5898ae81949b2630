/* test_train_step.c -- the training step's arithmetic, checked bit for bit
 * against a plain implementation of what it promises, on a model wide
 * enough (WP params, runs of used entries longer and shorter than the
 * step's chunks, across thread slices) that chunks, slices and runs all
 * matter; and the stop on a non-finite gradient.
 *
 * The model: every used param j is the logit of an independent Bernoulli
 * that sees pixel j % WD of each row, plus a penalty pulling the first
 * WPEN params to 1:
 *
 *     loglik = sum_rows sum_{j used} x[j % WD] theta_j - softplus(theta_j)
 *     objective = mean loglik - 0.5 sum_{j < WPEN} (theta_j - 1)^2   (maximized)
 *
 * (w_npen penalized params: WPEN, or 0 for the model whose descriptor
 * says it is loglik only.)
 *
 * Its kernels write junk into unused entries (a huge gradient that
 * overflows to Inf after a few rows, NaN for the penalty's): the trainer
 * must never read them.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "chain/checkpoint.h"
#include "chain/rng.h"
#include "chain/train.h"

#define WD 8
#define WP 3000
#define WPEN 10

static uint8_t w_used[WP];

/* used: the first 1200 (longer than a chunk), then runs of 74 used and 37
 * unused (some crossing chunk bounds) */
static void w_make_mask(void)
{
	for (size_t j = 0; j < WP; j++)
		w_used[j] = j < 1200 || j % 111 < 74;
}

/* the objective call (one per step) that writes a bad penalty gradient,
 * at which entries and with which values; -1 = never */
static long w_objective_calls, w_bad_call = -1;
static size_t w_npen = WPEN;
static size_t w_bad_at[2];
static double w_bad_value[2];

static double w_softplus(double l) { return (l > 0 ? l : 0) + log1p(exp(-fabs(l))); }
static double w_sigmoid(double l)
{
	double e = exp(-fabs(l));
	return l >= 0 ? 1 / (1 + e) : e / (1 + e);
}

static void w_init(double *theta, uint64_t seed)
{
	for (size_t j = 0; j < WP; j++)
		theta[j] = 0.1 * chain_rng_normal(seed, CHAIN_STREAM_INIT, j, 0, 0);
}

static double w_logp(const double *theta, const double *x)
{
	double s = 0;
	for (size_t j = 0; j < WP; j++)
		if (w_used[j])
			s += x[j % WD] * theta[j] - w_softplus(theta[j]);
	return s;
}

static void w_logp_batch(const double *theta, const double *obs, size_t n, double *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = w_logp(theta, obs + r * WD);
}

/* row by row, gradient ADDED, junk into the unused entries */
static double w_loglik_grad(const double *theta, const double *obs, size_t n, double *grad)
{
	double s = 0;
	for (size_t r = 0; r < n; r++) {
		const double *x = obs + r * WD;
		s += w_logp(theta, x);
		for (size_t j = 0; j < WP; j++)
			grad[j] += w_used[j] ? x[j % WD] - w_sigmoid(theta[j]) : 1e308;
	}
	return s;
}

static double w_objective(const double *theta, const double *obs, size_t n, double *grad)
{
	double s = 0;
	for (size_t r = 0; r < n; r++)
		s += w_logp(theta, obs + r * WD);
	double pen = 0;
	for (size_t j = 0; j < w_npen; j++)
		pen += 0.5 * (theta[j] - 1) * (theta[j] - 1);
	if (grad) {
		for (size_t j = 0; j < WP; j++)
			grad[j] = w_used[j] ? 0 : NAN;
		if (n) {
			for (size_t r = 0; r < n; r++)
				w_loglik_grad(theta, obs + r * WD, 1, grad);
			for (size_t j = 0; j < WP; j++)
				grad[j] /= (double)n;
		}
		for (size_t j = 0; j < w_npen; j++)
			grad[j] -= theta[j] - 1;
		if (n == 0 && w_objective_calls++ == w_bad_call)
			for (int k = 0; k < 2; k++)
				grad[w_bad_at[k]] = w_bad_value[k];
	}
	return (n ? s / (double)n : 0) - pen;
}

/* The f32 build: the same through floats (computed in double, rounded). */
static void w32_init(float *theta, uint64_t seed)
{
	double t[WP];
	w_init(t, seed);
	for (size_t j = 0; j < WP; j++)
		theta[j] = (float)t[j];
}

static void w32_logp_batch(const float *theta, const float *obs, size_t n, float *out)
{
	double t[WP], x[WD];
	for (size_t j = 0; j < WP; j++)
		t[j] = theta[j];
	for (size_t r = 0; r < n; r++) {
		for (size_t i = 0; i < WD; i++)
			x[i] = obs[r * WD + i];
		out[r] = (float)w_logp(t, x);
	}
}

static float w32_loglik_grad(const float *theta, const float *obs, size_t n, float *grad)
{
	double t[WP], x[WD], s = 0;
	for (size_t j = 0; j < WP; j++)
		t[j] = theta[j];
	for (size_t r = 0; r < n; r++) {
		for (size_t i = 0; i < WD; i++)
			x[i] = obs[r * WD + i];
		s += w_logp(t, x);
		for (size_t j = 0; j < WP; j++)
			grad[j] += w_used[j] ? (float)(x[j % WD] - w_sigmoid(t[j])) : 3e38f;
	}
	return (float)s;
}

static float w32_objective(const float *theta, const float *obs, size_t n, float *grad)
{
	static double t[WP], g[WP];
	double x[WD * 4];
	for (size_t j = 0; j < WP; j++)
		t[j] = theta[j];
	if (n > 4)
		n = 4; /* the trainer only ever asks for 0 rows */
	for (size_t r = 0; r < n * WD; r++)
		x[r] = obs[r];
	double v = w_objective(t, x, n, grad ? g : NULL);
	if (grad)
		for (size_t j = 0; j < WP; j++)
			grad[j] = (float)g[j];
	return (float)v;
}

static const chain_var w_params[] = {
	{ .name = "theta", .kind = CHAIN_REAL, .rank = 1, .shape = { WP }, .offset = 0, .size = WP,
	  .used = w_used },
};
static const chain_var w_data[] = {
	{ .name = "x", .kind = CHAIN_BIN, .rank = 1, .shape = { WD }, .offset = 0, .size = WD },
};
static const size_t w_order[WD] = { 0, 1, 2, 3, 4, 5, 6, 7 };
static const chain_kernels_f64 w_k64 = { w_init, NULL, w_logp_batch, w_loglik_grad, w_objective, NULL, NULL, NULL };
static const chain_kernels_f32 w_k32 = { w32_init, NULL, w32_logp_batch, w32_loglik_grad, w32_objective, NULL, NULL, NULL };

#define W_MODEL(abi, prec, k64, k32, ll) { \
	.abi_version = (abi), .name = "wide", .precision = (prec), \
	.num_params = WP, .obs_size = WD, .num_param_vars = 1, .params = w_params, \
	.num_data = 1, .data = w_data, .num_positions = WD, .order = w_order, \
	.objective = CHAIN_OBJ_LOGLIK, .maximize = 1, .f64 = (k64), .f32 = (k32), .loglik_only = (ll) }

static const chain_model wide = W_MODEL(CHAIN_ABI_VERSION, CHAIN_F64, &w_k64, NULL, 0);
static const chain_model wide32 = W_MODEL(CHAIN_ABI_VERSION, CHAIN_F32, NULL, &w_k32, 0);
/* with w_npen = 0: the descriptor says so (no penalty to compute), and one
 * of ABI version 1, whose runtime did not know the field, says the same in
 * a field the runtime must not read */
static const chain_model wide_ll = W_MODEL(CHAIN_ABI_VERSION, CHAIN_F64, &w_k64, NULL, 1);
static const chain_model wide32_ll = W_MODEL(CHAIN_ABI_VERSION, CHAIN_F32, NULL, &w_k32, 1);
static const chain_model wide_ll_abi1 = W_MODEL(1, CHAIN_F64, &w_k64, NULL, 1);

/* ---- the plain step ------------------------------------------------------ */

/* chain_train's permutation of an epoch (train.c's shuffle): Fisher-Yates
 * from the identity, step k swapping position n-1-k with a uniform position
 * <= n-1-k drawn from the shuffle stream at (epoch, k). */
static void ref_shuffle(size_t *perm, size_t n, uint64_t seed, size_t epoch)
{
	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	for (size_t k = 0; k + 1 < n; k++) {
		size_t i = n - 1 - k;
		uint64_t r = chain_rng_bits(seed, CHAIN_STREAM_SHUFFLE, (uint64_t)epoch, (uint32_t)k, 0);
		size_t j = (size_t)(r % ((uint64_t)i + 1));
		size_t tmp = perm[i];
		perm[i] = perm[j];
		perm[j] = tmp;
	}
}

/* What chain_train promises for `epochs` epochs without validation, written
 * as plainly as possible: per step, TG = min(T, batch) threads each take a
 * contiguous chunk of the batch's rows (the first B % TG one row more) and
 * compute its loglik gradient into a zeroed vector; the loss gradient is
 * -(sum of those in thread order / B + penalty gradient), 0 where unused;
 * the optimizer steps the double master copy; an f32 model then reads it
 * rounded to float. */
static void ref_train(const chain_model *m, void *theta, const chain_dataset *d,
                      const chain_train_options *o)
{
	const int f32 = m->precision == CHAIN_F32;
	const size_t N = d->rows, batch = o->batch < N ? o->batch : N;
	const unsigned TG = o->threads < batch ? o->threads : (unsigned)batch;
	static double t64[WP], g[WP], gt64[WP], pen64[WP];
	static float gt32[WP], pen32[WP];
	float *theta32 = theta;
	double *obs64 = malloc(N * WD * sizeof *obs64);
	float *obs32 = malloc(N * WD * sizeof *obs32);
	size_t *perm = malloc(N * sizeof *perm);
	assert_true(obs64 && obs32 && perm);
	for (size_t j = 0; j < WP; j++) {
		t64[j] = w_used[j] ? (f32 ? (double)theta32[j] : ((double *)theta)[j]) : 0.0;
		if (f32)
			theta32[j] = (float)t64[j];
	}
	chain_optim opt;
	chain_error err = { "" };
	assert_int_equal(chain_optim_init(&opt, &o->optim, WP, w_used, &err), 0);
	for (size_t epoch = 1; epoch <= o->epochs; epoch++) {
		ref_shuffle(perm, N, o->seed, epoch);
		for (size_t b = 0; b * batch < N; b++) {
			size_t B = N - b * batch < batch ? N - b * batch : batch;
			const size_t *rows = perm + b * batch;
			memset(g, 0, sizeof g);
			for (unsigned t = 0; t < TG; t++) {
				size_t lo = B / TG * t + (t < B % TG ? t : B % TG);
				size_t n = B / TG + (t < B % TG);
				for (size_t i = 0; i < n * WD; i++) {
					obs64[i] = d->values[rows[lo + i / WD] * WD + i % WD];
					obs32[i] = (float)obs64[i];
				}
				if (f32) {
					memset(gt32, 0, sizeof gt32);
					if (n)
						w32_loglik_grad(theta32, obs32, n, gt32);
					for (size_t j = 0; j < WP; j++)
						g[j] = t ? g[j] + (double)gt32[j] : (double)gt32[j];
				} else {
					memset(gt64, 0, sizeof gt64);
					if (n)
						w_loglik_grad(t64, obs64, n, gt64);
					for (size_t j = 0; j < WP; j++)
						g[j] = t ? g[j] + gt64[j] : gt64[j];
				}
			}
			if (f32)
				w32_objective(theta32, obs32, 0, pen32);
			else
				w_objective(t64, obs64, 0, pen64);
			for (size_t j = 0; j < WP; j++)
				g[j] = w_used[j] ? -(g[j] / (double)B + (f32 ? (double)pen32[j] : pen64[j])) : 0.0;
			chain_optim_step(&opt, t64, g);
			for (size_t j = 0; f32 && j < WP; j++)
				theta32[j] = (float)t64[j];
		}
	}
	if (!f32)
		memcpy(theta, t64, sizeof t64);
	chain_optim_free(&opt);
	free(obs64);
	free(obs32);
	free(perm);
}

static chain_dataset w_data_set(size_t n, uint64_t seed)
{
	chain_dataset d = { .rows = n, .cols = WD, .values = malloc(n * WD * sizeof(double)) };
	assert_non_null(d.values);
	for (size_t r = 0; r < n; r++)
		for (size_t i = 0; i < WD; i++)
			d.values[r * WD + i] = chain_rng_uniform(seed, CHAIN_STREAM_DATA, r, (uint32_t)i, 0) < 0.1 + 0.1 * (double)i;
	return d;
}

static chain_train_options w_options(size_t epochs, size_t batch, unsigned threads)
{
	chain_train_options o;
	chain_train_defaults(&o);
	o.epochs = epochs;
	o.batch = batch;
	o.threads = threads;
	o.optim.lr = 0.05;
	return o;
}

/* ---- tests --------------------------------------------------------------- */

/* A model whose objective is its loglik alone (w_npen = 0): with a
 * descriptor that says so, training never evaluates the objective (the
 * penalty's gradient would be all 0) and gives the bits of the plain step
 * and of the same model trained through its objective; an ABI 1 descriptor
 * is trained through its objective, whatever lies where the field is. */
static void test_train_step__loglik_only__no_penalty_pass_same_bits(void **state)
{
	chain_dataset d = w_data_set(61, 6);
	static double a64[WP], b64[WP], c64[WP];
	static float a32[WP], b32[WP], c32[WP];
	w_npen = 0;
	for (int f32 = 0; f32 < 2; f32++)
		for (unsigned T = 1; T <= 3; T++) {
			const chain_model *ll = f32 ? &wide32_ll : &wide_ll, *pen = f32 ? &wide32 : &wide;
			void *a = f32 ? (void *)a32 : (void *)a64, *b = f32 ? (void *)b32 : (void *)b64;
			void *c = f32 ? (void *)c32 : (void *)c64;
			size_t bytes = f32 ? sizeof a32 : sizeof a64;
			chain_train_options o = w_options(2, 20, T);
			if (f32) {
				w32_init(a32, 8);
				w32_init(b32, 8);
				w32_init(c32, 8);
			} else {
				w_init(a64, 8);
				w_init(b64, 8);
				w_init(c64, 8);
			}
			chain_error err = { "" };
			chain_train_result r;
			long calls = w_objective_calls;
			if (chain_train(ll, a, &d, NULL, &o, &r, &err) != 0)
				fail_msg("chain_train: %s", err.msg);
			assert_int_equal(w_objective_calls, calls);
			if (chain_train(pen, b, &d, NULL, &o, &r, &err) != 0)
				fail_msg("chain_train: %s", err.msg);
			assert_true(w_objective_calls > calls);
			ref_train(ll, c, &d, &o);
			if (memcmp(a, b, bytes) != 0 || memcmp(a, c, bytes) != 0)
				fail_msg("%s, %u threads: loglik only, through the objective and the plain step differ",
				         f32 ? "f32" : "f64", T);
		}
	long calls = w_objective_calls;
	chain_train_options o = w_options(1, 20, 2);
	chain_error err = { "" };
	chain_train_result r;
	w_init(a64, 8);
	if (chain_train(&wide_ll_abi1, a64, &d, NULL, &o, &r, &err) != 0)
		fail_msg("chain_train: %s", err.msg);
	assert_true(w_objective_calls > calls);
	w_npen = WPEN;
	chain_dataset_free(&d);
}

/* For f64 and f32, Adam and SGD, 1 to 3 threads, batches that split evenly,
 * unevenly and into fewer chunks than threads: chain_train gives the bits
 * of the plain step, and unused entries stay exactly 0 though the kernels
 * write junk there. */
static void test_train_step__any_threads_and_batch__bits_of_the_plain_step(void **state)
{
	chain_dataset d = w_data_set(61, 3);
	static double a64[WP], b64[WP];
	static float a32[WP], b32[WP];
	const size_t batches[] = { 20, 2, 61 };
	for (int f32 = 0; f32 < 2; f32++)
		for (int kind = 0; kind < 2; kind++)
			for (unsigned T = 1; T <= 3; T++)
				for (size_t k = 0; k < sizeof batches / sizeof *batches; k++) {
					const chain_model *m = f32 ? &wide32 : &wide;
					void *a = f32 ? (void *)a32 : (void *)a64, *b = f32 ? (void *)b32 : (void *)b64;
					size_t bytes = f32 ? sizeof a32 : sizeof a64;
					chain_train_options o = w_options(2, batches[k], T);
					if (kind) {
						chain_optim_defaults(&o.optim, CHAIN_OPTIM_SGD);
						o.optim.lr = 0.01;
					}
					if (f32) {
						w32_init(a32, 5);
						w32_init(b32, 5);
					} else {
						w_init(a64, 5);
						w_init(b64, 5);
					}
					chain_error err = { "" };
					chain_train_result r;
					if (chain_train(m, a, &d, NULL, &o, &r, &err) != 0)
						fail_msg("chain_train: %s", err.msg);
					ref_train(m, b, &d, &o);
					if (memcmp(a, b, bytes) != 0)
						fail_msg("%s %s, %u threads, batch %zu: not the plain step's bits",
						         f32 ? "f32" : "f64", kind ? "sgd" : "adam", T, batches[k]);
					for (size_t j = 0; j < WP; j++)
						if (!w_used[j] && (f32 ? a32[j] != 0 : a64[j] != 0))
							fail_msg("unused entry %zu moved", j);
				}
	chain_dataset_free(&d);
}

/* A gradient entry that becomes NaN or infinite (the loss staying finite)
 * stops training with the first non-finite entry in index order, wherever
 * the threads' slices fall; the checkpoint keeps the last finished epoch,
 * and theta comes back as those params, the bits of a run that stopped
 * there. */
static void test_train_step__gradient_becomes_nonfinite__stops_params_of_last_epoch(void **state)
{
	chain_dataset d = w_data_set(40, 4);
	static double clean64[WP], bad64[WP], disk64[WP];
	static float clean32[WP], bad32[WP], disk32[WP];
	char ckpt[64], clean_ckpt[64];
	snprintf(ckpt, sizeof ckpt, "/tmp/chain-test-step-%ld.safetensors", (long)getpid());
	snprintf(clean_ckpt, sizeof clean_ckpt, "/tmp/chain-test-step-%ld-clean.safetensors", (long)getpid());
	/* {first bad entry, value; second, value; the message's value} */
	const struct {
		size_t at0;
		double v0;
		size_t at1;
		double v1;
		const char *says;
	} cases[] = {
		{ 5, NAN, 2900, INFINITY, "gradient became NaN at epoch 3, batch 2" },
		{ 2900, NAN, 100, INFINITY, "gradient became -Inf at epoch 3, batch 2" },   /* -(x + Inf) */
		{ 1500, -INFINITY, 1900, NAN, "gradient became Inf at epoch 3, batch 2" },
	};
	for (int f32 = 0; f32 < 2; f32++)
		for (unsigned T = 1; T <= 3; T++)
			for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
				const chain_model *m = f32 ? &wide32 : &wide;
				void *clean = f32 ? (void *)clean32 : (void *)clean64;
				void *bad = f32 ? (void *)bad32 : (void *)bad64;
				void *disk = f32 ? (void *)disk32 : (void *)disk64;
				size_t bytes = f32 ? sizeof clean32 : sizeof clean64;
				chain_train_options o = w_options(2, 16, T); /* 3 steps an epoch */
				o.checkpoint_path = clean_ckpt;
				if (f32) {
					w32_init(clean32, 6);
					w32_init(bad32, 6);
				} else {
					w_init(clean64, 6);
					w_init(bad64, 6);
				}
				chain_error err = { "" };
				chain_train_result r;
				if (chain_train(m, clean, &d, NULL, &o, &r, &err) != 0)
					fail_msg("chain_train: %s", err.msg);

				o.epochs = 5;
				o.checkpoint_path = ckpt;
				w_objective_calls = 0;
				w_bad_call = 7; /* epoch 3, batch 2 */
				w_bad_at[0] = cases[c].at0;
				w_bad_value[0] = cases[c].v0;
				w_bad_at[1] = cases[c].at1;
				w_bad_value[1] = cases[c].v1;
				int rc = chain_train(m, bad, &d, NULL, &o, &r, &err);
				w_bad_call = -1;
				assert_int_equal(rc, -1);
				assert_int_equal(r.stop, CHAIN_STOP_NONFINITE);
				assert_int_equal(r.last_epoch, 2);
				if (!strstr(err.msg, cases[c].says) || !strstr(err.msg, ckpt))
					fail_msg("%s, %u threads: \"%s\" lacks \"%s\"", f32 ? "f32" : "f64", T, err.msg,
					         cases[c].says);
				char value[32];
				assert_int_equal(chain_checkpoint_load(ckpt, m, disk, "epoch", value, sizeof value, &err), 0);
				assert_string_equal(value, "2");
				assert_memory_equal(disk, clean, bytes);
				assert_memory_equal(bad, clean, bytes);
			}
	unlink(ckpt);
	unlink(clean_ckpt);
	chain_dataset_free(&d);
}

int main(void)
{
	w_make_mask();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_train_step__any_threads_and_batch__bits_of_the_plain_step),
		cmocka_unit_test(test_train_step__loglik_only__no_penalty_pass_same_bits),
		cmocka_unit_test(test_train_step__gradient_becomes_nonfinite__stops_params_of_last_epoch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

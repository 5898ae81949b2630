/* test_train.c -- the training loop, evaluation and the train/eval/sample
 * commands, on a tiny model written by hand: four independent Bernoulli
 * pixels with logits l[0..3], plus a param u[2] of which u[0] is only
 * pulled to 3 by a penalty and u[1] is structurally unused (and gets a bogus
 * gradient from the kernel, which the trainer must ignore).
 *
 *     log p(x) = sum_i x_i l_i - softplus(l_i)
 *     objective = mean log p - 0.5 (u0 - 3)^2          (maximized)
 *
 * Its maximum is sigmoid(l_i) = the frequency of pixel i in the data, u0 = 3.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "chain/checkpoint.h"
#include "chain/data.h"
#include "chain/rng.h"
#include "chain/train.h"
#include "cmd.h"

/* ---- fixtures -------------------------------------------------------- */

static char tmpdir[256];

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/chain-test-train-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path in the test's directory; the last 64 stay valid. */
static const char *tmp_path(const char *name)
{
	static char bufs[64][512];
	static int next;
	char *b = bufs[next++ % 64];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

/* |a - b| <= tol (cmocka's assert_float_equal rounds to float). */
#define assert_close(a, b, tol) check_close((a), (b), (tol), #a, __LINE__)
static void check_close(double a, double b, double tol, const char *what, int line)
{
	if (!(fabs(a - b) <= tol))
		fail_msg("line %d: %s = %.17g, expected %.17g (tolerance %g)", line, what, a, b, tol);
}

#define assert_contains(hay, needle) \
	do { \
		if (!strstr((hay), (needle))) \
			fail_msg("\"%s\" lacks \"%s\"", (hay), (needle)); \
	} while (0)

/* ---- the model ------------------------------------------------------- */

#define NPIX 4
#define NPAR 6

static atomic_long bern_calls;          /* loglik_grad calls so far */
static long bern_nan_call = -1;         /* that call returns NaN (-1 = never) */

static double softplus(double l) { return (l > 0 ? l : 0) + log1p(exp(-fabs(l))); }
static double sigmoid(double l)
{
	double e = exp(-fabs(l));
	return l >= 0 ? 1 / (1 + e) : e / (1 + e);
}

static const size_t bern_order[NPIX] = { 3, 2, 1, 0 };
static const size_t bern_cond[NPIX + 1] = { 0, 1, 2, 3, 4 };

static void bern_init(double *theta, uint64_t seed)
{
	for (size_t i = 0; i < NPIX; i++)
		theta[i] = 0.01 * chain_rng_normal(seed, CHAIN_STREAM_INIT, i, 0, 0);
	theta[4] = theta[5] = 0;
}

static double bern_logp(const double *theta, const double *x)
{
	double s = 0;
	for (size_t i = 0; i < NPIX; i++)
		s += x[i] * theta[i] - softplus(theta[i]);
	return s;
}

static void bern_logp_batch(const double *theta, const double *obs, size_t n, double *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = bern_logp(theta, obs + r * NPIX);
}

/* Sum of log p, gradient ADDED; also adds 1 per row to the unused u[1]. */
static double bern_sum(const double *theta, const double *obs, size_t n, double *grad)
{
	double s = 0;
	for (size_t r = 0; r < n; r++) {
		const double *x = obs + r * NPIX;
		s += bern_logp(theta, x);
		for (size_t i = 0; i < NPIX; i++)
			grad[i] += x[i] - sigmoid(theta[i]);
		grad[5] += 1.0;
	}
	return s;
}

static double bern_loglik_grad(const double *theta, const double *obs, size_t n, double *grad)
{
	if (atomic_fetch_add(&bern_calls, 1) == bern_nan_call)
		return NAN;
	return bern_sum(theta, obs, n, grad);
}

static double bern_objective(const double *theta, const double *obs, size_t n, double *grad)
{
	double g[NPAR] = { 0 };
	double ll = n ? bern_sum(theta, obs, n, g) / (double)n : 0;
	for (size_t j = 0; j < NPAR; j++)
		g[j] = n ? g[j] / (double)n : 0;
	double d = theta[4] - 3;
	g[4] -= d;
	if (grad)
		memcpy(grad, g, sizeof g);
	return ll - 0.5 * d * d;
}

static void bern_complete(const double *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                          double *obs)
{
	for (size_t r = 0; r < n; r++)
		for (size_t k = prefix; k < NPIX; k++) {
			size_t i = bern_order[k];
			double u = chain_rng_uniform(seed, CHAIN_STREAM_SAMPLE, first + r, (uint32_t)k, 0);
			obs[r * NPIX + i] = u < sigmoid(theta[i]) ? 1.0 : 0.0;
		}
}

static void bern_sample(const double *theta, uint64_t seed, uint64_t first, size_t n, double *obs)
{
	bern_complete(theta, seed, first, 0, n, obs);
}

static void bern_conditionals(const double *theta, const double *obs, double *out)
{
	for (size_t k = 0; k < NPIX; k++)
		out[k] = theta[bern_order[k]];
}

/* The f32 build: the same model through float arguments. */
static void f2d(const float *a, double *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = a[i];
}

static void bern32_init(float *theta, uint64_t seed)
{
	double t[NPAR];
	bern_init(t, seed);
	for (size_t j = 0; j < NPAR; j++)
		theta[j] = (float)t[j];
}

static float bern32_logp(const float *theta, const float *obs)
{
	double t[NPAR], x[NPIX];
	f2d(theta, t, NPAR);
	f2d(obs, x, NPIX);
	return (float)bern_logp(t, x);
}

static void bern32_logp_batch(const float *theta, const float *obs, size_t n, float *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = bern32_logp(theta, obs + r * NPIX);
}

static float bern32_loglik_grad(const float *theta, const float *obs, size_t n, float *grad)
{
	double t[NPAR], g[NPAR] = { 0 }, x[NPIX], s = 0;
	f2d(theta, t, NPAR);
	for (size_t r = 0; r < n; r++) {
		f2d(obs + r * NPIX, x, NPIX);
		s += bern_sum(t, x, 1, g);
	}
	for (size_t j = 0; j < NPAR; j++)
		grad[j] += (float)g[j];
	return (float)s;
}

static float bern32_objective(const float *theta, const float *obs, size_t n, float *grad)
{
	double t[NPAR], g[NPAR] = { 0 }, x[NPIX], s = 0;
	f2d(theta, t, NPAR);
	for (size_t r = 0; r < n; r++) {
		f2d(obs + r * NPIX, x, NPIX);
		s += bern_sum(t, x, 1, g);
	}
	for (size_t j = 0; j < NPAR; j++)
		g[j] = n ? g[j] / (double)n : 0;
	double d = t[4] - 3;
	g[4] -= d;
	if (grad)
		for (size_t j = 0; j < NPAR; j++)
			grad[j] = (float)g[j];
	return (float)((n ? s / (double)n : 0) - 0.5 * d * d);
}

static void bern32_complete(const float *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n,
                            float *obs)
{
	double t[NPAR];
	f2d(theta, t, NPAR);
	for (size_t r = 0; r < n; r++) {
		double x[NPIX];
		f2d(obs + r * NPIX, x, NPIX);
		bern_complete(t, seed, first + r, prefix, 1, x);
		for (size_t i = 0; i < NPIX; i++)
			obs[r * NPIX + i] = (float)x[i];
	}
}

static void bern32_sample(const float *theta, uint64_t seed, uint64_t first, size_t n, float *obs)
{
	bern32_complete(theta, seed, first, 0, n, obs);
}

static const uint8_t u_used[2] = { 1, 0 };
static const chain_var bern_params[] = {
	{ .name = "l", .kind = CHAIN_REAL, .rank = 1, .shape = { NPIX }, .offset = 0, .size = NPIX },
	{ .name = "u", .kind = CHAIN_REAL, .rank = 1, .shape = { 2 }, .offset = 4, .size = 2,
	  .unused = 1, .used = u_used },
};
static const chain_var bern_data[] = {
	{ .name = "x", .kind = CHAIN_BIN, .rank = 1, .shape = { NPIX }, .offset = 0, .size = NPIX },
};
static const chain_var bern_data_split[] = {
	{ .name = "x", .kind = CHAIN_BIN, .rank = 1, .shape = { 2 }, .offset = 0, .size = 2 },
	{ .name = "y", .kind = CHAIN_BIN, .rank = 1, .shape = { 2 }, .offset = 2, .size = 2 },
};
static const chain_kernels_f64 bern_k64 = {
	bern_init, bern_logp, bern_logp_batch, bern_loglik_grad, bern_objective,
	bern_sample, bern_complete, bern_conditionals,
};
static const chain_kernels_f32 bern_k32 = {
	bern32_init, bern32_logp, bern32_logp_batch, bern32_loglik_grad, bern32_objective,
	bern32_sample, bern32_complete, NULL,
};

#define BERN_MODEL(prec, k64, k32, vars, ndata) { \
	.abi_version = CHAIN_ABI_VERSION, .name = "bern", .precision = (prec), \
	.num_params = NPAR, .num_params_unused = 1, .obs_size = NPIX, \
	.num_param_vars = 2, .params = bern_params, .num_data = (ndata), .data = (vars), \
	.num_positions = NPIX, .order = bern_order, .cond_offset = bern_cond, \
	.objective = CHAIN_OBJ_LOGLIK, .maximize = 1, .f64 = (k64), .f32 = (k32) }

static const chain_model bern = BERN_MODEL(CHAIN_F64, &bern_k64, NULL, bern_data, 1);
static const chain_model bern32 = BERN_MODEL(CHAIN_F32, NULL, &bern_k32, bern_data, 1);
static const chain_model bern_split = BERN_MODEL(CHAIN_F64, &bern_k64, NULL, bern_data_split, 2);

/* ---- helpers --------------------------------------------------------- */

/* n rows with pixel i on with probability p[i], from the test stream. */
static chain_dataset make_data(size_t n, const double p[NPIX], uint64_t seed)
{
	chain_dataset d = { .rows = n, .cols = NPIX, .values = malloc(n * NPIX * sizeof(double)) };
	assert_non_null(d.values);
	for (size_t r = 0; r < n; r++)
		for (size_t i = 0; i < NPIX; i++)
			d.values[r * NPIX + i] = chain_rng_uniform(seed, CHAIN_STREAM_DATA, r, (uint32_t)i, 0) < p[i];
	return d;
}

static void frequencies(const chain_dataset *d, double f[NPIX])
{
	for (size_t i = 0; i < NPIX; i++) {
		f[i] = 0;
		for (size_t r = 0; r < d->rows; r++)
			f[i] += d->values[r * NPIX + i];
		f[i] /= (double)d->rows;
	}
}

static chain_train_options quiet_options(size_t epochs, size_t batch, unsigned threads)
{
	chain_train_options o;
	chain_train_defaults(&o);
	o.epochs = epochs;
	o.batch = batch;
	o.threads = threads;
	return o;
}

static void train_ok(const chain_model *m, void *theta, const chain_dataset *tr, const chain_dataset *va,
                     const chain_train_options *o, chain_train_result *r)
{
	chain_error err = { "" };
	if (chain_train(m, theta, tr, va, o, r, &err) != 0)
		fail_msg("chain_train: %s", err.msg);
}

static const double P_TRUE[NPIX] = { 0.1, 0.5, 0.8, 0.95 };

/* ---- training -------------------------------------------------------- */

static void test_train__bernoulli_pixels__converge_to_empirical_frequencies(void **state)
{
	chain_dataset d = make_data(2000, P_TRUE, 7);
	double f[NPIX], theta[NPAR];
	frequencies(&d, f);
	bern_init(theta, 1);
	theta[5] = 0.25; /* unused: must come back as exactly 0 */
	chain_train_options o = quiet_options(30, 50, 2);
	o.optim.lr = 0.05;
	chain_train_result r;
	train_ok(&bern, theta, &d, NULL, &o, &r);
	for (size_t i = 0; i < NPIX; i++)
		assert_close(sigmoid(theta[i]), f[i], 0.02);
	assert_close(theta[4], 3.0, 0.05);  /* the penalty's gradient was added */
	assert_true(theta[5] == 0 && !signbit(theta[5]));
	assert_int_equal(r.stop, CHAIN_STOP_EPOCHS);
	assert_int_equal(r.last_epoch, 30);
	assert_int_equal(r.best_epoch, 30);
	assert_int_equal(r.threads, 2);
	assert_true(isnan(r.best_valid));
	/* the training NLL of the last epoch is near the entropy of the data */
	double h = 0;
	for (size_t i = 0; i < NPIX; i++)
		h -= f[i] * log(f[i]) + (1 - f[i]) * log(1 - f[i]);
	assert_close(r.last_train_nll, h, 0.02);
	chain_dataset_free(&d);
}

static void test_train__sgd_momentum__converges_too(void **state)
{
	chain_dataset d = make_data(1000, P_TRUE, 8);
	double f[NPIX], theta[NPAR];
	frequencies(&d, f);
	bern_init(theta, 3);
	chain_train_options o = quiet_options(40, 20, 1);
	chain_optim_defaults(&o.optim, CHAIN_OPTIM_SGD);
	o.optim.lr = 0.05;
	chain_train_result r;
	train_ok(&bern, theta, &d, NULL, &o, &r);
	for (size_t i = 0; i < NPIX; i++)
		assert_close(sigmoid(theta[i]), f[i], 0.03);
	assert_close(theta[4], 3.0, 0.01);
	assert_true(theta[5] == 0);
	chain_dataset_free(&d);
}

static void test_train__f32_model__trained_in_double_returned_as_float(void **state)
{
	chain_dataset d = make_data(2000, P_TRUE, 9);
	double f[NPIX];
	float theta[NPAR];
	frequencies(&d, f);
	bern32_init(theta, 1);
	chain_train_options o = quiet_options(30, 50, 3);
	o.optim.lr = 0.05;
	chain_train_result r;
	train_ok(&bern32, theta, &d, NULL, &o, &r);
	for (size_t i = 0; i < NPIX; i++)
		assert_close(sigmoid(theta[i]), f[i], 0.02);
	assert_close(theta[4], 3.0, 0.05);
	assert_true(theta[5] == 0);
	chain_dataset_free(&d);
}

/* Same data, seed and thread count: the same bits, whatever the timing.
 * Another seed shuffles differently; one thread sums differently but lands
 * in the same place. */
static void test_train__same_seed_and_threads__bit_identical(void **state)
{
	chain_dataset d = make_data(997, P_TRUE, 10);
	double a[NPAR], b[NPAR], c[NPAR], e[NPAR];
	chain_train_options o = quiet_options(5, 64, 3);
	o.optim.lr = 0.05;
	chain_train_result r;
	for (int run = 0; run < 3; run++) {
		bern_init(a, 5);
		train_ok(&bern, a, &d, NULL, &o, &r);
		bern_init(b, 5);
		train_ok(&bern, b, &d, NULL, &o, &r);
		assert_memory_equal(a, b, sizeof a);
	}
	bern_init(c, 5);
	o.seed = 2;
	train_ok(&bern, c, &d, NULL, &o, &r);
	assert_memory_not_equal(a, c, sizeof a);
	bern_init(e, 5);
	o.seed = 1;
	o.threads = 1;
	train_ok(&bern, e, &d, NULL, &o, &r);
	for (size_t j = 0; j < NPAR; j++)
		assert_close(e[j], a[j], 1e-9);
	chain_dataset_free(&d);
}

/* Compact data (one byte per value) trains and evaluates to the same bits
 * as the doubles, f64 and f32, with validation. */
static void test_train__compact_data__same_bits_as_doubles(void **state)
{
	chain_dataset d = make_data(600, P_TRUE, 15), v = make_data(200, P_TRUE, 16);
	chain_dataset dc = make_data(600, P_TRUE, 15), vc = make_data(200, P_TRUE, 16);
	assert_int_equal(chain_data_compact(&dc), 1);
	assert_int_equal(chain_data_compact(&vc), 1);
	chain_train_options o = quiet_options(4, 32, 3);
	o.optim.lr = 0.05;
	chain_train_result r1, r2;
	double a[NPAR], b[NPAR];
	bern_init(a, 3);
	bern_init(b, 3);
	train_ok(&bern, a, &d, &v, &o, &r1);
	train_ok(&bern, b, &dc, &vc, &o, &r2);
	assert_memory_equal(a, b, sizeof a);
	assert_true(r1.best_valid == r2.best_valid);
	float a32[NPAR], b32[NPAR];
	bern32_init(a32, 3);
	bern32_init(b32, 3);
	train_ok(&bern32, a32, &d, &v, &o, &r1);
	train_ok(&bern32, b32, &dc, &vc, &o, &r2);
	assert_memory_equal(a32, b32, sizeof a32);
	assert_true(r1.best_valid == r2.best_valid);
	chain_eval_result e1, e2;
	chain_error err = { "" };
	assert_int_equal(chain_eval_nll(&bern32, a32, &v, 2, &e1, &err), 0);
	assert_int_equal(chain_eval_nll(&bern32, a32, &vc, 2, &e2, &err), 0);
	assert_true(e1.mean_nll == e2.mean_nll && e1.std_err == e2.std_err);
	chain_dataset_free(&d);
	chain_dataset_free(&v);
	chain_dataset_free(&dc);
	chain_dataset_free(&vc);
}

/* Records what the progress reports say, and checks the checkpoint on disk
 * at every report: it must always load whole and hold kept params: at the
 * start the initial ones; after epoch e those of epoch e, or (its commit
 * still running on a thread) those of epoch e-1; at the end of a run that
 * ended well, those of the last epoch. */
typedef struct recorder {
	const char *ckpt;
	size_t epochs_seen, batches_seen, starts, ends;
	double valid[128];          /* valid[e] = validation NLL after epoch e (0: initial) */
	size_t first_epoch;
	size_t last_best;           /* best_epoch at the previous report */
	chain_train_stop stop;
} recorder;

/* The checkpoint's epoch and best_epoch, read from one file: read again
 * when the path was replaced between the reads. */
static void read_epochs(const char *ckpt, size_t epoch, size_t *file_epoch, size_t *file_best)
{
	double theta[NPAR];
	char value[64], again[64], best[64];
	chain_error err = { "" };
	for (;;) {
		if (chain_checkpoint_load(ckpt, &bern, theta, "epoch", value, sizeof value, &err) != 0 ||
		    chain_checkpoint_load(ckpt, &bern, theta, "best_epoch", best, sizeof best, &err) != 0 ||
		    chain_checkpoint_load(ckpt, &bern, theta, "epoch", again, sizeof again, &err) != 0)
			fail_msg("checkpoint after epoch %zu: %s", epoch, err.msg);
		if (strcmp(value, again) == 0)
			break;
	}
	*file_epoch = (size_t)strtoull(value, NULL, 10);
	*file_best = (size_t)strtoull(best, NULL, 10);
}

static void record(const chain_train_progress *p, void *user)
{
	recorder *rec = user;
	char value[64];
	double theta[NPAR];
	chain_error err = { "" };
	size_t fe, fb;
	switch (p->event) {
	case CHAIN_TRAIN_START:
		rec->starts++;
		rec->first_epoch = p->epoch;
		rec->valid[p->epoch - 1] = p->valid_nll;
		break;
	case CHAIN_TRAIN_BATCH:
		rec->batches_seen++;
		assert_true(p->batch >= 1 && p->batch <= p->batches);
		assert_true(isfinite(p->train_nll));
		if (rec->ckpt) {
			/* mid-epoch: the previous epoch's file, or the one before it
			 * while the previous one's commit runs */
			read_epochs(rec->ckpt, p->epoch, &fe, &fb);
			assert_true(fe + 1 <= p->epoch && fe + 2 >= p->epoch);
		}
		return;
	case CHAIN_TRAIN_EPOCH:
		rec->epochs_seen++;
		assert_true(p->epoch < 128);
		rec->valid[p->epoch] = p->valid_nll;
		break;
	case CHAIN_TRAIN_END:
		rec->ends++;
		rec->stop = p->stop;
		if (rec->ckpt && (p->stop == CHAIN_STOP_EPOCHS || p->stop == CHAIN_STOP_EARLY)) {
			read_epochs(rec->ckpt, p->epoch, &fe, &fb);
			assert_int_equal(fe, p->epoch);
			assert_int_equal(fb, p->best_epoch);
		}
		return;
	}
	if (!rec->ckpt)
		return;
	read_epochs(rec->ckpt, p->epoch, &fe, &fb);
	if (p->event == CHAIN_TRAIN_START) {
		assert_int_equal(fe, p->epoch - 1);
		assert_int_equal(fb, p->best_epoch);
	} else if (fe == p->epoch - 1) {
		assert_int_equal(fb, rec->last_best);
	} else {
		assert_int_equal(fe, p->epoch);
		assert_int_equal(fb, p->best_epoch);
	}
	rec->last_best = p->best_epoch;
	assert_int_equal(chain_checkpoint_load(rec->ckpt, &bern, theta, "seed", value, sizeof value, &err), 0);
	char want[32];
	snprintf(want, sizeof want, "%" PRIu64, p->seed);
	assert_string_equal(value, want);
}

/* Train on pixels on 90% of the time, validate on 70%: starting from 50%,
 * validation improves, then worsens as training overshoots it.  The params
 * kept are those of the best validation epoch, in memory and on disk. */
static void test_train__valid_worsens__early_stop_keeps_best_params(void **state)
{
	const double p_train[NPIX] = { 0.9, 0.9, 0.9, 0.9 }, p_valid[NPIX] = { 0.7, 0.7, 0.7, 0.7 };
	chain_dataset tr = make_data(1000, p_train, 11), va = make_data(500, p_valid, 12);
	double theta[NPAR], from_disk[NPAR];
	bern_init(theta, 1);
	const char *ckpt = tmp_path("early.safetensors");
	recorder rec = { .ckpt = ckpt };
	chain_train_options o = quiet_options(100, 100, 2);
	o.optim.lr = 0.02;
	o.patience = 3;
	o.checkpoint_path = ckpt;
	o.progress = record;
	o.progress_user = &rec;
	chain_train_result r;
	train_ok(&bern, theta, &tr, &va, &o, &r);

	assert_int_equal(r.stop, CHAIN_STOP_EARLY);
	assert_int_equal(rec.stop, CHAIN_STOP_EARLY);
	assert_true(r.best_epoch >= 2);                 /* it did improve for a while */
	assert_int_equal(r.last_epoch, r.best_epoch + 3);
	assert_int_equal(rec.epochs_seen, r.last_epoch);
	assert_int_equal(rec.starts, 1);
	assert_int_equal(rec.ends, 1);
	for (size_t e = 0; e <= r.last_epoch; e++)
		assert_true(rec.valid[e] >= r.best_valid);
	assert_true(rec.valid[r.best_epoch] == r.best_valid);
	assert_true(rec.valid[r.last_epoch] > r.best_valid);

	/* the returned params are the best ones: re-evaluated, the same bits */
	chain_eval_result ev;
	chain_error err = { "" };
	assert_int_equal(chain_eval_nll(&bern, theta, &va, 1, &ev, &err), 0);
	assert_true(ev.mean_nll == r.best_valid);
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, from_disk, NULL, NULL, 0, &err), 0);
	assert_memory_equal(theta, from_disk, sizeof theta);
	char value[64];
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, from_disk, "best_valid", value, sizeof value, &err), 0);
	assert_true(strtod(value, NULL) == r.best_valid);
	chain_dataset_free(&tr);
	chain_dataset_free(&va);
}

/* A progress callback that, after every epoch, replaces the checkpoint by
 * another file, as a second writer would (rename over it). */
static void replace_checkpoint(const chain_train_progress *p, void *user)
{
	if (p->event != CHAIN_TRAIN_EPOCH)
		return;
	const char *path = user;
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.other", path);
	FILE *f = fopen(tmp, "wb");
	assert_non_null(f);
	fputs("not a checkpoint", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* While training, the best params live only in the checkpoint file: the
 * trainer copies and reads back the file it wrote last (held open), so a
 * path replaced meanwhile changes nothing; without a checkpoint they are a
 * copy in memory.  All three runs return the same bits. */
static void test_train__best_params_in_checkpoint__path_replaced_meanwhile_same_result(void **state)
{
	const double p_train[NPIX] = { 0.9, 0.9, 0.9, 0.9 }, p_valid[NPIX] = { 0.7, 0.7, 0.7, 0.7 };
	chain_dataset tr = make_data(1000, p_train, 11), va = make_data(500, p_valid, 12);
	double plain[NPAR], replaced[NPAR], in_memory[NPAR];
	bern_init(plain, 1);
	memcpy(replaced, plain, sizeof plain);
	memcpy(in_memory, plain, sizeof plain);
	chain_train_options o = quiet_options(100, 100, 2);
	o.optim.lr = 0.02;
	o.patience = 3;
	chain_train_result r1, r2, r3;
	train_ok(&bern, in_memory, &tr, &va, &o, &r1);
	o.checkpoint_path = tmp_path("kept-plain.safetensors");
	train_ok(&bern, plain, &tr, &va, &o, &r2);
	o.checkpoint_path = tmp_path("kept-replaced.safetensors");
	o.progress = replace_checkpoint;
	o.progress_user = (void *)o.checkpoint_path;
	train_ok(&bern, replaced, &tr, &va, &o, &r3);
	assert_int_equal(r1.stop, CHAIN_STOP_EARLY);
	assert_true(r1.best_epoch < r1.last_epoch);      /* the kept params are not the last */
	assert_int_equal(r2.best_epoch, r1.best_epoch);
	assert_int_equal(r3.best_epoch, r1.best_epoch);
	assert_memory_equal(plain, in_memory, sizeof plain);
	assert_memory_equal(replaced, in_memory, sizeof plain);
	chain_dataset_free(&tr);
	chain_dataset_free(&va);
}

/* When every epoch is worse than the starting point, the starting point is
 * what is kept (and patience 0 runs every epoch anyway). */
static void test_train__never_better_than_start__start_kept_patience_0_runs_all(void **state)
{
	const double p_train[NPIX] = { 0.95, 0.95, 0.95, 0.95 }, p_valid[NPIX] = { 0.05, 0.05, 0.05, 0.05 };
	chain_dataset tr = make_data(200, p_train, 13), va = make_data(200, p_valid, 14);
	double theta[NPAR], start[NPAR];
	bern_init(theta, 1);
	memcpy(start, theta, sizeof theta);
	chain_train_options o = quiet_options(6, 50, 2);
	o.optim.lr = 0.05;
	o.patience = 0;
	chain_train_result r;
	train_ok(&bern, theta, &tr, &va, &o, &r);
	assert_int_equal(r.stop, CHAIN_STOP_EPOCHS);
	assert_int_equal(r.last_epoch, 6);
	assert_int_equal(r.best_epoch, 0);
	assert_memory_equal(theta, start, sizeof theta);
	chain_dataset_free(&tr);
	chain_dataset_free(&va);
}

/* A NaN loss stops training with where and what to do; the checkpoint of
 * the last finished epoch stays, and theta holds the same params. */
static void test_train__loss_becomes_nan__stops_and_last_good_checkpoint_stays(void **state)
{
	chain_dataset d = make_data(100, P_TRUE, 15);
	double theta[NPAR], from_disk[NPAR];
	bern_init(theta, 1);
	const char *ckpt = tmp_path("nan.safetensors");
	chain_train_options o = quiet_options(10, 10, 1);
	o.checkpoint_path = ckpt;
	recorder rec = { 0 };
	o.progress = record;
	o.progress_user = &rec;
	chain_train_result r;
	chain_error err = { "" };
	atomic_store(&bern_calls, 0);
	bern_nan_call = 25; /* 10 steps an epoch: epoch 3, batch 6 */
	int rc = chain_train(&bern, theta, &d, NULL, &o, &r, &err);
	bern_nan_call = -1;
	assert_int_equal(rc, -1);
	assert_int_equal(r.stop, CHAIN_STOP_NONFINITE);
	assert_int_equal(rec.stop, CHAIN_STOP_NONFINITE);
	assert_int_equal(rec.ends, 1);
	assert_contains(err.msg, "loss became NaN at epoch 3, batch 6; the last good checkpoint is in ");
	assert_contains(err.msg, ckpt);
	assert_contains(err.msg, "try a smaller --lr");
	assert_int_equal(r.last_epoch, 2);
	char value[64];
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, from_disk, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "2");
	assert_memory_equal(theta, from_disk, sizeof theta);
	chain_dataset_free(&d);
}

/* A NaN in the very first step: the checkpoint written at the start (the
 * initial params) is the last good one. */
static void test_train__nan_in_first_step__initial_checkpoint_stays(void **state)
{
	chain_dataset d = make_data(50, P_TRUE, 16);
	double theta[NPAR], start[NPAR], from_disk[NPAR];
	bern_init(theta, 4);
	memcpy(start, theta, sizeof theta);
	const char *ckpt = tmp_path("nan0.safetensors");
	chain_train_options o = quiet_options(3, 10, 1);
	o.checkpoint_path = ckpt;
	chain_error err = { "" };
	atomic_store(&bern_calls, 0);
	bern_nan_call = 0;
	int rc = chain_train(&bern, theta, &d, NULL, &o, NULL, &err);
	bern_nan_call = -1;
	assert_int_equal(rc, -1);
	assert_contains(err.msg, "loss became NaN at epoch 1, batch 1");
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, from_disk, NULL, NULL, 0, &err), 0);
	assert_memory_equal(from_disk, start, sizeof start);
	assert_memory_equal(theta, start, sizeof start);
	chain_dataset_free(&d);
}

/* Plain SGD has no state, and epoch e's shuffle depends only on (seed, e):
 * two epochs, a checkpoint, two more from it give the same bits as four in
 * one go. */
static void test_train__resume_from_checkpoint__continues_the_same_run(void **state)
{
	chain_dataset d = make_data(300, P_TRUE, 17);
	double once[NPAR], twice[NPAR];
	chain_train_options o = quiet_options(4, 32, 2);
	chain_optim_defaults(&o.optim, CHAIN_OPTIM_SGD);
	o.optim.momentum = 0;
	o.optim.lr = 0.1;
	o.seed = 9;
	chain_train_result r;
	bern_init(once, 2);
	train_ok(&bern, once, &d, NULL, &o, &r);

	const char *ckpt = tmp_path("resume.safetensors");
	bern_init(twice, 2);
	o.epochs = 2;
	o.checkpoint_path = ckpt;
	train_ok(&bern, twice, &d, NULL, &o, &r);
	memset(twice, 0, sizeof twice);
	char value[64];
	chain_error err = { "" };
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, twice, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "2");
	o.start_epoch = 3;
	o.epochs = 4;
	train_ok(&bern, twice, &d, NULL, &o, &r);
	assert_memory_equal(once, twice, sizeof once);
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, twice, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "4");
	chain_dataset_free(&d);
}

/* The checkpoint is on disk from the start and rewritten after each epoch
 * (the recorder loads it at every report); the CSV log has a header and a
 * line per epoch, appended to when resuming. */
static void test_train__checkpoint_and_log__written_every_epoch(void **state)
{
	chain_dataset tr = make_data(200, P_TRUE, 18), va = make_data(100, P_TRUE, 19);
	double theta[NPAR];
	bern_init(theta, 1);
	const char *ckpt = tmp_path("every.safetensors"), *log = tmp_path("every.csv");
	recorder rec = { .ckpt = ckpt };
	chain_train_options o = quiet_options(3, 25, 2);
	o.checkpoint_path = ckpt;
	o.log_path = log;
	o.progress = record;
	o.progress_user = &rec;
	chain_train_result r;
	train_ok(&bern, theta, &tr, &va, &o, &r);
	assert_int_equal(rec.epochs_seen, 3);
	assert_int_equal(rec.batches_seen, 3 * 8);
	o.start_epoch = 4;
	o.epochs = 5;
	o.log_append = 1;
	train_ok(&bern, theta, &tr, NULL, &o, &r);

	FILE *f = fopen(log, "r");
	assert_non_null(f);
	char line[256];
	assert_non_null(fgets(line, sizeof line, f));
	assert_string_equal(line, "epoch,train_nll,valid_nll,seconds\n");
	for (int e = 1; e <= 5; e++) {
		assert_non_null(fgets(line, sizeof line, f));
		int epoch;
		double tn, sec;
		char rest[128];
		assert_int_equal(sscanf(line, "%d,%lf,%127s", &epoch, &tn, rest), 3);
		assert_int_equal(epoch, e);
		assert_true(tn > 0 && tn < 3);
		if (e <= 3) {
			double vn;
			assert_int_equal(sscanf(rest, "%lf,%lf", &vn, &sec), 2);
			assert_true(vn > 0 && vn < 3);
		} else {
			assert_int_equal(sscanf(rest, ",%lf", &sec), 1); /* no validation: empty field */
		}
		assert_true(sec >= 0);
	}
	assert_null(fgets(line, sizeof line, f));
	fclose(f);
	char value[64];
	chain_error err = { "" };
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, theta, "best_valid", value, sizeof value, &err), 0);
	assert_string_equal(value, "none");
	chain_dataset_free(&tr);
	chain_dataset_free(&va);
}

/* A progress callback that, once the initial checkpoint is in place,
 * replaces it by a directory that is not empty: the next checkpoint's
 * rename over it fails. */
static void block_checkpoint(const chain_train_progress *p, void *user)
{
	if (p->event != CHAIN_TRAIN_START)
		return;
	const char *path = user;
	char inside[600];
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0777), 0);
	snprintf(inside, sizeof inside, "%s/keep", path);
	FILE *f = fopen(inside, "w");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
}

/* The commit of an epoch's checkpoint runs on a thread while the next epoch
 * computes; when it fails, the run still fails with the file's name (at the
 * next checkpoint, or at the end when it was the last), leaves no temp file
 * behind, and hands back the params of the last checkpoint committed (here
 * the initial ones, from the file it still holds open). */
static void test_train__checkpoint_commit_fails_in_background__reported_and_last_good_kept(void **state)
{
	chain_dataset d = make_data(200, P_TRUE, 21);
	for (size_t epochs = 1; epochs <= 3; epochs += 2) {
		double theta[NPAR], start[NPAR];
		bern_init(theta, 5);
		memcpy(start, theta, sizeof theta);
		char name[64];
		snprintf(name, sizeof name, "blocked-%zu.safetensors", epochs);
		const char *ckpt = tmp_path(name);
		chain_train_options o = quiet_options(epochs, 50, 2);
		o.checkpoint_path = ckpt;
		o.progress = block_checkpoint;
		o.progress_user = (void *)ckpt;
		chain_train_result r;
		chain_error err = { "" };
		assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, &r, &err), -1);
		assert_contains(err.msg, ckpt);
		assert_contains(err.msg, "cannot replace");
		assert_int_equal(r.stop, CHAIN_STOP_ERROR);
		assert_int_equal(r.last_epoch, 1);
		assert_memory_equal(theta, start, sizeof start);
		/* no temp file left beside it */
		char tmp_prefix[128];
		snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp-", name);
		DIR *dir = opendir(tmpdir);
		assert_non_null(dir);
		for (struct dirent *e; (e = readdir(dir));)
			if (strncmp(e->d_name, tmp_prefix, strlen(tmp_prefix)) == 0)
				fail_msg("temp file %s left behind", e->d_name);
		closedir(dir);
	}
	chain_dataset_free(&d);
}

/* Whether a temp file of `name` (atomic_file.c's "NAME.tmp-...") is left
 * in the test's directory. */
static int temp_left(const char *name)
{
	char prefix[128];
	snprintf(prefix, sizeof prefix, "%s.tmp-", name);
	DIR *dir = opendir(tmpdir);
	assert_non_null(dir);
	int found = 0;
	for (struct dirent *e; (e = readdir(dir));)
		found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(dir);
	return found;
}

/* A run that stops before its first epoch is logged (a NaN in the first
 * step) leaves the log as it was: the previous file whole, or no file.  The
 * log was opened with fopen "w" at the start and held only its header
 * then.  One that logs an epoch before it stops keeps that line. */
static void test_train__run_fails_before_first_epoch__previous_log_stays(void **state)
{
	chain_dataset d = make_data(50, P_TRUE, 23);
	double theta[NPAR];
	const char *log = tmp_path("kept.csv"), *fresh = tmp_path("fresh.csv");
	const char previous[] = "epoch,train_nll,valid_nll,seconds\n1,0.5,,0.001\n";
	FILE *f = fopen(log, "w");
	assert_non_null(f);
	fputs(previous, f);
	assert_int_equal(fclose(f), 0);
	for (int append = 0; append <= 1; append++)
		for (int k = 0; k < 2; k++) {
			bern_init(theta, 4);
			chain_train_options o = quiet_options(3, 10, 1);
			o.checkpoint_path = tmp_path("log-nan.safetensors");
			o.log_path = k ? fresh : log;
			o.log_append = append;
			chain_error err = { "" };
			atomic_store(&bern_calls, 0);
			bern_nan_call = 0;
			assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, NULL, &err), -1);
			bern_nan_call = -1;
			assert_contains(err.msg, "loss became NaN at epoch 1, batch 1");
		}
	char text[256] = "";
	f = fopen(log, "r");
	assert_non_null(f);
	text[fread(text, 1, sizeof text - 1, f)] = '\0';
	fclose(f);
	assert_string_equal(text, previous);
	struct stat st;
	assert_int_equal(stat(fresh, &st), -1);
	assert_false(temp_left("kept.csv"));
	assert_false(temp_left("fresh.csv"));

	/* a NaN in epoch 2: epoch 1's line is there, the header once */
	bern_init(theta, 4);
	chain_train_options o = quiet_options(3, 10, 1);
	o.log_path = log;
	chain_error err = { "" };
	atomic_store(&bern_calls, 0);
	bern_nan_call = 7; /* 5 steps an epoch */
	assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, NULL, &err), -1);
	bern_nan_call = -1;
	assert_contains(err.msg, "loss became NaN at epoch 2");
	f = fopen(log, "r");
	assert_non_null(f);
	char line[256];
	assert_non_null(fgets(line, sizeof line, f));
	assert_string_equal(line, "epoch,train_nll,valid_nll,seconds\n");
	assert_non_null(fgets(line, sizeof line, f));
	assert_int_equal(strncmp(line, "1,", 2), 0);
	assert_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_false(temp_left("kept.csv"));
	chain_dataset_free(&d);
}

static void test_train__bad_input__refused_with_reason(void **state)
{
	chain_dataset d = make_data(10, P_TRUE, 20);
	double theta[NPAR] = { 0 };
	chain_train_options o = quiet_options(2, 5, 1);
	chain_error err = { "" };

	chain_model free_model = bern;
	free_model.objective = CHAIN_OBJ_FREE;
	assert_int_equal(chain_train(&free_model, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "use chain optimize");

	/* versions this runtime cannot read: before the first, after its own */
	chain_model future = bern;
	future.abi_version = CHAIN_ABI_VERSION + 1;
	assert_int_equal(chain_train(&future, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "ABI version 4, this runtime reads 1 to 3: rebuild it");
	future.abi_version = 0;
	assert_int_equal(chain_train(&future, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "ABI version 0");

	chain_dataset narrow = { .rows = 10, .cols = 3, .values = d.values };
	assert_int_equal(chain_train(&bern, theta, &narrow, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "3 values");
	assert_contains(err.msg, "expects 4");

	o.start_epoch = 3;
	assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "nothing to train");

	o = quiet_options(2, 5, 1);
	o.optim.lr = -1;
	assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "learning rate");

	o = quiet_options(2, 5, 1);
	o.checkpoint_path = tmp_path("no-such-dir/x.safetensors");
	assert_int_equal(chain_train(&bern, theta, &d, NULL, &o, NULL, &err), -1);
	assert_contains(err.msg, "no-such-dir");
	chain_dataset_free(&d);
}

/* On a terminal the printer redraws one line with \r (throttled to ten a
 * second) and clears it before the epoch line; through a pipe it prints the
 * epoch lines only. */
static void test_progress_printer__tty_redraws_pipe_prints_epochs(void **state)
{
	for (int tty = 0; tty < 2; tty++) {
		FILE *f = tmpfile();
		assert_non_null(f);
		chain_progress_printer pp;
		chain_progress_printer_init(&pp, f);
		pp.tty = tty;
		chain_train_progress p = {
			.event = CHAIN_TRAIN_BATCH, .epoch = 1, .epochs = 2, .batches = 10, .train_nll = 1.5,
			.valid_nll = NAN, .best_valid = NAN, .rows_per_second = 1000, .eta_seconds = 75,
		};
		for (size_t b = 1; b <= 10; b++) {
			p.batch = b;
			p.elapsed = 0.05 * (double)b; /* a redraw every other batch, and the last */
			chain_train_print_progress(&p, &pp);
		}
		p.event = CHAIN_TRAIN_EPOCH;
		p.improved = 1;
		p.epoch_seconds = 0.5;
		chain_train_print_progress(&p, &pp);
		p.event = CHAIN_TRAIN_END;
		chain_train_print_progress(&p, &pp);
		rewind(f);
		char text[4096];
		size_t n = fread(text, 1, sizeof text - 1, f);
		text[n] = '\0';
		fclose(f);
		if (tty) {
			assert_contains(text, "\repoch 1/2  batch 2/10  loss 1.5000  1000 img/s  ETA 1m15s\033[K");
			assert_contains(text, "batch 10/10");
			assert_null(strstr(text, "batch 3/10"));
			assert_contains(text, "\r\033[Kepoch 1/2  train NLL 1.5000  0.5s\n");
		} else {
			assert_string_equal(text, "epoch 1/2  train NLL 1.5000  0.5s\n");
		}
	}
}

/* ---- evaluation ------------------------------------------------------ */

static void test_eval__nll_and_std_err__match_direct_sums_for_any_threads(void **state)
{
	chain_dataset d = make_data(1001, P_TRUE, 21);
	double theta[NPAR];
	bern_init(theta, 1);
	for (size_t i = 0; i < NPIX; i++)
		theta[i] = 0.3 * (double)i - 0.5;
	double sum = 0, ss = 0;
	for (size_t r = 0; r < d.rows; r++)
		sum -= bern_logp(theta, d.values + r * NPIX);
	double mean = sum / (double)d.rows;
	for (size_t r = 0; r < d.rows; r++) {
		double x = -bern_logp(theta, d.values + r * NPIX) - mean;
		ss += x * x;
	}
	double se = sqrt(ss / (double)(d.rows - 1)) / sqrt((double)d.rows);

	chain_eval_result a, b;
	chain_error err = { "" };
	assert_int_equal(chain_eval_nll(&bern, theta, &d, 1, &a, &err), 0);
	assert_int_equal(chain_eval_nll(&bern, theta, &d, 4, &b, &err), 0);
	assert_memory_equal(&a, &b, sizeof a);
	assert_int_equal(a.rows, 1001);
	assert_close(a.mean_nll, mean, 1e-12);
	assert_close(a.std_err, se, 1e-12);
	assert_close(a.bits_per_dim, mean / (4 * log(2.0)), 1e-12);

	float theta32[NPAR];
	for (size_t j = 0; j < NPAR; j++)
		theta32[j] = (float)theta[j];
	assert_int_equal(chain_eval_nll(&bern32, theta32, &d, 3, &b, &err), 0);
	assert_close(b.mean_nll, mean, 1e-5);
	chain_dataset_free(&d);
}

/* ---- the commands ---------------------------------------------------- */

static char out_text[1 << 16], err_text[1 << 16];

static void slurp_into(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Runs a command with stdout and stderr captured into out_text/err_text.
 * The argument list ends with NULL. */
static int run(int (*cmd)(const chain_model *, int, char **), const chain_model *m, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	va_start(ap, m);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	const char *opath = tmp_path("stdout.txt"), *epath = tmp_path("stderr.txt");
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	int fo = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
	dup2(fo, 1);
	dup2(fe, 2);
	close(fo);
	close(fe);
	int rc = cmd(m, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	slurp_into(opath, out_text, sizeof out_text);
	slurp_into(epath, err_text, sizeof err_text);
	return rc;
}

/* A command's exit status, with its stderr in the message when it is not
 * the expected one. */
#define assert_rc(call, want) \
	do { \
		int rc_ = (call); \
		if (rc_ != (want)) \
			fail_msg("exit status %d, expected %d; stderr: %s", rc_, (want), err_text); \
	} while (0)

static const char *write_data(const char *name, size_t rows, const double p[NPIX], uint64_t seed)
{
	chain_dataset d = make_data(rows, p, seed);
	chain_error err = { "" };
	const char *path = tmp_path(name);
	if (chain_data_save(path, &d, &err) != 0)
		fail_msg("%s", err.msg);
	chain_dataset_free(&d);
	return path;
}

static void test_cli__help__prints_usage_and_exits_0(void **state)
{
	assert_rc(run(cmd_train, NULL, "train", "--help", NULL), 0);
	assert_contains(out_text, "usage: chain train");
	assert_contains(out_text, "--patience");
	assert_rc(run(cmd_eval, NULL, "eval", "-h", NULL), 0);
	assert_contains(out_text, "usage: chain eval");
	assert_rc(run(cmd_sample, &bern, "sample", "--lr", "x", "--help", NULL), 0);
	assert_contains(out_text, "usage: chain sample");
}

static void test_cli__bad_flags__one_clear_message_exit_1(void **state)
{
	const char *data = write_data("flags.amat", 20, P_TRUE, 22);
	char *d = (char *)data, *o = (char *)tmp_path("flags.safetensors");
	struct {
		const char *flag, *value, *says;
	} cases[] = {
		{ "--lr", "abc", "--lr: expected a positive number, got 'abc'" },
		{ "--lr", "-0.1", "--lr: expected a positive number, got '-0.1'" },
		{ "--lr", "nan", "--lr: expected a positive number, got 'nan'" },
		{ "--epochs", "0", "--epochs: expected a positive integer, got '0'" },
		{ "--batch", "12x", "--batch: expected a positive integer, got '12x'" },
		{ "--threads", "0", "--threads: expected an integer from 1 to 1024, got '0'" },
		{ "--threads", " 3", "--threads: expected an integer from 1 to 1024, got ' 3'" },
		{ "--epochs", "+2", "--epochs: expected a positive integer, got '+2'" },
		{ "--batch", "10 ", "--batch: expected a positive integer, got '10 '" },
		{ "--lr", "+0.1", "--lr: expected a positive number, got '+0.1'" },
		{ "--lr", " 0.1", "--lr: expected a positive number, got ' 0.1'" },
		{ "--lr", "0x1p-3", "--lr: expected a positive number, got '0x1p-3'" },
		{ "--lr", "1e-400", "--lr: expected a positive number, got '1e-400'" },
		{ "--binarize", "+0.5", "--binarize: expected a threshold (a number such as 0.5) or 'stochastic', got '+0.5'" },
		{ "--seed", "-1", "--seed: expected a non-negative integer" },
		{ "--patience", "two", "--patience: expected a non-negative integer, got 'two'" },
		{ "--optimizer", "lbfgs", "--optimizer: expected sgd or adam, got 'lbfgs'" },
		{ "--binarize", "half", "--binarize: expected a threshold" },
		{ "--momentum", "1", "--momentum: expected a number in [0, 1), got '1'" },
		{ "--frobnicate", "1", "unknown flag '--frobnicate'" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		assert_rc(run(cmd_train, &bern, "train", "--data", d, "-o", o, cases[k].flag, cases[k].value, NULL), 1);
		assert_contains(err_text, "chain train: ");
		assert_contains(err_text, cases[k].says);
	}
	assert_rc(run(cmd_train, &bern, "train", "--data", d, "-o", o, "--lr=abc", NULL), 1);
	assert_contains(err_text, "--lr: expected a positive number, got 'abc'");
	assert_rc(run(cmd_train, &bern, "train", "--data", d, "-o", NULL), 1);
	assert_contains(err_text, "-o: expected a value");
	assert_rc(run(cmd_train, &bern, "train", "-o", o, NULL), 1);
	assert_contains(err_text, "missing --data");
	assert_rc(run(cmd_train, &bern, "train", "--data", d, NULL), 1);
	assert_contains(err_text, "missing -o");
	assert_rc(run(cmd_train, &bern, "train", "--data", d, "-o", o, "--momentum", "0.5", NULL), 1);
	assert_contains(err_text, "--momentum applies to --optimizer sgd");
	assert_rc(run(cmd_train, &bern, "train", "--data", d, "-o", o, "stray", NULL), 1);
	assert_contains(err_text, "unexpected argument 'stray'");
	assert_rc(run(cmd_train, &bern, "train", "--data", tmp_path("missing.amat"), "-o", o, NULL), 1);
	assert_contains(err_text, "missing.amat");
	assert_rc(run(cmd_eval, &bern, "eval", "--data", d, NULL), 1);
	assert_contains(err_text, "missing --params");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", o, "-n", "0", NULL), 1);
	assert_contains(err_text, "-n: expected a positive integer, got '0'");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", o, "--given", d, NULL), 1);
	assert_contains(err_text, "--given needs --prefix");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", o, "-o", "x.jpg", NULL), 1);
	assert_contains(err_text, "unknown extension");

	chain_model free_model = bern;
	free_model.objective = CHAIN_OBJ_FREE;
	assert_rc(run(cmd_train, &free_model, "train", "--data", d, "-o", o, NULL), 1);
	assert_contains(err_text, "use chain optimize");
}

/* Train, evaluate and sample through the commands, as a user would. */
static void test_cli__train_eval_sample__end_to_end(void **state)
{
	char *tr = (char *)write_data("e2e-train.amat", 600, P_TRUE, 23);
	char *va = (char *)write_data("e2e-valid.amat", 200, P_TRUE, 24);
	char *ckpt = (char *)tmp_path("e2e.safetensors"), *log = (char *)tmp_path("e2e.csv");
	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "--valid", va, "-o", ckpt, "--epochs", "8",
	             "--batch", "40", "--lr", "0.05", "--threads", "2", "--seed", "3", "--log", log, NULL), 0);
	/* piped stderr: the seed at the start, one plain line per epoch, no \r */
	assert_contains(err_text, "seed 3");
	assert_contains(err_text, "epoch 1/8  train NLL ");
	assert_contains(err_text, "epoch 8/8  train NLL ");
	assert_null(strchr(err_text, '\r'));
	assert_contains(err_text, "saved to ");
	assert_string_equal(out_text, "");

	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "-o", tmp_path("q.safetensors"), "--epochs", "1",
	             "--quiet", NULL), 0);
	assert_string_equal(err_text, "");

	/* eval: the same numbers as the library */
	assert_rc(run(cmd_eval, &bern, "eval", "--params", ckpt, "--data", va, NULL), 0);
	double theta[NPAR];
	chain_error err = { "" };
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, theta, NULL, NULL, 0, &err), 0);
	chain_dataset vd;
	assert_int_equal(chain_data_load(va, NULL, &vd, &err), 0);
	chain_eval_result ev;
	assert_int_equal(chain_eval_nll(&bern, theta, &vd, 1, &ev, &err), 0);
	char want[256];
	snprintf(want, sizeof want, "test NLL: %.2f nats (%.4f bits/dim) +- %.2f over 200 rows\n", ev.mean_nll,
	         ev.bits_per_dim, ev.std_err);
	assert_string_equal(out_text, want);

	/* sample: rows of 0/1 to a data file, deterministic in the seed */
	char *s1 = (char *)tmp_path("s1.amat"), *s2 = (char *)tmp_path("s2.npy");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, "-n", "50", "--seed", "4", "-o", s1, NULL), 0);
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, "-n", "50", "--seed", "4", "-o", s2, NULL), 0);
	chain_dataset a, b;
	assert_int_equal(chain_data_load(s1, NULL, &a, &err), 0);
	assert_int_equal(chain_data_load(s2, NULL, &b, &err), 0);
	assert_int_equal(a.rows, 50);
	assert_int_equal(a.cols, NPIX);
	assert_memory_equal(a.values, b.values, 50 * NPIX * sizeof(double));
	assert_int_equal(chain_data_check(&a, &bern, s1, &err), 0);
	chain_dataset_free(&a);
	chain_dataset_free(&b);

	/* without -o: text rows on stdout, 16 by default */
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, NULL), 0);
	size_t lines = 0;
	for (const char *c = out_text; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, 16);
	assert_true(out_text[1] == ' ' && (out_text[0] == '0' || out_text[0] == '1'));

	/* --given: the first K positions of the order (pixels 3 and 2) are kept */
	char *s3 = (char *)tmp_path("s3.amat");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, "--given", va, "--prefix", "2", "-n",
	             "30", "-o", s3, NULL), 0);
	assert_int_equal(chain_data_load(s3, NULL, &a, &err), 0);
	assert_int_equal(a.rows, 30);
	for (size_t r = 0; r < 30; r++) {
		assert_true(a.values[r * NPIX + 3] == vd.values[r * NPIX + 3]);
		assert_true(a.values[r * NPIX + 2] == vd.values[r * NPIX + 2]);
	}
	chain_dataset_free(&a);

	/* PNG grids, plain and inpainted */
	char *png = (char *)tmp_path("s.png");
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, "-n", "9", "-o", png, NULL), 0);
	unsigned char magic[8];
	FILE *f = fopen(png, "rb");
	assert_non_null(f);
	assert_int_equal(fread(magic, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
	assert_rc(run(cmd_sample, &bern, "sample", "--params", ckpt, "--given", va, "--prefix", "1", "-o", png,
	             NULL), 0);
	assert_rc(run(cmd_sample, &bern_split, "sample", "--params", ckpt, "-o", png, NULL), 1);
	assert_contains(err_text, "PNG needs one square image variable; use .amat or .npy");
	chain_dataset_free(&vd);
}

static void test_cli__loss_becomes_nan__exit_1_with_advice(void **state)
{
	char *tr = (char *)write_data("nan-train.amat", 100, P_TRUE, 25);
	char *ckpt = (char *)tmp_path("cli-nan.safetensors");
	atomic_store(&bern_calls, 0);
	bern_nan_call = 17;
	int rc = run(cmd_train, &bern, "train", "--data", tr, "-o", ckpt, "--batch", "10", "--threads", "1",
	             "--epochs", "5", NULL);
	bern_nan_call = -1;
	assert_int_equal(rc, 1);
	char want[600];
	snprintf(want, sizeof want, "chain train: loss became NaN at epoch 2, batch 8; the last good checkpoint is in %s; try a smaller --lr",
	         ckpt);
	assert_contains(err_text, want);
	double theta[NPAR];
	chain_error err = { "" };
	char value[16];
	assert_int_equal(chain_checkpoint_load(ckpt, &bern, theta, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "1");
}

static void test_cli__resume__continues_at_the_checkpoint_epoch(void **state)
{
	char *tr = (char *)write_data("res-train.amat", 100, P_TRUE, 26);
	char *a = (char *)tmp_path("res-a.safetensors"), *b = (char *)tmp_path("res-b.safetensors");
	char *log = (char *)tmp_path("res.csv");
	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "-o", a, "--epochs", "2", "--seed", "5",
	             "--log", log, NULL), 0);
	/* --epochs 2 after a checkpoint of epoch 2: epochs 3 and 4 */
	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "-o", b, "--epochs", "2", "--resume", a,
	             "--log", log, NULL), 0);
	assert_contains(err_text, "seed 5");              /* the checkpoint's seed */
	assert_contains(err_text, "resuming from");
	assert_contains(err_text, "epoch 3/4");
	assert_null(strstr(err_text, "epoch 1/4"));
	double theta[NPAR];
	chain_error err = { "" };
	char value[16];
	assert_int_equal(chain_checkpoint_load(b, &bern, theta, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "4");
	slurp_into(log, out_text, sizeof out_text);
	assert_contains(out_text, "epoch,train_nll,valid_nll,seconds\n1,");
	assert_contains(out_text, "\n4,");
	assert_null(strstr(out_text + 1, "epoch,"));      /* one header */

	/* the same path for --resume and -o: the file moves on to epoch 5 */
	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "-o", b, "--epochs", "1", "--resume", b, "--quiet",
	              NULL), 0);
	assert_int_equal(chain_checkpoint_load(b, &bern, theta, "epoch", value, sizeof value, &err), 0);
	assert_string_equal(value, "5");
	assert_rc(run(cmd_train, &bern, "train", "--data", tr, "-o", b, "--resume", tr, NULL), 1);
	assert_contains(err_text, "--resume");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_train__bernoulli_pixels__converge_to_empirical_frequencies),
		cmocka_unit_test(test_train__sgd_momentum__converges_too),
		cmocka_unit_test(test_train__f32_model__trained_in_double_returned_as_float),
		cmocka_unit_test(test_train__same_seed_and_threads__bit_identical),
		cmocka_unit_test(test_train__compact_data__same_bits_as_doubles),
		cmocka_unit_test(test_train__valid_worsens__early_stop_keeps_best_params),
		cmocka_unit_test(test_train__best_params_in_checkpoint__path_replaced_meanwhile_same_result),
		cmocka_unit_test(test_train__never_better_than_start__start_kept_patience_0_runs_all),
		cmocka_unit_test(test_train__loss_becomes_nan__stops_and_last_good_checkpoint_stays),
		cmocka_unit_test(test_train__nan_in_first_step__initial_checkpoint_stays),
		cmocka_unit_test(test_train__run_fails_before_first_epoch__previous_log_stays),
		cmocka_unit_test(test_train__resume_from_checkpoint__continues_the_same_run),
		cmocka_unit_test(test_train__checkpoint_and_log__written_every_epoch),
		cmocka_unit_test(test_train__checkpoint_commit_fails_in_background__reported_and_last_good_kept),
		cmocka_unit_test(test_train__bad_input__refused_with_reason),
		cmocka_unit_test(test_progress_printer__tty_redraws_pipe_prints_epochs),
		cmocka_unit_test(test_eval__nll_and_std_err__match_direct_sums_for_any_threads),
		cmocka_unit_test(test_cli__help__prints_usage_and_exits_0),
		cmocka_unit_test(test_cli__bad_flags__one_clear_message_exit_1),
		cmocka_unit_test(test_cli__train_eval_sample__end_to_end),
		cmocka_unit_test(test_cli__loss_becomes_nan__exit_1_with_advice),
		cmocka_unit_test(test_cli__resume__continues_at_the_checkpoint_epoch),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

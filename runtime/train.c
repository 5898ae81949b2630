/* train.c -- the training loop and NLL evaluation, data-parallel over
 * pthreads with results that do not depend on timing.
 *
 * Layout: the thread pool is pool.c's (the caller is thread 0, so one
 * thread means no pthreads at all); evaluation (logp_batch over contiguous chunks, sums in
 * row order); the trainer (one step = two pool phases: gradients per
 * chunk of rows, then per slice of theta the reduction in fixed thread order
 * fused with the optimizer update, a cache-sized chunk at a time), the epoch
 * loop with validation, early stopping, checkpoints and the CSV log; and a
 * ready-made progress printer.
 *
 * Everything the optimizer sees is double, whatever the model's precision:
 * an f32 model is trained on a double master copy of theta that is rounded
 * to float for the kernels after each step, and its float gradients are
 * summed in double.
 *
 * Memory: the data, the caller's theta (trained in place), Adam's two
 * moments, the penalty gradient and one gradient per thread (the reduced
 * gradient only ever exists a chunk at a time); an f32 model adds its double
 * master copy, and its penalty gradient is float.  The best params are not
 * kept in memory when there is a checkpoint file: they live in the file
 * (checkpoint_fd.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain/alloc.h"
#include "chain/checkpoint.h"
#include "chain/rng.h"
#include "chain/train.h"
#include "vector_clones.h"

#include "atomic_bg.h"
#include "checkpoint_fd.h"
#include "pool.h"
#include "train_log.h"

#define MAX_THREADS 1024u
#define EVAL_BLOCK_ROWS 256u        /* rows per logp_batch call at most */
#define EVAL_BLOCK_REALS (1u << 20) /* ... and at most this many reals of rows */

/* Seconds on a clock that never jumps, for throughput and ETA. */
static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The t-th of T contiguous chunks of n items: the first n % T chunks get one
 * item more.  Written without n * t, which could overflow. */
static void chunk_of(size_t n, unsigned T, unsigned t, size_t *lo, size_t *hi)
{
	size_t base = n / T, rem = n % T;
	*lo = base * t + (t < rem ? t : rem);
	*hi = *lo + base + (t < rem ? 1 : 0);
}

unsigned chain_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > (long)MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* ------------------------------------------------------------------------
 * Model checks and the mask of used parameters
 * ------------------------------------------------------------------------ */

/* The descriptor's promises the runtime relies on: the ABI it was built
 * for, kernels of its precision, params inside theta.  A generated model
 * always keeps them; a hand-written one may not. */
int chain_model_check(const chain_model *m, const char *what, chain_error *err)
{
	if (!what)
		what = "chain";
	if (!m)
		return chain_error_set(err, "%s: no model given", what);
	const char *name = m->name ? m->name : "?";
	/* versions 1 and 2 are version 3 without its last fields
	 * (chain_model_loglik_only and chain_model_value_max read them for all) */
	if (m->abi_version < 1 || m->abi_version > CHAIN_ABI_VERSION)
		return chain_error_set(err, "%s: model %s was built for ABI version %u, this runtime reads 1 to %u: rebuild it",
		                       what, name, (unsigned)m->abi_version, (unsigned)CHAIN_ABI_VERSION);
	if (m->precision == CHAIN_F64 ? !m->f64 : m->precision == CHAIN_F32 ? !m->f32 : 1)
		return chain_error_set(err, "%s: model %s has no kernels for its precision", what, name);
	if (m->num_param_vars && !m->params)
		return chain_error_set(err, "%s: model %s lists %zu params but no descriptions", what, name,
		                       m->num_param_vars);
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		if (v->offset > m->num_params || v->size > m->num_params - v->offset)
			return chain_error_set(err, "%s: model %s: param %s (offset %zu, size %zu) lies outside theta of %zu reals",
			                       what, name, v->name ? v->name : "?", v->offset, v->size, m->num_params);
	}
	return 0;
}

/* Flattens the per-variable `used` flags into one flag per entry of theta,
 * for the trainer and the optimizer; no mask at all in the common case where
 * every entry is used. */
int chain_param_mask(const chain_model *m, uint8_t **mask, chain_error *err)
{
	*mask = NULL;
	int any = 0;
	for (size_t i = 0; i < m->num_param_vars; i++)
		any |= m->params[i].used != NULL;
	if (!any)
		return 0;
	uint8_t *k = malloc(m->num_params ? m->num_params : 1);
	if (!k)
		return chain_error_set(err, "out of memory for the mask of %zu params", m->num_params);
	memset(k, 1, m->num_params);
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		if (v->used)
			for (size_t e = 0; e < v->size; e++)
				k[v->offset + e] = v->used[e] != 0;
	}
	*mask = k;
	return 0;
}

/* Row r of d as d->cols reals of the kernels' precision (exact: bytes and
 * the 0/1 or small integers they hold convert without rounding). */
static void get_row(const chain_dataset *d, size_t r, int f32, void *dst)
{
	size_t D = d->cols;
	if (d->values && !f32) {
		memcpy(dst, d->values + r * D, D * sizeof(double));
	} else if (d->values) {
		for (size_t c = 0; c < D; c++)
			((float *)dst)[c] = (float)d->values[r * D + c];
	} else if (f32) {
		for (size_t c = 0; c < D; c++)
			((float *)dst)[c] = (float)d->bytes[r * D + c];
	} else {
		for (size_t c = 0; c < D; c++)
			((double *)dst)[c] = (double)d->bytes[r * D + c];
	}
}

/* ------------------------------------------------------------------------
 * Evaluation: per-row NLL by logp_batch over contiguous chunks
 * ------------------------------------------------------------------------ */

typedef struct eval_job {
	const chain_model *m;
	const void *theta;          /* model precision */
	const chain_dataset *d;
	double *nll;                /* d->rows: -log p of each row */
	size_t block;               /* rows per logp_batch call */
	void **obs;                 /* per-thread row blocks, model precision (NULL when
	                               f64 models read doubles in place) */
	float **out32;              /* f32 models: per-thread result blocks */
} eval_job;

/* Thread tid's chunk of rows, a block at a time: f64 models read double
 * data in place; otherwise the block is converted into the thread's own. */
static void eval_chunk(void *arg, unsigned tid, unsigned T)
{
	eval_job *j = arg;
	size_t lo, hi, D = j->d->cols;
	int f32 = j->m->precision == CHAIN_F32;
	chunk_of(j->d->rows, T, tid, &lo, &hi);
	for (size_t r = lo; r < hi; r += j->block) {
		size_t n = hi - r < j->block ? hi - r : j->block;
		const void *rows = j->obs ? j->obs[tid] : (const void *)(j->d->values + r * D);
		if (j->obs)
			for (size_t i = 0; i < n; i++)
				get_row(j->d, r + i, f32, (char *)j->obs[tid] + i * D * (f32 ? sizeof(float) : sizeof(double)));
		if (!f32) {
			j->m->f64->logp_batch(j->theta, rows, n, j->nll + r);
			for (size_t i = 0; i < n; i++)
				j->nll[r + i] = -j->nll[r + i];
		} else {
			float *out = j->out32[tid];
			j->m->f32->logp_batch(j->theta, rows, n, out);
			for (size_t i = 0; i < n; i++)
				j->nll[r + i] = -(double)out[i];
		}
	}
}

/* Evaluates on an existing pool; the mean and the spread are summed in row
 * order on the calling thread, so they do not depend on the pool size. */
static int eval_on_pool(chain_pool *p, const chain_model *m, const void *theta, const chain_dataset *d,
                        chain_eval_result *r, chain_error *err)
{
	memset(r, 0, sizeof *r);
	r->rows = d->rows;
	eval_job j = { .m = m, .theta = theta, .d = d };
	size_t D = d->cols ? d->cols : 1;
	j.block = EVAL_BLOCK_REALS / D;
	if (j.block > EVAL_BLOCK_ROWS)
		j.block = EVAL_BLOCK_ROWS;
	if (j.block == 0)
		j.block = 1;
	int rc = -1;
	j.nll = malloc((d->rows ? d->rows : 1) * sizeof *j.nll);
	if (!j.nll)
		goto oom;
	unsigned nt = p->n ? p->n : 1;
	int f32 = m->precision == CHAIN_F32;
	if (f32 || !d->values) {
		j.obs = calloc(nt, sizeof *j.obs);
		if (!j.obs)
			goto oom;
		for (unsigned t = 0; t < nt; t++)
			if (!(j.obs[t] = chain_calloc_aligned(j.block * D, f32 ? sizeof(float) : sizeof(double))))
				goto oom;
	}
	if (f32) {
		j.out32 = calloc(nt, sizeof *j.out32);
		if (!j.out32)
			goto oom;
		for (unsigned t = 0; t < nt; t++)
			if (!(j.out32[t] = malloc(j.block * sizeof(float))))
				goto oom;
	}
	chain_pool_run(p, eval_chunk, &j);

	double sum = 0;
	for (size_t i = 0; i < d->rows; i++)
		sum += j.nll[i];
	double mean = sum / (double)d->rows, ss = 0;
	for (size_t i = 0; i < d->rows; i++)
		ss += (j.nll[i] - mean) * (j.nll[i] - mean);
	r->mean_nll = mean;
	r->std_err = d->rows > 1 ? sqrt(ss / (double)(d->rows - 1) / (double)d->rows) : 0.0;
	if (!isfinite(mean))
		r->std_err = NAN;
	r->bits_per_dim = m->num_positions ? mean / ((double)m->num_positions * log(2.0)) : NAN;
	rc = 0;
	goto done;
oom:
	chain_error_set(err, "out of memory evaluating %zu rows", d->rows);
done:
	if (j.obs)
		for (unsigned t = 0; t < (p->n ? p->n : 1); t++)
			free(j.obs[t]);
	if (j.out32)
		for (unsigned t = 0; t < (p->n ? p->n : 1); t++)
			free(j.out32[t]);
	free(j.obs);
	free(j.out32);
	free(j.nll);
	return rc;
}

/* Checks that a data set can be fed to the model's kernels. */
static int check_dataset(const chain_model *m, const chain_dataset *d, const char *what,
                         chain_error *err)
{
	if (!d)
		return chain_error_set(err, "%s: no data given", what);
	if (d->cols != m->obs_size)
		return chain_error_set(err, "%s: rows have %zu values but model %s expects %zu per observation",
		                       what, d->cols, m->name ? m->name : "?", m->obs_size);
	if (d->rows == 0)
		return chain_error_set(err, "%s: no rows", what);
	if (!d->values && !d->bytes)
		return chain_error_set(err, "%s: no values", what);
	return 0;
}

/* A pool for one evaluation (no more threads than rows), then
 * eval_on_pool. */
int chain_eval_nll(const chain_model *m, const void *theta, const chain_dataset *d,
                   unsigned threads, chain_eval_result *r, chain_error *err)
{
	if (chain_model_check(m, "eval", err) != 0)
		return -1;
	if ((m->precision == CHAIN_F64 && !m->f64->logp_batch) ||
	    (m->precision == CHAIN_F32 && !m->f32->logp_batch))
		return chain_error_set(err, "eval: model %s has no logp_batch kernel", m->name ? m->name : "?");
	if (!theta)
		return chain_error_set(err, "eval: no parameters given");
	if (check_dataset(m, d, "eval", err) != 0)
		return -1;
	if (threads == 0)
		threads = chain_default_threads();
	if (threads > MAX_THREADS)
		return chain_error_set(err, "eval: %u threads asked for, at most %u", threads, MAX_THREADS);
	if (threads > d->rows)
		threads = (unsigned)d->rows;
	chain_pool p;
	if (chain_pool_start(&p, threads, err) != 0)
		return -1;
	chain_eval_result tmp;
	int rc = eval_on_pool(&p, m, theta, d, r ? r : &tmp, err);
	chain_pool_stop(&p);
	return rc;
}

/* ------------------------------------------------------------------------
 * The trainer: one step as two pool phases
 * ------------------------------------------------------------------------ */

/* Entries per chunk of the step's second phase: its gradient (doubles), the
 * per-thread gradients, the penalty gradient, theta, Adam's moments and the
 * float copy of a chunk, about 40 KiB at 512, stay in L1 between the chunk's
 * loops. */
#define STEP_CHUNK 512u

typedef struct trainer {
	const chain_model *m;
	int f32;
	size_t P, D;
	chain_pool pool;
	unsigned TG;            /* threads that compute gradients: min(pool size, batch) */
	double sign;            /* -1 when the model maximizes: we minimize sign * objective */
	chain_optim opt;
	const size_t *runs;     /* the runs of used entries, [runs[2i], runs[2i+1]): the
	                           optimizer's, or all_used when there is no mask */
	size_t nruns;
	size_t all_used[2];
	size_t *slice;          /* pool size + 1 bounds: thread t's entries of the step's
	                           second phase are [slice[t], slice[t+1]), as many used
	                           entries each as can be */

	double *theta64;        /* the master copy the optimizer updates: the caller's
	                           theta for f64 models, a buffer of ours for f32 */
	float *theta32;         /* f32 models: the caller's theta, what the kernels read */
	const void *theta_k;    /* theta64 or theta32 */

	/* the current step */
	const chain_dataset *data;
	const size_t *rows;     /* indices of this batch's rows in data */
	size_t B;
	void **obs;             /* TG blocks of ceil(batch / TG) rows, model precision */
	void **grad;            /* TG gradients of P reals, model precision, 0 on every used
	                           entry between steps (the second phase zeroes them as it
	                           reads them; unused entries are never read) */
	double *loglik;         /* TG sums of log p over the chunk */
	int penalty;            /* the objective has a penalty part: pen32/pen64 and pen_value
	                           are computed every step (else they stay NULL and 0) */
	float *pen32;           /* f32 models: P floats, the gradient of the penalty part
	                           of the objective */
	double *pen64;          /* f64 models: the same in P doubles */
	double pen_value;       /* the objective on 0 rows (= -penalty for a maximized loglik) */
	int *bad;               /* per pool thread: a non-finite gradient entry in its slice */
	double *bad_value;      /* ... the first of them */
} trainer;

/* Phase 1: thread t copies its chunk of the batch (converted to the
 * model's precision) and adds its loglik gradient into its own buffer,
 * which the previous step left zeroed; the last pool thread (the one with
 * the fewest rows, or none) then evaluates the objective on 0 rows, which
 * is the penalty part alone (the mean loglik of no rows is 0) with its
 * gradient, when the model has a penalty: without one that is P zeros
 * written, scaled and read back each step (FVSBN: 0.15-0.4 ms, a fifth of
 * the gradient of 50 rows). */
static void phase_gradients(void *arg, unsigned tid, unsigned T)
{
	trainer *tr = arg;
	if (tid < tr->TG) {
		size_t lo, hi, D = tr->D;
		chunk_of(tr->B, tr->TG, tid, &lo, &hi);
		size_t n = hi - lo;
		for (size_t i = 0; i < n; i++)
			get_row(tr->data, tr->rows[lo + i], tr->f32,
			        (char *)tr->obs[tid] + i * D * (tr->f32 ? sizeof(float) : sizeof(double)));
		if (tr->f32)
			tr->loglik[tid] = n ? (double)tr->m->f32->loglik_grad(tr->theta32, tr->obs[tid], n, tr->grad[tid]) : 0.0;
		else
			tr->loglik[tid] = n ? tr->m->f64->loglik_grad(tr->theta64, tr->obs[tid], n, tr->grad[tid]) : 0.0;
	}
	if (tid == T - 1 && tr->penalty) {
		if (tr->f32)
			tr->pen_value = (double)tr->m->f32->objective(tr->theta32, tr->obs[0], 0, tr->pen32);
		else
			tr->pen_value = tr->m->f64->objective(tr->theta64, tr->obs[0], 0, tr->pen64);
	}
}

/* The gradient of the loss on entries [a, a + n) into g: the TG buffers
 * summed in the order 0, 1, ..., TG-1 (whatever the slices and chunks),
 * divided by B, plus the penalty gradient, times the sign.  Each buffer is
 * zeroed as it is read, ready for the next step.  Returns nonzero if an
 * entry of g is NaN or infinite.  Plain loops over the chunk, which
 * vectorize. */
CHAIN_VECTOR_CLONES
static int reduce_chunk(const trainer *tr, size_t a, size_t n, double *restrict g)
{
	const double B = (double)tr->B, sign = tr->sign;
	if (tr->f32) {
		float *restrict g0 = (float *)tr->grad[0] + a;
		for (size_t i = 0; i < n; i++) {
			g[i] = (double)g0[i];
			g0[i] = 0;
		}
		for (unsigned s = 1; s < tr->TG; s++) {
			float *restrict gs = (float *)tr->grad[s] + a;
			for (size_t i = 0; i < n; i++) {
				g[i] += (double)gs[i];
				gs[i] = 0;
			}
		}
		if (tr->penalty) {
			const float *restrict pen = tr->pen32 + a;
			for (size_t i = 0; i < n; i++)
				g[i] = sign * (g[i] / B + (double)pen[i]);
		} else {
			for (size_t i = 0; i < n; i++)
				g[i] = sign * (g[i] / B);
		}
	} else {
		double *restrict g0 = (double *)tr->grad[0] + a;
		for (size_t i = 0; i < n; i++) {
			g[i] = g0[i];
			g0[i] = 0;
		}
		for (unsigned s = 1; s < tr->TG; s++) {
			double *restrict gs = (double *)tr->grad[s] + a;
			for (size_t i = 0; i < n; i++) {
				g[i] += gs[i];
				gs[i] = 0;
			}
		}
		if (tr->penalty) {
			const double *restrict pen = tr->pen64 + a;
			for (size_t i = 0; i < n; i++)
				g[i] = sign * (g[i] / B + pen[i]);
		} else {
			for (size_t i = 0; i < n; i++)
				g[i] = sign * (g[i] / B);
		}
	}
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= g[i] - g[i] != 0; /* NaN or an infinity */
	return bad;
}

/* theta32 = theta64 on [a, a + n): what the kernels read next step. */
CHAIN_VECTOR_CLONES
static void round_chunk(float *restrict t32, const double *restrict t64, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t32[i] = (float)t64[i];
}

/* Phase 2: thread t takes its slice of theta, the used entries only, a
 * chunk at a time: the chunk's loss gradient (reduce_chunk), the
 * optimizer's step on it, then the float copy, while the chunk is in
 * cache; one pass over each buffer instead of one per loop.  Every entry's
 * update depends only on its own values, so the bits do not depend on the
 * slices or the chunks.
 *
 * A non-finite gradient entry stops the thread before that chunk's update
 * and is reported by the caller, which stops training: the chunks already
 * updated here and in other threads do not matter, because a stopped run
 * hands back the kept params (the checkpoint or its copy, written only
 * after finished epochs), never the trainer's theta. */
static void phase_step(void *arg, unsigned tid, unsigned T)
{
	trainer *tr = arg;
	(void)T;
	const size_t lo = tr->slice[tid], hi = tr->slice[tid + 1];
	double g[STEP_CHUNK];
	tr->bad[tid] = 0;
	for (size_t r = 0; r < tr->nruns; r++) {
		size_t a = tr->runs[2 * r] > lo ? tr->runs[2 * r] : lo;
		size_t e = tr->runs[2 * r + 1] < hi ? tr->runs[2 * r + 1] : hi;
		for (; a < e; a += STEP_CHUNK) {
			size_t n = e - a < STEP_CHUNK ? e - a : STEP_CHUNK;
			if (reduce_chunk(tr, a, n, g)) {
				size_t i = 0;
				while (isfinite(g[i]))
					i++;
				tr->bad[tid] = 1;
				tr->bad_value[tid] = g[i];
				return;
			}
			chain_optim_update_chunk(&tr->opt, tr->theta64, g, a, a + n);
			if (tr->f32)
				round_chunk(tr->theta32 + a, tr->theta64 + a, n);
		}
	}
}

/* Thread t's bounds for phase 2: the used entries (U of them) cut into
 * chunk_of(U, T, t), so that FVSBN's triangle (a row of W has as many used
 * entries as its index) does not leave one thread with most of the work. */
static void plan_slices(trainer *tr, unsigned T)
{
	size_t U = 0;
	for (size_t r = 0; r < tr->nruns; r++)
		U += tr->runs[2 * r + 1] - tr->runs[2 * r];
	size_t r = 0, seen = 0;
	for (unsigned t = 0; t < T; t++) {
		size_t target, end;
		chunk_of(U, T, t, &target, &end);
		while (r < tr->nruns && seen + (tr->runs[2 * r + 1] - tr->runs[2 * r]) <= target) {
			seen += tr->runs[2 * r + 1] - tr->runs[2 * r];
			r++;
		}
		tr->slice[t] = t == 0 ? 0 : r < tr->nruns ? tr->runs[2 * r] + (target - seen) : tr->P;
	}
	tr->slice[T] = tr->P;
}

static void trainer_free(trainer *tr)
{
	chain_pool_stop(&tr->pool);
	if (tr->obs)
		for (unsigned t = 0; t < tr->TG; t++)
			free(tr->obs[t]);
	if (tr->grad)
		for (unsigned t = 0; t < tr->TG; t++)
			free(tr->grad[t]);
	free(tr->obs);
	free(tr->grad);
	free(tr->loglik);
	free(tr->pen32);
	free(tr->pen64);
	free(tr->bad);
	free(tr->bad_value);
	free(tr->slice);
	if (tr->f32)
		free(tr->theta64);
	chain_optim_free(&tr->opt);
	memset(tr, 0, sizeof *tr);
}

/* Allocates the buffers of a trainer with T pool threads for batches of at
 * most `batch` rows, training theta (the caller's, model precision) in
 * place. */
static int trainer_init(trainer *tr, const chain_model *m, void *theta, unsigned T, size_t batch,
                        const chain_optim_options *oo, const uint8_t *mask, chain_error *err)
{
	memset(tr, 0, sizeof *tr);
	tr->m = m;
	tr->f32 = m->precision == CHAIN_F32;
	tr->P = m->num_params;
	tr->D = m->obs_size;
	tr->sign = m->maximize ? -1.0 : 1.0;
	tr->penalty = !chain_model_loglik_only(m);
	tr->TG = T < batch ? T : (unsigned)batch;
	if (chain_optim_init(&tr->opt, oo, tr->P, mask, err) != 0)
		return -1;
	if (chain_pool_start(&tr->pool, T, err) != 0) {
		chain_optim_free(&tr->opt);
		return -1;
	}
	size_t rs = tr->f32 ? sizeof(float) : sizeof(double);
	size_t P1 = tr->P ? tr->P : 1, D1 = tr->D ? tr->D : 1;
	size_t chunk_rows = (batch + tr->TG - 1) / tr->TG;
	tr->obs = calloc(tr->TG, sizeof *tr->obs);
	tr->grad = calloc(tr->TG, sizeof *tr->grad);
	tr->loglik = calloc(tr->TG, sizeof *tr->loglik);
	tr->bad = calloc(T, sizeof *tr->bad);
	tr->bad_value = calloc(T, sizeof *tr->bad_value);
	tr->slice = calloc((size_t)T + 1, sizeof *tr->slice);
	if (tr->f32) {
		tr->theta32 = theta;
		tr->theta64 = calloc(P1, sizeof *tr->theta64);
		if (tr->penalty)
			tr->pen32 = chain_calloc_aligned(P1, sizeof *tr->pen32);
	} else {
		tr->theta64 = theta;
		if (tr->penalty)
			tr->pen64 = chain_calloc_aligned(P1, sizeof *tr->pen64);
	}
	int ok = tr->obs && tr->grad && tr->loglik && tr->bad && tr->bad_value && tr->slice && tr->theta64 &&
	         (!tr->penalty || (tr->f32 ? tr->pen32 != NULL : tr->pen64 != NULL));
	for (unsigned t = 0; ok && t < tr->TG; t++) {
		/* zeroed once here; then each step's phase 2 zeroes what it reads */
		tr->obs[t] = chain_calloc_aligned(chunk_rows * D1, rs);
		tr->grad[t] = chain_calloc_aligned(P1, rs);
		ok = tr->obs[t] && tr->grad[t];
	}
	if (!ok) {
		size_t P = tr->P;
		trainer_free(tr);
		return chain_error_set(err, "out of memory for training with %u threads (%zu params, batch %zu)",
		                       T, P, batch);
	}
	tr->theta_k = tr->f32 ? (const void *)tr->theta32 : (const void *)tr->theta64;
	if (mask) {
		tr->runs = tr->opt.runs;
		tr->nruns = tr->opt.nruns;
	} else {
		tr->all_used[1] = tr->P;
		tr->runs = tr->all_used;
		tr->nruns = tr->P ? 1 : 0;
	}
	plan_slices(tr, T);
	return 0;
}

/* ------------------------------------------------------------------------
 * The epoch loop
 * ------------------------------------------------------------------------ */

void chain_train_defaults(chain_train_options *o)
{
	memset(o, 0, sizeof *o);
	o->epochs = 10;
	o->start_epoch = 1;
	o->batch = 100;
	chain_optim_defaults(&o->optim, CHAIN_OPTIM_ADAM);
	o->seed = 1;
	o->threads = 0;
	o->patience = 5;
}

/* The permutation of epoch `epoch`: Fisher-Yates from the identity, step k
 * swapping position n-1-k with a uniform position <= n-1-k.  A pure function
 * of (seed, epoch), so a resumed run sees the same order as an uninterrupted
 * one.  (The modulo bias is about n / 2^64, negligible; the step
 * coordinate is 32 bits, so past 2^32 rows steps share draws.) */
static void shuffle(size_t *perm, size_t n, uint64_t seed, size_t epoch)
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

/* ------------------------------------------------------------------------
 * The kept params (the best on validation, or the latest) and the checkpoint
 * ------------------------------------------------------------------------ */

/* The checkpoint's metadata: epoch (last completed), best_epoch, seed,
 * best_valid, which let a run be resumed and inspected. */
typedef struct ckpt_meta {
	char epoch[32], best_epoch[32], seed[32], best_valid[40];
	chain_metadata kv[4];
} ckpt_meta;

static void ckpt_meta_fill(ckpt_meta *c, size_t epoch, size_t best_epoch, uint64_t seed,
                           double best_valid)
{
	snprintf(c->epoch, sizeof c->epoch, "%zu", epoch);
	snprintf(c->best_epoch, sizeof c->best_epoch, "%zu", best_epoch);
	snprintf(c->seed, sizeof c->seed, "%" PRIu64, seed);
	if (isnan(best_valid))
		snprintf(c->best_valid, sizeof c->best_valid, "none");
	else
		snprintf(c->best_valid, sizeof c->best_valid, "%.17g", best_valid);
	c->kv[0] = (chain_metadata){ "epoch", c->epoch };
	c->kv[1] = (chain_metadata){ "best_epoch", c->best_epoch };
	c->kv[2] = (chain_metadata){ "seed", c->seed };
	c->kv[3] = (chain_metadata){ "best_valid", c->best_valid };
}

/* Where the kept params are: with a checkpoint path, only in the last
 * checkpoint written (held open as fd), so they cost no memory; without
 * one, in a copy.  Both are in the model's precision, which is what the
 * caller gets back.
 *
 * A checkpoint's bytes are written when it is set, but its commit (fsync,
 * rename, fsync of the directory) runs on a thread (atomic_bg.h) while the
 * next epoch computes: the disk's latency leaves the epoch.  Every other
 * use of the kept params (the next set or touch, get, the end of the run)
 * joins it first, so an error of the commit is reported there, with the
 * file's name, and the kept params are then those of the file the path
 * still holds, the previous one. */
typedef struct kept_params {
	const chain_model *m;
	const char *path;        /* the checkpoint; NULL: the copy */
	int fd;                  /* the last checkpoint committed, -1 before the first
	                            (while a commit is pending: the one it replaces,
	                            which the commit owns) */
	atomic_bg bg;            /* the pending commit */
	void *copy;              /* without a path: num_params reals */
	int set;                 /* kept params exist (kept_set succeeded once) */
} kept_params;

static int kept_init(kept_params *k, const chain_model *m, const char *path, chain_error *err)
{
	*k = (kept_params){ .m = m, .path = path, .fd = -1 };
	chain__atomic_bg_init(&k->bg);
	if (path)
		return 0;
	size_t bytes = (m->num_params ? m->num_params : 1) *
	               (m->precision == CHAIN_F32 ? sizeof(float) : sizeof(double));
	k->copy = malloc(bytes);
	if (!k->copy)
		return chain_error_set(err, "train: out of memory for a copy of %zu params", m->num_params);
	return 0;
}

/* Waits for the pending commit, if any: on success fd is the new file, on
 * failure still the previous one (and the error is returned). */
static int kept_sync(kept_params *k, chain_error *err)
{
	return chain__atomic_bg_join(&k->bg, &k->fd, err);
}

/* Writes the checkpoint (from theta, or theta NULL: the kept file with new
 * metadata) and starts its commit; `wait`: and waits for it. */
static int kept_write(kept_params *k, const void *theta, const ckpt_meta *c, int wait, chain_error *err)
{
	atomic_file af;
	if (kept_sync(k, err) != 0 ||
	    chain__checkpoint_write(k->path, k->m, theta, k->fd, c->kv, 4, &af, err) != 0)
		return -1;
	chain__atomic_bg_start(&k->bg, &af, k->fd);
	k->fd = -1;
	return wait ? kept_sync(k, err) : 0;
}

/* theta (model precision) becomes the kept params; the checkpoint, if any,
 * is written with them.  On failure the previous ones stay kept.  The
 * first call (`wait`) commits before it returns, so that a failed commit
 * reported later always leaves a committed file to fall back on. */
static int kept_set(kept_params *k, const void *theta, const ckpt_meta *c, int wait, chain_error *err)
{
	if (k->path) {
		if (kept_write(k, theta, c, wait, err) != 0)
			return -1;
	} else {
		memcpy(k->copy, theta, k->m->num_params * (k->m->precision == CHAIN_F32 ? sizeof(float) : sizeof(double)));
	}
	k->set = 1;
	return 0;
}

/* The kept params stay; the checkpoint is rewritten with new metadata (its
 * tensors copied from the previous file). */
static int kept_touch(kept_params *k, const ckpt_meta *c, chain_error *err)
{
	if (!k->path)
		return 0;
	return kept_write(k, NULL, c, 0, err);
}

/* Copies the kept params into theta (model precision), if there are any. */
static int kept_get(kept_params *k, void *theta, chain_error *err)
{
	if (!k->set)
		return 0;
	if (k->path) {
		/* a failed commit falls back on the previous file, which is read */
		chain_error serr;
		kept_sync(k, &serr);
		return chain__checkpoint_load_fd(k->fd, k->path, k->m, theta, err);
	}
	memcpy(theta, k->copy, k->m->num_params * (k->m->precision == CHAIN_F32 ? sizeof(float) : sizeof(double)));
	return 0;
}

static void kept_free(kept_params *k)
{
	chain_error serr;
	kept_sync(k, &serr); /* the caller has collected any error already */
	if (k->fd >= 0)
		close(k->fd);
	free(k->copy);
	memset(k, 0, sizeof *k);
	k->fd = -1;
}

/* "NaN", "Inf" or "-Inf", for messages. */
static const char *nonfinite_name(double v)
{
	return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
}

/* The message of a NaN/Inf stop: where it happened, where the last good
 * params are, what to try. */
static void nonfinite_message(chain_error *err, const char *what, double v, size_t epoch,
                              size_t batch, const char *ckpt)
{
	char where[64], keep[600] = "";
	if (batch)
		snprintf(where, sizeof where, "epoch %zu, batch %zu", epoch, batch);
	else
		snprintf(where, sizeof where, "epoch %zu", epoch);
	if (ckpt)
		snprintf(keep, sizeof keep, "; the last good checkpoint is in %s", ckpt);
	chain_error_set(err, "%s became %s at %s%s; try a smaller --lr", what, nonfinite_name(v), where, keep);
}

/* Options that would make the loop meaningless are errors, not clamps. */
static int check_train_options(const chain_train_options *o, chain_error *err)
{
	if (o->epochs == 0)
		return chain_error_set(err, "train: epochs must be at least 1");
	if (o->start_epoch == 0)
		return chain_error_set(err, "train: epochs are numbered from 1 (start_epoch is 0)");
	if (o->start_epoch > o->epochs)
		return chain_error_set(err, "train: starting at epoch %zu, past the last epoch %zu: nothing to train",
		                       o->start_epoch, o->epochs);
	if (o->batch == 0)
		return chain_error_set(err, "train: batch size must be at least 1");
	if (o->threads > MAX_THREADS)
		return chain_error_set(err, "train: %u threads asked for, at most %u", o->threads, MAX_THREADS);
	return 0;
}

/* What the progress reports carry between calls. */
typedef struct run_state {
	const chain_train_options *o;
	chain_train_progress p;
	double t0;               /* start of chain_train */
	double rows_done;        /* rows trained in this call, for the ETA */
	double rows_total;       /* rows to train until the last epoch */
} run_state;

/* Fills in the timing fields and calls the progress callback, if any. */
static void report(run_state *s, chain_train_event ev)
{
	if (!s->o->progress)
		return;
	s->p.event = ev;
	s->p.elapsed = now_seconds() - s->t0;
	double rate = s->p.elapsed > 0 ? s->rows_done / s->p.elapsed : 0;
	s->p.eta_seconds = rate > 0 ? (s->rows_total - s->rows_done) / rate : NAN;
	s->o->progress(&s->p, s->o->progress_user);
}

/* The epoch loop: per epoch, shuffle; per batch, the two phases with the
 * NaN/Inf checks after each; after the epoch, validation, the choice of
 * kept params, the checkpoint, the log line, the early-stopping test.  On
 * every way out, theta receives the kept params. */
int chain_train(const chain_model *m, void *theta, const chain_dataset *train,
                const chain_dataset *valid, const chain_train_options *o,
                chain_train_result *r, chain_error *err)
{
	chain_train_result rtmp;
	if (!r)
		r = &rtmp;
	memset(r, 0, sizeof *r);
	r->stop = CHAIN_STOP_ERROR;
	r->best_valid = NAN;
	r->last_train_nll = NAN;
	if (chain_model_check(m, "train", err) != 0)
		return -1;
	const char *name = m->name ? m->name : "?";
	if (m->objective == CHAIN_OBJ_FREE)
		return chain_error_set(err, "train: model %s has a free objective (no data to train on): use chain optimize", name);
	if (m->objective != CHAIN_OBJ_LOGLIK)
		return chain_error_set(err, "train: model %s: only log-likelihood objectives can be trained", name);
	if (m->precision == CHAIN_F64 ? !m->f64->loglik_grad || !m->f64->objective || !m->f64->logp_batch
	                              : !m->f32->loglik_grad || !m->f32->objective || !m->f32->logp_batch)
		return chain_error_set(err, "train: model %s lacks a loglik_grad, objective or logp_batch kernel", name);
	if (!theta)
		return chain_error_set(err, "train: no parameters given");
	if (!o)
		return chain_error_set(err, "train: no options given");
	if (check_train_options(o, err) != 0 || check_dataset(m, train, "training data", err) != 0 ||
	    (valid && check_dataset(m, valid, "validation data", err) != 0))
		return -1;

	const size_t P = m->num_params, N = train->rows;
	const size_t batch = o->batch < N ? o->batch : N;
	unsigned T = o->threads ? o->threads : chain_default_threads();
	uint8_t *mask = NULL;
	size_t *perm = NULL;
	train_log log = { 0 };
	trainer tr;
	kept_params kept;
	ckpt_meta meta;
	run_state s = { .o = o, .t0 = now_seconds() };
	int rc = -1;
	if (chain_param_mask(m, &mask, err) != 0)
		return -1;
	if (kept_init(&kept, m, o->checkpoint_path, err) != 0) {
		free(mask);
		return -1;
	}
	if (trainer_init(&tr, m, theta, T, batch, &o->optim, mask, err) != 0) {
		kept_free(&kept);
		free(mask);
		return -1;
	}
	r->threads = T;
	const size_t batches = (N + batch - 1) / batch;
	s.rows_total = (double)N * (double)(o->epochs - o->start_epoch + 1);
	s.p = (chain_train_progress){
		.epoch = o->start_epoch, .epochs = o->epochs, .batches = batches,
		.train_nll = NAN, .valid_nll = NAN, .best_valid = NAN,
		.best_epoch = o->start_epoch - 1, .threads = T, .seed = o->seed,
		.checkpoint = o->checkpoint_path,
	};

	perm = malloc(N * sizeof *perm);
	if (!perm) {
		chain_error_set(err, "train: out of memory for %zu rows", N);
		goto out;
	}

	/* The starting point, in double, with unused entries forced to 0. */
	for (size_t j = 0; j < P; j++) {
		double v = tr.f32 ? (double)tr.theta32[j] : tr.theta64[j];
		tr.theta64[j] = mask && !mask[j] ? 0.0 : v;
		if (tr.f32)
			tr.theta32[j] = (float)tr.theta64[j];
	}

	/* The starting point is a candidate too: a resumed run never replaces
	 * its checkpoint by something worse. */
	if (valid) {
		chain_eval_result ev;
		if (eval_on_pool(&tr.pool, m, tr.theta_k, valid, &ev, err) != 0)
			goto out;
		s.p.valid_nll = s.p.best_valid = ev.mean_nll;
	}
	if (chain__train_log_open(&log, o->log_path, o->log_append, err) != 0)
		goto out;
	ckpt_meta_fill(&meta, o->start_epoch - 1, s.p.best_epoch, o->seed, s.p.best_valid);
	if (kept_set(&kept, tr.theta_k, &meta, 1, err) != 0)
		goto out;
	r->last_epoch = r->best_epoch = o->start_epoch - 1;
	r->best_valid = s.p.best_valid;
	report(&s, CHAIN_TRAIN_START);

	r->stop = CHAIN_STOP_EPOCHS;
	for (size_t epoch = o->start_epoch; epoch <= o->epochs; epoch++) {
		double te = now_seconds(), nll_sum = 0;
		shuffle(perm, N, o->seed, epoch);
		s.p.epoch = epoch;
		s.p.valid_nll = NAN;
		s.p.improved = 0;
		for (size_t b = 0; b < batches; b++) {
			tr.data = train;
			tr.rows = perm + b * batch;
			tr.B = b + 1 < batches ? batch : N - b * batch;
			chain_pool_run(&tr.pool, phase_gradients, &tr);
			double ll = 0;
			for (unsigned t = 0; t < tr.TG; t++)
				ll += tr.loglik[t];
			double loss = tr.sign * (ll / (double)tr.B + tr.pen_value);
			if (!isfinite(loss)) {
				nonfinite_message(err, "loss", loss, epoch, b + 1, o->checkpoint_path);
				r->stop = CHAIN_STOP_NONFINITE;
				goto out;
			}
			chain_optim_begin_step(&tr.opt);
			chain_pool_run(&tr.pool, phase_step, &tr);
			/* the slices are in index order: the first bad thread's first
			 * non-finite entry is the first of the whole gradient */
			for (unsigned t = 0; t < T; t++)
				if (tr.bad[t]) {
					nonfinite_message(err, "gradient", tr.bad_value[t], epoch, b + 1, o->checkpoint_path);
					r->stop = CHAIN_STOP_NONFINITE;
					goto out;
				}

			nll_sum -= ll;
			s.rows_done += (double)tr.B;
			s.p.batch = b + 1;
			size_t seen = b + 1 < batches ? (b + 1) * batch : N;
			s.p.train_nll = nll_sum / (double)seen;
			double dt = now_seconds() - te;
			s.p.rows_per_second = dt > 0 ? (double)seen / dt : 0;
			report(&s, CHAIN_TRAIN_BATCH);
		}
		double train_nll = nll_sum / (double)N;

		/* Validation, early-stopping bookkeeping, then the checkpoint of
		 * the params kept so far. */
		if (valid) {
			chain_eval_result ev;
			if (eval_on_pool(&tr.pool, m, tr.theta_k, valid, &ev, err) != 0)
				goto out;
			s.p.valid_nll = ev.mean_nll;
			s.p.improved = !isnan(ev.mean_nll) && (isnan(s.p.best_valid) || ev.mean_nll < s.p.best_valid);
		} else {
			s.p.improved = 1;
		}
		if (s.p.improved) {
			s.p.best_epoch = epoch;
			s.p.best_valid = s.p.valid_nll;
		}
		s.p.since_best = epoch - s.p.best_epoch;
		ckpt_meta_fill(&meta, epoch, s.p.best_epoch, o->seed, s.p.best_valid);
		if ((s.p.improved ? kept_set(&kept, tr.theta_k, &meta, 0, err) : kept_touch(&kept, &meta, err)) != 0) {
			r->stop = CHAIN_STOP_ERROR;
			goto out;
		}
		s.p.epoch_seconds = now_seconds() - te;
		if (chain__train_log_epoch(&log, epoch, train_nll, valid != NULL, s.p.valid_nll, s.p.epoch_seconds, err) != 0) {
			r->stop = CHAIN_STOP_ERROR;
			goto out;
		}
		s.p.train_nll = train_nll;
		r->last_epoch = epoch;
		r->last_train_nll = train_nll;
		r->best_epoch = s.p.best_epoch;
		r->best_valid = s.p.best_valid;
		report(&s, CHAIN_TRAIN_EPOCH);
		if (valid && o->patience && s.p.since_best >= o->patience && epoch < o->epochs) {
			r->stop = CHAIN_STOP_EARLY;
			break;
		}
	}
	rc = 0;

out:
	/* Whatever happened, the caller gets the kept params: the last good
	 * ones, those of the checkpoint.  The trainer's buffers go first, so
	 * that reading the checkpoint back does not add to the peak.  After a
	 * run without validation that ended well, theta already holds them. */
	trainer_free(&tr);
	/* the last checkpoint's commit, still running: a failure is the run's
	 * error, and the kept params are the previous file's */
	{
		chain_error serr;
		if (kept_sync(&kept, rc == 0 ? err : &serr) != 0 && rc == 0)
			rc = -1;
	}
	if (rc != 0 || valid) {
		chain_error rerr;
		if (kept_get(&kept, theta, rc == 0 ? err : &rerr) != 0 && rc == 0) {
			rc = -1;
			r->stop = CHAIN_STOP_ERROR;
		}
	}
	{
		chain_error lerr;
		if (chain__train_log_close(&log, rc == 0 ? err : &lerr) != 0 && rc == 0) {
			rc = -1;
			r->stop = CHAIN_STOP_ERROR;
		}
	}
	if (rc != 0 && r->stop != CHAIN_STOP_NONFINITE)
		r->stop = CHAIN_STOP_ERROR;
	r->seconds = now_seconds() - s.t0;
	s.p.stop = r->stop;
	report(&s, CHAIN_TRAIN_END);
	kept_free(&kept);
	free(mask);
	free(perm);
	return rc;
}

/* ------------------------------------------------------------------------
 * The progress printer
 * ------------------------------------------------------------------------ */

void chain_progress_printer_init(chain_progress_printer *p, FILE *out)
{
	memset(p, 0, sizeof *p);
	p->out = out ? out : stderr;
	p->tty = isatty(fileno(p->out));
	p->last_draw = 0; /* first redraw after 0.1 s, when the speed means something */
}

/* A duration as 42s, 3m07s or 2h05m; "?" when unknown. */
static void show_duration(double sec, char *out, size_t cap)
{
	if (!(sec >= 0) || sec > 1e9) {
		snprintf(out, cap, "?");
		return;
	}
	unsigned long s = (unsigned long)(sec + 0.5);
	if (s < 60)
		snprintf(out, cap, "%lus", s);
	else if (s < 3600)
		snprintf(out, cap, "%lum%02lus", s / 60, s % 60);
	else
		snprintf(out, cap, "%luh%02lum", s / 3600, s / 60 % 60);
}

/* Clears the \r line if one is on screen, so a full line can follow. */
static void clear_line(chain_progress_printer *pp)
{
	if (pp->line_open) {
		fputs("\r\033[K", pp->out);
		pp->line_open = 0;
	}
}

/* START: the initial validation NLL; BATCH (terminals only): the redrawn
 * status line; EPOCH: one permanent line; END: leaves the cursor on a fresh
 * line.  Flushes after each write so the output follows the run live even
 * through a pipe. */
void chain_train_print_progress(const chain_train_progress *p, void *user)
{
	chain_progress_printer *pp = user;
	char eta[32];
	switch (p->event) {
	case CHAIN_TRAIN_START:
		if (!isnan(p->valid_nll))
			fprintf(pp->out, "epoch %zu: valid NLL %.4f (%s params)\n", p->epoch - 1, p->valid_nll,
			        p->epoch > 1 ? "resumed" : "initial");
		break;
	case CHAIN_TRAIN_BATCH:
		if (!pp->tty || (p->elapsed - pp->last_draw < 0.1 && p->batch < p->batches))
			return;
		pp->last_draw = p->elapsed;
		show_duration(p->eta_seconds, eta, sizeof eta);
		fprintf(pp->out, "\repoch %zu/%zu  batch %zu/%zu  loss %.4f  %.0f img/s  ETA %s\033[K",
		        p->epoch, p->epochs, p->batch, p->batches, p->train_nll, p->rows_per_second, eta);
		pp->line_open = 1;
		break;
	case CHAIN_TRAIN_EPOCH:
		clear_line(pp);
		fprintf(pp->out, "epoch %zu/%zu  train NLL %.4f", p->epoch, p->epochs, p->train_nll);
		if (!isnan(p->valid_nll) || !isnan(p->best_valid)) {
			fprintf(pp->out, "  valid NLL %.4f", p->valid_nll);
			if (p->improved)
				fprintf(pp->out, " (best)");
			else
				fprintf(pp->out, " (best %.4f at epoch %zu)", p->best_valid, p->best_epoch);
		}
		fprintf(pp->out, "  %.1fs\n", p->epoch_seconds);
		break;
	case CHAIN_TRAIN_END:
		clear_line(pp);
		break;
	}
	fflush(pp->out);
}

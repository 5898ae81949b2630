/* optim.c -- SGD with momentum and Adam over a flat vector of doubles.
 *
 * The update of entry j depends only on grad[j] and on entry j's own state,
 * so a step split into slices (one per thread) gives the same bits as one
 * pass over everything: training stays reproducible whatever the split.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chain/optim.h"
#include "vector_clones.h"

void chain_optim_defaults(chain_optim_options *o, chain_optim_kind kind)
{
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->lr = kind == CHAIN_OPTIM_SGD ? 0.01 : 0.001;
	o->momentum = 0.9;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
}

const char *chain_optim_name(chain_optim_kind kind)
{
	switch (kind) {
	case CHAIN_OPTIM_SGD: return "sgd";
	case CHAIN_OPTIM_ADAM: return "adam";
	}
	return NULL;
}

int chain_optim_parse(const char *name, chain_optim_kind *kind)
{
	if (name && strcmp(name, "sgd") == 0)
		*kind = CHAIN_OPTIM_SGD;
	else if (name && strcmp(name, "adam") == 0)
		*kind = CHAIN_OPTIM_ADAM;
	else
		return -1;
	return 0;
}

/* Rejects options that would silently make a step meaningless (a negative
 * or NaN learning rate, a momentum of 1 that never forgets, ...). */
static int check_options(const chain_optim_options *o, chain_error *err)
{
	if (!chain_optim_name(o->kind))
		return chain_error_set(err, "optimizer: unknown kind %d (expected sgd or adam)", (int)o->kind);
	if (!(o->lr > 0) || !isfinite(o->lr))
		return chain_error_set(err, "optimizer: learning rate must be a positive number, got %g", o->lr);
	if (o->kind == CHAIN_OPTIM_SGD && !(o->momentum >= 0 && o->momentum < 1))
		return chain_error_set(err, "optimizer: sgd momentum must be in [0, 1), got %g", o->momentum);
	if (o->kind == CHAIN_OPTIM_ADAM) {
		if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
			return chain_error_set(err, "optimizer: adam betas must be in [0, 1), got %g and %g",
			                       o->beta1, o->beta2);
		if (!(o->eps > 0) || !isfinite(o->eps))
			return chain_error_set(err, "optimizer: adam eps must be a positive number, got %g", o->eps);
	}
	return 0;
}

int chain_optim_init(chain_optim *o, const chain_optim_options *opt, size_t n,
                     const uint8_t *mask, chain_error *err)
{
	memset(o, 0, sizeof *o);
	if (!opt)
		return chain_error_set(err, "optimizer: no options given");
	if (check_options(opt, err) != 0)
		return -1;
	o->opt = *opt;
	o->n = n;
	size_t cells = n ? n : 1;
	o->m = calloc(cells, sizeof *o->m);
	if (opt->kind == CHAIN_OPTIM_ADAM)
		o->v = calloc(cells, sizeof *o->v);
	if (mask) {
		o->mask = malloc(cells);
		if (o->mask)
			memcpy(o->mask, mask, n);
		/* the runs of used entries: FVSBN's W is half unused, a run per row */
		size_t nr = 0;
		for (size_t j = 0; j < n; j++)
			nr += mask[j] && (j == 0 || !mask[j - 1]);
		o->runs = malloc((2 * nr + 1) * sizeof *o->runs);
		for (size_t j = 0; o->runs && j < n; j++) {
			if (mask[j] && (j == 0 || !mask[j - 1]))
				o->runs[2 * o->nruns] = j;
			if (mask[j] && (j + 1 == n || !mask[j + 1]))
				o->runs[2 * o->nruns++ + 1] = j + 1;
		}
	}
	if (!o->m || (opt->kind == CHAIN_OPTIM_ADAM && !o->v) || (mask && (!o->mask || !o->runs))) {
		chain_optim_free(o);
		return chain_error_set(err, "optimizer: out of memory for the state of %zu parameters", n);
	}
	return 0;
}

/* Step t's bias corrections, computed once per step rather than per entry
 * (pow of the same arguments in every thread would give the same bits, but
 * there is no need to pay for it n times). */
void chain_optim_begin_step(chain_optim *o)
{
	o->t++;
	if (o->opt.kind == CHAIN_OPTIM_ADAM) {
		double t = (double)o->t;
		o->c1 = 1.0 / (1.0 - pow(o->opt.beta1, t));
		o->c2 = 1.0 / (1.0 - pow(o->opt.beta2, t));
	}
}

/* n entries, one at a time, in the textbook form:
 *   SGD:  v = mu v + g;                      theta -= lr v
 *   Adam: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *         theta -= lr (m c1) / (sqrt(v c2) + eps)
 * The pointers are those of the first entry.  Each entry's result depends
 * only on its own values, so any split into calls gives the same bits.  (No
 * restrict: the API never said grad may not be theta; the compiler checks
 * for overlap once per call.) */
CHAIN_VECTOR_CLONES
static void update_span(const chain_optim *o, double *theta, double *m, double *v,
                        const double *grad, size_t n)
{
	const double lr = o->opt.lr;
	if (o->opt.kind == CHAIN_OPTIM_SGD) {
		const double mu = o->opt.momentum;
		for (size_t j = 0; j < n; j++) {
			m[j] = mu * m[j] + grad[j];
			theta[j] -= lr * m[j];
		}
		return;
	}
	const double b1 = o->opt.beta1, b2 = o->opt.beta2, eps = o->opt.eps;
	const double c1 = o->c1, c2 = o->c2;
	for (size_t j = 0; j < n; j++) {
		double g = grad[j];
		m[j] = b1 * m[j] + (1 - b1) * g;
		v[j] = b2 * v[j] + (1 - b2) * g * g;
		theta[j] -= lr * (m[j] * c1) / (sqrt(v[j] * c2) + eps);
	}
}

/* Entries [lo, hi), the gradient of entry j at grad[j - lo]. */
static void update_range(chain_optim *o, double *theta, const double *grad, size_t lo, size_t hi)
{
	update_span(o, theta + lo, o->m + lo, o->v ? o->v + lo : NULL, grad, hi - lo);
}

/* The first run that ends after `begin` (nruns if none): runs are sorted
 * and disjoint, so a binary search. */
static size_t first_run_after(const chain_optim *o, size_t begin)
{
	size_t lo = 0, hi = o->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (o->runs[2 * mid + 1] <= begin)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The step on [begin, end) with entry j's gradient at grad[j - begin]:
 * masked-out entries are skipped (the runs of used ones are updated), so
 * they keep their value (0) exactly even if the caller's gradient there
 * were not 0. */
void chain_optim_update_chunk(chain_optim *o, double *theta, const double *grad,
                              size_t begin, size_t end)
{
	if (end > o->n)
		end = o->n;
	if (begin >= end)
		return;
	if (!o->mask) {
		update_range(o, theta, grad, begin, end);
		return;
	}
	for (size_t r = first_run_after(o, begin); r < o->nruns && o->runs[2 * r] < end; r++) {
		size_t lo = o->runs[2 * r] > begin ? o->runs[2 * r] : begin;
		size_t hi = o->runs[2 * r + 1] < end ? o->runs[2 * r + 1] : end;
		if (lo < hi)
			update_range(o, theta, grad + (lo - begin), lo, hi);
	}
}

void chain_optim_update(chain_optim *o, double *theta, const double *grad,
                        size_t begin, size_t end)
{
	if (end > o->n)
		end = o->n;
	if (begin < end)
		chain_optim_update_chunk(o, theta, grad + begin, begin, end);
}

void chain_optim_step(chain_optim *o, double *theta, const double *grad)
{
	chain_optim_begin_step(o);
	chain_optim_update(o, theta, grad, 0, o->n);
}

void chain_optim_reset(chain_optim *o)
{
	if (o->m)
		memset(o->m, 0, o->n * sizeof *o->m);
	if (o->v)
		memset(o->v, 0, o->n * sizeof *o->v);
	o->t = 0;
	o->c1 = o->c2 = 0;
}

void chain_optim_free(chain_optim *o)
{
	free(o->m);
	free(o->v);
	free(o->mask);
	free(o->runs);
	memset(o, 0, sizeof *o);
}

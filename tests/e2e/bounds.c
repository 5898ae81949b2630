/* bounds.c -- every f64 kernel of a model writes exactly what the
 * descriptor says it writes: theta (init), the rows (sample, complete),
 * one real per row (logp_batch), the gradient (loglik_grad, objective)
 * and cond_offset[num_positions] reals (conditionals), and nothing past
 * them.  Built by run_e2e.sh with -DMODEL=<name>_model against the
 * model's object; each output is followed by sentinels that must survive.
 * (conditionals once wrote a whole tensor per position for an argument
 * such as b[i], past the end of its out.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <chain/model.h>

extern const chain_model MODEL;

enum { SENTINELS = 256, ROWS = 5 };
static const double SENTINEL = -7777.25;

/* n reals followed by the sentinels */
static double *guarded(size_t n)
{
	double *b = malloc((n + SENTINELS) * sizeof *b);
	if (!b) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	for (size_t i = 0; i < n + SENTINELS; i++)
		b[i] = SENTINEL;
	return b;
}

static int intact(const char *kernel, const double *b, size_t n)
{
	for (size_t i = n; i < n + SENTINELS; i++)
		if (b[i] != SENTINEL) {
			printf("%s wrote element %zu of a buffer of %zu\n", kernel, i, n);
			return 0;
		}
	return 1;
}

int main(void)
{
	const chain_model *m = &MODEL;
	const chain_kernels_f64 *k = m->f64;
	size_t P = m->num_params, O = m->obs_size, C = m->cond_offset[m->num_positions];
	int ok = 1;
	double *theta = guarded(P), *obs = guarded(O * ROWS), *lp = guarded(ROWS);
	double *grad = guarded(P), *ograd = guarded(P), *cond = guarded(C);
	k->init(theta, 3);
	ok &= intact("init", theta, P);
	memset(obs, 0, O * ROWS * sizeof *obs);
	k->sample(theta, 1, 0, ROWS, obs);
	ok &= intact("sample", obs, O * ROWS);
	k->logp_batch(theta, obs, ROWS, lp);
	ok &= intact("logp_batch", lp, ROWS);
	memset(grad, 0, P * sizeof *grad);
	k->loglik_grad(theta, obs, ROWS, grad);
	ok &= intact("loglik_grad", grad, P);
	memset(ograd, 0, P * sizeof *ograd);
	k->objective(theta, obs, ROWS, ograd);
	ok &= intact("objective", ograd, P);
	k->conditionals(theta, obs, cond);
	ok &= intact("conditionals", cond, C);
	k->complete(theta, 2, 0, m->num_positions / 2, ROWS, obs);
	ok &= intact("complete", obs, O * ROWS);
	free(theta), free(obs), free(lp), free(grad), free(ograd), free(cond);
	return ok ? 0 : 1;
}

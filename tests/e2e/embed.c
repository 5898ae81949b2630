/* embed.c -- a user's program: links a model compiled by `chain build`
 * (nade.o + nade.h) with libchain and uses the generated C API directly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nade.h"

int main(void)
{
	double *theta = malloc(nade_NUM_PARAMS * sizeof(double));
	double *grad = calloc(nade_NUM_PARAMS, sizeof(double));
	double rows[4 * nade_OBS_SIZE];
	nade_init(theta, 1);
	nade_sample(theta, 7, 0, 4, rows);
	double total = 0, lp[4];
	nade_logp_batch(theta, rows, 4, lp);
	for (int r = 0; r < 4; r++) {
		double one = nade_logp(theta, rows + r * nade_OBS_SIZE);
		if (fabs(one - lp[r]) > 1e-12 * fabs(one)) {
			fprintf(stderr, "logp_batch row %d: %g, logp: %g\n", r, lp[r], one);
			return 1;
		}
		total += one;
	}
	double sum = nade_loglik_grad(theta, rows, 4, grad);
	double obj = nade_objective(theta, rows, 4, NULL);
	if (fabs(sum - total) > 1e-9 * fabs(total) || fabs(obj - total / 4) > 1e-9 * fabs(total)) {
		fprintf(stderr, "loglik_grad %g / objective %g disagree with logp %g\n", sum, obj, total);
		return 1;
	}
	printf("%s: %zu params (%zu unused), %zu positions, mean log p of 4 samples %.4f\n", nade_model.name,
	       nade_model.num_params, nade_model.num_params_unused, nade_model.num_positions, total / 4);
	free(theta);
	free(grad);
	return 0;
}

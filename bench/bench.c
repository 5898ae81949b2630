/* bench.c -- times a compiled model's kernels against the hand-written
 * reference, side by side in one run.
 *
 *   bench GEN.so REF.so MODEL KERNEL ROWS REPEATS
 *
 * GEN.so is `chain build` output linked into a shared object, REF.so the
 * reference compiled with cc; both export MODEL_logp_batch etc.  KERNEL is
 * logp (logp_batch over ROWS rows) or grad (loglik_grad over ROWS rows).
 * Runs alternate between the two (so drift hits both alike); prints the
 * median images/s of each and their ratio.  Not a test: numbers only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/data.h"
#include "chain/rng.h"

typedef void (*logp_batch_fn)(const double *, const double *, size_t, double *);
typedef double (*grad_fn)(const double *, const double *, size_t, double *);
typedef void (*init_fn)(double *, uint64_t);

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void *sym(void *so, const char *model, const char *fn)
{
	char name[128];
	snprintf(name, sizeof name, "%s_%s", model, fn);
	void *p = dlsym(so, name);
	if (!p) {
		fprintf(stderr, "bench: no %s\n", name);
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: bench GEN.so REF.so MODEL KERNEL ROWS REPEATS NUM_PARAMS\n");
		return 1;
	}
	void *so[2];
	for (int i = 0; i < 2; i++)
		if (!(so[i] = dlopen(argv[1 + i], RTLD_NOW | RTLD_LOCAL))) {
			fprintf(stderr, "bench: %s\n", dlerror());
			return 1;
		}
	const char *model = argv[3], *kernel = argv[4];
	size_t rows = strtoul(argv[5], NULL, 10), reps = strtoul(argv[6], NULL, 10), np = strtoul(argv[7], NULL, 10);
	chain_dataset d;
	chain_error err;
	if (chain_data_load("examples/data/binarized-test.amat.gz", NULL, &d, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	size_t n = d.cols;
	double *obs = malloc(rows * n * sizeof(double));
	for (size_t r = 0; r < rows; r++)
		memcpy(obs + r * n, d.values + (r % d.rows) * d.cols, n * sizeof(double));
	double *theta = malloc(np * sizeof(double)), *grad = calloc(np, sizeof(double)), *out = malloc(rows * sizeof(double));
	((init_fn)sym(so[1], model, "init"))(theta, 1);
	double times[2][64];
	for (size_t rep = 0; rep < reps && rep < 64; rep++)
		for (int i = 0; i < 2; i++) {
			double t0 = now();
			if (strcmp(kernel, "grad") == 0)
				((grad_fn)sym(so[i], model, "loglik_grad"))(theta, obs, rows, grad);
			else
				((logp_batch_fn)sym(so[i], model, "logp_batch"))(theta, obs, rows, out);
			times[i][rep] = now() - t0;
		}
	double med[2];
	for (int i = 0; i < 2; i++) {
		qsort(times[i], reps, sizeof(double), cmp);
		med[i] = times[i][reps / 2];
	}
	printf("%-8s %-6s %8.0f img/s generated  %8.0f img/s reference  ratio %.2f\n", model, kernel, (double)rows / med[0],
	       (double)rows / med[1], med[1] / med[0]);
	return 0;
}

/* chain/lbfgs.h -- limited-memory BFGS for smooth objectives of few or many
 * params (`chain optimize`): the two-loop recursion (Nocedal & Wright,
 * Algorithm 7.4) with a backtracking line search on the Armijo condition. */
#ifndef CHAIN_LBFGS_H
#define CHAIN_LBFGS_H

#include <stddef.h>
#include <stdint.h>
#include "chain/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* f(x), writing its gradient into g. */
typedef double (*chain_fg_fn)(void *ctx, const double *x, double *g);

typedef struct chain_lbfgs_options {
	int memory;        /* pairs kept (default 10) */
	int max_iter;      /* iterations at most (default 1000) */
	double gtol;       /* stop when max |g_i| <= gtol * max(1, max |x_i|) (default 1e-9) */
} chain_lbfgs_options;

typedef struct chain_lbfgs_result {
	int iterations;
	int evaluations;
	double f;          /* f at the returned x */
	double gmax;       /* max |g_i| there */
	int converged;     /* 1: the gradient test held; 0: max_iter reached or no progress possible */
} chain_lbfgs_result;

void chain_lbfgs_defaults(chain_lbfgs_options *o);

/* Minimizes f from x (updated in place) over the entries whose mask flag is
 * 1 (mask NULL: all).  Fails (-1, message in err) only if f or its gradient
 * is not finite at the start, or memory runs out; a NaN met during a line
 * search shortens the step instead. */
int chain_lbfgs_minimize(size_t n, double *x, chain_fg_fn fg, void *ctx, const uint8_t *mask,
                         const chain_lbfgs_options *opt, chain_lbfgs_result *res, chain_error *err);

#ifdef __cplusplus
}
#endif
#endif

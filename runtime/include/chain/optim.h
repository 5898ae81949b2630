/* chain/optim.h -- first-order optimizers over a flat parameter vector.
 *
 * Both optimizers MINIMIZE: the caller hands them the gradient of the loss
 * (for a model that maximizes its objective, the gradient of -objective).
 * They work in double whatever the model's precision: an f32 model keeps a
 * double master copy of theta and converts after each step.
 *
 * A step is split in two so that it can run in parallel over contiguous
 * slices of theta with bit-identical results whatever the split:
 *
 *     chain_optim_begin_step(&o);                       // once per step
 *     chain_optim_update(&o, theta, grad, lo, hi);      // any slices, any threads
 *
 * (chain_optim_update_chunk is the update for a gradient held a chunk at a
 * time; chain_optim_step does both over the whole vector.)  Entries whose mask
 * flag is 0 (structurally unused params) are never touched: their value and
 * their optimizer state stay exactly as they are.
 */
#ifndef CHAIN_OPTIM_H
#define CHAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "chain/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum chain_optim_kind {
	CHAIN_OPTIM_SGD = 0,  /* v = momentum * v + g; theta -= lr * v */
	CHAIN_OPTIM_ADAM = 1, /* Kingma & Ba (2015), with bias correction */
} chain_optim_kind;

typedef struct chain_optim_options {
	chain_optim_kind kind;
	double lr;        /* step size, finite and > 0 */
	double momentum;  /* SGD: in [0, 1); 0 = plain SGD */
	double beta1;     /* Adam: decay of the first moment, in [0, 1) */
	double beta2;     /* Adam: decay of the second moment, in [0, 1) */
	double eps;       /* Adam: added to sqrt(v-hat), > 0 */
} chain_optim_options;

/* The defaults of `kind`: SGD lr 0.01, momentum 0.9; Adam lr 0.001,
 * beta1 0.9, beta2 0.999, eps 1e-8. */
void chain_optim_defaults(chain_optim_options *o, chain_optim_kind kind);

/* "sgd" / "adam" (NULL for an unknown kind), and back (-1 if unknown). */
const char *chain_optim_name(chain_optim_kind kind);
int chain_optim_parse(const char *name, chain_optim_kind *kind);

/* An optimizer's state for n parameters. */
typedef struct chain_optim {
	chain_optim_options opt;
	size_t n;
	uint8_t *mask;    /* NULL = every entry is updated; else n flags, 0 = frozen */
	size_t *runs;     /* with a mask: the runs of updated entries, [runs[2i], runs[2i+1]) */
	size_t nruns;
	double *m;        /* SGD: velocity; Adam: first moment */
	double *v;        /* Adam: second moment (NULL for SGD) */
	uint64_t t;       /* steps begun so far */
	double c1, c2;    /* Adam: bias corrections 1 / (1 - beta1^t), 1 / (1 - beta2^t) */
} chain_optim;

/* Checks the options and allocates zeroed state.  mask (n flags, copied;
 * NULL = all entries used) marks what may move.  On failure *o holds nothing
 * to free. */
int chain_optim_init(chain_optim *o, const chain_optim_options *opt, size_t n,
                     const uint8_t *mask, chain_error *err);

/* Starts the next step (increments t, computes the bias correction). */
void chain_optim_begin_step(chain_optim *o);

/* Applies the current step to theta[begin..end) given grad[begin..end).
 * Disjoint slices may be updated concurrently. */
void chain_optim_update(chain_optim *o, double *theta, const double *grad,
                        size_t begin, size_t end);

/* chain_optim_update with the gradient given from the slice's start:
 * grad[j - begin] is entry j's, for j in [begin, end).  For callers that
 * form the gradient a cache-sized chunk at a time rather than in a vector
 * of n; the same bits as chain_optim_update. */
void chain_optim_update_chunk(chain_optim *o, double *theta, const double *grad,
                              size_t begin, size_t end);

/* begin_step + update over all n entries. */
void chain_optim_step(chain_optim *o, double *theta, const double *grad);

/* Forgets the moments and the step count (theta is not touched). */
void chain_optim_reset(chain_optim *o);

void chain_optim_free(chain_optim *o);

#ifdef __cplusplus
}
#endif
#endif

/* chain/train.h -- training a model by minibatch gradient steps, and
 * evaluating its negative log-likelihood on a data set.
 *
 * One training step, for a batch of B rows and T threads:
 *   1. the batch is cut into T contiguous chunks; thread t calls the model's
 *      loglik_grad on its chunk into its own gradient buffer (the last
 *      thread also asks `objective` on 0 rows for the penalty part and its
 *      gradient);
 *   2. each thread takes one slice of theta, a cache-sized chunk at a time:
 *      the buffers are summed in the fixed order 0, 1, ..., T-1, divided by
 *      B, the penalty added, the sign flipped when the model maximizes, and
 *      the optimizer updates the chunk.
 * No step depends on timing, so a run is bit-identical for the same data,
 * options, seed and T.  (Different T sum in a different grouping and may
 * differ in the last bits.)
 *
 * Rows are visited in a fresh Fisher-Yates permutation each epoch, drawn
 * from chain_rng_bits(seed, CHAIN_STREAM_SHUFFLE, epoch, step, 0), so epoch e
 * of a resumed run shuffles exactly as epoch e of an uninterrupted one.
 */
#ifndef CHAIN_TRAIN_H
#define CHAIN_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "chain/data.h"
#include "chain/error.h"
#include "chain/model.h"
#include "chain/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- progress reports ------------------------------------------------ */

typedef enum chain_train_event {
	CHAIN_TRAIN_START = 0, /* before the first step (valid_nll: of the initial params) */
	CHAIN_TRAIN_BATCH = 1, /* after each step */
	CHAIN_TRAIN_EPOCH = 2, /* after each epoch's validation and checkpoint (see
	                          checkpoint_path: the file may still hold the
	                          previous one) */
	CHAIN_TRAIN_END = 3,   /* once at the end, also after a failure */
} chain_train_event;

typedef enum chain_train_stop {
	CHAIN_STOP_EPOCHS = 0,    /* ran every epoch asked for */
	CHAIN_STOP_EARLY = 1,     /* `patience` epochs without a better validation NLL */
	CHAIN_STOP_NONFINITE = 2, /* the loss or its gradient became NaN or Inf */
	CHAIN_STOP_ERROR = 3,     /* anything else (a checkpoint or log could not be written, ...) */
} chain_train_stop;

typedef struct chain_train_progress {
	chain_train_event event;
	size_t epoch, epochs;     /* current epoch (1-based) and the last one asked for */
	size_t batch, batches;    /* steps done in this epoch (1-based), steps per epoch */
	double train_nll;         /* mean NLL per row over this epoch's batches so far */
	double valid_nll;         /* EPOCH/START: validation NLL; NAN without validation data */
	int improved;             /* EPOCH: valid_nll is a new best (always 1 without validation) */
	double best_valid;        /* best validation NLL so far (NAN without validation) */
	size_t best_epoch;        /* the epoch of the kept params (start_epoch - 1 = initial) */
	size_t since_best;        /* epochs since best_epoch */
	double rows_per_second;   /* training throughput over this epoch so far */
	double eta_seconds;       /* until the last epoch, at the current speed (no early stop assumed) */
	double epoch_seconds;     /* EPOCH: wall time of the epoch, validation included */
	double elapsed;           /* since the start of chain_train */
	unsigned threads;
	uint64_t seed;
	chain_train_stop stop;    /* END: why training stopped */
	const char *checkpoint;   /* options.checkpoint_path */
} chain_train_progress;

typedef void (*chain_train_progress_fn)(const chain_train_progress *p, void *user);

/* ---- training -------------------------------------------------------- */

typedef struct chain_train_options {
	size_t epochs;            /* number of the last epoch (default 10) */
	size_t start_epoch;       /* number of the first epoch (default 1; after a resume, the
	                             checkpoint's epoch + 1); must be <= epochs */
	size_t batch;             /* rows per step (default 100); the last step of an epoch
	                             takes the rest */
	chain_optim_options optim;/* default Adam, lr 0.001 */
	uint64_t seed;            /* shuffles (default 1); written into checkpoints */
	unsigned threads;         /* 0 = one per online core (chain_default_threads) */
	size_t patience;          /* stop after this many epochs without a better validation
	                             NLL (default 5); 0 = never stop early */
	const char *checkpoint_path; /* written at the start and after every epoch with the best
	                                params so far; NULL = no checkpoints.  After an epoch
	                                the bytes are written and the commit (fsync, rename)
	                                runs on a thread while the next epoch computes: the
	                                path holds the previous checkpoint or the new one,
	                                each whole, and the new one by the next
	                                checkpoint's write and by chain_train's return.  A
	                                failed commit is reported there (-1, the file named)
	                                and the kept params are then the previous file's. */
	const char *log_path;     /* CSV: epoch,train_nll,valid_nll,seconds; NULL = none.  A
	                                new log appears (renamed into place) with the first
	                                epoch's line: a run that fails before leaves the path
	                                as it was; then it grows by whole lines */
	int log_append;           /* append to an existing log (no second header) */
	chain_train_progress_fn progress; /* NULL = silent */
	void *progress_user;
} chain_train_options;

void chain_train_defaults(chain_train_options *o);

typedef struct chain_train_result {
	chain_train_stop stop;
	size_t last_epoch;        /* last epoch completed (start_epoch - 1 if none) */
	size_t best_epoch;        /* epoch whose params were returned */
	double best_valid;        /* their validation NLL (NAN without validation data) */
	double last_train_nll;    /* mean training NLL of the last completed epoch (NAN if none) */
	double seconds;
	unsigned threads;         /* threads used */
} chain_train_result;

/* Trains a CHAIN_OBJ_LOGLIK model in place.
 *
 * theta: num_params reals of the model's precision: the starting point on
 * entry (from init or a checkpoint), the kept params on return: the ones with
 * the best validation NLL (the starting point counts) when valid != NULL,
 * else the last ones.  It is trained in place (in between it holds the
 * current params).  Structurally unused entries are set to 0 and never
 * moved.  Each epoch, the kept params are written to checkpoint_path with the
 * metadata epoch, best_epoch, seed, best_valid ("none" without validation),
 * so a killed run leaves a loadable file; with a checkpoint_path they are kept
 * only there (read back at the end), without one in a copy in memory.
 *
 * Memory, for P params, T threads, and reals of 8 bytes (f64): the data,
 * theta, 3 P doubles (Adam's two moments, or SGD's one, and the penalty
 * gradient) and T gradients of P reals; f32 models keep the penalty gradient
 * in floats and add a double master copy (P doubles); no checkpoint_path adds
 * the copy of the kept params.
 *
 * valid may be NULL (no validation, no early stopping).  r may be NULL.
 * Returns 0, or -1 with a message; if the loss becomes NaN or Inf, theta is
 * set back to the kept params (those of the last checkpoint) and the message
 * says where it happened and where the last good checkpoint is. */
int chain_train(const chain_model *m, void *theta, const chain_dataset *train,
                const chain_dataset *valid, const chain_train_options *o,
                chain_train_result *r, chain_error *err);

/* ---- evaluation ------------------------------------------------------ */

typedef struct chain_eval_result {
	size_t rows;
	double mean_nll;          /* nats per row */
	double std_err;           /* sample std of the per-row NLL / sqrt(rows); 0 for one row */
	double bits_per_dim;      /* mean_nll / (num_positions * ln 2); NAN without positions */
} chain_eval_result;

/* Mean negative log-likelihood of the rows of d under theta (num_params
 * reals of the model's precision), logp_batch run over `threads` contiguous
 * chunks (0 = all cores).  The sums are taken in row order, so the result
 * does not depend on the thread count.  A row with log p = -Inf or NaN is
 * not an error: the mean is then Inf or NaN. */
int chain_eval_nll(const chain_model *m, const void *theta, const chain_dataset *d,
                   unsigned threads, chain_eval_result *r, chain_error *err);

/* ---- helpers --------------------------------------------------------- */

/* One thread per online core (at least 1). */
unsigned chain_default_threads(void);

/* *mask = num_params flags, 1 = used, from the params' `used` flags; NULL
 * (and nothing allocated) when every entry is used.  free() it. */
int chain_param_mask(const chain_model *m, uint8_t **mask, chain_error *err);

/* Checks that m can be trained or evaluated: the ABI version, exactly the
 * kernels of its precision, sizes.  `what` names the caller in messages. */
int chain_model_check(const chain_model *m, const char *what, chain_error *err);

/* ---- a ready-made progress printer ----------------------------------- */

/* Pass chain_train_print_progress as options.progress and a
 * chain_progress_printer as progress_user.  On a terminal (tty != 0) it
 * redraws one line with \r (epoch, batch, loss, images/s, ETA) at most ten
 * times a second; otherwise it prints only one line per epoch. */
typedef struct chain_progress_printer {
	FILE *out;                /* usually stderr */
	int tty;                  /* isatty(fileno(out)) */
	int line_open;            /* a \r line is on screen and needs clearing */
	double last_draw;         /* elapsed time of the last redraw */
} chain_progress_printer;

void chain_progress_printer_init(chain_progress_printer *p, FILE *out);
void chain_train_print_progress(const chain_train_progress *p, void *user);

#ifdef __cplusplus
}
#endif
#endif

/* chain/data.h -- data sets: loading, checking against a model, saving. */
#ifndef CHAIN_DATA_H
#define CHAIN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "chain/error.h"
#include "chain/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A table of rows x cols reals, row-major: doubles as loaded, or, after
 * chain_data_compact, one byte per value (values NULL, bytes set).  Rows
 * are converted to the kernels' precision where they are used.  Read a
 * value with chain_data_value() unless the set is known not to be compact. */
typedef struct chain_dataset {
	size_t rows, cols;
	double *values;
	uint8_t *bytes;             /* compact form: every value an integer from 0 to 255 */
} chain_dataset;

/* Value i (row-major) of d, in either form. */
static inline double chain_data_value(const chain_dataset *d, size_t i)
{
	return d->values ? d->values[i] : (double)d->bytes[i];
}

typedef enum chain_binarize {
	CHAIN_BINARIZE_NONE = 0,
	CHAIN_BINARIZE_THRESHOLD,   /* v >= threshold -> 1, else 0 (v scaled to [0,1] first for uint8) */
	CHAIN_BINARIZE_STOCHASTIC,  /* 1 with probability v (v scaled to [0,1]), drawn with
	                               chain_rng_uniform(seed, CHAIN_STREAM_BINARIZE, row, col, 0) */
} chain_binarize;

typedef struct chain_load_options {
	chain_binarize binarize;
	double threshold;           /* for CHAIN_BINARIZE_THRESHOLD */
	uint64_t seed;              /* for CHAIN_BINARIZE_STOCHASTIC */
} chain_load_options;

/* Loads a file, the format chosen by content (magic bytes) and extension:
 *   whitespace text (.amat, .txt, anything else that is text): one row a line;
 *   NumPy .npy (uint8, int32, int64, float32, float64; C order; 1-D = one column,
 *     2-D = rows x cols, N-D = rows x product of the rest);
 *   MNIST IDX (magic 0x0000080X, any dims; first dim = rows);
 * each optionally gzip-compressed (detected by the gzip magic, whatever the name).
 * uint8 IDX/npy values are scaled to [0, 1] only when binarizing; otherwise kept 0..255.
 * opts may be NULL (no binarization). */
int chain_data_load(const char *path, const chain_load_options *opts,
                    chain_dataset *out, chain_error *err);

/* chain_data_load, with the values stored as chain_data_compact would store
 * them; without binarization they are parsed straight into bytes (until one
 * does not fit), so the doubles never take memory. */
int chain_data_load_compact(const char *path, const chain_load_options *opts,
                            chain_dataset *out, chain_error *err);

/* Checks a data set against what the model expects of one observation: cols ==
 * obs_size, and each value fits its variable (bin: 0 or 1; cat(K): integer in
 * 0..K-1; int: integer 0..2^53-1; real: finite), and within the model's
 * value_max (a count a sum's range depends on).  The message names the file, the row
 * and column (1-based), the variable and element, and what was expected. */
int chain_data_check(const chain_dataset *d, const chain_model *m,
                     const char *path, chain_error *err);

/* Writes rows by extension: .amat/.txt (text, integers printed without a
 * decimal point), .npy (float64). Atomically: temp file, fsync, rename. */
int chain_data_save(const char *path, const chain_dataset *d, chain_error *err);

/* Stores d as one byte per value when every value is an integer from 0 to
 * 255 (binary, categorical and small count data: 8 times less memory) and
 * frees the doubles; returns 1 then, 0 when d stays as it is (a value that
 * does not fit, or no memory for the bytes).  chain_train, chain_eval_nll,
 * chain_data_check and chain_data_save take either form, with the same
 * results. */
int chain_data_compact(chain_dataset *d);

void chain_dataset_free(chain_dataset *d);

#ifdef __cplusplus
}
#endif
#endif

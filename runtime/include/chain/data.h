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

/* A table of rows x cols reals, row-major, always double in memory
 * (converted to float when a f32 model needs it). */
typedef struct chain_dataset {
	size_t rows, cols;
	double *values;
} chain_dataset;

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

/* Checks a data set against what the model expects of one observation: cols ==
 * obs_size, and each value fits its variable (bin: 0 or 1; cat(K): integer in
 * 0..K-1; int: integer >= 0; real: finite).  The message names the file, the row
 * and column (1-based), the variable and element, and what was expected. */
int chain_data_check(const chain_dataset *d, const chain_model *m,
                     const char *path, chain_error *err);

/* Writes rows by extension: .amat/.txt (text, integers printed without a
 * decimal point), .npy (float64). Atomically: temp file, fsync, rename. */
int chain_data_save(const char *path, const chain_dataset *d, chain_error *err);

void chain_dataset_free(chain_dataset *d);

#ifdef __cplusplus
}
#endif
#endif

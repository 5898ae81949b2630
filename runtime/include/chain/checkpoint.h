/* chain/checkpoint.h -- parameters as safetensors files.
 *
 * One tensor per param, named and shaped as declared in the model, dtype F64
 * or F32 as the model's precision; the JSON header's __metadata__ holds
 * {"model": NAME, "format": "chain-1"} plus any extra key/values given.
 * Files are written atomically: a temp file beside the target, fsync, rename.
 */
#ifndef CHAIN_CHECKPOINT_H
#define CHAIN_CHECKPOINT_H

#include <stddef.h>
#include "chain/error.h"
#include "chain/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chain_metadata {
	const char *key, *value;
} chain_metadata;

/* theta: num_params reals of the model's precision (double or float).
 * extra: n_extra additional metadata pairs (may be NULL). */
int chain_checkpoint_save(const char *path, const chain_model *m, const void *theta,
                          const chain_metadata *extra, size_t n_extra, chain_error *err);

/* Loads into theta (num_params reals of the model's precision), checking every
 * tensor's name, shape and dtype against the model; a message says what differs
 * (missing tensor, unexpected tensor, shape [3, 4] where the model has [4, 3], ...).
 * An F64 file may be loaded into an F32 model and vice versa (converted).
 * If meta_value != NULL, the value of metadata key meta_key is copied there
 * (meta_cap bytes, "" if absent). */
int chain_checkpoint_load(const char *path, const chain_model *m, void *theta,
                          const char *meta_key, char *meta_value, size_t meta_cap,
                          chain_error *err);

/* Reads only the header of a checkpoint (checked as chain_checkpoint_load
 * checks it: JSON syntax, repeated keys, the format) and returns the
 * __metadata__ values of keys[0..n-1]: values[i] a malloc'd copy, or NULL
 * when the file has no such key (the caller frees them).  On an error every
 * values[i] is NULL. */
int chain_checkpoint_metadata(const char *path, size_t n, const char *const *keys, char **values,
                              chain_error *err);

#ifdef __cplusplus
}
#endif
#endif

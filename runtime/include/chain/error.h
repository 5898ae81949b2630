/* chain/error.h -- how libchain reports bad input.
 *
 * Every libchain function that can fail on bad input (a file, a flag, a
 * parameter) returns 0 on success and -1 on failure, with a one-line message
 * in *err that names the file and the row and column or byte offset, e.g.
 *     "train.amat:17:5: expected 0 or 1 for bin variable x, found 0.5"
 * libchain never prints, exits or aborts on bad input: the caller decides.
 */
#ifndef CHAIN_ERROR_H
#define CHAIN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chain_error {
	char msg[1024];
} chain_error;

/* printf-style: fill err->msg (err may be NULL); always returns -1. */
int chain_error_set(chain_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif

/* train_log.h -- libchain-private: chain_train's CSV log,
 *
 *     epoch,train_nll,valid_nll,seconds
 *     1,243.4157093,206.4383845,7.512
 *
 * written so that a failed run never leaves a partial log nor destroys
 * the previous one.  A new log (or one to append to that does not exist
 * yet or is empty) is written to a temp file beside the path, and renamed
 * into place (atomic_file.c) with the line of the first epoch, so a run
 * that stops before it (a NaN in epoch 1, a checkpoint that cannot be
 * written) leaves the path as it was; it used to be emptied at the start.
 * From then on the file grows a whole line at a time, flushed as it goes
 * (a reader can follow it); a line that cannot be written whole is cut
 * off again.  A path that must not be renamed over (chain__atomic_target:
 * a device, a FIFO, chain's own stderr as --log /dev/stderr) is appended to
 * in place, as before.
 */
#ifndef CHAIN_TRAIN_LOG_H
#define CHAIN_TRAIN_LOG_H

#include <stdio.h>
#include <sys/types.h>

#include "atomic_file.h"
#include "chain/error.h"

typedef struct train_log {
	const char *path;
	FILE *f;          /* NULL: no log */
	int pending;      /* f is af's temp file: the path appears with the first line */
	atomic_file af;
	off_t whole;      /* bytes of whole lines (-1: not a file, nothing to cut) */
} train_log;

/* Opens the log at path (NULL: no log; every call is then a no-op): a new
 * one with its header, or (append) the end of an existing one, with the
 * header only if it has none.  Nothing visible changes at path yet. */
int chain__train_log_open(train_log *l, const char *path, int append, chain_error *err);
/* One epoch's line; valid_nll is left empty when !has_valid. */
int chain__train_log_epoch(train_log *l, size_t epoch, double train_nll, int has_valid, double valid_nll,
                           double seconds, chain_error *err);
/* Closes the log; one that never got a line is dropped, the path as it
 * was.  Always frees; returns -1 (err set) when the last bytes failed. */
int chain__train_log_close(train_log *l, chain_error *err);

#endif

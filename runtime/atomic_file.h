/* atomic_file.h -- libchain-private: files written atomically.
 *
 * Every file libchain writes (data, checkpoints, PNGs) goes to a temp file
 * beside the target, is flushed and fsynced, then renamed over the target,
 * so a reader (or a run killed half-way) never sees a partial file.
 */
#ifndef CHAIN_ATOMIC_FILE_H
#define CHAIN_ATOMIC_FILE_H

#include <stdio.h>

#include "chain/error.h"

typedef struct atomic_file {
	const char *path;
	char *tmp; /* malloc'd temp name beside path */
	FILE *f;
	char *buf; /* f's buffer (malloc'd), or NULL for stdio's own */
} atomic_file;

/* Opens "<path>.tmp-<pid>-<n>" for writing, created exclusively (the name
 * in path cut to its first 64 bytes, so that the temp name is valid
 * whenever path is). */
int chain__atomic_open(atomic_file *af, const char *path, chain_error *err);
/* Drops the temp file; the target is untouched. */
void chain__atomic_abort(atomic_file *af);
/* fsync, rename over the target, fsync the directory. */
int chain__atomic_commit(atomic_file *af, chain_error *err);
/* The same, and *fd = a new descriptor of the file just committed (opened
 * read-write, only ever read through): it keeps naming that file whatever
 * later happens to the path.  close() it. */
int chain__atomic_commit_fd(atomic_file *af, int *fd, chain_error *err);

#endif

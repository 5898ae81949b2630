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
	char *dest; /* malloc'd: the file a symbolic link at path names, or NULL: path */
	char *tmp; /* malloc'd temp name beside dest (or path) */
	FILE *f;
	char *buf; /* f's buffer (malloc'd), or NULL for stdio's own */
} atomic_file;

/* Where a file written to path goes.  CHAIN_TARGET_RENAME: to a temp file
 * beside *dest, renamed over it; *dest is malloc'd when path is a symbolic
 * link (the file it names, so that the rename replaces that file and keeps
 * the link: /dev/stdout is one), else NULL (path itself, which may not
 * exist yet, or be a directory that the rename then refuses).  The others
 * must not be renamed over, *dest NULL: CHAIN_TARGET_DEVICE, something
 * other than a file or a directory (/dev/null, a FIFO, a terminal), where
 * a rename would put a file in place of the device node;
 * CHAIN_TARGET_OWN_STREAM, the file that is this process's stdout or
 * stderr (/dev/stdout when it is redirected to a file), which a rename
 * would take from under the redirection, and what is printed afterwards
 * would go to a removed file.  Out of memory for *dest: path itself. */
typedef enum chain_target {
	CHAIN_TARGET_RENAME,
	CHAIN_TARGET_DEVICE,
	CHAIN_TARGET_OWN_STREAM,
} chain_target;
chain_target chain__atomic_target(const char *path, char **dest);

/* How many bytes of `path` the name of a temporary beside it keeps: its
 * directory, and of its file name 64 bytes at most, cut before a UTF-8
 * continuation byte, so a valid name of up to 255 bytes still gets a
 * valid temporary. */
int chain__tmp_keep(const char *path);

/* Opens "<path>.tmp-<pid>-<n>" for writing, created exclusively (the name
 * in path cut to its first 64 bytes, so that the temp name is valid
 * whenever path is); beside the file that path names when it is a
 * symbolic link.  A target that is not to be renamed over
 * (chain__atomic_target) is refused. */
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

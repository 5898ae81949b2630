/* atomic_bg.h -- libchain-private: committing an atomic file on a thread of
 * its own.
 *
 * The training loop writes a checkpoint after every epoch.  Handing its
 * bytes to the kernel is quick; making them durable is not: fsync of the
 * temp file, rename, fsync of the directory, and closing the descriptor of
 * the file it replaces (the last reference to a removed file: its blocks
 * are freed then) took 2-8 ms of an 80 ms NADE epoch, waiting on the disk.
 * Here that commit runs on a thread while the caller computes the next
 * epoch, and the caller collects its result (join) before it writes the
 * next file and before it returns.  The target path holds, at every
 * moment, either the whole previous file or the whole new one: the rename
 * is the same one chain__atomic_commit_fd makes.
 */
#ifndef CHAIN_ATOMIC_BG_H
#define CHAIN_ATOMIC_BG_H

#include <pthread.h>

#include "atomic_file.h"

typedef struct atomic_bg {
	int pending;      /* a commit was started and not joined */
	int threaded;     /* ... on `thread` (else it already ran on the caller) */
	pthread_t thread;
	atomic_file af;   /* the file being committed: the thread's until joined */
	int old_fd;       /* the caller's descriptor of the file being replaced, or -1 */
	int new_fd;       /* the committed file's descriptor (success only) */
	int rc;
	chain_error err;
} atomic_bg;

void chain__atomic_bg_init(atomic_bg *bg);

/* Takes over af (written but not committed, as chain__atomic_open left it
 * after the writes) and old_fd, and commits af: flush, fsync, rename over
 * the target, fsync of the directory; on success old_fd is closed.  On a
 * thread when one can be started, else right here (the result is then
 * collected by the join all the same).  At most one commit may be pending. */
void chain__atomic_bg_start(atomic_bg *bg, atomic_file *af, int old_fd);

/* Waits for the pending commit, if any.  Success: *fd = a descriptor of the
 * new file (as chain__atomic_commit_fd gives), returns 0.  Failure: the
 * commit's message (naming the file) in err, the temp file removed, the
 * target as it was, *fd = the old_fd given to start, returns -1.  Nothing
 * pending: returns 0, *fd untouched. */
int chain__atomic_bg_join(atomic_bg *bg, int *fd, chain_error *err);

#endif

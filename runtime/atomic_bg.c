/* atomic_bg.c -- an atomic file's commit on a thread of its own (see
 * atomic_bg.h for why). */
#include <string.h>
#include <unistd.h>

#include "atomic_bg.h"

void chain__atomic_bg_init(atomic_bg *bg)
{
	memset(bg, 0, sizeof *bg);
	bg->old_fd = bg->new_fd = -1;
}

/* The commit itself.  The old file's descriptor is closed only once the
 * new file has replaced it: on failure it still names the last good file,
 * which the caller keeps. */
static void *commit(void *arg)
{
	atomic_bg *bg = arg;
	bg->rc = chain__atomic_commit_fd(&bg->af, &bg->new_fd, &bg->err);
	if (bg->rc == 0 && bg->old_fd >= 0) {
		close(bg->old_fd);
		bg->old_fd = -1;
	}
	return NULL;
}

void chain__atomic_bg_start(atomic_bg *bg, atomic_file *af, int old_fd)
{
	bg->af = *af;
	memset(af, 0, sizeof *af);
	bg->old_fd = old_fd;
	bg->new_fd = -1;
	bg->rc = 0;
	bg->pending = 1;
	/* no thread (out of threads or memory): the same commit, synchronously */
	bg->threaded = pthread_create(&bg->thread, NULL, commit, bg) == 0;
	if (!bg->threaded)
		commit(bg);
}

int chain__atomic_bg_join(atomic_bg *bg, int *fd, chain_error *err)
{
	if (!bg->pending)
		return 0;
	if (bg->threaded)
		pthread_join(bg->thread, NULL);
	bg->pending = bg->threaded = 0;
	if (bg->rc != 0) {
		*fd = bg->old_fd;
		bg->old_fd = -1;
		if (err)
			*err = bg->err;
		return -1;
	}
	*fd = bg->new_fd;
	bg->new_fd = -1;
	return 0;
}

/* train_log.c -- chain_train's CSV log: created whole, grown by whole lines
 * (see train_log.h for why). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_log.h"

static const char header[] = "epoch,train_nll,valid_nll,seconds\n";

int chain__train_log_open(train_log *l, const char *path, int append, chain_error *err)
{
	memset(l, 0, sizeof *l);
	l->whole = -1;
	if (!path)
		return 0;
	l->path = path;
	struct stat st;
	int exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode))
		return chain_error_set(err, "%s: cannot open the log for writing: %s", path, strerror(EISDIR));
	char *dest;
	chain_target t = chain__atomic_target(path, &dest);
	free(dest);
	if (t != CHAIN_TARGET_RENAME) {
		/* a device, a FIFO, or the file of chain's own stdout or stderr
		 * (--log /dev/stderr): in place, as chain build writes them, and
		 * appended to, so as not to cut off what the redirection holds */
		l->f = fopen(path, "a");
		if (!l->f)
			return chain_error_set(err, "%s: cannot open the log for writing: %s", path, strerror(errno));
		if (!append)
			fputs(header, l->f);
		return 0;
	}
	if (append && exists && st.st_size > 0) {
		/* appending destroys nothing: the lines go to the end as they come */
		l->f = fopen(path, "a");
		if (!l->f)
			return chain_error_set(err, "%s: cannot open the log for writing: %s", path, strerror(errno));
		l->whole = st.st_size;
		return 0;
	}
	if (chain__atomic_open(&l->af, path, err) != 0)
		return -1;
	l->f = l->af.f;
	l->pending = 1;
	fputs(header, l->f);
	return 0;
}

/* The pending temp file, which now holds the header and a line, renamed
 * over the path; the lines after it are appended to the same file. */
static int commit_pending(train_log *l, chain_error *err)
{
	int fd;
	l->f = NULL;
	l->pending = 0;
	if (chain__atomic_commit_fd(&l->af, &fd, err) != 0)
		return -1;
	off_t end = lseek(fd, 0, SEEK_END);
	l->f = end >= 0 ? fdopen(fd, "a") : NULL;
	if (!l->f) {
		int e = errno;
		close(fd);
		return chain_error_set(err, "%s: cannot write the log: %s", l->path, strerror(e));
	}
	l->whole = end;
	return 0;
}

int chain__train_log_epoch(train_log *l, size_t epoch, double train_nll, int has_valid, double valid_nll,
                           double seconds, chain_error *err)
{
	if (!l->f)
		return 0;
	if (has_valid)
		fprintf(l->f, "%zu,%.10g,%.10g,%.3f\n", epoch, train_nll, valid_nll, seconds);
	else
		fprintf(l->f, "%zu,%.10g,,%.3f\n", epoch, train_nll, seconds);
	if (fflush(l->f) != 0 || ferror(l->f)) {
		int e = errno;
		if (l->whole >= 0 && ftruncate(fileno(l->f), l->whole) != 0) {
			/* nothing more to do: the error below is what counts */
		}
		return chain_error_set(err, "%s: cannot write the log: %s", l->path, strerror(e));
	}
	if (l->pending)
		return commit_pending(l, err);
	if (l->whole >= 0) {
		/* the descriptor's offset: an append stream's ftello is not
		 * always the end before its first write */
		off_t end = lseek(fileno(l->f), 0, SEEK_CUR);
		l->whole = end >= 0 ? end : -1;
	}
	return 0;
}

int chain__train_log_close(train_log *l, chain_error *err)
{
	int rc = 0;
	if (l->pending) {
		chain__atomic_abort(&l->af); /* no epoch was logged: the path as it was */
	} else if (l->f && fclose(l->f) != 0) {
		rc = chain_error_set(err, "%s: cannot write the log: %s", l->path, strerror(errno));
	}
	l->f = NULL;
	l->pending = 0;
	return rc;
}

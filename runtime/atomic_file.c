/* atomic_file.c -- writing a file so that it appears whole or not at all. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"

#define ATOMIC_BUFFER ((size_t)1 << 20)

/* How many bytes of a file name the temp name beside it keeps: a name of
 * up to 255 bytes is valid, but that name plus ".tmp-<pid>-<n>" was not
 * (chain train -o <255 bytes> failed with "File name too long").  64
 * bytes, and a temp name of at most 64 + 32, fit every Linux file
 * system's limit (255, ecryptfs's 143) yet say whose temp file it is.
 * Cut before a UTF-8 continuation byte, so a cut name stays UTF-8.
 * cg_emit.c's tmp_beside names the compiler's outputs with it too. */
#define TMP_NAME_KEEP 64

int chain__tmp_keep(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t n = strlen(name);
	if (n > TMP_NAME_KEEP) {
		n = TMP_NAME_KEEP;
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
	}
	return (int)((size_t)(name - path) + n);
}

chain_target chain__atomic_target(const char *path, char **dest)
{
	struct stat st, lst, out;
	*dest = NULL;
	if (stat(path, &st) != 0)
		return CHAIN_TARGET_RENAME; /* a new file (or a dangling link, replaced as before) */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return CHAIN_TARGET_DEVICE;
	for (int fd = 1; fd <= 2; fd++)
		if (S_ISREG(st.st_mode) && fstat(fd, &out) == 0 && out.st_dev == st.st_dev && out.st_ino == st.st_ino)
			return CHAIN_TARGET_OWN_STREAM;
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
		*dest = realpath(path, NULL);
	return CHAIN_TARGET_RENAME;
}

/* Creates "<dir>/<name>.tmp-<pid>-<n>" exclusively (so two writers never
 * share it), name the target's own cut to TMP_NAME_KEEP bytes, with the
 * mode a plain fopen would give (0666 minus the umask).  Read access too,
 * for chain__atomic_commit_fd's readers. */
int chain__atomic_open(atomic_file *af, const char *path, chain_error *err)
{
	af->path = path;
	af->f = NULL;
	af->buf = NULL;
	af->tmp = NULL;
	/* over a directory the rename fails, and commit says so */
	switch (chain__atomic_target(path, &af->dest)) {
	case CHAIN_TARGET_RENAME:
		break;
	case CHAIN_TARGET_DEVICE:
		return chain_error_set(err, "%s: is not a regular file: chain writes a file beside it and renames it "
		                       "over the target, which must be a file or not exist yet", path);
	case CHAIN_TARGET_OWN_STREAM:
		return chain_error_set(err, "%s: is this command's own standard output or error: chain writes a file "
		                       "beside it and renames it over the target; give another file", path);
	}
	const char *target = af->dest ? af->dest : path;
	af->tmp = malloc(strlen(target) + 64);
	if (!af->tmp) {
		free(af->dest);
		af->dest = NULL;
		return chain_error_set(err, "%s: out of memory", path);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int keep = chain__tmp_keep(target);
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		sprintf(af->tmp, "%.*s.tmp-%ld-%lx", keep, target, (long)getpid(),
		        (unsigned long)ts.tv_nsec + attempt);
		int fd = open(af->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0) {
			int e = errno;
			free(af->tmp); /* not created: nothing to remove */
			af->tmp = NULL;
			chain__atomic_abort(af);
			return chain_error_set(err, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
		}
		af->f = fdopen(fd, "wb");
		if (!af->f) {
			close(fd);
			chain__atomic_abort(af);
			return chain_error_set(err, "%s: out of memory", path);
		}
		/* checkpoints are megabytes written each epoch: stdio's default
		 * buffer would make a system call per 4 KiB (glibc ignores the
		 * size given with a NULL buffer, so the buffer is ours) */
		af->buf = malloc(ATOMIC_BUFFER);
		if (af->buf)
			setvbuf(af->f, af->buf, _IOFBF, ATOMIC_BUFFER);
		return 0;
	}
	free(af->tmp);
	af->tmp = NULL;
	free(af->dest);
	af->dest = NULL;
	return chain_error_set(err, "%s: cannot create a temporary file beside it", path);
}

/* Drops a half-written temp file; the target is untouched. */
void chain__atomic_abort(atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	free(af->buf);
	if (af->tmp) {
		unlink(af->tmp);
		free(af->tmp);
	}
	free(af->dest);
	af->f = NULL;
	af->buf = NULL;
	af->tmp = NULL;
	af->dest = NULL;
}

/* Flushes and fsyncs the temp file, renames it over the target, then fsyncs
 * the directory so the rename itself survives a crash (best effort: some
 * file systems refuse to fsync a directory). */
int chain__atomic_commit(atomic_file *af, chain_error *err)
{
	return chain__atomic_commit_fd(af, NULL, err);
}

/* chain__atomic_commit, and when fd != NULL a duplicate of the temp file's
 * descriptor, taken before the rename so that it names exactly the file
 * written, not whatever the path holds a moment later. */
int chain__atomic_commit_fd(atomic_file *af, int *fd, chain_error *err)
{
	int keep = -1;
	if (fd)
		*fd = -1;
	if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0 ||
	    (fd && (keep = fcntl(fileno(af->f), F_DUPFD_CLOEXEC, 0)) < 0)) {
		int e = errno;
		chain__atomic_abort(af);
		return chain_error_set(err, "%s: cannot write: %s", af->path, strerror(e));
	}
	int rc = fclose(af->f);
	af->f = NULL;
	free(af->buf); /* only after fclose, which flushes from it */
	af->buf = NULL;
	if (rc != 0) {
		int e = errno;
		if (keep >= 0)
			close(keep);
		chain__atomic_abort(af);
		return chain_error_set(err, "%s: cannot write: %s", af->path, strerror(e));
	}
	const char *target = af->dest ? af->dest : af->path;
	if (rename(af->tmp, target) != 0) {
		int e = errno;
		if (keep >= 0)
			close(keep);
		chain__atomic_abort(af);
		return chain_error_set(err, "%s: cannot replace: %s", af->path, strerror(e));
	}
	free(af->tmp);
	af->tmp = NULL;
	const char *slash = strrchr(target, '/');
	char *dir = slash ? strndup(target, (size_t)(slash - target) + 1) : strdup(".");
	if (dir) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	free(af->dest);
	af->dest = NULL;
	if (fd)
		*fd = keep;
	return 0;
}

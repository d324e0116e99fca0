/* Fault injection for the integration tests (test_faults.py), loaded into
 * the server with LD_PRELOAD. Disarmed it only passes calls on.
 *
 * KW_FAULTS_DIR names a folder; while a file there exists, the calls it
 * names fail with EIO on every open file whose path contains the text the
 * file holds (an empty file: every file):
 *   write  - write, pwrite and pwrite64
 *   sync   - fsync and fdatasync
 * The test creates and removes the files while the server runs. */
/* Both pwrite and pwrite64 are replaced: the build's 64-bit file offsets
 * would make one the other. */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

ssize_t write(int fd, const void *buf, size_t n);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off);
int fsync(int fd);
int fdatasync(int fd);

/* The next definition of name after this library's (libc's), into the
 * function pointer at fn (ISO C has no cast from dlsym's void *). */
static void next(const char *name, void *fn, size_t fnlen)
{
	void *p = dlsym(RTLD_NEXT, name);

	memcpy(fn, &p, fnlen);
}

/* Whether the control file `what` is there and fd's path contains its
 * text. Uses only calls this library does not replace. */
static bool armed(const char *what, int fd)
{
	const char *dir = getenv("KW_FAULTS_DIR");
	char ctl[512], match[256], link[64], path[1024];
	ssize_t n, m;
	int cfd;

	if (!dir || snprintf(ctl, sizeof(ctl), "%s/%s", dir, what) >= (int)sizeof(ctl))
		return false;
	if ((cfd = open(ctl, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(cfd, match, sizeof(match) - 1);
	close(cfd);
	if (n < 0)
		return false;
	while (n > 0 && (match[n - 1] == '\n' || match[n - 1] == ' '))
		n--;
	match[n] = '\0';
	if (!match[0])
		return true;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((m = readlink(link, path, sizeof(path) - 1)) < 0)
		return false;
	path[m] = '\0';
	return strstr(path, match) != NULL;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	write_fn real;

	next("write", &real, sizeof(real));

	if (fd > STDERR_FILENO && armed("write", fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	pwrite_fn real;

	next("pwrite", &real, sizeof(real));

	if (armed("write", fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	pwrite_fn real;

	next("pwrite64", &real, sizeof(real));

	if (armed("write", fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n, off);
}

int fsync(int fd)
{
	sync_fn real;

	next("fsync", &real, sizeof(real));

	if (armed("sync", fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}

int fdatasync(int fd)
{
	sync_fn real;

	next("fdatasync", &real, sizeof(real));

	if (armed("sync", fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/state.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define STATE_FILE_MAX 4096

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return KW_ERR_IO;
	if (fsync(fd) < 0)
		r = KW_ERR_IO;
	close(fd);
	return r;
}

/* Writes dir/name atomically and durably, mode 0600. */
static int write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[4096], tmp[4200];
	size_t off = 0;
	int fd, r = KW_ERR_IO;

	if (str_join_path(path, sizeof(path), dir, name) < 0 ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return KW_ERR_TOO_LARGE;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return KW_ERR_IO;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto out;
	if (close(fd) < 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto out;
	r = fsync_dir(dir);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Reads dir/name (at most STATE_FILE_MAX bytes) into buf, NUL-terminated.
 * The file must not be readable by group or other. */
static int read_file(const char *dir, const char *name, char *buf, size_t buflen)
{
	char path[4096];
	struct stat st;
	size_t off = 0;
	int fd, r = KW_ERR_IO;

	if (str_join_path(path, sizeof(path), dir, name) < 0)
		return KW_ERR_TOO_LARGE;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? KW_ERR_NOT_FOUND : KW_ERR_IO;
	if (fstat(fd, &st) < 0)
		goto out;
	if (st.st_mode & 077) {
		r = KW_ERR_PERM;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (off + 1 >= buflen) {
			r = KW_ERR_TOO_LARGE;
			goto out;
		}
		n = read(fd, buf + off, buflen - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	r = 0;
out:
	close(fd);
	return r;
}

/* The value of "name=value" in text (one per line), copied to out. */
static int get_value(const char *text, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = text; *p; ) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			if (len - nl - 1 >= outlen)
				return KW_ERR_INVALID;
			memcpy(out, p + nl + 1, len - nl - 1);
			out[len - nl - 1] = '\0';
			return 0;
		}
		p = eol ? eol + 1 : p + len;
	}
	return KW_ERR_INVALID;
}

int state_prepare(const char *dir, char *msg, size_t msglen)
{
	char keys[4096];
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		str_msg(msg, msglen, "cannot create the state directory %s: %s", dir, strerror(errno));
		return KW_ERR_IO;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		str_msg(msg, msglen, "the state directory %s is not a directory", dir);
		return KW_ERR_IO;
	}
	if (st.st_mode & 077) {
		str_msg(msg, msglen, "the state directory %s must be mode 0700 (it is %04o)", dir,
			(unsigned)(st.st_mode & 07777));
		return KW_ERR_PERM;
	}
	if (str_join_path(keys, sizeof(keys), dir, "keys") < 0) {
		str_msg(msg, msglen, "the state directory's path is too long");
		return KW_ERR_TOO_LARGE;
	}
	if (mkdir(keys, 0700) < 0 && errno != EEXIST) {
		str_msg(msg, msglen, "cannot create %s: %s", keys, strerror(errno));
		return KW_ERR_IO;
	}
	return 0;
}

int state_registration_read(const char *dir, struct agent_registration *reg)
{
	char text[STATE_FILE_MAX];
	int r;

	memset(reg, 0, sizeof(*reg));
	if ((r = read_file(dir, "registration", text, sizeof(text))) < 0)
		goto out;
	if (get_value(text, "device_id", reg->device_id, sizeof(reg->device_id)) < 0 ||
	    get_value(text, "secret", reg->secret, sizeof(reg->secret)) < 0 ||
	    get_value(text, "server", reg->server, sizeof(reg->server)) < 0 ||
	    !*reg->device_id || !*reg->secret)
		r = KW_ERR_INVALID;
out:
	sodium_memzero(text, sizeof(text));
	if (r < 0)
		state_registration_wipe(reg);
	return r;
}

int state_registration_write(const char *dir, const struct agent_registration *reg,
			     bool replace)
{
	char text[STATE_FILE_MAX], path[4096];
	int n, r;

	if (str_join_path(path, sizeof(path), dir, "registration") < 0)
		return KW_ERR_TOO_LARGE;
	if (!replace && access(path, F_OK) == 0)
		return KW_ERR_EXISTS;
	n = snprintf(text, sizeof(text), "device_id=%s\nsecret=%s\nserver=%s\n", reg->device_id,
		     reg->secret, reg->server);
	if (n < 0 || (size_t)n >= sizeof(text))
		r = KW_ERR_TOO_LARGE;
	else
		r = write_file(dir, "registration", text, (size_t)n);
	sodium_memzero(text, sizeof(text));
	return r;
}

void state_registration_wipe(struct agent_registration *reg)
{
	sodium_memzero(reg, sizeof(*reg));
}

static int key_name(const char *key_id, char *name, size_t len)
{
	char canon[KEYID_CANON_LEN + 1], msg[8];

	if (keyid_parse(key_id, strlen(key_id), canon, msg, sizeof(msg)) < 0 ||
	    strcmp(canon, key_id))
		return KW_ERR_INVALID;
	return (size_t)snprintf(name, len, "keys/%s", canon) < len ? 0 : KW_ERR_TOO_LARGE;
}

int state_key_write(const char *dir, const char *key_id, const char *password, int slot,
		    const char *volume)
{
	char name[64], text[128], keys[4096];
	int n, r;

	if ((r = key_name(key_id, name, sizeof(name))) < 0)
		return r;
	if (str_join_path(keys, sizeof(keys), dir, "keys") < 0)
		return KW_ERR_TOO_LARGE;
	n = snprintf(text, sizeof(text), "password=%s\nslot=%d\nvolume=%s\n", password, slot,
		     volume);
	if (n < 0 || (size_t)n >= sizeof(text))
		r = KW_ERR_TOO_LARGE;
	else
		r = write_file(keys, name + 5, text, (size_t)n);
	sodium_memzero(text, sizeof(text));
	return r;
}

int state_key_read(const char *dir, const char *key_id, char password[RECPW_CANON_LEN + 1],
		   int *slot, char volume[KEYID_CANON_LEN + 1])
{
	char name[64], text[256], pw[RECPW_INPUT_MAX], num[16], msg[8], vol[64];
	int64_t s;
	int r;

	if ((r = key_name(key_id, name, sizeof(name))) < 0)
		return r;
	if ((r = read_file(dir, name, text, sizeof(text))) < 0)
		goto out;
	r = KW_ERR_INVALID;
	if (get_value(text, "password", pw, sizeof(pw)) < 0 ||
	    recpw_parse(pw, strlen(pw), password, msg, sizeof(msg)) < 0 ||
	    get_value(text, "slot", num, sizeof(num)) < 0 || str_to_i64(num, -1, 1023, &s) < 0 ||
	    get_value(text, "volume", vol, sizeof(vol)) < 0)
		goto out;
	if (volume && keyid_parse(vol, strlen(vol), volume, msg, sizeof(msg)) < 0)
		goto out;
	*slot = (int)s;
	r = 0;
out:
	sodium_memzero(text, sizeof(text));
	sodium_memzero(pw, sizeof(pw));
	return r;
}

int state_key_remove(const char *dir, const char *key_id)
{
	char name[64], path[4096];
	int r;

	if ((r = key_name(key_id, name, sizeof(name))) < 0)
		return r;
	if (str_join_path(path, sizeof(path), dir, name) < 0)
		return KW_ERR_TOO_LARGE;
	if (unlink(path) < 0 && errno != ENOENT)
		return KW_ERR_IO;
	*strrchr(path, '/') = '\0';
	return fsync_dir(path);
}

int state_key_each(const char *dir, int (*fn)(const char *key_id, void *arg), void *arg)
{
	char keys[4096], name[64];
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (str_join_path(keys, sizeof(keys), dir, "keys") < 0)
		return KW_ERR_TOO_LARGE;
	if (!(d = opendir(keys)))
		return errno == ENOENT ? 0 : KW_ERR_IO;
	while (r == 0 && (e = readdir(d)))
		if (key_name(e->d_name, name, sizeof(name)) == 0)
			r = fn(e->d_name, arg);
	closedir(d);
	return r;
}

static void clean_dir(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d = opendir(dir);
	size_t n;

	if (!d)
		return;
	while ((e = readdir(d))) {
		n = strlen(e->d_name);
		if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp") &&
		    str_join_path(path, sizeof(path), dir, e->d_name) == 0)
			unlink(path);
	}
	closedir(d);
}

void state_clean(const char *dir)
{
	char keys[4096];

	clean_dir(dir);
	if (str_join_path(keys, sizeof(keys), dir, "keys") == 0)
		clean_dir(keys);
}

int state_lock(const char *dir)
{
	char path[4096];
	int fd;

	if (str_join_path(path, sizeof(path), dir, "lock") < 0)
		return KW_ERR_TOO_LARGE;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return KW_ERR_IO;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int busy = errno == EWOULDBLOCK;

		close(fd);
		return busy ? KW_ERR_EXISTS : KW_ERR_IO;
	}
	return fd;
}

int state_last_write(const char *dir, int64_t at, const char *outcome, int64_t interval)
{
	char text[1024], iso[TIME_ISO_LEN];
	int n;

	time_format_iso(at, iso);
	n = snprintf(text, sizeof(text), "at=%s\ninterval=%lld\noutcome=%.900s\n", iso,
		     (long long)interval, outcome);
	if (n < 0 || (size_t)n >= sizeof(text))
		return KW_ERR_TOO_LARGE;
	return write_file(dir, "last-checkin", text, (size_t)n);
}

int state_last_read(const char *dir, int64_t *at, char *outcome, size_t outlen,
		    int64_t *interval)
{
	char text[STATE_FILE_MAX], iso[64], num[32];
	int r;

	if ((r = read_file(dir, "last-checkin", text, sizeof(text))) < 0)
		return r;
	if (get_value(text, "at", iso, sizeof(iso)) < 0 || time_parse_iso(iso, at) < 0 ||
	    get_value(text, "interval", num, sizeof(num)) < 0 ||
	    str_to_i64(num, 0, INT64_MAX, interval) < 0 ||
	    get_value(text, "outcome", outcome, outlen) < 0)
		return KW_ERR_INVALID;
	return 0;
}

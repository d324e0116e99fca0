#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define ACCESS_BUF 16384         /* per thread */
#define ACCESS_FLUSH_AT 12288

static enum log_level min_level = LOG_LVL_INFO;
static _Thread_local time_t cached_sec = -1;
static _Thread_local char cached[32];

/* Access lines wait in a buffer per thread; log_flush() (every second
 * from the server's main loop), a full buffer or the thread's end writes
 * them. */
struct access_buf {
	pthread_mutex_t lock;
	size_t len;
	char data[ACCESS_BUF];
	struct access_buf *next;
};

static pthread_mutex_t bufs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct access_buf *bufs;
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static _Thread_local struct access_buf *mine;

void log_set_level(enum log_level lvl)
{
	min_level = lvl;
}

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* "2026-11-20T08:00:00.123Z level: message\n" into line; returns its length. */
__attribute__((format(printf, 4, 0), nonnull(1, 4)))
static size_t format(char *line, size_t size, enum log_level lvl, const char *fmt,
		     va_list ap)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	struct timespec now;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	/* The date part changes once a second: format it once a second. */
	if (now.tv_sec != cached_sec) {
		gmtime_r(&now.tv_sec, &tm);
		strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = now.tv_sec;
	}
	n = snprintf(line, size, "%s.%03ldZ %s: ", cached, now.tv_nsec / 1000000, names[lvl]);
	vsnprintf(line + n, size - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	return (size_t)n;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	size_t n;

	if (lvl < min_level)
		return;
	va_start(ap, fmt);
	n = format(line, sizeof(line), lvl, fmt, ap);
	va_end(ap);
	/* One write per line keeps concurrent threads' lines whole, without
	 * the stdio lock held across the system call. */
	write_all(line, n);
}

static void flush_locked(struct access_buf *b)
{
	write_all(b->data, b->len);
	b->len = 0;
}

static void thread_gone(void *p)
{
	struct access_buf *b = p, **pp;

	pthread_mutex_lock(&bufs_lock);
	for (pp = &bufs; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	pthread_mutex_unlock(&bufs_lock);
	pthread_mutex_lock(&b->lock);
	flush_locked(b);
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void make_key(void)
{
	pthread_key_create(&buf_key, thread_gone);
}

void log_access(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	size_t n;

	if (LOG_LVL_INFO < min_level)
		return;
	va_start(ap, fmt);
	n = format(line, sizeof(line), LOG_LVL_INFO, fmt, ap);
	va_end(ap);
	if (!mine) {
		pthread_once(&buf_once, make_key);
		if (!(mine = calloc(1, sizeof(*mine)))) {
			write_all(line, n);
			return;
		}
		pthread_mutex_init(&mine->lock, NULL);
		pthread_setspecific(buf_key, mine);
		pthread_mutex_lock(&bufs_lock);
		mine->next = bufs;
		bufs = mine;
		pthread_mutex_unlock(&bufs_lock);
	}
	pthread_mutex_lock(&mine->lock);
	if (mine->len + n > ACCESS_BUF)
		flush_locked(mine);
	memcpy(mine->data + mine->len, line, n);
	mine->len += n;
	if (mine->len >= ACCESS_FLUSH_AT)
		flush_locked(mine);
	pthread_mutex_unlock(&mine->lock);
}

void log_flush(void)
{
	pthread_mutex_lock(&bufs_lock);
	for (struct access_buf *b = bufs; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		flush_locked(b);
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&bufs_lock);
}

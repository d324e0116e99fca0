/* The HTTP server's streamed bodies (http_response.stream), over real HTTP
 * on loopback: a body far larger than any buffer arrives whole and in
 * order while the process's memory stays flat; a failing stream cuts the
 * body short; a client that goes away ends the stream; a stop waits for a
 * stream in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "http/server.h"
#include "util/buf.h"
#include "util/err.h"

#define LINE_LEN 16                       /* "line 00000001\n" padded */
/* 80 MiB of body: more than a handler may buffer (64 MiB); 8 MiB under
 * valgrind, which cannot measure the memory anyway and is 50 times slower. */
#define BIG_LINES (80 * 1024 * 1024 / LINE_LEN)
#define BIG_LINES_VALGRIND (8 * 1024 * 1024 / LINE_LEN)

static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload");
}

static uint64_t big_lines(void)
{
	return under_valgrind() ? BIG_LINES_VALGRIND : BIG_LINES;
}

struct gen {
	uint64_t next, end;
	int fail_after;                   /* parts before an error; -1 never */
	int parts;
};

static atomic_int freed;

static int gen_part(void *arg, struct buf *out)
{
	struct gen *g = arg;
	char line[32];

	if (g->fail_after >= 0 && g->parts++ == g->fail_after)
		return KW_ERR_IO;
	while (g->next < g->end && out->len + LINE_LEN <= HTTP_STREAM_PART) {
		snprintf(line, sizeof(line), "line %010llu\n", (unsigned long long)g->next++);
		if (buf_append(out, line, LINE_LEN) < 0)
			return KW_ERR_NOMEM;
	}
	return g->next == g->end ? 1 : 0;
}

static void gen_free(void *arg)
{
	free(arg);
	atomic_fetch_add(&freed, 1);
}

static int stream_handler(void *app, struct http_request *req, struct http_response *resp)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g)
		return KW_ERR_NOMEM;
	g->end = !strcmp(req->path, "/small") ? 1000 : big_lines();
	g->fail_after = !strcmp(req->path, "/fail") ? 3 : -1;
	resp->status = 200;
	resp->content_type = "text/plain; charset=utf-8";
	resp->stream = gen_part;
	resp->stream_free = gen_free;
	resp->stream_arg = g;
	return 0;
}

static const struct route routes[] = {
	{ .method = "GET", .pattern = "/big", .handler = stream_handler, .reply = HTTP_REPLY_TEXT },
	{ .method = "GET", .pattern = "/small", .handler = stream_handler,
	  .reply = HTTP_REPLY_TEXT },
	{ .method = "GET", .pattern = "/fail", .handler = stream_handler,
	  .reply = HTTP_REPLY_TEXT },
	{ .method = NULL },
};

static struct http_server *start(void)
{
	struct http_server_opts o;
	struct http_server *srv = NULL;
	char msg[256];

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.io_threads = 1;
	o.workers = 2;
	o.routes = routes;
	assert_int_equal(http_server_start(&o, &srv, msg, sizeof(msg)), 0);
	return srv;
}

static int connect_to(struct http_server *srv, const char *path)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(http_server_port(srv)) };
	char req[256];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int n;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
		     path);
	assert_int_equal(write(fd, req, (size_t)n), n);
	return fd;
}

/* Reads the response's head, then decodes the chunked body, checking every
 * line in order. Returns the lines read; *complete says whether the
 * terminating chunk came. */
struct reader {
	int fd;
	char buf[65536];
	size_t len, off;
};

static int rd_byte(struct reader *r)
{
	if (r->off == r->len) {
		ssize_t n = read(r->fd, r->buf, sizeof(r->buf));

		if (n <= 0)
			return -1;
		r->len = (size_t)n;
		r->off = 0;
	}
	return (unsigned char)r->buf[r->off++];
}

static int rd_line(struct reader *r, char *out, size_t outlen)
{
	size_t n = 0;
	int c;

	while ((c = rd_byte(r)) >= 0 && c != '\n')
		if (c != '\r' && n + 1 < outlen)
			out[n++] = (char)c;
	out[n] = '\0';
	return c < 0 ? -1 : 0;
}

static uint64_t read_lines(int fd, bool *complete)
{
	struct reader r = { .fd = fd };
	char line[256], expect[32], got[LINE_LEN + 1];
	uint64_t lines = 0;
	size_t have = 0;
	bool chunked = false;

	*complete = false;
	assert_int_equal(rd_line(&r, line, sizeof(line)), 0);
	assert_string_equal(line, "HTTP/1.1 200 OK");
	while (rd_line(&r, line, sizeof(line)) == 0 && line[0])
		if (!strcasecmp(line, "Transfer-Encoding: chunked"))
			chunked = true;
	assert_true(chunked);
	for (;;) {
		unsigned long size;

		if (rd_line(&r, line, sizeof(line)) < 0)
			return lines;          /* cut short */
		size = strtoul(line, NULL, 16);
		if (size == 0) {
			*complete = true;
			return lines;
		}
		for (unsigned long i = 0; i < size; i++) {
			int c = rd_byte(&r);

			if (c < 0)
				return lines;
			got[have++] = (char)c;
			if (have == LINE_LEN) {
				got[have] = '\0';
				snprintf(expect, sizeof(expect), "line %010llu\n",
					 (unsigned long long)lines);
				assert_string_equal(got, expect);
				lines++;
				have = 0;
			}
		}
		rd_line(&r, line, sizeof(line));   /* the CRLF after the chunk */
	}
}

static long max_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_big_body_streams_in_flat_memory(void **state)
{
	struct http_server *srv = start();
	long before;
	bool complete;
	int fd;

	/* Warm up (threads, first allocations) before the peak is taken. */
	fd = connect_to(srv, "/small");
	assert_int_equal(read_lines(fd, &complete), 1000);
	assert_true(complete);
	close(fd);
	before = max_rss_kib();
	fd = connect_to(srv, "/big");
	assert_int_equal(read_lines(fd, &complete), big_lines());
	assert_true(complete);
	close(fd);
	/* 80 MiB went through; the peak grew by a few parts at most (not
	 * measurable under valgrind, whose own memory it would be). */
	if (!under_valgrind())
		assert_true(max_rss_kib() - before < 16 * 1024);
	http_server_stop(srv, 5000);
	assert_true(atomic_load(&freed) >= 2);
}

static void test_failing_stream_is_cut_short(void **state)
{
	struct http_server *srv = start();
	bool complete;
	int fd = connect_to(srv, "/fail");
	uint64_t lines = read_lines(fd, &complete);

	assert_false(complete);
	assert_true(lines >= 3 * (HTTP_STREAM_PART / LINE_LEN) - 1);
	close(fd);
	http_server_stop(srv, 5000);
}

static void test_client_gone_ends_stream(void **state)
{
	struct http_server *srv = start();
	int before = atomic_load(&freed);
	char buf[4096];
	int fd = connect_to(srv, "/big");

	assert_true(read(fd, buf, sizeof(buf)) > 0);
	close(fd);
	/* The stream is freed once libmicrohttpd sees the client gone; a stop
	 * never aborts on it (a parked connection) and waits for it. */
	http_server_stop(srv, 5000);
	assert_int_equal(atomic_load(&freed), before + 1);
}

static void test_stop_with_stream_in_flight(void **state)
{
	struct http_server *srv = start();
	int before = atomic_load(&freed);
	char buf[4096];
	int fd = connect_to(srv, "/small");

	/* The stream has begun; the stop waits for it to be freed. */
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	http_server_stop(srv, 5000);
	assert_int_equal(atomic_load(&freed), before + 1);
	close(fd);
}

/* A client that stops reading cannot hold a stop: the body going out is
 * cut short and the stream freed. */
static void test_stop_cuts_a_slow_reader(void **state)
{
	struct http_server *srv = start();
	int before = atomic_load(&freed);
	char buf[4096];
	int fd = connect_to(srv, "/big");

	assert_true(read(fd, buf, sizeof(buf)) > 0);
	/* No more reads: the socket's buffers fill and the stream waits. */
	http_server_stop(srv, 200);
	assert_int_equal(atomic_load(&freed), before + 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_big_body_streams_in_flat_memory),
		cmocka_unit_test(test_failing_stream_is_cut_short),
		cmocka_unit_test(test_client_gone_ends_stream),
		cmocka_unit_test(test_stop_with_stream_in_flight),
		cmocka_unit_test(test_stop_cuts_a_slow_reader),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

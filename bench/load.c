/* A small HTTP load generator for durable check-ins: each request escrows
 * a new, valid recovery key for one of the registered devices. wrk can send
 * these too (bench/checkin.lua), but building the random bodies in Lua costs
 * it about a third of a CPU, taken from the server on a small machine; this
 * one costs a few per cent. One thread, epoll, keep-alive connections, one
 * request in flight per connection (like wrk).
 *
 * usage: bench_load HOST PORT CONNECTIONS SECONDS DEVICES_FILE
 *   DEVICES_FILE: lines "SECRET VOLUME_GUID"
 * Prints one JSON line like bench/common.lua's. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/recpw.h"

#define MAX_DEVICES 4096
#define REQ_MAX 2048
#define RESP_MAX 8192
#define HIST_US 1000000          /* latency histogram: 1 µs buckets to 1 s */

struct device {
	char secret[128];
	char volume[64];
};

struct conn {
	int fd;
	char req[REQ_MAX];
	size_t req_len, sent;
	char resp[RESP_MAX];
	size_t got;
	double started;
};

static struct device devices[MAX_DEVICES];
static size_t ndevices, next_device;
static uint32_t *hist;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: plenty for unique key IDs in a benchmark. */
static uint64_t next_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static void build_request(struct conn *c, const char *host, int port)
{
	const struct device *d = &devices[next_device++ % ndevices];
	uint8_t key[16];
	uint64_t a = next_random(), b = next_random();
	char pw[RECPW_CANON_LEN + 1], body[1024];
	int n;

	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(a >> (8 * i)), key[8 + i] = (uint8_t)(b >> (8 * i));
	recpw_from_key(key, pw);
	n = snprintf(body, sizeof(body),
		     "{\"os\": \"Windows 11 Pro 23H2\", \"volumes\": [{\"id\": \"%s\", "
		     "\"mount\": \"C:\", \"type\": \"os\", \"protection\": \"on\", "
		     "\"encryption\": \"xts_aes_256\", \"percent_encrypted\": 100, "
		     "\"recovery_keys\": [{\"key_id\": \"%08X-%04X-%04X-%04X-%012llX\", "
		     "\"recovery_password\": \"%s\"}]}], \"logons\": [{\"user\": "
		     "\"CORP\\\\user\", \"type\": \"local\"}]}",
		     d->volume, (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
		     (unsigned)a & 0xffff, (unsigned)(b >> 48),
		     (unsigned long long)(b & 0xffffffffffffULL), pw);
	c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
				      "POST /api/v1/checkin HTTP/1.1\r\nHost: %s:%d\r\n"
				      "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
				      "Content-Length: %d\r\n\r\n%s", host, port, d->secret, n, body);
	c->sent = 0;
	c->got = 0;
	c->started = now();
}

/* The status of a complete response in c->resp, 0 while incomplete. */
static int response_done(struct conn *c)
{
	char *end, *cl;
	long len;

	c->resp[c->got] = '\0';
	if (!(end = strstr(c->resp, "\r\n\r\n")))
		return 0;
	cl = strcasestr(c->resp, "\r\nContent-Length:");
	len = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
	if ((size_t)(end + 4 - c->resp) + (size_t)len > c->got)
		return 0;
	return (int)strtol(c->resp + 9, NULL, 10);
}

/* Sends what it can of c's request and waits for the rest to be writable,
 * or, once all is sent, for the answer. */
static void send_some(int ep, struct conn *c, uint64_t *errors)
{
	struct epoll_event ev;
	ssize_t r = write(c->fd, c->req + c->sent, c->req_len - c->sent);

	if (r > 0)
		c->sent += (size_t)r;
	else if (r < 0 && errno != EAGAIN)
		(*errors)++;
	ev.events = c->sent < c->req_len ? EPOLLOUT : EPOLLIN;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static long percentile(uint64_t total, double p)
{
	uint64_t want = (uint64_t)((double)total * p), seen = 0;

	for (long i = 0; i < HIST_US; i++)
		if ((seen += hist[i]) > want)
			return i;
	return HIST_US;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct conn *conns;
	struct epoll_event ev, events[256];
	uint64_t requests = 0, non2xx = 0, errors = 0;
	double start, deadline;
	long max_us = 0;
	int nconn, secs, ep;
	FILE *f;

	if (argc != 6 || (nconn = atoi(argv[3])) <= 0 || (secs = atoi(argv[4])) <= 0) {
		fprintf(stderr, "usage: bench_load HOST PORT CONNECTIONS SECONDS DEVICES_FILE\n");
		return 2;
	}
	if (!(f = fopen(argv[5], "r")))
		return perror(argv[5]), 1;
	while (ndevices < MAX_DEVICES &&
	       fscanf(f, "%127s %63s", devices[ndevices].secret, devices[ndevices].volume) == 2)
		ndevices++;
	fclose(f);
	rng ^= (uint64_t)time(NULL) * 0x100000001b3ULL ^ (uint64_t)getpid();
	if (!ndevices || !(hist = calloc(HIST_US + 1, sizeof(*hist))) ||
	    !(conns = calloc((size_t)nconn, sizeof(*conns))))
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	ep = epoll_create1(0);
	for (int i = 0; i < nconn; i++) {
		int one = 1;
		struct conn *c = &conns[i];

		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return perror("connect"), 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		build_request(c, argv[1], atoi(argv[2]));
		send_some(ep, c, &errors);
	}
	start = now();
	deadline = start + secs;
	while (now() < deadline) {
		int n = epoll_wait(ep, events, 256, 100);

		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;
			ssize_t r;
			int status;

			if (c->sent < c->req_len) {
				send_some(ep, c, &errors);
				continue;
			}
			r = read(c->fd, c->resp + c->got, RESP_MAX - 1 - c->got);
			if (r <= 0) {
				if (r == 0 || errno != EAGAIN)
					errors++, deadline = 0;   /* the server closed: stop */
				continue;
			}
			c->got += (size_t)r;
			if (!(status = response_done(c)))
				continue;
			{
				long us = (long)((now() - c->started) * 1e6);

				hist[us < HIST_US ? us : HIST_US]++;
				if (us > max_us)
					max_us = us;
			}
			requests++;
			if (status < 200 || status > 299)
				non2xx++;
			build_request(c, argv[1], atoi(argv[2]));
			if (c->sent < c->req_len)
				send_some(ep, c, &errors);
		}
	}
	printf("{\"requests\": %llu, \"duration_us\": %lld, \"non2xx\": %llu, "
	       "\"socket_errors\": %llu, \"p50_us\": %ld, \"p90_us\": %ld, \"p99_us\": %ld, "
	       "\"max_us\": %ld}\n", (unsigned long long)requests,
	       (long long)((now() - start) * 1e6), (unsigned long long)non2xx,
	       (unsigned long long)errors, percentile(requests, 0.5),
	       percentile(requests, 0.9), percentile(requests, 0.99), max_us);
	for (int i = 0; i < nconn; i++)
		close(conns[i].fd);
	free(conns);
	free(hist);
	return 0;
}

/* libFuzzer target for the configuration reader: config_load on arbitrary
 * bytes, then everything that consumes a loaded configuration. A loaded
 * configuration must survive config_dump and a second load unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "util/buf.h"

#define FUZZ_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Files are memfds, so config_load reads a real file (its fopen, fstat and
 * reader) without touching the disk. */
struct memfile {
	int fd;
	char path[64];
};

static struct memfile input = { -1, "" }, dumped = { -1, "" };

static void write_file(struct memfile *f, const void *data, size_t size)
{
	size_t done = 0;

	if (f->fd < 0) {
		f->fd = memfd_create("fuzz_config", MFD_CLOEXEC);
		if (f->fd < 0)
			abort();
		snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
	}
	if (ftruncate(f->fd, 0) < 0)
		abort();
	while (done < size) {
		ssize_t n = pwrite(f->fd, (const char *)data + done, size - done,
				   (off_t)done);

		if (n <= 0)
			abort();
		done += (size_t)n;
	}
}

/* dump → load → dump must give the same text. */
static void check_round_trip(const struct config *cfg)
{
	struct config again;
	struct buf out, out2;
	char msg[512];

	buf_init(&out, 1 << 20);
	buf_init(&out2, 1 << 20);
	if (config_dump(cfg, &out) < 0)
		abort();
	write_file(&dumped, out.data, out.len);
	if (config_defaults(&again) < 0)
		abort();
	if (config_load(&again, dumped.path, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "dump does not load: %s\n%s", msg, out.data);
		abort();
	}
	if (config_dump(&again, &out2) < 0 || strcmp(out.data, out2.data) != 0) {
		fprintf(stderr, "dump changed:\n%s---\n%s", out.data, out2.data);
		abort();
	}
	config_free(&again);
	buf_free(&out);
	buf_free(&out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const langs[] = { NULL, "", "sv", "sv-SE", "de-DE" };
	struct config cfg;
	char msg[512], host[64];
	uint16_t port;

	if (size > FUZZ_MAX)
		return 0;
	write_file(&input, data, size);
	if (config_defaults(&cfg) < 0)
		abort();
	if (config_load(&cfg, input.path, msg, sizeof(msg)) == 0) {
		config_validate(&cfg, msg, sizeof(msg));
		config_listen_addr(&cfg, host, sizeof(host), &port);
		for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++) {
			ini_text(&cfg.company_name, langs[i]);
			ini_text(&cfg.helpdesk_text, langs[i]);
			ini_text(&cfg.helpdesk_url, langs[i]);
		}
		check_round_trip(&cfg);
	}
	config_free(&cfg);
	return 0;
}

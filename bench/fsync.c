/* The raw fdatasync rate of a file system: writes 4 KiB and calls
 * fdatasync, again and again, for the given seconds, and prints the rate
 * per second. "append" grows the file at every write, as a log does when it
 * grows (each sync also commits the file's new size); "overwrite" rewrites
 * blocks of a file written beforehand, as a log reused after a checkpoint
 * does (and as pg_test_fsync measures).
 *
 * usage: bench_fsync DIR SECONDS [append|overwrite] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCKS 4096   /* 16 MiB written beforehand for "overwrite" */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char path[4096], block[4096];
	double start, secs;
	long n = 0;
	int fd, overwrite;

	if ((argc != 3 && argc != 4) || (secs = strtod(argv[2], NULL)) <= 0 ||
	    (argc == 4 && strcmp(argv[3], "append") && strcmp(argv[3], "overwrite"))) {
		fprintf(stderr, "usage: bench_fsync DIR SECONDS [append|overwrite]\n");
		return 2;
	}
	overwrite = argc == 4 && !strcmp(argv[3], "overwrite");
	snprintf(path, sizeof(path), "%s/fsync-probe.dat", argv[1]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	memset(block, 'k', sizeof(block));
	if (overwrite) {
		for (int i = 0; i < BLOCKS; i++)
			if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
				return 1;
		if (fsync(fd) != 0)
			return 1;
	}
	start = now();
	while (now() - start < secs) {
		off_t at = overwrite ? (off_t)(n % BLOCKS) * (off_t)sizeof(block) :
			(off_t)n * (off_t)sizeof(block);

		if (pwrite(fd, block, sizeof(block), at) != (ssize_t)sizeof(block) ||
		    fdatasync(fd) != 0) {
			perror("write/fdatasync");
			return 1;
		}
		n++;
	}
	printf("%.1f\n", (double)n / (now() - start));
	close(fd);
	unlink(path);
	return 0;
}

/* The raw fdatasync rate of a file system: appends 4 KiB and calls
 * fdatasync, again and again, for the given seconds (as a database's log
 * does on every durable commit), and prints the rate per second.
 *
 * usage: bench_fsync DIR SECONDS */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	int fd;

	if (argc != 3 || (secs = strtod(argv[2], NULL)) <= 0) {
		fprintf(stderr, "usage: bench_fsync DIR SECONDS\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/fsync-probe.dat", argv[1]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	memset(block, 'k', sizeof(block));
	start = now();
	while (now() - start < secs) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) ||
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

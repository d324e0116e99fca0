/* Fuzzes the CSV reader (util/csv.h): no input may crash it or make it
 * loop; every record's fields are NUL-terminated UTF-8 within the caps;
 * each call moves on, and line numbers never go back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/csv.h"
#include "util/err.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct csv_record rec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_reader r;
	enum csv_problem p;
	size_t calls = 0, line = 0, total;
	int rc;

	csv_init(&r, (const char *)data, size);
	while ((rc = csv_next(&r, &rec, &p)) != 0) {
		CHECK(++calls <= size + 1);
		CHECK(rec.line >= line);
		line = rec.line;
		if (rc < 0) {
			CHECK(rc == KW_ERR_INVALID && p != CSV_OK);
			continue;
		}
		CHECK(rc == 1 && p == CSV_OK && rec.n >= 1 && rec.n <= CSV_FIELDS_MAX);
		total = 0;
		for (size_t i = 0; i < rec.n; i++)
			total += strlen(rec.field[i]);
		CHECK(total <= CSV_RECORD_MAX);
	}
	CHECK(csv_next(&r, &rec, &p) == 0);
	return 0;
}

/* Fuzzes import csv's reading and checking of rows (core/import.h,
 * import_check): no input may crash it; the first byte picks the format.
 * No error message may hold what looks like a recovery password, however
 * the file quotes or mislabels its columns; the counts agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/import.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "util/err.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seal *k;
	struct import_request req;
	struct import_report rep;
	int rc;

	if (!k)
		CHECK(sodium_init() >= 0 && seal_generate(&k) == 0);
	if (size < 1)
		return 0;
	memset(&req, 0, sizeof(req));
	req.format = data[0] & 1 ? IMPORT_MBAM : IMPORT_KEYWARDEN;
	req.data = (const char *)data + 1;
	req.len = size - 1;
	req.name = "fuzz.csv";
	req.dest = "fuzz.csv";
	req.source = AUDIT_CLI;
	req.actor = "fuzz";
	req.now = 1795161600;
	rc = import_check(k, &req, &rep);
	CHECK(rc == 0 || rc == KW_ERR_INVALID || rc == KW_ERR_TOO_LARGE);
	CHECK(rep.invalid <= rep.rows);
	CHECK(rep.nerrors <= IMPORT_ERRORS_MAX);
	CHECK(rc != 0 || rep.nerrors == 0);
	CHECK(rc != KW_ERR_INVALID || rep.nerrors > 0);
	for (size_t i = 0; i < rep.nerrors; i++) {
		CHECK(memchr(rep.errors[i].why, '\0', sizeof(rep.errors[i].why)) != NULL);
		CHECK(!recpw_may_contain(rep.errors[i].why));
		CHECK(i == 0 || rep.errors[i - 1].line <= rep.errors[i].line);
	}
	import_report_free(&rep);
	return 0;
}

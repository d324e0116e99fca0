/* libFuzzer target: a check-in body as a device sends it. Whatever the
 * bytes, parsing must not crash or leak, and a body it accepts must hold
 * only canonical key IDs and passwords within the limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/checkin.h"
#include "core/keyid.h"
#include "core/recpw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct field_errors errs;
	struct checkin ci;
	json_t *doc;

	if (size > 64 * 1024)
		return 0;
	doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!doc)
		return 0;
	if (checkin_parse(doc, 1700000000, &ci, &errs) == 0) {
		if (ci.nvolumes > CHECKIN_MAX_VOLUMES || ci.nlogons > CHECKIN_MAX_LOGONS)
			abort();
		for (size_t v = 0; v < ci.nvolumes; v++)
			for (size_t k = 0; k < ci.volumes[v].nkeys; k++) {
				char canon[RECPW_CANON_LEN + 1], id[KEYID_CANON_LEN + 1];
				const struct checkin_key *key = &ci.volumes[v].keys[k];

				if (recpw_parse(key->password, strlen(key->password), canon,
						NULL, 0) != 0 || strcmp(canon, key->password) ||
				    keyid_parse(key->key_id, strlen(key->key_id), id, NULL, 0) != 0 ||
				    strcmp(id, key->key_id))
					abort();
			}
	} else if (errs.n == 0) {
		abort();
	}
	checkin_free(&ci);
	json_decref(doc);
	return 0;
}

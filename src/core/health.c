#include <stdatomic.h>
#include <stdio.h>

#include "core/health.h"
#include "core/keyfile.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timeutil.h"

static int ping_tx(struct store_tx *tx, void *arg)
{
	char v[64];
	int rc = store_meta_get(tx, "master_key_id", v, sizeof(v));

	/* Another instance's rekey shows here first (a shared database). */
	if (rc == 0)
		keyfile_seen(v);
	return rc == KW_ERR_NOT_FOUND ? 0 : rc;
}

/* One probe at a time: nothing else may be writing while writes fail. */
static atomic_bool probing;

static int probe_tx(struct store_tx *tx, void *arg)
{
	char at[TIME_ISO_LEN];

	time_format_iso(time_now(), at);
	return store_meta_set(tx, "health_probe", at);
}

static void probe_done(int rc, void *arg)
{
	atomic_store(&probing, false);
}

int health_check(struct store *s, char *reason, size_t reasonlen)
{
	enum store_state state = store_state(s, reason, reasonlen);

	if (state == STORE_WRITES_FAILING && !atomic_exchange(&probing, true) &&
	    store_write_async(s, probe_tx, NULL, probe_done, NULL) < 0)
		atomic_store(&probing, false);
	if (state != STORE_OK)
		return KW_ERR_UNAVAILABLE;
	if (store_lookup(s, ping_tx, NULL) < 0) {
		snprintf(reason, reasonlen, "store unavailable");
		return KW_ERR_UNAVAILABLE;
	}
	if (keyfile_stale()) {
		snprintf(reason, reasonlen, "the database's master key was replaced (keywarden "
			 "rekey): restart keywarden with the new key file");
		return KW_ERR_UNAVAILABLE;
	}
	return 0;
}

#include "core/database.h"
#include "store/store.h"
#include "util/err.h"

int database_migrate(const char *database, int *from, int *to, char *msg, size_t msglen)
{
	const struct store_ops *ops;
	const char *location;
	struct store *s = NULL;
	int rc;

	/* Opened through the backend itself: store_open would migrate already,
	 * and could not tell the versions before and after. */
	if (!(ops = store_backend(database, &location, msg, msglen)))
		return KW_ERR_INVALID;
	if ((rc = ops->open(location, &s, msg, msglen)) < 0)
		return rc;
	rc = ops->migrate(s, from, to, msg, msglen);
	ops->close(s);
	return rc;
}

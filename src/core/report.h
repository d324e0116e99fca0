/* The help desk's reports (SPEC §4): the recovery audit report, the keys
 * disclosed and not yet rotated, and compliance. Each is read a page at a
 * time, each page its own store read, so that a report of any size is
 * shown or streamed as CSV in bounded memory. No report holds a recovery
 * password: audit records never hold one, and key records are handed on
 * without their sealed passwords. */
#ifndef KW_CORE_REPORT_H
#define KW_CORE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

struct store;

#define REPORT_PAGE 50           /* records of a page shown */
#define REPORT_CSV_PAGE 500      /* records of a CSV part */

/* ---- the recovery audit report ---- */

/* A page of audit records, copied: it outlives the store read. */
struct report_audit {
	struct audit_rec *recs;  /* newest first */
	size_t n;
	bool older, newer;       /* records matching the filter lie beyond the
				  * page: after its last, before its first */
	char **strs;             /* the copies (report_audit_free) */
	size_t nstrs, capstrs, cap;
};

/* Reads the page of records matching f (NULL = all; its after_seq and
 * limit are not used) next to the record cursor (0 = the newest page):
 * older ones when newer is false, else newer ones, at most limit (> 0), and
 * whether more lie each way. out is emptied first; free it with
 * report_audit_free whatever the result. */
int report_audit_page(struct store *s, const struct audit_filter *f, int64_t cursor,
		      bool newer, int64_t limit, struct report_audit *out);
void report_audit_free(struct report_audit *r);

#define REPORT_AUDIT_CSV_HEADER "time,source,result,helpdesk_user,end_user,computer," \
	"key_id,key_type,reason,client\r\n"

/* Appends to out the CSV rows (RFC 4180, CRLF; a cell starting with = + -
 * or @ is quoted and starts with ') of the next REPORT_CSV_PAGE records
 * matching f, newest first, after the record *cursor (0 = from the
 * newest), and sets *cursor to the last one written. Returns 1 when no
 * record is left after them (out may be empty then), 0 when more may
 * follow, or an error (out is reset: nothing of the part is kept). Time is
 * ISO 8601 UTC. */
int report_audit_csv(struct store *s, const struct audit_filter *f, int64_t *cursor,
		     struct buf *out);

/* ---- keys disclosed and not yet rotated ---- */

/* One key of the report: no password, sealed or not. */
struct report_unrotated {
	const char *key_id;
	const char *device_id;
	const char *computer;
	const char *mount;
	int64_t disclosed_at;
	int64_t changed_at, row;         /* the key's place: the cursor */
};
typedef int (*report_each_unrotated)(const struct report_unrotated *k, void *arg);

/* Calls cb for at most limit (> 0) keys in state disclosed, oldest
 * disclosure first, after the key (after_changed, after_row) ((0, 0) =
 * from the first), in one store read that is never retried (a transient
 * conflict: KW_ERR_UNAVAILABLE, and cb may have seen part of the page). */
int report_unrotated_page(struct store *s, int64_t after_changed, int64_t after_row,
			  int64_t limit, report_each_unrotated cb, void *arg);

#define REPORT_UNROTATED_CSV_HEADER "computer,device_id,volume,key_id,disclosed_at," \
	"days_since\r\n"

/* The next CSV part of the report (as report_audit_csv): rows after the
 * key at *after_changed, *after_row, both advanced; days_since counted to
 * now, in whole days. */
int report_unrotated_csv(struct store *s, int64_t now, int64_t *after_changed,
			 int64_t *after_row, struct buf *out);

/* ---- compliance ---- */

enum compliance_state {
	COMPLIANCE_COMPLIANT = 0,
	COMPLIANCE_NON_COMPLIANT = 1,
	COMPLIANCE_UNKNOWN = 2,
};
#define COMPLIANCE_STATES 3
const char *compliance_state_name(enum compliance_state s);

/* Whether a volume must be protected: an os or fixed volume (removable
 * ones are reported, never required). */
bool compliance_volume_required(const struct volume_rec *v);
/* Whether a required volume is as it must be: protection on, 100 %
 * encrypted with a method (not "" or "none"), an active key escrowed. */
bool compliance_volume_ok(const struct volume_keys_rec *v);

/* A device's state at now (doc/behaviour.md, "Compliance"):
 * unknown    never checked in, or last checked in more than stale_after
 *            seconds before now;
 * compliant  otherwise, when it reported at least one required volume and
 *            every required volume is compliance_volume_ok;
 * non_compliant otherwise. */
enum compliance_state compliance_of(const struct device_volumes_rec *d, int64_t now,
				    int64_t stale_after);

/* Calls cb for at most limit (> 0) devices with their volumes, by name,
 * after the device after_id (NULL = from the first), in one store read;
 * *last gets the last device's ID ("" when none). cb is called once per
 * device (the page is read whole before the first call). */
int report_compliance_page(struct store *s, const char *after_id, int64_t limit,
			   store_each_device_volumes cb, void *arg,
			   char last[STORE_ID_LEN + 1]);

struct compliance_summary {
	int64_t devices;
	int64_t n[COMPLIANCE_STATES];
	int64_t counted_at;          /* when these counts were made */
};

/* A count that took longer than this (a large site) is reused ... */
#define REPORT_SUMMARY_SLOW_MS 500
/* ... for this many seconds; a quicker one is made afresh every time. */
#define REPORT_SUMMARY_REUSE_S 60

/* Counts every device by state at now, a page at a time. When the last
 * count of this store and stale_after took longer than
 * REPORT_SUMMARY_SLOW_MS and is less than REPORT_SUMMARY_REUSE_S old, it
 * is returned instead (counted_at says when it was made); one count runs
 * at a time, so viewers of a large site wait for it rather than each
 * reading every device. */
int report_compliance_summary(struct store *s, int64_t now, int64_t stale_after,
			      struct compliance_summary *out);

#define REPORT_COMPLIANCE_CSV_HEADER "computer,device_id,domain,os,last_checkin,state," \
	"mount,type,protection,encryption,percent,active_key_escrowed\r\n"

/* The next CSV part of the report (as report_audit_csv): a row per volume
 * of each device after *after_id ("" = from the first; updated), the
 * device's columns repeated; a device without volumes has one row with
 * them empty. */
int report_compliance_csv(struct store *s, int64_t now, int64_t stale_after,
			  char after_id[STORE_ID_LEN + 1], struct buf *out);

#endif

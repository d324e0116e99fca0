/* Web sessions (SPEC §3.7, §7): a 256-bit random ID in a cookie, stored only
 * as its SHA-256; a CSRF token per session; the idle timeout and the maximum
 * lifetime enforced here on every request, whatever the browser does. */
#ifndef KW_AUTH_SESSION_H
#define KW_AUTH_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/secret.h"

#define SESSION_COOKIE_TLS "__Host-keywarden"
#define SESSION_COOKIE_PLAIN "keywarden"
#define CSRF_LEN 43                        /* base64url of 32 bytes */

struct store;

struct session {
	uint8_t hash[SECRET_HASH_LEN];
	char user[IDENTITY_NAME_MAX + 1];
	unsigned roles;
	struct identity id;
	char csrf[CSRF_LEN + 1];
	bool notice_accepted;
	int64_t created_at;
	int64_t last_seen;
};

struct session_limits {
	int64_t idle;            /* seconds; 0 = no idle timeout */
	int64_t max_lifetime;    /* seconds; 0 = none */
};

/* Starts a session for u: a new ID (written to id, for the cookie) and a
 * new CSRF token. */
int session_create(struct store *s, const struct auth_user *u, int64_t now,
		   char id[SECRET_TEXT_MAX], struct session *out);

/* The session whose ID is id. KW_ERR_NOT_FOUND when there is none;
 * KW_ERR_EXPIRED when it was idle or alive too long (it is deleted). */
int session_load(struct store *s, const char *id, int64_t now,
		 const struct session_limits *lim, struct session *out);

/* Records activity at now; notice >= 0 also sets notice acceptance.
 * KW_ERR_NOT_FOUND when the session ended meanwhile (signed out elsewhere,
 * purged, its account disabled); session_activity too. */
int session_touch(struct store *s, struct session *ss, int64_t now, int notice);

/* Records activity of a page view at now, coalesced: written only when the
 * stored time is at least session_touch_interval(lim) old, so a burst of
 * page views costs one durable write. The server then ends the session up
 * to that interval early (its idle time counts from the stored time), and
 * the countdown a page shows (session_remaining) counts from it too. */
int session_activity(struct store *s, struct session *ss, int64_t now,
		     const struct session_limits *lim);

/* Seconds between writes of a session's activity: a twentieth of the idle
 * timeout, at least 1 (whole seconds are stored) and at most 30. */
int64_t session_touch_interval(const struct session_limits *lim);

/* Ends the session server-side. */
int session_end(struct store *s, const struct session *ss);

/* Seconds left before the server ends the session (idle or lifetime,
 * whichever is first); -1 when neither applies. The server ends it once
 * this is below zero. */
int64_t session_remaining(const struct session *ss, int64_t now,
			  const struct session_limits *lim);

/* Deletes every session past its limits. */
int session_purge(struct store *s, int64_t now, const struct session_limits *lim);

#endif

/* Directory sign-in (SPEC §8) through OpenLDAP's libldap: the service
 * account finds the user with [ldap] user_filter, the user's own bind
 * checks the password, and [roles] maps the groups that hold the user's DN
 * to roles.
 *
 * Every sign-in opens a connection of its own (libldap handles are not
 * shared between threads) and gives up at the sign-in's deadline: each
 * step waits at most until then (asynchronous calls and ldap_result with
 * the time left), connecting at most [ldap] timeout. Where libldap itself
 * does not stop (Debian bookworm's 2.5.13 loops without end in the TLS
 * handshake of an ldaps:// server that accepted the connection and hangs),
 * a watchdog thread shuts the connection's socket down shortly after the
 * deadline, which makes whatever waits on it fail. Anything the
 * directory side gets wrong (not reachable, TLS refused, the service
 * account refused, a timeout) is KW_ERR_UNAVAILABLE with the reason for
 * the log: the next backend (a local break-glass admin) still runs, and
 * nobody is let in. Only the user's own bind refused is KW_ERR_AUTH. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>
#include <sodium.h>

#include "auth/auth.h"
#include "auth/ldap.h"
#include "core/config.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"

/* Calls in progress at once: a directory that hangs holds at most this
 * many sign-in threads; the rest wait at the gate until their deadline. */
#define LDAP_MAX_CONCURRENT 16
#define FILTER_MAX AUTH_LDAP_FILTER_MAX
#define BIND_PASSWORD_MAX 1024     /* bind_password_file, at most */
#define NEST_MAX 1024              /* a user's groups whose own groups keywarden
				    * looks at (one level of nesting) */
#define MESSAGE_MAX (1024 * 1024)  /* bytes of one message from the directory
				    * (an entry, a result); larger: an error */
#define ATTR_MAX IDENTITY_NAME_MAX /* a name attribute longer than this is ignored */
#define WATCH_GRACE_MS 250         /* the watchdog acts this long after a deadline */

/* Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: member that holds the DN
 * through any depth of nested groups. OpenLDAP does not know it and treats
 * that part of the filter as undefined (false in an OR). */
#define AD_IN_CHAIN "1.2.840.113556.1.4.1941"

/* The watchdog: one slot per call in progress (the chain's gate lets at
 * most LDAP_MAX_CONCURRENT in), each with its connection's socket once
 * connected. Slots change only under lock, and a socket is shut down only
 * under lock while its slot holds it: a call leaves its slot before
 * libldap closes the socket, so a reused descriptor is never touched. */
struct watch {
	pthread_mutex_t lock;
	pthread_cond_t changed;               /* CLOCK_MONOTONIC */
	pthread_t thread;
	bool stop;
	struct {
		bool used, fired;
		int fd;                       /* -1 until connected */
		int64_t deadline_ms;
	} slot[LDAP_MAX_CONCURRENT];
};

struct ldapb {
	struct watch watch;
	bool watching;                        /* watch.thread runs */
	char *uri, *base_dn, *bind_dn, *pw_file, *filter;
	char netbios[16];
	const char *netbios_dns;              /* its DNS domain, or NULL */
	bool starttls;
	int64_t timeout_ms;
	char *role_dn[ROLE_COUNT];            /* normalized, or NULL */
	struct identity_domains domains;
};

/* What a search for a user found. */
struct person {
	char *dn;                             /* ldap_memfree */
	char sam[ATTR_MAX + 1], upn[ATTR_MAX + 1], uid[ATTR_MAX + 1];
	unsigned roles;                       /* of the role groups found so far */
	char **nest;                          /* the first NEST_MAX groups holding
					       * the DN, normalized, free() */
	size_t nnest;
	bool nest_cut;                        /* there were more */
};

static void person_free(struct person *p)
{
	if (p->dn)
		ldap_memfree(p->dn);
	for (size_t i = 0; i < p->nnest; i++)
		free(p->nest[i]);
	free(p->nest);
	memset(p, 0, sizeof(*p));
}

char *auth_ldap_dn_norm(const char *dn)
{
	char *out = NULL, *copy;

	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAP, &out, LDAP_DN_FORMAT_LDAPV3) !=
	    LDAP_SUCCESS || !out)
		return NULL;
	copy = strdup(out);
	ldap_memfree(out);
	return copy;
}

/* Reads the service account's password from a regular file that others
 * cannot read (its group may: root:keywarden 0640): at most
 * BIND_PASSWORD_MAX bytes, one trailing newline (LF or CRLF) dropped. 0, or
 * KW_ERR_IO / KW_ERR_PERM / KW_ERR_TOO_LARGE / KW_ERR_INVALID (empty) with
 * the reason in why. The caller wipes pw. */
static int read_bind_password(const char *path, char pw[BIND_PASSWORD_MAX + 2],
			      size_t *len, char *why, size_t whylen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		str_msg(why, whylen, "cannot read bind_password_file %s: %s", path,
			strerror(errno));
		return KW_ERR_IO;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		str_msg(why, whylen, "bind_password_file %s is not a regular file", path);
		close(fd);
		return KW_ERR_IO;
	}
	if (st.st_mode & 007) {
		str_msg(why, whylen, "bind_password_file %s is accessible by others (mode "
			"%04o); run chmod o= %s", path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return KW_ERR_PERM;
	}
	while (got < BIND_PASSWORD_MAX + 1) {
		n = read(fd, pw + got, BIND_PASSWORD_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_msg(why, whylen, "cannot read bind_password_file %s: %s", path,
				strerror(errno));
			close(fd);
			return KW_ERR_IO;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got > BIND_PASSWORD_MAX) {
		str_msg(why, whylen, "bind_password_file %s is longer than %d bytes", path,
			BIND_PASSWORD_MAX);
		return KW_ERR_TOO_LARGE;
	}
	if (got && pw[got - 1] == '\n')
		got--;
	if (got && pw[got - 1] == '\r')
		got--;
	pw[got] = '\0';
	if (got == 0 || memchr(pw, '\0', got)) {
		str_msg(why, whylen, "bind_password_file %s holds no password (or a NUL byte)",
			path);
		return KW_ERR_INVALID;
	}
	*len = got;
	return 0;
}

static void *watch_run(void *arg)
{
	struct watch *w = arg;
	struct timespec until;
	int64_t now, next;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		now = time_mono_ms();
		next = INT64_MAX;
		for (size_t i = 0; i < LDAP_MAX_CONCURRENT; i++) {
			if (!w->slot[i].used || w->slot[i].fired)
				continue;
			if (w->slot[i].deadline_ms + WATCH_GRACE_MS <= now) {
				if (w->slot[i].fd >= 0)
					shutdown(w->slot[i].fd, SHUT_RDWR);
				w->slot[i].fired = true;
			} else if (w->slot[i].deadline_ms + WATCH_GRACE_MS < next) {
				next = w->slot[i].deadline_ms + WATCH_GRACE_MS;
			}
		}
		if (next == INT64_MAX) {
			pthread_cond_wait(&w->changed, &w->lock);
		} else {
			until.tv_sec = (time_t)(next / 1000);
			until.tv_nsec = (long)(next % 1000) * 1000000;
			pthread_cond_timedwait(&w->changed, &w->lock, &until);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Starts the watchdog: 0 or KW_ERR_NOMEM. */
static int watch_start(struct watch *w)
{
	pthread_condattr_t attr;
	int e;

	for (size_t i = 0; i < LDAP_MAX_CONCURRENT; i++)
		w->slot[i].fd = -1;
	if (pthread_condattr_init(&attr))
		return KW_ERR_NOMEM;
	e = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!e)
		e = pthread_cond_init(&w->changed, &attr);
	pthread_condattr_destroy(&attr);
	if (e)
		return KW_ERR_NOMEM;
	if (pthread_mutex_init(&w->lock, NULL)) {
		pthread_cond_destroy(&w->changed);
		return KW_ERR_NOMEM;
	}
	if (pthread_create(&w->thread, NULL, watch_run, w)) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->changed);
		return KW_ERR_NOMEM;
	}
	return 0;
}

static void watch_stop(struct watch *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->changed);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->changed);
}

/* A slot for a call with this deadline: its index, or -1 when none is free
 * (more calls than the chain's gate lets in). */
static int watch_enter(struct watch *w, int64_t deadline_ms)
{
	int got = -1;

	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < LDAP_MAX_CONCURRENT && got < 0; i++) {
		if (!w->slot[i].used) {
			w->slot[i].used = true;
			w->slot[i].fired = false;
			w->slot[i].fd = -1;
			w->slot[i].deadline_ms = deadline_ms;
			got = i;
		}
	}
	pthread_cond_signal(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return got;
}

/* The slot's socket (fd), or none (-1). A socket connected after the
 * deadline is shut down at once. No slot (-1): nothing to do. */
static void watch_fd(struct watch *w, int slot, int fd)
{
	if (slot < 0 || slot >= LDAP_MAX_CONCURRENT)
		return;
	pthread_mutex_lock(&w->lock);
	w->slot[slot].fd = fd;
	if (fd >= 0 && w->slot[slot].fired)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&w->lock);
}

/* A new deadline for the slot's call (a long task, step by step). */
static void watch_renew(struct watch *w, int slot, int64_t deadline_ms)
{
	if (slot < 0 || slot >= LDAP_MAX_CONCURRENT)
		return;
	pthread_mutex_lock(&w->lock);
	w->slot[slot].deadline_ms = deadline_ms;
	pthread_cond_signal(&w->changed);
	pthread_mutex_unlock(&w->lock);
}

static void watch_leave(struct watch *w, int slot)
{
	pthread_mutex_lock(&w->lock);
	w->slot[slot].used = false;
	w->slot[slot].fd = -1;
	pthread_mutex_unlock(&w->lock);
}

static void ldapb_free(struct ldapb *l)
{
	if (!l)
		return;
	if (l->watching)
		watch_stop(&l->watch);
	free(l->uri);
	free(l->base_dn);
	free(l->bind_dn);
	free(l->pw_file);
	free(l->filter);
	for (size_t i = 0; i < ROLE_COUNT; i++)
		free(l->role_dn[i]);
	free(l);
}

static int ldapb_open(const struct config *cfg, struct store *s, void **ctx, char *msg,
		      size_t msglen)
{
	const struct ldap_conf *lc = &cfg->ldap;
	struct ldapb *l = NULL;
	char pw[BIND_PASSWORD_MAX + 2];
	size_t pwlen;
	int demand = LDAP_OPT_X_TLS_DEMAND, rc;

	(void)s;
	*ctx = NULL;
	if (!*lc->uri || !*lc->base_dn) {
		str_msg(msg, msglen, "[auth] backends names ldap: [ldap] needs uri and base_dn");
		return KW_ERR_INVALID;
	}
	if ((rc = ldap_conf_validate(lc, msg, msglen)) < 0)
		return rc;
	if (*lc->bind_dn && !*lc->bind_password_file) {
		str_msg(msg, msglen, "[ldap] bind_dn needs bind_password_file");
		return KW_ERR_INVALID;
	}
	if (*lc->bind_dn) {
		/* Read now so that a missing file stops start-up, and again at
		 * every sign-in (a changed password needs no restart). */
		rc = read_bind_password(lc->bind_password_file, pw, &pwlen, msg, msglen);
		sodium_memzero(pw, sizeof(pw));
		if (rc < 0)
			return rc;
	}
	if (!(l = calloc(1, sizeof(*l))) || !(l->uri = strdup(lc->uri)) ||
	    !(l->base_dn = strdup(lc->base_dn)) || !(l->bind_dn = strdup(lc->bind_dn)) ||
	    !(l->pw_file = strdup(lc->bind_password_file)) ||
	    !(l->filter = strdup(lc->user_filter))) {
		ldapb_free(l);
		str_msg(msg, msglen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	snprintf(l->netbios, sizeof(l->netbios), "%s", lc->netbios_domain);
	l->starttls = lc->starttls;
	l->timeout_ms = lc->timeout * 1000;
	l->domains = cfg->domains;
	for (size_t i = 0; i < l->domains.n; i++)
		if (*l->netbios && str_ieq(l->domains.dom[i].netbios, l->netbios))
			l->netbios_dns = l->domains.dom[i].dns;
	for (size_t i = 0; i < ROLE_COUNT; i++) {
		const char *g = cfg->role_groups[i];

		if (!g || !*g)
			continue;
		if (!(l->role_dn[i] = auth_ldap_dn_norm(g))) {
			str_msg(msg, msglen, "[roles] %s: '%.200s' is not a DN", role_list[i], g);
			ldapb_free(l);
			return KW_ERR_INVALID;
		}
	}
	/* Certificates are always checked, whatever ldap.conf or LDAPTLS_REQCERT
	 * say; the trusted CAs are libldap's (ldap.conf TLS_CACERT, or
	 * LDAPTLS_CACERT in the environment, else the system's). Global
	 * options are set here, once, before any connection. */
	if (ldap_set_option(NULL, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS) {
		str_msg(msg, msglen, "libldap refuses to check TLS certificates");
		ldapb_free(l);
		return KW_ERR_INVALID;
	}
	if ((rc = watch_start(&l->watch)) < 0) {
		str_msg(msg, msglen, "cannot start the directory's watchdog: %s",
			kw_strerror(rc));
		ldapb_free(l);
		return rc;
	}
	l->watching = true;
	*ctx = l; /* owned by the chain */
	return 0;
}

static void ldapb_close(void *ctx)
{
	ldapb_free(ctx);
}

/* One sign-in's connection and its deadline. */
struct conn {
	struct ldapb *l;
	LDAP *ld;
	int64_t deadline_ms;
	char *why;                            /* out->reason */
	size_t whylen;
	int slot;                             /* in l->watch, or -1 */
	struct ldap_conncb cb;                /* tells the watchdog the socket */
};

static int conn_cb_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
		       struct ldap_conncb *cb)
{
	struct conn *c = cb->lc_arg;
	ber_socket_t fd = -1;

	ber_len_t max = MESSAGE_MAX;

	(void)ld, (void)srv, (void)addr;
	/* However much a directory sends, no one message grows past this. */
	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max) != 1)
		return -1;
	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) > 0 && fd >= 0)
		watch_fd(&c->l->watch, c->slot, fd);
	return 0;
}

/* libldap closes the socket after this. */
static void conn_cb_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *cb)
{
	struct conn *c = cb->lc_arg;

	(void)ld, (void)sb;
	watch_fd(&c->l->watch, c->slot, -1);
}

/* The time left, capped at [ldap] timeout; 0 when none is left. */
static int64_t left_ms(const struct conn *c)
{
	int64_t left = c->deadline_ms - time_mono_ms();

	if (left > c->l->timeout_ms)
		left = c->l->timeout_ms;
	return left > 0 ? left : 0;
}

static struct timeval tv_ms(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

/* The reason for the log of an error code of ld, with the server's
 * diagnostic message where there is one. */
static void conn_why(struct conn *c, const char *what, int code)
{
	char *diag = NULL;

	if (c->ld)
		ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	/* libldap's TLS layer leaves this placeholder: it says nothing. */
	if (diag && !strcmp(diag, "(unknown error code)"))
		diag[0] = '\0';
	str_msg(c->why, c->whylen, "%s: %s: %s%s%s", c->l->uri, what, ldap_err2string(code),
		diag && *diag ? ": " : "", diag && *diag ? diag : "");
	if (diag)
		ldap_memfree(diag);
}

/* Waits for the whole answer to msgid until the deadline. 0 with *res
 * (ldap_msgfree), or KW_ERR_UNAVAILABLE with c->why. */
static int conn_wait(struct conn *c, int msgid, const char *what, LDAPMessage **res)
{
	int64_t left = left_ms(c);
	struct timeval tv = tv_ms(left);
	int rc, code = LDAP_OTHER;

	*res = NULL;
	if (left <= 0) {
		str_msg(c->why, c->whylen, "%s: %s: no answer in time", c->l->uri, what);
		return KW_ERR_UNAVAILABLE;
	}
	errno = 0;
	rc = ldap_result(c->ld, msgid, LDAP_MSG_ONE, &tv, res);
	if (rc > 0)
		return 0;
	if (*res) {
		ldap_msgfree(*res);
		*res = NULL;
	}
	if (rc == 0) {
		ldap_abandon_ext(c->ld, msgid, NULL, NULL);
		str_msg(c->why, c->whylen, "%s: %s: no answer in %lld ms", c->l->uri, what,
			(long long)left);
		return KW_ERR_UNAVAILABLE;
	}
	/* Most likely liblber's refusal of a message above
	 * LBER_SB_OPT_SET_MAX_INCOMING (errno may be overwritten while libldap
	 * drops the connection; either way the directory is not answering). */
	if (errno == ERANGE) {
		str_msg(c->why, c->whylen, "%s: %s: the directory sent a message larger than "
			"%d bytes", c->l->uri, what, MESSAGE_MAX);
		return KW_ERR_UNAVAILABLE;
	}
	ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &code);
	conn_why(c, what, code);
	return KW_ERR_UNAVAILABLE;
}

/* Reads the answer to the search msgid one message at a time, each waited
 * for until the deadline: every entry goes to each (a negative return stops
 * the search, abandoned, and is returned; so does a positive one, which is
 * not an error), references are skipped, and the final result is *result
 * (ldap_msgfree). Nothing is kept between messages, so a directory that
 * sends without end costs time (up to the deadline), not memory. 0,
 * KW_ERR_UNAVAILABLE with c->why, or each's return. */
static int conn_read(struct conn *c, int msgid, const char *what,
		     int (*each)(LDAPMessage *, void *), void *arg, LDAPMessage **result)
{
	LDAPMessage *m = NULL;
	int rc;

	*result = NULL;
	for (;;) {
		if ((rc = conn_wait(c, msgid, what, &m)) < 0)
			return rc;
		switch (ldap_msgtype(m)) {
		case LDAP_RES_SEARCH_ENTRY:
			rc = each(m, arg);
			ldap_msgfree(m);
			if (rc != 0) {
				ldap_abandon_ext(c->ld, msgid, NULL, NULL);
				return rc;
			}
			break;
		case LDAP_RES_SEARCH_REFERENCE:
		case LDAP_RES_INTERMEDIATE:
			ldap_msgfree(m);
			break;
		case LDAP_RES_SEARCH_RESULT:
			*result = m;
			return 0;
		default:
			ldap_msgfree(m);
			ldap_abandon_ext(c->ld, msgid, NULL, NULL);
			str_msg(c->why, c->whylen, "%s: %s: the directory answered with a "
				"message of another kind", c->l->uri, what);
			return KW_ERR_UNAVAILABLE;
		}
	}
}

/* A simple bind as dn with the password (len bytes). 0; KW_ERR_AUTH when the
 * directory refuses the credentials (c->why says so); KW_ERR_UNAVAILABLE. */
static int conn_bind(struct conn *c, const char *dn, const char *pw, size_t len,
		     const char *what)
{
	struct berval cred = { (ber_len_t)len, (char *)pw };
	LDAPMessage *res = NULL;
	int msgid, code, rc;

	code = ldap_sasl_bind(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
	if (code != LDAP_SUCCESS) {
		conn_why(c, what, code);
		return KW_ERR_UNAVAILABLE;
	}
	if ((rc = conn_wait(c, msgid, what, &res)) < 0)
		return rc;
	rc = ldap_parse_result(c->ld, res, &code, NULL, NULL, NULL, NULL, 1);
	if (rc != LDAP_SUCCESS)
		code = rc;
	if (code == LDAP_SUCCESS)
		return 0;
	conn_why(c, what, code);
	return code == LDAP_INVALID_CREDENTIALS ? KW_ERR_AUTH : KW_ERR_UNAVAILABLE;
}

/* Connects (StartTLS when configured) and binds as the service account
 * (anonymously when bind_dn is empty). 0 or KW_ERR_UNAVAILABLE. */
static int conn_open(struct conn *c)
{
	const struct ldapb *l = c->l;
	struct timeval net = tv_ms(left_ms(c));
	char pw[BIND_PASSWORD_MAX + 2];
	size_t pwlen = 0;
	int v3 = LDAP_VERSION3, code, rc;

	if (left_ms(c) <= 0) {
		str_msg(c->why, c->whylen, "%s: no time left to connect", l->uri);
		return KW_ERR_UNAVAILABLE;
	}
	if ((c->slot = watch_enter(&c->l->watch, c->deadline_ms)) < 0) {
		str_msg(c->why, c->whylen, "%s: too many sign-ins at once", l->uri);
		return KW_ERR_UNAVAILABLE;
	}
	c->cb.lc_add = conn_cb_add;
	c->cb.lc_del = conn_cb_del;
	c->cb.lc_arg = c;
	if ((code = ldap_initialize(&c->ld, l->uri)) != LDAP_SUCCESS) {
		conn_why(c, "connecting", code);
		return KW_ERR_UNAVAILABLE;
	}
	if (ldap_set_option(c->ld, LDAP_OPT_CONNECT_CB, &c->cb) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &net) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_TIMEOUT, &net) != LDAP_OPT_SUCCESS) {
		str_msg(c->why, c->whylen, "%s: libldap refused an option", l->uri);
		return KW_ERR_UNAVAILABLE;
	}
	if (l->starttls) {
		/* Synchronous: bounded by LDAP_OPT_TIMEOUT (the answer) and
		 * LDAP_OPT_NETWORK_TIMEOUT (connecting, the handshake). */
		code = ldap_start_tls_s(c->ld, NULL, NULL);
		if (code != LDAP_SUCCESS) {
			conn_why(c, "StartTLS", code);
			return KW_ERR_UNAVAILABLE;
		}
	}
	if (!*l->bind_dn)
		return 0;
	rc = read_bind_password(l->pw_file, pw, &pwlen, c->why, c->whylen);
	if (rc == 0) {
		rc = conn_bind(c, l->bind_dn, pw, pwlen, "the service account's bind");
		/* A refused service account is the directory side's fault. */
		if (rc == KW_ERR_AUTH)
			rc = KW_ERR_UNAVAILABLE;
	} else {
		rc = KW_ERR_UNAVAILABLE;
	}
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

static void conn_close(struct conn *c)
{
	/* The slot first: the socket is closed next, and its number may be
	 * reused at once. */
	if (c->slot >= 0)
		watch_leave(&c->l->watch, c->slot);
	c->slot = -1;
	if (c->ld)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
}

/* Appends n bytes of s to out (cap FILTER_MAX); false when it does not fit. */
static bool filter_put(char *out, size_t *len, const char *s, size_t n)
{
	if (n >= FILTER_MAX - *len)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return true;
}

/* Appends value escaped per RFC 4515 (*, (, ), \ and NUL as \2a...). */
static bool filter_put_value(char *out, size_t *len, const char *value)
{
	struct berval in = { (ber_len_t)strlen(value), (char *)value }, esc = { 0, NULL };
	bool ok;

	if (ldap_bv2escaped_filter_value(&in, &esc) != 0 || !esc.bv_val)
		return false;
	ok = filter_put(out, len, esc.bv_val, esc.bv_len);
	ber_memfree(esc.bv_val);
	return ok;
}

/* Appends the user filter tmpl with %s replaced by the escaped name. */
static bool filter_put_user(const char *tmpl, char *out, size_t *len, const char *name)
{
	const char *pct = strstr(tmpl, "%s");   /* ldap_conf: exactly one */

	if (!pct)
		return false;
	return filter_put(out, len, tmpl, (size_t)(pct - tmpl)) &&
	       filter_put_value(out, len, name) &&
	       filter_put(out, len, pct + 2, strlen(pct + 2));
}

int auth_ldap_user_filter(const char *tmpl, const char *netbios, const char *netbios_dns,
			  const char *name, char out[AUTH_LDAP_FILTER_MAX])
{
	const char *bs = strchr(name, '\\'), *at = strrchr(name, '@');
	char local[IDENTITY_NAME_MAX + 1];
	size_t len = 0, n;
	bool ok;

	out[0] = '\0';
	if (!*name || strlen(name) > IDENTITY_NAME_MAX)
		return KW_ERR_NOT_FOUND;
	if (bs) {
		n = (size_t)(bs - name);
		if (!*netbios || n != strlen(netbios) || strncasecmp(name, netbios, n) ||
		    !bs[1] || strchr(bs + 1, '\\'))
			return KW_ERR_NOT_FOUND;
		ok = filter_put_user(tmpl, out, &len, bs + 1);
	} else if (at && at != name && at[1]) {
		n = (size_t)(at - name);
		memcpy(local, name, n);
		local[n] = '\0';
		if (netbios_dns && *netbios_dns && str_ieq(at + 1, netbios_dns))
			ok = filter_put(out, &len, "(|(userPrincipalName=", 21) &&
			     filter_put_value(out, &len, name) && filter_put(out, &len, ")", 1) &&
			     filter_put_user(tmpl, out, &len, local) && filter_put(out, &len, ")", 1);
		else
			ok = filter_put(out, &len, "(userPrincipalName=", 19) &&
			     filter_put_value(out, &len, name) && filter_put(out, &len, ")", 1);
	} else {
		ok = filter_put_user(tmpl, out, &len, name);
	}
	if (!ok)
		out[0] = '\0';
	return ok ? 0 : KW_ERR_TOO_LARGE;
}

/* The first value of attr in e into out when it is clean text that fits. */
static void attr_copy(LDAP *ld, LDAPMessage *e, const char *attr, char *out, size_t outlen)
{
	struct berval **v = ldap_get_values_len(ld, e, attr);

	out[0] = '\0';
	if (v && v[0] && v[0]->bv_len > 0 && v[0]->bv_len < outlen &&
	    !memchr(v[0]->bv_val, '\0', v[0]->bv_len)) {
		memcpy(out, v[0]->bv_val, v[0]->bv_len);
		out[v[0]->bv_len] = '\0';
		if (!str_is_clean_text(out, outlen - 1))
			out[0] = '\0';
	}
	ldap_value_free_len(v);
}

/* The roles whose group is dn (normalized). */
static unsigned role_bits(const struct ldapb *l, const char *dn)
{
	unsigned roles = 0;

	for (size_t r = 0; r < ROLE_COUNT; r++)
		if (l->role_dn[r] && !strcasecmp(l->role_dn[r], dn))
			roles |= 1u << r;
	return roles;
}

/* The roles that have a group in [roles]. */
static unsigned roles_configured(const struct ldapb *l)
{
	unsigned roles = 0;

	for (size_t r = 0; r < ROLE_COUNT; r++)
		if (l->role_dn[r])
			roles |= 1u << r;
	return roles;
}

/* Searches base_dn with filter, at most sizelimit entries (0: no limit),
 * and calls each(entry) on every entry as it comes (see conn_read: a
 * non-zero return stops the search; a positive one is not an error).
 * 0; KW_ERR_TOO_LARGE (more than sizelimit); KW_ERR_UNAVAILABLE; or
 * each's negative return. */
static int conn_search(struct conn *c, const char *filter, char **attrs, int sizelimit,
		       int (*each)(LDAPMessage *, void *), void *arg)
{
	struct timeval tv = tv_ms(left_ms(c));
	LDAPMessage *res = NULL;
	int msgid, code, rc;

	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1000;
	code = ldap_search_ext(c->ld, c->l->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
			       NULL, NULL, &tv, sizelimit, &msgid);
	if (code != LDAP_SUCCESS) {
		conn_why(c, "searching", code);
		return KW_ERR_UNAVAILABLE;
	}
	if ((rc = conn_read(c, msgid, "searching", each, arg, &res)) != 0)
		return rc > 0 ? 0 : rc;
	rc = ldap_parse_result(c->ld, res, &code, NULL, NULL, NULL, NULL, 1);
	if (rc != LDAP_SUCCESS)
		code = rc;
	if (code == LDAP_SUCCESS)
		return 0;
	if (code == LDAP_SIZELIMIT_EXCEEDED)
		return KW_ERR_TOO_LARGE;
	conn_why(c, "searching", code);
	return KW_ERR_UNAVAILABLE;
}

#define PAGE_SIZE 500              /* entries a page (RFC 2696) asks for */
#define PAGES_MAX 100000           /* pages of one search, at most */

/* Searches the subtree under base with the paged results control (RFC
 * 2696), so that no server size limit cuts the answer short where the
 * server pages (Active Directory, OpenLDAP with size.prtotal), and hands
 * every entry to each as conn_read does (a positive return stops the
 * search without an error). step(steparg), when given, runs before each
 * page (a task renews its deadline there). 0; KW_ERR_NOT_FOUND (base is
 * not there); KW_ERR_TOO_LARGE (the server's size limit stopped it, or
 * more than PAGES_MAX pages); KW_ERR_UNAVAILABLE; KW_ERR_NOMEM; or each's
 * negative return; with c->why. */
static int conn_paged(struct conn *c, const char *base, const char *filter, char **attrs,
		      int (*each)(LDAPMessage *, void *), void *arg, void (*step)(void *),
		      void *steparg)
{
	struct berval *cookie = NULL;
	LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL }, **got = NULL;
	LDAPMessage *res = NULL;
	size_t pages = 0;
	int msgid, code, rc = 0;

	do {
		struct timeval tv;

		if (++pages > PAGES_MAX) {
			str_msg(c->why, c->whylen, "%s: searching: more than %d pages",
				c->l->uri, PAGES_MAX);
			rc = KW_ERR_TOO_LARGE;
			goto out;
		}
		if (step)
			step(steparg);
		tv = tv_ms(left_ms(c));
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1000;
		code = ldap_create_page_control(c->ld, PAGE_SIZE, cookie, 0, &page);
		if (code != LDAP_SUCCESS) {
			conn_why(c, "searching", code);
			rc = KW_ERR_UNAVAILABLE;
			goto out;
		}
		ctrls[0] = page;
		code = ldap_search_ext(c->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, ctrls,
				       NULL, &tv, 0, &msgid);
		ldap_control_free(page);
		page = NULL;
		if (code != LDAP_SUCCESS) {
			conn_why(c, "searching", code);
			rc = KW_ERR_UNAVAILABLE;
			goto out;
		}
		/* Each entry is handed on as it comes, and freed: a page of any
		 * size costs one message's memory at most (MESSAGE_MAX). */
		if ((rc = conn_read(c, msgid, "searching", each, arg, &res)) != 0) {
			rc = rc > 0 ? 0 : rc;
			goto out;
		}
		rc = ldap_parse_result(c->ld, res, &code, NULL, NULL, NULL, &got, 0);
		if (rc != LDAP_SUCCESS)
			code = rc;
		rc = 0;
		if (code != LDAP_SUCCESS) {
			conn_why(c, "searching", code);
			rc = code == LDAP_NO_SUCH_OBJECT ? KW_ERR_NOT_FOUND :
			     code == LDAP_SIZELIMIT_EXCEEDED ? KW_ERR_TOO_LARGE : KW_ERR_UNAVAILABLE;
			goto out;
		}
		if (cookie) {
			ber_bvfree(cookie);
			cookie = NULL;
		}
		if (got) {
			LDAPControl *pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, got, NULL);
			ber_int_t count = 0;
			struct berval ck = { 0, NULL };

			if (pc && ldap_parse_pageresponse_control(c->ld, pc, &count, &ck) ==
			    LDAP_SUCCESS) {
				if (ck.bv_len > 0) {
					cookie = ber_bvdup(&ck);
					if (!cookie)
						rc = KW_ERR_NOMEM;
				}
				ber_memfree(ck.bv_val);
			}
			ldap_controls_free(got);
			got = NULL;
		}
		ldap_msgfree(res);
		res = NULL;
	} while (rc == 0 && cookie);
out:
	if (got)
		ldap_controls_free(got);
	if (res)
		ldap_msgfree(res);
	if (cookie)
		ber_bvfree(cookie);
	return rc;
}

struct found {
	struct conn *c;
	struct person *p;
	size_t n;
};

static int person_entry(LDAPMessage *e, void *arg)
{
	struct found *f = arg;
	LDAP *ld = f->c->ld;
	struct berval **v;
	char *n;

	/* A directory that sends more entries than asked for: the second is
	 * enough to refuse (person_find). */
	if (f->n++ > 0)
		return 1;
	f->p->dn = ldap_get_dn(ld, e);
	attr_copy(ld, e, "sAMAccountName", f->p->sam, sizeof(f->p->sam));
	attr_copy(ld, e, "userPrincipalName", f->p->upn, sizeof(f->p->upn));
	attr_copy(ld, e, "uid", f->p->uid, sizeof(f->p->uid));
	/* Each value is compared with the role groups, none kept: however
	 * many groups the user is in, none is left out. */
	v = ldap_get_values_len(ld, e, "memberOf");
	for (size_t i = 0; v && v[i]; i++) {
		if (v[i]->bv_len >= FILTER_MAX || memchr(v[i]->bv_val, '\0', v[i]->bv_len) ||
		    !(n = auth_ldap_dn_norm(v[i]->bv_val)))
			continue;
		f->p->roles |= role_bits(f->c->l, n);
		free(n);
	}
	ldap_value_free_len(v);
	return 0;
}

/* Finds the one entry name names: 0 with p filled (DN, names, the roles of
 * its memberOf); KW_ERR_NOT_FOUND (none, or a name this directory cannot
 * hold); KW_ERR_AUTH (several: refused, c->why says so);
 * KW_ERR_UNAVAILABLE. */
static int person_find(struct conn *c, const char *name, struct person *p)
{
	static char *attrs[] = { "sAMAccountName", "userPrincipalName", "uid", "memberOf",
				 NULL };
	char filter[FILTER_MAX];
	struct found f = { c, p, 0 };
	int rc;

	if ((rc = auth_ldap_user_filter(c->l->filter, c->l->netbios, c->l->netbios_dns, name,
					 filter)) < 0)
		return KW_ERR_NOT_FOUND;
	rc = conn_search(c, filter, attrs, 2, person_entry, &f);
	if (rc == KW_ERR_TOO_LARGE || (rc == 0 && f.n > 1)) {
		str_msg(c->why, c->whylen, "%s: more than one entry matches the user filter",
			c->l->uri);
		return KW_ERR_AUTH;
	}
	if (rc < 0)
		return rc;
	if (f.n == 0 || !p->dn)
		return KW_ERR_NOT_FOUND;
	return 0;
}

/* Appends "(member=DN)" and, for Active Directory, the same through any
 * depth of nesting. */
static bool filter_put_member(char *out, size_t *len, const char *dn, bool chain)
{
	return filter_put(out, len, "(member=", 8) && filter_put_value(out, len, dn) &&
	       filter_put(out, len, ")", 1) &&
	       (!chain || (filter_put(out, len, "(member:" AD_IN_CHAIN ":=",
				      sizeof("(member:" AD_IN_CHAIN ":=") - 1) &&
			   filter_put_value(out, len, dn) && filter_put(out, len, ")", 1)));
}

struct grouping {
	struct conn *c;
	struct person *p;
	unsigned want;                        /* roles_configured */
	bool keep;                            /* into p->nest */
};

/* A group that holds the person (or one of its groups): its roles, and
 * (keep) the group itself for the next level. 1 (stop) once every
 * configured role is found. */
static int group_entry(LDAPMessage *e, void *arg)
{
	struct grouping *g = arg;
	struct person *p = g->p;
	char *dn = ldap_get_dn(g->c->ld, e), *n;

	n = dn ? auth_ldap_dn_norm(dn) : NULL;
	ldap_memfree(dn);
	if (!n)
		return 0;
	p->roles |= role_bits(g->c->l, n);
	if (g->keep && p->nnest < NEST_MAX) {
		if (!p->nest && !(p->nest = calloc(NEST_MAX, sizeof(*p->nest)))) {
			free(n);
			return KW_ERR_NOMEM;
		}
		p->nest[p->nnest++] = n;
		n = NULL;
	} else if (g->keep) {
		p->nest_cut = true;
	}
	free(n);
	return (p->roles & g->want) == g->want ? 1 : 0;
}

/* A search for groups, paged; a server that does not page and stops it at
 * its size limit gives a partial answer, logged. 0, KW_ERR_UNAVAILABLE or
 * KW_ERR_NOMEM. */
static int groups_search(struct conn *c, const char *filter, struct grouping *g)
{
	static char *attrs[] = { "1.1", NULL };
	int rc = conn_paged(c, c->l->base_dn, filter, attrs, group_entry, g, NULL, NULL);

	if (rc == KW_ERR_TOO_LARGE || rc == KW_ERR_NOT_FOUND) {
		log_warn("directory sign-in: %s; the roles are those of the groups read "
			 "before", c->why);
		rc = 0;
	}
	return rc;
}

/* Adds to p->roles the role groups that hold p: every group whose member
 * holds p's DN (at any depth on Active Directory, through its in-chain
 * rule; paged searches, so no server size limit cuts them short), then one more level that keywarden follows itself for directories
 * that resolve no nesting: the groups that hold one of the first NEST_MAX
 * of those (past them a warning is logged). The groups are compared with
 * [roles] as they come and not kept (but for the next level), so a member
 * of many groups loses no role to a cap; the searches stop once every
 * configured role is found, and are not made when none is configured.
 * 0, KW_ERR_UNAVAILABLE or KW_ERR_NOMEM. */
static int person_groups(struct conn *c, struct person *p)
{
	struct grouping g = { c, p, roles_configured(c->l), true };
	char filter[FILTER_MAX];
	size_t len = 0, i = 0;
	int rc;

	if ((p->roles & g.want) == g.want)
		return 0;
	if (!filter_put(filter, &len, "(|", 2) || !filter_put_member(filter, &len, p->dn, true) ||
	    !filter_put(filter, &len, ")", 1))
		return 0;    /* a DN too long to search for holds no group */
	if ((rc = groups_search(c, filter, &g)) < 0)
		return rc;
	if (p->nest_cut && str_is_clean_text(p->dn, 512))
		log_warn("directory sign-in: %s is in more than %d groups; roles through "
			 "nested groups are looked for in the first %d only", p->dn, NEST_MAX,
			 NEST_MAX);
	else if (p->nest_cut)
		log_warn("directory sign-in: a user is in more than %d groups; roles through "
			 "nested groups are looked for in the first %d only", NEST_MAX, NEST_MAX);
	g.keep = false;
	/* As many groups a search as its filter holds. */
	while (i < p->nnest && (p->roles & g.want) != g.want) {
		size_t n = 0;

		len = 0;
		filter_put(filter, &len, "(|", 2);
		for (; i < p->nnest; i++, n++) {
			size_t before = len;

			if (!filter_put_member(filter, &len, p->nest[i], false) ||
			    len >= FILTER_MAX - 2) {
				len = before;
				filter[len] = '\0';
				break;
			}
		}
		if (n == 0) {
			i++;         /* a DN too long for a filter of its own */
			continue;
		}
		filter_put(filter, &len, ")", 1);
		if ((rc = groups_search(c, filter, &g)) < 0)
			return rc;
	}
	return 0;
}

/* The account's name (NETBIOS\sam, else the UPN, else sam or uid, else what
 * was typed) and every form of it. */
static void person_identity(const struct ldapb *l, const struct person *p, const char *typed,
			    struct auth_user *out)
{
	const char *sam = *p->sam ? p->sam : p->uid;
	size_t nb = strlen(l->netbios), ns = strlen(sam);

	if (nb && ns && nb + 1 + ns < sizeof(out->name) && !strchr(sam, '\\') &&
	    !strchr(sam, '@')) {
		memcpy(out->name, l->netbios, nb);
		out->name[nb] = '\\';
		memcpy(out->name + nb + 1, sam, ns + 1);
	} else if (*p->upn) {
		snprintf(out->name, sizeof(out->name), "%s", p->upn);
	} else {
		snprintf(out->name, sizeof(out->name), "%s", *sam ? sam : typed);
	}
	/* Never a bare name: that could be a local account's (init's "admin"). */
	if (!strchr(out->name, '\\') && !strchr(out->name, '@')) {
		char bare[sizeof(out->name)];

		snprintf(bare, sizeof(bare), "%s", out->name);
		if ((size_t)snprintf(out->name, sizeof(out->name), "%s\\%s", l->netbios, bare) >=
		    sizeof(out->name))
			out->name[0] = '\0';
	}
	/* Only the forms the directory holds: no [identity] domains mapping.
	 * A UPN's local part is not a sAMAccountName (jdoe may have the UPN
	 * john@…, while CORP\john is someone else), and sam@dns may be
	 * another person's UPN. */
	identity_from_name(NULL, out->name, &out->id);
	if (*p->upn)
		identity_add(NULL, &out->id, p->upn);
}

static int ldapb_authenticate(void *ctx, const char *user, const char *password,
			      int64_t deadline_ms, struct auth_user *out)
{
	struct conn c = { ctx, NULL, deadline_ms, out->reason, sizeof(out->reason), -1, { 0 } };
	struct person p;
	int rc;

	memset(&p, 0, sizeof(p));
	/* No unauthenticated bind: an empty password is no password. */
	if (!password || !*password)
		return KW_ERR_AUTH;
	if ((rc = conn_open(&c)) < 0)
		goto out;
	if ((rc = person_find(&c, user, &p)) < 0)
		goto out;
	/* The groups are read as the service account, before the user's bind. */
	if ((rc = person_groups(&c, &p)) < 0)
		goto out;
	person_identity(c.l, &p, user, out);
	if ((rc = conn_bind(&c, p.dn, password, strlen(password), "the user's bind")) < 0)
		goto out;
	out->roles = p.roles;
out:
	if (rc < 0 && rc != KW_ERR_AUTH) {
		out->roles = 0;
		memset(&out->id, 0, sizeof(out->id));
	}
	if (rc == KW_ERR_NOT_FOUND || rc == KW_ERR_UNAVAILABLE)
		out->name[0] = '\0';
	person_free(&p);
	conn_close(&c);
	return rc;
}

static int ldapb_roles(void *ctx, const struct identity *id, int64_t deadline_ms,
		       unsigned *roles)
{
	char why[AUTH_REASON_MAX];
	struct conn c = { ctx, NULL, deadline_ms, why, sizeof(why), -1, { 0 } };
	struct person p;
	int rc = KW_ERR_NOT_FOUND;

	*roles = 0;
	if ((rc = conn_open(&c)) < 0)
		goto out;
	rc = KW_ERR_NOT_FOUND;
	for (size_t i = 0; i < id->n && rc == KW_ERR_NOT_FOUND; i++) {
		memset(&p, 0, sizeof(p));
		rc = person_find(&c, id->forms[i], &p);
		if (rc == 0 && (rc = person_groups(&c, &p)) == 0)
			*roles = p.roles;
		person_free(&p);
	}
	/* Several entries for one name: known, and no roles from them. */
	if (rc == KW_ERR_AUTH)
		rc = 0;
out:
	conn_close(&c);
	return rc;
}

const struct auth_backend auth_ldap = {
	.name = "ldap",
	.max_concurrent = LDAP_MAX_CONCURRENT,
	.open = ldapb_open,
	.close = ldapb_close,
	.authenticate = ldapb_authenticate,
	.roles = ldapb_roles,
};

/* ---- a connection for a task (import ldap) ---- */


struct ldap_dir {
	struct ldapb *l;
	struct conn c;
	char why[512];
};

/* The next step may take [ldap] timeout. */
static void dir_step(struct ldap_dir *d)
{
	d->c.deadline_ms = time_mono_ms() + d->l->timeout_ms;
	watch_renew(&d->l->watch, d->c.slot, d->c.deadline_ms);
}

int ldap_dir_open(const struct config *cfg, struct ldap_dir **out, char *why, size_t whylen)
{
	struct ldap_dir *d;
	void *ctx = NULL;
	int rc;

	*out = NULL;
	if (!(d = calloc(1, sizeof(*d)))) {
		str_msg(why, whylen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	d->c.slot = -1;
	if ((rc = ldapb_open(cfg, NULL, &ctx, why, whylen)) < 0) {
		free(d);
		return rc;
	}
	d->l = ctx;
	d->c.l = d->l;
	d->c.why = d->why;
	d->c.whylen = sizeof(d->why);
	d->c.deadline_ms = time_mono_ms() + d->l->timeout_ms;
	if ((rc = conn_open(&d->c)) < 0) {
		str_msg(why, whylen, "%s", d->why);
		ldap_dir_close(d);
		return rc;
	}
	*out = d; /* owned by the caller */
	return 0;
}

void ldap_dir_close(struct ldap_dir *d)
{
	if (!d)
		return;
	conn_close(&d->c);
	ldapb_free(d->l);
	free(d);
}

const char *ldap_dir_why(const struct ldap_dir *d)
{
	return d->why;
}

LDAP *ldap_dir_handle(struct ldap_dir *d)
{
	return d->c.ld;
}

struct dir_each {
	struct ldap_dir *d;
	int (*each)(struct ldap_dir *, LDAPMessage *, void *);
	void *arg;
};

static int dir_entry(LDAPMessage *e, void *arg)
{
	struct dir_each *x = arg;
	int rc = x->each(x->d, e, x->arg);

	return rc > 0 ? 0 : rc;
}

/* The next step may take [ldap] timeout. */
static void dir_page(void *arg)
{
	dir_step(arg);
}

int ldap_dir_search(struct ldap_dir *d, const char *base, const char *filter,
		    char **attrs, int (*each)(struct ldap_dir *, LDAPMessage *, void *), void *arg)
{
	struct dir_each x = { d, each, arg };
	return conn_paged(&d->c, base ? base : d->l->base_dn, filter, attrs, dir_entry, &x,
			  dir_page, d);
}

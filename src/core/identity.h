/* The names a person is known by. Devices report users as CORP\alice or
 * alice@corp.example.com; a user matches a logon under any of their forms,
 * compared case-insensitively. [identity] domains maps NetBIOS domains to
 * DNS domains so that either form finds the other. SPEC §3, §8. */
#ifndef KW_CORE_IDENTITY_H
#define KW_CORE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#define IDENTITY_MAX 4            /* forms per person */
#define IDENTITY_NAME_MAX 256
#define IDENTITY_DOMAINS_MAX 16

struct buf;

struct identity {
	char forms[IDENTITY_MAX][IDENTITY_NAME_MAX + 1];
	size_t n;
};

/* [identity] domains = CORP:corp.example.com, …: NetBIOS domain to DNS
 * domain, NetBIOS names unique ignoring case. */
struct identity_domains {
	struct {
		char netbios[16];         /* 1 to 15 letters, digits, - or _ */
		char dns[254];            /* a DNS name of at most 253 bytes */
	} dom[IDENTITY_DOMAINS_MAX];
	size_t n;
};

/* Reads "CORP:corp.example.com, LAB : lab.example" (empty items skipped,
 * spaces around ':' allowed) into d, replacing what it held. Returns 0,
 * KW_ERR_NOMEM, or KW_ERR_INVALID with the reason in why ("'CORP' is not
 * NETBIOS:dns.name", "… repeats a NetBIOS name", "… is one domain too
 * many"); d is then partly filled. */
int identity_domains_parse(struct identity_domains *d, const char *text, char *why,
			   size_t whylen);

/* Appends d as identity_domains_parse reads it: "CORP:corp.example.com,
 * LAB:lab.example", or without the spaces when compact. 0 or a buf error. */
int identity_domains_format(const struct identity_domains *d, bool compact,
			    struct buf *out);

/* Is s (n bytes) a NetBIOS domain name: 1 to 15 letters, digits, - or _? */
bool identity_netbios_ok(const char *s, size_t n);

/* Starts the set with name and, through the domain mapping (d may be NULL:
 * none), its other form (CORP\alice <-> alice@corp.example.com).
 * Duplicates (ignoring case) are not added. */
void identity_from_name(const struct identity_domains *d, const char *name,
			struct identity *id);

/* Adds one more form (and its mapped form). */
void identity_add(const struct identity_domains *d, struct identity *id, const char *name);

/* The forms joined by '\n' (for the session record), and back. */
void identity_join(const struct identity *id, char *out, size_t outlen);
void identity_split(const char *joined, struct identity *id);

/* Pointers to the forms, for store queries. */
size_t identity_list(const struct identity *id, const char *out[IDENTITY_MAX]);

#endif

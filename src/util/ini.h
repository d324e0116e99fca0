/* A table-driven INI reader on libinih. The caller declares every key of
 * its file in one table of struct ini_key (section, name, type, where the
 * value goes in the caller's struct, default); the same table gives the
 * defaults, reads a file and writes the effective values back as INI text,
 * so the three cannot disagree about a key. An unknown section or key, or a
 * bad value, is an error "FILE:LINE: reason". Nothing here knows which keys
 * exist. */
#ifndef KW_UTIL_INI_H
#define KW_UTIL_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define INI_LINE_MAX 4096
#define INI_FILE_MAX (1024 * 1024)

/* "N/DURATION": at most count events per window seconds. */
struct ini_rate {
	int64_t count;
	int64_t window;
};

/* A value with per-language variants: "key" and "key.sv". */
#define INI_TEXT_LANGS 4
struct ini_text {
	char *def;                        /* the plain key; may be "" */
	struct {
		char lang[8];             /* "sv", "sv-SE" */
		char *text;
	} var[INI_TEXT_LANGS];
	size_t nvar;
};

/* A list of names: "a, b, c". */
#define INI_LIST_MAX 8
struct ini_list {
	char *item[INI_LIST_MAX];         /* lower-case; NULL past n */
	size_t n;
};

/* An address ("10.0.0.7", "::1") or a CIDR range ("10.0.0.0/8",
 * "fd00::/8"). */
struct ini_cidr {
	int family;                       /* AF_INET or AF_INET6 */
	unsigned char addr[16];           /* network order; 4 bytes for AF_INET */
	unsigned bits;                    /* prefix length: 32 or 128 for one address */
};

enum ini_type {
	INI_STR,        /* char *, never NULL */
	INI_OPT,        /* char *, NULL when empty */
	INI_BOOL,       /* bool: true/false, yes/no, on/off, 1/0 */
	INI_INT,        /* int64_t in [min, max] */
	INI_DURATION,   /* int64_t seconds in [min, max]: "90s", "5m", "0" */
	INI_RATE,       /* struct ini_rate: "5/15m", COUNT 1 to 1000000 */
	INI_TEXT,       /* struct ini_text: "key" and "key.LANG" */
	INI_LIST,       /* struct ini_list: comma-separated names, compared
			 * ignoring ASCII case and kept lower-case; from min
			 * to max (<= INI_LIST_MAX) of them, none twice */
	INI_CIDRS,      /* char *, never NULL: comma-separated addresses and
			 * CIDR ranges (ini_cidr_parse), at most max */
	INI_NAMED,      /* char *[]: one string key per name in names, all in
			 * one section ([roles] helpdesk = …, admin = …) */
	INI_CUSTOM,     /* read and written by the key's custom functions */
};

/* An extra rule on a value (INI_STR, INI_OPT, INI_TEXT, INI_NAMED) or on
 * each name of an INI_LIST: 0, or KW_ERR_INVALID with the reason in why
 * (quote the value with ini_quote), or KW_ERR_NOMEM. The message becomes
 * "KEY: reason", or the reason alone when it starts with the key's name
 * followed by ' ' or ':' (a message that names the key itself). */
typedef int (*ini_check_fn)(const char *v, char *why, size_t whylen);

/* A value kept in a struct of the caller's own, which holds no allocated
 * memory (ini_free leaves it alone). */
struct ini_custom {
	/* Replaces *field with what v says; as ini_check_fn. On failure
	 * *field may be changed (the load fails anyway). */
	int (*parse)(void *field, const char *v, char *why, size_t whylen);
	/* Appends the value as it would be written after "KEY = ". compact:
	 * no optional spaces, for a value whose spaced form would make the
	 * line too long to read back. 0 or a buf error. */
	int (*format)(const void *field, bool compact, struct buf *out);
};

struct ini_key {
	const char *section;
	const char *name;                 /* NULL for INI_NAMED */
	enum ini_type type;
	size_t off;                       /* offsetof the value in the caller's struct */
	const char *def;                  /* the default, as written in a file */
	int64_t min, max;                 /* INI_INT, INI_DURATION: the range;
					   * INI_LIST: how many names;
					   * INI_CIDRS: at most max entries */
	ini_check_fn check;               /* optional */
	union {
		const char *const *names;         /* INI_NAMED: the key names, NULL-ended */
		const struct ini_custom *custom;  /* INI_CUSTOM */
	} of;
};

/* The keys of one file. Keys of a section must be next to each other: the
 * dump writes a section header where the section changes. */
struct ini_schema {
	const struct ini_key *keys;
	size_t n;
};

/* Sets every key of a zeroed obj to its default. Returns 0, KW_ERR_NOMEM, or KW_ERR_INTERNAL
 * when a default does not parse (a mistake in the table). */
int ini_defaults(const struct ini_schema *s, void *obj);

/* Reads path over obj: only the keys in the file change. On failure
 * returns KW_ERR_IO (cannot open or read) or KW_ERR_INVALID, and writes
 * "FILE:LINE: reason" (or "FILE: reason" for the whole file, or "cannot
 * open FILE: …") to msg; obj is left valid for ini_free in every case.
 * Files are at most INI_FILE_MAX bytes; lines at most INI_LINE_MAX, fewer
 * when libinih is built with a smaller INI_MAX_LINE (Debian: 198) — a
 * longer line is an error, never split; indented lines are not
 * continuations; a value with control characters or invalid UTF-8 is
 * refused. */
int ini_load(const struct ini_schema *s, void *obj, const char *path, char *msg,
	     size_t msglen);

/* Appends obj as INI text, every key in table order with a "[section]"
 * line before each section; ini_load reads it back to the same values.
 * 0 or a buf error (KW_ERR_TOO_LARGE at the buf's cap, KW_ERR_NOMEM). */
int ini_dump(const struct ini_schema *s, const void *obj, struct buf *out);

/* Frees what the keys of obj hold (strings, texts, lists) and sets those
 * pointers to NULL. Safe on a zeroed obj and twice. */
void ini_free(const struct ini_schema *s, void *obj);

/* The variant for lang ("sv-SE" tries "sv-SE" then "sv"), else the plain
 * value; "" for a zeroed text. lang may be NULL. */
const char *ini_text(const struct ini_text *t, const char *lang);

/* Parses an IPv4 or IPv6 address, optionally with "/BITS". Host bits
 * beyond the prefix must be zero (a typo must not widen a range), and /0
 * is refused; ::ffff:a.b.c.d/N (N >= 96) is stored as the IPv4 range.
 * Returns 0 or KW_ERR_INVALID. */
int ini_cidr_parse(const char *s, struct ini_cidr *out);

/* Does the range hold the address (family AF_INET with 4 bytes or AF_INET6
 * with 16)? An IPv4-mapped IPv6 address (::ffff:10.0.0.7) counts as the
 * IPv4 address. */
bool ini_cidr_contains(const struct ini_cidr *range, int family,
		       const unsigned char *addr);

/* Parses a comma-separated list of ini_cidr_parse entries (empty entries
 * skipped) into out, room for max. Returns how many, KW_ERR_INVALID (a bad
 * entry, or more than max) or KW_ERR_NOMEM. */
int ini_cidrs_parse(const char *text, struct ini_cidr *out, size_t max);

/* Splits s at sep into items trimmed of white space, and calls fn for each
 * non-empty one; s is modified. Returns 0 or the first error of fn. */
int ini_each_item(char *s, char sep, int (*fn)(char *item, void *arg), void *arg);

/* s made fit for an error message in tmp: control characters become '?'
 * (a hostile file cannot write escape sequences to a terminal) and a long
 * value is cut on a UTF-8 boundary with "...". Returns tmp. */
const char *ini_quote(const char *s, char *tmp, size_t tmplen);

/* A check for values that must not be empty. */
int ini_check_nonempty(const char *v, char *why, size_t whylen);

#endif

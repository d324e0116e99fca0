/* Submitted HTML forms (application/x-www-form-urlencoded or
 * multipart/form-data), decoded by libmicrohttpd's post processor into a
 * small table with caps on the number of fields and their sizes. */
#ifndef KW_HTTP_FORM_H
#define KW_HTTP_FORM_H

#include <stddef.h>

#define FORM_MAX_FIELDS 16
#define FORM_NAME_MAX 32
#define FORM_VALUE_MAX 4096

struct http_request;

struct form {
	struct {
		char name[FORM_NAME_MAX + 1];
		char *value;              /* NUL-terminated, wiped when freed */
		size_t len;
	} f[FORM_MAX_FIELDS];
	size_t n;
	int too_large;                    /* a field or the count was over its cap */
};

/* Decodes req's body. KW_ERR_INVALID when it is not a form or a value
 * holds a NUL byte (which would cut it short: "pw%00garbage" must not pass
 * as "pw"); too_large is set (and the extra data dropped) when a cap was
 * hit. */
int form_parse(const struct http_request *req, struct form *f);

/* The value of name, or NULL. */
const char *form_get(const struct form *f, const char *name);

void form_free(struct form *f);

#endif

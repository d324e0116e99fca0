#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "http/form.h"
#include "http/server.h"
#include "util/err.h"

static enum MHD_Result field(void *cls, enum MHD_ValueKind kind, const char *key,
			     const char *filename, const char *content_type,
			     const char *transfer_encoding, const char *data, uint64_t off,
			     size_t size)
{
	struct form *f = cls;
	size_t i;
	char *p;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->f[i].name, key))
			break;
	if (i == f->n) {
		if (f->n == FORM_MAX_FIELDS || strlen(key) > FORM_NAME_MAX) {
			f->too_large = 1;
			return MHD_YES;
		}
		memcpy(f->f[i].name, key, strlen(key) + 1);
		f->f[i].value = NULL;
		f->f[i].len = 0;
		f->n++;
	} else if (off == 0) {
		return MHD_YES;   /* a repeated field: the first one counts */
	}
	if (f->f[i].len + size > FORM_VALUE_MAX) {
		f->too_large = 1;
		return MHD_YES;
	}
	/* Grow by copying so no unwiped old block is left behind. */
	if (!(p = malloc(f->f[i].len + size + 1)))
		return MHD_NO;
	if (f->f[i].value) {
		memcpy(p, f->f[i].value, f->f[i].len);
		sodium_memzero(f->f[i].value, f->f[i].len);
		free(f->f[i].value);
	}
	memcpy(p + f->f[i].len, data, size);
	f->f[i].len += size;
	p[f->f[i].len] = '\0';
	f->f[i].value = p;
	return MHD_YES;
}

int form_parse(const struct http_request *req, struct form *f)
{
	struct MHD_PostProcessor *pp;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	pp = MHD_create_post_processor(req->conn, 1024, field, f);
	if (!pp)
		return KW_ERR_INVALID;   /* no or another content type */
	if (req->body_len && MHD_post_process(pp, req->body, req->body_len) != MHD_YES)
		rc = KW_ERR_INVALID;
	if (MHD_destroy_post_processor(pp) != MHD_YES && rc == 0)
		rc = KW_ERR_INVALID;
	/* A field without a value ("accept") is still present. */
	for (size_t i = 0; i < f->n; i++) {
		if (!f->f[i].value && !(f->f[i].value = calloc(1, 1)))
			rc = KW_ERR_NOMEM;
		else if (rc == 0 && memchr(f->f[i].value, '\0', f->f[i].len))
			rc = KW_ERR_INVALID;
	}
	return rc;
}

const char *form_get(const struct form *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->f[i].name, name))
			return f->f[i].value;
	return NULL;
}

void form_free(struct form *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		if (f->f[i].value) {
			sodium_memzero(f->f[i].value, f->f[i].len);
			free(f->f[i].value);
		}
		f->f[i].value = NULL;
	}
	f->n = 0;
}

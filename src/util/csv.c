#include <stdint.h>
#include <string.h>

#include "util/csv.h"
#include "util/str.h"
#include "util/err.h"

void csv_init(struct csv_reader *r, const char *data, size_t len)
{
	r->p = data;
	r->end = data + len;
	r->line = 1;
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		r->p += 3;
}

const char *csv_problem_text(enum csv_problem p)
{
	switch (p) {
	case CSV_OK:
		return "no problem";
	case CSV_BAD_QUOTE:
		return "a quote inside an unquoted field, or text after a closing quote";
	case CSV_UNTERMINATED:
		return "a quoted field is not closed before the end of the file";
	case CSV_TOO_LONG:
		return "the line is too long (at most 16384 bytes)";
	case CSV_TOO_MANY_FIELDS:
		return "too many fields (at most 64)";
	case CSV_NUL:
		return "a NUL byte";
	case CSV_BAD_UTF8:
		return "text that is not UTF-8";
	}
	return "unknown problem";
}

/* Is there a line end (LF or CRLF) at r->p? Its length, or 0. */
static size_t line_end(const struct csv_reader *r)
{
	if (r->p < r->end && *r->p == '\n')
		return 1;
	if (r->p + 1 < r->end && r->p[0] == '\r' && r->p[1] == '\n')
		return 2;
	return 0;
}

int csv_next(struct csv_reader *r, struct csv_record *rec, enum csv_problem *problem)
{
	enum csv_problem bad = CSV_OK;
	size_t used = 0, bytes = 0, eol;

	*problem = CSV_OK;
	rec->n = 0;
	rec->bad_field = 0;
	while ((eol = line_end(r))) {
		r->p += eol;
		r->line++;
	}
	if (r->p >= r->end)
		return 0;
	rec->line = r->line;

/* Appends c to the field, within the record's cap. */
#define PUT(c) do { \
		if (bytes++ == CSV_RECORD_MAX) { bad = CSV_TOO_LONG; goto out; } \
		if ((c) == '\0') { bad = CSV_NUL; goto out; } \
		rec->data[used++] = (c); \
	} while (0)

	for (;;) {
		if (rec->n == CSV_FIELDS_MAX) {
			bad = CSV_TOO_MANY_FIELDS;
			goto out;
		}
		rec->field[rec->n] = rec->data + used;
		rec->quoted[rec->n] = false;
		if (r->p < r->end && *r->p == '"') {
			rec->quoted[rec->n] = true;
			r->p++;
			for (;;) {
				char c;

				if (r->p >= r->end) {
					bad = CSV_UNTERMINATED;
					goto out;
				}
				c = *r->p++;
				if (c == '"') {
					if (r->p < r->end && *r->p == '"') {
						r->p++;
						PUT('"');
						continue;
					}
					break;
				}
				if (c == '\n')
					r->line++;
				PUT(c);
			}
		} else {
			while (r->p < r->end && *r->p != ',' && !line_end(r)) {
				if (*r->p == '"') {
					bad = CSV_BAD_QUOTE;
					goto out;
				}
				PUT(*r->p);
				r->p++;
			}
		}
		rec->data[used++] = '\0';
		rec->n++;
		if (r->p >= r->end)
			break;
		if (*r->p == ',') {
			r->p++;
			continue;
		}
		if ((eol = line_end(r))) {
			r->p += eol;
			r->line++;
			break;
		}
		bad = CSV_BAD_QUOTE;     /* text after a closing quote */
		goto out;
	}
#undef PUT
	for (size_t i = 0; i < rec->n; i++) {
		if (!str_is_utf8(rec->field[i])) {
			rec->bad_field = i + 1;
			*problem = CSV_BAD_UTF8;
			return KW_ERR_INVALID;
		}
	}
	return 1;
out:
	/* Go on after the line end where the record went wrong. */
	while (r->p < r->end && *r->p != '\n')
		r->p++;
	if (r->p < r->end) {
		r->p++;
		r->line++;
	}
	*problem = bad;
	return KW_ERR_INVALID;
}

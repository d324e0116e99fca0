/* Reading CSV (RFC 4180) from a buffer in memory, a record at a time, for
 * `keywarden import csv`: fields separated by commas, records by CRLF or
 * LF; a field in double quotes may hold commas, line breaks and quotes
 * (doubled). A UTF-8 byte order mark at the start is skipped. Every record
 * is capped (CSV_RECORD_MAX bytes, CSV_FIELDS_MAX fields) and its fields
 * must be UTF-8 without NUL bytes. A bad record is reported with its line
 * and skipped: reading goes on at the next line. */
#ifndef KW_UTIL_CSV_H
#define KW_UTIL_CSV_H

#include <stdbool.h>
#include <stddef.h>

#define CSV_RECORD_MAX (16 * 1024)   /* bytes of a record's fields, unquoted */
#define CSV_FIELDS_MAX 64

enum csv_problem {
	CSV_OK = 0,
	CSV_BAD_QUOTE,       /* a quote inside an unquoted field, or text
			      * after a closing quote */
	CSV_UNTERMINATED,    /* a quoted field still open at the end */
	CSV_TOO_LONG,        /* more than CSV_RECORD_MAX bytes */
	CSV_TOO_MANY_FIELDS, /* more than CSV_FIELDS_MAX fields */
	CSV_NUL,             /* a NUL byte */
	CSV_BAD_UTF8,        /* a field that is not UTF-8 */
};

struct csv_reader {
	const char *p, *end;
	size_t line;             /* line where the next record starts, from 1 */
};

/* One record: n fields, each NUL-terminated in data. A field that was
 * quoted has quoted[i] set. Holds what the file held (recovery
 * passwords): wipe it (sodium_memzero) when done. */
struct csv_record {
	size_t line;             /* line where it starts */
	size_t n;
	char *field[CSV_FIELDS_MAX];
	bool quoted[CSV_FIELDS_MAX];
	size_t bad_field;        /* with CSV_BAD_UTF8: which field, from 1 */
	char data[CSV_RECORD_MAX + CSV_FIELDS_MAX];
};

/* Starts reading len bytes at data (which must outlive r); skips a UTF-8
 * byte order mark. */
void csv_init(struct csv_reader *r, const char *data, size_t len);

/* Reads the next record into rec: returns 1 with a record, 0 at the end
 * (blank lines are skipped), or KW_ERR_INVALID with rec->line and *problem
 * saying where and what: that record is skipped and the next call goes on
 * after the line end where it was found wrong. */
int csv_next(struct csv_reader *r, struct csv_record *rec, enum csv_problem *problem);

/* The problem in English ("a quote inside an unquoted field, or text
 * after a closing quote"). */
const char *csv_problem_text(enum csv_problem p);

#endif

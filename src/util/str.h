/* String and number parsing with explicit bounds. */
#ifndef KW_UTIL_STR_H
#define KW_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a whole decimal integer in [min, max]. Returns 0, or
 * KW_ERR_INVALID (not a number, trailing text, out of range). */
int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses "90s", "5m", "1h", "30d" or "0" into seconds (no unit = seconds),
 * at most max_seconds. Returns 0 or KW_ERR_INVALID. */
int str_to_duration(const char *s, int64_t max_seconds, int64_t *out);

/* Formats seconds as the shortest exact form of the above ("5m", "90s"). */
void str_format_duration(int64_t seconds, char *out, size_t outlen);

/* Parses "yes/true/on/1" and "no/false/off/0". */
int str_to_bool(const char *s, bool *out);

/* ASCII case-insensitive equality. */
bool str_ieq(const char *a, const char *b);

/* Lowers letters in place: ASCII, Latin-1 and Latin Extended-A (the user
 * names keywarden compares case-insensitively). */
void str_fold(char *s);

/* A copy of s passed through str_fold; NULL when out of memory. */
char *str_lower_dup(const char *s);

/* True when a (alen bytes) and b (blen bytes) are equal once passed
 * through str_fold: the one comparison of user names everywhere. */
bool str_fold_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Trims ASCII white space at both ends in place; returns s. */
char *str_trim(char *s);

/* True when s is valid UTF-8: no overlong forms, no surrogates, nothing
 * past U+10FFFF (control characters allowed). */
bool str_is_utf8(const char *s);

/* True when s is valid UTF-8 with no control characters (C0, DEL), at most
 * maxlen bytes long and not empty. */
bool str_is_clean_text(const char *s, size_t maxlen);

/* Text a person wrote in a box of several lines: valid UTF-8, no control
 * characters but CR, LF and TAB, at most maxchars characters (not bytes),
 * and something other than white space. */
bool str_is_clean_lines(const char *s, size_t maxchars);

/* Lower-case hex of n bytes; out must hold 2n+1. */
void str_hex(const uint8_t *in, size_t n, char *out);

/* Writes dir + "/" + name into out; KW_ERR_TOO_LARGE when it does not fit. */
int str_join_path(char *out, size_t outlen, const char *dir, const char *name);

/* Writes a message for the user into msg (msglen bytes); does nothing when
 * msg is NULL or msglen 0, so callers may pass no buffer. */
void str_msg(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Empties msg, so a success leaves no stale sentence of an earlier call. */
void str_msg_clear(char *msg, size_t msglen);

/* strdup that returns NULL for NULL. */
char *str_dup(const char *s);

#endif

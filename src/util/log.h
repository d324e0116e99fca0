/* Logging to stderr, one line per event. Only boundaries (handlers, main)
 * log; library code returns error codes. Never pass a secret to these. */
#ifndef KW_UTIL_LOG_H
#define KW_UTIL_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One access-log line (level info): buffered per thread and written by
 * log_flush, which the server calls every second, or when the buffer
 * fills; so a busy server makes one write per many requests. */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes every buffered access line now. */
void log_flush(void);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif

/* What the agent reports about the machine besides volumes: the operating
 * system's name and the logons in the login records. */
#ifndef KW_AGENT_FACTS_H
#define KW_AGENT_FACTS_H

#include <stddef.h>

#include "agent/body.h"

/* PRETTY_NAME of /etc/os-release (or /usr/lib/os-release), else "Linux". */
void facts_os_name(char *out, size_t outlen);

/* The logons in the wtmp-format file at path (glibc's utmpxname and
 * getutxent): every USER_PROCESS record, the latest per user and kind, at
 * most max, newest first. A session with a remote host (SSH, xrdp) is
 * remote; one on a seat or a terminal with no host, or an X display
 * (":0"), is local. User names are kept as the system gives them. Returns
 * how many were written to out (0 when the file cannot be read). */
size_t facts_logons(const char *path, struct agent_logon *out, size_t max);

#endif

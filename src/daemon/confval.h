/* confval.h: value parsers shared by the daemon's configuration files (config, auth, TLS keys). */
#ifndef GH_DAEMON_CONFVAL_H
#define GH_DAEMON_CONFVAL_H

#include <stdbool.h>
#include <stddef.h>

#define GH_CONF_SUFFIX_K 1u /* "64k" = 64 x 1024 */
#define GH_CONF_SUFFIX_M 2u /* "2M" = 2 x 1024 x 1024 */

/** Replaces *dst with a copy of v. 1, or 0 with "out of memory" in msg. */
int gh_daemon_set_str(char **dst, const char *v, char *msg, size_t msglen);
/** yes/true/on/1 or no/false/off/0 (case-insensitive). 1, or 0 with a message. */
int gh_daemon_parse_bool(const char *v, bool *ret, char *msg, size_t msglen);
/** A decimal number (digits only, then one of the allowed suffixes) up to
 *  max. False for anything else. */
bool gh_daemon_parse_uint(const char *v, unsigned long long max, unsigned suffixes,
                          unsigned long long *ret);

#endif

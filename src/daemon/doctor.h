/* doctor.h: gatehoused --doctor — the checks an administrator runs when single sign-on does not
 * work. */
#ifndef GH_DAEMON_DOCTOR_H
#define GH_DAEMON_DOCTOR_H

#include <stdio.h>

#include "config.h"

/** Runs every check for cfg and prints one line per check to out:
 *  "LEVEL check: what was found[ -- fix: what to do]", LEVEL one of OK,
 *  INFO, WARN, FAIL, then a summary line. Like the daemon it drops to the
 *  service identity first (as root: `user =` or root's reduced set), so
 *  files are read as the daemon would read them; the invoker's Kerberos
 *  ticket cache (KRB5CCNAME) is copied into memory before that. Changes
 *  nothing on the host, except that the auth engine it starts creates a
 *  missing ccache_dir as the daemon would. Call once, single-threaded,
 *  instead of serving. Returns the exit status: 0 when no check failed, 1
 *  otherwise. */
int gh_daemon_doctor(const gh_daemon_config_t *cfg, FILE *out);

#endif

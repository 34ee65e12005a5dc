/* authprobe.h: gatehoused test handler "authinfo" (auth record, token, kernel-checked identity as JSON). */
#ifndef GH_DAEMON_AUTHPROBE_H
#define GH_DAEMON_AUTHPROBE_H

#include <gatehouse/httpapi.h>

/** Answers req with a JSON report of its auth record and token; with
 *  probe_dir, also the uid/gid the kernel gave a file created while
 *  impersonating the token. Completes req. */
void gh_daemon_handle_authinfo(gh_request_t *req, const char *probe_dir);

#endif

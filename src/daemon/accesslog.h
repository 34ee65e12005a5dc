/* accesslog.h: gatehoused access log (Common Log Format), reopened on SIGHUP. */
#ifndef GH_DAEMON_ACCESSLOG_H
#define GH_DAEMON_ACCESSLOG_H

#include <stddef.h>

#include <gatehouse/httpapi.h>

/** Opens the log ("-" = stdout, NULL = no log). Returns 0 or -errno. */
int gh_accesslog_open(const char *path);
/** Reopens the same path (after rotation); the fd number stays the same so
 *  workers never see a closed fd. Main thread. Returns 0 or -errno. */
int gh_accesslog_reopen(void);
/** Writes one line for a finished request; any thread. Call before
 *  gh_request_complete(). */
void gh_accesslog_write(const gh_request_t *req, int status, unsigned long long bytes);
void gh_accesslog_close(void);

#endif

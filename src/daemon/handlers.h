/* handlers.h: gatehoused built-in handlers (fixed response, plain static files) until the module pipeline. */
#ifndef GH_DAEMON_HANDLERS_H
#define GH_DAEMON_HANDLERS_H

#include <gatehouse/httpapi.h>

#include "config.h"

/** Worker entry for gh_server_run_workers(); arg unused. The site is the
 *  URL group's user context (a gh_site_t, borrowed from the configuration). */
void gh_daemon_handle(gh_request_t *req, void *arg);

/** Content-Type for a file name, by extension. Static string. */
const char *gh_daemon_content_type(const char *name);

#endif

/* handlers.h: gatehoused request entry — auth gate, built-in test/bench handlers, dispatch of pipeline sites. */
#ifndef GH_DAEMON_HANDLERS_H
#define GH_DAEMON_HANDLERS_H

#include <gatehouse/httpapi.h>

#include "config.h"

/** Worker entry for gh_server_run_workers(); arg is the gh_pipeline_t that
 *  runs the module sites (static, whoami, cgi, any module). The site is the
 *  URL group's user context (a gh_site_t, borrowed from the configuration). */
void gh_daemon_handle(gh_request_t *req, void *arg);

#endif

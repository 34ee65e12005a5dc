/* gatehouse.h: the whole public API of libgatehouse in one include. */
#ifndef GATEHOUSE_GATEHOUSE_H
#define GATEHOUSE_GATEHOUSE_H

/*
 * Each header also stands alone and guards itself with extern "C" for C++:
 *
 *   common.h       export macro, version, gh_membership_t
 *   error.h        the GH_E* error codes, gh_strerror()
 *   token.h        access tokens and their handles (gh_token_t)
 *   impersonate.h  per-thread impersonation, privilege set-up, spawn-as
 *   httpapi.h      the HTTP server: listeners, URL groups, requests, responses
 *   authinfo.h     server-side authentication and the per-request auth-info record
 *   module.h       the module pipeline (the IIS native module API) and its host API
 *
 * Start-up order for an application: gh_privileges_drop (optional, first,
 * single-threaded), gh_sec_init, gh_server_new + listeners,
 * gh_server_enable_auth, URL groups + gh_url_group_set_auth,
 * gh_server_start; gh_server_enable_auth, gh_url_group_set_auth and
 * gh_assert_base return GH_ESTATE when called out of that order. Design
 * notes are installed with the documentation (share/doc/gatehouse:
 * modules.md, security.md and internals/).
 */

#include <gatehouse/common.h>
#include <gatehouse/error.h>
#include <gatehouse/token.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/authinfo.h>
#include <gatehouse/metrics.h>
#include <gatehouse/module.h>

#endif

/* runas.h: sec entry points for other layers: run as a token's own ids, gh_sec_init done? */
#ifndef GH_SEC_RUNAS_H
#define GH_SEC_RUNAS_H

#include <stdbool.h>

#include <gatehouse/token.h>

/** Runs fn(arg) with the calling thread switched to the token's own ids
 *  (the client's effective uid, gid and groups) and then back to exactly the
 *  identity it had before — base, or the client it was impersonating; its
 *  impersonation state and mode are untouched (gh__sec_enter/gh__sec_leave).
 *  Works at base or impersonating. The token's level must be IMPERSONATE or
 *  DELEGATE (GH_EBAD_IMPERSONATION_LEVEL: an IDENTIFY token's own ids are
 *  never taken); an expired token is still accepted (cleanup at the end of
 *  a request must work). fn must not change identity itself. Returns fn's
 *  return value, or GH_EINVALID_HANDLE, GH_EBAD_IMPERSONATION_LEVEL,
 *  GH_ENO_PRIVILEGE, GH_ESTATE, -EINVAL without running fn. Aborts if the
 *  switch back fails (like gh_revert). Calling thread only. */
int gh__token_run_as(gh_token_t token, int (*fn)(void *arg), void *arg);

/** Whether gh_sec_init has succeeded: a layer that will need tokens checks
 *  its start-up order with it (gh_server_enable_auth). Any thread. */
bool gh__sec_is_initialised(void);

#endif

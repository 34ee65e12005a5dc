/* auth_internal.h: helpers shared between the auth engine's source files (not for other layers). */
#ifndef GH_HTTPAPI_AUTH_INTERNAL_H
#define GH_HTTPAPI_AUTH_INTERNAL_H

#include <stddef.h>

/** PAM authenticate + acct_mgmt for user/password with a conversation
 *  function; at base identity. 0 on success, GH_EAUTH_FAILED when PAM
 *  refused, GH_EPAM when pam_start failed. *ret_pam_code is the last PAM
 *  return code; msg (may be NULL) gets "PAM <code>: <pam_strerror>". */
int gh__auth_pam_check(const char *service, const char *user, const char *password,
                       int *ret_pam_code, char *msg, size_t msglen);

#define GH__AUTH_PAM_TIMEOUT_MS_DEFAULT 10000u
#define GH__AUTH_PAM_MAX_CONCURRENT_DEFAULT 16u

/** gh__auth_pam_check in a helper thread, waiting at most timeout_ms (0 =
 *  default 10 s): GH_ETIMEOUT when PAM has not answered by then (the helper
 *  keeps running until PAM returns and cleans up after itself), GH_ELIMIT
 *  without calling PAM when max_concurrent (0 = 16) conversations, hung ones
 *  included, are already running, -ENOMEM. Otherwise as gh__auth_pam_check.
 *  Any worker thread, at base identity. */
int gh__auth_pam_check_timed(const char *service, const char *user, const char *password,
                             unsigned timeout_ms, unsigned max_concurrent, int *ret_pam_code,
                             char *msg, size_t msglen);

#endif

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

#endif

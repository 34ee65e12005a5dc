/* error.h: the one list of gatehouse error codes, with names and messages. */
#ifndef GATEHOUSE_ERROR_H
#define GATEHOUSE_ERROR_H

#include <gatehouse/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Functions return int: 0 (or a positive count) on success, and on failure
 * either -errno (a negated system error) or one of the GH_E* codes below.
 * GH_E* codes lie just above GH_E_BASE (-20000), far below any -errno
 * (system errors are > -4096).
 *
 * XX(NAME, message)
 */
#define GH_ERRNO_MAP(XX)                                                        \
  XX(EINVALID_HANDLE, "invalid or stale handle")                                \
  XX(EBAD_IMPERSONATION_LEVEL, "impersonation level does not allow this")       \
  XX(ENOT_IMPERSONATING, "thread is not impersonating")                         \
  XX(ENO_PRIVILEGE, "process lacks the privilege (CAP_SETUID/CAP_SETGID)")      \
  XX(EUID_REFUSED, "account refused: uid 0, service account or below min_uid")  \
  XX(ENO_SUCH_USER, "no such local account")                                    \
  XX(ENESTING, "impersonation nesting limit reached")                           \
  XX(ELIMIT, "a configured size or count limit was exceeded")                   \
  XX(EPARSE, "malformed input")                                                 \
  XX(ETIMEOUT, "operation timed out")                                           \
  XX(ECLOSED, "connection closed")                                              \
  XX(ESHUTDOWN, "server is shutting down")                                      \
  XX(ESTATE, "object is in the wrong state for this call")                      \
  XX(EAUTH_FAILED, "authentication failed")                                     \
  XX(EAUTH_INTERNAL, "internal authentication error")                           \
  XX(EAUTH_CONTINUE, "authentication needs another leg")                        \
  XX(EGSS, "GSSAPI error")                                                      \
  XX(EPAM, "PAM error")                                                         \
  XX(ECHANNEL_BINDING, "channel binding mismatch")                              \
  XX(ENOT_FOUND, "not found")                                                   \
  XX(EEXISTS, "already exists")                                                 \
  XX(ECONFIG, "invalid configuration")                                          \
  XX(EMODULE_ABI, "module ABI version or build signature mismatch")             \
  XX(EMODULE_DUPLICATE, "module with this name already loaded")                 \
  XX(EUNSUPPORTED, "not supported")                                             \
  XX(EBORROWED, "borrowed handle: only its owner may close it")                \
  XX(ETOKEN_EXPIRED, "token has expired")                                      \
  XX(EPRIV_VERIFY, "process privileges differ from the required set")         \
  XX(EREPLAY_CACHE, "replay cache unreachable")                                 \
  XX(EAUTH_UNAVAILABLE, "the authentication backend (winbind, domain controller) does not answer")

#define GH_E_BASE (-20000)
#define GH_E_ERRNO_MIN (-4095)

typedef enum gh_errno {
  GH_E_FIRST_ = GH_E_BASE,
#define GH__ERR_ENUM(name, msg) GH_##name,
  GH_ERRNO_MAP(GH__ERR_ENUM)
#undef GH__ERR_ENUM
  GH_E_LAST_
} gh_errno_t;

/** Human-readable message for an error code (GH_E* or -errno).
 *  Returns a static string; thread-safe. Unknown codes give "unknown error". */
GH_EXPORT const char *gh_strerror(int err);

/** Symbolic name ("GH_EINVALID_HANDLE", "ENOENT") of an error code.
 *  Returns a static string; thread-safe. */
GH_EXPORT const char *gh_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif

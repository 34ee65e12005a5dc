/* auth_internal.h: helpers shared between the auth engine's source files (not for other layers). */
#ifndef GH_HTTPAPI_AUTH_INTERNAL_H
#define GH_HTTPAPI_AUTH_INTERNAL_H

#include <stdbool.h>
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

/* ---- in-memory Kerberos replay cache (auth_rcache.c; see auth.md "Replay") ---- */
#include <stdint.h>

/** Finds the authenticator ciphertext of the Kerberos AP-REQ that the krb5
 *  mechanism could be given for this token (raw or GSS-framed AP-REQ, or the
 *  mechanism token of a SPNEGO NegTokenInit/NegTokenResp), walking strict
 *  DER only. 1: found, *ret_cipher points into token; 0: provably no AP-REQ
 *  (NTLMSSP, or SPNEGO without a Kerberos mechanism token); GH_EPARSE:
 *  anything else — the caller must refuse the token (fail closed). Pure,
 *  any thread; fuzzed by fuzz/fuzz_krb5_apreq.c. */
int gh__krb5_find_authenticator(const void *token, size_t len, const uint8_t **ret_cipher,
                                size_t *ret_cipher_len);

#define GH__RCACHE_TAG_LEN 12u
#define GH__RCACHE_REPLAY 1

typedef struct gh__auth_rcache gh__auth_rcache_t;

/** A replay cache keeping each entry window_s seconds. 0, -ENOMEM or GH_EAUTH_INTERNAL. */
int gh__auth_rcache_new(unsigned window_s, gh__auth_rcache_t **ret_rc);
/** The same in shared memory, for processes forked after it is made: one
 *  cache for all of them (process-shared robust locks; tables in a reserved
 *  MAP_NORESERVE region, 512 MiB of address space). 0, -ENOMEM or
 *  GH_EAUTH_INTERNAL. */
int gh__auth_rcache_new_shared(unsigned window_s, gh__auth_rcache_t **ret_rc);
/** Frees it (shared: unmaps it in this process; the creator also destroys
 *  the locks, so it must be the last user). */
void gh__auth_rcache_free(gh__auth_rcache_t *rc);
/** Raises the window (never lowers it). Any thread. */
void gh__auth_rcache_widen(gh__auth_rcache_t *rc, unsigned window_s);
/** The salted tag of a ciphertext. 0 or GH_EAUTH_INTERNAL. Any thread. */
int gh__auth_rcache_tag(gh__auth_rcache_t *rc, const uint8_t *cipher, size_t len,
                        uint8_t ret_tag[GH__RCACHE_TAG_LEN]);
/** Atomically records a tag unless a live entry has it: 0 recorded,
 *  GH__RCACHE_REPLAY seen before, GH_ELIMIT full of live entries, -ENOMEM. */
int gh__auth_rcache_insert(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN]);
/** Forgets a tag this caller recorded (its accept failed before MIT
 *  verified anything worth remembering). Any thread. */
void gh__auth_rcache_remove(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN]);
/* Tests: insert as if the wall clock read `now`; table slots and entries in all shards. */
int gh__auth_rcache_insert_at(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN],
                              uint32_t now);
size_t gh__auth_rcache_slots(gh__auth_rcache_t *rc, size_t *ret_entries);
void gh__auth_rcache_die_locked_for_test(gh__auth_rcache_t *rc);
bool gh__auth_rcache_spare_clean_for_test(gh__auth_rcache_t *rc, unsigned shard);

#endif

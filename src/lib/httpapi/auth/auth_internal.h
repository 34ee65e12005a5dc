/* auth_internal.h: helpers shared between the auth engine's source files (not for other layers). */
#ifndef GH_HTTPAPI_AUTH_INTERNAL_H
#define GH_HTTPAPI_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/** PAM authenticate + acct_mgmt for user/password with a conversation
 *  function; at base identity. 0 on success, GH_EAUTH_FAILED when PAM
 *  refused, GH_EPAM when pam_start failed. *ret_pam_code is the last PAM
 *  return code; msg (may be NULL) gets "PAM <code>: <pam_strerror>";
 *  ret_user (may be NULL) gets PAM_USER after a success (a module may have
 *  canonicalised the name; "" when unknown or longer than ret_user_len). */
int gh__auth_pam_check(const char *service, const char *user, const char *password,
                       int *ret_pam_code, char *msg, size_t msglen, char *ret_user,
                       size_t ret_user_len);

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
                             char *msg, size_t msglen, char *ret_user, size_t ret_user_len);

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

/* ---- the farm's replay store in Redis (auth_rcache_redis.c; see auth.md "Replay across nodes") ---- */
#include <gatehouse/authinfo.h>

#define GH__RCACHE_LOCAL_ONLY 2 /* Redis unusable, fallback_local: the local cache decides */

typedef struct gh__rcache_redis gh__rcache_redis_t;
typedef struct gh__rcache_redis_config {
  const char *url;      /* redis://[USER@]HOST[:PORT][/DB] or unix:/PATH[?db=DB] */
  const char *password; /* AUTH; NULL = none (copied, wiped at free) */
  bool fallback_local;  /* Redis unusable: GH__RCACHE_LOCAL_ONLY instead of GH_EREPLAY_CACHE */
  unsigned timeout_ms;  /* connect, and each command; 0 = 500 */
  gh_auth_log_cb *log_cb;
  void *log_arg;
} gh__rcache_redis_config_t;

/** Whether url is a Redis replay-cache URL: 0, or GH_ECONFIG with msg. Pure. */
int gh__rcache_redis_check_url(const char *url, char *msg, size_t msglen);
/** The backend (no connection kept: one probe connection is made, logged
 *  and closed, so nothing is shared with processes forked later). 0,
 *  GH_ECONFIG with errbuf, -ENOMEM. Start-up. */
int gh__rcache_redis_new(const gh__rcache_redis_config_t *cfg, char *errbuf, size_t errlen,
                         gh__rcache_redis_t **ret_r);
void gh__rcache_redis_free(gh__rcache_redis_t *r);
/** SET gh:rc:<hex tag> 1 NX PX window: 0 recorded, GH__RCACHE_REPLAY
 *  already there, GH__RCACHE_LOCAL_ONLY or GH_EREPLAY_CACHE when Redis
 *  cannot be used (logged once per outage). Any thread, any process. */
int gh__rcache_redis_insert(gh__rcache_redis_t *r, const uint8_t tag[GH__RCACHE_TAG_LEN],
                            unsigned window_s);
/** DEL of a tag this caller recorded; best effort. Any thread. */
void gh__rcache_redis_remove(gh__rcache_redis_t *r, const uint8_t tag[GH__RCACHE_TAG_LEN]);
/** Open connections of this process (tests). */
unsigned gh__rcache_redis_conns(gh__rcache_redis_t *r);
/** Makes rc farm-wide: tags become unsalted (the same on every node), and
 *  every insert/remove also goes to Redis (the local table still records
 *  them: a same-node replay is refused even if Redis lost its data). Call
 *  once, before the first tag and before forking. 0, GH_ECONFIG, -ENOMEM. */
int gh__auth_rcache_attach_redis(gh__auth_rcache_t *rc, const gh__rcache_redis_config_t *cfg,
                                 char *errbuf, size_t errlen);

/* Tests: insert as if the wall clock read `now`; table slots and entries in all shards. */
int gh__auth_rcache_insert_at(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN],
                              uint32_t now);
size_t gh__auth_rcache_slots(gh__auth_rcache_t *rc, size_t *ret_entries);
void gh__auth_rcache_die_locked_for_test(gh__auth_rcache_t *rc);
bool gh__auth_rcache_spare_clean_for_test(gh__auth_rcache_t *rc, unsigned shard);

/** The token the krb5 mechanism would be given, found in a Negotiate or
 *  Kerberos token as gh__krb5_find_authenticator walks it: mech/mech_len
 *  the mechanism token (the raw or GSS-framed AP-REQ, at top level or as
 *  the SPNEGO mechToken), ap_req/ap_req_len the AP-REQ DER in it, cipher
 *  the authenticator ciphertext. All point into the token. */
typedef struct gh__krb5_ap_req {
  const uint8_t *mech, *ap_req, *cipher;
  size_t mech_len, ap_req_len, cipher_len;
} gh__krb5_ap_req_t;
/** As gh__krb5_find_authenticator, filling *ret on 1. */
int gh__krb5_find_ap_req(const void *token, size_t len, gh__krb5_ap_req_t *ret);

/* ---- the acceptor keys (auth_keytab.c; see auth.md "Keytab") ---- */
#include <gatehouse/authinfo.h>

/** A line for the application's log (gh_auth_config_t.log_cb), or stderr
 *  ("gatehouse: auth: <msg>") when fn is NULL. Any thread. */
void gh__auth_log(gh_auth_log_cb *fn, void *arg, int priority, const char *msg);

typedef struct gh__auth_keytab gh__auth_keytab_t;

/** Reads the keytab file at path into a new MEMORY keytab. 0; GH_ECONFIG
 *  with "keytab <path>: <reason>" in errbuf when the file cannot be read or
 *  holds no key; GH_EAUTH_INTERNAL, -ENOMEM. log/log_arg: where later
 *  re-reads report (NULL: stderr). Start-up, one thread. */
int gh__auth_keytab_new(const char *path, gh_auth_log_cb *log, void *log_arg, char *errbuf,
                        size_t errlen, gh__auth_keytab_t **ret_kt);
void gh__auth_keytab_free(gh__auth_keytab_t *kt);
/** "MEMORY:gh-keytab-..." for a cred store; lives as long as kt. */
const char *gh__auth_keytab_mem_name(const gh__auth_keytab_t *kt);
/** Bumped each time keys are added; read it before an accept. Any thread. */
unsigned gh__auth_keytab_gen(gh__auth_keytab_t *kt);
/** After an accept (begun at generation gen) found no key that decrypts its
 *  ticket: re-reads the file if it changed since the last read (stat:
 *  inode, size, mtime, ctime), or if that read is more than a second old;
 *  concurrent callers wait for one read. true when keys were added since
 *  gen (by this call or another thread's): retrying the accept can now
 *  succeed. A missing or bad file is logged once and keeps every key. Any
 *  thread, at base identity. */
bool gh__auth_keytab_refresh(gh__auth_keytab_t *kt, unsigned gen);
/** At most every 5 s (cheap check otherwise; never waits for a read in
 *  progress): re-reads the file if it changed. Any thread. */
void gh__auth_keytab_poll(gh__auth_keytab_t *kt);
/** Re-reads the file now (SIGHUP); msg gets one line saying what happened.
 *  0 or GH_ECONFIG (not read; keys kept). Any thread. */
int gh__auth_keytab_reload(gh__auth_keytab_t *kt, char *msg, size_t msglen);

/* ---- failure causes (auth_errors.c) ---- */
#include <time.h>

#include <krb5.h>

/** A krb5 error meaning "no key that decrypts this ticket" (no such kvno,
 *  no key for the service, a key of that kvno that fails): what a keytab
 *  re-read can cure. */
bool gh__auth_krb5_key_error(long code);
gh_auth_failure_t gh__auth_failure_of_krb5(long code);
gh_auth_failure_t gh__auth_failure_of_gss_major(uint32_t major);
gh_auth_failure_t gh__auth_failure_of_pam(int pam_code);
/** A local step's GH_E* code (GH_ENO_SUCH_USER, GH_EUID_REFUSED ...). */
gh_auth_failure_t gh__auth_failure_of_local(int gh_code);
/** gss-ntlmssp: minor as returned (possibly renumbered by the mechglue) and
 *  its text from gss_display_status (GSS_C_MECH_CODE), which is what
 *  identifies it; authenticate: the token was an AUTHENTICATE message. */
gh_auth_failure_t gh__auth_failure_of_ntlm(uint32_t minor, const char *mech_text,
                                           bool authenticate);

#define GH__KRB5_DIAG_KVNOS 8
/** What a failed AP-REQ shows: the ticket's service and key version (clear
 *  text), the versions the keytab holds for that service, and when the
 *  keytab decrypts the ticket, its client, end time and the client's clock
 *  offset (from the authenticator). */
typedef struct gh__krb5_diag {
  bool decoded, service_held, decrypted, have_skew;
  char service[256], client[256];
  unsigned kvno, held[GH__KRB5_DIAG_KVNOS], n_held;
  int32_t etype;
  time_t endtime;
  long skew; /* authenticator time - now: > 0 the client is ahead */
} gh__krb5_diag_t;
/** Fills *d from the AP-REQ DER (ap_req/len) with the keys of the MEMORY
 *  keytab mem_kt_name. k: a context for this thread's use. Failure path
 *  only (decrypts the ticket). */
void gh__krb5_diagnose(krb5_context k, const char *mem_kt_name, const void *ap_req, size_t len,
                       gh__krb5_diag_t *d);
/** Refines cause with d and writes the facts for it into detail ("" when
 *  none). acceptor: the one principal the server accepts ("HTTP/www"), or
 *  NULL when it accepts any HTTP/<host> in the keytab. */
gh_auth_failure_t gh__krb5_explain(gh_auth_failure_t cause, const gh__krb5_diag_t *d,
                                   const char *acceptor, char *detail, size_t len);

#endif

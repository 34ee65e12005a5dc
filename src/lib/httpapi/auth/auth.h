/* auth.h: the server-layer authentication engine (Negotiate, NTLM, Kerberos, Basic, peers) — internal interface. */
#ifndef GH_HTTPAPI_AUTH_H
#define GH_HTTPAPI_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gssapi/gssapi.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/token.h>

/*
 * Three objects:
 *
 *  gh__auth_engine_t  one per server. Holds the acceptor credentials
 *                     (acquired once from the keytab cred store), the PAM
 *                     service, the Basic success cache. Immutable after
 *                     gh__auth_engine_new except the internally locked cache:
 *                     any number of threads may call gh__auth_step with it.
 *  gh__auth_conn_t    one per client connection: the half-open GSS context
 *                     (NTLM, SPNEGO legs) and the persisted identity. Used by
 *                     one thread at a time (whoever owns the connection).
 *  gh__auth_result_t  one per request: the verdict, the auth-info record,
 *                     challenge header values, the mutual-auth header and the
 *                     request's delegated ccache. Cleared by
 *                     gh__auth_result_done when the request ends.
 *
 * gh__auth_step must run at base identity (a worker never starts a request
 * impersonating): GSS accept, PAM and NSS run as the service.
 */

typedef struct gh__auth_engine gh__auth_engine_t;
typedef struct gh__auth_conn gh__auth_conn_t;

/* The sec-layer calls the engine makes; tests may substitute them. */
typedef struct gh__auth_token_ops {
  int (*from_user)(const char *user, const gh_token_opts_t *opts, gh_token_t *ret_token);
  int (*from_peer)(int unix_fd, gh_token_t *ret_token);
  int (*open_handle)(gh_token_t token, gh_token_t *ret_token);
  int (*close)(gh_token_t token);
  int (*get_user)(gh_token_t token, char *buf, size_t len);
} gh__auth_token_ops_t;

typedef struct gh__auth_engine_config {
  const char *keytab;            /* acceptor keytab; NULL = no Kerberos/Negotiate-Kerberos */
  const char *service_principal; /* "HTTP" (any HTTP/<host> in the keytab), "HTTP@host"; NULL = "HTTP" */
  const char *ntlm_service_name; /* NTLM acceptor name; NULL = service_principal (host = gethostname) */
  const char *ntlm_user_file;    /* gss-ntlmssp user file; NULL = winbind */
  const char *s4u_principal;     /* S4U: the service account's principal; NULL = no S4U */
  bool ntlm;                     /* enable NTLM (raw and inside SPNEGO) */
  const char *pam_service;       /* NULL = "gatehouse" */
  const char *ccache_dir;        /* parent of private FILE ccache dirs; NULL = "/run/gatehouse";
                                    with a keytab: created/checked (1733) by gh__auth_engine_new */
  const char *unmapped_user;     /* account for IDENTIFY tokens of unmapped names; NULL = "nobody" */
  unsigned basic_cache_ttl_s;    /* Basic success cache lifetime; 0 = off */
  unsigned basic_cache_entries;  /* 0 = 1024 */
  unsigned pam_timeout_ms;       /* 0 = 10000 */
  unsigned pam_max_concurrent;   /* 0 = 16 */
  bool replay_cache_file;        /* MIT's file replay cache instead of the in-memory one */
  bool replay_cache_shared;      /* the in-memory one in shared memory (worker processes) */
  const char *replay_cache_url;  /* the farm's Redis (gh_auth_config_t); NULL = none */
  const char *replay_cache_password;
  bool replay_cache_fallback_local;
  unsigned replay_cache_timeout_ms;
  unsigned name_map_cache_ttl_s; /* Kerberos principal -> local name cache; 0 = off (max 3600) */
  const gh__auth_token_ops_t *token_ops; /* NULL = the sec layer (gh_token_*) */
  gh_auth_log_cb *log_cb;                /* the engine's own lines; NULL = stderr */
  void *log_arg;
} gh__auth_engine_config_t;

/** Creates the engine: checks that the keytab exists and is readable,
 *  acquires the Kerberos, NTLM and SPNEGO acceptor credentials with
 *  gss_acquire_cred_from (keytab and ntlmssp_keyfile cred store; the process
 *  environment is not touched). On failure writes a message naming the file
 *  or the GSS major/minor text into errbuf (may be NULL) and returns
 *  GH_ECONFIG (keytab/user file missing or unreadable), GH_EGSS or -ENOMEM.
 *  Call at start-up at base identity. */
int gh__auth_engine_new(const gh__auth_engine_config_t *cfg, char *errbuf, size_t errlen,
                        gh__auth_engine_t **ret_engine);
/** Re-reads the keytab now (gh_server_reload_keytab): 0, GH_ECONFIG (keys
 *  kept) or GH_ENOT_FOUND (no keytab); msg gets one line. Any thread. */
int gh__auth_engine_reload_keytab(gh__auth_engine_t *engine, char *msg, size_t msglen);
/** Counters of the Kerberos principal -> local name cache (tests): lookups
 *  answered from it, lookups that mapped with krb5, flushes after a krb5
 *  profile change. */
/** Basic requests answered from the connection's memo of its last verified
 *  Authorization header (tests). */
uint64_t gh__auth_engine_basic_memo_hits(gh__auth_engine_t *engine);
void gh__auth_engine_name_map_stats(gh__auth_engine_t *engine, uint64_t *ret_hits,
                                    uint64_t *ret_misses, uint64_t *ret_flushes);
/** Releases credentials and the cache. Accepts NULL. No step may be running. */
void gh__auth_engine_free(gh__auth_engine_t *engine);

/** Per-connection state. Returns NULL on ENOMEM. */
gh__auth_conn_t *gh__auth_conn_new(gh__auth_engine_t *engine);
/** Deletes the half-open context, closes the persisted token. Accepts NULL. */
void gh__auth_conn_free(gh__auth_conn_t *conn);

typedef enum gh__auth_transport_kind {
  GH__AUTH_TRANSPORT_TCP = 0,
  GH__AUTH_TRANSPORT_TLS = 1,
  GH__AUTH_TRANSPORT_UNIX = 2,
} gh__auth_transport_kind_t;

typedef struct gh__auth_transport {
  gh__auth_transport_kind_t kind;
  bool keep_alive;  /* the connection can carry further requests (HTTP/1.1 keep-alive) */
  int unix_fd;      /* AF_UNIX socket for peer credentials; -1 otherwise */
} gh__auth_transport_t;

/** NTLM AUTHENTICATE facts for channel binding and service binding,
 *  found in a raw NTLMSSP message or one wrapped in SPNEGO (searched by
 *  signature). Pure parser of untrusted bytes; exposed for tests/fuzzing. */
typedef struct gh__ntlm_auth_facts {
  bool is_type3;        /* an AUTHENTICATE message was found (any NTLM version) */
  bool is_authenticate; /* an NTLMv2 AUTHENTICATE message was found */
  bool has_cbt;         /* MsvAvChannelBindings present and not all zero */
  char spn[256];        /* MsvAvTargetName (ASCII), "" when absent or not ASCII */
  char user[256];       /* "DOMAIN\\user" (or "user") of an AUTHENTICATE message, printable
                           ASCII ('?' for anything else), "" when none */
} gh__ntlm_auth_facts_t;
void gh__ntlm_auth_facts(const unsigned char *tok, size_t len, gh__ntlm_auth_facts_t *ret_facts);

/** Whether spn ("HTTP/host" or "HTTP/host@REALM") is in the space-separated
 *  list (case-insensitive, realms ignored on both sides). Pure. */
bool gh__auth_spn_allowed(const char *list, const char *spn);

typedef enum gh__auth_verdict {
  GH__AUTH_DELIVER = 0,     /* hand the request to the application with result->info */
  GH__AUTH_CHALLENGE = 1,   /* answer 401 with result->challenges; do not deliver */
  GH__AUTH_BAD_REQUEST = 2, /* answer 400; do not deliver */
  GH__AUTH_UNAVAILABLE = 3, /* answer 503; do not deliver */
} gh__auth_verdict_t;

#define GH__AUTH_MAX_CHALLENGES 6

typedef struct gh__auth_result {
  gh__auth_verdict_t verdict;
  gh_auth_info_t info;              /* DELIVER: the record (token owned by the receiver) */
  size_t n_challenges;              /* CHALLENGE: WWW-Authenticate values, in order */
  char *challenges[GH__AUTH_MAX_CHALLENGES];
  const char *mutual_auth_header;   /* DELIVER+SUCCESS: WWW-Authenticate value to add to the
                                       final 2xx, NULL when none or receive_mutual_auth */
  int error;                        /* BAD_REQUEST/UNAVAILABLE: the reason (GH_E*, -errno) */
  /* private */
  char *mutual_buf;
  void *packed_buf;
  char *remote_user_buf;             /* NULL when the names are in users[] */
  char *local_user_buf;
  char users[192];                   /* remote and local user when they fit (set_users) */
  char *mem_ccache;                 /* "MEMORY:gh-deleg-..." holding delegated creds */
  char *file_ccache_dir;            /* private dir of a materialised FILE ccache */
  char *file_ccache;                /* its name ("FILE:<dir>/ccache") */
  gh_token_t file_ccache_token;     /* own handle to the client that made them (removal) */
  char *fail_client_buf;            /* FAILURE: info.failure_client / _service / _detail */
  char *fail_service_buf;
  char *fail_detail_buf;
  gh_auth_log_cb *log_cb; /* the engine's sink, for result_done's complaints */
  void *log_arg;
} gh__auth_result_t;

/** info.remote_user and info.local_user: copies of remote and local (NULL
 *  stays NULL) in the result's own room when both fit, else allocated
 *  (freed by gh__auth_result_done). 0 or -ENOMEM (then both NULL). The
 *  result must not be moved after. */
int gh__auth_result_set_users(gh__auth_result_t *r, const char *remote, const char *local);

/** The step function: run once per request, at base identity.
 *  authz/authz_len: the Authorization header value (NULL = absent).
 *  Fills *ret_result (always; 0 is returned with a verdict, including
 *  BAD_REQUEST and UNAVAILABLE); a negative return is a programming error
 *  (NULL arguments). Thread-safe for different conns. */
int gh__auth_step(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                  const gh_auth_settings_t *site, const gh__auth_transport_t *transport,
                  const char *authz, size_t authz_len, gh__auth_result_t *ret_result);

/** gh__auth_step on a TLS connection: cbt/cbt_len is its channel-binding
 *  application data ("tls-server-end-point:" + hash, RFC 5929; NULL when
 *  none), checked per site->channel_binding (authinfo.h). */
int gh__auth_step_tls(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                      const gh_auth_settings_t *site, const gh__auth_transport_t *transport,
                      const void *cbt, size_t cbt_len, const char *authz, size_t authz_len,
                      gh__auth_result_t *ret_result);

/** Releases everything the result holds except the token (owned by the
 *  receiver): buffers, challenge values, the request's delegated MEMORY
 *  ccache and any materialised FILE ccache (file and private dir removed
 *  while impersonating the client, through the result's own token handle;
 *  a failure is written to stderr, never ignored). Call when the request
 *  ends, on any thread whose identity the sec layer manages (base or
 *  impersonating: it is restored). Accepts a zeroed result. */
void gh__auth_result_done(gh__auth_result_t *result);

/** Materialises the request's delegated credentials as a 0600 FILE ccache in
 *  a fresh 0700 private directory under the engine's ccache_dir. Directory
 *  and file are created and written while impersonating the request's
 *  client (gh__token_run_as on result->info.token), so they are the
 *  client's without any chown and the service needs no CAP_CHOWN or
 *  CAP_DAC_OVERRIDE; ccache_dir must let clients create directories (1733,
 *  checked at gh__auth_engine_new). owner_uid/owner_gid must be the token's
 *  uid and primary gid (-EPERM otherwise). Idempotent. *ret_ccname
 *  ("FILE:/...") is borrowed from the result and valid until
 *  gh__auth_result_done, which removes it (as the client again). The calling
 *  thread may be at base or impersonating; its identity is restored.
 *  GH_ENOT_FOUND when the request has no delegated credentials;
 *  GH_EBAD_IMPERSONATION_LEVEL for an IDENTIFY token (unmapped principal);
 *  GH_EAUTH_INTERNAL (krb5), -errno (mkdtemp: e.g. -EACCES), sec errors. */
int gh__auth_result_file_ccache(gh__auth_engine_t *engine, gh__auth_result_t *result,
                                uid_t owner_uid, gid_t owner_gid, const char **ret_ccname);

/** Name of the request's MEMORY ccache with the delegated credentials
 *  ("MEMORY:..."), or NULL. Borrowed from the result. */
const char *gh__auth_result_mem_ccache(const gh__auth_result_t *result);

/** The 401 challenge list for the application (DESIGN.md item 2): one
 *  WWW-Authenticate value per scheme the site offers on this transport, in
 *  the order Negotiate > Kerberos > NTLM > Basic unless site->order fixes it.
 *  NTLM only when the connection can be bound (keep-alive), Basic only on TLS
 *  or when basic_over_plain_http, never Peer (no header). Values are written
 *  into buf (NUL-separated); ret_values[i] point into it. Returns the count,
 *  or GH_ELIMIT if buf is too small. Pure function, any thread. */
int gh__auth_challenge_list(const gh_auth_settings_t *site, const gh__auth_transport_t *transport,
                            char *buf, size_t buflen,
                            const char *ret_values[GH__AUTH_MAX_CHALLENGES]);

/* ---- parsing helpers (auth_parse.c), exposed for unit tests and fuzzing ---- */

typedef enum gh__auth_scheme_id {
  GH__AUTH_SCHEME_UNKNOWN = 0,
  GH__AUTH_SCHEME_BASIC,
  GH__AUTH_SCHEME_NTLM,
  GH__AUTH_SCHEME_NEGOTIATE,
  GH__AUTH_SCHEME_KERBEROS,
} gh__auth_scheme_id_t;

/** Splits an Authorization value into scheme and token68 (RFC 7235):
 *  optional leading spaces, scheme token, one or more spaces, credentials,
 *  optional trailing spaces. Returns 0; GH_EPARSE when there is no scheme or
 *  the credentials contain characters outside token68 or a second token;
 *  GH_ELIMIT when credentials exceed max_b64. Empty credentials give
 *  *ret_cred_len = 0. Pointers borrow from value. */
int gh__auth_parse_header(const char *value, size_t len, size_t max_b64,
                          gh__auth_scheme_id_t *ret_scheme, const char **ret_scheme_name,
                          size_t *ret_scheme_len, const char **ret_cred, size_t *ret_cred_len);

/** Strict RFC 4648 base64 decode (padding optional only at the very end,
 *  no whitespace). out must hold gh__b64_decoded_max(len) bytes. Returns 0
 *  and *ret_len, or GH_EPARSE. */
int gh__b64_decode(const char *in, size_t len, unsigned char *out, size_t *ret_len);
size_t gh__b64_decoded_max(size_t len);
/** Base64 encode with padding; out must hold gh__b64_encoded_len(len)+1. */
void gh__b64_encode(const unsigned char *in, size_t len, char *out);
size_t gh__b64_encoded_len(size_t len);

/** Splits decoded Basic credentials "user:password" at the first ':'.
 *  Returns GH_EPARSE without a ':' or with an empty user, or when either part
 *  holds a NUL or control character; GH_ELIMIT when user > 256 or password >
 *  1024 bytes. Pointers borrow from buf, which is modified (':' -> NUL). */
int gh__auth_basic_split(char *buf, size_t len, const char **ret_user, const char **ret_password);

/* ---- Basic success cache (auth_basic.c), exposed for unit tests ----
 *
 * Keyed by SHA-256(per-process random salt || user || NUL || password): a
 * different password (or user) is a different key and never hits; the
 * password itself is never stored. An entry lives ttl_s from its PAM
 * success (a hit never extends it). With token ops an entry also holds an
 * owned handle to the access token built for that success, so a hit costs
 * neither PAM nor NSS: the caller gets a new owned handle to the same
 * (immutable) token; closing it leaves the cached one alone. */
typedef struct gh__auth_basic_cache gh__auth_basic_cache_t;
/** ops may be NULL (no tokens kept; entries only); only open_handle and
 *  close are used. entries 0 = 1024. */
gh__auth_basic_cache_t *gh__auth_basic_cache_new(unsigned entries, unsigned ttl_s,
                                                 const gh__auth_token_ops_t *ops);
/** Closes every cached token. Accepts NULL. */
void gh__auth_basic_cache_free(gh__auth_basic_cache_t *cache);
/** true when (user, password) succeeded within the TTL at time now. With
 *  ret_token: *ret_token = a new owned handle to the entry's token, or 0
 *  when the entry holds none (the caller builds one). */
bool gh__auth_basic_cache_lookup(gh__auth_basic_cache_t *cache, const char *user,
                                 const char *password, time_t now, gh_token_t *ret_token);
/** Records a PAM success at now. token (0 = none) is the caller's handle,
 *  borrowed: the cache opens its own handle to the same token. */
void gh__auth_basic_cache_insert(gh__auth_basic_cache_t *cache, const char *user,
                                 const char *password, time_t now, gh_token_t token);
/** The entry key of (user, password): SHA-256 over the cache's random salt,
 *  user, NUL, password. false when the cache is off (NULL, TTL 0) or the
 *  hash failed. The key is a secret's digest: wipe it after use. The _key
 *  calls below are lookup/insert with a key made once (by this cache: the
 *  salt is its own). */
#define GH__AUTH_BASIC_KEY_SIZE 32
bool gh__auth_basic_cache_key(gh__auth_basic_cache_t *cache, const char *user,
                              const char *password, unsigned char ret_key[GH__AUTH_BASIC_KEY_SIZE]);
/* ret_sid (may be NULL; GH__SID_STR_MAX = 192 bytes) / sid (may be NULL):
 * the SID of the AD user the entry is for ("" / NULL: a local account), so
 * a hit names the user in the requesting site's name_format. */
bool gh__auth_basic_cache_lookup_key(gh__auth_basic_cache_t *cache,
                                     const unsigned char key[GH__AUTH_BASIC_KEY_SIZE], time_t now,
                                     gh_token_t *ret_token, char ret_sid[192]);
void gh__auth_basic_cache_insert_key(gh__auth_basic_cache_t *cache,
                                     const unsigned char key[GH__AUTH_BASIC_KEY_SIZE], time_t now,
                                     gh_token_t token, const char *sid);

#endif

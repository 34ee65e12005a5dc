/* authinfo.h: the auth-info record delivered with each request, and per-site auth settings. */
#ifndef GATEHOUSE_AUTHINFO_H
#define GATEHOUSE_AUTHINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gatehouse/common.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Modelled on HTTP.sys's HTTP_REQUEST_AUTH_INFO. The server runs the whole
 * 401 handshake itself (Negotiate, NTLM, Basic, Unix peers) and delivers each
 * request with one gh_auth_info_t:
 *
 *   - no Authorization header on a site that offers auth: NOT_AUTHENTICATED,
 *     type NONE, no token; the application decides (serve or send the 401
 *     built from the site's offered schemes);
 *   - a failed handshake: FAILURE, with the GSSAPI major/minor or PAM code in
 *     sec_status, no token;
 *   - success: status, type, token, package_name, remote_user and local_user
 *     always; the rest as the scheme provides it (see the fields: Basic and
 *     Peer have no context attributes, packed context, mutual-auth data or
 *     expiry).
 *
 * Lifetime: the record belongs to its request and is valid until the request
 * completes. The token handle in it is owned by the receiver, who closes it
 * at most once with gh_token_close() (gatehouse/token.h); a token still open
 * when the request completes is closed by the server, so it is unusable
 * after its request completes. The buffers (packed context, mutual-auth data, names) are owned
 * by the request and freed with it; the application must not free them.
 * Thread safety: a record is read by the thread handling its request.
 */

typedef enum gh_auth_status {
  GH_AUTH_STATUS_SUCCESS = 0,
  GH_AUTH_STATUS_NOT_AUTHENTICATED = 1,
  GH_AUTH_STATUS_FAILURE = 2,
} gh_auth_status_t;

/* The scheme attempted or established for the request. */
typedef enum gh_auth_type {
  GH_AUTH_TYPE_NONE = 0,
  GH_AUTH_TYPE_BASIC = 1,
  GH_AUTH_TYPE_NTLM = 2,      /* "NTLM" scheme (raw NTLMSSP) */
  GH_AUTH_TYPE_NEGOTIATE = 3, /* "Negotiate" scheme (SPNEGO: Kerberos or NTLM) */
  GH_AUTH_TYPE_KERBEROS = 4,  /* "Kerberos" scheme (raw Kerberos GSS token) */
  GH_AUTH_TYPE_PEER = 5,      /* Unix-socket peer credentials, no header */
} gh_auth_type_t;

/* What sec_status holds. */
typedef enum gh_auth_sec_kind {
  GH_AUTH_SEC_NONE = 0, /* no security call failed */
  GH_AUTH_SEC_GSS = 1,  /* major = GSS major status, minor = mech minor status */
  GH_AUTH_SEC_PAM = 2,  /* major = PAM return code (PAM_AUTH_ERR ...) */
  GH_AUTH_SEC_ERRNO = 3, /* major = errno or -GH_E* code of a local step */
} gh_auth_sec_kind_t;

typedef struct gh_auth_sec_status {
  gh_auth_sec_kind_t kind;
  uint32_t major;
  uint32_t minor;
} gh_auth_sec_status_t;

/* flags */
/* The token comes from the connection's cached (persisted) authentication,
 * not from an Authorization header on this request. */
#define GH_AUTH_FLAG_TOKEN_FOR_CACHED_CRED 0x00000001u
/* The identity comes from the group's session cookie
 * (gh_url_group_set_auth_session), not from an Authorization header on this request: type and
 * package_name are those of the authentication that minted the cookie, the
 * token was made again for the account (no delegated credential, no SIDs),
 * expiry is the session's end. */
#define GH_AUTH_FLAG_SESSION 0x00000002u
/* Channel binding (Extended Protection) status, on TLS connections of sites
 * with channel_binding medium or strict:
 *   CBT_PRESENT   the client's token carried channel bindings;
 *   CBT_VERIFIED  they were checked against this connection's
 *                 tls-server-end-point and matched (a mismatch is FAILURE).
 * SPN_VERIFIED: the service name the client asked for is in the site's
 * allowed_spns list. */
#define GH_AUTH_FLAG_CBT_PRESENT 0x00000100u
#define GH_AUTH_FLAG_CBT_VERIFIED 0x00000200u
#define GH_AUTH_FLAG_SPN_VERIFIED 0x00000400u

#define GH_AUTH_SEC_TEXT_MAX 160

/* Why an authentication failed, for the operator: one cause per record,
 * decided by the server from the GSS major/minor (Kerberos error codes and
 * gss-ntlmssp minor codes), the PAM code or the local step that refused,
 * and, for Kerberos, what the AP-REQ itself shows (the ticket's service,
 * key version and, when the keytab can decrypt it, client and times).
 * XX(NAME, text, fix): gh_auth_failure_name / _text / _fix. */
#define GH_AUTH_FAILURE_MAP(XX)                                                                    \
  XX(NONE, "no failure", "")                                                                       \
  XX(REPLAY, "replayed Kerberos token: this authenticator was already accepted once",              \
     "one-off: a client or proxy re-sent an old Authorization header (it needs a fresh "           \
     "token); repeated from one address: captured traffic is being replayed")                      \
  XX(CLOCK_SKEW,                                                                                   \
     "clock skew: the client's clock and this server's differ by more than the "                   \
     "allowed skew",                                                                               \
     "synchronise both clocks (NTP, chrony, w32time); krb5.conf [libdefaults] clockskew sets "     \
     "the limit (300 s by default)")                                                               \
  XX(WRONG_KVNO, "the ticket's key version is not in the keytab",                                  \
     "the service password changed and the keytab lacks the new key: export it again "             \
     "(kadmin ktadd, adcli update, net ads keytab create, msktutil); if the keytab is newer "      \
     "than the ticket, the client holds an old ticket (kdestroy, klist purge)")                    \
  XX(NO_KEY, "the keytab has no key for the service principal the ticket is for",                  \
     "add that principal's key to the keytab (kadmin ktadd, setspn + keytab export), or have "     \
     "the client use a name this server has keys for")                                             \
  XX(WRONG_SPN, "the client asked for a service name this server or site does not accept",         \
     "use the configured name, or add this one to service_principal / allowed_spns")               \
  XX(BAD_KEY, "the keytab's key for this version does not decrypt the ticket",                     \
     "the keytab is stale or belongs to another account (a re-created account reuses key "         \
     "versions): export the key again")                                                            \
  XX(TICKET_EXPIRED, "the client's Kerberos ticket has expired",                                   \
     "the client must get a new ticket (kinit; on Windows lock and unlock or log on again)")       \
  XX(MALFORMED_TOKEN, "malformed token: not a valid Kerberos, SPNEGO or NTLM message",             \
     "a broken client or proxy altered the Authorization header, or it is not an "                 \
     "authentication attempt at all")                                                              \
  XX(BAD_PASSWORD, "wrong password", "the user must enter the right password")                     \
  XX(UNKNOWN_ACCOUNT, "unknown account",                                                           \
     "create the account, or map the name to one (auth_to_local, ntlm_user_file, NSS)")            \
  XX(ACCOUNT_REFUSED,                                                                              \
     "the local account is refused: uid 0, the service account, or a uid "                         \
     "below min_uid",                                                                              \
     "use an ordinary account; lower [server] min_uid only if this account should log in")         \
  XX(ACCOUNT_DISABLED,                                                                             \
     "the account may not log in now (expired, locked, password change "                           \
     "required, or not permitted by PAM's account check)",                                         \
     "unlock, renew or re-enable the account")                                                     \
  XX(CHANNEL_BINDING, "channel binding (Extended Protection) failed",                              \
     "the client talks through a TLS-terminating proxy or sends no bindings: connect "             \
     "directly, or relax channel_binding for this site")                                           \
  XX(ANONYMOUS, "anonymous (NULL session) logon refused",                                          \
     "the client must log on with an account")                                                     \
  XX(OTHER, "authentication failed", "")                                                          \
  XX(WINBIND_UNAVAILABLE,                                                                          \
     "winbindd does not answer: NTLM logons cannot be checked by the domain controller",           \
     "start winbind (systemctl start winbind; on a Samba DC: samba) and check the DC is "          \
     "reachable (wbinfo -p, wbinfo -P); gatehoused answers 503 until then and recovers by itself") \
  XX(WINBIND_PIPE,                                                                                 \
     "winbind's privileged pipe refuses the service user: NTLM via winbind cannot be checked",     \
     "NTLM via winbind needs the service user in group winbindd_priv (or the privileged pipe "     \
     "dir's group): usermod -aG winbindd_priv gatehouse, then restart gatehoused")

typedef enum gh_auth_failure {
#define GH_AUTH_FAILURE_ENUM_(name, text, fix) GH_AUTH_FAILURE_##name,
  GH_AUTH_FAILURE_MAP(GH_AUTH_FAILURE_ENUM_)
#undef GH_AUTH_FAILURE_ENUM_
} gh_auth_failure_t;

/*
 * The fields by scheme, on SUCCESS. NOT_AUTHENTICATED: type NONE, the rest
 * zero or NULL. FAILURE: status, type, package_name, sec_status,
 * sec_status_text and the failure fields (flags may say CBT_PRESENT); no
 * token, no remote_user or local_user.
 *
 *   field               Negotiate/Kerberos/NTLM        Basic, Peer
 *   token               owned handle                   owned handle
 *   package_name        mechanism (see below)          "Basic", "Peer"
 *   remote_user         as authenticated               the name as typed (Basic),
 *                                                      the uid's account (Peer)
 *   local_user          mapped local account           the same account
 *   flags               TOKEN_FOR_CACHED_CRED, CBT_*,  0 (never cached on a
 *                       SPN_VERIFIED                   connection)
 *   context_attributes  GSS ret_flags                  0
 *   packed_context      with settings.packed_context   NULL
 *   mutual_auth_data    when the mechanism sent one    NULL
 *   expiry              end of the GSS context         0
 */
typedef struct gh_auth_info {
  gh_auth_status_t status;
  gh_auth_sec_status_t sec_status;
  uint32_t flags;                  /* GH_AUTH_FLAG_* */
  gh_auth_type_t type;             /* the scheme of the Authorization header */
  gh_token_t token;                /* 0 unless SUCCESS; owned by the receiver */
  uint32_t context_attributes;     /* GSS ret_flags (GSS_C_MUTUAL_FLAG ...); 0 for Basic/Peer */
  uint32_t packed_context_type;    /* the mechanism whose context is packed, as a
                                      gh_auth_type_t: GH_AUTH_TYPE_KERBEROS or
                                      GH_AUTH_TYPE_NTLM (for a Negotiate request, the
                                      mechanism SPNEGO chose, never NEGOTIATE); 0 when
                                      packed_context is NULL */
  size_t packed_context_len;
  const void *packed_context;      /* gss_export_sec_context bytes, or NULL; only when the
                                      site sets gh_auth_settings_t.packed_context */
  size_t mutual_auth_data_len;
  const char *mutual_auth_data;    /* exact WWW-Authenticate value, or NULL */
  const char *package_name;        /* static. SUCCESS: the security package that
                                      authenticated: "Kerberos" or "NTLM" (for Negotiate,
                                      the mechanism inside SPNEGO), "Basic", "Peer".
                                      FAILURE: the same when the mechanism was known when
                                      it failed (a replayed authenticator, an unmapped
                                      principal, a binding mismatch), else the scheme's
                                      name ("Negotiate" when SPNEGO failed before choosing).
                                      NULL for NOT_AUTHENTICATED. */
  const char *remote_user;         /* name as authenticated (alice@REALM, DOM\alice), or NULL */
  const char *local_user;          /* local account the token is for, or NULL */
  time_t expiry;                   /* end of the security context (0 = none) */
  char sec_status_text[GH_AUTH_SEC_TEXT_MAX]; /* filled on FAILURE */
  /* FAILURE only (NONE / NULL otherwise); see gh_auth_info_failure_message */
  gh_auth_failure_t failure;   /* the cause */
  const char *failure_client;  /* who the client is or claimed to be, when known: the
                                  ticket's client (when the keytab decrypts it), the
                                  NTLM DOMAIN\user, the Basic user name */
  const char *failure_service; /* the service name the client asked for, when known:
                                  the ticket's server principal, the NTLM target name */
  const char *failure_detail;  /* facts for the cause ("ticket kvno 3; the keytab holds
                                  kvno 2 of HTTP/www@R"), or NULL */
} gh_auth_info_t;

/** Text for info->sec_status: the GSS major/minor or PAM message captured when
 *  the record was filled ("" when none). Borrowed from the record. Any thread. */
GH_EXPORT const char *gh_auth_info_sec_status_text(const gh_auth_info_t *info);

/** Name of a failure cause ("REPLAY", "CLOCK_SKEW", ...; "UNKNOWN" out of range);
 *  static. Any thread. */
GH_EXPORT const char *gh_auth_failure_name(gh_auth_failure_t failure);

/** One-line description of a failure cause ("replayed Kerberos token: ..."); static. */
GH_EXPORT const char *gh_auth_failure_text(gh_auth_failure_t failure);

/** What an operator can do about it, or "" when there is nothing to do; static. */
GH_EXPORT const char *gh_auth_failure_fix(gh_auth_failure_t failure);

/** The failure of a FAILURE record as one line for a log: the cause's text,
 *  the detail, client and service when known, the fix, then the GSS/PAM
 *  text as reported ("clock skew: ...: the client's clock is 412 s ahead of
 *  this server's; client alice@R; service HTTP/www@R; fix: synchronise
 *  ...; reported: Clock skew too great"). Without the client address,
 *  which the record does not hold (gh_conn_info_t.peer). Writes at most
 *  len bytes, NUL-terminated; returns the length snprintf would (0 for a
 *  record that is not FAILURE). The library never logs it: the
 *  application does. Any thread. */
GH_EXPORT int gh_auth_info_failure_message(const gh_auth_info_t *info, char *buf, size_t len);

/** Name of an auth status ("SUCCESS", "NOT_AUTHENTICATED", "FAILURE"); static. */
GH_EXPORT const char *gh_auth_status_name(gh_auth_status_t status);

/** Name of an auth type ("NONE", "Basic", "NTLM", "Negotiate", "Kerberos",
 *  "Peer"); static. */
GH_EXPORT const char *gh_auth_type_name(gh_auth_type_t type);

/** Remaining lifetime in seconds of info's packed context (imports a copy
 *  with gss_import_sec_context and queries it). GSS_C_INDEFINITE gives
 *  UINT32_MAX. Returns 0, GH_ENOT_FOUND if the record has no packed context,
 *  or GH_EGSS. Any thread. */
GH_EXPORT int gh_auth_packed_context_lifetime(const gh_auth_info_t *info,
                                              uint32_t *ret_seconds);

/* ---- per-site (URL group) authentication settings ---- */

/* Offered schemes (bitmask). */
#define GH_AUTH_SCHEME_BASIC 0x01u
#define GH_AUTH_SCHEME_NTLM 0x02u
#define GH_AUTH_SCHEME_NEGOTIATE 0x04u
#define GH_AUTH_SCHEME_KERBEROS 0x08u
#define GH_AUTH_SCHEME_PEER 0x10u

typedef enum gh_auth_persist {
  GH_AUTH_PERSIST_NTLM = 0, /* default: NTLM stays authenticated on its connection */
  GH_AUTH_PERSIST_ALL = 1,  /* also Kerberos/Negotiate (authPersistNonNTLM) */
  GH_AUTH_PERSIST_NONE = 2, /* every request authenticates */
} gh_auth_persist_t;

/* Extended Protection for Authentication (HTTP.sys's hardening levels).
 * Bindings are RFC 5929 tls-server-end-point of the connection's server
 * certificate, passed to gss_accept_sec_context for Kerberos (krb5 and
 * SPNEGO) and NTLM (MsvAvChannelBindings). */
typedef enum gh_auth_channel_binding {
  GH_AUTH_CB_LEGACY = 0, /* never check (no bindings passed) */
  GH_AUTH_CB_MEDIUM = 1, /* check when the client sent bindings; serve clients without */
  GH_AUTH_CB_STRICT = 2, /* require bindings on TLS: a token without them is FAILURE */
} gh_auth_channel_binding_t;

/* Where an Active Directory user's supplementary groups come from. */
typedef enum gh_auth_group_source {
  GH_AUTH_GROUPS_NSS = 0, /* getgrouplist through NSS (winbind, sssd, files) */
  GH_AUTH_GROUPS_PAC = 1, /* the group SIDs of the verified PAC (Kerberos) or of the DC
                             (NTLM), mapped to gids by winbind (wbcSidsToUnixIds): no
                             group enumeration. Users without SIDs (an MIT realm, Basic,
                             peers) keep NSS groups. Needs a build with libwbclient. */
} gh_auth_group_source_t;

/* The one name of an Active Directory user (a user with a SID: Kerberos with
 * a PAC, NTLM checked by the DC), whatever the client typed: the account
 * the SID maps to through winbind, spelt as AD spells it. */
typedef enum gh_auth_name_format {
  GH_AUTH_NAME_DOMAIN_USER = 0, /* "ADTEST\carla" (NetBIOS domain, sAMAccountName) */
  GH_AUTH_NAME_USER_REALM = 1,  /* "carla@AD.TEST" */
  GH_AUTH_NAME_USER = 2,        /* "carla" */
} gh_auth_name_format_t;

#define GH_AUTH_MAX_TOKEN_DEFAULT (64u * 1024u)
#define GH_AUTH_ORDER_MAX 5

typedef enum gh_auth_s4u {
  GH_AUTH_S4U_NO = 0,
  GH_AUTH_S4U_SELF,
  GH_AUTH_S4U_PROXY,
} gh_auth_s4u_t;

typedef struct gh_auth_settings {
  uint32_t schemes;                 /* GH_AUTH_SCHEME_* offered */
  /* Challenge order override: GH_AUTH_SCHEME_* values, 0-terminated; all
   * zero = Negotiate > Kerberos > NTLM > Basic. */
  uint32_t order[GH_AUTH_ORDER_MAX];
  gh_auth_persist_t persist;
  bool receive_mutual_auth;   /* the application sends the mutual-auth data */
  const char *realm;          /* Basic realm (borrowed); NULL = "gatehouse" */
  bool basic_over_plain_http; /* allow Basic on non-TLS TCP listeners */
  bool allow_unmapped;        /* principal without local account: IDENTIFY token */
  bool ntlm_keep_domain;      /* NTLM DOMAIN\user maps to "DOMAIN\user", not "user" */
  bool packed_context;        /* fill packed_context (gss_export_sec_context); off by
                                 default: exporting costs ~10% of an accept */
  size_t max_token_size;      /* decoded bytes; 0 = GH_AUTH_MAX_TOKEN_DEFAULT */
  gh_auth_channel_binding_t channel_binding; /* default medium (see above) */
  const char *allowed_spns;   /* service binding: space-separated names the client may
                                 have asked for ("HTTP/www.example.com HTTP/www"), case-
                                 insensitive, realm ignored; a Kerberos ticket or NTLM
                                 MsvAvTargetName for another name is FAILURE. Unknown name
                                 (NTLM without a target name): FAILURE on strict only.
                                 NULL = no check; not applied on legacy. Copied. */
  gh_auth_group_source_t group_source; /* default NSS */
  gh_auth_name_format_t name_format;   /* remote_user of an AD user; default DOMAIN\user */
  /* S4U (protocol transition): for a client signed in with Basic, NTLM or as a Unix
   * peer, a Kerberos credential obtained from the KDC with the service's keytab
   * (gh_auth_config_t.s4u_principal), in the request's delegated ccache. SELF: the
   * S4U2Self ticket for the user to this service; PROXY: also a ticket to each of
   * s4u_targets (S4U2Proxy, constrained delegation allowed on the KDC). A target
   * the KDC refuses is left out (the request is served, the engine logs why). */
  gh_auth_s4u_t s4u;
  const char *s4u_targets; /* PROXY: space-separated SPNs "service/host"; copied */
  /* The caller allocates this struct: it never grows (a field added here
   * would be read past the end of an older application's copy). New per-site
   * auth properties get a setter, like gh_url_group_set_auth_session. */
} gh_auth_settings_t;

/** Fills *settings with the defaults: no scheme offered, persist = ntlm,
 *  mutual-auth data sent by the server, 64 KiB token limit, channel
 *  binding medium, no SPN list. */
GH_EXPORT void gh_auth_settings_init(gh_auth_settings_t *settings);

/* ---- session cookies of a URL group (gh_url_group_set_auth_session) ----
 *
 * After a successful Negotiate, Kerberos, NTLM or Basic authentication the
 * response carries an AES-256-GCM sealed cookie with the account, the name
 * as authenticated, the scheme and its times; a later request without
 * Authorization but with a valid cookie is delivered SUCCESS with
 * GH_AUTH_FLAG_SESSION and a token made again for the account (it must
 * still exist and pass min_uid). A tampered, expired, idle, wrong-key or
 * malformed cookie is no cookie (the engine logs why, through
 * gh_auth_config_t.log_cb). Never for Peer. The token has no delegated
 * credential and no SIDs, and its groups come from NSS even where the site
 * uses group_source = pac (gatehoused refuses that combination). See
 * docs/security.md "Session cookies". */
typedef struct gh_auth_session_settings {
  const char *key_file;  /* required: one or two lines of 64 hex digits, the current key
                            (seals and opens) then the previous one (opens only); owned
                            by the process's euid or root, no access for others, no group
                            write. Read by gh_url_group_set_auth_session and
                            gh_server_reload_session_keys. Copied. */
  unsigned max_age_s;    /* a session's life from its authentication, never past the
                            Kerberos ticket's end; 0 = 8 h */
  unsigned idle_s;       /* unused this long, a session ends; each use after a quarter of
                            it sends a fresh cookie; 0 = 30 min */
  const char *cookie;    /* cookie name (RFC 6265 token); NULL = "gh_session". Copied. */
  const char *path;      /* cookie Path, and the site sealed into the cookie (a cookie of
                            another site never opens here); NULL = the URL group's
                            prefix. Copied. */
  bool secure_always;    /* Secure on every listener, not only TLS ones */
  const char *logout;    /* a URL path (exact match, under the group) the server answers
                            200 itself, clearing the cookie; NULL = none. Copied. */
  /* The caller allocates this struct: it never grows (a field added here
   * would be read past the end of an older application's copy). New session
   * properties get a setter. */
} gh_auth_session_settings_t;

/** Fills *settings with the defaults: everything NULL / 0 (8 h, 30 min,
 *  "gh_session", the group's prefix, Secure on TLS only, no logout URL). */
GH_EXPORT void gh_auth_session_settings_init(gh_auth_session_settings_t *settings);

/* ---- the engine in a server (HTTP.sys-style server-side authentication) ----
 *
 *   gh_sec_init(&sc);                                       -- first: tokens need it
 *   gh_server_new(...);
 *   gh_auth_config_init(&ac); ac.keytab = ...; ac.ntlm_user_file = ...;
 *   gh_server_enable_auth(srv, &ac, err, sizeof(err));     -- before start
 *   gh_server_add_url_group(srv, "/files", NULL, ctx, &grp);
 *   gh_auth_settings_init(&as); as.schemes = GH_AUTH_SCHEME_NEGOTIATE | ...;
 *   gh_url_group_set_auth(grp, &as);                        -- before start
 *   gh_server_start(srv);
 *   worker: gh_server_receive(srv, -1, &req);
 *           info = gh_request_get_auth_info(req);           -- NULL: no auth on this group
 *           ... serve, or gh_response_set_status(req, 401) (the server adds
 *           the challenge list) ...
 *           gh_token_close(info->token) once if the application used it;
 *           gh_request_complete(req);                        -- closes it otherwise
 *
 * The server runs every handshake on the worker that dequeues a request,
 * before gh_server_receive returns it (at base identity, never
 * impersonating): intermediate NTLM/SPNEGO legs are answered 401 with the
 * server's token, a malformed Authorization 400, an internal failure 503;
 * none of those reach the application. Every other request on a group with
 * auth settings is delivered with a record. On a final 2xx the server adds
 * the mutual-auth WWW-Authenticate unless the group sets
 * receive_mutual_auth or the response already has a WWW-Authenticate (the
 * application sent it); on a 401 without a WWW-Authenticate it adds one per
 * offered scheme.
 */

/** A line for the application's log: priority is a syslog(3) level
 *  (LOG_ERR, LOG_WARNING, LOG_INFO), msg one line without a newline,
 *  borrowed for the call. Must be thread-safe and must not block long. */
typedef void gh_auth_log_cb(void *arg, int priority, const char *msg);

/** Server-wide engine configuration. Strings are borrowed for the call. */
typedef struct gh_auth_config {
  const char *keytab;            /* acceptor keytab; NULL = no Kerberos (Negotiate = NTLM only) */
  const char *service_principal; /* "HTTP" (any HTTP/<host> key in the keytab) or "HTTP@host";
                                    NULL = "HTTP" */
  const char *ntlm_service_name; /* NTLM acceptor name; NULL = service_principal (host =
                                    gethostname()) */
  const char *ntlm_user_file;    /* gss-ntlmssp user file (DOMAIN:user:password lines) */
  const char *s4u_principal;     /* S4U: the service account's own principal in the keytab
                                    (a user or machine name, "svc@REALM", "HOST$@REALM": AD
                                    issues TGTs to those, not to SPNs); NULL = no S4U */
  bool ntlm;                     /* offer NTLM (raw and inside SPNEGO); without a user file
                                    gss-ntlmssp asks winbind */
  const char *pam_service;       /* Basic; NULL = "gatehouse" */
  const char *ccache_dir;        /* parent of the private FILE ccache directories of
                                    delegated credentials; NULL = "/run/gatehouse" */
  const char *unmapped_user;     /* account of IDENTIFY tokens for unmapped principals
                                    (allow_unmapped); NULL = "nobody" */
  unsigned basic_cache_ttl_s;    /* Basic success cache lifetime; 0 = off; default 60 */
  unsigned basic_cache_entries;  /* 0 = 1024 */
  unsigned pam_timeout_ms;       /* Basic: a PAM conversation not done by then answers 503
                                    (it finishes in a helper thread); 0 = 10000 */
  unsigned pam_max_concurrent;   /* PAM conversations at once, hung ones included; beyond:
                                    503 without calling PAM; 0 = 16 */
  bool replay_cache_file;        /* Kerberos replay detection in MIT's file replay cache
                                    (shared by every acceptor of this euid on the host)
                                    instead of the engine's in-memory cache, which is
                                    faster but covers this process only; default false */
  bool replay_cache_shared;      /* the in-memory replay cache lives in shared memory, one
                                    cache for every process forked after
                                    gh_server_enable_auth (see gh_server_atfork_child):
                                    an AP-REQ accepted by one is a replay in all; default
                                    false */
  const char *replay_cache_url;  /* a replay store shared by a farm: redis://[USER@]HOST[:PORT]
                                    [/DB] or unix:/PATH[?db=DB]. Every accepted Kerberos
                                    authenticator is also recorded there (SET NX PX, a hash
                                    tag only), so a token accepted by one node is a replay on
                                    every other; Redis unusable: 503 (GH_EREPLAY_CACHE) unless
                                    replay_cache_fallback_local. NULL = this server only */
  const char *replay_cache_password; /* Redis AUTH password (copied, wiped); NULL = none */
  bool replay_cache_fallback_local;  /* Redis unusable: this server's own cache decides
                                        (logged) instead of 503; default false */
  unsigned replay_cache_timeout_ms;  /* Redis connect and command timeout; 0 = 500 */
  unsigned name_map_cache_ttl_s; /* seconds a Kerberos principal -> local account mapping
                                    (krb5 auth_to_local) is reused; dropped at once when a
                                    krb5 profile file changes; failures are never cached;
                                    0 = off; default 5, at most 3600 */
  gh_auth_log_cb *log_cb;        /* where the engine's own lines go (the keytab re-read, a
                                    keytab that cannot be read and whose keys are kept, a
                                    delegated ccache that could not be removed); called
                                    from any worker thread, at most a few times a second.
                                    NULL: stderr, "gatehouse: auth: <msg>" */
  void *log_arg;                 /* passed to log_cb */
} gh_auth_config_t;

/** Whether url is a replay_cache_url gh_server_enable_auth would take
 *  (syntax only; nothing is connected): 0, or GH_ECONFIG with a one-line
 *  reason in msg. Any thread. */
GH_EXPORT int gh_auth_replay_cache_check(const char *url, char *msg, size_t msglen);

/** Tries a replay store the way a worker will use it (for gatehoused
 *  --doctor): connects (timeout_ms, 0 = 500; AUTH with password when not
 *  NULL, SELECT), records a key of its own with SET NX PX, checks that a
 *  second SET NX of it is refused, deletes it and reads maxmemory-policy.
 *  Returns 0 (usable; msg says what was checked), 1 (usable, but the
 *  eviction policy may drop tags when Redis is full: msg says what to set),
 *  GH_EREPLAY_CACHE (unreachable, refused, or not behaving as a replay
 *  store: msg says why), GH_ECONFIG (bad URL) or -EINVAL. msg may be NULL.
 *  Any thread; blocks up to a few timeouts. */
GH_EXPORT int gh_auth_replay_cache_probe(const char *url, const char *password,
                                         unsigned timeout_ms, char *msg, size_t msglen);

/** Asks winbindd for a ping from a helper thread and waits at most
 *  timeout_ms (a hung winbindd never answers, and libwbclient has no
 *  timeout of its own). Returns 0 (it answered), GH_EAUTH_UNAVAILABLE (not
 *  running: it refused at once), GH_ETIMEOUT (no answer in time: hung;
 *  the helper thread stays blocked until it answers, and later calls
 *  return GH_ETIMEOUT at once until then) or GH_EUNSUPPORTED (built
 *  without libwbclient). Any thread. */
GH_EXPORT int gh_auth_winbind_ping(unsigned timeout_ms);

/** Defaults: everything NULL/off, basic_cache_ttl_s = 60,
 *  name_map_cache_ttl_s = 5. Any thread. */
GH_EXPORT void gh_auth_config_init(gh_auth_config_t *cfg);

/** Enables server-side authentication: creates the engine (checks the keytab
 *  and user file, acquires the acceptor credentials once) and installs the
 *  request gate and response hook. Call once, before gh_server_start(), at
 *  base identity, after gh_sec_init (the engine makes tokens). cfg NULL =
 *  defaults. On failure errbuf (may be NULL) gets a message naming the file
 *  or the GSS error, e.g. "keytab /etc/x.keytab: No such file or
 *  directory". Returns 0, GH_ESTATE (gh_sec_init not called yet: errbuf
 *  says so), GH_ECONFIG, GH_EGSS, GH_EEXISTS (already enabled), -EINVAL or
 *  -ENOMEM. The engine lives until gh_server_free(). */
GH_EXPORT int gh_server_enable_auth(gh_server_t *server, const gh_auth_config_t *cfg,
                                    char *errbuf, size_t errlen);

/** Re-reads the keytab file now (SIGHUP): keys it holds that the server
 *  lacks are added; keys are never removed while running. A missing,
 *  unreadable, empty or damaged file keeps every key already loaded (its
 *  complete entries are still taken). The server also re-reads the file on
 *  its own: when an accept finds no key for a ticket (at once if the file
 *  changed, else at most once a second, then the accept is retried once),
 *  and when a 5 s check sees the file changed. msg (may be NULL) gets one
 *  line for the log either way ("keytab /x re-read: 2 new keys (HTTP/w@R
 *  kvno 3, ...), 6 held" or "keytab /x not re-read: ...; keeping the 4 keys
 *  already loaded"). Returns 0, GH_ECONFIG (file not read, keys kept) or
 *  GH_ENOT_FOUND (no auth, or no keytab configured). Any thread; in a
 *  process forked after gh_server_enable_auth, it re-reads that process's
 *  copy. */
GH_EXPORT int gh_server_reload_keytab(gh_server_t *server, char *msg, size_t msglen);

/** Whether path is a session_key_file gh_url_group_set_auth would take (the
 *  same reads and checks, keys wiped at once): 0, or GH_ECONFIG with a
 *  one-line reason in msg (may be NULL). Any thread. */
GH_EXPORT int gh_auth_session_key_file_check(const char *path, char *msg, size_t msglen);

/** Re-reads every site's session_key_file (SIGHUP): the new keys apply to
 *  the next request; a cookie sealed with a key still in the file (current
 *  or previous) keeps opening, so rotating "new current, old current as
 *  previous" logs nobody out. A file that cannot be read or is invalid
 *  keeps that site's keys. msg gets one line for the log. Returns 0 (also
 *  when no site has sessions: msg empty), GH_ECONFIG (some file kept its
 *  keys) or GH_ENOT_FOUND (no auth on the server). Any thread. */
GH_EXPORT int gh_server_reload_session_keys(gh_server_t *server, char *msg, size_t msglen);

/** Sets a URL group's auth settings (copied, the realm string too). A group
 *  without settings, or with schemes == 0, has no authentication:
 *  gh_request_get_auth_info returns NULL for its requests. Call after
 *  gh_server_enable_auth (GH_ESTATE otherwise) and before gh_server_start().
 *  Replaces any earlier settings, session cookies included (off again).
 *  Returns 0, -EINVAL, GH_ESTATE or -ENOMEM. */
GH_EXPORT int gh_url_group_set_auth(gh_url_group_t *group, const gh_auth_settings_t *settings);

/** Turns session cookies on for a group with auth settings
 *  (gh_url_group_set_auth first; settings copied): reads and checks the
 *  key file now (a server shares one read per path among its groups).
 *  Before gh_server_start(). Returns 0; GH_ESTATE (no auth settings on the
 *  group); GH_ECONFIG (the key file: the reason goes to
 *  gh_auth_config_t.log_cb; gh_auth_session_key_file_check gives it too);
 *  -EINVAL (no key_file, a cookie name that is not a token, a path or
 *  logout URL not starting with '/' or holding a space, ';' ',' or a control
 *  character); -ENOMEM. */
GH_EXPORT int gh_url_group_set_auth_session(gh_url_group_t *group,
                                            const gh_auth_session_settings_t *settings);

/** The group's auth settings, or NULL. Lives as long as the group. Any thread. */
GH_EXPORT const gh_auth_settings_t *gh_url_group_get_auth(const gh_url_group_t *group);

/** The auth-info record of a delivered request (HTTP_REQUEST_AUTH_INFO), or
 *  NULL when its group has no auth settings. Borrowed from the request,
 *  valid until gh_request_complete(). info->token is the receiver's owned
 *  handle: close it at most once with gh_token_close() (a second close
 *  returns GH_EINVALID_HANDLE); a token still open when the request
 *  completes is closed by the server, so it is unusable afterwards — take
 *  your own handle with gh_token_open_handle() or gh_token_duplicate() to
 *  keep the identity. The thread owning the request. */
GH_EXPORT const gh_auth_info_t *gh_request_get_auth_info(const gh_request_t *req);

/** The request's delegated Kerberos credentials as a FILE ccache for a child
 *  process: a 0600 file in a fresh 0700 directory under ccache_dir (1733),
 *  both made, written and later removed *as the client* (the sec layer
 *  switches to the request token's own ids for those calls and back), so
 *  they belong to the client without any chown. uid/gid must be the
 *  token's (-EPERM otherwise). *ret_ccname ("FILE:/...") is borrowed from
 *  the request; file and directory are removed when the request completes
 *  (delegated credentials never outlive their request). Idempotent.
 *  Returns 0, GH_ENOT_FOUND (no delegated credentials or no auth),
 *  GH_EBAD_IMPERSONATION_LEVEL (IDENTIFY token),
 *  GH_EAUTH_INTERNAL or -errno. At base or while impersonating; the
 *  thread's identity is the same afterwards. */
GH_EXPORT int gh_request_get_delegated_ccache(gh_request_t *req, uid_t uid, gid_t gid,
                                              const char **ret_ccname);

/** Name of the request's MEMORY ccache holding delegated credentials
 *  ("MEMORY:gh-deleg-..."), destroyed when the request completes; NULL when
 *  none. Borrowed from the request. */
GH_EXPORT const char *gh_request_get_delegated_mem_ccache(const gh_request_t *req);

/** Adds one WWW-Authenticate per scheme the request's group offers on its
 *  connection (Negotiate > Kerberos > NTLM > Basic, or the group's order).
 *  Needed only when the application sends a
 *  401 and wants the list before other headers; the server adds it to a 401
 *  without WWW-Authenticate anyway. Returns 0, GH_ENOT_FOUND (no auth on the
 *  group), GH_ESTATE (headers sent) or -ENOMEM. */
GH_EXPORT int gh_response_add_auth_challenges(gh_request_t *req);

/* ---- checking a configuration (gatehoused --doctor) ---- */

/** What gh_server_auth_selftest found: the parts of the record a request
 *  carrying that Authorization header would have been delivered with,
 *  copied (nothing in it points into the library). */
typedef struct gh_auth_selftest {
  gh_auth_status_t status;          /* SUCCESS or FAILURE */
  gh_auth_sec_status_t sec_status;  /* as in gh_auth_info_t */
  gh_auth_type_t type;
  uint32_t flags;                   /* GH_AUTH_FLAG_* */
  uint32_t context_attributes;      /* GSS ret_flags */
  char package_name[16];            /* "Kerberos", "NTLM", ...; "" when none */
  char remote_user[256];            /* name as authenticated; "" when none */
  char local_user[256];             /* account the token was made for; "" when none */
  char mutual_auth_data[4096];      /* the WWW-Authenticate value the server would send
                                       on the final 2xx (e.g. "Negotiate oYG..."); "" when
                                       none */
  char sec_status_text[GH_AUTH_SEC_TEXT_MAX];
} gh_auth_selftest_t;

/** Runs one Authorization header value through the server's auth engine
 *  exactly as a request to a site with these settings would (the same step
 *  the request gate runs: acceptor credentials from the keytab, replay
 *  cache, channel and service binding, name mapping, token creation), on a
 *  fresh plain-TCP keep-alive connection, and reports the outcome; the
 *  token made for it is closed before returning and no request reaches any
 *  application. For health checks and `gatehoused --doctor`: a service
 *  ticket for the server's own SPN sent through here proves keytab, KDC,
 *  clock and name mapping together. A multi-leg exchange (NTLM) stops at
 *  its first leg. settings are borrowed for the call (as for
 *  gh_url_group_set_auth; max_token_size 0 = the default).
 *  Returns 0 with *ret_result filled (status SUCCESS or FAILURE, as the
 *  application would have seen it); GH_EAUTH_CONTINUE when the server would
 *  have answered 401 with another leg; GH_EPARSE when it would have
 *  answered 400 (malformed header); the engine's error when it would have
 *  answered 503; GH_ESTATE before gh_server_enable_auth; -EINVAL.
 *  *ret_result is written only on success. Any thread, at base identity
 *  (not impersonating), before or after gh_server_start. */
GH_EXPORT int gh_server_auth_selftest(gh_server_t *server, const gh_auth_settings_t *settings,
                                      const char *authorization,
                                      gh_auth_selftest_t *ret_result);

/** Checks a ccache_dir (gh_auth_config_t) the way gh_server_enable_auth
 *  will, changing nothing: it must be a real directory (no symlink) owned
 *  by the calling process's euid or root, and not group- or
 *  world-writable without the sticky bit; clients need to create their
 *  private directories in it (mode 1733). Returns 0 when it is safe and
 *  usable (msg, when not empty, tells what gh_server_enable_auth will do:
 *  create a missing directory, set mode 1733 on one of ours); 1 when it is
 *  safe but clients cannot create their ccache directories in it (root's,
 *  not writable by them: delegated credentials cannot be handed to CGI
 *  scripts; msg says so); GH_ECONFIG when gh_server_enable_auth would
 *  refuse it (msg says why and what to do). path NULL = the default
 *  "/run/gatehouse". msg may be NULL. Any thread, at base identity. */
GH_EXPORT int gh_auth_check_ccache_dir(const char *path, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif

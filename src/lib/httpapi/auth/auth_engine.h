/* auth_engine.h: the engine and connection state, and the calls the engine's files share. */
#ifndef GH_HTTPAPI_AUTH_ENGINE_H
#define GH_HTTPAPI_AUTH_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <gssapi/gssapi.h>
#include <krb5.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_internal.h"

/* Which file owns what: docs/internals/auth.md, "File map". */

#define GH__NTLM_SIGNATURE "NTLMSSP"
#define GH__AUTH_NAME_MAX 1024 /* a client's GSS display name, with its NUL */
#define GH__AUTH_KPOOL_MAX 16
#define GH__AUTH_CREDSET_MAX 32
#define GH__AUTH_NMAP_SLOTS 256
#define GH__AUTH_NMAP_CONF_MAX 8

/* The mechanisms the engine accepts (defined in auth_gss.c). */
extern gss_OID_desc gh__auth_krb5_oid;
extern gss_OID_desc gh__auth_spnego_oid;
extern gss_OID_desc gh__auth_ntlmssp_oid;

/* One set of acceptor credentials. MIT's krb5 mechanism holds a
 * credential's mutex for the whole of gss_accept_sec_context (ticket
 * decryption included), so one shared credential serialises every accept
 * of the process on one core. The engine therefore keeps a set per
 * concurrently accepting thread: sets[0] is acquired at start-up (and
 * validates the configuration), more lazily, up to GH__AUTH_CREDSET_MAX; a
 * step checks a set out for its accept and returns it (auth_cred.c). */
typedef struct gh__auth_credset {
  gss_cred_id_t spnego;
  gss_cred_id_t krb5;
  gss_cred_id_t ntlm;
} gh__auth_credset_t;

/* A mapped Kerberos principal (the display name, exact bytes) and the
 * local account krb5_aname_to_localname gave for it (auth_namemap.c). */
typedef struct gh__auth_nmap_entry {
  char *principal; /* NULL = empty */
  char *local;
  time_t expiry; /* CLOCK_MONOTONIC seconds */
} gh__auth_nmap_entry_t;

struct gh__auth_engine {
  /* credential sets (auth_cred.c) */
  pthread_mutex_t cred_lock;
  gh__auth_credset_t sets[GH__AUTH_CREDSET_MAX];
  unsigned n_sets;
  unsigned free_sets[GH__AUTH_CREDSET_MAX]; /* indices of idle sets */
  unsigned n_free;
  atomic_uint next_shared;
  /* what acquiring a set needs */
  gss_name_t krb_name, ntlm_name;
  char *keytab, *ntlm_user_file;
  char *s4u_principal; /* S4U (auth_s4u.c); NULL = none */
  /* the keytab's keys in a MEMORY keytab, re-read when the file changes
   * (auth_keytab.c) */
  gh__auth_keytab_t *kt;
  char *acceptor; /* "HTTP/host" with service_principal = HTTP@host; NULL: any HTTP/<host> */
  /* Kerberos replay detection in memory (NULL: MIT's file rcache); see
   * the replay check (auth_krb5.c) and auth.md "Replay" */
  gh__auth_rcache_t *rcache;
  atomic_llong polled;    /* time() of the last 5 s check (keytab file, krb5.conf clockskew) */
  gh_auth_log_cb *log_cb; /* the engine's own lines */
  void *log_arg;
  bool ntlm;
  bool spnego_ntlm_name;
  char *pam_service; /* Basic (auth_basic.c) */
  unsigned pam_timeout_ms, pam_max_concurrent;
  char *ccache_dir; /* delegated FILE ccaches (auth_result.c) */
  char *unmapped_user;
  gh__auth_basic_cache_t *basic_cache;
  /* winbind's answers for AD SIDs, name_map_cache_ttl (auth_sidcache.c) */
  struct gh__sidcache *sidcache;
  gh__auth_token_ops_t ops;
  atomic_uint_fast64_t seq; /* delegated MEMORY ccache names */
  /* krb5 contexts for name mapping and ccache work, reused across steps:
   * creating one reads the profile (krb5.conf) and costs more than the
   * whole mapping. A context is used by one thread at a time
   * (auth_kpool.c). */
  pthread_mutex_t kpool_lock;
  krb5_context kpool[GH__AUTH_KPOOL_MAX];
  unsigned n_kpool;
  /* principal -> local name (auth_namemap.c) */
  pthread_mutex_t nmap_lock;
  gh__auth_nmap_entry_t nmap[GH__AUTH_NMAP_SLOTS];
  unsigned nmap_ttl_s; /* 0 = off */
  uint64_t nmap_seed;
  uint64_t nmap_gen; /* bumped when a profile change flushed the cache */
  time_t nmap_flushed_at;
  time_t nmap_checked;                           /* monotonic second of the last krb5.conf check */
  uint64_t nmap_hits, nmap_misses, nmap_flushes; /* under nmap_lock; for tests */
  atomic_uint_fast64_t basic_memo_hits;          /* for tests (auth_basic.c) */
  unsigned n_conf;
  char *conf_path[GH__AUTH_NMAP_CONF_MAX];
  struct stat conf_st[GH__AUTH_NMAP_CONF_MAX]; /* st_ino 0: did not exist */
};

struct gh__auth_conn {
  gh__auth_engine_t *engine;
  gss_ctx_id_t ctx; /* half-open context of a multi-leg exchange (auth_gss.c) */
  gh__auth_scheme_id_t ctx_scheme;
  unsigned ctx_set; /* credential set the half-open context was made with */
  /* persisted identity (item 8; auth_engine.c) */
  gh_token_t token;
  gh_auth_type_t type;
  const char *package;
  uint32_t ret_flags;
  time_t expiry;
  char *remote_user;
  char *local_user;
  /* Basic memo (auth_basic.c): the credentials of the last Authorization:
   * Basic this connection verified (the base64 text, compared byte for
   * byte), its cache key and user. The same header again is looked up in
   * the success cache by that key: no base64 decode, no SHA-256. Only a
   * cache hit counts (TTL, entry not replaced); anything else clears the
   * memo and the request takes the full path. Wiped when replaced and with
   * the connection. */
  char *memo_cred;
  size_t memo_cred_len;
  size_t memo_dec_len;
  unsigned char memo_key[GH__AUTH_BASIC_KEY_SIZE];
  char *memo_user;
  /* Session memo (auth_session_step.c): the last session cookie value this
   * connection opened, its site, claims and an own handle of its token. The
   * same value again on this connection within GH__SESSION_MEMO_S is
   * delivered from it after the time checks: no GCM, no token made.
   * Freed with the connection. */
  struct gh__session_memo *session_memo;
};

/* ---- the step's common parts (auth_engine.c) ---- */

/** Deletes the connection's half-open GSS context. */
void gh__auth_conn_reset_ctx(gh__auth_conn_t *conn);

/** The access token of an authenticated client: local account local
 *  (NULL: none) at IMPERSONATE, DELEGATE with *deleg (taken on success:
 *  set to GSS_C_NO_CREDENTIAL); with site->allow_unmapped and no local
 *  account, an IDENTIFY token of the engine's unmapped_user
 *  (*ret_unmapped). sids (may be NULL): the user's SIDs, copied into the
 *  token; with site->group_source PAC they give the groups (winbind; -EAGAIN
 *  when winbind does not answer). Stored in r->info.token. 0 or the sec
 *  layer's error. */
struct gh__sids;
int gh__auth_make_token(gh__auth_engine_t *engine, gh__auth_result_t *r,
                        const gh_auth_settings_t *site, const char *local, const char *remote,
                        gh_token_source_t source, time_t expiry, gss_cred_id_t *deleg,
                        const struct gh__sids *sids, bool *ret_unmapped);
/** SUCCESS after the token exists (r->info.token); the identity stays on
 *  the connection when site->persist covers package. On ENOMEM the token
 *  is closed and the verdict is UNAVAILABLE. */
void gh__auth_deliver_success(gh__auth_conn_t *conn, gh__auth_result_t *r,
                              const gh_auth_settings_t *site, gh_auth_type_t type,
                              const char *package, uint32_t ret_flags, time_t expiry,
                              const char *remote, const char *local);

/* ---- acceptor credentials (auth_cred.c) ---- */

/** Start-up: no names yet, the lock. */
void gh__auth_cred_init(gh__auth_engine_t *engine);
/** With a keytab, after its file check: the keys in memory (auth_keytab.c)
 *  and, unless cfg->replay_cache_file, the in-memory replay cache. 0,
 *  GH_ECONFIG (message in errbuf), GH_EAUTH_INTERNAL, -ENOMEM. */
int gh__auth_cred_keytab(gh__auth_engine_t *engine, const gh__auth_engine_config_t *cfg,
                         char *errbuf, size_t errlen);
/** The NTLM user file, the acceptor names and the first credential set
 *  (which validates keytab, names and user file): 0, GH_ECONFIG, GH_EGSS
 *  or -ENOMEM, with a message in errbuf. */
int gh__auth_cred_acquire(gh__auth_engine_t *engine, const gh__auth_engine_config_t *cfg,
                          char *errbuf, size_t errlen);
/** Releases the sets, names, keys and replay cache. No step may be running. */
void gh__auth_cred_done(gh__auth_engine_t *engine);
/** 0 when path can be opened for reading; GH_ECONFIG and "<what> <path>:
 *  <reason>" in errbuf otherwise. */
int gh__auth_check_file(const char *what, const char *path, char *errbuf, size_t errlen);
/** Checks a credential set out for one accept (after the 5 s poll of the
 *  keytab file and krb5.conf): its index into engine->sets; *ret_exclusive
 *  says whether gh__auth_credset_put must return it. Any thread. */
unsigned gh__auth_credset_get(gh__auth_engine_t *engine, bool *ret_exclusive);
void gh__auth_credset_put(gh__auth_engine_t *engine, unsigned idx, bool exclusive);

/* ---- krb5 context pool (auth_kpool.c) ---- */

void gh__auth_kpool_init(gh__auth_engine_t *engine);
/** Frees the pooled contexts. No step may be running. */
void gh__auth_kpool_done(gh__auth_engine_t *engine);
/** A krb5 context for this thread's exclusive use until gh__auth_kctx_put
 *  (a pooled one or a new one); NULL on failure. Any thread. */
krb5_context gh__auth_kctx_get(gh__auth_engine_t *engine);
/** Returns k to the pool (freed when the pool is full). Accepts NULL. */
void gh__auth_kctx_put(gh__auth_engine_t *engine, krb5_context k);

/* ---- GSS name -> local account (auth_namemap.c) ---- */

/** Mutex, TTL (0 = no cache, at most 3600 s) and hash seed of the
 *  principal cache: 0 or GH_EAUTH_INTERNAL. Start-up. */
int gh__auth_nmap_init(gh__auth_engine_t *engine, unsigned ttl_s);
/** Records the krb5 profile files whose change flushes the cache (more
 *  than GH__AUTH_NMAP_CONF_MAX, or none known: the cache stays off). 0 or
 *  -ENOMEM. Start-up, with a keytab. */
int gh__auth_nmap_init_conf(gh__auth_engine_t *engine);
/** Empties the cache and frees it. No step may be running. */
void gh__auth_nmap_done(gh__auth_engine_t *engine);
/** The local account of an authenticated GSS name (display: its display
 *  name; mech: the mechanism that authenticated it), malloc'd; NULL when
 *  it maps to none (or ENOMEM). Kerberos: krb5 auth_to_local, cached;
 *  NTLM: DOMAIN\user -> user unless site->ntlm_keep_domain. Any thread. */
char *gh__auth_map_name(gh__auth_engine_t *engine, gss_OID mech, const char *display,
                        const gh_auth_settings_t *site);

/* ---- the result (auth_result.c) ---- */

/** A verdict without a record: CHALLENGE, BAD_REQUEST or UNAVAILABLE with
 *  err (DELIVER is set by the calls below). */
static inline void gh__auth_set_verdict(gh__auth_result_t *r, gh__auth_verdict_t v, int err)
{
  r->verdict = v;
  r->error = err;
}
/** A FAILURE record delivered to the application: cause, the scheme's type
 *  and package, the GSS/PAM/errno status and its text (NULL = ""). */
void gh__auth_set_failure(gh__auth_result_t *r, gh_auth_failure_t cause, gh_auth_type_t type,
                          const char *package, gh_auth_sec_kind_t kind, uint32_t major,
                          uint32_t minor, const char *text);
/** The facts of a FAILURE record (each may be NULL or ""): copied into the
 *  result, the first value of each kept; on ENOMEM a fact is left out. */
void gh__auth_set_failure_facts(gh__auth_result_t *r, const char *client, const char *service,
                                const char *detail);
/** A local step's error err (the sec layer's: no such user, uid refused):
 *  FAILURE with its cause and text, client as its fact (may be NULL);
 *  -ENOMEM is UNAVAILABLE instead. */
void gh__auth_set_local_failure(gh__auth_result_t *r, int err, gh_auth_type_t type,
                                const char *package, const char *client);
/** Delegated credentials of a complete accept (*deleg, with
 *  GSS_C_DELEG_FLAG in ret_flags): stored in a new MEMORY ccache named in
 *  r (removed by gh__auth_result_done) and left in *deleg for the token;
 *  released instead when not flagged or not storable. */
void gh__auth_store_delegation(gh__auth_engine_t *engine, gh__auth_result_t *r,
                               gss_cred_id_t *deleg, OM_uint32 ret_flags);
/** Checks (creates, fixes) ccache_dir, the parent of the clients' private
 *  FILE ccache directories: 0, or GH_ECONFIG with a message naming the
 *  path. Start-up, at base identity. Without repair it changes nothing
 *  (engine may be NULL) and returns 1 for the warning start-up would log
 *  (gh_auth_check_ccache_dir). */
int gh__auth_ccache_dir_prepare(gh__auth_engine_t *engine, const char *path, bool repair,
                                char *errbuf, size_t errlen);

/* ---- GSS (auth_gss.c) ---- */

/** The GSS major and minor texts ("major; minor"), the generic major text
 *  left out when a minor text follows. */
void gh__auth_gss_text(char *buf, size_t len, OM_uint32 major, OM_uint32 minor, gss_OID mech);

/* One GSS leg of gh__auth_step_gss: what its stages share (auth_gss.c), the
 * Kerberos stages (auth_krb5.c) included. Lives on the step's stack. */
typedef struct gh__gss_leg {
  gh__auth_engine_t *e;
  gh__auth_conn_t *c;
  const gh_auth_settings_t *site;
  gh__auth_result_t *r;
  gh__auth_scheme_id_t scheme;
  gh_auth_type_t type;      /* the scheme's */
  const char *package;      /* the scheme's name; the mechanism's once complete */
  const unsigned char *tok; /* the client's token, decoded */
  size_t tok_len;
  const void *cbt; /* the TLS channel-binding data; NULL: none */
  size_t cbt_len;
  /* the credential: a set checked out (set_held) or the half-open
   * context's (auth_cred.c), and the mechanism's credential in it */
  unsigned set_idx;
  bool set_excl, set_held;
  gss_cred_id_t cred;
  /* what GSS is given */
  gss_buffer_desc in;   /* tok, or fixed */
  unsigned char *fixed; /* an NTLM short form made long (auth_ntlm.c) */
  gh__ntlm_auth_facts_t nf;
  struct gss_channel_bindings_struct cbs;
  gss_channel_bindings_t cbp;
  /* Kerberos (auth_krb5.c) */
  bool walked;  /* in was searched for an AP-REQ */
  bool have_ap; /* ... and one was found: ap */
  bool tagged;  /* its authenticator is in the replay cache: tag */
  gh__krb5_ap_req_t ap;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  long kcode; /* the krb5 mechanism's code for the failed accept; 0: not known */
  /* what the accept gave */
  OM_uint32 maj, min, ret_flags, time_rec;
  unsigned accept_ms; /* how long the accept(s) took (NTLM: a hung winbindd) */
  gss_buffer_desc out;
  gss_name_t src;
  gss_OID mech;
  gss_cred_id_t deleg;
} gh__gss_leg_t;

/** Negotiate, Kerberos or NTLM with the decoded token tok (cbt: the TLS
 *  channel-binding data, NULL none): CHALLENGE with the next leg, or
 *  DELIVER with SUCCESS or FAILURE, or UNAVAILABLE. */
void gh__auth_step_gss(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                       const gh_auth_settings_t *site, const void *cbt, size_t cbt_len,
                       gh__auth_scheme_id_t scheme, const unsigned char *tok, size_t tok_len,
                       gh__auth_result_t *r);

/* ---- Kerberos in the GSS step (auth_krb5.c) ---- */

/** The replay check before the accept (engine with the in-memory replay
 *  cache, a credential with a krb5 part): records the authenticator of the
 *  AP-REQ in g->in. false when the step ends here, with the result filled
 *  (a replay, a token the strict walker refuses, a full cache) and the
 *  half-open context deleted. */
bool gh__krb5_replay_check(gh__gss_leg_t *g);
/** After a failed accept begun at keytab generation kt_gen: whether the
 *  token holds an AP-REQ that failed for want of a key and the keytab
 *  file, re-read, gave keys since (a retry can succeed). Sets g->kcode. */
bool gh__krb5_keys_added(gh__gss_leg_t *g, unsigned kt_gen);
/** The krb5 mechanism's own code for the failed accept of g->ap. */
long gh__krb5_code(gh__gss_leg_t *g);
/** The accept failed: forgets the authenticator the replay check recorded. */
void gh__krb5_accept_failed(gh__gss_leg_t *g);
/** A failed accept's FAILURE record refined with what the AP-REQ in the
 *  token shows (cause, client, service, facts); false when the token holds
 *  no AP-REQ. Failure path only. */
bool gh__krb5_explain_failure(gh__gss_leg_t *g);

/* ---- NTLM (auth_ntlm.c) ---- */

/** An NTLM NEGOTIATE or AUTHENTICATE message in its short form (no
 *  Version field), as a malloc'd copy in the long form (*ret_len); NULL
 *  when t is not one (or ENOMEM). */
unsigned char *gh__ntlm_add_version(const unsigned char *t, size_t len, size_t *ret_len);
/** A failed NTLM accept (raw or in SPNEGO; maj/minor from it, tok the
 *  client's token): the cause from gss-ntlmssp's minor, the user and
 *  target name from the AUTHENTICATE message (*nf filled). */
void gh__ntlm_fail(const gh__auth_engine_t *engine, gh__auth_result_t *r, OM_uint32 maj,
                   OM_uint32 minor, const unsigned char *tok, size_t tok_len, unsigned accept_ms,
                   gh__ntlm_auth_facts_t *nf);

/* ---- S4U (auth_s4u.c) ---- */

/** Protocol transition for a client authenticated without Kerberos (local:
 *  its local account name, "DOMAIN\\user" or "user"): S4U2Self with the
 *  service's keytab, S4U2Proxy to the site's s4u_targets, the user's tickets
 *  (never the service's own) into r->mem_ccache. Failures are logged and
 *  leave the request without a credential. */
void gh__auth_s4u(gh__auth_engine_t *engine, gh__auth_result_t *r, const gh_auth_settings_t *site,
                  const char *local);

/* ---- winbind (auth_winbind.c) ---- */

typedef enum gh__winbind_state {
  GH__WINBIND_OK,           /* answers, and its privileged pipe lets this process in */
  GH__WINBIND_DOWN,         /* winbindd does not answer (not running) */
  GH__WINBIND_HUNG,         /* running, but no answer to a ping within GH__WINBIND_PING_MS */
  GH__WINBIND_PIPE_REFUSED, /* answers, but the privileged pipe refuses this process */
  GH__WINBIND_UNKNOWN,      /* built without libwbclient */
} gh__winbind_state_t;
/** A failed NTLM accept through winbind that took this long met a hung
 *  winbindd (libwbclient waits up to 300 s per call): no further probe. */
#define GH__WINBIND_HUNG_MS 20000u
/** How long an NTLM logon through winbind waits for winbindd's ping. */
#define GH__WINBIND_PING_MS 5000u
typedef enum gh__winbind_ping {
  GH__WINBIND_PING_OK,
  GH__WINBIND_PING_FAILED,  /* answered at once: not running (no socket) */
  GH__WINBIND_PING_TIMEOUT, /* no answer within the time: hung */
} gh__winbind_ping_t;
/** Pings winbindd from a helper thread, waiting at most timeout_ms: a hung
 *  winbindd costs the caller timeout_ms, not forever. */
gh__winbind_ping_t gh__winbind_ping_within(unsigned timeout_ms);
/** Before an NTLM AUTHENTICATE goes to gss-ntlmssp and winbind: false,
 *  with r set to 503 and a log line, when winbindd does not answer. */
bool gh__ntlm_winbind_ready(const gh__auth_engine_t *engine, gh__auth_result_t *r,
                            const unsigned char *tok, size_t tok_len);
/** Pings winbindd (bounded: gh__winbind_ping_within, GH__WINBIND_PING_MS)
 *  and tries its privileged pipe (as gss-ntlmssp does). */
gh__winbind_state_t gh__winbind_probe(void);
/** "DOMAIN\\user" or "user" as winbind knows it: 1 a user account, 0 not
 *  known to the domain, -1 cannot tell. */
int gh__winbind_account_known(const char *domain_user);
/** The SIDs of a user account winbind knows by name ("DOMAIN\\user",
 *  "user@realm" or "user"): *ret_sids = the user's SID then its groups'
 *  (wbcLookupUserSids). 0 with *ret_sids NULL: winbind does not know the
 *  name as a user; -ENOSYS built without libwbclient; -ENOENT winbindd is
 *  not running (no answer at once); -EAGAIN winbindd hung (no answer
 *  within GH__WINBIND_PING_MS) or failed; -ENOMEM. */
struct gh__sids;
int gh__winbind_user_sids(const char *name, struct gh__sids **ret_sids);
/** Engine start (after the privilege drop): NTLM via winbind, is winbindd
 *  there and its privileged pipe open to this process? One log line if
 *  not, with what to do. */
void gh__winbind_check_at_start(gh__auth_engine_t *engine);

/* ---- Basic (auth_basic.c) ---- */

/** Forgets the connection's Basic memo (wiped). */
void gh__auth_basic_memo_clear(gh__auth_conn_t *conn);
/** The connection's memo answers a repeated Basic header (cred: its
 *  base64) as the success cache would: true with *r filled; false, and the
 *  caller takes the full path. */
bool gh__auth_step_basic_memo(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                              const gh_auth_settings_t *site, const char *cred, size_t cred_len,
                              size_t max_tok, gh__auth_result_t *r);
/** Basic with decoded credentials dec: the success cache, else PAM. */
void gh__auth_step_basic(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                         const gh_auth_settings_t *site, const char *cred, size_t cred_len,
                         const unsigned char *dec, size_t dec_len, gh__auth_result_t *r);

/* ---- Peer (auth_peer.c) ---- */

/** A request without Authorization on a unix socket (fd) of a site that
 *  offers Peer: SUCCESS with the peer's token, never persisted. */
void gh__auth_step_peer(gh__auth_engine_t *engine, gh__auth_conn_t *conn,
                        const gh_auth_settings_t *site, int fd, gh__auth_result_t *r);

#endif

/* auth_session.h: session cookies of the auth engine — key files, sealing and opening, the Cookie
 * header parser, the gate's session step. */
#ifndef GH_HTTPAPI_AUTH_SESSION_H
#define GH_HTTPAPI_AUTH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gatehouse/authinfo.h>

#include "httpapi/auth/auth.h"

/*
 * A cookie value is base64url (no padding) of
 *
 *   version (1) | key id (4) | nonce (12) | AES-256-GCM ciphertext | tag (16)
 *
 * The plaintext: type (1, gh_auth_type_t) | package (1: 1 Kerberos, 2 NTLM,
 * 3 Basic) | issued, last use, expiry (8 each, big-endian Unix seconds) |
 * local account (1 length + bytes) | remote name (1 length + bytes). The
 * additional data: the 17 header bytes, "gh-session-v1", NUL, the cookie
 * name, NUL, the site (the cookie's Path). The key id is the first 4 bytes
 * of SHA-256("gh-session-kid" | key).
 */

#define GH__SESSION_VERSION 1u
#define GH__SESSION_KEY_LEN 32u
#define GH__SESSION_KID_LEN 4u
#define GH__SESSION_NONCE_LEN 12u
#define GH__SESSION_TAG_LEN 16u
#define GH__SESSION_HEAD_LEN (1u + GH__SESSION_KID_LEN + GH__SESSION_NONCE_LEN)
#define GH__SESSION_NAME_MAX 255u
/* the longest value sealed (two 255-byte names) is 762 characters */
#define GH__SESSION_VALUE_MAX 1024u
#define GH__SESSION_CLOCK_SKEW 300 /* an issue time this far ahead of our clock is refused */
#define GH__SESSION_MAX_CANDIDATES 4u
#define GH__SESSION_MEMO_S 60 /* a connection reuses a cookie it opened this long */

/* Why a cookie was not taken (or that it was). One list: texts in auth_session.c. */
typedef enum gh__session_cause {
  GH__SESSION_OK = 0,
  GH__SESSION_OVERSIZE,    /* longer than GH__SESSION_VALUE_MAX */
  GH__SESSION_BAD_BASE64,  /* not base64url */
  GH__SESSION_TRUNCATED,   /* shorter than the smallest sealed value */
  GH__SESSION_BAD_VERSION, /* another format version */
  GH__SESSION_UNKNOWN_KEY, /* sealed with a key no longer (or never) in the key file */
  GH__SESSION_TAMPERED,    /* the tag does not verify: altered, another site or name */
  GH__SESSION_MALFORMED,   /* verified, but the content is inconsistent */
  GH__SESSION_EXPIRED,     /* past its expiry, or max_age since it was issued */
  GH__SESSION_IDLE,        /* not used for session_idle */
  GH__SESSION_FUTURE,      /* issued ahead of this node's clock beyond the skew */
  GH__SESSION_ACCOUNT,     /* the account no longer exists or is refused (min_uid, uid 0) */
  GH__SESSION_ERROR,       /* the account could not be looked up (NSS, memory): 503 */
  GH__SESSION_CAUSE_COUNT
} gh__session_cause_t;

/** Short text of a cause ("tampered: the authentication tag does not verify"). */
const char *gh__session_cause_text(gh__session_cause_t cause);

/* One key file: the current key (seals, opens) and the previous (opens). */
typedef struct gh__session_keys gh__session_keys_t;

/** Reads and checks path (absolute; regular file; owner euid or root; no
 *  access for others, no group write; one or two lines of 64 hex digits).
 *  Returns 0, GH_ECONFIG (msg says why) or -ENOMEM. */
int gh__session_keys_load(const char *path, gh__session_keys_t **ret_keys, char *msg,
                          size_t msglen);
/** Keys from bytes (tests, fuzzing): prev may be NULL. */
int gh__session_keys_from(const uint8_t cur[GH__SESSION_KEY_LEN], const uint8_t *prev,
                          gh__session_keys_t **ret_keys);
/** Reads the file again; on error the keys are kept and GH_ECONFIG returned. */
int gh__session_keys_reload(gh__session_keys_t *keys, char *msg, size_t msglen);
const char *gh__session_keys_path(const gh__session_keys_t *keys);
/** Wipes and frees; NULL is fine. */
void gh__session_keys_free(gh__session_keys_t *keys);

/* What a cookie holds. */
typedef struct gh__session_claims {
  gh_auth_type_t type;
  const char *package; /* static: "Kerberos", "NTLM", "Basic" */
  int64_t issued, last_use, expiry;
  char local[GH__SESSION_NAME_MAX + 1];
  char remote[GH__SESSION_NAME_MAX + 1];
} gh__session_claims_t;

/** Seals claims into a cookie value (NUL-terminated) in buf. Returns its
 *  length, GH_ELIMIT (a name over 255 bytes or buf too small), -EINVAL or
 *  GH_EAUTH_INTERNAL (OpenSSL). Any thread. */
int gh__session_seal(gh__session_keys_t *keys, const char *name, const char *site,
                     const gh__session_claims_t *claims, char *buf, size_t buflen);

/** The time checks of verified claims (also applied to a memo). */
gh__session_cause_t gh__session_check_time(const gh__session_claims_t *claims, time_t now,
                                           unsigned max_age_s, unsigned idle_s);

/** Opens a cookie value: GH__SESSION_OK with *ret_claims filled, else the
 *  cause. now: the current time; max_age_s, idle_s: the site's limits.
 *  Any thread; val is untrusted (bounded by GH__SESSION_VALUE_MAX). */
gh__session_cause_t gh__session_open(gh__session_keys_t *keys, const char *name, const char *site,
                                     const char *val, size_t len, time_t now, unsigned max_age_s,
                                     unsigned idle_s, gh__session_claims_t *ret_claims);

/** Finds the values of cookie `name` in one Cookie header value (RFC 6265
 *  "a=b; c=d", optional DQUOTEs around a value): up to max of them into
 *  vals/lens (pointers into hdr). Returns how many were found (≤ max).
 *  hdr is untrusted; the scan is linear and reads at most len bytes. */
size_t gh__session_cookie_find(const char *hdr, size_t len, const char *name, const char **vals,
                               size_t *lens, size_t max);

/* ---- the engine's session step (auth_session.c) ---- */

/** A site's session configuration, resolved by gh_url_group_set_auth. */
typedef struct gh__session_site {
  gh__session_keys_t *keys; /* borrowed from the server's list */
  const char *name;         /* cookie name */
  const char *site;         /* Path and the sealed site */
  unsigned max_age_s, idle_s;
  bool secure_always;
  const char *logout; /* NULL = none */
} gh__session_site_t;

/** Opens the best of the request's cookies (values from the Cookie
 *  headers, at most GH__SESSION_MAX_CANDIDATES) and, when one opens and
 *  the account still gets a token, fills *r as DELIVER SUCCESS with
 *  GH_AUTH_FLAG_SESSION and returns 1; *ret_set_cookie gets a fresh cookie
 *  (Set-Cookie value, malloc'd) when the sliding idle window calls for it.
 *  Returns 0 (no usable cookie: *r untouched, a refusal logged) or 2 with
 *  *r set UNAVAILABLE (NSS failed: 503). The value opened is memoised on
 *  the connection c (see gh__auth_conn_t.session_memo). */
int gh__auth_session_use(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh__session_site_t *ss,
                         const char *const *vals, const size_t *lens, size_t n, bool tls,
                         gh__auth_result_t *r, char **ret_set_cookie);

/** Drops the connection's session memo (its token handle closed). */
void gh__auth_session_memo_clear(gh__auth_conn_t *c);

/** After a step that delivered SUCCESS by Negotiate, Kerberos, NTLM or
 *  Basic (not Peer, not a persisted or session identity, not an unmapped
 *  principal): *ret_set_cookie gets the Set-Cookie value of a new session
 *  (malloc'd), or stays NULL. */
void gh__auth_session_mint(gh__auth_engine_t *e, const gh__session_site_t *ss,
                           const gh_auth_settings_t *site, bool tls, const gh__auth_result_t *r,
                           char **ret_set_cookie);

/** The Set-Cookie value that clears the site's cookie (malloc'd), or NULL. */
char *gh__auth_session_clear_cookie(const gh__session_site_t *ss, bool tls);

#endif

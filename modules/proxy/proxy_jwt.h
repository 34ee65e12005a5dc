/* proxy_jwt.h: the proxy's signed identity assertion (a short-lived HS256 or ES256 JWT, built with
 * libjwt). */
#ifndef GH_PROXY_JWT_H
#define GH_PROXY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * identity_jwt_key = FILE makes the proxy add a JWT naming the client to
 * every request it sends upstream. The key file is read once, at load (the
 * daemon's configuration check and start), and checked there:
 *  - a regular file (after symlinks), at most PROXY_JWT_MAX_KEY bytes, not
 *    readable, writable or searchable by "other" and not group-writable;
 *  - a PEM EC P-256 private key ("-----BEGIN", any form OpenSSL reads) ->
 *    ES256; anything else is an HS256 secret: the file's bytes without one
 *    final "\n" (or "\r\n"), at least 32 bytes (RFC 7518 3.2);
 *  - identity_jwt_alg, when set, must name the key's algorithm.
 * Claims: iss, aud, sub (the canonical local account), principal (the name
 * as authenticated), groups (array of gids as strings), group_names (array,
 * with identity_jwt_group_names), auth_type, iat, nbf, exp = iat + ttl, jti
 * (128 random bits, hex).
 */

#define PROXY_JWT_MAX_KEY (64 * 1024)
#define PROXY_JWT_MIN_SECRET 32
#define PROXY_JWT_DEFAULT_TTL 60
#define PROXY_JWT_DEFAULT_HEADER "X-JWT-Assertion"
#define PROXY_JWT_DEFAULT_ISSUER "gatehouse"
#define PROXY_JWT_REUSE_SLOTS 16 /* tokens kept per thread for reuse */
#define PROXY_JWT_REUSE_MAX_S 30 /* a token is handed out again at most this long */

typedef struct proxy_jwt proxy_jwt_t;

typedef struct proxy_jwt_config {
  const char *key_file; /* identity_jwt_key */
  const char *alg;      /* identity_jwt_alg: "HS256", "ES256", NULL/"" = from the key */
  const char *issuer;   /* identity_jwt_issuer, NULL = PROXY_JWT_DEFAULT_ISSUER */
  uint64_t ttl_s;       /* identity_jwt_ttl, 0 = PROXY_JWT_DEFAULT_TTL */
} proxy_jwt_config_t;

typedef struct proxy_jwt_claims {
  const char *sub;       /* canonical user name (local account) */
  const char *principal; /* name as authenticated, NULL = none */
  const char *auth_type; /* "Negotiate", "Basic" ..., NULL = none */
  const char *const *groups;
  size_t n_groups;
  bool with_group_names; /* a "group_names" claim (identity_jwt_group_names) */
  const char *const *group_names;
  size_t n_group_names;
  const char *aud;    /* the upstream, or identity_jwt_audience */
  time_t now;         /* 0 = time(NULL) */
  const char *issuer; /* NULL = the configured one */
  uint64_t ttl_s;     /* 0 = the configured one */
} proxy_jwt_claims_t;

/** Reads and checks the key (above). On failure returns -errno or -EINVAL
 *  with a one-line reason in err (naming the file). Loading thread. */
int proxy_jwt_new(const proxy_jwt_config_t *cfg, proxy_jwt_t **ret_jwt, char *err, size_t errlen);
/** Wipes the key and frees. Accepts NULL. */
void proxy_jwt_free(proxy_jwt_t *j);
/** "HS256" or "ES256". */
const char *proxy_jwt_alg(const proxy_jwt_t *j);
/** A signed token for claims; *ret_token is malloc'd (free()). With
 *  c->now 0 the calling thread's recent token for identical claims (and
 *  key) is handed out again while half its lifetime is left, at most
 *  PROXY_JWT_REUSE_MAX_S s after issue; with c->now set, always a new one.
 *  Returns 0, -EINVAL (no sub or aud), -ENOMEM or -EIO (libjwt failed).
 *  Any thread. */
int proxy_jwt_sign(const proxy_jwt_t *j, const proxy_jwt_claims_t *c, char **ret_token);

#endif

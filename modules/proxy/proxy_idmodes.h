/* proxy_idmodes.h: the proxy's stronger identity modes (signed assertion, connect as the client,
 * Kerberos to the upstream) as the hook points of proxy_ident.c call them. */
#ifndef GH_PROXY_IDMODES_H
#define GH_PROXY_IDMODES_H

#include <stdbool.h>

#include "proxy.h"

/* The modes' keys, for the proxy's key table (proxy_conf.c):
 *   const gh_module_key_t proxy_keys[] = { ..., PROXY_IDMODE_KEYS };
 */
int proxy_idm_check_jwt_key(const char *key, const char *value, char *why, size_t whylen);
int proxy_idm_check_jwt_alg(const char *key, const char *value, char *why, size_t whylen);
int proxy_idm_check_field(const char *key, const char *value, char *why, size_t whylen);
int proxy_idm_check_connect_as(const char *key, const char *value, char *why, size_t whylen);
int proxy_idm_check_auth(const char *key, const char *value, char *why, size_t whylen);
int proxy_idm_check_spn(const char *key, const char *value, char *why, size_t whylen);

#define PROXY_IDMODE_KEYS                                                                          \
  {.name = "identity_jwt_key",                                                                     \
   .type = GH_CONFIG_PATH,                                                                         \
   .flags = GH_CONFIG_SITE,                                                                        \
   .check = proxy_idm_check_jwt_key},                                                              \
      {.name = "identity_jwt_alg",                                                                 \
       .type = GH_CONFIG_STRING,                                                                   \
       .flags = GH_CONFIG_SITE,                                                                    \
       .check = proxy_idm_check_jwt_alg},                                                          \
      {.name = "identity_jwt_header",                                                              \
       .type = GH_CONFIG_STRING,                                                                   \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "X-JWT-Assertion",                                                         \
       .check = proxy_idm_check_field},                                                            \
      {.name = "identity_jwt_ttl",                                                                 \
       .type = GH_CONFIG_DURATION,                                                                 \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "60s",                                                                     \
       .min = 1000,                                                                                \
       .max = 3600 * 1000},                                                                        \
      {.name = "identity_jwt_audience", .type = GH_CONFIG_STRING, .flags = GH_CONFIG_SITE},        \
      {.name = "identity_jwt_group_names",                                                         \
       .type = GH_CONFIG_BOOL,                                                                     \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "no"},                                                                     \
      {.name = "identity_jwt_issuer",                                                              \
       .type = GH_CONFIG_STRING,                                                                   \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "gatehouse"},                                                              \
      {.name = "upstream_connect_as",                                                              \
       .type = GH_CONFIG_STRING,                                                                   \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "service",                                                                 \
       .check = proxy_idm_check_connect_as},                                                       \
      {.name = "upstream_auth",                                                                    \
       .type = GH_CONFIG_STRING,                                                                   \
       .flags = GH_CONFIG_SITE,                                                                    \
       .default_value = "none",                                                                    \
       .check = proxy_idm_check_auth},                                                             \
  {                                                                                                \
    .name = "upstream_spn", .type = GH_CONFIG_STRING, .flags = GH_CONFIG_SITE,                     \
    .check = proxy_idm_check_spn                                                                   \
  }

/** Reads the modes' site keys (building the site's configuration). */
void proxy_idm_conf_read(gh_http_context_t *ctx, proxy_idm_conf_t *c);

/** The modes' state for the request in q->idm (request memory), on the
 *  site's keys (q->conf): call first (from proxy_identity_load). -ENOMEM
 *  leaves q->idm NULL, and every hook below then fails closed. */
int proxy_idm_load(proxy_req_t *q);

/** proxy_identity_key: the request's identity key when its connections
 *  are opened as the client (upstream_connect_as = client), else NULL (the
 *  service's connections, shared). A request without a token on such a
 *  site gets a key no connection is ever pooled under ("-"): it can take
 *  neither the service's connections nor anyone's. */
const char *proxy_idm_pool_key(proxy_req_t *q);

/** proxy_open_upstream for upstream_connect_as = client: 1 when the mode
 *  is off (the caller opens at the service identity), 0 with *ret_fd
 *  connected as the client, or -errno / a GH_E code (anonymous request:
 *  GH_ENOT_FOUND; TCP upstream: -EPROTONOSUPPORT), logged here. */
int proxy_idm_connect(proxy_req_t *q, int *ret_fd);

/** proxy_add_identity: the JWT field and the Authorization: Negotiate
 *  field (each when configured, for a request with a user). 0, or -errno
 *  logged here: -ENOKEY when the client has no Kerberos credential for the
 *  upstream (answer 502), others (signing, configuration) 500. Any earlier
 *  Negotiate context of q is dropped. */
int proxy_idm_add_fields(proxy_req_t *q, proxy_buf_t *head);

/** The final response head (on_head, status >= 200): with upstream_auth =
 *  negotiate the upstream must prove itself (mutual authentication) on a
 *  2xx-3xx; a 401 means it refused the client's ticket. 0, or -1 with
 *  r->error set (the response is not relayed: 502). */
int proxy_idm_on_head(proxy_req_t *q, proxy_resp_t *r);

/** Whether an upstream response field is the proxy's alone (the
 *  upstream's WWW-Authenticate answering our Negotiate). */
bool proxy_idm_skip_response_field(proxy_req_t *q, const char *name);

/** Whether a resent request needs its head built again (a Kerberos
 *  authenticator is good once: a retry on a new connection gets a new one). */
bool proxy_idm_fresh_head(proxy_req_t *q);

/** Frees q's Negotiate context (end of the request). */
void proxy_idm_done(proxy_req_t *q);

/** Drops the cached JWT keys (module terminate). */
void proxy_idm_free_all(void);

#endif

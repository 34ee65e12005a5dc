/* proxy_idmodes.c: the proxy's signed assertion, connect-as-client and Kerberos-to-upstream modes
 * behind the hook points of proxy_ident.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>

#include "proxy_idmodes.h"
#include "proxy_jwt.h"
#include "proxy_negotiate.h"

/* ---- configuration checks ---- */

/*
 * JWT keys are read when the configuration is checked (start and every
 * reload, in each process: the same moments and identity the keytab is
 * read with) and kept by path; a request uses the last key read for its
 * path, or reads it on first use. A key replaced by a reload stays
 * allocated until the module unloads (a request may still hold it).
 */
typedef struct jwt_entry {
  char *path;
  proxy_jwt_t *jwt;
  struct jwt_entry *next;
} jwt_entry_t;

static pthread_mutex_t jwt_lock = PTHREAD_MUTEX_INITIALIZER;
static jwt_entry_t *jwt_keys;    /* current, one per path */
static jwt_entry_t *jwt_retired; /* replaced by a reload */

/* Loads path and makes it the current key for it. 0 or -errno, why set. */
static int jwt_load(const char *path, proxy_jwt_t **ret, char *why, size_t whylen)
{
  proxy_jwt_config_t cfg = {.key_file = path};
  jwt_entry_t *e = calloc(1, sizeof(*e));
  int ret_code;
  if (e == NULL || (e->path = strdup(path)) == NULL) {
    free(e);
    return -ENOMEM;
  }
  ret_code = proxy_jwt_new(&cfg, &e->jwt, why, whylen);
  if (ret_code != 0) {
    free(e->path);
    free(e);
    return ret_code;
  }
  pthread_mutex_lock(&jwt_lock);
  for (jwt_entry_t **p = &jwt_keys; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->path, path) == 0) {
      jwt_entry_t *old = *p;
      *p = old->next;
      old->next = jwt_retired;
      jwt_retired = old;
      break;
    }
  }
  e->next = jwt_keys;
  jwt_keys = e;
  pthread_mutex_unlock(&jwt_lock);
  if (ret != NULL)
    *ret = e->jwt;
  return 0;
}

static proxy_jwt_t *jwt_find(const char *path)
{
  proxy_jwt_t *j = NULL;
  pthread_mutex_lock(&jwt_lock);
  for (jwt_entry_t *e = jwt_keys; e != NULL && j == NULL; e = e->next)
    if (strcmp(e->path, path) == 0)
      j = e->jwt;
  pthread_mutex_unlock(&jwt_lock);
  return j;
}

void proxy_idm_free_all(void)
{
  jwt_entry_t *lists[2];
  pthread_mutex_lock(&jwt_lock);
  lists[0] = jwt_keys;
  lists[1] = jwt_retired;
  jwt_keys = jwt_retired = NULL;
  pthread_mutex_unlock(&jwt_lock);
  for (int i = 0; i < 2; i++) {
    while (lists[i] != NULL) {
      jwt_entry_t *e = lists[i];
      lists[i] = e->next;
      proxy_jwt_free(e->jwt);
      free(e->path);
      free(e);
    }
  }
}

int proxy_idm_check_jwt_key(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  return jwt_load(value, NULL, why, whylen);
}

int proxy_idm_check_jwt_alg(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (strcasecmp(value, "HS256") == 0 || strcasecmp(value, "ES256") == 0)
    return 0;
  snprintf(why, whylen, "HS256 or ES256");
  return -EINVAL;
}

int proxy_idm_check_field(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (value[0] == '\0' || strlen(value) > 64 ||
      strspn(value,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~") !=
          strlen(value)) {
    snprintf(why, whylen, "a field name: 1 to 64 token characters");
    return -EINVAL;
  }
  return 0;
}

int proxy_idm_check_connect_as(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (strcmp(value, "service") == 0 || strcmp(value, "client") == 0)
    return 0;
  snprintf(why, whylen, "service or client");
  return -EINVAL;
}

int proxy_idm_check_auth(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (strcmp(value, "none") == 0 || strcmp(value, "negotiate") == 0)
    return 0;
  snprintf(why, whylen, "none or negotiate");
  return -EINVAL;
}

int proxy_idm_check_spn(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (value[0] != '\0' && strlen(value) < 256 && strpbrk(value, " \t\r\n") == NULL &&
      (strchr(value, '/') != NULL || strchr(value, '@') != NULL))
    return 0;
  snprintf(why, whylen, "service/host[@REALM] or service@host");
  return -EINVAL;
}

/* ---- per request ---- */

/* The modes' state for one request (request memory): the site's keys and
 * its Negotiate context: q->idm. */
typedef struct idm {
  const proxy_idm_conf_t *c;
  proxy_negotiate_t *neg;
} idm_t;

/* The pool key of a request without a token on a connect-as-client site
 * (or whose mode is unknown): never NULL (that would take the service's
 * pooled connections), never an identity key ("UID:GID:..."), and never
 * used to connect. */
static const char no_user_key[] = "-";

static const char *site_string(gh_http_context_t *ctx, const char *key)
{
  const char *v = NULL;
  return gh_http_context_get_config_string(ctx, key, 0, &v) == 0 ? v : NULL;
}

static bool site_is(gh_http_context_t *ctx, const char *key, const char *want)
{
  const char *v = site_string(ctx, key);
  return v != NULL && strcmp(v, want) == 0;
}

void proxy_idm_conf_read(gh_http_context_t *ctx, proxy_idm_conf_t *c)
{
  memset(c, 0, sizeof(*c));
  c->as_client = site_is(ctx, "upstream_connect_as", "client");
  c->negotiate = site_is(ctx, "upstream_auth", "negotiate");
  c->jwt_key = site_string(ctx, "identity_jwt_key");
  c->jwt_alg = site_string(ctx, "identity_jwt_alg");
  c->jwt_field = site_string(ctx, "identity_jwt_header");
  if (c->jwt_field == NULL)
    c->jwt_field = PROXY_JWT_DEFAULT_HEADER;
  c->jwt_aud = site_string(ctx, "identity_jwt_audience");
  c->jwt_iss = site_string(ctx, "identity_jwt_issuer");
  c->spn = site_string(ctx, "upstream_spn");
  (void)gh_http_context_get_config_uint(ctx, "identity_jwt_ttl", &c->jwt_ttl_ms);
  (void)gh_http_context_get_config_bool(ctx, "identity_jwt_group_names", &c->jwt_group_names);
}

int proxy_idm_load(proxy_req_t *q)
{
  idm_t *m = gh_http_context_alloc(q->ctx, sizeof(*m));
  q->idm = m;
  if (m == NULL)
    return -ENOMEM; /* every hook then fails closed */
  m->c = &q->conf->idm;
  m->neg = NULL;
  return 0;
}

static bool has_user(proxy_req_t *q)
{
  const char *name = gh_http_user_get_name(gh_http_context_get_user(q->ctx));
  return name != NULL && name[0] != '\0';
}

const char *proxy_idm_pool_key(proxy_req_t *q)
{
  const idm_t *m = q->idm;
  const char *key = NULL;
  if (m == NULL)
    return no_user_key; /* unknown mode: no pooled connection at all */
  if (!m->c->as_client)
    return NULL;
  if (gh_http_context_get_identity_key(q->ctx, &key) != 0)
    return no_user_key; /* proxy_idm_connect refuses to connect at all */
  return key;
}

int proxy_idm_connect(proxy_req_t *q, int *ret_fd)
{
  const idm_t *m = q->idm;
  int ret;
  if (m == NULL)
    return -ENOMEM;
  if (!m->c->as_client)
    return 1;
  if (!q->up->is_unix) {
    ret = -EPROTONOSUPPORT;
    gh_module_server_log(q->server, GH_LOG_ERROR,
                         "proxy: upstream %s: upstream_connect_as = client needs a unix: upstream",
                         q->up->spec);
  } else if (q->identity_key == NULL || strcmp(q->identity_key, no_user_key) == 0) {
    /* never the service's identity in its place */
    ret = GH_ENOT_FOUND;
    gh_module_server_log(q->server, GH_LOG_ERROR,
                         "proxy: upstream %s: upstream_connect_as = client and the request has no "
                         "user: 401",
                         q->up->spec);
  } else {
    ret = gh_http_context_connect_unix(q->ctx, q->up->path, ret_fd);
  }
  return ret;
}

/* A ','-joined list (the "groups" user variable's gids, or the group
 * names, which may hold spaces) as an array in request memory. */
static size_t split_groups(proxy_req_t *q, const char *list, const char ***ret)
{
  size_t n = 0, cap = 1;
  char *copy, *save = NULL;
  const char **v;
  if (list == NULL || (copy = gh_http_context_strdup(q->ctx, list)) == NULL)
    return 0;
  for (const char *p = list; *p; p++)
    cap += *p == ',';
  v = gh_http_context_alloc(q->ctx, cap * sizeof(*v));
  if (v == NULL)
    return 0;
  for (char *t = strtok_r(copy, ",", &save); t != NULL && n < cap; t = strtok_r(NULL, ",", &save))
    v[n++] = t;
  *ret = v;
  return n;
}

static int add_jwt(proxy_req_t *q, const idm_t *m, proxy_buf_t *head)
{
  gh_http_user_t *user = gh_http_context_get_user(q->ctx);
  proxy_jwt_claims_t c = {.sub = gh_http_user_get_local_name(user),
                          .principal = gh_http_user_get_name(user),
                          .auth_type = gh_http_user_get_auth_type(user),
                          .aud = m->c->jwt_aud != NULL ? m->c->jwt_aud : q->up->spec,
                          .issuer = m->c->jwt_iss,
                          .ttl_s = (m->c->jwt_ttl_ms + 999) / 1000};
  const char **groups = NULL, **names = NULL, *name_list = NULL;
  char why[300] = "", *tok = NULL;
  proxy_jwt_t *j = jwt_find(m->c->jwt_key);
  int ret = 0;
  if (j == NULL)
    ret = jwt_load(m->c->jwt_key, &j, why, sizeof(why));
  if (ret == 0 && m->c->jwt_alg != NULL && strcasecmp(m->c->jwt_alg, proxy_jwt_alg(j)) != 0) {
    snprintf(why, sizeof(why), "identity_jwt_alg = %s but %s is an %s key", m->c->jwt_alg,
             m->c->jwt_key, proxy_jwt_alg(j));
    ret = -EINVAL;
  }
  if (ret == 0) {
    if (c.sub == NULL || c.sub[0] == '\0')
      c.sub = c.principal; /* a user without a local account (IDENTIFY) */
    c.n_groups = split_groups(q, gh_http_user_get_variable(user, "groups"), &groups);
    c.groups = groups;
    if (m->c->jwt_group_names) {
      if (proxy_group_names(q, &name_list) != 0)
        return PROXY_ENAMES; /* logged: never a claim with fewer groups */
      c.with_group_names = true;
      c.n_group_names = split_groups(q, name_list, &names);
      c.group_names = names;
    }
    ret = proxy_jwt_sign(j, &c, &tok);
    if (ret != 0)
      snprintf(why, sizeof(why), "signing: %s", strerror(-ret));
  }
  if (ret == 0) {
    proxy_buf_str(head, m->c->jwt_field);
    proxy_buf_str(head, strcasecmp(m->c->jwt_field, "Authorization") == 0 ? ": Bearer " : ": ");
    proxy_buf_str(head, tok);
    proxy_buf_add(head, "\r\n", 2);
  } else {
    gh_module_server_log(q->server, GH_LOG_ERROR, "proxy: upstream %s: identity_jwt: %s",
                         q->up->spec, why);
  }
  free(tok);
  return ret;
}

/* upstream_spn, or HTTP/<host> of a TCP upstream */
static const char *upstream_spn(proxy_req_t *q, const idm_t *m)
{
  char *buf;
  size_t len;
  if (m->c->spn != NULL || q->up->is_unix)
    return m->c->spn;
  len = strlen(q->up->host) + 6;
  buf = gh_http_context_alloc(q->ctx, len);
  if (buf != NULL)
    snprintf(buf, len, "HTTP/%s", q->up->host);
  return buf;
}

static int add_negotiate(proxy_req_t *q, idm_t *m, proxy_buf_t *head)
{
  const char *cc = gh_http_request_get_delegated_mem_ccache(q->req), *spn = upstream_spn(q, m);
  char why[600] = "", *value = NULL;
  proxy_negotiate_t *n = NULL;
  int ret;
  if (spn == NULL) {
    snprintf(why, sizeof(why), "upstream_spn is needed for a unix: upstream");
    ret = -EINVAL;
  } else if (cc == NULL) {
    snprintf(why, sizeof(why),
             "no Kerberos credential for %s (the client did not delegate one, and the site has "
             "no s4u = proxy with %s in s4u_targets)",
             gh_http_user_get_name(gh_http_context_get_user(q->ctx)), spn);
    ret = -ENOKEY;
  } else {
    ret = proxy_negotiate_start(cc, spn, &n, &value, why, sizeof(why));
  }
  if (ret == 0) {
    proxy_buf_field(head, "Authorization", value);
    m->neg = n;
  } else {
    gh_module_server_log(q->server, GH_LOG_ERROR, "proxy: upstream %s: upstream_auth: %s",
                         q->up->spec, why);
  }
  free(value);
  return ret;
}

int proxy_idm_add_fields(proxy_req_t *q, proxy_buf_t *head)
{
  idm_t *m = q->idm;
  int ret = 0;
  if (m == NULL)
    return -ENOMEM;
  proxy_idm_done(q);
  if (!has_user(q))
    return 0; /* anonymous: no assertion, no Authorization */
  if (m->c->jwt_key != NULL)
    ret = add_jwt(q, m, head);
  if (ret == 0 && m->c->negotiate)
    ret = add_negotiate(q, m, head);
  return ret;
}

static bool has_negotiate_token(const char *const *values, size_t n)
{
  size_t len;
  for (size_t i = 0; i < n; i++)
    if (proxy_negotiate_token_of(values[i], &len) != NULL)
      return true;
  return false;
}

int proxy_idm_on_head(proxy_req_t *q, proxy_resp_t *r)
{
  const idm_t *m = q->idm;
  const char *values[16];
  char why[600];
  size_t n = 0;
  if (m == NULL || m->neg == NULL)
    return 0; /* before why[] is cleared: every proxied request passes here */
  why[0] = '\0';
  for (size_t i = 0; i < r->n && n < 16; i++)
    if (strcasecmp(r->f[i].name, "WWW-Authenticate") == 0)
      values[n++] = r->f[i].value;
  /* A 2xx must carry the upstream's proof (a gatehoused, IIS or Apache
   * upstream sends it there); any other answer is checked when it carries
   * one, since servers send none on errors and redirects; a 401 is the
   * upstream refusing the client's ticket. */
  if (r->status == 401)
    snprintf(why, sizeof(why), "the upstream refused the client's Kerberos ticket (401)");
  else if ((r->status >= 300 && !has_negotiate_token(values, n)) ||
           proxy_negotiate_finish(m->neg, values, n, why, sizeof(why)) == 0)
    return 0;
  r->error = gh_http_context_strdup(q->ctx, why);
  if (r->error == NULL)
    r->error = "the upstream's mutual authentication failed";
  return -1;
}

bool proxy_idm_skip_response_field(proxy_req_t *q, const char *name)
{
  const idm_t *m = q->idm;
  return m != NULL && m->neg != NULL && strcasecmp(name, "WWW-Authenticate") == 0;
}

bool proxy_idm_fresh_head(proxy_req_t *q)
{
  const idm_t *m = q->idm;
  return m != NULL && m->neg != NULL;
}

void proxy_idm_done(proxy_req_t *q)
{
  idm_t *m = q->idm;
  if (m != NULL) {
    proxy_negotiate_free(m->neg);
    m->neg = NULL;
  }
}

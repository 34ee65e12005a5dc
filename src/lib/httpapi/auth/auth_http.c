/* auth_http.c: the auth engine wired into the HTTP core through hooks.h — request gate, response
 * hook, public per-server/per-group/per-request API. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/token.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_internal.h"
#include "httpapi/auth/auth_session.h"
#include "httpapi/glue.h"
#include "httpapi/hooks.h"
#include "httpapi/metrics.h"
#include "sec/runas.h"
#include "util/alloc.h"

/*
 * State, by lifetime:
 *   server   gh__auth_server_t (engine), gh__server_set_auth_state; freed by
 *            gh_server_free after the workers are gone.
 *   group    gh__auth_site_t (a copy of gh_auth_settings_t), group auth slot.
 *   conn     gh__auth_conn_t (half-open NTLM/SPNEGO context, persisted
 *            identity), connection state; freed with the connection.
 *   request  gh__auth_req_t (the step's result: record, challenges, mutual
 *            header, delegated ccaches), request auth slot; freed at
 *            gh_request_complete, which also closes a token the receiver
 *            left open (DESIGN.md item 11: unusable after the request).
 */

typedef struct gh__auth_keyfile {
  struct gh__auth_keyfile *next;
  gh__session_keys_t *keys;
} gh__auth_keyfile_t;

typedef struct gh__auth_server {
  gh__auth_engine_t *engine;
  /* session key files, one per path, shared by the sites naming it;
   * written before start only, re-read in place (SIGHUP) */
  gh__auth_keyfile_t *keyfiles;
} gh__auth_server_t;

typedef struct gh__auth_site {
  gh_auth_settings_t s;
  char *realm;
  char *allowed_spns;
  char *s4u_targets;
  char *session_cookie;
  char *session_path;
  char *session_logout;
  gh__session_site_t session; /* keys NULL: no sessions */
} gh__auth_site_t;

typedef struct gh__auth_req {
  gh__auth_result_t r;
  gh__auth_engine_t *engine;
  const gh__auth_site_t *site;
  gh__auth_transport_t tp;
  bool mutual_added;
  char *set_cookie; /* a Set-Cookie value for the response (session), or NULL */
} gh__auth_req_t;

void gh_auth_config_init(gh_auth_config_t *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->basic_cache_ttl_s = 60;
  cfg->name_map_cache_ttl_s = 5;
}

static void server_state_free(void *p)
{
  gh__auth_server_t *as = p;

  if (!as)
    return;
  gh__auth_engine_free(as->engine);
  while (as->keyfiles) {
    gh__auth_keyfile_t *k = as->keyfiles;
    as->keyfiles = k->next;
    gh__session_keys_free(k->keys);
    free(k);
  }
  free(as);
}

static void conn_state_free(void *p)
{
  gh__auth_conn_free(p);
}

static void req_slot_free(void *p)
{
  gh__auth_req_t *rq = p;

  if (!rq)
    return;
  /* The record's token belongs to the receiver; what it left open is closed
   * now (a handle it already closed reports GH_EINVALID_HANDLE: ignored). */
  if (rq->r.info.token)
    (void)gh_token_close(rq->r.info.token);
  rq->r.info.token = 0;
  gh__auth_result_done(&rq->r);
  free(rq->set_cookie); /* rq itself is the request's memory */
}

void gh__request_auth_token_closed(gh_request_t *req, gh_token_t token)
{
  gh__auth_req_t *rq = req != NULL ? gh__request_get_auth_slot(req) : NULL;
  if (rq != NULL && token != 0 && rq->r.info.token == token)
    rq->r.info.token = 0;
}

static void site_free(void *p)
{
  gh__auth_site_t *site = p;

  if (!site)
    return;
  free(site->realm);
  free(site->allowed_spns);
  free(site->s4u_targets);
  free(site->session_cookie);
  free(site->session_path);
  free(site->session_logout);
  free(site);
}

static void transport_of(gh_request_t *req, gh__auth_transport_t *tp)
{
  const gh_conn_info_t *ci = gh_request_get_conn_info(req);

  tp->kind = (ci->flags & GH_CONN_UNIX)  ? GH__AUTH_TRANSPORT_UNIX
             : (ci->flags & GH_CONN_TLS) ? GH__AUTH_TRANSPORT_TLS
                                         : GH__AUTH_TRANSPORT_TCP;
  tp->keep_alive = (ci->flags & GH_CONN_KEEPALIVE) != 0;
  tp->unix_fd = tp->kind == GH__AUTH_TRANSPORT_UNIX ? gh__request_get_fd(req) : -1;
}

/* The Authorization value; *ret_count = number of Authorization lines. */
static const char *authorization(gh_request_t *req, unsigned *ret_count)
{
  size_t n = gh_request_get_header_count(req);
  const char *first = NULL, *name, *value;
  unsigned count = 0;

  for (size_t i = 0; i < n; i++) {
    if (gh_request_get_header_at(req, i, &name, &value) == 0 &&
        strcasecmp(name, "Authorization") == 0) {
      if (!first)
        first = value;
      count++;
    }
  }
  *ret_count = count;
  return first;
}

/* The values of the site's cookie in the request's Cookie headers. */
static size_t session_cookies(gh_request_t *req, const char *cookie, const char **vals,
                              size_t *lens)
{
  size_t n = gh_request_get_header_count(req), found = 0;
  const char *name, *value;

  for (size_t i = 0; i < n && found < GH__SESSION_MAX_CANDIDATES; i++)
    if (gh_request_get_header_at(req, i, &name, &value) == 0 && strcasecmp(name, "Cookie") == 0)
      found += gh__session_cookie_find(value, strlen(value), cookie, vals + found, lens + found,
                                       GH__SESSION_MAX_CANDIDATES - found);
  return found;
}

enum { SESSION_RUN_STEP, SESSION_REPLIED, SESSION_RECORD };

/* Session cookies (auth_session_step.c), before the step: the logout URL
 * is answered here (SESSION_REPLIED); a request without Authorization
 * whose cookie opens gets its record from it (SESSION_RECORD: no step). */
static int session_gate(gh_request_t *req, gh__auth_server_t *as, gh__auth_conn_t *conn,
                        const gh__auth_site_t *site, gh__auth_req_t *rq, const char *authz)
{
  const gh__session_site_t *ss = &site->session;
  const char *path = gh_request_get_path(req), *vals[GH__SESSION_MAX_CANDIDATES];
  size_t lens[GH__SESSION_MAX_CANDIDATES], n;
  bool tls = rq->tp.kind == GH__AUTH_TRANSPORT_TLS;

  if (ss->logout && path && strcmp(path, ss->logout) == 0) {
    char *clear = gh__auth_session_clear_cookie(ss, tls);
    const char *hdrs[2] = {"Set-Cookie", clear};
    gh__auth_session_memo_clear(conn); /* this connection forgets it too */
    gh__request_reply(req, 200, NULL, hdrs, clear ? 1 : 0, "logged out\n");
    free(clear);
    return SESSION_REPLIED;
  }
  /* an Authorization header is always verified; a Unix peer is who it is */
  if (authz || (rq->tp.kind == GH__AUTH_TRANSPORT_UNIX && (site->s.schemes & GH_AUTH_SCHEME_PEER)))
    return SESSION_RUN_STEP;
  n = session_cookies(req, ss->name, vals, lens);
  if (gh__auth_session_use(as->engine, conn, ss, vals, lens, n, tls, &rq->r, &rq->set_cookie) != 0)
    return SESSION_RECORD;
  return SESSION_RUN_STEP;
}

/* The scheme an Authorization names, for the counters of a step the engine
 * answered before it set one (a 401 leg, a 400, a 503). */
static gh_auth_type_t scheme_of(const char *authz)
{
  static const struct {
    const char *name;
    size_t len;
    gh_auth_type_t type;
  } names[] = {{"Negotiate", 9, GH_AUTH_TYPE_NEGOTIATE},
               {"NTLM", 4, GH_AUTH_TYPE_NTLM},
               {"Basic", 5, GH_AUTH_TYPE_BASIC},
               {"Kerberos", 8, GH_AUTH_TYPE_KERBEROS}};
  for (size_t i = 0; authz != NULL && i < sizeof(names) / sizeof(names[0]); i++)
    if (strncasecmp(authz, names[i].name, names[i].len) == 0 &&
        (authz[names[i].len] == ' ' || authz[names[i].len] == '\0'))
      return names[i].type;
  return GH_AUTH_TYPE_NONE;
}

/* One count per request that carried a credential or ran on a connection
 * authenticated before (a request without either is not an attempt). */
static void count_step(const gh__auth_req_t *rq, const char *authz)
{
  const gh_auth_info_t *ai = &rq->r.info;
  gh_auth_type_t type = ai->type != GH_AUTH_TYPE_NONE ? ai->type : scheme_of(authz);
  bool had_authz = authz != NULL;
  gh__metrics_outcome_t o;
  switch (rq->r.verdict) {
  case GH__AUTH_DELIVER:
    if (ai->status == GH_AUTH_STATUS_NOT_AUTHENTICATED)
      return;
    o = ai->status == GH_AUTH_STATUS_FAILURE                    ? GH__MO_FAILURE
        : (ai->flags & GH_AUTH_FLAG_TOKEN_FOR_CACHED_CRED) != 0 ? GH__MO_CACHED
                                                                : GH__MO_SUCCESS;
    break;
  case GH__AUTH_CHALLENGE:
    if (!had_authz)
      return; /* the first 401 of a handshake */
    o = GH__MO_CONTINUE;
    break;
  case GH__AUTH_BAD_REQUEST:
    o = GH__MO_MALFORMED;
    break;
  default:
    o = GH__MO_ERROR;
    break;
  }
  gh__metrics_auth(type, o, ai->failure);
}

/* The request gate (hooks.h): runs on the worker that dequeued the request,
 * at base identity, before the application sees it. */
static int auth_gate(gh_request_t *req, void *arg)
{
  gh__auth_server_t *as = arg;
  gh_url_group_t *g = gh_request_get_url_group(req);
  gh__auth_site_t *site = g ? gh__url_group_get_auth_slot(g) : NULL;
  gh__auth_conn_t *conn;
  gh__auth_req_t *rq = NULL;
  const char *authz;
  const void *cbt = NULL;
  size_t cbt_len = 0;
  unsigned n_authz = 0;
  int ret = GH__GATE_DELIVER, sess;

  if (!site || site->s.schemes == 0)
    goto out;
  conn = gh__request_get_conn_state(req);
  if (!conn) {
    conn = gh__auth_conn_new(as->engine);
    if (!conn) {
      ret = -ENOMEM;
      goto out;
    }
    gh__request_set_conn_state(req, conn, conn_state_free);
  }
  rq = gh_request_alloc(req, sizeof(*rq)); /* no malloc freed by another worker */
  if (!rq) {
    ret = -ENOMEM;
    goto out;
  }
  rq->engine = as->engine;
  rq->site = site;
  transport_of(req, &rq->tp);
  authz = authorization(req, &n_authz);
  gh__request_set_auth_slot(req, rq, req_slot_free);
  if (n_authz > 1) {
    /* two credentials for one request: ambiguous, never guess (item 4) */
    gh__metrics_auth(GH_AUTH_TYPE_NONE, GH__MO_MALFORMED, GH_AUTH_FAILURE_NONE);
    gh__request_reply(req, 400, NULL, NULL, 0, "400 Bad Request: more than one Authorization\n");
    ret = GH__GATE_HANDLED;
    goto out;
  }
  sess = site->session.keys ? session_gate(req, as, conn, site, rq, authz) : SESSION_RUN_STEP;
  if (sess == SESSION_REPLIED) {
    ret = GH__GATE_HANDLED;
    goto out;
  }
  if (sess == SESSION_RUN_STEP) {
    if (rq->tp.kind == GH__AUTH_TRANSPORT_TLS)
      cbt = gh__request_get_channel_binding(req, &cbt_len);
    ret = gh__auth_step_tls(as->engine, conn, &site->s, &rq->tp, cbt, cbt_len, authz,
                            authz ? strlen(authz) : 0, &rq->r);
    if (ret < 0)
      goto out;
    count_step(rq, authz); /* a session's own outcomes: session_outcome */
    if (site->session.keys)
      gh__auth_session_mint(as->engine, &site->session, &site->s,
                            rq->tp.kind == GH__AUTH_TRANSPORT_TLS, &rq->r, &rq->set_cookie);
  }
  switch (rq->r.verdict) {
  case GH__AUTH_DELIVER:
    ret = GH__GATE_DELIVER;
    break;
  case GH__AUTH_CHALLENGE: {
    /* an intermediate leg (item 3): the application never sees it */
    const char *hdrs[2 * GH__AUTH_MAX_CHALLENGES];
    for (size_t i = 0; i < rq->r.n_challenges; i++) {
      hdrs[2 * i] = "WWW-Authenticate";
      hdrs[2 * i + 1] = rq->r.challenges[i];
    }
    gh__request_reply(req, 401, NULL, hdrs, rq->r.n_challenges, NULL);
    ret = GH__GATE_HANDLED;
    break;
  }
  case GH__AUTH_BAD_REQUEST:
    gh__request_reply(req, 400, NULL, NULL, 0, "400 Bad Request: malformed Authorization\n");
    ret = GH__GATE_HANDLED;
    break;
  case GH__AUTH_UNAVAILABLE: {
    char body[160];
    snprintf(body, sizeof(body), "503 Service Unavailable: authentication: %s\n",
             gh_strerror(rq->r.error));
    gh__request_reply(req, 503, NULL, NULL, 0, body);
    ret = GH__GATE_HANDLED;
    break;
  }
  }
out:
  return ret;
}

static int add_challenges(gh_request_t *req, const gh__auth_req_t *rq)
{
  char buf[1024];
  const char *vals[GH__AUTH_MAX_CHALLENGES];
  int n, ret = 0;

  n = gh__auth_challenge_list(&rq->site->s, &rq->tp, buf, sizeof(buf), vals);
  if (n < 0) {
    ret = n;
    goto out;
  }
  for (int i = 0; i < n && ret == 0; i++)
    ret = gh_response_add_header(req, "WWW-Authenticate", vals[i]);
out:
  return ret;
}

/* The response hook (hooks.h): right before the head is serialised. */
static void auth_response_hook(gh_request_t *req, int status, void *arg)
{
  gh__auth_req_t *rq = gh__request_get_auth_slot(req);

  (void)arg;
  if (!rq)
    return;
  /* a session minted or refreshed by this request; never on a 401 (the
   * application refused the identity) */
  if (rq->set_cookie && status != 401) {
    (void)gh_response_add_header(req, "Set-Cookie", rq->set_cookie);
    free(rq->set_cookie);
    rq->set_cookie = NULL;
  }
  if (status >= 200 && status < 300) {
    /* item 7: the mutual-auth token on the final 2xx, unless the site
     * hands it to the application (receive_mutual_auth) or the
     * application sent a WWW-Authenticate itself (never two) */
    if (rq->r.mutual_auth_header && !rq->mutual_added &&
        !gh__response_has_header(req, "WWW-Authenticate") &&
        gh_response_add_header(req, "WWW-Authenticate", rq->r.mutual_auth_header) == 0)
      rq->mutual_added = true;
  } else if (status == 401 && !gh__response_has_header(req, "WWW-Authenticate")) {
    /* item 2: a 401 from the application lists every offered scheme
     * (one it wrote itself fixes the list and is left alone) */
    (void)add_challenges(req, rq);
  }
}

int gh_server_enable_auth(gh_server_t *server, const gh_auth_config_t *cfg, char *errbuf,
                          size_t errlen)
{
  gh__auth_server_t *as = NULL;
  gh__auth_engine_config_t ec = {0};
  gh_auth_config_t defaults;
  int ret = 0;

  if (errbuf && errlen)
    errbuf[0] = '\0';
  if (!server) {
    ret = -EINVAL;
    goto out;
  }
  if (gh__server_get_auth_state(server)) {
    ret = GH_EEXISTS;
    goto out;
  }
  if (!gh__sec_is_initialised()) {
    /* the engine makes tokens: without the sec layer every request would
     * fail later with GH_ESTATE, so the order is refused here */
    ret = GH_ESTATE;
    if (errbuf && errlen)
      snprintf(errbuf, errlen,
               "gh_server_enable_auth: call gh_sec_init() first "
               "(after gh_privileges_drop(), before enabling authentication)");
    goto out;
  }
  if (!cfg) {
    gh_auth_config_init(&defaults);
    cfg = &defaults;
  }
  as = gh__calloc(1, sizeof(*as));
  if (!as) {
    ret = -ENOMEM;
    goto out;
  }
  if (cfg->replay_cache_file && cfg->replay_cache_url) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "replay cache: MIT's file cache or Redis, not both");
    ret = GH_ECONFIG;
    goto out;
  }
  ec.keytab = cfg->keytab;
  ec.service_principal = cfg->service_principal;
  ec.ntlm_service_name = cfg->ntlm_service_name;
  ec.s4u_principal = cfg->s4u_principal;
  ec.ntlm_user_file = cfg->ntlm_user_file;
  ec.ntlm = cfg->ntlm;
  ec.pam_service = cfg->pam_service;
  ec.ccache_dir = cfg->ccache_dir;
  ec.unmapped_user = cfg->unmapped_user;
  ec.basic_cache_ttl_s = cfg->basic_cache_ttl_s;
  ec.basic_cache_entries = cfg->basic_cache_entries;
  ec.pam_timeout_ms = cfg->pam_timeout_ms;
  ec.pam_max_concurrent = cfg->pam_max_concurrent;
  ec.replay_cache_file = cfg->replay_cache_file;
  ec.replay_cache_shared = cfg->replay_cache_shared;
  ec.replay_cache_url = cfg->replay_cache_url;
  ec.replay_cache_password = cfg->replay_cache_password;
  ec.replay_cache_fallback_local = cfg->replay_cache_fallback_local;
  ec.replay_cache_timeout_ms = cfg->replay_cache_timeout_ms;
  ec.name_map_cache_ttl_s = cfg->name_map_cache_ttl_s;
  ec.log_cb = cfg->log_cb;
  ec.log_arg = cfg->log_arg;
  ret = gh__auth_engine_new(&ec, errbuf, errlen, &as->engine);
  if (ret)
    goto out;
  gh__server_set_auth_state(server, as, server_state_free);
  gh__server_set_request_gate(server, auth_gate, as);
  gh__server_set_response_hook(server, auth_response_hook, as);
  as = NULL;
out:
  server_state_free(as);
  return ret;
}

int gh_server_reload_keytab(gh_server_t *server, char *msg, size_t msglen)
{
  gh__auth_server_t *as = server ? gh__server_get_auth_state(server) : NULL;

  if (!as) {
    if (msg && msglen)
      snprintf(msg, msglen, "no authentication on this server");
    return GH_ENOT_FOUND;
  }
  return gh__auth_engine_reload_keytab(as->engine, msg, msglen);
}

/* *dst = a copy of src (NULL stays NULL); -ENOMEM. */
static int dup_opt(char **dst, const char *src)
{
  *dst = src ? gh__strdup(src) : NULL;
  return (src && !*dst) ? -ENOMEM : 0;
}

/* A cookie name is an RFC 6265 token; a Path and logout URL start with '/'
 * and hold no ';', space or control character. */
static bool session_word_ok(const char *w, bool path)
{
  if (!w || !w[0] || strlen(w) > 255 || (path && w[0] != '/'))
    return false;
  for (const unsigned char *p = (const unsigned char *)w; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == ';' || *p == ',' ||
        (!path && strchr("()<>@:\\\"/[]?={}", *p)))
      return false;
  return true;
}

/* The server's key file for path, read now the first time a site names it. */
static int keyfile_get(gh__auth_server_t *as, const char *path, gh__session_keys_t **ret_keys)
{
  gh__auth_keyfile_t *k;
  char msg[256];
  int ret;

  for (k = as->keyfiles; k; k = k->next)
    if (strcmp(gh__session_keys_path(k->keys), path) == 0) {
      *ret_keys = k->keys;
      return 0;
    }
  k = gh__calloc(1, sizeof(*k));
  if (!k)
    return -ENOMEM;
  ret = gh__session_keys_load(path, &k->keys, msg, sizeof(msg));
  if (ret) {
    gh__auth_log(as->engine->log_cb, as->engine->log_arg, LOG_ERR, msg);
    free(k);
    return ret;
  }
  k->next = as->keyfiles;
  as->keyfiles = k;
  *ret_keys = k->keys;
  return 0;
}

void gh_auth_session_settings_init(gh_auth_session_settings_t *settings)
{
  memset(settings, 0, sizeof(*settings));
}

/* The group's session settings: checked copies, defaults, the key file. */
static int site_session(gh__auth_server_t *as, gh_url_group_t *group, gh__auth_site_t *site,
                        const gh_auth_session_settings_t *set)
{
  gh__session_site_t ss = {0};
  const char *prefix = gh_url_group_get_prefix(group);
  char *cookie = NULL, *path = NULL, *logout = NULL;
  int ret = 0;

  if (dup_opt(&cookie, set->cookie ? set->cookie : "gh_session") ||
      dup_opt(&path, set->path ? set->path
                     : prefix  ? prefix
                               : "/") ||
      dup_opt(&logout, set->logout)) {
    ret = -ENOMEM;
    goto out;
  }
  if (!set->key_file || !session_word_ok(cookie, false) || !session_word_ok(path, true) ||
      (logout && !session_word_ok(logout, true))) {
    ret = -EINVAL;
    goto out;
  }
  ret = keyfile_get(as, set->key_file, &ss.keys);
  if (ret)
    goto out;
  ss.name = cookie;
  ss.site = path;
  ss.max_age_s = set->max_age_s ? set->max_age_s : 8 * 3600;
  ss.idle_s = set->idle_s ? set->idle_s : 30 * 60;
  ss.secure_always = set->secure_always;
  ss.logout = logout;
  free(site->session_cookie);
  free(site->session_path);
  free(site->session_logout);
  site->session_cookie = cookie;
  site->session_path = path;
  site->session_logout = logout;
  cookie = path = logout = NULL;
  site->session = ss;
out:
  free(cookie);
  free(path);
  free(logout);
  return ret;
}

int gh_url_group_set_auth_session(gh_url_group_t *group, const gh_auth_session_settings_t *settings)
{
  gh__auth_site_t *site = group ? gh__url_group_get_auth_slot(group) : NULL;

  if (!group || !settings)
    return -EINVAL;
  if (!site)
    return GH_ESTATE; /* gh_url_group_set_auth first */
  return site_session(gh__server_get_auth_state(gh__url_group_get_server(group)), group, site,
                      settings);
}

int gh_auth_session_key_file_check(const char *path, char *msg, size_t msglen)
{
  gh__session_keys_t *k = NULL;
  char buf[256] = "";
  int ret = gh__session_keys_load(path, &k, buf, sizeof(buf));

  gh__session_keys_free(k);
  if (ret == -ENOMEM)
    snprintf(buf, sizeof(buf), "out of memory");
  if (msg && msglen)
    snprintf(msg, msglen, "%s", buf);
  return ret == 0 ? 0 : GH_ECONFIG;
}

int gh_server_reload_session_keys(gh_server_t *server, char *msg, size_t msglen)
{
  gh__auth_server_t *as = server ? gh__server_get_auth_state(server) : NULL;
  char one[256];
  size_t used = 0, ok = 0;
  int ret = 0;

  if (msg && msglen)
    msg[0] = '\0';
  if (!as)
    return GH_ENOT_FOUND;
  for (gh__auth_keyfile_t *k = as->keyfiles; k; k = k->next) {
    one[0] = '\0';
    if (gh__session_keys_reload(k->keys, one, sizeof(one)) == 0) {
      ok++;
      continue;
    }
    ret = GH_ECONFIG;
    if (msg && used < msglen)
      used += (size_t)snprintf(msg + used, msglen - used, "%s%s; its keys are kept",
                               used ? "; " : "", one);
  }
  if (msg && ret == 0 && ok > 0)
    snprintf(msg, msglen, "session keys re-read from %zu file%s", ok, ok == 1 ? "" : "s");
  return ret;
}

int gh_url_group_set_auth(gh_url_group_t *group, const gh_auth_settings_t *settings)
{
  gh__auth_site_t *site = NULL;
  int ret = 0;

  if (!group || !settings) {
    ret = -EINVAL;
    goto out;
  }
  if (!gh__server_get_auth_state(gh__url_group_get_server(group))) {
    ret = GH_ESTATE; /* gh_server_enable_auth first */
    goto out;
  }
  site = gh__calloc(1, sizeof(*site));
  if (!site) {
    ret = -ENOMEM;
    goto out;
  }
  site->s = *settings;
  if (settings->realm) {
    site->realm = gh__strdup(settings->realm);
    if (!site->realm) {
      ret = -ENOMEM;
      goto out;
    }
  }
  site->s.realm = site->realm;
  if (settings->allowed_spns) {
    site->allowed_spns = gh__strdup(settings->allowed_spns);
    if (!site->allowed_spns) {
      ret = -ENOMEM;
      goto out;
    }
  }
  site->s.allowed_spns = site->allowed_spns;
  if (settings->s4u_targets) {
    site->s4u_targets = gh__strdup(settings->s4u_targets);
    if (!site->s4u_targets) {
      ret = -ENOMEM;
      goto out;
    }
  }
  site->s.s4u_targets = site->s4u_targets;
  if ((unsigned)site->s.s4u > GH_AUTH_S4U_PROXY) {
    ret = -EINVAL;
    goto out;
  }
  if ((unsigned)site->s.channel_binding > GH_AUTH_CB_STRICT) {
    ret = -EINVAL;
    goto out;
  }
  if (site->s.max_token_size == 0)
    site->s.max_token_size = GH_AUTH_MAX_TOKEN_DEFAULT;
  gh__url_group_set_auth_slot(group, site, site_free);
  site = NULL;
out:
  site_free(site);
  return ret;
}

const gh_auth_settings_t *gh_url_group_get_auth(const gh_url_group_t *group)
{
  const gh__auth_site_t *site = group ? gh__url_group_get_auth_slot(group) : NULL;

  return site ? &site->s : NULL;
}

const gh_auth_info_t *gh_request_get_auth_info(const gh_request_t *req)
{
  const gh__auth_req_t *rq = req ? gh__request_get_auth_slot(req) : NULL;

  return (rq && rq->r.verdict == GH__AUTH_DELIVER) ? &rq->r.info : NULL;
}

int gh_request_get_delegated_ccache(gh_request_t *req, uid_t uid, gid_t gid,
                                    const char **ret_ccname)
{
  gh__auth_req_t *rq = req ? gh__request_get_auth_slot(req) : NULL;

  if (!rq || !ret_ccname)
    return rq ? -EINVAL : GH_ENOT_FOUND;
  return gh__auth_result_file_ccache(rq->engine, &rq->r, uid, gid, ret_ccname);
}

const char *gh_request_get_delegated_mem_ccache(const gh_request_t *req)
{
  const gh__auth_req_t *rq = req ? gh__request_get_auth_slot(req) : NULL;

  return rq ? gh__auth_result_mem_ccache(&rq->r) : NULL;
}

int gh_response_add_auth_challenges(gh_request_t *req)
{
  const gh__auth_req_t *rq = req ? gh__request_get_auth_slot(req) : NULL;

  if (!rq)
    return GH_ENOT_FOUND;
  return add_challenges(req, rq);
}

int gh_server_auth_selftest(gh_server_t *server, const gh_auth_settings_t *settings,
                            const char *authorization, gh_auth_selftest_t *ret_result)
{
  gh__auth_server_t *as = server ? gh__server_get_auth_state(server) : NULL;
  gh__auth_transport_t tp = {.kind = GH__AUTH_TRANSPORT_TCP, .keep_alive = true, .unix_fd = -1};
  gh__auth_conn_t *conn = NULL;
  gh__auth_result_t r;
  gh_auth_settings_t s;
  gh_auth_selftest_t *out = NULL;
  int ret = 0;

  memset(&r, 0, sizeof(r));
  if (!server || !settings || !authorization || !ret_result ||
      (unsigned)settings->channel_binding > GH_AUTH_CB_STRICT) {
    ret = -EINVAL;
    goto out;
  }
  if (!as) {
    ret = GH_ESTATE; /* gh_server_enable_auth first */
    goto out;
  }
  s = *settings;
  if (s.max_token_size == 0)
    s.max_token_size = GH_AUTH_MAX_TOKEN_DEFAULT;
  conn = gh__auth_conn_new(as->engine);
  out = gh__calloc(1, sizeof(*out));
  if (!conn || !out) {
    ret = -ENOMEM;
    goto out;
  }
  /* the gate's own step (auth_gate), on a connection of its own */
  ret = gh__auth_step(as->engine, conn, &s, &tp, authorization, strlen(authorization), &r);
  if (ret < 0)
    goto out;
  switch (r.verdict) {
  case GH__AUTH_DELIVER:
    ret = 0;
    break;
  case GH__AUTH_CHALLENGE:
    ret = GH_EAUTH_CONTINUE;
    goto out;
  case GH__AUTH_BAD_REQUEST:
    ret = GH_EPARSE;
    goto out;
  case GH__AUTH_UNAVAILABLE:
    ret = r.error ? r.error : GH_EAUTH_INTERNAL;
    goto out;
  }
  out->status = r.info.status;
  out->sec_status = r.info.sec_status;
  out->type = r.info.type;
  out->flags = r.info.flags;
  out->context_attributes = r.info.context_attributes;
  snprintf(out->package_name, sizeof(out->package_name), "%s",
           r.info.package_name ? r.info.package_name : "");
  snprintf(out->remote_user, sizeof(out->remote_user), "%s",
           r.info.remote_user ? r.info.remote_user : "");
  snprintf(out->local_user, sizeof(out->local_user), "%s",
           r.info.local_user ? r.info.local_user : "");
  if (r.info.mutual_auth_data && r.info.mutual_auth_data_len < sizeof(out->mutual_auth_data))
    memcpy(out->mutual_auth_data, r.info.mutual_auth_data, r.info.mutual_auth_data_len);
  snprintf(out->sec_status_text, sizeof(out->sec_status_text), "%s",
           gh_auth_info_sec_status_text(&r.info));
  *ret_result = *out;
out:
  if (r.info.token)
    (void)gh_token_close(r.info.token); /* ours: nobody receives this record */
  r.info.token = 0;
  gh__auth_result_done(&r);
  gh__auth_conn_free(conn);
  free(out);
  return ret;
}

/* auth_engine.c: the auth engine — creation, connection state, the step's dispatch and success. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gssapi/gssapi.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_pac.h"
#include "httpapi/auth/auth_session.h"
#include "httpapi/auth/auth_sidcache.h"
#include "util/alloc.h"

static const gh__auth_token_ops_t sec_ops = {
    .from_user = gh_token_from_user,
    .from_peer = gh_token_from_peer,
    .open_handle = gh_token_open_handle,
    .close = gh_token_close,
    .get_user = gh_token_get_user,
};

/* ---- engine ---- */

int gh__auth_engine_new(const gh__auth_engine_config_t *cfg, char *errbuf, size_t errlen,
                        gh__auth_engine_t **ret_engine)
{
  gh__auth_engine_t *e = NULL;
  int ret = 0;

  if (errbuf && errlen)
    errbuf[0] = '\0';
  e = gh__calloc(1, sizeof(*e));
  if (!e) {
    ret = -ENOMEM;
    goto out;
  }
  gh__auth_cred_init(e);
  gh__auth_kpool_init(e);
  ret = gh__auth_nmap_init(e, cfg->name_map_cache_ttl_s);
  if (ret)
    goto out;
  e->ops = cfg->token_ops ? *cfg->token_ops : sec_ops;
  e->log_cb = cfg->log_cb;
  e->log_arg = cfg->log_arg;
  if (!e->ops.from_user || !e->ops.from_peer || !e->ops.open_handle || !e->ops.close) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "auth engine: the sec layer (gh_token_*) is not available");
    ret = GH_EUNSUPPORTED;
    goto out;
  }
  e->pam_service = gh__strdup(cfg->pam_service ? cfg->pam_service : "gatehouse");
  e->pam_timeout_ms = cfg->pam_timeout_ms;
  e->pam_max_concurrent = cfg->pam_max_concurrent;
  e->ccache_dir = gh__strdup(cfg->ccache_dir ? cfg->ccache_dir : "/run/gatehouse");
  e->unmapped_user = gh__strdup(cfg->unmapped_user ? cfg->unmapped_user : "nobody");
  e->basic_cache =
      gh__auth_basic_cache_new(cfg->basic_cache_entries, cfg->basic_cache_ttl_s, &e->ops);
  if (cfg->s4u_principal && !(e->s4u_principal = gh__strdup(cfg->s4u_principal))) {
    ret = -ENOMEM;
    goto out;
  }
  e->sidcache = gh__sidcache_new(cfg->name_map_cache_ttl_s);
  if (!e->pam_service || !e->ccache_dir || !e->unmapped_user || !e->basic_cache || !e->sidcache) {
    ret = -ENOMEM;
    goto out;
  }

  if (cfg->keytab) {
    ret = gh__auth_check_file("keytab", cfg->keytab, errbuf, errlen);
    if (ret)
      goto out;
    /* Kerberos can delegate: the clients' FILE ccaches go below ccache_dir */
    ret = gh__auth_ccache_dir_prepare(e, e->ccache_dir, true, errbuf, errlen);
    if (ret)
      goto out;
    ret = gh__auth_cred_keytab(e, cfg, errbuf, errlen);
    if (ret)
      goto out;
    ret = gh__auth_nmap_init_conf(e);
    if (ret)
      goto out;
  }
  ret = gh__auth_cred_acquire(e, cfg, errbuf, errlen);
  if (ret)
    goto out;
  gh__winbind_check_at_start(e);
  *ret_engine = e;
  e = NULL;
out:
  gh__auth_engine_free(e);
  return ret;
}

void gh__auth_engine_free(gh__auth_engine_t *e)
{
  if (!e)
    return;
  gh__auth_cred_done(e);
  gh__auth_basic_cache_free(e->basic_cache);
  gh__sidcache_free(e->sidcache);
  gh__auth_kpool_done(e);
  gh__auth_nmap_done(e);
  free(e->pam_service);
  free(e->ccache_dir);
  free(e->unmapped_user);
  free(e);
}

/* ---- connection ---- */

gh__auth_conn_t *gh__auth_conn_new(gh__auth_engine_t *engine)
{
  gh__auth_conn_t *c = gh__calloc(1, sizeof(*c));

  if (c) {
    c->engine = engine;
    c->ctx = GSS_C_NO_CONTEXT;
  }
  return c;
}

void gh__auth_conn_reset_ctx(gh__auth_conn_t *c)
{
  OM_uint32 min;

  if (c->ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&min, &c->ctx, GSS_C_NO_BUFFER);
  c->ctx = GSS_C_NO_CONTEXT;
  c->ctx_scheme = GH__AUTH_SCHEME_UNKNOWN;
}

static void conn_drop_identity(gh__auth_conn_t *c)
{
  if (c->token)
    c->engine->ops.close(c->token);
  c->token = 0;
  free(c->remote_user);
  free(c->local_user);
  c->remote_user = c->local_user = NULL;
  c->type = GH_AUTH_TYPE_NONE;
  c->package = NULL;
  c->ret_flags = 0;
  c->expiry = 0;
}

void gh__auth_conn_free(gh__auth_conn_t *c)
{
  if (!c)
    return;
  gh__auth_conn_reset_ctx(c);
  conn_drop_identity(c);
  gh__auth_basic_memo_clear(c);
  gh__auth_session_memo_clear(c);
  free(c);
}

/* ---- the success path, the persisted identity ---- */

static int dup_into(char **dst, const char *src)
{
  *dst = src ? gh__strdup(src) : NULL;
  return (src && !*dst) ? -ENOMEM : 0;
}

static bool persist_applies(const gh_auth_settings_t *site, const char *package)
{
  if (site->persist == GH_AUTH_PERSIST_NONE)
    return false;
  if (site->persist == GH_AUTH_PERSIST_ALL)
    return true;
  return package && strcmp(package, "NTLM") == 0;
}

int gh__auth_make_token(gh__auth_engine_t *e, gh__auth_result_t *r, const gh_auth_settings_t *site,
                        const char *local, const char *remote, gh_token_source_t source,
                        time_t expiry, gss_cred_id_t *deleg, const gh__sids_t *sids,
                        bool *ret_unmapped)
{
  gh_token_opts_t opts = {
      .level = GH_LEVEL_IMPERSONATE,
      .source = source,
      .auth_name = remote,
      .expiry = expiry,
      .delegated_cred = GSS_C_NO_CREDENTIAL,
  };
  gh_token_t tok = 0;
  gid_t *gids = NULL;
  int ret;

  *ret_unmapped = false;
  if (sids != NULL && sids->n > 0) {
    opts.sids = (const char *const *)sids->v;
    opts.nsids = sids->n;
    if (site->group_source == GH_AUTH_GROUPS_PAC) {
      ret = gh__sidcache_gids(e->sidcache, sids, &gids, &opts.ngroups);
      if (ret != 0)
        goto out;
      opts.groups = gids;
    }
  }
  if (deleg && *deleg != GSS_C_NO_CREDENTIAL) {
    opts.level = GH_LEVEL_DELEGATE;
    opts.delegated_cred = *deleg;
  }
  ret = local ? e->ops.from_user(local, &opts, &tok) : GH_ENO_SUCH_USER;
  if (ret == 0 && deleg)
    *deleg = GSS_C_NO_CREDENTIAL; /* taken */
  if (ret == GH_ENO_SUCH_USER && local && sids != NULL && sids->n > 0 &&
      gh__sidcache_winbind_down(sids->v[0])) {
    /* an AD account whose identity came from the SID cache but that NSS
     * (winbind) no longer finds: with winbind down that is "try again"
     * (503), not "no such user" */
    ret = -EAGAIN;
    goto out;
  }
  if (ret == GH_ENO_SUCH_USER && site->allow_unmapped) {
    opts.level = GH_LEVEL_IDENTIFY;
    opts.delegated_cred = GSS_C_NO_CREDENTIAL;
    /* the unmapped account is not the client: neither its SIDs nor groups */
    opts.sids = NULL;
    opts.nsids = 0;
    opts.groups = NULL;
    opts.ngroups = 0;
    ret = e->ops.from_user(e->unmapped_user, &opts, &tok);
    *ret_unmapped = true;
  }
  if (ret == 0)
    r->info.token = tok;
out:
  free(gids);
  return ret;
}

/* S4U for a client without a Kerberos credential of its own (auth_s4u.c):
 * Basic, Peer, NTLM (raw or inside Negotiate); also for an identity
 * persisted on the connection, whose requests each get their own ccache. */
static void maybe_s4u(gh__auth_engine_t *e, gh__auth_result_t *r, const gh_auth_settings_t *site,
                      const char *local)
{
  const char *pkg = r->info.package_name;

  if (site->s4u != GH_AUTH_S4U_NO && local && !r->mem_ccache &&
      (r->info.type == GH_AUTH_TYPE_BASIC || r->info.type == GH_AUTH_TYPE_PEER ||
       (pkg && strcmp(pkg, "NTLM") == 0)))
    gh__auth_s4u(e, r, site, local);
}

void gh__auth_deliver_success(gh__auth_conn_t *c, gh__auth_result_t *r,
                              const gh_auth_settings_t *site, gh_auth_type_t type,
                              const char *package, uint32_t ret_flags, time_t expiry,
                              const char *remote, const char *local)
{
  r->verdict = GH__AUTH_DELIVER;
  r->info.status = GH_AUTH_STATUS_SUCCESS;
  r->info.type = type;
  r->info.package_name = package;
  r->info.context_attributes = ret_flags;
  r->info.expiry = expiry;
  if (gh__auth_result_set_users(r, remote, local) != 0) {
    c->engine->ops.close(r->info.token);
    r->info.token = 0;
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  maybe_s4u(c->engine, r, site, local);
  if (persist_applies(site, package)) {
    gh_token_t t2 = 0;
    conn_drop_identity(c);
    if (c->engine->ops.open_handle(r->info.token, &t2) == 0) {
      c->token = t2;
      c->type = type;
      c->package = package;
      c->ret_flags = ret_flags;
      c->expiry = expiry;
      if (dup_into(&c->remote_user, remote) || dup_into(&c->local_user, local))
        conn_drop_identity(c); /* no persistence rather than a half record */
    }
  }
out:
  return;
}

/* ---- the step ---- */

static bool scheme_offered(gh__auth_scheme_id_t s, const gh_auth_settings_t *site,
                           const gh__auth_transport_t *tp)
{
  switch (s) {
  case GH__AUTH_SCHEME_NEGOTIATE:
    return site->schemes & GH_AUTH_SCHEME_NEGOTIATE;
  case GH__AUTH_SCHEME_KERBEROS:
    return site->schemes & GH_AUTH_SCHEME_KERBEROS;
  case GH__AUTH_SCHEME_NTLM:
    return (site->schemes & GH_AUTH_SCHEME_NTLM) && tp->keep_alive;
  case GH__AUTH_SCHEME_BASIC:
    return (site->schemes & GH_AUTH_SCHEME_BASIC) &&
           (tp->kind != GH__AUTH_TRANSPORT_TCP || site->basic_over_plain_http);
  case GH__AUTH_SCHEME_UNKNOWN:
    break;
  }
  return false;
}

/* The identity persisted on the connection (item 8): SUCCESS with a new
 * handle of its token, flagged TOKEN_FOR_CACHED_CRED. */
static void deliver_persisted(gh__auth_engine_t *e, gh__auth_conn_t *c,
                              const gh_auth_settings_t *site, gh__auth_result_t *r)
{
  gh_token_t t = 0;

  if (e->ops.open_handle(c->token, &t) != 0) {
    conn_drop_identity(c);
    goto out; /* NOT_AUTHENTICATED */
  }
  r->info.token = t;
  r->info.flags |= GH_AUTH_FLAG_TOKEN_FOR_CACHED_CRED;
  r->info.status = GH_AUTH_STATUS_SUCCESS;
  r->info.type = c->type;
  r->info.package_name = c->package;
  r->info.context_attributes = c->ret_flags;
  r->info.expiry = c->expiry;
  if (gh__auth_result_set_users(r, c->remote_user, c->local_user) != 0) {
    e->ops.close(t);
    memset(&r->info, 0, sizeof(r->info));
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  maybe_s4u(e, r, site, r->info.local_user);
out:
  return;
}

/* No Authorization (item 1): Peer on a unix socket of a site that offers
 * it, else the persisted identity while the site's persist covers it and it
 * has not expired (dropped otherwise); else NOT_AUTHENTICATED, as *r is. */
static void step_no_header(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                           const gh__auth_transport_t *tp, gh__auth_result_t *r)
{
  if (tp->kind == GH__AUTH_TRANSPORT_UNIX && (site->schemes & GH_AUTH_SCHEME_PEER) &&
      tp->unix_fd >= 0)
    gh__auth_step_peer(e, c, site, tp->unix_fd, r);
  else if (c->token && persist_applies(site, c->package) &&
           (c->expiry == 0 || time(NULL) < c->expiry))
    deliver_persisted(e, c, site, r);
  else if (c->token)
    conn_drop_identity(c);
}

int gh__auth_step(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                  const gh__auth_transport_t *tp, const char *authz, size_t authz_len,
                  gh__auth_result_t *r)
{
  return gh__auth_step_tls(e, c, site, tp, NULL, 0, authz, authz_len, r);
}

int gh__auth_step_tls(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                      const gh__auth_transport_t *tp, const void *cbt, size_t cbt_len,
                      const char *authz, size_t authz_len, gh__auth_result_t *r)
{
  size_t max_tok, cred_len = 0, scheme_len = 0, dec_len = 0;
  const char *cred = NULL, *scheme_name = NULL;
  gh__auth_scheme_id_t scheme = GH__AUTH_SCHEME_UNKNOWN;
  unsigned char *dec = NULL;
  int ret = 0;

  if (!e || !c || !site || !tp || !r) {
    ret = -EINVAL;
    goto out;
  }
  memset(r, 0, sizeof(*r));
  r->log_cb = e->log_cb;
  r->log_arg = e->log_arg;
  r->verdict = GH__AUTH_DELIVER;
  r->info.status = GH_AUTH_STATUS_NOT_AUTHENTICATED;
  r->info.type = GH_AUTH_TYPE_NONE;
  max_tok = site->max_token_size ? site->max_token_size : GH_AUTH_MAX_TOKEN_DEFAULT;

  if (!authz) {
    step_no_header(e, c, site, tp, r);
    goto out;
  }

  ret = gh__auth_parse_header(authz, authz_len, gh__b64_encoded_len(max_tok) + 4, &scheme,
                              &scheme_name, &scheme_len, &cred, &cred_len);
  if (ret) {
    gh__auth_set_verdict(r, GH__AUTH_BAD_REQUEST, ret);
    ret = 0;
    goto out;
  }
  if (!scheme_offered(scheme, site, tp))
    goto out; /* not ours (or not offered here): the application sees NOT_AUTHENTICATED */
  if (cred_len == 0) {
    gh__auth_set_verdict(r, GH__AUTH_BAD_REQUEST, GH_EPARSE);
    goto out;
  }
  /* a new Authorization on a persisted connection is always verified */
  conn_drop_identity(c);
  if (scheme == GH__AUTH_SCHEME_BASIC &&
      gh__auth_step_basic_memo(e, c, site, cred, cred_len, max_tok, r))
    goto out;
  if (scheme != GH__AUTH_SCHEME_BASIC)
    gh__auth_basic_memo_clear(c);
  dec = gh__malloc(gh__b64_decoded_max(cred_len));
  if (!dec) {
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  ret = gh__b64_decode(cred, cred_len, dec, &dec_len);
  if (ret || dec_len == 0 || dec_len > max_tok) {
    gh__auth_set_verdict(r, GH__AUTH_BAD_REQUEST, ret ? ret : dec_len ? GH_ELIMIT : GH_EPARSE);
    ret = 0;
    goto out;
  }
  if (scheme == GH__AUTH_SCHEME_BASIC)
    gh__auth_step_basic(e, c, site, cred, cred_len, dec, dec_len, r);
  else
    gh__auth_step_gss(e, c, site, cbt, cbt_len, scheme, dec, dec_len, r);
out:
  if (dec) {
    explicit_bzero(dec, gh__b64_decoded_max(cred_len));
    free(dec);
  }
  return ret;
}

/* authz.c: URL authorization module — `require` rules per site and sub-path, 401 anonymous / 403 denied. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "authz_rules.h"

GH_MODULE_DEFINE("authz");

#define AUTHZ_MAX_LISTS 64

/* What in_role needs to answer and to log. */
typedef struct authz_who {
  gh_http_user_t *user;
  gh_http_context_t *ctx;
} authz_who_t;

/* Group membership through the server (the sec layer asks NSS, cached).
 * Each doubtful answer gets a log line: "no such group" (a rule may name a
 * misspelt or deleted group) and "could not decide" (the request then gets
 * 503, never a silent yes or no). */
static authz_member_t in_role(void *data, const char *group)
{
  authz_who_t *w = data;
  gh_membership_t m = GH_MEMBER_UNKNOWN;
  int rc = gh_http_user_is_in_role(w->user, group, &m);
  if (rc < 0) {
    gh_module_server_log(gh_http_context_get_server(w->ctx), GH_LOG_ERROR,
                         "authz: cannot decide whether %s is in group '%s': %s "
                         "(fails closed: 503 unless another rule settles the request)",
                         gh_http_user_get_name(w->user), group, gh_strerror(rc));
    return AUTHZ_UNKNOWN;
  }
  if (rc == GH_MEMBER_NO_SUCH_GROUP)
    gh_module_server_log(gh_http_context_get_server(w->ctx), GH_LOG_WARNING,
                         "authz: no group named '%s': %s is not a member", group,
                         gh_http_user_get_name(w->user));
  return m == GH_MEMBER_YES ? AUTHZ_YES : m == GH_MEMBER_NO ? AUTHZ_NO : AUTHZ_UNKNOWN;
}

/* Collects `require` values: the site's, then `require /sub` keys whose
 * path is a prefix of the request path, shortest (parent) first. */
static size_t collect(gh_http_context_t *ctx, const char *rel, const char **lists)
{
  size_t n = 0;
  const char *v;
  for (size_t i = 0; n < AUTHZ_MAX_LISTS && (v = gh_http_context_get_site_config_n(ctx, "require", i)); i++)
    lists[n++] = v;
  for (size_t depth = 1; depth < 4096 && n < AUTHZ_MAX_LISTS; ) {
    /* find the next longer prefix of rel: walk segment boundaries */
    size_t next = depth;
    while (rel[next] != '\0' && rel[next] != '/')
      next++;
    if (next == depth && rel[next] == '\0')
      break;
    {
      char key[4200];
      size_t k;
      memcpy(key, "require ", 8);
      memcpy(key + 8, rel, next);
      key[8 + next] = '\0';
      for (k = 0; n < AUTHZ_MAX_LISTS && (v = gh_http_context_get_site_config_n(ctx, key, k)); k++)
        lists[n++] = v;
    }
    if (rel[next] == '\0')
      break;
    depth = next + 1;
  }
  return n;
}

static gh_request_status_t on_authorize(void *module, gh_http_context_t *ctx,
                                        gh_event_provider_t *prov)
{
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_user_t *user = gh_http_context_get_user(ctx);
  const char *site = gh_http_context_get_site_path(ctx);
  const char *path = gh_http_request_get_path(req);
  const char *lists[AUTHZ_MAX_LISTS];
  const char *rel = path;
  size_t n, slen = strlen(site);
  authz_subject_t who;
  authz_who_t w = {.user = user, .ctx = ctx};
  authz_verdict_t v;
  int status;
  (void)module;
  (void)prov;
  if (slen > 1 && strncmp(path, site, slen) == 0)
    rel = path + slen;
  if (*rel == '\0')
    rel = "/";
  if (strlen(rel) >= 4096)
    goto deny;
  n = collect(ctx, rel, lists);
  if (n == 0)
    return GH_REQUEST_CONTINUE; /* no rules: the module stays out of the way */
  who.name = gh_http_user_get_name(user);
  who.local = gh_http_user_get_local_name(user);
  who.anonymous = who.name == NULL || who.name[0] == '\0';
  who.method = gh_http_request_get_method(req);
  who.in_role = in_role;
  who.data = &w;
  v = authz_evaluate(lists, n, &who);
  if (v == AUTHZ_ALLOW)
    return GH_REQUEST_CONTINUE;
  if (v == AUTHZ_UNDECIDED) {
    /* the server could not decide (logged in in_role): not the client's
     * fault, and not a yes */
    status = 503;
    goto send;
  }
deny:
  /* 401 lets an anonymous client authenticate (the server adds the
   * challenges of the site); an authenticated one gets 403 */
  status = gh_http_user_get_name(user)[0] ? 403 : 401;
send:
  gh_http_response_send_error(gh_http_context_get_response(ctx), status, NULL);
  return GH_REQUEST_FINISH;
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_authorize_request = on_authorize};
  (void)server_version;
  (void)server;
  return gh_module_registration_set_factory(reg, &f);
}

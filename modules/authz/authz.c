/* authz.c: URL authorization module — `require` rules per site and sub-path, 401 anonymous / 403
 * denied. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

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

/* A sid: rule: the token's own SIDs answer (user SID or a group SID from
 * the verified PAC or the DC). A token without SIDs (MIT realm, Basic,
 * peers) is not a member; no token to ask (a custom user, the request
 * ended) cannot be decided. */
static authz_member_t has_sid(void *data, const char *sid)
{
  authz_who_t *w = data;
  gh_token_t t = gh_http_user_get_impersonation_token(w->user);
  bool member = false;
  int rc = t ? gh_token_has_sid(t, sid, &member) : GH_EINVALID_HANDLE;
  if (rc != 0) {
    gh_module_server_log(gh_http_context_get_server(w->ctx), GH_LOG_ERROR,
                         "authz: cannot decide whether %s has SID %s: %s "
                         "(fails closed: 503 unless another rule settles the request)",
                         gh_http_user_get_name(w->user), sid, gh_strerror(rc));
    return AUTHZ_UNKNOWN;
  }
  return member ? AUTHZ_YES : AUTHZ_NO;
}

/* The site's require rules, read once per site and configuration
 * (gh_http_context_get_site_data; a reload builds anew): the site's own
 * values, then each `require /sub` path with its values, shortest first. */
typedef struct authz_sub {
  const char *path; /* "/sub/path" */
  size_t len;
  size_t first, n; /* its values: values[first..first+n) */
  bool bad;        /* a value could not be read: its requests are refused */
} authz_sub_t;

typedef struct authz_site {
  bool bad; /* a site value could not be read: every request is refused */
  size_t n_site, n_subs, n_values;
  authz_sub_t *subs;
  const char **values; /* the site's first, then each sub's */
} authz_site_t;

static int authz_module_id = -1;

static void site_free(void *data)
{
  authz_site_t *a = data;
  if (a != NULL) {
    free(a->subs);
    free(a->values);
    free(a);
  }
}

/* Appends the values of key to a->values; false when one cannot be read
 * (the requests it governs must then fail: never fewer rules), -ENOMEM in
 * *ret. */
static bool read_values(gh_http_context_t *ctx, const char *key, authz_site_t *a, int *ret)
{
  const char *v;
  int rc;
  for (size_t i = 0; (rc = gh_http_context_get_config_string(ctx, key, i, &v)) == 0; i++) {
    const char **nv = realloc(a->values, (a->n_values + 1) * sizeof(*nv));
    if (nv == NULL) {
      *ret = -ENOMEM;
      return true;
    }
    a->values = nv;
    a->values[a->n_values++] = v;
  }
  return rc == GH_ENOT_FOUND;
}

/* The `require /sub` paths of the site with their values, sorted by
 * length (the matches of one path are its prefixes: parent first). */
static int read_subs(gh_http_context_t *ctx, authz_site_t *a)
{
  const char *path;
  int ret = 0;
  for (size_t i = 0; ret == 0 && gh_http_context_get_config_subpath(ctx, "require", i, &path) == 0;
       i++) {
    authz_sub_t *ns = realloc(a->subs, (a->n_subs + 1) * sizeof(*ns)), sub;
    char key[4200];
    size_t j;
    if (ns == NULL)
      return -ENOMEM;
    a->subs = ns;
    sub = (authz_sub_t){.path = path, .len = strlen(path), .first = a->n_values};
    if (sub.len >= 4096)
      continue; /* longer than any path a request may have */
    snprintf(key, sizeof(key), "require %s", path);
    sub.bad = !read_values(ctx, key, a, &ret);
    sub.n = a->n_values - sub.first;
    for (j = a->n_subs++; j > 0 && a->subs[j - 1].len > sub.len; j--)
      a->subs[j] = a->subs[j - 1];
    a->subs[j] = sub;
  }
  return ret;
}

static int site_build(gh_http_context_t *ctx, void **ret_data)
{
  authz_site_t *a = calloc(1, sizeof(*a));
  int ret = 0;
  if (a == NULL)
    return -ENOMEM;
  a->bad = !read_values(ctx, "require", a, &ret);
  a->n_site = a->n_values;
  if (ret == 0)
    ret = read_subs(ctx, a);
  if (ret < 0)
    site_free(a); /* not kept: the next request builds again */
  else
    *ret_data = a;
  return ret;
}

/* Whether the rules of sub apply to rel: sub is rel, or a parent of it (a
 * prefix ending at a segment boundary; "/a/" governs "/a//b", not "/a/"). */
static bool sub_applies(const authz_sub_t *sub, const char *rel)
{
  char next;
  if (strncmp(rel, sub->path, sub->len) != 0)
    return false;
  next = rel[sub->len];
  return next == '/' || (next == '\0' && sub->path[sub->len - 1] != '/');
}

/* Collects the lists that govern rel: the site's, then those of each
 * `require /sub` whose path is a prefix of it, shortest (parent) first.
 * Returns the count, or -1 when a value could not be read. */
static ssize_t collect(const authz_site_t *a, const char *rel, const char **lists)
{
  size_t n = 0;
  if (a->bad)
    return -1;
  for (size_t i = 0; i < a->n_site && n < AUTHZ_MAX_LISTS; i++)
    lists[n++] = a->values[i];
  for (size_t s = 0; s < a->n_subs && n < AUTHZ_MAX_LISTS; s++) {
    const authz_sub_t *sub = &a->subs[s];
    if (!sub_applies(sub, rel))
      continue;
    if (sub->bad)
      return -1;
    for (size_t i = 0; i < sub->n && n < AUTHZ_MAX_LISTS; i++)
      lists[n++] = a->values[sub->first + i];
  }
  return (ssize_t)n;
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
  size_t slen = strlen(site);
  ssize_t n;
  authz_subject_t who;
  authz_who_t w = {.user = user, .ctx = ctx};
  authz_verdict_t v;
  void *data = NULL;
  int status, rc;
  (void)module;
  (void)prov;
  if (slen > 1 && strncmp(path, site, slen) == 0)
    rel = path + slen;
  if (*rel == '\0')
    rel = "/";
  if (strlen(rel) >= 4096)
    goto deny;
  rc = gh_http_context_get_site_data(ctx, authz_module_id, site_build, site_free, &data);
  n = rc == 0 ? collect(data, rel, lists) : -1;
  if (n == 0)
    return GH_REQUEST_CONTINUE; /* no rules: the module stays out of the way */
  if (n < 0) {
    /* a rule that did not pass its check at load, or no memory: refuse */
    gh_module_server_log(gh_http_context_get_server(ctx), GH_LOG_ERROR,
                         "authz: cannot read the require rules of site %s for %s: %s (500)", site,
                         path, rc < 0 ? gh_strerror(rc) : "a value failed its check");
    status = 500;
    goto send;
  }
  who.name = gh_http_user_get_name(user);
  who.local = gh_http_user_get_local_name(user);
  who.anonymous = who.name == NULL || who.name[0] == '\0';
  who.method = gh_http_request_get_method(req);
  who.in_role = in_role;
  who.has_sid = has_sid;
  who.data = &w;
  v = authz_evaluate(lists, (size_t)n, &who);
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

/* A require value's rules must all parse: checked when the configuration
 * is loaded, so a typo is an error naming its line, not a silent deny. */
static int check_rules(const char *key, const char *value, char *why, size_t whylen)
{
  size_t bad = 0;
  (void)key;
  if (authz_check(value, &bad) == 0)
    return 0;
  snprintf(why, whylen,
           "malformed rule '%.*s' (expected [allow:|deny:]WHO[:VERBS], WHO one of * ? "
           "valid-user user:NAME group:NAME sid:S-1-...)",
           (int)strcspn(value + bad, " \t,"), value + bad);
  return -EINVAL;
}

/* require = RULES and require /sub/path = RULES in [site] sections */
static const gh_module_key_t keys[] = {
    {.name = "require",
     .type = GH_CONFIG_STRING,
     .flags = GH_CONFIG_SITE | GH_CONFIG_REPEATABLE | GH_CONFIG_SUBPATH,
     .check = check_rules},
};

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_authorize_request = on_authorize};
  int ret;
  (void)server_version;
  (void)server;
  ret = gh_module_registration_set_factory(reg, &f);
  if (ret == 0)
    ret = GH_MODULE_CONFIG_KEYS(reg, keys);
  if (ret == 0)
    authz_module_id = gh_module_registration_get_id(reg);
  return ret;
}

/* servervars.c: server variables (AUTH_TYPE, AUTH_USER, REMOTE_USER, LOGON_USER, REMOTE_ADDR ...). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"

static const char *num(gh_http_context_t *ctx, long long v)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "%lld", v);
  return gh__pool_strdup(ctx->pool, buf);
}

/* HTTP_ACCEPT_LANGUAGE -> Accept-Language matching (case-insensitive, '_' = '-'). */
static const char *http_header_var(gh_http_context_t *ctx, const char *suffix)
{
  size_t n = gh_http_request_get_header_count(&ctx->request);
  for (size_t i = 0; i < n; i++) {
    const char *name, *value;
    size_t k;
    if (gh_http_request_get_header_at(&ctx->request, i, &name, &value) < 0)
      continue;
    for (k = 0; name[k] && suffix[k]; k++) {
      char a = (char)toupper((unsigned char)name[k]);
      char b = suffix[k];
      if (a == '-')
        a = '_';
      if (a != b)
        break;
    }
    if (name[k] == '\0' && suffix[k] == '\0')
      return value;
  }
  return NULL;
}

int gh_http_context_get_server_variable(gh_http_context_t *ctx, const char *name,
                                        const char **ret_value)
{
  int ret = 0;
  const char *v = NULL;
  const gh__pl_reqinfo_t *in;
  if (ctx == NULL || name == NULL || ret_value == NULL) {
    ret = -EINVAL;
    goto out;
  }
  in = &ctx->info;
  if (strcmp(name, "AUTH_TYPE") == 0) {
    v = gh_http_user_get_auth_type(ctx->user);
  } else if (strcmp(name, "AUTH_USER") == 0 || strcmp(name, "REMOTE_USER") == 0) {
    /* the name as sent / authenticated (IIS: AUTH_USER = REMOTE_USER) */
    v = gh_http_user_get_name(ctx->user);
  } else if (strcmp(name, "LOGON_USER") == 0) {
    /* the local account the request's token impersonates */
    v = gh_http_user_get_local_name(ctx->user);
  } else if (strcmp(name, "AUTH_PACKAGE") == 0) {
    v = (in->auth && in->auth->status == GH_AUTH_STATUS_SUCCESS && in->auth->package_name)
            ? in->auth->package_name
            : "";
  } else if (strcmp(name, "AUTH_SESSION") == 0) {
    /* "cookie": the identity came from the site's session cookie */
    v = (in->auth && in->auth->status == GH_AUTH_STATUS_SUCCESS &&
         (in->auth->flags & GH_AUTH_FLAG_SESSION))
            ? "cookie"
            : "";
  } else if (strcmp(name, "REMOTE_ADDR") == 0 || strcmp(name, "REMOTE_HOST") == 0) {
    v = in->remote_addr ? in->remote_addr : "";
  } else if (strcmp(name, "REMOTE_PORT") == 0) {
    v = num(ctx, in->remote_port);
  } else if (strcmp(name, "LOCAL_ADDR") == 0) {
    v = in->local_addr ? in->local_addr : "";
  } else if (strcmp(name, "SERVER_PORT") == 0) {
    v = num(ctx, in->local_port);
  } else if (strcmp(name, "SERVER_NAME") == 0) {
    v = in->host ? in->host : (in->local_addr ? in->local_addr : "localhost");
  } else if (strcmp(name, "SERVER_PROTOCOL") == 0) {
    v = in->version == 10 ? "HTTP/1.0" : "HTTP/1.1";
  } else if (strcmp(name, "SERVER_SOFTWARE") == 0) {
    v = "gatehouse/" GH_VERSION_STRING;
  } else if (strcmp(name, "GATEWAY_INTERFACE") == 0) {
    v = "CGI/1.1";
  } else if (strcmp(name, "REQUEST_METHOD") == 0) {
    v = in->method;
  } else if (strcmp(name, "URL") == 0 || strcmp(name, "PATH_INFO") == 0) {
    v = in->path;
  } else if (strcmp(name, "UNENCODED_URL") == 0 || strcmp(name, "REQUEST_URI") == 0) {
    v = in->url;
  } else if (strcmp(name, "QUERY_STRING") == 0) {
    v = in->query ? in->query : "";
  } else if (strcmp(name, "SCRIPT_NAME") == 0 || strcmp(name, "SITE_PATH") == 0) {
    v = ctx->site_path;
  } else if (strcmp(name, "CONTENT_TYPE") == 0) {
    v = gh_http_request_get_header(&ctx->request, "Content-Type");
    if (v == NULL)
      v = "";
  } else if (strcmp(name, "CONTENT_LENGTH") == 0) {
    v = in->content_length >= 0 ? num(ctx, in->content_length) : "";
  } else if (strcmp(name, "HTTPS") == 0) {
    v = in->is_tls ? "on" : "off";
  } else if (strncmp(name, "HTTP_", 5) == 0) {
    v = http_header_var(ctx, name + 5);
  }
  if (v == NULL) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  *ret_value = v;
out:
  return ret;
}

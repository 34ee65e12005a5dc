/* request.c: gh_http_request_t — request facts, modifiable headers, body reads with READ_ENTITY. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/str.h"

int gh__pl_request_init(gh_http_request_t *req, gh_http_context_t *ctx)
{
  int ret = 0;
  size_t n = ctx->src_ops->header_count(ctx->src);
  gh__pl_header_t **tail = &req->headers;
  gh__pl_header_t *hs = NULL;
  req->ctx = ctx;
  /* one array for the lot (set_header unlinks and links single ones) */
  if (n > 0 &&
      (n > SIZE_MAX / sizeof(*hs) || (hs = gh__pool_alloc(ctx->pool, n * sizeof(*hs))) == NULL)) {
    ret = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const char *name, *value;
    gh__pl_header_t *h = &hs[req->n_headers];
    if (ctx->src_ops->header_at(ctx->src, i, &name, &value) < 0)
      continue;
    /* borrowed from the source, which lives as long as the request */
    *h = (gh__pl_header_t){.name = (char *)name, .value = (char *)value};
    *tail = h;
    tail = &h->next;
    req->n_headers++;
  }
out:
  return ret;
}

const char *gh_http_request_get_method(gh_http_request_t *req)
{
  return req->ctx->info.method;
}

const char *gh_http_request_get_url(gh_http_request_t *req)
{
  return req->ctx->info.url;
}

const char *gh_http_request_get_path(gh_http_request_t *req)
{
  return req->ctx->info.path;
}

const char *gh_http_request_get_query(gh_http_request_t *req)
{
  return req->ctx->info.query ? req->ctx->info.query : "";
}

int gh_http_request_get_version(gh_http_request_t *req)
{
  return req->ctx->info.version;
}

const char *gh_http_request_get_header(gh_http_request_t *req, const char *name)
{
  if (req == NULL || name == NULL)
    return NULL;
  for (gh__pl_header_t *h = req->headers; h != NULL; h = h->next)
    if (gh__name_eq(h->name, name))
      return h->value;
  return NULL;
}

size_t gh_http_request_get_header_count(gh_http_request_t *req)
{
  return req ? req->n_headers : 0;
}

int gh_http_request_get_header_at(gh_http_request_t *req, size_t i, const char **ret_name,
                                  const char **ret_value)
{
  gh__pl_header_t *h;
  if (req == NULL)
    return -EINVAL;
  for (h = req->headers; h != NULL && i > 0; h = h->next)
    i--;
  if (h == NULL)
    return -ENOENT;
  *ret_name = h->name;
  *ret_value = h->value;
  return 0;
}

int gh_http_request_set_header(gh_http_request_t *req, const char *name, const char *value)
{
  int ret = 0;
  gh__pl_header_t **pp, *h;
  gh__pool_t *pool;
  if (req == NULL || name == NULL || *name == '\0' || strpbrk(name, "\r\n: ") ||
      (value && strpbrk(value, "\r\n"))) {
    ret = -EINVAL;
    goto out;
  }
  pool = req->ctx->pool;
  pp = &req->headers;
  while (*pp != NULL) {
    if (gh__name_eq((*pp)->name, name)) {
      *pp = (*pp)->next;
      req->n_headers--;
    } else {
      pp = &(*pp)->next;
    }
  }
  if (value == NULL)
    goto out;
  h = gh__pool_calloc(pool, 1, sizeof(*h));
  if (h == NULL || (h->name = gh__pool_strdup(pool, name)) == NULL ||
      (h->value = gh__pool_strdup(pool, value)) == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  *pp = h;
  req->n_headers++;
out:
  return ret;
}

int64_t gh_http_request_get_content_length(gh_http_request_t *req)
{
  return req->ctx->info.content_length;
}

ssize_t gh_http_request_read_body(gh_http_request_t *req, void *buf, size_t len)
{
  gh_http_context_t *ctx = req->ctx;
  ssize_t n = ctx->src_ops->read_body(ctx->src, buf, len);
  if (n > 0) {
    gh_event_provider_t prov = {.notification = GH_NOTIFY_READ_ENTITY,
                                .ctx = ctx,
                                .entity = buf,
                                .entity_len = (size_t)n};
    if (gh__pl_raise_nested(ctx, &prov) > 0)
      n = -EPERM;
  }
  return n;
}

const char *gh_http_request_get_remote_addr(gh_http_request_t *req)
{
  return req->ctx->info.remote_addr ? req->ctx->info.remote_addr : "";
}

int gh_http_request_get_remote_port(gh_http_request_t *req)
{
  return req->ctx->info.remote_port;
}

int gh_http_request_get_peer_creds(gh_http_request_t *req, pid_t *ret_pid, uid_t *ret_uid,
                                   gid_t *ret_gid)
{
  const gh__pl_reqinfo_t *i = &req->ctx->info;
  if (!i->has_peer_creds)
    return GH_ENOT_FOUND;
  if (ret_pid)
    *ret_pid = i->peer_pid;
  if (ret_uid)
    *ret_uid = i->peer_uid;
  if (ret_gid)
    *ret_gid = i->peer_gid;
  return 0;
}

bool gh_http_request_is_tls(gh_http_request_t *req)
{
  return req->ctx->info.is_tls;
}

const char *gh_http_request_get_delegated_mem_ccache(gh_http_request_t *req)
{
  gh_http_context_t *ctx = req != NULL ? req->ctx : NULL;
  if (ctx == NULL || ctx->src_ops->delegated_mem_ccache == NULL || ctx->auth_token == 0)
    return NULL;
  return ctx->src_ops->delegated_mem_ccache(ctx->src);
}

const char *gh_http_request_get_delegated_ccache(gh_http_request_t *req)
{
  gh_http_context_t *ctx = req->ctx;
  const char *uid_s, *gid_s;
  if (ctx->src_ops->delegated_ccache == NULL || ctx->user == NULL || ctx->auth_token == 0)
    return NULL;
  uid_s = gh_http_user_get_variable(ctx->user, "uid");
  gid_s = gh_http_user_get_variable(ctx->user, "gid");
  if (uid_s == NULL || gid_s == NULL)
    return NULL;
  return ctx->src_ops->delegated_ccache(ctx->src, (uid_t)strtoul(uid_s, NULL, 10),
                                        (gid_t)strtoul(gid_s, NULL, 10));
}

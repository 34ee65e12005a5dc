/* upgrade.c: gh_http_stream_t and the relaying calls of ABI 2.2 — 1xx interim responses,
 * client_gone, Upgrade. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/str.h"

struct gh_http_stream {
  const gh__pl_source_ops_t *ops;
  void *h; /* the source's stream */
};

int gh_http_response_send_interim(gh_http_response_t *resp, int status, const char *const *hdrs,
                                  size_t n)
{
  if (resp == NULL)
    return -EINVAL;
  gh_http_context_t *ctx = resp->ctx;
  if (resp->headers_sent || resp->final_sent)
    return GH_ESTATE;
  if (ctx->src_ops->send_interim == NULL)
    return GH_EUNSUPPORTED;
  return ctx->src_ops->send_interim(ctx->src, status, hdrs, n);
}

int gh_http_context_client_gone(gh_http_context_t *ctx)
{
  if (ctx == NULL || ctx->src_ops->client_gone == NULL)
    return 0;
  return ctx->src_ops->client_gone(ctx->src);
}

/* The response's status and fields go to the source (Connection is the
 * source's to write). */
static int give_head(gh_http_context_t *ctx)
{
  gh_http_response_t *resp = &ctx->response;
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  int ret = ops->set_status(ctx->src, resp->status, resp->reason);
  for (gh__pl_header_t *h = resp->headers; h != NULL && ret == 0; h = h->next)
    if (!gh__name_eq(h->name, "Connection"))
      ret = ops->add_header(ctx->src, h->name, h->value);
  return ret;
}

int gh_http_context_upgrade(gh_http_context_t *ctx, gh_http_stream_t **ret)
{
  int e = 0;
  void *h = NULL;
  gh_http_stream_t *st = NULL;
  if (ctx == NULL || ret == NULL)
    return -EINVAL;
  gh_http_response_t *resp = &ctx->response;
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  if (ops->upgrade == NULL)
    return GH_EUNSUPPORTED;
  if (resp->headers_sent || resp->final_sent || resp->status != 101 || ctx->info.version != 11 ||
      !gh__list_has_token(gh_http_request_get_header(&ctx->request, "Connection"), "upgrade") ||
      gh_http_request_get_header(&ctx->request, "Upgrade") == NULL)
    return GH_ESTATE; /* nothing sent */
  st = gh_http_context_alloc(ctx, sizeof(*st));
  if (st == NULL)
    return -ENOMEM;
  (void)gh__pl_raise_send_response(ctx, GH_SEND_RESPONSE_FLAG_HEADERS);
  resp->headers_sent = resp->final_sent = true; /* never another head */
  e = give_head(ctx);
  if (e == 0)
    e = ops->upgrade(ctx->src, &h);
  if (e == GH_ESTATE || e == -ENOMEM) {
    /* nothing went out (an unread body...): the request ends in a 500 */
    (void)ops->set_status(ctx->src, 500, NULL);
    (void)ops->send(ctx->src, NULL, 0, GH__PL_SEND_DISCONNECT);
  }
  if (e != 0)
    goto out;
  st->ops = ops;
  st->h = h;
  *ret = st;
out:
  return e;
}

ssize_t gh_http_stream_read(gh_http_stream_t *s, void *buf, size_t len, int timeout_ms)
{
  return s->ops->stream_read(s->h, buf, len, timeout_ms);
}

int gh_http_stream_write(gh_http_stream_t *s, const void *buf, size_t len, int timeout_ms)
{
  return s->ops->stream_write(s->h, buf, len, timeout_ms);
}

int gh_http_stream_get_fd(const gh_http_stream_t *s)
{
  return s->ops->stream_get_fd(s->h);
}

size_t gh_http_stream_pending(const gh_http_stream_t *s)
{
  return s->ops->stream_pending(s->h);
}

int gh_http_stream_shutdown_write(gh_http_stream_t *s)
{
  return s->ops->stream_shutdown_write(s->h);
}

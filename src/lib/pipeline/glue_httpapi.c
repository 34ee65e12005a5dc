/* glue_httpapi.c: runs the pipeline over an httpapi gh_request_t (gh_pipeline_process). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/module.h>

#include "httpapi/glue.h"
#include "pipeline/pipeline_int.h"
#include "util/alloc.h"

typedef struct glue {
  gh_request_t *req;
  char host[256];
  void (*wcb)(int result, void *arg); /* the pipeline's wait callback */
  void *warg;
} glue_t;

static int g_describe(void *src, gh__pl_reqinfo_t *in)
{
  glue_t *g = src;
  const gh_conn_info_t *ci = gh_request_get_conn_info(g->req);
  const char *host = gh_request_get_header(g->req, "Host");
  bool cl = gh__request_has_content_length(g->req);
  gh__request_addrs_t ad;
  /* in: zeroed by the caller (the context's, fresh) */
  in->method = gh_request_get_method(g->req);
  in->url = gh_request_get_url(g->req);
  in->path = gh_request_get_path(g->req);
  in->query = gh_request_get_query(g->req);
  in->version = gh_request_get_version(g->req);
  size_t blen = gh_request_get_body_length(g->req); /* SIZE_MAX: streamed chunked */
  in->content_length = cl ? (int64_t)blen : -1;
  if (!cl && blen > 0 && blen != SIZE_MAX)
    in->content_length = (int64_t)blen;
  gh__request_get_addrs(g->req, &ad); /* formatted once per connection */
  in->remote_addr = ad.remote;
  in->local_addr = ad.local;
  in->remote_port = ad.remote_port;
  in->local_port = ad.local_port;
  if (ci != NULL) {
    in->is_unix = ci->transport == GH_TRANSPORT_UNIX;
    if (ci->flags & GH_CONN_HAS_CRED) {
      in->has_peer_creds = true;
      in->peer_pid = ci->peer_pid;
      in->peer_uid = ci->peer_uid;
      in->peer_gid = ci->peer_gid;
    }
  }
  if (host != NULL) {
    size_t n = strcspn(host, host[0] == '[' ? "]" : ":");
    if (host[0] == '[' && host[n] == ']')
      n++;
    if (n >= sizeof(g->host))
      n = sizeof(g->host) - 1;
    memcpy(g->host, host, n);
    g->host[n] = '\0';
    in->host = g->host;
  }
  in->auth = gh_request_get_auth_info(g->req); /* NULL: the site has no auth */
  return 0;
}

static size_t g_header_count(void *src)
{
  return gh_request_get_header_count(((glue_t *)src)->req);
}

static int g_header_at(void *src, size_t i, const char **n, const char **v)
{
  return gh_request_get_header_at(((glue_t *)src)->req, i, n, v);
}

static ssize_t g_read_body(void *src, void *buf, size_t len)
{
  return gh_request_read_body(((glue_t *)src)->req, buf, len);
}

static int g_set_status(void *src, int status, const char *reason)
{
  /* reason: the pipeline context's, which outlives the request */
  return gh__response_set_status_borrowed(((glue_t *)src)->req, status, reason);
}

static int g_add_header(void *src, const char *name, const char *value)
{
  return gh_response_add_header(((glue_t *)src)->req, name, value);
}

static int g_add_header_n(void *src, const char *name, size_t nlen, const char *value, size_t vlen)
{
  return gh__response_add_header_checked(((glue_t *)src)->req, name, nlen, value, vlen);
}

static unsigned g_flags(unsigned flags)
{
  return ((flags & GH__PL_SEND_MORE) ? GH_SEND_MORE_DATA : 0) |
         ((flags & GH__PL_SEND_DISCONNECT) ? GH_SEND_DISCONNECT : 0);
}

static int g_send(void *src, const void *data, size_t len, unsigned flags)
{
  return gh_response_send(((glue_t *)src)->req, data, len, g_flags(flags));
}

static int g_send_fd(void *src, int fd, off_t off, size_t len, unsigned flags)
{
  return gh_response_send_fd(((glue_t *)src)->req, fd, off, len, g_flags(flags));
}

static int g_complete(void *src)
{
  /* g is the request's memory: it goes with it */
  return gh_request_complete(((glue_t *)src)->req);
}

static void g_auth_token_closed(void *src, gh_token_t token)
{
  gh__request_auth_token_closed(((glue_t *)src)->req, token);
}

static const char *g_ccache(void *src, uid_t uid, gid_t gid)
{
  const char *name = NULL;
  if (gh_request_get_delegated_ccache(((glue_t *)src)->req, uid, gid, &name) < 0)
    return NULL;
  return name;
}

static int g_send_interim(void *src, int status, const char *const *hdrs, size_t n)
{
  return gh_request_send_interim(((glue_t *)src)->req, status, hdrs, n);
}

static int g_client_gone(void *src)
{
  return gh_request_client_gone(((glue_t *)src)->req);
}

static int g_upgrade(void *src, void **ret_stream)
{
  gh_stream_t *st = NULL;
  int ret = gh_request_upgrade(((glue_t *)src)->req, &st);
  if (ret == 0)
    *ret_stream = st;
  return ret;
}

static ssize_t g_stream_read(void *st, void *buf, size_t len, int timeout_ms)
{
  return gh_stream_read(st, buf, len, timeout_ms);
}

static int g_stream_write(void *st, const void *buf, size_t len, int timeout_ms)
{
  return gh_stream_write(st, buf, len, timeout_ms);
}

static int g_stream_get_fd(const void *st)
{
  return gh_stream_get_fd(st);
}

static size_t g_stream_pending(const void *st)
{
  return gh_stream_pending(st);
}

static int g_stream_shutdown_write(void *st)
{
  return gh_stream_shutdown_write(st);
}

static const char *g_mem_ccache(void *src)
{
  return gh_request_get_delegated_mem_ccache(((glue_t *)src)->req);
}

static int g_can_wait(void *src)
{
  return gh_request_can_wait(((glue_t *)src)->req);
}

static void g_waited(gh_request_t *req, int result, void *arg)
{
  glue_t *g = arg;
  (void)req;
  g->wcb(result, g->warg);
}

static int g_wait_fd(void *src, int fd, uint64_t key, unsigned events, int timeout_ms,
                     void (*cb)(int result, void *arg), void *arg)
{
  glue_t *g = src;
  unsigned ev = ((events & GH_HTTP_WAIT_IN) ? GH_WAIT_IN : 0) |
                ((events & GH_HTTP_WAIT_OUT) ? GH_WAIT_OUT : 0);
  g->wcb = cb;
  g->warg = arg;
  return gh_request_wait_kept(g->req, fd, key, ev, timeout_ms, g_waited, g);
}

static const gh__pl_source_ops_t glue_ops = {
    .describe = g_describe,
    .header_count = g_header_count,
    .header_at = g_header_at,
    .read_body = g_read_body,
    .set_status = g_set_status,
    .add_header = g_add_header,
    .add_header_n = g_add_header_n,
    .send = g_send,
    .send_fd = g_send_fd,
    .complete = g_complete,
    .delegated_ccache = g_ccache,
    .send_interim = g_send_interim,
    .client_gone = g_client_gone,
    .upgrade = g_upgrade,
    .stream_read = g_stream_read,
    .stream_write = g_stream_write,
    .stream_get_fd = g_stream_get_fd,
    .stream_pending = g_stream_pending,
    .stream_shutdown_write = g_stream_shutdown_write,
    .delegated_mem_ccache = g_mem_ccache,
    .can_wait = g_can_wait,
    .wait_fd = g_wait_fd,
    .auth_token_closed = g_auth_token_closed,
};

int gh_pipeline_process(gh_pipeline_t *pl, const char *site, struct gh_request *req)
{
  int ret = 0;
  glue_t *g;
  if (pl == NULL || req == NULL) {
    ret = -EINVAL;
    goto out;
  }
  /* describe fills the buffers it hands out; in the request's memory, so
   * that the worker that ends a request which waited frees nothing the one
   * that started it allocated */
  g = gh_request_alloc(req, sizeof(*g));
  if (g == NULL) {
    (void)gh_response_set_status(req, 503, NULL);
    (void)gh_request_complete(req);
    ret = -ENOMEM;
    goto out;
  }
  g->req = req;
  g->host[0] = '\0';
  ret = gh__pipeline_process_source(pl, site, &glue_ops, g);
out:
  return ret;
}

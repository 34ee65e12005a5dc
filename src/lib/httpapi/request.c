/* request.c: request objects and free list, gh_request_* accessors, gh_response_*, completion. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpapi/date.h"
#include "httpapi/glue.h"
#include "httpapi/internal.h"
#include "httpapi/metrics.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/str.h"

#define GH__FREE_REQS_MAX 256
#define GH__REQ_KEEP_BYTES 16384

/* ---- request objects ---------------------------------------------------- */

gh_request_t *gh__request_alloc(gh_server_t *s)
{
  gh_request_t *r = NULL;
  pthread_mutex_lock(&s->flock);
  if (s->free_reqs != NULL) {
    r = s->free_reqs;
    s->free_reqs = r->next;
    s->n_free--;
  }
  pthread_mutex_unlock(&s->flock);
  if (r == NULL) {
    r = gh__calloc(1, sizeof(*r));
    if (r == NULL)
      goto out;
    r->pool = gh__pool_new(2048);
    if (r->pool == NULL) {
      free(r);
      r = NULL;
      goto out;
    }
  }
  r->srv = s;
  r->next = NULL;
out:
  return r;
}

static void request_destroy(gh_request_t *r)
{
  gh__http_msg_done(&r->msg);
  gh__pool_free(r->pool);
  free(r);
}

void gh__request_recycle(gh_request_t *r)
{
  if (r == NULL)
    return;
  gh_server_t *s = r->srv;
  if (r->auth_slot_free != NULL)
    r->auth_slot_free(r->auth_slot);
  gh__pool_reset(r->pool);
  gh__http_msg_shrink(&r->msg, GH__REQ_KEEP_BYTES);
  gh__pool_t *pool = r->pool;
  gh__http_msg_t msg = r->msg;
  memset(r, 0, sizeof(*r));
  r->pool = pool;
  r->msg = msg;
  r->srv = s;
  bool keep = false;
  pthread_mutex_lock(&s->flock);
  if (s->n_free < GH__FREE_REQS_MAX) {
    r->next = s->free_reqs;
    s->free_reqs = r;
    s->n_free++;
    keep = true;
  }
  pthread_mutex_unlock(&s->flock);
  if (!keep)
    request_destroy(r);
}

/* gh_server_free: the recycled request objects. */
void gh__request_pool_free(gh_server_t *s)
{
  while (s->free_reqs != NULL) {
    gh_request_t *r = s->free_reqs;
    s->free_reqs = r->next;
    request_destroy(r);
  }
}

/* ---- accessors ---------------------------------------------------------- */

GH_EXPORT const char *gh_request_get_method(const gh_request_t *r)
{
  return r->msg.method_str;
}

GH_EXPORT const char *gh_request_get_url(const gh_request_t *r)
{
  return r->msg.url;
}

GH_EXPORT const char *gh_request_get_path(const gh_request_t *r)
{
  return r->path;
}

GH_EXPORT const char *gh_request_get_query(const gh_request_t *r)
{
  return r->query;
}

GH_EXPORT int gh_request_get_version(const gh_request_t *r)
{
  return r->msg.http_major * 10 + r->msg.http_minor;
}

GH_EXPORT const char *gh_request_get_header(const gh_request_t *r, const char *name)
{
  return gh__http_msg_header(&r->msg, name);
}

bool gh__request_has_content_length(const gh_request_t *r)
{
  return r->msg.has_content_length;
}

GH_EXPORT size_t gh_request_get_header_count(const gh_request_t *r)
{
  return r->msg.n_headers;
}

GH_EXPORT int gh_request_get_header_at(const gh_request_t *r, size_t i, const char **ret_name,
                                       const char **ret_value)
{
  int ret = -ENOENT;
  if (i < r->msg.n_headers) {
    *ret_name = r->msg.headers[i].name;
    *ret_value = r->msg.headers[i].value;
    ret = 0;
  }
  return ret;
}

GH_EXPORT size_t gh_request_get_body_length(const gh_request_t *r)
{
  if (r->streamed)
    return r->msg.chunked ? SIZE_MAX : (size_t)r->msg.content_length;
  return r->msg.body_len;
}

GH_EXPORT ssize_t gh_request_read_body(gh_request_t *r, void *buf, size_t len)
{
  if (r->streamed)
    return gh__request_read_streamed(r, buf, len);
  size_t left = r->msg.body_len - r->body_pos;
  if (len > left)
    len = left;
  if (len > 0)
    memcpy(buf, r->msg.body + r->body_pos, len);
  r->body_pos += len;
  return (ssize_t)len;
}

GH_EXPORT const void *gh_request_get_body(const gh_request_t *r, size_t *ret_len)
{
  *ret_len = r->streamed ? 0 : r->msg.body_len;
  return *ret_len ? r->msg.body : NULL;
}

GH_EXPORT gh_url_group_t *gh_request_get_url_group(const gh_request_t *r)
{
  return r->group;
}

GH_EXPORT const gh_conn_info_t *gh_request_get_conn_info(const gh_request_t *r)
{
  return &r->conn->info;
}

GH_EXPORT gh_server_t *gh_request_get_server(const gh_request_t *r)
{
  return r->srv;
}

/* ---- hooks.h accessors -------------------------------------------------- */

int gh__response_get_status(const gh_request_t *r)
{
  return r->status_set ? r->status : 200;
}

bool gh__response_headers_sent(const gh_request_t *r)
{
  return r->headers_sent;
}

void gh__request_set_conn_state(gh_request_t *r, void *state, void (*destroy)(void *))
{
  gh__conn_t *c = r->conn;
  if (c->ext_state_free != NULL && c->ext_state != state)
    c->ext_state_free(c->ext_state);
  c->ext_state = state;
  c->ext_state_free = destroy;
}

void *gh__request_get_conn_state(const gh_request_t *r)
{
  return r->conn->ext_state;
}

void gh__request_set_auth_slot(gh_request_t *r, void *data, void (*destroy)(void *))
{
  if (r->auth_slot_free != NULL && r->auth_slot != data)
    r->auth_slot_free(r->auth_slot);
  r->auth_slot = data;
  r->auth_slot_free = destroy;
}

void *gh__request_get_auth_slot(const gh_request_t *r)
{
  return r->auth_slot;
}

const void *gh__request_get_channel_binding(gh_request_t *r, size_t *ret_len)
{
  gh__conn_t *c = r->conn;
  if (c->ssl == NULL)
    return NULL;
  if (c->cbt == NULL) {
    unsigned char buf[GH__TLS_CBT_MAX];
    size_t n = 0;
    if (gh__tls_channel_binding(c->ssl, buf, &n) != 0)
      return NULL;
    c->cbt = gh__malloc(n);
    if (c->cbt == NULL)
      return NULL;
    memcpy(c->cbt, buf, n);
    c->cbt_len = n;
  }
  *ret_len = c->cbt_len;
  return c->cbt;
}

GH_EXPORT int gh_request_get_tls_info(const gh_request_t *r, gh_tls_info_t *ret_info)
{
  gh__conn_t *c = r->conn;
  const unsigned char *alpn = NULL;
  unsigned alen = 0;
  if (c->ssl == NULL)
    return GH_ENOT_FOUND;
  SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
  if (alen > 0 && c->alpn == NULL)
    c->alpn = gh__strndup((const char *)alpn, alen);
  ret_info->version = SSL_get_version(c->ssl);
  ret_info->cipher = SSL_get_cipher_name(c->ssl);
  ret_info->sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
  ret_info->alpn = c->alpn;
  ret_info->resumed = SSL_session_reused(c->ssl) ? 1 : 0;
  return 0;
}

int gh__request_get_fd(const gh_request_t *r)
{
  return r->conn->fd;
}

bool gh__response_has_header(const gh_request_t *r, const char *name)
{
  for (size_t i = 0; i < r->n_rh; i++)
    if (r->rh[i].name != NULL && gh__name_eq(r->rh[i].name, name))
      return true;
  return false;
}

/* ---- response ----------------------------------------------------------- */

static bool bad_text(const char *s)
{
  for (; *s != '\0'; s++)
    if (*s == '\r' || *s == '\n')
      return true;
  return false;
}

/* Length of a field name (one or more tchar), or 0 if s is not one. */
static size_t name_len(const char *s)
{
  size_t n = 0;
  while (gh__is_tchar((unsigned char)s[n])) /* NUL is no tchar */
    n++;
  return s[n] == '\0' ? n : 0;
}

/* Names only the server writes (framing, Date), and Content-Length, which
 * the application may set: by length first, most names never compare. */
static bool reserved_name(const char *name, size_t len)
{
  switch (len) {
  case 4: return strcasecmp(name, "date") == 0;
  case 10: return strcasecmp(name, "connection") == 0;
  case 17: return strcasecmp(name, "transfer-encoding") == 0;
  default: return false;
  }
}

static int status_common(gh_request_t *r, int status, const char *reason, bool copy)
{
  int ret = 0;
  if (r->headers_sent || r->finished) {
    ret = GH_ESTATE;
    goto out;
  }
  if (status < 100 || status > 999 || (reason != NULL && bad_text(reason))) {
    ret = -EINVAL;
    goto out;
  }
  r->reason = reason;
  if (reason != NULL && copy) {
    r->reason = gh__pool_strdup(r->pool, reason);
    if (r->reason == NULL) {
      ret = -ENOMEM;
      goto out;
    }
  }
  r->status = status;
  r->status_set = true;
out:
  return ret;
}

GH_EXPORT int gh_response_set_status(gh_request_t *r, int status, const char *reason)
{
  return status_common(r, status, reason, true);
}

int gh__response_set_status_borrowed(gh_request_t *r, int status, const char *reason)
{
  return status_common(r, status, reason, false);
}

/* Stores a field whose name is nlen tchar and whose value (NULL: only the
 * removal of REPLACE) is vlen bytes without CR, LF or NUL: copied into the
 * request's pool, or borrowed. */
static int header_put(gh_request_t *r, const char *name, size_t nlen, const char *value,
                      size_t vlen, bool replace, bool copy)
{
  int ret = 0;
  if (reserved_name(name, nlen)) {
    ret = -EINVAL;
    goto out;
  }
  bool is_cl = nlen == 14 && strcasecmp(name, "content-length") == 0;
  if (replace || is_cl) {
    for (size_t i = 0; i < r->n_rh; i++)
      if (r->rh[i].name != NULL && r->rh[i].name_len == nlen && gh__name_eq(r->rh[i].name, name))
        r->rh[i].name = NULL;
    if (is_cl)
      r->app_length = false;
  }
  if (value == NULL)
    goto out;
  if (is_cl) {
    char *end = NULL;
    errno = 0;
    (void)strtoull(value, &end, 10);
    if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0) {
      ret = -EINVAL;
      goto out;
    }
  }
  if (r->n_rh == r->cap_rh) {
    size_t cap = r->cap_rh ? r->cap_rh * 2 : 8;
    gh__resp_hdr_t *n = gh__pool_alloc(r->pool, cap * sizeof(*n));
    if (n == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    if (r->n_rh)
      memcpy(n, r->rh, r->n_rh * sizeof(*n));
    r->rh = n;
    r->cap_rh = cap;
  }
  gh__resp_hdr_t *h = &r->rh[r->n_rh];
  if (copy) {
    char *mem = gh__pool_alloc(r->pool, nlen + vlen + 2); /* name and value in one block */
    if (mem == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    memcpy(mem, name, nlen + 1);
    memcpy(mem + nlen + 1, value, vlen + 1);
    name = mem;
    value = mem + nlen + 1;
  }
  h->name = name;
  h->value = value;
  h->name_len = nlen;
  h->value_len = vlen;
  r->n_rh++;
  if (is_cl)
    r->app_length = true;
out:
  return ret;
}

static int header_common(gh_request_t *r, const char *name, const char *value, bool replace)
{
  int ret = 0;
  size_t nlen = 0, vlen = 0;
  if (r->headers_sent || r->finished) {
    ret = GH_ESTATE;
    goto out;
  }
  if (value != NULL)
    vlen = strlen(value);
  if (name == NULL || (nlen = name_len(name)) == 0 ||
      (value != NULL && gh__has_crlf_nul(value, vlen)) || (value == NULL && !replace)) {
    ret = -EINVAL;
    goto out;
  }
  ret = header_put(r, name, nlen, value, vlen, replace, true);
out:
  return ret;
}

int gh__response_add_header_checked(gh_request_t *r, const char *name, size_t name_len,
                                    const char *value, size_t value_len)
{
  if (r->headers_sent || r->finished)
    return GH_ESTATE;
  return header_put(r, name, name_len, value, value_len, false, false);
}

GH_EXPORT int gh_response_set_header(gh_request_t *r, const char *name, const char *value)
{
  return header_common(r, name, value, true);
}

GH_EXPORT int gh_response_add_header(gh_request_t *r, const char *name, const char *value)
{
  return header_common(r, name, value, false);
}

/* Serialises the head into pool memory. */
static int build_head(gh_request_t *r, bool final, size_t len, struct iovec *ret_iov)
{
  int ret = 0;
  gh_server_t *s = r->srv;
  if (!r->status_set) {
    r->status = 200;
    r->status_set = true;
  }
  if (r->status == 101) { /* only gh_request_upgrade() switches protocols */
    r->status = 500;
    r->reason = NULL;
    r->keep_alive = false;
  }
  if (s->hsts != NULL && r->conn->ssl != NULL &&
      !gh__response_has_header(r, "Strict-Transport-Security"))
    (void)gh_response_set_header(r, "Strict-Transport-Security", s->hsts);
  if (s->resp_hook != NULL)
    s->resp_hook(r, r->status, s->resp_hook_arg);
  gh__request_body_settle(r, final); /* an unread streamed body: drained or closed */
  bool ka = r->keep_alive && !atomic_load_explicit(&s->stopping, memory_order_relaxed);
  int version = gh_request_get_version(r);
  r->frame = gh__framing_choose(r->status, version, final, r->app_length, &ka);
  r->keep_alive = ka;
  const char *reason = r->reason ? r->reason : gh__framing_reason(r->status);
  gh__resp_head_t h = {
    .status = r->status, .reason = reason, .hdrs = r->rh, .n_hdrs = r->n_rh,
    .frame = r->frame, .content_length = len, .app_length = r->app_length,
    .keep_alive = ka, .version = version, .date = gh__http_date_now(),
    .server = s->server_header, .lens = true, .reason_len = strlen(reason),
    .date_len = GH__HTTP_DATE_LEN, .server_len = strlen(s->server_header),
  };
  size_t hl = gh__framing_head_len(&h);
  char *buf = gh__pool_alloc(r->pool, hl);
  if (buf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  gh__framing_head_write(&h, buf);
  ret_iov->iov_base = buf;
  ret_iov->iov_len = hl;
  r->headers_sent = true;
out:
  return ret;
}

/* Every request the application or the auth gate answered, once: when its
 * last bytes go out (before the connection can carry the client's next
 * request, so a scrape after a response always counts it), or at
 * completion for a response that never got there. */
static void count_request(gh_request_t *r)
{
  if (r->counted)
    return;
  r->counted = true;
  gh__metrics_request(r->group ? r->group->metrics_site : GH__METRICS_SITE_NONE,
                      gh__metrics_code(r->status),
                      r->t0_ns != 0 ? gh__clock_ns() - r->t0_ns : UINT64_MAX);
}

static int send_common(gh_request_t *r, const void *data, int fd, off_t foff, size_t len,
                       unsigned flags)
{
  int ret = 0;
  struct iovec pre[3], post[2];
  int npre = 0, npost = 0;
  char chdr[20];
  bool final = (flags & GH_SEND_MORE_DATA) == 0;

  if (r->finished) {
    ret = GH_ESTATE;
    goto out;
  }
  if (r->failed) {
    ret = GH_ECLOSED;
    goto out;
  }
  r->any_send = true;
  if (flags & GH_SEND_DISCONNECT)
    r->keep_alive = false;
  if (!r->headers_sent) {
    ret = build_head(r, final, len, &pre[npre]);
    if (ret != 0)
      goto fail;
    npre++;
  }
  bool body = !r->msg.head && r->frame != GH__FRAME_NOBODY;
  if (!body)
    len = 0;
  if (r->frame == GH__FRAME_CHUNKED && body) {
    if (len > 0) {
      pre[npre].iov_base = chdr;
      pre[npre].iov_len = gh__framing_chunk_header(len, chdr);
      npre++;
    }
    if (fd < 0 && len > 0) {
      pre[npre].iov_base = (void *)data;
      pre[npre].iov_len = len;
      npre++;
    }
    if (len > 0) {
      post[npost].iov_base = (void *)"\r\n";
      post[npost].iov_len = 2;
      npost++;
    }
    if (final) {
      post[npost].iov_base = (void *)"0\r\n\r\n";
      post[npost].iov_len = 5;
      npost++;
    }
  } else if (fd < 0 && len > 0) {
    pre[npre].iov_base = (void *)data;
    pre[npre].iov_len = len;
    npre++;
  }
  if (final)
    count_request(r);
  ret = gh__conn_send(r->conn, pre, npre, fd, foff, fd >= 0 ? len : 0, post, npost, final);
  if (ret == GH__SEND_HANDOFF) {
    r->finished = true;
    r->released = true;
    gh__conn_release_writing(r->conn, r->keep_alive);
    ret = 0;
    goto out;
  }
  if (ret != 0)
    goto fail;
  if (final) {
    r->finished = true;
    r->released = true;
    gh__conn_release_done(r->conn, r->keep_alive);
  }
  goto out;
fail:
  /* peer gone, or a file error that cut the response: the connection closes */
  r->failed = true;
  if (final)
    r->finished = true;
  if (!r->released) {
    r->released = true;
    gh__conn_release_close(r->conn);
  }
out:
  return ret;
}

GH_EXPORT int gh_response_send(gh_request_t *r, const void *data, size_t len, unsigned flags)
{
  if (data == NULL && len > 0)
    return -EINVAL;
  return send_common(r, data, -1, 0, len, flags);
}

GH_EXPORT int gh_response_send_fd(gh_request_t *r, int fd, off_t offset, size_t len,
                                  unsigned flags)
{
  if (fd < 0 || offset < 0)
    return -EINVAL;
  return send_common(r, NULL, len > 0 ? fd : -1, offset, len, flags);
}

GH_EXPORT void *gh_request_alloc(gh_request_t *r, size_t size)
{
  return r != NULL && size > 0 ? gh__pool_calloc(r->pool, 1, size) : NULL;
}

GH_EXPORT int gh_request_complete(gh_request_t *r)
{
  int ret = 0;
  gh_server_t *s = r->srv;
  if (!r->finished && !r->failed) {
    if (!r->any_send && !r->status_set) {
      int bs = gh__request_body_status(r); /* a streamed body that failed */
      r->status = bs != 0 ? bs : 500;
      r->status_set = true;
    }
    ret = send_common(r, NULL, -1, 0, 0, 0);
  } else if (r->failed) {
    ret = GH_ECLOSED;
  }
  count_request(r); /* a response cut short, or never finished */
  if (!r->released) {
    r->released = true;
    gh__conn_release_close(r->conn);
  }
  gh__conn_t *c = r->conn;
  gh__request_recycle(r);
  gh__conn_unref(c);
  atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_release);
  return ret;
}

int gh__request_reply(gh_request_t *r, int status, const char *reason, const char *const *hdrs,
                      size_t n_hdrs, const char *body)
{
  char buf[128];
  if (gh_response_set_status(r, status, reason) == 0) {
    for (size_t i = 0; i < n_hdrs; i++)
      (void)gh_response_add_header(r, hdrs[2 * i], hdrs[2 * i + 1]);
    if (body == NULL) {
      snprintf(buf, sizeof(buf), "%d %s\n", status, reason ? reason : gh__framing_reason(status));
      body = buf;
    }
    (void)gh_response_set_header(r, "Content-Type", "text/plain; charset=utf-8");
    (void)gh_response_send(r, body, strlen(body), 0);
  }
  return gh_request_complete(r);
}

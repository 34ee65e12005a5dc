/* stream.c: the worker side of a connection: streamed request bodies, 1xx interim responses, client
 * state, Upgrade. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "httpapi/date.h"
#include "httpapi/internal.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/str.h"

/* Connection bytes one streamed read takes at most (its decoded bytes are
 * at most as many: the body buffer stays this size). */
#define STREAM_READ_MAX 65536
/* An unread body is discarded up to this many bytes before the response. */
#define DRAIN_MAX 65536
/* A smaller caller buffer reads the connection through this scratch. */
#define SCRATCH 4096

/*
 * While a request is in application hands its connection is owned by the
 * thread holding the request (GH__OWN_WORKER): it is not armed in the
 * connection epoll (EPOLLONESHOT fired) and the timer scan skips it, so the
 * calls here read and write the socket directly, with their own timeouts.
 * Bytes that arrived with the request head wait in conn->pending.
 */

/* Takes up to len bytes of the connection's pending input. */
static size_t pending_take(gh__conn_t *c, void *buf, size_t len)
{
  size_t k = c->pending_len < len ? c->pending_len : len;
  memcpy(buf, c->pending, k);
  memmove(c->pending, c->pending + k, c->pending_len - k);
  c->pending_len -= k;
  if (c->pending_len == 0) {
    free(c->pending);
    c->pending = NULL;
  }
  return k;
}

/* Puts bytes back in front of the pending input (the next request's). */
static int pending_unread(gh__conn_t *c, const char *data, size_t len)
{
  char *p = gh__malloc(len + c->pending_len);
  if (p == NULL)
    return -ENOMEM;
  memcpy(p, data, len);
  if (c->pending_len > 0)
    memcpy(p + len, c->pending, c->pending_len);
  free(c->pending);
  c->pending = p;
  c->pending_len += len;
  return 0;
}

/* Waits for events until deadline (UINT64_MAX: forever). 0 or GH_ETIMEOUT. */
static int wait_io(gh__conn_t *c, short events, uint64_t deadline)
{
  gh__server_may_block(c->srv);
  for (;;) {
    uint64_t now = gh__now_ms();
    if (now >= deadline)
      return GH_ETIMEOUT;
    int ms =
        deadline == UINT64_MAX ? -1 : (int)(deadline - now < INT_MAX ? deadline - now : INT_MAX);
    struct pollfd p = {.fd = c->fd, .events = events};
    int r = poll(&p, 1, ms);
    if (r > 0)
      return 0; /* readable, writable, or an error the next call reports */
    if (r < 0 && errno != EINTR)
      return GH_ECLOSED;
  }
}

static uint64_t deadline_of(int timeout_ms)
{
  return timeout_ms < 0 ? UINT64_MAX : gh__now_ms() + (uint64_t)timeout_ms;
}

/* Reads connection bytes: the pending input first, then the socket (TLS
 * or plain), waiting until deadline. >0, 0 at EOF, GH_ETIMEOUT, GH_ECLOSED. */
static ssize_t conn_recv(gh__conn_t *c, void *buf, size_t len, uint64_t deadline)
{
  if (c->pending_len > 0)
    return (ssize_t)pending_take(c, buf, len);
  gh__conn_quiet(c); /* its bytes are read here now: no worker woken for them */
  for (;;) {
    ssize_t n;
    short ev = POLLIN;
    if (c->ssl != NULL) {
      n = gh__tls_read(c->ssl, buf, len);
      if (n >= 0)
        return n;
      if (n == GH__TLS_WANT_WRITE)
        ev = POLLOUT;
      else if (n != GH__TLS_WANT_READ)
        return GH_ECLOSED;
    } else {
      n = recv(c->fd, buf, len, MSG_DONTWAIT);
      if (n >= 0)
        return n;
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return GH_ECLOSED;
    }
    int e = wait_io(c, ev, deadline);
    if (e != 0)
      return e;
  }
}

/* ---- streamed request bodies -------------------------------------------- */

/* Feeds connection bytes to the body parser; decoded bytes land in
 * msg.body. Bytes after the end of the message are the next request's. */
static int body_feed(gh_request_t *r, const char *data, size_t n)
{
  gh__conn_t *c = r->conn;
  size_t used = 0;
  int ret = 0;
  int pr = gh__http_parser_feed(&c->parser, data, n, &used);
  if (pr == GH__HTTP_ERROR || pr == GH__HTTP_HEADERS) {
    ret = c->parser.status == 413 ? GH_ELIMIT : GH_EPARSE;
  } else if (pr == GH__HTTP_DONE) {
    r->body_done = true;
    if (used < n)
      ret = pending_unread(c, data + used, n - used);
  }
  return ret;
}

/* Reads until decoded bytes wait in msg.body, the body ended, or an error. */
static int body_pump(gh_request_t *r, char *scratch, size_t cap, uint64_t deadline)
{
  gh__http_msg_t *m = &r->msg;
  int ret = 0;
  m->body_len = r->body_pos = 0; /* all handed out: the buffer is reused */
  while (ret == 0 && !r->body_done && m->body_len == 0) {
    ssize_t n = conn_recv(r->conn, scratch, cap, deadline);
    if (n == 0)
      ret = GH_ECLOSED; /* the client went away mid-body */
    else if (n < 0)
      ret = (int)n;
    else
      ret = body_feed(r, scratch, (size_t)n);
  }
  return ret;
}

/* "100 Continue" before the first body read, when the client waits for it. */
static int send_continue(gh_request_t *r)
{
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  gh__conn_t *c = r->conn;
  int ret = 0;
  r->continue_sent = true;
  if (c->pending_len > 0) {
    /* what came with the head (its last LF, body bytes sent anyway) */
    char *p = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    ret = body_feed(r, p, n);
    free(p);
    if (ret != 0)
      return ret;
  }
  if (r->msg.expect_continue && !r->headers_sent && !r->body_done && c->parser.body_seen == 0 &&
      gh__conn_write(c, cont, sizeof(cont) - 1, gh__now_ms() + r->srv->cfg.send_timeout_ms) != 0)
    ret = GH_ECLOSED;
  return ret;
}

static ssize_t body_copy_out(gh_request_t *r, void *buf, size_t len)
{
  size_t left = r->msg.body_len - r->body_pos;
  if (len > left)
    len = left;
  memcpy(buf, r->msg.body + r->body_pos, len);
  r->body_pos += len;
  return (ssize_t)len;
}

ssize_t gh__request_read_streamed(gh_request_t *r, void *buf, size_t len)
{
  ssize_t ret = 0;
  char tmp[SCRATCH];
  if (r->body_err != 0) {
    ret = r->body_err;
    goto out;
  }
  if (r->body_pos < r->msg.body_len || r->body_done) {
    ret = body_copy_out(r, buf, len);
    goto out;
  }
  if (r->released || r->stream != NULL) {
    ret = GH_ESTATE; /* the connection is no longer this request's */
    goto out;
  }
  if (len == 0)
    goto out;
  r->body_touched = true;
  if (!r->continue_sent && (ret = send_continue(r)) != 0)
    goto fail;
  unsigned bto = r->group->props.body_timeout_ms;
  bool big = len >= SCRATCH;
  if (r->body_pos == r->msg.body_len && !r->body_done)
    ret = body_pump(r, big ? buf : tmp,
                    big ? (len < STREAM_READ_MAX ? len : STREAM_READ_MAX) : sizeof(tmp),
                    gh__now_ms() + bto);
  if (ret != 0)
    goto fail;
  ret = body_copy_out(r, buf, len);
  goto out;
fail:
  r->body_err = (int)ret;
  r->keep_alive = false; /* the framing is in doubt: never reused */
out:
  return ret;
}

void gh__request_body_settle(gh_request_t *r, bool final)
{
  char tmp[SCRATCH];
  size_t budget = DRAIN_MAX;
  if (!r->streamed || r->body_done)
    return;
  /* discards what already arrived, without waiting: a small body the
   * handler did not want keeps the connection */
  while (final && r->body_err == 0 && r->stream == NULL && !r->body_done && budget > 0) {
    ssize_t n = conn_recv(r->conn, tmp, budget < sizeof(tmp) ? budget : sizeof(tmp), 0);
    if (n <= 0 || body_feed(r, tmp, (size_t)n) != 0)
      break;
    budget -= (size_t)n;
    r->msg.body_len = r->body_pos = 0;
  }
  if (!r->body_done)
    r->keep_alive = false;
}

int gh__request_body_status(const gh_request_t *r)
{
  switch (r->body_err) {
  case GH_ELIMIT:
    return 413;
  case GH_EPARSE:
    return 400;
  case GH_ETIMEOUT:
    return 408;
  default:
    return 0;
  }
}

/* ---- interim responses, client state ------------------------------------ */

/* The head of a 1xx (no Date, no Server: RFC 9110 15.2) or of the 101 with
 * extra fields, written at once. */
static int write_head(gh_request_t *r, int status, const char *reason, const gh__resp_hdr_t *h,
                      size_t n, bool stamp)
{
  gh__resp_head_t head = {
      .status = status,
      .reason = reason,
      .hdrs = h,
      .n_hdrs = n,
      .frame = GH__FRAME_NOBODY,
      .keep_alive = true,
      .version = 11,
      .date = stamp ? gh__http_date_now() : NULL,
      .server = stamp ? r->srv->server_header : NULL,
  };
  size_t hl = gh__framing_head_len(&head);
  char *buf = gh__malloc(hl);
  int ret = GH_ECLOSED;
  if (buf == NULL)
    return -ENOMEM;
  gh__framing_head_write(&head, buf);
  if (gh__conn_write(r->conn, buf, hl, gh__now_ms() + r->srv->cfg.send_timeout_ms) == 0)
    ret = 0;
  free(buf);
  return ret;
}

static bool field_ok(const char *name, const char *value)
{
  size_t n = 0;
  if (name == NULL || value == NULL)
    return false;
  while (gh__is_tchar((unsigned char)name[n]))
    n++;
  return n > 0 && name[n] == '\0' && !gh__has_crlf_nul(value, strlen(value));
}

GH_EXPORT int gh_request_send_interim(gh_request_t *r, int status, const char *const *hdrs,
                                      size_t n)
{
  int ret = 0;
  gh__resp_hdr_t *h = NULL;
  if (status < 100 || status > 199 || status == 101 || (n > 0 && hdrs == NULL) || n > 1024) {
    ret = -EINVAL;
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (!field_ok(hdrs[2 * i], hdrs[2 * i + 1])) {
      ret = -EINVAL;
      goto out;
    }
  if (r->headers_sent || r->finished || r->released) {
    ret = GH_ESTATE;
    goto out;
  }
  if (gh_request_get_version(r) < 11)
    goto out; /* HTTP/1.0 has no 1xx (RFC 9110 15.2) */
  if (status == 100) {
    /* one 100 Continue at most, and only to a client waiting for it: a
     * relayed one stands for the server's own at the first read */
    if (!r->streamed || !r->msg.expect_continue || r->continue_sent || r->body_done)
      goto out;
    r->continue_sent = true;
  }
  h = gh__calloc(n ? n : 1, sizeof(*h));
  if (h == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    h[i] = (gh__resp_hdr_t){hdrs[2 * i], hdrs[2 * i + 1], strlen(hdrs[2 * i]),
                            strlen(hdrs[2 * i + 1])};
  ret = write_head(r, status, NULL, h, n, false);
  if (ret != 0)
    r->keep_alive = false;
out:
  free(h);
  return ret;
}

GH_EXPORT int gh_request_client_gone(gh_request_t *r)
{
  if (r->released)
    return r->failed ? 1 : 0;
  struct pollfd p = {.fd = r->conn->fd, .events = POLLRDHUP};
  int n;
  do
    n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) ? 1 : 0;
}

/* ---- Upgrade -------------------------------------------------------------- */

/* Whether any line of a request field lists token. */
static bool field_has_token(const gh_request_t *r, const char *name, const char *token)
{
  for (unsigned i = 0; i < r->msg.n_headers; i++)
    if (strcasecmp(r->msg.headers[i].name, name) == 0 &&
        gh__list_has_token(r->msg.headers[i].value, token))
      return true;
  return false;
}

static bool upgrade_allowed(const gh_request_t *r)
{
  return gh_request_get_version(r) == 11 && !r->headers_sent && !r->finished && !r->released &&
         r->status_set && r->status == 101 && field_has_token(r, "connection", "upgrade") &&
         gh_request_get_header(r, "upgrade") != NULL && (!r->streamed || r->body_done);
}

/* The 101 head: the application's fields, Connection: upgrade, and the
 * request's Upgrade value unless one was set. */
static int write_switching(gh_request_t *r)
{
  static const char cn[] = "Connection", cv[] = "upgrade", un[] = "Upgrade";
  gh_server_t *s = r->srv;
  if (s->resp_hook != NULL)
    s->resp_hook(r, r->status, s->resp_hook_arg);
  gh__resp_hdr_t *h = gh__pool_alloc(r->pool, (r->n_rh + 2) * sizeof(*h));
  if (h == NULL)
    return -ENOMEM;
  size_t n = r->n_rh;
  if (n > 0)
    memcpy(h, r->rh, n * sizeof(*h));
  h[n++] = (gh__resp_hdr_t){cn, cv, sizeof(cn) - 1, sizeof(cv) - 1};
  if (!gh__response_has_header(r, "upgrade")) {
    const char *uv = gh_request_get_header(r, "upgrade");
    h[n++] = (gh__resp_hdr_t){un, uv, sizeof(un) - 1, strlen(uv)};
  }
  return write_head(r, 101, r->reason, h, n, true);
}

GH_EXPORT int gh_request_upgrade(gh_request_t *r, gh_stream_t **ret)
{
  int e = 0;
  gh_stream_t *st = NULL;
  if (!upgrade_allowed(r)) {
    e = GH_ESTATE;
    goto out;
  }
  st = gh__pool_alloc(r->pool, sizeof(*st));
  if (st == NULL) {
    e = -ENOMEM;
    goto out;
  }
  st->conn = r->conn;
  gh__conn_quiet(r->conn); /* the stream's bytes are the application's */
  e = write_switching(r);
  /* sent or not, the connection is no longer HTTP: complete closes it */
  r->headers_sent = r->any_send = r->finished = true;
  r->keep_alive = false;
  if (e != 0) {
    r->failed = true;
    goto out;
  }
  r->stream = st;
  *ret = st;
out:
  return e;
}

GH_EXPORT ssize_t gh_stream_read(gh_stream_t *s, void *buf, size_t len, int timeout_ms)
{
  if (len == 0)
    return 0;
  return conn_recv(s->conn, buf, len, deadline_of(timeout_ms));
}

GH_EXPORT int gh_stream_write(gh_stream_t *s, const void *buf, size_t len, int timeout_ms)
{
  if (len == 0)
    return 0;
  return gh__conn_write(s->conn, buf, len, deadline_of(timeout_ms));
}

GH_EXPORT int gh_stream_get_fd(const gh_stream_t *s)
{
  return s->conn->fd;
}

GH_EXPORT size_t gh_stream_pending(const gh_stream_t *s)
{
  const gh__conn_t *c = s->conn;
  size_t n = c->pending_len;
  if (c->ssl != NULL) {
    int k = SSL_pending(c->ssl);
    n += k > 0 ? (size_t)k : (SSL_has_pending(c->ssl) ? 1 : 0);
  }
  return n;
}

GH_EXPORT int gh_stream_shutdown_write(gh_stream_t *s)
{
  gh__conn_t *c = s->conn;
  gh__tls_shutdown(c->ssl);
  return shutdown(c->fd, SHUT_WR) == 0 ? 0 : GH_ECLOSED;
}

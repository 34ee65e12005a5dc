/* proxy_resp.c: bounded incremental parser of upstream responses (libhttp-parser). */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

static proxy_resp_t *self(http_parser *hp)
{
  return (proxy_resp_t *)hp->data;
}

/* Appends to head[]; the last byte stays free for the NUL ending the piece. */
static int head_add(proxy_resp_t *r, const char *at, size_t len)
{
  if (len >= PROXY_MAX_HEAD - r->head_len) {
    r->error = "response head too large";
    return 1;
  }
  memcpy(r->head + r->head_len, at, len);
  r->head_len += len;
  return 0;
}

static int end_piece(proxy_resp_t *r)
{
  if (r->head_len + 1 >= PROXY_MAX_HEAD) {
    r->error = "response head too large";
    return 1;
  }
  r->head[r->head_len++] = '\0';
  return 0;
}

static int on_message_begin(http_parser *hp)
{
  proxy_resp_t *r = self(hp);
  r->head_len = 0;
  r->n = 0;
  r->in_value = false;
  r->reason_len = 0;
  r->reason[0] = '\0';
  return 0;
}

static int on_status(http_parser *hp, const char *at, size_t len)
{
  proxy_resp_t *r = self(hp);
  size_t take =
      len < sizeof(r->reason) - 1 - r->reason_len ? len : sizeof(r->reason) - 1 - r->reason_len;
  memcpy(r->reason + r->reason_len, at, take);
  r->reason_len += take;
  r->reason[r->reason_len] = '\0';
  return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
  proxy_resp_t *r = self(hp);
  if (r->in_value || r->n == 0) {
    if (r->in_value && end_piece(r) != 0)
      return 1;
    if (r->n == PROXY_MAX_HEADERS) {
      r->error = "too many response header fields";
      return 1;
    }
    r->f[r->n].name = r->head + r->head_len; /* offsets fixed up at headers_complete */
    r->f[r->n].value = NULL;
    r->n++;
    r->in_value = false;
  }
  return head_add(r, at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
  proxy_resp_t *r = self(hp);
  if (r->n == 0) {
    r->error = "field value without a name";
    return 1;
  }
  if (!r->in_value) {
    if (end_piece(r) != 0)
      return 1;
    r->f[r->n - 1].value = r->head + r->head_len;
    r->in_value = true;
  }
  return head_add(r, at, len);
}

static int on_headers_complete(http_parser *hp)
{
  proxy_resp_t *r = self(hp);
  int status = (int)hp->status_code;
  bool interim = status >= 100 && status < 200 && status != 101;
  if ((r->n > 0 && (!r->in_value || end_piece(r) != 0)) || status < 100 || status > 599) {
    if (r->error == NULL)
      r->error = "bad response head";
    return -1;
  }
  for (size_t i = 0; i < r->n; i++)
    if (r->f[i].value == NULL) {
      r->error = "bad response head";
      return -1;
    }
  r->status = status;
  r->upgrade = status == 101;
  if (!interim) {
    r->final_head = true;
    r->chunked = (hp->flags & F_CHUNKED) != 0;
    r->content_length =
        !r->chunked && hp->content_length != ULLONG_MAX ? (int64_t)hp->content_length : -1;
  }
  if (r->on_head != NULL && r->on_head(r->arg, r) != 0) {
    if (r->error == NULL)
      r->error = "response refused";
    return -1;
  }
  /* no body: 1xx, 204, 304 and the answer to HEAD (2 for 101: the rest is
   * another protocol) */
  if (r->upgrade)
    return 2;
  return interim || status == 204 || status == 304 || r->head_request ? 1 : 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
  proxy_resp_t *r = self(hp);
  if (!r->final_head) {
    r->error = "body on an interim response";
    return 1;
  }
  return r->on_body != NULL && r->on_body(r->arg, at, len) != 0 ? 1 : 0;
}

static int on_message_complete(http_parser *hp)
{
  proxy_resp_t *r = self(hp);
  if (!r->final_head)
    return 0; /* an interim response: the final one follows */
  r->done = true;
  r->keep_alive = http_should_keep_alive(hp) != 0 && !r->upgrade;
  http_parser_pause(hp, 1); /* nothing after the answer belongs to this request */
  return 0;
}

void proxy_resp_init(proxy_resp_t *r, bool head_request, proxy_head_cb on_head,
                     proxy_body_cb on_body_cb, void *arg)
{
  memset(&r->st, 0, sizeof(r->st));
  http_parser_init(&r->hp, HTTP_RESPONSE);
  r->hp.data = r;
  r->st.on_message_begin = on_message_begin;
  r->st.on_status = on_status;
  r->st.on_header_field = on_header_field;
  r->st.on_header_value = on_header_value;
  r->st.on_headers_complete = on_headers_complete;
  r->st.on_body = on_body;
  r->st.on_message_complete = on_message_complete;
  r->head_request = head_request;
  r->on_head = on_head;
  r->on_body = on_body_cb;
  r->arg = arg;
  r->status = 0;
  r->reason[0] = '\0';
  r->reason_len = r->head_len = r->n = 0;
  r->in_value = r->chunked = r->final_head = r->done = r->keep_alive = r->upgrade = false;
  r->content_length = -1;
  r->error = NULL;
}

ssize_t proxy_resp_feed(proxy_resp_t *r, const char *data, size_t len)
{
  size_t used;
  enum http_errno e;
  if (r->done)
    return len == 0 ? 0 : -1;
  used = http_parser_execute(&r->hp, &r->st, data, len);
  e = HTTP_PARSER_ERRNO(&r->hp);
  if (e == HPE_PAUSED || (e == HPE_OK && r->done)) {
    /* the answer is complete; what follows is not this request's (or, after
     * a 101, the new protocol's) */
    if (e == HPE_PAUSED)
      http_parser_pause(&r->hp, 0);
    return (ssize_t)used;
  }
  if (e != HPE_OK || (len > 0 && used != len)) {
    if (r->error == NULL)
      r->error = e == HPE_OK ? "bad response" : http_errno_description(e);
    return -1;
  }
  if (len == 0 && !r->done) {
    r->error = r->final_head ? "upstream closed in the middle of the body"
                             : "upstream closed before a response";
    return -1;
  }
  return (ssize_t)used;
}

const char *proxy_resp_field(const proxy_resp_t *r, const char *name)
{
  for (size_t i = 0; i < r->n; i++)
    if (proxy_name_is(r->f[i].name, name))
      return r->f[i].value;
  return NULL;
}

void proxy_resp_move(proxy_resp_t *dst, const proxy_resp_t *src)
{
  memcpy(dst, src, sizeof(*dst));
  dst->hp.data = dst;
  for (size_t i = 0; i < dst->n; i++) {
    dst->f[i].name = dst->head + (src->f[i].name - src->head);
    if (src->f[i].value != NULL)
      dst->f[i].value = dst->head + (src->f[i].value - src->head);
  }
}

/* framing.c: response framing decisions and status-line/header serialisation. */
#include "httpapi/framing.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <http_parser.h>

gh__frame_t gh__framing_choose(int status, int version, bool final_send, bool app_length,
                               bool *keep_alive)
{
  gh__frame_t f;
  if ((status >= 100 && status < 200) || status == 204 || status == 304)
    f = GH__FRAME_NOBODY;
  else if (app_length || final_send)
    f = GH__FRAME_LENGTH;
  else if (version >= 11)
    f = GH__FRAME_CHUNKED;
  else
    f = GH__FRAME_CLOSE;
  if (f == GH__FRAME_CLOSE)
    *keep_alive = false;
  return f;
}

const char *gh__framing_reason(int status)
{
  if (status == 103)
    return "Early Hints"; /* RFC 8297, unknown to libhttp-parser */
  const char *r = http_status_str((enum http_status)status);
  if (r == NULL || r[0] == '<')
    r = "Unknown";
  return r;
}

static size_t ulen(uint64_t v)
{
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

static char *put(char *p, const char *s, size_t n)
{
  memcpy(p, s, n);
  return p + n;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u(char *p, uint64_t v)
{
  size_t n = ulen(v);
  for (size_t i = n; i > 0; i--) {
    p[i - 1] = (char)('0' + v % 10);
    v /= 10;
  }
  return p + n;
}

/* Connection header the head needs, or NULL. */
static const char *conn_value(const gh__resp_head_t *h)
{
  if (!h->keep_alive)
    return "close";
  if (h->version < 11)
    return "keep-alive";
  return NULL;
}

/* The texts of a head and their lengths (given, or measured). */
typedef struct head_texts {
  const char *reason;
  size_t reason_len, date_len, server_len;
} head_texts_t;

static void head_texts(const gh__resp_head_t *h, head_texts_t *t)
{
  t->reason = h->reason ? h->reason : gh__framing_reason(h->status);
  if (h->lens) {
    t->reason_len = h->reason_len;
    t->date_len = h->date_len;
    t->server_len = h->server_len;
  } else {
    t->reason_len = strlen(t->reason);
    t->date_len = h->date ? strlen(h->date) : 0;
    t->server_len = h->server ? strlen(h->server) : 0;
  }
}

size_t gh__framing_head_len(const gh__resp_head_t *h)
{
  head_texts_t t;
  head_texts(h, &t);
  size_t n = sizeof("HTTP/1.1 000 \r\n") - 1 + t.reason_len;
  if (t.server_len != 0)
    n += sizeof("Server: \r\n") - 1 + t.server_len;
  if (h->date != NULL)
    n += sizeof("Date: \r\n") - 1 + t.date_len;
  for (size_t i = 0; i < h->n_hdrs; i++)
    if (h->hdrs[i].name != NULL)
      n += h->hdrs[i].name_len + 4 + h->hdrs[i].value_len;
  if (h->frame == GH__FRAME_LENGTH && !h->app_length)
    n += sizeof("Content-Length: \r\n") - 1 + ulen(h->content_length);
  else if (h->frame == GH__FRAME_CHUNKED)
    n += sizeof("Transfer-Encoding: chunked\r\n") - 1;
  const char *cv = conn_value(h);
  if (cv != NULL)
    n += sizeof("Connection: \r\n") - 1 + strlen(cv);
  return n + 2;
}

size_t gh__framing_head_write(const gh__resp_head_t *h, char *buf)
{
  head_texts_t t;
  head_texts(h, &t);
  char *p = PUTS(buf, "HTTP/1.1 ");
  int st = h->status % 1000;
  *p++ = (char)('0' + st / 100);
  *p++ = (char)('0' + st / 10 % 10);
  *p++ = (char)('0' + st % 10);
  *p++ = ' ';
  p = put(p, t.reason, t.reason_len);
  p = PUTS(p, "\r\n");
  if (t.server_len != 0) {
    p = PUTS(p, "Server: ");
    p = put(p, h->server, t.server_len);
    p = PUTS(p, "\r\n");
  }
  if (h->date != NULL) {
    p = PUTS(p, "Date: ");
    p = put(p, h->date, t.date_len);
    p = PUTS(p, "\r\n");
  }
  for (size_t i = 0; i < h->n_hdrs; i++) {
    if (h->hdrs[i].name == NULL)
      continue;
    p = put(p, h->hdrs[i].name, h->hdrs[i].name_len);
    p = PUTS(p, ": ");
    p = put(p, h->hdrs[i].value, h->hdrs[i].value_len);
    p = PUTS(p, "\r\n");
  }
  if (h->frame == GH__FRAME_LENGTH && !h->app_length) {
    p = PUTS(p, "Content-Length: ");
    p = put_u(p, h->content_length);
    p = PUTS(p, "\r\n");
  } else if (h->frame == GH__FRAME_CHUNKED) {
    p = PUTS(p, "Transfer-Encoding: chunked\r\n");
  }
  const char *cv = conn_value(h);
  if (cv != NULL) {
    p = PUTS(p, "Connection: ");
    p = put(p, cv, strlen(cv));
    p = PUTS(p, "\r\n");
  }
  p = PUTS(p, "\r\n");
  return (size_t)(p - buf);
}

size_t gh__framing_chunk_header(size_t len, char buf[20])
{
  static const char hex[] = "0123456789abcdef";
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = hex[len & 15];
    len >>= 4;
  } while (len != 0);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  buf[n] = '\r';
  buf[n + 1] = '\n';
  return n + 2;
}

/* response.c: gh_http_response_t — buffered status, headers and body chunks, SEND_RESPONSE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"
#include "util/str.h"

#define GH__PL_AUTOFLUSH (64u * 1024u)
/* Chunk bytes (with their headers) a response may take from the context's
 * pool: see free_chunks. */
#define GH__PL_POOL_CHUNKS 4096u

const char *gh__pl_status_reason(int status)
{
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 413: return "Content Too Large";
  case 416: return "Range Not Satisfiable";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

/* Chunks are malloc'd, not from the request pool, and freed once sent: a
 * response streamed for hours (a proxy relaying a large body) holds only
 * what is not yet sent. The exception: the first GH__PL_POOL_CHUNKS bytes
 * a response writes come from the context's pool (a small response costs
 * no malloc); pool memory is never given back before the request ends, so
 * that budget is counted over the whole response, sent or not. */
static void free_chunks(gh__pl_chunk_t *c)
{
  while (c != NULL) {
    gh__pl_chunk_t *next = c->next;
    if (c->fd >= 0)
      close(c->fd);
    if (!c->pooled)
      free(c);
    c = next;
  }
}

static void drop_chunks(gh_http_response_t *resp)
{
  free_chunks(resp->chunks);
  resp->chunks = NULL;
  resp->chunks_tail = &resp->chunks;
  resp->body_total -= resp->buffered;
  resp->buffered = 0;
}

void gh__pl_response_init(gh_http_response_t *resp, gh_http_context_t *ctx)
{
  memset(resp, 0, sizeof(*resp));
  resp->ctx = ctx;
  resp->status = 200;
  resp->headers_tail = &resp->headers;
  resp->chunks_tail = &resp->chunks;
}

void gh__pl_response_done(gh_http_response_t *resp)
{
  if (resp->chunks_tail != NULL)
    drop_chunks(resp);
}

static bool bad_text(const char *s)
{
  return s == NULL || strpbrk(s, "\r\n") != NULL;
}

int gh_http_response_set_status(gh_http_response_t *resp, int status, const char *reason)
{
  int ret = 0;
  char *r = NULL;
  if (resp == NULL || status < 100 || status > 999 || (reason && bad_text(reason))) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->headers_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  if (reason != NULL) {
    r = gh__pool_strdup(resp->ctx->pool, reason);
    if (r == NULL) {
      ret = -ENOMEM;
      goto out;
    }
  }
  resp->status = status;
  resp->reason = r;
  resp->touched = true;
out:
  return ret;
}

int gh_http_response_get_status(gh_http_response_t *resp)
{
  return resp ? resp->status : -EINVAL;
}

int gh_http_response_delete_header(gh_http_response_t *resp, const char *name)
{
  int ret = 0;
  gh__pl_header_t **pp;
  if (resp == NULL || name == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->headers_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  size_t n = strlen(name);
  if ((resp->name_lens & (UINT64_C(1) << (n & 63))) == 0)
    goto out; /* no field of that length */
  pp = &resp->headers;
  while (*pp != NULL) {
    if ((*pp)->name_len == n && gh__name_eq((*pp)->name, name))
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
  }
  resp->headers_tail = pp;
out:
  return ret;
}

/* strlen of a header value, or (size_t)-1 if it holds CR or LF. */
static size_t text_len(const char *s)
{
  size_t n = strlen(s);
  return gh__has_crlf_nul(s, n) ? (size_t)-1 : n;
}

/* strlen of a header name, or 0 if it is not a token-ish name (visible
 * ASCII but ':'); *ret_token: every byte a tchar (a name the HTTP core
 * takes; the others it refuses when the head is sent). */
static size_t name_len(const char *s, bool *ret_token)
{
  size_t n = 0;
  bool token = true;
  for (unsigned char c; (c = (unsigned char)s[n]) != '\0'; n++) {
    if (gh__is_tchar(c))
      continue;
    if ((unsigned char)(c - 0x21) > 0x7e - 0x21 || c == ':')
      return 0;
    token = false;
  }
  *ret_token = token;
  return n;
}

/* APPEND: value joined to the first field named name (nlen bytes), if any;
 * 1 if done, 0 if there is none, -ENOMEM. */
static int append_value(gh_http_response_t *resp, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
  for (gh__pl_header_t *h = resp->headers; h != NULL; h = h->next) {
    if (h->name_len != nlen || !gh__name_eq(h->name, name))
      continue;
    size_t old = h->value_len, sep = old ? 2 : 0;
    char *v = gh__pool_alloc(resp->ctx->pool, old + sep + vlen + 1);
    if (v == NULL)
      return -ENOMEM;
    memcpy(v, h->value, old);
    memcpy(v + old, ", ", sep);
    memcpy(v + old + sep, value, vlen + 1);
    h->value = v;
    h->value_len = old + sep + vlen;
    return 1;
  }
  return 0;
}

/* REPLACE: every field named name (nlen bytes) dropped. */
static void drop_named(gh_http_response_t *resp, const char *name, size_t nlen)
{
  gh__pl_header_t **pp = &resp->headers;
  while (*pp != NULL) {
    if ((*pp)->name_len == nlen && gh__name_eq((*pp)->name, name))
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
  }
  resp->headers_tail = pp;
}

int gh_http_response_set_header(gh_http_response_t *resp, const char *name, const char *value,
                                gh_header_mode_t mode)
{
  int ret = 0;
  gh__pl_header_t *h;
  size_t nlen, vlen;
  bool token = false;
  uint64_t bit;
  char *mem;
  if (resp == NULL || name == NULL || value == NULL || (unsigned)mode > GH_HEADER_ADD ||
      (nlen = name_len(name, &token)) == 0 || (vlen = text_len(value)) == (size_t)-1) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->headers_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  /* a name whose length no field has is in no field: no walk */
  bit = UINT64_C(1) << (nlen & 63);
  if (mode == GH_HEADER_APPEND && (resp->name_lens & bit) != 0) {
    ret = append_value(resp, name, nlen, value, vlen);
    if (ret != 0) {
      if (ret > 0) {
        resp->touched = true;
        ret = 0;
      }
      goto out;
    }
  }
  if (mode == GH_HEADER_REPLACE && (resp->name_lens & bit) != 0)
    drop_named(resp, name, nlen);
  /* the header, its name and its value in one pool block */
  mem = gh__pool_alloc(resp->ctx->pool, sizeof(*h) + nlen + vlen + 2);
  if (mem == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  h = (gh__pl_header_t *)(void *)mem;
  h->name = mem + sizeof(*h);
  memcpy(h->name, name, nlen + 1);
  h->value = h->name + nlen + 1;
  memcpy(h->value, value, vlen + 1);
  h->name_len = nlen;
  h->value_len = vlen;
  h->token = token;
  h->next = NULL;
  *resp->headers_tail = h;
  resp->headers_tail = &h->next;
  resp->name_lens |= bit;
  resp->touched = true;
out:
  return ret;
}

const char *gh_http_response_get_header(gh_http_response_t *resp, const char *name)
{
  if (resp == NULL || name == NULL)
    return NULL;
  for (gh__pl_header_t *h = resp->headers; h != NULL; h = h->next)
    if (gh__name_eq(h->name, name))
      return h->value;
  return NULL;
}

int gh_http_response_clear(gh_http_response_t *resp)
{
  int ret = 0;
  if (resp == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->headers_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  resp->status = 200;
  resp->reason = NULL;
  resp->headers = NULL;
  resp->headers_tail = &resp->headers;
  resp->name_lens = 0;
  drop_chunks(resp);
out:
  return ret;
}

int gh_http_response_clear_body(gh_http_response_t *resp)
{
  if (resp == NULL)
    return -EINVAL;
  drop_chunks(resp);
  return 0;
}

static int append_chunk(gh_http_response_t *resp, gh__pl_chunk_t *c)
{
  int ret = 0;
  *resp->chunks_tail = c;
  resp->chunks_tail = &c->next;
  resp->buffered += c->len;
  resp->body_total += c->len;
  resp->touched = true;
  if (resp->buffering_off || (resp->buffered >= GH__PL_AUTOFLUSH && !resp->in_send_response))
    ret = gh__pl_response_send_out(resp, false);
  return ret;
}

int gh_http_response_write(gh_http_response_t *resp, const void *data, size_t len)
{
  int ret = 0;
  gh__pl_chunk_t *c;
  if (resp == NULL || (data == NULL && len > 0)) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->final_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  if (len == 0)
    goto out;
  bool pooled = len <= GH__PL_POOL_CHUNKS - sizeof(*c) &&
                resp->pooled_bytes + sizeof(*c) + len <= GH__PL_POOL_CHUNKS;
  c = pooled ? gh__pool_alloc(resp->ctx->pool, sizeof(*c) + len) : malloc(sizeof(*c) + len);
  if (c == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  memset(c, 0, sizeof(*c));
  if (pooled) {
    c->pooled = true;
    resp->pooled_bytes += sizeof(*c) + len;
  }
  c->data = (char *)(c + 1);
  memcpy(c->data, data, len);
  c->fd = -1;
  c->len = len;
  ret = append_chunk(resp, c);
out:
  return ret;
}

int gh_http_response_printf(gh_http_response_t *resp, const char *fmt, ...)
{
  int ret = 0;
  char small[512];
  char *buf = small;
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) {
    ret = -EINVAL;
    goto out;
  }
  if ((size_t)n >= sizeof(small)) {
    buf = gh__pool_alloc(resp->ctx->pool, (size_t)n + 1);
    if (buf == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  ret = gh_http_response_write(resp, buf, (size_t)n);
out:
  return ret;
}

int gh_http_response_write_fd_take(gh_http_response_t *resp, int fd, off_t offset, size_t len)
{
  int ret = 0;
  gh__pl_chunk_t *c = NULL;
  if (resp == NULL || fd < 0 || offset < 0) {
    ret = -EINVAL;
    goto out;
  }
  if (resp->final_sent) {
    ret = GH_ESTATE;
    goto out;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  c->fd = fd;
  fd = -1;
  c->offset = offset;
  c->len = len;
  ret = append_chunk(resp, c);
out:
  if (fd >= 0)
    close(fd);
  return ret;
}

int gh__pl_raise_send_response(gh_http_context_t *ctx, uint32_t flags)
{
  gh_event_provider_t prov = {
      .notification = GH_NOTIFY_SEND_RESPONSE, .ctx = ctx, .send_flags = flags};
  int ret;
  ctx->response.in_send_response = true;
  ret = gh__pl_raise_nested(ctx, &prov);
  ctx->response.in_send_response = false;
  return ret;
}

/* A checked field to the source: without a second check or copy where the
 * source takes it so. */
static int give_header(gh_http_context_t *ctx, const gh__pl_header_t *h)
{
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  if (h->token && ops->add_header_n != NULL)
    return ops->add_header_n(ctx->src, h->name, h->name_len, h->value, h->value_len);
  return ops->add_header(ctx->src, h->name, h->value);
}

/* Status and fields to the source; Content-Length is the total of the
 * buffered chunks on a final send (the module's own is dropped then). */
static int send_head(gh_http_response_t *resp, bool final)
{
  gh_http_context_t *ctx = resp->ctx;
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  int ret = ops->set_status(ctx->src, resp->status, resp->reason);
  for (gh__pl_header_t *h = resp->headers; h != NULL && ret == 0; h = h->next) {
    if (final && h->name_len == 14 && gh__name_eq(h->name, "Content-Length"))
      continue; /* computed below */
    ret = give_header(ctx, h);
  }
  if (ret == 0 && final && resp->buffered > 0 && resp->chunks != NULL &&
      resp->chunks->next != NULL) {
    /* several chunks in one final send: announce the total length */
    static const char cl[] = "Content-Length";
    gh__pl_header_t h = {.name = (char *)cl, .name_len = sizeof(cl) - 1, .token = true};
    h.value = gh__pool_alloc(ctx->pool, GH__U64_TEXT);
    if (h.value == NULL)
      return -ENOMEM;
    h.value_len = gh__u64_text(h.value, resp->buffered);
    ret = give_header(ctx, &h);
  }
  return ret;
}

int gh__pl_response_send_out(gh_http_response_t *resp, bool final)
{
  int ret = 0;
  gh_http_context_t *ctx = resp->ctx;
  const gh__pl_source_ops_t *ops = ctx->src_ops;
  unsigned disc;
  gh__pl_chunk_t *c;

  if (resp->final_sent || resp->in_send_response)
    goto out;
  (void)gh__pl_raise_send_response(ctx,
                                   (final ? GH_SEND_RESPONSE_FLAG_FINAL : 0) |
                                       (resp->headers_sent ? 0 : GH_SEND_RESPONSE_FLAG_HEADERS));
  disc = resp->disconnect ? GH__PL_SEND_DISCONNECT : 0;
  if (!resp->headers_sent) {
    resp->headers_sent = true;
    ret = send_head(resp, final);
    if (ret < 0)
      goto out;
  }
  c = resp->chunks;
  if (c == NULL && final) {
    ret = ops->send(ctx->src, NULL, 0, disc);
  }
  for (; c != NULL; c = c->next) {
    unsigned flags = (final && c->next == NULL) ? disc : GH__PL_SEND_MORE;
    if (c->fd >= 0) {
      ret = ops->send_fd(ctx->src, c->fd, c->offset, c->len, flags);
      close(c->fd);
      c->fd = -1;
    } else {
      ret = ops->send(ctx->src, c->data, c->len, flags);
    }
    if (ret < 0)
      break;
  }
  /* what was handed over is gone from the buffer either way */
  free_chunks(resp->chunks);
  resp->chunks = NULL;
  resp->chunks_tail = &resp->chunks;
  resp->buffered = 0;
  if (final)
    resp->final_sent = true;
out:
  return ret;
}

int gh_http_response_flush(gh_http_response_t *resp)
{
  if (resp == NULL)
    return -EINVAL;
  return gh__pl_response_send_out(resp, false);
}

int gh_http_response_disable_buffering(gh_http_response_t *resp)
{
  if (resp == NULL)
    return -EINVAL;
  resp->buffering_off = true;
  return gh__pl_response_send_out(resp, false);
}

bool gh_http_response_headers_sent(gh_http_response_t *resp)
{
  return resp && resp->headers_sent;
}

uint64_t gh_http_response_get_body_length(gh_http_response_t *resp)
{
  return resp ? resp->body_total : 0;
}

void gh_http_response_set_disconnect(gh_http_response_t *resp)
{
  if (resp != NULL)
    resp->disconnect = true;
}

int gh_http_response_send_error(gh_http_response_t *resp, int status, const char *reason)
{
  int ret = 0;
  const char *r = reason ? reason : gh__pl_status_reason(status);
  if (resp == NULL) {
    ret = -EINVAL;
    goto out;
  }
  ret = gh_http_response_clear(resp);
  if (ret < 0)
    goto out;
  ret = gh_http_response_set_status(resp, status, reason);
  if (ret < 0)
    goto out;
  ret = gh_http_response_set_header(resp, "Content-Type", "text/html; charset=utf-8",
                                    GH_HEADER_REPLACE);
  if (ret < 0)
    goto out;
  ret = gh_http_response_printf(resp,
                                "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                                "<body><h1>%d %s</h1></body></html>\n",
                                status, r, status, r);
out:
  return ret;
}

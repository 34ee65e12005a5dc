/* proxy_relay.c: the upstream request head and Location/Set-Cookie rewriting. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

/* Makes room for n more bytes: false (b->failed) when over the limit or
 * out of memory. */
static bool buf_room(proxy_buf_t *b, size_t n)
{
  if (b->failed)
    return false;
  if (n > b->max - b->len) {
    b->failed = true;
    return false;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->len + n)
      cap *= 2;
    if (b->heap) {
      p = realloc(b->p, cap);
    } else if (b->cap == 0 && b->ctx != NULL) {
      p = gh_http_context_alloc(b->ctx, cap); /* freed with the request */
    } else {
      p = malloc(cap);
      if (p != NULL && b->len > 0)
        memcpy(p, b->p, b->len);
    }
    if (p == NULL) {
      b->failed = true;
      return false;
    }
    b->heap = b->heap || b->cap > 0 || b->ctx == NULL;
    b->p = p;
    b->cap = cap;
  }
  return true;
}

void proxy_buf_free(proxy_buf_t *b)
{
  if (b->heap)
    free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->failed = b->heap = false;
}

void proxy_buf_add(proxy_buf_t *b, const char *s, size_t n)
{
  if (buf_room(b, n)) {
    memcpy(b->p + b->len, s, n);
    b->len += n;
  }
}

void proxy_buf_str(proxy_buf_t *b, const char *s)
{
  proxy_buf_add(b, s, strlen(s));
}

void proxy_buf_field_n(proxy_buf_t *b, const char *name, const char *value, size_t value_len)
{
  size_t nl = strlen(name);
  char *p;
  if (!buf_room(b, nl + value_len + 4))
    return;
  p = b->p + b->len;
  memcpy(p, name, nl);
  memcpy(p + nl, ": ", 2);
  memcpy(p + nl + 2, value, value_len);
  memcpy(p + nl + 2 + value_len, "\r\n", 2);
  b->len += nl + value_len + 4;
}

void proxy_buf_field(proxy_buf_t *b, const char *name, const char *value)
{
  proxy_buf_field_n(b, name, value, strlen(value));
}

size_t proxy_fmt_u64(char *out, uint64_t v)
{
  char d[PROXY_U64_LEN];
  size_t i = sizeof(d), n;
  do {
    d[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  n = sizeof(d) - i;
  memcpy(out, d + i, n);
  out[n] = '\0';
  return n;
}

void proxy_line_add(proxy_line_t *l, const char *s, size_t n)
{
  size_t room = sizeof(l->s) - 1 - l->len;
  if (n > room)
    n = room;
  memcpy(l->s + l->len, s, n);
  l->len += n;
  l->s[l->len] = '\0';
}

void proxy_line_str(proxy_line_t *l, const char *s)
{
  if (s != NULL)
    proxy_line_add(l, s, strlen(s));
}

void proxy_line_u64(proxy_line_t *l, uint64_t v)
{
  char d[PROXY_U64_LEN];
  proxy_line_add(l, d, proxy_fmt_u64(d, v));
}

/* Does the comma-separated token list `list` hold `name` (any case)? */
static bool list_has(const char *list, const char *name)
{
  size_t n = strlen(name);
  const char *p = list;
  while (p != NULL && *p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    size_t k = strcspn(p, ", \t");
    if (k == n && strncasecmp(p, name, n) == 0)
      return true;
    p += k;
  }
  return false;
}

bool proxy_is_hop_by_hop(const char *name, const char *conn)
{
  static const char *const hop[] = {"Connection",      "Keep-Alive", "TE",
                                    "Trailer",         "Upgrade",    "Transfer-Encoding",
                                    "Proxy-Connection"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if (proxy_name_is(name, hop[i]))
      return true;
  /* Proxy-Authenticate / Proxy-Authorization and the rest of Proxy-* are
   * between the client and this server */
  if (strncasecmp(name, "Proxy-", 6) == 0)
    return true;
  return conn != NULL && list_has(conn, name);
}

bool proxy_name_eq_loose(const char *a, const char *b)
{
  for (; *a && *b; a++, b++) {
    char x = *a == '_' ? '-' : (char)tolower((unsigned char)*a);
    char y = *b == '_' ? '-' : (char)tolower((unsigned char)*b);
    if (x != y)
      return false;
  }
  return *a == *b;
}

/* Length of "http://AUTHORITY" when v starts with it (any case), or 0. */
static size_t origin_len(const char *v, const char *authority)
{
  size_t al = authority != NULL ? strlen(authority) : 0;
  if (al == 0 || strncasecmp(v, "http://", 7) != 0 || strncasecmp(v + 7, authority, al) != 0 ||
      (v[7 + al] != '/' && v[7 + al] != '\0'))
    return 0;
  return 7 + al;
}

/* v rewritten from the upstream's prefix to the site path, from position
 * `at` (a path); NULL when the path is not under the prefix. */
static char *swap_prefix(gh_http_context_t *ctx, const proxy_upstream_t *up, const char *site,
                         const char *path)
{
  size_t pl = strlen(up->prefix), sl = strlen(site);
  char *out;
  if (!up->has_prefix || path[0] != '/' || strncmp(path, up->prefix, pl) != 0 ||
      (path[pl] != '\0' && path[pl] != '/' && path[pl] != '?' && path[pl] != ';'))
    return NULL;
  if (sl == 1)
    sl = 0; /* site "/": the prefix goes */
  out = gh_http_context_alloc(ctx, sl + strlen(path + pl) + 2);
  if (out != NULL)
    sprintf(out, "%.*s%s", (int)sl, site, path[pl] ? path + pl : (sl ? "" : "/"));
  return out;
}

char *proxy_rewrite_location(gh_http_context_t *ctx, const proxy_upstream_t *up, const char *site,
                             const char *value, const char *sent_host)
{
  /* the upstream's own address goes (the client cannot reach it); the
   * Host it was given stays, as the client's view of this server */
  size_t o = up->is_unix ? 0 : origin_len(value, up->authority), keep = 0;
  char *path, *out;
  if (o == 0 && (keep = origin_len(value, sent_host)) == 0 && (value[0] != '/' || value[1] == '/'))
    return NULL; /* another origin, or a network-path reference */
  path = swap_prefix(ctx, up, site, value + o + keep);
  if (path == NULL || keep == 0)
    return path;
  out = gh_http_context_alloc(ctx, keep + strlen(path) + 1);
  if (out != NULL)
    sprintf(out, "%.*s%s", (int)keep, value, path);
  return out;
}

char *proxy_rewrite_cookie(gh_http_context_t *ctx, const proxy_upstream_t *up, const char *site,
                           const char *value)
{
  const char *p = value;
  while ((p = strchr(p, ';')) != NULL) {
    p++;
    while (*p == ' ')
      p++;
    if (strncasecmp(p, "path=", 5) != 0)
      continue;
    size_t vl = strcspn(p + 5, ";");
    char *path = gh_http_context_alloc(ctx, vl + 1), *np, *out;
    if (path == NULL)
      return NULL;
    memcpy(path, p + 5, vl);
    path[vl] = '\0';
    np = swap_prefix(ctx, up, site, path);
    if (np == NULL)
      return NULL;
    out = gh_http_context_alloc(ctx, strlen(value) + strlen(np) + 1);
    if (out != NULL)
      sprintf(out, "%.*s%s%s", (int)(p + 5 - value), value, np, p + 5 + vl);
    return out;
  }
  return NULL;
}

/* Does the path of url hold a dot segment ("." or "..", also as %2e)? The
 * server matched sites and rules on the normalized path; the upstream
 * would resolve the segments itself, past a require /sub rule. */
static bool has_dot_segment(const char *url)
{
  const char *p = url;
  size_t end = strcspn(url, "?#");
  while (p < url + end) {
    const char *seg = p + 1; /* after a '/' */
    size_t dots = 0, i = 0;
    if (*p != '/')
      return false;
    while (seg + i < url + end && seg[i] != '/') {
      if (seg[i] == '.')
        i++;
      else if (seg[i] == '%' && seg[i + 1] == '2' && (seg[i + 2] == 'e' || seg[i + 2] == 'E'))
        i += 3;
      else
        break;
      dots++;
    }
    if ((dots == 1 || dots == 2) && (seg + i >= url + end || seg[i] == '/'))
      return true;
    p = seg + strcspn(seg, "/");
    if (p > url + end)
      break;
  }
  return false;
}

/* The request target for the upstream: the site's path swapped for the
 * upstream's prefix when it has one, else the URL as the client sent it. */
static void add_target(proxy_req_t *q, proxy_buf_t *b)
{
  const char *url = gh_http_request_get_url(q->req);
  size_t sl = strlen(q->site);
  if (!q->up->has_prefix) {
    proxy_buf_str(b, url);
    return;
  }
  if (sl > 1 && strncmp(url, q->site, sl) == 0)
    url += sl;
  proxy_buf_str(b, q->up->prefix);
  if (*url != '/' && *url != '\0')
    proxy_buf_add(b, "/", 1);
  proxy_buf_str(b, *url ? url : "/");
}

/* Upgrade (WebSocket …) is relayed when the server can hand the client's
 * connection over: Upgrade and "Connection: upgrade" go upstream. */
static void add_upgrade(proxy_req_t *q, proxy_buf_t *b, const char *conn)
{
  const char *up = gh_http_request_get_header(q->req, "Upgrade");
  q->want_upgrade = up != NULL && conn != NULL && list_has(conn, "upgrade") &&
                    gh_http_request_get_version(q->req) >= 11;
  if (!q->want_upgrade)
    return;
  proxy_buf_field(b, "Connection", "upgrade");
  proxy_buf_field(b, "Upgrade", up);
}

void proxy_fwd_chain(proxy_line_t *l, const char *prior, const char *self)
{
  l->len = 0;
  l->s[0] = '\0';
  if (prior != NULL) {
    proxy_line_str(l, prior);
    proxy_line_add(l, ", ", 2);
  }
  proxy_line_str(l, self);
}

void proxy_fwd_forwarded(proxy_line_t *l, const char *prior, const char *addr, const char *proto,
                         const char *host)
{
  bool v6 = strchr(addr, ':') != NULL;
  proxy_fwd_chain(l, prior, v6 ? "for=\"[" : "for=");
  proxy_line_str(l, addr);
  proxy_line_str(l, v6 ? "]\";proto=" : ";proto=");
  proxy_line_str(l, proto);
  if (host != NULL) {
    proxy_line_add(l, ";host=\"", 7);
    proxy_line_str(l, host);
    proxy_line_add(l, "\"", 1);
  }
}

/* Via, X-Forwarded-*, Forwarded: the client's address and what it asked. */
static void add_forwarding(proxy_req_t *q, proxy_buf_t *b, const char *host)
{
  const char *addr = gh_http_request_get_remote_addr(q->req);
  const char *proto = gh_http_request_is_tls(q->req) ? "https" : "http";
  proxy_line_t line;
  if (addr == NULL || addr[0] == '\0')
    addr = "unknown";
  if (q->conf->via) {
    proxy_fwd_chain(&line, gh_http_request_get_header(q->req, "Via"),
                    gh_http_request_get_version(q->req) >= 11 ? "1.1 gatehouse" : "1.0 gatehouse");
    proxy_buf_field_n(b, "Via", line.s, line.len);
  }
  if (q->conf->x_forwarded) {
    proxy_fwd_chain(&line, gh_http_request_get_header(q->req, "X-Forwarded-For"), addr);
    proxy_buf_field_n(b, "X-Forwarded-For", line.s, line.len);
    proxy_buf_field(b, "X-Forwarded-Proto", proto);
    if (host != NULL)
      proxy_buf_field(b, "X-Forwarded-Host", host);
  }
  if (q->conf->forwarded) {
    proxy_fwd_forwarded(&line, gh_http_request_get_header(q->req, "Forwarded"), addr, proto, host);
    proxy_buf_field_n(b, "Forwarded", line.s, line.len);
  }
}

/* Fields of the client's request that never go upstream as they are. */
static bool dropped_field(proxy_req_t *q, const char *name, const char *conn)
{
  static const char *const own[] = {"Host",
                                    "Content-Length",
                                    "Expect",
                                    "Authorization",
                                    "Via",
                                    "X-Forwarded-For",
                                    "Forwarded",
                                    "X-Forwarded-Proto",
                                    "X-Forwarded-Host"};
  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
    if (proxy_name_is(name, own[i]))
      return true;
  return proxy_is_hop_by_hop(name, conn) || proxy_is_identity_name(q, name);
}

int proxy_build_head(proxy_req_t *q, proxy_buf_t *b, bool *ret_has_body, bool *ret_chunked)
{
  const char *conn = gh_http_request_get_header(q->req, "Connection");
  const char *host = gh_http_request_get_header(q->req, "Host");
  const char *fixed = q->conf->upstream_host;
  int64_t cl = gh_http_request_get_content_length(q->req);
  const char *te = gh_http_request_get_header(q->req, "Transfer-Encoding");
  char num[PROXY_U64_LEN];
  int ret;

  if (has_dot_segment(gh_http_request_get_url(q->req)))
    return -EBADMSG; /* 400 */
  proxy_buf_str(b, gh_http_request_get_method(q->req));
  proxy_buf_add(b, " ", 1);
  add_target(q, b);
  proxy_buf_str(b, " HTTP/1.1\r\n");
  q->sent_host = fixed ? fixed : host ? host : q->up->authority;
  proxy_buf_field(b, "Host", q->sent_host);
  for (size_t i = 0; i < gh_http_request_get_header_count(q->req); i++) {
    const char *n, *v;
    if (gh_http_request_get_header_at(q->req, i, &n, &v) < 0 || dropped_field(q, n, conn))
      continue;
    proxy_buf_field(b, n, v);
  }
  add_upgrade(q, b, conn);
  add_forwarding(q, b, host);
  ret = proxy_add_identity(q, b);
  *ret_chunked = false;
  *ret_has_body = false;
  if (cl > 0) {
    proxy_buf_field_n(b, "Content-Length", num, proxy_fmt_u64(num, (uint64_t)cl));
    *ret_has_body = true;
  } else if (cl < 0 && te != NULL) {
    proxy_buf_field(b, "Transfer-Encoding", "chunked");
    *ret_has_body = *ret_chunked = true;
  } else if (cl == 0 && (te != NULL || strcmp(gh_http_request_get_method(q->req), "POST") == 0 ||
                         strcmp(gh_http_request_get_method(q->req), "PUT") == 0)) {
    proxy_buf_field(b, "Content-Length", "0");
  }
  if (q->keepalive == 0 && !q->want_upgrade)
    proxy_buf_field(b, "Connection", "close");
  proxy_buf_str(b, "\r\n");
  if (ret == 0 && b->failed)
    ret = -ENOMEM;
  return ret;
}

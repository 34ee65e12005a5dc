/* proxy_relay.c: the upstream request head and Location/Set-Cookie rewriting. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"
#include "proxy_idmodes.h"
#include "proxy_names.h"

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

/* Where n more bytes go (b->p + b->len), or NULL (b->failed): the room
 * check inline, buf_room only to grow. */
static inline char *buf_at(proxy_buf_t *b, size_t n)
{
  if (!b->failed && b->p != NULL && n <= b->cap - b->len && n <= b->max - b->len)
    return b->p + b->len;
  return buf_room(b, n) && b->p != NULL ? b->p + b->len : NULL;
}

void proxy_buf_add(proxy_buf_t *b, const char *s, size_t n)
{
  char *p = buf_at(b, n);
  if (p != NULL) {
    memcpy(p, s, n);
    b->len += n;
  }
}

/* Appends a string constant. */
#define PUT_LIT(b, lit) proxy_buf_add((b), (lit), sizeof(lit) - 1)

void proxy_buf_str(proxy_buf_t *b, const char *s)
{
  proxy_buf_add(b, s, strlen(s));
}

/* "name: value\r\n" with both lengths known. */
static void put_field(proxy_buf_t *b, const char *name, size_t nl, const char *value, size_t vl)
{
  char *p = buf_at(b, nl + vl + 4);
  if (p == NULL)
    return;
  memcpy(p, name, nl);
  p[nl] = ':';
  p[nl + 1] = ' ';
  memcpy(p + nl + 2, value, vl);
  p[nl + 2 + vl] = '\r';
  p[nl + 3 + vl] = '\n';
  b->len += nl + vl + 4;
}

void proxy_buf_pieces(proxy_buf_t *b, const proxy_piece_t *pc, size_t n_pc)
{
  size_t total = 0;
  char *p;
  for (size_t i = 0; i < n_pc; i++)
    total += pc[i].n;
  if ((p = buf_at(b, total)) == NULL)
    return;
  for (size_t i = 0; i < n_pc; i++) {
    if (pc[i].n == 2) { /* ": ", "\r\n", ", " */
      p[0] = pc[i].s[0];
      p[1] = pc[i].s[1];
    } else {
      memcpy(p, pc[i].s, pc[i].n);
    }
    p += pc[i].n;
  }
  b->len += total;
}

void proxy_buf_field_n(proxy_buf_t *b, const char *name, const char *value, size_t value_len)
{
  put_field(b, name, strlen(name), value, value_len);
}

void proxy_buf_field(proxy_buf_t *b, const char *name, const char *value)
{
  put_field(b, name, strlen(name), value, strlen(value));
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

/* What a client's request field is to the head builder, from its name. */
enum {
  RQ_HOP = PROXY_HOP, /* hop-by-hop (proxy_hop_kind) */
  RQ_OWN = 1u << 1,   /* the proxy sets its own (Host, Via, X-Forwarded-*, framing…) */
  RQ_CONNECTION = PROXY_HOP_CONNECTION,
  RQ_HOST = 1u << 2,
  RQ_UPGRADE = PROXY_HOP_UPGRADE,
  RQ_TE = PROXY_HOP_TE, /* Transfer-Encoding */
  RQ_VIA = 1u << 6,
  RQ_XFF = 1u << 7, /* X-Forwarded-For */
  RQ_FWD = 1u << 8, /* Forwarded */
};

/* The kind of a client field from its name (n bytes): a length switch and
 * one word-at-a-time compare per candidate. */
static unsigned req_classify(const char *s, size_t n)
{
  unsigned k = proxy_hop_kind(s, n);
  if (k != 0)
    return k;
  switch (n) {
  case 3:
    return proxy_eq_lit(s, "via", 3) ? RQ_OWN | RQ_VIA : 0;
  case 4:
    return proxy_eq_lit(s, "host", 4) ? RQ_OWN | RQ_HOST : 0;
  case 6:
    return proxy_eq_lit(s, "expect", 6) ? RQ_OWN : 0;
  case 9:
    return proxy_eq_lit(s, "forwarded", 9) ? RQ_OWN | RQ_FWD : 0;
  case 13:
    return proxy_eq_lit(s, "authorization", 13) ? RQ_OWN : 0;
  case 14:
    return proxy_eq_lit(s, "content-length", 14) ? RQ_OWN : 0;
  case 15:
    return proxy_eq_lit(s, "x-forwarded-for", 15) ? RQ_OWN | RQ_XFF : 0;
  case 16:
    return proxy_eq_lit(s, "x-forwarded-host", 16) ? RQ_OWN : 0;
  case 17:
    return proxy_eq_lit(s, "x-forwarded-proto", 17) ? RQ_OWN : 0;
  default:
    return 0;
  }
}

bool proxy_is_hop_by_hop(const char *name, const char *conn)
{
  return (req_classify(name, strlen(name)) & RQ_HOP) || (conn != NULL && list_has(conn, name));
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
  size_t end = 0;
  bool maybe = false; /* a '.' or '%' in the path: else no dot segment */
  for (; url[end] != '\0' && url[end] != '?' && url[end] != '#'; end++)
    maybe |= url[end] == '.' || url[end] == '%';
  while (maybe && p < url + end) {
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
    for (p = seg; *p != '\0' && *p != '/'; p++)
      ;
    if (p > url + end)
      break;
  }
  return false;
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

/* The request line and Host, under one room check. The target: the
 * site's path swapped for the upstream's prefix when it has one, else the
 * URL as the client sent it. */
static void put_request_line(const proxy_head_in_t *in, const char *host, proxy_buf_t *b)
{
  proxy_piece_t pc[8];
  size_t n = 0;
  const char *url = in->url;
  pc[n++] = (proxy_piece_t){in->method, strlen(in->method)};
  pc[n++] = PROXY_PIECE(" ");
  if (in->up->has_prefix) {
    size_t sl = strlen(in->site);
    if (sl > 1 && strncmp(url, in->site, sl) == 0)
      url += sl;
    pc[n++] = (proxy_piece_t){in->up->prefix, strlen(in->up->prefix)};
    if (*url != '/' && *url != '\0')
      pc[n++] = PROXY_PIECE("/");
    if (*url == '\0')
      url = "/";
  }
  pc[n++] = (proxy_piece_t){url, strlen(url)};
  pc[n++] = PROXY_PIECE(" HTTP/1.1\r\nHost: ");
  pc[n++] = (proxy_piece_t){host, strlen(host)};
  pc[n++] = PROXY_PIECE("\r\n");
  proxy_buf_pieces(b, pc, n);
}

#define SCAN_FIELDS 64 /* fields whose kind the first pass keeps for the second */
#define CONN_TOKENS 16 /* Connection tokens kept apart (more: the value is searched) */

/* What the first pass over the client's fields found. */
typedef struct head_scan {
  const char *conn, *host, *upgrade, *via, *xff, *fwd; /* the first of each, or NULL */
  bool te;                                             /* a Transfer-Encoding field */
  proxy_name_t tok[CONN_TOKENS];                       /* the Connection value's tokens */
  size_t n_tok;
  bool many_tok; /* more than CONN_TOKENS */
  unsigned kind[SCAN_FIELDS];
  size_t name_len[SCAN_FIELDS];
} head_scan_t;

/* An identity field or the JWT field of the site, in any case and with '_'
 * for '-' (length first: most names differ there). */
static bool is_stripped(const proxy_site_t *s, const char *name, size_t n)
{
  if (n == 0 || !((s->strip_lens >> ((n < 64 ? n : 64) - 1)) & 1))
    return false;
  for (size_t i = 0; i < s->n_strip; i++)
    if (s->strip[i].len == n && proxy_name_eq_loose(name, s->strip[i].s))
      return true;
  return false;
}

/* A field that is one of the site's identity or JWT fields is only that
 * (stripped), whatever else its name is. */
static unsigned field_kind(const proxy_site_t *s, const char *name, size_t n)
{
  return is_stripped(s, name, n) ? RQ_OWN : req_classify(name, n);
}

static void note_first(head_scan_t *sc, unsigned k, const char *v)
{
  const char **slot = k & RQ_CONNECTION ? &sc->conn
                      : k & RQ_HOST     ? &sc->host
                      : k & RQ_UPGRADE  ? &sc->upgrade
                      : k & RQ_VIA      ? &sc->via
                      : k & RQ_XFF      ? &sc->xff
                      : k & RQ_FWD      ? &sc->fwd
                                        : NULL;
  sc->te |= (k & RQ_TE) != 0;
  if (slot != NULL && *slot == NULL)
    *slot = v;
}

/* The Connection value's tokens (as list_has reads them). */
static void conn_tokens(head_scan_t *sc)
{
  const char *p = sc->conn;
  sc->n_tok = 0;
  sc->many_tok = false;
  while (p != NULL && *p) {
    size_t k = 0;
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    while (p[k] != '\0' && p[k] != ',' && p[k] != ' ' && p[k] != '\t')
      k++;
    if (k > 0 && sc->n_tok == CONN_TOKENS)
      sc->many_tok = true;
    else if (k > 0)
      sc->tok[sc->n_tok++] = (proxy_name_t){p, k};
    p += k;
  }
}

static void scan_fields(const proxy_head_in_t *in, head_scan_t *sc)
{
  sc->conn = sc->host = sc->upgrade = sc->via = sc->xff = sc->fwd = NULL;
  sc->te = false;
  for (size_t i = 0; i < in->n_fields; i++) {
    size_t n = strlen(in->names[i]);
    unsigned k = field_kind(in->conf, in->names[i], n);
    if (i < SCAN_FIELDS) {
      sc->kind[i] = k;
      sc->name_len[i] = n;
    }
    if (k & ~(RQ_HOP | RQ_OWN))
      note_first(sc, k, in->values[i]);
  }
  conn_tokens(sc);
}

/* Does the Connection value name this field (any case)? */
static bool conn_named(const head_scan_t *sc, const char *name, size_t n)
{
  if (sc->conn == NULL)
    return false;
  if (sc->many_tok || n == 0)
    return list_has(sc->conn, name);
  for (size_t i = 0; i < sc->n_tok; i++)
    if (sc->tok[i].len == n && proxy_eq_ci(sc->tok[i].s, name, n))
      return true;
  return false;
}

/* The client's fields that go upstream as they are, in their order. */
static void put_client_fields(const proxy_head_in_t *in, const head_scan_t *sc, proxy_buf_t *b)
{
  for (size_t i = 0; i < in->n_fields; i++) {
    const char *n = in->names[i], *v = in->values[i];
    size_t nl = i < SCAN_FIELDS ? sc->name_len[i] : strlen(n);
    unsigned k = i < SCAN_FIELDS ? sc->kind[i] : field_kind(in->conf, n, nl);
    if ((k & (RQ_HOP | RQ_OWN)) || conn_named(sc, n, nl))
      continue;
    put_field(b, n, nl, v, strlen(v));
  }
}

/* The pieces of "PRE" (a "Name: ") then "PRIOR, SELF" (prior NULL:
 * "SELF") cut at PROXY_LINE_MAX - 1 bytes as proxy_fwd_chain cuts it, then
 * CRLF (at most 5). Returns how many. */
static size_t chain_pieces(proxy_piece_t *pc, proxy_piece_t pre, const char *prior,
                           const char *self, size_t sl)
{
  const size_t cut = PROXY_LINE_MAX - 1;
  size_t a = prior != NULL ? strlen(prior) : 0, c, d, n = 0;
  a = a < cut ? a : cut;
  c = prior == NULL ? 0 : cut - a < 2 ? cut - a : 2;
  d = cut - a - c < sl ? cut - a - c : sl;
  pc[n++] = pre;
  if (a > 0)
    pc[n++] = (proxy_piece_t){prior, a};
  if (c > 0)
    pc[n++] = (proxy_piece_t){", ", c};
  if (d > 0)
    pc[n++] = (proxy_piece_t){self, d};
  pc[n++] = PROXY_PIECE("\r\n");
  return n;
}

/* Via, X-Forwarded-*, Forwarded: the client's address and what it asked. */
static void put_forwarding(const proxy_head_in_t *in, const head_scan_t *sc, proxy_buf_t *b)
{
  const char *addr = in->addr != NULL && in->addr[0] != '\0' ? in->addr : "unknown";
  const char *proto = in->tls ? "https" : "http";
  proxy_piece_t pc[16];
  size_t n = 0;
  if (in->conf->via)
    n += chain_pieces(pc + n, PROXY_PIECE("Via: "), sc->via,
                      in->version >= 11 ? "1.1 gatehouse" : "1.0 gatehouse", 13);
  if (in->conf->x_forwarded) {
    n += chain_pieces(pc + n, PROXY_PIECE("X-Forwarded-For: "), sc->xff, addr, strlen(addr));
    pc[n++] = in->tls ? PROXY_PIECE("X-Forwarded-Proto: https\r\n")
                      : PROXY_PIECE("X-Forwarded-Proto: http\r\n");
    if (sc->host != NULL) {
      pc[n++] = PROXY_PIECE("X-Forwarded-Host: ");
      pc[n++] = (proxy_piece_t){sc->host, strlen(sc->host)};
      pc[n++] = PROXY_PIECE("\r\n");
    }
  }
  proxy_buf_pieces(b, pc, n);
  if (in->conf->forwarded) {
    proxy_line_t line;
    proxy_fwd_forwarded(&line, sc->fwd, addr, proto, sc->host);
    put_field(b, "Forwarded", 9, line.s, line.len);
  }
}

int proxy_head_fields(const proxy_head_in_t *in, proxy_buf_t *b, proxy_head_out_t *out)
{
  const char *fixed = in->conf->upstream_host;
  head_scan_t sc;
  if (has_dot_segment(in->url))
    return -EBADMSG; /* 400 */
  scan_fields(in, &sc);
  out->sent_host = fixed ? fixed : sc.host ? sc.host : in->up->authority;
  put_request_line(in, out->sent_host, b);
  put_client_fields(in, &sc, b);
  /* Upgrade (WebSocket …) is relayed when the server can hand the client's
   * connection over: Upgrade and "Connection: upgrade" go upstream */
  out->want_upgrade = sc.upgrade != NULL && conn_named(&sc, "upgrade", 7) && in->version >= 11;
  if (out->want_upgrade) {
    PUT_LIT(b, "Connection: upgrade\r\n");
    put_field(b, "Upgrade", 7, sc.upgrade, strlen(sc.upgrade));
  }
  put_forwarding(in, &sc, b);
  out->te = sc.te;
  if (in->has_user)
    proxy_put_identity(in->conf, in->ident, b);
  return 0;
}

void proxy_head_end(const proxy_head_in_t *in, proxy_buf_t *b, proxy_head_out_t *out)
{
  int64_t cl = in->content_length;
  char num[PROXY_U64_LEN];
  out->has_body = out->chunked = false;
  if (cl > 0) {
    put_field(b, "Content-Length", 14, num, proxy_fmt_u64(num, (uint64_t)cl));
    out->has_body = true;
  } else if (cl < 0 && out->te) {
    PUT_LIT(b, "Transfer-Encoding: chunked\r\n");
    out->has_body = out->chunked = true;
  } else if (cl == 0 &&
             (out->te || strcmp(in->method, "POST") == 0 || strcmp(in->method, "PUT") == 0)) {
    PUT_LIT(b, "Content-Length: 0\r\n");
  }
  if (!in->keepalive && !out->want_upgrade)
    PUT_LIT(b, "Connection: close\r\n");
  PUT_LIT(b, "\r\n");
}

#define HEAD_FIELDS 64 /* client fields gathered on the stack (more: request memory) */

int proxy_build_head(proxy_req_t *q, proxy_buf_t *b, bool *ret_has_body, bool *ret_chunked)
{
  const char *names_s[HEAD_FIELDS], *values_s[HEAD_FIELDS], **names = names_s, **values = values_s;
  size_t n = gh_http_request_get_header_count(q->req), k = 0;
  proxy_head_in_t in = {.conf = q->conf,
                        .up = q->up,
                        .site = q->site,
                        .method = gh_http_request_get_method(q->req),
                        .url = gh_http_request_get_url(q->req),
                        .version = gh_http_request_get_version(q->req),
                        .tls = gh_http_request_is_tls(q->req),
                        .addr = gh_http_request_get_remote_addr(q->req),
                        .content_length = gh_http_request_get_content_length(q->req),
                        .keepalive = q->keepalive != 0};
  proxy_head_out_t out;
  int ret;
  if (q->idm == NULL)
    return -ENOMEM; /* the identity modes' state: fail closed */
  if (n > HEAD_FIELDS) {
    if ((names = gh_http_context_alloc(q->ctx, 2 * n * sizeof(*names))) == NULL)
      return -ENOMEM;
    values = names + n;
  }
  for (size_t i = 0; i < n; i++)
    if (gh_http_request_get_header_at(q->req, i, &names[k], &values[k]) == 0)
      k++;
  in.names = names;
  in.values = values;
  in.n_fields = k;
  if ((ret = proxy_identity_values(q, in.ident)) < 0)
    return ret;
  in.has_user = ret > 0;
  if ((ret = proxy_head_fields(&in, b, &out)) != 0)
    return ret;
  q->sent_host = out.sent_host;
  q->want_upgrade = out.want_upgrade;
  if (in.has_user)
    ret = proxy_idm_add_fields(q, b); /* JWT, Negotiate */
  proxy_head_end(&in, b, &out);
  *ret_has_body = out.has_body;
  *ret_chunked = out.chunked;
  if (ret == 0 && b->failed)
    ret = -ENOMEM;
  return ret;
}

/* http_parse.c: HTTP/1.x request parser glue over libhttp-parser (limits, smuggling checks, storage). */
#include "httpapi/http_parse.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/str.h"

enum { PH_IDLE, PH_HEADERS, PH_BODY, PH_DONE };
enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };
enum { EV_NONE, EV_HEADERS, EV_DONE };

static int fail(gh__http_parser_t *p, int status)
{
  if (p->status == 0)
    p->status = status;
  return 1;
}

/* Room for len more bytes and a NUL in hbuf. */
static int hbuf_reserve(gh__http_msg_t *m, size_t len)
{
  if (len > SIZE_MAX / 2 - m->hlen)
    return -ENOMEM;
  if (m->hlen + len + 1 > m->hcap) {
    size_t cap = m->hcap ? m->hcap : 512;
    while (cap < m->hlen + len + 1)
      cap *= 2;
    char *n = gh__realloc(m->hbuf, cap);
    if (n == NULL)
      return -ENOMEM;
    m->hbuf = n;
    m->hcap = cap;
  }
  return 0;
}

static int hbuf_append(gh__http_msg_t *m, const char *at, size_t len)
{
  if (hbuf_reserve(m, len) != 0)
    return -ENOMEM;
  memcpy(m->hbuf + m->hlen, at, len);
  m->hlen += len;
  return 0;
}

static int hbuf_nul(gh__http_msg_t *m)
{
  static const char z = '\0';
  return hbuf_append(m, &z, 1);
}

static int on_message_begin(http_parser *hp)
{
  gh__http_parser_t *p = hp->data;
  p->phase = PH_HEADERS;
  return 0;
}

static bool is_ctl(unsigned char c)
{
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* True if s holds a control character other than HTAB (NUL included).
 * Eight bytes per step; a word with a byte below 0x20 or a DEL is looked at
 * byte by byte (HTAB is allowed). */
static bool has_ctl(const char *s, size_t len)
{
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w = gh__load64(s + i);
    if (gh__bytes_below(w, 0x20) | gh__bytes_zero(w ^ (GH__BYTES_ONES * 0x7f))) {
      for (size_t k = i; k < i + 8; k++)
        if (is_ctl((unsigned char)s[k]))
          return true;
    }
  }
  for (; i < len; i++)
    if (is_ctl((unsigned char)s[i]))
      return true;
  return false;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
  gh__http_parser_t *p = hp->data;
  gh__http_msg_t *m = p->msg;
  if (has_ctl(at, len))
    return fail(p, 400);
  m->url_len += len;
  if (m->url_len > p->lim->max_uri)
    return fail(p, 414);
  p->last_cb = CB_URL;
  return hbuf_append(m, at, len) ? fail(p, 503) : 0;
}

static int grow_headers(gh__http_msg_t *m)
{
  unsigned cap = m->hcap_n ? m->hcap_n * 2 : 16;
  gh__http_hoff_t *o = gh__realloc(m->hoffs, cap * sizeof(*o));
  if (o == NULL)
    return -ENOMEM;
  m->hoffs = o;
  gh__http_header_t *h = gh__realloc(m->headers, cap * sizeof(*h));
  if (h == NULL)
    return -ENOMEM;
  m->headers = h;
  m->hcap_n = cap;
  return 0;
}

/* A byte limit as the 32-bit per-message counters can hold it (4 GiB of
 * header section is never a sane limit). */
static size_t cap32(size_t limit)
{
  return limit < UINT32_MAX ? limit : UINT32_MAX;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
  gh__http_parser_t *p = hp->data;
  gh__http_msg_t *m = p->msg;
  p->in_authz = false;
  /* RFC 9110 tchar: a field name is a token ("Name : v" and "X Y: v" are
   * 400, RFC 9112 §5.1, instead of libhttp-parser's lenient reading) */
  for (size_t i = 0; i < len; i++)
    if (!gh__is_tchar((unsigned char)at[i]))
      return fail(p, 400);
  p->header_bytes += len + (p->last_cb != CB_FIELD ? 4 : 0);
  if (p->header_bytes > p->lim->max_header_bytes)
    return fail(p, 431);
  if (p->phase == PH_BODY) /* trailers are counted, not kept */
    return 0;
  if (p->last_cb != CB_FIELD) {
    if (m->n_headers >= p->lim->max_header_count)
      return fail(p, 431);
    if (m->n_headers == m->hcap_n && grow_headers(m) != 0)
      return fail(p, 503);
    if (hbuf_nul(m) != 0) /* ends the URL or the previous value */
      return fail(p, 503);
    gh__http_hoff_t *o = &m->hoffs[m->n_headers++];
    o->noff = (uint32_t)m->hlen;
    o->nlen = 0;
    o->voff = 0;
    o->vlen = 0;
    p->last_cb = CB_FIELD;
  }
  m->hoffs[m->n_headers - 1].nlen += (uint32_t)len;
  return hbuf_append(m, at, len) ? fail(p, 503) : 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
  gh__http_parser_t *p = hp->data;
  gh__http_msg_t *m = p->msg;
  if (has_ctl(at, len)) /* a NUL would cut the C string the application sees */
    return fail(p, 400);
  gh__http_hoff_t *o = p->phase == PH_BODY ? NULL : &m->hoffs[m->n_headers - 1];
  /* the first value bytes of a field (its name is complete): an
   * Authorization value has its own budget, the token limit's (a Kerberos
   * token with a large AD PAC is far above any other field) */
  if (o != NULL && p->last_cb == CB_FIELD)
    p->in_authz = p->lim->max_authz_bytes != 0 && o->nlen == 13 &&
                  strncasecmp(m->hbuf + o->noff, "authorization", 13) == 0;
  if (p->in_authz) {
    if (len > cap32(p->lim->max_authz_bytes) - p->authz_bytes)
      return fail(p, 400);
    p->authz_bytes += (uint32_t)len;
  } else {
    p->header_bytes += len;
    if (p->header_bytes > p->lim->max_header_bytes)
      return fail(p, 431);
  }
  if (o == NULL) /* trailers are counted, not kept */
    return 0;
  if (p->last_cb != CB_VALUE) {
    if (hbuf_nul(m) != 0)
      return fail(p, 503);
    o->voff = (uint32_t)m->hlen;
    o->vlen = 0;
    p->last_cb = CB_VALUE;
  }
  o->vlen += (uint32_t)len;
  return hbuf_append(m, at, len) ? fail(p, 503) : 0;
}

static bool is_ows(char c)
{
  return c == ' ' || c == '\t';
}

/* Checks every comma-separated token of a Transfer-Encoding value: only one
 * "chunked" in the whole message is understood. */
static int check_te(gh__http_parser_t *p, const char *v, unsigned *n_chunked)
{
  int ret = 0;
  while (*v != '\0') {
    while (is_ows(*v) || *v == ',')
      v++;
    const char *s = v;
    while (*v != '\0' && *v != ',')
      v++;
    const char *e = v;
    while (e > s && is_ows(e[-1]))
      e--;
    if (e == s)
      continue;
    if ((size_t)(e - s) == 7 && strncasecmp(s, "chunked", 7) == 0)
      (*n_chunked)++;
    else
      ret = 501;
  }
  return ret;
}

static int on_headers_complete(http_parser *hp)
{
  gh__http_parser_t *p = hp->data;
  gh__http_msg_t *m = p->msg;
  int status = 0;

  /* returning 1 here would mean "skip body": errors must be negative */
  if (hbuf_nul(m) != 0) {
    fail(p, 503);
    return -1;
  }
  /* hbuf no longer grows for this message: pointers are stable now */
  m->url = m->hbuf;
  const char *first_cl = NULL;
  unsigned n_chunked = 0;
  for (unsigned i = 0; i < m->n_headers; i++) {
    gh__http_hoff_t *o = &m->hoffs[i];
    gh__http_header_t *h = &m->headers[i];
    char *name = m->hbuf + o->noff;
    char *value = o->voff ? m->hbuf + o->voff : name + o->nlen; /* empty value: the NUL after the name */
    uint32_t vlen = o->voff ? o->vlen : 0;
    while (vlen > 0 && is_ows(value[0])) {
      value++;
      vlen--;
    }
    while (vlen > 0 && is_ows(value[vlen - 1]))
      vlen--;
    value[vlen] = '\0';
    h->name = name;
    h->name_len = o->nlen;
    h->value = value;
    h->value_len = vlen;
    if (strcasecmp(name, "host") == 0) {
      p->n_host++;
    } else if (strcasecmp(name, "content-length") == 0) {
      if (first_cl != NULL && strcmp(first_cl, value) != 0 && status == 0)
        status = 400;
      first_cl = value;
      p->n_cl++;
    } else if (strcasecmp(name, "transfer-encoding") == 0) {
      int r = check_te(p, value, &n_chunked);
      if (r != 0 && status == 0)
        status = r;
      p->n_te++;
    } else if (strcasecmp(name, "expect") == 0) {
      if (strcasecmp(value, "100-continue") == 0)
        m->expect_continue = hp->http_major == 1 && hp->http_minor >= 1;
      else if (status == 0)
        status = 417;
    }
  }
  m->http_major = hp->http_major;
  m->http_minor = hp->http_minor;
  m->method = hp->method;
  m->method_str = http_method_str((enum http_method)hp->method);
  m->head = hp->method == HTTP_HEAD;
  m->chunked = (hp->flags & F_CHUNKED) != 0;
  m->has_content_length = (hp->flags & F_CONTENTLENGTH) != 0 || p->n_cl > 0;
  m->content_length = m->has_content_length ? hp->content_length : 0;
  m->keep_alive = http_should_keep_alive(hp) != 0;

  if (m->http_major != 1)
    status = 505;
  else if (p->n_te > 0 && m->http_minor == 0)
    status = 400; /* HTTP/1.0 + Transfer-Encoding: faulty framing (RFC 9112 6.1), see security.md */
  else if (p->n_te > 0 && p->n_cl > 0)
    status = 400; /* CL + TE: request smuggling */
  else if (status == 0 && n_chunked > 1)
    status = 400;
  else if (status == 0 && p->n_te > 0 && !m->chunked)
    status = 501;
  else if (status == 0 && (p->n_host > 1 || (m->http_minor >= 1 && p->n_host == 0)))
    status = 400;
  else if (status == 0 && hp->method == HTTP_CONNECT)
    status = 501;
  if (status == 0 && m->has_content_length && m->content_length > p->max_body)
    status = 413;
  if (status != 0) {
    fail(p, status);
    return -1;
  }

  p->phase = PH_BODY;
  p->event = EV_HEADERS;
  http_parser_pause(hp, 1);
  return 0;
}

/* Chunked framing (size lines, extensions, CRLFs, trailers) must end its
 * lines with CRLF: libhttp-parser ignores a bare LF inside a chunk extension,
 * a classic request-smuggling disagreement with other parsers. */
static bool frame_bare_lf(gh__http_parser_t *p, const char *s, const char *e)
{
  for (; s < e; s++) {
    if (*s == '\n' && !p->frame_prev_cr)
      return true;
    /* chunk data ends with exactly CRLF: libhttp-parser (not strict)
     * takes any two bytes there, a smuggling disagreement */
    if (p->frame_crlf > 0 && *s != (p->frame_crlf == 2 ? '\r' : '\n'))
      return true;
    if (p->frame_crlf > 0)
      p->frame_crlf--;
    p->frame_prev_cr = *s == '\r';
    /* a size line with endless extensions, or an endless trailer line */
    p->frame_line = *s == '\n' ? 0 : p->frame_line + 1;
    if (p->frame_line > GH__HTTP_CHUNK_LINE_MAX)
      return true;
  }
  return false;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
  gh__http_parser_t *p = hp->data;
  gh__http_msg_t *m = p->msg;
  if (m->chunked && p->frame_from != NULL) {
    if (p->frame_from < at && frame_bare_lf(p, p->frame_from, at))
      return fail(p, 400);
    p->frame_from = at + len;
    p->frame_prev_cr = false;
    p->frame_line = 0;
    if (hp->content_length == 0) /* the end of this chunk's data */
      p->frame_crlf = 2;
  }
  if (len > p->max_body || p->body_seen > p->max_body - len)
    return fail(p, 413);
  p->body_seen += len;
  if (m->body_len + len > m->body_cap) {
    size_t cap = m->body_cap ? m->body_cap : 1024;
    if (m->has_content_length && m->content_length > cap && !p->stream)
      cap = (size_t)m->content_length;
    while (cap < m->body_len + len)
      cap *= 2;
    char *n = gh__realloc(m->body, cap);
    if (n == NULL)
      return fail(p, 503);
    m->body = n;
    m->body_cap = cap;
  }
  memcpy(m->body + m->body_len, at, len);
  m->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *hp)
{
  gh__http_parser_t *p = hp->data;
  p->msg->keep_alive = http_should_keep_alive(hp) != 0;
  p->phase = PH_DONE;
  p->event = EV_DONE;
  http_parser_pause(hp, 1);
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

size_t gh__http_section_max(const gh__http_limits_t *lim)
{
  /* request line and empty lines around the fields: 1 KiB over the URL */
  return lim->max_uri + lim->max_header_bytes + lim->max_authz_bytes + 1024;
}

/* libhttp-parser's own cap on a header section (80 KiB, one process-wide
 * value) is below an Authorization field of the default token limit (a
 * 64 KiB token is 87,384 base64 bytes): lifted once; gatehouse's own counts
 * (fields, Authorization, and the section, gh__http_section_max) are the
 * limits. */
static void lift_libhttp_cap(void)
{
  http_parser_set_max_header_size(0x7fffffffu);
}

void gh__http_parser_init(gh__http_parser_t *p, const gh__http_limits_t *lim)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, lift_libhttp_cap);
  memset(p, 0, sizeof(*p));
  p->lim = lim;
}

void gh__http_parser_begin(gh__http_parser_t *p, gh__http_msg_t *msg)
{
  const gh__http_limits_t *lim = p->lim;
  bool fast_off = p->fast_off;
  memset(p, 0, sizeof(*p));
  p->lim = lim;
  p->fast_off = fast_off;
  p->msg = msg;
  p->max_body = lim->max_body;
  p->scan_line_start = true;
  http_parser_init(&p->hp, HTTP_REQUEST);
  p->hp.data = p;
  msg->hlen = 0;
  msg->n_headers = 0;
  msg->body_len = 0;
  msg->url = NULL;
  msg->url_len = 0;
  msg->content_length = 0;
  msg->has_content_length = false;
  msg->chunked = false;
  msg->expect_continue = false;
  msg->keep_alive = false;
  msg->head = false;
}

/* Finds obsolete line folding (a header line starting with SP/HT), bare LF
 * line ends and bare CRs, which libhttp-parser (not built strict) silently
 * accepts, in the bytes of the header section (request line included). A
 * bare CR is the dangerous one: libhttp-parser ends the header line (or the
 * whole section) at "\r" whatever follows, where a proxy in front may read
 * the bytes as one value: a request-smuggling mismatch. So every CR must be
 * followed by its LF and every LF preceded by its CR (RFC 9112 2.2).
 *
 * Per line only its first byte (fold, or the empty line that ends the
 * section) and its CR/LF matter: the rest is skipped with memchr. State
 * carried between feeds: scan_line_start, scan_prev_cr (the last byte was
 * a CR: an LF must come next), scan_lines, scan_done. */
static bool scan_obs_fold(gh__http_parser_t *p, const char *data, size_t len)
{
  const char *s = data, *end = data + len;
  bool prev_cr = p->scan_prev_cr;
  bool ret = false;

  while (s < end && !p->scan_done) {
    if (prev_cr) {
      if (*s++ != '\n') { /* bare CR */
        ret = true;
        goto out;
      }
      prev_cr = false;
      if (!p->scan_line_start) {
        p->scan_line_start = true;
        p->scan_lines++;
      } else if (p->scan_lines > 0) {
        p->scan_done = true; /* the empty line: the body is not ours to scan */
      } /* else an empty line before the request line: skipped, as RFC 9112 allows */
      continue;
    }
    if (p->scan_line_start) {
      char c = *s++;
      if (c == '\n') { /* bare LF */
        ret = true;
        goto out;
      }
      if (c == '\r') {
        prev_cr = true;
        continue;
      }
      if ((c == ' ' || c == '\t') && p->scan_lines > 0) { /* obs-fold */
        ret = true;
        goto out;
      }
      p->scan_line_start = false;
      continue;
    }
    /* inside a line: its CR ends it, and no LF may come before that */
    const char *cr = memchr(s, '\r', (size_t)(end - s));
    const char *lim = cr != NULL ? cr : end;
    if (memchr(s, '\n', (size_t)(lim - s)) != NULL) {
      ret = true;
      goto out;
    }
    if (cr == NULL) {
      s = end;
      break;
    }
    prev_cr = true;
    s = cr + 1;
  }
out:
  p->scan_prev_cr = prev_cr;
  return ret;
}

static int map_errno(enum http_errno e)
{
  switch (e) {
  case HPE_HEADER_OVERFLOW:
    return 431;
  case HPE_INVALID_TRANSFER_ENCODING:
    return 501;
  case HPE_INVALID_VERSION:
    return 400;
  default:
    return 400;
  }
}

/* ---- the fast path ------------------------------------------------------
 *
 * A message whose whole head is in its first feed, and that uses nothing
 * unusual, is read here in one pass into the same results; anything else
 * (any limit reached, a byte or token outside the strict grammar below, a
 * body, Transfer-Encoding, Upgrade, a Connection other than one "close" or
 * "keep-alive", CONNECT, leading empty lines...) makes fast_head() return
 * false having changed nothing the slow path reads, and libhttp-parser takes
 * the message from its first byte and answers as it always did. Every rule
 * is at least as strict as the slow path's, so a head taken here is one the
 * slow path takes with the same results.
 *
 * Only heads without a body are taken (no Content-Length, or exactly
 * "Content-Length: 0"): the body states (identity, chunked, streaming,
 * max_body) stay libhttp-parser's alone, and after GH__HTTP_HEADERS the one
 * byte left of the head (its final LF, where the slow path pauses too) ends
 * the message. */

typedef struct fast_method {
  char s[9]; /* the method and its SP */
  uint8_t len;
  uint8_t method;
} fast_method_t;

static const fast_method_t fast_methods[] = {
    {"GET ", 4, HTTP_GET},     {"HEAD ", 5, HTTP_HEAD},     {"POST ", 5, HTTP_POST},
    {"PUT ", 4, HTTP_PUT},     {"DELETE ", 7, HTTP_DELETE}, {"OPTIONS ", 8, HTTP_OPTIONS},
    {"PATCH ", 6, HTTP_PATCH},
};

/* The method and its SP at s (n bytes): their length, 0 if not one of ours. */
static size_t fast_method(const char *s, size_t n, unsigned *method)
{
  for (size_t i = 0; i < sizeof(fast_methods) / sizeof(fast_methods[0]); i++) {
    const fast_method_t *m = &fast_methods[i];
    if (m->s[0] == s[0] && n > m->len && memcmp(s, m->s, m->len) == 0) {
      *method = m->method;
      return m->len;
    }
  }
  return 0;
}

/* An origin-form request-target at s: '/' then visible ASCII up to the SP.
 * Its length, 0 if it is not one. */
static size_t fast_target(const char *s, const char *end)
{
  const char *t = s;
  if (t == end || *t != '/')
    return 0;
  for (; end - t >= 8; t += 8) {
    uint64_t w = gh__load64(t);
    if (gh__bytes_below(w, 0x21) | (w & GH__BYTES_HIGH) |
        gh__bytes_zero(w ^ (GH__BYTES_ONES * 0x7f)))
      break;
  }
  while (t < end && (unsigned)(unsigned char)*t - 0x21u < 0x5eu)
    t++;
  return t < end && *t == ' ' ? (size_t)(t - s) : 0;
}

/* s (n bytes, no CTL but HTAB) equals the lowercase ASCII lit, ignoring the
 * case of letters: `| 0x20` maps no other byte that can be here onto a
 * letter, digit or '-' (only CTLs and CR would). */
static bool fast_eq(const char *s, size_t n, const char *lit, size_t lit_len)
{
  if (n != lit_len)
    return false;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
      return false;
  return true;
}

/* What the fast path learns of a head. */
typedef struct fast_facts {
  unsigned n_host, n_conn;
  bool has_cl, expect, close, keep;
  size_t header_bytes, authz_bytes;
} fast_facts_t;

/* n (nlen bytes) starts with the lowercase lit. */
static bool fast_prefix(const char *n, size_t nlen, const char *lit, size_t lit_len)
{
  return nlen >= lit_len && fast_eq(n, lit_len, lit, lit_len);
}

/* One field: its semantics as on_headers_complete and libhttp-parser see
 * them; v (vlen bytes) is the value without OWS, raw its length with the
 * trailing OWS. False for anything the fast path leaves to the slow one:
 * libhttp-parser reads a name by its prefix in places (a field named
 * "Transfer-Encodings" is a Transfer-Encoding to it) and a Connection or
 * Content-Length value with a trailing HTAB is not what it seems, so any
 * name starting with one of its special names but the exact ones, and those
 * values with trailing OWS, are its own. */
static bool fast_field(fast_facts_t *f, const char *n, size_t nlen, const char *v, size_t vlen,
                       size_t raw)
{
  if (nlen == 4) {
    f->n_host += fast_eq(n, 4, "host", 4);
  } else if (nlen == 6 && fast_eq(n, 6, "expect", 6)) {
    f->expect = true;
    return fast_eq(v, vlen, "100-continue", 12);
  }
  switch (n[0] | 0x20) {
  case 'c':
    if (fast_prefix(n, nlen, "connection", 10)) {
      f->close = fast_eq(v, raw, "close", 5);
      f->keep = fast_eq(v, raw, "keep-alive", 10);
      return nlen == 10 && ++f->n_conn == 1 && (f->close || f->keep);
    }
    if (fast_prefix(n, nlen, "content-length", 14)) {
      if (nlen != 14 || f->has_cl || raw != 1 || v[0] != '0')
        return false;
      f->has_cl = true;
    }
    return true;
  case 'p':
    return !fast_prefix(n, nlen, "proxy-connection", 16);
  case 't':
    return !fast_prefix(n, nlen, "transfer-encoding", 17);
  case 'u':
    return !fast_prefix(n, nlen, "upgrade", 7);
  default:
    return true;
  }
}

/* The fields from s to the empty line: hoffs (offsets from data), the facts,
 * and where the head ends (after the empty line's LF). False to fall back. */
static bool fast_fields(gh__http_parser_t *p, const char *data, const char *s, const char *end,
                        fast_facts_t *f, const char **ret_end)
{
  gh__http_msg_t *m = p->msg;
  const gh__http_limits_t *lim = p->lim;
  bool authz_own = lim->max_authz_bytes != 0;
  for (;;) {
    if (end - s < 2)
      return false;
    if (s[0] == '\r') {
      *ret_end = s + 2;
      return s[1] == '\n';
    }
    const char *name = s;
    while (s < end && gh__is_tchar((unsigned char)*s))
      s++;
    if (s == name || s == end || *s != ':')
      return false;
    size_t nlen = (size_t)(s - name);
    const char *v = s + 1;
    const char *cr = memchr(v, '\r', (size_t)(end - v));
    if (cr == NULL || end - cr < 2 || cr[1] != '\n' || has_ctl(v, (size_t)(cr - v)))
      return false;
    while (v < cr && is_ows(v[0]))
      v++;
    /* the limits count the value as libhttp-parser hands it over: from its
     * first byte after the OWS to the CR (trailing OWS included) */
    size_t raw = (size_t)(cr - v);
    f->header_bytes += nlen + 4;
    if (authz_own && fast_eq(name, nlen, "authorization", 13))
      f->authz_bytes += raw;
    else
      f->header_bytes += raw;
    if (f->header_bytes > lim->max_header_bytes || f->authz_bytes > cap32(lim->max_authz_bytes) ||
        m->n_headers >= lim->max_header_count)
      return false;
    const char *ve = cr;
    while (ve > v && is_ows(ve[-1]))
      ve--;
    if (!fast_field(f, name, nlen, v, (size_t)(ve - v), raw))
      return false;
    if (m->n_headers == m->hcap_n && grow_headers(m) != 0)
      return false;
    gh__http_hoff_t *o = &m->hoffs[m->n_headers++];
    o->noff = (uint32_t)(name - data);
    o->nlen = (uint32_t)nlen;
    o->voff = (uint32_t)(v - data);
    o->vlen = (uint32_t)(ve - v);
    s = cr + 2;
  }
}

/* The head in hbuf, NUL-terminated pieces, the header table. */
static bool fast_store(gh__http_msg_t *m, const char *data, size_t head_len, size_t url_off)
{
  if (hbuf_reserve(m, head_len) != 0)
    return false;
  memcpy(m->hbuf, data, head_len);
  m->hlen = head_len;
  m->url = m->hbuf + url_off;
  m->hbuf[url_off + m->url_len] = '\0'; /* the SP after the target */
  for (unsigned i = 0; i < m->n_headers; i++) {
    const gh__http_hoff_t *o = &m->hoffs[i];
    gh__http_header_t *h = &m->headers[i];
    h->name = m->hbuf + o->noff;
    h->name_len = o->nlen;
    m->hbuf[o->noff + o->nlen] = '\0'; /* the colon */
    h->value = m->hbuf + o->voff;
    h->value_len = o->vlen;
    m->hbuf[o->voff + o->vlen] = '\0'; /* OWS or the CR */
  }
  return true;
}

/* The whole head of a new message in data (len bytes), read in one pass:
 * true with the results in p->msg and *ret_used where the slow path pauses
 * (before the final LF); false (nothing changed that the slow path reads)
 * to leave the message to libhttp-parser. */
static bool fast_head(gh__http_parser_t *p, const char *data, size_t len, size_t *ret_used)
{
  gh__http_msg_t *m = p->msg;
  size_t section = cap32(gh__http_section_max(p->lim));
  /* the slow path counts the head but its final LF against the bound */
  const char *end = data + (len <= section ? len : section + 1);
  fast_facts_t f = {0};
  unsigned method = 0;
  size_t ml = fast_method(data, (size_t)(end - data), &method);
  size_t tl = ml ? fast_target(data + ml, end) : 0;
  const char *v = data + ml + tl + 1; /* after the SP */
  const char *head_end = NULL;
  if (tl == 0 || tl > p->lim->max_uri || end - v < 10 || memcmp(v, "HTTP/1.", 7) != 0 ||
      (v[7] != '0' && v[7] != '1') || v[8] != '\r' || v[9] != '\n' ||
      !fast_fields(p, data, v + 10, end, &f, &head_end))
    goto fall_back;
  unsigned minor = (unsigned)(v[7] - '0');
  if (f.n_host > 1 || (minor == 1 && f.n_host == 0))
    goto fall_back;
  m->url_len = tl;
  if (!fast_store(m, data, (size_t)(head_end - data), ml))
    goto fall_back;
  m->method = method;
  m->method_str = http_method_str((enum http_method)method);
  m->head = method == HTTP_HEAD;
  m->http_major = 1;
  m->http_minor = (unsigned short)minor;
  m->has_content_length = f.has_cl;
  m->expect_continue = f.expect && minor >= 1;
  m->keep_alive = minor == 1 ? !f.close : f.keep; /* http_should_keep_alive */
  p->fast = true;
  p->phase = PH_BODY;
  p->scan_done = true;
  p->header_bytes = f.header_bytes;
  p->authz_bytes = (uint32_t)f.authz_bytes;
  p->section_bytes = (uint32_t)(head_end - data - 1);
  *ret_used = (size_t)(head_end - data - 1);
  return true;
fall_back:
  m->n_headers = 0;
  m->url_len = 0;
  m->hlen = 0;
  return false;
}

/* After a fast-path head: the head's final LF ends the message (no body),
 * as libhttp-parser would end it. */
static int fast_end(gh__http_parser_t *p, const char *data, size_t len, size_t *ret_used)
{
  *ret_used = 0;
  if (len == 0 || data[0] != '\n') { /* not the rest of the head: the owner's bug */
    p->status = 400;
    return GH__HTTP_ERROR;
  }
  *ret_used = 1;
  p->phase = PH_DONE;
  return GH__HTTP_DONE;
}

int gh__http_parser_feed(gh__http_parser_t *p, const char *data, size_t len, size_t *ret_used)
{
  int ret = GH__HTTP_MORE;
  size_t used = 0;

  if (p->status != 0 || p->phase == PH_DONE) {
    ret = p->status != 0 ? GH__HTTP_ERROR : GH__HTTP_DONE;
    goto out;
  }
  if (p->fast)
    return fast_end(p, data, len, ret_used);
  /* the first bytes of a message: the whole head may be here */
  if (p->phase == PH_IDLE && p->section_bytes == 0 && len > 0 && !p->fast_off &&
      fast_head(p, data, len, ret_used))
    return GH__HTTP_HEADERS;
  if (p->phase != PH_BODY)
    p->frame_prev_cr = p->scan_prev_cr; /* a CR at the end of the last feed */
  if (!p->scan_done && scan_obs_fold(p, data, len)) {
    p->status = 400;
    ret = GH__HTTP_ERROR;
    goto out;
  }
  p->event = EV_NONE;
  p->frame_from = data;
  bool in_section = p->phase == PH_IDLE || p->phase == PH_HEADERS;
  used = http_parser_execute(&p->hp, &settings, data, len);
  /* the parser pauses at the end of the section: used stops there */
  if (in_section && p->status == 0) {
    if (used > cap32(gh__http_section_max(p->lim)) - p->section_bytes)
      p->status = 431;
    else
      p->section_bytes += (uint32_t)used;
  }
  /* the chunked framing after the last body bytes of this feed */
  if (p->status == 0 && p->msg->chunked && p->phase != PH_IDLE && p->frame_from != NULL &&
      p->frame_from < data + used && frame_bare_lf(p, p->frame_from, data + used))
    p->status = 400;
  p->frame_from = NULL;
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (p->status != 0) {
    ret = GH__HTTP_ERROR; /* the framing check above, even on a completed message */
  } else if (e == HPE_PAUSED) {
    http_parser_pause(&p->hp, 0);
    ret = p->event == EV_DONE ? GH__HTTP_DONE : GH__HTTP_HEADERS;
  } else if (e != HPE_OK || p->status != 0) {
    if (p->status == 0)
      p->status = map_errno(e);
    ret = GH__HTTP_ERROR;
  } else if (p->event == EV_DONE || p->phase == PH_DONE) {
    ret = GH__HTTP_DONE;
  } else if (p->hp.upgrade) {
    /* cannot happen without a completed message; treat as malformed */
    p->status = 400;
    ret = GH__HTTP_ERROR;
  }
out:
  *ret_used = used;
  return ret;
}

bool gh__http_parser_started(const gh__http_parser_t *p)
{
  return p->phase != PH_IDLE;
}

bool gh__http_parser_in_body(const gh__http_parser_t *p)
{
  return p->phase == PH_BODY;
}

int gh__http_parser_set_max_body(gh__http_parser_t *p, size_t max_body)
{
  int ret = 0;
  p->max_body = max_body;
  if (p->msg->has_content_length && p->msg->content_length > max_body) {
    p->status = 413;
    ret = GH__HTTP_ERROR;
  }
  return ret;
}

void gh__http_parser_set_stream(gh__http_parser_t *p)
{
  p->stream = true;
}

void gh__http_msg_done(gh__http_msg_t *msg)
{
  if (msg == NULL)
    return;
  free(msg->hbuf);
  free(msg->hoffs);
  free(msg->headers);
  free(msg->body);
  memset(msg, 0, sizeof(*msg));
}

void gh__http_msg_shrink(gh__http_msg_t *msg, size_t keep)
{
  if (msg->hcap > keep) {
    free(msg->hbuf);
    msg->hbuf = NULL;
    msg->hcap = 0;
  }
  if (msg->body_cap > keep) {
    free(msg->body);
    msg->body = NULL;
    msg->body_cap = 0;
  }
  if (msg->hcap_n * sizeof(gh__http_header_t) > keep) {
    free(msg->hoffs);
    free(msg->headers);
    msg->hoffs = NULL;
    msg->headers = NULL;
    msg->hcap_n = 0;
  }
}

const char *gh__http_msg_header(const gh__http_msg_t *msg, const char *name)
{
  for (unsigned i = 0; i < msg->n_headers; i++)
    if (strcasecmp(msg->headers[i].name, name) == 0)
      return msg->headers[i].value;
  return NULL;
}

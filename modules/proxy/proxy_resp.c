/* proxy_resp.c: bounded incremental parser of upstream responses (strict RFC 9112 framing). */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"
#include "proxy_names.h"

/* What the parser is reading. */
enum {
  RS_HEAD,       /* a status line and fields, up to the empty line */
  RS_LENGTH,     /* a Content-Length body */
  RS_EOF,        /* a close-delimited body: until the upstream closes */
  RS_CH_SIZE,    /* chunked: the size's hex digits */
  RS_CH_BWS,     /* chunked: whitespace after the size, before ';' */
  RS_CH_EXT,     /* chunked: extensions after the size, skipped */
  RS_CH_SIZE_LF, /* chunked: the LF ending the size line */
  RS_CH_DATA,    /* chunked: the chunk's bytes */
  RS_CH_DATA_CR, /* chunked: the CRLF after them */
  RS_CH_DATA_LF,
  RS_CH_TRAILER,    /* chunked: a trailer line (skipped) or the final empty one */
  RS_CH_TRAILER_LF, /* chunked: its LF */
  RS_DONE,
};

/* Bytes of one chunk-size line (size, extensions) at most. */
#define CHUNK_LINE_MAX 4096
/* Head bytes copied per step: a read that carries a head and a large body
 * copies at most this much body it then discards. */
#define HEAD_STEP 4096
/* 1xx heads before the final one at most: an upstream that keeps sending
 * them would hold the request (and a worker's wait) for ever. */
#define PROXY_MAX_INTERIM 32

/* tchar (RFC 9110 §5.6.2): the bytes of a field name (none above 0x7f). */
static const unsigned char tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
};

/* No control byte but HT (obs-text allowed). */
static bool bytes_ok(const char *v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return false;
  }
  return true;
}

/* The high bit of each byte of w below 0x20 or equal to 0x7f: a borrow may
 * mark bytes above a marked one, never below, so the lowest mark is exact. */
static uint64_t ctl_marks(uint64_t w)
{
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t d = w ^ (ones * 0x7f);
  return (((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & highs;
}

/* A byte below 0x20 or 0x7f in w (exact: no false alarm). */
static bool word_has_ctl(uint64_t w)
{
  return ctl_marks(w) != 0;
}

/* The length of the field name at s (its tchar bytes), four bytes a step:
 * the NULs after head[]'s bytes end the scan (and its reads) there. */
static size_t name_span(const char *s)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t n = 0;
  while (tchar[u[n]] & tchar[u[n + 1]] & tchar[u[n + 2]] & tchar[u[n + 3]])
    n += 4;
  while (tchar[u[n]])
    n++;
  return n;
}

/* The first control byte (HT too) from p, eight bytes at a time: the NULs
 * after head[]'s bytes end the scan there at the latest. */
static char *first_ctl(char *p)
{
  for (;; p += 8) {
    uint64_t m = ctl_marks(proxy_load8(p));
    if (m != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      return p + (__builtin_ctzll(m) >> 3);
#else
      while ((unsigned char)*p >= 0x20 && *p != 0x7f)
        p++;
      return p;
#endif
    }
  }
}

/* A field value's bytes, eight at a time (the last word overlaps); a word
 * with a control byte is looked at per byte (HT is allowed). */
static bool value_ok(const char *v, size_t n)
{
  if (n < 8)
    return bytes_ok(v, n);
  for (size_t i = 0; i + 8 < n; i += 8)
    if (word_has_ctl(proxy_load8(v + i)) && !bytes_ok(v + i, 8))
      return false;
  return !word_has_ctl(proxy_load8(v + n - 8)) || bytes_ok(v + n - 8, 8);
}

/* The field's kind from its name (PROXY_F_*): hop-by-hop ones as both
 * directions read them, then the ones the relay treats apart. */
static uint32_t classify(const char *s, size_t n)
{
  uint32_t k = proxy_hop_kind(s, n);
  if (k != 0)
    return k;
  switch (n) {
  case 3:
    return proxy_eq_lit(s, "via", 3) ? PROXY_F_VIA : 0;
  case 4:
    return proxy_eq_lit(s, "date", 4) ? PROXY_F_OWN : 0;
  case 6:
    return proxy_eq_lit(s, "server", 6) ? PROXY_F_OWN : 0;
  case 8:
    return proxy_eq_lit(s, "location", 8) ? PROXY_F_LOCATION : 0;
  case 10:
    return proxy_eq_lit(s, "set-cookie", 10) ? PROXY_F_COOKIE : 0;
  case 14:
    return proxy_eq_lit(s, "content-length", 14) ? PROXY_F_OWN | PROXY_F_CL : 0;
  case 16:
    return proxy_eq_lit(s, "content-location", 16)   ? PROXY_F_LOCATION
           : proxy_eq_lit(s, "www-authenticate", 16) ? PROXY_F_WWW_AUTH
                                                     : 0;
  default:
    return 0;
  }
}

static int fail(proxy_resp_t *r, const char *why)
{
  if (r->error == NULL)
    r->error = why;
  r->state = RS_DONE;
  return -1;
}

/* "HTTP/1.x SSS[ reason]" (s: len bytes, the CRLF not included). */
static int status_line(proxy_resp_t *r, const char *s, size_t len)
{
  size_t rl;
  if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      (unsigned char)(s[9] - '0') > 9 || (unsigned char)(s[10] - '0') > 9 ||
      (unsigned char)(s[11] - '0') > 9 || (len > 12 && s[12] != ' '))
    return fail(r, "bad status line");
  r->version_minor = s[7] - '0';
  r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (r->status < 100 || r->status > 599)
    return fail(r, "bad status code");
  rl = len > 13 ? len - 13 : 0;
  if (!value_ok(s + 13, rl))
    return fail(r, "bad reason phrase");
  if (rl > sizeof(r->reason) - 1)
    rl = sizeof(r->reason) - 1;
  memcpy(r->reason, s + 13, rl);
  r->reason[rl] = '\0';
  r->reason_len = rl;
  r->got_status = true;
  return 0;
}

/* Records a field: name (nl bytes at s) and value (v up to e) end with a
 * NUL in head[]. */
static int add_field(proxy_resp_t *r, char *s, size_t nl, char *v, char *e)
{
  uint32_t k;
  if (r->n == PROXY_MAX_HEADERS)
    return fail(r, "too many response header fields");
  s[nl] = '\0';
  *e = '\0';
  k = classify(s, nl);
  r->f[r->n++] = (proxy_field_t){s, v, (uint32_t)nl, k};
  r->kinds |= k;
  return 0;
}

/* "name: value" (s: len bytes in head[], the CRLF not included; the CR's
 * place ends the value). */
static int field_line(proxy_resp_t *r, char *s, size_t len)
{
  char *v, *e = s + len;
  size_t nl;
  /* the name's bytes up to the colon (the line's CR stops the scan) */
  for (nl = 0; tchar[(unsigned char)s[nl]]; nl++)
    ;
  if (nl == 0 || s[nl] != ':') {
    if (s[0] == ' ' || s[0] == '\t')
      return fail(r, "obs-fold in the response head");
    if (memchr(s + nl, ':', len - nl) == NULL)
      return fail(r, "response field without a colon");
    return fail(r,
                nl == 0 && s[0] == ':' ? "empty response field name" : "bad response field name");
  }
  for (v = s + nl + 1; v < e && (*v == ' ' || *v == '\t'); v++)
    ;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  if (!value_ok(v, (size_t)(e - v)))
    return fail(r, "bad response field value");
  return add_field(r, s, nl, v, e);
}

/* A field line read in one pass when it is plain: a name, ':', a value
 * without HT or another control byte, CRLF (one scan finds the value's end
 * and checks its bytes). 1: read; 2: the head's empty line; -1; 0: left to
 * head_lines' general reading (incomplete, HT, anything refused: the same
 * error as before). */
static int line_fast(proxy_resp_t *r)
{
  char *s = r->head + r->line_off, *end = r->head + r->head_len, *v, *e;
  size_t nl;
  if (s[0] == '\r') {
    if (end - s < 2 || s[1] != '\n')
      return 0;
    r->line_off += 2;
    return 2;
  }
  nl = name_span(s);
  if (nl == 0 || s[nl] != ':')
    return 0;
  for (v = s + nl + 1; *v == ' ' || *v == '\t'; v++)
    ;
  e = first_ctl(v);
  if (end - e < 2 || e[0] != '\r' || e[1] != '\n')
    return 0;
  r->line_off = (size_t)(e + 2 - r->head);
  while (e > v && e[-1] == ' ') /* no HT: first_ctl stopped at the CR */
    e--;
  return add_field(r, s, nl, v, e) == 0 ? 1 : -1;
}

/* Marks the fields the Connection field(s) name and reads close /
 * keep-alive. Returns true when the connection may be kept. */
static bool connection_tokens(proxy_resp_t *r, bool has_conn)
{
  bool close = false, keep = false;
  for (size_t i = 0; has_conn && i < r->n; i++) {
    const char *p = r->f[i].value;
    if (!(r->f[i].kind & PROXY_F_CONNECTION))
      continue;
    while (*p != '\0') {
      size_t k;
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      k = strcspn(p, ", \t");
      close |= k == 5 && proxy_eq_lit(p, "close", 5);
      keep |= k == 10 && proxy_eq_lit(p, "keep-alive", 10);
      for (size_t j = 0; k > 0 && j < r->n; j++)
        if (r->f[j].name_len == k && proxy_eq_ci(r->f[j].name, p, k))
          r->f[j].kind |= PROXY_F_CONN_NAMED;
      p += k;
    }
  }
  return r->version_minor == 0 ? keep && !close : !close;
}

/* Strict digits, no sign, no list; -1 when invalid or over INT64_MAX. */
static int64_t parse_length(const char *v)
{
  int64_t n = 0;
  if (*v == '\0')
    return -1;
  for (; *v != '\0'; v++) {
    unsigned d = (unsigned char)*v - '0';
    /* n * 10 + d > INT64_MAX, without a division per digit */
    if (d > 9 || (n >= INT64_MAX / 10 && (n > INT64_MAX / 10 || d > INT64_MAX % 10)))
      return -1;
    n = n * 10 + (int64_t)d;
  }
  return n;
}

/* Content-Length and Transfer-Encoding of a final head: one length, or
 * exactly "chunked" (other codings would reach the client without their
 * Transfer-Encoding), never both, no Transfer-Encoding in HTTP/1.0. */
static int framing(proxy_resp_t *r)
{
  bool te = false;
  r->content_length = -1;
  r->chunked = false;
  for (size_t i = 0; (r->kinds & (PROXY_F_CL | PROXY_F_TE)) && i < r->n; i++) {
    if (r->f[i].kind & PROXY_F_CL) {
      if (r->content_length >= 0)
        return fail(r, "more than one Content-Length");
      if ((r->content_length = parse_length(r->f[i].value)) < 0)
        return fail(r, "bad Content-Length");
    } else if (r->f[i].kind & PROXY_F_TE) {
      if (te || strcasecmp(r->f[i].value, "chunked") != 0)
        return fail(r, "Transfer-Encoding other than chunked");
      te = true;
    }
  }
  if (te && r->content_length >= 0)
    return fail(r, "both Content-Length and Transfer-Encoding");
  if (te && r->version_minor == 0)
    return fail(r, "Transfer-Encoding in an HTTP/1.0 response");
  r->chunked = te;
  if (te)
    r->content_length = -1;
  return 0;
}

static void finish(proxy_resp_t *r)
{
  r->done = true;
  r->keep_alive = r->reusable;
  r->state = RS_DONE;
}

/* A head is complete (head_len ends at its empty line): its framing, the
 * callback, then what follows. */
static int head_done(proxy_resp_t *r)
{
  bool interim = r->status < 200 && r->status != 101;
  r->reusable = connection_tokens(r, (r->kinds & PROXY_F_CONNECTION) != 0);
  if (!interim && framing(r) != 0)
    return -1;
  r->upgrade = r->status == 101;
  r->final_head = !interim;
  if (r->on_head != NULL && r->on_head(r->arg, r) != 0)
    return fail(r, "response refused");
  if (interim) { /* the final head follows */
    if (++r->interim > PROXY_MAX_INTERIM)
      return fail(r, "too many interim (1xx) responses");
    r->head_len = r->line_off = r->n = 0;
    r->kinds = 0;
    r->got_status = false;
    return 0;
  }
  /* no body: 204, 304 and the answer to HEAD; after a 101 the rest is
   * another protocol; a close-delimited body ends the connection */
  if (r->upgrade || r->status == 204 || r->status == 304 || r->head_request ||
      r->content_length == 0) {
    r->reusable &= !r->upgrade;
    finish(r);
  } else if (r->chunked) {
    r->state = RS_CH_SIZE;
    r->left = r->line_len = r->trailer_len = 0;
  } else if (r->content_length > 0) {
    r->state = RS_LENGTH;
    r->left = (uint64_t)r->content_length;
  } else {
    r->state = RS_EOF;
    r->reusable = false;
  }
  return 0;
}

/* Reads the complete lines in head[] from line_off: 1 at the head's empty
 * line (line_off after it), 0 when a line is incomplete, -1. The search
 * for a line's end starts at `from` (the bytes before it were searched). */
static int head_lines(proxy_resp_t *r, size_t from)
{
  for (;;) {
    size_t at, len;
    char *s, *nl;
    if (r->got_status && r->line_off >= from) { /* a line not looked at yet */
      int rc = line_fast(r);
      if (rc == 1)
        continue;
      if (rc != 0)
        return rc == 2 ? 1 : -1;
    }
    at = from > r->line_off ? from : r->line_off;
    s = r->head + r->line_off;
    nl = memchr(r->head + at, '\n', r->head_len - at);
    if (nl == NULL)
      return 0;
    if (nl == s || nl[-1] != '\r')
      return fail(r, "bare LF in the response head");
    len = (size_t)(nl - 1 - s);
    r->line_off = (size_t)(nl + 1 - r->head);
    if (!r->got_status) {
      if (status_line(r, s, len) != 0)
        return -1;
    } else if (len == 0) {
      return 1;
    } else if (field_line(r, s, len) != 0) {
      return -1;
    }
  }
}

/* Head bytes: copied into head[] a step at a time (bounded), read line by
 * line. Returns the bytes of p used (up to the end of the head), or -1. */
static ssize_t feed_head(proxy_resp_t *r, const char *p, size_t n)
{
  size_t used = 0;
  while (used < n) {
    size_t start = r->head_len, take = n - used, room = PROXY_MAX_HEAD - r->head_len;
    int rc;
    if (take > HEAD_STEP)
      take = HEAD_STEP;
    if (take > room)
      take = room;
    if (take == 0)
      return fail(r, "response head too large");
    memcpy(r->head + start, p + used, take);
    r->head_len += take;
    memset(r->head + r->head_len, 0, 8); /* line_fast's end mark */
    rc = head_lines(r, start);
    if (rc < 0)
      return -1;
    if (rc == 0) {
      used += take;
      continue;
    }
    used += r->line_off - start; /* the rest is not the head's */
    r->head_len = r->line_off;
    return head_done(r) != 0 ? -1 : (ssize_t)used;
  }
  return (ssize_t)used;
}

static int body(proxy_resp_t *r, const char *p, size_t n)
{
  if (r->on_body != NULL && r->on_body(r->arg, p, n) != 0)
    return fail(r, "the response's body could not be relayed");
  return 0;
}

/* A Content-Length or close-delimited body's bytes. */
static ssize_t feed_body(proxy_resp_t *r, const char *p, size_t n)
{
  if (r->state == RS_LENGTH && n > r->left)
    n = (size_t)r->left;
  if (body(r, p, n) != 0)
    return -1;
  if (r->state == RS_LENGTH && (r->left -= n) == 0)
    finish(r);
  return (ssize_t)n;
}

static unsigned hex_value(unsigned char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = proxy_lc(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10u : 16u;
}

/* One byte of a chunk-size line: 1*HEXDIG [BWS ";" extensions] CR. */
static int chunk_size_byte(proxy_resp_t *r, unsigned char c)
{
  unsigned d = hex_value(c);
  if (++r->line_len > CHUNK_LINE_MAX)
    return fail(r, "chunk size line too long");
  if (c == '\r' && r->line_len > 1) { /* after one digit at least */
    r->state = RS_CH_SIZE_LF;
    return 0;
  }
  switch (r->state) {
  case RS_CH_SIZE:
    if (d < 16) {
      if (r->left > (uint64_t)INT64_MAX >> 4)
        return fail(r, "chunk size too large");
      r->left = r->left * 16 + d;
      return 0;
    }
    if (r->line_len == 1 || (c != ';' && c != ' ' && c != '\t'))
      return fail(r, "bad chunk size");
    r->state = c == ';' ? RS_CH_EXT : RS_CH_BWS;
    return 0;
  case RS_CH_BWS:
    if (c == ';')
      r->state = RS_CH_EXT;
    else if (c != ' ' && c != '\t')
      return fail(r, "bad chunk size");
    return 0;
  default: /* RS_CH_EXT: skipped, no control byte but HT */
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return fail(r, "bad chunk extension");
    return 0;
  }
}

/* One byte of the chunked framing outside the chunks' data. */
static int chunk_byte(proxy_resp_t *r, unsigned char c)
{
  switch (r->state) {
  case RS_CH_SIZE:
  case RS_CH_BWS:
  case RS_CH_EXT:
    return chunk_size_byte(r, c);
  case RS_CH_SIZE_LF:
    if (c != '\n')
      return fail(r, "bad chunk framing");
    r->state = r->left > 0 ? RS_CH_DATA : RS_CH_TRAILER;
    r->line_len = 0;
    return 0;
  case RS_CH_DATA_CR:
  case RS_CH_DATA_LF:
    if (c != (r->state == RS_CH_DATA_CR ? '\r' : '\n'))
      return fail(r, "no CRLF after the chunk data");
    r->state = r->state == RS_CH_DATA_CR ? RS_CH_DATA_LF : RS_CH_SIZE;
    r->left = r->line_len = 0;
    return 0;
  case RS_CH_TRAILER:
    if (++r->trailer_len > PROXY_MAX_HEAD)
      return fail(r, "response trailers too large");
    if (c == '\r')
      r->state = RS_CH_TRAILER_LF;
    else if ((c < 0x20 && c != '\t') || c == 0x7f)
      return fail(r, "bad response trailer");
    else
      r->line_len++;
    return 0;
  default: /* RS_CH_TRAILER_LF */
    if (c != '\n')
      return fail(r, "bad response trailer");
    if (r->line_len == 0)
      finish(r);
    else
      r->state = RS_CH_TRAILER;
    r->line_len = 0;
    return 0;
  }
}

/* A chunked body's bytes: framing a byte at a time, data in spans. */
static ssize_t feed_chunked(proxy_resp_t *r, const char *p, size_t n)
{
  size_t i = 0;
  while (i < n && !r->done) {
    if (r->state == RS_CH_DATA) {
      size_t k = n - i < r->left ? n - i : (size_t)r->left;
      if (body(r, p + i, k) != 0)
        return -1;
      i += k;
      if ((r->left -= k) == 0)
        r->state = RS_CH_DATA_CR;
    } else if (chunk_byte(r, (unsigned char)p[i++]) != 0) {
      return -1;
    }
  }
  return (ssize_t)i;
}

void proxy_resp_init(proxy_resp_t *r, bool head_request, proxy_head_cb on_head,
                     proxy_body_cb on_body_cb, void *arg)
{
  r->head_request = head_request;
  r->on_head = on_head;
  r->on_body = on_body_cb;
  r->arg = arg;
  r->status = r->version_minor = 0;
  r->reason[0] = '\0';
  r->reason_len = r->head_len = r->n = r->line_off = r->line_len = r->trailer_len = 0;
  r->interim = 0;
  r->kinds = 0;
  r->left = 0;
  r->chunked = r->final_head = r->done = r->keep_alive = r->upgrade = false;
  r->got_status = r->reusable = false;
  r->content_length = -1;
  r->error = NULL;
  r->state = RS_HEAD;
}

/* len 0: the upstream closed. */
static ssize_t feed_eof(proxy_resp_t *r)
{
  if (r->state == RS_EOF) {
    finish(r);
    return 0;
  }
  return fail(r, r->final_head ? "upstream closed in the middle of the body"
                               : "upstream closed before a response");
}

ssize_t proxy_resp_feed(proxy_resp_t *r, const char *data, size_t len)
{
  size_t pos = 0;
  if (r->error != NULL)
    return -1;
  if (r->done)
    return len == 0 ? 0 : fail(r, "bytes after the response");
  if (len == 0)
    return feed_eof(r);
  while (pos < len && !r->done) {
    ssize_t k = r->state == RS_HEAD ? feed_head(r, data + pos, len - pos)
                : r->state == RS_LENGTH || r->state == RS_EOF
                    ? feed_body(r, data + pos, len - pos)
                    : feed_chunked(r, data + pos, len - pos);
    if (k < 0)
      return -1;
    pos += (size_t)k;
  }
  return (ssize_t)pos;
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
  memcpy(dst, src, offsetof(proxy_resp_t, head) + src->head_len);
  for (size_t i = 0; i < dst->n; i++) {
    dst->f[i].name = dst->head + (src->f[i].name - src->head);
    dst->f[i].value = dst->head + (src->f[i].value - src->head);
  }
}

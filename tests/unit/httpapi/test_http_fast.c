/* test_http_fast.c: the request parser's fast path against libhttp-parser's path (a differential test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/http_parse.h"

/*
 * Every input is run twice over one connection, fed as the I/O thread feeds
 * it (whole, or in pieces): once as the server runs (fast path on) and once
 * with every message through libhttp-parser (fast_off). The two traces, every
 * event with its used count, status and the full results (method, target,
 * version, each field in order, lengths, flags, keep-alive, body), must be
 * the same byte for byte.
 */

#define TRACE_MAX 65536

typedef struct trace {
  char s[TRACE_MAX];
  size_t len;
  unsigned n_fast; /* heads the fast path read */
  unsigned n_done;
  int status;
} trace_t;

static void put(trace_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(trace_t *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->s + t->len, sizeof(t->s) - t->len, fmt, ap);
  va_end(ap);
  assert_true(n >= 0 && (size_t)n < sizeof(t->s) - t->len);
  t->len += (size_t)n;
}

/* Bytes as text, the lengths checked against the C strings. */
static void put_bytes(trace_t *t, const char *s, size_t n)
{
  assert_int_equal(strlen(s), n);
  put(t, "[%zu:", n);
  for (size_t i = 0; i < n; i++)
    put(t, (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? "%c" : "\\x%02x",
        (unsigned char)s[i]);
  put(t, "]");
}

static void put_head(trace_t *t, const gh__http_parser_t *p, const gh__http_msg_t *m)
{
  put(t, " %u %s ", m->method, m->method_str);
  put_bytes(t, m->url, m->url_len);
  put(t, " %u.%u cl=%d/%llu ch=%d ex=%d ka=%d head=%d n=%u", m->http_major, m->http_minor,
      m->has_content_length, (unsigned long long)m->content_length, m->chunked, m->expect_continue,
      m->keep_alive, m->head, m->n_headers);
  for (unsigned i = 0; i < m->n_headers; i++) {
    put_bytes(t, m->headers[i].name, m->headers[i].name_len);
    put_bytes(t, m->headers[i].value, m->headers[i].value_len);
  }
  put(t, " started=%d in_body=%d\n", gh__http_parser_started(p), gh__http_parser_in_body(p));
}

static void trace_run(const gh__http_limits_t *lim, const char *data, size_t len, size_t step,
                      bool fast_off, trace_t *t)
{
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  memset(t, 0, sizeof(*t));
  gh__http_parser_init(&p, lim);
  p.fast_off = fast_off;
  gh__http_parser_begin(&p, &msg);
  for (size_t pos = 0; pos < len && t->status == 0;) {
    size_t n = step == 0 || len - pos < step ? len - pos : step;
    for (size_t off = 0; off < n;) {
      size_t used = 0;
      int r = gh__http_parser_feed(&p, data + pos + off, n - off, &used);
      off += used;
      put(t, "ev=%d used=%zu", r, used);
      if (r == GH__HTTP_ERROR) {
        put(t, " status=%d\n", p.status);
        t->status = p.status;
        break;
      }
      if (r == GH__HTTP_HEADERS) {
        t->n_fast += p.fast;
        put_head(t, &p, &msg);
        assert_int_equal(gh__http_parser_set_max_body(&p, lim->max_body), 0);
      } else if (r == GH__HTTP_DONE) {
        put(t, " ka=%d body=%zu\n", msg.keep_alive, msg.body_len);
        t->n_done++;
        gh__http_parser_begin(&p, &msg);
      } else {
        put(t, "\n");
        if (used == 0)
          break;
      }
    }
    pos += n;
  }
  gh__http_msg_done(&msg);
}

static trace_t fast_tr, slow_tr;

/* Both paths, every feed pattern: the same trace. Returns the fast path's
 * whole-feed trace (for the caller's own checks). */
static const trace_t *same(const gh__http_limits_t *lim, const char *data, size_t len)
{
  static const size_t steps[] = {0, 1, 2, 7, 16, 33};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    trace_run(lim, data, len, steps[i], true, &slow_tr);
    trace_run(lim, data, len, steps[i], false, &fast_tr);
    if (strcmp(fast_tr.s, slow_tr.s) != 0) {
      trace_t *in = &slow_tr;
      in->len = 0;
      put(in, "%zu bytes ", len);
      for (size_t k = 0; k < len; k++)
        put(in, (unsigned char)data[k] >= 0x20 && (unsigned char)data[k] < 0x7f ? "%c" : "\\x%02x",
            (unsigned char)data[k]);
      fail_msg("step %zu, input %s\nfast path:\n%s", steps[i], in->s, fast_tr.s);
    }
  }
  trace_run(lim, data, len, 0, false, &fast_tr);
  return &fast_tr;
}

static const gh__http_limits_t small = {
    .max_uri = 64,
    .max_header_bytes = 256,
    .max_header_count = 8,
    .max_body = 100,
};
static const gh__http_limits_t authz = {
    .max_uri = 64,
    .max_header_bytes = 256,
    .max_header_count = 8,
    .max_body = 100,
    .max_authz_bytes = 40,
};
static const gh__http_limits_t big = {
    .max_uri = 8192,
    .max_header_bytes = 16384,
    .max_header_count = 100,
    .max_body = 1 << 20,
    .max_authz_bytes = 87448,
};

#define S(lit)                                                                                     \
  {                                                                                                \
    lit, sizeof(lit) - 1                                                                           \
  }

typedef struct input {
  const char *s;
  size_t len;
} input_t;

/* Heads the fast path reads (under every limit set above). */
static const input_t plain[] = {
    S("GET /p/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    S("GET /p/x HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"),
    S("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
    S("PUT /f HTTP/1.1\r\nHost: h\r\ncontent-length:0\r\n\r\n"),
    S("DELETE /f HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("OPTIONS /f HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("PATCH /f HTTP/1.1\r\nHost: h\r\nContent-Length: \t0\r\n\r\n"),
    S("GET / HTTP/1.0\r\n\r\n"),
    S("GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"),
    S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
    S("GET / HTTP/1.0\r\nConnection: close\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"),
    S("GET / HTTP/1.0\r\nExpect: 100-Continue\r\n\r\n"),
    S("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Sp:  v v  \r\nX-T:\tv\t\r\n\r\n"),
    S("GET /a?b=c#d HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /a#b?c#d??## HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /!$&'()*+,;=:@-._~%20\"<>[]^`{|}\\ HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX-U: caf\xc3\xa9 \xff\x80\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate abc\r\n\r\n"),
    S("GET / HTTP/1.1\r\nhost: h\r\nX-Content-Length: 5\r\nX-Transfer-Encoding: x\r\n"
      "X-Upgrade: y\r\nX-Connection: z\r\nExpected: 1\r\nConnect: 1\r\nContent: 1\r\n\r\n"),
    /* pipelined: the rest is the next message's, or garbage */
    S("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"
      "abcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nxyz\r\n\r\n"),
    S("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"),
};

/* Heads the fast path leaves to libhttp-parser: smuggling classics, bad
 * grammar, what it does not do. Most are errors, a few are served. */
static const input_t nasty[] = {
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\nx"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0 0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 05\r\n\r\nhello"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5\r\n\r\nhello"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\t\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0 \r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Lengths: 0\r\n\r\n"),
    /* libhttp-parser takes a name by its prefix: a Transfer-Encoding to it */
    S("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encodings: x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nUpgrades: x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnections: close\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\t\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: close \r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
    S("GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
    S("GET / HTTP/1.1\nHost: h\n\n"),
    S("GET / HTTP/1.1\r\nHost: h\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\n\n"),
    S("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX\x80: a\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nX\r\n\r\n"),
    S("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"),
    S("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET h/x HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET /\r\n\r\n"),
    S("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/0.9\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.10\r\nHost: h\r\n\r\n"),
    S("GET / http/1.1\r\nHost: h\r\n\r\n"),
    S("get / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GETS / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nProxy-Connection: close\r\n\r\n"),
    S("GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: close, keep-alive\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nConnection: TE\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    S("GET / HTTP/1.1\r\n\r\n"),
    S("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),
    S("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    S("GET / HTTP/1.1\r\nHost: h\r\n\r"),
    S("GET / HTTP/1.1\r\nHost: h\r\n"),
    S("GET / HTTP/1.1\r\nHost: h"),
    S("GET"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel"),
    S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"),
};

static void test_plain_heads_take_the_fast_path(void **state)
{
  (void)state;
  const gh__http_limits_t *lims[] = {&small, &authz, &big};
  for (size_t l = 0; l < 3; l++)
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
      const trace_t *t = same(lims[l], plain[i].s, plain[i].len);
      if (t->n_fast == 0 || t->n_done == 0)
        fail_msg("limits %zu: not read by the fast path: %s\n%s", l, plain[i].s, t->s);
    }
}

static void test_nasty_heads_fall_back(void **state)
{
  (void)state;
  const gh__http_limits_t *lims[] = {&small, &authz, &big};
  for (size_t l = 0; l < 3; l++)
    for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
      const trace_t *t = same(lims[l], nasty[i].s, nasty[i].len);
      if (t->n_fast != 0)
        fail_msg("limits %zu: read by the fast path: %s\n%s", l, nasty[i].s, t->s);
    }
}

/* Each limit at and one past its bound: the fast path reads the head at
 * the bound, the one past is libhttp-parser's (and its status). */
static void expect_edge(const gh__http_limits_t *lim, const char *at, const char *past, int status)
{
  const trace_t *t = same(lim, at, strlen(at));
  if (t->n_fast != 1 || t->status != 0)
    fail_msg("at the limit, not read by the fast path: %s\n%s", at, t->s);
  t = same(lim, past, strlen(past));
  if (t->n_fast != 0 || t->status != status)
    fail_msg("past the limit, expected %d: %s\n%s", status, past, t->s);
}

static void test_limits_at_and_past(void **state)
{
  (void)state;
  char at[2048], past[2048 + 16], pad[1024];
  /* the request-target: 64 bytes, 65 */
  memset(pad, 'u', 63);
  pad[63] = '\0';
  snprintf(at, sizeof(at), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", pad);
  snprintf(past, sizeof(past), "GET /%su HTTP/1.1\r\nHost: h\r\n\r\n", pad);
  expect_edge(&small, at, past, 414);
  /* the field count: 8, 9 */
  strcpy(at, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 0; i < 7; i++)
    strcat(at, "X: y\r\n");
  snprintf(past, sizeof(past), "%sX: y\r\n\r\n", at);
  strcat(at, "\r\n");
  expect_edge(&small, at, past, 431);
  /* the field bytes: Host (4 + 1 + 4) and X (1 + n + 4) make 256 */
  memset(pad, 'v', 245);
  pad[242] = '\0';
  snprintf(at, sizeof(at), "GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", pad);
  snprintf(past, sizeof(past), "GET / HTTP/1.1\r\nHost: h\r\nX: %sv\r\n\r\n", pad);
  expect_edge(&small, at, past, 431);
  /* OWS before a value is not counted, OWS after it is (as libhttp-parser
   * hands the value over) */
  snprintf(at, sizeof(at), "GET / HTTP/1.1\r\nHost: h\r\nX: \t  %s\r\n\r\n", pad);
  snprintf(past, sizeof(past), "GET / HTTP/1.1\r\nHost: h\r\nX: %s \r\n\r\n", pad);
  expect_edge(&small, at, past, 431);
  /* the Authorization budget (40): "Negotiate " + 30, + 31 */
  memset(pad, 'A', 31);
  pad[30] = '\0';
  snprintf(at, sizeof(at), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate %s\r\n\r\n", pad);
  snprintf(past, sizeof(past), "GET / HTTP/1.1\r\nHost: h\r\nauthorization: Negotiate %sA\r\n\r\n",
           pad);
  expect_edge(&authz, at, past, 400);
  /* without a budget it is an ordinary field */
  memset(pad, 'A', 250);
  pad[240] = '\0';
  snprintf(at, sizeof(at), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: %s\r\n\r\n", pad);
  const trace_t *t = same(&small, at, strlen(at));
  assert_int_equal(t->status, 431);
  t = same(&authz, at, strlen(at));
  assert_int_equal(t->status, 400);
}

/* The header section bound (gh__http_section_max): whitespace before a
 * value, which no field count sees, up to it and one byte past. */
static void test_section_bound(void **state)
{
  (void)state;
  char at[2048], past[2048];
  size_t max = gh__http_section_max(&small); /* the head but its final LF */
  size_t n = (size_t)snprintf(at, sizeof(at), "GET / HTTP/1.1\r\nHost: h\r\nX:");
  assert_true(max + 2 < sizeof(at));
  memset(at + n, ' ', max + 1 - n - 5);
  memcpy(at + max + 1 - 5, "v\r\n\r\n", 6);
  assert_int_equal(strlen(at), max + 1);
  memcpy(past, at, n);
  past[n] = ' ';
  memcpy(past + n + 1, at + n, max + 2 - n);
  expect_edge(&small, at, past, 431);
}

/* Random plain heads with one byte changed or removed, or a field added:
 * both paths agree on every one (the fuzz target does this at scale). */
static void test_mutations(void **state)
{
  (void)state;
  static const char base[] = "GET /p/x?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                             "Content-Length: 0\r\nExpect: 100-continue\r\nX-A: b\r\n\r\n"
                             "GET /2 HTTP/1.0\r\n\r\n";
  static const char bytes[] = " \t\r\n\0:/0a-?#\x7f\x80\x01Hc";
  char buf[sizeof(base) + 8];
  unsigned seed = 99;
  for (int iter = 0; iter < 4000; iter++) {
    size_t len = sizeof(base) - 1;
    memcpy(buf, base, len);
    size_t at = ((seed = seed * 1103515245u + 12345u) >> 16) % len;
    unsigned what = ((seed = seed * 1103515245u + 12345u) >> 16) % 3;
    char c = bytes[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof(bytes) - 1)];
    if (what == 0) {
      buf[at] = c;
    } else if (what == 1) {
      memmove(buf + at, buf + at + 1, len - at - 1);
      len--;
    } else {
      memmove(buf + at + 1, buf + at, len - at);
      buf[at] = c;
      len++;
    }
    same(&small, buf, len);
    same(&big, buf, len);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_heads_take_the_fast_path),
      cmocka_unit_test(test_nasty_heads_fall_back),
      cmocka_unit_test(test_limits_at_and_past),
      cmocka_unit_test(test_section_bound),
      cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

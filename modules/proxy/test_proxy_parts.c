/* test_proxy_parts.c: unit tests of the proxy module's parts (lines, names, parser, pool). */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy.h"

static void test_upstream_lines(void **state)
{
  char why[200];
  proxy_upstream_t *u;
  (void)state;
  assert_int_equal(proxy_upstream_check("http://127.0.0.1:8000", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("http://[::1]:80/app/", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("unix:/run/a.sock:/x", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("http://h", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:0", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:99999", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:80/a b", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("https://h:80", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("unix:rel.sock", why, sizeof(why)), -EINVAL);
  u = proxy_upstream_get("http://[::1]:80/app/");
  assert_non_null(u);
  assert_string_equal(u->host, "::1");
  assert_string_equal(u->port, "80");
  assert_string_equal(u->prefix, "/app");
  assert_true(u->has_prefix);
  assert_ptr_equal(proxy_upstream_get("http://[::1]:80/app/"), u); /* interned */
  u = proxy_upstream_get("unix:/run/a.sock:/");
  assert_true(u->is_unix && u->has_prefix);
  assert_string_equal(u->path, "/run/a.sock");
  assert_string_equal(u->prefix, "");
  u = proxy_upstream_get("http://h:1");
  assert_false(u->has_prefix);
  proxy_upstream_free_all();
}

static void test_names(void **state)
{
  (void)state;
  assert_true(proxy_is_hop_by_hop("connection", NULL));
  assert_true(proxy_is_hop_by_hop("Proxy-Authorization", NULL));
  assert_true(proxy_is_hop_by_hop("TE", NULL));
  assert_true(proxy_is_hop_by_hop("X-Secret", "keep-alive, x-secret"));
  assert_false(proxy_is_hop_by_hop("X-Secret", "keep-alive, x-secret2"));
  assert_false(proxy_is_hop_by_hop("Cookie", "close"));
  assert_true(proxy_name_eq_loose("x_remote_USER", "X-Remote-User"));
  assert_false(proxy_name_eq_loose("X-Remote-Users", "X-Remote-User"));
  assert_false(proxy_name_eq_loose("X-Remote", "X-Remote-User"));
}

typedef struct got {
  int heads[4];
  size_t n_heads;
  char body[4096];
  size_t body_len;
} got_t;

static int on_head(void *arg, proxy_resp_t *r)
{
  got_t *g = arg;
  if (g->n_heads < 4)
    g->heads[g->n_heads++] = r->status;
  return 0;
}

static int on_body(void *arg, const char *d, size_t n)
{
  got_t *g = arg;
  if (g->body_len + n > sizeof(g->body))
    return 1;
  memcpy(g->body + g->body_len, d, n);
  g->body_len += n;
  return 0;
}

static proxy_resp_t R;

static ssize_t feed(const char *s, bool head, got_t *g)
{
  memset(g, 0, sizeof(*g));
  proxy_resp_init(&R, head, on_head, on_body, g);
  return proxy_resp_feed(&R, s, strlen(s));
}

static void test_parser(void **state)
{
  got_t g;
  const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!\n";
  char *big;
  (void)state;
  /* an answer, then another nobody asked for: parsing stops at the first */
  assert_int_equal(feed(two, false, &g), 44);
  assert_true(R.done && R.keep_alive);
  assert_int_equal(g.body_len, 6);
  /* interim heads, then the final one */
  assert_true(feed("HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 204 No\r\nX: y\r\n\r\n", false,
                   &g) > 0);
  assert_int_equal(g.n_heads, 2);
  assert_int_equal(g.heads[0], 103);
  assert_int_equal(g.heads[1], 204);
  assert_true(R.done);
  assert_string_equal(proxy_resp_field(&R, "x"), "y");
  /* HEAD: no body whatever Content-Length says */
  assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &g), 39);
  assert_true(R.done);
  assert_int_equal(R.content_length, 10);
  /* chunked */
  assert_true(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                   false, &g) > 0);
  assert_true(R.done && R.chunked);
  assert_int_equal(g.body_len, 3);
  /* close-delimited: complete at EOF only */
  assert_true(feed("HTTP/1.0 200 OK\r\n\r\nabc", false, &g) > 0);
  assert_false(R.done);
  assert_int_equal(proxy_resp_feed(&R, "", 0), 0);
  assert_true(R.done && !R.keep_alive);
  /* EOF before the end of a length */
  assert_true(feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", false, &g) > 0);
  assert_int_equal(proxy_resp_feed(&R, "", 0), -1);
  /* invalid */
  assert_int_equal(feed("HTTP/1.1 2x0 OK\r\n\r\n", false, &g), -1);
  assert_int_equal(feed("garbage\r\n\r\n", false, &g), -1);
  /* limits: field count and head size */
  big = malloc(PROXY_MAX_HEAD + 100);
  strcpy(big, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i <= PROXY_MAX_HEADERS; i++)
    sprintf(big + strlen(big), "X-%d: v\r\n", i);
  strcat(big, "\r\n");
  assert_int_equal(feed(big, false, &g), -1);
  assert_string_equal(R.error, "too many response header fields");
  strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
  memset(big + strlen(big), 'a', PROXY_MAX_HEAD);
  strcpy(big + PROXY_MAX_HEAD + 20, "\r\n\r\n");
  assert_int_equal(feed(big, false, &g), -1);
  assert_string_equal(R.error, "response head too large");
  free(big);
}

/* A response parsed part on one thread's parser, the rest on a copy (the
 * relay waiting mid-way): fields split across the pieces keep their text,
 * the chunked body continues. */
static void test_parser_move(void **state)
{
  static proxy_resp_t moved;
  const char *a = "HTTP/1.1 200 OK\r\nX-One: fir", *b = "st\r\nX-Two: second\r\n";
  const char *c = "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", *d = "2\r\nde\r\n0\r\n\r\n";
  got_t g;
  (void)state;
  memset(&g, 0, sizeof(g));
  proxy_resp_init(&R, false, on_head, on_body, &g);
  assert_int_equal(proxy_resp_feed(&R, a, strlen(a)), (ssize_t)strlen(a));
  proxy_resp_move(&moved, &R);
  memset(&R, 0x5a, sizeof(R)); /* the thread's parser goes on with other work */
  assert_int_equal(proxy_resp_feed(&moved, b, strlen(b)), (ssize_t)strlen(b));
  assert_int_equal(proxy_resp_feed(&moved, c, strlen(c)), (ssize_t)strlen(c));
  assert_int_equal(g.n_heads, 1);
  assert_string_equal(proxy_resp_field(&moved, "x-one"), "first");
  assert_string_equal(proxy_resp_field(&moved, "X-Two"), "second");
  proxy_resp_move(&R, &moved);
  memset(&moved, 0x5a, sizeof(moved));
  assert_int_equal(proxy_resp_feed(&R, d, strlen(d)), (ssize_t)strlen(d));
  assert_true(R.done && R.chunked && R.keep_alive);
  assert_int_equal(g.body_len, 5);
  assert_memory_equal(g.body, "abcde", 5);
}

/* Feeds s (n bytes) in pieces whose ends are given by cuts (sorted, < n),
 * then EOF when not done; the total used, or -1. */
static ssize_t feed_split(const char *s, size_t n, const size_t *cuts, size_t n_cuts, got_t *g)
{
  size_t at = 0;
  memset(g, 0, sizeof(*g));
  proxy_resp_init(&R, false, on_head, on_body, g);
  for (size_t i = 0; i <= n_cuts && !R.done; i++) {
    size_t end = i < n_cuts ? cuts[i] : n;
    ssize_t u;
    if (end <= at)
      continue;
    u = proxy_resp_feed(&R, s + at, end - at);
    if (u < 0)
      return -1;
    at += (size_t)u;
  }
  if (!R.done && proxy_resp_feed(&R, "", 0) < 0)
    return -1;
  return (ssize_t)at;
}

/* The result of one parse, to compare the ways of feeding the same bytes. */
typedef struct outcome {
  ssize_t used;
  got_t g;
  int status;
  size_t n;
  char names[512];
  bool keep_alive, chunked;
  int64_t length;
} outcome_t;

static void outcome_of(outcome_t *o, ssize_t used, const got_t *g)
{
  memset(o, 0, sizeof(*o));
  o->used = used;
  o->g = *g;
  o->status = R.status;
  o->n = R.n;
  for (size_t i = 0; i < R.n; i++) {
    strcat(o->names, R.f[i].name);
    strcat(o->names, "=");
    strcat(o->names, R.f[i].value);
    strcat(o->names, ";");
  }
  o->keep_alive = R.keep_alive;
  o->chunked = R.chunked;
  o->length = R.content_length;
}

static void assert_same(const outcome_t *a, const outcome_t *b)
{
  assert_int_equal(a->used, b->used);
  assert_int_equal(a->status, b->status);
  assert_string_equal(a->names, b->names);
  assert_int_equal(a->g.n_heads, b->g.n_heads);
  assert_int_equal(a->g.body_len, b->g.body_len);
  assert_memory_equal(a->g.body, b->g.body, a->g.body_len);
  assert_int_equal(a->keep_alive, b->keep_alive);
  assert_int_equal(a->chunked, b->chunked);
  assert_int_equal(a->length, b->length);
}

/* Every framing gives the same result whole, one byte at a time, cut at
 * every single boundary and in random pieces. */
static void test_parser_splits(void **state)
{
  static const char *const resps[] = {
      "HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n"
      "X-A:  spaced value \t\r\nConnection: X-A, keep-alive\r\n\r\nhello world"
      "HTTP/1.1 200 OK\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n5;ext=1;b\r\nhello\r\n"
      "A \t;x\r\n0123456789\r\n000\r\nTrailer-A: 1\r\nT2: x\r\n\r\nleftover",
      "HTTP/1.0 200 Fine\r\nServer: s\r\n\r\nclose-delimited body bytes",
      "HTTP/1.1 204 No Content\r\nX: 1\r\n\r\nHTTP/1.1 200 OK\r\n"};
  unsigned seed = 12345;
  (void)state;
  for (size_t k = 0; k < sizeof(resps) / sizeof(resps[0]); k++) {
    const char *s = resps[k];
    size_t n = strlen(s), cuts[600];
    outcome_t whole, other;
    got_t g;
    ssize_t u = feed_split(s, n, NULL, 0, &g);
    assert_true(u > 0);
    assert_true(R.done);
    outcome_of(&whole, u, &g);
    for (size_t i = 0; i < n; i++)
      cuts[i] = i + 1;
    u = feed_split(s, n, cuts, n, &g); /* one byte at a time */
    outcome_of(&other, u, &g);
    assert_same(&whole, &other);
    for (size_t c = 1; c < n; c++) { /* one cut at each boundary */
      u = feed_split(s, n, &c, 1, &g);
      outcome_of(&other, u, &g);
      assert_same(&whole, &other);
    }
    for (int round = 0; round < 200; round++) { /* random pieces */
      size_t m = 0;
      for (size_t at = 0; at < n && m < 600;) {
        seed = seed * 1103515245u + 12345u;
        at += 1 + (seed >> 16) % 24;
        if (at < n)
          cuts[m++] = at;
      }
      u = feed_split(s, n, cuts, m, &g);
      outcome_of(&other, u, &g);
      assert_same(&whole, &other);
    }
  }
}

/* s must be refused with the error why (fed whole, then byte by byte). */
static void refused(const char *s, const char *why)
{
  got_t g;
  size_t n = strlen(s), cuts[512];
  for (size_t i = 0; i < n && i < 512; i++)
    cuts[i] = i + 1;
  assert_int_equal(feed_split(s, n, NULL, 0, &g), -1);
  assert_non_null(R.error);
  if (strcmp(R.error, why) != 0)
    fail_msg("%s: got \"%s\", want \"%s\"", s, R.error, why);
  assert_int_equal(proxy_resp_feed(&R, "x", 1), -1); /* errors are sticky */
  assert_int_equal(proxy_resp_feed(&R, "", 0), -1);
  assert_int_equal(feed_split(s, n, cuts, n < 512 ? n : 512, &g), -1);
  assert_string_equal(R.error, why);
}

/* n interim 100 heads, then a final 200 with an empty body. */
static char *interims(unsigned n)
{
  static const char one[] = "HTTP/1.1 100 Continue\r\n\r\n";
  static const char fin[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  char *s = malloc(n * (sizeof(one) - 1) + sizeof(fin)), *p = s;
  assert_non_null(s);
  for (unsigned i = 0; i < n; i++, p += sizeof(one) - 1)
    memcpy(p, one, sizeof(one) - 1);
  memcpy(p, fin, sizeof(fin));
  return s;
}

static void test_parser_refuses(void **state)
{
  got_t g;
  char *s;
  (void)state;
  /* 32 interim heads pass, the 33rd is refused */
  s = interims(32);
  assert_int_equal(feed_split(s, strlen(s), NULL, 0, &g), (ssize_t)strlen(s));
  assert_true(R.done);
  free(s);
  s = interims(33);
  refused(s, "too many interim (1xx) responses");
  free(s);
  refused("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obs-fold in the response head");
  refused("HTTP/1.1 200 OK\r\nX a\r\n\r\n", "response field without a colon");
  refused("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", "bad response field name");
  refused("HTTP/1.1 200 OK\r\n: a\r\n\r\n", "empty response field name");
  refused("HTTP/1.1 200 OK\r\nX: a\001b\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bad response field value");
  /* long values are checked a word at a time: a control byte anywhere */
  refused("HTTP/1.1 200 OK\r\nX: 0123456789abc\001defghij\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: 0123456789abcdefghij\177k\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: 01234567\037\r\n\r\n", "bad response field value");
  /* read whole, a plain line takes one scan: what it does not take goes
   * the general way, with the same error */
  refused("HTTP/1.1 200 OK\r\nX: a\001\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: abcdefg\r\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: abc\tdefgh\177\r\n\r\n", "bad response field value");
  refused("HTTP/1.1 200 OK\r\nX: abcdefgh\n\r\n", "bare LF in the response head");
  refused("HTTP/1.1 200 OK\r\nX: a\001b\nc\r\n\r\n", "bare LF in the response head");
  refused("HTTP/1.1 200 OK\r\nX-Abcdefgh\177: a\r\n\r\n", "bad response field name");
  refused("HTTP/1.1 200 OK\r\nX-Abcdefgh/ij: a\r\n\r\n", "bad response field name");
  refused("HTTP/1.1 200 OK\r\nX-Abcdefghij\r\n\r\n", "response field without a colon");
  refused("HTTP/1.1 200 OK\r\n\tX: a\r\n\r\n", "obs-fold in the response head");
  refused("HTTP/1.1 200 OK\r\n\rX: a\r\n\r\n", "bad response field name");
  refused("HTTP/1.1 200 OK\r\nX: abcdefgh\r", "upstream closed before a response");
  refused("HTTP/1.1 200 OK\r\nX: abc\r\n\r", "upstream closed before a response");
  refused("HTTP/1.1 200 OK\nX: a\r\n\r\n", "bare LF in the response head");
  refused("HTTP/1.1 200 OK\r\nX: a\n\r\n", "bare LF in the response head");
  refused("HTTP/1.1 200 OK\r\nX: a\r\n\n", "bare LF in the response head");
  refused("HTTP/1.1 20 OK\r\n\r\n", "bad status line");
  refused("HTTP/1.1 2000 OK\r\n\r\n", "bad status line");
  refused("HTTP/1.1 2x0 OK\r\n\r\n", "bad status line");
  refused("HTTP/1.2 200 OK\r\n\r\n", "bad status line");
  refused("HTTP/2.0 200 OK\r\n\r\n", "bad status line");
  refused("HTTP/1.1  200 OK\r\n\r\n", "bad status line");
  refused("\r\nHTTP/1.1 200 OK\r\n\r\n", "bad status line");
  refused("HTTP/1.1 099 Low\r\n\r\n", "bad status code");
  refused("HTTP/1.1 600 High\r\n\r\n", "bad status code");
  refused("HTTP/1.1 200 O\001K\r\n\r\n", "bad reason phrase");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
          "more than one Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
          "more than one Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "bad Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "bad Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "bad Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", "bad Content-Length");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
          "both Content-Length and Transfer-Encoding");
  refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
          "Transfer-Encoding other than chunked");
  refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
          "Transfer-Encoding other than chunked");
  refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
          "0\r\n\r\n",
          "Transfer-Encoding other than chunked");
  refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
          "Transfer-Encoding in an HTTP/1.0 response");
#define CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
  refused(CHUNKED "x\r\n", "bad chunk size");
  refused(CHUNKED "\r\n", "bad chunk size");
  refused(CHUNKED "3x\r\nabc\r\n0\r\n\r\n", "bad chunk size");
  refused(CHUNKED "3 x\r\nabc\r\n0\r\n\r\n", "bad chunk size");
  refused(CHUNKED "3\n", "bad chunk size");
  refused(CHUNKED "3;a\nabc", "bad chunk extension");
  refused(CHUNKED "3\rabc", "bad chunk framing");
  refused(CHUNKED "10000000000000000\r\n", "chunk size too large");
  refused(CHUNKED "8000000000000000\r\n", "chunk size too large");
  refused(CHUNKED "3\r\nabcd\r\n0\r\n\r\n", "no CRLF after the chunk data");
  refused(CHUNKED "3\r\nabc\n0\r\n\r\n", "no CRLF after the chunk data");
  refused(CHUNKED "0\r\nT: 1\n\r\n", "bad response trailer");
  refused(CHUNKED "0\r\nT: 1\rx\r\n\r\n", "bad response trailer");
  refused(CHUNKED "3\r\nab", "upstream closed in the middle of the body");
  refused("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
          "upstream closed in the middle of the body");
  refused("HTTP/1.1 200 OK\r\nContent-Len", "upstream closed before a response");
  refused("HTTP/1.1 100 Continue\r\n\r\n", "upstream closed before a response");
  refused("", "upstream closed before a response");
}

/* Limits of what an upstream can make the parser hold or scan. */
static void test_parser_limits(void **state)
{
  char *big = malloc(3 * PROXY_MAX_HEAD);
  got_t g;
  size_t n;
  (void)state;
  /* a chunk-size line of leading zeros or extensions is cut at 4 KiB */
  strcpy(big, CHUNKED);
  n = strlen(big);
  memset(big + n, '0', 5000);
  strcpy(big + n + 5000, "1\r\nx\r\n0\r\n\r\n");
  assert_int_equal(feed_split(big, strlen(big), NULL, 0, &g), -1);
  assert_string_equal(R.error, "chunk size line too long");
  strcpy(big + n, "1;");
  memset(big + n + 2, 'e', 5000);
  strcpy(big + n + 5002, "\r\nx\r\n0\r\n\r\n");
  assert_int_equal(feed_split(big, strlen(big), NULL, 0, &g), -1);
  assert_string_equal(R.error, "chunk size line too long");
  /* trailers count against the head's limit */
  strcpy(big + n, "0\r\n");
  n = strlen(big);
  while (n < 2 * PROXY_MAX_HEAD) {
    memcpy(big + n, "T: 12345\r\n", 10);
    n += 10;
  }
  strcpy(big + n, "\r\n");
  assert_int_equal(feed_split(big, strlen(big), NULL, 0, &g), -1);
  assert_string_equal(R.error, "response trailers too large");
  /* an extension within the limit is skipped */
  assert_true(feed(CHUNKED "3;name=\"v a l\"\r\nabc\r\n0;last\r\n\r\n", false, &g) > 0);
  assert_true(R.done && R.keep_alive);
  assert_int_equal(g.body_len, 3);
  free(big);
}

/* Framing and what follows the answer. */
static void test_parser_framing(void **state)
{
  got_t g;
  const char *s;
  (void)state;
  /* 204 and 304 end at their head whatever follows or says: the bytes
   * after are not this response's */
  s = "HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\nhello";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s) - 5);
  assert_true(R.done && R.keep_alive);
  assert_int_equal(g.body_len, 0);
  s = "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s) - 5);
  assert_true(R.done);
  /* HEAD: the same */
  s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  assert_int_equal(feed(s, true, &g), (ssize_t)strlen(s) - 5);
  assert_true(R.done && R.chunked);
  /* pipelined leftovers after a length and after chunks are not used */
  s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s) - 19);
  s = CHUNKED "2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s) - 19);
  assert_int_equal(proxy_resp_feed(&R, "x", 1), -1); /* nothing after done */
  /* trailers are skipped */
  assert_true(feed(CHUNKED "2\r\nok\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", false, &g) > 0);
  assert_true(R.done && R.keep_alive);
  assert_int_equal(g.body_len, 2);
  /* 1xx heads, then the final one */
  s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Hints\r\nLink: <x>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s));
  assert_int_equal(g.n_heads, 3);
  assert_true(R.done && R.final_head && R.status == 200 && R.n == 1);
  /* 101: the rest is another protocol's, never kept */
  s = "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x01x";
  assert_int_equal(feed(s, false, &g), (ssize_t)strlen(s) - 3);
  assert_true(R.done && R.upgrade && !R.keep_alive);
  /* keep-alive: HTTP/1.0 only when asked, 1.1 unless closed, never for a
   * close-delimited body */
  assert_true(feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, &g) > 0);
  assert_true(R.done && !R.keep_alive);
  assert_true(feed("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", false,
                   &g) > 0);
  assert_true(R.done && R.keep_alive);
  assert_true(
      feed("HTTP/1.1 200 OK\r\nConnection: x, CLOSE\r\nContent-Length: 0\r\n\r\n", false, &g) > 0);
  assert_true(R.done && !R.keep_alive);
  assert_true(feed("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nabc", false, &g) > 0);
  assert_int_equal(proxy_resp_feed(&R, "", 0), 0);
  assert_true(R.done && !R.keep_alive);
  assert_int_equal(g.body_len, 3);
  /* HT and obs-text are value bytes, surrounding whitespace is not */
  assert_true(feed("HTTP/1.1 200 OK\r\nX:\t 0123456789\tabc\xe9\xff defgh \t\r\n"
                   "Content-Length: 0\r\n\r\n",
                   false, &g) > 0);
  assert_string_equal(R.f[0].value, "0123456789\tabc\xe9\xff defgh");
  /* a length up to INT64_MAX is taken */
  assert_true(feed("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nab", false, &g) >
              0);
  assert_int_equal(R.content_length, INT64_MAX);
  assert_false(R.done);
}

/* Each field's kind is found once, Connection's tokens mark what they name. */
static void test_parser_kinds(void **state)
{
  got_t g;
  (void)state;
  assert_true(feed("HTTP/1.1 200 OK\r\nconnection: x-a,, Keep-Alive\r\nX-A: 1\r\nTE: t\r\n"
                   "Proxy-Foo: 1\r\nVIA: 1.1 a\r\nSet-Cookie: a=1\r\nContent-Location: /x\r\n"
                   "Location: /y\r\nUpgrade: u\r\nDate: d\r\nServer: s\r\nX-B: 2\r\n"
                   "www-authenticate: Negotiate\r\nTransfer-encoding: chunked\r\nTrailer: t\r\n"
                   "Keep-Alive: 5\r\nX-A-: 3\r\n\r\n",
                   true, &g) > 0);
  assert_int_equal(R.n, 17);
  assert_int_equal(R.f[0].kind, PROXY_F_HOP | PROXY_F_CONNECTION);
  assert_int_equal(R.f[1].kind, PROXY_F_CONN_NAMED);
  assert_int_equal(R.f[2].kind, PROXY_F_HOP);
  assert_int_equal(R.f[3].kind, PROXY_F_HOP);
  assert_int_equal(R.f[4].kind, PROXY_F_VIA);
  assert_int_equal(R.f[5].kind, PROXY_F_COOKIE);
  assert_int_equal(R.f[6].kind, PROXY_F_LOCATION);
  assert_int_equal(R.f[7].kind, PROXY_F_LOCATION);
  assert_int_equal(R.f[8].kind, PROXY_F_HOP | PROXY_F_UPGRADE);
  assert_int_equal(R.f[9].kind, PROXY_F_OWN);
  assert_int_equal(R.f[10].kind, PROXY_F_OWN);
  assert_int_equal(R.f[11].kind, 0);
  assert_int_equal(R.f[12].kind, PROXY_F_WWW_AUTH);
  assert_int_equal(R.f[13].kind, PROXY_F_HOP | PROXY_F_TE);
  assert_int_equal(R.f[14].kind, PROXY_F_HOP);
  assert_int_equal(R.f[15].kind, PROXY_F_HOP | PROXY_F_CONN_NAMED);
  assert_int_equal(R.f[16].kind, 0);
  assert_string_equal(R.f[1].value, "1");
  assert_string_equal(R.f[4].value, "1.1 a");
  /* names beyond letters, digits and '-'; values with HT, padding, obs-text */
  assert_true(feed("HTTP/1.1 200 OK\r\nX_Y.z!: 1\r\nContent-length_: 2\r\nA:\t a\tb \t\r\n"
                   "B:   \r\nC: \xe9t\xe9 \r\nD:abcdefghijklmnop  \r\nE: 0123456\r\n\r\n",
                   true, &g) > 0);
  assert_int_equal(R.n, 7);
  assert_string_equal(R.f[0].name, "X_Y.z!");
  assert_int_equal(R.f[0].name_len, 6);
  assert_string_equal(R.f[1].name, "Content-length_");
  assert_int_equal(R.f[1].kind, 0);
  assert_string_equal(R.f[2].value, "a\tb");
  assert_string_equal(R.f[3].value, "");
  assert_string_equal(R.f[4].value, "\xe9t\xe9");
  assert_string_equal(R.f[5].value, "abcdefghijklmnop");
  assert_string_equal(R.f[6].value, "0123456");
  assert_int_equal(R.kinds, 0);
}

static void test_pool_identity(void **state)
{
  proxy_upstream_t *u = proxy_upstream_get("http://127.0.0.1:9");
  int sv[2], sw[2];
  (void)state;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sw), 0);
  uint64_t key = 0;
  proxy_pool_put(u, "uid:20001", sv[0], 11, 8);
  proxy_pool_put(u, NULL, sw[0], 12, 8);
  /* a connection opened as alice never goes to bob nor to the shared pool */
  assert_int_equal(proxy_pool_take(u, "uid:20002", &key), -1);
  assert_int_equal(proxy_pool_take(u, NULL, &key), sw[0]);
  assert_int_equal(key, 12); /* the connection's key comes back with it */
  assert_int_equal(proxy_pool_take(u, NULL, &key), -1);
  assert_int_equal(proxy_pool_take(u, "uid:20001", &key), sv[0]);
  assert_int_equal(key, 11);
  /* an idle connection that became readable (stray bytes, or closed) is not reused */
  proxy_pool_put(u, NULL, sw[0], 12, 8);
  assert_int_equal(write(sw[1], "x", 1), 1);
  assert_int_equal(proxy_pool_take(u, NULL, &key), -1);
  close(sv[0]);
  close(sv[1]);
  close(sw[1]);
  proxy_upstream_free_all();
}

/* The printf-free formatters give what the former snprintf calls gave. */
static void test_formatters(void **state)
{
  static const uint64_t nums[] = {0, 9, 10, 99, 100, 4294967295u, 4294967296u, UINT64_MAX};
  char d[PROXY_U64_LEN], want[64];
  (void)state;
  for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
    snprintf(want, sizeof(want), "%llu", (unsigned long long)nums[i]);
    assert_int_equal(proxy_fmt_u64(d, nums[i]), strlen(want));
    assert_string_equal(d, want);
  }
  assert_string_equal(d, "18446744073709551615");
}

/* Via / X-Forwarded-For / Forwarded values, against the former
 * snprintf(line[768], ...) formats: IPv4, IPv6, no prior chain, and chains
 * long enough to be cut at 767 bytes anywhere in the composed value. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation" /* the cut is what is compared */
static void test_forwarding_values(void **state)
{
  static const char *const addrs[] = {"127.0.0.1", "::1", "2001:db8:85a3::8a2e:370:7334",
                                      "fe80::1%eth0", "unknown"};
  static const size_t prior_lens[] = {0, 1, 700, 740, 755, 760, 765, 766, 767, 800};
  static char prior[1024];
  proxy_line_t l;
  char want[PROXY_LINE_MAX];
  (void)state;
  memset(prior, 'a', sizeof(prior));
  for (size_t a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++) {
    for (size_t p = 0; p < sizeof(prior_lens) / sizeof(prior_lens[0]); p++) {
      const char *pr = prior_lens[p] ? prior : NULL, *addr = addrs[a];
      const char *host = p % 2 ? "example.org:8080" : NULL;
      bool v6 = strchr(addr, ':') != NULL;
      prior[prior_lens[p]] = '\0';
      proxy_fwd_chain(&l, pr, addr);
      snprintf(want, sizeof(want), "%s%s%s", pr ? pr : "", pr ? ", " : "", addr);
      assert_string_equal(l.s, want);
      assert_int_equal(l.len, strlen(want));
      proxy_fwd_chain(&l, pr, "1.1 gatehouse");
      snprintf(want, sizeof(want), "%s%s%s gatehouse", pr ? pr : "", pr ? ", " : "", "1.1");
      assert_string_equal(l.s, want);
      proxy_fwd_forwarded(&l, pr, addr, "https", host);
      snprintf(want, sizeof(want), "%s%sfor=%s%s%s;proto=%s%s%s%s", pr ? pr : "", pr ? ", " : "",
               v6 ? "\"[" : "", addr, v6 ? "]\"" : "", "https", host ? ";host=\"" : "",
               host ? host : "", host ? "\"" : "");
      assert_string_equal(l.s, want);
      assert_int_equal(l.len, strlen(want));
      prior[prior_lens[p]] = 'a';
    }
  }
  proxy_fwd_forwarded(&l, NULL, "::1", "http", NULL);
  assert_string_equal(l.s, "for=\"[::1]\";proto=http");
}
#pragma GCC diagnostic pop

/* ---- the upstream request head (proxy_head_fields, proxy_head_end) ---- */

static proxy_site_t HS;
static const char *head_ident0; /* another name for the user field, or NULL */

/* identity_headers = user:X-Remote-User principal:X-Remote-Principal
 * groups:X-Remote-Groups auth-type:X-Auth-Type, a JWT field, proxy_via and
 * proxy_x_forwarded on */
static const proxy_site_t *head_site(bool forwarded, const char *fixed_host, bool jwt)
{
  static const char *const names[] = {"X-Remote-User", "X-Remote-Principal", "X-Remote-Groups",
                                      "X-Auth-Type"};
  static const int kinds[] = {0, 2, 1, 3};
  memset(&HS, 0, sizeof(HS));
  HS.ok = HS.via = HS.x_forwarded = true;
  HS.keepalive = 64;
  HS.forwarded = forwarded;
  HS.upstream_host = fixed_host;
  for (size_t i = 0; i < 4; i++) {
    HS.ident_name[i] = i == 0 && head_ident0 != NULL ? head_ident0 : names[i];
    HS.ident_kind[i] = kinds[i];
  }
  HS.n_ident = 4;
  if (jwt) {
    HS.idm.jwt_key = "/etc/gatehouse/jwt.pem";
    HS.idm.jwt_field = "X-JWT-Assertion";
  }
  proxy_site_prepare(&HS);
  return &HS;
}

typedef struct head_case {
  const char *what;
  const char *method, *url;
  int version;
  bool tls, user, forwarded, close;
  const char *addr, *fixed_host, *groups;
  int64_t cl;
  const char *f[48]; /* name, value, …, NULL */
  const char *want;
} head_case_t;

/* The head for c (fields from c->f, or names/values when given). */
static int build_head(const head_case_t *c, const char *const *names, const char *const *values,
                      size_t n, proxy_buf_t *b, proxy_head_out_t *out)
{
  static const char *fn[24], *fv[24];
  proxy_head_in_t in = {.conf = head_site(c->forwarded, c->fixed_host, true),
                        .up = proxy_upstream_get("http://127.0.0.1:8080"),
                        .site = "/p",
                        .method = c->method ? c->method : "GET",
                        .url = c->url ? c->url : "/p/x",
                        .version = c->version ? c->version : 11,
                        .tls = c->tls,
                        .addr = c->addr ? c->addr : "192.0.2.1",
                        .content_length = c->cl,
                        .has_user = c->user,
                        .keepalive = !c->close};
  int ret;
  if (names == NULL) {
    for (n = 0; c->f[2 * n] != NULL; n++) {
      fn[n] = c->f[2 * n];
      fv[n] = c->f[2 * n + 1];
    }
    names = fn;
    values = fv;
  }
  in.names = names;
  in.values = values;
  in.n_fields = n;
  if (c->user) {
    in.ident[0] = "alice";
    in.ident[1] = c->groups ? c->groups : "staff,wheel";
    in.ident[2] = "alice@EXAMPLE.ORG";
    in.ident[3] = "Negotiate";
  }
  ret = proxy_head_fields(&in, b, out);
  if (ret == 0)
    proxy_head_end(&in, b, out);
  return ret;
}

#define FWD_LOCAL "Via: 1.1 gatehouse\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
#define IDENT_ALICE                                                                                \
  "X-Remote-User: alice\r\nX-Remote-Principal: alice@EXAMPLE.ORG\r\n"                              \
  "X-Remote-Groups: staff,wheel\r\nX-Auth-Type: Negotiate\r\n"

static const head_case_t head_cases[] = {
    {.what = "plain GET",
     .cl = -1,
     .f = {"Host", "a.example", "User-Agent", "t/1", "Accept", "*/*", NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t/1\r\nAccept: */*\r\n" FWD_LOCAL
             "X-Forwarded-Host: a.example\r\n\r\n"},
    {.what = "spoofed identity fields, any case, '_' for '-', the JWT field",
     .user = true,
     .cl = -1,
     .f = {"x-remote-user",
           "evil",
           "X_REMOTE_USER",
           "evil",
           "X-Remote_Groups",
           "evil",
           "x_auth_type",
           "evil",
           "X-REMOTE-PRINCIPAL",
           "evil",
           "x-jwt-assertion",
           "evil",
           "X_Jwt_Assertion",
           "evil",
           "X-Remote-Users",
           "kept",
           "X-Remote-Use",
           "kept",
           "X-Remote-User2",
           "kept",
           "Authorization",
           "Basic YTpi",
           "Cookie",
           "a=b",
           "x-auth_TYPE",
           "evil",
           NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Remote-Users: kept\r\n"
             "X-Remote-Use: kept\r\nX-Remote-User2: kept\r\nCookie: a=b\r\n" FWD_LOCAL IDENT_ALICE
             "\r\n"},
    {.what = "anonymous: spoofed fields removed, none added",
     .cl = -1,
     .f = {"X-Remote-User", "evil", "x_remote_groups", "evil", "Accept", "*/*", NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n" FWD_LOCAL "\r\n"},
    {.what = "hop-by-hop and Connection-named fields",
     .cl = -1,
     .close = true,
     .f = {"X-Secret",
           "s1",
           "Connection",
           "keep-alive, x-secret,\tX-Other2 ,,",
           "x-SECRET",
           "s2",
           "X-Other",
           "o",
           "Keep-Alive",
           "5",
           "TE",
           "trailers",
           "Trailer",
           "X-T",
           "Proxy-Authorization",
           "Basic x",
           "Proxy-Connection",
           "keep-alive",
           "proxy-x",
           "y",
           "x-other2",
           "z",
           "Connection",
           "X-Kept",
           "X-Kept",
           "k",
           "Expect",
           "100-continue",
           NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Other: o\r\nX-Kept: k\r\n" FWD_LOCAL
             "Connection: close\r\n\r\n"},
    {.what = "upgrade relayed (HTTP/1.1, named by Connection)",
     .cl = -1,
     .close = true,
     .f = {"Host", "h", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Key", "k",
           NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\n"
             "Upgrade: websocket\r\n" FWD_LOCAL "X-Forwarded-Host: h\r\n\r\n"},
    {.what = "upgrade not relayed on HTTP/1.0",
     .version = 10,
     .cl = -1,
     .f = {"Connection", "upgrade", "Upgrade", "websocket", NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nVia: 1.0 gatehouse\r\n"
             "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n"},
    {.what = "several X-Forwarded-For, Via, Forwarded: the first is chained",
     .tls = true,
     .forwarded = true,
     .addr = "2001:db8::1",
     .cl = -1,
     .f = {"X-Forwarded-For", "10.0.0.1", "x-forwarded-for", "10.0.0.2", "Via", "1.0 a", "VIA",
           "1.1 b", "Forwarded", "for=10.0.0.1", "forwarded", "for=10.0.0.2", "Host", "h:8443",
           "X-Forwarded-Proto", "http", "X-Forwarded-Host", "evil", NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: h:8443\r\nVia: 1.0 a, 1.1 gatehouse\r\n"
             "X-Forwarded-For: 10.0.0.1, 2001:db8::1\r\nX-Forwarded-Proto: https\r\n"
             "X-Forwarded-Host: h:8443\r\n"
             "Forwarded: for=10.0.0.1, for=\"[2001:db8::1]\";proto=https;host=\"h:8443\"\r\n\r\n"},
    {.what = "upstream_host rewrites Host",
     .fixed_host = "app.internal",
     .addr = "",
     .cl = -1,
     .f = {"host", "public.example", NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: app.internal\r\nVia: 1.1 gatehouse\r\n"
             "X-Forwarded-For: unknown\r\nX-Forwarded-Proto: http\r\n"
             "X-Forwarded-Host: public.example\r\n\r\n"},
    {.what = "POST with a length: the client's Content-Length and Expect replaced",
     .method = "POST",
     .cl = 5,
     .user = true,
     .f = {"Content-Length", "5", "Expect", "100-continue", "Content-Type", "text/plain", NULL},
     .want = "POST /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\n" FWD_LOCAL
         IDENT_ALICE "Content-Length: 5\r\n\r\n"},
    {.what = "chunked body",
     .method = "PUT",
     .cl = -1,
     .f = {"Transfer-Encoding", "chunked", NULL},
     .want = "PUT /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
             "Transfer-Encoding: chunked\r\n\r\n"},
    {.what = "empty PUT",
     .method = "PUT",
     .cl = 0,
     .close = true,
     .f = {NULL},
     .want = "PUT /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
             "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {.what = "an identity value with CR or LF is left out",
     .user = true,
     .cl = -1,
     .groups = "staff,wheel,users\r\nX-Evil: 1",
     .f = {NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
             "X-Remote-User: alice\r\nX-Remote-Principal: alice@EXAMPLE.ORG\r\n"
             "X-Auth-Type: Negotiate\r\n\r\n"},
    {.what = "a short identity value with LF is left out",
     .user = true,
     .cl = -1,
     .groups = "a\nb",
     .f = {NULL},
     .want = "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
             "X-Remote-User: alice\r\nX-Remote-Principal: alice@EXAMPLE.ORG\r\n"
             "X-Auth-Type: Negotiate\r\n\r\n"},
};

static void check_head(const head_case_t *c, const char *const *names, const char *const *values,
                       size_t n, const char *want)
{
  proxy_buf_t b = {.max = PROXY_MAX_REQ_HEAD};
  proxy_head_out_t out;
  assert_int_equal(build_head(c, names, values, n, &b, &out), 0);
  assert_false(b.failed);
  if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
    fail_msg("%s:\n got  [%.*s]\n want [%s]", c->what, (int)b.len, b.p, want);
  proxy_buf_free(&b);
}

static void test_head_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++)
    check_head(&head_cases[i], NULL, NULL, 0, head_cases[i].want);
}

/* Every CR or LF position in identity values of 1 to 40 bytes (the
 * word-at-a-time check): the field is left out; without one it is sent. */
static void test_head_ident_crlf(void **state)
{
  char v[41], want[512];
  head_case_t c = {.what = "groups", .user = true, .cl = -1, .groups = v};
  (void)state;
  for (size_t n = 1; n <= 40; n++) {
    memset(v, 'g', n);
    v[n] = '\0';
    snprintf(want, sizeof(want),
             "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
             "X-Remote-User: alice\r\nX-Remote-Principal: alice@EXAMPLE.ORG\r\n"
             "X-Remote-Groups: %s\r\nX-Auth-Type: Negotiate\r\n\r\n",
             v);
    check_head(&c, NULL, NULL, 0, want);
    for (size_t at = 0; at < n; at++) {
      snprintf(want, sizeof(want),
               "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" FWD_LOCAL
               "X-Remote-User: alice\r\nX-Remote-Principal: alice@EXAMPLE.ORG\r\n"
               "X-Auth-Type: Negotiate\r\n\r\n");
      v[at] = '\r';
      check_head(&c, NULL, NULL, 0, want);
      v[at] = '\n';
      check_head(&c, NULL, NULL, 0, want);
      v[at] = 'g';
    }
  }
}

/* An identity field named as a field the head builder knows (Via,
 * X-Forwarded-For, Host...): a client's field of that name is still
 * stripped, in any case and with '_', and never read as the chain so far. */
static void test_head_ident_known_name(void **state)
{
  static const char *const known[] = {"Via", "X-Forwarded-For", "Forwarded", "X-Forwarded-Host",
                                      "Upgrade"};
  (void)state;
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
    char lower[32], under[32];
    head_case_t c = {.what = known[i], .user = true, .cl = -1};
    proxy_buf_t b = {.max = PROXY_MAX_REQ_HEAD};
    proxy_head_out_t out;
    size_t n = strlen(known[i]);
    for (size_t j = 0; j <= n; j++) {
      lower[j] = (char)tolower((unsigned char)known[i][j]);
      under[j] = known[i][j] == '-' ? '_' : known[i][j];
    }
    const char *names[] = {"Host", lower, under, known[i]};
    const char *values[] = {"a.example", "evil-1", "evil-2", "evil-3"};
    head_ident0 = known[i];
    assert_int_equal(build_head(&c, names, values, 4, &b, &out), 0);
    head_ident0 = NULL;
    if (memmem(b.p, b.len, "evil", 4) != NULL)
      fail_msg("%s: a client's field reached the upstream: [%.*s]", known[i], (int)b.len, b.p);
    assert_non_null(memmem(b.p, b.len, "alice", 5));
    proxy_buf_free(&b);
  }
}

/* More fields than the first pass keeps kinds for, and more Connection
 * tokens than it splits: the later ones are removed all the same. */
static void test_head_many_fields(void **state)
{
  static const char *names[80], *values[80];
  static char nbuf[80][16], conn[600], want[8192];
  head_case_t c = {.what = "many fields", .cl = -1};
  size_t n = 0, w;
  (void)state;
  w = (size_t)snprintf(conn, sizeof(conn), "keep-alive");
  for (int i = 0; i < 24; i++)
    w += (size_t)snprintf(conn + w, sizeof(conn) - w, ", x-named-%d", i);
  w = (size_t)snprintf(want, sizeof(want), "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n");
  for (int i = 0; i < 78; i++) {
    if (i == 70)
      snprintf(nbuf[i], sizeof(nbuf[i]), "x_REMOTE_user");
    else if (i == 72)
      snprintf(nbuf[i], sizeof(nbuf[i]), "X-Named-23");
    else if (i == 74)
      snprintf(nbuf[i], sizeof(nbuf[i]), "Proxy-Foo");
    else
      snprintf(nbuf[i], sizeof(nbuf[i]), "X-F%d", i);
    names[n] = nbuf[i];
    values[n++] = "v";
    if (i != 70 && i != 72 && i != 74)
      w += (size_t)snprintf(want + w, sizeof(want) - w, "X-F%d: v\r\n", i);
  }
  names[n] = "Connection";
  values[n++] = conn;
  snprintf(want + w, sizeof(want) - w, FWD_LOCAL "\r\n");
  check_head(&c, names, values, n, want);
}

/* Long values: a chained X-Forwarded-For cut at PROXY_LINE_MAX - 1 bytes,
 * a client field near the head's limit, the limit itself (the head that
 * just fits, then one byte less room: failed). */
static void test_head_limits(void **state)
{
  static char prior[1000], chain[1100], big[PROXY_MAX_REQ_HEAD], want[PROXY_MAX_REQ_HEAD + 1024];
  head_case_t c = {.what = "long X-Forwarded-For", .cl = -1, .f = {"X-Forwarded-For", prior, NULL}};
  proxy_buf_t b = {.max = PROXY_MAX_REQ_HEAD};
  proxy_head_out_t out;
  size_t len;
  (void)state;
  for (size_t pl = 755; pl <= 770; pl++) {
    memset(prior, '1', pl);
    prior[pl] = '\0';
    snprintf(chain, sizeof(chain), "%s, 192.0.2.1", prior);
    snprintf(want, sizeof(want),
             "GET /p/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nVia: 1.1 gatehouse\r\n"
             "X-Forwarded-For: %.767s\r\nX-Forwarded-Proto: http\r\n\r\n",
             chain);
    check_head(&c, NULL, NULL, 0, want);
  }
  /* a field value that takes the head to exactly the limit */
  c = (head_case_t){.what = "at the limit", .cl = -1, .f = {"X-Big", big, NULL}};
  memset(big, 'b', sizeof(big) - 1);
  big[0] = '\0';
  assert_int_equal(build_head(&c, NULL, NULL, 0, &b, &out), 0);
  len = b.len; /* the head with an empty value */
  proxy_buf_free(&b);
  memset(big, 'b', sizeof(big) - 1);
  big[PROXY_MAX_REQ_HEAD - len] = '\0';
  b = (proxy_buf_t){.max = PROXY_MAX_REQ_HEAD};
  assert_int_equal(build_head(&c, NULL, NULL, 0, &b, &out), 0);
  assert_false(b.failed);
  assert_int_equal(b.len, PROXY_MAX_REQ_HEAD);
  assert_memory_equal(b.p + b.len - 4, "\r\n\r\n", 4);
  proxy_buf_free(&b);
  big[PROXY_MAX_REQ_HEAD - len] = 'b';
  big[PROXY_MAX_REQ_HEAD - len + 1] = '\0';
  b = (proxy_buf_t){.max = PROXY_MAX_REQ_HEAD};
  assert_int_equal(build_head(&c, NULL, NULL, 0, &b, &out), 0);
  assert_true(b.failed); /* "head too large": 431 */
  proxy_buf_free(&b);
  /* a dot segment: 400, nothing written */
  c = (head_case_t){.what = "dot", .url = "/p/a/%2E%2e/b", .cl = -1, .f = {NULL}};
  b = (proxy_buf_t){.max = PROXY_MAX_REQ_HEAD};
  assert_int_equal(build_head(&c, NULL, NULL, 0, &b, &out), -EBADMSG);
  assert_int_equal(b.len, 0);
  proxy_buf_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upstream_lines),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_parser),
      cmocka_unit_test(test_parser_move),
      cmocka_unit_test(test_parser_splits),
      cmocka_unit_test(test_parser_refuses),
      cmocka_unit_test(test_parser_limits),
      cmocka_unit_test(test_parser_framing),
      cmocka_unit_test(test_parser_kinds),
      cmocka_unit_test(test_pool_identity),
      cmocka_unit_test(test_formatters),
      cmocka_unit_test(test_forwarding_values),
      cmocka_unit_test(test_head_table),
      cmocka_unit_test(test_head_ident_crlf),
      cmocka_unit_test(test_head_ident_known_name),
      cmocka_unit_test(test_head_many_fields),
      cmocka_unit_test(test_head_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

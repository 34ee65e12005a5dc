/* test_http_parse.c: unit tests for the HTTP request parser glue (events, splits, limits, smuggling). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/http_parse.h"

static gh__http_limits_t lim = {
  .max_uri = 64, .max_header_bytes = 256, .max_header_count = 8, .max_body = 100,
};

typedef struct result {
  int n_done;
  int error;          /* HTTP status of the error, 0 if none */
  int n_headers_ev;
  char last_url[128];
  char last_body[256];
  size_t last_body_len;
  bool keep_alive, chunked, expect, head;
} result_t;

/* Feeds data in pieces of `step` bytes (0 = all at once), handling every
 * event like the I/O thread does. */
static void run(const char *data, size_t len, size_t step, result_t *res)
{
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  memset(res, 0, sizeof(*res));
  gh__http_parser_init(&p, &lim);
  gh__http_parser_begin(&p, &msg);
  size_t pos = 0;
  while (pos < len) {
    size_t n = step == 0 || len - pos < step ? len - pos : step;
    size_t off = 0;
    while (off < n) {
      size_t used;
      int r = gh__http_parser_feed(&p, data + pos + off, n - off, &used);
      off += used;
      if (r == GH__HTTP_ERROR) {
        res->error = p.status;
        goto out;
      }
      if (r == GH__HTTP_HEADERS) {
        res->n_headers_ev++;
        snprintf(res->last_url, sizeof(res->last_url), "%s", msg.url);
        res->chunked = msg.chunked;
        res->expect = msg.expect_continue;
        res->head = msg.head;
      } else if (r == GH__HTTP_DONE) {
        res->n_done++;
        res->keep_alive = msg.keep_alive;
        res->last_body_len = msg.body_len;
        memcpy(res->last_body, msg.body ? msg.body : "", msg.body_len < 255 ? msg.body_len : 255);
        res->last_body[msg.body_len < 255 ? msg.body_len : 255] = '\0';
        gh__http_parser_begin(&p, &msg);
      } else if (used == 0) {
        break;
      }
    }
    pos += n;
  }
out:
  gh__http_msg_done(&msg);
}

static void test_simple_get(void **state)
{
  (void)state;
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  gh__http_parser_init(&p, &lim);
  gh__http_parser_begin(&p, &msg);
  const char *req = "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Sp:  v v  \r\n\r\n";
  size_t used;
  assert_int_equal(gh__http_parser_feed(&p, req, strlen(req), &used), GH__HTTP_HEADERS);
  assert_string_equal(msg.url, "/a/b?x=1");
  assert_string_equal(msg.method_str, "GET");
  assert_int_equal(msg.n_headers, 3);
  assert_string_equal(msg.headers[0].name, "Host");
  assert_string_equal(msg.headers[0].value, "h");
  assert_string_equal(msg.headers[1].value, "");
  assert_string_equal(msg.headers[2].value, "v v");
  assert_string_equal(gh__http_msg_header(&msg, "x-sp"), "v v");
  assert_null(gh__http_msg_header(&msg, "nope"));
  assert_int_equal(msg.http_major, 1);
  assert_int_equal(msg.http_minor, 1);
  size_t used2;
  assert_int_equal(gh__http_parser_feed(&p, req + used, strlen(req) - used, &used2),
                   GH__HTTP_DONE);
  assert_int_equal(used + used2, strlen(req));
  assert_true(msg.keep_alive);
  gh__http_msg_done(&msg);
}

static void test_every_split(void **state)
{
  (void)state;
  const char *req = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
                    "GET /next HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  for (size_t step = 0; step < strlen(req); step++) {
    result_t r;
    run(req, strlen(req), step, &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.n_done, 2);
    assert_int_equal(r.n_headers_ev, 2);
    assert_string_equal(r.last_url, "/next");
    assert_string_equal(r.last_body, "abc");
  }
}

static void test_pipelined(void **state)
{
  (void)state;
  char buf[4096] = "";
  for (int i = 0; i < 20; i++) {
    char one[64];
    snprintf(one, sizeof(one), "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    strcat(buf, one);
  }
  result_t r;
  run(buf, strlen(buf), 0, &r);
  assert_int_equal(r.n_done, 20);
  assert_string_equal(r.last_url, "/19");
}

static void test_chunked_body(void **state)
{
  (void)state;
  const char *req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  result_t r;
  run(req, strlen(req), 0, &r);
  assert_int_equal(r.error, 0);
  assert_true(r.chunked);
  assert_string_equal(r.last_body, "abcde");
}

static void test_head_expect_versions(void **state)
{
  (void)state;
  result_t r;
  const char *h = "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n";
  run(h, strlen(h), 0, &r);
  assert_true(r.head);
  const char *e = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
  run(e, strlen(e), 0, &r);
  assert_true(r.expect);
  assert_string_equal(r.last_body, "ok");
  const char *e2 = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n";
  run(e2, strlen(e2), 0, &r);
  assert_int_equal(r.error, 417);
  const char *v10 = "GET / HTTP/1.0\r\n\r\n";
  run(v10, strlen(v10), 0, &r);
  assert_int_equal(r.error, 0);
  assert_false(r.keep_alive);
  const char *v10k = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  run(v10k, strlen(v10k), 0, &r);
  assert_true(r.keep_alive);
  const char *close = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  run(close, strlen(close), 0, &r);
  assert_false(r.keep_alive);
}

static void expect_status(const char *req, int status)
{
  result_t r;
  run(req, strlen(req), 0, &r);
  if (r.error != status)
    fail_msg("expected %d, got %d for %s", status, r.error, req);
  run(req, strlen(req), 1, &r);
  if (r.error != status)
    fail_msg("byte-wise: expected %d, got %d for %s", status, r.error, req);
}

static void test_limits(void **state)
{
  (void)state;
  char buf[2048];
  snprintf(buf, sizeof(buf), "GET /%0100d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  expect_status(buf, 414);
  strcpy(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 0; i < 9; i++)
    strcat(buf, "X: y\r\n");
  strcat(buf, "\r\n");
  expect_status(buf, 431);
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: %0300d\r\n\r\n", 0);
  expect_status(buf, 431);
  expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 413);
  snprintf(buf, sizeof(buf),
           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n%0100d\r\n"
           "1\r\nx\r\n0\r\n\r\n", 0);
  expect_status(buf, 413);
}

static void test_smuggling_and_malformed(void **state)
{
  (void)state;
  expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  expect_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400);
  expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
  expect_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
  expect_status("GET / HTTP/1.1\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_status("GARBAGE\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400);
  expect_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
  /* HTTP/1.0 with Transfer-Encoding: faulty framing, refused whatever else it says */
  static const char ka_te[] =
      "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  expect_status(ka_te, 400);
  expect_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  expect_status("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
  expect_status("POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  expect_status("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  expect_status("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  /* chunk data ends in exactly CRLF (libhttp-parser took any two bytes) */
  static const char te[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  char chunked[6000];
  snprintf(chunked, sizeof(chunked), "%s5\r\nhelloXX0\r\n\r\n", te);
  expect_status(chunked, 400);
  snprintf(chunked, sizeof(chunked), "%s5\r\nhello\rX0\r\n\r\n", te);
  expect_status(chunked, 400);
  /* a chunk-size line (extensions) or a trailer line over 4 KiB */
  snprintf(chunked, sizeof(chunked), "%s5;x=%04500d\r\nhello\r\n0\r\n\r\n", te, 0);
  expect_status(chunked, 400);
  snprintf(chunked, sizeof(chunked), "%s5;x=%03900d\r\nhello\r\n0\r\n\r\n", te, 0);
  expect_status(chunked, 0); /* under the limit */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
  result_t r;
  run(nul, sizeof(nul) - 1, 0, &r);
  assert_int_equal(r.error, 400);
  expect_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400);
}

/* Authorization values are counted against max_authz_bytes instead of
 * max_header_bytes (a Kerberos token with a large PAC is no 431); above it
 * they are 400, the auth engine's status for an oversize token. */
static void test_authorization_budget(void **state)
{
  (void)state;
  char buf[4096], tok[512], tok2[320], big[300];
  result_t r;
  memset(tok, 'A', 380);
  tok[380] = '\0'; /* "Negotiate " + 380 = 390 value bytes */
  memset(tok2, 'B', 300);
  tok2[300] = '\0';
  memset(big, 'v', 200);
  big[200] = '\0';
  lim.max_authz_bytes = 390;

  /* above max_header_bytes (256), within the budget: whole and byte-wise */
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate %s\r\n\r\n",
           tok);
  expect_status(buf, 0);
  run(buf, strlen(buf), 7, &r);
  assert_int_equal(r.n_done, 1);
  /* the other fields keep their own budget next to it */
  snprintf(buf, sizeof(buf),
           "GET / HTTP/1.1\r\nHost: h\r\nauthorization: Negotiate %s\r\nX: %s\r\n\r\n", tok, big);
  expect_status(buf, 0);
  /* one byte over: 400 */
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate %sA\r\n\r\n",
           tok);
  expect_status(buf, 400);
  /* two fields share the budget */
  snprintf(buf, sizeof(buf),
           "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: %s\r\nAuthorization: %s\r\n\r\n", tok2,
           tok2);
  expect_status(buf, 400);
  /* another name, a longer one, a trailer: ordinary fields */
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX-Authorization: %s\r\n\r\n", tok2);
  expect_status(buf, 431);
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nAuthorizations: %s\r\n\r\n", tok2);
  expect_status(buf, 431);
  snprintf(buf, sizeof(buf),
           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
           "Authorization: %s\r\n\r\n",
           tok2);
  expect_status(buf, 431);
  /* without a budget it is an ordinary field */
  lim.max_authz_bytes = 0;
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Negotiate %s\r\n\r\n",
           tok);
  expect_status(buf, 431);
}

/* The header section as a whole is bounded (gh__http_section_max): the
 * whitespace around values and empty lines before the request line, which
 * no field count sees. */
static void test_section_bound(void **state)
{
  (void)state;
  char buf[4096];
  size_t max, n;
  lim.max_authz_bytes = 0;
  max = gh__http_section_max(&lim);
  assert_int_equal(max, 64 + 256 + 1024);
  /* spaces before a value: libhttp-parser drops them before the callback */
  n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX:");
  memset(buf + n, ' ', max);
  snprintf(buf + n + max, sizeof(buf) - n - max, "v\r\n\r\n");
  expect_status(buf, 431);
  /* the same section at exactly the bound is served */
  memset(buf + n, ' ', max - n - 5);
  memcpy(buf + max - 5, "v\r\n\r\n", 6);
  assert_int_equal(strlen(buf), max);
  expect_status(buf, 0);
  /* empty lines before the request line */
  for (n = 0; n + 2 <= max + 2; n += 2)
    memcpy(buf + n, "\r\n", 2);
  snprintf(buf + n, sizeof(buf) - n, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  expect_status(buf, 431);
}

static void test_set_max_body(void **state)
{
  (void)state;
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  gh__http_parser_init(&p, &lim);
  gh__http_parser_begin(&p, &msg);
  const char *req = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n";
  size_t used;
  assert_int_equal(gh__http_parser_feed(&p, req, strlen(req), &used), GH__HTTP_HEADERS);
  assert_true(gh__http_parser_in_body(&p));
  assert_int_equal(gh__http_parser_set_max_body(&p, 10), GH__HTTP_ERROR);
  assert_int_equal(p.status, 413);
  gh__http_msg_done(&msg);
}

static void test_started_and_leading_crlf(void **state)
{
  (void)state;
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  gh__http_parser_init(&p, &lim);
  gh__http_parser_begin(&p, &msg);
  size_t used;
  assert_int_equal(gh__http_parser_feed(&p, "\r\n", 2, &used), GH__HTTP_MORE);
  assert_false(gh__http_parser_started(&p));
  assert_int_equal(gh__http_parser_feed(&p, "GE", 2, &used), GH__HTTP_MORE);
  assert_true(gh__http_parser_started(&p));
  gh__http_msg_shrink(&msg, 0);
  gh__http_msg_done(&msg);
}

/* The byte-at-a-time header-section scan the parser had before its memchr
 * version: a bare LF or a folded line anywhere before the empty line. */
static bool ref_scan(const char *data, size_t len)
{
  bool line_start = true, prev_cr = false;
  unsigned lines = 0;
  for (size_t i = 0; i < len; i++) {
    char c = data[i];
    if (c == '\n' && !prev_cr)
      return true;
    prev_cr = c == '\r';
    if (line_start) {
      if (c == ' ' || c == '\t') {
        if (lines > 0)
          return true;
      } else if (c == '\r' || c == '\n') {
        if (lines > 0)
          return false;
        continue;
      }
      line_start = false;
    }
    if (c == '\n') {
      line_start = true;
      lines++;
    }
  }
  return false;
}

/* Random header sections with folds, bare LFs, CRs, tabs, control bytes and
 * DEL in values: a section the old scan rejected is a 400 however the
 * bytes are split into feeds (the scans carry state across feeds), and a
 * single well-delimited message gets the same verdict for every split. */
static void test_random_sections(void **state)
{
  (void)state;
  static const char pieces[][12] = {"a", "Host: h", "X-Long-Value", ": ", " ", "\t", "\r", "\n",
                                    "\r\n", "\r\n", "\r\n", "0123456789", "\x01", "\x7f", "\x1f"};
  unsigned seed = 12345;
  for (int iter = 0; iter < 3000; iter++) {
    char buf[200] = "GET / HTTP/1.1\r\nHost: h\r\n";
    size_t len = strlen(buf);
    int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
    for (int k = 0; k < n; k++) {
      const char *pc = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % 15];
      size_t pl = strlen(pc);
      if (len + pl + 5 >= sizeof(buf))
        break;
      memcpy(buf + len, pc, pl);
      len += pl;
    }
    memcpy(buf + len, "\r\n\r\n", 4);
    len += 4;
    result_t whole, split;
    bool bad = ref_scan(buf, len);
    /* one message: the section ends at the end, every CR is a CRLF's */
    bool one = (size_t)(strstr(buf, "\r\n\r\n") - buf) == len - 4;
    for (size_t i = 0; i < len && one; i++)
      if (buf[i] == '\r' && buf[i + 1] != '\n')
        one = false;
    run(buf, len, 0, &whole);
    if (bad)
      assert_int_equal(whole.error, 400);
    for (size_t step = 1; step <= 9 && (bad || one); step += 2) {
      run(buf, len, step, &split);
      assert_int_equal(split.error, whole.error);
    }
  }
  /* a control byte after eight clean value bytes (the word-at-a-time check) */
  expect_status("GET / HTTP/1.1\r\nHost: h\r\nX: abcdefgh\x01ijklmnop\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nHost: h\r\nX: abcdefghijklmno\x7f\r\n\r\n", 400);
  expect_status("GET /abcdefgh\x02ijkl HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  result_t r;
  static const char tabs[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\tbcdefgh\tijklmnop\t\r\n\r\n";
  run(tabs, sizeof(tabs) - 1, 0, &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.n_done, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_simple_get),
    cmocka_unit_test(test_every_split),
    cmocka_unit_test(test_pipelined),
    cmocka_unit_test(test_chunked_body),
    cmocka_unit_test(test_head_expect_versions),
    cmocka_unit_test(test_limits),
    cmocka_unit_test(test_smuggling_and_malformed),
    cmocka_unit_test(test_authorization_budget),
    cmocka_unit_test(test_section_bound),
    cmocka_unit_test(test_set_max_body),
    cmocka_unit_test(test_started_and_leading_crlf),
    cmocka_unit_test(test_random_sections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_cgi_headers.c: unit tests of the CGI response header parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cgi_headers.h"

static char buf[20000];

static ssize_t P(const char *s, cgi_headers_t *h)
{
  size_t n = strlen(s);
  memcpy(buf, s, n);
  return cgi_parse_headers(buf, n, h);
}

static void test_basic(void **state)
{
  cgi_headers_t h;
  (void)state;
  assert_int_equal(P("Content-Type: text/plain\r\nX-A: 1 \r\n\r\nbody", &h), 37);
  assert_int_equal(h.status, 200);
  assert_int_equal(h.n, 2);
  assert_string_equal(h.h[1].name, "X-A");
  assert_string_equal(h.h[1].value, "1");
  assert_int_equal(P("Status: 404 Not Here\nContent-Type: text/html\n\n", &h), 46);
  assert_int_equal(h.status, 404);
  assert_string_equal(h.reason, "Not Here");
  assert_int_equal(P("Location: http://x/y\n\n", &h), 22);
  assert_int_equal(h.status, 302);
}

static void test_incomplete_and_errors(void **state)
{
  cgi_headers_t h;
  (void)state;
  assert_int_equal(P("Content-Type: text/plain\r\n", &h), 0);
  assert_int_equal(P("no colon here\n\n", &h), -EPROTO);
  assert_int_equal(P("X-Only: 1\n\n", &h), -EPROTO);
  assert_int_equal(P("Status: 99\n\n", &h), -EPROTO);
  assert_int_equal(P("Status: 2000\n\n", &h), -EPROTO);
  assert_int_equal(P("Bad Name: x\nContent-Type: a\n\n", &h), -EPROTO);
  assert_int_equal(P("Content-Type: a\x01\n\n", &h), -EPROTO);
  memset(buf, 'a', sizeof(buf));
  assert_int_equal(cgi_parse_headers(buf, sizeof(buf), &h), -E2BIG);
  {
    char many[4000] = "";
    for (int i = 0; i < 70; i++)
      strcat(many, "X: y\n");
    strcat(many, "Content-Type: a\n\n");
    assert_int_equal(P(many, &h), -E2BIG);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_incomplete_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_proxy_negotiate.c: the proxy's Negotiate without a KDC: token parsing, refusals (no
 * credential, no or bad upstream token). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_negotiate.h"

static void test_token_of(void **state)
{
  (void)state;
  size_t len = 0;
  const char *t = proxy_negotiate_token_of(" Negotiate YWJj", &len);
  assert_non_null(t);
  assert_int_equal(len, 4);
  assert_memory_equal(t, "YWJj", 4);
  t = proxy_negotiate_token_of("negotiate\tYWJjZA==  ", &len);
  assert_non_null(t);
  assert_int_equal(len, 8);
  /* another scheme, no token, a scheme prefix, a second challenge after it */
  assert_null(proxy_negotiate_token_of("Basic realm=\"x\"", &len));
  assert_null(proxy_negotiate_token_of("Negotiate", &len));
  assert_null(proxy_negotiate_token_of("Negotiate   ", &len));
  assert_null(proxy_negotiate_token_of("NegotiateYWJj", &len));
  assert_null(proxy_negotiate_token_of("Negotiate YWJj, Basic realm=x", &len));
  assert_null(proxy_negotiate_token_of(NULL, &len));
}

static void test_no_credential(void **state)
{
  (void)state;
  proxy_negotiate_t *n = NULL;
  char err[512] = "", *v = NULL;
  /* an empty MEMORY ccache: no client principal, no ticket; never the default ccache */
  assert_int_equal(proxy_negotiate_start("MEMORY:gh-test-empty", "HTTP/upstream.example", &n, &v,
                                         err, sizeof(err)),
                   -ENOKEY);
  assert_null(n);
  assert_null(v);
  assert_non_null(strstr(err, "the client's credential"));
  assert_int_equal(proxy_negotiate_start(NULL, "HTTP/x", &n, &v, err, sizeof(err)), -EINVAL);
  assert_int_equal(proxy_negotiate_start("MEMORY:x", "", &n, &v, err, sizeof(err)), -EINVAL);
}

static void test_finish_refuses(void **state)
{
  (void)state;
  char err[512] = "";
  const char *none[] = {"Basic realm=\"x\""};
  const char *bad[] = {"Negotiate !!!!"};
  /* no context at all, no Negotiate token, a token that is not base64 */
  assert_int_equal(proxy_negotiate_finish(NULL, none, 1, err, sizeof(err)), -EBADMSG);
  assert_non_null(strstr(err, "did not authenticate itself"));
  assert_int_equal(proxy_negotiate_finish(NULL, NULL, 0, err, sizeof(err)), -EBADMSG);
  assert_int_equal(proxy_negotiate_finish(NULL, bad, 1, err, sizeof(err)), -EBADMSG);
  proxy_negotiate_free(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_token_of),
      cmocka_unit_test(test_no_credential),
      cmocka_unit_test(test_finish_refuses),
  };
  /* no KDC and no default ccache may be used by accident */
  setenv("KRB5CCNAME", "FILE:/nonexistent/gh-test-ccache", 1);
  return cmocka_run_group_tests_name("proxy_negotiate", tests, NULL, NULL);
}

/* test_startup_order.c: the start-up order is enforced at the call (gh_sec_init first). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>

/*
 * One process, in order: before gh_sec_init the calls that need it refuse
 * with GH_ESTATE and say why (they used to return 0 and fail every request
 * later, or abort without a word); after it they work.
 */

static void test_before_sec_init(void **state)
{
  gh_server_t *srv = NULL;
  char err[256] = "";
  (void)state;
  /* no base identity to compare with: an error, not an abort */
  assert_int_equal(gh_assert_base(), GH_ESTATE);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_enable_auth(srv, NULL, err, sizeof(err)), GH_ESTATE);
  assert_non_null(strstr(err, "call gh_sec_init() first"));
  gh_server_free(srv);
}

static void test_after_sec_init(void **state)
{
  gh_server_t *srv = NULL;
  gh_sec_config_t sc = {.min_uid = 1000};
  char err[256] = "";
  (void)state;
  assert_int_equal(gh_sec_init(&sc), 0);
  assert_int_equal(gh_assert_base(), 0);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_enable_auth(srv, NULL, err, sizeof(err)), 0);
  gh_server_free(srv);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_before_sec_init),
      cmocka_unit_test(test_after_sec_init),
  };
  if (geteuid() != 0) {
    printf("1..0 # SKIP needs root (gh_sec_init with CAP_SETUID/CAP_SETGID)\n");
    return 0;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}

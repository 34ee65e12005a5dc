/* test_error.c: unit tests for gh_strerror / gh_err_name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/error.h>

static void test_every_code_has_name_and_message(void **state)
{
  (void)state;
  for (int e = GH_E_FIRST_ + 1; e < GH_E_LAST_; e++) {
    assert_true(strncmp(gh_err_name(e), "GH_E", 4) == 0);
    assert_string_not_equal(gh_strerror(e), "unknown error");
  }
}

static void test_specific_codes(void **state)
{
  (void)state;
  assert_string_equal(gh_err_name(GH_EINVALID_HANDLE), "GH_EINVALID_HANDLE");
  assert_string_equal(gh_strerror(GH_EINVALID_HANDLE), "invalid or stale handle");
  assert_true(GH_EINVALID_HANDLE > GH_E_BASE);
  assert_true(GH_E_LAST_ < GH_E_ERRNO_MIN);
}

static void test_errno_passthrough(void **state)
{
  (void)state;
  assert_string_equal(gh_err_name(-ENOENT), "ENOENT");
  assert_string_equal(gh_strerror(-ENOENT), "No such file or directory");
  assert_string_equal(gh_strerror(0), "success");
}

static void test_unknown(void **state)
{
  (void)state;
  assert_string_equal(gh_strerror(GH_E_LAST_ + 0), "unknown error");
  assert_string_equal(gh_err_name(-99999), "UNKNOWN");
  assert_string_equal(gh_strerror(12345), "unknown error");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_code_has_name_and_message),
    cmocka_unit_test(test_specific_codes),
    cmocka_unit_test(test_errno_passthrough),
    cmocka_unit_test(test_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

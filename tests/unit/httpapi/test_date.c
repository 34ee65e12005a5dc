/* test_date.c: unit tests for the Date header formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/date.h"

static void test_format(void **state)
{
  (void)state;
  char buf[GH__HTTP_DATE_LEN + 1];
  gh__http_date_format(784111777, buf);
  assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
  gh__http_date_format(0, buf);
  assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
  gh__http_date_format(951782400, buf); /* leap day 2000-02-29 */
  assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
  gh__http_date_format(4102444799, buf);
  assert_string_equal(buf, "Thu, 31 Dec 2099 23:59:59 GMT");
}

static void test_now_cached(void **state)
{
  (void)state;
  const char *a = gh__http_date_now();
  assert_int_equal(strlen(a), GH__HTTP_DATE_LEN);
  assert_memory_equal(a + 25, " GMT", 4);
  const char *b = gh__http_date_now();
  assert_ptr_equal(a, b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_format),
    cmocka_unit_test(test_now_cached),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

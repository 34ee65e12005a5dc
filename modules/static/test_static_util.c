/* test_static_util.c: unit tests of the static module's range parser, path checks and MIME table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "static_util.h"

static static_range_kind_t R(const char *v, uint64_t size, uint64_t *s, uint64_t *l)
{
  return static_parse_range(v, strlen(v), size, s, l);
}

static void test_ranges(void **state)
{
  uint64_t s = 0, l = 0;
  (void)state;
  assert_int_equal(R("bytes=0-9", 100, &s, &l), STATIC_RANGE_OK);
  assert_true(s == 0 && l == 10);
  assert_int_equal(R("bytes=90-", 100, &s, &l), STATIC_RANGE_OK);
  assert_true(s == 90 && l == 10);
  assert_int_equal(R("bytes=-5", 100, &s, &l), STATIC_RANGE_OK);
  assert_true(s == 95 && l == 5);
  assert_int_equal(R("bytes=-500", 100, &s, &l), STATIC_RANGE_OK);
  assert_true(s == 0 && l == 100);
  assert_int_equal(R("bytes=50-5000", 100, &s, &l), STATIC_RANGE_OK);
  assert_true(s == 50 && l == 50);
  assert_int_equal(R("bytes=100-", 100, &s, &l), STATIC_RANGE_UNSATISFIABLE);
  assert_int_equal(R("bytes=-0", 100, &s, &l), STATIC_RANGE_UNSATISFIABLE);
  assert_int_equal(R("bytes=0-0", 0, &s, &l), STATIC_RANGE_UNSATISFIABLE);
  assert_int_equal(R("bytes=5-1", 100, &s, &l), STATIC_RANGE_NONE);
  assert_int_equal(R("bytes=0-1,5-6", 100, &s, &l), STATIC_RANGE_NONE);
  assert_int_equal(R("items=0-1", 100, &s, &l), STATIC_RANGE_NONE);
  assert_int_equal(R("bytes=-", 100, &s, &l), STATIC_RANGE_NONE);
  assert_int_equal(R("bytes=99999999999999999999-", 100, &s, &l), STATIC_RANGE_NONE);
  assert_int_equal(R("bytes=+1-2", 100, &s, &l), STATIC_RANGE_NONE);
}

static int P(const char *raw, const char *rel, char *out)
{
  return static_check_path(raw, strlen(raw), rel, strlen(rel), out, 256);
}

static void test_paths(void **state)
{
  char out[256];
  (void)state;
  assert_int_equal(P("/f/a/b.txt", "/a/b.txt", out), 0);
  assert_string_equal(out, "a/b.txt");
  assert_int_equal(P("/f/", "/", out), 0);
  assert_string_equal(out, ".");
  assert_int_equal(P("/f//a/./b", "//a/./b", out), 0);
  assert_string_equal(out, "a/b");
  assert_int_equal(P("/f/../etc/passwd", "/../etc/passwd", out), -EACCES);
  assert_int_equal(P("/f/%2e%2e/etc/passwd", "/x", out), -EACCES);
  assert_int_equal(P("/f/%2E./etc", "/x", out), -EACCES);
  assert_int_equal(P("/f/a%2fb", "/a/b", out), -EACCES);
  assert_int_equal(P("/f/a%5cb", "/a\\b", out), -EACCES);
  assert_int_equal(P("/f/%252e%252e/", "/%2e%2e/", out), -EACCES);
  assert_int_equal(P("/f/a\\..\\b", "/a\\..\\b", out), -EACCES);
  assert_int_equal(P("/f/%zz", "/x", out), -EINVAL);
  assert_int_equal(P("/f/%2", "/x", out), -EINVAL);
  assert_int_equal(P("/f/a%20b?x=%2e%2e", "/a b", out), 0);
  assert_string_equal(out, "a b");
  assert_int_equal(P("/f/x", "/a\x01", out), -EINVAL);
}

static void test_mime(void **state)
{
  char path[] = "/tmp/gh-mime-XXXXXX";
  int fd = mkstemp(path);
  (void)state;
  assert_true(fd >= 0);
  dprintf(fd, "# comment\ntext/x-test\ttst tst2\napplication/x-foo foo\n");
  close(fd);
  assert_int_equal(static_mime_load(path), 0);
  assert_string_equal(static_mime_lookup("a/b.tst2"), "text/x-test");
  assert_string_equal(static_mime_lookup("b.FOO"), "application/x-foo");
  assert_string_equal(static_mime_lookup("index.html"), "text/html");
  assert_string_equal(static_mime_lookup("noext"), "application/octet-stream");
  assert_string_equal(static_mime_lookup("dir.d/noext"), "application/octet-stream");
  static_mime_free();
  unlink(path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ranges),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_mime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_static_util.c: unit tests of the static module's range parser, path checks, MIME table, date and ETag. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
  /* a reload publishes a new table; the old one stays readable until free */
  fd = open(path, O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  dprintf(fd, "application/x-bar foo\nTEXT/Upper UP\n");
  close(fd);
  assert_int_equal(static_mime_load(path), 0);
  assert_string_equal(static_mime_lookup("b.foo"), "application/x-bar");
  assert_string_equal(static_mime_lookup("b.up"), "TEXT/Upper");
  assert_string_equal(static_mime_lookup("b.tst"), "application/octet-stream");
  assert_string_equal(static_mime_lookup("b.HTM"), "text/html");
  static_mime_free();
  assert_string_equal(static_mime_lookup("b.foo"), "application/octet-stream");
  unlink(path);
}

/* the hand-written IMF-fixdate against gmtime_r + strftime */
static void test_http_date(void **state)
{
  static const int64_t fixed[] = {0,          -1,         784111777,  951782400,
                                  951868799,  4107542400, 253402300799, -62135596800,
                                  1709164800, 1740787199, 86399,        -86400};
  char mine[STATIC_HTTP_DATE_SIZE], ref[64];
  uint64_t x = 88172645463325252ull;
  (void)state;
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 20000; i++) {
    int64_t t;
    time_t tt;
    struct tm tm;
    if (i < sizeof(fixed) / sizeof(fixed[0])) {
      t = fixed[i];
    } else {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      t = (int64_t)(x % 253402300800ull) - (i % 3 == 0 ? 62135596800 : 0);
    }
    tt = (time_t)t;
    gmtime_r(&tt, &tm);
    /* strftime's %Y has no leading zeros; IMF-fixdate wants 4 digits */
    strftime(ref, sizeof(ref), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_int_equal(static_http_date(t, mine), 29);
    if (tm.tm_year + 1900 >= 1000)
      assert_string_equal(mine, ref);
  }
  assert_int_equal(static_http_date(253402300800, mine), 0); /* year 10000 */
  assert_string_equal(mine, "");
  assert_int_equal(static_http_date(-62135596800, mine), 29);
  assert_string_equal(mine, "Mon, 01 Jan 0001 00:00:00 GMT");
}

static void test_etag(void **state)
{
  char out[STATIC_ETAG_SIZE], ref[80];
  (void)state;
  assert_int_equal(static_etag(0x1a2b, 4096, 0x65f0c3d1, out), 20);
  assert_string_equal(out, "\"1a2b-1000-65f0c3d1\"");
  static_etag(0, 0, 0, out);
  assert_string_equal(out, "\"0-0-0\"");
  static_etag(UINT64_MAX, UINT64_MAX, (uint64_t)-1, out);
  snprintf(ref, sizeof(ref), "\"%llx-%llx-%llx\"", (unsigned long long)UINT64_MAX,
           (unsigned long long)UINT64_MAX, (unsigned long long)-1);
  assert_string_equal(out, ref);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ranges),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_mime),
      cmocka_unit_test(test_http_date),
      cmocka_unit_test(test_etag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

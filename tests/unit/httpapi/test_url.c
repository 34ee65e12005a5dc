/* test_url.c: unit tests for request-target decoding and URL-group prefix matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include <gatehouse/error.h>

#include "httpapi/url.h"

static void split_ok(const char *t, const char *path, const char *query)
{
  gh__pool_t *pool = gh__pool_new(0);
  char *p = NULL, *q = NULL;
  int r = gh__url_split(t, strlen(t), pool, &p, &q);
  if (r != 0)
    fail_msg("%s: %d", t, r);
  assert_string_equal(p, path);
  if (query == NULL)
    assert_null(q);
  else
    assert_string_equal(q, query);
  gh__pool_free(pool);
}

static void split_bad(const char *t)
{
  gh__pool_t *pool = gh__pool_new(0);
  char *p = NULL, *q = NULL;
  assert_int_equal(gh__url_split(t, strlen(t), pool, &p, &q), GH_EPARSE);
  gh__pool_free(pool);
}

static void test_split(void **state)
{
  (void)state;
  split_ok("/", "/", NULL);
  split_ok("/a/b?x=1&y", "/a/b", "x=1&y");
  split_ok("/a%20b%2Fc", "/a b/c", NULL);
  split_ok("/a/./b/../c", "/a/c", NULL);
  split_ok("/a/b/..", "/a/", NULL);
  split_ok("/a/%2e%2e/b", "/b", NULL);
  split_ok("/a//b/", "/a//b/", NULL);
  split_ok("/.", "/", NULL);
  split_ok("/?", "/", "");
  split_ok("/p#frag", "/p", NULL);
  split_ok("http://host:80/x/y?q", "/x/y", "q");
  split_ok("http://host", "/", NULL);
  split_ok("*", "*", NULL);
  split_bad("/..");
  split_bad("/a/../..");
  split_bad("/%2e%2e/etc/passwd");
  split_bad("/a%00b");
  split_bad("/a%zz");
  split_bad("/a%2");
  split_bad("relative");
}

static void test_prefix(void **state)
{
  (void)state;
  char a[] = "/files//", b[] = "/", c[] = "nope", d[] = "";
  assert_int_equal(gh__url_prefix_normalize(a), 0);
  assert_string_equal(a, "/files");
  assert_int_equal(gh__url_prefix_normalize(b), 0);
  assert_string_equal(b, "/");
  assert_int_equal(gh__url_prefix_normalize(c), -EINVAL);
  assert_int_equal(gh__url_prefix_normalize(d), -EINVAL);

  assert_true(gh__url_prefix_match("/a", 2, "/a"));
  assert_true(gh__url_prefix_match("/a", 2, "/a/"));
  assert_true(gh__url_prefix_match("/a", 2, "/a/b"));
  assert_false(gh__url_prefix_match("/a", 2, "/ab"));
  assert_false(gh__url_prefix_match("/a", 2, "/"));
  assert_true(gh__url_prefix_match("/", 1, "/anything"));
  assert_false(gh__url_prefix_match("/", 1, "*"));
}

static void test_best_match(void **state)
{
  (void)state;
  const char *prefixes[] = {"/", "/files", "/files/private", "/f"};
  size_t lens[] = {1, 6, 14, 2};
  assert_int_equal(gh__url_best_match(prefixes, lens, 4, "/files/private/x"), 2);
  assert_int_equal(gh__url_best_match(prefixes, lens, 4, "/files/privatex"), 1);
  assert_int_equal(gh__url_best_match(prefixes, lens, 4, "/files"), 1);
  assert_int_equal(gh__url_best_match(prefixes, lens, 4, "/f/x"), 3);
  assert_int_equal(gh__url_best_match(prefixes, lens, 4, "/fil"), 0);
  assert_int_equal(gh__url_best_match(prefixes + 1, lens + 1, 3, "/other"), -1);
  assert_int_equal(gh__url_best_match(prefixes, lens, 0, "/"), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_split),
    cmocka_unit_test(test_prefix),
    cmocka_unit_test(test_best_match),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_auth_basic_cache.c: unit tests for the Basic success cache (salted hash, TTL, collisions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/auth/auth.h"

static void test_ttl(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(16, 30);
  (void)state;
  assert_non_null(c);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1000));
  gh__auth_basic_cache_insert(c, "alice", "pw", 1000);
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 1000));
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 1029));
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1030));
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 5000));
  gh__auth_basic_cache_free(c);
}

static void test_keys(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(1024, 30);
  (void)state;
  gh__auth_basic_cache_insert(c, "alice", "pw", 10);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pW", 10));
  assert_false(gh__auth_basic_cache_lookup(c, "alicep", "w", 10)); /* no user/password smearing */
  assert_false(gh__auth_basic_cache_lookup(c, "bob", "pw", 10));
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 10));
  gh__auth_basic_cache_free(c);
}

static void test_disabled_and_collisions(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(0, 0);
  char u[16];
  (void)state;
  gh__auth_basic_cache_insert(c, "alice", "pw", 10);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 10));
  gh__auth_basic_cache_free(c);
  /* one slot: a newer entry evicts, never confuses */
  c = gh__auth_basic_cache_new(1, 30);
  for (int i = 0; i < 10; i++) {
    snprintf(u, sizeof(u), "u%d", i);
    gh__auth_basic_cache_insert(c, u, "pw", 10);
  }
  assert_true(gh__auth_basic_cache_lookup(c, "u9", "pw", 10));
  assert_false(gh__auth_basic_cache_lookup(c, "u0", "pw", 10));
  gh__auth_basic_cache_free(c);
  gh__auth_basic_cache_free(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ttl),
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_disabled_and_collisions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

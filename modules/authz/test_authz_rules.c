/* test_authz_rules.c: unit tests of URL authorization rule evaluation (DESIGN item 24). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "authz_rules.h"

static bool roles(void *data, const char *g)
{
  (void)data;
  return strcmp(g, "staff") == 0;
}

static authz_verdict_t E1(const char *list, const char *user, const char *method)
{
  authz_subject_t s = {.anonymous = user == NULL, .name = user, .local = user,
                       .method = method, .in_role = roles};
  return authz_evaluate(&list, 1, &s);
}

static authz_verdict_t E2(const char *parent, const char *child, const char *user)
{
  const char *l[2] = {parent, child};
  authz_subject_t s = {.anonymous = user == NULL, .name = user, .local = user,
                       .method = "GET", .in_role = roles};
  return authz_evaluate(l, 2, &s);
}

static void test_basic_rules(void **state)
{
  (void)state;
  assert_int_equal(E1("valid-user", "alice", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("valid-user", NULL, "GET"), AUTHZ_DENY);
  assert_int_equal(E1("*", NULL, "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("?", NULL, "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("?", "alice", "GET"), AUTHZ_DENY);
  assert_int_equal(E1("user:alice", "alice", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("user:alice", "bob", "GET"), AUTHZ_DENY);
  assert_int_equal(E1("group:staff", "bob", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("group:other", "bob", "GET"), AUTHZ_DENY);
  assert_int_equal(E1("", "bob", "GET"), AUTHZ_DENY);
}

static void test_deny_before_allow(void **state)
{
  (void)state;
  /* allow listed first, deny still wins */
  assert_int_equal(E1("* deny:user:bob", "bob", "GET"), AUTHZ_DENY);
  assert_int_equal(E1("* deny:user:bob", "alice", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("* deny:?", NULL, "GET"), AUTHZ_DENY);
  assert_int_equal(E1("group:staff deny:group:staff", "alice", "GET"), AUTHZ_DENY);
}

static void test_verbs(void **state)
{
  (void)state;
  assert_int_equal(E1("*:GET,HEAD", NULL, "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("*:GET,HEAD", NULL, "POST"), AUTHZ_DENY);
  assert_int_equal(E1("valid-user deny:user:bob:POST", "bob", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("valid-user deny:user:bob:POST", "bob", "post"), AUTHZ_DENY);
}

static void test_parent_before_child(void **state)
{
  (void)state;
  /* a parent deny cannot be overridden by a child allow */
  assert_int_equal(E2("deny:user:bob *", "user:bob", "bob"), AUTHZ_DENY);
  /* a child deny applies on top of a parent allow */
  assert_int_equal(E2("*", "deny:?", NULL), AUTHZ_DENY);
  assert_int_equal(E2("*", "deny:?", "alice"), AUTHZ_ALLOW);
  /* allow rules: the parent's first match decides */
  assert_int_equal(E2("user:alice", "user:carol", "carol"), AUTHZ_ALLOW);
}

static void test_malformed_fails_closed(void **state)
{
  size_t bad = 0;
  (void)state;
  assert_int_equal(E1("* bogus", "alice", "GET"), AUTHZ_DENY);
  assert_int_equal(E1("user:", "alice", "GET"), AUTHZ_DENY);
  assert_int_equal(authz_check("valid-user deny:user:bob:POST group:x", &bad), 0);
  assert_int_equal(authz_check("valid-user what", &bad), -EINVAL);
  assert_int_equal(bad, 11);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_rules),
      cmocka_unit_test(test_deny_before_allow),
      cmocka_unit_test(test_verbs),
      cmocka_unit_test(test_parent_before_child),
      cmocka_unit_test(test_malformed_fails_closed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

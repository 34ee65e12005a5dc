/* test_authz_rules.c: unit tests of URL authorization rule evaluation (DESIGN items 24, 26). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "authz_rules.h"

static int role_calls;

/* staff: member; nss-down: NSS failed; garbage: an out-of-range answer;
 * any other group: not a member */
static authz_member_t roles(void *data, const char *g)
{
  (void)data;
  role_calls++;
  if (strcmp(g, "nss-down") == 0)
    return AUTHZ_UNKNOWN;
  if (strcmp(g, "garbage") == 0)
    return (authz_member_t)7;
  return strcmp(g, "staff") == 0 ? AUTHZ_YES : AUTHZ_NO;
}

static authz_verdict_t E1(const char *list, const char *user, const char *method)
{
  authz_subject_t s = {
      .anonymous = user == NULL, .name = user, .local = user, .method = method, .in_role = roles};
  return authz_evaluate(&list, 1, &s);
}

/* S-1-5-21-1-2-3-1106: member; S-1-5-21-1-2-3-9: cannot decide; others: no */
static authz_member_t sids(void *data, const char *sid)
{
  (void)data;
  if (strcmp(sid, "S-1-5-21-1-2-3-9") == 0)
    return AUTHZ_UNKNOWN;
  return strcmp(sid, "S-1-5-21-1-2-3-1106") == 0 ? AUTHZ_YES : AUTHZ_NO;
}

static authz_verdict_t ES(const char *list, const char *user, bool with_sids)
{
  authz_subject_t s = {.anonymous = user == NULL,
                       .name = user,
                       .local = user,
                       .method = "GET",
                       .in_role = roles,
                       .has_sid = with_sids ? sids : NULL};
  return authz_evaluate(&list, 1, &s);
}

static void test_sid_rules(void **state)
{
  size_t bad = 0;
  (void)state;
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-1106", "carla", true), AUTHZ_ALLOW);
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-1107", "carla", true), AUTHZ_DENY);
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-1106:POST", "carla", true), AUTHZ_DENY);
  assert_int_equal(ES("valid-user deny:sid:S-1-5-21-1-2-3-1106", "carla", true), AUTHZ_DENY);
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-9", "carla", true), AUTHZ_UNDECIDED);
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-9 sid:S-1-5-21-1-2-3-1106", "carla", true), AUTHZ_ALLOW);
  /* nobody to ask: undecided, never a yes */
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-1106", "carla", false), AUTHZ_UNDECIDED);
  assert_int_equal(ES("sid:S-1-5-21-1-2-3-1106", NULL, true), AUTHZ_DENY);
  assert_int_equal(authz_check("sid:S-1-5-21-1-2-3-1106 deny:sid:S-1-5-32-544:POST", &bad), 0);
  static const char *const malformed[] = {
      "sid:",          "sid:alice",
      "sid:S-1-",      "sid:S-1-5-",
      "sid:S-1--5",    "sid:s-1-5-21",
      "sid:S-1-5-21x", "sid:S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16"};
  for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
    assert_int_equal(authz_check(malformed[i], &bad), -EINVAL);
    assert_int_equal(ES(malformed[i], "carla", true), AUTHZ_DENY);
  }
}

static authz_verdict_t E2(const char *parent, const char *child, const char *user)
{
  const char *l[2] = {parent, child};
  authz_subject_t s = {
      .anonymous = user == NULL, .name = user, .local = user, .method = "GET", .in_role = roles};
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

static void test_undecided_deny_never_admits(void **state)
{
  (void)state;
  /* the finding: a deny rule whose membership NSS could not answer */
  assert_int_equal(E1("valid-user deny:group:nss-down", "alice", "GET"), AUTHZ_UNDECIDED);
  assert_int_equal(E1("* deny:group:nss-down", "alice", "GET"), AUTHZ_UNDECIDED);
  /* parent deny undecided, child allow: still undecided */
  assert_int_equal(E2("deny:group:nss-down", "user:alice", "alice"), AUTHZ_UNDECIDED);
  /* a deny that surely matches wins over an undecided one, in any order */
  assert_int_equal(E1("valid-user deny:group:nss-down deny:user:alice", "alice", "GET"),
                   AUTHZ_DENY);
  assert_int_equal(E1("valid-user deny:user:alice deny:group:nss-down", "alice", "GET"),
                   AUTHZ_DENY);
  /* nothing would admit alice anyway: a plain deny, not the server's fault */
  assert_int_equal(E1("user:bob deny:group:nss-down", "alice", "GET"), AUTHZ_DENY);
  /* an answer outside the three states counts as undecided */
  assert_int_equal(E1("valid-user deny:group:garbage", "alice", "GET"), AUTHZ_UNDECIDED);
  /* decided no: the deny rule does not apply */
  assert_int_equal(E1("valid-user deny:group:other", "alice", "GET"), AUTHZ_ALLOW);
  /* a deny rule for another verb is not consulted at all */
  assert_int_equal(E1("valid-user deny:group:nss-down:POST", "alice", "GET"), AUTHZ_ALLOW);
}

static void test_undecided_allow_never_admits(void **state)
{
  (void)state;
  assert_int_equal(E1("group:nss-down", "alice", "GET"), AUTHZ_UNDECIDED);
  assert_int_equal(E1("group:garbage", "alice", "GET"), AUTHZ_UNDECIDED);
  assert_int_equal(E1("group:nss-down group:other", "alice", "GET"), AUTHZ_UNDECIDED);
  /* another allow rule that surely matches admits: the undecided one cannot
   * change that */
  assert_int_equal(E1("group:nss-down user:alice", "alice", "GET"), AUTHZ_ALLOW);
  assert_int_equal(E1("group:nss-down group:staff", "alice", "GET"), AUTHZ_ALLOW);
}

static void test_anonymous_never_asks_membership(void **state)
{
  (void)state;
  role_calls = 0;
  assert_int_equal(E1("group:nss-down", NULL, "GET"), AUTHZ_DENY);
  assert_int_equal(E1("* deny:group:nss-down", NULL, "GET"), AUTHZ_ALLOW);
  assert_int_equal(role_calls, 0);
  /* and a subject without a membership callback decides nothing */
  {
    const char *l = "valid-user deny:group:staff";
    authz_subject_t s = {
        .anonymous = false, .name = "alice", .local = "alice", .method = "GET", .in_role = NULL};
    assert_int_equal(authz_evaluate(&l, 1, &s), AUTHZ_UNDECIDED);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_rules),
      cmocka_unit_test(test_sid_rules),
      cmocka_unit_test(test_deny_before_allow),
      cmocka_unit_test(test_verbs),
      cmocka_unit_test(test_parent_before_child),
      cmocka_unit_test(test_malformed_fails_closed),
      cmocka_unit_test(test_undecided_deny_never_admits),
      cmocka_unit_test(test_undecided_allow_never_admits),
      cmocka_unit_test(test_anonymous_never_asks_membership),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

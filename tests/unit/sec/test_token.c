/* test_token.c: unit tests for tokens: constructors, handles, borrowing, duplication, queries, NSS
 * cache. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec/sec_internal.h"
#include "sec_fixture.h"
#include "util/alloc.h"

static const gh_sec_config_t base_cfg = {
    .min_uid = 1000, .anonymous_user = NULL, .group_cache_ttl_s = 60, .max_groups = 0};

static time_t fake_now = 1700000000;
static time_t fake_clock(void)
{
  return fake_now;
}

static int reset(void **state)
{
  (void)state;
  gh__sec_set_clock(NULL);
  assert_int_equal(gh__sec_reconfigure(&base_cfg), 0);
  return 0;
}

static gh_token_t user_token(const char *user, gh_token_level_t level)
{
  gh_token_opts_t o = {.level = level, .source = GH_SOURCE_KERBEROS, .auth_name = NULL};
  gh_token_t t = GH_TOKEN_NULL;
  assert_int_equal(gh_token_from_user(user, &o, &t), 0);
  assert_true(t != GH_TOKEN_NULL);
  return t;
}

static void test_from_user_fields(void **state)
{
  (void)state;
  gh_token_opts_t o = {.level = GH_LEVEL_DELEGATE,
                       .source = GH_SOURCE_KERBEROS,
                       .auth_name = "alice@EXAMPLE.ORG",
                       .expiry = 0,
                       .delegated_cred = GSS_C_NO_CREDENTIAL};
  gh_token_t t;
  char name[64];
  uid_t uid;
  gid_t gid, groups[8];
  gh_token_level_t lvl;
  gh_token_type_t type;
  gh_token_source_t src;
  gss_cred_id_t cred;
  uint64_t id;

  assert_int_equal(gh_token_from_user("alice", &o, &t), 0);
  assert_int_equal(gh_token_get_user(t, name, sizeof(name)), 5);
  assert_string_equal(name, "alice");
  assert_int_equal(gh_token_get_auth_name(t, name, sizeof(name)), 17);
  assert_string_equal(name, "alice@EXAMPLE.ORG");
  assert_int_equal(gh_token_get_uid(t, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  assert_int_equal(gh_token_get_gid(t, &gid), 0);
  assert_int_equal(gid, G_ALICE);
  assert_int_equal(gh_token_get_groups(t, NULL, 0), 2);
  assert_int_equal(gh_token_get_groups(t, groups, 8), 2);
  assert_int_equal(groups[0], G_ALICE);
  assert_int_equal(groups[1], G_SHARED);
  assert_int_equal(gh_token_get_groups(t, groups, 1), -ERANGE);
  assert_int_equal(gh_token_get_level(t, &lvl), 0);
  assert_int_equal(lvl, GH_LEVEL_DELEGATE);
  assert_int_equal(gh_token_get_type(t, &type), 0);
  assert_int_equal(type, GH_TOKEN_IMPERSONATION);
  assert_int_equal(gh_token_get_source(t, &src), 0);
  assert_int_equal(src, GH_SOURCE_KERBEROS);
  assert_int_equal(gh_token_get_delegated_cred(t, &cred), 0);
  assert_true(cred == GSS_C_NO_CREDENTIAL);
  assert_int_equal(gh_token_get_id(t, &id), 0);
  assert_true(id > 0);
  assert_int_equal(gh_token_get_user(t, name, 5), -ERANGE);
  assert_int_equal(gh_token_close(t), 0);
}

/* Windows SIDs: copied into the token, kept by duplicates, dropped at
 * ANONYMOUS; given groups replace NSS's; malformed SIDs are refused. */
static void test_sids_and_given_groups(void **state)
{
  (void)state;
  static const char *const sids[] = {"S-1-5-21-1-2-3-1102", "S-1-5-21-1-2-3-513",
                                     "S-1-5-21-1-2-3-1106"};
  static const gid_t given[] = {31002, 31001, 31001};
  gh_token_opts_t o = {.level = GH_LEVEL_IMPERSONATE,
                       .source = GH_SOURCE_KERBEROS,
                       .sids = sids,
                       .nsids = 3,
                       .groups = given,
                       .ngroups = 3};
  gh_token_t t, d, a;
  gh_token_statistics_t st;
  char buf[256];
  gid_t groups[8];
  bool member;

  assert_int_equal(gh_token_from_user("alice", &o, &t), 0);
  assert_int_equal(gh_token_get_sids(t, buf, sizeof(buf)), 3);
  assert_string_equal(buf, "S-1-5-21-1-2-3-1102,S-1-5-21-1-2-3-513,S-1-5-21-1-2-3-1106");
  assert_int_equal(gh_token_get_sids(t, buf, 20), -ERANGE);
  assert_int_equal(gh_token_has_sid(t, "S-1-5-21-1-2-3-1106", &member), 0);
  assert_true(member);
  assert_int_equal(gh_token_has_sid(t, "S-1-5-21-1-2-3-110", &member), 0);
  assert_false(member);
  assert_int_equal(gh_token_get_statistics(t, &st), 0);
  assert_int_equal(st.sid_count, 3);
  /* NSS would give G_ALICE and G_SHARED: the given list wins, primary kept */
  assert_int_equal(gh_token_get_groups(t, groups, 8), 3);
  assert_int_equal(groups[0], G_ALICE);
  assert_int_equal(groups[1], 31001);
  assert_int_equal(groups[2], 31002);
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &d), 0);
  assert_int_equal(gh_token_get_sids(d, buf, sizeof(buf)), 3);
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_ANONYMOUS, GH_TOKEN_IMPERSONATION, &a), 0);
  assert_int_equal(gh_token_get_sids(a, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "");
  assert_int_equal(gh_token_has_sid(a, "S-1-5-21-1-2-3-1102", &member), 0);
  assert_false(member);
  assert_int_equal(gh_token_close(a), 0);
  assert_int_equal(gh_token_close(d), 0);
  assert_int_equal(gh_token_close(t), 0);
  /* without SIDs: none, and NSS groups */
  assert_int_equal(gh_token_from_user("alice", NULL, &t), 0);
  assert_int_equal(gh_token_get_sids(t, buf, sizeof(buf)), 0);
  assert_int_equal(gh_token_close(t), 0);
  static const char *const bad[] = {"S-1-5-21-1-2-3-1102", "S-1-5-21--1"};
  o.sids = bad;
  o.nsids = 2;
  assert_int_equal(gh_token_from_user("alice", &o, &t), -EINVAL);
  static const char *const bad2[] = {"S-1-5-21-1-2-3-1102", "s-1-5-21"};
  o.sids = bad2;
  assert_int_equal(gh_token_from_user("alice", &o, &t), -EINVAL);
  o.sids = NULL;
  assert_int_equal(gh_token_from_user("alice", &o, &t), -EINVAL);
}

static void test_default_opts_and_auth_name(void **state)
{
  (void)state;
  gh_token_t t;
  char name[64];
  gh_token_level_t lvl;
  gh_token_source_t src;

  assert_int_equal(gh_token_from_user("carol", NULL, &t), 0);
  assert_int_equal(gh_token_get_auth_name(t, name, sizeof(name)), 5);
  assert_string_equal(name, "carol");
  assert_int_equal(gh_token_get_level(t, &lvl), 0);
  assert_int_equal(lvl, GH_LEVEL_IMPERSONATE);
  assert_int_equal(gh_token_get_source(t, &src), 0);
  assert_int_equal(src, GH_SOURCE_LOCAL);
  /* carol: primary + shared + proj, sorted */
  gid_t g[4];
  assert_int_equal(gh_token_get_groups(t, g, 4), 3);
  assert_int_equal(g[0], G_CAROL);
  assert_int_equal(g[1], G_SHARED);
  assert_int_equal(g[2], G_PROJ);
  assert_int_equal(gh_token_close(t), 0);
}

static void test_refusals(void **state)
{
  (void)state;
  gh_token_t t = GH_TOKEN_NULL;
  gh_sec_config_t cfg = base_cfg;

  assert_int_equal(gh_token_from_user("root", NULL, &t), GH_EUID_REFUSED);
  assert_int_equal(gh_token_from_user("lowuid", NULL, &t), GH_EUID_REFUSED);
  assert_int_equal(gh_token_from_user("nosuchuser", NULL, &t), GH_ENO_SUCH_USER);
  assert_int_equal(gh_token_from_user(NULL, NULL, &t), -EINVAL);
  assert_true(t == GH_TOKEN_NULL); /* never written on failure */

  /* min_uid above alice, below bob */
  cfg.min_uid = U_BOB;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  assert_int_equal(gh_token_from_user("alice", NULL, &t), GH_EUID_REFUSED);
  assert_int_equal(gh_token_from_user("bob", NULL, &t), 0);
  assert_int_equal(gh_token_close(t), 0);
  /* min_uid 0: low uids pass, root never does */
  cfg.min_uid = 0;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  assert_int_equal(gh_token_from_user("lowuid", NULL, &t), 0);
  assert_int_equal(gh_token_close(t), 0);
  assert_int_equal(gh_token_from_user("root", NULL, &t), GH_EUID_REFUSED);

  /* the service account (pretend the service runs as bob) */
  uid_t saved = gh__sec.service_uid;
  gh__sec.service_uid = U_BOB;
  assert_int_equal(gh_token_from_user("bob", NULL, &t), GH_EUID_REFUSED);
  gh__sec.service_uid = saved;
}

static void test_max_groups(void **state)
{
  (void)state;
  gh_sec_config_t cfg = base_cfg;
  gh_token_t t;

  cfg.max_groups = 2;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  assert_int_equal(gh_token_from_user("alice", NULL, &t), 0); /* 2 groups */
  assert_int_equal(gh_token_close(t), 0);
  assert_int_equal(gh_token_from_user("carol", NULL, &t), GH_ELIMIT); /* 3 groups */
}

static void test_anonymous(void **state)
{
  (void)state;
  gh_token_t t;
  char name[64];
  uid_t uid;
  gid_t g[4];
  gh_token_level_t lvl;

  assert_int_equal(gh_token_anonymous(&t), 0);
  assert_int_equal(gh_token_get_user(t, name, sizeof(name)), 6);
  assert_string_equal(name, "nobody");
  assert_int_equal(gh_token_get_uid(t, &uid), 0);
  assert_int_equal(uid, U_NOBODY);
  assert_int_equal(gh_token_get_level(t, &lvl), 0);
  assert_int_equal(lvl, GH_LEVEL_ANONYMOUS);
  assert_int_equal(gh_token_get_groups(t, g, 4), 1);
  assert_int_equal(g[0], 65534);
  assert_int_equal(gh_token_close(t), 0);
}

static void test_double_close_and_use_after_close(void **state)
{
  (void)state;
  gh_token_t t = user_token("alice", GH_LEVEL_IMPERSONATE);
  uid_t uid;
  char buf[32];
  bool m;

  assert_int_equal(gh_token_close(t), 0);
  assert_int_equal(gh_token_close(t), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_uid(t, &uid), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_user(t, buf, sizeof(buf)), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_is_member(t, G_ALICE, &m), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_access_check(t, "/", R_OK), GH_EINVALID_HANDLE);
  assert_int_equal(gh_impersonate(t), GH_EINVALID_HANDLE);
  assert_false(gh_is_impersonating());
  assert_int_equal(gh_token_close(GH_TOKEN_NULL), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_uid(0xdeadbeef12345678ull, &uid), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_uid((uint64_t)1 << 32 | 0x7ffffff0u, &uid), GH_EINVALID_HANDLE);
}

static void test_stale_handles_after_reuse(void **state)
{
  (void)state;
  enum { N = 300 };
  gh_token_t old[N], fresh[N];
  uid_t uid;

  for (int i = 0; i < N; i++)
    old[i] = user_token(i % 2 ? "alice" : "bob", GH_LEVEL_IMPERSONATE);
  for (int i = 0; i < N; i++)
    assert_int_equal(gh_token_close(old[i]), 0);
  /* slots get reused with a new generation: old handles stay dead */
  for (int i = 0; i < N; i++)
    fresh[i] = user_token("carol", GH_LEVEL_IMPERSONATE);
  for (int i = 0; i < N; i++) {
    assert_int_equal(gh_token_get_uid(old[i], &uid), GH_EINVALID_HANDLE);
    assert_int_equal(gh_token_close(old[i]), GH_EINVALID_HANDLE);
    assert_int_equal(gh_token_get_uid(fresh[i], &uid), 0);
    assert_int_equal(uid, U_CAROL);
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(gh_token_close(fresh[i]), 0);
}

static void test_open_handle_refs(void **state)
{
  (void)state;
  gh_token_t a = user_token("alice", GH_LEVEL_IMPERSONATE), b;
  uint64_t ida, idb;
  gh_token_statistics_t st;
  uid_t uid;

  assert_int_equal(gh_token_open_handle(a, &b), 0);
  assert_true(a != b);
  assert_int_equal(gh_token_get_id(a, &ida), 0);
  assert_int_equal(gh_token_get_id(b, &idb), 0);
  assert_int_equal(ida, idb);
  assert_int_equal(gh_token_get_statistics(a, &st), 0);
  assert_int_equal(st.ref_count, 2);
  assert_int_equal(st.group_count, 2);
  assert_int_equal(st.token_id, ida);
  assert_int_equal(gh_token_close(a), 0);
  assert_int_equal(gh_token_get_uid(b, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  assert_int_equal(gh_token_get_statistics(b, &st), 0);
  assert_int_equal(st.ref_count, 1);
  assert_int_equal(gh_token_close(b), 0);
  assert_int_equal(gh_token_close(b), GH_EINVALID_HANDLE);
}

static void test_borrowed_close(void **state)
{
  (void)state;
  gh_token_t owner = user_token("alice", GH_LEVEL_IMPERSONATE), borrowed, again, own;
  uid_t uid;

  assert_int_equal(gh_token_borrow(owner, &borrowed), 0);
  assert_true(gh_token_is_borrowed(borrowed));
  assert_false(gh_token_is_borrowed(owner));
  assert_int_equal(gh_token_borrow(borrowed, &again), 0);
  assert_true(again == borrowed);
  assert_int_equal(gh_token_get_uid(borrowed, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  /* the borrower cannot close the owner's token */
  assert_int_equal(gh_token_close(borrowed), GH_EBORROWED);
  assert_int_equal(gh_token_close(borrowed), GH_EBORROWED);
  assert_int_equal(gh_token_get_uid(owner, &uid), 0);
  assert_int_equal(gh_token_get_uid(borrowed, &uid), 0);
  /* a borrower that needs it longer opens its own handle */
  assert_int_equal(gh_token_open_handle(borrowed, &own), 0);
  assert_false(gh_token_is_borrowed(own));
  /* the owner's close ends the borrow */
  assert_int_equal(gh_token_close(owner), 0);
  assert_int_equal(gh_token_get_uid(borrowed, &uid), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_close(borrowed), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_borrow(owner, &again), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_uid(own, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  assert_int_equal(gh_token_close(own), 0);
}

static void test_duplicate_levels(void **state)
{
  (void)state;
  gh_token_t imp = user_token("alice", GH_LEVEL_IMPERSONATE), d;
  gh_token_level_t lvl;
  gh_token_type_t type;
  uint64_t id1, id2;
  char name[32];
  uid_t uid;

  /* never raise */
  assert_int_equal(gh_token_duplicate(imp, GH_LEVEL_DELEGATE, GH_TOKEN_IMPERSONATION, &d),
                   GH_EBAD_IMPERSONATION_LEVEL);
  /* primary from IMPERSONATE: fine, new id, same identity */
  assert_int_equal(gh_token_duplicate(imp, GH_LEVEL_IMPERSONATE, GH_TOKEN_PRIMARY, &d), 0);
  assert_int_equal(gh_token_get_type(d, &type), 0);
  assert_int_equal(type, GH_TOKEN_PRIMARY);
  assert_int_equal(gh_token_get_id(imp, &id1), 0);
  assert_int_equal(gh_token_get_id(d, &id2), 0);
  assert_true(id1 != id2);
  assert_int_equal(gh_token_get_uid(d, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  assert_int_equal(gh_token_close(d), 0);
  /* lower to IDENTIFY, then: no primary, no raising back */
  gh_token_t idt;
  assert_int_equal(gh_token_duplicate(imp, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &idt), 0);
  assert_int_equal(gh_token_get_level(idt, &lvl), 0);
  assert_int_equal(lvl, GH_LEVEL_IDENTIFY);
  assert_int_equal(gh_token_duplicate(idt, GH_LEVEL_IDENTIFY, GH_TOKEN_PRIMARY, &d),
                   GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_duplicate(idt, GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &d),
                   GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_duplicate(idt, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &d), 0);
  assert_int_equal(gh_token_close(d), 0);
  /* IDENTIFY still answers queries as the client */
  assert_int_equal(gh_token_get_user(idt, name, sizeof(name)), 5);
  assert_string_equal(name, "alice");
  /* ANONYMOUS level carries no identity */
  assert_int_equal(gh_token_duplicate(idt, GH_LEVEL_ANONYMOUS, GH_TOKEN_IMPERSONATION, &d), 0);
  assert_int_equal(gh_token_get_uid(d, &uid), 0);
  assert_int_equal(uid, U_NOBODY);
  assert_int_equal(gh_token_duplicate(d, GH_LEVEL_ANONYMOUS, GH_TOKEN_PRIMARY, &d),
                   GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_close(d), 0);
  assert_int_equal(gh_token_close(idt), 0);
  /* bad arguments */
  assert_int_equal(gh_token_duplicate(imp, (gh_token_level_t)7, GH_TOKEN_PRIMARY, &d), -EINVAL);
  assert_int_equal(gh_token_duplicate(imp, GH_LEVEL_IDENTIFY, (gh_token_type_t)0, &d), -EINVAL);
  assert_int_equal(gh_token_close(imp), 0);
  assert_int_equal(gh_token_duplicate(imp, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &d),
                   GH_EINVALID_HANDLE);
}

static void test_membership(void **state)
{
  (void)state;
  gh_token_t t = user_token("alice", GH_LEVEL_IDENTIFY);
  bool m = true;

  assert_int_equal(gh_token_is_member(t, G_SHARED, &m), 0);
  assert_true(m);
  assert_int_equal(gh_token_is_member(t, G_ALICE, &m), 0);
  assert_true(m);
  assert_int_equal(gh_token_is_member(t, G_PROJ, &m), 0);
  assert_false(m);
  assert_int_equal(gh_token_is_member(t, 0, &m), 0);
  assert_false(m);
  gh_membership_t mm = GH_MEMBER_UNKNOWN;
  assert_int_equal(gh_token_is_member_name(t, "shared", &mm), 0);
  assert_int_equal(mm, GH_MEMBER_YES);
  assert_int_equal(gh_token_is_member_name(t, "alice", &mm), 0);
  assert_int_equal(mm, GH_MEMBER_YES); /* the primary group */
  assert_int_equal(gh_token_is_member_name(t, "proj", &mm), 0);
  assert_int_equal(mm, GH_MEMBER_NO);
  mm = GH_MEMBER_UNKNOWN;
  assert_int_equal(gh_token_is_member_name(t, "no-such-group", &mm), GH_MEMBER_NO_SUCH_GROUP);
  assert_int_equal(mm, GH_MEMBER_NO);
  assert_int_equal(gh_token_is_member_name(t, "", &mm), -EINVAL);
  assert_int_equal(mm, GH_MEMBER_UNKNOWN);
  assert_int_equal(gh_token_is_member_name(t, NULL, &mm), -EINVAL);
  assert_int_equal(gh_token_is_member_name(t, "shared", NULL), -EINVAL);
  assert_int_equal(gh_token_close(t), 0);
  /* a closed handle decides nothing */
  mm = GH_MEMBER_YES;
  assert_int_equal(gh_token_is_member_name(t, "shared", &mm), GH_EINVALID_HANDLE);
  assert_int_equal(mm, GH_MEMBER_UNKNOWN);
}

static void test_expiry(void **state)
{
  (void)state;
  gh_token_opts_t o = {.level = GH_LEVEL_IMPERSONATE, .source = GH_SOURCE_BASIC};
  gh_token_t t;
  time_t e;

  gh__sec_set_clock(fake_clock);
  o.expiry = fake_now + 10;
  assert_int_equal(gh_token_from_user("alice", &o, &t), 0);
  assert_int_equal(gh_token_get_expiry(t, &e), 0);
  assert_int_equal(e, fake_now + 10);
  fake_now += 10;
  assert_int_equal(gh_impersonate(t), GH_ETOKEN_EXPIRED);
  assert_false(gh_is_impersonating());
  assert_int_equal(gh_token_access_check(t, "/", R_OK), GH_ETOKEN_EXPIRED);
  assert_int_equal(gh_token_close(t), 0);
  gh__sec_set_clock(NULL);
}

static void test_group_cache_ttl(void **state)
{
  (void)state;
  gh_sec_config_t cfg = base_cfg;
  uint64_t h0, m0, h1, m1;
  gh_token_t t;
  bool m;

  cfg.group_cache_ttl_s = 30;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0); /* flushes */
  gh__sec_set_clock(fake_clock);
  gh__groupcache_stats(&h0, &m0);
  t = user_token("dave", GH_LEVEL_IMPERSONATE);
  assert_int_equal(gh_token_close(t), 0);
  t = user_token("dave", GH_LEVEL_IMPERSONATE);
  gh__groupcache_stats(&h1, &m1);
  assert_int_equal(m1 - m0, 1);
  assert_int_equal(h1 - h0, 1);
  assert_int_equal(gh_token_close(t), 0);

  /* dave joins a group: the cache keeps the old list until the TTL ends */
  fx_write_groups("late:x:30020:dave\n");
  fake_now += 29;
  t = user_token("dave", GH_LEVEL_IMPERSONATE);
  assert_int_equal(gh_token_is_member(t, 30020, &m), 0);
  assert_false(m);
  assert_int_equal(gh_token_close(t), 0);
  fake_now += 1;
  t = user_token("dave", GH_LEVEL_IMPERSONATE);
  assert_int_equal(gh_token_is_member(t, 30020, &m), 0);
  assert_true(m);
  assert_int_equal(gh_token_close(t), 0);
  fx_write_groups(NULL);

  /* TTL 0: every lookup asks NSS */
  cfg.group_cache_ttl_s = 0;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  gh__groupcache_stats(&h0, &m0);
  for (int i = 0; i < 3; i++) {
    t = user_token("dave", GH_LEVEL_IMPERSONATE);
    assert_int_equal(gh_token_is_member(t, 30020, &m), 0);
    assert_false(m);
    assert_int_equal(gh_token_close(t), 0);
  }
  gh__groupcache_stats(&h1, &m1);
  assert_int_equal(h1 - h0, 0);
  assert_int_equal(m1 - m0, 3);
}

static void test_peer_self_refused_or_ok(void **state)
{
  (void)state;
  int sv[2];
  gh_token_t t;

  /* a socketpair's peer is this process: the service account itself */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(gh_token_from_peer(sv[0], &t), GH_EUID_REFUSED);
  close(sv[0]);
  close(sv[1]);
  assert_int_equal(gh_token_from_peer(-1, &t), -EBADF);
}

/* Child: become carol (groups carol, shared, proj) and connect. */
static void connect_as_carol(const char *path)
{
  gid_t g[3] = {G_CAROL, G_SHARED, G_PROJ};
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  if (setgroups(3, g) != 0 || setresgid(G_CAROL, G_CAROL, G_CAROL) != 0 ||
      setresuid(U_CAROL, U_CAROL, U_CAROL) != 0)
    _exit(2);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    _exit(3);
  char c;
  if (read(fd, &c, 1) < 0)
    _exit(4);
  _exit(0);
}

static void test_peer_credentials(void **state)
{
  (void)state;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int lfd, cfd, status;
  gh_token_t t;
  char name[32];
  uid_t uid;
  gid_t g[4];
  gh_token_source_t src;
  pid_t pid;

  if (!fx_root())
    skip(); /* needs root to connect as another uid */
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/peer.sock", fx_dir());
  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  chmod(sa.sun_path, 0777);
  assert_int_equal(listen(lfd, 1), 0);
  pid = fork();
  if (pid == 0)
    connect_as_carol(sa.sun_path);
  cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(cfd >= 0);
  assert_int_equal(gh_token_from_peer(cfd, &t), 0);
  close(cfd);
  waitpid(pid, &status, 0);
  assert_true(fx_exited_ok(status));
  close(lfd);
  unlink(sa.sun_path);
  assert_int_equal(gh_token_get_uid(t, &uid), 0);
  assert_int_equal(uid, U_CAROL);
  assert_int_equal(gh_token_get_user(t, name, sizeof(name)), 5);
  assert_string_equal(name, "carol");
  assert_int_equal(gh_token_get_groups(t, g, 4), 3);
  assert_int_equal(g[0], G_CAROL);
  assert_int_equal(g[1], G_SHARED);
  assert_int_equal(g[2], G_PROJ);
  assert_int_equal(gh_token_get_source(t, &src), 0);
  assert_int_equal(src, GH_SOURCE_PEER);
  assert_int_equal(gh_token_close(t), 0);
}

/* Peer socket server side: a child connects as uid/gid with groups g[0..n). */
static gh_token_t peer_token_as(uid_t uid, gid_t gid, const gid_t *g, size_t n, int *ret_rc)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int lfd, cfd, status;
  gh_token_t t = GH_TOKEN_NULL;
  pid_t pid;

  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/peer2.sock", fx_dir());
  unlink(sa.sun_path);
  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  chmod(sa.sun_path, 0777);
  assert_int_equal(listen(lfd, 1), 0);
  pid = fork();
  if (pid == 0) {
    int fd;
    char c;
    if (setgroups(n, g) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
      _exit(2);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
      _exit(3);
    if (read(fd, &c, 1) < 0)
      _exit(4);
    _exit(0);
  }
  cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(cfd >= 0);
  *ret_rc = gh_token_from_peer(cfd, &t);
  close(cfd);
  waitpid(pid, &status, 0);
  assert_true(fx_exited_ok(status));
  close(lfd);
  unlink(sa.sun_path);
  return t;
}

static void test_peer_groups_kernel_or_nss(void **state)
{
  (void)state;
  gh_sec_config_t cfg = base_cfg;
  /* carol as the kernel sees her: shared kept, proj dropped, 30099 added
   * (a group NSS does not give her); NSS says carol, shared, proj */
  const gid_t kernel[] = {G_SHARED, 30099};
  gid_t g[8];
  gid_t gid;
  char name[32];
  gh_token_t t;
  int rc;

  if (!fx_root())
    skip(); /* needs root to connect as another uid */
  /* default: the kernel's */
  t = peer_token_as(U_CAROL, G_CAROL, kernel, 2, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(gh_token_get_groups(t, g, 8), 3);
  assert_int_equal(g[0], G_CAROL);
  assert_int_equal(g[1], G_SHARED);
  assert_int_equal(g[2], 30099);
  assert_int_equal(gh_token_close(t), 0);

  /* peer_groups = nss: the account's, whatever the process holds; the
   * primary gid is NSS's too */
  cfg.peer_groups = GH_PEER_GROUPS_NSS;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  t = peer_token_as(U_CAROL, G_SHARED, kernel, 2, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(gh_token_get_gid(t, &gid), 0);
  assert_int_equal(gid, G_CAROL);
  assert_int_equal(gh_token_get_groups(t, g, 8), 3);
  assert_int_equal(g[0], G_CAROL);
  assert_int_equal(g[1], G_SHARED);
  assert_int_equal(g[2], G_PROJ);
  assert_int_equal(gh_token_get_user(t, name, sizeof(name)), 5);
  assert_string_equal(name, "carol");
  assert_int_equal(gh_token_close(t), 0);
  /* a uid NSS does not know has no NSS groups: refused, not guessed */
  t = peer_token_as(20050, 30050, NULL, 0, &rc);
  assert_int_equal(rc, GH_ENO_SUCH_USER);
  assert_int_equal(t, GH_TOKEN_NULL);

  /* kernel mode keeps the decimal name for it */
  cfg.peer_groups = GH_PEER_GROUPS_KERNEL;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  t = peer_token_as(20050, 30050, NULL, 0, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(gh_token_get_user(t, name, sizeof(name)), 5);
  assert_string_equal(name, "20050");
  assert_int_equal(gh_token_close(t), 0);

  /* an unknown mode is a configuration error */
  cfg.peer_groups = (gh_peer_groups_t)7;
  assert_int_equal(gh__sec_reconfigure(&cfg), GH_ECONFIG);
  assert_int_equal(gh__sec_reconfigure(&base_cfg), 0);
}

static void *handle_churn(void *arg)
{
  gh_token_t shared = *(gh_token_t *)arg;
  for (int i = 0; i < 2000; i++) {
    gh_token_t h, b;
    uid_t uid;
    if (gh_token_open_handle(shared, &h) != 0)
      return (void *)1;
    if (gh_token_borrow(h, &b) != 0 || gh_token_get_uid(b, &uid) != 0 || uid != U_BOB)
      return (void *)2;
    if (gh_token_close(h) != 0 || gh_token_close(h) != GH_EINVALID_HANDLE)
      return (void *)3;
    if (gh_token_get_uid(b, &uid) != GH_EINVALID_HANDLE)
      return (void *)4;
  }
  return NULL;
}

static void test_handles_concurrent(void **state)
{
  (void)state;
  gh_token_t t = user_token("bob", GH_LEVEL_IMPERSONATE);
  pthread_t th[4];
  size_t before = gh__token_handles_open();
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, handle_churn, &t), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  assert_int_equal(gh__token_handles_open(), before);
  assert_int_equal(gh_token_close(t), 0);
}

static void test_alloc_failures(void **state)
{
  (void)state;
#ifdef GH_FAULT_INJECTION
  size_t before = gh__token_handles_open();
  int ok = 0;
  for (long n = 0; n < 40; n++) {
    gh_token_t t, d;
    gh__groupcache_flush();
    gh__alloc_fail_after(n);
    int rc = gh_token_from_user("carol", NULL, &t);
    if (rc == 0) {
      rc = gh_token_duplicate(t, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &d);
      if (rc == 0)
        gh_token_close(d);
      gh_token_close(t);
      ok++;
    } else {
      assert_int_equal(rc, -ENOMEM);
    }
    gh__alloc_fail_after(-1);
  }
  assert_true(ok > 0);
  assert_int_equal(gh__token_handles_open(), before);
#else
  skip();
#endif
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  if (gh_sec_init(&base_cfg) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  assert_int_equal(gh_sec_init(&base_cfg), GH_ESTATE);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_from_user_fields, reset),
      cmocka_unit_test_setup(test_default_opts_and_auth_name, reset),
      cmocka_unit_test_setup(test_refusals, reset),
      cmocka_unit_test_setup(test_max_groups, reset),
      cmocka_unit_test_setup(test_anonymous, reset),
      cmocka_unit_test_setup(test_double_close_and_use_after_close, reset),
      cmocka_unit_test_setup(test_stale_handles_after_reuse, reset),
      cmocka_unit_test_setup(test_open_handle_refs, reset),
      cmocka_unit_test_setup(test_borrowed_close, reset),
      cmocka_unit_test_setup(test_duplicate_levels, reset),
      cmocka_unit_test_setup(test_membership, reset),
      cmocka_unit_test_setup(test_expiry, reset),
      cmocka_unit_test_setup(test_group_cache_ttl, reset),
      cmocka_unit_test_setup(test_peer_self_refused_or_ok, reset),
      cmocka_unit_test_setup(test_peer_credentials, reset),
      cmocka_unit_test_setup(test_peer_groups_kernel_or_nss, reset),
      cmocka_unit_test_setup(test_handles_concurrent, reset),
      cmocka_unit_test_setup(test_alloc_failures, reset),
      cmocka_unit_test_setup(test_sids_and_given_groups, reset),
  };
  return cmocka_run_group_tests_name("sec_token", tests, NULL, NULL);
}

/* test_nss.c: unit tests of the NSS helper, the group-name cache, tri-state membership. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec/sec_internal.h"
#include "sec_fixture.h"

static const gh_sec_config_t base_cfg = {
    .min_uid = 1000, .anonymous_user = NULL, .group_cache_ttl_s = 60, .max_groups = 0};

static time_t fake_now = 1700000000;
static time_t fake_clock(void)
{
  return fake_now;
}

/* Groups of 10, 2,000 and 20,000 members, carol the last member of each
 * (a 4 KiB buffer holds about 300 short names). */
static const struct {
  const char *name;
  gid_t gid;
  int members;
} big[] = {{"g10", 30110, 10}, {"g2k", 30120, 2000}, {"g20k", 30130, 20000}};

static char *big_lines(void)
{
  size_t cap = 0, off = 0;
  char *s;
  for (size_t i = 0; i < 3; i++)
    cap += 64 + (size_t)big[i].members * 8;
  s = malloc(cap);
  assert_non_null(s);
  for (size_t i = 0; i < 3; i++) {
    off += (size_t)snprintf(s + off, cap - off, "%s:x:%u:", big[i].name, (unsigned)big[i].gid);
    for (int m = 0; m < big[i].members - 1; m++)
      off += (size_t)snprintf(s + off, cap - off, "m%05d,", m);
    off += (size_t)snprintf(s + off, cap - off, "carol\n");
  }
  return s;
}

static int setup(void **state)
{
  char *lines = big_lines();
  (void)state;
  fx_write_groups(lines);
  free(lines);
  gh__sec_set_clock(NULL);
  gh__nss_set_buf_max(0);
  assert_int_equal(gh__sec_reconfigure(&base_cfg), 0); /* flushes the caches */
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  gh__sec_set_clock(NULL);
  gh__nss_set_buf_max(0);
  fx_write_groups(NULL);
  return 0;
}

static gh_token_t user_token(const char *user)
{
  gh_token_t t = GH_TOKEN_NULL;
  assert_int_equal(gh_token_from_user(user, NULL, &t), 0);
  return t;
}

/* Replace the group file by one nobody may read (a rename: nss_wrapper
 * keeps its file open and reopens it only when the old one is unlinked). */
static void group_file_unreadable(void)
{
  char path[512], tmp[520];
  FILE *f;
  snprintf(path, sizeof(path), "%s/group", fx_dir());
  snprintf(tmp, sizeof(tmp), "%s.locked", path);
  f = fopen(tmp, "w");
  assert_non_null(f);
  fputs("shared:x:30010:alice,carol\n", f);
  fclose(f);
  assert_int_equal(chmod(tmp, 0), 0);
  assert_int_equal(rename(tmp, path), 0);
}

/* In a forked child: lose the capabilities that read any file, so a mode
 * 0 file is unreadable even to root (as for the daemon's workers). */
static void drop_dac(void)
{
  uint64_t eff = 0, prm = 0, inh = 0;
  uint64_t dac = (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_DAC_READ_SEARCH);
  if (gh__caps_get(&eff, &prm, &inh) != 0 || gh__caps_set(eff & ~dac, prm, inh) != 0)
    _exit(90);
}

static void test_lookup_passwd(void **state)
{
  struct passwd pw;
  char *buf = NULL;
  (void)state;
  assert_int_equal(gh__nss_lookup(GH__NSS_PWNAM, "alice", 0, &pw, &buf), 0);
  assert_int_equal(pw.pw_uid, U_ALICE);
  assert_string_equal(pw.pw_name, "alice");
  free(buf);
  buf = NULL;
  assert_int_equal(gh__nss_lookup(GH__NSS_PWUID, NULL, U_BOB, &pw, &buf), 0);
  assert_string_equal(pw.pw_name, "bob");
  free(buf);
  buf = NULL;
  assert_int_equal(gh__nss_lookup(GH__NSS_PWNAM, "nosuchuser", 0, &pw, &buf), GH_ENO_SUCH_USER);
  assert_null(buf);
  assert_int_equal(gh__nss_lookup(GH__NSS_PWUID, NULL, 29999, &pw, &buf), GH_ENO_SUCH_USER);
  assert_int_equal(gh__nss_lookup(GH__NSS_PWNAM, NULL, 0, &pw, &buf), -EINVAL);
  assert_int_equal(gh__nss_lookup(GH__NSS_PWNAM, "alice", 0, &pw, NULL), -EINVAL);
}

static void test_lookup_group_of_any_size(void **state)
{
  struct group gr;
  char *buf = NULL;
  (void)state;
  for (size_t i = 0; i < 3; i++) {
    int n = 0;
    assert_int_equal(gh__nss_lookup(GH__NSS_GRNAM, big[i].name, 0, &gr, &buf), 0);
    assert_int_equal(gr.gr_gid, big[i].gid);
    while (gr.gr_mem[n] != NULL)
      n++;
    assert_int_equal(n, big[i].members);
    assert_string_equal(gr.gr_mem[n - 1], "carol");
    free(buf);
    buf = NULL;
  }
  assert_int_equal(gh__nss_lookup(GH__NSS_GRNAM, "no-such-group", 0, &gr, &buf), GH_ENOT_FOUND);
  assert_null(buf);
}

static void test_lookup_cap_is_a_limit_not_a_no(void **state)
{
  struct group gr;
  char *buf = NULL;
  (void)state;
  gh__nss_set_buf_max(16384);
  assert_int_equal(gh__nss_lookup(GH__NSS_GRNAM, "g10", 0, &gr, &buf), 0);
  free(buf);
  buf = NULL;
  assert_int_equal(gh__nss_lookup(GH__NSS_GRNAM, "g2k", 0, &gr, &buf), GH_ELIMIT);
  assert_null(buf);
}

static void child_lookup_nss_down(void *arg)
{
  struct group gr;
  struct passwd pw;
  char *buf = NULL;
  int rc;
  (void)arg;
  drop_dac();
  group_file_unreadable();
  rc = gh__nss_lookup(GH__NSS_GRNAM, "shared", 0, &gr, &buf);
  if (rc != -EACCES)
    _exit(10);
  /* the passwd database is still fine */
  if (gh__nss_lookup(GH__NSS_PWNAM, "alice", 0, &pw, &buf) != 0)
    _exit(11);
  free(buf);
  _exit(0);
}

static void test_lookup_nss_error_is_not_not_found(void **state)
{
  (void)state;
  assert_true(fx_exited_ok(fx_fork(child_lookup_nss_down, NULL)));
}

static void test_member_name_large_groups(void **state)
{
  gh_token_t carol = user_token("carol"), alice = user_token("alice");
  gh_membership_t m;
  (void)state;
  for (size_t i = 0; i < 3; i++) {
    m = GH_MEMBER_UNKNOWN;
    assert_int_equal(gh_token_is_member_name(carol, big[i].name, &m), 0);
    assert_int_equal(m, GH_MEMBER_YES);
    m = GH_MEMBER_UNKNOWN;
    assert_int_equal(gh_token_is_member_name(alice, big[i].name, &m), 0);
    assert_int_equal(m, GH_MEMBER_NO);
  }
  /* past the cap: could not decide, never "no" */
  gh__groupcache_flush();
  gh__nss_set_buf_max(16384);
  m = GH_MEMBER_NO;
  assert_int_equal(gh_token_is_member_name(carol, "g20k", &m), GH_ELIMIT);
  assert_int_equal(m, GH_MEMBER_UNKNOWN);
  assert_int_equal(gh_token_close(carol), 0);
  assert_int_equal(gh_token_close(alice), 0);
}

static void child_member_nss_down(void *arg)
{
  gh_token_t carol = *(gh_token_t *)arg;
  gh_membership_t m = GH_MEMBER_NO;
  uint64_t h0, m0, h1, m1;
  drop_dac();
  group_file_unreadable();
  gh__groupcache_gid_stats(&h0, &m0);
  if (gh_token_is_member_name(carol, "g2k", &m) != -EACCES || m != GH_MEMBER_UNKNOWN)
    _exit(10);
  /* an error is not an answer: the next call asks NSS again */
  m = GH_MEMBER_YES;
  if (gh_token_is_member_name(carol, "g2k", &m) != -EACCES || m != GH_MEMBER_UNKNOWN)
    _exit(11);
  gh__groupcache_gid_stats(&h1, &m1);
  if (h1 != h0 || m1 - m0 != 2)
    _exit(12);
  /* an unknown group while NSS is down is not "no such group" either */
  if (gh_token_is_member_name(carol, "no-such-group", &m) != -EACCES || m != GH_MEMBER_UNKNOWN)
    _exit(13);
  /* NSS back: answers again */
  fx_write_groups(NULL);
  if (gh_token_is_member_name(carol, "shared", &m) != 0 || m != GH_MEMBER_YES)
    _exit(14);
  _exit(0);
}

/* fn(&token of user) in a forked child, which must exit 0. */
static void in_child_with_token(const char *user, void (*fn)(void *))
{
  gh_token_t t = user_token(user);
  assert_true(fx_exited_ok(fx_fork(fn, &t)));
  assert_int_equal(gh_token_close(t), 0);
}

static void test_member_name_nss_down(void **state)
{
  (void)state;
  in_child_with_token("carol", child_member_nss_down);
}

/* gh_token_get_group_names: carol's groups by name, in gid order, kept by
 * the token (the second answer is the same text); a short buffer. */
static void test_group_names(void **state)
{
  gh_token_t carol = user_token("carol");
  gh__token_t *t = NULL;
  const char *a = NULL, *b = NULL;
  char buf[256];
  (void)state;
  int n = gh_token_get_group_names(carol, buf, sizeof(buf));
  assert_string_equal(buf, "carol,shared,proj,g10,g2k,g20k");
  assert_int_equal(n, (int)strlen(buf));
  assert_int_equal(gh__token_get(carol, &t), 0);
  assert_int_equal(gh__token_group_names(t, &a), 0);
  assert_int_equal(gh__token_group_names(t, &b), 0);
  assert_ptr_equal(a, b);
  gh__token_unref(t);
  assert_int_equal(gh_token_get_group_names(carol, buf, (size_t)n), -ERANGE);
  assert_int_equal(gh_token_get_group_names(carol, NULL, 8), -EINVAL);
  assert_int_equal(gh_token_close(carol), 0);
  assert_int_equal(gh_token_get_group_names(carol, buf, sizeof(buf)), GH_EINVALID_HANDLE);
}

/* Bytes a ','-joined header value cannot carry as themselves (a ',', a
 * control byte, non-ASCII UTF-8, the '%' of the escape) are percent-encoded;
 * a space is kept; a name over 255 bytes, and a gid whose entry is gone,
 * are written as numbers. */
static void test_group_names_odd(void **state)
{
  char *lines = big_lines(), longname[300], buf[512], odd[1024];
  size_t cap = strlen(lines) + 2048;
  char *extra = malloc(cap);
  gh_token_t alice;
  (void)state;
  assert_non_null(extra);
  memset(longname, 'L', 256);
  longname[256] = '\0';
  snprintf(odd, sizeof(odd),
           "we,ird:x:30015:alice\nops team:x:30016:alice\n%s:x:30018:alice\n"
           "tab\tname:x:30019:alice\n\xc3\xa9quipe:x:30020:alice\n100%%:x:30021:alice\n",
           longname);
  snprintf(extra, cap, "%s%stmp:x:30017:alice\n", lines, odd);
  fx_write_groups(extra);
  assert_int_equal(gh__sec_reconfigure(&base_cfg), 0);
  alice = user_token("alice");
  /* tmp disappears before the names are asked for */
  snprintf(extra, cap, "%s%s", lines, odd);
  fx_write_groups(extra);
  free(lines);
  free(extra);
  assert_true(gh_token_get_group_names(alice, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "alice,shared,we%2Cird,ops team,30017,30018,tab%09name,%C3%A9quipe,"
                           "100%25");
  assert_int_equal(gh_token_close(alice), 0);
}

/* A group entry past the lookup's cap is "could not decide": no list (not
 * a shorter one), and the failure is not kept: the next call asks again. */
static void test_group_names_cap(void **state)
{
  gh_token_t carol = user_token("carol");
  char buf[256];
  (void)state;
  gh__nss_set_buf_max(16384);
  assert_int_equal(gh_token_get_group_names(carol, buf, sizeof(buf)), GH_ELIMIT);
  gh__nss_set_buf_max(0);
  assert_true(gh_token_get_group_names(carol, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "carol,shared,proj,g10,g2k,g20k");
  assert_int_equal(gh_token_close(carol), 0);
}

static void child_group_names_nss_down(void *arg)
{
  gh_token_t bob = *(gh_token_t *)arg;
  char buf[256];
  drop_dac();
  group_file_unreadable();
  if (gh_token_get_group_names(bob, buf, sizeof(buf)) != -EACCES)
    _exit(10);
  fx_write_groups(NULL);
  if (gh_token_get_group_names(bob, buf, sizeof(buf)) <= 0 || strcmp(buf, "bob,proj") != 0)
    _exit(11);
  _exit(0);
}

/* The group database unreadable: an error, never a list without names. */
static void test_group_names_nss_down(void **state)
{
  (void)state;
  in_child_with_token("bob", child_group_names_nss_down);
}

static void test_gid_cache(void **state)
{
  gh_sec_config_t cfg = base_cfg;
  gh_token_t dave = user_token("dave");
  gh_membership_t m;
  uint64_t h0, m0, h1, m1;
  (void)state;
  cfg.group_cache_ttl_s = 30;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  gh__sec_set_clock(fake_clock);
  gh__groupcache_gid_stats(&h0, &m0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(gh_token_is_member_name(dave, "g20k", &m), 0);
    assert_int_equal(m, GH_MEMBER_NO);
    assert_int_equal(gh_token_is_member_name(dave, "later", &m), GH_MEMBER_NO_SUCH_GROUP);
    assert_int_equal(m, GH_MEMBER_NO);
  }
  gh__groupcache_gid_stats(&h1, &m1);
  assert_int_equal(m1 - m0, 2); /* one NSS call per name, "no such group" included */
  assert_int_equal(h1 - h0, 4);

  /* the group appears: still unknown until the TTL ends, then resolved
   * (dave's token does not carry its gid: a member of it only in NSS) */
  fx_write_groups("later:x:30140:dave\n");
  fake_now += 29;
  assert_int_equal(gh_token_is_member_name(dave, "later", &m), GH_MEMBER_NO_SUCH_GROUP);
  fake_now += 1;
  assert_int_equal(gh_token_is_member_name(dave, "later", &m), 0);
  assert_int_equal(m, GH_MEMBER_NO);
  /* a token made now carries it */
  {
    gh_token_t d2 = user_token("dave");
    assert_int_equal(gh_token_is_member_name(d2, "later", &m), 0);
    assert_int_equal(m, GH_MEMBER_YES);
    assert_int_equal(gh_token_close(d2), 0);
  }

  /* TTL 0: every question goes to NSS */
  cfg.group_cache_ttl_s = 0;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  gh__groupcache_gid_stats(&h0, &m0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(gh_token_is_member_name(dave, "shared", &m), 0);
  gh__groupcache_gid_stats(&h1, &m1);
  assert_int_equal(h1 - h0, 0);
  assert_int_equal(m1 - m0, 3);
  assert_int_equal(gh_token_close(dave), 0);
}

/* Token creation's account lookup: a found account is served from the cache
 * for group_cache_ttl; "no such user" is never cached (an account added
 * later is found at once); TTL 0 asks NSS each time. */
static void test_account_cache(void **state)
{
  gh_sec_config_t cfg = base_cfg;
  gh__account_t a;
  uint64_t h0, m0, h1, m1;
  gh_token_t t = GH_TOKEN_NULL;
  (void)state;
  cfg.group_cache_ttl_s = 30;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  gh__sec_set_clock(fake_clock);
  gh__groupcache_account_stats(&h0, &m0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(gh__groupcache_account("alice", &a), 0);
    assert_int_equal(a.uid, U_ALICE);
    assert_string_equal(a.name, "alice");
    assert_int_equal(gh__groupcache_account("nosuchuser", &a), GH_ENO_SUCH_USER);
  }
  gh__groupcache_account_stats(&h1, &m1);
  assert_int_equal(h1 - h0, 2); /* alice twice from the cache */
  assert_int_equal(m1 - m0, 1); /* alice once from NSS; nosuchuser never cached */
  /* tokens use it: bob's first token asks NSS, later ones within the TTL do not */
  gh__groupcache_account_stats(&h0, &m0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(gh_token_from_user("bob", NULL, &t), 0);
    assert_int_equal(gh_token_close(t), 0);
  }
  gh__groupcache_account_stats(&h1, &m1);
  assert_int_equal(m1 - m0, 1);
  assert_int_equal(h1 - h0, 2);
  /* after the TTL NSS is asked again */
  fake_now += 30;
  assert_int_equal(gh__groupcache_account("alice", &a), 0);
  gh__groupcache_account_stats(&h0, &m0);
  assert_int_equal(m0 - m1, 1);
  /* TTL 0: every lookup goes to NSS */
  cfg.group_cache_ttl_s = 0;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  gh__groupcache_account_stats(&h0, &m0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(gh__groupcache_account("alice", &a), 0);
  gh__groupcache_account_stats(&h1, &m1);
  assert_int_equal(h1 - h0, 0);
  assert_int_equal(m1 - m0, 3);
}

/* A group file only the service (root) may read (alice could not), then
 * the thread impersonates alice (whose token is returned). */
static gh_token_t alice_with_private_groups(void)
{
  gh_token_t alice = user_token("alice");
  char path[512];
  fx_write_groups(NULL);
  snprintf(path, sizeof(path), "%s/group", fx_dir());
  assert_int_equal(chmod(path, 0600), 0);
  gh__groupcache_flush();
  assert_int_equal(gh_impersonate(alice), 0);
  assert_int_equal(geteuid(), U_ALICE);
  return alice;
}

static void test_member_name_while_impersonating(void **state)
{
  gh_token_t alice;
  gh_membership_t m = GH_MEMBER_UNKNOWN;
  (void)state;
  if (!fx_root())
    skip(); /* impersonation needs CAP_SETUID/CAP_SETGID */
  alice = alice_with_private_groups();
  assert_int_equal(gh_token_is_member_name(alice, "shared", &m), 0);
  assert_int_equal(m, GH_MEMBER_YES);
  /* and the thread is alice again afterwards */
  assert_int_equal(geteuid(), U_ALICE);
  assert_true(gh_is_impersonating());
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(gh_token_close(alice), 0);
}

/* Group names asked for by a thread impersonating alice are resolved at
 * base (a group file alice may not read), and the thread is alice again. */
static void test_group_names_while_impersonating(void **state)
{
  gh_token_t alice;
  char buf[128];
  (void)state;
  if (!fx_root())
    skip(); /* impersonation needs CAP_SETUID/CAP_SETGID */
  alice = alice_with_private_groups();
  assert_true(gh_token_get_group_names(alice, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "alice,shared");
  assert_int_equal(geteuid(), U_ALICE);
  assert_true(gh_is_impersonating());
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(gh_token_close(alice), 0);
}

/* Worker: carol's answers for four names, again and again. */
static void *member_churn(void *arg)
{
  gh_token_t carol = *(gh_token_t *)arg;
  static const struct {
    const char *name;
    int rc;
    gh_membership_t m;
  } want[] = {{"g10", 0, GH_MEMBER_YES},
              {"g2k", 0, GH_MEMBER_YES},
              {"proj", 0, GH_MEMBER_YES},
              {"bob", 0, GH_MEMBER_NO},
              {"no-such-group", GH_MEMBER_NO_SUCH_GROUP, GH_MEMBER_NO}};
  for (int i = 0; i < 1500; i++) {
    size_t k = (size_t)i % 5;
    gh_membership_t m = GH_MEMBER_UNKNOWN;
    if (gh_token_is_member_name(carol, want[k].name, &m) != want[k].rc || m != want[k].m)
      return (void *)(uintptr_t)(k + 1);
  }
  return NULL;
}

static void test_member_name_concurrent(void **state)
{
  gh_sec_config_t cfg = base_cfg;
  gh_token_t carol = user_token("carol");
  pthread_t th[4];
  (void)state;
  /* no cache: every call is an NSS call, four threads at once */
  cfg.group_cache_ttl_s = 0;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, member_churn, &carol), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  /* cached, one second TTL: hits and misses interleave */
  cfg.group_cache_ttl_s = 1;
  assert_int_equal(gh__sec_reconfigure(&cfg), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, member_churn, &carol), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  assert_int_equal(gh_token_close(carol), 0);
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  if (gh_sec_init(&base_cfg) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lookup_passwd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup_group_of_any_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup_cap_is_a_limit_not_a_no, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup_nss_error_is_not_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_member_name_large_groups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_member_name_nss_down, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_names_odd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_names_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_names_nss_down, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gid_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_account_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_member_name_while_impersonating, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_names_while_impersonating, setup, teardown),
      cmocka_unit_test_setup_teardown(test_member_name_concurrent, setup, teardown),
  };
  return cmocka_run_group_tests_name("sec_nss", tests, NULL, NULL);
}

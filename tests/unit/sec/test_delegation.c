/* test_delegation.c: delegated GSS credentials on tokens, client-owned ccache store, cloaking modes. */
#include <errno.h>
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
#include <gssapi/gssapi_ext.h>
#include <krb5.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec_fixture.h"

#define NEED_ROOT()                                                       \
  do {                                                                    \
    if (!fx_root()) {                                                     \
      printf("# skip: %s needs root (impersonation)\n", __func__);       \
      skip();                                                             \
    }                                                                     \
  } while (0)

/* A GSS initiator credential backed by a MEMORY ccache holding a made-up
 * TGT for `princ`: enough for the mechglue to hand it around and store it. */
static gss_cred_id_t fake_cred(const char *princ)
{
  static int seq;
  krb5_context ctx;
  krb5_ccache cc;
  krb5_principal client, server;
  krb5_creds cr;
  char name[64];
  static unsigned char key[32];
  gss_key_value_element_desc el = {.key = "ccache", .value = name};
  gss_key_value_set_desc store = {.count = 1, .elements = &el};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 major, minor;
  time_t now = time(NULL);

  snprintf(name, sizeof(name), "MEMORY:gh-test-%d-%d", (int)getpid(), seq++);
  assert_int_equal(krb5_init_context(&ctx), 0);
  assert_int_equal(krb5_cc_resolve(ctx, name, &cc), 0);
  assert_int_equal(krb5_parse_name(ctx, princ, &client), 0);
  assert_int_equal(krb5_parse_name(ctx, "krbtgt/EXAMPLE.ORG@EXAMPLE.ORG", &server), 0);
  assert_int_equal(krb5_cc_initialize(ctx, cc, client), 0);
  memset(&cr, 0, sizeof(cr));
  cr.client = client;
  cr.server = server;
  cr.times.authtime = cr.times.starttime = (krb5_timestamp)now;
  cr.times.endtime = (krb5_timestamp)(now + 3600);
  cr.keyblock.enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
  cr.keyblock.length = sizeof(key);
  cr.keyblock.contents = key;
  cr.ticket.data = "not-a-ticket";
  cr.ticket.length = 12;
  assert_int_equal(krb5_cc_store_cred(ctx, cc, &cr), 0);
  major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                GSS_C_INITIATE, &store, &cred, NULL, NULL);
  assert_false(GSS_ERROR(major));
  krb5_free_principal(ctx, client);
  krb5_free_principal(ctx, server);
  krb5_cc_close(ctx, cc); /* MEMORY caches live while the credential refers to them */
  krb5_free_context(ctx);
  return cred;
}

/* The principal name a credential carries. */
static void cred_name(gss_cred_id_t cred, char *buf, size_t len)
{
  OM_uint32 major, minor;
  gss_name_t name = GSS_C_NO_NAME;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  major = gss_inquire_cred(&minor, cred, &name, NULL, NULL, NULL);
  assert_false(GSS_ERROR(major));
  major = gss_display_name(&minor, name, &out, NULL);
  assert_false(GSS_ERROR(major));
  snprintf(buf, len, "%.*s", (int)out.length, (const char *)out.value);
  gss_release_buffer(&minor, &out);
  gss_release_name(&minor, &name);
}

static gh_token_t delegate_token(const char *user, const char *princ)
{
  gh_token_opts_t o = {.level = GH_LEVEL_DELEGATE,
                       .source = GH_SOURCE_KERBEROS,
                       .auth_name = princ,
                       .delegated_cred = princ ? fake_cred(princ) : GSS_C_NO_CREDENTIAL};
  gh_token_t t;
  assert_int_equal(gh_token_from_user(user, &o, &t), 0);
  return t;
}

static void test_token_carries_cred(void **state)
{
  (void)state;
  gh_token_t t = delegate_token("alice", "alice@EXAMPLE.ORG"), d, i;
  gss_cred_id_t c1, c2;
  gh_token_statistics_t st;
  char name[64];

  assert_int_equal(gh_token_get_delegated_cred(t, &c1), 0);
  assert_true(c1 != GSS_C_NO_CREDENTIAL);
  cred_name(c1, name, sizeof(name));
  assert_string_equal(name, "alice@EXAMPLE.ORG");
  assert_int_equal(gh_token_get_statistics(t, &st), 0);
  assert_true(st.has_delegated_cred);
  /* DELEGATE duplicates share it; lower levels drop it */
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_DELEGATE, GH_TOKEN_PRIMARY, &d), 0);
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &i), 0);
  assert_int_equal(gh_token_get_delegated_cred(d, &c2), 0);
  assert_true(c2 == c1);
  assert_int_equal(gh_token_get_delegated_cred(i, &c2), 0);
  assert_true(c2 == GSS_C_NO_CREDENTIAL);
  /* the duplicate keeps the credential alive after the original closes */
  assert_int_equal(gh_token_close(t), 0);
  assert_int_equal(gh_token_get_delegated_cred(d, &c2), 0);
  cred_name(c2, name, sizeof(name));
  assert_string_equal(name, "alice@EXAMPLE.ORG");
  assert_int_equal(gh_token_close(d), 0);
  assert_int_equal(gh_token_close(i), 0);
}

static void test_store_ccache_refusals(void **state)
{
  (void)state;
  gh_token_t nocred = delegate_token("bob", NULL), imp;
  char path[400];
  snprintf(path, sizeof(path), "FILE:%s/cc_refused", fx_dir());
  assert_int_equal(gh_token_store_delegated_ccache(nocred, path), GH_ENOT_FOUND);
  assert_int_equal(gh_token_duplicate(nocred, GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &imp), 0);
  assert_int_equal(gh_token_store_delegated_ccache(imp, path), GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_close(imp), 0);
  assert_int_equal(gh_token_close(nocred), 0);
  assert_int_equal(gh_token_store_delegated_ccache(nocred, path), GH_EINVALID_HANDLE);
}

static void test_store_ccache_owned_by_client(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t t = delegate_token("alice", "alice@EXAMPLE.ORG");
  char dir[300], path[400], name[420];
  struct stat st;
  krb5_context ctx;
  krb5_ccache cc;
  krb5_principal p;
  char *pname;

  snprintf(dir, sizeof(dir), "%s/ccaches", fx_dir());
  assert_int_equal(mkdir(dir, 01777), 0);
  assert_int_equal(chmod(dir, 01777), 0);
  snprintf(path, sizeof(path), "%s/krb5cc_alice", dir);
  snprintf(name, sizeof(name), "FILE:%s", path);
  assert_int_equal(gh_token_store_delegated_ccache(t, name), 0);
  gh_assert_base();
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_uid, U_ALICE);
  assert_int_equal(st.st_mode & 077, 0);
  assert_int_equal(krb5_init_context(&ctx), 0);
  assert_int_equal(krb5_cc_resolve(ctx, name, &cc), 0);
  assert_int_equal(krb5_cc_get_principal(ctx, cc, &p), 0);
  assert_int_equal(krb5_unparse_name(ctx, p, &pname), 0);
  assert_string_equal(pname, "alice@EXAMPLE.ORG");
  krb5_free_unparsed_name(ctx, pname);
  krb5_free_principal(ctx, p);
  krb5_cc_close(ctx, cc);
  krb5_free_context(ctx);
  unlink(path);
  assert_int_equal(gh_token_close(t), 0);
}

static uint64_t id_of(gh_token_t t)
{
  uint64_t id = 0;
  if (t != GH_TOKEN_NULL)
    assert_int_equal(gh_token_get_id(t, &id), 0);
  return id;
}

/* Which token (by id; 0 = service) the cloak picks now. */
static uint64_t pick(gh_cloak_t *c)
{
  gh_token_t t;
  uint64_t id;
  assert_int_equal(gh_cloak_identity(c, &t), 0);
  id = id_of(t);
  if (t != GH_TOKEN_NULL)
    assert_int_equal(gh_token_close(t), 0);
  return id;
}

static void test_cloaking_modes(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t alice = delegate_token("alice", "alice@EXAMPLE.ORG");
  gh_token_t bob = delegate_token("bob", "bob@EXAMPLE.ORG");
  gh_token_t carol;
  gh_cloak_t none, stat_base, stat_alice, dyn;
  gss_cred_id_t cred;
  gh_token_t held;
  char name[64];

  assert_int_equal(gh_token_from_user("carol", NULL, &carol), 0);
  gh_cloak_init(&none, GH_CLOAK_NONE);
  gh_cloak_init(&stat_base, GH_CLOAK_STATIC);
  gh_cloak_init(&stat_alice, GH_CLOAK_STATIC);
  gh_cloak_init(&dyn, GH_CLOAK_DYNAMIC);

  assert_int_equal(pick(&stat_base), 0); /* first use at base: the service, for good */
  assert_int_equal(pick(&dyn), 0);

  assert_int_equal(gh_impersonate(alice), 0);
  assert_int_equal(pick(&none), 0);
  assert_int_equal(pick(&dyn), id_of(alice));
  assert_int_equal(pick(&stat_alice), id_of(alice)); /* captured now */
  assert_int_equal(gh_cloak_cred(&dyn, &cred, &held), 0);
  cred_name(cred, name, sizeof(name));
  assert_string_equal(name, "alice@EXAMPLE.ORG");
  assert_int_equal(gh_token_close(held), 0);

  assert_int_equal(gh_impersonate(bob), 0); /* traditional: now bob */
  assert_int_equal(pick(&dyn), id_of(bob));
  assert_int_equal(pick(&stat_alice), id_of(alice));
  assert_int_equal(pick(&stat_base), 0);
  assert_int_equal(gh_cloak_cred(&stat_alice, &cred, &held), 0);
  cred_name(cred, name, sizeof(name));
  assert_string_equal(name, "alice@EXAMPLE.ORG");
  assert_int_equal(gh_token_close(held), 0);
  assert_int_equal(gh_cloak_cred(&none, &cred, &held), 0);
  assert_true(cred == GSS_C_NO_CREDENTIAL);
  assert_true(held == GH_TOKEN_NULL);

  /* a client without delegated credentials never falls back to the service */
  assert_int_equal(gh_impersonate(carol), 0);
  held = 12345;
  assert_int_equal(gh_cloak_cred(&dyn, &cred, &held), GH_EBAD_IMPERSONATION_LEVEL);
  assert_true(held == 12345);
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(pick(&dyn), 0);
  assert_int_equal(pick(&stat_alice), id_of(alice));

  /* the captured identity outlives the caller's handle */
  uint64_t alice_id = id_of(alice);
  assert_int_equal(gh_token_close(alice), 0);
  assert_int_equal(pick(&stat_alice), alice_id);

  gh_cloak_done(&none);
  gh_cloak_done(&stat_base);
  gh_cloak_done(&stat_alice);
  gh_cloak_done(&dyn);
  assert_int_equal(gh_token_close(bob), 0);
  assert_int_equal(gh_token_close(carol), 0);
  gh_assert_base();
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  if (gh_sec_init(NULL) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_token_carries_cred),
      cmocka_unit_test(test_store_ccache_refusals),
      cmocka_unit_test(test_store_ccache_owned_by_client),
      cmocka_unit_test(test_cloaking_modes),
  };
  return cmocka_run_group_tests_name("sec_delegation", tests, NULL, NULL);
}

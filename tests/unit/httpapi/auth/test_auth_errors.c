/* test_auth_errors.c: failure causes — names, texts and fixes for every cause, krb5 / GSS / PAM /
 * gss-ntlmssp / local codes to causes, the Kerberos facts turned into a cause and detail, and the
 * one-line message for a FAILURE record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gssapi/gssapi.h>
#include <krb5.h>
#include <security/pam_appl.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_internal.h"

static void test_every_cause_has_name_text_and_fix(void **state)
{
  (void)state;
  for (int f = GH_AUTH_FAILURE_NONE; f <= GH_AUTH_FAILURE_WINBIND_PIPE; f++) {
    const char *name = gh_auth_failure_name((gh_auth_failure_t)f);
    assert_string_not_equal(name, "UNKNOWN");
    assert_true(strlen(gh_auth_failure_text((gh_auth_failure_t)f)) > 5);
    /* every cause an operator can act on says how */
    if (f != GH_AUTH_FAILURE_NONE && f != GH_AUTH_FAILURE_OTHER)
      assert_true(strlen(gh_auth_failure_fix((gh_auth_failure_t)f)) > 10);
    for (int g = GH_AUTH_FAILURE_NONE; g < f; g++)
      assert_string_not_equal(name, gh_auth_failure_name((gh_auth_failure_t)g));
  }
  assert_string_equal(gh_auth_failure_name(GH_AUTH_FAILURE_REPLAY), "REPLAY");
  assert_string_equal(gh_auth_failure_name((gh_auth_failure_t)999), "UNKNOWN");
}

static void test_krb5_codes(void **state)
{
  (void)state;
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_REPEAT), GH_AUTH_FAILURE_REPLAY);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_SKEW), GH_AUTH_FAILURE_CLOCK_SKEW);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_TKT_NYV), GH_AUTH_FAILURE_CLOCK_SKEW);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_TKT_EXPIRED),
                   GH_AUTH_FAILURE_TICKET_EXPIRED);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_BADKEYVER), GH_AUTH_FAILURE_WRONG_KVNO);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5_KT_KVNONOTFOUND), GH_AUTH_FAILURE_WRONG_KVNO);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_NOT_US), GH_AUTH_FAILURE_NO_KEY);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_NOKEY), GH_AUTH_FAILURE_NO_KEY);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_WRONG_PRINC), GH_AUTH_FAILURE_WRONG_SPN);
  assert_int_equal(gh__auth_failure_of_krb5(KRB5KRB_AP_ERR_BAD_INTEGRITY), GH_AUTH_FAILURE_BAD_KEY);
  assert_int_equal(gh__auth_failure_of_krb5(ASN1_BAD_ID), GH_AUTH_FAILURE_MALFORMED_TOKEN);
  assert_int_equal(gh__auth_failure_of_krb5(ENOMEM), GH_AUTH_FAILURE_OTHER);
  /* what a keytab re-read can cure, and what it cannot */
  assert_true(gh__auth_krb5_key_error(KRB5KRB_AP_ERR_BADKEYVER));
  assert_true(gh__auth_krb5_key_error(KRB5KRB_AP_ERR_NOT_US));
  assert_true(gh__auth_krb5_key_error(KRB5KRB_AP_ERR_BAD_INTEGRITY));
  assert_false(gh__auth_krb5_key_error(KRB5KRB_AP_ERR_REPEAT));
  assert_false(gh__auth_krb5_key_error(KRB5KRB_AP_ERR_SKEW));
  assert_false(gh__auth_krb5_key_error(KRB5KRB_AP_WRONG_PRINC));
  assert_false(gh__auth_krb5_key_error(0));
}

static void test_gss_pam_local_codes(void **state)
{
  (void)state;
  assert_int_equal(gh__auth_failure_of_gss_major(GSS_S_DEFECTIVE_TOKEN),
                   GH_AUTH_FAILURE_MALFORMED_TOKEN);
  assert_int_equal(gh__auth_failure_of_gss_major(GSS_S_BAD_BINDINGS),
                   GH_AUTH_FAILURE_CHANNEL_BINDING);
  assert_int_equal(gh__auth_failure_of_gss_major(GSS_S_FAILURE | GSS_S_DUPLICATE_TOKEN),
                   GH_AUTH_FAILURE_REPLAY);
  assert_int_equal(gh__auth_failure_of_gss_major(GSS_S_FAILURE), GH_AUTH_FAILURE_OTHER);
  assert_int_equal(gh__auth_failure_of_pam(PAM_AUTH_ERR), GH_AUTH_FAILURE_BAD_PASSWORD);
  assert_int_equal(gh__auth_failure_of_pam(PAM_USER_UNKNOWN), GH_AUTH_FAILURE_UNKNOWN_ACCOUNT);
  assert_int_equal(gh__auth_failure_of_pam(PAM_ACCT_EXPIRED), GH_AUTH_FAILURE_ACCOUNT_DISABLED);
  assert_int_equal(gh__auth_failure_of_pam(PAM_SYSTEM_ERR), GH_AUTH_FAILURE_OTHER);
  assert_int_equal(gh__auth_failure_of_local(GH_ENO_SUCH_USER), GH_AUTH_FAILURE_UNKNOWN_ACCOUNT);
  assert_int_equal(gh__auth_failure_of_local(GH_EUID_REFUSED), GH_AUTH_FAILURE_ACCOUNT_REFUSED);
  assert_int_equal(gh__auth_failure_of_local(-ENOMEM), GH_AUTH_FAILURE_OTHER);
}

static void test_ntlm_minors_by_number_and_text(void **state)
{
  char buf[128];
  (void)state;
  /* gss-ntlmssp's own codes, as numbers or (renumbered by the mechglue) as text */
  assert_int_equal(gh__auth_failure_of_ntlm(0x4E540000u + 29, NULL, true),
                   GH_AUTH_FAILURE_UNKNOWN_ACCOUNT);
  assert_int_equal(gh__auth_failure_of_ntlm(100007, "User not found", true),
                   GH_AUTH_FAILURE_UNKNOWN_ACCOUNT);
  assert_int_equal(gh__auth_failure_of_ntlm(100008, "Failed to decode data", false),
                   GH_AUTH_FAILURE_MALFORMED_TOKEN);
  /* errno codes by their strerror text: a user file without the user, a
   * response that does not verify; only on an AUTHENTICATE */
  assert_int_equal(gh__auth_failure_of_ntlm(100009, strerror_r(ENOENT, buf, sizeof(buf)), true),
                   GH_AUTH_FAILURE_UNKNOWN_ACCOUNT);
  assert_int_equal(gh__auth_failure_of_ntlm(22, strerror_r(EINVAL, buf, sizeof(buf)), true),
                   GH_AUTH_FAILURE_BAD_PASSWORD);
  assert_int_equal(gh__auth_failure_of_ntlm(22, strerror_r(EINVAL, buf, sizeof(buf)), false),
                   GH_AUTH_FAILURE_OTHER);
  assert_int_equal(gh__auth_failure_of_ntlm(5, "Something else", true), GH_AUTH_FAILURE_OTHER);
}

static gh__krb5_diag_t diag(unsigned kvno, const unsigned *held, unsigned n_held)
{
  gh__krb5_diag_t d;
  memset(&d, 0, sizeof(d));
  d.decoded = true;
  snprintf(d.service, sizeof(d.service), "HTTP/www.example.test@EXAMPLE.TEST");
  d.kvno = kvno;
  for (unsigned i = 0; i < n_held; i++)
    d.held[d.n_held++] = held[i];
  d.service_held = n_held > 0;
  return d;
}

static void test_kerberos_facts(void **state)
{
  char detail[400];
  gh__krb5_diag_t d;
  const unsigned two[] = {2}, four_five[] = {4, 5};
  (void)state;

  d = diag(3, two, 1);
  assert_int_equal(gh__krb5_explain(GH_AUTH_FAILURE_WRONG_KVNO, &d, NULL, detail, sizeof(detail)),
                   GH_AUTH_FAILURE_WRONG_KVNO);
  assert_string_equal(detail, "the ticket has key version 3; the keytab holds version 2 of "
                              "HTTP/www.example.test@EXAMPLE.TEST (all older: the keytab is "
                              "behind the KDC)");
  d = diag(3, four_five, 2);
  gh__krb5_explain(GH_AUTH_FAILURE_WRONG_KVNO, &d, NULL, detail, sizeof(detail));
  assert_non_null(strstr(detail, "holds versions 4, 5 of"));
  assert_non_null(strstr(detail, "client's ticket predates the key change"));
  /* a service the keytab lacks: no key; with one fixed acceptor name and a
   * ticket for another name the keytab has: the wrong name */
  d = diag(1, NULL, 0);
  assert_int_equal(gh__krb5_explain(GH_AUTH_FAILURE_NO_KEY, &d, NULL, detail, sizeof(detail)),
                   GH_AUTH_FAILURE_NO_KEY);
  assert_string_equal(detail, "no key for HTTP/www.example.test@EXAMPLE.TEST (ticket key version "
                              "1) in the keytab");
  d = diag(2, two, 1);
  assert_int_equal(
      gh__krb5_explain(GH_AUTH_FAILURE_NO_KEY, &d, "HTTP/other.test", detail, sizeof(detail)),
      GH_AUTH_FAILURE_WRONG_SPN);
  assert_non_null(strstr(detail, "this server accepts only HTTP/other.test"));
  /* a ticket the keytab decrypts: the damage is in the authenticator */
  d = diag(2, two, 1);
  d.decrypted = true;
  assert_int_equal(gh__krb5_explain(GH_AUTH_FAILURE_BAD_KEY, &d, NULL, detail, sizeof(detail)),
                   GH_AUTH_FAILURE_MALFORMED_TOKEN);
  d.have_skew = true;
  d.skew = -412;
  gh__krb5_explain(GH_AUTH_FAILURE_CLOCK_SKEW, &d, NULL, detail, sizeof(detail));
  assert_string_equal(detail, "the client's clock is 412 s behind this server's");
  d.skew = 30;
  gh__krb5_explain(GH_AUTH_FAILURE_CLOCK_SKEW, &d, NULL, detail, sizeof(detail));
  assert_string_equal(detail, "the client's clock is 30 s ahead of this server's");
  /* nothing decoded: the cause stands, no facts */
  memset(&d, 0, sizeof(d));
  assert_int_equal(gh__krb5_explain(GH_AUTH_FAILURE_REPLAY, &d, NULL, detail, sizeof(detail)),
                   GH_AUTH_FAILURE_REPLAY);
  assert_string_equal(detail, "");
}

static void test_failure_message(void **state)
{
  gh_auth_info_t info;
  char buf[1024], small[16];
  int n;
  (void)state;

  memset(&info, 0, sizeof(info));
  info.status = GH_AUTH_STATUS_SUCCESS;
  assert_int_equal(gh_auth_info_failure_message(&info, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "");
  info.status = GH_AUTH_STATUS_FAILURE;
  info.type = GH_AUTH_TYPE_NEGOTIATE;
  info.failure = GH_AUTH_FAILURE_CLOCK_SKEW;
  info.failure_client = "alice@EXAMPLE.TEST";
  info.failure_service = "HTTP/www@EXAMPLE.TEST";
  info.failure_detail = "the client's clock is 412 s behind this server's";
  snprintf(info.sec_status_text, sizeof(info.sec_status_text), "Clock skew too great");
  n = gh_auth_info_failure_message(&info, buf, sizeof(buf));
  assert_int_equal(n, (int)strlen(buf));
  assert_string_equal(buf, "clock skew: the client's clock and this server's differ by more "
                           "than the allowed skew: the client's clock is 412 s behind this "
                           "server's; client alice@EXAMPLE.TEST; service HTTP/www@EXAMPLE.TEST; "
                           "fix: synchronise both clocks (NTP, chrony, w32time); krb5.conf "
                           "[libdefaults] clockskew sets the limit (300 s by default) [Clock "
                           "skew too great]");
  /* truncated like snprintf: the full length, a terminated prefix */
  assert_int_equal(gh_auth_info_failure_message(&info, small, sizeof(small)), n);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  /* the fix follows the scheme: an NTLM user the user file lacks */
  memset(&info, 0, sizeof(info));
  info.status = GH_AUTH_STATUS_FAILURE;
  info.type = GH_AUTH_TYPE_NTLM;
  info.sec_status.kind = GH_AUTH_SEC_GSS;
  info.failure = GH_AUTH_FAILURE_UNKNOWN_ACCOUNT;
  gh_auth_info_failure_message(&info, buf, sizeof(buf));
  assert_non_null(strstr(buf, "ntlm_user_file"));
  /* and an authenticated name without a local account */
  info.sec_status.kind = GH_AUTH_SEC_ERRNO;
  gh_auth_info_failure_message(&info, buf, sizeof(buf));
  assert_non_null(strstr(buf, "allow_unmapped"));
}

/* A result's user names: in its own room when they fit, allocated (and
 * freed by result_done: the ASan run sees a leak) when not, NULL kept. */
static void test_result_users(void **state)
{
  gh__auth_result_t r;
  char big[300];
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_result_set_users(&r, "alice@EXAMPLE.TEST", "alice"), 0);
  assert_string_equal(r.info.remote_user, "alice@EXAMPLE.TEST");
  assert_string_equal(r.info.local_user, "alice");
  assert_true(r.info.remote_user >= r.users && r.info.local_user < r.users + sizeof(r.users));
  assert_null(r.remote_user_buf);
  gh__auth_result_done(&r);

  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_result_set_users(&r, "bob", NULL), 0);
  assert_string_equal(r.info.remote_user, "bob");
  assert_null(r.info.local_user);
  gh__auth_result_done(&r);

  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_result_set_users(&r, big, "carol"), 0);
  assert_string_equal(r.info.remote_user, big);
  assert_string_equal(r.info.local_user, "carol");
  assert_ptr_equal(r.info.remote_user, r.remote_user_buf);
  assert_ptr_equal(r.info.local_user, r.local_user_buf);
  gh__auth_result_done(&r);

  /* exactly the room (two NULs included) stays inline; one more byte does not */
  memset(big, 'y', sizeof(r.users) - 2);
  big[sizeof(r.users) - 2] = '\0';
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_result_set_users(&r, big, ""), 0);
  assert_null(r.remote_user_buf);
  gh__auth_result_done(&r);
  big[sizeof(r.users) - 2] = 'y';
  big[sizeof(r.users) - 1] = '\0';
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_result_set_users(&r, big, ""), 0);
  assert_non_null(r.remote_user_buf);
  assert_string_equal(r.info.remote_user, big);
  gh__auth_result_done(&r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_cause_has_name_text_and_fix),
      cmocka_unit_test(test_krb5_codes),
      cmocka_unit_test(test_gss_pam_local_codes),
      cmocka_unit_test(test_ntlm_minors_by_number_and_text),
      cmocka_unit_test(test_kerberos_facts),
      cmocka_unit_test(test_failure_message),
      cmocka_unit_test(test_result_users),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_tls.c: unit tests for the TLS pieces — SNI name matching, RFC 5929 tls-server-end-point hashes, the NTLM AUTHENTICATE facts parser and the allowed-SPN list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "httpapi/auth/auth.h"
#include "httpapi/tls.h"

static void test_name_match(void **state)
{
  (void)state;
  assert_true(gh__tls_name_match("localhost", "localhost"));
  assert_true(gh__tls_name_match("WWW.gh.test", "www.GH.test"));
  assert_true(gh__tls_name_match("*.wild.test", "a.wild.test"));
  assert_false(gh__tls_name_match("*.wild.test", "a.b.wild.test"));
  assert_false(gh__tls_name_match("*.wild.test", "wild.test"));
  assert_false(gh__tls_name_match("*.wild.test", ".wild.test"));
  assert_false(gh__tls_name_match("www.gh.test", "www.gh.test."));
  assert_false(gh__tls_name_match("a*.gh.test", "ab.gh.test"));
}

/* A self-signed certificate signed with md. */
static X509 *make_cert(const EVP_MD *md)
{
  EVP_PKEY *pk = EVP_RSA_gen(1024);
  X509 *x = X509_new();
  assert_non_null(pk);
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"t", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, pk);
  assert_true(X509_sign(x, pk, md) > 0);
  EVP_PKEY_free(pk);
  return x;
}

static void check_cbt(const EVP_MD *sig_md, const EVP_MD *want_md)
{
  unsigned char buf[GH__TLS_CBT_MAX], want[64];
  unsigned int wl = 0;
  size_t n = 0;
  X509 *x = make_cert(sig_md);
  assert_int_equal(gh__tls_cert_channel_binding(x, buf, &n), 0);
  assert_true(X509_digest(x, want_md, want, &wl) == 1);
  assert_int_equal(n, 21 + wl);
  assert_memory_equal(buf, "tls-server-end-point:", 21);
  assert_memory_equal(buf + 21, want, wl);
  X509_free(x);
}

static void test_end_point_hash(void **state)
{
  (void)state;
  check_cbt(EVP_sha256(), EVP_sha256());
  check_cbt(EVP_sha384(), EVP_sha384());
  check_cbt(EVP_sha512(), EVP_sha512());
  check_cbt(EVP_sha1(), EVP_sha256()); /* RFC 5929: MD5/SHA-1 become SHA-256 */
  size_t n = 0;
  unsigned char buf[GH__TLS_CBT_MAX];
  assert_int_not_equal(gh__tls_cert_channel_binding(NULL, buf, &n), 0);
}

/* An NTLM AUTHENTICATE with an NTLMv2 response holding the given AV pairs. */
static size_t make_auth(unsigned char *m, const unsigned char *av, size_t avlen)
{
  size_t off = 88, rlen = 16 + 28 + avlen + 4;
  memset(m, 0, off + rlen);
  memcpy(m, "NTLMSSP\0\3\0\0\0", 12);
  m[20] = (unsigned char)rlen;
  m[21] = (unsigned char)(rlen >> 8);
  m[22] = m[20];
  m[23] = m[21];
  m[24] = (unsigned char)off;
  m[off + 16] = 1;
  m[off + 17] = 1;
  memcpy(m + off + 44, av, avlen); /* then MsvAvEOL (zeros) */
  return off + rlen;
}

static void test_ntlm_facts(void **state)
{
  (void)state;
  unsigned char m[1024], wrapped[1100];
  gh__ntlm_auth_facts_t f;
  /* MsvAvTargetName "HTTP/h", MsvAvChannelBindings non-zero */
  unsigned char av[] = {9, 0, 12, 0, 'H', 0, 'T', 0, 'T', 0, 'P', 0, '/', 0, 'h', 0,
                        10, 0, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  size_t n = make_auth(m, av, sizeof(av));
  gh__ntlm_auth_facts(m, n, &f);
  assert_true(f.is_authenticate);
  assert_true(f.has_cbt);
  assert_string_equal(f.spn, "HTTP/h");
  /* wrapped (as in SPNEGO) */
  memset(wrapped, 0xa1, 40);
  memcpy(wrapped + 40, m, n);
  gh__ntlm_auth_facts(wrapped, n + 40, &f);
  assert_true(f.is_authenticate && f.has_cbt);
  /* all-zero bindings = none */
  memset(av + 20, 0, 16);
  n = make_auth(m, av, sizeof(av));
  gh__ntlm_auth_facts(m, n, &f);
  assert_true(f.is_authenticate);
  assert_false(f.has_cbt);
  /* non-ASCII target name is not reported */
  av[4] = 0xe9;
  n = make_auth(m, av, sizeof(av));
  gh__ntlm_auth_facts(m, n, &f);
  assert_string_equal(f.spn, "");
  /* every truncation is safe and reports nothing past the end */
  for (size_t k = 0; k < n; k++) {
    gh__ntlm_auth_facts(m, k, &f);
    assert_false(f.has_cbt);
  }
  /* a pair whose length runs past the response */
  unsigned char bad[] = {10, 0, 0xff, 0x7f, 1};
  n = make_auth(m, bad, sizeof(bad));
  gh__ntlm_auth_facts(m, n, &f);
  assert_false(f.has_cbt);
  /* NEGOTIATE (type 1) and garbage */
  gh__ntlm_auth_facts((const unsigned char *)"NTLMSSP\0\1\0\0\0", 12, &f);
  assert_false(f.is_authenticate);
  gh__ntlm_auth_facts((const unsigned char *)"", 0, &f);
  assert_false(f.is_authenticate);
}

static void test_spn_allowed(void **state)
{
  (void)state;
  const char *list = "HTTP/www.gh.test  http/LOCALHOST,HTTP/x@OTHER.REALM";
  assert_true(gh__auth_spn_allowed(list, "HTTP/www.gh.test"));
  assert_true(gh__auth_spn_allowed(list, "HTTP/localhost@GH.TEST"));
  assert_true(gh__auth_spn_allowed(list, "HTTP/x"));
  assert_false(gh__auth_spn_allowed(list, "HTTP/www.gh.tes"));
  assert_false(gh__auth_spn_allowed(list, "HTTP/www.gh.test.evil"));
  assert_false(gh__auth_spn_allowed(list, ""));
  assert_false(gh__auth_spn_allowed(NULL, "HTTP/x"));
  assert_false(gh__auth_spn_allowed("", "HTTP/x"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_name_match),
    cmocka_unit_test(test_end_point_hash),
    cmocka_unit_test(test_ntlm_facts),
    cmocka_unit_test(test_spn_allowed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

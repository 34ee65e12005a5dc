/* test_proxy_jwt.c: the proxy's JWT: key file checks, HS256/ES256 tokens verified by libjwt,
 * claims, escaping. */
#include <errno.h>
#include <fcntl.h>
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
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proxy_jwt.h"

static char dir[] = "/tmp/gh-jwt-XXXXXX";
static char path_buf[512];
static const char secret[] = "0123456789abcdef0123456789abcdef-secret";

static const char *path_of(const char *name)
{
  snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
  return path_buf;
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
  const char *p = path_of(name);
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

/* A fresh key pair: the private key as PEM into name, the public one returned (malloc'd). */
static char *write_key_pair(const char *name, const char *type)
{
  EVP_PKEY *pk = strcmp(type, "EC") == 0 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
  char *data, *out;
  long n;
  assert_non_null(pk);
  assert_int_equal(PEM_write_bio_PrivateKey(priv, pk, NULL, NULL, 0, NULL, NULL), 1);
  assert_int_equal(PEM_write_bio_PUBKEY(pub, pk), 1);
  n = BIO_get_mem_data(priv, &data);
  write_file(name, data, (size_t)n, 0600);
  n = BIO_get_mem_data(pub, &data);
  out = strndup(data, (size_t)n);
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(pk);
  return out;
}

static int load(const char *name, const char *alg, proxy_jwt_t **ret, char *err, size_t errlen)
{
  proxy_jwt_config_t cfg = {.key_file = path_of(name), .alg = alg};
  err[0] = '\0';
  return proxy_jwt_new(&cfg, ret, err, errlen);
}

static void expect_refused(const char *name, const char *alg, int want, const char *why)
{
  proxy_jwt_t *j = NULL;
  char err[512];
  assert_int_equal(load(name, alg, &j, err, sizeof(err)), want);
  assert_null(j);
  if (strstr(err, why) == NULL)
    fail_msg("error \"%s\" does not say \"%s\"", err, why);
}

static const char *const groups[] = {"staff", "we \"quote\" \\ back", "tab\there"};

static char *sign(proxy_jwt_t *j, time_t now)
{
  proxy_jwt_claims_t c = {.sub = "alice",
                          .principal = "alice@EXAMPLE.ORG",
                          .auth_type = "Negotiate",
                          .groups = groups,
                          .n_groups = 3,
                          .aud = "unix:/run/app.sock",
                          .now = now};
  char *tok = NULL;
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), 0);
  assert_non_null(tok);
  return tok;
}

static void check_claims(jwt_t *t, long ttl)
{
  char *g;
  assert_string_equal(jwt_get_grant(t, "sub"), "alice");
  assert_string_equal(jwt_get_grant(t, "principal"), "alice@EXAMPLE.ORG");
  assert_string_equal(jwt_get_grant(t, "auth_type"), "Negotiate");
  assert_string_equal(jwt_get_grant(t, "aud"), "unix:/run/app.sock");
  assert_string_equal(jwt_get_grant(t, "iss"), "gatehouse");
  assert_int_equal(jwt_get_grant_int(t, "exp") - jwt_get_grant_int(t, "iat"), ttl);
  assert_int_equal(strlen(jwt_get_grant(t, "jti")), 32);
  g = jwt_get_grants_json(t, "groups");
  assert_non_null(g);
  assert_string_equal(g, "[\"staff\",\"we \\\"quote\\\" \\\\ back\",\"tab\\there\"]");
  free(g);
}

static void test_hs256(void **state)
{
  (void)state;
  proxy_jwt_t *j = NULL;
  jwt_t *t = NULL;
  char err[512], *tok, wrong[sizeof(secret)];
  char line[sizeof(secret) + 1];
  /* the file's final newline is not part of the secret */
  snprintf(line, sizeof(line), "%s\n", secret);
  write_file("hs", line, strlen(line), 0600);
  assert_int_equal(load("hs", NULL, &j, err, sizeof(err)), 0);
  assert_string_equal(proxy_jwt_alg(j), "HS256");
  tok = sign(j, 0);
  assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
  assert_int_equal(jwt_get_alg(t), JWT_ALG_HS256);
  check_claims(t, 60);
  assert_true(labs(jwt_get_grant_int(t, "iat") - (long)time(NULL)) <= 5);
  jwt_free(t);
  /* another secret does not verify it */
  memcpy(wrong, secret, sizeof(secret));
  wrong[0] = 'X';
  t = NULL;
  assert_int_not_equal(jwt_decode(&t, tok, (const unsigned char *)wrong, (int)strlen(wrong)), 0);
  jwt_free(t);
  free(tok);
  proxy_jwt_free(j);
  /* the algorithm named in the config must be the key's */
  expect_refused("hs", "ES256", -EINVAL, "is an HS256 key");
  j = NULL;
  assert_int_equal(load("hs", "hs256", &j, err, sizeof(err)), 0);
  proxy_jwt_free(j);
}

static void test_es256(void **state)
{
  (void)state;
  proxy_jwt_t *j = NULL;
  jwt_t *t = NULL;
  char err[512], *tok;
  char *pub = write_key_pair("ec.pem", "EC");
  char *other = write_key_pair("ec2.pem", "EC");
  proxy_jwt_config_t cfg = {.key_file = path_of("ec.pem"), .ttl_s = 5, .issuer = "gh-test"};
  assert_int_equal(proxy_jwt_new(&cfg, &j, err, sizeof(err)), 0);
  assert_string_equal(proxy_jwt_alg(j), "ES256");
  tok = sign(j, 1000000000);
  assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)pub, (int)strlen(pub)), 0);
  assert_int_equal(jwt_get_alg(t), JWT_ALG_ES256);
  assert_string_equal(jwt_get_grant(t, "iss"), "gh-test");
  assert_int_equal(jwt_get_grant_int(t, "iat"), 1000000000);
  assert_int_equal(jwt_get_grant_int(t, "exp"), 1000000005);
  jwt_free(t);
  t = NULL;
  /* another key pair's public key does not verify it */
  assert_int_not_equal(jwt_decode(&t, tok, (const unsigned char *)other, (int)strlen(other)), 0);
  jwt_free(t);
  free(tok);
  free(pub);
  free(other);
  proxy_jwt_free(j);
  expect_refused("ec.pem", "HS256", -EINVAL, "is an ES256 key");
}

static void test_key_file_checks(void **state)
{
  (void)state;
  char big[PROXY_JWT_MAX_KEY + 1], *pub;
  proxy_jwt_t *j = NULL;
  char err[512];
  write_file("open", secret, strlen(secret), 0644);
  expect_refused("open", NULL, -EINVAL, "lets others read");
  write_file("gw", secret, strlen(secret), 0620);
  expect_refused("gw", NULL, -EINVAL, "mode 0620");
  write_file("gr", secret, strlen(secret), 0640); /* group-readable is fine */
  assert_int_equal(load("gr", NULL, &j, err, sizeof(err)), 0);
  proxy_jwt_free(j);
  assert_int_equal(mkdir(path_of("adir"), 0700), 0);
  expect_refused("adir", NULL, -EINVAL, "not a regular file");
  expect_refused("missing", NULL, -ENOENT, "No such file");
  write_file("empty", "", 0, 0600);
  expect_refused("empty", NULL, -EINVAL, "size 0");
  memset(big, 'k', sizeof(big));
  write_file("big", big, sizeof(big), 0600);
  expect_refused("big", NULL, -EINVAL, "size 65537");
  write_file("short", secret, PROXY_JWT_MIN_SECRET - 1, 0600);
  expect_refused("short", NULL, -EINVAL, "31 bytes (at least 32)");
  write_file("short-nl", "0123456789abcdef0123456789abcde\n", 32, 0600);
  expect_refused("short-nl", NULL, -EINVAL, "31 bytes");
  pub = write_key_pair("rsa.pem", "RSA");
  free(pub);
  expect_refused("rsa.pem", NULL, -EINVAL, "not an unencrypted EC P-256 private key");
  write_file("junk.pem", "-----BEGIN NOTHING-----\n", 24, 0600);
  expect_refused("junk.pem", NULL, -EINVAL, "EC P-256");
}

static void test_sign_arguments(void **state)
{
  (void)state;
  proxy_jwt_t *j = NULL;
  char err[512], *tok = NULL;
  proxy_jwt_claims_t c = {.sub = "alice", .aud = "http://app"};
  write_file("hs2", secret, strlen(secret), 0600);
  assert_int_equal(load("hs2", NULL, &j, err, sizeof(err)), 0);
  /* no groups, principal or auth type: still a token, groups [] */
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), 0);
  {
    jwt_t *t = NULL;
    char *g;
    assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
    assert_null(jwt_get_grant(t, "principal"));
    g = jwt_get_grants_json(t, "groups");
    assert_string_equal(g, "[]");
    free(g);
    jwt_free(t);
  }
  free(tok);
  tok = NULL;
  /* per-site issuer and lifetime override the loaded key's */
  c.issuer = "site-issuer";
  c.ttl_s = 7;
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), 0);
  {
    jwt_t *t = NULL;
    assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
    assert_string_equal(jwt_get_grant(t, "iss"), "site-issuer");
    assert_int_equal(jwt_get_grant_int(t, "exp") - jwt_get_grant_int(t, "iat"), 7);
    jwt_free(t);
  }
  free(tok);
  tok = NULL;
  /* group names: a "group_names" array beside "groups", escaped (an AD
   * name's backslash, a space); without with_group_names no such claim */
  {
    const char *gids[] = {"30001", "30010"}, *names[] = {"EXAMPLE\\ops team", "shared"};
    proxy_jwt_claims_t n = {.sub = "alice", .aud = "http://app", .groups = gids, .n_groups = 2,
                            .with_group_names = true, .group_names = names, .n_group_names = 2};
    jwt_t *t = NULL;
    char *g;
    assert_int_equal(proxy_jwt_sign(j, &n, &tok), 0);
    assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
    g = jwt_get_grants_json(t, "group_names");
    assert_string_equal(g, "[\"EXAMPLE\\\\ops team\",\"shared\"]");
    free(g);
    g = jwt_get_grants_json(t, "groups");
    assert_string_equal(g, "[\"30001\",\"30010\"]");
    free(g);
    jwt_free(t);
    free(tok);
    tok = NULL;
    n.n_group_names = 0; /* none resolved: an empty array */
    n.group_names = NULL;
    assert_int_equal(proxy_jwt_sign(j, &n, &tok), 0);
    assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
    g = jwt_get_grants_json(t, "group_names");
    assert_string_equal(g, "[]");
    free(g);
    jwt_free(t);
    free(tok);
    tok = NULL;
    n.n_group_names = 1; /* a count without names */
    assert_int_equal(proxy_jwt_sign(j, &n, &tok), -EINVAL);
    /* without the option: no claim */
    assert_int_equal(proxy_jwt_sign(j, &c, &tok), 0);
    assert_int_equal(jwt_decode(&t, tok, (const unsigned char *)secret, (int)strlen(secret)), 0);
    assert_null(jwt_get_grants_json(t, "group_names"));
    jwt_free(t);
    free(tok);
    tok = NULL;
  }
  c.sub = NULL;
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), -EINVAL);
  c.sub = "";
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), -EINVAL);
  c.sub = "alice";
  c.aud = NULL;
  assert_int_equal(proxy_jwt_sign(j, &c, &tok), -EINVAL);
  assert_null(tok);
  proxy_jwt_free(j);
  proxy_jwt_free(NULL);
}

/* Identical claims get the same token back (within half its lifetime);
 * anything that differs, or another key, never does. */
static void test_reuse(void **state)
{
  (void)state;
  proxy_jwt_t *j = NULL, *j2 = NULL;
  char err[512], *a = NULL, *b = NULL;
  const char *g1[] = {"30001"}, *g2[] = {"30002"};
  proxy_jwt_claims_t c = {.sub = "alice", .aud = "http://app", .groups = g1, .n_groups = 1};
  proxy_jwt_claims_t d;
  write_file("hs3", secret, strlen(secret), 0600);
  assert_int_equal(load("hs3", NULL, &j, err, sizeof(err)), 0);
  assert_int_equal(load("hs3", NULL, &j2, err, sizeof(err)), 0);
  assert_int_equal(proxy_jwt_sign(j, &c, &a), 0);
  assert_int_equal(proxy_jwt_sign(j, &c, &b), 0);
  assert_string_equal(a, b);
  free(b);
  /* another sub, audience, group list, issuer, lifetime, key, or group
   * names (none, or others): a new token */
  const char *n1[] = {"alice"}, *n2[] = {"staff"};
  for (int i = 0; i < 8; i++) {
    proxy_jwt_t *k = i == 5 ? j2 : j;
    d = c;
    if (i == 0)
      d.sub = "bob";
    else if (i == 1)
      d.aud = "http://other";
    else if (i == 2)
      d.groups = g2;
    else if (i == 3)
      d.issuer = "x";
    else if (i == 4)
      d.ttl_s = 10;
    else if (i >= 6) {
      d.with_group_names = true;
      d.group_names = i == 6 ? NULL : n2;
      d.n_group_names = i == 6 ? 0 : 1;
    }
    assert_int_equal(proxy_jwt_sign(k, &d, &b), 0);
    assert_string_not_equal(a, b);
    free(b);
  }
  /* the same names twice: reused; other names: not */
  d = c;
  d.with_group_names = true;
  d.group_names = n1;
  d.n_group_names = 1;
  assert_int_equal(proxy_jwt_sign(j, &d, &b), 0);
  {
    char *b2 = NULL;
    assert_int_equal(proxy_jwt_sign(j, &d, &b2), 0);
    assert_string_equal(b, b2);
    free(b2);
    d.group_names = n2;
    assert_int_equal(proxy_jwt_sign(j, &d, &b2), 0);
    assert_string_not_equal(b, b2);
    free(b2);
  }
  free(b);
  /* an explicit time: always a new token (new jti) */
  d = c;
  d.now = time(NULL);
  assert_int_equal(proxy_jwt_sign(j, &d, &b), 0);
  assert_string_not_equal(a, b);
  free(b);
  /* a 1 s lifetime leaves nothing to reuse */
  d = c;
  d.ttl_s = 1;
  assert_int_equal(proxy_jwt_sign(j, &d, &b), 0);
  free(a);
  assert_int_equal(proxy_jwt_sign(j, &d, &a), 0);
  assert_string_not_equal(a, b);
  free(a);
  free(b);
  proxy_jwt_free(j);
  proxy_jwt_free(j2);
}

static int cleanup(void **state)
{
  char cmd[600];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hs256),           cmocka_unit_test(test_es256),
      cmocka_unit_test(test_key_file_checks), cmocka_unit_test(test_sign_arguments),
      cmocka_unit_test(test_reuse),
  };
  if (mkdtemp(dir) == NULL)
    return 1;
  return cmocka_run_group_tests_name("proxy_jwt", tests, NULL, cleanup);
}

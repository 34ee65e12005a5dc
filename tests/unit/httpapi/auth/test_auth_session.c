/* test_auth_session.c: session cookies — seal/open round trip, each refusal (tampered, truncated,
 * oversize, base64, version, unknown key, other site or name, expired, idle, future), key rotation,
 * the key file's checks and reload, the Cookie parser, and the engine's mint/use (expiry capped by
 * the ticket's end, account refused, sliding refresh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_session.h"

static const uint8_t KA[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint8_t KB[32] = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
static const uint8_t KC[32] = {21, 22, 23};

static gh__session_claims_t claims(time_t now)
{
  gh__session_claims_t c;

  memset(&c, 0, sizeof(c));
  c.type = GH_AUTH_TYPE_NEGOTIATE;
  c.package = "Kerberos";
  c.issued = c.last_use = now;
  c.expiry = now + 3600;
  snprintf(c.local, sizeof(c.local), "alice");
  snprintf(c.remote, sizeof(c.remote), "alice@GH.TEST");
  return c;
}

static gh__session_keys_t *keys(const uint8_t *cur, const uint8_t *prev)
{
  gh__session_keys_t *k = NULL;

  assert_int_equal(gh__session_keys_from(cur, prev, &k), 0);
  return k;
}

static gh__session_cause_t open_at(gh__session_keys_t *k, const char *v, time_t now,
                                   gh__session_claims_t *out)
{
  return gh__session_open(k, "gh_session", "/app", v, strlen(v), now, 8 * 3600, 1800, out);
}

static void seal(gh__session_keys_t *k, const gh__session_claims_t *c, char *buf, size_t len)
{
  int n = gh__session_seal(k, "gh_session", "/app", c, buf, len);
  assert_true(n > 0);
  assert_int_equal((size_t)n, strlen(buf));
}

static void test_round_trip(void **state)
{
  gh__session_keys_t *k = keys(KA, NULL);
  time_t now = time(NULL);
  gh__session_claims_t c = claims(now), o;
  char v1[GH__SESSION_VALUE_MAX + 1], v2[GH__SESSION_VALUE_MAX + 1];

  (void)state;
  seal(k, &c, v1, sizeof(v1));
  seal(k, &c, v2, sizeof(v2));
  assert_string_not_equal(v1, v2); /* a fresh nonce per mint */
  assert_int_equal(open_at(k, v1, now + 10, &o), GH__SESSION_OK);
  assert_int_equal(o.type, GH_AUTH_TYPE_NEGOTIATE);
  assert_string_equal(o.package, "Kerberos");
  assert_string_equal(o.local, "alice");
  assert_string_equal(o.remote, "alice@GH.TEST");
  assert_int_equal(o.issued, now);
  assert_int_equal(o.expiry, now + 3600);
  /* the plaintext is not in the cookie */
  assert_null(strstr(v1, "alice"));
  /* the longest names fit the size limit */
  memset(c.local, 'x', 255);
  c.local[255] = '\0';
  memset(c.remote, 'y', 255);
  c.remote[255] = '\0';
  seal(k, &c, v1, sizeof(v1));
  assert_true(strlen(v1) <= GH__SESSION_VALUE_MAX);
  assert_int_equal(open_at(k, v1, now, &o), GH__SESSION_OK);
  assert_int_equal(strlen(o.remote), 255);
  gh__session_keys_free(k);
}

static void test_refusals(void **state)
{
  gh__session_keys_t *k = keys(KA, NULL), *other = keys(KB, NULL);
  time_t now = time(NULL);
  gh__session_claims_t c = claims(now), o;
  char v[GH__SESSION_VALUE_MAX + 1], w[2 * GH__SESSION_VALUE_MAX];
  size_t len;

  (void)state;
  seal(k, &c, v, sizeof(v));
  len = strlen(v);
  /* tampered: one character of the ciphertext changed */
  snprintf(w, sizeof(w), "%s", v);
  w[len / 2] = w[len / 2] == 'A' ? 'B' : 'A';
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_TAMPERED);
  /* the tag's last character */
  snprintf(w, sizeof(w), "%s", v);
  w[len - 2] = w[len - 2] == 'A' ? 'Q' : 'A';
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_TAMPERED);
  /* truncated: shorter, and too short to be one */
  assert_int_not_equal(
      gh__session_open(k, "gh_session", "/app", v, len - 4, now, 8 * 3600, 1800, &o),
      GH__SESSION_OK);
  assert_int_equal(gh__session_open(k, "gh_session", "/app", v, 40, now, 8 * 3600, 1800, &o),
                   GH__SESSION_TRUNCATED);
  assert_int_equal(gh__session_open(k, "gh_session", "/app", "", 0, now, 8 * 3600, 1800, &o),
                   GH__SESSION_TRUNCATED);
  /* oversize */
  memset(w, 'A', GH__SESSION_VALUE_MAX + 1);
  w[GH__SESSION_VALUE_MAX + 1] = '\0';
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_OVERSIZE);
  /* not base64url: '=', '+', '/', a space, a length of 4n+1 */
  snprintf(w, sizeof(w), "%s", v);
  w[3] = '+';
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_BAD_BASE64);
  snprintf(w, sizeof(w), "%s=", v);
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_BAD_BASE64);
  snprintf(w, sizeof(w), "%sA", v);
  if (strlen(w) % 4 == 1)
    assert_int_equal(open_at(k, w, now, &o), GH__SESSION_BAD_BASE64);
  /* another version (the first byte) */
  snprintf(w, sizeof(w), "%s", v);
  w[0] = 'B';
  assert_int_equal(open_at(k, w, now, &o), GH__SESSION_BAD_VERSION);
  /* a key this node does not have */
  assert_int_equal(open_at(other, v, now, &o), GH__SESSION_UNKNOWN_KEY);
  /* another site's, another name's cookie: the additional data differs */
  assert_int_equal(gh__session_open(k, "gh_session", "/other", v, len, now, 8 * 3600, 1800, &o),
                   GH__SESSION_TAMPERED);
  assert_int_equal(gh__session_open(k, "other", "/app", v, len, now, 8 * 3600, 1800, &o),
                   GH__SESSION_TAMPERED);
  /* times: expired, past max_age (shortened since), idle, issued in the future */
  assert_int_equal(open_at(k, v, now + 3600, &o), GH__SESSION_EXPIRED);
  assert_int_equal(gh__session_open(k, "gh_session", "/app", v, len, now + 100, 60, 1800, &o),
                   GH__SESSION_EXPIRED);
  assert_int_equal(open_at(k, v, now + 1800, &o), GH__SESSION_IDLE);
  assert_int_equal(open_at(k, v, now - 400, &o), GH__SESSION_FUTURE);
  assert_int_equal(open_at(k, v, now + 1799, &o), GH__SESSION_OK);
  for (int i = 0; i < GH__SESSION_CAUSE_COUNT; i++)
    assert_string_not_equal(gh__session_cause_text((gh__session_cause_t)i), "unknown");
  gh__session_keys_free(k);
  gh__session_keys_free(other);
}

static void test_rotation(void **state)
{
  gh__session_keys_t *a = keys(KA, NULL), *ba = keys(KB, KA), *bc = keys(KB, KC);
  time_t now = time(NULL);
  gh__session_claims_t c = claims(now), o;
  char va[GH__SESSION_VALUE_MAX + 1], vb[GH__SESSION_VALUE_MAX + 1];

  (void)state;
  seal(a, &c, va, sizeof(va));
  /* rotated: B current, A previous: A's cookies still open */
  assert_int_equal(open_at(ba, va, now, &o), GH__SESSION_OK);
  /* new ones are sealed with B, which A alone does not know */
  seal(ba, &c, vb, sizeof(vb));
  assert_int_equal(open_at(a, vb, now, &o), GH__SESSION_UNKNOWN_KEY);
  assert_int_equal(open_at(bc, vb, now, &o), GH__SESSION_OK);
  /* A dropped from the file: its cookies are refused */
  assert_int_equal(open_at(bc, va, now, &o), GH__SESSION_UNKNOWN_KEY);
  gh__session_keys_free(a);
  gh__session_keys_free(ba);
  gh__session_keys_free(bc);
}

static char *write_file(const char *text, mode_t mode)
{
  char *path = strdup("/tmp/gh-sesskey-XXXXXX");
  int fd = mkstemp(path);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
  return path;
}

#define HEX_A "0102030405060708090a0000000000000000000000000000000000000000000"
#define HEX_B "0b0c0d0e0f101112131400000000000000000000000000000000000000000000"

static void expect_file(const char *text, mode_t mode, int want, const char *msg_part)
{
  char *p = write_file(text, mode), msg[256] = "";
  gh__session_keys_t *k = NULL;
  int ret = gh__session_keys_load(p, &k, msg, sizeof(msg));

  assert_int_equal(ret, want);
  if (msg_part && !strstr(msg, msg_part))
    fail_msg("'%s' not in '%s'", msg_part, msg);
  assert_int_equal(gh_auth_session_key_file_check(p, NULL, 0), want ? GH_ECONFIG : 0);
  gh__session_keys_free(k);
  unlink(p);
  free(p);
}

static void test_key_file(void **state)
{
  (void)state;
  expect_file(HEX_A "0\n" HEX_B "\n", 0600, 0, NULL);
  expect_file(HEX_A "0\n", 0640, 0, NULL);
  expect_file(HEX_A "0", 0400, 0, NULL);
  expect_file(HEX_A "0\n", 0644, GH_ECONFIG, "mode 0644");
  expect_file(HEX_A "0\n", 0660, GH_ECONFIG, "mode 0660");
  expect_file(HEX_A "\n", 0600, GH_ECONFIG, "line 1 is not 64 hex digits");
  expect_file(HEX_A "0\n" HEX_B "x\n", 0600, GH_ECONFIG, "line 2");
  expect_file(HEX_A "g\n", 0600, GH_ECONFIG, "line 1");
  expect_file(HEX_A "0\n" HEX_B "\n" HEX_B "\n", 0600, GH_ECONFIG, "more than two lines");
  expect_file("", 0600, GH_ECONFIG, "empty");
  expect_file("\n", 0600, GH_ECONFIG, "line 1");
  assert_int_equal(gh_auth_session_key_file_check("relative", NULL, 0), GH_ECONFIG);
  assert_int_equal(gh_auth_session_key_file_check("/nonexistent/k", NULL, 0), GH_ECONFIG);
}

static void test_key_file_reload(void **state)
{
  char *p = write_file(HEX_A "0\n", 0600), msg[256];
  gh__session_keys_t *k = NULL, *ka = keys(KA, NULL);
  time_t now = time(NULL);
  gh__session_claims_t c = claims(now), o;
  char v[GH__SESSION_VALUE_MAX + 1];
  FILE *f;

  (void)state;
  assert_int_equal(gh__session_keys_load(p, &k, msg, sizeof(msg)), 0);
  seal(k, &c, v, sizeof(v));
  assert_int_equal(open_at(ka, v, now, &o), GH__SESSION_OK); /* the file's key is KA */
  /* rotation in the file: B then A */
  f = fopen(p, "w");
  fprintf(f, "%s\n%s0\n", HEX_B, HEX_A);
  fclose(f);
  assert_int_equal(gh__session_keys_reload(k, msg, sizeof(msg)), 0);
  assert_int_equal(open_at(k, v, now, &o), GH__SESSION_OK);
  seal(k, &c, v, sizeof(v));
  assert_int_equal(open_at(ka, v, now, &o), GH__SESSION_UNKNOWN_KEY); /* sealed with B */
  /* a broken file keeps the keys */
  f = fopen(p, "w");
  fprintf(f, "junk\n");
  fclose(f);
  assert_int_equal(gh__session_keys_reload(k, msg, sizeof(msg)), GH_ECONFIG);
  assert_int_equal(open_at(k, v, now, &o), GH__SESSION_OK);
  unlink(p);
  free(p);
  gh__session_keys_free(k);
  gh__session_keys_free(ka);
}

static void test_cookie_find(void **state)
{
  const char *vals[4];
  size_t lens[4];
  const char *h = "a=1; gh_session=XY; xgh_session=no;gh_session=\"QQ\" ; gh_session ; "
                  "gh_sessionx=no; gh_session=";

  (void)state;
  assert_int_equal(gh__session_cookie_find(h, strlen(h), "gh_session", vals, lens, 4), 3);
  assert_int_equal(lens[0], 2);
  assert_memory_equal(vals[0], "XY", 2);
  assert_int_equal(lens[1], 2);
  assert_memory_equal(vals[1], "QQ", 2);
  assert_int_equal(lens[2], 0);
  assert_int_equal(gh__session_cookie_find(h, strlen(h), "gh_session", vals, lens, 1), 1);
  assert_int_equal(gh__session_cookie_find("", 0, "gh_session", vals, lens, 4), 0);
  assert_int_equal(gh__session_cookie_find(";;;", 3, "gh_session", vals, lens, 4), 0);
  /* the length bounds the scan, not a NUL */
  assert_int_equal(gh__session_cookie_find("gh_session=AB", 12, "gh_session", vals, lens, 4), 1);
  assert_int_equal(lens[0], 1);
}

/* ---- the engine's mint and use, with a fake sec layer ---- */

static int from_user_ret, from_user_calls, open_calls;
static char from_user_name[64];

static int fake_from_user(const char *user, const gh_token_opts_t *opts, gh_token_t *ret)
{
  (void)opts;
  from_user_calls++;
  snprintf(from_user_name, sizeof(from_user_name), "%s", user);
  if (from_user_ret)
    return from_user_ret;
  *ret = 42;
  return 0;
}

static int fake_close(gh_token_t t)
{
  (void)t;
  return 0;
}

static int fake_open_handle(gh_token_t t, gh_token_t *ret)
{
  open_calls++;
  *ret = t + 1000;
  return 0;
}

static void engine_init(gh__auth_engine_t *e)
{
  memset(e, 0, sizeof(*e));
  e->ops.from_user = fake_from_user;
  e->ops.close = fake_close;
  e->ops.open_handle = fake_open_handle;
  e->unmapped_user = (char *)"nobody";
}

static char *cookie_value(const char *set_cookie, char *buf, size_t len)
{
  const char *eq = strchr(set_cookie, '='), *semi = strchr(set_cookie, ';');

  assert_non_null(eq);
  assert_non_null(semi);
  snprintf(buf, len, "%.*s", (int)(semi - eq - 1), eq + 1);
  return buf;
}

static void success_record(gh__auth_result_t *r, time_t expiry)
{
  memset(r, 0, sizeof(*r));
  r->verdict = GH__AUTH_DELIVER;
  r->info.status = GH_AUTH_STATUS_SUCCESS;
  r->info.type = GH_AUTH_TYPE_NEGOTIATE;
  r->info.package_name = "Kerberos";
  r->info.local_user = "bob";
  r->info.remote_user = "bob@GH.TEST";
  r->info.expiry = expiry;
}

static void test_mint_and_use(void **state)
{
  gh__auth_engine_t e;
  gh__auth_conn_t conn;
  gh__session_keys_t *k = keys(KA, NULL);
  gh__session_site_t ss = {k, "gh_session", "/app", 8 * 3600, 1800, false, NULL};
  gh_auth_settings_t site;
  gh__auth_result_t r;
  char *sc = NULL, val[GH__SESSION_VALUE_MAX + 1];
  const char *vals[1];
  size_t lens[1];
  time_t now = time(NULL);
  gh__session_claims_t o;

  (void)state;
  engine_init(&e);
  memset(&conn, 0, sizeof(conn));
  conn.engine = &e;
  gh_auth_settings_init(&site);
  /* a ticket ending in 100 s caps the session at 100 s */
  success_record(&r, now + 100);
  gh__auth_session_mint(&e, &ss, &site, true, &r, &sc);
  assert_non_null(sc);
  assert_non_null(strstr(sc, "; Path=/app; "));
  assert_non_null(strstr(sc, "HttpOnly; SameSite=Lax; Secure"));
  assert_true(strstr(sc, "Max-Age=100;") || strstr(sc, "Max-Age=99;"));
  assert_int_equal(open_at(k, cookie_value(sc, val, sizeof(val)), now, &o), GH__SESSION_OK);
  assert_int_equal(o.expiry, now + 100);
  assert_string_equal(o.local, "bob");
  free(sc);
  sc = NULL;
  /* no ticket end: max_age; plain HTTP: no Secure */
  success_record(&r, 0);
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  assert_non_null(sc);
  assert_null(strstr(sc, "Secure"));
  assert_int_equal(open_at(k, cookie_value(sc, val, sizeof(val)), now, &o), GH__SESSION_OK);
  assert_int_equal(o.expiry, now + 8 * 3600);
  free(sc);
  sc = NULL;
  /* never for a persisted or session identity, a Peer, a failure */
  success_record(&r, 0);
  r.info.flags = GH_AUTH_FLAG_TOKEN_FOR_CACHED_CRED;
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  success_record(&r, 0);
  r.info.flags = GH_AUTH_FLAG_SESSION;
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  success_record(&r, 0);
  r.info.type = GH_AUTH_TYPE_PEER;
  r.info.package_name = "Peer";
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  success_record(&r, 0);
  r.info.status = GH_AUTH_STATUS_FAILURE;
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  /* an unmapped principal's IDENTIFY token on an allow_unmapped site */
  success_record(&r, 0);
  r.info.local_user = "nobody";
  site.allow_unmapped = true;
  gh__auth_session_mint(&e, &ss, &site, false, &r, &sc);
  assert_null(sc);

  /* use: a cookie whose last use is older than a quarter of idle is refreshed */
  gh__session_claims_t c = claims(now - 600);
  seal(k, &c, val, sizeof(val));
  vals[0] = val;
  lens[0] = strlen(val);
  memset(&r, 0, sizeof(r));
  from_user_ret = 0;
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 1);
  assert_string_equal(from_user_name, "alice");
  assert_int_equal(r.info.status, GH_AUTH_STATUS_SUCCESS);
  assert_int_equal(r.info.flags, GH_AUTH_FLAG_SESSION);
  assert_int_equal(r.info.type, GH_AUTH_TYPE_NEGOTIATE);
  assert_string_equal(r.info.package_name, "Kerberos");
  assert_string_equal(r.info.local_user, "alice");
  assert_int_equal(r.info.token, 42);
  assert_non_null(sc);
  assert_int_equal(open_at(k, cookie_value(sc, val, sizeof(val)), now, &o), GH__SESSION_OK);
  assert_true(o.last_use >= now && o.issued == now - 600 && o.expiry == now - 600 + 3600);
  free(sc);
  sc = NULL;
  gh__auth_result_done(&r);
  /* a fresh one is not re-sealed, and is remembered by the connection */
  c = claims(now);
  seal(k, &c, val, sizeof(val));
  lens[0] = strlen(val);
  memset(&r, 0, sizeof(r));
  from_user_calls = open_calls = 0;
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 1);
  assert_null(sc);
  assert_int_equal(from_user_calls, 1);
  assert_non_null(conn.session_memo);
  gh__auth_result_done(&r);
  /* the same value again on this connection: from the memo (a new handle of
   * its token), the same record, no token made */
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 1);
  assert_int_equal(from_user_calls, 1);
  assert_int_equal(open_calls, 2);
  assert_int_equal(r.info.flags, GH_AUTH_FLAG_SESSION);
  assert_string_equal(r.info.local_user, "alice");
  assert_int_equal(r.info.token, 42 + 1000 + 1000);
  gh__auth_result_done(&r);
  /* another site: not the memo's */
  gh__session_site_t other = ss;
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_session_use(&e, &conn, &other, vals, lens, 1, false, &r, &sc), 1);
  assert_int_equal(from_user_calls, 2);
  gh__auth_result_done(&r);
  gh__auth_session_memo_clear(&conn);
  assert_null(conn.session_memo);
  /* the account is gone or refused: no cookie (a new connection) */
  for (int i = 0; i < 2; i++) {
    gh__auth_session_memo_clear(&conn);
    from_user_ret = i ? GH_EUID_REFUSED : GH_ENO_SUCH_USER;
    memset(&r, 0, sizeof(r));
    assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 0);
    assert_int_equal(r.info.status, 0);
    assert_int_equal(r.info.token, 0);
  }
  /* NSS cannot answer: 503 */
  from_user_ret = -EAGAIN;
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 2);
  assert_int_equal(r.verdict, GH__AUTH_UNAVAILABLE);
  /* a tampered cookie is no cookie */
  from_user_ret = 0;
  val[10] = val[10] == 'A' ? 'B' : 'A';
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 0);
  gh__auth_session_memo_clear(&conn);
  gh__session_keys_free(k);
}

static int log_lines;
static char last_line[512];

static void count_log(void *arg, int priority, const char *msg)
{
  (void)arg;
  (void)priority;
  log_lines++;
  snprintf(last_line, sizeof(last_line), "%s", msg);
}

/* A client sending a bad cookie with every request cannot flood the log. */
static void test_refusal_lines_are_limited(void **state)
{
  gh__auth_engine_t e;
  gh__auth_conn_t conn;
  gh__session_keys_t *k = keys(KA, NULL);
  gh__session_site_t ss = {k, "gh_session", "/app", 8 * 3600, 1800, false, NULL};
  const char *vals[1] = {"AAAA"};
  size_t lens[1] = {4};
  gh__auth_result_t r;
  char *sc = NULL;
  time_t t0;

  (void)state;
  engine_init(&e);
  e.log_cb = count_log;
  memset(&conn, 0, sizeof(conn));
  conn.engine = &e;
  t0 = time(NULL);
  for (int i = 0; i < 200; i++) {
    memset(&r, 0, sizeof(r));
    assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 0);
  }
  assert_true(log_lines >= 1);
  assert_true(log_lines <= 20 * (int)(time(NULL) - t0 + 1));
  assert_non_null(strstr(last_line, "truncated"));
  /* make sure the last call was left out, then the next second's first
   * line says how many were */
  for (int i = 0, before = -1; i < 1000 && before != log_lines; i++) {
    before = log_lines;
    memset(&r, 0, sizeof(r));
    (void)gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc);
  }
  sleep(1);
  memset(&r, 0, sizeof(r));
  assert_int_equal(gh__auth_session_use(&e, &conn, &ss, vals, lens, 1, false, &r, &sc), 0);
  assert_non_null(strstr(last_line, "earlier refusals not logged"));
  gh__session_keys_free(k);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_rotation),        cmocka_unit_test(test_key_file),
      cmocka_unit_test(test_key_file_reload), cmocka_unit_test(test_cookie_find),
      cmocka_unit_test(test_mint_and_use),    cmocka_unit_test(test_refusal_lines_are_limited),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

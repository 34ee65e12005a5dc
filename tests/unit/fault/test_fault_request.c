/* test_fault_request.c: allocation-failure injection walked over a whole in-process request path (server, loopback client, tokens, impersonation, auth when built). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>
#if GH_FAULT_HAVE_AUTH
#include <gatehouse/authinfo.h>
#endif

#include "../sec/sec_fixture.h"
#include "fault_common.h"
#include "util/alloc.h"

/*
 * The walk: for N = 0, 1, 2, ... the library's allocator is told to fail
 * every allocation after the first N (gh__alloc_fail_after(N), counted over
 * all threads), then one iteration runs from scratch: server creation,
 * listeners, URL groups, start, workers, and a loopback client that sends
 * pipelined requests for alice and bob (plus a chunked POST) on TCP and,
 * when the auth engine is built, a peer-authenticated request on a Unix
 * socket from a client thread whose euid is carol's at connect(). The
 * handler makes a token (or takes the auth-info token), impersonates it,
 * reads the user's 0600 file and fails to read the other's, reverts.
 *
 * Each response must be 200 with exactly the body of the identity asked
 * for, or one of 400/500/503, or the connection closes. No hangs (client
 * timeouts), no crash (ASan/UBSan build too), no leak (LSan at exit). After
 * the failure phase the allocator is reset and a fresh connection must be
 * served correctly: a transient ENOMEM must not break the server. The walk
 * stops at the first N whose iteration never hit an injected failure.
 */

/* The body a correctly served request for `user` carries. */
static void expected_body(const char *user, char *buf, size_t len)
{
  const char *other = strcmp(user, "bob") == 0 ? "alice" : "bob";
  if (fault_have_root) {
    snprintf(buf, len, "user=%s euid=%u file=secret-of-%s %s=EACCES", user,
             (unsigned)fault_uid_of(user), user, other);
  } else {
    snprintf(buf, len, "user=%s", user);
  }
}

/* ---- the server side ---------------------------------------------------- */

static void reply(gh_request_t *req, int status, const char *body)
{
  if (gh_response_set_status(req, status, NULL) == 0)
    (void)gh_response_send(req, body, strlen(body), 0);
  (void)gh_request_complete(req);
}

/* Runs as `tok`: the euid, the user's own file, the other user's file. */
static int probe_as(gh_token_t tok, const char *user, char *body, size_t len)
{
  const char *other = strcmp(user, "bob") == 0 ? "alice" : "bob";
  char path[512], content[64] = "";
  uid_t r, e, s;
  int ret = gh_impersonate(tok);
  if (ret < 0)
    return ret;
  syscall(SYS_getresuid, &r, &e, &s);
  snprintf(path, sizeof(path), "%s/%s.txt", fault_files_dir, user);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, content, sizeof(content) - 1);
    content[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  snprintf(path, sizeof(path), "%s/%s.txt", fault_files_dir, other);
  int ofd = open(path, O_RDONLY | O_CLOEXEC);
  int oerr = ofd < 0 ? errno : 0;
  if (ofd >= 0)
    close(ofd);
  /* aborts the process if the kernel refuses: never serves as the wrong user */
  gh_revert();
  snprintf(body, len, "user=%s euid=%u file=%s %s=%s", user, (unsigned)e, content, other,
           oerr == EACCES ? "EACCES" : "OPENED");
  return 0;
}

static void handler(gh_request_t *req, void *arg)
{
  (void)arg;
  char body[256];
  const char *path = gh_request_get_path(req);
  gh_token_t tok = GH_TOKEN_NULL;
  bool own_tok = false;
  if (fault_have_root)
    gh_assert_base(); /* a worker never starts a request impersonating */
  const char *user = NULL;
  if (path != NULL && strncmp(path, "/as/", 4) == 0)
    user = path + 4;
  else if (path != NULL && strncmp(path, "/peer/", 6) == 0)
    user = path + 6;
  if (user == NULL) {
    reply(req, 400, "bad path");
    return;
  }
#if GH_FAULT_HAVE_AUTH
  const gh_auth_info_t *info = gh_request_get_auth_info(req);
  if (info != NULL) {
    /* the "/peer" group: the identity comes from the auth engine only */
    if (info->status != GH_AUTH_STATUS_SUCCESS || info->local_user == NULL ||
        strcmp(info->local_user, user) != 0) {
      /* the peer is not who the path claims: never serve it as that user */
      snprintf(body, sizeof(body), "not you: %s %s kind=%d major=%u local=%s",
               gh_auth_status_name(info->status), gh_auth_type_name(info->type),
               (int)info->sec_status.kind, (unsigned)info->sec_status.major,
               info->local_user ? info->local_user : "-");
      reply(req, 403, body);
      return;
    }
    tok = info->token;
  }
#endif
  if (!fault_have_root) {
    snprintf(body, sizeof(body), "user=%s", user);
    reply(req, 200, body);
    return;
  }
  if (tok == GH_TOKEN_NULL) {
    int rc = gh_token_from_user(user, NULL, &tok);
    if (rc < 0) {
      reply(req, rc == -ENOMEM ? 503 : 500, "no token");
      return;
    }
    own_tok = true;
  }
  if (probe_as(tok, user, body, sizeof(body)) < 0)
    reply(req, 503, "impersonation failed");
  else
    reply(req, 200, body);
  if (own_tok)
    gh_token_close(tok);
}

/* ---- the client side ---------------------------------------------------- */

/* Judges response i against who[i]; counts it. A 200 must be exactly right. */
static void judge(const resp_t *r, int i, const void *who, walk_stats_t *st, long n)
{
  const char *user = ((const char *const *)who)[i];
  char want[256];
  expected_body(user, want, sizeof(want));
  if (r->status == 200) {
    if (strcmp(r->body, want) != 0)
      fail_msg("N=%ld: request for %s served as '%s' (want '%s')", n, user, r->body, want);
    st->served_ok++;
  } else if (r->status == 400 || r->status == 500 || r->status == 503) {
    st->error_status++;
  } else {
    fail_msg("N=%ld: request for %s got status %d (%s)", n, user, r->status, r->body);
  }
}

/* Sends raw bytes, reads `want` responses and judges them against who[]. */
static void exchange(int fd, const char *raw, const char *const *who, int want, walk_stats_t *st,
                     long n)
{
  fault_exchange(fd, raw, strlen(raw), want, judge, NULL, who, st, n);
}

static void client_tcp(int port, walk_stats_t *st, long n)
{
  int fd = fault_connect_tcp(port);
  if (fd < 0) {
    st->closed++;
    return;
  }
  static const char *const who2[] = {"alice", "bob"};
  exchange(fd,
           "GET /as/alice HTTP/1.1\r\nHost: t\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
           "GET /as/bob HTTP/1.1\r\nHost: t\r\n\r\n",
           who2, 2, st, n);
  static const char *const who1[] = {"alice"};
  exchange(fd,
           "POST /as/alice HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
           who1, 1, st, n);
  close(fd);
}

#if GH_FAULT_HAVE_AUTH
/* Asks as carol on a connection made with carol's euid, then claims to be alice. */
static void client_peer(walk_stats_t *st, long n)
{
  int fd = fault_connect_peer();
  if (fd < 0) {
    st->closed++;
    return;
  }
  static const char *const who[] = {"carol"};
  walk_stats_t before = *st;
  exchange(fd, "GET /peer/carol HTTP/1.1\r\nHost: t\r\n\r\n", who, 1, st, n);
  if (getenv("GH_FAULT_DEBUG"))
    fprintf(stderr, "peer N=%ld: first exchange ok+%ld err+%ld closed+%ld\n", n,
            st->served_ok - before.served_ok, st->error_status - before.error_status,
            st->closed - before.closed);
  /* claiming another identity on carol's connection must never be served */
  resp_t r;
  bool eof = false, timeout = false;
  static const char claim[] = "GET /peer/alice HTTP/1.1\r\nHost: t\r\n\r\n";
  if (send(fd, claim, sizeof(claim) - 1, MSG_NOSIGNAL) > 0 &&
      fault_read_responses(fd, &r, 1, &eof, &timeout) == 1) {
    if (r.status == 200)
      fail_msg("N=%ld: carol's peer connection was served as alice: %s", n, r.body);
  } else if (timeout) {
    fail_msg("N=%ld: peer connection hung", n);
  }
  close(fd);
}
#endif

/* ---- one iteration ------------------------------------------------------ */

static int add_groups(gh_server_t *srv)
{
  int rc = gh_server_add_url_group(srv, "/", NULL, NULL, NULL);
  gh_url_group_t *g = NULL;
  if (rc == 0)
    rc = gh_server_add_url_group(srv, "/as", NULL, NULL, NULL);
  if (rc == 0)
    rc = gh_server_add_url_group(srv, "/peer", NULL, NULL, &g);
#if GH_FAULT_HAVE_AUTH
  if (rc == 0 && fault_have_root) {
    gh_auth_config_t ac;
    gh_auth_config_init(&ac);
    rc = gh_server_enable_auth(srv, &ac, NULL, 0);
    gh_auth_settings_t as;
    gh_auth_settings_init(&as);
    as.schemes = GH_AUTH_SCHEME_PEER;
    if (rc == 0)
      rc = gh_url_group_set_auth(g, &as);
  }
#endif
  return rc;
}

/* One round: pipelined and chunked requests on TCP, peer auth on Unix. */
static void clients(int port, walk_stats_t *st, long n)
{
  client_tcp(port, st, n);
#if GH_FAULT_HAVE_AUTH
  if (fault_have_root)
    client_peer(st, n);
#endif
}

static long recover_want(void)
{
#if GH_FAULT_HAVE_AUTH
  if (fault_have_root)
    return 4;
#endif
  return 3;
}

static const fault_walk_t walk = {
  .add_groups = add_groups,
  .handler = handler,
  .clients = clients,
  .recover_want = recover_want,
};

static const fault_walk_t walk_alone = {
  .add_groups = add_groups,
  .handler = handler,
  .clients = clients,
  .recover_want = recover_want,
  .alone = true,
};

static void request_walk(bool once, const fault_walk_t *w)
{
  walk_stats_t st = {0};
  long n = fault_walk(w, once, &st);
  printf("# request walk (%s failure%s): N=0..%ld (%ld iterations): set-up refused %ld, served ok %ld, "
         "error status %ld, closed %ld, recovered %ld%s\n",
         once ? "one-shot" : "persistent", w->alone ? ", served alone" : "", n, st.iterations,
         st.setup_failed, st.served_ok, st.error_status, st.closed,
         st.recovered,
#if GH_FAULT_HAVE_AUTH
         fault_have_root ? " (auth: peer on unix)" : " (auth skipped: not root)"
#else
         " (auth engine not wired in this build)"
#endif
  );
  assert_true(st.served_ok > 0);
}

/* Every allocation from the Nth on fails: the server must degrade cleanly. */
static void test_request_walk_persistent(void **state)
{
  (void)state;
  request_walk(false, &walk);
}

/* Only the Nth allocation fails: the rest of the request must go on or end
 * cleanly, and later requests on the same connection be right. */
static void test_request_walk_one_shot(void **state)
{
  (void)state;
  request_walk(true, &walk);
}

/* The same walks with the server served alone (gh_server_serve) on the
 * walk's thread: its set-up, accept and scan on one thread. */
static void test_request_walk_alone_persistent(void **state)
{
  (void)state;
  request_walk(false, &walk_alone);
}

static void test_request_walk_alone_one_shot(void **state)
{
  (void)state;
  request_walk(true, &walk_alone);
}

/* The sec layer alone: token construction, duplication, borrowing and
 * impersonation with every allocation after the Nth failing. */
static void test_token_walk(void **state)
{
  (void)state;
  if (!fault_have_root) {
    skip();
    return;
  }
  long n;
  for (n = 0; n < MAX_N; n++) {
    gh__alloc_fail_after(n);
    gh_token_t t = GH_TOKEN_NULL, d = GH_TOKEN_NULL, b = GH_TOKEN_NULL;
    int rc = gh_token_from_user("alice", NULL, &t);
    if (rc == 0)
      rc = gh_token_duplicate(t, GH_LEVEL_IMPERSONATE, GH_TOKEN_PRIMARY, &d);
    if (rc == 0)
      rc = gh_token_borrow(d, &b);
    if (rc == 0) {
      char body[256], want[256];
      rc = probe_as(b, "alice", body, sizeof(body));
      expected_body("alice", want, sizeof(want));
      if (rc == 0 && strcmp(body, want) != 0)
        fail_msg("N=%ld: token walk ran as '%s'", n, body);
    }
    if (rc != 0 && rc != -ENOMEM)
      fail_msg("N=%ld: token path failed with %d (%s), not -ENOMEM", n, rc, gh_strerror(rc));
    gh_assert_base();
    bool clean = gh__alloc_injected() == 0;
    gh__alloc_fail_after(-1);
    if (d != GH_TOKEN_NULL)
      assert_int_equal(gh_token_close(d), 0);
    if (t != GH_TOKEN_NULL)
      assert_int_equal(gh_token_close(t), 0);
    if (b != GH_TOKEN_NULL)
      assert_int_equal(gh_token_close(b), GH_EINVALID_HANDLE);
    if (clean)
      break;
  }
  printf("# token walk: N=0..%ld\n", n);
  assert_true(n < MAX_N);
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  if (fault_setup() != 0)
    return 99;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_token_walk),
    cmocka_unit_test(test_request_walk_persistent),
    cmocka_unit_test(test_request_walk_one_shot),
    cmocka_unit_test(test_request_walk_alone_persistent),
    cmocka_unit_test(test_request_walk_alone_one_shot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

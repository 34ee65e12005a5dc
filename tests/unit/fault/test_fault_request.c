/* test_fault_request.c: allocation-failure injection walked over a whole in-process request path (server, loopback client, tokens, impersonation, auth when built). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>
#if GH_FAULT_HAVE_AUTH
#include <gatehouse/authinfo.h>
#endif

#include "../sec/sec_fixture.h"
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

#define CLIENT_TIMEOUT_MS 3000
#define MAX_N 20000

typedef struct walk_stats {
  long iterations;
  long setup_failed;  /* the server API refused cleanly (-ENOMEM) before serving */
  long served_ok;     /* 200 with the right identity */
  long error_status;  /* 400/500/503 */
  long closed;        /* connection closed before a full response */
  long recovered;     /* post-failure request served correctly */
} walk_stats_t;

static bool have_root;
static char unix_path[100];

/* ---- fixture files: /<dir>/files/<user>.txt 0600 owned by the user ---- */

static const struct { const char *name; uid_t uid; gid_t gid; } users[] = {
  {"alice", U_ALICE, G_ALICE},
  {"bob", U_BOB, G_BOB},
  {"carol", U_CAROL, G_CAROL},
};

static void make_files(void)
{
  char path[512];
  snprintf(path, sizeof(path), "%s/files", fx_dir());
  mkdir(path, 0755);
  for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
    snprintf(path, sizeof(path), "%s/files/%s.txt", fx_dir(), users[i].name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dprintf(fd, "secret-of-%s", users[i].name) < 0) {
      perror("fault: fixture file");
      exit(99);
    }
    if (fchown(fd, users[i].uid, users[i].gid) != 0 && have_root) {
      perror("fault: chown");
      exit(99);
    }
    close(fd);
  }
}

/* The body a correctly served request for `user` carries. */
static void expected_body(const char *user, char *buf, size_t len)
{
  const char *other = strcmp(user, "bob") == 0 ? "alice" : "bob";
  if (have_root) {
    uid_t uid = 0;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
      if (strcmp(users[i].name, user) == 0)
        uid = users[i].uid;
    snprintf(buf, len, "user=%s euid=%u file=secret-of-%s %s=EACCES", user, (unsigned)uid, user,
             other);
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
  snprintf(path, sizeof(path), "%s/files/%s.txt", fx_dir(), user);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, content, sizeof(content) - 1);
    content[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  snprintf(path, sizeof(path), "%s/files/%s.txt", fx_dir(), other);
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
  if (have_root)
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
  if (!have_root) {
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

typedef struct resp {
  int status;
  char body[256];
} resp_t;

/* Reads from fd until want responses were parsed, EOF, or the deadline.
 * Returns the number of complete responses; *ret_eof tells whether the
 * server closed; *ret_timeout whether the deadline passed first. */
static int read_responses(int fd, resp_t *out, int want, bool *ret_eof, bool *ret_timeout)
{
  static __thread char buf[65536];
  size_t len = 0;
  int got = 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  *ret_eof = *ret_timeout = false;
  while (got < want) {
    /* parse what we have */
    for (;;) {
      buf[len] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (end == NULL)
        break;
      int status = 0;
      if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        fail_msg("unparsable response: %.80s", buf);
      size_t clen = 0;
      char *cl = strcasestr(buf, "\r\nContent-Length:");
      if (cl == NULL || cl > end)
        fail_msg("response without Content-Length: %.200s", buf);
      clen = strtoul(cl + 17, NULL, 10);
      size_t head = (size_t)(end + 4 - buf);
      if (len < head + clen)
        break;
      out[got].status = status;
      snprintf(out[got].body, sizeof(out[got].body), "%.*s", (int)clen, end + 4);
      got++;
      memmove(buf, buf + head + clen, len - head - clen);
      len -= head + clen;
      if (got == want)
        break;
    }
    if (got == want)
      break;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long left = CLIENT_TIMEOUT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
      *ret_timeout = true;
      break;
    }
    ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (n <= 0) {
      *ret_eof = true;
      break;
    }
    len += (size_t)n;
  }
  return got;
}

static int connect_tcp(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* Judges one response for `user`; counts it. A 200 must be exactly right. */
static void judge(const resp_t *r, const char *user, walk_stats_t *st, long n)
{
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

/* Sends raw bytes, reads `want` responses and judges them against users[]. */
static void exchange(int fd, const char *raw, const char *const *who, int want, walk_stats_t *st,
                     long n)
{
  resp_t rs[8];
  bool eof = false, timeout = false;
  if (send(fd, raw, strlen(raw), MSG_NOSIGNAL) < 0) {
    st->closed++;
    return;
  }
  int got = read_responses(fd, rs, want, &eof, &timeout);
  for (int i = 0; i < got; i++)
    judge(&rs[i], who[i], st, n);
  if (got < want) {
    if (timeout)
      fail_msg("N=%ld: no response and no close within %d ms (%d of %d responses)", n,
               CLIENT_TIMEOUT_MS, got, want);
    st->closed++;
  }
}

static void client_tcp(int port, walk_stats_t *st, long n)
{
  int fd = connect_tcp(port);
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
/* Connects to the Unix listener with carol's euid (SO_PEERCRED records the
 * connecting thread's credentials) and asks as carol, then claims to be alice. */
static void *peer_thread(void *arg)
{
  long *res = arg;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", unix_path);
  if (syscall(SYS_setresgid, -1, G_CAROL, -1) != 0 || syscall(SYS_setresuid, -1, U_CAROL, -1) != 0)
    abort();
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  if (syscall(SYS_setresuid, -1, 0, -1) != 0 || syscall(SYS_setresgid, -1, 0, -1) != 0)
    abort();
  res[0] = rc == 0 ? fd : -1;
  if (rc != 0)
    close(fd);
  return NULL;
}

static void client_peer(walk_stats_t *st, long n)
{
  long res[1] = {-1};
  pthread_t t;
  if (pthread_create(&t, NULL, peer_thread, res) != 0)
    fail_msg("pthread_create");
  pthread_join(t, NULL);
  int fd = (int)res[0];
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
      read_responses(fd, &r, 1, &eof, &timeout) == 1) {
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
  if (rc == 0 && have_root) {
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

/* Returns true when the iteration ran without any injected failure. */
static bool run_once(long n, bool once, walk_stats_t *st)
{
  gh_server_t *srv = NULL;
  gh_server_config_t cfg;
  bool started = false, clean;
  int port = 0, rc;
  gh_server_config_init(&cfg);
  cfg.header_timeout_ms = 2000;

  st->iterations++;
  if (once)
    gh__alloc_fail_once_after(n);
  else
    gh__alloc_fail_after(n);
  rc = gh_server_new(&cfg, &srv);
  if (rc == 0)
    rc = gh_server_add_listener(srv, "127.0.0.1:0");
  if (rc == 0 && have_root) {
    char addr[160];
    snprintf(addr, sizeof(addr), "unix:%s", unix_path);
    rc = gh_server_add_listener(srv, addr);
  }
  if (rc == 0)
    rc = add_groups(srv);
  if (rc == 0 && (rc = gh_server_start(srv)) == 0)
    started = true;
  if (rc == 0)
    rc = gh_server_run_workers(srv, 2, handler, NULL);
  if (rc == 0) {
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    client_tcp(port, st, n);
#if GH_FAULT_HAVE_AUTH
    if (have_root)
      client_peer(st, n);
#endif
  } else {
    if (rc != -ENOMEM)
      fail_msg("N=%ld: set-up failed with %d (%s), not -ENOMEM", n, rc, gh_strerror(rc));
    st->setup_failed++;
  }
  clean = gh__alloc_injected() == 0;
  gh__alloc_fail_after(-1);

  if (port != 0) {
    /* the failures are over: a fresh connection must be served correctly */
    walk_stats_t r = {0};
    long want = 3;
    client_tcp(port, &r, n);
#if GH_FAULT_HAVE_AUTH
    if (have_root) {
      client_peer(&r, n);
      want++;
    }
#endif
    if (r.served_ok != want)
      fail_msg("N=%ld: server did not recover after the failures (%ld ok, %ld errors, %ld closed)",
               n, r.served_ok, r.error_status, r.closed);
    st->recovered++;
  }
  if (srv != NULL) {
    if (started)
      gh_server_shutdown(srv, 2000);
    gh_server_free(srv);
  }
  if (have_root)
    gh_assert_base();
  return clean;
}

static void request_walk(bool once)
{
  walk_stats_t st = {0};
  long n;
  const char *lim = getenv("GH_FAULT_MAX_N");
  long max_n = lim ? atol(lim) : MAX_N;
  const char *first = getenv("GH_FAULT_START_N"); /* debugging aid */
  for (n = first ? atol(first) : 0; n < max_n; n++)
    if (run_once(n, once, &st))
      break;
  if (n >= max_n)
    fail_msg("no clean pass within N < %ld", max_n);
  printf("# request walk (%s failure): N=0..%ld (%ld iterations): set-up refused %ld, served ok %ld, "
         "error status %ld, closed %ld, recovered %ld%s\n",
         once ? "one-shot" : "persistent", n, st.iterations, st.setup_failed, st.served_ok, st.error_status, st.closed,
         st.recovered,
#if GH_FAULT_HAVE_AUTH
         have_root ? " (auth: peer on unix)" : " (auth skipped: not root)"
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
  request_walk(false);
}

/* Only the Nth allocation fails: the rest of the request must go on or end
 * cleanly, and later requests on the same connection be right. */
static void test_request_walk_one_shot(void **state)
{
  (void)state;
  request_walk(true);
}

/* The sec layer alone: token construction, duplication, borrowing and
 * impersonation with every allocation after the Nth failing. */
static void test_token_walk(void **state)
{
  (void)state;
  if (!have_root) {
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
  have_root = fx_root();
  if (snprintf(unix_path, sizeof(unix_path), "%s/gh.sock", fx_dir()) >= (int)sizeof(unix_path))
    return 99;
  make_files();
  if (have_root) {
    gh_sec_config_t sc = {.min_uid = 1000, .group_cache_ttl_s = 0};
    if (gh_sec_init(&sc) != 0) {
      fprintf(stderr, "gh_sec_init failed\n");
      return 99;
    }
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_token_walk),
    cmocka_unit_test(test_request_walk_persistent),
    cmocka_unit_test(test_request_walk_one_shot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

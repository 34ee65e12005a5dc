/* test_auth_http.c: the auth engine wired into an in-process server — records per group, Unix peers, token ownership (item 11), 401 challenge lists, gate answers, the self-test and ccache_dir check entry points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

/*
 * Needs root (peer clients run as uid 20001 in a forked child, the sec
 * layer's tokens); skips otherwise. No realm: Peer and the Basic challenge
 * list need neither a KDC nor PAM.
 */

#define PEER_UID 20001
#define PEER_GID 30001

typedef struct fixture {
  gh_server_t *srv;
  gh_url_group_t *root, *open;
  char path[64];
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof(*f));
  gh_auth_config_t ac;
  gh_auth_settings_t as;
  char err[256], addr[96];

  assert_non_null(f);
  assert_int_equal(gh_server_new(NULL, &f->srv), 0);
  snprintf(f->path, sizeof(f->path), "/tmp/gh-test-auth-http-%d.sock", (int)getpid());
  snprintf(addr, sizeof(addr), "unix:%s", f->path);
  assert_int_equal(gh_server_add_listener(f->srv, addr), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/", NULL, NULL, &f->root), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/open", NULL, NULL, &f->open), 0);
  gh_auth_settings_init(&as);
  as.schemes = GH_AUTH_SCHEME_PEER | GH_AUTH_SCHEME_BASIC;
  as.realm = "unit \"test\"";
  /* groups need the engine first */
  assert_int_equal(gh_url_group_set_auth(f->root, &as), GH_ESTATE);
  gh_auth_config_init(&ac);
  assert_int_equal(gh_server_enable_auth(f->srv, &ac, err, sizeof(err)), 0);
  assert_int_equal(gh_server_enable_auth(f->srv, &ac, err, sizeof(err)), GH_EEXISTS);
  assert_int_equal(gh_url_group_set_auth(f->root, &as), 0);
  assert_ptr_equal(gh_url_group_get_auth(f->open), NULL);
  assert_int_equal(gh_url_group_get_auth(f->root)->schemes, as.schemes);
  assert_string_equal(gh_url_group_get_auth(f->root)->realm, "unit \"test\"");
  assert_int_equal(gh_server_start(f->srv), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  gh_server_shutdown(f->srv, 1000);
  gh_server_free(f->srv);
  unlink(f->path);
  free(f);
  return 0;
}

/* A child at PEER_UID sends `reqs` (raw bytes) and writes what it reads to
 * the pipe; returns its pid and the read end. */
static pid_t peer_client(fixture_t *f, const char *reqs, int *ret_rd)
{
  int p[2];
  pid_t pid;

  assert_int_equal(pipe(p), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char buf[8192];
    ssize_t n;
    int s;
    close(p[0]);
    gid_t g = PEER_GID;
    if (setgroups(1, &g) != 0 || setresgid(PEER_GID, PEER_GID, PEER_GID) != 0 ||
        setresuid(PEER_UID, PEER_UID, PEER_UID) != 0)
      _exit(3);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
      _exit(4);
    if (write(s, reqs, strlen(reqs)) != (ssize_t)strlen(reqs))
      _exit(5);
    shutdown(s, SHUT_WR);
    while ((n = read(s, buf, sizeof(buf))) > 0)
      if (write(p[1], buf, (size_t)n) != n)
        _exit(6);
    _exit(0);
  }
  close(p[1]);
  *ret_rd = p[0];
  return pid;
}

static char *drain(int fd, pid_t pid)
{
  size_t cap = 65536, len = 0;
  char *out = calloc(1, cap);
  ssize_t n;
  int status = 0;

  while ((n = read(fd, out + len, cap - len - 1)) > 0)
    len += (size_t)n;
  close(fd);
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return out;
}

static gh_request_t *receive(fixture_t *f)
{
  gh_request_t *req = NULL;
  assert_int_equal(gh_server_receive(f->srv, 5000, &req), 0);
  return req;
}

/* item 1 + peer: the record on an auth group; none on a group without */
static void test_peer_record(void **state)
{
  fixture_t *f = *state;
  int rd;
  pid_t pid = peer_client(f,
                          "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          &rd);
  gh_request_t *req = receive(f);
  const gh_auth_info_t *ai = gh_request_get_auth_info(req);
  uid_t uid = 0;

  assert_non_null(ai);
  assert_int_equal(ai->status, GH_AUTH_STATUS_SUCCESS);
  assert_int_equal(ai->type, GH_AUTH_TYPE_PEER);
  assert_string_equal(ai->package_name, "Peer");
  assert_int_equal(gh_token_get_uid(ai->token, &uid), 0);
  assert_int_equal(uid, PEER_UID);
  gh_response_send(req, "a", 1, 0);
  gh_request_complete(req);

  req = receive(f);
  assert_null(gh_request_get_auth_info(req));
  gh_response_send(req, "b", 1, 0);
  gh_request_complete(req);
  free(drain(rd, pid));
}

/* item 11: closed once by the receiver; a second close is an invalid
 * handle; a token left open is closed when the request completes */
static void test_token_ownership(void **state)
{
  fixture_t *f = *state;
  int rd;
  pid_t pid = peer_client(f,
                          "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          &rd);
  gh_request_t *req = receive(f);
  const gh_auth_info_t *ai = gh_request_get_auth_info(req);
  gh_token_t kept;

  assert_int_equal(gh_token_close(ai->token), 0);
  assert_int_equal(gh_token_close(ai->token), GH_EINVALID_HANDLE);
  gh_response_send(req, "a", 1, 0);
  assert_int_equal(gh_request_complete(req), 0); /* no double close, no crash */

  req = receive(f);
  ai = gh_request_get_auth_info(req);
  kept = ai->token;
  uid_t uid;
  assert_int_equal(gh_token_get_uid(kept, &uid), 0);
  gh_response_send(req, "b", 1, 0);
  gh_request_complete(req);
  assert_int_equal(gh_token_get_uid(kept, &uid), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_close(kept), GH_EINVALID_HANDLE);
  free(drain(rd, pid));
}

/* item 2: a 401 from the application gets the site's challenge list; one
 * with its own WWW-Authenticate is left alone */
static void test_401_challenges(void **state)
{
  fixture_t *f = *state;
  int rd;
  pid_t pid = peer_client(f,
                          "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          &rd);
  gh_request_t *req = receive(f);
  gh_response_set_status(req, 401, NULL);
  gh_response_send(req, "no", 2, 0);
  gh_request_complete(req);

  req = receive(f);
  gh_response_set_status(req, 401, NULL);
  gh_response_set_header(req, "WWW-Authenticate", "Custom x");
  gh_response_send(req, "no", 2, 0);
  gh_request_complete(req);

  req = receive(f);
  gh_response_set_status(req, 401, NULL);
  assert_int_equal(gh_response_add_auth_challenges(req), GH_ENOT_FOUND);
  gh_response_send(req, "no", 2, 0);
  gh_request_complete(req);

  char *out = drain(rd, pid);
  char *second = strstr(out + 1, "HTTP/1.1 401");
  assert_non_null(second);
  char *third = strstr(second + 1, "HTTP/1.1 401");
  assert_non_null(third);
  /* first: Basic only (Peer needs no header and is never listed) */
  char *b = strstr(out, "WWW-Authenticate: Basic realm=\"unit \\\"test\\\"\", charset=\"UTF-8\"\r\n");
  assert_true(b != NULL && b < second);
  /* second: the application's own */
  char *c = strstr(second, "WWW-Authenticate: ");
  assert_true(c != NULL && c < third && strncmp(c, "WWW-Authenticate: Custom x\r\n", 28) == 0);
  char *dup = strstr(c + 1, "WWW-Authenticate: Basic");
  assert_true(dup == NULL || dup > third);
  /* third: a group without auth gets nothing */
  assert_null(strstr(third, "WWW-Authenticate"));
  free(out);
}

/* item 4: the gate answers malformed headers itself; the application only
 * sees the next, good request on the same connection */
static void test_gate_answers_bad_requests(void **state)
{
  fixture_t *f = *state;
  int rd;
  pid_t pid = peer_client(f,
                          "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9v\r\n\r\n"
                          "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zg=\r\n\r\n"
                          "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n"
                          "GET /good HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          &rd);
  gh_request_t *req = receive(f);
  assert_string_equal(gh_request_get_path(req), "/good");
  assert_int_equal(gh_request_get_auth_info(req)->type, GH_AUTH_TYPE_PEER);
  gh_response_send(req, "ok", 2, 0);
  gh_request_complete(req);
  char *out = drain(rd, pid);
  int n400 = 0;
  for (char *p = out; (p = strstr(p, "HTTP/1.1 400")) != NULL; p++)
    n400++;
  assert_int_equal(n400, 3);
  assert_non_null(strstr(out, "HTTP/1.1 200"));
  free(out);
}

/* gh_server_auth_selftest: the gate's verdicts as return codes (the
 * Kerberos SUCCESS path needs a KDC: test_daemon_doctor.py) */
static void test_selftest_verdicts(void **state)
{
  fixture_t *f = *state;
  gh_auth_settings_t as;
  gh_auth_selftest_t res;
  gh_server_t *bare = NULL;

  gh_auth_settings_init(&as);
  as.schemes = GH_AUTH_SCHEME_BASIC | GH_AUTH_SCHEME_NEGOTIATE;
  as.basic_over_plain_http = true;
  assert_int_equal(gh_server_auth_selftest(NULL, &as, "Basic Zm9v", &res), -EINVAL);
  assert_int_equal(gh_server_auth_selftest(f->srv, NULL, "Basic Zm9v", &res), -EINVAL);
  assert_int_equal(gh_server_auth_selftest(f->srv, &as, NULL, &res), -EINVAL);
  assert_int_equal(gh_server_new(NULL, &bare), 0);
  assert_int_equal(gh_server_auth_selftest(bare, &as, "Basic Zm9v", &res), GH_ESTATE);
  gh_server_free(bare);
  /* 400: a malformed header */
  memset(&res, 0x5a, sizeof(res));
  assert_int_equal(gh_server_auth_selftest(f->srv, &as, "Basic Zg=", &res), GH_EPARSE);
  assert_int_equal(((unsigned char *)&res)[0], 0x5a); /* written only on success */
  /* 503: Negotiate on an engine without keytab or NTLM has no credential */
  assert_int_equal(gh_server_auth_selftest(f->srv, &as, "Negotiate YIIBAA==", &res),
                   GH_EAUTH_INTERNAL);
}

/* gh_auth_check_ccache_dir: the engine's rules, changing nothing */
static void test_check_ccache_dir(void **state)
{
  char base[64], p[128], msg[512];
  struct stat st;

  (void)state;
  snprintf(base, sizeof(base), "/tmp/gh-test-ccdir-%d", (int)getpid());
  assert_int_equal(mkdir(base, 0755), 0);
  snprintf(p, sizeof(p), "%s/missing", base);
  assert_int_equal(gh_auth_check_ccache_dir(p, msg, sizeof(msg)), 0);
  assert_non_null(strstr(msg, "missing; created with mode 1733 at start"));
  assert_int_not_equal(lstat(p, &st), 0); /* not created */
  assert_int_equal(mkdir(p, 0700), 0);
  assert_int_equal(gh_auth_check_ccache_dir(p, msg, sizeof(msg)), 0);
  assert_non_null(strstr(msg, "mode 0700: set to 1733 at start"));
  assert_int_equal(lstat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700); /* not changed */
  assert_int_equal(chmod(p, 01733), 0);
  assert_int_equal(gh_auth_check_ccache_dir(p, msg, sizeof(msg)), 0);
  assert_string_equal(msg, "");
  assert_int_equal(chmod(p, 0777), 0);
  assert_int_equal(gh_auth_check_ccache_dir(p, msg, sizeof(msg)), GH_ECONFIG);
  assert_non_null(strstr(msg, "without the sticky bit"));
  assert_int_equal(chmod(p, 01733), 0);
  assert_int_equal(chown(p, PEER_UID, PEER_GID), 0);
  assert_int_equal(gh_auth_check_ccache_dir(p, msg, sizeof(msg)), GH_ECONFIG);
  assert_non_null(strstr(msg, "owned by uid 20001"));
  char link[160];
  snprintf(link, sizeof(link), "%s/link", base);
  assert_int_equal(symlink(p, link), 0);
  assert_int_equal(gh_auth_check_ccache_dir(link, msg, sizeof(msg)), GH_ECONFIG);
  assert_non_null(strstr(msg, "symlinks are refused"));
  /* root's 0755 seen by a service user: safe but unusable (1) */
  char rootdir[160];
  snprintf(rootdir, sizeof(rootdir), "%s/root", base);
  assert_int_equal(mkdir(rootdir, 0755), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setresuid(PEER_UID, PEER_UID, PEER_UID) != 0)
      _exit(9);
    _exit(gh_auth_check_ccache_dir(rootdir, msg, sizeof(msg)) == 1 &&
                  strstr(msg, "make it mode 1733") != NULL
              ? 0
              : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unlink(link);
  rmdir(rootdir);
  rmdir(p);
  rmdir(base);
}

/* gh_url_group_set_auth_session: order, checks, the key file, replacing
 * the auth settings turns it off. */
static void test_session_setter(void **state)
{
  gh_server_t *srv = NULL;
  gh_url_group_t *g = NULL, *g2 = NULL;
  gh_auth_config_t ac;
  gh_auth_settings_t as;
  gh_auth_session_settings_t ss;
  char err[256], kf[] = "/tmp/gh-test-sesskey-XXXXXX";
  int fd = mkstemp(kf);

  (void)state;
  assert_true(fd >= 0);
  assert_int_equal(
      write(fd, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 65), 65);
  fchmod(fd, 0600);
  close(fd);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/app", NULL, NULL, &g), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/b", NULL, NULL, &g2), 0);
  gh_auth_config_init(&ac);
  assert_int_equal(gh_server_enable_auth(srv, &ac, err, sizeof(err)), 0);
  gh_auth_session_settings_init(&ss);
  ss.key_file = kf;
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), GH_ESTATE); /* no auth settings */
  gh_auth_settings_init(&as);
  as.schemes = GH_AUTH_SCHEME_BASIC;
  assert_int_equal(gh_url_group_set_auth(g, &as), 0);
  assert_int_equal(gh_url_group_set_auth(g2, &as), 0);
  assert_int_equal(gh_url_group_set_auth_session(NULL, &ss), -EINVAL);
  ss.cookie = "a;b";
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), -EINVAL);
  ss.cookie = NULL;
  ss.logout = "logout";
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), -EINVAL);
  ss.logout = "/app/logout";
  ss.key_file = NULL;
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), -EINVAL);
  ss.key_file = "/nonexistent/key";
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), GH_ECONFIG);
  ss.key_file = kf;
  assert_int_equal(gh_url_group_set_auth_session(g, &ss), 0);
  assert_int_equal(gh_url_group_set_auth_session(g2, &ss), 0); /* the same file, read once */
  assert_int_equal(gh_server_reload_session_keys(srv, err, sizeof(err)), 0);
  assert_non_null(strstr(err, "re-read from 1 file"));
  chmod(kf, 0644); /* a reload that cannot take the file keeps the keys */
  assert_int_equal(gh_server_reload_session_keys(srv, err, sizeof(err)), GH_ECONFIG);
  assert_non_null(strstr(err, "its keys are kept"));
  assert_int_equal(gh_url_group_set_auth(g, &as), 0); /* replaced: sessions off */
  gh_server_free(srv);
  unlink(kf);
}

int main(void)
{
  if (geteuid() != 0) {
    printf("1..0 # SKIP needs root (peer clients at uid %d, sec layer)\n", PEER_UID);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  gh_sec_config_t sc = { .min_uid = 1000 };
  if (gh_sec_init(&sc) != 0) {
    printf("1..0 # SKIP gh_sec_init failed\n");
    return 0;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_peer_record),
    cmocka_unit_test(test_token_ownership),
    cmocka_unit_test(test_401_challenges),
    cmocka_unit_test(test_gate_answers_bad_requests),
    cmocka_unit_test(test_selftest_verdicts),
    cmocka_unit_test(test_check_ccache_dir),
    cmocka_unit_test(test_session_setter),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

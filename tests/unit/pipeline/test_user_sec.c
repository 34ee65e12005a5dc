/* test_user_sec.c: the user object over the real sec layer: borrowed tokens (item 12), is_in_role,
 * impersonation. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/module.h>
#include <gatehouse/token.h>

#include "pl_fake.h"
#include "sec_fixture.h"

static gh_token_t server_token;
static gh_token_t seen_borrowed;
static uid_t euid_in_handler;

static gh_request_status_t on_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_user_t *u = gh_http_context_get_user(ctx);
  gh_token_t t = gh_http_user_get_impersonation_token(u);
  uid_t uid = 0;
  gh_membership_t in = GH_MEMBER_UNKNOWN;
  (void)m;
  (void)p;
  euid_in_handler = geteuid();
  assert_true(t != 0);
  assert_true(t != server_token);
  /* the module "closes" what it was handed, like IIS code calling CloseHandle */
  assert_int_equal(gh_token_close(t), GH_EBORROWED);
  assert_int_equal(gh_token_close(gh_http_user_get_primary_token(u)), GH_EBORROWED);
  /* the server's token is intact */
  assert_int_equal(gh_token_get_uid(server_token, &uid), 0);
  assert_int_equal(uid, U_ALICE);
  assert_int_equal(gh_http_user_get_impersonation_token(u), t);
  /* the handler impersonates alice: names still resolve (at base) */
  assert_int_equal(gh_http_user_is_in_role(u, "shared", &in), 0);
  assert_int_equal(in, GH_MEMBER_YES);
  assert_int_equal(gh_http_user_is_in_role(u, "proj", &in), 0);
  assert_int_equal(in, GH_MEMBER_NO);
  assert_int_equal(gh_http_user_is_in_role(u, "no-such-group", &in), GH_MEMBER_NO_SUCH_GROUP);
  assert_int_equal(in, GH_MEMBER_NO);
  assert_int_equal(geteuid(), euid_in_handler);
  seen_borrowed = t;
  return GH_REQUEST_CONTINUE;
}

static int reg(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_exec};
  (void)v;
  (void)s;
  return gh_module_registration_set_factory(r, &f);
}

static void test_borrowed_tokens_and_impersonation(void **state)
{
  static const char *const kv[] = {"impersonate", "yes", NULL};
  gh_token_opts_t o = {.level = GH_LEVEL_IMPERSONATE,
                       .source = GH_SOURCE_KERBEROS,
                       .auth_name = "alice@EXAMPLE.ORG"};
  gh_pipeline_t *pl = fake_pipeline(kv);
  gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "t"};
  fake_req_t r;
  uint64_t id;
  (void)state;
  gh__pipeline_set_sec_ops(pl, NULL); /* the real sec layer */
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg, NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  assert_int_equal(gh_token_from_user("alice", &o, &server_token), 0);
  fake_req_init(&r, "GET", "/x");
  fake_req_auth(&r);
  r.auth.token = server_token;
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  assert_int_equal(r.status, 200);
  if (fx_root())
    assert_int_equal(euid_in_handler, U_ALICE); /* impersonate = yes */
  assert_false(gh_is_impersonating());
  assert_int_equal(geteuid(), getuid());
  /* the pipeline closed the server's token at request end: exactly once */
  assert_int_equal(gh_token_close(server_token), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_get_id(seen_borrowed, &id), GH_EINVALID_HANDLE);
  gh_pipeline_free(pl);
}

/* ---- token variables: the token's own text, never another's ---- */

static char vars_seen[5][64]; /* uid, gid, level, groups, "mark" of the last request */
static gh_http_user_t *vars_kept;
static bool vars_keep; /* the module keeps the next request's user */

static gh_request_status_t on_exec_vars(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  static const char *const names[4] = {"uid", "gid", "level", "groups"};
  gh_http_user_t *u = gh_http_context_get_user(ctx);
  (void)m;
  (void)p;
  for (size_t i = 0; i < 4; i++) {
    const char *v = gh_http_user_get_variable(u, names[i]);
    snprintf(vars_seen[i], sizeof(vars_seen[i]), "%s", v ? v : "(null)");
  }
  /* every request sets "mark": the next one (whose user may take this
   * user's memory block) must not see it */
  {
    const char *v = gh_http_user_get_variable(u, "mark");
    snprintf(vars_seen[4], sizeof(vars_seen[4]), "%s", v ? v : "(null)");
  }
  assert_int_equal(gh_http_user_set_variable(u, "mark", vars_seen[0]), 0);
  if (vars_keep)
    vars_kept = gh_http_user_ref(u); /* a module keeping the user past the request */
  return GH_REQUEST_CONTINUE;
}

static int reg_vars(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_exec_vars};
  (void)v;
  (void)s;
  return gh_module_registration_set_factory(r, &f);
}

/* One request as tok (closed by the pipeline at its end). */
static void vars_request(gh_pipeline_t *pl, gh_token_t tok)
{
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  fake_req_auth(&r);
  r.auth.token = tok;
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  assert_int_equal(r.status, 200);
}

static void expect_vars(const char *uid, const char *gid, const char *groups)
{
  assert_string_equal(vars_seen[0], uid);
  assert_string_equal(vars_seen[1], gid);
  assert_string_equal(vars_seen[2], "impersonate");
  assert_string_equal(vars_seen[3], groups);
  assert_string_equal(vars_seen[4], "(null)");
}

/* Carol's and dave's long-lived tokens (a new handle per request, as a
 * persisted session gets) with alice's and bob's made and freed per request
 * in between (same size: the allocator hands alice's memory to bob's):
 * each request reads its own token's ids, every time. */
static void test_token_variables_interleaved(void **state)
{
  static const char *const kv[] = {NULL};
  gh_token_opts_t o = {.level = GH_LEVEL_IMPERSONATE, .source = GH_SOURCE_KERBEROS};
  gh_pipeline_t *pl = fake_pipeline(kv);
  gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "vars"};
  gh_token_t carol, dave, h;
  (void)state;
  gh__pipeline_set_sec_ops(pl, NULL);
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_vars, NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  assert_int_equal(gh_token_from_user("carol", &o, &carol), 0);
  assert_int_equal(gh_token_from_user("dave", &o, &dave), 0);
  for (int i = 0; i < 300; i++) {
    assert_int_equal(gh_token_from_user("alice", &o, &h), 0);
    vars_request(pl, h);
    expect_vars("20001", "30001", "30001,30010");
    assert_int_equal(gh_token_from_user("bob", &o, &h), 0);
    vars_request(pl, h);
    expect_vars("20002", "30002", "30002,30011");
    assert_int_equal(gh_token_open_handle(i % 2 ? dave : carol, &h), 0);
    vars_request(pl, h);
    if (i % 2)
      expect_vars("20004", "30004", "30004");
    else
      expect_vars("20003", "30003", "30003,30010,30011");
  }
  /* a kept user (bob's, whose token is gone with its handle) still reads
   * bob's ids; a set value replaces the token's */
  vars_keep = true;
  assert_int_equal(gh_token_from_user("bob", &o, &h), 0);
  vars_request(pl, h);
  vars_keep = false;
  assert_int_equal(gh_token_from_user("alice", &o, &h), 0);
  vars_request(pl, h);
  expect_vars("20001", "30001", "30001,30010");
  assert_string_equal(gh_http_user_get_variable(vars_kept, "groups"), "30002,30011");
  assert_string_equal(gh_http_user_get_variable(vars_kept, "uid"), "20002");
  assert_int_equal(gh_http_user_set_variable(vars_kept, "groups", "x"), 0);
  assert_string_equal(gh_http_user_get_variable(vars_kept, "groups"), "x");
  assert_string_equal(gh_http_user_get_variable(vars_kept, "gid"), "30002");
  assert_null(gh_http_user_get_variable(vars_kept, "nosuch"));
  gh_http_user_unref(vars_kept);
  vars_kept = NULL;
  assert_int_equal(gh_token_close(carol), 0);
  assert_int_equal(gh_token_close(dave), 0);
  gh_pipeline_free(pl);
}

/* ---- token-scoped impersonation (gh_module_registration_set_scoped_impersonation) ---- */

static char scoped_dir[300];
static uid_t scoped_euid;
static int scoped_err[4]; /* alice's, bob's, root's file; alice's after explicit impersonate */
static bool scoped_explicit;

static int scoped_open(gh_http_context_t *ctx, const char *name)
{
  char p[400];
  struct open_how how = {.flags = O_RDONLY};
  int fd;
  snprintf(p, sizeof(p), "%s/%s", scoped_dir, name);
  fd = gh_http_context_openat2(ctx, AT_FDCWD, p, &how, sizeof(how));
  if (fd >= 0) {
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    return 0;
  }
  return -fd;
}

static gh_request_status_t on_exec_scoped(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  (void)p;
  scoped_euid = geteuid();
  scoped_err[0] = scoped_open(ctx, "alice");
  scoped_err[1] = scoped_open(ctx, "bob");
  scoped_err[2] = scoped_open(ctx, "root");
  scoped_err[3] = -1;
  if (scoped_explicit && gh_http_context_impersonate(ctx) == 0) {
    /* the thread is alice now: the open is the thread's own */
    scoped_err[3] = scoped_open(ctx, "bob");
  }
  return GH_REQUEST_CONTINUE;
}

static int reg_scoped(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_exec_scoped};
  int ret;
  (void)v;
  (void)s;
  ret = gh_module_registration_set_factory(r, &f);
  if (ret == 0)
    ret = gh_module_registration_set_scoped_impersonation(r);
  return ret;
}

static void make_file(const char *name, uid_t uid, gid_t gid)
{
  char p[400];
  int fd;
  snprintf(p, sizeof(p), "%s/%s", scoped_dir, name);
  fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(fchown(fd, uid, gid), 0);
  close(fd);
}

/* One GET /x through a pipeline with the module `reg_fn` over the real sec
 * layer, as alice (IMPERSONATE) or anonymous; returns the status. */
static int run_module(gh_register_module_fn reg_fn, const char *const *kv, bool with_token)
{
  gh_token_opts_t o = {.level = GH_LEVEL_IMPERSONATE, .source = GH_SOURCE_KERBEROS};
  gh_pipeline_t *pl = fake_pipeline(kv);
  gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "under-test"};
  gh_token_t tok;
  fake_req_t r;
  gh__pipeline_set_sec_ops(pl, NULL);
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  fake_req_init(&r, "GET", "/x");
  if (with_token) {
    assert_int_equal(gh_token_from_user("alice", &o, &tok), 0);
    fake_req_auth(&r);
    r.auth.token = tok;
  }
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  assert_false(gh_is_impersonating());
  gh_assert_base();
  gh_pipeline_free(pl);
  return r.status;
}

static void run_scoped(const char *const *kv, bool explicit_imp)
{
  scoped_explicit = explicit_imp;
  memset(scoped_err, 0xff, sizeof(scoped_err));
  assert_int_equal(run_module(reg_scoped, kv, true), 200);
}

static void test_scoped_impersonation(void **state)
{
  static const char *const imp[] = {"impersonate", "yes", NULL};
  static const char *const noimp[] = {NULL};
  (void)state;
  if (!fx_root()) {
    printf("# skip: needs root (kernel enforcement)\n");
    skip();
  }
  snprintf(scoped_dir, sizeof(scoped_dir), "%s/scoped", fx_dir());
  assert_int_equal(mkdir(scoped_dir, 0755), 0);
  make_file("alice", U_ALICE, G_ALICE);
  make_file("bob", U_BOB, G_BOB);
  make_file("root", 0, 0);

  /* impersonating site: the thread stays at base, each open is alice's */
  run_scoped(imp, false);
  assert_int_equal(scoped_euid, geteuid());
  assert_int_equal(scoped_err[0], 0);
  assert_int_equal(scoped_err[1], EACCES);
  assert_int_equal(scoped_err[2], EACCES);
  /* explicit impersonation still works inside a scoped handler */
  run_scoped(imp, true);
  assert_int_equal(scoped_err[0], 0);
  assert_int_equal(scoped_err[3], EACCES);
  /* a site without impersonate: opens are the service's (root here) */
  run_scoped(noimp, false);
  assert_int_equal(scoped_err[0], 0);
  assert_int_equal(scoped_err[1], 0);
  assert_int_equal(scoped_err[2], 0);
}

/* ---- gh_http_context_connect_unix: always the client, on any site ---- */

static char conn_path[300];
static int conn_rc, conn_fd = -1, key_rc;
static char conn_key[256];

static gh_request_status_t on_exec_connect(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  const char *key = NULL;
  (void)m;
  (void)p;
  conn_rc = gh_http_context_connect_unix(ctx, conn_path, &conn_fd);
  key_rc = gh_http_context_get_identity_key(ctx, &key);
  if (key_rc == 0)
    snprintf(conn_key, sizeof(conn_key), "%s", key);
  return GH_REQUEST_CONTINUE;
}

static int reg_connect(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_exec_connect};
  (void)v;
  (void)s;
  return gh_module_registration_set_factory(r, &f);
}

static void run_connect(const char *const *kv, bool with_token)
{
  conn_fd = -1;
  conn_key[0] = '\0';
  (void)run_module(reg_connect, kv, with_token);
}

static void check_peer_alice(int lfd)
{
  struct ucred uc;
  socklen_t sl = sizeof(uc);
  gid_t groups[64];
  socklen_t gl = sizeof(groups);
  bool shared = false;
  int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(afd >= 0);
  assert_int_equal(getsockopt(afd, SOL_SOCKET, SO_PEERCRED, &uc, &sl), 0);
  assert_int_equal(getsockopt(afd, SOL_SOCKET, SO_PEERGROUPS, groups, &gl), 0);
  close(afd);
  assert_int_equal(uc.uid, U_ALICE);
  assert_int_equal(uc.gid, G_ALICE);
  for (size_t i = 0; i < gl / sizeof(gid_t); i++)
    shared |= groups[i] == G_SHARED;
  assert_true(shared);
}

static void test_connect_unix_as_client(void **state)
{
  static const char *const imp[] = {"impersonate", "yes", NULL};
  static const char *const noimp[] = {NULL};
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int lfd;
  char want[64];
  (void)state;
  if (!fx_root()) {
    printf("# skip: needs root (kernel enforcement)\n");
    skip();
  }
  snprintf(conn_path, sizeof(conn_path), "%s/up.sock", fx_dir());
  assert_true(strlen(conn_path) < sizeof(sa.sun_path));
  memcpy(sa.sun_path, conn_path, strlen(conn_path) + 1);
  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(chmod(conn_path, 0777), 0);
  assert_int_equal(listen(lfd, 8), 0);
  snprintf(want, sizeof(want), "%u:%u:", (unsigned)U_ALICE, (unsigned)G_ALICE);
  /* with and without impersonate = yes: the connection is alice's */
  for (int i = 0; i < 2; i++) {
    run_connect(i == 0 ? imp : noimp, true);
    assert_int_equal(conn_rc, 0);
    assert_true(fcntl(conn_fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(conn_fd, F_GETFL) & O_NONBLOCK);
    check_peer_alice(lfd);
    close(conn_fd);
    assert_int_equal(key_rc, 0);
    assert_memory_equal(conn_key, want, strlen(want));
  }
  /* anonymous: no connection at all, never the service's */
  run_connect(noimp, false);
  assert_int_equal(conn_rc, GH_ENOT_FOUND);
  assert_int_equal(conn_fd, -1);
  assert_int_equal(key_rc, GH_ENOT_FOUND);
  close(lfd);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_borrowed_tokens_and_impersonation),
      cmocka_unit_test(test_token_variables_interleaved),
      cmocka_unit_test(test_scoped_impersonation),
      cmocka_unit_test(test_connect_unix_as_client),
  };
  gh_sec_config_t cfg = {.min_uid = 1000, .group_cache_ttl_s = 0};
  fx_init(argc, argv);
  if (gh_sec_init(&cfg) != 0) {
    printf("1..0 # SKIP gh_sec_init failed\n");
    return 0;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}

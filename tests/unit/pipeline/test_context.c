/* test_context.c: response clear/set_header (item 23), server variables (item 25), user object, map_path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pl_fake.h"

typedef void (*body_fn)(gh_http_context_t *ctx, gh_event_provider_t *p);
static body_fn exec_body, authn_body;
static int custom_freed;

static gh_request_status_t on_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  if (exec_body)
    exec_body(ctx, p);
  return GH_REQUEST_CONTINUE;
}

static gh_request_status_t on_authn(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  if (authn_body)
    authn_body(ctx, p);
  return GH_REQUEST_CONTINUE;
}

static int reg(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f),
                           .on_authenticate_request = on_authn,
                           .on_execute_request_handler = on_exec};
  (void)v;
  (void)s;
  return gh_module_registration_set_factory(r, &f);
}

static fake_req_t R;

static void run_with(const char *const *kv, body_fn authn, body_fn exec, bool auth)
{
  gh_pipeline_t *pl = fake_pipeline(kv);
  gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "t"};
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg, NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  exec_body = exec;
  authn_body = authn;
  fake_req_init(&R, "GET", "/dir/file.txt");
  fake_req_header(&R, "User-Agent", "curl/8");
  fake_req_header(&R, "Accept-Language", "en");
  if (auth)
    fake_req_auth(&R);
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &R), 0);
  gh_pipeline_free(pl);
}

static void body_headers(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_response_t *r = gh_http_context_get_response(ctx);
  (void)p;
  assert_int_equal(gh_http_response_set_header(r, "X-A", "1", GH_HEADER_REPLACE), 0);
  assert_int_equal(gh_http_response_set_header(r, "x-a", "2", GH_HEADER_APPEND), 0);
  assert_string_equal(gh_http_response_get_header(r, "X-A"), "1, 2");
  assert_int_equal(gh_http_response_set_header(r, "X-A", "3", GH_HEADER_REPLACE), 0);
  assert_string_equal(gh_http_response_get_header(r, "X-A"), "3");
  assert_int_equal(gh_http_response_set_header(r, "X-New", "n", GH_HEADER_APPEND), 0);
  assert_int_equal(gh_http_response_set_header(r, "Set-Cookie", "a=1", GH_HEADER_ADD), 0);
  assert_int_equal(gh_http_response_set_header(r, "Set-Cookie", "b=2", GH_HEADER_ADD), 0);
  assert_int_equal(gh_http_response_set_header(r, "Bad", "x\r\nInjected: 1", GH_HEADER_ADD),
                   -EINVAL);
  assert_int_equal(gh_http_response_set_header(r, "Bad Name", "x", GH_HEADER_ADD), -EINVAL);
  /* clear resets status, headers and body */
  gh_http_response_set_status(r, 418, "teapot");
  gh_http_response_write(r, "gone", 4);
  assert_int_equal(gh_http_response_clear(r), 0);
  assert_int_equal(gh_http_response_get_status(r), 200);
  assert_null(gh_http_response_get_header(r, "X-A"));
  assert_int_equal(gh_http_response_get_body_length(r), 0);
  gh_http_response_set_header(r, "X-After", "yes", GH_HEADER_REPLACE);
  gh_http_response_set_status(r, 201, NULL);
  gh_http_response_write(r, "kept", 4);
  gh_http_response_write(r, "!", 1);
}

static void test_set_header_and_clear(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_headers, false);
  assert_int_equal(R.status, 201);
  assert_string_equal(R.headers, "X-After: yes\nContent-Length: 5\n");
  assert_int_equal(R.out_len, 5);
  assert_memory_equal(R.out, "kept!", 5);
}

static void body_flush(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_response_t *r = gh_http_context_get_response(ctx);
  (void)p;
  gh_http_response_write(r, "a", 1);
  assert_int_equal(gh_http_response_flush(r), 0);
  assert_true(gh_http_response_headers_sent(r));
  assert_int_equal(gh_http_response_clear(r), GH_ESTATE);
  assert_int_equal(gh_http_response_set_header(r, "X", "y", GH_HEADER_REPLACE), GH_ESTATE);
  gh_http_response_write(r, "b", 1);
}

static void test_flush_then_headers_locked(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_flush, false);
  assert_int_equal(R.out_len, 2);
  assert_int_equal(R.sends, 2); /* "a" (more), then "b" as the final send */
  assert_true(R.ended_ok);
}

/* 8 MiB streamed in 256-byte writes: small writes come from the context's
 * pool only up to a budget, then the pool stops growing. */
static size_t stream_pool_growth;

static void body_stream(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_response_t *r = gh_http_context_get_response(ctx);
  char piece[256];
  size_t used = 0;
  (void)p;
  memset(piece, 'x', sizeof(piece));
  assert_int_equal(gh_http_response_disable_buffering(r), 0);
  for (int i = 0; i < 32768; i++) {
    if (i == 64)
      used = gh__pool_used(ctx->pool); /* past the budget */
    assert_int_equal(gh_http_response_write(r, piece, sizeof(piece)), 0);
  }
  stream_pool_growth = gh__pool_used(ctx->pool) - used;
}

static void test_streamed_response_pool_bounded(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_stream, false);
  assert_int_equal(R.sends, 32768 + 1); /* each piece as it came, then the end */
  assert_true(R.ended_ok);
  assert_int_equal(stream_pool_growth, 0);
}

static void body_vars(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  const char *v = NULL;
  (void)p;
#define VAR(n, e)                                                                  \
  do {                                                                             \
    assert_int_equal(gh_http_context_get_server_variable(ctx, n, &v), 0);          \
    assert_string_equal(v, e);                                                     \
  } while (0)
  VAR("AUTH_TYPE", "Negotiate");
  VAR("AUTH_USER", "alice@EXAMPLE.ORG");
  VAR("REMOTE_USER", "alice@EXAMPLE.ORG");
  VAR("LOGON_USER", "alice");
  VAR("AUTH_PACKAGE", "Kerberos");
  VAR("REMOTE_ADDR", "192.0.2.7");
  VAR("REMOTE_PORT", "40000");
  VAR("SERVER_PORT", "8080");
  VAR("REQUEST_METHOD", "GET");
  VAR("URL", "/dir/file.txt");
  VAR("HTTP_USER_AGENT", "curl/8");
  VAR("HTTP_ACCEPT_LANGUAGE", "en");
  VAR("SERVER_PROTOCOL", "HTTP/1.1");
  assert_int_equal(gh_http_context_get_server_variable(ctx, "NOPE", &v), GH_ENOT_FOUND);
#undef VAR
}

static void test_server_variables_authenticated(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_vars, true);
}

static void body_vars_anon(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  const char *v = NULL;
  (void)p;
  assert_int_equal(gh_http_context_get_server_variable(ctx, "AUTH_TYPE", &v), 0);
  assert_string_equal(v, "");
  assert_int_equal(gh_http_context_get_server_variable(ctx, "REMOTE_USER", &v), 0);
  assert_string_equal(v, "");
  assert_int_equal(gh_http_context_get_server_variable(ctx, "LOGON_USER", &v), 0);
  assert_string_equal(v, "");
  assert_int_equal(gh_http_user_get_impersonation_token(gh_http_context_get_user(ctx)), 0);
  {
    /* anonymous: a member of nothing, decided */
    gh_membership_t in = GH_MEMBER_UNKNOWN;
    assert_int_equal(gh_http_user_is_in_role(gh_http_context_get_user(ctx), "ghusers", &in), 0);
    assert_int_equal(in, GH_MEMBER_NO);
  }
}

static void test_server_variables_anonymous(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_vars_anon, false);
}

static void body_user(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_user_t *u = gh_http_context_get_user(ctx);
  gh_membership_t in = GH_MEMBER_UNKNOWN;
  (void)p;
  assert_string_equal(gh_http_user_get_name(u), "alice@EXAMPLE.ORG");
  assert_string_equal(gh_http_user_get_auth_type(u), "Negotiate");
  assert_true(gh_http_user_supports_is_in_role(u));
  gh_token_t t = gh_http_user_get_impersonation_token(u);
  assert_true(t != 0 && t != 42); /* a borrowed handle, not the server's */
  assert_true(gh_http_user_get_primary_token(u) != 0);
  assert_int_equal(gh_http_user_is_in_role(u, "#30010", &in), 0);
  assert_int_equal(in, GH_MEMBER_YES);
  assert_int_equal(gh_http_user_is_in_role(u, "#999", &in), 0);
  assert_int_equal(in, GH_MEMBER_NO);
  /* names go to the sec layer (fake: ghusers, nosuch, nss-down) */
  assert_int_equal(gh_http_user_is_in_role(u, "ghusers", &in), 0);
  assert_int_equal(in, GH_MEMBER_YES);
  assert_int_equal(gh_http_user_is_in_role(u, "staff", &in), 0);
  assert_int_equal(in, GH_MEMBER_NO);
  in = GH_MEMBER_UNKNOWN;
  assert_int_equal(gh_http_user_is_in_role(u, "nosuch", &in), GH_MEMBER_NO_SUCH_GROUP);
  assert_int_equal(in, GH_MEMBER_NO);
  in = GH_MEMBER_YES;
  assert_int_equal(gh_http_user_is_in_role(u, "nss-down", &in), -EACCES);
  assert_int_equal(in, GH_MEMBER_UNKNOWN);
  /* a malformed "#gid" decides nothing */
  for (size_t i = 0; i < 4; i++) {
    static const char *const bad[] = {"#", "#12x", "#-1", "#99999999999"};
    in = GH_MEMBER_NO;
    assert_int_equal(gh_http_user_is_in_role(u, bad[i], &in), -EINVAL);
    assert_int_equal(in, GH_MEMBER_UNKNOWN);
  }
  assert_int_equal(gh_http_user_is_in_role(u, "", &in), -EINVAL);
  assert_int_equal(gh_http_user_is_in_role(u, "ghusers", NULL), -EINVAL);
  assert_string_equal(gh_http_user_get_variable(u, "uid"), "20001");
  assert_string_equal(gh_http_user_get_variable(u, "groups"), "30001,30010");
  assert_string_equal(gh_http_user_get_variable(u, "level"), "impersonate");
  assert_int_equal(gh_http_user_set_variable(u, "x", "1"), 0);
  assert_string_equal(gh_http_user_get_variable(u, "x"), "1");
  /* replacing keeps the old value readable for whoever borrowed it, and
   * later lookups and new names step over the kept entry */
  {
    const char *old = gh_http_user_get_variable(u, "x");
    assert_int_equal(gh_http_user_set_variable(u, "x", "2"), 0);
    assert_string_equal(old, "1");
    assert_string_equal(gh_http_user_get_variable(u, "x"), "2");
    assert_int_equal(gh_http_user_set_variable(u, "y", "3"), 0);
    assert_int_equal(gh_http_user_set_variable(u, "x", "4"), 0);
    assert_string_equal(gh_http_user_get_variable(u, "y"), "3");
    assert_string_equal(gh_http_user_get_variable(u, "x"), "4");
    assert_null(gh_http_user_get_variable(u, "z"));
  }
  /* a reference past the request: tokens are gone afterwards */
  gh_http_user_ref(u);
  static gh_http_user_t *kept;
  kept = u;
  (void)kept;
  gh_http_user_unref(u);
  /* set_user is refused outside AUTHENTICATE_REQUEST */
  assert_int_equal(gh_event_provider_set_user(p, u), -EINVAL);
}

static void test_user_object(void **state)
{
  (void)state;
  run_with(NULL, NULL, body_user, true);
}

static const char *c_name(void *d)
{
  (void)d;
  return "custom-bob";
}

static const char *c_type(void *d)
{
  (void)d;
  return "Custom";
}

static void c_free(void *d)
{
  (void)d;
  custom_freed++;
}

static void authn_custom(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_user_ops_t ops = {.struct_size = sizeof(ops), .get_name = c_name,
                            .get_auth_type = c_type, .free = c_free};
  gh_http_user_t *u = NULL;
  (void)ctx;
  assert_int_equal(gh_http_user_new(&ops, NULL, &u), 0);
  assert_int_equal(gh_event_provider_set_user(p, u), 0);
  gh_http_user_unref(u);
}

static void exec_custom(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  const char *v;
  gh_membership_t in = GH_MEMBER_NO;
  gh_http_user_t *u = gh_http_context_get_user(ctx);
  (void)p;
  assert_string_equal(gh_http_user_get_name(u), "custom-bob");
  assert_int_equal(gh_http_context_get_server_variable(ctx, "AUTH_TYPE", &v), 0);
  assert_string_equal(v, "Custom");
  assert_int_equal(gh_http_user_get_impersonation_token(u), 0);
  assert_int_equal(gh_http_user_is_in_role(u, "x", &in), -ENOTSUP);
  assert_int_equal(in, GH_MEMBER_UNKNOWN);
  assert_int_equal(gh_http_context_impersonate(ctx), GH_ENOT_FOUND);
}

/* A custom user's is_in_role: "admins" yes, "down" cannot decide, "liar"
 * claims success without an answer, anything else no. */
static int c_role(void *d, const char *role, gh_membership_t *ret)
{
  (void)d;
  assert_int_equal(*ret, GH_MEMBER_UNKNOWN); /* the caller's preset */
  if (strcmp(role, "down") == 0)
    return -EIO;
  if (strcmp(role, "liar") == 0)
    return 0;
  *ret = strcmp(role, "admins") == 0 ? GH_MEMBER_YES : GH_MEMBER_NO;
  return 0;
}

static void custom_roles(void **state)
{
  gh_http_user_ops_t ops = {.struct_size = sizeof(ops), .get_name = c_name, .is_in_role = c_role};
  gh_http_user_t *u = NULL;
  gh_membership_t in = GH_MEMBER_UNKNOWN;
  (void)state;
  assert_int_equal(gh_http_user_new(&ops, NULL, &u), 0);
  assert_true(gh_http_user_supports_is_in_role(u));
  assert_int_equal(gh_http_user_is_in_role(u, "admins", &in), 0);
  assert_int_equal(in, GH_MEMBER_YES);
  assert_int_equal(gh_http_user_is_in_role(u, "staff", &in), 0);
  assert_int_equal(in, GH_MEMBER_NO);
  assert_int_equal(gh_http_user_is_in_role(u, "down", &in), -EIO);
  assert_int_equal(in, GH_MEMBER_UNKNOWN);
  in = GH_MEMBER_NO;
  assert_int_equal(gh_http_user_is_in_role(u, "liar", &in), -EPROTO);
  assert_int_equal(in, GH_MEMBER_UNKNOWN);
  gh_http_user_unref(u);
}

static void test_custom_user_from_authenticate(void **state)
{
  (void)state;
  custom_freed = 0;
  run_with(NULL, authn_custom, exec_custom, true);
  assert_int_equal(custom_freed, 1);
}

static void body_map(gh_http_context_t *ctx, gh_event_provider_t *p)
{
  const char *path = NULL;
  (void)p;
  assert_int_equal(gh_http_context_map_path(ctx, NULL, &path), 0);
  assert_string_equal(path, "/srv/www/dir/file.txt");
  assert_int_equal(gh_http_context_map_path(ctx, "/a/../../etc/passwd", &path), -EACCES);
  assert_int_equal(gh_http_context_map_path(ctx, "//a/./b/../c", &path), 0);
  assert_string_equal(path, "/srv/www/a/c");
  assert_string_equal(gh_http_context_get_site_config(ctx, "root"), "/srv/www/");
  assert_string_equal(gh_http_context_get_site_config_n(ctx, "require", 1), "user:bob");
  assert_null(gh_http_context_get_site_config_n(ctx, "require", 2));
  assert_int_equal(gh_http_context_set_module_context(ctx, 0, (void *)ctx, NULL), 0);
  assert_ptr_equal(gh_http_context_get_module_context(ctx, 0), ctx);
  assert_int_equal(gh_http_context_set_module_context(ctx, 7, NULL, NULL), -EINVAL);
}

static void test_map_path_and_site_config(void **state)
{
  (void)state;
  static const char *const kv[] = {"root", "/srv/www/", "require", "user:alice",
                                   "require", "user:bob", NULL};
  run_with(kv, NULL, body_map, false);
}

static void test_path_join(void **state)
{
  char out[64];
  (void)state;
  assert_int_equal(gh__pl_path_join("/r", "/", out, sizeof(out)), 2);
  assert_string_equal(out, "/r");
  assert_true(gh__pl_path_join("/r", "/a/b/..", out, sizeof(out)) > 0);
  assert_string_equal(out, "/r/a");
  assert_int_equal(gh__pl_path_join("/r", "/..", out, sizeof(out)), -EACCES);
  assert_int_equal(gh__pl_path_join("/r", "/a\\..\\b", out, sizeof(out)), -EACCES);
  assert_int_equal(gh__pl_path_join("/", "/x", out, sizeof(out)), 2);
  assert_string_equal(out, "/x");
  assert_int_equal(gh__pl_path_join("/r", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                    out, sizeof(out)),
                   -ENAMETOOLONG);
}

static void test_site_lookup(void **state)
{
  (void)state;
  gh_pipeline_t *pl = NULL;
  gh_pipeline_config_t *cfg = NULL;
  char err[200];
  assert_int_equal(gh_pipeline_new(&pl), 0);
  assert_int_equal(gh_pipeline_config_new(&cfg), 0);
  gh_pipeline_config_add(cfg, "site /", "x", "1");
  gh_pipeline_config_add(cfg, "site /files", "impersonate", "maybe");
  gh_pipeline_config_add(cfg, "site /files/deep", "x", "1");
  assert_int_equal(gh_pipeline_config_check(pl, cfg, err, sizeof(err)), GH_ECONFIG);
  assert_non_null(strstr(err, "[site /files] impersonate = maybe"));
  assert_int_equal(gh_pipeline_set_config_take(pl, cfg), 0);
  assert_string_equal(gh_pipeline_find_site(pl, "/files/a"), "site /files");
  assert_string_equal(gh_pipeline_find_site(pl, "/files"), "site /files");
  assert_string_equal(gh_pipeline_find_site(pl, "/filesx"), "site /");
  assert_string_equal(gh_pipeline_find_site(pl, "/files/deep/x"), "site /files/deep");
  gh_pipeline_free(pl);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set_header_and_clear),
      cmocka_unit_test(test_flush_then_headers_locked),
      cmocka_unit_test(test_streamed_response_pool_bounded),
      cmocka_unit_test(test_server_variables_authenticated),
      cmocka_unit_test(test_server_variables_anonymous),
      cmocka_unit_test(test_user_object),
      cmocka_unit_test(test_custom_user_from_authenticate),
      cmocka_unit_test(custom_roles),
      cmocka_unit_test(test_map_path_and_site_config),
      cmocka_unit_test(test_path_join),
      cmocka_unit_test(test_site_lookup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

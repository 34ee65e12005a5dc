/* test_keys.c: modules' configuration key tables: declaration, checks at load (file:line), typed
 * getters. */
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

/* ---- a module with one key of each kind --------------------------------- */

static int no_x(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  if (strchr(value, 'x') == NULL)
    return 0;
  snprintf(why, whylen, "no x allowed");
  return -EINVAL;
}

static const gh_module_key_t keys_a[] = {
    {.name = "flag", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE, .default_value = "no"},
    {.name = "size", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_SITE, .min = 1, .max = 1 << 20},
    {.name = "wait",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "30",
     .min = 1,
     .max = 3600000},
    {.name = "dir", .type = GH_CONFIG_PATH, .flags = GH_CONFIG_SITE},
    {.name = "words", .type = GH_CONFIG_LIST, .flags = GH_CONFIG_SITE | GH_CONFIG_REPEATABLE},
    {.name = "rule",
     .type = GH_CONFIG_STRING,
     .flags = GH_CONFIG_SITE | GH_CONFIG_REPEATABLE | GH_CONFIG_SUBPATH,
     .check = no_x},
    {.name = "table",
     .type = GH_CONFIG_PATH,
     .flags = GH_CONFIG_MODULE,
     .default_value = "/etc/a.table"},
    {.name = "depth", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_MODULE},
};

static gh_request_status_t noop(void *m, gh_http_context_t *ctx, gh_event_provider_t *p);

static int reg_a(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  int ret;
  (void)v;
  (void)s;
  ret = gh_module_registration_set_execute_handler(reg, noop);
  if (ret == 0)
    ret = GH_MODULE_CONFIG_KEYS(reg, keys_a);
  return ret;
}

static const gh_module_abi_t abi_a = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "a"};

/* what the handler read, per request */
static struct {
  int rc_flag, rc_size, rc_wait, rc_dir, rc_word[4], rc_rule[3], rc_sub, rc_type, rc_undecl;
  bool flag;
  uint64_t size, wait;
  /* copies: the strings are borrowed for the request only */
  char dir[32], word[4][32], rule[3][32], sub[32];
} got;

static int get_str(gh_http_context_t *ctx, const char *key, size_t i, char *out)
{
  const char *v = NULL;
  int rc = gh_http_context_get_config_string(ctx, key, i, &v);
  snprintf(out, 32, "%s", rc == 0 ? v : "");
  return rc;
}

static gh_request_status_t noop(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  uint64_t u;
  (void)m;
  (void)p;
  memset(&got, 0, sizeof(got));
  got.rc_flag = gh_http_context_get_config_bool(ctx, "flag", &got.flag);
  got.rc_size = gh_http_context_get_config_uint(ctx, "size", &got.size);
  got.rc_wait = gh_http_context_get_config_uint(ctx, "wait", &got.wait);
  got.rc_dir = get_str(ctx, "dir", 0, got.dir);
  for (size_t i = 0; i < 4; i++)
    got.rc_word[i] = get_str(ctx, "words", i, got.word[i]);
  for (size_t i = 0; i < 3; i++)
    got.rc_rule[i] = get_str(ctx, "rule", i, got.rule[i]);
  got.rc_sub = get_str(ctx, "rule /hr", 0, got.sub);
  got.rc_type = gh_http_context_get_config_uint(ctx, "flag", &u);
  got.rc_undecl = gh_http_context_get_config_uint(ctx, "nosuch", &u);
  gh_http_response_printf(gh_http_context_get_response(ctx), "ok");
  return GH_REQUEST_FINISH;
}

/* A pipeline with module a and a config of (section, key, value) lines from
 * line 10 on, each added as a module key (not the host's) of file "f.conf". */
static gh_pipeline_t *pipeline_with(const char *const *lines, gh_pipeline_config_t **ret_cfg)
{
  gh_pipeline_t *pl = fake_pipeline(NULL);
  gh_pipeline_config_t *cfg = NULL;
  char err[256];
  assert_int_equal(gh_pipeline_add_module(pl, &abi_a, reg_a, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_config_new(&cfg), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /", NULL, NULL, "f.conf", 9, 0), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /", "handler", "a", "f.conf", 9,
                                             GH_PIPELINE_CONFIG_HOST),
                   0);
  for (unsigned i = 0; lines != NULL && lines[i] != NULL; i += 3)
    assert_int_equal(gh_pipeline_config_add_at(cfg, lines[i], lines[i + 1], lines[i + 2], "f.conf",
                                               10 + i / 3, 0),
                     0);
  *ret_cfg = cfg;
  return pl;
}

/* The check's verdict on one configuration: 0 or GH_ECONFIG with err. */
static int check(const char *const *lines, char *err, size_t errlen)
{
  gh_pipeline_config_t *cfg;
  gh_pipeline_t *pl = pipeline_with(lines, &cfg);
  int ret;
  err[0] = '\0';
  ret = gh_pipeline_config_check(pl, cfg, err, errlen);
  gh_pipeline_config_free(cfg);
  gh_pipeline_free(pl);
  return ret;
}

static void expect_error(const char *const *lines, const char *words)
{
  char err[512];
  assert_int_equal(check(lines, err, sizeof(err)), GH_ECONFIG);
  if (strstr(err, words) == NULL)
    fail_msg("expected '%s' in '%s'", words, err);
}

static void test_values_checked_with_file_and_line(void **state)
{
  char err[512];
  (void)state;
  {
    static const char *const ok[] = {
        "site /", "flag",     "Yes",    "site /",   "size",   "64k",    "site /", "wait",
        "1500ms", "site /",   "dir",    "/srv",     "site /", "words",  "a, b",   "site /",
        "words",  "c",        "site /", "rule",     "alice",  "site /", "rule",   "bob",
        "site /", "rule /hr", "carol",  "module a", "depth",  "3",      NULL};
    assert_int_equal(check(ok, err, sizeof(err)), 0);
  }
  {
    static const char *const l[] = {"site /", "flag", "perhaps", NULL};
    expect_error(l, "f.conf:10: [site /] flag = perhaps: not yes or no");
  }
  {
    static const char *const l[] = {"site /", "dir", "/a", "site /", "size", "2m", NULL};
    expect_error(l, "f.conf:11: [site /] size = 2m: out of range (1 to 1048576)");
  }
  {
    static const char *const l[] = {"site /", "size", "12q", NULL};
    expect_error(l, "f.conf:10: [site /] size = 12q: not a number");
  }
  {
    static const char *const l[] = {"site /", "wait", "0", NULL};
    expect_error(l, "[site /] wait = 0: out of range (1 ms to 3600000 ms)");
  }
  {
    static const char *const l[] = {"site /", "wait", "soon", NULL};
    expect_error(l, "wait = soon: not a duration");
  }
  {
    static const char *const l[] = {"site /", "dir", "srv", NULL};
    expect_error(l, "dir = srv: not an absolute path");
  }
  {
    static const char *const l[] = {"site /", "rule /hr", "xavier", NULL};
    expect_error(l, "f.conf:10: [site /] rule /hr = xavier: no x allowed");
  }
  {
    static const char *const l[] = {"site /", "flag",   "yes",  "site /", "dir",
                                    "/a",     "site /", "flag", "no",     NULL};
    expect_error(l, "f.conf:12: [site /] flag: given twice, first at line 10");
  }
  {
    static const char *const l[] = {"site /", "colour", "red", NULL};
    expect_error(l, "f.conf:10: [site /] colour: unknown key");
  }
  {
    static const char *const l[] = {"site /", "other.key", "1", NULL};
    expect_error(l, "other.key: unknown key (no module 'other' is loaded)");
  }
  {
    /* site keys are not keys of the module section, and the other way round */
    static const char *const l[] = {"module a", "flag", "yes", NULL};
    expect_error(l, "[module a] flag: unknown key of module a");
  }
  {
    static const char *const l[] = {"site /", "depth", "1", NULL};
    expect_error(l, "[site /] depth: unknown key");
  }
  {
    static const char *const l[] = {"module a", "depth", "-1", NULL};
    expect_error(l, "f.conf:10: [module a] depth = -1: not a number");
  }
}

static void test_host_keys_are_not_unknown(void **state)
{
  gh_pipeline_config_t *cfg;
  gh_pipeline_t *pl = pipeline_with(NULL, &cfg);
  char err[256] = "";
  (void)state;
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /", "auth", "basic", "f.conf", 20,
                                             GH_PIPELINE_CONFIG_HOST),
                   0);
  assert_int_equal(gh_pipeline_config_add(cfg, "site /", "colour", "red"), 0);
  /* a host key a module declares is checked all the same */
  assert_int_equal(gh_pipeline_config_check(pl, cfg, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /", "flag", "maybe", "f.conf", 21,
                                             GH_PIPELINE_CONFIG_HOST),
                   0);
  assert_int_equal(gh_pipeline_config_check(pl, cfg, err, sizeof(err)), GH_ECONFIG);
  assert_non_null(strstr(err, "f.conf:21: [site /] flag = maybe"));
  assert_string_equal(gh_pipeline_find_key(pl, "site /", "flag"), "a");
  assert_string_equal(gh_pipeline_find_key(pl, "site /", "rule /x"), "a");
  assert_string_equal(gh_pipeline_find_key(pl, "site /", "impersonate"), "pipeline");
  assert_string_equal(gh_pipeline_find_key(pl, "module a", "table"), "a");
  assert_null(gh_pipeline_find_key(pl, "site /", "table"));
  assert_null(gh_pipeline_find_key(pl, "site /", "colour"));
  gh_pipeline_config_free(cfg);
  gh_pipeline_free(pl);
}

static void run(const char *const *lines, bool checked)
{
  static fake_req_t r;
  gh_pipeline_config_t *cfg;
  gh_pipeline_t *pl = pipeline_with(lines, &cfg);
  char err[256] = "";
  if (checked && gh_pipeline_config_check(pl, cfg, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_int_equal(gh_pipeline_set_config_take(pl, cfg), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  fake_req_init(&r, "GET", "/x");
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  gh_pipeline_free(pl);
}

static void test_typed_getters(void **state)
{
  static const char *const set[] = {
      "site /", "flag", "on",    "site /", "size",     "2k",    "site /", "wait",  "2m",
      "site /", "dir",  "/srv",  "site /", "words",    "a, b",  "site /", "words", "c",
      "site /", "rule", "alice", "site /", "rule /hr", "carol", NULL};
  (void)state;
  run(set, true);
  assert_int_equal(got.rc_flag, 0);
  assert_true(got.flag);
  assert_int_equal(got.rc_size, 0);
  assert_int_equal(got.size, 2048);
  assert_int_equal(got.rc_wait, 0);
  assert_int_equal(got.wait, 120000);
  assert_string_equal(got.dir, "/srv");
  /* a repeatable list: every line's words, in order */
  assert_string_equal(got.word[0], "a");
  assert_string_equal(got.word[1], "b");
  assert_string_equal(got.word[2], "c");
  assert_int_equal(got.rc_word[3], GH_ENOT_FOUND);
  assert_string_equal(got.rule[0], "alice");
  assert_int_equal(got.rc_rule[1], GH_ENOT_FOUND);
  assert_string_equal(got.sub, "carol");
  assert_int_equal(got.rc_type, -EINVAL);
  assert_int_equal(got.rc_undecl, -EINVAL);

  /* nothing set: defaults, or GH_ENOT_FOUND without one */
  run(NULL, true);
  assert_int_equal(got.rc_flag, 0);
  assert_false(got.flag);
  assert_int_equal(got.rc_wait, 0);
  assert_int_equal(got.wait, 30000);
  assert_int_equal(got.rc_size, GH_ENOT_FOUND);
  assert_int_equal(got.rc_dir, GH_ENOT_FOUND);
  assert_int_equal(got.rc_word[0], GH_ENOT_FOUND);
  assert_int_equal(got.rc_sub, GH_ENOT_FOUND);
}

static void test_unchecked_value_fails_closed(void **state)
{
  /* a host that installs a configuration without checking it: the value
   * that did not pass is never read as anything */
  static const char *const bad[] = {"site /", "flag", "maybe", "site /", "size", "0", NULL};
  (void)state;
  run(bad, false);
  assert_int_equal(got.rc_flag, GH_ECONFIG);
  assert_int_equal(got.rc_size, GH_ECONFIG);
  assert_int_equal(got.rc_wait, 0); /* the others still work */
}

static int server_rc[3];
static uint64_t server_depth;
static const char *server_table;

static gh_global_status_t on_start(void *d, gh_module_server_t *s)
{
  bool b;
  (void)d;
  server_rc[0] = gh_module_server_get_config_string(s, "a", "table", 0, &server_table);
  server_rc[1] = gh_module_server_get_config_uint(s, "a", "depth", &server_depth);
  server_rc[2] = gh_module_server_get_config_bool(s, "a", "flag", &b);
  return GH_GLOBAL_CONTINUE;
}

static int reg_a_global(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  gh_global_module_t g = {.struct_size = sizeof(g), .on_start = on_start};
  int ret = reg_a(v, reg, s);
  if (ret == 0)
    ret = gh_module_registration_set_global(reg, &g);
  return ret;
}

static void test_module_section_getters(void **state)
{
  gh_pipeline_t *pl = fake_pipeline(NULL);
  gh_pipeline_config_t *cfg = NULL;
  (void)state;
  assert_int_equal(gh_pipeline_add_module(pl, &abi_a, reg_a_global, NULL, 0), 0);
  assert_int_equal(gh_pipeline_config_new(&cfg), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "module a", "depth", "7", "f.conf", 3, 0), 0);
  assert_int_equal(gh_pipeline_config_check(pl, cfg, NULL, 0), 0);
  assert_int_equal(gh_pipeline_set_config_take(pl, cfg), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  assert_int_equal(server_rc[0], 0);
  assert_string_equal(server_table, "/etc/a.table"); /* the default */
  assert_int_equal(server_rc[1], 0);
  assert_int_equal(server_depth, 7);
  assert_int_equal(server_rc[2], -EINVAL); /* a site key, not one of [module a] */
  gh_pipeline_free(pl);
}

/* A configuration installed before the module declared its keys (the
 * fake pipeline's order) is bound when the module registers. */
static void test_bound_after_late_registration(void **state)
{
  static const char *const kv[] = {"handler", "a", "flag", "true", NULL};
  static fake_req_t r;
  gh_pipeline_t *pl = fake_pipeline(kv);
  (void)state;
  assert_int_equal(gh_pipeline_add_module(pl, &abi_a, reg_a, NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  fake_req_init(&r, "GET", "/x");
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  assert_int_equal(got.rc_flag, 0);
  assert_true(got.flag);
  gh_pipeline_free(pl);
}

/* ---- declarations -------------------------------------------------------- */

static gh_module_key_t one[2];
static size_t n_one = 1, one_size = sizeof(gh_module_key_t);

static int reg_one(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  int ret;
  (void)v;
  (void)s;
  ret = gh_module_registration_set_execute_handler(reg, noop);
  if (ret == 0)
    ret = gh_module_registration_set_config_keys(reg, one, n_one, one_size);
  return ret;
}

static void declare_fails(gh_module_key_t k, int code, const char *words)
{
  static const gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "b"};
  gh_pipeline_t *pl = fake_pipeline(NULL);
  char err[512] = "";
  one[0] = k;
  assert_int_equal(gh_pipeline_add_module(pl, &abi_a, reg_a, NULL, 0), 0);
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_one, err, sizeof(err)), code);
  if (words != NULL && strstr(err, words) == NULL)
    fail_msg("expected '%s' in '%s'", words, err);
  gh_pipeline_free(pl);
}

static void test_declaration_errors(void **state)
{
  (void)state;
  declare_fails((gh_module_key_t){.name = "ok", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE}, 0,
                NULL);
  declare_fails(
      (gh_module_key_t){.name = "bad name", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
      -EINVAL, "config key 'bad name': not a key name");
  declare_fails((gh_module_key_t){.name = "k", .type = 99, .flags = GH_CONFIG_SITE}, -EINVAL,
                "config key 'k': bad type, flags or range");
  declare_fails((gh_module_key_t){.name = "k", .type = GH_CONFIG_BOOL}, -EINVAL,
                "bad type, flags or range"); /* no scope */
  declare_fails((gh_module_key_t){.name = "k",
                                  .type = GH_CONFIG_BOOL,
                                  .flags = GH_CONFIG_SITE | GH_CONFIG_REPEATABLE},
                -EINVAL, "bad type, flags or range");
  declare_fails((gh_module_key_t){.name = "k",
                                  .type = GH_CONFIG_STRING,
                                  .flags = GH_CONFIG_MODULE | GH_CONFIG_SUBPATH},
                -EINVAL, "bad type, flags or range");
  declare_fails(
      (gh_module_key_t){
          .name = "k", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_SITE, .min = 5, .max = 2},
      -EINVAL, "bad type, flags or range");
  declare_fails(
      (gh_module_key_t){
          .name = "k", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_SITE, .default_value = "ten"},
      -EINVAL, "config key 'k': default 'ten': not a number");
  /* site keys share the [site] sections: one owner each */
  declare_fails((gh_module_key_t){.name = "flag", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
                GH_EEXISTS, "config key 'flag': a site key of a already");
  declare_fails(
      (gh_module_key_t){.name = "impersonate", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
      GH_EEXISTS, "a site key of pipeline already");
  /* module keys are per module: the same name as another module's is fine */
  declare_fails(
      (gh_module_key_t){.name = "depth", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_MODULE}, 0,
      NULL);
  /* twice in one table */
  n_one = 2;
  one[1] = (gh_module_key_t){.name = "ok", .type = GH_CONFIG_LIST, .flags = GH_CONFIG_SITE};
  declare_fails((gh_module_key_t){.name = "ok", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
                -EINVAL, "config key 'ok' declared twice");
  n_one = 1;
  /* the entry size follows the growth rule */
  one_size = sizeof(gh_module_key_t) - sizeof(void *);
  declare_fails((gh_module_key_t){.name = "ok", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
                GH_EMODULE_ABI, "gh_module_key_t: struct_size");
  one_size = sizeof(gh_module_key_t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_checked_with_file_and_line),
      cmocka_unit_test(test_host_keys_are_not_unknown),
      cmocka_unit_test(test_typed_getters),
      cmocka_unit_test(test_unchecked_value_fails_closed),
      cmocka_unit_test(test_module_section_getters),
      cmocka_unit_test(test_bound_after_late_registration),
      cmocka_unit_test(test_declaration_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_loader.c: module loading: ABI checks, duplicates, whoami, ABI 2.0 modules, struct growth. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pl_fake.h"

static const char *dir;

static char *p(const char *rel)
{
  static char buf[4][1024];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, rel);
  return buf[i];
}

static void test_load_checks(void **state)
{
  char err[512];
  (void)state;
  gh_pipeline_t *pl = fake_pipeline(NULL);
  assert_int_equal(gh_pipeline_load_module(pl, p("modules/whoami/whoami.so"), err, sizeof(err)),
                   0);
  assert_int_equal(gh_pipeline_load_module(pl, p("modules/whoami/whoami.so"), err, sizeof(err)),
                   GH_EMODULE_DUPLICATE);
  assert_non_null(strstr(err, "\"whoami\" is already loaded"));
  assert_int_equal(gh_pipeline_load_module(pl, p("tests/unit/pipeline/mod_badabi.so"), err,
                                           sizeof(err)),
                   GH_EMODULE_ABI);
  assert_non_null(strstr(err, "mod_badabi.so: module ABI version 999"));
  assert_int_equal(gh_pipeline_load_module(pl, p("tests/unit/pipeline/mod_noabi.so"), err,
                                           sizeof(err)),
                   GH_EMODULE_ABI);
  assert_non_null(strstr(err, "no gh_module_abi symbol"));
  assert_int_equal(gh_pipeline_load_module(pl, "/nonexistent/x.so", err, sizeof(err)),
                   GH_ENOT_FOUND);
  assert_non_null(strstr(err, "/nonexistent/x.so: cannot load"));
  assert_int_equal(gh_pipeline_get_module_count(pl), 1);
  assert_string_equal(gh_pipeline_get_module_name(pl, 0), "whoami");
  gh_pipeline_free(pl);
}

static void run_whoami(bool auth, const char *accept, fake_req_t *r)
{
  static const char *const kv[] = {"handler", "whoami", NULL};
  gh_pipeline_t *pl = fake_pipeline(kv);
  assert_int_equal(gh_pipeline_load_module(pl, p("modules/whoami/whoami.so"), NULL, 0), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  fake_req_init(r, "GET", "/whoami");
  if (accept)
    fake_req_header(r, "Accept", accept);
  if (auth)
    fake_req_auth(r);
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, r), 0);
  r->out[r->out_len] = '\0';
  gh_pipeline_free(pl);
}

static void test_whoami_xml_and_json(void **state)
{
  static fake_req_t r;
  (void)state;
  run_whoami(true, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.out, "<user name=\"alice@EXAMPLE.ORG\" authType=\"Negotiate\""));
  assert_non_null(strstr(r.out, "impersonationToken=\"valid\" level=\"impersonate\" "
                                "uid=\"20001\" groups=\"30001,30010\" sids=\"\" session=\"\"/>"));
  assert_non_null(strstr(r.headers, "Content-Type: text/xml"));
  run_whoami(false, NULL, &r);
  assert_non_null(strstr(r.out, "<user name=\"\" authType=\"\""));
  assert_non_null(strstr(r.out, "impersonationToken=\"NULL\""));
  run_whoami(true, "application/json", &r);
  assert_non_null(strstr(r.out, "\"name\":\"alice@EXAMPLE.ORG\""));
  assert_non_null(strstr(r.out, "\"impersonationToken\":\"valid\""));
  assert_non_null(strstr(r.out, "\"groups\":[30001,30010],\"sids\":[],\"session\":\"\"}"));
}

/* A module built against the first ABI 2 header (arrays and masks) still
 * loads and runs: its callbacks, instance, post event and global START. */
static void test_abi20_module_keeps_working(void **state)
{
  static fake_req_t r;
  static const char *const kv[] = {"handler", "abi20", NULL};
  char err[512] = "";
  gh_pipeline_t *pl = fake_pipeline(kv);
  (void)state;
  if (gh_pipeline_load_module(pl, p("tests/unit/pipeline/mod_abi20.so"), err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_int_equal(gh_pipeline_start(pl), 0);
  for (int i = 0; i < 2; i++) {
    char want[128];
    fake_req_init(&r, "GET", "/x");
    assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
    r.out[r.out_len] = '\0';
    assert_int_equal(r.status, 200);
    snprintf(want, sizeof(want), "abi20 exec instance=ok started=1 created=%d disposed=%d post=1",
             i + 1, i);
    assert_string_equal(r.out, want);
    /* a callback in the array but not in the mask is not called */
    assert_null(strstr(r.headers, "X-Begin"));
  }
  gh_pipeline_free(pl);
}

/* ---- growth of the registration structs (built-in modules) ------------ */

static const gh_module_abi_t sizes_abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "sizes"};

static gh_request_status_t sizes_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  (void)p;
  gh_http_response_printf(gh_http_context_get_response(ctx), "sizes ok");
  return GH_REQUEST_FINISH;
}

/* a factory as a later minor version might lay it out: two more fields */
typedef struct newer_factory {
  gh_module_factory_t f;
  void *later[2];
} newer_factory_t;

static newer_factory_t nf;
static bool sizes_ignore_error; /* return 0 whatever registration said */

static int sizes_reg(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  int ret;
  (void)v;
  (void)s;
  nf.f.on_execute_request_handler = sizes_exec;
  ret = gh_module_registration_set_factory(reg, &nf.f);
  if (ret == 0)
    ret = gh_module_registration_set_handler(reg);
  return sizes_ignore_error ? 0 : ret;
}

static int load_sizes(size_t struct_size, void *later0, char *err, size_t errlen)
{
  static const char *const kv[] = {"handler", "sizes", NULL};
  static fake_req_t r;
  gh_pipeline_t *pl = fake_pipeline(kv);
  int ret;
  memset(&nf, 0, sizeof(nf));
  nf.f.struct_size = struct_size;
  nf.later[0] = later0;
  err[0] = '\0';
  ret = gh_pipeline_add_module(pl, &sizes_abi, sizes_reg, err, errlen);
  if (ret == 0) {
    assert_int_equal(gh_pipeline_start(pl), 0);
    fake_req_init(&r, "GET", "/x");
    assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
    r.out[r.out_len] = '\0';
    assert_string_equal(r.out, "sizes ok");
  }
  gh_pipeline_free(pl);
  return ret;
}

static void test_factory_struct_size(void **state)
{
  char err[512];
  (void)state;
  sizes_ignore_error = false;
  /* this header's size */
  assert_int_equal(load_sizes(sizeof(gh_module_factory_t), NULL, err, sizeof(err)), 0);
  /* built for a newer minor version that uses nothing new: loads */
  assert_int_equal(load_sizes(sizeof(newer_factory_t), NULL, err, sizeof(err)), 0);
  /* ... but one that sets a field this server does not know is refused */
  assert_int_equal(load_sizes(sizeof(newer_factory_t), err, err, sizeof(err)), GH_EMODULE_ABI);
  assert_non_null(strstr(err, "sizes: gh_register_module failed: "));
  assert_non_null(strstr(err, "gh_module_factory_t: struct_size"));
  assert_non_null(strstr(err, "sets fields past the"));
  assert_non_null(strstr(err, "built for a newer gatehouse"));
  /* smaller than the first version of the struct: refused */
  assert_int_equal(
      load_sizes(offsetof(gh_module_factory_t, on_begin_request), NULL, err, sizeof(err)),
      GH_EMODULE_ABI);
  assert_non_null(strstr(err, "is not a size of this struct (at least"));
  /* not a size any version can have */
  assert_int_equal(load_sizes(sizeof(gh_module_factory_t) + 4, NULL, err, sizeof(err)),
                   GH_EMODULE_ABI);
  assert_non_null(strstr(err, "is not a size of this struct"));
  /* the module ignores the failure and returns 0: refused all the same */
  sizes_ignore_error = true;
  assert_int_equal(load_sizes(0, NULL, err, sizeof(err)), GH_EMODULE_ABI);
  assert_non_null(strstr(err, "struct_size 0 is not a size of this struct"));
  sizes_ignore_error = false;
}

static gh_global_status_t g_noop(void *d, gh_module_server_t *s)
{
  (void)d;
  (void)s;
  return GH_GLOBAL_CONTINUE;
}

static size_t global_size;
static bool factory_empty;

static int other_reg(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  gh_global_module_t g = {.struct_size = global_size, .on_stop = g_noop};
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_log_request = sizes_exec};
  int ret;
  (void)v;
  (void)s;
  if (factory_empty)
    f.on_log_request = NULL;
  ret = gh_module_registration_set_factory(reg, &f);
  if (ret == 0)
    ret = gh_module_registration_set_global(reg, &g);
  return ret;
}

static int null_handler_reg(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *s)
{
  (void)v;
  (void)s;
  return gh_module_registration_set_execute_handler(reg, NULL);
}

static void test_global_struct_size_and_empty_factory(void **state)
{
  char err[512];
  gh_pipeline_t *pl = fake_pipeline(NULL);
  (void)state;
  global_size = sizeof(gh_global_module_t) - sizeof(void *);
  assert_int_equal(gh_pipeline_add_module(pl, &sizes_abi, other_reg, err, sizeof(err)),
                   GH_EMODULE_ABI);
  assert_non_null(strstr(err, "gh_global_module_t: struct_size"));
  global_size = sizeof(gh_global_module_t);
  factory_empty = true;
  assert_int_equal(gh_pipeline_add_module(pl, &sizes_abi, other_reg, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "the request factory sets no notification callback"));
  factory_empty = false;
  /* the one-call handler registration needs its callback */
  assert_int_equal(gh_pipeline_add_module(pl, &sizes_abi, null_handler_reg, err, sizeof(err)),
                   -EINVAL);
  assert_non_null(strstr(err, "sets no notification callback"));
  assert_int_equal(gh_pipeline_add_module(pl, &sizes_abi, other_reg, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_get_module_count(pl), 1);
  gh_pipeline_free(pl);
}

/* A module built for an older minor version (smaller struct_size) than the
 * library: the fields it did not have read as NULL. Shown on a stand-in
 * struct, since ABI 2.1 is the first minor version of the real ones. */
typedef struct v2 {
  size_t struct_size;
  void *a, *b;
  void *c; /* added in the next minor version */
} v2_t;

static void test_older_minor_version_reads_as_null(void **state)
{
  char why[160];
  v2_t older = {.struct_size = offsetof(v2_t, c), .a = why, .b = why, .c = why};
  v2_t in;
  (void)state;
  assert_int_equal(gh__pl_struct_in(&in, sizeof(in), &older, offsetof(v2_t, c), why, sizeof(why)),
                   0);
  assert_int_equal(in.struct_size, sizeof(v2_t));
  assert_ptr_equal(in.a, why);
  assert_ptr_equal(in.b, why);
  assert_null(in.c); /* not read: past the module's struct_size */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_checks),
      cmocka_unit_test(test_whoami_xml_and_json),
      cmocka_unit_test(test_abi20_module_keeps_working),
      cmocka_unit_test(test_factory_struct_size),
      cmocka_unit_test(test_global_struct_size_and_empty_factory),
      cmocka_unit_test(test_older_minor_version_reads_as_null),
  };
  dir = getenv("GH_BUILD_ROOT");
  if (dir == NULL) {
    printf("1..0 # SKIP GH_BUILD_ROOT not set\n");
    return 0;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}

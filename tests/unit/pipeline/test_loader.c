/* test_loader.c: dlopen loading of module .so files: ABI checks, duplicates, and the whoami module. */
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
                                "uid=\"20001\" groups=\"30001,30010\"/>"));
  assert_non_null(strstr(r.headers, "Content-Type: text/xml"));
  run_whoami(false, NULL, &r);
  assert_non_null(strstr(r.out, "<user name=\"\" authType=\"\""));
  assert_non_null(strstr(r.out, "impersonationToken=\"NULL\""));
  run_whoami(true, "application/json", &r);
  assert_non_null(strstr(r.out, "\"name\":\"alice@EXAMPLE.ORG\""));
  assert_non_null(strstr(r.out, "\"impersonationToken\":\"valid\""));
  assert_non_null(strstr(r.out, "\"groups\":[30001,30010]"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_checks),
      cmocka_unit_test(test_whoami_xml_and_json),
  };
  dir = getenv("GH_BUILD_ROOT");
  if (dir == NULL) {
    printf("1..0 # SKIP GH_BUILD_ROOT not set\n");
    return 0;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_site_data.c: gh_http_context_get_site_data (ABI 2.4): built once per site and configuration,
 * built anew after a reload, freed with its configuration before the module unloads. */
#include <errno.h>
#include <pthread.h>
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

static const gh_module_key_t keys[] = {
    {.name = "size", .type = GH_CONFIG_UINT, .flags = GH_CONFIG_SITE, .default_value = "7"},
};

/* what the module saw */
static struct {
  int id;
  int builds, frees, fail_builds; /* fail_builds: the next builds that fail with -EIO */
  int frees_at_terminate;         /* frees counted when the module terminated */
  int rc;                         /* of the last request's get_site_data */
  uint64_t value;                 /* its data's size */
  const void *data;               /* its data */
  pthread_barrier_t *race;        /* set: builds wait here for one another */
} m;

static __thread const void *t_data; /* the calling thread's last request's data */

typedef struct site_data {
  uint64_t size;
} site_data_t;

static int build(gh_http_context_t *ctx, void **ret_data)
{
  site_data_t *d;
  if (m.race != NULL)
    pthread_barrier_wait(m.race);
  if (m.fail_builds > 0) {
    m.fail_builds--;
    return -EIO;
  }
  d = calloc(1, sizeof(*d));
  if (d == NULL)
    return -ENOMEM;
  __atomic_add_fetch(&m.builds, 1, __ATOMIC_SEQ_CST);
  assert_int_equal(gh_http_context_get_config_uint(ctx, "size", &d->size), 0);
  *ret_data = d;
  return 0;
}

static void free_data(void *data)
{
  __atomic_add_fetch(&m.frees, 1, __ATOMIC_SEQ_CST);
  free(data);
}

/* every request, configured site or not */
static gh_request_status_t on_begin(void *inst, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  void *d = NULL;
  (void)inst;
  (void)p;
  int rc = gh_http_context_get_site_data(ctx, m.id, build, free_data, &d);
  t_data = d;
  if (m.race == NULL) {
    m.rc = rc;
    m.data = d;
    m.value = rc == 0 ? ((site_data_t *)d)->size : 0;
  }
  gh_http_response_printf(gh_http_context_get_response(ctx), "ok");
  return GH_REQUEST_FINISH;
}

static gh_global_status_t on_stop(void *data, gh_module_server_t *server)
{
  (void)data;
  (void)server;
  return GH_GLOBAL_CONTINUE;
}

static void on_terminate(void *data)
{
  (void)data;
  m.frees_at_terminate = m.frees;
}

static int reg(uint32_t v, gh_module_registration_t *r, gh_module_server_t *s)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_begin_request = on_begin};
  gh_global_module_t g = {.struct_size = sizeof(g), .terminate = on_terminate, .on_stop = on_stop};
  int ret;
  (void)v;
  (void)s;
  m.id = gh_module_registration_get_id(r);
  ret = gh_module_registration_set_factory(r, &f);
  if (ret == 0)
    ret = gh_module_registration_set_global(r, &g);
  if (ret == 0)
    ret = GH_MODULE_CONFIG_KEYS(r, keys);
  return ret;
}

static const gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "sd"};

/* sites /a and /b with size = a and b (0: not set) */
static gh_pipeline_config_t *config(const char *a, const char *b)
{
  gh_pipeline_config_t *cfg = NULL;
  assert_int_equal(gh_pipeline_config_new(&cfg), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /a", NULL, NULL, "f.conf", 1, 0), 0);
  if (a != NULL)
    assert_int_equal(gh_pipeline_config_add_at(cfg, "site /a", "size", a, "f.conf", 2, 0), 0);
  assert_int_equal(gh_pipeline_config_add_at(cfg, "site /b", NULL, NULL, "f.conf", 3, 0), 0);
  if (b != NULL)
    assert_int_equal(gh_pipeline_config_add_at(cfg, "site /b", "size", b, "f.conf", 4, 0), 0);
  return cfg;
}

static gh_pipeline_t *pipeline(const char *a, const char *b)
{
  gh_pipeline_t *pl = fake_pipeline(NULL);
  char err[256];
  memset(&m, 0, sizeof(m));
  if (gh_pipeline_add_module(pl, &abi, reg, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_int_equal(gh_pipeline_set_config_take(pl, config(a, b)), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  return pl;
}

static void request(gh_pipeline_t *pl, const char *path)
{
  static fake_req_t r;
  fake_req_init(&r, "GET", path);
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
}

/* A request to path whose data holds value. */
static void expect(gh_pipeline_t *pl, const char *path, uint64_t value)
{
  request(pl, path);
  assert_int_equal(m.rc, 0);
  assert_int_equal(m.value, value);
}

/* Frees the pipeline: n data freed, all before the module terminated. */
static void free_expecting(gh_pipeline_t *pl, int n)
{
  gh_pipeline_free(pl);
  assert_int_equal(m.frees, n);
  assert_int_equal(m.frees_at_terminate, n);
}

static void test_built_once_per_site(void **state)
{
  gh_pipeline_t *pl = pipeline("1", "2");
  const void *first_a;
  (void)state;
  expect(pl, "/a/x", 1);
  first_a = m.data;
  expect(pl, "/b/x", 2);
  assert_ptr_not_equal(m.data, first_a);
  for (int i = 0; i < 3; i++) {
    expect(pl, "/a/y", 1);
    assert_ptr_equal(m.data, first_a);
  }
  assert_int_equal(m.builds, 2);
  assert_int_equal(m.frees, 0);
  free_expecting(pl, 2); /* with the configuration, before the module terminated */
}

/* A reload that changes the value: the next request sees the new one; the
 * old data stays until the pipeline goes (a request still running under
 * the old configuration may hold it). */
static void test_reload_builds_anew(void **state)
{
  gh_pipeline_t *pl = pipeline("1", NULL);
  (void)state;
  expect(pl, "/a/x", 1);
  expect(pl, "/b/x", 7); /* the default */
  assert_int_equal(gh_pipeline_set_config_take(pl, config("5", "9")), 0);
  expect(pl, "/a/x", 5);
  expect(pl, "/b/x", 9);
  assert_int_equal(m.builds, 4);
  assert_int_equal(m.frees, 0);
  /* and back: a third configuration, built again */
  assert_int_equal(gh_pipeline_set_config_take(pl, config("1", NULL)), 0);
  expect(pl, "/a/x", 1);
  assert_int_equal(m.builds, 5);
  free_expecting(pl, 5);
}

/* A failed build is not kept: the next request builds again. */
static void test_failed_build_not_kept(void **state)
{
  gh_pipeline_t *pl = pipeline("3", NULL);
  (void)state;
  m.fail_builds = 1;
  request(pl, "/a/x");
  assert_int_equal(m.rc, -EIO);
  expect(pl, "/a/x", 3);
  expect(pl, "/a/x", 3);
  assert_int_equal(m.builds, 1);
  free_expecting(pl, 1);
}

/* A request outside every configured site: its own data, freed when it
 * ends. */
static void test_no_site_per_request(void **state)
{
  gh_pipeline_t *pl = pipeline("3", NULL);
  (void)state;
  expect(pl, "/elsewhere", 7);
  assert_int_equal(m.frees, 1);
  expect(pl, "/elsewhere", 7);
  assert_int_equal(m.builds, 2);
  assert_int_equal(m.frees, 2);
  free_expecting(pl, 2);
}

static void *race_request(void *arg)
{
  static fake_req_t r[2];
  static int n;
  fake_req_t *mine = &r[__atomic_fetch_add(&n, 1, __ATOMIC_SEQ_CST) % 2];
  fake_req_init(mine, "GET", "/a/x");
  assert_int_equal(gh__pipeline_process_source(arg, NULL, &fake_source_ops, mine), 0);
  return (void *)t_data;
}

/* Two requests build at once: one result is kept, the other freed, and
 * both requests get the kept one. */
static void test_concurrent_builds(void **state)
{
  gh_pipeline_t *pl = pipeline("4", NULL);
  pthread_barrier_t bar;
  pthread_t t[2];
  void *got[2];
  (void)state;
  pthread_barrier_init(&bar, NULL, 2);
  m.race = &bar;
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, race_request, pl), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(t[i], &got[i]), 0);
  m.race = NULL;
  pthread_barrier_destroy(&bar);
  assert_int_equal(m.builds, 2);
  assert_int_equal(m.frees, 1);
  assert_non_null(got[0]);
  assert_ptr_equal(got[0], got[1]);
  expect(pl, "/a/x", 4);
  assert_ptr_equal(m.data, got[0]);
  assert_int_equal(m.builds, 2);
  free_expecting(pl, 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_built_once_per_site),   cmocka_unit_test(test_reload_builds_anew),
      cmocka_unit_test(test_failed_build_not_kept), cmocka_unit_test(test_no_site_per_request),
      cmocka_unit_test(test_concurrent_builds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

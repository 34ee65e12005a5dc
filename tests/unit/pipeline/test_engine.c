/* test_engine.c: notification order, priorities, FINISH, PENDING, dispose-once, per-call impersonation. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pl_fake.h"

static char trace[8192];
static int n_created, n_disposed, n_cleaned;

static void tr(const char *fmt, ...)
{
  va_list ap;
  size_t l = strlen(trace);
  va_start(ap, fmt);
  vsnprintf(trace + l, sizeof(trace) - l, fmt, ap);
  va_end(ap);
}

static const char *const nname[] = {"BEGIN", "AUTHN", "AUTHZ", "RESOLVE", "MAP", "ACQUIRE",
                                    "PREEXEC", "EXEC", "RELEASE", "UPDATE", "LOG", "END",
                                    "SEND", "READ", "MAPPATH"};

/* A configurable recording module. */
typedef struct spec {
  const char *name;
  uint32_t mask, post_mask;
  gh_module_priority_t prio;
  gh_notification_t finish_at; /* returns FINISH here (COUNT_ = never) */
  gh_notification_t pending_at;
  bool pending_sync;       /* complete before returning PENDING */
  gh_notification_t imp_at; /* impersonates itself and does not revert */
  gh_notification_t ctx_at; /* sets a module context with a cleanup here */
  bool handler;
  int id;
} spec_t;

static spec_t specs[8];
static size_t n_specs;

typedef struct inst {
  spec_t *spec;
  int disposed;
} inst_t;

static int m_create(void *fd, gh_http_context_t *ctx, void **ret)
{
  inst_t *i = gh_http_context_alloc(ctx, sizeof(*i));
  i->spec = fd;
  i->disposed = 0;
  n_created++;
  *ret = i;
  return 0;
}

static void m_dispose(void *fd, void *m)
{
  inst_t *i = m;
  (void)fd;
  i->disposed++;
  assert_int_equal(i->disposed, 1);
  n_disposed++;
}

static void *async_complete(void *arg)
{
  gh_http_context_t *ctx = arg;
  usleep(30000);
  gh_http_response_write(gh_http_context_get_response(ctx), "async", 5);
  assert_int_equal(gh_http_context_complete(ctx, GH_REQUEST_CONTINUE), 0);
  return NULL;
}

static void count_cleanup(void *data)
{
  (void)data;
  n_cleaned++;
}

static pthread_t async_thread;
static bool async_started;
/* when set, LOG_REQUEST records whether the response had gone out */
static fake_req_t *log_req;

static gh_request_status_t on_any(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  inst_t *i = m;
  gh_notification_t n = gh_event_provider_get_notification(p);
  bool post = gh_event_provider_is_post(p);
  /* DESIGN item 17: every call starts at base (except nested SEND inside an
   * impersonated handler, which these tests do not do) */
  if (n != GH_NOTIFY_EXECUTE_REQUEST_HANDLER)
    assert_int_equal(fake_sec_current, 0);
  tr("%s:%s%s ", i->spec->name, post ? "post" : "", nname[n]);
  if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER && !post)
    tr("[imp=%d] ", (int)fake_sec_current);
  if (n == GH_NOTIFY_LOG_REQUEST && log_req != NULL)
    tr("[%d sent=%d] ", log_req->status, (int)log_req->ended_ok);
  if (post)
    return GH_REQUEST_CONTINUE;
  if (n == i->spec->imp_at)
    assert_int_equal(gh_http_context_impersonate(ctx), 0);
  if (n == i->spec->ctx_at)
    assert_int_equal(gh_http_context_set_module_context(ctx, i->spec->id, i, count_cleanup), 0);
  if (n == i->spec->finish_at) {
    gh_http_response_send_error(gh_http_context_get_response(ctx), 403, NULL);
    return GH_REQUEST_FINISH;
  }
  if (n == i->spec->pending_at) {
    if (i->spec->pending_sync) {
      assert_int_equal(gh_http_context_complete(ctx, GH_REQUEST_CONTINUE), 0);
    } else {
      async_started = true;
      pthread_create(&async_thread, NULL, async_complete, ctx);
    }
    return GH_REQUEST_PENDING;
  }
  if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER)
    gh_http_response_write(gh_http_context_get_response(ctx), "body", 4);
  return GH_REQUEST_CONTINUE;
}

static int reg_fn_idx;
static int reg_fn(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *srv)
{
  spec_t *s = &specs[reg_fn_idx];
  gh_module_factory_t f = {.struct_size = sizeof(f),
                           .create = m_create,
                           .dispose = m_dispose,
                           .factory_data = s};
  (void)v;
  (void)srv;
  /* the callbacks set are the notifications the module gets */
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++) {
    if (s->mask & GH_NOTIFY_BIT(n))
      *gh__pl_factory_slot(&f, (gh_notification_t)n, false) = on_any;
    if (s->post_mask & GH_NOTIFY_BIT(n))
      *gh__pl_factory_slot(&f, (gh_notification_t)n, true) = on_any;
  }
  s->id = gh_module_registration_get_id(reg);
  assert_int_equal(gh_module_registration_set_factory(reg, &f), 0);
  assert_int_equal(gh_module_registration_set_priority(reg, s->mask | s->post_mask, s->prio),
                   0);
  if (s->handler)
    gh_module_registration_set_handler(reg);
  return 0;
}

static spec_t *add_spec(const char *name, uint32_t mask, uint32_t post, gh_module_priority_t p)
{
  spec_t *s = &specs[n_specs++];
  memset(s, 0, sizeof(*s));
  s->name = name;
  s->mask = mask;
  s->post_mask = post;
  s->prio = p;
  s->finish_at = s->pending_at = s->imp_at = s->ctx_at = GH_NOTIFY_COUNT_;
  return s;
}

static gh_pipeline_t *build(const char *const *kv)
{
  gh_pipeline_t *pl = fake_pipeline(kv);
  char err[256];
  for (size_t i = 0; i < n_specs; i++) {
    gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, specs[i].name};
    reg_fn_idx = (int)i;
    assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, err, sizeof(err)), 0);
  }
  assert_int_equal(gh_pipeline_start(pl), 0);
  return pl;
}

static int setup(void **state)
{
  (void)state;
  trace[0] = '\0';
  n_specs = 0;
  n_created = n_disposed = n_cleaned = 0;
  fake_sec_current = 0;
  fake_sec_closed = 0;
  async_started = false;
  log_req = NULL;
  return 0;
}

#define ALL GH_NOTIFY_ALL_REQUEST_BITS

static void test_iis_order(void **state)
{
  (void)state;
  add_spec("A", ALL | GH_NOTIFY_BIT(GH_NOTIFY_SEND_RESPONSE), ALL, GH_PRIORITY_MEDIUM);
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  assert_int_equal(gh__pipeline_process_source(pl, "/", &fake_source_ops, &r), 0);
  assert_string_equal(trace,
                      "A:BEGIN A:postBEGIN A:AUTHN A:postAUTHN A:AUTHZ A:postAUTHZ "
                      "A:RESOLVE A:postRESOLVE A:MAP A:postMAP A:ACQUIRE A:postACQUIRE "
                      "A:PREEXEC A:postPREEXEC A:EXEC [imp=0] A:postEXEC A:RELEASE A:postRELEASE "
                      "A:UPDATE A:postUPDATE A:SEND A:LOG A:postLOG A:END A:postEND ");
  assert_int_equal(r.status, 200);
  assert_int_equal(r.completed, 1);
  assert_memory_equal(r.out, "body", 4);
  assert_int_equal(n_created, 1);
  assert_int_equal(n_disposed, 1);
  gh_pipeline_free(pl);
}

static void test_priorities_and_send_response_reversed(void **state)
{
  (void)state;
  uint32_t m = GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_SEND_RESPONSE);
  add_spec("low", m, 0, GH_PRIORITY_LOW);
  add_spec("high", m, 0, GH_PRIORITY_HIGH);
  add_spec("med1", m, 0, GH_PRIORITY_MEDIUM);
  add_spec("last", m, 0, GH_PRIORITY_LAST);
  add_spec("first", m, 0, GH_PRIORITY_FIRST);
  add_spec("med2", m, 0, GH_PRIORITY_MEDIUM);
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r);
  assert_string_equal(trace, "first:BEGIN high:BEGIN med1:BEGIN med2:BEGIN low:BEGIN last:BEGIN "
                             "last:SEND low:SEND med2:SEND med1:SEND high:SEND first:SEND ");
  assert_int_equal(r.status, 404); /* nobody handled it */
  assert_int_equal(n_created, 6);
  assert_int_equal(n_disposed, 6);
  gh_pipeline_free(pl);
}

static void test_finish_request(void **state)
{
  (void)state;
  uint32_t m = GH_NOTIFY_BIT(GH_NOTIFY_AUTHORIZE_REQUEST) |
               GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER) |
               GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST);
  spec_t *a = add_spec("A", m, GH_NOTIFY_BIT(GH_NOTIFY_AUTHORIZE_REQUEST), GH_PRIORITY_HIGH);
  add_spec("B", m, 0, GH_PRIORITY_LOW);
  a->finish_at = GH_NOTIFY_AUTHORIZE_REQUEST;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r);
  /* B's AUTHORIZE, A's post AUTHORIZE and every EXEC are skipped; LOG and END run */
  assert_string_equal(trace, "A:AUTHZ A:LOG B:LOG A:END B:END ");
  assert_int_equal(r.status, 403);
  assert_int_equal(n_created, 2);
  assert_int_equal(n_disposed, 2);
  gh_pipeline_free(pl);
}

static void test_pending_resumed_from_other_thread(void **state)
{
  (void)state;
  uint32_t m = GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER) |
               GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST);
  spec_t *a = add_spec("A", m, 0, GH_PRIORITY_HIGH);
  add_spec("B", m, 0, GH_PRIORITY_LOW);
  a->pending_at = GH_NOTIFY_EXECUTE_REQUEST_HANDLER;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r),
                   GH_REQUEST_PENDING);
  assert_true(async_started);
  pthread_join(async_thread, NULL);
  assert_string_equal(trace, "A:EXEC [imp=0] B:EXEC [imp=0] A:END B:END ");
  assert_int_equal(r.completed, 1);
  assert_int_equal(r.out_len, 9);
  assert_memory_equal(r.out, "asyncbody", 9);
  assert_int_equal(n_created, 2);
  assert_int_equal(n_disposed, 2);
  gh_pipeline_free(pl);
}

static void test_pending_completed_before_return(void **state)
{
  (void)state;
  uint32_t m = GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST);
  spec_t *a = add_spec("A", m, 0, GH_PRIORITY_HIGH);
  add_spec("B", m, 0, GH_PRIORITY_LOW);
  a->pending_at = GH_NOTIFY_BEGIN_REQUEST;
  a->pending_sync = true;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  assert_string_equal(trace, "A:BEGIN B:BEGIN A:END B:END ");
  assert_int_equal(r.completed, 1);
  assert_int_equal(n_disposed, 2);
  gh_pipeline_free(pl);
}

static void test_impersonate_site_and_auto_revert(void **state)
{
  (void)state;
  static const char *const kv[] = {"impersonate", "yes", NULL};
  uint32_t m = GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST) |
               GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER) |
               GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST);
  spec_t *a = add_spec("A", m, GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER),
                       GH_PRIORITY_MEDIUM);
  a->imp_at = GH_NOTIFY_BEGIN_REQUEST; /* impersonates and "forgets" to revert */
  gh_pipeline_t *pl = build(kv);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  fake_req_auth(&r);
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), 0);
  /* on_any asserts base at BEGIN's end->next call; EXEC runs as token 42 */
  assert_string_equal(trace, "A:BEGIN A:EXEC [imp=42] A:postEXEC A:END ");
  assert_int_equal(fake_sec_current, 0);
  assert_int_equal(fake_sec_closed, 1); /* the auth token closed exactly once */
  assert_int_equal(r.status, 200);
  gh_pipeline_free(pl);
}

static void test_impersonate_site_refuses_anonymous_and_identify(void **state)
{
  (void)state;
  static const char *const kv[] = {"impersonate", "yes", NULL};
  add_spec("A", GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER), 0, GH_PRIORITY_MEDIUM);
  gh_pipeline_t *pl = build(kv);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r);
  assert_int_equal(r.status, 401);
  assert_string_equal(trace, "");
  fake_req_init(&r, "GET", "/x");
  fake_req_auth(&r);
  r.auth.token = 43; /* IDENTIFY level */
  gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r);
  assert_int_equal(r.status, 403);
  assert_string_equal(trace, "");
  gh_pipeline_free(pl);
}

static void test_handler_only_on_its_site(void **state)
{
  (void)state;
  static const char *const kv[] = {"handler", "H2", NULL};
  spec_t *h1 = add_spec("H1", GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER), 0,
                        GH_PRIORITY_MEDIUM);
  spec_t *h2 = add_spec("H2", GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER), 0,
                        GH_PRIORITY_MEDIUM);
  h1->handler = h2->handler = true;
  gh_pipeline_t *pl = build(kv);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r);
  assert_string_equal(trace, "H2:EXEC [imp=0] ");
  assert_int_equal(n_created, 1);
  gh_pipeline_free(pl);
}

static void test_request_at_non_base_refused(void **state)
{
  (void)state;
  add_spec("A", GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST), 0, GH_PRIORITY_MEDIUM);
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  fake_sec_current = 42;
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_source_ops, &r), GH_ESTATE);
  assert_int_equal(r.status, 500);
  assert_int_equal(r.completed, 1);
  assert_string_equal(trace, "");
  fake_sec_current = 0;
  gh_pipeline_free(pl);
}

static void test_registration_errors(void **state)
{
  (void)state;
  gh_pipeline_t *pl = fake_pipeline(NULL);
  char err[256] = "";
  gh_module_abi_t abi = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "A"};
  add_spec("A", GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST), 0, GH_PRIORITY_MEDIUM);
  reg_fn_idx = 0;
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, err, sizeof(err)),
                   GH_EMODULE_DUPLICATE);
  assert_non_null(strstr(err, "already loaded"));
  abi.name = "B";
  abi.abi_version = 99;
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, err, sizeof(err)), GH_EMODULE_ABI);
  assert_non_null(strstr(err, "ABI version 99"));
  abi.abi_version = GH_MODULE_ABI_VERSION;
  abi.signature = "gatehouse-module/1/P4/L4/BE";
  assert_int_equal(gh_pipeline_add_module(pl, &abi, reg_fn, err, sizeof(err)), GH_EMODULE_ABI);
  assert_non_null(strstr(err, "build signature"));
  assert_int_equal(gh_pipeline_get_module_count(pl), 1);
  gh_pipeline_free(pl);
}

/* One request through a pipeline of the specs, on the site kv; the trace. */
static const char *run_one(const char *const *kv, fake_req_t *r, bool auth)
{
  gh_pipeline_t *pl = build(kv);
  fake_req_init(r, "GET", "/x");
  if (auth)
    fake_req_auth(r);
  log_req = r;
  (void)gh__pipeline_process_source(pl, NULL, &fake_source_ops, r);
  log_req = NULL;
  assert_int_equal(r->completed, 1);
  gh_pipeline_free(pl);
  return trace;
}

/* The engine skips the events no module registered for (the skip table);
 * each of these would break if it skipped one that has work. */
static void test_skip_post_only(void **state)
{
  fake_req_t r;
  (void)state;
  add_spec("A", 0, GH_NOTIFY_BIT(GH_NOTIFY_AUTHORIZE_REQUEST), GH_PRIORITY_MEDIUM);
  assert_string_equal(run_one(NULL, &r, false), "A:postAUTHZ ");
  assert_int_equal(r.status, 404); /* no handler ran */
}

static void test_skip_log_only(void **state)
{
  fake_req_t r;
  (void)state;
  add_spec("A", GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST), 0, GH_PRIORITY_MEDIUM);
  /* the 404 went out before LOG_REQUEST */
  assert_string_equal(run_one(NULL, &r, false), "A:LOG [404 sent=1] ");
}

static void test_skip_end_only(void **state)
{
  fake_req_t r;
  (void)state;
  add_spec("A", 0, GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST), GH_PRIORITY_MEDIUM);
  add_spec("B", GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST), 0, GH_PRIORITY_MEDIUM);
  assert_string_equal(run_one(NULL, &r, false), "B:END A:postEND ");
  assert_int_equal(r.status, 404);
  assert_true(r.ended_ok);
}

static void test_skip_finish_from_begin(void **state)
{
  fake_req_t r;
  spec_t *a;
  (void)state;
  a = add_spec("A",
               GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST) |
                   GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER),
               GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST), GH_PRIORITY_MEDIUM);
  add_spec("B", 0, GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST),
           GH_PRIORITY_MEDIUM);
  a->finish_at = GH_NOTIFY_BEGIN_REQUEST;
  assert_string_equal(run_one(NULL, &r, false), "A:BEGIN B:postLOG [403 sent=1] B:postEND ");
  assert_int_equal(r.status, 403);
}

static void test_skip_handler_elsewhere_is_404(void **state)
{
  static const char *const kv[] = {"handler", "other", NULL};
  fake_req_t r;
  spec_t *h;
  (void)state;
  h = add_spec("H", GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER),
               GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST), GH_PRIORITY_MEDIUM);
  h->handler = true;
  assert_string_equal(run_one(kv, &r, false), "H:postLOG [404 sent=1] ");
  assert_int_equal(r.status, 404);
}

static void test_skip_keeps_impersonation_check(void **state)
{
  /* no module on EXECUTE: impersonate = yes still refuses an anonymous
   * request there (401, not the no-handler 404) */
  static const char *const kv[] = {"impersonate", "yes", NULL};
  fake_req_t r;
  (void)state;
  add_spec("A", GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST), GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST),
           GH_PRIORITY_MEDIUM);
  assert_string_equal(run_one(kv, &r, false), "A:BEGIN A:postEND ");
  assert_int_equal(r.status, 401);
  trace[0] = '\0';
  assert_string_equal(run_one(kv, &r, true), "A:BEGIN A:postEND ");
  assert_int_equal(r.status, 404); /* allowed, and no handler */
}

static void test_skip_no_modules(void **state)
{
  fake_req_t r;
  (void)state;
  assert_string_equal(run_one(NULL, &r, false), "");
  assert_int_equal(r.status, 404);
  assert_true(r.ended_ok);
}

/* The request's end disposes every instance and runs every module-context
 * cleanup, whichever modules (first, last) made them. */
static void test_end_disposes_and_cleans_each_module(void **state)
{
  uint32_t begin = GH_NOTIFY_BIT(GH_NOTIFY_BEGIN_REQUEST);
  uint32_t end = GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST);
  uint32_t never = GH_NOTIFY_BIT(GH_NOTIFY_READ_ENTITY); /* no body is read */
  fake_req_t r;
  spec_t *a, *c;
  (void)state;
  a = add_spec("A", begin, 0, GH_PRIORITY_MEDIUM);
  add_spec("B", never, 0, GH_PRIORITY_MEDIUM);
  c = add_spec("C", end, 0, GH_PRIORITY_MEDIUM);
  c->ctx_at = GH_NOTIFY_END_REQUEST;
  assert_string_equal(run_one(NULL, &r, false), "A:BEGIN C:END ");
  assert_int_equal(n_created, 2);
  assert_int_equal(n_disposed, 2);
  assert_int_equal(n_cleaned, 1);
  trace[0] = '\0';
  n_created = n_disposed = 0;
  a->ctx_at = GH_NOTIFY_BEGIN_REQUEST;
  c->ctx_at = GH_NOTIFY_COUNT_;
  c->mask = never;
  n_cleaned = 0;
  assert_string_equal(run_one(NULL, &r, false), "A:BEGIN ");
  assert_int_equal(n_disposed, 1);
  assert_int_equal(n_cleaned, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_iis_order, setup),
      cmocka_unit_test_setup(test_priorities_and_send_response_reversed, setup),
      cmocka_unit_test_setup(test_finish_request, setup),
      cmocka_unit_test_setup(test_pending_resumed_from_other_thread, setup),
      cmocka_unit_test_setup(test_pending_completed_before_return, setup),
      cmocka_unit_test_setup(test_impersonate_site_and_auto_revert, setup),
      cmocka_unit_test_setup(test_impersonate_site_refuses_anonymous_and_identify, setup),
      cmocka_unit_test_setup(test_handler_only_on_its_site, setup),
      cmocka_unit_test_setup(test_request_at_non_base_refused, setup),
      cmocka_unit_test_setup(test_registration_errors, setup),
      cmocka_unit_test_setup(test_skip_post_only, setup),
      cmocka_unit_test_setup(test_skip_log_only, setup),
      cmocka_unit_test_setup(test_skip_end_only, setup),
      cmocka_unit_test_setup(test_skip_finish_from_begin, setup),
      cmocka_unit_test_setup(test_skip_handler_elsewhere_is_404, setup),
      cmocka_unit_test_setup(test_skip_keeps_impersonation_check, setup),
      cmocka_unit_test_setup(test_skip_no_modules, setup),
      cmocka_unit_test_setup(test_end_disposes_and_cleans_each_module, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

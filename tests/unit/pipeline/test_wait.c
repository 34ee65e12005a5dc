/* test_wait.c: gh_http_context_wait_fd (ABI 2.3) over the fake source: armed after the request
 * suspends, the callback continues the pipeline once, re-waits, errors, identity, notification. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <errno.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pl_fake.h"

static char trace[4096];

static void tr(const char *fmt, ...)
{
  va_list ap;
  size_t l = strlen(trace);
  va_start(ap, fmt);
  vsnprintf(trace + l, sizeof(trace) - l, fmt, ap);
  va_end(ap);
}

static const char *const nname[] = {"BEGIN",   "AUTHN",   "AUTHZ", "RESOLVE", "MAP",
                                    "ACQUIRE", "PREEXEC", "EXEC",  "RELEASE", "UPDATE",
                                    "LOG",     "END",     "SEND",  "READ",    "MAPPATH"};

/* What the modules do; reset per test. Module W (high priority) asks for
 * the wait at ask_at; module L (low priority) runs after it. */
static struct {
  gh_notification_t ask_at;
  gh_request_status_t ask_ret; /* W's return after asking */
  int rewaits;                 /* callbacks that wait again and return PENDING */
  gh_request_status_t cb_ret;  /* the last callback's return */
  bool cb_impersonates;        /* the callback impersonates and does not revert */
  bool cb_waits_no_pending;    /* the last callback asks for a wait but returns cb_ret */
  bool l_waits;                /* L asks for a wait (and returns CONTINUE) */
  bool l_async;                /* L returns PENDING; another thread completes */
  /* observed */
  int ask_rc, ask_again_rc, l_rc, einval[5];
  int cb_calls, cb_results[8];
  gh_notification_t cb_notif[8];
  gh_token_t cb_identity[8], cb_imp_identity;
  bool cb_arg_ok;
  int n_disposed;
} sc;

static int tag;
static pthread_t l_thread;
static bool l_started;

static gh_request_status_t w_cb(gh_http_context_t *ctx, int result, void *arg)
{
  int k = sc.cb_calls++;
  tr("W:cb(%d,%s) ", result, nname[gh_http_context_get_notification(ctx)]);
  if (k < 8) {
    sc.cb_results[k] = result;
    sc.cb_notif[k] = gh_http_context_get_notification(ctx);
    sc.cb_identity[k] = fake_sec_current;
  }
  sc.cb_arg_ok = arg == &tag;
  if (k < sc.rewaits && result >= 0) {
    if (gh_http_context_wait_fd(ctx, 10 + k, GH_HTTP_WAIT_OUT, 100 * (k + 2), w_cb, &tag) == 0)
      return GH_REQUEST_PENDING;
  }
  if (sc.cb_impersonates) {
    (void)gh_http_context_impersonate(ctx);
    sc.cb_imp_identity = fake_sec_current;
  }
  if (sc.cb_waits_no_pending)
    (void)gh_http_context_wait_fd(ctx, 99, GH_HTTP_WAIT_IN, -1, w_cb, &tag);
  gh_http_response_write(gh_http_context_get_response(ctx), "waited", 6);
  return sc.cb_ret;
}

static void ask_bad_args(gh_http_context_t *ctx)
{
  sc.einval[0] = gh_http_context_wait_fd(NULL, 7, GH_HTTP_WAIT_IN, -1, w_cb, &tag);
  sc.einval[1] = gh_http_context_wait_fd(ctx, -1, GH_HTTP_WAIT_IN, -1, w_cb, &tag);
  sc.einval[2] = gh_http_context_wait_fd(ctx, 7, 0, -1, w_cb, &tag);
  sc.einval[3] = gh_http_context_wait_fd(ctx, 7, 0x4u, -1, w_cb, &tag);
  sc.einval[4] = gh_http_context_wait_fd(ctx, 7, GH_HTTP_WAIT_IN, -1, NULL, &tag);
}

static gh_request_status_t w_any(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_notification_t n = gh_event_provider_get_notification(p);
  (void)m;
  tr("W:%s ", nname[n]);
  if (n != sc.ask_at)
    return GH_REQUEST_CONTINUE;
  ask_bad_args(ctx);
  sc.ask_rc = gh_http_context_wait_fd(ctx, 7, GH_HTTP_WAIT_IN, 500, w_cb, &tag);
  /* one wait per request: a second ask is refused */
  sc.ask_again_rc = gh_http_context_wait_fd(ctx, 8, GH_HTTP_WAIT_IN, 500, w_cb, &tag);
  return sc.ask_ret;
}

static void *l_complete(void *arg)
{
  usleep(20000);
  (void)gh_http_context_complete(arg, GH_REQUEST_CONTINUE);
  return NULL;
}

static gh_request_status_t l_any(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_notification_t n = gh_event_provider_get_notification(p);
  (void)m;
  tr("L:%s ", nname[n]);
  if (n == GH_NOTIFY_LOG_REQUEST || n == GH_NOTIFY_END_REQUEST)
    tr("[imp=%d] ", (int)fake_sec_current);
  if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER && sc.l_waits)
    sc.l_rc = gh_http_context_wait_fd(ctx, 21, GH_HTTP_WAIT_IN, -1, w_cb, &tag);
  if (n == GH_NOTIFY_EXECUTE_REQUEST_HANDLER && sc.l_async) {
    l_started = pthread_create(&l_thread, NULL, l_complete, ctx) == 0;
    return GH_REQUEST_PENDING;
  }
  return GH_REQUEST_CONTINUE;
}

static int m_create(void *fd, gh_http_context_t *ctx, void **ret)
{
  (void)fd;
  *ret = gh_http_context_alloc(ctx, 1);
  return 0;
}

static void m_dispose(void *fd, void *m)
{
  (void)fd;
  (void)m;
  sc.n_disposed++;
}

#define BITS                                                                                       \
  (GH_NOTIFY_BIT(GH_NOTIFY_AUTHORIZE_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER) | \
   GH_NOTIFY_BIT(GH_NOTIFY_LOG_REQUEST) | GH_NOTIFY_BIT(GH_NOTIFY_END_REQUEST))

static int reg(gh_module_registration_t *r, gh_module_request_cb cb, gh_module_priority_t prio)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .create = m_create, .dispose = m_dispose};
  for (int n = 0; n < GH_NOTIFY_COUNT_; n++)
    if (BITS & GH_NOTIFY_BIT(n))
      *gh__pl_factory_slot(&f, (gh_notification_t)n, false) = cb;
  assert_int_equal(gh_module_registration_set_factory(r, &f), 0);
  assert_int_equal(gh_module_registration_set_priority(r, BITS, prio), 0);
  return 0;
}

static int reg_w(uint32_t v, gh_module_registration_t *r, gh_module_server_t *srv)
{
  (void)v;
  (void)srv;
  return reg(r, w_any, GH_PRIORITY_HIGH);
}

static int reg_l(uint32_t v, gh_module_registration_t *r, gh_module_server_t *srv)
{
  (void)v;
  (void)srv;
  return reg(r, l_any, GH_PRIORITY_LOW);
}

static gh_pipeline_t *build(const char *const *kv)
{
  gh_pipeline_t *pl = fake_pipeline(kv);
  char err[256];
  gh_module_abi_t w = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "W"};
  gh_module_abi_t l = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "L"};
  assert_int_equal(gh_pipeline_add_module(pl, &w, reg_w, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_add_module(pl, &l, reg_l, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_start(pl), 0);
  return pl;
}

static int setup(void **state)
{
  (void)state;
  trace[0] = '\0';
  memset(&sc, 0, sizeof(sc));
  sc.ask_at = GH_NOTIFY_EXECUTE_REQUEST_HANDLER;
  sc.ask_ret = GH_REQUEST_PENDING;
  sc.cb_ret = GH_REQUEST_FINISH;
  sc.ask_rc = sc.ask_again_rc = sc.l_rc = 1;
  fake_sec_current = 0;
  l_started = false;
  return 0;
}

static int start(gh_pipeline_t *pl, fake_req_t *r, const gh__pl_source_ops_t *ops)
{
  fake_req_init(r, "GET", "/x");
  return gh__pipeline_process_source(pl, NULL, ops, r);
}

/* The handler asks, returns PENDING: the wait is armed once, after the
 * request suspended; READY on another thread runs the callback as part of
 * EXEC, and its FINISH skips the rest of EXEC to LOG, once. */
static void test_ready_finish(void **state)
{
  (void)state;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  assert_int_equal(sc.ask_rc, 0);
  assert_int_equal(sc.ask_again_rc, GH_ESTATE);
  for (int i = 0; i < 5; i++)
    assert_int_equal(sc.einval[i], -EINVAL);
  assert_int_equal(r.wait_calls, 1);
  assert_true(r.wait_suspended);
  assert_int_equal(r.wait_fd, 7);
  assert_int_equal(r.wait_events, GH_HTTP_WAIT_IN);
  assert_int_equal(r.wait_timeout_ms, 500);
  assert_int_equal(r.completed, 0);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC ");
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC W:cb(0,EXEC) W:LOG L:LOG [imp=0] W:END "
                             "L:END [imp=0] ");
  assert_int_equal(sc.cb_calls, 1);
  assert_true(sc.cb_arg_ok);
  assert_int_equal(r.completed, 1);
  assert_int_equal(r.status, 200);
  assert_memory_equal(r.out, "waited", 6);
  assert_int_equal(r.wait_calls, 1);
  assert_int_equal(sc.n_disposed, 2);
  gh_pipeline_free(pl);
}

/* CONTINUE from the callback goes on with the next module of the same
 * notification; the callback runs as the notification that asked (AUTHZ
 * here, not the one the thread last ran). */
static void test_continue_and_notification(void **state)
{
  (void)state;
  sc.ask_at = GH_NOTIFY_AUTHORIZE_REQUEST;
  sc.cb_ret = GH_REQUEST_CONTINUE;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  fake_wait_fire(&r, GH_HTTP_WAIT_TIMEOUT, 0);
  assert_string_equal(trace, "W:AUTHZ W:cb(1,AUTHZ) L:AUTHZ W:EXEC L:EXEC W:LOG L:LOG [imp=0] "
                             "W:END L:END [imp=0] ");
  assert_int_equal(sc.cb_notif[0], GH_NOTIFY_AUTHORIZE_REQUEST);
  assert_int_equal(sc.cb_results[0], GH_HTTP_WAIT_TIMEOUT);
  assert_int_equal(r.completed, 1);
  gh_pipeline_free(pl);
}

/* PENDING from a callback after another wait re-arms (after suspending
 * again); each wait calls back once. */
static void test_rewait(void **state)
{
  (void)state;
  sc.rewaits = 2;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0);
  assert_int_equal(r.wait_calls, 2);
  assert_int_equal(r.wait_fd, 10);
  assert_int_equal(r.wait_events, GH_HTTP_WAIT_OUT);
  assert_int_equal(r.wait_timeout_ms, 200);
  assert_int_equal(r.completed, 0);
  fake_wait_fire(&r, GH_HTTP_WAIT_TIMEOUT, 0);
  assert_int_equal(r.wait_calls, 3);
  assert_int_equal(r.wait_fd, 11);
  assert_true(r.wait_suspended);
  assert_int_equal(r.completed, 0);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC W:cb(0,EXEC) W:cb(1,EXEC) W:cb(0,EXEC) "
                             "W:LOG L:LOG [imp=0] W:END L:END [imp=0] ");
  assert_int_equal(sc.cb_calls, 3);
  assert_int_equal(r.completed, 1);
  assert_int_equal(r.wait_calls, 3);
  gh_pipeline_free(pl);
}

/* A wait asked for without returning PENDING is never armed. */
static void test_wait_without_pending_ignored(void **state)
{
  (void)state;
  sc.ask_ret = GH_REQUEST_CONTINUE;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), 0);
  assert_int_equal(sc.ask_rc, 0);
  assert_int_equal(r.wait_calls, 0);
  assert_int_equal(sc.cb_calls, 0);
  assert_int_equal(r.completed, 1);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC L:EXEC W:LOG L:LOG [imp=0] W:END "
                             "L:END [imp=0] ");
  gh_pipeline_free(pl);
}

/* Nor is one asked for by a wait's callback that returns CONTINUE: the
 * next module may ask for its own... */
static void test_callback_wait_without_pending_next_asks(void **state)
{
  (void)state;
  sc.cb_ret = GH_REQUEST_CONTINUE;
  sc.cb_waits_no_pending = true;
  sc.l_waits = true;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0);
  assert_int_equal(sc.l_rc, 0);
  assert_int_equal(r.wait_calls, 1);
  assert_int_equal(r.completed, 1);
  gh_pipeline_free(pl);
}

/* ...and a later PENDING without a wait (another thread completes) arms
 * nothing. */
static void test_callback_wait_without_pending_not_armed(void **state)
{
  (void)state;
  sc.cb_ret = GH_REQUEST_CONTINUE;
  sc.cb_waits_no_pending = true;
  sc.l_async = true;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0);
  assert_true(l_started);
  pthread_join(l_thread, NULL);
  assert_int_equal(r.wait_calls, 1); /* the callback's moot wait was not armed */
  assert_int_equal(r.completed, 1);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC W:cb(0,EXEC) L:EXEC W:LOG L:LOG [imp=0] "
                             "W:END L:END [imp=0] ");
  gh_pipeline_free(pl);
}

/* A source without waits, or one that cannot wait now: GH_EUNSUPPORTED,
 * and the module goes on without (here: CONTINUE). */
static void test_unsupported(void **state)
{
  (void)state;
  sc.ask_ret = GH_REQUEST_CONTINUE;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_source_ops), 0);
  assert_int_equal(sc.ask_rc, GH_EUNSUPPORTED);
  assert_int_equal(r.completed, 1);
  fake_req_init(&r, "GET", "/x");
  r.cannot_wait = true;
  sc.ask_rc = 1;
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_wait_source_ops, &r), 0);
  assert_int_equal(sc.ask_rc, GH_EUNSUPPORTED);
  assert_int_equal(r.wait_calls, 0);
  assert_int_equal(r.completed, 1);
  gh_pipeline_free(pl);
}

/* The source cannot arm the wait: the module's callback hears the error at
 * once (as part of EXEC) and the request ends once. */
static void test_arm_fails(void **state)
{
  (void)state;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  r.wait_fail = -EBADF;
  (void)gh__pipeline_process_source(pl, NULL, &fake_wait_source_ops, &r);
  assert_int_equal(r.wait_calls, 1);
  assert_int_equal(sc.cb_calls, 1);
  assert_int_equal(sc.cb_results[0], -EBADF);
  assert_int_equal(sc.cb_notif[0], GH_NOTIFY_EXECUTE_REQUEST_HANDLER);
  assert_int_equal(r.completed, 1);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC W:cb(-9,EXEC) W:LOG L:LOG [imp=0] W:END "
                             "L:END [imp=0] ");
  assert_int_equal(sc.n_disposed, 2);
  gh_pipeline_free(pl);
}

/* The event comes before wait_fd even returns (another worker took it):
 * the request was already suspended, so the callback owns it alone. */
static void test_event_before_arm_returns(void **state)
{
  (void)state;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  r.wait_inline = true;
  (void)gh__pipeline_process_source(pl, NULL, &fake_wait_source_ops, &r);
  assert_true(r.wait_suspended);
  assert_int_equal(sc.cb_calls, 1);
  assert_int_equal(r.completed, 1);
  assert_int_equal(sc.n_disposed, 2);
  assert_string_equal(trace, "W:AUTHZ L:AUTHZ W:EXEC W:cb(0,EXEC) W:LOG L:LOG [imp=0] W:END "
                             "L:END [imp=0] ");
  gh_pipeline_free(pl);
}

/* Identity: on an impersonating site the handler runs as the client, its
 * wait's callback at base; an impersonation the callback leaves is
 * reverted before the pipeline goes on. */
static void test_identity(void **state)
{
  (void)state;
  static const char *const kv[] = {"impersonate", "yes", NULL};
  sc.cb_impersonates = true;
  gh_pipeline_t *pl = build(kv);
  fake_req_t r;
  fake_req_init(&r, "GET", "/x");
  fake_req_auth(&r);
  assert_int_equal(gh__pipeline_process_source(pl, NULL, &fake_wait_source_ops, &r),
                   GH_REQUEST_PENDING);
  assert_int_equal(fake_sec_current, 0);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 0); /* aborts if left impersonating */
  assert_int_equal(sc.cb_identity[0], 0);
  assert_int_equal(sc.cb_imp_identity, 42);
  assert_int_equal(sc.cb_results[0], GH_HTTP_WAIT_READY);
  assert_non_null(strstr(trace, "W:cb(0,EXEC) W:LOG L:LOG [imp=0] W:END L:END [imp=0] "));
  assert_int_equal(r.completed, 1);
  gh_pipeline_free(pl);
}

/* A server thread that calls back while impersonating (DESIGN item 17):
 * the callback hears GH_ESTATE at base. */
static void test_called_back_impersonating(void **state)
{
  (void)state;
  gh_pipeline_t *pl = build(NULL);
  fake_req_t r;
  assert_int_equal(start(pl, &r, &fake_wait_source_ops), GH_REQUEST_PENDING);
  fake_wait_fire(&r, GH_HTTP_WAIT_READY, 42);
  assert_int_equal(sc.cb_results[0], GH_ESTATE);
  assert_int_equal(sc.cb_identity[0], 0);
  assert_int_equal(r.completed, 1);
  gh_pipeline_free(pl);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_ready_finish, setup),
      cmocka_unit_test_setup(test_continue_and_notification, setup),
      cmocka_unit_test_setup(test_rewait, setup),
      cmocka_unit_test_setup(test_wait_without_pending_ignored, setup),
      cmocka_unit_test_setup(test_callback_wait_without_pending_next_asks, setup),
      cmocka_unit_test_setup(test_callback_wait_without_pending_not_armed, setup),
      cmocka_unit_test_setup(test_unsupported, setup),
      cmocka_unit_test_setup(test_arm_fails, setup),
      cmocka_unit_test_setup(test_event_before_arm_returns, setup),
      cmocka_unit_test_setup(test_identity, setup),
      cmocka_unit_test_setup(test_called_back_impersonating, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

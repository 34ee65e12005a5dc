/* mod_abi20.c: a module built against the ABI 2.0 module.h (fixture): must still load and work. */
#include <errno.h>
#include <string.h>

/* abi20/gatehouse/module.h: the header before the factory got named,
 * tail-growing fields (include path set in meson.build) */
#include <gatehouse/module.h>

GH_MODULE_DEFINE("abi20");

static int started, created, disposed;

static int on_create(void *fd, gh_http_context_t *ctx, void **ret)
{
  (void)ctx;
  created++;
  *ret = fd;
  return 0;
}

static void on_dispose(void *fd, void *m)
{
  (void)fd;
  (void)m;
  disposed++;
}

static gh_request_status_t on_begin(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  (void)p;
  /* set in the array but not in the mask: never called */
  gh_http_response_set_header(gh_http_context_get_response(ctx), "X-Begin", "called",
                              GH_HEADER_REPLACE);
  return GH_REQUEST_CONTINUE;
}

static gh_request_status_t on_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)p;
  gh_http_response_printf(
      gh_http_context_get_response(ctx), "abi20 exec instance=%s started=%d created=%d disposed=%d",
      m != NULL && strcmp(m, "factory-data") == 0 ? "ok" : "wrong", started, created, disposed);
  return GH_REQUEST_CONTINUE;
}

static gh_request_status_t on_post_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  (void)m;
  gh_http_response_printf(gh_http_context_get_response(ctx), " post=%d",
                          gh_event_provider_is_post(p));
  return GH_REQUEST_FINISH;
}

static gh_global_status_t on_start(void *d, gh_module_server_t *s)
{
  (void)s;
  started = d != NULL && strcmp(d, "global-data") == 0 ? 1 : -1;
  return GH_GLOBAL_CONTINUE;
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  static char fdata[] = "factory-data", gdata[] = "global-data";
  gh_module_factory_t f = {.struct_size = sizeof(f)};
  gh_global_module_t g = {.struct_size = sizeof(g)};
  int ret;
  (void)server;
  /* what every module of that time did */
  if ((server_version >> 16) != GH_VERSION_MAJOR)
    return -ENOTSUP;
  f.create = on_create;
  f.dispose = on_dispose;
  f.factory_data = fdata;
  f.on_request[GH_NOTIFY_BEGIN_REQUEST] = on_begin;
  f.on_request[GH_NOTIFY_EXECUTE_REQUEST_HANDLER] = on_exec;
  f.on_post_request[GH_NOTIFY_EXECUTE_REQUEST_HANDLER] = on_post_exec;
  g.on_global[GH_GLOBAL_START] = on_start;
  g.global_data = gdata;
  ret = gh_module_registration_set_request_notifications(
      reg, &f, GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER),
      GH_NOTIFY_BIT(GH_NOTIFY_EXECUTE_REQUEST_HANDLER));
  if (ret == 0)
    ret = gh_module_registration_set_global_notifications(reg, &g, 1u << GH_GLOBAL_START);
  if (ret == 0)
    ret = gh_module_registration_set_handler(reg);
  return ret;
}

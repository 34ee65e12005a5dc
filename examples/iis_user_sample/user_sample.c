/* user_sample.c: the IIS IHttpUser::GetImpersonationToken sample as a gatehouse module (out of tree). */
#include <errno.h>
#include <string.h>

#include <gatehouse/module.h>

/*
 * The IIS sample registers for RQ_SEND_RESPONSE, and when the response goes
 * out it replaces it with
 *     <?xml version="1.0"?><user impersonationToken="valid" />
 * where "valid" / "NULL" says whether IHttpUser::GetImpersonationToken
 * returned a handle. Differences, on purpose:
 *  - the token handle is borrowed: the module never closes it (IIS code that
 *    called CloseHandle on it would break the server; here a close would
 *    just return GH_EBORROWED);
 *  - no exceptions: errors become a 500 through the response object.
 */

GH_MODULE_DEFINE("user_sample");

static gh_request_status_t on_send_response(void *module, gh_http_context_t *ctx,
                                            gh_event_provider_t *provider)
{
  gh_http_user_t *user;
  gh_http_response_t *response;
  gh_token_t token;
  const char *value;
  (void)module;
  if (ctx == NULL)
    return GH_REQUEST_CONTINUE;
  /* only once, when the headers have not gone out yet */
  if (!(gh_event_provider_get_send_flags(provider) & GH_SEND_RESPONSE_FLAG_HEADERS))
    return GH_REQUEST_CONTINUE;
  user = gh_http_context_get_user(ctx);
  response = gh_http_context_get_response(ctx);
  if (user == NULL || response == NULL)
    return GH_REQUEST_CONTINUE;
  gh_http_user_ref(user); /* ReferenceUser, as CUser does */
  token = gh_http_user_get_impersonation_token(user);
  value = token != 0 ? "valid" : "NULL";
  /* Clear the response before writing the XML (as the sample does), then
   * set text/xml so browsers display it. */
  if (gh_http_response_clear(response) == 0 &&
      gh_http_response_set_header(response, "Content-Type", "text/xml", GH_HEADER_REPLACE) == 0) {
    if (gh_http_response_printf(response,
                                "<?xml version=\"1.0\"?><user impersonationToken=\"%s\" />\n",
                                value) < 0)
      gh_http_response_set_status(response, 500, "Server Error");
  }
  gh_http_user_unref(user); /* DereferenceUser */
  return GH_REQUEST_CONTINUE;
}

/* RegisterModule */
GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  /* the callbacks set are the notifications registered for (CHttpModule's
   * overridden On* methods); the loader has checked the module's ABI */
  gh_module_factory_t factory = {.struct_size = sizeof(factory),
                                 .on_send_response = on_send_response};
  (void)server_version;
  (void)server;
  return gh_module_registration_set_factory(reg, &factory);
}

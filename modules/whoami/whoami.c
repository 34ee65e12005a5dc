/* whoami.c: handler module that writes the request's user as XML, or JSON on Accept:
 * application/json. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/module.h>

GH_MODULE_DEFINE("whoami");

/* Escapes s for an XML attribute or a JSON string into out (truncating). */
static void esc(const char *s, bool json, char *out, size_t len)
{
  size_t o = 0;
  for (; s && *s && o + 8 < len; s++) {
    unsigned char c = (unsigned char)*s;
    const char *rep = NULL;
    char tmp[8];
    if (!json) {
      rep = c == '&'    ? "&amp;"
            : c == '<'  ? "&lt;"
            : c == '>'  ? "&gt;"
            : c == '"'  ? "&quot;"
            : c == '\'' ? "&apos;"
                        : NULL;
      if (rep == NULL && c < 0x20) {
        snprintf(tmp, sizeof(tmp), "&#%u;", c);
        rep = tmp;
      }
    } else {
      rep = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
      if (rep == NULL && c < 0x20) {
        snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        rep = tmp;
      }
    }
    if (rep != NULL) {
      size_t n = strlen(rep);
      memcpy(out + o, rep, n);
      o += n;
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
}

static bool wants_json(gh_http_request_t *req)
{
  const char *a = gh_http_request_get_header(req, "Accept");
  return a != NULL && strstr(a, "application/json") != NULL;
}

static gh_request_status_t on_execute(void *module, gh_http_context_t *ctx,
                                      gh_event_provider_t *prov)
{
  gh_http_user_t *user = gh_http_context_get_user(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  bool json = wants_json(gh_http_context_get_request(ctx));
  /* Like the IIS sample: a borrowed handle, NULL (0) when there is none.
   * It is not closed here: it belongs to the server. */
  gh_token_t tok = gh_http_user_get_impersonation_token(user);
  const char *level = gh_http_user_get_variable(user, "level");
  const char *uid = gh_http_user_get_variable(user, "uid");
  const char *groups = gh_http_user_get_variable(user, "groups");
  const char *session = NULL;
  char name[768], type[128], logon[384];
  char *sids = NULL;
  gh_token_statistics_t st;
  (void)module;
  (void)prov;
  if (tok != 0 && (level == NULL || uid == NULL || groups == NULL)) {
    /* a token always has these: missing means the server ran out of
     * memory, and a page with blank ids would be a wrong answer */
    gh_http_response_send_error(resp, 500, NULL);
    return GH_REQUEST_FINISH;
  }
  /* Active Directory users: the user's SID, then the groups' (verified PAC
   * or the DC); "" for others. JSON gets them quoted. */
  if (tok != 0 && gh_token_get_statistics(tok, &st) == 0) {
    size_t len = (size_t)st.sid_count * (GH_TOKEN_SID_MAX + 3) + 1;
    sids = malloc(len);
    if (sids == NULL || gh_token_get_sids(tok, sids, len) < 0) {
      free(sids);
      gh_http_response_send_error(resp, 500, NULL);
      return GH_REQUEST_FINISH;
    }
    if (json && sids[0] != '\0') { /* a,b -> "a","b" (SIDs hold no quote) */
      char *q = malloc(len), *o = q;
      if (q == NULL) {
        free(sids);
        gh_http_response_send_error(resp, 500, NULL);
        return GH_REQUEST_FINISH;
      }
      *o++ = '"';
      for (const char *p = sids; *p; p++) {
        if (*p == ',') {
          memcpy(o, "\",\"", 3);
          o += 3;
        } else {
          *o++ = *p;
        }
      }
      *o++ = '"';
      *o = '\0';
      free(sids);
      sids = q;
    }
  }
  if (gh_http_context_get_server_variable(ctx, "AUTH_SESSION", &session) != 0)
    session = "";
  esc(gh_http_user_get_name(user), json, name, sizeof(name));
  esc(gh_http_user_get_auth_type(user), json, type, sizeof(type));
  esc(gh_http_user_get_local_name(user), json, logon, sizeof(logon));
  gh_http_response_clear(resp);
  gh_http_response_set_header(resp, "Cache-Control", "no-store", GH_HEADER_REPLACE);
  if (json) {
    gh_http_response_set_header(resp, "Content-Type", "application/json", GH_HEADER_REPLACE);
    gh_http_response_printf(resp,
                            "{\"name\":\"%s\",\"authType\":\"%s\",\"logonUser\":\"%s\","
                            "\"impersonationToken\":\"%s\",\"level\":\"%s\",\"uid\":%s,"
                            "\"groups\":[%s],\"sids\":[%s],\"session\":\"%s\"}\n",
                            name, type, logon, tok ? "valid" : "NULL", level ? level : "",
                            uid ? uid : "null", groups ? groups : "", sids ? sids : "", session);
  } else {
    gh_http_response_set_header(resp, "Content-Type", "text/xml; charset=utf-8", GH_HEADER_REPLACE);
    gh_http_response_printf(resp,
                            "<?xml version=\"1.0\"?>\n<user name=\"%s\" authType=\"%s\" "
                            "logonUser=\"%s\" impersonationToken=\"%s\" level=\"%s\" uid=\"%s\" "
                            "groups=\"%s\" sids=\"%s\" session=\"%s\"/>\n",
                            name, type, logon, tok ? "valid" : "NULL", level ? level : "",
                            uid ? uid : "", groups ? groups : "", sids ? sids : "", session);
  }
  free(sids);
  return GH_REQUEST_FINISH;
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  (void)server_version;
  (void)server;
  return gh_module_registration_set_execute_handler(reg, on_execute);
}

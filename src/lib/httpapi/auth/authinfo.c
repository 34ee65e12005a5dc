/* authinfo.c: public helpers of the auth-info record (status names, packed-context lifetime, settings defaults). */
#include <string.h>

#include <gssapi/gssapi.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>

const char *gh_auth_info_sec_status_text(const gh_auth_info_t *info)
{
  return info ? info->sec_status_text : "";
}

const char *gh_auth_status_name(gh_auth_status_t status)
{
  switch (status) {
  case GH_AUTH_STATUS_SUCCESS:
    return "SUCCESS";
  case GH_AUTH_STATUS_NOT_AUTHENTICATED:
    return "NOT_AUTHENTICATED";
  case GH_AUTH_STATUS_FAILURE:
    return "FAILURE";
  }
  return "UNKNOWN";
}

const char *gh_auth_type_name(gh_auth_type_t type)
{
  switch (type) {
  case GH_AUTH_TYPE_NONE:
    return "NONE";
  case GH_AUTH_TYPE_BASIC:
    return "Basic";
  case GH_AUTH_TYPE_NTLM:
    return "NTLM";
  case GH_AUTH_TYPE_NEGOTIATE:
    return "Negotiate";
  case GH_AUTH_TYPE_KERBEROS:
    return "Kerberos";
  case GH_AUTH_TYPE_PEER:
    return "Peer";
  }
  return "UNKNOWN";
}

int gh_auth_packed_context_lifetime(const gh_auth_info_t *info, uint32_t *ret_seconds)
{
  gss_buffer_desc buf;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  OM_uint32 maj, min, lifetime = 0;
  int ret = 0;

  if (!info || !info->packed_context || info->packed_context_len == 0) {
    ret = GH_ENOT_FOUND;
    goto out;
  }
  buf.length = info->packed_context_len;
  buf.value = (void *)info->packed_context;
  maj = gss_import_sec_context(&min, &buf, &ctx);
  if (GSS_ERROR(maj)) {
    ret = GH_EGSS;
    goto out;
  }
  maj = gss_context_time(&min, ctx, &lifetime);
  if (maj == GSS_S_CONTEXT_EXPIRED) {
    lifetime = 0;
  } else if (GSS_ERROR(maj)) {
    ret = GH_EGSS;
    goto out;
  }
  *ret_seconds = lifetime == GSS_C_INDEFINITE ? UINT32_MAX : lifetime;
out:
  if (ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  return ret;
}

void gh_auth_settings_init(gh_auth_settings_t *settings)
{
  memset(settings, 0, sizeof(*settings));
  settings->persist = GH_AUTH_PERSIST_NTLM;
  settings->max_token_size = GH_AUTH_MAX_TOKEN_DEFAULT;
  settings->channel_binding = GH_AUTH_CB_MEDIUM;
}

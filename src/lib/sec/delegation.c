/* delegation.c: cloaking for outbound Kerberos and storing delegated credentials into a client-owned ccache. */
#include <errno.h>
#include <string.h>

#include <gssapi/gssapi_ext.h>

#include "sec/sec_internal.h"

void gh_cloak_init(gh_cloak_t *cloak, gh_cloak_mode_t mode)
{
  cloak->mode = mode;
  cloak->captured = false;
  cloak->token = GH_TOKEN_NULL;
}

void gh_cloak_done(gh_cloak_t *cloak)
{
  if (cloak != NULL && cloak->token != GH_TOKEN_NULL) {
    gh_token_close(cloak->token);
    cloak->token = GH_TOKEN_NULL;
  }
}

/* The thread's current identity: an owned handle, or NULL for the service. */
static int current_identity(gh_token_t *ret_token)
{
  int rc = gh_thread_get_token(ret_token);
  if (rc == GH_ENOT_IMPERSONATING) {
    *ret_token = GH_TOKEN_NULL;
    rc = 0;
  }
  return rc;
}

int gh_cloak_identity(gh_cloak_t *cloak, gh_token_t *ret_token)
{
  gh_token_t t = GH_TOKEN_NULL;
  int rc = 0;

  if (cloak == NULL || ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  switch (cloak->mode) {
  case GH_CLOAK_NONE:
    break;
  case GH_CLOAK_DYNAMIC:
    rc = current_identity(&t);
    break;
  case GH_CLOAK_STATIC:
    if (!cloak->captured) {
      rc = current_identity(&cloak->token);
      if (rc != 0)
        goto out;
      cloak->captured = true;
    }
    if (cloak->token != GH_TOKEN_NULL)
      rc = gh_token_open_handle(cloak->token, &t);
    break;
  default:
    rc = -EINVAL;
    break;
  }
  if (rc == 0)
    *ret_token = t;
out:
  return rc;
}

int gh_cloak_cred(gh_cloak_t *cloak, gss_cred_id_t *ret_cred, gh_token_t *ret_token)
{
  gh_token_t t = GH_TOKEN_NULL;
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  int rc;

  if (ret_cred == NULL || ret_token == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh_cloak_identity(cloak, &t);
  if (rc != 0 || t == GH_TOKEN_NULL)
    goto out;
  rc = gh_token_get_delegated_cred(t, &cred);
  if (rc == 0 && cred == GSS_C_NO_CREDENTIAL)
    rc = GH_EBAD_IMPERSONATION_LEVEL; /* never fall back to the service */
out:
  if (rc == 0) {
    *ret_cred = cred;
    *ret_token = t;
  } else if (t != GH_TOKEN_NULL) {
    gh_token_close(t);
  }
  return rc;
}

int gh_token_store_delegated_ccache(gh_token_t token, const char *ccache_name)
{
  gh__token_t *t = NULL;
  gh__sec_saved_t saved;
  OM_uint32 major, minor;
  gss_key_value_element_desc el = {.key = "ccache", .value = ccache_name};
  gss_key_value_set_desc store = {.count = 1, .elements = &el};
  int rc;

  if (ccache_name == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get(token, &t);
  if (rc != 0)
    goto out;
  if (t->level != GH_LEVEL_DELEGATE) {
    rc = GH_EBAD_IMPERSONATION_LEVEL;
    goto out;
  }
  if (t->cred == NULL || t->cred->cred == GSS_C_NO_CREDENTIAL) {
    rc = GH_ENOT_FOUND;
    goto out;
  }
  rc = gh__sec_enter(t, &t->own, &saved);
  if (rc != 0)
    goto out;
  major = gss_store_cred_into(&minor, t->cred->cred, GSS_C_INITIATE, GSS_C_NO_OID, 1, 0,
                              &store, NULL, NULL);
  gh__sec_leave(&saved);
  if (GSS_ERROR(major))
    rc = GH_EGSS;
out:
  gh__token_unref(t);
  return rc;
}

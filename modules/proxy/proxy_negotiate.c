/* proxy_negotiate.c: Kerberos to the upstream: a GSS initiator context as the client (delegated or
 * S4U2Proxy credential) with mutual authentication checked. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <openssl/evp.h>

#include "proxy_errf.h"
#include "proxy_negotiate.h"

#define MAX_TOKEN (64 * 1024) /* decoded bytes of an upstream's token */

struct proxy_negotiate {
  gss_ctx_id_t ctx;
  gss_cred_id_t cred;
  gss_name_t target;
};

static gss_OID_desc krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};

/* "what: major text: minor text" into err */
static void gss_err(char *err, size_t errlen, const char *what, OM_uint32 maj, OM_uint32 min)
{
  char mtxt[256] = "", ntxt[256] = "";
  OM_uint32 m2, ctx = 0;
  gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
  if (gss_display_status(&m2, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &b) == GSS_S_COMPLETE) {
    snprintf(mtxt, sizeof(mtxt), "%.*s", (int)b.length, (const char *)b.value);
    gss_release_buffer(&m2, &b);
  }
  ctx = 0;
  if (min != 0 &&
      gss_display_status(&m2, min, GSS_C_MECH_CODE, &krb5_oid, &ctx, &b) == GSS_S_COMPLETE) {
    snprintf(ntxt, sizeof(ntxt), "%.*s", (int)b.length, (const char *)b.value);
    gss_release_buffer(&m2, &b);
  }
  proxy_errf(err, errlen, "%s: %s%s%s", what, mtxt, ntxt[0] ? ": " : "", ntxt);
}

void proxy_negotiate_free(proxy_negotiate_t *n)
{
  OM_uint32 min;
  if (n == NULL)
    return;
  if (n->ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&min, &n->ctx, GSS_C_NO_BUFFER);
  if (n->cred != GSS_C_NO_CREDENTIAL)
    gss_release_cred(&min, &n->cred);
  if (n->target != GSS_C_NO_NAME)
    gss_release_name(&min, &n->target);
  free(n);
}

/* spn as a GSS name: "svc/host[@REALM]" a krb5 principal, "svc@host" host-based. */
static int import_spn(const char *spn, gss_name_t *ret, char *err, size_t errlen)
{
  gss_buffer_desc b = {strlen(spn), (void *)spn};
  gss_OID type =
      strchr(spn, '/') != NULL ? (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME : GSS_C_NT_HOSTBASED_SERVICE;
  OM_uint32 min, maj = gss_import_name(&min, &b, type, ret);
  if (GSS_ERROR(maj)) {
    gss_err(err, errlen, "upstream_spn", maj, min);
    return -EINVAL;
  }
  return 0;
}

/* The client's credential from the request's ccache (never the default one). */
static int client_cred(const char *ccache, gss_cred_id_t *ret, char *err, size_t errlen)
{
  gss_OID_set_desc mechs = {1, &krb5_oid};
  gss_key_value_element_desc el = {"ccache", ccache};
  gss_key_value_set_desc store = {1, &el};
  OM_uint32 min, maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                             GSS_C_INITIATE, &store, ret, NULL, NULL);
  if (GSS_ERROR(maj)) {
    gss_err(err, errlen, "the client's credential", maj, min);
    return -ENOKEY;
  }
  return 0;
}

static char *negotiate_value(const gss_buffer_desc *tok)
{
  size_t len = 10 + 4 * ((tok->length + 2) / 3) + 1;
  char *v = malloc(len);
  if (v == NULL || tok->length > MAX_TOKEN) {
    free(v);
    return NULL;
  }
  memcpy(v, "Negotiate ", 10);
  EVP_EncodeBlock((unsigned char *)v + 10, tok->value, (int)tok->length);
  return v;
}

int proxy_negotiate_start(const char *ccache, const char *spn, proxy_negotiate_t **ret_n,
                          char **ret_value, char *err, size_t errlen)
{
  proxy_negotiate_t *n = NULL;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min;
  char *value = NULL;
  int ret;

  if (ccache == NULL || ccache[0] == '\0' || spn == NULL || spn[0] == '\0' || ret_n == NULL ||
      ret_value == NULL) {
    proxy_errf(err, errlen, "no credential cache or no upstream_spn");
    ret = -EINVAL;
    goto out;
  }
  n = calloc(1, sizeof(*n));
  if (n == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  ret = import_spn(spn, &n->target, err, errlen);
  if (ret == 0)
    ret = client_cred(ccache, &n->cred, err, errlen);
  if (ret != 0)
    goto out;
  maj = gss_init_sec_context(&min, n->cred, &n->ctx, n->target, &krb5_oid, GSS_C_MUTUAL_FLAG, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
  if (GSS_ERROR(maj) || out.length == 0) {
    gss_err(err, errlen, spn, maj, min);
    ret = -ENOKEY;
    goto out;
  }
  value = negotiate_value(&out);
  if (value == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  *ret_n = n;
  *ret_value = value;
  n = NULL;
  ret = 0;
out:
  gss_release_buffer(&min, &out);
  proxy_negotiate_free(n);
  return ret;
}

const char *proxy_negotiate_token_of(const char *value, size_t *ret_len)
{
  const char *p;
  size_t len;
  if (value == NULL)
    return NULL;
  value += strspn(value, " \t");
  if (strncasecmp(value, "Negotiate", 9) != 0 || (value[9] != ' ' && value[9] != '\t'))
    return NULL;
  p = value + 9 + strspn(value + 9, " \t");
  len = strcspn(p, " \t,");
  if (len == 0 || p[len + strspn(p + len, " \t")] != '\0')
    return NULL; /* no token, or something after it */
  *ret_len = len;
  return p;
}

/* base64 (with padding) into a malloc'd buffer; -EBADMSG when it is not. */
static int decode_b64(const char *s, size_t len, unsigned char **ret, size_t *ret_len)
{
  unsigned char *buf;
  int n, pads;
  if (len == 0 || len % 4 != 0 || len / 4 * 3 > MAX_TOKEN)
    return -EBADMSG;
  buf = malloc(len / 4 * 3 + 1);
  if (buf == NULL)
    return -ENOMEM;
  pads = (s[len - 1] == '=') + (s[len - 2] == '=');
  n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
  /* EVP_DecodeBlock counts the padding as zero bytes */
  if (n < pads) {
    free(buf);
    return -EBADMSG;
  }
  n -= pads;
  *ret = buf;
  *ret_len = (size_t)n;
  return 0;
}

int proxy_negotiate_finish(proxy_negotiate_t *n, const char *const *values, size_t n_values,
                           char *err, size_t errlen)
{
  gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min, flags = 0;
  unsigned char *raw = NULL;
  const char *tok = NULL;
  size_t tlen = 0, rlen = 0;
  int ret;

  for (size_t i = 0; i < n_values && tok == NULL; i++)
    tok = proxy_negotiate_token_of(values[i], &tlen);
  if (n == NULL || tok == NULL) {
    proxy_errf(err, errlen,
               "the upstream did not authenticate itself (no WWW-Authenticate: Negotiate "
               "token on its response)");
    ret = -EBADMSG;
    goto out;
  }
  ret = decode_b64(tok, tlen, &raw, &rlen);
  if (ret != 0) {
    proxy_errf(err, errlen, "the upstream's Negotiate token is not base64");
    goto out;
  }
  in.value = raw;
  in.length = rlen;
  maj = gss_init_sec_context(&min, n->cred, &n->ctx, n->target, &krb5_oid, GSS_C_MUTUAL_FLAG, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, &flags, NULL);
  if (maj != GSS_S_COMPLETE || !(flags & GSS_C_MUTUAL_FLAG)) {
    if (GSS_ERROR(maj))
      gss_err(err, errlen, "the upstream's mutual authentication", maj, min);
    else
      proxy_errf(err, errlen, "the upstream's mutual authentication did not complete");
    ret = -EPERM;
    goto out;
  }
  ret = 0;
out:
  gss_release_buffer(&min, &out);
  free(raw);
  return ret;
}

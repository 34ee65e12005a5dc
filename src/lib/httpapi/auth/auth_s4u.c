/* auth_s4u.c: S4U protocol transition and constrained delegation — a Kerberos credential for a
 * client signed in with Basic, NTLM or as a Unix peer, obtained with the service's keytab, into the
 * request's delegated ccache. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <openssl/rand.h>

#include "httpapi/auth/auth_engine.h"
#include "util/alloc.h"

/*
 * MIT's gss_acquire_cred_impersonate_name does S4U2Self with the service's
 * own initiator credential (a TGT for s4u_principal from the keytab, kept
 * in a MEMORY ccache of this process); gss_init_sec_context with the result
 * does S4U2Proxy to a target. gss_store_cred of that credential would write
 * the service's TGT into the ccache as well (MIT's "proxy_impersonator"
 * form, so that a later GSS initiator can do S4U2Proxy itself): that TGT
 * lets its holder act as the service, so the client's ccache gets only the
 * client's own tickets (the S4U2Self evidence ticket and the S4U2Proxy
 * ticket of each target), copied one by one; the TGT and the config entries
 * stay in a scratch ccache that is destroyed.
 */

static void s4u_log(const gh__auth_engine_t *e, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s4u_log(const gh__auth_engine_t *e, int priority, const char *fmt, ...)
{
  char msg[600];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gh__auth_log(e->log_cb, e->log_arg, priority, msg);
}

static void gss_text(OM_uint32 maj, OM_uint32 min, char *buf, size_t len)
{
  gh__auth_gss_text(buf, len, maj, min, &gh__auth_krb5_oid);
}

/* "service/host" (or "service@host") as a host-based service name */
static bool import_target(const char *spn, size_t n, gss_name_t *ret)
{
  char buf[256];
  gss_buffer_desc b;
  OM_uint32 min;

  if (n == 0 || n >= sizeof(buf))
    return false;
  memcpy(buf, spn, n);
  buf[n] = '\0';
  char *slash = strchr(buf, '/');
  if (slash)
    *slash = '@';
  b.value = buf;
  b.length = n;
  return !GSS_ERROR(gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, ret));
}

static bool import_princ(const char *s, gss_name_t *ret)
{
  gss_buffer_desc b = {strlen(s), (void *)s};
  OM_uint32 min;

  return !GSS_ERROR(gss_import_name(&min, &b, GSS_KRB5_NT_PRINCIPAL_NAME, ret));
}

/* S4U2Proxy to each target; returns how many the KDC granted. */
static unsigned proxy_targets(const gh__auth_engine_t *e, gss_cred_id_t imp, const char *targets,
                              const char *user)
{
  unsigned ok = 0;
  const char *p = targets;

  while (p && *p) {
    size_t n;
    gss_name_t t = GSS_C_NO_NAME;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    OM_uint32 maj, min, min2;
    char text[GH_AUTH_SEC_TEXT_MAX];

    while (*p == ' ' || *p == ',')
      p++;
    n = strcspn(p, " ,");
    if (n == 0)
      break;
    if (!import_target(p, n, &t)) {
      s4u_log(e, LOG_ERR, "s4u: target '%.*s' is not a service name (service/host)", (int)n, p);
    } else {
      maj =
          gss_init_sec_context(&min, imp, &ctx, t, &gh__auth_krb5_oid, 0, 0,
                               GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
      if (GSS_ERROR(maj)) {
        gss_text(maj, min, text, sizeof(text));
        s4u_log(e, LOG_WARNING,
                "s4u: S4U2Proxy to %.*s for %s refused: %s (is it in the service account's "
                "msDS-AllowedToDelegateTo: samba-tool delegation add-service / Set-ADUser "
                "-Add @{'msDS-AllowedToDelegateTo'=...}?); the request is served without it",
                (int)n, p, user, text);
      } else {
        ok++;
      }
      gss_release_buffer(&min2, &out);
      gss_delete_sec_context(&min2, &ctx, GSS_C_NO_BUFFER);
      gss_release_name(&min2, &t);
    }
    p += n;
  }
  return ok;
}

/* The client's own tickets from the scratch ccache into a new MEMORY ccache;
 * a ticket cached under the referral (empty) realm is stored under its
 * real service name too, so non-GSS tools (kvno) find it. */
static int copy_user_tickets(krb5_context k, krb5_ccache from, const char *to_name)
{
  krb5_ccache to = NULL;
  krb5_principal client = NULL;
  krb5_cc_cursor cur;
  krb5_creds c;
  int ret = -1, n = 0;

  if (krb5_cc_get_principal(k, from, &client) || krb5_cc_resolve(k, to_name, &to) ||
      krb5_cc_initialize(k, to, client))
    goto out;
  if (krb5_cc_start_seq_get(k, from, &cur))
    goto out;
  while (krb5_cc_next_cred(k, from, &cur, &c) == 0) {
    if (!krb5_is_config_principal(k, c.server) && krb5_principal_compare(k, c.client, client) &&
        !(c.server->length == 2 && c.server->data[0].length == 6 &&
          memcmp(c.server->data[0].data, "krbtgt", 6) == 0)) {
      if (krb5_cc_store_cred(k, to, &c) == 0)
        n++;
      if (c.server->realm.length == 0) {
        krb5_ticket *t = NULL;
        if (krb5_decode_ticket(&c.ticket, &t) == 0) {
          krb5_principal keep = c.server;
          c.server = t->server;
          krb5_cc_store_cred(k, to, &c);
          c.server = keep;
          krb5_free_ticket(k, t);
        }
      }
    }
    krb5_free_cred_contents(k, &c);
  }
  krb5_cc_end_seq_get(k, from, &cur);
  ret = n > 0 ? 0 : -1;
out:
  if (to && ret != 0)
    krb5_cc_destroy(k, to);
  else if (to)
    krb5_cc_close(k, to);
  krb5_free_principal(k, client);
  return ret;
}

void gh__auth_s4u(gh__auth_engine_t *e, gh__auth_result_t *r, const gh_auth_settings_t *site,
                  const char *local)
{
  const char *bs = strrchr(local, '\\');
  const char *user = bs ? bs + 1 : local;
  gss_name_t svc_name = GSS_C_NO_NAME, user_name = GSS_C_NO_NAME;
  gss_cred_id_t svc = GSS_C_NO_CREDENTIAL, imp = GSS_C_NO_CREDENTIAL;
  gss_OID_set_desc mechs = {1, &gh__auth_krb5_oid};
  char svc_cc[64], tmp_cc[96], out_cc[96], text[GH_AUTH_SEC_TEXT_MAX];
  unsigned char rnd[8] = {0};
  unsigned long long seq, rv;
  OM_uint32 maj, min;
  krb5_context k = NULL;
  krb5_ccache tmp = NULL;

  if (!e->s4u_principal || !e->keytab || !user[0])
    return;
  snprintf(svc_cc, sizeof(svc_cc), "MEMORY:gh-s4u-svc-%ld", (long)getpid());
  gss_key_value_element_desc el[2] = {{"client_keytab", e->keytab}, {"ccache", svc_cc}};
  gss_key_value_set_desc svc_store = {2, el};
  if (!import_princ(e->s4u_principal, &svc_name) || !import_princ(user, &user_name)) {
    s4u_log(e, LOG_ERR, "s4u: cannot import the names %s / %s", e->s4u_principal, user);
    goto out;
  }
  maj = gss_acquire_cred_from(&min, svc_name, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &svc_store,
                              &svc, NULL, NULL);
  if (!GSS_ERROR(maj))
    maj = gss_acquire_cred_impersonate_name(&min, svc, user_name, GSS_C_INDEFINITE, &mechs,
                                            GSS_C_INITIATE, &imp, NULL, NULL);
  if (GSS_ERROR(maj)) {
    gss_text(maj, min, text, sizeof(text));
    s4u_log(e, LOG_WARNING,
            "s4u: S4U2Self for %s as %s refused: %s (the service account needs protocol "
            "transition: samba-tool delegation for-any-protocol <account> on / \"Trust this "
            "user for delegation to specified services only: use any authentication "
            "protocol\"); the request is served without a credential",
            user, e->s4u_principal, text);
    goto out;
  }
  if (site->s4u == GH_AUTH_S4U_PROXY && site->s4u_targets)
    proxy_targets(e, imp, site->s4u_targets, user);
  seq = (unsigned long long)atomic_fetch_add(&e->seq, 1);
  RAND_bytes(rnd, sizeof(rnd));
  memcpy(&rv, rnd, sizeof(rv));
  snprintf(tmp_cc, sizeof(tmp_cc), "MEMORY:gh-s4u-tmp-%ld-%llu-%016llx", (long)getpid(), seq, rv);
  snprintf(out_cc, sizeof(out_cc), "MEMORY:gh-deleg-%ld-%llu-%016llx", (long)getpid(), seq, rv);
  {
    gss_key_value_element_desc tel = {"ccache", tmp_cc};
    gss_key_value_set_desc tst = {1, &tel};
    maj =
        gss_store_cred_into(&min, imp, GSS_C_INITIATE, &gh__auth_krb5_oid, 1, 0, &tst, NULL, NULL);
  }
  k = gh__auth_kctx_get(e);
  if (!k || krb5_cc_resolve(k, tmp_cc, &tmp) != 0) {
    tmp = NULL;
    goto out;
  }
  if (GSS_ERROR(maj) || copy_user_tickets(k, tmp, out_cc) != 0) {
    gss_text(maj, min, text, sizeof(text));
    s4u_log(e, LOG_ERR, "s4u: the tickets for %s could not be stored: %s", user, text);
    goto out;
  }
  r->mem_ccache = gh__strdup(out_cc);
  if (!r->mem_ccache) {
    krb5_ccache o = NULL;
    if (krb5_cc_resolve(k, out_cc, &o) == 0)
      krb5_cc_destroy(k, o);
  }
out:
  if (tmp)
    krb5_cc_destroy(k, tmp);
  if (k)
    gh__auth_kctx_put(e, k);
  gss_release_cred(&min, &imp);
  gss_release_cred(&min, &svc);
  gss_release_name(&min, &user_name);
  gss_release_name(&min, &svc_name);
}

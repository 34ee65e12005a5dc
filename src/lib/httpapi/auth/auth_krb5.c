/* auth_krb5.c: Kerberos in the GSS step — replay check, retry after a keytab change, failures. */
#include <stdint.h>
#include <stdio.h>

#include <gssapi/gssapi.h>
#include <krb5.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"

/*
 * The accept itself is MIT's (auth_gss.c gives it the krb5 or SPNEGO
 * credential of a set, acquired from the MEMORY keytab with the cred-store
 * option rcache = none:, auth_cred.c). Around it, for a token that holds a
 * Kerberos AP-REQ (found by the strict DER walker, auth_rcache.c):
 *
 *  - before: the replay check against the engine's in-memory replay cache
 *    (gh__krb5_replay_check; see auth.md "Replay cache");
 *  - after a failure for want of a key: the keytab file re-read and the
 *    accept tried once more (gh__krb5_keys_added; auth.md "Keytab");
 *  - after a failure: the authenticator forgotten again, the krb5 code
 *    learnt (through SPNEGO by a second accept), the AP-REQ decoded for the
 *    cause and its facts (gh__krb5_explain_failure; auth.md "Failure
 *    causes").
 *
 * The principal is mapped to a local account in auth_namemap.c, delegated
 * credentials are stored in auth_result.c.
 */

/* Searches g->in for the AP-REQ the krb5 mechanism could be given, once. */
static void find_ap_req(gh__gss_leg_t *g)
{
  if (!g->walked) {
    g->have_ap = gh__krb5_find_ap_req(g->in.value, g->in.length, &g->ap) == 1;
    g->walked = true;
  }
}

/* The krb5 mechanism's own error code for a failed accept of a token that
 * holds an AP-REQ (ap). The minor itself when the krb5 credential took the
 * token. Through SPNEGO the mechglue renumbers minor codes (a SPNEGO minor
 * is an arbitrary number standing for the pair (SPNEGO, inner code), and
 * differs from process to process), so the AP-REQ is given once more to
 * the krb5 credential alone, its context and output discarded: MIT fails
 * it at the same step and returns the real code. 0 when that accept
 * succeeds (SPNEGO itself refused the token). Failure path only. */
long gh__krb5_code(gh__gss_leg_t *g)
{
  gss_cred_id_t krb5 = g->e->sets[g->set_idx].krb5;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_buffer_desc in = {g->ap.mech_len, (void *)g->ap.mech}, out = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min = 0, min2;

  if (g->cred == krb5)
    return (long)(int32_t)g->min;
  if (krb5 == GSS_C_NO_CREDENTIAL)
    return 0;
  maj = gss_accept_sec_context(&min, &ctx, krb5, &in, g->cbp, NULL, NULL, &out, NULL, NULL, NULL);
  gss_release_buffer(&min2, &out);
  if (ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&min2, &ctx, GSS_C_NO_BUFFER);
  return GSS_ERROR(maj) ? (long)(int32_t)min : 0;
}

/* A failed Kerberos accept: the cause refined with what the AP-REQ shows,
 * and its client (when the keytab decrypts the ticket), service and facts. */
static void diagnose(gh__gss_leg_t *g, gh_auth_failure_t cause)
{
  gh__auth_engine_t *e = g->e;
  gh__krb5_diag_t d;
  char detail[400];
  krb5_context k = gh__auth_kctx_get(e);

  gh__krb5_diagnose(k, e->kt ? gh__auth_keytab_mem_name(e->kt) : NULL, g->ap.ap_req,
                    g->ap.ap_req_len, &d);
  gh__auth_kctx_put(e, k);
  g->r->info.failure = gh__krb5_explain(cause, &d, e->acceptor, detail, sizeof(detail));
  gh__auth_set_failure_facts(g->r, d.client, d.service, detail);
}

/* Replay detection (item 5) for a credential whose krb5 part has no
 * rcache: find the AP-REQ the krb5 mechanism could be given in exactly the
 * bytes GSS gets, record its authenticator before the accept. A token the
 * strict walker cannot read is refused (fail closed). */
bool gh__krb5_replay_check(gh__gss_leg_t *g)
{
  gh__auth_engine_t *e = g->e;
  char text[GH_AUTH_SEC_TEXT_MAX];
  int ret;

  ret = gh__krb5_find_ap_req(g->in.value, g->in.length, &g->ap);
  g->walked = true;
  if (ret < 0) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_failure(g->r, GH_AUTH_FAILURE_MALFORMED_TOKEN, g->type, g->package,
                         GH_AUTH_SEC_GSS, GSS_S_DEFECTIVE_TOKEN, 0,
                         "not strict DER Kerberos or SPNEGO, nor NTLMSSP: refused before GSS");
    return false;
  }
  if (ret == 0)
    return true;
  g->have_ap = true;
  ret = gh__auth_rcache_tag(e->rcache, g->ap.cipher, g->ap.cipher_len, g->tag);
  if (ret == 0)
    ret = gh__auth_rcache_insert(e->rcache, g->tag);
  if (ret == GH__RCACHE_REPLAY) {
    gh__auth_conn_reset_ctx(g->c);
    /* the same status MIT's file rcache gives, with krb5's own text (the
     * mechglue knows no mechanism for a minor it did not return) */
    snprintf(text, sizeof(text), "%s", error_message(KRB5KRB_AP_ERR_REPEAT));
    gh__auth_set_failure(g->r, GH_AUTH_FAILURE_REPLAY, g->type, "Kerberos", GH_AUTH_SEC_GSS,
                         GSS_S_FAILURE, (uint32_t)KRB5KRB_AP_ERR_REPEAT, text);
    diagnose(g, GH_AUTH_FAILURE_REPLAY);
    return false;
  }
  if (ret) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_verdict(g->r, GH__AUTH_UNAVAILABLE, ret);
    return false;
  }
  g->tagged = true;
  return true;
}

/* Keytab rotation: a ticket for a key this process does not hold yet (a
 * new kvno, a new service name) re-reads the keytab file at once when it
 * changed, and the caller tries the accept once more. Failure path only: a
 * success costs nothing here. */
bool gh__krb5_keys_added(gh__gss_leg_t *g, unsigned kt_gen)
{
  find_ap_req(g);
  if (!g->have_ap)
    return false;
  g->kcode = gh__krb5_code(g);
  /* kcode 0: the ticket decrypts now (gh__krb5_code's own accept
   * succeeded): another thread's re-read added the key between the failed
   * accept and this look. Seen in CI: a SPNEGO accept failed for want of a
   * new kvno while a re-read was adding it, this look found no key error,
   * and the request got a 401 with the key in hand. The refresh waits for a
   * re-read under way (its lock) and says whether keys came since the
   * accept began: then once more. */
  return (g->kcode == 0 || gh__auth_krb5_key_error(g->kcode)) &&
         gh__auth_keytab_refresh(g->e->kt, kt_gen);
}

void gh__krb5_accept_failed(gh__gss_leg_t *g)
{
  /* nothing was authenticated with it: forget it, so that a corrupted copy
   * sent first cannot lock the genuine token out, and garbage does not
   * fill the table. A success keeps it (at most one success per
   * authenticator). */
  if (g->tagged)
    gh__auth_rcache_remove(g->e->rcache, g->tag);
}

bool gh__krb5_explain_failure(gh__gss_leg_t *g)
{
  gh_auth_failure_t cause = g->r->info.failure;

  find_ap_req(g);
  if (!g->have_ap)
    return false;
  if (g->kcode == 0)
    g->kcode = gh__krb5_code(g);
  if (g->kcode != 0 && gh__auth_failure_of_krb5(g->kcode) != GH_AUTH_FAILURE_OTHER)
    cause = gh__auth_failure_of_krb5(g->kcode);
  diagnose(g, cause);
  return true;
}

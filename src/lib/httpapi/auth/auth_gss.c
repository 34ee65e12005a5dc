/* auth_gss.c: the GSS step (Negotiate, Kerberos, NTLM) — credential, accept, continue, complete. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <openssl/rand.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "util/alloc.h"

gss_OID_desc gh__auth_krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
gss_OID_desc gh__auth_spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
gss_OID_desc gh__auth_ntlmssp_oid = {10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a"};

static size_t append_status(char *buf, size_t len, size_t used, OM_uint32 code, int type,
                            gss_OID mech)
{
  OM_uint32 msg_ctx = 0, maj, min;
  gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
  int rounds = 0;

  do {
    maj = gss_display_status(&min, code, type, mech, &msg_ctx, &text);
    if (GSS_ERROR(maj))
      break;
    if (used < len) {
      int n = snprintf(buf + used, len - used, "%s%.*s", used ? "; " : "", (int)text.length,
                       (const char *)text.value);
      if (n > 0)
        used += (size_t)n;
      if (used >= len)
        used = len - 1;
    }
    gss_release_buffer(&min, &text);
  } while (msg_ctx != 0 && ++rounds < 4);
  return used;
}

void gh__auth_gss_text(char *buf, size_t len, OM_uint32 major, OM_uint32 minor, gss_OID mech)
{
  size_t used = 0;

  if (len == 0)
    return;
  buf[0] = '\0';
  /* "Unspecified GSS failure.  Minor code may provide more information"
   * says nothing when the minor text follows */
  if (!(GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE && GSS_SUPPLEMENTARY_INFO(major) == 0 && minor))
    used = append_status(buf, len, used, major, GSS_C_GSS_CODE, GSS_C_NO_OID);
  if (minor)
    used = append_status(buf, len, used, minor, GSS_C_MECH_CODE, mech);
  if (used == 0 && minor)
    append_status(buf, len, used, major, GSS_C_GSS_CODE, GSS_C_NO_OID);
}

static const char *scheme_text(gh__auth_scheme_id_t s)
{
  switch (s) {
  case GH__AUTH_SCHEME_NTLM:
    return "NTLM";
  case GH__AUTH_SCHEME_KERBEROS:
    return "Kerberos";
  case GH__AUTH_SCHEME_NEGOTIATE:
    return "Negotiate";
  case GH__AUTH_SCHEME_BASIC:
    return "Basic";
  case GH__AUTH_SCHEME_UNKNOWN:
    break;
  }
  return "";
}

static gh_auth_type_t scheme_type(gh__auth_scheme_id_t s)
{
  switch (s) {
  case GH__AUTH_SCHEME_NTLM:
    return GH_AUTH_TYPE_NTLM;
  case GH__AUTH_SCHEME_KERBEROS:
    return GH_AUTH_TYPE_KERBEROS;
  case GH__AUTH_SCHEME_NEGOTIATE:
    return GH_AUTH_TYPE_NEGOTIATE;
  case GH__AUTH_SCHEME_BASIC:
    return GH_AUTH_TYPE_BASIC;
  case GH__AUTH_SCHEME_UNKNOWN:
    break;
  }
  return GH_AUTH_TYPE_NONE;
}

/* An initial token starts a new exchange and resets any half-open context. */
static bool is_initial_token(gh__auth_scheme_id_t s, const unsigned char *t, size_t len)
{
  bool ntlm1 = len >= 12 && memcmp(t, GH__NTLM_SIGNATURE, 8) == 0 && t[8] == 1 && t[9] == 0 &&
               t[10] == 0 && t[11] == 0;
  if (s == GH__AUTH_SCHEME_NTLM)
    return ntlm1;
  return (len > 0 && t[0] == 0x60) || (s == GH__AUTH_SCHEME_NEGOTIATE && ntlm1);
}

/* The mechanism OID of a GSS initial context token (RFC 2743 3.1:
 * 0x60 <DER length> 0x06 <oid length> <oid>); false when t is not one. */
static bool initial_token_mech(const unsigned char *t, size_t len, gss_OID_desc *ret_oid)
{
  size_t i = 1, n;

  if (len < 2 || t[0] != 0x60)
    return false;
  if (t[i] < 0x80) {
    i++;
  } else {
    n = t[i] & 0x7f;
    if (n == 0 || n > 4)
      return false;
    i += 1 + n;
  }
  if (i + 2 > len || t[i] != 0x06 || t[i + 1] >= 0x80 || i + 2 + t[i + 1] > len)
    return false;
  ret_oid->length = t[i + 1];
  ret_oid->elements = (void *)(t + i + 2);
  return true;
}

static char *header_value(const char *scheme, const void *tok, size_t len)
{
  size_t sl = strlen(scheme);
  char *v = gh__malloc(sl + 1 + gh__b64_encoded_len(len) + 1);

  if (v) {
    memcpy(v, scheme, sl);
    v[sl] = ' ';
    gh__b64_encode(tok, len, v + sl + 1);
  }
  return v;
}

/* The service name the client asked for: the ticket's server principal
 * (Kerberos) or MsvAvTargetName (NTLM). "" when unknown. */
static void client_spn(gh__auth_conn_t *c, bool is_krb, const gh__ntlm_auth_facts_t *nf, char *buf,
                       size_t len)
{
  gss_name_t targ = GSS_C_NO_NAME;
  gss_buffer_desc d = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min;

  buf[0] = '\0';
  if (!is_krb) {
    snprintf(buf, len, "%s", nf->spn);
    return;
  }
  maj = gss_inquire_context(&min, c->ctx, NULL, &targ, NULL, NULL, NULL, NULL, NULL);
  if (!GSS_ERROR(maj) && targ != GSS_C_NO_NAME &&
      !GSS_ERROR(gss_display_name(&min, targ, &d, NULL)) && d.length < len &&
      !memchr(d.value, '\0', d.length)) {
    memcpy(buf, d.value, d.length);
    buf[d.length] = '\0';
  }
  gss_release_buffer(&min, &d);
  gss_release_name(&min, &targ);
}

/* Extended Protection after a complete accept: channel-binding flags and
 * the strict requirement, then the service-name list. Returns false after
 * set_failure. */
static bool check_binding(gh__auth_conn_t *c, const gh_auth_settings_t *site, const void *tp_cbt,
                          gss_OID mech, OM_uint32 ret_flags, bool cb_passed,
                          const gh__ntlm_auth_facts_t *nf, gh_auth_type_t type, const char *package,
                          gh__auth_result_t *r)
{
  bool is_krb = mech != GSS_C_NO_OID && gss_oid_equal(mech, &gh__auth_krb5_oid);
  bool is_ntlm = mech != GSS_C_NO_OID && gss_oid_equal(mech, &gh__auth_ntlmssp_oid);
  bool verified = false;
  char spn[256], text[GH_AUTH_SEC_TEXT_MAX];

  if (site->channel_binding == GH_AUTH_CB_LEGACY)
    return true;
  if (tp_cbt) {
    if (is_krb) {
      /* MIT (1.19+) accepts a client without bindings and sets
       * GSS_C_CHANNEL_BOUND_FLAG only when the client's matched ours; a
       * mismatch already failed with GSS_S_BAD_BINDINGS */
      verified = (ret_flags & GSS_C_CHANNEL_BOUND_FLAG) != 0;
      if (verified)
        r->info.flags |= GH_AUTH_FLAG_CBT_PRESENT;
    } else if (is_ntlm) {
      /* gss-ntlmssp checks MsvAvChannelBindings whenever it gets bindings
       * (and fails without them), so they were passed only when present */
      if (nf->has_cbt)
        r->info.flags |= GH_AUTH_FLAG_CBT_PRESENT;
      verified = nf->has_cbt && cb_passed;
    }
    if (verified)
      r->info.flags |= GH_AUTH_FLAG_CBT_VERIFIED;
    if (!verified && site->channel_binding == GH_AUTH_CB_STRICT) {
      gh__auth_set_failure(
          r, GH_AUTH_FAILURE_CHANNEL_BINDING, type, package, GH_AUTH_SEC_GSS, GSS_S_BAD_BINDINGS, 0,
          "channel binding required (channel_binding = strict): the client sent none");
      return false;
    }
  }
  if (site->allowed_spns) {
    client_spn(c, is_krb, nf, spn, sizeof(spn));
    if (spn[0] && gh__auth_spn_allowed(site->allowed_spns, spn)) {
      r->info.flags |= GH_AUTH_FLAG_SPN_VERIFIED;
    } else if (spn[0] || site->channel_binding == GH_AUTH_CB_STRICT) {
      snprintf(text, sizeof(text), "service name %.100s is not in allowed_spns",
               spn[0] ? spn : "(none sent)");
      gh__auth_set_failure(r, GH_AUTH_FAILURE_WRONG_SPN, type, package, GH_AUTH_SEC_GSS,
                           GSS_S_BAD_NAME, 0, text);
      gh__auth_set_failure_facts(r, NULL, spn, "not in this site's allowed_spns");
      return false;
    }
  }
  return true;
}

/* The krb5 mechanism's own error code for a failed accept of a token that
 * holds an AP-REQ (ap). The minor itself when the krb5 credential took the
 * token. Through SPNEGO the mechglue renumbers minor codes (a SPNEGO minor
 * is an arbitrary number standing for the pair (SPNEGO, inner code), and
 * differs from process to process), so the AP-REQ is given once more to
 * the krb5 credential alone, its context and output discarded: MIT fails
 * it at the same step and returns the real code. 0 when that accept
 * succeeds (SPNEGO itself refused the token). Failure path only. */
static long krb5_code(gh__auth_engine_t *e, unsigned set_idx, gss_cred_id_t cred, OM_uint32 minor,
                      const gh__krb5_ap_req_t *ap, gss_channel_bindings_t cbp)
{
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_buffer_desc in = {ap->mech_len, (void *)ap->mech}, out = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min = 0, min2;

  if (cred == e->sets[set_idx].krb5)
    return (long)(int32_t)minor;
  if (e->sets[set_idx].krb5 == GSS_C_NO_CREDENTIAL)
    return 0;
  maj = gss_accept_sec_context(&min, &ctx, e->sets[set_idx].krb5, &in, cbp, NULL, NULL, &out, NULL,
                               NULL, NULL);
  gss_release_buffer(&min2, &out);
  if (ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&min2, &ctx, GSS_C_NO_BUFFER);
  return GSS_ERROR(maj) ? (long)(int32_t)min : 0;
}

/* A failed Kerberos accept: the cause refined with what the AP-REQ shows,
 * and its client (when the keytab decrypts the ticket), service and facts. */
static void fail_krb5(gh__auth_engine_t *e, gh__auth_result_t *r, gh_auth_failure_t cause,
                      const gh__krb5_ap_req_t *ap)
{
  gh__krb5_diag_t d;
  char detail[400];
  krb5_context k = gh__auth_kctx_get(e);

  gh__krb5_diagnose(k, e->kt ? gh__auth_keytab_mem_name(e->kt) : NULL, ap->ap_req, ap->ap_req_len,
                    &d);
  gh__auth_kctx_put(e, k);
  r->info.failure = gh__krb5_explain(cause, &d, e->acceptor, detail, sizeof(detail));
  gh__auth_set_failure_facts(r, d.client, d.service, detail);
}

void gh__auth_step_gss(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                       const void *cbt, size_t cbt_len, gh__auth_scheme_id_t scheme,
                       const unsigned char *tok, size_t tok_len, gh__auth_result_t *r)
{
  struct gss_channel_bindings_struct cbs;
  gss_channel_bindings_t cbp = GSS_C_NO_CHANNEL_BINDINGS;
  gh__ntlm_auth_facts_t nf;
  gss_cred_id_t cred;
  gss_buffer_desc in = {tok_len, (void *)tok};
  unsigned char *fixed = NULL;
  size_t fixed_len = 0;
  unsigned set_idx = 0;
  bool set_excl = false, set_held = false;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER, dname = GSS_C_EMPTY_BUFFER;
  gss_buffer_desc packed = GSS_C_EMPTY_BUFFER;
  gss_name_t src = GSS_C_NO_NAME;
  gss_OID mech = GSS_C_NO_OID, name_type = GSS_C_NO_OID;
  gss_cred_id_t deleg = GSS_C_NO_CREDENTIAL;
  OM_uint32 maj, min = 0, min2, ret_flags = 0, time_rec = 0;
  gh_auth_type_t type = scheme_type(scheme);
  const char *package = scheme_text(scheme);
  char *display = NULL, *local = NULL, text[GH_AUTH_SEC_TEXT_MAX];
  time_t expiry = 0;
  bool unmapped = false, tagged = false, walked = false, have_ap = false;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  gh__krb5_ap_req_t ap;
  unsigned kt_gen = 0;
  long kcode = 0;
  int ret;

  if (c->ctx != GSS_C_NO_CONTEXT &&
      (c->ctx_scheme != scheme || is_initial_token(scheme, tok, tok_len)))
    gh__auth_conn_reset_ctx(c);
  /* a later leg continues with the set its context was made with */
  if (c->ctx != GSS_C_NO_CONTEXT) {
    set_idx = c->ctx_set;
  } else {
    set_idx = gh__auth_credset_get(e, &set_excl);
    set_held = true;
  }
  cred = scheme == GH__AUTH_SCHEME_NEGOTIATE ? e->sets[set_idx].spnego
         : scheme == GH__AUTH_SCHEME_NTLM    ? e->sets[set_idx].ntlm
                                             : e->sets[set_idx].krb5;
  if (scheme == GH__AUTH_SCHEME_NEGOTIATE) {
    /* RFC 4559 clients that skip SPNEGO: a raw Kerberos token (pykerberos,
     * requests-kerberos, some Java/Windows clients) or a raw NTLMSSP
     * message under "Negotiate". The SPNEGO credential cannot accept them
     * (the mechglue dispatches on the token's mechanism), the mechanism's
     * own credential can; the scheme (and the mutual-auth header) stays
     * Negotiate. */
    gss_OID_desc m;
    if (initial_token_mech(tok, tok_len, &m) && gss_oid_equal(&m, &gh__auth_krb5_oid))
      cred = e->sets[set_idx].krb5;
    else if (tok_len >= 8 && memcmp(tok, GH__NTLM_SIGNATURE, 8) == 0)
      cred = e->sets[set_idx].ntlm;
  }
  if (cred == GSS_C_NO_CREDENTIAL) {
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, GH_EAUTH_INTERNAL);
    goto out;
  }
  if (scheme != GH__AUTH_SCHEME_KERBEROS &&
      (fixed = gh__ntlm_add_version(tok, tok_len, &fixed_len)) != NULL) {
    in.value = fixed;
    in.length = fixed_len;
  }
  memset(&nf, 0, sizeof(nf));
  if (site->channel_binding != GH_AUTH_CB_LEGACY && (cbt || site->allowed_spns))
    gh__ntlm_auth_facts(tok, tok_len, &nf);
  if (site->channel_binding != GH_AUTH_CB_LEGACY && cbt) {
    /* tls-server-end-point as application data, no addresses (RFC 5929,
     * what Windows and browsers send). Not for an NTLM AUTHENTICATE
     * without MsvAvChannelBindings: gss-ntlmssp would refuse it, and
     * medium serves such clients (strict refuses them below). */
    memset(&cbs, 0, sizeof(cbs));
    cbs.application_data.length = cbt_len;
    cbs.application_data.value = (void *)cbt;
    if (!nf.is_authenticate || nf.has_cbt)
      cbp = &cbs;
  }

  if (e->rcache && cred != e->sets[set_idx].ntlm) {
    /* Replay detection (item 5) for a credential whose krb5 part has no
     * rcache: find the AP-REQ the krb5 mechanism could be given in exactly
     * the bytes GSS gets, record its authenticator before the accept. A
     * token the strict walker cannot read is refused (fail closed). */
    ret = gh__krb5_find_ap_req(in.value, in.length, &ap);
    walked = true;
    if (ret < 0) {
      gh__auth_conn_reset_ctx(c);
      gh__auth_set_failure(r, GH_AUTH_FAILURE_MALFORMED_TOKEN, type, package, GH_AUTH_SEC_GSS,
                           GSS_S_DEFECTIVE_TOKEN, 0,
                           "not strict DER Kerberos or SPNEGO, nor NTLMSSP: refused before GSS");
      goto out;
    }
    if (ret == 1) {
      have_ap = true;
      ret = gh__auth_rcache_tag(e->rcache, ap.cipher, ap.cipher_len, tag);
      if (ret == 0)
        ret = gh__auth_rcache_insert(e->rcache, tag);
      if (ret == GH__RCACHE_REPLAY) {
        gh__auth_conn_reset_ctx(c);
        /* the same status MIT's file rcache gives, with krb5's own text
         * (the mechglue knows no mechanism for a minor it did not return) */
        snprintf(text, sizeof(text), "%s", error_message(KRB5KRB_AP_ERR_REPEAT));
        gh__auth_set_failure(r, GH_AUTH_FAILURE_REPLAY, type, "Kerberos", GH_AUTH_SEC_GSS,
                             GSS_S_FAILURE, (uint32_t)KRB5KRB_AP_ERR_REPEAT, text);
        fail_krb5(e, r, GH_AUTH_FAILURE_REPLAY, &ap);
        goto out;
      }
      if (ret) {
        gh__auth_conn_reset_ctx(c);
        gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
        goto out;
      }
      tagged = true;
    }
  }
  kt_gen = e->kt ? gh__auth_keytab_gen(e->kt) : 0;
  maj = gss_accept_sec_context(&min, &c->ctx, cred, &in, cbp, &src, &mech, &out, &ret_flags,
                               &time_rec, &deleg);
  if (GSS_ERROR(maj) && set_held && e->kt && cred != e->sets[set_idx].ntlm) {
    /* Keytab rotation: a ticket for a key this process does not hold yet
     * (a new kvno, a new service name) re-reads the keytab file at once
     * when it changed, and the accept is tried once more. Failure path
     * only: a success costs nothing here. */
    if (!walked) {
      have_ap = gh__krb5_find_ap_req(in.value, in.length, &ap) == 1;
      walked = true;
    }
    if (have_ap) {
      kcode = krb5_code(e, set_idx, cred, min, &ap, cbp);
      if (gh__auth_krb5_key_error(kcode) && gh__auth_keytab_refresh(e->kt, kt_gen)) {
        gss_release_buffer(&min2, &out);
        gss_release_name(&min2, &src);
        gss_release_cred(&min2, &deleg);
        gh__auth_conn_reset_ctx(c);
        mech = GSS_C_NO_OID;
        ret_flags = time_rec = 0;
        maj = gss_accept_sec_context(&min, &c->ctx, cred, &in, cbp, &src, &mech, &out, &ret_flags,
                                     &time_rec, &deleg);
        if (GSS_ERROR(maj))
          kcode = krb5_code(e, set_idx, cred, min, &ap, cbp);
      }
    }
  }
  if (tagged && GSS_ERROR(maj)) {
    /* nothing was authenticated with it: forget it, so that a corrupted
     * copy sent first cannot lock the genuine token out, and garbage does
     * not fill the table. A success keeps it (at most one success per
     * authenticator). */
    gh__auth_rcache_remove(e->rcache, tag);
  }
  if (GSS_ERROR(maj)) {
    gh__auth_gss_text(text, sizeof(text), maj, min, mech);
    gh__auth_conn_reset_ctx(c);
    if (cbp != GSS_C_NO_CHANNEL_BINDINGS &&
        (GSS_ROUTINE_ERROR(maj) == GSS_S_BAD_BINDINGS || nf.has_cbt))
      r->info.flags |= GH_AUTH_FLAG_CBT_PRESENT; /* sent, and not ours */
    gh__auth_set_failure(r, gh__auth_failure_of_gss_major(maj), type, package, GH_AUTH_SEC_GSS, maj,
                         min, text);
    if (e->kt && cred != e->sets[set_idx].ntlm && !walked) {
      have_ap = gh__krb5_find_ap_req(in.value, in.length, &ap) == 1;
      walked = true;
    }
    if (have_ap) {
      gh_auth_failure_t cause = r->info.failure;
      if (kcode == 0)
        kcode = krb5_code(e, set_idx, cred, min, &ap, cbp);
      if (kcode != 0 && gh__auth_failure_of_krb5(kcode) != GH_AUTH_FAILURE_OTHER)
        cause = gh__auth_failure_of_krb5(kcode);
      fail_krb5(e, r, cause, &ap);
    } else if (cred == e->sets[set_idx].ntlm ||
               (mech != GSS_C_NO_OID && gss_oid_equal(mech, &gh__auth_ntlmssp_oid)) ||
               memmem(tok, tok_len, GH__NTLM_SIGNATURE, 8) != NULL) {
      gh__ntlm_fail(r, maj, min, tok, tok_len, &nf);
    }
    goto out;
  }
  if (set_held) {
    gh__auth_credset_put(e, set_idx, set_excl);
    set_held = false;
  }
  if (maj & GSS_S_CONTINUE_NEEDED) {
    if (out.length == 0) {
      gh__auth_conn_reset_ctx(c);
      gh__auth_set_failure(r, GH_AUTH_FAILURE_OTHER, type, package, GH_AUTH_SEC_GSS, maj, min,
                           "continue without a token");
      goto out;
    }
    c->ctx_scheme = scheme;
    c->ctx_set = set_idx;
    r->challenges[0] = header_value(scheme_text(scheme), out.value, out.length);
    if (!r->challenges[0]) {
      gh__auth_conn_reset_ctx(c);
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
      goto out;
    }
    r->n_challenges = 1;
    gh__auth_set_verdict(r, GH__AUTH_CHALLENGE, 0);
    goto out;
  }

  /* complete */
  if (mech != GSS_C_NO_OID && gss_oid_equal(mech, &gh__auth_krb5_oid))
    package = "Kerberos";
  else if (mech != GSS_C_NO_OID && gss_oid_equal(mech, &gh__auth_ntlmssp_oid))
    package = "NTLM";
  if (!check_binding(c, site, cbt, mech, ret_flags, cbp != GSS_C_NO_CHANNEL_BINDINGS, &nf, type,
                     package, r)) {
    gh__auth_conn_reset_ctx(c);
    goto out;
  }
  maj = gss_display_name(&min2, src, &dname, &name_type);
  /* gss-ntlmssp counts the terminating NUL in the length */
  if (!GSS_ERROR(maj) && dname.length > 0 && ((char *)dname.value)[dname.length - 1] == '\0')
    dname.length--;
  if (GSS_ERROR(maj) || dname.length == 0 || dname.length >= GH__AUTH_NAME_MAX ||
      memchr(dname.value, '\0', dname.length)) {
    gh__auth_conn_reset_ctx(c);
    gh__auth_set_failure(r, GH_AUTH_FAILURE_OTHER, type, package, GH_AUTH_SEC_GSS,
                         GSS_ERROR(maj) ? maj : GSS_S_BAD_NAME, min2,
                         "cannot display the client name");
    goto out;
  }
  if ((ret_flags & GSS_C_ANON_FLAG) ||
      (name_type != GSS_C_NO_OID && gss_oid_equal(name_type, GSS_C_NT_ANONYMOUS))) {
    gh__auth_conn_reset_ctx(c);
    gh__auth_set_failure(r, GH_AUTH_FAILURE_ANONYMOUS, type, package, GH_AUTH_SEC_GSS,
                         GSS_S_FAILURE, 0, "anonymous (NULL session) authentication refused");
    goto out;
  }
  display = gh__strndup(dname.value, dname.length);
  if (!display) {
    gh__auth_conn_reset_ctx(c);
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  if (time_rec != GSS_C_INDEFINITE)
    expiry = time(NULL) + (time_t)time_rec;
  local = gh__auth_map_name(e, mech, display, site);

  /* delegated credentials: a per-request MEMORY ccache, then into the token */
  if (deleg != GSS_C_NO_CREDENTIAL && (ret_flags & GSS_C_DELEG_FLAG)) {
    char ccname[96];
    unsigned char rnd[8] = {0};
    uint64_t rv;
    gss_key_value_element_desc el = {"ccache", ccname};
    gss_key_value_set_desc st = {1, &el};

    RAND_bytes(rnd, sizeof(rnd));
    memcpy(&rv, rnd, sizeof(rv));
    snprintf(ccname, sizeof(ccname), "MEMORY:gh-deleg-%ld-%llu-%016llx", (long)getpid(),
             (unsigned long long)atomic_fetch_add(&e->seq, 1), (unsigned long long)rv);
    maj = gss_store_cred_into(&min2, deleg, GSS_C_INITIATE, &gh__auth_krb5_oid, 1, 0, &st, NULL,
                              NULL);
    if (!GSS_ERROR(maj))
      r->mem_ccache = gh__strdup(ccname);
    if (GSS_ERROR(maj) || !r->mem_ccache) {
      /* without a ccache the delegation is useless; authenticate without it */
      gss_release_cred(&min2, &deleg);
    }
  } else if (deleg != GSS_C_NO_CREDENTIAL) {
    gss_release_cred(&min2, &deleg);
  }

  ret = gh__auth_make_token(e, r, site, local, display,
                            strcmp(package, "NTLM") == 0 ? GH_SOURCE_NTLM : GH_SOURCE_KERBEROS,
                            expiry, &deleg, &unmapped);
  if (ret) {
    gh__auth_conn_reset_ctx(c);
    if (ret == -ENOMEM) {
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
    } else {
      char detail[GH__AUTH_NAME_MAX + 64];
      snprintf(text, sizeof(text), "%s -> %s: %s", display, local ? local : "(unmapped)",
               gh_strerror(ret));
      gh__auth_set_failure(r, gh__auth_failure_of_local(ret), type, package, GH_AUTH_SEC_ERRNO,
                           (uint32_t)-ret, 0, text);
      if (local)
        snprintf(detail, sizeof(detail), "the name maps to the local account '%s'", local);
      else
        snprintf(detail, sizeof(detail), "no local name for it (auth_to_local)");
      gh__auth_set_failure_facts(r, display, NULL, detail);
    }
    goto out;
  }

  if (out.length > 0) {
    r->mutual_buf = header_value(scheme_text(scheme), out.value, out.length);
    if (r->mutual_buf) {
      r->info.mutual_auth_data = r->mutual_buf;
      r->info.mutual_auth_data_len = strlen(r->mutual_buf);
      if (!site->receive_mutual_auth)
        r->mutual_auth_header = r->mutual_buf;
    }
  }
  if (site->packed_context) {
    maj = gss_export_sec_context(&min2, &c->ctx, &packed);
    if (!GSS_ERROR(maj) && packed.length > 0) {
      r->packed_buf = gh__malloc(packed.length);
      if (r->packed_buf) {
        memcpy(r->packed_buf, packed.value, packed.length);
        r->info.packed_context = r->packed_buf;
        r->info.packed_context_len = packed.length;
        r->info.packed_context_type =
            strcmp(package, "NTLM") == 0 ? GH_AUTH_TYPE_NTLM : GH_AUTH_TYPE_KERBEROS;
      }
    }
  }
  gh__auth_conn_reset_ctx(c);
  ret = gh__auth_deliver_success(c, r, site, type, package, ret_flags, expiry, display,
                                 unmapped ? e->unmapped_user : local);
  if (ret) {
    e->ops.close(r->info.token);
    r->info.token = 0;
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
  }
out:
  if (packed.length)
    explicit_bzero(packed.value, packed.length);
  gss_release_buffer(&min2, &packed);
  gss_release_buffer(&min2, &out);
  gss_release_buffer(&min2, &dname);
  gss_release_name(&min2, &src);
  gss_release_cred(&min2, &deleg);
  free(display);
  free(local);
  free(fixed);
  if (set_held)
    gh__auth_credset_put(e, set_idx, set_excl);
}

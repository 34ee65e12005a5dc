/* auth_gss.c: the GSS step (Negotiate, Kerberos, NTLM) — credential, accept, continue, complete. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_pac.h"
#include "httpapi/auth/auth_sidcache.h"
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
 * the strict requirement, then the service-name list. Returns false with
 * the FAILURE recorded. */
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

static bool uses_ntlm_cred(const gh__gss_leg_t *g)
{
  return g->cred == g->e->sets[g->set_idx].ntlm;
}

/* The credential: a new exchange (an initial token, another scheme) drops
 * the half-open context; a later leg continues with the set its context was
 * made with, a first leg checks one out; then the scheme's credential in
 * it. */
static bool choose_credential(gh__gss_leg_t *g)
{
  gh__auth_engine_t *e = g->e;
  gh__auth_conn_t *c = g->c;

  if (c->ctx != GSS_C_NO_CONTEXT &&
      (c->ctx_scheme != g->scheme || is_initial_token(g->scheme, g->tok, g->tok_len)))
    gh__auth_conn_reset_ctx(c);
  if (c->ctx != GSS_C_NO_CONTEXT) {
    g->set_idx = c->ctx_set;
  } else {
    g->set_idx = gh__auth_credset_get(e, &g->set_excl);
    g->set_held = true;
  }
  g->cred = g->scheme == GH__AUTH_SCHEME_NEGOTIATE ? e->sets[g->set_idx].spnego
            : g->scheme == GH__AUTH_SCHEME_NTLM    ? e->sets[g->set_idx].ntlm
                                                   : e->sets[g->set_idx].krb5;
  if (g->scheme == GH__AUTH_SCHEME_NEGOTIATE) {
    /* RFC 4559 clients that skip SPNEGO: a raw Kerberos token (pykerberos,
     * requests-kerberos, some Java/Windows clients) or a raw NTLMSSP
     * message under "Negotiate". The SPNEGO credential cannot accept them
     * (the mechglue dispatches on the token's mechanism), the mechanism's
     * own credential can; the scheme (and the mutual-auth header) stays
     * Negotiate. */
    gss_OID_desc m;
    if (initial_token_mech(g->tok, g->tok_len, &m) && gss_oid_equal(&m, &gh__auth_krb5_oid))
      g->cred = e->sets[g->set_idx].krb5;
    else if (g->tok_len >= 8 && memcmp(g->tok, GH__NTLM_SIGNATURE, 8) == 0)
      g->cred = e->sets[g->set_idx].ntlm;
  }
  if (g->cred == GSS_C_NO_CREDENTIAL) {
    gh__auth_set_verdict(g->r, GH__AUTH_UNAVAILABLE, GH_EAUTH_INTERNAL);
    return false;
  }
  return true;
}

/* What GSS is given: the token (an NTLM short form made long), the channel
 * bindings; the NTLM AUTHENTICATE facts when Extended Protection needs
 * them. */
static void prepare_input(gh__gss_leg_t *g)
{
  const gh_auth_settings_t *site = g->site;
  size_t fixed_len = 0;

  if (g->scheme != GH__AUTH_SCHEME_KERBEROS &&
      (g->fixed = gh__ntlm_add_version(g->tok, g->tok_len, &fixed_len)) != NULL) {
    g->in.value = g->fixed;
    g->in.length = fixed_len;
  }
  if (site->channel_binding != GH_AUTH_CB_LEGACY && (g->cbt || site->allowed_spns))
    gh__ntlm_auth_facts(g->tok, g->tok_len, &g->nf);
  if (site->channel_binding != GH_AUTH_CB_LEGACY && g->cbt) {
    /* tls-server-end-point as application data, no addresses (RFC 5929,
     * what Windows and browsers send). Not for an NTLM AUTHENTICATE
     * without MsvAvChannelBindings: gss-ntlmssp would refuse it, and
     * medium serves such clients (strict refuses them below). */
    memset(&g->cbs, 0, sizeof(g->cbs));
    g->cbs.application_data.length = g->cbt_len;
    g->cbs.application_data.value = (void *)g->cbt;
    if (!g->nf.is_authenticate || g->nf.has_cbt)
      g->cbp = &g->cbs;
  }
}

static void accept_once(gh__gss_leg_t *g)
{
  struct timespec t0, t1;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  g->maj = gss_accept_sec_context(&g->min, &g->c->ctx, g->cred, &g->in, g->cbp, &g->src, &g->mech,
                                  &g->out, &g->ret_flags, &g->time_rec, &g->deleg);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  g->accept_ms += (unsigned)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
}

/* The accept; once more when it failed for want of a key that a re-read
 * of the keytab file just added (auth_krb5.c). */
static void accept_token(gh__gss_leg_t *g)
{
  unsigned kt_gen = g->e->kt ? gh__auth_keytab_gen(g->e->kt) : 0;
  OM_uint32 min2;

  accept_once(g);
  if (GSS_ERROR(g->maj) && g->set_held && g->e->kt && !uses_ntlm_cred(g) &&
      gh__krb5_keys_added(g, kt_gen)) {
    gss_release_buffer(&min2, &g->out);
    gss_release_name(&min2, &g->src);
    gss_release_cred(&min2, &g->deleg);
    gh__auth_conn_reset_ctx(g->c);
    g->mech = GSS_C_NO_OID;
    g->ret_flags = g->time_rec = 0;
    accept_once(g);
    if (GSS_ERROR(g->maj))
      g->kcode = gh__krb5_code(g);
  }
  if (GSS_ERROR(g->maj))
    gh__krb5_accept_failed(g);
}

/* A failed accept: FAILURE with the GSS status, the cause and facts from
 * the Kerberos AP-REQ or the NTLM message in the token. */
static void record_failure(gh__gss_leg_t *g)
{
  gh__auth_result_t *r = g->r;
  char text[GH_AUTH_SEC_TEXT_MAX];

  gh__auth_gss_text(text, sizeof(text), g->maj, g->min, g->mech);
  gh__auth_conn_reset_ctx(g->c);
  if (g->cbp != GSS_C_NO_CHANNEL_BINDINGS &&
      (GSS_ROUTINE_ERROR(g->maj) == GSS_S_BAD_BINDINGS || g->nf.has_cbt))
    r->info.flags |= GH_AUTH_FLAG_CBT_PRESENT; /* sent, and not ours */
  gh__auth_set_failure(r, gh__auth_failure_of_gss_major(g->maj), g->type, g->package,
                       GH_AUTH_SEC_GSS, g->maj, g->min, text);
  if (g->e->kt && !uses_ntlm_cred(g) && gh__krb5_explain_failure(g))
    return;
  if (uses_ntlm_cred(g) ||
      (g->mech != GSS_C_NO_OID && gss_oid_equal(g->mech, &gh__auth_ntlmssp_oid)) ||
      memmem(g->tok, g->tok_len, GH__NTLM_SIGNATURE, 8) != NULL)
    gh__ntlm_fail(g->e, r, g->maj, g->min, g->tok, g->tok_len, g->accept_ms, &g->nf);
}

/* GSS_S_CONTINUE_NEEDED: a 401 with the server's token; the half-open
 * context stays on the connection for the next leg. */
static void continue_exchange(gh__gss_leg_t *g)
{
  gh__auth_result_t *r = g->r;

  if (g->out.length == 0) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_failure(r, GH_AUTH_FAILURE_OTHER, g->type, g->package, GH_AUTH_SEC_GSS, g->maj,
                         g->min, "continue without a token");
    return;
  }
  g->c->ctx_scheme = g->scheme;
  g->c->ctx_set = g->set_idx;
  r->challenges[0] = header_value(scheme_text(g->scheme), g->out.value, g->out.length);
  if (!r->challenges[0]) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    return;
  }
  r->n_challenges = 1;
  gh__auth_set_verdict(r, GH__AUTH_CHALLENGE, 0);
}

/* The authenticated client's display name (malloc'd into *ret_display);
 * false for none that can be shown or an anonymous client. */
static bool client_name(gh__gss_leg_t *g, char **ret_display)
{
  gss_buffer_desc dname = GSS_C_EMPTY_BUFFER;
  gss_OID name_type = GSS_C_NO_OID;
  OM_uint32 maj, min2;
  bool ok = false;

  maj = gss_display_name(&min2, g->src, &dname, &name_type);
  /* gss-ntlmssp counts the terminating NUL in the length */
  if (!GSS_ERROR(maj) && dname.length > 0 && ((char *)dname.value)[dname.length - 1] == '\0')
    dname.length--;
  if (GSS_ERROR(maj) || dname.length == 0 || dname.length >= GH__AUTH_NAME_MAX ||
      memchr(dname.value, '\0', dname.length)) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_failure(g->r, GH_AUTH_FAILURE_OTHER, g->type, g->package, GH_AUTH_SEC_GSS,
                         GSS_ERROR(maj) ? maj : GSS_S_BAD_NAME, min2,
                         "cannot display the client name");
    goto out;
  }
  if ((g->ret_flags & GSS_C_ANON_FLAG) ||
      (name_type != GSS_C_NO_OID && gss_oid_equal(name_type, GSS_C_NT_ANONYMOUS))) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_failure(g->r, GH_AUTH_FAILURE_ANONYMOUS, g->type, g->package, GH_AUTH_SEC_GSS,
                         GSS_S_FAILURE, 0, "anonymous (NULL session) authentication refused");
    goto out;
  }
  *ret_display = gh__strndup(dname.value, dname.length);
  if (!*ret_display) {
    gh__auth_conn_reset_ctx(g->c);
    gh__auth_set_verdict(g->r, GH__AUTH_UNAVAILABLE, -ENOMEM);
    goto out;
  }
  ok = true;
out:
  gss_release_buffer(&min2, &dname);
  return ok;
}

/* The client's token (the delegated credentials taken into it); FAILURE
 * naming the local account (or its absence) when there is none. */
static bool client_token(gh__gss_leg_t *g, const char *display, const char *local, time_t expiry,
                         const gh__sids_t *sids, bool *ret_unmapped)
{
  char text[GH_AUTH_SEC_TEXT_MAX], detail[GH__AUTH_NAME_MAX + 64];
  int ret;

  ret = gh__auth_make_token(g->e, g->r, g->site, local, display,
                            strcmp(g->package, "NTLM") == 0 ? GH_SOURCE_NTLM : GH_SOURCE_KERBEROS,
                            expiry, &g->deleg, sids, ret_unmapped);
  if (ret == 0)
    return true;
  gh__auth_conn_reset_ctx(g->c);
  if (ret == -ENOMEM || ret == -EAGAIN) { /* -EAGAIN: winbind (group_source = pac) */
    gh__auth_set_verdict(g->r, GH__AUTH_UNAVAILABLE, ret);
    return false;
  }
  snprintf(text, sizeof(text), "%s -> %s: %s", display, local ? local : "(unmapped)",
           gh_strerror(ret));
  gh__auth_set_failure(g->r, gh__auth_failure_of_local(ret), g->type, g->package, GH_AUTH_SEC_ERRNO,
                       (uint32_t)-ret, 0, text);
  if (local)
    snprintf(detail, sizeof(detail), "the name maps to the local account '%s'", local);
  else
    snprintf(detail, sizeof(detail), "no local name for it (auth_to_local)");
  gh__auth_set_failure_facts(g->r, display, NULL, detail);
  return false;
}

/* The mutual-auth header from the last output token, and the packed
 * (exported) context when the site asks for it. */
static void fill_outputs(gh__gss_leg_t *g)
{
  gh__auth_result_t *r = g->r;
  gss_buffer_desc packed = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min2;

  if (g->out.length > 0) {
    r->mutual_buf = header_value(scheme_text(g->scheme), g->out.value, g->out.length);
    if (r->mutual_buf) {
      r->info.mutual_auth_data = r->mutual_buf;
      r->info.mutual_auth_data_len = strlen(r->mutual_buf);
      if (!g->site->receive_mutual_auth)
        r->mutual_auth_header = r->mutual_buf;
    }
  }
  if (g->site->packed_context) {
    maj = gss_export_sec_context(&min2, &g->c->ctx, &packed);
    if (!GSS_ERROR(maj) && packed.length > 0) {
      r->packed_buf = gh__malloc(packed.length);
      if (r->packed_buf) {
        memcpy(r->packed_buf, packed.value, packed.length);
        r->info.packed_context = r->packed_buf;
        r->info.packed_context_len = packed.length;
        r->info.packed_context_type =
            strcmp(g->package, "NTLM") == 0 ? GH_AUTH_TYPE_NTLM : GH_AUTH_TYPE_KERBEROS;
      }
    }
  }
  if (packed.length)
    explicit_bzero(packed.value, packed.length);
  gss_release_buffer(&min2, &packed);
}

/* GSS_S_COMPLETE: Extended Protection, the client's name, its local
 * account, the delegated credentials, the token, SUCCESS. */
static void complete(gh__gss_leg_t *g)
{
  gh__auth_engine_t *e = g->e;
  gh__auth_result_t *r = g->r;
  char *display = NULL, *local = NULL;
  gh__sids_t *sids = NULL;
  time_t expiry = 0;
  bool unmapped = false;
  int ret;

  if (g->mech != GSS_C_NO_OID && gss_oid_equal(g->mech, &gh__auth_krb5_oid))
    g->package = "Kerberos";
  else if (g->mech != GSS_C_NO_OID && gss_oid_equal(g->mech, &gh__auth_ntlmssp_oid))
    g->package = "NTLM";
  if (!check_binding(g->c, g->site, g->cbt, g->mech, g->ret_flags,
                     g->cbp != GSS_C_NO_CHANNEL_BINDINGS, &g->nf, g->type, g->package, r)) {
    gh__auth_conn_reset_ctx(g->c);
    goto out;
  }
  if (!client_name(g, &display))
    goto out;
  /* the SIDs of an AD user: the PAC's (only when authenticated) or the DC's */
  ret = gh__auth_name_sids(g->src, strcmp(g->package, "NTLM") == 0, &sids);
  if (ret != 0) {
    gh__auth_conn_reset_ctx(g->c);
    if (ret == -ENOMEM) {
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
      goto out;
    }
    gh__auth_set_failure(r, GH_AUTH_FAILURE_OTHER, g->type, g->package, GH_AUTH_SEC_ERRNO,
                         (uint32_t)-ret, 0,
                         ret == GH_ELIMIT ? "more SIDs in the PAC than gatehouse accepts (4096)"
                                          : "the PAC logon info or NTLM SID list is malformed or "
                                            "not authenticated");
    gh__auth_set_failure_facts(r, display, NULL, NULL);
    goto out;
  }
  if (g->time_rec != GSS_C_INDEFINITE)
    expiry = time(NULL) + (time_t)g->time_rec;
  if (sids != NULL) {
    /* an AD user: one name whatever the client typed (DOMAIN\\user, a UPN,
     * another case), the account of its SID through winbind */
    char *canon = NULL;
    ret = gh__sidcache_identity(e->sidcache, sids->v[0], (int)g->site->name_format, &canon, &local);
    if (ret == 0) {
      free(display);
      display = canon;
    } else if (ret == -EAGAIN || ret == -ENOMEM) {
      gh__auth_conn_reset_ctx(g->c);
      gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, ret);
      goto out;
    } else if (ret != -ENOSYS) {
      local = NULL; /* a SID winbind maps to no account: unmapped */
    } else {
      local = gh__auth_map_name(e, g->mech, display, g->site); /* no libwbclient */
    }
  } else {
    local = gh__auth_map_name(e, g->mech, display, g->site);
  }
  gh__auth_store_delegation(e, r, &g->deleg, g->ret_flags);
  if (!client_token(g, display, local, expiry, sids, &unmapped))
    goto out;
  fill_outputs(g);
  gh__auth_conn_reset_ctx(g->c);
  gh__auth_deliver_success(g->c, r, g->site, g->type, g->package, g->ret_flags, expiry, display,
                           unmapped ? e->unmapped_user : local);
out:
  free(display);
  free(local);
  free(sids);
}

/* The step in stages:
 *
 *   choose_credential      the set and the scheme's credential in it
 *   prepare_input          the bytes GSS gets, channel bindings, NTLM facts
 *   gh__krb5_replay_check  the authenticator recorded (auth_krb5.c)
 *   accept_token           gss_accept_sec_context, again after a keytab re-read
 *   then one of
 *   record_failure         FAILURE, its cause (auth_krb5.c, auth_ntlm.c)
 *   continue_exchange      CHALLENGE with the next leg
 *   complete               check_binding, client_name, gh__auth_map_name,
 *                          gh__auth_store_delegation, client_token,
 *                          fill_outputs, SUCCESS
 *
 * A stage that ends the step fills the result (those that can end it early
 * return false). A CHALLENGE keeps the half-open context for the next leg;
 * a FAILURE deletes it. */
void gh__auth_step_gss(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh_auth_settings_t *site,
                       const void *cbt, size_t cbt_len, gh__auth_scheme_id_t scheme,
                       const unsigned char *tok, size_t tok_len, gh__auth_result_t *r)
{
  gh__gss_leg_t g = {
      .e = e,
      .c = c,
      .site = site,
      .r = r,
      .scheme = scheme,
      .type = scheme_type(scheme),
      .package = scheme_text(scheme),
      .tok = tok,
      .tok_len = tok_len,
      .cbt = cbt,
      .cbt_len = cbt_len,
      .in = {tok_len, (void *)tok},
      .cbp = GSS_C_NO_CHANNEL_BINDINGS,
      .out = GSS_C_EMPTY_BUFFER,
      .src = GSS_C_NO_NAME,
      .mech = GSS_C_NO_OID,
      .deleg = GSS_C_NO_CREDENTIAL,
  };
  OM_uint32 min2;

  if (!choose_credential(&g))
    goto out;
  prepare_input(&g);
  if (e->rcache && !uses_ntlm_cred(&g) && !gh__krb5_replay_check(&g))
    goto out;
  /* an NTLM AUTHENTICATE for winbind: not while winbindd does not answer */
  if (g.scheme != GH__AUTH_SCHEME_KERBEROS && !gh__ntlm_winbind_ready(e, g.r, g.tok, g.tok_len)) {
    gh__auth_conn_reset_ctx(g.c);
    goto out;
  }
  accept_token(&g);
  if (GSS_ERROR(g.maj)) {
    record_failure(&g);
    goto out;
  }
  if (g.set_held) {
    gh__auth_credset_put(e, g.set_idx, g.set_excl);
    g.set_held = false;
  }
  if (g.maj & GSS_S_CONTINUE_NEEDED)
    continue_exchange(&g);
  else
    complete(&g);
out:
  gss_release_buffer(&min2, &g.out);
  gss_release_name(&min2, &g.src);
  gss_release_cred(&min2, &g.deleg);
  free(g.fixed);
  if (g.set_held)
    gh__auth_credset_put(e, g.set_idx, g.set_excl);
}

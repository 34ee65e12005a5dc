/* auth_errors.c: why an authentication failed — krb5, gss-ntlmssp, PAM and local codes mapped to
 * one cause with an operator's text, and the facts a failed Kerberos AP-REQ shows (service, key
 * version, client, clock offset). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <krb5.h>
#include <security/pam_appl.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>

#include "httpapi/auth/auth_internal.h"

/* Exported by libkrb5 (krb5_3_MIT) but declared only in MIT's private
 * k5-int.h: the decoders MIT's own acceptor uses. */
krb5_error_code decode_krb5_ap_req(const krb5_data *code, krb5_ap_req **rep);
krb5_error_code decode_krb5_authenticator(const krb5_data *code, krb5_authenticator **rep);
void KRB5_CALLCONV krb5_free_ap_req(krb5_context context, krb5_ap_req *val);

/* ---- names and texts ---- */

const char *gh_auth_failure_name(gh_auth_failure_t f)
{
  switch (f) {
#define XX(name, text, fix)                                                                        \
  case GH_AUTH_FAILURE_##name:                                                                     \
    return #name;
    GH_AUTH_FAILURE_MAP(XX)
#undef XX
  }
  return "UNKNOWN";
}

const char *gh_auth_failure_text(gh_auth_failure_t f)
{
  switch (f) {
#define XX(name, text, fix)                                                                        \
  case GH_AUTH_FAILURE_##name:                                                                     \
    return text;
    GH_AUTH_FAILURE_MAP(XX)
#undef XX
  }
  return "authentication failed";
}

const char *gh_auth_failure_fix(gh_auth_failure_t f)
{
  switch (f) {
#define XX(name, text, fix)                                                                        \
  case GH_AUTH_FAILURE_##name:                                                                     \
    return fix;
    GH_AUTH_FAILURE_MAP(XX)
#undef XX
  }
  return "";
}

/* The fix for this record: the cause's, made specific where the scheme
 * tells more. */
static const char *record_fix(const gh_auth_info_t *info)
{
  switch (info->failure) {
  case GH_AUTH_FAILURE_UNKNOWN_ACCOUNT:
    if (info->sec_status.kind == GH_AUTH_SEC_ERRNO) /* authenticated, no local account */
      return "create a local account (NSS) for it, map the name to one (krb5.conf "
             "auth_to_local; ntlm_keep_domain for NTLM), or set allow_unmapped = yes for an "
             "identify-only token";
    if (info->type == GH_AUTH_TYPE_NTLM ||
        (info->package_name && strcmp(info->package_name, "NTLM") == 0))
      return "add the user to ntlm_user_file (or to the domain winbind asks), or correct the "
             "user name; a user known there but not locally needs a local account";
    if (info->type == GH_AUTH_TYPE_BASIC)
      return "create the account (NSS/PAM), or correct the user name";
    return "create a local account for the principal, add an auth_to_local rule in krb5.conf, "
           "or set allow_unmapped = yes for an identify-only token";
  case GH_AUTH_FAILURE_BAD_PASSWORD:
    if (info->type == GH_AUTH_TYPE_BASIC)
      return "the user must enter the right password (PAM does not tell a wrong password from "
             "an unknown user)";
    return gh_auth_failure_fix(info->failure);
  default:
    return gh_auth_failure_fix(info->failure);
  }
}

int gh_auth_info_failure_message(const gh_auth_info_t *info, char *buf, size_t len)
{
  char tmp[1];
  size_t used = 0;
  int n, total = 0;
  const char *fix;

  if (!buf || len == 0) {
    buf = tmp;
    len = sizeof(tmp);
  }
  buf[0] = '\0';
  if (!info || info->status != GH_AUTH_STATUS_FAILURE)
    return 0;
#define PUT(...)                                                                                   \
  do {                                                                                             \
    n = snprintf(buf + used, len - used, __VA_ARGS__);                                             \
    if (n > 0) {                                                                                   \
      total += n;                                                                                  \
      used = (size_t)n < len - used ? used + (size_t)n : len - 1;                                  \
    }                                                                                              \
  } while (0)
  PUT("%s", gh_auth_failure_text(info->failure));
  if (info->failure_detail && info->failure_detail[0])
    PUT(": %s", info->failure_detail);
  if (info->failure_client && info->failure_client[0])
    PUT("; client %s", info->failure_client);
  if (info->failure_service && info->failure_service[0])
    PUT("; service %s", info->failure_service);
  fix = record_fix(info);
  if (fix[0])
    PUT("; fix: %s", fix);
  if (info->sec_status_text[0])
    PUT(" [%s]", info->sec_status_text);
#undef PUT
  return total;
}

/* ---- the engine's own lines ---- */

void gh__auth_log(gh_auth_log_cb *fn, void *arg, int priority, const char *msg)
{
  char line[600];
  int n;

  if (fn) {
    fn(arg, priority, msg);
    return;
  }
  n = snprintf(line, sizeof(line), "gatehouse: auth: %s\n", msg);
  if (n > (int)sizeof(line) - 1)
    n = (int)sizeof(line) - 1;
  if (write(STDERR_FILENO, line, (size_t)n) < 0) {
    /* nowhere else to report it */
  }
}

/* ---- classification ---- */

static bool in_table(long code, long base)
{
  return code >= base && code < base + 256;
}

bool gh__auth_krb5_key_error(long code)
{
  switch (code) {
  case KRB5KRB_AP_ERR_BADKEYVER: /* the ticket's kvno is not held */
  case KRB5KRB_AP_ERR_NOKEY:     /* no key for the service */
  case KRB5KRB_AP_ERR_NOT_US:    /* the ticket's service is not in the keytab */
  case KRB5_KT_NOTFOUND:
  case KRB5_KT_KVNONOTFOUND:
  case KRB5KRB_AP_ERR_BAD_INTEGRITY: /* a key of that kvno, but not the one that decrypts */
  case KRB5KRB_AP_ERR_MODIFIED:
    return true;
  default:
    return false;
  }
}

gh_auth_failure_t gh__auth_failure_of_krb5(long code)
{
  switch (code) {
  case KRB5KRB_AP_ERR_REPEAT:
    return GH_AUTH_FAILURE_REPLAY;
  case KRB5KRB_AP_ERR_SKEW:
  case KRB5KRB_AP_ERR_TKT_NYV:
    return GH_AUTH_FAILURE_CLOCK_SKEW;
  case KRB5KRB_AP_ERR_TKT_EXPIRED:
    return GH_AUTH_FAILURE_TICKET_EXPIRED;
  case KRB5KRB_AP_ERR_BADKEYVER:
  case KRB5_KT_KVNONOTFOUND:
    return GH_AUTH_FAILURE_WRONG_KVNO;
  case KRB5KRB_AP_ERR_NOKEY:
  case KRB5KRB_AP_ERR_NOT_US:
  case KRB5_KT_NOTFOUND:
    return GH_AUTH_FAILURE_NO_KEY;
  case KRB5KRB_AP_WRONG_PRINC:
    return GH_AUTH_FAILURE_WRONG_SPN;
  case KRB5KRB_AP_ERR_BAD_INTEGRITY:
  case KRB5KRB_AP_ERR_MODIFIED:
    return GH_AUTH_FAILURE_BAD_KEY;
  case KRB5KRB_AP_ERR_BADVERSION:
  case KRB5KRB_AP_ERR_MSG_TYPE:
  case KRB5KRB_AP_ERR_INAPP_CKSUM:
    return GH_AUTH_FAILURE_MALFORMED_TOKEN;
  default:
    if (in_table(code, ERROR_TABLE_BASE_asn1))
      return GH_AUTH_FAILURE_MALFORMED_TOKEN;
    return GH_AUTH_FAILURE_OTHER;
  }
}

gh_auth_failure_t gh__auth_failure_of_gss_major(uint32_t major)
{
  switch (GSS_ROUTINE_ERROR(major)) {
  case GSS_S_DEFECTIVE_TOKEN:
  case GSS_S_BAD_MECH:
  case GSS_S_BAD_SIG:
    return GH_AUTH_FAILURE_MALFORMED_TOKEN;
  case GSS_S_BAD_BINDINGS:
    return GH_AUTH_FAILURE_CHANNEL_BINDING;
  case GSS_S_BAD_NAME:
    return GH_AUTH_FAILURE_WRONG_SPN;
  case GSS_S_CREDENTIALS_EXPIRED:
  case GSS_S_CONTEXT_EXPIRED:
    return GH_AUTH_FAILURE_TICKET_EXPIRED;
  case GSS_S_DUPLICATE_TOKEN:
    return GH_AUTH_FAILURE_REPLAY;
  default:
    if (GSS_SUPPLEMENTARY_INFO(major) & (GSS_S_DUPLICATE_TOKEN | GSS_S_OLD_TOKEN))
      return GH_AUTH_FAILURE_REPLAY;
    return GH_AUTH_FAILURE_OTHER;
  }
}

gh_auth_failure_t gh__auth_failure_of_pam(int pam_code)
{
  switch (pam_code) {
  case PAM_AUTH_ERR:
  case PAM_MAXTRIES:
    return GH_AUTH_FAILURE_BAD_PASSWORD;
  case PAM_USER_UNKNOWN:
    return GH_AUTH_FAILURE_UNKNOWN_ACCOUNT;
  case PAM_ACCT_EXPIRED:
  case PAM_NEW_AUTHTOK_REQD:
  case PAM_AUTHTOK_EXPIRED:
  case PAM_PERM_DENIED:
    return GH_AUTH_FAILURE_ACCOUNT_DISABLED;
  default:
    return GH_AUTH_FAILURE_OTHER;
  }
}

gh_auth_failure_t gh__auth_failure_of_local(int gh_code)
{
  switch (gh_code) {
  case GH_ENO_SUCH_USER:
    return GH_AUTH_FAILURE_UNKNOWN_ACCOUNT;
  case GH_EUID_REFUSED:
    return GH_AUTH_FAILURE_ACCOUNT_REFUSED;
  case GH_ETOKEN_EXPIRED:
    return GH_AUTH_FAILURE_TICKET_EXPIRED;
  default:
    return GH_AUTH_FAILURE_OTHER;
  }
}

/* gss-ntlmssp's own minor codes (its src/gss_ntlmssp.h, ERR_BASE + n) and
 * their texts, which survive the mechglue's renumbering of minor codes
 * (a minor that went through SPNEGO, or whose value another mechanism
 * used first, reaches us as an arbitrary number; its text does not). */
#define NTLM_ERR_BASE 0x4E540000u
static const struct {
  unsigned off;
  const char *text;
  gh_auth_failure_t cause;
} ntlm_errs[] = {
    {1, "Failed to decode data", GH_AUTH_FAILURE_MALFORMED_TOKEN},
    {13, "Wrong message type", GH_AUTH_FAILURE_MALFORMED_TOKEN},
    {24, "Required channel bingings are not available", GH_AUTH_FAILURE_CHANNEL_BINDING},
    {25, "Server and client clocks are too far apart", GH_AUTH_FAILURE_CLOCK_SKEW},
    {29, "User not found", GH_AUTH_FAILURE_UNKNOWN_ACCOUNT},
};

gh_auth_failure_t gh__auth_failure_of_ntlm(uint32_t minor, const char *mech_text, bool authenticate)
{
  char buf[128];
  const char *s;

  for (size_t i = 0; i < sizeof(ntlm_errs) / sizeof(ntlm_errs[0]); i++)
    if (minor == NTLM_ERR_BASE + ntlm_errs[i].off ||
        (mech_text && strcmp(mech_text, ntlm_errs[i].text) == 0))
      return ntlm_errs[i].cause;
  if (!mech_text || !authenticate)
    return GH_AUTH_FAILURE_OTHER;
  /* errno-valued minors, shown with strerror_r by gss-ntlmssp: compared
   * with this process's own strerror text of the same code, so the
   * comparison holds in any locale. With a user file, gss-ntlmssp answers
   * an unknown user with ENOENT and a response that does not verify (the
   * password) with EINVAL. */
  s = strerror_r(ENOENT, buf, sizeof(buf));
  if (strcmp(mech_text, s) == 0)
    return GH_AUTH_FAILURE_UNKNOWN_ACCOUNT;
  s = strerror_r(EINVAL, buf, sizeof(buf));
  if (strcmp(mech_text, s) == 0)
    return GH_AUTH_FAILURE_BAD_PASSWORD;
  s = strerror_r(EACCES, buf, sizeof(buf));
  if (strcmp(mech_text, s) == 0)
    return GH_AUTH_FAILURE_BAD_PASSWORD;
  return GH_AUTH_FAILURE_OTHER;
}

/* ---- Kerberos facts from a failed AP-REQ ---- */

static void unparse(krb5_context k, krb5_const_principal p, char *buf, size_t len)
{
  char *name = NULL;

  buf[0] = '\0';
  if (p && krb5_unparse_name(k, p, &name) == 0)
    snprintf(buf, len, "%s", name);
  krb5_free_unparsed_name(k, name);
}

void gh__krb5_diagnose(krb5_context k, const char *mem_kt_name, const void *ap_req, size_t len,
                       gh__krb5_diag_t *d)
{
  krb5_data in = {0, (unsigned int)len, (char *)ap_req};
  krb5_ap_req *req = NULL;
  krb5_keytab kt = NULL;
  krb5_kt_cursor cur;
  krb5_keytab_entry ent;
  krb5_data plain = {0, 0, NULL};
  krb5_authenticator *auth = NULL;

  memset(d, 0, sizeof(*d));
  if (!k || !ap_req || len == 0 || decode_krb5_ap_req(&in, &req) != 0)
    goto out;
  d->decoded = true;
  unparse(k, req->ticket->server, d->service, sizeof(d->service));
  d->kvno = req->ticket->enc_part.kvno;
  d->etype = req->ticket->enc_part.enctype;
  if (!mem_kt_name || krb5_kt_resolve(k, mem_kt_name, &kt) != 0) {
    kt = NULL;
    goto out;
  }
  /* the key versions held for the ticket's service */
  if (krb5_kt_start_seq_get(k, kt, &cur) == 0) {
    while (krb5_kt_next_entry(k, kt, &ent, &cur) == 0) {
      if (krb5_principal_compare(k, ent.principal, req->ticket->server)) {
        bool dup = false;
        d->service_held = true;
        for (unsigned i = 0; i < d->n_held; i++)
          dup |= d->held[i] == ent.vno;
        if (!dup && d->n_held < GH__KRB5_DIAG_KVNOS)
          d->held[d->n_held++] = ent.vno;
      }
      krb5_free_keytab_entry_contents(k, &ent);
    }
    krb5_kt_end_seq_get(k, kt, &cur);
  }
  /* the ticket: client and times, then the authenticator: the client's clock */
  if (krb5_server_decrypt_ticket_keytab(k, kt, req->ticket) != 0 || !req->ticket->enc_part2)
    goto out;
  d->decrypted = true;
  unparse(k, req->ticket->enc_part2->client, d->client, sizeof(d->client));
  d->endtime = (time_t)(uint32_t)req->ticket->enc_part2->times.endtime;
  plain.length = req->authenticator.ciphertext.length;
  plain.data = malloc(plain.length ? plain.length : 1);
  if (!plain.data)
    goto out;
  if (krb5_c_decrypt(k, req->ticket->enc_part2->session, KRB5_KEYUSAGE_AP_REQ_AUTH, NULL,
                     &req->authenticator, &plain) != 0 ||
      decode_krb5_authenticator(&plain, &auth) != 0)
    goto out;
  d->have_skew = true;
  d->skew = (long)((time_t)(uint32_t)auth->ctime - time(NULL));
out:
  if (auth)
    krb5_free_authenticator(k, auth);
  if (plain.data) {
    explicit_bzero(plain.data, plain.length);
    free(plain.data);
  }
  if (kt)
    krb5_kt_close(k, kt);
  if (req)
    krb5_free_ap_req(k, req);
}

static void held_list(const gh__krb5_diag_t *d, char *buf, size_t len)
{
  size_t used = 0;

  buf[0] = '\0';
  for (unsigned i = 0; i < d->n_held && used < len; i++) {
    int n = snprintf(buf + used, len - used, "%s%u", i ? ", " : "", d->held[i]);
    if (n > 0)
      used += (size_t)n;
  }
}

gh_auth_failure_t gh__krb5_explain(gh_auth_failure_t cause, const gh__krb5_diag_t *d,
                                   const char *acceptor, char *detail, size_t len)
{
  char held[64];
  bool older = true, newer = true;

  detail[0] = '\0';
  if (!d->decoded)
    return cause;
  held_list(d, held, sizeof(held));
  for (unsigned i = 0; i < d->n_held; i++) {
    older &= d->held[i] > d->kvno;
    newer &= d->held[i] < d->kvno;
  }
  /* a ticket for a service the keytab lacks is a missing key, unless the
   * server accepts one fixed name and the client asked for another */
  if (cause == GH_AUTH_FAILURE_NO_KEY || cause == GH_AUTH_FAILURE_WRONG_SPN) {
    if (acceptor && d->service_held)
      cause = GH_AUTH_FAILURE_WRONG_SPN;
    else if (!d->service_held && !acceptor)
      cause = GH_AUTH_FAILURE_NO_KEY;
    else if (d->service_held && d->n_held > 0 && cause == GH_AUTH_FAILURE_NO_KEY)
      cause = GH_AUTH_FAILURE_WRONG_KVNO;
  }
  /* the key of that version is held but does not decrypt the ticket: the
   * authenticator, not the ticket, was damaged when the ticket decrypts */
  if (cause == GH_AUTH_FAILURE_BAD_KEY && d->decrypted)
    cause = GH_AUTH_FAILURE_MALFORMED_TOKEN;
  switch (cause) {
  case GH_AUTH_FAILURE_WRONG_KVNO:
    snprintf(detail, len, "the ticket has key version %u; the keytab holds %s %s of %s%s", d->kvno,
             d->n_held == 1 ? "version" : "versions", held[0] ? held : "none", d->service,
             d->n_held && older   ? " (all newer: the client's ticket predates the key change, "
                                    "it must get a new one)"
             : d->n_held && newer ? " (all older: the keytab is behind the KDC)"
                                  : "");
    break;
  case GH_AUTH_FAILURE_NO_KEY:
    snprintf(detail, len, "no key for %s (ticket key version %u) in the keytab", d->service,
             d->kvno);
    break;
  case GH_AUTH_FAILURE_WRONG_SPN:
    snprintf(detail, len, "the ticket is for %s; this server accepts only %s", d->service,
             acceptor ? acceptor : "other names");
    break;
  case GH_AUTH_FAILURE_BAD_KEY:
    snprintf(detail, len, "key version %u, enctype %d of %s", d->kvno, (int)d->etype, d->service);
    break;
  case GH_AUTH_FAILURE_TICKET_EXPIRED:
    if (d->decrypted) {
      struct tm tm;
      char when[40] = "";
      if (gmtime_r(&d->endtime, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
      snprintf(detail, len, "it expired at %s, %lld s ago", when,
               (long long)(time(NULL) - d->endtime));
    }
    break;
  case GH_AUTH_FAILURE_CLOCK_SKEW:
    if (d->have_skew)
      snprintf(detail, len, "the client's clock is %ld s %s this server's", labs(d->skew),
               d->skew >= 0 ? "ahead of" : "behind");
    break;
  default:
    break;
  }
  return cause;
}

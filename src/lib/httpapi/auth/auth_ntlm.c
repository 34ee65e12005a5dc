/* auth_ntlm.c: NTLM in the GSS step — short-form messages, AUTHENTICATE facts, failure causes. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <gssapi/gssapi.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_internal.h"
#include "util/alloc.h"

/*
 * How an NTLM client is checked, and where:
 *
 *  - the scheme is offered only on keep-alive connections (auth_parse.c
 *    gh__auth_challenge_list, auth_engine.c scheme_offered): the three
 *    legs, NEGOTIATE -> 401 CHALLENGE -> AUTHENTICATE, must share one
 *    connection, which keeps the half-open context (auth_gss.c);
 *  - gss-ntlmssp verifies the NTLMv2 response, against the user file
 *    named in the credential's cred store (ntlmssp_keyfile, auth_cred.c)
 *    or winbind; raw "NTLM" uses the NTLMSSP credential, "Negotiate" the
 *    SPNEGO one (or the NTLMSSP one for a raw NTLMSSP message);
 *  - without a user file, each NTLM message waits for winbindd's ping at
 *    most 5 s (gh__ntlm_winbind_ready, auth_winbind.c): gss-ntlmssp would
 *    wait for a hung winbindd with no limit;
 *  - this file: the short forms older clients send, fixed before the
 *    accept (gh__ntlm_add_version); the AUTHENTICATE message's facts for
 *    channel binding, allowed_spns and the log (gh__ntlm_auth_facts); the
 *    cause of a failed accept (gh__ntlm_fail);
 *  - after the accept: channel binding and allowed_spns (auth_gss.c
 *    check_binding), anonymous (NULL session) refused (auth_gss.c), the
 *    name DOMAIN\user -> user (auth_namemap.c), the identity persisted on
 *    the connection with persist = ntlm (auth_engine.c).
 */

/* An NTLM NEGOTIATE or AUTHENTICATE message without the 8-byte Version
 * field (curl and other older clients send the short forms of MS-NLMP
 * 2.2.1.1 / 2.2.1.3 when NTLMSSP_NEGOTIATE_VERSION is not negotiated):
 * gss-ntlmssp refuses them ("Failed to decode data"). Returns a copy with a
 * zero Version inserted after the fixed fields and every payload offset
 * moved by 8, or NULL when t is not such a message (or on ENOMEM, in which
 * case the original is used and fails as before). Integrity is unaffected:
 * the short forms carry no MIC, and the NTLMv2 response does not cover the
 * message layout. */
unsigned char *gh__ntlm_add_version(const unsigned char *t, size_t len, size_t *ret_len)
{
  unsigned char *out = NULL;
  size_t min_off = SIZE_MAX, fixed, n_fields;

  if (len < 32 || len > 1024 * 1024 || memcmp(t, GH__NTLM_SIGNATURE, 8) != 0 || t[9] || t[10] ||
      t[11])
    goto out;
  if (t[8] == 1) {
    fixed = 32; /* signature, type, flags, domain, workstation */
    n_fields = 2;
  } else if (t[8] == 3 && len >= 64) {
    fixed = 64; /* signature, type, 6 fields, flags */
    n_fields = 6;
  } else {
    goto out;
  }
  for (size_t f = 0; f < n_fields; f++) {
    const unsigned char *fld = t + (t[8] == 1 ? 16 : 12) + 8 * f;
    size_t flen = (size_t)fld[0] | (size_t)fld[1] << 8;
    size_t foff =
        (size_t)fld[4] | (size_t)fld[5] << 8 | (size_t)fld[6] << 16 | (size_t)fld[7] << 24;
    if (flen > 0 && foff < min_off)
      min_off = foff;
  }
  /* the payload starts right after the fixed part: no Version present */
  if (!(min_off == fixed || (min_off == SIZE_MAX && len == fixed)))
    goto out;
  out = gh__malloc(len + 8);
  if (!out)
    goto out;
  memcpy(out, t, fixed);
  memset(out + fixed, 0, 8);
  memcpy(out + fixed + 8, t + fixed, len - fixed);
  for (size_t f = 0; f < n_fields; f++) {
    unsigned char *fld = out + (t[8] == 1 ? 16 : 12) + 8 * f;
    size_t flen = (size_t)fld[0] | (size_t)fld[1] << 8;
    uint32_t foff = (uint32_t)((size_t)fld[4] | (size_t)fld[5] << 8 | (size_t)fld[6] << 16 |
                               (size_t)fld[7] << 24);
    foff = flen ? foff + 8 : (uint32_t)(fixed + 8);
    fld[4] = (unsigned char)foff;
    fld[5] = (unsigned char)(foff >> 8);
    fld[6] = (unsigned char)(foff >> 16);
    fld[7] = (unsigned char)(foff >> 24);
  }
  *ret_len = len + 8;
out:
  return out;
}

static uint16_t le16(const unsigned char *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const unsigned char *p)
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Appends an AUTHENTICATE name field (len16, maxlen16, offset32 at fld) to
 * out as printable ASCII ('?' for anything else); UTF-16LE when unicode. */
static void ntlm_name_field(const unsigned char *m, size_t mlen, size_t fld, bool unicode,
                            char *out, size_t outlen)
{
  size_t used = strlen(out), flen, foff, step = unicode ? 2 : 1;

  if (fld + 8 > mlen)
    return;
  flen = le16(m + fld);
  foff = le32(m + fld + 4);
  if (foff > mlen || flen > mlen - foff)
    return;
  for (size_t i = 0; i + step <= flen && used + 1 < outlen; i += step) {
    unsigned ch = unicode ? le16(m + foff + i) : m[foff + i];
    out[used++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  out[used] = '\0';
}

void gh__ntlm_auth_facts(const unsigned char *tok, size_t len, gh__ntlm_auth_facts_t *f)
{
  static const unsigned char sig[12] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 3, 0, 0, 0};
  const unsigned char *m = NULL;
  size_t mlen, off, rlen, p, end;

  memset(f, 0, sizeof(*f));
  for (size_t i = 0; i + sizeof(sig) <= len; i++) {
    if (tok[i] == 'N' && memcmp(tok + i, sig, sizeof(sig)) == 0) {
      m = tok + i;
      break;
    }
  }
  if (!m)
    return;
  mlen = len - (size_t)(m - tok);
  if (mlen < 28)
    return;
  f->is_type3 = true;
  if (mlen >= 64) { /* DomainNameFields at 28, UserNameFields at 36, NegotiateFlags at 60 */
    bool unicode = (le32(m + 60) & 0x1u) != 0;
    ntlm_name_field(m, mlen, 28, unicode, f->user, sizeof(f->user) / 2);
    if (f->user[0])
      strcat(f->user, "\\");
    ntlm_name_field(m, mlen, 36, unicode, f->user, sizeof(f->user));
    size_t ul = strlen(f->user);
    if (ul > 0 && f->user[ul - 1] == '\\')
      f->user[0] = '\0'; /* a domain without a user name: nothing to show */
  }
  rlen = le16(m + 20);
  off = le32(m + 24);
  /* NTLMv2: NTProofStr (16) + client challenge header (28) + AV pairs */
  if (rlen <= 24 + 28 || off > mlen || rlen > mlen - off)
    return;
  f->is_authenticate = true;
  p = off + 16 + 28;
  end = off + rlen;
  while (p + 4 <= end) {
    uint16_t id = le16(m + p), alen = le16(m + p + 2);
    const unsigned char *v = m + p + 4;
    if (id == 0 || (size_t)alen > end - p - 4)
      break;                          /* MsvAvEOL, or a pair running past the response */
    if (id == 0x000A && alen == 16) { /* MsvAvChannelBindings */
      for (unsigned k = 0; k < 16; k++)
        if (v[k] != 0)
          f->has_cbt = true;
    } else if (id == 0x0009 && alen >= 2 && alen % 2 == 0 &&
               (size_t)alen / 2 < sizeof(f->spn)) { /* MsvAvTargetName, UTF-16LE */
      size_t n = alen / 2, k;
      for (k = 0; k < n; k++) {
        uint16_t ch = le16(v + 2 * k);
        if (ch < 0x21 || ch > 0x7e)
          break;
        f->spn[k] = (char)ch;
      }
      f->spn[k < n ? 0 : n] = '\0';
    }
    p += 4 + (size_t)alen;
  }
}

/* The text of a mechanism minor code alone (first message). */
static void mech_text(OM_uint32 minor, char *buf, size_t len)
{
  OM_uint32 msg_ctx = 0, min;
  gss_buffer_desc t = GSS_C_EMPTY_BUFFER;

  buf[0] = '\0';
  if (minor == 0 ||
      GSS_ERROR(gss_display_status(&min, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &msg_ctx, &t)))
    return;
  snprintf(buf, len, "%.*s", (int)t.length, (const char *)t.value);
  gss_release_buffer(&min, &t);
}

/* gss-ntlmssp's answer to every refusal by winbind (see auth_winbind.c) */
static bool is_winbind_refusal(const gh__auth_engine_t *e, const char *mt,
                               const gh__ntlm_auth_facts_t *nf)
{
  char buf[128];

  return !e->ntlm_user_file && nf->is_authenticate &&
         strcmp(mt, strerror_r(EACCES, buf, sizeof(buf))) == 0;
}

/* winbind refused: why, as far as can be told without the password. A
 * winbind that does not answer or whose privileged pipe this process may
 * not use is the server's problem, not the client's: 503 and a log line
 * (the application never sees the request). */
static void winbind_cause(const gh__auth_engine_t *e, gh__auth_result_t *r,
                          const gh__ntlm_auth_facts_t *nf, unsigned accept_ms)
{
  char detail[320], msg[640];
  /* libwbclient gives up on a winbindd that does not answer after 300 s
   * (compiled in): an accept that took that long met a hung winbindd, and
   * asking it again would hold this worker as long once more */
  bool hung = accept_ms >= GH__WINBIND_HUNG_MS;
  gh__winbind_state_t st = hung ? GH__WINBIND_DOWN : gh__winbind_probe();

  if (st == GH__WINBIND_DOWN || st == GH__WINBIND_HUNG || st == GH__WINBIND_PIPE_REFUSED) {
    r->info.failure = st == GH__WINBIND_PIPE_REFUSED ? GH_AUTH_FAILURE_WINBIND_PIPE
                                                     : GH_AUTH_FAILURE_WINBIND_UNAVAILABLE;
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, GH_EAUTH_UNAVAILABLE);
    char waited[48] = "";
    if (hung)
      snprintf(waited, sizeof(waited), ", winbindd did not answer for %u s", accept_ms / 1000);
    snprintf(msg, sizeof(msg), "NTLM logon%s%s not checked (503%s): %s; fix: %s",
             nf->user[0] ? " of " : "", nf->user, waited, gh_auth_failure_text(r->info.failure),
             gh_auth_failure_fix(r->info.failure));
    gh__auth_log(e->log_cb, e->log_arg, LOG_ERR, msg);
    return;
  }
  if (st != GH__WINBIND_OK || !nf->user[0])
    return;
  switch (gh__winbind_account_known(nf->user)) {
  case 0:
    r->info.failure = GH_AUTH_FAILURE_UNKNOWN_ACCOUNT;
    snprintf(detail, sizeof(detail), "the domain does not know %s", nf->user);
    gh__auth_set_failure_facts(r, NULL, NULL, detail);
    break;
  case 1:
    r->info.failure = GH_AUTH_FAILURE_BAD_PASSWORD;
    gh__auth_set_failure_facts(
        r, NULL, NULL,
        "the domain controller refused the logon: a wrong password, or the account is disabled, "
        "locked out or its password expired (gss-ntlmssp does not pass on which; the DC's log "
        "or wbinfo -a tells)");
    break;
  default:
    break;
  }
}

bool gh__ntlm_winbind_ready(const gh__auth_engine_t *e, gh__auth_result_t *r,
                            const unsigned char *tok, size_t tok_len)
{
  gh__ntlm_auth_facts_t nf;
  char msg[640];

  if (!e->ntlm || e->ntlm_user_file)
    return true;
  /* every NTLM message: gss-ntlmssp asks winbindd for the NetBIOS names
   * when it answers a NEGOTIATE, and to check an AUTHENTICATE. A winbindd
   * that is not running fails the accept at once (winbind_cause says so);
   * only a hung one is kept from gss-ntlmssp. */
  if (!memmem(tok, tok_len, GH__NTLM_SIGNATURE, 8) ||
      gh__winbind_ping_within(GH__WINBIND_PING_MS) != GH__WINBIND_PING_TIMEOUT)
    return true;
  gh__ntlm_auth_facts(tok, tok_len, &nf);
  r->info.failure = GH_AUTH_FAILURE_WINBIND_UNAVAILABLE;
  gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, GH_EAUTH_UNAVAILABLE);
  snprintf(msg, sizeof(msg),
           "NTLM logon%s%s not checked (503, winbindd did not answer a ping within %u s: hung?): "
           "%s; fix: %s",
           nf.user[0] ? " of " : "", nf.user, GH__WINBIND_PING_MS / 1000,
           gh_auth_failure_text(r->info.failure), gh_auth_failure_fix(r->info.failure));
  gh__auth_log(e->log_cb, e->log_arg, LOG_ERR, msg);
  return false;
}

/* A failed NTLM accept (raw or in SPNEGO): the cause from gss-ntlmssp's
 * minor, the user and target name from the AUTHENTICATE message; through
 * winbind, what winbind itself can tell. */
void gh__ntlm_fail(const gh__auth_engine_t *e, gh__auth_result_t *r, OM_uint32 maj, OM_uint32 minor,
                   const unsigned char *tok, size_t tok_len, unsigned accept_ms,
                   gh__ntlm_auth_facts_t *nf)
{
  char mt[160];
  gh_auth_failure_t cause;

  (void)maj;
  mech_text(minor, mt, sizeof(mt));
  gh__ntlm_auth_facts(tok, tok_len, nf);
  cause = gh__auth_failure_of_ntlm(minor, mt, nf->is_type3);
  if (cause != GH_AUTH_FAILURE_OTHER)
    r->info.failure = cause;
  gh__auth_set_failure_facts(r, nf->user, nf->spn, NULL);
  if (is_winbind_refusal(e, mt, nf))
    winbind_cause(e, r, nf, accept_ms);
}

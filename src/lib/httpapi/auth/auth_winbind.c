/* auth_winbind.c: NTLM checked through winbind — is winbindd there, does its privileged pipe let
 * this process in, is an account known: the start-up check and the diagnosis of a failed logon. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>

#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_pac.h"
#include "sec/nss.h"
#include "util/clock.h"

#if GH_HAVE_WBCLIENT
#include <stdint.h>
#include <wbclient.h>
#endif

/*
 * gss-ntlmssp (1.2.0) hands an AUTHENTICATE message it has no user file for
 * to winbindd (wbcCtxAuthenticateUserEx, level RESPONSE) over winbind's
 * privileged pipe, and answers every refusal with EACCES, whatever the DC
 * said (its winbind.c drops the wbcAuthErrorInfo): a wrong password, an
 * unknown user, a disabled account, an expired password, winbindd not
 * running and a privileged pipe this process may not open all look the same.
 * gh__winbind_probe and gh__winbind_account_known tell apart what can be
 * told without the user's password: winbindd down (503, recovers by itself
 * once it answers again), the pipe refused (503, needs the service user in
 * the pipe directory's group), an account the domain does not know. The DC's
 * own reason for a known account (wrong password, disabled, locked,
 * expired) is not available: asking winbindd again with the client's
 * response would count a second bad password against the account.
 *
 * A hung winbindd (alive, not answering): libwbclient and gss-ntlmssp wait
 * for it with no limit we can set (measured: an NTLM logon still waiting
 * after 900 s), holding the worker. gh__winbind_ping_within asks winbindd
 * for a ping from a helper thread with its own libwbclient context before
 * an AUTHENTICATE goes to gss-ntlmssp, and gives up after a few seconds:
 * the logon is then 503 without calling gss-ntlmssp. A helper that never
 * comes back stays blocked (it holds nothing of the request); while one is
 * blocked no other is started and every NTLM logon is 503 at once.
 */

typedef struct ping_job {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done, abandoned, ok;
} ping_job_t;
/* the answer of gh__winbind_ping_within */

static atomic_uint pings_blocked;

static void *ping_helper(void *arg)
{
  ping_job_t *j = arg;
  bool ok = false, abandoned;
#if GH_HAVE_WBCLIENT
  struct wbcContext *ctx = wbcCtxCreate();
  if (ctx) {
    ok = WBC_ERROR_IS_OK(wbcCtxPing(ctx));
    wbcCtxFree(ctx);
  }
#endif
  pthread_mutex_lock(&j->lock);
  j->done = true;
  j->ok = ok;
  abandoned = j->abandoned;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->lock);
  if (abandoned) {
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
    atomic_fetch_sub(&pings_blocked, 1);
  }
  return NULL;
}

gh__winbind_ping_t gh__winbind_ping_within(unsigned timeout_ms)
{
  ping_job_t *j;
  pthread_t th;
  pthread_attr_t ta;
  pthread_condattr_t ca;
  struct timespec dl;
  bool ok;
  int rc = 0;

  if (atomic_load(&pings_blocked) > 0)
    return GH__WINBIND_PING_TIMEOUT; /* the last one has not come back */
  j = calloc(1, sizeof(*j));
  if (!j)
    return GH__WINBIND_PING_OK; /* cannot tell: let gss-ntlmssp try */
  pthread_mutex_init(&j->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&j->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &ta, ping_helper, j) != 0) {
    pthread_attr_destroy(&ta);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
    return GH__WINBIND_PING_OK;
  }
  pthread_attr_destroy(&ta);
  gh__deadline_after_ms(&dl, timeout_ms);
  pthread_mutex_lock(&j->lock);
  while (!j->done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&j->cond, &j->lock, &dl);
  if (!j->done) {
    j->abandoned = true; /* the helper frees the job */
    atomic_fetch_add(&pings_blocked, 1);
    pthread_mutex_unlock(&j->lock);
    return GH__WINBIND_PING_TIMEOUT;
  }
  ok = j->ok;
  pthread_mutex_unlock(&j->lock);
  pthread_mutex_destroy(&j->lock);
  pthread_cond_destroy(&j->cond);
  free(j);
  return ok ? GH__WINBIND_PING_OK : GH__WINBIND_PING_FAILED;
}

GH_EXPORT int gh_auth_winbind_ping(unsigned timeout_ms)
{
#if GH_HAVE_WBCLIENT
  switch (gh__winbind_ping_within(timeout_ms)) {
  case GH__WINBIND_PING_OK:
    return 0;
  case GH__WINBIND_PING_TIMEOUT:
    return GH_ETIMEOUT;
  default:
    return GH_EAUTH_UNAVAILABLE;
  }
#else
  (void)timeout_ms;
  return GH_EUNSUPPORTED;
#endif
}

gh__winbind_state_t gh__winbind_probe(void)
{
#if GH_HAVE_WBCLIENT
  struct wbcInterfaceDetails *det = NULL;
  struct wbcAuthUserParams ap;
  struct wbcAuthUserInfo *info = NULL;
  struct wbcAuthErrorInfo *aerr = NULL;
  uint8_t nt[24] = {0};
  wbcErr we;
  gh__winbind_state_t st = GH__WINBIND_OK;

  /* libwbclient's own calls wait for a hung winbindd forever: the engine's
   * start-up (gh__winbind_check_at_start) hung with it */
  switch (gh__winbind_ping_within(GH__WINBIND_PING_MS)) {
  case GH__WINBIND_PING_OK:
    break;
  case GH__WINBIND_PING_TIMEOUT:
    return GH__WINBIND_HUNG;
  default:
    return GH__WINBIND_DOWN;
  }
  if (!WBC_ERROR_IS_OK(wbcInterfaceDetails(&det)))
    det = NULL;
  /* the privileged pipe, as gss-ntlmssp uses it: a logon with an NTLM
   * response for an account that does not exist; only the transport of the
   * answer matters (no account is touched) */
  memset(&ap, 0, sizeof(ap));
  ap.account_name = "gatehouse-probe-no-such-user";
  ap.domain_name = det && det->netbios_domain ? det->netbios_domain : "";
  ap.workstation_name = "";
  ap.level = WBC_AUTH_USER_LEVEL_RESPONSE;
  ap.password.response.nt_length = sizeof(nt);
  ap.password.response.nt_data = nt;
  we = wbcAuthenticateUserEx(&ap, &info, &aerr);
  if (we == WBC_ERR_WINBIND_NOT_AVAILABLE)
    st = WBC_ERROR_IS_OK(wbcPing()) ? GH__WINBIND_PIPE_REFUSED : GH__WINBIND_DOWN;
  wbcFreeMemory(info);
  wbcFreeMemory(aerr);
  wbcFreeMemory(det);
  return st;
#else
  return GH__WINBIND_UNKNOWN;
#endif
}

int gh__winbind_account_known(const char *domain_user)
{
#if GH_HAVE_WBCLIENT
  char dom[256] = "", *user;
  const char *bs = strchr(domain_user, '\\');
  struct wbcDomainSid sid;
  enum wbcSidType type;
  wbcErr we;

  if (bs) {
    if ((size_t)(bs - domain_user) >= sizeof(dom))
      return -1;
    memcpy(dom, domain_user, (size_t)(bs - domain_user));
    dom[bs - domain_user] = '\0';
    user = (char *)bs + 1;
  } else {
    user = (char *)domain_user;
  }
  if (!user[0])
    return -1;
  we = wbcLookupName(dom, user, &sid, &type);
  if (WBC_ERROR_IS_OK(we))
    return type == WBC_SID_NAME_USER || type == WBC_SID_NAME_COMPUTER ? 1 : 0;
  if (we == WBC_ERR_DOMAIN_NOT_FOUND || we == WBC_ERR_INVALID_SID)
    return 0;
  return -1;
#else
  (void)domain_user;
  return -1;
#endif
}

int gh__winbind_user_sids(const char *name, struct gh__sids **ret_sids)
{
  *ret_sids = NULL;
#if GH_HAVE_WBCLIENT
  char dom[256] = "", user[256];
  const char *bs = strchr(name, '\\'), *at = strrchr(name, '@');
  struct wbcDomainSid sid, *groups = NULL;
  enum wbcSidType type;
  uint32_t n = 0;
  char *list = NULL;
  size_t len, off;
  wbcErr we;
  int rc;

  /* split as winbind expects: DOMAIN\user, user@realm (the realm is the
   * domain's DNS name), or a bare name in winbind's default domain */
  if (bs) {
    if ((size_t)(bs - name) >= sizeof(dom) || strlen(bs + 1) >= sizeof(user))
      return 0;
    memcpy(dom, name, (size_t)(bs - name));
    dom[bs - name] = '\0';
    snprintf(user, sizeof(user), "%s", bs + 1);
  } else if (at) {
    if ((size_t)(at - name) >= sizeof(user) || strlen(at + 1) >= sizeof(dom))
      return 0;
    memcpy(user, name, (size_t)(at - name));
    user[at - name] = '\0';
    snprintf(dom, sizeof(dom), "%s", at + 1);
  } else {
    if (strlen(name) >= sizeof(user))
      return 0;
    snprintf(user, sizeof(user), "%s", name);
  }
  if (!user[0])
    return 0;
  /* a hung winbindd would hold the worker for ever (libwbclient has no
   * limit): ask for a ping with one first */
  switch (gh__winbind_ping_within(GH__WINBIND_PING_MS)) {
  case GH__WINBIND_PING_OK:
    break;
  case GH__WINBIND_PING_FAILED:
    return -ENOENT;
  default:
    return -EAGAIN;
  }
  if (at) {
    /* the realm (the domain's DNS name) to its NetBIOS name: looked up
     * under the DNS name, winbindd would remember the SID's domain as
     * spelled here ("AD.TEST\\carla") for every later lookup */
    struct wbcDomainInfo *dinfo = NULL;
    we = wbcDomainInfo(dom, &dinfo);
    if (we == WBC_ERR_WINBIND_NOT_AVAILABLE)
      return -ENOENT;
    if (we == WBC_ERR_NO_MEMORY)
      return -ENOMEM;
    if (!WBC_ERROR_IS_OK(we) || !dinfo->short_name || !dinfo->short_name[0] ||
        strlen(dinfo->short_name) >= sizeof(dom)) {
      wbcFreeMemory(dinfo);
      return 0; /* not a domain winbind knows: not an AD user */
    }
    snprintf(dom, sizeof(dom), "%s", dinfo->short_name);
    wbcFreeMemory(dinfo);
  } else if (!bs) {
    /* a bare name: an account NSS knows is that account — a local one
     * (its uid has no SID) keeps today's behaviour, a winbind one ("winbind
     * use default domain") is looked up by its uid's SID; a name NSS does
     * not know is looked up in winbind's own domain, as pam_winbind does */
    struct passwd pw;
    char *pwbuf = NULL;
    rc = gh__nss_lookup(GH__NSS_PWNAM, user, 0, &pw, &pwbuf);
    if (rc == 0) {
      we = wbcUidToSid(pw.pw_uid, &sid);
      free(pwbuf);
      if (we == WBC_ERR_NO_MEMORY)
        return -ENOMEM;
      if (!WBC_ERROR_IS_OK(we))
        return 0;
      goto have_sid;
    }
    if (rc == -ENOMEM)
      return -ENOMEM;
    struct wbcInterfaceDetails *det = NULL;
    we = wbcInterfaceDetails(&det);
    if (we == WBC_ERR_WINBIND_NOT_AVAILABLE)
      return -ENOENT;
    if (we == WBC_ERR_NO_MEMORY)
      return -ENOMEM;
    if (!WBC_ERROR_IS_OK(we) || !det->netbios_domain ||
        strlen(det->netbios_domain) >= sizeof(dom)) {
      wbcFreeMemory(det);
      return 0;
    }
    snprintf(dom, sizeof(dom), "%s", det->netbios_domain);
    wbcFreeMemory(det);
  }
  we = wbcLookupName(dom, user, &sid, &type);
  if (we == WBC_ERR_WINBIND_NOT_AVAILABLE)
    return -ENOENT;
  if (we == WBC_ERR_NO_MEMORY)
    return -ENOMEM;
  if (!WBC_ERROR_IS_OK(we) || type != WBC_SID_NAME_USER)
    return 0; /* not a domain user (a local account, a group, unknown) */
have_sid:
  we = wbcLookupUserSids(&sid, false, &n, &groups);
  if (we == WBC_ERR_NO_MEMORY)
    return -ENOMEM;
  if (!WBC_ERROR_IS_OK(we))
    return -EAGAIN; /* a known user whose groups cannot be read: undecided */
  len = ((size_t)n + 1) * (WBC_SID_STRING_BUFLEN + 1);
  list = malloc(len);
  if (!list) {
    wbcFreeMemory(groups);
    return -ENOMEM;
  }
  off = (size_t)wbcSidToStringBuf(&sid, list, WBC_SID_STRING_BUFLEN);
  for (uint32_t i = 0; i < n; i++) {
    if (memcmp(&groups[i], &sid, sizeof(sid)) == 0)
      continue;
    list[off++] = ',';
    off += (size_t)wbcSidToStringBuf(&groups[i], list + off, WBC_SID_STRING_BUFLEN);
  }
  wbcFreeMemory(groups);
  rc = gh__ntlm_sids_parse(list, off, ret_sids);
  free(list);
  return rc;
#else
  (void)name;
  return -ENOSYS;
#endif
}

void gh__winbind_check_at_start(gh__auth_engine_t *e)
{
  struct passwd pw, *pwp = NULL;
  char buf[1024], who[64], msg[512];
  uid_t uid = geteuid();

  if (!e->ntlm || e->ntlm_user_file)
    return;
  if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
    snprintf(who, sizeof(who), "%s", pwp->pw_name);
  else
    snprintf(who, sizeof(who), "%u", (unsigned)uid);
  switch (gh__winbind_probe()) {
  case GH__WINBIND_OK:
    break;
  case GH__WINBIND_DOWN:
    gh__auth_log(e->log_cb, e->log_arg, LOG_WARNING,
                 "NTLM is checked through winbind (no ntlm_user_file), and winbindd does not "
                 "answer: NTLM logons get 503 until it does (no restart needed)");
    break;
  case GH__WINBIND_HUNG:
    gh__auth_log(e->log_cb, e->log_arg, LOG_WARNING,
                 "NTLM is checked through winbind (no ntlm_user_file), and winbindd is running "
                 "but did not answer a ping within 5 s (hung?): NTLM logons get 503 until it "
                 "does (no restart of gatehoused needed; restart winbind)");
    break;
  case GH__WINBIND_PIPE_REFUSED:
    snprintf(msg, sizeof(msg),
             "winbind's privileged pipe refuses %s (uid %u): every NTLM logon would fail. "
             "NTLM via winbind needs the service user in group winbindd_priv (or the "
             "privileged pipe dir's group): usermod -aG winbindd_priv %s",
             who, (unsigned)uid, who);
    gh__auth_log(e->log_cb, e->log_arg, LOG_ERR, msg);
    break;
  case GH__WINBIND_UNKNOWN:
    break;
  }
}

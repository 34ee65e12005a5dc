/* auth_session_step.c: the engine's session step — a cookie opened into a delivered identity, a
 * session minted after a successful authentication, the Set-Cookie values; session_outcome decides
 * and logs every outcome. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"
#include "httpapi/auth/auth_engine.h"
#include "httpapi/auth/auth_internal.h"
#include "httpapi/auth/auth_session.h"
#include "httpapi/metrics.h"
#include "util/alloc.h"

typedef enum session_event {
  SESSION_MINTED,   /* a new session after an authentication */
  SESSION_ACCEPTED, /* a cookie opened and the account got a token */
  SESSION_REFUSED,  /* a cookie that counts as no cookie (cause) */
} session_event_t;

/* Refusal lines: at most GH__SESSION_LOG_PER_S a second (a client can send
 * a bad cookie with every request); the next line says how many were left
 * out. */
#define GH__SESSION_LOG_PER_S 20u
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_second;
static unsigned log_count, log_dropped;

/* Whether this refusal is logged; *ret_dropped: lines left out before it. */
static bool log_allowed(unsigned *ret_dropped)
{
  time_t now = time(NULL);
  bool ok;

  pthread_mutex_lock(&log_mu);
  if (now != log_second) {
    log_second = now;
    log_count = 0;
  }
  ok = log_count < GH__SESSION_LOG_PER_S;
  if (ok) {
    log_count++;
    *ret_dropped = log_dropped;
    log_dropped = 0;
  } else {
    log_dropped++;
  }
  pthread_mutex_unlock(&log_mu);
  return ok;
}

/* The metrics reason of a refusal cause (metrics.h: the exposition keeps
 * few label values; the log line keeps the exact cause). */
static gh__metrics_session_reason_t metrics_reason(gh__session_cause_t cause)
{
  switch (cause) {
  case GH__SESSION_OK:
    return GH__MSR_NONE;
  case GH__SESSION_UNKNOWN_KEY:
  case GH__SESSION_TAMPERED:
    return GH__MSR_INVALID;
  case GH__SESSION_EXPIRED:
    return GH__MSR_EXPIRED;
  case GH__SESSION_IDLE:
    return GH__MSR_IDLE;
  case GH__SESSION_ACCOUNT:
    return GH__MSR_ACCOUNT;
  case GH__SESSION_ERROR:
    return GH__MSR_ERROR;
  default: /* OVERSIZE, BAD_BASE64, TRUNCATED, BAD_VERSION, MALFORMED, FUTURE */
    return GH__MSR_MALFORMED;
  }
}

/* The one place a session outcome is decided and reported: every minted,
 * accepted and refused session passes here, is counted (metrics.h) and, when
 * refused, logged once with its cause. */
static void session_outcome(gh__auth_engine_t *e, const gh__session_site_t *ss, session_event_t ev,
                            gh__session_cause_t cause, const char *who)
{
  char line[512], more[64] = "";
  unsigned dropped = 0;

  gh__metrics_session(ev == SESSION_MINTED     ? GH__MS_MINTED
                      : ev == SESSION_ACCEPTED ? GH__MS_ACCEPTED
                                               : GH__MS_REFUSED,
                      ev == SESSION_REFUSED ? metrics_reason(cause) : GH__MSR_NONE);
  if (ev != SESSION_REFUSED || !log_allowed(&dropped))
    return;
  if (dropped)
    snprintf(more, sizeof(more), " (%u earlier refusals not logged)", dropped);
  snprintf(line, sizeof(line),
           "session cookie %s on site %s refused%s%s: %s; the request goes on as if it had "
           "none%s",
           ss->name, ss->site, who ? " for " : "", who ? who : "", gh__session_cause_text(cause),
           more);
  gh__auth_log(e->log_cb, e->log_arg, LOG_NOTICE, line);
}

/* "name=value; Path=/p; Max-Age=N; HttpOnly; SameSite=Lax[; Secure]" */
static char *set_cookie_value(const gh__session_site_t *ss, const char *value, long long max_age,
                              bool tls)
{
  size_t len = strlen(ss->name) + strlen(value) + strlen(ss->site) + 96;
  char *s = gh__malloc(len);

  if (s)
    snprintf(s, len, "%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Lax%s", ss->name, value,
             ss->site, max_age, (tls || ss->secure_always) ? "; Secure" : "");
  return s;
}

char *gh__auth_session_clear_cookie(const gh__session_site_t *ss, bool tls)
{
  return set_cookie_value(ss, "", 0, tls);
}

/* Seals claims; the Set-Cookie value (malloc'd) or NULL. */
static char *seal_cookie(gh__auth_engine_t *e, const gh__session_site_t *ss,
                         const gh__session_claims_t *c, time_t now, bool tls)
{
  char val[GH__SESSION_VALUE_MAX + 1], line[160];
  int n = gh__session_seal(ss->keys, ss->name, ss->site, c, val, sizeof(val));

  if (n < 0) {
    snprintf(line, sizeof(line), "session cookie %s on site %s not sealed: %s", ss->name, ss->site,
             gh_strerror(n));
    gh__auth_log(e->log_cb, e->log_arg, LOG_ERR, line);
    return NULL;
  }
  return set_cookie_value(ss, val, (long long)(c->expiry - now), tls);
}

static gh_token_source_t source_of(const char *package)
{
  if (strcmp(package, "Kerberos") == 0)
    return GH_SOURCE_KERBEROS;
  if (strcmp(package, "NTLM") == 0)
    return GH_SOURCE_NTLM;
  return GH_SOURCE_BASIC;
}

/* The record of a session request: SUCCESS, flagged SESSION, with tok
 * (taken: closed on failure). 0 or -ENOMEM. */
static int fill_record(gh__auth_engine_t *e, const gh__session_claims_t *c, gh_token_t tok,
                       gh__auth_result_t *r)
{
  if (gh__auth_result_set_users(r, c->remote, c->local) != 0) {
    e->ops.close(tok);
    return -ENOMEM;
  }
  r->verdict = GH__AUTH_DELIVER;
  r->info.status = GH_AUTH_STATUS_SUCCESS;
  r->info.flags = GH_AUTH_FLAG_SESSION;
  r->info.type = c->type;
  r->info.package_name = c->package;
  r->info.expiry = (time_t)c->expiry;
  r->info.token = tok;
  return 0;
}

/* A token made again for the session's account: 0 or the sec layer's
 * error (GH_ENO_SUCH_USER, GH_EUID_REFUSED, ... -ENOMEM). */
static int make_token(gh__auth_engine_t *e, const gh__session_claims_t *c, gh_token_t *ret_tok)
{
  gh_token_opts_t opts = {
      .level = GH_LEVEL_IMPERSONATE,
      .source = source_of(c->package),
      .auth_name = c->remote,
      .expiry = (time_t)c->expiry,
      .delegated_cred = GSS_C_NO_CREDENTIAL,
  };

  return e->ops.from_user(c->local, &opts, ret_tok);
}

/* The first candidate that opens (*ret_i); its cause, or the first failure's. */
static gh__session_cause_t open_best(const gh__session_site_t *ss, const char *const *vals,
                                     const size_t *lens, size_t n, time_t now,
                                     gh__session_claims_t *ret, size_t *ret_i)
{
  gh__session_cause_t first = GH__SESSION_MALFORMED, c;

  for (size_t i = 0; i < n; i++) {
    c = gh__session_open(ss->keys, ss->name, ss->site, vals[i], lens[i], now, ss->max_age_s,
                         ss->idle_s, ret);
    if (c == GH__SESSION_OK) {
      *ret_i = i;
      return c;
    }
    if (i == 0)
      first = c;
  }
  return first;
}

/* ---- the connection's memo ---- */

struct gh__session_memo {
  const gh__session_site_t *ss;
  time_t opened;
  gh_token_t token; /* own handle */
  gh__session_claims_t claims;
  size_t len;
  char value[GH__SESSION_VALUE_MAX];
};

void gh__auth_session_memo_clear(gh__auth_conn_t *c)
{
  if (!c->session_memo)
    return;
  if (c->session_memo->token)
    c->engine->ops.close(c->session_memo->token);
  free(c->session_memo);
  c->session_memo = NULL;
}

static bool refresh_due(const gh__session_site_t *ss, const gh__session_claims_t *c, time_t now)
{
  return (int64_t)now - c->last_use >= (int64_t)(ss->idle_s / 4);
}

/* The memo's identity when one of vals is its value, it is younger than
 * GH__SESSION_MEMO_S, the session's times still hold and no refresh is due:
 * 1 with *r filled; else 0 (the full path decides, logs and refreshes). */
static int memo_use(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh__session_site_t *ss,
                    const char *const *vals, const size_t *lens, size_t n, time_t now,
                    gh__auth_result_t *r)
{
  struct gh__session_memo *m = c->session_memo;
  gh_token_t t = 0;
  bool same = false;

  if (!m || m->ss != ss || now < m->opened || now - m->opened >= GH__SESSION_MEMO_S)
    return 0;
  for (size_t i = 0; i < n && !same; i++)
    same = lens[i] == m->len && memcmp(vals[i], m->value, m->len) == 0;
  if (!same || refresh_due(ss, &m->claims, now) ||
      gh__session_check_time(&m->claims, now, ss->max_age_s, ss->idle_s) != GH__SESSION_OK ||
      e->ops.open_handle(m->token, &t) != 0)
    return 0;
  return fill_record(e, &m->claims, t, r) == 0;
}

/* Remembers the value that opened, with an own handle of r's token. */
static void memo_store(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh__session_site_t *ss,
                       const char *val, size_t len, const gh__session_claims_t *claims, time_t now,
                       const gh__auth_result_t *r)
{
  struct gh__session_memo *m;

  gh__auth_session_memo_clear(c);
  if (len > sizeof(m->value) || !(m = gh__malloc(sizeof(*m))))
    return;
  if (e->ops.open_handle(r->info.token, &m->token) != 0) {
    free(m);
    return;
  }
  m->ss = ss;
  m->opened = now;
  m->claims = *claims;
  m->len = len;
  memcpy(m->value, val, len);
  c->session_memo = m;
}

int gh__auth_session_use(gh__auth_engine_t *e, gh__auth_conn_t *c, const gh__session_site_t *ss,
                         const char *const *vals, const size_t *lens, size_t n, bool tls,
                         gh__auth_result_t *r, char **ret_set_cookie)
{
  gh__session_claims_t cl;
  time_t now = time(NULL);
  gh__session_cause_t cause;
  gh_token_t tok = 0;
  size_t which = 0;
  int ret = 0, t;

  if (n == 0)
    goto out;
  if (memo_use(e, c, ss, vals, lens, n, now, r)) {
    session_outcome(e, ss, SESSION_ACCEPTED, GH__SESSION_OK, r->info.local_user);
    ret = 1;
    goto out;
  }
  cause = open_best(ss, vals, lens, n, now, &cl, &which);
  if (cause != GH__SESSION_OK) {
    session_outcome(e, ss, SESSION_REFUSED, cause, NULL);
    goto out;
  }
  t = make_token(e, &cl, &tok);
  if (t == GH_ENO_SUCH_USER || t == GH_EUID_REFUSED || t == GH_ELIMIT || t == -EINVAL) {
    session_outcome(e, ss, SESSION_REFUSED, GH__SESSION_ACCOUNT, cl.local);
    goto out;
  }
  if (t == 0)
    t = fill_record(e, &cl, tok, r);
  if (t != 0) {
    /* NSS could not answer: 503, as for any authentication */
    session_outcome(e, ss, SESSION_REFUSED, GH__SESSION_ERROR, cl.local);
    gh__auth_set_verdict(r, GH__AUTH_UNAVAILABLE, t);
    ret = 2;
    goto out;
  }
  session_outcome(e, ss, SESSION_ACCEPTED, GH__SESSION_OK, cl.local);
  ret = 1;
  /* sliding idle window: a fresh last-use once a quarter of it has gone */
  if (refresh_due(ss, &cl, now)) {
    cl.last_use = now;
    *ret_set_cookie = seal_cookie(e, ss, &cl, now, tls);
  } else {
    memo_store(e, c, ss, vals[which], lens[which], &cl, now, r);
  }
out:
  return ret;
}

void gh__auth_session_mint(gh__auth_engine_t *e, const gh__session_site_t *ss,
                           const gh_auth_settings_t *site, bool tls, const gh__auth_result_t *r,
                           char **ret_set_cookie)
{
  const gh_auth_info_t *ai = &r->info;
  gh__session_claims_t c;
  time_t now = time(NULL);

  memset(&c, 0, sizeof(c));
  if (r->verdict != GH__AUTH_DELIVER || ai->status != GH_AUTH_STATUS_SUCCESS ||
      (ai->flags & (GH_AUTH_FLAG_SESSION | GH_AUTH_FLAG_TOKEN_FOR_CACHED_CRED)) ||
      ai->type == GH_AUTH_TYPE_PEER || ai->type == GH_AUTH_TYPE_NONE || !ai->local_user ||
      !ai->remote_user || !ai->package_name)
    goto out;
  /* an unmapped principal's IDENTIFY token is not an account's session */
  if (site->allow_unmapped && strcmp(ai->local_user, e->unmapped_user) == 0)
    goto out;
  if (strlen(ai->local_user) > GH__SESSION_NAME_MAX ||
      strlen(ai->remote_user) > GH__SESSION_NAME_MAX)
    goto out;
  c.type = ai->type;
  c.package = ai->package_name;
  c.issued = c.last_use = now;
  c.expiry = (int64_t)now + ss->max_age_s;
  /* never past the end of the Kerberos ticket (the GSS context's lifetime) */
  if (ai->expiry != 0 && (int64_t)ai->expiry < c.expiry)
    c.expiry = ai->expiry;
  if (c.expiry <= now)
    goto out;
  snprintf(c.local, sizeof(c.local), "%s", ai->local_user);
  snprintf(c.remote, sizeof(c.remote), "%s", ai->remote_user);
  *ret_set_cookie = seal_cookie(e, ss, &c, now, tls);
  if (*ret_set_cookie)
    session_outcome(e, ss, SESSION_MINTED, GH__SESSION_OK, c.local);
out:
  return;
}

/* metrics.c: the public metrics calls, the HTTP/auth/session counter indexes, and the Prometheus
 * text (exposition format 0.0.4) of the sums. */
#include <gatehouse/metrics.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/metrics.h"
#include "util/alloc.h"

/* ---- indexes --------------------------------------------------------------- */

/* 0-4: the classes 1xx-5xx, 5: outside 100-599, then one per code below. */
static const char *const code_names[GH__METRICS_CODES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "other", "200", "201", "204", "206", "301",
    "302", "304", "307", "308", "400", "401",   "403", "404", "405", "408", "411",
    "413", "414", "416", "429", "431", "500",   "501", "502", "503", "504",
};

const uint8_t gh__metrics_code_idx[600] = {
    [200] = 6,  [201] = 7,  [204] = 8,  [206] = 9,  [301] = 10, [302] = 11, [304] = 12,
    [307] = 13, [308] = 14, [400] = 15, [401] = 16, [403] = 17, [404] = 18, [405] = 19,
    [408] = 20, [411] = 21, [413] = 22, [414] = 23, [416] = 24, [429] = 25, [431] = 26,
    [500] = 27, [501] = 28, [502] = 29, [503] = 30, [504] = 31,
};

const char *gh__metrics_code_name(unsigned i)
{
  return i < GH__METRICS_CODES ? code_names[i] : "other";
}

static const char *const scheme_names[] = {"none",      "basic",    "ntlm",
                                           "negotiate", "kerberos", "peer"};
static const char *const outcome_names[GH__MO_COUNT] = {"success",  "cached",    "failure",
                                                        "continue", "malformed", "error"};
static const char *const session_reasons[GH__MSR_COUNT] = {
    "none", "malformed", "invalid", "expired", "idle", "account", "error"};

#define COUNT_ONE_(name, text, fix) +1
enum { N_FAILURES = 0 GH_AUTH_FAILURE_MAP(COUNT_ONE_) };
#undef COUNT_ONE_
#define N_SCHEMES (sizeof(scheme_names) / sizeof(scheme_names[0]))

_Static_assert(N_FAILURES <= GH__METRICS_REASONS, "a failure cause without a counter");
_Static_assert(N_SCHEMES <= GH__METRICS_SCHEMES, "a scheme without counters");
_Static_assert(GH__MO_COUNT <= GH__METRICS_OUTCOMES, "an outcome without a counter");
_Static_assert(GH__MSR_COUNT <= GH__METRICS_SESSION_REASONS, "a session reason without a counter");

void gh__metrics_auth(gh_auth_type_t type, gh__metrics_outcome_t outcome, gh_auth_failure_t failure)
{
  gh__metrics_shard_t *s = gh__metrics_mine();
  unsigned t = (unsigned)type < N_SCHEMES ? (unsigned)type : 0;
  atomic_fetch_add_explicit(&s->auth[t][outcome], 1, memory_order_relaxed);
  if (outcome != GH__MO_FAILURE)
    return;
  unsigned f = (unsigned)failure < N_FAILURES ? (unsigned)failure : 0;
  atomic_fetch_add_explicit(&s->auth_fail[t][f], 1, memory_order_relaxed);
  if (failure == GH_AUTH_FAILURE_REPLAY)
    gh__metrics_add(GH__M_REPLAYS);
}

void gh__metrics_session(gh__metrics_session_t outcome, gh__metrics_session_reason_t reason)
{
  if (outcome == GH__MS_MINTED)
    gh__metrics_add(GH__M_SESSIONS_MINTED);
  else if (outcome == GH__MS_ACCEPTED)
    gh__metrics_add(GH__M_SESSIONS_ACCEPTED);
  else
    atomic_fetch_add_explicit(
        &gh__metrics_mine()
             ->sessions_refused[(unsigned)reason < GH__MSR_COUNT ? reason : GH__MSR_ERROR],
        1, memory_order_relaxed);
}

/* ---- public calls ---------------------------------------------------------- */

GH_EXPORT size_t gh_metrics_size(unsigned n_slots)
{
  return gh__metrics_size(n_slots);
}

GH_EXPORT int gh_metrics_attach(void *mem, size_t len, unsigned n_slots)
{
  return gh__metrics_attach(mem, len, n_slots);
}

GH_EXPORT int gh_metrics_use_slot(unsigned index)
{
  return gh__metrics_use_slot(index);
}

GH_EXPORT void gh_metrics_worker_gone(unsigned index)
{
  gh__metrics_slot_gone(index);
}

GH_EXPORT void gh_metrics_worker_restarted(void)
{
  atomic_fetch_add_explicit(&gh__metrics_blk->restarts, 1, memory_order_relaxed);
}

GH_EXPORT void gh_metrics_worker_alive(unsigned n)
{
  atomic_store_explicit(&gh__metrics_blk->procs_alive, n, memory_order_relaxed);
}

/* ---- text -------------------------------------------------------------------- */

typedef struct tbuf {
  char *p;
  size_t len, cap;
  bool oom;
} tbuf_t;

static void tb_grow(tbuf_t *b, size_t more)
{
  if (b->oom || b->len + more + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 16384;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *p = gh__realloc(b->p, cap);
  if (p == NULL) {
    b->oom = true;
    return;
  }
  b->p = p;
  b->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void tb_printf(tbuf_t *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  tb_grow(b, n > 0 ? (size_t)n : 0);
  if (b->oom || n <= 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* A label value with \, " and newline escaped (exposition format 0.0.4). */
static void tb_label(tbuf_t *b, const char *v)
{
  tb_grow(b, 2 * strlen(v));
  for (; !b->oom && *v; v++) {
    if (*v == '\\' || *v == '"' || *v == '\n') {
      b->p[b->len++] = '\\';
      b->p[b->len++] = *v == '\n' ? 'n' : *v;
    } else {
      b->p[b->len++] = *v;
    }
  }
  if (!b->oom)
    b->p[b->len] = '\0';
}

static void tb_head(tbuf_t *b, const char *name, const char *type, const char *help)
{
  tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{site="..."  (the caller closes the braces) */
static void tb_site(tbuf_t *b, const char *name, const char *site)
{
  tb_printf(b, "%s{site=\"", name);
  tb_label(b, site);
  tb_printf(b, "\"");
}

#define SUM(field) gh__metrics_sum(&gh__metrics_slot_at(0)->shard[0].field)

/* Entries of one name are added up (two processes may have numbered the
 * same new site at once): the first entry of a name speaks for all. */
static bool first_of_name(unsigned i, const char **ret_name)
{
  const char *n = gh__metrics_site_name(i);
  if (n == NULL)
    return false;
  for (unsigned j = 0; j < i; j++) {
    const char *o = gh__metrics_site_name(j);
    if (o != NULL && strcmp(o, n) == 0)
      return false;
  }
  *ret_name = n;
  return true;
}

static bool same_name(unsigned i, const char *name)
{
  const char *n = gh__metrics_site_name(i);
  return n != NULL && strcmp(n, name) == 0;
}

static void render_requests(tbuf_t *b)
{
  const char *site;
  tb_head(b, "gatehouse_http_requests_total", "counter",
          "HTTP requests answered, by site (URL group prefix) and status code (rare codes by "
          "class).");
  for (unsigned i = 0; i < GH__METRICS_SITES; i++) {
    if (!first_of_name(i, &site))
      continue;
    for (unsigned c = 0; c < GH__METRICS_CODES; c++) {
      uint64_t v = 0;
      for (unsigned j = i; j < GH__METRICS_SITES; j++)
        if (same_name(j, site))
          v += SUM(requests[j][c]);
      if (v == 0)
        continue;
      tb_site(b, "gatehouse_http_requests_total", site);
      tb_printf(b, ",code=\"%s\"} %llu\n", code_names[c], (unsigned long long)v);
    }
  }
}

static void render_latency_site(tbuf_t *b, unsigned i, const char *site)
{
  uint64_t n[GH__METRICS_BOUNDS + 1] = {0}, sum_ns = 0, cum = 0;
  for (unsigned j = i; j < GH__METRICS_SITES; j++) {
    if (!same_name(j, site))
      continue;
    for (unsigned k = 0; k <= GH__METRICS_BOUNDS; k++)
      n[k] += SUM(latency[j][k]);
    sum_ns += SUM(latency_sum_ns[j]);
  }
  for (unsigned k = 0; k <= GH__METRICS_BOUNDS; k++)
    cum += n[k];
  if (cum == 0 && i < 2)
    return; /* (none) and (other) appear once they counted */
  cum = 0;
  for (unsigned k = 0; k <= GH__METRICS_BOUNDS; k++) {
    cum += n[k];
    tb_site(b, "gatehouse_http_request_duration_seconds_bucket", site);
    if (k < GH__METRICS_BOUNDS)
      tb_printf(b, ",le=\"%g\"} %llu\n", (double)gh__metrics_bounds_ns[k] / 1e9,
                (unsigned long long)cum);
    else
      tb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  }
  tb_site(b, "gatehouse_http_request_duration_seconds_sum", site);
  tb_printf(b, "} %.9f\n", (double)sum_ns / 1e9);
  tb_site(b, "gatehouse_http_request_duration_seconds_count", site);
  tb_printf(b, "} %llu\n", (unsigned long long)cum);
}

static void render_latency(tbuf_t *b)
{
  const char *site;
  tb_head(b, "gatehouse_http_request_duration_seconds", "histogram",
          "Time from a request read whole to its response's last bytes handed to the connection, by site.");
  for (unsigned i = 0; i < GH__METRICS_SITES; i++)
    if (first_of_name(i, &site))
      render_latency_site(b, i, site);
}

static void render_auth(tbuf_t *b)
{
  tb_head(b, "gatehouse_auth_attempts_total", "counter",
          "Authentication steps by scheme and outcome (success, cached, failure, continue, "
          "malformed, error).");
  for (unsigned t = 0; t < N_SCHEMES; t++)
    for (unsigned o = 0; o < GH__MO_COUNT; o++) {
      uint64_t v = SUM(auth[t][o]);
      if (v != 0)
        tb_printf(b, "gatehouse_auth_attempts_total{scheme=\"%s\",outcome=\"%s\"} %llu\n",
                  scheme_names[t], outcome_names[o], (unsigned long long)v);
    }
  tb_head(b, "gatehouse_auth_failures_total", "counter",
          "Refused authentications by scheme and cause (the cause named in the log line).");
  for (unsigned t = 0; t < N_SCHEMES; t++)
    for (unsigned f = 0; f < N_FAILURES; f++) {
      uint64_t v = SUM(auth_fail[t][f]);
      if (v != 0)
        tb_printf(b, "gatehouse_auth_failures_total{scheme=\"%s\",reason=\"%s\"} %llu\n",
                  scheme_names[t], gh_auth_failure_name((gh_auth_failure_t)f),
                  (unsigned long long)v);
    }
}

static void scalar(tbuf_t *b, const char *name, const char *help, gh__metrics_scalar_t m)
{
  tb_head(b, name, "counter", help);
  tb_printf(b, "%s %llu\n", name, (unsigned long long)SUM(scalar[m]));
}

static void render_scalars(tbuf_t *b)
{
  scalar(b, "gatehouse_auth_replays_refused_total", "Replayed Kerberos authenticators refused.",
         GH__M_REPLAYS);
  scalar(b, "gatehouse_replay_cache_errors_total",
         "Calls to the replay cache backend (Redis) that failed.", GH__M_RCACHE_ERRORS);
  scalar(b, "gatehouse_impersonations_total", "Times a thread took a client's identity.",
         GH__M_IMPERSONATIONS);
  scalar(b, "gatehouse_revert_failures_total",
         "Reverts to the service identity that failed (each ended its process).",
         GH__M_REVERT_FAILURES);
  scalar(b, "gatehouse_sessions_minted_total", "Session cookies issued.", GH__M_SESSIONS_MINTED);
  scalar(b, "gatehouse_sessions_accepted_total", "Session cookies that stood for a credential.",
         GH__M_SESSIONS_ACCEPTED);
  tb_head(b, "gatehouse_sessions_refused_total", "counter",
          "Session cookies counted as no cookie, by reason.");
  for (unsigned r = 1; r < GH__MSR_COUNT; r++)
    tb_printf(b, "gatehouse_sessions_refused_total{reason=\"%s\"} %llu\n", session_reasons[r],
              (unsigned long long)SUM(sessions_refused[r]));
  scalar(b, "gatehouse_connections_total", "Connections accepted.", GH__M_CONNECTIONS);
}

static void render_gauges(tbuf_t *b)
{
  tb_head(b, "gatehouse_connections_active", "gauge", "Connections open now.");
  tb_printf(b, "gatehouse_connections_active %lld\n", (long long)gh__metrics_sum_conns());
  tb_head(b, "gatehouse_worker_processes", "gauge", "Worker processes running.");
  tb_printf(b, "gatehouse_worker_processes %u\n",
            atomic_load_explicit(&gh__metrics_blk->procs_alive, memory_order_relaxed));
  tb_head(b, "gatehouse_worker_restarts_total", "counter",
          "Worker processes started again after one ended.");
  tb_printf(
      b, "gatehouse_worker_restarts_total %llu\n",
      (unsigned long long)atomic_load_explicit(&gh__metrics_blk->restarts, memory_order_relaxed));
}

GH_EXPORT int gh_metrics_render(char **ret_text, size_t *ret_len)
{
  tbuf_t b = {0};
  int ret = 0;
  render_requests(&b);
  render_latency(&b);
  render_auth(&b);
  render_scalars(&b);
  render_gauges(&b);
  if (b.oom || b.p == NULL) {
    free(b.p);
    ret = -ENOMEM;
    goto out;
  }
  *ret_text = b.p;
  *ret_len = b.len;
out:
  return ret;
}

/* handlers.c: gatehoused request entry — auth gate, built-in handlers (fixed, echo, authinfo, metrics), pipeline sites. */
#include "handlers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/metrics.h>

#include "accesslog.h"
#include "authprobe.h"
#include "daemonlog.h"
#include "pipeline_host.h"

static void reply(gh_request_t *req, int status, const char *text, const char *hname,
                  const char *hvalue)
{
  char body[512];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, text);
  gh_response_set_status(req, status, NULL);
  gh_response_set_header(req, "Content-Type", "text/plain; charset=utf-8");
  if (hname != NULL)
    gh_response_set_header(req, hname, hvalue);
  gh_response_send(req, body, (size_t)n, 0);
  gh_accesslog_write(req, status, (unsigned long long)n);
  gh_request_complete(req);
}

static void handle_fixed(gh_request_t *req, const gh_site_t *site)
{
  const char *body = site->body ? site->body : "";
  int status = site->status ? site->status : 200;
  size_t len = strlen(body);
  if (site->delay_ms > 0) {
    struct timespec ts = {site->delay_ms / 1000, (long)(site->delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
  gh_response_set_status(req, status, NULL);
  gh_response_set_header(req, "Content-Type",
                         site->content_type ? site->content_type : "text/plain; charset=utf-8");
  gh_response_send(req, body, len, 0);
  gh_accesslog_write(req, status, len);
  gh_request_complete(req);
}

/* Test aid: the request as the application sees it, as text/plain. */
static void handle_echo(gh_request_t *req)
{
  size_t blen = 0;
  const void *body = gh_request_get_body(req, &blen);
  const char *q = gh_request_get_query(req);
  char head[8192];
  int n = snprintf(head, sizeof(head), "method=%s\npath=%s\nquery=%s\nversion=%d\nbody-length=%zu\n",
                   gh_request_get_method(req), gh_request_get_path(req), q ? q : "(none)",
                   gh_request_get_version(req), blen);
  for (size_t i = 0; i < gh_request_get_header_count(req) && n > 0 && (size_t)n < sizeof(head); i++) {
    const char *hn, *hv;
    gh_request_get_header_at(req, i, &hn, &hv);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "header=%s: %s\n", hn, hv);
  }
  if (n < 0 || (size_t)n >= sizeof(head))
    n = (int)strlen(head);
  n += snprintf(head + n, sizeof(head) - (size_t)n, "\n");
  gh_response_set_header(req, "Content-Type", "text/plain; charset=utf-8");
  gh_response_send(req, head, (size_t)n, blen ? GH_SEND_MORE_DATA : 0);
  if (blen)
    gh_response_send(req, body, blen, 0);
  gh_accesslog_write(req, 200, (unsigned long long)n + blen);
  gh_request_complete(req);
}

/* handler = metrics: the library's counters, summed over the worker
 * processes, as Prometheus text; 403 to a peer metrics_allow does not name,
 * 405 to anything but GET. */
static void handle_metrics(gh_request_t *req, const gh_site_t *site)
{
  char *text = NULL;
  size_t len = 0;
  if (!gh_daemon_metrics_allowed(&site->metrics_allow, gh_request_get_conn_info(req))) {
    reply(req, 403, "Forbidden: metrics_allow does not name this address", NULL, NULL);
  } else if (strcmp(gh_request_get_method(req), "GET") != 0) {
    reply(req, 405, "Method Not Allowed", "Allow", "GET");
  } else if (gh_metrics_render(&text, &len) != 0) {
    reply(req, 503, "Service Unavailable: out of memory", NULL, NULL);
  } else {
    gh_response_set_status(req, 200, NULL);
    gh_response_set_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    gh_response_set_header(req, "Cache-Control", "no-store");
    gh_response_send(req, text, len, 0);
    gh_accesslog_write(req, 200, len);
    gh_request_complete(req);
    free(text);
  }
}

/* A failed authentication, once, with who tried and why (the cause, the
 * facts, the fix and the GSS/PAM text, from the library). */
static void log_auth_failure(gh_request_t *req, const gh_auth_info_t *ai)
{
  const gh_conn_info_t *ci = gh_request_get_conn_info(req);
  char who[INET6_ADDRSTRLEN + 64] = "?", host[INET6_ADDRSTRLEN] = "", why[1024];
  const struct sockaddr *sa = (const struct sockaddr *)&ci->peer;

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ci->peer;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    snprintf(who, sizeof(who), "%s:%u", host, (unsigned)ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ci->peer;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(who, sizeof(who), "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX && (ci->flags & GH_CONN_HAS_CRED)) {
    snprintf(who, sizeof(who), "unix peer pid %d uid %u", (int)ci->peer_pid,
             (unsigned)ci->peer_uid);
  } else if (sa->sa_family == AF_UNIX) {
    snprintf(who, sizeof(who), "unix peer");
  }
  gh_auth_info_failure_message(ai, why, sizeof(why));
  gh_dlog(LOG_WARNING, "%s authentication failed from %s (connection %llu): %s [%s]",
          gh_auth_type_name(ai->type), who, (unsigned long long)ci->id, why,
          gh_auth_failure_name(ai->failure));
}

void gh_daemon_handle(gh_request_t *req, void *arg)
{
  gh_url_group_t *g = gh_request_get_url_group(req);
  const gh_site_t *site = g ? gh_url_group_get_user_ctx(g) : NULL;
  const gh_auth_info_t *ai = gh_request_get_auth_info(req);
  if (ai != NULL && ai->status == GH_AUTH_STATUS_FAILURE)
    log_auth_failure(req, ai);
  if (site == NULL)
    reply(req, 404, "Not Found", NULL, NULL);
  else if (ai != NULL && !site->auth.anonymous && ai->status != GH_AUTH_STATUS_SUCCESS)
    reply(req, 401, "Unauthorized", NULL, NULL); /* the server adds the challenge list */
  else if (site->handler == GH_SITE_AUTHINFO)
    gh_daemon_handle_authinfo(req, site->auth.probe_dir);
  else if (site->handler == GH_SITE_FIXED)
    handle_fixed(req, site);
  else if (site->handler == GH_SITE_ECHO)
    handle_echo(req);
  else if (site->handler == GH_SITE_METRICS)
    handle_metrics(req, site);
  else
    gh_daemon_pipeline_run(req, site, arg);
}

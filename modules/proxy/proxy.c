/* proxy.c: the proxy handler: registration, upstream choice, request out, response back. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "proxy.h"
#include "proxy_conf.h"
#include "proxy_idmodes.h"

GH_MODULE_DEFINE("proxy");

static void plog(proxy_req_t *q, gh_log_level_t lvl, const char *what, const char *detail)
{
  gh_module_server_log(q->server, lvl, "proxy: %s %s: upstream %s: %s: %s",
                       gh_http_request_get_method(q->req), gh_http_request_get_url(q->req),
                       q->up != NULL ? q->up->spec : "-", what, detail);
}

/* Not relayed: hop-by-hop fields (by name or named by Connection) and the
 * ones the server sets itself (Date, Server, Content-Length); a 101 keeps
 * its Upgrade. */
static bool skip_response_field(const proxy_resp_t *r, const proxy_field_t *f)
{
  if ((f->kind & (PROXY_F_HOP | PROXY_F_CONN_NAMED | PROXY_F_OWN)) &&
      !(r->status == 101 && (f->kind & PROXY_F_UPGRADE)))
    return true;
  return false;
}

static int set_field(proxy_req_t *q, const proxy_field_t *f)
{
  char *nv = NULL;
  if (f->kind & PROXY_F_LOCATION)
    nv = proxy_rewrite_location(q->ctx, q->up, q->site, f->value, q->sent_host);
  else if (f->kind & PROXY_F_COOKIE)
    nv = proxy_rewrite_cookie(q->ctx, q->up, q->site, f->value);
  return gh_http_response_set_header(q->resp, f->name, nv ? nv : f->value, GH_HEADER_ADD);
}

/* Via: the upstream's chain (its first Via, cut at 400) and this hop. */
static int set_via(proxy_req_t *q, const proxy_resp_t *r, const char *via)
{
  const char *hop = r->version_minor == 0 ? "1.0 gatehouse" : "1.1 gatehouse";
  proxy_line_t line;
  line.len = 0;
  if (via != NULL) {
    proxy_line_add(&line, via, strnlen(via, 400));
    proxy_line_add(&line, ", ", 2);
    proxy_line_add(&line, hop, 13);
    hop = line.s;
  }
  /* ADD: the upstream's Via fields were not relayed (on_head) */
  return gh_http_response_set_header(q->resp, "Via", hop, GH_HEADER_ADD);
}

/* The status line: a 200's "OK" is the server's own reason (NULL: not
 * copied nor checked again). */
static int set_status(proxy_req_t *q, const proxy_resp_t *r)
{
  const char *reason = r->reason[0] != '\0' ? r->reason : NULL;
  if (r->status == 200 && r->reason_len == 2 && memcmp(r->reason, "OK", 2) == 0)
    reason = NULL;
  return gh_http_response_set_status(q->resp, r->status, reason);
}

/* Content-Length: the upstream's digits when they are the length's own
 * (no leading zero), else the length written again. */
static int set_length(proxy_req_t *q, const proxy_resp_t *r, const char *cl)
{
  char num[PROXY_U64_LEN];
  if (cl == NULL || (cl[0] == '0' && cl[1] != '\0')) {
    (void)proxy_fmt_u64(num, (uint64_t)r->content_length);
    cl = num;
  }
  /* ADD: the response was cleared and the upstream's own was skipped */
  return gh_http_response_set_header(q->resp, "Content-Length", cl, GH_HEADER_ADD);
}

/* The final head: status, the upstream's end-to-end fields, the length. */
static int on_head(void *arg, proxy_resp_t *r)
{
  proxy_req_t *q = arg;
  const char *via = NULL, *cl = NULL;
  int ret = 0;
  if (r->status == 101 && !q->want_upgrade) {
    r->error = "101 to a request that asked for no upgrade";
    return -1;
  }
  if (r->status < 200 && r->status != 101)
    return proxy_relay_interim(q, r);
  if (proxy_idm_on_head(q, r) != 0)
    return -1; /* the upstream did not prove itself: r->error says why (502) */
  gh_http_response_clear(q->resp);
  ret = set_status(q, r);
  for (size_t i = 0; i < r->n && ret == 0; i++) {
    const proxy_field_t *f = &r->f[i];
    if (f->kind & PROXY_F_CL)
      cl = f->value; /* the only one (framing) */
    if (f->kind & PROXY_F_VIA) {
      if (via == NULL)
        via = f->value;
      if (q->via)
        continue; /* the chain goes as one field with this hop added */
    }
    if (!skip_response_field(r, f) &&
        !((f->kind & PROXY_F_WWW_AUTH) && proxy_idm_skip_response_field(q, f->name)))
      ret = set_field(q, f);
  }
  if (ret == 0 && r->content_length >= 0 && r->status != 204 && r->status != 304)
    ret = set_length(q, r, cl);
  if (ret == 0 && q->via)
    ret = set_via(q, r, via);
  q->head_set = ret == 0;
  /* no body will come (HEAD, 204, 304): the head goes now, with the
   * upstream's Content-Length (a final send would compute 0) */
  if (ret == 0 && (q->is_head || r->status == 204 || r->status == 304))
    ret = gh_http_response_flush(q->resp);
  return ret == 0 ? 0 : -1;
}

static int on_body(void *arg, const char *data, size_t len)
{
  proxy_req_t *q = arg;
  if (gh_http_response_write(q->resp, data, len) != 0) {
    q->client_error = q->client_failed = true;
    return -1;
  }
  return 0;
}

/* Outcome of one attempt on one connection. */
enum { ATTEMPT_OK = 0, ATTEMPT_RETRY = 1, ATTEMPT_NEXT = 5 }; /* not PROXY_UPGRADED, PROXY_AWAIT */

/* Whether the request may go to another upstream after one failed it
 * before any byte of a response: an idempotent method (RFC 9110 9.2.2:
 * sending it twice has the effect of once) without a body (a streamed body
 * cannot be sent again), and an upstream left to try. */
static bool may_try_next(const proxy_req_t *q)
{
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
  const char *m = gh_http_request_get_method(q->req);
  if (q->has_body || q->i_up + 1 >= q->n_up || m == NULL)
    return false;
  for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
    if (strcmp(m, idem[i]) == 0)
      return true;
  return false;
}

/* A request went upstream: its response is to be read (returned by the
 * steps below; the handler then waits for the connection in the server). */
#define PROXY_AWAIT 3

/* The response stops mid-way to wait for the upstream in the server: its
 * parser (the thread's until now) moves to the request, since another
 * thread may go on with it. false when out of memory. */
static bool keep_parser(proxy_req_t *q)
{
  if (q->own_pr == NULL) {
    q->own_pr = malloc(sizeof(*q->own_pr));
    if (q->own_pr == NULL)
      return false;
    proxy_resp_move(q->own_pr, q->pr);
    q->pr = q->own_pr;
  }
  return true;
}

/* A relay that cannot go on: once the head went out the only answer left
 * is to cut the client's connection (-1). Ends the relay. */
static int relay_fail(proxy_req_t *q, int status)
{
  q->relaying = false;
  if (status != 0 && q->head_set && gh_http_response_headers_sent(q->resp))
    return -1;
  return status;
}

/* Reads and relays the response. 0 when complete (the connection then goes
 * back to the pool or is closed), else the status to answer (502/504), or
 * ATTEMPT_RETRY (a pooled connection closed before any byte of a response
 * to a request without body), or -1 when the response was cut after its head
 * went out (the client connection is closed). nowait: reads do not block
 * (the server said the connection is readable, which may be a spurious
 * wake-up): PROXY_AWAIT when nothing more is there yet, the parser kept in
 * q for the next call (q->relaying). */
static int relay_response(proxy_req_t *q, bool retryable, bool nowait)
{
  proxy_resp_t *r = q->pr;
  char *buf = q->io;
  int ret = 0;
  if (!q->relaying) {
    proxy_resp_init(r, q->is_head, on_head, on_body, q);
    q->relaying = true;
    q->head_set = q->client_error = false;
    q->resp_bytes = 0;
  }
  while (!r->done) {
    ssize_t n, used;
    /* blocking: a read that wakes each second (SO_RCVTIMEO, set at
     * connect): one syscall per piece, the client and the deadline checked
     * on ticks */
    n = recv(q->fd, buf, PROXY_IO_BUF, nowait ? MSG_DONTWAIT : 0);
    if (n < 0 && errno == EAGAIN && nowait)
      return keep_parser(q) ? PROXY_AWAIT : relay_fail(q, 500);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (proxy_client_gone(q)) {
        plog(q, GH_LOG_INFO, "read", "client gone, upstream request cancelled");
        ret = -1;
        break;
      }
      if (proxy_now_ms() >= q->read_deadline) {
        plog(q, GH_LOG_ERROR, "read", "timed out");
        ret = 504;
        break;
      }
      continue;
    }
    q->read_deadline = proxy_now_ms() + (int64_t)q->read_ms;
    if (n <= 0 && q->resp_bytes == 0 && retryable) {
      ret = ATTEMPT_RETRY;
      break;
    }
    if (n <= 0 && q->resp_bytes == 0 && may_try_next(q)) {
      /* closed or reset before any byte of a response: as a failed connect,
       * this upstream is out for upstream_fail_timeout, the next one asked */
      plog(q, GH_LOG_ERROR, "read",
           n == 0 ? "closed before a response; trying the next upstream"
                  : "reset before a response; trying the next upstream");
      if (q->fail_ms > 0)
        proxy_upstream_mark_down(q->up, q->fail_ms);
      ret = ATTEMPT_NEXT;
      break;
    }
    if (n < 0) {
      plog(q, GH_LOG_ERROR, "read", strerror(errno));
      ret = 502;
      break;
    }
    q->resp_bytes += (size_t)n;
    used = proxy_resp_feed(r, buf, (size_t)n);
    if (used < 0) {
      if (!q->client_error)
        plog(q, GH_LOG_ERROR, "invalid response", r->error);
      ret = 502;
      break;
    }
    if (r->done && r->upgrade) {
      /* the rest is the new protocol's, for the client */
      q->left_off = (size_t)used;
      q->left_len = (size_t)(n - used);
      break;
    }
    if (used < n || (r->done && !r->keep_alive)) {
      /* bytes after the answer, or no keep-alive: this connection's framing
       * is over; it is closed, never reused */
      close(q->fd);
      q->fd = -1;
    }
    if (!r->done && q->head_set && gh_http_response_flush(q->resp) != 0) {
      q->client_failed = q->client_error = true;
      plog(q, GH_LOG_INFO, "relay", "client gone, upstream request cancelled");
      ret = -1;
      break;
    }
  }
  return relay_fail(q, ret);
}

/* Opens (or takes from the pool) a connection to q->up. 0, or the status
 * that answers the request when this was the last upstream to try. */
static int get_connection(proxy_req_t *q, bool fresh)
{
  int r;
  q->connect_failed = false;
  q->fd = fresh ? -1 : proxy_pool_take(q->up, q->identity_key, &q->fd_key);
  q->reused = q->fd >= 0;
  if (q->fd >= 0)
    return 0;
  r = proxy_open_upstream(q, &q->fd);
  if (r == 0) {
    q->fd_key = proxy_conn_key();
    proxy_set_read_tick(q->fd, q->read_ms);
    return 0;
  }
  q->fd = -1;
  if (q->identity_key != NULL &&
      (r == -EACCES || r == -EPERM || r == GH_ENOT_FOUND || r == -EPROTONOSUPPORT)) {
    /* connect as the client: the kernel refused this user (403), or there
     * is none (401: the server adds the site's challenges, as authz does);
     * neither says anything of the upstream's health */
    plog(q, GH_LOG_ERROR, "connect as the client", gh_strerror(r));
    return r == -EPROTONOSUPPORT ? 500 : r == GH_ENOT_FOUND ? 401 : 403;
  }
  q->connect_failed = true;
  plog(q, GH_LOG_ERROR, "connect", r == -ETIMEDOUT ? "timed out" : gh_strerror(r));
  if (q->fail_ms > 0)
    proxy_upstream_mark_down(q->up, q->fail_ms);
  q->fd = -1;
  return r == -ETIMEDOUT ? 504 : 502;
}

/* Sends the request (head, then the body as the client sends it). 0 when
 * the response is to be read (also after the upstream stopped taking the
 * body: it may have answered), else the status (or -1: client gone). */
static int send_request(proxy_req_t *q, const proxy_buf_t *head, bool has_body, bool chunked)
{
  int ret = proxy_send_all(q, head->p, head->len, false);
  if (ret == 0 && has_body)
    ret = proxy_send_body(q, chunked);
  if (ret != 0)
    q->broken = true; /* the upstream did not get the whole request */
  if (ret == -ECANCELED) {
    plog(q, GH_LOG_INFO, "send", "client gone, upstream request cancelled");
    return -1;
  }
  if (ret == -ETIMEDOUT) {
    plog(q, GH_LOG_ERROR, "send", "timed out");
    return 504;
  }
  if (ret > 0)
    plog(q, GH_LOG_WARNING, "request body", "the client's body failed");
  return ret > 0 ? ret : 0;
}

static void close_upstream(proxy_req_t *q)
{
  if (q->fd >= 0)
    close(q->fd);
  q->fd = -1;
}

/* Builds the head (once per upstream, again for a retry when the identity
 * mode needs a fresh one), takes or opens a connection and sends the
 * request: PROXY_AWAIT, or the status to answer (q->connect_failed: the
 * next upstream may be tried). */
static int send_attempt(proxy_req_t *q)
{
  int ret = 0;
  if (q->head.p == NULL || (q->attempt > 0 && proxy_idm_fresh_head(q))) {
    /* a Kerberos authenticator is good once: a new one for the retry */
    proxy_buf_free(&q->head);
    ret = proxy_build_head(q, &q->head, &q->has_body, &q->chunked);
  }
  if (ret == PROXY_ENAMES)
    return 503; /* logged by proxy_group_names */
  if (ret != 0) {
    plog(q, ret == -EBADMSG ? GH_LOG_WARNING : GH_LOG_ERROR, "request",
         ret == -EBADMSG ? "dot segment in the path" : gh_strerror(ret));
    /* -ENOKEY: no Kerberos credential for the upstream (logged by proxy_idmodes.c) */
    return ret == -EBADMSG ? 400 : q->head.failed ? 431 : ret == -ENOKEY ? 502 : 500;
  }
  if (q->want_upgrade && q->slot == NULL && (ret = proxy_upgrade_reserve(q)) != 0)
    return ret;
  q->broken = false;
  ret = get_connection(q, q->attempt > 0);
  if (ret == 0)
    ret = send_request(q, &q->head, q->has_body, q->chunked);
  if (ret != 0)
    return ret;
  q->read_deadline = proxy_now_ms() + (int64_t)q->read_ms;
  return PROXY_AWAIT;
}

/* Sends to the upstreams in order from q->i_up, moving on after a failed
 * connect: PROXY_AWAIT, or the status to answer (that of the last one). */
static int start_send(proxy_req_t *q)
{
  int ret = 502;
  while (q->i_up < q->n_up) {
    q->up = q->order[q->i_up];
    ret = send_attempt(q);
    if (ret == PROXY_AWAIT || !q->connect_failed)
      break;
    close_upstream(q);
    proxy_buf_free(&q->head);
    q->attempt = 0;
    q->i_up++;
  }
  return ret;
}

/* The response is (or may be) readable: relays it. PROXY_AWAIT when a
 * response is still to come (a spurious wake-up, or the request went out
 * again on a fresh connection after a pooled one turned out closed), else
 * the result (0 or a status) for settle(). */
static int on_readable(proxy_req_t *q, bool nowait)
{
  int ret = relay_response(q, q->reused && !q->has_body && q->attempt == 0, nowait);
  if (ret != ATTEMPT_RETRY && ret != ATTEMPT_NEXT)
    return ret;
  close_upstream(q);
  q->attempt = 1;
  if (ret == ATTEMPT_NEXT) {
    proxy_buf_free(&q->head); /* the next upstream's Host, Kerberos, JWT audience */
    q->attempt = 0;
    q->i_up++;
  }
  return start_send(q);
}

/* The exchange ended (0: the response was relayed whole): the connection
 * goes to a splice thread (101), back to the pool, or is closed. Returns
 * the final result: 0, a status, -1 (cut), PROXY_UPGRADED. */
static int settle(proxy_req_t *q, int ret)
{
  if (ret == 0 && q->fd >= 0 && q->pr->upgrade) {
    proxy_idm_done(q); /* before the request is handed over */
    proxy_buf_free(&q->head);
    free(q->own_pr);
    q->own_pr = NULL;
    ret = proxy_upgrade(q, q->io + q->left_off, q->left_len);
    if (ret == PROXY_UPGRADED)
      return ret; /* q is the splice thread's now (and gone when it completes) */
  } else if (ret == 0 && q->fd >= 0 && !q->broken) {
    proxy_pool_put(q->up, q->identity_key, q->fd, q->fd_key, q->keepalive);
    q->fd = -1;
  }
  close_upstream(q);
  proxy_buf_free(&q->head);
  free(q->own_pr);
  q->own_pr = NULL;
  return ret;
}

/* The site's upstreams in the order to try them: round-robin from the
 * site's counter, the ones marked down last. Returns how many. */
static size_t order_upstreams(const proxy_site_t *s, proxy_upstream_t **order)
{
  proxy_upstream_t *const *all = s->ups;
  size_t n = s->ok ? s->n_ups : 0, k = 0, start;
  if (n == 0)
    return 0;
  start = (size_t)(atomic_fetch_add(&all[0]->rr, 1) % n);
  for (size_t i = 0; i < n; i++)
    if (proxy_upstream_is_up(all[(start + i) % n]))
      order[k++] = all[(start + i) % n];
  for (size_t i = 0; i < n; i++)
    if (!proxy_upstream_is_up(all[(start + i) % n]))
      order[k++] = all[(start + i) % n];
  return k;
}

/* The request's end: the answer for a failed exchange, the identity
 * modes' state released. PENDING when a splice thread owns it. */
static gh_request_status_t finish(proxy_req_t *q, int status)
{
  if (status == PROXY_UPGRADED)
    return GH_REQUEST_PENDING; /* the splice thread owns the request (and q) now */
  proxy_upgrade_release(q);
  if (status == -1)
    gh_http_response_set_disconnect(q->resp); /* cut after the head went out */
  else if (status != 0)
    gh_http_response_send_error(q->resp, status, NULL);
  proxy_idm_done(q);
  return GH_REQUEST_FINISH;
}

static gh_request_status_t on_upstream(gh_http_context_t *ctx, int result, void *arg);

/* Runs the exchange from ret on: while a response is awaited, the request
 * waits for the upstream connection in the server (no thread held; the
 * client is checked each second) or, where the server cannot, here. */
static gh_request_status_t drive(proxy_req_t *q, int ret)
{
  while (ret == PROXY_AWAIT) {
    int64_t left = q->read_deadline - proxy_now_ms();
    int r = gh_http_context_wait_kept(q->ctx, q->fd, q->fd_key, GH_HTTP_WAIT_IN,
                                      left <= 0     ? 0
                                      : left > 1000 ? 1000
                                                    : (int)left,
                                      on_upstream, q);
    if (r == 0)
      return GH_REQUEST_PENDING;
    if (r != GH_EUNSUPPORTED) {
      plog(q, GH_LOG_ERROR, "wait", gh_strerror(r));
      ret = 500;
      break;
    }
    ret = on_readable(q, false); /* blocking reads with one-second ticks */
  }
  return finish(q, settle(q, ret));
}

/* The server's word on the upstream connection (a worker thread at base
 * identity): the response is relayed, or the wait goes on. */
static gh_request_status_t on_upstream(gh_http_context_t *ctx, int result, void *arg)
{
  proxy_req_t *q = arg;
  proxy_scratch_t *scratch = proxy_scratch_get(); /* this thread's parser and buffer */
  int ret;
  (void)ctx;
  /* a response that stopped mid-way has its own parser (keep_parser) */
  q->pr = q->own_pr != NULL ? q->own_pr : scratch != NULL ? &scratch->resp : NULL;
  q->io = scratch != NULL ? scratch->io : NULL;
  if (scratch == NULL) {
    plog(q, GH_LOG_ERROR, "relay", "out of memory");
    ret = relay_fail(q, 500);
  } else if (result < 0) {
    plog(q, GH_LOG_ERROR, "wait", gh_strerror(result));
    ret = relay_fail(q, 500);
  } else if (result == GH_HTTP_WAIT_TIMEOUT) {
    if (proxy_client_gone(q)) {
      plog(q, GH_LOG_INFO, "read", "client gone, upstream request cancelled");
      ret = relay_fail(q, -1);
    } else if (proxy_now_ms() >= q->read_deadline) {
      plog(q, GH_LOG_ERROR, "read", "timed out");
      ret = relay_fail(q, 504);
    } else {
      ret = PROXY_AWAIT;
    }
  } else {
    ret = on_readable(q, true);
  }
  return drive(q, ret);
}

static gh_request_status_t on_execute(void *module, gh_http_context_t *ctx,
                                      gh_event_provider_t *prov)
{
  proxy_req_t *q = gh_http_context_alloc(ctx, sizeof(*q));
  proxy_scratch_t *scratch = proxy_scratch_get();
  (void)module;
  (void)prov;
  if (q == NULL || scratch == NULL) {
    gh_http_response_send_error(gh_http_context_get_response(ctx), 500, NULL);
    return GH_REQUEST_FINISH;
  }
  *q = (proxy_req_t){.ctx = ctx,
                     .req = gh_http_context_get_request(ctx),
                     .resp = gh_http_context_get_response(ctx),
                     .server = gh_http_context_get_server(ctx),
                     .site = gh_http_context_get_site_path(ctx),
                     .fd = -1,
                     .head = {.max = PROXY_MAX_REQ_HEAD, .ctx = ctx},
                     .pr = &scratch->resp,
                     .io = scratch->io};
  q->is_head = strcmp(gh_http_request_get_method(q->req), "HEAD") == 0;
  q->conf = proxy_site_get(ctx);
  if (q->conf == NULL) {
    plog(q, GH_LOG_ERROR, "configuration", "out of memory");
    gh_http_response_send_error(q->resp, 500, NULL);
    return GH_REQUEST_FINISH;
  }
  q->connect_ms = q->conf->connect_ms;
  q->read_ms = q->conf->read_ms;
  q->fail_ms = q->conf->fail_ms;
  q->keepalive = q->conf->keepalive;
  q->via = q->conf->via;
  q->n_up = order_upstreams(q->conf, q->order);
  proxy_identity_load(q);
  if (q->n_up == 0)
    plog(q, GH_LOG_ERROR, "configuration", "no usable upstream");
  q->identity_key = proxy_identity_key(q);
  return drive(q, q->n_up == 0 ? 500 : start_send(q));
}

/* At stop (and at a reload, which may drop or change upstream lines) the
 * upstreams see their idle connections close. */
static gh_global_status_t on_stop(void *global_data, gh_module_server_t *server)
{
  (void)global_data;
  (void)server;
  proxy_pool_close_idle();
  return GH_GLOBAL_CONTINUE;
}

static gh_global_status_t on_start(void *global_data, gh_module_server_t *server)
{
  (void)global_data;
  (void)server;
  proxy_splice_start(); /* its thread comes with the first upgrade */
  return GH_GLOBAL_CONTINUE;
}

static void on_terminate(void *global_data)
{
  (void)global_data;
  proxy_splice_stop();
  proxy_upstream_free_all();
  proxy_idm_free_all();
  proxy_scratch_done();
}

GH_MODULE_EXPORT int gh_register_module(uint32_t server_version, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_global_module_t g = {.struct_size = sizeof(g),
                          .terminate = on_terminate,
                          .on_start = on_start,
                          .on_stop = on_stop,
                          .on_config_reload = on_stop};
  int ret;
  (void)server_version;
  (void)server;
  proxy_module_id = gh_module_registration_get_id(reg);
  ret = proxy_scratch_init();
  if (ret == 0)
    ret = gh_module_registration_set_execute_handler(reg, on_execute);
  if (ret == 0)
    ret = gh_module_registration_set_streamed_body(reg);
  /* impersonate = yes: the handler never runs as the client. The only
   * client-owned resource it touches is the upstream socket in
   * connect-as-client mode, opened with the client's token; a connection
   * opened by a thread running as the client would carry the client's
   * SO_PEERCRED into the shared pool (the next user's request would reach
   * the upstream as the first one) */
  if (ret == 0)
    ret = gh_module_registration_set_scoped_impersonation(reg);
  if (ret == 0)
    ret = gh_module_registration_set_global(reg, &g);
  if (ret == 0)
    ret = gh_module_registration_set_config_keys(reg, proxy_keys, proxy_n_keys,
                                                 sizeof(proxy_keys[0]));
  return ret;
}

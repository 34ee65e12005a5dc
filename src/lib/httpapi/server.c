/* server.c: gh_server_* — configuration, listeners, URL groups, request queue, worker pool, shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>

#include "gh_config.h"
#include "httpapi/internal.h"
#include "httpapi/metrics.h"
#include "httpapi/url.h"
#include "util/alloc.h"
#include "util/clock.h"

GH_EXPORT void gh_server_config_init(gh_server_config_t *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->io_threads = 1;
  cfg->max_connections = 16384;
  cfg->max_uri = 8192;
  cfg->max_header_bytes = 16384;
  cfg->max_header_count = 100;
  cfg->max_body = 1u << 20;
  cfg->header_timeout_ms = 10000;
  cfg->body_timeout_ms = 30000;
  cfg->keepalive_timeout_ms = 60000;
  cfg->send_timeout_ms = 60000;
  cfg->max_queue = 4096;
}

static void fill_defaults(gh_server_config_t *c)
{
  gh_server_config_t d;
  gh_server_config_init(&d);
#define DEF(f)                                                                                     \
  if (c->f == 0)                                                                                   \
    c->f = d.f;
  DEF(io_threads)
  DEF(max_connections)
  DEF(max_uri)
  DEF(max_header_bytes)
  DEF(max_header_count)
  DEF(max_body)
  DEF(header_timeout_ms)
  DEF(body_timeout_ms)
  DEF(keepalive_timeout_ms)
  DEF(send_timeout_ms)
  DEF(max_queue)
#undef DEF
}

/* Authorization value bytes for a decoded token of max_token bytes: its
 * base64 plus 64 for the scheme name and spaces. The field is counted here
 * instead of in max_header_bytes, so a token the auth engine would take
 * (max_token_size) is never a 431; a larger one is 400 either way. */
static size_t authz_budget(size_t max_token)
{
  return 4 * ((max_token + 2) / 3) + 64;
}

GH_EXPORT int gh_server_new(const gh_server_config_t *cfg, gh_server_t **ret_server)
{
  int ret = 0;
  gh_server_t *s = gh__calloc(1, sizeof(*s));
  if (s == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  if (cfg != NULL)
    s->cfg = *cfg;
  fill_defaults(&s->cfg);
  if (s->cfg.io_threads > 64) {
    ret = -EINVAL;
    goto out;
  }
  s->server_header =
      gh__strdup(cfg && cfg->server_header ? cfg->server_header : "gatehouse/" GH_VERSION);
  if (s->server_header == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  s->cfg.server_header = s->server_header;
  if (cfg != NULL && cfg->hsts != NULL && cfg->hsts[0] != '\0') {
    s->hsts = gh__strdup(cfg->hsts);
    if (s->hsts == NULL) {
      ret = -ENOMEM;
      goto out;
    }
  }
  s->cfg.hsts = s->hsts;
  s->limits.max_uri = s->cfg.max_uri;
  s->limits.max_header_bytes = s->cfg.max_header_bytes;
  s->limits.max_header_count = s->cfg.max_header_count;
  s->limits.max_body = s->cfg.max_body;
  s->limits.max_authz_bytes = authz_budget(GH_AUTH_MAX_TOKEN_DEFAULT);
  pthread_mutex_init(&s->qlock, NULL);
  pthread_mutexattr_t fast; /* adaptive: short sections every worker takes per request */
  pthread_mutexattr_init(&fast);
  pthread_mutexattr_settype(&fast, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&s->flock, &fast);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->qcond, &ca);
  pthread_cond_init(&s->sparecv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&s->next_conn_id, 1);
  pthread_mutex_init(&s->cplock, &fast);
  s->cep_kind = GH__KIND_CEP;
  s->wstop_kind = GH__KIND_STOP;
  s->wstopfd = -1;
  s->wdue_kind = GH__KIND_DUE;
  s->wduefd = -1;
  s->kick_kind = GH__KIND_KICK;
  s->kickfd = -1;
  s->caller_kind = GH__KIND_CALLER;
  s->caller_fd = -1;
  pthread_mutex_init(&s->rlock, &fast);
  pthread_mutexattr_destroy(&fast);
  pthread_mutex_init(&s->wdlock, NULL);
  pthread_mutex_init(&s->sparelock, NULL);
  {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->listen_max = ncpu > 2 ? (unsigned)ncpu : 2;
  }
  s->cepfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->cepfd < 0) {
    ret = -errno;
    pthread_mutex_destroy(&s->qlock);
    pthread_mutex_destroy(&s->flock);
    pthread_mutex_destroy(&s->cplock);
    pthread_mutex_destroy(&s->wdlock);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->sparelock);
    pthread_cond_destroy(&s->sparecv);
    pthread_cond_destroy(&s->qcond);
    goto out;
  }
out:
  if (ret == 0) {
    *ret_server = s;
  } else if (s != NULL) {
    free(s->server_header);
    free(s->hsts);
    free(s);
  }
  return ret;
}

GH_EXPORT int gh_server_set_processes(gh_server_t *s, unsigned n)
{
  if (s->started || s->n_listeners > 0)
    return GH_ESTATE;
  if (n == 0 || n > 1024)
    return -EINVAL;
  s->listener_copies = n;
  return 0;
}

GH_EXPORT int gh_server_add_listener(gh_server_t *s, const char *address)
{
  int ret = 0;
  gh__listener_t *l = NULL;
  if (s->started) {
    ret = GH_ESTATE;
    goto out;
  }
  gh__listener_t **nl = gh__realloc(s->listeners, (s->n_listeners + 1) * sizeof(*nl));
  if (nl == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  s->listeners = nl;
  ret = gh__listener_open(address, s->listener_copies, &l);
  if (ret != 0)
    goto out;
  s->listeners[s->n_listeners++] = l;
out:
  return ret;
}

GH_EXPORT int gh_server_add_tls_listener(gh_server_t *s, const char *address,
                                         const gh_tls_config_t *tls, char *errbuf, size_t errlen)
{
  int ret = 0;
  gh__tls_listener_t *tl = NULL;
  unsigned idx = s->n_listeners;
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if (address != NULL && strncmp(address, "unix:", 5) == 0) {
    ret = -EINVAL; /* TLS over a Unix socket makes no sense here */
    goto out;
  }
  if (s->started) {
    ret = GH_ESTATE;
    goto out;
  }
  ret = gh__tls_listener_new(tls, errbuf, errlen, &tl);
  if (ret != 0)
    goto out;
  ret = gh_server_add_listener(s, address);
  if (ret != 0)
    goto out;
  s->listeners[idx]->tls = tl;
  tl = NULL;
out:
  gh__tls_listener_free(tl);
  return ret;
}

GH_EXPORT int gh_server_reload_tls(gh_server_t *s, char *errbuf, size_t errlen)
{
  int ret = 0;
  unsigned n = s->n_listeners;
  gh__tls_store_t **fresh = gh__calloc(n ? n : 1, sizeof(*fresh));
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if (fresh == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  /* all or nothing: load everything first, then install */
  for (unsigned i = 0; i < n; i++) {
    gh__listener_t *l = s->listeners[i];
    if (l == NULL || l->tls == NULL)
      continue;
    ret = gh__tls_listener_load(l->tls, errbuf, errlen, &fresh[i]);
    if (ret != 0)
      goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    if (fresh[i] != NULL) {
      gh__tls_listener_install(s->listeners[i]->tls, fresh[i]);
      fresh[i] = NULL;
    }
  }
out:
  if (fresh != NULL) {
    for (unsigned i = 0; i < n; i++)
      gh__tls_store_unref(fresh[i]);
    free(fresh);
  }
  return ret;
}

GH_EXPORT void gh_server_set_log(gh_server_t *s, gh_log_cb log, void *arg)
{
  s->log = log;
  s->log_arg = arg;
}

GH_EXPORT int gh_server_listener_address(gh_server_t *s, unsigned i,
                                         struct sockaddr_storage *ret_addr, socklen_t *ret_len)
{
  int ret = -ENOENT;
  if (i < s->n_listeners && s->listeners[i] != NULL) {
    *ret_addr = s->listeners[i]->addr;
    *ret_len = s->listeners[i]->addr_len;
    ret = 0;
  }
  return ret;
}

GH_EXPORT int gh_url_group_set_stream_body(gh_url_group_t *g, int on)
{
  if (g == NULL)
    return -EINVAL;
  if (g->srv->started)
    return GH_ESTATE;
  g->stream_body = on != 0;
  if (g->max_body_unset) { /* streamed: an unset limit is none */
    g->props.max_body = g->stream_body ? 0 : g->srv->cfg.max_body;
    if (g->stream_body)
      g->srv->limits.max_body = SIZE_MAX; /* the parser's limit until the group is known */
  }
  return 0;
}

GH_EXPORT int gh_server_add_url_group(gh_server_t *s, const char *prefix,
                                      const gh_url_group_props_t *props, void *user_ctx,
                                      gh_url_group_t **ret_group)
{
  int ret = 0;
  gh_url_group_t *g = NULL;
  if (s->started) {
    ret = GH_ESTATE;
    goto out;
  }
  g = gh__calloc(1, sizeof(*g));
  if (g == NULL || (g->prefix = gh__strdup(prefix ? prefix : "")) == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  ret = gh__url_prefix_normalize(g->prefix);
  if (ret != 0)
    goto out;
  g->prefix_len = strlen(g->prefix);
  for (size_t i = 0; i < s->n_groups; i++) {
    if (strcmp(s->groups[i]->prefix, g->prefix) == 0) {
      ret = GH_EEXISTS;
      goto out;
    }
  }
  g->srv = s;
  g->user_ctx = user_ctx;
  g->metrics_site = gh__metrics_site(g->prefix);
  if (props != NULL)
    g->props = *props;
  g->max_body_unset = g->props.max_body == 0;
  if (g->max_body_unset)
    g->props.max_body = s->cfg.max_body;
  if (g->props.body_timeout_ms == 0)
    g->props.body_timeout_ms = s->cfg.body_timeout_ms;
  /* the parser's limit until the group is known (on_headers narrows it):
   * the largest of any group, so a group above the server's own limit
   * (or a streamed one) is not refused at the header block */
  size_t gmax = g->props.max_body == 0 ? SIZE_MAX : g->props.max_body;
  if (gmax > s->limits.max_body)
    s->limits.max_body = gmax;
  size_t n = s->n_groups + 1;
  gh_url_group_t **ng = gh__realloc(s->groups, n * sizeof(*ng));
  if (ng != NULL)
    s->groups = ng;
  const char **np = gh__realloc(s->gprefixes, n * sizeof(*np));
  if (np != NULL)
    s->gprefixes = np;
  size_t *nlens = gh__realloc(s->glens, n * sizeof(*nlens));
  if (nlens != NULL)
    s->glens = nlens;
  if (ng == NULL || np == NULL || nlens == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  s->groups[s->n_groups] = g;
  s->gprefixes[s->n_groups] = g->prefix;
  s->glens[s->n_groups] = g->prefix_len;
  s->n_groups = n;
out:
  if (ret == 0) {
    if (ret_group != NULL)
      *ret_group = g;
  } else if (g != NULL) {
    free(g->prefix);
    free(g);
  }
  return ret;
}

GH_EXPORT const char *gh_url_group_get_prefix(const gh_url_group_t *g)
{
  return g->prefix;
}

GH_EXPORT void *gh_url_group_get_user_ctx(const gh_url_group_t *g)
{
  return g->user_ctx;
}

GH_EXPORT const gh_url_group_props_t *gh_url_group_get_props(const gh_url_group_t *g)
{
  return &g->props;
}

void gh__url_group_set_auth_slot(gh_url_group_t *g, void *data, void (*destroy)(void *))
{
  if (g->auth_slot_free != NULL && g->auth_slot != data)
    g->auth_slot_free(g->auth_slot);
  g->auth_slot = data;
  g->auth_slot_free = destroy;
}

void *gh__url_group_get_auth_slot(const gh_url_group_t *g)
{
  return g->auth_slot;
}

gh_server_t *gh__url_group_get_server(const gh_url_group_t *g)
{
  return g->srv;
}

void gh__server_set_auth_state(gh_server_t *s, void *data, void (*destroy)(void *))
{
  if (s->auth_state_free != NULL && s->auth_state != data)
    s->auth_state_free(s->auth_state);
  s->auth_state = data;
  s->auth_state_free = destroy;
}

void *gh__server_get_auth_state(const gh_server_t *s)
{
  return s->auth_state;
}

void gh__server_set_request_gate(gh_server_t *s, gh__request_gate_cb gate, void *arg)
{
  s->gate = gate;
  s->gate_arg = arg;
}

void gh__server_set_response_hook(gh_server_t *s, gh__response_hook_cb hook, void *arg)
{
  s->resp_hook = hook;
  s->resp_hook_arg = arg;
}

/* ---- queue ------------------------------------------------------------- */

void gh__queue_push_batch(gh_server_t *s, gh_request_t *head, gh_request_t *tail, unsigned n)
{
  pthread_mutex_lock(&s->qlock);
  if (s->qtail != NULL)
    s->qtail->next = head;
  else
    s->qhead = head;
  s->qtail = tail;
  atomic_fetch_add_explicit(&s->qlen, n, memory_order_relaxed);
  unsigned w = s->qwaiters;
  pthread_mutex_unlock(&s->qlock);
  if (w == 0)
    return;
  if (n >= w)
    pthread_cond_broadcast(&s->qcond);
  else
    for (unsigned i = 0; i < n; i++)
      pthread_cond_signal(&s->qcond);
}

static int queue_pop(gh_server_t *s, int timeout_ms, const struct timespec *deadline,
                     gh_request_t **ret_req)
{
  int ret = 0;
  gh_request_t *r = NULL;
  pthread_mutex_lock(&s->qlock);
  while (s->qhead == NULL) {
    if (s->qclosed) {
      ret = GH_ESHUTDOWN;
      goto unlock;
    }
    if (timeout_ms == 0) {
      ret = GH_ETIMEOUT;
      goto unlock;
    }
    s->qwaiters++;
    int w = timeout_ms < 0 ? pthread_cond_wait(&s->qcond, &s->qlock)
                           : pthread_cond_timedwait(&s->qcond, &s->qlock, deadline);
    s->qwaiters--;
    if (w == ETIMEDOUT && s->qhead == NULL) {
      ret = s->qclosed ? GH_ESHUTDOWN : GH_ETIMEOUT;
      goto unlock;
    }
  }
  r = s->qhead;
  s->qhead = r->next;
  if (s->qhead == NULL)
    s->qtail = NULL;
  atomic_fetch_sub_explicit(&s->qlen, 1, memory_order_relaxed);
  r->next = NULL;
unlock:
  pthread_mutex_unlock(&s->qlock);
  if (ret == 0)
    *ret_req = r;
  return ret;
}

/* Before delivery: 404 for no group, then the auth gate. true: deliver. */
static bool gate_request(gh_server_t *s, gh_request_t *r)
{
  if (r->group == NULL && s->n_groups > 0) {
    gh__request_reply(r, 404, NULL, NULL, 0, NULL);
    return false;
  }
  if (s->gate != NULL) {
    int v = s->gate(r, s->gate_arg);
    if (v == GH__GATE_HANDLED)
      return false;
    if (v < 0) {
      gh__request_reply(r, 503, NULL, NULL, 0, NULL);
      return false;
    }
  }
  return true;
}

void gh__server_run_inline(gh_server_t *s, gh_request_t *r)
{
  if (gate_request(s, r))
    s->handler(r, s->handler_arg);
}

GH_EXPORT int gh_server_receive(gh_server_t *s, int timeout_ms, gh_request_t **ret_req)
{
  int ret;
  gh_request_t *r = NULL;
  struct timespec deadline = {0, 0};
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  for (;;) {
    ret = queue_pop(s, timeout_ms, &deadline, &r);
    if (ret != 0)
      goto out;
    if (gate_request(s, r))
      break;
  }
out:
  if (ret == 0)
    *ret_req = r;
  return ret;
}

/* ---- start, workers, shutdown ------------------------------------------ */

static int io_init(gh_server_t *s, gh__io_t *io, unsigned idx)
{
  int ret = 0;
  io->kind = GH__KIND_WAKE;
  io->srv = s;
  io->idx = idx;
  io->epfd = -1;
  io->wakefd = -1;
  pthread_mutex_init(&io->lock, NULL);
  pthread_mutex_init(&io->log_lock, NULL);
  io->lock_init = true;
  io->loop.srv = s;
  io->loop.rbuf_size = 65536;
  io->loop.rbuf = gh__malloc(io->loop.rbuf_size);
  if (io->loop.rbuf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  /* served alone: no set of its own, everything is in the connection epoll */
  io->epfd = s->solo ? -1 : epoll_create1(EPOLL_CLOEXEC);
  io->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if ((io->epfd < 0 && !s->solo) || io->wakefd < 0) {
    ret = -errno;
    goto out;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = io};
  if (epoll_ctl(gh__io_listen_epfd(io), EPOLL_CTL_ADD, io->wakefd, &ev) != 0) {
    ret = -errno;
    goto out;
  }
  for (unsigned i = 0; i < s->n_listeners; i++) {
    struct epoll_event lev = {.events = EPOLLIN | (s->n_ios > 1 ? EPOLLEXCLUSIVE : 0),
                              .data.ptr = s->listeners[i]};
    if (epoll_ctl(gh__io_listen_epfd(io), EPOLL_CTL_ADD, s->listeners[i]->fd, &lev) != 0) {
      ret = -errno;
      goto out;
    }
  }
  if (!atomic_load(&s->inline_workers)) {
    /* queue mode: this thread reads the connections (level-triggered on the
     * connection epoll, which inline workers would wait on instead) */
    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = &s->cep_kind};
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, s->cepfd, &cev) != 0) {
      ret = -errno;
      goto out;
    }
    io->cep_nested = true;
  }
out:
  return ret;
}

/* The Authorization budget and the event threads' state (threads not
 * started). The budget follows the largest max_token_size of any group
 * (groups without auth settings: the default); settings are fixed from now
 * on (gh_url_group_set_auth is before start only). */
static int make_ios(gh_server_t *s, unsigned n)
{
  int ret = 0;
  for (size_t i = 0; i < s->n_groups; i++) {
    const gh_auth_settings_t *as = gh_url_group_get_auth(s->groups[i]);
    size_t b = authz_budget(as != NULL && as->max_token_size != 0 ? as->max_token_size
                                                                  : GH_AUTH_MAX_TOKEN_DEFAULT);
    if (b > s->limits.max_authz_bytes)
      s->limits.max_authz_bytes = b;
  }
  s->ios = gh__calloc(n, sizeof(*s->ios));
  if (s->ios == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  /* set only now: gh_server_free walks ios[0..n_ios) even after a failure */
  s->n_ios = n;
  for (unsigned i = 0; i < s->n_ios; i++)
    s->ios[i].epfd = s->ios[i].wakefd = -1; /* not fd 0 for threads io_init never reached */
  for (unsigned i = 0; i < s->n_ios; i++) {
    ret = io_init(s, &s->ios[i], i);
    if (ret != 0)
      goto out;
  }
out:
  return ret;
}

static void block_signals(void)
{
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, SIGSEGV);
  sigdelset(&set, SIGBUS);
  sigdelset(&set, SIGFPE);
  sigdelset(&set, SIGILL);
  sigdelset(&set, SIGABRT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

GH_EXPORT int gh_server_atfork_child(gh_server_t *s, unsigned index)
{
  int fd;
  if (s->started)
    return GH_ESTATE;
  fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0)
    return -errno;
  close(s->cepfd); /* the parent's instance: empty before start */
  s->cepfd = fd;
  for (unsigned i = 0; i < s->n_listeners; i++)
    gh__listener_keep_copy(s->listeners[i], index);
  (void)gh__metrics_use_slot(index); /* no shared block: this copy's own counters */
  return 0;
}

GH_EXPORT int gh_server_start(gh_server_t *s)
{
  int ret = 0;
  if (s->started || s->solo) {
    ret = GH_ESTATE;
    goto out;
  }
  ret = make_ios(s, s->cfg.io_threads);
  if (ret != 0)
    goto out;
  sigset_t old;
  pthread_sigmask(SIG_SETMASK, NULL, &old);
  block_signals();
  for (unsigned i = 0; i < s->n_ios && ret == 0; i++) {
    int e = pthread_create(&s->ios[i].thread, NULL, gh__io_main, &s->ios[i]);
    if (e != 0)
      ret = -e;
    else
      s->ios[i].started = true;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  s->started = true; /* even on a partial failure, so shutdown joins what runs */
out:
  return ret;
}

static void *worker_main(void *arg)
{
  gh_server_t *s = arg;
  gh_request_t *r;
  block_signals();
  for (;;) {
    int e = gh_server_receive(s, -1, &r);
    if (e == GH_ESHUTDOWN)
      break;
    if (e == 0)
      s->handler(r, s->handler_arg);
  }
  return NULL;
}

/* ---- spare workers ------------------------------------------------------
 * Every inline worker waiting on the connection epoll is a thread the
 * kernel wakes for an event a busy worker would have taken a moment later:
 * with more workers than CPUs (a relaying site's 16 on two cores) the
 * wake-ups cost more than the work (bench/proxy: 25 us of CPU per request
 * with 2 workers, 40 us with 16). So at most listen_max (the CPUs) wait on
 * it; the others park here, and are let go one at a time when none is
 * left waiting: at once when a worker is about to block on a slow client
 * (gh__server_may_block), else within 20 ms (the I/O threads check that
 * often while workers are parked and the server was busy in the last
 * second; after a quiet second they sleep to their 250 ms scan, and the
 * next event wakes one: note_busy; a handler that blocks without saying so,
 * e.g. a CGI script, costs at most that before a spare takes over; N
 * handlers blocked at once need N such steps). A worker let go checks the
 * limit again: it listens when none does, and parks again when the busy
 * ones came back first. */

static bool listen_enter(gh_server_t *s)
{
  unsigned l = atomic_fetch_add_explicit(&s->listening, 1, memory_order_acq_rel);
  if (l < s->listen_max || !s->spares)
    return true;
  atomic_fetch_sub_explicit(&s->listening, 1, memory_order_acq_rel);
  return false;
}

/* Parks until let go (or stopping; a second at most, then the caller
 * checks again). */
static void park(gh_server_t *s)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += 1;
  pthread_mutex_lock(&s->sparelock);
  s->parked++;
  atomic_store_explicit(&s->n_parked, s->parked, memory_order_relaxed);
  while (s->release == 0 && !atomic_load_explicit(&s->wstop, memory_order_acquire) &&
         pthread_cond_timedwait(&s->sparecv, &s->sparelock, &ts) == 0)
    ;
  if (s->release > 0)
    s->release--;
  s->parked--;
  atomic_store_explicit(&s->n_parked, s->parked, memory_order_relaxed);
  pthread_mutex_unlock(&s->sparelock);
}

void gh__server_spare_check(gh_server_t *s)
{
  if (atomic_load_explicit(&s->n_parked, memory_order_relaxed) == 0 ||
      atomic_load_explicit(&s->listening, memory_order_acquire) > 0)
    return;
  pthread_mutex_lock(&s->sparelock);
  if (s->parked > s->release) {
    s->release++;
    pthread_cond_signal(&s->sparecv);
  }
  pthread_mutex_unlock(&s->sparelock);
}

/* An event after a quiet second: the I/O threads go back to checking the
 * spares every 20 ms (an idle server lets them sleep to their 250 ms scan
 * instead of waking 50 times a second); one is woken to start now. */
static void note_busy(gh_server_t *s)
{
  uint64_t now = gh__now_ms();
  uint64_t prev = atomic_load_explicit(&s->last_busy_ms, memory_order_relaxed);
  if (now - prev < GH__SPARE_IDLE_MS / 2)
    return; /* recent enough: no store, no shared cache line written per event */
  atomic_store_explicit(&s->last_busy_ms, now, memory_order_relaxed);
  if (now - prev >= GH__SPARE_IDLE_MS && s->n_ios > 0 && s->ios[0].started)
    gh__io_wake(&s->ios[0]);
}

void gh__server_may_block(gh_server_t *s)
{
  gh__server_spare_check(s);
  if (atomic_load_explicit(&s->rn, memory_order_acquire) > 0)
    gh__batch_kick(s); /* this worker's batch must not wait for it */
}

/* One event of the connection epoll, taken by an inline worker. */
static void dispatch(gh_server_t *s, gh__loop_t *lp, const struct epoll_event *ev)
{
  if (ev->data.u64 >> 48) {
    gh__conn_wait_event(ev->data.u64); /* a waited fd (gh_request_wait_fd) */
  } else if (ev->data.u64 & GH__SLOT_BIT) {
    gh__wait_slot_event(s, ev->data.u64, false); /* a kept fd (gh_request_wait_kept) */
  } else if (ev->data.ptr == &s->wdue_kind) {
    gh__conn_run_due(s);
  } else if (ev->data.ptr == &s->kick_kind) {
    uint64_t v;
    ssize_t r = read(s->kickfd, &v, sizeof(v)); /* the caller looks at the ring next */
    (void)r;
  } else {
    lp->now = gh__now_ms();
    gh__conn_event(lp, ev->data.ptr, ev->events);
  }
}

/* Waits on the connection epoll for up to GH__BATCH events: the first is
 * run here (dispatch), the others go to the ring (batch.c). */
static void listen_once(gh_server_t *s, gh__loop_t *lp)
{
  struct epoll_event evs[GH__BATCH];
  unsigned room = gh__batch_reserve(s), k = 0;
  int n = epoll_wait(s->cepfd, evs, (int)room + 1, GH__SCAN_MS);
  atomic_fetch_sub_explicit(&s->listening, 1, memory_order_acq_rel);
  /* the stop eventfd stays readable: every worker sees it, none keeps it */
  for (int i = 0; i < n; i++)
    if (evs[i].data.ptr != &s->wstop_kind)
      evs[k++] = evs[i];
  gh__batch_push(s, evs + 1, k > 1 ? k - 1 : 0, room);
  if (k == 0)
    return;
  note_busy(s);
  dispatch(s, lp, &evs[0]);
}

/* Inline worker (leader/followers on the connection epoll): takes an event
 * another worker's batch left in the ring, or waits for a batch of its own
 * (listen_once); for a connection event it claims the connection, reads and
 * parses, and runs a complete request (gate + handler) on this thread; the
 * response releases the connection. No request queue, no hand-off. */
static void *worker_inline_main(void *arg)
{
  gh__loop_t *w = arg; /* s->wloops[i]: its read buffer was allocated up front */
  gh_server_t *s = w->srv;
  gh__loop_t lp = *w;
  block_signals();
  while (!atomic_load_explicit(&s->wstop, memory_order_acquire)) {
    gh_request_t *r;
    struct epoll_event ev;
    /* requests the I/O thread queued before inline mode began */
    if (atomic_load_explicit(&s->qlen, memory_order_relaxed) > 0) {
      if (gh_server_receive(s, 0, &r) == 0)
        s->handler(r, s->handler_arg);
      continue;
    }
    if (gh__batch_pop(s, &ev))
      dispatch(s, &lp, &ev); /* another worker's batch */
    else if (!listen_enter(s))
      park(s);
    else
      listen_once(s, &lp);
  }
  return NULL;
}

static void free_wloops(gh_server_t *s, unsigned n)
{
  if (s->wloops != NULL)
    for (unsigned i = 0; i < n; i++)
      free(s->wloops[i].rbuf);
  free(s->wloops);
  s->wloops = NULL;
  s->n_wloops = 0;
}

GH_EXPORT int gh_server_run_workers(gh_server_t *s, unsigned n, gh_request_handler_cb handler,
                                    void *arg)
{
  int ret = 0;
  if (n == 0 || n > 1024 || handler == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (s->wthreads != NULL || s->shut_down || s->solo) {
    ret = GH_ESTATE;
    goto out;
  }
  s->wthreads = gh__calloc(n, sizeof(pthread_t));
  s->wloops = gh__calloc(n, sizeof(gh__loop_t));
  if (s->wthreads == NULL || s->wloops == NULL) {
    ret = -ENOMEM;
    goto fail;
  }
  /* Every inline worker's read buffer before any mode change: once the I/O
   * threads stop reading connections, a worker without a buffer would leave
   * them unread for good. Not enough memory: fail here, cleanly. */
  for (unsigned i = 0; i < n; i++) {
    s->wloops[i] = (gh__loop_t){.srv = s, .worker = true, .rbuf_size = 65536};
    s->wloops[i].rbuf = gh__malloc(s->wloops[i].rbuf_size);
    if (s->wloops[i].rbuf == NULL) {
      ret = -ENOMEM;
      goto fail;
    }
  }
  s->n_wloops = n;
  s->handler = handler;
  s->handler_arg = arg;
  s->wstopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wstopfd >= 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->wstop_kind};
    if (epoll_ctl(s->cepfd, EPOLL_CTL_ADD, s->wstopfd, &ev) == 0)
      atomic_store(&s->inline_workers, true);
  }
  if (atomic_load(&s->inline_workers))
    (void)gh__batch_init(s); /* failed: no ring, one event per epoll_wait */
  /* waits (gh_request_wait_fd) need inline workers and the due eventfd */
  s->wduefd = atomic_load(&s->inline_workers) ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (s->wduefd >= 0) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &s->wdue_kind};
    atomic_store_explicit(&s->waits_ok, epoll_ctl(s->cepfd, EPOLL_CTL_ADD, s->wduefd, &ev) == 0,
                          memory_order_release);
  }
  /* the I/O threads drop the connection epoll from their sets */
  for (unsigned j = 0; j < s->n_ios; j++)
    if (s->ios[j].started)
      gh__io_wake(&s->ios[j]);
  bool inl = atomic_load(&s->inline_workers);
  s->spares = n > s->listen_max; /* before any worker reads it */
  for (unsigned i = 0; i < n; i++) {
    int e = pthread_create(&s->wthreads[i], NULL, inl ? worker_inline_main : worker_main,
                           inl ? (void *)&s->wloops[i] : (void *)s);
    if (e != 0) {
      ret = -e;
      break;
    }
    s->n_workers++;
  }
out:
  return ret;
fail:
  free_wloops(s, n);
  free(s->wthreads);
  s->wthreads = NULL;
  return ret;
}

/* Shutdown: no new connections (the listeners closed and forgotten). */
static void close_listeners(gh_server_t *s)
{
  for (unsigned i = 0; i < s->n_listeners; i++) {
    gh__listener_close(s->listeners[i]);
    s->listeners[i] = NULL;
  }
  s->n_listeners = 0;
}

/* ---- serving alone ------------------------------------------------------
 * gh_server_serve: the caller's thread accepts, runs the timer scan and
 * every request, on the one connection epoll that also holds the
 * listeners, the I/O wake eventfd, the due eventfd and the caller's fd. A
 * process with a single thread skips, in every system call on a
 * descriptor, the reference count a shared descriptor table takes
 * (measured 50 ns per poll on these machines), and wakes no other thread.
 * No ring (no other worker to share a batch with): the events of one
 * epoll_wait run in order, here. A handler that blocks stops the server for
 * that time, accept included (the worker processes of gatehoused each serve
 * their own connections: the others go on). */

static int solo_setup(gh_server_t *s, gh_request_handler_cb handler, void *arg)
{
  int ret = 0;
  if (s->started || s->wthreads != NULL || s->shut_down) {
    ret = GH_ESTATE;
    goto out;
  }
  s->solo = true; /* before io_init: the listeners go into cepfd */
  s->solo_thread = pthread_self();
  s->wloops = gh__calloc(1, sizeof(gh__loop_t));
  if (s->wloops == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  s->wloops[0] = (gh__loop_t){.srv = s, .worker = true, .rbuf_size = 65536};
  s->wloops[0].rbuf = gh__malloc(s->wloops[0].rbuf_size);
  s->n_wloops = 1;
  if (s->wloops[0].rbuf == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  s->handler = handler;
  s->handler_arg = arg;
  atomic_store(&s->inline_workers, true);
  ret = make_ios(s, 1);
  if (ret != 0)
    goto out;
  s->wduefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wduefd >= 0) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &s->wdue_kind};
    atomic_store_explicit(&s->waits_ok, epoll_ctl(s->cepfd, EPOLL_CTL_ADD, s->wduefd, &ev) == 0,
                          memory_order_release);
  }
  s->ios[0].now = gh__now_ms();
  s->ios[0].next_scan = s->ios[0].now + GH__SCAN_MS;
  s->started = true;
out:
  if (ret != 0 && s->solo)
    s->shut_down = true; /* half set up: never served, gh_server_free cleans up */
  return ret;
}

/* The events only a server served alone gets: 0 for any other (a
 * connection's, a wait's, the due list's: dispatch), 1 when handled, 2 for
 * the caller's fd. */
static int solo_own_event(gh_server_t *s, gh__io_t *io, const struct epoll_event *ev)
{
  uint64_t v;
  if ((ev->data.u64 >> 48) != 0 || (ev->data.u64 & GH__SLOT_BIT) != 0)
    return 0;
  switch (*(const uint8_t *)ev->data.ptr) {
  case GH__KIND_LISTENER:
    io->now = gh__now_ms();
    if (!atomic_load(&s->stopping))
      gh__io_accept(io, ev->data.ptr);
    return 1;
  case GH__KIND_WAKE:
    while (read(io->wakefd, &v, sizeof(v)) > 0)
      ;
    io->next_scan = 0; /* a wake asks for the scan */
    return 1;
  case GH__KIND_CALLER:
    return 2;
  default:
    return 0;
  }
}

/* Serves until `until` (gh__now_ms; UINT64_MAX: no end): 1 when the
 * caller's fd is readable, 0 at `until`, or -errno. */
static int solo_run(gh_server_t *s, uint64_t until)
{
  gh__io_t *io = &s->ios[0];
  gh__loop_t *lp = &s->wloops[0];
  struct epoll_event evs[GH__BATCH];
  for (;;) {
    uint64_t now = gh__now_ms();
    if (now >= io->next_scan) {
      io->now = now;
      gh__io_scan(io);
      io->next_scan = now + GH__SCAN_MS;
    }
    if (now >= until)
      return 0;
    uint64_t end = until < io->next_scan ? until : io->next_scan;
    int n = epoll_wait(s->cepfd, evs, GH__BATCH, (int)(end - now));
    if (n < 0 && errno != EINTR)
      return -errno;
    bool caller = false;
    for (int i = 0; i < n; i++) {
      int own = solo_own_event(s, io, &evs[i]);
      if (own == 0)
        dispatch(s, lp, &evs[i]);
      caller |= own == 2;
    }
    if (caller)
      return 1;
  }
}

GH_EXPORT int gh_server_serve(gh_server_t *s, gh_request_handler_cb handler, void *arg, int fd,
                              int timeout_ms)
{
  int ret = 0;
  if (handler == NULL || fd < -1) {
    ret = -EINVAL;
    goto out;
  }
  if (!s->solo && (ret = solo_setup(s, handler, arg)) != 0)
    goto out;
  if (!pthread_equal(pthread_self(), s->solo_thread)) {
    ret = GH_ESTATE; /* one thread serves it: another one would race it */
    goto out;
  }
  if (s->shut_down) {
    ret = GH_ESHUTDOWN;
    goto out;
  }
  if (fd != s->caller_fd) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->caller_kind};
    if (s->caller_fd >= 0)
      (void)epoll_ctl(s->cepfd, EPOLL_CTL_DEL, s->caller_fd, NULL);
    s->caller_fd = -1;
    if (fd >= 0 && epoll_ctl(s->cepfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ret = -errno;
      goto out;
    }
    s->caller_fd = fd;
  }
  ret = solo_run(s, timeout_ms < 0 ? UINT64_MAX : gh__now_ms() + (uint64_t)timeout_ms);
out:
  return ret;
}

/* gh_server_shutdown of a server served alone, on the caller's thread: the
 * steps of the threaded one, with this thread serving while it waits. */
static int solo_shutdown(gh_server_t *s, unsigned grace_ms)
{
  int ret = 0;
  gh__io_t *io = &s->ios[0];
  atomic_store(&s->stopping, true);
  if (s->caller_fd >= 0)
    (void)epoll_ctl(s->cepfd, EPOLL_CTL_DEL, s->caller_fd, NULL);
  s->caller_fd = -1;
  /* out of the epoll first: in a worker process the master holds the same
   * sockets, so closing ours would not end their registration */
  for (unsigned i = 0; i < s->n_listeners; i++)
    (void)epoll_ctl(s->cepfd, EPOLL_CTL_DEL, s->listeners[i]->fd, NULL);
  close_listeners(s);
  io->listeners_dropped = true;
  /* idle connections close at the next scan; requests finish */
  uint64_t deadline = gh__now_ms() + grace_ms;
  while (atomic_load(&s->n_conns) > 0 || atomic_load(&s->inflight) > 0) {
    uint64_t now = gh__now_ms();
    if (now >= deadline) {
      ret = GH_ETIMEOUT;
      break;
    }
    if (io->next_scan > now + 10)
      io->next_scan = now + 10;
    (void)solo_run(s, deadline < now + 10 ? deadline : now + 10);
  }
  if (ret == GH_ETIMEOUT) {
    /* as the threaded one: requests in application hands see their
     * connections cut, waits are called back, a moment to complete */
    atomic_store(&s->cut, true);
    gh__io_cut_worker_conns(io);
    uint64_t cut_deadline = gh__now_ms() + 2000;
    while (atomic_load(&s->inflight) > 0 && gh__now_ms() < cut_deadline) {
      io->next_scan = 0;
      (void)solo_run(s, gh__now_ms() + 5);
    }
  }
  atomic_store_explicit(&s->wstop, true, memory_order_release);
  gh__io_stop_conns(io);
  return ret;
}

GH_EXPORT int gh_server_shutdown(gh_server_t *s, unsigned grace_ms)
{
  int ret = 0;
  if (s->solo && !pthread_equal(pthread_self(), s->solo_thread)) {
    ret = GH_ESTATE; /* only the serving thread may (it serves while it waits) */
    goto out;
  }
  if (s->shut_down)
    goto out;
  s->shut_down = true;
  if (s->solo) {
    ret = solo_shutdown(s, grace_ms);
    goto out;
  }
  atomic_store(&s->stopping, true);
  /* no new connections: each I/O thread drops the listeners from its epoll
   * set (see gh__io_main); then they are closed and freed here */
  unsigned running = 0;
  for (unsigned j = 0; j < s->n_ios; j++) {
    if (s->ios[j].started) {
      running++;
      gh__io_wake(&s->ios[j]);
    }
  }
  uint64_t ldeadline = gh__now_ms() + 5000;
  while (atomic_load(&s->ios_dropped_listeners) < running && gh__now_ms() < ldeadline) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  close_listeners(s);
  /* let in-flight requests and partially read ones finish */
  uint64_t deadline = gh__now_ms() + grace_ms;
  while (s->started && (atomic_load(&s->n_conns) > 0 || atomic_load(&s->inflight) > 0)) {
    if (gh__now_ms() >= deadline) {
      ret = GH_ETIMEOUT;
      break;
    }
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&s->qlock);
  s->qclosed = true;
  pthread_cond_broadcast(&s->qcond);
  pthread_mutex_unlock(&s->qlock);
  if (ret == GH_ETIMEOUT) {      /* a handler blocked on its connection must not stall the joins */
    atomic_store(&s->cut, true); /* and the next scans call every wait back */
    for (unsigned j = 0; j < s->n_ios; j++) {
      if (s->ios[j].lock_init)
        gh__io_cut_worker_conns(&s->ios[j]);
      if (s->ios[j].started)
        gh__io_wake(&s->ios[j]);
    }
    /* a PENDING request on a thread of the application's (an upgraded
     * connection's splice) sees its connection cut and completes: give it a
     * moment, so that it does not complete while the server is torn down */
    uint64_t cut_deadline = gh__now_ms() + 2000;
    while (atomic_load(&s->inflight) > 0 && gh__now_ms() < cut_deadline) {
      struct timespec ts = {0, 5 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  atomic_store_explicit(&s->wstop, true, memory_order_release);
  pthread_mutex_lock(&s->sparelock);
  pthread_cond_broadcast(&s->sparecv); /* parked workers see wstop */
  pthread_mutex_unlock(&s->sparelock);
  if (s->wstopfd >= 0) {
    uint64_t one = 1;
    ssize_t w = write(s->wstopfd, &one, sizeof(one));
    (void)w;
  }
  for (unsigned i = 0; i < s->n_workers; i++)
    pthread_join(s->wthreads[i], NULL);
  s->n_workers = 0;
  for (unsigned j = 0; j < s->n_ios; j++) {
    if (!s->ios[j].started)
      continue;
    atomic_store(&s->ios[j].exit, true);
    gh__io_wake(&s->ios[j]);
  }
  for (unsigned j = 0; j < s->n_ios; j++) {
    if (!s->ios[j].started)
      continue;
    pthread_join(s->ios[j].thread, NULL);
    s->ios[j].started = false;
  }
  /* no event thread runs any more */
  for (unsigned j = 0; j < s->n_ios; j++)
    if (s->ios[j].lock_init)
      gh__io_stop_conns(&s->ios[j]);
out:
  return ret;
}

GH_EXPORT void gh_server_free(gh_server_t *s)
{
  if (s == NULL)
    return;
  if (s->solo && !s->shut_down) {
    /* any thread may free (nobody serves it any more): served alone, the
     * shutdown runs here whatever thread this is */
    s->solo_thread = pthread_self();
  }
  gh_server_shutdown(s, 0);
  for (unsigned j = 0; j < s->n_ios; j++) {
    gh__io_close_all(&s->ios[j]);
    if (s->ios[j].epfd >= 0)
      close(s->ios[j].epfd);
    if (s->ios[j].wakefd >= 0)
      close(s->ios[j].wakefd);
    free(s->ios[j].loop.rbuf);
    if (s->ios[j].lock_init) {
      pthread_mutex_destroy(&s->ios[j].lock);
      pthread_mutex_destroy(&s->ios[j].log_lock);
    }
  }
  free(s->ios);
  if (s->cepfd >= 0)
    close(s->cepfd);
  if (s->wstopfd >= 0)
    close(s->wstopfd);
  if (s->wduefd >= 0)
    close(s->wduefd);
  gh__batch_free(s);
  gh__slots_free(s);
  pthread_mutex_destroy(&s->rlock);
  pthread_mutex_destroy(&s->wdlock);
  pthread_mutex_destroy(&s->sparelock);
  pthread_cond_destroy(&s->sparecv);
  for (unsigned i = 0; i < s->n_listeners; i++)
    gh__listener_close(s->listeners[i]);
  free(s->listeners);
  for (size_t i = 0; i < s->n_groups; i++) {
    if (s->groups[i]->auth_slot_free != NULL)
      s->groups[i]->auth_slot_free(s->groups[i]->auth_slot);
    free(s->groups[i]->prefix);
    free(s->groups[i]);
  }
  free(s->groups);
  free(s->gprefixes);
  free(s->glens);
  gh__request_pool_free(s);
  free_wloops(s, s->n_wloops);
  free(s->wthreads);
  pthread_mutex_destroy(&s->qlock);
  pthread_mutex_destroy(&s->flock);
  pthread_cond_destroy(&s->qcond);
  gh__conn_pool_free(s);
  pthread_mutex_destroy(&s->cplock);
  free(s->server_header);
  free(s->hsts);
  /* last: connection and request state above may still refer to it */
  if (s->auth_state_free != NULL)
    s->auth_state_free(s->auth_state);
  free(s);
}

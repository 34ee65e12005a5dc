/* proxy_splice.c: upgraded connections spliced on threads of their own (upgrade_max per site),
 * never on a worker. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>

#include "proxy.h"

#define SPLICE_BUF (16 * 1024)    /* per upgraded connection */
#define SPLICE_STACK (256 * 1024) /* the rest of the pipeline runs here at the end */

/* Upgraded connections open on one site (by its path), for upgrade_max. */
struct proxy_site_count {
  char *site;
  _Atomic uint64_t open;
  struct proxy_site_count *next;
};

/* One upgraded connection: what its splice thread owns. The request is
 * PENDING: this thread is the only one that touches it (its stream) until
 * gh_http_context_complete. */
typedef struct splice {
  gh_http_context_t *ctx;
  gh_http_stream_t *s;
  gh_module_server_t *server;
  const char *spec; /* the upstream's line (interned for the module's life) */
  proxy_site_count_t *count;
  int fd; /* the upstream connection */
  uint64_t idle_ms, write_ms;
  char *left; /* what the upstream sent after its 101 head */
  size_t left_len;
  bool threaded;
  pthread_t th;
  struct splice *next;
  char io[SPLICE_BUF];
} splice_t;

/* The spawner thread creates the splice threads: they inherit its base
 * identity, never a handler's (a handler on an impersonate = yes site runs
 * as the client). It is started by the first upgrade, from the handler's
 * thread, which the proxy's scoped impersonation keeps at base: checked
 * there (refused when impersonating) and by the spawner itself, which
 * asks the kernel (gh_assert_base aborts the process when its ids are not
 * the base ones: it would hand a client's identity to every splice). */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  proxy_site_count_t *sites;
  splice_t *queue;  /* waiting for a thread */
  splice_t *active; /* running */
  splice_t *ended;  /* to join and free */
  bool enabled; /* between the module's start and stop */
  bool started, stopping;
  pthread_t spawner;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* The count of site (created on first use); NULL when out of memory. */
static proxy_site_count_t *site_count(const char *site)
{
  proxy_site_count_t *c;
  pthread_mutex_lock(&g.lock);
  for (c = g.sites; c != NULL && strcmp(c->site, site) != 0; c = c->next)
    ;
  if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
    c->site = strdup(site);
    if (c->site == NULL) {
      free(c);
      c = NULL;
    } else {
      c->next = g.sites;
      g.sites = c;
    }
  }
  pthread_mutex_unlock(&g.lock);
  return c;
}

static void *spawner_main(void *arg);

/* The spawner thread, started at the first upgrade (not at start: a worker
 * process serving alone stays single-threaded until a splice needs one). */
static int spawner_ensure(void)
{
  int r = 0;
  if (gh_is_impersonating())
    return GH_ESTATE; /* a thread made here would run as the client */
  pthread_mutex_lock(&g.lock);
  if (!g.started && g.enabled) {
    g.stopping = false;
    r = -pthread_create(&g.spawner, NULL, spawner_main, NULL);
    g.started = r == 0;
  } else if (!g.started || g.stopping) {
    r = GH_ESTATE; /* not started, or stopping */
  }
  pthread_mutex_unlock(&g.lock);
  return r;
}

int proxy_upgrade_reserve(proxy_req_t *q)
{
  uint64_t max = 1024;
  proxy_site_count_t *c = NULL;
  int r;
  (void)gh_http_context_get_config_uint(q->ctx, "upgrade_max", &max);
  r = spawner_ensure();
  if (r == 0)
    c = site_count(q->site);
  if (c == NULL) {
    gh_module_server_log(q->server, GH_LOG_ERROR, "proxy: %s: upgrade refused (503): %s%s", q->site,
                         r == 0 ? "out of memory" : "no splice thread: ",
                         r == 0 ? "" : r == GH_ESTATE ? "module not started, or impersonating"
                                                      : gh_strerror(r));
    return 503;
  }
  if (atomic_fetch_add(&c->open, 1) >= max) {
    atomic_fetch_sub(&c->open, 1);
    gh_module_server_log(q->server, GH_LOG_WARNING,
                         "proxy: %s: upgrade refused (503): upgrade_max %llu upgraded connections "
                         "open",
                         q->site, (unsigned long long)max);
    return 503;
  }
  q->slot = c;
  return 0;
}

void proxy_upgrade_release(proxy_req_t *q)
{
  if (q->slot != NULL)
    atomic_fetch_sub(&q->slot->open, 1);
  q->slot = NULL;
}

/* All of buf to the upstream, each wait bounded by write_ms and ended by
 * the client's connection going away (cut at shutdown). 0 or -1. */
static int send_up(splice_t *j, const char *buf, size_t len)
{
  int r;
  while ((r = proxy_send_nowait(j->fd, &buf, &len)) == 1) {
    struct pollfd pf[2] = {{.fd = j->fd, .events = POLLOUT},
                           {.fd = gh_http_stream_get_fd(j->s), .events = 0}};
    int w = poll(pf, 2, j->write_ms > INT_MAX ? INT_MAX : (int)j->write_ms);
    if (w == 0 || (w < 0 && errno != EINTR) || (pf[1].revents & (POLLHUP | POLLERR)))
      return -1;
  }
  return r == 0 ? 0 : -1;
}

/* One direction of the splice: what is readable on one side written to the
 * other. 0 on progress, 1 at EOF (the write side is shut down), -1 on error. */
static int client_to_upstream(splice_t *j)
{
  ssize_t n = gh_http_stream_read(j->s, j->io, SPLICE_BUF, 0);
  if (n == 0) {
    (void)shutdown(j->fd, SHUT_WR);
    return 1;
  }
  if (n < 0)
    return n == GH_ETIMEOUT ? 0 : -1;
  return send_up(j, j->io, (size_t)n);
}

static int upstream_to_client(splice_t *j)
{
  ssize_t n = recv(j->fd, j->io, SPLICE_BUF, MSG_DONTWAIT);
  if (n == 0) {
    (void)gh_http_stream_shutdown_write(j->s);
    return 1;
  }
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  return gh_http_stream_write(j->s, j->io, (size_t)n, (int)j->write_ms) == 0 ? 0 : -1;
}

/* Both directions until both ended, an error, the client unable to receive
 * (its connection shut down: the server stopping), or idle_ms without a byte. */
static void splice_loop(splice_t *j)
{
  bool cdone = false, udone = false;
  while (!cdone || !udone) {
    struct pollfd pf[2] = {{.fd = gh_http_stream_get_fd(j->s), .events = cdone ? 0 : POLLIN},
                           {.fd = j->fd, .events = udone ? 0 : POLLIN}};
    int r = 0;
    if (!cdone && gh_http_stream_pending(j->s) > 0)
      pf[0].revents = POLLIN;
    else if ((r = poll(pf, 2, j->idle_ms > INT_MAX ? INT_MAX : (int)j->idle_ms)) == 0) {
      gh_module_server_log(j->server, GH_LOG_INFO, "proxy: %s: upgraded connection idle, closed",
                           j->spec);
      return;
    }
    if (r < 0 && errno != EINTR)
      return;
    if (cdone && (pf[0].revents & (POLLHUP | POLLERR)))
      return;
    if (!cdone && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
        (r = client_to_upstream(j)) != 0) {
      if (r < 0)
        return;
      cdone = true;
    }
    if (!udone && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
        (r = upstream_to_client(j)) != 0) {
      if (r < 0)
        return;
      udone = true;
    }
  }
}

static void unlink_active(splice_t *j)
{
  for (splice_t **p = &g.active; *p != NULL; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
}

/* The splice is over: the slot is free, the request completes (its stream
 * closes with it). A splice thread puts itself on the list to join. */
static void splice_end(splice_t *j)
{
  uint64_t open;
  bool threaded = j->threaded; /* once on g.ended, j is the reaper's */
  close(j->fd);
  open = atomic_fetch_sub(&j->count->open, 1) - 1;
  gh_module_server_log(j->server, GH_LOG_INFO,
                       "proxy: %s: upgraded connection to %s ended (%llu open on the site)",
                       j->count->site, j->spec, (unsigned long long)open);
  (void)gh_http_context_complete(j->ctx, GH_REQUEST_FINISH);
  pthread_mutex_lock(&g.lock);
  unlink_active(j);
  if (threaded) {
    j->next = g.ended;
    g.ended = j;
  }
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  if (!threaded) {
    free(j->left);
    free(j);
  }
}

static void *splice_main(void *arg)
{
  splice_t *j = arg;
  if (j->left_len == 0 || gh_http_stream_write(j->s, j->left, j->left_len, (int)j->write_ms) == 0)
    splice_loop(j);
  splice_end(j);
  return NULL;
}

/* Joins the splice threads that ended (under g.lock). */
static void reap_locked(void)
{
  while (g.ended != NULL) {
    splice_t *j = g.ended;
    g.ended = j->next;
    (void)pthread_join(j->th, NULL);
    free(j->left);
    free(j);
  }
}

static void *spawner_main(void *arg)
{
  pthread_attr_t ta;
  (void)arg;
  (void)gh_assert_base(); /* aborts unless at base (GH_ESTATE: no sec layer in use) */
  pthread_attr_init(&ta);
  (void)pthread_attr_setstacksize(&ta, SPLICE_STACK);
  pthread_mutex_lock(&g.lock);
  for (;;) {
    splice_t *j = g.queue;
    int r;
    reap_locked();
    if (j == NULL && g.stopping)
      break;
    if (j == NULL) {
      pthread_cond_wait(&g.cond, &g.lock);
      continue;
    }
    g.queue = j->next;
    j->next = g.active;
    g.active = j;
    j->threaded = true;
    r = pthread_create(&j->th, &ta, splice_main, j);
    if (r != 0) {
      j->threaded = false;
      pthread_mutex_unlock(&g.lock);
      gh_module_server_log(j->server, GH_LOG_ERROR, "proxy: %s: no splice thread: %s", j->spec,
                           strerror(r));
      splice_end(j);
      pthread_mutex_lock(&g.lock);
    }
  }
  pthread_mutex_unlock(&g.lock);
  pthread_attr_destroy(&ta);
  return NULL;
}

/* A job for the upgraded connection, or NULL when out of memory. */
static splice_t *splice_new(proxy_req_t *q, const char *left, size_t left_len)
{
  splice_t *j = calloc(1, sizeof(*j));
  if (j != NULL && left_len > 0 && (j->left = malloc(left_len)) == NULL) {
    free(j);
    j = NULL;
  }
  if (j == NULL)
    return NULL;
  if (left_len > 0)
    memcpy(j->left, left, left_len);
  j->left_len = left_len;
  j->ctx = q->ctx;
  j->server = q->server;
  j->spec = q->up->spec;
  j->write_ms = q->read_ms;
  j->idle_ms = 300000;
  (void)gh_http_context_get_config_uint(q->ctx, "upgrade_idle_timeout", &j->idle_ms);
  return j;
}

int proxy_upgrade(proxy_req_t *q, const char *left, size_t left_len)
{
  splice_t *j = splice_new(q, left, left_len);
  int r = j != NULL ? gh_http_context_upgrade(q->ctx, &j->s) : -ENOMEM;
  if (r != 0) {
    gh_module_server_log(q->server, GH_LOG_ERROR, "proxy: %s: upgrade: %s", q->up->spec,
                         gh_strerror(r));
    if (j != NULL)
      free(j->left);
    free(j);
    return -1;
  }
  j->fd = q->fd;
  j->count = q->slot;
  q->fd = -1;
  q->slot = NULL;
  /* from here the request is the splice's: this thread touches it no more */
  pthread_mutex_lock(&g.lock);
  j->next = g.queue;
  g.queue = j;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  return PROXY_UPGRADED;
}

void proxy_splice_start(void)
{
  pthread_mutex_lock(&g.lock);
  g.enabled = true;
  pthread_mutex_unlock(&g.lock);
}

/* Waits up to ms for every splice to end; true when none runs. */
static bool wait_idle_locked(int64_t ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  while (g.active != NULL)
    if (pthread_cond_timedwait(&g.cond, &g.lock, &ts) == ETIMEDOUT)
      break;
  return g.active == NULL;
}

void proxy_splice_stop(void)
{
  bool started;
  pthread_mutex_lock(&g.lock);
  started = g.started;
  g.enabled = false;
  g.stopping = true;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  if (started)
    (void)pthread_join(g.spawner, NULL);
  pthread_mutex_lock(&g.lock);
  g.started = false;
  while (g.queue != NULL) { /* queued after the spawner's last look */
    splice_t *j = g.queue;
    g.queue = j->next;
    pthread_mutex_unlock(&g.lock);
    splice_end(j);
    pthread_mutex_lock(&g.lock);
  }
  /* the server ended every request before the module stops; a splice still
   * running (an embedding application that did not) is cut */
  for (splice_t *j = g.active; j != NULL; j = j->next)
    (void)shutdown(j->fd, SHUT_RDWR);
  (void)wait_idle_locked(5000);
  reap_locked();
  while (g.active == NULL && g.sites != NULL) {
    proxy_site_count_t *c = g.sites;
    g.sites = c->next;
    free(c->site);
    free(c);
  }
  pthread_mutex_unlock(&g.lock);
}

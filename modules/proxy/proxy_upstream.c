/* proxy_upstream.c: upstream lines, passive health, keep-alive pool keyed by identity. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static proxy_upstream_t *g_upstreams;

/* Milliseconds of CLOCK_MONOTONIC_COARSE: deadlines and the passive health
 * window need no finer grain than its few milliseconds, and it reads no
 * clock source (five reads per request were a TSC read each in a VM). */
int64_t proxy_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void why_set(char *why, size_t whylen, const char *text)
{
  if (why != NULL && whylen > 0)
    snprintf(why, whylen, "%s", text);
}

/* A prefix is "" or "/..." without a trailing '/', no spaces or controls. */
static bool prefix_ok(const char *p)
{
  if (*p == '\0')
    return true;
  if (*p != '/')
    return false;
  for (const char *s = p; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '?' || *s == '#')
      return false;
  return true;
}

static char *dupn(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Fills up's host/port/path/prefix from value; 0 or -EINVAL/-ENOMEM. */
static int parse(const char *value, proxy_upstream_t *up, char *why, size_t whylen)
{
  const char *p, *hs, *he, *ps, *pe, *slash;
  size_t plen;
  if (strncmp(value, "unix:", 5) == 0) {
    p = value + 5;
    const char *colon = strstr(p, ":/");
    pe = colon != NULL ? colon : p + strlen(p);
    if (*p != '/' || pe - p >= 108) {
      why_set(why, whylen, "not unix:/ABSOLUTE/PATH.sock[:/prefix] (path under 108 bytes)");
      return -EINVAL;
    }
    up->is_unix = true;
    up->path = dupn(p, (size_t)(pe - p));
    up->prefix = strdup(colon != NULL ? colon + 1 : "");
    up->authority = strdup("localhost");
    goto check;
  }
  if (strncmp(value, "http://", 7) != 0) {
    why_set(why, whylen, "not http://HOST:PORT[/prefix] nor unix:/path.sock[:/prefix]");
    return -EINVAL;
  }
  hs = value + 7;
  slash = strchr(hs, '/');
  pe = slash != NULL ? slash : hs + strlen(hs);
  if (*hs == '[') {
    he = memchr(hs, ']', (size_t)(pe - hs));
    if (he == NULL || he[1] != ':') {
      why_set(why, whylen, "bad [IPv6]:PORT");
      return -EINVAL;
    }
    ps = he + 2;
    hs++;
  } else {
    he = memchr(hs, ':', (size_t)(pe - hs));
    if (he == NULL) {
      why_set(why, whylen, "the port is required (http://HOST:PORT)");
      return -EINVAL;
    }
    ps = he + 1;
  }
  plen = (size_t)(pe - ps);
  if (he == hs || plen == 0 || plen > 5 || strspn(ps, "0123456789") < plen || atoi(ps) < 1 ||
      atoi(ps) > 65535) {
    why_set(why, whylen, "bad host or port");
    return -EINVAL;
  }
  up->host = dupn(hs, (size_t)(he - hs));
  up->port = dupn(ps, plen);
  up->prefix = strdup(slash != NULL ? slash : "");
  up->authority = dupn(value + 7, (size_t)(pe - value - 7));
check:
  if (up->prefix == NULL || up->authority == NULL ||
      (up->is_unix ? up->path == NULL : up->host == NULL || up->port == NULL))
    return -ENOMEM;
  plen = strlen(up->prefix);
  up->has_prefix = plen > 0;
  if (plen > 0 && up->prefix[plen - 1] == '/')
    up->prefix[plen - 1] = '\0'; /* "/app/" is "/app"; "/" is "" */
  if (!prefix_ok(up->prefix)) {
    why_set(why, whylen, "bad prefix (a path without spaces, '?' or '#')");
    return -EINVAL;
  }
  return 0;
}

static void upstream_free(proxy_upstream_t *up)
{
  if (up == NULL)
    return;
  for (size_t i = 0; i < up->n_idle; i++) {
    close(up->idle[i].fd);
    free(up->idle[i].identity);
  }
  if (up->lock != NULL) {
    pthread_mutex_destroy(up->lock);
    free(up->lock);
  }
  free(up->idle);
  free(up->spec);
  free(up->host);
  free(up->port);
  free(up->path);
  free(up->prefix);
  free(up->authority);
  free(up);
}

int proxy_upstream_check(const char *value, char *why, size_t whylen)
{
  proxy_upstream_t up;
  int ret;
  memset(&up, 0, sizeof(up));
  ret = parse(value, &up, why, whylen);
  free(up.host);
  free(up.port);
  free(up.path);
  free(up.prefix);
  free(up.authority);
  return ret;
}

static proxy_upstream_t *upstream_new(const char *value)
{
  proxy_upstream_t *up = calloc(1, sizeof(*up));
  if (up == NULL)
    return NULL;
  up->spec = strdup(value);
  up->idle = calloc(PROXY_POOL_SLOTS, sizeof(*up->idle));
  up->lock = malloc(sizeof(pthread_mutex_t));
  if (up->spec == NULL || up->idle == NULL || up->lock == NULL) {
    free(up->lock);
    up->lock = NULL;
    upstream_free(up);
    return NULL;
  }
  pthread_mutexattr_t fast; /* adaptive: every proxied request takes it twice, briefly */
  pthread_mutexattr_init(&fast);
  pthread_mutexattr_settype(&fast, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(up->lock, &fast);
  pthread_mutexattr_destroy(&fast);
  if (parse(value, up, NULL, 0) != 0) {
    upstream_free(up);
    return NULL;
  }
  return up;
}

proxy_upstream_t *proxy_upstream_get(const char *value)
{
  proxy_upstream_t *up;
  pthread_mutex_lock(&g_lock);
  for (up = g_upstreams; up != NULL; up = up->next)
    if (strcmp(up->spec, value) == 0)
      break;
  if (up == NULL && (up = upstream_new(value)) != NULL) {
    up->next = g_upstreams;
    g_upstreams = up;
  }
  pthread_mutex_unlock(&g_lock);
  return up;
}

void proxy_upstream_free_all(void)
{
  pthread_mutex_lock(&g_lock);
  while (g_upstreams != NULL) {
    proxy_upstream_t *next = g_upstreams->next;
    upstream_free(g_upstreams);
    g_upstreams = next;
  }
  pthread_mutex_unlock(&g_lock);
}

void proxy_upstream_mark_down(proxy_upstream_t *up, uint64_t fail_ms)
{
  atomic_store(&up->down_until_ms, proxy_now_ms() + (int64_t)fail_ms);
}

bool proxy_upstream_is_up(proxy_upstream_t *up)
{
  return atomic_load(&up->down_until_ms) <= proxy_now_ms();
}

static bool same_identity(const char *a, const char *b)
{
  return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* An idle connection that is readable has been closed by the upstream or
 * carries bytes no request asked for: never reused. */
static bool still_idle(int fd)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN | POLLRDHUP};
  return poll(&pf, 1, 0) == 0;
}

uint64_t proxy_conn_key(void)
{
  static _Atomic uint64_t next;
  return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
}

/* The newest idle connection of this identity, out of the pool; -1 when none. */
static int pool_pop(proxy_upstream_t *up, const char *identity, uint64_t *ret_key)
{
  int fd = -1;
  char *id = NULL;
  pthread_mutex_lock(up->lock);
  /* newest first: the least likely to have been closed by the upstream */
  for (size_t i = up->n_idle; i-- > 0;) {
    if (!same_identity(up->idle[i].identity, identity))
      continue;
    fd = up->idle[i].fd;
    *ret_key = up->idle[i].key;
    id = up->idle[i].identity;
    up->idle[i] = up->idle[--up->n_idle];
    break;
  }
  pthread_mutex_unlock(up->lock);
  free(id);
  return fd;
}

/* No system call is made under the pool's lock (every worker thread takes
 * and gives back through it: a poll or close held there made the threads
 * queue on the lock, measured 4 futex calls per proxied request). */
int proxy_pool_take(proxy_upstream_t *up, const char *identity, uint64_t *ret_key)
{
  for (;;) {
    int fd = pool_pop(up, identity, ret_key);
    if (fd < 0 || still_idle(fd))
      return fd;
    close(fd); /* the upstream closed it, or sent something unasked: never reused */
  }
}

void proxy_pool_put(proxy_upstream_t *up, const char *identity, int fd, uint64_t key,
                    size_t max_idle)
{
  size_t same = 0;
  char *id = NULL, *gone_id = NULL;
  int gone_fd = -1;
  if (max_idle == 0 || (identity != NULL && (id = strdup(identity)) == NULL)) {
    close(fd);
    return;
  }
  int64_t now = proxy_now_ms();
  pthread_mutex_lock(up->lock);
  for (size_t i = 0; i < up->n_idle; i++)
    if (same_identity(up->idle[i].identity, identity))
      same++;
  if (same >= max_idle || up->n_idle == PROXY_POOL_SLOTS) {
    /* full: the oldest (of this identity when it has its share) makes room */
    bool only_same = same >= max_idle;
    size_t old = up->n_idle;
    for (size_t i = 0; i < up->n_idle; i++)
      if ((!only_same || same_identity(up->idle[i].identity, identity)) &&
          (old == up->n_idle || up->idle[i].since_ms < up->idle[old].since_ms))
        old = i;
    gone_fd = up->idle[old].fd;
    gone_id = up->idle[old].identity;
    up->idle[old] = up->idle[--up->n_idle];
  }
  up->idle[up->n_idle++] =
      (proxy_pool_slot_t){.fd = fd, .key = key, .identity = id, .since_ms = now};
  pthread_mutex_unlock(up->lock);
  if (gone_fd >= 0)
    close(gone_fd);
  free(gone_id);
}

void proxy_pool_close_idle(void)
{
  pthread_mutex_lock(&g_lock);
  for (proxy_upstream_t *up = g_upstreams; up != NULL; up = up->next) {
    pthread_mutex_lock(up->lock);
    for (size_t i = 0; i < up->n_idle; i++) {
      close(up->idle[i].fd);
      free(up->idle[i].identity);
    }
    up->n_idle = 0;
    pthread_mutex_unlock(up->lock);
  }
  pthread_mutex_unlock(&g_lock);
}

static pthread_key_t g_scratch_key;
static bool g_scratch_ok;

int proxy_scratch_init(void)
{
  int r = pthread_key_create(&g_scratch_key, free);
  g_scratch_ok = r == 0;
  return -r;
}

void proxy_scratch_done(void)
{
  if (g_scratch_ok)
    pthread_key_delete(g_scratch_key);
  g_scratch_ok = false;
}

proxy_scratch_t *proxy_scratch_get(void)
{
  proxy_scratch_t *s = pthread_getspecific(g_scratch_key);
  if (s == NULL && (s = malloc(sizeof(*s))) != NULL && pthread_setspecific(g_scratch_key, s) != 0) {
    free(s);
    s = NULL;
  }
  return s;
}

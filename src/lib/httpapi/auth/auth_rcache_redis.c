/* auth_rcache_redis.c: the farm's Kerberos replay store in Redis — one SET NX PX per accepted
 * authenticator tag, pooled per-process connections, fail closed (or local) while Redis is away. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/rand.h>

#include "gatehouse/error.h"
#include "httpapi/auth/auth_internal.h"
#include "util/alloc.h"
#include "util/metrics.h"

/*
 * Model. Every node of a farm records each authenticator it is about to
 * accept with SET gh:rc:<tag> 1 NX PX <window ms>: the first node to ask
 * gets OK (go on), any later one nil (a replay). The tag is the farm-wide
 * one of auth_rcache.c (a hash of the ciphertext, never the ciphertext).
 *
 * Connections. A pool per process: a worker thread takes an idle
 * connection (or opens one), runs its one command and gives it back, so in
 * steady state there is one connection per concurrently accepting thread
 * and no lock is held across I/O. Connections are opened lazily, never in
 * a process before it forks: a pthread_atfork child handler closes the
 * child's copies of whatever the parent had (they are the parent's
 * sockets) and resets the pool, so no connection is ever shared across
 * fork. Sockets are made here (SOCK_CLOEXEC, connect with a deadline) and
 * handed to hiredis; SO_RCVTIMEO/SO_SNDTIMEO bound each command.
 *
 * Health. A failed connect or command marks the backend down (one log
 * line); while down, requests fail at once (503, or the local cache with
 * fallback_local) without touching the network, and one request per
 * backoff period (100 ms doubling to 2 s) tries a fresh connection; the
 * first success marks it up again (one log line with the outage's count).
 * A pooled connection that fails (Redis restarted) is retried once on a
 * fresh one before anything is called down.
 */

#define RR_BACKOFF_MIN_MS 100
#define RR_BACKOFF_MAX_MS 2000
#define RR_REPORT_MS 10000 /* while down: a summary line this often */
#define RR_KEY_PREFIX "gh:rc:"

typedef struct rr_addr {
  bool is_unix;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char host[256];
  char user[128]; /* ACL user for AUTH; "" = default user */
  unsigned port;
  unsigned db;
} rr_addr_t;

typedef struct rr_conn {
  redisContext *c;
  struct rr_conn *next_idle;
  struct rr_conn *prev, *next; /* every connection of the process */
} rr_conn_t;

struct gh__rcache_redis {
  rr_addr_t addr;
  char *url;      /* for log lines (holds no secret: a password in it is refused) */
  char *password; /* NULL = no AUTH; wiped at free */
  bool fallback_local;
  unsigned timeout_ms;
  gh_auth_log_cb *log_cb;
  void *log_arg;
  pthread_mutex_t lock; /* everything below */
  rr_conn_t *idle;
  rr_conn_t *all;
  unsigned n_conns;
  bool down;
  bool probing;          /* a request is trying a fresh connection while down */
  int64_t down_since_ms; /* CLOCK_MONOTONIC */
  int64_t next_try_ms;
  int64_t backoff_ms;
  int64_t last_report_ms;
  uint64_t n_down_requests;          /* requests refused or checked locally since the last line */
  uint64_t n_down_total;             /* ... during this outage */
  char why[192];                     /* the failure that made it down */
  struct gh__rcache_redis *reg_next; /* the process's list for the fork handlers */
};

/* ---- the URL ---- */

static bool parse_uint(const char *s, size_t n, unsigned long max, unsigned *ret)
{
  unsigned long v = 0;

  if (n == 0 || n > 10)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > max)
    return false;
  *ret = (unsigned)v;
  return true;
}

#define RR_FORMS "redis://HOST[:PORT][/DB] or unix:/PATH[?db=DB]"

static int parse_url(const char *url, rr_addr_t *a, char *msg, size_t msglen)
{
  const char *p, *end, *at, *slash;
  int ret = GH_ECONFIG;

  memset(a, 0, sizeof(*a));
  a->port = 6379;
  if (strncmp(url, "unix:", 5) == 0) {
    const char *q = strchr(url + 5, '?');
    size_t n = q ? (size_t)(q - (url + 5)) : strlen(url + 5);
    a->is_unix = true;
    if (n == 0 || url[5] != '/') {
      snprintf(msg, msglen, "'%s': the socket path must be absolute (%s)", url, RR_FORMS);
      goto out;
    }
    if (n >= sizeof(a->path)) {
      snprintf(msg, msglen, "'%s': socket path longer than %zu bytes", url, sizeof(a->path) - 1);
      goto out;
    }
    memcpy(a->path, url + 5, n);
    if (q && (strncmp(q, "?db=", 4) != 0 || !parse_uint(q + 4, strlen(q + 4), 65535, &a->db))) {
      snprintf(msg, msglen, "'%s': after the path only ?db=N (N up to 65535)", url);
      goto out;
    }
    ret = 0;
    goto out;
  }
  if (strncmp(url, "rediss://", 9) == 0) {
    snprintf(msg, msglen,
             "'%s': TLS to Redis is not supported; use a unix socket or a "
             "private network",
             url);
    goto out;
  }
  if (strncmp(url, "redis://", 8) != 0) {
    snprintf(msg, msglen, "'%s' is not memory | file | %s", url, RR_FORMS);
    goto out;
  }
  p = url + 8;
  end = p + strlen(p);
  slash = strchr(p, '/');
  if (!slash)
    slash = end;
  at = memchr(p, '@', (size_t)(slash - p));
  if (at) {
    if (memchr(p, ':', (size_t)(at - p))) {
      snprintf(msg, msglen,
               "'%s': no password in the URL; put it in "
               "replay_cache_password_file",
               url);
      goto out;
    }
    if (at == p || (size_t)(at - p) >= sizeof(a->user)) {
      snprintf(msg, msglen, "'%s': bad user name before '@'", url);
      goto out;
    }
    memcpy(a->user, p, (size_t)(at - p));
    p = at + 1;
  }
  /* host: [v6], or a name / IPv4 address */
  const char *hend, *colon;
  if (*p == '[') {
    const char *rb = memchr(p, ']', (size_t)(slash - p));
    if (!rb || rb == p + 1) {
      snprintf(msg, msglen, "'%s': bad [IPv6] address", url);
      goto out;
    }
    if ((size_t)(rb - p - 1) >= sizeof(a->host)) {
      snprintf(msg, msglen, "'%s': host too long", url);
      goto out;
    }
    memcpy(a->host, p + 1, (size_t)(rb - p - 1));
    hend = rb + 1;
    colon = hend < slash && *hend == ':' ? hend : NULL;
    if (hend < slash && !colon) {
      snprintf(msg, msglen, "'%s': junk after the IPv6 address", url);
      goto out;
    }
  } else {
    colon = memchr(p, ':', (size_t)(slash - p));
    hend = colon ? colon : slash;
    if (hend == p || (size_t)(hend - p) >= sizeof(a->host) ||
        strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") <
            (size_t)(hend - p)) {
      snprintf(msg, msglen, "'%s': bad or missing host (%s)", url, RR_FORMS);
      goto out;
    }
    memcpy(a->host, p, (size_t)(hend - p));
  }
  if (colon &&
      (!parse_uint(colon + 1, (size_t)(slash - colon - 1), 65535, &a->port) || a->port == 0)) {
    snprintf(msg, msglen, "'%s': bad port", url);
    goto out;
  }
  if (slash < end && slash + 1 < end &&
      !parse_uint(slash + 1, (size_t)(end - slash - 1), 65535, &a->db)) {
    snprintf(msg, msglen, "'%s': the path must be a database number up to 65535", url);
    goto out;
  }
  ret = 0;
out:
  return ret;
}

int gh__rcache_redis_check_url(const char *url, char *msg, size_t msglen)
{
  rr_addr_t a;
  char buf[256];

  return parse_url(url, &a, msg ? msg : buf, msg ? msglen : sizeof(buf));
}

GH_EXPORT int gh_auth_replay_cache_check(const char *url, char *msg, size_t msglen)
{
  return gh__rcache_redis_check_url(url, msg, msglen);
}

/* ---- the process's backends, for the fork handlers ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static gh__rcache_redis_t *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* Before fork: hold every lock, so that the child's copies are in a
 * consistent state (no lock is ever held across I/O: this never waits
 * long). */
static void reg_prepare(void)
{
  pthread_mutex_lock(&reg_lock);
  for (gh__rcache_redis_t *r = reg_head; r; r = r->reg_next)
    pthread_mutex_lock(&r->lock);
}

static void reg_parent(void)
{
  for (gh__rcache_redis_t *r = reg_head; r; r = r->reg_next)
    pthread_mutex_unlock(&r->lock);
  pthread_mutex_unlock(&reg_lock);
}

/* In the child: the parent's connections are the parent's. Close this
 * process's copies of their sockets (the parent's stay open) and start
 * with an empty pool. */
static void reg_child(void)
{
  for (gh__rcache_redis_t *r = reg_head; r; r = r->reg_next) {
    rr_conn_t *c = r->all, *next;
    for (; c; c = next) {
      next = c->next;
      redisFree(c->c);
      free(c);
    }
    r->all = r->idle = NULL;
    r->n_conns = 0;
    r->probing = false;
    pthread_mutex_unlock(&r->lock);
  }
  pthread_mutex_unlock(&reg_lock);
}

static void reg_init(void)
{
  (void)pthread_atfork(reg_prepare, reg_parent, reg_child);
}

/* ---- helpers ---- */

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rr_log(const gh__rcache_redis_t *r, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rr_log(const gh__rcache_redis_t *r, int priority, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gh__auth_log(r->log_cb, r->log_arg, priority, msg);
}

/* Connects fd to sa within the deadline. 0 or -errno. */
static int connect_by(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
  struct pollfd pfd = {.fd = fd, .events = POLLOUT};
  int err = 0;
  socklen_t elen = sizeof(err);

  if (connect(fd, sa, len) == 0)
    return 0;
  if (errno != EINPROGRESS)
    return -errno;
  for (;;) {
    int64_t left = deadline - mono_ms();
    if (left <= 0)
      return -ETIMEDOUT;
    int n = poll(&pfd, 1, (int)left);
    if (n > 0)
      break;
    if (n < 0 && errno != EINTR)
      return -errno;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
    return -errno;
  return err ? -err : 0;
}

/* A connected blocking socket (SOCK_CLOEXEC) to the server, or -1 with why. */
static int open_socket(const gh__rcache_redis_t *r, int64_t deadline, char *why, size_t whylen)
{
  int fd = -1, err = 0;

  if (r->addr.is_unix) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, r->addr.path, strlen(r->addr.path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || (err = connect_by(fd, (struct sockaddr *)&sun, sizeof(sun), deadline)) != 0) {
      snprintf(why, whylen, "connect: %s", strerror(fd < 0 ? errno : -err));
      goto fail;
    }
  } else {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", r->addr.port);
    int g = getaddrinfo(r->addr.host, port, &hints, &ai);
    if (g != 0) {
      snprintf(why, whylen, "resolve %.64s: %s", r->addr.host, gai_strerror(g));
      return -1;
    }
    err = -EHOSTUNREACH;
    for (struct addrinfo *x = ai; x; x = x->ai_next) {
      fd = socket(x->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        err = -errno;
        continue;
      }
      err = connect_by(fd, x->ai_addr, x->ai_addrlen, deadline);
      if (err == 0)
        break;
      close(fd);
      fd = -1;
      if (err == -ETIMEDOUT)
        break;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
      snprintf(why, whylen, "connect: %s", strerror(-err));
      return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    snprintf(why, whylen, "fcntl: %s", strerror(errno));
    goto fail;
  }
  return fd;
fail:
  if (fd >= 0)
    close(fd);
  return -1;
}

/* One command: formatted by hiredis, sent here with MSG_NOSIGNAL (hiredis
 * write()s, and a connection Redis closed would raise SIGPIPE in the
 * calling thread; the library never does that to an application), the
 * reply read by hiredis (nothing left for it to write). SO_SNDTIMEO and
 * SO_RCVTIMEO bound both. The reply, or NULL with why. */
static redisReply *command(redisContext *c, int argc, const char **argv, const size_t *lens,
                           char *why, size_t whylen)
{
  char *cmd = NULL;
  int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
  void *rep = NULL;

  if (len < 0) {
    snprintf(why, whylen, "%s: out of memory", argv[0]);
    return NULL;
  }
  for (int off = 0; off < len;) {
    ssize_t w = send(c->fd, cmd + off, (size_t)(len - off), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      snprintf(why, whylen, "%s: send: %s", argv[0],
               w == 0 || errno == EAGAIN ? "not sent within the timeout" : strerror(errno));
      redisFreeCommand(cmd);
      return NULL;
    }
    off += (int)w;
  }
  redisFreeCommand(cmd);
  if (redisGetReply(c, &rep) != REDIS_OK || rep == NULL) {
    /* hiredis reports SO_RCVTIMEO running out as EAGAIN's text */
    bool timeout = c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable");
    snprintf(why, whylen, "%s: %s", argv[0],
             c->err == REDIS_ERR_EOF ? "connection closed by the server"
             : timeout               ? "no reply within the timeout"
             : c->errstr[0]          ? c->errstr
                                     : "I/O error");
    if (rep)
      freeReplyObject(rep);
    return NULL;
  }
  return rep;
}

/* The text of an unexpected reply. */
static void reply_problem(const char *what, const redisReply *rep, char *why, size_t whylen)
{
  if (rep->type == REDIS_REPLY_ERROR)
    snprintf(why, whylen, "%s: %.*s", what, (int)(rep->len > 120 ? 120 : rep->len), rep->str);
  else
    snprintf(why, whylen, "%s: unexpected reply type %d", what, rep->type);
}

/* A new authenticated connection with the database selected. NULL with why. */
static redisContext *rr_connect(const gh__rcache_redis_t *r, char *why, size_t whylen)
{
  int64_t deadline = mono_ms() + r->timeout_ms;
  struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
  redisContext *c = NULL;
  redisReply *rep = NULL;
  int fd = open_socket(r, deadline, why, whylen);

  if (fd < 0)
    goto fail;
  c = redisConnectFd(fd);
  if (!c || c->err) {
    snprintf(why, whylen, "hiredis: %s", c ? c->errstr : "out of memory");
    if (!c)
      close(fd);
    goto fail;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    snprintf(why, whylen, "timeouts: %s", c->errstr);
    goto fail;
  }
  if (r->password) {
    bool user = r->addr.user[0] != '\0';
    const char *argv[3] = {"AUTH", user ? r->addr.user : r->password, r->password};
    size_t lens[3] = {4, strlen(argv[1]), strlen(r->password)};
    rep = command(c, user ? 3 : 2, argv, lens, why, whylen);
    if (!rep)
      goto fail;
    if (rep->type != REDIS_REPLY_STATUS) {
      reply_problem("AUTH", rep, why, whylen);
      goto fail;
    }
    freeReplyObject(rep);
    rep = NULL;
  }
  if (r->addr.db != 0) {
    char db[12];
    snprintf(db, sizeof(db), "%u", r->addr.db);
    rep = command(c, 2, (const char *[]){"SELECT", db}, NULL, why, whylen);
    if (!rep)
      goto fail;
    if (rep->type != REDIS_REPLY_STATUS) {
      reply_problem("SELECT", rep, why, whylen);
      goto fail;
    }
    freeReplyObject(rep);
    rep = NULL;
  }
  return c;
fail:
  if (rep)
    freeReplyObject(rep);
  if (c)
    redisFree(c);
  return NULL;
}

/* ---- the pool and the health state ---- */

typedef enum { TAKE_POOLED, TAKE_FRESH, TAKE_SKIPPED, TAKE_FAILED } take_t;

/* An idle connection (TAKE_POOLED) or a new one (TAKE_FRESH) in *ret_c;
 * TAKE_SKIPPED: down, and not this request's turn to try (why = the
 * outage's cause); TAKE_FAILED: a connection was tried and failed (why). */
static take_t take(gh__rcache_redis_t *r, rr_conn_t **ret_c, char *why, size_t whylen)
{
  rr_conn_t *c = NULL;
  bool probe = false;

  pthread_mutex_lock(&r->lock);
  if (r->idle) {
    c = r->idle;
    r->idle = c->next_idle;
    pthread_mutex_unlock(&r->lock);
    *ret_c = c;
    return TAKE_POOLED;
  }
  if (r->down) {
    int64_t now = mono_ms();
    if (r->probing || now < r->next_try_ms) {
      snprintf(why, whylen, "%s", r->why);
      pthread_mutex_unlock(&r->lock);
      return TAKE_SKIPPED;
    }
    /* this request tries; the others wait for the next period whatever the outcome
     * (a failure then doubles the period in mark_down) */
    r->probing = probe = true;
    r->next_try_ms = now + r->backoff_ms;
  }
  pthread_mutex_unlock(&r->lock);

  redisContext *rc = rr_connect(r, why, whylen);
  if (rc && !(c = calloc(1, sizeof(*c)))) {
    redisFree(rc);
    rc = NULL;
    snprintf(why, whylen, "out of memory");
  }
  pthread_mutex_lock(&r->lock);
  if (probe)
    r->probing = false;
  if (c) {
    c->c = rc;
    c->next = r->all;
    if (r->all)
      r->all->prev = c;
    r->all = c;
    r->n_conns++;
  }
  pthread_mutex_unlock(&r->lock);
  *ret_c = c;
  return c ? TAKE_FRESH : TAKE_FAILED;
}

static void unlink_conn(gh__rcache_redis_t *r, rr_conn_t *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    r->all = c->next;
  if (c->next)
    c->next->prev = c->prev;
  r->n_conns--;
}

/* Back to the pool (ok) or closed. */
static void give_back(gh__rcache_redis_t *r, rr_conn_t *c, bool ok)
{
  pthread_mutex_lock(&r->lock);
  if (ok) {
    c->next_idle = r->idle;
    r->idle = c;
    c = NULL;
  } else {
    unlink_conn(r, c);
  }
  pthread_mutex_unlock(&r->lock);
  if (c) {
    redisFree(c->c);
    free(c);
  }
}

/* A command worked. Logs the end of an outage. */
static void mark_up(gh__rcache_redis_t *r)
{
  int64_t secs10 = 0;
  uint64_t n = 0;
  bool was_down;

  pthread_mutex_lock(&r->lock);
  was_down = r->down;
  if (was_down) {
    secs10 = (mono_ms() - r->down_since_ms) / 100;
    n = r->n_down_total;
    r->down = false;
    r->backoff_ms = 0;
  }
  pthread_mutex_unlock(&r->lock);
  if (was_down)
    rr_log(r, LOG_NOTICE,
           "replay cache: redis %s reachable again after %lld.%lld s; %llu Kerberos request(s) "
           "were %s meanwhile",
           r->url, (long long)(secs10 / 10), (long long)(secs10 % 10), (unsigned long long)n,
           r->fallback_local ? "checked against this node's cache only" : "answered 503");
}

/* This request found Redis unusable (why): the outage starts (logged,
 * idle connections dropped) or goes on (counted, summarised every 10 s),
 * and the next try is scheduled. */
static void mark_down(gh__rcache_redis_t *r, const char *why, bool tried)
{
  rr_conn_t *drop = NULL;
  int64_t now = mono_ms();
  bool first = false, report = false;
  uint64_t n = 0;
  int64_t secs = 0;

  if (tried)
    gh__metrics_add(GH__M_RCACHE_ERRORS); /* a call Redis failed (not one skipped while down) */
  pthread_mutex_lock(&r->lock);
  if (!r->down) {
    r->down = first = true;
    r->down_since_ms = r->last_report_ms = now;
    r->n_down_total = r->n_down_requests = 0;
    r->backoff_ms = RR_BACKOFF_MIN_MS;
    snprintf(r->why, sizeof(r->why), "%s", why);
    drop = r->idle; /* most likely as dead as the one that failed */
    r->idle = NULL;
    for (rr_conn_t *c = drop; c; c = c->next_idle)
      unlink_conn(r, c);
  } else if (tried) {
    r->backoff_ms = r->backoff_ms * 2 > RR_BACKOFF_MAX_MS ? RR_BACKOFF_MAX_MS : r->backoff_ms * 2;
    snprintf(r->why, sizeof(r->why), "%s", why);
  }
  if (tried)
    r->next_try_ms = now + r->backoff_ms;
  r->n_down_requests++;
  r->n_down_total++;
  if (!first && now - r->last_report_ms >= RR_REPORT_MS) {
    report = true;
    n = r->n_down_requests;
    r->n_down_requests = 0;
    r->last_report_ms = now;
    secs = (now - r->down_since_ms) / 1000;
  }
  pthread_mutex_unlock(&r->lock);
  while (drop) {
    rr_conn_t *next = drop->next_idle;
    redisFree(drop->c);
    free(drop);
    drop = next;
  }
  if (first)
    rr_log(r, LOG_ERR,
           "replay cache: redis %s unreachable (%s): %s until it is back (retried with backoff)",
           r->url, why,
           r->fallback_local
               ? "Kerberos replays are checked against this node's own cache only "
                 "(replay_cache_unavailable = local; a token used on another node is NOT refused)"
               : "Negotiate/Kerberos requests are answered 503");
  else if (report)
    rr_log(r, LOG_ERR,
           "replay cache: redis %s still unreachable after %lld s (%s): %llu request(s) "
           "%s in the last %d s",
           r->url, (long long)secs, r->why, (unsigned long long)n,
           r->fallback_local ? "checked locally only" : "answered 503", RR_REPORT_MS / 1000);
}

/* ---- the public face ---- */

static void tag_key(const uint8_t tag[GH__RCACHE_TAG_LEN], char key[])
{
  static const char hex[] = "0123456789abcdef";
  size_t n = sizeof(RR_KEY_PREFIX) - 1;

  memcpy(key, RR_KEY_PREFIX, n);
  for (unsigned i = 0; i < GH__RCACHE_TAG_LEN; i++) {
    key[n++] = hex[tag[i] >> 4];
    key[n++] = hex[tag[i] & 15];
  }
  key[n] = '\0';
}

#define RR_KEY_LEN (sizeof(RR_KEY_PREFIX) - 1 + 2 * GH__RCACHE_TAG_LEN)

int gh__rcache_redis_insert(gh__rcache_redis_t *r, const uint8_t tag[GH__RCACHE_TAG_LEN],
                            unsigned window_s)
{
  char key[RR_KEY_LEN + 1], px[24], why[192] = "";
  bool tried = false;
  int ret = 0;

  tag_key(tag, key);
  snprintf(px, sizeof(px), "%llu", (unsigned long long)window_s * 1000ull);
  for (int attempt = 0; attempt < 2; attempt++) {
    rr_conn_t *c = NULL;
    take_t t = take(r, &c, why, sizeof(why));
    if (t == TAKE_SKIPPED || t == TAKE_FAILED) {
      tried = t == TAKE_FAILED;
      break;
    }
    tried = true;
    const char *argv[6] = {"SET", key, "1", "NX", "PX", px};
    size_t lens[6] = {3, RR_KEY_LEN, 1, 2, 2, strlen(px)};
    redisReply *rep = command(c->c, 6, argv, lens, why, sizeof(why));
    if (rep && (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_NIL)) {
      ret = rep->type == REDIS_REPLY_NIL ? GH__RCACHE_REPLAY : 0;
      freeReplyObject(rep);
      give_back(r, c, true);
      mark_up(r);
      return ret;
    }
    if (rep) {
      reply_problem("SET", rep, why, sizeof(why));
      freeReplyObject(rep);
    }
    give_back(r, c, false);
    if (t == TAKE_FRESH)
      break; /* a pooled connection may just be stale: one more try on a fresh one */
  }
  mark_down(r, why, tried);
  return r->fallback_local ? GH__RCACHE_LOCAL_ONLY : GH_EREPLAY_CACHE;
}

void gh__rcache_redis_remove(gh__rcache_redis_t *r, const uint8_t tag[GH__RCACHE_TAG_LEN])
{
  char key[RR_KEY_LEN + 1], why[192];
  rr_conn_t *c = NULL;
  redisReply *rep;

  if (take(r, &c, why, sizeof(why)) > TAKE_FRESH)
    return; /* the entry expires by itself */
  tag_key(tag, key);
  rep = command(c->c, 2, (const char *[]){"DEL", key}, (size_t[]){3, RR_KEY_LEN}, why, sizeof(why));
  give_back(r, c, rep && rep->type == REDIS_REPLY_INTEGER);
  if (!rep || rep->type != REDIS_REPLY_INTEGER)
    gh__metrics_add(GH__M_RCACHE_ERRORS);
  if (rep)
    freeReplyObject(rep);
}

/* At start-up: one connection (closed again: never kept across a fork)
 * that says whether Redis is there and whether it may evict our keys. */
static void probe(gh__rcache_redis_t *r)
{
  char why[192];
  redisContext *c = rr_connect(r, why, sizeof(why));
  redisReply *rep;

  if (!c) {
    rr_log(r, LOG_WARNING,
           "replay cache: redis %s not reachable at start (%s); Negotiate/Kerberos requests "
           "%s until it is",
           r->url, why, r->fallback_local ? "are checked locally only" : "are answered 503");
    return;
  }
  rep =
      command(c, 3, (const char *[]){"CONFIG", "GET", "maxmemory-policy"}, NULL, why, sizeof(why));
  if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
      rep->element[1]->type == REDIS_REPLY_STRING) {
    if (strcmp(rep->element[1]->str, "noeviction") != 0)
      rr_log(r, LOG_WARNING,
             "replay cache: redis %s has maxmemory-policy %s: when full it may evict "
             "authenticator tags early and let a replay through; set noeviction (then a full "
             "Redis answers errors, and gatehoused 503)",
             r->url, rep->element[1]->str);
  }
  if (rep)
    freeReplyObject(rep);
  redisFree(c);
}

/* The doctor's question (gh_auth_replay_cache_probe): can this process use
 * the store as a worker will? A fresh connection (AUTH, SELECT), one
 * SET NX PX of a key of its own, the same SET again (must be refused: the
 * store would otherwise let every replay through), DEL, and the eviction
 * policy. */
static int probe_commands(redisContext *c, char *why, size_t whylen, bool *ret_evicts)
{
  char key[64];
  unsigned char rnd[8];
  redisReply *rep;
  int got[2] = {-1, -1};

  if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
    snprintf(why, whylen, "no random bytes for the test key");
    return GH_EREPLAY_CACHE;
  }
  snprintf(key, sizeof(key), "gh:doctor:%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
           rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  for (int i = 0; i < 2; i++) {
    rep = command(c, 6, (const char *[]){"SET", key, "1", "NX", "PX", "5000"}, NULL, why, whylen);
    if (!rep)
      return GH_EREPLAY_CACHE;
    got[i] = rep->type;
    if (rep->type != REDIS_REPLY_STATUS && rep->type != REDIS_REPLY_NIL)
      reply_problem("SET", rep, why, whylen);
    freeReplyObject(rep);
  }
  rep = command(c, 2, (const char *[]){"DEL", key}, NULL, why, whylen);
  if (rep)
    freeReplyObject(rep);
  if (got[0] != REDIS_REPLY_STATUS || got[1] != REDIS_REPLY_NIL) {
    if (got[0] == REDIS_REPLY_STATUS)
      snprintf(why, whylen, "SET NX of an existing key did not answer nil: replays would pass");
    return GH_EREPLAY_CACHE;
  }
  rep = command(c, 3, (const char *[]){"CONFIG", "GET", "maxmemory-policy"}, NULL, why, whylen);
  *ret_evicts = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                rep->element[1]->type == REDIS_REPLY_STRING &&
                strcmp(rep->element[1]->str, "noeviction") != 0;
  if (rep)
    freeReplyObject(rep);
  return 0;
}

GH_EXPORT int gh_auth_replay_cache_probe(const char *url, const char *password,
                                         unsigned timeout_ms, char *msg, size_t msglen)
{
  gh__rcache_redis_t r = {.url = (char *)url, .password = (char *)password};
  char buf[256], why[192] = "";
  redisContext *c;
  bool evicts = false;
  int ret;

  if (!msg) {
    msg = buf;
    msglen = sizeof(buf);
  }
  if (!url)
    return -EINVAL;
  ret = parse_url(url, &r.addr, msg, msglen);
  if (ret)
    return ret;
  r.timeout_ms = timeout_ms ? timeout_ms : 500;
  c = rr_connect(&r, why, sizeof(why));
  ret = c ? probe_commands(c, why, sizeof(why), &evicts) : GH_EREPLAY_CACHE;
  if (c)
    redisFree(c);
  if (ret)
    snprintf(msg, msglen, "redis %s: %s", url, why);
  else if (evicts)
    snprintf(msg, msglen,
             "redis %s: SET NX PX works, but its maxmemory-policy may evict authenticator "
             "tags when full and let a replay through: set maxmemory-policy noeviction",
             url);
  else
    snprintf(msg, msglen, "redis %s: SET NX PX works, a second SET NX is refused, noeviction",
             url);
  explicit_bzero(&r, sizeof(r));
  return ret ? ret : evicts ? 1 : 0;
}

int gh__rcache_redis_new(const gh__rcache_redis_config_t *cfg, char *errbuf, size_t errlen,
                         gh__rcache_redis_t **ret_r)
{
  gh__rcache_redis_t *r = gh__calloc(1, sizeof(*r));
  char msg[256];
  int ret = 0;

  if (!r) {
    ret = -ENOMEM;
    goto out;
  }
  pthread_mutex_init(&r->lock, NULL);
  ret = parse_url(cfg->url, &r->addr, msg, sizeof(msg));
  if (ret) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "replay_cache: %s", msg);
    goto out;
  }
  if (r->addr.user[0] && !cfg->password) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "replay_cache: a user in the URL needs a password file");
    ret = GH_ECONFIG;
    goto out;
  }
  r->url = gh__strdup(cfg->url);
  r->password = cfg->password ? gh__strdup(cfg->password) : NULL;
  if (!r->url || (cfg->password && !r->password)) {
    ret = -ENOMEM;
    goto out;
  }
  r->fallback_local = cfg->fallback_local;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 500;
  r->log_cb = cfg->log_cb;
  r->log_arg = cfg->log_arg;
  probe(r);
  pthread_once(&reg_once, reg_init);
  pthread_mutex_lock(&reg_lock);
  r->reg_next = reg_head;
  reg_head = r;
  pthread_mutex_unlock(&reg_lock);
  *ret_r = r;
  r = NULL;
out:
  if (r) {
    free(r->url);
    if (r->password) {
      explicit_bzero(r->password, strlen(r->password));
      free(r->password);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
  }
  return ret;
}

void gh__rcache_redis_free(gh__rcache_redis_t *r)
{
  if (!r)
    return;
  pthread_mutex_lock(&reg_lock);
  for (gh__rcache_redis_t **p = &reg_head; *p; p = &(*p)->reg_next) {
    if (*p == r) {
      *p = r->reg_next;
      break;
    }
  }
  pthread_mutex_unlock(&reg_lock);
  for (rr_conn_t *c = r->all, *next; c; c = next) {
    next = c->next;
    redisFree(c->c);
    free(c);
  }
  if (r->password) {
    explicit_bzero(r->password, strlen(r->password));
    free(r->password);
  }
  free(r->url);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

unsigned gh__rcache_redis_conns(gh__rcache_redis_t *r)
{
  unsigned n;

  pthread_mutex_lock(&r->lock);
  n = r->n_conns;
  pthread_mutex_unlock(&r->lock);
  return n;
}

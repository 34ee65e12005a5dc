/* conn.c: connections: accept and timers (I/O thread); read, parse, dispatch, writes (any event thread). */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <fcntl.h>
#include <limits.h>

#include "httpapi/date.h"
#include "httpapi/glue.h"
#include "httpapi/internal.h"
#include "httpapi/metrics.h"
#include "httpapi/url.h"
#include "util/alloc.h"
#include "util/clock.h"

#define TLS_CHUNK 16384 /* one TLS record of plaintext */
#define LOG_PER_SEC 20

static void conn_free(gh__conn_t *c)
{
  if (c->ext_state_free != NULL)
    c->ext_state_free(c->ext_state);
  SSL_free(c->ssl);
  gh__tls_store_unref(c->tls_store);
  free(c->cbt);
  free(c->alpn);
  if (c->fd >= 0)
    close(c->fd);
  if (c->out_fd >= 0)
    close(c->out_fd);
  free(c->pending);
  free(c->out);
  free(c->out2);
  free(c->groups);
  /* type-stable: a late epoll event may still name this object; its CAS on
   * owner fails on FREE */
  gh_server_t *s = c->srv;
  atomic_store_explicit(&c->owner, GH__OWN_FREE, memory_order_release);
  pthread_mutex_lock(&s->cplock);
  c->pool_next = s->conn_pool;
  s->conn_pool = c;
  pthread_mutex_unlock(&s->cplock);
}

static gh__conn_t *conn_alloc(gh_server_t *s)
{
  gh__conn_t *c;
  pthread_mutex_lock(&s->cplock);
  c = s->conn_pool;
  if (c != NULL)
    s->conn_pool = c->pool_next;
  pthread_mutex_unlock(&s->cplock);
  if (c == NULL) {
    c = gh__calloc(1, sizeof(*c));
    if (c == NULL)
      return NULL;
    if ((uintptr_t)c & GH__SLOT_BIT) {
      free(c); /* its address would read as a kept descriptor's cookie */
      return NULL;
    }
    c->kind = GH__KIND_CONN;
    atomic_init(&c->owner, GH__OWN_BUSY);
  } else {
    /* everything after owner; kind and owner may be read by late events */
    size_t off = offsetof(gh__conn_t, state);
    memset((char *)c + off, 0, sizeof(*c) - off);
    atomic_store_explicit(&c->missed, false, memory_order_relaxed);
    atomic_store_explicit(&c->owner, GH__OWN_BUSY, memory_order_relaxed);
  }
  return c;
}

void gh__conn_pool_free(gh_server_t *s)
{
  while (s->conn_pool != NULL) {
    gh__conn_t *c = s->conn_pool;
    s->conn_pool = c->pool_next;
    free(c);
  }
}

void gh__conn_ref(gh__conn_t *c)
{
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void gh__conn_unref(gh__conn_t *c)
{
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
    conn_free(c);
}

void gh__io_log(gh__io_t *io, int priority, const char *fmt, ...)
{
  gh_server_t *s = io->srv;
  char msg[320];
  va_list ap;
  uint64_t sec = gh__now_ms() / 1000;
  if (s->log == NULL)
    return;
  pthread_mutex_lock(&io->log_lock);
  if (sec != io->log_window) {
    if (io->log_dropped > 0) {
      snprintf(msg, sizeof(msg), "%u similar messages suppressed", io->log_dropped);
      s->log(LOG_WARNING, msg, s->log_arg);
    }
    io->log_window = sec;
    io->log_count = io->log_dropped = 0;
  }
  if (io->log_count >= LOG_PER_SEC) {
    io->log_dropped++;
    pthread_mutex_unlock(&io->log_lock);
    return;
  }
  io->log_count++;
  pthread_mutex_unlock(&io->log_lock);
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  s->log(priority, msg, s->log_arg);
}

/* "ADDR:PORT" of the peer, for log lines. */
static const char *peer_text(const gh__conn_t *c, char *buf, size_t len)
{
  char a[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (c->info.peer.ss_family == AF_INET) {
    const struct sockaddr_in *i4 = (const struct sockaddr_in *)&c->info.peer;
    inet_ntop(AF_INET, &i4->sin_addr, a, sizeof(a));
    port = ntohs(i4->sin_port);
  } else if (c->info.peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *i6 = (const struct sockaddr_in6 *)&c->info.peer;
    inet_ntop(AF_INET6, &i6->sin6_addr, a, sizeof(a));
    port = ntohs(i6->sin6_port);
  }
  snprintf(buf, len, c->info.peer.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
  return buf;
}

/* Dotted quad without inet_ntop's printf machinery. buf holds at least 16
 * bytes. */
static void ipv4_text(const struct in_addr *in, char *buf)
{
  const unsigned char *b = (const unsigned char *)&in->s_addr;
  char *p = buf;
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (i > 0)
      *p++ = '.';
    if (v >= 100) {
      *p++ = (char)('0' + v / 100);
      v %= 100;
      *p++ = (char)('0' + v / 10);
    } else if (v >= 10) {
      *p++ = (char)('0' + v / 10);
    }
    *p++ = (char)('0' + v % 10);
  }
  *p = '\0';
}

/* An address as text into buf[INET6_ADDRSTRLEN]; returns its port (0: none). */
static int addr_text(const struct sockaddr_storage *ss, char buf[INET6_ADDRSTRLEN])
{
  int port = 0;
  buf[0] = '\0';
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    ipv4_text(&a->sin_addr, buf);
    port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, buf, INET6_ADDRSTRLEN);
    port = ntohs(a->sin6_port);
  } else if (ss->ss_family == AF_UNIX) {
    memcpy(buf, "unix", sizeof("unix"));
  }
  return port;
}

/* Formatted on a connection's first request (its owner's thread), kept
 * until the connection object is reused. */
void gh__request_get_addrs(gh_request_t *r, gh__request_addrs_t *ret_addrs)
{
  gh__conn_t *c = r->conn;
  if (!c->addr_done) {
    c->addr_rport = addr_text(&c->info.peer, c->addr_remote);
    c->addr_lport = addr_text(&c->info.local, c->addr_local);
    c->addr_done = true;
  }
  ret_addrs->remote = c->addr_remote;
  ret_addrs->local = c->addr_local;
  ret_addrs->remote_port = c->addr_rport;
  ret_addrs->local_port = c->addr_lport;
}

void gh__io_wake(gh__io_t *io)
{
  uint64_t one = 1;
  ssize_t n = write(io->wakefd, &one, sizeof(one));
  (void)n;
}

/* ---- the connection's registration ---------------------------------------
 * A connection stays in the connection epoll edge-triggered from accept to
 * close: no epoll_ctl per request (it was one of a proxied request's twelve
 * system calls). The mask is EPOLLIN|EPOLLRDHUP from the ADD, EPOLLIN|
 * EPOLLOUT|EPOLLRDHUP after any MOD (every MOD uses the same mask, so the
 * order two threads' MODs land in does not matter); what the state wants
 * is c->armed, and the handler of a state tolerates the other events.
 *
 * Exactly one thread owns a connection (owner BUSY or WORKER); an event
 * for an owned connection cannot be run, so its thread sets `missed`
 * before trying to claim once more. The owner lets go by storing IO and
 * then reading `missed` (both sequentially consistent: of the two threads
 * one sees the other): set, the owner re-reports readiness with a MOD,
 * which queues an event for whoever claims next. A state that waits for
 * EPOLLOUT (output to flush, buffered input to parse at once, a close)
 * always gets the MOD: it reports a writable socket at once. */

#define EV_ADD (EPOLLIN | EPOLLRDHUP | EPOLLET)
#define EV_MOD (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* The owner lets go: the connection is at rest (claimable). Always the
 * owner's last touch. The reference keeps the fd from being closed (and
 * reused) by a thread that claims it between the store and the epoll_ctl. */
static void arm(gh__conn_t *c, uint32_t events)
{
  int fd = c->fd, epfd = c->srv->cepfd;
  struct epoll_event ev = {.events = EV_MOD, .data.ptr = c};
  /* output to flush may not come as an edge (the worker's last write did
   * not fill the socket; the ADD had no EPOLLOUT): the MOD reports it */
  bool force = c->quiet || (events & EPOLLOUT) != 0;
  c->armed = events;
  c->quiet = false;
  gh__conn_ref(c);
  atomic_store_explicit(&c->owner, GH__OWN_IO, memory_order_seq_cst);
  if (force || atomic_load_explicit(&c->missed, memory_order_seq_cst))
    (void)epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
  gh__conn_unref(c);
}

static bool claim(gh__conn_t *c)
{
  int exp = GH__OWN_IO;
  return atomic_compare_exchange_strong_explicit(&c->owner, &exp, GH__OWN_BUSY,
                                                 memory_order_seq_cst, memory_order_relaxed);
}

/* An event's claim: failed, the owner is told (see above) and one more try
 * settles the race with its release. */
static bool claim_event(gh__conn_t *c)
{
  if (!claim(c)) {
    atomic_store_explicit(&c->missed, true, memory_order_seq_cst);
    if (!claim(c))
      return false;
  }
  if (atomic_load_explicit(&c->missed, memory_order_relaxed))
    atomic_store_explicit(&c->missed, false, memory_order_relaxed);
  return true;
}

void gh__conn_quiet(gh__conn_t *c)
{
  struct epoll_event ev = {.events = EPOLLET, .data.ptr = c};
  if (c->quiet)
    return;
  c->quiet = true; /* the release re-arms (and re-reports) */
  (void)epoll_ctl(c->srv->cepfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Owner: closes now; the memory goes when the last reference drops. */
static void conn_close(gh__conn_t *c)
{
  gh__io_t *io = c->io;
  if (c->dead)
    return;
  c->dead = true;
  c->state = GH__CS_CLOSE;
  (void)epoll_ctl(c->srv->cepfd, EPOLL_CTL_DEL, c->fd, NULL);
  pthread_mutex_lock(&io->lock);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    io->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  pthread_mutex_unlock(&io->lock);
  if (c->req != NULL) {
    gh__request_recycle(c->req);
    c->req = NULL;
  }
  atomic_fetch_sub(&c->srv->n_conns, 1);
  gh__metrics_conn(-1);
  gh__conn_unref(c);
}

/* gh_server_free: every event thread has stopped. */
void gh__io_close_all(gh__io_t *io)
{
  while (io->conns != NULL)
    conn_close(io->conns);
}

/* ---- output (shared by event threads and workers) ----------------------- */

/* Advances an iovec array past k bytes. */
static void iov_skip(struct iovec **iov, int *n, size_t k)
{
  while (*n > 0 && k >= (*iov)->iov_len) {
    k -= (*iov)->iov_len;
    (*iov)++;
    (*n)--;
  }
  if (*n > 0 && k > 0) {
    (*iov)->iov_base = (char *)(*iov)->iov_base + k;
    (*iov)->iov_len -= k;
  }
  while (*n > 0 && (*iov)->iov_len == 0) {
    (*iov)++;
    (*n)--;
  }
}

static size_t iov_total(const struct iovec *iov, int n)
{
  size_t t = 0;
  for (int i = 0; i < n; i++)
    t += iov[i].iov_len;
  return t;
}

static char *iov_copy(const struct iovec *iov, int n, size_t *ret_len)
{
  size_t t = iov_total(iov, n);
  char *b = NULL;
  *ret_len = 0;
  if (t == 0)
    return NULL;
  b = gh__malloc(t);
  if (b == NULL)
    return NULL;
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    memcpy(b + o, iov[i].iov_base, iov[i].iov_len);
    o += iov[i].iov_len;
  }
  *ret_len = t;
  return b;
}

/* One non-blocking write step: returns bytes written (>0), 0 for EAGAIN, or
 * a negative error. */
static ssize_t write_iov(int fd, struct iovec *iov, int n, int more)
{
  ssize_t w;
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(n > 64 ? 64 : n)};
  do
    w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT | more);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
  return w;
}

static int wait_writable(gh__conn_t *c, uint64_t deadline, short events)
{
  int ret = 0;
  gh__server_may_block(c->srv);
  for (;;) {
    uint64_t now = gh__now_ms();
    if (now >= deadline) {
      ret = GH_ETIMEOUT;
      break;
    }
    struct pollfd p = {.fd = c->fd, .events = events};
    /* UINT64_MAX: no deadline (gh_stream_write with timeout -1) */
    int ms =
        deadline == UINT64_MAX ? -1 : (int)(deadline - now < INT_MAX ? deadline - now : INT_MAX);
    int r = poll(&p, 1, ms);
    if (r > 0) {
      if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        ret = GH_ECLOSED;
      break;
    }
    if (r < 0 && errno != EINTR) {
      ret = GH_ECLOSED;
      break;
    }
  }
  return ret;
}

/* Copies up to cap bytes from the iovecs, advancing them. */
static size_t iov_take(struct iovec **iov, int *n, char *dst, size_t cap)
{
  size_t got = 0;
  while (*n > 0 && got < cap) {
    size_t k = (*iov)->iov_len < cap - got ? (*iov)->iov_len : cap - got;
    memcpy(dst + got, (*iov)->iov_base, k);
    got += k;
    iov_skip(iov, n, k);
  }
  return got;
}

/* Reads exactly len bytes of fd at off (pread). 0, -EIO (short) or -errno. */
static int pread_full(int fd, char *dst, size_t len, off_t off)
{
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, dst + got, len - got, off + (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return -EIO; /* file shorter than announced */
    got += (size_t)r;
  }
  return 0;
}

/* Worker side over TLS: the output (pre, file, post) goes through one
 * 16 KiB plaintext chunk per TLS record; a file is read with pread (no
 * sendfile through userspace TLS; kTLS is not used). A retried SSL_write
 * always gets the same chunk again. A final write that would block hands
 * the unsent rest of the chunk plus what follows to the connection (an event
 * thread finishes it). */
static int tls_conn_send(gh__conn_t *c, struct iovec *pre, int npre, int fd, off_t foff,
                         size_t flen, struct iovec *post, int npost, bool final, uint64_t deadline)
{
  static __thread char chunk[TLS_CHUNK];
  size_t clen = 0, coff = 0;
  int ret = 0;
  for (;;) {
    if (coff == clen) {
      clen = coff = 0;
      clen += iov_take(&pre, &npre, chunk, TLS_CHUNK);
      if (npre == 0 && flen > 0 && clen < TLS_CHUNK) {
        size_t k = flen < TLS_CHUNK - clen ? flen : TLS_CHUNK - clen;
        ret = pread_full(fd, chunk + clen, k, foff);
        if (ret != 0)
          goto out;
        clen += k;
        foff += (off_t)k;
        flen -= k;
      }
      if (npre == 0 && flen == 0)
        clen += iov_take(&post, &npost, chunk + clen, TLS_CHUNK - clen);
      if (clen == 0)
        break; /* all written */
    }
    ssize_t w = gh__tls_write(c->ssl, chunk + coff, clen - coff);
    if (w > 0) {
      coff += (size_t)w;
      continue;
    }
    if (w != GH__TLS_WANT_WRITE && w != GH__TLS_WANT_READ) {
      ret = GH_ECLOSED;
      goto out;
    }
    if (final) {
      size_t rest = iov_total(pre, npre), tail = clen - coff;
      c->out = gh__malloc(tail + rest);
      c->out2 = iov_copy(post, npost, &c->out2_len);
      if (c->out != NULL) {
        memcpy(c->out, chunk + coff, tail);
        (void)iov_take(&pre, &npre, c->out + tail, rest);
        c->out_len = tail + rest;
      }
      c->out_off = c->out2_off = 0;
      c->out_fleft = flen;
      c->out_foff = foff;
      if (flen > 0)
        c->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (c->out == NULL || (npost > 0 && c->out2 == NULL) || (flen > 0 && c->out_fd < 0)) {
        ret = GH_ECLOSED;
        goto out;
      }
      ret = GH__SEND_HANDOFF;
      goto out;
    }
    ret = wait_writable(c, deadline, w == GH__TLS_WANT_READ ? POLLIN : POLLOUT);
    if (ret != 0)
      goto out;
  }
out:
  return ret;
}

static int conn_send(gh__conn_t *c, struct iovec *pre, int npre, int fd, off_t foff, size_t flen,
                     struct iovec *post, int npost, bool final, uint64_t deadline)
{
  int ret = 0;
  iov_skip(&pre, &npre, 0);
  iov_skip(&post, &npost, 0);
  if (c->ssl != NULL)
    return tls_conn_send(c, pre, npre, fd, foff, flen, post, npost, final, deadline);
  for (;;) {
    ssize_t w = 0;
    if (npre > 0) {
      /* a file body follows: let the head share its first segment */
      w = write_iov(c->fd, pre, npre, flen > 0 ? MSG_MORE : 0);
      if (w > 0) {
        iov_skip(&pre, &npre, (size_t)w);
        continue;
      }
    } else if (flen > 0) {
      do
        w = sendfile(c->fd, fd, &foff, flen);
      while (w < 0 && errno == EINTR);
      if (w > 0) {
        flen -= (size_t)w;
        continue;
      }
      if (w == 0) {
        ret = -EIO; /* file shorter than announced */
        goto out;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        w = 0;
      } else {
        /* EPIPE/ECONNRESET are the peer; anything else is the file */
        ret = (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) ? GH_ECLOSED : -errno;
        goto out;
      }
    } else if (npost > 0) {
      w = write_iov(c->fd, post, npost, 0);
      if (w > 0) {
        iov_skip(&post, &npost, (size_t)w);
        continue;
      }
    } else {
      break; /* all written */
    }
    if (w < 0) {
      ret = GH_ECLOSED;
      goto out;
    }
    /* EAGAIN */
    if (final) {
      c->out = iov_copy(pre, npre, &c->out_len);
      c->out2 = iov_copy(post, npost, &c->out2_len);
      c->out_off = c->out2_off = 0;
      c->out_fleft = flen;
      c->out_foff = foff;
      if (flen > 0)
        c->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if ((npre > 0 && c->out == NULL) || (npost > 0 && c->out2 == NULL) ||
          (flen > 0 && c->out_fd < 0)) {
        ret = GH_ECLOSED;
        goto out;
      }
      ret = GH__SEND_HANDOFF;
      goto out;
    }
    ret = wait_writable(c, deadline, POLLOUT);
    if (ret != 0)
      goto out;
  }
out:
  return ret;
}

int gh__conn_send(gh__conn_t *c, struct iovec *pre, int npre, int fd, off_t foff, size_t flen,
                  struct iovec *post, int npost, bool final)
{
  uint64_t deadline = gh__now_ms() + c->srv->cfg.send_timeout_ms;
  int ret = conn_send(c, pre, npre, fd, foff, flen, post, npost, final, deadline);
  return ret == GH_ETIMEOUT ? GH_ECLOSED : ret;
}

int gh__conn_write(gh__conn_t *c, const void *buf, size_t len, uint64_t deadline)
{
  struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
  int ret = conn_send(c, &v, 1, -1, 0, 0, NULL, 0, false, deadline);
  return ret == 0 || ret == GH_ETIMEOUT ? ret : GH_ECLOSED;
}

/* Event thread: continues a handed-off write. Returns 1 when done, 0 when
 * blocked, <0 on error. */
/* One TLS write step of the handed-off output: bytes written (> 0), 0 when
 * blocked, < 0 on error. The file part goes in TLS_CHUNK pieces read into
 * the event thread's buffer; a blocked piece is read again, identically. */
static ssize_t io_tls_step(gh__loop_t *lp, gh__conn_t *c)
{
  ssize_t w;
  if (c->out_off < c->out_len) {
    w = gh__tls_write(c->ssl, c->out + c->out_off, c->out_len - c->out_off);
    if (w > 0)
      c->out_off += (size_t)w;
  } else if (c->out_fleft > 0) {
    size_t k = c->out_fleft < TLS_CHUNK ? c->out_fleft : TLS_CHUNK;
    int e = pread_full(c->out_fd, lp->rbuf, k, c->out_foff);
    if (e != 0)
      return e;
    w = gh__tls_write(c->ssl, lp->rbuf, k);
    if (w > 0) {
      c->out_foff += (off_t)w;
      c->out_fleft -= (size_t)w;
    }
  } else {
    w = gh__tls_write(c->ssl, c->out2 + c->out2_off, c->out2_len - c->out2_off);
    if (w > 0)
      c->out2_off += (size_t)w;
  }
  if (w == GH__TLS_WANT_WRITE || w == GH__TLS_WANT_READ)
    w = 0;
  return w;
}

static int io_flush(gh__loop_t *lp, gh__conn_t *c)
{
  int ret = 1;
  while (c->out_off < c->out_len || c->out_fleft > 0 || c->out2_off < c->out2_len) {
    ssize_t w;
    if (c->ssl != NULL) {
      w = io_tls_step(lp, c);
    } else if (c->out_off < c->out_len) {
      struct iovec v = {c->out + c->out_off, c->out_len - c->out_off};
      w = write_iov(c->fd, &v, 1, c->out_fleft > 0 ? MSG_MORE : 0);
      if (w > 0)
        c->out_off += (size_t)w;
    } else if (c->out_fleft > 0) {
      do
        w = sendfile(c->fd, c->out_fd, &c->out_foff, c->out_fleft);
      while (w < 0 && errno == EINTR);
      if (w > 0)
        c->out_fleft -= (size_t)w;
      else if (w == 0)
        w = -EIO;
      else if (errno == EAGAIN || errno == EWOULDBLOCK)
        w = 0;
      else
        w = -errno;
    } else {
      struct iovec v = {c->out2 + c->out2_off, c->out2_len - c->out2_off};
      w = write_iov(c->fd, &v, 1, 0);
      if (w > 0)
        c->out2_off += (size_t)w;
    }
    if (w == 0) {
      ret = 0;
      goto out;
    }
    if (w < 0) {
      ret = (int)w;
      goto out;
    }
  }
  free(c->out);
  free(c->out2);
  c->out = c->out2 = NULL;
  c->out_len = c->out_off = c->out2_len = c->out2_off = 0;
  if (c->out_fd >= 0)
    close(c->out_fd);
  c->out_fd = -1;
out:
  return ret;
}

/* ---- hand-back from workers --------------------------------------------- */

static void release_to_io(gh__conn_t *c, uint32_t events)
{
  arm(c, events);
}

static void start_linger(gh__conn_t *c, uint64_t now)
{
  gh__tls_shutdown(c->ssl); /* close_notify, best effort */
  (void)shutdown(c->fd, SHUT_WR);
  c->state = GH__CS_LINGER;
  c->deadline = now + GH__LINGER_MS;
}

void gh__conn_release_done(gh__conn_t *c, bool keep_alive)
{
  uint64_t now = gh__now_ms();
  uint32_t events = EPOLLIN | EPOLLRDHUP;
  if (!keep_alive || atomic_load_explicit(&c->srv->stopping, memory_order_relaxed)) {
    start_linger(c, now);
  } else if (c->pending != NULL || (c->ssl != NULL && SSL_has_pending(c->ssl))) {
    c->state = GH__CS_READING;
    c->deadline = now + c->srv->cfg.header_timeout_ms;
    events |= EPOLLOUT; /* fires at once: an event thread parses what is buffered */
  } else {
    c->state = GH__CS_IDLE;
    c->deadline = now + c->srv->cfg.keepalive_timeout_ms;
  }
  release_to_io(c, events);
}

void gh__conn_release_writing(gh__conn_t *c, bool keep_alive)
{
  c->state = GH__CS_WRITING;
  c->close_after = !keep_alive;
  c->deadline = gh__now_ms() + c->srv->cfg.send_timeout_ms;
  release_to_io(c, EPOLLOUT);
}

void gh__conn_release_close(gh__conn_t *c)
{
  c->state = GH__CS_CLOSE;
  c->deadline = 0;
  release_to_io(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

/* ---- I/O side: server-generated responses -------------------------------- */

static void io_after_write(gh__loop_t *lp, gh__conn_t *c);
static void io_input(gh__loop_t *lp, gh__conn_t *c);

static void io_write_step(gh__loop_t *lp, gh__conn_t *c)
{
  int r = io_flush(lp, c);
  if (r < 0)
    conn_close(c);
  else if (r == 0)
    arm(c, EPOLLOUT);
  else
    io_after_write(lp, c);
}

/* Answers an error itself (never reaching the application) and closes. */
static void io_reply_error(gh__loop_t *lp, gh__conn_t *c, int status)
{
  const char *reason = gh__framing_reason(status);
  char body[96];
  int blen = snprintf(body, sizeof(body), "%d %s\n", status, reason);
  static const char ct_name[] = "Content-Type", ct_value[] = "text/plain; charset=utf-8";
  gh__resp_hdr_t ct = {ct_name, ct_value, sizeof(ct_name) - 1, sizeof(ct_value) - 1};
  gh__resp_head_t h = {
      .status = status,
      .reason = reason,
      .hdrs = &ct,
      .n_hdrs = 1,
      .frame = GH__FRAME_LENGTH,
      .content_length = (uint64_t)blen,
      .keep_alive = false,
      .version = 11,
      .date = gh__http_date_now(),
      .server = lp->srv->server_header,
  };
  size_t hl = gh__framing_head_len(&h);
  gh__metrics_request(c->req && c->req->group ? c->req->group->metrics_site : GH__METRICS_SITE_NONE,
                      gh__metrics_code(status), UINT64_MAX);
  if (c->req != NULL) {
    gh__request_recycle(c->req);
    c->req = NULL;
  }
  free(c->pending);
  c->pending = NULL;
  c->pending_len = 0;
  c->out = gh__malloc(hl + (size_t)blen);
  if (c->out == NULL) {
    conn_close(c);
    return;
  }
  gh__framing_head_write(&h, c->out);
  memcpy(c->out + hl, body, (size_t)blen);
  c->out_len = hl + (size_t)blen;
  c->out_off = 0;
  c->close_after = true;
  c->state = GH__CS_WRITING;
  c->deadline = lp->now + lp->srv->cfg.send_timeout_ms;
  io_write_step(lp, c);
}

static void io_after_write(gh__loop_t *lp, gh__conn_t *c)
{
  if (c->close_after || atomic_load(&lp->srv->stopping)) {
    start_linger(c, lp->now);
    arm(c, EPOLLIN | EPOLLRDHUP);
  } else {
    c->state = GH__CS_IDLE;
    c->deadline = lp->now + lp->srv->cfg.keepalive_timeout_ms;
    io_input(lp, c);
  }
}

/* ---- I/O side: input ----------------------------------------------------- */

static void dispatch(gh__loop_t *lp, gh__conn_t *c)
{
  gh_request_t *r = c->req;
  gh_server_t *s = lp->srv;
  c->req = NULL;
  if (!lp->worker &&
      atomic_load_explicit(&s->qlen, memory_order_relaxed) + lp->batch_n >= s->cfg.max_queue) {
    gh__request_recycle(r);
    io_reply_error(lp, c, 503);
    return;
  }
  r->conn = c;
  r->t0_ns = gh__clock_ns();
  r->keep_alive = r->msg.keep_alive && !atomic_load_explicit(&s->stopping, memory_order_relaxed);
  c->info.flags = (c->info.flags & ~GH_CONN_KEEPALIVE) | (r->keep_alive ? GH_CONN_KEEPALIVE : 0);
  c->state = GH__CS_WORKER;
  gh__conn_ref(c);
  atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
  atomic_store_explicit(&c->owner, GH__OWN_WORKER, memory_order_release);
  if (lp->worker) {
    /* no hand-off: the request runs to its end (or PENDING) on this thread,
     * whose next event waits until the handler returns; the connection is
     * the request's until its response hands it back (re-armed) */
    gh__server_run_inline(s, r);
    return;
  }
  if (lp->batch_tail != NULL)
    lp->batch_tail->next = r;
  else
    lp->batch_head = r;
  lp->batch_tail = r;
  lp->batch_n++;
}

/* Headers are complete: path, group, body limit, 100-continue. Returns 0, an
 * HTTP status to answer, or -1 when the connection must just be closed. */
static int on_headers(gh__loop_t *lp, gh__conn_t *c, bool more_buffered)
{
  int status = 0;
  gh_request_t *r = c->req;
  gh__http_msg_t *m = &r->msg;
  int e = gh__url_split(m->url, m->url_len, r->pool, &r->path, &r->query);
  if (e != 0) {
    status = e == -ENOMEM ? 503 : 400;
    goto out;
  }
  r->group = gh__url_group_match(lp->srv, r->path);
  size_t max_body = r->group ? r->group->props.max_body : lp->srv->cfg.max_body;
  unsigned bto = r->group ? r->group->props.body_timeout_ms : lp->srv->cfg.body_timeout_ms;
  /* a stream_body group gets a request with a body at once: the
   * application reads the body from the connection (stream.c) */
  r->streamed = r->group != NULL && r->group->stream_body && (m->chunked || m->content_length > 0);
  if (r->streamed) {
    gh__http_parser_set_stream(&c->parser);
    if (max_body == 0)
      max_body = SIZE_MAX;
  }
  if (gh__http_parser_set_max_body(&c->parser, max_body) != 0) {
    status = c->parser.status;
    goto out;
  }
  c->deadline = lp->now + bto;
  if (m->expect_continue && !more_buffered && !r->streamed &&
      (m->chunked || m->content_length > 0)) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->ssl != NULL) {
      /* a blocked TLS record would have to be retried with these very
       * bytes before the response: on an idle connection's empty send
       * buffer it never blocks; if it does, give up the connection */
      if (gh__tls_write(c->ssl, cont, sizeof(cont) - 1) != (ssize_t)sizeof(cont) - 1)
        status = -1;
    } else {
      ssize_t w = send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)w; /* if it does not fit the client sends the body after its own timeout */
    }
  }
out:
  return status;
}

/* Feeds bytes. Returns 1 when a request was dispatched (the rest of data is
 * saved), 0 when all was consumed, -1 when the connection was answered or closed. */
static int feed(gh__loop_t *lp, gh__conn_t *c, const char *data, size_t len, size_t *ret_off)
{
  int ret = 0;
  size_t off = 0;
  while (off < len) {
    if (c->req == NULL) {
      c->req = gh__request_alloc(lp->srv);
      if (c->req == NULL) {
        conn_close(c);
        ret = -1;
        goto out;
      }
      gh__http_parser_begin(&c->parser, &c->req->msg);
      c->state = GH__CS_READING;
      c->deadline = lp->now + lp->srv->cfg.header_timeout_ms;
    }
    size_t used = 0;
    int r = gh__http_parser_feed(&c->parser, data + off, len - off, &used);
    off += used;
    if (r == GH__HTTP_HEADERS) {
      /* the parser pauses before the header block's final LF */
      int st = on_headers(lp, c, len - off > 1);
      if (st < 0) {
        conn_close(c);
        ret = -1;
        goto out;
      }
      if (st != 0) {
        io_reply_error(lp, c, st);
        ret = -1;
        goto out;
      }
      if (c->req->streamed) {
        ret = 1; /* dispatched before its body; the rest is saved */
        goto out;
      }
    } else if (r == GH__HTTP_DONE) {
      ret = 1;
      goto out;
    } else if (r == GH__HTTP_ERROR) {
      io_reply_error(lp, c, c->parser.status);
      ret = -1;
      goto out;
    } else if (used == 0) {
      break;
    }
  }
out:
  *ret_off = off;
  return ret;
}

static int save_pending(gh__conn_t *c, const char *data, size_t len)
{
  char *p = NULL;
  if (len > 0) {
    p = gh__malloc(len);
    if (p == NULL)
      return -ENOMEM;
    memmove(p, data, len);
  }
  free(c->pending);
  c->pending = p;
  c->pending_len = len;
  return 0;
}

static void io_input(gh__loop_t *lp, gh__conn_t *c)
{
  size_t off;
  if (c->pending != NULL) {
    int r = feed(lp, c, c->pending, c->pending_len, &off);
    if (r < 0)
      return;
    if (r == 1) {
      if (save_pending(c, c->pending + off, c->pending_len - off) != 0) {
        conn_close(c);
        return;
      }
      dispatch(lp, c);
      return;
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
  }
  for (;;) {
    ssize_t n;
    if (c->ssl != NULL) {
      /* a TLS read returns one record: read until OpenSSL wants the socket */
      n = gh__tls_read(c->ssl, lp->rbuf, lp->rbuf_size);
      if (n == GH__TLS_WANT_READ) {
        arm(c, EPOLLIN | EPOLLRDHUP);
        return;
      }
      if (n == GH__TLS_WANT_WRITE) {
        arm(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return;
      }
      if (n <= 0) {
        conn_close(c);
        return;
      }
    } else {
      n = recv(c->fd, lp->rbuf, lp->rbuf_size, 0);
    }
    if (n == 0) {
      conn_close(c);
      return;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        arm(c, EPOLLIN | EPOLLRDHUP);
      else
        conn_close(c);
      return;
    }
    int r = feed(lp, c, lp->rbuf, (size_t)n, &off);
    if (r < 0)
      return;
    if (r == 1) {
      if (off < (size_t)n && save_pending(c, lp->rbuf + off, (size_t)n - off) != 0) {
        conn_close(c);
        return;
      }
      dispatch(lp, c);
      return;
    }
    if (c->ssl == NULL && (size_t)n < lp->rbuf_size) {
      arm(c, EPOLLIN | EPOLLRDHUP);
      return;
    }
  }
}

static void io_linger(gh__loop_t *lp, gh__conn_t *c)
{
  for (;;) {
    ssize_t n = recv(c->fd, lp->rbuf, lp->rbuf_size, 0);
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      arm(c, EPOLLIN | EPOLLRDHUP);
    else
      conn_close(c);
    return;
  }
}

/* The canned answer to plain HTTP on a TLS port (the client reads it as
 * what it is; nginx does the same). */
static void answer_plain_http(gh__conn_t *c)
{
  static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 46\r\nConnection: close\r\n\r\n"
                            "400 Bad Request: plain HTTP sent to TLS port\r\n";
  ssize_t w = send(c->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
}

static void io_handshake(gh__loop_t *lp, gh__conn_t *c)
{
  char why[128], peer[64];
  int r = gh__tls_handshake(c->ssl, why, sizeof(why));
  if (r == GH__TLS_WANT_READ) {
    arm(c, EPOLLIN | EPOLLRDHUP);
  } else if (r == GH__TLS_WANT_WRITE) {
    arm(c, EPOLLOUT);
  } else if (r == 1) {
    c->info.flags |= GH_CONN_TLS;
    c->state = GH__CS_IDLE;
    c->deadline = lp->now + lp->srv->cfg.header_timeout_ms;
    io_input(lp, c);
  } else {
    bool plain = strcmp(why, "http request") == 0;
    gh__io_log(c->io, LOG_INFO, "tls: %s: handshake failed: %s%s", peer_text(c, peer, sizeof(peer)),
               why, plain ? " (plain HTTP sent to a TLS port)" : "");
    if (plain) {
      /* answer, then discard the rest of the request before closing, so
       * the client reads the answer instead of a reset */
      answer_plain_http(c);
      start_linger(c, lp->now);
      arm(c, EPOLLIN | EPOLLRDHUP);
    } else {
      conn_close(c);
    }
  }
}

void gh__conn_event(gh__loop_t *lp, gh__conn_t *c, uint32_t events)
{
  /* the CAS settles the event against the owner, the timer scan and a late
   * event for an earlier incarnation of the object (claim_event) */
  if (!claim_event(c))
    return;
  switch (c->state) {
  case GH__CS_IDLE:
  case GH__CS_READING:
    io_input(lp, c);
    break;
  case GH__CS_WRITING:
    if (events & (EPOLLERR | EPOLLHUP))
      conn_close(c);
    else
      io_write_step(lp, c);
    break;
  case GH__CS_LINGER:
    io_linger(lp, c);
    break;
  case GH__CS_HANDSHAKE:
    io_handshake(lp, c);
    break;
  default:
    conn_close(c);
    break;
  }
}

/* ---- accept -------------------------------------------------------------- */

static void refuse(int fd, gh_server_t *s, bool tls)
{
  char buf[256];
  if (tls) {
    close(fd); /* no handshake for a refused connection */
    return;
  }
  int n = snprintf(buf, sizeof(buf),
                   "HTTP/1.1 503 Service Unavailable\r\nServer: %s\r\nDate: %s\r\n"
                   "Content-Type: text/plain\r\nContent-Length: 21\r\nConnection: close\r\n\r\n"
                   "too many connections\n",
                   s->server_header, gh__http_date_now());
  if (n > 0) {
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
  }
  (void)shutdown(fd, SHUT_WR);
  close(fd);
}

/* Fills info. Returns 0, or -1 when the connection must be refused: a Unix
 * peer whose group list cannot be stored never gets GH_CONN_HAS_CRED with
 * a partial (empty) group list, which a credential check would trust. */
static int conn_setup_info(gh__conn_t *c, gh__listener_t *l)
{
  c->info.id = atomic_fetch_add(&c->srv->next_conn_id, 1);
  c->info.local_len = sizeof(c->info.local);
  if (l->addr.ss_family == AF_UNIX) {
    c->info.transport = GH_TRANSPORT_UNIX;
    c->info.flags |= GH_CONN_UNIX;
    c->info.local = l->addr;
    c->info.local_len = l->addr_len;
    struct ucred uc;
    socklen_t ul = sizeof(uc);
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0) {
      socklen_t gl = 0;
      if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &gl) < 0 && errno == ERANGE &&
          gl > 0) {
        c->groups = gh__malloc(gl);
        if (c->groups == NULL || getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &gl) != 0)
          return -1; /* fail closed */
        c->info.peer_groups = c->groups;
        c->info.n_peer_groups = gl / sizeof(gid_t);
      }
      c->info.peer_pid = uc.pid;
      c->info.peer_uid = uc.uid;
      c->info.peer_gid = uc.gid;
      c->info.flags |= GH_CONN_HAS_CRED;
    }
  } else {
    c->info.transport = GH_TRANSPORT_TCP;
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (getsockname(c->fd, (struct sockaddr *)&c->info.local, &c->info.local_len) != 0)
      c->info.local_len = 0;
  }
  return 0;
}

void gh__io_accept(gh__io_t *io, gh__listener_t *l)
{
  gh_server_t *s = io->srv;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* retried at the next scan */
        (void)epoll_ctl(gh__io_listen_epfd(io), EPOLL_CTL_DEL, l->fd, NULL);
        io->accept_paused = true;
      }
      break;
    }
    if (atomic_load(&s->n_conns) >= s->cfg.max_connections || atomic_load(&s->stopping)) {
      refuse(fd, s, l->tls != NULL);
      continue;
    }
    gh__conn_t *c = conn_alloc(s); /* owner BUSY: ours until the arm below */
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->out_fd = -1;
    c->io = io;
    c->srv = s;
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    gh__http_parser_init(&c->parser, &s->limits);
    memcpy(&c->info.peer, &peer, plen);
    c->info.peer_len = plen;
    if (conn_setup_info(c, l) != 0) {
      char pt[64];
      gh__io_log(io, LOG_WARNING, "%s: peer credentials unavailable, connection refused",
                 peer_text(c, pt, sizeof(pt)));
      conn_free(c);
      continue;
    }
    c->state = GH__CS_IDLE;
    c->deadline = io->now + s->cfg.header_timeout_ms;
    if (l->tls != NULL) {
      unsigned hto = gh__tls_listener_handshake_timeout(l->tls);
      c->tls_store = gh__tls_listener_get_store(l->tls);
      c->ssl = gh__tls_ssl_new(c->tls_store, fd);
      if (c->ssl == NULL) {
        conn_free(c);
        continue;
      }
      c->state = GH__CS_HANDSHAKE;
      c->deadline = io->now + (hto ? hto : s->cfg.header_timeout_ms);
    }
    /* registered (an event before the release finds it owned: missed),
     * listed, then released like any owner */
    struct epoll_event ev = {.events = EV_ADD, .data.ptr = c};
    if (epoll_ctl(s->cepfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      conn_free(c);
      continue;
    }
    atomic_fetch_add(&s->n_conns, 1);
    gh__metrics_conn(1);
    gh__metrics_add(GH__M_CONNECTIONS);
    pthread_mutex_lock(&io->lock);
    c->next = io->conns;
    if (io->conns != NULL)
      io->conns->prev = c;
    io->conns = c;
    pthread_mutex_unlock(&io->lock);
    arm(c, EPOLLIN | EPOLLRDHUP);
  }
}

/* ---- timers -------------------------------------------------------------- */

/* Claims, under the list lock, the connections that need the scan: expired
 * deadlines, and while stopping every connection at rest. A connection in a
 * worker's or another event thread's hands is skipped (its owner re-arms it
 * and the next scan sees it). */
void gh__io_scan(gh__io_t *io)
{
  gh_server_t *s = io->srv;
  bool stopping = atomic_load(&s->stopping);
  gh__conn_t *claimed = NULL;
  gh__loop_t *lp = &io->loop;
  lp->now = io->now;
  bool due = false;
  pthread_mutex_lock(&io->lock);
  for (gh__conn_t *c = io->conns; c != NULL; c = c->next) {
    int own = atomic_load_explicit(&c->owner, memory_order_relaxed);
    if (own == GH__OWN_WORKER && atomic_load_explicit(&s->waits_ok, memory_order_acquire)) {
      /* a request waiting on a descriptor (gh_request_wait_fd): at its
       * deadline, or cut at shutdown, a worker calls it back */
      due |= gh__conn_wait_due(c, io->now, atomic_load_explicit(&s->cut, memory_order_relaxed));
      continue;
    }
    if (own != GH__OWN_IO)
      continue;
    if (!stopping && io->now < atomic_load_explicit(&c->deadline, memory_order_relaxed))
      continue;
    if (!claim(c))
      continue;
    c->scan_next = claimed;
    claimed = c;
  }
  pthread_mutex_unlock(&io->lock);
  if (due)
    gh__conn_due_signal(s);
  gh__server_spare_check(s);
  gh__conn_t *next;
  for (gh__conn_t *c = claimed; c != NULL; c = next) {
    next = c->scan_next;
    bool started =
        c->state == GH__CS_READING && c->req != NULL && gh__http_parser_started(&c->parser);
    if (stopping && (c->state == GH__CS_IDLE || c->state == GH__CS_HANDSHAKE ||
                     (c->state == GH__CS_READING && !started && c->pending == NULL))) {
      conn_close(c);
      continue;
    }
    if (io->now < c->deadline) {
      arm(c, c->armed); /* nothing due: back at rest, events reported again */
      continue;
    }
    if (c->state == GH__CS_HANDSHAKE) {
      char peer[64];
      gh__io_log(io, LOG_INFO, "tls: %s: handshake timeout", peer_text(c, peer, sizeof(peer)));
      conn_close(c);
    } else if (started)
      io_reply_error(lp, c, 408);
    else
      conn_close(c);
  }
  if (io->accept_paused && !stopping && !io->listeners_dropped) {
    io->accept_paused = false;
    for (unsigned i = 0; i < s->n_listeners; i++) {
      struct epoll_event lev = {.events = EPOLLIN | (s->n_ios > 1 ? EPOLLEXCLUSIVE : 0),
                                .data.ptr = s->listeners[i]};
      (void)epoll_ctl(gh__io_listen_epfd(io), EPOLL_CTL_ADD, s->listeners[i]->fd, &lev);
    }
  }
}

/* Queue mode: processes up to max ready connection events. */
void gh__loop_harvest(gh__loop_t *lp, int timeout_ms, int max)
{
  struct epoll_event evs[64];
  if (max > 64)
    max = 64;
  int n = epoll_wait(lp->srv->cepfd, evs, max, timeout_ms);
  if (n <= 0)
    return;
  lp->now = gh__now_ms();
  for (int i = 0; i < n; i++) {
    uint8_t kind;
    if (evs[i].data.u64 >> 48) {
      /* a wait's event, taken while gh_server_run_workers switched to
       * inline workers (this thread had not yet dropped the connection
       * epoll): a worker calls it back */
      gh__conn_wait_defer(lp->srv, evs[i].data.u64);
      continue;
    }
    if (evs[i].data.u64 & GH__SLOT_BIT) {
      gh__wait_slot_event(lp->srv, evs[i].data.u64, true); /* the same window, a kept fd */
      continue;
    }
    kind = *(uint8_t *)evs[i].data.ptr;
    if (kind == GH__KIND_CONN)
      gh__conn_event(lp, evs[i].data.ptr, evs[i].events);
    else if (kind == GH__KIND_DUE)
      gh__conn_due_signal_rearm(lp->srv); /* the same window: the workers' one-shot event */
  }
}

void *gh__io_main(void *arg)
{
  gh__io_t *io = arg;
  gh_server_t *s = io->srv;
  gh__loop_t *lp = &io->loop;
  struct epoll_event evs[64];
  io->now = gh__now_ms();
  io->next_scan = io->now + GH__SCAN_MS;
  while (!atomic_load(&io->exit)) {
    int timeout = io->next_scan > io->now ? (int)(io->next_scan - io->now) : 0;
    if (timeout > GH__SPARE_MS &&
        (atomic_load_explicit(&s->n_parked, memory_order_relaxed) > 0 ||
         atomic_load_explicit(&s->batching, memory_order_relaxed)) &&
        atomic_load_explicit(&s->last_busy_ms, memory_order_relaxed) + GH__SPARE_IDLE_MS > io->now)
      timeout = GH__SPARE_MS; /* spare workers and event batches, while busy: server.c, batch.c */
    int n = epoll_wait(io->epfd, evs, 64, timeout);
    io->now = gh__now_ms();
    bool woken = false;
    for (int i = 0; i < n; i++) {
      uint8_t kind = *(uint8_t *)evs[i].data.ptr;
      if (kind == GH__KIND_CEP) {
        /* queue mode: this thread reads and parses, workers get the queue */
        if (io->cep_nested && !atomic_load(&s->inline_workers))
          gh__loop_harvest(lp, 0, 64);
      } else if (kind == GH__KIND_LISTENER) {
        if (!atomic_load(&s->stopping))
          gh__io_accept(io, evs[i].data.ptr);
      } else {
        uint64_t v;
        while (read(io->wakefd, &v, sizeof(v)) > 0)
          ;
        woken = true;
      }
    }
    if (lp->batch_n > 0) {
      gh__queue_push_batch(s, lp->batch_head, lp->batch_tail, lp->batch_n);
      lp->batch_head = lp->batch_tail = NULL;
      lp->batch_n = 0;
    }
    if (io->cep_nested && atomic_load(&s->inline_workers)) {
      /* gh_server_run_workers() started inline workers: they wait on the
       * connection epoll themselves from now on */
      (void)epoll_ctl(io->epfd, EPOLL_CTL_DEL, s->cepfd, NULL);
      io->cep_nested = false;
    }
    if (!io->listeners_dropped && atomic_load(&s->stopping)) {
      /* the shutting-down thread frees the listeners once every I/O thread let go */
      for (unsigned i = 0; i < s->n_listeners; i++)
        (void)epoll_ctl(io->epfd, EPOLL_CTL_DEL, s->listeners[i]->fd, NULL);
      io->listeners_dropped = true;
      atomic_fetch_add(&s->ios_dropped_listeners, 1);
    }
    if (woken || io->now >= io->next_scan) {
      gh__io_scan(io);
      io->next_scan = io->now + GH__SCAN_MS;
    } else {
      gh__server_spare_check(s);
    }
    gh__batch_check(s, io->now);
  }
  return NULL;
}

/* Shutdown past its grace: connections in application hands are shut down
 * (not closed: their requests hold them) so that a handler blocked on one
 * (a streamed body, an upgraded stream waiting without timeout) returns. */
void gh__io_cut_worker_conns(gh__io_t *io)
{
  pthread_mutex_lock(&io->lock);
  for (gh__conn_t *c = io->conns; c != NULL; c = c->next)
    if (atomic_load_explicit(&c->owner, memory_order_acquire) == GH__OWN_WORKER)
      (void)shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&io->lock);
}

/* Every event thread has stopped (gh_server_shutdown): closes what is at
 * rest; connections in application hands (a PENDING request) are shut down
 * so their writes fail, and closed by gh_server_free(). */
void gh__io_stop_conns(gh__io_t *io)
{
  gh__conn_t *claimed = NULL;
  pthread_mutex_lock(&io->lock);
  for (gh__conn_t *c = io->conns; c != NULL; c = c->next) {
    if (claim(c)) {
      c->scan_next = claimed;
      claimed = c;
    } else {
      (void)shutdown(c->fd, SHUT_RDWR);
    }
  }
  pthread_mutex_unlock(&io->lock);
  gh__conn_t *next;
  for (gh__conn_t *c = claimed; c != NULL; c = next) {
    next = c->scan_next;
    conn_close(c);
  }
}

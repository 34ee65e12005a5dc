/* proxy_stream.c: bodies streamed upstream, bounded waits, 1xx relayed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <gatehouse/error.h>

#include "proxy.h"

bool proxy_client_gone(proxy_req_t *q)
{
  if (!q->client_failed && gh_http_context_client_gone(q->ctx) == 1)
    q->client_failed = true;
  return q->client_failed;
}

int proxy_wait_fd(proxy_req_t *q, int fd, short events, uint64_t timeout_ms)
{
  int64_t deadline = proxy_now_ms() + (int64_t)timeout_ms;
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = events};
    int64_t left = deadline - proxy_now_ms();
    int r;
    if (left <= 0)
      return 0;
    r = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
    if (r > 0)
      return pf.revents;
    if (r < 0 && errno != EINTR)
      return -errno;
    if (r == 0 && proxy_client_gone(q)) /* checked on ticks: no syscall per wait */
      return -ECANCELED;
  }
}

void proxy_set_read_tick(int fd, uint64_t read_ms)
{
  uint64_t tick = read_ms < 1000 ? read_ms : 1000;
  struct timeval tv = {.tv_sec = (time_t)(tick / 1000),
                       .tv_usec = (suseconds_t)(tick % 1000) * 1000};
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK))
    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

int proxy_send_nowait(int fd, const char **buf, size_t *len)
{
  while (*len > 0) {
    ssize_t w = send(fd, *buf, *len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      *buf += w;
      *len -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      return 1;
    } else if (w < 0 && errno != EINTR) {
      return -errno;
    }
  }
  return 0;
}

int proxy_send_all(proxy_req_t *q, const char *buf, size_t len, bool watch_answer)
{
  int r;
  while ((r = proxy_send_nowait(q->fd, &buf, &len)) == 1) {
    r = proxy_wait_fd(q, q->fd, (short)(POLLOUT | (watch_answer ? POLLIN : 0)), q->read_ms);
    if (r <= 0)
      return r == 0 ? -ETIMEDOUT : r;
    if ((r & POLLIN) && !(r & POLLOUT))
      return -EALREADY; /* the upstream answers before taking the whole body */
  }
  return r;
}

/* The status for a client body that could not be read. */
static int body_error(proxy_req_t *q, ssize_t err)
{
  switch ((int)err) {
  case GH_ECLOSED:
    q->client_failed = true;
    return -ECANCELED;
  case GH_ETIMEOUT:
    return 408;
  case GH_ELIMIT:
    return 413;
  case GH_EPARSE:
    return 400;
  default:
    return 500;
  }
}

int proxy_send_body(proxy_req_t *q, bool chunked)
{
  char *buf = q->io;
  int ret = 0;
  ssize_t n;
  while (ret == 0 && (n = gh_http_request_read_body(q->req, buf, PROXY_IO_BUF)) > 0) {
    char sz[24];
    if (chunked) {
      snprintf(sz, sizeof(sz), "%zx\r\n", (size_t)n);
      ret = proxy_send_all(q, sz, strlen(sz), true);
    }
    if (ret == 0)
      ret = proxy_send_all(q, buf, (size_t)n, true);
    if (ret == 0 && chunked)
      ret = proxy_send_all(q, "\r\n", 2, true);
  }
  if (ret == 0 && n < 0)
    ret = body_error(q, n);
  if (ret == 0 && chunked)
    ret = proxy_send_all(q, "0\r\n\r\n", 5, true);
  return ret;
}

int proxy_relay_interim(proxy_req_t *q, proxy_resp_t *r)
{
  const char *hdrs[2 * 32];
  size_t n = 0;
  if (r->status == 100)
    return 0; /* Expect is answered by the server itself */
  for (size_t i = 0; i < r->n && n < 32; i++)
    if (!(r->f[i].kind & (PROXY_F_HOP | PROXY_F_CONN_NAMED))) {
      hdrs[2 * n] = r->f[i].name;
      hdrs[2 * n + 1] = r->f[i].value;
      n++;
    }
  return gh_http_response_send_interim(q->resp, r->status, hdrs, n) == GH_ECLOSED ? -1 : 0;
}

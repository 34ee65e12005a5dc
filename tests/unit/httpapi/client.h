/* client.h: loopback HTTP client and clock helpers for the httpapi unit tests. */
#ifndef GH_TEST_HTTPAPI_CLIENT_H
#define GH_TEST_HTTPAPI_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A TCP connection to 127.0.0.1:port; rcvbuf > 0 sets SO_RCVBUF first (the
 * window stays small: a slow client). */
static inline int tc_connect(int port, int rcvbuf)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (rcvbuf > 0)
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* Sends "GET path" (HTTP/1.1, keep-alive). */
static inline void tc_send_get(int fd, const char *path)
{
  char req[256];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path);
  assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

static inline uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Reads from fd into buf (NUL-terminated) until it holds n responses
 * ending in "<end>" (the test handlers' marker); false on EOF, a full
 * buffer or ms passing first. */
static inline bool tc_read_ends(int fd, int n_want, int ms, char *buf, size_t cap)
{
  size_t have = 0;
  uint64_t end = now_ms() + (uint64_t)ms;
  buf[0] = '\0';
  for (;;) {
    int seen = 0;
    for (const char *p = buf; (p = strstr(p, "<end>")) != NULL; p += 5)
      seen++;
    if (seen >= n_want)
      return true;
    uint64_t now = now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (now >= end || have >= cap - 1 || poll(&p, 1, (int)(end - now)) <= 0)
      return false;
    ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
    if (n <= 0)
      return false;
    have += (size_t)n;
    buf[have] = '\0';
  }
}

#endif

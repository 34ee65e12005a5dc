/* test_listener.c: unit tests for listen-address parsing and listener sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "httpapi/internal.h"
#include "httpapi/listener.h"

static void test_parse(void **state)
{
  (void)state;
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(gh__listener_parse("127.0.0.1:8080", &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
  assert_int_equal(gh__listener_parse("[::1]:443", &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
  assert_int_equal(gh__listener_parse(":80", &ss, &len), 0);
  assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
  assert_int_equal(gh__listener_parse("unix:/run/x.sock", &ss, &len), 0);
  assert_int_equal(ss.ss_family, AF_UNIX);
  assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/run/x.sock");
  assert_int_equal(gh__listener_parse("localhost:1", &ss, &len), 0);

  assert_int_equal(gh__listener_parse("127.0.0.1", &ss, &len), GH_EPARSE);
  assert_int_equal(gh__listener_parse("127.0.0.1:99999", &ss, &len), GH_EPARSE);
  assert_int_equal(gh__listener_parse("127.0.0.1:8x", &ss, &len), GH_EPARSE);
  assert_int_equal(gh__listener_parse("[::1:80", &ss, &len), GH_EPARSE);
  assert_int_equal(gh__listener_parse("::1:80", &ss, &len), GH_EPARSE);
  assert_int_equal(gh__listener_parse("unix:relative", &ss, &len), GH_EPARSE);
  char longp[200] = "unix:/";
  memset(longp + 6, 'a', 150);
  assert_int_equal(gh__listener_parse(longp, &ss, &len), -ENAMETOOLONG);
}

static void test_open(void **state)
{
  (void)state;
  gh__listener_t *l = NULL;
  assert_int_equal(gh__listener_open("127.0.0.1:0", 1, &l), 0);
  assert_true(ntohs(((struct sockaddr_in *)&l->addr)->sin_port) != 0);
  assert_true(fcntl(l->fd, F_GETFD) & FD_CLOEXEC);
  assert_true(fcntl(l->fd, F_GETFL) & O_NONBLOCK);
  gh__listener_close(l);

  char path[] = "/tmp/gh-test-listener-XXXXXX";
  int tfd = mkstemp(path);
  assert_true(tfd >= 0);
  close(tfd);
  /* a regular file at the path is not removed: bind fails */
  char addr[128];
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(gh__listener_open(addr, 1, &l), -EADDRINUSE);
  unlink(path);
  assert_int_equal(gh__listener_open(addr, 1, &l), 0);
  gh__listener_close(l);
  /* a stale socket file is replaced */
  assert_int_equal(gh__listener_open(addr, 1, &l), 0);
  gh__listener_t *l2 = NULL;
  close(l->fd);
  l->fd = -1;
  free(l->unix_path);
  l->unix_path = NULL;
  gh__listener_close(l);
  assert_int_equal(gh__listener_open(addr, 1, &l2), 0);
  gh__listener_close(l2);
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);
}

/* Worker processes: n SO_REUSEPORT sockets on one (ephemeral) port; a
 * process keeps its own and closes the rest; connections to the port reach
 * each copy; a unix listener stays one socket whose file a worker process
 * never unlinks. */
static void test_copies(void **state)
{
  (void)state;
  gh__listener_t *l = NULL;
  assert_int_equal(gh__listener_open("127.0.0.1:0", 3, &l), 0);
  assert_int_equal(l->n_copies, 3);
  assert_int_equal(l->copies[0], l->fd);
  unsigned short port = ntohs(((struct sockaddr_in *)&l->addr)->sin_port);
  assert_true(port != 0);
  for (unsigned i = 0; i < 3; i++) {
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int one = 0;
    socklen_t ol = sizeof(one);
    assert_int_equal(getsockname(l->copies[i], (struct sockaddr *)&a, &al), 0);
    assert_int_equal(ntohs(a.sin_port), port);
    assert_int_equal(getsockopt(l->copies[i], SOL_SOCKET, SO_REUSEPORT, &one, &ol), 0);
    assert_int_equal(one, 1);
    assert_true(fcntl(l->copies[i], F_GETFD) & FD_CLOEXEC);
  }
  /* some of 64 connections reach every copy (the kernel hashes them) */
  int cs[64], seen[3] = { 0, 0, 0 };
  for (unsigned k = 0; k < 64; k++) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cs[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(cs[k], (struct sockaddr *)&a, sizeof(a)), 0);
  }
  for (unsigned i = 0; i < 3; i++) {
    int c;
    while ((c = accept4(l->copies[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
      seen[i]++;
      close(c);
    }
  }
  assert_int_equal(seen[0] + seen[1] + seen[2], 64);
  assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
  for (unsigned k = 0; k < 64; k++)
    close(cs[k]);
  int keep = l->copies[1], other = l->copies[2];
  gh__listener_keep_copy(l, 1);
  assert_int_equal(l->fd, keep);
  assert_int_equal(l->n_copies, 0);
  assert_true(fcntl(other, F_GETFD) == -1); /* closed */
  assert_true(fcntl(keep, F_GETFD) != -1);
  gh__listener_close(l);

  char path[] = "/tmp/gh-test-listener-XXXXXX";
  int tfd = mkstemp(path);
  close(tfd);
  unlink(path);
  char addr[128];
  snprintf(addr, sizeof(addr), "unix:%s", path);
  assert_int_equal(gh__listener_open(addr, 3, &l), 0);
  assert_int_equal(l->n_copies, 0); /* one shared socket */
  gh__listener_keep_copy(l, 2);
  gh__listener_close(l);
  struct stat st;
  assert_int_equal(stat(path, &st), 0); /* still there: not the worker's to remove */
  unlink(path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse),
    cmocka_unit_test(test_open),
    cmocka_unit_test(test_copies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

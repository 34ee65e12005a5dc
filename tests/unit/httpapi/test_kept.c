/* test_kept.c: gh_request_wait_kept (ABI 2.4): a descriptor kept in the connection epoll across waits; answers before the wait, after a timed-out wait, and a new descriptor on the same number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>

#include "client.h"

static gh_server_t *srv;
static int sv[2] = {-1, -1}; /* sv[0] is waited on by the server, sv[1] is the test's */
static _Atomic uint64_t key; /* the wait's key for sv[0] */
static atomic_int timeout_ms;
static atomic_bool prewrite; /* the handler answers itself before it waits */
static atomic_int armed;     /* handlers that asked for their wait */

/* ---- server side ---------------------------------------------------- */

static void on_ready(gh_request_t *r, int result, void *arg)
{
  char data[64] = "", body[128];
  ssize_t n = result == GH_WAIT_READY ? recv(sv[0], data, sizeof(data) - 1, MSG_DONTWAIT) : 0;
  (void)arg;
  if (result == GH_WAIT_READY && n < 0) {
    /* a spurious wake-up (allowed): wait again */
    if (gh_request_wait_kept(r, sv[0], atomic_load(&key), GH_WAIT_IN, atomic_load(&timeout_ms),
                             on_ready, NULL) == 0)
      return;
  }
  data[n > 0 ? n : 0] = '\0';
  int len = snprintf(body, sizeof(body), "%s:%s<end>",
                     result == GH_WAIT_READY ? "ready" : "timeout", data);
  (void)gh_response_send(r, body, (size_t)len, 0);
  (void)gh_request_complete(r);
}

static void handler(gh_request_t *r, void *arg)
{
  (void)arg;
  if (atomic_load(&prewrite))
    assert_int_equal(send(sv[1], "pre", 3, 0), 3);
  int e = gh_request_wait_kept(r, sv[0], atomic_load(&key), GH_WAIT_IN, atomic_load(&timeout_ms),
                               on_ready, NULL);
  atomic_fetch_add(&armed, 1);
  if (e != 0) {
    (void)gh_response_send(r, "error<end>", 10, 0);
    (void)gh_request_complete(r);
  }
}

static int server(void)
{
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  atomic_store(&key, 1);
  atomic_store(&timeout_ms, 3000);
  atomic_store(&prewrite, false);
  atomic_store(&armed, 0);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, NULL), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, 2, handler, NULL), 0);
  assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int teardown(void **state)
{
  (void)state;
  if (srv != NULL) {
    (void)gh_server_shutdown(srv, 1000);
    gh_server_free(srv);
  }
  srv = NULL;
  for (int i = 0; i < 2; i++)
    if (sv[i] >= 0)
      close(sv[i]);
  sv[0] = sv[1] = -1;
  return 0;
}

/* ---- client side ---------------------------------------------------- */

/* The body of one response ("ready:x", "timeout:"), into out; false when
 * none came within ms. */
static bool response(int fd, int ms, char *out, size_t outlen)
{
  char buf[2048], *e, *body;
  if (!tc_read_ends(fd, 1, ms, buf, sizeof(buf)))
    return false;
  e = strstr(buf, "<end>");
  body = strstr(buf, "\r\n\r\n");
  *e = '\0';
  snprintf(out, outlen, "%s", body != NULL && body < e ? body + 4 : "");
  return true;
}

/* One request: the handler waits; after delay_ms the test writes data (if
 * any); the answer and how long it took. */
static uint64_t request(int c, const char *data, int delay_ms, char *out, size_t outlen)
{
  int before = atomic_load(&armed);
  uint64_t t0 = now_ms();
  tc_send_get(c, "/k");
  while (atomic_load(&armed) == before && now_ms() - t0 < 2000)
    sleep_ms(1);
  if (data != NULL) {
    sleep_ms(delay_ms);
    assert_int_equal(send(sv[1], data, strlen(data), 0), (ssize_t)strlen(data));
  }
  assert_true(response(c, 5000, out, outlen));
  return now_ms() - t0;
}

/* ---- tests ---------------------------------------------------------- */

/* Twenty waits on one kept descriptor, each answered after it was armed. */
static void test_rewaits(void **state)
{
  (void)state;
  char out[64];
  int c = tc_connect(server(), 0);
  for (int i = 0; i < 20; i++) {
    (void)request(c, "x", 5, out, sizeof(out));
    assert_string_equal(out, "ready:x");
  }
  close(c);
}

/* The answer is there before the wait is stored (its event found no
 * waiter: `missed`): the wait is called back at once, not at its timeout. */
static void test_answer_before_wait(void **state)
{
  (void)state;
  char out[64];
  int c = tc_connect(server(), 0);
  (void)request(c, "x", 5, out, sizeof(out)); /* registered */
  assert_string_equal(out, "ready:x");
  atomic_store(&prewrite, true);
  for (int i = 0; i < 10; i++) {
    uint64_t took = request(c, NULL, 0, out, sizeof(out));
    assert_string_equal(out, "ready:pre");
    assert_true(took < 1000);
  }
  close(c);
}

/* A wait that timed out leaves the slot's cookie stale; data that comes
 * after it (no waiter) is reported to the next wait at once. */
static void test_after_timeout(void **state)
{
  (void)state;
  char out[64];
  int c = tc_connect(server(), 0);
  atomic_store(&timeout_ms, 300);
  (void)request(c, NULL, 0, out, sizeof(out));
  assert_string_equal(out, "timeout:");
  assert_int_equal(send(sv[1], "late", 4, 0), 4);
  sleep_ms(50); /* its event comes and finds nobody */
  atomic_store(&timeout_ms, 3000);
  uint64_t took = request(c, NULL, 0, out, sizeof(out));
  assert_string_equal(out, "ready:late");
  assert_true(took < 1000);
  close(c);
}

/* The descriptor is closed and another takes its number: with a new key
 * it is registered anew and its wait is called back. */
static void test_new_descriptor_same_number(void **state)
{
  (void)state;
  char out[64];
  int c = tc_connect(server(), 0), nv[2];
  (void)request(c, "a", 5, out, sizeof(out));
  assert_string_equal(out, "ready:a");
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, nv), 0);
  assert_int_equal(dup3(nv[0], sv[0], O_CLOEXEC), sv[0]); /* the old one is closed */
  close(nv[0]);
  close(sv[1]);
  sv[1] = nv[1];
  atomic_store(&key, 2);
  for (int i = 0; i < 3; i++) {
    uint64_t took = request(c, "b", 5, out, sizeof(out));
    assert_string_equal(out, "ready:b");
    assert_true(took < 1000);
  }
  close(c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_rewaits, teardown),
      cmocka_unit_test_teardown(test_answer_before_wait, teardown),
      cmocka_unit_test_teardown(test_after_timeout, teardown),
      cmocka_unit_test_teardown(test_new_descriptor_same_number, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

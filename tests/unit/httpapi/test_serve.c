/* test_serve.c: gh_server_serve (ABI 2.5): the caller's thread alone accepts and runs every request, returns when its fd is readable or its time is up, runs waits and the timer scan, and shuts down on the same thread with requests in flight finishing. */
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
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>

#include "client.h"

static gh_server_t *srv;
static int port;
static int pfd[2] = {-1, -1}; /* the caller's fd: the test writes pfd[1] */
static int sv[2] = {-1, -1};  /* /w waits on sv[0]; the test writes sv[1] */
static pthread_t main_thread;
static atomic_int off_thread; /* requests whose handler ran on another thread */
static atomic_int handled;

/* ---- server side ---------------------------------------------------- */

static void answer(gh_request_t *r, const char *text)
{
  char body[128];
  int len = snprintf(body, sizeof(body), "%s<end>", text);
  (void)gh_response_send(r, body, (size_t)len, 0);
  (void)gh_request_complete(r);
}

static void on_ready(gh_request_t *r, int result, void *arg)
{
  char data[32] = "";
  (void)arg;
  if (!pthread_equal(pthread_self(), main_thread))
    atomic_fetch_add(&off_thread, 1);
  ssize_t n = result == GH_WAIT_READY ? recv(sv[0], data, sizeof(data) - 1, MSG_DONTWAIT) : 0;
  if (result == GH_WAIT_READY && n < 0 &&
      gh_request_wait_fd(r, sv[0], GH_WAIT_IN, 600, on_ready, NULL) == 0)
    return; /* a spurious wake-up: wait again */
  answer(r, result == GH_WAIT_READY ? "ready" : "timeout");
}

static void *complete_later(void *arg)
{
  sleep_ms(300);
  answer(arg, "late");
  return NULL;
}

static void handler(gh_request_t *r, void *arg)
{
  const char *path = gh_request_get_path(r);
  (void)arg;
  atomic_fetch_add(&handled, 1);
  if (!pthread_equal(pthread_self(), main_thread))
    atomic_fetch_add(&off_thread, 1);
  if (strcmp(path, "/w") == 0) {
    /* waits on sv[0] (600 ms at most): this thread serves others meanwhile */
    if (gh_request_wait_fd(r, sv[0], GH_WAIT_IN, 600, on_ready, NULL) != 0)
      answer(r, "error");
  } else if (strcmp(path, "/late") == 0) {
    /* completed by another thread 300 ms later */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, complete_later, r), 0);
    pthread_detach(th);
  } else {
    answer(r, path);
  }
}

static int setup(void **state)
{
  struct sockaddr_storage ss;
  socklen_t len;
  (void)state;
  main_thread = pthread_self();
  atomic_store(&off_thread, 0);
  atomic_store(&handled, 0);
  assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, NULL), 0);
  assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  if (srv != NULL) {
    (void)gh_server_shutdown(srv, 1000);
    gh_server_free(srv);
  }
  srv = NULL;
  for (int i = 0; i < 2; i++) {
    if (pfd[i] >= 0)
      close(pfd[i]);
    if (sv[i] >= 0)
      close(sv[i]);
    pfd[i] = sv[i] = -1;
  }
  return 0;
}

/* ---- client side ---------------------------------------------------- */

typedef struct {
  const char *paths[4];
  int n;
  int write_sv_after_ms; /* > 0: writes sv[1] that long after the requests */
  bool stop;             /* writes the caller's fd once the answers came */
  char got[1024];
  bool ok;
} client_t;

/* Sends the paths on one keep-alive connection, reads the n answers. */
static void *client_main(void *arg)
{
  client_t *c = arg;
  int fd = tc_connect(port, 0);
  for (int i = 0; i < c->n; i++)
    tc_send_get(fd, c->paths[i]);
  if (c->write_sv_after_ms > 0) {
    sleep_ms(c->write_sv_after_ms);
    assert_int_equal(send(sv[1], "x", 1, 0), 1);
  }
  c->ok = tc_read_ends(fd, c->n, 5000, c->got, sizeof(c->got));
  close(fd);
  if (c->stop)
    assert_int_equal(write(pfd[1], "s", 1), 1);
  return NULL;
}

/* Serves until the client is done (it writes the caller's fd). */
static void serve_client(client_t *c)
{
  pthread_t th;
  c->stop = true;
  assert_int_equal(pthread_create(&th, NULL, client_main, c), 0);
  assert_int_equal(gh_server_serve(srv, handler, NULL, pfd[0], 10000), 1);
  pthread_join(th, NULL);
  char b;
  assert_int_equal(read(pfd[0], &b, 1), 1);
}

/* ---- tests ------------------------------------------------------------ */

/* Requests run on the calling thread; serve returns 1 when its fd is
 * readable, and serves again on the next call. */
static void test_requests_on_the_calling_thread(void **state)
{
  client_t a = {.paths = {"/a", "/b", "/c"}, .n = 3};
  client_t b = {.paths = {"/d"}, .n = 1};
  (void)state;
  serve_client(&a);
  assert_true(a.ok);
  const char *p = strstr(a.got, "/a<end>");
  assert_non_null(p);
  assert_non_null(strstr(p, "/b<end>"));
  assert_non_null(strstr(strstr(p, "/b<end>"), "/c<end>"));
  serve_client(&b); /* a second call goes on serving */
  assert_true(b.ok);
  assert_non_null(strstr(b.got, "/d<end>"));
  assert_int_equal(atomic_load(&handled), 4);
  assert_int_equal(atomic_load(&off_thread), 0);
}

/* No event: serve returns 0 once timeout_ms passed (the scan's 250 ms
 * tick does not end it early); 0 returns at once. */
static void test_timeout(void **state)
{
  (void)state;
  uint64_t t0 = now_ms();
  assert_int_equal(gh_server_serve(srv, handler, NULL, -1, 400), 0);
  uint64_t took = now_ms() - t0;
  assert_true(took >= 390);
  assert_true(took < 2000);
  t0 = now_ms();
  assert_int_equal(gh_server_serve(srv, handler, NULL, pfd[0], 0), 0);
  assert_true(now_ms() - t0 < 200);
}

/* A wait (gh_request_wait_fd) is called back on the calling thread when
 * its fd is readable, and at its deadline by the timer scan; other
 * connections are served while it waits. */
static void test_waits(void **state)
{
  client_t w = {.paths = {"/w"}, .n = 1, .write_sv_after_ms = 200};
  (void)state;
  serve_client(&w);
  assert_true(w.ok);
  assert_non_null(strstr(w.got, "ready<end>"));
  client_t t = {.paths = {"/w", "/after"}, .n = 2}; /* nothing written: timeout */
  uint64_t t0 = now_ms();
  serve_client(&t);
  assert_true(t.ok);
  assert_non_null(strstr(t.got, "timeout<end>"));
  assert_non_null(strstr(t.got, "/after<end>"));
  assert_true(now_ms() - t0 >= 550);
  assert_int_equal(atomic_load(&off_thread), 0);
}

static void *other_thread(void *arg)
{
  int *rc = arg;
  rc[0] = gh_server_serve(srv, handler, NULL, -1, 0);
  rc[1] = gh_server_shutdown(srv, 0);
  return NULL;
}

/* Served alone: the threaded start and workers are refused, bad arguments
 * too, and another thread may neither serve nor shut down; after shutdown
 * serve says so. */
static void test_states(void **state)
{
  int rc[2] = {0, 0};
  pthread_t th;
  (void)state;
  assert_int_equal(gh_server_serve(srv, NULL, NULL, -1, 0), -EINVAL);
  assert_int_equal(gh_server_serve(srv, handler, NULL, -2, 0), -EINVAL);
  assert_int_equal(gh_server_serve(srv, handler, NULL, -1, 0), 0);
  assert_int_equal(gh_server_start(srv), GH_ESTATE);
  assert_int_equal(gh_server_run_workers(srv, 1, handler, NULL), GH_ESTATE);
  assert_int_equal(pthread_create(&th, NULL, other_thread, rc), 0);
  pthread_join(th, NULL);
  assert_int_equal(rc[0], GH_ESTATE);
  assert_int_equal(rc[1], GH_ESTATE);
  client_t a = {.paths = {"/still"}, .n = 1}; /* still served */
  serve_client(&a);
  assert_true(a.ok);
  assert_int_equal(gh_server_shutdown(srv, 100), 0);
  assert_int_equal(gh_server_serve(srv, handler, NULL, -1, 0), GH_ESHUTDOWN);
}

/* A threaded server cannot be served alone. */
static void test_threaded_refused(void **state)
{
  (void)state;
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_serve(srv, handler, NULL, -1, 0), GH_ESTATE);
}

typedef struct {
  char got[256];
  bool ok, eof;
} late_t;

static void *late_client(void *arg)
{
  late_t *l = arg;
  int fd = tc_connect(port, 0);
  tc_send_get(fd, "/late");
  sleep_ms(50);
  assert_int_equal(write(pfd[1], "s", 1), 1); /* the caller stops while /late runs */
  l->ok = tc_read_ends(fd, 1, 5000, l->got, sizeof(l->got));
  char b;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  l->eof = poll(&p, 1, 3000) == 1 && recv(fd, &b, 1, 0) == 0; /* then closed */
  close(fd);
  return NULL;
}

/* Shutdown on the serving thread: a request in flight (completed by
 * another thread later) finishes within the grace, then its keep-alive
 * connection is closed; serve afterwards is GH_ESHUTDOWN. */
static void test_shutdown_finishes_requests(void **state)
{
  late_t l = {0};
  pthread_t th;
  (void)state;
  assert_int_equal(pthread_create(&th, NULL, late_client, &l), 0);
  assert_int_equal(gh_server_serve(srv, handler, NULL, pfd[0], 10000), 1);
  uint64_t t0 = now_ms();
  assert_int_equal(gh_server_shutdown(srv, 3000), 0);
  assert_true(now_ms() - t0 < 3000);
  pthread_join(th, NULL);
  assert_true(l.ok);
  assert_non_null(strstr(l.got, "late<end>"));
  assert_true(l.eof);
  assert_int_equal(gh_server_serve(srv, handler, NULL, -1, 0), GH_ESHUTDOWN);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_requests_on_the_calling_thread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_states, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threaded_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_finishes_requests, setup, teardown),
  };
  cmocka_set_message_output(CM_OUTPUT_TAP);
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_wait.c: gh_request_wait_fd (ABI 2.3) with inline workers: a waiting request holds no
 * worker, READY / TIMEOUT / re-wait, generations, errors, shutdown, many concurrent waits. */
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
#include <signal.h>
#include <stdatomic.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>

#include "client.h"

#define NSLOTS 256
#define MAXCB 8

/* One waiting request, addressed as GET /w/<index>. The test thread sets it
 * up before the request (published by cfg_epoch), the handler fills in the
 * pipe (published by n_armed), the callbacks record what they saw (published
 * by done). */
typedef struct slot {
  int idx;
  /* set by the test */
  int timeout_ms, timeout2_ms;
  bool prewrite;    /* the handler writes "pre\n" into the pipe before waiting */
  bool until_nl;    /* re-wait until the data read ends with '\n' */
  bool switch_fd;   /* after a TIMEOUT, wait on the second pipe (rfd2) instead */
  bool after_final; /* send the final response, then try to wait (GH_ESTATE) */
  bool bad_args;    /* try invalid arguments first (-EINVAL) */
  /* set by the handler */
  int rfd, wfd, rfd2, wfd2;
  int wait_ret, can_wait, einval[4], eperm;
  uint64_t t_wait;
  /* set by the callbacks */
  atomic_int calls;
  int results[MAXCB];
  uint64_t t_cb[MAXCB];
  bool on_main;   /* a callback ran on the test's thread */
  int rewait_err; /* a re-wait that failed (on 0 the slot is not touched) */
  int complete_ret;
  char data[256];
  size_t len;
  atomic_int done; /* the request was completed by a callback */
} slot_t;

static slot_t slots[NSLOTS];
static atomic_int n_armed;
static atomic_int cfg_epoch;
static pthread_t main_thread;
static atomic_int quick_served;

/* Waits until *v >= want (acquire); false after ms. */
static bool wait_for(atomic_int *v, int want, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  while (atomic_load_explicit(v, memory_order_acquire) < want) {
    if (now_ms() >= end)
      return false;
    sleep_ms(2);
  }
  return true;
}

static void slots_reset(void)
{
  for (int i = 0; i < NSLOTS; i++) {
    memset(&slots[i], 0, sizeof(slots[i]));
    slots[i].idx = i;
    slots[i].rfd = slots[i].wfd = slots[i].rfd2 = slots[i].wfd2 = -1;
    slots[i].timeout_ms = slots[i].timeout2_ms = -1;
    slots[i].wait_ret = 1;
  }
  atomic_store(&n_armed, 0);
  atomic_store(&quick_served, 0);
}

/* The slots' set-up is the handlers' from here. */
static void publish(void)
{
  atomic_fetch_add_explicit(&cfg_epoch, 1, memory_order_release);
}

static void slot_close(slot_t *s)
{
  int *fds[] = {&s->rfd, &s->wfd, &s->rfd2, &s->wfd2};
  for (size_t i = 0; i < 4; i++) {
    if (*fds[i] >= 0)
      close(*fds[i]);
    *fds[i] = -1;
  }
}

static void slots_close(void)
{
  for (int i = 0; i < NSLOTS; i++)
    slot_close(&slots[i]);
}

/* Appends what the pipe holds without blocking. */
static void slot_read(slot_t *s, int fd)
{
  for (;;) {
    ssize_t n = read(fd, s->data + s->len, sizeof(s->data) - 1 - s->len);
    if (n <= 0)
      break;
    s->len += (size_t)n;
  }
  s->data[s->len] = '\0';
}

static void slot_reply(gh_request_t *r, slot_t *s, int result)
{
  char body[400];
  int n = snprintf(body, sizeof(body), "slot=%d result=%d calls=%d data=%s<end>", s->idx, result,
                   atomic_load(&s->calls), s->data);
  (void)gh_response_send(r, body, (size_t)n, 0);
  s->complete_ret = gh_request_complete(r);
  atomic_store_explicit(&s->done, 1, memory_order_release);
}

static void wait_cb(gh_request_t *r, int result, void *arg)
{
  slot_t *s = arg;
  int k = atomic_load_explicit(&s->calls, memory_order_relaxed);
  int fd = s->rfd, e = 1;
  if (k < MAXCB) {
    s->results[k] = result;
    s->t_cb[k] = now_ms();
  }
  if (pthread_equal(pthread_self(), main_thread))
    s->on_main = true;
  if (s->switch_fd && k > 0)
    fd = s->rfd2;
  slot_read(s, fd);
  /* counted after the last touch of the slot but before a re-wait, which
   * may call back at once on another worker */
  atomic_fetch_add_explicit(&s->calls, 1, memory_order_release);
  if (result == GH_WAIT_TIMEOUT && s->switch_fd && k == 0)
    e = gh_request_wait_fd(r, s->rfd2, GH_WAIT_IN, -1, wait_cb, s);
  else if (result == GH_WAIT_TIMEOUT && s->timeout2_ms != -1 && k == 0)
    e = gh_request_wait_fd(r, s->rfd, GH_WAIT_IN, s->timeout2_ms, wait_cb, s);
  else if (result == GH_WAIT_READY && s->until_nl && (s->len == 0 || s->data[s->len - 1] != '\n') &&
           k + 1 < MAXCB)
    e = gh_request_wait_fd(r, fd, GH_WAIT_IN, -1, wait_cb, s);
  if (e == 0)
    return; /* waiting again: s is the next callback's */
  if (e != 1)
    s->rewait_err = e;
  slot_reply(r, s, result);
}

static int make_pipe(int *rfd, int *wfd)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
    return -errno;
  *rfd = p[0];
  *wfd = p[1];
  return 0;
}

static void try_bad_args(gh_request_t *r, slot_t *s)
{
  s->einval[0] = gh_request_wait_fd(r, -1, GH_WAIT_IN, -1, wait_cb, s);
  s->einval[1] = gh_request_wait_fd(r, s->rfd, 0, -1, wait_cb, s);
  s->einval[2] = gh_request_wait_fd(r, s->rfd, 0x4u, -1, wait_cb, s);
  s->einval[3] = gh_request_wait_fd(r, s->rfd, GH_WAIT_IN, -1, NULL, s);
  /* a file epoll cannot watch: epoll_ctl's error, nothing left armed */
  int mfd = memfd_create("gh-test-wait", MFD_CLOEXEC);
  s->eperm = mfd < 0 ? -errno : gh_request_wait_fd(r, mfd, GH_WAIT_IN, -1, wait_cb, s);
  if (mfd >= 0)
    close(mfd);
}

static void handle_wait(gh_request_t *r, slot_t *s)
{
  int e = make_pipe(&s->rfd, &s->wfd);
  if (e == 0 && s->switch_fd)
    e = make_pipe(&s->rfd2, &s->wfd2);
  s->can_wait = gh_request_can_wait(r);
  if (e == 0 && s->bad_args)
    try_bad_args(r, s);
  if (e == 0 && s->prewrite)
    e = write(s->wfd, "pre\n", 4) == 4 ? 0 : -EIO;
  if (e == 0 && s->after_final) {
    (void)gh_response_send(r, "final<end>", 10, 0);
    e = gh_request_wait_fd(r, s->rfd, GH_WAIT_IN, -1, wait_cb, s);
    s->wait_ret = e;
    e = e == 0 ? 0 : -EIO;
  } else if (e == 0) {
    s->t_wait = now_ms();
    e = gh_request_wait_fd(r, s->rfd, GH_WAIT_IN, s->timeout_ms, wait_cb, s);
    s->wait_ret = e;
  }
  /* from here the request is the callback's when e == 0: no touch of s
   * either (the callback may already run), except the counter */
  if (e != 0) {
    s->complete_ret = gh_request_complete(r);
    atomic_store_explicit(&s->done, 1, memory_order_release);
  }
  atomic_fetch_add_explicit(&n_armed, 1, memory_order_release);
}

static void handler(gh_request_t *r, void *arg)
{
  const char *path = gh_request_get_path(r);
  (void)arg;
  (void)atomic_load_explicit(&cfg_epoch, memory_order_acquire);
  if (strncmp(path, "/w/", 3) == 0) {
    int i = atoi(path + 3);
    if (i >= 0 && i < NSLOTS) {
      handle_wait(r, &slots[i]);
      return;
    }
  }
  if (strcmp(path, "/quick") == 0)
    atomic_fetch_add(&quick_served, 1);
  (void)gh_response_send(r, "quick<end>", 10, 0);
  (void)gh_request_complete(r);
}

/* ---- client side ---------------------------------------------------- */

static int port_of(gh_server_t *srv)
{
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void send_wait(int fd, int i)
{
  char path[32];
  snprintf(path, sizeof(path), "/w/%d", i);
  tc_send_get(fd, path);
}

/* Reads until "<end>" (one response), EOF or a timeout; malloc'ed. */
static char *read_response(int fd, int timeout_ms)
{
  size_t cap = 8192, len = 0;
  char *buf = calloc(1, cap + 1);
  while (len < cap && strstr(buf, "<end>") == NULL) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
      break;
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  return buf;
}

static void expect_response(int fd, const char *want)
{
  char *resp = read_response(fd, 5000);
  if (strstr(resp, want) == NULL)
    fail_msg("response lacks '%s': %s", want, resp);
  free(resp);
}

static void put(int wfd, const char *s)
{
  assert_int_equal(write(wfd, s, strlen(s)), (ssize_t)strlen(s));
}

static gh_server_t *server(unsigned workers)
{
  gh_server_t *srv;
  publish();
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, NULL), 0);
  assert_int_equal(gh_server_start(srv), 0);
  if (workers > 0)
    assert_int_equal(gh_server_run_workers(srv, workers, handler, NULL), 0);
  return srv;
}

static void server_end(gh_server_t *srv)
{
  assert_int_equal(gh_server_shutdown(srv, 2000), 0);
  gh_server_free(srv);
  slots_close();
}

/* ---- tests ---------------------------------------------------------- */

/* One worker: while a request waits, the worker serves another connection;
 * the fd's event calls back READY on a worker, which answers. */
static void test_ready_frees_worker(void **state)
{
  (void)state;
  slots_reset();
  gh_server_t *srv = server(1);
  int a = tc_connect(port_of(srv), 0), b = tc_connect(port_of(srv), 0);
  send_wait(a, 0);
  assert_true(wait_for(&n_armed, 1, 3000));
  assert_int_equal(slots[0].wait_ret, 0);
  assert_int_equal(slots[0].can_wait, 1);
  tc_send_get(b, "/quick");
  expect_response(b, "quick<end>");
  assert_int_equal(atomic_load(&slots[0].calls), 0); /* still waiting */
  put(slots[0].wfd, "hello\n");
  expect_response(a, "slot=0 result=0 calls=1 data=hello\n<end>");
  assert_true(wait_for(&slots[0].done, 1, 3000));
  assert_int_equal(atomic_load(&slots[0].calls), 1);
  assert_int_equal(slots[0].results[0], GH_WAIT_READY);
  assert_false(slots[0].on_main);
  assert_int_equal(slots[0].complete_ret, 0);
  /* the connection goes on after the waited request */
  tc_send_get(a, "/quick");
  expect_response(a, "quick<end>");
  close(a);
  close(b);
  server_end(srv);
}

/* Nothing written: the timer scan calls back TIMEOUT, not before the
 * timeout and within its granularity. */
static void test_timeout(void **state)
{
  (void)state;
  slots_reset();
  slots[1].timeout_ms = 300;
  gh_server_t *srv = server(1);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 1);
  expect_response(a, "slot=1 result=1 calls=1 data=<end>");
  assert_true(wait_for(&slots[1].done, 1, 3000));
  uint64_t took = slots[1].t_cb[0] - slots[1].t_wait;
  if (took < 290 || took > 1500)
    fail_msg("timeout of 300 ms called back after %llu ms", (unsigned long long)took);
  assert_int_equal(slots[1].results[0], GH_WAIT_TIMEOUT);
  assert_int_equal(atomic_load(&slots[1].calls), 1);
  close(a);
  server_end(srv);
}

/* A callback reads part of a message and waits again; each wait calls back
 * once. */
static void test_rewait_partial(void **state)
{
  (void)state;
  slots_reset();
  slots[2].until_nl = true;
  gh_server_t *srv = server(2);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 2);
  assert_true(wait_for(&n_armed, 1, 3000));
  put(slots[2].wfd, "ab");
  assert_true(wait_for(&slots[2].calls, 1, 3000));
  sleep_ms(50);
  assert_int_equal(atomic_load(&slots[2].calls), 1);
  put(slots[2].wfd, "c\n");
  expect_response(a, "slot=2 result=0 calls=2 data=abc\n<end>");
  assert_true(wait_for(&slots[2].done, 1, 3000));
  assert_int_equal(slots[2].results[0], GH_WAIT_READY);
  assert_int_equal(slots[2].results[1], GH_WAIT_READY);
  assert_int_equal(slots[2].rewait_err, 0);
  close(a);
  server_end(srv);
}

/* TIMEOUT, a re-wait on the same fd, then data: exactly one callback per
 * wait (the fd's arm of the first wait became the second's). */
static void test_timeout_then_rewait_same_fd(void **state)
{
  (void)state;
  slots_reset();
  slots[3].timeout_ms = 300;
  slots[3].timeout2_ms = 10000;
  gh_server_t *srv = server(2);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 3);
  assert_true(wait_for(&slots[3].calls, 1, 3000));
  assert_int_equal(slots[3].results[0], GH_WAIT_TIMEOUT);
  sleep_ms(100);
  put(slots[3].wfd, "late\n");
  expect_response(a, "slot=3 result=0 calls=2 data=late\n<end>");
  assert_true(wait_for(&slots[3].done, 1, 3000));
  sleep_ms(300);
  assert_int_equal(atomic_load(&slots[3].calls), 2);
  close(a);
  server_end(srv);
}

/* Generations: the first wait's fd times out but stays armed in the epoll
 * with the first wait's cookie; the callback waits on another fd. Data on
 * the first fd must not call the second wait back. */
static void test_stale_arm_ignored(void **state)
{
  (void)state;
  slots_reset();
  slots[4].timeout_ms = 300;
  slots[4].switch_fd = true;
  gh_server_t *srv = server(2);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 4);
  assert_true(wait_for(&slots[4].calls, 1, 3000));
  assert_int_equal(slots[4].results[0], GH_WAIT_TIMEOUT);
  sleep_ms(50);
  put(slots[4].wfd, "stale\n"); /* the first fd's event, of the first generation */
  sleep_ms(400);
  assert_int_equal(atomic_load(&slots[4].calls), 1);
  put(slots[4].wfd2, "fresh\n");
  expect_response(a, "slot=4 result=0 calls=2 data=fresh\n<end>");
  assert_true(wait_for(&slots[4].done, 1, 3000));
  assert_int_equal(atomic_load(&slots[4].calls), 2);
  close(a);
  server_end(srv);
}

/* The fd is ready before the wait: another worker may take the event while
 * the waiting thread is still arming (ARMING -> taken): one callback each. */
static void test_ready_before_wait(void **state)
{
  (void)state;
  slots_reset();
  for (int i = 0; i < 200; i++)
    slots[i].prewrite = true;
  gh_server_t *srv = server(2);
  int a = tc_connect(port_of(srv), 0);
  for (int i = 0; i < 200; i++) {
    char want[64];
    send_wait(a, i);
    snprintf(want, sizeof(want), "slot=%d result=0 calls=1 data=pre\n<end>", i);
    expect_response(a, want);
  }
  for (int i = 0; i < 200; i++) {
    assert_true(wait_for(&slots[i].done, 1, 3000));
    assert_int_equal(atomic_load(&slots[i].calls), 1);
  }
  close(a);
  server_end(srv);
}

/* Queue mode (no inline workers): waits are not available. */
static void test_queue_mode_unsupported(void **state)
{
  (void)state;
  slots_reset();
  gh_server_t *srv = server(0);
  int a = tc_connect(port_of(srv), 0), p[2];
  gh_request_t *r = NULL;
  tc_send_get(a, "/q");
  assert_int_equal(gh_server_receive(srv, 3000, &r), 0);
  assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(gh_request_can_wait(r), 0);
  assert_int_equal(gh_request_can_wait(NULL), 0);
  assert_int_equal(gh_request_wait_fd(r, p[0], GH_WAIT_IN, 100, wait_cb, &slots[0]),
                   GH_EUNSUPPORTED);
  assert_int_equal(gh_request_wait_fd(NULL, p[0], GH_WAIT_IN, 100, wait_cb, &slots[0]), -EINVAL);
  assert_int_equal(gh_request_wait_fd(r, p[0], GH_WAIT_IN, 100, NULL, NULL), -EINVAL);
  assert_int_equal(gh_response_send(r, "q<end>", 6, 0), 0);
  assert_int_equal(gh_request_complete(r), 0);
  expect_response(a, "q<end>");
  assert_int_equal(atomic_load(&slots[0].calls), 0);
  close(p[0]);
  close(p[1]);
  close(a);
  server_end(srv);
}

/* -EINVAL for bad arguments, -EPERM (epoll_ctl) for a file epoll cannot
 * watch, GH_ESTATE once the final response is out or
 * the connection is upgraded; none of them calls back. */
static void test_bad_args_and_state(void **state)
{
  (void)state;
  slots_reset();
  slots[5].bad_args = true;
  slots[5].until_nl = true;
  slots[6].after_final = true;
  gh_server_t *srv = server(1);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 5);
  assert_true(wait_for(&n_armed, 1, 3000));
  for (int i = 0; i < 4; i++)
    assert_int_equal(slots[5].einval[i], -EINVAL);
  assert_int_equal(slots[5].eperm, -EPERM);
  assert_int_equal(slots[5].wait_ret, 0); /* a valid wait after them works */
  put(slots[5].wfd, "ok\n");
  expect_response(a, "slot=5 result=0 calls=1 data=ok\n<end>");
  send_wait(a, 6);
  expect_response(a, "final<end>");
  assert_true(wait_for(&slots[6].done, 1, 3000));
  assert_int_equal(slots[6].wait_ret, GH_ESTATE);
  sleep_ms(50);
  assert_int_equal(atomic_load(&slots[6].calls), 0);
  close(a);
  server_end(srv);
}

static atomic_int upgrade_ret, upgrade_done;

static void upgrade_handler(gh_request_t *r, void *arg)
{
  gh_stream_t *st = NULL;
  int p[2] = {-1, -1}, e = -EIO;
  (void)arg;
  (void)gh_response_set_status(r, 101, NULL);
  if (gh_request_upgrade(r, &st) == 0 && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0)
    e = gh_request_wait_fd(r, p[0], GH_WAIT_IN, 100, wait_cb, &slots[7]);
  atomic_store(&upgrade_ret, e);
  if (e != 0) /* on 0 the callback would complete it */
    (void)gh_request_complete(r);
  if (p[0] >= 0) {
    close(p[0]);
    close(p[1]);
  }
  atomic_store_explicit(&upgrade_done, 1, memory_order_release);
}

static void test_upgraded_estate(void **state)
{
  (void)state;
  gh_server_t *srv;
  slots_reset();
  atomic_store(&upgrade_done, 0);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, 1, upgrade_handler, NULL), 0);
  int a = tc_connect(port_of(srv), 0);
  const char *req = "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n";
  assert_int_equal(send(a, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
  assert_true(wait_for(&upgrade_done, 1, 3000));
  assert_int_equal(atomic_load(&upgrade_ret), GH_ESTATE);
  assert_int_equal(atomic_load(&slots[7].calls), 0);
  close(a);
  assert_int_equal(gh_server_shutdown(srv, 2000), 0);
  gh_server_free(srv);
}

/* Shutdown past its grace with a request waiting without a timeout: the
 * wait is called back (TIMEOUT) so the request completes, and the
 * shutdown does not hang. */
static void test_shutdown_calls_back(void **state)
{
  (void)state;
  slots_reset();
  gh_server_t *srv = server(1);
  int a = tc_connect(port_of(srv), 0);
  send_wait(a, 8);
  assert_true(wait_for(&n_armed, 1, 3000));
  assert_int_equal(slots[8].wait_ret, 0);
  uint64_t t0 = now_ms();
  assert_int_equal(gh_server_shutdown(srv, 200), GH_ETIMEOUT);
  uint64_t took = now_ms() - t0;
  assert_int_equal(atomic_load(&slots[8].done), 1);
  assert_int_equal(atomic_load(&slots[8].calls), 1);
  assert_int_equal(slots[8].results[0], GH_WAIT_TIMEOUT);
  if (took > 2500)
    fail_msg("shutdown took %llu ms", (unsigned long long)took);
  gh_server_free(srv);
  slots_close();
  close(a);
}

/* Fisher-Yates with a fixed seed: a reproducible order that is not the
 * order of the requests. */
static void shuffle(int *v, int n, unsigned *seed)
{
  for (int i = n - 1; i > 0; i--) {
    int j = rand_r(seed) % (i + 1), t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

#define NCONN 64

/* One round on every connection: each request waits on its own pipe; the
 * data goes out in a shuffled order, each client gets its own answer. */
static void many_round(int *fds, int round, unsigned *seed, int delay_ms)
{
  int order[NCONN];
  char msg[NCONN][32];
  slots_reset();
  for (int i = 0; i < NCONN; i++) {
    slots[i].timeout_ms = delay_ms > 0 ? 250 : -1;
    order[i] = i;
    snprintf(msg[i], sizeof(msg[i]), "d%d.%d\n", i, round);
  }
  publish();
  for (int i = 0; i < NCONN; i++)
    send_wait(fds[i], i);
  assert_true(wait_for(&n_armed, NCONN, 5000));
  shuffle(order, NCONN, seed);
  if (delay_ms > 0) /* data around the deadline: the event races the scan */
    sleep_ms(delay_ms);
  for (int k = 0; k < NCONN; k++)
    put(slots[order[k]].wfd, msg[order[k]]);
  for (int i = 0; i < NCONN; i++) {
    char want[64];
    char *resp = read_response(fds[i], 5000);
    snprintf(want, sizeof(want), "slot=%d result=", i);
    if (strstr(resp, want) == NULL)
      fail_msg("connection %d round %d: %s", i, round, resp);
    if (delay_ms == 0 && strstr(resp, msg[i]) == NULL)
      fail_msg("connection %d round %d lacks %s: %s", i, round, msg[i], resp);
    free(resp);
  }
  for (int i = 0; i < NCONN; i++) {
    assert_true(wait_for(&slots[i].done, 1, 3000));
    assert_int_equal(atomic_load(&slots[i].calls), 1);
    assert_int_equal(slots[i].complete_ret, 0);
  }
  slots_close();
}

/* 64 connections waiting at once on 2 workers, three rounds on the same
 * connections (their wait generations go on); the last round writes near
 * the deadline so that events and the timer scan race for the waits. */
static void test_many_concurrent(void **state)
{
  (void)state;
  unsigned seed = 12345;
  int fds[NCONN];
  slots_reset();
  gh_server_t *srv = server(2);
  for (int i = 0; i < NCONN; i++)
    fds[i] = tc_connect(port_of(srv), 0);
  many_round(fds, 0, &seed, 0);
  many_round(fds, 1, &seed, 0);
  many_round(fds, 2, &seed, 240);
  many_round(fds, 3, &seed, 255);
  for (int i = 0; i < NCONN; i++)
    close(fds[i]);
  server_end(srv);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ready_frees_worker),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_rewait_partial),
      cmocka_unit_test(test_timeout_then_rewait_same_fd),
      cmocka_unit_test(test_stale_arm_ignored),
      cmocka_unit_test(test_ready_before_wait),
      cmocka_unit_test(test_queue_mode_unsupported),
      cmocka_unit_test(test_bad_args_and_state),
      cmocka_unit_test(test_upgraded_estate),
      cmocka_unit_test(test_shutdown_calls_back),
      cmocka_unit_test(test_many_concurrent),
  };
  main_thread = pthread_self();
  signal(SIGPIPE, SIG_IGN);
  if (getenv("GH_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("GH_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_batch.c: inline workers take event batches through a shared ring; connections stay registered edge-triggered and no event is lost while a connection is owned. */
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
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>

#include "client.h"
#include "httpapi/internal.h"

#define SLEEP_MS 800 /* a handler that blocks without telling the server */
#define QUICK 7      /* requests behind it in one batch */
#define MAX_HOLD 64

static gh_server_t *srv; /* the test's; freed by teardown if the test failed */
static atomic_int n_held, n_slept, n_streamed;
static atomic_bool gate[MAX_HOLD];
static atomic_bool saw_missed; /* a streaming handler found an event dropped for its connection */

/* ---- server side ---------------------------------------------------- */

static void stream_body(gh_request_t *r)
{
  char buf[4096];
  ssize_t n;
  size_t total = 0;
  while ((n = gh_request_read_body(r, buf, sizeof(buf))) > 0)
    total += (size_t)n;
  /* quieted: the chunks that came while this thread read them woke nobody */
  if (atomic_load(&r->conn->missed))
    atomic_store(&saw_missed, true);
  atomic_fetch_add(&n_streamed, 1);
  snprintf(buf, sizeof(buf), "%zu<end>", total);
  (void)gh_response_send(r, buf, strlen(buf), 0);
}

static void handler(gh_request_t *r, void *arg)
{
  const char *path = gh_request_get_path(r);
  (void)arg;
  if (strncmp(path, "/hold", 5) == 0) {
    int i = atoi(path + 5);
    atomic_fetch_add(&n_held, 1);
    while (!atomic_load(&gate[i]))
      sleep_ms(1);
    (void)gh_response_send(r, "held<end>", 9, 0);
  } else if (strcmp(path, "/sleep") == 0) {
    atomic_fetch_add(&n_slept, 1);
    sleep_ms(SLEEP_MS); /* no hook: the server cannot know */
    (void)gh_response_send(r, "slept<end>", 10, 0);
  } else if (strcmp(path, "/pause") == 0) {
    sleep_ms(200);
    (void)gh_response_send(r, "paused<end>", 11, 0);
  } else if (strcmp(path, "/upload") == 0) {
    stream_body(r);
  } else {
    (void)gh_response_send(r, "quick<end>", 10, 0);
  }
  (void)gh_request_complete(r);
}

static unsigned listen_max(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 2 ? (unsigned)n : 2;
}

/* Starts srv with that many inline workers; its port. */
static int server(unsigned workers, bool stream)
{
  struct sockaddr_storage ss;
  socklen_t len;
  gh_url_group_t *g = NULL;
  atomic_store(&n_held, 0);
  atomic_store(&n_slept, 0);
  atomic_store(&n_streamed, 0);
  atomic_store(&saw_missed, false);
  for (int i = 0; i < MAX_HOLD; i++)
    atomic_store(&gate[i], false);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, &g), 0);
  if (stream)
    assert_int_equal(gh_url_group_set_stream_body(g, true), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, workers, handler, NULL), 0);
  assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void server_end(void)
{
  assert_int_equal(gh_server_shutdown(srv, 2000), 0);
  gh_server_free(srv);
  srv = NULL;
}

static int teardown(void **state)
{
  (void)state;
  for (int i = 0; i < MAX_HOLD; i++)
    atomic_store(&gate[i], true);
  gh_server_free(srv);
  srv = NULL;
  return 0;
}

static bool wait_count(atomic_int *v, int want, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  while (atomic_load(v) < want) {
    if (now_ms() >= end)
      return false;
    sleep_ms(1);
  }
  return true;
}

/* ---- client side ---------------------------------------------------- */

/* Reads n responses, up to the nth "<end>"; true when they came within ms. */
static bool read_responses(int fd, int n_want, int ms)
{
  char buf[4096];
  return tc_read_ends(fd, n_want, ms, buf, sizeof(buf));
}

static bool read_response(int fd, int ms)
{
  return read_responses(fd, 1, ms);
}

/* A connection through one quick request: at rest on the connection epoll. */
static int conn_at_rest(int port)
{
  int fd = tc_connect(port, 0);
  tc_send_get(fd, "/quick");
  assert_true(read_response(fd, 5000));
  return fd;
}

static uint32_t conns_open(void)
{
  return atomic_load(&srv->n_conns);
}

/* ---- the ring, directly --------------------------------------------- */

/* Kicks written since the last call (the kick eventfd's counter). */
static uint64_t kicks(gh_server_t *s)
{
  uint64_t v = 0;
  if (read(s->kickfd, &v, sizeof(v)) != (ssize_t)sizeof(v))
    assert_int_equal(errno, EAGAIN);
  return v;
}

/* FIFO order, and the room reserved before an epoll_wait bounds the ring. */
static void test_ring_order_and_room(void **state)
{
  (void)state;
  gh_server_t *s;
  struct epoll_event ev[GH__BATCH];
  assert_int_equal(gh_server_new(NULL, &s), 0);
  assert_int_equal(gh__batch_init(s), 0);
  unsigned room = gh__batch_reserve(s);
  assert_int_equal(room, GH__BATCH - 1);
  for (unsigned i = 0; i < 3; i++)
    ev[i] = (struct epoll_event){.data.u64 = 100 + i};
  gh__batch_push(s, ev, 3, room); /* the 12 unused slots are given back */
  assert_int_equal(atomic_load(&s->rused), 3);
  for (unsigned i = 0; i < 3; i++) {
    struct epoll_event got;
    assert_true(gh__batch_pop(s, &got));
    assert_int_equal(got.data.u64, 100 + i);
  }
  struct epoll_event none;
  assert_false(gh__batch_pop(s, &none));
  assert_int_equal(atomic_load(&s->rused), 0);
  /* reservations alone fill it: then an epoll_wait takes one event */
  unsigned n = 0;
  while (gh__batch_reserve(s) != 0)
    n++;
  assert_int_equal(n, GH__RING / (GH__BATCH - 1));
  assert_int_equal(gh__batch_reserve(s), 0);
  gh__batch_free(s);
  gh_server_free(s);
}

/* The I/O threads' tick wakes a worker when events sat in the ring through
 * a whole tick with none taken; not when the ring moves; not more than once
 * per GH__SPARE_MS. gh__server_may_block wakes one while events wait. */
static void test_tick_and_may_block_kick(void **state)
{
  (void)state;
  gh_server_t *s;
  struct epoll_event ev[2] = {{.data.u64 = 1}, {.data.u64 = 2}}, got;
  assert_int_equal(gh_server_new(NULL, &s), 0);
  assert_int_equal(gh__batch_init(s), 0);
  gh__batch_check(s, 1000);
  assert_int_equal(kicks(s), 0); /* empty */
  gh__batch_push(s, ev, 2, gh__batch_reserve(s));
  gh__batch_check(s, 1000 + GH__SPARE_MS);
  assert_int_equal(kicks(s), 0); /* first seen waiting */
  gh__batch_check(s, 1000 + GH__SPARE_MS + 5);
  assert_int_equal(kicks(s), 0); /* too soon for another tick */
  gh__batch_check(s, 1000 + 2 * GH__SPARE_MS);
  assert_int_equal(kicks(s), 1); /* a whole tick, nothing taken */
  assert_true(gh__batch_pop(s, &got));
  gh__batch_check(s, 1000 + 3 * GH__SPARE_MS);
  assert_int_equal(kicks(s), 0); /* one was taken since */
  gh__batch_check(s, 1000 + 4 * GH__SPARE_MS);
  assert_int_equal(kicks(s), 1);
  gh__server_may_block(s);
  assert_int_equal(kicks(s), 1); /* a worker about to block with events waiting */
  assert_true(gh__batch_pop(s, &got));
  gh__server_may_block(s);
  assert_int_equal(kicks(s), 0);
  gh__batch_free(s);
  gh_server_free(s);
}

/* ---- end to end ----------------------------------------------------- */

/* Every worker held; a sleeping request and QUICK quick ones wait in the
 * epoll. One worker is let go: it takes all of them in one epoll_wait
 * (QUICK in the ring) and sleeps in the first. The others, let go, take
 * the quick ones from the ring: answered long before the sleep ends. */
static void test_batch_shared_when_handler_blocks(void **state)
{
  (void)state;
  unsigned w = listen_max();
  assert_true(w < MAX_HOLD);
  int port = server(w, false), hold[MAX_HOLD], sl, q[QUICK];
  for (unsigned i = 0; i < w; i++)
    hold[i] = conn_at_rest(port);
  sl = conn_at_rest(port);
  for (int i = 0; i < QUICK; i++)
    q[i] = conn_at_rest(port);
  for (unsigned i = 0; i < w; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/hold%u", i);
    tc_send_get(hold[i], path);
  }
  assert_true(wait_count(&n_held, (int)w, 2000));
  tc_send_get(sl, "/sleep");
  sleep_ms(5);
  for (int i = 0; i < QUICK; i++) {
    tc_send_get(q[i], "/quick");
    sleep_ms(1);
  }
  sleep_ms(20);
  atomic_store(&gate[0], true);
  assert_true(read_response(hold[0], 2000));
  assert_true(wait_count(&n_slept, 1, 2000));
  assert_int_equal(atomic_load(&srv->rn), QUICK); /* one epoll_wait took them all */
  uint64_t t0 = now_ms();
  for (unsigned i = 1; i < w; i++)
    atomic_store(&gate[i], true);
  for (int i = 0; i < QUICK; i++)
    assert_true(read_response(q[i], 2000));
  uint64_t quick = now_ms() - t0;
  print_message("# %d quick requests behind a sleeping one in a batch: answered in %llu ms\n",
                QUICK, (unsigned long long)quick);
  assert_true(quick < SLEEP_MS / 2);
  assert_true(read_response(sl, 3000));
  for (unsigned i = 1; i < w; i++)
    assert_true(read_response(hold[i], 2000));
  for (unsigned i = 0; i < w; i++)
    close(hold[i]);
  for (int i = 0; i < QUICK; i++)
    close(q[i]);
  close(sl);
  server_end();
}

/* A second request sent while the connection's first is still in its
 * handler (the event comes while the connection is owned: `missed`) is
 * answered when the first is done, not lost until the keep-alive timeout. */
static void test_request_while_owned(void **state)
{
  (void)state;
  int port = server(listen_max(), false);
  int fd = conn_at_rest(port);
  for (int round = 0; round < 5; round++) {
    uint64_t t0 = now_ms();
    tc_send_get(fd, "/pause");
    sleep_ms(50 + 20 * round); /* the handler runs */
    tc_send_get(fd, "/quick");
    assert_true(read_responses(fd, 2, 2000));
    assert_true(now_ms() - t0 < 1000);
  }
  close(fd);
  server_end();
}

/* A client that closes while its request is in the handler: the hang-up
 * (an event while owned) closes the connection once the handler is done. */
static void test_close_while_owned(void **state)
{
  (void)state;
  int port = server(listen_max(), false);
  int fd = conn_at_rest(port);
  assert_int_equal(conns_open(), 1);
  tc_send_get(fd, "/pause");
  sleep_ms(50);
  close(fd);
  uint64_t end = now_ms() + 2000;
  while (conns_open() > 0 && now_ms() < end)
    sleep_ms(5);
  assert_int_equal(conns_open(), 0);
  server_end();
}

/* A streamed body read by its handler: the connection is out of the epoll
 * meanwhile (gh__conn_quiet), so the chunks wake no other worker; and the
 * connection serves the next request afterwards. */
static void test_streamed_body_quiet(void **state)
{
  (void)state;
  int port = server(listen_max(), true);
  int fd = conn_at_rest(port);
  const char head[] = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 40960\r\n\r\n";
  char chunk[4096];
  memset(chunk, 'b', sizeof(chunk));
  assert_int_equal(send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(head) - 1);
  for (int i = 0; i < 10; i++) {
    sleep_ms(10); /* each chunk an event of its own */
    assert_int_equal(send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL), (ssize_t)sizeof(chunk));
  }
  assert_true(read_response(fd, 3000));
  assert_true(wait_count(&n_streamed, 1, 1000));
  assert_false(atomic_load(&saw_missed));
  tc_send_get(fd, "/quick");
  assert_true(read_response(fd, 2000));
  close(fd);
  server_end();
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ring_order_and_room),
      cmocka_unit_test(test_tick_and_may_block_kick),
      cmocka_unit_test_teardown(test_batch_shared_when_handler_blocks, teardown),
      cmocka_unit_test_teardown(test_request_while_owned, teardown),
      cmocka_unit_test_teardown(test_close_while_owned, teardown),
      cmocka_unit_test_teardown(test_streamed_body_quiet, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_spare.c: workers beyond the CPUs park, and are let go when handlers block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>

#include "client.h"

#define SLEEP_MS 400            /* a handler that blocks without telling the server */
#define BIG (16u * 1024 * 1024) /* more than the socket buffers hold */
#define EXTRA 6                 /* workers beyond listen_max */

static atomic_int n_started; /* handlers that began to block */
static char *big;
static gh_server_t *srv; /* the test's; freed by teardown if the test failed */

/* How many inline workers wait on the connection epoll at most: the CPUs,
 * at least 2 (as server.c computes it). */
static unsigned listen_max(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 2 ? (unsigned)n : 2;
}

/* ---- server side ---------------------------------------------------- */

static void send_big(gh_request_t *r)
{
  char len[32];
  snprintf(len, sizeof(len), "%u", BIG);
  (void)gh_response_set_header(r, "Content-Length", len);
  atomic_fetch_add(&n_started, 1);
  /* not final: the worker itself waits for the slow client (wait_writable) */
  (void)gh_response_send(r, big, BIG - 5, GH_SEND_MORE_DATA);
  (void)gh_response_send(r, "<end>", 5, 0);
}

static void handler(gh_request_t *r, void *arg)
{
  const char *path = gh_request_get_path(r);
  (void)arg;
  if (strcmp(path, "/sleep") == 0) {
    atomic_fetch_add(&n_started, 1);
    sleep_ms(SLEEP_MS); /* no hook: the server cannot know */
    (void)gh_response_send(r, "slept<end>", 10, 0);
  } else if (strcmp(path, "/big") == 0) {
    send_big(r);
  } else {
    (void)gh_response_send(r, "quick<end>", 10, 0);
  }
  (void)gh_request_complete(r);
}

/* Starts srv with that many inline workers; its port. */
static int server(unsigned workers)
{
  struct sockaddr_storage ss;
  socklen_t len;
  atomic_store(&n_started, 0);
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, NULL), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, workers, handler, NULL), 0);
  assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Shutdown and free; fails past max_ms (parked workers must see wstop). */
static void server_end(uint64_t max_ms)
{
  uint64_t t0 = now_ms();
  assert_int_equal(gh_server_shutdown(srv, 2000), 0);
  gh_server_free(srv);
  srv = NULL;
  uint64_t took = now_ms() - t0;
  print_message("# shutdown + free: %llu ms\n", (unsigned long long)took);
  assert_true(took < max_ms);
}

static int teardown(void **state)
{
  (void)state;
  gh_server_free(srv); /* a failed test's: its parked workers must not count in the next */
  srv = NULL;
  return 0;
}

/* Threads of this process blocked in a futex (parked workers: nothing else
 * of the server's waits on one while idle) and in epoll_wait (workers
 * listening, I/O threads), read from /proc/self/task/<tid>/syscall. */
static void count_blocked(int *futex, int *epoll)
{
  *futex = *epoll = 0;
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[300], buf[64];
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", e->d_name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
      continue;
    long nr = fgets(buf, sizeof(buf), f) != NULL ? strtol(buf, NULL, 10) : -1;
    fclose(f);
    if (nr == SYS_futex)
      ++*futex;
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait)
      ++*epoll;
#endif
    if (nr == SYS_epoll_pwait)
      ++*epoll;
  }
  closedir(d);
}

/* Waits until exactly want threads are parked (up to ms); the last count. */
static int wait_parked(int want, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  int futex, epoll;
  for (;;) {
    count_blocked(&futex, &epoll);
    if (futex == want || now_ms() >= end)
      return futex;
    sleep_ms(5);
  }
}

static bool wait_started(int want, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  while (atomic_load(&n_started) < want) {
    if (now_ms() >= end)
      return false;
    sleep_ms(1);
  }
  return true;
}

/* ---- client side ---------------------------------------------------- */

/* Reads one response up to its "<end>" (EOF or timeout: less); the bytes
 * read. */
static size_t read_response(int fd, int timeout_ms)
{
  static __thread char buf[65536]; /* per client thread */
  char tail[5] = {0};
  size_t total = 0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
      break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    total += (size_t)n;
    /* the last 5 bytes seen, across reads */
    size_t k = n >= 5 ? 5 : (size_t)n;
    memmove(tail, tail + k, 5 - k);
    memcpy(tail + 5 - k, buf + n - (ssize_t)k, k);
    if (memcmp(tail, "<end>", 5) == 0)
      break;
  }
  return memcmp(tail, "<end>", 5) == 0 ? total : 0;
}

/* A quick request on fd: the time to its answer. */
static uint64_t quick_ms(int fd)
{
  uint64_t t0 = now_ms();
  tc_send_get(fd, "/quick");
  assert_true(read_response(fd, 5000) > 0);
  return now_ms() - t0;
}

/* n connections, each through a quick request: accepted and at rest on the
 * connection epoll, so that requests on them wake no I/O thread (an accept
 * would make it check the spares at once). Then waits until the spares let
 * go meanwhile are parked again (parked: how many there are). */
static int *open_conns(int port, int n, int rcvbuf, int parked)
{
  int *fds = calloc((size_t)n, sizeof(int));
  assert_non_null(fds);
  for (int i = 0; i < n; i++) {
    fds[i] = tc_connect(port, rcvbuf);
    assert_true(quick_ms(fds[i]) < 5000);
  }
  assert_int_equal(wait_parked(parked, 3000), parked);
  return fds;
}

static void close_conns(int *fds, int n)
{
  for (int i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
}

/* ---- tests ---------------------------------------------------------- */

/* listen_max + 2 handlers sleep without calling any hook: the I/O thread
 * lets a spare go every 20 ms while none listens, so all of them run at
 * once, and a further request is answered well before the sleeps end. */
static void test_blocking_handlers(void **state)
{
  (void)state;
  int n = (int)listen_max() + 2;
  int port = server(listen_max() + EXTRA), *fds = open_conns(port, n + 1, 0, EXTRA);
  uint64_t t0 = now_ms();
  for (int i = 0; i < n; i++)
    tc_send_get(fds[i], "/sleep");
  assert_true(wait_started(n, 200)); /* 2 spares at 20 ms each */
  uint64_t started = now_ms() - t0, quick = quick_ms(fds[n]);
  for (int i = 0; i < n; i++)
    assert_true(read_response(fds[i], 3000) > 0);
  uint64_t all = now_ms() - t0;
  close_conns(fds, n + 1);
  print_message("# %d sleeping handlers running after %llu ms, quick %llu ms, all answered "
                "%llu ms\n",
                n, (unsigned long long)started, (unsigned long long)quick, (unsigned long long)all);
  assert_true(quick < 150); /* one more spare */
  assert_true(all < 1500);
  /* the spares let go park again once the handlers are done */
  assert_int_equal(wait_parked(EXTRA, 3000), EXTRA);
  server_end(2000);
}

/* listen_max handlers wait for clients that do not read for a second
 * (wait_writable tells the server at once): another connection's request
 * is answered meanwhile. Then, EXTRA - 1 times, the spare that answered it
 * blocks on one more slow client and the next quick request needs another
 * spare: each is answered well within the I/O thread's 250 ms scan. */
static void test_slow_clients(void **state)
{
  (void)state;
  int n = (int)listen_max(), m = n + EXTRA - 1;
  int port = server(listen_max() + EXTRA), *fds = open_conns(port, m + 1, 4096, EXTRA);
  uint64_t t0 = now_ms(), worst = 0;
  for (int i = 0; i < m; i++) {
    tc_send_get(fds[i], "/big");
    if (i < n - 1)
      continue; /* the listen_max first ones at once */
    assert_true(wait_started(i + 1, 1000));
    uint64_t quick = quick_ms(fds[m]);
    print_message("# %d slow clients: quick %llu ms\n", i + 1, (unsigned long long)quick);
    worst = quick > worst ? quick : worst;
  }
  uint64_t elapsed = now_ms() - t0;
  if (elapsed < 1000)
    sleep_ms((int)(1000 - elapsed));
  for (int i = 0; i < m; i++)
    assert_true(read_response(fds[i], 5000) > BIG);
  close_conns(fds, m + 1);
  print_message("# all drained after %llu ms\n", (unsigned long long)(now_ms() - t0));
  assert_true(worst < 150);
  server_end(2000);
}

typedef struct {
  int port, n, answered;
} stream_t;

static void *stream_main(void *arg)
{
  stream_t *st = arg;
  int fd = tc_connect(st->port, 0);
  for (int i = 0; i < st->n; i++) {
    tc_send_get(fd, "/quick");
    if (read_response(fd, 2000) == 0)
      break;
    st->answered++;
  }
  close(fd);
  return NULL;
}

/* 16 workers under a steady stream of fast requests on 4 connections:
 * every request is answered (no stall with most workers parked), and the
 * shutdown returns promptly. */
static void test_stream_then_shutdown(void **state)
{
  (void)state;
  enum { NCONN = 4, NREQ = 1000 };
  int port = server(16);
  pthread_t th[NCONN];
  stream_t st[NCONN];
  uint64_t t0 = now_ms();
  for (int i = 0; i < NCONN; i++) {
    st[i] = (stream_t){.port = port, .n = NREQ};
    assert_int_equal(pthread_create(&th[i], NULL, stream_main, &st[i]), 0);
  }
  for (int i = 0; i < NCONN; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(st[i].answered, NREQ);
  }
  print_message("# %d requests in %llu ms\n", NCONN * NREQ, (unsigned long long)(now_ms() - t0));
  int parked = wait_parked(16 - (int)listen_max(), 2000);
  assert_int_equal(parked, 16 - (int)listen_max());
  server_end(2000);
}

/* Many parked workers: the shutdown wakes them all at once (without the
 * broadcast they would leave one per 20 ms tick, or at their 1 s timed
 * wait). */
static void test_shutdown_wakes_parked(void **state)
{
  (void)state;
  enum { MANY = 48 };
  int port = server(listen_max() + MANY);
  close_conns(open_conns(port, 1, 0, MANY), 1);
  server_end(300);
}

/* Voluntary context switches of every thread of this process so far. */
static long ctx_switches(void)
{
  long total = 0;
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    char path[300], line[128];
    FILE *f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue; /* a thread that ended */
    while (fgets(line, sizeof(line), f) != NULL)
      if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
        total += atol(line + 24);
    fclose(f);
  }
  closedir(d);
  return total;
}

/* With workers parked, an idle server does not check the spares every
 * 20 ms (the I/O thread would wake 50 times a second for nothing): after a
 * quiet second it sleeps to its 250 ms scan. The next burst still gets its
 * spares at once: the first event wakes the I/O thread. */
static void test_idle_is_quiet(void **state)
{
  (void)state;
  int n = (int)listen_max() + 2;
  int port = server(listen_max() + EXTRA), *fds = open_conns(port, n + 1, 0, EXTRA);
  sleep_ms(1500); /* quiet */
  long before = ctx_switches();
  sleep_ms(1000);
  long quiet = ctx_switches() - before;
  /* per second: the I/O thread's 4 scans, each listener's 4 epoll timeouts,
   * each parked worker's 1-s timed wait; 50 more with the 20 ms tick */
  long bound = 4 + 4 * (long)listen_max() + EXTRA + 30; /* TSan adds its own thread */
  print_message("# idle: %ld context switches in 1 s (bound %ld)\n", quiet, bound);
  assert_true(quiet < bound);
  for (int i = 0; i < n; i++)
    tc_send_get(fds[i], "/sleep");
  assert_true(wait_started(n, 300));
  uint64_t quick = quick_ms(fds[n]);
  for (int i = 0; i < n; i++)
    assert_true(read_response(fds[i], 3000) > 0);
  close_conns(fds, n + 1);
  print_message("# after idle: quick %llu ms\n", (unsigned long long)quick);
  assert_true(quick < 150);
  server_end(2000);
}

/* As many workers as CPUs or fewer: none parks, all wait on the epoll. */
static void test_no_spares(void **state)
{
  (void)state;
  int futex, epoll;
  int port = server(listen_max());
  close_conns(open_conns(port, 1, 0, 0), 1);
  for (int i = 0; i < 20; i++) {
    count_blocked(&futex, &epoll);
    assert_int_equal(futex, 0);
    sleep_ms(10);
  }
  server_end(2000);
}

int main(void)
{
  big = malloc(BIG);
  assert_non_null(big);
  memset(big, 'x', BIG);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_blocking_handlers, teardown),
      cmocka_unit_test_teardown(test_slow_clients, teardown),
      cmocka_unit_test_teardown(test_stream_then_shutdown, teardown),
      cmocka_unit_test_teardown(test_shutdown_wakes_parked, teardown),
      cmocka_unit_test_teardown(test_no_spares, teardown),
      cmocka_unit_test_teardown(test_idle_is_quiet, teardown),
  };
  int ret = cmocka_run_group_tests(tests, NULL, NULL);
  free(big);
  return ret;
}

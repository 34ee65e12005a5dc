/* test_server.c: in-process tests of the server API over loopback (receive, responses, groups, hooks, limits, shutdown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>

#include "httpapi/hooks.h"

typedef struct fixture {
  gh_server_t *srv;
  gh_url_group_t *root, *api;
  int port;
  char unix_path[64];
} fixture_t;

static int api_ctx = 42;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof(*f));
  gh_server_config_t cfg;
  gh_server_config_init(&cfg);
  cfg.header_timeout_ms = 600;
  cfg.max_body = 1000;
  assert_int_equal(gh_server_new(&cfg, &f->srv), 0);
  assert_int_equal(gh_server_add_listener(f->srv, "127.0.0.1:0"), 0);
  snprintf(f->unix_path, sizeof(f->unix_path), "/tmp/gh-test-server-%d.sock", (int)getpid());
  char addr[128];
  snprintf(addr, sizeof(addr), "unix:%s", f->unix_path);
  assert_int_equal(gh_server_add_listener(f->srv, addr), 0);
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(gh_server_listener_address(f->srv, 0, &ss, &len), 0);
  assert_int_equal(gh_server_listener_address(f->srv, 5, &ss, &len), -ENOENT);
  f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  gh_url_group_props_t props = {.max_body = 10};
  assert_int_equal(gh_server_add_url_group(f->srv, "/", NULL, NULL, &f->root), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/api/", &props, &api_ctx, &f->api), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/api", NULL, NULL, NULL), GH_EEXISTS);
  assert_int_equal(gh_server_start(f->srv), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/late", NULL, NULL, NULL), GH_ESTATE);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  gh_server_shutdown(f->srv, 1000);
  gh_server_free(f->srv);
  free(f);
  return 0;
}

static int connect_tcp(fixture_t *f)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

static void send_all(int fd, const char *s)
{
  assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads until `until` appears, EOF, or a timeout; returns a malloc'ed string. */
static char *read_until(int fd, const char *until, int timeout_ms)
{
  size_t cap = 65536, len = 0;
  char *buf = calloc(1, cap + 1);
  while (len < cap) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
      break;
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    if (until != NULL && strstr(buf, until) != NULL)
      break;
  }
  return buf;
}

static bool peer_closed(int fd)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 2000) <= 0)
    return false;
  char c;
  return recv(fd, &c, 1, 0) == 0;
}

static void test_accessors(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f);
  send_all(fd, "POST /api/x%20y?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n"
               "Content-Length: 5\r\n\r\nhello");
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_string_equal(gh_request_get_method(r), "POST");
  assert_string_equal(gh_request_get_url(r), "/api/x%20y?q=1");
  assert_string_equal(gh_request_get_path(r), "/api/x y");
  assert_string_equal(gh_request_get_query(r), "q=1");
  assert_int_equal(gh_request_get_version(r), 11);
  assert_string_equal(gh_request_get_header(r, "x-a"), "1");
  assert_int_equal(gh_request_get_header_count(r), 4);
  const char *n, *v;
  assert_int_equal(gh_request_get_header_at(r, 2, &n, &v), 0);
  assert_string_equal(v, "2");
  assert_int_equal(gh_request_get_header_at(r, 9, &n, &v), -ENOENT);
  assert_int_equal(gh_request_get_body_length(r), 5);
  char b[3];
  assert_int_equal(gh_request_read_body(r, b, 3), 3);
  assert_memory_equal(b, "hel", 3);
  assert_int_equal(gh_request_read_body(r, b, 3), 2);
  assert_int_equal(gh_request_read_body(r, b, 3), 0);
  assert_ptr_equal(gh_request_get_url_group(r), f->api);
  assert_ptr_equal(gh_url_group_get_user_ctx(f->api), &api_ctx);
  assert_string_equal(gh_url_group_get_prefix(f->api), "/api");
  assert_int_equal(gh_url_group_get_props(f->api)->max_body, 10);
  const gh_conn_info_t *ci = gh_request_get_conn_info(r);
  assert_int_equal(ci->transport, GH_TRANSPORT_TCP);
  assert_int_equal(ci->peer.ss_family, AF_INET);
  assert_true(ci->flags & GH_CONN_KEEPALIVE);
  assert_false(ci->flags & GH_CONN_UNIX);
  assert_true(ci->id > 0);
  assert_ptr_equal(gh_request_get_server(r), f->srv);
  assert_int_equal(gh_response_set_status(r, 99, NULL), -EINVAL);
  assert_int_equal(gh_response_set_header(r, "Bad Name", "x"), -EINVAL);
  assert_int_equal(gh_response_set_header(r, "X", "a\r\nb"), -EINVAL);
  assert_int_equal(gh_response_set_header(r, "Connection", "close"), -EINVAL);
  assert_int_equal(gh_response_set_status(r, 201, "Made"), 0);
  assert_int_equal(gh_response_add_header(r, "X-M", "1"), 0);
  assert_int_equal(gh_response_add_header(r, "X-M", "2"), 0);
  assert_int_equal(gh_response_set_header(r, "X-R", "old"), 0);
  assert_int_equal(gh_response_set_header(r, "x-r", "new"), 0);
  assert_int_equal(gh_response_send(r, "done", 4, 0), 0);
  assert_int_equal(gh_response_send(r, "x", 1, 0), GH_ESTATE);
  assert_int_equal(gh_request_complete(r), 0);
  char *resp = read_until(fd, "done", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 201 Made\r\n"));
  assert_non_null(strstr(resp, "X-M: 1\r\nX-M: 2\r\n"));
  assert_non_null(strstr(resp, "x-r: new\r\n"));
  assert_null(strstr(resp, "old"));
  assert_non_null(strstr(resp, "Content-Length: 4\r\n"));
  assert_non_null(strstr(resp, "Date: "));
  assert_non_null(strstr(resp, "Server: gatehouse/"));
  free(resp);
  close(fd);
}

static void test_chunked_and_head(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f);
  send_all(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_ptr_equal(gh_request_get_url_group(r), f->root);
  assert_int_equal(gh_response_send(r, "abc", 3, GH_SEND_MORE_DATA), 0);
  assert_int_equal(gh_response_set_header(r, "X", "late"), GH_ESTATE);
  assert_int_equal(gh_response_send(r, "0123456789abcdefg", 17, GH_SEND_MORE_DATA), 0);
  assert_int_equal(gh_response_send(r, NULL, 0, 0), 0);
  assert_int_equal(gh_request_complete(r), 0);
  char *resp = read_until(fd, "0\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n"));
  free(resp);

  send_all(fd, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_int_equal(gh_response_send(r, "body!", 5, 0), 0);
  gh_request_complete(r);
  resp = read_until(fd, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "Content-Length: 5\r\n\r\n"));
  assert_null(strstr(resp, "body!"));
  free(resp);

  /* HTTP/1.0 streaming: close-delimited */
  send_all(fd, "GET /old HTTP/1.0\r\n\r\n");
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_int_equal(gh_request_get_version(r), 10);
  gh_response_send(r, "part1", 5, GH_SEND_MORE_DATA);
  gh_response_send(r, "part2", 5, 0);
  gh_request_complete(r);
  resp = read_until(fd, NULL, 2000);
  assert_non_null(strstr(resp, "Connection: close\r\n\r\npart1part2"));
  assert_null(strstr(resp, "chunked"));
  free(resp);
  close(fd);
}

static void test_no_response_is_500_and_404(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f);
  send_all(fd, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  gh_request_complete(r);
  char *resp = read_until(fd, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 500 "));
  free(resp);
  /* body over the group limit (10) */
  send_all(fd, "POST /api/ HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
  resp = read_until(fd, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 413 "));
  assert_non_null(strstr(resp, "Connection: close"));
  free(resp);
  assert_true(peer_closed(fd));
  close(fd);
  assert_int_equal(gh_server_receive(f->srv, 0, &r), GH_ETIMEOUT);
}

static int gate_calls;
static _Atomic int conn_state_freed;
static int slot_freed;
static void free_conn_state(void *p)
{
  (void)p;
  conn_state_freed++;
}
static void free_slot(void *p)
{
  (void)p;
  slot_freed++;
}

static int gate(gh_request_t *r, void *arg)
{
  (void)arg;
  gate_calls++;
  const char *a = gh_request_get_header(r, "Authorization");
  if (a == NULL) {
    static const char *const hdrs[] = {"WWW-Authenticate", "Negotiate",
                                       "WWW-Authenticate", "Basic realm=\"x\""};
    if (gh__request_get_conn_state(r) == NULL)
      gh__request_set_conn_state(r, &gate_calls, free_conn_state);
    gh__request_reply(r, 401, NULL, hdrs, 2, NULL);
    return GH__GATE_HANDLED;
  }
  if (strcmp(a, "fail") == 0)
    return -EIO;
  gh__request_set_auth_slot(r, &slot_freed, free_slot);
  return GH__GATE_DELIVER;
}

static void resp_hook(gh_request_t *r, int status, void *arg)
{
  (void)arg;
  if (status >= 200 && status < 300 && gh__request_get_auth_slot(r) != NULL)
    gh_response_set_header(r, "WWW-Authenticate", "Negotiate mutual");
}

static void test_gate(void **state)
{
  fixture_t *f = *state;
  gh__server_set_request_gate(f->srv, gate, NULL);
  gh__server_set_response_hook(f->srv, resp_hook, NULL);
  int fd = connect_tcp(f);
  gh_request_t *r;
  send_all(fd, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_int_equal(gh_server_receive(f->srv, 500, &r), GH_ETIMEOUT);
  char *resp = read_until(fd, "Unauthorized\n", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 401 Unauthorized\r\n"));
  assert_non_null(strstr(resp, "WWW-Authenticate: Negotiate\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"));
  assert_null(strstr(resp, "Connection: close"));
  free(resp);
  /* same connection: internal failure → 503, still open */
  send_all(fd, "GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: fail\r\n\r\n");
  assert_int_equal(gh_server_receive(f->srv, 500, &r), GH_ETIMEOUT);
  resp = read_until(fd, "Unavailable\n", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 503 "));
  free(resp);
  /* delivered, with the per-request slot and the response hook */
  send_all(fd, "GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: ok\r\n\r\n");
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_ptr_equal(gh__request_get_conn_state(r), &gate_calls);
  assert_int_equal(gh__response_get_status(r), 200);
  gh_response_send(r, "ok", 2, 0);
  assert_true(gh__response_headers_sent(r));
  gh_request_complete(r);
  assert_int_equal(slot_freed, 1);
  resp = read_until(fd, "ok", 2000);
  assert_non_null(strstr(resp, "WWW-Authenticate: Negotiate mutual\r\n"));
  free(resp);
  assert_int_equal(gate_calls, 3);
  close(fd);
  /* the connection state goes with the connection */
  for (int i = 0; i < 100 && conn_state_freed == 0; i++)
    usleep(20000);
  assert_int_equal(conn_state_freed, 1);
  gh__server_set_request_gate(f->srv, NULL, NULL);
  gh__server_set_response_hook(f->srv, NULL, NULL);
}

static void test_unix_creds(void **state)
{
  fixture_t *f = *state;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->unix_path);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  send_all(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  const gh_conn_info_t *ci = gh_request_get_conn_info(r);
  assert_int_equal(ci->transport, GH_TRANSPORT_UNIX);
  assert_true(ci->flags & GH_CONN_UNIX);
  assert_true(ci->flags & GH_CONN_HAS_CRED);
  assert_int_equal(ci->peer_uid, getuid());
  assert_int_equal(ci->peer_gid, getgid());
  assert_int_equal(ci->peer_pid, getpid());
  gh_request_complete(r);
  close(fd);
}

static void test_send_fd(void **state)
{
  fixture_t *f = *state;
  char path[] = "/tmp/gh-test-sendfd-XXXXXX";
  int tfd = mkstemp(path);
  assert_true(tfd >= 0);
  unlink(path);
  assert_int_equal(write(tfd, "0123456789", 10), 10);
  int fd = connect_tcp(f);
  send_all(fd, "GET /f HTTP/1.1\r\nHost: h\r\n\r\n");
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 2000, &r), 0);
  assert_int_equal(gh_response_send_fd(r, tfd, 2, 5, 0), 0);
  gh_request_complete(r);
  char *resp = read_until(fd, "23456", 2000);
  assert_non_null(strstr(resp, "Content-Length: 5\r\n\r\n23456"));
  free(resp);
  close(tfd);
  close(fd);
}

static void test_header_timeout(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f);
  send_all(fd, "GET / HTTP/1.1\r\nHost: h\r\n");
  char *resp = read_until(fd, "\r\n\r\n", 3000);
  assert_non_null(strstr(resp, "HTTP/1.1 408 "));
  free(resp);
  assert_true(peer_closed(fd));
  close(fd);
}

static int file_fd = -1; /* /file: 4096 bytes of 'x' with sendfile */

static void handler(gh_request_t *r, void *arg)
{
  (void)arg;
  const char *p = gh_request_get_path(r);
  if (strcmp(p, "/file") == 0)
    gh_response_send_fd(r, file_fd, 0, 4096, 0);
  else
    gh_response_send(r, p, strlen(p), 0);
  gh_request_complete(r);
}

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Head (sent with MSG_MORE) and a sendfile body leave together; the final
 * send pushes: 100 sequential keep-alive requests must not each wait for a
 * Nagle/cork timer (200 ms each would be 20 s; the bound is generous). */
static void keepalive_files(fixture_t *f)
{
  char path[] = "/tmp/gh-test-ka-XXXXXX";
  char blk[4096];
  file_fd = mkstemp(path);
  assert_true(file_fd >= 0);
  unlink(path);
  memset(blk, 'x', sizeof(blk));
  assert_int_equal(write(file_fd, blk, sizeof(blk)), (ssize_t)sizeof(blk));
  int fd = connect_tcp(f);
  uint64_t t0 = mono_ms();
  for (int i = 0; i < 100; i++) {
    send_all(fd, "GET /file HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t got = 0, need = 0;
    char *buf = malloc(8192);
    for (;;) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      assert_true(poll(&p, 1, 5000) == 1);
      ssize_t n = recv(fd, buf + got, 8192 - got, 0);
      assert_true(n > 0);
      got += (size_t)n;
      buf[got < 8192 ? got : 8191] = '\0';
      char *e = strstr(buf, "\r\n\r\n");
      if (e != NULL && need == 0) {
        assert_non_null(strstr(buf, "Content-Length: 4096\r\n"));
        need = (size_t)(e + 4 - buf) + 4096;
      }
      if (need != 0 && got >= need)
        break;
    }
    assert_int_equal(got, need); /* nothing beyond the response */
    free(buf);
  }
  uint64_t ms = mono_ms() - t0;
  if (ms >= 5000)
    fail_msg("100 keep-alive file requests took %llu ms", (unsigned long long)ms);
  close(fd);
  close(file_fd);
  file_fd = -1;
}

static void test_workers_pipelined_in_order(void **state)
{
  fixture_t *f = *state;
  assert_int_equal(gh_server_run_workers(f->srv, 3, handler, NULL), 0);
  assert_int_equal(gh_server_run_workers(f->srv, 3, handler, NULL), GH_ESTATE);
  int fd = connect_tcp(f);
  char req[8192] = "";
  for (int i = 0; i < 50; i++) {
    char one[64];
    snprintf(one, sizeof(one), "GET /r%02d HTTP/1.1\r\nHost: h\r\n\r\n", i);
    strcat(req, one);
  }
  send_all(fd, req);
  char *resp = read_until(fd, "/r49", 5000);
  const char *p = resp;
  for (int i = 0; i < 50; i++) {
    char want[16];
    snprintf(want, sizeof(want), "\r\n\r\n/r%02d", i);
    const char *q = strstr(p, want);
    if (q == NULL)
      fail_msg("response %d missing or out of order", i);
    p = q + 1;
  }
  free(resp);
  close(fd);
  keepalive_files(f);
  assert_int_equal(gh_server_shutdown(f->srv, 2000), 0);
  gh_request_t *r;
  assert_int_equal(gh_server_receive(f->srv, 100, &r), GH_ESHUTDOWN);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_accessors),
    cmocka_unit_test(test_chunked_and_head),
    cmocka_unit_test(test_no_response_is_500_and_404),
    cmocka_unit_test(test_gate),
    cmocka_unit_test(test_unix_creds),
    cmocka_unit_test(test_send_fd),
    cmocka_unit_test(test_header_timeout),
    cmocka_unit_test(test_workers_pipelined_in_order),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

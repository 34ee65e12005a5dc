/* test_stream.c: a handler module that asked for streamed bodies, over the real HTTP core:
 * READ_ENTITY per piece, content length -1 for chunked, 103, client_gone, Upgrade, and the
 * response fields the glue hands the core checked (injection, reserved names, Content-Length). */
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/httpapi.h>
#include <gatehouse/module.h>

#include "pl_fake.h"

static int entities;        /* READ_ENTITY events seen by the watcher */
static size_t entity_bytes; /* and their bytes */
static int64_t seen_length;

/* /fields, /reserved/NAME, /cl/VALUE, /paren: response fields set by a module
 * (true if path is one of those). */
static bool fields_case(gh_http_response_t *resp, const char *path)
{
  if (strcmp(path, "/fields") == 0) {
    assert_int_equal(gh_http_response_set_header(resp, "X-A", "a\r\nInjected: 1", GH_HEADER_ADD),
                     -EINVAL);
    assert_int_equal(gh_http_response_set_header(resp, "X-B", "a\nInjected: 2", GH_HEADER_ADD),
                     -EINVAL);
    assert_int_equal(gh_http_response_set_header(resp, "X\r\nInjected", "3", GH_HEADER_ADD),
                     -EINVAL);
    assert_int_equal(gh_http_response_set_header(resp, "X-C:", "4", GH_HEADER_ADD), -EINVAL);
    assert_int_equal(gh_http_response_set_header(resp, "X-L", "a", GH_HEADER_ADD), 0);
    assert_int_equal(gh_http_response_set_header(resp, "x-l", "b", GH_HEADER_APPEND), 0);
    assert_int_equal(gh_http_response_set_header(resp, "X-R", "1", GH_HEADER_ADD), 0);
    assert_int_equal(gh_http_response_set_header(resp, "X-R", "2", GH_HEADER_ADD), 0);
    assert_int_equal(gh_http_response_set_header(resp, "x-r", "3", GH_HEADER_REPLACE), 0);
    /* the last field deleted, then one added: still at the end of the list */
    assert_int_equal(gh_http_response_set_header(resp, "X-T", "t", GH_HEADER_ADD), 0);
    assert_int_equal(gh_http_response_delete_header(resp, "x-t"), 0);
    assert_int_equal(gh_http_response_set_header(resp, "X-U", "u", GH_HEADER_ADD), 0);
  } else if (strncmp(path, "/reserved/", 10) == 0) {
    /* the pipeline takes it; the core refuses it when the head goes out */
    assert_int_equal(gh_http_response_set_header(resp, path + 10, "module", GH_HEADER_ADD), 0);
  } else if (strncmp(path, "/cl/", 4) == 0) {
    /* a module's own length reaches the core on a flush (not a final send) */
    assert_int_equal(gh_http_response_set_header(resp, "Content-Length", path + 4, GH_HEADER_ADD),
                     0);
    gh_http_response_write(resp, "hello", 5);
    (void)gh_http_response_flush(resp);
    return true;
  } else if (strcmp(path, "/paren") == 0) {
    /* visible ASCII but no token: the pipeline takes it, the core does not */
    assert_int_equal(gh_http_response_set_header(resp, "X(a)", "v", GH_HEADER_ADD), 0);
  } else {
    return false;
  }
  gh_http_response_write(resp, "fields", 6);
  return true;
}

/* The relaying handler: reads the body 7 bytes at a time. */
static gh_request_status_t stream_execute(void *module, gh_http_context_t *ctx,
                                          gh_event_provider_t *prov)
{
  (void)module;
  (void)prov;
  gh_http_request_t *req = gh_http_context_get_request(ctx);
  gh_http_response_t *resp = gh_http_context_get_response(ctx);
  const char *path = gh_http_request_get_path(req);
  char buf[7];
  size_t total = 0;
  ssize_t k;
  if (strcmp(path, "/ws") == 0) {
    gh_http_stream_t *st = NULL;
    gh_http_response_set_status(resp, 101, NULL);
    gh_http_response_set_header(resp, "Upgrade", "echo", GH_HEADER_REPLACE);
    if (gh_http_context_upgrade(ctx, &st) == 0) {
      char b[16];
      ssize_t n = gh_http_stream_read(st, b, sizeof(b), 2000);
      if (n > 0)
        (void)gh_http_stream_write(st, b, (size_t)n, 2000);
      assert_int_equal(gh_http_stream_pending(st), 0);
      assert_true(gh_http_stream_get_fd(st) >= 0);
      (void)gh_http_stream_shutdown_write(st);
    }
    return GH_REQUEST_FINISH;
  }
  if (fields_case(resp, path))
    return GH_REQUEST_FINISH;
  if (strcmp(path, "/addr") == 0) {
    const char *a = NULL, *p = NULL;
    (void)gh_http_context_get_server_variable(ctx, "REMOTE_ADDR", &a);
    (void)gh_http_context_get_server_variable(ctx, "REMOTE_PORT", &p);
    gh_http_response_printf(resp, "addr=%s:%s.", a ? a : "?", p ? p : "?");
    return GH_REQUEST_FINISH;
  }
  if (strcmp(path, "/hints") == 0) {
    const char *h[] = {"Link", "</x.css>; rel=preload"};
    assert_int_equal(gh_http_response_send_interim(resp, 103, h, 1), 0);
    assert_int_equal(gh_http_context_client_gone(ctx), 0);
  }
  seen_length = gh_http_request_get_content_length(req);
  while ((k = gh_http_request_read_body(req, buf, sizeof(buf))) > 0)
    total += (size_t)k;
  gh_http_response_printf(resp, "%s n=%zu", k == 0 ? "ok" : "err", total);
  return GH_REQUEST_FINISH;
}

static int streamer_register(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *server)
{
  (void)server;
  (void)v;
  int ret = gh_module_registration_set_streamed_body(reg);
  if (ret == 0)
    ret = gh_module_registration_set_execute_handler(reg, stream_execute);
  return ret;
}

static gh_request_status_t watch_entity(void *module, gh_http_context_t *ctx,
                                        gh_event_provider_t *prov)
{
  (void)module;
  (void)ctx;
  const void *d;
  size_t n;
  if (gh_event_provider_get_entity(prov, &d, &n) == 0) {
    entities++;
    entity_bytes += n;
  }
  return GH_REQUEST_CONTINUE;
}

static int watcher_register(uint32_t v, gh_module_registration_t *reg, gh_module_server_t *server)
{
  (void)server;
  (void)v;
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_read_entity = watch_entity};
  return gh_module_registration_set_factory(reg, &f);
}

static void handle(gh_request_t *req, void *arg)
{
  (void)gh_pipeline_process(arg, "/", req);
}

typedef struct fixture {
  gh_pipeline_t *pl;
  gh_server_t *srv;
  int port;
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof(*f));
  const char *kv[] = {"handler", "streamer", NULL};
  char err[256];
  f->pl = fake_pipeline(kv);
  gh_module_abi_t a1 = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "streamer"};
  gh_module_abi_t a2 = {GH_MODULE_ABI_VERSION, GH_MODULE_SIGNATURE, "watcher"};
  assert_int_equal(gh_pipeline_add_module(f->pl, &a2, watcher_register, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_add_module(f->pl, &a1, streamer_register, err, sizeof(err)), 0);
  assert_int_equal(gh_pipeline_start(f->pl), 0);
  /* what gatehoused does: the site's handler asked, its group streams */
  assert_true(gh_pipeline_site_streams_body(f->pl, "/"));
  assert_int_equal(gh_pipeline_site_streams_body(f->pl, "/nosuch"), 0);
  gh_server_config_t cfg;
  gh_server_config_init(&cfg);
  cfg.max_body = 16; /* a buffered body this size would be refused */
  assert_int_equal(gh_server_new(&cfg, &f->srv), 0);
  assert_int_equal(gh_server_add_listener(f->srv, "127.0.0.1:0"), 0);
  gh_url_group_t *g;
  assert_int_equal(gh_server_add_url_group(f->srv, "/", NULL, NULL, &g), 0);
  assert_int_equal(gh_url_group_set_stream_body(g, 1), 0);
  assert_int_equal(gh_server_start(f->srv), 0);
  assert_int_equal(gh_server_run_workers(f->srv, 2, handle, f->pl), 0);
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(gh_server_listener_address(f->srv, 0, &ss, &len), 0);
  f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  gh_server_shutdown(f->srv, 1000);
  gh_server_free(f->srv);
  gh_pipeline_free(f->pl);
  free(f);
  return 0;
}

static int connect_tcp(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

static void send_all(int fd, const char *s)
{
  assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

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

static void test_chunked_through_pipeline(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f->port);
  entities = 0;
  entity_bytes = 0;
  send_all(fd, "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "14\r\n0123456789abcdefghij\r\n");
  usleep(50000);
  send_all(fd, "a\r\nklmnopqrst\r\n0\r\n\r\n");
  char *resp = read_until(fd, "n=30", 3000);
  assert_non_null(strstr(resp, "HTTP/1.1 200 OK"));
  assert_non_null(strstr(resp, "ok n=30")); /* above max_body 16: streamed */
  free(resp);
  assert_int_equal(seen_length, -1);
  assert_int_equal(entity_bytes, 30);
  assert_true(entities >= 5); /* one READ_ENTITY per 7-byte piece */
  close(fd);
}

static void test_length_and_hints(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f->port);
  send_all(fd, "POST /hints HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n"
               "0123456789012345678901234567890123456789");
  char *resp = read_until(fd, "n=40", 3000);
  assert_true(
      strncmp(resp, "HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\n", 57) == 0);
  assert_non_null(strstr(resp, "HTTP/1.1 200 OK"));
  assert_non_null(strstr(resp, "ok n=40"));
  free(resp);
  assert_int_equal(seen_length, 40);
  close(fd);
}

static void test_upgrade_through_pipeline(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f->port);
  send_all(fd, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
  char *resp = read_until(fd, "\r\n\r\n", 3000);
  assert_non_null(strstr(resp, "HTTP/1.1 101 Switching Protocols\r\n"));
  assert_non_null(strstr(resp, "Upgrade: echo\r\n"));
  assert_non_null(strstr(resp, "Connection: upgrade\r\n"));
  free(resp);
  send_all(fd, "hello");
  resp = read_until(fd, "hello", 3000);
  assert_string_equal(resp, "hello");
  free(resp);
  char c;
  assert_int_equal(recv(fd, &c, 1, 0), 0); /* closed at the end of the request */
  close(fd);
}

/* The response to GET path on a new connection (closed by the client). */
static char *get(fixture_t *f, const char *path, const char *until)
{
  char req[256];
  int fd = connect_tcp(f->port);
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", path);
  send_all(fd, req);
  char *resp = read_until(fd, until, 3000);
  close(fd);
  return resp;
}

static void test_fields_through_glue(void **state)
{
  fixture_t *f = *state;
  char *resp = get(f, "/fields", "\r\n\r\nfields");
  assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
  assert_null(strstr(resp, "Injected"));
  assert_null(strstr(resp, "X-C"));
  assert_non_null(strstr(resp, "\r\nX-L: a, b\r\n"));
  assert_non_null(strstr(resp, "\r\nx-r: 3\r\n"));
  assert_null(strstr(resp, "X-R:"));
  assert_null(strstr(resp, "X-T:"));
  assert_non_null(strstr(resp, "\r\nX-U: u\r\n"));
  assert_non_null(strstr(resp, "\r\nContent-Length: 6\r\n"));
  free(resp);
}

/* Names only the core writes, and a name with a byte that is no tchar, set by
 * a module: never on the wire with the module's value. */
static void test_reserved_fields_through_glue(void **state)
{
  fixture_t *f = *state;
  const char *paths[] = {"/reserved/Date", "/reserved/connection", "/reserved/Transfer-Encoding",
                         "/paren"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    char *resp = get(f, paths[i], "\r\n\r\nfields");
    assert_non_null(strstr(resp, "fields"));
    assert_null(strstr(resp, "module"));
    assert_null(strstr(resp, "X(a)"));
    assert_null(strstr(resp, "chunked"));
    free(resp);
  }
}

/* A module's Content-Length: digits go out as its framing, anything else
 * never reaches the wire. */
static void test_content_length_through_glue(void **state)
{
  fixture_t *f = *state;
  char *resp = get(f, "/cl/5", "hello");
  assert_non_null(strstr(resp, "\r\nContent-Length: 5\r\n"));
  assert_null(strstr(resp, "chunked"));
  assert_non_null(strstr(resp, "\r\n\r\nhello"));
  free(resp);
  const char *bad[] = {"/cl/12x", "/cl/-1", "/cl/99999999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    resp = get(f, bad[i], "hello");
    assert_null(strstr(resp, bad[i] + 4));
    assert_non_null(strstr(resp, "hello"));
    free(resp);
  }
}

/* The address texts are formatted once per connection: each new connection
 * (whose object the core may reuse) shows its own port. */
static void test_remote_address_per_connection(void **state)
{
  fixture_t *f = *state;
  for (int i = 0; i < 3; i++) {
    int fd = connect_tcp(f->port);
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    char want[64];
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
    snprintf(want, sizeof(want), "addr=127.0.0.1:%u.", ntohs(me.sin_port));
    for (int j = 0; j < 2; j++) { /* twice on the connection: the cached text */
      send_all(fd, "GET /addr HTTP/1.1\r\nHost: h\r\n\r\n");
      char *resp = read_until(fd, want, 3000);
      assert_non_null(strstr(resp, want));
      free(resp);
    }
    close(fd);
    usleep(20000); /* the server frees the connection object: the next may reuse it */
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunked_through_pipeline),
      cmocka_unit_test(test_fields_through_glue),
      cmocka_unit_test(test_reserved_fields_through_glue),
      cmocka_unit_test(test_content_length_through_glue),
      cmocka_unit_test(test_remote_address_per_connection),
      cmocka_unit_test(test_length_and_hints),
      cmocka_unit_test(test_upgrade_through_pipeline),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, setup, teardown);
}

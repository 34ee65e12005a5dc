/* test_stream.c: streamed request bodies, 1xx interim responses, client_gone and Upgrade over
 * loopback, Unix and TLS. */
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
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <gatehouse/httpapi.h>

typedef struct fixture {
  gh_server_t *srv;
  gh_url_group_t *stream, *small, *buffered;
  int port, tls_port;
  char unix_path[64], cert_path[64];
} fixture_t;

/* A self-signed certificate and key in one PEM file. */
static void write_cert(const char *path)
{
  EVP_PKEY *pk = EVP_RSA_gen(2048);
  X509 *x = X509_new();
  assert_non_null(pk);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, pk);
  assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
  FILE *f = fopen(path, "we");
  assert_non_null(f);
  assert_true(PEM_write_X509(f, x) == 1);
  assert_true(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(pk);
}

static int port_of(gh_server_t *srv, unsigned i)
{
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(gh_server_listener_address(srv, i, &ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof(*f));
  gh_server_config_t cfg;
  char addr[128];
  gh_server_config_init(&cfg);
  cfg.max_body = 1000;
  cfg.send_timeout_ms = 3000;
  assert_int_equal(gh_server_new(&cfg, &f->srv), 0);
  assert_int_equal(gh_server_add_listener(f->srv, "127.0.0.1:0"), 0);
  snprintf(f->unix_path, sizeof(f->unix_path), "/tmp/gh-test-stream-%d.sock", (int)getpid());
  snprintf(addr, sizeof(addr), "unix:%s", f->unix_path);
  assert_int_equal(gh_server_add_listener(f->srv, addr), 0);
  snprintf(f->cert_path, sizeof(f->cert_path), "/tmp/gh-test-stream-%d.pem", (int)getpid());
  write_cert(f->cert_path);
  const char *certs[] = {f->cert_path};
  gh_tls_config_t tls = {.cert_files = certs, .n_certs = 1};
  assert_int_equal(gh_server_add_tls_listener(f->srv, "127.0.0.1:0", &tls, NULL, 0), 0);
  f->port = port_of(f->srv, 0);
  f->tls_port = port_of(f->srv, 2);
  gh_url_group_props_t sp = {.stream_body = 1, .body_timeout_ms = 1500};
  gh_url_group_props_t small = {.stream_body = 1, .max_body = 100};
  assert_int_equal(gh_server_add_url_group(f->srv, "/s", &sp, NULL, &f->stream), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/small", &small, NULL, &f->small), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/", NULL, NULL, &f->buffered), 0);
  assert_int_equal(gh_url_group_get_props(f->stream)->max_body, 0); /* unlimited */
  assert_int_equal(gh_url_group_get_props(f->buffered)->max_body, 1000);
  assert_int_equal(gh_server_start(f->srv), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  gh_server_shutdown(f->srv, 1000);
  gh_server_free(f->srv);
  unlink(f->cert_path);
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

static int connect_unix(const char *path)
{
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* A client connection: plain socket, or TLS over it. */
typedef struct client {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
} client_t;

__attribute__((unused)) static void client_tls(client_t *c, int port)
{
  c->fd = connect_tcp(port);
  c->ctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(c->ctx);
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, c->fd);
  assert_int_equal(SSL_connect(c->ssl), 1);
}

static void client_close(client_t *c)
{
  SSL_free(c->ssl);
  SSL_CTX_free(c->ctx);
  close(c->fd);
  memset(c, 0, sizeof(*c));
}

static void csend(client_t *c, const void *buf, size_t len)
{
  if (c->ssl != NULL)
    assert_int_equal(SSL_write(c->ssl, buf, (int)len), (int)len);
  else
    assert_int_equal(send(c->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void csends(client_t *c, const char *s)
{
  csend(c, s, strlen(s));
}

/* Reads until `until` appears, EOF, or a timeout; returns a malloc'ed string. */
static char *cread_until(client_t *c, const char *until, int timeout_ms)
{
  size_t cap = 65536, len = 0;
  char *buf = calloc(1, cap + 1);
  while (len < cap) {
    ssize_t n;
    if (c->ssl == NULL || SSL_pending(c->ssl) == 0) {
      struct pollfd p = {.fd = c->fd, .events = POLLIN};
      if (poll(&p, 1, timeout_ms) <= 0)
        break;
    }
    if (c->ssl != NULL)
      n = SSL_read(c->ssl, buf + len, (int)(cap - len));
    else
      n = recv(c->fd, buf + len, cap - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    if (until != NULL && strstr(buf, until) != NULL)
      break;
  }
  return buf;
}

__attribute__((unused)) static bool peer_closed(int fd)
{
  char c[4096];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 3000) <= 0)
      return false;
    ssize_t n = recv(fd, c, sizeof(c), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
    if (n < 0)
      return false;
  }
}

static gh_request_t *receive(fixture_t *f)
{
  gh_request_t *r = NULL;
  assert_int_equal(gh_server_receive(f->srv, 3000, &r), 0);
  return r;
}

/* Reads the whole body n bytes at a time. */
static size_t read_all(gh_request_t *r, char *out, size_t cap, size_t n)
{
  size_t got = 0;
  for (;;) {
    assert_true(got + n <= cap);
    ssize_t k = gh_request_read_body(r, out + got, n);
    assert_true(k >= 0);
    if (k == 0)
      break;
    got += (size_t)k;
  }
  return got;
}

static void reply(gh_request_t *r, const char *body)
{
  assert_int_equal(gh_response_send(r, body, strlen(body), 0), 0);
  assert_int_equal(gh_request_complete(r), 0);
}

static void test_content_length_small_reads(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, "POST /s/up HTTP/1.1\r\nHost: h\r\nContent-Length: 26\r\n\r\nabcdefghijklm");
  gh_request_t *r = receive(f);
  assert_int_equal(gh_request_get_body_length(r), 26);
  assert_ptr_equal(gh_request_get_url_group(r), f->stream);
  char b[64];
  size_t got = 0;
  assert_int_equal(gh_request_read_body(r, b, 3), 3);
  got = 3;
  csends(&c, "nopqrstuvwxyz");
  got += read_all(r, b + got, sizeof(b) - got, 3);
  assert_int_equal(got, 26);
  assert_memory_equal(b, "abcdefghijklmnopqrstuvwxyz", 26);
  size_t bl;
  assert_null(gh_request_get_body(r, &bl));
  reply(r, "ok");
  char *resp = cread_until(&c, "ok", 2000);
  assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
  assert_null(strstr(resp, "Connection: close"));
  free(resp);
  /* the connection is kept: the next request parses */
  csends(&c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  r = receive(f);
  assert_string_equal(gh_request_get_path(r), "/x");
  reply(r, "second");
  resp = cread_until(&c, "second", 2000);
  assert_non_null(strstr(resp, "second"));
  free(resp);
  client_close(&c);
}

static void test_chunked_small_reads(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_unix(f->unix_path)};
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5;ext=1\r\nhello\r\n1\r\n \r\n");
  gh_request_t *r = receive(f);
  assert_int_equal(gh_request_get_body_length(r), SIZE_MAX);
  char b[64];
  size_t got = 0;
  ssize_t k = gh_request_read_body(r, b, 2);
  assert_int_equal(k, 2);
  got = 2;
  csends(&c, "5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
  got += read_all(r, b + got, sizeof(b) - got, 2);
  assert_int_equal(got, 11);
  assert_memory_equal(b, "hello world", 11);
  reply(r, "ok");
  r = receive(f); /* the pipelined request after the body */
  assert_string_equal(gh_request_get_path(r), "/next");
  reply(r, "next");
  char *resp = cread_until(&c, "next", 2000);
  assert_non_null(strstr(resp, "ok"));
  free(resp);
  client_close(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_content_length_small_reads),
      cmocka_unit_test(test_chunked_small_reads),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, setup, teardown);
}

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
#include <sys/wait.h>
#include <time.h>
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
  gh_url_group_props_t sp = {.body_timeout_ms = 1500};
  gh_url_group_props_t small = {.max_body = 100};
  assert_int_equal(gh_server_add_url_group(f->srv, "/s", &sp, NULL, &f->stream), 0);
  assert_int_equal(gh_server_add_url_group(f->srv, "/small", &small, NULL, &f->small), 0);
  assert_int_equal(gh_url_group_set_stream_body(f->stream, 1), 0);
  assert_int_equal(gh_url_group_set_stream_body(f->small, 1), 0);
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

static void client_tls(client_t *c, int port)
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

static bool peer_closed(int fd)
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

/* ---- bounded memory -------------------------------------------------------- */

#define BIG_TOTAL (100u * 1024 * 1024)
#define BIG_CHUNK 65536

static void *big_sender(void *arg)
{
  int fd = *(int *)arg;
  static char chunk[BIG_CHUNK];
  char line[32];
  memset(chunk, 'z', sizeof(chunk));
  const char *head = "PUT /s/big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0)
    return NULL;
  for (size_t sent = 0; sent < BIG_TOTAL; sent += BIG_CHUNK) {
    int n = snprintf(line, sizeof(line), "%x\r\n", BIG_CHUNK);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0 ||
        send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0 || send(fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
      return NULL;
  }
  (void)send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
  return NULL;
}

static size_t heap_in_use(void)
{
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/* 100 MB chunked, read in 64 KiB pieces: the heap never holds more than a
 * few pieces (a buffered body would take 100 MB). */
static void test_big_chunked_bounded(void **state)
{
  fixture_t *f = *state;
  int fd = connect_tcp(f->port);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, big_sender, &fd), 0);
  gh_request_t *r = receive(f);
  static char buf[BIG_CHUNK];
  size_t base = heap_in_use(), peak = base, total = 0;
  for (;;) {
    ssize_t k = gh_request_read_body(r, buf, sizeof(buf));
    assert_true(k >= 0);
    if (k == 0)
      break;
    assert_int_equal(buf[0], 'z');
    total += (size_t)k;
    size_t now = heap_in_use();
    if (now > peak)
      peak = now;
  }
  pthread_join(th, NULL);
  assert_int_equal(total, BIG_TOTAL);
  print_message("# heap growth while streaming 100 MB: %zu bytes\n", peak - base);
  assert_true(peak - base < 2u * 1024 * 1024);
  reply(r, "big");
  client_t c = {.fd = fd};
  char *resp = cread_until(&c, "big", 3000);
  assert_non_null(strstr(resp, "HTTP/1.1 200 OK"));
  free(resp);
  close(fd);
}

/* ---- framing errors -------------------------------------------------------- */

/* A bad body: the read fails with want, the client gets status (the
 * application sends nothing) and a closed connection; the server goes on. */
static void bad_body(fixture_t *f, const char *path, const char *head, const char *body, int want,
                     const char *status)
{
  client_t c = {.fd = connect_tcp(f->port)};
  char req[8192];
  snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: h\r\n%s\r\n", path, head);
  csends(&c, req);
  csends(&c, body);
  gh_request_t *r = receive(f);
  char buf[256];
  ssize_t k;
  do
    k = gh_request_read_body(r, buf, sizeof(buf));
  while (k > 0);
  assert_int_equal(k, want);
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), want); /* sticky */
  assert_int_equal(gh_request_complete(r), 0);
  char *resp = cread_until(&c, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, status));
  assert_non_null(strstr(resp, "Connection: close"));
  free(resp);
  assert_true(peer_closed(c.fd));
  client_close(&c);
  /* the server still serves */
  c.fd = connect_tcp(f->port);
  csends(&c, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  r = receive(f);
  reply(r, "alive");
  resp = cread_until(&c, "alive", 2000);
  assert_non_null(strstr(resp, "alive"));
  free(resp);
  client_close(&c);
}

static void test_bad_chunks(void **state)
{
  fixture_t *f = *state;
  const char *te = "Transfer-Encoding: chunked\r\n";
  bad_body(f, "/s", te, "zz\r\nhello\r\n0\r\n\r\n", GH_EPARSE, "400 Bad Request");
  bad_body(f, "/s", te, "5\r\nhelloXX0\r\n\r\n", GH_EPARSE, "400 Bad Request");
  bad_body(f, "/s", te, "5\nhello\r\n0\r\n\r\n", GH_EPARSE, "400 Bad Request");
  bad_body(f, "/s", te, "fffffffffffffffffff\r\n", GH_EPARSE, "400 Bad Request");
  /* a size line with 5000 bytes of extensions */
  char line[6000];
  memset(line, 'a', sizeof(line));
  memcpy(line, "5;x=", 4);
  memcpy(line + 5000, "\r\nhello\r\n0\r\n\r\n", 15);
  bad_body(f, "/s", te, line, GH_EPARSE, "400 Bad Request");
  /* over the group's max_body, chunked and by Content-Length */
  char big[300];
  memset(big, 'b', sizeof(big));
  memcpy(big, "c8\r\n", 4);
  big[sizeof(big) - 1] = '\0';
  bad_body(f, "/small", te, big, GH_ELIMIT, "413 ");
}

static void test_too_big_length(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, "POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n");
  char *resp = cread_until(&c, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "413 "));
  free(resp);
  client_close(&c);
}

static void test_timeout_and_gone(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  gh_request_t *r = receive(f);
  char buf[16];
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), 3);
  assert_int_equal(gh_request_client_gone(r), 0);
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), GH_ETIMEOUT); /* 1.5 s */
  assert_int_equal(gh_request_complete(r), 0);
  char *resp = cread_until(&c, "\r\n\r\n", 2000);
  assert_non_null(strstr(resp, "408 "));
  free(resp);
  client_close(&c);

  c.fd = connect_tcp(f->port);
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  r = receive(f);
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), 3);
  assert_int_equal(gh_request_client_gone(r), 0);
  client_close(&c);
  for (int i = 0; i < 100 && !gh_request_client_gone(r); i++)
    usleep(10000);
  assert_int_equal(gh_request_client_gone(r), 1);
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), GH_ECLOSED);
  gh_request_complete(r);
}

/* ---- 100-continue, interim ------------------------------------------------ */

static void test_expect_continue(void **state)
{
  fixture_t *f = *state;
  /* answered without reading: no 100, and the connection closes */
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  gh_request_t *r = receive(f);
  assert_int_equal(gh_response_set_status(r, 403, NULL), 0);
  reply(r, "no");
  char *resp = cread_until(&c, "no", 2000);
  assert_null(strstr(resp, "100 Continue"));
  assert_non_null(strstr(resp, "HTTP/1.1 403 "));
  assert_non_null(strstr(resp, "Connection: close"));
  free(resp);
  assert_true(peer_closed(c.fd));
  client_close(&c);

  /* a 100 on a request that did not ask for one is dropped */
  c.fd = connect_tcp(f->port);
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab");
  r = receive(f);
  assert_int_equal(gh_request_send_interim(r, 100, NULL, 0), 0);
  reply(r, "plain");
  resp = cread_until(&c, "plain", 2000);
  assert_null(strstr(resp, "100 Continue"));
  free(resp);
  client_close(&c);

  /* a relayed 100 stands for the server's own: exactly one */
  c.fd = connect_tcp(f->port);
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  r = receive(f);
  assert_int_equal(gh_request_send_interim(r, 100, NULL, 0), 0);
  assert_int_equal(gh_request_send_interim(r, 100, NULL, 0), 0);
  resp = cread_until(&c, "\r\n\r\n", 2000);
  assert_string_equal(resp, "HTTP/1.1 100 Continue\r\n\r\n");
  free(resp);
  csends(&c, "ab");
  char two[8];
  assert_int_equal(read_all(r, two, sizeof(two), 4), 2);
  reply(r, "relayed");
  resp = cread_until(&c, "relayed", 2000);
  assert_null(strstr(resp, "100 Continue"));
  free(resp);
  client_close(&c);

  /* read: 100 Continue first, then the body is read */
  c.fd = connect_tcp(f->port);
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  r = receive(f);
  resp = cread_until(&c, "\r\n\r\n", 300);
  assert_string_equal(resp, ""); /* nothing before the first read */
  free(resp);
  char buf[64];
  /* the client sends the body once it sees the 100 (from this thread after the read started) */
  int pid = fork();
  if (pid == 0) {
    char *cont = cread_until(&c, "\r\n\r\n", 3000);
    if (strstr(cont, "HTTP/1.1 100 Continue\r\n\r\n") != NULL)
      csends(&c, "hello");
    free(cont);
    _exit(0);
  }
  size_t got = read_all(r, buf, sizeof(buf), 8);
  assert_int_equal(got, 5);
  assert_memory_equal(buf, "hello", 5);
  waitpid(pid, NULL, 0);
  reply(r, "yes");
  resp = cread_until(&c, "yes", 2000);
  assert_non_null(strstr(resp, "200 OK"));
  free(resp);
  client_close(&c);
}

static void test_interim(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, "GET /page HTTP/1.1\r\nHost: h\r\n\r\n");
  gh_request_t *r = receive(f);
  const char *hdrs[] = {"Link", "</a.css>; rel=preload", "Link", "</b.js>; rel=preload"};
  const char *bad[] = {"Bad Name", "x"};
  const char *crlf[] = {"X", "a\r\nb"};
  assert_int_equal(gh_request_send_interim(r, 101, NULL, 0), -EINVAL);
  assert_int_equal(gh_request_send_interim(r, 200, NULL, 0), -EINVAL);
  assert_int_equal(gh_request_send_interim(r, 103, bad, 1), -EINVAL);
  assert_int_equal(gh_request_send_interim(r, 103, crlf, 1), -EINVAL);
  assert_int_equal(gh_request_send_interim(r, 103, hdrs, 2), 0);
  assert_int_equal(gh_response_send(r, "final", 5, GH_SEND_MORE_DATA), 0);
  assert_int_equal(gh_request_send_interim(r, 103, hdrs, 2), GH_ESTATE);
  assert_int_equal(gh_response_send(r, NULL, 0, 0), 0);
  assert_int_equal(gh_request_complete(r), 0);
  char *resp = cread_until(&c, "0\r\n\r\n", 2000);
  assert_true(strncmp(resp,
                      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                      "Link: </b.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n",
                      strlen("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                             "Link: </b.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")) == 0);
  free(resp);
  /* HTTP/1.0: dropped */
  csends(&c, "GET /p10 HTTP/1.0\r\n\r\n");
  r = receive(f);
  assert_int_equal(gh_request_send_interim(r, 103, hdrs, 2), 0);
  reply(r, "ten");
  resp = cread_until(&c, "ten", 2000);
  assert_null(strstr(resp, "103"));
  free(resp);
  client_close(&c);
}

/* ---- unread bodies ---------------------------------------------------------- */

static void test_unread_small_drained(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  /* a body that looks like a request, then a real pipelined request */
  const char *evil = "GET /evil HTTP/1.1\r\nHost: h\r\n\r\n";
  char req[512];
  snprintf(req, sizeof(req),
           "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n%sGET /real HTTP/1.1\r\n"
           "Host: h\r\n\r\n",
           strlen(evil), evil);
  csends(&c, req);
  gh_request_t *r = receive(f);
  usleep(100000); /* all of it arrived */
  reply(r, "first");
  r = receive(f);
  assert_string_equal(gh_request_get_path(r), "/real"); /* never /evil */
  reply(r, "second");
  char *resp = cread_until(&c, "second", 2000);
  assert_null(strstr(resp, "Connection: close"));
  free(resp);
  client_close(&c);
}

static void test_unread_big_closed(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  size_t n = 200000;
  char *body = calloc(1, n + 200);
  const char *evil = "GET /evil HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t i = 0; i + strlen(evil) <= n; i += strlen(evil))
    memcpy(body + i, evil, strlen(evil));
  char head[128];
  snprintf(head, sizeof(head), "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", n);
  csends(&c, head);
  /* only part of the body: the rest comes after the response */
  csend(&c, body, 100000);
  gh_request_t *r = receive(f);
  char buf[10];
  assert_int_equal(gh_request_read_body(r, buf, sizeof(buf)), 10); /* partly read */
  usleep(100000);
  reply(r, "partial");
  char *resp = cread_until(&c, "partial", 2000);
  assert_non_null(strstr(resp, "Connection: close"));
  free(resp);
  (void)send(c.fd, body + 100000, n - 100000, MSG_NOSIGNAL);
  assert_true(peer_closed(c.fd));
  gh_request_t *none = NULL;
  assert_int_equal(gh_server_receive(f->srv, 300, &none), GH_ETIMEOUT); /* never /evil */
  free(body);
  client_close(&c);
}

/* ---- Upgrade --------------------------------------------------------------- */

static const char up_req[] = "GET /s/ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                             "Upgrade: echo\r\n\r\nleftover";

/* Server side of the echo: the leftover bytes first, then a round trip. */
static void echo_server(gh_request_t *r)
{
  gh_stream_t *st = NULL;
  assert_int_equal(gh_response_set_status(r, 101, NULL), 0);
  assert_int_equal(gh_response_set_header(r, "X-Up", "1"), 0);
  assert_int_equal(gh_request_upgrade(r, &st), 0);
  assert_non_null(st);
  assert_true(gh_stream_get_fd(st) >= 0);
  char buf[64];
  size_t got = 0;
  while (got < 8) {
    ssize_t k = gh_stream_read(st, buf + got, sizeof(buf) - got, 2000);
    assert_true(k > 0);
    got += (size_t)k;
  }
  assert_memory_equal(buf, "leftover", 8);
  assert_int_equal(gh_stream_read(st, buf, sizeof(buf), 100), GH_ETIMEOUT);
  assert_int_equal(gh_stream_write(st, "ready", 5, 2000), 0);
  got = 0;
  while (got < 4) {
    ssize_t k = gh_stream_read(st, buf + got, sizeof(buf) - got, 2000);
    assert_true(k > 0);
    got += (size_t)k;
  }
  assert_memory_equal(buf, "ping", 4);
  assert_int_equal(gh_stream_write(st, "pong", 4, 2000), 0);
  assert_int_equal(gh_stream_shutdown_write(st), 0);
  assert_int_equal(gh_stream_read(st, buf, sizeof(buf), 2000), 0); /* client EOF */
  assert_int_equal(gh_request_send_interim(r, 103, NULL, 0), GH_ESTATE);
  assert_int_equal(gh_request_complete(r), 0);
}

typedef struct up_client {
  client_t *c;
  bool ok;
} up_client_t;

static void *echo_client(void *arg)
{
  up_client_t *u = arg;
  client_t *c = u->c;
  char *head = cread_until(c, "ready", 3000);
  u->ok = strstr(head, "HTTP/1.1 101 Switching Protocols\r\n") == head &&
          strstr(head, "Connection: upgrade\r\n") != NULL &&
          strstr(head, "Upgrade: echo\r\n") != NULL && strstr(head, "X-Up: 1\r\n") != NULL &&
          strstr(head, "\r\n\r\nready") != NULL;
  free(head);
  csends(c, "ping");
  char *pong = cread_until(c, "pong", 3000);
  u->ok = u->ok && strcmp(pong, "pong") == 0;
  free(pong);
  if (c->ssl != NULL)
    SSL_shutdown(c->ssl);
  shutdown(c->fd, SHUT_WR);
  return NULL;
}

static void upgrade_echo(fixture_t *f, client_t *c)
{
  csends(c, up_req);
  gh_request_t *r = receive(f);
  up_client_t u = {.c = c};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, echo_client, &u), 0);
  echo_server(r);
  pthread_join(th, NULL);
  assert_true(u.ok);
  assert_true(peer_closed(c->fd)); /* closed at complete */
  client_close(c);
}

static void test_upgrade_tcp(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_tcp(f->port)};
  upgrade_echo(f, &c);
}

static void test_upgrade_unix(void **state)
{
  fixture_t *f = *state;
  client_t c = {.fd = connect_unix(f->unix_path)};
  upgrade_echo(f, &c);
}

static void test_upgrade_tls(void **state)
{
  fixture_t *f = *state;
  client_t c;
  client_tls(&c, f->tls_port);
  upgrade_echo(f, &c);
}

static void refused(fixture_t *f, const char *req, int status)
{
  client_t c = {.fd = connect_tcp(f->port)};
  csends(&c, req);
  gh_request_t *r = receive(f);
  gh_stream_t *st = NULL;
  assert_int_equal(gh_response_set_status(r, status, NULL), 0);
  assert_int_equal(gh_request_upgrade(r, &st), GH_ESTATE);
  assert_null(st);
  reply(r, "plain"); /* a 101 never goes out without the upgrade */
  char *resp = cread_until(&c, "plain", 2000);
  assert_null(strstr(resp, "101"));
  free(resp);
  client_close(&c);
}

static void test_upgrade_refused(void **state)
{
  fixture_t *f = *state;
  refused(f, "GET /s HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", 101);
  refused(f, "GET /s HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\n\r\n", 101);
  refused(f, "GET /s HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n", 101);
  refused(f, "GET /s HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n", 200);
  /* a streamed body not read to its end */
  refused(f,
          "POST /s HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n"
          "Content-Length: 3\r\n\r\nabc",
          101);
}

/* ---- TLS and inline workers ------------------------------------------------ */

static void test_stream_tls(void **state)
{
  fixture_t *f = *state;
  client_t c;
  client_tls(&c, f->tls_port);
  csends(&c, "POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  gh_request_t *r = receive(f);
  char buf[64];
  assert_int_equal(gh_request_read_body(r, buf, 2), 2);
  csends(&c, "4\r\ndefg\r\n0\r\n\r\n");
  size_t got = 2 + read_all(r, buf + 2, sizeof(buf) - 2, 5);
  assert_int_equal(got, 7);
  assert_memory_equal(buf, "abcdefg", 7);
  reply(r, "tls-ok");
  char *resp = cread_until(&c, "tls-ok", 2000);
  assert_non_null(strstr(resp, "200 OK"));
  free(resp);
  client_close(&c);
}

static void echo_handler(gh_request_t *r, void *arg)
{
  (void)arg;
  char buf[65536], out[64];
  size_t total = 0;
  ssize_t k;
  while ((k = gh_request_read_body(r, buf, sizeof(buf))) > 0)
    total += (size_t)k;
  snprintf(out, sizeof(out), "%s:%zu", k == 0 ? "got" : "err", total);
  gh_response_send(r, out, strlen(out), 0);
  gh_request_complete(r);
}

/* The inline-worker path (what gatehoused runs). */
static void test_inline_workers(void **state)
{
  (void)state;
  gh_server_t *srv;
  gh_url_group_t *g;
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_add_url_group(srv, "/", NULL, NULL, &g), 0);
  assert_int_equal(gh_url_group_set_stream_body(g, 1), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, 2, echo_handler, NULL), 0);
  client_t c = {.fd = connect_tcp(port_of(srv, 0))};
  csends(&c, "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  char *body = malloc(3000000);
  memset(body, 'q', 3000000);
  for (int i = 0; i < 3; i++) {
    csends(&c, "f4240\r\n"); /* 1,000,000 */
    csend(&c, body, 1000000);
    csends(&c, "\r\n");
  }
  csends(&c, "0\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");
  char *resp = cread_until(&c, "Content-Length: 5\r\n\r\ngot:3", 5000);
  assert_non_null(strstr(resp, "\r\n\r\ngot:3000000HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(resp, "Content-Length: 5\r\n\r\ngot:3"));
  free(resp);
  free(body);
  client_close(&c);
  gh_server_shutdown(srv, 1000);
  gh_server_free(srv);
}

static void stuck_handler(gh_request_t *r, void *arg)
{
  gh_stream_t *st = NULL;
  char b[16];
  (void)arg;
  gh_response_set_status(r, 101, NULL);
  if (gh_request_upgrade(r, &st) == 0)
    (void)gh_stream_read(st, b, sizeof(b), -1); /* waits forever */
  gh_request_complete(r);
}

/* A handler blocked on an upgraded stream without a timeout: shutdown
 * cuts its connection after the grace and joins it. */
static void test_shutdown_cuts_stream(void **state)
{
  (void)state;
  gh_server_t *srv;
  assert_int_equal(gh_server_new(NULL, &srv), 0);
  assert_int_equal(gh_server_add_listener(srv, "127.0.0.1:0"), 0);
  assert_int_equal(gh_server_start(srv), 0);
  assert_int_equal(gh_server_run_workers(srv, 1, stuck_handler, NULL), 0);
  client_t c = {.fd = connect_tcp(port_of(srv, 0))};
  csends(&c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n");
  char *resp = cread_until(&c, "\r\n\r\n", 3000);
  assert_non_null(strstr(resp, "101 Switching"));
  free(resp);
  uint64_t t0 = (uint64_t)time(NULL);
  assert_int_equal(gh_server_shutdown(srv, 300), GH_ETIMEOUT);
  assert_true((uint64_t)time(NULL) - t0 < 5);
  gh_server_free(srv);
  client_close(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_content_length_small_reads),
      cmocka_unit_test(test_chunked_small_reads),
      cmocka_unit_test(test_big_chunked_bounded),
      cmocka_unit_test(test_bad_chunks),
      cmocka_unit_test(test_too_big_length),
      cmocka_unit_test(test_timeout_and_gone),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_interim),
      cmocka_unit_test(test_unread_small_drained),
      cmocka_unit_test(test_unread_big_closed),
      cmocka_unit_test(test_upgrade_tcp),
      cmocka_unit_test(test_upgrade_unix),
      cmocka_unit_test(test_upgrade_tls),
      cmocka_unit_test(test_upgrade_refused),
      cmocka_unit_test(test_stream_tls),
      cmocka_unit_test(test_inline_workers),
      cmocka_unit_test(test_shutdown_cuts_stream),
  };
  signal(SIGPIPE, SIG_IGN);
  if (getenv("GH_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("GH_TEST_FILTER"));
  if (getenv("GH_TEST_SKIP") != NULL) /* e.g. the 100 MB test under valgrind */
    cmocka_set_skip_filter(getenv("GH_TEST_SKIP"));
  return cmocka_run_group_tests(tests, setup, teardown);
}

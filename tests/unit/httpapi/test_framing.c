/* test_framing.c: unit tests for response framing decisions and head serialisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/framing.h"

static void test_choose(void **state)
{
  (void)state;
  bool ka = true;
  assert_int_equal(gh__framing_choose(200, 11, true, false, &ka), GH__FRAME_LENGTH);
  assert_true(ka);
  assert_int_equal(gh__framing_choose(200, 11, false, false, &ka), GH__FRAME_CHUNKED);
  assert_true(ka);
  assert_int_equal(gh__framing_choose(200, 11, false, true, &ka), GH__FRAME_LENGTH);
  assert_int_equal(gh__framing_choose(204, 11, true, false, &ka), GH__FRAME_NOBODY);
  assert_int_equal(gh__framing_choose(304, 11, false, false, &ka), GH__FRAME_NOBODY);
  assert_int_equal(gh__framing_choose(101, 11, true, false, &ka), GH__FRAME_NOBODY);
  assert_true(ka);
  assert_int_equal(gh__framing_choose(200, 10, false, false, &ka), GH__FRAME_CLOSE);
  assert_false(ka);
}

static char *render(const gh__resp_head_t *h)
{
  size_t n = gh__framing_head_len(h);
  char *buf = malloc(n + 1);
  assert_int_equal(gh__framing_head_write(h, buf), n);
  buf[n] = '\0';
  return buf;
}

#define HDR(n, v) {n, v, sizeof(n) - 1, sizeof(v) - 1}

static void test_head(void **state)
{
  (void)state;
  gh__resp_hdr_t hdrs[] = {HDR("Content-Type", "text/plain"), {NULL, "removed", 0, 7},
                           HDR("WWW-Authenticate", "Negotiate"), HDR("WWW-Authenticate", "Basic")};
  gh__resp_head_t h = {.status = 200, .hdrs = hdrs, .n_hdrs = 4, .frame = GH__FRAME_LENGTH,
                       .content_length = 12345, .keep_alive = true, .version = 11,
                       .date = "Sun, 06 Nov 1994 08:49:37 GMT", .server = "gh"};
  char *s = render(&h);
  assert_string_equal(s, "HTTP/1.1 200 OK\r\nServer: gh\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                         "Content-Type: text/plain\r\nWWW-Authenticate: Negotiate\r\n"
                         "WWW-Authenticate: Basic\r\nContent-Length: 12345\r\n\r\n");
  free(s);
  gh__resp_head_t h2 = {.status = 401, .reason = "Go away", .frame = GH__FRAME_CHUNKED,
                        .keep_alive = false, .version = 11};
  s = render(&h2);
  assert_string_equal(s, "HTTP/1.1 401 Go away\r\nTransfer-Encoding: chunked\r\n"
                         "Connection: close\r\n\r\n");
  free(s);
  gh__resp_head_t h3 = {.status = 204, .frame = GH__FRAME_NOBODY, .keep_alive = true,
                        .version = 10, .server = ""};
  s = render(&h3);
  assert_string_equal(s, "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
  free(s);
  gh__resp_hdr_t cl[] = {HDR("Content-Length", "5")};
  gh__resp_head_t h4 = {.status = 200, .hdrs = cl, .n_hdrs = 1, .frame = GH__FRAME_LENGTH,
                        .content_length = 99, .app_length = true, .keep_alive = true,
                        .version = 11};
  s = render(&h4);
  assert_string_equal(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  free(s);
}

/* Lengths given by the caller (lens) are the ones used: the texts may go on
 * past them, as a borrowed reason or server string never does. */
static void test_head_given_lengths(void **state)
{
  (void)state;
  gh__resp_head_t h = {.status = 502, .reason = "Bad GatewayXX", .frame = GH__FRAME_LENGTH,
                       .content_length = 0, .keep_alive = true, .version = 11,
                       .date = "Sun, 06 Nov 1994 08:49:37 GMTXX", .server = "ghXX",
                       .lens = true, .reason_len = 11, .date_len = 29, .server_len = 2};
  char *s = render(&h);
  assert_string_equal(s, "HTTP/1.1 502 Bad Gateway\r\nServer: gh\r\n"
                         "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n");
  free(s);
  h.server_len = 0; /* as "": none */
  s = render(&h);
  assert_null(strstr(s, "Server"));
  free(s);
}

static void test_reason_and_chunk(void **state)
{
  (void)state;
  assert_string_equal(gh__framing_reason(404), "Not Found");
  assert_string_equal(gh__framing_reason(431), "Request Header Fields Too Large");
  assert_string_equal(gh__framing_reason(799), "Unknown");
  char b[20];
  size_t n = gh__framing_chunk_header(0, b);
  assert_int_equal(n, 3);
  assert_memory_equal(b, "0\r\n", 3);
  n = gh__framing_chunk_header(0xabc12, b);
  assert_memory_equal(b, "abc12\r\n", n);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_choose),
    cmocka_unit_test(test_head),
    cmocka_unit_test(test_head_given_lengths),
    cmocka_unit_test(test_reason_and_chunk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_proxy_parts.c: unit tests of the proxy module's parts (lines, names, parser, pool). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy.h"

static void test_upstream_lines(void **state)
{
  char why[200];
  proxy_upstream_t *u;
  (void)state;
  assert_int_equal(proxy_upstream_check("http://127.0.0.1:8000", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("http://[::1]:80/app/", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("unix:/run/a.sock:/x", why, sizeof(why)), 0);
  assert_int_equal(proxy_upstream_check("http://h", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:0", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:99999", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("http://h:80/a b", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("https://h:80", why, sizeof(why)), -EINVAL);
  assert_int_equal(proxy_upstream_check("unix:rel.sock", why, sizeof(why)), -EINVAL);
  u = proxy_upstream_get("http://[::1]:80/app/");
  assert_non_null(u);
  assert_string_equal(u->host, "::1");
  assert_string_equal(u->port, "80");
  assert_string_equal(u->prefix, "/app");
  assert_true(u->has_prefix);
  assert_ptr_equal(proxy_upstream_get("http://[::1]:80/app/"), u); /* interned */
  u = proxy_upstream_get("unix:/run/a.sock:/");
  assert_true(u->is_unix && u->has_prefix);
  assert_string_equal(u->path, "/run/a.sock");
  assert_string_equal(u->prefix, "");
  u = proxy_upstream_get("http://h:1");
  assert_false(u->has_prefix);
  proxy_upstream_free_all();
}

static void test_names(void **state)
{
  (void)state;
  assert_true(proxy_is_hop_by_hop("connection", NULL));
  assert_true(proxy_is_hop_by_hop("Proxy-Authorization", NULL));
  assert_true(proxy_is_hop_by_hop("TE", NULL));
  assert_true(proxy_is_hop_by_hop("X-Secret", "keep-alive, x-secret"));
  assert_false(proxy_is_hop_by_hop("X-Secret", "keep-alive, x-secret2"));
  assert_false(proxy_is_hop_by_hop("Cookie", "close"));
  assert_true(proxy_name_eq_loose("x_remote_USER", "X-Remote-User"));
  assert_false(proxy_name_eq_loose("X-Remote-Users", "X-Remote-User"));
  assert_false(proxy_name_eq_loose("X-Remote", "X-Remote-User"));
}

typedef struct got {
  int heads[4];
  size_t n_heads;
  char body[256];
  size_t body_len;
} got_t;

static int on_head(void *arg, proxy_resp_t *r)
{
  got_t *g = arg;
  if (g->n_heads < 4)
    g->heads[g->n_heads++] = r->status;
  return 0;
}

static int on_body(void *arg, const char *d, size_t n)
{
  got_t *g = arg;
  if (g->body_len + n > sizeof(g->body))
    return 1;
  memcpy(g->body + g->body_len, d, n);
  g->body_len += n;
  return 0;
}

static proxy_resp_t R;

static ssize_t feed(const char *s, bool head, got_t *g)
{
  memset(g, 0, sizeof(*g));
  proxy_resp_init(&R, head, on_head, on_body, g);
  return proxy_resp_feed(&R, s, strlen(s));
}

static void test_parser(void **state)
{
  got_t g;
  const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!\n";
  char *big;
  (void)state;
  /* an answer, then another nobody asked for: parsing stops at the first */
  assert_int_equal(feed(two, false, &g), 44);
  assert_true(R.done && R.keep_alive);
  assert_int_equal(g.body_len, 6);
  /* interim heads, then the final one */
  assert_true(feed("HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 204 No\r\nX: y\r\n\r\n", false,
                   &g) > 0);
  assert_int_equal(g.n_heads, 2);
  assert_int_equal(g.heads[0], 103);
  assert_int_equal(g.heads[1], 204);
  assert_true(R.done);
  assert_string_equal(proxy_resp_field(&R, "x"), "y");
  /* HEAD: no body whatever Content-Length says */
  assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &g), 39);
  assert_true(R.done);
  assert_int_equal(R.content_length, 10);
  /* chunked */
  assert_true(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                   false, &g) > 0);
  assert_true(R.done && R.chunked);
  assert_int_equal(g.body_len, 3);
  /* close-delimited: complete at EOF only */
  assert_true(feed("HTTP/1.0 200 OK\r\n\r\nabc", false, &g) > 0);
  assert_false(R.done);
  assert_int_equal(proxy_resp_feed(&R, "", 0), 0);
  assert_true(R.done && !R.keep_alive);
  /* EOF before the end of a length */
  assert_true(feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", false, &g) > 0);
  assert_int_equal(proxy_resp_feed(&R, "", 0), -1);
  /* invalid */
  assert_int_equal(feed("HTTP/1.1 2x0 OK\r\n\r\n", false, &g), -1);
  assert_int_equal(feed("garbage\r\n\r\n", false, &g), -1);
  /* limits: field count and head size */
  big = malloc(PROXY_MAX_HEAD + 100);
  strcpy(big, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i <= PROXY_MAX_HEADERS; i++)
    sprintf(big + strlen(big), "X-%d: v\r\n", i);
  strcat(big, "\r\n");
  assert_int_equal(feed(big, false, &g), -1);
  assert_string_equal(R.error, "too many response header fields");
  strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
  memset(big + strlen(big), 'a', PROXY_MAX_HEAD);
  strcpy(big + PROXY_MAX_HEAD + 20, "\r\n\r\n");
  assert_int_equal(feed(big, false, &g), -1);
  assert_string_equal(R.error, "response head too large");
  free(big);
}

/* A response parsed part on one thread's parser, the rest on a copy (the
 * relay waiting mid-way): fields split across the pieces keep their text,
 * the chunked body continues. */
static void test_parser_move(void **state)
{
  static proxy_resp_t moved;
  const char *a = "HTTP/1.1 200 OK\r\nX-One: fir", *b = "st\r\nX-Two: second\r\n";
  const char *c = "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", *d = "2\r\nde\r\n0\r\n\r\n";
  got_t g;
  (void)state;
  memset(&g, 0, sizeof(g));
  proxy_resp_init(&R, false, on_head, on_body, &g);
  assert_int_equal(proxy_resp_feed(&R, a, strlen(a)), (ssize_t)strlen(a));
  proxy_resp_move(&moved, &R);
  memset(&R, 0x5a, sizeof(R)); /* the thread's parser goes on with other work */
  assert_int_equal(proxy_resp_feed(&moved, b, strlen(b)), (ssize_t)strlen(b));
  assert_int_equal(proxy_resp_feed(&moved, c, strlen(c)), (ssize_t)strlen(c));
  assert_int_equal(g.n_heads, 1);
  assert_string_equal(proxy_resp_field(&moved, "x-one"), "first");
  assert_string_equal(proxy_resp_field(&moved, "X-Two"), "second");
  proxy_resp_move(&R, &moved);
  memset(&moved, 0x5a, sizeof(moved));
  assert_int_equal(proxy_resp_feed(&R, d, strlen(d)), (ssize_t)strlen(d));
  assert_true(R.done && R.chunked && R.keep_alive);
  assert_int_equal(g.body_len, 5);
  assert_memory_equal(g.body, "abcde", 5);
}

static void test_pool_identity(void **state)
{
  proxy_upstream_t *u = proxy_upstream_get("http://127.0.0.1:9");
  int sv[2], sw[2];
  (void)state;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sw), 0);
  uint64_t key = 0;
  proxy_pool_put(u, "uid:20001", sv[0], 11, 8);
  proxy_pool_put(u, NULL, sw[0], 12, 8);
  /* a connection opened as alice never goes to bob nor to the shared pool */
  assert_int_equal(proxy_pool_take(u, "uid:20002", &key), -1);
  assert_int_equal(proxy_pool_take(u, NULL, &key), sw[0]);
  assert_int_equal(key, 12); /* the connection's key comes back with it */
  assert_int_equal(proxy_pool_take(u, NULL, &key), -1);
  assert_int_equal(proxy_pool_take(u, "uid:20001", &key), sv[0]);
  assert_int_equal(key, 11);
  /* an idle connection that became readable (stray bytes, or closed) is not reused */
  proxy_pool_put(u, NULL, sw[0], 12, 8);
  assert_int_equal(write(sw[1], "x", 1), 1);
  assert_int_equal(proxy_pool_take(u, NULL, &key), -1);
  close(sv[0]);
  close(sv[1]);
  close(sw[1]);
  proxy_upstream_free_all();
}

/* The printf-free formatters give what the former snprintf calls gave. */
static void test_formatters(void **state)
{
  static const uint64_t nums[] = {0, 9, 10, 99, 100, 4294967295u, 4294967296u, UINT64_MAX};
  char d[PROXY_U64_LEN], want[64];
  (void)state;
  for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
    snprintf(want, sizeof(want), "%llu", (unsigned long long)nums[i]);
    assert_int_equal(proxy_fmt_u64(d, nums[i]), strlen(want));
    assert_string_equal(d, want);
  }
  assert_string_equal(d, "18446744073709551615");
}

/* Via / X-Forwarded-For / Forwarded values, against the former
 * snprintf(line[768], ...) formats: IPv4, IPv6, no prior chain, and chains
 * long enough to be cut at 767 bytes anywhere in the composed value. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation" /* the cut is what is compared */
static void test_forwarding_values(void **state)
{
  static const char *const addrs[] = {"127.0.0.1", "::1", "2001:db8:85a3::8a2e:370:7334",
                                      "fe80::1%eth0", "unknown"};
  static const size_t prior_lens[] = {0, 1, 700, 740, 755, 760, 765, 766, 767, 800};
  static char prior[1024];
  proxy_line_t l;
  char want[PROXY_LINE_MAX];
  (void)state;
  memset(prior, 'a', sizeof(prior));
  for (size_t a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++) {
    for (size_t p = 0; p < sizeof(prior_lens) / sizeof(prior_lens[0]); p++) {
      const char *pr = prior_lens[p] ? prior : NULL, *addr = addrs[a];
      const char *host = p % 2 ? "example.org:8080" : NULL;
      bool v6 = strchr(addr, ':') != NULL;
      prior[prior_lens[p]] = '\0';
      proxy_fwd_chain(&l, pr, addr);
      snprintf(want, sizeof(want), "%s%s%s", pr ? pr : "", pr ? ", " : "", addr);
      assert_string_equal(l.s, want);
      assert_int_equal(l.len, strlen(want));
      proxy_fwd_chain(&l, pr, "1.1 gatehouse");
      snprintf(want, sizeof(want), "%s%s%s gatehouse", pr ? pr : "", pr ? ", " : "", "1.1");
      assert_string_equal(l.s, want);
      proxy_fwd_forwarded(&l, pr, addr, "https", host);
      snprintf(want, sizeof(want), "%s%sfor=%s%s%s;proto=%s%s%s%s", pr ? pr : "", pr ? ", " : "",
               v6 ? "\"[" : "", addr, v6 ? "]\"" : "", "https", host ? ";host=\"" : "",
               host ? host : "", host ? "\"" : "");
      assert_string_equal(l.s, want);
      assert_int_equal(l.len, strlen(want));
      prior[prior_lens[p]] = 'a';
    }
  }
  proxy_fwd_forwarded(&l, NULL, "::1", "http", NULL);
  assert_string_equal(l.s, "for=\"[::1]\";proto=http");
}
#pragma GCC diagnostic pop

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upstream_lines),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_parser),
      cmocka_unit_test(test_parser_move),
      cmocka_unit_test(test_pool_identity),
      cmocka_unit_test(test_formatters),
      cmocka_unit_test(test_forwarding_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

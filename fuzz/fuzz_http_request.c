/* fuzz_http_request.c: libFuzzer target feeding bytes through the HTTP request parsing path (parser glue, URL split), the fast path against libhttp-parser's. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/http_parse.h"
#include "httpapi/url.h"
#include "util/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: byte 0 picks the split pattern and limits (bit 1 also a small
 * Authorization budget), byte 1 the body limit after headers (body_ctl *
 * 4) and, by its low bit, streaming (a stream_body group: the decoded body
 * is taken out after every feed, and may never exceed that feed); the rest is the byte stream of one connection (pipelined
 * requests, chunked bodies, garbage). The stream is fed in pieces of varying
 * size, like reads from a socket, and every event is handled the way the I/O
 * thread handles it.
 *
 * Every stream is run twice: as the server runs it, and with every message
 * through libhttp-parser (fast_off). The two runs must see the same events
 * with the same used counts, statuses and results (a hash of all of them,
 * every field in order): the fast path reads a head exactly as the slow
 * path does, or leaves it alone.
 */

/* FNV-1a over the run's events and results. */
static void mix(uint64_t *h, const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    *h = (*h ^ b[i]) * UINT64_C(0x100000001b3);
}

static void mix_u64(uint64_t *h, uint64_t v)
{
  mix(h, &v, sizeof(v));
}

static void mix_head(uint64_t *h, const gh__http_msg_t *m)
{
  mix_u64(h, m->method);
  mix(h, m->url, m->url_len + 1);
  uint64_t flags = (uint64_t)m->http_major << 32 | (uint64_t)m->http_minor << 16 |
                   (uint64_t)m->has_content_length << 5 | (uint64_t)m->chunked << 4 |
                   (uint64_t)m->expect_continue << 3 | (uint64_t)m->keep_alive << 2 |
                   (uint64_t)m->head << 1;
  mix_u64(h, flags);
  mix_u64(h, m->content_length);
  mix_u64(h, m->n_headers);
  for (unsigned i = 0; i < m->n_headers; i++) {
    mix(h, m->headers[i].name, m->headers[i].name_len + 1);
    mix(h, m->headers[i].value, m->headers[i].value_len + 1);
  }
}

/* The checks at GH__HTTP_HEADERS; false when the owner gives up. */
static bool on_headers(gh__http_parser_t *p, gh__http_msg_t *msg, gh__pool_t *pool,
                       uint8_t body_ctl)
{
  char *path = NULL, *query = NULL;
  if (msg->url == NULL || strlen(msg->url) != msg->url_len)
    abort();
  if (gh__url_split(msg->url, msg->url_len, pool, &path, &query) == 0) {
    if (path[0] != '/' && path[0] != '*')
      abort();
    if (strstr(path, "/../") != NULL)
      abort();
  }
  for (unsigned i = 0; i < msg->n_headers; i++)
    if (strlen(msg->headers[i].name) != msg->headers[i].name_len ||
        strlen(msg->headers[i].value) != msg->headers[i].value_len)
      abort();
  (void)gh__http_msg_header(msg, "host");
  if (body_ctl & 1)
    gh__http_parser_set_stream(p);
  return gh__http_parser_set_max_body(p, body_ctl * 4u) == 0;
}

/* One connection's stream through the parser; the hash of what it saw. */
static uint64_t run(const gh__http_limits_t *lim, const char *in, size_t len, uint8_t ctl,
                    uint8_t body_ctl, bool fast_off, gh__pool_t *pool)
{
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  size_t step = (ctl >> 4) == 0 ? len : (size_t)(ctl >> 4);
  gh__http_parser_t p;
  gh__http_msg_t msg;
  memset(&msg, 0, sizeof(msg));
  gh__http_parser_init(&p, lim);
  p.fast_off = fast_off;
  gh__http_parser_begin(&p, &msg);
  size_t pos = 0;
  int dead = 0;
  while (pos < len && !dead) {
    size_t n = len - pos < step ? len - pos : step;
    /* vary the piece size along the stream */
    step = step * 7 % 13 + 1;
    size_t off = 0;
    while (off < n) {
      size_t used = 0;
      int r = gh__http_parser_feed(&p, in + pos + off, n - off, &used);
      off += used;
      mix_u64(&h, (uint64_t)(r + 1) << 32 | used);
      if (r == GH__HTTP_ERROR) {
        if (p.status < 400 || p.status > 599)
          abort();
        mix_u64(&h, (uint64_t)p.status);
        dead = 1;
        break;
      }
      if (r == GH__HTTP_HEADERS) {
        mix_head(&h, &msg);
        if (!on_headers(&p, &msg, pool, body_ctl)) {
          dead = 1;
          break;
        }
      } else if (r == GH__HTTP_DONE) {
        if (msg.body_len > body_ctl * 4u || p.body_seen > body_ctl * 4u)
          abort();
        mix_u64(&h, msg.keep_alive);
        mix(&h, msg.body, msg.body_len);
        gh__pool_reset(pool);
        gh__http_parser_begin(&p, &msg);
      } else if (used == 0) {
        break;
      }
      if (p.stream) {
        /* what stream.c does between reads: the body buffer holds one feed */
        if (msg.body_len > used)
          abort();
        mix(&h, msg.body, msg.body_len);
        msg.body_len = 0;
      }
    }
    pos += n;
  }
  gh__http_msg_done(&msg);
  return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  uint8_t ctl = data[0], body_ctl = data[1];
  const char *in = (const char *)data + 2;
  size_t len = size - 2;
  gh__http_limits_t lim = {
    .max_uri = (ctl & 1) ? 64 : 8192,
    .max_header_bytes = (ctl & 2) ? 128 : 16384,
    .max_header_count = (ctl & 4) ? 4 : 100,
    .max_body = (ctl & 8) ? 16 : 1 << 20,
    /* the Authorization budget of the default 64 KiB token, or a small one */
    .max_authz_bytes = (ctl & 2) ? 96 : 87448,
  };
  gh__pool_t *pool = gh__pool_new(1024);
  if (pool == NULL)
    return 0;
  uint64_t fast = run(&lim, in, len, ctl, body_ctl, false, pool);
  gh__pool_reset(pool);
  uint64_t slow = run(&lim, in, len, ctl, body_ctl, true, pool);
  if (fast != slow)
    abort(); /* the fast path read a head otherwise than libhttp-parser */
  gh__pool_free(pool);
  return 0;
}

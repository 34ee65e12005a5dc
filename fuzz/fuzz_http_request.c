/* fuzz_http_request.c: libFuzzer target feeding bytes through the HTTP request parsing path (parser glue, URL split). */
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
 */
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
  size_t step = (ctl >> 4) == 0 ? len : (size_t)(ctl >> 4);
  gh__http_parser_t p;
  gh__http_msg_t msg;
  gh__pool_t *pool = gh__pool_new(1024);
  if (pool == NULL)
    return 0;
  memset(&msg, 0, sizeof(msg));
  gh__http_parser_init(&p, &lim);
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
      if (r == GH__HTTP_ERROR) {
        if (p.status < 400 || p.status > 599)
          abort();
        dead = 1;
        break;
      }
      if (r == GH__HTTP_HEADERS) {
        char *path = NULL, *query = NULL;
        if (msg.url == NULL || strlen(msg.url) != msg.url_len)
          abort();
        if (gh__url_split(msg.url, msg.url_len, pool, &path, &query) == 0) {
          if (path[0] != '/' && path[0] != '*')
            abort();
          if (strstr(path, "/../") != NULL)
            abort();
        }
        for (unsigned i = 0; i < msg.n_headers; i++)
          if (strlen(msg.headers[i].name) != msg.headers[i].name_len ||
              strlen(msg.headers[i].value) != msg.headers[i].value_len)
            abort();
        (void)gh__http_msg_header(&msg, "host");
        if (body_ctl & 1)
          gh__http_parser_set_stream(&p);
        if (gh__http_parser_set_max_body(&p, body_ctl * 4u) != 0) {
          dead = 1;
          break;
        }
      } else if (r == GH__HTTP_DONE) {
        if (msg.body_len > body_ctl * 4u || p.body_seen > body_ctl * 4u)
          abort();
        gh__pool_reset(pool);
        gh__http_parser_begin(&p, &msg);
      } else if (used == 0) {
        break;
      }
      if (p.stream) {
        /* what stream.c does between reads: the body buffer holds one feed */
        if (msg.body_len > used)
          abort();
        msg.body_len = 0;
      }
    }
    pos += n;
  }
  gh__http_msg_done(&msg);
  gh__pool_free(pool);
  return 0;
}

/* fuzz_proxy_response.c: libFuzzer target for the proxy's upstream response parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/proxy/proxy_resp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
  size_t body, heads;
  const char *start, *end; /* the input: body bytes point into it */
} seen_t;

static int check_head(void *arg, proxy_resp_t *r)
{
  seen_t *s = arg;
  s->heads++;
  if (r->n > PROXY_MAX_HEADERS || r->head_len >= PROXY_MAX_HEAD || r->status < 100 ||
      r->status > 599 || strlen(r->reason) >= sizeof(r->reason))
    abort();
  for (size_t i = 0; i < r->n; i++)
    if (r->f[i].name < r->head || r->f[i].value < r->head ||
        r->f[i].value + strlen(r->f[i].value) >= r->head + PROXY_MAX_HEAD)
      abort();
  (void)proxy_resp_field(r, "Connection");
  return 0;
}

static int count_body(void *arg, const char *d, size_t len)
{
  seen_t *s = arg;
  if (d < s->start || d + len > s->end)
    abort();
  s->body += len;
  return 0;
}

/* First byte: bit 0 the request was HEAD, the rest where the input is
 * split in two reads; then the bytes, then EOF. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static proxy_resp_t r;
  seen_t s = {0};
  size_t split;
  ssize_t a, b = 0;
  if (size < 1)
    return 0;
  split = size > 1 ? (data[0] >> 1) % size : 0;
  s.start = (const char *)data + 1;
  s.end = (const char *)data + size;
  proxy_resp_init(&r, data[0] & 1, check_head, count_body, &s);
  data++;
  size--;
  if (split > size)
    split = size;
  a = proxy_resp_feed(&r, (const char *)data, split);
  if (a >= 0 && (size_t)a == split && !r.done && size > split)
    b = proxy_resp_feed(&r, (const char *)data + split, size - split);
  if (a >= 0 && b >= 0 && !r.done)
    (void)proxy_resp_feed(&r, "", 0);
  if ((a >= 0 && (size_t)a > split) || b > (ssize_t)(size - split) || s.body > size ||
      (r.done && !r.final_head))
    abort();
  return 0;
}

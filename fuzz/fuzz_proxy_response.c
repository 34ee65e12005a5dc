/* fuzz_proxy_response.c: libFuzzer target for the proxy's upstream response parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/proxy/proxy_resp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
  size_t body, heads;
  uint64_t hash;           /* of the body bytes, in order */
  uint64_t fields;         /* of the heads' fields (name, value, kind), in order */
  const char *start, *end; /* the piece being fed: body bytes point into it */
} seen_t;

static uint64_t hash_str(uint64_t h, const char *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
  return (h ^ 0x100) * 0x100000001b3ull; /* the end of the string */
}

static int check_head(void *arg, proxy_resp_t *r)
{
  seen_t *s = arg;
  s->heads++;
  if (r->n > PROXY_MAX_HEADERS || r->head_len > PROXY_MAX_HEAD || r->status < 100 ||
      r->status > 599 || strlen(r->reason) >= sizeof(r->reason) || r->done)
    abort();
  for (size_t i = 0; i < r->n; i++) {
    const proxy_field_t *f = &r->f[i];
    if (f->name < r->head || f->value < r->head || f->name_len != strlen(f->name) ||
        f->value + strlen(f->value) >= r->head + r->head_len ||
        classify(f->name, f->name_len) != (f->kind & ~(uint32_t)PROXY_F_CONN_NAMED))
      abort();
    s->fields = hash_str(s->fields, f->name, f->name_len);
    s->fields = hash_str(s->fields, f->value, strlen(f->value));
    s->fields = (s->fields ^ f->kind) * 0x100000001b3ull;
  }
  s->fields = hash_str(s->fields, r->reason, strlen(r->reason));
  (void)proxy_resp_field(r, "Connection");
  return 0;
}

static int count_body(void *arg, const char *d, size_t len)
{
  seen_t *s = arg;
  if (d < s->start || d + len > s->end || len == 0)
    abort();
  s->body += len;
  for (size_t i = 0; i < len; i++)
    s->hash = (s->hash ^ (unsigned char)d[i]) * 0x100000001b3ull;
  return 0;
}

/* What one way of feeding gave. */
typedef struct result {
  ssize_t used; /* total, or -1 */
  bool done, keep_alive;
  int status;
  const char *error;
  seen_t seen;
} result_t;

/* Feeds data in pieces of 1..max_piece bytes (a PRNG from seed; max_piece
 * 0: whole), then EOF; checks what must hold at every step. */
static void run(const uint8_t *data, size_t size, bool head, uint32_t seed, size_t max_piece,
                result_t *out)
{
  static proxy_resp_t r;
  size_t at = 0;
  bool failed = false;
  memset(out, 0, sizeof(*out));
  proxy_resp_init(&r, head, check_head, count_body, &out->seen);
  while (at < size && !r.done && !failed) {
    size_t piece = size - at;
    ssize_t u;
    if (max_piece > 0) {
      seed = seed * 1103515245u + 12345u;
      piece = 1 + (seed >> 8) % max_piece;
      if (piece > size - at)
        piece = size - at;
    }
    out->seen.start = (const char *)data + at;
    out->seen.end = (const char *)data + at + piece;
    u = proxy_resp_feed(&r, (const char *)data + at, piece);
    if (u > (ssize_t)piece || u < -1 || (u < 0 && r.error == NULL) ||
        (u >= 0 && (size_t)u < piece && !r.done))
      abort(); /* fewer than given only at the end of the response */
    failed = u < 0;
    at += u > 0 ? (size_t)u : 0;
  }
  if (!failed && !r.done && proxy_resp_feed(&r, "", 0) < 0)
    failed = true;
  if (out->seen.body > size || (r.done && !r.final_head) || (failed && r.error == NULL) ||
      (failed && r.done) || (!failed && !r.done))
    abort();
  /* done and error are sticky */
  if (failed && (proxy_resp_feed(&r, "x", 1) != -1 || proxy_resp_feed(&r, "", 0) != -1))
    abort();
  if (!failed && (proxy_resp_feed(&r, "", 0) != 0 || !r.done))
    abort();
  out->used = failed ? -1 : (ssize_t)at;
  out->done = r.done;
  out->keep_alive = r.keep_alive;
  out->status = r.status;
  out->error = r.error;
}

/* First byte: bit 0 the request was HEAD, the rest seeds how the input is
 * cut; the bytes are fed whole and in pieces, with the same outcome (the
 * same fields, the same error: fed whole, lines take proxy_resp.c's fast
 * reading; in pieces, mostly the general one). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  result_t whole, cut;
  bool head;
  if (size < 1)
    return 0;
  head = data[0] & 1;
  run(data + 1, size - 1, head, data[0], 0, &whole);
  run(data + 1, size - 1, head, data[0], 1 + (data[0] >> 1) % 64, &cut);
  if (whole.used != cut.used || whole.done != cut.done || whole.keep_alive != cut.keep_alive ||
      whole.status != cut.status || whole.seen.heads != cut.seen.heads ||
      whole.seen.body != cut.seen.body || whole.seen.hash != cut.seen.hash ||
      whole.seen.fields != cut.seen.fields || (whole.error == NULL) != (cut.error == NULL) ||
      (whole.error != NULL && strcmp(whole.error, cut.error) != 0))
    abort();
  return 0;
}

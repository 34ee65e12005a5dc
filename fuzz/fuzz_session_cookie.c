/* fuzz_session_cookie.c: libFuzzer target for session cookies — the Cookie header parser, then
 * opening each value found (base64url, sizes, GCM, the sealed claims); a second mode seals claims
 * made from the input and checks they open unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpapi/auth/auth_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the key of the committed corpus's sealed cookies: 32 bytes 0x01..0x20 */
static gh__session_keys_t *fuzz_keys(void)
{
  static gh__session_keys_t *k;
  uint8_t cur[GH__SESSION_KEY_LEN], prev[GH__SESSION_KEY_LEN];

  if (!k) {
    for (unsigned i = 0; i < GH__SESSION_KEY_LEN; i++) {
      cur[i] = (uint8_t)(i + 1);
      prev[i] = (uint8_t)(0xff - i);
    }
    if (gh__session_keys_from(cur, prev, &k) != 0)
      abort();
  }
  return k;
}

/* mode 1: claims from the bytes, sealed, opened, compared */
static void round_trip(const uint8_t *data, size_t size)
{
  gh__session_claims_t c, o;
  char v[GH__SESSION_VALUE_MAX + 1];
  size_t half = size / 2;
  int n;

  memset(&c, 0, sizeof(c));
  c.type = GH_AUTH_TYPE_BASIC;
  c.package = "Basic";
  c.issued = c.last_use = 1700000000;
  c.expiry = c.issued + 1 + (size ? data[0] : 0);
  memcpy(c.local, data, half > GH__SESSION_NAME_MAX ? GH__SESSION_NAME_MAX : half);
  memcpy(c.remote, data + half,
         size - half > GH__SESSION_NAME_MAX ? GH__SESSION_NAME_MAX : size - half);
  n = gh__session_seal(fuzz_keys(), "gh_session", "/", &c, v, sizeof(v));
  if (n < 0)
    return; /* an empty or NUL-shortened local name */
  if (gh__session_open(fuzz_keys(), "gh_session", "/", v, (size_t)n, (time_t)c.issued, 3600, 3600,
                       &o) != GH__SESSION_OK) {
    /* only control characters may be refused */
    for (const char *p = c.local; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return;
    for (const char *p = c.remote; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return;
    if (c.remote[0] == '\0')
      return;
    abort();
  }
  if (strcmp(o.local, c.local) != 0 || strcmp(o.remote, c.remote) != 0 || o.expiry != c.expiry)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *vals[GH__SESSION_MAX_CANDIDATES];
  size_t lens[GH__SESSION_MAX_CANDIDATES], n;
  gh__session_claims_t o;

  if (size > 0 && data[0] == 0x01) {
    round_trip(data + 1, size - 1);
    return 0;
  }
  n = gh__session_cookie_find((const char *)data, size, "gh_session", vals, lens,
                              GH__SESSION_MAX_CANDIDATES);
  if (n > GH__SESSION_MAX_CANDIDATES)
    abort();
  for (size_t i = 0; i < n; i++) {
    if (vals[i] < (const char *)data || vals[i] + lens[i] > (const char *)data + size)
      abort();
    (void)gh__session_open(fuzz_keys(), "gh_session", "/", vals[i], lens[i], 1700000100, 8 * 3600,
                           1800, &o);
  }
  return 0;
}

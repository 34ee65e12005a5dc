/* fuzz_auth_header.c: libFuzzer target for the Authorization header parser, the strict base64 decoder and the Basic user:pass split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: byte 0 picks the credential limit (0 = the default 64 KiB token,
 * else a small limit so the GH_ELIMIT paths are reached); the rest is one
 * Authorization header value as the engine receives it. The value goes
 * through the same steps as gh__auth_step: split into scheme and token68,
 * strict base64 decode into an exact-size heap buffer, and for Basic the
 * user:password split. Invariants checked (abort on violation, so libFuzzer
 * reports them):
 *  - every returned pointer lies inside the input;
 *  - a decoded length never exceeds gh__b64_decoded_max;
 *  - decoding is canonical: re-encoding the output gives the input back
 *    (ignoring '=' padding, which is optional at the end);
 *  - a Basic split yields a non-empty user without ':' and the lengths
 *    respect the documented limits.
 */

static void check(int cond)
{
  if (!cond)
    abort();
}

static size_t strip_pad(const char *s, size_t len)
{
  while (len > 0 && s[len - 1] == '=')
    len--;
  return len;
}

static void fuzz_b64(const char *cred, size_t cred_len)
{
  size_t max = gh__b64_decoded_max(cred_len), dec_len = 0;
  unsigned char *dec = malloc(max ? max : 1);
  char *enc = NULL;
  char *basic = NULL;

  if (!dec)
    return;
  if (gh__b64_decode(cred, cred_len, dec, &dec_len) != 0)
    goto out;
  check(dec_len <= max);
  enc = malloc(gh__b64_encoded_len(dec_len) + 1);
  if (!enc)
    goto out;
  gh__b64_encode(dec, dec_len, enc);
  check(strlen(enc) == gh__b64_encoded_len(dec_len));
  {
    size_t a = strip_pad(enc, strlen(enc)), b = strip_pad(cred, cred_len);
    check(a == b && memcmp(enc, cred, a) == 0);
  }

  /* Basic: the split modifies its buffer, give it an exact copy */
  basic = malloc(dec_len + 1);
  if (!basic)
    goto out;
  memcpy(basic, dec, dec_len);
  basic[dec_len] = '\0';
  {
    const char *user = NULL, *pw = NULL;
    if (gh__auth_basic_split(basic, dec_len, &user, &pw) == 0) {
      check(user >= basic && user < basic + dec_len + 1);
      check(pw >= basic && pw <= basic + dec_len);
      check(user[0] != '\0' && strchr(user, ':') == NULL);
      check(strlen(user) <= 256 && strlen(pw) <= 1024);
    }
  }
out:
  free(basic);
  free(enc);
  free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t max_b64 = data[0] == 0 ? gh__b64_encoded_len(GH_AUTH_MAX_TOKEN_DEFAULT) + 4 : data[0];
  size_t len = size - 1;
  /* an exact-size copy so ASan sees reads past the end of the value */
  char *value = malloc(len ? len : 1);
  gh__auth_scheme_id_t scheme = GH__AUTH_SCHEME_UNKNOWN;
  const char *sname = NULL, *cred = NULL;
  size_t slen = 0, clen = 0;

  if (!value)
    return 0;
  memcpy(value, data + 1, len);
  if (gh__auth_parse_header(value, len, max_b64, &scheme, &sname, &slen, &cred, &clen) == 0) {
    check(sname >= value && slen > 0 && sname + slen <= value + len);
    check(cred >= value && cred + clen <= value + len);
    check(clen <= max_b64);
    check(scheme >= GH__AUTH_SCHEME_UNKNOWN && scheme <= GH__AUTH_SCHEME_KERBEROS);
    if (clen > 0)
      fuzz_b64(cred, clen);
  }
  /* the decoder also runs on arbitrary bytes, as if the header parser let
   * anything through */
  fuzz_b64(value, len);
  free(value);
  return 0;
}

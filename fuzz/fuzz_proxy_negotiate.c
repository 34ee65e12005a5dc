/* fuzz_proxy_negotiate.c: libFuzzer target for the proxy's reading of an upstream's
 * WWW-Authenticate (the Negotiate token and its base64). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/proxy/proxy_negotiate.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *value = malloc(size + 1);
  unsigned char *raw = NULL;
  const char *tok;
  size_t tlen = 0, rlen = 0;
  if (value == NULL)
    return 0;
  memcpy(value, data, size);
  value[size] = '\0'; /* a field value is a C string here */
  tok = proxy_negotiate_token_of(value, &tlen);
  if (tok != NULL) {
    /* the token lies inside the value, ends before its end, has no blank */
    if (tok < value || tok + tlen > value + strlen(value) || tlen == 0 ||
        memchr(tok, ' ', tlen) != NULL)
      abort();
    if (decode_b64(tok, tlen, &raw, &rlen) == 0) {
      if (rlen > MAX_TOKEN || rlen > tlen / 4 * 3)
        abort();
      free(raw);
    }
  }
  free(value);
  return 0;
}

/* fuzz_range.c: libFuzzer target for the static module's Range header parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/static/static_util.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint64_t start = 0, len = 0, fsize = 0;
  char *v;
  if (size < 8)
    return 0;
  memcpy(&fsize, data, 8);
  fsize %= (1ull << 50);
  v = malloc(size - 8 + 1);
  if (v == NULL)
    return 0;
  memcpy(v, data + 8, size - 8);
  v[size - 8] = '\0';
  if (static_parse_range(v, size - 8, fsize, &start, &len) == STATIC_RANGE_OK) {
    if (len == 0 || start >= fsize || start + len > fsize)
      abort();
  }
  free(v);
  return 0;
}

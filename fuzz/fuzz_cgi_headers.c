/* fuzz_cgi_headers.c: libFuzzer target for the CGI response header parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/cgi/cgi_headers.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  cgi_headers_t h;
  char *buf = malloc(size ? size : 1);
  ssize_t r;
  if (buf == NULL)
    return 0;
  memcpy(buf, data, size);
  r = cgi_parse_headers(buf, size, &h);
  if (r > 0) {
    if ((size_t)r > size || h.n > CGI_MAX_HEADERS || h.status < 100 || h.status > 999)
      abort();
    for (size_t i = 0; i < h.n; i++)
      if (strlen(h.h[i].name) == 0 || strpbrk(h.h[i].value, "\r\n") != NULL)
        abort();
  }
  free(buf);
  return 0;
}

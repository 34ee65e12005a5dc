/* fuzz_path.c: libFuzzer target for URL path checks (static module) and the pipeline's root join. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/static/static_util.c"
#include "pipeline/pipeline_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* input: raw-URL NUL decoded-path */
  const char *nul = memchr(data, '\0', size);
  size_t rawlen = nul ? (size_t)(nul - (const char *)data) : size;
  size_t rellen = nul ? size - rawlen - 1 : 0;
  char *raw = malloc(rawlen + 1), *rel = malloc(rellen + 1);
  char out[512], joined[512];
  if (raw == NULL || rel == NULL)
    goto out;
  memcpy(raw, data, rawlen);
  raw[rawlen] = '\0';
  if (rellen)
    memcpy(rel, nul + 1, rellen);
  rel[rellen] = '\0';
  if (static_check_path(raw, rawlen, rel, rellen, out, sizeof(out)) == 0) {
    /* accepted paths never climb: no ".." segment, no leading '/' */
    if (out[0] == '/' || strcmp(out, "..") == 0 || strncmp(out, "../", 3) == 0 ||
        strstr(out, "/../") != NULL ||
        (strlen(out) >= 3 && strcmp(out + strlen(out) - 3, "/..") == 0))
      abort();
  }
  if (gh__pl_path_join("/srv/root", rel, joined, sizeof(joined)) >= 0) {
    if (strncmp(joined, "/srv/root", 9) != 0 || (joined[9] != '\0' && joined[9] != '/') ||
        strstr(joined, "/../") != NULL)
      abort();
  }
out:
  free(raw);
  free(rel);
  return 0;
}

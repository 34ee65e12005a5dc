/* fuzz_ntlm_facts.c: libFuzzer target for the NTLM AUTHENTICATE facts parser (MsvAvChannelBindings, MsvAvTargetName, the DOMAIN\\user for failure logs) used by channel and service binding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input is a decoded Negotiate/NTLM token as the engine gets it, copied
 * to an exact-size heap buffer so ASan sees any read past it. Invariants:
 * the SPN is NUL-terminated printable ASCII, the user name printable ASCII
 * or space; no bindings, and no user, without an AUTHENTICATE. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  gh__ntlm_auth_facts_t f;
  unsigned char *copy = malloc(size ? size : 1);
  if (copy == NULL)
    return 0;
  if (size)
    memcpy(copy, data, size);
  gh__ntlm_auth_facts(copy, size, &f);
  size_t n = strnlen(f.spn, sizeof(f.spn));
  if (n == sizeof(f.spn) || (f.has_cbt && !f.is_authenticate))
    abort();
  for (size_t i = 0; i < n; i++)
    if (f.spn[i] < 0x21 || f.spn[i] > 0x7e)
      abort();
  n = strnlen(f.user, sizeof(f.user));
  if (n == sizeof(f.user) || (n > 0 && !f.is_type3) || (f.is_authenticate && !f.is_type3))
    abort();
  for (size_t i = 0; i < n; i++)
    if (f.user[i] < 0x20 || f.user[i] > 0x7e)
      abort();
  free(copy);
  return 0;
}

/* fuzz_pac.c: libFuzzer target for the MS-PAC logon-info parser and the gss-ntlmssp SID list
 * (auth_pac.c), which turn a verified PAC or the DC's SID list into the token's SIDs. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_pac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input goes to both parsers, copied to an exact-size heap buffer so
 * ASan sees any read past it. Invariants: success gives at least two SIDs
 * for a PAC, one for a list, each a valid SID string; failure is -EBADMSG
 * or GH_ELIMIT. */
static void check(int rc, gh__sids_t *s, size_t min)
{
  if (rc == 0) {
    if (s == NULL || s->n < min || s->n > GH__PAC_MAX_SIDS)
      abort();
    for (size_t i = 0; i < s->n; i++)
      if (!gh__sid_valid(s->v[i]))
        abort();
  } else if ((rc != -EBADMSG && rc != GH_ELIMIT) || s != NULL) {
    abort();
  }
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t *copy = malloc(size ? size : 1);
  gh__sids_t *s = NULL;
  if (copy == NULL)
    return 0;
  if (size)
    memcpy(copy, data, size);
  int rc = gh__pac_logon_sids(copy, size, &s);
  check(rc, s, 2);
  s = NULL;
  rc = gh__ntlm_sids_parse((const char *)copy, size, &s);
  check(rc, s, 1);
  free(copy);
  return 0;
}

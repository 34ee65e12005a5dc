/* fuzz_krb5_apreq.c: libFuzzer target for the strict DER walker that finds the AP-REQ authenticator for the in-memory Kerberos replay cache, for the cache table, and for the failure diagnosis that decodes the AP-REQ it found. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse/error.h"
#include "httpapi/auth/auth_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input is a decoded Negotiate/Kerberos token, copied to an exact-size
 * heap buffer so ASan sees any read past it. Invariants: the result is 0, 1
 * or GH_EPARSE; a found ciphertext lies inside the token; the walk is
 * deterministic; a recorded tag is a replay until removed. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static gh__auth_rcache_t *rc;
  const uint8_t *ct = NULL, *ct2 = NULL;
  size_t ct_len = 0, ct2_len = 0;
  uint8_t *copy = malloc(size ? size : 1);
  int r, r2;

  if (copy == NULL)
    return 0;
  if (size)
    memcpy(copy, data, size);
  r = gh__krb5_find_authenticator(copy, size, &ct, &ct_len);
  r2 = gh__krb5_find_authenticator(copy, size, &ct2, &ct2_len);
  if (r != r2 || (r != 0 && r != 1 && r != GH_EPARSE))
    abort();
  if (r == 1) {
    static krb5_context k;
    gh__krb5_ap_req_t ap;
    gh__krb5_diag_t d;
    /* the spans nest: authenticator in AP-REQ in mechanism token in input */
    if (gh__krb5_find_ap_req(copy, size, &ap) != 1 || ap.cipher != ct || ap.mech < copy ||
        ap.mech_len > size || (size_t)(ap.mech - copy) > size - ap.mech_len ||
        ap.ap_req < ap.mech || (size_t)(ap.ap_req - ap.mech) > ap.mech_len - ap.ap_req_len ||
        ap.cipher < ap.ap_req || (size_t)(ap.cipher - ap.ap_req) > ap.ap_req_len - ct_len)
      abort();
    /* what a failed accept does with it (no keytab: decode only) */
    if (!k && krb5_init_context(&k) != 0)
      abort();
    gh__krb5_diagnose(k, NULL, ap.ap_req, ap.ap_req_len, &d);
    if (strnlen(d.service, sizeof(d.service)) == sizeof(d.service) || d.decrypted)
      abort();
  }
  if (r == 1) {
    uint8_t tag[GH__RCACHE_TAG_LEN];
    if (ct != ct2 || ct_len != ct2_len || ct < copy || ct_len > size ||
        (size_t)(ct - copy) > size - ct_len)
      abort();
    if (!rc && gh__auth_rcache_new(660, &rc) != 0)
      abort();
    if (gh__auth_rcache_tag(rc, ct, ct_len, tag) != 0)
      abort();
    /* a tag left by an earlier input with the same ciphertext is a replay */
    if (gh__auth_rcache_insert(rc, tag) == 0 &&
        (gh__auth_rcache_insert(rc, tag) != GH__RCACHE_REPLAY))
      abort();
    gh__auth_rcache_remove(rc, tag);
    if (gh__auth_rcache_insert(rc, tag) != 0)
      abort();
    if (size % 2)
      gh__auth_rcache_remove(rc, tag); /* keep some, drop some: probe chains */
  }
  free(copy);
  return 0;
}

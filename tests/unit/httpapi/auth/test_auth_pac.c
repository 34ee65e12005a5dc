/* test_auth_pac.c: the MS-PAC logon-info parser against PACs captured from the Samba AD DC (and one
 * with resource groups packed by Samba's NDR), its bounds on every truncation and count, and the
 * gss-ntlmssp SID list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_pac.h"

#define DOM "S-1-5-21-1613422837-4001849315-1543539556"

static uint8_t *load(const char *name, size_t *ret_len)
{
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", PAC_DATA_DIR, name);
  FILE *f = fopen(path, "rbe");
  assert_non_null(f);
  uint8_t *buf = malloc(4096);
  assert_non_null(buf);
  *ret_len = fread(buf, 1, 4096, f);
  fclose(f);
  return buf;
}

static void expect_sids(const gh__sids_t *s, const char *const *want, size_t n)
{
  assert_int_equal(s->n, n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(s->v[i], want[i]);
}

/* carla: member of gh-inner (1106), which is in gh-outer (1107): the DC puts
 * both in the PAC; S-1-18-1 (authentication authority asserted) is an ExtraSid */
static void test_carla(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("carla-logon-info.bin", &len);
  gh__sids_t *s = NULL;
  static const char *const want[] = {DOM "-1102", DOM "-513",  DOM "-513",
                                     DOM "-1106", DOM "-1107", "S-1-18-1"};
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), 0);
  expect_sids(s, want, 6);
  free(s);
  free(buf);
}

static void test_dmitri(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("dmitri-logon-info.bin", &len);
  gh__sids_t *s = NULL;
  static const char *const want[] = {DOM "-1103", DOM "-513", DOM "-513", DOM "-1108", "S-1-18-1"};
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), 0);
  expect_sids(s, want, 5);
  free(s);
  free(buf);
}

static void test_resource_groups(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("carla-resource-groups.bin", &len);
  gh__sids_t *s = NULL;
  static const char *const want[] = {DOM "-1102",           DOM "-513",           DOM "-513",
                                     DOM "-1106",           DOM "-1107",          "S-1-18-1",
                                     "S-1-5-21-1-2-3-1000", "S-1-5-21-1-2-3-1001"};
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), 0);
  expect_sids(s, want, 8);
  free(s);
  free(buf);
}

/* every prefix is refused, never read past (ASan builds check the reads) */
static void test_truncations(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("carla-logon-info.bin", &len);
  for (size_t l = 0; l < len; l++) {
    uint8_t *copy = malloc(l ? l : 1);
    gh__sids_t *s = NULL;
    memcpy(copy, buf, l);
    /* the private header's length keeps the object inside the buffer */
    int rc = gh__pac_logon_sids(copy, l, &s);
    assert_int_equal(rc, -EBADMSG);
    free(copy);
  }
  free(buf);
}

/* every byte flipped: an answer or an error, no crash, nothing past the buffer */
static void test_mutations(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("carla-resource-groups.bin", &len);
  for (size_t i = 0; i < len; i++)
    for (unsigned bit = 0; bit < 8; bit++) {
      uint8_t *copy = malloc(len);
      gh__sids_t *s = NULL;
      memcpy(copy, buf, len);
      copy[i] ^= (uint8_t)(1u << bit);
      int rc = gh__pac_logon_sids(copy, len, &s);
      if (rc == 0) {
        assert_true(s->n >= 2);
        for (size_t k = 0; k < s->n; k++)
          assert_true(gh__sid_valid(s->v[k]));
      } else {
        assert_true(rc == -EBADMSG || rc == GH_ELIMIT);
      }
      free(s);
      free(copy);
    }
  free(buf);
}

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* GroupCount (offset 0x80) or SidCount (0xd8) above the limit: GH_ELIMIT
 * before any allocation of that size; a count that disagrees with the
 * array's conformance count: malformed */
static void test_counts(void **state)
{
  (void)state;
  size_t len;
  uint8_t *buf = load("carla-logon-info.bin", &len);
  gh__sids_t *s = NULL;
  put32(buf + 0x80, GH__PAC_MAX_SIDS);
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), GH_ELIMIT);
  put32(buf + 0x80, 0xffffffffu);
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), GH_ELIMIT);
  put32(buf + 0x80, 3);
  put32(buf + 0xd8, 0xfffffff0u);
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), GH_ELIMIT);
  put32(buf + 0xd8, 1);
  put32(buf + 0x80, 4); /* conformance count still says 3 */
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), -EBADMSG);
  put32(buf + 0x80, 3);
  put32(buf + 0x08, 0x10000); /* object length past the buffer */
  assert_int_equal(gh__pac_logon_sids(buf, len, &s), -EBADMSG);
  assert_null(s);
  free(buf);
}

static void test_ntlm_sids(void **state)
{
  (void)state;
  static const char good[] = "S-1-5-21-1-2-3-1103,S-1-5-21-1-2-3-513,S-1-5-21-1-2-3-1108";
  gh__sids_t *s = NULL;
  assert_int_equal(gh__ntlm_sids_parse(good, sizeof(good), &s), 0); /* with the NUL */
  assert_int_equal(s->n, 3);
  assert_string_equal(s->v[0], "S-1-5-21-1-2-3-1103");
  assert_string_equal(s->v[2], "S-1-5-21-1-2-3-1108");
  free(s);
  s = NULL;
  assert_int_equal(gh__ntlm_sids_parse(good, sizeof(good) - 1, &s), 0); /* without */
  free(s);
  s = NULL;
  static const char *const bad[] = {"",
                                    ",",
                                    "S-1-5-21,",
                                    "S-1-5-21,,S-1-5",
                                    "S-1-5-021",
                                    "S-2-5-21",
                                    "S-1-5-21-4294967296",
                                    "S-1-281474976710656-1",
                                    "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
                                    "S-1-5-21 ",
                                    "S-1-5--21",
                                    "S-1-"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(gh__ntlm_sids_parse(bad[i], strlen(bad[i]), &s), -EBADMSG);
    assert_null(s);
  }
  static const char nul[] = "S-1-5-21\0S-1-5-32";
  assert_int_equal(gh__ntlm_sids_parse(nul, sizeof(nul), &s), -EBADMSG);
  assert_true(gh__sid_valid("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15"));
  assert_true(gh__sid_valid("S-1-0-0"));
  assert_false(gh__sid_valid("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_carla),           cmocka_unit_test(test_dmitri),
      cmocka_unit_test(test_resource_groups), cmocka_unit_test(test_truncations),
      cmocka_unit_test(test_mutations),       cmocka_unit_test(test_counts),
      cmocka_unit_test(test_ntlm_sids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

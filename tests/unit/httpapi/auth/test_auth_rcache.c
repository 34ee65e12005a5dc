/* test_auth_rcache.c: the in-memory Kerberos replay cache — replays refused, expiry, growth and shrinking back after a burst. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "httpapi/auth/auth_internal.h"

#define WINDOW 660u
#define T0 1000000u

static void tag_of(uint32_t i, uint8_t tag[GH__RCACHE_TAG_LEN])
{
  /* spread over the shards (tag[0]) and the slots (tag[1..8]) */
  uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull;
  memcpy(tag, &x, 8);
  memcpy(tag + 8, &i, 4);
}

static void test_replay_refused_and_expiry(void **state)
{
  gh__auth_rcache_t *rc = NULL;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  (void)state;
  assert_int_equal(gh__auth_rcache_new(WINDOW, &rc), 0);
  tag_of(1, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), 0);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), GH__RCACHE_REPLAY);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + WINDOW), GH__RCACHE_REPLAY);
  /* past the window MIT's skew check refuses it anyway: the slot is reused */
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + WINDOW + 1), 0);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + WINDOW + 2), GH__RCACHE_REPLAY);
  /* a removed tag (its accept failed) may come again */
  gh__auth_rcache_remove(rc, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + WINDOW + 3), 0);
  gh__auth_rcache_free(rc);
}

static void test_burst_grows_then_shrinks(void **state)
{
  gh__auth_rcache_t *rc = NULL;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  size_t rest, peak, after, n = 0;
  const uint32_t burst = 200000;
  (void)state;
  assert_int_equal(gh__auth_rcache_new(WINDOW, &rc), 0);
  tag_of(0, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), 0);
  for (uint32_t i = 1; i < 32 * 4; i++) { /* every shard has its table */
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), 0);
  }
  rest = gh__auth_rcache_slots(rc, NULL);
  /* a burst within one window: every tag is kept (no replay forgotten) */
  for (uint32_t i = 1000; i < 1000 + burst; i++) {
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 1 + i / 1000), 0);
  }
  peak = gh__auth_rcache_slots(rc, &n);
  assert_true(n >= burst);
  assert_true(peak >= 2 * burst / 2 && peak > rest);
  for (uint32_t i = 1000; i < 1000 + burst; i += 997) {
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 300), GH__RCACHE_REPLAY);
  }
  /* one window later a trickle of new tags sweeps every shard back down */
  for (uint32_t i = 0; i < 32 * 64; i++) {
    tag_of(5000000 + i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 2 * WINDOW + 300 + i / 64), 0);
  }
  after = gh__auth_rcache_slots(rc, &n);
  assert_true(n <= 32 * 64 + 32 * 4);
  assert_true(after <= rest * 2);
  assert_true(after * 8 < peak);
  gh__auth_rcache_free(rc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replay_refused_and_expiry),
      cmocka_unit_test(test_burst_grows_then_shrinks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_auth_rcache.c: the in-memory Kerberos replay cache — replays refused, expiry, growth and shrinking back after a burst, on the heap and in shared memory across fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpapi/auth/auth_internal.h"

#define WINDOW 660u
#define T0 1000000u

static int new_cache(void **state, gh__auth_rcache_t **ret_rc)
{
  bool shared = *state != NULL;
  return shared ? gh__auth_rcache_new_shared(WINDOW, ret_rc) : gh__auth_rcache_new(WINDOW, ret_rc);
}

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
  assert_int_equal(new_cache(state, &rc), 0);
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
  assert_int_equal(new_cache(state, &rc), 0);
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

/* Shared mode: a tag one process recorded is a replay in every other,
 * whichever records first, and tables grown by a child are seen by the
 * parent (the worker processes of gatehoused -- processes = N). */
static void test_shared_across_fork(void **state)
{
  gh__auth_rcache_t *rc = NULL;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  int st = 0;
  (void)state;
  assert_int_equal(gh__auth_rcache_new_shared(WINDOW, &rc), 0);
  tag_of(7, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int bad = 0;
    bad |= gh__auth_rcache_insert_at(rc, tag, T0 + 1) != GH__RCACHE_REPLAY;
    for (uint32_t i = 100; i < 100 + 50000; i++) { /* grows every shard past its first table */
      tag_of(i, tag);
      bad |= gh__auth_rcache_insert_at(rc, tag, T0 + 2) != 0;
    }
    _exit(bad ? 1 : 0);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  size_t n = 0;
  assert_true(gh__auth_rcache_slots(rc, &n) >= 2 * 50000 / 2);
  assert_int_equal(n, 50001);
  for (uint32_t i = 100; i < 100 + 50000; i += 101) {
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 3), GH__RCACHE_REPLAY);
  }
  tag_of(7, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 3), GH__RCACHE_REPLAY);
  gh__auth_rcache_free(rc);
}

/* A child that died holding every shard lock in the middle of rebuilds: the
 * next locker recovers each shard (robust lock) and wipes the cut-short
 * spare table; no entry is lost and replays are still refused. */
static void test_shared_owner_died(void **state)
{
  gh__auth_rcache_t *rc = NULL;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  int st = 0;
  (void)state;
  assert_int_equal(gh__auth_rcache_new_shared(WINDOW, &rc), 0);
  for (uint32_t i = 0; i < 32 * 8; i++) {
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0), 0);
  }
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    gh__auth_rcache_die_locked_for_test(rc);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  for (uint32_t i = 0; i < 32 * 8; i++) {
    tag_of(i, tag);
    assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 1), GH__RCACHE_REPLAY);
  }
  for (unsigned k = 0; k < 32; k++)
    assert_true(gh__auth_rcache_spare_clean_for_test(rc, k));
  tag_of(999999, tag);
  assert_int_equal(gh__auth_rcache_insert_at(rc, tag, T0 + 1), 0);
  gh__auth_rcache_free(rc);
}

int main(void)
{
  static int shared = 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replay_refused_and_expiry),
      cmocka_unit_test(test_burst_grows_then_shrinks),
      cmocka_unit_test_prestate(test_replay_refused_and_expiry, &shared),
      cmocka_unit_test_prestate(test_burst_grows_then_shrinks, &shared),
      cmocka_unit_test(test_shared_across_fork),
      cmocka_unit_test(test_shared_owner_died),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

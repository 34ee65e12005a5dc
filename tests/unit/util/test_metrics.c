/* test_metrics.c: unit tests for the counter block — default block, attach, slots across fork and
 * SIGKILL, the site table, buckets. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/metrics.h"

static int reset(void **state)
{
  (void)state;
  gh__metrics_reset_for_tests();
  return 0;
}

static void *shared(unsigned n_slots, size_t *ret_len)
{
  size_t len = gh__metrics_size(n_slots);
  assert_true(len > 0);
  void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(mem != MAP_FAILED);
  *ret_len = len;
  return mem;
}

#define SUM0(field) gh__metrics_sum(&gh__metrics_slot_at(0)->shard[0].field)
#define SUM_SLOT(i, field) gh__metrics_sum_slot(i, &gh__metrics_slot_at(0)->shard[0].field)

static void test_default_block_counts(void **state)
{
  (void)state;
  gh__metrics_add(GH__M_IMPERSONATIONS);
  gh__metrics_add(GH__M_IMPERSONATIONS);
  gh__metrics_request(GH__METRICS_SITE_NONE, 3, 1000);
  gh__metrics_conn(1);
  gh__metrics_conn(1);
  gh__metrics_conn(-1);
  assert_int_equal(SUM0(scalar[GH__M_IMPERSONATIONS]), 2);
  assert_int_equal(SUM0(requests[GH__METRICS_SITE_NONE][3]), 1);
  assert_int_equal(SUM0(latency[GH__METRICS_SITE_NONE][0]), 1);
  assert_int_equal(SUM0(latency_sum_ns[GH__METRICS_SITE_NONE]), 1000);
  assert_int_equal(gh__metrics_sum_conns(), 1);
  assert_int_equal(gh__metrics_blk->n_slots, 1);
  assert_int_equal(atomic_load(&gh__metrics_blk->procs_alive), 1);
}

static void test_attach_refuses_bad_memory(void **state)
{
  (void)state;
  size_t len;
  char *mem = shared(2, &len);
  assert_int_equal(gh__metrics_attach(NULL, len, 2), -EINVAL);
  assert_int_equal(gh__metrics_attach(mem, len - 1, 2), -EINVAL);
  assert_int_equal(gh__metrics_attach(mem + 8, len - 8, 1), -EINVAL); /* not aligned */
  assert_int_equal(gh__metrics_attach(mem, len, 0), -EINVAL);
  assert_int_equal(gh__metrics_size(0), 0);
  assert_int_equal(gh__metrics_size(GH__METRICS_MAX_SLOTS + 1), 0);
  assert_int_equal(gh__metrics_attach(mem, len, 2), 0);
  assert_int_equal(gh__metrics_use_slot(2), -EINVAL);
  munmap(mem, len);
}

/* sites numbered before the attach keep their numbers; counts start at 0 */
static void test_attach_keeps_sites_not_counts(void **state)
{
  (void)state;
  size_t len;
  unsigned a = gh__metrics_site("/a"), b = gh__metrics_site("/b");
  gh__metrics_add(GH__M_REPLAYS);
  void *mem = shared(3, &len);
  memset(mem, 0xa5, len); /* garbage: attach zeroes */
  assert_int_equal(gh__metrics_attach(mem, len, 3), 0);
  assert_int_equal(gh__metrics_site("/a"), a);
  assert_int_equal(gh__metrics_site("/b"), b);
  assert_string_equal(gh__metrics_site_name(a), "/a");
  assert_int_equal(SUM0(scalar[GH__M_REPLAYS]), 0);
  assert_int_equal(gh__metrics_sum_conns(), 0);
  munmap(mem, len);
}

static void count_in_child(unsigned slot, unsigned n, bool die_by_kill)
{
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (gh__metrics_use_slot(slot) != 0)
      _exit(2);
    for (unsigned i = 0; i < n; i++)
      gh__metrics_add(GH__M_IMPERSONATIONS);
    gh__metrics_conn(5);
    if (die_by_kill)
      raise(SIGKILL);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (die_by_kill)
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  else
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* the sum is over every process's slot; a process killed keeps what it
 * counted; a new process in the same slot adds to it and starts its gauge
 * at zero */
static void test_slots_across_processes(void **state)
{
  (void)state;
  size_t len;
  void *mem = shared(3, &len);
  assert_int_equal(gh__metrics_attach(mem, len, 3), 0);
  gh__metrics_add(GH__M_IMPERSONATIONS); /* slot 0: this process */
  count_in_child(1, 1000, false);
  count_in_child(2, 500, true); /* SIGKILL */
  assert_int_equal(SUM0(scalar[GH__M_IMPERSONATIONS]), 1501);
  assert_int_equal(SUM_SLOT(2, scalar[GH__M_IMPERSONATIONS]), 500);
  assert_int_equal(gh__metrics_sum_conns(), 10); /* stale gauges of gone processes ... */
  gh__metrics_slot_gone(2);                      /* ... until the master says so */
  assert_int_equal(gh__metrics_sum_conns(), 5);
  count_in_child(1, 7, false); /* a restart in slot 1 */
  assert_int_equal(SUM_SLOT(1, scalar[GH__M_IMPERSONATIONS]), 1007);
  assert_int_equal(gh__metrics_slot_at(1)->conns_active, 5); /* reset, then its own 5 */
  assert_int_equal(SUM0(scalar[GH__M_IMPERSONATIONS]), 1508);
  munmap(mem, len);
}

static void test_site_table(void **state)
{
  (void)state;
  char name[300];
  assert_int_equal(gh__metrics_site(NULL), GH__METRICS_SITE_NONE);
  assert_string_equal(gh__metrics_site_name(GH__METRICS_SITE_NONE), "(none)");
  assert_string_equal(gh__metrics_site_name(GH__METRICS_SITE_OTHER), "(other)");
  assert_null(gh__metrics_site_name(2));
  unsigned first = gh__metrics_site("/x");
  assert_int_equal(first, 2);
  assert_int_equal(gh__metrics_site("/x"), first); /* a reload: the same entry */
  for (unsigned i = 3; i < GH__METRICS_SITES; i++) {
    snprintf(name, sizeof(name), "/s%u", i);
    assert_int_equal(gh__metrics_site(name), i);
  }
  assert_int_equal(gh__metrics_site("/one-too-many"), GH__METRICS_SITE_OTHER);
  assert_int_equal(gh__metrics_site("/and-another"), GH__METRICS_SITE_OTHER);
  assert_int_equal(atomic_load(&gh__metrics_blk->n_sites), GH__METRICS_SITES);
  assert_int_equal(gh__metrics_site("/x"), first); /* still found when full */
  gh__metrics_reset_for_tests();
  memset(name, 'a', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  unsigned longer = gh__metrics_site(name);
  assert_int_equal(strlen(gh__metrics_site_name(longer)), GH__METRICS_SITE_NAME - 1);
  assert_int_equal(gh__metrics_site(name), longer);
}

static void test_buckets(void **state)
{
  (void)state;
  assert_int_equal(gh__metrics_bucket(0), 0);
  assert_int_equal(gh__metrics_bucket(500000), 0); /* le is inclusive */
  assert_int_equal(gh__metrics_bucket(500001), 1);
  assert_int_equal(gh__metrics_bucket(1000000000ull), 10);
  assert_int_equal(gh__metrics_bucket(10000000000ull), GH__METRICS_BOUNDS - 1);
  assert_int_equal(gh__metrics_bucket(10000000001ull), GH__METRICS_BOUNDS);
  assert_int_equal(gh__metrics_bucket(UINT64_MAX - 1), GH__METRICS_BOUNDS);
  for (unsigned i = 1; i < GH__METRICS_BOUNDS; i++)
    assert_true(gh__metrics_bounds_ns[i] > gh__metrics_bounds_ns[i - 1]);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_default_block_counts, reset),
      cmocka_unit_test_setup(test_attach_refuses_bad_memory, reset),
      cmocka_unit_test_setup(test_attach_keeps_sites_not_counts, reset),
      cmocka_unit_test_setup(test_slots_across_processes, reset),
      cmocka_unit_test_setup(test_site_table, reset),
      cmocka_unit_test_setup(test_buckets, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_pool.c: unit tests for the region allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/pool.h"

static void test_alloc_aligned_and_distinct(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(256);
  assert_non_null(p);
  char *prev = NULL;
  for (int i = 0; i < 100; i++) {
    char *a = gh__pool_alloc(p, (size_t)(i % 37) + 1);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 16, 0);
    memset(a, 'x', (size_t)(i % 37) + 1);
    assert_ptr_not_equal(a, prev);
    prev = a;
  }
  gh__pool_free(p);
}

static void test_large_alloc_keeps_small_space(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(1024);
  char *a = gh__pool_alloc(p, 16);
  char *big = gh__pool_alloc(p, 100000);
  char *b = gh__pool_alloc(p, 16);
  assert_non_null(big);
  memset(big, 0, 100000);
  /* small allocations continue in the same block */
  assert_ptr_equal(b, a + 16);
  assert_true(gh__pool_used(p) >= 100000 + 1024);
  gh__pool_reset(p);
  assert_int_equal(gh__pool_used(p), 1024);
  gh__pool_free(p);
}

static void test_strdup(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(0);
  char *s = gh__pool_strndup(p, "hello world", 5);
  assert_string_equal(s, "hello");
  assert_string_equal(gh__pool_strdup(p, "x"), "x");
  gh__pool_free(p);
}

static int cleanup_order[4];
static int cleanup_n;
static void record(void *d)
{
  cleanup_order[cleanup_n++] = (int)(intptr_t)d;
}

static void test_cleanups_reverse_order_once(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(0);
  cleanup_n = 0;
  assert_int_equal(gh__pool_add_cleanup(p, record, (void *)1), 0);
  assert_int_equal(gh__pool_add_cleanup(p, record, (void *)2), 0);
  gh__pool_reset(p);
  assert_int_equal(cleanup_n, 2);
  assert_int_equal(cleanup_order[0], 2);
  assert_int_equal(cleanup_order[1], 1);
  gh__pool_free(p);
  assert_int_equal(cleanup_n, 2);
}

static void test_overflow_refused(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(0);
  assert_null(gh__pool_alloc(p, SIZE_MAX));
  assert_null(gh__pool_calloc(p, SIZE_MAX / 2, 4));
  gh__pool_free(NULL);
  gh__pool_free(p);
}

static void test_many_blocks(void **state)
{
  (void)state;
  gh__pool_t *p = gh__pool_new(128);
  for (int i = 0; i < 1000; i++)
    assert_non_null(gh__pool_calloc(p, 1, 24));
  gh__pool_reset(p);
  assert_non_null(gh__pool_alloc(p, 8));
  gh__pool_free(p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alloc_aligned_and_distinct),
    cmocka_unit_test(test_large_alloc_keeps_small_space),
    cmocka_unit_test(test_strdup),
    cmocka_unit_test(test_cleanups_reverse_order_once),
    cmocka_unit_test(test_overflow_refused),
    cmocka_unit_test(test_many_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

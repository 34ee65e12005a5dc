/* alloc.c: allocation wrappers with optional failure injection. */
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

#ifdef GH_FAULT_INJECTION
#include <stdatomic.h>
static _Atomic long fail_countdown = -1;
static _Atomic int fail_once;     /* after the failing allocation, succeed again */
static _Atomic long fail_injected; /* failures since the last reset */

static int should_fail(void)
{
  long v = atomic_load(&fail_countdown);
  while (v >= 0) {
    if (v == 0) {
      if (atomic_load(&fail_once)) {
        long z = 0;
        if (!atomic_compare_exchange_weak(&fail_countdown, &z, -1)) {
          v = z;
          continue;
        }
      }
      atomic_fetch_add(&fail_injected, 1);
      return 1;
    }
    if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1))
      return 0;
  }
  return 0;
}

void gh__alloc_fail_after(long n)
{
  atomic_store(&fail_once, 0);
  atomic_store(&fail_injected, 0);
  atomic_store(&fail_countdown, n);
}

void gh__alloc_fail_once_after(long n)
{
  atomic_store(&fail_once, 1);
  atomic_store(&fail_injected, 0);
  atomic_store(&fail_countdown, n);
}

long gh__alloc_injected(void)
{
  return atomic_load(&fail_injected);
}
#else
static inline int should_fail(void)
{
  return 0;
}

void gh__alloc_fail_after(long n)
{
  (void)n;
}

void gh__alloc_fail_once_after(long n)
{
  (void)n;
}

long gh__alloc_injected(void)
{
  return 0;
}
#endif

void *gh__malloc(size_t size)
{
  return should_fail() ? NULL : malloc(size);
}

void *gh__calloc(size_t n, size_t size)
{
  return should_fail() ? NULL : calloc(n, size);
}

void *gh__realloc(void *ptr, size_t size)
{
  return should_fail() ? NULL : realloc(ptr, size);
}

char *gh__strdup(const char *s)
{
  return should_fail() ? NULL : strdup(s);
}

char *gh__strndup(const char *s, size_t n)
{
  return should_fail() ? NULL : strndup(s, n);
}

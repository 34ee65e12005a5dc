/* clock.c: gh__now_ms, the coarse monotonic clock of clock.h, and monotonic deadlines. */
#include "util/clock.h"

#include <time.h>

uint64_t gh__now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gh__deadline_after_ms(struct timespec *ret, unsigned ms)
{
  clock_gettime(CLOCK_MONOTONIC, ret);
  ret->tv_sec += ms / 1000;
  ret->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ret->tv_nsec >= 1000000000L) {
    ret->tv_sec++;
    ret->tv_nsec -= 1000000000L;
  }
}

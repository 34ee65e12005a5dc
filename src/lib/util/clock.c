/* clock.c: gh__now_ms, the coarse monotonic clock of clock.h. */
#include "util/clock.h"

#include <time.h>

uint64_t gh__now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* clock.h: the monotonic millisecond clock the layers share for deadlines and timers (internal). */
#ifndef GH_UTIL_CLOCK_H
#define GH_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Milliseconds of CLOCK_MONOTONIC_COARSE (a few ms of granularity, no
 *  syscall): for deadlines and timer scans, never for wall-clock time. Any
 *  thread. */
uint64_t gh__now_ms(void);

/** Nanoseconds of CLOCK_MONOTONIC (vDSO, no syscall): for durations
 *  (request latency). Any thread. */
static inline uint64_t gh__clock_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/** *ret = CLOCK_MONOTONIC now + ms: the absolute deadline for a
 *  pthread_cond_timedwait on a condition variable set to CLOCK_MONOTONIC.
 *  Any thread. */
void gh__deadline_after_ms(struct timespec *ret, unsigned ms);

#endif

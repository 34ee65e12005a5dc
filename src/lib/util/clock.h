/* clock.h: the monotonic millisecond clock the layers share for deadlines and timers (internal). */
#ifndef GH_UTIL_CLOCK_H
#define GH_UTIL_CLOCK_H

#include <stdint.h>

/** Milliseconds of CLOCK_MONOTONIC_COARSE (a few ms of granularity, no
 *  syscall): for deadlines and timer scans, never for wall-clock time. Any
 *  thread. */
uint64_t gh__now_ms(void);

struct timespec;
/** *ret = CLOCK_MONOTONIC now + ms: the absolute deadline for a
 *  pthread_cond_timedwait on a condition variable set to CLOCK_MONOTONIC.
 *  Any thread. */
void gh__deadline_after_ms(struct timespec *ret, unsigned ms);

#endif

/* clock.h: the monotonic millisecond clock the layers share for deadlines and timers (internal). */
#ifndef GH_UTIL_CLOCK_H
#define GH_UTIL_CLOCK_H

#include <stdint.h>

/** Milliseconds of CLOCK_MONOTONIC_COARSE (a few ms of granularity, no
 *  syscall): for deadlines and timer scans, never for wall-clock time. Any
 *  thread. */
uint64_t gh__now_ms(void);

#endif

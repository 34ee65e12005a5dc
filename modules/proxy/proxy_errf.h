/* proxy_errf.h: the one-line reason of the proxy's identity pieces (proxy_jwt.c,
 * proxy_negotiate.c). */
#ifndef GH_PROXY_ERRF_H
#define GH_PROXY_ERRF_H

#include <stdarg.h>
#include <stdio.h>

/* printf into err[errlen] when err is not NULL. */
static inline void proxy_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void proxy_errf(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

#endif

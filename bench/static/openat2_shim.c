/* openat2_shim.c: measurement-only LD_PRELOAD that lets valgrind 3.19 (no openat2) run the static module; never for serving. */
/*
 * valgrind 3.19 answers ENOSYS to openat2, so under callgrind every static
 * request would be a 500 and the profile would miss the serving path. This
 * shim turns syscall(SYS_openat2, ...) into openat() with the same flags and
 * forwards every other syscall. It drops RESOLVE_BENEATH: bench/static/run
 * builds it into its temp dir and preloads it only with --callgrind.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long nr, ...);

long syscall(long nr, ...)
{
  static long (*real)(long, ...);
  va_list ap;
  long a[6];
  va_start(ap, nr);
  for (int i = 0; i < 6; i++)
    a[i] = va_arg(ap, long);
  va_end(ap);
  if (nr == SYS_openat2) {
    const struct open_how *how = (const struct open_how *)a[2];
    return openat((int)a[0], (const char *)a[1], (int)how->flags, (mode_t)how->mode);
  }
  if (real == NULL)
    real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

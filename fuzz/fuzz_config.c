/* fuzz_config.c: libFuzzer target for the gatehoused configuration parser (INI via libinih, every key's value parser). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../src/daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The bytes are a config file. The parser must either accept it or reject
 * it with an error message naming file and line, never crash, and free
 * everything in both cases (the sanitizers and LeakSanitizer check that).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 64 * 1024)
    return 0;
  int fd = memfd_create("gh-fuzz-config", MFD_CLOEXEC);
  if (fd < 0)
    abort();
  if (size > 0 && write(fd, data, size) != (ssize_t)size)
    abort();
  char path[64], err[512];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  gh_daemon_config_t cfg;
  err[0] = '\0';
  int rc = gh_daemon_config_load(path, &cfg, err, sizeof(err));
  if (rc != 0 && err[0] == '\0')
    abort(); /* every refusal says why */
  gh_daemon_config_done(&cfg);
  close(fd);
  return 0;
}

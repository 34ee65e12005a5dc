/* daemonlog.c: gatehoused's log sink (stderr or journald) and service-manager notifications (NOTIFY_SOCKET). */
#include "daemonlog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gatehouse/error.h>

#include "gh_config.h"

#if GH_HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

static bool g_journal;
static bool g_pid; /* worker processes: stderr lines say which process */

void gh_dlog_with_pid(void)
{
  g_pid = true;
}

/* systemd sets JOURNAL_STREAM=DEV:INO for a stderr connected to the journal. */
static bool stderr_is_journal(void)
{
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
    return false;
  if (fstat(STDERR_FILENO, &st) != 0)
    return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int gh_dlog_setup(const char *target)
{
  int ret = 0;
  if (target == NULL || strcmp(target, "auto") == 0) {
    g_journal = GH_HAVE_SYSTEMD && stderr_is_journal();
  } else if (strcmp(target, "stderr") == 0) {
    g_journal = false;
  } else if (strcmp(target, "journald") == 0 || strcmp(target, "journal") == 0) {
    if (!GH_HAVE_SYSTEMD)
      ret = GH_ECONFIG;
    else
      g_journal = true;
  } else {
    ret = GH_ECONFIG;
  }
  return ret;
}

const char *gh_dlog_target(void)
{
  return g_journal ? "journald" : "stderr";
}

void gh_dlog(int priority, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
#if GH_HAVE_SYSTEMD
  if (g_journal) {
    sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=gatehoused",
                    NULL);
    return;
  }
#endif
  (void)priority;
  /* one write per line so lines from several threads never interleave */
  char line[2100];
  int n = g_pid ? snprintf(line, sizeof(line), "gatehoused[%d]: %s\n", (int)getpid(), msg)
                : snprintf(line, sizeof(line), "gatehoused: %s\n", msg);
  if (n > (int)sizeof(line) - 1) {
    n = (int)sizeof(line) - 1;
    line[n - 1] = '\n';
  }
  if (write(STDERR_FILENO, line, (size_t)n) < 0) {
    /* nowhere else to report it */
  }
}

int gh_notify(const char *state)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  socklen_t len;
  int fd = -1, ret = 0;
  size_t plen;
  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    goto out;
  plen = strlen(path);
  if (plen >= sizeof(sa.sun_path)) {
    ret = -ENAMETOOLONG;
    goto out;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract namespace */
  len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ret = -errno;
    goto out;
  }
  if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0) {
    ret = -errno;
    goto out;
  }
  ret = 1;
out:
  if (fd >= 0)
    close(fd);
  return ret;
}

/* daemonlog.c: gatehoused's log sink (stderr, journald or syslog) and service-manager notifications
 * (NOTIFY_SOCKET). */
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

typedef enum sink { SINK_STDERR, SINK_JOURNAL, SINK_SYSLOG } sink_t;

static sink_t g_sink;
static bool g_serving; /* until then syslog lines go to stderr too (start-up errors) */
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

static void use(sink_t sink)
{
  if (g_sink == SINK_SYSLOG && sink != SINK_SYSLOG)
    closelog();
  if (sink == SINK_SYSLOG && g_sink != SINK_SYSLOG)
    /* connected now, on the main thread at base identity; the socket is
     * SOCK_CLOEXEC (glibc) and glibc reconnects if the log daemon restarts */
    openlog("gatehoused", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  g_sink = sink;
}

int gh_dlog_setup(const char *target)
{
  int ret = 0;
  if (target == NULL || strcmp(target, "auto") == 0) {
    use(GH_HAVE_SYSTEMD && stderr_is_journal() ? SINK_JOURNAL : SINK_STDERR);
  } else if (strcmp(target, "stderr") == 0) {
    use(SINK_STDERR);
  } else if (strcmp(target, "syslog") == 0) {
    use(SINK_SYSLOG);
  } else if (strcmp(target, "journald") == 0 || strcmp(target, "journal") == 0) {
    if (!GH_HAVE_SYSTEMD)
      ret = GH_ECONFIG;
    else
      use(SINK_JOURNAL);
  } else {
    ret = GH_ECONFIG;
  }
  return ret;
}

void gh_dlog_detached(const char *target)
{
  if (target != NULL && strcmp(target, "auto") != 0)
    return;
  if (g_sink == SINK_JOURNAL)
    return; /* stderr was the journal's stream: journald is there */
  if (GH_HAVE_SYSTEMD && access("/run/systemd/journal/socket", W_OK) == 0)
    use(SINK_JOURNAL);
  else
    use(SINK_SYSLOG);
}

void gh_dlog_serving(void)
{
  g_serving = true;
}

const char *gh_dlog_target(void)
{
  switch (g_sink) {
  case SINK_JOURNAL:
    return "journald";
  case SINK_SYSLOG:
    return "syslog";
  default:
    return "stderr";
  }
}

void gh_dlog(int priority, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  priority &= LOG_PRIMASK; /* gh_dlog levels are syslog's (LOG_ERR ... LOG_DEBUG) */
#if GH_HAVE_SYSTEMD
  if (g_sink == SINK_JOURNAL) {
    sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority, "SYSLOG_IDENTIFIER=gatehoused",
                    NULL);
    return;
  }
#endif
  if (g_sink == SINK_SYSLOG) {
    syslog(LOG_DAEMON | priority, "%s", msg);
    if (g_serving)
      return;
  }
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

/* The write end of the detach pipe (main.c): the parent that started the
 * daemon waits on it and exits 0 once READY=1 is sent, 1 if it closes first. */
static int ready_fd = -1;

void gh_notify_set_ready_fd(int fd)
{
  if (ready_fd >= 0 && ready_fd != fd)
    close(ready_fd);
  ready_fd = fd;
}

int gh_notify(const char *state)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  socklen_t len;
  int fd = -1, ret = 0;
  size_t plen;
  if (ready_fd >= 0 && strncmp(state, "READY=1", 7) == 0) {
    ssize_t w;
    do
      w = write(ready_fd, "R", 1);
    while (w < 0 && errno == EINTR);
    gh_notify_set_ready_fd(-1);
  }
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

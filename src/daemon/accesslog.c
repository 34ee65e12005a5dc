/* accesslog.c: gatehoused access log (Common Log Format), one write(2) per line, reopened on SIGHUP. */
#include "accesslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static char *log_path;

static int open_path(const char *path)
{
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  return fd < 0 ? -errno : fd;
}

int gh_accesslog_open(const char *path)
{
  int ret = 0;
  if (path == NULL)
    goto out;
  if (strcmp(path, "-") == 0) {
    log_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    ret = log_fd < 0 ? -errno : 0;
    goto out;
  }
  ret = open_path(path);
  if (ret < 0)
    goto out;
  log_fd = ret;
  ret = 0;
  log_path = strdup(path);
  if (log_path == NULL)
    ret = -ENOMEM;
out:
  return ret;
}

int gh_accesslog_reopen(void)
{
  int ret = 0;
  if (log_path == NULL || log_fd < 0)
    goto out;
  int fd = open_path(log_path);
  if (fd < 0) {
    ret = fd;
    goto out;
  }
  if (dup3(fd, log_fd, O_CLOEXEC) < 0)
    ret = -errno;
  close(fd);
out:
  return ret;
}

void gh_accesslog_close(void)
{
  if (log_fd >= 0)
    close(log_fd);
  log_fd = -1;
  free(log_path);
  log_path = NULL;
}

static void peer_text(const gh_conn_info_t *ci, char *buf, size_t len)
{
  if (ci->peer.ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&ci->peer)->sin_addr, buf, (socklen_t)len);
  else if (ci->peer.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&ci->peer)->sin6_addr, buf,
              (socklen_t)len);
  else if (ci->flags & GH_CONN_HAS_CRED)
    snprintf(buf, len, "unix:uid=%u", (unsigned)ci->peer_uid);
  else
    snprintf(buf, len, "unix");
}

void gh_accesslog_write(const gh_request_t *req, int status, unsigned long long bytes)
{
  if (log_fd < 0)
    return;
  char peer[INET6_ADDRSTRLEN + 16], date[64], line[4096];
  peer_text(gh_request_get_conn_info(req), peer, sizeof(peer));
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(date, sizeof(date), "%d/%b/%Y:%H:%M:%S %z", &tm);
  int v = gh_request_get_version(req);
  int n = snprintf(line, sizeof(line), "%s - - [%s] \"%s %.2000s HTTP/%d.%d\" %d %llu\n", peer,
                   date, gh_request_get_method(req), gh_request_get_url(req), v / 10, v % 10,
                   status, bytes);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(line)) {
    n = sizeof(line) - 1;
    line[n - 1] = '\n';
  }
  ssize_t w = write(log_fd, line, (size_t)n);
  (void)w;
}

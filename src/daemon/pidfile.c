/* pidfile.c: gatehoused's pid file ([server] pid_file): refused when a live gatehoused holds it,
 * written atomically once the daemon serves, removed on exit. */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gatehouse/error.h>

static char *g_path; /* the file this process wrote */
static pid_t g_owner;

/* The pid in the file: > 0, 0 when it holds no pid (empty, garbage), or
 * -errno (-ENOENT: no file). Never follows a symlink. */
static long read_pid(const char *path)
{
  char buf[32];
  long ret;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  ret = n < 0 ? -errno : 0;
  close(fd);
  if (n > 0) {
    char *end;
    buf[n] = '\0';
    errno = 0;
    long pid = strtol(buf, &end, 10);
    if (errno == 0 && end != buf && (*end == '\n' || *end == '\0') && pid > 0 && pid <= INT_MAX)
      ret = pid;
  }
  return ret;
}

/* Whether pid is a running gatehoused other than this process. Fails
 * closed: a live process whose name cannot be read counts as one. */
static bool held_by_gatehoused(long pid)
{
  char p[64], comm[32] = "";
  bool ret = false;
  if (pid <= 0 || pid == (long)getpid())
    goto out;
  if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
    goto out; /* ESRCH: gone */
  snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ret = errno != ENOENT; /* it exited meanwhile, or we cannot tell */
    goto out;
  }
  ssize_t n = read(fd, comm, sizeof(comm) - 1);
  close(fd);
  if (n < 0) {
    ret = true;
    goto out;
  }
  comm[n] = '\0';
  comm[strcspn(comm, "\n")] = '\0';
  ret = strcmp(comm, "gatehoused") == 0;
out:
  return ret;
}

int gh_pidfile_check(const char *path, char *err, size_t err_len)
{
  int ret = 0;
  long pid = read_pid(path);
  if (pid == -ENOENT || pid == 0)
    goto out;
  if (pid < 0) {
    ret = (int)pid;
    snprintf(err, err_len, "pid_file %s: cannot read: %s", path, strerror((int)-pid));
  } else if (held_by_gatehoused(pid)) {
    ret = GH_EEXISTS;
    snprintf(err, err_len,
             "pid_file %s: gatehoused is already running as pid %ld (stop it "
             "first, or give this daemon another pid_file)",
             path, pid);
  }
out:
  return ret;
}

int gh_pidfile_write(const char *path, char *err, size_t err_len)
{
  char tmp[PATH_MAX], text[32];
  int ret = 0, fd = -1;
  bool made = false;
  int n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    ret = -ENAMETOOLONG;
    snprintf(err, err_len, "pid_file %s: name too long", path);
    goto out;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    ret = -errno;
    snprintf(err, err_len, "pid_file %s: cannot create %s: %s", path, tmp, strerror(errno));
    goto out;
  }
  made = true;
  n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
  if (write(fd, text, (size_t)n) != n || fchmod(fd, 0644) != 0) {
    ret = errno ? -errno : -EIO;
    snprintf(err, err_len, "pid_file %s: cannot write %s: %s", path, tmp, strerror(-ret));
    goto out;
  }
  /* link(2) never replaces: path appears complete, or not at all */
  if (link(tmp, path) != 0) {
    if (errno != EEXIST) {
      ret = -errno;
      snprintf(err, err_len, "pid_file %s: %s", path, strerror(errno));
      goto out;
    }
    long pid = read_pid(path);
    if (pid > 0 && held_by_gatehoused(pid)) {
      ret = GH_EEXISTS;
      snprintf(err, err_len, "pid_file %s: gatehoused is already running as pid %ld", path, pid);
      goto out;
    }
    /* stale (its process is gone, or not gatehoused): replaced in one
     * step; rename(2) replaces a symlink itself, never its target */
    if (rename(tmp, path) != 0) {
      ret = -errno;
      snprintf(err, err_len, "pid_file %s: cannot replace the stale file: %s", path,
               strerror(errno));
      goto out;
    }
    made = false;
  }
  free(g_path);
  g_path = strdup(path);
  g_owner = getpid();
out:
  if (fd >= 0)
    close(fd);
  if (made)
    unlink(tmp);
  return ret;
}

void gh_pidfile_remove(void)
{
  if (g_path != NULL && g_owner == getpid() && read_pid(g_path) == (long)g_owner)
    unlink(g_path);
  free(g_path);
  g_path = NULL;
}

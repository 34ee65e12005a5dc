/* connect.c: token-scoped Unix socket connects — the peer's SO_PEERCRED/SO_PEERGROUPS name the
 * token's user. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sec/sec_internal.h"

/*
 * gh_token_connect_unix connects a new AF_UNIX stream socket to `path` with
 * the token's impersonation ids (t->imp, the ids gh_impersonate would
 * switch to). The kernel records the connecting task's credentials at
 * connect(2) (af_unix: init_peercred), so the listener's SO_PEERCRED gives
 * the token's uid and gid and SO_PEERGROUPS its groups, and the path lookup
 * and the socket file's write permission are checked as the token's user.
 * The socket is created at the caller's identity; only the connect runs
 * switched (gh__sec_enter ... gh__sec_leave, which aborts if the switch back
 * fails). A Unix stream connect never blocks on a non-blocking socket: it
 * completes at once or fails (EAGAIN when the listener's backlog is full).
 */

int gh_token_connect_unix(gh_token_t token, const char *path, int *ret_fd)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  gh__token_t *t = NULL;
  gh__sec_saved_t saved;
  size_t len;
  int ret, fd = -1, rc;

  if (path == NULL || ret_fd == NULL || path[0] == '\0') {
    ret = -EINVAL;
    goto out;
  }
  len = strlen(path);
  if (len >= sizeof(sa.sun_path)) {
    ret = -ENAMETOOLONG;
    goto out;
  }
  memcpy(sa.sun_path, path, len + 1);
  ret = gh__token_get_live(token, &t);
  if (ret != 0)
    goto out;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ret = -errno;
    goto out;
  }
  ret = gh__sec_enter(t, &t->imp, &saved);
  if (ret != 0)
    goto out;
  rc = connect(fd, (const struct sockaddr *)&sa, (socklen_t)sizeof(sa));
  ret = rc < 0 ? -errno : 0;
  gh__sec_leave(&saved);
  if (ret != 0)
    goto out;
  *ret_fd = fd;
  fd = -1;
out:
  if (fd >= 0)
    close(fd);
  gh__token_unref(t);
  return ret;
}

int gh_token_get_identity_key(gh_token_t token, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  size_t used;
  int ret, n;

  if (buf == NULL && len != 0) {
    ret = -EINVAL;
    goto out;
  }
  ret = gh__token_get_live(token, &t);
  if (ret != 0)
    goto out;
  /* snprintf's contract: the whole length is counted, what fits is written */
  n = snprintf(buf, len, "%u:%u:", (unsigned)t->imp.uid, (unsigned)t->imp.gid);
  used = (size_t)n;
  for (uint32_t i = 0; i < t->imp.ngroups && n >= 0; i++) {
    n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0, i == 0 ? "%u" : ",%u",
                 (unsigned)t->imp.groups[i]);
    used += (size_t)n;
  }
  ret = n < 0 || used > INT_MAX ? -EOVERFLOW : (int)used;
out:
  gh__token_unref(t);
  return ret;
}

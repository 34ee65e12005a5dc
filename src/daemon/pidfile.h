/* pidfile.h: gatehoused's pid file ([server] pid_file): refused when a live gatehoused holds it,
 * written atomically once the daemon serves, removed on exit. */
#ifndef GH_DAEMON_PIDFILE_H
#define GH_DAEMON_PIDFILE_H

#include <stddef.h>

/** Before binding anything: GH_EEXISTS with a message naming the pid when
 *  the file at path names a running gatehoused (other than this process);
 *  0 when it is missing, unreadable as a pid, or names a process that is
 *  gone or is not gatehoused (stale: replaced by gh_pidfile_write). Any
 *  other failure to read it: -errno with a message. */
int gh_pidfile_check(const char *path, char *err, size_t err_len);

/** Once the daemon serves: writes "PID\n" of this process to path without a
 *  moment where path is missing or half written (a 0644 temporary file next
 *  to it, O_EXCL|O_NOFOLLOW|O_CLOEXEC, then link(2), or rename(2) over a
 *  stale file). Never writes through a symlink. GH_EEXISTS when a running
 *  gatehoused holds it (checked again: it may have started meanwhile),
 *  -errno otherwise; err says which. This process then owns the file.
 *  Main thread. */
int gh_pidfile_write(const char *path, char *err, size_t err_len);

/** Removes the file when this process wrote it and it still names this
 *  process (a worker process or a later daemon's file is left alone). */
void gh_pidfile_remove(void);

#endif

/* daemonlog.h: gatehoused's own log (stderr or journald) and sd_notify-style readiness messages. */
#ifndef GH_DAEMON_DAEMONLOG_H
#define GH_DAEMON_DAEMONLOG_H

#include <syslog.h>

/** Chooses the sink: "stderr", "journald", or "auto"/NULL (journald when
 *  stderr is already connected to the journal, i.e. JOURNAL_STREAM names
 *  it, and libsystemd was found at build time; stderr otherwise). Returns 0
 *  or GH_ECONFIG (unknown word, or journald without libsystemd). Main
 *  thread, before any worker starts. */
int gh_dlog_setup(const char *target);

/** From now on stderr lines are "gatehoused[PID]: <msg>" (worker
 *  processes; journald records the pid anyway). Before any thread. */
void gh_dlog_with_pid(void);

/** Name of the sink in use ("stderr" or "journald"); static. */
const char *gh_dlog_target(void);

/** One line (no newline needed) at a syslog priority (LOG_ERR ...). On
 *  stderr it is written as "gatehoused: <msg>". Any thread. */
void gh_dlog(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to the
 *  service manager when NOTIFY_SOCKET is set (same wire format as
 *  sd_notify(3)). Returns 1 sent, 0 no NOTIFY_SOCKET, or -errno. */
int gh_notify(const char *state);

#endif

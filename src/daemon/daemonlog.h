/* daemonlog.h: gatehoused's own log (stderr, journald or syslog) and sd_notify-style readiness
 * messages. */
#ifndef GH_DAEMON_DAEMONLOG_H
#define GH_DAEMON_DAEMONLOG_H

#include <syslog.h>

/** Chooses the sink: "stderr", "journald", "syslog" (syslog(3): ident
 *  gatehoused, LOG_PID, facility LOG_DAEMON, the message's level), or
 *  "auto"/NULL (journald when stderr is already connected to the journal,
 *  i.e. JOURNAL_STREAM names it, and libsystemd was found at build time;
 *  stderr otherwise). Returns 0 or GH_ECONFIG (unknown word, or journald
 *  without libsystemd). Main thread, before any worker starts. */
int gh_dlog_setup(const char *target);

/** After detaching (stderr is /dev/null): with target "auto"/NULL, the
 *  journal when it was already chosen or its socket is writable (and
 *  libsystemd was found at build time), syslog otherwise. Other targets are
 *  kept. Main thread, before any worker starts. */
void gh_dlog_detached(const char *target);

/** From now on stderr lines are "gatehoused[PID]: <msg>" (worker
 *  processes; journald records the pid anyway). Before any thread. */
void gh_dlog_with_pid(void);

/** The daemon serves: from now on syslog lines go to syslog only (before,
 *  they are written to stderr too, so that a start-up failure shows on the
 *  terminal or the supervisor's log as well). */
void gh_dlog_serving(void);

/** Name of the sink in use ("stderr", "journald" or "syslog"); static. */
const char *gh_dlog_target(void);

/** One line (no newline needed) at a syslog priority (LOG_ERR ...). On
 *  stderr it is written as "gatehoused: <msg>". Any thread. */
void gh_dlog(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to the
 *  service manager when NOTIFY_SOCKET is set (same wire format as
 *  sd_notify(3)). Returns 1 sent, 0 no NOTIFY_SOCKET, or -errno. */
int gh_notify(const char *state);
/** The detach pipe's write end (or -1 to close it): the first READY=1 sent
 *  through gh_notify also writes one byte there and closes it. */
void gh_notify_set_ready_fd(int fd);

#endif

/* procs.h: worker processes ([server] processes = N > 1). */
#ifndef GH_DAEMON_PROCS_H
#define GH_DAEMON_PROCS_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"

/** Runs the master of cfg->processes worker processes. Call with the server
 *  configured but not started, single-threaded, with sigs (the daemon's
 *  signals) blocked and no signalfd yet. In a child it returns 0 at once
 *  with *ret_child true and *ret_index its slot (0..N-1, kept by the
 *  replacement of a dead child): carry on as a single-process daemon after
 *  gh_server_atfork_child(srv, *ret_index). In the master it returns when
 *  every child is gone after SIGTERM/SIGINT (0), or after a child that
 *  keeps dying right after its start (1); a failed fork is retried. */
int gh_daemon_run_master(const gh_daemon_config_t *cfg, const sigset_t *sigs, bool *ret_child,
                         unsigned *ret_index);

#endif

/* metrics.h: the server's counters (requests, latency, auth, impersonation, sessions, connections,
 * worker processes) and their Prometheus text. */
#ifndef GATEHOUSE_METRICS_H
#define GATEHOUSE_METRICS_H

#include <stddef.h>

#include <gatehouse/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The library counts as it works, in one block of counters per process
 * image: every process adds to its own slot with relaxed atomic adds (no
 * lock, no allocation per request), a reader adds the slots up. Without
 * any call here the block is the library's own (one slot, this process):
 * gh_metrics_render() works in any application.
 *
 * Worker processes (gh_server_set_processes): give the library memory that
 * every process shares before the first fork, e.g.
 *
 *   size_t len = gh_metrics_size(n);
 *   void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
 *                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
 *   gh_metrics_attach(mem, len, n);      -- before any URL group is added
 *
 * gh_server_atfork_child(srv, index) then makes child `index` count in slot
 * index. A child started again in the same slot (after a crash) keeps the
 * slot's counters, so the sums never go down; the gauges of a slot restart
 * at zero. The master (which never starts a server) reports its children
 * with gh_metrics_worker_gone / _restarted / _alive.
 *
 * Sites are the URL groups' prefixes, numbered when a group is added, in a
 * table of 62 names shared by every process; the same prefix added again
 * (a reload, another process) finds its entry; beyond 62 sites requests
 * count under site "(other)", and requests no site matched under "(none)".
 */

/** Bytes of memory gh_metrics_attach needs for n_slots processes (0 when
 *  n_slots is 0 or above 4096). Any thread. */
GH_EXPORT size_t gh_metrics_size(unsigned n_slots);

/** Makes mem the counter block, n_slots slots, this process counting in
 *  slot 0. mem: at least gh_metrics_size(n_slots) bytes, 64-byte aligned
 *  (mmap's are), borrowed for the rest of the process's life and never
 *  freed by the library. Sites already numbered are kept; counts made
 *  before are not carried over. Call once, before any thread of the
 *  library exists and before the first fork. 0, or -EINVAL. */
GH_EXPORT int gh_metrics_attach(void *mem, size_t len, unsigned n_slots);

/** This process counts in slot index from now on (gh_server_atfork_child
 *  calls it). Before the process starts threads. 0, or -EINVAL when index
 *  is not below the attached n_slots. */
GH_EXPORT int gh_metrics_use_slot(unsigned index);

/** The master of worker processes: the process of slot index is gone (its
 *  gauges are zeroed: its connections are closed). Any thread. */
GH_EXPORT void gh_metrics_worker_gone(unsigned index);
/** The master: a worker process was started again after one died. */
GH_EXPORT void gh_metrics_worker_restarted(void);
/** The master: n worker processes are running now (default 1). */
GH_EXPORT void gh_metrics_worker_alive(unsigned n);

/** The sums over every slot in the Prometheus text exposition format 0.0.4
 *  (Content-Type "text/plain; version=0.0.4; charset=utf-8"): HELP and TYPE
 *  for each metric (docs/farm.md lists them), label values escaped.
 *  *ret_text is NUL-terminated, *ret_len bytes without the NUL; the caller
 *  frees it with free(). Any thread, any time (relaxed reads: a scrape
 *  during traffic sees each counter at some recent value). 0, or -ENOMEM. */
GH_EXPORT int gh_metrics_render(char **ret_text, size_t *ret_len);

#ifdef __cplusplus
}
#endif

#endif

/* procs.c: worker processes ([server] processes = N): a master forks N copies of the configured, never-started server, passes SIGHUP/SIGUSR2/SIGTERM on, and starts a new copy when one dies. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/metrics.h>

#include "daemonlog.h"
#include "procs.h"

/*
 * Why processes: MIT krb5 serialises every krb5 context creation and every
 * profile lookup of a process on one lock (five contexts per Negotiate
 * request), so threads of one process queue on it; processes do not share
 * it. Apache's mpm_event runs several processes for the same reason.
 *
 * The master stays single-threaded for its whole life (it never starts the
 * server), so every fork copies a clean, configured server: listeners bound
 * and listening, privileges dropped, modules loaded, acceptor credentials
 * and the shared replay cache made. A child gives itself its own epoll
 * instance (gh_server_atfork_child) and runs exactly what a single-process
 * daemon runs. Only the master talks to systemd.
 */

#define RESTART_MIN_S 1 /* a slot is started again at most once a second */
#define QUICK_S 5        /* a child that fails within this after its start ... */
#define QUICK_MAX 5      /* ... this many times in a row stops the daemon */

typedef struct slot {
  pid_t pid;            /* 0: not running */
  struct timespec due;  /* not running: when to start it again */
  struct timespec last; /* when it was last started */
  unsigned quick;       /* failures in a row, each soon after its start */
} slot_t;

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
  return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static void describe(int st, char *buf, size_t len)
{
  if (WIFSIGNALED(st))
    snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
             WCOREDUMP(st) ? ", core dumped" : "");
  else
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
}

/* In the child: 0 (carry on as a single-process daemon); in the master:
 * 1 started, or -errno. */
static int spawn(slot_t *sl, pid_t master, int sfd)
{
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    /* a child never outlives its master (no orphan keeps serving) */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master)
      _exit(1);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    close(sfd);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    unsetenv("NOTIFY_SOCKET"); /* systemd hears the master only */
    return 0;
  }
  sl->pid = pid;
  clock_gettime(CLOCK_MONOTONIC, &sl->last);
  return 1;
}

static void signal_all(const slot_t *slots, unsigned n, int sig)
{
  for (unsigned i = 0; i < n; i++)
    if (slots[i].pid > 0)
      kill(slots[i].pid, sig);
}

static unsigned running(const slot_t *slots, unsigned n)
{
  unsigned r = 0;
  for (unsigned i = 0; i < n; i++)
    r += slots[i].pid > 0;
  return r;
}

/* Reaps every child that is gone; schedules its slot's restart. False when
 * a slot keeps failing right after its start (a broken set-up: restarting
 * cannot help). */
static bool reap(slot_t *slots, unsigned n, bool stopping)
{
  int st;
  pid_t pid;
  bool ok = true;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (unsigned i = 0; i < n; i++) {
      if (slots[i].pid != pid)
        continue;
      char what[96];
      describe(st, what, sizeof(what));
      slots[i].pid = 0;
      gh_metrics_worker_gone(i);
      gh_metrics_worker_alive(running(slots, n));
      if (stopping) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
          gh_dlog(LOG_WARNING, "worker process %d %s while stopping", (int)pid, what);
        break;
      }
      slots[i].due = slots[i].last;
      slots[i].due.tv_sec += RESTART_MIN_S;
      if (ts_diff(&now, &slots[i].last) < QUICK_S)
        slots[i].quick++;
      else
        slots[i].quick = 0;
      if (slots[i].quick >= QUICK_MAX) {
        gh_dlog(LOG_ERR, "worker process %d %s, the %uth failure in a row within %d s of its "
                "start: stopping", (int)pid, what, slots[i].quick, QUICK_S);
        ok = false;
      } else {
        gh_dlog(LOG_ERR, "worker process %d %s; starting a new one", (int)pid, what);
      }
      break;
    }
  }
  return ok;
}

static void begin_stop(slot_t *slots, unsigned n, const gh_daemon_config_t *cfg,
                       struct timespec *deadline)
{
  gh_notify("STOPPING=1");
  signal_all(slots, n, SIGTERM);
  clock_gettime(CLOCK_MONOTONIC, deadline);
  deadline->tv_sec += cfg->shutdown_timeout_ms / 1000 + 5;
}

int gh_daemon_run_master(const gh_daemon_config_t *cfg, const sigset_t *sigs, bool *ret_child,
                         unsigned *ret_index)
{
  sigset_t mset = *sigs;
  slot_t *slots = calloc(cfg->processes, sizeof(*slots));
  pid_t master = getpid();
  bool stopping = false;
  struct timespec now, deadline = { 0, 0 };
  int sfd = -1, ret = 1, code = 0;
  unsigned n = cfg->processes;

  *ret_child = false;
  gh_dlog_with_pid();
  if (slots == NULL) {
    gh_dlog(LOG_ERR, "out of memory");
    goto out;
  }
  sigaddset(&mset, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mset, NULL);
  sfd = signalfd(-1, &mset, SFD_CLOEXEC);
  if (sfd < 0) {
    gh_dlog(LOG_ERR, "signalfd: %s", strerror(errno));
    goto out;
  }
  /* every slot starts empty and due (due = 0): the loop below forks them
   * all at once, and later replaces any that dies */
  gh_dlog(LOG_INFO, "master process %d: %u worker processes of %u workers each", (int)master, n,
          cfg->workers);
  gh_notify("READY=1\nSTATUS=serving");
  for (;;) {
    int timeout = -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (stopping) {
      if (running(slots, n) == 0)
        break;
      double left = ts_diff(&deadline, &now);
      if (left <= 0) {
        gh_dlog(LOG_WARNING, "worker processes still running after the shutdown timeout: killed");
        signal_all(slots, n, SIGKILL);
        deadline.tv_sec += 3600;
        continue;
      }
      timeout = (int)(left * 1000) + 1;
    } else {
      for (unsigned i = 0; i < n; i++) {
        if (slots[i].pid != 0)
          continue;
        double wait = ts_diff(&slots[i].due, &now);
        if (wait > 0) {
          int ms = (int)(wait * 1000) + 1;
          timeout = timeout < 0 || ms < timeout ? ms : timeout;
          continue;
        }
        bool again = slots[i].last.tv_sec != 0 || slots[i].last.tv_nsec != 0;
        int r = spawn(&slots[i], master, sfd);
        if (r > 0) {
          gh_metrics_worker_alive(running(slots, n));
          if (again)
            gh_metrics_worker_restarted();
        }
        if (r == 0) {
          *ret_child = true;
          *ret_index = i; /* a replacement takes the dead one's listening sockets */
          ret = 0;
          goto out;
        }
        if (r < 0) {
          gh_dlog(LOG_ERR, "cannot start worker process: %s; trying again", strerror(-r));
          slots[i].due = now;
          slots[i].due.tv_sec += RESTART_MIN_S;
          timeout = timeout < 0 || timeout > 1000 * RESTART_MIN_S ? 1000 * RESTART_MIN_S : timeout;
        }
      }
    }
    struct pollfd pfd = { .fd = sfd, .events = POLLIN };
    int pr = poll(&pfd, 1, timeout);
    if (pr <= 0)
      continue;
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != sizeof(si))
      continue;
    switch (si.ssi_signo) {
    case SIGCHLD:
      if (!reap(slots, n, stopping) && !stopping) {
        stopping = true;
        code = 1;
        begin_stop(slots, n, cfg, &deadline);
      }
      break;
    case SIGHUP:
      gh_dlog(LOG_INFO, "SIGHUP: the worker processes reload");
      signal_all(slots, n, SIGHUP);
      break;
    case SIGUSR2:
      signal_all(slots, n, SIGUSR2);
      break;
    default: /* SIGTERM, SIGINT */
      if (stopping)
        break;
      gh_dlog(LOG_INFO, "signal %d, stopping the worker processes", (int)si.ssi_signo);
      stopping = true;
      begin_stop(slots, n, cfg, &deadline);
      break;
    }
  }
  gh_dlog(LOG_INFO, "stopped");
  ret = code;
out:
  if (!*ret_child && sfd >= 0)
    close(sfd);
  free(slots);
  return ret;
}

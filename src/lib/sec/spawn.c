/* spawn.c: gh_token_spawn_as: fork, set real/effective/saved ids and groups of a token, verify, exec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sec/sec_internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define VERIFY_MAX_GROUPS 1024

enum { STAGE_FDS = 1, STAGE_IDS, STAGE_VERIFY, STAGE_CWD, STAGE_EXEC };

typedef struct child_report {
  int stage;
  int err;
} child_report_t;

/* Child side, after fork: async-signal-safe calls only. Never returns. */
static void child_run(const gh__token_t *t, char *const argv[], char *const envp[],
                      const gh_spawn_opts_t *opts, int report_fd)
{
  static char *const empty_env[] = {NULL};
  child_report_t rep = {0, 0};
  int src[3] = {opts ? opts->stdin_fd : -1, opts ? opts->stdout_fd : -1,
                opts ? opts->stderr_fd : -1};
  int tmp[3];
  gid_t buf[VERIFY_MAX_GROUPS];
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  uint64_t eff = 1, prm = 1;
  sigset_t none;
  int n;

  /* signals: defaults, nothing blocked (workers block async signals) */
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
  }
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  /* stdio: move sources above 2 first so dup2 cannot clobber one */
  rep.stage = STAGE_FDS;
  for (int i = 0; i < 3; i++) {
    int fd = src[i] >= 0 ? src[i] : open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      goto fail;
    tmp[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (tmp[i] < 0)
      goto fail;
  }
  for (int i = 0; i < 3; i++) {
    if (dup2(tmp[i], i) < 0)
      goto fail;
  }
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);

  /* ids: back to base effective uid (the forking thread may have been
   * impersonating), then groups, gid, uid for real+effective+saved */
  rep.stage = STAGE_IDS;
  if (syscall(SYS_setresuid, (uid_t)-1, gh__sec.base.uid, (uid_t)-1) != 0 ||
      syscall(SYS_setgroups, (size_t)t->ngroups, t->groups) != 0 ||
      syscall(SYS_setresgid, t->gid, t->gid, t->gid) != 0 ||
      syscall(SYS_setresuid, t->uid, t->uid, t->uid) != 0)
    goto fail;
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (gh__caps_set(0, 0, 0) != 0)
    goto fail;

  rep.stage = STAGE_VERIFY;
  errno = EPERM;
  if (getresuid(&ru, &eu, &su) != 0 || ru != t->uid || eu != t->uid || su != t->uid)
    goto fail;
  if (getresgid(&rg, &eg, &sg) != 0 || rg != t->gid || eg != t->gid || sg != t->gid)
    goto fail;
  n = getgroups(VERIFY_MAX_GROUPS, buf);
  if (n < 0 || (uint32_t)n != t->ngroups ||
      (n > 0 && memcmp(buf, t->groups, (size_t)n * sizeof(gid_t)) != 0))
    goto fail;
  if (gh__caps_get(&eff, &prm, NULL) != 0 || eff != 0 || prm != 0)
    goto fail;

  rep.stage = STAGE_CWD;
  if (opts != NULL && opts->cwd != NULL && chdir(opts->cwd) != 0)
    goto fail;

  rep.stage = STAGE_EXEC;
  execve(argv[0], argv, envp ? envp : empty_env);
fail:
  rep.err = errno;
  if (write(report_fd, &rep, sizeof(rep)) < 0)
    rep.err = 0;
  _exit(127);
}

int gh_token_spawn_as(gh_token_t token, char *const argv[], char *const envp[],
                      const gh_spawn_opts_t *opts, pid_t *ret_pid)
{
  gh__token_t *t = NULL;
  int pipefd[2] = {-1, -1};
  sigset_t all, old;
  child_report_t rep;
  ssize_t got;
  pid_t pid;
  int rc;

  if (!gh__sec.initialised) {
    rc = GH_ESTATE;
    goto out;
  }
  if (argv == NULL || argv[0] == NULL || argv[0][0] != '/' || ret_pid == NULL) {
    rc = -EINVAL;
    goto out;
  }
  rc = gh__token_get(token, &t);
  if (rc != 0)
    goto out;
  if (t->level < GH_LEVEL_IMPERSONATE) {
    rc = GH_EBAD_IMPERSONATION_LEVEL;
    goto out;
  }
  if (t->expiry != 0 && gh__sec_now() >= t->expiry) {
    rc = GH_ETOKEN_EXPIRED;
    goto out;
  }
  if (t->ngroups > VERIFY_MAX_GROUPS) {
    rc = GH_ELIMIT;
    goto out;
  }
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    rc = -errno;
    goto out;
  }
  /* no signal handler may run in the child before it resets them */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    child_run(t, argv, envp, opts, pipefd[1]);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    rc = -errno;
    goto out;
  }
  close(pipefd[1]);
  pipefd[1] = -1;
  do {
    got = read(pipefd[0], &rep, sizeof(rep));
  } while (got < 0 && errno == EINTR);
  if (got == 0) {
    *ret_pid = pid; /* exec succeeded: the pipe closed on exec */
  } else {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    if (got != (ssize_t)sizeof(rep))
      rc = -EIO;
    else if (rep.stage == STAGE_VERIFY)
      rc = GH_EPRIV_VERIFY;
    else if (rep.stage == STAGE_IDS && rep.err == EPERM)
      rc = GH_ENO_PRIVILEGE;
    else
      rc = rep.err ? -rep.err : -EIO;
  }
out:
  if (pipefd[0] >= 0)
    close(pipefd[0]);
  if (pipefd[1] >= 0)
    close(pipefd[1]);
  gh__token_unref(t);
  return rc;
}

/* main.c: gatehoused entry point — options, configuration, server start, signals (signalfd), graceful exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>

#include "accesslog.h"
#include "config.h"
#include "handlers.h"

static void usage(FILE *f)
{
  fprintf(f, "usage: gatehoused -c FILE [-t] [-f]\n"
             "  -c FILE  configuration file (INI, see gatehouse.conf(5))\n"
             "  -t       check the configuration and exit\n"
             "  -f       stay in the foreground (default: detach)\n");
}

static int detach(void)
{
  int ret = 0;
  pid_t pid = fork();
  if (pid < 0) {
    ret = -errno;
    goto out;
  }
  if (pid > 0)
    _exit(0);
  if (setsid() < 0) {
    ret = -errno;
    goto out;
  }
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
out:
  return ret;
}

/* The auth engine (when a site offers a scheme) and the sites' settings. */
static int setup_auth(const gh_daemon_config_t *cfg, gh_server_t *srv, gh_url_group_t **groups)
{
  bool needed = false, ntlm = cfg->auth.ntlm_user_file != NULL;
  gh_auth_config_t ac;
  char err[512];
  int ret = 0;

  for (size_t i = 0; i < cfg->n_sites; i++) {
    needed |= cfg->sites[i].auth.s.schemes != 0;
    ntlm |= (cfg->sites[i].auth.s.schemes & GH_AUTH_SCHEME_NTLM) != 0;
  }
  if (!needed)
    goto out;
  gh_daemon_auth_engine_config(&cfg->auth, ntlm, &ac);
  ret = gh_server_enable_auth(srv, &ac, err, sizeof(err));
  if (ret != 0) {
    fprintf(stderr, "gatehoused: %s\n", err[0] ? err : gh_strerror(ret));
    goto out;
  }
  for (size_t i = 0; i < cfg->n_sites; i++) {
    if (cfg->sites[i].auth.s.schemes == 0)
      continue;
    ret = gh_url_group_set_auth(groups[i], &cfg->sites[i].auth.s);
    if (ret != 0) {
      fprintf(stderr, "gatehoused: [site %s] auth: %s\n", cfg->sites[i].prefix, gh_strerror(ret));
      goto out;
    }
  }
out:
  return ret;
}

static int setup_server(const gh_daemon_config_t *cfg, gh_server_t **ret_srv)
{
  int ret;
  gh_server_t *srv = NULL;
  gh_url_group_t **groups = calloc(cfg->n_sites + 1, sizeof(*groups));
  if (groups == NULL) {
    ret = -ENOMEM;
    fprintf(stderr, "gatehoused: out of memory\n");
    goto out;
  }
  ret = gh_server_new(&cfg->server, &srv);
  if (ret != 0) {
    fprintf(stderr, "gatehoused: cannot create server: %s\n", gh_strerror(ret));
    goto out;
  }
  for (size_t i = 0; i < cfg->n_listen; i++) {
    ret = gh_server_add_listener(srv, cfg->listen[i]);
    if (ret != 0) {
      fprintf(stderr, "gatehoused: listen %s: %s\n", cfg->listen[i], gh_strerror(ret));
      goto out;
    }
  }
  for (size_t i = 0; i < cfg->n_sites; i++) {
    ret = gh_server_add_url_group(srv, cfg->sites[i].prefix, NULL, &cfg->sites[i], &groups[i]);
    if (ret != 0) {
      fprintf(stderr, "gatehoused: [site %s]: %s\n", cfg->sites[i].prefix, gh_strerror(ret));
      goto out;
    }
  }
  ret = setup_auth(cfg, srv, groups);
out:
  free(groups);
  if (ret == 0)
    *ret_srv = srv;
  else
    gh_server_free(srv);
  return ret;
}

int main(int argc, char **argv)
{
  int ret = 1, opt, sfd = -1;
  const char *file = NULL;
  bool test_only = false, foreground = false;
  gh_daemon_config_t cfg;
  gh_server_t *srv = NULL;
  char err[1024];
  bool have_cfg = false;

  while ((opt = getopt(argc, argv, "c:tfh")) != -1) {
    switch (opt) {
    case 'c':
      file = optarg;
      break;
    case 't':
      test_only = true;
      break;
    case 'f':
      foreground = true;
      break;
    case 'h':
      usage(stdout);
      ret = 0;
      goto out;
    default:
      usage(stderr);
      ret = 2;
      goto out;
    }
  }
  if (file == NULL || optind != argc) {
    usage(stderr);
    ret = 2;
    goto out;
  }
  if (gh_daemon_config_load(file, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "gatehoused: %s\n", err);
    goto out;
  }
  have_cfg = true;
  if (test_only) {
    fprintf(stderr, "gatehoused: %s: configuration ok\n", file);
    ret = 0;
    goto out;
  }

  /* Signals: blocked in every thread (workers inherit the mask), read here. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* The sec layer records this thread's ids as the base identity; before
   * any thread exists (DESIGN.md §3). */
  gh_sec_config_t sc = {
    .min_uid = (uid_t)cfg.auth.min_uid,
    .group_cache_ttl_s = cfg.auth.group_cache_ttl_s,
  };
  int se = gh_sec_init(&sc);
  if (se != 0) {
    fprintf(stderr, "gatehoused: sec layer: %s\n", gh_strerror(se));
    goto out;
  }
  if (setup_server(&cfg, &srv) != 0)
    goto out;
  int e = gh_accesslog_open(cfg.access_log);
  if (e != 0) {
    fprintf(stderr, "gatehoused: access_log %s: %s\n", cfg.access_log, gh_strerror(e));
    goto out;
  }
  if (!foreground && (e = detach()) != 0) {
    fprintf(stderr, "gatehoused: cannot detach: %s\n", gh_strerror(e));
    goto out;
  }
  sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    fprintf(stderr, "gatehoused: signalfd: %s\n", strerror(errno));
    goto out;
  }
  e = gh_server_start(srv);
  if (e == 0)
    e = gh_server_run_workers(srv, cfg.workers, gh_daemon_handle, NULL);
  if (e != 0) {
    fprintf(stderr, "gatehoused: start: %s\n", gh_strerror(e));
    goto out;
  }
  for (size_t i = 0; i < cfg.n_listen; i++)
    fprintf(stderr, "gatehoused: listening on %s\n", cfg.listen[i]);
  fprintf(stderr, "gatehoused: ready (pid %d, %u workers)\n", (int)getpid(), cfg.workers);

  for (;;) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof(si));
    if (n < 0 && errno == EINTR)
      continue;
    if (n != sizeof(si)) {
      fprintf(stderr, "gatehoused: signalfd read: %s\n", strerror(errno));
      break;
    }
    if (si.ssi_signo == SIGHUP) {
      e = gh_accesslog_reopen();
      if (e != 0)
        fprintf(stderr, "gatehoused: reopening access log: %s\n", gh_strerror(e));
      else
        fprintf(stderr, "gatehoused: access log reopened\n");
      continue;
    }
    fprintf(stderr, "gatehoused: signal %d, shutting down\n", (int)si.ssi_signo);
    break;
  }
  e = gh_server_shutdown(srv, cfg.shutdown_timeout_ms);
  if (e != 0)
    fprintf(stderr, "gatehoused: shutdown: %s (requests cut off)\n", gh_strerror(e));
  else
    fprintf(stderr, "gatehoused: stopped\n");
  ret = 0;
out:
  gh_server_free(srv);
  gh_accesslog_close();
  if (sfd >= 0)
    close(sfd);
  if (have_cfg)
    gh_daemon_config_done(&cfg);
  return ret;
}

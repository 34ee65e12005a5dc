/* main.c: gatehoused entry point — options, configuration, listeners, privilege drop, server and pipeline start, signals (reload, graceful exit). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/metrics.h>
#include <gatehouse/module.h>

#include "accesslog.h"
#include "config.h"
#include "daemonlog.h"
#include "doctor.h"
#include "gh_config.h"
#include "handlers.h"
#include "pidfile.h"
#include "pipeline_host.h"
#include "procs.h"

static void usage(FILE *f)
{
  fprintf(f, "usage: gatehoused -c FILE [-t] [-f]\n"
             "       gatehoused --doctor -c FILE\n"
             "  -c FILE  configuration file (INI, see gatehouse.conf(5))\n"
             "  -t       check the configuration and exit\n"
             "  -f       stay in the foreground (default: detach)\n"
             "  --doctor check what single sign-on needs (keytab, SPNs, KDC, clock, DNS,\n"
             "           winbind, PAM, ccache_dir, min_uid), one line each, and exit\n");
}

/* Forks; the parent stays until the daemon is ready (the first READY=1,
 * gh_notify) and exits 0, or exits 1 with a line on stderr when the daemon
 * ends before that (its reason is in its log: syslog or the journal), so a
 * start script sees a failure after the detach too. */
static int detach(void)
{
  int ret = 0, p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return -errno;
  pid_t pid = fork();
  if (pid < 0) {
    ret = -errno;
    close(p[0]);
    close(p[1]);
    goto out;
  }
  if (pid > 0) {
    char c;
    ssize_t n;
    close(p[1]);
    do
      n = read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
      _exit(0);
    fprintf(stderr, "gatehoused: the daemon (pid %d) stopped before it was ready; its log "
                    "(syslog or the journal) says why\n", (int)pid);
    _exit(1);
  }
  close(p[0]);
  gh_notify_set_ready_fd(p[1]);
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
  /* worker processes: one replay cache for all (an AP-REQ accepted by one
   * process is a replay in every other) */
  ac.replay_cache_shared = cfg->processes > 1;
  ret = gh_server_enable_auth(srv, &ac, err, sizeof(err));
  if (ret != 0) {
    gh_dlog(LOG_ERR, "%s", err[0] ? err : gh_strerror(ret));
    goto out;
  }
  for (size_t i = 0; i < cfg->n_sites; i++) {
    if (cfg->sites[i].auth.s.schemes == 0)
      continue;
    ret = gh_url_group_set_auth(groups[i], &cfg->sites[i].auth.s);
    if (ret != 0) {
      gh_dlog(LOG_ERR, "[site %s] auth: %s", cfg->sites[i].prefix, gh_strerror(ret));
      goto out;
    }
    if (cfg->sites[i].auth.session)
      ret = gh_url_group_set_auth_session(groups[i], &cfg->sites[i].auth.sess);
    if (ret != 0) {
      gh_dlog(LOG_ERR, "[site %s] session: %s", cfg->sites[i].prefix, gh_strerror(ret));
      goto out;
    }
  }
out:
  return ret;
}

/* The [server] line of key (given once), or NULL. */
static const gh_daemon_item_t *server_item(const gh_daemon_config_t *cfg, const char *key)
{
  for (size_t i = 0; i < cfg->n_items; i++)
    if (strcmp(cfg->items[i].section, "server") == 0 && strcmp(cfg->items[i].key, key) == 0)
      return &cfg->items[i];
  return NULL;
}

static const char *server_value(const gh_daemon_config_t *cfg, const char *key)
{
  const gh_daemon_item_t *it = server_item(cfg, key);
  return it != NULL ? it->value : NULL;
}

/* Privilege set-up through the sec layer, then its base identity: root
 * stays root with CAP_SETUID/CAP_SETGID (and NO_NEW_PRIVS); `user = NAME`
 * switches every id to NAME keeping only those capabilities; a process
 * started as another user runs as it (no impersonation). Single-threaded,
 * after the listeners are bound, before any thread exists. */
static int setup_identity(const gh_daemon_config_t *cfg)
{
  const char *user = server_value(cfg, "user");
  int ret = 0;
  if (user != NULL || geteuid() == 0) {
    bool low_port = false;
    for (size_t i = 0; i < cfg->n_listen; i++) {
      const char *colon = strrchr(cfg->listen[i], ':');
      if (strncmp(cfg->listen[i], "unix:", 5) != 0 && colon != NULL && atoi(colon + 1) < 1024)
        low_port = true;
    }
    ret = gh_privileges_drop(user, low_port ? GH_PRIV_KEEP_NET_BIND_SERVICE : 0);
    if (ret != 0) {
      gh_dlog(LOG_ERR, "%s: [server] user = %s: privilege drop failed: %s", cfg->path,
              user ? user : "(root)", gh_strerror(ret));
      goto out;
    }
  }
  /* The sec layer records this thread's ids as the base identity; before
   * any thread exists. */
  gh_sec_config_t sc = {
    .min_uid = (uid_t)cfg->auth.min_uid,
    .group_cache_ttl_s = cfg->auth.group_cache_ttl_s,
    .peer_groups = cfg->auth.peer_groups_nss ? GH_PEER_GROUPS_NSS : GH_PEER_GROUPS_KERNEL,
  };
  ret = gh_sec_init(&sc);
  if (ret != 0)
    gh_dlog(LOG_ERR, "sec layer: %s", gh_strerror(ret));
out:
  return ret;
}

static int setup_server(const gh_daemon_config_t *cfg, gh_pipeline_t *pl, gh_server_t **ret_srv)
{
  int ret;
  gh_server_t *srv = NULL;
  gh_url_group_t **groups = calloc(cfg->n_sites + 1, sizeof(*groups));
  if (groups == NULL) {
    ret = -ENOMEM;
    gh_dlog(LOG_ERR, "out of memory");
    goto out;
  }
  ret = gh_server_new(&cfg->server, &srv);
  if (ret != 0) {
    gh_dlog(LOG_ERR, "cannot create server: %s", gh_strerror(ret));
    goto out;
  }
  gh_daemon_tls_attach_log(srv);
  if (cfg->processes > 1 && (ret = gh_server_set_processes(srv, cfg->processes)) != 0) {
    gh_dlog(LOG_ERR, "processes = %u: %s", cfg->processes, gh_strerror(ret));
    goto out;
  }
  for (size_t i = 0; i < cfg->n_listen; i++) {
    ret = gh_daemon_tls_add_listener(srv, &cfg->tls, cfg->listen[i]); /* logs failures */
    if (ret != 0)
      goto out;
  }
  /* listeners are bound: now drop to the service identity (DESIGN.md §3) */
  ret = setup_identity(cfg);
  if (ret != 0)
    goto out;
  for (size_t i = 0; i < cfg->n_sites; i++) {
    ret = gh_server_add_url_group(srv, cfg->sites[i].prefix, NULL, &cfg->sites[i], &groups[i]);
    /* a handler module that relays (proxy) reads bodies as they arrive */
    if (ret == 0 && gh_pipeline_site_streams_body(pl, cfg->sites[i].prefix))
      ret = gh_url_group_set_stream_body(groups[i], 1);
    if (ret != 0) {
      gh_dlog(LOG_ERR, "[site %s]: %s", cfg->sites[i].prefix, gh_strerror(ret));
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

/* Worker processes: the counters live in memory the master maps shared
 * before it forks, one slot per worker index (docs/internals/httpapi.md,
 * "Metrics"); before any URL group is added, so the sites are numbered in
 * it. Never unmapped: the processes count into it until they exit. */
static int setup_metrics(const gh_daemon_config_t *cfg)
{
  int ret = 0;
  if (cfg->processes <= 1)
    goto out; /* the library's own block: this process only */
  size_t len = gh_metrics_size(cfg->processes);
  void *mem =
      len ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
  if (mem == MAP_FAILED) {
    ret = len ? -errno : -EINVAL;
    gh_dlog(LOG_ERR, "metrics: shared memory for %u processes: %s", cfg->processes,
            gh_strerror(ret));
    goto out;
  }
  ret = gh_metrics_attach(mem, len, cfg->processes);
  if (ret != 0)
    gh_dlog(LOG_ERR, "metrics: %s", gh_strerror(ret));
  else
    gh_metrics_worker_alive(0);
out:
  return ret;
}

static unsigned long trim_count;
static double trim_seconds; /* CPU time of the trims (GH_MALLOC_STATS reports it) */

/* Debug only: with GH_MALLOC_STATS=FILE in the environment, SIGUSR2 appends
 * glibc's malloc_info() XML (every arena: in use, free, top, mmap) and a
 * mallinfo2 summary line to FILE. Not set: SIGUSR2 keeps its default action. */
static void malloc_stats_dump(const char *path)
{
  FILE *f = fopen(path, "ae");
  if (f == NULL) {
    gh_dlog(LOG_WARNING, "GH_MALLOC_STATS %s: %s", path, strerror(errno));
    return;
  }
  struct mallinfo2 mi = mallinfo2();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(f,
          "<!-- t=%lld.%03ld arena=%zu hblkhd=%zu uordblks=%zu fordblks=%zu keepcost=%zu "
          "trims=%lu trim_cpu_ms=%.3f -->\n",
          (long long)ts.tv_sec, ts.tv_nsec / 1000000, mi.arena, mi.hblkhd, mi.uordblks,
          mi.fordblks, mi.keepcost, trim_count, trim_seconds * 1000);
  malloc_info(0, f);
  fclose(f);
}

/* Every malloc_trim_interval seconds the main thread (otherwise asleep on the
 * signalfd) hands free pages back to the kernel: malloc_trim(0) walks every
 * arena and madvises the whole free pages inside them away, not only the top.
 * Without it memory freed inside a worker's arena after a peak (a replay-cache
 * shard's old table, a burst's buffers) stays resident behind live blocks.
 * Each arena's lock is held while it is walked: ~0.1-1 ms every 10 s. */
static struct timespec trim_due;

static int trim_wait_ms(unsigned interval_s)
{
  struct timespec now;
  if (interval_s == 0)
    return -1;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (trim_due.tv_sec == 0)
    trim_due.tv_sec = now.tv_sec + interval_s;
  long long ms = (long long)(trim_due.tv_sec - now.tv_sec) * 1000 +
                 (trim_due.tv_nsec - now.tv_nsec) / 1000000;
  if (ms <= 0) {
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    malloc_trim(0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    trim_count++;
    trim_seconds += (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    clock_gettime(CLOCK_MONOTONIC, &trim_due);
    trim_due.tv_sec += interval_s;
    ms = (long long)interval_s * 1000;
  }
  return (int)ms;
}

/* One malloc arena per long-lived thread (workers, I/O threads, main), no
 * more: glibc's default (8 per core) lets the short-lived PAM helper threads,
 * which come in bursts whenever the Basic cache expires, create arenas of
 * their own, each then mostly free but resident. Beyond the cap a new thread
 * shares an existing arena. GLIBC_TUNABLES=glibc.malloc.arena_max=N wins. */
static void malloc_policy(const gh_daemon_config_t *cfg)
{
  const char *t = getenv("GLIBC_TUNABLES");
  if (t != NULL && strstr(t, "glibc.malloc.arena_max") != NULL)
    return;
  unsigned io = cfg->server.io_threads ? cfg->server.io_threads : 1;
  mallopt(M_ARENA_MAX, (int)(cfg->workers + io + 1));
}

/* Whether a site's handler module relays (asked for streamed bodies): the
 * pipeline knows, the daemon names no module. */
static bool site_relays(const gh_daemon_config_t *cfg, gh_pipeline_t *pl)
{
  for (size_t i = 0; i < cfg->n_sites; i++)
    if (gh_pipeline_site_streams_body(pl, cfg->sites[i].prefix))
      return true;
  return false;
}

static void notify_reloading(void)
{
  char msg[96];
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  gh_notify(msg);
}

/* SIGHUP: parse the file again and apply what can change live; reopen logs. */
static void reload(const char *file, const gh_daemon_config_t *cfg, gh_pipeline_t *pl,
                   gh_server_t *srv)
{
  gh_daemon_config_t ncfg;
  char err[1024];
  int e;
  notify_reloading();
  if (gh_daemon_config_load(file, &ncfg, err, sizeof(err)) != 0) {
    gh_dlog(LOG_ERR, "reload refused, configuration kept: %s", err);
  } else {
    e = gh_daemon_pipeline_reload(pl, cfg, &ncfg, err, sizeof(err));
    if (e != 0)
      gh_dlog(LOG_ERR, "reload refused, configuration kept: %s", err);
    else
      gh_dlog(LOG_INFO, "configuration reloaded from %s", file);
    gh_daemon_config_done(&ncfg);
  }
  /* certificates: the files named at start-up are read again; a broken one
   * keeps every listener on its current certificates */
  e = gh_server_reload_tls(srv, err, sizeof(err));
  if (e != 0)
    gh_dlog(LOG_ERR, "TLS certificates not reloaded, current ones kept: %s",
            err[0] ? err : gh_strerror(e));
  e = gh_server_reload_keytab(srv, err, sizeof(err)); /* a bad file keeps the keys */
  if (e != GH_ENOT_FOUND)
    gh_dlog(e == 0 ? LOG_INFO : LOG_ERR, "auth: %s", err);
  /* session keys: the file is read again (rotation); a bad one keeps them */
  e = gh_server_reload_session_keys(srv, err, sizeof(err));
  if (e != GH_ENOT_FOUND && err[0])
    gh_dlog(e == 0 ? LOG_INFO : LOG_ERR, "auth: %s", err);
  e = gh_accesslog_reopen();
  if (e != 0)
    gh_dlog(LOG_ERR, "reopening access log: %s", gh_strerror(e));
  gh_notify("READY=1");
}

int main(int argc, char **argv)
{
  int ret = 1, opt, sfd = -1;
  const char *file = NULL;
  bool test_only = false, foreground = false, doctor = false;
  static const struct option long_opts[] = {
    { "doctor", no_argument, NULL, 'D' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  gh_daemon_config_t cfg;
  gh_server_t *srv = NULL;
  gh_pipeline_t *pl = NULL;
  char err[1024];
  bool have_cfg = false;
  int e;

  while ((opt = getopt_long(argc, argv, "c:tfh", long_opts, NULL)) != -1) {
    switch (opt) {
    case 'D':
      doctor = true;
      break;
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
  if (file == NULL || optind != argc || (doctor && test_only)) {
    usage(stderr);
    ret = 2;
    goto out;
  }
  if (doctor) { /* one line per check on stdout; the exit status says whether any failed */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (gh_daemon_config_load(file, &cfg, err, sizeof(err)) != 0) {
      printf("FAIL config: %s -- fix: correct the line named (gatehoused -t -c %s)\n"
             "doctor: 0 OK, 0 WARN, 1 FAIL, 0 INFO\n", err, file);
      goto out;
    }
    have_cfg = true;
    gh_dlog_setup("stderr");
    ret = gh_daemon_doctor(&cfg, stdout);
    goto out;
  }
  /* Until the configuration is read, errors go to stderr (the terminal of
   * `gatehoused -t`, or the journal's stream under systemd). */
  if (gh_daemon_config_load(file, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "gatehoused: %s\n", err);
    goto out;
  }
  have_cfg = true;
  const gh_daemon_item_t *log_item = server_item(&cfg, "log");
  const char *log_target = log_item != NULL ? log_item->value : NULL;
  if (gh_dlog_setup(log_target) != 0 || (test_only && gh_dlog_setup("stderr") != 0)) {
    fprintf(stderr,
            "gatehoused: %s:%u: [server] log: '%s' is not auto, stderr, syslog or journald%s\n",
            file, log_item->line, log_target,
            GH_HAVE_SYSTEMD ? "" : " (built without libsystemd: no journald)");
    goto out;
  }
  /* Modules are loaded (and the pipeline keys checked) in -t mode too. */
  if (gh_daemon_pipeline_new(&cfg, &pl, err, sizeof(err)) != 0) {
    fprintf(stderr, "gatehoused: %s\n", err);
    goto out;
  }
  if (test_only) {
    fprintf(stderr, "gatehoused: %s: configuration ok (%zu modules: ", file,
            gh_pipeline_get_module_count(pl));
    for (size_t i = 0; i < gh_pipeline_get_module_count(pl); i++)
      fprintf(stderr, "%s%s", i ? " " : "", gh_pipeline_get_module_name(pl, i));
    fprintf(stderr, ")\n");
    ret = 0;
    goto out;
  }

  /* Signals: blocked in every thread (workers inherit the mask), read here. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  const char *mstats = getenv("GH_MALLOC_STATS");
  if (mstats != NULL && mstats[0] != '\0')
    sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* a running daemon holding the pid file: refused before anything is
   * bound, on the terminal */
  if (cfg.pid_file != NULL && (e = gh_pidfile_check(cfg.pid_file, err, sizeof(err))) != 0) {
    gh_dlog(LOG_ERR, "%s", err);
    goto out;
  }
  /* a relaying site (the proxy) holds its worker while the upstream answers
   * (slow answers, long polls, server-sent events): a default of one worker
   * per CPU would let a few such requests stop the server */
  bool relays = site_relays(&cfg, pl);
  if (relays && !cfg.workers_set && cfg.workers < GH_RELAY_DEFAULT_WORKERS)
    cfg.workers = GH_RELAY_DEFAULT_WORKERS;
  malloc_policy(&cfg); /* before any thread exists */
  if (cfg.processes > 1) /* max_connections bounds the whole daemon */
    cfg.server.max_connections = (cfg.server.max_connections + cfg.processes - 1) / cfg.processes;
  /* listeners, privilege drop + sec layer, sites, auth engine */
  if (setup_metrics(&cfg) != 0 || setup_server(&cfg, pl, &srv) != 0)
    goto out;
  e = gh_accesslog_open(cfg.access_log);
  if (e != 0) {
    gh_dlog(LOG_ERR, "access_log %s: %s", cfg.access_log, gh_strerror(e));
    goto out;
  }
  if (!foreground && (e = detach()) != 0) {
    gh_dlog(LOG_ERR, "cannot detach: %s", gh_strerror(e));
    goto out;
  }
  if (!foreground)
    gh_dlog_detached(log_target); /* stderr is /dev/null now: journald or syslog */
  if (cfg.processes > 1) {
    bool child = false;
    unsigned index = 0;
    /* the master is the daemon: its pid goes into the file, before it
     * forks the worker processes */
    if (cfg.pid_file != NULL && (e = gh_pidfile_write(cfg.pid_file, err, sizeof(err))) != 0) {
      gh_dlog(LOG_ERR, "%s", err);
      goto out;
    }
    gh_dlog_serving();
    ret = gh_daemon_run_master(&cfg, &set, &child, &index);
    if (!child)
      goto out; /* the master's life is over: its children are gone */
    ret = 1;
    gh_notify_set_ready_fd(-1); /* the master tells the starter, not a worker */
    e = gh_server_atfork_child(srv, index);
    if (e != 0) {
      gh_dlog(LOG_ERR, "worker process: %s", gh_strerror(e));
      goto out;
    }
  }
  sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    gh_dlog(LOG_ERR, "signalfd: %s", strerror(errno));
    goto out;
  }
  e = gh_pipeline_start(pl);
  if (e != 0) {
    gh_dlog(LOG_ERR, "module start: %s", gh_strerror(e));
    goto out;
  }
  /* a worker process with one worker serves on this thread alone (no I/O
   * thread, no worker thread: nginx's model; gh_server_serve): a blocked
   * handler delays its signals, but the master's SIGKILL bounds a stop */
  bool alone = cfg.processes > 1 && cfg.workers == 1;
  if (alone)
    e = gh_server_serve(srv, gh_daemon_handle, pl, sfd, 0); /* sets up: errors now */
  else if ((e = gh_server_start(srv)) == 0)
    e = gh_server_run_workers(srv, cfg.workers, gh_daemon_handle, pl);
  if (e < 0) {
    gh_dlog(LOG_ERR, "start: %s", gh_strerror(e));
    goto out;
  }
  bool serve = true;
  if (cfg.processes == 1 && cfg.pid_file != NULL &&
      (e = gh_pidfile_write(cfg.pid_file, err, sizeof(err))) != 0) {
    gh_dlog(LOG_ERR, "%s; stopping", err);
    serve = false;
  }
  for (size_t i = 0; i < cfg.n_listen && serve; i++)
    gh_dlog(LOG_INFO, "listening on %s", cfg.listen[i]);
  if (serve && relays && cfg.workers < GH_RELAY_WARN_WORKERS)
    gh_dlog(LOG_WARNING,
            "workers = %u with a proxy site: a proxied request holds a worker while it "
            "streams a body from or to a slow client, so %u slow uploads or downloads stop the "
            "server; set workers >= %u (docs/proxy.md)",
            cfg.workers, cfg.workers, GH_RELAY_WARN_WORKERS);
  if (serve) {
    if (alone)
      gh_dlog(LOG_INFO, "ready (pid %d, serving alone on its main thread, %zu modules, log to %s)",
              (int)getpid(), gh_pipeline_get_module_count(pl), gh_dlog_target());
    else
      gh_dlog(LOG_INFO, "ready (pid %d, %u workers, %zu modules, log to %s)", (int)getpid(),
              cfg.workers, gh_pipeline_get_module_count(pl), gh_dlog_target());
    gh_notify("READY=1\nSTATUS=serving");
    gh_dlog_serving();
  }

  while (serve) {
    struct signalfd_siginfo si;
    struct pollfd pfd = { .fd = sfd, .events = POLLIN };
    int pr = alone ? gh_server_serve(srv, gh_daemon_handle, pl, sfd,
                                     trim_wait_ms(cfg.malloc_trim_interval_s))
                   : poll(&pfd, 1, trim_wait_ms(cfg.malloc_trim_interval_s));
    if (alone && pr < 0) {
      gh_dlog(LOG_ERR, "serve: %s; stopping", gh_strerror(pr));
      break;
    }
    if (pr == 0 || (pr < 0 && errno == EINTR))
      continue;
    ssize_t n = read(sfd, &si, sizeof(si));
    if (n < 0 && errno == EINTR)
      continue;
    if (n != sizeof(si)) {
      gh_dlog(LOG_ERR, "signalfd read: %s", strerror(errno));
      break;
    }
    if (si.ssi_signo == SIGHUP) {
      reload(file, &cfg, pl, srv);
      continue;
    }
    if (si.ssi_signo == SIGUSR2) {
      malloc_stats_dump(mstats);
      continue;
    }
    gh_dlog(LOG_INFO, "signal %d, shutting down", (int)si.ssi_signo);
    break;
  }
  gh_notify("STOPPING=1");
  e = gh_server_shutdown(srv, cfg.shutdown_timeout_ms);
  if (e != 0)
    gh_dlog(LOG_WARNING, "shutdown: %s (requests cut off)", gh_strerror(e));
  else
    gh_dlog(LOG_INFO, "stopped");
  ret = serve ? 0 : 1;
out:
  gh_pidfile_remove(); /* the process that wrote it, when it still names it */
  gh_server_free(srv);
  gh_pipeline_free(pl); /* after the workers: GH_GLOBAL_STOP, dlclose */
  gh_accesslog_close();
  if (sfd >= 0)
    close(sfd);
  if (have_cfg)
    gh_daemon_config_done(&cfg);
  return ret;
}

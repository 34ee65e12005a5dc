/* fault_common.c: the harness the allocation-failure walks share (see fault_common.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "../sec/sec_fixture.h"
#include "fault_common.h"
#include "util/alloc.h"

const fault_user_t fault_users[FAULT_N_USERS] = {
  {"alice", U_ALICE, G_ALICE},
  {"bob", U_BOB, G_BOB},
  {"carol", U_CAROL, G_CAROL},
};

bool fault_have_root;
char fault_unix_path[100];
char fault_files_dir[300];

uid_t fault_uid_of(const char *user)
{
  for (size_t i = 0; i < FAULT_N_USERS; i++)
    if (strcmp(fault_users[i].name, user) == 0)
      return fault_users[i].uid;
  return (uid_t)-1;
}

gid_t fault_gid_of(const char *user)
{
  for (size_t i = 0; i < FAULT_N_USERS; i++)
    if (strcmp(fault_users[i].name, user) == 0)
      return fault_users[i].gid;
  return (gid_t)-1;
}

void fault_write_text(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0 || dprintf(fd, "%s", text) < 0) {
    perror(path);
    exit(99);
  }
  close(fd);
}

/* <fixture>/files/<user>.txt: "secret-of-<user>", 0600, owned by the user. */
static void make_files(void)
{
  char path[512], text[64];
  mkdir(fault_files_dir, 0755);
  for (size_t i = 0; i < FAULT_N_USERS; i++) {
    snprintf(path, sizeof(path), "%s/%s.txt", fault_files_dir, fault_users[i].name);
    snprintf(text, sizeof(text), "secret-of-%s", fault_users[i].name);
    fault_write_text(path, text, 0600);
    if (chown(path, fault_users[i].uid, fault_users[i].gid) != 0) {
      perror("fault: chown");
      exit(99);
    }
  }
}

int fault_setup(void)
{
  fault_have_root = fx_root();
  if (snprintf(fault_unix_path, sizeof(fault_unix_path), "%s/gh.sock", fx_dir()) >=
      (int)sizeof(fault_unix_path))
    return 99;
  snprintf(fault_files_dir, sizeof(fault_files_dir), "%s/files", fx_dir());
  if (fault_have_root) {
    /* without root nothing is read as the users: no files needed */
    make_files();
    gh_sec_config_t sc = {.min_uid = 1000, .group_cache_ttl_s = 0};
    if (gh_sec_init(&sc) != 0) {
      fprintf(stderr, "gh_sec_init failed\n");
      return 99;
    }
  }
  return 0;
}

/* ---- the client side ---------------------------------------------------- */

int fault_read_responses(int fd, resp_t *out, int want, bool *ret_eof, bool *ret_timeout)
{
  static __thread char buf[65536];
  size_t len = 0;
  int got = 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  *ret_eof = *ret_timeout = false;
  while (got < want) {
    /* parse what we have */
    for (;;) {
      buf[len] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (end == NULL)
        break;
      int status = 0;
      if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        fail_msg("unparsable response: %.80s", buf);
      char *cl = strcasestr(buf, "\r\nContent-Length:");
      if (cl == NULL || cl > end)
        fail_msg("response without Content-Length: %.300s", buf);
      size_t clen = strtoul(cl + 17, NULL, 10);
      size_t head = (size_t)(end + 4 - buf);
      if (len < head + clen)
        break;
      out[got].status = status;
      snprintf(out[got].body, sizeof(out[got].body), "%.*s", (int)clen, end + 4);
      got++;
      memmove(buf, buf + head + clen, len - head - clen);
      len -= head + clen;
      if (got == want)
        break;
    }
    if (got == want)
      break;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long left = CLIENT_TIMEOUT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
      *ret_timeout = true;
      break;
    }
    ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (n <= 0) {
      *ret_eof = true;
      break;
    }
    len += (size_t)n;
  }
  return got;
}

int fault_connect_tcp(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* Runs in its own thread: only its credentials change for the connect(). */
static void *peer_thread(void *arg)
{
  long *res = arg;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fault_unix_path);
  if (syscall(SYS_setresgid, -1, G_CAROL, -1) != 0 || syscall(SYS_setresuid, -1, U_CAROL, -1) != 0)
    abort();
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  if (syscall(SYS_setresuid, -1, 0, -1) != 0 || syscall(SYS_setresgid, -1, 0, -1) != 0)
    abort();
  res[0] = rc == 0 ? fd : -1;
  if (rc != 0)
    close(fd);
  return NULL;
}

int fault_connect_peer(void)
{
  long res[1] = {-1};
  pthread_t t;
  if (pthread_create(&t, NULL, peer_thread, res) != 0)
    fail_msg("pthread_create");
  pthread_join(t, NULL);
  return (int)res[0];
}

void fault_exchange(int fd, const char *raw, size_t len, int want, fault_judge_fn *judge,
                    fault_label_fn *label, const void *ctx, walk_stats_t *st, long n)
{
  resp_t rs[8];
  bool eof = false, timeout = false;
  assert_true(want <= (int)(sizeof(rs) / sizeof(rs[0])));
  if (send(fd, raw, len, MSG_NOSIGNAL) < 0) {
    st->closed++;
    return;
  }
  int got = fault_read_responses(fd, rs, want, &eof, &timeout);
  for (int i = 0; i < got; i++)
    judge(&rs[i], i, ctx, st, n);
  if (got < want) {
    if (timeout)
      fail_msg("N=%ld: no response and no close within %d ms (%d of %d responses%s%s)", n,
               CLIENT_TIMEOUT_MS, got, want, label ? ", first " : "", label ? label(got, ctx) : "");
    st->closed++;
  }
}

/* ---- the walk ----------------------------------------------------------- */

typedef struct {
  const fault_walk_t *w;
  int port, stop_fd;
  walk_stats_t *st;
  long n;
} alone_clients_t;

static void *alone_clients_main(void *arg)
{
  alone_clients_t *a = arg;
  a->w->clients(a->port, a->st, a->n);
  if (write(a->stop_fd, "x", 1) != 1)
    abort();
  return NULL;
}

/* One round of clients: on this thread, or (served alone) on another one
 * while this thread serves until they are done. */
static void run_clients(const fault_walk_t *w, gh_server_t *srv, void *arg, const int *pfd,
                        int port, walk_stats_t *st, long n)
{
  alone_clients_t a = {.w = w, .port = port, .stop_fd = pfd[1], .st = st, .n = n};
  pthread_t th;
  char b;
  int rc;
  if (!w->alone) {
    w->clients(port, st, n);
    return;
  }
  assert_int_equal(pthread_create(&th, NULL, alone_clients_main, &a), 0);
  while ((rc = gh_server_serve(srv, w->handler, arg, pfd[0], -1)) == 0)
    ;
  pthread_join(th, NULL);
  if (rc != 1)
    fail_msg("N=%ld: serving alone failed with %d (%s)", n, rc, gh_strerror(rc));
  assert_int_equal(read(pfd[0], &b, 1), 1);
}

bool fault_run_once(const fault_walk_t *w, long n, bool once, walk_stats_t *st)
{
  int pfd[2] = {-1, -1};
  gh_server_t *srv = NULL;
  gh_server_config_t cfg;
  void *arg = NULL;
  bool started = false, clean;
  int port = 0, rc = 0;
  gh_server_config_init(&cfg);
  cfg.header_timeout_ms = 2000;

  st->iterations++;
  if (once)
    gh__alloc_fail_once_after(n);
  else
    gh__alloc_fail_after(n);
  if (w->setup != NULL)
    rc = w->setup(&arg);
  if (rc == 0)
    rc = gh_server_new(&cfg, &srv);
  if (rc == 0)
    rc = gh_server_add_listener(srv, "127.0.0.1:0");
  if (rc == 0 && fault_have_root) {
    char addr[160];
    snprintf(addr, sizeof(addr), "unix:%s", fault_unix_path);
    rc = gh_server_add_listener(srv, addr);
  }
  if (rc == 0)
    rc = w->add_groups(srv);
  if (w->alone) {
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    if (rc == 0 && (rc = gh_server_serve(srv, w->handler, arg, pfd[0], 0)) == 0)
      started = true; /* set up (0: nothing for the caller yet) */
  } else {
    if (rc == 0 && (rc = gh_server_start(srv)) == 0)
      started = true;
    if (rc == 0)
      rc = gh_server_run_workers(srv, 2, w->handler, arg);
  }
  if (rc == 0) {
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(gh_server_listener_address(srv, 0, &ss, &len), 0);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    run_clients(w, srv, arg, pfd, port, st, n);
  } else {
    if (rc != -ENOMEM)
      fail_msg("N=%ld: set-up failed with %d (%s), not -ENOMEM", n, rc, gh_strerror(rc));
    st->setup_failed++;
  }
  clean = gh__alloc_injected() == 0;
  gh__alloc_fail_after(-1);

  if (port != 0) {
    /* the failures are over: fresh connections must be served exactly */
    walk_stats_t r = {0};
    run_clients(w, srv, arg, pfd, port, &r, n);
    if (r.served_ok != w->recover_want())
      fail_msg("N=%ld: server did not recover after the failures (%ld ok, %ld errors, %ld closed)",
               n, r.served_ok, r.error_status, r.closed);
    st->recovered++;
  }
  if (srv != NULL) {
    if (started)
      gh_server_shutdown(srv, 2000);
    gh_server_free(srv);
  }
  for (int i = 0; i < 2; i++)
    if (pfd[i] >= 0)
      close(pfd[i]);
  if (arg != NULL && w->teardown != NULL)
    w->teardown(arg);
  if (fault_have_root)
    gh_assert_base();
  return clean;
}

long fault_walk(const fault_walk_t *w, bool once, walk_stats_t *st)
{
  long n;
  const char *lim = getenv("GH_FAULT_MAX_N");
  long max_n = lim ? atol(lim) : MAX_N;
  const char *first = getenv("GH_FAULT_START_N"); /* debugging aid */
  for (n = first ? atol(first) : 0; n < max_n; n++)
    if (fault_run_once(w, n, once, st))
      break;
  if (n >= max_n)
    fail_msg("no clean pass within N < %ld", max_n);
  return n;
}

/* test_auth_rcache_redis.c: the farm's replay store — URL forms, SET NX / replay / DEL against a
 * real redis-server, connections never shared across fork and always close-on-exec, fail closed
 * while Redis is away (or local), recovery. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gatehouse/error.h"
#include "httpapi/auth/auth_internal.h"

static char dir[32], sock[64], url[80];
static pid_t redis_pid = -1;

static bool redis_up(void)
{
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok;

  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
  ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool redis_start(void)
{
  if (access("/usr/bin/redis-server", X_OK) != 0)
    return false;
  redis_pid = fork();
  if (redis_pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
          "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir, NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !redis_up(); i++)
    sleep_ms(10);
  return redis_up();
}

static void redis_stop(void)
{
  if (redis_pid > 0) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
  }
  unlink(sock);
}

static int setup(void **state)
{
  snprintf(dir, sizeof(dir), "/tmp/gh-rr-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(sock, sizeof(sock), "%s/r.sock", dir);
  snprintf(url, sizeof(url), "unix:%s", sock);
  return 0;
}

static int teardown(void **state)
{
  char p[160];
  redis_stop();
  snprintf(p, sizeof(p), "%s/dump.rdb", dir);
  unlink(p);
  rmdir(dir);
  return 0;
}

static void tag_of(uint32_t i, uint8_t tag[GH__RCACHE_TAG_LEN])
{
  memset(tag, 0x5a, GH__RCACHE_TAG_LEN);
  memcpy(tag, &i, sizeof(i));
  tag[5] = (uint8_t)getpid();
  tag[6] = (uint8_t)(time(NULL) & 0xff); /* a rerun within the window finds fresh keys */
}

static char last_log[512];
static int n_logs;
static void log_cb(void *arg, int priority, const char *msg)
{
  (void)arg;
  (void)priority;
  snprintf(last_log, sizeof(last_log), "%s", msg);
  n_logs++;
}

static gh__rcache_redis_t *backend(bool fallback)
{
  gh__rcache_redis_config_t cfg = {url, NULL, fallback, 200, log_cb, NULL};
  gh__rcache_redis_t *r = NULL;
  char err[256] = "";
  assert_int_equal(gh__rcache_redis_new(&cfg, err, sizeof(err), &r), 0);
  return r;
}

static void test_urls(void **state)
{
  static const char *good[] = {
      "redis://127.0.0.1", "redis://127.0.0.1:6380", "redis://h.example:1/15", "redis://[::1]:7/2",
      "redis://user@host", "unix:/run/redis/r.sock", "unix:/r.sock?db=3",      "redis://host/",
  };
  static const char *bad[] = {
      "redis://",       "redis://:6379",   "redis://host:0",     "redis://host:65536",
      "redis://host:x", "redis://host/db", "redis://host/99999", "redis://u:p@host",
      "redis://[::1",   "redis://[::1]x",  "redis://ho st",      "rediss://host",
      "unix:",          "unix:rel",        "unix:/a?db=",        "unix:/a?x=1",
      "memory2",        "http://host",     "redis://@host",
  };
  char msg[256];
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    msg[0] = '\0';
    if (gh__rcache_redis_check_url(good[i], msg, sizeof(msg)) != 0)
      fail_msg("%s refused: %s", good[i], msg);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msg[0] = '\0';
    if (gh__rcache_redis_check_url(bad[i], msg, sizeof(msg)) != GH_ECONFIG || !msg[0])
      fail_msg("%s taken", bad[i]);
  }
  /* the public checker is the same */
  assert_int_equal(gh_auth_replay_cache_check("redis://h", msg, sizeof(msg)), 0);
  assert_int_equal(gh_auth_replay_cache_check("redis:/h", msg, sizeof(msg)), GH_ECONFIG);
}

/* Every socket fd of this process is close-on-exec. */
static void assert_sockets_cloexec(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    struct stat st;
    if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
      continue;
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    n++;
  }
  closedir(d);
  assert_true(n > 0);
}

static void test_set_nx_replay_remove(void **state)
{
  uint8_t t1[GH__RCACHE_TAG_LEN], t2[GH__RCACHE_TAG_LEN];
  if (!redis_up() && !redis_start())
    skip();
  gh__rcache_redis_t *a = backend(false), *b = backend(false);
  assert_int_equal(gh__rcache_redis_conns(a), 0); /* nothing kept from the start-up probe */
  tag_of(1, t1);
  tag_of(2, t2);
  assert_int_equal(gh__rcache_redis_insert(a, t1, 660), 0);
  assert_int_equal(gh__rcache_redis_insert(b, t1, 660), GH__RCACHE_REPLAY); /* another node */
  assert_int_equal(gh__rcache_redis_insert(a, t1, 660), GH__RCACHE_REPLAY);
  assert_int_equal(gh__rcache_redis_insert(b, t2, 660), 0);
  gh__rcache_redis_remove(b, t2); /* its accept failed: may come again */
  assert_int_equal(gh__rcache_redis_insert(a, t2, 660), 0);
  /* one connection each, reused */
  assert_int_equal(gh__rcache_redis_conns(a), 1);
  assert_int_equal(gh__rcache_redis_conns(b), 1);
  assert_sockets_cloexec();
  gh__rcache_redis_free(a);
  gh__rcache_redis_free(b);
}

static void test_fork_gets_own_connections(void **state)
{
  uint8_t t[GH__RCACHE_TAG_LEN], u[GH__RCACHE_TAG_LEN];
  int st;
  if (!redis_up() && !redis_start())
    skip();
  gh__rcache_redis_t *r = backend(false);
  tag_of(10, t);
  tag_of(11, u);
  assert_int_equal(gh__rcache_redis_insert(r, t, 660), 0);
  assert_int_equal(gh__rcache_redis_conns(r), 1);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* the parent's connection is not this process's to use */
    int ok = gh__rcache_redis_conns(r) == 0 &&
             gh__rcache_redis_insert(r, t, 660) == GH__RCACHE_REPLAY &&
             gh__rcache_redis_insert(r, u, 660) == 0 && gh__rcache_redis_conns(r) == 1;
    gh__rcache_redis_free(r);
    _exit(ok ? 0 : 1);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* the parent's connection still works (the child closed only its copy) */
  assert_int_equal(gh__rcache_redis_insert(r, u, 660), GH__RCACHE_REPLAY);
  assert_int_equal(gh__rcache_redis_conns(r), 1);
  gh__rcache_redis_free(r);
}

static void test_down_fails_closed_then_recovers(void **state)
{
  uint8_t t[GH__RCACHE_TAG_LEN];
  if (!redis_up() && !redis_start())
    skip();
  gh__rcache_redis_t *r = backend(false), *l = backend(true);
  tag_of(20, t);
  assert_int_equal(gh__rcache_redis_insert(r, t, 660), 0);
  redis_stop();
  n_logs = 0;
  for (uint32_t i = 0; i < 50; i++) {
    tag_of(100 + i, t);
    assert_int_equal(gh__rcache_redis_insert(r, t, 660), GH_EREPLAY_CACHE);
  }
  assert_int_equal(n_logs, 1); /* one line for the outage, not one per request */
  assert_non_null(strstr(last_log, "unreachable"));
  assert_non_null(strstr(last_log, "answered 503"));
  tag_of(200, t);
  assert_int_equal(gh__rcache_redis_insert(l, t, 660), GH__RCACHE_LOCAL_ONLY);
  assert_non_null(strstr(last_log, "own cache only"));
  assert_true(redis_start());
  /* back within the backoff (at most 2 s) */
  int ret = -1;
  for (int i = 0; i < 300 && ret != 0; i++) {
    tag_of(300 + (uint32_t)i, t);
    ret = gh__rcache_redis_insert(r, t, 660);
    if (ret != 0)
      sleep_ms(10);
  }
  assert_int_equal(ret, 0);
  assert_non_null(strstr(last_log, "reachable again"));
  assert_int_equal(gh__rcache_redis_insert(r, t, 660), GH__RCACHE_REPLAY);
  gh__rcache_redis_free(r);
  gh__rcache_redis_free(l);
}

/* The rcache with Redis attached: tags are the same in two caches (two
 * nodes) and a tag one recorded is a replay for the other. */
static void test_attached_rcache_is_farm_wide(void **state)
{
  gh__auth_rcache_t *a = NULL, *b = NULL, *plain = NULL;
  uint8_t ta[GH__RCACHE_TAG_LEN], tb[GH__RCACHE_TAG_LEN], tp[GH__RCACHE_TAG_LEN];
  uint8_t cipher[64];
  gh__rcache_redis_config_t cfg = {url, NULL, false, 200, log_cb, NULL};
  if (!redis_up() && !redis_start())
    skip();
  for (size_t i = 0; i < sizeof(cipher); i++)
    cipher[i] = (uint8_t)(i * 7 + (unsigned)time(NULL));
  assert_int_equal(gh__auth_rcache_new(660, &a), 0);
  assert_int_equal(gh__auth_rcache_new_shared(660, &b), 0);
  assert_int_equal(gh__auth_rcache_new(660, &plain), 0);
  assert_int_equal(gh__auth_rcache_attach_redis(a, &cfg, NULL, 0), 0);
  assert_int_equal(gh__auth_rcache_attach_redis(b, &cfg, NULL, 0), 0);
  assert_int_equal(gh__auth_rcache_tag(a, cipher, sizeof(cipher), ta), 0);
  assert_int_equal(gh__auth_rcache_tag(b, cipher, sizeof(cipher), tb), 0);
  assert_int_equal(gh__auth_rcache_tag(plain, cipher, sizeof(cipher), tp), 0);
  assert_memory_equal(ta, tb, GH__RCACHE_TAG_LEN);
  assert_memory_not_equal(ta, tp, GH__RCACHE_TAG_LEN); /* the local one stays salted */
  assert_int_equal(gh__auth_rcache_insert(a, ta), 0);
  assert_int_equal(gh__auth_rcache_insert(b, tb), GH__RCACHE_REPLAY);
  /* a failed accept forgets it on both levels */
  cipher[0] ^= 1;
  assert_int_equal(gh__auth_rcache_tag(a, cipher, sizeof(cipher), ta), 0);
  assert_int_equal(gh__auth_rcache_insert(a, ta), 0);
  gh__auth_rcache_remove(a, ta);
  assert_int_equal(gh__auth_rcache_insert(b, ta), 0);
  /* Redis away: fail closed, and the local entry is not kept */
  redis_stop();
  cipher[0] ^= 2;
  assert_int_equal(gh__auth_rcache_tag(a, cipher, sizeof(cipher), ta), 0);
  assert_int_equal(gh__auth_rcache_insert(a, ta), GH_EREPLAY_CACHE);
  assert_true(redis_start());
  int ret = -1;
  for (int i = 0; i < 300 && ret != 0; i++) {
    ret = gh__auth_rcache_insert(a, ta);
    if (ret != 0)
      sleep_ms(10);
  }
  assert_int_equal(ret, 0);
  gh__auth_rcache_free(a);
  gh__auth_rcache_free(b);
  gh__auth_rcache_free(plain);
}

/* A server that takes the connection and never answers: each request
 * gives up after the timeout (200 ms here) and fails closed. */
static void test_silent_server_times_out(void **state)
{
  char silent[80], su[96];
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  uint8_t t[GH__RCACHE_TAG_LEN];
  struct timespec t0, t1;
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  snprintf(silent, sizeof(silent), "%s/silent.sock", dir);
  snprintf(su, sizeof(su), "unix:%s", silent);
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", silent);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
  assert_int_equal(listen(lfd, 64), 0); /* connects complete; nothing is ever read */
  gh__rcache_redis_config_t cfg = {su, NULL, false, 200, log_cb, NULL};
  gh__rcache_redis_t *r = NULL;
  assert_int_equal(gh__rcache_redis_new(&cfg, NULL, 0, &r), 0);
  n_logs = 0;
  tag_of(400, t);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(gh__rcache_redis_insert(r, t, 660), GH_EREPLAY_CACHE);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  assert_true(ms >= 150 && ms < 1500);
  assert_non_null(strstr(last_log, "no reply within the timeout"));
  /* the next ones fail at once (backoff), without waiting again */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(gh__rcache_redis_insert(r, t, 660), GH_EREPLAY_CACHE);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 50);
  gh__rcache_redis_free(r);
  close(lfd);
  unlink(silent);
}

typedef struct th_arg {
  gh__rcache_redis_t *r;
  uint32_t base;
  int bad;
} th_arg_t;

static void *inserter(void *p)
{
  th_arg_t *a = p;
  uint8_t t[GH__RCACHE_TAG_LEN];
  for (uint32_t i = 0; i < 300; i++) {
    tag_of(a->base + i, t);
    if (gh__rcache_redis_insert(a->r, t, 660) != 0)
      a->bad++;
    if (gh__rcache_redis_insert(a->r, t, 660) != GH__RCACHE_REPLAY)
      a->bad++;
    if (i % 50 == 0)
      gh__rcache_redis_remove(a->r, t);
  }
  return NULL;
}

/* 8 threads at once: every insert answered right, at most one connection
 * per thread (the pool), none left busy. */
static void test_threads_share_the_pool(void **state)
{
  pthread_t th[8];
  th_arg_t a[8];
  if (!redis_up() && !redis_start())
    skip();
  gh__rcache_redis_t *r = backend(false);
  for (int i = 0; i < 8; i++) {
    a[i] = (th_arg_t){r, 10000u * (uint32_t)(i + 1), 0};
    assert_int_equal(pthread_create(&th[i], NULL, inserter, &a[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(a[i].bad, 0);
  }
  unsigned n = gh__rcache_redis_conns(r);
  assert_true(n >= 1 && n <= 8);
  gh__rcache_redis_free(r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_set_nx_replay_remove),
      cmocka_unit_test(test_fork_gets_own_connections),
      cmocka_unit_test(test_down_fails_closed_then_recovers),
      cmocka_unit_test(test_attached_rcache_is_farm_wide),
      cmocka_unit_test(test_silent_server_times_out),
      cmocka_unit_test(test_threads_share_the_pool),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

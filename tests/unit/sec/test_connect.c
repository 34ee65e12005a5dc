/* test_connect.c: gh_token_connect_unix: the listener's SO_PEERCRED/SO_PEERGROUPS name the token's
 * user; identity keys. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec_fixture.h"

enum { ALICE, BOB, CAROL, DAVE, NUSERS };
static const char *const user_names[NUSERS] = {"alice", "bob", "carol", "dave"};
static const uid_t user_uids[NUSERS] = {U_ALICE, U_BOB, U_CAROL, U_DAVE};
static const gid_t user_gids[NUSERS] = {G_ALICE, G_BOB, G_CAROL, G_DAVE};
static gh_token_t tok[NUSERS];
static char sock_path[300];
static int lfd = -1;

#define NEED_ROOT()                                                                                \
  do {                                                                                             \
    if (!fx_root()) {                                                                              \
      printf("# skip: %s needs root (kernel enforcement)\n", __func__);                            \
      skip();                                                                                      \
    }                                                                                              \
  } while (0)

static int listen_at(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (strlen(path) >= sizeof(sa.sun_path))
    return -1;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0777) != 0 ||
      listen(fd, 128) != 0)
    return -1;
  return fd;
}

static int group_setup(void **state)
{
  (void)state;
  if (!fx_root())
    return 0;
  snprintf(sock_path, sizeof(sock_path), "%s/up.sock", fx_dir());
  lfd = listen_at(sock_path);
  if (lfd < 0)
    return -1;
  for (int u = 0; u < NUSERS; u++) {
    if (gh_token_from_user(user_names[u], NULL, &tok[u]) != 0)
      return -1;
  }
  return 0;
}

/* The listener's view of the next connection, as "UID:GID:G1,G2,..." (the
 * format of gh_token_get_identity_key: the kernel sorts group lists). */
static void peer_key(char *buf, size_t len)
{
  struct ucred uc;
  socklen_t sl = sizeof(uc);
  gid_t groups[512];
  socklen_t gl = sizeof(groups);
  size_t used;
  int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true(afd >= 0);
  assert_int_equal(getsockopt(afd, SOL_SOCKET, SO_PEERCRED, &uc, &sl), 0);
  assert_int_equal(getsockopt(afd, SOL_SOCKET, SO_PEERGROUPS, groups, &gl), 0);
  close(afd);
  used = (size_t)snprintf(buf, len, "%u:%u:", (unsigned)uc.uid, (unsigned)uc.gid);
  for (size_t i = 0; i < gl / sizeof(gid_t); i++)
    used += (size_t)snprintf(buf + used, len - used, i == 0 ? "%u" : ",%u", (unsigned)groups[i]);
}

static void token_key(gh_token_t t, char *buf, size_t len)
{
  int n = gh_token_get_identity_key(t, buf, len);
  assert_true(n > 0 && (size_t)n < len);
  assert_int_equal(strlen(buf), (size_t)n);
}

/* Connect as t; the fd's flags; the listener sees exactly t's key. */
static void connect_and_check(gh_token_t t, char *peer, size_t len)
{
  char want[1024];
  int fd = -1;
  assert_int_equal(gh_token_connect_unix(t, sock_path, &fd), 0);
  assert_true(fd >= 0);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
  peer_key(peer, len);
  close(fd);
  token_key(t, want, sizeof(want));
  assert_string_equal(peer, want);
  /* the thread never moved */
  assert_false(gh_is_impersonating());
  assert_int_equal(geteuid(), 0);
}

static void test_peer_is_the_client(void **state)
{
  (void)state;
  NEED_ROOT();
  char peer[1024], want[64];
  for (int u = 0; u < NUSERS; u++) {
    connect_and_check(tok[u], peer, sizeof(peer));
    snprintf(want, sizeof(want), "%u:%u:", (unsigned)user_uids[u], (unsigned)user_gids[u]);
    assert_memory_equal(peer, want, strlen(want));
  }
  /* supplementary groups: alice is in shared, bob in proj, dave in neither */
  connect_and_check(tok[ALICE], peer, sizeof(peer));
  assert_non_null(strstr(peer, "30010"));
  connect_and_check(tok[BOB], peer, sizeof(peer));
  assert_non_null(strstr(peer, "30011"));
  assert_null(strstr(peer, "30010"));
  connect_and_check(tok[DAVE], peer, sizeof(peer));
  assert_null(strstr(peer, "30010"));
  assert_null(strstr(peer, "30011"));
  gh_assert_base();
}

static void test_identify_connects_as_anonymous(void **state)
{
  (void)state;
  NEED_ROOT();
  char peer[1024];
  gh_token_t idt;
  assert_int_equal(gh_token_duplicate(tok[ALICE], GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &idt),
                   0);
  connect_and_check(idt, peer, sizeof(peer));
  /* never alice's ids: an IDENTIFY token gives no access as the client */
  assert_true(strncmp(peer, "20001:", 6) != 0);
  assert_int_equal(gh_token_close(idt), 0);
}

static void test_while_impersonating(void **state)
{
  (void)state;
  NEED_ROOT();
  char peer[1024], want[1024];
  int fd;
  /* the token decides, not the thread's current client; the thread stays bob */
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_token_connect_unix(tok[ALICE], sock_path, &fd), 0);
  assert_int_equal(geteuid(), U_BOB);
  assert_int_equal(gh_revert(), 0);
  peer_key(peer, sizeof(peer));
  close(fd);
  token_key(tok[ALICE], want, sizeof(want));
  assert_string_equal(peer, want);
  gh_assert_base();
}

static void test_socket_permission_is_the_clients(void **state)
{
  (void)state;
  NEED_ROOT();
  char p[400], peer[1024];
  int fd = -1, l2;
  snprintf(p, sizeof(p), "%s/alice-only.sock", fx_dir());
  l2 = listen_at(p);
  assert_true(l2 >= 0);
  assert_int_equal(chown(p, U_ALICE, G_ALICE), 0);
  assert_int_equal(chmod(p, 0700), 0);
  assert_int_equal(gh_token_connect_unix(tok[BOB], p, &fd), -EACCES);
  assert_int_equal(fd, -1); /* not written on failure */
  assert_int_equal(gh_token_connect_unix(tok[ALICE], p, &fd), 0);
  close(fd);
  close(l2);
  unlink(p);
  (void)peer;
  gh_assert_base();
}

static void test_errors(void **state)
{
  (void)state;
  NEED_ROOT();
  char p[400], longp[200];
  int fd = -1, s;
  gh_token_t dup;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(p, sizeof(p), "%s/missing.sock", fx_dir());
  assert_int_equal(gh_token_connect_unix(tok[ALICE], p, &fd), -ENOENT);
  /* a socket file nobody listens on */
  snprintf(p, sizeof(p), "%s/dead.sock", fx_dir());
  assert_true(strlen(p) < sizeof(sa.sun_path));
  memcpy(sa.sun_path, p, strlen(p) + 1);
  s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(chmod(p, 0777), 0);
  close(s);
  assert_int_equal(gh_token_connect_unix(tok[ALICE], p, &fd), -ECONNREFUSED);
  memset(longp, 'a', sizeof(longp) - 1);
  longp[sizeof(longp) - 1] = '\0';
  assert_int_equal(gh_token_connect_unix(tok[ALICE], longp, &fd), -ENAMETOOLONG);
  assert_int_equal(gh_token_connect_unix(tok[ALICE], NULL, &fd), -EINVAL);
  assert_int_equal(gh_token_connect_unix(tok[ALICE], "", &fd), -EINVAL);
  assert_int_equal(gh_token_connect_unix(tok[ALICE], sock_path, NULL), -EINVAL);
  assert_int_equal(
      gh_token_duplicate(tok[ALICE], GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &dup), 0);
  assert_int_equal(gh_token_close(dup), 0);
  assert_int_equal(gh_token_connect_unix(dup, sock_path, &fd), GH_EINVALID_HANDLE);
  assert_int_equal(fd, -1);
  gh_assert_base();
}

static void test_identity_keys(void **state)
{
  (void)state;
  NEED_ROOT();
  char k[NUSERS][256], small[4];
  gh_token_t dup;
  for (int u = 0; u < NUSERS; u++)
    token_key(tok[u], k[u], sizeof(k[u]));
  for (int u = 0; u < NUSERS; u++)
    for (int v = u + 1; v < NUSERS; v++)
      assert_string_not_equal(k[u], k[v]);
  /* a duplicate at the same level is the same identity */
  assert_int_equal(
      gh_token_duplicate(tok[ALICE], GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &dup), 0);
  {
    char kd[256];
    token_key(dup, kd, sizeof(kd));
    assert_string_equal(kd, k[ALICE]);
  }
  assert_int_equal(gh_token_close(dup), 0);
  /* snprintf's contract: the whole length, what fits, NUL-terminated */
  assert_int_equal(gh_token_get_identity_key(tok[ALICE], NULL, 0), (int)strlen(k[ALICE]));
  assert_int_equal(gh_token_get_identity_key(tok[ALICE], small, sizeof(small)),
                   (int)strlen(k[ALICE]));
  assert_string_equal(small, "200");
  assert_int_equal(gh_token_get_identity_key(tok[ALICE], NULL, 5), -EINVAL);
}

/* Threads of different users connecting at once: no connection ever
 * carries another thread's identity. */
static void *connect_thread(void *arg)
{
  int u = (int)(intptr_t)arg;
  long bad = 0;
  for (int i = 0; i < 500; i++) {
    int fd = -1, rc;
    while ((rc = gh_token_connect_unix(tok[u], sock_path, &fd)) == -EAGAIN)
      usleep(50); /* the listener's backlog is full: it drains */
    if (rc != 0 || gh_is_impersonating())
      bad++;
    else
      close(fd);
  }
  return (void *)bad;
}

static void test_threads(void **state)
{
  (void)state;
  NEED_ROOT();
  pthread_t th[NUSERS];
  int fd;
  char peer[1024];
  long mismatches = 0, counts[NUSERS] = {0};
  char want[NUSERS][256];
  for (int u = 0; u < NUSERS; u++)
    token_key(tok[u], want[u], sizeof(want[u]));
  /* the listener drains while the threads connect */
  assert_int_equal(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
  for (int u = 0; u < NUSERS; u++)
    assert_int_equal(pthread_create(&th[u], NULL, connect_thread, (void *)(intptr_t)u), 0);
  for (int done = 0; done < NUSERS * 500;) {
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      assert_int_equal(errno, EAGAIN);
      usleep(100);
      continue;
    }
    {
      struct ucred uc;
      socklen_t sl = sizeof(uc);
      int u;
      assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl), 0);
      close(fd);
      for (u = 0; u < NUSERS && user_uids[u] != uc.uid; u++)
        ;
      if (u == NUSERS || uc.gid != user_gids[u])
        mismatches++;
      else
        counts[u]++;
    }
    done++;
  }
  for (int u = 0; u < NUSERS; u++) {
    void *bad;
    assert_int_equal(pthread_join(th[u], &bad), 0);
    assert_int_equal((intptr_t)bad, 0);
    assert_int_equal(counts[u], 500);
  }
  assert_int_equal(mismatches, 0);
  assert_int_equal(fcntl(lfd, F_SETFL, 0), 0);
  (void)peer;
  gh_assert_base();
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  gh_sec_config_t cfg = {.min_uid = 1000, .group_cache_ttl_s = 60};
  if (gh_sec_init(&cfg) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  if (!fx_root())
    printf("# not root: kernel enforcement tests are skipped\n");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peer_is_the_client),
      cmocka_unit_test(test_identify_connects_as_anonymous),
      cmocka_unit_test(test_while_impersonating),
      cmocka_unit_test(test_socket_permission_is_the_clients),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_identity_keys),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests_name("sec_connect", tests, group_setup, NULL);
}

/* test_privileges.c: gh_privileges_drop in forked children, checked through /proc/self/status and prctl. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec_fixture.h"

/* Root is needed to drop privileges; TSan runs a helper thread of its own,
 * which gh_privileges_drop rightly refuses (it must run single-threaded). */
#ifdef __SANITIZE_THREAD__
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif
#define NEED_ROOT()                                                                  \
  do {                                                                               \
    if (!fx_root() || UNDER_TSAN) {                                                  \
      printf("# skip: %s needs root and no TSan helper thread\n", __func__);        \
      skip();                                                                        \
    }                                                                                \
  } while (0)

#define CAPS_KEEP ((1ull << CAP_SETUID) | (1ull << CAP_SETGID))
#define CAPS_KEEP_NET (CAPS_KEEP | (1ull << CAP_NET_BIND_SERVICE))
#define ALL_SECUREBITS 0x3f

static char pdir[300];

static void make_file(const char *name, uid_t uid, gid_t gid, mode_t mode)
{
  char p[400];
  snprintf(p, sizeof(p), "%s/%s", pdir, name);
  int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(fchown(fd, uid, gid), 0);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static int group_setup(void **state)
{
  (void)state;
  if (!fx_root())
    return 0;
  snprintf(pdir, sizeof(pdir), "%s/priv", fx_dir());
  if (mkdir(pdir, 0755) != 0)
    return -1;
  make_file("a", U_ALICE, G_ALICE, 0600);
  make_file("b", U_BOB, G_BOB, 0600);
  make_file("x", 0, 0, 0600);
  return 0;
}

static int readable(const char *name)
{
  char p[400];
  snprintf(p, sizeof(p), "%s/%s", pdir, name);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  close(fd);
  return 0;
}

static bool status_hex(const char *key, uint64_t *ret)
{
  char buf[64];
  return fx_status("/proc/self/status", key, buf, sizeof(buf)) &&
         sscanf(buf, "%lx", (unsigned long *)ret) == 1;
}

static bool status_caps_are(uint64_t keep)
{
  uint64_t eff, prm, bnd, inh, amb;
  return status_hex("CapEff", &eff) && status_hex("CapPrm", &prm) && status_hex("CapBnd", &bnd) &&
         status_hex("CapInh", &inh) && status_hex("CapAmb", &amb) && eff == keep && prm == keep &&
         bnd == keep && inh == 0 && amb == 0;
}

static void child_drop(void *arg)
{
  unsigned flags = *(unsigned *)arg;
  uint64_t keep = flags & GH_PRIV_KEEP_NET_BIND_SERVICE ? CAPS_KEEP_NET : CAPS_KEEP;
  unsigned u[4], g[4];
  char nnp[16];
  gh_token_t alice;

  if (gh_privileges_drop("svc", flags) != 0)
    _exit(10);
  if (!fx_status_ids("/proc/self/status", "Uid", u) || !fx_status_ids("/proc/self/status", "Gid", g))
    _exit(11);
  for (int i = 0; i < 4; i++)
    if (u[i] != U_SVC || g[i] != G_SVC)
      _exit(12);
  if (!status_caps_are(keep))
    _exit(13);
  if (!fx_status("/proc/self/status", "NoNewPrivs", nnp, sizeof(nnp)) || strcmp(nnp, "1") != 0)
    _exit(14);
  if (prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != ALL_SECUREBITS)
    _exit(15);
  /* locked: cannot be undone */
  if (prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) == 0)
    _exit(16);
  /* the service itself has no DAC override */
  if (readable("x") != EACCES || readable("a") != EACCES)
    _exit(17);
  /* and it can still impersonate */
  if (gh_sec_init(NULL) != 0)
    _exit(18);
  if (gh_token_from_user("svc", NULL, &alice) != GH_EUID_REFUSED) /* the service account */
    _exit(19);
  if (gh_token_from_user("alice", NULL, &alice) != 0 || gh_impersonate(alice) != 0)
    _exit(20);
  if (readable("a") != 0 || readable("b") != EACCES || readable("x") != EACCES)
    _exit(21);
  if (!fx_status_ids(NULL, "Uid", u) || u[0] != U_SVC || u[1] != U_ALICE || u[2] != U_SVC)
    _exit(22);
  if (gh_revert() != 0)
    _exit(23);
  gh_assert_base();
  if (!status_caps_are(keep)) /* KEEP_CAPS + NO_SETUID_FIXUP: intact after the round trip */
    _exit(24);
  _exit(0);
}

static void test_drop_to_service_user(void **state)
{
  (void)state;
  NEED_ROOT();
  unsigned flags = 0;
  int st = fx_fork(child_drop, &flags);
  if (!fx_exited_ok(st))
    fail_msg("child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}

static void test_drop_keeps_net_bind(void **state)
{
  (void)state;
  NEED_ROOT();
  unsigned flags = GH_PRIV_KEEP_NET_BIND_SERVICE;
  int st = fx_fork(child_drop, &flags);
  if (!fx_exited_ok(st))
    fail_msg("child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}

/* Root mode keeps what service-user mode keeps: no CHOWN, no DAC_OVERRIDE. */
#define CAPS_ROOT_MODE CAPS_KEEP

/* Root mode: uid 0 with only SETUID/SETGID (+NET_BIND_SERVICE) in every set,
 * bounding included — no DAC override: root at base cannot read alice's
 * 0600 file, only its own; impersonating clears the effective set (setuid
 * fix-up) and the revert restores exactly the kept set. */
static void child_stay_root(void *arg)
{
  unsigned flags = *(unsigned *)arg;
  uint64_t keep = CAPS_ROOT_MODE | (flags & GH_PRIV_KEEP_NET_BIND_SERVICE
                                        ? 1ull << CAP_NET_BIND_SERVICE : 0);
  uint64_t eff = ~0ull;
  char nnp[16];
  unsigned u[4];
  gh_token_t alice;

  if (gh_privileges_drop(NULL, flags) != 0)
    _exit(10);
  if (!fx_status("/proc/self/status", "NoNewPrivs", nnp, sizeof(nnp)) || strcmp(nnp, "1") != 0)
    _exit(11);
  if (!fx_status_ids("/proc/self/status", "Uid", u) || u[0] != 0 || u[1] != 0 || u[2] != 0)
    _exit(12);
  if (!status_caps_are(keep))
    _exit(13);
  if (prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) & SECBIT_NO_SETUID_FIXUP)
    _exit(14);
  /* the dropped capabilities cannot come back */
  if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
      prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) != 0 ||
      prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) != 0 ||
      prctl(PR_CAPBSET_READ, CAP_DAC_OVERRIDE, 0, 0, 0) != 0)
    _exit(15);
  if (readable("x") != 0 || readable("a") != EACCES)
    _exit(22);
  if (gh_sec_init(NULL) != 0)
    _exit(16);
  if (gh_token_from_user("alice", NULL, &alice) != 0 || gh_impersonate(alice) != 0)
    _exit(17);
  if (!status_hex("CapEff", &eff) || eff != 0) /* thread-local, but single-threaded here */
    _exit(18);
  if (readable("a") != 0 || readable("b") != EACCES || readable("x") != EACCES)
    _exit(19);
  if (gh_revert() != 0)
    _exit(20);
  gh_assert_base();
  if (!status_caps_are(keep))
    _exit(21);
  _exit(0);
}

static void test_stay_root(void **state)
{
  (void)state;
  NEED_ROOT();
  unsigned flags = 0;
  int st = fx_fork(child_stay_root, &flags);
  if (!fx_exited_ok(st))
    fail_msg("child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
  flags = GH_PRIV_KEEP_NET_BIND_SERVICE;
  st = fx_fork(child_stay_root, &flags);
  if (!fx_exited_ok(st))
    fail_msg("net bind: child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}

static void *sleeper(void *arg)
{
  (void)arg;
  pause();
  return NULL;
}

static void child_refusals(void *arg)
{
  (void)arg;
  pthread_t th;
  if (gh_privileges_drop("root", 0) != GH_EUID_REFUSED)
    _exit(10);
  if (gh_privileges_drop("nosuchuser", 0) != GH_ENO_SUCH_USER)
    _exit(11);
  if (gh_privileges_drop("svc", 0x80) != -EINVAL)
    _exit(12);
  if (pthread_create(&th, NULL, sleeper, NULL) != 0)
    _exit(13);
  if (gh_privileges_drop("svc", 0) != GH_ESTATE)
    _exit(14);
  _exit(0);
}

static void child_not_root(void *arg)
{
  (void)arg;
  if (setresuid(4242, 4242, 4242) != 0)
    _exit(9);
  if (gh_privileges_drop("svc", 0) != GH_ENO_PRIVILEGE)
    _exit(10);
  if (gh_privileges_drop(NULL, 0) != GH_ENO_PRIVILEGE)
    _exit(11);
  _exit(0);
}

static void child_unsafe_caps(void *arg)
{
  (void)arg;
  /* root with NO_SETUID_FIXUP would keep CAP_DAC_OVERRIDE while impersonating */
  if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0)
    _exit(9);
  if (gh_sec_init(NULL) != GH_EPRIV_VERIFY)
    _exit(10);
  if (gh_privileges_drop(NULL, 0) != GH_EPRIV_VERIFY)
    _exit(11);
  _exit(0);
}

static void test_refusals(void **state)
{
  (void)state;
  NEED_ROOT();
  int st = fx_fork(child_refusals, NULL);
  if (!fx_exited_ok(st))
    fail_msg("refusals: child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
  st = fx_fork(child_not_root, NULL);
  if (!fx_exited_ok(st))
    fail_msg("not root: child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
  st = fx_fork(child_unsafe_caps, NULL);
  if (!fx_exited_ok(st))
    fail_msg("unsafe caps: child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  /* no gh_sec_init here: each child does its own set-up in the daemon's order */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drop_to_service_user),
      cmocka_unit_test(test_drop_keeps_net_bind),
      cmocka_unit_test(test_stay_root),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests_name("sec_privileges", tests, group_setup, NULL);
}

/* test_impersonate.c: kernel-checked impersonation: fixture tree, threads, modes, scopes, abort paths. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec/sec_internal.h"
#include "sec_fixture.h"
#include "util/metrics.h"

enum { ALICE, BOB, CAROL, DAVE, NUSERS };
static const char *const user_names[NUSERS] = {"alice", "bob", "carol", "dave"};
static gh_token_t tok[NUSERS];

/* The fixture tree: name, owner, group, mode, and who may read it. */
typedef struct fx_file {
  const char *name;
  uid_t uid;
  gid_t gid;
  mode_t mode;
  bool readable[NUSERS]; /* alice bob carol dave */
} fx_file_t;

static const fx_file_t files[] = {
    {"a", U_ALICE, G_ALICE, 0600, {true, false, false, false}},
    {"b", U_BOB, G_BOB, 0600, {false, true, false, false}},
    {"s", U_BOB, G_SHARED, 0640, {true, true, true, false}},
    {"p", U_DAVE, G_PROJ, 0640, {false, true, true, true}},
    {"d", U_CAROL, G_CAROL, 0604, {true, true, true, true}},
    {"n", U_DAVE, G_SHARED, 0604, {false, true, false, true}}, /* group class denies */
    {"x", 0, 0, 0600, {false, false, false, false}},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static char tree[300];

static void path_of(char *buf, size_t len, const char *name)
{
  snprintf(buf, len, "%s/%s", tree, name);
}

static int group_setup(void **state)
{
  (void)state;
  char p[400];
  if (!fx_root())
    return 0;
  snprintf(tree, sizeof(tree), "%s/tree", fx_dir());
  if (mkdir(tree, 0755) != 0)
    return -1;
  for (size_t i = 0; i < NFILES; i++) {
    path_of(p, sizeof(p), files[i].name);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "x", 1) != 1 || fchown(fd, files[i].uid, files[i].gid) != 0 ||
        fchmod(fd, files[i].mode) != 0)
      return -1;
    close(fd);
  }
  path_of(p, sizeof(p), "adir");
  if (mkdir(p, 0750) != 0 || chown(p, U_ALICE, G_ALICE) != 0)
    return -1;
  for (int u = 0; u < NUSERS; u++) {
    if (gh_token_from_user(user_names[u], NULL, &tok[u]) != 0)
      return -1;
  }
  return 0;
}

/* Kernel enforcement needs root: say so and skip otherwise. */
#define NEED_ROOT()                                                  \
  do {                                                               \
    if (!fx_root()) {                                                \
      printf("# skip: %s needs root (kernel enforcement)\n", __func__); \
      skip();                                                        \
    }                                                                \
  } while (0)

static int need_root(void **state)
{
  (void)state;
  if (fx_root())
    gh_assert_base();
  return 0;
}

static int after(void **state)
{
  (void)state;
  /* every test must leave the thread at base, in traditional mode */
  while (gh_is_impersonating()) {
    if (gh_impersonate_get_mode() == GH_IMPERSONATE_NESTED)
      gh_revert();
    else
      gh_revert();
  }
  gh_impersonate_set_mode(GH_IMPERSONATE_TRADITIONAL);
  if (fx_root())
    gh_assert_base();
  return 0;
}

static int open_errno(const char *name)
{
  char p[400];
  int fd, rc;
  path_of(p, sizeof(p), name);
  fd = open(p, O_RDONLY | O_CLOEXEC);
  rc = fd >= 0 ? 0 : errno;
  if (fd >= 0)
    close(fd);
  return rc;
}

static void expect_thread_ids(const char *status, uid_t ruid, uid_t euid, gid_t rgid, gid_t egid)
{
  unsigned u[4], g[4];
  assert_true(fx_status_ids(status, "Uid", u));
  assert_true(fx_status_ids(status, "Gid", g));
  assert_int_equal(u[0], ruid);
  assert_int_equal(u[1], euid);
  assert_int_equal(u[2], ruid);
  assert_int_equal(u[3], euid); /* fsuid follows euid */
  assert_int_equal(g[0], rgid);
  assert_int_equal(g[1], egid);
  assert_int_equal(g[2], rgid);
  assert_int_equal(g[3], egid);
}

static void test_alice_reads_hers_not_bobs(void **state)
{
  (void)state;
  NEED_ROOT();
  char groups[128], p[400];
  struct stat st;
  int fd;

  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_true(gh_is_impersonating());
  assert_int_equal(open_errno("a"), 0);
  assert_int_equal(open_errno("s"), 0);
  assert_int_equal(open_errno("b"), EACCES);
  assert_int_equal(open_errno("x"), EACCES);
  expect_thread_ids(NULL, 0, U_ALICE, 0, G_ALICE);
  /* the primary gid is the egid; setgroups carries the others */
  assert_true(fx_status(NULL, "Groups", groups, sizeof(groups)));
  assert_string_equal(groups, "30010");
  /* a file she creates is hers */
  path_of(p, sizeof(p), "adir/new");
  fd = open(p, O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  assert_int_equal(st.st_uid, U_ALICE);
  assert_int_equal(st.st_gid, G_ALICE);
  assert_int_equal(unlink(p), 0);

  assert_int_equal(gh_revert(), 0);
  assert_false(gh_is_impersonating());
  expect_thread_ids(NULL, 0, 0, 0, 0);
  assert_true(fx_status(NULL, "Groups", groups, sizeof(groups)));
  assert_string_equal(groups, "");
  assert_int_equal(open_errno("x"), 0);
  gh_assert_base();
}

static void test_permission_matrix(void **state)
{
  (void)state;
  NEED_ROOT();
  char p[400];
  for (int u = 0; u < NUSERS; u++) {
    for (size_t f = 0; f < NFILES; f++) {
      int want = files[f].readable[u] ? 0 : EACCES;
      path_of(p, sizeof(p), files[f].name);
      /* from base, through the token */
      assert_int_equal(gh_token_access_check(tok[u], p, R_OK), -want);
      /* as the user, the kernel itself */
      assert_int_equal(gh_impersonate(tok[u]), 0);
      assert_int_equal(open_errno(files[f].name), want);
      assert_int_equal(faccessat(AT_FDCWD, p, R_OK, AT_EACCESS) == 0 ? 0 : errno, want);
      assert_int_equal(gh_revert(), 0);
    }
  }
  path_of(p, sizeof(p), "missing");
  assert_int_equal(gh_token_access_check(tok[ALICE], p, F_OK), -ENOENT);
}

static void test_access_check_restores_identity(void **state)
{
  (void)state;
  NEED_ROOT();
  char p[400];
  path_of(p, sizeof(p), "a");
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_token_access_check(tok[ALICE], p, R_OK), 0);
  assert_int_equal(gh_token_access_check(tok[ALICE], p, W_OK), 0);
  assert_int_equal(gh_token_access_check(tok[DAVE], p, R_OK), -EACCES);
  expect_thread_ids(NULL, 0, U_BOB, 0, G_BOB);
  assert_int_equal(open_errno("a"), EACCES);
  assert_int_equal(open_errno("b"), 0);
  assert_int_equal(gh_revert(), 0);
}

typedef struct iso {
  pthread_barrier_t ready, done;
  pid_t tid;
  int rc;
} iso_t;

static void *iso_thread(void *arg)
{
  iso_t *s = arg;
  s->tid = (pid_t)syscall(SYS_gettid);
  s->rc = gh_impersonate(tok[ALICE]);
  pthread_barrier_wait(&s->ready);
  pthread_barrier_wait(&s->done);
  if (s->rc == 0 && open_errno("a") != 0)
    s->rc = -1;
  if (gh_revert() != 0)
    s->rc = -2;
  return NULL;
}

static void test_thread_isolation(void **state)
{
  (void)state;
  NEED_ROOT();
  iso_t s;
  pthread_t th;
  char path[64];

  pthread_barrier_init(&s.ready, NULL, 2);
  pthread_barrier_init(&s.done, NULL, 2);
  assert_int_equal(pthread_create(&th, NULL, iso_thread, &s), 0);
  pthread_barrier_wait(&s.ready);
  assert_int_equal(s.rc, 0);
  /* thread 1 is alice ... */
  snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)s.tid);
  expect_thread_ids(path, 0, U_ALICE, 0, G_ALICE);
  /* ... this thread and the process are not */
  expect_thread_ids(NULL, 0, 0, 0, 0);
  expect_thread_ids("/proc/self/status", 0, 0, 0, 0);
  assert_false(gh_is_impersonating());
  assert_int_equal(open_errno("x"), 0);
  assert_int_equal(open_errno("b"), 0);
  pthread_barrier_wait(&s.done);
  pthread_join(th, NULL);
  assert_int_equal(s.rc, 0);
  pthread_barrier_destroy(&s.ready);
  pthread_barrier_destroy(&s.done);
}

static void test_traditional_mode(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_int_equal(gh_impersonate_get_mode(), GH_IMPERSONATE_TRADITIONAL);
  assert_int_equal(gh_revert(), 0); /* at base: no-op */
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_impersonate(tok[CAROL]), 0);
  assert_int_equal(gh_impersonation_depth(), 1);
  expect_thread_ids(NULL, 0, U_CAROL, 0, G_CAROL); /* last wins */
  assert_int_equal(gh_impersonate(tok[CAROL]), 0); /* same token again */
  expect_thread_ids(NULL, 0, U_CAROL, 0, G_CAROL);
  assert_int_equal(gh_revert(), 0); /* one revert restores base */
  assert_false(gh_is_impersonating());
  gh_assert_base();
  assert_int_equal(gh_revert(), 0);
}

static void test_nested_mode(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_int_equal(gh_impersonate_set_mode(GH_IMPERSONATE_NESTED), 0);
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_int_equal(gh_impersonate_set_mode(GH_IMPERSONATE_TRADITIONAL), GH_ESTATE);
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_impersonate(tok[DAVE]), 0);
  assert_int_equal(gh_impersonation_depth(), 3);
  expect_thread_ids(NULL, 0, U_DAVE, 0, G_DAVE);
  assert_int_equal(gh_revert(), 0);
  expect_thread_ids(NULL, 0, U_BOB, 0, G_BOB);
  assert_int_equal(open_errno("b"), 0);
  assert_int_equal(gh_revert(), 0);
  expect_thread_ids(NULL, 0, U_ALICE, 0, G_ALICE); /* outer client restored */
  assert_int_equal(open_errno("a"), 0);
  assert_int_equal(open_errno("b"), EACCES);
  assert_int_equal(gh_revert(), 0);
  gh_assert_base();
  assert_int_equal(gh_impersonate_set_mode(GH_IMPERSONATE_TRADITIONAL), 0);
  assert_int_equal(gh_impersonate_set_mode((gh_impersonate_mode_t)9), -EINVAL);
}

static void child_nested_underflow(void *arg)
{
  (void)arg;
  gh_impersonate_set_mode(GH_IMPERSONATE_NESTED);
  if (gh_impersonate(tok[ALICE]) != 0 || gh_revert() != 0)
    _exit(3);
  gh_revert(); /* underflow */
  _exit(0);
}

static void child_nested_overflow(void *arg)
{
  int n = *(int *)arg;
  gh_impersonate_set_mode(GH_IMPERSONATE_NESTED);
  for (int i = 0; i < n; i++) {
    if (gh_impersonate(tok[i % NUSERS]) != 0)
      _exit(3);
  }
  _exit(0);
}

static void test_nested_overflow_underflow_abort(void **state)
{
  (void)state;
  NEED_ROOT();
  int ok_depth = GH_IMPERSONATE_MAX_DEPTH, too_deep = GH_IMPERSONATE_MAX_DEPTH + 1;
  assert_true(fx_aborted(fx_fork(child_nested_underflow, NULL)));
  assert_true(fx_exited_ok(fx_fork(child_nested_overflow, &ok_depth)));
  assert_true(fx_aborted(fx_fork(child_nested_overflow, &too_deep)));
}

static void test_identify_and_anonymous_levels(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t idt, anon;
  char groups[64], p[400];

  assert_int_equal(gh_token_duplicate(tok[ALICE], GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &idt), 0);
  assert_int_equal(gh_impersonate(idt), 0);
  assert_true(gh_is_impersonating());
  /* no access as the client: the anonymous account, no groups */
  expect_thread_ids(NULL, 0, U_NOBODY, 0, 65534);
  assert_true(fx_status(NULL, "Groups", groups, sizeof(groups)));
  assert_string_equal(groups, "");
  assert_int_equal(open_errno("a"), EACCES);
  assert_int_equal(open_errno("s"), EACCES);
  assert_int_equal(open_errno("d"), 0); /* world-readable */
  assert_int_equal(gh_revert(), 0);
  /* but an access check answers for the client */
  path_of(p, sizeof(p), "a");
  assert_int_equal(gh_token_access_check(idt, p, R_OK), 0);
  assert_int_equal(gh_token_close(idt), 0);

  assert_int_equal(gh_token_anonymous(&anon), 0);
  assert_int_equal(gh_impersonate(anon), 0);
  expect_thread_ids(NULL, 0, U_NOBODY, 0, 65534);
  assert_int_equal(open_errno("a"), EACCES);
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(gh_token_access_check(anon, p, R_OK), -EACCES);
  assert_int_equal(gh_token_close(anon), 0);
  gh_assert_base();
}

static void test_close_while_impersonating(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t h, mine;
  uint64_t id1, id2;

  assert_int_equal(gh_thread_get_token(&mine), GH_ENOT_IMPERSONATING);
  assert_int_equal(gh_token_open_handle(tok[CAROL], &h), 0);
  assert_int_equal(gh_token_get_id(h, &id1), 0);
  assert_int_equal(gh_impersonate(h), 0);
  assert_int_equal(gh_token_close(h), 0); /* the thread holds its own reference */
  expect_thread_ids(NULL, 0, U_CAROL, 0, G_CAROL);
  assert_int_equal(gh_thread_get_token(&mine), 0);
  assert_int_equal(gh_token_get_id(mine, &id2), 0);
  assert_int_equal(id1, id2);
  assert_int_equal(gh_token_close(mine), 0);
  assert_int_equal(gh_revert(), 0);
  gh_assert_base();
}

static void test_borrowed_handle_impersonates(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t owner, b;
  assert_int_equal(gh_token_open_handle(tok[DAVE], &owner), 0);
  assert_int_equal(gh_token_borrow(owner, &b), 0);
  assert_int_equal(gh_impersonate(b), 0);
  expect_thread_ids(NULL, 0, U_DAVE, 0, G_DAVE);
  assert_int_equal(gh_token_close(b), GH_EBORROWED);
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(gh_token_close(owner), 0);
  assert_int_equal(gh_impersonate(b), GH_EINVALID_HANDLE);
  gh_assert_base();
}

static void test_call_scope(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_call_scope_t outer, inner;

  /* a callee that cleans up after itself */
  gh_call_scope_begin(&outer);
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_int_equal(gh_revert(), 0);
  assert_int_equal(gh_call_scope_end(&outer), 0);

  /* a callee that forgets: traditional */
  gh_call_scope_begin(&outer);
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_call_scope_end(&outer), 1);
  assert_false(gh_is_impersonating());
  gh_assert_base();

  /* a callee that forgets three nested levels and switched mode */
  gh_call_scope_begin(&outer);
  assert_int_equal(gh_impersonate_set_mode(GH_IMPERSONATE_NESTED), 0);
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(gh_impersonate(tok[CAROL]), 0);
  assert_int_equal(gh_call_scope_end(&outer), 3);
  assert_int_equal(gh_impersonate_get_mode(), GH_IMPERSONATE_TRADITIONAL);
  gh_assert_base();

  /* an inner scope inside an impersonating caller returns to the caller's client */
  assert_int_equal(gh_impersonate_set_mode(GH_IMPERSONATE_NESTED), 0);
  assert_int_equal(gh_impersonate(tok[ALICE]), 0);
  gh_call_scope_begin(&inner);
  assert_int_equal(gh_impersonate(tok[DAVE]), 0);
  assert_int_equal(gh_call_scope_end(&inner), 1);
  expect_thread_ids(NULL, 0, U_ALICE, 0, G_ALICE);
  assert_int_equal(gh_revert(), 0);
  gh_assert_base();
}

static void child_scope_twice(void *arg)
{
  (void)arg;
  gh_call_scope_t s;
  gh_call_scope_begin(&s);
  gh_call_scope_end(&s);
  gh_call_scope_end(&s); /* ended twice */
  _exit(0);
}

static void child_scope_begin_impersonating(void *arg)
{
  (void)arg;
  gh_call_scope_t s;
  /* identity changed behind the sec layer's back */
  if (syscall(SYS_setresuid, -1, U_BOB, -1) != 0)
    _exit(3);
  gh_call_scope_begin(&s);
  _exit(0);
}

static void child_assert_base_impersonating(void *arg)
{
  (void)arg;
  if (gh_impersonate(tok[ALICE]) != 0)
    _exit(3);
  gh_assert_base();
  _exit(0);
}

static void test_base_checks_abort(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_true(fx_aborted(fx_fork(child_scope_twice, NULL)));
  assert_true(fx_aborted(fx_fork(child_scope_begin_impersonating, NULL)));
  assert_true(fx_aborted(fx_fork(child_assert_base_impersonating, NULL)));
}

/* Make syscall nr fail with EPERM for this process from now on. */
static int deny_syscall(int nr)
{
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static void child_revert_fails(void *arg)
{
  bool inject = *(bool *)arg;
  if (gh_impersonate(tok[ALICE]) != 0)
    _exit(3);
  if (inject && deny_syscall(SYS_setresuid) != 0)
    _exit(4);
  gh_revert();
  /* reaching this with the fault injected means we kept serving */
  _exit(inject ? 5 : 0);
}

/* The failed revert is counted before the abort, in memory the process
 * shares (as a worker process's metrics slot): the count outlives it. */
static void test_revert_failure_aborts(void **state)
{
  (void)state;
  NEED_ROOT();
  size_t len = gh__metrics_size(1);
  void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(mem != MAP_FAILED);
  assert_int_equal(gh__metrics_attach(mem, len, 1), 0); /* kept mapped: the block from now on */
  const _Atomic uint64_t *imp = &gh__metrics_slot_at(0)->shard[0].scalar[GH__M_IMPERSONATIONS];
  const _Atomic uint64_t *rf = &gh__metrics_slot_at(0)->shard[0].scalar[GH__M_REVERT_FAILURES];
  bool inject = false;
  assert_true(fx_exited_ok(fx_fork(child_revert_fails, &inject))); /* control */
  assert_int_equal(gh__metrics_sum(imp), 1);
  assert_int_equal(gh__metrics_sum(rf), 0);
  inject = true;
  assert_true(fx_aborted(fx_fork(child_revert_fails, &inject)));
  assert_int_equal(gh__metrics_sum(imp), 2);
  assert_int_equal(gh__metrics_sum(rf), 1);
}

static void child_setgroups_skipped(void *arg)
{
  (void)arg;
  gh_token_t alice2;
  unsigned u[4];
  if (gh_token_duplicate(tok[ALICE], GH_LEVEL_IMPERSONATE, GH_TOKEN_IMPERSONATION, &alice2) != 0)
    _exit(2);
  gh_impersonate_set_mode(GH_IMPERSONATE_NESTED);
  if (gh_impersonate(tok[ALICE]) != 0)
    _exit(3);
  if (deny_syscall(SYS_setgroups) != 0)
    _exit(4);
  /* same group list: no setgroups, so this works */
  if (gh_impersonate(alice2) != 0)
    _exit(5);
  if (gh_impersonate(tok[ALICE]) != 0)
    _exit(6);
  /* a different list needs setgroups: refused cleanly, identity unchanged */
  if (gh_impersonate(tok[BOB]) != GH_ENO_PRIVILEGE)
    _exit(7);
  if (!fx_status_ids(NULL, "Uid", u) || u[1] != U_ALICE || gh_impersonation_depth() != 3)
    _exit(8);
  if (gh_revert() != 0 || gh_revert() != 0)
    _exit(9);
  if (!fx_status_ids(NULL, "Uid", u) || u[1] != U_ALICE)
    _exit(10);
  _exit(0);
}

static void test_setgroups_skipped(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_true(fx_exited_ok(fx_fork(child_setgroups_skipped, NULL)));
}

static void child_no_privilege(void *arg)
{
  (void)arg;
  uint64_t eff, prm, inh;
  unsigned u[4], g[4];
  if (gh__caps_get(&eff, &prm, &inh) != 0)
    _exit(2);
  eff &= ~((1ull << CAP_SETUID) | (1ull << CAP_SETGID));
  if (gh__caps_set(eff, prm, inh) != 0)
    _exit(3);
  for (int u_i = 0; u_i < NUSERS; u_i++) {
    if (gh_impersonate(tok[u_i]) != GH_ENO_PRIVILEGE)
      _exit(10 + u_i);
    if (gh_is_impersonating())
      _exit(20);
  }
  if (!fx_status_ids(NULL, "Uid", u) || !fx_status_ids(NULL, "Gid", g) || u[1] != 0 || g[1] != 0)
    _exit(21);
  gh_assert_base();
  _exit(0);
}

static void test_no_privilege_fails_clearly(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_true(fx_exited_ok(fx_fork(child_no_privilege, NULL)));
}

static void *late_thread(void *arg)
{
  (void)arg;
  gh_revert(); /* first sec call of a thread born impersonating */
  return NULL;
}

static void child_thread_born_impersonating(void *arg)
{
  (void)arg;
  pthread_t th;
  if (gh_impersonate(tok[ALICE]) != 0)
    _exit(3);
  if (pthread_create(&th, NULL, late_thread, NULL) != 0)
    _exit(4);
  pthread_join(th, NULL);
  _exit(0);
}

static void test_thread_born_impersonating_aborts(void **state)
{
  (void)state;
  NEED_ROOT();
  assert_true(fx_aborted(fx_fork(child_thread_born_impersonating, NULL)));
}

/* ---- gh_token_openat2: the same decisions as impersonating, thread untouched ---- */

static int scoped_open(gh_token_t t, const char *name, int flags)
{
  char p[400];
  struct open_how how = {.flags = (uint64_t)flags, .mode = (flags & O_CREAT) ? 0644 : 0};
  int fd;
  path_of(p, sizeof(p), name);
  fd = gh_token_openat2(t, AT_FDCWD, p, &how, sizeof(how));
  if (fd >= 0) {
    /* always close-on-exec */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    return 0;
  }
  return -fd;
}

static bool uring_here(void)
{
  struct io_uring_params_min { uint32_t a[30]; } p;
  long fd;
  memset(&p, 0, sizeof(p));
  fd = syscall(__NR_io_uring_setup, 2, &p);
  if (fd >= 0)
    close((int)fd);
  return fd >= 0 && getenv("GATEHOUSE_NO_IO_URING") == NULL;
}

static void scoped_matrix(bool force_switch)
{
  gh__sec_scoped_force_switch(force_switch);
  for (int round = 0; round < 2; round++) { /* second round: cached personalities */
    for (int u = 0; u < NUSERS; u++) {
      for (size_t f = 0; f < NFILES; f++) {
        int want = files[f].readable[u] ? 0 : EACCES;
        assert_int_equal(scoped_open(tok[u], files[f].name, O_RDONLY), want);
        /* the thread itself never moved */
        assert_false(gh_is_impersonating());
        expect_thread_ids(NULL, 0, 0, 0, 0);
      }
    }
  }
  if (!force_switch && uring_here())
    assert_true(gh__sec_scoped_ring_active());
  gh__sec_scoped_force_switch(false);
  gh_assert_base();
}

static void test_scoped_open_matrix_uring(void **state)
{
  (void)state;
  NEED_ROOT();
  if (!uring_here())
    printf("# io_uring unavailable here: gh_token_openat2 takes the switch path\n");
  scoped_matrix(false);
}

static void test_scoped_open_matrix_switch(void **state)
{
  (void)state;
  NEED_ROOT();
  scoped_matrix(true);
}

static void scoped_create_owner(bool force_switch)
{
  char p[400];
  struct stat st;
  gh__sec_scoped_force_switch(force_switch);
  /* a file created through the token is the client's: the fs ids were hers */
  assert_int_equal(scoped_open(tok[ALICE], "adir/scoped", O_CREAT | O_WRONLY | O_EXCL), 0);
  path_of(p, sizeof(p), "adir/scoped");
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_uid, U_ALICE);
  assert_int_equal(st.st_gid, G_ALICE);
  assert_int_equal(unlink(p), 0);
  /* bob cannot create in alice's 0750 directory */
  assert_int_equal(scoped_open(tok[BOB], "adir/scoped", O_CREAT | O_WRONLY | O_EXCL), EACCES);
  gh__sec_scoped_force_switch(false);
}

static void test_scoped_open_creates_as_client(void **state)
{
  (void)state;
  NEED_ROOT();
  scoped_create_owner(false);
  scoped_create_owner(true);
  gh_assert_base();
}

static void test_scoped_open_levels_and_errors(void **state)
{
  (void)state;
  NEED_ROOT();
  gh_token_t idt, anon;
  struct open_how how = {.flags = O_RDONLY};
  char p[400];

  /* IDENTIFY and ANONYMOUS: the anonymous account, as gh_impersonate does */
  assert_int_equal(gh_token_duplicate(tok[ALICE], GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &idt), 0);
  assert_int_equal(gh_token_anonymous(&anon), 0);
  for (int sw = 0; sw < 2; sw++) {
    gh__sec_scoped_force_switch(sw == 1);
    assert_int_equal(scoped_open(idt, "a", O_RDONLY), EACCES);
    assert_int_equal(scoped_open(idt, "s", O_RDONLY), EACCES);
    assert_int_equal(scoped_open(idt, "d", O_RDONLY), 0);
    assert_int_equal(scoped_open(anon, "a", O_RDONLY), EACCES);
    assert_int_equal(scoped_open(anon, "d", O_RDONLY), 0);
    /* the same uid as alice's IMPERSONATE token never shares her personality */
    assert_int_equal(scoped_open(tok[ALICE], "a", O_RDONLY), 0);
    assert_int_equal(scoped_open(idt, "a", O_RDONLY), EACCES);
  }
  gh__sec_scoped_force_switch(false);
  assert_int_equal(gh_token_close(idt), 0);
  assert_int_equal(gh_token_close(anon), 0);

  /* a closed handle, a bad size, no path */
  path_of(p, sizeof(p), "d");
  assert_int_equal(gh_token_openat2(idt, AT_FDCWD, p, &how, sizeof(how)), GH_EINVALID_HANDLE);
  assert_int_equal(gh_token_openat2(tok[ALICE], AT_FDCWD, p, &how, sizeof(how) - 1), -EINVAL);
  assert_int_equal(gh_token_openat2(tok[ALICE], AT_FDCWD, NULL, &how, sizeof(how)), -EINVAL);
  /* openat2's own errors come back as -errno */
  how.resolve = RESOLVE_BENEATH;
  assert_int_equal(gh_token_openat2(tok[ALICE], AT_FDCWD, "/etc/passwd", &how, sizeof(how)), -EXDEV);
  path_of(p, sizeof(p), "missing");
  how.resolve = 0;
  assert_int_equal(gh_token_openat2(tok[ALICE], AT_FDCWD, p, &how, sizeof(how)), -ENOENT);
  gh_assert_base();
}

static void test_scoped_open_while_impersonating(void **state)
{
  (void)state;
  NEED_ROOT();
  /* the token decides, not the thread's current client; the thread stays bob */
  assert_int_equal(gh_impersonate(tok[BOB]), 0);
  assert_int_equal(scoped_open(tok[ALICE], "a", O_RDONLY), 0);
  assert_int_equal(scoped_open(tok[ALICE], "b", O_RDONLY), EACCES);
  expect_thread_ids(NULL, 0, U_BOB, 0, G_BOB);
  assert_int_equal(open_errno("a"), EACCES);
  assert_int_equal(open_errno("b"), 0);
  assert_int_equal(gh_revert(), 0);
  gh_assert_base();
}

static void *scoped_thread(void *arg)
{
  int u = (int)(intptr_t)arg;
  long bad = 0;
  for (int i = 0; i < 2000; i++) {
    for (size_t f = 0; f < NFILES; f++) {
      int want = files[f].readable[u] ? 0 : EACCES;
      if (scoped_open(tok[u], files[f].name, O_RDONLY) != want)
        bad++;
    }
    if (gh_is_impersonating())
      bad++;
  }
  return (void *)bad;
}

static void test_scoped_open_threads(void **state)
{
  (void)state;
  NEED_ROOT();
  pthread_t th[NUSERS];
  for (int u = 0; u < NUSERS; u++)
    assert_int_equal(pthread_create(&th[u], NULL, scoped_thread, (void *)(intptr_t)u), 0);
  for (int u = 0; u < NUSERS; u++) {
    void *bad;
    assert_int_equal(pthread_join(th[u], &bad), 0);
    assert_int_equal((intptr_t)bad, 0);
  }
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
      cmocka_unit_test_setup_teardown(test_alice_reads_hers_not_bobs, need_root, after),
      cmocka_unit_test_setup_teardown(test_permission_matrix, need_root, after),
      cmocka_unit_test_setup_teardown(test_access_check_restores_identity, need_root, after),
      cmocka_unit_test_setup_teardown(test_thread_isolation, need_root, after),
      cmocka_unit_test_setup_teardown(test_traditional_mode, need_root, after),
      cmocka_unit_test_setup_teardown(test_nested_mode, need_root, after),
      cmocka_unit_test_setup_teardown(test_nested_overflow_underflow_abort, need_root, after),
      cmocka_unit_test_setup_teardown(test_identify_and_anonymous_levels, need_root, after),
      cmocka_unit_test_setup_teardown(test_close_while_impersonating, need_root, after),
      cmocka_unit_test_setup_teardown(test_borrowed_handle_impersonates, need_root, after),
      cmocka_unit_test_setup_teardown(test_call_scope, need_root, after),
      cmocka_unit_test_setup_teardown(test_base_checks_abort, need_root, after),
      cmocka_unit_test_setup_teardown(test_revert_failure_aborts, need_root, after),
      cmocka_unit_test_setup_teardown(test_setgroups_skipped, need_root, after),
      cmocka_unit_test_setup_teardown(test_no_privilege_fails_clearly, need_root, after),
      cmocka_unit_test_setup_teardown(test_thread_born_impersonating_aborts, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_matrix_uring, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_matrix_switch, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_creates_as_client, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_levels_and_errors, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_while_impersonating, need_root, after),
      cmocka_unit_test_setup_teardown(test_scoped_open_threads, need_root, after),
  };
  return cmocka_run_group_tests_name("sec_impersonate", tests, group_setup, NULL);
}

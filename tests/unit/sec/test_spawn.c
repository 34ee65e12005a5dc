/* test_spawn.c: gh_token_spawn_as: child ids read from the child's own /proc/self/status, exec errors, level rules. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec_fixture.h"

#define NEED_ROOT()                                                  \
  do {                                                               \
    if (!fx_root()) {                                                \
      printf("# skip: %s needs root (sets ids in a child)\n", __func__); \
      skip();                                                        \
    }                                                                \
  } while (0)

static char *const env[] = {"PATH=/usr/bin:/bin", NULL};

/* Run argv as token, collect stdout and the exit status. */
static int run_as(gh_token_t t, char *const argv[], char *out, size_t len, int *ret_status)
{
  int p[2], rc;
  pid_t pid;
  size_t got = 0;
  ssize_t n;
  gh_spawn_opts_t o = {.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .cwd = "/"};

  if (pipe2(p, O_CLOEXEC) != 0)
    return -errno;
  o.stdout_fd = p[1];
  rc = gh_token_spawn_as(t, argv, env, &o, &pid);
  close(p[1]);
  if (rc == 0) {
    while (got + 1 < len && (n = read(p[0], out + got, len - 1 - got)) > 0)
      got += (size_t)n;
    out[got] = '\0';
    waitpid(pid, ret_status, 0);
  }
  close(p[0]);
  return rc;
}

static void parse_ids(const char *text, const char *key, unsigned v[4])
{
  const char *l = strstr(text, key);
  assert_non_null(l);
  assert_int_equal(sscanf(l + strlen(key), " %u %u %u %u", &v[0], &v[1], &v[2], &v[3]), 4);
}

static void test_child_ids(void **state)
{
  (void)state;
  NEED_ROOT();
  char *const argv[] = {"/bin/sh", "-c", "grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):' /proc/self/status", NULL};
  char out[1024];
  unsigned u[4], g[4];
  int status = -1;
  gh_token_t t;

  assert_int_equal(gh_token_from_user("carol", NULL, &t), 0);
  assert_int_equal(run_as(t, argv, out, sizeof(out), &status), 0);
  assert_true(fx_exited_ok(status));
  parse_ids(out, "Uid:", u);
  parse_ids(out, "Gid:", g);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(u[i], U_CAROL);
    assert_int_equal(g[i], G_CAROL);
  }
  const char *groups = strstr(out, "Groups:");
  assert_non_null(groups);
  unsigned a = 0, b = 0, c = 0;
  assert_int_equal(sscanf(groups, "Groups: %u %u %u", &a, &b, &c), 3);
  assert_int_equal(a, G_CAROL);
  assert_int_equal(b, G_SHARED);
  assert_int_equal(c, G_PROJ);
  assert_non_null(strstr(out, "CapEff:\t0000000000000000"));
  assert_non_null(strstr(out, "CapPrm:\t0000000000000000"));
  assert_int_equal(gh_token_close(t), 0);
  gh_assert_base();
}

static void test_child_ids_from_impersonating_thread(void **state)
{
  (void)state;
  NEED_ROOT();
  char *const argv[] = {"/bin/sh", "-c", "grep '^Uid:' /proc/self/status", NULL};
  char out[256];
  unsigned u[4];
  int status = -1;
  gh_token_t alice, bob;

  assert_int_equal(gh_token_from_user("alice", NULL, &alice), 0);
  assert_int_equal(gh_token_from_user("bob", NULL, &bob), 0);
  assert_int_equal(gh_impersonate(alice), 0);
  assert_int_equal(run_as(bob, argv, out, sizeof(out), &status), 0);
  assert_true(fx_exited_ok(status));
  parse_ids(out, "Uid:", u);
  for (int i = 0; i < 4; i++)
    assert_int_equal(u[i], U_BOB);
  assert_int_equal(gh_revert(), 0);
  gh_assert_base();
  assert_int_equal(gh_token_close(alice), 0);
  assert_int_equal(gh_token_close(bob), 0);
}

static void test_exec_failure_reported(void **state)
{
  (void)state;
  NEED_ROOT();
  char *const missing[] = {"/nonexistent/cgi", NULL};
  char *const relative[] = {"sh", NULL};
  char out[16];
  int status;
  gh_token_t t;

  assert_int_equal(gh_token_from_user("alice", NULL, &t), 0);
  assert_int_equal(run_as(t, missing, out, sizeof(out), &status), -ENOENT);
  assert_int_equal(run_as(t, relative, out, sizeof(out), &status), -EINVAL);
  /* the child runs as alice: a root-only program cannot be executed */
  char prog[300];
  snprintf(prog, sizeof(prog), "%s/rootonly.sh", fx_dir());
  int fd = open(prog, O_CREAT | O_WRONLY | O_CLOEXEC, 0700);
  assert_true(fd >= 0);
  assert_true(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17);
  close(fd);
  char *const rootonly[] = {prog, NULL};
  assert_int_equal(run_as(t, rootonly, out, sizeof(out), &status), -EACCES);
  assert_int_equal(gh_token_close(t), 0);
  /* no zombie left behind */
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

static void test_spawn_level_rules(void **state)
{
  (void)state;
  char *const argv[] = {"/bin/true", NULL};
  gh_token_t t, idt, anon;
  pid_t pid;

  assert_int_equal(gh_token_from_user("alice", NULL, &t), 0);
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_IDENTIFY, GH_TOKEN_IMPERSONATION, &idt), 0);
  assert_int_equal(gh_token_spawn_as(idt, argv, env, NULL, &pid), GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_anonymous(&anon), 0);
  assert_int_equal(gh_token_spawn_as(anon, argv, env, NULL, &pid), GH_EBAD_IMPERSONATION_LEVEL);
  assert_int_equal(gh_token_close(idt), 0);
  assert_int_equal(gh_token_close(anon), 0);
  assert_int_equal(gh_token_close(t), 0);
  assert_int_equal(gh_token_spawn_as(t, argv, env, NULL, &pid), GH_EINVALID_HANDLE);
}

static void test_spawn_primary_dup_and_stdin(void **state)
{
  (void)state;
  NEED_ROOT();
  char *const argv[] = {"/bin/sh", "-c", "read x; id -u; echo \"$x\"; pwd", NULL};
  gh_token_t t, prim;
  int in[2], out[2], status;
  char buf[128] = {0};
  ssize_t n;
  pid_t pid;
  gh_spawn_opts_t o = {.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .cwd = "/tmp"};

  assert_int_equal(gh_token_from_user("dave", NULL, &t), 0);
  assert_int_equal(gh_token_duplicate(t, GH_LEVEL_IMPERSONATE, GH_TOKEN_PRIMARY, &prim), 0);
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  o.stdin_fd = in[0];
  o.stdout_fd = out[1];
  assert_int_equal(gh_token_spawn_as(prim, argv, env, &o, &pid), 0);
  close(in[0]);
  close(out[1]);
  assert_int_equal(write(in[1], "hello\n", 6), 6);
  close(in[1]);
  size_t got = 0;
  while (got + 1 < sizeof(buf) && (n = read(out[0], buf + got, sizeof(buf) - 1 - got)) > 0)
    got += (size_t)n;
  assert_true(got > 0);
  waitpid(pid, &status, 0);
  close(out[0]);
  assert_true(fx_exited_ok(status));
  assert_string_equal(buf, "20004\nhello\n/tmp\n");
  assert_int_equal(gh_token_close(prim), 0);
  assert_int_equal(gh_token_close(t), 0);
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  if (gh_sec_init(NULL) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_child_ids),
      cmocka_unit_test(test_child_ids_from_impersonating_thread),
      cmocka_unit_test(test_exec_failure_reported),
      cmocka_unit_test(test_spawn_level_rules),
      cmocka_unit_test(test_spawn_primary_dup_and_stdin),
  };
  return cmocka_run_group_tests_name("sec_spawn", tests, NULL, NULL);
}

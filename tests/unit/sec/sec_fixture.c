/* sec_fixture.c: nss_wrapper users in a temp dir, re-exec under LD_PRELOAD, /proc and fork helpers. */
#include "sec_fixture.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSS_WRAPPER_SO "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"

static char dir_buf[256];

static const char passwd_text[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "alice:x:20001:30001:Alice:/nonexistent:/bin/sh\n"
    "bob:x:20002:30002:Bob:/nonexistent:/bin/sh\n"
    "carol:x:20003:30003:Carol:/nonexistent:/bin/sh\n"
    "dave:x:20004:30004:Dave:/nonexistent:/bin/sh\n"
    "svc:x:20100:30100:service:/nonexistent:/usr/sbin/nologin\n"
    "lowuid:x:500:500:low:/nonexistent:/bin/sh\n";

static const char group_text[] =
    "root:x:0:\n"
    "nogroup:x:65534:\n"
    "alice:x:30001:\n"
    "bob:x:30002:\n"
    "carol:x:30003:\n"
    "dave:x:30004:\n"
    "shared:x:30010:alice,carol\n"
    "proj:x:30011:bob,carol\n"
    "svc:x:30100:\n"
    "low:x:500:\n";

static void write_file(const char *name, const char *text, const char *extra)
{
  char path[512], tmp[520];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir_buf, name);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  f = fopen(tmp, "w");
  if (f == NULL || fputs(text, f) < 0 || (extra && fputs(extra, f) < 0) || fclose(f) != 0) {
    perror("fixture: write");
    exit(99);
  }
  chmod(tmp, 0644);
  if (rename(tmp, path) != 0) {
    perror("fixture: rename");
    exit(99);
  }
}

void fx_write_groups(const char *extra_line)
{
  write_file("group", group_text, extra_line);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static pid_t owner_pid;

static void cleanup(void)
{
  if (getpid() == owner_pid && dir_buf[0] == '/') {
    /* a failed test may exit while impersonating: back to our real ids */
    if (syscall(SYS_setresuid, -1, getuid(), -1) != 0 || syscall(SYS_setresgid, -1, getgid(), -1) != 0)
      return;
    nftw(dir_buf, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  }
}

void fx_init(int argc, char **argv)
{
  const char *d = getenv("GH_SEC_TEST_DIR");
  char path[512];
  (void)argc;

  if (d != NULL && getenv("NSS_WRAPPER_PASSWD") != NULL) {
    snprintf(dir_buf, sizeof(dir_buf), "%s", d);
    owner_pid = getpid();
    atexit(cleanup);
    return;
  }
  snprintf(dir_buf, sizeof(dir_buf), "/tmp/gh-sec-XXXXXX");
  if (mkdtemp(dir_buf) == NULL || chmod(dir_buf, 0755) != 0) {
    perror("fixture: mkdtemp");
    exit(99);
  }
  write_file("passwd", passwd_text, NULL);
  fx_write_groups(NULL);
  snprintf(path, sizeof(path), "%s/passwd", dir_buf);
  setenv("NSS_WRAPPER_PASSWD", path, 1);
  snprintf(path, sizeof(path), "%s/group", dir_buf);
  setenv("NSS_WRAPPER_GROUP", path, 1);
  setenv("LD_PRELOAD", NSS_WRAPPER_SO, 1);
  setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0);
  /* nss_wrapper's own fork handlers unlock mutexes TSan did not see locked */
  write_file("tsan.supp", "called_from_lib:libnss_wrapper.so\nmutex:_dl_call_fini\nmutex:__run_postfork_handlers\nmutex:libnss_wrapper.so\n", NULL);
  snprintf(path, sizeof(path), "suppressions=%s/tsan.supp", dir_buf);
  setenv("TSAN_OPTIONS", path, 0);
  setenv("GH_SEC_TEST_DIR", dir_buf, 1);
  execv("/proc/self/exe", argv);
  perror("fixture: re-exec");
  exit(99);
}

bool fx_root(void)
{
  return geteuid() == 0;
}

const char *fx_dir(void)
{
  return dir_buf;
}

bool fx_status(const char *path, const char *key, char *buf, size_t len)
{
  FILE *f = fopen(path ? path : "/proc/thread-self/status", "re");
  char line[512];
  size_t klen = strlen(key);
  bool found = false;
  if (f == NULL)
    return false;
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      char *v = line + klen + 1;
      while (*v == '\t' || *v == ' ')
        v++;
      v[strcspn(v, "\n")] = '\0';
      for (size_t e = strlen(v); e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'); e--)
        v[e - 1] = '\0';
      snprintf(buf, len, "%s", v);
      found = true;
    }
  }
  fclose(f);
  return found;
}

bool fx_status_ids(const char *path, const char *key, unsigned ids[4])
{
  char buf[256];
  return fx_status(path, key, buf, sizeof(buf)) &&
         sscanf(buf, "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) == 4;
}

int fx_fork(void (*fn)(void *), void *arg)
{
  int status = -1;
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGABRT, SIG_DFL);
    fn(arg);
    _exit(0);
  }
  if (pid > 0)
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
  return status;
}

bool fx_aborted(int status)
{
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

bool fx_exited_ok(int status)
{
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

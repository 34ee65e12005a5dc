/* privileges.c: daemon start-up privilege set-up: securebits, bounding set, service user, verification. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"

/* Root mode keeps exactly what service-user mode keeps: CAP_SETUID and
 * CAP_SETGID (+NET_BIND_SERVICE). Nothing the daemon does at base needs
 * more: the delegated FILE ccaches are created, written and removed while
 * impersonating the client (auth engine, gh__token_run_as), so neither
 * CAP_CHOWN nor CAP_DAC_OVERRIDE is kept (DESIGN.md §3). Everything else
 * (SYS_ADMIN, PTRACE, SYS_MODULE, NET_ADMIN, KILL, FOWNER, ...) leaves every
 * set. */

#define WANT_SECUREBITS                                                            \
  (SECBIT_KEEP_CAPS | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_SETUID_FIXUP |           \
   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED)

/* Highest capability number the kernel knows. */
static int cap_last(void)
{
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  int last = CAP_LAST_CAP;
  if (f != NULL) {
    if (fscanf(f, "%d", &last) != 1)
      last = CAP_LAST_CAP;
    fclose(f);
  }
  return last;
}

/* Threads in this process, from /proc/self/status. */
static int thread_count(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  int n = -1;
  if (f != NULL) {
    while (fgets(line, sizeof(line), f) != NULL) {
      if (strncmp(line, "Threads:", 8) == 0) {
        n = atoi(line + 8);
        break;
      }
    }
    fclose(f);
  }
  return n;
}

/* Read back every property the drop promised. */
static int verify(uid_t uid, gid_t gid, int ngroups, uint64_t keep, int last, bool root_mode)
{
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  uint64_t eff, prm, inh;
  int rc = GH_EPRIV_VERIFY;

  if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid)
    goto out;
  if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
    goto out;
  if (ngroups >= 0 && getgroups(0, NULL) != ngroups)
    goto out;
  if (gh__caps_get(&eff, &prm, &inh) != 0 || eff != keep || prm != keep || inh != 0)
    goto out;
  for (int c = 0; c <= last; c++) {
    bool want = (keep >> c) & 1;
    if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != (int)want)
      goto out;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) > 0)
      goto out;
  }
  if (root_mode ? (prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) & SECBIT_NO_SETUID_FIXUP) != 0
                : prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != WANT_SECUREBITS)
    goto out;
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
    goto out;
  rc = 0;
out:
  return rc;
}

/* Drops every capability outside keep from the bounding set (needs
 * CAP_SETPCAP, which is then dropped too unless kept) and clears ambient. */
static int drop_bounding(uint64_t keep, int last)
{
  for (int c = 0; c <= last; c++)
    if (!((keep >> c) & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
      return GH_EPRIV_VERIFY;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return GH_EPRIV_VERIFY;
  return 0;
}

/* Stay root with only `keep`: uid 0, securebits without NO_SETUID_FIXUP (so
 * the kernel clears the effective set while a thread impersonates), bounding,
 * permitted and effective sets = keep, nothing inheritable or ambient,
 * NO_NEW_PRIVS; then read it all back. */
static int stay_root(uint64_t keep, int last)
{
  uid_t ru, eu, su;
  uint64_t eff = 0;
  int bits, rc = 0;

  if (getresuid(&ru, &eu, &su) != 0 || ru != 0 || eu != 0 || su != 0) {
    rc = GH_ENO_PRIVILEGE;
    goto out;
  }
  if (gh__caps_get(&eff, NULL, NULL) != 0 ||
      (eff & ((1ull << CAP_SETPCAP) | keep)) != ((1ull << CAP_SETPCAP) | keep)) {
    rc = GH_ENO_PRIVILEGE;
    goto out;
  }
  bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (bits < 0 || (bits & SECBIT_NO_SETUID_FIXUP)) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  if ((rc = drop_bounding(keep, last)) != 0)
    goto out;
  if (gh__caps_set(keep, keep, 0) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  rc = verify(0, getgid(), -1, keep, last, true);
out:
  return rc;
}

int gh_privileges_drop(const char *service_user, unsigned flags)
{
  uint64_t keep = (1ull << CAP_SETUID) | (1ull << CAP_SETGID);
  struct passwd pw;
  char *buf = NULL;
  gid_t *groups = NULL;
  size_t ngroups = 0;
  int last, rc = 0;
  uint64_t eff = 0;

  if (flags & ~GH_PRIV_KEEP_NET_BIND_SERVICE) {
    rc = -EINVAL;
    goto out;
  }
  if (thread_count() != 1) {
    rc = GH_ESTATE; /* raw syscalls would change this thread only */
    goto out;
  }
  if (flags & GH_PRIV_KEEP_NET_BIND_SERVICE)
    keep |= 1ull << CAP_NET_BIND_SERVICE;
  if (service_user == NULL) {
    rc = stay_root(keep, cap_last());
    goto out;
  }
  if (geteuid() != 0 || gh__caps_get(&eff, NULL, NULL) != 0 ||
      (eff & ((1ull << CAP_SETPCAP) | keep)) != ((1ull << CAP_SETPCAP) | keep)) {
    rc = GH_ENO_PRIVILEGE;
    goto out;
  }
  rc = gh__nss_lookup(GH__NSS_PWNAM, service_user, 0, &pw, &buf);
  if (rc != 0)
    goto out;
  if (pw.pw_uid == 0 || pw.pw_gid == 0) {
    rc = GH_EUID_REFUSED;
    goto out;
  }
  rc = gh__nss_grouplist(pw.pw_name, pw.pw_gid, GH__SEC_MAX_GROUPS_LIMIT, &groups, &ngroups);
  if (rc != 0)
    goto out;
  last = cap_last();
  /* 1. securebits: caps survive the uid change, no root magic, locked */
  if (prctl(PR_SET_SECUREBITS, WANT_SECUREBITS, 0, 0, 0) != 0) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  /* 2. bounding set: only what we keep (needs CAP_SETPCAP, dropped below) */
  if ((rc = drop_bounding(keep, last)) != 0)
    goto out;
  /* 3. ids: groups, then gid, then uid (single-threaded: raw is enough) */
  if (syscall(SYS_setgroups, ngroups, groups) != 0 ||
      syscall(SYS_setresgid, pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0 ||
      syscall(SYS_setresuid, pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  /* 4. capability sets: exactly `keep`, nothing inheritable */
  if (gh__caps_set(keep, keep, 0) != 0) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  /* 5. no privilege gain through exec */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  rc = verify(pw.pw_uid, pw.pw_gid, (int)ngroups, keep, last, false);
out:
  free(groups);
  free(buf);
  return rc;
}

/* nss.c: the sec layer's only NSS calls: passwd/group entries (growing buffer), group lists. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"

/* First buffer, and the most any one entry may need. A group entry carries
 * its member list: 20,000 members of 8-character names need about 340 KiB
 * (names and pointers), and AD groups seen through SSSD or winbind can be
 * far larger, so groups may grow to 32 MiB; a passwd entry never needs
 * more than a few KiB. Past the cap the answer is GH_ELIMIT ("could not
 * decide"), never "not found". */
#define NSS_BUF_FIRST 4096u
#define NSS_BUF_MAX_PW (1u << 20)
#define NSS_BUF_MAX_GR (1u << 25)

/* Group-database calls are serialised: NSS modules that enumerate the group
 * database with shared setgrent/getgrent state (nss_wrapper, some directory
 * modules) return short lists when two threads ask at once — the identity
 * soak saw alice's token without ghusers when the cache expired under 8
 * workers. A missing group can raise access (a 0604 file denies its group
 * class), so a short list is an identity error, not a cosmetic one. Both
 * group calls sit behind TTL caches (groupcache.c), so one lock costs
 * nothing measurable. passwd lookups run on every token and are not
 * serialised. */
static pthread_mutex_t group_db_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t test_buf_max; /* tests: a lower cap for group entries */

void gh__nss_set_buf_max(size_t max)
{
  test_buf_max = max;
}

int gh__nss_lookup(gh__nss_db_t db, const char *name, uint32_t id, void *ret_ent, char **ret_buf)
{
  size_t buflen = NSS_BUF_FIRST;
  bool group = db == GH__NSS_GRNAM || db == GH__NSS_GRGID;
  size_t max = !group ? NSS_BUF_MAX_PW : test_buf_max ? test_buf_max : NSS_BUF_MAX_GR;
  struct passwd *pw_res = NULL;
  struct group *gr_res = NULL;
  bool found = false;
  char *buf = NULL;
  int e = 0, rc = 0;

  if (ret_ent == NULL || ret_buf == NULL ||
      (db != GH__NSS_PWUID && db != GH__NSS_GRGID && name == NULL)) {
    rc = -EINVAL;
    goto out;
  }
  for (;;) {
    buf = gh__malloc(buflen);
    if (buf == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    pw_res = NULL;
    gr_res = NULL;
    errno = 0;
    switch (db) {
    case GH__NSS_PWNAM:
      e = getpwnam_r(name, ret_ent, buf, buflen, &pw_res);
      break;
    case GH__NSS_PWUID:
      e = getpwuid_r((uid_t)id, ret_ent, buf, buflen, &pw_res);
      break;
    case GH__NSS_GRNAM:
      pthread_mutex_lock(&group_db_lock);
      e = getgrnam_r(name, ret_ent, buf, buflen, &gr_res);
      pthread_mutex_unlock(&group_db_lock);
      break;
    case GH__NSS_GRGID:
      pthread_mutex_lock(&group_db_lock);
      e = getgrgid_r((gid_t)id, ret_ent, buf, buflen, &gr_res);
      pthread_mutex_unlock(&group_db_lock);
      break;
    }
    /* some NSS shims (nss_wrapper 1.1) return -1 with errno instead of the
     * error number */
    if (e < 0)
      e = errno > 0 ? errno : EIO;
    found = pw_res != NULL || gr_res != NULL;
    if (found || e != ERANGE)
      break;
    free(buf);
    buf = NULL;
    if (buflen >= max) {
      rc = GH_ELIMIT;
      goto out;
    }
    buflen *= 4;
  }
  if (!found) {
    /* 0, ENOENT and ESRCH are "no such entry" (getpwnam_r(3)); anything
     * else is a failure of the database, which must not read as "none" */
    if (e == 0 || e == ENOENT || e == ESRCH)
      rc = group ? GH_ENOT_FOUND : GH_ENO_SUCH_USER;
    else
      rc = -e;
  }
out:
  if (rc == 0)
    *ret_buf = buf;
  else
    free(buf);
  return rc;
}

int gh__nss_grouplist(const char *user, gid_t gid, size_t limit, gid_t **ret_groups, size_t *ret_n)
{
  int cap = 64, n, got;
  gid_t *g = NULL;
  int rc = 0;

  for (;;) {
    free(g);
    g = gh__malloc((size_t)cap * sizeof(gid_t));
    if (g == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    n = cap;
    pthread_mutex_lock(&group_db_lock);
    got = getgrouplist(user, gid, g, &n);
    pthread_mutex_unlock(&group_db_lock);
    if (got >= 0)
      break;
    if (n <= cap) /* no growth requested: grow anyway rather than loop */
      n = cap * 2;
    if ((size_t)n > limit) {
      rc = GH_ELIMIT;
      goto out;
    }
    cap = n;
  }
  *ret_n = gh__sec_sort_groups(g, (size_t)n);
  *ret_groups = g;
  g = NULL;
out:
  free(g);
  return rc;
}

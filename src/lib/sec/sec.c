/* sec.c: process-wide sec state: configuration, base identity, anonymous account, capability helpers. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sec/runas.h"
#include "sec/sec_internal.h"
#include "util/alloc.h"

gh__sec_state_t gh__sec;

static time_t (*sec_clock)(void);

time_t gh__sec_now(void)
{
  time_t now;
  if (sec_clock != NULL) {
    now = sec_clock();
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = ts.tv_sec;
  }
  return now;
}

void gh__sec_set_clock(time_t (*fn)(void))
{
  sec_clock = fn;
}

bool gh__sec_uid_allowed(uid_t uid)
{
  return uid != 0 && uid != gh__sec.service_uid && uid >= gh__sec.min_uid &&
         uid != (uid_t)-1;
}

static int cmp_gid(const void *a, const void *b)
{
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return x < y ? -1 : x > y;
}

size_t gh__sec_sort_groups(gid_t *g, size_t n)
{
  size_t out = 0;
  if (n == 0)
    goto out;
  qsort(g, n, sizeof(*g), cmp_gid);
  out = 1;
  for (size_t i = 1; i < n; i++) {
    if (g[i] != g[out - 1])
      g[out++] = g[i];
  }
out:
  return out;
}

int gh__caps_get(uint64_t *ret_eff, uint64_t *ret_prm, uint64_t *ret_inh)
{
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  int rc = 0;

  memset(data, 0, sizeof(data));
  if (syscall(SYS_capget, &hdr, data) != 0) {
    rc = -errno;
    goto out;
  }
  if (ret_eff)
    *ret_eff = data[0].effective | ((uint64_t)data[1].effective << 32);
  if (ret_prm)
    *ret_prm = data[0].permitted | ((uint64_t)data[1].permitted << 32);
  if (ret_inh)
    *ret_inh = data[0].inheritable | ((uint64_t)data[1].inheritable << 32);
out:
  return rc;
}

int gh__caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  int rc = 0;

  data[0].effective = (uint32_t)eff;
  data[1].effective = (uint32_t)(eff >> 32);
  data[0].permitted = (uint32_t)prm;
  data[1].permitted = (uint32_t)(prm >> 32);
  data[0].inheritable = (uint32_t)inh;
  data[1].inheritable = (uint32_t)(inh >> 32);
  if (syscall(SYS_capset, &hdr, data) != 0)
    rc = -errno;
  return rc;
}

/* Resolve the anonymous account into gh__sec. */
static int resolve_anonymous(const char *name)
{
  const char *want = name ? name : "nobody";
  char *buf = NULL;
  struct passwd pw;
  int rc = 0;

  if (strlen(want) >= sizeof(gh__sec.anon_user)) {
    rc = GH_ECONFIG;
    goto out;
  }
  rc = gh__nss_lookup(GH__NSS_PWNAM, want, 0, &pw, &buf);
  if (rc == GH_ENO_SUCH_USER && name == NULL) {
    /* default account missing from NSS: the kernel's overflow ids */
    rc = 0;
    gh__sec.anon_uid = GH__SEC_OVERFLOW_ID;
    gh__sec.anon_gid = GH__SEC_OVERFLOW_ID;
  } else if (rc == 0) {
    gh__sec.anon_uid = pw.pw_uid;
    gh__sec.anon_gid = pw.pw_gid;
  } else {
    goto out;
  }
  strcpy(gh__sec.anon_user, want);
  if (!gh__sec_uid_allowed(gh__sec.anon_uid) || gh__sec.anon_gid == 0)
    rc = GH_EUID_REFUSED;
out:
  free(buf);
  return rc;
}

static int apply_config(const gh_sec_config_t *cfg)
{
  gh_sec_config_t def = {.min_uid = GH__SEC_DEFAULT_MIN_UID,
                         .anonymous_user = NULL,
                         .group_cache_ttl_s = GH__SEC_DEFAULT_TTL,
                         .max_groups = 0,
                         .peer_groups = GH_PEER_GROUPS_KERNEL};
  int rc;

  if (cfg == NULL)
    cfg = &def;
  gh__sec.min_uid = cfg->min_uid;
  gh__sec.ttl_s = cfg->group_cache_ttl_s;
  gh__sec.max_groups = cfg->max_groups ? cfg->max_groups : GH__SEC_DEFAULT_MAX_GROUPS;
  if (gh__sec.max_groups > GH__SEC_MAX_GROUPS_LIMIT ||
      (cfg->peer_groups != GH_PEER_GROUPS_KERNEL && cfg->peer_groups != GH_PEER_GROUPS_NSS)) {
    rc = GH_ECONFIG;
    goto out;
  }
  gh__sec.peer_groups = cfg->peer_groups;
  rc = resolve_anonymous(cfg->anonymous_user);
  gh__groupcache_flush();
out:
  return rc;
}

/* Capabilities that may stay effective while a thread runs as a client. */
#define SAFE_CAPS                                                         \
  ((1ull << CAP_SETUID) | (1ull << CAP_SETGID) | (1ull << CAP_SETPCAP) | \
   (1ull << CAP_NET_BIND_SERVICE))

/* Refuse a process whose capabilities would survive impersonation. */
static int check_caps_safe(uid_t euid)
{
  uint64_t eff = 0, prm = 0;
  int bits, rc;

  rc = gh__caps_get(&eff, &prm, NULL);
  if (rc != 0)
    goto out;
  bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (bits < 0) {
    rc = -errno;
    goto out;
  }
  if ((euid != 0 || (bits & SECBIT_NO_SETUID_FIXUP)) && ((eff | prm) & ~SAFE_CAPS) != 0)
    rc = GH_EPRIV_VERIFY;
out:
  return rc;
}

bool gh__sec_is_initialised(void)
{
  return gh__sec.initialised;
}

int gh_sec_init(const gh_sec_config_t *cfg)
{
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  gid_t *groups = NULL;
  int n, rc = 0;

  if (gh__sec.initialised) {
    rc = GH_ESTATE;
    goto out;
  }
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
    rc = -errno;
    goto out;
  }
  if (ru != eu || eu != su || rg != eg || eg != sg) {
    rc = GH_EPRIV_VERIFY;
    goto out;
  }
  n = getgroups(0, NULL);
  if (n < 0) {
    rc = -errno;
    goto out;
  }
  groups = gh__calloc((size_t)n + 1, sizeof(gid_t));
  if (groups == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  n = getgroups(n, groups);
  if (n < 0) {
    rc = -errno;
    goto out;
  }
  rc = check_caps_safe(eu);
  if (rc != 0)
    goto out;
  gh__sec.service_uid = eu;
  gh__sec.base.uid = eu;
  gh__sec.base.gid = eg;
  gh__sec.base.ngroups = (uint32_t)gh__sec_sort_groups(groups, (size_t)n);
  rc = apply_config(cfg);
  if (rc != 0)
    goto out;
  gh__sec.base.groups = groups;
  groups = NULL;
  gh__sec.initialised = true;
out:
  free(groups);
  return rc;
}

int gh__sec_reconfigure(const gh_sec_config_t *cfg)
{
  return gh__sec.initialised ? apply_config(cfg) : GH_ESTATE;
}

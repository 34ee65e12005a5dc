/* secglue.c: the sec layer (tokens, impersonation) as the pipeline calls it. */
#include <errno.h>
#include <linux/openat2.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "pipeline/pipeline_int.h"
#include "sec/sec_internal.h"

static int sec_impersonate(gh_token_t tok)
{
  return gh_impersonate(tok);
}

static int sec_revert(void)
{
  /* gh_revert aborts the process if the kernel refuses (DESIGN item 18);
   * in traditional mode one call returns to base */
  while (gh_is_impersonating())
    (void)gh_revert();
  return 0;
}

static bool sec_is_impersonating(void)
{
  return gh_is_impersonating();
}

static int sec_assert_base(void)
{
  if (gh_is_impersonating())
    return GH_ESTATE;
  /* aborts if the kernel ids are not base; GH_ESTATE without gh_sec_init */
  return gh_assert_base();
}

static int sec_token_close(gh_token_t tok)
{
  return gh_token_close(tok);
}

static int sec_token_borrow(gh_token_t tok, gh_token_t *ret)
{
  return gh_token_borrow(tok, ret);
}

static bool sec_token_valid(gh_token_t tok)
{
  uint64_t id;
  return gh_token_get_id(tok, &id) == 0;
}

/* What the user object keeps of a token, read under one reference (the
 * public getters take the handle table's lock once each: five times per
 * request). Groups beyond GH__PL_MAX_GROUPS: none kept; a name that does
 * not fit: "" (as the getters' -ERANGE). */
static int sec_token_info(gh_token_t tok, gh__pl_token_info_t *ti)
{
  gh__token_t *t = NULL;
  size_t n;
  int ret = gh__token_get(tok, &t);
  if (ret != 0)
    goto out;
  ti->uid = t->uid;
  ti->gid = t->gid;
  ti->level = (int)t->level;
  ti->n_groups = t->ngroups <= GH__PL_MAX_GROUPS ? t->ngroups : 0;
  memcpy(ti->groups, t->groups, ti->n_groups * sizeof(gid_t));
  n = strlen(t->user);
  if (n < sizeof(ti->name))
    memcpy(ti->name, t->user, n + 1);
  else
    ti->name[0] = '\0';
out:
  gh__token_unref(t);
  return ret;
}

static int sec_token_is_member(gh_token_t tok, gid_t gid, bool *ret_member)
{
  return gh_token_is_member(tok, gid, ret_member);
}

static int sec_token_is_member_name(gh_token_t tok, const char *group, gh_membership_t *ret)
{
  return gh_token_is_member_name(tok, group, ret);
}

static int sec_token_openat2(gh_token_t tok, int dirfd, const char *path,
                             const struct open_how *how)
{
  return gh_token_openat2(tok, dirfd, path, how, sizeof(*how));
}

static int sec_token_connect_unix(gh_token_t tok, const char *path, int *ret_fd)
{
  return gh_token_connect_unix(tok, path, ret_fd);
}

static int sec_token_identity_key(gh_token_t tok, char *buf, size_t len)
{
  return gh_token_get_identity_key(tok, buf, len);
}

const gh__pl_sec_ops_t gh__pl_real_sec_ops = {
    .impersonate = sec_impersonate,
    .revert = sec_revert,
    .is_impersonating = sec_is_impersonating,
    .assert_base = sec_assert_base,
    .token_close = sec_token_close,
    .token_borrow = sec_token_borrow,
    .token_valid = sec_token_valid,
    .token_info = sec_token_info,
    .token_is_member = sec_token_is_member,
    .token_is_member_name = sec_token_is_member_name,
    .token_openat2 = sec_token_openat2,
    .token_connect_unix = sec_token_connect_unix,
    .token_identity_key = sec_token_identity_key,
};

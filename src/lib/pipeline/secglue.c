/* secglue.c: the sec layer (tokens, impersonation) as the pipeline calls it. */
#include <errno.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "pipeline/pipeline_int.h"
#include "sec/sec_internal.h"
#include "util/alloc.h"
#include "util/str.h"

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

/* Writes v in decimal at p, NUL-terminated; returns the text. */
static const char *put_id(char **p, uint64_t v)
{
  char *d = *p;
  *p += gh__u64_text(d, v) + 1;
  return d;
}

/* The view of t, in one allocation: the struct, then the texts (ids of at
 * most 10 digits, each group followed by a comma or the NUL). */
static gh__pl_token_view_t *view_build(gh__token_t *t)
{
  size_t ng = t->ngroups <= GH__PL_MAX_GROUPS ? t->ngroups : 0;
  size_t nlen = strlen(t->user);
  gh__pl_token_view_t *v;
  char *p;
  if (nlen >= 256)
    nlen = 0;
  v = gh__malloc(sizeof(*v) + 2 * 11 + ng * 11 + 1 + nlen + 1);
  if (v == NULL)
    return NULL;
  p = (char *)(v + 1);
  v->uid = t->uid;
  v->gid = t->gid;
  v->level = (int)t->level;
  v->uid_text = put_id(&p, t->uid);
  v->gid_text = put_id(&p, t->gid);
  v->groups_text = p;
  *p = '\0';
  for (size_t g = 0; g < ng; g++) {
    if (g > 0)
      *p++ = ',';
    p += gh__u64_text(p, t->groups[g]);
  }
  p++;
  memcpy(p, t->user, nlen);
  p[nlen] = '\0';
  v->name = p;
  v->pin = t;
  return v;
}

/* The view of tok: made by the first request that carries the token and
 * published once (a second thread that made one too frees its own); the
 * reference taken here pins the token, the view with it, until
 * sec_token_view_release. */
static int sec_token_view(gh_token_t tok, const gh__pl_token_view_t **ret_view)
{
  gh__token_t *t = NULL;
  void *v;
  int ret = gh__token_get(tok, &t);
  if (ret != 0)
    goto out;
  v = atomic_load_explicit(&t->ext, memory_order_acquire);
  if (v == NULL) {
    gh__pl_token_view_t *nv = view_build(t);
    if (nv == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    if (atomic_compare_exchange_strong_explicit(&t->ext, &v, nv, memory_order_acq_rel,
                                                memory_order_acquire))
      v = nv;
    else
      free(nv); /* v: the one another thread published */
  }
  *ret_view = v;
  t = NULL;
out:
  gh__token_unref(t);
  return ret;
}

static void sec_token_view_release(const gh__pl_token_view_t *view)
{
  if (view != NULL)
    gh__token_unref(view->pin);
}

static int sec_token_group_names(const gh__pl_token_view_t *view, const char **ret_names)
{
  return gh__token_group_names(view->pin, ret_names);
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
    .token_view = sec_token_view,
    .token_view_release = sec_token_view_release,
    .token_group_names = sec_token_group_names,
    .token_is_member = sec_token_is_member,
    .token_is_member_name = sec_token_is_member_name,
    .token_openat2 = sec_token_openat2,
    .token_connect_unix = sec_token_connect_unix,
    .token_identity_key = sec_token_identity_key,
};

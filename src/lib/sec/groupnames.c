/* groupnames.c: a token's group names (gh_token_get_group_names), resolved once per token. */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/error.h>

#include "sec/sec_internal.h"
#include "util/alloc.h"
#include "util/str.h"

#define NAME_MAX_BYTES 255

/* Whether name can stand in a ','-joined list read by an application: not
 * empty, at most NAME_MAX_BYTES, printable ASCII without ','. */
static bool name_ok(const char *name)
{
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++, n++)
    if (*p < 0x20 || *p > 0x7e || *p == ',' || n >= NAME_MAX_BYTES)
      return false;
  return n > 0;
}

/* Appends "," (after the first) and the group's name or number to *buf. */
static int append(char **buf, size_t *len, size_t *cap, gid_t gid, const char *name)
{
  char num[24];
  size_t n;
  if (name == NULL) {
    n = gh__u64_text(num, gid);
    name = num;
  } else {
    n = strlen(name);
  }
  if (*len + n + 2 > *cap) {
    size_t ncap = (*len + n + 2) * 2;
    char *nb = gh__realloc(*buf, ncap);
    if (nb == NULL)
      return -ENOMEM;
    *buf = nb;
    *cap = ncap;
  }
  if (*len > 0)
    (*buf)[(*len)++] = ',';
  memcpy(*buf + *len, name, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

static int build(const gh__token_t *t, char **ret)
{
  size_t len = 0, cap = 64;
  char *buf = gh__malloc(cap);
  int rc = 0;
  if (buf == NULL)
    return -ENOMEM;
  buf[0] = '\0';
  for (uint32_t i = 0; i < t->ngroups && rc == 0; i++) {
    struct group gr;
    char *gbuf = NULL;
    int e = gh__nss_lookup(GH__NSS_GRGID, NULL, t->groups[i], &gr, &gbuf);
    if (e == 0)
      rc = append(&buf, &len, &cap, t->groups[i], name_ok(gr.gr_name) ? gr.gr_name : NULL);
    else if (e == GH_ENOT_FOUND)
      rc = append(&buf, &len, &cap, t->groups[i], NULL);
    else
      rc = e; /* the database failed: no list rather than a short one */
    free(gbuf);
  }
  if (rc != 0) {
    free(buf);
    buf = NULL;
  }
  *ret = buf;
  return rc;
}

int gh__token_group_names(gh__token_t *t, const char **ret_names)
{
  char *have = atomic_load_explicit(&t->group_names, memory_order_acquire);
  if (have == NULL) {
    char *mine = NULL;
    int rc;
    /* NSS runs at base identity (DESIGN.md §3): a handler that
     * impersonates gets the same answer as one that does not */
    if (gh__sec_thread_impersonating()) {
      gh__sec_saved_t saved;
      rc = gh__sec_enter(NULL, &gh__sec.base, &saved);
      if (rc == 0) {
        rc = build(t, &mine);
        gh__sec_leave(&saved);
      }
    } else {
      rc = build(t, &mine);
    }
    if (rc != 0)
      return rc;
    if (atomic_compare_exchange_strong_explicit(&t->group_names, &have, mine,
                                                memory_order_acq_rel, memory_order_acquire))
      have = mine;
    else
      free(mine); /* have: the one another thread published */
  }
  *ret_names = have;
  return 0;
}

int gh_token_get_group_names(gh_token_t h, char *buf, size_t len)
{
  gh__token_t *t = NULL;
  const char *names = NULL;
  int rc = buf == NULL ? -EINVAL : gh__token_get(h, &t);
  if (rc == 0)
    rc = gh__token_group_names(t, &names);
  if (rc == 0) {
    size_t n = strlen(names);
    if (n >= len)
      rc = -ERANGE;
    else
      memcpy(buf, names, n + 1);
    if (rc == 0)
      rc = (int)(n > INT32_MAX ? INT32_MAX : n);
  }
  gh__token_unref(t);
  return rc;
}
